/* Core tests: number parsing, the checked guest-memory accessor, the bus,
 * the KVM internal-error line (vmm/vcpu_fault.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/memory.h"
#include "vmm/config/config.h"
#include "vmm/vcpu_fault.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void parse_numbers(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("+1", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("0x10", 0, 100, &v), -EINVAL);
	assert_int_equal(parse_u64("11", 0, 10, &v), -ERANGE);
}

static void memory_accessor(void **state)
{
	(void)state;
	struct guest_region layout[2] = {{0, 0x10000, NULL}, {0x100000, 0x2000, NULL}};
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, layout, 2), 0);
	assert_int_equal(m.total, 0x12000);
	assert_non_null(guest_mem_ptr(&m, 0, 0x10000));
	assert_null(guest_mem_ptr(&m, 0, 0x10001));	/* runs off region 0 */
	assert_null(guest_mem_ptr(&m, 0xffff, 2));	/* straddles the hole */
	assert_null(guest_mem_ptr(&m, 0x20000, 1));	/* in the hole */
	assert_non_null(guest_mem_ptr(&m, 0x10000, 0)); /* empty range at the end */
	assert_ptr_equal(guest_mem_ptr(&m, 0x100000, 1), m.region[1].host);
	assert_null(guest_mem_ptr(&m, 0x101fff, 2));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));	      /* gpa + len wraps */
	assert_null(guest_mem_ptr(&m, 0x100000, UINT64_MAX)); /* len huge */
	assert_null(guest_mem_ptr(&m, 8, UINT64_MAX - 4));    /* wraps to a small end */
	uint8_t buf[4] = {1, 2, 3, 4}, out[4];
	assert_int_equal(guest_mem_write(&m, 0x101ffc, buf, 4), 0);
	assert_int_equal(guest_mem_read(&m, 0x101ffc, out, 4), 0);
	assert_memory_equal(buf, out, 4);
	assert_int_equal(guest_mem_write(&m, 0x101ffd, buf, 4), -EFAULT);
	assert_int_equal(guest_mem_low_end(&m), 0x10000);
	guest_mem_free(&m);

	/* bad layouts */
	struct guest_region unaligned = {0, 0x1001, NULL};
	assert_int_equal(guest_mem_init(&m, &unaligned, 1), -EINVAL);
	struct guest_region overlap[2] = {{0, 0x2000, NULL}, {0x1000, 0x1000, NULL}};
	assert_int_equal(guest_mem_init(&m, overlap, 2), -EINVAL);
	assert_int_equal(guest_mem_init(&m, layout, 0), -EINVAL);
}

static unsigned last_off, last_size, calls;
static void dev(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	(void)opaque;
	last_off = (unsigned)off;
	last_size = size;
	calls++;
	if (!is_write)
		memset(data, 0x42, size);
}

static void bus_routing(void **state)
{
	(void)state;
	struct bus b = {0};
	assert_int_equal(bus_register(&b, 0x3f8, 8, dev, NULL), 0);
	assert_int_equal(bus_register(&b, 0x3fc, 8, dev, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 9, dev, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 8, dev, NULL), 0);
	assert_int_equal(bus_register(&b, 1, 0, dev, NULL), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, dev, NULL), -EINVAL);
	uint8_t d[4];
	calls = 0;
	assert_true(bus_dispatch(&b, 0x3fd, d, 1, false));
	assert_int_equal(last_off, 5);
	assert_int_equal(d[0], 0x42);
	/* straddles the end of the device: not delivered, reads float high */
	assert_false(bus_dispatch(&b, 0x3fe, d, 4, false));
	assert_int_equal(d[3], 0xff);
	assert_false(bus_dispatch(&b, 0x80, d, 1, true));
	assert_int_equal(calls, 1);
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
		bus_register(&b, 0x10000 + i * 16, 16, dev, NULL);
	assert_int_equal(bus_register(&b, 0x90000, 1, dev, NULL), -ENOSPC);
}

/* ---- the KVM internal-error line ---- */

static const uint8_t insn[VCPU_FAULT_BYTES] = {0xf0, 0x48, 0x0f, 0xc7, 0x0e, 0x48, 0x85, 0xc0,
					       0x74, 0x05, 0xe8, 0x11, 0x22, 0x33, 0x44};

static struct vcpu_fault fault_at(uint64_t rip, uint64_t gpa)
{
	struct vcpu_fault f = {
	    .vcpu = 0,
	    .suberror = 1,
	    .have_rip = true,
	    .rip = rip,
	    .have_gpa = true,
	    .gpa = gpa,
	    .gpa_span = VCPU_FAULT_BYTES,
	    .nbytes = VCPU_FAULT_BYTES,
	};
	memcpy(f.bytes, insn, sizeof(insn));
	return f;
}

static const char *fault_line(const struct vcpu_fault *f)
{
	static char line[1024];
	size_t n = vcpu_fault_format(f, line, sizeof(line));
	assert_int_equal(n, strlen(line));
	assert_null(strchr(line, '\n'));
	return line;
}

#define PVM_HINT                                                                                \
	"; /dev/kvm here is kvm_pvm (no VT-x/SVM), which cannot run this guest: run it in the " \
	"nested harness (tests/nested/with-kvm.sh)"

static void fault_line_normal(void **state)
{
	(void)state;
	struct vcpu_fault f = fault_at(0xffffffff8123abcdULL, 0x123abcd);
	assert_string_equal(
	    fault_line(&f),
	    "vcpu 0: KVM internal error (suberror 1, emulation) at rip "
	    "0xffffffff8123abcd (gpa 0x123abcd): f0 48 0f c7 0e 48 85 c0 74 05 e8 11 "
	    "22 33 44: KVM could not emulate this instruction");
	f.kvm_pvm = true;
	f.vcpu = 3;
	assert_string_equal(
	    fault_line(&f),
	    "vcpu 3: KVM internal error (suberror 1, emulation) at rip "
	    "0xffffffff8123abcd (gpa 0x123abcd): f0 48 0f c7 0e 48 85 c0 74 05 e8 11 "
	    "22 33 44: KVM could not emulate this instruction" PVM_HINT);
}

static void fault_line_unreadable(void **state)
{
	(void)state;
	/* rip does not translate: no bytes, even if the buffer holds some */
	struct vcpu_fault f = fault_at(0x7fff1000, 0);
	f.have_gpa = false;
	assert_string_equal(fault_line(&f),
			    "vcpu 0: KVM internal error (suberror 1, emulation) at rip 0x7fff1000 "
			    "(no valid translation to guest memory): unreadable: KVM could not "
			    "emulate this instruction");
	/* KVM_TRANSLATE itself failed */
	f.failed_ioctl = "KVM_TRANSLATE";
	f.err = -EPERM;
	f.kvm_pvm = true;
	assert_string_equal(
	    fault_line(&f),
	    "vcpu 0: KVM internal error (suberror 1, emulation) at rip 0x7fff1000 "
	    "(no guest physical address: ioctl (KVM_TRANSLATE) failed: Operation not "
	    "permitted): unreadable: KVM could not emulate this instruction" PVM_HINT);
	/* the registers could not be read */
	f.have_rip = false;
	f.failed_ioctl = "KVM_GET_REGS";
	f.kvm_pvm = false;
	assert_string_equal(fault_line(&f),
			    "vcpu 0: KVM internal error (suberror 1, emulation) at "
			    "an unknown rip (ioctl (KVM_GET_REGS) failed: Operation "
			    "not permitted): KVM could not emulate this instruction");
	/* translated, but outside guest memory (the MMIO hole): nothing read */
	f = fault_at(0x1000, 0xd0000000);
	f.nbytes = 0;
	assert_string_equal(fault_line(&f),
			    "vcpu 0: KVM internal error (suberror 1, emulation) at rip 0x1000 (gpa "
			    "0xd0000000, outside guest memory): unreadable: KVM could not emulate "
			    "this instruction");
}

static void fault_line_suberrors(void **state)
{
	(void)state;
	struct vcpu_fault f = fault_at(0x1000, 0x1000);
	f.nbytes = 1;
	f.suberror = 2;
	assert_string_equal(fault_line(&f), "vcpu 0: KVM internal error (suberror 2, simul_ex) at "
					    "rip 0x1000 (gpa 0x1000): f0: the guest took an "
					    "exception while KVM was delivering another one");
	f.suberror = 3;
	assert_non_null(strstr(fault_line(&f), "(suberror 3, delivery_ev) at rip 0x1000"));
	f.suberror = 4;
	assert_non_null(strstr(fault_line(&f), "(suberror 4, unexpected_exit_reason) at rip"));
	f.suberror = 99;
	assert_non_null(strstr(fault_line(&f),
			       "(suberror 99, unknown) at rip 0x1000 (gpa 0x1000): "
			       "f0: the guest ran into something KVM cannot handle"));
	/* a short buffer: truncated and terminated, the length it needed returned */
	char small[16];
	size_t need = vcpu_fault_format(&f, small, sizeof(small));
	assert_string_equal(small, "vcpu 0: KVM int");
	assert_int_equal(need, strlen(fault_line(&f)));
	assert_int_equal(vcpu_fault_format(&f, NULL, 0), need);
}

/* The bytes come through the checked accessor: fewer at the end of a region, none outside. */
static void fault_read_bytes(void **state)
{
	(void)state;
	struct guest_region layout[2] = {{0, 0x2000, NULL}, {0x100000, 0x1000, NULL}};
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, layout, 2), 0);
	/* an instruction 5 bytes before the end of region 0; the hole follows */
	assert_int_equal(guest_mem_write(&m, 0x1ffb, insn, 5), 0);
	struct vcpu_fault f = fault_at(0xffffffff81001ffbULL, 0x1ffb);
	memset(f.bytes, 0xaa, sizeof(f.bytes));
	assert_int_equal(vcpu_fault_read_bytes(&f, &m), 5);
	assert_int_equal(f.nbytes, 5);
	assert_memory_equal(f.bytes, insn, 5);
	assert_string_equal(fault_line(&f),
			    "vcpu 0: KVM internal error (suberror 1, emulation) at "
			    "rip 0xffffffff81001ffb (gpa 0x1ffb): f0 48 0f c7 0e: KVM "
			    "could not emulate this instruction");
	/* the whole 15 bytes inside the region */
	assert_int_equal(guest_mem_write(&m, 0x100010, insn, sizeof(insn)), 0);
	f = fault_at(0x100010, 0x100010);
	memset(f.bytes, 0, sizeof(f.bytes));
	assert_int_equal(vcpu_fault_read_bytes(&f, &m), VCPU_FAULT_BYTES);
	assert_memory_equal(f.bytes, insn, sizeof(insn));
	/* the last byte of the last region */
	f = fault_at(0x100fff, 0x100fff);
	assert_int_equal(vcpu_fault_read_bytes(&f, &m), 1);
	/* the guest page ends first: no more than its span */
	f = fault_at(0x100010, 0x100010);
	f.gpa_span = 3;
	assert_int_equal(vcpu_fault_read_bytes(&f, &m), 3);
	/* at the end of a region, in the hole, past the end, wrapping: nothing */
	uint64_t outside[] = {0x2000, 0x80000, 0x101000, UINT64_MAX - 2};
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		f = fault_at(0x1000, outside[i]);
		assert_int_equal(vcpu_fault_read_bytes(&f, &m), 0);
		assert_non_null(strstr(fault_line(&f), "outside guest memory): unreadable: KVM"));
	}
	/* no translation: nothing read, whatever gpa holds */
	f = fault_at(0x1000, 0x1ffb);
	f.have_gpa = false;
	assert_int_equal(vcpu_fault_read_bytes(&f, &m), 0);
	guest_mem_free(&m);
}

/* The start-up timeline line: phases in order, then vCPU 0's filter and first KVM_RUN when
 * they happened; a short buffer truncates and the needed length is returned. */
static void phases_line(void **state)
{
	(void)state;
	static struct vm vm;
	memset(&vm, 0, sizeof(vm));
	clock_gettime(CLOCK_MONOTONIC, &vm.t_start);
	vm_phase(&vm, "options");
	vm_phase(&vm, "memory");
	char buf[256];
	size_t n = vm_phases_format(&vm, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, "options 0."));
	assert_non_null(strstr(buf, ", memory "));
	assert_null(strstr(buf, "first-KVM_RUN"));
	assert_null(strstr(buf, "vcpu0-seccomp"));
	assert_true(vm.phases[0].ms <= vm.phases[1].ms);
	vm.vcpu0_filter_ms = 7.25;
	vm.first_run_ms = 8.5;
	n = vm_phases_format(&vm, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, ", vcpu0-seccomp 7.250, first-KVM_RUN 8.500"));
	assert_null(strchr(buf, '\n'));
	char small[10];
	assert_int_equal(vm_phases_format(&vm, small, sizeof(small)), n);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	/* more phases than the table holds: the extra ones are dropped, nothing overflows */
	for (int i = 0; i < VM_PHASES_MAX + 5; i++)
		vm_phase(&vm, "x");
	assert_int_equal(atomic_load(&vm.nphases), VM_PHASES_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_numbers),	     cmocka_unit_test(memory_accessor),
	    cmocka_unit_test(bus_routing),	     cmocka_unit_test(fault_line_normal),
	    cmocka_unit_test(fault_line_unreadable), cmocka_unit_test(fault_line_suberrors),
	    cmocka_unit_test(fault_read_bytes),	     cmocka_unit_test(phases_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
