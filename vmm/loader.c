/* Kernel format detection and initrd placement; the formats live in loader_elf.c and
 * loader_bzimage.c. */
#include "vmm/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
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
	r = pread_full(fd, dst, fsize, 0);
	close(fd);
	if (r < 0)
		return verr_set(e, r, "initrd '%s': cannot read: %s", path, strerror(-r));
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
