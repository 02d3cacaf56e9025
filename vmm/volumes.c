/* The --volume staging share (volumes.h): a tmpfs with one bind mount per volume (none for a
 * --tmpfs entry, which only has its line in the list), in a mount namespace that only descriptors
 * reach. */
#include "vmm/volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int cmp_guest(const void *a, const void *b)
{
	const struct vm_volume_cfg *const *x = a, *const *y = b;
	return strcmp((*x)->guest, (*y)->guest);
}

int volumes_list_format(const struct vm_volume_cfg *v, unsigned n, char *buf, size_t cap)
{
	const struct vm_volume_cfg *sorted[VMM_MAX_VOLUMES];
	if (n > VMM_MAX_VOLUMES)
		return -E2BIG;
	for (unsigned i = 0; i < n; i++)
		sorted[i] = &v[i];
	qsort(sorted, n, sizeof(sorted[0]), cmp_guest);
	size_t at = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct vm_volume_cfg *e = sorted[i];
		char type[48];
		if (e->tmpfs && e->size_mib)
			snprintf(type, sizeof(type), "tmpfs=%o,size=%llu", e->mode & 07777u,
				 (unsigned long long)e->size_mib);
		else if (e->tmpfs)
			snprintf(type, sizeof(type), "tmpfs=%o", e->mode & 07777u);
		else
			snprintf(type, sizeof(type), "%s", e->file ? "file" : "dir");
		int w = snprintf(buf + at, cap - at, "%u %s %s %s\n", (unsigned)(e - v), type,
				 e->ro ? "ro" : "rw", e->guest);
		if (w < 0 || (size_t)w >= cap - at)
			return -E2BIG;
		at += (size_t)w;
	}
	if (cap)
		buf[at] = '\0';
	return (int)at;
}

/* The mount flags a bind of the mount under fd keeps from it (statvfs's view). */
static unsigned long kept_flags(int fd)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (fstatvfs(fd, &sv) < 0)
		return MS_RDONLY; /* cannot tell: the safe side */
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* The remount flags of a volume's bind of the mount under src: nosuid, nodev, what the source
 * mount keeps, read-only for a ro volume. */
static unsigned long bind_flags(int src, bool ro)
{
	return MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | kept_flags(src) | (ro ? MS_RDONLY : 0);
}

static int write_list(int root, const struct vm_volume_cfg *v, unsigned n, struct verr *e)
{
	size_t cap = (size_t)n * 4200 + 1;
	char *buf = malloc(cap);
	if (!buf)
		return verr_set(e, -ENOMEM, "--volume: out of memory");
	int len = volumes_list_format(v, n, buf, cap);
	int fd = len < 0 ? -1
			 : openat(root, VOLUMES_LIST_NAME,
				  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	int r = 0;
	if (len < 0)
		r = verr_set(e, -E2BIG, "--volume: the list of volumes does not fit");
	else if (fd < 0 || write(fd, buf, (size_t)len) != len)
		r = verr_set(e, -errno,
			     "--volume: cannot write the list into the staging tmpfs: %s",
			     strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* A directory of the staging namespace to mount the tmpfs on: nothing lives in that namespace
 * once vmm has left it, so covering one hides nothing from anyone. Not /proc, whose
 * /proc/self/fd names the sources and the entries. */
static const char *cover_point(int rootfd)
{
	static const char *const names[] = {"tmp", "run", "mnt", "var", "dev", "srv"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct stat st;
		if (fstatat(rootfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			return names[i];
	}
	return NULL;
}

/* Inside the staging namespace: the tmpfs, the entries, the binds, the list. */
static int build(struct volume_stage *s, const struct vm_volume_cfg *v, unsigned n, int *src,
		 struct verr *e)
{
	char path[64], target[64];
	int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return verr_set(e, -errno, "--volume: cannot open /: %s", strerror(errno));
	const char *at = cover_point(rootfd);
	struct stat before, st;
	int r = 0;
	if (!at) {
		r = verr_set(e, -ENOENT,
			     "--volume: no directory (/tmp, /run, /mnt...) to mount the staging "
			     "tmpfs on in vmm's mount namespace");
		goto out;
	}
	snprintf(path, sizeof(path), "/%s", at);
	if (fstatat(rootfd, at, &before, AT_SYMLINK_NOFOLLOW) < 0 ||
	    mount("vmm-vol", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=2m,nr_inodes=256") < 0) {
		r = verr_set(e, -errno, "--volume: cannot mount the staging tmpfs on %s: %s", path,
			     strerror(errno));
		goto out;
	}
	struct statfs sf;
	s->root_fd = openat(rootfd, at, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->root_fd < 0 || fstat(s->root_fd, &st) < 0 || fstatfs(s->root_fd, &sf) < 0 ||
	    st.st_dev == before.st_dev || sf.f_type != TMPFS_MAGIC) {
		r = verr_set(e, -EIO,
			     "--volume: the staging tmpfs is not where it was mounted (%s)", path);
		goto out;
	}
	int dfd = openat(s->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = verr_set(e, -errno, "--volume: cannot open the staging tmpfs: %s",
			     strerror(errno));
		goto out;
	}
	for (unsigned i = 0; i < n && r == 0; i++) {
		char name[16];
		snprintf(name, sizeof(name), "%u", i);
		int f = -1;
		if (v[i].tmpfs) /* made in the guest: no entry */
			continue;
		if (v[i].file)
			f = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				   0644);
		if ((v[i].file && f < 0) || (!v[i].file && mkdirat(dfd, name, 0755) < 0))
			r = verr_set(e, -errno,
				     "--volume %s: cannot make its entry in the staging tmpfs: %s",
				     v[i].host, strerror(errno));
		if (f >= 0)
			close(f);
	}
	if (r == 0)
		r = write_list(dfd, v, n, e);
	close(dfd);
	for (unsigned i = 0; i < n && r == 0; i++) {
		if (v[i].tmpfs)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", src[i]);
		snprintf(target, sizeof(target), "/proc/self/fd/%d/%u", s->root_fd, i);
		unsigned long flags = bind_flags(src[i], v[i].ro);
		if (mount(path, target, NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, target, NULL, flags, NULL) < 0)
			r = verr_set(e, -errno, "--volume %s: cannot bind-mount it%s: %s",
				     v[i].host, v[i].ro ? " read-only" : "", strerror(errno));
	}
	/* the tmpfs itself read-only: the guest cannot add to it (nor fill the host's memory) */
	snprintf(target, sizeof(target), "/proc/self/fd/%d", s->root_fd);
	if (r == 0 &&
	    mount(NULL, target, NULL,
		  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		r = verr_set(e, -errno, "--volume: cannot make the staging tmpfs read-only: %s",
			     strerror(errno));
	if (r == 0) {
		s->ns_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		if (s->ns_fd < 0)
			r = verr_set(e, -errno, "--volume: cannot open /proc/self/ns/mnt: %s",
				     strerror(errno));
	}
out:
	close(rootfd);
	return r;
}

int volume_stage_create(struct volume_stage *s, const struct vm_volume_cfg *v, unsigned n,
			struct verr *e)
{
	s->root_fd = s->ns_fd = -1;
	if (n == 0 || n > VMM_MAX_VOLUMES)
		return verr_set(e, -EINVAL, "--volume: %u volumes (1 to %u)", n, VMM_MAX_VOLUMES);
	/* where to come back to: the host's namespace, and our root and working directory (setns
	 * moves both to the namespace's root) */
	int host_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int src[VMM_MAX_VOLUMES];
	for (unsigned i = 0; i < n; i++)
		src[i] = -1;
	int r = 0;
	if (host_ns < 0 || root < 0 || cwd < 0) {
		r = verr_set(e, -errno,
			     "--volume: cannot open /proc/self/ns/mnt, / or the working "
			     "directory: %s",
			     strerror(errno));
		goto out;
	}
	if (unshare(CLONE_NEWNS) < 0) {
		int err = errno;
		bool binds = false;
		for (unsigned i = 0; i < n; i++)
			binds |= !v[i].tmpfs;
		if (err == EPERM && binds)
			r = verr_set(
			    e, -EPERM,
			    "--volume: bind-mounting volumes needs CAP_SYS_ADMIN (unshare of "
			    "a mount namespace: %s): run vmm as root, or share a directory "
			    "with --share tag=NAME,path=DIR and mount it in the guest",
			    strerror(err));
		else if (err == EPERM)
			r = verr_set(
			    e, -EPERM,
			    "--tmpfs: the list of tmpfs mounts goes to the guest in a staging "
			    "tmpfs that needs CAP_SYS_ADMIN (unshare of a mount namespace: %s): "
			    "run vmm as root, or mount the tmpfs in the guest yourself",
			    strerror(err));
		else
			r = verr_set(e, -err, "--volume: cannot make a mount namespace: %s",
				     strerror(err));
		goto out;
	}
	/* From here on this process is in the staging namespace: nothing it mounts may reach the
	 * host's, and it goes back there whatever happens. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		r = verr_set(e, -errno, "--volume: cannot make vmm's mount namespace private: %s",
			     strerror(errno));
		goto back;
	}
	for (unsigned i = 0; i < n && r == 0; i++) {
		struct stat st;
		if (v[i].tmpfs)
			continue;
		src[i] = open(v[i].host, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (src[i] < 0 || fstat(src[i], &st) < 0)
			r = verr_set(e, -errno, "--volume %s: cannot open it: %s", v[i].host,
				     strerror(errno));
		else if (v[i].file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
			r = verr_set(e, -EINVAL,
				     "--volume %s: it is no longer the %s it was: give it again",
				     v[i].host, v[i].file ? "regular file" : "directory");
	}
	if (r == 0)
		r = build(s, v, n, src, e);
back:
	if (setns(host_ns, CLONE_NEWNS) < 0 || fchdir(root) < 0 || chroot(".") < 0 ||
	    fchdir(cwd) < 0) {
		/* vmm must not go on in the staging namespace or another root: the caller exits */
		r = verr_set(e, -errno,
			     "--volume: cannot return to the host's mount namespace and root: %s",
			     strerror(errno));
	}
out:
	for (unsigned i = 0; i < n; i++)
		close_fd(&src[i]);
	close_fd(&host_ns);
	close_fd(&root);
	close_fd(&cwd);
	if (r < 0)
		volume_stage_close(s);
	return r;
}

void volume_stage_close(struct volume_stage *s)
{
	close_fd(&s->root_fd);
	close_fd(&s->ns_fd);
}

int volumes_stage(struct vm_config *c, struct verr *e)
{
	static struct volume_stage stage = {-1, -1};
	if (!c->nvolumes)
		return 0;
	struct vm_device_cfg *d = NULL;
	for (unsigned i = 0; i < c->ndevices; i++)
		if (c->devices[i].type == VM_DEV_FS && c->devices[i].implicit)
			d = &c->devices[i];
	if (!d)
		return verr_set(e, -EINVAL,
				"--volume: no staging share (config_finish was not run)");
	if (stage.root_fd < 0) {
		int r = volume_stage_create(&stage, c->volumes, c->nvolumes, e);
		if (r < 0)
			return r;
	}
	snprintf(d->u.fs.path, sizeof(d->u.fs.path), "/proc/self/fd/%d/.", stage.root_fd);
	vmm_debug("--volume: %u volumes staged (%s)", c->nvolumes, d->u.fs.path);
	return 0;
}

/* ---- --enter-rootfs: vmm's own mount namespace, rooted at the container's directory ---- */

static int open_in_root(int root, const char *rel, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, root, rel, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* An O_PATH descriptor of the volume's guest path in the container's root (absolute symlinks
 * and ".." stay inside it: RESOLVE_IN_ROOT), made as the agent would make it when it is missing:
 * its directories 0755, a file volume's empty file 0644. The type must be the volume's. */
static int mount_point(int root, const struct vm_volume_cfg *v)
{
	char rel[PATH_MAX];
	snprintf(rel, sizeof(rel), "%s", v->guest + 1); /* guest is absolute, normalised */
	int fd = open_in_root(root, rel, O_PATH);
	if (fd == -ENOENT) {
		/* each component in turn: resolve the prefix, make the next name in what it is */
		int parent = open_in_root(root, ".", O_PATH | O_DIRECTORY);
		for (char *p = rel; parent >= 0 && fd == -ENOENT;) {
			char *slash = strchr(p, '/');
			bool last = !slash;
			if (slash)
				*slash = '\0';
			int next = open_in_root(root, rel, O_PATH | (last ? 0 : O_DIRECTORY));
			if (next == -ENOENT) {
				int dfd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				int made = dfd < 0 ? -errno : 0;
				if (made == 0 && (!last || !v->file) && mkdirat(dfd, p, 0755) < 0)
					made = -errno;
				if (made == 0 && last && v->file) {
					int f = openat(dfd, p,
						       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
							   O_CLOEXEC,
						       0644);
					made = f < 0 ? -errno : close(f);
				}
				if (dfd >= 0)
					close(dfd);
				next = made < 0 ? made
						: open_in_root(root, rel,
							       O_PATH | (last ? 0 : O_DIRECTORY));
			}
			close(parent);
			parent = -1;
			if (next < 0 || last) {
				fd = next;
				break;
			}
			parent = next;
			*slash = '/';
			p = slash + 1;
		}
		if (parent >= 0)
			close(parent);
	}
	struct stat st;
	if (fd >= 0 &&
	    (fstat(fd, &st) < 0 || (v->file ? S_ISDIR(st.st_mode) : !S_ISDIR(st.st_mode)))) {
		close(fd);
		fd = -ENOTDIR;
	}
	return fd;
}

int volumes_enter_root(const struct vm_config *c, struct verr *e)
{
	const struct vm_device_cfg *rd = NULL;
	for (unsigned i = 0; i < c->ndevices; i++)
		if (c->devices[i].type == VM_DEV_FS && c->devices[i].root)
			rd = &c->devices[i];
	if (!rd)
		return verr_set(e, -EINVAL, "--enter-rootfs: needs --rootfs DIR");
	const struct vm_volume_cfg *sorted[VMM_MAX_VOLUMES];
	int src[VMM_MAX_VOLUMES];
	unsigned n = c->nvolumes < VMM_MAX_VOLUMES ? c->nvolumes : VMM_MAX_VOLUMES;
	for (unsigned i = 0; i < n; i++) {
		sorted[i] = &c->volumes[i];
		src[i] = -1;
	}
	qsort(sorted, n, sizeof(sorted[0]), cmp_guest);
	char from[64], to[64];
	int r = 0, root = -1;
	if (unshare(CLONE_NEWNS) < 0) {
		r = verr_set(e, -errno,
			     "--enter-rootfs: cannot make a mount namespace (%s): it needs "
			     "CAP_SYS_ADMIN; run vmm as root, or leave the option out",
			     strerror(errno));
		goto out;
	}
	/* From here on only this namespace changes: nothing propagates back to the host's. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
	    mount(rd->u.fs.path, rd->u.fs.path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		r = verr_set(e, -errno, "--enter-rootfs: cannot bind-mount %s on itself: %s",
			     rd->u.fs.path, strerror(errno));
		goto out;
	}
	/* the sources, in this namespace (a bind's source must be in the caller's), where the host
	 * has them until the pivot */
	for (unsigned i = 0; i < n; i++)
		if (!sorted[i]->tmpfs)
			src[i] = open(sorted[i]->host, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	/* the lookup ends on the bind just made: pivot_root checks that it is a mount */
	root = open(rd->u.fs.path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		r = verr_set(e, -errno, "--enter-rootfs: cannot open %s: %s", rd->u.fs.path,
			     strerror(errno));
		goto out;
	}
	/* A volume that cannot be placed is left out with one line: the container still runs,
	 * only tools that join vmm's namespace miss it (the guest mounts it all the same). */
	for (unsigned i = 0; i < n; i++) {
		const struct vm_volume_cfg *v = sorted[i];
		if (v->tmpfs)
			continue;
		int at = src[i] < 0 ? -EBADF : mount_point(root, v);
		int err = at < 0 ? -at : 0;
		if (at >= 0) {
			snprintf(from, sizeof(from), "/proc/self/fd/%d", src[i]);
			snprintf(to, sizeof(to), "/proc/self/fd/%d", at);
			unsigned long flags = bind_flags(src[i], v->ro);
			if (mount(from, to, NULL, MS_BIND, NULL) < 0)
				err = errno;
			close(at);
			/* the flags go on the new mount: a fresh lookup ends on it, the old
			 * descriptor names the directory under it */
			at = err ? -1 : mount_point(root, v);
			snprintf(to, sizeof(to), "/proc/self/fd/%d", at);
			if (!err && (at < 0 || mount(NULL, to, NULL, flags, NULL) < 0))
				err = at < 0 ? -at : errno;
			if (at >= 0)
				close(at);
		}
		if (err)
			vmm_warn("--enter-rootfs: volume %s is not at %s in vmm's mount namespace "
				 "(%s): tools that join it (podman cp) do not see it there",
				 v->host, v->guest, strerror(err));
	}
	snprintf(to, sizeof(to), "/proc/self/fd/%d", root);
	if (c->rootfs_readonly &&
	    mount(NULL, to, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(root), NULL) < 0) {
		r = verr_set(e, -errno, "--enter-rootfs: cannot make %s read-only: %s",
			     rd->u.fs.path, strerror(errno));
		goto out;
	}
	/* pivot_root(".", "."): the old root is stacked under the new one, then detached */
	if (fchdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		r = verr_set(e, -errno, "--enter-rootfs: cannot make %s vmm's root: %s",
			     rd->u.fs.path, strerror(errno));
		goto out;
	}
	vmm_debug("--enter-rootfs: vmm's root is now %s", rd->u.fs.path);
out:
	for (unsigned i = 0; i < n; i++)
		close_fd(&src[i]);
	close_fd(&root);
	return r;
}
