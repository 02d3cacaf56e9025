/* A writer for "newc" cpio archives (the format the Linux kernel unpacks as an initramfs).
 * It only writes: entries go out in the order they are added, with reproducible metadata (mtime 0,
 * uid/gid 0, inodes numbered from 1), so the same inputs always give the same bytes. Used by the
 * mkcpio tool (initramfs/mkcpio.c) to pack the guest's initramfs, and by tests/unit/test_cpio.c.
 *
 * Names: leading '/' are stripped ("/dev/console" is stored as "dev/console", as the kernel's own
 * gen_init_cpio does); the rest must be 1..CPIO_NAME_MAX-1 bytes. The kernel unpacks in archive
 * order, so add a directory before anything inside it.
 *
 * Errors are negative errno values. Bad arguments (-EINVAL, -ENAMETOOLONG, -EFBIG, or a host file
 * that cannot be opened) write nothing and leave the writer usable. A failed write leaves a torn
 * archive, so it is sticky: every later call returns that same error. */
#ifndef VMM_INITRAMFS_CPIO_H
#define VMM_INITRAMFS_CPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Longest stored name including its NUL, as PATH_MAX: the kernel refuses longer ones. */
#define CPIO_NAME_MAX 4096

/* The fixed-size ASCII header of a newc entry: "070701" and 13 fields of 8 hex digits. */
#define CPIO_NEWC_MAGIC	      "070701"
#define CPIO_NEWC_HEADER_SIZE 110

#define CPIO_TRAILER_NAME "TRAILER!!!"

struct cpio_writer {
	FILE *fp;	   /* stdio stream to write to, or NULL to write to fd */
	int fd;		   /* used when fp is NULL */
	uint64_t offset;   /* bytes emitted so far: newc padding is relative to the archive start */
	uint32_t next_ino; /* inode number for the next entry */
	int error;	   /* first write error (negative errno), 0 if none; sticky */
	bool finished;	   /* the trailer is out: nothing more may be added */
};

/* Start an archive on an open file descriptor or stdio stream. The writer never closes either;
 * cpio_finish flushes a stream. */
void cpio_writer_init_fd(struct cpio_writer *w, int fd);
void cpio_writer_init_file(struct cpio_writer *w, FILE *fp);

/* `mode` is the permission bits (at most 07777); the file type is implied by the call. */
int cpio_add_dir(struct cpio_writer *w, const char *path, mode_t mode);
int cpio_add_file(struct cpio_writer *w, const char *path, mode_t mode, const void *data,
		  size_t len);
/* Copies the regular file host_path into the archive (with `mode`, not the host file's). A host
 * file that cannot be opened, or is not a regular file, is an argument error (-errno, -EISDIR or
 * -EINVAL); one that cannot be read to the size it had when opened is a sticky -EIO/-errno. */
int cpio_add_file_from(struct cpio_writer *w, const char *path, mode_t mode, const char *host_path);
/* A symbolic link at `path` pointing to `target` (stored as the entry's data, without NUL). */
int cpio_add_symlink(struct cpio_writer *w, const char *path, const char *target);
/* A device node: `mode` must include its type, S_IFCHR or S_IFBLK, plus permission bits. */
int cpio_add_node(struct cpio_writer *w, const char *path, mode_t mode, unsigned int major,
		  unsigned int minor);

/* Writes the "TRAILER!!!" entry, pads the archive to a multiple of 512 bytes (as cpio(1) does),
 * and flushes a stdio stream. Returns 0 or the first error the archive ran into. */
int cpio_finish(struct cpio_writer *w);

#endif
