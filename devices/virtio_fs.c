/* virtio-fs: option parsing, the config space, and the queues feeding FUSE requests to the
 * passthrough server (devices/fuse_server.c). */
#include "devices/virtio_fs.h"

#include <endian.h>
#include <errno.h>
#include <linux/fuse.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VIRTIO_ID_FS
#define VIRTIO_ID_FS 26
#endif

struct virtio_fs {
	struct virtio_dev dev;
	char name[64];
	struct fuse_server *srv;
	struct virtio_fs_config cfg; /* little-endian */
	struct virtq_chain chain;    /* the chain being served (too big for a stack) */
};

/* ---- option parsing ---- */

static const char usage[] = "write tag=TAG,path=DIR[,cache=none|auto|always][,ro]";

#define SPEC_FMT     "--share '%.*s%s'"
#define SPEC_ARG(sp) (int)(strlen(sp) > 80 ? 77 : strlen(sp)), (sp), (strlen(sp) > 80 ? "..." : "")

static bool item_is(const char *p, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(p, word, len) == 0;
}

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
	const char *p = spec;
	for (unsigned n = 1;; n++) {
		const char *end = strchrnul(p, ',');
		size_t len = (size_t)(end - p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		const char *val = eq ? eq + 1 : NULL;
		size_t vlen = eq ? (size_t)(end - val) : 0;
		bool *seen;
		int r = 0;
		if (len == 0)
			return verr_set(e, -EINVAL,
					SPEC_FMT ": item %u is empty (a stray comma): %s",
					SPEC_ARG(spec), n, usage);
		if (item_is(p, klen, "ro")) {
			if (eq)
				return verr_set(e, -EINVAL,
						SPEC_FMT ": 'ro' takes no value: write ,ro",
						SPEC_ARG(spec));
			seen = &have_ro;
			o->ro = true;
		} else if (item_is(p, klen, "tag") && eq) {
			seen = &have_tag;
			if (!have_tag)
				r = set_tag(spec, val, vlen, o, e);
		} else if (item_is(p, klen, "path") && eq) {
			seen = &have_path;
			if (!have_path)
				r = set_path(spec, val, vlen, o, e);
		} else if (item_is(p, klen, "cache") && eq) {
			seen = &have_cache;
			if (!have_cache && fuse_cache_parse(val, vlen, &o->cache) < 0)
				return verr_set(e, -EINVAL,
						SPEC_FMT ": unknown cache mode '%.*s': write "
							 "cache=none, cache=auto or cache=always",
						SPEC_ARG(spec), (int)vlen, val);
		} else {
			return verr_set(e, -EINVAL,
					SPEC_FMT ": unknown key '%.*s' (item %u): the keys are "
						 "tag=, path=, cache= and ro",
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
 * server tells them apart by opcode). Lock held. */
static void fs_notify(struct virtio_dev *d, unsigned qi)
{
	struct virtio_fs *f = d->priv;
	if (qi >= d->nr_queues || !virtio_dev_running(d))
		return;
	struct virtq *q = &d->vq[qi];
	bool pushed = false;
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
		struct fuse_result res;
		if (fuse_server_handle(f->srv, c->iov, c->nout, c->iov + c->nout, c->nin, &res) <
		    0) {
			virtio_dev_fail(d,
					"malformed FUSE request (opcode %u, %u readable and %u "
					"writable bytes) on queue %u",
					res.opcode, c->out_bytes, c->in_bytes, qi);
			break;
		}
		virtq_push(q, c, res.len);
		pushed = true;
		virtio_stat_add(&d->stats.requests, 1);
		virtio_stat_add(&d->stats.bytes, res.data_bytes);
		if (res.error && res.error != ENOENT)
			virtio_stat_add(&d->stats.errors, 1);
	}
	if (pushed)
		virtio_dev_notify_used(d, qi);
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
	fuse_server_reset(f->srv);
}

static const struct virtio_dev_ops fs_ops = {
    .config_read = fs_config_read,
    .config_write = fs_config_write,
    .activate = fs_activate,
    .reset = fs_reset,
    .queue_notify = fs_notify,
};

/* ---- setup ---- */

int virtio_fs_create(struct virtio_fs **out, const struct virtio_fs_options *o,
		     const struct guest_mem *mem, struct verr *e)
{
	*out = NULL;
	struct virtio_fs *f = calloc(1, sizeof(*f));
	if (!f)
		return verr_set(e, -ENOMEM, "virtio-fs %s: out of memory", o->tag);
	struct fuse_server_config sc = {.root = o->path, .cache = o->cache, .ro = o->ro};
	int r = fuse_server_create(&f->srv, &sc, e);
	if (r < 0) {
		free(f);
		return r;
	}
	snprintf(f->name, sizeof(f->name), "virtio-fs %s", o->tag);
	memcpy(f->cfg.tag, o->tag, strnlen(o->tag, VIRTIO_FS_TAG_MAX));
	f->cfg.num_request_queues = htole32(VIRTIO_FS_REQUEST_QUEUES);
	virtio_dev_init(&f->dev, f->name, VIRTIO_ID_FS, &fs_ops, f,
			(1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC),
			sizeof(f->cfg), 1 + VIRTIO_FS_REQUEST_QUEUES, mem);
	vmm_debug("%s: sharing %s (cache=%s%s)", f->name, o->path, fuse_cache_name(o->cache),
		  o->ro ? ", read-only" : "");
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

void virtio_fs_destroy(struct virtio_fs *f)
{
	if (!f)
		return;
	fuse_server_destroy(f->srv);
	virtio_dev_destroy(&f->dev);
	free(f);
}
