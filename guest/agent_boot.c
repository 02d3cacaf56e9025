/* vmm-agent's PID-1 setup: the guest-signal port, the console, the kernel command line, the
 * network, and the container's root file system (see agent.h and docs/agent-protocol.md). None of
 * this runs in test mode. */
#include "guest/agent.h"

#include "devices/guest_signal.h"
#include "guest/agent_proto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOTFS_DEV "/dev/vda"

static bool port_present;

void agent_say(const char *fmt, ...)
{
	static const char prefix[] = "vmm-agent: ";
	char line[512];
	va_list ap;

	memcpy(line, prefix, sizeof(prefix) - 1);
	size_t len = sizeof(prefix) - 1, room = sizeof(line) - len - 1;
	va_start(ap, fmt);
	int n = vsnprintf(line + len, room + 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n < room ? (size_t)n : room;
	line[len++] = '\n';
	ssize_t ret = write(STDERR_FILENO, line, len);
	(void)ret; /* a console that cannot be written leaves nowhere to say so */
}

void agent_port_probe(void)
{
	if (ioperm(GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN, 1) < 0) {
		agent_say("no guest-signal port: ioperm: %s", strerror(errno));
		return;
	}
	port_present = inl(GUEST_SIGNAL_PORT) == GUEST_SIGNAL_MAGIC;
	if (!port_present)
		ioperm(GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN, 0);
}

void agent_port_signal(unsigned int code, unsigned int arg)
{
	if (port_present)
		outl(GUEST_SIGNAL(code, arg), GUEST_SIGNAL_PORT);
}

void agent_port_release(void)
{
	if (port_present)
		ioperm(GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN, 0);
}

/* Copies value into dst[cap]; false (and a console line) when it does not fit or is empty. */
static bool take_value(char *dst, size_t cap, const char *key, const char *value)
{
	size_t n = strlen(value);
	if (n == 0 || n >= cap) {
		agent_say("ignoring %s=%s: empty or longer than %zu bytes", key, value, cap - 1);
		return false;
	}
	memcpy(dst, value, n + 1);
	return true;
}

void agent_cmdline_parse(char *line, struct agent_config *c)
{
	char *save = NULL;

	for (char *w = strtok_r(line, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (!strcmp(w, "--"))
			break;
		if (strncmp(w, "vmm.", 4) != 0)
			continue;
		char *value = strchr(w, '=');
		if (!value) {
			agent_say("ignoring %s: not key=value", w);
			continue;
		}
		*value++ = '\0';
		if (!strcmp(w, "vmm.rootfs")) {
			if (!strcmp(value, "ro") || !strcmp(value, "rw")) {
				c->rootfs_rw = value[1] == 'w';
				c->rootfs_tag[0] = '\0';
			} else if (!strncmp(value, "virtiofs:", 9)) {
				if (take_value(c->rootfs_tag, sizeof(c->rootfs_tag), w, value + 9))
					c->rootfs_rw = true;
			} else {
				agent_say("ignoring vmm.rootfs=%s: not ro, rw or virtiofs:TAG",
					  value);
			}
		} else if (!strcmp(w, "vmm.rootro")) {
			if (!strcmp(value, "0") || !strcmp(value, "1"))
				c->root_readonly = value[0] == '1';
			else
				agent_say("ignoring vmm.rootro=%s: not 0 or 1", value);
		} else if (!strcmp(w, "vmm.hostname")) {
			take_value(c->hostname, sizeof(c->hostname), w, value);
		} else if (!strcmp(w, "vmm.ip")) {
			take_value(c->ip, sizeof(c->ip), w, value);
		} else if (!strcmp(w, "vmm.gw")) {
			take_value(c->gw, sizeof(c->gw), w, value);
		} else if (!strcmp(w, "vmm.ip6")) {
			take_value(c->ip6, sizeof(c->ip6), w, value);
		} else if (!strcmp(w, "vmm.gw6")) {
			take_value(c->gw6, sizeof(c->gw6), w, value);
		} else if (!strcmp(w, "vmm.route")) {
			if (c->nroutes == AGENT_MAX_ROUTES)
				agent_say("ignoring vmm.route=%s: more than %u routes", value,
					  AGENT_MAX_ROUTES);
			else if (take_value(c->routes[c->nroutes], sizeof(c->routes[0]), w, value))
				c->nroutes++;
		} else if (!strcmp(w, "vmm.volumes")) {
			char *end = NULL;
			errno = 0;
			unsigned long n = strtoul(value, &end, 10);
			if (value[0] < '1' || value[0] > '9' || *end || errno ||
			    n > AGENT_MAX_VOLUMES)
				agent_say("ignoring vmm.volumes=%s: not a number from 1 to %u",
					  value, AGENT_MAX_VOLUMES);
			else
				c->volumes = (unsigned)n;
		} else {
			agent_say("ignoring unknown key %s", w);
		}
	}
}

/* Creates target (if missing) and mounts there; returns 0 or -errno. */
static int mount_at(const char *src, const char *target, const char *type, unsigned long flags,
		    const char *data)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mount(src, target, type, flags, data) < 0)
		return -errno;
	return 0;
}

struct mount_spec {
	const char *target;
	const char *type; /* also the source: all virtual file systems */
	unsigned long flags;
	const char *data;
	bool required;
};

/* Mounts each of specs[n]; returns -1 if a required one failed (after saying which). */
static int mount_list(const struct mount_spec *specs, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		const struct mount_spec *m = &specs[i];
		int err = mount_at(m->type, m->target, m->type, m->flags, m->data);
		if (!err)
			continue;
		agent_say("cannot mount %s on %s: %s%s", m->type, m->target, strerror(-err),
			  m->required ? "" : " (continuing)");
		if (m->required)
			ret = -1;
	}
	return ret;
}

static const struct mount_spec agent_mounts[] = {
    {"/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true},
    {"/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false},
    {"/dev", "devtmpfs", MS_NOSUID, "mode=0755", true},
};

/* The container's own: a new devpts instance, so its ptys are numbered from 0 and only its own
 * show in /dev/pts. */
static const struct mount_spec container_mounts[] = {
    {AGENT_NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true},
    {AGENT_NEWROOT "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false},
    {AGENT_NEWROOT "/dev", "devtmpfs", MS_NOSUID, "mode=0755", true},
    {AGENT_NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
     "newinstance,ptmxmode=0666,mode=0620,gid=5", true},
    {AGENT_NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false},
};

/* The kernel opens /dev/console as fds 0-2 for init, or leaves them closed when that fails;
 * retry once devtmpfs is there so the agent's lines can be seen. */
static void console_stdio(void)
{
	for (int i = 0; i <= 2; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		int fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd < 0)
			return;
		if (fd != i) {
			dup2(fd, i);
			close(fd);
		}
	}
}

/* The rootfs's type from its superblock magic (both live 1024 bytes in): erofs, or ext2/3/4
 * (mounted with the ext4 driver). Probing by magic rather than trying each type keeps the
 * kernel's "can't find ext4 filesystem" line off the console. NULL when it is neither. */
static const char *rootfs_type(const char **why)
{
	uint8_t sb[1024 + 64];
	int fd = open(ROOTFS_DEV, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = strerror(errno);
		return NULL;
	}
	ssize_t n = pread(fd, sb, sizeof(sb), 0);
	close(fd);
	if (n != (ssize_t)sizeof(sb)) {
		*why = "the disk is too small for a file system";
		return NULL;
	}
	const uint8_t *p = sb + 1024;
	if (le_get32(p) == 0xE0F5E1E2u)
		return "erofs";
	if (le_get16(p + 56) == 0xEF53)
		return "ext4";
	*why = "no ext4 or erofs superblock on it";
	return NULL;
}

/* Mounts the rootfs at target; -1 after one console line when it cannot. */
static int mount_rootfs(const char *target, bool rw)
{
	const char *why = NULL;
	const char *type = rootfs_type(&why);
	int err = type ? -mount_at(ROOTFS_DEV, target, type, rw ? 0 : MS_RDONLY, NULL) : 0;
	if (type && !err)
		return 0;
	if (type)
		why = strerror(err);
	agent_say("cannot mount the rootfs " ROOTFS_DEV
		  "%s%s%s: %s: give --rootfs an ext4 or erofs "
		  "image (vmm-mkrootfs makes one)",
		  rw ? " read-write" : "", type ? " as " : "", type ? type : "", why);
	return -1;
}

/* The container's root at AGENT_NEWROOT: a virtio-fs share (tag), read-write into the host's
 * directory, without an overlay; or the rootfs disk itself (rw, or ro for a read-only root), or
 * the read-only rootfs disk under a tmpfs-backed overlay, so writes work and vanish with the VM. */
static int setup_root(const char *tag, bool rw, bool readonly)
{
	int err;

	if (tag[0]) {
		err = mount_at(tag, AGENT_NEWROOT, "virtiofs", 0, NULL);
		if (err)
			agent_say(
			    "cannot mount the virtio-fs root '%s': %s: give --rootfs an existing "
			    "directory",
			    tag, strerror(-err));
		return err ? -1 : 0;
	}
	if (rw || readonly)
		return mount_rootfs(AGENT_NEWROOT, rw);
	if (mount_rootfs("/lower", false) < 0)
		return -1;
	err = mount_at("tmpfs", "/overlay", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	if (!err && ((mkdir("/overlay/upper", 0755) < 0 && errno != EEXIST) ||
		     (mkdir("/overlay/work", 0755) < 0 && errno != EEXIST)))
		err = -errno;
	if (!err)
		err = mount_at("overlay", AGENT_NEWROOT, "overlay", 0,
			       "lowerdir=/lower,upperdir=/overlay/upper,workdir=/overlay/work");
	if (err) {
		agent_say("cannot set up the writable overlay on the rootfs: %s", strerror(-err));
		return -1;
	}
	return 0;
}

/* ---- volumes ---- */

static bool valid_guest_path(const char *p, size_t n)
{
	if (n < 2 || n > AGENT_VOLUME_PATH_MAX || p[0] != '/' || p[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	for (const char *c = p + 1;;) { /* each component: not empty, not "." or ".." */
		size_t len = strcspn(c, "/");
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!c[len])
			return true;
		c += len + 1;
	}
}

/* An unsigned number in `base` at *p: digits only, no leading zero (but "0"), at most max; the
 * end in *p. False if not. */
static bool list_number(const char **p, unsigned base, unsigned long max, unsigned long *out)
{
	const char *q = *p;
	unsigned long n = 0;
	if (*q < '0' || *q > (char)('0' + base - 1) || (q[0] == '0' && q[1] >= '0' && q[1] <= '9'))
		return false;
	for (; *q >= '0' && *q <= (char)('0' + base - 1); q++) {
		n = n * base + (unsigned long)(*q - '0');
		if (n > max)
			return false;
	}
	*p = q;
	*out = n;
	return true;
}

/* After "tmpfs=": MODE[,size=MIB] and a space into *a; what follows, or NULL with *why. */
static char *tmpfs_word(char *q, struct agent_volume *a, const char **why)
{
	const char *p = q;
	unsigned long mode, size = 0;
	if (!list_number(&p, 8, 07777, &mode)) {
		*why = "a tmpfs mode that is not octal from 0 to 7777 (without a leading zero)";
		return NULL;
	}
	if (!strncmp(p, ",size=", 6)) {
		p += 6;
		if (!list_number(&p, 10, AGENT_TMPFS_SIZE_MAX, &size) || size == 0) {
			*why = "a tmpfs size that is not a number of MiB from 1 to 1048576";
			return NULL;
		}
	}
	if (*p != ' ') {
		*why = "a tmpfs type with more than mode and size=MIB";
		return NULL;
	}
	a->mode = (unsigned)mode;
	a->size_mib = (unsigned)size;
	return q + (p - q) + 1;
}

int agent_volumes_parse(char *text, size_t len, unsigned expect, struct agent_volume *v,
			const char **why)
{
	bool seen[AGENT_MAX_VOLUMES] = {false};
	unsigned n = 0;
	char *p = text, *end = text + len;
	if (expect == 0 || expect > AGENT_MAX_VOLUMES) {
		*why = "the count is not 1 to 64";
		return -1;
	}
	if (memchr(text, '\0', len)) {
		*why = "a NUL byte in the list";
		return -1;
	}
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			*why = "the last line has no newline";
			return -1;
		}
		*nl = '\0';
		if (n == expect) {
			*why = "more lines than vmm.volumes says";
			return -1;
		}
		/* INDEX: decimal, no leading zero, below expect */
		char *q = p;
		unsigned idx = 0;
		if (*q < '0' || *q > '9' || (q[0] == '0' && q[1] >= '0' && q[1] <= '9')) {
			*why = "a line does not start with an index";
			return -1;
		}
		for (; *q >= '0' && *q <= '9' && idx < AGENT_MAX_VOLUMES; q++)
			idx = idx * 10 + (unsigned)(*q - '0');
		if (idx >= expect || seen[idx] || *q != ' ') {
			*why = "an index out of range, given twice or not followed by a space";
			return -1;
		}
		q++;
		struct agent_volume a = {.index = idx};
		if (!strncmp(q, "dir ", 4)) {
			q += 4;
		} else if (!strncmp(q, "file ", 5)) {
			a.file = true;
			q += 5;
		} else if (!strncmp(q, "tmpfs=", 6)) {
			a.tmpfs = true;
			q = tmpfs_word(q + 6, &a, why);
			if (!q)
				return -1;
		} else {
			*why = "a type that is not dir, file or tmpfs=MODE";
			return -1;
		}
		if (!strncmp(q, "ro ", 3) || !strncmp(q, "rw ", 3)) {
			a.ro = q[1] == 'o';
			q += 3;
		} else {
			*why = "a mode that is not ro or rw";
			return -1;
		}
		if (!valid_guest_path(q, (size_t)(nl - q))) {
			*why = "a guest path that is not absolute and normalised";
			return -1;
		}
		if (n && strcmp(v[n - 1].guest, q) >= 0) {
			*why = "guest paths not in ascending order (or given twice)";
			return -1;
		}
		seen[idx] = true;
		a.guest = q;
		v[n++] = a;
		p = nl + 1;
	}
	if (n != expect) {
		*why = "fewer lines than vmm.volumes says";
		return -1;
	}
	return 0;
}

/* The mount point of guest path `g` in the container's root, made if missing (directories along
 * it 0755, the last one a directory or an empty 0644 file), without following a symlink anywhere
 * on it: an O_PATH descriptor of its last component, *parent that of the directory holding it and
 * *last its name (into buf). -1 after a console line. */
static int volume_target(const struct agent_volume *v, char *buf, int *parent, const char **last)
{
	snprintf(buf, AGENT_VOLUME_PATH_MAX + 1, "%s", v->guest);
	int dir = open(AGENT_NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		agent_say("volume %s: cannot open " AGENT_NEWROOT ": %s", v->guest,
			  strerror(errno));
		return -1;
	}
	char *c = buf + 1;
	for (char *slash; (slash = strchr(c, '/')); c = slash + 1) {
		*slash = '\0';
		struct stat st;
		if (fstatat(dir, c, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT &&
		    mkdirat(dir, c, 0755) < 0 && errno != EEXIST)
			goto fail;
		int next = openat(dir, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 || fstat(next, &st) < 0 || !S_ISDIR(st.st_mode)) {
			if (next >= 0)
				close(next);
			errno = next >= 0 ? ENOTDIR : errno;
			goto fail;
		}
		close(dir);
		dir = next;
		*slash = '/';
	}
	struct stat st;
	if (fstatat(dir, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		int fd = -1;
		if (errno != ENOENT ||
		    (v->file ? (fd = openat(dir, c,
					    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					    0644)) < 0
			     : mkdirat(dir, c, 0755) < 0))
			goto fail;
		if (fd >= 0)
			close(fd);
	} else if (v->file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)) {
		errno = S_ISLNK(st.st_mode) ? ELOOP : v->file ? EISDIR : ENOTDIR;
		goto fail;
	}
	int fd = openat(dir, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	*parent = dir;
	*last = c;
	return fd;
fail:
	agent_say("volume %s: cannot make its mount point in the container (a symlink or a %s on "
		  "the way?): %s",
		  v->guest, v->file ? "directory" : "file", strerror(errno));
	close(dir);
	return -1;
}

static int mount_volume(const struct agent_volume *v)
{
	char src[64], target[64], buf[AGENT_VOLUME_PATH_MAX + 1];
	int parent = -1;
	const char *last;
	int fd = volume_target(v, buf, &parent, &last);
	if (fd < 0)
		return -1;
	snprintf(src, sizeof(src), AGENT_VOLUME_DIR "/%u", v->index);
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	int err = mount(src, target, NULL, MS_BIND, NULL) < 0 ? errno : 0;
	close(fd);
	if (!err && v->ro) {
		/* the new mount's root, through its parent (the descriptor is the mount point) */
		fd = openat(parent, last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
		if (fd < 0 ||
		    mount(NULL, target, NULL,
			  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
			err = errno;
		if (fd >= 0)
			close(fd);
	}
	close(parent);
	if (err) {
		agent_say("volume %s: cannot bind-mount it%s: %s", v->guest,
			  v->ro ? " read-only" : "", strerror(err));
		return -1;
	}
	return 0;
}

/* A new tmpfs at v->guest (its mount point made as a volume's), nosuid,nodev, its mode and size as
 * the list says, read-only when asked. */
static int mount_tmpfs(const struct agent_volume *v)
{
	char target[64], data[64], buf[AGENT_VOLUME_PATH_MAX + 1];
	int parent = -1;
	const char *last;
	int fd = volume_target(v, buf, &parent, &last);
	if (fd < 0)
		return -1;
	close(parent);
	if (v->size_mib)
		snprintf(data, sizeof(data), "mode=%o,size=%um", v->mode, v->size_mib);
	else
		snprintf(data, sizeof(data), "mode=%o", v->mode);
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	int err = mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | (v->ro ? MS_RDONLY : 0),
			data) < 0
		      ? errno
		      : 0;
	close(fd);
	if (err) {
		agent_say("tmpfs %s: cannot mount it (%s%s): %s", v->guest, data,
			  v->ro ? ",ro" : "", strerror(err));
		return -1;
	}
	return 0;
}

/* The staging share at AGENT_VOLUME_DIR for as long as it takes to bind its entries into the
 * container (and mount the tmpfs ones, in the list's order); the container never sees it. */
static int setup_volumes(unsigned count)
{
	static char list[AGENT_VOLUME_LIST_MAX + 1];
	static struct agent_volume v[AGENT_MAX_VOLUMES];
	/* nosuid,nodev: the binds keep the flags of this mount (programs on a volume may run) */
	int err =
	    mount_at(AGENT_VOLUME_TAG, AGENT_VOLUME_DIR, "virtiofs", MS_NOSUID | MS_NODEV, NULL);
	if (err) {
		agent_say("cannot mount the volumes' share %s: %s", AGENT_VOLUME_TAG,
			  strerror(-err));
		return -1;
	}
	int ret = -1;
	const char *why = NULL;
	int fd = open(AGENT_VOLUME_DIR "/" AGENT_VOLUME_LIST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	size_t len = 0;
	ssize_t n = 0;
	while (
	    fd >= 0 && len < sizeof(list) - 1 &&
	    ((n = read(fd, list + len, sizeof(list) - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	list[len] = '\0';
	if (fd < 0 || n < 0)
		agent_say("cannot read the volumes' list: %s", strerror(errno));
	else if (len == sizeof(list) - 1)
		agent_say("the volumes' list is longer than %u bytes", AGENT_VOLUME_LIST_MAX);
	else if (agent_volumes_parse(list, len, count, v, &why) < 0)
		agent_say("the volumes' list is not what vmm writes: %s", why);
	else
		ret = 0;
	if (fd >= 0)
		close(fd);
	for (unsigned i = 0; ret == 0 && i < count; i++)
		ret = v[i].tmpfs ? mount_tmpfs(&v[i]) : mount_volume(&v[i]);
	if (umount2(AGENT_VOLUME_DIR, MNT_DETACH) < 0 || rmdir(AGENT_VOLUME_DIR) < 0)
		agent_say("cannot take the volumes' share off " AGENT_VOLUME_DIR
			  ": %s (continuing)",
			  strerror(errno));
	return ret;
}

static int if_up(int fd, const char *name)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return -errno;
	return 0;
}

static void set_sin(struct sockaddr *sa, struct in_addr a)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr = a;
	memcpy(sa, &sin, sizeof(sin));
}

/* "ADDR/N" (or "ADDR", N all the address's bits, unless need_prefix) of family AF_INET or
 * AF_INET6 into addr (a struct in_addr or in6_addr) and *prefix; false when it is not. */
static bool parse_cidr(const char *s, bool need_prefix, int family, void *addr, unsigned *prefix)
{
	char buf[INET6_ADDRSTRLEN + 8], *end = NULL;
	snprintf(buf, sizeof(buf), "%s", s);
	char *slash = strchr(buf, '/');
	unsigned long bits = family == AF_INET6 ? 128 : 32, p = bits;
	if (slash) {
		*slash = '\0';
		errno = 0;
		p = strtoul(slash + 1, &end, 10);
	}
	if ((need_prefix && !slash) || inet_pton(family, buf, addr) != 1 ||
	    (slash && (*end || end == slash + 1 || !isdigit((unsigned char)slash[1]))) || p > bits)
		return false;
	*prefix = (unsigned)p;
	return true;
}

static struct in_addr mask4(unsigned prefix)
{
	struct in_addr m = {htonl(prefix ? 0xffffffffu << (32 - prefix) : 0)};
	return m;
}

/* SIOCADDRT on eth0: dst/prefix through *gw, or on the link (gw NULL). fd is a socket of the
 * family; IPv6 takes eth0's index. */
static int route_ioctl(int fd, int family, const void *dst, unsigned prefix, const void *gw,
		       int ifindex)
{
	if (family == AF_INET6) {
		struct in6_rtmsg rt;
		memset(&rt, 0, sizeof(rt));
		memcpy(&rt.rtmsg_dst, dst, sizeof(rt.rtmsg_dst));
		rt.rtmsg_dst_len = (unsigned short)prefix;
		rt.rtmsg_flags = RTF_UP | (prefix == 128 ? RTF_HOST : 0);
		if (gw) {
			memcpy(&rt.rtmsg_gateway, gw, sizeof(rt.rtmsg_gateway));
			rt.rtmsg_flags |= RTF_GATEWAY;
		}
		rt.rtmsg_ifindex = ifindex; /* metric 0: the kernel's 1024, as ip route's */
		return ioctl(fd, SIOCADDRT, &rt);
	}
	struct rtentry rt;
	memset(&rt, 0, sizeof(rt));
	set_sin(&rt.rt_dst, *(const struct in_addr *)dst);
	set_sin(&rt.rt_genmask, mask4(prefix));
	rt.rt_flags = RTF_UP | (prefix == 32 ? RTF_HOST : 0);
	if (gw) {
		set_sin(&rt.rt_gateway, *(const struct in_addr *)gw);
		rt.rt_flags |= RTF_GATEWAY;
	}
	rt.rt_dev = (char *)"eth0";
	return ioctl(fd, SIOCADDRT, &rt);
}

/* eth0's sockets, one per family (-1 where that family is not set up), and its index. */
struct eth0 {
	int fd[2]; /* AF_INET, AF_INET6 */
	int ifindex;
};

/* One vmm.route value, NET/PREFIX[,VIA], IPv4 or IPv6 (vmm checked it; a bad one is still only
 * a line). */
static void add_route(const struct eth0 *eth, const char *spec)
{
	char buf[INET6_ADDRSTRLEN * 2 + 8];
	snprintf(buf, sizeof(buf), "%s", spec);
	char *comma = strchr(buf, ',');
	if (comma)
		*comma = '\0';
	int v6 = strchr(buf, ':') != NULL;
	int family = v6 ? AF_INET6 : AF_INET;
	struct in6_addr dst, gw; /* room for either */
	unsigned prefix;
	if (!parse_cidr(buf, true, family, &dst, &prefix) ||
	    (comma && inet_pton(family, comma + 1, &gw) != 1)) {
		agent_say("vmm.route=%s is not NET/PREFIX[,GATEWAY]: route skipped", spec);
		return;
	}
	if (eth->fd[v6] < 0) {
		agent_say("vmm.route=%s: eth0 has no IPv%d address: route skipped", spec,
			  v6 ? 6 : 4);
		return;
	}
	if (route_ioctl(eth->fd[v6], family, &dst, prefix, comma ? &gw : NULL, eth->ifindex) < 0)
		agent_say("route %s: SIOCADDRT: %s", spec, strerror(errno));
}

/* The default route of one family through gw ("" none). */
static void add_default(const struct eth0 *eth, int v6, const char *key, const char *gw)
{
	struct in6_addr any = IN6ADDR_ANY_INIT, via;
	int family = v6 ? AF_INET6 : AF_INET;
	if (!gw[0] || eth->fd[v6] < 0)
		return;
	if (inet_pton(family, gw, &via) != 1)
		agent_say("%s=%s is not an IPv%d address: no default route", key, gw, v6 ? 6 : 4);
	else if (route_ioctl(eth->fd[v6], family, &any, 0, &via, eth->ifindex) < 0)
		agent_say("default route via %s: SIOCADDRT: %s", gw, strerror(errno));
}

/* linux/ipv6.h's struct in6_ifreq (that header clashes with glibc's netinet/in.h) */
struct agent_in6_ifreq {
	struct in6_addr addr;
	uint32_t prefixlen;
	int ifindex;
};

/* eth0's IPv4 address: 0, or -1 with the line said. */
static int eth0_ipv4(int fd, const char *spec)
{
	struct in_addr ip;
	unsigned prefix;
	struct ifreq ifr;
	if (!parse_cidr(spec, false, AF_INET, &ip, &prefix)) {
		agent_say("vmm.ip=%s is not ADDR/PREFIX (IPv4): no IPv4 network", spec);
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	set_sin(&ifr.ifr_addr, ip);
	const char *what = "SIOCSIFADDR";
	int ok = ioctl(fd, SIOCSIFADDR, &ifr) == 0;
	if (ok) {
		what = "SIOCSIFNETMASK";
		set_sin(&ifr.ifr_netmask, mask4(prefix));
		ok = ioctl(fd, SIOCSIFNETMASK, &ifr) == 0;
	}
	if (!ok) {
		agent_say("eth0: %s: %s: no IPv4 network", what, strerror(errno));
		return -1;
	}
	return 0;
}

/* eth0's IPv6 address, with the interface taking only what vmm gives (no duplicate address
 * detection, router advertisements or autoconfiguration: the address is the namespace
 * interface's own, already checked there): 0, or -1 with the line said. Called with eth0 up. */
static int eth0_ipv6(int fd, int ifindex, const char *spec)
{
	struct agent_in6_ifreq r;
	unsigned prefix;
	memset(&r, 0, sizeof(r));
	if (!parse_cidr(spec, false, AF_INET6, &r.addr, &prefix)) {
		agent_say("vmm.ip6=%s is not ADDR/PREFIX (IPv6): no IPv6 network", spec);
		return -1;
	}
	r.prefixlen = prefix;
	r.ifindex = ifindex;
	if (ioctl(fd, SIOCSIFADDR, &r) < 0) {
		agent_say("eth0: SIOCSIFADDR (IPv6): %s: no IPv6 network", strerror(errno));
		return -1;
	}
	return 0;
}

static void eth0_sysctl(const char *name, const char *value)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/eth0/%s", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		agent_say("%s: %s (continuing)", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* eth0 as vmm.ip / vmm.gw / vmm.ip6 / vmm.gw6 / vmm.route ask; every failure is one line (the
 * container runs without). */
static void setup_eth0(int fd4, const struct agent_config *c)
{
	struct eth0 eth = {{-1, -1}, (int)if_nametoindex("eth0")};
	if (!eth.ifindex) {
		agent_say("eth0: %s: no network", strerror(errno));
		return;
	}
	if (c->ip[0] && eth0_ipv4(fd4, c->ip) == 0)
		eth.fd[0] = fd4;
	if (c->ip6[0]) {
		eth0_sysctl("accept_dad", "0");
		eth0_sysctl("accept_ra", "0");
		eth0_sysctl("autoconf", "0");
	}
	int err = if_up(fd4, "eth0");
	if (err) {
		agent_say("eth0: SIOCSIFFLAGS: %s: no network", strerror(-err));
		return;
	}
	if (c->ip6[0]) {
		int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd6 < 0)
			agent_say("no IPv6 network: socket: %s", strerror(errno));
		else if (eth0_ipv6(fd6, eth.ifindex, c->ip6) == 0)
			eth.fd[1] = fd6;
		else
			close(fd6);
	}
	/* the routes on the link first: a gateway may only be reachable through one */
	for (int via = 0; via < 2; via++)
		for (unsigned i = 0; i < c->nroutes; i++)
			if ((strchr(c->routes[i], ',') != NULL) == via)
				add_route(&eth, c->routes[i]);
	add_default(&eth, 0, "vmm.gw", c->gw);
	add_default(&eth, 1, "vmm.gw6", c->gw6);
	if (eth.fd[1] >= 0)
		close(eth.fd[1]);
}

static void setup_network(const struct agent_config *c)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		agent_say("no network: socket: %s", strerror(errno));
		return;
	}
	int err = if_up(fd, "lo"); /* Linux gives lo 127.0.0.1/8 (and ::1) as it comes up */
	if (err)
		agent_say("lo: %s", strerror(-err));
	if (c->ip[0] || c->ip6[0])
		setup_eth0(fd, c);
	else if (c->gw[0] || c->gw6[0] || c->nroutes)
		agent_say("ignoring vmm.gw, vmm.gw6 and vmm.route without vmm.ip or vmm.ip6");
	close(fd);
}

/* Reads /proc/cmdline into *c. */
static void read_cmdline(struct agent_config *c)
{
	char line[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, line, sizeof(line) - 1) : -1;

	if (n < 0) {
		agent_say("cannot read /proc/cmdline: %s (using the defaults)", strerror(errno));
		n = 0;
	}
	if (fd >= 0)
		close(fd);
	line[n] = '\0';
	agent_cmdline_parse(line, c);
}

int agent_boot(void)
{
	struct agent_config c;

	memset(&c, 0, sizeof(c));
	if (mount_list(agent_mounts, sizeof(agent_mounts) / sizeof(agent_mounts[0])) < 0)
		return -1;
	console_stdio();
	read_cmdline(&c);
	setup_network(&c);
	if (setup_root(c.rootfs_tag, c.rootfs_rw && !c.root_readonly, c.root_readonly) < 0)
		return -1;
	if (mount_list(container_mounts, sizeof(container_mounts) / sizeof(container_mounts[0])) <
	    0)
		return -1;
	/* The container's /dev/ptmx opens its own devpts instance, as in any container runtime. */
	if ((unlink(AGENT_NEWROOT "/dev/ptmx") < 0 && errno != ENOENT) ||
	    symlink("pts/ptmx", AGENT_NEWROOT "/dev/ptmx") < 0)
		agent_say("cannot link /dev/ptmx to pts/ptmx: %s", strerror(errno));
	if (c.volumes && setup_volumes(c.volumes) < 0)
		return -1;
	if (c.hostname[0] && sethostname(c.hostname, strlen(c.hostname)) < 0)
		agent_say("sethostname %s: %s", c.hostname, strerror(errno));
	/* Last, as runc does: the mount points above may have had to be made in the root. Only the
	 * root's own mount turns read-only; the mounts on it (proc, dev, volumes, tmpfs) keep
	 * theirs. */
	if (c.root_readonly &&
	    mount(NULL, AGENT_NEWROOT, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		agent_say("cannot make the container's root read-only: %s", strerror(errno));
		return -1;
	}
	return 0;
}
