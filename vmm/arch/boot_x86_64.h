/* x86-64 boot structures vmm writes into guest memory before the first instruction: the memory
 * map, the PVH start info or the bzImage zero page, GDT, identity page tables and the MP table. */
#ifndef VMM_BOOT_X86_64_H
#define VMM_BOOT_X86_64_H

#include "vmm/loader/loader.h"
#include "vmm/memory.h"

#include <stdint.h>

/* Guest-physical layout below 1 MiB (all inside RAM the e820 map gives the kernel, except the
 * MP table, which sits in the BIOS area Linux always reserves). */
#define BOOT_GDT_ADDR	     0x500ULL
#define BOOT_START_INFO_ADDR 0x6000ULL /* PVH hvm_start_info, then modlist and memmap */
#define BOOT_ZERO_PAGE_ADDR  0x7000ULL /* bzImage boot_params */
#define BOOT_PML4_ADDR	     0x9000ULL /* then PDPT at 0xa000 and 4 PDs at 0xb000-0xefff */
#define BOOT_CMDLINE_ADDR    0x20000ULL
#define BOOT_CMDLINE_MAX     0x10000ULL
#define EBDA_START	     0x9fc00ULL
#define BIOS_AREA_START	     0xf0000ULL
#define MPTABLE_ADDR	     BIOS_AREA_START
#define HIMEM_START	     0x100000ULL

/* The MMIO hole below 4 GiB: I/O APIC, local APIC, KVM's TSS and identity map, later virtio-mmio.
 */
#define MMIO_HOLE_START	      0xc0000000ULL
#define MMIO_HOLE_END	      0x100000000ULL
#define IOAPIC_ADDR	      0xfec00000ULL
#define LAPIC_ADDR	      0xfee00000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define KVM_TSS_ADDR	      0xfffbd000ULL

/* GDT selectors: one table serves both entry modes. */
#define GDT_SEL_CODE32 0x08
#define GDT_SEL_CODE64 0x10
#define GDT_SEL_DATA   0x18
#define GDT_SEL_TSS    0x20
#define GDT_ENTRIES    5
extern const uint64_t boot_gdt[GDT_ENTRIES];

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      8
struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
};

/* Splits `total` bytes of RAM around the MMIO hole: region 0 at gpa 0, region 1 at 4 GiB if the
 * RAM does not fit below the hole. Returns the number of regions. */
unsigned x86_memory_layout(uint64_t total, struct guest_region out[GUEST_MEM_MAX_REGIONS]);

/* The memory map the guest is given. Returns the number of entries written (<= E820_MAX). */
unsigned x86_e820(const struct guest_mem *m, struct e820_entry out[E820_MAX]);

/* Writes the Intel MP table (floating pointer + configuration table) for ncpus CPUs, the I/O APIC
 * and the 16 ISA interrupts at `gpa`. Returns 0 or -EFAULT/-EINVAL. */
int mptable_write(const struct guest_mem *m, uint64_t gpa, unsigned ncpus);

/* Everything the kernel reads at entry: the command line, the memory map, the PVH start info or
 * the zero page, GDT, page tables (bzImage) and the MP table. initrd_size 0 means no initrd. */
int x86_boot_setup(const struct guest_mem *m, const struct kernel_image *k, const char *cmdline,
		   uint64_t initrd_gpa, uint64_t initrd_size, unsigned ncpus, struct verr *e);

#endif
