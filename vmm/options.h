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
};

/* Parses argv into *o (defaults filled in). Returns 0 to run, 1 when --help/--version was printed
 * (exit 0), or -EINVAL after printing one line that says what is wrong and what to do. */
int options_parse(int argc, char **argv, struct vmm_options *o);

/* Parses a decimal unsigned integer in [min, max]: the whole string, no sign, no suffix.
 * Returns 0 or -EINVAL (not a number) or -ERANGE (out of range). */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

void options_usage(FILE *f);

#endif
