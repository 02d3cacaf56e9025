/* virtio-blk (virtio 1.x, section 5.2) over a raw image: request checks, and two host I/O engines
 * behind one request state machine. A request is a popped chain; each step of it (a readv or
 * writev of what is left, an fdatasync, one fallocate per discard or write-zeroes segment) runs
 * either as an io_uring SQE whose completion comes back through an eventfd on the event loop, or
 * inline (the synchronous engine). Short transfers resubmit the rest.
 *
 * What the guest controls and how it is checked: the 16-byte header must lie in the readable
 * buffers (else IOERR); the status byte is the last writable byte (a chain with no writable byte
 * cannot be answered: the device fails with NEEDS_RESET); the data direction must match the type
 * and IN/OUT lengths must be sector multiples; sector ranges are checked for overflow and against
 * the capacity; discard and write-zeroes segments are counted and checked before any is run.
 * Bad requests get IOERR or UNSUPP; host I/O errors get IOERR with a rate-limited log line. */
#include "devices/virtio_blk.h"
#include "devices/option_spec.h"
#include "vmm/le.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR_SHIFT 9
#define SECTOR_SIZE  (1u << SECTOR_SHIFT)
#define HDR_BYTES    ((uint32_t)sizeof(struct virtio_blk_outhdr))

/* Segments per request a driver may use: a chain without an indirect table fits a full queue
 * with the header and status descriptors. */
#define BLK_SEG_MAX (VIRTQ_MAX_SIZE - 2)
/* Discard / write-zeroes limits: segments per request, sectors per segment (2 GiB). */
#define BLK_DWZ_SEG_MAX	    32
#define BLK_DWZ_SECTORS_MAX (1u << 22)
/* Discard granularity hint, in sectors (4 KiB, the usual file system block). */
#define BLK_DISCARD_ALIGN 8
/* dwz_check: the segments are fine, run them. */
#define STATUS_GO 0xff
/* How often one step is retried after EINTR/EAGAIN before the request fails. */
#define BLK_RETRY_MAX 16

struct blk_req {
	struct virtq_chain chain; /* the popped chain; its iovecs are trimmed in place */
	struct blk_req *next_free;
	uint8_t *status;   /* host pointer to the chain's last writable byte */
	uint32_t type;	   /* VIRTIO_BLK_T_* */
	uint32_t written;  /* data bytes put in the guest's writable buffers */
	uint32_t data_len; /* IN/OUT: the data bytes asked for (stats.bytes when OK), else 0 */
	unsigned retries;  /* EINTR/EAGAIN retries of the current step */
	struct iovec *iov; /* IN/OUT: the data not yet transferred */
	unsigned niov;
	uint64_t off;	    /* its byte offset in the image */
	uint32_t left;	    /* its length */
	unsigned nseg, cur; /* DISCARD/WRITE_ZEROES: segments, and the one being run */
	struct virtio_blk_discard_write_zeroes seg[BLK_DWZ_SEG_MAX]; /* checked, host order */
};

struct virtio_blk {
	struct virtio_dev dev;
	char name[64];
	int fd;
	bool ro;
	bool is_blkdev;
	bool can_punch;			  /* fallocate PUNCH_HOLE|KEEP_SIZE works: DISCARD */
	bool can_zero;			  /* fallocate ZERO_RANGE works */
	uint64_t capacity;		  /* sectors */
	char serial[VIRTIO_BLK_ID_BYTES]; /* zero-padded, not NUL-terminated when full */
	struct virtio_blk_config cfg;	  /* the config space, little-endian */

	/* The io_uring engine. All ring access is under dev.lock. */
	bool uring;
	struct io_uring ring;
	int efd; /* completion eventfd, watched by el */
	struct ev_handler evh;
	struct event_loop *el;
	unsigned inflight; /* SQEs queued or submitted whose CQE has not been reaped */
	bool unsubmitted;  /* SQEs queued since the last io_uring_submit */

	struct blk_req *reqs; /* VIRTQ_MAX_SIZE of them */
	struct blk_req *free;
	unsigned busy;		    /* requests popped and not yet finished */
	bool throttled;		    /* stopped popping because `busy` reached the queue size */
	bool pushed;		    /* used entries added since the last notification */
	bool draining;		    /* reset/destroy: completions are dropped, not pushed */
	struct log_ratelimit io_rl; /* host I/O errors (guest-triggered: rate-limited) */
};

/* ---- option parsing ---- */

static const char usage[] = "write path=IMG[,ro][,id=SERIAL]";

/* Error lines quote the value, cut to 80 bytes. */
#define SPEC_FMT     "--disk '%.*s%s'"
#define SPEC_ARG(sp) OPTION_SPEC_ARG(sp)

static int set_path(const char *spec, const char *p, size_t len, struct virtio_blk_options *o,
		    struct verr *e)
{
	if (len == 0)
		return verr_set(e, -EINVAL, SPEC_FMT ": the image path is empty: %s",
				SPEC_ARG(spec), usage);
	if (len >= sizeof(o->path))
		return verr_set(e, -EINVAL,
				SPEC_FMT
				": the image path is %zu bytes, longer than PATH_MAX (%zu)",
				SPEC_ARG(spec), len, sizeof(o->path) - 1);
	memcpy(o->path, p, len);
	o->path[len] = '\0';
	return 0;
}

static int set_serial(const char *spec, const char *p, size_t len, struct virtio_blk_options *o,
		      struct verr *e)
{
	if (len == 0)
		return verr_set(e, -EINVAL,
				SPEC_FMT ": id= is empty: give a serial of 1 to %d bytes, or leave "
					 "id= out",
				SPEC_ARG(spec), VIRTIO_BLK_ID_BYTES);
	if (len > VIRTIO_BLK_ID_BYTES)
		return verr_set(e, -EINVAL,
				SPEC_FMT ": id '%.*s' is %zu bytes, more than the %d a virtio-blk "
					 "serial holds: shorten it",
				SPEC_ARG(spec), (int)len, p, len, VIRTIO_BLK_ID_BYTES);
	for (size_t i = 0; i < len; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return verr_set(e, -EINVAL,
					SPEC_FMT
					": id '%.*s' has a byte other than printable "
					"ASCII at %zu: use letters, digits and punctuation",
					SPEC_ARG(spec), (int)len, p, i);
	memcpy(o->serial, p, len);
	o->serial[len] = '\0';
	return 0;
}

int virtio_blk_parse(const char *spec, struct virtio_blk_options *o, struct verr *e)
{
	memset(o, 0, sizeof(*o));
	if (!spec || !*spec)
		return verr_set(e, -EINVAL, "--disk: the value is empty: %s", usage);
	bool have_path = false, have_ro = false, have_id = false;
	const char *p = spec;
	for (unsigned n = 1;; n++) {
		const struct option_item it = option_item(p);
		const char *end = it.end, *eq = it.eq, *val = it.val;
		size_t len = it.len, klen = it.klen, vlen = it.vlen;
		bool *seen;
		int r = 0;
		if (len == 0)
			return verr_set(e, -EINVAL,
					SPEC_FMT ": item %u is empty (a stray comma): %s",
					SPEC_ARG(spec), n, usage);
		if (option_word_is(p, klen, "ro")) {
			if (eq)
				return verr_set(e, -EINVAL,
						SPEC_FMT ": 'ro' takes no value: write ,ro",
						SPEC_ARG(spec));
			seen = &have_ro;
			o->ro = true;
		} else if (option_word_is(p, klen, "path") && eq) {
			seen = &have_path;
			if (!have_path)
				r = set_path(spec, val, vlen, o, e);
		} else if (option_word_is(p, klen, "id") && eq) {
			seen = &have_id;
			if (!have_id)
				r = set_serial(spec, val, vlen, o, e);
		} else if (n == 1 && !eq) {
			seen = &have_path; /* a bare path first: IMG,ro */
			r = set_path(spec, p, len, o, e);
		} else {
			return verr_set(e, -EINVAL,
					SPEC_FMT ": unknown key '%.*s' (item %u): the keys are "
						 "path=, ro and id=",
					SPEC_ARG(spec), (int)klen, p, n);
		}
		if (r < 0)
			return r;
		if (*seen)
			return verr_set(e, -EINVAL,
					SPEC_FMT ": '%.*s' is given twice: give it once",
					SPEC_ARG(spec), (int)klen, p);
		*seen = true;
		if (!*end)
			break;
		p = end + 1;
	}
	if (!have_path)
		return verr_set(e, -EINVAL, SPEC_FMT ": no image path: %s", SPEC_ARG(spec), usage);
	return 0;
}

int virtio_blk_options_path(const char *path, bool ro, struct virtio_blk_options *o, struct verr *e)
{
	memset(o, 0, sizeof(*o));
	size_t len = path ? strlen(path) : 0;
	if (len == 0)
		return verr_set(e, -EINVAL,
				"--rootfs: the image path is empty: give a raw disk "
				"image (a regular file or a block device)");
	if (len >= sizeof(o->path))
		return verr_set(e, -EINVAL,
				"--rootfs: the image path is %zu bytes, longer than "
				"PATH_MAX (%zu)",
				len, sizeof(o->path) - 1);
	memcpy(o->path, path, len + 1);
	o->ro = ro;
	return 0;
}

/* ---- requests ---- */

/* Drops `bytes` from the front of an iovec list (and any empty entries there). */
static void iov_advance(struct iovec **iov, unsigned *n, size_t bytes)
{
	while (*n && bytes >= (*iov)->iov_len) {
		bytes -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n && bytes) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + bytes;
		(*iov)->iov_len -= bytes;
	}
}

static void req_free(struct virtio_blk *b, struct blk_req *r)
{
	r->next_free = b->free;
	b->free = r;
	b->busy--;
}

/* Ends a request: writes its status and gives the chain back with the bytes written (data and
 * the status byte), and counts it (devices/virtio.h says what). While draining, or once the
 * device has failed, the chain is dropped, and not counted. */
static void req_finish(struct virtio_blk *b, struct blk_req *r, uint8_t status)
{
	if (!b->draining && virtio_dev_running(&b->dev)) {
		*r->status = status;
		virtq_push(&b->dev.vq[0], &r->chain, r->written + 1);
		b->pushed = true;
		virtio_stat_add(&b->dev.stats.requests, 1);
		if (status == VIRTIO_BLK_S_OK && r->data_len)
			virtio_stat_add(&b->dev.stats.bytes, r->data_len);
		else if (status == VIRTIO_BLK_S_IOERR || status == VIRTIO_BLK_S_UNSUPP)
			virtio_stat_add(&b->dev.stats.errors, 1);
	}
	req_free(b, r);
}

/* Whether [sector, sector + n) lies inside the disk (overflow-safe). */
static bool in_range(const struct virtio_blk *b, uint64_t sector, uint64_t n)
{
	return sector <= b->capacity && n <= b->capacity - sector;
}

/* fallocate mode for the current segment of a DISCARD or WRITE_ZEROES request. Punching a hole
 * reads back as zeroes too, so write-zeroes uses it when the driver allows unmapping or when the
 * file cannot zero a range in place. A block device always zeroes in place for write-zeroes (the
 * kernel falls back to writing zeroes). */
static int falloc_mode(const struct virtio_blk *b, const struct blk_req *r)
{
	if (r->type == VIRTIO_BLK_T_DISCARD)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	bool unmap = r->seg[r->cur].flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	if (!b->is_blkdev && b->can_punch && (unmap || !b->can_zero))
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

/* Runs the current step of r synchronously: the result as an io_uring CQE would carry it. */
static int step_sync(struct virtio_blk *b, struct blk_req *r)
{
	ssize_t n;
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		n = preadv(b->fd, r->iov, (int)r->niov, (off_t)r->off);
		return n < 0 ? -errno : (int)n;
	case VIRTIO_BLK_T_OUT:
		n = pwritev(b->fd, r->iov, (int)r->niov, (off_t)r->off);
		return n < 0 ? -errno : (int)n;
	case VIRTIO_BLK_T_FLUSH:
		return fdatasync(b->fd) < 0 ? -errno : 0;
	default: { /* DISCARD, WRITE_ZEROES */
		const struct virtio_blk_discard_write_zeroes *s = &r->seg[r->cur];
		return fallocate(b->fd, falloc_mode(b, r), (off_t)(s->sector << SECTOR_SHIFT),
				 (off_t)s->num_sectors << SECTOR_SHIFT) < 0
			   ? -errno
			   : 0;
	}
	}
}

/* Queues the current step of r as an SQE (submitted at the end of the batch). */
static void step_queue(struct virtio_blk *b, struct blk_req *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
	if (!sqe) { /* cannot happen: at most one SQE per request, requests <= SQ entries */
		io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
		if (!sqe) {
			vmm_log_ratelimited(&b->io_rl, 5, "%s: io_uring submission queue full",
					    b->name);
			req_finish(b, r, VIRTIO_BLK_S_IOERR);
			return;
		}
	}
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		io_uring_prep_readv(sqe, b->fd, r->iov, r->niov, r->off);
		break;
	case VIRTIO_BLK_T_OUT:
		io_uring_prep_writev(sqe, b->fd, r->iov, r->niov, r->off);
		break;
	case VIRTIO_BLK_T_FLUSH:
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		break;
	default: {
		const struct virtio_blk_discard_write_zeroes *s = &r->seg[r->cur];
		io_uring_prep_fallocate(sqe, b->fd, falloc_mode(b, r), s->sector << SECTOR_SHIFT,
					(uint64_t)s->num_sectors << SECTOR_SHIFT);
		break;
	}
	}
	io_uring_sqe_set_data(sqe, r);
	b->inflight++;
	b->unsubmitted = true;
}

/* Takes the result of r's current step. Returns true when r is finished (and finished it), false
 * when another step must run (a short transfer's rest, a retry, the next segment). */
static bool step_done(struct virtio_blk *b, struct blk_req *r, int res)
{
	if (res == -EINTR || res == -EAGAIN) {
		if (++r->retries < BLK_RETRY_MAX)
			return false;
	} else if (res >= 0) {
		r->retries = 0;
	}
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (res > 0 && (uint32_t)res <= r->left) {
			if (r->type == VIRTIO_BLK_T_IN)
				r->written += (uint32_t)res;
			r->left -= (uint32_t)res;
			r->off += (uint32_t)res;
			if (r->left == 0)
				break;
			iov_advance(&r->iov, &r->niov, (uint32_t)res);
			return false;
		}
		vmm_log_ratelimited(&b->io_rl, 5, "%s: %s at byte %llu failed: %s", b->name,
				    r->type == VIRTIO_BLK_T_IN ? "read" : "write",
				    (unsigned long long)r->off,
				    res == 0 ? "the image ended early (was it truncated?)"
					     : strerror(res < 0 ? -res : EIO));
		req_finish(b, r, VIRTIO_BLK_S_IOERR);
		return true;
	case VIRTIO_BLK_T_FLUSH:
		if (res < 0) {
			vmm_log_ratelimited(&b->io_rl, 5, "%s: flush failed: %s", b->name,
					    strerror(-res));
			req_finish(b, r, VIRTIO_BLK_S_IOERR);
			return true;
		}
		break;
	default: /* DISCARD, WRITE_ZEROES */
		if (res == -EOPNOTSUPP) {
			req_finish(b, r, VIRTIO_BLK_S_UNSUPP);
			return true;
		}
		if (res < 0) {
			vmm_log_ratelimited(&b->io_rl, 5, "%s: %s failed: %s", b->name,
					    r->type == VIRTIO_BLK_T_DISCARD ? "discard"
									    : "write zeroes",
					    strerror(-res));
			req_finish(b, r, VIRTIO_BLK_S_IOERR);
			return true;
		}
		if (++r->cur < r->nseg)
			return false;
		break;
	}
	req_finish(b, r, VIRTIO_BLK_S_OK);
	return true;
}

/* Runs r's steps: queued one at a time on io_uring, or all inline. */
static void req_run(struct virtio_blk *b, struct blk_req *r)
{
	if (b->uring) {
		step_queue(b, r);
		return;
	}
	while (!step_done(b, r, step_sync(b, r)))
		;
}

/* Reads and checks the segments of a DISCARD or WRITE_ZEROES request (data after the header).
 * Returns a status to answer with, or STATUS_GO. */
static uint8_t dwz_check(struct virtio_blk *b, struct blk_req *r, uint32_t data)
{
	const struct virtq_chain *c = &r->chain;
	bool discard = r->type == VIRTIO_BLK_T_DISCARD;
	if (discard ? !b->can_punch : !(b->can_punch || b->can_zero))
		return VIRTIO_BLK_S_UNSUPP;
	if (b->ro || c->in_bytes != 1 || data == 0 || data % sizeof(r->seg[0]) ||
	    data / sizeof(r->seg[0]) > BLK_DWZ_SEG_MAX)
		return VIRTIO_BLK_S_IOERR;
	r->nseg = data / sizeof(r->seg[0]);
	r->cur = 0;
	virtq_chain_read(c, HDR_BYTES, r->seg, data);
	for (unsigned i = 0; i < r->nseg; i++) {
		struct virtio_blk_discard_write_zeroes *s = &r->seg[i];
		s->sector = le64toh(s->sector);
		s->num_sectors = le32toh(s->num_sectors);
		s->flags = le32toh(s->flags);
		uint32_t known = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		if (s->flags & ~known)
			return VIRTIO_BLK_S_UNSUPP;
		if (s->num_sectors > BLK_DWZ_SECTORS_MAX || !in_range(b, s->sector, s->num_sectors))
			return VIRTIO_BLK_S_IOERR;
	}
	/* Empty segments are done already (fallocate refuses a zero length). */
	unsigned n = 0;
	for (unsigned i = 0; i < r->nseg; i++)
		if (r->seg[i].num_sectors)
			r->seg[n++] = r->seg[i];
	r->nseg = n;
	return n ? STATUS_GO : VIRTIO_BLK_S_OK;
}

/* Checks a popped chain and starts it. Returns false when the chain cannot even be answered
 * (the device then has failed). */
static bool req_start(struct virtio_blk *b, struct blk_req *r)
{
	struct virtq_chain *c = &r->chain;
	r->written = 0;
	r->data_len = 0;
	r->retries = 0;

	/* The status byte: the last byte of the last non-empty writable buffer. */
	struct iovec *st = NULL;
	for (unsigned i = (unsigned)c->nout + c->nin; i > c->nout; i--) {
		if (c->iov[i - 1].iov_len) {
			st = &c->iov[i - 1];
			break;
		}
	}
	if (!st || c->in_bytes == 0) {
		virtio_dev_fail(&b->dev, "request %u has no writable status byte", c->head);
		req_free(b, r);
		return false;
	}
	st->iov_len--;
	r->status = (uint8_t *)st->iov_base + st->iov_len;
	uint32_t in_data = c->in_bytes - 1;

	struct virtio_blk_outhdr hdr;
	if (c->out_bytes < HDR_BYTES) {
		req_finish(b, r, VIRTIO_BLK_S_IOERR);
		return true;
	}
	virtq_chain_read(c, 0, &hdr, sizeof(hdr));
	r->type = le32toh(hdr.type);
	uint64_t sector = le64toh(hdr.sector);
	uint32_t out_data = c->out_bytes - HDR_BYTES;

	uint8_t status;
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool in = r->type == VIRTIO_BLK_T_IN;
		uint32_t len = in ? in_data : out_data;
		if ((in ? out_data : in_data) != 0 || len % SECTOR_SIZE ||
		    !in_range(b, sector, len >> SECTOR_SHIFT) || (!in && b->ro)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (len == 0) {
			status = VIRTIO_BLK_S_OK;
			break;
		}
		if (in) {
			r->iov = &c->iov[c->nout];
			r->niov = c->nin;
		} else {
			r->iov = c->iov;
			r->niov = c->nout;
			iov_advance(&r->iov, &r->niov, HDR_BYTES);
		}
		r->off = sector << SECTOR_SHIFT;
		r->left = len;
		r->data_len = len;
		req_run(b, r);
		return true;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (out_data || in_data) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		req_run(b, r);
		return true;
	case VIRTIO_BLK_T_GET_ID:
		if (out_data) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		r->written = (uint32_t)virtq_chain_write(
		    c, 0, b->serial, in_data < sizeof(b->serial) ? in_data : sizeof(b->serial));
		status = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = dwz_check(b, r, out_data);
		if (status == STATUS_GO) {
			req_run(b, r);
			return true;
		}
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	req_finish(b, r, status);
	return true;
}

/* ---- the queue and the engines ---- */

/* Submits what was queued; retried while the kernel is short of resources. */
static void uring_submit(struct virtio_blk *b)
{
	if (!b->uring || !b->unsubmitted)
		return;
	b->unsubmitted = false;
	for (unsigned tries = 0; io_uring_sq_ready(&b->ring) && tries < BLK_RETRY_MAX; tries++) {
		int n = io_uring_submit(&b->ring);
		if (n >= 0 || n == -EINTR || n == -EAGAIN || n == -EBUSY)
			continue;
		vmm_log_ratelimited(&b->io_rl, 5, "%s: io_uring_submit failed: %s", b->name,
				    strerror(-n));
		break;
	}
	if (io_uring_sq_ready(&b->ring))
		b->unsubmitted = true; /* tried again at the next batch */
}

/* Ends a batch: submits the SQEs and interrupts the driver if anything was pushed. */
static void batch_end(struct virtio_blk *b)
{
	uring_submit(b);
	if (b->pushed) {
		b->pushed = false;
		virtio_dev_notify_used(&b->dev, 0);
	}
}

/* Pops and starts every available chain, with kicks off meanwhile; stops when as many requests
 * are in flight as the queue has entries (the next completion resumes). Lock held. */
static void process_queue(struct virtio_blk *b)
{
	struct virtq *q = &b->dev.vq[0];
	if (!q->ready || b->draining)
		goto out;
	for (;;) {
		virtq_enable_kicks(q, false);
		for (;;) {
			if (!virtio_dev_running(&b->dev))
				goto out;
			if (b->busy >= q->size || !b->free) {
				b->throttled = true;
				goto out;
			}
			struct blk_req *r = b->free;
			int n = virtq_pop(q, &r->chain);
			if (n == 0)
				break;
			if (n < 0) {
				virtio_dev_fail(&b->dev, "malformed descriptor chain");
				goto out;
			}
			b->free = r->next_free;
			b->busy++;
			req_start(b, r);
		}
		if (!virtq_enable_kicks(q, true))
			break;
	}
out:
	batch_end(b);
}

/* Reaps every completion there is (lock held). */
static void uring_reap(struct virtio_blk *b)
{
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
		struct blk_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&b->ring, cqe);
		b->inflight--;
		if (b->draining)
			req_free(b, r);
		else if (!step_done(b, r, res))
			step_queue(b, r);
	}
}

/* The completion eventfd is readable (event loop thread). */
static void uring_event(void *opaque, uint32_t events)
{
	(void)events;
	struct virtio_blk *b = opaque;
	eventfd_t v;
	(void)eventfd_read(b->efd, &v); /* cleared first: later CQEs signal it again */
	pthread_mutex_lock(&b->dev.lock);
	uring_reap(b);
	if (b->throttled) {
		b->throttled = false;
		process_queue(b);
	} else {
		batch_end(b);
	}
	pthread_mutex_unlock(&b->dev.lock);
}

/* Waits until no request is in flight, reaping each completion (a step that follows is
 * submitted and waited for too): 0, or io_uring's negative errno. Lock held. */
static int wait_inflight(struct virtio_blk *b)
{
	uring_submit(b);
	while (b->inflight) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&b->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		uring_reap(b);
		uring_submit(b);
	}
	return 0;
}

/* Waits until no request is in flight; their chains are dropped. Lock held. */
static void drain(struct virtio_blk *b)
{
	if (!b->uring)
		return;
	b->draining = true;
	int r = wait_inflight(b);
	if (r < 0) /* on every reset the guest asks for: rate-limited */
		vmm_log_ratelimited(&b->io_rl, 5, "%s: waiting for in-flight requests failed: %s",
				    b->name, strerror(-r));
	b->draining = false;
}

static void reqs_reset(struct virtio_blk *b)
{
	b->free = NULL;
	for (unsigned i = VIRTQ_MAX_SIZE; i > 0; i--) {
		b->reqs[i - 1].next_free = b->free;
		b->free = &b->reqs[i - 1];
	}
	b->busy = 0;
	b->throttled = false;
	b->pushed = false;
}

/* ---- virtio_dev_ops ---- */

static void blk_config_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_blk *b = d->priv;
	memcpy(buf, (const uint8_t *)&b->cfg + off, len);
}

static void blk_config_write(struct virtio_dev *d, uint32_t off, const void *buf, uint32_t len)
{
	(void)d, (void)off, (void)buf, (void)len; /* nothing is writable (no CONFIG_WCE) */
}

static int blk_activate(struct virtio_dev *d)
{
	struct virtio_blk *b = d->priv;
	vmm_debug("%s: activated (%u entries, %s engine)", b->name, d->vq[0].size,
		  b->uring ? "io_uring" : "synchronous");
	return 0;
}

static void blk_reset(struct virtio_dev *d)
{
	struct virtio_blk *b = d->priv;
	drain(b);
	reqs_reset(b);
}

static void blk_queue_notify(struct virtio_dev *d, unsigned q)
{
	if (q == 0)
		process_queue(d->priv);
}

/* Every request in flight finished and pushed, the steps they still had (a DISCARD's next
 * segment) run too; nothing new is popped (a throttled queue waits for the caller's kick). */
static int blk_quiesce(struct virtio_dev *d, struct verr *e)
{
	struct virtio_blk *b = d->priv;
	if (!b->uring)
		return 0;
	int r = wait_inflight(b);
	batch_end(b);
	if (r < 0)
		return verr_set(e, r, "%s: waiting for %u in-flight requests failed: %s", b->name,
				b->inflight, strerror(-r));
	return 0;
}

/* The saved state: what the guest was told of the disk, which the image it is restored with must
 * match (capacity in sectors, little-endian; read-only 0 or 1; the serial, zero-padded) */
#define BLK_STATE_LEN (8u + 8u + VIRTIO_BLK_ID_BYTES + 4u)
_Static_assert(BLK_STATE_LEN <= VIRTIO_DEV_STATE_MAX, "virtio-blk state too large");

static size_t blk_save(const struct virtio_dev *d, uint8_t *out)
{
	const struct virtio_blk *b = d->priv;
	memset(out, 0, BLK_STATE_LEN);
	le_put64(out, b->capacity);
	out[8] = b->ro;
	memcpy(out + 16, b->serial, VIRTIO_BLK_ID_BYTES);
	return BLK_STATE_LEN;
}

static int blk_restore(struct virtio_dev *d, const uint8_t *in, size_t len, struct verr *e)
{
	const struct virtio_blk *b = d->priv;
	if (len != BLK_STATE_LEN)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's disk state is %zu bytes, not %u: the "
				"snapshot is damaged or from another vmm",
				b->name, len, BLK_STATE_LEN);
	static const uint8_t zero[8];
	if (memcmp(in + 9, zero, 7) != 0 || memcmp(in + 16 + VIRTIO_BLK_ID_BYTES, zero, 4) != 0)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's disk state has padding bytes set: "
				"the snapshot is damaged",
				b->name);
	uint64_t cap = le_get64(in);
	if (cap != b->capacity)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's disk had %llu sectors, this image has "
				"%llu: restore with the image the snapshot was taken with",
				b->name, (unsigned long long)cap, (unsigned long long)b->capacity);
	if (in[8] > 1 || in[8] != b->ro)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's disk was %s, this one is %s: give "
				"the --disk ro flag as the snapshot had it",
				b->name, in[8] ? "read-only" : "read-write",
				b->ro ? "read-only" : "read-write");
	/* (the saved serial is not quoted: the file's bytes are not for the log) */
	if (memcmp(in + 16, b->serial, VIRTIO_BLK_ID_BYTES) != 0)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's disk had another serial than '%.*s': "
				"give the id= the snapshot was taken with",
				b->name, VIRTIO_BLK_ID_BYTES, b->serial);
	return 0;
}

static const struct virtio_dev_ops blk_ops = {
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .activate = blk_activate,
    .reset = blk_reset,
    .queue_notify = blk_queue_notify,
    .quiesce = blk_quiesce,
    .save = blk_save,
    .restore = blk_restore,
};

/* ---- setup ---- */

/* Whether fallocate(mode) works on this file, tried past its end so that no data changes (a
 * zeroed range there only preallocates, and is punched out again when possible). */
static void probe_fallocate(struct virtio_blk *b, uint64_t size)
{
	off_t off = (off_t)((size + 65535) & ~65535ull) + 65536;
	b->can_punch = fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, 4096) == 0;
	b->can_zero = fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, 4096) == 0;
	if (b->can_zero && b->can_punch)
		(void)fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, 4096);
}

/* The only SQE opcodes the disk ring runs (step_queue); io_uring's restrictions refuse the rest. */
static const int uring_ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				IORING_OP_FALLOCATE};
#define URING_NOPS (sizeof(uring_ops) / sizeof(uring_ops[0]))

/* Locks the ring down before it is enabled (it was created with IORING_SETUP_R_DISABLED): only
 * the opcodes in uring_ops, no SQE flags (no links, no drains, no fixed files, no buffer
 * selection), and no register operation at all once enabled. Operations submitted through a ring
 * are never seen by seccomp; without this a vmm taken over could open files or sockets through
 * the ring. The fds stay unrestricted on purpose: the same operations on any fd vmm holds are
 * allowed system calls anyway (the synchronous engine), and a registered file would outlive
 * close() by the ring's asynchronous teardown, keeping the image's flock. Returns 0 or -errno. */
static int uring_restrict(struct virtio_blk *b)
{
	struct io_uring_restriction res[URING_NOPS];
	memset(res, 0, sizeof(res));
	unsigned n = 0;
	for (unsigned i = 0; i < URING_NOPS; i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = (uint8_t)uring_ops[i];
	}
	/* io_uring_register_restrictions and io_uring_enable_rings are in liburing.h but not
	 * exported by liburing.so before 2.4 (axboe/liburing#773; Debian 12 has 2.3): the same
	 * requests through liburing's io_uring_register(), which 2.3 exports. */
	int r = io_uring_register((unsigned)b->ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res, n);
	if (r == 0)
		r = io_uring_register((unsigned)b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
				      0);
	return r < 0 ? r : 0;
}

/* Says once per process that the disks fall back to synchronous I/O for lack of restrictions. */
static void uring_unrestricted(int r)
{
	static bool logged; /* setup runs on the main thread only */
	if (!logged)
		vmm_log("virtio-blk: io_uring cannot be restricted here (%s; needs Linux 5.10+): "
			"disks use synchronous I/O",
			strerror(-r));
	logged = true;
}

/* Sets up io_uring; returns 0 or a negative errno, why it is not used. A ring that cannot be
 * restricted (Linux before 5.10) is not used: the synchronous engine, filtered by seccomp, serves
 * instead, and one line says so. */
static int uring_setup(struct virtio_blk *b, struct event_loop *el)
{
	int r = io_uring_queue_init(VIRTQ_MAX_SIZE, &b->ring, IORING_SETUP_R_DISABLED);
	if (r == -EINVAL)
		uring_unrestricted(r); /* Linux before 5.10 refuses IORING_SETUP_R_DISABLED */
	if (r < 0)
		return r;
	struct io_uring_probe *p = io_uring_get_probe_ring(&b->ring);
	for (unsigned i = 0; i < URING_NOPS && r == 0; i++)
		if (!p || !io_uring_opcode_supported(p, uring_ops[i]))
			r = -EOPNOTSUPP;
	if (p)
		io_uring_free_probe(p);
	if (r == 0) {
		b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		r = b->efd < 0 ? -errno : io_uring_register_eventfd(&b->ring, b->efd);
	}
	if (r == 0 && (r = uring_restrict(b)) < 0)
		uring_unrestricted(r);
	if (r == 0) {
		b->evh = (struct ev_handler){.fd = b->efd, .fn = uring_event, .opaque = b};
		r = ev_add(el, &b->evh, EPOLLIN);
	}
	if (r < 0) {
		if (b->efd >= 0)
			close(b->efd);
		b->efd = -1;
		io_uring_queue_exit(&b->ring);
		return r;
	}
	b->el = el;
	b->uring = true;
	return 0;
}

static int open_image(struct virtio_blk *b, const struct virtio_blk_options *o, struct verr *e)
{
	/* O_NONBLOCK keeps open from hanging on a FIFO; it is cleared at once (io_uring would
	 * return EAGAIN instead of waiting on a non-blocking file). */
	b->fd = open(o->path, (o->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (b->fd < 0) {
		int err = errno;
		if (!o->ro && (err == EACCES || err == EROFS || err == EPERM))
			return verr_set(e, -err,
					"disk image %s: cannot open it for writing (%s): fix its "
					"permissions, or add ,ro to attach it read-only",
					o->path, strerror(err));
		return verr_set(e, -err,
				"disk image %s: cannot open it (%s): give the path of a raw disk "
				"image (a regular file or a block device)",
				o->path, strerror(err));
	}
	int fl = fcntl(b->fd, F_GETFL);
	if (fl < 0 || fcntl(b->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return verr_set(e, -errno, "disk image %s: fcntl: %s", o->path, strerror(errno));
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return verr_set(e, -errno, "disk image %s: fstat: %s", o->path, strerror(errno));
	uint64_t size;
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		b->is_blkdev = true;
		if (ioctl(b->fd, BLKGETSIZE64, &size) < 0)
			return verr_set(e, -errno, "disk image %s: ioctl (BLKGETSIZE64) failed: %s",
					o->path, strerror(errno));
	} else {
		return verr_set(e, -EINVAL,
				"disk image %s is not a regular file or a block device: give a raw "
				"disk image",
				o->path);
	}
	if (size == 0)
		return verr_set(e, -EINVAL,
				"disk image %s is empty: give an image of at least 512 bytes (e.g. "
				"truncate -s 64M %s, then mkfs)",
				o->path, o->path);
	if (size % SECTOR_SIZE)
		return verr_set(e, -EINVAL,
				"disk image %s is %llu bytes, not a multiple of 512 (the sector "
				"size): grow it to %llu bytes (truncate -s %llu %s)",
				o->path, (unsigned long long)size,
				(unsigned long long)(size | (SECTOR_SIZE - 1)) + 1,
				(unsigned long long)(size | (SECTOR_SIZE - 1)) + 1, o->path);
	if (flock(b->fd, (o->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		int err = errno;
		if (err == EWOULDBLOCK)
			return verr_set(
			    e, -EBUSY,
			    "disk image %s is in use (locked by another process): give "
			    "each VM its own image, or attach it read-only (,ro) in all",
			    o->path);
		return verr_set(e, -err, "disk image %s: flock: %s", o->path, strerror(err));
	}
	b->capacity = size >> SECTOR_SHIFT;
	if (!o->ro && b->is_blkdev) {
		/* A block device cannot be probed without touching data: both are offered and
		 * a device that lacks them answers UNSUPP (EOPNOTSUPP at request time). */
		b->can_punch = b->can_zero = true;
	} else if (!o->ro) {
		probe_fallocate(b, size);
	}
	return 0;
}

int virtio_blk_create(struct virtio_blk **out, const struct virtio_blk_options *o,
		      const struct guest_mem *mem, struct event_loop *el, struct verr *e)
{
	*out = NULL;
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b)
		return verr_set(e, -ENOMEM, "virtio-blk %s: out of memory", o->path);
	b->fd = -1;
	b->efd = -1;
	b->ro = o->ro;
	b->reqs = calloc(VIRTQ_MAX_SIZE, sizeof(*b->reqs));
	if (!b->reqs) {
		free(b);
		return verr_set(e, -ENOMEM, "virtio-blk %s: out of memory", o->path);
	}
	int r = open_image(b, o, e);
	if (r < 0) {
		if (b->fd >= 0)
			close(b->fd);
		free(b->reqs);
		free(b);
		return r;
	}
	memcpy(b->serial, o->serial, strnlen(o->serial, sizeof(b->serial)));
	const char *base = strrchr(o->path, '/');
	snprintf(b->name, sizeof(b->name), "virtio-blk %.48s",
		 o->serial[0]	   ? o->serial
		 : base && base[1] ? base + 1
				   : o->path);

	uint64_t features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
			    (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
			    (1ull << VIRTIO_RING_F_EVENT_IDX);
	if (b->ro)
		features |= 1ull << VIRTIO_BLK_F_RO;
	if (b->can_punch)
		features |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (b->can_punch || b->can_zero)
		features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	b->cfg.capacity = htole64(b->capacity);
	b->cfg.seg_max = htole32(BLK_SEG_MAX);
	b->cfg.blk_size = htole32(SECTOR_SIZE);
	b->cfg.max_discard_sectors = htole32(BLK_DWZ_SECTORS_MAX);
	b->cfg.max_discard_seg = htole32(BLK_DWZ_SEG_MAX);
	b->cfg.discard_sector_alignment = htole32(BLK_DISCARD_ALIGN);
	b->cfg.max_write_zeroes_sectors = htole32(BLK_DWZ_SECTORS_MAX);
	b->cfg.max_write_zeroes_seg = htole32(BLK_DWZ_SEG_MAX);
	b->cfg.write_zeroes_may_unmap = b->can_punch;
	virtio_dev_init(&b->dev, b->name, VIRTIO_ID_BLOCK, &blk_ops, b, features, sizeof(b->cfg), 1,
			mem);
	reqs_reset(b);

	const char *sync = getenv("VMM_BLK_SYNC");
	const char *why = NULL;
	if (!el)
		why = "no event loop";
	else if (sync && strcmp(sync, "1") == 0)
		why = "VMM_BLK_SYNC=1";
	else if ((r = uring_setup(b, el)) < 0)
		why = strerror(-r);
	if (why)
		vmm_debug("%s: synchronous I/O engine (io_uring not used: %s)", b->name, why);
	else
		vmm_debug("%s: io_uring I/O engine", b->name);
	vmm_debug("%s: %llu sectors%s%s%s", b->name, (unsigned long long)b->capacity,
		  b->ro ? ", read-only" : "", b->can_punch ? ", discard" : "",
		  b->can_punch || b->can_zero ? ", write-zeroes" : "");
	*out = b;
	return 0;
}

struct virtio_dev *virtio_blk_dev(struct virtio_blk *b)
{
	return &b->dev;
}

bool virtio_blk_uses_io_uring(const struct virtio_blk *b)
{
	return b->uring;
}

struct io_uring *virtio_blk_ring(struct virtio_blk *b)
{
	return b->uring ? &b->ring : NULL;
}

uint64_t virtio_blk_capacity(const struct virtio_blk *b)
{
	return b->capacity;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->dev.lock);
	drain(b);
	pthread_mutex_unlock(&b->dev.lock);
	if (b->uring) {
		ev_del(b->el, &b->evh);
		io_uring_queue_exit(&b->ring);
		close(b->efd);
	}
	close(b->fd);
	virtio_dev_destroy(&b->dev);
	free(b->reqs);
	free(b);
}
