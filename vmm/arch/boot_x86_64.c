/* Writes the x86-64 boot structures: e820 map, PVH hvm_start_info or bzImage boot_params,
 * GDT and identity-mapped page tables. Field offsets follow the Xen PVH ABI
 * (xen/include/public/arch-x86/hvm/start_info.h) and Linux's boot protocol (boot_params). */
#include "vmm/arch/boot_x86_64.h"

#include <errno.h>
#include <string.h>

/* flat 4 GiB segments; the TSS entry only exists because PVH requires a valid TR */
const uint64_t boot_gdt[GDT_ENTRIES] = {
    0,
    0x00cf9b000000ffffULL, /* 0x08: 32-bit code, read/exec, accessed */
    0x00af9b000000ffffULL, /* 0x10: 64-bit code */
    0x00cf93000000ffffULL, /* 0x18: data, read/write, accessed */
    0x00008b0000000067ULL, /* 0x20: 32-bit TSS, busy, base 0, limit 0x67 */
};

unsigned x86_memory_layout(uint64_t total, struct guest_region out[GUEST_MEM_MAX_REGIONS])
{
	memset(out, 0, sizeof(out[0]) * GUEST_MEM_MAX_REGIONS);
	out[0].gpa = 0;
	if (total <= MMIO_HOLE_START) {
		out[0].size = total;
		return 1;
	}
	out[0].size = MMIO_HOLE_START;
	out[1].gpa = MMIO_HOLE_END;
	out[1].size = total - MMIO_HOLE_START;
	return 2;
}

unsigned x86_e820(const struct guest_mem *m, struct e820_entry out[E820_MAX])
{
	unsigned n = 0;
	uint64_t low_end = guest_mem_low_end(m);
	out[n++] = (struct e820_entry){0, EBDA_START, E820_RAM};
	out[n++] =
	    (struct e820_entry){BIOS_AREA_START, HIMEM_START - BIOS_AREA_START, E820_RESERVED};
	if (low_end > HIMEM_START)
		out[n++] = (struct e820_entry){HIMEM_START, low_end - HIMEM_START, E820_RAM};
	for (unsigned i = 0; i < m->nr_regions; i++)
		if (m->region[i].gpa >= MMIO_HOLE_END)
			out[n++] =
			    (struct e820_entry){m->region[i].gpa, m->region[i].size, E820_RAM};
	return n;
}

/* ---- PVH: struct hvm_start_info and friends (version 1, with memory map) ---- */
#define HVM_START_MAGIC 0x336ec578u
struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info ABI");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry ABI");
_Static_assert(sizeof(struct hvm_memmap_entry) == 24, "hvm_memmap_table_entry ABI");

#define PVH_MODLIST_ADDR (BOOT_START_INFO_ADDR + 0x40)
#define PVH_MEMMAP_ADDR	 (BOOT_START_INFO_ADDR + 0x80)

static int write_pvh(const struct guest_mem *m, const struct e820_entry *map, unsigned n,
		     uint64_t initrd_gpa, uint64_t initrd_size)
{
	struct hvm_start_info si = {
	    .magic = HVM_START_MAGIC,
	    .version = 1,
	    .cmdline_paddr = BOOT_CMDLINE_ADDR,
	    .memmap_paddr = PVH_MEMMAP_ADDR,
	    .memmap_entries = n,
	};
	if (initrd_size) {
		struct hvm_modlist_entry mod = {.paddr = initrd_gpa, .size = initrd_size};
		si.nr_modules = 1;
		si.modlist_paddr = PVH_MODLIST_ADDR;
		if (guest_mem_write(m, PVH_MODLIST_ADDR, &mod, sizeof(mod)) < 0)
			return -EFAULT;
	}
	for (unsigned i = 0; i < n; i++) {
		struct hvm_memmap_entry me = {map[i].addr, map[i].size, map[i].type, 0};
		if (guest_mem_write(m, PVH_MEMMAP_ADDR + i * sizeof(me), &me, sizeof(me)) < 0)
			return -EFAULT;
	}
	return guest_mem_write(m, BOOT_START_INFO_ADDR, &si, sizeof(si));
}

/* ---- bzImage: struct boot_params ("zero page") offsets ---- */
#define BP_EXT_RAMDISK_IMAGE  0x0c0
#define BP_EXT_RAMDISK_SIZE   0x0c4
#define BP_EXT_CMD_LINE_PTR   0x0c8
#define BP_E820_ENTRIES	      0x1e8
#define BP_TYPE_OF_LOADER     0x210
#define BP_LOADFLAGS	      0x211
#define BP_RAMDISK_IMAGE      0x218
#define BP_RAMDISK_SIZE	      0x21c
#define BP_HEAP_END_PTR	      0x224
#define BP_CMD_LINE_PTR	      0x228
#define BP_E820_TABLE	      0x2d0
#define LOADFLAG_CAN_USE_HEAP 0x80

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static int write_zero_page(const struct guest_mem *m, const struct kernel_image *k,
			   const struct e820_entry *map, unsigned n, uint64_t initrd_gpa,
			   uint64_t initrd_size)
{
	uint8_t *bp = guest_mem_ptr(m, BOOT_ZERO_PAGE_ADDR, 4096);
	if (!bp)
		return -EFAULT;
	memset(bp, 0, 4096);
	memcpy(bp + BZIMAGE_SETUP_HDR_START, k->setup_hdr + BZIMAGE_SETUP_HDR_START,
	       k->setup_hdr_end - BZIMAGE_SETUP_HDR_START);
	bp[BP_TYPE_OF_LOADER] = 0xff; /* "undefined" boot loader */
	bp[BP_LOADFLAGS] |= LOADFLAG_CAN_USE_HEAP;
	uint16_t heap_end = 0xfe00;
	memcpy(bp + BP_HEAP_END_PTR, &heap_end, 2);
	put32(bp + BP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	put32(bp + BP_EXT_CMD_LINE_PTR, (uint32_t)(BOOT_CMDLINE_ADDR >> 32));
	put32(bp + BP_RAMDISK_IMAGE, (uint32_t)initrd_gpa);
	put32(bp + BP_RAMDISK_SIZE, (uint32_t)initrd_size);
	put32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_gpa >> 32));
	put32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(initrd_size >> 32));
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = bp + BP_E820_TABLE + i * 20;
		memcpy(e, &map[i].addr, 8);
		memcpy(e + 8, &map[i].size, 8);
		put32(e + 16, map[i].type);
	}
	return 0;
}

/* Identity map of the first 4 GiB with 2 MiB pages: the 64-bit boot protocol needs the kernel,
 * zero page, command line and initrd mapped 1:1. */
static int write_page_tables(const struct guest_mem *m)
{
	uint64_t *pml4 = guest_mem_ptr(m, BOOT_PML4_ADDR, 4096);
	uint64_t *pdpt = guest_mem_ptr(m, BOOT_PML4_ADDR + 0x1000, 4096);
	uint64_t *pd = guest_mem_ptr(m, BOOT_PML4_ADDR + 0x2000, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = (BOOT_PML4_ADDR + 0x1000) | 0x3; /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4_ADDR + 0x2000 + i * 0x1000) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
	return 0;
}

int x86_boot_setup(const struct guest_mem *m, const struct kernel_image *k, const char *cmdline,
		   uint64_t initrd_gpa, uint64_t initrd_size, unsigned ncpus, struct verr *e)
{
	size_t len = strlen(cmdline);
	if (len > k->cmdline_max || len >= BOOT_CMDLINE_MAX)
		return verr_set(e, -E2BIG,
				"kernel command line is %zu bytes, this kernel takes at most %u: "
				"shorten --cmdline",
				len, k->cmdline_max);
	if (guest_mem_write(m, BOOT_CMDLINE_ADDR, cmdline, len + 1) < 0 ||
	    guest_mem_write(m, BOOT_GDT_ADDR, boot_gdt, sizeof(boot_gdt)) < 0)
		return verr_set(e, -EFAULT, "guest memory too small for boot structures");

	struct e820_entry map[E820_MAX];
	unsigned n = x86_e820(m, map);
	int r = k->kind == KERNEL_PVH_ELF ? write_pvh(m, map, n, initrd_gpa, initrd_size)
					  : write_zero_page(m, k, map, n, initrd_gpa, initrd_size);
	if (r == 0 && k->kind == KERNEL_BZIMAGE)
		r = write_page_tables(m);
	if (r < 0)
		return verr_set(e, r, "cannot write boot structures into guest memory");
	r = mptable_write(m, MPTABLE_ADDR, ncpus);
	if (r < 0)
		return verr_set(e, r, "cannot write the MP table for %u CPUs", ncpus);
	return 0;
}
