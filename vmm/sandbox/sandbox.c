/* The sandbox: no capabilities, no_new_privs, and a seccomp allow-list per thread kind.
 *
 * Order (vm_run): setup opens every file, device and socket the VM needs; then the main thread
 * drops its capabilities and sets no_new_privs (sandbox_drop_privileges) before any other thread
 * exists, so the vCPU threads inherit both; each vCPU thread installs the vCPU list on itself
 * before its first KVM_RUN; the main thread installs the main list after the vCPU threads are
 * created (so they do not inherit the wider main list) and before its event loop runs, i.e.
 * before it reads anything the guest controls. No TSYNC: the two kinds differ.
 *
 * The lists, each entry with its reason, are in vmm/sandbox/sandbox_rules.c. They are compiled to
 * classic BPF when vmm is built (vmm/sandbox/gen-seccomp-filters.c, libseccomp's own compiler), so
 * a thread installs a ready program with one seccomp(2) call: no libseccomp in vmm, no filter
 * compiled at run time. A call outside a list traps (SECCOMP_RET_TRAP, not a silent kill) so the
 * SIGSYS handler can name it on stderr; then the whole process exits with 125. */
#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/sandbox_filters.h"
#include "vmm/vm.h"

#include <cap-ng.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

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
	syscall(SYS_exit_group, VMM_EXIT_FAILURE);
}

static const char *test_kind; /* VMM_SECCOMP_TEST, read during setup */

int sandbox_drop_privileges(struct verr *e)
{
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
