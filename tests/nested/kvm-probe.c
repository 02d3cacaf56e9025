/*
 * kvm-probe: the smallest end-to-end check that /dev/kvm really runs guest
 * code (not just that the device node exists).
 *
 * It creates a VM with one vCPU and one page of guest memory at 0x1000
 * holding three real-mode instructions:
 *
 *     mov  $0x42, %al      b0 42
 *     out  %al, $0x10      e6 10
 *     hlt                  f4
 *
 * and expects KVM_RUN to return KVM_EXIT_IO (out, port 0x10, 1 byte, 0x42)
 * and then KVM_EXIT_HLT.  On success it prints "kvm-probe: ok" and exits 0;
 * on any failure it prints one "kvm-probe: ..." line to stderr and exits 1.
 *
 * Used by tests/nested/ to prove that the nested-KVM harness works; no
 * dependencies beyond libc and the kernel UAPI headers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_ADDR    0x1000u
#define PAGE_SIZE_    0x1000u
#define PROBE_PORT    0x10u
#define PROBE_VALUE   0x42u
#define RUN_TIMEOUT_S 120u /* generous: nested under TCG is slow */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	fputs("kvm-probe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (saved)
		fprintf(stderr, ": %s", strerror(saved));
	fputc('\n', stderr);
	exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] = "kvm-probe: KVM_RUN did not return in time\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more we can do */
	}
	_exit(1);
}

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN:
		return "UNKNOWN";
	case KVM_EXIT_EXCEPTION:
		return "EXCEPTION";
	case KVM_EXIT_IO:
		return "IO";
	case KVM_EXIT_HLT:
		return "HLT";
	case KVM_EXIT_MMIO:
		return "MMIO";
	case KVM_EXIT_SHUTDOWN:
		return "SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY:
		return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR:
		return "INTERNAL_ERROR";
	default:
		return "?";
	}
}

static void run_vcpu(int vcpu)
{
	int r;

	do {
		r = ioctl(vcpu, KVM_RUN, 0);
	} while (r < 0 && (errno == EINTR || errno == EAGAIN));
	if (r < 0)
		die("KVM_RUN");
}

int main(void)
{
	static const uint8_t code[] = {
	    0xb0, PROBE_VALUE, /* mov  $0x42, %al   */
	    0xe6, PROBE_PORT,  /* out  %al, $0x10   */
	    0xf4,	       /* hlt               */
	};
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	uint8_t *mem;
	int kvm, vm, vcpu, api, mmap_size;

	errno = 0;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");

	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api < 0)
		die("KVM_GET_API_VERSION");
	if (api != KVM_API_VERSION) {
		errno = 0;
		die("KVM_GET_API_VERSION returned %d, expected %d", api, KVM_API_VERSION);
	}
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0) {
		errno = 0;
		die("KVM_CAP_USER_MEMORY not available");
	}

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");

	mem = mmap(NULL, PAGE_SIZE_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest memory");
	memset(mem, 0xf4, PAGE_SIZE_); /* hlt everywhere, just in case */
	memcpy(mem, code, sizeof(code));

	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = GUEST_ADDR;
	region.memory_size = PAGE_SIZE_;
	region.userspace_addr = (uint64_t)(uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");

	mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	if ((size_t)mmap_size < sizeof(*run)) {
		errno = 0;
		die("KVM_GET_VCPU_MMAP_SIZE returned %d, too small", mmap_size);
	}
	run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	/* Real mode, CS base 0, IP at the start of our page. */
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");

	memset(&regs, 0, sizeof(regs));
	regs.rip = GUEST_ADDR;
	regs.rflags = 0x2; /* bit 1 is reserved and must be set */
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	signal(SIGALRM, on_alarm);
	alarm(RUN_TIMEOUT_S);

	errno = 0;
	run_vcpu(vcpu);
	if (run->exit_reason != KVM_EXIT_IO) {
		errno = 0;
		die("first KVM_RUN: exit reason %u (%s), expected KVM_EXIT_IO", run->exit_reason,
		    exit_name(run->exit_reason));
	}
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 1 ||
	    run->io.port != PROBE_PORT || run->io.count != 1) {
		errno = 0;
		die("unexpected I/O exit: dir=%u size=%u port=%#x count=%u", run->io.direction,
		    run->io.size, run->io.port, run->io.count);
	}
	{
		uint8_t v = *((const uint8_t *)run + run->io.data_offset);
		if (v != PROBE_VALUE) {
			errno = 0;
			die("out to port %#x wrote %#x, expected %#x", PROBE_PORT, v, PROBE_VALUE);
		}
	}

	run_vcpu(vcpu);
	if (run->exit_reason != KVM_EXIT_HLT) {
		errno = 0;
		die("second KVM_RUN: exit reason %u (%s), expected KVM_EXIT_HLT", run->exit_reason,
		    exit_name(run->exit_reason));
	}
	alarm(0);

	munmap(run, (size_t)mmap_size);
	munmap(mem, PAGE_SIZE_);
	close(vcpu);
	close(vm);
	close(kvm);

	puts("kvm-probe: ok");
	return 0;
}
