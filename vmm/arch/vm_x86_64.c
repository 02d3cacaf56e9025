/* x86-64 parts of the VM: KVM's in-kernel irqchip and PIT, CPUID, MSRs, local APIC wiring, the
 * boot vCPU's registers for the PVH (32-bit) and bzImage (64-bit) entries, port I/O exits, the
 * host's virtualisation support, and where a vCPU stopped by an internal error was. */
#include "vmm/arch/boot_x86_64.h"
#include "vmm/vcpu_fault.h"
#include "vmm/vm.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING 0x1
#define MTRR_ENABLE_WB_DEFAULT	0x806 /* MTRRs on, default type write-back */

#define CR0_PE	 0x1ULL
#define CR0_ET	 0x10ULL
#define CR0_PG	 0x80000000ULL
#define CR4_PAE	 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

#define CPUID_HYPERVISOR (1u << 31) /* leaf 1 ECX */
#define CPUID_HTT	 (1u << 28) /* leaf 1 EDX */
#define CPUID_VMX	 (1u << 5)  /* leaf 1 ECX: Intel VT-x */
#define CPUID_SVM	 (1u << 2)  /* leaf 0x80000001 ECX: AMD SVM */

#define PAGE_SIZE_4K 4096u

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd, struct verr *e);

int arch_vm_init(struct vm *vm, struct verr *e)
{
	/* What KVM supports, asked once: each vCPU gets a copy with its own topology. */
	vm->cpuid = supported_cpuid(vm->kvm_fd, e);
	if (!vm->cpuid)
		return e->code;
	uint64_t ident = KVM_IDENTITY_MAP_ADDR;
	/* Intel needs these pages for real-mode emulation; they sit in the MMIO hole. */
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
		return verr_set(e, -errno, "ioctl (KVM_SET_IDENTITY_MAP_ADDR) failed: %s",
				strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return verr_set(e, -errno, "ioctl (KVM_SET_TSS_ADDR) failed: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return verr_set(e, -errno, "ioctl (KVM_CREATE_IRQCHIP) failed: %s",
				strerror(errno));
	/* The PIT in the kernel, with port 0x61 (speaker) answered there too. */
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return verr_set(e, -errno, "ioctl (KVM_CREATE_PIT2) failed: %s", strerror(errno));
	return 0;
}

int arch_devices_init(struct vm *vm, struct verr *e)
{
	(void)vm;
	(void)e;
	return 0;
}

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd, struct verr *e)
{
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c) {
			verr_set(e, -ENOMEM, "out of memory for CPUID");
			return NULL;
		}
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int err = errno;
		free(c);
		if (err != E2BIG) {
			verr_set(e, -err, "ioctl (KVM_GET_SUPPORTED_CPUID) failed: %s",
				 strerror(err));
			return NULL;
		}
	}
	verr_set(e, -E2BIG, "ioctl (KVM_GET_SUPPORTED_CPUID): too many entries");
	return NULL;
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

/* What the host's KVM supports, with the topology of this VM (one package, ncpus cores, APIC ID =
 * vCPU index) and the hypervisor leaves a Linux guest looks for. */
static void cpuid_patch(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus)
{
	unsigned shift = bits_for(ncpus);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *en = &c->entries[i];
		switch (en->function) {
		case 1:
			en->ebx = (en->ebx & 0x0000ffffu) | (id << 24) | ((ncpus & 0xff) << 16);
			en->ecx |= CPUID_HYPERVISOR;
			if (ncpus > 1)
				en->edx |= CPUID_HTT;
			break;
		case 4:
			en->eax = (en->eax & 0x03ffffffu) | ((ncpus - 1) << 26);
			break;
		case 0xb:
		case 0x1f:
			en->edx = id;
			if (en->index == 0) {
				en->eax = 0;
				en->ebx = 1;
				en->ecx = (1u << 8) | 0;
			} else if (en->index == 1) {
				en->eax = shift;
				en->ebx = ncpus;
				en->ecx = (2u << 8) | 1;
			} else {
				en->eax = en->ebx = 0;
				en->ecx = en->index;
			}
			break;
		case 0x40000000:
			en->eax = 0x40000001;
			memcpy(&en->ebx, "KVMK", 4);
			memcpy(&en->ecx, "VMKV", 4);
			memcpy(&en->edx, "M\0\0\0", 4);
			break;
		case 0x80000008:
			en->ecx = (en->ecx & ~0xf0ffu) | (shift << 12) | ((ncpus - 1) & 0xff);
			break;
		case 0x8000001e:
			en->eax = id;
			en->ebx = id & 0xff;
			en->ecx = 0;
			break;
		}
	}
}

void arch_vm_destroy(struct vm *vm)
{
	free(vm->cpuid);
	vm->cpuid = NULL;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *v, struct verr *e)
{
	size_t size = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c)
		return verr_set(e, -ENOMEM, "vcpu %u: out of memory for CPUID", v->id);
	memcpy(c, vm->cpuid, size);
	cpuid_patch(c, v->id, vm->ncpus);
	int r = ioctl(v->fd, KVM_SET_CPUID2, c);
	free(c);
	if (r < 0)
		return verr_set(e, -errno, "vcpu %u: ioctl (KVM_SET_CPUID2) failed: %s", v->id,
				strerror(errno));

	static const struct {
		uint32_t index;
		uint64_t data;
	} msrs[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_LSTAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_IA32_TSC, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB_DEFAULT},
	};
	const unsigned n = sizeof(msrs) / sizeof(msrs[0]);
	/* struct kvm_msrs ends in a flexible array: header and entries in one aligned buffer
	 * (a struct with it as a member is a GNU extension clang warns about). */
	_Alignas(struct kvm_msrs)
	    uint8_t buf[sizeof(struct kvm_msrs) +
			sizeof(msrs) / sizeof(msrs[0]) * sizeof(struct kvm_msr_entry)];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;
	memset(buf, 0, sizeof(buf));
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m->entries[i].index = msrs[i].index;
		m->entries[i].data = msrs[i].data;
	}
	r = ioctl(v->fd, KVM_SET_MSRS, m);
	if (r < 0 || (unsigned)r != n)
		return verr_set(e, r < 0 ? -errno : -EINVAL,
				"vcpu %u: ioctl (KVM_SET_MSRS) set %d of %u MSRs (stopped at 0x%x)",
				v->id, r, n, r >= 0 && (unsigned)r < n ? msrs[r].index : 0);

	/* LINT0 delivers the 8259's ExtINT and LINT1 NMIs, as a BIOS would leave them. */
	struct kvm_lapic_state lapic;
	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return verr_set(e, -errno, "vcpu %u: ioctl (KVM_GET_LAPIC) failed: %s", v->id,
				strerror(errno));
	uint32_t lvt0, lvt1;
	memcpy(&lvt0, lapic.regs + APIC_LVT0, 4);
	memcpy(&lvt1, lapic.regs + APIC_LVT1, 4);
	lvt0 = (lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	lvt1 = (lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(lapic.regs + APIC_LVT0, &lvt0, 4);
	memcpy(lapic.regs + APIC_LVT1, &lvt1, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return verr_set(e, -errno, "vcpu %u: ioctl (KVM_SET_LAPIC) failed: %s", v->id,
				strerror(errno));

	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return verr_set(e, -errno, "vcpu %u: ioctl (KVM_SET_FPU) failed: %s", v->id,
				strerror(errno));
	return 0;
}

/* The hidden part of a segment register, decoded from our own GDT entry so the two agree. */
static struct kvm_segment segment(unsigned sel)
{
	uint64_t d = boot_gdt[sel / 8];
	struct kvm_segment s = {
	    .base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24),
	    .limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16)),
	    .selector = (uint16_t)sel,
	    .type = (d >> 40) & 0xf,
	    .s = (d >> 44) & 1,
	    .dpl = (d >> 45) & 3,
	    .present = (d >> 47) & 1,
	    .avl = (d >> 52) & 1,
	    .l = (d >> 53) & 1,
	    .db = (d >> 54) & 1,
	    .g = (d >> 55) & 1,
	};
	if (s.g)
		s.limit = (s.limit << 12) | 0xfff;
	s.unusable = !s.present;
	return s;
}

static int vcpu_set_boot_regs(struct vcpu *v, const struct kernel_image *k, struct verr *e)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return verr_set(e, -errno, "ioctl (KVM_GET_SREGS) failed: %s", strerror(errno));
	struct kvm_regs regs = {.rflags = 0x2, .rip = k->entry};
	struct kvm_segment data = segment(GDT_SEL_DATA);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = segment(GDT_SEL_TSS);
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = sizeof(boot_gdt) - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	if (k->kind == KERNEL_PVH_ELF) {
		/* PVH: 32-bit protected mode, paging off, %ebx = hvm_start_info. */
		sregs.cs = segment(GDT_SEL_CODE32);
		sregs.cr0 = CR0_PE | CR0_ET;
		sregs.cr3 = 0;
		sregs.cr4 = 0;
		sregs.efer = 0;
		regs.rbx = BOOT_START_INFO_ADDR;
	} else {
		/* 64-bit boot protocol: long mode on identity-mapped pages, %rsi = boot_params. */
		sregs.cs = segment(GDT_SEL_CODE64);
		sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
		sregs.cr3 = BOOT_PML4_ADDR;
		sregs.cr4 = CR4_PAE;
		sregs.efer = EFER_LME | EFER_LMA;
		regs.rsi = BOOT_ZERO_PAGE_ADDR;
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return verr_set(e, -errno, "ioctl (KVM_SET_SREGS) failed: %s", strerror(errno));
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return verr_set(e, -errno, "ioctl (KVM_SET_REGS) failed: %s", strerror(errno));
	return 0;
}

int arch_vcpu_set_entry_trap(struct vcpu *v, uint64_t entry)
{
	struct kvm_guest_debug dbg = {
	    .control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
	};
	dbg.arch.debugreg[0] = entry;
	dbg.arch.debugreg[7] = 0x1; /* L0: DR0 enabled, instruction fetch, 1 byte */
	return ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0 ? -errno : 0;
}

int arch_vcpu_clear_entry_trap(struct vcpu *v)
{
	struct kvm_guest_debug dbg = {.control = 0};
	return ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0 ? -errno : 0;
}

int arch_vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	if (run->exit_reason != KVM_EXIT_IO)
		return 1;
	unsigned size = run->io.size;
	uint64_t bytes = (uint64_t)size * run->io.count;
	if ((size != 1 && size != 2 && size != 4) || run->io.data_offset > v->run_size ||
	    bytes > v->run_size - run->io.data_offset)
		return -EINVAL;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	/* String I/O (rep outsb) arrives as count consecutive accesses. */
	for (uint32_t i = 0; i < run->io.count; i++, data += size)
		bus_dispatch(&v->vm->pio, run->io.port, data, size, is_write);
	return 0;
}

bool arch_host_has_hw_virt(void)
{
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & CPUID_VMX))
		return true;
	/* __get_cpuid checks the highest extended leaf first */
	return __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & CPUID_SVM);
}

bool arch_kvm_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

static int fault_ioctl_failed(struct vcpu_fault *f, const char *name)
{
	f->failed_ioctl = name;
	f->err = -errno;
	return f->err;
}

int arch_vcpu_fault_addr(struct vcpu *v, struct vcpu_fault *f)
{
	struct kvm_regs regs;
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return fault_ioctl_failed(f, "KVM_GET_REGS");
	f->have_rip = true;
	f->rip = regs.rip;
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return fault_ioctl_failed(f, "KVM_GET_SREGS");
	/* In 64-bit mode the CS base is ignored (0); outside it linear addresses are 32 bits. */
	uint64_t linear =
	    (sregs.efer & EFER_LMA) && sregs.cs.l ? regs.rip : (uint32_t)(sregs.cs.base + regs.rip);
	struct kvm_translation tr = {.linear_address = linear};
	if (ioctl(v->fd, KVM_TRANSLATE, &tr) < 0)
		return fault_ioctl_failed(f, "KVM_TRANSLATE");
	if (!tr.valid)
		return 0;
	f->have_gpa = true;
	f->gpa = tr.physical_address;
	/* The next 4 KiB page may map anywhere: the bytes stop at this one's end. */
	unsigned left = PAGE_SIZE_4K - (unsigned)(linear & (PAGE_SIZE_4K - 1));
	f->gpa_span = left < VCPU_FAULT_BYTES ? left : VCPU_FAULT_BYTES;
	return 0;
}

unsigned arch_memory_layout(uint64_t bytes, struct guest_region out[GUEST_MEM_MAX_REGIONS])
{
	return x86_memory_layout(bytes, out);
}

int arch_boot_setup(struct vm *vm, const char *cmdline, struct verr *e)
{
	return x86_boot_setup(&vm->mem, &vm->kernel, cmdline, vm->initrd_gpa, vm->initrd_size,
			      vm->ncpus, e);
}

int arch_vcpus_ready(struct vm *vm, struct verr *e)
{
	return vcpu_set_boot_regs(&vm->vcpus[0], &vm->kernel, e);
}
