/* The one line vmm prints when KVM stops a vCPU with an internal error: where the guest was (its
 * instruction pointer and that address in guest memory), the instruction bytes there, and what
 * the suberror means. Pure code (no KVM): the arch hook fills the addresses, vcpu.c the rest. */
#ifndef VMM_VCPU_FAULT_H
#define VMM_VCPU_FAULT_H

#include "vmm/memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCPU_FAULT_BYTES 15 /* the longest x86 instruction */

struct vcpu_fault {
	unsigned vcpu;
	uint32_t suberror; /* kvm_run.internal.suberror (KVM_INTERNAL_ERROR_*) */
	bool have_rip;	   /* the registers could be read */
	uint64_t rip;
	bool have_gpa; /* rip translated to a guest physical address */
	uint64_t gpa;
	/* Bytes at gpa that belong to the same guest page (the next page may map elsewhere):
	 * at most VCPU_FAULT_BYTES. */
	unsigned gpa_span;
	const char *failed_ioctl; /* when an ioctl kept the hook from telling: its name */
	int err;		  /* and its negative errno */
	uint8_t bytes[VCPU_FAULT_BYTES];
	unsigned nbytes; /* how many of bytes[] were read (0: unreadable) */
	bool kvm_pvm;	 /* /dev/kvm is kvm_pvm on a CPU without VT-x/SVM */
};

/* Copies the instruction bytes at f->gpa (up to f->gpa_span) into f->bytes through the checked
 * accessor, fewer where the region ends there; none when !f->have_gpa or the address is outside
 * guest memory. Sets and returns f->nbytes. */
unsigned vcpu_fault_read_bytes(struct vcpu_fault *f, const struct guest_mem *m);

/* Writes the line (no "vmm: " prefix, no newline) into buf, truncated to cap - 1 characters and
 * always terminated when cap > 0. Returns the length it needed, like snprintf. */
size_t vcpu_fault_format(const struct vcpu_fault *f, char *buf, size_t cap);

#endif
