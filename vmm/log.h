/* Logging: every line vmm prints about itself, one write(2) per line, to stderr or the --log file,
 * as text ("vmm: <message>") or as one JSON object per line (--log-format json), filtered by
 * --log-level. */
#ifndef VMM_LOG_H
#define VMM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct verr;

/* Lowest first: a level prints its own lines and those above it in this list. */
enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* "error", "warn", "info", "debug" to *out: 0, or -EINVAL (s NULL or another word; *out kept). */
int log_parse_level(const char *s, enum log_level *out);
/* "text", "json" to *out: 0, or -EINVAL (s NULL or another word; *out kept). */
int log_parse_format(const char *s, enum log_format *out);
/* The names those parse ("error"..., "text"/"json"); "?" out of range. */
const char *log_level_name(enum log_level l);
const char *log_format_name(enum log_format f);

/* Where lines go from now on, their level and format. path NULL or "-": stderr; else the file is
 * opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0640 (appended to, never truncated). Returns 0,
 * or a negative errno with e naming the path (nothing changes then). A file opened before is
 * closed. Call it on the main thread before other threads start; the fd stays valid across
 * fork() (keep log_fd() open in a detached child). */
int log_open(const char *path, enum log_level level, enum log_format format, struct verr *e);
/* The name before a text line ("vmm" unless set; at most 15 bytes kept): call it before other
 * threads start. vmm-oci's lines say "vmm-oci: ...". */
void log_set_program(const char *name);
/* Closes a --log file: lines go to stderr again (level and format unchanged). */
void log_close(void);
/* The fd lines are written to (STDERR_FILENO without a --log file). */
int log_fd(void);
/* The level from now on; LOG_LEVEL_DEBUG also sets vmm_verbose (what -v sets). */
void log_set_level(enum log_level level);
/* Whether a line of this level is printed now (vmm_debug lines also print with vmm_verbose). */
bool log_enabled(enum log_level level);
/* Lines dropped by the rate limiters since the process started (all call sites, all threads). */
unsigned long long log_dropped(void);
/* The time of a JSON line: ts (CLOCK_REALTIME) as UTC RFC 3339 with microseconds,
 * "2026-12-01T14:00:30.123456Z", in buf (cap >= 28 for years 0000-9999). Computed without
 * gmtime_r, whose first call opens /etc/localtime (forbidden in the sandboxed threads). Returns
 * the length, as snprintf. */
int log_format_time(const struct timespec *ts, char *buf, size_t cap);

/* An error: "vmm: <message>\n" (text). Lines from several threads never interleave. */
void vmm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warning (printed at levels warn, info, debug). */
void vmm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Information (printed at levels info, the default, and debug). */
void vmm_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Like vmm_log, but at most `burst` lines per second per call site: for anything a guest can
 * trigger. `state` is a static (or zeroed) per call site; any thread may use it at any time. The
 * first line after a window with drops says "(N similar messages suppressed)". */
struct log_ratelimit {
	_Atomic long long window_start_ns;
	_Atomic unsigned printed;
	_Atomic unsigned suppressed;
};
void vmm_log_ratelimited(struct log_ratelimit *state, unsigned burst, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same at warn level (nothing is counted while warnings are not printed). */
void vmm_warn_ratelimited(struct log_ratelimit *state, unsigned burst, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Debug output: printed with -v (vmm_verbose) or --log-level debug; the arguments are not
 * evaluated otherwise. */
extern bool vmm_verbose;
#define vmm_debug(...)                                           \
	do {                                                     \
		if (vmm_verbose || log_enabled(LOG_LEVEL_DEBUG)) \
			vmm_debug_print(__VA_ARGS__);            \
	} while (0)
/* A debug line whatever the level (vmm_debug makes the check). */
void vmm_debug_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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
