/* Logging: one line per message, written with one write(2) (lines from vCPU threads, the main
 * thread and the session thread stay whole), as text or JSON, to stderr or the --log file; and a
 * rate limiter for guest-triggered lines. No locks: state is atomic, so a fork() at any moment
 * leaves the child a working logger. */
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool vmm_verbose;

static _Atomic int out_fd = STDERR_FILENO;
static _Atomic int out_level = LOG_LEVEL_INFO;
static _Atomic int out_format = LOG_FORMAT_TEXT;
static _Atomic unsigned long long dropped;

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};
static const char *const format_names[] = {
    [LOG_FORMAT_TEXT] = "text",
    [LOG_FORMAT_JSON] = "json",
};

/* "PROGRAM: " before a text line; PROGRAM is at most LOG_PROGRAM_MAX bytes (log_set_program). */
#define LOG_PROGRAM_MAX 15
static char text_prefix[LOG_PROGRAM_MAX + 3] = "vmm: ";
/* A text line is at most 1023 bytes (as it always was): the message at most 1017 after "vmm: ",
 * cut shorter after a longer program name. */
#define TEXT_LINE_MAX 1024
#define MSG_CAP	      (TEXT_LINE_MAX - (sizeof("vmm: ") - 1) - 1)
/* A JSON line fits in PIPE_BUF, so it is written whole (atomically) to a pipe as well. */
#define JSON_LINE_MAX PIPE_BUF

const char *log_level_name(enum log_level l)
{
	return (unsigned)l < sizeof(level_names) / sizeof(level_names[0]) ? level_names[l] : "?";
}

const char *log_format_name(enum log_format f)
{
	return (unsigned)f < sizeof(format_names) / sizeof(format_names[0]) ? format_names[f] : "?";
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (unsigned i = 0; s && i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

int log_parse_format(const char *s, enum log_format *out)
{
	for (unsigned i = 0; s && i < sizeof(format_names) / sizeof(format_names[0]); i++)
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum log_format)i;
			return 0;
		}
	return -EINVAL;
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&out_level, (int)level, memory_order_relaxed);
	if (level >= LOG_LEVEL_DEBUG)
		vmm_verbose = true;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&out_level, memory_order_relaxed);
}

int log_fd(void)
{
	return atomic_load_explicit(&out_fd, memory_order_relaxed);
}

unsigned long long log_dropped(void)
{
	return atomic_load_explicit(&dropped, memory_order_relaxed);
}

static bool leap(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int log_format_time(const struct timespec *ts, char *buf, size_t cap)
{
	static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	long long days = ts->tv_sec / 86400, sec = ts->tv_sec % 86400;
	if (sec < 0) {
		sec += 86400;
		days--;
	}
	/* Every 400 years have 146097 days; then whole years, then months, from 1970-01-01. */
	long long y = 1970 + 400 * (days / 146097);
	days %= 146097;
	if (days < 0) {
		days += 146097;
		y -= 400;
	}
	while (days >= (leap(y) ? 366 : 365)) {
		days -= leap(y) ? 366 : 365;
		y++;
	}
	int m = 0;
	while (days >= mdays[m] + (m == 1 && leap(y))) {
		days -= mdays[m] + (m == 1 && leap(y));
		m++;
	}
	return snprintf(buf, cap, "%04lld-%02d-%02lldT%02lld:%02lld:%02lld.%06ldZ", y, m + 1,
			days + 1, sec / 3600, sec / 60 % 60, sec % 60, ts->tv_nsec / 1000);
}

/* Writes the line, retrying an interrupted or short write; a failure is dropped (nothing to do). */
static void write_line(const char *p, size_t n)
{
	int fd = log_fd();
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Replaces each byte that does not start a well-formed UTF-8 sequence (stray continuation
 * bytes, overlong forms, surrogates, beyond U+10FFFF, cut sequences) with '?': json-c passes
 * bytes >= 0x80 through as they are, and the line must be valid JSON. */
static void utf8_sanitize(char *s, size_t len)
{
	unsigned char *p = (unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		size_t need;
		unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* beyond U+10FFFF */
		} else {
			p[i++] = '?';
			continue;
		}
		bool ok = i + need < len;
		for (size_t k = 1; ok && k <= need; k++) {
			unsigned b = p[i + k];
			ok = k == 1 ? b >= lo && b <= hi : b >= 0x80 && b <= 0xbf;
		}
		if (ok)
			i += need + 1;
		else
			p[i++] = '?';
	}
}

/* {"level":...,"msg":...,"time":...} into buf; returns its length, 0 when json-c had no memory, or
 * more than cap when it does not fit (buf is then not filled). */
static size_t json_encode(enum log_level lvl, const char *msg, size_t len, const char *time,
			  char *buf, size_t cap)
{
	json_object *o = json_object_new_object();
	json_object *jl = json_object_new_string(level_names[lvl]);
	json_object *jm = json_object_new_string_len(msg, (int)len);
	json_object *jt = json_object_new_string(time);
	size_t n = 0;
	if (o && jl && jm && jt) {
		json_object_object_add(o, "level", jl);
		json_object_object_add(o, "msg", jm);
		json_object_object_add(o, "time", jt);
		jl = jm = jt = NULL; /* o holds them */
		const char *s = json_object_to_json_string_ext(
		    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		if (s) {
			n = strlen(s);
			if (n <= cap)
				memcpy(buf, s, n);
		}
	}
	json_object_put(jl);
	json_object_put(jm);
	json_object_put(jt);
	json_object_put(o);
	return n;
}

static void write_json(enum log_level lvl, char *msg, size_t len)
{
	char time[48], line[JSON_LINE_MAX];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	log_format_time(&now, time, sizeof(time));
	utf8_sanitize(msg, len);
	size_t n;
	/* Escapes (\u0001 is six bytes) can make the line longer than PIPE_BUF: shorten the
	 * message, at a character boundary, until it fits. */
	while ((n = json_encode(lvl, msg, len, time, line, sizeof(line) - 1)) > sizeof(line) - 1) {
		if (len == 0) {
			n = 0;
			break;
		}
		len = len * 3 / 4;
		while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
			len--;
	}
	if (n == 0) /* no memory for json-c: still say something, in valid JSON */
		n = (size_t)snprintf(line, sizeof(line) - 1,
				     "{\"level\":\"%s\",\"msg\":\"(no memory to encode this "
				     "line)\",\"time\":\"%s\"}",
				     level_names[lvl], time);
	line[n++] = '\n';
	write_line(line, n);
}

static void write_text(const char *msg, size_t len)
{
	char line[TEXT_LINE_MAX];
	size_t n = strlen(text_prefix);
	if (len > TEXT_LINE_MAX - 1 - n)
		len = TEXT_LINE_MAX - 1 - n;
	memcpy(line, text_prefix, n);
	memcpy(line + n, msg, len);
	n += len;
	line[n++] = '\n';
	write_line(line, n);
}

/* Prints one line at lvl (the caller checked the level). errno is kept: callers may log and
 * then return -errno. */
static void vlog(enum log_level lvl, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[MSG_CAP];
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m >= 0) {
		size_t len = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
		if (atomic_load_explicit(&out_format, memory_order_relaxed) == LOG_FORMAT_JSON)
			write_json(lvl, msg, len);
		else
			write_text(msg, len);
	}
	errno = saved;
}

static void log_at(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_at(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, fmt, ap);
	va_end(ap);
}

void log_set_program(const char *name)
{
	snprintf(text_prefix, sizeof(text_prefix), "%.*s: ", LOG_PROGRAM_MAX, name);
}

int log_open(const char *path, enum log_level level, enum log_format format, struct verr *e)
{
	if ((unsigned)level > LOG_LEVEL_DEBUG || (unsigned)format > LOG_FORMAT_JSON)
		return verr_set(e, -EINVAL, "log: no level %d or no format %d", (int)level,
				(int)format);
	int fd = STDERR_FILENO;
	if (path && strcmp(path, "-") != 0) {
		if (!*path)
			return verr_set(e, -EINVAL,
					"--log: the path is empty: give a file, or - for stderr");
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			int err = errno;
			return verr_set(e, -err,
					"--log %s: cannot open it: %s: give a file in a directory "
					"that exists and that vmm may write to, or - for stderr",
					path, strerror(err));
		}
	}
	int old = atomic_exchange(&out_fd, fd);
	if (old != STDERR_FILENO && old != fd)
		close(old);
	atomic_store(&out_format, (int)format);
	log_set_level(level);
	if (format == LOG_FORMAT_JSON) {
		/* json-c seeds its key hash on the first object (getrandom): do it here, before
		 * any thread is sandboxed, so a JSON line never depends on the filters. */
		char buf[128];
		(void)json_encode(LOG_LEVEL_INFO, "", 0, "", buf, sizeof(buf));
	}
	return 0;
}

void log_close(void)
{
	int old = atomic_exchange(&out_fd, STDERR_FILENO);
	if (old != STDERR_FILENO)
		close(old);
}

void vmm_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
}

void vmm_warn(const char *fmt, ...)
{
	if (!log_enabled(LOG_LEVEL_WARN))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, fmt, ap);
	va_end(ap);
}

void vmm_info(const char *fmt, ...)
{
	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

void vmm_debug_print(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_DEBUG, fmt, ap);
	va_end(ap);
}

/* Whether a rate-limited line may be printed now. Lock-free: the thread that moves the window on
 * resets the count and reports what the last window dropped; a drop that races with the move is
 * reported with the next window's, never lost. */
static bool ratelimit_pass(struct log_ratelimit *rl, unsigned burst, enum log_level lvl)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	long long start = atomic_load(&rl->window_start_ns);
	if (now - start >= 1000000000LL &&
	    atomic_compare_exchange_strong(&rl->window_start_ns, &start, now)) {
		atomic_store(&rl->printed, 0);
		unsigned n = atomic_exchange(&rl->suppressed, 0);
		if (n)
			log_at(lvl, "(%u similar messages suppressed)", n);
	}
	if (atomic_fetch_add(&rl->printed, 1) >= burst) {
		atomic_fetch_add(&rl->suppressed, 1);
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
		return false;
	}
	return true;
}

void vmm_log_ratelimited(struct log_ratelimit *rl, unsigned burst, const char *fmt, ...)
{
	if (!ratelimit_pass(rl, burst, LOG_LEVEL_ERROR))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
}

void vmm_warn_ratelimited(struct log_ratelimit *rl, unsigned burst, const char *fmt, ...)
{
	if (!log_enabled(LOG_LEVEL_WARN) || !ratelimit_pass(rl, burst, LOG_LEVEL_WARN))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, fmt, ap);
	va_end(ap);
}

int verr_set(struct verr *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		e->code = code;
	}
	return code;
}

void str_appendf(char *buf, size_t cap, size_t *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(*at < cap ? buf + *at : NULL, *at < cap ? cap - *at : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n;
}
