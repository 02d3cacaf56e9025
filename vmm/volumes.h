/* --volume: the staging share (docs/virtio-fs.md, Volumes; docs/security.md).
 *
 * All volumes go through one virtio-fs device (tag VMM_VOLUME_TAG) whose root is a small tmpfs,
 * the staging directory: entry "0" is volume 0's host directory or file bind-mounted there, "1"
 * volume 1's, and so on, and the file "volumes" lists them for the agent (below). The tmpfs and
 * the bind mounts live in a mount namespace of their own, made private so nothing propagates to
 * the host's: vmm enters it, mounts, keeps it alive with a descriptor of it and goes back to the
 * host's namespace at once. The host's mount table never shows any of it, no directory is made
 * on the host, and everything goes when vmm exits, however it exits. The FUSE server reaches the
 * staging root through a descriptor (its path is "/proc/self/fd/N/.").
 *
 * Read-only volumes are read-only bind mounts (host-enforced: EROFS whatever the guest does);
 * every bind is nosuid,nodev and keeps the source mount's own read-only, noexec and atime flags;
 * the tmpfs itself is read-only once the entries and the list are in it. A bind is not recursive:
 * mounts below HOST are not part of the volume (a recursive bind would keep them writable).
 *
 * A --tmpfs entry has no host side: no entry in the staging root, no bind, only its line in the
 * list (the agent mounts a new tmpfs); a VM with only tmpfs entries is staged all the same, for
 * the list.
 *
 * The list, for the agent (guest/agent_boot.c reads it): one line per volume or tmpfs, sorted by
 * guest path (so an entry inside another's guest path is mounted after it),
 *   INDEX SP dir|file|tmpfs=MODE[,size=MIB] SP ro|rw SP GUEST-PATH LF
 * with INDEX the entry's name in the staging root (a tmpfs's: its place in the configuration,
 * nothing in the root), MODE the tmpfs's octal mode without a leading zero ("1777", "755", "0"),
 * MIB its size in MiB (decimal, 1 or more; absent: the kernel's default), and GUEST-PATH as
 * config_add_volume/config_add_tmpfs left it (absolute, normalised, no control bytes). */
#ifndef VMM_VOLUMES_H
#define VMM_VOLUMES_H

#include "vmm/config/config.h"
#include "vmm/log.h"

#include <stddef.h>

/* The name of the list in the staging root. */
#define VOLUMES_LIST_NAME "volumes"

struct volume_stage {
	int root_fd; /* O_PATH, the staging tmpfs's root (in the staging namespace) */
	int ns_fd;   /* the staging mount namespace, kept alive by this descriptor */
};

/* Builds the staging share for v[0..n) (as config_add_volume and config_add_tmpfs checked them;
 * each host path is opened again, without following a symlink, and must still be the directory or
 * file it was; a tmpfs entry only gets its line in the list). Needs CAP_SYS_ADMIN and a
 * single-threaded process (unshare and setns of a mount namespace), tmpfs entries alone too; the
 * caller's root and working directory are kept. Returns 0 with s filled, or a negative errno with
 * one line in e (without CAP_SYS_ADMIN: -EPERM and what to do instead: for the binds, or with
 * only tmpfs entries for those); nothing is left behind on failure. */
int volume_stage_create(struct volume_stage *s, const struct vm_volume_cfg *v, unsigned n,
			struct verr *e);

/* Closes both descriptors (the namespace goes once the FUSE server's root is closed too). */
void volume_stage_close(struct volume_stage *s);

/* The list's text for v[0..n) into buf[cap]: its length, or -E2BIG. */
int volumes_list_format(const struct vm_volume_cfg *v, unsigned n, char *buf, size_t cap);

/* For vmm: with c->nvolumes, stages them (volume_stage_create, once per process) and names the
 * staging root in the implicit VMM_VOLUME_TAG share's path ("/proc/self/fd/N/."); nothing
 * without volumes. Call after config_finish and before vm_create (the device opens its root there),
 * in the process that runs the VM, before any thread exists. Errors start with "--volume" (the
 * CAP_SYS_ADMIN one with "--tmpfs" when there are only tmpfs entries). */
int volumes_stage(struct vm_config *c, struct verr *e);

/* --enter-rootfs: moves vmm into a mount namespace of its own whose root is the --rootfs
 * directory, with each --volume bound at its guest path (read-only ones read-only; a missing
 * mount point made as the agent makes it, resolved inside the root; a --tmpfs has no host side
 * and is left out) and the root read-only with --rootfs-readonly. A tool that joins vmm's mount
 * namespace, as podman cp does with a running container, then sees the container's files where
 * the container sees them, and never the host's. Everything vmm uses is open by then, and the
 * host's mount table does not change. Call in vm_run once its setup has opened every file and
 * socket, before privileges go and before any thread exists. vmm must not run chrooted then:
 * pivot_root puts the container's root where the chroot's root was attached, while a process
 * that joins the namespace (setns) starts from the namespace's own root. A volume that cannot be
 * placed is left out with a warning; any other failure returns a negative errno with one line in e,
 * and vmm must exit (it may be in the new namespace already). */
int volumes_enter_root(const struct vm_config *c, struct verr *e);

#endif
