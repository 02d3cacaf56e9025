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

#include "vmm/le.h" /* the payloads' integers */

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
#define AGENT_START_TTY	 1u /* run the process on a new pty, with rows x cols */
#define AGENT_START_PROC 2u /* the process settings section follows the strings */

/* The process settings section (AGENT_START_PROC): its flags and limits. */
#define AGENT_PROC_NO_NEW_PRIVS 1u /* prctl(PR_SET_NO_NEW_PRIVS) */
#define AGENT_PROC_CAPS		2u /* set caps[]; without it the process keeps root's */
#define AGENT_PROC_UMASK	4u /* umask(umask); without it the agent's (022) */
#define AGENT_PROC_OOM		8u /* write oom_score_adj */
#define AGENT_PROC_FLAGS	15u

#define AGENT_MAX_GROUPS    32u	  /* additional gids */
#define AGENT_MAX_RLIMITS   16u	  /* one per resource, RLIMIT_CPU (0) .. RLIMIT_RTTIME (15) */
#define AGENT_MAX_SYSCTLS   64u	  /* name=value pairs */
#define AGENT_MAX_PATHS	    128u  /* masked paths, and read-only paths, each */
#define AGENT_MAX_BPF_INSNS 4096u /* the seccomp program (the kernel's BPF_MAXINSNS) */
#define AGENT_CAP_LAST	    40u	  /* CAP_CHECKPOINT_RESTORE: the highest capability bit */
#define AGENT_MAX_SETTING   4096u /* bytes of one sysctl name or value, or one path */

enum agent_cap_set {
	AGENT_CAP_BOUNDING,
	AGENT_CAP_EFFECTIVE,
	AGENT_CAP_PERMITTED,
	AGENT_CAP_INHERITABLE,
	AGENT_CAP_AMBIENT,
	AGENT_CAP_SETS
};

struct agent_rlimit {
	uint32_t resource;   /* RLIMIT_* number, below AGENT_MAX_RLIMITS, each at most once */
	uint64_t soft, hard; /* soft <= hard; UINT64_MAX is RLIM_INFINITY */
};

/* One classic BPF instruction, laid out as the kernel's struct sock_filter. */
struct agent_bpf_insn {
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};

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

	/* The process settings, sent (and meaningful) with AGENT_START_PROC only. */
	uint32_t proc_flags;	       /* AGENT_PROC_* */
	uint32_t umask;		       /* 0..0777, with AGENT_PROC_UMASK */
	int32_t oom_score_adj;	       /* -1000..1000, with AGENT_PROC_OOM */
	uint64_t caps[AGENT_CAP_SETS]; /* bit N is capability N, with AGENT_PROC_CAPS */
	uint32_t ngroups;
	uint32_t groups[AGENT_MAX_GROUPS];
	uint32_t nrlimits;
	struct agent_rlimit rlimits[AGENT_MAX_RLIMITS];
	uint32_t nsysctl; /* sysctl[2i] is a name (kernel.domainname), [2i+1] its value */
	uint32_t nmasked, nreadonly;	     /* absolute container paths */
	char **sysctl, **masked, **readonly; /* NULL-terminated (the decoder allocates them) */
	uint32_t nfilter;		     /* seccomp program length, 0: none */
	struct agent_bpf_insn *filter;	     /* the decoder allocates it */
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

/* The process settings section, after the strings when flags has AGENT_START_PROC: u32
 * proc_flags, u32 umask, i32 oom_score_adj, 5 x u64 caps (bounding, effective, permitted,
 * inheritable, ambient), u32 ngroups, u32 nrlimits, u32 nsysctl, u32 nmasked, u32 nreadonly,
 * u32 nfilter; then ngroups x u32 gid; nrlimits x (u32 resource, u64 soft, u64 hard); nfilter x
 * (u16 code, u8 jt, u8 jf, u32 k); then 2 * nsysctl + nmasked + nreadonly NUL-terminated strings
 * (the sysctl names and values in turn, the masked paths, the read-only paths), which end the
 * payload. The encoder refuses (-EINVAL) and the decoder rejects what breaks agent_proc_check. */

/* Checks the process settings of *s as the decoder does; returns NULL or a static reason. */
const char *agent_proc_check(const struct agent_start *s);

/* Decodes a START payload of len bytes (buf must have one spare byte after it, which may be
 * overwritten, so the last string is terminated even if the sender did not). Layout: u32 flags,
 * u32 uid, u32 gid, u16 rows, u16 cols, u32 argc, u32 envc, then argc + envc + 1 NUL-terminated
 * strings: cwd first, then argv, then env. Returns 0, or -EPROTO with a static reason in *why:
 * short payload, unknown flags, argc 0 or above AGENT_MAX_ARGS, fewer strings than announced or
 * bytes left over, the same string rules as the encoder. On error nothing stays allocated. */
int agent_start_decode(uint8_t *buf, size_t len, struct agent_start *s, const char **why);

void agent_start_free(struct agent_start *s);

#endif
