/* vmm-oci's cgroups (cgroup.h). */
#include "oci/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const v1_controllers[] = {"memory", "pids", "cpu", "blkio", "freezer"};

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int r = n < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int check_path(const char *p, struct verr *e)
{
	if (strlen(p) > 256)
		return verr_set(e, -EINVAL,
				"config.json: linux.cgroupsPath: longer than 256 bytes");
	const char *c = p;
	while (*c) {
		while (*c == '/')
			c++;
		size_t n = strcspn(c, "/");
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return verr_set(e, -EINVAL,
					"config.json: linux.cgroupsPath: '%s' has a '.' or '..' "
					"component",
					p);
		if (memchr(c, ':', n))
			return verr_set(e, -EINVAL,
					"config.json: linux.cgroupsPath: '%s' is a systemd slice "
					"path (slice:prefix:name): use cgroupfs (podman "
					"--cgroup-manager cgroupfs)",
					p);
		c += n;
	}
	return 0;
}

/* mkdir -p of root + rel; with v2, each parent's subtree_control gets the controllers. */
static int make_dirs(const char *root, const char *rel, bool v2, char *out, size_t cap)
{
	int len = snprintf(out, cap, "%s", root);
	const char *c = rel;
	while (*c) {
		while (*c == '/')
			c++;
		size_t n = strcspn(c, "/");
		if (!n)
			break;
		if (v2) {
			char sc[600];
			snprintf(sc, sizeof(sc), "%s/cgroup.subtree_control", out);
			write_str(sc, "+memory +pids +cpu +io"); /* what the kernel has, at best */
		}
		if ((size_t)len + 1 + n >= cap)
			return -ENAMETOOLONG;
		len += snprintf(out + len, cap - (size_t)len, "/%.*s", (int)n, c);
		if (mkdir(out, 0755) < 0 && errno != EEXIST)
			return -errno;
		c += n;
	}
	return 0;
}

int oci_cgroup_prepare(struct oci_cgroup *g, const char *base, const char *cgroups_path,
		       int64_t mem_max, struct verr *e)
{
	g->n = 0;
	if (!cgroups_path || !*cgroups_path)
		return 0;
	int r = check_path(cgroups_path, e);
	if (r < 0)
		return r;
	char probe[512];
	snprintf(probe, sizeof(probe), "%s/cgroup.controllers", base);
	bool v2 = access(probe, F_OK) == 0;
	char lim[32];
	snprintf(lim, sizeof(lim), "%lld", (long long)mem_max);
	if (v2) {
		if ((r = make_dirs(base, cgroups_path, true, g->dirs[0], sizeof(g->dirs[0]))) < 0)
			return verr_set(e, r, "cgroup %s%s: cannot make it: %s", base, cgroups_path,
					strerror(-r));
		g->n = 1;
		if (mem_max > 0) {
			char p[600];
			snprintf(p, sizeof(p), "%s/memory.max", g->dirs[0]);
			if ((r = write_str(p, lim)) < 0)
				vmm_warn("cgroup %s: cannot set memory.max: %s", g->dirs[0],
					 strerror(-r));
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof(v1_controllers) / sizeof(v1_controllers[0]); i++) {
		char root[300];
		snprintf(root, sizeof(root), "%s/%s", base, v1_controllers[i]);
		snprintf(probe, sizeof(probe), "%s/cgroup.procs", root);
		if (access(probe, F_OK) < 0)
			continue; /* that controller is not mounted here */
		if ((r = make_dirs(root, cgroups_path, false, g->dirs[g->n],
				   sizeof(g->dirs[g->n]))) < 0)
			return verr_set(e, r, "cgroup %s%s: cannot make it: %s", root, cgroups_path,
					strerror(-r));
		if (mem_max > 0 && strcmp(v1_controllers[i], "memory") == 0) {
			char p[600];
			snprintf(p, sizeof(p), "%s/memory.limit_in_bytes", g->dirs[g->n]);
			if ((r = write_str(p, lim)) < 0)
				vmm_warn("cgroup %s: cannot set memory.limit_in_bytes: %s",
					 g->dirs[g->n], strerror(-r));
		}
		g->n++;
	}
	return 0;
}

int oci_cgroup_enter(const struct oci_cgroup *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		char p[600];
		snprintf(p, sizeof(p), "%s/cgroup.procs", g->dirs[i]);
		int r = write_str(p, "0");
		if (r < 0)
			return r;
	}
	return 0;
}

void oci_cgroup_remove(const char *base, const char *cgroups_path)
{
	if (!cgroups_path || !*cgroups_path)
		return;
	char p[600];
	snprintf(p, sizeof(p), "%s/cgroup.controllers", base);
	if (access(p, F_OK) == 0) {
		snprintf(p, sizeof(p), "%s/%s", base, cgroups_path);
		rmdir(p); /* the leaf only: the parents (libpod_parent) are the engine's */
		return;
	}
	for (size_t i = 0; i < sizeof(v1_controllers) / sizeof(v1_controllers[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s/%s", base, v1_controllers[i], cgroups_path);
		rmdir(p);
	}
}
