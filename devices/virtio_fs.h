/* virtio-fs (virtio 1.x, section 5.11): a host directory shared with the guest, which mounts it
 * with `mount -t virtiofs TAG DIR`. One hiprio queue (FORGET and friends) and one request queue
 * carry FUSE requests; the FUSE passthrough server (devices/fuse_server.h) answers them.
 *
 * Each chain is one FUSE request: the fuse_in_header and the opcode's arguments (and WRITE's
 * data) in the device-readable buffers, room for the fuse_out_header and the reply in the
 * writable ones. A chain the server cannot answer (too short for the header, a header length
 * beyond the readable bytes, no room for the out header) makes the device fail (NEEDS_RESET) and
 * is not given back. Unknown opcodes answer ENOSYS.
 *
 * Threads: one worker thread per device (virtio_fs_start) serves the hiprio queue and the request
 * queue; queue_notify (the event loop, under the device lock) only wakes it. The worker takes the
 * device lock around popping and pushing chains only; a FUSE request runs outside it, under the
 * server's own lock, which a driver reset also takes (a reset waits for the request in flight,
 * and a chain popped before a reset is dropped, not pushed). Until virtio_fs_start, kicks are
 * remembered and nothing is served.
 * Counters (dev.stats): requests = FUSE requests given back (replies, and FORGETs given back
 * without one); bytes = file data read and written (READ, WRITE, COPY_FILE_RANGE); errors =
 * replies carrying an error other than ENOENT (a failed LOOKUP is the normal negative entry). */
#ifndef VMM_VIRTIO_FS_H
#define VMM_VIRTIO_FS_H

#include "devices/fuse_server.h"
#include "devices/virtio.h"
#include "vmm/log.h"
#include "vmm/memory.h"

#include <limits.h>
#include <linux/virtio_fs.h>
#include <stdbool.h>

/* Bytes of a tag (the config space's tag field, not NUL-terminated when full). */
#define VIRTIO_FS_TAG_MAX 36
/* Request queues offered (num_request_queues); queue 0 is hiprio. */
#define VIRTIO_FS_REQUEST_QUEUES 1

/* What the user asked for with --share. */
struct virtio_fs_options {
	char tag[VIRTIO_FS_TAG_MAX + 1]; /* NUL-terminated here */
	char path[PATH_MAX];		 /* the shared host directory */
	enum fuse_cache cache;		 /* default FUSE_CACHE_AUTO */
	bool ro;
	bool dev;  /* the guest may make device nodes (fuse_server_config.dev) */
	bool suid; /* setuid/setgid files and file capabilities (fuse_server_config.suid) */
};

/* Parses a --share value: "tag=TAG,path=DIR[,cache=none|auto|always][,ro][,dev][,suid]" (keys
 * in any order, each at most once). Fills *o and returns 0, or -EINVAL with one line in e naming
 * what is wrong and what to write: an empty value or item, an unknown key, a key given twice, a
 * missing or empty tag or path, a tag longer than 36 bytes or with bytes other than printable
 * ASCII, a path longer than PATH_MAX, an unknown cache mode, a value given to ro, dev or suid. */
int virtio_fs_parse(const char *spec, struct virtio_fs_options *o, struct verr *e);

struct virtio_fs;

/* Opens the share (fuse_server_create) and sets up the device "virtio-fs TAG" with its config
 * space. mem must outlive the device. Returns 0 with *out set, or a negative errno with one line
 * in e. */
int virtio_fs_create(struct virtio_fs **out, const struct virtio_fs_options *o,
		     const struct guest_mem *mem, struct verr *e);

/* The virtio device for the transport. Valid until virtio_fs_destroy. */
struct virtio_dev *virtio_fs_dev(struct virtio_fs *f);

/* The FUSE server behind the device (tests look at its tables). */
struct fuse_server *virtio_fs_server(struct virtio_fs *f);

/* Whether the FUSE server runs each request as the request's uid and gid
 * (fuse_server_set_credentials): vmm turns it on when the worker keeps the capabilities for it
 * (sandbox_fs_credentials). Call before virtio_fs_start, on the thread that starts it (the
 * worker inherits its fsuid and fsgid, the ids requests return to). */
void virtio_fs_set_credentials(struct virtio_fs *f, bool on);

/* Starts the worker thread. It runs thread_init(opaque, e) first, when given (vmm installs the
 * SANDBOX_FS seccomp list there), and serves nothing if that fails. The worker starts with every
 * asynchronous signal blocked. Call once, after the privileges are dropped (the thread inherits
 * the caller's capabilities and filter). Returns 0 once thread_init succeeded, or its negative
 * errno (the thread is joined) or pthread_create's, with one line in e. */
int virtio_fs_start(struct virtio_fs *f, int (*thread_init)(void *opaque, struct verr *e),
		    void *opaque, struct verr *e);

/* Waits until the worker has served every kick so far (nothing pending, no request running);
 * returns at once when no worker is started. For tests, which drive the queues by hand. */
void virtio_fs_wait_idle(struct virtio_fs *f);

/* Stops and joins the worker, closes the share and frees everything; call it after the vCPUs and
 * the event loop stopped using the device. NULL is allowed. */
void virtio_fs_destroy(struct virtio_fs *f);

#endif
