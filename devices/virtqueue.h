/* The device side of a split virtqueue (virtio 1.x, section 2.7), shared by every virtio device.
 *
 * Everything in the rings is written by the guest and is untrusted: descriptor addresses,
 * lengths, flags and next links, the avail index and ring entries, the event-idx fields. All of
 * it is read through guest_mem_ptr (the one bounds-checked accessor), each descriptor is copied
 * once before it is used, and a chain that breaks a rule makes virtq_pop fail: the caller then
 * puts the device in NEEDS_RESET (virtio_dev_fail) and touches the queue no more until reset.
 *
 * A device never walks the rings itself: it pops a chain as an iovec list (the device-readable
 * buffers first, then the device-writable ones), does the work, and pushes it back with the
 * number of bytes it wrote. Thread rules: one thread at a time per queue (the device's lock). */
#ifndef VMM_VIRTQUEUE_H
#define VMM_VIRTQUEUE_H

#include "vmm/memory.h"

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Largest queue size vmm offers (QueueNumMax); queue sizes are powers of two up to this. */
#define VIRTQ_MAX_SIZE 256
/* Most buffers one chain may have, counting the entries of an indirect table. Longer chains are
 * malformed (Linux never builds one longer than its queue size or its indirect limit). */
#define VIRTQ_CHAIN_MAX 1024

struct virtq_chain {
	uint16_t head;	    /* the head descriptor's index, given back in the used ring */
	uint16_t nout, nin; /* iov[0..nout) device-readable, iov[nout..nout+nin) writable */
	uint32_t out_bytes; /* total length of the readable buffers */
	uint32_t in_bytes;  /* total length of the writable buffers */
	struct iovec iov[VIRTQ_CHAIN_MAX];
};

struct virtq {
	/* Set by the transport from the driver's register writes, while the queue is not ready. */
	uint16_t size; /* QueueNum: a power of two in [1, VIRTQ_MAX_SIZE] */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool ready;

	/* Filled by virtq_activate. */
	const struct guest_mem *mem;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX was negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC was negotiated */
	bool broken;	/* a malformed chain was seen: nothing more is done until reset */
	void *desc, *avail, *used; /* host pointers to the three rings, checked once */

	uint16_t last_avail;	 /* next avail ring entry to take */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx at the last interrupt (event idx) */
	bool signalled_valid;
};

/* Checks the ring addresses the driver gave (size a power of two <= VIRTQ_MAX_SIZE; alignment
 * 16/2/4 for desc/avail/used; each ring wholly inside guest RAM) and prepares the queue for use.
 * Returns 0 or -EINVAL. */
int virtq_activate(struct virtq *q, const struct guest_mem *mem, bool event_idx, bool indirect);

/* Forgets everything (device reset): the queue is not ready and has no rings. */
void virtq_reset(struct virtq *q);

/* Takes the next available chain into c. Returns 1 when one was taken, 0 when the ring is empty,
 * -EINVAL when the ring or the chain is malformed (the queue is then marked broken and every
 * later call returns -EINVAL until virtq_reset). Malformed means: avail->idx more than `size`
 * ahead of last_avail; a descriptor index >= size; a buffer not wholly inside guest RAM; a
 * length that overflows the chain's 32-bit totals; a loop or a chain longer than the queue (or
 * than VIRTQ_CHAIN_MAX); a readable buffer after a writable one; an indirect descriptor when
 * indirect was not negotiated, inside an indirect table, combined with NEXT, or whose table
 * length is zero or not a multiple of 16. Zero-length buffers are allowed and skipped. */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/* Gives a chain back: writes {head, written} to the used ring and publishes the new used->idx
 * (release order: the guest sees the data before the index). written is clamped to in_bytes. */
void virtq_push(struct virtq *q, const struct virtq_chain *c, uint32_t written);

/* Gives back n chains at once: writes their n used entries (id = the chain's head, len = bytes
 * written, at most its in_bytes), then publishes used->idx once, so the driver sees all of them
 * or none. For a result spread over several chains, such as virtio-net's mergeable receive
 * buffers, where the driver reads the count in the first and takes the rest at once. The caller
 * took each chain from virtq_pop on this queue; n <= size. */
void virtq_push_batch(struct virtq *q, const struct vring_used_elem *used, unsigned n);

/* Whether the driver wants an interrupt for what was pushed since the last time this returned
 * true: with event idx, used_event decides (vring_need_event); without, the avail flags'
 * VRING_AVAIL_F_NO_INTERRUPT. Issues the full barrier the spec asks for before reading them. */
bool virtq_should_notify(struct virtq *q);

/* Tells the driver whether the device wants kicks (used->flags NO_NOTIFY or, with event idx,
 * avail_event = last_avail). After enabling, returns true when buffers became available in the
 * meantime, so the device looks again before it sleeps. */
bool virtq_enable_kicks(struct virtq *q, bool enable);

/* Whether avail->idx is ahead of last_avail (there is something to pop). */
bool virtq_has_avail(struct virtq *q);

/* Where a queue stands, for diagnosing a guest that waits (the metrics): the indexes the device
 * keeps and the two the driver wrote, read once and only reported. On a queue of requests a
 * stuck guest shows which side owes the other: offered > taken, vmm has not served a kick;
 * taken > returned, a request is in flight; all equal, the guest has asked for nothing. (A
 * receive queue is normally offered > taken: its empty buffers wait for data.) */
struct virtq_state {
	bool ready, broken, event_idx;
	uint16_t size;
	uint16_t offered;    /* the driver's avail->idx: buffers made available so far */
	uint16_t taken;	     /* last_avail: popped by the device */
	uint16_t returned;   /* used->idx: pushed back */
	uint16_t signalled;  /* used->idx when the device last decided whether to interrupt */
	uint16_t used_event; /* event idx: the driver wants an interrupt once used passes it */
};

/* Fills *s from q (q's lock held); a queue without rings reports ready false and zeros. */
void virtq_state_get(const struct virtq *q, struct virtq_state *s);

/* Copy helpers over a chain's readable or writable buffers, starting `off` bytes in. Return the
 * number of bytes copied (less than len when the buffers end first). */
size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len);
size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len);

#endif
