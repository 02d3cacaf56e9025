/* A FUSE passthrough server for one shared host directory: decodes FUSE requests (as Linux's
 * virtio-fs client sends them, protocol 7.31 and later) from plain iovecs and answers them from the
 * host directory. Independent of virtio, so it is tested and fuzzed on plain buffers; the virtio-fs
 * device (devices/virtio_fs.c) hands it the readable and writable buffers of each chain.
 *
 * Everything in a request is untrusted: the header's length, node ids, handles, offsets, sizes,
 * names. Every name is one path component resolved relative to the O_PATH descriptor of an inode
 * the guest looked up, without following symlinks, so no request can reach a host file outside
 * the share (see the comments in fuse_server.c). The inode and handle tables are bounded: a guest
 * beyond them gets ENFILE.
 *
 * Threads: a server is used by one thread at a time (the device serializes its queues). With
 * credentials on, that thread's fsuid and fsgid (per thread in Linux) are the request's while a
 * request runs, and the server's own (those of the thread that called fuse_server_create or
 * fuse_server_set_credentials) between requests. */
#ifndef VMM_FUSE_SERVER_H
#define VMM_FUSE_SERVER_H

#include "vmm/log.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* How long the guest may cache names and attributes, and whether it keeps file data across
 * opens (virtiofsd's cache=none|auto|always). */
enum fuse_cache {
	FUSE_CACHE_NONE,   /* no caching: timeouts 0, every open file is direct I/O */
	FUSE_CACHE_AUTO,   /* 1 s timeouts, page cache dropped at each open */
	FUSE_CACHE_ALWAYS, /* 1 day timeouts, page cache kept across opens */
};

/* Default bounds: inodes the guest holds a lookup on, open files and directories. */
#define FUSE_SERVER_MAX_INODES	65536
#define FUSE_SERVER_MAX_HANDLES 16384
/* The largest WRITE (and READ) the server asks for in INIT. */
#define FUSE_SERVER_MAX_WRITE (1u << 20)

struct fuse_server_config {
	const char *root; /* the shared host directory */
	enum fuse_cache cache;
	bool ro;	      /* every modifying request answers EROFS */
	bool dev;	      /* MKNOD may make character and block devices (else EPERM) */
	bool suid;	      /* S_ISUID, S_ISGID on non-directories and security.capability may
			       * be set (else EPERM), and writes keep them */
	bool credentials;     /* each request runs as its header's uid and gid (fuse_server.c:
			       * "Credentials"); needs CAP_SETUID and CAP_SETGID on the thread */
	unsigned max_inodes;  /* 0: FUSE_SERVER_MAX_INODES (the root counts as one) */
	unsigned max_handles; /* 0: FUSE_SERVER_MAX_HANDLES */
};

/* What one request gave. */
struct fuse_result {
	uint32_t len;	     /* bytes written into the writable buffers; 0: no reply (FORGET...) */
	int32_t error;	     /* the errno answered (positive), 0 for success or no reply */
	uint32_t opcode;     /* the request's opcode */
	uint64_t data_bytes; /* file data read or written by READ, WRITE and COPY_FILE_RANGE */
};

struct fuse_server;

/* Opens cfg->root (a directory, O_PATH, not following a symlink at its last component) and
 * /proc/self/fd (to reopen O_PATH descriptors, see fuse_server.c), and sets up the tables (grown on
 * demand up to their bounds). Returns 0 with *out set, or a negative errno with one line in e
 * naming the directory and the problem. */
int fuse_server_create(struct fuse_server **out, const struct fuse_server_config *cfg,
		       struct verr *e);

/* Closes every descriptor and frees everything. NULL is allowed. */
void fuse_server_destroy(struct fuse_server *s);

/* Answers one request. in[0..nin) hold the request (the fuse_in_header, the opcode's arguments,
 * and for WRITE the data, which goes to the file with pwritev straight from these buffers);
 * out[0..nout) receive the reply (the fuse_out_header, then the opcode's output; READ data comes
 * from the file with preadv straight into them). Returns 0 with *res filled (an error reply is a
 * success here: res->error says which), or -EINVAL when the request is malformed and cannot be
 * answered: the readable bytes do not hold a fuse_in_header, its len is below that or above what
 * the buffers hold, a request that needs a reply has fewer than 16 writable bytes, or a
 * BATCH_FORGET counts more entries than it holds. Nothing is written to out then. */
int fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned nin,
		       const struct iovec *out, unsigned nout, struct fuse_result *res);

/* Turns the per-request credentials on or off (cfg->credentials, decided once the sandbox knows
 * whether the worker keeps the capabilities). The ids requests return to are the calling
 * thread's fsuid and fsgid now. Call before requests are served, not while one runs. */
void fuse_server_set_credentials(struct fuse_server *s, bool on);

/* Forgets the session (a device reset): every inode but the root and every handle is closed, and
 * requests other than INIT answer EIO until the next INIT. */
void fuse_server_reset(struct fuse_server *s);

/* Inodes and handles held now (the root counts as one inode). For tests and metrics. */
unsigned fuse_server_inodes(const struct fuse_server *s);
unsigned fuse_server_handles(const struct fuse_server *s);

/* Parses "none", "auto" or "always": 0, or -EINVAL. */
int fuse_cache_parse(const char *s, size_t len, enum fuse_cache *out);
/* "none", "auto" or "always". */
const char *fuse_cache_name(enum fuse_cache c);

#endif
