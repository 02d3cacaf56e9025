/* Unit tests for the newc cpio writer (initramfs/cpio.c): archives are written to a temporary file,
 * read back and parsed with a small independent newc reader, so the tests check the bytes the
 * kernel will see rather than the writer's own idea of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "initramfs/cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One parsed entry, with the offsets the padding rules are checked against. */
struct entry {
	uint32_t ino, mode, uid, gid, nlink, mtime, filesize;
	uint32_t devmajor, devminor, rdevmajor, rdevminor, namesize, check;
	const char *name;
	const unsigned char *data;
	size_t header_off, data_off, next_off;
};

/* The archive under test: written through `w` to a temporary file, read back into buf. */
struct archive {
	FILE *file;
	struct cpio_writer w;
	unsigned char *buf;
	size_t len;
};

static int setup(void **state)
{
	struct archive *a = calloc(1, sizeof(*a));
	if (!a)
		return -1;
	a->file = tmpfile();
	if (!a->file) {
		free(a);
		return -1;
	}
	cpio_writer_init_fd(&a->w, fileno(a->file));
	*state = a;
	return 0;
}

static int teardown(void **state)
{
	struct archive *a = *state;

	fclose(a->file);
	free(a->buf);
	free(a);
	return 0;
}

/* Finishes the archive and reads all of it back. */
static void finish_and_read(struct archive *a)
{
	int fd = fileno(a->file);
	struct stat st;

	assert_int_equal(cpio_finish(&a->w), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, a->w.offset);
	a->len = (size_t)st.st_size;
	a->buf = malloc(a->len ? a->len : 1);
	assert_non_null(a->buf);
	assert_int_equal(pread(fd, a->buf, a->len, 0), (ssize_t)a->len);
}

static uint32_t hex8(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 8; i++) {
		int c = p[i];
		assert_true((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
		v = v * 16 + (uint32_t)(c <= '9' ? c - '0' : c - 'A' + 10);
	}
	return v;
}

static size_t align4(size_t off)
{
	return (off + 3) & ~(size_t)3;
}

static void assert_zeros(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		assert_int_equal(p[i], 0);
}

/* Parses the entry at `off`, checking the magic, the name's NUL and both paddings. */
static void parse_entry(const struct archive *a, size_t off, struct entry *e)
{
	const unsigned char *h = a->buf + off;
	uint32_t *fields[] = {&e->ino,	    &e->mode,	   &e->uid,	  &e->gid,
			      &e->nlink,    &e->mtime,	   &e->filesize,  &e->devmajor,
			      &e->devminor, &e->rdevmajor, &e->rdevminor, &e->namesize,
			      &e->check};

	assert_true(off % 4 == 0);
	assert_true(off + CPIO_NEWC_HEADER_SIZE <= a->len);
	assert_memory_equal(h, "070701", 6);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		*fields[i] = hex8(h + 6 + 8 * i);

	e->header_off = off;
	size_t name_off = off + CPIO_NEWC_HEADER_SIZE;
	assert_true(e->namesize >= 2);
	assert_true(name_off + e->namesize <= a->len);
	e->name = (const char *)a->buf + name_off;
	assert_int_equal(e->name[e->namesize - 1], '\0');
	assert_int_equal(strlen(e->name), e->namesize - 1);

	e->data_off = align4(name_off + e->namesize);
	assert_zeros(a->buf + name_off + e->namesize, e->data_off - (name_off + e->namesize));
	assert_true(e->data_off + e->filesize <= a->len);
	e->data = a->buf + e->data_off;
	e->next_off = align4(e->data_off + e->filesize);
	assert_true(e->next_off <= a->len);
	assert_zeros(a->buf + e->data_off + e->filesize, e->next_off - (e->data_off + e->filesize));
}

/* Checks the trailer at `off` and that only zero padding to a 512-byte block follows it. */
static void assert_trailer(const struct archive *a, size_t off)
{
	struct entry e;

	parse_entry(a, off, &e);
	assert_string_equal(e.name, "TRAILER!!!");
	assert_int_equal(e.namesize, sizeof("TRAILER!!!"));
	assert_int_equal(e.ino, 0);
	assert_int_equal(e.mode, 0);
	assert_int_equal(e.nlink, 1);
	assert_int_equal(e.filesize, 0);
	assert_int_equal(a->len % 512, 0);
	assert_true(a->len - e.next_off < 512);
	assert_zeros(a->buf + e.next_off, a->len - e.next_off);
}

static void test_file_header(void **state)
{
	struct archive *a = *state;
	static const char data[] = "hello, world\n";
	struct entry e;

	assert_int_equal(cpio_add_file(&a->w, "/etc/hello", 0644, data, strlen(data)), 0);
	finish_and_read(a);

	parse_entry(a, 0, &e);
	assert_int_equal(e.ino, 1);
	assert_int_equal(e.mode, S_IFREG | 0644);
	assert_int_equal(e.uid, 0);
	assert_int_equal(e.gid, 0);
	assert_int_equal(e.nlink, 1);
	assert_int_equal(e.mtime, 0);
	assert_int_equal(e.filesize, strlen(data));
	assert_int_equal(e.devmajor, 0);
	assert_int_equal(e.devminor, 0);
	assert_int_equal(e.rdevmajor, 0);
	assert_int_equal(e.rdevminor, 0);
	assert_int_equal(e.check, 0);
	/* The leading '/' is not stored. */
	assert_string_equal(e.name, "etc/hello");
	assert_int_equal(e.namesize, sizeof("etc/hello"));
	/* 110 + 10 = 120 is aligned: data follows the name directly, and 13 bytes pad to 16. */
	assert_int_equal(e.data_off, 120);
	assert_memory_equal(e.data, data, strlen(data));
	assert_int_equal(e.next_off, 136);
	assert_trailer(a, e.next_off);
}

/* Every combination of name and data length that lands on each of the four alignments. */
static void test_padding(void **state)
{
	struct archive *a = *state;
	char name[16], data[8];
	size_t off = 0;
	struct entry e;

	for (int n = 1; n <= 8; n++) {
		for (int d = 0; d <= 7; d++) {
			memset(name, 'a' + d, (size_t)n);
			name[n] = '\0';
			memset(data, '0' + n, (size_t)d);
			assert_int_equal(cpio_add_file(&a->w, name, 0600, data, (size_t)d), 0);
		}
	}
	finish_and_read(a);

	for (int n = 1; n <= 8; n++) {
		for (int d = 0; d <= 7; d++) {
			parse_entry(a, off, &e);
			assert_int_equal(e.namesize, n + 1);
			assert_int_equal(e.filesize, d);
			assert_int_equal(e.data_off, align4(e.header_off + CPIO_NEWC_HEADER_SIZE +
							    (size_t)n + 1));
			for (int i = 0; i < d; i++)
				assert_int_equal(e.data[i], '0' + n);
			off = e.next_off;
		}
	}
	assert_trailer(a, off);
}

static void test_empty_archive(void **state)
{
	struct archive *a = *state;

	finish_and_read(a);
	assert_int_equal(a->len, 512);
	assert_trailer(a, 0);
}

static void test_dir_and_inodes(void **state)
{
	struct archive *a = *state;
	struct entry e;

	assert_int_equal(cpio_add_dir(&a->w, "//root", 0700), 0);
	assert_int_equal(cpio_add_dir(&a->w, "tmp", 01777), 0);
	assert_int_equal(cpio_add_file(&a->w, "/tmp/x", 0644, "x", 1), 0);
	finish_and_read(a);

	parse_entry(a, 0, &e);
	assert_string_equal(e.name, "root");
	assert_int_equal(e.mode, S_IFDIR | 0700);
	assert_int_equal(e.nlink, 2);
	assert_int_equal(e.filesize, 0);
	assert_int_equal(e.ino, 1);

	parse_entry(a, e.next_off, &e);
	assert_string_equal(e.name, "tmp");
	assert_int_equal(e.mode, S_IFDIR | 01777);
	assert_int_equal(e.ino, 2);

	parse_entry(a, e.next_off, &e);
	assert_string_equal(e.name, "tmp/x");
	assert_int_equal(e.ino, 3);
	assert_trailer(a, e.next_off);
}

static void test_symlink(void **state)
{
	struct archive *a = *state;
	struct entry e;

	assert_int_equal(cpio_add_symlink(&a->w, "/bin/sh", "busybox"), 0);
	finish_and_read(a);

	parse_entry(a, 0, &e);
	assert_string_equal(e.name, "bin/sh");
	assert_int_equal(e.mode, S_IFLNK | 0777);
	assert_int_equal(e.nlink, 1);
	/* The target is the data, without a NUL. */
	assert_int_equal(e.filesize, strlen("busybox"));
	assert_memory_equal(e.data, "busybox", strlen("busybox"));
	assert_trailer(a, e.next_off);
}

static void test_device_nodes(void **state)
{
	struct archive *a = *state;
	struct entry e;

	assert_int_equal(cpio_add_node(&a->w, "/dev/console", S_IFCHR | 0600, 5, 1), 0);
	assert_int_equal(cpio_add_node(&a->w, "/dev/sda", S_IFBLK | 0660, 8, 0), 0);
	finish_and_read(a);

	parse_entry(a, 0, &e);
	assert_string_equal(e.name, "dev/console");
	assert_int_equal(e.mode, S_IFCHR | 0600);
	assert_int_equal(e.rdevmajor, 5);
	assert_int_equal(e.rdevminor, 1);
	/* devmajor/devminor describe the file system the entry came from: none. */
	assert_int_equal(e.devmajor, 0);
	assert_int_equal(e.devminor, 0);
	assert_int_equal(e.filesize, 0);

	parse_entry(a, e.next_off, &e);
	assert_string_equal(e.name, "dev/sda");
	assert_int_equal(e.mode, S_IFBLK | 0660);
	assert_int_equal(e.rdevmajor, 8);
	assert_int_equal(e.rdevminor, 0);
	assert_trailer(a, e.next_off);
}

static void test_bad_names(void **state)
{
	struct archive *a = *state;
	char *longname = malloc(CPIO_NAME_MAX + 1);

	assert_non_null(longname);
	assert_int_equal(cpio_add_file(&a->w, "", 0644, "x", 1), -EINVAL);
	assert_int_equal(cpio_add_dir(&a->w, "/", 0755), -EINVAL);
	assert_int_equal(cpio_add_dir(&a->w, "///", 0755), -EINVAL);
	assert_int_equal(cpio_add_dir(&a->w, NULL, 0755), -EINVAL);
	assert_int_equal(cpio_add_symlink(&a->w, "", "x"), -EINVAL);
	assert_int_equal(cpio_add_node(&a->w, "", S_IFCHR | 0600, 1, 3), -EINVAL);

	/* CPIO_NAME_MAX counts the NUL: 4095 bytes fit, 4096 do not. */
	memset(longname, 'n', CPIO_NAME_MAX);
	longname[CPIO_NAME_MAX] = '\0';
	assert_int_equal(cpio_add_file(&a->w, longname, 0644, "x", 1), -ENAMETOOLONG);
	assert_int_equal(cpio_add_symlink(&a->w, "link", longname), -ENAMETOOLONG);
	/* Bad arguments write nothing and do not poison the writer. */
	assert_int_equal(a->w.offset, 0);
	assert_int_equal(a->w.error, 0);

	/* A leading '/' does not count against the limit: the stored name is 4095 bytes. */
	longname[0] = '/';
	assert_int_equal(cpio_add_file(&a->w, longname, 0644, "x", 1), 0);
	finish_and_read(a);

	struct entry e;
	parse_entry(a, 0, &e);
	assert_int_equal(e.namesize, CPIO_NAME_MAX);
	assert_trailer(a, e.next_off);
	free(longname);
}

static void test_bad_args(void **state)
{
	struct archive *a = *state;

	/* Modes are permission bits; the type comes from the call. */
	assert_int_equal(cpio_add_dir(&a->w, "d", S_IFDIR | 0755), -EINVAL);
	assert_int_equal(cpio_add_file(&a->w, "f", S_IFREG | 0644, "x", 1), -EINVAL);
	assert_int_equal(cpio_add_node(&a->w, "n", S_IFREG | 0600, 1, 3), -EINVAL);
	assert_int_equal(cpio_add_node(&a->w, "n", 0600, 1, 3), -EINVAL);
	assert_int_equal(cpio_add_node(&a->w, "n", S_IFCHR | 010000, 1, 3), -EINVAL);
	assert_int_equal(cpio_add_symlink(&a->w, "l", ""), -EINVAL);
	assert_int_equal(cpio_add_symlink(&a->w, "l", NULL), -EINVAL);
	assert_int_equal(cpio_add_file(&a->w, "f", 0644, NULL, 1), -EINVAL);
	/* newc sizes are 32 bits; the check comes before the data is touched. */
	assert_int_equal(cpio_add_file(&a->w, "f", 0644, "x", (size_t)UINT32_MAX + 1), -EFBIG);
	assert_int_equal(a->w.offset, 0);
	assert_int_equal(a->w.error, 0);

	finish_and_read(a);
	/* Nothing may follow the trailer. */
	assert_int_equal(cpio_add_dir(&a->w, "late", 0755), -EINVAL);
	assert_int_equal(cpio_finish(&a->w), -EINVAL);
}

static void test_file_from(void **state)
{
	struct archive *a = *state;
	char host[] = "/tmp/test_cpio.XXXXXX";
	/* More than one copy chunk, and not a multiple of 4. */
	size_t size = 100003;
	unsigned char *data = malloc(size);
	struct entry e;

	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	int fd = mkstemp(host);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);

	assert_int_equal(cpio_add_file_from(&a->w, "/missing", 0644, "/nonexistent/file"), -ENOENT);
	assert_int_equal(cpio_add_file_from(&a->w, "/dir", 0644, "/tmp"), -EISDIR);
	assert_int_equal(cpio_add_file_from(&a->w, "/null", 0644, "/dev/null"), -EINVAL);
	assert_int_equal(a->w.offset, 0);
	assert_int_equal(a->w.error, 0);

	assert_int_equal(cpio_add_file_from(&a->w, "/bin/prog", 0755, host), 0);
	unlink(host);
	finish_and_read(a);

	parse_entry(a, 0, &e);
	assert_string_equal(e.name, "bin/prog");
	/* The given mode, not the host file's 0600. */
	assert_int_equal(e.mode, S_IFREG | 0755);
	assert_int_equal(e.filesize, size);
	assert_memory_equal(e.data, data, size);
	assert_trailer(a, e.next_off);
	free(data);
}

static void test_write_error_closed_fd(void **state)
{
	(void)state;
	struct cpio_writer w;
	int fd = open("/dev/null", O_WRONLY);

	assert_true(fd >= 0);
	close(fd);
	cpio_writer_init_fd(&w, fd);
	assert_int_equal(cpio_add_dir(&w, "dev", 0755), -EBADF);
	/* The error is sticky: the archive is torn, so nothing else may pretend to succeed. */
	assert_int_equal(w.error, -EBADF);
	assert_int_equal(cpio_add_file(&w, "f", 0644, "x", 1), -EBADF);
	assert_int_equal(cpio_finish(&w), -EBADF);
}

static void test_write_error_full_fd(void **state)
{
	(void)state;
	struct cpio_writer w;
	int fd = open("/dev/full", O_WRONLY);

	assert_true(fd >= 0);
	cpio_writer_init_fd(&w, fd);
	assert_int_equal(cpio_add_file(&w, "f", 0644, "x", 1), -ENOSPC);
	assert_int_equal(cpio_finish(&w), -ENOSPC);
	close(fd);
}

/* Through stdio the error may only surface when the buffer is flushed: cpio_finish must see it. */
static void test_write_error_full_stream(void **state)
{
	(void)state;
	struct cpio_writer w;
	FILE *f = fopen("/dev/full", "w");

	assert_non_null(f);
	cpio_writer_init_file(&w, f);
	int err = cpio_add_file(&w, "f", 0644, "x", 1);
	assert_true(err == 0 || err == -ENOSPC);
	assert_int_equal(cpio_finish(&w), -ENOSPC);
	fclose(f);
}

/* The stdio path writes the same bytes as the fd path. */
static void test_stream_matches_fd(void **state)
{
	struct archive *a = *state;
	char *mem = NULL;
	size_t memlen = 0;
	FILE *f = open_memstream(&mem, &memlen);
	struct cpio_writer w;

	assert_non_null(f);
	cpio_writer_init_file(&w, f);
	assert_int_equal(cpio_add_dir(&w, "/dev", 0755), 0);
	assert_int_equal(cpio_add_node(&w, "/dev/null", S_IFCHR | 0666, 1, 3), 0);
	assert_int_equal(cpio_add_file(&w, "/init", 0755, "#!/bin/sh\n", 10), 0);
	assert_int_equal(cpio_finish(&w), 0);
	fclose(f);

	assert_int_equal(cpio_add_dir(&a->w, "/dev", 0755), 0);
	assert_int_equal(cpio_add_node(&a->w, "/dev/null", S_IFCHR | 0666, 1, 3), 0);
	assert_int_equal(cpio_add_file(&a->w, "/init", 0755, "#!/bin/sh\n", 10), 0);
	finish_and_read(a);

	assert_int_equal(memlen, a->len);
	assert_memory_equal(mem, a->buf, a->len);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_file_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_padding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_archive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dir_and_inodes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_nodes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_from, setup, teardown),
	    cmocka_unit_test(test_write_error_closed_fd),
	    cmocka_unit_test(test_write_error_full_fd),
	    cmocka_unit_test(test_write_error_full_stream),
	    cmocka_unit_test_setup_teardown(test_stream_matches_fd, setup, teardown),
	};

	return cmocka_run_group_tests_name("cpio", tests, NULL, NULL);
}
