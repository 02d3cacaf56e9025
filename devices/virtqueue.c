/* The device side of a split virtqueue (virtio 1.x, 2.7): ring checks at activation, chain
 * parsing into iovecs with every guest-controlled value validated, the used ring, and
 * notification suppression in both directions (flags and event idx).
 *
 * The rings live in guest RAM and the guest may write them at any moment: shared fields are read
 * with single atomic loads, each descriptor is copied once into a local before it is checked,
 * and the checked copy is all that is used afterwards. */
#include "devices/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdatomic.h>
#include <string.h>

/* Ring sizes (2.7: the event fields are part of the layout whether or not event idx is used). */
static uint64_t desc_bytes(uint16_t size)
{
	return (uint64_t)sizeof(struct vring_desc) * size;
}
static uint64_t avail_bytes(uint16_t size)
{
	return 6 + 2ull * size;
}
static uint64_t used_bytes(uint16_t size)
{
	return 6 + (uint64_t)sizeof(struct vring_used_elem) * size;
}

/* The shared fields, as pointers into the checked ring mappings. */
static uint16_t *avail_flags(const struct virtq *q)
{
	return (uint16_t *)q->avail;
}
static uint16_t *avail_idx(const struct virtq *q)
{
	return (uint16_t *)q->avail + 1;
}
static uint16_t *avail_ring(const struct virtq *q, uint16_t i)
{
	return (uint16_t *)q->avail + 2 + i;
}
static uint16_t *used_event(const struct virtq *q)
{
	return (uint16_t *)q->avail + 2 + q->size;
}
static uint16_t *used_flags(const struct virtq *q)
{
	return (uint16_t *)q->used;
}
static uint16_t *used_idx(const struct virtq *q)
{
	return (uint16_t *)q->used + 1;
}
static struct vring_used_elem *used_elem(const struct virtq *q, uint16_t i)
{
	return (struct vring_used_elem *)((uint8_t *)q->used + 4) + i;
}
static uint16_t *avail_event(const struct virtq *q)
{
	return (uint16_t *)((uint8_t *)q->used + 4 + sizeof(struct vring_used_elem) * q->size);
}

static uint16_t load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}
static void store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

/* avail->idx with acquire order: the ring entries and descriptors the driver wrote before it
 * published the index are read after it. */
static uint16_t load_avail_idx(const struct virtq *q)
{
	return le16toh(__atomic_load_n(avail_idx(q), __ATOMIC_ACQUIRE));
}

static bool is_pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

int virtq_activate(struct virtq *q, const struct guest_mem *mem, bool event_idx, bool indirect)
{
	q->desc = q->avail = q->used = NULL;
	if (!is_pow2(q->size) || q->size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	if ((q->desc_gpa & (VRING_DESC_ALIGN_SIZE - 1)) ||
	    (q->avail_gpa & (VRING_AVAIL_ALIGN_SIZE - 1)) ||
	    (q->used_gpa & (VRING_USED_ALIGN_SIZE - 1)))
		return -EINVAL;
	void *desc = guest_mem_ptr(mem, q->desc_gpa, desc_bytes(q->size));
	void *avail = guest_mem_ptr(mem, q->avail_gpa, avail_bytes(q->size));
	void *used = guest_mem_ptr(mem, q->used_gpa, used_bytes(q->size));
	if (!desc || !avail || !used)
		return -EINVAL;
	q->mem = mem;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->broken = false;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

static int broken(struct virtq *q)
{
	q->broken = true;
	return -EINVAL;
}

/* Copies descriptor i of a table once. The compiler barrier keeps the compiler from reading the
 * guest's copy again in place of ours: what is checked is what is used. */
static void copy_desc(const void *table, unsigned i, struct vring_desc *d)
{
	memcpy(d, (const uint8_t *)table + (size_t)i * sizeof(*d), sizeof(*d));
	atomic_signal_fence(memory_order_seq_cst);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Walks the chain that starts at `head` into c. Work is bounded: at most `size` descriptors of
 * the descriptor table, then (after an indirect descriptor, always the last one of the direct
 * part) at most min(entries, VIRTQ_CHAIN_MAX) of the indirect table. A loop shows up as a chain
 * longer than its bound. */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const void *table = q->desc;
	unsigned table_len = q->size; /* entries in `table`: next links must stay below it */
	unsigned limit = q->size;     /* descriptors that may still be visited in `table` */
	bool in_indirect = false, seen_write = false;
	unsigned i = head, n = 0;

	c->head = head;
	c->nout = c->nin = 0;
	c->out_bytes = c->in_bytes = 0;
	for (;;) {
		struct vring_desc d;
		if (limit == 0)
			return -EINVAL; /* a loop, or a chain longer than the queue or table */
		limit--;
		copy_desc(table, i, &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!q->indirect || in_indirect || (d.flags & VRING_DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return -EINVAL;
			table = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return -EINVAL;
			/* The indirect descriptor's own WRITE flag means nothing (2.7.5.3.2). */
			table_len = d.len / sizeof(struct vring_desc);
			limit = table_len < VIRTQ_CHAIN_MAX ? table_len : VIRTQ_CHAIN_MAX;
			in_indirect = true;
			i = 0;
			continue;
		}

		bool write = d.flags & VRING_DESC_F_WRITE;
		if (!write && seen_write)
			return -EINVAL; /* readable buffers come first */
		seen_write |= write;
		if (d.len) {
			void *p = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!p || n >= VIRTQ_CHAIN_MAX)
				return -EINVAL;
			uint32_t *total = write ? &c->in_bytes : &c->out_bytes;
			if (d.len > UINT32_MAX - *total)
				return -EINVAL;
			*total += d.len;
			c->iov[n].iov_base = p;
			c->iov[n].iov_len = d.len;
			n++;
			if (write)
				c->nin++;
			else
				c->nout++;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
		if (i >= table_len)
			return -EINVAL;
	}
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	if (q->broken || !q->avail)
		return -EINVAL;
	uint16_t idx = load_avail_idx(q);
	if (idx == q->last_avail && q->event_idx) {
		/* Empty: ask for a kick at the next buffer, then look once more, so a buffer
		 * published while we wrote avail_event is not left waiting (the driver writes idx,
		 * fences, reads avail_event; we write avail_event, fence, read idx). While chains
		 * are being taken, avail_event stays behind and the driver does not kick. */
		store16(avail_event(q), q->last_avail);
		atomic_thread_fence(memory_order_seq_cst);
		idx = load_avail_idx(q);
	}
	uint16_t pending = idx - q->last_avail;
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return broken(q);
	uint16_t head = load16(avail_ring(q, q->last_avail & (q->size - 1)));
	if (head >= q->size)
		return broken(q);
	if (walk_chain(q, head, c) < 0)
		return broken(q);
	q->last_avail++;
	return 1;
}

void virtq_push(struct virtq *q, const struct virtq_chain *c, uint32_t written)
{
	/* After a reset (a request completing late) or a failure the rings are not ours. */
	if (q->broken || !q->used)
		return;
	if (written > c->in_bytes)
		written = c->in_bytes;
	struct vring_used_elem *e = used_elem(q, q->used_idx & (q->size - 1));
	__atomic_store_n(&e->id, htole32(c->head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(written), __ATOMIC_RELAXED);
	uint16_t old = q->used_idx, new = old + 1;
	q->used_idx = new;
	/* Release: the buffers' contents and the used element are visible before the index. */
	__atomic_store_n(used_idx(q), htole16(new), __ATOMIC_RELEASE);
	/* More than 2^15 pushes without a notification check: signalled_used no longer tells
	 * which side of used_event we are on, so the next check interrupts unconditionally. */
	if ((int16_t)(new - q->signalled_used) < (uint16_t)(new - old))
		q->signalled_valid = false;
}

void virtq_push_batch(struct virtq *q, const struct vring_used_elem *used, unsigned n)
{
	if (q->broken || !q->used || n == 0 || n > q->size)
		return;
	uint16_t old = q->used_idx, new = (uint16_t)(old + n);
	for (unsigned i = 0; i < n; i++) {
		struct vring_used_elem *e = used_elem(q, (uint16_t)(old + i) & (q->size - 1));
		__atomic_store_n(&e->id, htole32(used[i].id), __ATOMIC_RELAXED);
		__atomic_store_n(&e->len, htole32(used[i].len), __ATOMIC_RELAXED);
	}
	q->used_idx = new;
	/* Release: the buffers' contents and all n used elements are visible before the index. */
	__atomic_store_n(used_idx(q), htole16(new), __ATOMIC_RELEASE);
	if ((int16_t)(new - q->signalled_used) < (uint16_t)(new - old))
		q->signalled_valid = false;
}

bool virtq_should_notify(struct virtq *q)
{
	if (q->broken || !q->avail)
		return false;
	/* The used index we published must be visible before we read the driver's suppression
	 * fields, as the driver writes those and then reads used->idx (2.7.7, 2.7.10). */
	atomic_thread_fence(memory_order_seq_cst);
	uint16_t old = q->signalled_used, new = q->used_idx;
	bool valid = q->signalled_valid;
	if (valid && old == new)
		return false; /* nothing pushed since the last check */
	q->signalled_used = new;
	q->signalled_valid = true;
	if (!q->event_idx)
		return !(load16(avail_flags(q)) & VRING_AVAIL_F_NO_INTERRUPT);
	return !valid || vring_need_event(load16(used_event(q)), new, old);
}

bool virtq_enable_kicks(struct virtq *q, bool enable)
{
	if (q->broken || !q->used)
		return false;
	if (q->event_idx) {
		/* With event idx the flags are not used; kicks are off by leaving avail_event
		 * behind, which virtq_pop does while chains are taken. */
		if (!enable)
			return false;
		store16(avail_event(q), q->last_avail);
	} else {
		store16(used_flags(q), enable ? 0 : VRING_USED_F_NO_NOTIFY);
		if (!enable)
			return false;
	}
	/* Our "kick me" must be visible before we look at avail->idx again (see virtq_pop). */
	atomic_thread_fence(memory_order_seq_cst);
	return load_avail_idx(q) != q->last_avail;
}

bool virtq_has_avail(struct virtq *q)
{
	if (q->broken || !q->avail)
		return false;
	return load_avail_idx(q) != q->last_avail;
}

void virtq_state_get(const struct virtq *q, struct virtq_state *s)
{
	memset(s, 0, sizeof(*s));
	if (!q->avail || !q->used)
		return;
	s->ready = q->ready;
	s->broken = q->broken;
	s->event_idx = q->event_idx;
	s->size = q->size;
	s->offered = load_avail_idx(q);
	s->taken = q->last_avail;
	s->returned = q->used_idx;
	s->signalled = q->signalled_used;
	s->used_event = q->event_idx ? load16(used_event(q)) : 0;
}

size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < c->nout && done < len; i++) {
		size_t l = c->iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t n = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)dst + done, (const uint8_t *)c->iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = c->nout; i < (unsigned)c->nout + c->nin && done < len; i++) {
		size_t l = c->iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t n = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)c->iov[i].iov_base + off, (const uint8_t *)src + done, n);
		done += n;
		off = 0;
	}
	return done;
}
