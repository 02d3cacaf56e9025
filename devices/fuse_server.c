/* The FUSE passthrough server: the inode and handle tables, request decoding, one function per
 * opcode. See fuse_server.h for the contract.
 *
 * Confinement. The server holds an O_PATH descriptor for every inode the guest has looked up,
 * starting from the share's root. A name in a request is always one component (not empty, no
 * '/', at most NAME_MAX bytes; "." and ".." are refused except by LOOKUP, where "." is the
 * directory itself and ".." of the root is the root) and is resolved with an *at() call relative
 * to its parent's descriptor, without following a symlink: openat(O_PATH|O_NOFOLLOW) for LOOKUP
 * gives a descriptor of the symlink itself; CREATE opens with O_NOFOLLOW; mkdirat, mknodat,
 * symlinkat, unlinkat, renameat2 and linkat never follow the last component. The guest's own
 * kernel resolves symlinks, one LOOKUP per component. With one component there is no path walk in
 * which a symlink or ".." could lead elsewhere, so no request names a host file outside the tree
 * below the root descriptor.
 *
 * Reopening. An O_PATH descriptor cannot be read or written. Directories are reopened with
 * openat(fd, ".", O_RDONLY|O_DIRECTORY). A regular file has no such name, so it is reopened the
 * way virtiofsd does it, through its /proc/self/fd/N entry, relative to a descriptor of
 * /proc/self/fd opened once when the server is created. This is safe: N is the server's own
 * descriptor number, formatted here, never a guest string; /proc/self/fd/N is a "magic link" that
 * resolves to the very file the descriptor refers to, without walking any path in the share, so
 * a rename or a symlink swapped in meanwhile changes nothing; only inodes whose type (fixed for
 * the life of an inode, taken with fstat at lookup) is a regular file are reopened this way, and
 * never with O_CREAT. Symlinks are never reopened (ELOOP) nor are device nodes, FIFOs and
 * sockets (ENXIO: the guest kernel serves those itself and never sends OPEN for them). The same
 * path serves chmod, utimes, link, access and truncate where the *at() call has no AT_EMPTY_PATH
 * form.
 *
 * Credentials. With cfg->credentials, every request but INIT, DESTROY, FORGET, BATCH_FORGET and
 * INTERRUPT runs with the thread's fsgid, then fsuid, set to the header's gid and uid, and set
 * back to the server's own after it: raw setfsgid/setfsuid system calls, which change the calling
 * thread only (glibc's setfsuid is a plain system call too, unlike its setuid family, which it
 * broadcasts to every thread; the raw call says so here). Each switch is verified by calling
 * the same system call again with -1, which changes nothing and returns the current id: an id
 * the kernel refuses ((uid_t)-1, or one outside the user namespace) answers EPERM before
 * anything is done. The kernel drops the file system capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE,
 * CAP_FOWNER, CAP_FSETID, CAP_MKNOD...) from the thread's effective set when its fsuid becomes
 * non-zero and raises them again from its permitted set when it returns to 0: the guest's root
 * acts as root, any other guest user with that user's rights, and what it creates is that user's.
 * FUSE carries no supplementary groups: only the fsgid counts (the worker thread drops its own
 * supplementary groups when it keeps the capabilities, vmm/sandbox/sandbox.c).
 *
 * Privileged bits. Unless cfg->suid, S_ISUID (on anything) and S_ISGID (on anything but a
 * directory, where it only makes new entries inherit the group) are refused with EPERM in CREATE,
 * MKDIR, MKNOD and SETATTR modes, as is a security.capability xattr: a host user running such a
 * file from the share would gain the guest's choice of privileges. A file that already has them
 * (from the host) loses S_ISUID, and S_ISGID with S_IXGRP, before the guest changes its content
 * (WRITE, FALLOCATE, COPY_FILE_RANGE into it, SETATTR of its size): the guest's root, who holds
 * CAP_FSETID here, would otherwise keep them, as Linux does for root. With cfg->suid they are
 * cleared when the guest kernel asks (FUSE_WRITE_KILL_SUIDGID on a direct write, a SETATTR of the
 * mode on a cached one: FUSE_HANDLE_KILLPRIV is not offered) and by the host kernel when the
 * writing thread lacks CAP_FSETID. Device nodes (MKNOD of S_IFCHR or S_IFBLK) need cfg->dev. */
#include "devices/fuse_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Arguments copied from the request: SETXATTR's largest value plus its header and name. */
#define REQ_MAX (XATTR_SIZE_MAX + 4096)
/* Replies built here before they are copied out (READDIR pages, xattr values, link targets). */
#define REP_MAX (XATTR_SIZE_MAX + 4096)
/* iovecs one READ or WRITE passes to preadv/pwritev. */
#define SLICE_MAX 1024
/* Bytes one COPY_FILE_RANGE copies at most: bounds the work one request costs. */
#define COPY_MAX (64u << 20)
#define NONE	 UINT32_MAX

struct inode {
	int fd;	       /* O_PATH|O_NOFOLLOW */
	uint32_t gen;  /* bumped when the slot is freed: stale node ids miss */
	uint32_t next; /* hash chain, or the free list */
	uint64_t dev, ino;
	uint64_t nlookup; /* lookups the guest holds; 0 frees the slot (not the root's) */
	mode_t type;	  /* S_IFMT bits */
	bool used;
};

struct handle {
	int fd;
	uint32_t gen;
	uint32_t next_free;
	bool used;
	DIR *dir;     /* an OPENDIR handle (fd is dirfd(dir)); NULL for files */
	uint64_t off; /* READDIR: the offset the stream is at */
};

struct fuse_server {
	int proc_fd; /* /proc/self/fd, O_PATH */
	enum fuse_cache cache;
	bool ro, dev, suid;
	bool creds;    /* per-request fsuid/fsgid */
	uid_t own_uid; /* the fsuid and fsgid between requests */
	gid_t own_gid;
	bool initialized;
	unsigned max_inodes, max_handles;

	struct inode *ino;
	unsigned ino_cap, ino_used;
	uint32_t ino_free;
	uint32_t *bucket; /* heads of hash chains, ino_cap rounded up to a power of two */
	unsigned nbuckets;

	struct handle *h;
	unsigned h_cap, h_used;
	uint32_t h_free;

	_Alignas(16) uint8_t req[REQ_MAX + 1]; /* the request's arguments, NUL after them */
	_Alignas(16) uint8_t rep[REP_MAX];     /* out header + reply */
	struct iovec slice[SLICE_MAX];	       /* READ/WRITE data buffers */
};

/* One request being served. */
struct req {
	struct fuse_server *s;
	struct fuse_in_header h;
	const uint8_t *arg; /* s->req */
	uint32_t alen;	    /* argument bytes copied (WRITE: only fuse_write_in) */
	uint32_t full_len;  /* argument bytes in the request (WRITE: with the data) */
	const struct iovec *in, *out;
	unsigned nin, nout;
	size_t out_space; /* writable bytes after the out header */
	uint8_t *reply;	  /* s->rep + sizeof(struct fuse_out_header) */
	bool written;	  /* the reply is already in the guest's buffers (READ) */
	uint32_t written_len;
	uint64_t data_bytes;
};

int fuse_cache_parse(const char *s, size_t len, enum fuse_cache *out)
{
	static const char *const names[] = {"none", "auto", "always"};
	for (unsigned i = 0; i < 3; i++)
		if (len == strlen(names[i]) && memcmp(s, names[i], len) == 0) {
			*out = (enum fuse_cache)i;
			return 0;
		}
	return -EINVAL;
}

const char *fuse_cache_name(enum fuse_cache c)
{
	return c == FUSE_CACHE_NONE ? "none" : c == FUSE_CACHE_ALWAYS ? "always" : "auto";
}

/* ---- credentials (see the top of the file) ---- */

/* The calling thread's fsgid, then fsuid, become gid and uid: 0, or -EPERM when the kernel keeps
 * either as it was (the second call with -1 reads the id back without changing it). */
static int fs_ids_set(uid_t uid, gid_t gid)
{
	syscall(SYS_setfsgid, gid);
	if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid)
		return -EPERM;
	syscall(SYS_setfsuid, uid);
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid)
		return -EPERM;
	return 0;
}

/* Back to the server's own ids; setting one's own ids back cannot fail with CAP_SETUID and
 * CAP_SETGID, which the worker keeps: said once if it ever does. */
static void fs_ids_restore(struct fuse_server *s)
{
	syscall(SYS_setfsuid, s->own_uid);
	syscall(SYS_setfsgid, s->own_gid);
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != s->own_uid ||
	    (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != s->own_gid) {
		static struct log_ratelimit rl;
		vmm_log_ratelimited(&rl, 1,
				    "virtio-fs: cannot set the worker's fsuid/fsgid back to %u:%u",
				    (unsigned)s->own_uid, (unsigned)s->own_gid);
	}
}

void fuse_server_set_credentials(struct fuse_server *s, bool on)
{
	s->creds = on;
	s->own_uid = (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
	s->own_gid = (gid_t)syscall(SYS_setfsgid, (gid_t)-1);
}

/* ---- iovecs ---- */

static int iov_total(const struct iovec *iov, unsigned n, size_t *total)
{
	size_t t = 0;
	for (unsigned i = 0; i < n; i++) {
		if (iov[i].iov_len > SIZE_MAX - t)
			return -EINVAL;
		t += iov[i].iov_len;
	}
	*total = t;
	return 0;
}

static size_t iov_from(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t k = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)dst + done, (const uint8_t *)iov[i].iov_base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

static size_t iov_to(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t k = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)src + done, k);
		done += k;
		off = 0;
	}
	return done;
}

/* The bytes [off, off + len) of iov as at most SLICE_MAX iovecs in dst (fewer bytes when the
 * list is longer than that). Returns the number of iovecs. */
static unsigned iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
			  struct iovec *dst)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len && k < SLICE_MAX; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = l - off < len ? l - off : len;
		dst[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		dst[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return k;
}

/* ---- the inode table ---- */

static uint64_t node_id(const struct fuse_server *s, uint32_t slot)
{
	return ((uint64_t)s->ino[slot].gen << 32) | (slot + 1);
}

static struct inode *inode_get(struct fuse_server *s, uint64_t nodeid)
{
	uint32_t low = (uint32_t)nodeid;
	if (low == 0 || low > s->ino_cap)
		return NULL;
	struct inode *i = &s->ino[low - 1];
	if (!i->used || i->gen != (uint32_t)(nodeid >> 32))
		return NULL;
	return i;
}

static unsigned hash_of(const struct fuse_server *s, uint64_t dev, uint64_t ino)
{
	uint64_t h = (ino ^ (dev * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
	return (unsigned)(h >> 32) & (s->nbuckets - 1);
}

static void hash_insert(struct fuse_server *s, uint32_t slot)
{
	unsigned b = hash_of(s, s->ino[slot].dev, s->ino[slot].ino);
	s->ino[slot].next = s->bucket[b];
	s->bucket[b] = slot;
}

/* Grows the table (doubling, up to max_inodes). 0, -ENFILE at the bound, -ENOMEM. */
static int inode_grow(struct fuse_server *s)
{
	if (s->ino_cap >= s->max_inodes)
		return -ENFILE;
	unsigned cap = s->ino_cap ? s->ino_cap * 2 : 64;
	if (cap > s->max_inodes)
		cap = s->max_inodes;
	unsigned nb = 1;
	while (nb < cap)
		nb *= 2;
	struct inode *ni = realloc(s->ino, cap * sizeof(*ni));
	if (!ni)
		return -ENOMEM;
	s->ino = ni;
	uint32_t *bk = realloc(s->bucket, nb * sizeof(*bk));
	if (!bk)
		return -ENOMEM;
	s->bucket = bk;
	s->nbuckets = nb;
	for (unsigned i = s->ino_cap; i < cap; i++)
		s->ino[i] = (struct inode){.fd = -1};
	/* The free list gets the new slots, lowest first. */
	for (unsigned i = cap; i > s->ino_cap; i--) {
		s->ino[i - 1].next = s->ino_free;
		s->ino_free = i - 1;
	}
	s->ino_cap = cap;
	for (unsigned b = 0; b < nb; b++)
		s->bucket[b] = NONE;
	for (unsigned i = 0; i < cap; i++)
		if (s->ino[i].used)
			hash_insert(s, i);
	return 0;
}

/* Takes ownership of fd (an O_PATH descriptor of the file st describes): the inode's slot gains
 * one lookup, a new slot when it is not in the table yet (fd is then kept, else closed). Returns
 * the slot, or -ENFILE / -ENOMEM with fd closed. */
static int inode_add(struct fuse_server *s, int fd, const struct stat *st)
{
	if (s->nbuckets) {
		for (uint32_t i = s->bucket[hash_of(s, st->st_dev, st->st_ino)]; i != NONE;
		     i = s->ino[i].next) {
			struct inode *n = &s->ino[i];
			if (n->dev == st->st_dev && n->ino == st->st_ino) {
				close(fd);
				n->nlookup++;
				return (int)i;
			}
		}
	}
	if (s->ino_free == NONE) {
		int r = inode_grow(s);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	uint32_t slot = s->ino_free;
	struct inode *n = &s->ino[slot];
	s->ino_free = n->next;
	n->fd = fd;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->type = st->st_mode & S_IFMT;
	n->nlookup = 1;
	n->used = true;
	hash_insert(s, slot);
	s->ino_used++;
	return (int)slot;
}

static void inode_free(struct fuse_server *s, uint32_t slot)
{
	struct inode *n = &s->ino[slot];
	uint32_t *p = &s->bucket[hash_of(s, n->dev, n->ino)];
	while (*p != slot)
		p = &s->ino[*p].next;
	*p = n->next;
	close(n->fd);
	n->fd = -1;
	n->used = false;
	n->gen++;
	n->next = s->ino_free;
	s->ino_free = slot;
	s->ino_used--;
}

/* Drops n lookups (all when n is more than the guest holds). The root is never dropped. */
static void inode_forget(struct fuse_server *s, uint64_t nodeid, uint64_t n)
{
	struct inode *i = inode_get(s, nodeid);
	if (!i || i == &s->ino[0])
		return;
	i->nlookup = n >= i->nlookup ? 0 : i->nlookup - n;
	if (i->nlookup == 0)
		inode_free(s, (uint32_t)(i - s->ino));
}

/* ---- the handle table ---- */

static int handle_add(struct fuse_server *s, int fd, DIR *dir, uint64_t *fh)
{
	if (s->h_free == NONE) {
		if (s->h_cap >= s->max_handles)
			return -ENFILE;
		unsigned cap = s->h_cap ? s->h_cap * 2 : 16;
		if (cap > s->max_handles)
			cap = s->max_handles;
		struct handle *nh = realloc(s->h, cap * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		s->h = nh;
		for (unsigned i = cap; i > s->h_cap; i--) {
			s->h[i - 1] = (struct handle){.fd = -1, .next_free = s->h_free};
			s->h_free = i - 1;
		}
		s->h_cap = cap;
	}
	uint32_t slot = s->h_free;
	struct handle *h = &s->h[slot];
	s->h_free = h->next_free;
	h->fd = fd;
	h->dir = dir;
	h->off = 0;
	h->used = true;
	s->h_used++;
	*fh = ((uint64_t)h->gen << 32) | (slot + 1);
	return 0;
}

/* The handle fh if it is open and of the kind asked (a directory or a file). */
static struct handle *handle_get(struct fuse_server *s, uint64_t fh, bool dir)
{
	uint32_t low = (uint32_t)fh;
	if (low == 0 || low > s->h_cap)
		return NULL;
	struct handle *h = &s->h[low - 1];
	if (!h->used || h->gen != (uint32_t)(fh >> 32) || (h->dir != NULL) != dir)
		return NULL;
	return h;
}

static void handle_close(struct fuse_server *s, struct handle *h)
{
	if (h->dir)
		closedir(h->dir);
	else
		close(h->fd);
	h->fd = -1;
	h->dir = NULL;
	h->used = false;
	h->gen++;
	h->next_free = s->h_free;
	s->h_free = (uint32_t)(h - s->h);
	s->h_used--;
}

/* ---- helpers for the operations ---- */

static double timeout_of(const struct fuse_server *s)
{
	return s->cache == FUSE_CACHE_NONE ? 0 : s->cache == FUSE_CACHE_AUTO ? 1 : 86400;
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* The /proc/self/fd entry name of an inode's descriptor (see the top of the file). */
static void proc_name(char buf[16], int fd)
{
	snprintf(buf, 16, "%d", fd);
}

/* A readable or writable descriptor for inode i (see "Reopening" at the top). */
static int reopen(struct fuse_server *s, const struct inode *i, int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECTORY | O_PATH | O_TMPFILE);
	int fd;
	if (S_ISDIR(i->type)) {
		if ((flags & O_ACCMODE) != O_RDONLY)
			return -EISDIR;
		fd = openat(i->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else if (S_ISREG(i->type)) {
		char name[16];
		proc_name(name, i->fd);
		fd = openat(s->proc_fd, name, flags | O_CLOEXEC);
	} else {
		return S_ISLNK(i->type) ? -ELOOP : -ENXIO;
	}
	return fd < 0 ? -errno : fd;
}

/* The name at arg[*off], NUL-terminated inside the arguments; *off moves past it. Refuses an
 * empty name, one longer than NAME_MAX, one with '/', and (unless dots) "." and "..". */
static int take_name(const struct req *r, uint32_t *off, bool dots, const char **name)
{
	if (*off >= r->alen)
		return -EINVAL;
	const char *p = (const char *)r->arg + *off;
	const char *nul = memchr(p, '\0', r->alen - *off);
	if (!nul)
		return -EINVAL;
	size_t len = (size_t)(nul - p);
	if (len == 0 || memchr(p, '/', len))
		return -EINVAL;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	if (!dots && (strcmp(p, ".") == 0 || strcmp(p, "..") == 0))
		return -EINVAL;
	*off += (uint32_t)len + 1;
	*name = p;
	return 0;
}

/* The fixed part of the arguments, when the request holds it. */
static const void *args(const struct req *r, size_t size)
{
	return r->alen >= size ? r->arg : NULL;
}

/* Looks up name in directory fd and fills an entry reply (one lookup held by the guest). */
static int lookup_entry(struct fuse_server *s, int dirfd, const char *name,
			struct fuse_entry_out *eo)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = stat_fd(fd, &st);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = inode_add(s, fd, &st);
	if (r < 0)
		return r;
	memset(eo, 0, sizeof(*eo));
	eo->nodeid = node_id(s, (uint32_t)r);
	double t = timeout_of(s);
	eo->entry_valid = eo->attr_valid = (uint64_t)t;
	fill_attr(&eo->attr, &st);
	return 0;
}

/* After creating an object: the host's umask may have taken permission bits the guest asked for
 * (its own kernel already applied the guest's umask); give them back. */
static void fix_mode(struct fuse_server *s, struct fuse_entry_out *eo, uint32_t mode)
{
	if ((eo->attr.mode & 0777) == (mode & 0777) || S_ISLNK(eo->attr.mode))
		return;
	struct inode *i = inode_get(s, eo->nodeid);
	char name[16];
	proc_name(name, i->fd);
	mode_t m = (eo->attr.mode & 07000) | (mode & 0777);
	if (fchmodat(s->proc_fd, name, m, 0) == 0)
		eo->attr.mode = (eo->attr.mode & ~07777u) | m;
}

/* ---- the operations: each returns the reply's payload length or a negative errno ---- */

#define NEED(r, type, var)                       \
	const type *var = args(r, sizeof(type)); \
	if (!var)                                \
	return -EINVAL
#define FITS(r, size)                        \
	do {                                 \
		if ((r)->out_space < (size)) \
			return -EINVAL;      \
	} while (0)
#define RO(r)                          \
	do {                           \
		if ((r)->s->ro)        \
			return -EROFS; \
	} while (0)

/* S_ISUID and S_ISGID, unless the share allows them (see "Privileged bits" at the top): 0, or
 * -EPERM for S_ISUID, or S_ISGID on anything but a directory, that `had` (the mode the object has
 * now; 0 for a new one) lacks. */
static int mode_allowed(const struct fuse_server *s, uint32_t mode, bool dir, mode_t had)
{
	if (s->suid)
		return 0;
	if ((mode & S_ISUID) && !(had & S_ISUID))
		return -EPERM;
	if ((mode & S_ISGID) && !dir && !(had & S_ISGID))
		return -EPERM;
	return 0;
}

#ifndef FUSE_WRITE_KILL_SUIDGID
#define FUSE_WRITE_KILL_SUIDGID (1 << 2)
#endif

/* Before the guest changes the content of the regular file open at fd: S_ISUID, and S_ISGID with
 * S_IXGRP, are cleared unless the share allows them and the guest kernel did not ask (asked:
 * FUSE_WRITE_KILL_SUIDGID). 0 or a negative errno (nothing written then). */
static int kill_priv(const struct req *r, int fd, bool asked)
{
	const struct fuse_server *s = r->s;
	if (s->suid && !asked)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	mode_t kill = st.st_mode & S_ISUID;
	if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	if (!kill || !S_ISREG(st.st_mode))
		return 0;
	if (fchmod(fd, st.st_mode & 07777 & ~kill) == 0)
		return 0;
	/* Refused to a thread that neither owns the file nor holds CAP_FOWNER: it lacks CAP_FSETID
	 * as well (no capabilities, or a non-zero fsuid), so the host kernel clears the bits itself
	 * as part of the write. Only the guest's root, with the capabilities, must not fail here.
	 */
	return errno == EPERM && !(s->creds && r->h.uid == 0) ? 0 : -errno;
}

/* Flags Linux's client sends that the server supports and asks for. */
#define INIT_FLAGS                                                                       \
	(FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | \
	 FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_ASYNC_DIO)

static int op_init(struct req *r)
{
	/* Before 7.36 the request holds only major, minor, max_readahead and flags. */
	struct fuse_init_in init = {0};
	if (r->alen < 16)
		return -EINVAL;
	memcpy(&init, r->arg, r->alen < sizeof(init) ? r->alen : sizeof(init));
	const struct fuse_init_in *in = &init;
	FITS(r, sizeof(struct fuse_init_out));
	if (in->major != FUSE_KERNEL_VERSION || in->minor < 31)
		return -EPROTO;
	struct fuse_init_out *o = (void *)r->reply;
	memset(o, 0, sizeof(*o));
	o->major = FUSE_KERNEL_VERSION;
	o->minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION;
	o->max_readahead = in->max_readahead;
	uint32_t flags = in->flags & INIT_FLAGS;
	if (r->s->cache == FUSE_CACHE_ALWAYS)
		flags |= in->flags & FUSE_CACHE_SYMLINKS;
	o->flags = flags;
	o->max_background = 64;
	o->congestion_threshold = 48;
	o->max_write = FUSE_SERVER_MAX_WRITE;
	o->time_gran = 1;
	o->max_pages = FUSE_SERVER_MAX_WRITE / 4096;
	r->s->initialized = true;
	return sizeof(*o);
}

static void drop_all(struct fuse_server *s)
{
	for (unsigned i = 1; i < s->ino_cap; i++)
		if (s->ino[i].used)
			inode_free(s, i);
	for (unsigned i = 0; i < s->h_cap; i++)
		if (s->h[i].used)
			handle_close(s, &s->h[i]);
}

static int op_destroy(struct req *r)
{
	drop_all(r->s);
	r->s->initialized = false;
	return 0;
}

static int op_lookup(struct req *r, struct inode *dir)
{
	uint32_t off = 0;
	const char *name;
	int e = take_name(r, &off, true, &name);
	if (e < 0)
		return e;
	FITS(r, sizeof(struct fuse_entry_out));
	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	struct fuse_entry_out *eo = (void *)r->reply;
	if (strcmp(name, "..") == 0) {
		/* No FUSE_EXPORT_SUPPORT: Linux never looks up "..". Above the root is the root
		 * itself; elsewhere the parent might not be in the share (a directory moved out
		 * on the host): refused. */
		if (dir != &r->s->ino[0])
			return -EINVAL;
		name = ".";
	}
	e = lookup_entry(r->s, dir->fd, name, eo);
	return e < 0 ? e : (int)sizeof(*eo);
}

static int op_forget(struct req *r)
{
	const struct fuse_forget_in *in = args(r, sizeof(*in));
	if (in)
		inode_forget(r->s, r->h.nodeid, in->nlookup);
	return 0;
}

static int op_batch_forget(struct req *r)
{
	const struct fuse_batch_forget_in *in = args(r, sizeof(*in));
	if (!in)
		return 0;
	const struct fuse_forget_one *one = (const void *)(r->arg + sizeof(*in));
	for (uint32_t i = 0; i < in->count; i++)
		inode_forget(r->s, one[i].nodeid, one[i].nlookup);
	return 0;
}

static int attr_reply(struct req *r, int fd)
{
	FITS(r, sizeof(struct fuse_attr_out));
	struct stat st;
	int e = stat_fd(fd, &st);
	if (e < 0)
		return e;
	struct fuse_attr_out *o = (void *)r->reply;
	memset(o, 0, sizeof(*o));
	o->attr_valid = (uint64_t)timeout_of(r->s);
	fill_attr(&o->attr, &st);
	return sizeof(*o);
}

static int op_getattr(struct req *r, struct inode *i)
{
	return attr_reply(r, i->fd);
}

static int op_setattr(struct req *r, struct inode *i)
{
	NEED(r, struct fuse_setattr_in, in);
	FITS(r, sizeof(struct fuse_attr_out));
	RO(r);
	struct fuse_server *s = r->s;
	struct handle *h = (in->valid & FATTR_FH) ? handle_get(s, in->fh, false) : NULL;
	if ((in->valid & FATTR_FH) && !h)
		return -EBADF;
	char name[16];
	proc_name(name, i->fd);
	if (in->valid & FATTR_MODE) {
		if (S_ISLNK(i->type))
			return -EOPNOTSUPP;
		struct stat st;
		int rc = stat_fd(i->fd, &st);
		if (rc == 0)
			rc = mode_allowed(s, in->mode, S_ISDIR(i->type), st.st_mode);
		if (rc < 0)
			return rc;
		rc = h ? fchmod(h->fd, in->mode & 07777)
		       : fchmodat(s->proc_fd, name, in->mode & 07777, 0);
		if (rc < 0)
			return -errno;
	}
	if (in->valid & (FATTR_UID | FATTR_GID)) {
		uid_t u = (in->valid & FATTR_UID) ? in->uid : (uid_t)-1;
		gid_t g = (in->valid & FATTR_GID) ? in->gid : (gid_t)-1;
		if (fchownat(i->fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (in->valid & FATTR_SIZE) {
		if (in->size > INT64_MAX)
			return -EFBIG;
		int fd = h ? h->fd : reopen(s, i, O_WRONLY);
		if (fd < 0)
			return fd;
		int rc = kill_priv(r, fd, false);
		if (rc == 0 && ftruncate(fd, (off_t)in->size) < 0)
			rc = -errno;
		if (!h)
			close(fd);
		if (rc < 0)
			return rc;
	}
	if (in->valid & (FATTR_ATIME | FATTR_MTIME)) {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
		if (in->valid & FATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (in->valid & FATTR_ATIME)
			ts[0] = (struct timespec){(time_t)in->atime, in->atimensec};
		if (in->valid & FATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (in->valid & FATTR_MTIME)
			ts[1] = (struct timespec){(time_t)in->mtime, in->mtimensec};
		if ((in->valid & FATTR_ATIME && !(in->valid & FATTR_ATIME_NOW) &&
		     in->atimensec >= 1000000000) ||
		    (in->valid & FATTR_MTIME && !(in->valid & FATTR_MTIME_NOW) &&
		     in->mtimensec >= 1000000000))
			return -EINVAL;
		/* Linux 5.8+ takes AT_EMPTY_PATH here, which also covers symlinks. */
		int rc = utimensat(i->fd, "", ts, AT_EMPTY_PATH);
		if (rc < 0 && errno == EINVAL && !S_ISLNK(i->type))
			rc = utimensat(s->proc_fd, name, ts, 0);
		if (rc < 0)
			return -errno;
	}
	return attr_reply(r, i->fd);
}

static int op_statfs(struct req *r, struct inode *i)
{
	FITS(r, sizeof(struct fuse_statfs_out));
	struct statfs sf;
	if (fstatfs(i->fd, &sf) < 0)
		return -errno;
	struct fuse_statfs_out *o = (void *)r->reply;
	memset(o, 0, sizeof(*o));
	o->st.blocks = sf.f_blocks;
	o->st.bfree = sf.f_bfree;
	o->st.bavail = sf.f_bavail;
	o->st.files = sf.f_files;
	o->st.ffree = sf.f_ffree;
	o->st.bsize = (uint32_t)sf.f_bsize;
	o->st.namelen = (uint32_t)sf.f_namelen;
	o->st.frsize = (uint32_t)sf.f_frsize;
	return sizeof(*o);
}

static int op_access(struct req *r, struct inode *i)
{
	NEED(r, struct fuse_access_in, in);
	int mask = (int)(in->mask & (R_OK | W_OK | X_OK));
	if ((mask & W_OK) && r->s->ro)
		return -EROFS;
	/* AT_EACCESS: the check uses the fsuid and fsgid (the request's, see "Credentials") and
	 * the thread's capabilities; without it the kernel would check the real uid (vmm's). */
	int rc = faccessat(i->fd, "", mask, AT_EMPTY_PATH | AT_EACCESS);
	if (rc < 0 && errno == EINVAL && !S_ISLNK(i->type)) {
		char name[16];
		proc_name(name, i->fd);
		rc = faccessat(r->s->proc_fd, name, mask, AT_EACCESS);
	}
	return rc < 0 ? -errno : 0;
}

static int op_readlink(struct req *r, struct inode *i)
{
	if (!S_ISLNK(i->type))
		return -EINVAL;
	size_t cap = r->out_space < PATH_MAX ? r->out_space : PATH_MAX;
	ssize_t n = readlinkat(i->fd, "", (char *)r->reply, cap);
	return n < 0 ? -errno : (int)n;
}

/* Ends a request that created `name` in dir: the entry reply. */
static int created(struct req *r, struct inode *dir, const char *name, uint32_t mode)
{
	struct fuse_entry_out *eo = (void *)r->reply;
	int e = lookup_entry(r->s, dir->fd, name, eo);
	if (e < 0)
		return e;
	fix_mode(r->s, eo, mode);
	return sizeof(*eo);
}

static int op_symlink(struct req *r, struct inode *dir)
{
	uint32_t off = 0;
	const char *name, *target;
	int e = take_name(r, &off, false, &name);
	if (e < 0)
		return e;
	if (off >= r->alen)
		return -EINVAL;
	target = (const char *)r->arg + off;
	size_t tlen = strnlen(target, r->alen - off);
	if (tlen == r->alen - off || tlen == 0)
		return -EINVAL;
	if (tlen >= PATH_MAX)
		return -ENAMETOOLONG;
	FITS(r, sizeof(struct fuse_entry_out));
	RO(r);
	if (symlinkat(target, dir->fd, name) < 0)
		return -errno;
	return created(r, dir, name, 0777);
}

static int op_link(struct req *r, struct inode *dir)
{
	NEED(r, struct fuse_link_in, in);
	uint32_t off = sizeof(*in);
	const char *name;
	int e = take_name(r, &off, false, &name);
	if (e < 0)
		return e;
	FITS(r, sizeof(struct fuse_entry_out));
	RO(r);
	struct inode *old = inode_get(r->s, in->oldnodeid);
	if (!old)
		return -ESTALE;
	if (S_ISDIR(old->type))
		return -EPERM;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, the /proc/self/fd entry. */
	if (linkat(old->fd, "", dir->fd, name, AT_EMPTY_PATH) < 0) {
		if (errno != ENOENT && errno != EPERM)
			return -errno;
		char pn[16];
		proc_name(pn, old->fd);
		if (linkat(r->s->proc_fd, pn, dir->fd, name, AT_SYMLINK_FOLLOW) < 0)
			return -errno;
	}
	struct fuse_entry_out *eo = (void *)r->reply;
	e = lookup_entry(r->s, dir->fd, name, eo);
	return e < 0 ? e : (int)sizeof(*eo);
}

static int op_mknod(struct req *r, struct inode *dir)
{
	NEED(r, struct fuse_mknod_in, in);
	uint32_t off = sizeof(*in);
	const char *name;
	int e = take_name(r, &off, false, &name);
	if (e < 0)
		return e;
	FITS(r, sizeof(struct fuse_entry_out));
	RO(r);
	mode_t type = in->mode & S_IFMT;
	/* Device nodes would give the guest the host's devices: only where the share allows them
	 * (and the thread holds CAP_MKNOD: the guest's root). */
	bool device = type == S_IFCHR || type == S_IFBLK;
	if (device && !r->s->dev)
		return -EPERM;
	if (!device && type != S_IFIFO && type != S_IFSOCK && type != S_IFREG && type != 0)
		return -EINVAL;
	e = mode_allowed(r->s, in->mode, false, 0);
	if (e < 0)
		return e;
	/* rdev is the kernel's 32-bit encoding, which mknodat's unsigned int takes as it is. */
	if (mknodat(dir->fd, name, in->mode & (S_IFMT | 07777), device ? (dev_t)in->rdev : 0) < 0)
		return -errno;
	return created(r, dir, name, in->mode);
}

static int op_mkdir(struct req *r, struct inode *dir)
{
	NEED(r, struct fuse_mkdir_in, in);
	uint32_t off = sizeof(*in);
	const char *name;
	int e = take_name(r, &off, false, &name);
	if (e < 0)
		return e;
	FITS(r, sizeof(struct fuse_entry_out));
	RO(r);
	e = mode_allowed(r->s, in->mode, true, 0);
	if (e < 0)
		return e;
	if (mkdirat(dir->fd, name, in->mode & 07777) < 0)
		return -errno;
	return created(r, dir, name, in->mode);
}

static int op_unlink(struct req *r, struct inode *dir, int flags)
{
	uint32_t off = 0;
	const char *name;
	int e = take_name(r, &off, false, &name);
	if (e < 0)
		return e;
	RO(r);
	return unlinkat(dir->fd, name, flags) < 0 ? -errno : 0;
}

static int op_rename(struct req *r, struct inode *dir, uint64_t newdir, uint32_t flags,
		     uint32_t off)
{
	const char *oldname, *newname;
	int e = take_name(r, &off, false, &oldname);
	if (e < 0)
		return e;
	e = take_name(r, &off, false, &newname);
	if (e < 0)
		return e;
	RO(r);
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL; /* RENAME_WHITEOUT makes a device node */
	struct inode *nd = inode_get(r->s, newdir);
	if (!nd)
		return -ESTALE;
	return renameat2(dir->fd, oldname, nd->fd, newname, flags) < 0 ? -errno : 0;
}

/* open(2) flags the guest may pass on. */
static int open_flags(uint32_t f)
{
	return (int)(f & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME)) |
	       O_CLOEXEC;
}

static bool writes(uint32_t f)
{
	return (f & O_ACCMODE) != O_RDONLY || (f & O_TRUNC);
}

static uint32_t fopen_flags(const struct fuse_server *s)
{
	return s->cache == FUSE_CACHE_NONE     ? FOPEN_DIRECT_IO
	       : s->cache == FUSE_CACHE_ALWAYS ? FOPEN_KEEP_CACHE
					       : 0;
}

static int op_create(struct req *r, struct inode *dir)
{
	NEED(r, struct fuse_create_in, in);
	uint32_t off = sizeof(*in);
	const char *name;
	int e = take_name(r, &off, false, &name);
	if (e < 0)
		return e;
	FITS(r, sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out));
	RO(r);
	if ((in->flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	/* O_NOFOLLOW: a symlink at name fails (ELOOP) instead of creating or opening its target.
	 * O_EXCL first, so that the mode is fixed only on a file created here. */
	int fl = open_flags(in->flags) | O_NOFOLLOW;
	/* A refused mode creates nothing; an existing file is still opened (the mode does not
	 * apply to it). */
	int refused = mode_allowed(r->s, in->mode, false, 0);
	if (refused < 0 && (in->flags & O_EXCL))
		return refused;
	bool made = !refused;
	int fd = made ? openat(dir->fd, name, fl | O_CREAT | O_EXCL, in->mode & 07777) : -1;
	if (!made || (fd < 0 && errno == EEXIST && !(in->flags & O_EXCL))) {
		made = false;
		fd = openat(dir->fd, name, fl);
		if (fd < 0 && errno == ENOENT && refused < 0)
			return refused;
	}
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EISDIR;
	}
	if (made && (st.st_mode & 0777) != (in->mode & 0777))
		(void)fchmod(fd, (st.st_mode & 07000) | (in->mode & 0777)); /* the host umask */
	uint64_t fh;
	e = handle_add(r->s, fd, NULL, &fh);
	if (e < 0) {
		close(fd);
		return e;
	}
	struct fuse_entry_out *eo = (void *)r->reply;
	e = lookup_entry(r->s, dir->fd, name, eo);
	if (e < 0) {
		handle_close(r->s, handle_get(r->s, fh, false));
		return e;
	}
	struct fuse_open_out *oo = (void *)(r->reply + sizeof(*eo));
	memset(oo, 0, sizeof(*oo));
	oo->fh = fh;
	oo->open_flags = fopen_flags(r->s);
	return sizeof(*eo) + sizeof(*oo);
}

static int op_open(struct req *r, struct inode *i, bool dir)
{
	NEED(r, struct fuse_open_in, in);
	FITS(r, sizeof(struct fuse_open_out));
	if (!dir && writes(in->flags) && r->s->ro)
		return -EROFS;
	if ((in->flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	if (dir != (S_ISDIR(i->type) != 0))
		return dir ? -ENOTDIR : -EISDIR;
	int fd = reopen(r->s, i, dir ? O_RDONLY : open_flags(in->flags));
	if (fd < 0)
		return fd;
	DIR *dp = NULL;
	if (dir && !(dp = fdopendir(fd))) {
		int err = errno;
		close(fd);
		return -err;
	}
	uint64_t fh;
	int e = handle_add(r->s, fd, dp, &fh);
	if (e < 0) {
		if (dp)
			closedir(dp);
		else
			close(fd);
		return e;
	}
	struct fuse_open_out *oo = (void *)r->reply;
	memset(oo, 0, sizeof(*oo));
	oo->fh = fh;
	if (dir)
		oo->open_flags = r->s->cache == FUSE_CACHE_ALWAYS ? FOPEN_CACHE_DIR : 0;
	else
		oo->open_flags = fopen_flags(r->s);
	return sizeof(*oo);
}

static int op_read(struct req *r)
{
	NEED(r, struct fuse_read_in, in);
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return -EBADF;
	if (in->offset > INT64_MAX)
		return -EINVAL;
	size_t size = in->size;
	if (size > r->out_space)
		size = r->out_space;
	if (size > FUSE_SERVER_MAX_WRITE)
		size = FUSE_SERVER_MAX_WRITE;
	/* Straight into the guest's buffers after the out header. */
	unsigned n = iov_slice(r->out, r->nout, sizeof(struct fuse_out_header), size, r->s->slice);
	ssize_t got = n ? preadv(h->fd, r->s->slice, (int)n, (off_t)in->offset) : 0;
	if (got < 0)
		return -errno;
	r->written = true;
	r->written_len = (uint32_t)got;
	r->data_bytes = (uint64_t)got;
	return (int)got;
}

static int op_write(struct req *r)
{
	NEED(r, struct fuse_write_in, in);
	FITS(r, sizeof(struct fuse_write_out));
	RO(r);
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return -EBADF;
	if (in->offset > INT64_MAX)
		return -EINVAL;
	/* The data follows fuse_write_in in the readable buffers; size must be all there. */
	uint32_t have = r->full_len - (uint32_t)sizeof(*in);
	if (in->size > have || in->size > FUSE_SERVER_MAX_WRITE)
		return -EINVAL;
	int e = kill_priv(r, h->fd, in->write_flags & FUSE_WRITE_KILL_SUIDGID);
	if (e < 0)
		return e;
	size_t data_off = sizeof(struct fuse_in_header) + sizeof(*in);
	unsigned n = iov_slice(r->in, r->nin, data_off, in->size, r->s->slice);
	ssize_t put = n ? pwritev(h->fd, r->s->slice, (int)n, (off_t)in->offset) : 0;
	if (put < 0)
		return -errno;
	struct fuse_write_out *o = (void *)r->reply;
	memset(o, 0, sizeof(*o));
	o->size = (uint32_t)put;
	r->data_bytes = (uint64_t)put;
	return sizeof(*o);
}

static int op_release(struct req *r, bool dir)
{
	NEED(r, struct fuse_release_in, in);
	struct handle *h = handle_get(r->s, in->fh, dir);
	if (!h)
		return -EBADF;
	handle_close(r->s, h);
	return 0;
}

static int op_flush(struct req *r)
{
	NEED(r, struct fuse_flush_in, in);
	return handle_get(r->s, in->fh, false) ? 0 : -EBADF;
}

static int op_fsync(struct req *r, bool dir)
{
	NEED(r, struct fuse_fsync_in, in);
	struct handle *h = handle_get(r->s, in->fh, dir);
	if (!h)
		return -EBADF;
	int rc = (in->fsync_flags & 1) ? fdatasync(h->fd) : fsync(h->fd);
	return rc < 0 ? -errno : 0;
}

static int op_fallocate(struct req *r)
{
	NEED(r, struct fuse_fallocate_in, in);
	RO(r);
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return -EBADF;
	uint32_t ok = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
	if (in->mode & ~ok)
		return -EOPNOTSUPP;
	if (in->offset > INT64_MAX || in->length > INT64_MAX)
		return -EINVAL;
	int e = kill_priv(r, h->fd, false);
	if (e < 0)
		return e;
	if (fallocate(h->fd, (int)in->mode, (off_t)in->offset, (off_t)in->length) < 0)
		return -errno;
	return 0;
}

static int op_lseek(struct req *r)
{
	NEED(r, struct fuse_lseek_in, in);
	FITS(r, sizeof(struct fuse_lseek_out));
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return -EBADF;
	if (in->whence != SEEK_SET && in->whence != SEEK_CUR && in->whence != SEEK_END &&
	    in->whence != SEEK_DATA && in->whence != SEEK_HOLE)
		return -EINVAL;
	off_t o = lseek(h->fd, (off_t)in->offset, (int)in->whence);
	if (o < 0)
		return -errno;
	struct fuse_lseek_out *out = (void *)r->reply;
	out->offset = (uint64_t)o;
	return sizeof(*out);
}

static int op_copy_file_range(struct req *r)
{
	NEED(r, struct fuse_copy_file_range_in, in);
	FITS(r, sizeof(struct fuse_write_out));
	RO(r);
	struct handle *hi = handle_get(r->s, in->fh_in, false);
	struct handle *ho = handle_get(r->s, in->fh_out, false);
	if (!hi || !ho)
		return -EBADF;
	if (in->off_in > INT64_MAX || in->off_out > INT64_MAX || in->flags)
		return -EINVAL;
	int e = kill_priv(r, ho->fd, false);
	if (e < 0)
		return e;
	loff_t oi = (loff_t)in->off_in, oo = (loff_t)in->off_out;
	size_t len = in->len < COPY_MAX ? in->len : COPY_MAX;
	ssize_t n = copy_file_range(hi->fd, &oi, ho->fd, &oo, len, 0);
	if (n < 0)
		return -errno;
	struct fuse_write_out *o = (void *)r->reply;
	memset(o, 0, sizeof(*o));
	o->size = (uint32_t)n;
	r->data_bytes = (uint64_t)n;
	return sizeof(*o);
}

static int op_readdir(struct req *r, bool plus)
{
	NEED(r, struct fuse_read_in, in);
	struct fuse_server *s = r->s;
	struct handle *h = handle_get(s, in->fh, true);
	if (!h)
		return -EBADF;
	size_t cap = in->size;
	if (cap > r->out_space)
		cap = r->out_space;
	if (cap > REP_MAX - sizeof(struct fuse_out_header))
		cap = REP_MAX - sizeof(struct fuse_out_header);
	if (in->offset != h->off) {
		if (in->offset == 0)
			rewinddir(h->dir);
		else
			seekdir(h->dir, (long)in->offset);
		h->off = in->offset;
	}
	size_t used = 0;
	for (;;) {
		long pos = telldir(h->dir);
		errno = 0;
		struct dirent *de = readdir(h->dir);
		if (!de) {
			if (errno && used == 0)
				return -errno;
			break;
		}
		size_t nlen = strlen(de->d_name);
		size_t dsize = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + nlen);
		size_t esize = plus ? FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + nlen) : dsize;
		if (used + esize > cap) {
			seekdir(h->dir, pos);
			break;
		}
		uint8_t *p = r->reply + used;
		struct fuse_dirent *d;
		if (plus) {
			struct fuse_direntplus *dp = (void *)p;
			memset(&dp->entry_out, 0, sizeof(dp->entry_out));
			bool dots = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
			if (!dots) {
				int e = lookup_entry(s, dirfd(h->dir), de->d_name, &dp->entry_out);
				if (e == -ENOENT)
					continue; /* removed meanwhile */
				if (e < 0) {
					seekdir(h->dir, pos);
					if (used == 0)
						return e;
					break;
				}
			} else {
				dp->entry_out.attr.ino = de->d_ino;
				dp->entry_out.attr.mode = (uint32_t)de->d_type << 12;
			}
			d = &dp->dirent;
		} else {
			d = (void *)p;
		}
		d->ino = de->d_ino;
		d->off = (uint64_t)de->d_off;
		d->namelen = (uint32_t)nlen;
		d->type = de->d_type;
		memcpy(d->name, de->d_name, nlen);
		size_t pad = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + nlen) - FUSE_NAME_OFFSET - nlen;
		memset(d->name + nlen, 0, pad);
		used += esize;
		h->off = (uint64_t)de->d_off;
	}
	return (int)used;
}

/* A descriptor for xattr calls: regular files and directories reopened read-only; other types
 * (symlinks, FIFOs, sockets, devices) are not reopened, and have no xattrs here. */
static int xattr_fd(struct fuse_server *s, struct inode *i)
{
	if (!S_ISREG(i->type) && !S_ISDIR(i->type))
		return -ENOTSUP;
	return reopen(s, i, O_RDONLY | O_NONBLOCK);
}

static int op_setxattr(struct req *r, struct inode *i)
{
	/* Without FUSE_SETXATTR_EXT the header is the 8-byte compat one: size and flags. */
	struct fuse_setxattr_in sx = {0};
	if (r->alen < FUSE_COMPAT_SETXATTR_IN_SIZE)
		return -EINVAL;
	memcpy(&sx, r->arg, FUSE_COMPAT_SETXATTR_IN_SIZE);
	const struct fuse_setxattr_in *in = &sx;
	uint32_t off = FUSE_COMPAT_SETXATTR_IN_SIZE;
	const char *name;
	const char *p = (const char *)r->arg + off;
	if (off >= r->alen || !memchr(p, '\0', r->alen - off) || !*p)
		return -EINVAL;
	name = p;
	off += (uint32_t)strlen(p) + 1;
	if (in->size > r->alen - off || in->size > XATTR_SIZE_MAX)
		return -EINVAL;
	RO(r);
	/* File capabilities would raise privileges of whoever runs the file on the host: only where
	 * the share allows setuid files. */
	if (!r->s->suid && strcmp(name, "security.capability") == 0)
		return -EPERM;
	int fd = xattr_fd(r->s, i);
	if (fd < 0)
		return fd == -ENOTSUP ? -EPERM : fd;
	int rc = fsetxattr(fd, name, r->arg + off, in->size, (int)(in->flags & 3)) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* GETXATTR and LISTXATTR: size 0 asks for the size needed. */
static int xattr_read(struct req *r, struct inode *i, const char *name, uint32_t size)
{
	bool probe = size == 0;
	if (probe)
		FITS(r, sizeof(struct fuse_getxattr_out));
	size_t cap = size;
	if (cap > r->out_space)
		return -ERANGE;
	if (cap > XATTR_SIZE_MAX)
		cap = XATTR_SIZE_MAX;
	int fd = xattr_fd(r->s, i);
	if (fd == -ENOTSUP) {
		if (name)
			return -ENODATA;
		fd = -1; /* no names */
	} else if (fd < 0) {
		return fd;
	}
	ssize_t n = 0;
	if (fd >= 0) {
		void *buf = probe ? NULL : r->reply;
		n = name ? fgetxattr(fd, name, buf, probe ? 0 : cap)
			 : flistxattr(fd, buf, probe ? 0 : cap);
		int err = errno;
		close(fd);
		if (n < 0)
			return -err;
	}
	if (probe) {
		struct fuse_getxattr_out *o = (void *)r->reply;
		memset(o, 0, sizeof(*o));
		o->size = (uint32_t)n;
		return sizeof(*o);
	}
	return (int)n;
}

static int op_getxattr(struct req *r, struct inode *i)
{
	NEED(r, struct fuse_getxattr_in, in);
	uint32_t off = sizeof(*in);
	const char *p = (const char *)r->arg + off;
	if (off >= r->alen || !memchr(p, '\0', r->alen - off) || !*p)
		return -EINVAL;
	return xattr_read(r, i, p, in->size);
}

static int op_listxattr(struct req *r, struct inode *i)
{
	NEED(r, struct fuse_getxattr_in, in);
	return xattr_read(r, i, NULL, in->size);
}

static int op_removexattr(struct req *r, struct inode *i)
{
	const char *p = (const char *)r->arg;
	if (r->alen == 0 || !memchr(p, '\0', r->alen) || !*p)
		return -EINVAL;
	RO(r);
	int fd = xattr_fd(r->s, i);
	if (fd < 0)
		return fd == -ENOTSUP ? -EPERM : fd;
	int rc = fremovexattr(fd, p) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* Runs one decoded request: payload length or a negative errno. */
static int dispatch(struct req *r)
{
	struct fuse_server *s = r->s;
	uint32_t op = r->h.opcode;
	if (op == FUSE_INIT)
		return op_init(r);
	if (!s->initialized)
		return -EIO;
	switch (op) {
	case FUSE_DESTROY:
		return op_destroy(r);
	case FUSE_FORGET:
		return op_forget(r);
	case FUSE_BATCH_FORGET:
		return op_batch_forget(r);
	case FUSE_INTERRUPT:
		return 0; /* every request is answered before the next is read */
	case FUSE_READ:
		return op_read(r);
	case FUSE_WRITE:
		return op_write(r);
	case FUSE_RELEASE:
		return op_release(r, false);
	case FUSE_RELEASEDIR:
		return op_release(r, true);
	case FUSE_FLUSH:
		return op_flush(r);
	case FUSE_FSYNC:
		return op_fsync(r, false);
	case FUSE_FSYNCDIR:
		return op_fsync(r, true);
	case FUSE_FALLOCATE:
		return op_fallocate(r);
	case FUSE_LSEEK:
		return op_lseek(r);
	case FUSE_COPY_FILE_RANGE:
		return op_copy_file_range(r);
	case FUSE_READDIR:
		return op_readdir(r, false);
	case FUSE_READDIRPLUS:
		return op_readdir(r, true);
	case FUSE_GETLK:
	case FUSE_SETLK:
	case FUSE_SETLKW:
		/* FUSE_POSIX_LOCKS is not offered, so Linux keeps POSIX locks in the guest and
		 * never sends these. */
		return -ENOSYS;
	default:
		break;
	}
	/* The rest act on the inode in the header. */
	bool known = op == FUSE_LOOKUP || op == FUSE_GETATTR || op == FUSE_SETATTR ||
		     op == FUSE_STATFS || op == FUSE_ACCESS || op == FUSE_READLINK ||
		     op == FUSE_SYMLINK || op == FUSE_LINK || op == FUSE_MKNOD ||
		     op == FUSE_MKDIR || op == FUSE_UNLINK || op == FUSE_RMDIR ||
		     op == FUSE_RENAME || op == FUSE_RENAME2 || op == FUSE_CREATE ||
		     op == FUSE_OPEN || op == FUSE_OPENDIR || op == FUSE_SETXATTR ||
		     op == FUSE_GETXATTR || op == FUSE_LISTXATTR || op == FUSE_REMOVEXATTR;
	if (!known)
		return -ENOSYS;
	struct inode *i = inode_get(s, r->h.nodeid);
	if (!i)
		return -ESTALE;
	bool dirop = op == FUSE_SYMLINK || op == FUSE_LINK || op == FUSE_MKNOD ||
		     op == FUSE_MKDIR || op == FUSE_UNLINK || op == FUSE_RMDIR ||
		     op == FUSE_RENAME || op == FUSE_RENAME2 || op == FUSE_CREATE;
	if (dirop && !S_ISDIR(i->type))
		return -ENOTDIR;
	switch (op) {
	case FUSE_LOOKUP:
		return op_lookup(r, i);
	case FUSE_GETATTR:
		return op_getattr(r, i);
	case FUSE_SETATTR:
		return op_setattr(r, i);
	case FUSE_STATFS:
		return op_statfs(r, i);
	case FUSE_ACCESS:
		return op_access(r, i);
	case FUSE_READLINK:
		return op_readlink(r, i);
	case FUSE_SYMLINK:
		return op_symlink(r, i);
	case FUSE_LINK:
		return op_link(r, i);
	case FUSE_MKNOD:
		return op_mknod(r, i);
	case FUSE_MKDIR:
		return op_mkdir(r, i);
	case FUSE_UNLINK:
		return op_unlink(r, i, 0);
	case FUSE_RMDIR:
		return op_unlink(r, i, AT_REMOVEDIR);
	case FUSE_RENAME: {
		NEED(r, struct fuse_rename_in, in);
		return op_rename(r, i, in->newdir, 0, sizeof(*in));
	}
	case FUSE_RENAME2: {
		NEED(r, struct fuse_rename2_in, in);
		return op_rename(r, i, in->newdir, in->flags, sizeof(*in));
	}
	case FUSE_CREATE:
		return op_create(r, i);
	case FUSE_OPEN:
		return op_open(r, i, false);
	case FUSE_OPENDIR:
		return op_open(r, i, true);
	case FUSE_SETXATTR:
		return op_setxattr(r, i);
	case FUSE_GETXATTR:
		return op_getxattr(r, i);
	case FUSE_LISTXATTR:
		return op_listxattr(r, i);
	default:
		return op_removexattr(r, i);
	}
}

int fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned nin,
		       const struct iovec *out, unsigned nout, struct fuse_result *res)
{
	memset(res, 0, sizeof(*res));
	size_t in_total, out_total;
	if (iov_total(in, nin, &in_total) < 0 || iov_total(out, nout, &out_total) < 0)
		return -EINVAL;
	struct req r = {.s = s, .in = in, .nin = nin, .out = out, .nout = nout};
	if (iov_from(in, nin, 0, &r.h, sizeof(r.h)) < sizeof(r.h))
		return -EINVAL;
	if (r.h.len < sizeof(r.h) || r.h.len > in_total)
		return -EINVAL;
	res->opcode = r.h.opcode;
	bool noreply = r.h.opcode == FUSE_FORGET || r.h.opcode == FUSE_BATCH_FORGET ||
		       r.h.opcode == FUSE_INTERRUPT;
	if (!noreply && out_total < sizeof(struct fuse_out_header))
		return -EINVAL;
	r.full_len = r.h.len - (uint32_t)sizeof(r.h);
	r.alen = r.full_len;
	if (r.h.opcode == FUSE_WRITE && r.alen > sizeof(struct fuse_write_in))
		r.alen = sizeof(struct fuse_write_in);
	if (r.h.opcode == FUSE_BATCH_FORGET) {
		struct fuse_batch_forget_in bf;
		if (r.alen >= sizeof(bf)) {
			iov_from(in, nin, sizeof(r.h), &bf, sizeof(bf));
			if ((uint64_t)bf.count * sizeof(struct fuse_forget_one) >
			    r.alen - sizeof(bf))
				return -EINVAL;
		}
	}
	int rc;
	if (r.alen > REQ_MAX) {
		if (noreply)
			return -EINVAL;
		rc = -E2BIG;
	} else {
		iov_from(in, nin, sizeof(r.h), s->req, r.alen);
		s->req[r.alen] = '\0';
		r.arg = s->req;
		r.out_space = out_total - sizeof(struct fuse_out_header);
		r.reply = s->rep + sizeof(struct fuse_out_header);
		if (r.out_space > REP_MAX - sizeof(struct fuse_out_header) &&
		    r.h.opcode != FUSE_READ)
			r.out_space = REP_MAX - sizeof(struct fuse_out_header);
		/* The request's own ids (see "Credentials"): all but the session and forget
		 * requests, which touch no file. */
		bool as_guest =
		    s->creds && !noreply && r.h.opcode != FUSE_INIT && r.h.opcode != FUSE_DESTROY;
		rc = as_guest ? fs_ids_set(r.h.uid, r.h.gid) : 0;
		if (rc == 0)
			rc = dispatch(&r);
		if (as_guest)
			fs_ids_restore(s);
	}
	if (noreply) {
		res->data_bytes = 0;
		return 0;
	}
	struct fuse_out_header oh = {.unique = r.h.unique};
	if (rc < 0) {
		oh.error = rc;
		oh.len = sizeof(oh);
		res->error = -rc;
		iov_to(out, nout, 0, &oh, sizeof(oh));
	} else if (r.written) {
		oh.len = (uint32_t)sizeof(oh) + r.written_len;
		iov_to(out, nout, 0, &oh, sizeof(oh));
	} else {
		oh.len = (uint32_t)sizeof(oh) + (uint32_t)rc;
		memcpy(s->rep, &oh, sizeof(oh));
		iov_to(out, nout, 0, s->rep, oh.len);
	}
	res->len = oh.len;
	res->data_bytes = r.data_bytes;
	return 0;
}

/* ---- setup ---- */

int fuse_server_create(struct fuse_server **out, const struct fuse_server_config *cfg,
		       struct verr *e)
{
	*out = NULL;
	struct fuse_server *s = calloc(1, sizeof(*s));
	if (!s)
		return verr_set(e, -ENOMEM, "share %s: out of memory", cfg->root);
	s->cache = cfg->cache;
	s->ro = cfg->ro;
	s->dev = cfg->dev;
	s->suid = cfg->suid;
	fuse_server_set_credentials(s, cfg->credentials);
	s->max_inodes = cfg->max_inodes ? cfg->max_inodes : FUSE_SERVER_MAX_INODES;
	s->max_handles = cfg->max_handles ? cfg->max_handles : FUSE_SERVER_MAX_HANDLES;
	s->ino_free = s->h_free = NONE;
	s->proc_fd = -1;
	int rc;
	int fd = open(cfg->root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = verr_set(e, -errno,
			      "share %s: cannot open it (%s): give an existing directory (not a "
			      "symlink to one)",
			      cfg->root, strerror(errno));
		goto fail;
	}
	s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->proc_fd < 0) {
		close(fd);
		rc = verr_set(e, -errno,
			      "share %s: cannot open /proc/self/fd (%s): files in a share are "
			      "reopened through it; mount /proc",
			      cfg->root, strerror(errno));
		goto fail;
	}
	struct stat st;
	if (stat_fd(fd, &st) < 0) {
		close(fd);
		rc = verr_set(e, -errno, "share %s: fstat: %s", cfg->root, strerror(errno));
		goto fail;
	}
	rc = inode_add(s, fd, &st); /* slot 0: FUSE_ROOT_ID */
	if (rc < 0) {
		rc = verr_set(e, rc, "share %s: out of memory", cfg->root);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	fuse_server_destroy(s);
	return rc;
}

void fuse_server_destroy(struct fuse_server *s)
{
	if (!s)
		return;
	drop_all(s);
	if (s->ino_cap && s->ino[0].used)
		close(s->ino[0].fd);
	if (s->proc_fd >= 0)
		close(s->proc_fd);
	free(s->ino);
	free(s->bucket);
	free(s->h);
	free(s);
}

void fuse_server_reset(struct fuse_server *s)
{
	drop_all(s);
	s->initialized = false;
}

unsigned fuse_server_inodes(const struct fuse_server *s)
{
	return s->ino_used;
}

unsigned fuse_server_handles(const struct fuse_server *s)
{
	return s->h_used;
}
