/* FUSE passthrough server tests on plain buffers: a temporary directory is the share, with a
 * canary file next to it that no request may open, change or list. Requests are built as Linux's
 * client builds them, replies parsed back, and the effect checked on the host. Hostile requests
 * included: short headers, lengths beyond the buffers, names without NUL, '/', "..", symlinks
 * out of the share, stale ids, exhausted tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/fuse_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define OUT_MAX (1u << 17)

struct t {
	char top[256]; /* holds share/ and canary */
	char share[300];
	char canary[300];
	struct stat canary_st;
	struct fuse_server *s;
	uint64_t unique;
	uint32_t uid, gid; /* the requests' header ids */
	uint8_t in[OUT_MAX];
	_Alignas(16) uint8_t out[OUT_MAX];
	struct fuse_result res;
};

/* One argument of a request. */
struct arg {
	const void *p;
	size_t len;
};
#define A(x)   ((struct arg){&(x), sizeof(x)})
#define S(str) ((struct arg){(str), strlen(str) + 1})
#define END    ((struct arg){NULL, 0})

static void host_file(struct t *t, const char *rel, const char *content)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t->share, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

static void server_cfg(struct t *t, const struct fuse_server_config *cfg)
{
	fuse_server_destroy(t->s);
	struct fuse_server_config c = *cfg;
	c.root = t->share;
	struct verr e = {0};
	if (fuse_server_create(&t->s, &c, &e) < 0)
		fail_msg("%s", e.msg);
}

static void server(struct t *t, bool ro, unsigned max_inodes, unsigned max_handles)
{
	struct fuse_server_config c = {.cache = FUSE_CACHE_AUTO,
				       .ro = ro,
				       .max_inodes = max_inodes,
				       .max_handles = max_handles};
	server_cfg(t, &c);
}

/* Sends opcode op on nodeid with the arguments (terminated by END), the reply going into
 * t->out, outcap bytes of room. Returns the reply's error (0 or -errno); the reply's payload
 * starts at t->out + 16. */
static int reqv(struct t *t, uint32_t op, uint64_t nodeid, size_t outcap, va_list ap)
{
	size_t len = sizeof(struct fuse_in_header);
	for (;;) {
		struct arg a = va_arg(ap, struct arg);
		if (!a.p)
			break;
		assert_true(len + a.len <= sizeof(t->in));
		memcpy(t->in + len, a.p, a.len);
		len += a.len;
	}
	struct fuse_in_header h = {.len = (uint32_t)len,
				   .opcode = op,
				   .unique = ++t->unique,
				   .nodeid = nodeid,
				   .uid = t->uid,
				   .gid = t->gid};
	memcpy(t->in, &h, sizeof(h));
	/* Split both sides in two iovecs at odd places, as guest pages would be. */
	size_t ic = len > 7 ? 7 : len, oc = outcap > 5 ? 5 : outcap;
	struct iovec in[2] = {{t->in, ic}, {t->in + ic, len - ic}};
	struct iovec out[2] = {{t->out, oc}, {t->out + oc, outcap - oc}};
	memset(t->out, 0xee, outcap);
	assert_int_equal(fuse_server_handle(t->s, in, 2, out, 2, &t->res), 0);
	if (op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT) {
		assert_int_equal(t->res.len, 0);
		return 0;
	}
	struct fuse_out_header oh;
	memcpy(&oh, t->out, sizeof(oh));
	assert_int_equal(oh.unique, t->unique);
	assert_int_equal(oh.len, t->res.len);
	assert_true(oh.len <= outcap);
	assert_int_equal(-oh.error, t->res.error);
	if (oh.error)
		assert_int_equal(oh.len, sizeof(oh));
	return oh.error;
}

static int req(struct t *t, uint32_t op, uint64_t nodeid, ...)
{
	va_list ap;
	va_start(ap, nodeid);
	int r = reqv(t, op, nodeid, OUT_MAX, ap);
	va_end(ap);
	return r;
}

static int req_out(struct t *t, uint32_t op, uint64_t nodeid, size_t outcap, ...)
{
	va_list ap;
	va_start(ap, outcap);
	int r = reqv(t, op, nodeid, outcap, ap);
	va_end(ap);
	return r;
}

static void *payload(struct t *t)
{
	return t->out + sizeof(struct fuse_out_header);
}

static void do_init(struct t *t)
{
	struct fuse_init_in in = {.major = 7,
				  .minor = 36,
				  .max_readahead = 65536,
				  .flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES |
					   FUSE_POSIX_LOCKS | FUSE_WRITEBACK_CACHE};
	assert_int_equal(req(t, FUSE_INIT, 0, A(in), END), 0);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	const char *dir = getenv("TMPDIR");
	snprintf(t->top, sizeof(t->top), "%s/vmm-fuse-XXXXXX", dir && *dir ? dir : "/tmp");
	assert_non_null(mkdtemp(t->top));
	snprintf(t->share, sizeof(t->share), "%s/share", t->top);
	snprintf(t->canary, sizeof(t->canary), "%s/canary", t->top);
	assert_int_equal(mkdir(t->share, 0755), 0);
	int fd = open(t->canary, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "canary", 6), 6);
	close(fd);
	assert_int_equal(stat(t->canary, &t->canary_st), 0);
	server(t, false, 0, 0);
	*state = t;
	return 0;
}

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
	struct t *t = *state;
	/* Nothing changed the canary: same size, times, inode, content. */
	struct stat st;
	assert_int_equal(stat(t->canary, &st), 0);
	assert_int_equal(st.st_size, 6);
	assert_int_equal(st.st_ino, t->canary_st.st_ino);
	assert_int_equal(st.st_mtim.tv_sec, t->canary_st.st_mtim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, t->canary_st.st_mtim.tv_nsec);
	assert_int_equal(st.st_ctim.tv_nsec, t->canary_st.st_ctim.tv_nsec);
	assert_int_equal(st.st_mode & 07777, t->canary_st.st_mode & 07777);
	fuse_server_destroy(t->s);
	rm_rf(t->top);
	free(t);
	return 0;
}

static uint64_t lookup(struct t *t, uint64_t dir, const char *name, struct fuse_attr *attr)
{
	int r = req(t, FUSE_LOOKUP, dir, S(name), END);
	if (r)
		fail_msg("LOOKUP %s: %s", name, strerror(-r));
	struct fuse_entry_out eo;
	memcpy(&eo, payload(t), sizeof(eo));
	assert_int_equal(t->res.len, sizeof(struct fuse_out_header) + sizeof(eo));
	if (attr)
		*attr = eo.attr;
	return eo.nodeid;
}

static int lookup_err(struct t *t, uint64_t dir, const char *name)
{
	return req(t, FUSE_LOOKUP, dir, S(name), END);
}

static uint64_t open_node(struct t *t, uint64_t node, uint32_t op, uint32_t flags)
{
	struct fuse_open_in oi = {.flags = flags};
	int r = req(t, op, node, A(oi), END);
	if (r)
		fail_msg("OPEN: %s", strerror(-r));
	return ((struct fuse_open_out *)payload(t))->fh;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- tests ---- */

static void test_init(void **state)
{
	struct t *t = *state;
	/* Before INIT: EIO. */
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "x"), -EIO);
	struct fuse_init_in old = {.major = 7, .minor = 30};
	assert_int_equal(req(t, FUSE_INIT, 0, A(old), END), -EPROTO);
	struct fuse_init_in bad = {.major = 8, .minor = 31};
	assert_int_equal(req(t, FUSE_INIT, 0, A(bad), END), -EPROTO);
	/* A 7.31 client sends only the first 16 bytes. */
	struct fuse_init_in c31 = {.major = 7, .minor = 31, .flags = FUSE_BIG_WRITES};
	assert_int_equal(req(t, FUSE_INIT, 0, (struct arg){&c31, 16}, END), 0);
	do_init(t);
	struct fuse_init_out o;
	memcpy(&o, payload(t), sizeof(o));
	assert_int_equal(o.major, 7);
	assert_int_equal(o.minor, 36);
	assert_int_equal(o.max_write, FUSE_SERVER_MAX_WRITE);
	assert_true(o.flags & FUSE_DO_READDIRPLUS);
	assert_true(o.flags & FUSE_MAX_PAGES);
	/* Not offered: locks stay in the guest, no writeback cache. */
	assert_false(o.flags & FUSE_POSIX_LOCKS);
	assert_false(o.flags & FUSE_WRITEBACK_CACHE);
	/* DESTROY ends the session. */
	assert_int_equal(req(t, FUSE_DESTROY, 0, END), 0);
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "x"), -EIO);
}

static void test_lookup_getattr(void **state)
{
	struct t *t = *state;
	do_init(t);
	host_file(t, "a", "hello");
	struct fuse_attr a;
	uint64_t n = lookup(t, FUSE_ROOT_ID, "a", &a);
	assert_true(n > FUSE_ROOT_ID);
	assert_int_equal(a.size, 5);
	assert_true(S_ISREG(a.mode));
	struct fuse_getattr_in gi = {0};
	assert_int_equal(req(t, FUSE_GETATTR, n, A(gi), END), 0);
	struct fuse_attr_out ao;
	memcpy(&ao, payload(t), sizeof(ao));
	assert_int_equal(ao.attr.ino, a.ino);
	assert_int_equal(ao.attr.size, 5);
	assert_int_equal(ao.attr_valid, 1); /* cache=auto */
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "nope"), -ENOENT);
	/* The same file twice: one inode. */
	assert_int_equal(lookup(t, FUSE_ROOT_ID, "a", NULL), n);
	assert_int_equal(fuse_server_inodes(t->s), 2);
	/* LOOKUP under a file. */
	assert_int_equal(lookup_err(t, n, "x"), -ENOTDIR);
	/* STATFS, ACCESS. */
	assert_int_equal(req(t, FUSE_STATFS, FUSE_ROOT_ID, END), 0);
	assert_true(((struct fuse_statfs_out *)payload(t))->st.namelen > 0);
	struct fuse_access_in ai = {.mask = R_OK};
	assert_int_equal(req(t, FUSE_ACCESS, n, A(ai), END), 0);
}

static void test_create_write_read(void **state)
{
	struct t *t = *state;
	do_init(t);
	mode_t old = umask(077); /* the host's umask must not take the guest's bits */
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 0644};
	int r = req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("f"), END);
	umask(old);
	assert_int_equal(r, 0);
	struct fuse_entry_out eo;
	struct fuse_open_out oo;
	memcpy(&eo, payload(t), sizeof(eo));
	memcpy(&oo, (uint8_t *)payload(t) + sizeof(eo), sizeof(oo));
	assert_int_equal(oo.open_flags, 0); /* cache=auto: neither direct I/O nor keep cache */
	assert_int_equal(fuse_server_handles(t->s), 1);

	char data[10000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	struct fuse_write_in wi = {.fh = oo.fh, .offset = 100, .size = sizeof(data)};
	assert_int_equal(req(t, FUSE_WRITE, eo.nodeid, A(wi), A(data), END), 0);
	assert_int_equal(((struct fuse_write_out *)payload(t))->size, sizeof(data));
	assert_int_equal(t->res.data_bytes, sizeof(data));

	/* On the host. */
	char p[512], back[sizeof(data)];
	snprintf(p, sizeof(p), "%s/f", t->share);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 100 + sizeof(data));
	assert_int_equal(st.st_mode & 0777, 0644);
	int fd = open(p, O_RDONLY);
	assert_int_equal(pread(fd, back, sizeof(back), 100), (ssize_t)sizeof(back));
	close(fd);
	assert_memory_equal(back, data, sizeof(data));

	/* READ back (split out buffers), then a short read at the end, then past it. */
	struct fuse_read_in ri = {.fh = oo.fh, .offset = 100, .size = sizeof(data)};
	assert_int_equal(req(t, FUSE_READ, eo.nodeid, A(ri), END), 0);
	assert_int_equal(t->res.len, 16 + sizeof(data));
	assert_memory_equal(payload(t), data, sizeof(data));
	ri.offset = 100 + sizeof(data) - 10;
	assert_int_equal(req(t, FUSE_READ, eo.nodeid, A(ri), END), 0);
	assert_int_equal(t->res.len, 16 + 10);
	ri.offset = 1 << 20;
	assert_int_equal(req(t, FUSE_READ, eo.nodeid, A(ri), END), 0);
	assert_int_equal(t->res.len, 16);
	/* A READ bigger than the room: capped to it. */
	ri.offset = 100;
	assert_int_equal(req_out(t, FUSE_READ, eo.nodeid, 16 + 64, A(ri), END), 0);
	assert_int_equal(t->res.len, 16 + 64);
	assert_memory_equal(payload(t), data, 64);

	/* SETATTR: truncate through the handle, chmod, times. */
	struct fuse_setattr_in sa = {.valid = FATTR_SIZE | FATTR_FH, .fh = oo.fh, .size = 50};
	assert_int_equal(req(t, FUSE_SETATTR, eo.nodeid, A(sa), END), 0);
	assert_int_equal(((struct fuse_attr_out *)payload(t))->attr.size, 50);
	sa = (struct fuse_setattr_in){.valid = FATTR_MODE | FATTR_MTIME | FATTR_SIZE,
				      .mode = 0600,
				      .mtime = 1000000,
				      .mtimensec = 5,
				      .size = 20};
	assert_int_equal(req(t, FUSE_SETATTR, eo.nodeid, A(sa), END), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_mtim.tv_sec, 1000000);
	assert_int_equal(st.st_mtim.tv_nsec, 5);
	assert_int_equal(st.st_size, 20);
	sa = (struct fuse_setattr_in){
	    .valid = FATTR_UID | FATTR_GID, .uid = getuid(), .gid = getgid()};
	assert_int_equal(req(t, FUSE_SETATTR, eo.nodeid, A(sa), END), 0);

	/* LSEEK, FALLOCATE, FSYNC, FLUSH, COPY_FILE_RANGE, RELEASE. */
	struct fuse_lseek_in li = {.fh = oo.fh, .offset = 0, .whence = SEEK_END};
	assert_int_equal(req(t, FUSE_LSEEK, eo.nodeid, A(li), END), 0);
	assert_int_equal(((struct fuse_lseek_out *)payload(t))->offset, 20);
	li.whence = 77;
	assert_int_equal(req(t, FUSE_LSEEK, eo.nodeid, A(li), END), -EINVAL);
	struct fuse_fallocate_in fa = {.fh = oo.fh, .offset = 0, .length = 4096};
	assert_int_equal(req(t, FUSE_FALLOCATE, eo.nodeid, A(fa), END), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4096);
	fa.mode = 0x40; /* FALLOC_FL_INSERT_RANGE: not passed on */
	assert_int_equal(req(t, FUSE_FALLOCATE, eo.nodeid, A(fa), END), -EOPNOTSUPP);
	struct fuse_fsync_in fs = {.fh = oo.fh, .fsync_flags = 1};
	assert_int_equal(req(t, FUSE_FSYNC, eo.nodeid, A(fs), END), 0);
	struct fuse_flush_in fl = {.fh = oo.fh};
	assert_int_equal(req(t, FUSE_FLUSH, eo.nodeid, A(fl), END), 0);
	struct fuse_copy_file_range_in cr = {
	    .fh_in = oo.fh, .off_in = 0, .fh_out = oo.fh, .off_out = 8192, .len = 10};
	assert_int_equal(req(t, FUSE_COPY_FILE_RANGE, eo.nodeid, A(cr), END), 0);
	assert_int_equal(((struct fuse_write_out *)payload(t))->size, 10);
	struct fuse_release_in rel = {.fh = oo.fh};
	assert_int_equal(req(t, FUSE_RELEASE, eo.nodeid, A(rel), END), 0);
	assert_int_equal(fuse_server_handles(t->s), 0);
	/* The handle is gone. */
	assert_int_equal(req(t, FUSE_READ, eo.nodeid, A(ri), END), -EBADF);
	assert_int_equal(req(t, FUSE_RELEASE, eo.nodeid, A(rel), END), -EBADF);

	/* OPEN again, O_TRUNC. */
	uint64_t fh = open_node(t, eo.nodeid, FUSE_OPEN, O_WRONLY | O_TRUNC);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 0);
	/* Writing through a read-only handle fails on the host. */
	rel.fh = fh;
	assert_int_equal(req(t, FUSE_RELEASE, eo.nodeid, A(rel), END), 0);
	fh = open_node(t, eo.nodeid, FUSE_OPEN, O_RDONLY);
	wi.fh = fh;
	wi.size = 1;
	assert_int_equal(req(t, FUSE_WRITE, eo.nodeid, A(wi), A(data), END), -EBADF);
	/* CREATE on an existing name: opened, its mode kept. */
	ci.flags = O_RDWR;
	ci.mode = S_IFREG | 0777;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("f"), END), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	ci.flags = O_RDWR | O_EXCL;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("f"), END), -EEXIST);
}

/* Parses READDIR(PLUS) replies: the names, and with plus whether each has a node id. */
static size_t parse_dirents(struct t *t, bool plus, char names[][64], size_t max, uint64_t *last)
{
	size_t n = 0, off = 0, len = t->res.len - 16;
	uint8_t *p = payload(t);
	while (off < len) {
		struct fuse_dirent *d;
		if (plus) {
			struct fuse_direntplus *dp = (void *)(p + off);
			d = &dp->dirent;
			bool dots = d->namelen <= 2 && d->name[0] == '.' &&
				    (d->namelen == 1 || d->name[1] == '.');
			assert_true(dots ? dp->entry_out.nodeid == 0 : dp->entry_out.nodeid != 0);
			off += FUSE_DIRENTPLUS_SIZE(dp);
		} else {
			d = (void *)(p + off);
			off += FUSE_DIRENT_SIZE(d);
		}
		assert_true(off <= len);
		assert_true(n < max && d->namelen < 64);
		memcpy(names[n], d->name, d->namelen);
		names[n][d->namelen] = '\0';
		*last = d->off;
		n++;
	}
	return n;
}

static bool has(char names[][64], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static void test_mkdir_readdir(void **state)
{
	struct t *t = *state;
	do_init(t);
	struct fuse_mkdir_in mi = {.mode = 0750};
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("d"), END), 0);
	uint64_t d = ((struct fuse_entry_out *)payload(t))->nodeid;
	char p[512];
	snprintf(p, sizeof(p), "%s/d", t->share);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("d"), END), -EEXIST);
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "d/file-%02d", i);
		host_file(t, name, "x");
	}
	uint64_t fh = open_node(t, d, FUSE_OPENDIR, O_RDONLY);
	struct fuse_read_in ri = {.fh = fh, .size = 4096};
	assert_int_equal(req(t, FUSE_READDIRPLUS, d, A(ri), END), 0);
	char names[64][64];
	uint64_t last = 0;
	size_t n = parse_dirents(t, true, names, 64, &last);
	assert_int_equal(n, 22);
	assert_true(has(names, n, ".") && has(names, n, "..") && has(names, n, "file-07"));
	assert_int_equal(fuse_server_inodes(t->s), 2 + 20);

	/* READDIR in pieces of one entry's room: every name once, then the end. */
	ri.offset = 0;
	ri.size = 40;
	size_t total = 0;
	for (int round = 0; round < 100; round++) {
		assert_int_equal(req(t, FUSE_READDIR, d, A(ri), END), 0);
		if (t->res.len == 16)
			break;
		size_t k = parse_dirents(t, false, names + total, 64 - total, &last);
		assert_int_equal(k, 1);
		total += k;
		ri.offset = last;
	}
	assert_int_equal(total, 22);
	assert_true(has(names, total, "file-19"));
	/* Too small for any entry: nothing (not an error). */
	ri.offset = 0;
	ri.size = 8;
	assert_int_equal(req(t, FUSE_READDIR, d, A(ri), END), 0);
	assert_int_equal(t->res.len, 16);
	/* A file handle is not a directory handle, and the reverse. */
	assert_int_equal(req(t, FUSE_READ, d, A(ri), END), -EBADF);
	assert_int_equal(req(t, FUSE_OPEN, d, A(ri), END), -EISDIR);
	struct fuse_fsync_in fs = {.fh = fh};
	assert_int_equal(req(t, FUSE_FSYNCDIR, d, A(fs), END), 0);
	struct fuse_release_in rel = {.fh = fh};
	assert_int_equal(req(t, FUSE_RELEASEDIR, d, A(rel), END), 0);
	/* RMDIR of a full directory, then emptied. */
	assert_int_equal(req(t, FUSE_RMDIR, FUSE_ROOT_ID, S("d"), END), -ENOTEMPTY);
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "file-%02d", i);
		assert_int_equal(req(t, FUSE_UNLINK, d, S(name), END), 0);
	}
	assert_int_equal(req(t, FUSE_RMDIR, FUSE_ROOT_ID, S("d"), END), 0);
	assert_int_equal(stat(p, &st), -1);
}

static void test_rename_unlink_link(void **state)
{
	struct t *t = *state;
	do_init(t);
	host_file(t, "a", "A");
	host_file(t, "b", "B");
	assert_int_equal(mkdir(strcat(strcpy((char[512]){0}, t->share), "/sub"), 0755), 0);
	uint64_t sub = lookup(t, FUSE_ROOT_ID, "sub", NULL);
	struct fuse_rename_in rn = {.newdir = sub};
	assert_int_equal(req(t, FUSE_RENAME, FUSE_ROOT_ID, A(rn), S("a"), S("a2"), END), 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/sub/a2", t->share);
	assert_int_equal(access(p, F_OK), 0);
	struct fuse_rename2_in r2 = {.newdir = FUSE_ROOT_ID, .flags = RENAME_NOREPLACE};
	assert_int_equal(req(t, FUSE_RENAME2, sub, A(r2), S("a2"), S("b"), END), -EEXIST);
	r2.flags = RENAME_EXCHANGE;
	assert_int_equal(req(t, FUSE_RENAME2, sub, A(r2), S("a2"), S("b"), END), 0);
	r2.flags = 4; /* RENAME_WHITEOUT */
	assert_int_equal(req(t, FUSE_RENAME2, sub, A(r2), S("a2"), S("b"), END), -EINVAL);
	rn.newdir = 12345;
	assert_int_equal(req(t, FUSE_RENAME, FUSE_ROOT_ID, A(rn), S("b"), S("c"), END), -ESTALE);

	uint64_t b = lookup(t, FUSE_ROOT_ID, "b", NULL);
	struct fuse_link_in li = {.oldnodeid = b};
	assert_int_equal(req(t, FUSE_LINK, sub, A(li), S("hard"), END), 0);
	assert_int_equal(((struct fuse_entry_out *)payload(t))->nodeid, b);
	assert_int_equal(((struct fuse_entry_out *)payload(t))->attr.nlink, 2);
	li.oldnodeid = sub;
	assert_int_equal(req(t, FUSE_LINK, FUSE_ROOT_ID, A(li), S("dirlink"), END), -EPERM);

	assert_int_equal(req(t, FUSE_UNLINK, FUSE_ROOT_ID, S("b"), END), 0);
	assert_int_equal(req(t, FUSE_UNLINK, FUSE_ROOT_ID, S("b"), END), -ENOENT);
	snprintf(p, sizeof(p), "%s/b", t->share);
	assert_int_equal(access(p, F_OK), -1);

	/* MKNOD: a FIFO yes, a device node no. */
	struct fuse_mknod_in mk = {.mode = S_IFIFO | 0600};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("fifo"), END), 0);
	uint64_t fifo = ((struct fuse_entry_out *)payload(t))->nodeid;
	mk.mode = S_IFCHR | 0600;
	mk.rdev = makedev(1, 3);
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("null"), END), -EPERM);
	/* A FIFO is never opened by the server (it would block). */
	struct fuse_open_in oi = {.flags = O_RDONLY};
	assert_int_equal(req(t, FUSE_OPEN, fifo, A(oi), END), -ENXIO);
}

static void test_symlink_not_followed(void **state)
{
	struct t *t = *state;
	do_init(t);
	struct fuse_attr a;
	assert_int_equal(req(t, FUSE_SYMLINK, FUSE_ROOT_ID, S("etc"), S("/etc"), END), 0);
	char p[512], buf[64];
	snprintf(p, sizeof(p), "%s/etc", t->share);
	ssize_t n = readlink(p, buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "/etc", 4);
	uint64_t l = lookup(t, FUSE_ROOT_ID, "etc", &a);
	assert_true(S_ISLNK(a.mode));
	assert_int_equal(req(t, FUSE_READLINK, l, END), 0);
	assert_int_equal(t->res.len, 16 + 4);
	assert_memory_equal(payload(t), "/etc", 4);
	/* Through the symlink: nothing. */
	assert_int_equal(lookup_err(t, l, "passwd"), -ENOTDIR);
	struct fuse_open_in oi = {.flags = O_RDONLY};
	assert_int_equal(req(t, FUSE_OPEN, l, A(oi), END), -ELOOP);
	assert_int_equal(req(t, FUSE_OPENDIR, l, A(oi), END), -ENOTDIR);
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 0644};
	assert_int_equal(req(t, FUSE_CREATE, l, A(ci), S("x"), END), -ENOTDIR);
	struct fuse_getxattr_in gx = {.size = 0};
	assert_int_equal(req(t, FUSE_GETXATTR, l, A(gx), S("user.x"), END), -ENODATA);
	/* A symlink to a file outside the share, planted on the host: CREATE, MKDIR, MKNOD
	 * over it neither follow nor touch the target. */
	snprintf(p, sizeof(p), "%s/esc", t->share);
	assert_int_equal(symlink(t->canary, p), 0);
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("esc"), END), -ELOOP);
	ci.flags = O_RDWR | O_TRUNC;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("esc"), END), -ELOOP);
	uint64_t esc = lookup(t, FUSE_ROOT_ID, "esc", &a);
	assert_true(S_ISLNK(a.mode));
	assert_int_equal(req(t, FUSE_OPEN, esc, A(oi), END), -ELOOP);
	struct fuse_setattr_in sa = {.valid = FATTR_SIZE, .size = 0};
	assert_int_equal(req(t, FUSE_SETATTR, esc, A(sa), END), -ELOOP);
	sa = (struct fuse_setattr_in){.valid = FATTR_MODE, .mode = 0777};
	assert_int_equal(req(t, FUSE_SETATTR, esc, A(sa), END), -EOPNOTSUPP);
	struct fuse_setxattr_in sx = {.size = 1};
	assert_int_equal(req(t, FUSE_SETXATTR, esc, (struct arg){&sx, 8}, S("user.x"), S(""), END),
			 -EPERM);
	/* Timestamps of the link itself (not the target). */
	sa = (struct fuse_setattr_in){.valid = FATTR_MTIME, .mtime = 12345};
	int r = req(t, FUSE_SETATTR, esc, A(sa), END);
	assert_true(r == 0 || r == -EINVAL);
	/* GETATTR of the link describes the link. */
	struct fuse_getattr_in gi = {0};
	assert_int_equal(req(t, FUSE_GETATTR, esc, A(gi), END), 0);
	assert_true(S_ISLNK(((struct fuse_attr_out *)payload(t))->attr.mode));
	/* LINK of the symlink makes a second link to the symlink, not to the canary. */
	struct fuse_link_in li = {.oldnodeid = esc};
	assert_int_equal(req(t, FUSE_LINK, FUSE_ROOT_ID, A(li), S("esc2"), END), 0);
	assert_true(S_ISLNK(((struct fuse_entry_out *)payload(t))->attr.mode));
	/* Removing it removes the link. */
	assert_int_equal(req(t, FUSE_UNLINK, FUSE_ROOT_ID, S("esc"), END), 0);
	assert_int_equal(access(t->canary, F_OK), 0);
}

static void test_confinement(void **state)
{
	struct t *t = *state;
	do_init(t);
	/* ".." at the root is the root; "." is the directory itself. */
	assert_int_equal(lookup(t, FUSE_ROOT_ID, "..", NULL), FUSE_ROOT_ID);
	assert_int_equal(lookup(t, FUSE_ROOT_ID, ".", NULL), FUSE_ROOT_ID);
	assert_int_equal(mkdir(strcat(strcpy((char[512]){0}, t->share), "/sub"), 0755), 0);
	uint64_t sub = lookup(t, FUSE_ROOT_ID, "sub", NULL);
	assert_int_equal(lookup_err(t, sub, ".."), -EINVAL);
	/* Names with '/', empty names, names too long. */
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "../canary"), -EINVAL);
	assert_int_equal(lookup_err(t, sub, "../../canary"), -EINVAL);
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "/etc"), -EINVAL);
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, ""), -EINVAL);
	char longname[300];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, longname), -ENAMETOOLONG);
	struct fuse_mkdir_in mi = {.mode = 0755};
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S(".."), END), -EINVAL);
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("../x"), END), -EINVAL);
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 0644};
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("../canary"), END), -EINVAL);
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S(".."), END), -EINVAL);
	assert_int_equal(req(t, FUSE_UNLINK, FUSE_ROOT_ID, S("../canary"), END), -EINVAL);
	assert_int_equal(req(t, FUSE_RMDIR, sub, S(".."), END), -EINVAL);
	assert_int_equal(req(t, FUSE_SYMLINK, FUSE_ROOT_ID, S("../l"), S("x"), END), -EINVAL);
	struct fuse_rename_in rn = {.newdir = FUSE_ROOT_ID};
	assert_int_equal(req(t, FUSE_RENAME, sub, A(rn), S(".."), S("x"), END), -EINVAL);
	assert_int_equal(req(t, FUSE_RENAME, FUSE_ROOT_ID, A(rn), S("sub"), S("../x"), END),
			 -EINVAL);
	struct fuse_link_in li = {.oldnodeid = sub};
	assert_int_equal(req(t, FUSE_LINK, FUSE_ROOT_ID, A(li), S("../x"), END), -EINVAL);
	/* Unknown and stale node ids. */
	assert_int_equal(lookup_err(t, 0, "sub"), -ESTALE);
	assert_int_equal(lookup_err(t, 0xffffffffffffffffull, "sub"), -ESTALE);
	assert_int_equal(lookup_err(t, sub + (1ull << 32), "x"), -ESTALE);
	struct fuse_forget_in fg = {.nlookup = 1};
	req(t, FUSE_FORGET, sub, A(fg), END);
	assert_int_equal(lookup_err(t, sub, "x"), -ESTALE);
	/* The root listing never shows the canary, which lives one level up. */
	uint64_t fh = open_node(t, FUSE_ROOT_ID, FUSE_OPENDIR, O_RDONLY);
	struct fuse_read_in ri = {.fh = fh, .size = 4096};
	assert_int_equal(req(t, FUSE_READDIRPLUS, FUSE_ROOT_ID, A(ri), END), 0);
	char names[16][64];
	uint64_t last;
	size_t n = parse_dirents(t, true, names, 16, &last);
	assert_false(has(names, n, "canary"));
	assert_true(has(names, n, "sub"));
}

static void test_xattr(void **state)
{
	struct t *t = *state;
	do_init(t);
	host_file(t, "x", "");
	uint64_t n = lookup(t, FUSE_ROOT_ID, "x", NULL);
	struct fuse_setxattr_in sx = {.size = 5};
	int r = req(t, FUSE_SETXATTR, n, (struct arg){&sx, 8}, S("user.vmm"),
		    (struct arg){"hello", 5}, END);
	if (r == -EOPNOTSUPP || r == -EPERM)
		skip(); /* no user.* xattrs on this file system */
	assert_int_equal(r, 0);
	char p[512], buf[16];
	snprintf(p, sizeof(p), "%s/x", t->share);
	assert_int_equal(getxattr(p, "user.vmm", buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	struct fuse_getxattr_in gx = {.size = 0};
	assert_int_equal(req(t, FUSE_GETXATTR, n, A(gx), S("user.vmm"), END), 0);
	assert_int_equal(((struct fuse_getxattr_out *)payload(t))->size, 5);
	gx.size = 64;
	assert_int_equal(req(t, FUSE_GETXATTR, n, A(gx), S("user.vmm"), END), 0);
	assert_int_equal(t->res.len, 16 + 5);
	assert_memory_equal(payload(t), "hello", 5);
	gx.size = 2;
	assert_int_equal(req(t, FUSE_GETXATTR, n, A(gx), S("user.vmm"), END), -ERANGE);
	gx.size = 0;
	assert_int_equal(req(t, FUSE_LISTXATTR, n, A(gx), END), 0);
	uint32_t need = ((struct fuse_getxattr_out *)payload(t))->size;
	assert_true(need >= 9);
	gx.size = need;
	assert_int_equal(req(t, FUSE_LISTXATTR, n, A(gx), END), 0);
	assert_non_null(memmem(payload(t), need, "user.vmm", 9));
	/* A value longer than the request holds. */
	sx.size = 100;
	assert_int_equal(req(t, FUSE_SETXATTR, n, (struct arg){&sx, 8}, S("user.y"),
			     (struct arg){"hello", 5}, END),
			 -EINVAL);
	/* File capabilities are refused. */
	sx.size = 1;
	assert_int_equal(req(t, FUSE_SETXATTR, n, (struct arg){&sx, 8}, S("security.capability"),
			     (struct arg){"z", 1}, END),
			 -EPERM);
	assert_int_equal(req(t, FUSE_REMOVEXATTR, n, S("user.vmm"), END), 0);
	gx.size = 64;
	assert_int_equal(req(t, FUSE_GETXATTR, n, A(gx), S("user.vmm"), END), -ENODATA);
	/* Names without NUL. */
	assert_int_equal(req(t, FUSE_REMOVEXATTR, n, (struct arg){"user.vmm", 8}, END), -EINVAL);
	assert_int_equal(req(t, FUSE_GETXATTR, n, A(gx), (struct arg){"user", 4}, END), -EINVAL);
}

static void test_forget_drops_fd(void **state)
{
	struct t *t = *state;
	do_init(t);
	host_file(t, "a", "");
	host_file(t, "b", "");
	int fds = count_fds();
	uint64_t a = lookup(t, FUSE_ROOT_ID, "a", NULL);
	lookup(t, FUSE_ROOT_ID, "a", NULL);
	lookup(t, FUSE_ROOT_ID, "a", NULL);
	uint64_t b = lookup(t, FUSE_ROOT_ID, "b", NULL);
	assert_int_equal(count_fds(), fds + 2);
	assert_int_equal(fuse_server_inodes(t->s), 3);
	struct fuse_forget_in fg = {.nlookup = 2};
	req(t, FUSE_FORGET, a, A(fg), END);
	assert_int_equal(count_fds(), fds + 2);
	fg.nlookup = 1;
	req(t, FUSE_FORGET, a, A(fg), END);
	assert_int_equal(count_fds(), fds + 1);
	assert_int_equal(fuse_server_inodes(t->s), 2);
	/* Double FORGET, FORGET of the root, of nothing: harmless. */
	req(t, FUSE_FORGET, a, A(fg), END);
	req(t, FUSE_FORGET, FUSE_ROOT_ID, A(fg), END);
	req(t, FUSE_FORGET, 0, A(fg), END);
	assert_int_equal(fuse_server_inodes(t->s), 2);
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "."), 0);
	/* BATCH_FORGET, with a count of more than the guest held. */
	struct {
		struct fuse_batch_forget_in h;
		struct fuse_forget_one one[2];
	} bf = {{.count = 2}, {{.nodeid = b, .nlookup = 99}, {.nodeid = a, .nlookup = 1}}};
	req(t, FUSE_BATCH_FORGET, 0, A(bf), END);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(fuse_server_inodes(t->s), 1);
	/* The slot is reused with a new generation: the old id is stale. */
	uint64_t b2 = lookup(t, FUSE_ROOT_ID, "b", NULL);
	assert_int_not_equal(b2, b);
	assert_int_equal(lookup_err(t, b, "."), -ESTALE);
	/* INTERRUPT has no reply. */
	struct fuse_interrupt_in ii = {.unique = 1};
	req(t, FUSE_INTERRUPT, 0, A(ii), END);
}

static void test_limits(void **state)
{
	struct t *t = *state;
	server(t, false, 4, 2);
	do_init(t);
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		host_file(t, name, "z");
	}
	uint64_t f0 = lookup(t, FUSE_ROOT_ID, "f0", NULL);
	lookup(t, FUSE_ROOT_ID, "f1", NULL);
	lookup(t, FUSE_ROOT_ID, "f2", NULL);
	assert_int_equal(lookup_err(t, FUSE_ROOT_ID, "f3"), -ENFILE);
	/* One already held still works. */
	assert_int_equal(lookup(t, FUSE_ROOT_ID, "f2", NULL), lookup(t, FUSE_ROOT_ID, "f2", NULL));
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 0644};
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("new"), END), -ENFILE);
	/* READDIRPLUS stops at the bound. */
	uint64_t dfh = open_node(t, FUSE_ROOT_ID, FUSE_OPENDIR, O_RDONLY);
	struct fuse_read_in ri = {.fh = dfh, .size = 4096};
	int r = req(t, FUSE_READDIRPLUS, FUSE_ROOT_ID, A(ri), END);
	assert_true(r == 0 || r == -ENFILE);
	assert_int_equal(fuse_server_inodes(t->s), 4);
	open_node(t, f0, FUSE_OPEN, O_RDONLY);
	struct fuse_open_in oi = {.flags = O_RDONLY};
	assert_int_equal(req(t, FUSE_OPEN, f0, A(oi), END), -ENFILE);
	assert_int_equal(fuse_server_handles(t->s), 2);
}

static void test_readonly(void **state)
{
	struct t *t = *state;
	host_file(t, "a", "data");
	server(t, true, 0, 0);
	do_init(t);
	uint64_t a = lookup(t, FUSE_ROOT_ID, "a", NULL);
	struct fuse_mkdir_in mi = {.mode = 0755};
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("d"), END), -EROFS);
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 0644};
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("n"), END), -EROFS);
	struct fuse_open_in oi = {.flags = O_WRONLY};
	assert_int_equal(req(t, FUSE_OPEN, a, A(oi), END), -EROFS);
	oi.flags = O_RDONLY | O_TRUNC;
	assert_int_equal(req(t, FUSE_OPEN, a, A(oi), END), -EROFS);
	struct fuse_setattr_in sa = {.valid = FATTR_SIZE};
	assert_int_equal(req(t, FUSE_SETATTR, a, A(sa), END), -EROFS);
	assert_int_equal(req(t, FUSE_UNLINK, FUSE_ROOT_ID, S("a"), END), -EROFS);
	assert_int_equal(req(t, FUSE_SYMLINK, FUSE_ROOT_ID, S("l"), S("a"), END), -EROFS);
	struct fuse_rename_in rn = {.newdir = FUSE_ROOT_ID};
	assert_int_equal(req(t, FUSE_RENAME, FUSE_ROOT_ID, A(rn), S("a"), S("b"), END), -EROFS);
	struct fuse_setxattr_in sx = {.size = 1};
	assert_int_equal(
	    req(t, FUSE_SETXATTR, a, (struct arg){&sx, 8}, S("user.x"), (struct arg){"z", 1}, END),
	    -EROFS);
	assert_int_equal(req(t, FUSE_REMOVEXATTR, a, S("user.x"), END), -EROFS);
	struct fuse_access_in ai = {.mask = W_OK};
	assert_int_equal(req(t, FUSE_ACCESS, a, A(ai), END), -EROFS);
	/* Reading works. */
	uint64_t fh = open_node(t, a, FUSE_OPEN, O_RDONLY);
	struct fuse_write_in wi = {.fh = fh, .size = 1};
	assert_int_equal(req(t, FUSE_WRITE, a, A(wi), (struct arg){"z", 1}, END), -EROFS);
	struct fuse_fallocate_in fa = {.fh = fh, .length = 1};
	assert_int_equal(req(t, FUSE_FALLOCATE, a, A(fa), END), -EROFS);
	struct fuse_read_in ri = {.fh = fh, .size = 100};
	assert_int_equal(req(t, FUSE_READ, a, A(ri), END), 0);
	assert_int_equal(t->res.len, 16 + 4);
	assert_memory_equal(payload(t), "data", 4);
}

/* Calls the server with raw buffers; returns fuse_server_handle's result. */
static int raw(struct t *t, const void *in, size_t inlen, size_t outcap)
{
	uint8_t *copy = malloc(inlen ? inlen : 1); /* exact size: ASan sees any overread */
	memcpy(copy, in, inlen);
	uint8_t *out = malloc(outcap ? outcap : 1);
	struct iovec iv = {copy, inlen}, ov = {out, outcap};
	int r = fuse_server_handle(t->s, &iv, 1, &ov, 1, &t->res);
	if (r == 0 && t->res.len)
		memcpy(t->out, out, t->res.len);
	free(copy);
	free(out);
	return r;
}

static void test_malformed(void **state)
{
	struct t *t = *state;
	do_init(t);
	uint8_t buf[256] = {0};
	struct fuse_in_header h = {
	    .len = sizeof(h), .opcode = FUSE_GETATTR, .unique = 9, .nodeid = FUSE_ROOT_ID};
	/* A header that does not fit, or whose len lies. */
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, 10, 64), -EINVAL);
	assert_int_equal(raw(t, buf, 0, 64), -EINVAL);
	h.len = 200;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, sizeof(h) + 16, 256), -EINVAL);
	h.len = 8;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, sizeof(h), 256), -EINVAL);
	h.len = 0xffffffff;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, sizeof(h), 256), -EINVAL);
	/* No room for the out header. */
	h.len = sizeof(h) + 16;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, sizeof(h) + 16, 8), -EINVAL);
	/* Room for the header but not the reply: an error answer, nothing done. */
	assert_int_equal(raw(t, buf, sizeof(h) + 16, 16), 0);
	assert_int_equal(t->res.error, EINVAL);
	assert_int_equal(t->res.len, 16);
	/* A trailing part beyond len is ignored. */
	assert_int_equal(raw(t, buf, sizeof(buf), 256), 0);
	assert_int_equal(t->res.error, 0);
	/* LOOKUP: a name without its NUL, at the very end of the buffer. */
	h = (struct fuse_in_header){
	    .len = sizeof(h) + 3, .opcode = FUSE_LOOKUP, .unique = 10, .nodeid = FUSE_ROOT_ID};
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "abc", 3);
	assert_int_equal(raw(t, buf, sizeof(h) + 3, 256), 0);
	assert_int_equal(t->res.error, EINVAL);
	/* The NUL exists past len: still not part of the request. */
	buf[sizeof(h) + 3] = 0;
	assert_int_equal(raw(t, buf, sizeof(h) + 4, 256), 0);
	assert_int_equal(t->res.error, EINVAL);
	/* Arguments shorter than the opcode's struct. */
	h = (struct fuse_in_header){
	    .len = sizeof(h) + 4, .opcode = FUSE_READ, .unique = 11, .nodeid = FUSE_ROOT_ID};
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, sizeof(h) + 4, 256), 0);
	assert_int_equal(t->res.error, EINVAL);
	/* WRITE claiming more data than it carries. */
	host_file(t, "w", "");
	uint64_t w = lookup(t, FUSE_ROOT_ID, "w", NULL);
	uint64_t fh = open_node(t, w, FUSE_OPEN, O_RDWR);
	struct fuse_write_in wi = {.fh = fh, .size = 1000};
	assert_int_equal(req(t, FUSE_WRITE, w, A(wi), (struct arg){"abc", 3}, END), -EINVAL);
	wi.size = 0xffffffff;
	assert_int_equal(req(t, FUSE_WRITE, w, A(wi), (struct arg){"abc", 3}, END), -EINVAL);
	/* SYMLINK whose target has no NUL. */
	assert_int_equal(req(t, FUSE_SYMLINK, FUSE_ROOT_ID, S("l"), (struct arg){"tgt", 3}, END),
			 -EINVAL);
	/* BATCH_FORGET counting more entries than it holds: malformed (no reply possible). */
	struct {
		struct fuse_in_header h;
		struct fuse_batch_forget_in b;
		struct fuse_forget_one one;
	} bf = {{.len = sizeof(bf), .opcode = FUSE_BATCH_FORGET}, {.count = 1000000}, {0}};
	assert_int_equal(raw(t, &bf, sizeof(bf), 0), -EINVAL);
	bf.b.count = 1;
	assert_int_equal(raw(t, &bf, sizeof(bf), 0), 0);
	/* An unknown opcode, the lock opcodes. */
	h = (struct fuse_in_header){.len = sizeof(h), .opcode = 9999, .unique = 12};
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(t, buf, sizeof(h), 64), 0);
	assert_int_equal(t->res.error, ENOSYS);
	struct fuse_lk_in lk = {0};
	assert_int_equal(req(t, FUSE_SETLK, w, A(lk), END), -ENOSYS);
	assert_int_equal(req(t, FUSE_GETLK, w, A(lk), END), -ENOSYS);
	/* Bad handles. */
	struct fuse_read_in ri = {.fh = 0xdeadbeef, .size = 10};
	assert_int_equal(req(t, FUSE_READ, w, A(ri), END), -EBADF);
	ri.fh = 0;
	assert_int_equal(req(t, FUSE_READ, w, A(ri), END), -EBADF);
	ri.fh = fh + (1ull << 32);
	assert_int_equal(req(t, FUSE_READ, w, A(ri), END), -EBADF);
	/* A huge offset. */
	ri.fh = fh;
	ri.offset = 1ull << 63;
	assert_int_equal(req(t, FUSE_READ, w, A(ri), END), -EINVAL);
	/* Hundreds of iovecs for one reply: at most 1024 used, no overrun. */
	struct iovec iv[2000];
	uint8_t *one = calloc(2000, 1);
	for (int i = 0; i < 2000; i++)
		iv[i] = (struct iovec){one + i, 1};
	ri = (struct fuse_read_in){.fh = fh, .size = 4096};
	struct {
		struct fuse_in_header h;
		struct fuse_read_in r;
	} rq = {{.len = sizeof(rq), .opcode = FUSE_READ, .unique = 13, .nodeid = w}, ri};
	struct iovec in = {&rq, sizeof(rq)};
	assert_int_equal(fuse_server_handle(t->s, &in, 1, iv, 2000, &t->res), 0);
	assert_int_equal(t->res.error, 0);
	free(one);
}

/* ---- setuid bits, device nodes, file capabilities, credentials ---- */

static mode_t host_mode(struct t *t, const char *rel)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", t->share, rel);
	if (lstat(p, &st) < 0)
		return 0;
	return st.st_mode;
}

static void host_chmod(struct t *t, const char *rel, mode_t m)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t->share, rel);
	assert_int_equal(chmod(p, m), 0);
}

/* A host file with mode m, looked up and opened for writing: its handle; *node its node id. */
static uint64_t open_host(struct t *t, const char *rel, mode_t m, uint64_t *node)
{
	host_file(t, rel, "0123456789");
	host_chmod(t, rel, m);
	*node = lookup(t, FUSE_ROOT_ID, rel, NULL);
	return open_node(t, *node, FUSE_OPEN, O_RDWR);
}

static bool is_root(void)
{
	return geteuid() == 0;
}

/* A file capability value the kernel accepts (VFS_CAP_REVISION_2, no capabilities). */
static const uint32_t fcap_v2[5] = {0x02000000u, 0, 0, 0, 0};

/* Without dev and suid (every share's default, the container root's too): each refused with
 * EPERM, nothing made or changed; what only lowers privileges, or sets group inheritance on a
 * directory, goes through. */
static void test_privileged_refused(void **state)
{
	struct t *t = *state;
	do_init(t);
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 04755};
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("su"), END), -EPERM);
	assert_int_equal(host_mode(t, "su"), 0);
	ci.mode = S_IFREG | 02755;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("sg"), END), -EPERM);
	ci.flags = O_RDWR | O_EXCL;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("sg"), END), -EPERM);
	assert_int_equal(host_mode(t, "sg"), 0);
	/* An existing file is opened: the mode does not apply to it. */
	host_file(t, "there", "x");
	ci.flags = O_RDWR;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("there"), END), 0);
	assert_int_equal(host_mode(t, "there") & 07000, 0);

	struct fuse_mkdir_in mi = {.mode = 04755};
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("sud"), END), -EPERM);
	assert_int_equal(host_mode(t, "sud"), 0);
	mi.mode = 02755; /* group inheritance: always allowed */
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("sgd"), END), 0);
	uint64_t sgd = ((struct fuse_entry_out *)payload(t))->nodeid;
	struct fuse_setattr_in sa = {.valid = FATTR_MODE, .mode = 02775};
	assert_int_equal(req(t, FUSE_SETATTR, sgd, A(sa), END), 0);
	assert_int_equal(host_mode(t, "sgd") & 07777, 02775);
	sa.mode = 04775;
	assert_int_equal(req(t, FUSE_SETATTR, sgd, A(sa), END), -EPERM);

	struct fuse_mknod_in mk = {.mode = S_IFREG | 04644};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("n1"), END), -EPERM);
	mk.mode = S_IFIFO | 02644;
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("n2"), END), -EPERM);
	mk = (struct fuse_mknod_in){.mode = S_IFBLK | 0600, .rdev = makedev(7, 0)};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("loop"), END), -EPERM);
	mk = (struct fuse_mknod_in){.mode = S_IFCHR | 0600, .rdev = makedev(1, 3)};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("null"), END), -EPERM);
	assert_int_equal(host_mode(t, "n1") | host_mode(t, "n2") | host_mode(t, "loop") |
			     host_mode(t, "null"),
			 0);

	host_file(t, "f", "x");
	uint64_t f = lookup(t, FUSE_ROOT_ID, "f", NULL);
	sa.mode = 04755;
	assert_int_equal(req(t, FUSE_SETATTR, f, A(sa), END), -EPERM);
	sa.mode = 02755;
	assert_int_equal(req(t, FUSE_SETATTR, f, A(sa), END), -EPERM);
	assert_int_equal(host_mode(t, "f") & 07777, 0644);
	sa.mode = 0700;
	assert_int_equal(req(t, FUSE_SETATTR, f, A(sa), END), 0);
	/* A bit the file already has (from the host) may stay while others change. */
	host_chmod(t, "f", 04755);
	sa.mode = 04711;
	assert_int_equal(req(t, FUSE_SETATTR, f, A(sa), END), 0);
	assert_int_equal(host_mode(t, "f") & 07777, 04711);

	struct fuse_setxattr_in sx = {.size = sizeof(fcap_v2)};
	assert_int_equal(req(t, FUSE_SETXATTR, f, (struct arg){&sx, 8}, S("security.capability"),
			     (struct arg){fcap_v2, sizeof(fcap_v2)}, END),
			 -EPERM);
}

/* A setuid file from the host loses S_ISUID (and S_ISGID with S_IXGRP) before the guest
 * changes its content: WRITE, FALLOCATE, COPY_FILE_RANGE into it, a truncating SETATTR. Run as
 * root, the thread holds CAP_FSETID, as the guest's root does in vmm: only the server clears
 * them then. */
static void test_write_clears_setuid(void **state)
{
	struct t *t = *state;
	do_init(t);
	uint64_t n, fh = open_host(t, "w", 06755, &n);
	struct fuse_write_in wi = {.fh = fh, .size = 1};
	assert_int_equal(req(t, FUSE_WRITE, n, A(wi), (struct arg){"z", 1}, END), 0);
	assert_int_equal(host_mode(t, "w") & 07777, 0755);
	/* S_ISGID without group execute is no privilege: kept. */
	host_chmod(t, "w", 02745);
	assert_int_equal(req(t, FUSE_WRITE, n, A(wi), (struct arg){"z", 1}, END), 0);
	assert_int_equal(host_mode(t, "w") & 07777, 02745);

	host_chmod(t, "w", 04755);
	struct fuse_fallocate_in fa = {.fh = fh, .length = 100};
	assert_int_equal(req(t, FUSE_FALLOCATE, n, A(fa), END), 0);
	assert_int_equal(host_mode(t, "w") & 07777, 0755);

	host_chmod(t, "w", 04755);
	struct fuse_setattr_in sa = {.valid = FATTR_SIZE, .size = 3};
	assert_int_equal(req(t, FUSE_SETATTR, n, A(sa), END), 0);
	assert_int_equal(host_mode(t, "w") & 07777, 0755);

	uint64_t n2, fh2 = open_host(t, "dst", 04755, &n2);
	struct fuse_copy_file_range_in cr = {.fh_in = fh, .fh_out = fh2, .len = 2};
	assert_int_equal(req(t, FUSE_COPY_FILE_RANGE, n, A(cr), END), 0);
	assert_int_equal(host_mode(t, "dst") & 07777, 0755);
}

/* With dev and suid (JSON/--share options): the same requests work. */
static void test_privileged_allowed(void **state)
{
	struct t *t = *state;
	struct fuse_server_config c = {.cache = FUSE_CACHE_AUTO, .dev = true, .suid = true};
	server_cfg(t, &c);
	do_init(t);
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 04755};
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("su"), END), 0);
	uint64_t su = ((struct fuse_entry_out *)payload(t))->nodeid;
	uint64_t fh =
	    ((struct fuse_open_out *)((uint8_t *)payload(t) + sizeof(struct fuse_entry_out)))->fh;
	assert_int_equal(host_mode(t, "su") & 07777, 04755);
	ci.mode = S_IFREG | 02755;
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("sg"), END), 0);
	assert_int_equal(host_mode(t, "sg") & 07777, 02755);
	struct fuse_mkdir_in mi = {.mode = 04755};
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("sud"), END), 0);
	struct fuse_mknod_in mk = {.mode = S_IFREG | 04644};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("n1"), END), 0);
	assert_int_equal(host_mode(t, "n1") & 07777, 04644);
	host_file(t, "f", "x");
	uint64_t f = lookup(t, FUSE_ROOT_ID, "f", NULL);
	struct fuse_setattr_in sa = {.valid = FATTR_MODE, .mode = 04750};
	assert_int_equal(req(t, FUSE_SETATTR, f, A(sa), END), 0);
	assert_int_equal(host_mode(t, "f") & 07777, 04750);

	/* A write the guest kernel asks to kill the bits for (a direct write by a user without
	 * CAP_FSETID): cleared. Without the flag, a writer with CAP_FSETID keeps them. */
	struct fuse_write_in wi = {.fh = fh, .size = 1};
	if (is_root()) {
		assert_int_equal(req(t, FUSE_WRITE, su, A(wi), (struct arg){"z", 1}, END), 0);
		assert_int_equal(host_mode(t, "su") & 07777, 04755);
	}
	wi.write_flags = FUSE_WRITE_KILL_SUIDGID;
	assert_int_equal(req(t, FUSE_WRITE, su, A(wi), (struct arg){"z", 1}, END), 0);
	assert_int_equal(host_mode(t, "su") & 07777, 0755);

	if (!is_root())
		return; /* device nodes and file capabilities need CAP_MKNOD and CAP_SETFCAP */
	mk = (struct fuse_mknod_in){.mode = S_IFCHR | 0600, .rdev = makedev(1, 3)};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("null"), END), 0);
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/null", t->share);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	struct fuse_entry_out *eo = payload(t);
	assert_int_equal(eo->attr.rdev, makedev(1, 3));
	mk = (struct fuse_mknod_in){.mode = S_IFBLK | 0600, .rdev = makedev(259, 70000)};
	assert_int_equal(req(t, FUSE_MKNOD, FUSE_ROOT_ID, A(mk), S("blk"), END), 0);
	snprintf(p, sizeof(p), "%s/blk", t->share);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(major(st.st_rdev), 259);
	assert_int_equal(minor(st.st_rdev), 70000);

	struct fuse_setxattr_in sx = {.size = sizeof(fcap_v2)};
	int r = req(t, FUSE_SETXATTR, f, (struct arg){&sx, 8}, S("security.capability"),
		    (struct arg){fcap_v2, sizeof(fcap_v2)}, END);
	if (r == -EOPNOTSUPP)
		return; /* no security.* xattrs on this file system */
	assert_int_equal(r, 0);
	snprintf(p, sizeof(p), "%s/f", t->share);
	assert_true(getxattr(p, "security.capability", NULL, 0) > 0);
}

static unsigned thread_fsuid(void)
{
	return (unsigned)syscall(SYS_setfsuid, -1);
}

static unsigned thread_fsgid(void)
{
	return (unsigned)syscall(SYS_setfsgid, -1);
}

/* Each request as its header's ids (needs root: CAP_SETUID, CAP_SETGID and the file system
 * capabilities, as the worker holds them in vmm). */
static void test_credentials(void **state)
{
	struct t *t = *state;
	if (!is_root())
		skip();
	assert_int_equal(chmod(t->share, 0777), 0);
	struct fuse_server_config c = {.cache = FUSE_CACHE_AUTO, .credentials = true};
	server_cfg(t, &c);
	do_init(t);
	char p[512];
	struct stat st;

	t->uid = 1234;
	t->gid = 5678;
	struct fuse_create_in ci = {.flags = O_RDWR, .mode = S_IFREG | 0644};
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("owned"), END), 0);
	uint64_t owned = ((struct fuse_entry_out *)payload(t))->nodeid;
	assert_int_equal(((struct fuse_entry_out *)payload(t))->attr.uid, 1234);
	snprintf(p, sizeof(p), "%s/owned", t->share);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	/* back to the server's own ids after the request */
	assert_int_equal(thread_fsuid(), 0);
	assert_int_equal(thread_fsgid(), 0);
	struct fuse_mkdir_in mi = {.mode = 0755};
	assert_int_equal(req(t, FUSE_MKDIR, FUSE_ROOT_ID, A(mi), S("dir"), END), 0);
	snprintf(p, sizeof(p), "%s/dir", t->share);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	assert_int_equal(req(t, FUSE_SYMLINK, FUSE_ROOT_ID, S("ln"), S("owned"), END), 0);
	snprintf(p, sizeof(p), "%s/ln", t->share);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_uid, 1234);

	/* uid 1234 cannot give its file away; the guest's root can. */
	struct fuse_setattr_in sa = {.valid = FATTR_UID | FATTR_GID, .uid = 4321, .gid = 8765};
	assert_int_equal(req(t, FUSE_SETATTR, owned, A(sa), END), -EPERM);
	t->uid = t->gid = 0;
	assert_int_equal(req(t, FUSE_SETATTR, owned, A(sa), END), 0);
	snprintf(p, sizeof(p), "%s/owned", t->share);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, 4321);
	assert_int_equal(st.st_gid, 8765);

	/* A 0600 root file: root opens it, uid 1234 does not (the host's own check). */
	host_file(t, "secret", "s");
	host_chmod(t, "secret", 0600);
	uint64_t sec = lookup(t, FUSE_ROOT_ID, "secret", NULL);
	open_node(t, sec, FUSE_OPEN, O_RDONLY);
	t->uid = 1234;
	t->gid = 5678;
	struct fuse_open_in oi = {.flags = O_RDONLY};
	assert_int_equal(req(t, FUSE_OPEN, sec, A(oi), END), -EACCES);
	struct fuse_access_in ai = {.mask = R_OK};
	assert_int_equal(req(t, FUSE_ACCESS, sec, A(ai), END), -EACCES);
	/* ...nor writes a root file in a root directory */
	assert_int_equal(chmod(t->share, 0755), 0);
	assert_int_equal(req(t, FUSE_CREATE, FUSE_ROOT_ID, A(ci), S("nope"), END), -EACCES);
	assert_int_equal(host_mode(t, "nope"), 0);
	assert_int_equal(thread_fsuid(), 0);

	/* An id the kernel cannot take: EPERM, nothing done, the ids are the server's again. */
	t->uid = 0xffffffffu;
	struct fuse_getattr_in gi = {0};
	assert_int_equal(req(t, FUSE_GETATTR, FUSE_ROOT_ID, A(gi), END), -EPERM);
	t->uid = 0;
	t->gid = 0xffffffffu;
	assert_int_equal(req(t, FUSE_GETATTR, FUSE_ROOT_ID, A(gi), END), -EPERM);
	assert_int_equal(thread_fsuid(), 0);
	assert_int_equal(thread_fsgid(), 0);
	t->gid = 0;
	assert_int_equal(req(t, FUSE_GETATTR, FUSE_ROOT_ID, A(gi), END), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_getattr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_write_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mkdir_readdir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename_unlink_link, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_confinement, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_xattr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forget_drops_fd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_privileged_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_clears_setuid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_privileged_allowed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
