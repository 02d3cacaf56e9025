/* Building, running, pausing and stopping the VM: the one ordered recipe (memory, kernel, KVM,
 * irqchip, devices, boot data, vCPUs) from the machine description, the lifecycle requests, and
 * the main thread's event loop, in which the devices' loop is nested. */
#include "vmm/vm.h"
#include "vmm/snapshot/vm_snapshot.h"
#include "vmm/api/api.h"
#include "vmm/api/api_proto.h"
#include "vmm/arch/boot_x86_64.h" /* BOOT_CMDLINE_MAX */
#include "vmm/config/device_table.h"
#include "vmm/api/metrics.h"
#include "vmm/runtime_stdio.h"
#include "vmm/loader/cmdline.h"
#include "guest/agent_proto.h"
#include "vmm/loader/agent_blob.h"
#include "vmm/sandbox/sandbox.h"
#include "vmm/volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

double vm_elapsed_ms(const struct vm *vm)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - vm->t_start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - vm->t_start.tv_nsec) / 1e6;
}

void vm_phase(struct vm *vm, const char *name)
{
	unsigned n = atomic_load_explicit(&vm->nphases, memory_order_relaxed);
	if (n >= VM_PHASES_MAX)
		return;
	vm->phases[n] = (struct vm_phase){name, vm_elapsed_ms(vm)};
	atomic_store_explicit(&vm->nphases, n + 1, memory_order_release);
}

size_t vm_phases_format(const struct vm *vm, char *buf, size_t cap)
{
	unsigned n = atomic_load_explicit(&vm->nphases, memory_order_acquire);
	size_t at = 0;
	if (cap)
		buf[0] = '\0';
	for (unsigned i = 0; i < n; i++)
		str_appendf(buf, cap, &at, "%s%s %.3f", i ? ", " : "", vm->phases[i].name,
			    vm->phases[i].ms);
	if (vm->vcpu0_filter_ms > 0)
		str_appendf(buf, cap, &at, ", vcpu0-seccomp %.3f", vm->vcpu0_filter_ms);
	if (vm->first_run_ms > 0)
		str_appendf(buf, cap, &at, ", first-KVM_RUN %.3f", vm->first_run_ms);
	return at;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason why)
{
	int expected = VM_STOP_NONE;
	if (!atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)why))
		return;
	uint64_t one = 1;
	if (write(vm->stop_efd, &one, sizeof(one)) < 0) {
		/* eventfd writes of 1 do not fail short of overflow */
	}
	/* parked vCPUs (created, paused) wake up and leave */
	pthread_mutex_lock(&vm->gate_lock);
	pthread_cond_broadcast(&vm->gate_cond);
	pthread_mutex_unlock(&vm->gate_lock);
}

/* ---- device callbacks ---- */

static void serial_set_irq(void *opaque, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = SERIAL_COM1_IRQ, .level = (uint32_t)level};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
		static struct log_ratelimit rl;
		vmm_log_ratelimited(&rl, 1, "serial: ioctl (KVM_IRQ_LINE) failed: %s",
				    strerror(errno));
	}
}

static void serial_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct vm *vm = opaque;
	console_output(&vm->console, buf, len);
}

static void serial_rx_space_cb(void *opaque)
{
	struct vm *vm = opaque;
	console_rx_space(&vm->console);
}

static const struct serial_ops vm_serial_ops = {
    .set_irq = serial_set_irq,
    .output = serial_output,
    .rx_space = serial_rx_space_cb,
};

static void i8042_reset(void *opaque)
{
	vm_request_stop(opaque, VM_STOP_GUEST_RESET);
}

static void guest_signal_event(void *opaque, unsigned code, unsigned arg)
{
	struct vm *vm = opaque;
	switch (code) {
	case GUEST_SIGNAL_BOOT_DONE:
		if (atomic_exchange(&vm->boot_done, true))
			return;
		vm->init_ms = vm_elapsed_ms(vm);
		if (vm->boot_timer) {
			char line[1024];
			vm_phases_format(vm, line, sizeof(line));
			vmm_info("boot-timer: vmm phases (ms after vmm start): %s", line);
		}
		if (vm->boot_timer && vm->kernel_entry_ms > 0)
			vmm_info("boot-timer: guest init reached %.3f ms after vmm start (first "
				 "KVM_RUN at %.3f ms, kernel entry at %.3f ms)",
				 vm->init_ms, vm->first_run_ms, vm->kernel_entry_ms);
		else if (vm->boot_timer) /* the entry breakpoint did not fire (nested SVM) */
			vmm_info("boot-timer: guest init reached %.3f ms after vmm start (first "
				 "KVM_RUN at %.3f ms)",
				 vm->init_ms, vm->first_run_ms);
		return;
	case GUEST_SIGNAL_PROCESS_START:
		if (atomic_exchange(&vm->process_started, true))
			return;
		vm->process_start_ms = vm_elapsed_ms(vm);
		if (write(vm->event_efd, &(uint64_t){1}, 8) < 0) {
			/* an eventfd write of 1 does not fail short of overflow */
		}
		if (vm->boot_timer && vm->start_ms > 0 && vm->cfg->paused)
			vmm_info("boot-timer: guest process about to start %.3f ms after vmm start "
				 "(%.3f ms after start)",
				 vm->process_start_ms, vm->process_start_ms - vm->start_ms);
		else if (vm->boot_timer)
			vmm_info("boot-timer: guest process about to start %.3f ms after vmm start",
				 vm->process_start_ms);
		return;
	case GUEST_SIGNAL_EXIT_STATUS:
		atomic_store(&vm->guest_status, (int)(arg & 0xff));
		return;
	default: {
		static struct log_ratelimit rl;
		vmm_log_ratelimited(&rl, 3, "guest-signal: unknown code 0x%02x ignored", code);
		return;
	}
	}
}

static int devices_init(struct vm *vm, const struct vm_config *c, struct verr *e)
{
	serial_init(&vm->serial, &vm_serial_ops, vm);
	vm->i8042 = (struct i8042){i8042_reset, vm};
	vm->gsig = (struct guest_signal_dev){guest_signal_event, vm};
	int r = bus_register(&vm->pio, SERIAL_COM1_PORT, SERIAL_PORT_LEN, serial_io, &vm->serial);
	if (r == 0)
		r = bus_register(&vm->pio, I8042_DATA_PORT, I8042_PORT_LEN, i8042_io, &vm->i8042);
	if (r == 0)
		r = bus_register(&vm->pio, GUEST_SIGNAL_PORT, GUEST_SIGNAL_PORT_LEN,
				 guest_signal_io, &vm->gsig);
	if (r < 0)
		return verr_set(e, r, "cannot register the legacy devices: %s", strerror(-r));
	r = arch_devices_init(vm, e);
	if (r == 0)
		r = mmio_devices_create(&vm->virtio, c, &vm->mem, vm->vm_fd, &vm->mmio, &vm->dev_el,
					e);
	if (r < 0 || !vm->container)
		return r;
	/* The agent connects to host port AGENT_VSOCK_PORT once at boot: that connection is the
	 * session's socketpair. --api-sock connections go to the agent's listening port. */
	struct session_cmd cmd = session_cmd_of(&c->process, c->stdio);
	r = session_init(&vm->session, &cmd, e);
	if (r < 0)
		return r;
	virtio_vsock_set_host_port(vm->virtio.vsock, AGENT_VSOCK_PORT, session_guest_fd,
				   &vm->session);
	return 0;
}

/* ---- creation ---- */

static int vcpus_create(struct vm *vm, struct verr *e)
{
	int mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run))
		return verr_set(e, -errno, "ioctl (KVM_GET_VCPU_MMAP_SIZE) failed: %s",
				strerror(errno));
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return verr_set(e, -ENOMEM, "out of memory for %u vCPUs", vm->ncpus);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->id = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (v->fd < 0)
			return verr_set(e, -errno, "vcpu %u: ioctl (KVM_CREATE_VCPU) failed: %s", i,
					strerror(errno));
		v->run_size = (size_t)mmap_size;
		v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			return verr_set(e, -errno, "vcpu %u: mmap of kvm_run failed: %s", i,
					strerror(errno));
		}
		int r = arch_vcpu_init(vm, v, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int vm_memory_init(struct vm *vm, const struct vm_config *c, struct verr *e)
{
	struct guest_region layout[GUEST_MEM_MAX_REGIONS];
	unsigned nr = arch_memory_layout(c->memory_mib << 20, layout);
	int r = guest_mem_init(&vm->mem, layout, nr);
	if (r < 0)
		return verr_set(e, r, "cannot map %llu MiB of guest memory: %s",
				(unsigned long long)c->memory_mib, strerror(-r));
	return 0;
}

static int vm_boot_data(struct vm *vm, const struct vm_config *c, bool planned, struct verr *e);

/* Kernel and initrd: all input files are checked here, before /dev/kvm is touched, so bad input
 * fails fast and the same way with or without KVM. */
static int vm_load(struct vm *vm, const struct vm_config *c, struct verr *e)
{
	int r = kernel_load(&vm->mem, c->kernel, &vm->kernel, e);
	if (r < 0)
		return r;
	vm_phase(vm, "kernel");
	if (c->initrd) {
		r = initrd_load(&vm->mem, c->initrd, &vm->kernel, &vm->initrd_gpa, &vm->initrd_size,
				e);
		if (r < 0)
			return r;
		vm_phase(vm, "initrd");
	}
#ifndef VMM_HAVE_AGENT
	if (c->container)
		return verr_set(e, -ENOTSUP,
				"this vmm was built without the guest agent (-Dguest=false): "
				"containers need it; rebuild with -Dguest=true");
#else
	if (c->container) {
		/* The archive is part of vmm's file: one readahead for it rather than a page fault
		 * (and, from a cold or network file system, a read) per page. */
		uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t lo = (uintptr_t)vmm_agent_initramfs & ~(page - 1);
		madvise((void *)lo, (uintptr_t)vmm_agent_initramfs_end - lo, MADV_WILLNEED);
		r = initrd_load_mem(&vm->mem, vmm_agent_initramfs,
				    (size_t)(vmm_agent_initramfs_end - vmm_agent_initramfs),
				    &vm->kernel, &vm->initrd_gpa, &vm->initrd_size, e);
		if (r < 0)
			return r;
		vm_phase(vm, "agent-initrd");
	}
#endif
	return vm_boot_data(vm, c, true, e);
}

/* The kernel command line and the boot structures. Written once before /dev/kvm is opened, with
 * the slots the devices will take (so a command line too long fails before anything else), and
 * again once they are attached, from the slots they actually have. */
static int vm_boot_data(struct vm *vm, const struct vm_config *c, bool planned, struct verr *e)
{
	static char cmdline[BOOT_CMDLINE_MAX];
	if (cmdline_build(cmdline, sizeof(cmdline), CMDLINE_DEFAULT, c->cmdline) < 0)
		return verr_set(e, -E2BIG, "--cmdline is too long (limit %llu bytes)",
				BOOT_CMDLINE_MAX - 1);
	if (c->container && cmdline_add(cmdline, sizeof(cmdline), c->agent_cmdline) < 0)
		return verr_set(e, -E2BIG, "--cmdline is too long (limit %llu bytes)",
				BOOT_CMDLINE_MAX - 1);
	if (mmio_devices_cmdline(planned ? c->ndevices : vm->virtio.n, cmdline, sizeof(cmdline)) <
	    0)
		return verr_set(e, -E2BIG,
				"the kernel command line has no room left for the virtio devices "
				"(%u slots max): shorten --cmdline",
				MMIO_DEVICES_MAX);
	if (!planned)
		vmm_debug("kernel command line: %s", cmdline);
	int r = arch_boot_setup(vm, cmdline, e);
	if (r == 0 && !planned)
		vm_phase(vm, "boot-data");
	return r;
}

static int vm_kvm_init(struct vm *vm, const struct vm_config *c, struct verr *e)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return verr_set(e, -errno,
				"cannot open /dev/kvm: %s: vmm needs KVM (load kvm-intel or "
				"kvm-amd, and give this user access to /dev/kvm)",
				strerror(errno));
	/* A /dev/kvm without hardware virtualisation (kvm_pvm) creates VMs but stops this guest
	 * kernel with an internal error: say so up front, once. */
	if (!arch_host_has_hw_virt()) {
		vm->kvm_pvm = arch_kvm_is_pvm();
		vmm_log(
		    "warning: /dev/kvm works but this CPU has no VT-x/SVM%s: the guest kernel "
		    "may stop with a KVM internal error; tests/nested/with-kvm.sh runs it in the "
		    "nested harness",
		    vm->kvm_pvm ? " (KVM here is kvm_pvm, software virtualisation)" : "");
	}
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return verr_set(e, -ENOTSUP, "KVM API version %d, vmm needs %d", api,
				KVM_API_VERSION);
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
	    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
	    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
			return verr_set(e, -ENOTSUP, "this KVM lacks %s", caps[i].name);
	int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus > 0 && c->cpus > (unsigned)max_vcpus)
		return verr_set(e, -EINVAL, "--cpus %u: this host's KVM allows at most %d vCPUs",
				c->cpus, max_vcpus);

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return verr_set(e, -errno, "ioctl (KVM_CREATE_VM) failed: %s", strerror(errno));
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region mr = {
		    .slot = i,
		    .guest_phys_addr = vm->mem.region[i].gpa,
		    .memory_size = vm->mem.region[i].size,
		    .userspace_addr = (uint64_t)(uintptr_t)vm->mem.region[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
			return verr_set(e, -errno,
					"ioctl (KVM_SET_USER_MEMORY_REGION) slot %u failed: %s", i,
					strerror(errno));
	}
	vm_phase(vm, "kvm-vm");
	int r = arch_vm_init(vm, e);
	if (r < 0)
		return r;
	vm_phase(vm, "irqchip");

	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0)
		return verr_set(e, -errno, "eventfd failed: %s", strerror(errno));
	vm->event_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->event_efd < 0)
		return verr_set(e, -errno, "eventfd failed: %s", strerror(errno));
	vm->stop_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->stop_timer_fd < 0)
		return verr_set(e, -errno, "timerfd_create failed: %s", strerror(errno));
	r = ev_init(&vm->el);
	if (r == 0)
		r = ev_init(&vm->dev_el);
	if (r < 0)
		return verr_set(e, r, "epoll_create1 failed: %s", strerror(-r));
	r = devices_init(vm, c, e);
	if (r < 0)
		return r;
	vm_phase(vm, "devices");
	if (!vm->restore) {
		r = vm_boot_data(vm, c, false, e);
		if (r < 0)
			return r;
	}
	r = vcpus_create(vm, e);
	if (r < 0)
		return r;
	vm_phase(vm, "vcpus");
	if (vm->restore) {
		r = vm_restore_state(vm, e);
		if (r == 0)
			vm_phase(vm, "restore");
		return r;
	}
	r = arch_vcpus_ready(vm, e);
	if (r == 0 && c->boot_timer) {
		int t = arch_vcpu_set_entry_trap(&vm->vcpus[0], vm->kernel.entry);
		vm->entry_trap = t == 0;
		if (t < 0)
			vmm_debug("no kernel-entry timing: KVM_SET_GUEST_DEBUG: %s", strerror(-t));
	}
	if (r == 0)
		vm_phase(vm, "boot-regs");
	return r;
}

int vm_create(struct vm *vm, const struct vm_config *c, const struct timespec *t_start,
	      struct verr *e)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->sig_fd = vm->stop_timer_fd = -1;
	vm->metrics_fd = vm->event_efd = -1;
	vm->el.epfd = vm->dev_el.epfd = -1;
	vm->console.space_efd = -1;
	vm->t_start = *t_start;
	vm->cfg = c;
	vm->boot_timer = c->boot_timer;
	vm->seccomp = c->seccomp;
	vm->ncpus = c->cpus;
	vm->container = c->container;
	vm->session.fd = vm->session.guest_fd = vm->session.sig_rd = vm->session.sig_wr = -1;
	atomic_store(&vm->guest_status, -1);
	atomic_store(&vm->state, VM_CREATED);
	pthread_mutex_init(&vm->gate_lock, NULL);
	pthread_cond_init(&vm->gate_cond, NULL);
	pthread_cond_init(&vm->parked_cond, NULL);
	vm_phase(vm, "options");

	int r = vm_memory_init(vm, c, e);
	if (r == 0) {
		vm_phase(vm, "memory");
		/* a snapshot's VM: its memory is the snapshot's, with the kernel in it already */
		r = c->restore_dir ? vm_restore_begin(vm, c->restore_dir, e) : vm_load(vm, c, e);
	}
	if (r == 0)
		r = vm_kvm_init(vm, c, e);
	return r;
}

/* ---- the lifecycle ---- */

enum vm_state vm_state(const struct vm *vm)
{
	return (enum vm_state)atomic_load(&vm->state);
}

/* Main thread only: the new state, told to parked vCPUs. */
static void set_state(struct vm *vm, enum vm_state s)
{
	pthread_mutex_lock(&vm->gate_lock);
	atomic_store(&vm->state, (int)s);
	pthread_cond_broadcast(&vm->gate_cond);
	pthread_mutex_unlock(&vm->gate_lock);
}

static int transition(struct vm *vm, enum vm_event ev, enum vm_state *to, struct verr *e)
{
	return vm_transition(vm_state(vm), ev, to, e);
}

/* The devices' loop in the main loop: its fd is readable when any device fd is. */
static void on_devices(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	int r = ev_run_once(&vm->dev_el, 0);
	if (r < 0) {
		vmm_log("device event loop failed: epoll_wait: %s", strerror(-r));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
}

static int watch_devices(struct vm *vm, bool on)
{
	if (on == vm->dev_watched)
		return 0;
	int r = on ? ev_add(&vm->el, &vm->dev_h, EPOLLIN) : ev_del(&vm->el, &vm->dev_h);
	if (r == 0)
		vm->dev_watched = on;
	return r;
}

int vm_start(struct vm *vm, struct verr *e)
{
	enum vm_state to;
	int r = transition(vm, VM_EV_START, &to, e);
	if (r < 0)
		return r;
	vm->start_ms = vm_elapsed_ms(vm);
	set_state(vm, to);
	return 0;
}

/* Waits until every started vCPU thread is parked (kicking the ones still in KVM_RUN). */
static int wait_parked(struct vm *vm)
{
	unsigned want = 0;
	for (unsigned i = 0; i < vm->ncpus; i++)
		want += vm->vcpus[i].thread_started;
	for (unsigned tries = 0; tries < 1000; tries++) {
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_kick(&vm->vcpus[i]);
		struct timespec ts = vcpu_kick_deadline();
		pthread_mutex_lock(&vm->gate_lock);
		if (vm->nparked < want)
			pthread_cond_timedwait(&vm->parked_cond, &vm->gate_lock, &ts);
		bool done = vm->nparked >= want;
		pthread_mutex_unlock(&vm->gate_lock);
		if (done)
			return 0;
		if (atomic_load(&vm->stop_reason) != VM_STOP_NONE)
			return -ECANCELED;
	}
	return -ETIMEDOUT;
}

int vm_pause(struct vm *vm, struct verr *e)
{
	enum vm_state to;
	int r = transition(vm, VM_EV_PAUSE, &to, e);
	if (r < 0)
		return r;
	double t0 = vm_elapsed_ms(vm);
	set_state(vm, to);
	r = wait_parked(vm);
	if (r < 0) {
		set_state(vm, VM_RUNNING);
		return verr_set(e, r, "pause: the vCPUs did not stop within 10 s%s",
				r == -ECANCELED ? " (the VM is stopping)" : "");
	}
	r = watch_devices(vm, false);
	if (r < 0) {
		set_state(vm, VM_RUNNING);
		return verr_set(e, r, "pause: epoll_ctl failed: %s", strerror(-r));
	}
	/* The guest's clock stands still while paused: kvmclock is saved here, set back on resume.
	 */
	vm->clock_saved = ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->paused_clock) == 0;
	if (!vm->clock_saved)
		vmm_warn("pause: ioctl (KVM_GET_CLOCK) failed: %s: the guest clock will jump by "
			 "the paused time",
			 strerror(errno));
	vm->pause_ms = vm_elapsed_ms(vm) - t0;
	return 0;
}

int vm_resume(struct vm *vm, struct verr *e)
{
	enum vm_state to;
	int r = transition(vm, VM_EV_RESUME, &to, e);
	if (r < 0)
		return r;
	double t0 = vm_elapsed_ms(vm);
	if (vm->clock_saved) {
		struct kvm_clock_data cd = {.clock = vm->paused_clock.clock};
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &cd) < 0)
			return verr_set(e, -errno, "resume: ioctl (KVM_SET_CLOCK) failed: %s",
					strerror(errno));
		vm->clock_saved = false;
	}
	r = watch_devices(vm, true);
	if (r < 0)
		return verr_set(e, r, "resume: epoll_ctl failed: %s", strerror(-r));
	set_state(vm, to);
	vm->resume_ms = vm_elapsed_ms(vm) - t0;
	return 0;
}

int vm_stop(struct vm *vm, unsigned timeout_ms, struct verr *e)
{
	enum vm_state from = vm_state(vm), to;
	int r = vm_transition(from, VM_EV_STOP, &to, e);
	if (r < 0)
		return r;
	set_state(vm, to);
	bool graceful = from == VM_RUNNING && vm->container && vm->session.thread_started &&
			!vm->session.exited && timeout_ms > 0;
	if (!graceful) {
		vm_request_stop(vm, VM_STOP_FORCED);
		return 0;
	}
	session_signal(&vm->session, SIGTERM);
	struct itimerspec its = {.it_value = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L}};
	if (timerfd_settime(vm->stop_timer_fd, 0, &its, NULL) < 0) {
		vmm_log("stop: timerfd_settime failed: %s: forcing the VM off now",
			strerror(errno));
		vm_request_stop(vm, VM_STOP_FORCED);
	}
	return 0;
}

int vm_signal(struct vm *vm, int sig, struct verr *e)
{
	enum vm_state s = vm_state(vm);
	if (!vm->container)
		return verr_set(e, -ENOTSUP,
				"signal: this VM runs no container process (no agent)");
	if (s != VM_RUNNING && s != VM_PAUSED && s != VM_STOPPING)
		return verr_set(e, -EBUSY, "signal: the VM is %s: the process is not running",
				vm_state_name(s));
	if (sig < 1 || sig > 64)
		return verr_set(e, -EINVAL, "signal: %d is not a signal number (1-64)", sig);
	session_signal(&vm->session, sig);
	return 0;
}

/* ---- reports ---- */

/* The boot timer's part of the metrics source (phases and moments), for `state` and the metrics. */
static void fill_boot_src(struct vm *vm, struct metrics_src *src,
			  struct metrics_phase phases[VM_PHASES_MAX])
{
	unsigned nph = atomic_load_explicit(&vm->nphases, memory_order_acquire);
	for (unsigned i = 0; i < nph; i++)
		phases[i] = (struct metrics_phase){vm->phases[i].name, vm->phases[i].ms};
	src->phases = phases;
	src->nphases = nph;
	src->start_ms = vm->start_ms;
	src->first_run_ms = vm->first_run_ms;
	src->kernel_entry_ms = vm->kernel_entry_ms;
	src->init_ms = vm->init_ms;
	src->process_start_ms = vm->process_start_ms;
}

json_object *vm_state_json(struct vm *vm)
{
	json_object *o = api_reply_ok();
	if (!o)
		return NULL;
	json_object_object_add(o, "state", json_object_new_string(vm_state_name(vm_state(vm))));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "uptime_ms", json_object_new_double(vm_elapsed_ms(vm)));
	struct metrics_phase phases[VM_PHASES_MAX];
	struct metrics_src boot = {0};
	fill_boot_src(vm, &boot, phases);
	json_object_object_add(o, "boot", metrics_boot_json(&boot));
	json_object *devs = json_object_new_array();
	for (unsigned i = 0; i < vm->virtio.n; i++) {
		const struct mmio_slot *sl = &vm->virtio.slot[i];
		char mmio[24];
		snprintf(mmio, sizeof(mmio), "0x%llx", (unsigned long long)sl->base);
		json_object *d = json_object_new_object();
		json_object_object_add(d, "slot", json_object_new_int((int)i));
		json_object_object_add(d, "type",
				       json_object_new_string(device_table[sl->type].name));
		json_object_object_add(d, "name", json_object_new_string(sl->dev->name));
		json_object_object_add(d, "mmio", json_object_new_string(mmio));
		json_object_object_add(d, "irq", json_object_new_int((int)sl->irq));
		json_object_array_add(devs, d);
	}
	json_object_object_add(o, "devices", devs);
	json_object_object_add(o, "config", config_to_json(vm->cfg));
	return o;
}

/* What the metrics object is made of, read now (metrics.h), into *src; src points into the
 * caller's arrays exits, devs and phases. */
static void fill_metrics_src(struct vm *vm, struct metrics_src *src,
			     uint64_t exits[VCPU_EXIT_REASONS],
			     struct metrics_device devs[MMIO_DEVICES_MAX],
			     struct metrics_phase phases[VM_PHASES_MAX])
{
	memset(exits, 0, VCPU_EXIT_REASONS * sizeof(exits[0]));
	for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
		for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
			exits[r] +=
			    atomic_load_explicit(&vm->vcpus[i].exits[r], memory_order_relaxed);
	for (unsigned i = 0; i < vm->virtio.n; i++) {
		const struct mmio_slot *sl = &vm->virtio.slot[i];
		devs[i].name = sl->dev->name;
		devs[i].type = device_table[sl->type].name;
		virtio_dev_stats_get(sl->dev, &devs[i].st);
		devs[i].nqueues = virtio_dev_queues_get(sl->dev, devs[i].queues, &devs[i].isr);
	}
	*src = (struct metrics_src){
	    .state = vm_state_name(vm_state(vm)),
	    .uptime_ms = vm_elapsed_ms(vm),
	    .exits = exits,
	    .nexits = VCPU_EXIT_REASONS,
	    .devs = devs,
	    .ndevs = vm->virtio.n,
	    .have_vsock = vm->virtio.vsock != NULL,
	    .log_dropped = log_dropped(),
	};
	fill_boot_src(vm, src, phases);
	if (vm->virtio.vsock)
		virtio_vsock_get_stats(vm->virtio.vsock, &src->vsock);
}

json_object *vm_metrics_json(struct vm *vm)
{
	uint64_t exits[VCPU_EXIT_REASONS];
	struct metrics_device devs[MMIO_DEVICES_MAX];
	struct metrics_phase phases[VM_PHASES_MAX];
	struct metrics_src src;
	fill_metrics_src(vm, &src, exits, devs, phases);
	return metrics_json(&src);
}

/* The file was opened before the sandbox (run_setup): cut and rewritten in place. */
void vm_write_metrics(struct vm *vm)
{
	if (vm->metrics_fd < 0)
		return;
	uint64_t exits[VCPU_EXIT_REASONS];
	struct metrics_device devs[MMIO_DEVICES_MAX];
	struct metrics_phase phases[VM_PHASES_MAX];
	struct metrics_src src;
	fill_metrics_src(vm, &src, exits, devs, phases);
	struct verr e = {0};
	if (metrics_write_fd(vm->metrics_fd, vm->cfg->metrics_path, &src, &e) < 0)
		vmm_log("%s", e.msg);
}

/* ---- running ---- */

static void on_stop(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	vm->el.stop = true;
}

static void on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;
	(void)events;
	if (read(vm->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	/* A container's process gets the signal (Ctrl-C, docker stop); it ends the VM by exiting.
	 * Once the session is over, a signal stops the VM as usual. */
	enum vm_state st = vm_state(vm);
	if (vm->container && vm->session.thread_started && !vm->session.exited &&
	    !vm->session.failed && st != VM_CREATED) {
		session_signal(&vm->session, (int)si.ssi_signo);
		return;
	}
	if (si.ssi_signo == SIGWINCH)
		return;
	vm->stop_signal = (int)si.ssi_signo;
	vm_request_stop(vm, VM_STOP_SIGNAL);
}

/* Something a vCPU saw that the main thread acts on: the container's process started. */
static void on_event(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t n;
	(void)events;
	if (read(vm->event_efd, &n, sizeof(n)) != sizeof(n))
		return;
	if (vm->api && atomic_load(&vm->process_started))
		api_server_process_started(vm->api);
}

static void on_stop_timer(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t n;
	(void)events;
	if (read(vm->stop_timer_fd, &n, sizeof(n)) != sizeof(n))
		return;
	vmm_info("stop: the process did not end within the timeout: forcing the VM off");
	vm_request_stop(vm, VM_STOP_FORCED);
}

static void session_failed(void *opaque)
{
	vm_request_stop(opaque, VM_STOP_ERROR);
}

static void sigusr1_noop(int sig)
{
	(void)sig;
}

static int exit_status(struct vm *vm)
{
	int why = atomic_load(&vm->stop_reason);
	int status = atomic_load(&vm->guest_status);
	int process = vm->container ? session_finish(&vm->session) : -1;
	/* A container that ended without its process's status: show what the console said. */
	if (vm->container && process < 0)
		console_flush_held(&vm->console);
	switch (why) {
	case VM_STOP_FORCED:
		if (process >= 0)
			return process;
		vmm_info("stopped: the VM was forced off");
		return VMM_EXIT_FORCED;
	case VM_STOP_SIGNAL:
		vmm_log("stopped by signal %d (%s)", vm->stop_signal, strsignal(vm->stop_signal));
		return 128 + vm->stop_signal;
	case VM_STOP_ERROR:
		return VMM_EXIT_FAILURE;
	default:
		break;
	}
	if (vm->console.panic_seen) {
		vmm_log("the guest kernel panicked (see its console output above)");
		return VMM_EXIT_FAILURE;
	}
	if (process >= 0)
		return process;
	if (vm->container && vm->session.failed && status < 0)
		return VMM_EXIT_FAILURE;
	if (status >= 0)
		return status;
	const char *how = why == VM_STOP_TRIPLE_FAULT ? "triple fault" : "reboot";
	if (vm->container) {
		vmm_log("the guest reset (%s) before the container's process reported an exit "
			"status",
			how);
		return VMM_EXIT_FAILURE;
	}
	if (!atomic_load(&vm->boot_done))
		vmm_log("the guest reset (%s) before its init reported boot", how);
	return 0;
}

/* Everything the event loop needs, before any thread exists and before privileges go: signals,
 * the stop eventfd and timer, the devices' loop, the console, the API socket. */
static int run_setup(struct vm *vm, struct verr *e)
{
	/* Host signals go to the event loop through a signalfd; vCPU threads inherit the mask, so
	 * only the main thread ever sees them. SIGUSR1 only kicks vCPUs out of KVM_RUN. */
	sigset_t mask;
	session_signal_mask(&mask, vm->container); /* SIGWINCH: the container's pty follows */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	struct sigaction sa = {.sa_handler = sigusr1_noop};
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	vm->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->sig_fd < 0)
		return verr_set(e, -errno, "signalfd failed: %s", strerror(errno));
	vm->stop_h = (struct ev_handler){vm->stop_efd, on_stop, vm};
	vm->sig_h = (struct ev_handler){vm->sig_fd, on_signal, vm};
	vm->stop_timer_h = (struct ev_handler){vm->stop_timer_fd, on_stop_timer, vm};
	vm->event_h = (struct ev_handler){vm->event_efd, on_event, vm};
	vm->dev_h = (struct ev_handler){vm->dev_el.epfd, on_devices, vm};
	int r = ev_add(&vm->el, &vm->stop_h, EPOLLIN);
	if (r == 0)
		r = ev_add(&vm->el, &vm->sig_h, EPOLLIN);
	if (r == 0)
		r = ev_add(&vm->el, &vm->stop_timer_h, EPOLLIN);
	if (r == 0)
		r = ev_add(&vm->el, &vm->event_h, EPOLLIN);
	if (r == 0)
		r = watch_devices(vm, true);
	/* A container's stdin belongs to its process; the console (kernel and agent messages)
	 * goes to the log file, or to stderr when the log is JSON lines (raw console text would
	 * break them). With a tty the terminal goes raw now: the filter forbids it later. */
	int console_out = vm->cfg->log_format == LOG_FORMAT_JSON ? STDERR_FILENO : log_fd();
	if (r == 0)
		r = vm->container
			? console_init(&vm->console, &vm->dev_el, &vm->serial, -1, console_out)
			: console_init(&vm->console, &vm->dev_el, &vm->serial, vm->cfg->stdio[0],
				       vm->cfg->stdio[1]);
	if (r < 0)
		return verr_set(e, r, "cannot set up the event loop: %s", strerror(-r));
	vm->console.hold = vm->container && !vmm_verbose;
	if (vm->container && vm->session.cmd.tty && isatty(vm->session.cmd.in_fd) &&
	    console_make_raw(vm->session.cmd.in_fd) < 0)
		vmm_warn("cannot put the terminal in raw mode (continuing)");
	if (vm->cfg->metrics_path) {
		vm->metrics_fd = open(vm->cfg->metrics_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (vm->metrics_fd < 0)
			return verr_set(e, -errno,
					"--metrics %s: cannot open: %s: give a file in a directory "
					"vmm may write to",
					vm->cfg->metrics_path, strerror(errno));
	}
	if (vm->cfg->api_sock) {
		r = api_server_start(&vm->api, vm, vm->cfg->api_sock, e);
		if (r < 0)
			return r;
	}
	/* The pid file once the API listens: an engine that reads it can use both. */
	if (vm->cfg->pid_file) {
		r = pidfile_write(vm->cfg->pid_file, getpid(), e);
		if (r < 0)
			return r;
	}
	vm_phase(vm, "event-loop");
	return 0;
}

int vm_run(struct vm *vm)
{
	struct verr e = {0};
	int r = run_setup(vm, &e);
	if (r < 0) {
		vmm_log("%s", e.msg);
		if (vm->on_ready)
			vm->on_ready(vm->ready_opaque, r);
		return VMM_EXIT_FAILURE;
	}
	/* Every file and socket is open: vmm can leave the host's file system for the
	 * container's, while it still holds CAP_SYS_ADMIN and is the only thread. */
	if (vm->cfg->enter_rootfs && volumes_enter_root(vm->cfg, &e) < 0) {
		vmm_log("%s", e.msg);
		if (vm->on_ready)
			vm->on_ready(vm->ready_opaque, -EPERM);
		return VMM_EXIT_FAILURE;
	}
	/* Setup is over: drop privileges before any thread exists (they inherit it), keeping only
	 * the virtio-fs workers' set, as permitted; the workers are created first and raise it,
	 * then this thread clears it before the vCPU and session threads exist, so they hold
	 * nothing. Each thread filters itself, this one once the others are created and before
	 * the event loop reads anything from the guest (vmm/sandbox/sandbox.c). */
	if (sandbox_drop_privileges(mmio_devices_fs_privileges(&vm->virtio), &e) < 0) {
		vmm_log("%s", e.msg);
		if (vm->on_ready)
			vm->on_ready(vm->ready_opaque, -EPERM);
		return VMM_EXIT_FAILURE;
	}
	vm_phase(vm, "privileges");
	if (!vm->seccomp)
		vmm_warn("warning: --seccomp=off: no system call filter, a compromised vmm has the "
			 "whole kernel API");
	/* The devices' own threads (virtio-fs workers) filter themselves, like the vCPUs. No vCPU
	 * runs yet: a failure here ends vmm before the guest starts. */
	r = mmio_devices_start(&vm->virtio, vm->seccomp, &e);
	if (r == 0)
		r = sandbox_drop_fs_caps(&e);
	if (r < 0) {
		vmm_log("%s", e.msg);
		if (vm->on_ready)
			vm->on_ready(vm->ready_opaque, r);
		return VMM_EXIT_FAILURE;
	}
	/* Without --paused the VM starts now; with it the vCPU threads park until `start`. */
	if (!vm->cfg->paused)
		vm_start(vm, NULL);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		r = vcpu_start(&vm->vcpus[i]);
		if (r < 0) {
			vmm_log("cannot start vcpu %u thread: %s", i, strerror(-r));
			vm_request_stop(vm, VM_STOP_ERROR);
			break;
		}
	}
	vm_phase(vm, "vcpu-threads");
	if (vm->container) {
		vm->session.seccomp = vm->seccomp;
		vm->session.on_fail = session_failed;
		vm->session.opaque = vm;
		r = session_start(&vm->session);
		if (r < 0) {
			vmm_log("cannot start the container session thread: %s", strerror(-r));
			vm_request_stop(vm, VM_STOP_ERROR);
		}
		vm_phase(vm, "session-thread");
	}
	if (vm->seccomp && sandbox_enter(SANDBOX_MAIN, &e) < 0) {
		vmm_log("%s", e.msg);
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	vm_phase(vm, vm->seccomp ? "main-seccomp" : "main-ready");
	if (vm->on_ready)
		vm->on_ready(vm->ready_opaque,
			     atomic_load(&vm->stop_reason) == VM_STOP_NONE ? 0 : -ECANCELED);

	if (vm->restored)
		vm_restore_kick(vm);
	r = ev_run(&vm->el);
	if (r < 0) {
		vmm_log("event loop failed: epoll_wait: %s", strerror(-r));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick_and_join(&vm->vcpus[i]);
	set_state(vm, VM_STOPPED);
	console_restore();
	int status = exit_status(vm);
	if (vm->api)
		api_server_finish(vm->api, status);
	return status;
}

void vm_destroy(struct vm *vm)
{
	vm_restore_free(vm);
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->ncpus; i++) {
			if (vm->vcpus[i].run)
				munmap(vm->vcpus[i].run, vm->vcpus[i].run_size);
			if (vm->vcpus[i].fd >= 0)
				close(vm->vcpus[i].fd);
		}
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	if (vm->api)
		api_server_destroy(vm->api);
	vm->api = NULL;
	mmio_devices_destroy(&vm->virtio);
	if (vm->container)
		session_destroy(&vm->session);
	console_close(&vm->console);
	ev_close(&vm->dev_el);
	ev_close(&vm->el);
	guest_mem_free(&vm->mem);
	arch_vm_destroy(vm);
	int *fds[] = {&vm->sig_fd, &vm->stop_efd, &vm->stop_timer_fd, &vm->metrics_fd,
		      &vm->vm_fd,  &vm->kvm_fd,	  &vm->event_efd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}
