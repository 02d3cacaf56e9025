/* The host end of one agent session (docs/agent-protocol.md): sends START for a command, pumps
 * vmm's stdin to the container process and its output back to vmm's stdout/stderr, forwards
 * signals and window size changes, and collects the exit status.
 *
 * Two users: `vmm ... -- CMD` runs the container's main process over an in-process socketpair
 * whose other end the virtio-vsock device hands to the guest agent (session_start runs the loop
 * on a thread of its own), and `vmm exec` runs a second process over the --api-sock Unix socket
 * (session_run runs the loop on the calling thread). */
#ifndef VMM_SESSION_H
#define VMM_SESSION_H

#include "vmm/log.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* What to run: argv/env as given (env already holds the defaults the caller wants). */
struct session_cmd {
	char **argv;
	unsigned argc;
	char **env;
	unsigned envc;
	const char *cwd;
	uint32_t uid, gid;
	bool tty; /* run on a pty; vmm's stdin (a terminal) is put in raw mode */
	/* The process's stdio on the host: its input is read from in_fd (whose terminal size a
	 * tty session follows), its output written to out_fd and err_fd. */
	int in_fd, out_fd, err_fd;
	/* The process's settings (umask, capabilities, seccomp...; config.h), sent in START's
	 * AGENT_START_PROC section when any is given; NULL: none. */
	const struct vm_process_cfg *proc;
};

struct session {
	struct session_cmd cmd;
	int fd;		    /* our end of the agent connection (non-blocking) */
	int guest_fd;	    /* the other end, until the vsock device takes it */
	int in_fd;	    /* the process's input: cmd.in_fd, -1 once at EOF */
	int sig_rd, sig_wr; /* a pipe of signal numbers (0: stop the loop) */
	bool sig_is_signalfd;
	pthread_t thread;
	bool thread_started;
	bool main;	   /* the agent flagged the connection as the main session */
	bool started;	   /* START sent */
	bool exited;	   /* EXIT received */
	int status;	   /* from EXIT; 125 when the session failed */
	bool failed;	   /* the connection broke before EXIT */
	uint8_t *in, *out; /* receive buffer, send queue */
	size_t in_len, out_len, out_cap;
	bool out_closed;	       /* stdout/stderr writes failed (EPIPE): drop output */
	bool seccomp;		       /* the thread installs the SANDBOX_SESSION filter first */
	void (*on_fail)(void *opaque); /* the thread's loop failed (logged): stop the VM */
	void *opaque;
};

/* The command of a process description (vmm/config/config.h), with its stdio on the host. */
struct vm_process_cfg;
struct session_cmd session_cmd_of(const struct vm_process_cfg *p, const int stdio[3]);

/* Prepares a session for CMD over a new socketpair (both ends close-on-exec and non-blocking)
 * and a signal pipe. The command is copied by reference: cmd's strings must outlive the session.
 * Returns 0 or a negative errno with e set. */
int session_init(struct session *s, const struct session_cmd *cmd, struct verr *e);

/* For virtio_vsock_set_host_port: hands out the guest end of the socketpair once (the agent
 * connects once at boot); later calls return -1 so a second connection gets an RST. */
int session_guest_fd(void *opaque);

/* Starts the loop on a new thread, before the caller's own seccomp filter is in place (a
 * filtered thread cannot create threads): with s->seccomp the new thread installs the
 * SANDBOX_SESSION allow-list before it reads anything. With a tty the caller has put stdin in raw
 * mode before (console_make_raw), since the filter forbids that. When the loop fails (the
 * filter, the agent connection, the protocol) it logs one line and calls s->on_fail(s->opaque).
 * Returns 0 or a negative errno. */
int session_start(struct session *s);

/* Forwards signal SIG to the container process (SIGWINCH: sends the terminal's size). Safe from
 * any thread; a full pipe drops the signal. */
void session_signal(struct session *s, int sig);

/* Stops the loop if it still runs and joins the thread. Returns the exit status to report: the
 * container process's (0-255, 128+N for signal N) when EXIT came, else -1. */
int session_finish(struct session *s);

/* The signals vmm takes through a signalfd: SIGINT, SIGTERM, SIGHUP, SIGQUIT (forwarded to a
 * container's process, else they stop the VM), and SIGWINCH when winch (a container's pty). */
void session_signal_mask(sigset_t *mask, bool winch);

/* `vmm exec`: runs the loop on the calling thread over fd (a connected Unix socket to
 * --api-sock), with SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGWINCH forwarded through a signalfd.
 * Returns the process's exit status, or 125 after one line on stderr when the session failed. */
int session_run(struct session *s, int fd);

/* Takes len bytes as if read from the agent and handles every complete frame (for the fuzz
 * target and tests; the loop reads the socket itself). Output frames go to stdout/stderr unless
 * s->out_closed; frames to send wait in s->out. Returns 0, or -EPROTO when the agent broke the
 * protocol (a bad header, a HELLO of another version or after START, a second EXIT, a type only
 * the host sends), or -ENOMEM. */
int session_input(struct session *s, const uint8_t *data, size_t len);

void session_destroy(struct session *s);

#endif
