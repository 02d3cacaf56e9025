/* Strict JSON from a file or a buffer, the one way vmm and vmm-oci read JSON that people and
 * engines write: json-c's strict mode with UTF-8 checked, no NUL bytes, nothing but white space
 * after the value, a size limit, and errors that name where the text came from. */
#ifndef VMM_JSON_STRICT_H
#define VMM_JSON_STRICT_H

#include "vmm/log.h"

#include <stddef.h>

struct json_object;

/* Parses len bytes of text (at most max) into *out, which must be a JSON object. origin names
 * the text in errors ("--config vm.json", "config.json"). 0, or -EINVAL (-ENOMEM) with one line
 * in e: "ORIGIN: not valid JSON near byte N: ...", "ORIGIN: more than MAX bytes", "ORIGIN: the
 * top level must be an object"... On error *out is NULL. */
int json_strict_parse(const char *text, size_t len, size_t max, const char *origin,
		      struct json_object **out, struct verr *e);

/* Reads the file at path whole (at most max bytes) and parses it as json_strict_parse does.
 * Errors say "ORIGIN: cannot open: ..." and so on; -ENOENT when the file does not exist (so a
 * caller can say what to do), otherwise as json_strict_parse. */
int json_strict_read_file(const char *path, size_t max, const char *origin,
			  struct json_object **out, struct verr *e);

/* "a string", "an integer", "a fractional number", "an array"... for "expected X, got Y". */
const char *json_type_words(int type);

#endif
