/* The sandbox: capabilities dropped, no_new_privs, and one seccomp allow-list per thread kind,
 * installed after setup and before the thread handles anything the guest controls.
 * See docs/security.md for the threat model and the allow-lists. */
#ifndef VMM_SANDBOX_H
#define VMM_SANDBOX_H

#include "vmm/log.h"

#include <stdbool.h>

enum sandbox_kind {
	SANDBOX_MAIN,	 /* the main thread: event loop, device back-ends, teardown */
	SANDBOX_VCPU,	 /* a vCPU thread: KVM_RUN and the exits it dispatches */
	SANDBOX_SESSION, /* a container's session thread: stdio <-> the agent socket */
	SANDBOX_FS,	 /* a virtio-fs worker thread: FUSE requests on the shared directory */
	SANDBOX_KINDS,
};

/* What the virtio-fs worker threads ask to keep (sandbox_drop_privileges's fs argument). */
enum {
	SANDBOX_FS_OWNERS = 1, /* CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_SETUID,
				* CAP_SETGID: there is a share, requests run as the guest's ids */
	SANDBOX_FS_MKNOD = 2,  /* CAP_MKNOD too: a share allows device nodes (with OWNERS only) */
};

/* Drops every capability of the calling thread (effective, permitted, inheritable, ambient, and
 * the bounding set when CAP_SETPCAP allows it), sets PR_SET_NO_NEW_PRIVS, and installs the SIGSYS
 * handler that names a forbidden system call (from a name table generated with the filters).
 * With fs & SANDBOX_FS_OWNERS and all six of that set in the permitted set (vmm runs as root or
 * was given them), that set (with CAP_MKNOD for SANDBOX_FS_MKNOD, when held) stays in the
 * permitted set only, the bounding set is cut to it, and CAP_SETPCAP stays effective when held
 * (for sandbox_drop_fs_caps); otherwise nothing is kept. Says which at debug level. Call once on
 * the main thread after setup and before any other thread is created; then create the virtio-fs
 * workers (each calls sandbox_fs_thread_enter), then call sandbox_drop_fs_caps, then create the
 * other threads, which inherit nothing. Reads VMM_SECCOMP_TEST (test hook, see sandbox_enter).
 * Returns 0 or a negative errno with e set. */
int sandbox_drop_privileges(unsigned fs, struct verr *e);

/* Whether sandbox_drop_privileges kept the workers' set: the FUSE servers then run each request
 * as its uid and gid (fuse_server_set_credentials). */
bool sandbox_fs_credentials(void);

/* On a virtio-fs worker thread, before its filter: raises the kept set into the thread's
 * effective set (only CAP_SETUID and CAP_SETGID while its fsuid is not 0: the kernel raises the
 * rest when a request's fsuid is 0) and drops its supplementary groups. Nothing when nothing was
 * kept. Returns 0 or a negative errno with e set. */
int sandbox_fs_thread_enter(struct verr *e);

/* On the main thread once the virtio-fs workers exist: clears its permitted set and, where it
 * kept CAP_SETPCAP for it, its bounding set, so the threads created next hold nothing. Nothing
 * when nothing was kept. Returns 0 or a negative errno with e set. */
int sandbox_drop_fs_caps(struct verr *e);

/* Installs the seccomp allow-list of KIND on the calling thread only (no thread
 * synchronisation: each kind installs its own): the classic BPF program compiled from
 * vmm/sandbox/sandbox_rules.c when vmm was built (vmm/sandbox/sandbox_filters.h), handed to
 * seccomp(2) as it is; nothing is compiled at run time. Threads created afterwards inherit it. Any
 * system call outside the list raises SIGSYS; the handler writes one line naming it and exits
 * the whole process with status 125. When VMM_SECCOMP_TEST names this KIND ("main", "vcpu",
 * "session" or "fs") the thread then makes a forbidden call on purpose (the integration tests'
 * proof that the filter is live; it can only kill vmm). Returns 0 or a negative errno with e set.
 */
int sandbox_enter(enum sandbox_kind kind, struct verr *e);

#endif
