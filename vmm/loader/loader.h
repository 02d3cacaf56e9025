/* Kernel and initrd loading into guest memory: PVH vmlinux (ELF) and bzImage. The loaders check
 * every field they take from the file against the file's size and the guest's memory. */
#ifndef VMM_LOADER_H
#define VMM_LOADER_H

#include "vmm/log.h"
#include "vmm/memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kernel_kind {
	KERNEL_PVH_ELF, /* vmlinux entered at its XEN_ELFNOTE_PHYS32_ENTRY in 32-bit mode */
	KERNEL_BZIMAGE, /* bzImage entered through the 64-bit boot protocol */
};

#define BZIMAGE_LOAD_ADDR	0x100000ULL
#define BZIMAGE_SETUP_HDR_START 0x1f1
#define BZIMAGE_SETUP_HDR_MAX	0x290 /* the setup header never reaches past this in boot_params */

struct kernel_image {
	enum kernel_kind kind;
	uint64_t entry;	     /* guest-physical entry point */
	uint64_t load_start; /* guest-physical span the kernel occupies or needs while booting */
	uint64_t load_end;
	uint32_t cmdline_max;	 /* longest command line the kernel takes, without the NUL */
	uint64_t initrd_end_max; /* an initrd must end at or below this address */
	/* bzImage only: its setup header, to copy into boot_params at the same offset */
	uint8_t setup_hdr[BZIMAGE_SETUP_HDR_MAX];
	uint32_t setup_hdr_end; /* offset just past the header's last byte */
};

/* Reads the kernel at `path`, recognises its format, and loads it into m. Returns 0 or a negative
 * errno with e describing the problem (truncated file, wrong format, does not fit in memory). */
int kernel_load(const struct guest_mem *m, const char *path, struct kernel_image *k,
		struct verr *e);

/* The format-specific halves, on an open file of the given size (exposed for unit tests). */
int elf_pvh_load(const struct guest_mem *m, int fd, uint64_t fsize, struct kernel_image *k,
		 struct verr *e);
int bzimage_load(const struct guest_mem *m, int fd, uint64_t fsize, struct kernel_image *k,
		 struct verr *e);

/* Loads the initrd as high as it may go below 4 GiB (and below k->initrd_end_max), page aligned,
 * above the kernel. Sets *gpa and *size. */
int initrd_load(const struct guest_mem *m, const char *path, const struct kernel_image *k,
		uint64_t *gpa, uint64_t *size, struct verr *e);
/* The same for an initrd already in memory (the agent initramfs built into vmm): copied. Mapping
 * it from vmm's own file (/proc/self/exe) is not done: vmm-jail mounts no /proc, the archive is
 * small (about 0.7 MiB, one memcpy from pages vmm's processes already share), and Linux poisons
 * the whole initrd when it frees it after unpacking, so every page would turn private anyway. */
int initrd_load_mem(const struct guest_mem *m, const void *data, size_t len,
		    const struct kernel_image *k, uint64_t *gpa, uint64_t *size, struct verr *e);

/* Whether fd's file lies on a filesystem vmm maps from: local ones, whose warm page cache serves
 * a fault without I/O: ext4, XFS, F2FS, erofs and squashfs on a block device, tmpfs, ramfs,
 * overlayfs and btrfs. Not network or FUSE filesystems (NFS, 9p, virtiofs, CIFS...): another
 * machine can truncate or rewrite a file there behind this host's back, and each fault may cost
 * a round trip (9p without a cache reads one page per fault: five times slower boots in the
 * nested harness). fs_is_mappable decides from statfs's f_type and the major of st_dev. */
bool file_is_mappable(int fd);
bool fs_is_mappable(unsigned long f_type, unsigned dev_major);

/* Puts the file's bytes [off, off+len) into guest memory at gpa. When off and gpa agree modulo the
 * page size, the pages wholly inside the range are mapped from the file (guest_mem_map_file:
 * copy-on-write, so every VM booted from one file shares its page-cache pages until it writes
 * them); the partial pages at either end are copied, so the guest sees no byte of the file
 * outside the range and the rest of those pages stays zero. Everything is copied when the two
 * disagree, the file is not on a filesystem vmm maps from (file_is_mappable) or the mapping fails.
 * Checks off + len <= fsize first (a mapped page past the file's end would fault later instead of
 * failing here) and, after mapping, that the file has not shrunk meanwhile. Returns 0, -EFAULT (the
 * range is not inside one guest memory region), -EIO (the file is shorter) or -errno; *mapped (if
 * not NULL) gets the bytes mapped. */
int load_file_range(const struct guest_mem *m, uint64_t gpa, int fd, uint64_t fsize, uint64_t off,
		    uint64_t len, uint64_t *mapped);

/* pread that loops over short reads and EINTR: 0, -EIO when the file ends early, or -errno. */
int pread_full(int fd, void *buf, size_t len, uint64_t off);

#endif
