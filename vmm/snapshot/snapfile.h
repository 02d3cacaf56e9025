/* The snapshot state file's codec (docs/snapshot.md): a header and a list of typed, checksummed
 * sections, written from memory in one go and read back whole, every field checked. It knows the
 * section types and their names, not what is in them: vCPU, VM and device code fills and reads
 * the payloads. A state file comes from the user, so a reader treats it as hostile: no offset or
 * length in it is used before it is checked against the file's own size and this vmm's bounds,
 * and every refusal is one line naming the file, the section and what to do. */
#ifndef VMM_SNAPFILE_H
#define VMM_SNAPFILE_H

#include "vmm/log.h"

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC	     "VMMSNAP\n"
#define SNAP_FORMAT_VERSION  1u
#define SNAP_HEADER_LEN	     40u
#define SNAP_SECTION_HDR_LEN 24u
#define SNAP_MAX_SECTIONS    4096u
#define SNAP_MAX_SECTION     (16u << 20) /* the largest payload (a description, an XSAVE area) */
#define SNAP_MAX_FILE	     (256u << 20)

/* What a section holds. Its index says whose it is: the vCPU for SNAP_VCPU_*, the device's slot
 * for SNAP_DEV_*, 0 (or a chip's number, for SNAP_VM_PIC) otherwise. The numbers are the file
 * format's: never reuse or renumber one. */
enum snap_type {
	SNAP_VMM = 1,	      /* the vmm version that wrote it (text) */
	SNAP_DESCRIPTION = 2, /* the machine description (config_to_json's JSON) */
	SNAP_CPUID = 3,	      /* the CPUID entries the vCPUs were given */
	SNAP_MEMORY = 4,      /* the memory file's name and size */
	SNAP_VCPU_REGS = 16,
	SNAP_VCPU_SREGS = 17,
	SNAP_VCPU_XSAVE = 18,
	SNAP_VCPU_XCRS = 19,
	SNAP_VCPU_MSRS = 20,
	SNAP_VCPU_LAPIC = 21,
	SNAP_VCPU_MP_STATE = 22,
	SNAP_VCPU_EVENTS = 23,
	SNAP_VCPU_DEBUGREGS = 24,
	SNAP_VM_PIC = 32, /* index 0 the master, 1 the slave */
	SNAP_VM_IOAPIC = 33,
	SNAP_VM_PIT = 34,
	SNAP_VM_CLOCK = 35,
	SNAP_DEV_TRANSPORT = 48, /* the virtio-mmio transport's registers and queues */
	SNAP_DEV_STATE = 49,	 /* the device's own state */
	SNAP_SERIAL = 50,
	SNAP_I8042 = 51,
};

/* "vcpu-regs", "device-state" ...; NULL for a number that is no type. */
const char *snap_type_name(uint32_t type);

/* A state file being built, in memory. */
struct snap_writer {
	uint8_t *data;
	size_t len, cap;
	uint32_t nsections;
};

void snap_writer_init(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);
/* Appends a section (copied). 0; -EINVAL for a type that is not one or a (type, index) already
 * there, -E2BIG past SNAP_MAX_SECTION, SNAP_MAX_SECTIONS or SNAP_MAX_FILE, -ENOMEM, with one
 * line in e. */
int snap_add(struct snap_writer *w, uint32_t type, uint32_t index, const void *data, size_t len,
	     struct verr *e);
/* Fills in the header: w->data[0..w->len) is then the file. Sections may not be added after. */
void snap_writer_finish(struct snap_writer *w);

struct snap_section {
	uint32_t type, index;
	const uint8_t *data; /* into the file's bytes */
	size_t len;
};

/* A state file read back: its sections, pointing into the bytes given to snap_parse. */
struct snap_file {
	const char *name; /* for the error lines (borrowed) */
	struct snap_section *sections;
	uint32_t nsections;
};

/* Checks data[0..len) whole, then lists its sections in f: the magic, the format version
 * (another one: "written by a vmm with format N, this one reads 1"), the header's own length and
 * the file length it records, each section's header, bounds, known type and checksum, no
 * (type, index) twice, zero padding and reserved fields, nothing after the last section. 0, or
 * -EINVAL (-ENOMEM) with one line in e starting with name. f is empty on an error. */
int snap_parse(const void *data, size_t len, const char *name, struct snap_file *f, struct verr *e);
void snap_file_free(struct snap_file *f);
/* The section (type, index), or NULL. */
const struct snap_section *snap_find(const struct snap_file *f, uint32_t type, uint32_t index);
/* Copies the section (type, index), which must be exactly len bytes, into out: 0, or -EINVAL
 * with one line in e (missing, or another size: "is N bytes, this vmm expects M"). */
int snap_get(const struct snap_file *f, uint32_t type, uint32_t index, void *out, size_t len,
	     struct verr *e);

/* Writes w's bytes to dirfd/name through a temporary file renamed over it once synced, so that a
 * reader sees the old file or the whole new one. 0, or a negative errno with one line in e. */
int snap_write_at(int dirfd, const char *name, const struct snap_writer *w, struct verr *e);
/* Reads dirfd/name (a regular file of at most SNAP_MAX_FILE bytes) into *data (malloc'd) and
 * parses it into f (f->name is name): 0, or a negative errno with one line in e. */
int snap_read_at(int dirfd, const char *name, uint8_t **data, struct snap_file *f, struct verr *e);

#endif
