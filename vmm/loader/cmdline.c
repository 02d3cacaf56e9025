/* Kernel command line assembly. */
#include "vmm/loader/cmdline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int cmdline_build(char *out, size_t cap, const char *base, const char *user)
{
	int n = snprintf(out, cap, "%s%s%s", base, user && *user ? " " : "", user ? user : "");
	return n < 0 || (size_t)n >= cap ? -E2BIG : 0;
}

int cmdline_add(char *out, size_t cap, const char *param)
{
	size_t len = strlen(out), plen = strlen(param);
	if (len + 1 + plen + 1 > cap)
		return -E2BIG;
	char *split = NULL;
	if (strncmp(out, "-- ", 3) == 0 || strcmp(out, "--") == 0)
		split = out;
	else if ((split = strstr(out, " -- ")) == NULL) {
		size_t l = strlen(out);
		if (l >= 3 && strcmp(out + l - 3, " --") == 0)
			split = out + l - 3;
	}
	if (!split) {
		out[len] = ' ';
		memcpy(out + len + 1, param, plen + 1);
		return 0;
	}
	size_t at = (size_t)(split - out);
	if (at == 0) {
		/* "-- args": the parameter goes first. */
		memmove(out + plen + 1, out, len + 1);
		memcpy(out, param, plen);
		out[plen] = ' ';
		return 0;
	}
	memmove(out + at + 1 + plen, out + at, len - at + 1);
	out[at] = ' ';
	memcpy(out + at + 1, param, plen);
	return 0;
}
