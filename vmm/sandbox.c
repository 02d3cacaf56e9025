/* The sandbox: no capabilities, no_new_privs, and a seccomp allow-list per thread kind.
 *
 * Order (vm_run): setup opens every file, device and socket the VM needs; then the main thread
 * drops its capabilities and sets no_new_privs (sandbox_drop_privileges) before any other thread
 * exists, so the vCPU threads inherit both; each vCPU thread installs the vCPU list on itself
 * before its first KVM_RUN; the main thread installs the main list after the vCPU threads are
 * created (so they do not inherit the wider main list) and before its event loop runs, i.e.
 * before it reads anything the guest controls. No TSYNC: the two kinds differ.
 *
 * A call outside a list traps (SCMP_ACT_TRAP, not a silent kill) so the SIGSYS handler can name
 * it on stderr; then the whole process exits with 125. Every entry says why it is needed. The
 * lists are what `strace -f` showed after each thread's filter over the integration suite (every
 * device, exit and signal path), plus the calls of paths the suite does not reach (virtio-blk's
 * synchronous fallback, malloc growth, error paths), each named in its entry. */
#include "vmm/sandbox.h"
#include "vmm/vm.h"

#include <cap-ng.h>
#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/kvm.h>

struct sc_rule {
	const char *name; /* resolved by libseccomp for the native architecture */
	const char *why;
};

/* Both kinds: the vCPU threads run the MMIO/PIO handlers (device register writes, resets,
 * serial output, logging), the main thread runs the device back-ends. */
static const struct sc_rule common_rules[] = {
    {"read", "eventfds, TAP, console input, vsock sockets"},
    {"write", "eventfds (irqfd, stop), console and log output, TAP, sockets"},
    {"readv", "TAP frames"},
    {"writev", "TAP frames, vsock payloads"},
    {"preadv", "virtio-blk: synchronous fallback (step_sync)"},
    {"pwritev", "virtio-blk: synchronous fallback (step_sync)"},
    {"fdatasync", "virtio-blk: synchronous FLUSH fallback"},
    {"fallocate", "virtio-blk: synchronous DISCARD / WRITE_ZEROES fallback"},
    {"close", "vsock connections, device reset, teardown"},
    {"epoll_ctl", "devices (un)register fds with the event loop"},
    {"io_uring_enter", "virtio-blk submissions and completions"},
    {"sendmsg", "vsock host sockets"},
    {"sendto", "send(2) on vsock host sockets"},
    {"recvfrom", "recv(2) on vsock host sockets"},
    {"shutdown", "vsock half-close"},
    {"getrandom", "virtio-rng"},
    {"futex", "pthread mutexes, joins, stdio locks"},
    {"rt_sigprocmask", "glibc around thread exit and signal delivery"},
    {"rt_sigreturn", "return from the SIGUSR1 kick handler"},
    {"restart_syscall", "a timed wait interrupted by the SIGUSR1 kick"},
    {"mmap", "malloc: vsock connections are allocated while the guest runs"},
    {"munmap", "free, thread stacks, guest memory and io_uring at teardown"},
    {"madvise", "glibc frees thread stacks and arenas"},
    {"mprotect", "malloc arena growth"},
    {"brk", "malloc"},
    {"clock_gettime", "timestamps (when the vDSO falls back)"},
    {"getpid", "pthread_kill (glibc passes its pid to tgkill)"},
    {"tgkill", "pthread_kill: kick a vCPU out of KVM_RUN"},
    {"exit", "thread exit"},
    {"exit_group", "process exit"},
    {"newfstatat", "stdio: a stream's first buffered write (exit paths)"},
};

/* The main thread only: the event loop, vsock host connections, teardown. */
static const struct sc_rule main_rules[] = {
    {"epoll_wait", "the event loop"},
    {"accept4", "vsock: host connections on the listening socket"},
    {"connect", "vsock: guest -> host connections to PATH_PORT"},
    {"getsockopt", "virtio-net: SO_ERROR of a failed back-end fd (fd_error)"},
    {"unlink", "vsock: remove the listening sockets at exit"},
};

/* ioctl request numbers allowed per kind (compared on the low 32 bits, what the kernel uses). */
struct ioctl_rule {
	unsigned long req;
	const char *why;
};

static const struct ioctl_rule main_ioctls[] = {
    {KVM_IRQ_LINE, "serial interrupt after console input"},
    {TCSETS, "console: tcsetattr(TCSANOW) restores the terminal at exit"},
};

/* The container session thread (vmm/session.c): its poll loop, on top of the common list. */
static const struct sc_rule session_rules[] = {
    {"poll", "waits on the agent socket, stdin and the signal pipe"},
    {"ppoll", "the same, where the C library implements poll with ppoll"},
};

static const struct ioctl_rule session_ioctls[] = {
    {TIOCGWINSZ, "the terminal's size for the container's pty (START, SIGWINCH)"},
};

static const struct ioctl_rule vcpu_ioctls[] = {
    {KVM_RUN, "run the vCPU"},
    {KVM_SET_GUEST_DEBUG, "--boot-timer: clear the kernel-entry breakpoint"},
    {KVM_IRQ_LINE, "serial interrupt after a register write"},
    {TUNSETOFFLOAD, "virtio-net: offloads the driver acknowledged"},
    {KVM_GET_REGS, "KVM internal error: the guest's rip for the error line"},
    {KVM_GET_SREGS, "KVM internal error: CS base and mode, to make rip a linear address"},
    {KVM_TRANSLATE, "KVM internal error: rip's guest physical address, to show its bytes"},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the SIGSYS handler: async-signal-safe, everything it prints is prepared beforehand ---- */

#define SYSCALL_NAMES 512
static const char *syscall_names[SYSCALL_NAMES];
static _Thread_local const char *thread_kind = "main";

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char buf[256], num[12];
	int nr = si->si_syscall;
	unsigned u = nr < 0 ? 0 : (unsigned)nr;
	size_t n = sizeof(num);
	num[--n] = 0;
	do {
		num[--n] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n);
	const char *name =
	    nr >= 0 && nr < SYSCALL_NAMES && syscall_names[nr] ? syscall_names[nr] : "?";
	size_t at = put(buf, 0, sizeof(buf), "vmm: seccomp: thread ");
	at = put(buf, at, sizeof(buf), thread_kind);
	at = put(buf, at, sizeof(buf), " made a forbidden system call ");
	at = put(buf, at, sizeof(buf), name);
	at = put(buf, at, sizeof(buf), " (");
	at = put(buf, at, sizeof(buf), num + n);
	at = put(buf, at, sizeof(buf),
		 "); this is a vmm bug, please report it (--seccomp=off to debug)\n");
	ssize_t w = write(STDERR_FILENO, buf, at);
	(void)w;
	syscall(SYS_exit_group, VMM_EXIT_FAILURE);
}

static const char *test_kind; /* VMM_SECCOMP_TEST, read during setup */

int sandbox_drop_privileges(struct verr *e)
{
	for (int nr = 0; nr < SYSCALL_NAMES; nr++)
		syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	test_kind = getenv("VMM_SECCOMP_TEST");

	struct sigaction sa = {.sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return verr_set(e, -errno, "sandbox: sigaction (SIGSYS) failed: %s",
				strerror(errno));

	capng_get_caps_process();
	bool bounds = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_apply(bounds ? CAPNG_SELECT_ALL : CAPNG_SELECT_BOTH) < 0)
		return verr_set(e, -EPERM, "sandbox: cannot drop capabilities (capng_apply)");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return verr_set(e, -errno, "sandbox: prctl (PR_SET_NO_NEW_PRIVS) failed: %s",
				strerror(errno));
	return 0;
}

static int add_rules(scmp_filter_ctx ctx, const struct sc_rule *r, size_t n, struct verr *e)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(r[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not a system call on this architecture (e.g. newer libc paths)
				   */
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (rc < 0)
			return verr_set(e, rc, "sandbox: seccomp_rule_add (%s): %s", r[i].name,
					strerror(-rc));
	}
	return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const struct ioctl_rule *r, size_t n, struct verr *e)
{
	for (size_t i = 0; i < n; i++) {
		int rc = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		    SCMP_CMP(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)(uint32_t)r[i].req));
		if (rc < 0)
			return verr_set(e, rc, "sandbox: seccomp_rule_add (ioctl %#lx): %s",
					r[i].req, strerror(-rc));
	}
	return 0;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int sandbox_enter(enum sandbox_kind kind, struct verr *e)
{
	thread_kind = kind == SANDBOX_MAIN ? "main" : kind == SANDBOX_VCPU ? "vcpu" : "session";
	long long t0 = now_ns();
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return verr_set(e, -ENOMEM, "sandbox: seccomp_init failed");
	int r = add_rules(ctx, common_rules, ARRAY_LEN(common_rules), e);
	if (r == 0 && kind == SANDBOX_MAIN) {
		r = add_rules(ctx, main_rules, ARRAY_LEN(main_rules), e);
		if (r == 0)
			r = add_ioctls(ctx, main_ioctls, ARRAY_LEN(main_ioctls), e);
		/* vsock: guest -> host connections open Unix sockets, nothing else */
		if (r == 0) {
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
			if (r < 0)
				verr_set(e, r, "sandbox: seccomp_rule_add (socket): %s",
					 strerror(-r));
		}
	} else if (r == 0 && kind == SANDBOX_SESSION) {
		r = add_rules(ctx, session_rules, ARRAY_LEN(session_rules), e);
		if (r == 0)
			r = add_ioctls(ctx, session_ioctls, ARRAY_LEN(session_ioctls), e);
	} else if (r == 0) {
		r = add_ioctls(ctx, vcpu_ioctls, ARRAY_LEN(vcpu_ioctls), e);
	}
	if (r == 0) {
		r = seccomp_load(ctx);
		if (r < 0)
			verr_set(e, r, "sandbox: seccomp_load (%s thread): %s", thread_kind,
				 strerror(-r));
	}
	seccomp_release(ctx);
	if (r < 0)
		return r;
	/* start-up cost of the sandbox, per thread (--verbose) */
	vmm_debug("sandbox: %s thread: filter installed in %.3f ms", thread_kind,
		  (double)(now_ns() - t0) / 1e6);
	if (test_kind && strcmp(test_kind, thread_kind) == 0) {
		/* test hook: a call no list allows; the handler names it and ends vmm */
		struct utsname u;
		syscall(SYS_uname, &u);
	}
	return 0;
}
