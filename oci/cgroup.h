/* vmm-oci's cgroups (cgroupfs, as podman's cgroup_manager = "cgroupfs" and containerd's shim
 * use them): the container's vmm process in the spec's linux.cgroupsPath, so that podman stats,
 * conmon's OOM watch (/proc/PID/cgroup) and the engines' accounting see the VM. cgroup v2
 * (unified, /sys/fs/cgroup/cgroup.controllers) or v1 (one hierarchy per controller: memory,
 * pids, cpu, blkio, freezer; cpuset is left out, it needs its cpus and mems set first). */
#ifndef VMM_OCI_CGROUP_H
#define VMM_OCI_CGROUP_H

#include "vmm/log.h"

#include <stdint.h>

#define OCI_CGROUP_DIRS 6

struct oci_cgroup {
	char dirs[OCI_CGROUP_DIRS][512]; /* the directories made (empty: none) */
	unsigned n;
};

/* Checks cgroupsPath ("/libpod_parent/libpod-ID", "/default/ID": absolute, no "." or ".."
 * components; a path without a leading '/' is taken under the root as runc does) and makes its
 * directories under /sys/fs/cgroup (root: base, for the tests). mem_max > 0 sets the memory
 * limit there (memory.max, or memory.limit_in_bytes on v1). No cgroup file system there, or
 * cgroupsPath NULL: 0 with g->n == 0. Otherwise 0, or a negative errno with e naming the path. */
int oci_cgroup_prepare(struct oci_cgroup *g, const char *base, const char *cgroups_path,
		       int64_t mem_max, struct verr *e);

/* Moves the calling process into every directory made (writes "0" to cgroup.procs); call in
 * the child before it execs vmm, so the VM's memory is charged there from the start. 0 or
 * -errno. */
int oci_cgroup_enter(const struct oci_cgroup *g);

/* Removes the directories (the cgroups must be empty: after vmm has gone); errors ignored. */
void oci_cgroup_remove(const char *base, const char *cgroups_path);

#endif
