/* The lifecycle table (lifecycle.h). */
#include "vmm/lifecycle.h"

#include <errno.h>

static const char *const state_names[VM_STATES] = {"created", "running", "paused", "stopping",
						   "stopped"};
static const char *const event_names[VM_EVENTS] = {"start", "pause", "resume", "stop", "finished"};

/* next[from][ev]: the state it leads to, or VM_STATES when refused */
static const enum vm_state next[VM_STATES][VM_EVENTS] = {
    [VM_CREATED] = {VM_RUNNING, VM_STATES, VM_STATES, VM_STOPPING, VM_STOPPED},
    [VM_RUNNING] = {VM_STATES, VM_PAUSED, VM_STATES, VM_STOPPING, VM_STOPPED},
    [VM_PAUSED] = {VM_STATES, VM_STATES, VM_RUNNING, VM_STOPPING, VM_STOPPED},
    [VM_STOPPING] = {VM_STATES, VM_STATES, VM_STATES, VM_STATES, VM_STOPPED},
    [VM_STOPPED] = {VM_STATES, VM_STATES, VM_STATES, VM_STATES, VM_STATES},
};

/* What a refused request needed, for its error line. */
static const char *const needs[VM_EVENTS] = {"created (not yet started)", "running", "paused",
					     "created, running or paused", "not yet stopped"};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < VM_STATES ? state_names[s] : "?";
}

const char *vm_event_name(enum vm_event ev)
{
	return (unsigned)ev < VM_EVENTS ? event_names[ev] : "?";
}

int vm_transition(enum vm_state from, enum vm_event ev, enum vm_state *to, struct verr *e)
{
	if ((unsigned)from >= VM_STATES || (unsigned)ev >= VM_EVENTS)
		return verr_set(e, -EINVAL, "no such state or event (%d, %d)", (int)from, (int)ev);
	enum vm_state n = next[from][ev];
	if (n == VM_STATES) {
		bool already = ev == VM_EV_STOP && (from == VM_STOPPING || from == VM_STOPPED);
		return verr_set(e, already ? -EALREADY : -EBUSY, "%s: the VM is %s%s%s",
				event_names[ev], state_names[from], already ? "" : ", not ",
				already ? " already" : needs[ev]);
	}
	*to = n;
	return 0;
}
