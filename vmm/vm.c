/* Building, running and stopping the VM: the one ordered recipe (KVM, memory, arch, devices,
 * vCPUs, then kernel and boot data) and the main thread's event loop. */
#include "vmm/vm.h"
#include "vmm/boot_x86_64.h"
#include "vmm/cmdline.h"
#include "guest/agent_proto.h"
#include "vmm/agent_blob.h"
#include "vmm/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
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
	int expected = VM_RUNNING;
	if (!atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)why))
		return;
	uint64_t one = 1;
	if (write(vm->stop_efd, &one, sizeof(one)) < 0) {
		/* eventfd writes of 1 do not fail short of overflow */
	}
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
		if (vm->boot_timer) {
			char line[1024];
			vm_phases_format(vm, line, sizeof(line));
			vmm_log("boot-timer: vmm phases (ms after vmm start): %s", line);
		}
		if (vm->boot_timer && vm->kernel_entry_ms > 0)
			vmm_log("boot-timer: guest init reached %.3f ms after vmm start (first "
				"KVM_RUN at %.3f ms, kernel entry at %.3f ms)",
				vm_elapsed_ms(vm), vm->first_run_ms, vm->kernel_entry_ms);
		else if (vm->boot_timer) /* the entry breakpoint did not fire (nested SVM) */
			vmm_log("boot-timer: guest init reached %.3f ms after vmm start (first "
				"KVM_RUN at %.3f ms)",
				vm_elapsed_ms(vm), vm->first_run_ms);
		return;
	case GUEST_SIGNAL_PROCESS_START:
		if (atomic_exchange(&vm->process_started, true))
			return;
		if (vm->boot_timer)
			vmm_log("boot-timer: guest process about to start %.3f ms after vmm start",
				vm_elapsed_ms(vm));
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

static int devices_init(struct vm *vm, const struct vmm_options *o, struct verr *e)
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
		r = mmio_devices_create(&vm->virtio, o, &vm->mem, vm->vm_fd, &vm->mmio, &vm->el, e);
	if (r < 0 || !vm->container)
		return r;
	/* The agent connects to host port AGENT_VSOCK_PORT once at boot: that connection is the
	 * session's socketpair. --api-sock connections go to the agent's listening port. */
	struct session_cmd cmd = {
	    .argv = o->cmd,
	    .argc = o->ncmd,
	    .env = o->env,
	    .envc = o->nenv,
	    .cwd = o->workdir,
	    .uid = o->uid,
	    .gid = o->gid,
	    .tty = o->tty,
	};
	r = session_init(&vm->session, &cmd, e);
	if (r < 0)
		return r;
	virtio_vsock_set_host_port(vm->virtio.vsock, AGENT_VSOCK_PORT, session_guest_fd,
				   &vm->session);
	if (o->api_sock)
		r = virtio_vsock_add_port_listener(vm->virtio.vsock, o->api_sock, AGENT_VSOCK_PORT,
						   e);
	return r;
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

static int vm_memory_init(struct vm *vm, const struct vmm_options *o, struct verr *e)
{
	struct guest_region layout[GUEST_MEM_MAX_REGIONS];
	unsigned nr = x86_memory_layout(o->memory_mib << 20, layout);
	int r = guest_mem_init(&vm->mem, layout, nr);
	if (r < 0)
		return verr_set(e, r, "cannot map %llu MiB of guest memory: %s",
				(unsigned long long)o->memory_mib, strerror(-r));
	return 0;
}

/* Kernel, initrd, command line and boot structures: all input files are checked here, before
 * /dev/kvm is touched, so bad input fails fast and the same way with or without KVM. */
static int vm_load(struct vm *vm, const struct vmm_options *o, struct verr *e)
{
	int r = kernel_load(&vm->mem, o->kernel, &vm->kernel, e);
	if (r < 0)
		return r;
	vm_phase(vm, "kernel");
	uint64_t initrd_gpa = 0, initrd_size = 0;
	if (o->initrd) {
		r = initrd_load(&vm->mem, o->initrd, &vm->kernel, &initrd_gpa, &initrd_size, e);
		if (r < 0)
			return r;
		vm_phase(vm, "initrd");
	}
#ifndef VMM_HAVE_AGENT
	if (o->container)
		return verr_set(e, -ENOTSUP,
				"this vmm was built without the guest agent (-Dguest=false): "
				"containers need it; rebuild with -Dguest=true");
#else
	if (o->container) {
		/* The archive is part of vmm's file: one readahead for it rather than a page fault
		 * (and, from a cold or network file system, a read) per page. */
		uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t lo = (uintptr_t)vmm_agent_initramfs & ~(page - 1);
		madvise((void *)lo, (uintptr_t)vmm_agent_initramfs_end - lo, MADV_WILLNEED);
		r = initrd_load_mem(&vm->mem, vmm_agent_initramfs,
				    (size_t)(vmm_agent_initramfs_end - vmm_agent_initramfs),
				    &vm->kernel, &initrd_gpa, &initrd_size, e);
		if (r < 0)
			return r;
		vm_phase(vm, "agent-initrd");
	}
#endif
	static char cmdline[BOOT_CMDLINE_MAX];
	if (cmdline_build(cmdline, sizeof(cmdline), CMDLINE_DEFAULT, o->cmdline) < 0)
		return verr_set(e, -E2BIG, "--cmdline is too long (limit %llu bytes)",
				BOOT_CMDLINE_MAX - 1);
	if (o->container && cmdline_add(cmdline, sizeof(cmdline), o->agent_cmdline) < 0)
		return verr_set(e, -E2BIG, "--cmdline is too long (limit %llu bytes)",
				BOOT_CMDLINE_MAX - 1);
	r = mmio_devices_cmdline(cmdline, sizeof(cmdline), mmio_devices_count(o));
	if (r < 0)
		return verr_set(e, r,
				r == -ENOSPC ? "too many devices: vmm has %d virtio slots"
					     : "the kernel command line has no room left for the "
					       "virtio devices (%d slots max): shorten --cmdline",
				MMIO_DEVICES_MAX);
	vmm_debug("kernel command line: %s", cmdline);
	r = x86_boot_setup(&vm->mem, &vm->kernel, cmdline, initrd_gpa, initrd_size, vm->ncpus, e);
	if (r == 0)
		vm_phase(vm, "boot-data");
	return r;
}

static int vm_kvm_init(struct vm *vm, const struct vmm_options *o, struct verr *e)
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
	if (max_vcpus > 0 && o->cpus > (unsigned)max_vcpus)
		return verr_set(e, -EINVAL, "--cpus %u: this host's KVM allows at most %d vCPUs",
				o->cpus, max_vcpus);

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
	r = ev_init(&vm->el);
	if (r < 0)
		return verr_set(e, r, "epoll_create1 failed: %s", strerror(-r));
	r = devices_init(vm, o, e);
	if (r < 0)
		return r;
	vm_phase(vm, "devices");
	r = vcpus_create(vm, e);
	if (r < 0)
		return r;
	vm_phase(vm, "vcpus");
	r = arch_vcpu_set_boot_regs(vm, &vm->vcpus[0], &vm->kernel, e);
	if (r == 0 && o->boot_timer) {
		int t = arch_vcpu_set_entry_trap(&vm->vcpus[0], vm->kernel.entry);
		vm->entry_trap = t == 0;
		if (t < 0)
			vmm_debug("no kernel-entry timing: KVM_SET_GUEST_DEBUG: %s", strerror(-t));
	}
	if (r == 0)
		vm_phase(vm, "boot-regs");
	return r;
}

int vm_create(struct vm *vm, const struct vmm_options *o, const struct timespec *t_start,
	      struct verr *e)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->sig_fd = -1;
	vm->el.epfd = -1;
	vm->console.space_efd = -1;
	vm->t_start = *t_start;
	vm->boot_timer = o->boot_timer;
	vm->seccomp = !o->seccomp_off;
	vm->ncpus = o->cpus;
	vm->container = o->container;
	vm->session.fd = vm->session.guest_fd = vm->session.sig_rd = vm->session.sig_wr = -1;
	atomic_store(&vm->guest_status, -1);
	vm_phase(vm, "options");

	int r = vm_memory_init(vm, o, e);
	if (r == 0) {
		vm_phase(vm, "memory");
		r = vm_load(vm, o, e);
	}
	if (r == 0)
		r = vm_kvm_init(vm, o, e);
	return r;
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
	if (vm->container && vm->session.thread_started && !vm->session.exited &&
	    !vm->session.failed) {
		session_signal(&vm->session, (int)si.ssi_signo);
		return;
	}
	if (si.ssi_signo == SIGWINCH)
		return;
	vm->stop_signal = (int)si.ssi_signo;
	vm_request_stop(vm, VM_STOP_SIGNAL);
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
	if (vm->container) {
		vmm_log("the guest ended before the container's process reported an exit status");
		return VMM_EXIT_FAILURE;
	}
	if (!atomic_load(&vm->boot_done))
		vmm_log("the guest reset (%s) before its init reported boot",
			why == VM_STOP_TRIPLE_FAULT ? "triple fault" : "reboot");
	return 0;
}

int vm_run(struct vm *vm)
{
	/* Host signals go to the event loop through a signalfd; vCPU threads inherit the mask, so
	 * only the main thread ever sees them. SIGUSR1 only kicks vCPUs out of KVM_RUN. */
	sigset_t mask;
	session_signal_mask(&mask, vm->container); /* SIGWINCH: the container's pty follows */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	struct sigaction sa = {.sa_handler = sigusr1_noop};
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = VMM_EXIT_FAILURE;
	vm->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	vm->stop_h = (struct ev_handler){vm->stop_efd, on_stop, vm};
	vm->sig_h = (struct ev_handler){vm->sig_fd, on_signal, vm};
	int r = vm->sig_fd < 0 ? -errno : 0;
	if (r == 0)
		r = ev_add(&vm->el, &vm->stop_h, EPOLLIN);
	if (r == 0)
		r = ev_add(&vm->el, &vm->sig_h, EPOLLIN);
	if (r == 0)
		r = vm->container
			? console_init(&vm->console, &vm->el, &vm->serial, -1, STDERR_FILENO)
			: console_init(&vm->console, &vm->el, &vm->serial, STDIN_FILENO,
				       STDOUT_FILENO);
	/* A container's stdin belongs to its process; the console (kernel and agent messages)
	 * goes to stderr. With a tty the terminal goes raw now: the filter below forbids it. */
	vm->console.hold = vm->container && !vmm_verbose;
	if (r == 0 && vm->container && vm->session.cmd.tty && isatty(STDIN_FILENO) &&
	    console_make_raw(STDIN_FILENO) < 0)
		vmm_log("cannot put the terminal in raw mode (continuing)");
	if (r < 0) {
		vmm_log("cannot set up the event loop: %s", strerror(-r));
		return VMM_EXIT_FAILURE;
	}
	/* Setup is over: drop privileges before any thread exists (they inherit it), then each
	 * vCPU thread filters itself, and this thread filters itself once they are created and
	 * before the event loop reads anything from the guest (vmm/sandbox.c). */
	vm_phase(vm, "event-loop");
	struct verr e = {0};
	if (sandbox_drop_privileges(&e) < 0) {
		vmm_log("%s", e.msg);
		return VMM_EXIT_FAILURE;
	}
	vm_phase(vm, "privileges");
	if (!vm->seccomp)
		vmm_log("warning: --seccomp=off: no system call filter, a compromised vmm has the "
			"whole kernel API");
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

	r = ev_run(&vm->el);
	if (r < 0) {
		vmm_log("event loop failed: epoll_wait: %s", strerror(-r));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick_and_join(&vm->vcpus[i]);
	console_restore();
	status = exit_status(vm);
	return status;
}

void vm_destroy(struct vm *vm)
{
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
	mmio_devices_destroy(&vm->virtio);
	if (vm->container)
		session_destroy(&vm->session);
	console_close(&vm->console);
	ev_close(&vm->el);
	guest_mem_free(&vm->mem);
	int *fds[] = {&vm->sig_fd, &vm->stop_efd, &vm->vm_fd, &vm->kvm_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}
