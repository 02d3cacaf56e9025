/* libFuzzer target for the guest agent's session logic (guest/agent_session.c, which calls the
 * codec in guest/agent_proto.c): a hostile host's bytes, in any split, mixed with the events the
 * agent's side produces (process output, exit, a stdin that takes some or none or is gone). The
 * process side is pretend: no fork. After every step the queued frames are parsed back and must
 * be well-formed agent -> host frames; the callbacks check what they are handed (a decoded START,
 * a signal number, resize only on a tty, stdin closed at most once); the queues stay bounded.
 *
 * Input: byte 0 = setup (bit 0: the main session; bit 1: spawn fails), then commands, each an
 * opcode byte (value % 7) and its operands:
 *   0 feed:    u16 length, that many bytes from the input as host bytes (skipped, like the agent
 *              does, while the session wants no input)
 *   1 output:  b (bit 0 STDERR), u16 length: that much process output (one read's worth), if
 *              the process runs and the queue has room (as the agent reads only then)
 *   2 exit:    u16 wait status (low 7 bits a signal, else exit code << 8), if it runs
 *   3 send:    u16 n: the host takes up to n * 16 queued bytes (whole frames are checked)
 *   4 stdin:   b: the process's stdin takes b * 64 bytes per write from now on (0: none,
 *              255: gone), then the agent retries the buffered bytes
 *   5 spawn:   toggles whether spawn fails
 *   6 bulk:    b: b % 8 + 1 STDIN frames of AGENT_MAX_PAYLOAD bytes, each fed while the session
 *              wants input (reaches the stdin and output limits with a small input) */
#include "guest/agent_session.h"
#include "tests/fuzz/fuzz_check.h"
#include "guest/agent_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static struct {
	bool spawn_fails;
	int stdin_room; /* bytes a write takes; -1: stdin is gone */
	int stdin_closes, shutdowns;
	bool hello_seen;
	/* the agent -> host stream, parsed back */
	uint8_t hdr[AGENT_HDR_SIZE];
	size_t hdr_have;
	uint32_t left; /* payload bytes of the current frame still to come */
	struct agent_hdr cur;
	uint8_t fixed[8]; /* the payload of a fixed-size frame */
	bool exit_seen;
} F;

static pid_t fake_spawn(struct agent_session *s, const struct agent_start *st,
			struct agent_spawn_error *e)
{
	(void)s;
	CHECK(st->argc >= 1 && st->argc <= AGENT_MAX_ARGS && st->envc <= AGENT_MAX_ARGS);
	CHECK(st->argv[st->argc] == NULL && st->env[st->envc] == NULL);
	CHECK(st->cwd[0] == '/' && st->argv[0][0]);
	for (uint32_t i = 0; i < st->envc; i++)
		CHECK(strchr(st->env[i], '=') && st->env[i][0] != '=');
	CHECK(!(st->flags & ~(AGENT_START_TTY | AGENT_START_PROC)));
	if (st->flags & AGENT_START_PROC) {
		/* the section decoded holds only what the codec's rules allow */
		CHECK(agent_proc_check(st) == NULL);
		CHECK(st->sysctl[2 * st->nsysctl] == NULL && st->masked[st->nmasked] == NULL &&
		      st->readonly[st->nreadonly] == NULL);
		CHECK(st->nfilter == 0 || st->filter != NULL);
	} else {
		CHECK(st->proc_flags == 0 && st->nfilter == 0 && !st->sysctl && !st->filter);
	}
	if (F.spawn_fails) {
		e->err = ENOENT;
		e->status = 127;
		strcpy(e->msg, "fuzz: command not found");
		return -1;
	}
	return 4242;
}

static ssize_t fake_stdin_write(struct agent_session *s, const uint8_t *buf, size_t len)
{
	(void)buf;
	CHECK(s->state == AGENT_SESSION_RUNNING && len > 0 && !s->stdin_closed);
	if (F.stdin_room < 0)
		return -EPIPE;
	if (F.stdin_room == 0)
		return -EAGAIN;
	return (ssize_t)(len < (size_t)F.stdin_room ? len : (size_t)F.stdin_room);
}

static void fake_stdin_close(struct agent_session *s)
{
	CHECK(s->state == AGENT_SESSION_RUNNING);
	CHECK(++F.stdin_closes == 1);
}

static void fake_resize(struct agent_session *s, uint16_t rows, uint16_t cols)
{
	(void)rows;
	(void)cols;
	CHECK(s->tty && s->state == AGENT_SESSION_RUNNING);
}

static void fake_signal(struct agent_session *s, int sig)
{
	CHECK(s->state == AGENT_SESSION_RUNNING && sig >= 1 && sig <= 64);
}

static void fake_shutdown(struct agent_session *s)
{
	(void)s;
	F.shutdowns++;
}

static const struct agent_session_ops ops = {fake_spawn,  fake_stdin_write, fake_stdin_close,
					     fake_resize, fake_signal,	    fake_shutdown};

/* One whole frame has been read back: check it against what the agent may send. */
static void frame_done(void)
{
	uint16_t t = F.cur.type;
	CHECK(F.hello_seen == (t != AGENT_HELLO)); /* HELLO first, and once */
	F.hello_seen = true;
	CHECK(!F.exit_seen || t == AGENT_ERROR); /* after EXIT only replies to bad frames */
	switch (t) {
	case AGENT_HELLO:
		CHECK(F.cur.len == 8 && le_get32(F.fixed) == AGENT_PROTO_VERSION);
		break;
	case AGENT_STARTED:
		CHECK(F.cur.len == 4 && le_get32(F.fixed) == 4242);
		break;
	case AGENT_EXIT:
		CHECK(F.cur.len == 8 && le_get32(F.fixed) <= 255 + 128);
		F.exit_seen = true;
		break;
	case AGENT_ERROR:
		CHECK(F.cur.len >= 4 && F.cur.len <= 4 + 512);
		break;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		CHECK(F.cur.len > 0);
		break;
	default:
		abort(); /* a host -> agent type from the agent */
	}
}

/* The host reads n bytes of the agent's stream. */
static void host_reads(const uint8_t *p, size_t n)
{
	while (n) {
		if (F.hdr_have < AGENT_HDR_SIZE) {
			F.hdr[F.hdr_have++] = *p++;
			n--;
			if (F.hdr_have == AGENT_HDR_SIZE) {
				CHECK(agent_hdr_decode(F.hdr, &F.cur) == 0);
				F.left = F.cur.len;
				if (!F.left) {
					frame_done();
					F.hdr_have = 0;
				}
			}
			continue;
		}
		size_t k = n < F.left ? n : F.left;
		size_t at = F.cur.len - F.left;
		for (size_t i = 0; i < k; i++)
			if (at + i < sizeof(F.fixed))
				F.fixed[at + i] = p[i];
		p += k;
		n -= k;
		F.left -= (uint32_t)k;
		if (!F.left) {
			frame_done();
			F.hdr_have = 0;
		}
	}
}

static void send_some(struct agent_session *s, size_t max)
{
	size_t len;
	const uint8_t *p = agent_session_pending(s, &len);
	if (!p)
		return;
	if (len > max)
		len = max;
	host_reads(p, len);
	agent_session_sent(s, len);
}

static uint8_t u8(const uint8_t **d, size_t *n)
{
	if (!*n)
		return 0;
	(*n)--;
	return *(*d)++;
}

static uint16_t u16(const uint8_t **d, size_t *n)
{
	uint16_t v = 0;
	for (int i = 0; i < 2 && *n; i++, (*d)++, (*n)--)
		v |= (uint16_t)(**d << (8 * i));
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t junk[AGENT_MAX_PAYLOAD];
	struct agent_session s;

	if (size < 1)
		return 0;
	memset(&F, 0, sizeof(F));
	F.spawn_fails = data[0] & 2;
	F.stdin_room = 4096;
	CHECK(agent_session_init(&s, &ops, NULL, data[0] & 1) == 0);
	data++;
	size--;
	while (size) {
		uint8_t op = *data++ % 7;
		size--;
		switch (op) {
		case 0: {
			size_t len = u16(&data, &size);
			if (len > size)
				len = size;
			if (agent_session_wants_input(&s))
				agent_session_feed(&s, data, len);
			data += len;
			size -= len;
			break;
		}
		case 1: {
			uint8_t b = u8(&data, &size);
			size_t len = u16(&data, &size);
			if (s.state == AGENT_SESSION_RUNNING && agent_session_output_room(&s))
				CHECK(agent_session_output(&s, b & 1 ? AGENT_STDERR : AGENT_STDOUT,
							   junk, len) == 0);
			break;
		}
		case 2: {
			uint16_t w = u16(&data, &size);
			int wstatus =
			    (w & 0x7f) && (w & 0x7f) != 0x7f ? (w & 0x7f) : (w & 0xff) << 8;
			if (s.state == AGENT_SESSION_RUNNING) {
				int st = agent_session_exited(&s, wstatus);
				CHECK(st >= 0 && st <= 255 && s.state == AGENT_SESSION_DONE);
			}
			break;
		}
		case 3:
			send_some(&s, (size_t)u16(&data, &size) * 16);
			break;
		case 4: {
			uint8_t b = u8(&data, &size);
			F.stdin_room = b == 255 ? -1 : b * 64;
			if (s.state == AGENT_SESSION_RUNNING)
				agent_session_flush_stdin(&s);
			break;
		}
		case 5:
			F.spawn_fails = !F.spawn_fails;
			break;
		case 6: {
			int count = u8(&data, &size) % 8 + 1;
			agent_hdr_encode(junk, AGENT_STDIN, AGENT_MAX_PAYLOAD - AGENT_HDR_SIZE);
			for (int i = 0; i < count; i++)
				if (agent_session_wants_input(&s))
					agent_session_feed(&s, junk, AGENT_MAX_PAYLOAD);
			break;
		}
		}
		/* Bounded: the limits plus what one feed of at most 64 KiB can add. */
		size_t pending;
		agent_session_pending(&s, &pending);
		CHECK(pending <= AGENT_OUT_LIMIT + 2 * (AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD) +
				     65536 / AGENT_HDR_SIZE * (AGENT_HDR_SIZE + 4 + 512));
		CHECK(s.in.len - s.in.off <= AGENT_STDIN_LIMIT + AGENT_MAX_PAYLOAD);
	}
	send_some(&s, SIZE_MAX); /* everything queued parses */
	CHECK(F.hdr_have == 0);
	agent_session_destroy(&s);
	return 0;
}
