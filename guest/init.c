/* vmm-init: the guest's PID 1, packed as /init in the initramfs (see guest/meson.build).
 *
 * It does the least a workload needs and then gets out of the way:
 *   1. Signals BOOT_DONE on the guest-signal port (devices/guest_signal.h) if the device answers
 *      with its magic. This comes first, before any mount: the port needs only ioperm() and the
 *      in/out instructions, and this is the earliest moment user space exists, so the boot timer
 *      measures the kernel alone. Init's own setup is timed separately, up to PROCESS_START.
 *   2. Mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /tmp and /run, creating the mount points.
 *      Only /proc and /dev are required; any other failure is one line on stderr.
 *   3. Makes the console its controlling tty, and prints "vmm-init: booted (N CPUs)".
 *   4. Runs argv[1..] if given. Linux hands init whatever follows "--" on the kernel command line
 *      (and any other word it does not know that has no '='; unknown "key=value" words become
 *      init's environment). The workload runs with a standard PATH as the console's foreground
 *      process group, so ^C reaches it and a shell gets job control; PID 1 signals PROCESS_START
 *      from the child just before execvp and reaps every process until the workload exits.
 *   5. Shuts down: prints "vmm-init: exit status S" when S != 0, waits (up to 2 s) for the
 *      console to transmit what is queued, sync()s, signals EXIT_STATUS S, and
 *      reboot(RB_AUTOBOOT)s. vmm boots the kernel with reboot=k, so the reset goes through the
 *      i8042 and vmm exits with S; there is no ACPI, so RB_POWER_OFF would only halt.
 *
 * Why PID 1, not the workload, leads the console's session: when a session leader exits, the
 * kernel hangs up its controlling tty, and a hangup throws away output the serial driver has
 * queued but not yet sent, i.e. the workload's last lines. PID 1 never exits, so nothing is
 * hung up, and step 5 drains the queue before the reset, which would lose it as well.
 *
 * Exit status S: the workload's exit code, 128+N if signal N killed it, 126 if it could not be
 * executed (EACCES), 127 if it was not found or could not be run, 125 if init itself failed.
 * PID 1 must never exit (the kernel panics), so every path, failures included, ends in step 5.
 *
 * Test mode, for checking this logic on a host: when VMM_INIT_TEST=1 is in the environment or it
 * is not PID 1, init skips the port, the mounts and the console (the workload keeps init's
 * session and stdio), makes itself a child subreaper (so orphans are reaped as PID 1 would), and
 * exits with S instead of rebooting. As PID 1 (in a pid namespace) it still never exits: it
 * reboots, which ends the namespace.
 *
 * It is linked statically and uses nothing from glibc's NSS (no user or host lookups), so the
 * initramfs needs no libraries. */
#include "devices/guest_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Init's own failure: apart from 126/127 (exec) and 128+N (signals), like env(1) and chroot(1). */
#define STATUS_INIT_FAILURE 125

#define WORKLOAD_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* How long shutdown waits for the console to send its queued output. */
#define CONSOLE_DRAIN_MS 2000

static bool test_mode;
static bool port_present;	 /* the guest-signal device answered with its magic */
static bool have_ctty;		 /* PID 1 leads a session with the console as controlling tty */
static sigset_t startup_sigmask; /* what the workload gets back */

/* Prints "vmm-init: <message>\n" in one write(2), so it never interleaves with the workload's
 * output on the shared console and needs no stdio flushing before fork or reboot. */
static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...)
{
	static const char prefix[] = "vmm-init: ";
	char line[512];
	va_list ap;

	memcpy(line, prefix, sizeof(prefix) - 1);
	size_t len = sizeof(prefix) - 1;
	va_start(ap, fmt);
	int n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
	line[len++] = '\n';
	ssize_t ret = write(fd, line, len);
	(void)ret; /* nowhere left to report a console that cannot be written */
}

/* Looks for the guest-signal device. Without it (another VMM, or a kernel without
 * CONFIG_X86_IOPL_IOPERM) everything still works, just without the signals. */
static void port_probe(void)
{
	if (ioperm(GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN, 1) < 0) {
		say(2, "no guest-signal port: ioperm: %s", strerror(errno));
		return;
	}
	port_present = inl(GUEST_SIGNAL_PORT) == GUEST_SIGNAL_MAGIC;
	if (!port_present)
		ioperm(GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN, 0);
}

static void port_signal(enum guest_signal_code code, unsigned int arg)
{
	if (port_present)
		outl(GUEST_SIGNAL(code, arg), GUEST_SIGNAL_PORT);
}

struct mount_point {
	const char *target;
	const char *type; /* also the source: these are all virtual file systems */
	unsigned long flags;
	const char *data;
	bool required; /* without /proc or /dev the workload cannot be expected to run */
};

static const struct mount_point mounts[] = {
    {"/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true},
    {"/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false},
    {"/dev", "devtmpfs", MS_NOSUID, "mode=0755", true},
    {"/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666", false},
    {"/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false},
    {"/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false},
};

/* Mounts everything in mounts[]; returns -errno of the first required mount that failed. */
static int mount_all(void)
{
	int ret = 0;

	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		const struct mount_point *m = &mounts[i];
		const char *what = "mkdir";
		int err = 0;

		if (mkdir(m->target, 0755) < 0 && errno != EEXIST)
			err = -errno;
		if (!err && mount(m->type, m->target, m->type, m->flags, m->data) < 0) {
			what = "mount";
			err = -errno;
		}
		if (!err)
			continue;
		say(2, "%s %s (%s): %s%s", what, m->target, m->type, strerror(-err),
		    m->required ? "" : " (continuing)");
		if (m->required && !ret)
			ret = err;
	}
	return ret;
}

/* The kernel opens /dev/console as init's fds 0-2 but starts init without them if that fails
 * (no node in the initramfs); retry now that devtmpfs is mounted, so messages can be seen. */
static void ensure_stdio(void)
{
	int fd = -1;

	for (int i = 0; i <= 2; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		if (fd < 0)
			fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd < 0)
			return;
		if (fd != i)
			dup2(fd, i);
	}
	if (fd > 2)
		close(fd);
}

/* Opens `path` and makes it our controlling tty (we must lead a session that has none); returns
 * the fd or -errno. */
static int open_ctty(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, TIOCSCTTY, 0) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Makes PID 1 a session leader with the console as controlling tty and fds 0-2 on it, so the
 * workload can become the foreground process group (see the top of the file). The kernel opens
 * /dev/console for init without making it a controlling tty. /dev/console normally works; if
 * not, try the device behind it, the last name in /sys/class/tty/console/active (e.g. ttyS0).
 * Without either the workload still runs, only without job control, so this is not fatal. */
static void take_console(void)
{
	if (setsid() < 0) {
		say(2, "setsid: %s (the workload gets no controlling tty)", strerror(errno));
		return;
	}
	int fd = open_ctty("/dev/console");
	int err = fd;

	if (fd < 0) {
		char active[256], dev[300];
		FILE *f = fopen("/sys/class/tty/console/active", "re");
		size_t n = f ? fread(active, 1, sizeof(active) - 1, f) : 0;
		if (f)
			fclose(f);
		active[n] = '\0';
		active[strcspn(active, "\n")] = '\0';
		char *name = strrchr(active, ' ');
		name = name ? name + 1 : active;
		if (*name) {
			snprintf(dev, sizeof(dev), "/dev/%s", name);
			fd = open_ctty(dev);
		}
	}
	if (fd < 0) {
		say(2, "no controlling tty: /dev/console: %s (the workload gets no job control)",
		    strerror(-err));
		return;
	}
	for (int i = 0; i <= 2; i++) {
		if (fd != i)
			dup2(fd, i);
	}
	if (fd > 2)
		close(fd);
	have_ctty = true;
}

/* Waits until the console has sent what is queued for it, at most CONSOLE_DRAIN_MS: a reset
 * drops the serial driver's buffer. Polls TIOCOUTQ rather than tcdrain(), which could block
 * PID 1 forever on a stuck port. */
static void drain_console(void)
{
	for (int ms = 0; ms < CONSOLE_DRAIN_MS; ms++) {
		int queued;
		if (ioctl(STDOUT_FILENO, TIOCOUTQ, &queued) < 0 || queued <= 0)
			return;
		usleep(1000);
	}
}

/* In the child: become the console's foreground process group and exec the workload. Never
 * returns. */
static void __attribute__((noreturn)) exec_workload(char **argv)
{
	if (have_ctty) {
		/* tcsetpgrp from a background group works because SIGTTOU is still blocked. */
		if (setpgid(0, 0) < 0 || tcsetpgrp(STDIN_FILENO, getpid()) < 0)
			say(2, "cannot make the workload the foreground process group: %s",
			    strerror(errno));
	}
	sigprocmask(SIG_SETMASK, &startup_sigmask, NULL);
	if (setenv("PATH", WORKLOAD_PATH, 1) < 0)
		say(2, "setenv PATH: %s", strerror(errno));

	port_signal(GUEST_SIGNAL_PROCESS_START, 0);
	/* ioperm() rights survive execve; the workload did not ask for them. */
	if (port_present)
		ioperm(GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN, 0);

	execvp(argv[0], argv);
	int err = errno;
	say(2, "cannot run '%s': %s", argv[0], strerror(err));
	_exit(err == EACCES ? 126 : 127);
}

/* Reaps every child (PID 1 inherits all orphans, and unreaped ones stay zombies) until `workload`
 * exits; returns its status as a shell would. */
static int reap_until(pid_t workload)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			say(2, "waitpid: %s", strerror(errno));
			return STATUS_INIT_FAILURE;
		}
		if (pid != workload)
			continue;
		if (WIFEXITED(st))
			return WEXITSTATUS(st);
		if (WIFSIGNALED(st))
			return 128 + WTERMSIG(st);
	}
}

static int run_workload(char **argv)
{
	pid_t child = fork();
	if (child < 0) {
		say(2, "fork: %s", strerror(errno));
		return STATUS_INIT_FAILURE;
	}
	if (child == 0)
		exec_workload(argv);
	return reap_until(child);
}

/* Step 5: the only way out. As PID 1 it must not return or exit. */
static void __attribute__((noreturn)) shut_down(int status)
{
	if (status)
		say(2, "exit status %d", status);
	if (getpid() != 1)
		exit(status);

	drain_console();
	sync();
	port_signal(GUEST_SIGNAL_EXIT_STATUS, (unsigned int)status);
	reboot(RB_AUTOBOOT);
	say(2, "reboot: %s", strerror(errno));
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	const char *env = getenv("VMM_INIT_TEST");

	sigprocmask(SIG_SETMASK, NULL, &startup_sigmask);

	test_mode = (env && !strcmp(env, "1")) || getpid() != 1;
	if (test_mode) {
		/* Stand in for PID 1's duty to reap orphans. */
		if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
			say(2, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	} else {
		port_probe();
		port_signal(GUEST_SIGNAL_BOOT_DONE, 0);
		int err = mount_all();
		ensure_stdio();
		if (err)
			shut_down(STATUS_INIT_FAILURE);
		/* Once the workload owns the console's foreground, PID 1 is in a background group.
		 * With SIGTTOU blocked the child's tcsetpgrp() is allowed, and PID 1's own messages
		 * still get out if the workload turned on TOSTOP. The child restores the mask. */
		sigset_t ttou;
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, NULL);
		take_console();
	}

	say(1, "booted (%ld CPUs)", sysconf(_SC_NPROCESSORS_ONLN));
	shut_down(argc > 1 ? run_workload(argv + 1) : 0);
}
