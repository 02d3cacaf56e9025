/* The seccomp allow-lists (one per thread kind, every entry with its reason) and their
 * compilation with libseccomp. Built into the build-time generator and the unit test, not into
 * vmm (vmm/sandbox/sandbox_rules.h).
 *
 * The lists are what `strace -f` showed after each thread's filter over the integration suite
 * (every device, exit and signal path), plus the calls of paths the suite does not reach
 * (virtio-blk's synchronous fallback, malloc growth, error paths), each named in its entry. No
 * rule depends on anything known only when vmm runs (fds, flags, the build type, the test hook):
 * a list is the same program in every vmm built from this file. */
#include "vmm/sandbox/sandbox_rules.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/kvm.h>

/* Both kinds: the vCPU threads run the MMIO/PIO handlers (device register writes, resets,
 * serial output, logging), the main thread runs the device back-ends. */
const struct sc_rule sandbox_common_rules[] = {
    {"read", "eventfds, TAP, console input, vsock sockets"},
    {"write", "eventfds (irqfd, stop), console and log output, TAP, sockets"},
    {"readv", "TAP frames"},
    {"writev", "TAP frames, vsock payloads"},
    {"close", "vsock connections, device reset, teardown"},
    {"epoll_ctl", "devices (un)register fds with the event loop"},
    {"sendmsg", "vsock host sockets"},
    {"sendto", "send(2) on vsock host sockets"},
    {"recvfrom", "recv(2) on vsock host sockets"},
    {"shutdown", "vsock half-close"},
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

/* The device back ends' own calls, one list per device type of the device table
 * (vmm/config/device_table.c names each by its `sandbox` field; the unit test checks both sides
 * match). They are added to the main and vCPU kinds, where device code runs: the back ends on the
 * event loop, register writes and resets on the vCPUs. A list may be empty: that device's back end
 * needs nothing beyond the common calls. */
static const struct sc_rule blk_rules[] = {
    {"io_uring_enter", "virtio-blk submissions and completions"},
    {"preadv", "virtio-blk: synchronous fallback (step_sync)"},
    {"pwritev", "virtio-blk: synchronous fallback (step_sync)"},
    {"fdatasync", "virtio-blk: synchronous FLUSH fallback"},
    {"fallocate", "virtio-blk: synchronous DISCARD / WRITE_ZEROES fallback"},
};
static const struct sc_rule rng_rules[] = {
    {"getrandom", "virtio-rng (and json-c's hash seed on the main thread)"},
};

#if VMM_SANDBOX_SANITIZER
/* Sanitizer builds only (meson -Db_sanitize=..., the build-asan vmm): calls the ASan/UBSan
 * runtime makes on its own in every thread, chosen when the filters are built like the rest.
 * Not here: LeakSanitizer's check at exit, which stops the process with clone and ptrace (and
 * gettid, prctl) and must never be allowed; the ASan vmm runs under seccomp with
 * ASAN_OPTIONS=detect_leaks=0, or checks leaks with --seccomp=off. */
static const struct sc_rule sanitizer_rules[] = {
    {"sigaltstack", "ASan: a thread's alternate signal stack is unset when the thread exits"},
};
#endif

/* The main thread only: the event loop, vsock host connections, teardown. */
static const struct sc_rule main_rules[] = {
    {"epoll_wait", "the event loop"},
    {"accept4", "vsock: host connections on the listening socket"},
    {"connect", "vsock: guest -> host connections to PATH_PORT"},
    {"getsockopt", "virtio-net: SO_ERROR of a failed back-end fd (fd_error)"},
    {"unlink", "vsock and the control API: remove the listening sockets at exit"},
    {"unlinkat", "the control API's socket removed through its directory (--enter-rootfs)"},
    {"timerfd_settime", "the control API's stop: the deadline before the VM is forced off"},
    {"pwrite64", "--metrics FILE: the metrics written at exit (the file is opened before); "
		 "snapshot: the state and memory files"},
    {"ftruncate", "--metrics FILE: the file cut to the new metrics' length; snapshot's files"},
    {"recvmsg", "the control API: requests, with snapshot's file descriptors (SCM_RIGHTS)"},
    {"fcntl", "snapshot: the passed files' access mode (F_GETFL)"},
    {"fdatasync", "snapshot: the state and memory files synced before the reply"},
};

static const struct ioctl_rule main_ioctls[] = {
    {KVM_IRQ_LINE, "serial interrupt after console input"},
    {KVM_GET_CLOCK, "pause: the guest's kvmclock, held while paused"},
    {KVM_SET_CLOCK, "resume: the kvmclock set back, so the guest does not see the pause"},
    {TCSETS, "console: tcsetattr(TCSANOW) restores the terminal at exit"},
    {TCGETS, "console: glibc's tcsetattr reads the terminal back after TCSETS"},
    /* snapshot of the paused VM (vmm/snapshot/vm_snapshot.c): only reads of KVM's state */
    {KVM_GET_CPUID2, "snapshot: each vCPU's CPUID"},
    {KVM_GET_MP_STATE, "snapshot: each vCPU's MP state"},
    {KVM_GET_REGS, "snapshot: each vCPU's registers"},
    {KVM_GET_SREGS, "snapshot: each vCPU's special registers"},
    {KVM_GET_XCRS, "snapshot: each vCPU's XCRs"},
    {KVM_GET_DEBUGREGS, "snapshot: each vCPU's debug registers"},
    {KVM_GET_LAPIC, "snapshot: each vCPU's local APIC"},
    {KVM_GET_VCPU_EVENTS, "snapshot: each vCPU's pending events"},
    {KVM_GET_XSAVE, "snapshot: each vCPU's XSAVE area"},
    {KVM_GET_XSAVE2, "snapshot: each vCPU's XSAVE area, where larger than 4 KiB"},
    {KVM_CHECK_EXTENSION, "snapshot: KVM_CAP_XSAVE2, the XSAVE area's size"},
    {KVM_GET_MSR_INDEX_LIST, "snapshot: the MSRs KVM lists"},
    {KVM_GET_MSRS, "snapshot: each vCPU's MSRs"},
    {KVM_GET_IRQCHIP, "snapshot: the PICs and the IOAPIC"},
    {KVM_GET_PIT2, "snapshot: the PIT"},
};

/* The container session thread (vmm/session.c): its poll loop, on top of the common list. */
static const struct sc_rule session_rules[] = {
    {"poll", "waits on the agent socket, stdin and the signal pipe"},
    {"ppoll", "the same, where the C library implements poll with ppoll"},
};

static const struct ioctl_rule session_ioctls[] = {
    {TIOCGWINSZ, "the terminal's size for the container's pty (START, SIGWINCH)"},
};

/* A virtio-fs worker thread (devices/virtio_fs.c): the FUSE passthrough server
 * (devices/fuse_server.c) on the shared directory, on top of the common list (read/write,
 * futex for the device and server locks, close, malloc). Every path it gives the kernel is one
 * component relative to a descriptor it holds (or /proc/self/fd/N for its own N). No socket,
 * no ioctl, no exec, no mount; no capset or setgroups (the thread takes its capabilities and drops
 * its groups before its filter) and no set*uid other than the per-thread fsuid/fsgid. */
static const struct sc_rule fs_rules[] = {
    {"mremap", "realloc of a large block: the inode and handle tables grow past 128 KiB"},
    {"openat", "LOOKUP (O_PATH|O_NOFOLLOW), CREATE, OPEN and OPENDIR (through /proc/self/fd)"},
    {"newfstatat", "LOOKUP, GETATTR and every reply's attributes (fstat/fstatat)"},
    {"fstatfs", "STATFS"},
    {"readlinkat", "READLINK"},
    {"symlinkat", "SYMLINK"},
    {"linkat", "LINK"},
    {"mknodat", "MKNOD (FIFOs, sockets, regular files)"},
    {"mkdirat", "MKDIR"},
    {"unlinkat", "UNLINK, RMDIR"},
    {"renameat", "RENAME (glibc's renameat2 without flags)"},
    {"renameat2", "RENAME2 (NOREPLACE, EXCHANGE)"},
    {"fchmod", "SETATTR mode on an open file"},
    {"fchmodat", "SETATTR mode (through /proc/self/fd)"},
    {"fchownat", "SETATTR uid/gid (AT_EMPTY_PATH)"},
    {"utimensat", "SETATTR atime/mtime"},
    {"ftruncate", "SETATTR size, OPEN/CREATE with O_TRUNC"},
    {"fallocate", "FALLOCATE"},
    {"lseek", "LSEEK (SEEK_DATA/SEEK_HOLE), readdir offsets (seekdir)"},
    {"copy_file_range", "COPY_FILE_RANGE"},
    {"preadv", "READ: from the file straight into the guest's buffers"},
    {"pwritev", "WRITE: from the guest's buffers straight into the file"},
    {"fsync", "FSYNC, FSYNCDIR"},
    {"fdatasync", "FSYNC with FUSE_FSYNC_FDATASYNC"},
    {"getdents64", "READDIR, READDIRPLUS"},
    {"fcntl", "fdopendir checks the descriptor's flags"},
    {"fgetxattr", "GETXATTR"},
    {"fsetxattr", "SETXATTR"},
    {"flistxattr", "LISTXATTR"},
    {"fremovexattr", "REMOVEXATTR"},
    {"faccessat", "ACCESS"},
    {"faccessat2", "ACCESS (glibc's faccessat with flags)"},
    {"setfsuid", "each request runs as its uid, and back (per thread; -1 reads it back)"},
    {"setfsgid", "each request runs as its gid, and back (per thread; -1 reads it back)"},
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

const size_t sandbox_common_rules_len = ARRAY_LEN(sandbox_common_rules);
#if VMM_SANDBOX_SANITIZER
const struct sc_rule *const sandbox_sanitizer_rules = sanitizer_rules;
const size_t sandbox_sanitizer_rules_len = ARRAY_LEN(sanitizer_rules);
#else
const struct sc_rule *const sandbox_sanitizer_rules = NULL;
const size_t sandbox_sanitizer_rules_len = 0;
#endif

const struct sandbox_rules sandbox_rules[SANDBOX_KINDS] = {
    [SANDBOX_MAIN] = {"main", main_rules, ARRAY_LEN(main_rules), main_ioctls,
		      ARRAY_LEN(main_ioctls), true, true},
    [SANDBOX_VCPU] = {"vcpu", NULL, 0, vcpu_ioctls, ARRAY_LEN(vcpu_ioctls), false, true},
    [SANDBOX_SESSION] = {"session", session_rules, ARRAY_LEN(session_rules), session_ioctls,
			 ARRAY_LEN(session_ioctls), false, false},
    [SANDBOX_FS] = {"fs", fs_rules, ARRAY_LEN(fs_rules), NULL, 0, false, false},
};

/* net and vsock need only the common calls (read/write/readv/writev, send/recv on sockets) and
 * the main thread's (accept4, connect, getsockopt). */
const struct sandbox_device_rules sandbox_device_rules[] = {
    {"blk", blk_rules, ARRAY_LEN(blk_rules)},
    {"net", NULL, 0},
    {"vsock", NULL, 0},
    /* fs: the FUSE work runs on its own thread (SANDBOX_FS); the main and vCPU threads only wake
     * it and reset or destroy it (futex, close, munmap: common calls). */
    {"fs", NULL, 0},
    {"rng", rng_rules, ARRAY_LEN(rng_rules)},
};
const size_t sandbox_device_rules_len = ARRAY_LEN(sandbox_device_rules);

static int add_rules(scmp_filter_ctx ctx, const struct sc_rule *r, size_t n, struct verr *e)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(r[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not a system call on this architecture */
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

int sandbox_rules_filter(enum sandbox_kind kind, scmp_filter_ctx *out, struct verr *e)
{
	if ((unsigned)kind >= SANDBOX_KINDS)
		return verr_set(e, -EINVAL, "sandbox: no thread kind %d", (int)kind);
	const struct sandbox_rules *k = &sandbox_rules[kind];
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return verr_set(e, -ENOMEM, "sandbox: seccomp_init failed");
	/* the order of the additions is part of the program: keep it */
	int r = add_rules(ctx, sandbox_common_rules, sandbox_common_rules_len, e);
	if (r == 0)
		r = add_rules(ctx, sandbox_sanitizer_rules, sandbox_sanitizer_rules_len, e);
	if (r == 0)
		r = add_rules(ctx, k->calls, k->ncalls, e);
	for (size_t i = 0; r == 0 && k->devices && i < sandbox_device_rules_len; i++)
		r = add_rules(ctx, sandbox_device_rules[i].calls, sandbox_device_rules[i].ncalls,
			      e);
	if (r == 0)
		r = add_ioctls(ctx, k->ioctls, k->nioctls, e);
	/* vsock: guest -> host connections open Unix sockets, nothing else */
	if (r == 0 && k->unix_socket) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
		if (r < 0)
			verr_set(e, r, "sandbox: seccomp_rule_add (socket): %s", strerror(-r));
	}
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

int sandbox_rules_export(enum sandbox_kind kind, struct sock_filter **insns, size_t *len,
			 struct verr *e)
{
	scmp_filter_ctx ctx;
	int r = sandbox_rules_filter(kind, &ctx, e);
	if (r < 0)
		return r;
	int fd = memfd_create("vmm-seccomp-bpf", MFD_CLOEXEC);
	if (fd < 0) {
		r = verr_set(e, -errno, "sandbox: memfd_create failed: %s", strerror(errno));
		seccomp_release(ctx);
		return r;
	}
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0) {
		close(fd);
		return verr_set(e, r, "sandbox: seccomp_export_bpf (%s): %s",
				sandbox_rules[kind].name, strerror(-r));
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = verr_set(e, -errno, "sandbox: fstat (memfd) failed: %s", strerror(errno));
		close(fd);
		return r;
	}
	size_t size = (size_t)st.st_size;
	if (size == 0 || size % sizeof(struct sock_filter) ||
	    size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		close(fd);
		return verr_set(e, -EINVAL,
				"sandbox: %s: libseccomp exported %zu bytes, not a program",
				sandbox_rules[kind].name, size);
	}
	struct sock_filter *p = malloc(size);
	if (!p) {
		close(fd);
		return verr_set(e, -ENOMEM, "sandbox: out of memory");
	}
	ssize_t n = pread(fd, p, size, 0);
	if (n != (ssize_t)size) {
		r = n < 0
			? verr_set(e, -errno, "sandbox: pread (memfd) failed: %s", strerror(errno))
			: verr_set(e, -EIO, "sandbox: pread (memfd): %zd of %zu bytes", n, size);
		free(p);
		close(fd);
		return r;
	}
	close(fd);
	*insns = p;
	*len = size / sizeof(struct sock_filter);
	return 0;
}
