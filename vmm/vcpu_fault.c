/* The internal-error line: suberror names, the instruction bytes at the guest's rip, the kvm_pvm
 * hint. Pure: the tests build faults by hand and read bytes from a guest_mem of their own. */
#include "vmm/vcpu_fault.h"
#include "vmm/log.h"

#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>

unsigned vcpu_fault_read_bytes(struct vcpu_fault *f, const struct guest_mem *m)
{
	f->nbytes = 0;
	if (!f->have_gpa)
		return 0;
	unsigned n = f->gpa_span < VCPU_FAULT_BYTES ? f->gpa_span : VCPU_FAULT_BYTES;
	/* The longest prefix the checked accessor grants: shorter where the region ends. */
	for (; n > 0; n--)
		if (guest_mem_read(m, f->gpa, f->bytes, n) == 0)
			break;
	f->nbytes = n;
	return n;
}

static void suberror_text(uint32_t sub, const char **name, const char **what)
{
	switch (sub) {
	case KVM_INTERNAL_ERROR_EMULATION:
		*name = "emulation";
		*what = "KVM could not emulate this instruction";
		return;
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		*name = "simul_ex";
		*what = "the guest took an exception while KVM was delivering another one";
		return;
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		*name = "delivery_ev";
		*what = "KVM could not deliver an interrupt or exception to the guest";
		return;
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		*name = "unexpected_exit_reason";
		*what = "the CPU left the guest for a reason KVM does not handle";
		return;
	default:
		*name = "unknown";
		*what = "the guest ran into something KVM cannot handle";
		return;
	}
}

size_t vcpu_fault_format(const struct vcpu_fault *f, char *buf, size_t cap)
{
	const char *name, *what;
	suberror_text(f->suberror, &name, &what);
	size_t at = 0;
	if (cap)
		buf[0] = 0;
	str_appendf(buf, cap, &at, "vcpu %u: KVM internal error (suberror %u, %s)", f->vcpu,
		    f->suberror, name);
	if (!f->have_rip) {
		str_appendf(buf, cap, &at, " at an unknown rip (ioctl (%s) failed: %s)",
			    f->failed_ioctl ? f->failed_ioctl : "?", strerror(-f->err));
	} else {
		str_appendf(buf, cap, &at, " at rip 0x%llx", (unsigned long long)f->rip);
		if (f->have_gpa && f->nbytes)
			str_appendf(buf, cap, &at, " (gpa 0x%llx):", (unsigned long long)f->gpa);
		else if (f->have_gpa)
			str_appendf(buf, cap, &at,
				    " (gpa 0x%llx, outside guest memory): unreadable",
				    (unsigned long long)f->gpa);
		else if (f->failed_ioctl)
			str_appendf(
			    buf, cap, &at,
			    " (no guest physical address: ioctl (%s) failed: %s): unreadable",
			    f->failed_ioctl, strerror(-f->err));
		else
			str_appendf(buf, cap, &at,
				    " (no valid translation to guest memory): unreadable");
		unsigned n = f->nbytes < VCPU_FAULT_BYTES ? f->nbytes : VCPU_FAULT_BYTES;
		for (unsigned i = 0; f->have_gpa && i < n; i++)
			str_appendf(buf, cap, &at, " %02x", f->bytes[i]);
	}
	str_appendf(buf, cap, &at, ": %s", what);
	if (f->kvm_pvm)
		str_appendf(
		    buf, cap, &at,
		    "; /dev/kvm here is kvm_pvm (no VT-x/SVM), which cannot run this guest: run "
		    "it in the nested harness (tests/nested/with-kvm.sh)");
	return at;
}
