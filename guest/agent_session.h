/* One agent session: the protocol side of a connection between the guest agent and the host
 * (docs/agent-protocol.md). It parses the frames the host sends, checks each against the session's
 * state, buffers the process's stdin, and queues the frames the agent sends back. It does no I/O
 * and starts no process itself: that is done through struct agent_session_ops (guest/agent.c with
 * real processes; tests/fuzz/fuzz_agent.c with pretend ones), so every byte a host can send is
 * handled by code that can be fed bytes directly. */
#ifndef VMM_AGENT_SESSION_H
#define VMM_AGENT_SESSION_H

#include "guest/agent_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Stdin bytes buffered for a process that does not read them; above this the agent stops reading
 * the session's socket (the host then waits on vsock credit), so a host cannot make the agent
 * grow without bound. */
#define AGENT_STDIN_LIMIT (256u * 1024)
/* Frames queued for a host that does not read them; above this the agent reads neither the
 * session's socket nor its process's output (the process then waits on its pipe). */
#define AGENT_OUT_LIMIT (256u * 1024)

/* A byte queue: data in buf[off, len), capacity cap. */
struct agent_bytes {
	uint8_t *buf;
	size_t off, len, cap;
};

enum agent_session_state {
	AGENT_SESSION_WAIT_START, /* HELLO sent; waiting for a valid START */
	AGENT_SESSION_RUNNING,	  /* STARTED sent; the process runs (or is being drained) */
	AGENT_SESSION_DONE	  /* EXIT queued; only SHUTDOWN still means something */
};

/* Why a START did not run: what the agent reports in ERROR and then EXIT. */
struct agent_spawn_error {
	int err;       /* errno value for ERROR */
	int status;    /* exit status for EXIT: 125, 126 or 127 (docs/agent-protocol.md) */
	char msg[256]; /* ERROR's message */
};

struct agent_session;

/* What a session asks of the agent. Each gets the session (s->opaque is the agent's). */
struct agent_session_ops {
	/* Starts the process *st describes (valid until return). Returns its pid (> 0), or -1 with
	 * *e filled in; the session then sends ERROR and EXIT itself. */
	pid_t (*spawn)(struct agent_session *s, const struct agent_start *st,
		       struct agent_spawn_error *e);
	/* Writes up to len (> 0) bytes to the process's stdin without blocking. Returns how many it
	 * took, -EAGAIN when none fit now (the session retries on agent_session_flush_stdin), or
	 * another negative errno when stdin is gone (the session then drops what it holds). */
	ssize_t (*stdin_write)(struct agent_session *s, const uint8_t *buf, size_t len);
	/* Closes the process's stdin (with a tty: sends the VEOF character instead). Called once,
	 * after every buffered stdin byte was written. */
	void (*stdin_close)(struct agent_session *s);
	/* Sets the pty's window size (only called on a tty session). */
	void (*resize)(struct agent_session *s, uint16_t rows, uint16_t cols);
	/* Sends signal sig (1..64) to the process. */
	void (*signal)(struct agent_session *s, int sig);
	/* The host sent SHUTDOWN (the agent decides what that means in the current state). */
	void (*shutdown)(struct agent_session *s);
};

struct agent_session {
	const struct agent_session_ops *ops;
	void *opaque;
	bool main; /* the connection the agent made: its process is the container's */
	enum agent_session_state state;
	bool tty;	 /* START asked for a pty */
	pid_t pid;	 /* the process, once RUNNING */
	int exit_status; /* what EXIT reported, once DONE */

	/* Frame parser: the header being read, then the payload or the bytes to skip. */
	uint8_t hdr[AGENT_HDR_SIZE];
	size_t hdr_have;
	bool in_payload;
	struct agent_hdr cur;
	uint64_t skip;	  /* payload bytes still to throw away (a refused frame) */
	uint8_t *payload; /* AGENT_MAX_PAYLOAD + 1 bytes (one spare for agent_start_decode) */
	size_t payload_have;

	struct agent_bytes in;	/* stdin bytes not yet taken by the process */
	bool stdin_eof;		/* an empty STDIN came: close once `in` is written */
	bool stdin_closed;	/* stdin_close was called, or stdin is gone */
	struct agent_bytes out; /* frames not yet sent to the host */
};

/* Sets up a session on a new connection and queues HELLO. Returns 0 or -ENOMEM. */
int agent_session_init(struct agent_session *s, const struct agent_session_ops *ops, void *opaque,
		       bool main);

/* Frees what agent_session_init and the session allocated. */
void agent_session_destroy(struct agent_session *s);

/* Takes len bytes the host sent, in any split: each complete frame is checked and acted on
 * (through ops, or with an ERROR frame queued). It always takes all the bytes; a caller that
 * honours agent_session_wants_input reads at most a bounded amount beyond the limits. */
void agent_session_feed(struct agent_session *s, const uint8_t *buf, size_t len);

/* True while the agent should read the session's socket: neither the stdin buffer nor the
 * output queue is over its limit. */
bool agent_session_wants_input(const struct agent_session *s);

/* Writes buffered stdin to the process (stdin_write) and closes it once drained after an empty
 * STDIN. Returns true while bytes remain buffered (the caller waits for the stdin fd to become
 * writable and calls again). */
bool agent_session_flush_stdin(struct agent_session *s);

/* True while the process's output may be read: the output queue has room for another frame. */
bool agent_session_output_room(const struct agent_session *s);

/* Queues len bytes of process output as STDOUT or STDERR frames (type), in pieces of at most
 * AGENT_MAX_PAYLOAD. Returns 0 or -ENOMEM. */
int agent_session_output(struct agent_session *s, uint16_t type, const uint8_t *buf, size_t len);

/* The process has exited with wait status wstatus and its output was drained: queues EXIT
 * (status 0-255, or 128+N and N if signal N killed it) and moves to DONE. Returns the status. */
int agent_session_exited(struct agent_session *s, int wstatus);

/* Queues ERROR {err, message}; the message is cut to fit one frame. */
void agent_session_error(struct agent_session *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Queues one frame. Returns 0 or -ENOMEM. */
int agent_session_send(struct agent_session *s, uint16_t type, const void *payload, size_t len);

/* The queued output: *len bytes at the returned pointer (NULL and 0 when empty). */
const uint8_t *agent_session_pending(const struct agent_session *s, size_t *len);

/* Drops the first n (<= pending length) queued bytes, once they were sent. */
void agent_session_sent(struct agent_session *s, size_t n);

#endif
