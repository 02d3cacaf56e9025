/* x86-64 KVM state in and out of snapshot sections (docs/snapshot.md): each vCPU's registers,
 * special registers, XSAVE area, XCRs, MSRs (every one KVM lists that reads back), local APIC, MP
 * state, pending events and debug registers, with its CPUID; the VM's PICs, IOAPIC, PIT and
 * kvmclock. They take KVM file descriptors, not a struct vm, so the unit test drives them on
 * bare KVM VMs. Every failure is one line naming the vCPU (or the VM part) and the ioctl. */
#ifndef VMM_SNAPSHOT_X86_64_H
#define VMM_SNAPSHOT_X86_64_H

#include "vmm/snapshot/snapfile.h"

/* vCPU id's state (its fd a stopped vCPU's) into w's sections of index id. kvm_fd gives the MSR
 * list and the XSAVE size. 0 or a negative errno. */
int arch_vcpu_save(int kvm_fd, int vcpu_fd, unsigned id, struct snap_writer *w, struct verr *e);

/* The state saved for vCPU id loaded into vcpu_fd (a new vCPU of a VM with an irqchip), after
 * checking its CPUID against what this host's KVM supports: a feature bit the host lacks refuses
 * the snapshot ("vCPU 0: CPUID leaf 0x7.0 ebx has 0x20 set, which this host's KVM does not
 * offer: restore it on a host with the same CPU"), as does another vendor. 0 or a negative
 * errno. */
int arch_vcpu_restore(int kvm_fd, int vcpu_fd, unsigned id, const struct snap_file *f,
		      struct verr *e);

/* The VM's in-kernel devices (PIC master and slave, IOAPIC, PIT) and kvmclock into w. */
int arch_vm_save(int vm_fd, struct snap_writer *w, struct verr *e);
/* ... and back into vm_fd (a VM with an irqchip and a PIT, before its vCPUs run). */
int arch_vm_restore(int vm_fd, const struct snap_file *f, struct verr *e);

#endif
