/* The lifecycle state machine (vmm/lifecycle.c): every state x event pair, allowed or refused,
 * against the table docs/api.md gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/lifecycle.h"

#include <errno.h>
#include <string.h>

#define NO VM_STATES /* refused */

/* The expected table, written out independently of lifecycle.c's. */
static const enum vm_state want[VM_STATES][VM_EVENTS] = {
    /*              start       pause      resume      stop         finished */
    [VM_CREATED] = {VM_RUNNING, NO, NO, VM_STOPPING, VM_STOPPED},
    [VM_RUNNING] = {NO, VM_PAUSED, NO, VM_STOPPING, VM_STOPPED},
    [VM_PAUSED] = {NO, NO, VM_RUNNING, VM_STOPPING, VM_STOPPED},
    [VM_STOPPING] = {NO, NO, NO, NO, VM_STOPPED},
    [VM_STOPPED] = {NO, NO, NO, NO, NO},
};

static void every_pair(void **state)
{
	(void)state;
	for (int s = 0; s < VM_STATES; s++)
		for (int ev = 0; ev < VM_EVENTS; ev++) {
			enum vm_state to = (enum vm_state)99;
			struct verr e = {0};
			int r = vm_transition((enum vm_state)s, (enum vm_event)ev, &to, &e);
			if (want[s][ev] == NO) {
				int code = ev == VM_EV_STOP && (s == VM_STOPPING || s == VM_STOPPED)
					       ? -EALREADY
					       : -EBUSY;
				if (r != code)
					fail_msg("%s from %s: got %d, want %d", vm_event_name(ev),
						 vm_state_name(s), r, code);
				assert_int_equal(to, 99); /* untouched */
				/* one line naming the request and the state */
				assert_non_null(strstr(e.msg, vm_event_name(ev)));
				assert_non_null(strstr(e.msg, vm_state_name(s)));
				assert_null(strchr(e.msg, '\n'));
			} else {
				if (r != 0 || to != want[s][ev])
					fail_msg("%s from %s: got %d -> %d, want %s",
						 vm_event_name(ev), vm_state_name(s), r, to,
						 vm_state_name(want[s][ev]));
			}
		}
}

static void messages(void **state)
{
	(void)state;
	enum vm_state to;
	struct verr e = {0};
	assert_int_equal(vm_transition(VM_RUNNING, VM_EV_RESUME, &to, &e), -EBUSY);
	assert_string_equal(e.msg, "resume: the VM is running, not paused");
	assert_int_equal(vm_transition(VM_STOPPING, VM_EV_STOP, &to, &e), -EALREADY);
	assert_string_equal(e.msg, "stop: the VM is stopping already");
	assert_int_equal(vm_transition(VM_RUNNING, VM_EV_START, &to, &e), -EBUSY);
	assert_string_equal(e.msg, "start: the VM is running, not created (not yet started)");
	/* out of range values are refused, not indexed */
	assert_int_equal(vm_transition((enum vm_state)7, VM_EV_START, &to, &e), -EINVAL);
	assert_int_equal(vm_transition(VM_CREATED, (enum vm_event)9, &to, &e), -EINVAL);
	assert_string_equal(vm_state_name((enum vm_state)42), "?");
	assert_string_equal(vm_event_name(VM_EV_FINISHED), "finished");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_pair),
	    cmocka_unit_test(messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
