/* vmm-agent: the guest's PID 1 in a container VM. It sets the container up (agent_boot.c), then
 * serves the host over vsock: one session on the connection it makes to the host (the container's
 * main process) and one per connection the host makes to it (`vmm exec`). Each session runs one
 * process with its stdio carried in frames (agent_session.c, docs/agent-protocol.md). When the
 * main process has exited, its EXIT is out and the host has said so (SHUTDOWN, or closing the
 * connection), the agent syncs and resets the VM.
 *
 * One thread, one poll() loop, nothing blocks on the host: sockets and the agent's ends of the
 * process pipes are non-blocking, and each session's queues are bounded (agent_session.h), so a
 * host that stops reading only stalls its own session's process. The one wait is for a new
 * process to reach execve (or fail), over a close-on-exec pipe.
 *
 * Test mode (`vmm-agent --test MAIN_SOCK LISTEN_SOCK [--root DIR]`): the same loop as an ordinary
 * process, with Unix sockets for vsock, no PID-1 setup, no guest-signal port, chroot only into
 * --root DIR, a /dev/ptmx pty, and exit(status) instead of a reset. tests/unit/test_agent.c drives
 * it through the protocol. */
#include "guest/agent.h"
#include "guest/agent_session.h"

#include "devices/guest_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_SESSIONS 16 /* the main one and up to 15 `vmm exec` */
#define READ_CHUNK   AGENT_MAX_PAYLOAD

/* PATH for a START whose environment has none, as in Docker images. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* How long a failing boot waits for the console to send its last line before the reset. */
#define CONSOLE_DRAIN_MS 2000

struct sess {
	struct agent_session ps;
	bool used;
	int sock;
	int in_fd;	    /* the process's stdin (pipe), -1 with a tty or once closed */
	int out_fd, err_fd; /* stdout and stderr pipes, or the pty master in out_fd */
	bool reaped;	    /* the process was waited for: drain, then EXIT */
	int wstatus;
	bool host_gone;	 /* the host closed the connection, or it broke */
	bool exit_noted; /* the agent acted on this session's EXIT */
	bool pty_eof;	 /* the pty master read EIO: nothing more until the reap */
};

static struct {
	bool test;
	const char *root; /* what processes are chrooted to, or NULL */
	const char *ptmx;
	int listen_fd, sigfd;
	bool shutdown; /* SHUTDOWN came */
	bool main_done;
	int main_status;
	struct sess sessions[MAX_SESSIONS]; /* [0] is the main session */
} A = {.listen_fd = -1, .sigfd = -1};

static uint8_t read_buf[READ_CHUNK];

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* Kills every process but the agent: all of them in the guest; in test mode, where kill(-1)
 * would reach the user's other processes, the sessions' process groups, reaped leaders included
 * (a group lives on, and keeps its id from being reused, while a member it left behind does). */
static void kill_all(void)
{
	if (!A.test) {
		kill(-1, SIGKILL);
		return;
	}
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct sess *s = &A.sessions[i];
		if (s->used && s->ps.pid > 0)
			kill(-s->ps.pid, SIGKILL);
	}
}

static void drain_console(void)
{
	for (int ms = 0; ms < CONSOLE_DRAIN_MS; ms++) {
		int queued;
		if (ioctl(STDERR_FILENO, TIOCOUTQ, &queued) < 0 || queued <= 0)
			return;
		usleep(1000);
	}
}

/* The end: everything is killed, the file systems synced, the status reported, the VM reset. */
static void __attribute__((noreturn)) power_off(int status)
{
	kill_all();
	if (A.test)
		exit(status);
	sync();
	drain_console();
	agent_port_signal(GUEST_SIGNAL_EXIT_STATUS, (unsigned int)status);
	reboot(RB_AUTOBOOT);
	agent_say("reboot: %s", strerror(errno));
	for (;;)
		pause();
}

/* ---- Starting a process ---- */

/* execvp with the PATH of envp (DEFAULT_PATH without one); returns the errno that decides. */
static int exec_search(char *const argv[], char *const envp[])
{
	const char *file = argv[0], *path = DEFAULT_PATH;
	char buf[PATH_MAX];
	bool eacces = false;

	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return errno;
	}
	for (char *const *e = envp; *e; e++) {
		if (!strncmp(*e, "PATH=", 5)) {
			path = *e + 5;
			break;
		}
	}
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p);
		int n = dl ? snprintf(buf, sizeof(buf), "%.*s/%s", (int)dl, p, file)
			   : snprintf(buf, sizeof(buf), "%s", file); /* empty: the cwd */
		if (n > 0 && (size_t)n < sizeof(buf)) {
			execve(buf, argv, envp);
			if (errno == EACCES)
				eacces = true;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ENAMETOOLONG)
				return errno; /* found, but it cannot run: stop, as execvp does */
		}
		if (!*end)
			break;
		p = end;
	}
	return eacces ? EACCES : ENOENT;
}

/* The child's failure report, sent over the close-on-exec pipe; never returns. */
static void __attribute__((noreturn, format(printf, 4, 5)))
child_fail(int report, int err, int status, const char *fmt, ...)
{
	struct agent_spawn_error e;
	va_list ap;

	memset(&e, 0, sizeof(e));
	e.err = err;
	e.status = status;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	ssize_t n = write(report, &e, sizeof(e)); /* under PIPE_BUF: one piece */
	(void)n;
	_exit(status);
}

/* ---- The process settings (AGENT_START_PROC), in the child ---- */

/* Writes value to /proc/sys/NAME (dots become slashes); 0 or an errno. */
static int write_sysctl(const char *name, const char *value)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "/proc/sys/%s", name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return ENAMETOOLONG;
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	size_t len = strlen(value);
	ssize_t w = write(fd, value, len);
	int err = w < 0 ? errno : (size_t)w != len ? EIO : 0;
	if (close(fd) < 0 && !err)
		err = errno;
	return err;
}

/* Hides path: /dev/null bound over a file, an empty read-only tmpfs over a directory. A path
 * that does not exist is left alone, as runc does. */
static int mask_path(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : errno;
	int r = S_ISDIR(sb.st_mode)
		    ? mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			    "size=0,mode=0555")
		    : mount("/dev/null", path, NULL, MS_BIND, NULL);
	return r < 0 ? errno : 0;
}

/* Makes path read-only: a bind of itself, remounted read-only (a missing path is skipped). */
static int readonly_path(const char *path)
{
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : errno;
	if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL) < 0)
		return errno;
	return 0;
}

/* The container-wide settings, applied before the process starts: sysctls, masked paths,
 * read-only paths (inside the root; the mounts are in the agent's namespace, so they stay for
 * every later process of the container). */
static void apply_container(const struct agent_start *st, int report)
{
	for (uint32_t i = 0; i < st->nsysctl; i++) {
		int err = write_sysctl(st->sysctl[2 * i], st->sysctl[2 * i + 1]);
		if (err)
			child_fail(report, err, AGENT_STATUS_SETUP, "cannot set sysctl %s=%s: %s",
				   st->sysctl[2 * i], st->sysctl[2 * i + 1], strerror(err));
	}
	for (uint32_t i = 0; i < st->nmasked; i++) {
		int err = mask_path(st->masked[i]);
		if (err)
			child_fail(report, err, AGENT_STATUS_SETUP, "cannot mask %s: %s",
				   st->masked[i], strerror(err));
	}
	for (uint32_t i = 0; i < st->nreadonly; i++) {
		int err = readonly_path(st->readonly[i]);
		if (err)
			child_fail(report, err, AGENT_STATUS_SETUP, "cannot make %s read-only: %s",
				   st->readonly[i], strerror(err));
	}
}

/* rlimits and oom_score_adj, while still root (raising a hard limit or lowering the score
 * needs CAP_SYS_RESOURCE). */
static void apply_limits(const struct agent_start *st, int report)
{
	for (uint32_t i = 0; i < st->nrlimits; i++) {
		const struct agent_rlimit *l = &st->rlimits[i];
		struct rlimit rl = {
		    .rlim_cur = l->soft == UINT64_MAX ? RLIM_INFINITY : (rlim_t)l->soft,
		    .rlim_max = l->hard == UINT64_MAX ? RLIM_INFINITY : (rlim_t)l->hard,
		};
		if (setrlimit((int)l->resource, &rl) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP,
				   "cannot set rlimit %u to %llu:%llu: %s", l->resource,
				   (unsigned long long)l->soft, (unsigned long long)l->hard,
				   strerror(errno));
	}
	if (st->proc_flags & AGENT_PROC_OOM) {
		char v[16];
		snprintf(v, sizeof(v), "%d", st->oom_score_adj);
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		int err = fd < 0 ? errno : 0;
		if (fd >= 0) {
			if (write(fd, v, strlen(v)) < 0)
				err = errno;
			close(fd);
		}
		if (err)
			child_fail(report, err, AGENT_STATUS_SETUP,
				   "cannot set oom_score_adj %d: %s", st->oom_score_adj,
				   strerror(err));
	}
}

/* The bounding set, while still root: every capability not in it is dropped. */
static void drop_bounding(const struct agent_start *st, int report)
{
	for (unsigned c = 0; c <= AGENT_CAP_LAST; c++) {
		if (st->caps[AGENT_CAP_BOUNDING] >> c & 1)
			continue;
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) < 0)
			break; /* the kernel has no capability c, nor any above it */
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP,
				   "cannot drop capability %u from the bounding set: %s", c,
				   strerror(errno));
	}
}

/* Effective, permitted and inheritable by capset, then the ambient set, after the uid switch. */
static void set_caps(const struct agent_start *st, int report)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	for (int i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(st->caps[AGENT_CAP_EFFECTIVE] >> (32 * i));
		d[i].permitted = (uint32_t)(st->caps[AGENT_CAP_PERMITTED] >> (32 * i));
		d[i].inheritable = (uint32_t)(st->caps[AGENT_CAP_INHERITABLE] >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP,
			   "cannot set the capabilities (effective %#llx, permitted %#llx, "
			   "inheritable %#llx): %s",
			   (unsigned long long)st->caps[AGENT_CAP_EFFECTIVE],
			   (unsigned long long)st->caps[AGENT_CAP_PERMITTED],
			   (unsigned long long)st->caps[AGENT_CAP_INHERITABLE], strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP, "cannot clear the ambient set: %s",
			   strerror(errno));
	for (unsigned c = 0; c <= AGENT_CAP_LAST; c++)
		if ((st->caps[AGENT_CAP_AMBIENT] >> c & 1) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP,
				   "cannot raise ambient capability %u (it must be permitted and "
				   "inheritable): %s",
				   c, strerror(errno));
}

/* The seccomp program: the last step before execve, or (without no_new_privileges) the first
 * one after the limits. */
static void set_seccomp(const struct agent_start *st, int report)
{
	struct sock_fprog prog = {.len = (unsigned short)st->nfilter,
				  .filter = (struct sock_filter *)st->filter};
	_Static_assert(sizeof(struct sock_filter) == sizeof(struct agent_bpf_insn),
		       "struct agent_bpf_insn is laid out as struct sock_filter");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP,
			   "cannot install the seccomp filter (%u instructions): %s%s", st->nfilter,
			   strerror(errno),
			   errno == EACCES ? " (it needs no_new_privileges or CAP_SYS_ADMIN)" : "");
}

/* In the new process: stdio, session, root, credentials, cwd, then execve. */
static void __attribute__((noreturn))
child(const struct sess *s, const struct agent_start *st, const int fds[3], int report)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid(); /* never fails in a fresh child; its process group is what test mode kills */
	if ((st->flags & AGENT_START_TTY) && ioctl(fds[0], TIOCSCTTY, 0) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP,
			   "cannot make the pty the controlling tty: %s", strerror(errno));
	for (int i = 0; i < 3; i++) {
		if (dup2(fds[i], i) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP, "dup2: %s", strerror(errno));
	}
	if (A.root && chroot(A.root) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP, "cannot chroot to %s: %s", A.root,
			   strerror(errno));
	bool proc = st->flags & AGENT_START_PROC;
	if (proc) {
		apply_container(st, report);
		apply_limits(st, report);
	}
	/* Without no_new_privileges the kernel takes a filter only from a CAP_SYS_ADMIN process:
	 * as runc does, it goes in now, while the agent is still root with every capability, and
	 * the steps after it (the uid switch, capset, chdir, execve) run under it, as the profile
	 * allows (podman's and Docker's do). With no_new_privileges it is the last step. */
	bool early_filter = proc && st->nfilter && !(st->proc_flags & AGENT_PROC_NO_NEW_PRIVS);
	if (early_filter)
		set_seccomp(st, report);
	bool caps = proc && (st->proc_flags & AGENT_PROC_CAPS);
	if (geteuid() == 0) {
		if (caps)
			drop_bounding(st, report);
		if (caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP, "PR_SET_KEEPCAPS: %s",
				   strerror(errno));
		if (setgroups(proc ? st->ngroups : 0, proc ? st->groups : NULL) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP,
				   "cannot set the %u additional groups: %s",
				   proc ? st->ngroups : 0, strerror(errno));
		if (setresgid(st->gid, st->gid, st->gid) < 0 ||
		    setresuid(st->uid, st->uid, st->uid) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP,
				   "cannot switch to uid %u gid %u: %s", st->uid, st->gid,
				   strerror(errno));
		if (caps && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			child_fail(report, errno, AGENT_STATUS_SETUP, "PR_SET_KEEPCAPS: %s",
				   strerror(errno));
	} else if (st->uid != geteuid() || st->gid != getegid()) {
		child_fail(report, EPERM, AGENT_STATUS_SETUP,
			   "cannot switch to uid %u gid %u: the agent is not root", st->uid,
			   st->gid);
	} else if (proc && st->ngroups) {
		child_fail(report, EPERM, AGENT_STATUS_SETUP,
			   "cannot set additional groups: the agent is not root");
	} else if (caps) {
		drop_bounding(st, report);
	}
	if (caps)
		set_caps(st, report);
	if (proc && (st->proc_flags & AGENT_PROC_UMASK))
		umask((mode_t)st->umask);
	if (proc && (st->proc_flags & AGENT_PROC_NO_NEW_PRIVS) &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP, "cannot set no_new_privileges: %s",
			   strerror(errno));
	if (chdir(st->cwd) < 0)
		child_fail(report, errno, AGENT_STATUS_SETUP,
			   "cannot change to the working directory %s: %s", st->cwd,
			   strerror(errno));
	if (s->ps.main)
		agent_port_signal(GUEST_SIGNAL_PROCESS_START, 0);
	agent_port_release(); /* ioperm rights survive execve: the process did not ask for them */
	if (proc && st->nfilter && !early_filter)
		set_seccomp(st, report);
	int err = exec_search(st->argv, st->env);
	if (err == ENOENT)
		child_fail(report, err, AGENT_STATUS_MISSING, "%s: command not found", st->argv[0]);
	child_fail(report, err, AGENT_STATUS_NOEXEC, "%s: cannot execute: %s", st->argv[0],
		   strerror(err));
}

/* Opens a pty pair: the master (non-blocking, close-on-exec) and its slave. */
static int open_pty(const struct agent_start *st, int *master, int *slave)
{
	int unlock = 0;

	*master = open(A.ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (*master < 0)
		return -errno;
	if (ioctl(*master, TIOCSPTLCK, &unlock) < 0)
		return -errno;
	if (st->rows && st->cols) {
		struct winsize ws = {.ws_row = st->rows, .ws_col = st->cols};
		if (ioctl(*master, TIOCSWINSZ, &ws) < 0)
			return -errno;
	}
	/* The slave by the master's fd, not by a /dev/pts path that differs inside the root. */
	*slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	return *slave < 0 ? -errno : 0;
}

static pid_t spawn(struct agent_session *ps, const struct agent_start *st,
		   struct agent_spawn_error *e)
{
	struct sess *s = ps->opaque;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
	int master = -1, slave = -1, ret = 0;
	const char *what = "pipe";
	pid_t pid = -1;

	if (pipe2(report, O_CLOEXEC) < 0) {
		ret = -errno;
	} else if (st->flags & AGENT_START_TTY) {
		what = "pty";
		ret = open_pty(st, &master, &slave);
	} else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
		   pipe2(err, O_CLOEXEC) < 0) {
		ret = -errno;
	} else if (set_nonblock(in[1]) < 0 || set_nonblock(out[0]) < 0 ||
		   set_nonblock(err[0]) < 0) {
		what = "fcntl";
		ret = -errno;
	}
	if (!ret) {
		what = "fork";
		pid = fork();
		if (pid < 0)
			ret = -errno;
	}
	if (pid == 0) {
		int fds[3] = {in[0], out[1], err[1]};
		if (slave >= 0)
			fds[0] = fds[1] = fds[2] = slave;
		close(report[0]);
		child(s, st, fds, report[1]);
	}
	close_fd(&report[1]);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&slave);
	if (!ret) {
		/* Until execve closes the pipe: EOF means it ran, a report means it did not. */
		ssize_t n;
		do
			n = read(report[0], e, sizeof(*e));
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)sizeof(*e)) {
			e->msg[sizeof(e->msg) - 1] = '\0';
			waitpid(pid, NULL, 0);
			pid = -1;
		}
	} else {
		e->err = -ret;
		e->status = AGENT_STATUS_SETUP;
		snprintf(e->msg, sizeof(e->msg), "cannot start %s: %s: %s", st->argv[0], what,
			 strerror(-ret));
	}
	close_fd(&report[0]);
	if (pid <= 0) {
		close_fd(&in[1]);
		close_fd(&out[0]);
		close_fd(&err[0]);
		close_fd(&master);
		return -1;
	}
	s->in_fd = in[1];
	s->out_fd = master >= 0 ? master : out[0];
	s->err_fd = err[0];
	return pid;
}

/* ---- Session operations ---- */

static ssize_t stdin_write(struct agent_session *ps, const uint8_t *buf, size_t len)
{
	struct sess *s = ps->opaque;
	int fd = ps->tty ? s->out_fd : s->in_fd;

	if (fd < 0)
		return -EPIPE;
	ssize_t n = write(fd, buf, len);
	if (n < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	return n;
}

static void stdin_close(struct agent_session *ps)
{
	struct sess *s = ps->opaque;
	struct termios t;

	if (!ps->tty) {
		close_fd(&s->in_fd);
		return;
	}
	/* Closing the master would hang up the pty: type the end-of-file character instead. */
	if (s->out_fd >= 0 && tcgetattr(s->out_fd, &t) == 0) {
		ssize_t n = write(s->out_fd, &t.c_cc[VEOF], 1);
		(void)n; /* a full pty input queue drops it, as a full keyboard buffer would */
	}
}

static void resize(struct agent_session *ps, uint16_t rows, uint16_t cols)
{
	struct sess *s = ps->opaque;
	struct winsize ws = {.ws_row = rows, .ws_col = cols};

	if (s->out_fd >= 0)
		ioctl(s->out_fd, TIOCSWINSZ, &ws);
}

static void send_signal(struct agent_session *ps, int sig)
{
	struct sess *s = ps->opaque;

	if (!s->reaped) /* a reaped pid may already belong to someone else */
		kill(ps->pid, sig);
}

static void shutdown_req(struct agent_session *ps)
{
	(void)ps;
	A.shutdown = true;
}

static const struct agent_session_ops sess_ops = {
    .spawn = spawn,
    .stdin_write = stdin_write,
    .stdin_close = stdin_close,
    .resize = resize,
    .signal = send_signal,
    .shutdown = shutdown_req,
};

/* ---- Connections ---- */

static struct sess *sess_open(int sock, bool main)
{
	for (int i = main ? 0 : 1; i < (main ? 1 : MAX_SESSIONS); i++) {
		struct sess *s = &A.sessions[i];
		if (s->used)
			continue;
		memset(s, 0, sizeof(*s));
		if (agent_session_init(&s->ps, &sess_ops, s, main) < 0)
			return NULL;
		s->used = true;
		s->sock = sock;
		s->in_fd = s->out_fd = s->err_fd = -1;
		return s;
	}
	return NULL;
}

static void sess_close(struct sess *s)
{
	close_fd(&s->sock);
	close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	agent_session_destroy(&s->ps);
	s->used = false;
}

/* Sends what the session has queued, as far as the socket takes it. */
static void sess_flush(struct sess *s)
{
	size_t len;
	const uint8_t *p;

	while (!s->host_gone && (p = agent_session_pending(&s->ps, &len))) {
		ssize_t n = send(s->sock, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			s->host_gone = true;
			return;
		}
		agent_session_sent(&s->ps, (size_t)n);
	}
}

static void accept_one(void)
{
	int fd = accept4(A.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return; /* EAGAIN, or a connection that went away before we took it */
	struct sess *s = sess_open(fd, false);
	if (s) {
		sess_flush(s);
		return;
	}
	/* Full: HELLO, then ERROR, then the door. Small enough for an empty socket buffer. */
	struct agent_session tmp;
	if (agent_session_init(&tmp, &sess_ops, NULL, false) == 0) {
		size_t len;
		agent_session_error(&tmp, EBUSY, "the agent serves at most %d sessions",
				    MAX_SESSIONS);
		const uint8_t *p = agent_session_pending(&tmp, &len);
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
		agent_session_destroy(&tmp);
	}
	close(fd);
}

/* Reads the host's bytes once. */
static void sess_input(struct sess *s)
{
	ssize_t n = recv(s->sock, read_buf, sizeof(read_buf), MSG_DONTWAIT);

	if (n > 0)
		agent_session_feed(&s->ps, read_buf, (size_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		s->host_gone = true;
}

/* Reads the process's output once from *fd into frames of type. Returns true if it got bytes;
 * closes *fd at its end (EOF, or EIO from a pty whose slave is closed), and, once the process was
 * reaped, also when it is empty: what a leftover grandchild writes later is not waited for. A
 * pty master stays open until the process is reaped: closing it would hang up the pty and send
 * SIGHUP to a process that only closed its stdio on its way out. */
static bool pump(struct sess *s, int *fd, uint16_t type)
{
	ssize_t n = read(*fd, read_buf, sizeof(read_buf));

	if (n > 0) {
		agent_session_output(&s->ps, type, read_buf, (size_t)n);
		return true;
	}
	if (n < 0 && errno == EINTR)
		return true;
	if (!s->reaped && n < 0 && errno == EAGAIN)
		return false;
	if (!s->reaped && s->ps.tty)
		s->pty_eof = true; /* stop polling it */
	else
		close_fd(fd);
	return false;
}

static void reap(void)
{
	struct signalfd_siginfo si;
	int st;
	pid_t pid;

	while (read(A.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct sess *s = &A.sessions[i];
			if (s->used && s->ps.state == AGENT_SESSION_RUNNING && s->ps.pid == pid &&
			    !s->reaped) {
				s->reaped = true;
				s->wstatus = st;
			}
		}
	}
}

/* After the process was reaped: sends what is left in its pipes, then EXIT. */
static void sess_drain(struct sess *s)
{
	while (agent_session_output_room(&s->ps) && (s->out_fd >= 0 || s->err_fd >= 0)) {
		if (s->out_fd >= 0)
			pump(s, &s->out_fd, AGENT_STDOUT);
		if (s->err_fd >= 0)
			pump(s, &s->err_fd, AGENT_STDERR);
	}
	if (s->out_fd < 0 && s->err_fd < 0) {
		close_fd(&s->in_fd);
		agent_session_exited(&s->ps, s->wstatus);
	}
}

/* What follows a session's EXIT, its host leaving, or SHUTDOWN. */
static void sess_after(struct sess *s)
{
	if (s->ps.state == AGENT_SESSION_DONE && !s->exit_noted) {
		s->exit_noted = true;
		if (s->ps.main) {
			/* The container is over: report now, and stop the others. */
			A.main_done = true;
			A.main_status = s->ps.exit_status;
			agent_port_signal(GUEST_SIGNAL_EXIT_STATUS, (unsigned int)A.main_status);
			kill_all();
		}
	}
	sess_flush(s);
	if (s->ps.main) {
		/* SHUTDOWN, or the host's close: after EXIT that is its "all output is out";
		 * before, the container is stopped (its process killed). */
		if (A.shutdown || s->host_gone)
			power_off(A.main_done ? A.main_status : 128 + SIGKILL);
		return;
	}
	if (s->host_gone) {
		if (s->ps.state == AGENT_SESSION_RUNNING && !s->reaped)
			kill(-s->ps.pid, SIGKILL); /* reaped later as a stranger */
		sess_close(s);
	} else if (s->ps.state == AGENT_SESSION_DONE &&
		   !agent_session_pending(&s->ps, &(size_t){0})) {
		sess_close(s);
	}
}

static void add_poll(struct pollfd *p, nfds_t *n, int fd, short events)
{
	p[*n].fd = events ? fd : -1;
	p[*n].events = events;
	p[*n].revents = 0;
	(*n)++;
}

static void __attribute__((noreturn)) serve(void)
{
	struct pollfd p[2 + 4 * MAX_SESSIONS];

	for (;;) {
		nfds_t n = 0;
		add_poll(p, &n, A.sigfd, POLLIN);
		add_poll(p, &n, A.listen_fd, A.listen_fd >= 0 ? POLLIN : 0);
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct sess *s = &A.sessions[i];
			size_t pending = 0;
			bool live = s->used && s->ps.state == AGENT_SESSION_RUNNING && !s->reaped;
			bool room = live && agent_session_output_room(&s->ps);
			if (s->used)
				agent_session_pending(&s->ps, &pending);
			/* POLLRDHUP: a host that leaves is noticed even while its bytes are not
			 * read (its session over a limit). */
			add_poll(p, &n, s->sock,
				 !s->used ? 0
					  : POLLRDHUP |
						(agent_session_wants_input(&s->ps) ? POLLIN : 0) |
						(pending ? POLLOUT : 0));
			add_poll(p, &n, s->ps.tty ? s->out_fd : s->in_fd,
				 live && s->ps.in.len ? POLLOUT : 0);
			add_poll(p, &n, s->out_fd, room && !s->pty_eof ? POLLIN : 0);
			add_poll(p, &n, s->err_fd, room ? POLLIN : 0);
		}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			agent_say("poll: %s", strerror(errno));
			power_off(AGENT_STATUS_SETUP);
		}
		if (p[0].revents)
			reap();
		if (p[1].revents)
			accept_one();
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct sess *s = &A.sessions[i];
			struct pollfd *q = &p[2 + 4 * i];
			if (!s->used)
				continue;
			if (q[0].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR) &&
			    q[0].events & POLLIN)
				sess_input(s);
			else if (q[0].revents & (POLLRDHUP | POLLHUP | POLLERR))
				s->host_gone = true;
			if (q[1].revents && s->ps.state == AGENT_SESSION_RUNNING)
				agent_session_flush_stdin(&s->ps);
			if (q[2].revents && s->out_fd >= 0)
				pump(s, &s->out_fd, AGENT_STDOUT);
			if (q[3].revents && s->err_fd >= 0)
				pump(s, &s->err_fd, AGENT_STDERR);
			if (s->reaped && s->ps.state == AGENT_SESSION_RUNNING)
				sess_drain(s);
			sess_after(s);
		}
		if (A.shutdown) /* from an exec session: the main one acts on its own at once */
			power_off(A.main_done ? A.main_status : 128 + SIGKILL);
	}
}

/* ---- Setting up ---- */

static int unix_socket(const char *path, bool listening)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(a.sun_path)) {
		errno = fd < 0 ? errno : ENAMETOOLONG;
		goto fail;
	}
	strcpy(a.sun_path, path);
	if (listening) {
		unlink(path);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
			goto fail;
	} else if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		goto fail;
	}
	return fd;
fail:
	agent_say("%s %s: %s", listening ? "listen on" : "connect to", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int vsock_socket(bool listening)
{
	struct sockaddr_vm a = {
	    .svm_family = AF_VSOCK,
	    .svm_port = AGENT_VSOCK_PORT,
	    .svm_cid = listening ? VMADDR_CID_ANY : VMADDR_CID_HOST,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		goto fail;
	if (listening) {
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
			goto fail;
		return fd;
	}
	/* vmm listens before the guest runs; the retries only cover a slow host side. */
	for (int tries = 0; connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0; tries++) {
		if (errno != EINTR && errno != ECONNRESET && errno != ECONNREFUSED &&
		    errno != ETIMEDOUT)
			goto fail;
		if (tries == 50)
			goto fail;
		usleep(100 * 1000);
	}
	return fd;
fail:
	agent_say("vsock %s port %u: %s", listening ? "listen on" : "connect to host",
		  AGENT_VSOCK_PORT, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Fds 0-2 must be open, or the pipes made later would land there and be clobbered by dup2. */
static void fill_stdio(void)
{
	for (int i = 0; i <= 2; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0 && fd != i) {
			dup2(fd, i);
			close(fd);
		}
	}
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: vmm-agent (as PID 1 in a vmm guest)\n"
			"       vmm-agent --test MAIN_SOCKET LISTEN_SOCKET [--root DIR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *main_path = NULL, *listen_path = NULL;
	sigset_t chld;

	if (argc > 1 && !strcmp(argv[1], "--test")) {
		if (argc != 4 && !(argc == 6 && !strcmp(argv[4], "--root")))
			usage();
		A.test = true;
		main_path = argv[2];
		listen_path = argv[3];
		A.root = argc == 6 ? argv[5] : NULL;
		A.ptmx = "/dev/ptmx";
	} else if (getpid() != 1) {
		usage();
	} else {
		A.root = AGENT_NEWROOT;
		A.ptmx = AGENT_NEWROOT "/dev/pts/ptmx";
	}

	if (!A.test) {
		/* First, before any mount, so the boot timer measures the kernel alone. */
		agent_port_probe();
		agent_port_signal(GUEST_SIGNAL_BOOT_DONE, 0);
		if (agent_boot() < 0)
			power_off(AGENT_STATUS_SETUP);
	} else if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		agent_say("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	}
	fill_stdio();
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	A.sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (A.sigfd < 0) {
		agent_say("signalfd: %s", strerror(errno));
		power_off(AGENT_STATUS_SETUP);
	}

	/* Listen first, so a `vmm exec` can come in as soon as the host has the main session. */
	A.listen_fd = A.test ? unix_socket(listen_path, true) : vsock_socket(true);
	if (A.listen_fd < 0 || set_nonblock(A.listen_fd) < 0)
		agent_say("no `vmm exec` sessions");
	int fd = A.test ? unix_socket(main_path, false) : vsock_socket(false);
	if (fd < 0 || set_nonblock(fd) < 0 || !sess_open(fd, true)) {
		agent_say("no connection to the host: the container cannot start");
		power_off(AGENT_STATUS_SETUP);
	}
	sess_flush(&A.sessions[0]);
	serve();
}
