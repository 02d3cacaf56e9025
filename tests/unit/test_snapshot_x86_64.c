/* x86-64 KVM state through snapshot sections (vmm/arch/snapshot_x86_64.c) on bare KVM VMs: a
 * vCPU and VM given known state are saved, loaded into a second VM, and read back the same; a
 * snapshot claiming a CPU feature the host lacks, or with a section of the wrong size, is
 * refused with one line. Needs /dev/kvm (hardware or kvm_pvm: no guest code runs); skipped (77)
 * without it. */
#include "vmm/arch/snapshot_x86_64.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#define MSR_LSTAR	   0xc0000082u
#define MSR_KERNEL_GS_BASE 0xc0000102u

static int kvm_fd = -1;

struct box {
	int vm, vcpu;
};

static struct box box_new(void)
{
	struct box b;
	b.vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	assert_true(b.vm >= 0);
	assert_int_equal(ioctl(b.vm, KVM_SET_TSS_ADDR, 0xfffbd000ul), 0);
	assert_int_equal(ioctl(b.vm, KVM_CREATE_IRQCHIP, 0), 0);
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	assert_int_equal(ioctl(b.vm, KVM_CREATE_PIT2, &pit), 0);
	b.vcpu = ioctl(b.vm, KVM_CREATE_VCPU, 0);
	assert_true(b.vcpu >= 0);
	return b;
}

static void box_free(struct box *b)
{
	close(b->vcpu);
	close(b->vm);
}

static void set_supported_cpuid(int vcpu)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(struct kvm_cpuid_entry2));
	c->nent = 256;
	assert_int_equal(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c), 0);
	assert_int_equal(ioctl(vcpu, KVM_SET_CPUID2, c), 0);
	free(c);
}

static uint64_t get_msr(int vcpu, uint32_t index)
{
	_Alignas(struct kvm_msrs)
	    uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)] = {0};
	struct kvm_msrs *m = (struct kvm_msrs *)buf;
	m->nmsrs = 1;
	m->entries[0].index = index;
	assert_int_equal(ioctl(vcpu, KVM_GET_MSRS, m), 1);
	return m->entries[0].data;
}

static void set_msr(int vcpu, uint32_t index, uint64_t data)
{
	_Alignas(struct kvm_msrs)
	    uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)] = {0};
	struct kvm_msrs *m = (struct kvm_msrs *)buf;
	m->nmsrs = 1;
	m->entries[0].index = index;
	m->entries[0].data = data;
	assert_int_equal(ioctl(vcpu, KVM_SET_MSRS, m), 1);
}

/* VM a with known state, saved into w (finished). */
static struct box saved(struct snap_writer *w)
{
	struct box a = box_new();
	set_supported_cpuid(a.vcpu);
	struct kvm_regs regs;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_REGS, &regs), 0);
	regs.rip = 0x1234567;
	regs.rax = 0xfeedface;
	regs.r15 = 0x0123456789abcdefull;
	regs.rflags = 0x2 | 0x40; /* ZF */
	assert_int_equal(ioctl(a.vcpu, KVM_SET_REGS, &regs), 0);
	struct kvm_sregs sregs;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_SREGS, &sregs), 0);
	sregs.ds.base = 0x10000;
	sregs.cr2 = 0xdead000;
	assert_int_equal(ioctl(a.vcpu, KVM_SET_SREGS, &sregs), 0);
	set_msr(a.vcpu, MSR_LSTAR, 0xffffffff81000000ull);
	set_msr(a.vcpu, MSR_KERNEL_GS_BASE, 0xffff888000001000ull);
	struct kvm_debugregs dr;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_DEBUGREGS, &dr), 0);
	dr.db[0] = 0x400000;
	assert_int_equal(ioctl(a.vcpu, KVM_SET_DEBUGREGS, &dr), 0);
	struct verr e = {0};
	snap_writer_init(w);
	int r = arch_vm_save(a.vm, w, &e);
	if (r == 0)
		r = arch_vcpu_save(kvm_fd, a.vcpu, 0, w, &e);
	if (r < 0)
		fail_msg("save: %s", e.msg);
	snap_writer_finish(w);
	return a;
}

static void round_trip(void **state)
{
	(void)state;
	struct snap_writer w;
	struct box a = saved(&w);
	struct snap_file f;
	struct verr e = {0};
	assert_int_equal(snap_parse(w.data, w.len, "state", &f, &e), 0);
	const struct snap_section *msrs = snap_find(&f, SNAP_VCPU_MSRS, 0);
	assert_non_null(msrs);
	assert_true(msrs->len >= 2 * sizeof(struct kvm_msr_entry));
	struct box b = box_new();
	int r = arch_vm_restore(b.vm, &f, &e);
	if (r == 0)
		r = arch_vcpu_restore(kvm_fd, b.vcpu, 0, &f, &e);
	if (r < 0)
		fail_msg("restore: %s", e.msg);
	struct kvm_regs ra, rb;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_REGS, &ra), 0);
	assert_int_equal(ioctl(b.vcpu, KVM_GET_REGS, &rb), 0);
	assert_memory_equal(&ra, &rb, sizeof(ra));
	assert_int_equal(rb.rip, 0x1234567);
	struct kvm_sregs sa, sb;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_SREGS, &sa), 0);
	assert_int_equal(ioctl(b.vcpu, KVM_GET_SREGS, &sb), 0);
	assert_memory_equal(&sa, &sb, sizeof(sa));
	assert_int_equal(sb.cr2, 0xdead000);
	assert_int_equal(get_msr(b.vcpu, MSR_LSTAR), 0xffffffff81000000ull);
	assert_int_equal(get_msr(b.vcpu, MSR_KERNEL_GS_BASE), 0xffff888000001000ull);
	struct kvm_debugregs da, db;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_DEBUGREGS, &da), 0);
	assert_int_equal(ioctl(b.vcpu, KVM_GET_DEBUGREGS, &db), 0);
	assert_int_equal(db.db[0], 0x400000);
	struct kvm_lapic_state la, lb;
	assert_int_equal(ioctl(a.vcpu, KVM_GET_LAPIC, &la), 0);
	assert_int_equal(ioctl(b.vcpu, KVM_GET_LAPIC, &lb), 0);
	assert_memory_equal(la.regs, lb.regs, 0x300); /* up to the timer's current count */
	struct kvm_irqchip ia = {.chip_id = 2}, ib = {.chip_id = 2};
	assert_int_equal(ioctl(a.vm, KVM_GET_IRQCHIP, &ia), 0);
	assert_int_equal(ioctl(b.vm, KVM_GET_IRQCHIP, &ib), 0);
	assert_memory_equal(&ia.chip.ioapic, &ib.chip.ioapic, sizeof(ia.chip.ioapic));
	snap_file_free(&f);
	snap_writer_free(&w);
	box_free(&a);
	box_free(&b);
}

/* A copy of w's file with section (type, 0) replaced by len bytes from data. */
static void rebuild(const struct snap_writer *w, uint32_t type, const void *data, size_t len,
		    struct snap_writer *out)
{
	struct snap_file f;
	struct verr e = {0};
	assert_int_equal(snap_parse(w->data, w->len, "state", &f, &e), 0);
	snap_writer_init(out);
	for (uint32_t i = 0; i < f.nsections; i++) {
		const struct snap_section *s = &f.sections[i];
		bool swap = s->type == type && s->index == 0;
		assert_int_equal(snap_add(out, s->type, s->index, swap ? data : s->data,
					  swap ? len : s->len, &e),
				 0);
	}
	snap_writer_finish(out);
	snap_file_free(&f);
}

static void refused(void **state)
{
	(void)state;
	struct snap_writer w, bad;
	struct box a = saved(&w);
	struct snap_file f;
	struct verr e = {0};
	assert_int_equal(snap_parse(w.data, w.len, "state", &f, &e), 0);
	/* every bit of leaf 7.0 ebx: a CPU with features this host lacks */
	const struct snap_section *c = snap_find(&f, SNAP_CPUID, 0);
	size_t n = c->len / sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid_entry2 *en = malloc(c->len);
	memcpy(en, c->data, c->len);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		if (en[i].function == 7 && en[i].index == 0) {
			en[i].ebx = 0xffffffffu;
			found = true;
		}
	snap_file_free(&f);
	if (found) {
		rebuild(&w, SNAP_CPUID, en, n * sizeof(*en), &bad);
		assert_int_equal(snap_parse(bad.data, bad.len, "state", &f, &e), 0);
		struct box b = box_new();
		assert_int_equal(arch_vcpu_restore(kvm_fd, b.vcpu, 0, &f, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "state: vcpu 0: CPUID leaf 0x7.0 ebx has 0x"));
		assert_non_null(strstr(e.msg, "which this host's KVM does not offer"));
		box_free(&b);
		snap_file_free(&f);
		snap_writer_free(&bad);
	}
	free(en);
	/* registers of another size */
	uint8_t regs[sizeof(struct kvm_regs) - 8] = {0};
	rebuild(&w, SNAP_VCPU_REGS, regs, sizeof(regs), &bad);
	assert_int_equal(snap_parse(bad.data, bad.len, "state", &f, &e), 0);
	struct box b = box_new();
	assert_int_equal(arch_vcpu_restore(kvm_fd, b.vcpu, 0, &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "the vcpu-regs section of 0 is"));
	/* MSRs that are not whole records */
	snap_file_free(&f);
	snap_writer_free(&bad);
	rebuild(&w, SNAP_VCPU_MSRS, regs, 24, &bad);
	assert_int_equal(snap_parse(bad.data, bad.len, "state", &f, &e), 0);
	box_free(&b);
	b = box_new();
	assert_int_equal(arch_vcpu_restore(kvm_fd, b.vcpu, 0, &f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vcpu-msrs section of 0 is 24 bytes"));
	box_free(&b);
	snap_file_free(&f);
	snap_writer_free(&bad);
	snap_writer_free(&w);
	box_free(&a);
}

int main(void)
{
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		printf("1..0 # SKIP no /dev/kvm: %s\n", strerror(errno));
		return 77;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
