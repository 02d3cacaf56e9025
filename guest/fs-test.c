/* fs-test: the file operations of the virtio-fs integration tests that busybox has no tool for
 * (static; tests/integration/fs-tests.sh copies it into the container's root directory).
 *
 *   fs-test mmap FILE OFFSET TEXT         write TEXT at OFFSET through a shared writable mapping
 *                                         (the file must already be that long), msync, unmap
 *   fs-test setxattr FILE NAME VALUE      set the extended attribute NAME to VALUE (no NUL)
 *   fs-test getxattr FILE NAME            print NAME=VALUE
 *   fs-test removexattr FILE NAME         remove NAME
 *   fs-test listxattr FILE                print the names, one "xattr: NAME" line each
 *   fs-test fsync FILE TEXT               create or truncate FILE, write TEXT, fsync, close
 *
 * One line on stdout says what happened: "fs-test: OP FILE: ok" or
 * "fs-test: OP FILE: failed: ENAME (message)"; the exit status is 0 or 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char *op, *file;

static int fail(const char *what)
{
	int e = errno;
	const char *name = strerrorname_np(e);
	printf("fs-test: %s %s: failed: %s%s%s (%s)\n", op, file, what, *what ? ": " : "",
	       name ? name : "E?", strerror(e));
	return 1;
}

static int done(void)
{
	printf("fs-test: %s %s: ok\n", op, file);
	return 0;
}

static int do_mmap(const char *offset, const char *text)
{
	char *end;
	errno = 0;
	unsigned long long off = strtoull(offset, &end, 0);
	size_t len = strlen(text);
	if (!*offset || *end || errno || len == 0) {
		printf("fs-test: mmap: OFFSET '%s' is not a number or TEXT is empty\n", offset);
		return 2;
	}
	int fd = open(file, O_RDWR);
	if (fd < 0)
		return fail("open");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return fail("fstat");
	if ((unsigned long long)st.st_size < off + len) {
		errno = EINVAL;
		return fail("the file is shorter than OFFSET + TEXT");
	}
	long page = sysconf(_SC_PAGESIZE);
	off_t base = (off_t)(off - off % (unsigned long long)page);
	size_t maplen = (size_t)(off - (unsigned long long)base) + len;
	char *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, base);
	if (m == MAP_FAILED)
		return fail("mmap MAP_SHARED PROT_WRITE");
	memcpy(m + (off - (unsigned long long)base), text, len);
	if (msync(m, maplen, MS_SYNC) < 0)
		return fail("msync");
	if (munmap(m, maplen) < 0)
		return fail("munmap");
	if (close(fd) < 0)
		return fail("close");
	return done();
}

static int do_fsync(const char *text)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fail("open");
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0)
			return fail("write");
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		return fail("fsync");
	if (close(fd) < 0)
		return fail("close");
	return done();
}

static int do_getxattr(const char *name)
{
	char buf[65536];
	ssize_t n = getxattr(file, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return fail(name);
	buf[n] = '\0';
	printf("fs-test: getxattr %s: %s=%s\n", file, name, buf);
	return 0;
}

static int do_listxattr(void)
{
	char buf[65536];
	ssize_t n = listxattr(file, buf, sizeof(buf));
	if (n < 0)
		return fail("");
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		printf("xattr: %s\n", buf + i);
	return done();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: fs-test mmap|setxattr|getxattr|removexattr|listxattr|fsync "
				"FILE [ARGS]\n");
		return 2;
	}
	op = argv[1];
	file = argv[2];
	if (strcmp(op, "mmap") == 0 && argc == 5)
		return do_mmap(argv[3], argv[4]);
	if (strcmp(op, "fsync") == 0 && argc == 4)
		return do_fsync(argv[3]);
	if (strcmp(op, "setxattr") == 0 && argc == 5)
		return setxattr(file, argv[3], argv[4], strlen(argv[4]), 0) < 0 ? fail(argv[3])
										: done();
	if (strcmp(op, "getxattr") == 0 && argc == 4)
		return do_getxattr(argv[3]);
	if (strcmp(op, "removexattr") == 0 && argc == 4)
		return removexattr(file, argv[3]) < 0 ? fail(argv[3]) : done();
	if (strcmp(op, "listxattr") == 0 && argc == 3)
		return do_listxattr();
	fprintf(stderr, "fs-test: unknown operation or wrong argument count: %s\n", op);
	return 2;
}
