/* libFuzzer target for virtio-net: a hostile driver (features, both queues' rings and buffers
 * in guest RAM, kicks, ring writes while the device works, resets) and a host that sends any
 * bytes as frames, over a SOCK_SEQPACKET socketpair in place of the TAP. Besides the sanitizers
 * and the fuzzer's hang and memory limits, each frame the device hands to the host side must obey
 * the header rules for what was negotiated, and the device may never give back more chains than
 * it took nor hold more than a queue's size.
 *
 * Input (little endian): struct fuzz_hdr; spec_len bytes of a --net value for virtio_net_parse;
 * ram_len bytes copied into guest RAM from gpa 0 (the rx rings sit at RX_DESC.., the tx rings at
 * TX_DESC..); then operations until the input ends, each an op byte and its arguments (see the
 * switch below). */
#include "devices/virtio_net.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fuzz_hdr {
	uint16_t features; /* bit i: feature_map[i] acked */
	uint8_t rx_log2;   /* queue sizes: 1 << (v % 9) */
	uint8_t tx_log2;
	uint16_t ram_len;
	uint8_t spec_len; /* the --net value that follows; when it does not parse, tap=fuzz0 */
} __attribute__((packed));

enum {
	OP_FRAME,     /* u16 len, len bytes: one message to the device (header + frame) */
	OP_BIG_FRAME, /* 12-byte header, u16 len, u8 extra, u8 fill: a frame of len + extra */
	OP_KICK_TX,
	OP_KICK_RX,
	OP_PUMP,  /* the event loop, until idle (bounded) */
	OP_DRAIN, /* the host reads what the guest sent, and checks it */
	OP_POST,  /* u8 queue, u8 n: the driver moves avail->idx on by n */
	OP_POKE,  /* u16 gpa, u8 len, len bytes: the driver writes guest RAM */
	OP_RESET, /* status 0, then the same features and queues again */
	OP_HANGUP,
	OP_CONFIG, /* u8 off, u8 len: the driver reads the configuration space */
	OP_COUNT
};

#define REGION0	    0x20000u
#define REGION1_GPA 0x40000u
#define REGION1	    0x10000u
#define RX_DESC	    0x0000u /* desc 4 KiB, avail at +0x1000, used at +0x1400 */
#define TX_DESC	    0x2000u
#define HDR	    sizeof(struct virtio_net_hdr_v1)

static const unsigned feature_map[] = {
    VIRTIO_NET_F_CSUM,	     VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_TSO4,  VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_F_MRG_RXBUF,  VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
    VIRTIO_NET_F_MAC,	     VIRTIO_NET_F_STATUS,
};

static struct guest_mem mem;
static struct event_loop el;
static uint8_t msg[HDR + VIRTIO_NET_MAX_FRAME + 512];

struct run {
	struct virtio_net *net;
	struct virtio_dev *d;
	int peer;
	uint64_t features;
	uint16_t size[2];
};

static void no_irq(void *opaque)
{
	(void)opaque;
}

static void check_queues(const struct run *r)
{
	for (unsigned i = 0; i < 2; i++) {
		const struct virtq *q = &r->d->vq[i];
		if (q->avail && (uint16_t)(q->last_avail - q->used_idx) > q->size)
			abort(); /* gave back more than it took, or holds more than size */
	}
}

static void driver_start(struct run *r)
{
	struct virtio_dev *d = r->d;
	const uint32_t base[2] = {RX_DESC, TX_DESC};
	pthread_mutex_lock(&d->lock);
	d->acked_features = r->features;
	d->status =
	    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	bool ok = true;
	for (unsigned i = 0; i < 2; i++) {
		struct virtq *q = &d->vq[i];
		q->size = r->size[i];
		q->desc_gpa = base[i];
		q->avail_gpa = base[i] + 0x1000;
		q->used_gpa = base[i] + 0x1400;
		q->ready = true;
		if (virtq_activate(q, &mem, virtio_has_feature(d, VIRTIO_RING_F_EVENT_IDX),
				   virtio_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC)) < 0)
			abort(); /* fixed, valid ring addresses */
	}
	d->status |= VIRTIO_CONFIG_S_DRIVER_OK;
	if (d->ops->activate(d) < 0)
		ok = false;
	if (!ok)
		d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	pthread_mutex_unlock(&d->lock);
}

static void driver_reset(struct run *r)
{
	struct virtio_dev *d = r->d;
	pthread_mutex_lock(&d->lock);
	d->ops->reset(d);
	for (unsigned i = 0; i < d->nr_queues; i++)
		virtq_reset(&d->vq[i]);
	d->status = 0;
	pthread_mutex_unlock(&d->lock);
}

static void kick(struct run *r, unsigned q)
{
	pthread_mutex_lock(&r->d->lock);
	r->d->ops->queue_notify(r->d, q);
	pthread_mutex_unlock(&r->d->lock);
	check_queues(r);
}

static void pump(struct run *r)
{
	for (int i = 0; i < 8; i++)
		if (ev_run_once(&el, 0) <= 0)
			break;
	check_queues(r);
}

/* What the device gives the host must follow the driver rules it enforces. */
static void check_tx_frame(const struct run *r, const uint8_t *m, ssize_t n)
{
	if (n < (ssize_t)(HDR + 14) || n > (ssize_t)(HDR + VIRTIO_NET_MAX_FRAME))
		abort();
	struct virtio_net_hdr_v1 h;
	memcpy(&h, m, HDR);
	uint32_t len = (uint32_t)(n - HDR);
	if (h.num_buffers != 0 || (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM))
		abort();
	if (h.flags && (!(r->features & (1ull << VIRTIO_NET_F_CSUM)) ||
			(uint32_t)h.csum_start + h.csum_offset + 2 > len))
		abort();
	if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return;
	unsigned need = h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4	 ? VIRTIO_NET_F_HOST_TSO4
			: h.gso_type == VIRTIO_NET_HDR_GSO_TCPV6 ? VIRTIO_NET_F_HOST_TSO6
								 : 64;
	if (need == 64 || !(r->features & (1ull << need)) || !h.flags || !h.gso_size)
		abort();
}

static void drain(struct run *r)
{
	if (r->peer < 0)
		return;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(r->peer, msg, sizeof(msg), MSG_DONTWAIT);
		if (n < 0)
			break;
		check_tx_frame(r, msg, n);
	}
}

/* Reads `len` input bytes, or fails when the input ends first. */
static bool take(const uint8_t **p, size_t *left, void *out, size_t len)
{
	if (*left < len)
		return false;
	memcpy(out, *p, len);
	*p += len;
	*left -= len;
	return true;
}

/* The option parser on the input's --net value: what it accepts must be usable, what it rejects
 * must come with a one-line message. */
static bool parse_spec(const uint8_t **p, size_t *left, uint8_t len, struct virtio_net_opts *o)
{
	char spec[256];
	if (!take(p, left, spec, len))
		return false;
	spec[len] = '\0';
	struct verr e = {0};
	if (virtio_net_parse(spec, o, &e) == 0) {
		static const uint8_t zero[ETH_ALEN];
		size_t n = strnlen(o->tap, sizeof(o->tap));
		if (n == 0 || n >= IFNAMSIZ || strchr(o->tap, '/') || (o->mac[0] & 1) ||
		    !memcmp(o->mac, zero, ETH_ALEN))
			abort();
		return true;
	}
	if (e.code != -EINVAL || strncmp(e.msg, "--net: ", 7) || strchr(e.msg, '\n'))
		abort();
	if (virtio_net_parse("tap=fuzz0", o, NULL) < 0)
		abort();
	return true;
}

static void send_frame(struct run *r, size_t len)
{
	if (r->peer >= 0)
		(void)send(r->peer, msg, len, MSG_DONTWAIT); /* a full socket drops it: fine */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mem.map) {
		const struct guest_region layout[] = {{.gpa = 0, .size = REGION0},
						      {.gpa = REGION1_GPA, .size = REGION1}};
		if (guest_mem_init(&mem, layout, 2) < 0 || ev_init(&el) < 0)
			abort();
	}
	struct fuzz_hdr h;
	const uint8_t *p = data;
	size_t left = size;
	if (!take(&p, &left, &h, sizeof(h)))
		return -1;
	struct virtio_net_opts o;
	if (!parse_spec(&p, &left, h.spec_len, &o))
		return -1;
	memset(mem.map, 0, mem.map_len);
	size_t ram = h.ram_len < left ? h.ram_len : left;
	memcpy(mem.region[0].host, p, ram < REGION0 ? ram : REGION0);
	p += ram;
	left -= ram;

	struct run r = {.peer = -1};
	for (unsigned i = 0; i < sizeof(feature_map) / sizeof(feature_map[0]); i++)
		if (h.features & (1u << i))
			r.features |= 1ull << feature_map[i];
	r.features |= 1ull << VIRTIO_F_VERSION_1;
	r.size[0] = (uint16_t)(1u << (h.rx_log2 % 9));
	r.size[1] = (uint16_t)(1u << (h.tx_log2 % 9));

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	r.peer = sv[1];
	if (virtio_net_create_fd(&r.net, &o, sv[0], false, &mem, &el, NULL) < 0)
		abort();
	r.d = virtio_net_dev(r.net);
	r.d->raise_irq = no_irq;
	driver_start(&r);

	uint8_t op;
	while (take(&p, &left, &op, 1)) {
		switch (op % OP_COUNT) {
		case OP_FRAME: {
			uint16_t len;
			if (!take(&p, &left, &len, 2))
				break;
			if (len > left)
				len = (uint16_t)left;
			take(&p, &left, msg, len);
			send_frame(&r, len);
			break;
		}
		case OP_BIG_FRAME: {
			uint16_t len;
			uint8_t extra, fill;
			if (!take(&p, &left, msg, HDR) || !take(&p, &left, &len, 2) ||
			    !take(&p, &left, &extra, 1) || !take(&p, &left, &fill, 1))
				break;
			size_t flen = (size_t)len + extra;
			memset(msg + HDR, fill, flen);
			send_frame(&r, HDR + flen);
			break;
		}
		case OP_KICK_TX:
			kick(&r, VIRTIO_NET_TXQ);
			break;
		case OP_KICK_RX:
			kick(&r, VIRTIO_NET_RXQ);
			break;
		case OP_PUMP:
			pump(&r);
			break;
		case OP_DRAIN:
			drain(&r);
			break;
		case OP_POST: {
			uint8_t q, n;
			if (!take(&p, &left, &q, 1) || !take(&p, &left, &n, 1))
				break;
			uint16_t *idx = (uint16_t *)(mem.region[0].host +
						     ((q & 1) ? TX_DESC : RX_DESC) + 0x1000 + 2);
			__atomic_store_n(idx, (uint16_t)(*idx + n), __ATOMIC_RELEASE);
			break;
		}
		case OP_POKE: {
			uint16_t gpa;
			uint8_t len;
			if (!take(&p, &left, &gpa, 2) || !take(&p, &left, &len, 1))
				break;
			if (len > left)
				len = (uint8_t)left;
			uint32_t at = gpa % (REGION0 - len + 1);
			take(&p, &left, mem.region[0].host + at, len);
			break;
		}
		case OP_RESET:
			driver_reset(&r);
			driver_start(&r);
			break;
		case OP_HANGUP:
			if (r.peer >= 0) {
				close(r.peer);
				r.peer = -1;
			}
			break;
		case OP_CONFIG: {
			uint8_t off, len, buf[256];
			if (!take(&p, &left, &off, 1) || !take(&p, &left, &len, 1))
				break;
			if ((uint32_t)off + len > r.d->config_len)
				break; /* the transport's check */
			r.d->ops->config_read(r.d, off, buf, len);
			if (off == 0 && len >= ETH_ALEN && memcmp(buf, o.mac, ETH_ALEN))
				abort();
			break;
		}
		}
	}
	pump(&r);
	drain(&r);
	driver_reset(&r);
	virtio_net_destroy(r.net);
	if (r.peer >= 0)
		close(r.peer);
	return 0;
}
