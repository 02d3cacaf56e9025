/* Command-line options of `vmm`. */
#ifndef VMM_OPTIONS_H
#define VMM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define VMM_MIN_MEMORY_MIB     32ULL
#define VMM_MAX_MEMORY_MIB     (1024ULL * 1024) /* 1 TiB: the mapping is MAP_NORESERVE */
#define VMM_DEFAULT_MEMORY_MIB 128ULL
#define VMM_MAX_CPUS	       254U /* xAPIC IDs 0..253, the I/O APIC takes the next one */
#define VMM_MAX_DISKS	       8U   /* --disk, besides --rootfs */
#define VMM_MAX_NETS	       4U
#define VMM_MAX_ENV	       1024U /* --env entries */

struct vmm_options {
	const char *kernel;  /* path of a vmlinux (PVH) or bzImage */
	const char *initrd;  /* optional initramfs */
	const char *cmdline; /* appended to vmm's default kernel command line; may be NULL */
	unsigned cpus;
	uint64_t memory_mib;
	bool seccomp_off; /* --seccomp=off: no seccomp filters (debugging) */
	bool boot_timer;  /* print the time from vmm start to the guest's boot-timer write */
	bool rng;	  /* a virtio-rng device fed from the host's getrandom() */
	/* virtio devices, kept as given and checked by each device's parser. They become slots in
	 * this order: rootfs (/dev/vda), disks, nets, vsock, rng. */
	const char *rootfs;		  /* an image path */
	const char *disks[VMM_MAX_DISKS]; /* "path=IMG[,ro][,id=SERIAL]" */
	unsigned ndisks;
	const char *nets[VMM_MAX_NETS]; /* "tap=NAME[,mac=MAC]" */
	unsigned nnets;
	const char *vsock; /* "cid=N,uds=PATH" */
	bool verbose;

	/* The container (docs/agent-protocol.md): on when a command follows "--", or --rootfs is
	 * given without --initrd. The built-in agent initramfs is PID 1, mounts --rootfs as the
	 * container's root and runs cmd there (default /bin/sh). */
	bool container;
	char **cmd; /* argv after "--", NULL-terminated */
	unsigned ncmd;
	char **env; /* the defaults (PATH, HOME, TERM, HOSTNAME) not set by --env, then --env */
	unsigned nenv;
	char *env_given[VMM_MAX_ENV]; /* --env KEY=VALUE as given */
	unsigned nenv_given;
	char *env_buf[VMM_MAX_ENV + 5];
	const char *workdir;	 /* --workdir, default "/" */
	uint32_t uid, gid;	 /* --user UID[:GID], default 0:0 */
	const char *hostname;	 /* --hostname, default "vmm" */
	bool tty;		 /* --tty, or stdin is a terminal */
	bool rootfs_rw;		 /* --rootfs-rw: no overlay, writes reach the image */
	const char *api_sock;	 /* --api-sock PATH: `vmm exec` connects here */
	const char *ip, *gw;	 /* --ip ADDR/PREFIX, --gateway ADDR for the first --net */
	char agent_cmdline[512]; /* the vmm.* parameters the agent reads */
};

/* Parses argv into *o (defaults filled in). Returns 0 to run, 1 when --help/--version was printed
 * (exit 0), or -EINVAL after printing one line that says what is wrong and what to do. */
int options_parse(int argc, char **argv, struct vmm_options *o);

/* Finds the guest kernel when --kernel is not given: $VMM_KERNEL, else the newest kernel that
 * kernel-config/build.sh finished in its cache ($XDG_CACHE_HOME or ~/.cache, then
 * vmm/kernel/<key>/vmlinux). Returns a path (static storage) or NULL. */
const char *options_default_kernel(void);

/* Parses `vmm exec` arguments (argv[0] is "exec"): --api-sock PATH, the container options
 * --env/--workdir/--user/--tty, and the command after "--" (required). Same return values as
 * options_parse. */
int options_parse_exec(int argc, char **argv, struct vmm_options *o);

/* Parses a decimal unsigned integer in [min, max]: the whole string, no sign, no suffix.
 * Returns 0 or -EINVAL (not a number) or -ERANGE (out of range). */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

void options_usage(FILE *f);

#endif
