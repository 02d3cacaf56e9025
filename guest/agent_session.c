/* One agent session's protocol logic: frame parsing, state checks, stdin buffering and the
 * output queue (see agent_session.h). Everything the host sends passes through
 * agent_session_feed; nothing here trusts a length or a count it did not check. */
#include "guest/agent_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *const type_names[] = {
    [AGENT_HELLO] = "HELLO",   [AGENT_START] = "START",	      [AGENT_STARTED] = "STARTED",
    [AGENT_STDIN] = "STDIN",   [AGENT_STDOUT] = "STDOUT",     [AGENT_STDERR] = "STDERR",
    [AGENT_RESIZE] = "RESIZE", [AGENT_SIGNAL] = "SIGNAL",     [AGENT_EXIT] = "EXIT",
    [AGENT_ERROR] = "ERROR",   [AGENT_SHUTDOWN] = "SHUTDOWN",
};

/* Appends len bytes to q, growing it (and first moving the data to the front when that is
 * enough). Returns 0 or -ENOMEM. */
static int bytes_push(struct agent_bytes *q, const void *p, size_t len)
{
	if (q->cap - q->len < len && q->off) {
		memmove(q->buf, q->buf + q->off, q->len - q->off);
		q->len -= q->off;
		q->off = 0;
	}
	if (q->cap - q->len < len) {
		size_t cap = q->cap ? q->cap : 4096;
		while (cap - q->len < len)
			cap *= 2;
		uint8_t *b = realloc(q->buf, cap);
		if (!b)
			return -ENOMEM;
		q->buf = b;
		q->cap = cap;
	}
	if (len)
		memcpy(q->buf + q->len, p, len);
	q->len += len;
	return 0;
}

static size_t bytes_size(const struct agent_bytes *q)
{
	return q->len - q->off;
}

static void bytes_drop(struct agent_bytes *q, size_t n)
{
	q->off += n;
	if (q->off == q->len)
		q->off = q->len = 0;
}

static void bytes_free(struct agent_bytes *q)
{
	free(q->buf);
	memset(q, 0, sizeof(*q));
}

int agent_session_send(struct agent_session *s, uint16_t type, const void *payload, size_t len)
{
	uint8_t hdr[AGENT_HDR_SIZE];

	agent_hdr_encode(hdr, type, (uint32_t)len);
	if (bytes_push(&s->out, hdr, sizeof(hdr)) < 0)
		return -ENOMEM;
	if (bytes_push(&s->out, payload, len) < 0) {
		s->out.len -= sizeof(hdr); /* never leave half a frame queued */
		return -ENOMEM;
	}
	return 0;
}

void agent_session_error(struct agent_session *s, int err, const char *fmt, ...)
{
	uint8_t msg[4 + 512];
	va_list ap;

	le_put32(msg, (uint32_t)err);
	va_start(ap, fmt);
	int n = vsnprintf((char *)msg + 4, sizeof(msg) - 4, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 5)
		n = sizeof(msg) - 5; /* cut, without the NUL */
	agent_session_send(s, AGENT_ERROR, msg, 4 + (size_t)n);
}

int agent_session_init(struct agent_session *s, const struct agent_session_ops *ops, void *opaque,
		       bool main)
{
	uint8_t hello[8];

	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->opaque = opaque;
	s->main = main;
	s->payload = malloc(AGENT_MAX_PAYLOAD + 1);
	if (!s->payload)
		return -ENOMEM;
	le_put32(hello, AGENT_PROTO_VERSION);
	le_put32(hello + 4, main ? AGENT_HELLO_MAIN : 0);
	if (agent_session_send(s, AGENT_HELLO, hello, sizeof(hello)) < 0) {
		agent_session_destroy(s);
		return -ENOMEM;
	}
	return 0;
}

void agent_session_destroy(struct agent_session *s)
{
	free(s->payload);
	s->payload = NULL;
	bytes_free(&s->in);
	bytes_free(&s->out);
}

bool agent_session_wants_input(const struct agent_session *s)
{
	return bytes_size(&s->in) < AGENT_STDIN_LIMIT && bytes_size(&s->out) < AGENT_OUT_LIMIT;
}

bool agent_session_output_room(const struct agent_session *s)
{
	return bytes_size(&s->out) < AGENT_OUT_LIMIT;
}

const uint8_t *agent_session_pending(const struct agent_session *s, size_t *len)
{
	*len = bytes_size(&s->out);
	return *len ? s->out.buf + s->out.off : NULL;
}

void agent_session_sent(struct agent_session *s, size_t n)
{
	bytes_drop(&s->out, n);
}

int agent_session_output(struct agent_session *s, uint16_t type, const uint8_t *buf, size_t len)
{
	while (len) {
		size_t n = len < AGENT_MAX_PAYLOAD ? len : AGENT_MAX_PAYLOAD;
		if (agent_session_send(s, type, buf, n) < 0)
			return -ENOMEM;
		buf += n;
		len -= n;
	}
	return 0;
}

int agent_session_exited(struct agent_session *s, int wstatus)
{
	uint8_t exit[8];
	uint32_t status = 0, sig = 0;

	if (WIFEXITED(wstatus)) {
		status = (uint32_t)WEXITSTATUS(wstatus);
	} else if (WIFSIGNALED(wstatus)) {
		sig = (uint32_t)WTERMSIG(wstatus);
		status = 128 + sig;
	}
	le_put32(exit, status);
	le_put32(exit + 4, sig);
	agent_session_send(s, AGENT_EXIT, exit, sizeof(exit));
	s->state = AGENT_SESSION_DONE;
	s->exit_status = (int)status;
	bytes_free(&s->in);
	return (int)status;
}

bool agent_session_flush_stdin(struct agent_session *s)
{
	while (bytes_size(&s->in) && !s->stdin_closed) {
		ssize_t n = s->ops->stdin_write(s, s->in.buf + s->in.off, bytes_size(&s->in));
		if (n == -EAGAIN)
			return true;
		if (n <= 0) {
			s->stdin_closed = true; /* the process closed it: nobody will read these */
			break;
		}
		bytes_drop(&s->in, (size_t)n < bytes_size(&s->in) ? (size_t)n : bytes_size(&s->in));
	}
	bytes_free(&s->in);
	if (s->stdin_eof && !s->stdin_closed) {
		s->stdin_closed = true;
		s->ops->stdin_close(s);
	}
	return false;
}

static void start(struct agent_session *s)
{
	struct agent_start st;
	struct agent_spawn_error e;
	const char *why;

	if (s->state != AGENT_SESSION_WAIT_START) {
		agent_session_error(s, EPROTO, "a session takes one START");
		return;
	}
	int ret = agent_start_decode(s->payload, s->cur.len, &st, &why);
	if (ret < 0) {
		agent_session_error(s, -ret, "bad START: %s", why);
		return;
	}
	memset(&e, 0, sizeof(e));
	pid_t pid = s->ops->spawn(s, &st, &e);
	s->tty = st.flags & AGENT_START_TTY;
	agent_start_free(&st);
	if (pid <= 0) {
		agent_session_error(s, e.err, "%s", e.msg);
		agent_session_exited(s, (e.status & 0xff) << 8);
		return;
	}
	uint8_t p[4];
	le_put32(p, (uint32_t)pid);
	s->pid = pid;
	s->state = AGENT_SESSION_RUNNING;
	agent_session_send(s, AGENT_STARTED, p, sizeof(p));
}

static void stdin_frame(struct agent_session *s)
{
	if (s->stdin_eof) {
		agent_session_error(s, EPROTO, "STDIN after stdin was closed");
		return;
	}
	if (s->cur.len == 0) {
		s->stdin_eof = true;
	} else if (!s->stdin_closed && bytes_push(&s->in, s->payload, s->cur.len) < 0) {
		agent_session_error(s, ENOMEM, "no memory for stdin: %u bytes dropped", s->cur.len);
		return;
	}
	agent_session_flush_stdin(s);
}

/* Acts on the complete frame s->cur with its payload in s->payload. */
static void dispatch(struct agent_session *s)
{
	uint16_t type = s->cur.type;
	uint32_t len = s->cur.len;
	size_t want = type == AGENT_RESIZE || type == AGENT_SIGNAL ? 4 : 0;

	if (type == AGENT_START) {
		start(s);
		return;
	}
	if ((want || type == AGENT_SHUTDOWN) && len != want) {
		agent_session_error(s, EPROTO, "%s takes %zu payload bytes, not %u",
				    type_names[type], want, len);
		return;
	}
	if (type == AGENT_SHUTDOWN) {
		s->ops->shutdown(s);
		return;
	}
	if (s->state == AGENT_SESSION_WAIT_START) {
		agent_session_error(s, EPROTO, "%s before START", type_names[type]);
		return;
	}
	if (s->state == AGENT_SESSION_DONE)
		return; /* sent before the host saw EXIT: the process is gone */
	switch (type) {
	case AGENT_STDIN:
		stdin_frame(s);
		break;
	case AGENT_RESIZE:
		if (s->tty)
			s->ops->resize(s, le_get16(s->payload), le_get16(s->payload + 2));
		break;
	case AGENT_SIGNAL: {
		uint32_t sig = le_get32(s->payload);
		if (sig < 1 || sig > 64) {
			agent_session_error(s, EINVAL, "SIGNAL %u is not a signal number (1-64)",
					    sig);
			break;
		}
		s->ops->signal(s, (int)sig);
		break;
	}
	}
}

/* A header is complete: decide whether its payload is read or skipped. */
static void header(struct agent_session *s)
{
	int ret = agent_hdr_decode(s->hdr, &s->cur);

	s->hdr_have = 0;
	if (ret == -EMSGSIZE) {
		agent_session_error(s, EMSGSIZE, "frame of %u bytes is over the %u-byte limit",
				    s->cur.len, AGENT_MAX_PAYLOAD);
	} else if (ret < 0) {
		agent_session_error(s, EPROTO, "bad frame header (type %u, flags 0x%x)",
				    s->cur.type, s->cur.flags);
	} else if (s->cur.type != AGENT_START && s->cur.type != AGENT_STDIN &&
		   s->cur.type != AGENT_RESIZE && s->cur.type != AGENT_SIGNAL &&
		   s->cur.type != AGENT_SHUTDOWN) {
		agent_session_error(s, EPROTO, "%s is not sent to the agent",
				    type_names[s->cur.type]);
		ret = -EPROTO;
	}
	if (ret < 0) {
		s->skip = s->cur.len;
		return;
	}
	s->in_payload = true;
	s->payload_have = 0;
	if (s->cur.len == 0) {
		s->in_payload = false;
		dispatch(s);
	}
}

void agent_session_feed(struct agent_session *s, const uint8_t *buf, size_t len)
{
	while (len) {
		size_t n;
		if (s->skip) {
			n = s->skip < len ? (size_t)s->skip : len;
			s->skip -= n;
		} else if (s->in_payload) {
			n = s->cur.len - s->payload_have;
			n = n < len ? n : len;
			memcpy(s->payload + s->payload_have, buf, n);
			s->payload_have += n;
			if (s->payload_have == s->cur.len) {
				s->in_payload = false;
				dispatch(s);
			}
		} else {
			n = AGENT_HDR_SIZE - s->hdr_have;
			n = n < len ? n : len;
			memcpy(s->hdr + s->hdr_have, buf, n);
			s->hdr_have += n;
			if (s->hdr_have == AGENT_HDR_SIZE)
				header(s);
		}
		buf += n;
		len -= n;
	}
}
