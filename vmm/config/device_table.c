/* The device table (see device_table.h): blk, net, vsock, fs, rng. */
#include "vmm/config/device_table.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_fs.h"
#include "devices/virtio_net.h"
#include "devices/virtio_rng.h"
#include "devices/virtio_vsock.h"
#include "vmm/sandbox/sandbox.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- blk ---- */

static int blk_parse(const char *spec, struct vm_device_cfg *d, struct verr *e)
{
	return virtio_blk_parse(spec, &d->u.blk, e);
}

/* An image must exist before anything else is set up (the device checks the rest). */
static int blk_check(const struct vm_device_cfg *d, const char *name, struct verr *e)
{
	struct stat st;
	if (stat(d->u.blk.path, &st) < 0)
		return verr_set(e, -EINVAL, "%s: cannot use image '%s': %s", name, d->u.blk.path,
				strerror(errno));
	return 0;
}

static int blk_create(const struct vm_device_cfg *d, const struct device_env *env,
		      struct virtio_dev **dev, void **model, struct verr *e)
{
	struct virtio_blk *b;
	int r = virtio_blk_create(&b, &d->u.blk, env->mem, env->el, e);
	if (r < 0)
		return r;
	*dev = virtio_blk_dev(b);
	*model = b;
	return 0;
}

static void blk_destroy(void *model)
{
	virtio_blk_destroy(model);
}

static int blk_to_json(const struct vm_device_cfg *d, struct json_object *o)
{
	json_object_object_add(o, "path", json_object_new_string(d->u.blk.path));
	if (d->u.blk.ro)
		json_object_object_add(o, "readonly", json_object_new_boolean(1));
	if (d->u.blk.serial[0])
		json_object_object_add(o, "serial", json_object_new_string(d->u.blk.serial));
	return 0;
}

static const struct device_key blk_keys[] = {
    {"path", "path", DK_STR, true},
    {"readonly", "ro", DK_BOOL, false},
    {"serial", "id", DK_STR, false},
};

/* ---- net ---- */

static int net_parse(const char *spec, struct vm_device_cfg *d, struct verr *e)
{
	return virtio_net_parse(spec, &d->u.net, e);
}

static int net_create(const struct vm_device_cfg *d, const struct device_env *env,
		      struct virtio_dev **dev, void **model, struct verr *e)
{
	struct virtio_net *n;
	int r = virtio_net_create(&n, &d->u.net, env->mem, env->el, e);
	if (r < 0)
		return r;
	*dev = virtio_net_dev(n);
	*model = n;
	return 0;
}

static void net_destroy(void *model)
{
	virtio_net_destroy(model);
}

static int net_to_json(const struct vm_device_cfg *d, struct json_object *o)
{
	char mac[18];
	const uint8_t *m = d->u.net.mac;
	json_object_object_add(o, "tap", json_object_new_string(d->u.net.tap));
	if (d->u.net.mac_given) {
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
			 m[4], m[5]);
		json_object_object_add(o, "mac", json_object_new_string(mac));
	}
	if (d->u.net.mtu)
		json_object_object_add(o, "mtu", json_object_new_int(d->u.net.mtu));
	return 0;
}

static const struct device_key net_keys[] = {
    {"tap", "tap", DK_STR, true},
    {"mac", "mac", DK_STR, false},
    {"mtu", "mtu", DK_U32, false},
};

/* ---- vsock ---- */

static int vsock_parse(const char *spec, struct vm_device_cfg *d, struct verr *e)
{
	return virtio_vsock_parse(spec, &d->u.vsock, e);
}

static int vsock_create(const struct vm_device_cfg *d, const struct device_env *env,
			struct virtio_dev **dev, void **model, struct verr *e)
{
	struct virtio_vsock *v;
	int r = virtio_vsock_create(&v, &d->u.vsock, env->mem, env->el, e);
	if (r < 0)
		return r;
	*dev = virtio_vsock_dev(v);
	*model = v;
	return 0;
}

static void vsock_destroy(void *model)
{
	virtio_vsock_destroy(model);
}

static int vsock_to_json(const struct vm_device_cfg *d, struct json_object *o)
{
	json_object_object_add(o, "cid", json_object_new_int64(d->u.vsock.cid));
	if (d->u.vsock.uds_path[0])
		json_object_object_add(o, "uds", json_object_new_string(d->u.vsock.uds_path));
	return 0;
}

static const struct device_key vsock_keys[] = {
    {"cid", "cid", DK_U32, true},
    {"uds", "uds", DK_STR, true},
};

/* ---- fs ---- */

static int fs_parse(const char *spec, struct vm_device_cfg *d, struct verr *e)
{
	return virtio_fs_parse(spec, &d->u.fs, e);
}

/* The shared directory must exist and be one (the server opens it again, O_NOFOLLOW). */
static int fs_check(const struct vm_device_cfg *d, const char *name, struct verr *e)
{
	struct stat st;
	if (stat(d->u.fs.path, &st) < 0)
		return verr_set(e, -EINVAL, "%s: cannot share '%s': %s: give an existing directory",
				name, d->u.fs.path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return verr_set(e, -EINVAL,
				"%s: '%s' is not a directory: give the directory to share", name,
				d->u.fs.path);
	return 0;
}

static int fs_create(const struct vm_device_cfg *d, const struct device_env *env,
		     struct virtio_dev **dev, void **model, struct verr *e)
{
	struct virtio_fs *f;
	int r = virtio_fs_create(&f, &d->u.fs, env->mem, e);
	if (r < 0)
		return r;
	*dev = virtio_fs_dev(f);
	*model = f;
	return 0;
}

static void fs_destroy(void *model)
{
	virtio_fs_destroy(model);
}

/* The worker thread's own first steps, before it reads a request: the capabilities kept for it
 * (vmm/sandbox/sandbox.c), then its seccomp list unless --seccomp=off. */
static int fs_thread_enter(void *seccomp, struct verr *e)
{
	int r = sandbox_fs_thread_enter(e);
	if (r == 0 && *(const bool *)seccomp)
		r = sandbox_enter(SANDBOX_FS, e);
	return r;
}

static int fs_start(void *model, bool seccomp, struct verr *e)
{
	static const bool on = true, off = false;
	virtio_fs_set_credentials(model, sandbox_fs_credentials());
	return virtio_fs_start(model, fs_thread_enter, (void *)(seccomp ? &on : &off), e);
}

static int fs_to_json(const struct vm_device_cfg *d, struct json_object *o)
{
	json_object_object_add(o, "tag", json_object_new_string(d->u.fs.tag));
	json_object_object_add(o, "path", json_object_new_string(d->u.fs.path));
	if (d->u.fs.ro)
		json_object_object_add(o, "readonly", json_object_new_boolean(1));
	json_object_object_add(o, "cache", json_object_new_string(fuse_cache_name(d->u.fs.cache)));
	if (d->u.fs.dev)
		json_object_object_add(o, "dev", json_object_new_boolean(1));
	if (d->u.fs.suid)
		json_object_object_add(o, "suid", json_object_new_boolean(1));
	return 0;
}

static const struct device_key fs_keys[] = {
    {"tag", "tag", DK_STR, true},	{"path", "path", DK_STR, true},
    {"readonly", "ro", DK_BOOL, false}, {"cache", "cache", DK_STR, false},
    {"dev", "dev", DK_BOOL, false},	{"suid", "suid", DK_BOOL, false},
};

/* ---- rng ---- */

static int rng_parse(const char *spec, struct vm_device_cfg *d, struct verr *e)
{
	(void)d;
	if (spec && *spec)
		return verr_set(e, -EINVAL, "--rng: it takes no options (got '%s')", spec);
	return 0;
}

static int rng_create(const struct vm_device_cfg *d, const struct device_env *env,
		      struct virtio_dev **dev, void **model, struct verr *e)
{
	(void)d;
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	if (!rng)
		return verr_set(e, -ENOMEM, "virtio-rng: out of memory");
	virtio_rng_init(rng, env->mem);
	*dev = &rng->dev;
	*model = rng;
	return 0;
}

static void rng_destroy(void *model)
{
	virtio_rng_destroy(model);
	free(model);
}

static int rng_to_json(const struct vm_device_cfg *d, struct json_object *o)
{
	(void)d;
	(void)o;
	return 0;
}

#define KEYS(k) k, sizeof(k) / sizeof(k[0])

const struct device_type device_table[VM_DEV_TYPES] = {
    [VM_DEV_BLK] = {"blk", "--disk", VMM_MAX_DISKS + 1, "path=IMG[,ro][,id=SERIAL]", KEYS(blk_keys),
		    blk_parse, blk_check, blk_create, blk_destroy, blk_to_json, "blk", NULL},
    [VM_DEV_NET] = {"net", "--net", VMM_MAX_NETS, "tap=NAME[,mac=MAC]", KEYS(net_keys), net_parse,
		    NULL, net_create, net_destroy, net_to_json, "net", NULL},
    [VM_DEV_VSOCK] = {"vsock", "--vsock", 1, "cid=N,uds=PATH", KEYS(vsock_keys), vsock_parse, NULL,
		      vsock_create, vsock_destroy, vsock_to_json, "vsock", NULL},
    [VM_DEV_FS] = {"fs", "--share", VMM_MAX_SHARES,
		   "tag=NAME,path=DIR[,ro][,cache=none|auto|always][,dev][,suid]", KEYS(fs_keys),
		   fs_parse, fs_check, fs_create, fs_destroy, fs_to_json, "fs", fs_start},
    [VM_DEV_RNG] = {"rng", "--rng", 1, "(no options)", NULL, 0, rng_parse, NULL, rng_create,
		    rng_destroy, rng_to_json, "rng", NULL},
};

const struct device_type *device_type_find(const char *name)
{
	for (unsigned i = 0; i < VM_DEV_TYPES; i++)
		if (strcmp(device_table[i].name, name) == 0)
			return &device_table[i];
	return NULL;
}
