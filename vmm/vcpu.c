/* vCPU threads: each one loops on KVM_RUN and dispatches exits. A stop or a pause sets
 * immediate_exit and signals the thread (SIGUSR1), so KVM_RUN returns at once wherever the thread
 * is; outside the running state the thread parks on the VM's gate (created, paused) until the
 * state changes or the VM stops. */
#include "vmm/sandbox/sandbox.h"
#include "vmm/vcpu_fault.h"
#include "vmm/vm.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>

static const char *exit_reason_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_UNKNOWN:
		return "UNKNOWN";
	case KVM_EXIT_EXCEPTION:
		return "EXCEPTION";
	case KVM_EXIT_HYPERCALL:
		return "HYPERCALL";
	case KVM_EXIT_DEBUG:
		return "DEBUG";
	case KVM_EXIT_FAIL_ENTRY:
		return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR:
		return "INTERNAL_ERROR";
	default:
		return "unhandled";
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;
	if (len == 0 || len > sizeof(run->mmio.data))
		return;
	bus_dispatch(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

/* KVM_EXIT_INTERNAL_ERROR: one line with the guest's rip and the instruction bytes there. */
static void report_internal_error(struct vcpu *v)
{
	struct vcpu_fault f = {
	    .vcpu = v->id,
	    .suberror = v->run->internal.suberror,
	    .kvm_pvm = v->vm->kvm_pvm,
	};
	/* a failed ioctl is named in f and so in the line */
	(void)arch_vcpu_fault_addr(v, &f);
	vcpu_fault_read_bytes(&f, &v->vm->mem);
	char line[512];
	vcpu_fault_format(&f, line, sizeof(line));
	vmm_log("%s", line);
}

/* The guest runs while the VM is running or stopping (a graceful stop needs the guest). */
static bool vcpus_may_run(int state)
{
	return state == VM_RUNNING || state == VM_STOPPING;
}

/* Waits while the VM is created or paused. Returns false when the VM is stopping. */
static bool park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->gate_lock);
	vm->nparked++;
	pthread_cond_broadcast(&vm->parked_cond);
	while (!vcpus_may_run(atomic_load(&vm->state)) &&
	       atomic_load(&vm->stop_reason) == VM_STOP_NONE)
		pthread_cond_wait(&vm->gate_cond, &vm->gate_lock);
	vm->nparked--;
	pthread_mutex_unlock(&vm->gate_lock);
	v->run->immediate_exit = 0;
	return atomic_load(&vm->stop_reason) == VM_STOP_NONE;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	struct verr e = {0};
	if (vm->seccomp && sandbox_enter(SANDBOX_VCPU, &e) < 0) {
		vmm_log("vcpu %u: %s", v->id, e.msg);
		vm_request_stop(vm, VM_STOP_ERROR);
		return NULL;
	}
	if (v->id == 0 && vm->seccomp)
		vm->vcpu0_filter_ms = vm_elapsed_ms(vm);

	while (atomic_load(&vm->stop_reason) == VM_STOP_NONE) {
		if (!vcpus_may_run(atomic_load_explicit(&vm->state, memory_order_acquire)) &&
		    !park(v))
			break;
		if (v->id == 0 && !atomic_exchange(&vm->first_run_seen, true))
			vm->first_run_ms = vm_elapsed_ms(vm);
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			vmm_log("vcpu %u: ioctl (KVM_RUN) failed: %s", v->id, strerror(errno));
			vm_request_stop(vm, VM_STOP_ERROR);
			break;
		}
		struct kvm_run *run = v->run;
		atomic_fetch_add_explicit(
		    &v->exits[run->exit_reason < VCPU_EXIT_REASONS ? run->exit_reason
								   : VCPU_EXIT_REASONS - 1],
		    1, memory_order_relaxed);
		switch (run->exit_reason) {
		case KVM_EXIT_MMIO:
			handle_mmio(v);
			continue;
		case KVM_EXIT_SHUTDOWN:
			vm_request_stop(vm, VM_STOP_TRIPLE_FAULT);
			continue;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_request_stop(vm, VM_STOP_GUEST_RESET);
			continue;
		case KVM_EXIT_HLT:
			/* With the in-kernel irqchip HLT stays in KVM; this is a halted
			 * uniprocessor guest with nothing left to do. */
			vm_request_stop(vm, VM_STOP_GUEST_RESET);
			continue;
		case KVM_EXIT_INTR:
		case KVM_EXIT_IRQ_WINDOW_OPEN:
			continue;
		case KVM_EXIT_DEBUG:
			if (v->id == 0 && vm->entry_trap) {
				/* the boot timer's breakpoint on the kernel entry: once */
				vm->kernel_entry_ms = vm_elapsed_ms(vm);
				vm->entry_trap = false;
				if (arch_vcpu_clear_entry_trap(v) < 0) {
					vmm_log("vcpu 0: ioctl (KVM_SET_GUEST_DEBUG) failed: %s",
						strerror(errno));
					vm_request_stop(vm, VM_STOP_ERROR);
				}
				continue;
			}
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vmm_log("vcpu %u: KVM_RUN entry failed (hardware reason 0x%llx)", v->id,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			vm_request_stop(vm, VM_STOP_ERROR);
			continue;
		case KVM_EXIT_INTERNAL_ERROR:
			report_internal_error(v);
			vm_request_stop(vm, VM_STOP_ERROR);
			continue;
		default:
			break;
		}
		int r = arch_vcpu_handle_exit(v);
		if (r == 0)
			continue;
		if (r > 0)
			vmm_log("vcpu %u: unhandled KVM exit %u (%s)", v->id, run->exit_reason,
				exit_reason_name(run->exit_reason));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (r)
		return -r;
	v->thread_started = true;
	return 0;
}

struct timespec vcpu_kick_deadline(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 10 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	v->run->immediate_exit = 1;
	pthread_kill(v->thread, SIGUSR1);
}

void vcpu_kick_and_join(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	/* immediate_exit covers the window between the stop check and entering KVM_RUN; the
	 * signal covers a thread already inside it. Repeat until the thread is gone. */
	for (;;) {
		vcpu_kick(v);
		struct timespec ts = vcpu_kick_deadline();
		if (pthread_timedjoin_np(v->thread, NULL, &ts) == 0)
			break;
	}
	v->thread_started = false;
}
