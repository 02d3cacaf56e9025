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

/* Drops every capability of the calling thread (effective, permitted, inheritable, and the
 * bounding set when CAP_SETPCAP allows it), sets PR_SET_NO_NEW_PRIVS, and installs the SIGSYS
 * handler that names a forbidden system call (from a name table generated with the filters). Call
 * once on the main thread after setup and before any other thread is created, so the threads
 * inherit the dropped capabilities. Reads VMM_SECCOMP_TEST (test hook, see sandbox_enter). Returns
 * 0 or a negative errno with e set. */
int sandbox_drop_privileges(struct verr *e);

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
