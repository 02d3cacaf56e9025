/* The control API's server (api.h): the socket, the connections and the dispatch of requests to
 * the VM's lifecycle calls. The wire format is vmm/api/api_proto.c's. */
#include "vmm/api/api.h"
#include "guest/agent_proto.h"
#include "vmm/api/api_proto.h"
#include "vmm/snapshot/vm_snapshot.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct api_conn {
	struct api_server *srv;
	int fd;
	struct ev_handler h;
	bool waiting_stop;  /* a stop was accepted: the reply comes with the VM's end */
	bool waiting_start; /* a container's start: the reply comes when its process starts */
	/* An error was replied: what the client still sends is read and dropped until it closes
	 * (closing with unread bytes would reset the connection and lose the reply), at most
	 * API_DRAIN_MAX bytes. */
	bool closing;
	size_t drained;
	/* descriptors received (SCM_RIGHTS) for the next request: snapshot's files */
	int fds[API_MAX_FDS];
	unsigned nfds;
	bool fds_refused; /* more came than a request takes, or the control message was cut */
	size_t len;
	char buf[API_REQUEST_MAX];
};

#define API_DRAIN_MAX (1u << 20)

struct api_server {
	struct vm *vm;
	int lfd;
	struct ev_handler lh;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	int dir_fd;	  /* O_PATH, the socket's directory: reached even from another root */
	const char *name; /* the socket's name in it (in path) */
	struct api_conn *conns[API_MAX_CLIENTS];
};

static void conn_drop_fds(struct api_conn *c)
{
	for (unsigned i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
	c->fds_refused = false;
}

static void conn_close(struct api_conn *c)
{
	struct api_server *s = c->srv;
	conn_drop_fds(c);
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	if (c->fd >= 0) {
		ev_del(&s->vm->el, &c->h);
		close(c->fd);
	}
	free(c);
}

/* Sends one whole line. The socket is non-blocking: a client that does not read its replies
 * (a full socket buffer) loses the connection. Returns 0 or a negative errno. */
static int send_line(int fd, char *line)
{
	if (!line)
		return -ENOMEM;
	size_t len = strlen(line), off = 0;
	while (off < len) {
		ssize_t w = send(fd, line + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			free(line);
			return w < 0 ? -errno : -EPIPE;
		}
		off += (size_t)w;
	}
	free(line);
	return 0;
}

static void reply_error_and_close(struct api_conn *c, const char *msg)
{
	if (send_line(c->fd, api_error_line("%s", msg)) < 0) {
		conn_close(c);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->closing = true;
	c->len = 0;
}

/* Reads and drops what a client in the closing state sends; closes at its EOF or the limit. */
static void drain(struct api_conn *c)
{
	for (unsigned i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || (c->drained += (size_t)n) > API_DRAIN_MAX) {
			conn_close(c);
			return;
		}
	}
}

/* Returns 0 to keep the connection, 1 when it was handed on or closed. */
static int handle(struct api_conn *c, const struct api_request *rq, bool trailing)
{
	struct vm *vm = c->srv->vm;
	struct verr e = {0};
	json_object *reply = NULL;
	int r = 0;
	switch (rq->op) {
	case API_OP_STATE:
		reply = vm_state_json(vm);
		break;
	case API_OP_METRICS: {
		/* the metrics object's keys, after "v" and "ok" */
		json_object *m = vm_metrics_json(vm);
		reply = m ? api_reply_ok() : NULL;
		if (reply) {
			json_object_object_foreach(m, k, v)
			    json_object_object_add(reply, k, json_object_get(v));
		}
		json_object_put(m);
		break;
	}
	case API_OP_START:
		r = vm_start(vm, &e);
		/* A container's start replies once its process runs (what an OCI start promises) */
		if (r == 0 && vm->container && !atomic_load(&vm->process_started)) {
			c->waiting_start = true;
			return 0;
		}
		break;
	case API_OP_PAUSE:
		r = vm_pause(vm, &e);
		if (r == 0 && (reply = api_reply_ok()))
			json_object_object_add(reply, "pause_ms",
					       json_object_new_double(vm->pause_ms));
		break;
	case API_OP_RESUME:
		r = vm_resume(vm, &e);
		if (r == 0 && (reply = api_reply_ok()))
			json_object_object_add(reply, "resume_ms",
					       json_object_new_double(vm->resume_ms));
		break;
	case API_OP_SIGNAL:
		r = vm_signal(vm, rq->signal, &e);
		break;
	case API_OP_STOP:
		r = vm_stop(vm, rq->timeout_ms, &e);
		if (r == 0) {
			c->waiting_stop = true;
			return 0;
		}
		break;
	case API_OP_SNAPSHOT: {
		struct vm_snapshot_info si;
		if (c->nfds != 2 || c->fds_refused)
			r = verr_set(&e, -EINVAL,
				     "snapshot: send the state and the memory file's descriptors "
				     "(SCM_RIGHTS, in that order) with the request, %s came: vmm "
				     "ctl snapshot DIR does",
				     c->fds_refused ? "more"
				     : c->nfds	    ? "one"
						    : "none");
		else
			r = vm_snapshot(vm, c->fds[0], c->fds[1], &si, &e);
		conn_drop_fds(c);
		if (r == 0 && (reply = api_reply_ok())) {
			json_object_object_add(reply, "state_bytes",
					       json_object_new_int64((int64_t)si.state_bytes));
			json_object_object_add(reply, "sections", json_object_new_int(si.sections));
			json_object_object_add(reply, "memory_bytes",
					       json_object_new_int64((int64_t)si.memory_bytes));
			json_object_object_add(reply, "memory_written",
					       json_object_new_int64((int64_t)si.memory_written));
			json_object_object_add(reply, "snapshot_ms", json_object_new_double(si.ms));
		}
		break;
	}
	case API_OP_EXEC:
		if (!vm->container || !vm->virtio.vsock)
			r = verr_set(&e, -ENOTSUP, "exec: this VM runs no container (no agent)");
		else if (vm_state(vm) != VM_RUNNING)
			r = verr_set(&e, -EBUSY, "exec: the VM is %s, not running",
				     vm_state_name(vm_state(vm)));
		else if (!atomic_load(&vm->process_started))
			r = verr_set(&e, -EBUSY,
				     "exec: the container is still booting (its process "
				     "has not started): exec once `start` has replied");
		else if (trailing)
			r = verr_set(&e, -EPROTO,
				     "exec: bytes came after the request before its "
				     "reply: wait for the reply, then speak the agent "
				     "protocol");
		if (r < 0)
			break;
		if (send_line(c->fd, api_reply_line(api_reply_ok())) < 0) {
			conn_close(c);
			return 1;
		}
		/* The connection now belongs to the vsock device, as a host connection to the
		 * agent's port: the client speaks the agent protocol on it
		 * (docs/agent-protocol.md). */
		ev_del(&vm->el, &c->h);
		r = virtio_vsock_connect_fd(vm->virtio.vsock, c->fd, AGENT_VSOCK_PORT, &e);
		if (r < 0) {
			static struct log_ratelimit rl;
			vmm_log_ratelimited(&rl, 2, "api: exec: %s", e.msg);
			close(c->fd); /* the device did not take it */
		}
		c->fd = -1;
		conn_close(c);
		return 1;
	}
	if (r < 0) {
		json_object_put(reply);
		reply_error_and_close(c, e.msg);
		return 1;
	}
	if (!reply)
		reply = api_reply_ok();
	if (send_line(c->fd, api_reply_line(reply)) < 0) {
		conn_close(c);
		return 1;
	}
	return 0;
}

/* recv into c->buf, keeping the descriptors that come along (close-on-exec) for the next
 * request: at most API_MAX_FDS; more, or a control message cut short, marks them refused. */
static ssize_t conn_recv(struct api_conn *c)
{
	union {
		char b[CMSG_SPACE((API_MAX_FDS + 1) * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = sizeof(c->buf) - c->len};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (m.msg_flags & MSG_CTRUNC)
		c->fds_refused = true;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(fd));
			if (c->nfds < API_MAX_FDS) {
				c->fds[c->nfds++] = fd;
			} else {
				close(fd);
				c->fds_refused = true;
			}
		}
	}
	return n;
}

static void on_conn(void *opaque, uint32_t events)
{
	struct api_conn *c = opaque;
	if (c->closing) {
		drain(c);
		return;
	}
	if (c->waiting_stop || c->waiting_start) {
		/* nothing more is read; a client that hangs up just stops waiting */
		char b[256];
		ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
		    (events & (EPOLLHUP | EPOLLERR)))
			conn_close(c);
		return;
	}
	ssize_t n = conn_recv(c);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (!nl) {
			if (c->len == sizeof(c->buf))
				reply_error_and_close(c, "the request is longer than 4096 bytes "
							 "without a newline: send one JSON object "
							 "per line");
			return;
		}
		size_t line = (size_t)(nl - c->buf) + 1;
		struct api_request rq;
		struct verr e = {0};
		if (api_request_parse(c->buf, line, &rq, &e) < 0) {
			reply_error_and_close(c, e.msg);
			return;
		}
		bool trailing = c->len > line;
		memmove(c->buf, c->buf + line, c->len - line);
		c->len -= line;
		if (rq.op != API_OP_SNAPSHOT && (c->nfds || c->fds_refused)) {
			reply_error_and_close(c, "descriptors came with a request that takes none "
						 "(only snapshot does): send them with it alone");
			return;
		}
		if (handle(c, &rq, trailing))
			return;
		if (c->waiting_stop || c->waiting_start)
			return;
	}
}

static void on_accept(void *opaque, uint32_t events)
{
	struct api_server *s = opaque;
	(void)events;
	for (unsigned tries = 0; tries < 16; tries++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED) {
				static struct log_ratelimit rl;
				vmm_log_ratelimited(&rl, 1, "api: accept on %s failed: %s", s->path,
						    strerror(errno));
			}
			return;
		}
		unsigned slot;
		for (slot = 0; slot < API_MAX_CLIENTS && s->conns[slot]; slot++)
			;
		struct api_conn *c = slot < API_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			send_line(fd, api_error_line("%u clients are connected already: try again "
						     "when one has gone",
						     API_MAX_CLIENTS));
			close(fd);
			continue;
		}
		c->srv = s;
		c->fd = fd;
		c->h = (struct ev_handler){fd, on_conn, c};
		if (ev_add(&s->vm->el, &c->h, EPOLLIN) < 0) {
			close(fd);
			free(c);
			continue;
		}
		s->conns[slot] = c;
	}
}

/* A socket file left at path: replaced if nobody listens on it. */
static int clear_stale(const char *path, struct verr *e)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT
			   ? 0
			   : verr_set(e, -errno, "--api-sock %s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return verr_set(
		    e, -EEXIST,
		    "--api-sock %s: the path exists and is not a socket: choose another "
		    "path or remove it",
		    path);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return verr_set(e, -errno, "--api-sock: socket: %s", strerror(errno));
	int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	if (live)
		return verr_set(e, -EADDRINUSE,
				"--api-sock %s: another process serves this socket (a vmm still "
				"running?): choose another path",
				path);
	if (unlink(path) < 0)
		return verr_set(e, -errno, "--api-sock %s: cannot remove the stale socket: %s",
				path, strerror(errno));
	return 0;
}

int api_server_start(struct api_server **out, struct vm *vm, const char *path, struct verr *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return verr_set(e, -ENAMETOOLONG,
				"--api-sock %s: longer than the %zu bytes a Unix socket path can "
				"have: use a shorter path",
				path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	int r = clear_stale(path, e);
	if (r < 0)
		return r;
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s)
		return verr_set(e, -ENOMEM, "--api-sock: out of memory");
	s->vm = vm;
	s->dir_fd = -1;
	strcpy(s->path, path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		r = verr_set(e, -errno, "--api-sock: socket: %s", strerror(errno));
		free(s);
		return r;
	}
	/* mode 0600 from the start: no moment when others could connect */
	mode_t old = umask(0177);
	r = bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
	int err = errno;
	umask(old);
	struct stat st;
	if (r < 0 || listen(s->lfd, API_MAX_CLIENTS) < 0 || stat(path, &st) < 0) {
		r = verr_set(e, -(r < 0 ? err : errno), "--api-sock %s: cannot listen: %s", path,
			     strerror(r < 0 ? err : errno));
		close(s->lfd);
		free(s);
		return r;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	/* the directory, so the socket is removed at exit even when vmm's root has changed since
	 * (--enter-rootfs): without it, only the path */
	char *slash = strrchr(s->path, '/');
	s->name = slash ? slash + 1 : s->path;
	if (slash) {
		*slash = '\0';
		s->dir_fd =
		    open(slash == s->path ? "/" : s->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		*slash = '/';
	} else {
		s->dir_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	s->lh = (struct ev_handler){s->lfd, on_accept, s};
	r = ev_add(&vm->el, &s->lh, EPOLLIN);
	if (r < 0) {
		api_server_destroy(s);
		return verr_set(e, r, "--api-sock: epoll_ctl: %s", strerror(-r));
	}
	*out = s;
	return 0;
}

void api_server_process_started(struct api_server *s)
{
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_conn *c = s->conns[i];
		if (!c || !c->waiting_start)
			continue;
		c->waiting_start = false;
		json_object *reply = api_reply_ok();
		if (reply)
			json_object_object_add(
			    reply, "process_start_ms",
			    json_object_new_double(s->vm->process_start_ms - s->vm->start_ms));
		if (send_line(c->fd, api_reply_line(reply)) < 0)
			conn_close(c);
	}
}

void api_server_finish(struct api_server *s, int status)
{
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_conn *c = s->conns[i];
		if (c && c->waiting_start) {
			send_line(c->fd, api_error_line("start: the VM ended (status %d) before "
							"the container's process started",
							status));
			conn_close(c);
			continue;
		}
		if (!c || !c->waiting_stop)
			continue;
		json_object *reply = api_reply_ok();
		if (reply)
			json_object_object_add(reply, "status", json_object_new_int(status));
		send_line(c->fd, api_reply_line(reply));
		conn_close(c);
	}
}

void api_server_destroy(struct api_server *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
	if (s->lfd >= 0) {
		ev_del(&s->vm->el, &s->lh);
		close(s->lfd);
	}
	/* only our own socket: another vmm may have taken the path since */
	struct stat st;
	if (s->dir_fd >= 0) {
		if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_dev == s->dev && st.st_ino == s->ino)
			unlinkat(s->dir_fd, s->name, 0);
		close(s->dir_fd);
	} else if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino) {
		unlink(s->path);
	}
	free(s);
}
