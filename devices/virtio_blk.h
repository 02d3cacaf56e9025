/* virtio-blk: a raw disk image (regular file or block device) as a virtio block device with one
 * request queue. Requests run on the host through io_uring (zero copy: the guest's buffers are
 * the iovecs), or synchronously when io_uring is not available or VMM_BLK_SYNC=1 is set.
 *
 * Threads: the device's callbacks run under its virtio_dev lock (see devices/virtio.h); io_uring
 * completions arrive on an eventfd watched by the event loop, whose handler takes the same lock,
 * pushes the finished chains and interrupts the driver. */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include "devices/virtio.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"
#include "vmm/memory.h"

#include <limits.h>
#include <linux/virtio_blk.h>
#include <stdbool.h>

/* What the user asked for with --disk or --rootfs. (The name struct virtio_blk_config is the
 * device's configuration space in <linux/virtio_blk.h>, hence "options".) */
struct virtio_blk_options {
	char path[PATH_MAX]; /* the image: a raw file or a block device */
	bool ro;	     /* open read-only and offer VIRTIO_BLK_F_RO */
	/* The serial the guest reads with GET_ID (/sys/block/vdX/serial): up to
	 * VIRTIO_BLK_ID_BYTES printable ASCII bytes, NUL-terminated here; empty when not given. */
	char serial[VIRTIO_BLK_ID_BYTES + 1];
};

/* Parses a --disk value: "path=IMG[,ro][,id=SERIAL]" (keys in any order, each at most once), or
 * "IMG[,ro][,id=SERIAL]" with the path first and no "path=". A path cannot hold a comma here
 * (use virtio_blk_options_path for that). Fills *o and returns 0, or returns -EINVAL with one
 * line in e saying what is wrong, where, and what to write instead: an empty value, an unknown
 * key, a key given twice, a missing or empty path, a path longer than PATH_MAX, a serial longer
 * than VIRTIO_BLK_ID_BYTES or with bytes other than printable ASCII. */
int virtio_blk_parse(const char *spec, struct virtio_blk_options *o, struct verr *e);

/* Fills *o for a plain image path taken verbatim (--rootfs IMG: commas and '=' are part of the
 * name), read-write unless ro, no serial. Returns 0, or -EINVAL with a line in e when the path
 * is empty or longer than PATH_MAX. */
int virtio_blk_options_path(const char *path, bool ro, struct virtio_blk_options *o,
			    struct verr *e);

struct virtio_blk;

/* Opens the image (O_RDWR, or O_RDONLY when o->ro; O_CLOEXEC) and locks it (flock: exclusive
 * when read-write, shared when read-only, so two VMs never write one image), checks that it is
 * a regular file or a block device whose size is a non-zero multiple of 512 bytes, probes
 * whether it can punch holes and zero ranges (on a range past the end of a regular file, so no
 * data changes), and sets up the I/O engine: io_uring with its completion eventfd registered in
 * el, or the synchronous engine when el is NULL, when io_uring cannot be set up, or when the
 * environment has VMM_BLK_SYNC=1 (which one is logged with vmm_debug). The device is named
 * "virtio-blk SERIAL" or "virtio-blk IMG". mem and el must outlive the device. Returns 0 with
 * *out set, or a negative errno with one line in e naming the image, the problem and the fix. */
int virtio_blk_create(struct virtio_blk **out, const struct virtio_blk_options *o,
		      const struct guest_mem *mem, struct event_loop *el, struct verr *e);

/* The virtio device for the transport (its ops, features, config space and queue). Valid until
 * virtio_blk_destroy. */
struct virtio_dev *virtio_blk_dev(struct virtio_blk *b);

/* Whether requests go through io_uring (false: the synchronous engine). */
bool virtio_blk_uses_io_uring(const struct virtio_blk *b);

/* The io_uring engine's ring, or NULL with the synchronous engine. Only for tests, which prove
 * the ring's restrictions (opcodes, SQE flags, register operations) through it; vmm itself goes
 * through the device. */
struct io_uring;
struct io_uring *virtio_blk_ring(struct virtio_blk *b);

/* The disk's size in 512-byte sectors (the config space's capacity). */
uint64_t virtio_blk_capacity(const struct virtio_blk *b);

/* Waits for every request still in flight (their chains are dropped, not pushed), removes the
 * eventfd from the event loop, closes the image and frees everything. Call it after the vCPUs
 * and the event loop thread have stopped using the device. NULL is allowed. */
void virtio_blk_destroy(struct virtio_blk *b);

#endif
