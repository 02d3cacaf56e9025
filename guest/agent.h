/* vmm-agent's internals shared by its files: the console, the guest-signal port and the PID-1
 * setup (guest/agent_boot.c); the sessions and the event loop live in guest/agent.c. */
#ifndef VMM_AGENT_H
#define VMM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the container's root is assembled (and what its processes are chrooted to). */
#define AGENT_NEWROOT "/newroot"

/* Exit statuses the agent itself reports (docs/agent-protocol.md). */
#define AGENT_STATUS_SETUP   125 /* the agent could not set the process up (or boot) */
#define AGENT_STATUS_NOEXEC  126 /* the command was found but could not be executed */
#define AGENT_STATUS_MISSING 127 /* the command was not found */

/* --volume (docs/virtio-fs.md, Volumes): the staging share's tag, where the agent mounts it for a
 * moment, the list of volumes in it (vmm/volumes.h writes it), and the most vmm gives. */
#define AGENT_VOLUME_TAG      "vmm-vol"
#define AGENT_VOLUME_DIR      "/vmm-vol"
#define AGENT_VOLUME_LIST     "volumes"
#define AGENT_MAX_VOLUMES     64u
#define AGENT_VOLUME_PATH_MAX 4095u
/* a line: INDEX, the longest type word ("tmpfs=7777,size=1048576"), ro|rw, the path, 3 spaces and
 * a newline */
#define AGENT_VOLUME_LIST_MAX (AGENT_MAX_VOLUMES * (AGENT_VOLUME_PATH_MAX + 40u))
/* the largest tmpfs size the list may give, in MiB (vmm's own limit, VMM_MAX_MEMORY_MIB) */
#define AGENT_TMPFS_SIZE_MAX 1048576u

/* vmm.route entries taken (vmm's VMM_MAX_ROUTES) */
#define AGENT_MAX_ROUTES 8u

/* What the kernel command line asked for (vmm.* keys). */
struct agent_config {
	bool rootfs_rw;	     /* vmm.rootfs=rw */
	bool root_readonly;  /* vmm.rootro=1: the root is made read-only once its mounts are in
				place (a disk root then has no overlay) */
	char rootfs_tag[37]; /* vmm.rootfs=virtiofs:TAG: the root is that virtio-fs share (empty:
				the disk /dev/vda) */
	char hostname[65];   /* vmm.hostname (empty: keep the kernel's) */
	char ip[64];	     /* vmm.ip=ADDR/PREFIX for eth0 (empty: no IPv4 setup) */
	char gw[64];	     /* vmm.gw=ADDR: the default route (empty: none) */
	char ip6[64];	     /* vmm.ip6=ADDR/PREFIX: eth0's IPv6 address (empty: none) */
	char gw6[64];	     /* vmm.gw6=ADDR: the IPv6 default route (empty: none) */
	/* vmm.route=NET/PREFIX[,VIA] (repeated, either family): eth0's other routes, through VIA
	 * or on the link */
	char routes[AGENT_MAX_ROUTES][96];
	unsigned nroutes;
	unsigned volumes; /* vmm.volumes=N: the staging share holds N volumes (0: none) */
};

/* One line of the staging share's list: entry INDEX goes to GUEST in the container, or (tmpfs) a
 * new tmpfs is mounted there. */
struct agent_volume {
	unsigned index;
	bool file; /* a regular file (else a directory) */
	bool ro;
	const char *guest; /* into the parsed text */
	bool tmpfs;	   /* a new tmpfs (no entry in the share) */
	unsigned mode;	   /* its root's mode, 0 to 07777 */
	unsigned
	    size_mib; /* its size in MiB, 1 to AGENT_TMPFS_SIZE_MAX (0: the kernel's default) */
};

/* Parses the list text[0..len) (NUL-terminated at len, modified in place: each line's end becomes
 * a NUL) into v[0..expect): exactly `expect` lines "INDEX TYPE ro|rw GUEST\n", TYPE being dir, file
 * or tmpfs=MODE[,size=MIB] (MODE octal, no leading zero but "0", at most 7777; MIB decimal, no
 * leading zero, 1 to AGENT_TMPFS_SIZE_MAX), each INDEX below expect and given once, GUEST
 * absolute, not "/", without empty, "." or ".." components or a trailing '/', no control bytes,
 * at most AGENT_VOLUME_PATH_MAX bytes, and the lines in strictly ascending order of GUEST (so a
 * parent is mounted before what is inside it). Returns 0, or -1 with a static reason in *why. */
int agent_volumes_parse(char *text, size_t len, unsigned expect, struct agent_volume *v,
			const char **why);

/* Prints "vmm-agent: <message>\n" on stderr (the console in the guest) in one write(2). */
void agent_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Looks for the guest-signal device (ioperm + magic); without it the port calls do nothing. */
void agent_port_probe(void);

/* Reports code/arg on the guest-signal port (devices/guest_signal.h), if it is there. */
void agent_port_signal(unsigned int code, unsigned int arg);

/* Gives up the port access (in a child before execve: ioperm rights survive it). */
void agent_port_release(void);

/* Parses the kernel command line `line` (modified in place) into *c, which starts from the
 * defaults. Keys other than the vmm.* ones are Linux's and pass silently; an unknown or malformed
 * vmm.* key gets one console line and is ignored. Words after "--" are not looked at. */
void agent_cmdline_parse(char *line, struct agent_config *c);

/* PID 1's setup: mounts /proc, /sys and /dev, reads /proc/cmdline, brings up lo (and eth0 as
 * asked), mounts the rootfs (/dev/vda) with its overlay at AGENT_NEWROOT and the container's
 * /proc, /sys, /dev, /dev/pts and /dev/shm under it, the volumes (vmm.volumes=N: the staging
 * share's entries bind-mounted at their guest paths and the tmpfs mounts made, in the list's order,
 * agent_volumes_parse), and sets the hostname.
 * Returns 0, or -1 after telling the console why the container cannot run (the caller powers off
 * with AGENT_STATUS_SETUP). Optional parts that fail (the network, the hostname) only get a line.
 */
int agent_boot(void);

#endif
