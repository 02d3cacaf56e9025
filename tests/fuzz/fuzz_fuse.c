/* libFuzzer target for the FUSE passthrough server: the input is a sequence of hostile FUSE
 * requests (lengths, offsets, names with '/', "..", no NUL, huge counts, unknown node ids, double
 * FORGET) served on a temporary share that holds a file, a directory, a symlink to /etc and one
 * to a canary file next to the share. Each input starts from an INIT on a fresh share; the canary
 * must never change, and no reply may be longer than the room it was given. File sizes are
 * bounded with RLIMIT_FSIZE, so FALLOCATE and SETATTR cannot fill the disk.
 *
 * Input layout: records of struct rec, then rec.inlen request bytes (the fuse_in_header first).
 * rec.fix patches the request before it is served: FIX_LEN sets the header's len to inlen,
 * FIX_NODE its nodeid to the last node id a reply gave, FIX_FH the first 8 argument bytes to the
 * last handle a reply gave (fh is the first field of READ, WRITE, RELEASE, FLUSH, ...). */
#include "devices/fuse_server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct rec {
	uint16_t inlen;
	uint16_t outcap;
	uint8_t fix;
	uint8_t split; /* where the request and the reply are cut in two iovecs */
} __attribute__((packed));

#define FIX_LEN	 1u
#define FIX_NODE 2u
#define FIX_FH	 4u
#define OUT_MAX	 (1u << 16)

static char top[256], share[300], canary[300];
static struct stat canary_st;
static struct fuse_server *srv;
static uint8_t out[OUT_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

static void fixtures(void)
{
	nftw(share, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	char p[400];
	snprintf(p, sizeof(p), "%s/a", share);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "hello", 5) != 5)
		abort();
	close(fd);
	snprintf(p, sizeof(p), "%s/d", share);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/etc", share);
	symlink("/etc", p);
	snprintf(p, sizeof(p), "%s/up", share);
	symlink(canary, p);
}

static void once(void)
{
	const char *dir = getenv("TMPDIR");
	snprintf(top, sizeof(top), "%s/vmm-fuzz-fuse-XXXXXX", dir && *dir ? dir : "/tmp");
	if (!mkdtemp(top))
		abort();
	snprintf(share, sizeof(share), "%s/share", top);
	snprintf(canary, sizeof(canary), "%s/canary", top);
	if (mkdir(share, 0755) < 0)
		abort();
	int fd = open(canary, O_WRONLY | O_CREAT, 0644);
	if (fd < 0 || write(fd, "canary", 6) != 6)
		abort();
	close(fd);
	if (stat(canary, &canary_st) < 0)
		abort();
	struct rlimit rl = {16 << 20, 16 << 20};
	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_IGN);
	struct fuse_server_config c = {
	    .root = share, .cache = FUSE_CACHE_AUTO, .max_inodes = 64, .max_handles = 16};
	struct verr e;
	if (fuse_server_create(&srv, &c, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		abort();
	}
}

static void serve(uint8_t *req, size_t inlen, size_t outcap, unsigned split, uint64_t *node,
		  uint64_t *fh)
{
	size_t ic = inlen ? split % (inlen + 1) : 0, oc = outcap ? split % (outcap + 1) : 0;
	struct iovec in[2] = {{req, ic}, {req + ic, inlen - ic}};
	struct iovec ov[2] = {{out, oc}, {out + oc, outcap - oc}};
	struct fuse_result res;
	if (fuse_server_handle(srv, in, 2, ov, 2, &res) < 0)
		return;
	if (res.len > outcap)
		abort();
	if (res.len < sizeof(struct fuse_out_header) || res.error)
		return;
	struct fuse_out_header oh;
	memcpy(&oh, out, sizeof(oh));
	if (oh.len != res.len)
		abort();
	const uint8_t *p = out + sizeof(oh);
	size_t n = res.len - sizeof(oh);
	if ((res.opcode == FUSE_LOOKUP || res.opcode == FUSE_MKDIR || res.opcode == FUSE_CREATE ||
	     res.opcode == FUSE_SYMLINK || res.opcode == FUSE_MKNOD || res.opcode == FUSE_LINK) &&
	    n >= sizeof(struct fuse_entry_out))
		memcpy(node, p, 8);
	if (res.opcode == FUSE_CREATE && n >= sizeof(struct fuse_entry_out) + 8)
		memcpy(fh, p + sizeof(struct fuse_entry_out), 8);
	if ((res.opcode == FUSE_OPEN || res.opcode == FUSE_OPENDIR) && n >= 8)
		memcpy(fh, p, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv)
		once();
	fixtures();
	uint64_t node = FUSE_ROOT_ID, fh = 0;
	struct {
		struct fuse_in_header h;
		struct fuse_init_in i;
	} init = {{.len = sizeof(init), .opcode = FUSE_INIT, .unique = 1},
		  {.major = 7, .minor = 36, .flags = 0xffffffff}};
	serve((uint8_t *)&init, sizeof(init), 256, 0, &node, &fh);

	static uint8_t req[65536 + 64];
	while (size >= sizeof(struct rec)) {
		struct rec r;
		memcpy(&r, data, sizeof(r));
		data += sizeof(r);
		size -= sizeof(r);
		size_t inlen = r.inlen < size ? r.inlen : size;
		memcpy(req, data, inlen);
		data += inlen;
		size -= inlen;
		if (inlen >= sizeof(struct fuse_in_header)) {
			struct fuse_in_header h;
			memcpy(&h, req, sizeof(h));
			if (r.fix & FIX_LEN)
				h.len = (uint32_t)inlen;
			if (r.fix & FIX_NODE)
				h.nodeid = node;
			memcpy(req, &h, sizeof(h));
			if ((r.fix & FIX_FH) && inlen >= sizeof(h) + 8)
				memcpy(req + sizeof(h), &fh, 8);
		}
		serve(req, inlen, r.outcap, r.split, &node, &fh); /* outcap < OUT_MAX */
	}
	fuse_server_reset(srv);

	struct stat st;
	if (stat(canary, &st) < 0 || st.st_size != 6 || st.st_ino != canary_st.st_ino ||
	    st.st_mtim.tv_nsec != canary_st.st_mtim.tv_nsec ||
	    st.st_ctim.tv_nsec != canary_st.st_ctim.tv_nsec ||
	    (st.st_mode & 07777) != (canary_st.st_mode & 07777))
		abort(); /* a request reached outside the share */
	return 0;
}
