/* The newc cpio writer (see cpio.h): formats entry headers, pads to 4 bytes, and copies data out
 * to a file descriptor or a stdio stream. Pure library code: it logs nothing and returns negative
 * errno values; the caller (mkcpio) reports them. */
#include "initramfs/cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The trailer's archive is padded to this, like cpio(1)'s default block size. The kernel skips
 * the zeros, and tools that read in blocks see a whole last block. */
#define CPIO_BLOCK 512

/* Chunk size for copying host files (on the stack: the library keeps no static state). */
#define COPY_CHUNK 32768

void cpio_writer_init_fd(struct cpio_writer *w, int fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->next_ino = 1;
}

void cpio_writer_init_file(struct cpio_writer *w, FILE *fp)
{
	cpio_writer_init_fd(w, -1);
	w->fp = fp;
}

/* Sets the sticky error: once a write failed, part of an entry may be out and the archive is
 * unusable. */
static int fail(struct cpio_writer *w, int err)
{
	w->error = err;
	return err;
}

static int emit(struct cpio_writer *w, const void *buf, size_t len)
{
	const char *p = buf;

	if (w->fp) {
		errno = 0; /* so a short fwrite without errno still reports something */
		if (len && fwrite(p, 1, len, w->fp) != len)
			return fail(w, errno ? -errno : -EIO);
		w->offset += len;
		return 0;
	}
	while (len) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, -errno);
		}
		if (n == 0)
			return fail(w, -EIO);
		p += n;
		len -= (size_t)n;
		w->offset += (uint64_t)n;
	}
	return 0;
}

static size_t pad4(uint64_t offset)
{
	return (size_t)((4 - (offset & 3)) & 3);
}

/* Checks a path and returns the name to store (without leading '/'), or NULL with *err set. */
static const char *entry_name(const char *path, int *err)
{
	if (!path) {
		*err = -EINVAL;
		return NULL;
	}
	while (*path == '/')
		path++;
	size_t len = strlen(path);
	if (len == 0) {
		*err = -EINVAL;
		return NULL;
	}
	if (len >= CPIO_NAME_MAX) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	return path;
}

/* Common checks before an entry: a sticky error wins, then a finished archive. */
static int check_writer(const struct cpio_writer *w)
{
	if (w->error)
		return w->error;
	if (w->finished)
		return -EINVAL;
	return 0;
}

/* Writes the header and the padded name of one entry; the caller then writes `filesize` bytes of
 * data and calls end_entry. One emit for all of it keeps fd writers to one write(2) per header. */
static int begin_entry(struct cpio_writer *w, const char *name, uint32_t mode, uint32_t nlink,
		       uint64_t filesize, uint32_t rmajor, uint32_t rminor)
{
	char buf[CPIO_NEWC_HEADER_SIZE + CPIO_NAME_MAX + 4];
	size_t namesize = strlen(name) + 1;
	/* The trailer takes no inode number, so real entries stay 1, 2, 3, ... */
	uint32_t ino = strcmp(name, CPIO_TRAILER_NAME) ? w->next_ino++ : 0;

	int n = snprintf(buf, sizeof(buf),
			 CPIO_NEWC_MAGIC "%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			 ino, mode, 0u /* uid */, 0u /* gid */, nlink, 0u /* mtime */,
			 (uint32_t)filesize, 0u /* devmajor */, 0u /* devminor */, rmajor, rminor,
			 (uint32_t)namesize, 0u /* check */);
	if (n != CPIO_NEWC_HEADER_SIZE)
		return -EINVAL; /* cannot happen: every field fits 8 hex digits */

	size_t len = CPIO_NEWC_HEADER_SIZE;
	memcpy(buf + len, name, namesize);
	len += namesize;
	size_t pad = pad4(w->offset + len);
	memset(buf + len, 0, pad);
	len += pad;
	return emit(w, buf, len);
}

static int end_entry(struct cpio_writer *w)
{
	static const char zeros[4];

	return emit(w, zeros, pad4(w->offset));
}

/* An entry whose data is in memory (files, symlink targets, or none). */
static int add_entry(struct cpio_writer *w, const char *path, uint32_t mode, uint32_t nlink,
		     const void *data, size_t len, uint32_t rmajor, uint32_t rminor)
{
	int err = check_writer(w);
	if (err)
		return err;
	const char *name = entry_name(path, &err);
	if (!name)
		return err;
	if ((uint64_t)len > UINT32_MAX)
		return -EFBIG; /* newc's filesize is 32 bits */
	if (len && !data)
		return -EINVAL;

	err = begin_entry(w, name, mode, nlink, len, rmajor, rminor);
	if (!err && len)
		err = emit(w, data, len);
	if (!err)
		err = end_entry(w);
	return err;
}

static int check_perm(mode_t mode)
{
	return (mode & ~(mode_t)07777) ? -EINVAL : 0;
}

int cpio_add_dir(struct cpio_writer *w, const char *path, mode_t mode)
{
	int err = check_perm(mode);
	if (err)
		return err;
	/* nlink 2 ("." and the entry in its parent), as for an empty directory. */
	return add_entry(w, path, S_IFDIR | mode, 2, NULL, 0, 0, 0);
}

int cpio_add_file(struct cpio_writer *w, const char *path, mode_t mode, const void *data,
		  size_t len)
{
	int err = check_perm(mode);
	if (err)
		return err;
	return add_entry(w, path, S_IFREG | mode, 1, data, len, 0, 0);
}

int cpio_add_symlink(struct cpio_writer *w, const char *path, const char *target)
{
	if (!target || !*target)
		return -EINVAL;
	size_t len = strlen(target);
	if (len >= CPIO_NAME_MAX)
		return -ENAMETOOLONG;
	return add_entry(w, path, S_IFLNK | 0777, 1, target, len, 0, 0);
}

int cpio_add_node(struct cpio_writer *w, const char *path, mode_t mode, unsigned int major,
		  unsigned int minor)
{
	mode_t type = mode & S_IFMT;

	if ((type != S_IFCHR && type != S_IFBLK) || check_perm(mode & ~S_IFMT))
		return -EINVAL;
	return add_entry(w, path, mode, 1, NULL, 0, major, minor);
}

/* Copies exactly `size` bytes from fd: the header already promised that many. */
static int copy_data(struct cpio_writer *w, int fd, uint64_t size)
{
	char buf[COPY_CHUNK];

	while (size) {
		size_t want = size < sizeof(buf) ? (size_t)size : sizeof(buf);
		ssize_t n = read(fd, buf, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, -errno);
		}
		if (n == 0)
			return fail(w, -EIO); /* the file shrank after fstat */
		int err = emit(w, buf, (size_t)n);
		if (err)
			return err;
		size -= (uint64_t)n;
	}
	return 0;
}

int cpio_add_file_from(struct cpio_writer *w, const char *path, mode_t mode, const char *host_path)
{
	int err = check_writer(w);
	if (err)
		return err;
	err = check_perm(mode);
	if (err)
		return err;
	const char *name = entry_name(path, &err);
	if (!name)
		return err;
	if (!host_path)
		return -EINVAL;

	int fd = open(host_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = -errno;
	} else if (S_ISDIR(st.st_mode)) {
		err = -EISDIR;
	} else if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
	} else if ((uint64_t)st.st_size > UINT32_MAX) {
		err = -EFBIG;
	} else {
		err = begin_entry(w, name, S_IFREG | mode, 1, (uint64_t)st.st_size, 0, 0);
		if (!err)
			err = copy_data(w, fd, (uint64_t)st.st_size);
		if (!err)
			err = end_entry(w);
	}
	close(fd);
	return err;
}

int cpio_finish(struct cpio_writer *w)
{
	static const char zeros[CPIO_BLOCK];
	int err = check_writer(w);
	if (err)
		return err;

	err = begin_entry(w, CPIO_TRAILER_NAME, 0, 1, 0, 0, 0);
	if (!err)
		err = emit(w, zeros, (size_t)((CPIO_BLOCK - w->offset % CPIO_BLOCK) % CPIO_BLOCK));
	/* Buffered write errors (a full disk) only show up here. */
	if (!err && w->fp) {
		errno = 0;
		if (fflush(w->fp) != 0)
			err = fail(w, errno ? -errno : -EIO);
	}
	if (!err)
		w->finished = true;
	return err;
}
