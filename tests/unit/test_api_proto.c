/* The control API's codec and client (vmm/api/api_proto.c) and `vmm ctl` (vmm/api/ctl.c): every op
 * parses, every class of bad request is refused with a message naming the key, format and parse
 * agree, replies are one line of JSON, and the client reads exactly one reply line from a socket
 * (over-long replies and silence refused), and ctl_main against a fake server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/api/api_proto.h"
#include "vmm/api/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int parse_str(const char *s, struct api_request *r, struct verr *e)
{
	memset(e, 0, sizeof(*e));
	return api_request_parse(s, strlen(s), r, e);
}

static void every_op_parses(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		enum api_op op;
		uint32_t timeout_ms;
		int signal;
	} ok[] = {
	    {"{\"op\":\"state\"}", API_OP_STATE, 0, 0},
	    {"{\"op\":\"start\"}\n", API_OP_START, 0, 0},
	    {"{\"v\":1,\"op\":\"pause\"}\n", API_OP_PAUSE, 0, 0},
	    {"  { \"op\" : \"resume\" , \"v\" : 1 }  \r\n", API_OP_RESUME, 0, 0},
	    {"{\"op\":\"stop\"}", API_OP_STOP, API_STOP_TIMEOUT_DEFAULT_MS, 0},
	    {"{\"op\":\"stop\",\"timeout_ms\":0}", API_OP_STOP, 0, 0},
	    {"{\"op\":\"stop\",\"timeout_ms\":3600000}\n", API_OP_STOP, 3600000, 0},
	    {"{\"timeout_ms\":250,\"op\":\"stop\"}", API_OP_STOP, 250, 0},
	    {"{\"op\":\"signal\",\"signal\":15}", API_OP_SIGNAL, 0, 15},
	    {"{\"op\":\"signal\",\"signal\":1}", API_OP_SIGNAL, 0, 1},
	    {"{\"op\":\"signal\",\"signal\":64,\"v\":1}", API_OP_SIGNAL, 0, 64},
	    {"{\"op\":\"exec\"}\n", API_OP_EXEC, 0, 0},
	    {"{\"op\":\"metrics\"}", API_OP_METRICS, 0, 0},
	    {"{\"op\":\"snapshot\"}", API_OP_SNAPSHOT, 0, 0},
	    {"{\"o\\u0070\":\"st\\u0061te\"}", API_OP_STATE, 0, 0}, /* escapes are JSON */
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct api_request r;
		struct verr e;
		int ret = parse_str(ok[i].line, &r, &e);
		if (ret != 0)
			fail_msg("'%s': %s", ok[i].line, e.msg);
		assert_int_equal(r.op, ok[i].op);
		assert_int_equal(r.timeout_ms, ok[i].timeout_ms);
		assert_int_equal(r.signal, ok[i].signal);
	}
	for (int op = 0; op < API_OP_COUNT; op++)
		assert_non_null(api_op_name((enum api_op)op));
	assert_string_equal(api_op_name(API_OP_METRICS), "metrics");
	assert_null(api_op_name(API_OP_COUNT));
	assert_null(api_op_name((enum api_op) - 1));
}

/* Every class of bad request: -EINVAL, one line, naming what is wrong. */
static void bad_requests_are_refused(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		size_t len; /* 0: strlen */
		const char *says;
	} bad[] = {
	    {"{\"op\":\"state\",\"bogus\":1}", 0,
	     "unknown key \"bogus\": a state request takes only op and v"},
	    {"{\"op\":\"stop\",\"x\":1}", 0,
	     "unknown key \"x\": a stop request takes only op, v and timeout_ms"},
	    {"{}", 0, "no \"op\""},
	    {"{\"v\":1}", 0, "no \"op\""},
	    {"{\"op\":\"reboot\"}", 0, "unknown op \"reboot\": send one of state, start"},
	    {"{\"op\":\"State\"}", 0, "unknown op \"State\""},
	    {"{\"op\":1}", 0, "\"op\" is 1: send a string"},
	    {"{\"op\":null}", 0, "\"op\" is null"},
	    {"{\"op\":[\"state\"]}", 0, "\"op\" is an array"},
	    {"{\"op\":\"state\",\"v\":2}", 0,
	     "protocol version 2 is not spoken here: this vmm speaks version 1"},
	    {"{\"op\":\"state\",\"v\":0}", 0, "protocol version 0"},
	    {"{\"op\":\"state\",\"v\":\"1\"}", 0,
	     "\"v\" (the protocol version) is a string: send \"v\":1"},
	    {"{\"op\":\"state\",\"v\":1.0}", 0, "\"v\" (the protocol version) is 1.0"},
	    {"{\"op\":\"stop\",\"timeout_ms\":\"10\"}", 0,
	     "\"timeout_ms\" is a string: send an integer from 0 to 3600000"},
	    {"{\"op\":\"stop\",\"timeout_ms\":1.5}", 0, "\"timeout_ms\" is 1.5"},
	    {"{\"op\":\"stop\",\"timeout_ms\":true}", 0, "\"timeout_ms\" is true"},
	    {"{\"op\":\"stop\",\"timeout_ms\":-1}", 0, "\"timeout_ms\" is -1, out of range"},
	    {"{\"op\":\"stop\",\"timeout_ms\":3600001}", 0,
	     "\"timeout_ms\" is 3600001, out of range"},
	    {"{\"op\":\"stop\",\"timeout_ms\":99999999999999999999999}", 0,
	     "\"timeout_ms\" is 18446744073709551615, out of range"},
	    {"{\"op\":\"signal\"}", 0, "a signal request needs \"signal\""},
	    {"{\"op\":\"signal\",\"signal\":0}", 0,
	     "\"signal\" is 0, out of range: send an integer from 1 to 64"},
	    {"{\"op\":\"signal\",\"signal\":65}", 0, "\"signal\" is 65, out of range"},
	    {"{\"op\":\"signal\",\"signal\":\"TERM\"}", 0, "\"signal\" is a string"},
	    {"{\"op\":\"signal\",\"signal\":NaN}", 0, "\"signal\" is NaN"},
	    {"{\"op\":\"state\",\"timeout_ms\":5}", 0,
	     "\"timeout_ms\" does not belong to a state request (only stop takes it)"},
	    {"{\"op\":\"stop\",\"signal\":9}", 0,
	     "\"signal\" does not belong to a stop request (only signal takes it)"},
	    {"{\"op\":\"state\",\"op\":\"stop\"}", 0, "key \"op\" is given twice"},
	    {"{\"op\":\"stop\",\"timeout_ms\":1,\"timeout_ms\":2}", 0,
	     "key \"timeout_ms\" is given twice"},
	    {"{\"op\":\"state\",\"o\\u0070\":\"stop\"}", 0, "key \"op\" is given twice"},
	    {"{\"op\":\"state\",\"x\":{\"a\":1,\"a\":2}}", 0, "unknown key \"x\""},
	    {"[\"state\"]", 0, "not a JSON object (it starts with '[')"},
	    {"\"state\"", 0, "not a JSON object"},
	    {"15", 0, "not a JSON object"},
	    {"", 0, "the request is empty"},
	    {"\n", 0, "the request is empty"},
	    {"{\"op\":\"state\"} x", 0, "not valid JSON at byte 15"},
	    {"{\"op\":\"state\"}{}", 0, "not valid JSON at byte 14"},
	    {"{\"op\":\"state\"}\n{\"op\":\"stop\"}", 0, "byte 14 of the request is a newline"},
	    {"{\"op\":\"state\"", 0, "ends before its JSON object does"},
	    {"{\"op\":\"state\",}", 0, "not valid JSON at byte 14"},
	    {"{op:\"state\"}", 0, "not valid JSON at byte 1"},
	    {"{'op':'state'}", 0, "byte 1 of the request is a single quote"},
	    {"/* */{\"op\":\"state\"}", 0, "not a JSON object (it starts with '/')"},
	    {"{\"op\":\"state\"/* */}", 0, "not valid JSON"},
	    {"{\"op\":\"sta\\u0000te\"}", 0, "byte 10 of the request starts a \\u0000 escape"},
	    {"{\"op\\u0000x\":\"state\"}", 0, "starts a \\u0000 escape"},
	    {"{\"op\":\"st\tate\"}", 0, "raw control character (0x09) in a string"},
	    {"{\"op\":\"state\"}\x01", 0, "control character (0x01)"},
	    {"{\"op\":\"state\"\x00}", 15, "byte 13 of the request is a NUL"},
	    {"{\"op\":\"st\xff\"}", 0, "byte 9 of the request (0xff) is not valid UTF-8"},
	    {"{\"op\":\"\xc0\xaf\"}", 0, "(0xc0) is not valid UTF-8"},	       /* overlong '/' */
	    {"{\"op\":\"\xed\xa0\x80\"}", 0, "(0xed) is not valid UTF-8"},     /* a surrogate */
	    {"{\"op\":\"\xf4\x90\x80\x80\"}", 0, "(0xf4) is not valid UTF-8"}, /* > U+10FFFF */
	    {"{\"op\":\"\xe2\x82\"}", 0, "(0xe2) is not valid UTF-8"},	       /* cut short */
	    {"{\"op\":\"state\"}\xc3\xa9", 0, "non-ASCII character outside a string"},
	    {"{\"op\":\"\xc3\xa9t\xc3\xa9\"}", 0, "unknown op \"\\xc3\\xa9t\\xc3\\xa9\""},
	    {"{\"a\":[[[[[[[[[1]]]]]]]]]}", 0, "nests deeper than 8 levels"},
	    {"{\"op\":\"state\",\"k\\\"\\\\\\n\":1}", 0, "unknown key \"k\\x22\\x5c\\x0a\""},
	    {"{\"op\":\"state\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}", 0,
	     "unknown key \"aaaaaaaaaaaaaaaaaaaaaaaa...\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct api_request r;
		struct verr e = {0};
		memset(&r, 0xa5, sizeof(r));
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].line);
		int ret = api_request_parse(bad[i].line, len, &r, &e);
		if (ret != -EINVAL)
			fail_msg("case %zu '%s': %d, not -EINVAL", i, bad[i].line, ret);
		assert_int_equal(e.code, -EINVAL);
		if (!strstr(e.msg, bad[i].says))
			fail_msg("case %zu '%s': \"%s\" does not say \"%s\"", i, bad[i].line, e.msg,
				 bad[i].says);
		assert_null(strchr(e.msg, '\n'));
		assert_int_equal(r.op, 0);
		assert_int_equal(r.timeout_ms, 0);
		assert_int_equal(r.signal, 0);
	}
	/* An error message stays one line of printable text, whatever the key held. */
	struct api_request r;
	struct verr e;
	assert_int_equal(parse_str("{\"op\":\"\\u001b[2J\\r\"}", &r, &e), -EINVAL);
	for (const char *p = e.msg; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
}

static void size_limits(void **state)
{
	(void)state;
	static char line[API_REQUEST_MAX + 2];
	struct api_request r;
	struct verr e;
	/* {"op":"state"   ...spaces...   }\n: exactly API_REQUEST_MAX bytes with the newline */
	memset(line, ' ', sizeof(line));
	memcpy(line, "{\"op\":\"state\"", 13);
	line[API_REQUEST_MAX - 2] = '}';
	line[API_REQUEST_MAX - 1] = '\n';
	assert_int_equal(api_request_parse(line, API_REQUEST_MAX, &r, &e), 0);
	assert_int_equal(r.op, API_OP_STATE);
	/* the same 4095 bytes without their newline */
	assert_int_equal(api_request_parse(line, API_REQUEST_MAX - 1, &r, &e), 0);
	/* one byte more, with or without a newline */
	line[API_REQUEST_MAX - 1] = '}';
	line[API_REQUEST_MAX - 2] = ' ';
	assert_int_equal(api_request_parse(line, API_REQUEST_MAX, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "longer than 4096 bytes"));
	line[API_REQUEST_MAX] = '\n';
	assert_int_equal(api_request_parse(line, API_REQUEST_MAX + 1, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "longer than 4096 bytes"));
}

/* 64 KiB of garbage, whole and in prefixes of every length up to the limit: refused, no crash. */
static void garbage_is_refused(void **state)
{
	(void)state;
	enum { N = 64 * 1024 };
	char *g = malloc(N);
	assert_non_null(g);
	uint32_t x = 12345;
	for (size_t i = 0; i < N; i++) {
		x = x * 1103515245 + 12345;
		g[i] = (char)(x >> 16);
	}
	struct api_request r;
	struct verr e;
	assert_int_equal(api_request_parse(g, N, &r, &e), -EINVAL);
	for (size_t len = 0; len <= API_REQUEST_MAX; len += 7)
		assert_int_equal(api_request_parse(g, len, &r, &e), -EINVAL);
	memset(g, '[', N);
	memcpy(g, "{\"a\":", 5);
	assert_int_equal(api_request_parse(g, N, &r, &e), -EINVAL);
	assert_int_equal(api_request_parse(g, API_REQUEST_MAX - 1, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "nests deeper"));
	free(g);
}

static void format_parse_round_trip(void **state)
{
	(void)state;
	struct api_request in[] = {
	    {.op = API_OP_STATE},
	    {.op = API_OP_START},
	    {.op = API_OP_PAUSE},
	    {.op = API_OP_RESUME},
	    {.op = API_OP_STOP, .timeout_ms = 0},
	    {.op = API_OP_STOP, .timeout_ms = API_STOP_TIMEOUT_DEFAULT_MS},
	    {.op = API_OP_STOP, .timeout_ms = API_STOP_TIMEOUT_MAX_MS},
	    {.op = API_OP_SIGNAL, .signal = 1},
	    {.op = API_OP_SIGNAL, .signal = 64},
	    {.op = API_OP_EXEC},
	    {.op = API_OP_METRICS},
	    {.op = API_OP_SNAPSHOT},
	};
	char buf[256];
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		int n = api_request_format(&in[i], buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal((size_t)n, strlen(buf));
		assert_int_equal(buf[n - 1], '\n');
		assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
		struct api_request out;
		struct verr e;
		assert_int_equal(api_request_parse(buf, (size_t)n, &out, &e), 0);
		assert_int_equal(out.op, in[i].op);
		assert_int_equal(out.timeout_ms, in[i].timeout_ms);
		assert_int_equal(out.signal, in[i].signal);
		/* every cap short of the line and its NUL is refused */
		assert_int_equal(api_request_format(&in[i], buf, (size_t)n), -E2BIG);
		assert_int_equal(api_request_format(&in[i], buf, (size_t)n + 1), n);
	}
	assert_int_equal(api_request_format(&in[0], buf, 0), -E2BIG);
	/* only what the op takes is written */
	struct api_request mixed = {.op = API_OP_STATE, .timeout_ms = 5, .signal = 9};
	assert_true(api_request_format(&mixed, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "{\"v\":1,\"op\":\"state\"}\n");
	struct api_request stop = {.op = API_OP_STOP, .timeout_ms = 1500};
	assert_true(api_request_format(&stop, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "{\"v\":1,\"op\":\"stop\",\"timeout_ms\":1500}\n");
	/* what the parser would refuse is not written */
	struct api_request badr[] = {
	    {.op = API_OP_COUNT},
	    {.op = API_OP_STOP, .timeout_ms = API_STOP_TIMEOUT_MAX_MS + 1},
	    {.op = API_OP_SIGNAL, .signal = 0},
	    {.op = API_OP_SIGNAL, .signal = 65},
	};
	for (size_t i = 0; i < sizeof(badr) / sizeof(badr[0]); i++)
		assert_int_equal(api_request_format(&badr[i], buf, sizeof(buf)), -EINVAL);
}

/* A line is one JSON object, its only '\n' at the end; returns it parsed. */
static struct json_object *check_line(const char *line)
{
	assert_non_null(line);
	size_t n = strlen(line);
	assert_true(n >= 2);
	assert_ptr_equal(strchr(line, '\n'), line + n - 1);
	struct json_tokener *tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)n);
	assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
	assert_int_equal(json_tokener_get_parse_end(tok), n);
	json_tokener_free(tok);
	assert_true(json_object_is_type(o, json_type_object));
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "v", &v));
	assert_int_equal(json_object_get_int(v), API_VERSION);
	return o;
}

static void reply_lines(void **state)
{
	(void)state;
	struct json_object *r = api_reply_ok();
	assert_non_null(r);
	json_object_object_add(r, "state", json_object_new_string("running"));
	json_object_object_add(r, "note",
			       json_object_new_string("two\nlines\tand \"quotes\" \xff"));
	struct json_object *dev = json_object_new_array();
	json_object_array_add(dev, json_object_new_int(3));
	json_object_object_add(r, "devices", dev);
	char *line = api_reply_line(r);
	struct json_object *o = check_line(line);
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "ok", &v));
	assert_true(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "note", &v));
	assert_string_equal(json_object_get_string(v), "two\nlines\tand \"quotes\" ?");
	json_object_put(o);
	free(line);
	assert_null(api_reply_line(NULL));

	line = api_error_line("bad key \"%s\": %d\nsecond line\x01 \xc3\xa9 \xc3", "x", 7);
	o = check_line(line);
	assert_true(json_object_object_get_ex(o, "ok", &v));
	assert_false(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "error", &v));
	assert_string_equal(json_object_get_string(v), "bad key \"x\": 7 second line  \xc3\xa9 ?");
	json_object_put(o);
	free(line);

	/* a reply over API_REPLY_MAX becomes an error reply saying so */
	r = api_reply_ok();
	char *big = malloc(API_REPLY_MAX);
	memset(big, 'a', API_REPLY_MAX - 1);
	big[API_REPLY_MAX - 1] = '\0';
	json_object_object_add(r, "big", json_object_new_string(big));
	free(big);
	line = api_reply_line(r);
	o = check_line(line);
	assert_true(json_object_object_get_ex(o, "error", &v));
	assert_non_null(strstr(json_object_get_string(v), "more than the protocol's 1048576"));
	json_object_put(o);
	free(line);
}

/* The peer's end of a socketpair writes `data` in pieces, after `delay_ms` each. */
struct writer {
	int fd;
	const char *data;
	size_t len;
	size_t piece;
	int delay_ms;
	pthread_t t;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	for (size_t at = 0; at < w->len;) {
		if (w->delay_ms)
			sleep_ms(w->delay_ms);
		size_t n = w->len - at < w->piece ? w->len - at : w->piece;
		ssize_t k = send(w->fd, w->data + at, n, MSG_NOSIGNAL);
		if (k <= 0)
			break; /* the client closed its end */
		at += (size_t)k;
	}
	return NULL;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void client_reads_one_line(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *reply = "{\"v\":1,\"ok\":true,\"state\":\"running\"}\n";
	const char *stream =
	    "\x08\x00\x00\x00\x01\x00\x00\x00 agent bytes\n{\"not\":\"a reply\"}\n";
	assert_int_equal(write(sv[1], reply, strlen(reply)), (ssize_t)strlen(reply));
	assert_int_equal(write(sv[1], stream, strlen(stream)), (ssize_t)strlen(stream));

	struct api_request r = {.op = API_OP_EXEC};
	struct json_object *o;
	struct verr e = {0};
	assert_int_equal(api_client_call(sv[0], &r, 1000, &o, &e), 0);
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "state", &v));
	assert_string_equal(json_object_get_string(v), "running");
	json_object_put(o);

	/* the server got the request line; the bytes after the reply are still unread */
	char buf[256];
	ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "{\"v\":1,\"op\":\"exec\"}\n");
	n = recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, (ssize_t)strlen(stream));
	assert_memory_equal(buf, stream, strlen(stream));

	/* a reply that comes in pieces, then more bytes */
	static const char slow[] = "{\"v\":1,\"ok\":false,\"error\":\"not running\"}\nTAIL";
	struct writer w = {
	    .fd = sv[1], .data = slow, .len = sizeof(slow) - 1, .piece = 7, .delay_ms = 5};
	pthread_create(&w.t, NULL, writer_run, &w);
	r = (struct api_request){.op = API_OP_PAUSE};
	assert_int_equal(api_client_call(sv[0], &r, 5000, &o, &e), 0);
	pthread_join(w.t, NULL);
	assert_true(json_object_object_get_ex(o, "ok", &v));
	assert_false(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "error", &v));
	assert_string_equal(json_object_get_string(v), "not running");
	json_object_put(o);
	n = recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "TAIL", 4);
	close(sv[0]);
	close(sv[1]);
}

/* Descriptors go with the request's bytes (SCM_RIGHTS), once; more than API_MAX_FDS are not
 * sent. */
static void client_sends_fds(void **state)
{
	(void)state;
	int sv[2], p[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(p), 0);
	const char *reply = "{\"v\":1,\"ok\":true}\n";
	assert_int_equal(write(sv[1], reply, strlen(reply)), (ssize_t)strlen(reply));
	struct api_request r = {.op = API_OP_SNAPSHOT};
	struct json_object *o;
	struct verr e = {0};
	assert_int_equal(api_client_call_fds(sv[0], &r, p, 2, 1000, &o, &e), 0);
	json_object_put(o);

	char buf[256];
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	ssize_t n = recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "{\"v\":1,\"op\":\"snapshot\"}\n");
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	assert_non_null(c);
	assert_int_equal(c->cmsg_type, SCM_RIGHTS);
	assert_int_equal(c->cmsg_len, CMSG_LEN(2 * sizeof(int)));
	int got[2];
	memcpy(got, CMSG_DATA(c), sizeof(got));
	/* the second is the pipe's write end: a byte through it reaches the read end */
	assert_int_equal(write(got[1], "x", 1), 1);
	assert_int_equal(read(p[0], buf, 1), 1);
	close(got[0]);
	close(got[1]);

	int many[API_MAX_FDS + 1] = {p[0], p[1], p[0]};
	assert_int_equal(api_client_call_fds(sv[0], &r, many, API_MAX_FDS + 1, 1000, &o, &e),
			 -EINVAL);
	assert_null(o);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void client_reply_limits(void **state)
{
	(void)state;
	struct api_request r = {.op = API_OP_METRICS};
	struct json_object *o;
	struct verr e;
	int sv[2];

	/* a reply of exactly API_REPLY_MAX bytes with its newline is taken */
	char *big = malloc(API_REPLY_MAX + 64);
	assert_non_null(big);
	static const char head[] = "{\"v\":1,\"ok\":true,\"pad\":\"";
	memcpy(big, head, sizeof(head) - 1);
	memset(big + sizeof(head) - 1, 'p', API_REPLY_MAX - (sizeof(head) - 1) - 3);
	memcpy(big + API_REPLY_MAX - 3, "\"}\n", 3);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct writer w = {.fd = sv[1], .data = big, .len = API_REPLY_MAX, .piece = 100000};
	pthread_create(&w.t, NULL, writer_run, &w);
	assert_int_equal(api_client_call(sv[0], &r, 10000, &o, &e), 0);
	pthread_join(w.t, NULL);
	json_object_put(o);
	close(sv[0]);
	close(sv[1]);

	/* one byte more and it is refused, having read no more than API_REPLY_MAX */
	memset(big, 'x', API_REPLY_MAX + 64);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	w = (struct writer){.fd = sv[1], .data = big, .len = API_REPLY_MAX + 64, .piece = 100000};
	pthread_create(&w.t, NULL, writer_run, &w);
	assert_int_equal(api_client_call(sv[0], &r, 10000, &o, &e), -EMSGSIZE);
	assert_null(o);
	assert_non_null(strstr(e.msg, "no end of line in its first 1048576 bytes"));
	pthread_join(w.t, NULL); /* the rest fits in the socket's buffer */
	char tail[128];
	assert_int_equal(recv(sv[0], tail, sizeof(tail), MSG_DONTWAIT), 64);
	close(sv[0]);
	close(sv[1]);
	free(big);
}

static void client_times_out_and_checks(void **state)
{
	(void)state;
	struct api_request r = {.op = API_OP_STATE};
	struct json_object *o;
	struct verr e;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int64_t t0 = mono_ms();
	assert_int_equal(api_client_call(sv[0], &r, 150, &o, &e), -ETIMEDOUT);
	int64_t took = mono_ms() - t0;
	assert_true(took >= 140 && took < 3000);
	assert_non_null(strstr(e.msg, "no reply within 150 ms"));
	/* a part of a line, then silence */
	assert_int_equal(write(sv[1], "{\"v\":1,", 7), 7);
	assert_int_equal(api_client_call(sv[0], &r, 100, &o, &e), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);

	static const struct {
		const char *reply;
		int ret;
		const char *says;
	} cases[] = {
	    {"not json\n", -EPROTO, "not JSON"},
	    {"{\"v\":1,\"ok\":true} trailing\n", -EPROTO, "not JSON"},
	    {"[1]\n", -EPROTO, "not a JSON object"},
	    {"{\"ok\":true}\n", -EPROTO, "no integer \"v\""},
	    {"{\"v\":2,\"ok\":true}\n", -EPROTO, "protocol version 2"},
	    {"{\"v\":1,\"ok\":1}\n", -EPROTO, "no boolean \"ok\""},
	    {"{\"v\":1,\"ok\":false}\n", -EPROTO, "no string \"error\""},
	    {"{\"v\":1,\"ok\":tr", -ECONNRESET, "in the middle of its reply"},
	    {"", -ECONNRESET, "without a reply"},
	    {"{\"v\":1,\"ok\":false,\"error\":\"x\"}\n", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		size_t n = strlen(cases[i].reply);
		assert_int_equal(write(sv[1], cases[i].reply, n), (ssize_t)n);
		shutdown(sv[1], SHUT_WR);
		memset(&e, 0, sizeof(e));
		int ret = api_client_call(sv[0], &r, 1000, &o, &e);
		if (ret != cases[i].ret)
			fail_msg("reply '%s': %d (%s)", cases[i].reply, ret, e.msg);
		if (cases[i].says && !strstr(e.msg, cases[i].says))
			fail_msg("reply '%s': \"%s\" does not say \"%s\"", cases[i].reply, e.msg,
				 cases[i].says);
		if (ret == 0)
			json_object_put(o);
		else
			assert_null(o);
		close(sv[0]);
		close(sv[1]);
	}
	/* the peer gone: the send fails (no SIGPIPE) */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(api_client_call(sv[0], &r, 1000, &o, &e), -EPIPE);
	close(sv[0]);
	struct api_request bad = {.op = API_OP_SIGNAL, .signal = 99};
	assert_int_equal(api_client_call(-1, &bad, 1000, &o, &e), -EINVAL);
}

static char tmpdir[64];

static void set_path(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);
	assert_true(n < sizeof(a->sun_path));
	memcpy(a->sun_path, path, n + 1);
}

static void client_connects(void **state)
{
	(void)state;
	struct verr e;
	char path[256], longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(api_client_connect(longp, &e), -ENAMETOOLONG);
	assert_non_null(strstr(e.msg, "more than the 107 a Unix socket address holds"));
	assert_int_equal(api_client_connect("", &e), -EINVAL);

	snprintf(path, sizeof(path), "%s/none", tmpdir);
	assert_int_equal(api_client_connect(path, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "no socket at "));
	assert_non_null(strstr(e.msg, "is vmm running with --api-sock"));

	snprintf(path, sizeof(path), "%s/file", tmpdir);
	int f = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(f >= 0);
	close(f);
	assert_int_equal(api_client_connect(path, &e), -ECONNREFUSED);
	assert_non_null(strstr(e.msg, "nothing listens on "));
	snprintf(path, sizeof(path), "%s/file/sub", tmpdir);
	assert_int_equal(api_client_connect(path, &e), -ENOTDIR);

	/* bound but not listening, then listening */
	snprintf(path, sizeof(path), "%s/sock", tmpdir);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	set_path(&a, path);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(api_client_connect(path, &e), -ECONNREFUSED);
	assert_int_equal(listen(l, 1), 0);
	int fd = api_client_connect(path, &e);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	close(l);
	unlink(path);
}

/* A fake server for ctl_main: answers one connection's request line with `reply`. */
struct fake {
	int listen_fd;
	const char *reply;
	char request[512];
	pthread_t t;
};

static void *fake_run(void *arg)
{
	struct fake *f = arg;
	int c = accept(f->listen_fd, NULL, NULL);
	if (c < 0)
		return NULL;
	size_t have = 0;
	while (have < sizeof(f->request) - 1) {
		ssize_t n = read(c, f->request + have, 1);
		if (n <= 0)
			break;
		have++;
		if (f->request[have - 1] == '\n')
			break;
	}
	f->request[have] = '\0';
	if (f->reply)
		(void)!write(c, f->reply, strlen(f->reply));
	close(c);
	return NULL;
}

static char sock_path[128];

static void fake_start(struct fake *f, const char *reply)
{
	memset(f, 0, sizeof(*f));
	f->reply = reply;
	unlink(sock_path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	set_path(&a, sock_path);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->listen_fd, 1), 0);
	pthread_create(&f->t, NULL, fake_run, f);
}

static void fake_finish(struct fake *f)
{
	shutdown(f->listen_fd, SHUT_RDWR); /* wakes accept() when ctl never connected */
	pthread_join(f->t, NULL);
	close(f->listen_fd);
}

/* Runs ctl_main with stdout and stderr in out[] and err[]; returns its status. */
static char out[8192], err[2048];

static int ctl(const char *const *args)
{
	char *argv[16];
	int argc = 0;
	argv[argc++] = "ctl";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	FILE *fo = tmpfile(), *fe = tmpfile();
	int so = dup(1), se = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	int status = ctl_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	rewind(fo);
	rewind(fe);
	size_t n = fread(out, 1, sizeof(out) - 1, fo);
	out[n] = '\0';
	n = fread(err, 1, sizeof(err) - 1, fe);
	err[n] = '\0';
	fclose(fo);
	fclose(fe);
	return status;
}

#define CTL(...) ctl((const char *const[]){__VA_ARGS__, NULL})

static void ctl_bad_command_lines(void **state)
{
	(void)state;
	static const struct {
		const char *args[5];
		const char *says;
	} bad[] = {
	    {{"state"}, "vmm: ctl: no --api-sock PATH"},
	    {{"--api-sock", "/x"}, "vmm: ctl: no command: give one of state, start"},
	    {{"--api-sock"}, "vmm: ctl: option '--api-sock' needs a value"},
	    {{"--api-sock=", "state"}, "--api-sock: the path is empty"},
	    {{"--api-sock=/a", "--api-sock=/b", "state"}, "--api-sock given twice"},
	    {{"--api-sock=/a", "reboot"}, "unknown command 'reboot'"},
	    {{"--api-sock=/a", "exec"}, "exec is a command of its own"},
	    {{"--api-sock=/a", "--frob", "state"}, "unknown option '--frob'"},
	    {{"--api-sock=/a", "state", "now"}, "state takes no argument: drop 'now'"},
	    {{"--api-sock=/a", "signal", "1", "2"}, "unexpected argument '2'"},
	    {{"--api-sock=/a", "signal"}, "signal needs a signal"},
	    {{"--api-sock=/a", "signal", "0"}, "signal: '0' is not a signal"},
	    {{"--api-sock=/a", "signal", "65"}, "signal: '65' is not a signal"},
	    {{"--api-sock=/a", "signal", "SIGFOO"}, "signal: 'SIGFOO' is not a signal"},
	    {{"--api-sock=/a", "signal", "15x"}, "signal: '15x' is not a signal"},
	    {{"--api-sock=/a", "state", "--timeout", "5"}, "--timeout is for stop only"},
	    {{"--api-sock=/a", "stop", "--timeout", "3601"}, "--timeout: '3601' is not a number"},
	    {{"--api-sock=/a", "stop", "--timeout=-1"}, "--timeout: '-1' is not a number"},
	    {{"--api-sock=/a", "stop", "--timeout"}, "option '--timeout' needs a value"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int status = ctl(bad[i].args);
		if (status != 125 || !strstr(err, bad[i].says))
			fail_msg("case %zu: status %d, stderr \"%s\", wanted \"%s\"", i, status,
				 err, bad[i].says);
		assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
		assert_string_equal(out, "");
	}
	assert_int_equal(CTL("--help"), 0);
	assert_non_null(strstr(out, "Usage: vmm ctl --api-sock PATH COMMAND"));
	assert_string_equal(err, "");
}

static void ctl_against_a_server(void **state)
{
	(void)state;
	struct fake f;
	char opt[160];
	snprintf(opt, sizeof(opt), "--api-sock=%s", sock_path);

	fake_start(&f, "{\"v\":1,\"ok\":true,\"state\":\"running\",\"pid\":42}\n");
	assert_int_equal(CTL(opt, "state"), 0);
	fake_finish(&f);
	assert_string_equal(f.request, "{\"v\":1,\"op\":\"state\"}\n");
	/* pretty JSON of the reply without v and ok */
	struct json_object *o = json_tokener_parse(out);
	assert_non_null(o);
	assert_int_equal(json_object_object_length(o), 2);
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "pid", &v));
	assert_int_equal(json_object_get_int(v), 42);
	json_object_put(o);
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_string_equal(err, "");

	fake_start(&f, "{\"v\":1,\"ok\":true}\n");
	assert_int_equal(CTL("stop", "--timeout", "3", "--api-sock", sock_path), 0);
	fake_finish(&f);
	assert_string_equal(f.request, "{\"v\":1,\"op\":\"stop\",\"timeout_ms\":3000}\n");
	assert_string_equal(out, "");
	assert_string_equal(err, "");

	fake_start(&f, "{\"v\":1,\"ok\":true}\n");
	assert_int_equal(CTL(opt, "stop"), 0);
	fake_finish(&f);
	assert_string_equal(f.request, "{\"v\":1,\"op\":\"stop\",\"timeout_ms\":10000}\n");

	static const struct {
		const char *name;
		const char *sent;
	} sigs[] = {{"TERM", "15"},    {"SIGKILL", "9"}, {"hup", "1"},
		    {"sigusr1", "10"}, {"64", "64"},	 {"2", "2"}};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		fake_start(&f, "{\"v\":1,\"ok\":true}\n");
		assert_int_equal(CTL(opt, "signal", sigs[i].name), 0);
		fake_finish(&f);
		char want[64];
		snprintf(want, sizeof(want), "{\"v\":1,\"op\":\"signal\",\"signal\":%s}\n",
			 sigs[i].sent);
		assert_string_equal(f.request, want);
		assert_string_equal(out, "");
	}

	fake_start(&f,
		   "{\"v\":1,\"ok\":false,\"error\":\"the VM is not running (it is paused)\"}\n");
	assert_int_equal(CTL(opt, "pause"), 125);
	fake_finish(&f);
	assert_string_equal(err, "vmm: ctl: pause: the VM is not running (it is paused)\n");
	assert_string_equal(out, "");

	/* an error line that names the op already says it once */
	fake_start(&f,
		   "{\"v\":1,\"ok\":false,\"error\":\"pause: the VM is paused, not running\"}\n");
	assert_int_equal(CTL(opt, "pause"), 125);
	fake_finish(&f);
	assert_string_equal(err, "vmm: ctl: pause: the VM is paused, not running\n");
	fake_start(&f, "{\"v\":1,\"ok\":false,\"error\":\"pause:\"}\n");
	assert_int_equal(CTL(opt, "pause"), 125);
	fake_finish(&f);
	assert_string_equal(err, "vmm: ctl: pause: pause:\n");

	fake_start(&f, "garbage\n");
	assert_int_equal(CTL(opt, "metrics"), 125);
	fake_finish(&f);
	assert_non_null(strstr(err, "vmm: ctl: metrics: the reply is not JSON"));

	fake_start(&f, NULL); /* closes without a reply */
	assert_int_equal(CTL(opt, "resume"), 125);
	fake_finish(&f);
	assert_string_equal(err,
			    "vmm: ctl: resume: the server closed the connection without a reply\n");

	unlink(sock_path);
	assert_int_equal(CTL(opt, "start"), 125);
	assert_non_null(strstr(err, "vmm: ctl: start: no socket at "));
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_api_proto.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", tmpdir);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_op_parses),
	    cmocka_unit_test(bad_requests_are_refused),
	    cmocka_unit_test(size_limits),
	    cmocka_unit_test(garbage_is_refused),
	    cmocka_unit_test(format_parse_round_trip),
	    cmocka_unit_test(reply_lines),
	    cmocka_unit_test(client_reads_one_line),
	    cmocka_unit_test(client_sends_fds),
	    cmocka_unit_test(client_reply_limits),
	    cmocka_unit_test(client_times_out_and_checks),
	    cmocka_unit_test(client_connects),
	    cmocka_unit_test(ctl_bad_command_lines),
	    cmocka_unit_test(ctl_against_a_server),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	char p[128];
	snprintf(p, sizeof(p), "%s/file", tmpdir);
	unlink(p);
	unlink(sock_path);
	rmdir(tmpdir);
	return r;
}
