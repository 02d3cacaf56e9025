/* Logging tests (vmm/log.c): the text line, JSON lines parsed back with json-c, levels, --log
 * files, hostile message bytes, the rate limiter and its drop counter, whole lines from 8 threads
 * at once (file and pipe), a forked child, and the UTC time stamp against gmtime_r. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static unsigned nfiles;

/* A new file name in the test's temporary directory. */
static const char *new_path(char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/log%u", dir, nfiles++);
	return buf;
}

/* The whole file, NUL-terminated (embedded NULs are kept; *len says where it ends). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

/* Starts logging to a new file; returns its path in buf. */
static const char *log_to_file(char *buf, size_t cap, enum log_level lvl, enum log_format fmt)
{
	struct verr e = {0};
	new_path(buf, cap);
	assert_int_equal(log_open(buf, lvl, fmt, &e), 0);
	return buf;
}

/* Ends logging to the file and returns what it holds. */
static char *finish(const char *path, size_t *len)
{
	log_close();
	return slurp(path, len);
}

/* One JSON line (without its newline) parsed strictly, UTF-8 checked, nothing left over. */
static json_object *parse_line(const char *line, size_t len)
{
	json_tokener *tok = json_tokener_new();
	assert_non_null(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	if (!o)
		fail_msg("not one JSON value (%s): %.*s",
			 json_tokener_error_desc(json_tokener_get_error(tok)),
			 len > 200 ? 200 : (int)len, line);
	assert_int_equal(json_tokener_get_parse_end(tok), len);
	json_tokener_free(tok);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no key \"%s\"", key);
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* Checks a time stamp has the form 2026-12-01T14:00:30.123456Z and is within 5 s of now. */
static void check_time(const char *t)
{
	assert_int_equal(strlen(t), 27);
	int y, mo, d, h, mi, s;
	long us;
	char z;
	assert_int_equal(
	    sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%6ld%c", &y, &mo, &d, &h, &mi, &s, &us, &z), 8);
	assert_int_equal(z, 'Z');
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = s};
	time_t when = timegm(&tm);
	time_t now = time(NULL);
	assert_true(when <= now + 1 && when >= now - 5);
}

/* Splits buf into its lines (each must end with '\n'); returns how many. */
static size_t split_lines(char *buf, size_t len, char **lines, size_t max)
{
	size_t n = 0;
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl); /* the last line is whole too */
		*nl = 0;
		assert_true(n < max);
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

static int group_setup(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/test_log.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char p[128];
	for (unsigned i = 0; i < nfiles; i++) {
		snprintf(p, sizeof(p), "%s/log%u", dir, i);
		unlink(p);
	}
	return rmdir(dir);
}

/* Each test starts and ends with the defaults: stderr, info, text, not verbose. */
static int reset(void **state)
{
	(void)state;
	log_close();
	vmm_verbose = false;
	return log_open(NULL, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
}

static void parse_names(void **state)
{
	(void)state;
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	for (unsigned i = 0; i < 4; i++) {
		enum log_level l = LOG_LEVEL_ERROR + 99;
		assert_int_equal(log_parse_level(levels[i], &l), 0);
		assert_int_equal(l, i);
	}
	enum log_format f = LOG_FORMAT_TEXT;
	assert_int_equal(log_parse_format("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_parse_format("text", &f), 0);
	assert_int_equal(f, LOG_FORMAT_TEXT);

	static const char *const bad[] = {"", "Error", "warning", "verbose", "info ", "4", "json"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum log_level l = LOG_LEVEL_WARN;
		assert_int_equal(log_parse_level(bad[i], &l), -EINVAL);
		assert_int_equal(l, LOG_LEVEL_WARN); /* untouched */
	}
	enum log_level l = LOG_LEVEL_WARN;
	assert_int_equal(log_parse_level(NULL, &l), -EINVAL);
	static const char *const badf[] = {"", "JSON", "plain", "jsonl", "error"};
	for (unsigned i = 0; i < sizeof(badf) / sizeof(badf[0]); i++) {
		f = LOG_FORMAT_JSON;
		assert_int_equal(log_parse_format(badf[i], &f), -EINVAL);
		assert_int_equal(f, LOG_FORMAT_JSON);
	}
	assert_int_equal(log_parse_format(NULL, &f), -EINVAL);
	/* log_open refuses values outside the enums */
	struct verr e = {0};
	assert_int_equal(log_open(NULL, (enum log_level)7, LOG_FORMAT_TEXT, &e), -EINVAL);
	assert_int_equal(log_open(NULL, LOG_LEVEL_INFO, (enum log_format)2, &e), -EINVAL);
}

/* The default destination: today's exact "vmm: msg\n" on fd 2, also with "-". */
static void text_stderr(void **state)
{
	(void)state;
	char path[128];
	new_path(path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	assert_int_equal(log_fd(), STDERR_FILENO);
	vmm_log("hello %d %s", 42, "world");
	assert_int_equal(log_open("-", LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL), 0);
	assert_int_equal(log_fd(), STDERR_FILENO);
	vmm_log("%s", "");
	vmm_info("info line");
	errno = EBADF;
	vmm_log("errno is kept");
	assert_int_equal(errno, EBADF);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	size_t len;
	char *got = slurp(path, &len);
	assert_string_equal(got,
			    "vmm: hello 42 world\nvmm: \nvmm: info line\nvmm: errno is kept\n");
	free(got);
}

/* A long message is cut to a 1023-byte line, as it always was. */
static void text_long(void **state)
{
	(void)state;
	char path[128], big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	log_to_file(path, sizeof(path), LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
	vmm_log("%s", big);
	size_t len;
	char *got = finish(path, &len);
	assert_int_equal(len, 1023);
	assert_memory_equal(got, "vmm: xxx", 8);
	assert_int_equal(got[1021], 'x');
	assert_int_equal(got[1022], '\n');
	free(got);
}

/* --log FILE appends (never truncates), creates with mode 0640, and log_close goes back to fd 2. */
static void file_appends(void **state)
{
	(void)state;
	char path[128];
	new_path(path, sizeof(path));
	mode_t old = umask(022);
	struct verr e = {0};
	assert_int_equal(log_open(path, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, &e), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	int fd = log_fd();
	assert_true(fd > STDERR_FILENO);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(fd, F_GETFL) & O_APPEND);
	vmm_log("first");
	log_close();
	assert_int_equal(log_fd(), STDERR_FILENO);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */

	/* a second open of the same file (another run of vmm) appends after the first */
	assert_int_equal(log_open(path, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, &e), 0);
	vmm_log("second %u", 2u);
	/* opening another destination closes this one */
	char path2[128];
	new_path(path2, sizeof(path2));
	fd = log_fd();
	assert_int_equal(log_open(path2, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, &e), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	vmm_log("elsewhere");
	log_close();
	char *got = slurp(path, NULL);
	assert_string_equal(got, "vmm: first\nvmm: second 2\n");
	free(got);
	got = slurp(path2, NULL);
	assert_string_equal(got, "vmm: elsewhere\n");
	free(got);
}

/* A path that cannot be opened: -errno, one message naming it and saying what to do, and the
 * destination, level and format stay as they were. */
static void file_errors(void **state)
{
	(void)state;
	char path[160];
	snprintf(path, sizeof(path), "%s/no-such-dir/vmm.log", dir);
	struct verr e = {0};
	assert_int_equal(log_open(path, LOG_LEVEL_DEBUG, LOG_FORMAT_JSON, &e), -ENOENT);
	assert_int_equal(e.code, -ENOENT);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "No such file or directory"));
	assert_non_null(strstr(e.msg, "or - for stderr"));
	assert_int_equal(log_fd(), STDERR_FILENO);
	assert_false(log_enabled(LOG_LEVEL_DEBUG));
	assert_false(vmm_verbose);

	assert_int_equal(log_open(dir, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, &e), -EISDIR);
	assert_non_null(strstr(e.msg, dir));
	assert_int_equal(log_open("", LOG_LEVEL_INFO, LOG_FORMAT_TEXT, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "empty"));
	/* the text format is still on: a line is still "vmm: ..." */
	char p2[128];
	log_to_file(p2, sizeof(p2), LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
	vmm_log("still text");
	char *got = finish(p2, NULL);
	assert_string_equal(got, "vmm: still text\n");
	free(got);
}

/* JSON lines: three keys, in order, with the level's name, the text line's message and the time. */
static void json_lines(void **state)
{
	(void)state;
	char path[128];
	log_to_file(path, sizeof(path), LOG_LEVEL_DEBUG, LOG_FORMAT_JSON);
	vmm_log("disk %s: %d", "/a/b.img", -5);
	vmm_warn("w%c", '!');
	vmm_info("i");
	vmm_debug("d %u", 3u);
	size_t len;
	char *got = finish(path, &len);
	char *lines[8];
	assert_int_equal(split_lines(got, len, lines, 8), 4);
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	static const char *const msgs[] = {"disk /a/b.img: -5", "w!", "i", "d 3"};
	for (int i = 0; i < 4; i++) {
		json_object *o = parse_line(lines[i], strlen(lines[i]));
		assert_int_equal(json_object_object_length(o), 3);
		assert_string_equal(get_str(o, "level"), levels[i]);
		assert_string_equal(get_str(o, "msg"), msgs[i]);
		check_time(get_str(o, "time"));
		json_object_put(o);
		/* plain (no spaces added), keys in this order, slashes left as they are */
		assert_memory_equal(lines[i], "{\"level\":\"", 10);
		assert_non_null(strstr(lines[i], "\",\"msg\":\""));
		assert_non_null(strstr(lines[i], "\",\"time\":\""));
	}
	assert_non_null(strstr(lines[0], "/a/b.img"));
	free(got);
}

/* Quotes, backslashes, newlines, control bytes and invalid UTF-8: still one valid JSON line; bad
 * bytes become '?', valid multibyte characters stay. */
static void json_hostile(void **state)
{
	(void)state;
	char path[128];
	log_to_file(path, sizeof(path), LOG_LEVEL_INFO, LOG_FORMAT_JSON);
	const char *m = "q\"b\\s\nn\r\tt\x01\x1f\x7f|\xff|\xc3(|\xe2\x82|\xc0\xaf|\xed\xa0\x80|"
			"\xf4\x90\x80\x80|\x80|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xe2\x82";
	const char *want = "q\"b\\s\nn\r\tt\x01\x1f\x7f|?|?(|??|??|???|????|?|"
			   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|??";
	vmm_log("%s", m);
	vmm_log("%c%s", 0, "after a NUL");
	size_t len;
	char *got = finish(path, &len);
	char *lines[4];
	assert_int_equal(split_lines(got, len, lines, 4), 2);
	json_object *o = parse_line(lines[0], strlen(lines[0]));
	assert_string_equal(get_str(o, "msg"), want);
	json_object_put(o);
	o = parse_line(lines[1], strlen(lines[1]));
	json_object *v;
	assert_true(json_object_object_get_ex(o, "msg", &v));
	assert_int_equal(json_object_get_string_len(v), 12);
	assert_memory_equal(json_object_get_string(v), "\0after a NUL", 12);
	json_object_put(o);
	free(got);
}

/* A message of escapes longer than PIPE_BUF once encoded is shortened to fit one line. */
static void json_long(void **state)
{
	(void)state;
	char path[128], big[2000];
	memset(big, 1, sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	big[0] = (char)0xc3, big[1] = (char)0xa9; /* a character the cut must not split */
	log_to_file(path, sizeof(path), LOG_LEVEL_INFO, LOG_FORMAT_JSON);
	vmm_log("%s", big);
	memset(big, 'y', sizeof(big) - 1);
	vmm_log("%s", big);
	size_t len;
	char *got = finish(path, &len);
	char *lines[4];
	assert_int_equal(split_lines(got, len, lines, 4), 2);
	assert_true(strlen(lines[0]) + 1 <= PIPE_BUF);
	json_object *o = parse_line(lines[0], strlen(lines[0]));
	const char *msg = get_str(o, "msg");
	assert_true(strlen(msg) > 100);
	assert_memory_equal(msg, "\xc3\xa9\x01\x01", 4);
	for (size_t i = 2; msg[i]; i++)
		assert_int_equal(msg[i], 1);
	json_object_put(o);
	/* plain text is cut where the text line is: the same message in both formats */
	o = parse_line(lines[1], strlen(lines[1]));
	assert_int_equal(strlen(get_str(o, "msg")), 1023 - 6);
	json_object_put(o);
	free(got);
}

static unsigned evaluated;
static unsigned side_effect(void)
{
	return ++evaluated;
}

/* Lines below the level are not printed (nor, for vmm_debug, their arguments evaluated);
 * vmm_debug also prints with vmm_verbose, and level debug sets it. */
static void levels(void **state)
{
	(void)state;
	static const struct {
		enum log_level level;
		bool verbose;
		const char *want;
	} cases[] = {
	    {LOG_LEVEL_ERROR, false, "vmm: e\n"},
	    {LOG_LEVEL_WARN, false, "vmm: e\nvmm: w\nvmm: r\n"},
	    {LOG_LEVEL_INFO, false, "vmm: e\nvmm: w\nvmm: i\nvmm: r\n"},
	    {LOG_LEVEL_DEBUG, false, "vmm: e\nvmm: w\nvmm: i\nvmm: d 1\nvmm: r\n"},
	    {LOG_LEVEL_ERROR, true, "vmm: e\nvmm: d 1\n"},
	    {LOG_LEVEL_INFO, true, "vmm: e\nvmm: w\nvmm: i\nvmm: d 1\nvmm: r\n"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[128];
		vmm_verbose = cases[i].verbose;
		log_to_file(path, sizeof(path), cases[i].level, LOG_FORMAT_TEXT);
		assert_int_equal(vmm_verbose,
				 cases[i].verbose || cases[i].level == LOG_LEVEL_DEBUG);
		evaluated = 0;
		vmm_log("e");
		vmm_warn("w");
		vmm_info("i");
		vmm_debug("d %u", side_effect());
		static struct log_ratelimit rl;
		vmm_warn_ratelimited(&rl, 100, "r");
		char *got = finish(path, NULL);
		assert_string_equal(got, cases[i].want);
		assert_int_equal(evaluated, strstr(cases[i].want, "d 1") ? 1 : 0);
		free(got);
		for (int l = LOG_LEVEL_ERROR; l <= LOG_LEVEL_DEBUG; l++)
			assert_int_equal(log_enabled((enum log_level)l), l <= (int)cases[i].level);
		vmm_verbose = false;
	}
	/* the error rate limiter prints at level error too */
	log_set_level(LOG_LEVEL_ERROR);
	char path[128];
	log_to_file(path, sizeof(path), LOG_LEVEL_ERROR, LOG_FORMAT_TEXT);
	static struct log_ratelimit rl;
	vmm_log_ratelimited(&rl, 1, "limited");
	char *got = finish(path, NULL);
	assert_string_equal(got, "vmm: limited\n");
	free(got);
}

/* Drops are counted process-wide, and the next window's first line says how many it dropped. */
static void ratelimit_counts(void **state)
{
	(void)state;
	char path[128];
	log_to_file(path, sizeof(path), LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
	static struct log_ratelimit rl;
	unsigned long long before = log_dropped();
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 10; i++)
		vmm_log_ratelimited(&rl, 3, "guest did %d", i);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	unsigned long long drops = log_dropped() - before;
	char *got = slurp(path, NULL);
	if (t1.tv_sec - t0.tv_sec < 1) { /* all in one window (unless the machine stalled) */
		assert_int_equal(drops, 7);
		assert_string_equal(got, "vmm: guest did 0\nvmm: guest did 1\nvmm: guest did 2\n");
	}
	free(got);
	/* a second later: the summary, then the line */
	struct timespec pause = {1, 50 * 1000 * 1000};
	nanosleep(&pause, NULL);
	vmm_log_ratelimited(&rl, 3, "later");
	assert_int_equal(log_dropped() - before, drops);
	got = finish(path, NULL);
	char want[64];
	snprintf(want, sizeof(want), "vmm: (%llu similar messages suppressed)\nvmm: later\n",
		 drops);
	assert_non_null(strstr(got, want));
	free(got);
}

#define THREADS 8
#define LINES	400

struct writer {
	pthread_t t;
	unsigned id;
	size_t pad; /* the message's padding: that many bytes */
	char base;  /* of this value plus the thread's id */
	struct log_ratelimit *rl;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char pad[4000];
	memset(pad, w->base + (int)w->id, w->pad);
	pad[w->pad] = 0;
	for (unsigned i = 0; i < LINES; i++) {
		if (w->rl)
			vmm_log_ratelimited(w->rl, 5, "t%u n%u %s", w->id, i, pad);
		else if (i % 2)
			vmm_info("t%u n%u %s", w->id, i, pad);
		else
			vmm_log("t%u n%u %s", w->id, i, pad);
	}
	return NULL;
}

/* Checks every line is one writer's whole line, and each (thread, n) came exactly once. */
static void check_whole(char *buf, size_t len, enum log_format fmt, size_t pad, char base)
{
	char **lines = calloc(THREADS * LINES + 1, sizeof(char *));
	assert_non_null(lines);
	size_t n = split_lines(buf, len, lines, THREADS * LINES + 1);
	assert_int_equal(n, THREADS * LINES);
	static bool seen[THREADS][LINES];
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n; i++) {
		const char *msg = lines[i];
		json_object *o = NULL;
		if (fmt == LOG_FORMAT_JSON) {
			o = parse_line(lines[i], strlen(lines[i]));
			msg = get_str(o, "msg");
		} else {
			assert_memory_equal(msg, "vmm: ", 5);
			msg += 5;
		}
		unsigned t, k;
		int at = 0;
		assert_int_equal(sscanf(msg, "t%u n%u %n", &t, &k, &at), 2);
		assert_true(t < THREADS && k < LINES);
		assert_false(seen[t][k]);
		seen[t][k] = true;
		size_t plen = strlen(msg + at);
		assert_int_equal(plen, pad);
		for (size_t j = 0; j < plen; j++)
			assert_int_equal(msg[at + j], base + (int)t);
		json_object_put(o);
	}
	free(lines);
}

static void run_writers(size_t pad, char base, struct log_ratelimit *rl)
{
	struct writer w[THREADS];
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (struct writer){.id = i, .pad = pad, .base = base, .rl = rl};
		assert_int_equal(pthread_create(&w[i].t, NULL, writer_main, &w[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(w[i].t, NULL);
}

static void threads_file(void **state)
{
	(void)state;
	for (int f = LOG_FORMAT_TEXT; f <= LOG_FORMAT_JSON; f++) {
		char path[128];
		log_to_file(path, sizeof(path), LOG_LEVEL_INFO, (enum log_format)f);
		run_writers(700, 'a', NULL);
		size_t len;
		char *got = finish(path, &len);
		check_whole(got, len, (enum log_format)f, 700, 'a');
		free(got);
	}
}

struct reader {
	pthread_t t;
	int fd;
	char *buf;
	size_t len, cap;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	for (;;) {
		if (r->len + 65536 > r->cap) {
			r->cap = r->cap * 2 + 65536;
			r->buf = realloc(r->buf, r->cap + 1);
			if (!r->buf)
				return NULL;
		}
		ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	return NULL;
}

/* Through a pipe (what a container engine may give), with JSON lines of nearly PIPE_BUF bytes. */
static void threads_pipe(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[1]);
	struct verr e = {0};
	assert_int_equal(log_open(path, LOG_LEVEL_INFO, LOG_FORMAT_JSON, &e), 0);
	close(p[1]); /* log_open's fd is now the only write end */
	struct reader r = {.fd = p[0]};
	assert_int_equal(pthread_create(&r.t, NULL, reader_main, &r), 0);
	run_writers(600, 1, NULL); /* \u0001 to \u0008: lines of about 3.7 KiB */
	log_close();
	pthread_join(r.t, NULL);
	close(p[0]);
	assert_non_null(r.buf);
	check_whole(r.buf, r.len, LOG_FORMAT_JSON, 600, 1);
	free(r.buf);
}

/* One rate limiter shared by 8 threads: every call is printed or counted as dropped. */
static void threads_ratelimit(void **state)
{
	(void)state;
	char path[128];
	log_to_file(path, sizeof(path), LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
	static struct log_ratelimit rl;
	unsigned long long before = log_dropped();
	run_writers(10, 'a', &rl);
	unsigned long long drops = log_dropped() - before;
	size_t len;
	char *got = finish(path, &len);
	size_t printed = 0, summarized = 0;
	for (char *p = got; (p = strstr(p, "vmm: ")) != NULL; p += 5) {
		unsigned long n;
		if (sscanf(p, "vmm: (%lu similar", &n) == 1)
			summarized += n;
		else
			printed++;
	}
	assert_int_equal(printed + drops, THREADS * LINES);
	assert_true(drops > 0);
	assert_true(summarized <= drops);
	free(got);
}

/* A forked child (vmm detaching) logs to the same file. */
static void after_fork(void **state)
{
	(void)state;
	char path[128];
	log_to_file(path, sizeof(path), LOG_LEVEL_INFO, LOG_FORMAT_JSON);
	vmm_log("parent");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vmm_info("child %d", 1);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	vmm_log("parent again");
	size_t len;
	char *got = finish(path, &len);
	char *lines[4];
	assert_int_equal(split_lines(got, len, lines, 4), 3);
	static const char *const want[] = {"parent", "child 1", "parent again"};
	for (int i = 0; i < 3; i++) {
		json_object *o = parse_line(lines[i], strlen(lines[i]));
		assert_string_equal(get_str(o, "msg"), want[i]);
		json_object_put(o);
	}
	free(got);
}

/* The time stamp against gmtime_r (allowed here: no sandbox), over leap days and centuries. */
static void time_stamp(void **state)
{
	(void)state;
	static const long long secs[] = {
	    0,
	    -1,
	    59,
	    86399,
	    86400,
	    951782400 /* 2000-02-29 */,
	    951868799,
	    951868800,
	    4107542400 /* 2100-03-01 */,
	    4107456000,
	    1796133630 /* 2026-12-01T14:00:30 */,
	    253402300799 /* 9999-12-31T23:59:59 */,
	    -86400 * 366LL,
	};
	for (unsigned i = 0; i < sizeof(secs) / sizeof(secs[0]) + 2000; i++) {
		time_t s =
		    i < sizeof(secs) / sizeof(secs[0])
			? (time_t)secs[i]
			: (time_t)(i - 13) * 1234567 * 97 + 13 * 3600 + 7; /* 3.8 years apart */
		if (s > 253402300799)
			break;
		struct timespec ts = {.tv_sec = s, .tv_nsec = 123456789};
		char got[64], want[64];
		assert_int_equal(log_format_time(&ts, got, sizeof(got)), 27);
		struct tm tm;
		assert_non_null(gmtime_r(&s, &tm));
		size_t n = strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want + n, sizeof(want) - n, ".123456Z");
		assert_string_equal(got, want);
	}
	struct timespec ts = {.tv_sec = 1796133630, .tv_nsec = 999};
	char buf[64];
	log_format_time(&ts, buf, sizeof(buf));
	assert_string_equal(buf, "2026-12-01T14:00:30.000000Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(parse_names, reset, reset),
	    cmocka_unit_test_setup_teardown(text_stderr, reset, reset),
	    cmocka_unit_test_setup_teardown(text_long, reset, reset),
	    cmocka_unit_test_setup_teardown(file_appends, reset, reset),
	    cmocka_unit_test_setup_teardown(file_errors, reset, reset),
	    cmocka_unit_test_setup_teardown(json_lines, reset, reset),
	    cmocka_unit_test_setup_teardown(json_hostile, reset, reset),
	    cmocka_unit_test_setup_teardown(json_long, reset, reset),
	    cmocka_unit_test_setup_teardown(levels, reset, reset),
	    cmocka_unit_test_setup_teardown(ratelimit_counts, reset, reset),
	    cmocka_unit_test_setup_teardown(threads_file, reset, reset),
	    cmocka_unit_test_setup_teardown(threads_pipe, reset, reset),
	    cmocka_unit_test_setup_teardown(threads_ratelimit, reset, reset),
	    cmocka_unit_test_setup_teardown(after_fork, reset, reset),
	    cmocka_unit_test_setup_teardown(time_stamp, reset, reset),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
