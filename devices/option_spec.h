/* Device option strings of the --disk and --share kind, "key=value,flag,...": one item split into
 * its key and value, key words compared, and the whole string quoted in error lines (cut to 80
 * bytes). Each device's parser keeps its own keys and messages; the splitting is this one. */
#ifndef VMM_OPTION_SPEC_H
#define VMM_OPTION_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* printf arguments for "'%.*s%s'": the option string, cut to 77 bytes and "..." past 80. */
#define OPTION_SPEC_ARG(sp) \
	(int)(strlen(sp) > 80 ? 77 : strlen(sp)), (sp), (strlen(sp) > 80 ? "..." : "")

/* The item that starts at p and ends at the next ',' or the string's end. */
struct option_item {
	const char *end; /* the ',' or NUL after the item */
	size_t len;	 /* the whole item's length */
	const char *eq;	 /* its first '=', or NULL */
	size_t klen;	 /* the key's length: up to '=', else the whole item */
	const char *val; /* after '=', or NULL */
	size_t vlen;
};

static inline struct option_item option_item(const char *p)
{
	struct option_item it;
	it.end = strchrnul(p, ',');
	it.len = (size_t)(it.end - p);
	it.eq = memchr(p, '=', it.len);
	it.klen = it.eq ? (size_t)(it.eq - p) : it.len;
	it.val = it.eq ? it.eq + 1 : NULL;
	it.vlen = it.eq ? (size_t)(it.end - it.val) : 0;
	return it;
}

/* Whether the len bytes at p are exactly word. */
static inline bool option_word_is(const char *p, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(p, word, len) == 0;
}

#endif
