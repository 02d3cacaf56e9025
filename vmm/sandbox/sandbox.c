/* The sandbox: no capabilities (but the virtio-fs workers' own), no_new_privs, and a seccomp
 * allow-list per thread kind.
 *
 * Order (vm_run): setup opens every file, device and socket the VM needs; then the main thread
 * drops its capabilities and sets no_new_privs (sandbox_drop_privileges) before any other thread
 * exists, keeping in its permitted set only (effective empty, the bounding set cut to it) the
 * virtio-fs workers' set when there is a share and vmm holds that set; the workers are created
 * next, inherit it, and raise it into their effective set (sandbox_fs_thread_enter); then the
 * main thread clears what it kept (sandbox_drop_fs_caps) before the vCPU and session threads
 * exist, so those inherit nothing. Capabilities are per thread in Linux (capget/capset with pid
 * 0, the calling thread, and PR_CAPBSET_DROP act on one thread), which is what makes this work;
 * the raw system calls are used here so that nothing acts on another thread or the process. Each
 * vCPU thread installs the vCPU list on itself before its first KVM_RUN; the main thread installs
 * the main list after the other threads are created (so they do not inherit the wider main list)
 * and before its event loop runs, i.e. before it reads anything the guest controls. No TSYNC:
 * the kinds differ.
 *
 * The lists, each entry with its reason, are in vmm/sandbox/sandbox_rules.c. They are compiled to
 * classic BPF when vmm is built (vmm/sandbox/gen-seccomp-filters.c, libseccomp's own compiler), so
 * a thread installs a ready program with one seccomp(2) call: no libseccomp in vmm, no filter
 * compiled at run time. A call outside a list traps (SECCOMP_RET_TRAP, not a silent kill) so the
 * SIGSYS handler can name it on stderr; then the whole process exits with 125. */
#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/sandbox_filters.h"
#include "vmm/vm.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/seccomp.h>

/* ---- the SIGSYS handler: async-signal-safe, everything it prints is prepared beforehand ---- */

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
	char buf[256], num[12];
	int nr = si->si_syscall;
	unsigned u = nr < 0 ? 0 : (unsigned)nr;
	size_t n = sizeof(num);
	num[--n] = 0;
	do {
		num[--n] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n);
	const char *name = nr >= 0 && nr < SANDBOX_SYSCALL_NAMES && sandbox_syscall_names[nr]
			       ? sandbox_syscall_names[nr]
			       : "?";
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
#if defined(__x86_64__)
	/* A forbidden open names its file, which tells who called it (glibc's time zone, locale or
	 * unwinder files, say). Said after the line above: the pointer is the caller's and valid in
	 * practice, but a bad one would end the process here, with the call already named. */
	const ucontext_t *ctx = uc;
	const char *path = nr == SYS_openat ? (const char *)ctx->uc_mcontext.gregs[REG_RSI]
			   : nr == SYS_open ? (const char *)ctx->uc_mcontext.gregs[REG_RDI]
					    : NULL;
	if (path) {
		at = put(buf, 0, sizeof(buf), "vmm: seccomp: the file it opened: ");
		at = put(buf, at, sizeof(buf) - 1, path);
		buf[at++] = '\n';
		w = write(STDERR_FILENO, buf, at);
		(void)w;
	}
#else
	(void)uc;
#endif
	syscall(SYS_exit_group, VMM_EXIT_FAILURE);
}

static const char *test_kind; /* VMM_SECCOMP_TEST, read during setup */

/* ---- capabilities, per thread ---- */

#define BIT(c) (1ull << (c))
/* What a virtio-fs worker keeps: owners, permission bypass (the guest's root acts as root),
 * setuid/setgid bits kept on chmod and write, and setfsuid/setfsgid. */
#define FS_CAPS                                                                       \
	(BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FOWNER) | BIT(CAP_FSETID) | \
	 BIT(CAP_SETUID) | BIT(CAP_SETGID))
/* The ones the kernel drops from the effective set when the fsuid leaves 0 and raises from the
 * permitted set when it comes back (the kernel's CAP_FS_SET, those of them a worker holds). */
#define FS_FSUID_CAPS                                                                 \
	(BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FOWNER) | BIT(CAP_FSETID) | \
	 BIT(CAP_MKNOD))

struct caps {
	uint64_t eff, prm, inh;
};

/* The calling thread's sets (pid 0: this thread, not the process). */
static int caps_get(struct caps *c)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2] = {{0}};
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
	c->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static int caps_set(const struct caps *c)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2] = {
	    {(uint32_t)c->eff, (uint32_t)c->prm, (uint32_t)c->inh},
	    {(uint32_t)(c->eff >> 32), (uint32_t)(c->prm >> 32), (uint32_t)(c->inh >> 32)},
	};
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* Cuts the calling thread's bounding set to keep (needs CAP_SETPCAP in its effective set). */
static int bounding_limit(uint64_t keep)
{
	for (int c = 0; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
		if (!(keep & BIT(c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return -errno;
	return 0;
}

static uint64_t fs_kept; /* the set the workers hold; 0: none (requests as vmm's uid) */
static bool fs_bounding; /* the main thread kept CAP_SETPCAP to empty its bounding set later */

static void caps_names(uint64_t set, char *buf, size_t cap)
{
	static const struct {
		int c;
		const char *name;
	} names[] = {{CAP_CHOWN, "CHOWN"},   {CAP_DAC_OVERRIDE, "DAC_OVERRIDE"},
		     {CAP_FOWNER, "FOWNER"}, {CAP_FSETID, "FSETID"},
		     {CAP_SETUID, "SETUID"}, {CAP_SETGID, "SETGID"},
		     {CAP_MKNOD, "MKNOD"}};
	size_t at = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((set & BIT(names[i].c)) && at < cap)
			at += (size_t)snprintf(buf + at, cap - at, "%sCAP_%s", at ? " " : "",
					       names[i].name);
}

int sandbox_drop_privileges(unsigned fs, struct verr *e)
{
	test_kind = getenv("VMM_SECCOMP_TEST");

	struct sigaction sa = {.sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return verr_set(e, -errno, "sandbox: sigaction (SIGSYS) failed: %s",
				strerror(errno));

	struct caps cur = {0};
	int r = caps_get(&cur);
	if (r < 0)
		return verr_set(e, r, "sandbox: capget failed: %s", strerror(-r));
	bool setpcap = cur.eff & BIT(CAP_SETPCAP);
	uint64_t keep = 0;
	char names[160];
	if (fs & SANDBOX_FS_OWNERS) {
		if ((cur.prm & FS_CAPS) == FS_CAPS) {
			keep = FS_CAPS;
			if ((fs & SANDBOX_FS_MKNOD) && (cur.prm & BIT(CAP_MKNOD)))
				keep |= BIT(CAP_MKNOD);
			else if (fs & SANDBOX_FS_MKNOD)
				vmm_debug("virtio-fs: vmm has no CAP_MKNOD: a share's device nodes "
					  "(dev) fail with EPERM");
			caps_names(keep, names, sizeof(names));
			vmm_debug("virtio-fs: the worker threads keep %s; requests run as the "
				  "guest's uid and gid",
				  names);
		} else {
			caps_names(FS_CAPS & ~cur.prm, names, sizeof(names));
			vmm_debug("virtio-fs: vmm lacks %s: requests run as vmm's own uid %u and "
				  "gid %u, whoever the guest's user is",
				  names, (unsigned)geteuid(), (unsigned)getegid());
		}
	}
	fs_kept = keep;
	fs_bounding = keep && setpcap;
	/* The bounding set first, while CAP_SETPCAP is effective: emptied, or cut to the workers'
	 * set (then the main thread empties its own later, sandbox_drop_fs_caps). */
	if (setpcap && (r = bounding_limit(keep)) < 0)
		return verr_set(e, r, "sandbox: cannot drop capabilities (PR_CAPBSET_DROP): %s",
				strerror(-r));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); /* none before Linux 4.3 */
	uint64_t pcap = fs_bounding ? BIT(CAP_SETPCAP) : 0;
	struct caps c = {.eff = pcap, .prm = keep | pcap, .inh = 0};
	if ((r = caps_set(&c)) < 0)
		return verr_set(e, r, "sandbox: cannot drop capabilities (capset): %s",
				strerror(-r));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return verr_set(e, -errno, "sandbox: prctl (PR_SET_NO_NEW_PRIVS) failed: %s",
				strerror(errno));
	return 0;
}

bool sandbox_fs_credentials(void)
{
	return fs_kept != 0;
}

int sandbox_fs_thread_enter(struct verr *e)
{
	if (!fs_kept)
		return 0;
	/* With a non-zero fsuid (vmm not root, but holding the set) the file system capabilities
	 * stay off until a request's fsuid is 0: the kernel raises them then and drops them after,
	 * so only the guest's root acts with them. */
	uint64_t eff = fs_kept;
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != 0)
		eff &= ~FS_FSUID_CAPS;
	struct caps c = {.eff = eff, .prm = fs_kept, .inh = 0};
	int r = caps_set(&c);
	if (r < 0)
		return verr_set(e, r,
				"sandbox: fs thread: cannot raise its capabilities (capset): %s",
				strerror(-r));
	/* FUSE carries no supplementary groups: the worker keeps none of vmm's, so a request's
	 * fsgid is its only group. The raw call changes this thread only (glibc's setgroups
	 * changes every thread). */
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		return verr_set(e, -errno, "sandbox: fs thread: setgroups (none) failed: %s",
				strerror(errno));
	return 0;
}

int sandbox_drop_fs_caps(struct verr *e)
{
	if (!fs_kept)
		return 0;
	int r = fs_bounding ? bounding_limit(0) : 0;
	if (r < 0)
		return verr_set(e, r,
				"sandbox: cannot empty the bounding set (PR_CAPBSET_DROP): %s",
				strerror(-r));
	struct caps none = {0};
	if ((r = caps_set(&none)) < 0)
		return verr_set(e, r,
				"sandbox: cannot drop the virtio-fs capabilities (capset): %s",
				strerror(-r));
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
	if ((unsigned)kind >= SANDBOX_KINDS)
		return verr_set(e, -EINVAL, "sandbox: no thread kind %d", (int)kind);
	const struct sandbox_filter *f = &sandbox_filters[kind];
	thread_kind = f->name;
	long long t0 = now_ns();
	/* What seccomp_load did with the same program: flags 0 (no TSYNC, no log), after
	 * no_new_privs (sandbox_drop_privileges). The kernel copies the program; it is not
	 * written through this pointer. */
	struct sock_fprog prog = {.len = f->len, .filter = (struct sock_filter *)f->insns};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return verr_set(e, -errno,
				"sandbox: seccomp (SET_MODE_FILTER, %s thread) failed: %s",
				thread_kind, strerror(errno));
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
