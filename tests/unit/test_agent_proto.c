/* The agent protocol codec (guest/agent_proto.c): header encode/decode, START round trip, and
 * every way a START or a header is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest/agent_proto.h"

#include <errno.h>
#include <stdint.h>
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
	le_put32(buf, 2); /* unknown flag */
	expect_refused((size_t)len);

	len = encode_sample();
	le_put32(buf + 16, 0); /* argc 0 */
	expect_refused((size_t)len);
	le_put32(buf + 16, AGENT_MAX_ARGS + 1);
	expect_refused((size_t)len);
	le_put32(buf + 16, 0xffffffffu);
	expect_refused((size_t)len);

	len = encode_sample();
	le_put32(buf + 20, AGENT_MAX_ARGS + 1); /* envc */
	expect_refused((size_t)len);
	len = encode_sample();
	le_put32(buf + 20, 3); /* more env entries than there are strings */
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

/* ---- the process settings section (AGENT_START_PROC) ---- */

static char *sysctls[] = {"kernel.domainname", "example.org", "net.ipv4.ping_group_range",
			  "0 2147483647", NULL};
static char *masked[] = {"/proc/kcore", "/sys/firmware", NULL};
static char *ro[] = {"/proc/sys", NULL};
static struct agent_bpf_insn prog[3] = {
    {.code = 0x20, .jt = 0, .jf = 0, .k = 0},
    {.code = 0x15, .jt = 1, .jf = 0, .k = 83},
    {.code = 0x06, .jt = 0, .jf = 0, .k = 0x7fff0000},
};

static struct agent_start proc_sample(void)
{
	struct agent_start s = sample();
	s.flags |= AGENT_START_PROC;
	s.proc_flags =
	    AGENT_PROC_NO_NEW_PRIVS | AGENT_PROC_CAPS | AGENT_PROC_UMASK | AGENT_PROC_OOM;
	s.umask = 027;
	s.oom_score_adj = -500;
	s.caps[AGENT_CAP_BOUNDING] = 1ull << 10;
	s.caps[AGENT_CAP_PERMITTED] = 1ull << 10 | 1ull << 40;
	s.caps[AGENT_CAP_AMBIENT] = 1ull << 40;
	s.ngroups = 2;
	s.groups[0] = 10;
	s.groups[1] = 4294967294u;
	s.nrlimits = 2;
	s.rlimits[0] = (struct agent_rlimit){.resource = 7, .soft = 100, .hard = 200};
	s.rlimits[1] = (struct agent_rlimit){.resource = 4, .soft = 0, .hard = UINT64_MAX};
	s.nsysctl = 2;
	s.sysctl = sysctls;
	s.nmasked = 2;
	s.masked = masked;
	s.nreadonly = 1;
	s.readonly = ro;
	s.nfilter = 3;
	s.filter = prog;
	return s;
}

static void proc_round_trip(void **state)
{
	(void)state;
	struct agent_start s = proc_sample(), d;
	const char *why = "unset";
	int len = agent_start_encode(&s, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(agent_start_decode(buf, (size_t)len, &d, &why), 0);
	assert_null(why);
	assert_int_equal(d.flags, AGENT_START_TTY | AGENT_START_PROC);
	assert_int_equal(d.proc_flags, s.proc_flags);
	assert_int_equal(d.umask, 027);
	assert_int_equal(d.oom_score_adj, -500);
	for (int i = 0; i < AGENT_CAP_SETS; i++)
		assert_true(d.caps[i] == s.caps[i]);
	assert_int_equal(d.ngroups, 2);
	assert_int_equal(d.groups[1], 4294967294u);
	assert_int_equal(d.nrlimits, 2);
	assert_int_equal(d.rlimits[0].resource, 7);
	assert_true(d.rlimits[0].soft == 100 && d.rlimits[0].hard == 200);
	assert_true(d.rlimits[1].hard == UINT64_MAX);
	assert_int_equal(d.nsysctl, 2);
	for (int i = 0; i < 4; i++)
		assert_string_equal(d.sysctl[i], sysctls[i]);
	assert_null(d.sysctl[4]);
	assert_string_equal(d.masked[1], "/sys/firmware");
	assert_null(d.masked[2]);
	assert_string_equal(d.readonly[0], "/proc/sys");
	assert_int_equal(d.nfilter, 3);
	assert_memory_equal(d.filter, prog, sizeof(prog));
	assert_string_equal(d.env[1], "A="); /* the strings before the section are intact */
	agent_start_free(&d);
	assert_null(d.filter);
	assert_null(d.sysctl);

	/* An empty section decodes to nothing */
	struct agent_start e = sample();
	e.flags |= AGENT_START_PROC;
	len = agent_start_encode(&e, buf, sizeof(buf));
	assert_int_equal(len, 24 + 8 + 3 + 3 + 8 + 10 + 3 + 76);
	assert_int_equal(agent_start_decode(buf, (size_t)len, &d, &why), 0);
	assert_int_equal(d.nfilter + d.nsysctl + d.nmasked + d.ngroups, 0);
	assert_null(d.masked[0]);
	agent_start_free(&d);
}

static void proc_encode_rejects(void **state)
{
	(void)state;
	struct agent_start s;
	char *bad_sysctl[] = {"kernel..x", "1", NULL};
	char *dotdot[] = {"/proc/../etc", NULL};
	char *rel[] = {"proc/kcore", NULL};

#define REFUSED(field_change, code)                                               \
	do {                                                                      \
		s = proc_sample();                                                \
		field_change;                                                     \
		assert_int_equal(agent_start_encode(&s, buf, sizeof(buf)), code); \
		assert_non_null(agent_proc_check(&s));                            \
	} while (0)
	REFUSED(s.umask = 01000, -EINVAL);
	REFUSED(s.oom_score_adj = 1001, -EINVAL);
	REFUSED(s.proc_flags |= 16, -EINVAL);
	REFUSED(s.caps[AGENT_CAP_EFFECTIVE] = 1ull << 41, -EINVAL);
	REFUSED((s.proc_flags &= ~AGENT_PROC_CAPS), -EINVAL);
	REFUSED(s.ngroups = 33, -EINVAL);
	REFUSED(s.rlimits[1].resource = 7, -EINVAL); /* repeated */
	REFUSED(s.rlimits[1].resource = 16, -EINVAL);
	REFUSED(s.rlimits[0].soft = 201, -EINVAL);
	REFUSED(s.sysctl = bad_sysctl; s.nsysctl = 1, -EINVAL);
	REFUSED(s.masked = dotdot; s.nmasked = 1, -EINVAL);
	REFUSED(s.readonly = rel, -EINVAL);
	REFUSED(s.nfilter = 4097, -EINVAL);
#undef REFUSED
	s = proc_sample();
	assert_null(agent_proc_check(&s));
	assert_int_equal(agent_start_encode(&s, buf, 200), -E2BIG);
}

/* The section of proc_sample encoded; returns the payload length and where the section starts. */
static int encode_proc(size_t *section)
{
	struct agent_start s = proc_sample();
	*section = 24 + 8 + 3 + 3 + 8 + 10 + 3;
	return agent_start_encode(&s, buf, sizeof(buf));
}

static void proc_decode_rejects(void **state)
{
	(void)state;
	size_t at;
	int len = encode_proc(&at);
	/* every truncation is refused */
	for (size_t l = at; l < (size_t)len; l += 7)
		expect_refused(l);
	expect_refused((size_t)len - 1);
	/* a byte too many */
	len = encode_proc(&at);
	buf[len] = 'x';
	expect_refused((size_t)len + 1);

	struct {
		size_t off; /* from the section's start */
		uint32_t v;
	} bad[] = {
	    {0, 0x10},	/* unknown process flags */
	    {4, 01000}, /* umask */
	    {8, 2000},	/* oom_score_adj */
	    {8, (uint32_t)-1001},
	    {12 + 40 + 4, 1000}, /* ngroups: huge, before any size is computed */
	    {52, 33},		 /* ngroups above 32 */
	    {56, 17},		 /* nrlimits */
	    {60, 65},		 /* nsysctl */
	    {64, 129},		 /* nmasked */
	    {72, 4097},		 /* nfilter */
	    {72, 0xffffffffu},	 /* nfilter that would overflow a size */
	    {76 + 8, 16},	 /* rlimits[0].resource */
	    {52, 3},		 /* more groups than bytes for them: the strings misparse */
	    {60, 3},		 /* more sysctls than strings */
	    {60, 1},		 /* fewer: bytes left over */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = encode_proc(&at);
		le_put32(buf + at + bad[i].off, bad[i].v);
		expect_refused((size_t)len);
	}
	/* a string the rules refuse, written in place */
	len = encode_proc(&at);
	char *p = memmem(buf, (size_t)len, "/proc/kcore", 11);
	assert_non_null(p);
	memcpy(p, "/proc/../e", 10);
	expect_refused((size_t)len);
	len = encode_proc(&at);
	p = memmem(buf, (size_t)len, "kernel.domainname", 17);
	memcpy(p, "kernel/domain", 13);
	expect_refused((size_t)len);
	/* the flag without a section */
	struct agent_start s = sample();
	len = agent_start_encode(&s, buf, sizeof(buf));
	le_put32(buf, AGENT_START_PROC);
	expect_refused((size_t)len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(header_round_trip_and_rejects), cmocka_unit_test(start_round_trip),
	    cmocka_unit_test(start_encode_rejects),	     cmocka_unit_test(start_decode_rejects),
	    cmocka_unit_test(start_decode_empty_program),    cmocka_unit_test(proc_round_trip),
	    cmocka_unit_test(proc_encode_rejects),	     cmocka_unit_test(proc_decode_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
