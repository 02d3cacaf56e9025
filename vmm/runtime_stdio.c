/* The pid file, --stdio-fds, the OCI console socket and --detach (vmm/runtime_stdio.h). */
#include "vmm/runtime_stdio.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

int fd_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* dir gets path's directory ("." for a bare name), base points at its last component. */
static int split_path(const char *path, char *dir, size_t cap, const char **base)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, cap, ".");
		*base = path;
		return 0;
	}
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	*base = slash + 1;
	return 0;
}

int pidfile_write(const char *path, pid_t pid, struct verr *e)
{
	if (!path || !*path)
		return verr_set(e, -EINVAL,
				"--pid-file: the path is empty; give the file to write the pid to");
	if (pid <= 0)
		return verr_set(e, -EINVAL, "pid file %s: %d is not a process id", path, (int)pid);
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *base;
	if (split_path(path, dir, sizeof(dir), &base) < 0 ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.vmm-pid.XXXXXX", dir) >= sizeof(tmp))
		return verr_set(e, -ENAMETOOLONG, "pid file %s: the path is too long", path);
	if (!*base)
		return verr_set(e, -EISDIR,
				"pid file %s: the path names a directory; give a file name", path);

	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return verr_set(
		    e, -err,
		    "cannot write the pid file %s: cannot create a file in %s: %s; check "
		    "that the directory exists and is writable",
		    path, dir, strerror(err));
	}
	char buf[24];
	int len = snprintf(buf, sizeof(buf), "%d", (int)pid);
	int r = fchmod(fd, 0644) < 0 ? -errno : 0;
	if (r == 0)
		r = fd_write_all(fd, buf, (size_t)len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return verr_set(e, r, "cannot write the pid file %s: writing %s: %s", path, tmp,
				strerror(-r));
	}
	if (rename(tmp, path) < 0) {
		int err = errno;
		unlink(tmp);
		return verr_set(e, -err, "cannot write the pid file %s: renaming %s to it: %s",
				path, tmp, strerror(err));
	}
	return 0;
}

int stdio_fds_parse(const char *s, int fds[3], struct verr *e)
{
	const char *p = s ? s : "";
	for (int i = 0; i < 3; i++) {
		long v = 0;
		if (*p < '0' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p++ - '0');
			if (v > INT_MAX)
				goto bad;
		}
		fds[i] = (int)v;
		if (i < 2 && *p++ != ',')
			goto bad;
	}
	if (*p)
		goto bad;
	for (int i = 0; i < 3; i++)
		if (fcntl(fds[i], F_GETFD) < 0)
			return verr_set(e, -EINVAL,
					"--stdio-fds '%s': fd %d is not open in vmm; pass fds that "
					"vmm inherits",
					s, fds[i]);
	return 0;
bad:
	return verr_set(e, -EINVAL,
			"--stdio-fds '%s': expected three open file descriptors IN,OUT,ERR as "
			"non-negative decimal numbers, such as 0,1,2",
			s ? s : "");
}

/* Connects a SOCK_STREAM socket to the Unix socket at path. A path too long for sun_path (108
 * bytes) is reached through its directory opened here: /proc/self/fd/N/NAME. */
static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int dfd = -1;
	if (strlen(path) < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, path, strlen(path) + 1);
	} else {
		char dir[PATH_MAX];
		const char *base;
		if (split_path(path, dir, sizeof(dir), &base) < 0)
			return -ENAMETOOLONG;
		dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd,
				     base) >= sizeof(sa.sun_path)) {
			close(dfd);
			return -ENAMETOOLONG;
		}
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : 0;
	while (r == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINTR)
			r = -errno;
	}
	if (dfd >= 0)
		close(dfd);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

/* The slave end: TIOCGPTPEER (Linux 4.13) opens it without a path lookup (a devpts mounted
 * elsewhere, a /dev/pts that is not the master's); older kernels open it by name. */
static int open_slave(int master, const char *name)
{
#ifdef TIOCGPTPEER
	int fd = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 || (errno != EINVAL && errno != ENOTTY))
		return fd < 0 ? -errno : fd;
#endif
	int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	return s < 0 ? -errno : s;
}

static int send_fd(int sock, int fd, const char *payload)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = {.iov_base = (void *)payload, .iov_len = strlen(payload)};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = ctl.buf,
	    .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == iov.iov_len ? 0 : -EIO;
}

int console_socket_send_pty(const char *sock_path, int *slave_out, struct verr *e)
{
	*slave_out = -1;
	if (!sock_path || !*sock_path)
		return verr_set(e, -EINVAL,
				"--console-socket: the path is empty; give the engine's "
				"console socket");
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0) {
		int err = errno;
		return verr_set(e, -err,
				"--console-socket %s: cannot make a pty: posix_openpt: %s; check "
				"that devpts is mounted on /dev/pts and /dev/ptmx exists",
				sock_path, strerror(err));
	}
	char name[128];
	const char *step = "grantpt";
	int r = grantpt(master) < 0 ? -errno : 0;
	if (r == 0 && unlockpt(master) < 0)
		r = -errno, step = "unlockpt";
	if (r == 0) {
		int err = ptsname_r(master, name, sizeof(name));
		if (err != 0)
			r = -err, step = "ptsname";
	}
	int slave = -1;
	if (r == 0) {
		step = "opening the slave";
		r = slave = open_slave(master, name);
	}
	struct termios t;
	if (r >= 0) {
		step = "setting raw mode";
		r = tcgetattr(slave, &t) < 0 ? -errno : 0;
	}
	if (r == 0) {
		cfmakeraw(&t);
		r = tcsetattr(slave, TCSANOW, &t) < 0 ? -errno : 0;
	}
	if (r < 0) {
		if (slave >= 0)
			close(slave);
		close(master);
		return verr_set(e, r,
				"--console-socket %s: cannot set up a pty: %s: %s; check "
				"the devpts mount on /dev/pts",
				sock_path, step, strerror(-r));
	}

	int sock = unix_connect(sock_path);
	if (sock < 0) {
		close(slave);
		close(master);
		return verr_set(
		    e, sock,
		    "cannot connect to the console socket %s: %s; check that the engine "
		    "(conmon, the containerd shim) listens on that Unix stream socket",
		    sock_path, strerror(-sock));
	}
	r = send_fd(sock, master, name);
	close(sock);
	close(master);
	if (r < 0) {
		close(slave);
		return verr_set(e, r,
				"cannot send the pty to the console socket %s: %s; check that the "
				"engine still listens there",
				sock_path, strerror(-r));
	}
	*slave_out = slave;
	return 0;
}

int stdio_take_ctty(int fd)
{
	if (ioctl(fd, TIOCSCTTY, 0) < 0)
		return -errno;
	return 0;
}

/* The parent after the child closed the channel without reporting: its wait status if it is
 * gone (the close can come a moment before the exit is visible), else that it still runs. */
static void describe_early_end(pid_t pid, char *buf, size_t cap)
{
	for (int i = 0; i < 200; i++) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid && WIFEXITED(st)) {
			snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
			return;
		}
		if (w == pid && WIFSIGNALED(st)) {
			snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(st),
				 strsignal(WTERMSIG(st)));
			return;
		}
		if (w < 0 && errno != EINTR) {
			snprintf(buf, cap, "ended (waitpid: %s)", strerror(errno));
			return;
		}
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	snprintf(buf, cap, "closed its report channel and still runs");
}

static _Noreturn void detach_parent(pid_t child, int fd)
{
	int32_t status;
	size_t got = 0;
	while (got < sizeof(status)) {
		ssize_t n = read(fd, (char *)&status + got, sizeof(status) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == sizeof(status))
		_exit(status == 0 ? 0 : 125);
	char what[128];
	describe_early_end(child, what, sizeof(what));
	vmm_log("--detach: the detached vmm (pid %d) %s before it reported whether the VM was "
		"created",
		(int)child, what);
	_exit(125);
}

int detach_begin(struct detach *d, struct verr *e)
{
	d->report_fd = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int err = errno;
		return verr_set(e, -err, "--detach: socketpair: %s", strerror(err));
	}
	fflush(NULL); /* nothing buffered is written twice */
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(sv[0]);
		close(sv[1]);
		return verr_set(e, -err, "--detach: fork: %s", strerror(err));
	}
	if (pid > 0) {
		close(sv[1]);
		detach_parent(pid, sv[0]);
	}
	close(sv[0]);
	d->report_fd = sv[1];
	if (setsid() < 0) {
		int err = errno;
		detach_report(d, -err);
		return verr_set(e, -err, "--detach: setsid: %s", strerror(err));
	}
	return 0;
}

void detach_report(struct detach *d, int status)
{
	if (d->report_fd < 0)
		return;
	int32_t v = status;
	ssize_t n;
	do
		n = send(d->report_fd, &v, sizeof(v), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	close(d->report_fd);
	d->report_fd = -1;
}
