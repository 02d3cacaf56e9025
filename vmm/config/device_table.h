/* The device table: one entry per virtio device type. Everything above the device models goes
 * through it: the command line and the JSON config (vmm/config/config.c) parse and check a device
 * with its entry, the device manager (vmm/mmio_devices.c) creates and destroys it, config_to_json
 * writes it back, and its back end's system calls are the sandbox list it names. Adding a device
 * is its model in devices/ plus one entry here (and its calls in vmm/sandbox/sandbox_rules.c when
 * the common lists lack them). */
#ifndef VMM_DEVICE_TABLE_H
#define VMM_DEVICE_TABLE_H

#include "devices/virtio.h"
#include "vmm/config/config.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"
#include "vmm/memory.h"

struct json_object;

/* A key of the device's JSON object and the option-string key it becomes: JSON devices are
 * turned into the same "key=value,flag" string the command line gives, then parsed by the same
 * parser, so both ways give the same device. */
enum device_key_type { DK_STR, DK_BOOL, DK_U32 };
struct device_key {
	const char *json;
	const char *spec; /* for DK_BOOL: the flag word written when true */
	enum device_key_type type;
	bool required;
};

struct device_env {
	const struct guest_mem *mem;
	struct event_loop *el;
};

struct device_type {
	const char *name;  /* "blk": the JSON "type" and the metrics' "type" */
	const char *flag;  /* "--disk" */
	unsigned max;	   /* most devices of this type in one VM */
	const char *usage; /* the option string's form, for error lines */
	const struct device_key *keys;
	unsigned nkeys;
	/* spec -> d->u (d->type is set). 0 or -EINVAL with one line in e. */
	int (*parse)(const char *spec, struct vm_device_cfg *d, struct verr *e);
	/* What can be checked on the host before KVM is touched (the image exists). May be NULL. */
	int (*check)(const struct vm_device_cfg *d, const char *name, struct verr *e);
	/* Opens the back end and builds the model: *dev for the transport, *model for destroy. */
	int (*create)(const struct vm_device_cfg *d, const struct device_env *env,
		      struct virtio_dev **dev, void **model, struct verr *e);
	void (*destroy)(void *model);
	/* The JSON object's keys besides "type" (the inverse of keys/parse). */
	int (*to_json)(const struct vm_device_cfg *d, struct json_object *o);
	/* Its back end's system calls beyond the common ones: the name of its list in
	 * vmm/sandbox/sandbox_rules.c (sandbox_device_rules), checked by the sandbox unit test. */
	const char *sandbox;
	/* Starts the device's own threads (virtio-fs's worker), after the privileges are dropped
	 * and before the main thread's filter (vm_run, through mmio_devices_start): each installs
	 * its own seccomp list when seccomp is set. May be NULL. 0 or a negative errno with e set.
	 */
	int (*start)(void *model, bool seccomp, struct verr *e);
};

extern const struct device_type device_table[VM_DEV_TYPES];

/* The entry whose name is `name`, or NULL. */
const struct device_type *device_type_find(const char *name);

#endif
