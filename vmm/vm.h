/* The virtual machine: KVM handles, guest memory, vCPUs, devices, its lifecycle state and how it
 * stops. Built from a machine description (vmm/config/config.h) in one ordered recipe (vm_create:
 * the `created` state), run by vm_run (started at once, or on the API's `start` with --paused),
 * paused and resumed by vm_pause/vm_resume, ended by vm_request_stop. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include "devices/guest_signal_dev.h"
#include "devices/i8042.h"
#include "devices/serial_8250.h"
#include "vmm/bus.h"
#include "vmm/console.h"
#include "vmm/eventloop.h"
#include "vmm/loader/loader.h"
#include "vmm/mmio_devices.h"
#include "vmm/log.h"
#include "vmm/memory.h"
#include "vmm/config/config.h"
#include "vmm/lifecycle.h"
#include "vmm/session.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* Exit status when vmm itself, or the guest kernel, failed (podman and docker use 125 too). */
#define VMM_EXIT_FAILURE 125

enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_GUEST_RESET,  /* i8042 reset or a KVM system event: the guest rebooted */
	VM_STOP_TRIPLE_FAULT, /* KVM_EXIT_SHUTDOWN */
	VM_STOP_ERROR,	      /* a KVM or vCPU failure, already logged */
	VM_STOP_SIGNAL,	      /* SIGTERM/SIGINT/SIGHUP to vmm */
	VM_STOP_FORCED,	      /* the API's stop: its timeout passed, or the VM was not running */
};

/* Exit status after a forced stop: as if SIGKILL had ended the process (docker stop's). */
#define VMM_EXIT_FORCED (128 + 9)

/* Counted per vCPU for the metrics: KVM exit reasons below this. */
#define VCPU_EXIT_REASONS 64

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
	_Atomic uint64_t exits[VCPU_EXIT_REASONS]; /* KVM exits by reason (others in the last) */
};

struct api_server;
struct vm_restore;

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
	struct event_loop el;	  /* the main thread's loop: control (signals, stop, the API) */
	struct event_loop dev_el; /* the devices' loop, nested in el: left out while paused */
	struct ev_handler dev_h;
	bool dev_watched;
	struct mmio_devices virtio;
	const struct vm_config *cfg;
	uint64_t initrd_gpa, initrd_size;

	/* The lifecycle (vmm/lifecycle.h). state is changed on the main thread only (under
	 * gate_lock, with gate_cond broadcast); vCPU threads run while it is VM_RUNNING and park in
	 * vcpu_park otherwise, counted in nparked. */
	atomic_int state;
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;   /* the state changed, or a stop was asked */
	pthread_cond_t parked_cond; /* nparked changed */
	unsigned nparked;
	struct kvm_clock_data paused_clock; /* kvmclock when paused: set back on resume */
	bool clock_saved;
	double start_ms; /* `start` (or the immediate start): ms after vmm start */
	double pause_ms; /* the last pause, resume: how long each took (for the benchmark) */
	double resume_ms;
	int stop_timer_fd; /* the graceful stop's deadline */
	int metrics_fd;	   /* --metrics FILE, opened before the sandbox */
	int event_efd;	   /* a vCPU saw something for the main thread (process start) */
	struct ev_handler event_h;
	struct ev_handler stop_timer_h;
	struct api_server *api;
	struct kvm_cpuid2 *cpuid;   /* x86: KVM_GET_SUPPORTED_CPUID, once (arch_vm_init) */
	struct vm_restore *restore; /* --restore: the snapshot being loaded (vm_snapshot.h) */
	bool restored;		    /* the VM is a snapshot's: its queues are kicked once it runs */
	/* Called once by vm_run when the VM is ready for clients (created or running, the API
	 * listening, every thread up), or failed before that (status < 0): --detach's report. */
	void (*on_ready)(void *opaque, int status);
	void *ready_opaque;

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
	bool container;			  /* the agent runs a command (vmm/session.c) */
	struct session session;		  /* its host end, when container */
	bool entry_trap;		  /* vCPU 0 has a hardware breakpoint on the kernel entry */
	double kernel_entry_ms;		  /* when it fired (0: not seen) */
	double init_ms, process_start_ms; /* the guest's BOOT_DONE and PROCESS_START (0: not yet) */
	bool kvm_pvm; /* /dev/kvm is kvm_pvm on a CPU without VT-x/SVM (vm_kvm_init) */
	struct vm_phase phases[VM_PHASES_MAX];
	atomic_uint nphases;
	double vcpu0_filter_ms; /* vCPU 0's seccomp filter installed (its thread, before running) */
};

/* Builds the machine in order: guest memory; kernel, initrd, command line and boot structures
 * (input checked before KVM is touched); then /dev/kvm, the in-kernel irqchip and PIT, devices,
 * vCPUs and the boot vCPU's registers. Returns 0, or a negative errno with e saying which step
 * (and ioctl) failed. */
int vm_create(struct vm *vm, const struct vm_config *c, const struct timespec *t_start,
	      struct verr *e);

/* Runs the vCPU threads and the event loop on the calling thread until the VM stops. Returns the
 * exit status vmm should end with. */
int vm_run(struct vm *vm);

/* Asks the VM to stop; callable from any thread, the first reason is kept. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason why);

/* The lifecycle requests (the control API's), on the main thread. Each returns 0, or a negative
 * errno with one line in e: -EBUSY/-EALREADY when the state does not allow it (lifecycle.h),
 * another errno when KVM failed. */
int vm_start(struct vm *vm, struct verr *e);
/* Stops every vCPU outside KVM_RUN (waits for all to park), takes the devices' loop out of the
 * event loop and saves the guest's kvmclock. */
int vm_pause(struct vm *vm, struct verr *e);
/* Sets the kvmclock back to its paused value (the guest does not see the paused time), puts the
 * devices back and lets the vCPUs run. */
int vm_resume(struct vm *vm, struct verr *e);
/* A graceful stop: a container's process gets SIGTERM through the agent and the VM is forced off
 * after timeout_ms; a VM that is not running (created, paused) or has no agent is forced off at
 * once. The VM's end is reported by vm_run's return. */
int vm_stop(struct vm *vm, unsigned timeout_ms, struct verr *e);
/* Sends signal sig (1-64) to the container's main process through the agent. */
int vm_signal(struct vm *vm, int sig, struct verr *e);
enum vm_state vm_state(const struct vm *vm);

/* The API's `state` reply ({"v":1,"ok":true,"state",...}, docs/api.md) and the metrics object
 * (vmm/api/metrics.h), on the main thread. NULL only when out of memory. */
struct json_object *vm_state_json(struct vm *vm);
struct json_object *vm_metrics_json(struct vm *vm);
/* --metrics FILE: the metrics written at exit. */
void vm_write_metrics(struct vm *vm);

void vm_destroy(struct vm *vm);

double vm_elapsed_ms(const struct vm *vm);

/* Marks the end of start-up phase `name` (a string literal) now: main thread only, in order. */
void vm_phase(struct vm *vm, const char *name);

/* The timeline as one line, "name ms, name ms, ...", ending with vCPU 0's filter and first
 * KVM_RUN when they happened. Returns the length needed, like snprintf. */
size_t vm_phases_format(const struct vm *vm, char *buf, size_t cap);

/* vcpu.c */
int vcpu_start(struct vcpu *v);
/* Kicks a vCPU out of KVM_RUN (immediate_exit and SIGUSR1) without waiting. */
void vcpu_kick(struct vcpu *v);
/* 10 ms from now on CLOCK_REALTIME: how long to wait for a kicked vCPU before kicking again. */
struct timespec vcpu_kick_deadline(void);
void vcpu_kick_and_join(struct vcpu *v);

/* arch (vm_x86_64.c) */
/* The guest's RAM layout for `bytes` of memory (gaps for the platform's MMIO). */
unsigned arch_memory_layout(uint64_t bytes, struct guest_region out[GUEST_MEM_MAX_REGIONS]);
/* The boot structures in guest memory (zero page, MP table... on x86) for the loaded kernel,
 * vm->initrd_gpa/size and the final command line. */
int arch_boot_setup(struct vm *vm, const char *cmdline, struct verr *e);
/* After every vCPU exists: the boot vCPU's registers (x86); an interrupt controller that needs
 * its vCPUs first goes here too (the GIC on aarch64). */
int arch_vcpus_ready(struct vm *vm, struct verr *e);
int arch_vm_init(struct vm *vm, struct verr *e);
/* Frees what arch_vm_init kept (safe on a VM that failed before it). */
void arch_vm_destroy(struct vm *vm);
int arch_vcpu_init(struct vm *vm, struct vcpu *v, struct verr *e);
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
