/* The control API's server (docs/api.md): a Unix socket (mode 0600) served on the main thread's
 * event loop. One JSON request per line (vmm/api/api_proto.h checks it), one reply per request; a
 * request that is malformed or refused gets an error reply and its connection closes. A
 * container's `start` replies once its process has started, `stop` when the VM has ended (with
 * its exit status); `exec` hands its connection to the
 * guest agent (the connection then carries the agent protocol). vmm keeps running whatever a
 * client sends. */
#ifndef VMM_API_H
#define VMM_API_H

#include "vmm/log.h"

#define API_MAX_CLIENTS 16 /* connections at once; more are closed with an error line */

struct vm;
struct api_server;

/* Listens on path: a stale socket nobody listens on is replaced; a live one, or anything that
 * is not a socket, is refused. Call before the sandbox is entered (bind, listen). Returns 0 with
 * *out set, or a negative errno with one line in e. */
int api_server_start(struct api_server **out, struct vm *vm, const char *path, struct verr *e);

/* The container's process has started: answers the clients waiting on `start`. */
void api_server_process_started(struct api_server *s);

/* The VM has ended with `status`: answers the clients waiting on `stop` (and on `start`, with
 * an error). */
void api_server_finish(struct api_server *s, int status);

/* Closes every connection and the socket, and removes the path if it is still this socket. */
void api_server_destroy(struct api_server *s);

#endif
