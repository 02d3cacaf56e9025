/* The machine description: everything a VM is made from, as data. Filled by the command line
 * (vmm/config/options.c) or by a JSON file (--config, vmm/config/config_json.c, schema in
 * docs/config.md); both go through the same setters below, so both give the same struct and the
 * same error lines, named after the flag or the JSON key that was wrong. vm_create builds the VM
 * from it and nothing else; the control API's `state` reports it back (config_to_json). */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include "devices/virtio_blk.h"
#include "devices/virtio_fs.h"
#include "devices/virtio_net.h"
#include "devices/virtio_vsock.h"
#include "vmm/log.h"

#include <netinet/in.h> /* INET6_ADDRSTRLEN */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h> /* AF_INET, AF_INET6 */

#define VMM_MIN_MEMORY_MIB     32ULL
#define VMM_MAX_MEMORY_MIB     (1024ULL * 1024) /* 1 TiB: the mapping is MAP_NORESERVE */
#define VMM_DEFAULT_MEMORY_MIB 128ULL
#define VMM_MAX_CPUS	       254U /* xAPIC IDs 0..253, the I/O APIC takes the next one */
#define VMM_MAX_DISKS	       8U   /* blk devices besides the root disk */
#define VMM_MAX_NETS	       4U
#define VMM_MAX_SHARES	       8U	  /* --share, besides a directory root */
#define VMM_ROOT_TAG	       "vmm-root" /* the virtio-fs tag of --rootfs DIR */
#define VMM_VOLUME_TAG	       "vmm-vol"  /* the virtio-fs tag of the --volume staging share */
#define VMM_MAX_VOLUMES	       64U	  /* --volume entries */
#define VMM_MAX_ROUTES	       8U	  /* --route entries (eth0's, besides the default) */
#define VMM_MAX_ENV	       1024U	  /* environment entries */
#define VMM_MAX_ARGS	       4096U	  /* the container command's argv */
#define VMM_MAX_GROUPS	       32U	  /* process.user.additional_gids */
#define VMM_MAX_RLIMITS	       16U	  /* process.rlimits: one per resource */
#define VMM_MAX_SYSCTLS	       64U	  /* sysctl entries */
#define VMM_MAX_GUARD_PATHS    128U	  /* masked_paths, and readonly_paths, each */
#define VMM_MAX_BPF_INSNS      4096U	  /* process.seccomp_bpf: classic BPF instructions */
#define VMM_CAP_LAST	       40U	  /* CAP_CHECKPOINT_RESTORE, the highest capability known */
#define VM_DEVICES_MAX	       17U /* virtio-mmio slots: one per free I/O APIC pin (vmm/mmio_devices.c) */

/* The device types of the device table (vmm/config/device_table.c), in slot order. */
enum vm_device_type { VM_DEV_BLK, VM_DEV_NET, VM_DEV_VSOCK, VM_DEV_FS, VM_DEV_RNG, VM_DEV_TYPES };

struct vm_device_cfg {
	enum vm_device_type type;
	bool root;     /* the container's root: a blk disk (--rootfs IMG, /dev/vda) or an fs share
			  (--rootfs DIR, tag vmm-root) */
	bool implicit; /* added by config_finish (a container's vsock): not written back */
	union {
		struct virtio_blk_options blk;
		struct virtio_net_opts net;
		struct virtio_vsock_options vsock;
		struct virtio_fs_options fs;
	} u;
};

/* One --volume HOST:GUEST[:ro] (docs/virtio-fs.md, Volumes): HOST bind-mounted into the staging
 * share (vmm/volumes.c), then onto GUEST in the container by the agent. Or one --tmpfs GUEST
 * (tmpfs set, host NULL): nothing on the host; the agent mounts a new tmpfs at GUEST. */
struct vm_volume_cfg {
	char *host;    /* the host directory or regular file, realpath'd (absolute, no symlink);
			  NULL for a tmpfs */
	char *guest;   /* absolute in the container, normalised: no "//", "." or "..", not "/" */
	bool ro;       /* read-only, enforced on the host (a read-only bind mount); a tmpfs: mounted
			  read-only in the guest */
	bool file;     /* a regular file (else a directory; never for a tmpfs) */
	bool tmpfs;    /* a tmpfs made in the guest (no host side) */
	unsigned mode; /* a tmpfs's root directory mode, 0 to 07777 */
	uint64_t size_mib; /* a tmpfs's size limit in MiB (0: the kernel's, half the guest's RAM) */
};

/* --tmpfs's default mode (podman's: sticky and world-writable, as /tmp). */
#define VMM_TMPFS_DEFAULT_MODE 01777u

/* The container's main process (docs/agent-protocol.md START). */
/* A process's resource limit: resource is the RLIMIT_* number; UINT64_MAX is unlimited. */
struct vm_rlimit_cfg {
	unsigned resource;
	uint64_t soft, hard;
};

enum vm_cap_set {
	VM_CAP_BOUNDING,
	VM_CAP_EFFECTIVE,
	VM_CAP_PERMITTED,
	VM_CAP_INHERITABLE,
	VM_CAP_AMBIENT,
	VM_CAP_SETS
};

struct vm_process_cfg {
	char **argv; /* NULL-terminated, argc entries */
	unsigned argc;
	char **env_given; /* KEY=VALUE as given (--env, "env"), in order */
	unsigned nenv_given;
	char **env; /* what the process gets: the defaults not given, then env_given */
	unsigned envc;
	char *cwd; /* absolute; default "/" */
	uint32_t uid, gid;
	bool tty;
	bool tty_given; /* --tty or "terminal" was given (else: on when stdin is a terminal) */

	/* The process's settings, applied by the agent before execve (none unless given). */
	bool umask_given;
	unsigned umask;			 /* 0..0777 */
	uint32_t groups[VMM_MAX_GROUPS]; /* additional gids */
	unsigned ngroups;
	struct vm_rlimit_cfg rlimits[VMM_MAX_RLIMITS];
	unsigned nrlimits;
	bool no_new_privs;
	bool caps_given;	    /* else the process keeps root's full capabilities */
	uint64_t caps[VM_CAP_SETS]; /* bit N is capability N */
	bool oom_given;
	int oom_score_adj;  /* -1000..1000 */
	char *seccomp_path; /* the file the program came from */
	uint8_t *bpf;	    /* bpf_insns x 8 bytes, struct sock_filter in host order */
	unsigned bpf_insns;
	/* Container-wide (the top-level keys sysctl, masked_paths, readonly_paths), sent with the
	 * process's START. sysctl[2i] is a name, sysctl[2i+1] its value. */
	char **sysctl;
	unsigned nsysctl;
	char **masked, **readonly;
	unsigned nmasked, nreadonly;
};

struct vm_config {
	/* the machine */
	char *kernel;  /* vmlinux (PVH) or bzImage; the built default when not given */
	char *initrd;  /* optional initramfs; not with a container */
	char *cmdline; /* appended to vmm's default kernel command line */
	unsigned cpus;
	uint64_t memory_mib;
	struct vm_device_cfg
	    devices[VM_DEVICES_MAX]; /* slot order: root, blk, net, vsock, fs, rng */
	unsigned ndevices;

	/* the container: on when a process is given, or a root disk without an initrd */
	bool container;
	struct vm_process_cfg process;
	char *hostname;	      /* default "vmm" */
	bool rootfs_rw;	      /* the root disk read-write, no overlay */
	bool rootfs_readonly; /* the root (disk or directory) read-only in the guest (OCI
				 root.readonly): no overlay, no writes but to the mounts on it */
	bool enter_rootfs;    /* vmm's own mount namespace rooted at the --rootfs directory, the
				 volumes at their guest paths (volumes_enter_root in volumes.h) */
	/* --route: eth0's routes besides the default one, in the order given: dst "NET/N" of
	 * either family (no bits past N), via an address of the same family or "" for a route on
	 * the link itself (added first) */
	struct vm_route_cfg {
		bool v6;
		char dst[INET6_ADDRSTRLEN + 4], via[INET6_ADDRSTRLEN];
	} routes[VMM_MAX_ROUTES];
	unsigned nroutes;
	char *ip, *gw;	      /* eth0 of the first net device: IPv4 ADDR/PREFIX, ADDR */
	char *ip6, *gw6;      /* and its IPv6 ADDR/PREFIX and default gateway */
	int stdio[3];	      /* the container's stdin, stdout, stderr (default 0, 1, 2) */
	char *console_socket; /* a pty for the process, its master sent here (OCI) */
	/* --volume, in the order given; config_finish adds their share (the implicit fs device
	 * VMM_VOLUME_TAG, whose path stays "" until volumes_stage in vmm/volumes.h makes it) */
	struct vm_volume_cfg *volumes;
	unsigned nvolumes;

	/* control */
	char *api_sock; /* the control API (docs/api.md) */
	/* --restore DIR: the VM is DIR's snapshot (docs/snapshot.md): its description was loaded
	 * from DIR/state, its memory is DIR/memory, and it goes on from where it was paused */
	char *restore_dir;
	bool paused; /* create, then wait for `start` */
	bool detach; /* fork: the parent exits once the VM is created */
	char *pid_file;
	char *metrics_path; /* metrics written here at exit */

	/* logging and the sandbox */
	char *log_path; /* NULL: stderr */
	enum log_level log_level;
	enum log_format log_format;
	bool seccomp; /* the per-thread allow-lists (not --seccomp=off) */
	bool boot_timer;
	bool verbose;

	/* derived by config_finish */
	char agent_cmdline[1024]; /* the vmm.* parameters the agent reads */
};

/* Defaults: 1 vCPU, 128 MiB, seccomp on, stdio 0-2, info level, text logs. */
void config_init(struct vm_config *c);
void config_free(struct vm_config *c);

/* The setters both front ends use. `name` is the flag ("--cpus") or the JSON key ("cpus") the
 * value came from: every error line starts with it. Each returns 0 or -EINVAL with one line in
 * e saying what is wrong and what to give instead. Strings are copied. */
int config_set_str(struct vm_config *c, char **field, const char *name, const char *value,
		   struct verr *e);
int config_set_cpus(struct vm_config *c, const char *name, uint64_t v, struct verr *e);
int config_set_memory(struct vm_config *c, const char *name, uint64_t v, struct verr *e);
int config_set_hostname(struct vm_config *c, const char *name, const char *v, struct verr *e);
/* eth0's address (ADDR/PREFIX) and default gateway of family AF_INET or AF_INET6: one of each. */
int config_set_ip(struct vm_config *c, const char *name, const char *v, int family, struct verr *e);
int config_set_gateway(struct vm_config *c, const char *name, const char *v, int family,
		       struct verr *e);
/* A route for eth0: dst "NET/N" (IPv4 or IPv6) with no bits set past N, via an address of the
 * same family, or NULL (or "") for a route on the link (a gateway reached without one, as
 * Calico's 169.254.1.1/32). */
int config_add_route(struct vm_config *c, const char *name, const char *dst, const char *via,
		     struct verr *e);
int config_add_env(struct vm_config *c, const char *name, const char *kv, struct verr *e);
int config_set_workdir(struct vm_config *c, const char *name, const char *v, struct verr *e);
int config_set_user(struct vm_config *c, const char *name, uint64_t uid, uint64_t gid,
		    struct verr *e);
int config_set_args(struct vm_config *c, const char *name, char *const *argv, unsigned argc,
		    struct verr *e);
int config_set_log_level(struct vm_config *c, const char *name, const char *v, struct verr *e);
int config_set_log_format(struct vm_config *c, const char *name, const char *v, struct verr *e);
int config_set_stdio(struct vm_config *c, const char *name, const int fds[3], struct verr *e);
/* The process's settings (docs/config.md "process"). umask 0..0777; an additional gid below
 * 4294967295, at most VMM_MAX_GROUPS; an rlimit by its Linux name ("RLIMIT_NOFILE", or "nofile"
 * in any case), soft <= hard (UINT64_MAX: unlimited), a resource given again replaces the earlier
 * one; oom_score_adj -1000..1000. */
int config_set_umask(struct vm_config *c, const char *name, uint64_t v, struct verr *e);
int config_add_group(struct vm_config *c, const char *name, uint64_t gid, struct verr *e);
int config_set_rlimit(struct vm_config *c, const char *name, const char *type, uint64_t soft,
		      uint64_t hard, struct verr *e);
/* --ulimit's value: "TYPE=SOFT[:HARD]" (HARD defaults to SOFT; "unlimited" or -1 for either). */
int config_add_rlimit_spec(struct vm_config *c, const char *spec, struct verr *e);
int config_set_oom_score_adj(struct vm_config *c, const char *name, int64_t v, struct verr *e);
/* The capability number of "CAP_NET_ADMIN" (or "net_admin", any case), or -1. */
int config_cap_number(const char *cap);
/* Capability N's name without "CAP_" ("NET_ADMIN"), or NULL past VMM_CAP_LAST. */
const char *config_cap_name(int cap);
/* One capability set from "CAP_*" names (the others keep root's full set, bounding, effective
 * and permitted; inheritable and ambient empty, once any set is given). */
int config_set_caps(struct vm_config *c, const char *name, enum vm_cap_set set,
		    const char *const *caps, unsigned n, struct verr *e);
/* --cap-drop CAP: removes CAP ("ALL": every one) from every set, starting from root's. */
int config_drop_cap(struct vm_config *c, const char *name, const char *cap, struct verr *e);
/* Reads FILE: raw struct sock_filter[] (8 bytes each, 1 to VMM_MAX_BPF_INSNS), kept for START. */
int config_set_seccomp_bpf(struct vm_config *c, const char *name, const char *path, struct verr *e);
/* A sysctl (dot-separated words of [A-Za-z0-9_-], value without NUL or newline, at most
 * VMM_MAX_SYSCTLS, a name given again replaces its value); a masked or read-only path (absolute,
 * no "..", at most VMM_MAX_GUARD_PATHS each). */
int config_add_sysctl(struct vm_config *c, const char *name, const char *key, const char *value,
		      struct verr *e);
int config_add_guard_path(struct vm_config *c, const char *name, const char *path, bool readonly,
			  struct verr *e);
/* The container's root: a directory becomes a virtio-fs share with tag VMM_ROOT_TAG, read-write
 * into it (the agent mounts it as / without an overlay); anything else is a root disk (the image
 * path verbatim, checked by config_finish). config_add_device adds one device from its option
 * string ("path=IMG,ro"), checked by the device type's own parser; the device limits
 * (VMM_MAX_DISKS, VMM_MAX_SHARES...) apply, and share tags are unique. */
int config_set_root(struct vm_config *c, const char *name, const char *path, struct verr *e);
int config_add_device(struct vm_config *c, enum vm_device_type type, const char *name,
		      const char *spec, struct verr *e);
/* One volume: host must exist and be a directory or a regular file (it is resolved with
 * realpath); guest an absolute container path, not "/", without ".." (normalised: "//" and "."
 * dropped), not a guest path given before. A host path inside another volume's (or the same) with
 * the other read-only/read-write mode is refused: the staging share would serve both through one
 * inode. `name` starts every error line ("--volume /a:b", "volumes[0]"). 0 or -EINVAL. */
int config_add_volume(struct vm_config *c, const char *name, const char *host, const char *guest,
		      bool ro, struct verr *e);
/* --volume's value: "HOST:GUEST[:ro|:rw]" (HOST up to the first ':', GUEST up to the next) into
 * config_add_volume, errors naming "--volume VALUE". */
int config_add_volume_spec(struct vm_config *c, const char *spec, struct verr *e);
/* One tmpfs at guest in the container (checked and normalised as config_add_volume's guest, one
 * entry per guest path among volumes and tmpfs alike, counting toward VMM_MAX_VOLUMES): root
 * directory mode `mode` (0 to 07777), size limit size_mib (0: the kernel's default, else 1 to
 * VMM_MAX_MEMORY_MIB), read-only when ro. `name` starts every error line. 0 or -EINVAL. */
int config_add_tmpfs(struct vm_config *c, const char *name, const char *guest, unsigned mode,
		     uint64_t size_mib, bool ro, struct verr *e);
/* --tmpfs's value: "GUEST[:OPT[,OPT...]]" with OPT one of ro, rw, mode=OCTAL, size=MIB (each at
 * most once) into config_add_tmpfs, errors naming "--tmpfs VALUE". */
int config_add_tmpfs_spec(struct vm_config *c, const char *spec, struct verr *e);
/* An octal mode as a string ("1777", "0755", "755": 1 to 5 octal digits, at most 07777) into
 * *mode: 0, or -EINVAL (*mode untouched). */
int config_parse_mode(const char *s, unsigned *mode);

/* After all values are set: the consistency rules (a command needs a root disk and no initrd,
 * --ip needs a net device...), the defaults that depend on others (the process's environment,
 * tty, cwd, the kernel found in the cache, the container's vsock device), the device order, the
 * agent's kernel parameters, and that the image files exist. Idempotent. Returns 0 or -EINVAL
 * with one line in e. */
int config_finish(struct vm_config *c, struct verr *e);

/* The process's environment (the defaults not given, then the given entries): for `vmm exec`,
 * whose process is not the VM's. 0 or -ENOMEM. */
int config_finish_process(struct vm_config *c, struct verr *e);

/* Loads FILE (at most 1 MiB of JSON, schema in docs/config.md) into c: unknown keys, wrong types
 * and values out of range give one line naming the key ("devices[1].cid: ...") and -EINVAL. */
int config_load_json(struct vm_config *c, const char *path, struct verr *e);
int config_parse_json(struct vm_config *c, const char *text, size_t len, const char *origin,
		      struct verr *e);
/* Loads FILE, one JSON object with the keys of the description's "process" (docs/config.md),
 * into c->process: `vmm exec --process FILE`. Errors as for config_load_json. */
int config_load_process_json(struct vm_config *c, const char *path, struct verr *e);

/* The whole description as JSON (the same schema config_load_json reads, so a dump loads back
 * to the same struct). Returns a json_object the caller puts (json_object_put), or NULL. */
struct json_object;
struct json_object *config_to_json(const struct vm_config *c);

/* Finds the guest kernel when none is given: $VMM_KERNEL, else the newest kernel that
 * kernel-config/build.sh finished in its cache ($XDG_CACHE_HOME or ~/.cache, then
 * vmm/kernel/<key>/vmlinux). Returns a path (static storage) or NULL. */
const char *config_default_kernel(void);

/* Parses a decimal unsigned integer in [min, max]: the whole string, no sign, no suffix.
 * Returns 0 or -EINVAL (not a number) or -ERANGE (out of range). */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
