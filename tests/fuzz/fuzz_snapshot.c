/* libFuzzer target for the snapshot state file's reader (vmm/snapshot/snapfile.c), which reads a
 * file the user hands to vmm --restore. Input: the bytes of one state file. A refusal must carry a
 * one-line message and leave no sections; a file that parses must have every section inside the
 * input, and a writer fed its sections again must give back the same bytes. */
#include "vmm/snapshot/snapfile.h"
#include "tests/fuzz/fuzz_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_file f;
	struct verr e = {0};
	int ret = snap_parse(data, size, "state", &f, &e);
	if (ret < 0) {
		CHECK(ret == -EINVAL || ret == -ENOMEM);
		size_t n = strnlen(e.msg, sizeof(e.msg));
		CHECK(n > 0 && n < sizeof(e.msg) && !memchr(e.msg, '\n', n));
		CHECK(f.nsections == 0 && f.sections == NULL);
		return 0;
	}
	CHECK(ret == 0);
	struct snap_writer w;
	snap_writer_init(&w);
	for (uint32_t i = 0; i < f.nsections; i++) {
		const struct snap_section *s = &f.sections[i];
		CHECK(s->data >= data && s->len <= size && s->data + s->len <= data + size);
		CHECK(snap_find(&f, s->type, s->index) == s);
		CHECK(snap_add(&w, s->type, s->index, s->data, s->len, &e) == 0);
	}
	snap_writer_finish(&w);
	CHECK(w.len == size && memcmp(w.data, data, size) == 0);
	snap_writer_free(&w);
	snap_file_free(&f);
	return 0;
}
