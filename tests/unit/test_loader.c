/* Loader tests: PVH ELF and bzImage parsing against synthetic kernels, good and hostile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/fake_kernel.h"
#include "vmm/boot_x86_64.h"
#include "vmm/loader.h"

#include <errno.h>
#include <stdio.h>

#define MIB (1ULL << 20)

static struct guest_mem mem;

static int setup_64m(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	unsigned n = x86_memory_layout(64 * MIB, r);
	return guest_mem_init(&mem, r, n);
}

static int teardown(void **state)
{
	(void)state;
	guest_mem_free(&mem);
	return 0;
}

static int load_elf(struct fake_elf *f, size_t len, struct kernel_image *k, struct verr *e)
{
	int fd = fake_file(f, len);
	assert_true(fd >= 0);
	int r = elf_pvh_load(&mem, fd, len, k, e);
	close(fd);
	return r;
}

static void elf_pvh_ok(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 2 * MIB, 1);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), 0);
	assert_int_equal(k.kind, KERNEL_PVH_ELF);
	assert_int_equal(k.entry, FAKE_ENTRY);
	assert_int_equal(k.load_start, FAKE_LOAD_ADDR);
	assert_int_equal(k.load_end, FAKE_LOAD_ADDR + 2 * MIB);
	assert_memory_equal(guest_mem_ptr(&mem, FAKE_LOAD_ADDR, sizeof(f.payload)), f.payload,
			    sizeof(f.payload));
}

static void elf_without_pvh_note(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 0, 0);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, "CONFIG_PVH"));
}

static void elf_truncated(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 0, 1);
	struct kernel_image k;
	struct verr e = {0};
	/* header only */
	assert_int_equal(load_elf(&f, 20, &k, &e), -ENOEXEC);
	/* program headers present, segment data cut off */
	assert_int_equal(load_elf(&f, len - 100, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, "past the end of the file"));
}

static void elf_too_large_for_memory(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 100 * MIB, 1);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOMEM);
	assert_non_null(strstr(e.msg, "raise --memory"));
}

static void elf_hostile_fields(void **state)
{
	(void)state;
	struct fake_elf f;
	struct kernel_image k;
	struct verr e = {0};
	size_t len = fake_elf_build(&f, 0, 1);
	f.eh.e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.eh.e_phnum = 60000; /* absurd table */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.eh.e_phoff = UINT64_MAX - 8; /* wraps */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.ph[0].p_offset = UINT64_MAX - 10; /* offset + size wraps */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.ph[0].p_paddr = UINT64_MAX - 100; /* address + size wraps */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOMEM);

	fake_elf_build(&f, 0, 1);
	f.ph[0].p_paddr = 0x1000; /* over vmm's boot structures */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.entry = 0x500; /* entry outside the kernel */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.nh.n_descsz = 0x7fffffff; /* note claims more than the segment */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);
}

static void bzimage_ok(void **state)
{
	(void)state;
	static uint8_t b[FAKE_BZ_SIZE];
	fake_bzimage_build(b, 8 * MIB);
	int fd = fake_file(b, sizeof(b));
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(bzimage_load(&mem, fd, sizeof(b), &k, &e), 0);
	close(fd);
	assert_int_equal(k.kind, KERNEL_BZIMAGE);
	assert_int_equal(k.entry, BZIMAGE_LOAD_ADDR + 0x200);
	assert_int_equal(k.load_end, BZIMAGE_LOAD_ADDR + 8 * MIB);
	assert_int_equal(k.cmdline_max, 2047);
	assert_int_equal(k.setup_hdr_end, 0x268);
	assert_int_equal(k.initrd_end_max, 0x80000000ULL);
	assert_memory_equal(guest_mem_ptr(&mem, BZIMAGE_LOAD_ADDR, FAKE_BZ_PAYLOAD),
			    b + (FAKE_BZ_SETUP_SECTS + 1) * 512, FAKE_BZ_PAYLOAD);
}

static void bzimage_bad(void **state)
{
	(void)state;
	static uint8_t b[FAKE_BZ_SIZE];
	struct kernel_image k;
	struct verr e = {0};
	struct {
		const char *what;
		size_t off;
		uint8_t val;
		int expect;
	} cases[] = {
	    {"no boot flag", 0x1fe, 0, -ENOEXEC},
	    {"old protocol", 0x206, 0x00, -ENOEXEC}, /* 2.00 */
	    {"no 64-bit entry", 0x236, 0, -ENOEXEC},
	    {"setup past end", 0x1f1, 200, -ENOEXEC},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_bzimage_build(b, 8 * MIB);
		b[cases[i].off] = cases[i].val;
		int fd = fake_file(b, sizeof(b));
		int r = bzimage_load(&mem, fd, sizeof(b), &k, &e);
		close(fd);
		if (r != cases[i].expect)
			fail_msg("%s: got %d, want %d (%s)", cases[i].what, r, cases[i].expect,
				 e.msg);
	}
	/* needs more memory to decompress than the guest has */
	fake_bzimage_build(b, 200 * MIB);
	int fd = fake_file(b, sizeof(b));
	assert_int_equal(bzimage_load(&mem, fd, sizeof(b), &k, &e), -ENOMEM);
	close(fd);
	assert_non_null(strstr(e.msg, "raise --memory"));
	/* truncated below the header */
	fd = fake_file(b, 600);
	assert_int_equal(bzimage_load(&mem, fd, 600, &k, &e), -ENOEXEC);
	close(fd);
}

static void kernel_load_detects_format(void **state)
{
	(void)state;
	char path[] = "/tmp/vmm-test-kernel-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage garbage garbage", 23), 23);
	close(fd);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(kernel_load(&mem, path, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, path));
	unlink(path);
	assert_int_equal(kernel_load(&mem, "/nonexistent/vmlinux", &k, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "cannot open"));
	assert_int_equal(kernel_load(&mem, "/", &k, &e), -EINVAL);
}

static void initrd_placement(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 2 * MIB, 1);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), 0);

	char path[] = "/tmp/vmm-test-initrd-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static uint8_t data[10000];
	memset(data, 0xab, sizeof(data));
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	uint64_t gpa, size;
	assert_int_equal(initrd_load(&mem, path, &k, &gpa, &size, &e), 0);
	assert_int_equal(size, sizeof(data));
	assert_int_equal(gpa & 0xfff, 0);
	assert_true(gpa >= k.load_end);
	assert_true(gpa + size <= 64 * MIB);
	assert_memory_equal(guest_mem_ptr(&mem, gpa, size), data, size);

	/* an initrd bigger than the RAM left above the kernel */
	assert_int_equal(ftruncate(fd, 60 * MIB), 0);
	assert_int_equal(initrd_load(&mem, path, &k, &gpa, &size, &e), -ENOMEM);
	assert_non_null(strstr(e.msg, "raise --memory"));
	/* empty */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(initrd_load(&mem, path, &k, &gpa, &size, &e), -EINVAL);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(elf_pvh_ok, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_without_pvh_note, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_truncated, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_too_large_for_memory, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_hostile_fields, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(bzimage_ok, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(bzimage_bad, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(kernel_load_detects_format, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(initrd_placement, setup_64m, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
