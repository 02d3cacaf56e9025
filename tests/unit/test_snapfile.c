/* The snapshot state file's codec (vmm/snapshot/snapfile.c): every section type round-trips;
 * a file cut at any length, with any one bit flipped, with a length past its end or this vmm's
 * bounds, of another format version, or with a section twice is refused with one line. */
#include "vmm/snapshot/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

static const uint32_t all_types[] = {
    SNAP_VMM,		SNAP_DESCRIPTION, SNAP_CPUID,	       SNAP_MEMORY,    SNAP_VCPU_REGS,
    SNAP_VCPU_SREGS,	SNAP_VCPU_XSAVE,  SNAP_VCPU_XCRS,      SNAP_VCPU_MSRS, SNAP_VCPU_LAPIC,
    SNAP_VCPU_MP_STATE, SNAP_VCPU_EVENTS, SNAP_VCPU_DEBUGREGS, SNAP_VM_PIC,    SNAP_VM_IOAPIC,
    SNAP_VM_PIT,	SNAP_VM_CLOCK,	  SNAP_DEV_TRANSPORT,  SNAP_DEV_STATE, SNAP_SERIAL,
    SNAP_I8042,
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

/* A payload of len bytes that differs per (type, index). */
static void fill(uint8_t *p, size_t len, uint32_t type, uint32_t index)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + type * 13 + index * 31);
}

/* A file with every type, two indexes each (sizes 0 to 40, odd ones padded). */
static void build(struct snap_writer *w)
{
	struct verr e = {0};
	uint8_t buf[64];
	snap_writer_init(w);
	for (size_t i = 0; i < NTYPES; i++)
		for (uint32_t index = 0; index < 2; index++) {
			size_t len = (i * 3 + index * 5) % 41;
			fill(buf, len, all_types[i], index);
			assert_int_equal(snap_add(w, all_types[i], index, buf, len, &e), 0);
		}
	snap_writer_finish(w);
}

static void round_trip(void **state)
{
	(void)state;
	struct snap_writer w;
	struct snap_file f;
	struct verr e = {0};
	build(&w);
	assert_int_equal(w.len % 8, 0);
	assert_int_equal(snap_parse(w.data, w.len, "state", &f, &e), 0);
	assert_int_equal(f.nsections, 2 * NTYPES);
	uint8_t want[64], got[64];
	for (size_t i = 0; i < NTYPES; i++) {
		assert_non_null(snap_type_name(all_types[i]));
		for (uint32_t index = 0; index < 2; index++) {
			size_t len = (i * 3 + index * 5) % 41;
			fill(want, len, all_types[i], index);
			const struct snap_section *s = snap_find(&f, all_types[i], index);
			assert_non_null(s);
			assert_int_equal(s->len, len);
			assert_memory_equal(s->data, want, len);
			assert_int_equal(snap_get(&f, all_types[i], index, got, len, &e), 0);
			assert_memory_equal(got, want, len);
		}
	}
	/* a section of another size than asked, and one not there: one line each */
	assert_int_equal(snap_get(&f, SNAP_VCPU_REGS, 1, got, 3, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "state: the vcpu-regs section of 1 is"));
	assert_non_null(strstr(e.msg, "this vmm expects 3"));
	assert_int_equal(snap_get(&f, SNAP_VCPU_REGS, 7, got, 3, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "state: no vcpu-regs section for 7"));
	assert_null(snap_find(&f, SNAP_VM_PIT, 2));
	snap_file_free(&f);
	/* an empty file (header only) is a file */
	struct snap_writer empty;
	snap_writer_init(&empty);
	snap_writer_finish(&empty);
	assert_int_equal(empty.len, SNAP_HEADER_LEN);
	assert_int_equal(snap_parse(empty.data, empty.len, "state", &f, &e), 0);
	assert_int_equal(f.nsections, 0);
	snap_file_free(&f);
	snap_writer_free(&empty);
	snap_writer_free(&w);
}

static void writer_refuses(void **state)
{
	(void)state;
	struct snap_writer w;
	struct verr e = {0};
	snap_writer_init(&w);
	assert_int_equal(snap_add(&w, 99, 0, "x", 1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "section type 99"));
	assert_int_equal(snap_add(&w, SNAP_VM_PIC, 1, "x", 1, &e), 0);
	assert_int_equal(snap_add(&w, SNAP_VM_PIC, 1, "y", 1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "two pic sections for 1"));
	assert_int_equal(snap_add(&w, SNAP_DESCRIPTION, 0, NULL, SNAP_MAX_SECTION + 1u, &e),
			 -E2BIG);
	snap_writer_free(&w);
}

/* Every length short of the whole file, and one byte more, is refused. */
static void truncated(void **state)
{
	(void)state;
	struct snap_writer w;
	struct snap_file f;
	struct verr e = {0};
	build(&w);
	for (size_t len = 0; len < w.len; len++) {
		e.msg[0] = 0;
		assert_int_equal(snap_parse(w.data, len, "state", &f, &e), -EINVAL);
		assert_true(e.msg[0] && !strchr(e.msg, '\n'));
		assert_int_equal(f.nsections, 0);
	}
	assert_non_null(strstr(e.msg, "cut short"));
	uint8_t *more = calloc(1, w.len + 8);
	memcpy(more, w.data, w.len);
	assert_int_equal(snap_parse(more, w.len + 8, "state", &f, &e), -EINVAL);
	free(more);
	snap_writer_free(&w);
}

/* Any one bit flipped anywhere is refused: the checksums cover the headers and payloads, and
 * reserved fields and padding must be zero. */
static void bit_flips(void **state)
{
	(void)state;
	struct snap_writer w;
	struct snap_file f;
	struct verr e = {0};
	build(&w);
	for (size_t bit = 0; bit < w.len * 8; bit++) {
		w.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = snap_parse(w.data, w.len, "state", &f, &e);
		w.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (r != -EINVAL)
			fail_msg("bit %zu flipped: parse gave %d", bit, r);
	}
	assert_int_equal(snap_parse(w.data, w.len, "state", &f, &e), 0);
	snap_file_free(&f);
	snap_writer_free(&w);
}

/* The header's crc over its first 36 bytes, redone after an edit (to reach the checks behind
 * it). */
static void reseal(uint8_t *h)
{
	uint32_t c = (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 36);
	for (int i = 0; i < 4; i++)
		h[36 + i] = (uint8_t)(c >> (8 * i));
}

static void hostile_headers(void **state)
{
	(void)state;
	struct snap_writer w;
	struct snap_file f;
	struct verr e = {0};
	build(&w);
	uint8_t *d = w.data;
	/* another format version */
	d[8] = 2;
	reseal(d);
	assert_int_equal(snap_parse(d, w.len, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "state: written by a vmm with snapshot format 2, this one "
				      "reads 1"));
	d[8] = 1;
	/* a section count past the bound, and more sections than the file holds */
	d[24] = 0xff, d[25] = 0xff;
	reseal(d);
	assert_int_equal(snap_parse(d, w.len, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "sections, past this vmm's 4096"));
	d[24] = (uint8_t)(2 * NTYPES + 1), d[25] = 0;
	reseal(d);
	assert_int_equal(snap_parse(d, w.len, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "starts past the end"));
	d[24] = (uint8_t)(2 * NTYPES);
	reseal(d);
	/* the first section's length past the file's end, resealed so only the bound can catch it
	 */
	uint8_t *s = d + SNAP_HEADER_LEN;
	uint8_t saved[8];
	memcpy(saved, s + 8, 8);
	memset(s + 8, 0xff, 8);
	assert_int_equal(snap_parse(d, w.len, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "section 0 (vmm 0) says 18446744073709551615 bytes"));
	memcpy(s + 8, saved, 8);
	/* an unknown type */
	s[0] = 5;
	assert_int_equal(snap_parse(d, w.len, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "section 0 has type 5, which this vmm does not know"));
	s[0] = SNAP_VMM;
	/* not a snapshot at all */
	assert_int_equal(snap_parse("{\"kernel\":1}", 12, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a vmm snapshot state file"));
	assert_int_equal(snap_parse(d, w.len, "state", &f, &e), 0);
	snap_file_free(&f);
	snap_writer_free(&w);
}

/* A section twice (as a writer would not make it): built by hand with the same type and index. */
static void duplicate_section(void **state)
{
	(void)state;
	struct snap_writer w;
	struct snap_file f;
	struct verr e = {0};
	snap_writer_init(&w);
	assert_int_equal(snap_add(&w, SNAP_SERIAL, 0, "abc", 3, &e), 0);
	assert_int_equal(snap_add(&w, SNAP_SERIAL, 1, "abc", 3, &e), 0);
	snap_writer_finish(&w);
	/* the second one's index to 0, its checksum made again */
	uint8_t *s = w.data + SNAP_HEADER_LEN + SNAP_SECTION_HDR_LEN + 8;
	s[4] = 0;
	uLong c = crc32(crc32(0L, Z_NULL, 0), s, 16);
	c = crc32(c, s + SNAP_SECTION_HDR_LEN, 3);
	for (int i = 0; i < 4; i++)
		s[16 + i] = (uint8_t)(c >> (8 * i));
	assert_int_equal(snap_parse(w.data, w.len, "state", &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "two serial sections for 0"));
	snap_writer_free(&w);
}

/* Written through a temporary file and read back; a missing file, a directory and a file past the
 * bound are refused. */
static void files(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_snapfile.XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	struct snap_writer w;
	struct snap_file f;
	struct verr e = {0};
	uint8_t *data;
	build(&w);
	assert_int_equal(snap_write_at(dfd, "state", &w, &e), 0);
	assert_int_equal(faccessat(dfd, ".state.tmp", F_OK, 0), -1);
	assert_int_equal(snap_read_at(dfd, "state", &data, &f, &e), 0);
	assert_int_equal(f.nsections, 2 * NTYPES);
	assert_string_equal(f.name, "state");
	snap_file_free(&f);
	free(data);
	assert_int_equal(snap_read_at(dfd, "nothing", &data, &f, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "nothing: cannot open it"));
	assert_int_equal(mkdirat(dfd, "sub", 0700), 0);
	assert_int_equal(snap_read_at(dfd, "sub", &data, &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));
	int big = openat(dfd, "big", O_WRONLY | O_CREAT, 0600);
	assert_true(big >= 0);
	assert_int_equal(ftruncate(big, (off_t)SNAP_MAX_FILE + 1), 0);
	close(big);
	assert_int_equal(snap_read_at(dfd, "big", &data, &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "past this vmm's"));
	unlinkat(dfd, "big", 0);
	unlinkat(dfd, "sub", AT_REMOVEDIR);
	unlinkat(dfd, "state", 0);
	close(dfd);
	rmdir(dir);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),      cmocka_unit_test(writer_refuses),
	    cmocka_unit_test(truncated),       cmocka_unit_test(bit_flips),
	    cmocka_unit_test(hostile_headers), cmocka_unit_test(duplicate_section),
	    cmocka_unit_test(files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
