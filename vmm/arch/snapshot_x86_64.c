/* x86-64 KVM state in and out of snapshot sections: contracts in snapshot_x86_64.h. The restore
 * order follows what KVM needs: CPUID before anything else (it sizes XSAVE and decides which
 * MSRs exist), the local APIC before the MSRs (the TSC deadline lives in the APIC's mode), the
 * events last (they may inject into the state just loaded). */
#include "vmm/arch/snapshot_x86_64.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_MAX_ENTRIES 256u
#define MSR_MAX		  4096u

/* A fixed-size state: KVM_GET_x into a section, and the section back through KVM_SET_x. */
static const struct fixed {
	uint32_t type;
	unsigned long get, set;
	size_t size;
	const char *get_name, *set_name;
} vcpu_fixed[] = {
#define F(t, G, S, T)                      \
	{                                  \
		t, G, S, sizeof(T), #G, #S \
	}
    F(SNAP_VCPU_MP_STATE, KVM_GET_MP_STATE, KVM_SET_MP_STATE, struct kvm_mp_state),
    F(SNAP_VCPU_REGS, KVM_GET_REGS, KVM_SET_REGS, struct kvm_regs),
    F(SNAP_VCPU_SREGS, KVM_GET_SREGS, KVM_SET_SREGS, struct kvm_sregs),
    F(SNAP_VCPU_XCRS, KVM_GET_XCRS, KVM_SET_XCRS, struct kvm_xcrs),
    F(SNAP_VCPU_DEBUGREGS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, struct kvm_debugregs),
    F(SNAP_VCPU_LAPIC, KVM_GET_LAPIC, KVM_SET_LAPIC, struct kvm_lapic_state),
    F(SNAP_VCPU_EVENTS, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, struct kvm_vcpu_events),
#undef F
};

static const struct fixed *fixed_of(uint32_t type)
{
	for (size_t i = 0; i < sizeof(vcpu_fixed) / sizeof(vcpu_fixed[0]); i++)
		if (vcpu_fixed[i].type == type)
			return &vcpu_fixed[i];
	return NULL;
}

/* The largest of these structures (kvm_lapic_state, 1 KiB) fits */
#define FIXED_MAX 1024u

static int save_fixed(int fd, unsigned id, const struct fixed *x, struct snap_writer *w,
		      struct verr *e)
{
	_Alignas(16) uint8_t buf[FIXED_MAX];
	memset(buf, 0, sizeof(buf));
	if (ioctl(fd, x->get, buf) < 0)
		return verr_set(e, -errno, "vcpu %u: ioctl (%s) failed: %s", id, x->get_name + 4,
				strerror(errno));
	return snap_add(w, x->type, id, buf, x->size, e);
}

static int restore_fixed(int fd, unsigned id, const struct fixed *x, const struct snap_file *f,
			 struct verr *e)
{
	_Alignas(16) uint8_t buf[FIXED_MAX];
	int r = snap_get(f, x->type, id, buf, x->size, e);
	if (r < 0)
		return r;
	if (x->type == SNAP_VCPU_EVENTS) {
		/* what the saved flags say is valid, and only that (never the SMM bits) */
		struct kvm_vcpu_events *ev = (struct kvm_vcpu_events *)buf;
		ev->flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_PAYLOAD;
	}
	if (ioctl(fd, x->set, buf) < 0)
		return verr_set(e, -errno,
				"vcpu %u: ioctl (%s) failed: %s: the saved state is not one this "
				"host's KVM takes",
				id, x->set_name + 4, strerror(errno));
	return 0;
}

/* KVM's CPUID list of ioctl req (KVM_GET_SUPPORTED_CPUID on /dev/kvm, KVM_GET_CPUID2 on a vCPU):
 * malloc'd, or NULL with e set. */
static struct kvm_cpuid2 *get_cpuid(int fd, unsigned long req, const char *name, unsigned id,
				    struct verr *e)
{
	struct kvm_cpuid2 *c =
	    calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!c) {
		verr_set(e, -ENOMEM, "vcpu %u: out of memory for CPUID", id);
		return NULL;
	}
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(fd, req, c) < 0) {
		verr_set(e, -errno, "vcpu %u: ioctl (%s) failed: %s", id, name, strerror(errno));
		free(c);
		return NULL;
	}
	return c;
}

/* The XSAVE area's size on this host: KVM_CAP_XSAVE2's (AMX's larger areas), at least the
 * classic 4 KiB. */
static size_t xsave_size(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

/* The MSRs KVM lists (those it saves and those it emulates): malloc'd, or NULL with e set. */
static struct kvm_msr_list *msr_list(int kvm_fd, struct verr *e)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		verr_set(e, -errno, "ioctl (KVM_GET_MSR_INDEX_LIST) failed: %s", strerror(errno));
		return NULL;
	}
	if (probe.nmsrs > MSR_MAX) {
		verr_set(e, -E2BIG, "KVM lists %u MSRs, past %u", probe.nmsrs, MSR_MAX);
		return NULL;
	}
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l) {
		verr_set(e, -ENOMEM, "out of memory for the MSR list");
		return NULL;
	}
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		verr_set(e, -errno, "ioctl (KVM_GET_MSR_INDEX_LIST) failed: %s", strerror(errno));
		free(l);
		return NULL;
	}
	return l;
}

/* Every listed MSR that reads back on this vCPU, as kvm_msr_entry records. KVM_GET_MSRS stops at
 * the first one it cannot read (one this CPU lacks): that one is left out and the rest read. */
static int save_msrs(int kvm_fd, int fd, unsigned id, struct snap_writer *w, struct verr *e)
{
	struct kvm_msr_list *l = msr_list(kvm_fd, e);
	if (!l)
		return e->code;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + l->nmsrs * sizeof(struct kvm_msr_entry));
	struct kvm_msr_entry *out = calloc(l->nmsrs ? l->nmsrs : 1, sizeof(*out));
	int r = 0;
	uint32_t kept = 0;
	if (!m || !out)
		r = verr_set(e, -ENOMEM, "vcpu %u: out of memory for the MSRs", id);
	for (uint32_t at = 0; r == 0 && at < l->nmsrs;) {
		m->nmsrs = l->nmsrs - at;
		for (uint32_t i = 0; i < m->nmsrs; i++)
			m->entries[i] = (struct kvm_msr_entry){.index = l->indices[at + i]};
		int n = ioctl(fd, KVM_GET_MSRS, m);
		if (n < 0) {
			r = verr_set(e, -errno, "vcpu %u: ioctl (KVM_GET_MSRS) failed: %s", id,
				     strerror(errno));
			break;
		}
		memcpy(out + kept, m->entries, (size_t)n * sizeof(*out));
		kept += (uint32_t)n;
		at += (uint32_t)n + 1; /* past the one it could not read */
	}
	if (r == 0)
		r = snap_add(w, SNAP_VCPU_MSRS, id, out, kept * sizeof(*out), e);
	free(out);
	free(m);
	free(l);
	return r;
}

static int restore_msrs(int fd, unsigned id, const struct snap_file *f, struct verr *e)
{
	const struct snap_section *s = snap_find(f, SNAP_VCPU_MSRS, id);
	if (!s)
		return verr_set(e, -EINVAL,
				"%s: no vcpu-msrs section for %u: the snapshot is "
				"incomplete",
				f->name, id);
	if (s->len % sizeof(struct kvm_msr_entry) ||
	    s->len / sizeof(struct kvm_msr_entry) > MSR_MAX)
		return verr_set(e, -EINVAL,
				"%s: the vcpu-msrs section of %u is %zu bytes, not a list of at "
				"most %u MSRs",
				f->name, id, s->len, MSR_MAX);
	uint32_t n = (uint32_t)(s->len / sizeof(struct kvm_msr_entry));
	struct kvm_msrs *m = calloc(1, sizeof(*m) + s->len);
	if (!m)
		return verr_set(e, -ENOMEM, "vcpu %u: out of memory for the MSRs", id);
	m->nmsrs = n;
	memcpy(m->entries, s->data, s->len);
	int r = 0;
	for (uint32_t i = 0; i < n && r == 0; i++)
		if (m->entries[i].reserved)
			r = verr_set(e, -EINVAL,
				     "%s: MSR 0x%x of vcpu %u has its reserved field set", f->name,
				     m->entries[i].index, id);
	int got = r == 0 ? ioctl(fd, KVM_SET_MSRS, m) : 0;
	if (r == 0 && (got < 0 || (uint32_t)got != n))
		r = verr_set(e, got < 0 ? -errno : -EINVAL,
			     "vcpu %u: ioctl (KVM_SET_MSRS) set %d of %u MSRs (stopped at 0x%x): "
			     "restore it on a host with the same CPU",
			     id, got, n, got >= 0 && (uint32_t)got < n ? m->entries[got].index : 0);
	free(m);
	return r;
}

/* Leaves and registers whose bits are CPU features, with the bits KVM or vmm set on their own
 * (OSXSAVE, OSPKE and the APIC bit follow the guest's CR4 and APIC base; vmm adds the hypervisor
 * and HTT bits). */
static const struct feature_reg {
	uint32_t function, index;
	int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t dynamic;
} feature_regs[] = {
    {1, 0, 2, (1u << 27) | (1u << 31)},
    {1, 0, 3, (1u << 9) | (1u << 28)},
    {7, 0, 1, 0},
    {7, 0, 2, 1u << 4},
    {7, 0, 3, 0},
    {7, 1, 0, 0},
    {0xd, 0, 0, 0},
    {0xd, 1, 0, 0},
    {0x80000001, 0, 2, 0},
    {0x80000001, 0, 3, 0},
};

static uint32_t reg_of(const struct kvm_cpuid_entry2 *en, int reg)
{
	const uint32_t r[4] = {en->eax, en->ebx, en->ecx, en->edx};
	return r[reg];
}

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid_entry2 *en, size_t n,
						uint32_t function, uint32_t index)
{
	for (size_t i = 0; i < n; i++)
		if (en[i].function == function &&
		    (en[i].index == index || !(en[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)))
			return &en[i];
	return NULL;
}

/* The saved CPUID against the host's: same vendor, no feature the host lacks. The host's is what
 * its KVM makes of everything it supports once set on the (new) vCPU: KVM adjusts some leaves as
 * they are set (kvm_pvm more than most), and KVM_GET_CPUID2 of the saved vCPU gave them so. */
static int check_cpuid(int kvm_fd, int vcpu_fd, unsigned id, const struct kvm_cpuid_entry2 *saved,
		       size_t n, const char *name, struct verr *e)
{
	struct kvm_cpuid2 *host =
	    get_cpuid(kvm_fd, KVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID", id, e);
	if (!host)
		return e->code;
	int r = 0;
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, host) < 0)
		r = verr_set(e, -errno, "vcpu %u: ioctl (KVM_SET_CPUID2) failed: %s", id,
			     strerror(errno));
	free(host);
	if (r < 0)
		return r;
	if (!(host = get_cpuid(vcpu_fd, KVM_GET_CPUID2, "KVM_GET_CPUID2", id, e)))
		return e->code;
	const struct kvm_cpuid_entry2 *sv = find_leaf(saved, n, 0, 0),
				      *hv = find_leaf(host->entries, host->nent, 0, 0);
	if (!sv || !hv || sv->ebx != hv->ebx || sv->ecx != hv->ecx || sv->edx != hv->edx)
		r = verr_set(e, -EINVAL,
			     "%s: vcpu %u: the snapshot's CPU vendor is not this host's: restore "
			     "it on a host with the same CPU",
			     name, id);
	for (size_t i = 0; r == 0 && i < sizeof(feature_regs) / sizeof(feature_regs[0]); i++) {
		const struct feature_reg *fr = &feature_regs[i];
		const struct kvm_cpuid_entry2 *s = find_leaf(saved, n, fr->function, fr->index);
		const struct kvm_cpuid_entry2 *h =
		    find_leaf(host->entries, host->nent, fr->function, fr->index);
		uint32_t want = s ? reg_of(s, fr->reg) & ~fr->dynamic : 0;
		uint32_t have = h ? reg_of(h, fr->reg) : 0;
		if (want & ~have)
			r = verr_set(
			    e, -EINVAL,
			    "%s: vcpu %u: CPUID leaf 0x%x.%u %s has 0x%x set, which this "
			    "host's KVM does not offer: restore it on a host with the same "
			    "CPU",
			    name, id, fr->function, fr->index,
			    (const char *[]){"eax", "ebx", "ecx", "edx"}[fr->reg], want & ~have);
	}
	free(host);
	return r;
}

int arch_vcpu_save(int kvm_fd, int vcpu_fd, unsigned id, struct snap_writer *w, struct verr *e)
{
	struct kvm_cpuid2 *c = get_cpuid(vcpu_fd, KVM_GET_CPUID2, "KVM_GET_CPUID2", id, e);
	if (!c)
		return e->code;
	int r = snap_add(w, SNAP_CPUID, id, c->entries, c->nent * sizeof(c->entries[0]), e);
	free(c);
	for (size_t i = 0; r == 0 && i < sizeof(vcpu_fixed) / sizeof(vcpu_fixed[0]); i++)
		r = save_fixed(vcpu_fd, id, &vcpu_fixed[i], w, e);
	if (r < 0)
		return r;
	size_t xs = xsave_size(kvm_fd);
	void *x = calloc(1, xs);
	if (!x)
		return verr_set(e, -ENOMEM, "vcpu %u: out of memory for XSAVE", id);
	if (ioctl(vcpu_fd, xs > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x) < 0)
		r = verr_set(e, -errno, "vcpu %u: ioctl (KVM_GET_XSAVE) failed: %s", id,
			     strerror(errno));
	else
		r = snap_add(w, SNAP_VCPU_XSAVE, id, x, xs, e);
	free(x);
	return r < 0 ? r : save_msrs(kvm_fd, vcpu_fd, id, w, e);
}

int arch_vcpu_restore(int kvm_fd, int vcpu_fd, unsigned id, const struct snap_file *f,
		      struct verr *e)
{
	const struct snap_section *s = snap_find(f, SNAP_CPUID, id);
	size_t esz = sizeof(struct kvm_cpuid_entry2);
	if (!s)
		return verr_set(e, -EINVAL,
				"%s: no cpuid section for %u: the snapshot is incomplete", f->name,
				id);
	if (!s->len || s->len % esz || s->len / esz > CPUID_MAX_ENTRIES)
		return verr_set(e, -EINVAL,
				"%s: the cpuid section of %u is %zu bytes, not 1 to %u entries",
				f->name, id, s->len, CPUID_MAX_ENTRIES);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + s->len);
	if (!c)
		return verr_set(e, -ENOMEM, "vcpu %u: out of memory for CPUID", id);
	c->nent = (uint32_t)(s->len / esz);
	memcpy(c->entries, s->data, s->len);
	int r = check_cpuid(kvm_fd, vcpu_fd, id, c->entries, c->nent, f->name, e);
	if (r == 0 && ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		r = verr_set(e, -errno, "vcpu %u: ioctl (KVM_SET_CPUID2) failed: %s", id,
			     strerror(errno));
	free(c);
	static const uint32_t order[] = {SNAP_VCPU_MP_STATE, SNAP_VCPU_REGS, SNAP_VCPU_SREGS};
	for (size_t i = 0; r == 0 && i < sizeof(order) / sizeof(order[0]); i++)
		r = restore_fixed(vcpu_fd, id, fixed_of(order[i]), f, e);
	if (r < 0)
		return r;
	/* XSAVE: KVM reads as many bytes as this host's area has; a saved area may be shorter
	 * (zeros past it: the components it did not have) but not longer */
	size_t xs = xsave_size(kvm_fd);
	s = snap_find(f, SNAP_VCPU_XSAVE, id);
	if (!s || s->len < sizeof(struct kvm_xsave) || s->len > xs)
		return verr_set(e, -EINVAL,
				"%s: the vcpu-xsave section of %u is %s%zu bytes, this host's "
				"area %zu: restore it on a host with the same CPU",
				f->name, id, s ? "" : "missing, ", s ? s->len : 0, xs);
	void *x = calloc(1, xs);
	if (!x)
		return verr_set(e, -ENOMEM, "vcpu %u: out of memory for XSAVE", id);
	memcpy(x, s->data, s->len);
	if (ioctl(vcpu_fd, KVM_SET_XSAVE, x) < 0)
		r = verr_set(e, -errno, "vcpu %u: ioctl (KVM_SET_XSAVE) failed: %s", id,
			     strerror(errno));
	free(x);
	static const uint32_t rest[] = {SNAP_VCPU_XCRS, SNAP_VCPU_DEBUGREGS, SNAP_VCPU_LAPIC};
	for (size_t i = 0; r == 0 && i < sizeof(rest) / sizeof(rest[0]); i++)
		r = restore_fixed(vcpu_fd, id, fixed_of(rest[i]), f, e);
	if (r == 0)
		r = restore_msrs(vcpu_fd, id, f, e);
	return r < 0 ? r : restore_fixed(vcpu_fd, id, fixed_of(SNAP_VCPU_EVENTS), f, e);
}

int arch_vm_save(int vm_fd, struct snap_writer *w, struct verr *e)
{
	int r = 0;
	for (uint32_t chip = 0; chip < 3 && r == 0; chip++) {
		struct kvm_irqchip ic = {.chip_id = chip};
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
			return verr_set(e, -errno, "ioctl (KVM_GET_IRQCHIP %u) failed: %s", chip,
					strerror(errno));
		r = chip < 2 ? snap_add(w, SNAP_VM_PIC, chip, &ic.chip.pic, sizeof(ic.chip.pic), e)
			     : snap_add(w, SNAP_VM_IOAPIC, 0, &ic.chip.ioapic,
					sizeof(ic.chip.ioapic), e);
	}
	struct kvm_pit_state2 pit;
	memset(&pit, 0, sizeof(pit));
	if (r == 0 && ioctl(vm_fd, KVM_GET_PIT2, &pit) < 0)
		return verr_set(e, -errno, "ioctl (KVM_GET_PIT2) failed: %s", strerror(errno));
	if (r == 0)
		r = snap_add(w, SNAP_VM_PIT, 0, &pit, sizeof(pit), e);
	struct kvm_clock_data clock;
	memset(&clock, 0, sizeof(clock));
	if (r == 0 && ioctl(vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return verr_set(e, -errno, "ioctl (KVM_GET_CLOCK) failed: %s", strerror(errno));
	return r < 0 ? r : snap_add(w, SNAP_VM_CLOCK, 0, &clock, sizeof(clock), e);
}

int arch_vm_restore(int vm_fd, const struct snap_file *f, struct verr *e)
{
	int r = 0;
	for (uint32_t chip = 0; chip < 3 && r == 0; chip++) {
		struct kvm_irqchip ic = {.chip_id = chip};
		r = chip < 2 ? snap_get(f, SNAP_VM_PIC, chip, &ic.chip.pic, sizeof(ic.chip.pic), e)
			     : snap_get(f, SNAP_VM_IOAPIC, 0, &ic.chip.ioapic,
					sizeof(ic.chip.ioapic), e);
		if (r == 0 && ioctl(vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
			r = verr_set(e, -errno, "ioctl (KVM_SET_IRQCHIP %u) failed: %s", chip,
				     strerror(errno));
	}
	struct kvm_pit_state2 pit;
	if (r == 0 && (r = snap_get(f, SNAP_VM_PIT, 0, &pit, sizeof(pit), e)) == 0 &&
	    ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
		r = verr_set(e, -errno, "ioctl (KVM_SET_PIT2) failed: %s", strerror(errno));
	struct kvm_clock_data clock;
	if (r == 0 && (r = snap_get(f, SNAP_VM_CLOCK, 0, &clock, sizeof(clock), e)) == 0) {
		/* the guest's clock goes on from where it stopped; KVM takes no other flag here */
		clock.flags = 0;
		if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0)
			r = verr_set(e, -errno, "ioctl (KVM_SET_CLOCK) failed: %s",
				     strerror(errno));
	}
	return r;
}
