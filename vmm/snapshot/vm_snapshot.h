/* A snapshot of a paused VM (docs/snapshot.md): its state file (the machine description, each
 * vCPU's and the VM's KVM state, every device's transport and own state, the 8250) and its
 * guest memory, written into files the caller opened: vmm opens nothing itself, so it needs no
 * access to the snapshot's directory (`vmm ctl snapshot DIR` creates the files and passes their
 * descriptors over the control socket). */
#ifndef VMM_VM_SNAPSHOT_H
#define VMM_VM_SNAPSHOT_H

#include "vmm/log.h"

#include <stddef.h>
#include <stdint.h>

struct vm;

struct vm_snapshot_info {
	size_t state_bytes;	 /* the state file's length */
	unsigned sections;	 /* its sections */
	uint64_t memory_bytes;	 /* the memory file's length: all of guest RAM */
	uint64_t memory_written; /* of which not zero pages (the rest is left as holes) */
	double ms;		 /* how long it took */
};

/* The memory section's payload: u64 total bytes, u32 region count, u32 zero, then per region
 * u64 guest physical address, u64 size, u64 offset in the memory file. */
#define VM_SNAPSHOT_MEMORY_LEN(n) (16u + 24u * (n))

/* Writes the snapshot of vm (paused: -EBUSY otherwise) into state_fd and mem_fd, regular files
 * open for writing, which are truncated first and synced last. Every device is quiesced first
 * (its requests in flight finished); a device model without snapshot hooks refuses it with one
 * line naming the device (-ENOTSUP). 0 with *info filled, or a negative errno with one line in
 * e. On an error the files hold no usable snapshot (the caller removes them). */
int vm_snapshot(struct vm *vm, int state_fd, int mem_fd, struct vm_snapshot_info *info,
		struct verr *e);

/* Restore (`vmm --restore DIR`). */
struct vm_config;
/* DIR/state read and checked whole, and its description loaded into c as --config would load a
 * file (flags after --restore override its control keys). 0, or a negative errno with one line
 * in e naming the file. */
int vm_snapshot_load_description(struct vm_config *c, const char *dir, struct verr *e);
/* vm_create's first restore step, once guest memory is laid out from the description: reads
 * DIR/state again, checks its memory section against this layout and DIR/memory's size, and
 * maps DIR/memory over guest RAM (MAP_PRIVATE: pages load as the guest touches them, its writes
 * stay in this process). Keeps the state for vm_restore_state. 0, or -errno with one line. */
int vm_restore_begin(struct vm *vm, const char *dir, struct verr *e);
/* Once devices and vCPUs exist (none has run): each device's state checked and loaded (its
 * model's restore, then the transport's), the 8250's, the VM's irqchip, PIT and kvmclock, then
 * each vCPU's. The state is freed. 0, or a negative errno with one line in e. */
int vm_restore_state(struct vm *vm, struct verr *e);
/* Once the event loop is about to run: every ready queue of every running device is kicked, so
 * that what the guest had made available when it was paused is taken. */
void vm_restore_kick(struct vm *vm);
/* Frees what vm_restore_begin kept, if vm_restore_state did not (an error path). */
void vm_restore_free(struct vm *vm);

#endif
