/* vmm/runtime_stdio.c: the pid file (content, atomic replacement, errors), --stdio-fds parsing, the
 * OCI console socket (the pty master received the way conmon and the containerd shim receive it,
 * bytes and window size through it), the controlling terminal's SIGWINCH, and --detach's
 * handshake run the way an engine runs it (this process is a child subreaper, as conmon and
 * the shim are). No KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/runtime_stdio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmm-test-stdio-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, cap - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

/* How many entries dir has besides . and ..: enough to see leftovers. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int count_fds(void)
{
	return count_entries("/proc/self/fd") - 1; /* the opendir's own fd */
}

static void pidfile_content(void **state)
{
	(void)state;
	char path[256], buf[64];
	struct verr e = {0};
	snprintf(path, sizeof(path), "%s/pid", tmpdir);
	assert_int_equal(pidfile_write(path, 1234, &e), 0);
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "1234"); /* containerd's strconv.Atoi takes no newline */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(count_entries(tmpdir), 1); /* no temp file left behind */
	unlink(path);
}

static void pidfile_over_existing(void **state)
{
	(void)state;
	char path[256], buf[64];
	struct verr e = {0};
	snprintf(path, sizeof(path), "%s/old.pid", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "99999999\n", 9), 9);
	close(fd);
	struct stat before, after;
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(pidfile_write(path, 42, &e), 0);
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "42");
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_ino != before.st_ino); /* replaced by rename, not rewritten */
	assert_int_equal(count_entries(tmpdir), 1);
	unlink(path);

	/* a bare name is in the current directory */
	char cwd[256];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(pidfile_write("rel.pid", 7, &e), 0);
	read_file("rel.pid", buf, sizeof(buf));
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(buf, "7");
	assert_int_equal(count_entries(tmpdir), 1);
	snprintf(path, sizeof(path), "%s/rel.pid", tmpdir);
	unlink(path);
}

static char race_path[256];
static atomic_bool race_stop;
static atomic_int race_bad, race_reads;

static void *race_reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&race_stop)) {
		char buf[32];
		int fd = open(race_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			atomic_fetch_add(&race_bad, 1); /* the file must exist at every moment */
			continue;
		}
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n < 0 ? 0 : n] = '\0';
		if (strcmp(buf, "1") && strcmp(buf, "1234567"))
			atomic_fetch_add(&race_bad, 1);
		atomic_fetch_add(&race_reads, 1);
	}
	return NULL;
}

/* A reader racing the writer sees one whole pid or the other, never an empty or cut file. */
static void pidfile_reader_never_sees_partial(void **state)
{
	(void)state;
	struct verr e = {0};
	snprintf(race_path, sizeof(race_path), "%s/race.pid", tmpdir);
	assert_int_equal(pidfile_write(race_path, 1, &e), 0);
	atomic_store(&race_stop, false);
	atomic_store(&race_bad, 0);
	atomic_store(&race_reads, 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, race_reader, NULL), 0);
	for (int i = 0; i < 3000 || atomic_load(&race_reads) < 1000; i++)
		assert_int_equal(pidfile_write(race_path, i % 2 ? 1 : 1234567, &e), 0);
	atomic_store(&race_stop, true);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&race_bad), 0);
	assert_int_equal(count_entries(tmpdir), 1);
	unlink(race_path);
}

static void pidfile_errors(void **state)
{
	(void)state;
	char path[256], dir[160];
	struct verr e = {0};
	snprintf(dir, sizeof(dir), "%s/missing", tmpdir);
	snprintf(path, sizeof(path), "%s/pid", dir);
	assert_int_equal(pidfile_write(path, 5, &e), -ENOENT);
	assert_int_equal(e.code, -ENOENT);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "cannot create a file in /tmp/vmm-test-stdio-"));
	assert_non_null(strstr(e.msg, "/missing:"));
	assert_null(strchr(e.msg, '\n'));

	/* the path is a directory: the rename fails, and the temp file goes */
	assert_int_equal(mkdir(dir, 0755), 0);
	memset(&e, 0, sizeof(e));
	assert_true(pidfile_write(dir, 5, &e) < 0);
	assert_non_null(strstr(e.msg, dir));
	assert_int_equal(count_entries(tmpdir), 1);
	assert_int_equal(count_entries(dir), 0);
	rmdir(dir);

	/* a directory nobody can create files in, root included */
	assert_true(pidfile_write("/proc/vmm-test.pid", 5, &e) < 0);
	assert_non_null(strstr(e.msg, "cannot create a file in /proc:"));
	assert_int_equal(pidfile_write("", 5, &e), -EINVAL);
	assert_int_equal(pidfile_write(path, 0, &e), -EINVAL);
	snprintf(path, sizeof(path), "%s/", tmpdir);
	assert_int_equal(pidfile_write(path, 5, &e), -EISDIR);
	assert_int_equal(count_entries(tmpdir), 0);
}

static void stdio_fds_good(void **state)
{
	(void)state;
	int fds[3] = {-1, -1, -1}, p[2];
	struct verr e = {0};
	assert_int_equal(stdio_fds_parse("0,1,2", fds, &e), 0);
	assert_int_equal(fds[0], 0);
	assert_int_equal(fds[1], 1);
	assert_int_equal(fds[2], 2);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	char s[64];
	snprintf(s, sizeof(s), "%d,%d,%d", p[0], p[1], p[1]); /* OUT and ERR on one pipe */
	assert_int_equal(stdio_fds_parse(s, fds, &e), 0);
	assert_int_equal(fds[0], p[0]);
	assert_int_equal(fds[1], p[1]);
	assert_int_equal(fds[2], p[1]);
	close(p[0]);
	close(p[1]);
}

static void stdio_fds_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "a,b,c", "0,1", "0,1,2,", "0,1,2,3", "-1,1,2",  "0,-1,2",	       " 0,1,2", "0,1,2 ",
	    "0,,2",  "",    ",,",     "+0,1,2",	 "0x1,1,2", "99999999999,1,2", "1 ,1,2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fds[3];
		struct verr e = {0};
		assert_int_equal(stdio_fds_parse(bad[i], fds, &e), -EINVAL);
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
		assert_non_null(strstr(e.msg, quoted));
		assert_non_null(strstr(e.msg, "IN,OUT,ERR"));
	}
	int fds[3];
	struct verr e = {0};
	assert_int_equal(stdio_fds_parse(NULL, fds, &e), -EINVAL);

	/* a closed fd */
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	char s[64], want[32];
	snprintf(s, sizeof(s), "0,%d,2", fd);
	snprintf(want, sizeof(want), "fd %d is not open", fd);
	assert_int_equal(stdio_fds_parse(s, fds, &e), -EINVAL);
	assert_non_null(strstr(e.msg, s));
	assert_non_null(strstr(e.msg, want));
}

/* A listening socket at path (bound through /proc/self/fd when too long, as conmon does). */
static int listen_at(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int dfd = -1;
	if (strlen(path) < sizeof(sa.sun_path)) {
		strcpy(sa.sun_path, path);
	} else {
		char dir[512];
		const char *slash = strrchr(path, '/');
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		assert_true(dfd >= 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, slash + 1);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	if (dfd >= 0)
		close(dfd);
	return fd;
}

/* What the engine does: accept, then one recvmsg with room for one fd and a name. */
static int recv_master(int lfd, char *name, size_t cap)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 5000), 1);
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = name, .iov_len = cap - 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl)};
	ssize_t n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
	assert_true(n > 0);
	name[n] = '\0';
	assert_int_equal(msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC), 0);
	struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
	assert_non_null(h);
	assert_int_equal(h->cmsg_level, SOL_SOCKET);
	assert_int_equal(h->cmsg_type, SCM_RIGHTS);
	assert_int_equal(h->cmsg_len, CMSG_LEN(sizeof(int)));
	int fd;
	memcpy(&fd, CMSG_DATA(h), sizeof(int));
	char more;
	assert_int_equal(read(c, &more, 1), 0); /* one message, then the runtime hung up */
	close(c);
	return fd;
}

static void read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		assert_int_equal(poll(&p, 1, 5000), 1);
		ssize_t n = read(fd, buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

static bool readable_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 1;
}

static void check_pty_pair(int master, int slave, const char *name)
{
	/* the master, and this slave's: the name sent is the slave's */
	unsigned n;
	assert_int_equal(ioctl(master, TIOCGPTN, &n), 0);
	char want[64];
	snprintf(want, sizeof(want), "/dev/pts/%u", n);
	assert_string_equal(name, want);
	assert_string_equal(ptsname(master), name);
	assert_true(ioctl(slave, TIOCGPTN, &n) < 0); /* the slave is no master */
	struct stat ss, ns;
	assert_int_equal(fstat(slave, &ss), 0);
	assert_int_equal(stat(name, &ns), 0);
	assert_int_equal(ss.st_rdev, ns.st_rdev);
	assert_true(isatty(slave));
	assert_true(fcntl(slave, F_GETFD) & FD_CLOEXEC);

	/* raw: no echo, no line buffering, no CR/LF translation either way */
	struct termios t;
	assert_int_equal(tcgetattr(slave, &t), 0);
	assert_int_equal(t.c_lflag & (ICANON | ECHO | ISIG), 0);
	assert_int_equal(t.c_oflag & OPOST, 0);
	assert_int_equal(t.c_iflag & (ICRNL | IXON), 0);
	char buf[16];
	assert_int_equal(write(master, "hi\r\nx\n\003", 7), 7);
	read_exact(slave, buf, 7);
	assert_memory_equal(buf, "hi\r\nx\n\003", 7);
	assert_false(readable_within(master, 100)); /* nothing echoed */
	assert_int_equal(write(slave, "ok\n", 3), 3);
	read_exact(master, buf, 3);
	assert_memory_equal(buf, "ok\n", 3);
	assert_false(readable_within(master, 50));

	/* the engine resizes the master; the size is the slave's */
	struct winsize ws = {.ws_row = 33, .ws_col = 121}, got = {0};
	assert_int_equal(ioctl(master, TIOCSWINSZ, &ws), 0);
	assert_int_equal(ioctl(slave, TIOCGWINSZ, &got), 0);
	assert_int_equal(got.ws_row, 33);
	assert_int_equal(got.ws_col, 121);
}

static void console_socket_pty(void **state)
{
	(void)state;
	char path[256], name[4096];
	snprintf(path, sizeof(path), "%s/console.sock", tmpdir);
	int lfd = listen_at(path);
	int before = count_fds(), slave = -1;
	struct verr e = {0};
	/* connect completes on the listen backlog: the engine accepts afterwards */
	assert_int_equal(console_socket_send_pty(path, &slave, &e), 0);
	assert_true(slave >= 0);
	assert_int_equal(count_fds(), before + 1); /* the master and the connection are closed */
	int master = recv_master(lfd, name, sizeof(name));
	check_pty_pair(master, slave, name);
	close(master);
	close(slave);
	close(lfd);
	unlink(path);
}

static void console_socket_long_path(void **state)
{
	(void)state;
	char dir[512], path[600], name[4096];
	snprintf(dir, sizeof(dir), "%s/%s", tmpdir,
		 "a-directory-name-long-enough-that-the-socket-path-does-not-fit-in-sun_path-"
		 "which-holds-108-bytes");
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/console.sock", dir);
	assert_true(strlen(path) > sizeof(((struct sockaddr_un *)0)->sun_path));
	int lfd = listen_at(path);
	int before = count_fds(), slave = -1;
	struct verr e = {0};
	assert_int_equal(console_socket_send_pty(path, &slave, &e), 0);
	assert_int_equal(count_fds(), before + 1);
	int master = recv_master(lfd, name, sizeof(name));
	check_pty_pair(master, slave, name);
	close(master);
	close(slave);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

static void console_socket_errors(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof(path), "%s/nobody.sock", tmpdir);
	int before = count_fds(), slave = 5;
	struct verr e = {0};
	assert_int_equal(console_socket_send_pty(path, &slave, &e), -ENOENT);
	assert_int_equal(slave, -1);
	assert_int_equal(count_fds(), before);
	assert_non_null(strstr(e.msg, "cannot connect to the console socket"));
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "check that the engine"));
	assert_null(strchr(e.msg, '\n'));

	/* a socket nobody listens on any more */
	int lfd = listen_at(path);
	close(lfd);
	memset(&e, 0, sizeof(e));
	assert_int_equal(console_socket_send_pty(path, &slave, &e), -ECONNREFUSED);
	assert_non_null(strstr(e.msg, path));
	assert_int_equal(count_fds(), before);
	unlink(path);

	/* a regular file */
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	assert_int_equal(console_socket_send_pty(path, &slave, &e), -ECONNREFUSED);
	unlink(path);
	assert_int_equal(console_socket_send_pty("", &slave, &e), -EINVAL);
	assert_int_equal(count_fds(), before);
}

/* stdio_take_ctty in a child: refused before setsid, then SIGWINCH arrives when the engine
 * resizes the master. */
static void ctty_sigwinch(void **state)
{
	(void)state;
	char path[256], name[4096];
	snprintf(path, sizeof(path), "%s/ctty.sock", tmpdir);
	int lfd = listen_at(path);
	int ready[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		int slave;
		struct verr e;
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGWINCH);
		sigprocmask(SIG_BLOCK, &m, NULL);
		if (console_socket_send_pty(path, &slave, &e) < 0)
			_exit(10);
		if (stdio_take_ctty(slave) != -EPERM) /* not a session leader yet */
			_exit(11);
		if (setsid() < 0 || stdio_take_ctty(slave) < 0)
			_exit(12);
		if (stdio_take_ctty(slave) < 0) /* already ours: fine */
			_exit(13);
		if (write(ready[1], "r", 1) != 1)
			_exit(14);
		struct timespec to = {.tv_sec = 10};
		if (sigtimedwait(&m, NULL, &to) != SIGWINCH)
			_exit(15);
		struct winsize ws;
		if (ioctl(slave, TIOCGWINSZ, &ws) < 0 || ws.ws_row != 50 || ws.ws_col != 160)
			_exit(16);
		_exit(0);
	}
	close(ready[1]);
	int master = recv_master(lfd, name, sizeof(name));
	char c;
	if (read(ready[0], &c, 1) == 1) {
		struct winsize ws = {.ws_row = 50, .ws_col = 160};
		assert_int_equal(ioctl(master, TIOCSWINSZ, &ws), 0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(master);
	close(ready[0]);
	close(lfd);
	unlink(path);
}

/* --detach, the way an engine sees it: this process (a child subreaper) runs `create` (the
 * middle process), which calls detach_begin; its child runs `body`. */
struct detached {
	int create_status;    /* the middle process's wait status */
	pid_t create;	      /* the middle process */
	pid_t child;	      /* the detached child, if it was re-parented here */
	int child_status;     /* its wait status */
	char create_err[512]; /* what the processes wrote to stderr */
};

typedef void (*detached_body)(struct detach *d, int gate_fd);

static void detached_created(struct detach *d, int gate_fd)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/detached.pid", tmpdir);
	struct verr e;
	if (getsid(0) != getpid() || !(fcntl(d->report_fd, F_GETFD) & FD_CLOEXEC) ||
	    pidfile_write(path, getpid(), &e) < 0) {
		detach_report(d, -EPERM);
		_exit(20);
	}
	detach_report(d, 0);
	detach_report(d, -EIO); /* only the first report counts */
	if (d->report_fd != -1)
		_exit(21);
	char c;
	while (read(gate_fd, &c, 1) > 0) /* the workload runs until the test closes the gate */
		;
	_exit(7);
}

static void detached_error(struct detach *d, int gate_fd)
{
	(void)gate_fd;
	vmm_log("cannot create the VM: a test error");
	detach_report(d, -ENOENT);
	_exit(1);
}

static void detached_exit3(struct detach *d, int gate_fd)
{
	(void)d, (void)gate_fd;
	_exit(3);
}

static void detached_killed(struct detach *d, int gate_fd)
{
	(void)d, (void)gate_fd;
	raise(SIGKILL);
	_exit(0);
}

/* Runs create; check_running (if set) sees the detached child before the gate closes. */
static void run_detached(detached_body body, struct detached *r, void (*check_running)(pid_t))
{
	memset(r, 0, sizeof(*r));
	int errp[2], gate[2];
	assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
	assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
	pid_t create = fork();
	assert_true(create >= 0);
	r->create = create;
	if (create == 0) {
		dup2(errp[1], STDERR_FILENO);
		close(gate[1]);
		struct stat in0;
		if (fstat(STDIN_FILENO, &in0) < 0)
			_exit(90);
		struct detach d = {-1};
		struct verr e;
		if (detach_begin(&d, &e) < 0)
			_exit(91);
		/* only the child gets here; its stdin is the one it had */
		struct stat in1;
		if (fstat(STDIN_FILENO, &in1) < 0 || in1.st_ino != in0.st_ino ||
		    in1.st_dev != in0.st_dev || d.report_fd < 0) {
			detach_report(&d, -EBADF);
			_exit(92);
		}
		body(&d, gate[0]);
		_exit(93);
	}
	close(errp[1]);
	close(gate[0]);
	assert_int_equal(waitpid(create, &r->create_status, 0), create);
	if (check_running && WIFEXITED(r->create_status) && WEXITSTATUS(r->create_status) == 0)
		check_running(create);
	close(gate[1]);
	int st;
	pid_t w;
	while ((w = waitpid(-1, &st, 0)) > 0) {
		r->child = w;
		r->child_status = st;
	}
	size_t got = 0;
	ssize_t n;
	while ((n = read(errp[0], r->create_err + got, sizeof(r->create_err) - 1 - got)) > 0)
		got += (size_t)n;
	r->create_err[got] = '\0';
	close(errp[0]);
}

static void check_created_running(pid_t create)
{
	/* create exited 0, and the pid file names a live process: the detached child, now ours */
	char path[256], buf[32];
	snprintf(path, sizeof(path), "%s/detached.pid", tmpdir);
	read_file(path, buf, sizeof(buf));
	pid_t child = (pid_t)atoi(buf);
	assert_true(child > 0 && child != create);
	assert_int_equal(kill(child, 0), 0);
	assert_int_equal(getsid(child), child);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
	char stat[256];
	read_file(path, stat, sizeof(stat));
	const char *p = strrchr(stat, ')');
	assert_non_null(p);
	int ppid = 0;
	char s;
	assert_int_equal(sscanf(p + 1, " %c %d", &s, &ppid), 2);
	assert_int_equal(ppid, getpid());
}

static void detach_created(void **state)
{
	(void)state;
	struct detached r;
	run_detached(detached_created, &r, check_created_running);
	assert_true(WIFEXITED(r.create_status));
	assert_int_equal(WEXITSTATUS(r.create_status), 0);
	/* the pid file's process lived until the workload ended, and exited with its status */
	char path[256], buf[32];
	snprintf(path, sizeof(path), "%s/detached.pid", tmpdir);
	read_file(path, buf, sizeof(buf));
	assert_int_equal(r.child, atoi(buf));
	assert_true(WIFEXITED(r.child_status));
	assert_int_equal(WEXITSTATUS(r.child_status), 7);
	assert_string_equal(r.create_err, "");
	unlink(path);
}

static void detach_reported_error(void **state)
{
	(void)state;
	struct detached r;
	run_detached(detached_error, &r, NULL);
	assert_true(WIFEXITED(r.create_status));
	assert_int_equal(WEXITSTATUS(r.create_status), 125);
	/* the child's one line, and none from the parent */
	assert_string_equal(r.create_err, "vmm: cannot create the VM: a test error\n");
	assert_true(WIFEXITED(r.child_status));
	assert_int_equal(WEXITSTATUS(r.child_status), 1);
}

static void detach_died_before_report(void **state)
{
	(void)state;
	struct detached r;
	run_detached(detached_exit3, &r, NULL);
	assert_true(WIFEXITED(r.create_status));
	assert_int_equal(WEXITSTATUS(r.create_status), 125);
	assert_int_equal(r.child, 0); /* create reaped it to say how it ended */
	int pid = 0;
	assert_int_equal(sscanf(r.create_err, "vmm: --detach: the detached vmm (pid %d)", &pid), 1);
	assert_true(pid > 0 && pid != r.create);
	char want[160];
	snprintf(want, sizeof(want),
		 "vmm: --detach: the detached vmm (pid %d) exited with status 3 before it "
		 "reported whether the VM was created\n",
		 pid);
	assert_string_equal(r.create_err, want);

	run_detached(detached_killed, &r, NULL);
	assert_true(WIFEXITED(r.create_status));
	assert_int_equal(WEXITSTATUS(r.create_status), 125);
	assert_int_equal(r.child, 0);
	assert_non_null(
	    strstr(r.create_err, ") was killed by signal 9 (Killed) before it reported"));
	assert_int_equal(strchr(r.create_err, '\n') - r.create_err, strlen(r.create_err) - 1);
}

static void detach_report_not_detached(void **state)
{
	(void)state;
	struct detach d = {-1};
	detach_report(&d, 0);
	detach_report(&d, -EIO);
	assert_int_equal(d.report_fd, -1);
}

int main(void)
{
	/* as conmon and the containerd shim: orphans of create come here */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(pidfile_content, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(pidfile_over_existing, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(pidfile_reader_never_sees_partial, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(pidfile_errors, setup_dir, teardown_dir),
	    cmocka_unit_test(stdio_fds_good),
	    cmocka_unit_test(stdio_fds_bad),
	    cmocka_unit_test_setup_teardown(console_socket_pty, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(console_socket_long_path, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(console_socket_errors, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(ctty_sigwinch, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(detach_created, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(detach_reported_error, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(detach_died_before_report, setup_dir, teardown_dir),
	    cmocka_unit_test(detach_report_not_detached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
