/* The agent protocol: how vmm (and `vmm exec`) talk to the guest agent over a vsock stream.
 * Shared by the agent (guest/agent.c) and the host side (vmm/session.c); the prose version is
 * docs/agent-protocol.md.
 *
 * A connection carries frames: an 8-byte header (little-endian u32 payload length, u16 type,
 * u16 flags = 0) and then the payload. The agent speaks first on every connection (HELLO); the
 * host then sends one START, after which stdio, RESIZE and SIGNAL frames flow until the agent
 * sends EXIT. Everything here is plain data: no pointers, and the decoders check every length
 * and count against the bytes actually received, because either end may be hostile. */
#ifndef VMM_AGENT_PROTO_H
#define VMM_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION 1u

/* The vsock port the agent listens on (host-initiated connections: `vmm exec`) and the host port
 * it connects to once at boot (the container's main process). */
#define AGENT_VSOCK_PORT 1024u

#define AGENT_HDR_SIZE	  8u
#define AGENT_MAX_PAYLOAD (64u * 1024) /* larger frames are refused (ERROR EMSGSIZE) */
#define AGENT_MAX_ARGS	  4096u	       /* argv entries, and env entries, each */

enum agent_msg_type {
	AGENT_HELLO = 1,    /* agent -> host: u32 version, u32 flags (AGENT_HELLO_MAIN) */
	AGENT_START = 2,    /* host -> agent: struct agent_start, encoded below */
	AGENT_STARTED = 3,  /* agent -> host: u32 pid (in the guest) */
	AGENT_STDIN = 4,    /* host -> agent: bytes; an empty payload closes the process's stdin */
	AGENT_STDOUT = 5,   /* agent -> host: bytes (with a tty: everything the pty printed) */
	AGENT_STDERR = 6,   /* agent -> host: bytes (never with a tty) */
	AGENT_RESIZE = 7,   /* host -> agent: u16 rows, u16 cols */
	AGENT_SIGNAL = 8,   /* host -> agent: u32 signal number (1..64), sent to the process */
	AGENT_EXIT = 9,	    /* agent -> host: u32 status (0-255, 128+N if signal N killed it),
			       u32 signal (N, or 0) */
	AGENT_ERROR = 10,   /* agent -> host: u32 errno value, then a message (no NUL) */
	AGENT_SHUTDOWN = 11 /* host -> agent: after EXIT of the main process, "all output is out,
			       power off"; at any other time, "kill everything and power off" */
};

/* HELLO flags: set on the agent's own connection, the one whose START runs the container's
 * main process (the VM powers off when it exits). */
#define AGENT_HELLO_MAIN 1u

/* START flags */
#define AGENT_START_TTY 1u /* run the process on a new pty, with rows x cols */

struct agent_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
};

/* A decoded START. The string pointers point into the payload buffer passed to the decoder (which
 * must stay alive and unchanged), each NUL-terminated; argv and env are arrays the decoder
 * allocates with room for a terminating NULL (agent_start_free releases them). */
struct agent_start {
	uint32_t flags; /* AGENT_START_* */
	uint32_t uid, gid;
	uint16_t rows, cols; /* pty size with AGENT_START_TTY (0: leave the default) */
	const char *cwd;     /* absolute path inside the container */
	uint32_t argc, envc; /* argc >= 1; env entries are "KEY=VALUE" */
	char **argv, **env;  /* NULL-terminated */
};

/* Fills *h from the first AGENT_HDR_SIZE bytes of buf. Returns 0, -EPROTO when the flags are
 * not 0 or the type is unknown, or -EMSGSIZE when len exceeds AGENT_MAX_PAYLOAD (the caller then
 * discards h->len bytes and answers ERROR; the stream stays in step either way). */
int agent_hdr_decode(const uint8_t *buf, struct agent_hdr *h);

/* Writes the header of a frame of TYPE with LEN payload bytes into buf[AGENT_HDR_SIZE]. */
void agent_hdr_encode(uint8_t *buf, uint16_t type, uint32_t len);

/* Encodes *s (argv, env and cwd as given; argc/envc taken from the fields) as a START payload
 * into buf of size cap. Returns the payload length, or -E2BIG when it does not fit or there are
 * too many arguments, or -EINVAL when argc is 0 or a string is unusable (argv[0] empty, an env
 * entry without '=' or starting with it, cwd not absolute). */
int agent_start_encode(const struct agent_start *s, uint8_t *buf, size_t cap);

/* Decodes a START payload of len bytes (buf must have one spare byte after it, which may be
 * overwritten, so the last string is terminated even if the sender did not). Layout: u32 flags,
 * u32 uid, u32 gid, u16 rows, u16 cols, u32 argc, u32 envc, then argc + envc + 1 NUL-terminated
 * strings: cwd first, then argv, then env. Returns 0, or -EPROTO with a static reason in *why:
 * short payload, unknown flags, argc 0 or above AGENT_MAX_ARGS, fewer strings than announced or
 * bytes left over, the same string rules as the encoder. On error nothing stays allocated. */
int agent_start_decode(uint8_t *buf, size_t len, struct agent_start *s, const char **why);

void agent_start_free(struct agent_start *s);

/* Little-endian helpers for the small fixed payloads. */
static inline void agent_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t agent_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void agent_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t agent_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

#endif
