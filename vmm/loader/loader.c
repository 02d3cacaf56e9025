/* Kernel format detection and initrd placement; the formats live in loader_elf.c and
 * loader_bzimage.c. */
#include "vmm/loader/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Mapping instead of copying makes the guest's memory depend on the file for as long as the VM
 * runs, not only while it loads: pages the guest has not written are the file's page-cache pages
 * (and are read from the file again after the host reclaims them). The contract (Firecracker's
 * snapshot memory file, which it maps MAP_PRIVATE too, is depended on the same way) is that kernel
 * and initrd files are not changed in place while a VM booted from them runs: replace them by
 * renaming a new file over the name, as kernel-config/build.sh and mkcpio do. Truncating one
 * stops the VM (KVM_RUN fails with EFAULT on the guest's next touch of a page past the new end,
 * or vmm gets SIGBUS if it touches one); rewriting it changes kernel text the guest has not
 * written. Neither reaches the host: the fd is read-only and MAP_PRIVATE writes stay in this
 * process. vmm guards the load itself (the size is checked before mapping and again after it),
 * takes no lease (F_SETLEASE needs the file's owner or CAP_LEASE, and only delays a writer), and
 * maps only from local filesystems (file_is_mappable), where only this host's writers, whom the
 * contract binds, can change a file. See docs/security.md and docs/performance.md. */
bool fs_is_mappable(unsigned long f_type, unsigned dev_major)
{
	/* On a block device of their own (a real major number). A 9p mount reports its server's
	 * filesystem type (9P2000.L passes the host's statfs through: ext4 in the nested harness)
	 * but has an anonymous device, major 0, as NFS and FUSE have. */
	static const unsigned long on_disk[] = {EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, F2FS_SUPER_MAGIC,
						EROFS_SUPER_MAGIC_V1, SQUASHFS_MAGIC};
	/* Local but with anonymous devices (btrfs has one per subvolume). A 9p share of such a
	 * directory passes this test: the contract above is then the guard. */
	static const unsigned long anon_dev[] = {TMPFS_MAGIC, RAMFS_MAGIC, OVERLAYFS_SUPER_MAGIC,
						 BTRFS_SUPER_MAGIC};
	for (size_t i = 0; i < sizeof(on_disk) / sizeof(on_disk[0]); i++)
		if (f_type == on_disk[i])
			return dev_major != 0;
	for (size_t i = 0; i < sizeof(anon_dev) / sizeof(anon_dev[0]); i++)
		if (f_type == anon_dev[i])
			return true;
	return false;
}

bool file_is_mappable(int fd)
{
	struct statfs sf;
	struct stat st;
	if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0)
		return false;
	return fs_is_mappable((unsigned long)sf.f_type, major(st.st_dev));
}

int load_file_range(const struct guest_mem *m, uint64_t gpa, int fd, uint64_t fsize, uint64_t off,
		    uint64_t len, uint64_t *mapped)
{
	const uint64_t pg = GUEST_PAGE_SIZE;
	if (mapped)
		*mapped = 0;
	if (off > fsize || len > fsize - off)
		return -EIO;
	uint8_t *dst = guest_mem_ptr(m, gpa, len);
	if (!dst)
		return -EFAULT;
	/* [start, end): the whole pages inside the range; gpa + len cannot wrap (it is inside a
	 * region). start > end when the range lies within one page. */
	uint64_t start = (gpa + pg - 1) & ~(pg - 1), end = (gpa + len) & ~(pg - 1);
	uint64_t map_len = 0;
	if (((gpa ^ off) & (pg - 1)) == 0 && end > start && file_is_mappable(fd)) {
		int r = guest_mem_map_file(m, start, end - start, fd, off + (start - gpa));
		if (r == 0) {
			map_len = end - start;
			/* one readahead of the range, not a read per page the guest faults in */
			madvise(dst + (start - gpa), map_len, MADV_WILLNEED);
		} else {
			vmm_debug("cannot map %llu KiB at file offset 0x%llx (%s): copying them",
				  (unsigned long long)((end - start) >> 10),
				  (unsigned long long)(off + (start - gpa)), strerror(-r));
		}
	}
	if (!map_len)
		return pread_full(fd, dst, len, off);
	int r = pread_full(fd, dst, start - gpa, off);
	if (r == 0)
		r = pread_full(fd, dst + (end - gpa), gpa + len - end, off + (end - gpa));
	struct stat st;
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r == 0 && (uint64_t)st.st_size < off + len)
		r = -EIO; /* it shrank after the first check: the mapped tail would fault */
	if (r < 0) {
		/* no page that may fault is left behind for whoever reads guest memory next */
		guest_mem_discard(m, start, map_len);
		return r;
	}
	if (mapped)
		*mapped = map_len;
	return 0;
}

static int open_regular(const char *what, const char *path, int *fd, uint64_t *size, struct verr *e)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return verr_set(e, -errno, "%s '%s': cannot open: %s", what, path, strerror(errno));
	struct stat st;
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(*fd);
		return verr_set(e, -EINVAL, "%s '%s': not a regular file", what, path);
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int kernel_load(const struct guest_mem *m, const char *path, struct kernel_image *k, struct verr *e)
{
	int fd;
	uint64_t size;
	int r = open_regular("kernel", path, &fd, &size, e);
	if (r < 0)
		return r;
	uint8_t magic[0x206];
	memset(magic, 0, sizeof(magic));
	if (size >= 4)
		r = pread_full(fd, magic, size < sizeof(magic) ? size : sizeof(magic), 0);
	if (r < 0) {
		close(fd);
		return verr_set(e, r, "kernel '%s': cannot read: %s", path, strerror(-r));
	}
	memset(k, 0, sizeof(*k));
	if (size >= 4 && memcmp(magic,
				"\x7f"
				"ELF",
				4) == 0)
		r = elf_pvh_load(m, fd, size, k, e);
	else if (size >= sizeof(magic) && memcmp(magic + 0x202, "HdrS", 4) == 0)
		r = bzimage_load(m, fd, size, k, e);
	else
		r = verr_set(e, -ENOEXEC, "not a vmlinux (ELF) nor a bzImage (no 'HdrS' header)");
	close(fd);
	if (r < 0) {
		char inner[sizeof(e->msg)];
		memcpy(inner, e->msg, sizeof(inner));
		verr_set(e, r, "kernel '%s': %s", path, inner);
	}
	return r;
}

/* Where an initrd of fsize bytes goes: as high as the kernel allows and RAM reaches, page
 * aligned, above the kernel. Returns the host pointer or NULL with e set. */
static void *initrd_place(const struct guest_mem *m, const char *name, uint64_t fsize,
			  const struct kernel_image *k, uint64_t *gpa, struct verr *e)
{
	uint64_t end = guest_mem_low_end(m);
	if (end > k->initrd_end_max)
		end = k->initrd_end_max;
	end &= ~0xfffULL;
	uint64_t floor = (k->load_end + 0xfff) & ~0xfffULL;
	if (fsize > end || ((end - fsize) & ~0xfffULL) < floor) {
		verr_set(e, -ENOMEM,
			 "initrd '%s' (%llu KiB) does not fit in guest memory above the "
			 "kernel (kernel ends at %llu MiB, usable RAM ends at %llu MiB): raise "
			 "--memory",
			 name, (unsigned long long)(fsize >> 10), (unsigned long long)(floor >> 20),
			 (unsigned long long)(end >> 20));
		return NULL;
	}
	uint64_t start = (end - fsize) & ~0xfffULL;
	void *dst = guest_mem_ptr(m, start, fsize);
	if (!dst)
		verr_set(e, -EFAULT, "initrd '%s': no guest memory at 0x%llx", name,
			 (unsigned long long)start);
	*gpa = start;
	return dst;
}

int initrd_load(const struct guest_mem *m, const char *path, const struct kernel_image *k,
		uint64_t *gpa, uint64_t *size, struct verr *e)
{
	int fd;
	uint64_t fsize;
	int r = open_regular("initrd", path, &fd, &fsize, e);
	if (r < 0)
		return r;
	if (fsize == 0) {
		close(fd);
		return verr_set(e, -EINVAL, "initrd '%s' is empty", path);
	}
	void *dst = initrd_place(m, path, fsize, k, gpa, e);
	if (!dst) {
		close(fd);
		return -ENOMEM;
	}
	uint64_t mapped;
	r = load_file_range(m, *gpa, fd, fsize, 0, fsize, &mapped);
	close(fd);
	if (r < 0)
		return verr_set(e, r, "initrd '%s': cannot read: %s", path, strerror(-r));
	vmm_debug("initrd '%s': %llu of %llu KiB mapped from the file, the rest copied", path,
		  (unsigned long long)(mapped >> 10), (unsigned long long)(fsize >> 10));
	*size = fsize;
	return 0;
}

int initrd_load_mem(const struct guest_mem *m, const void *data, size_t len,
		    const struct kernel_image *k, uint64_t *gpa, uint64_t *size, struct verr *e)
{
	void *dst = initrd_place(m, "(built-in agent)", len, k, gpa, e);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, data, len);
	*size = len;
	return 0;
}
