/* Strict JSON from a file or a buffer (json_strict.h). */
#include "vmm/config/json_strict.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int json_strict_parse(const char *text, size_t len, size_t max, const char *origin,
		      struct json_object **out, struct verr *e)
{
	*out = NULL;
	if (len > max || len > (size_t)INT32_MAX)
		return verr_set(e, -EINVAL, "%s: more than %zu bytes", origin, max);
	if (memchr(text, 0, len))
		return verr_set(e, -EINVAL, "%s: not JSON text (a NUL byte)", origin);
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		return verr_set(e, -ENOMEM, "%s: out of memory", origin);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	int r = 0;
	if (!root || jerr != json_tokener_success) {
		r = verr_set(e, -EINVAL, "%s: not valid JSON near byte %zu: %s", origin, used,
			     jerr == json_tokener_continue ? "the text ends early"
							   : json_tokener_error_desc(jerr));
		goto fail;
	}
	for (size_t i = used; i < len; i++)
		if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r') {
			r = verr_set(e, -EINVAL, "%s: text after the JSON object (byte %zu)",
				     origin, i);
			goto fail;
		}
	if (json_object_get_type(root) != json_type_object) {
		r = verr_set(e, -EINVAL, "%s: the top level must be an object", origin);
		goto fail;
	}
	*out = root;
	return 0;
fail:
	json_object_put(root);
	return r;
}

int json_strict_read_file(const char *path, size_t max, const char *origin,
			  struct json_object **out, struct verr *e)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return verr_set(e, err == ENOENT ? -ENOENT : -EINVAL, "%s: cannot open: %s", origin,
				strerror(err));
	}
	char *buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		return verr_set(e, -ENOMEM, "%s: out of memory", origin);
	}
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(buf);
			close(fd);
			return verr_set(e, -EINVAL, "%s: cannot read: %s", origin, strerror(err));
		}
		if (n == 0 || (len += (size_t)n) > max)
			break;
	}
	close(fd);
	int r = json_strict_parse(buf, len, max, origin, out, e);
	free(buf);
	return r;
}

const char *json_type_words(int type)
{
	switch ((json_type)type) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a fractional number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "?";
}
