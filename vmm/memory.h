/* Guest physical memory: one host mapping split into the regions the architecture lays out, and
 * the ONE checked accessor that turns a guest physical address into a host pointer. */
#ifndef VMM_MEMORY_H
#define VMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2
#define GUEST_PAGE_SIZE	      4096ULL /* x86-64: the host page, what mmap maps */

struct guest_region {
	uint64_t gpa;  /* guest physical start */
	uint64_t size; /* bytes, page multiple */
	uint8_t *host; /* host address of gpa */
};

struct guest_mem {
	struct guest_region region[GUEST_MEM_MAX_REGIONS];
	unsigned nr_regions;
	uint64_t total; /* sum of region sizes */
	uint8_t *map;	/* the one host mapping behind all regions */
	size_t map_len;
};

/* Maps `total` bytes of anonymous memory (read/write, never executable, MAP_NORESERVE,
 * MADV_DONTDUMP) and lays them out as the given regions (sizes must add up to total, gpas
 * ascending and non-overlapping). Returns 0 or a negative errno. */
int guest_mem_init(struct guest_mem *m, const struct guest_region *layout, unsigned nr);
void guest_mem_free(struct guest_mem *m);

/* Replaces guest memory [gpa, gpa+len) with a private copy-on-write mapping of the file's bytes
 * [off, off+len) (MAP_PRIVATE|MAP_FIXED: read/write, never executable, MADV_DONTDUMP like the
 * rest, the guest's writes stay in this process). gpa, off and len must be page multiples, len
 * > 0 (-EINVAL), and the range must lie inside one region (-EFAULT, checked by guest_mem_ptr).
 * The caller makes sure the file holds all those bytes: a page past its end is not an error here
 * but a SIGBUS (or a failing KVM_RUN) when touched. On failure (-errno) the range is fresh zero
 * memory again or, if even that could not be mapped, a hole (a pread into it fails with EFAULT):
 * the caller must then not start the VM. Works before or after the regions are registered with
 * KVM, which follows whatever the host addresses map (vmm loads before it registers them). */
int guest_mem_map_file(const struct guest_mem *m, uint64_t gpa, uint64_t len, int fd, uint64_t off);

/* Gives guest memory [gpa, gpa+len) fresh anonymous zero pages again (a mapping of a file there is
 * gone). Page multiples, inside one region. 0, -EINVAL, -EFAULT or -errno of mmap. */
int guest_mem_discard(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* The checked accessor: a host pointer to [gpa, gpa+len) if that whole range lies inside one
 * region (overflow-safe), else NULL. len 0 is valid for any gpa inside a region or at its end. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy helpers built on guest_mem_ptr: 0 or -EFAULT, nothing copied on failure. */
int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);

/* End of the region that starts at gpa 0 (the RAM below the MMIO hole). */
uint64_t guest_mem_low_end(const struct guest_mem *m);

#endif
