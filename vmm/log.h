/* Logging: every line vmm prints about itself goes to stderr with a "vmm: " prefix. */
#ifndef VMM_LOG_H
#define VMM_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* Prints "vmm: <message>\n" to stderr in one write(2), so lines from vCPU threads never interleave.
 */
void vmm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Like vmm_log, but at most `burst` lines per second per call site: for anything a guest can
 * trigger. `state` is a static per call site. */
struct log_ratelimit {
	long long window_start_ns;
	unsigned printed;
	unsigned suppressed;
};
void vmm_log_ratelimited(struct log_ratelimit *state, unsigned burst, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Verbose debug output, on with --verbose. */
extern bool vmm_verbose;
#define vmm_debug(...)                        \
	do {                                  \
		if (vmm_verbose)              \
			vmm_log(__VA_ARGS__); \
	} while (0)

#endif

#ifndef VMM_VERR_H
#define VMM_VERR_H
/* An error with its message, filled where the problem is found and printed once by the caller
 * that handles it (the crun model). */
struct verr {
	int code; /* negative errno */
	char msg[512];
};

/* Sets e (if not NULL) and returns code (a negative errno) so callers can `return verr_set(...)`.
 */
int verr_set(struct verr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends to the string in buf[0..cap) at *at, like snprintf: what does not fit is cut (buf stays
 * terminated when cap > 0), and *at counts on past the end, so it ends as the length needed. */
void str_appendf(char *buf, size_t cap, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#endif
