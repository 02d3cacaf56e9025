/* Fuzz target: vmm's host end of the agent protocol (vmm/session.c) against a hostile agent.
 * The input is what the agent sends, cut into chunks at points the input chooses; the session
 * must reject or take every byte without a crash, a leak or unbounded queues. The first byte
 * picks the START the session would send (tty or not) and how the input is split. */
#include "guest/agent_proto.h"
#include "vmm/session.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static char *argv[] = {"/bin/sh", "-c", "true", NULL};
	static char *env[] = {"PATH=/bin", NULL};
	struct session_cmd cmd = {
	    .argv = argv,
	    .argc = 3,
	    .env = env,
	    .envc = 1,
	    .cwd = "/",
	    .tty = data[0] & 1,
	    .in_fd = 0,
	    .out_fd = 1,
	    .err_fd = 2,
	};
	struct session s;
	struct verr e = {0};
	if (session_init(&s, &cmd, &e) < 0)
		return 0;
	s.out_closed = true; /* STDOUT/STDERR payloads are dropped, not printed */
	unsigned chunk = 1u + (data[0] >> 1) * 97u;
	data++;
	size--;
	while (size) {
		size_t n = size < chunk ? size : chunk;
		int r = session_input(&s, data, n);
		/* What waits to be sent is bounded: one START and at most one SHUTDOWN. */
		assert(s.out_len <= AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD + AGENT_HDR_SIZE);
		if (r < 0)
			break; /* the loop ends the session here */
		data += n;
		size -= n;
	}
	session_destroy(&s);
	return 0;
}
