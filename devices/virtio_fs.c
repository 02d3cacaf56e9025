/* virtio-fs: option parsing, the config space, and the queues feeding FUSE requests to the
 * passthrough server (devices/fuse_server.c). */
#include "devices/virtio_fs.h"
#include "devices/option_spec.h"

#include <endian.h>
#include <errno.h>
#include <linux/fuse.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef VIRTIO_ID_FS
#define VIRTIO_ID_FS 26
#endif

/* Locks, in this order when nested: dev.lock, then srv_lock; wlock is never held with another.
 * - dev.lock (the transport's): the rings, the status, the interrupt; fs_notify and fs_reset run
 *   under it. The worker holds it around virtq_pop and virtq_push only.
 * - srv_lock: the FUSE server, held by the worker around one request (taken before dev.lock is
 *   dropped, so a reset cannot slip between the pop and the request) and by fs_reset around
 *   fuse_server_reset (a reset waits for the request in flight).
 * - wlock: the worker's wake-up state (pending, stop, busy, init). */
struct virtio_fs {
	struct virtio_dev dev;
	char name[64];
	struct fuse_server *srv;
	struct virtio_fs_config cfg; /* little-endian */
	struct virtq_chain chain;    /* the worker's chain being served (too big for a stack) */

	pthread_mutex_t srv_lock;
	unsigned epoch; /* bumped by each reset (dev.lock): a chain popped before is not pushed */

	pthread_t worker;
	bool started;
	pthread_mutex_t wlock;
	pthread_cond_t wake; /* to the worker: pending or stop */
	pthread_cond_t idle; /* from the worker: init done, or nothing pending and not busy */
	unsigned pending;    /* a bit per queue kicked since the worker last looked */
	bool stop, busy, init_done;
	int init_rc;
	struct verr init_err;
	int (*thread_init)(void *opaque, struct verr *e);
	void *thread_opaque;
};

/* ---- option parsing ---- */

static const char usage[] = "write tag=TAG,path=DIR[,cache=none|auto|always][,ro][,dev][,suid]";

#define SPEC_FMT     "--share '%.*s%s'"
#define SPEC_ARG(sp) OPTION_SPEC_ARG(sp)

static int set_tag(const char *spec, const char *p, size_t len, struct virtio_fs_options *o,
		   struct verr *e)
{
	if (len == 0)
		return verr_set(e, -EINVAL,
				SPEC_FMT ": tag= is empty: give the name the guest mounts (1 to "
					 "%d bytes)",
				SPEC_ARG(spec), VIRTIO_FS_TAG_MAX);
	if (len > VIRTIO_FS_TAG_MAX)
		return verr_set(e, -EINVAL,
				SPEC_FMT ": tag '%.*s' is %zu bytes, more than the %d a virtio-fs "
					 "tag holds: shorten it",
				SPEC_ARG(spec), (int)len, p, len, VIRTIO_FS_TAG_MAX);
	for (size_t i = 0; i < len; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return verr_set(e, -EINVAL,
					SPEC_FMT
					": tag '%.*s' has a byte other than printable "
					"ASCII at %zu: use letters, digits and punctuation",
					SPEC_ARG(spec), (int)len, p, i);
	memcpy(o->tag, p, len);
	o->tag[len] = '\0';
	return 0;
}

static int set_path(const char *spec, const char *p, size_t len, struct virtio_fs_options *o,
		    struct verr *e)
{
	if (len == 0)
		return verr_set(e, -EINVAL, SPEC_FMT ": path= is empty: %s", SPEC_ARG(spec), usage);
	if (len >= sizeof(o->path))
		return verr_set(e, -EINVAL,
				SPEC_FMT ": the path is %zu bytes, longer than PATH_MAX (%zu)",
				SPEC_ARG(spec), len, sizeof(o->path) - 1);
	memcpy(o->path, p, len);
	o->path[len] = '\0';
	return 0;
}

int virtio_fs_parse(const char *spec, struct virtio_fs_options *o, struct verr *e)
{
	memset(o, 0, sizeof(*o));
	o->cache = FUSE_CACHE_AUTO;
	if (!spec || !*spec)
		return verr_set(e, -EINVAL, "--share: the value is empty: %s", usage);
	bool have_tag = false, have_path = false, have_cache = false, have_ro = false;
	bool have_dev = false, have_suid = false;
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
		bool *flag = NULL;
		if (option_word_is(p, klen, "ro")) {
			seen = &have_ro;
			flag = &o->ro;
		} else if (option_word_is(p, klen, "dev")) {
			seen = &have_dev;
			flag = &o->dev;
		} else if (option_word_is(p, klen, "suid")) {
			seen = &have_suid;
			flag = &o->suid;
		}
		if (flag) {
			if (eq)
				return verr_set(e, -EINVAL,
						SPEC_FMT ": '%.*s' takes no value: write ,%.*s",
						SPEC_ARG(spec), (int)klen, p, (int)klen, p);
			*flag = true;
		} else if (option_word_is(p, klen, "tag") && eq) {
			seen = &have_tag;
			if (!have_tag)
				r = set_tag(spec, val, vlen, o, e);
		} else if (option_word_is(p, klen, "path") && eq) {
			seen = &have_path;
			if (!have_path)
				r = set_path(spec, val, vlen, o, e);
		} else if (option_word_is(p, klen, "cache") && eq) {
			seen = &have_cache;
			if (!have_cache && fuse_cache_parse(val, vlen, &o->cache) < 0)
				return verr_set(e, -EINVAL,
						SPEC_FMT ": unknown cache mode '%.*s': write "
							 "cache=none, cache=auto or cache=always",
						SPEC_ARG(spec), (int)vlen, val);
		} else {
			return verr_set(e, -EINVAL,
					SPEC_FMT ": unknown key '%.*s' (item %u): the keys are "
						 "tag=, path=, cache=, ro, dev and suid",
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
	if (!have_tag)
		return verr_set(e, -EINVAL, SPEC_FMT ": no tag: %s", SPEC_ARG(spec), usage);
	if (!have_path)
		return verr_set(e, -EINVAL, SPEC_FMT ": no path: %s", SPEC_ARG(spec), usage);
	return 0;
}

/* ---- the queues ---- */

/* Serves every available chain of queue qi (hiprio or a request queue: the same requests, the
 * server tells them apart by opcode), on the worker thread. The rings are touched under dev.lock,
 * the request runs under srv_lock only. */
static void fs_serve(struct virtio_fs *f, unsigned qi)
{
	struct virtio_dev *d = &f->dev;
	pthread_mutex_lock(&d->lock);
	if (qi >= d->nr_queues || !virtio_dev_running(d)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	struct virtq *q = &d->vq[qi];
	virtq_enable_kicks(q, false);
	for (;;) {
		int rc = virtq_pop(q, &f->chain);
		if (rc < 0) {
			virtio_dev_fail(d, "malformed descriptor chain on queue %u", qi);
			break;
		}
		if (rc == 0) {
			if (!virtq_enable_kicks(q, true))
				break;
			virtq_enable_kicks(q, false);
			continue;
		}
		const struct virtq_chain *c = &f->chain;
		unsigned epoch = f->epoch;
		struct fuse_result res;
		pthread_mutex_lock(&f->srv_lock);
		pthread_mutex_unlock(&d->lock);
		int r = fuse_server_handle(f->srv, c->iov, c->nout, c->iov + c->nout, c->nin, &res);
		pthread_mutex_unlock(&f->srv_lock);
		pthread_mutex_lock(&d->lock);
		/* A reset (or a failure) while the request ran: the chain belongs to rings that are
		 * gone; it is dropped. */
		if (f->epoch != epoch || !virtio_dev_running(d))
			break;
		if (r < 0) {
			virtio_dev_fail(d,
					"malformed FUSE request (opcode %u, %u readable and %u "
					"writable bytes) on queue %u",
					res.opcode, c->out_bytes, c->in_bytes, qi);
			break;
		}
		virtq_push(q, c, res.len);
		virtio_stat_add(&d->stats.requests, 1);
		virtio_stat_add(&d->stats.bytes, res.data_bytes);
		if (res.error && res.error != ENOENT)
			virtio_stat_add(&d->stats.errors, 1);
		virtio_dev_notify_used(d, qi);
	}
	pthread_mutex_unlock(&d->lock);
}

/* The worker: its own setup (the seccomp list), then the queues as they are kicked. */
static void *fs_worker(void *arg)
{
	struct virtio_fs *f = arg;
	struct verr e = {0};
	int rc = f->thread_init ? f->thread_init(f->thread_opaque, &e) : 0;
	pthread_mutex_lock(&f->wlock);
	f->init_rc = rc;
	f->init_err = e;
	f->init_done = true;
	pthread_cond_broadcast(&f->idle);
	while (rc == 0) {
		while (!f->pending && !f->stop)
			pthread_cond_wait(&f->wake, &f->wlock);
		if (f->stop)
			break;
		unsigned pending = f->pending;
		f->pending = 0;
		f->busy = true;
		pthread_mutex_unlock(&f->wlock);
		for (unsigned qi = 0; qi < 1 + VIRTIO_FS_REQUEST_QUEUES; qi++)
			if (pending & (1u << qi))
				fs_serve(f, qi);
		pthread_mutex_lock(&f->wlock);
		f->busy = false;
		if (!f->pending)
			pthread_cond_broadcast(&f->idle);
	}
	pthread_mutex_unlock(&f->wlock);
	return NULL;
}

/* A kick (event loop, dev.lock held): only wakes the worker. */
static void fs_notify(struct virtio_dev *d, unsigned qi)
{
	struct virtio_fs *f = d->priv;
	if (qi >= d->nr_queues)
		return;
	pthread_mutex_lock(&f->wlock);
	f->pending |= 1u << qi;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->wlock);
}

static void fs_config_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_fs *f = d->priv;
	memcpy(buf, (const uint8_t *)&f->cfg + off, len);
}

static void fs_config_write(struct virtio_dev *d, uint32_t off, const void *buf, uint32_t len)
{
	(void)d, (void)off, (void)buf, (void)len; /* read-only */
}

static int fs_activate(struct virtio_dev *d)
{
	(void)d;
	return 0;
}

/* The driver reset the device: the FUSE session ends with it (the next mount sends INIT). */
static void fs_reset(struct virtio_dev *d)
{
	struct virtio_fs *f = d->priv;
	f->epoch++;
	pthread_mutex_lock(&f->srv_lock);
	fuse_server_reset(f->srv);
	pthread_mutex_unlock(&f->srv_lock);
}

static const struct virtio_dev_ops fs_ops = {
    .config_read = fs_config_read,
    .config_write = fs_config_write,
    .activate = fs_activate,
    .reset = fs_reset,
    .queue_notify = fs_notify,
};

/* ---- setup ---- */

/* Every inode the guest holds is an open O_PATH descriptor, every open file one more: the
 * process's descriptor limit must cover each share's tables, or the guest's lookups fail with
 * EMFILE long before the tables are full (a cache=auto guest keeps thousands of inodes; the
 * usual soft limit is 1024). Each share raises the limit by its tables' size while vmm still
 * has CAP_SYS_RESOURCE (setup), up to fs.nr_open; without the capability only the soft limit
 * goes up, to the hard one. */
static void raise_nofile(const char *name)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = rl.rlim_cur + FUSE_SERVER_MAX_INODES + FUSE_SERVER_MAX_HANDLES, nr_open = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	if (f) {
		unsigned long long v;
		if (fscanf(f, "%llu", &v) == 1)
			nr_open = (rlim_t)v;
		fclose(f);
	}
	if (nr_open && want > nr_open)
		want = nr_open;
	if (want <= rl.rlim_cur)
		return;
	struct rlimit up = {want, want > rl.rlim_max ? want : rl.rlim_max};
	if (setrlimit(RLIMIT_NOFILE, &up) == 0)
		return;
	up = (struct rlimit){want < rl.rlim_max ? want : rl.rlim_max, rl.rlim_max};
	if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0 && up.rlim_cur < want)
		vmm_debug("%s: the descriptor limit is %llu (its hard limit): the guest's lookups "
			  "fail with EMFILE beyond about that many inodes",
			  name, (unsigned long long)up.rlim_cur);
}

int virtio_fs_create(struct virtio_fs **out, const struct virtio_fs_options *o,
		     const struct guest_mem *mem, struct verr *e)
{
	*out = NULL;
	struct virtio_fs *f = calloc(1, sizeof(*f));
	if (!f)
		return verr_set(e, -ENOMEM, "virtio-fs %s: out of memory", o->tag);
	struct fuse_server_config sc = {
	    .root = o->path, .cache = o->cache, .ro = o->ro, .dev = o->dev, .suid = o->suid};
	int r = fuse_server_create(&f->srv, &sc, e);
	if (r < 0) {
		free(f);
		return r;
	}
	raise_nofile(o->tag);
	pthread_mutex_init(&f->srv_lock, NULL);
	pthread_mutex_init(&f->wlock, NULL);
	pthread_cond_init(&f->wake, NULL);
	pthread_cond_init(&f->idle, NULL);
	snprintf(f->name, sizeof(f->name), "virtio-fs %s", o->tag);
	memcpy(f->cfg.tag, o->tag, strnlen(o->tag, VIRTIO_FS_TAG_MAX));
	f->cfg.num_request_queues = htole32(VIRTIO_FS_REQUEST_QUEUES);
	virtio_dev_init(&f->dev, f->name, VIRTIO_ID_FS, &fs_ops, f,
			(1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC),
			sizeof(f->cfg), 1 + VIRTIO_FS_REQUEST_QUEUES, mem);
	vmm_debug("%s: sharing %s (cache=%s%s%s%s)", f->name, o->path, fuse_cache_name(o->cache),
		  o->ro ? ", read-only" : "", o->dev ? ", device nodes" : "",
		  o->suid ? ", setuid files" : "");
	*out = f;
	return 0;
}

struct virtio_dev *virtio_fs_dev(struct virtio_fs *f)
{
	return &f->dev;
}

struct fuse_server *virtio_fs_server(struct virtio_fs *f)
{
	return f->srv;
}

void virtio_fs_set_credentials(struct virtio_fs *f, bool on)
{
	fuse_server_set_credentials(f->srv, on);
}

int virtio_fs_start(struct virtio_fs *f, int (*thread_init)(void *opaque, struct verr *e),
		    void *opaque, struct verr *e)
{
	if (f->started)
		return verr_set(e, -EALREADY, "%s: the worker thread is already started", f->name);
	f->thread_init = thread_init;
	f->thread_opaque = opaque;
	/* The worker starts with every asynchronous signal blocked (host signals belong to the
	 * main thread's signalfd); SIGSYS and the fault signals stay deliverable, so a forbidden
	 * call reaches the sandbox's handler. */
	static const int keep[] = {SIGSYS, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
	sigset_t all, old;
	sigfillset(&all);
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		sigdelset(&all, keep[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = -pthread_create(&f->worker, NULL, fs_worker, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return verr_set(e, r, "%s: cannot start the worker thread: %s", f->name,
				strerror(-r));
	f->started = true;
	pthread_mutex_lock(&f->wlock);
	while (!f->init_done)
		pthread_cond_wait(&f->idle, &f->wlock);
	r = f->init_rc;
	pthread_mutex_unlock(&f->wlock);
	if (r < 0) {
		pthread_join(f->worker, NULL);
		f->started = false;
		f->init_done = false;
		return verr_set(e, r, "%s: worker thread: %s", f->name, f->init_err.msg);
	}
	return 0;
}

void virtio_fs_wait_idle(struct virtio_fs *f)
{
	pthread_mutex_lock(&f->wlock);
	while (f->started && (f->pending || f->busy))
		pthread_cond_wait(&f->idle, &f->wlock);
	pthread_mutex_unlock(&f->wlock);
}

void virtio_fs_destroy(struct virtio_fs *f)
{
	if (!f)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->wlock);
		f->stop = true;
		pthread_cond_signal(&f->wake);
		pthread_mutex_unlock(&f->wlock);
		pthread_join(f->worker, NULL);
	}
	fuse_server_destroy(f->srv);
	virtio_dev_destroy(&f->dev);
	pthread_cond_destroy(&f->idle);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->wlock);
	pthread_mutex_destroy(&f->srv_lock);
	free(f);
}
