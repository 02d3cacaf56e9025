/* The VM's lifecycle as a state machine, and nothing else: which request is allowed in which
 * state, and the state it leads to. vm.c applies it (docs/api.md has the same table).
 *
 *   created --start--> running --pause--> paused --resume--> running
 *   created, running, paused --stop--> stopping --finished--> stopped
 *   created, running, paused --finished--> stopped   (the guest ended, or vmm failed)
 */
#ifndef VMM_LIFECYCLE_H
#define VMM_LIFECYCLE_H

#include "vmm/log.h"

enum vm_state {
	VM_CREATED, /* devices open, kernel loaded, vCPUs made, not running */
	VM_RUNNING,
	VM_PAUSED,   /* every vCPU parked outside KVM_RUN, devices quiet, guest clock held */
	VM_STOPPING, /* a stop was asked: the process is being told, or the VM is being forced */
	VM_STOPPED,  /* the vCPUs are gone; vmm is about to exit */
	VM_STATES
};

enum vm_event {
	VM_EV_START,
	VM_EV_PAUSE,
	VM_EV_RESUME,
	VM_EV_STOP,
	VM_EV_FINISHED, /* the VM has ended (not a request: the guest or vmm ended it) */
	VM_EVENTS
};

const char *vm_state_name(enum vm_state s);
const char *vm_event_name(enum vm_event ev);

/* The state `ev` leads to from `from`, in *to. Returns 0, or -EBUSY when the event is not
 * allowed in that state (-EALREADY for a stop of a VM already stopping or stopped), with one
 * line in e such as "resume: the VM is running, not paused". */
int vm_transition(enum vm_state from, enum vm_event ev, enum vm_state *to, struct verr *e);

#endif
