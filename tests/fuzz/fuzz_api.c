/* libFuzzer target for the control API's request parser (vmm/api/api_proto.c), which reads bytes
 * from any process that can open --api-sock. Input: the bytes of one request line, as the server
 * would hand them over (any length: the parser bounds it). A refusal must carry a one-line
 * message and leave the request zeroed; what parses must format into a line that parses again to
 * the same request, and every reply line must stay one line. */
#include "vmm/api/api_proto.h"
#include "tests/fuzz/fuzz_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request r;
	struct verr e = {0};
	int ret = api_request_parse((const char *)data, size, &r, &e);
	if (ret < 0) {
		CHECK(ret == -EINVAL || ret == -ENOMEM);
		CHECK(e.code == ret);
		size_t n = strnlen(e.msg, sizeof(e.msg));
		CHECK(n > 0 && n < sizeof(e.msg));
		CHECK(!memchr(e.msg, '\n', n));
		CHECK(r.op == 0 && r.timeout_ms == 0 && r.signal == 0);
		/* the server sends the message back as an error reply */
		char *line = api_error_line("%s", e.msg);
		CHECK(line);
		size_t len = strlen(line);
		CHECK(len > 0 && line[len - 1] == '\n' &&
		      memchr(line, '\n', len) == line + len - 1);
		free(line);
		return 0;
	}
	CHECK(ret == 0);
	CHECK(api_op_name(r.op) != NULL);
	if (r.op != API_OP_STOP)
		CHECK(r.timeout_ms == 0);
	else
		CHECK(r.timeout_ms <= API_STOP_TIMEOUT_MAX_MS);
	if (r.op != API_OP_SIGNAL)
		CHECK(r.signal == 0);
	else
		CHECK(r.signal >= 1 && r.signal <= API_SIGNAL_MAX);

	char buf[256];
	int n = api_request_format(&r, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n < sizeof(buf) && buf[n - 1] == '\n');
	struct api_request again;
	CHECK(api_request_parse(buf, (size_t)n, &again, &e) == 0);
	CHECK(again.op == r.op && again.timeout_ms == r.timeout_ms && again.signal == r.signal);
	return 0;
}
