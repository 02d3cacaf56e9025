/* libFuzzer target for virtio-vsock: a hostile guest driver sends tx packet chains (headers and
 * payloads from the input, with switches that make them pass the address and length checks so
 * the connection state machine is reached), posts rx buffers of any size, and resets the device;
 * host programs on real Unix sockets connect (well-formed or garbage CONNECT lines), accept the
 * guest's connections, write, read, half-close and close. Every packet the device gives the
 * guest is checked, and after each input the device is destroyed and must leave no fd behind.
 *
 * Input: byte 0 = features (bit 0 event idx, bit 1 indirect descriptors), then commands, each an
 * opcode byte (value % 14) and its operands:
 *   0 tx:       flags, 44 header bytes, u16 payload length (% 4097), payload (zero-padded).
 *               flags: 1 src_cid = guest, 2 dst_cid = host, 4 type = STREAM, 8 len = payload,
 *               16 op = 1 + op % 7, 32 ports answer the last rx packet, 64 dst_port = the host
 *               listener's port, 128 header split over two descriptors
 *   1 post rx:  count (% 64 + 1), size code (< 8: code * 6 bytes, 8: a bare header, 9: header
 *               and 1 byte, else 44 + 16 * code)
 *   2 connect:  a host program connects to PATH; b: bit 7 set = b & 63 raw bytes follow, else
 *               "CONNECT <b & 7>\n"
 *   3 accept:   the host listener takes the guest's next connection
 *   4 write:    host socket b % 16 writes (b2 + 1) * 64 bytes
 *   5 read:     host socket b % 16 reads what it can
 *   6 close:    host socket b % 16: bit 7 set = shutdown(SHUT_WR), else close
 *   7 pump:     run the event loop until idle and check the rx packets
 *   8 reset:    the driver resets the device and starts it again
 *   9 parse:    length (% 64), that many bytes as a --vsock value for virtio_vsock_parse
 *  10 bulk:     count (% 16 + 1), size code: that many valid RW packets of (code + 1) * 256
 *               bytes answering the last rx packet (fills host sockets and the device's buffers)
 *  11 raw tx:   length, that many bytes as the whole (readable) chain: short headers
 *  12 burst:    count (% 128 + 1), flags, 44 header bytes: that many header-only chains with
 *               ports counting up, posted with one kick (more than the device's tx budget)
 *  13 break:    b: an out-of-range head on the rx (b & 1) or tx queue: the device fails */
#include "devices/virtio_vsock.h"

#include <dirent.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CID	      3u
#define HDR	      ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define QSZ	      128u
#define RING_GPA(q)   (0x4000ull * (q))
#define RXBUF_GPA     0x10000ull
#define RXBUF_STRIDE  0x2000ull
#define TXHDR_GPA     0x50000ull
#define TXDATA_GPA    0x60000ull
#define TXDATA_STRIDE 0x11000ull /* 64 KiB of payload after 24 bytes of a split header */
#define TX_SLOTS      (QSZ / 2)
#define MEM_SIZE      (8u << 20)
#define LISTEN_PORT   1024u
#define NHOST	      16

static struct guest_mem mem;
static struct event_loop el;
static char path[96];
static int listen_fd = -1;
static int base_fds;
static struct virtio_vsock *vs;
static struct virtio_dev *d;
static uint16_t avail_idx[3], used_idx[3];
static uint32_t rx_len[QSZ];
static int host[NHOST];
static uint32_t last_src = 0, last_dst = 0;
static uint8_t scratch[65536];

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static size_t take(struct in *in, void *dst, size_t len)
{
	size_t n = len < in->n ? len : in->n;
	memcpy(dst, in->p, n);
	memset((uint8_t *)dst + n, 0, len - n);
	in->p += n;
	in->n -= n;
	return n;
}

static void *gp(uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&mem, gpa, len);
	if (!p)
		abort();
	return p;
}

static struct vring_desc *desc(unsigned q, unsigned i)
{
	return gp(RING_GPA(q) + 16ull * i, 16);
}

static void publish(unsigned q, uint16_t head)
{
	struct vring_avail *a = gp(RING_GPA(q) + 0x1000, 6 + 2 * QSZ);
	a->ring[avail_idx[q] % QSZ] = head;
	avail_idx[q]++;
	__atomic_store_n(&a->idx, avail_idx[q], __ATOMIC_RELEASE);
}

static struct vring_used *used(unsigned q)
{
	return gp(RING_GPA(q) + 0x2000, 6 + 8 * QSZ);
}

static void kick(unsigned q)
{
	pthread_mutex_lock(&d->lock);
	d->ops->queue_notify(d, q);
	pthread_mutex_unlock(&d->lock);
}

static void drv_start(uint8_t features)
{
	memset(avail_idx, 0, sizeof(avail_idx));
	memset(used_idx, 0, sizeof(used_idx));
	memset(gp(0, 0xc000), 0, 0xc000); /* the rings */
	d->acked_features = d->host_features;
	for (unsigned q = 0; q < 3; q++) {
		struct virtq *vq = &d->vq[q];
		vq->size = QSZ;
		vq->desc_gpa = RING_GPA(q);
		vq->avail_gpa = RING_GPA(q) + 0x1000;
		vq->used_gpa = RING_GPA(q) + 0x2000;
		vq->ready = true;
		if (virtq_activate(vq, &mem, features & 1, features & 2) < 0)
			abort();
	}
	pthread_mutex_lock(&d->lock);
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	if (d->ops->activate(d) < 0)
		abort();
	pthread_mutex_unlock(&d->lock);
}

static void drv_reset(void)
{
	pthread_mutex_lock(&d->lock);
	d->status = 0;
	d->ops->reset(d);
	for (unsigned q = 0; q < 3; q++)
		virtq_reset(&d->vq[q]);
	pthread_mutex_unlock(&d->lock);
}

/* Checks every packet the device put in rx buffers. */
static void drain_rx(void)
{
	struct vring_used *u = used(0);
	uint16_t idx = __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE);
	if ((uint16_t)(idx - used_idx[0]) > QSZ)
		abort();
	while (used_idx[0] != idx) {
		struct vring_used_elem e = u->ring[used_idx[0] % QSZ];
		used_idx[0]++;
		if (e.id >= QSZ || e.len < HDR || e.len > rx_len[e.id])
			abort();
		struct virtio_vsock_hdr h;
		memcpy(&h, gp(RXBUF_GPA + e.id * RXBUF_STRIDE, HDR), HDR);
		if (h.src_cid != 2 || h.dst_cid != CID || h.type != VIRTIO_VSOCK_TYPE_STREAM ||
		    h.len != e.len - HDR || h.op < VIRTIO_VSOCK_OP_REQUEST ||
		    h.op > VIRTIO_VSOCK_OP_CREDIT_REQUEST || h.len > 65536)
			abort();
		if (h.op != VIRTIO_VSOCK_OP_RW && h.len)
			abort();
		if (h.op == VIRTIO_VSOCK_OP_SHUTDOWN && (!h.flags || h.flags > 3))
			abort();
		last_src = h.src_port;
		last_dst = h.dst_port;
	}
	if (virtio_vsock_conn_count(vs) > VIRTIO_VSOCK_MAX_CONNS)
		abort();
}

static void pump(void)
{
	for (int i = 0; i < 64; i++)
		if (ev_run_once(&el, 0) <= 0)
			break;
	drain_rx();
}

/* All posted tx chains must be back once the loop is idle (unless the device failed). */
static void tx_settle(void)
{
	pump();
	uint16_t idx = __atomic_load_n(&used(1)->idx, __ATOMIC_ACQUIRE);
	if (virtio_dev_running(d) && idx != avail_idx[1])
		abort();
	used_idx[1] = idx;
}

static bool tx_idle(void)
{
	return virtio_dev_running(d) && used_idx[1] == avail_idx[1];
}

/* Posts a header + payload chain (payload already at slot s's data area) and kicks. */
static void post_tx(unsigned s, const struct virtio_vsock_hdr *h, uint32_t len, bool split)
{
	uint8_t *hb = gp(TXHDR_GPA + s * 0x40ull, HDR);
	memcpy(hb, h, HDR);
	/* descriptors 2s and 2s+1; 2s+1 carries the payload, after the header's second part when
	 * the header is split */
	uint16_t head = (uint16_t)(2 * s);
	struct vring_desc *a = desc(1, head), *b = desc(1, head + 1u);
	*a = (struct vring_desc){TXHDR_GPA + s * 0x40ull, split ? 20 : HDR, 0, head + 1u};
	if (split) {
		a->flags = VRING_DESC_F_NEXT;
		uint8_t *both = gp(TXDATA_GPA + s * TXDATA_STRIDE, HDR - 20 + len);
		memmove(both + HDR - 20, both, len);
		memcpy(both, hb + 20, HDR - 20);
		*b = (struct vring_desc){TXDATA_GPA + s * TXDATA_STRIDE, HDR - 20 + len, 0, 0};
	} else if (len) {
		a->flags = VRING_DESC_F_NEXT;
		*b = (struct vring_desc){TXDATA_GPA + s * TXDATA_STRIDE, len, 0, 0};
	}
	publish(1, head);
	kick(1);
	tx_settle();
}

static void force(struct virtio_vsock_hdr *h, uint8_t f, uint32_t len)
{
	if (f & 1)
		h->src_cid = CID;
	if (f & 2)
		h->dst_cid = 2;
	if (f & 4)
		h->type = VIRTIO_VSOCK_TYPE_STREAM;
	if (f & 8)
		h->len = len;
	if (f & 16)
		h->op = 1 + h->op % 7;
	if (f & 32) {
		h->src_port = last_dst;
		h->dst_port = last_src;
	}
	if (f & 64)
		h->dst_port = LISTEN_PORT;
}

static void cmd_tx(struct in *in)
{
	uint8_t f = take8(in);
	struct virtio_vsock_hdr h;
	take(in, &h, HDR);
	uint16_t len16;
	take(in, &len16, 2);
	uint32_t len = len16 % 4097u;
	unsigned s = avail_idx[1] % TX_SLOTS;
	take(in, gp(TXDATA_GPA + s * TXDATA_STRIDE, len), len);
	if (!tx_idle())
		return;
	force(&h, f, len);
	post_tx(s, &h, len, f & 128);
}

static void cmd_bulk(struct in *in)
{
	unsigned n = take8(in) % 16 + 1;
	uint32_t len = (take8(in) + 1u) * 256;
	for (unsigned i = 0; i < n && tx_idle(); i++) {
		unsigned s = avail_idx[1] % TX_SLOTS;
		memset(gp(TXDATA_GPA + s * TXDATA_STRIDE, len), (int)i, len);
		struct virtio_vsock_hdr h = {.op = VIRTIO_VSOCK_OP_RW, .buf_alloc = 65536};
		force(&h, 1 | 2 | 4 | 8 | 32, len);
		post_tx(s, &h, len, false);
	}
}

static void cmd_raw_tx(struct in *in)
{
	uint8_t len = take8(in);
	unsigned s = avail_idx[1] % TX_SLOTS;
	take(in, gp(TXDATA_GPA + s * TXDATA_STRIDE, len), len);
	if (!tx_idle())
		return;
	*desc(1, 2 * s) = (struct vring_desc){TXDATA_GPA + s * TXDATA_STRIDE, len, 0, 0};
	publish(1, (uint16_t)(2 * s));
	kick(1);
	tx_settle();
}

static void cmd_burst(struct in *in)
{
	unsigned n = take8(in) % QSZ + 1;
	uint8_t f = take8(in);
	struct virtio_vsock_hdr h;
	take(in, &h, HDR);
	if (!tx_idle())
		return;
	force(&h, f | 8, 0);
	for (unsigned i = 0; i < n; i++) {
		uint16_t id = avail_idx[1] % QSZ;
		memcpy(gp(TXHDR_GPA + id * 0x40ull, HDR), &h, HDR);
		*desc(1, id) = (struct vring_desc){TXHDR_GPA + id * 0x40ull, HDR, 0, 0};
		publish(1, id);
		h.src_port++;
	}
	kick(1);
	tx_settle();
}

static void cmd_break(struct in *in)
{
	unsigned q = take8(in) & 1 ? 0 : 1;
	if ((uint16_t)(avail_idx[q] - used_idx[q]) >= QSZ)
		return;
	bool running = tx_idle();
	publish(q, 0xffff);
	kick(q);
	pump();
	/* tx is taken at once, so a bad head there must fail the device (rx only when the device
	 * has a packet to put in it) */
	if (q == 1 && running && virtio_dev_running(d))
		abort();
}

static void cmd_parse(struct in *in)
{
	char spec[64];
	size_t n = take(in, spec, take8(in) % 64);
	spec[n < sizeof(spec) ? n : sizeof(spec) - 1] = '\0';
	struct virtio_vsock_options o;
	struct verr e = {0};
	int r = virtio_vsock_parse(spec, &o, &e);
	if (r == 0 && (o.cid < 3 || o.cid == UINT32_MAX || !o.uds_path[0]))
		abort();
	if (r < 0 && (r != -EINVAL || !e.msg[0] || strchr(e.msg, '\n')))
		abort();
}

static void cmd_post_rx(struct in *in)
{
	unsigned n = take8(in) % 64 + 1;
	uint8_t code = take8(in);
	uint32_t size = code < 8 ? code * 6u : code < 10 ? HDR + code - 8 : HDR + 16u * code;
	for (unsigned i = 0; i < n; i++) {
		if ((uint16_t)(avail_idx[0] - used_idx[0]) >= QSZ)
			break;
		uint16_t id = avail_idx[0] % QSZ;
		*desc(0, id) =
		    (struct vring_desc){RXBUF_GPA + id * RXBUF_STRIDE, size, VRING_DESC_F_WRITE, 0};
		rx_len[id] = size;
		publish(0, id);
	}
	kick(0);
	drain_rx();
}

static int *free_host_slot(void)
{
	for (int i = 0; i < NHOST; i++)
		if (host[i] < 0)
			return &host[i];
	return NULL;
}

static void cmd_connect(struct in *in)
{
	uint8_t b = take8(in);
	int *slot = free_host_slot();
	if (!slot)
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd); /* the backlog is full */
		return;
	}
	*slot = fd;
	char line[64];
	size_t n;
	if (b & 0x80)
		n = take(in, line, b & 63);
	else
		n = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", b & 7);
	if (n)
		send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	pump();
}

static void cmd_accept(void)
{
	int *slot = free_host_slot();
	if (!slot)
		return;
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		*slot = fd;
}

static void cmd_host(struct in *in, int op)
{
	uint8_t b = take8(in);
	int *fd = &host[b % NHOST];
	if (*fd < 0)
		return;
	if (op == 4) {
		size_t n = (take8(in) + 1u) * 64u;
		memset(scratch, b, n);
		send(*fd, scratch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	} else if (op == 5) {
		while (recv(*fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0)
			;
	} else if (b & 0x80) {
		shutdown(*fd, SHUT_WR);
	} else {
		close(*fd);
		*fd = -1;
	}
	pump();
}

/* Sockets, epoll sets and eventfds open: what the device and the host programs use. (Not all
 * fds: the sanitizers' symbolizer keeps pipes open once it has run.) */
static int count_fds(void)
{
	int n = 0;
	DIR *dd = opendir("/proc/self/fd");
	if (!dd)
		abort();
	struct dirent *de;
	while ((de = readdir(dd))) {
		char link[300], target[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		ssize_t len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (!strncmp(target, "socket:", 7) || !strncmp(target, "anon_inode:", 11))
			n++;
	}
	closedir(dd);
	return n;
}

static void init_once(void)
{
	const struct guest_region r = {.gpa = 0, .size = MEM_SIZE};
	if (guest_mem_init(&mem, &r, 1) < 0 || ev_init(&el) < 0)
		abort();
	char dir[] = "/tmp/vmm-fuzz-vsock-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", path, LISTEN_PORT);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(listen_fd, 64) < 0)
		abort();
	for (int i = 0; i < NHOST; i++)
		host[i] = -1;
	base_fds = count_fds();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (listen_fd < 0)
		init_once();
	struct in in = {data, size};
	struct virtio_vsock_options o = {.cid = CID};
	snprintf(o.uds_path, sizeof(o.uds_path), "%s", path);
	struct verr e;
	if (virtio_vsock_create(&vs, &o, &mem, &el, &e) < 0)
		abort();
	d = virtio_vsock_dev(vs);
	uint8_t features = take8(&in);
	drv_start(features);
	last_src = last_dst = 0;
	for (unsigned steps = 0; in.n && steps < 256; steps++) {
		uint8_t op = take8(&in) % 14;
		switch (op) {
		case 0:
			cmd_tx(&in);
			break;
		case 1:
			cmd_post_rx(&in);
			break;
		case 2:
			cmd_connect(&in);
			break;
		case 3:
			cmd_accept();
			break;
		case 4:
		case 5:
		case 6:
			cmd_host(&in, op);
			break;
		case 7:
			pump();
			break;
		case 8:
			drv_reset();
			drv_start(features);
			break;
		case 9:
			cmd_parse(&in);
			break;
		case 10:
			cmd_bulk(&in);
			break;
		case 11:
			cmd_raw_tx(&in);
			break;
		case 12:
			cmd_burst(&in);
			break;
		case 13:
			cmd_break(&in);
			break;
		}
	}
	pump();
	drv_reset();
	virtio_vsock_destroy(vs);
	for (int i = 0; i < NHOST; i++) {
		if (host[i] >= 0)
			close(host[i]);
		host[i] = -1;
	}
	int fd;
	while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(fd);
	if (count_fds() != base_fds)
		abort(); /* a socket, epoll or eventfd outlived its device */
	return 0;
}
