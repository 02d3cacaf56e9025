/* x86 boot structure tests: memory layout around the MMIO hole, e820, PVH start info, the bzImage
 * zero page, the MP table (checksums and entries), command line limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/fake_kernel.h"
#include "vmm/arch/boot_x86_64.h"
#include "vmm/loader/cmdline.h"
#include "vmm/loader/loader.h"

#include <errno.h>

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static void layout_small_and_large(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	assert_int_equal(x86_memory_layout(128 * MIB, r), 1);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, 128 * MIB);
	assert_int_equal(x86_memory_layout(8 * GIB, r), 2);
	assert_int_equal(r[0].size, MMIO_HOLE_START);
	assert_int_equal(r[1].gpa, 4 * GIB);
	assert_int_equal(r[1].size, 8 * GIB - MMIO_HOLE_START);
}

static void e820_map(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m;
	unsigned n = x86_memory_layout(5 * GIB, r);
	assert_int_equal(guest_mem_init(&m, r, n), 0);
	struct e820_entry e[E820_MAX];
	unsigned ne = x86_e820(&m, e);
	assert_int_equal(ne, 4);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, EBDA_START);
	assert_int_equal(e[0].type, E820_RAM);
	assert_int_equal(e[1].addr, BIOS_AREA_START);
	assert_int_equal(e[1].type, E820_RESERVED);
	assert_int_equal(e[2].addr, HIMEM_START);
	assert_int_equal(e[2].addr + e[2].size, MMIO_HOLE_START);
	assert_int_equal(e[3].addr, 4 * GIB);
	assert_int_equal(e[3].size, 5 * GIB - MMIO_HOLE_START);
	/* no RAM entry overlaps the MP table or the MMIO hole */
	for (unsigned i = 0; i < ne; i++) {
		if (e[i].type != E820_RAM)
			continue;
		assert_false(e[i].addr < MPTABLE_ADDR + 0x1000 &&
			     MPTABLE_ADDR < e[i].addr + e[i].size);
		assert_false(e[i].addr < MMIO_HOLE_END && MMIO_HOLE_START < e[i].addr + e[i].size);
	}
	guest_mem_free(&m);
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static void mptable(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, r, x86_memory_layout(64 * MIB, r)), 0);
	for (unsigned ncpus = 1; ncpus <= 254; ncpus += 253) {
		assert_int_equal(mptable_write(&m, MPTABLE_ADDR, ncpus), 0);
		uint8_t *mpf = guest_mem_ptr(&m, MPTABLE_ADDR, 16);
		assert_memory_equal(mpf, "_MP_", 4);
		assert_int_equal(sum(mpf, 16), 0);
		uint32_t phys;
		memcpy(&phys, mpf + 4, 4);
		uint8_t *mpc = guest_mem_ptr(&m, phys, 44);
		assert_memory_equal(mpc, "PCMP", 4);
		uint16_t len, count;
		memcpy(&len, mpc + 4, 2);
		memcpy(&count, mpc + 34, 2);
		assert_int_equal(sum(mpc, len), 0);
		/* cpus + bus + ioapic + 24 pins + 2 local */
		assert_int_equal(count, ncpus + 1 + 1 + 24 + 2);
		/* first processor entry is the enabled BSP with APIC ID 0 */
		assert_int_equal(mpc[44], 0);
		assert_int_equal(mpc[45], 0);
		assert_int_equal(mpc[47], 3);
		/* the table stays inside the BIOS area */
		assert_true(MPTABLE_ADDR + 16 + len <= HIMEM_START);
	}
	assert_int_equal(mptable_write(&m, MPTABLE_ADDR, 0), -EINVAL);
	assert_int_equal(mptable_write(&m, MPTABLE_ADDR, 255), -EINVAL);
	assert_int_equal(mptable_write(&m, 64 * MIB - 8, 1), -EFAULT);
	guest_mem_free(&m);
}

static void pvh_start_info(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, r, x86_memory_layout(64 * MIB, r)), 0);
	struct kernel_image k = {.kind = KERNEL_PVH_ELF, .cmdline_max = 2047};
	struct verr e = {0};
	assert_int_equal(x86_boot_setup(&m, &k, "console=ttyS0", 0x3000000, 12345, 2, &e), 0);
	uint32_t *si = guest_mem_ptr(&m, BOOT_START_INFO_ADDR, 56);
	assert_int_equal(si[0], 0x336ec578); /* magic */
	assert_int_equal(si[1], 1);	     /* version */
	assert_int_equal(si[3], 1);	     /* one module: the initrd */
	uint64_t modlist, cmdline, memmap;
	memcpy(&modlist, (uint8_t *)si + 16, 8);
	memcpy(&cmdline, (uint8_t *)si + 24, 8);
	memcpy(&memmap, (uint8_t *)si + 40, 8);
	assert_int_equal(cmdline, BOOT_CMDLINE_ADDR);
	assert_string_equal((char *)guest_mem_ptr(&m, cmdline, 14), "console=ttyS0");
	uint64_t *mod = guest_mem_ptr(&m, modlist, 32);
	assert_int_equal(mod[0], 0x3000000);
	assert_int_equal(mod[1], 12345);
	assert_int_equal(si[12], 3); /* memmap entries for 64 MiB */
	uint64_t *mm = guest_mem_ptr(&m, memmap, 24 * 3);
	assert_int_equal(mm[0], 0);
	assert_int_equal(mm[1], EBDA_START);
	guest_mem_free(&m);
}

static void bzimage_zero_page(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, r, x86_memory_layout(64 * MIB, r)), 0);
	static uint8_t b[FAKE_BZ_SIZE];
	fake_bzimage_build(b, 8 * MIB);
	int fd = fake_file(b, sizeof(b));
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(bzimage_load(&m, fd, sizeof(b), &k, &e), 0);
	close(fd);
	assert_int_equal(x86_boot_setup(&m, &k, "quiet", 0x2000000, 4096, 1, &e), 0);
	uint8_t *bp = guest_mem_ptr(&m, BOOT_ZERO_PAGE_ADDR, 4096);
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(bp[0x210], 0xff);	  /* type_of_loader */
	assert_int_equal(bp[0x211] & 0x81, 0x81); /* LOADED_HIGH | CAN_USE_HEAP */
	uint32_t v;
	memcpy(&v, bp + 0x228, 4);
	assert_int_equal(v, BOOT_CMDLINE_ADDR);
	memcpy(&v, bp + 0x218, 4);
	assert_int_equal(v, 0x2000000);
	memcpy(&v, bp + 0x21c, 4);
	assert_int_equal(v, 4096);
	assert_int_equal(bp[0x1e8], 3); /* e820 entries */
	uint64_t addr;
	memcpy(&addr, bp + 0x2d0 + 2 * 20, 8);
	assert_int_equal(addr, HIMEM_START);
	/* identity map: the PD entry for 1 GiB maps 1 GiB */
	uint64_t *pd = guest_mem_ptr(&m, BOOT_PML4_ADDR + 0x2000, 4 * 4096);
	assert_int_equal(pd[512] & ~0xfffULL, GIB);
	assert_int_equal(pd[512] & 0x83, 0x83);
	guest_mem_free(&m);
}

static void cmdline_limits(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, r, x86_memory_layout(64 * MIB, r)), 0);
	struct kernel_image k = {.kind = KERNEL_PVH_ELF, .cmdline_max = 2047};
	struct verr e = {0};
	static char longline[3000];
	memset(longline, 'a', sizeof(longline) - 1);
	assert_int_equal(x86_boot_setup(&m, &k, longline, 0, 0, 1, &e), -E2BIG);
	assert_non_null(strstr(e.msg, "at most 2047"));
	longline[2047] = '\0';
	assert_int_equal(x86_boot_setup(&m, &k, longline, 0, 0, 1, &e), 0);
	guest_mem_free(&m);
}

static void cmdline_compose(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(cmdline_build(buf, sizeof(buf), "a=1", NULL), 0);
	assert_string_equal(buf, "a=1");
	assert_int_equal(cmdline_build(buf, sizeof(buf), "a=1", "b=2 -- x y"), 0);
	assert_string_equal(buf, "a=1 b=2 -- x y");
	assert_int_equal(cmdline_add(buf, sizeof(buf), "dev=3"), 0);
	assert_string_equal(buf, "a=1 b=2 dev=3 -- x y");
	assert_int_equal(cmdline_build(buf, sizeof(buf), "a=1", ""), 0);
	assert_int_equal(cmdline_add(buf, sizeof(buf), "dev=3"), 0);
	assert_string_equal(buf, "a=1 dev=3");
	strcpy(buf, "-- x");
	assert_int_equal(cmdline_add(buf, sizeof(buf), "d"), 0);
	assert_string_equal(buf, "d -- x");
	strcpy(buf, "a --");
	assert_int_equal(cmdline_add(buf, sizeof(buf), "d"), 0);
	assert_string_equal(buf, "a d --");
	char tiny[8];
	assert_int_equal(cmdline_build(tiny, sizeof(tiny), "abcdef", "gh"), -E2BIG);
	strcpy(tiny, "abcd");
	assert_int_equal(cmdline_add(tiny, sizeof(tiny), "xyz"), -E2BIG);
	assert_string_equal(tiny, "abcd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(layout_small_and_large),
	    cmocka_unit_test(e820_map),
	    cmocka_unit_test(mptable),
	    cmocka_unit_test(pvh_start_info),
	    cmocka_unit_test(bzimage_zero_page),
	    cmocka_unit_test(cmdline_limits),
	    cmocka_unit_test(cmdline_compose),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
