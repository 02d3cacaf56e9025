/* virtio-vsock tests. A mock driver plays the guest the way Linux's virtio_transport does: it
 * posts rx buffers, sends tx packets (header and payload in two descriptors) and reads the used
 * rings of synthetic guest memory; real Unix sockets in a temporary directory play the host
 * programs. Covers both connection directions, 1 MiB each way through credit flow control,
 * shutdown and reset, connection limits, bad CONNECT lines, hostile packets, connections handed
 * over with virtio_vsock_connect_fd and option parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/virtio_vsock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define GUEST_CID     3u
#define HDR	      ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define MIB	      (1u << 20)
#define QSZ	      256u
#define RXQ	      0
#define TXQ	      1
#define EVQ	      2
#define MEM_SIZE      (32ull << 20)
#define RING_GPA(q)   (0x10000ull * ((q) + 1))
#define RXBUF_GPA     0x100000ull
#define RXBUF_STRIDE  0x2000ull
#define TXHDR_GPA     0x300000ull
#define TXDATA_GPA    0x400000ull
#define TXDATA_STRIDE 0x20000ull
#define TX_SLOTS      (QSZ / 2)
#define RX_PAYLOAD    4096u
#define OP(x)	      VIRTIO_VSOCK_OP_##x

/* ---- the mock driver ---- */

struct drv {
	struct guest_mem mem;
	struct virtio_dev *d;
	uint16_t avail[3], used[3];
	uint32_t rx_size;     /* bytes per rx buffer posted */
	uint32_t rx_len[QSZ]; /* the size each rx descriptor was posted with */
	unsigned irqs;
};

struct gpkt {
	struct virtio_vsock_hdr h;
	uint32_t len;
	uint8_t data[64 * 1024];
};

static struct event_loop el;
static struct drv drv;
static struct virtio_vsock *vs;
static char dir[32], path[64];
static struct gpkt pkt;
static int fds_at_start;

static void *gp(uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&drv.mem, gpa, len);
	assert_non_null(p);
	return p;
}

static struct vring_desc *desc(unsigned q, unsigned i)
{
	return gp(RING_GPA(q) + 16ull * i, 16);
}

static struct vring_avail *avail(unsigned q)
{
	return gp(RING_GPA(q) + 0x1000, 6 + 2 * QSZ + 2);
}

static struct vring_used *used(unsigned q)
{
	return gp(RING_GPA(q) + 0x2000, 6 + 8 * QSZ + 2);
}

static void publish(unsigned q, uint16_t head)
{
	avail(q)->ring[drv.avail[q] % QSZ] = head;
	drv.avail[q]++;
	__atomic_store_n(&avail(q)->idx, drv.avail[q], __ATOMIC_RELEASE);
}

static void kick(unsigned q)
{
	pthread_mutex_lock(&drv.d->lock);
	drv.d->ops->queue_notify(drv.d, q);
	pthread_mutex_unlock(&drv.d->lock);
}

static void count_irq(void *opaque)
{
	(void)opaque;
	drv.irqs++;
}

/* Negotiates every offered feature, sets the three queues up and sets DRIVER_OK, the way the
 * transport does it. */
static void drv_start(void)
{
	struct virtio_dev *d = drv.d;
	memset(drv.avail, 0, sizeof(drv.avail));
	memset(drv.used, 0, sizeof(drv.used));
	for (unsigned q = 0; q < 3; q++)
		memset(gp(RING_GPA(q), 0x3000), 0, 0x3000);
	d->raise_irq = count_irq;
	d->acked_features = d->host_features;
	for (unsigned q = 0; q < 3; q++) {
		struct virtq *vq = &d->vq[q];
		vq->size = QSZ;
		vq->desc_gpa = RING_GPA(q);
		vq->avail_gpa = RING_GPA(q) + 0x1000;
		vq->used_gpa = RING_GPA(q) + 0x2000;
		vq->ready = true;
		assert_int_equal(virtq_activate(vq, &drv.mem,
						virtio_has_feature(d, VIRTIO_RING_F_EVENT_IDX),
						virtio_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC)),
				 0);
	}
	pthread_mutex_lock(&d->lock);
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(d->ops->activate(d), 0);
	pthread_mutex_unlock(&d->lock);
}

/* The driver resets the device: status 0, then the transport resets the queues. */
static void drv_reset(void)
{
	pthread_mutex_lock(&drv.d->lock);
	drv.d->status = 0;
	drv.d->ops->reset(drv.d);
	for (unsigned q = 0; q < 3; q++)
		virtq_reset(&drv.d->vq[q]);
	pthread_mutex_unlock(&drv.d->lock);
}

/* Posts n rx buffers of drv.rx_size bytes (one writable descriptor each) and kicks. */
static void post_rx(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_true((uint16_t)(drv.avail[RXQ] - drv.used[RXQ]) < QSZ);
		uint16_t id = drv.avail[RXQ] % QSZ;
		struct vring_desc *e = desc(RXQ, id);
		e->addr = RXBUF_GPA + id * RXBUF_STRIDE;
		e->len = drv.rx_len[id] = drv.rx_size;
		e->flags = VRING_DESC_F_WRITE;
		e->next = 0;
		publish(RXQ, id);
	}
	kick(RXQ);
}

static void pump(void)
{
	for (int i = 0; i < 10000; i++) {
		int n = ev_run_once(&el, 0);
		assert_true(n >= 0);
		if (n == 0)
			return;
	}
	fail_msg("the event loop never went idle");
}

/* Takes the next used rx buffer, if any, into p and checks what the device must get right in
 * every packet. */
static bool recv_pkt(struct gpkt *p)
{
	struct vring_used *u = used(RXQ);
	if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == drv.used[RXQ])
		return false;
	struct vring_used_elem e = u->ring[drv.used[RXQ] % QSZ];
	drv.used[RXQ]++;
	assert_true(e.id < QSZ);
	assert_true(e.len >= HDR && e.len <= drv.rx_len[e.id]);
	const uint8_t *b = gp(RXBUF_GPA + e.id * RXBUF_STRIDE, e.len);
	memcpy(&p->h, b, HDR);
	p->len = e.len - HDR;
	memcpy(p->data, b + HDR, p->len);
	assert_int_equal(p->h.len, p->len);
	assert_int_equal(p->h.src_cid, 2);
	assert_int_equal(p->h.dst_cid, GUEST_CID);
	assert_int_equal(p->h.type, VIRTIO_VSOCK_TYPE_STREAM);
	return true;
}

#define ANY UINT32_MAX

/* The next packet must be `op` from host port src (ANY: whichever) to guest port dst; its
 * buffer is replaced. */
static struct gpkt *expect(uint16_t op, uint32_t src, uint32_t dst)
{
	if (!recv_pkt(&pkt)) {
		pump();
		assert_true(recv_pkt(&pkt));
	}
	assert_int_equal(pkt.h.op, op);
	if (src != ANY)
		assert_int_equal(pkt.h.src_port, src);
	assert_int_equal(pkt.h.dst_port, dst);
	post_rx(1);
	return &pkt;
}

static void expect_none(void)
{
	pump();
	assert_false(recv_pkt(&pkt));
}

/* Posts one tx chain without a kick: the header bytes in one descriptor, the payload (if any)
 * in a second. */
static void queue_tx(const void *hdr, uint32_t hdr_len, const void *data, uint32_t len)
{
	unsigned s = drv.avail[TXQ] % TX_SLOTS;
	uint16_t head = (uint16_t)(2 * s);
	memcpy(gp(TXHDR_GPA + s * 0x100ull, hdr_len), hdr, hdr_len);
	struct vring_desc *e = desc(TXQ, head);
	e->addr = TXHDR_GPA + s * 0x100ull;
	e->len = hdr_len;
	e->flags = len ? VRING_DESC_F_NEXT : 0;
	e->next = head + 1;
	if (len) {
		assert_true(len <= TXDATA_STRIDE);
		memcpy(gp(TXDATA_GPA + s * TXDATA_STRIDE, len), data, len);
		e = desc(TXQ, head + 1);
		e->addr = TXDATA_GPA + s * TXDATA_STRIDE;
		e->len = len;
		e->flags = 0;
		e->next = 0;
	}
	publish(TXQ, head);
}

/* Posts one tx chain and kicks; the device handles it at once. */
static void send_raw(const void *hdr, uint32_t hdr_len, const void *data, uint32_t len)
{
	queue_tx(hdr, hdr_len, data, len);
	kick(TXQ);
	/* The device handles tx at once: the chain is back. */
	assert_int_equal(__atomic_load_n(&used(TXQ)->idx, __ATOMIC_ACQUIRE), drv.avail[TXQ]);
	drv.used[TXQ] = drv.avail[TXQ];
}

static struct virtio_vsock_hdr mkhdr(uint16_t op, uint32_t sport, uint32_t dport, uint32_t len,
				     uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	return (struct virtio_vsock_hdr){.src_cid = GUEST_CID,
					 .dst_cid = 2,
					 .src_port = sport,
					 .dst_port = dport,
					 .len = len,
					 .type = VIRTIO_VSOCK_TYPE_STREAM,
					 .op = op,
					 .flags = flags,
					 .buf_alloc = buf_alloc,
					 .fwd_cnt = fwd_cnt};
}

static void send_pkt(uint16_t op, uint32_t sport, uint32_t dport, const void *data, uint32_t len,
		     uint32_t flags)
{
	struct virtio_vsock_hdr h = mkhdr(op, sport, dport, len, flags, 256 * 1024, 0);
	send_raw(&h, HDR, data, len);
}

/* The guest end of one connection, with both credit views. */
struct gconn {
	uint32_t gport, hport;
	uint32_t buf_alloc, fwd_cnt, rx_total;	 /* our receive side */
	uint32_t h_buf_alloc, h_fwd_cnt, tx_cnt; /* the device's receive side, as it told us */
};

static void gsend(struct gconn *c, uint16_t op, const void *data, uint32_t len, uint32_t flags)
{
	struct virtio_vsock_hdr h =
	    mkhdr(op, c->gport, c->hport, len, flags, c->buf_alloc, c->fwd_cnt);
	send_raw(&h, HDR, data, len);
	if (op == OP(RW))
		c->tx_cnt += len;
}

static uint32_t gcredit(const struct gconn *c)
{
	return c->h_buf_alloc - (c->tx_cnt - c->h_fwd_cnt);
}

static void gnote(struct gconn *c, const struct gpkt *p)
{
	c->h_buf_alloc = p->h.buf_alloc;
	c->h_fwd_cnt = p->h.fwd_cnt;
}

/* ---- the host programs ---- */

static void port_path(char *buf, size_t size, uint32_t port)
{
	snprintf(buf, size, "%s_%u", path, port);
}

static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	port_path(sa.sun_path, sizeof(sa.sun_path), port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 2048), 0);
	return fd;
}

static int host_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static int host_connect_to(const char *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int host_connect(void)
{
	return host_connect_to(path);
}

static void host_write(int fd, const void *b, size_t n)
{
	assert_int_equal(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads what is there now (never waits): -1 when nothing, 0 at EOF. */
static ssize_t host_read(int fd, void *b, size_t n)
{
	ssize_t r = recv(fd, b, n, MSG_DONTWAIT);
	if (r < 0)
		assert_true(errno == EAGAIN || errno == ECONNRESET);
	return r;
}

/* The device closed its end: EOF, or ECONNRESET when it left bytes of ours unread. */
static void expect_host_eof(int fd)
{
	char b[64];
	pump();
	ssize_t r;
	while ((r = host_read(fd, b, sizeof(b))) > 0)
		;
	assert_true(r == 0 || errno == ECONNRESET);
}

/* The guest connects from gport to host port hport, served by listener lfd. */
static int connect_from_guest(struct gconn *c, int lfd, uint32_t gport, uint32_t hport,
			      uint32_t buf_alloc)
{
	*c = (struct gconn){.gport = gport, .hport = hport, .buf_alloc = buf_alloc};
	gsend(c, OP(REQUEST), NULL, 0, 0);
	gnote(c, expect(OP(RESPONSE), hport, gport));
	assert_int_equal(c->h_buf_alloc, VIRTIO_VSOCK_CONN_BUF);
	return host_accept(lfd);
}

/* A host program connects to guest port gport; returns its socket, fills c. */
static int connect_from_host(struct gconn *c, uint32_t gport, uint32_t buf_alloc)
{
	int h = host_connect();
	char line[32];
	host_write(h, line, (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", gport));
	pump();
	struct gpkt *p = expect(OP(REQUEST), ANY, gport);
	(void)p;
	assert_true(pkt.h.src_port >= (1u << 30) && pkt.h.src_port < (1u << 31));
	*c = (struct gconn){.gport = gport, .hport = pkt.h.src_port, .buf_alloc = buf_alloc};
	gnote(c, &pkt);
	gsend(c, OP(RESPONSE), NULL, 0, 0);
	pump();
	char ok[32], want[32];
	int n = snprintf(want, sizeof(want), "OK %u\n", c->hport);
	assert_int_equal(host_read(h, ok, sizeof(ok)), n);
	assert_memory_equal(ok, want, (size_t)n);
	return h;
}

/* The connection counters, and the device's (devices/virtio.h). */
static struct virtio_vsock_stats vstats(void)
{
	struct virtio_vsock_stats s;
	virtio_vsock_get_stats(vs, &s);
	assert_int_equal(s.active, virtio_vsock_conn_count(vs));
	return s;
}

static struct virtio_dev_stats_snapshot dstats(void)
{
	struct virtio_dev_stats_snapshot s;
	virtio_dev_stats_get(drv.d, &s);
	return s;
}

static void expect_conns(uint64_t opened, uint64_t closed, uint64_t active)
{
	struct virtio_vsock_stats s = vstats();
	assert_int_equal(s.opened, opened);
	assert_int_equal(s.closed, closed);
	assert_int_equal(s.active, active);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int setup_nostart(void **state)
{
	(void)state;
	fds_at_start = count_fds();
	assert_int_equal(ev_init(&el), 0);
	snprintf(dir, sizeof(dir), "/tmp/vmm-vsock-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	memset(&drv, 0, sizeof(drv));
	const struct guest_region r = {.gpa = 0, .size = MEM_SIZE};
	assert_int_equal(guest_mem_init(&drv.mem, &r, 1), 0);
	struct virtio_vsock_options o = {.cid = GUEST_CID};
	snprintf(o.uds_path, sizeof(o.uds_path), "%s", path);
	struct verr e = {0};
	int rc = virtio_vsock_create(&vs, &o, &drv.mem, &el, &e);
	if (rc)
		fail_msg("create: %s", e.msg);
	drv.d = virtio_vsock_dev(vs);
	drv.rx_size = HDR + RX_PAYLOAD;
	return 0;
}

static int setup(void **state)
{
	setup_nostart(state);
	drv_start();
	post_rx(64);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	virtio_vsock_destroy(vs);
	struct stat st;
	assert_int_equal(lstat(path, &st), -1); /* the device removed its socket */
	DIR *d = opendir(dir);
	struct dirent *de;
	while ((de = readdir(d))) {
		char p[320];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.')
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
	guest_mem_free(&drv.mem);
	ev_close(&el);
	assert_int_equal(count_fds(), fds_at_start); /* every socket closed */
	return 0;
}

/* ---- tests ---- */

static void device_identity(void **state)
{
	(void)state;
	struct virtio_dev *d = drv.d;
	assert_int_equal(d->device_id, VIRTIO_ID_VSOCK);
	assert_int_equal(d->nr_queues, 3);
	assert_true(d->host_features & (1ull << VIRTIO_RING_F_EVENT_IDX));
	assert_true(d->host_features & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(d->host_features & (1ull << VIRTIO_F_VERSION_1));
	assert_false(d->host_features & (1ull << VIRTIO_VSOCK_F_SEQPACKET));
	assert_int_equal(d->config_len, 8);
	uint64_t cid = 0;
	uint32_t hi = 0;
	d->ops->config_read(d, 0, &cid, 8);
	assert_int_equal(cid, GUEST_CID);
	d->ops->config_read(d, 4, &hi, 4);
	assert_int_equal(hi, 0);
	uint64_t other = 99;
	d->ops->config_write(d, 0, &other, 8); /* read-only */
	d->ops->config_read(d, 0, &cid, 8);
	assert_int_equal(cid, GUEST_CID);
}

static void guest_connects_and_talks(void **state)
{
	(void)state;
	int lfd = host_listen(5000);
	struct gconn g;
	unsigned irqs = drv.irqs;
	int h = connect_from_guest(&g, lfd, 1234, 5000, 64 * 1024);
	assert_true(drv.irqs > irqs);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	expect_conns(1, 0, 1);

	gsend(&g, OP(RW), "hello", 5, 0);
	char b[16];
	assert_int_equal(host_read(h, b, sizeof(b)), 5);
	assert_memory_equal(b, "hello", 5);

	host_write(h, "world!", 6);
	pump();
	struct gpkt *p = expect(OP(RW), 5000, 1234);
	assert_int_equal(p->len, 6);
	assert_memory_equal(p->data, "world!", 6);
	assert_int_equal(p->h.fwd_cnt, 5); /* the 5 bytes reached the host socket */

	/* close() in the guest: SHUTDOWN both ways, answered by RST; the host sees EOF */
	gsend(&g, OP(SHUTDOWN), NULL, 0, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	expect(OP(RST), 5000, 1234);
	expect_host_eof(h);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_conns(1, 1, 0);
	/* REQUEST, RW, SHUTDOWN from the guest; RESPONSE, RW, RST to it; 5 + 6 payload bytes;
	 * the RST answering SHUTDOWN is no error */
	struct virtio_dev_stats_snapshot d = dstats();
	assert_int_equal(d.requests, 6);
	assert_int_equal(d.bytes, 5 + 6);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.needs_reset, 0);
	close(h);
	close(lfd);
}

static void guest_connect_refused(void **state)
{
	(void)state;
	send_pkt(OP(REQUEST), 1234, 6000, NULL, 0, 0); /* nobody listens on PATH_6000 */
	expect(OP(RST), 6000, 1234);
	expect_none();
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_conns(0, 0, 0);
	assert_int_equal(dstats().errors, 1); /* a refused connection */
	assert_int_equal(dstats().requests, 2);
}

static void host_connects_and_talks(void **state)
{
	(void)state;
	struct gconn g;
	int h = connect_from_host(&g, 52, 64 * 1024);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	expect_conns(1, 0, 1);

	host_write(h, "ping", 4);
	pump();
	struct gpkt *p = expect(OP(RW), g.hport, 52);
	assert_int_equal(p->len, 4);
	assert_memory_equal(p->data, "ping", 4);

	gsend(&g, OP(RW), "pong", 4, 0);
	char b[8];
	assert_int_equal(host_read(h, b, sizeof(b)), 4);
	assert_memory_equal(b, "pong", 4);

	/* the host program closes: the guest hears it cannot send or receive any more */
	close(h);
	pump();
	p = expect(OP(SHUTDOWN), g.hport, 52);
	assert_int_equal(p->h.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	gsend(&g, OP(RST), NULL, 0, 0);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_none();
	expect_conns(1, 1, 0);
	assert_int_equal(dstats().bytes, 4 + 4);
	assert_int_equal(dstats().errors, 0);
}

static void host_data_after_connect_line(void **state)
{
	(void)state;
	int h = host_connect();
	host_write(h, "connect 77\r\nearly", 17); /* any case, CRLF, data in the same write */
	pump();
	expect(OP(REQUEST), ANY, 77);
	uint32_t hport = pkt.h.src_port;
	expect_none(); /* nothing is read before the guest accepts */
	send_pkt(OP(RESPONSE), 77, hport, NULL, 0, 0);
	pump();
	char b[32];
	int n = snprintf(b, sizeof(b), "OK %u\n", hport);
	char got[32];
	assert_int_equal(host_read(h, got, sizeof(got)), n);
	struct gpkt *p = expect(OP(RW), hport, 77);
	assert_int_equal(p->len, 5);
	assert_memory_equal(p->data, "early", 5);
	close(h);
}

static void host_connect_guest_refuses(void **state)
{
	(void)state;
	int h = host_connect();
	host_write(h, "CONNECT 53\n", 11);
	pump();
	expect(OP(REQUEST), ANY, 53);
	send_pkt(OP(RST), 53, pkt.h.src_port, NULL, 0, 0);
	expect_host_eof(h); /* closed without an OK line */
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_conns(0, 0, 0); /* never established */
	assert_int_equal(dstats().errors, 0);
	close(h);
}

static void host_gives_up_waiting(void **state)
{
	(void)state;
	int h = host_connect();
	host_write(h, "CONNECT 54\n", 11);
	pump();
	expect(OP(REQUEST), ANY, 54);
	uint32_t hport = pkt.h.src_port;
	close(h); /* before the guest answers */
	pump();
	expect(OP(RST), hport, 54);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	send_pkt(OP(RESPONSE), 54, hport, NULL, 0, 0); /* too late: the connection is gone */
	expect(OP(RST), hport, 54);
}

static void bad_connect_lines(void **state)
{
	(void)state;
	static const char *const lines[] = {
	    "CONNECT\n",
	    "CONNECT \n",
	    "CONNECT abc\n",
	    "CONNECT 4294967296\n",
	    "CONNECT 00000000001\n",
	    "CONNECT -5\n",
	    "CONNECT 5 6\n",
	    "CONNECT5\n",
	    "HELLO 5\n",
	    "\n",
	    "CONNECT 5\0\n",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* over-long, no LF */
	    "CONNECT 00000000000000000000000000000000000000005\n", /* over-long */
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int h = host_connect();
		size_t len = strlen(lines[i]);
		if (i == 10)
			len = 11; /* with its NUL */
		host_write(h, lines[i], len);
		expect_host_eof(h);
		expect_none();
		assert_int_equal(virtio_vsock_conn_count(vs), 0);
		close(h);
	}
	/* EOF before a whole line */
	int h = host_connect();
	host_write(h, "CONNECT 5", 9);
	pump();
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	shutdown(h, SHUT_WR);
	expect_host_eof(h);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(h);
	/* host programs that connect and say nothing hold at most 64 slots */
	int quiet[65];
	for (int i = 0; i < 65; i++) {
		quiet[i] = host_connect();
		pump();
	}
	assert_int_equal(virtio_vsock_conn_count(vs), 64);
	expect_host_eof(quiet[64]);
	close(quiet[64]);
	send_pkt(OP(REQUEST), 1234, 6001, NULL, 0, 0); /* the guest still gets its answer */
	expect(OP(RST), 6001, 1234);
	close(quiet[0]); /* a slot frees, and a new host program gets it */
	pump();
	int late = host_connect();
	host_write(late, "CONNECT 10\n", 11);
	pump();
	expect(OP(REQUEST), ANY, 10);
	for (int i = 1; i < 64; i++)
		close(quiet[i]);
	close(late);
	pump();
	expect(OP(RST), ANY, 10);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	/* a line in pieces is fine */
	h = host_connect();
	host_write(h, "CONN", 4);
	pump();
	host_write(h, "ECT 9", 5);
	pump();
	host_write(h, "\n", 1);
	pump();
	expect(OP(REQUEST), ANY, 9);
	close(h);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + i / 4093 + seed);
}

/* 1 MiB guest -> host: the host program does not read at first, so the device buffers what the
 * socket does not take until the credit it gave runs out; then the host drains it all. */
static void guest_to_host_1mib(void **state)
{
	(void)state;
	int lfd = host_listen(5001);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2001, 5001, 64 * 1024);
	uint8_t *src = malloc(MIB), *dst = malloc(MIB);
	fill(src, MIB, 1);
	uint32_t sent = 0, got = 0;

	/* phase 1: nobody reads on the host */
	while (gcredit(&g) && sent < MIB) {
		uint32_t n = RX_PAYLOAD * 3;
		if (n > gcredit(&g))
			n = gcredit(&g);
		if (n > MIB - sent)
			n = MIB - sent;
		gsend(&g, OP(RW), src + sent, n, 0);
		sent += n;
		pump();
		while (recv_pkt(&pkt)) {
			assert_int_equal(pkt.h.op, OP(CREDIT_UPDATE));
			gnote(&g, &pkt);
			post_rx(1);
		}
	}
	assert_true(sent < MIB); /* stopped by credit, not by the end of the data */
	assert_true(sent >= VIRTIO_VSOCK_CONN_BUF);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);

	/* phase 2: the host reads; credit updates let the guest go on */
	unsigned idle = 0;
	while (got < MIB) {
		bool progress = false;
		ssize_t r;
		while ((r = host_read(h, dst + got, MIB - got)) > 0) {
			got += (uint32_t)r;
			progress = true;
		}
		assert_int_not_equal(r, 0);
		pump();
		while (recv_pkt(&pkt)) {
			assert_int_equal(pkt.h.op, OP(CREDIT_UPDATE));
			gnote(&g, &pkt);
			post_rx(1);
			progress = true;
		}
		while (gcredit(&g) && sent < MIB) {
			uint32_t n = 16 * 1024;
			if (n > gcredit(&g))
				n = gcredit(&g);
			if (n > MIB - sent)
				n = MIB - sent;
			gsend(&g, OP(RW), src + sent, n, 0);
			sent += n;
			progress = true;
		}
		if (!progress && ++idle > 100)
			fail_msg("stalled: %u sent, %u received", sent, got);
	}
	assert_memory_equal(src, dst, MIB);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	free(src);
	free(dst);
	close(h);
	close(lfd);
}

/* 1 MiB host -> guest with a 32 KiB guest receive buffer that the guest only reports when asked
 * (CREDIT_REQUEST): the device must never send beyond the credit. */
static void host_to_guest_1mib(void **state)
{
	(void)state;
	int lfd = host_listen(5002);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2002, 5002, 32 * 1024);
	uint8_t *src = malloc(MIB), *dst = malloc(MIB);
	fill(src, MIB, 2);
	uint32_t wrote = 0, got = 0;
	unsigned requests = 0, idle = 0;
	while (got < MIB) {
		bool progress = false;
		if (wrote < MIB) {
			ssize_t w = send(h, src + wrote, MIB - wrote, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0) {
				wrote += (uint32_t)w;
				progress = true;
			}
		}
		pump();
		while (recv_pkt(&pkt)) {
			progress = true;
			post_rx(1);
			gnote(&g, &pkt);
			if (pkt.h.op == OP(RW)) {
				assert_true(pkt.len > 0 && got + pkt.len <= MIB);
				memcpy(dst + got, pkt.data, pkt.len);
				got += pkt.len;
				g.rx_total += pkt.len;
				assert_true(g.rx_total - g.fwd_cnt <= g.buf_alloc);
			} else {
				assert_int_equal(pkt.h.op, OP(CREDIT_REQUEST));
				assert_int_equal(g.rx_total - g.fwd_cnt, g.buf_alloc);
				requests++;
				g.fwd_cnt = g.rx_total; /* the application read it all */
				gsend(&g, OP(CREDIT_UPDATE), NULL, 0, 0);
			}
		}
		if (!progress && ++idle > 100)
			fail_msg("stalled: %u written, %u received", wrote, got);
	}
	assert_memory_equal(src, dst, MIB);
	assert_true(requests >= MIB / (32 * 1024) - 1);
	free(src);
	free(dst);
	close(h);
	close(lfd);
}

static void guest_half_close(void **state)
{
	(void)state;
	int lfd = host_listen(5003);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2003, 5003, 64 * 1024);
	gsend(&g, OP(RW), "bye", 3, 0);
	gsend(&g, OP(SHUTDOWN), NULL, 0, VIRTIO_VSOCK_SHUTDOWN_SEND);
	char b[8];
	assert_int_equal(host_read(h, b, sizeof(b)), 3);
	assert_int_equal(host_read(h, b, sizeof(b)), 0); /* EOF after the data */
	host_write(h, "still", 5);			 /* the other way still works */
	pump();
	struct gpkt *p = expect(OP(RW), 5003, 2003);
	assert_memory_equal(p->data, "still", 5);
	/* data after the guest said it sends no more: reset */
	gsend(&g, OP(RW), "x", 1, 0);
	expect(OP(RST), 5003, 2003);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(h);
	close(lfd);
}

static void guest_stops_receiving(void **state)
{
	(void)state;
	int lfd = host_listen(5004);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2004, 5004, 64 * 1024);
	gsend(&g, OP(SHUTDOWN), NULL, 0, VIRTIO_VSOCK_SHUTDOWN_RCV);
	pump();
	/* shutdown(SHUT_RD) of the device's socket: the host can no longer write */
	errno = 0;
	assert_int_equal(send(h, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), -1);
	assert_int_equal(errno, EPIPE);
	expect_none();
	gsend(&g, OP(RW), "ok", 2, 0); /* the guest may still send */
	char b[4];
	assert_int_equal(host_read(h, b, sizeof(b)), 2);
	/* the host closes: the guest hears both directions are done */
	close(h);
	pump();
	struct gpkt *p = expect(OP(SHUTDOWN), 5004, 2004);
	assert_int_equal(p->h.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	gsend(&g, OP(RST), NULL, 0, 0);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(lfd);
}

static void host_half_close(void **state)
{
	(void)state;
	struct gconn g;
	int h = connect_from_host(&g, 60, 64 * 1024);
	host_write(h, "last", 4);
	shutdown(h, SHUT_WR);
	pump();
	struct gpkt *p = expect(OP(RW), g.hport, 60);
	assert_int_equal(p->len, 4);
	p = expect(OP(SHUTDOWN), g.hport, 60);
	assert_int_equal(p->h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND); /* the host still reads */
	gsend(&g, OP(RW), "reply", 5, 0);
	char b[8];
	assert_int_equal(host_read(h, b, sizeof(b)), 5);
	gsend(&g, OP(SHUTDOWN), NULL, 0, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	expect(OP(RST), g.hport, 60);
	expect_host_eof(h);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(h);
}

/* close() in the guest while the device still holds data the host has not taken: the RST waits
 * until the last byte is handed over. */
static void shutdown_waits_for_buffered_data(void **state)
{
	(void)state;
	int lfd = host_listen(5010);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2016, 5010, 64 * 1024);
	static uint8_t src[VIRTIO_VSOCK_CONN_BUF], dst[2 * VIRTIO_VSOCK_CONN_BUF];
	fill(src, sizeof(src), 3);
	uint32_t sent = 0;
	while (sent < sizeof(src)) { /* the socket fills, the rest waits in the device */
		uint32_t n = sizeof(src) - sent < 16384 ? sizeof(src) - sent : 16384;
		gsend(&g, OP(RW), src + sent, n, 0);
		sent += n;
	}
	gsend(&g, OP(SHUTDOWN), NULL, 0, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	pump();
	while (recv_pkt(&pkt)) {
		assert_int_equal(pkt.h.op, OP(CREDIT_UPDATE));
		post_rx(1);
	}
	assert_int_equal(virtio_vsock_conn_count(vs), 1); /* not reset yet */
	uint32_t got = 0;
	bool rst = false;
	for (unsigned i = 0; i < 1000 && !rst; i++) {
		ssize_t r;
		while ((r = host_read(h, dst + got, sizeof(dst) - got)) > 0)
			got += (uint32_t)r;
		pump();
		while (recv_pkt(&pkt)) {
			post_rx(1);
			if (pkt.h.op == OP(RST))
				rst = true;
			else
				assert_int_equal(pkt.h.op, OP(CREDIT_UPDATE));
		}
	}
	assert_true(rst);
	ssize_t r;
	while ((r = host_read(h, dst + got, sizeof(dst) - got)) > 0)
		got += (uint32_t)r;
	assert_int_equal(r, 0); /* then EOF */
	assert_int_equal(got, sizeof(src));
	assert_memory_equal(src, dst, sizeof(src));
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(h);
	close(lfd);
}

/* Host data delivered before the SHUTDOWN that a hangup causes, and a guest credit request. */
static void data_then_hangup(void **state)
{
	(void)state;
	int lfd = host_listen(5005);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2005, 5005, 64 * 1024);
	host_write(h, "abc", 3);
	close(h);
	pump();
	assert_memory_equal(expect(OP(RW), 5005, 2005)->data, "abc", 3);
	assert_int_equal(expect(OP(SHUTDOWN), 5005, 2005)->h.flags,
			 VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	gsend(&g, OP(CREDIT_REQUEST), NULL, 0, 0);
	expect(OP(CREDIT_UPDATE), 5005, 2005);
	/* data for a host that is gone: reset */
	gsend(&g, OP(RW), "x", 1, 0);
	expect(OP(RST), 5005, 2005);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(lfd);
}

/* Every malformed packet is dropped or answered with RST; the device goes on working. */
static void hostile_packets(void **state)
{
	(void)state;
	int lfd = host_listen(5006);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2006, 5006, 64 * 1024);
	struct virtio_vsock_hdr x;
	static uint8_t big[72 * 1024];

	/* dropped: addresses that are not the guest's and the host's, a truncated header */
	x = mkhdr(OP(RW), 2006, 5006, 1, 0, 65536, 0);
	x.src_cid = 4;
	send_raw(&x, HDR, "a", 1);
	x.src_cid = GUEST_CID;
	x.dst_cid = 1;
	send_raw(&x, HDR, "a", 1);
	x.dst_cid = 2ull | (1ull << 32);
	send_raw(&x, HDR, "a", 1);
	send_raw(&x, 20, NULL, 0);
	send_raw(&x, 0, NULL, 0);
	/* an RST for nothing is never answered */
	send_pkt(OP(RST), 9, 9, NULL, 0, 0);
	expect_none();
	char b[8];
	assert_int_equal(host_read(h, b, sizeof(b)), -1);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	assert_int_equal(dstats().errors, 0); /* dropped unanswered: not counted */

	/* answered with RST: packets for no connection, whatever they are */
	send_pkt(OP(RW), 9, 10, "a", 1, 0);
	expect(OP(RST), 10, 9);
	send_pkt(OP(CREDIT_UPDATE), 9, 11, NULL, 0, 0);
	expect(OP(RST), 11, 9);
	send_pkt(99, 9, 12, NULL, 0, 0);
	expect(OP(RST), 12, 9);
	send_pkt(OP(INVALID), 9, 12, NULL, 0, 0);
	expect(OP(RST), 12, 9);
	x = mkhdr(OP(REQUEST), 9, 5006, 0, 0, 65536, 0);
	x.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
	send_raw(&x, HDR, NULL, 0);
	expect(OP(RST), 5006, 9);
	x = mkhdr(OP(REQUEST), 9, 5006, 4, 0, 65536, 0); /* a REQUEST with a payload */
	send_raw(&x, HDR, "abcd", 4);
	expect(OP(RST), 5006, 9);
	x = mkhdr(OP(REQUEST), 9, 5006, 0, 0, 65536, 0);
	send_raw(&x, HDR, "abcd", 4); /* len 0, 4 bytes follow */
	expect(OP(RST), 5006, 9);
	expect_none();
	assert_int_equal(virtio_vsock_conn_count(vs), 1);

	/* on the live connection: len beyond 64 KiB (with that many bytes) resets it */
	x = mkhdr(OP(RW), 2006, 5006, sizeof(big), 0, 65536, 0);
	send_raw(&x, HDR, big, sizeof(big));
	expect(OP(RST), 5006, 2006);
	expect_host_eof(h);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	close(h);

	/* len that does not match the payload */
	h = connect_from_guest(&g, lfd, 2007, 5006, 64 * 1024);
	x = mkhdr(OP(RW), 2007, 5006, 10, 0, 65536, 0);
	send_raw(&x, HDR, "12345", 5);
	expect(OP(RST), 5006, 2007);
	expect_host_eof(h);
	close(h);

	/* unknown op and a wrong type on a live connection */
	h = connect_from_guest(&g, lfd, 2008, 5006, 64 * 1024);
	send_pkt(42, 2008, 5006, NULL, 0, 0);
	expect(OP(RST), 5006, 2008);
	expect_host_eof(h);
	close(h);
	h = connect_from_guest(&g, lfd, 2009, 5006, 64 * 1024);
	x = mkhdr(OP(RW), 2009, 5006, 1, 0, 65536, 0);
	x.type = 7;
	send_raw(&x, HDR, "a", 1);
	expect(OP(RST), 5006, 2009);
	expect_host_eof(h);
	close(h);

	/* a second REQUEST on a live connection, a RESPONSE the device never asked for */
	h = connect_from_guest(&g, lfd, 2010, 5006, 64 * 1024);
	gsend(&g, OP(REQUEST), NULL, 0, 0);
	expect(OP(RST), 5006, 2010);
	close(h);
	h = connect_from_guest(&g, lfd, 2011, 5006, 64 * 1024);
	gsend(&g, OP(RESPONSE), NULL, 0, 0);
	expect(OP(RST), 5006, 2011);
	close(h);

	/* credit: a fwd_cnt counting bytes never sent, then one going back */
	h = connect_from_guest(&g, lfd, 2012, 5006, 64 * 1024);
	g.fwd_cnt = 1000;
	gsend(&g, OP(CREDIT_UPDATE), NULL, 0, 0);
	expect(OP(RST), 5006, 2012);
	close(h);
	h = connect_from_guest(&g, lfd, 2013, 5006, 64 * 1024);
	host_write(h, "0123456789", 10);
	pump();
	expect(OP(RW), 5006, 2013);
	g.fwd_cnt = 10;
	gsend(&g, OP(CREDIT_UPDATE), NULL, 0, 0);
	g.fwd_cnt = 4;
	gsend(&g, OP(CREDIT_UPDATE), NULL, 0, 0);
	expect(OP(RST), 5006, 2013);
	close(h);
	expect_none();
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	assert_false(drv.d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* 7 packets for no connection and 8 resets of live ones; 8 connections came and went */
	assert_int_equal(dstats().errors, 7 + 8);
	assert_int_equal(dstats().needs_reset, 0);
	expect_conns(8, 8, 0);
	close(lfd);
}

/* Data beyond the credit the device gave resets the connection instead of growing a buffer. */
static void credit_overrun(void **state)
{
	(void)state;
	int lfd = host_listen(5007);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2014, 5007, 64 * 1024);
	static uint8_t chunk[16 * 1024];
	uint64_t sent = 0;
	while (gcredit(&g)) {
		uint32_t n = gcredit(&g) < sizeof(chunk) ? gcredit(&g) : sizeof(chunk);
		gsend(&g, OP(RW), chunk, n, 0);
		sent += n;
		pump();
		while (recv_pkt(&pkt)) {
			assert_int_equal(pkt.h.op, OP(CREDIT_UPDATE));
			gnote(&g, &pkt);
			post_rx(1);
		}
	}
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	assert_int_equal(dstats().errors, 0);
	assert_int_equal(dstats().bytes, sent);
	gsend(&g, OP(RW), chunk, 1, 0);
	expect(OP(RST), 5007, 2014);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	assert_int_equal(dstats().errors, 1);
	assert_int_equal(dstats().bytes, sent); /* the byte over the credit was refused */
	close(h);
	close(lfd);
}

/* RSTs owed for packets without a connection are bounded while the guest posts no rx buffer. */
static void owed_rsts_bounded(void **state)
{
	(void)state;
	/* take every posted rx buffer away first */
	for (unsigned i = 0; i < 64; i++)
		send_pkt(OP(RW), 100 + i, 100, "a", 1, 0);
	pump();
	for (unsigned i = 0; i < 64; i++)
		assert_true(recv_pkt(&pkt));
	for (unsigned i = 0; i < 1000; i++)
		send_pkt(OP(RW), 1000 + i, 7, "a", 1, 0);
	unsigned n = 0;
	for (unsigned round = 0; round < 4; round++) {
		post_rx(64);
		pump();
		while (recv_pkt(&pkt)) {
			assert_int_equal(pkt.h.op, OP(RST));
			assert_int_equal(pkt.h.dst_port, 1000 + n);
			n++;
		}
	}
	assert_true(n >= 64 && n < 1000);
	assert_int_equal(n, 128);
	assert_int_equal(dstats().errors, 64 + 1000); /* counted, sent or not */
}

static void rx_buffer_too_small(void **state)
{
	(void)state;
	/* use up the posted buffers, then post ones that cannot hold a header */
	for (unsigned i = 0; i < 64; i++)
		send_pkt(OP(RW), 100 + i, 100, "a", 1, 0);
	drv.rx_size = HDR - 1;
	post_rx(1);
	pump();
	for (unsigned i = 0; i < 64; i++)
		assert_true(recv_pkt(&pkt));
	assert_int_equal(dstats().needs_reset, 0);
	send_pkt(OP(RW), 9, 9, "a", 1, 0);
	assert_true(drv.d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(virtio_dev_running(drv.d));
	assert_int_equal(dstats().needs_reset, 1);
}

/* An rx buffer that holds only a header carries a control packet, never data. */
static void rx_buffer_header_only(void **state)
{
	(void)state;
	int lfd = host_listen(5008);
	struct gconn g;
	int h = connect_from_guest(&g, lfd, 2015, 5008, 64 * 1024);
	/* use up the other buffers */
	for (unsigned i = 0; i < 64; i++)
		send_pkt(OP(RW), 100 + i, 100, "a", 1, 0);
	pump();
	while (recv_pkt(&pkt))
		;
	drv.rx_size = HDR;
	host_write(h, "data", 4);
	pump();
	post_rx(1);
	struct gpkt *p = expect(OP(CREDIT_UPDATE), 5008, 2015); /* reposts a header-only one */
	assert_int_equal(p->len, 0);
	drv.rx_size = HDR + RX_PAYLOAD;
	expect(OP(CREDIT_UPDATE), 5008, 2015); /* reposts a full one */
	p = expect(OP(RW), 5008, 2015);
	assert_memory_equal(p->data, "data", 4);
	close(h);
	close(lfd);
}

static void connection_limit_and_reset(void **state)
{
	(void)state;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4 * VIRTIO_VSOCK_MAX_CONNS) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < 4 * VIRTIO_VSOCK_MAX_CONNS)
			skip(); /* needs a few thousand fds: the host's limit is lower */
	}
	int lfd = host_listen(7000);
	for (uint32_t i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
		send_pkt(OP(REQUEST), 10000 + i, 7000, NULL, 0, 0);
		expect(OP(RESPONSE), 7000, 10000 + i);
	}
	assert_int_equal(virtio_vsock_conn_count(vs), VIRTIO_VSOCK_MAX_CONNS);
	send_pkt(OP(REQUEST), 20000, 7000, NULL, 0, 0);
	expect(OP(RST), 7000, 20000);
	int h = host_connect(); /* and a host connection is closed at once */
	expect_host_eof(h);
	close(h);
	assert_int_equal(virtio_vsock_conn_count(vs), VIRTIO_VSOCK_MAX_CONNS);
	expect_conns(VIRTIO_VSOCK_MAX_CONNS, 0, VIRTIO_VSOCK_MAX_CONNS);
	assert_int_equal(dstats().errors, 1); /* the REQUEST over the limit */
	int first = host_accept(lfd);

	/* a driver reset ends every connection the guest knew */
	drv_reset();
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_conns(VIRTIO_VSOCK_MAX_CONNS, VIRTIO_VSOCK_MAX_CONNS, 0);
	expect_host_eof(first);
	close(first);
	close(lfd);
}

/* A host program may connect before the guest's driver is up: its REQUEST waits for it, and
 * survives a reset that comes before the guest saw it. */
static void host_connect_before_driver(void **state)
{
	(void)state;
	int h = host_connect();
	host_write(h, "CONNECT 80\n", 11);
	pump();
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	drv_start();
	drv_reset(); /* Linux resets the device while probing */
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	drv_start();
	post_rx(4);
	expect(OP(REQUEST), ANY, 80);
	uint32_t hport = pkt.h.src_port;
	/* seen by the guest now: a reset ends it */
	drv_reset();
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_host_eof(h);
	close(h);
	(void)hport;
}

/* A stale event in one batch: the tx budget runs out (the rest is picked up through the
 * device's eventfd), then a host program hangs up. The next batch holds both, eventfd first: the
 * tx work frees that connection's slot and a new connection takes the slot, before the old
 * connection's (now stale) hangup is dispatched. It must not reach the new connection. */
static void stale_event_after_slot_reuse(void **state)
{
	(void)state;
	int lfd = host_listen(5009);
	struct gconn x;
	int hx = connect_from_guest(&x, lfd, 3000, 5009, 64 * 1024);
	for (unsigned i = 0; i < 100; i++) { /* RSTs for nothing: no answer, no state */
		struct virtio_vsock_hdr h = mkhdr(OP(RST), 50000 + i, 9, 0, 0, 0, 0);
		queue_tx(&h, HDR, NULL, 0);
	}
	struct virtio_vsock_hdr h = mkhdr(OP(RST), 3000, 5009, 0, 0, 0, 0);
	queue_tx(&h, HDR, NULL, 0);
	h = mkhdr(OP(REQUEST), 3001, 5009, 0, 0, 65536, 0);
	queue_tx(&h, HDR, NULL, 0);
	kick(TXQ);
	assert_true((uint16_t)(__atomic_load_n(&used(TXQ)->idx, __ATOMIC_ACQUIRE) - drv.used[TXQ]) <
		    100); /* the budget stopped it */
	close(hx);
	pump();
	assert_int_equal(__atomic_load_n(&used(TXQ)->idx, __ATOMIC_ACQUIRE), drv.avail[TXQ]);
	drv.used[TXQ] = drv.avail[TXQ];
	expect(OP(RESPONSE), 5009, 3001);
	expect_none(); /* nothing for 3000 (gone) nor 3001 (its host side did nothing) */
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	int hy = host_accept(lfd);
	host_write(hy, "y", 1);
	pump();
	assert_memory_equal(expect(OP(RW), 5009, 3001)->data, "y", 1);
	close(hy);
	close(lfd);
}

static void create_errors(void **state)
{
	(void)state;
	struct virtio_vsock *v2;
	struct verr e = {0};
	struct virtio_vsock_options o = {.cid = GUEST_CID};
	/* in use by the fixture's device */
	snprintf(o.uds_path, sizeof(o.uds_path), "%s", path);
	assert_int_equal(virtio_vsock_create(&v2, &o, &drv.mem, &el, &e), -EADDRINUSE);
	assert_non_null(strstr(e.msg, "in use"));
	/* not a socket */
	char file[80];
	snprintf(file, sizeof(file), "%s/file", dir);
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(o.uds_path, sizeof(o.uds_path), "%s", file);
	assert_int_equal(virtio_vsock_create(&v2, &o, &drv.mem, &el, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "not a socket"));
	unlink(file);
	/* no such directory */
	snprintf(o.uds_path, sizeof(o.uds_path), "%s/none/v.sock", dir);
	assert_int_equal(virtio_vsock_create(&v2, &o, &drv.mem, &el, &e), -ENOENT);
	/* a stale socket (its process died) is replaced; destroy removes it */
	char stale[80];
	snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	snprintf(o.uds_path, sizeof(o.uds_path), "%s", stale);
	assert_int_equal(virtio_vsock_create(&v2, &o, &drv.mem, &el, &e), 0);
	virtio_vsock_destroy(v2);
	struct stat st;
	assert_int_equal(lstat(stale, &st), -1);
	/* destroy leaves a socket that is no longer its own */
	assert_int_equal(virtio_vsock_create(&v2, &o, &drv.mem, &el, &e), 0);
	unlink(stale);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	virtio_vsock_destroy(v2);
	assert_int_equal(lstat(stale, &st), 0);
	close(fd);
	unlink(stale);
	/* bad options given directly */
	o.cid = 2;
	assert_int_equal(virtio_vsock_create(&v2, &o, &drv.mem, &el, &e), -EINVAL);
}

static void host_pair(int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
}

/* vmm's control API hands a connection over: it skips the CONNECT line, goes to the given port
 * from a host port in [2^30, 2^31), and gets no OK line. */
static void connect_fd(void **state)
{
	(void)state;
	struct verr e = {0};
	int sp[2];
	host_pair(sp);
	host_write(sp[0], "CONNECT 5\n", 10); /* not a command here: stream data for port 1024 */
	assert_int_equal(virtio_vsock_connect_fd(vs, sp[1], 1024, &e), 0);
	int h = sp[0];
	expect(OP(REQUEST), ANY, 1024);
	assert_true(pkt.h.src_port >= (1u << 30) && pkt.h.src_port < (1u << 31));
	struct gconn g = {.gport = 1024, .hport = pkt.h.src_port, .buf_alloc = 64 * 1024};
	gnote(&g, &pkt);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	expect_conns(0, 0, 1);
	gsend(&g, OP(RESPONSE), NULL, 0, 0);
	pump();
	struct gpkt *p = expect(OP(RW), g.hport, 1024);
	assert_int_equal(p->len, 10);
	assert_memory_equal(p->data, "CONNECT 5\n", 10);
	gsend(&g, OP(RW), "hi", 2, 0);
	char b[16];
	assert_int_equal(host_read(h, b, sizeof(b)), 2); /* no "OK" line before the data */
	assert_memory_equal(b, "hi", 2);
	expect_conns(1, 0, 1);
	/* a guest that refuses closes the next connection's host end */
	int sp2[2];
	host_pair(sp2);
	assert_int_equal(virtio_vsock_connect_fd(vs, sp2[1], 1024, &e), 0);
	expect(OP(REQUEST), ANY, 1024);
	uint32_t hport2 = pkt.h.src_port;
	assert_true(hport2 >= (1u << 30) && hport2 < (1u << 31));
	assert_int_not_equal(hport2, g.hport);
	send_pkt(OP(RST), 1024, hport2, NULL, 0, 0);
	expect_host_eof(sp2[0]);
	close(sp2[0]);
	assert_int_equal(virtio_vsock_conn_count(vs), 1);
	/* the first one ends when its host end hangs up */
	close(h);
	pump();
	expect(OP(SHUTDOWN), g.hport, 1024);
	gsend(&g, OP(RST), NULL, 0, 0);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	expect_conns(1, 1, 0);
}

/* A full connection table: -EBUSY with one line, and the fd stays the caller's. */
static void connect_fd_table_full(void **state)
{
	(void)state;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4 * VIRTIO_VSOCK_MAX_CONNS) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < 4 * VIRTIO_VSOCK_MAX_CONNS)
			skip(); /* needs a few thousand fds: the host's limit is lower */
	}
	int lfd = host_listen(7000);
	for (uint32_t i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
		send_pkt(OP(REQUEST), 10000 + i, 7000, NULL, 0, 0);
		expect(OP(RESPONSE), 7000, 10000 + i);
	}
	assert_int_equal(virtio_vsock_conn_count(vs), VIRTIO_VSOCK_MAX_CONNS);
	int sp[2];
	host_pair(sp);
	struct verr e = {0};
	assert_int_equal(virtio_vsock_connect_fd(vs, sp[1], 1024, &e), -EBUSY);
	assert_int_equal(e.code, -EBUSY);
	assert_true(strlen(e.msg) > 10);
	assert_null(strchr(e.msg, '\n'));
	pump();
	expect_none(); /* no REQUEST for it */
	assert_int_equal(virtio_vsock_conn_count(vs), VIRTIO_VSOCK_MAX_CONNS);
	/* still open, and the device does not read it: what we write there stays */
	assert_true(fcntl(sp[1], F_GETFD) >= 0);
	host_write(sp[0], "x", 1);
	pump();
	char b[4];
	assert_int_equal(host_read(sp[1], b, sizeof(b)), 1);
	assert_int_equal(b[0], 'x');
	char c = 0;
	assert_int_equal(host_read(sp[0], &c, 1), -1); /* no EOF: its peer is open */
	close(sp[0]);
	close(sp[1]);
	close(lfd);
}

static int own_fds[2] = {-1, -1};
static unsigned own_calls;

static int own_open(void *opaque)
{
	(void)opaque;
	own_calls++;
	int fd = own_fds[1];
	own_fds[1] = -1;
	return fd;
}

/* vmm's own port: the guest's connection is served by a socketpair, once. */
static void in_process_port(void **state)
{
	(void)state;
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, own_fds), 0);
	virtio_vsock_set_host_port(vs, 1024, own_open, NULL);
	struct gconn g = {.gport = 40000, .hport = 1024, .buf_alloc = 64 * 1024};
	gsend(&g, OP(REQUEST), NULL, 0, 0);
	gnote(&g, expect(OP(RESPONSE), 1024, 40000));
	gsend(&g, OP(RW), "hello", 5, 0);
	char b[16];
	assert_int_equal(host_read(own_fds[0], b, sizeof(b)), 5);
	assert_memory_equal(b, "hello", 5);
	/* a second connection to the port is refused: the fd was handed out */
	send_pkt(OP(REQUEST), 40001, 1024, NULL, 0, 0);
	expect(OP(RST), 1024, 40001);
	assert_int_equal(own_calls, 2);
	gsend(&g, OP(SHUTDOWN), NULL, 0, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	expect(OP(RST), 1024, 40000);
	expect_host_eof(own_fds[0]);
	close(own_fds[0]);
	own_fds[0] = -1;
}

/* Without a uds path only the in-process port reaches the host. */
static void no_uds_path(void **state)
{
	(void)state;
	virtio_vsock_destroy(vs);
	struct virtio_vsock_options o = {.cid = GUEST_CID};
	struct verr e = {0};
	assert_int_equal(virtio_vsock_create(&vs, &o, &drv.mem, &el, &e), 0);
	drv.d = virtio_vsock_dev(vs);
	memset(drv.avail, 0, sizeof(drv.avail));
	memset(drv.used, 0, sizeof(drv.used));
	drv_start();
	post_rx(64);
	send_pkt(OP(REQUEST), 1234, 5000, NULL, 0, 0);
	expect(OP(RST), 5000, 1234);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
	/* and a connection handed over by vmm's control API reaches the guest */
	int sp[2];
	host_pair(sp);
	assert_int_equal(virtio_vsock_connect_fd(vs, sp[1], 1024, &e), 0);
	assert_true(recv_pkt(&pkt)); /* queued by the call itself, no event needed */
	assert_int_equal(pkt.h.op, OP(REQUEST));
	assert_int_equal(pkt.h.dst_port, 1024);
	post_rx(1);
	send_pkt(OP(RST), 1024, pkt.h.src_port, NULL, 0, 0);
	expect_host_eof(sp[0]);
	close(sp[0]);
	assert_int_equal(virtio_vsock_conn_count(vs), 0);
}

static void parse_good(void **state)
{
	(void)state;
	struct virtio_vsock_options o;
	struct verr e = {0};
	assert_int_equal(virtio_vsock_parse("cid=3,uds=/run/v.sock", &o, &e), 0);
	assert_int_equal(o.cid, 3);
	assert_string_equal(o.uds_path, "/run/v.sock");
	assert_int_equal(virtio_vsock_parse("uds=rel/p=x,cid=4294967294", &o, &e), 0);
	assert_int_equal(o.cid, 4294967294u);
	assert_string_equal(o.uds_path, "rel/p=x");
	char spec[200], p[VIRTIO_VSOCK_PATH_MAX + 1];
	memset(p, 'a', VIRTIO_VSOCK_PATH_MAX);
	p[VIRTIO_VSOCK_PATH_MAX] = '\0';
	snprintf(spec, sizeof(spec), "cid=10,uds=%s", p);
	assert_int_equal(virtio_vsock_parse(spec, &o, &e), 0);
	assert_int_equal(strlen(o.uds_path), VIRTIO_VSOCK_PATH_MAX);
}

static void parse_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    ",",
	    "cid=3",
	    "uds=/x",
	    "cid=3,uds=/x,",
	    "cid=3,,uds=/x",
	    "cid=3,uds=",
	    "cid=,uds=/x",
	    "cid=2,uds=/x",
	    "cid=0,uds=/x",
	    "cid=4294967295,uds=/x",
	    "cid=4294967296,uds=/x",
	    "cid=99999999999,uds=/x",
	    "cid=-3,uds=/x",
	    "cid=+3,uds=/x",
	    "cid=0x10,uds=/x",
	    "cid=3 ,uds=/x",
	    "cid=3,uds=/x,cid=4",
	    "cid=3,uds=/x,uds=/y",
	    "cid=3,uds=/x,port=5",
	    "cid=3,/x",
	    "CID=3,uds=/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct virtio_vsock_options o;
		struct verr e = {0};
		assert_int_equal(virtio_vsock_parse(bad[i], &o, &e), -EINVAL);
		assert_int_equal(e.code, -EINVAL);
		assert_true(strlen(e.msg) > 10);
		assert_null(strchr(e.msg, '\n')); /* one line */
	}
	char spec[200], p[VIRTIO_VSOCK_PATH_MAX + 2];
	memset(p, 'a', VIRTIO_VSOCK_PATH_MAX + 1);
	p[VIRTIO_VSOCK_PATH_MAX + 1] = '\0';
	snprintf(spec, sizeof(spec), "cid=10,uds=%s", p);
	struct virtio_vsock_options o;
	struct verr e = {0};
	assert_int_equal(virtio_vsock_parse(spec, &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "shorter path"));
	assert_int_equal(virtio_vsock_parse(NULL, &o, &e), -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(connect_fd),
	    T(connect_fd_table_full),
	    T(in_process_port),
	    T(no_uds_path),
	    cmocka_unit_test(parse_good),
	    cmocka_unit_test(parse_bad),
	    T(device_identity),
	    T(guest_connects_and_talks),
	    T(guest_connect_refused),
	    T(host_connects_and_talks),
	    T(host_data_after_connect_line),
	    T(host_connect_guest_refuses),
	    T(host_gives_up_waiting),
	    T(bad_connect_lines),
	    T(guest_to_host_1mib),
	    T(host_to_guest_1mib),
	    T(guest_half_close),
	    T(guest_stops_receiving),
	    T(host_half_close),
	    T(shutdown_waits_for_buffered_data),
	    T(data_then_hangup),
	    T(hostile_packets),
	    T(credit_overrun),
	    T(owed_rsts_bounded),
	    T(rx_buffer_too_small),
	    T(rx_buffer_header_only),
	    T(connection_limit_and_reset),
	    cmocka_unit_test_setup_teardown(host_connect_before_driver, setup_nostart, teardown),
	    T(stale_event_after_slot_reuse),
	    T(create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
