/* The virtual machine: KVM handles, guest memory, vCPUs, devices, and how it stops. Built in one
 * ordered recipe (vm_create, vm_load), run by vm_run, ended by vm_request_stop. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include "devices/guest_signal_dev.h"
#include "devices/i8042.h"
#include "devices/serial_8250.h"
#include "vmm/bus.h"
#include "vmm/console.h"
#include "vmm/eventloop.h"
#include "vmm/loader.h"
#include "vmm/mmio_devices.h"
#include "vmm/log.h"
#include "vmm/memory.h"
#include "vmm/options.h"
#include "vmm/session.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* Exit status when vmm itself, or the guest kernel, failed (podman and docker use 125 too). */
#define VMM_EXIT_FAILURE 125

enum vm_stop_reason {
	VM_RUNNING = 0,
	VM_STOP_GUEST_RESET,  /* i8042 reset or a KVM system event: the guest rebooted */
	VM_STOP_TRIPLE_FAULT, /* KVM_EXIT_SHUTDOWN */
	VM_STOP_ERROR,	      /* a KVM or vCPU failure, already logged */
	VM_STOP_SIGNAL,	      /* SIGTERM/SIGINT/SIGHUP to vmm */
};

struct vm;

/* The phase timeline of vmm's own start-up (--boot-timer): each step of the recipe, in order,
 * with the time it ended, in ms after vmm start. Marked by the main thread; read by the vCPU
 * thread that reports it (nphases is published with release order after each entry). */
#define VM_PHASES_MAX 20
struct vm_phase {
	const char *name;
	double ms;
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
};

struct vm {
	int kvm_fd, vm_fd;
	struct guest_mem mem;
	struct kernel_image kernel;
	unsigned ncpus;
	struct vcpu *vcpus;
	struct bus pio, mmio;

	struct serial8250 serial;
	struct i8042 i8042;
	struct guest_signal_dev gsig;
	struct console console;
	struct event_loop el;
	struct mmio_devices virtio;

	atomic_int stop_reason; /* enum vm_stop_reason: the first stop request wins */
	int stop_signal;
	int stop_efd; /* written by vm_request_stop to wake the event loop */
	struct ev_handler stop_h, sig_h;
	int sig_fd;

	/* written by vCPU threads through the guest-signal port */
	atomic_bool boot_done;
	atomic_bool process_started;
	atomic_int guest_status; /* -1 until the guest announces one */

	struct timespec t_start;
	bool boot_timer;
	bool seccomp; /* install the seccomp allow-lists (not --seccomp=off) */
	atomic_bool first_run_seen;
	double first_run_ms;
	bool container;		/* the agent runs a command (vmm/session.c) */
	struct session session; /* its host end, when container */
	bool entry_trap;	/* vCPU 0 has a hardware breakpoint on the kernel entry */
	double kernel_entry_ms; /* when it fired (0: not seen) */
	bool kvm_pvm;		/* /dev/kvm is kvm_pvm on a CPU without VT-x/SVM (vm_kvm_init) */
	struct vm_phase phases[VM_PHASES_MAX];
	atomic_uint nphases;
	double vcpu0_filter_ms; /* vCPU 0's seccomp filter installed (its thread, before running) */
};

/* Builds the machine in order: guest memory; kernel, initrd, command line and boot structures
 * (input checked before KVM is touched); then /dev/kvm, the in-kernel irqchip and PIT, devices,
 * vCPUs and the boot vCPU's registers. Returns 0, or a negative errno with e saying which step
 * (and ioctl) failed. */
int vm_create(struct vm *vm, const struct vmm_options *o, const struct timespec *t_start,
	      struct verr *e);

/* Runs the vCPU threads and the event loop on the calling thread until the VM stops. Returns the
 * exit status vmm should end with. */
int vm_run(struct vm *vm);

/* Asks the VM to stop; callable from any thread, the first reason is kept. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason why);

void vm_destroy(struct vm *vm);

double vm_elapsed_ms(const struct vm *vm);

/* Marks the end of start-up phase `name` (a string literal) now: main thread only, in order. */
void vm_phase(struct vm *vm, const char *name);

/* The timeline as one line, "name ms, name ms, ...", ending with vCPU 0's filter and first
 * KVM_RUN when they happened. Returns the length needed, like snprintf. */
size_t vm_phases_format(const struct vm *vm, char *buf, size_t cap);

/* vcpu.c */
int vcpu_start(struct vcpu *v);
void vcpu_kick_and_join(struct vcpu *v);

/* arch (vm_x86_64.c) */
int arch_vm_init(struct vm *vm, struct verr *e);
int arch_vcpu_init(struct vm *vm, struct vcpu *v, struct verr *e);
int arch_vcpu_set_boot_regs(struct vm *vm, struct vcpu *v, const struct kernel_image *k,
			    struct verr *e);
int arch_devices_init(struct vm *vm, struct verr *e);
/* With --boot-timer: a hardware breakpoint on the kernel's entry point (an identity-mapped
 * address in both boot paths), so vmm can time the guest kernel's first instruction. Returns 0
 * or a negative errno (then there is no such timing). arch_vcpu_clear_entry_trap removes it. */
int arch_vcpu_set_entry_trap(struct vcpu *v, uint64_t entry);
int arch_vcpu_clear_entry_trap(struct vcpu *v);
/* Handles an exit the generic loop does not know (port I/O on x86). Returns 0 to keep running,
 * 1 when the exit reason is not an arch one, or a negative errno to stop with an error. */
int arch_vcpu_handle_exit(struct vcpu *v);
/* Where a vCPU that KVM stopped with an internal error was: fills f->rip (have_rip) from its
 * registers and, when that address translates in the guest's page tables, f->gpa and
 * f->gpa_span (have_gpa). Returns 0, or the negative errno of the ioctl that failed (named in
 * f->failed_ioctl, with f->err; what was found before it stays filled). Used on the vCPU's own
 * thread, under its seccomp list. */
struct vcpu_fault;
int arch_vcpu_fault_addr(struct vcpu *v, struct vcpu_fault *f);
/* The host, probed once when /dev/kvm has opened (vm_kvm_init). Whether the CPU has hardware
 * virtualisation (VT-x or SVM), from CPUID: it needs neither /proc nor /sys, which are absent
 * inside vmm-jail. */
bool arch_host_has_hw_virt(void);
/* Whether KVM is known to be kvm_pvm (software, pagetable-based virtualisation); false when
 * unknown (no /sys). */
bool arch_kvm_is_pvm(void);

#endif
