/* The control API's wire codec (docs/api.md): newline-delimited JSON on the --api-sock Unix
 * socket, one request line and one reply line at a time. Pure functions for the server
 * (vmm/api/api.c) and the client side (`vmm ctl`, `vmm exec`); no state, no event loop. */
#ifndef VMM_API_PROTO_H
#define VMM_API_PROTO_H

#include "vmm/log.h"

#include <stddef.h>
#include <stdint.h>

struct json_object;

#define API_VERSION		    1
#define API_REQUEST_MAX		    4096       /* bytes of one request line, its '\n' included */
#define API_REPLY_MAX		    (1u << 20) /* bytes of one reply line, its '\n' included */
#define API_JSON_DEPTH		    8	       /* nesting a request may have (a request is flat) */
#define API_STOP_TIMEOUT_DEFAULT_MS 10000u
#define API_STOP_TIMEOUT_MAX_MS	    3600000u
#define API_SIGNAL_MAX		    64

enum api_op {
	API_OP_STATE,
	API_OP_START,
	API_OP_PAUSE,
	API_OP_RESUME,
	API_OP_STOP,
	API_OP_SIGNAL,
	API_OP_EXEC,
	API_OP_METRICS,
	API_OP_SNAPSHOT, /* its state and memory files' descriptors come with it (SCM_RIGHTS) */
};
#define API_OP_COUNT (API_OP_SNAPSHOT + 1)
#define API_MAX_FDS  2 /* descriptors one request may carry: snapshot's state and memory files */

/* One request. timeout_ms is set for API_OP_STOP only (default API_STOP_TIMEOUT_DEFAULT_MS),
 * signal for API_OP_SIGNAL only (1..API_SIGNAL_MAX); both are 0 for the other ops. */
struct api_request {
	enum api_op op;
	uint32_t timeout_ms;
	int signal;
};

/* The op's name on the wire ("state"...), or NULL for a value outside the enum. */
const char *api_op_name(enum api_op op);

/* Parses one request line: len bytes (not NUL-terminated), with or without its final '\n', at
 * most API_REQUEST_MAX with it. Returns 0 with *r filled, or -EINVAL with one line in e saying
 * which key (or byte) is wrong and what to send instead. Refuses: an over-long line, NUL bytes, a
 * '\n' before the end, invalid UTF-8, raw control characters or "\u0000" in strings, anything but
 * one JSON object (strict JSON: no single quotes, no trailing bytes but spaces, tabs and one
 * '\r'), duplicate keys, unknown keys, keys the op does not take, a "v" other than the integer
 * API_VERSION, a missing or unknown "op", wrong types and out-of-range values. */
int api_request_parse(const char *line, size_t len, struct api_request *r, struct verr *e);

/* The request as one line ending in '\n', NUL-terminated in buf[0..cap). Writes "v" and the
 * fields r's op takes (stop: timeout_ms; signal: signal). Returns the line's length (without
 * the NUL), -E2BIG when cap is too small, or -EINVAL for an op or value that api_request_parse
 * would refuse. */
int api_request_format(const struct api_request *r, char *buf, size_t cap);

/* A new {"v":1,"ok":true} object for the server to add its fields to; NULL on ENOMEM. */
struct json_object *api_reply_ok(void);

/* The reply as one malloc'd NUL-terminated line ending in '\n' (JSON on one line: json-c
 * escapes every control character). Consumes the reference to reply (NULL gives NULL). A line
 * longer than API_REPLY_MAX is replaced by an error reply saying so. NULL on ENOMEM. */
char *api_reply_line(struct json_object *reply);

/* A malloc'd {"v":1,"ok":false,"error":"..."}\n with the formatted message made one line of
 * valid UTF-8 (control characters become spaces, invalid bytes '?'). NULL on ENOMEM. */
char *api_error_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Connects to the control socket at path (a blocking, close-on-exec stream socket). Returns the
 * fd, or a negative errno with e set to one line naming path and the cause: the path too long
 * for a Unix socket, no socket there, nothing listening, permission denied... */
int api_client_connect(const char *path, struct verr *e);

/* Sends r on fd (a connected stream socket) and reads exactly one reply line: it never takes
 * bytes past the reply's '\n' (it peeks first), so what follows (exec's agent stream) stays
 * unread on fd. timeout_ms bounds the whole call (-1: no limit). On 0, *reply is the parsed
 * object, checked to be an object with "v" == API_VERSION, a boolean "ok" and, when ok is false,
 * a string "error"; the caller looks at "ok" and owns the reference. Errors (e set, *reply NULL):
 * -ETIMEDOUT; -EMSGSIZE (no '\n' in API_REPLY_MAX bytes); -ECONNRESET (the server closed first);
 * -EPROTO (the reply is not such an object); or the errno of a failed send/recv/poll. */
int api_client_call(int fd, const struct api_request *r, int timeout_ms, struct json_object **reply,
		    struct verr *e);
/* api_client_call, with nfds (at most API_MAX_FDS) descriptors sent along with the request's
 * first bytes (SCM_RIGHTS): snapshot's state and memory files. */
int api_client_call_fds(int fd, const struct api_request *r, const int *fds, unsigned nfds,
			int timeout_ms, struct json_object **reply, struct verr *e);

#endif
