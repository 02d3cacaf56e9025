/* virtio-net on a TAP device (virtio 1.x, section 5.1). Every frame crosses with the 12-byte
 * struct virtio_net_hdr_v1 in front, which the TAP understands (IFF_VNET_HDR), so the guest's
 * checksum and TSO requests reach the host kernel and the host's offloaded frames reach the
 * guest. The guest's headers are copied once, checked against what was negotiated, and the copy
 * is what the TAP gets.
 *
 * Flow control both ways, with nothing queued in vmm: tx pops a chain only when the last one was
 * written, and keeps a chain the TAP refused with EAGAIN until EPOLLOUT; rx reads the TAP only
 * while the guest has receive buffers, and waits for an rx kick otherwise. The fd is
 * level-triggered, so an event that used up its budget is simply reported again. */
#include "devices/virtio_net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtio 1.x and the TAP's default vnet header order are little-endian; so must the host be"
#endif

#define HDR_LEN sizeof(struct virtio_net_hdr_v1)
_Static_assert(sizeof(struct virtio_net_hdr_v1) == 12, "the virtio 1.x net header is 12 bytes");

/* The rx bounce buffer holds a header and the largest frame, plus one byte to see a longer one. */
#define RXBUF_LEN (HDR_LEN + VIRTIO_NET_MAX_FRAME + 1)

#define NET_FEATURES                                                             \
	((1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_CSUM) |              \
	 (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) | \
	 (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_HOST_TSO4) |  \
	 (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |   \
	 (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_RING_F_EVENT_IDX) |     \
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC))

struct virtio_net {
	struct virtio_dev dev;
	char name[IFNAMSIZ + 16]; /* "virtio-net TAPNAME" */
	struct virtio_net_config cfg;
	int fd;
	bool is_tap;
	char ifname[IFNAMSIZ];
	struct event_loop *el;
	struct ev_handler h;
	uint32_t interest; /* epoll events the fd is registered for; 0: not in the loop */
	bool host_gone;	   /* the fd reported an error or hang-up: link down, frames dropped */
	bool mrg;	   /* VIRTIO_NET_F_MRG_RXBUF was negotiated */

	/* tx: a chain the TAP refused with EAGAIN waits here, already checked, for EPOLLOUT. */
	bool tx_held;
	bool tx_more; /* the budget ran out with chains left: come back on EPOLLOUT */
	struct virtio_net_hdr_v1 tx_hdr;
	unsigned tx_iovcnt;
	struct iovec tx_iov[IOV_MAX];
	struct virtq_chain tx_chain;

	/* rx: a frame read from the fd (header first) and how far it got into the guest. */
	bool rx_stalled; /* no receive buffers: EPOLLIN is off until the guest kicks rx */
	size_t rx_len;	 /* bytes in rxbuf, header included; 0: no frame waiting */
	size_t rx_off;	 /* bytes of it already copied (mergeable buffers) */
	unsigned rx_nused;
	bool rx_have_first; /* rx_first holds a popped chain (without mergeable: one kept unused) */
	struct vring_used_elem rx_used[VIRTQ_MAX_SIZE];
	struct virtq_chain rx_first; /* the chain that gets the header */
	struct virtq_chain rx_cur;   /* the later ones of a mergeable frame */
	uint8_t *rxbuf;

	struct virtio_net_stats stats;
	/* Guest-triggered lines, per device and direction (used under the device lock). */
	struct log_ratelimit tx_rl, rx_rl;
};

/* ---- option parsing ---- */

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "xx:xx:xx:xx:xx:xx", exactly. */
static bool parse_mac(const char *s, size_t len, uint8_t mac[ETH_ALEN])
{
	if (len != 3 * ETH_ALEN - 1)
		return false;
	for (unsigned i = 0; i < ETH_ALEN; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < ETH_ALEN - 1 && s[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* What the kernel's dev_valid_name accepts, less '%' (a name template such as "tap%d" would make
 * a new TAP with a name nobody configured). */
static bool valid_ifname(const char *s, size_t len)
{
	if (len == 0 || len >= IFNAMSIZ)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] == '%' || s[i] == '\0' ||
		    (s[i] > 0 && s[i] <= ' ') || s[i] == 0x7f)
			return false;
	return true;
}

/* The user's text in an error line: control and non-ASCII bytes as \xNN, and cut short, so the
 * message stays one readable line whatever was typed. */
#define SHOWN_MAX (4 * 40 + 4)
static const char *shown(char q[SHOWN_MAX], const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (o + 4 >= SHOWN_MAX - 4) {
			memcpy(q + o, "...", 3);
			o += 3;
			break;
		}
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(q + o, SHOWN_MAX - o, "\\x%02x", c);
		else
			q[o++] = (char)c;
	}
	q[o] = '\0';
	return q;
}

int virtio_net_parse(const char *spec, struct virtio_net_opts *o, struct verr *e)
{
	static const char usage[] = "expected tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,mtu=N]";
	memset(o, 0, sizeof(*o));
	bool have_tap = false;
	char q[SHOWN_MAX];
	const char *p = spec;
	if (!*p)
		return verr_set(e, -EINVAL, "--net: empty value (%s)", usage);
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *eq = memchr(p, '=', len);
		if (!eq)
			return verr_set(e, -EINVAL, "--net: '%s' is not key=value (%s)",
					shown(q, p, len), usage);
		size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
		const char *v = eq + 1;
		if (klen == 3 && !memcmp(p, "tap", 3)) {
			if (have_tap)
				return verr_set(e, -EINVAL, "--net: tap= given twice");
			if (vlen == 0)
				return verr_set(e, -EINVAL, "--net: empty TAP name in tap=");
			if (vlen >= IFNAMSIZ)
				return verr_set(e, -EINVAL,
						"--net: TAP name '%s' is longer than %d characters",
						shown(q, v, vlen), IFNAMSIZ - 1);
			if (!valid_ifname(v, vlen))
				return verr_set(
				    e, -EINVAL,
				    "--net: '%s' is not a valid interface name (no '/', "
				    "':', '%%' or spaces, not '.' or '..')",
				    shown(q, v, vlen));
			memcpy(o->tap, v, vlen);
			o->tap[vlen] = '\0';
			have_tap = true;
		} else if (klen == 3 && !memcmp(p, "mac", 3)) {
			if (o->mac_given)
				return verr_set(e, -EINVAL, "--net: mac= given twice");
			if (!parse_mac(v, vlen, o->mac))
				return verr_set(
				    e, -EINVAL,
				    "--net: malformed MAC '%s' (six hex bytes with ':', "
				    "like 52:54:00:12:34:56)",
				    shown(q, v, vlen));
			if (o->mac[0] & 1)
				return verr_set(e, -EINVAL,
						"--net: MAC '%s' is a multicast address (the first "
						"byte must be even)",
						shown(q, v, vlen));
			static const uint8_t zero[ETH_ALEN];
			if (!memcmp(o->mac, zero, ETH_ALEN))
				return verr_set(e, -EINVAL, "--net: MAC '%s' is all zeros",
						shown(q, v, vlen));
			o->mac_given = true;
		} else if (klen == 3 && !memcmp(p, "mtu", 3)) {
			if (o->mtu)
				return verr_set(e, -EINVAL, "--net: mtu= given twice");
			unsigned long m = 0;
			size_t i = 0;
			for (; i < vlen && v[i] >= '0' && v[i] <= '9' && m <= 65535; i++)
				m = m * 10 + (unsigned long)(v[i] - '0');
			if (vlen == 0 || i != vlen || m < VIRTIO_NET_MIN_MTU || m > 65535)
				return verr_set(e, -EINVAL,
						"--net: mtu '%s' is not a number from %d to 65535",
						shown(q, v, vlen), VIRTIO_NET_MIN_MTU);
			o->mtu = (uint16_t)m;
		} else {
			return verr_set(e, -EINVAL, "--net: unknown key '%s' (%s)",
					shown(q, p, klen), usage);
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	if (!have_tap)
		return verr_set(e, -EINVAL, "--net: tap=NAME is missing (%s)", usage);
	if (!o->mac_given) {
		uint32_t h = fnv1a(o->tap);
		const uint8_t mac[ETH_ALEN] = {0x06, 0x00, h >> 24, h >> 16, h >> 8, h};
		memcpy(o->mac, mac, ETH_ALEN);
	}
	return 0;
}

/* ---- counters ---- */

/* A frame went through (tx: written to the fd; rx: given to the guest): n->stats for
 * virtio_net_get_stats (under the lock) and the device's lock-free counters for the metrics. */
static void count_frame(struct virtio_net *n, uint64_t *frames, uint64_t *bytes, size_t len)
{
	(*frames)++;
	*bytes += len;
	virtio_stat_add(&n->dev.stats.requests, 1);
	virtio_stat_add(&n->dev.stats.bytes, len);
}

/* A frame was dropped (tx_dropped or rx_dropped): also the device's errors. */
static void count_drop(struct virtio_net *n, uint64_t *dropped)
{
	(*dropped)++;
	virtio_stat_add(&n->dev.stats.errors, 1);
}

/* ---- the event loop registration ---- */

/* Registers the fd for `want` (level-triggered), or removes it for 0. Changes are rare (the
 * guest ran out of rx buffers, the TAP pushed back), so del + add is good enough. */
static void set_interest(struct virtio_net *n, uint32_t want)
{
	if (want == n->interest)
		return;
	if (n->interest)
		ev_del(n->el, &n->h);
	n->interest = 0;
	if (!want)
		return;
	int r = ev_add(n->el, &n->h, want);
	if (r < 0) {
		/* retried on every guest kick: rate-limited */
		static struct log_ratelimit rl;
		vmm_log_ratelimited(&rl, 5, "%s: cannot watch the TAP fd: %s", n->name,
				    strerror(-r));
		return;
	}
	n->interest = want;
}

static void update_interest(struct virtio_net *n)
{
	uint32_t want = 0;
	if (virtio_dev_running(&n->dev) && !n->host_gone) {
		if (!n->rx_stalled)
			want |= EPOLLIN;
		if (n->tx_held || n->tx_more)
			want |= EPOLLOUT;
	}
	set_interest(n, want);
}

/* ---- tx ---- */

/* Checks a tx header against the spec's driver rules and what was negotiated. Returns NULL or
 * what is wrong. */
static const char *tx_hdr_error(const struct virtio_net *n, const struct virtio_net_hdr_v1 *h,
				uint32_t frame_len)
{
	const struct virtio_dev *d = &n->dev;
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return "header flags other than NEEDS_CSUM";
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!virtio_has_feature(d, VIRTIO_NET_F_CSUM))
			return "NEEDS_CSUM without VIRTIO_NET_F_CSUM";
		if ((uint32_t)h->csum_start + h->csum_offset + 2 > frame_len)
			return "checksum position outside the frame";
	}
	switch (h->gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return NULL;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!virtio_has_feature(d, VIRTIO_NET_F_HOST_TSO4))
			return "TSOv4 without VIRTIO_NET_F_HOST_TSO4";
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!virtio_has_feature(d, VIRTIO_NET_F_HOST_TSO6))
			return "TSOv6 without VIRTIO_NET_F_HOST_TSO6";
		break;
	default:
		return "a GSO type that was not negotiated";
	}
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return "GSO without NEEDS_CSUM";
	if (h->gso_size == 0)
		return "GSO with gso_size 0";
	return NULL;
}

/* Checks the chain in tx_chain and builds tx_iov: our copy of the header, then the frame from
 * the chain's readable buffers. Returns false (logged) when the frame is to be dropped. */
static bool tx_prepare(struct virtio_net *n)
{
	const struct virtq_chain *c = &n->tx_chain;
	if (c->out_bytes < HDR_LEN + ETH_HLEN) {
		vmm_log_ratelimited(&n->tx_rl, 5,
				    "%s: tx: dropped a chain of %u bytes (header and an "
				    "Ethernet header need %zu)",
				    n->name, c->out_bytes, HDR_LEN + ETH_HLEN);
		return false;
	}
	uint32_t frame_len = c->out_bytes - HDR_LEN;
	if (frame_len > VIRTIO_NET_MAX_FRAME) {
		vmm_log_ratelimited(&n->tx_rl, 5,
				    "%s: tx: dropped a frame of %u bytes (largest %u)", n->name,
				    frame_len, VIRTIO_NET_MAX_FRAME);
		return false;
	}
	virtq_chain_read(c, 0, &n->tx_hdr, HDR_LEN);
	const char *why = tx_hdr_error(n, &n->tx_hdr, frame_len);
	if (why) {
		vmm_log_ratelimited(&n->tx_rl, 5, "%s: tx: dropped a frame with %s", n->name, why);
		return false;
	}
	n->tx_hdr.num_buffers = 0;

	/* The frame: the readable buffers past the header's HDR_LEN bytes. */
	unsigned cnt = 0;
	n->tx_iov[cnt++] = (struct iovec){&n->tx_hdr, HDR_LEN};
	size_t skip = HDR_LEN;
	for (unsigned i = 0; i < c->nout; i++) {
		size_t len = c->iov[i].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		if (cnt == IOV_MAX) {
			vmm_log_ratelimited(&n->tx_rl, 5,
					    "%s: tx: dropped a frame in more than %d pieces",
					    n->name, IOV_MAX - 1);
			return false;
		}
		n->tx_iov[cnt++] = (struct iovec){(uint8_t *)c->iov[i].iov_base + skip, len - skip};
		skip = 0;
	}
	n->tx_iovcnt = cnt;
	return true;
}

/* Writes the held frame. Returns false when the fd is full (the chain stays held), true when
 * the chain was given back (written, or dropped on an error). */
static bool tx_flush(struct virtio_net *n)
{
	ssize_t w;
	struct msghdr m = {.msg_iov = n->tx_iov, .msg_iovlen = n->tx_iovcnt};
	do /* a socket whose peer is gone must not raise SIGPIPE */
		w = n->is_tap ? writev(n->fd, n->tx_iov, (int)n->tx_iovcnt)
			      : sendmsg(n->fd, &m, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	uint32_t frame_len = n->tx_chain.out_bytes - HDR_LEN;
	if (w < 0) {
		/* EINVAL: the kernel refused the header; EIO: the TAP is down. */
		int err = errno;
		vmm_log_ratelimited(
		    &n->tx_rl, 5, "%s: tx: the TAP refused a frame of %u bytes: %s%s%s", n->name,
		    frame_len, strerror(err), err == EIO ? "; is it up? ip link set up dev " : "",
		    err == EIO ? n->ifname : "");
		count_drop(n, &n->stats.tx_dropped);
	} else {
		count_frame(n, &n->stats.tx_frames, &n->stats.tx_bytes, frame_len);
	}
	n->tx_held = false;
	virtq_push(&n->dev.vq[VIRTIO_NET_TXQ], &n->tx_chain, 0);
	return true;
}

static void tx_process(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->vq[VIRTIO_NET_TXQ];
	unsigned budget = VIRTIO_NET_BUDGET;
	bool pushed = false;

	n->tx_more = false;
	if (n->tx_held) {
		if (!tx_flush(n))
			return;
		pushed = true;
	}
	for (unsigned round = 0;; round++) {
		/* No kicks while we work: we look at the ring again before sleeping. */
		virtq_enable_kicks(q, false);
		while (budget) {
			int r = virtq_pop(q, &n->tx_chain);
			if (r < 0) {
				virtio_dev_fail(d, "tx queue: malformed descriptor chain");
				goto out;
			}
			if (r == 0)
				break;
			budget--;
			if (n->host_gone || !tx_prepare(n)) {
				count_drop(n, &n->stats.tx_dropped);
				virtq_push(q, &n->tx_chain, 0);
				pushed = true;
				continue;
			}
			n->tx_held = true;
			if (!tx_flush(n))
				goto out; /* EAGAIN: EPOLLOUT brings us back; kicks stay off */
			pushed = true;
		}
		if (!budget || round == VIRTIO_NET_BUDGET) {
			n->tx_more = true; /* EPOLLOUT fires at once on a writable fd */
			break;
		}
		if (!virtq_enable_kicks(q, true))
			break;
	}
out:
	if (pushed)
		virtio_dev_notify_used(d, VIRTIO_NET_TXQ);
}

/* ---- rx ---- */

static void host_gone(struct virtio_net *n, const char *what, int err);

/* Checks the frame just read into rxbuf (the host's header, which a socketpair in tests lets
 * anyone write) against what the guest accepts. Returns NULL or why it is dropped. */
static const char *rx_frame_error(struct virtio_net *n, size_t len)
{
	const struct virtio_dev *d = &n->dev;
	if (len < HDR_LEN + ETH_HLEN)
		return "shorter than a header and an Ethernet header";
	if (len > HDR_LEN + VIRTIO_NET_MAX_FRAME)
		return "larger than the largest frame";
	struct virtio_net_hdr_v1 h;
	memcpy(&h, n->rxbuf, HDR_LEN);
	uint32_t frame_len = (uint32_t)(len - HDR_LEN);
	if (!virtio_has_feature(d, VIRTIO_NET_F_GUEST_CSUM)) {
		/* The TAP finishes checksums itself then (no TUN_F_CSUM). */
		if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return "with a partial checksum the guest cannot finish";
		h.flags = 0; /* nor DATA_VALID: the spec wants flags 0 then */
	}
	h.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
	if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (uint32_t)h.csum_start + h.csum_offset + 2 > frame_len)
		return "a checksum position outside the frame";
	switch (h.gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		break;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO4))
			return "TSOv4 the guest did not accept";
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO6))
			return "TSOv6 the guest did not accept";
		break;
	default:
		return "a GSO type the guest did not accept";
	}
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE &&
	    (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_size == 0))
		return "GSO without NEEDS_CSUM or gso_size";
	h.num_buffers = 1;
	memcpy(n->rxbuf, &h, HDR_LEN);
	return NULL;
}

static void rx_set_num_buffers(struct virtio_net *n, uint16_t num)
{
	memcpy(n->rxbuf + offsetof(struct virtio_net_hdr_v1, num_buffers), &num, sizeof(num));
}

/* Without mergeable buffers: the whole frame into one chain. Returns 1 when the frame is done
 * with (delivered or dropped), 0 when there is no buffer, -1 when the device failed. */
static int rx_place_one(struct virtio_net *n, bool *pushed)
{
	struct virtq *q = &n->dev.vq[VIRTIO_NET_RXQ];
	if (!n->rx_have_first) {
		int r = virtq_pop(q, &n->rx_first);
		if (r < 0) {
			virtio_dev_fail(&n->dev, "rx queue: malformed descriptor chain");
			return -1;
		}
		if (r == 0)
			return 0;
		n->rx_have_first = true;
	}
	if (n->rx_first.in_bytes < n->rx_len) {
		/* The chain stays for a smaller frame. */
		vmm_log_ratelimited(&n->rx_rl, 5,
				    "%s: rx: dropped a frame of %zu bytes: the receive buffer "
				    "holds %u with the header, and mergeable buffers are off",
				    n->name, n->rx_len - HDR_LEN, n->rx_first.in_bytes);
		count_drop(n, &n->stats.rx_dropped);
		n->rx_len = 0;
		return 1;
	}
	rx_set_num_buffers(n, 1);
	virtq_chain_write(&n->rx_first, 0, n->rxbuf, n->rx_len);
	virtq_push(q, &n->rx_first, (uint32_t)n->rx_len);
	count_frame(n, &n->stats.rx_frames, &n->stats.rx_bytes, n->rx_len - HDR_LEN);
	n->rx_have_first = false;
	n->rx_len = 0;
	*pushed = true;
	return 1;
}

/* With mergeable buffers: the frame over as many chains as it takes, all given back at once
 * with num_buffers in the first one's header. Returns like rx_place_one; on 0 the chains taken
 * so far stay with the frame until the guest posts more. */
static int rx_place_mrg(struct virtio_net *n, bool *pushed)
{
	struct virtq *q = &n->dev.vq[VIRTIO_NET_RXQ];
	bool truncated = false;
	while (n->rx_off < n->rx_len) {
		if (n->rx_nused == q->size) {
			/* Every descriptor the guest has is ours: no more can come. Give the
			 * buffers back with what fit, as a plain frame the guest will drop. */
			truncated = true;
			break;
		}
		struct virtq_chain *c = n->rx_nused ? &n->rx_cur : &n->rx_first;
		int r = virtq_pop(q, c);
		if (r < 0) {
			virtio_dev_fail(&n->dev, "rx queue: malformed descriptor chain");
			return -1;
		}
		if (r == 0)
			return 0;
		if (c->in_bytes < HDR_LEN) {
			virtio_dev_fail(&n->dev,
					"rx queue: a mergeable receive buffer of %u bytes is "
					"smaller than the %zu-byte header",
					c->in_bytes, HDR_LEN);
			return -1;
		}
		size_t chunk = n->rx_len - n->rx_off;
		if (chunk > c->in_bytes)
			chunk = c->in_bytes;
		virtq_chain_write(c, 0, n->rxbuf + n->rx_off, chunk);
		n->rx_used[n->rx_nused++] = (struct vring_used_elem){c->head, (uint32_t)chunk};
		n->rx_off += chunk;
	}
	if (truncated) {
		vmm_log_ratelimited(&n->rx_rl, 5,
				    "%s: rx: a frame of %zu bytes does not fit in all %u receive "
				    "buffers; given back truncated",
				    n->name, n->rx_len - HDR_LEN, n->rx_nused);
		memset(n->rxbuf, 0, HDR_LEN);
		count_drop(n, &n->stats.rx_dropped);
	} else {
		count_frame(n, &n->stats.rx_frames, &n->stats.rx_bytes, n->rx_len - HDR_LEN);
	}
	rx_set_num_buffers(n, (uint16_t)n->rx_nused);
	virtq_chain_write(&n->rx_first, 0, n->rxbuf, HDR_LEN);
	virtq_push_batch(q, n->rx_used, n->rx_nused);
	n->rx_len = 0;
	n->rx_off = 0;
	n->rx_nused = 0;
	*pushed = true;
	return 1;
}

/* No buffer for the next step: ask for a kick, and stall unless buffers came meanwhile.
 * Returns true when stalled. */
static bool rx_stall(struct virtio_net *n)
{
	struct virtq *q = &n->dev.vq[VIRTIO_NET_RXQ];
	if (virtq_enable_kicks(q, true)) {
		virtq_enable_kicks(q, false);
		return false;
	}
	n->rx_stalled = true;
	return true;
}

static void rx_process(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->vq[VIRTIO_NET_RXQ];
	unsigned budget = VIRTIO_NET_BUDGET;
	bool pushed = false;

	n->rx_stalled = false;
	virtq_enable_kicks(q, false);
	/* Each turn reads a frame (budget), places one, or finds buffers that just came; the
	 * second bound only guards against a ring that says "available" and gives nothing. */
	for (unsigned turns = 0; budget && turns < 4 * VIRTIO_NET_BUDGET; turns++) {
		if (!n->rx_len) {
			/* Read only with a buffer to put the frame in. */
			if (!n->rx_have_first && !virtq_has_avail(q)) {
				if (rx_stall(n))
					break;
				continue;
			}
			ssize_t r = read(n->fd, n->rxbuf, RXBUF_LEN);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/* Any other error would be reported again at once
				 * (level-triggered): the fd is unusable. */
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					host_gone(n, "read", errno);
				break;
			}
			budget--;
			const char *why = rx_frame_error(n, (size_t)r);
			if (why) {
				vmm_log_ratelimited(&n->rx_rl, 5, "%s: rx: dropped a frame %s",
						    n->name, why);
				count_drop(n, &n->stats.rx_dropped);
				continue;
			}
			n->rx_len = (size_t)r;
			n->rx_off = 0;
			n->rx_nused = 0;
		}
		int p = n->mrg ? rx_place_mrg(n, &pushed) : rx_place_one(n, &pushed);
		if (p < 0)
			break;
		if (p == 0 && rx_stall(n))
			break;
	}
	if (pushed)
		virtio_dev_notify_used(d, VIRTIO_NET_RXQ);
}

/* ---- events ---- */

/* The fd failed for good (the TAP was deleted, the socket's peer closed; err 0: a hang-up): link
 * down, and from now on tx chains are given back unsent and rx gets nothing. */
static void host_gone(struct virtio_net *n, const char *what, int err)
{
	vmm_log("%s: the TAP failed (%s: %s); link down, frames are dropped from now on", n->name,
		what, err ? strerror(err) : "hang-up");
	n->host_gone = true;
	n->cfg.status &= (uint16_t)~VIRTIO_NET_S_LINK_UP;
	virtio_dev_config_changed(&n->dev);
	/* Give back what tx holds and what waits in the ring (kicks may be off since the TAP
	 * pushed back); later chains are dropped as they come. */
	if (n->tx_held) {
		n->tx_held = false;
		count_drop(n, &n->stats.tx_dropped);
		virtq_push(&n->dev.vq[VIRTIO_NET_TXQ], &n->tx_chain, 0);
	}
	tx_process(n);
}

/* The error pending on fd (SO_ERROR for sockets), or EIO when there is none to tell. */
static int fd_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0)
		return EIO;
	return err;
}

static void net_fd_event(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	pthread_mutex_lock(&n->dev.lock);
	if (virtio_dev_running(&n->dev) && !n->host_gone) {
		if (events & (EPOLLERR | EPOLLHUP))
			host_gone(n, "poll", (events & EPOLLERR) ? fd_error(n->fd) : 0);
		else {
			if (events & EPOLLOUT)
				tx_process(n);
			if (events & EPOLLIN)
				rx_process(n);
		}
	}
	update_interest(n);
	pthread_mutex_unlock(&n->dev.lock);
}

/* ---- virtio_dev_ops ---- */

static void net_config_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_net *n = d->priv;
	memcpy(buf, (const uint8_t *)&n->cfg + off, len);
}

static void net_config_write(struct virtio_dev *d, uint32_t off, const void *buf, uint32_t len)
{
	/* Read-only for a virtio 1.x driver (only legacy drivers wrote the MAC here). */
	(void)d;
	(void)off;
	(void)buf;
	(void)len;
}

/* What the TAP may hand us, from what the guest accepts (TSO needs checksum offload too). */
static unsigned tap_offloads(const struct virtio_dev *d)
{
	unsigned off = 0;
	if (!virtio_has_feature(d, VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	off |= TUN_F_CSUM;
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	return off;
}

static void net_drop_state(struct virtio_net *n)
{
	n->tx_held = false;
	n->tx_more = false;
	n->rx_stalled = false;
	n->rx_len = 0;
	n->rx_off = 0;
	n->rx_nused = 0;
	n->rx_have_first = false;
}

static int net_activate(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;
	/* The guest activates the device as often as it resets it: rate-limited lines. */
	static struct log_ratelimit rl;
	if (!d->vq[VIRTIO_NET_RXQ].ready || !d->vq[VIRTIO_NET_TXQ].ready) {
		vmm_log_ratelimited(&rl, 5, "%s: the driver did not set up both queues", n->name);
		return -EINVAL;
	}
	if (n->is_tap && ioctl(n->fd, TUNSETOFFLOAD, tap_offloads(d)) < 0) {
		int err = errno;
		vmm_log_ratelimited(&rl, 5, "%s: TAP %s: TUNSETOFFLOAD: %s", n->name, n->ifname,
				    strerror(err));
		return -err;
	}
	net_drop_state(n);
	n->mrg = virtio_has_feature(d, VIRTIO_NET_F_MRG_RXBUF);
	update_interest(n);
	/* Frames may already wait in the TAP: EPOLLIN (level-triggered) reports them. */
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;
	net_drop_state(n);
	set_interest(n, 0);
}

static void net_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_net *n = d->priv;
	if (!virtio_dev_running(d))
		return;
	if (q == VIRTIO_NET_TXQ) {
		tx_process(n); /* with the host gone, it gives the chains back unsent */
	} else if (q == VIRTIO_NET_RXQ && !n->host_gone) {
		/* New buffers: take what waits in the TAP now, and watch it again. */
		rx_process(n);
	}
	update_interest(n);
}

static const struct virtio_dev_ops net_ops = {
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .reset = net_reset,
    .queue_notify = net_queue_notify,
};

/* ---- life cycle ---- */

static int tap_setup(int fd, const char *name, struct verr *e)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = errno;
		switch (err) {
		case EPERM:
		case EACCES:
			return verr_set(
			    e, -err,
			    "TAP %s: TUNSETIFF: %s (needs CAP_NET_ADMIN, or a TAP owned "
			    "by this user: ip tuntap add %s mode tap user $USER)",
			    name, strerror(err), name);
		case EBUSY:
			return verr_set(e, -err,
					"TAP %s: TUNSETIFF: %s (another process has it open)", name,
					strerror(err));
		case EINVAL:
			return verr_set(e, -err,
					"TAP %s: TUNSETIFF: %s (an interface of that name exists "
					"and is not a single-queue TAP)",
					name, strerror(err));
		default:
			return verr_set(e, -err, "TAP %s: TUNSETIFF: %s", name, strerror(err));
		}
	}
	int sz = (int)HDR_LEN;
	if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
		return verr_set(e, -errno, "TAP %s: TUNSETVNETHDRSZ %d: %s", name, sz,
				strerror(errno));
	/* Nothing offloaded until the guest says what it takes (at DRIVER_OK). */
	if (ioctl(fd, TUNSETOFFLOAD, 0u) < 0)
		return verr_set(e, -errno, "TAP %s: TUNSETOFFLOAD: %s", name, strerror(errno));
	return 0;
}

int virtio_net_create_fd(struct virtio_net **out, const struct virtio_net_opts *o, int fd,
			 bool is_tap, const struct guest_mem *mem, struct event_loop *el,
			 struct verr *e)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r =
		    verr_set(e, -errno, "TAP %s: fcntl O_NONBLOCK: %s", o->tap, strerror(errno));
		close(fd);
		return r;
	}
	struct virtio_net *n = calloc(1, sizeof(*n));
	uint8_t *rxbuf = malloc(RXBUF_LEN);
	if (!n || !rxbuf) {
		free(n);
		free(rxbuf);
		close(fd);
		return verr_set(e, -ENOMEM, "virtio-net %s: out of memory", o->tap);
	}
	n->fd = fd;
	n->is_tap = is_tap;
	n->el = el;
	n->rxbuf = rxbuf;
	snprintf(n->ifname, sizeof(n->ifname), "%s", o->tap);
	snprintf(n->name, sizeof(n->name), "virtio-net %s", o->tap);
	memcpy(n->cfg.mac, o->mac, ETH_ALEN);
	n->cfg.status = VIRTIO_NET_S_LINK_UP;
	n->cfg.max_virtqueue_pairs = 1;
	n->cfg.speed = UINT32_MAX; /* SPEED_UNKNOWN */
	n->cfg.duplex = 0xff;	   /* DUPLEX_UNKNOWN */
	n->cfg.mtu = o->mtu;
	n->h = (struct ev_handler){.fd = fd, .fn = net_fd_event, .opaque = n};
	virtio_dev_init(&n->dev, n->name, VIRTIO_ID_NET, &net_ops, n,
			NET_FEATURES | (o->mtu ? 1ull << VIRTIO_NET_F_MTU : 0), sizeof(n->cfg), 2,
			mem);
	*out = n;
	return 0;
}

int virtio_net_create(struct virtio_net **out, const struct virtio_net_opts *o,
		      const struct guest_mem *mem, struct event_loop *el, struct verr *e)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return verr_set(e, -err, "TAP %s: cannot open /dev/net/tun: %s%s", o->tap,
				strerror(err),
				err == ENOENT ? " (load the tun module: modprobe tun)" : "");
	}
	int r = tap_setup(fd, o->tap, e);
	if (r < 0) {
		close(fd);
		return r;
	}
	return virtio_net_create_fd(out, o, fd, true, mem, el, e);
}

struct virtio_dev *virtio_net_dev(struct virtio_net *n)
{
	return &n->dev;
}

void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *s)
{
	pthread_mutex_lock(&n->dev.lock);
	*s = n->stats;
	pthread_mutex_unlock(&n->dev.lock);
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	set_interest(n, 0);
	close(n->fd);
	virtio_dev_destroy(&n->dev);
	free(n->rxbuf);
	free(n);
}
