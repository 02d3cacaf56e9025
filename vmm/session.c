/* The host end of an agent session (see session.h and docs/agent-protocol.md). One poll loop:
 * frames from the agent are handled as they complete, stdin is read only while the send queue
 * is empty (so a container that does not read its input holds vmm's stdin back instead of
 * filling memory), and signals arrive through a pipe or a signalfd. */
#include "vmm/session.h"
#include "vmm/config/config.h"
#include "guest/agent_proto.h"
#include "vmm/console.h"
#include "vmm/sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP	    (AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD + 1)
#define STDIN_CHUNK (32u * 1024)

struct session_cmd session_cmd_of(const struct vm_process_cfg *p, const int stdio[3])
{
	return (struct session_cmd){
	    .argv = p->argv,
	    .argc = p->argc,
	    .env = p->env,
	    .envc = p->envc,
	    .cwd = p->cwd,
	    .uid = p->uid,
	    .gid = p->gid,
	    .tty = p->tty,
	    .in_fd = stdio[0],
	    .out_fd = stdio[1],
	    .err_fd = stdio[2],
	    .proc = p,
	};
}

static bool proc_given(const struct vm_process_cfg *p)
{
	return p &&
	       (p->umask_given || p->ngroups || p->nrlimits || p->no_new_privs || p->caps_given ||
		p->oom_given || p->bpf_insns || p->nsysctl || p->nmasked || p->nreadonly);
}

/* The AGENT_START_PROC section of st from the process's settings; filter is the caller's
 * buffer of p->bpf_insns entries. */
static void proc_fill(struct agent_start *st, const struct vm_process_cfg *p,
		      struct agent_bpf_insn *filter)
{
	st->flags |= AGENT_START_PROC;
	st->proc_flags = (p->no_new_privs ? AGENT_PROC_NO_NEW_PRIVS : 0) |
			 (p->caps_given ? AGENT_PROC_CAPS : 0) |
			 (p->umask_given ? AGENT_PROC_UMASK : 0) |
			 (p->oom_given ? AGENT_PROC_OOM : 0);
	st->umask = p->umask;
	st->oom_score_adj = p->oom_score_adj;
	if (p->caps_given)
		for (int i = 0; i < AGENT_CAP_SETS; i++)
			st->caps[i] = p->caps[i];
	st->ngroups = p->ngroups;
	memcpy(st->groups, p->groups, p->ngroups * sizeof(p->groups[0]));
	st->nrlimits = p->nrlimits;
	for (unsigned i = 0; i < p->nrlimits; i++)
		st->rlimits[i] = (struct agent_rlimit){.resource = p->rlimits[i].resource,
						       .soft = p->rlimits[i].soft,
						       .hard = p->rlimits[i].hard};
	st->nsysctl = p->nsysctl;
	st->sysctl = p->sysctl;
	st->nmasked = p->nmasked;
	st->masked = p->masked;
	st->nreadonly = p->nreadonly;
	st->readonly = p->readonly;
	st->nfilter = p->bpf_insns;
	st->filter = filter;
	/* The file holds struct sock_filter in this host's order: u16 code, u8 jt, u8 jf, u32 k. */
	for (unsigned i = 0; i < p->bpf_insns; i++) {
		const uint8_t *b = p->bpf + 8 * i;
		memcpy(&filter[i].code, b, 2);
		filter[i].jt = b[2];
		filter[i].jf = b[3];
		memcpy(&filter[i].k, b + 4, 4);
	}
}

int session_init(struct session *s, const struct session_cmd *cmd, struct verr *e)
{
	memset(s, 0, sizeof(*s));
	s->cmd = *cmd;
	s->fd = s->guest_fd = s->sig_rd = s->sig_wr = -1;
	s->in_fd = cmd->in_fd;
	s->status = -1;
	s->in = malloc(IN_CAP);
	if (!s->in)
		return verr_set(e, -ENOMEM, "session: out of memory");
	int sv[2], pv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return verr_set(e, -errno, "session: socketpair: %s", strerror(errno));
	s->fd = sv[0];
	s->guest_fd = sv[1];
	if (pipe2(pv, O_NONBLOCK | O_CLOEXEC) < 0)
		return verr_set(e, -errno, "session: pipe: %s", strerror(errno));
	s->sig_rd = pv[0];
	s->sig_wr = pv[1];
	return 0;
}

int session_guest_fd(void *opaque)
{
	struct session *s = opaque;
	int fd = s->guest_fd;
	s->guest_fd = -1;
	return fd;
}

/* ---- sending ---- */

static int queue(struct session *s, uint16_t type, const void *payload, uint32_t len)
{
	size_t need = s->out_len + AGENT_HDR_SIZE + len;
	if (need > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(s->out, cap);
		if (!p)
			return -ENOMEM;
		s->out = p;
		s->out_cap = cap;
	}
	agent_hdr_encode(s->out + s->out_len, type, len);
	if (len)
		memcpy(s->out + s->out_len + AGENT_HDR_SIZE, payload, len);
	s->out_len = need;
	return 0;
}

static int flush_out(struct session *s)
{
	while (s->out_len) {
		ssize_t w = send(s->fd, s->out, s->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			return -errno;
		}
		memmove(s->out, s->out + w, s->out_len - (size_t)w);
		s->out_len -= (size_t)w;
	}
	return 0;
}

static void window_size(int fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws = {0};
	*rows = *cols = 0;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static int send_start(struct session *s)
{
	struct agent_start st = {
	    .flags = s->cmd.tty ? AGENT_START_TTY : 0,
	    .uid = s->cmd.uid,
	    .gid = s->cmd.gid,
	    .cwd = s->cmd.cwd,
	    .argc = s->cmd.argc,
	    .envc = s->cmd.envc,
	    .argv = s->cmd.argv,
	    .env = s->cmd.env,
	};
	if (s->cmd.tty)
		window_size(s->cmd.in_fd, &st.rows, &st.cols);
	struct agent_bpf_insn *filter = NULL;
	if (proc_given(s->cmd.proc)) {
		filter = calloc(s->cmd.proc->bpf_insns + 1, sizeof(*filter));
		if (!filter)
			return -ENOMEM;
		proc_fill(&st, s->cmd.proc, filter);
	}
	uint8_t *buf = malloc(AGENT_MAX_PAYLOAD);
	if (!buf) {
		free(filter);
		return -ENOMEM;
	}
	int n = agent_start_encode(&st, buf, AGENT_MAX_PAYLOAD);
	free(filter);
	if (n < 0) {
		free(buf);
		vmm_log("the command, its environment, working directory and process settings "
			"(seccomp program, sysctls, paths) do not fit in %u bytes (or an --env "
			"entry is not KEY=VALUE): shorten them",
			AGENT_MAX_PAYLOAD);
		return n;
	}
	int r = queue(s, AGENT_START, buf, (uint32_t)n);
	free(buf);
	s->started = r == 0;
	return r;
}

/* ---- receiving ---- */

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pf = {.fd = fd, .events = POLLOUT};
				poll(&pf, 1, -1);
				continue;
			}
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The agent's words, made printable for a one-line message. */
static void print_error(const uint8_t *p, uint32_t len)
{
	char msg[256];
	uint32_t n = len < sizeof(msg) - 1 ? len : (uint32_t)sizeof(msg) - 1;
	for (uint32_t i = 0; i < n; i++)
		msg[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	msg[n] = 0;
	/* the agent is part of the guest: a loop of ERROR frames must not flood the log */
	static struct log_ratelimit rl;
	vmm_log_ratelimited(&rl, 5, "container: %s", msg);
}

/* Handles one complete frame. Returns 0, or -EPROTO when the agent broke the protocol. */
static int handle(struct session *s, const struct agent_hdr *h, const uint8_t *p)
{
	switch (h->type) {
	case AGENT_HELLO:
		if (h->len < 8 || s->started)
			return -EPROTO;
		if (le_get32(p) != AGENT_PROTO_VERSION) {
			vmm_log(
			    "the guest agent speaks protocol version %u, this vmm speaks %u: use "
			    "the agent initramfs built with this vmm",
			    le_get32(p), AGENT_PROTO_VERSION);
			return -EPROTO;
		}
		s->main = le_get32(p + 4) & AGENT_HELLO_MAIN;
		return send_start(s);
	case AGENT_STARTED:
		if (h->len >= 4)
			vmm_debug("container process started (guest pid %u)", le_get32(p));
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		if (!s->out_closed &&
		    write_all(h->type == AGENT_STDOUT ? s->cmd.out_fd : s->cmd.err_fd, p, h->len) <
			0)
			s->out_closed = true; /* a closed pipe: the process runs on, unheard */
		return 0;
	case AGENT_ERROR:
		print_error(p + (h->len >= 4 ? 4 : 0), h->len >= 4 ? h->len - 4 : h->len);
		return 0;
	case AGENT_EXIT:
		if (h->len < 8 || s->exited)
			return -EPROTO;
		s->exited = true;
		s->status = (int)(le_get32(p) & 0xff);
		/* Everything before EXIT is written out: the main session lets the VM go. */
		if (s->main)
			return queue(s, AGENT_SHUTDOWN, NULL, 0);
		return 0;
	default:
		return -EPROTO; /* a host-to-agent type */
	}
}

/* Handles every complete frame in s->in and keeps the rest. Returns 0 or a negative errno. */
static int process_input(struct session *s)
{
	size_t off = 0;
	int r = 0;
	while (s->in_len - off >= AGENT_HDR_SIZE) {
		struct agent_hdr h;
		if (agent_hdr_decode(s->in + off, &h) < 0) {
			r = -EPROTO;
			break;
		}
		if (s->in_len - off < AGENT_HDR_SIZE + h.len)
			break;
		r = handle(s, &h, s->in + off + AGENT_HDR_SIZE);
		if (r < 0)
			break;
		off += AGENT_HDR_SIZE + h.len;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
	return r;
}

int session_input(struct session *s, const uint8_t *data, size_t len)
{
	while (len) {
		size_t n = IN_CAP - 1 - s->in_len;
		if (n > len)
			n = len;
		memcpy(s->in + s->in_len, data, n);
		s->in_len += n;
		data += n;
		len -= n;
		int r = process_input(s);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Reads what the agent sent and handles every complete frame. Returns 0, 1 at EOF, or a
 * negative errno. */
static int receive(struct session *s)
{
	ssize_t n = recv(s->fd, s->in + s->in_len, IN_CAP - 1 - s->in_len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return 1;
	s->in_len += (size_t)n;
	return process_input(s);
}

static int read_stdin(struct session *s)
{
	uint8_t buf[STDIN_CHUNK];
	ssize_t n = read(s->in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		s->in_fd = -1; /* EOF (or an error, which is the end of input too) */
		return queue(s, AGENT_STDIN, NULL, 0);
	}
	return queue(s, AGENT_STDIN, buf, (uint32_t)n);
}

static int forward_signal(struct session *s, int sig)
{
	uint8_t p[4];
	if (sig == SIGWINCH) {
		if (!s->cmd.tty)
			return 0;
		uint16_t rows, cols;
		window_size(s->cmd.in_fd, &rows, &cols);
		le_put16(p, rows);
		le_put16(p + 2, cols);
		return queue(s, AGENT_RESIZE, p, 4);
	}
	le_put32(p, (uint32_t)sig);
	return queue(s, AGENT_SIGNAL, p, 4);
}

/* Returns 1 when told to stop, 0 otherwise, or a negative errno. */
static int read_signals(struct session *s)
{
	for (;;) {
		int sig;
		if (s->sig_is_signalfd) {
			struct signalfd_siginfo si;
			if (read(s->sig_rd, &si, sizeof(si)) != sizeof(si))
				return 0;
			sig = (int)si.ssi_signo;
		} else {
			uint8_t b;
			if (read(s->sig_rd, &b, 1) != 1)
				return 0;
			sig = b;
		}
		if (sig == 0)
			return 1;
		/* Before START the process does not exist yet: nothing to signal. */
		if (s->started && !s->exited) {
			int r = forward_signal(s, sig);
			if (r < 0)
				return r;
		}
	}
}

static int loop(struct session *s)
{
	for (;;) {
		if (s->exited && s->out_len == 0)
			return 0;
		struct pollfd p[3] = {
		    {.fd = s->fd, .events = POLLIN | (s->out_len ? POLLOUT : 0)},
		    {.fd = s->started && !s->exited && s->out_len == 0 ? s->in_fd : -1,
		     .events = POLLIN},
		    {.fd = s->sig_rd, .events = POLLIN},
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		int r = 0;
		if (p[2].revents) {
			r = read_signals(s);
			if (r)
				return r > 0 ? 0 : r;
		}
		if (p[1].revents)
			r = read_stdin(s);
		if (r == 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			r = receive(s);
			if (r == 1) {
				vmm_log("the guest agent closed the session before the container "
					"process exited");
				return -ECONNRESET;
			}
			if (r == -EPROTO)
				vmm_log("the guest agent broke the protocol: ending the session");
		}
		if (r == 0 && s->out_len)
			r = flush_out(s);
		if (r < 0)
			return r;
	}
}

static void *thread_main(void *opaque)
{
	struct session *s = opaque;
	struct verr e = {0};
	int r = 0;
	if (s->seccomp && sandbox_enter(SANDBOX_SESSION, &e) < 0) {
		vmm_log("%s", e.msg);
		r = -EPERM;
	}
	if (r == 0)
		r = loop(s);
	if (r < 0) {
		s->failed = true;
		if (s->on_fail)
			s->on_fail(s->opaque);
	}
	return NULL;
}

int session_start(struct session *s)
{
	int r = pthread_create(&s->thread, NULL, thread_main, s);
	if (r != 0)
		return -r;
	s->thread_started = true;
	return 0;
}

void session_signal(struct session *s, int sig)
{
	uint8_t b = (uint8_t)sig;
	ssize_t w = write(s->sig_wr, &b, 1);
	(void)w; /* a full pipe: the loop has plenty to do already */
}

int session_finish(struct session *s)
{
	if (s->thread_started) {
		session_signal(s, 0);
		pthread_join(s->thread, NULL);
		s->thread_started = false;
	}
	return s->exited ? s->status : -1;
}

void session_signal_mask(sigset_t *mask, bool winch)
{
	sigemptyset(mask);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGQUIT);
	if (winch)
		sigaddset(mask, SIGWINCH);
}

int session_run(struct session *s, int fd)
{
	sigset_t mask;
	session_signal_mask(&mask, true);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	close(s->fd);
	s->fd = fd;
	if (s->sig_rd >= 0)
		close(s->sig_rd);
	s->sig_rd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	s->sig_is_signalfd = true;
	if (s->sig_rd < 0) {
		vmm_log("exec: signalfd: %s", strerror(errno));
		return 125;
	}
	if (s->cmd.tty && isatty(s->cmd.in_fd))
		console_make_raw(s->cmd.in_fd);
	int r = loop(s);
	console_restore();
	if (r < 0 || !s->exited) {
		if (r != -ECONNRESET && r != -EPROTO)
			vmm_log("exec: the session with the guest agent failed: %s",
				strerror(r < 0 ? -r : EPIPE));
		return 125;
	}
	return s->status;
}

void session_destroy(struct session *s)
{
	int *fds[] = {&s->fd, &s->guest_fd, &s->sig_rd, &s->sig_wr};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	free(s->in);
	free(s->out);
	s->in = s->out = NULL;
}
