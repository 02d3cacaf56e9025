/* virtio-vsock (virtio 1.x, section 5.10) with the host side on Unix sockets. The guest's stream
 * connections are muxed onto host Unix sockets: each connection is a slot in a fixed table,
 * keyed by (local port, peer port) through a hash, with its host socket in a private epoll set.
 *
 * Data paths. Host -> guest data is never buffered here: when a host socket is readable, the
 * connection waits for a guest rx buffer and for credit, then reads straight into the buffer.
 * Guest -> host data is written straight to the host socket; what the socket does not take is
 * kept in the connection's buffer (VIRTIO_VSOCK_CONN_BUF bytes, allocated on first need) and
 * flushed on EPOLLOUT. The credit we advertise (buf_alloc = that size, fwd_cnt = bytes handed to
 * the host socket) is exactly that buffer, so a guest that keeps to it never overflows it and the
 * tx queue never has to stall; a guest that does not is reset (RST). We tell the guest our
 * fwd_cnt in every packet, and send a CREDIT_UPDATE when its view of our free space drops below
 * one full packet while we have forwarded more since. Towards the guest we never send more than
 * buf_alloc - (bytes sent - its fwd_cnt); at zero we ask once with CREDIT_REQUEST.
 *
 * What the guest controls and how it is checked (each header is copied once, then checked):
 * - a tx chain shorter than a header, src_cid other than the guest's CID, or dst_cid other than
 *   the host's (2): dropped without an answer (the addresses cannot be trusted);
 * - type other than STREAM, len above 64 KiB or different from the readable bytes after the
 *   header, an unknown op, an op not valid in the connection's state, data beyond the credit we
 *   gave, a fwd_cnt that goes back or counts more than we sent: an RST, and the connection (if
 *   any) is closed; a packet for no connection gets an RST too (unless it is a REQUEST, or an
 *   RST, which is never answered);
 * - everything we owe the guest is bounded: per connection a few pending flags (RST, RESPONSE,
 *   REQUEST, SHUTDOWN, CREDIT_*), at most VIRTIO_VSOCK_MAX_CONNS connections, and RSTs for
 *   packets that have no connection in a ring of RSTQ_MAX (overflow drops the RST: the guest
 *   times out instead);
 * - an rx chain that cannot hold a 44-byte header is a driver bug: the device fails
 *   (NEEDS_RESET). An rx chain that holds only the header gets a CREDIT_UPDATE, never data.
 * Guest-triggered log lines are rate-limited per device.
 *
 * Events and lifetimes. Only one handler is in the vmm event loop: the private epoll fd. Its
 * callback takes the device lock and dispatches up to a batch of events of its own set, each
 * tagged with (slot, generation), not a pointer. A slot is freed by bumping its generation, so
 * an event that was already fetched for a connection closed earlier in the same batch (or a
 * slot reused since) no longer matches and is skipped: nothing is freed under the loop's feet,
 * no deferred free is needed, and the vmm loop's own batch only ever holds our one handler,
 * which lives until virtio_vsock_destroy. Work is bounded per callback (TX_BUDGET/RX_BUDGET
 * chains); the rest is picked up after other handlers ran, through an eventfd we write.
 *
 * The event queue is never used: TRANSPORT_RESET is only needed after a snapshot restore, which
 * vmm does not do; its buffers stay with the device. */
#include "devices/virtio_vsock.h"
#include "devices/option_spec.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define RXQ	  0
#define TXQ	  1
#define EVQ	  2
#define NR_QUEUES 3

#define CID_HOST 2u /* VMADDR_CID_HOST */
#define HDR_LEN	 ((uint32_t)sizeof(struct virtio_vsock_hdr))
/* Largest payload of one packet, either way (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
#define MAX_PKT (64u * 1024)
/* A CREDIT_UPDATE is due when the guest believes less than this is free in our buffer. */
#define CREDIT_LOW MAX_PKT
/* RSTs owed for packets that belong to no connection. */
#define RSTQ_MAX  128
#define HASH_SIZE (2 * VIRTIO_VSOCK_MAX_CONNS) /* a power of two */
/* "CONNECT 4294967295\n" is 19 bytes; a longer line is refused. */
#define CONNECT_LINE_MAX 32
/* Host-side ports of host-initiated connections: [2^30, 2^31), round robin. */
#define LOCAL_PORT_BASE (1u << 30)
/* Chains taken per queue per callback before other handlers get a turn. */
#define TX_BUDGET     64
#define RX_BUDGET     64
#define ACCEPT_BUDGET 16
/* Accepted host sockets still owing their CONNECT line: a host program that connects and says
 * nothing must not take all the connection slots from the guest. */
#define HOST_CMD_MAX 64
#define EPOLL_BATCH  64
#define LOG_BURST    5

/* Slots of the two non-connection fds in the private epoll set. */
#define SLOT_LISTENER UINT32_MAX
#define SLOT_KICK     (UINT32_MAX - 1)

enum conn_state {
	CONN_FREE,
	CONN_HOST_CMD,	  /* an accepted host socket; its CONNECT line is being read */
	CONN_LOCAL_INIT,  /* host-initiated: REQUEST queued or sent, the guest has not answered */
	CONN_ESTABLISHED, /* data flows (subject to the shutdown flags) */
	CONN_CLOSING,	  /* the host socket is closed; an RST for the guest is queued */
};

/* Packets a connection owes the guest (data, RW, is decided from the socket instead). */
#define P_RST		1u
#define P_RESPONSE	2u
#define P_REQUEST	4u
#define P_SHUTDOWN	8u /* the host hung up while no data was being read */
#define P_CREDIT_UPDATE 16u
#define SHUT_BOTH	(VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)

struct conn {
	enum conn_state state;
	uint32_t gen; /* bumped when the slot is freed: epoll tokens carry it */
	int fd;	      /* the host Unix socket, -1 once closed */
	bool in_epoll;
	uint32_t events; /* the epoll interest registered for fd */
	uint32_t local_port, peer_port;
	bool hashed;
	struct conn *hnext;	   /* hash chain, or the free list */
	TAILQ_ENTRY(conn) rx_link; /* in v->rxq: may owe the guest a packet */
	bool in_rxq;

	unsigned pending;   /* P_* */
	bool req_sent;	    /* CONN_LOCAL_INIT: the guest has seen the REQUEST */
	bool readable;	    /* the host socket has data or EOF we have not taken yet */
	bool host_eof;	    /* the host will send nothing more (SHUTDOWN sent or queued) */
	bool host_hup;	    /* EPOLLHUP: fd is out of the epoll set for good */
	uint32_t peer_shut; /* the guest's SHUTDOWN flags so far */
	bool shut_wr;	    /* shutdown(fd, SHUT_WR) done */

	/* host -> guest: the guest's credit */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t rx_cnt;       /* payload bytes put in guest rx buffers */
	bool credit_requested; /* a CREDIT_REQUEST was sent and no credit came since */

	/* guest -> host: our credit */
	uint32_t tx_cnt;	/* payload bytes taken from the guest */
	uint32_t fwd_cnt;	/* of which handed to the host socket */
	uint32_t last_fwd_sent; /* fwd_cnt as the guest last heard it */
	uint8_t *buf;		/* ring of VIRTIO_VSOCK_CONN_BUF bytes, or NULL */
	uint32_t buf_head, buf_len;

	bool silent; /* host-initiated without a CONNECT line: no "OK" line either */
	bool opened; /* it reached CONN_ESTABLISHED (counted in v->opened; closed when freed) */

	/* CONN_HOST_CMD */
	char line[CONNECT_LINE_MAX];
	unsigned line_len;
};

struct rst_item {
	uint32_t local_port, peer_port;
};

struct virtio_vsock {
	struct virtio_dev dev;
	char name[40];
	uint32_t cid;
	struct virtio_vsock_config cfg; /* the config space, little-endian */

	char path[VIRTIO_VSOCK_PATH_MAX + 1];
	dev_t sock_dev; /* the socket file we bound, so destroy removes only ours */
	ino_t sock_ino;
	int listen_fd;	    /* -1 when there is no PATH */
	bool listen_paused; /* out of fds: the listener is out of the epoll set until one frees */

	/* The host port served in-process (virtio_vsock_set_host_port) */
	uint32_t own_port;
	int (*own_open)(void *opaque);
	void *own_opaque;
	int epfd;    /* the private epoll set */
	int kick_fd; /* eventfd: more work after a budget ran out */
	struct event_loop *el;
	struct ev_handler evh;
	bool in_el;

	struct conn conns[VIRTIO_VSOCK_MAX_CONNS];
	struct conn *free;
	unsigned nconns;
	unsigned nhost_cmd; /* slots in CONN_HOST_CMD */
	struct conn *hash[HASH_SIZE];
	uint32_t hash_seed;
	TAILQ_HEAD(, conn) rxq;
	struct rst_item rstq[RSTQ_MAX];
	unsigned rst_head, rst_len;
	uint32_t next_local_port;
	uint64_t opened, closed; /* struct virtio_vsock_stats */

	struct virtq_chain chain;
	struct iovec iov[VIRTQ_CHAIN_MAX];
	struct log_ratelimit rl_guest, rl_host, rl_debug;
};

#define guest_log(v, fmt, ...) \
	vmm_log_ratelimited(&(v)->rl_guest, LOG_BURST, "%s: " fmt, (v)->name, ##__VA_ARGS__)
#define host_log(v, fmt, ...) \
	vmm_log_ratelimited(&(v)->rl_host, LOG_BURST, "%s: " fmt, (v)->name, ##__VA_ARGS__)
/* --verbose lines about single connections: the guest can cause them at will, so rate-limited
 * too. */
#define conn_debug(v, fmt, ...)                                                               \
	do {                                                                                  \
		if (vmm_verbose)                                                              \
			vmm_log_ratelimited(&(v)->rl_debug, LOG_BURST, "%s: " fmt, (v)->name, \
					    ##__VA_ARGS__);                                   \
	} while (0)

/* ---- option parsing ---- */

static const char usage[] = "write cid=N,uds=PATH (N from 3 to 4294967294)";

static int parse_cid(const char *spec, const char *p, size_t len, uint32_t *cid, struct verr *e)
{
	uint64_t v = 0;
	if (len == 0 || len > 10)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			goto bad;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v < 3 || v >= UINT32_MAX)
		return verr_set(
		    e, -EINVAL,
		    "--vsock '%s': cid %" PRIu64 " is reserved or out of range: the guest "
		    "CID is from 3 to 4294967294 (0-2 are the hypervisor, local and host "
		    "addresses)",
		    spec, v);
	*cid = (uint32_t)v;
	return 0;
bad:
	return verr_set(e, -EINVAL, "--vsock '%s': cid '%.*s' is not a decimal number: %s", spec,
			(int)len, p, usage);
}

int virtio_vsock_parse(const char *spec, struct virtio_vsock_options *o, struct verr *e)
{
	memset(o, 0, sizeof(*o));
	if (!spec || !*spec)
		return verr_set(e, -EINVAL, "--vsock: the value is empty: %s", usage);
	/* Messages quote the value: a control character (a newline...) would break the line. */
	for (size_t i = 0; spec[i]; i++)
		if ((unsigned char)spec[i] < ' ' || spec[i] == 0x7f)
			return verr_set(e, -EINVAL,
					"--vsock: the value has a control character (byte %zu): %s",
					i + 1, usage);
	bool have_cid = false, have_uds = false;
	const char *p = spec;
	for (unsigned n = 1;; n++) {
		const char *end = strchrnul(p, ',');
		size_t len = (size_t)(end - p);
		const char *eq = memchr(p, '=', len);
		if (len == 0)
			return verr_set(e, -EINVAL,
					"--vsock '%s': item %u is empty (a stray comma): %s", spec,
					n, usage);
		if (!eq)
			return verr_set(e, -EINVAL, "--vsock '%s': item %u '%.*s' has no '=': %s",
					spec, n, (int)len, p, usage);
		size_t klen = (size_t)(eq - p);
		const char *val = eq + 1;
		size_t vlen = (size_t)(end - val);
		bool *seen;
		if (option_word_is(p, klen, "cid")) {
			seen = &have_cid;
			if (!*seen) {
				int r = parse_cid(spec, val, vlen, &o->cid, e);
				if (r < 0)
					return r;
			}
		} else if (option_word_is(p, klen, "uds")) {
			seen = &have_uds;
			if (vlen == 0)
				return verr_set(e, -EINVAL, "--vsock '%s': uds= is empty: %s", spec,
						usage);
			if (vlen > VIRTIO_VSOCK_PATH_MAX)
				return verr_set(
				    e, -EINVAL,
				    "--vsock '%s': the uds path is %zu bytes; at most %d fit "
				    "(PATH_<port> must fit a Unix socket address): use a "
				    "shorter path",
				    spec, vlen, VIRTIO_VSOCK_PATH_MAX);
			if (!*seen) {
				memcpy(o->uds_path, val, vlen);
				o->uds_path[vlen] = '\0';
			}
		} else {
			return verr_set(
			    e, -EINVAL,
			    "--vsock '%s': unknown key '%.*s' (item %u): the keys are cid= "
			    "and uds=",
			    spec, (int)klen, p, n);
		}
		if (*seen)
			return verr_set(e, -EINVAL,
					"--vsock '%s': '%.*s' is given twice: give it once", spec,
					(int)klen, p);
		*seen = true;
		if (!*end)
			break;
		p = end + 1;
	}
	if (!have_cid)
		return verr_set(e, -EINVAL, "--vsock '%s': no cid= given: %s", spec, usage);
	if (!have_uds)
		return verr_set(e, -EINVAL, "--vsock '%s': no uds= given: %s", spec, usage);
	return 0;
}

/* ---- the connection table ---- */

static uint32_t slot_of(const struct virtio_vsock *v, const struct conn *c)
{
	return (uint32_t)(c - v->conns);
}

static uint64_t token(uint32_t slot, uint32_t gen)
{
	return (uint64_t)gen << 32 | slot;
}

static unsigned hash_of(const struct virtio_vsock *v, uint32_t local, uint32_t peer)
{
	/* Seeded, so a guest cannot aim its port choices at one chain. */
	uint32_t h = (local ^ v->hash_seed) * 0x9e3779b1u;
	h ^= (peer + (h >> 15)) * 0x85ebca6bu;
	h ^= h >> 13;
	return h & (HASH_SIZE - 1);
}

static struct conn *conn_lookup(struct virtio_vsock *v, uint32_t local, uint32_t peer)
{
	for (struct conn *c = v->hash[hash_of(v, local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static void hash_insert(struct virtio_vsock *v, struct conn *c)
{
	unsigned h = hash_of(v, c->local_port, c->peer_port);
	c->hnext = v->hash[h];
	v->hash[h] = c;
	c->hashed = true;
}

static void hash_remove(struct virtio_vsock *v, struct conn *c)
{
	struct conn **pp = &v->hash[hash_of(v, c->local_port, c->peer_port)];
	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
	c->hnext = NULL;
	c->hashed = false;
}

static struct conn *conn_alloc(struct virtio_vsock *v, enum conn_state state, int fd)
{
	struct conn *c = v->free;
	if (!c)
		return NULL;
	v->free = c->hnext;
	uint32_t gen = c->gen;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->state = state;
	c->fd = fd;
	v->nconns++;
	if (state == CONN_HOST_CMD)
		v->nhost_cmd++;
	return c;
}

static void listener_resume(struct virtio_vsock *v);

static void conn_close_fd(struct virtio_vsock *v, struct conn *c)
{
	if (c->fd < 0)
		return;
	if (c->in_epoll)
		epoll_ctl(v->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->in_epoll = false;
	close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
	listener_resume(v);
}

/* Forgets a connection at once: no RST. The slot's generation changes, so events already
 * fetched for it are ignored. */
static void conn_release(struct virtio_vsock *v, struct conn *c)
{
	if (c->state == CONN_FREE)
		return;
	conn_close_fd(v, c);
	if (c->hashed)
		hash_remove(v, c);
	if (c->in_rxq)
		TAILQ_REMOVE(&v->rxq, c, rx_link);
	c->in_rxq = false;
	if (c->state == CONN_HOST_CMD)
		v->nhost_cmd--;
	if (c->opened)
		v->closed++;
	c->state = CONN_FREE;
	c->gen++;
	c->hnext = v->free;
	v->free = c;
	v->nconns--;
}

/* The guest's credit for data towards it. */
static uint32_t peer_credit(const struct conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Whether the connection may read from its host socket for the guest. */
static bool wants_host_data(const struct conn *c)
{
	return c->state == CONN_ESTABLISHED && !c->host_eof &&
	       !(c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_RCV);
}

/* Whether conn_next_op may find something to send (it returns 0 exactly when this is false,
 * after its look at the socket): out of credit, and already asked for more, is nothing. */
static bool may_owe_packet(const struct conn *c)
{
	return c->pending ||
	       (c->readable && wants_host_data(c) && (peer_credit(c) || !c->credit_requested));
}

static void conn_kill(struct virtio_vsock *v, struct conn *c);

/* Brings the epoll interest in line with the connection's state. */
static void conn_epoll(struct virtio_vsock *v, struct conn *c)
{
	if (c->state != CONN_FREE && c->fd >= 0 && !c->host_hup) {
		uint32_t ev = 0;
		if (c->state == CONN_HOST_CMD)
			ev = EPOLLIN;
		if (c->state == CONN_ESTABLISHED) {
			/* A pending read waits for an rx buffer with IN off: level-triggered IN
			 * would fire again and again meanwhile. */
			if (!c->readable && wants_host_data(c))
				ev |= EPOLLIN;
			if (c->buf_len)
				ev |= EPOLLOUT;
		}
		if (!c->in_epoll || ev != c->events) {
			struct epoll_event e = {.events = ev,
						.data.u64 = token(slot_of(v, c), c->gen)};
			int op = c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
			if (epoll_ctl(v->epfd, op, c->fd, &e) < 0) {
				host_log(v, "epoll_ctl on a host socket failed: %s; closing it",
					 strerror(errno));
				conn_kill(v, c);
				return;
			}
			c->in_epoll = true;
			c->events = ev;
		}
	}
}

/* Brings the epoll interest and the rx queue membership in line with the connection's state;
 * called after every change. */
static void conn_sync(struct virtio_vsock *v, struct conn *c)
{
	conn_epoll(v, c);
	if (c->state != CONN_FREE && !c->in_rxq && may_owe_packet(c)) {
		TAILQ_INSERT_TAIL(&v->rxq, c, rx_link);
		c->in_rxq = true;
	}
}

/* Ends a connection on our side: the host socket is closed and, if the guest knows the
 * connection, an RST is queued (the slot is freed once it is given to the guest). */
static void conn_kill(struct virtio_vsock *v, struct conn *c)
{
	if (c->state == CONN_FREE || c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_HOST_CMD || (c->state == CONN_LOCAL_INIT && !c->req_sent)) {
		conn_release(v, c);
		return;
	}
	conn_close_fd(v, c);
	c->state = CONN_CLOSING;
	c->pending = P_RST;
	c->readable = false;
	conn_sync(v, c);
}

/* An RST for a guest packet that has no connection, or a REQUEST refused: counted as an
 * error (devices/virtio.h) even when the ring is full. */
static void rst_enqueue(struct virtio_vsock *v, uint32_t local, uint32_t peer)
{
	virtio_stat_add(&v->dev.stats.errors, 1);
	if (v->rst_len == RSTQ_MAX) {
		guest_log(v, "too many RSTs owed to the guest; dropping the one for port %u", peer);
		return;
	}
	struct rst_item *r = &v->rstq[(v->rst_head + v->rst_len) % RSTQ_MAX];
	r->local_port = local;
	r->peer_port = peer;
	v->rst_len++;
}

/* ---- the host side ---- */

static void kick_self(struct virtio_vsock *v)
{
	uint64_t one = 1;
	ssize_t r = write(v->kick_fd, &one, sizeof(one));
	(void)r; /* EAGAIN: the counter is already non-zero, a wakeup is pending */
}

static void listener_resume(struct virtio_vsock *v)
{
	if (!v->listen_paused)
		return;
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = token(SLOT_LISTENER, 0)};
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->listen_fd, &e) == 0)
		v->listen_paused = false;
}

static uint32_t alloc_local_port(struct virtio_vsock *v, uint32_t peer);

/* A host-initiated connection to guest port PORT: the REQUEST goes out with the next rx
 * buffer. */
static void host_connect(struct virtio_vsock *v, struct conn *c, uint32_t port)
{
	c->state = CONN_LOCAL_INIT;
	c->peer_port = port;
	c->local_port = alloc_local_port(v, port);
	hash_insert(v, c);
	c->pending = P_REQUEST;
	conn_debug(v, "host connection to guest port %u from port %u", port, c->local_port);
}

static void rx_fill(struct virtio_vsock *v);

/* virtio_vsock_connect_fd with the device lock held: a connected host socket that goes straight
 * to guest port PORT (no CONNECT line, no "OK" written back). Returns false when the connection
 * table is full. */
static bool connect_fd_locked(struct virtio_vsock *v, int fd, uint32_t port)
{
	struct conn *c = conn_alloc(v, CONN_HOST_CMD, fd);
	if (!c)
		return false;
	v->nhost_cmd--; /* no CONNECT line to wait for */
	c->silent = true;
	host_connect(v, c, port);
	conn_sync(v, c);
	return true;
}

int virtio_vsock_connect_fd(struct virtio_vsock *v, int fd, uint32_t port, struct verr *e)
{
	pthread_mutex_lock(&v->dev.lock);
	bool ok = connect_fd_locked(v, fd, port);
	if (ok)
		rx_fill(v);
	unsigned n = v->nconns;
	pthread_mutex_unlock(&v->dev.lock);
	if (!ok)
		return verr_set(e, -EBUSY, "vsock: %u connections: no room for one more", n);
	return 0;
}

/* Accepts from the listener; each new socket owes its CONNECT line. */
static void host_accept(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < ACCEPT_BUDGET; i++) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			host_log(v, "accept on %s failed: %s", v->path, strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The connection stays in the backlog and the level-triggered
				 * listener would fire at once again: wait for an fd to close. */
				epoll_ctl(v->epfd, EPOLL_CTL_DEL, v->listen_fd, NULL);
				v->listen_paused = true;
			}
			return;
		}
		struct conn *c =
		    v->nhost_cmd < HOST_CMD_MAX ? conn_alloc(v, CONN_HOST_CMD, fd) : NULL;
		if (!c) {
			host_log(v,
				 "%u connections, %u of them waiting for a CONNECT line: closing a "
				 "new host connection",
				 v->nconns, v->nhost_cmd);
			close(fd);
			continue;
		}
		conn_sync(v, c);
	}
}

/* "CONNECT <port>\n": the keyword in any case, blanks around the decimal port, an optional
 * CR before the LF. */
static bool parse_connect_line(const char *s, size_t len, uint32_t *port)
{
	if (len == 0 || s[len - 1] != '\n')
		return false;
	len--;
	if (len && s[len - 1] == '\r')
		len--;
	if (len < 8 || strncasecmp(s, "connect", 7) != 0 || (s[7] != ' ' && s[7] != '\t'))
		return false;
	size_t i = 7;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	uint64_t val = 0;
	size_t digits = 0;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (++digits > 10)
			return false;
		val = val * 10 + (uint64_t)(s[i] - '0');
	}
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (!digits || i != len || val > UINT32_MAX)
		return false;
	*port = (uint32_t)val;
	return true;
}

static uint32_t alloc_local_port(struct virtio_vsock *v, uint32_t peer)
{
	/* At most VIRTIO_VSOCK_MAX_CONNS keys are in use, so this ends within that many + 1. */
	for (;;) {
		v->next_local_port = ((v->next_local_port + 1) & ~(1u << 31)) | LOCAL_PORT_BASE;
		if (!conn_lookup(v, v->next_local_port, peer))
			return v->next_local_port;
	}
}

/* Reads the CONNECT line without taking a byte past its LF: what follows is stream data. */
static void host_cmd_read(struct virtio_vsock *v, struct conn *c)
{
	char tmp[CONNECT_LINE_MAX];
	size_t room = CONNECT_LINE_MAX - c->line_len;
	ssize_t n = recv(c->fd, tmp, room, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_release(v, c); /* EOF or an error before a whole line */
		return;
	}
	const char *nl = memchr(tmp, '\n', (size_t)n);
	size_t take = nl ? (size_t)(nl - tmp) + 1 : (size_t)n;
	if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
		conn_release(v, c);
		return;
	}
	c->line_len += take;
	uint32_t port;
	if (!nl) {
		if (c->line_len == CONNECT_LINE_MAX) {
			host_log(
			    v, "a host program's CONNECT line is longer than %d bytes; closing it",
			    CONNECT_LINE_MAX - 1);
			conn_release(v, c);
		}
		return;
	}
	if (!parse_connect_line(c->line, c->line_len, &port)) {
		host_log(v, "a host program sent '%.*s' instead of 'CONNECT <port>'; closing it",
			 (int)strcspn(c->line, "\r\n"), c->line);
		conn_release(v, c);
		return;
	}
	v->nhost_cmd--;
	host_connect(v, c, port);
}

/* Hands buffered guest data to the host socket. */
static void conn_flush(struct virtio_vsock *v, struct conn *c)
{
	while (c->buf_len) {
		struct iovec iov[2];
		uint32_t first = VIRTIO_VSOCK_CONN_BUF - c->buf_head;
		if (first > c->buf_len)
			first = c->buf_len;
		iov[0] = (struct iovec){c->buf + c->buf_head, first};
		iov[1] = (struct iovec){c->buf, c->buf_len - first};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1};
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			conn_debug(v, "writing to a host socket: %s", strerror(errno));
			conn_kill(v, c);
			return;
		}
		c->buf_head = (c->buf_head + (uint32_t)w) % VIRTIO_VSOCK_CONN_BUF;
		c->buf_len -= (uint32_t)w;
		c->fwd_cnt += (uint32_t)w;
	}
	if (c->buf_len == 0) {
		if (c->peer_shut == SHUT_BOTH) {
			conn_kill(v, c); /* all delivered: the answer to SHUTDOWN is RST */
			return;
		}
		if ((c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND) && !c->shut_wr) {
			shutdown(c->fd, SHUT_WR);
			c->shut_wr = true;
		}
	}
}

static void credit_check(struct conn *c)
{
	uint32_t seen_used = c->tx_cnt - c->last_fwd_sent;
	uint32_t seen_free =
	    seen_used >= VIRTIO_VSOCK_CONN_BUF ? 0 : VIRTIO_VSOCK_CONN_BUF - seen_used;
	if (c->fwd_cnt != c->last_fwd_sent && seen_free < CREDIT_LOW)
		c->pending |= P_CREDIT_UPDATE;
}

static void host_hangup(struct virtio_vsock *v, struct conn *c)
{
	/* EPOLLHUP is reported whatever the interest: the fd leaves the set for good, and what
	 * is left to read (data, then EOF) is read without waiting for readiness. */
	if (c->in_epoll)
		epoll_ctl(v->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->in_epoll = false;
	c->host_hup = true;
	if (c->buf_len) {
		conn_kill(v, c); /* guest data the host will never read */
		return;
	}
	if (wants_host_data(c))
		c->readable = true;
	else
		c->pending |= P_SHUTDOWN;
}

static void conn_event(struct virtio_vsock *v, struct conn *c, uint32_t events)
{
	switch (c->state) {
	case CONN_HOST_CMD:
		if (events & EPOLLERR)
			conn_release(v, c);
		else
			host_cmd_read(v, c);
		break;
	case CONN_LOCAL_INIT:
		if (events & (EPOLLERR | EPOLLHUP))
			conn_kill(v, c); /* the host program gave up waiting */
		break;
	case CONN_ESTABLISHED:
		if (events & EPOLLERR) {
			conn_kill(v, c);
			break;
		}
		if (events & EPOLLOUT)
			conn_flush(v, c);
		if (c->state != CONN_ESTABLISHED)
			break;
		credit_check(c);
		if (events & EPOLLIN)
			c->readable = true;
		if (events & EPOLLHUP)
			host_hangup(v, c);
		break;
	case CONN_FREE:
	case CONN_CLOSING:
		break;
	}
	conn_sync(v, c);
}

/* ---- the guest's tx packets ---- */

struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len, flags, buf_alloc, fwd_cnt;
	uint16_t type, op;
};

static void decode_hdr(const struct virtio_vsock_hdr *h, struct pkt *p)
{
	p->src_cid = le64toh(h->src_cid);
	p->dst_cid = le64toh(h->dst_cid);
	p->src_port = le32toh(h->src_port);
	p->dst_port = le32toh(h->dst_port);
	p->len = le32toh(h->len);
	p->type = le16toh(h->type);
	p->op = le16toh(h->op);
	p->flags = le32toh(h->flags);
	p->buf_alloc = le32toh(h->buf_alloc);
	p->fwd_cnt = le32toh(h->fwd_cnt);
}

/* The part [off, off+len) of a chain's readable (or writable) buffers as iovecs in v->iov. */
static unsigned chain_slice(struct virtio_vsock *v, const struct virtq_chain *ch, bool writable,
			    size_t off, size_t len)
{
	unsigned first = writable ? ch->nout : 0, end = writable ? ch->nout + ch->nin : ch->nout;
	unsigned n = 0;
	for (unsigned i = first; i < end && len; i++) {
		size_t l = ch->iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = l - off < len ? l - off : len;
		v->iov[n++] = (struct iovec){(uint8_t *)ch->iov[i].iov_base + off, take};
		len -= take;
		off = 0;
	}
	return n;
}

/* Guest data for the host socket: written now, the rest kept in the connection's buffer. */
static void conn_write(struct virtio_vsock *v, struct conn *c, const struct virtq_chain *ch,
		       uint32_t len)
{
	uint32_t done = 0;
	if (c->buf_len == 0) {
		struct msghdr m = {.msg_iov = v->iov,
				   .msg_iovlen = chain_slice(v, ch, false, HDR_LEN, len)};
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_debug(v, "writing to a host socket: %s", strerror(errno));
				conn_kill(v, c);
				return;
			}
			w = 0;
		}
		done = (uint32_t)w;
		c->fwd_cnt += done;
	}
	if (done < len) {
		if (!c->buf) {
			c->buf = malloc(VIRTIO_VSOCK_CONN_BUF);
			if (!c->buf) {
				host_log(v, "out of memory for a connection buffer; resetting it");
				conn_kill(v, c);
				return;
			}
			c->buf_head = 0;
		}
		/* The credit check before us keeps tx_cnt - fwd_cnt, hence buf_len, within it. */
		uint32_t tail = (c->buf_head + c->buf_len) % VIRTIO_VSOCK_CONN_BUF;
		uint32_t rest = len - done;
		uint32_t first =
		    VIRTIO_VSOCK_CONN_BUF - tail < rest ? VIRTIO_VSOCK_CONN_BUF - tail : rest;
		virtq_chain_read(ch, HDR_LEN + done, c->buf + tail, first);
		virtq_chain_read(ch, HDR_LEN + done + first, c->buf, rest - first);
		c->buf_len += rest;
	}
	c->tx_cnt += len;
	virtio_stat_add(&v->dev.stats.bytes, len);
	credit_check(c);
}

/* The connection just reached CONN_ESTABLISHED. */
static void conn_opened(struct virtio_vsock *v, struct conn *c)
{
	c->opened = true;
	v->opened++;
}

/* A guest REQUEST for a port nobody knows: connect to PATH_<port>. */
static void guest_connect(struct virtio_vsock *v, const struct pkt *p)
{
	if (v->nconns >= VIRTIO_VSOCK_MAX_CONNS) {
		guest_log(v, "%u connections already: refusing the guest's connection to port %u",
			  VIRTIO_VSOCK_MAX_CONNS, p->dst_port);
		rst_enqueue(v, p->dst_port, p->src_port);
		return;
	}
	int fd = -1;
	if (v->own_open && p->dst_port == v->own_port) {
		fd = v->own_open(v->own_opaque);
		if (fd < 0) {
			conn_debug(v, "guest connection to port %u refused", p->dst_port);
			rst_enqueue(v, p->dst_port, p->src_port);
			return;
		}
	} else {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->path, p->dst_port);
		if (v->path[0])
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			/* Nobody listening is the common case: no log line beyond debug. */
			conn_debug(v, "guest connection to port %u refused: %s", p->dst_port,
				   v->path[0] ? strerror(errno) : "no --vsock uds");
			if (fd >= 0)
				close(fd);
			rst_enqueue(v, p->dst_port, p->src_port);
			return;
		}
	}
	struct conn *c = conn_alloc(v, CONN_ESTABLISHED, fd);
	conn_opened(v, c);
	c->local_port = p->dst_port;
	c->peer_port = p->src_port;
	hash_insert(v, c);
	c->peer_buf_alloc = p->buf_alloc;
	c->peer_fwd_cnt = c->rx_cnt = p->fwd_cnt; /* the guest's counters may not start at 0 */
	c->pending = P_RESPONSE;
	conn_sync(v, c);
}

static void conn_established(struct virtio_vsock *v, struct conn *c)
{
	char msg[24];
	if (c->silent) {
		c->state = CONN_ESTABLISHED;
		conn_opened(v, c);
		return;
	}
	int n = snprintf(msg, sizeof(msg), "OK %u\n", c->local_port);
	/* A fresh socket has room for a dozen bytes; if not, something is badly wrong. */
	if (send(c->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
		conn_debug(v, "could not acknowledge a host connection");
		conn_kill(v, c);
		return;
	}
	c->state = CONN_ESTABLISHED;
	conn_opened(v, c);
}

static void guest_shutdown(struct virtio_vsock *v, struct conn *c, uint32_t flags)
{
	uint32_t added = flags & SHUT_BOTH & ~c->peer_shut;
	c->peer_shut |= added;
	if (added & VIRTIO_VSOCK_SHUTDOWN_RCV) {
		/* The guest reads no more: neither do we, and the host's writes fail. */
		if (!c->host_hup)
			shutdown(c->fd, SHUT_RD);
		c->readable = false;
	}
	if (c->peer_shut == SHUT_BOTH) {
		if (c->buf_len == 0)
			conn_kill(v, c); /* nothing left to deliver: RST ends it */
		return;			 /* else the last flush does */
	}
	if ((added & VIRTIO_VSOCK_SHUTDOWN_SEND) && c->buf_len == 0 && !c->shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
}

static void tx_packet(struct virtio_vsock *v, const struct virtq_chain *ch)
{
	struct virtio_vsock_hdr raw;
	struct pkt p;
	if (ch->out_bytes < HDR_LEN) {
		guest_log(v, "a tx packet of %u bytes is shorter than its header; dropped",
			  ch->out_bytes);
		return;
	}
	virtq_chain_read(ch, 0, &raw, HDR_LEN);
	decode_hdr(&raw, &p);
	if (p.src_cid != v->cid || p.dst_cid != CID_HOST) {
		guest_log(v, "a tx packet from cid %llu to cid %llu (expected %u to %u); dropped",
			  (unsigned long long)p.src_cid, (unsigned long long)p.dst_cid, v->cid,
			  CID_HOST);
		return;
	}
	struct conn *c = conn_lookup(v, p.dst_port, p.src_port);
	if (p.op == VIRTIO_VSOCK_OP_RST) {
		if (c)
			conn_release(v, c); /* never answered */
		return;
	}

	uint32_t payload = ch->out_bytes - HDR_LEN;
	bool bad = true;
	if (p.type != VIRTIO_VSOCK_TYPE_STREAM)
		guest_log(v, "a tx packet of type %u (only STREAM is offered)", p.type);
	else if (p.len > MAX_PKT)
		guest_log(v, "a tx packet with len %u (at most %u)", p.len, MAX_PKT);
	else if (p.len != payload)
		guest_log(v, "a tx packet with len %u but %u payload bytes", p.len, payload);
	else if (p.op < VIRTIO_VSOCK_OP_REQUEST || p.op > VIRTIO_VSOCK_OP_CREDIT_REQUEST)
		guest_log(v, "a tx packet with unknown op %u", p.op);
	else if (p.op != VIRTIO_VSOCK_OP_RW && p.len)
		guest_log(v, "a tx control packet (op %u) with %u payload bytes", p.op, p.len);
	else
		bad = false;
	if (!c) {
		if (!bad && p.op == VIRTIO_VSOCK_OP_REQUEST)
			guest_connect(v, &p);
		else
			rst_enqueue(v, p.dst_port, p.src_port);
		return;
	}
	if (c->state == CONN_CLOSING)
		return; /* our RST is on its way */
	if (bad)
		goto reset;

	bool handshake = (p.op == VIRTIO_VSOCK_OP_RESPONSE && c->state == CONN_LOCAL_INIT);
	if (handshake) {
		c->rx_cnt = p.fwd_cnt; /* the guest's counters may not start at 0 */
	} else if (p.fwd_cnt - c->peer_fwd_cnt > c->rx_cnt - c->peer_fwd_cnt) {
		guest_log(v, "fwd_cnt %u on port %u: %u bytes were sent, %u acknowledged before",
			  p.fwd_cnt, p.dst_port, c->rx_cnt, c->peer_fwd_cnt);
		goto reset;
	}
	c->peer_fwd_cnt = p.fwd_cnt;
	c->peer_buf_alloc = p.buf_alloc;
	if (peer_credit(c))
		c->credit_requested = false;

	switch (p.op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (!handshake || !c->req_sent)
			goto unexpected;
		conn_established(v, c);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		if (c->state != CONN_ESTABLISHED)
			goto unexpected;
		guest_shutdown(v, c, p.flags);
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (c->state != CONN_ESTABLISHED || (c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND))
			goto unexpected;
		if (p.len > VIRTIO_VSOCK_CONN_BUF - (c->tx_cnt - c->fwd_cnt)) {
			guest_log(v, "%u bytes on port %u beyond the credit given", p.len,
				  p.dst_port);
			goto reset;
		}
		if (p.len)
			conn_write(v, c, ch, p.len);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break; /* the credit was taken above */
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT_UPDATE;
		break;
	default: /* REQUEST for a connection that exists */
		goto unexpected;
	}
	conn_sync(v, c);
	return;
unexpected:
	guest_log(v, "op %u on port %u is not valid in this connection state", p.op, p.dst_port);
reset:
	virtio_stat_add(&v->dev.stats.errors, 1);
	conn_kill(v, c);
}

static void tx_process(struct virtio_vsock *v)
{
	struct virtq *q = &v->dev.vq[TXQ];
	unsigned n = 0;
	bool more = true;
	while (more && virtio_dev_running(&v->dev)) {
		virtq_enable_kicks(q, false);
		for (;;) {
			if (n == TX_BUDGET) {
				kick_self(v); /* kicks stay off: we come back through kick_fd */
				goto out;
			}
			int r = virtq_pop(q, &v->chain);
			if (r < 0) {
				virtio_dev_fail(&v->dev, "malformed chain on the tx queue");
				goto out;
			}
			if (r == 0)
				break;
			tx_packet(v, &v->chain);
			virtq_push(q, &v->chain, 0);
			n++;
		}
		more = virtq_enable_kicks(q, true);
	}
out:
	if (n) {
		virtio_stat_add(&v->dev.stats.requests, n);
		virtio_dev_notify_used(&v->dev, TXQ);
	}
}

/* ---- packets for the guest ---- */

struct rx_item {
	struct conn *c; /* NULL: the head of the RST ring */
	uint16_t op;
};

/* What the connection sends next, in this order: RST, RESPONSE, REQUEST, data or EOF (a
 * SHUTDOWN), SHUTDOWN after a hangup, CREDIT_REQUEST when out of credit, CREDIT_UPDATE. 0 when
 * nothing. Looks at the host socket (MSG_PEEK) but takes nothing from it. */
static uint16_t conn_next_op(struct virtio_vsock *v, struct conn *c)
{
	if (c->pending & P_RST)
		return VIRTIO_VSOCK_OP_RST;
	if (c->pending & P_RESPONSE)
		return VIRTIO_VSOCK_OP_RESPONSE;
	if (c->pending & P_REQUEST)
		return VIRTIO_VSOCK_OP_REQUEST;
	if (c->readable && wants_host_data(c)) {
		char b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0)
			return VIRTIO_VSOCK_OP_SHUTDOWN;
		if (n > 0 && peer_credit(c))
			return VIRTIO_VSOCK_OP_RW;
		if (n > 0 && !c->credit_requested)
			return VIRTIO_VSOCK_OP_CREDIT_REQUEST;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			c->readable = false; /* conn_sync turns IN back on */
		} else if (n < 0) {
			conn_debug(v, "reading a host socket: %s", strerror(errno));
			conn_kill(v, c);
			return VIRTIO_VSOCK_OP_RST;
		}
	}
	if (c->pending & P_SHUTDOWN)
		return VIRTIO_VSOCK_OP_SHUTDOWN;
	if (c->pending & P_CREDIT_UPDATE)
		return VIRTIO_VSOCK_OP_CREDIT_UPDATE;
	return 0;
}

static bool rx_pick(struct virtio_vsock *v, struct rx_item *it)
{
	if (v->rst_len) {
		*it = (struct rx_item){NULL, VIRTIO_VSOCK_OP_RST};
		return true;
	}
	struct conn *c;
	while ((c = TAILQ_FIRST(&v->rxq))) {
		uint16_t op = conn_next_op(v, c);
		if (c->state != CONN_FREE && op) {
			*it = (struct rx_item){c, op};
			return true;
		}
		if (c->state != CONN_FREE && c->in_rxq) {
			TAILQ_REMOVE(&v->rxq, c, rx_link);
			c->in_rxq = false;
			conn_epoll(v, c); /* may re-arm EPOLLIN */
		}
	}
	return false;
}

static void fill_hdr(const struct virtio_vsock *v, struct virtio_vsock_hdr *h, uint32_t local,
		     uint32_t peer, uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(CID_HOST);
	h->dst_cid = htole64(v->cid);
	h->src_port = htole32(local);
	h->dst_port = htole32(peer);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
}

/* How much host data fits in the chain after the header: what the chain, the guest's credit
 * and MAX_PKT allow. */
static uint32_t data_room(const struct conn *c, const struct virtq_chain *ch)
{
	uint32_t max = ch->in_bytes - HDR_LEN;
	uint32_t credit = peer_credit(c);
	if (max > MAX_PKT)
		max = MAX_PKT;
	return max < credit ? max : credit;
}

/* Writes the picked packet into the chain; returns the bytes written. */
static uint32_t rx_commit(struct virtio_vsock *v, const struct rx_item *it,
			  const struct virtq_chain *ch)
{
	struct virtio_vsock_hdr h;
	struct conn *c = it->c;
	if (!c) {
		struct rst_item *r = &v->rstq[v->rst_head];
		fill_hdr(v, &h, r->local_port, r->peer_port, VIRTIO_VSOCK_OP_RST);
		v->rst_head = (v->rst_head + 1) % RSTQ_MAX;
		v->rst_len--;
		virtq_chain_write(ch, 0, &h, HDR_LEN);
		return HDR_LEN;
	}
	uint16_t op = it->op;
	uint32_t len = 0;
	uint32_t room = op == VIRTIO_VSOCK_OP_RW ? data_room(c, ch) : 0;
	if (op == VIRTIO_VSOCK_OP_RW && room == 0) {
		op = VIRTIO_VSOCK_OP_CREDIT_UPDATE; /* a header-only buffer */
	} else if (op == VIRTIO_VSOCK_OP_RW) {
		/* Straight into the guest's buffers, after the header. */
		ssize_t n = readv(c->fd, v->iov, (int)chain_slice(v, ch, true, HDR_LEN, room));
		if (n > 0) {
			len = (uint32_t)n;
			c->rx_cnt += len;
			virtio_stat_add(&v->dev.stats.bytes, len);
		} else if (n == 0) {
			op = VIRTIO_VSOCK_OP_SHUTDOWN;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			c->readable = false;
			op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
		} else {
			conn_debug(v, "reading a host socket: %s", strerror(errno));
			conn_kill(v, c);
			op = VIRTIO_VSOCK_OP_RST;
		}
	}
	fill_hdr(v, &h, c->local_port, c->peer_port, op);
	h.len = htole32(len);
	h.buf_alloc = htole32(VIRTIO_VSOCK_CONN_BUF);
	h.fwd_cnt = htole32(c->fwd_cnt);
	switch (op) {
	case VIRTIO_VSOCK_OP_RST:
		virtq_chain_write(ch, 0, &h, HDR_LEN);
		conn_release(v, c);
		return HDR_LEN;
	case VIRTIO_VSOCK_OP_RESPONSE:
		c->pending &= ~P_RESPONSE;
		break;
	case VIRTIO_VSOCK_OP_REQUEST:
		c->pending &= ~P_REQUEST;
		c->req_sent = true;
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN: {
		/* EOF: the host sends no more; after a hangup it reads no more either. */
		uint32_t flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
		if (c->host_hup)
			flags |= VIRTIO_VSOCK_SHUTDOWN_RCV;
		h.flags = htole32(flags);
		c->pending &= ~P_SHUTDOWN;
		c->host_eof = true;
		c->readable = false;
		break;
	}
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->credit_requested = true;
		break;
	}
	/* Every packet carries our credit. */
	c->pending &= ~P_CREDIT_UPDATE;
	c->last_fwd_sent = c->fwd_cnt;
	virtq_chain_write(ch, 0, &h, HDR_LEN);
	if (c->in_rxq) { /* round robin */
		TAILQ_REMOVE(&v->rxq, c, rx_link);
		c->in_rxq = false;
	}
	conn_sync(v, c);
	return HDR_LEN + len;
}

static void rx_fill(struct virtio_vsock *v)
{
	struct virtq *q = &v->dev.vq[RXQ];
	unsigned n = 0;
	struct rx_item it;
	while (virtio_dev_running(&v->dev) && rx_pick(v, &it)) {
		if (n == RX_BUDGET) {
			kick_self(v);
			break;
		}
		int r = virtq_pop(q, &v->chain);
		if (r < 0) {
			virtio_dev_fail(&v->dev, "malformed chain on the rx queue");
			break;
		}
		if (r == 0)
			break; /* the guest kicks rx when it adds buffers */
		if (v->chain.in_bytes < HDR_LEN) {
			virtio_dev_fail(
			    &v->dev, "an rx buffer of %u bytes cannot hold a %u-byte packet header",
			    v->chain.in_bytes, HDR_LEN);
			break;
		}
		uint32_t written = rx_commit(v, &it, &v->chain);
		virtq_push(q, &v->chain, written);
		n++;
	}
	if (n) {
		virtio_stat_add(&v->dev.stats.requests, n);
		virtio_dev_notify_used(&v->dev, RXQ);
	}
}

/* ---- the event loop callback ---- */

static void vsock_event(void *opaque, uint32_t events)
{
	(void)events;
	struct virtio_vsock *v = opaque;
	struct epoll_event evs[EPOLL_BATCH];
	pthread_mutex_lock(&v->dev.lock);
	int n = epoll_wait(v->epfd, evs, EPOLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		if (slot == SLOT_LISTENER) {
			host_accept(v);
		} else if (slot == SLOT_KICK) {
			uint64_t cnt;
			ssize_t r = read(v->kick_fd, &cnt, sizeof(cnt));
			(void)r;
			tx_process(v);
		} else if (slot < VIRTIO_VSOCK_MAX_CONNS) {
			struct conn *c = &v->conns[slot];
			/* A connection freed earlier in this batch (or its slot reused) has a new
			 * generation: the event is stale. */
			if (c->state != CONN_FREE && c->gen == gen)
				conn_event(v, c, evs[i].events);
		}
	}
	rx_fill(v);
	pthread_mutex_unlock(&v->dev.lock);
}

/* ---- virtio device ops ---- */

static void vsock_config_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_vsock *v = d->priv;
	memcpy(buf, (const uint8_t *)&v->cfg + off, len);
}

static void vsock_config_write(struct virtio_dev *d, uint32_t off, const void *buf, uint32_t len)
{
	(void)d, (void)off, (void)buf, (void)len; /* guest_cid is read-only */
}

static int vsock_activate(struct virtio_dev *d)
{
	struct virtio_vsock *v = d->priv;
	if (!d->vq[RXQ].ready || !d->vq[TXQ].ready)
		return -EINVAL;
	/* Host connections may have waited for the driver. */
	tx_process(v);
	rx_fill(v);
	return 0;
}

static void vsock_reset(struct virtio_dev *d)
{
	struct virtio_vsock *v = d->priv;
	/* Connections the guest knows about end (the host sockets see EOF). Host programs whose
	 * REQUEST the guest has not seen yet keep waiting for the next driver. */
	for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
		struct conn *c = &v->conns[i];
		if (c->state == CONN_FREE || c->state == CONN_HOST_CMD)
			continue;
		if (c->state == CONN_LOCAL_INIT && !c->req_sent) {
			c->pending = P_REQUEST;
			continue;
		}
		conn_release(v, c);
	}
	v->rst_head = v->rst_len = 0;
}

static void vsock_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_vsock *v = d->priv;
	if (!virtio_dev_running(d))
		return;
	if (q == TXQ)
		tx_process(v);
	if (q == TXQ || q == RXQ)
		rx_fill(v);
	/* EVQ: the driver posted event buffers; they are kept for a TRANSPORT_RESET that never
	 * comes (see the top of the file). */
}

static const struct virtio_dev_ops vsock_ops = {
    .config_read = vsock_config_read,
    .config_write = vsock_config_write,
    .activate = vsock_activate,
    .reset = vsock_reset,
    .queue_notify = vsock_queue_notify,
};

/* ---- create / destroy ---- */

/* Binds and listens on the Unix socket PATH, replacing a stale socket file; records the file's
 * identity so destroy removes only its own. */
static int open_listener(struct virtio_vsock *v, struct verr *e)
{
	const char *path = v->path;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = v->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return verr_set(e, -errno, "virtio-vsock: socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		if (err != EADDRINUSE)
			return verr_set(e, -err, "--vsock uds=%s: cannot create the socket: %s",
					path, strerror(err));
		struct stat st;
		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
			return verr_set(
			    e, -EEXIST,
			    "--vsock uds=%s: the path exists and is not a socket: remove "
			    "it or choose another path",
			    path);
		/* A socket file: in use if something listens on it, else left over. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int r = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		err = errno;
		if (probe >= 0)
			close(probe);
		if (r == 0 || err != ECONNREFUSED)
			return verr_set(e, -EADDRINUSE,
					"--vsock uds=%s: the socket is in use (another process "
					"listens on it): stop it or choose another path",
					path);
		if (unlink(path) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return verr_set(e, -errno,
					"--vsock uds=%s: cannot replace a stale socket there: %s",
					path, strerror(errno));
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		v->sock_dev = st.st_dev;
		v->sock_ino = st.st_ino;
	}
	if (listen(fd, 128) < 0)
		return verr_set(e, -errno, "--vsock uds=%s: listen: %s", path, strerror(errno));
	return 0;
}

/* Closes the listener and removes its socket file, if the file is still the one we bound. */
static void close_listener(struct virtio_vsock *v)
{
	if (v->listen_fd < 0)
		return;
	close(v->listen_fd);
	struct stat st;
	if (v->sock_ino && lstat(v->path, &st) == 0 && st.st_dev == v->sock_dev &&
	    st.st_ino == v->sock_ino)
		unlink(v->path);
}

static int add_fd(struct virtio_vsock *v, int fd, uint32_t slot, struct verr *e)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = token(slot, 0)};
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return verr_set(e, -errno, "virtio-vsock: epoll_ctl: %s", strerror(errno));
	return 0;
}

int virtio_vsock_create(struct virtio_vsock **out, const struct virtio_vsock_options *o,
			const struct guest_mem *mem, struct event_loop *el, struct verr *e)
{
	*out = NULL;
	size_t plen = strnlen(o->uds_path, sizeof(o->uds_path));
	if (plen > VIRTIO_VSOCK_PATH_MAX)
		return verr_set(e, -EINVAL, "--vsock: the uds path is too long");
	if (o->cid < 3 || o->cid == UINT32_MAX)
		return verr_set(e, -EINVAL, "--vsock: cid %u is reserved", o->cid);
	if (!el)
		return verr_set(e, -EINVAL, "virtio-vsock: no event loop");
	struct virtio_vsock *v = calloc(1, sizeof(*v));
	if (!v)
		return verr_set(e, -ENOMEM, "virtio-vsock: out of memory");
	snprintf(v->name, sizeof(v->name), "virtio-vsock cid %u", o->cid);
	virtio_dev_init(&v->dev, v->name, VIRTIO_ID_VSOCK, &vsock_ops, v,
			(1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC),
			sizeof(v->cfg), NR_QUEUES, mem);
	v->cid = o->cid;
	v->cfg.guest_cid = htole64(o->cid);
	memcpy(v->path, o->uds_path, plen + 1);
	v->listen_fd = v->epfd = v->kick_fd = -1;
	v->el = el;
	for (unsigned i = VIRTIO_VSOCK_MAX_CONNS; i-- > 0;) {
		v->conns[i].fd = -1;
		v->conns[i].hnext = v->free;
		v->free = &v->conns[i];
	}
	TAILQ_INIT(&v->rxq);
	v->next_local_port = LOCAL_PORT_BASE - 1;
	if (getrandom(&v->hash_seed, sizeof(v->hash_seed), GRND_NONBLOCK) != sizeof(v->hash_seed))
		v->hash_seed = (uint32_t)(uintptr_t)v ^ (uint32_t)getpid();

	int r;
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	v->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->epfd < 0 || v->kick_fd < 0) {
		r = verr_set(e, -errno, "virtio-vsock: epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	if (plen) {
		r = open_listener(v, e);
		if (r < 0)
			goto fail;
		r = add_fd(v, v->listen_fd, SLOT_LISTENER, e);
		if (r < 0)
			goto fail;
	}
	r = add_fd(v, v->kick_fd, SLOT_KICK, e);
	if (r < 0)
		goto fail;
	v->evh = (struct ev_handler){.fd = v->epfd, .fn = vsock_event, .opaque = v};
	r = ev_add(el, &v->evh, EPOLLIN);
	if (r < 0) {
		verr_set(e, r, "virtio-vsock: adding to the event loop: %s", strerror(-r));
		goto fail;
	}
	v->in_el = true;
	*out = v;
	return 0;
fail:
	virtio_vsock_destroy(v);
	return r;
}

struct virtio_dev *virtio_vsock_dev(struct virtio_vsock *v)
{
	return &v->dev;
}

void virtio_vsock_set_host_port(struct virtio_vsock *v, uint32_t port, int (*open_fd)(void *opaque),
				void *opaque)
{
	v->own_port = port;
	v->own_open = open_fd;
	v->own_opaque = opaque;
}

unsigned virtio_vsock_conn_count(struct virtio_vsock *v)
{
	return v->nconns;
}

void virtio_vsock_get_stats(struct virtio_vsock *v, struct virtio_vsock_stats *out)
{
	out->opened = v->opened;
	out->closed = v->closed;
	out->active = v->nconns;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (!v)
		return;
	if (v->in_el)
		ev_del(v->el, &v->evh);
	for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
		conn_release(v, &v->conns[i]);
	/* Only our sockets: another process may have put its own there since. */
	close_listener(v);
	if (v->epfd >= 0)
		close(v->epfd);
	if (v->kick_fd >= 0)
		close(v->kick_fd);
	virtio_dev_destroy(&v->dev);
	free(v);
}
