/* The agent protocol codec (guest/agent_proto.c): header encode/decode, START round trip, and
 * every way a START or a header is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest/agent_proto.h"

#include <errno.h>
#include <string.h>

static uint8_t buf[AGENT_MAX_PAYLOAD + 1];

static void header_round_trip_and_rejects(void **state)
{
	(void)state;
	uint8_t h[AGENT_HDR_SIZE];
	struct agent_hdr d;

	for (uint16_t t = AGENT_HELLO; t <= AGENT_SHUTDOWN; t++) {
		agent_hdr_encode(h, t, 1234);
		assert_int_equal(agent_hdr_decode(h, &d), 0);
		assert_int_equal(d.type, t);
		assert_int_equal(d.len, 1234);
		assert_int_equal(d.flags, 0);
	}
	static const uint8_t le[] = {0x10, 0x01, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00};
	assert_int_equal(agent_hdr_decode(le, &d), 0); /* little-endian on the wire */
	assert_int_equal(d.len, 0x110);
	assert_int_equal(d.type, AGENT_STDIN);

	agent_hdr_encode(h, AGENT_STDIN, AGENT_MAX_PAYLOAD);
	assert_int_equal(agent_hdr_decode(h, &d), 0);
	agent_hdr_encode(h, AGENT_STDIN, AGENT_MAX_PAYLOAD + 1);
	assert_int_equal(agent_hdr_decode(h, &d), -EMSGSIZE);
	assert_int_equal(d.len, AGENT_MAX_PAYLOAD + 1); /* so the caller can skip it */
	agent_hdr_encode(h, 0, 0);
	assert_int_equal(agent_hdr_decode(h, &d), -EPROTO);
	agent_hdr_encode(h, AGENT_SHUTDOWN + 1, 0);
	assert_int_equal(agent_hdr_decode(h, &d), -EPROTO);
	agent_hdr_encode(h, AGENT_STDIN, 3);
	h[7] = 0x80;
	assert_int_equal(agent_hdr_decode(h, &d), -EPROTO);
	assert_int_equal(d.len, 3);
}

static char *argv3[] = {"sh", "-c", "echo hi", NULL};
static char *env2[] = {"PATH=/bin", "A=", NULL};

static struct agent_start sample(void)
{
	struct agent_start s = {.flags = AGENT_START_TTY,
				.uid = 1000,
				.gid = 100,
				.rows = 24,
				.cols = 80,
				.cwd = "/home/u",
				.argc = 3,
				.envc = 2};
	s.argv = argv3;
	s.env = env2;
	return s;
}

static void start_round_trip(void **state)
{
	(void)state;
	struct agent_start s = sample(), d;
	const char *why = "unset";
	int len = agent_start_encode(&s, buf, sizeof(buf));
	assert_int_equal(len, 24 + 8 + 3 + 3 + 8 + 10 + 3);
	assert_int_equal(agent_start_decode(buf, (size_t)len, &d, &why), 0);
	assert_null(why);
	assert_int_equal(d.flags, AGENT_START_TTY);
	assert_int_equal(d.uid, 1000);
	assert_int_equal(d.gid, 100);
	assert_int_equal(d.rows, 24);
	assert_int_equal(d.cols, 80);
	assert_string_equal(d.cwd, "/home/u");
	assert_int_equal(d.argc, 3);
	assert_int_equal(d.envc, 2);
	for (int i = 0; i < 3; i++)
		assert_string_equal(d.argv[i], argv3[i]);
	assert_null(d.argv[3]);
	assert_string_equal(d.env[0], "PATH=/bin");
	assert_string_equal(d.env[1], "A=");
	assert_null(d.env[2]);
	agent_start_free(&d);
	assert_null(d.argv);

	s.envc = 0; /* no environment at all is allowed */
	len = agent_start_encode(&s, buf, sizeof(buf));
	assert_int_equal(agent_start_decode(buf, (size_t)len, &d, &why), 0);
	assert_null(d.env[0]);
	agent_start_free(&d);
}

static void start_encode_rejects(void **state)
{
	(void)state;
	struct agent_start s = sample();
	char *bad_env[] = {"NOEQUALS", NULL}, *lead_eq[] = {"=x", NULL}, *empty[] = {"", NULL};

	assert_int_equal(agent_start_encode(&s, buf, 30), -E2BIG);
	assert_int_equal(agent_start_encode(&s, buf, 10), -E2BIG);
	s.argc = 0;
	assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), -EINVAL);
	s = sample();
	s.argv = empty;
	s.argc = 1;
	assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), -EINVAL);
	s = sample();
	s.cwd = "relative";
	assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), -EINVAL);
	s = sample();
	s.env = bad_env;
	s.envc = 1;
	assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), -EINVAL);
	s.env = lead_eq;
	assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), -EINVAL);
	s = sample();
	s.argc = AGENT_MAX_ARGS + 1;
	assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), -E2BIG);
}

/* Expects the decoder to refuse buf[len], leaving nothing allocated. */
static void expect_refused(size_t len)
{
	struct agent_start d;
	const char *why = NULL;
	assert_int_equal(agent_start_decode(buf, len, &d, &why), -EPROTO);
	assert_non_null(why);
	assert_null(d.argv);
	assert_null(d.env);
}

static int encode_sample(void)
{
	struct agent_start s = sample();
	int len = agent_start_encode(&s, buf, sizeof(buf));
	assert_true(len > 0);
	return len;
}

static void start_decode_rejects(void **state)
{
	(void)state;
	int len = encode_sample();

	expect_refused(23); /* shorter than the fixed fields */
	expect_refused(0);
	expect_refused((size_t)len - 1); /* last string without its NUL */
	expect_refused((size_t)len - 3); /* a string missing */

	buf[(size_t)len] = 'x'; /* a byte left over */
	expect_refused((size_t)len + 1);

	len = encode_sample();
	agent_put_u32(buf, 2); /* unknown flag */
	expect_refused((size_t)len);

	len = encode_sample();
	agent_put_u32(buf + 16, 0); /* argc 0 */
	expect_refused((size_t)len);
	agent_put_u32(buf + 16, AGENT_MAX_ARGS + 1);
	expect_refused((size_t)len);
	agent_put_u32(buf + 16, 0xffffffffu);
	expect_refused((size_t)len);

	len = encode_sample();
	agent_put_u32(buf + 20, AGENT_MAX_ARGS + 1); /* envc */
	expect_refused((size_t)len);
	len = encode_sample();
	agent_put_u32(buf + 20, 3); /* more env entries than there are strings */
	expect_refused((size_t)len);

	len = encode_sample();
	buf[24] = 'h'; /* cwd "home/u": not absolute */
	expect_refused((size_t)len);

	len = encode_sample();
	buf[24 + 8] = 0; /* argv[0] empty: then the counts no longer match either */
	expect_refused((size_t)len);

	len = encode_sample();
	char *p = memchr(buf + 24, 'P', (size_t)len - 24); /* "PATH=/bin" */
	assert_non_null(p);
	p[4] = '_'; /* an env entry without '=' */
	expect_refused((size_t)len);

	len = encode_sample();
	assert_memory_equal(buf + len - 3, "A=", 3); /* the last string */
	buf[len - 3] = '=';			     /* "==": an entry starting with '=' */
	expect_refused((size_t)len);
}

/* An empty argv[0] alone (counts still right) is refused by its own rule. */
static void start_decode_empty_program(void **state)
{
	(void)state;
	static const uint8_t fixed[24] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					  0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
	memcpy(buf, fixed, sizeof(fixed));
	memcpy(buf + 24, "/\0\0", 3); /* cwd "/", argv[0] "" */
	expect_refused(27);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(header_round_trip_and_rejects), cmocka_unit_test(start_round_trip),
	    cmocka_unit_test(start_encode_rejects),	     cmocka_unit_test(start_decode_rejects),
	    cmocka_unit_test(start_decode_empty_program),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
