/* The Intel MultiProcessor table (MP spec 1.4) that tells Linux about the vCPUs, the I/O APIC and
 * the interrupt wiring. Chosen over ACPI because it is a few hundred bytes written in one pass,
 * needs no AML, and lets the guest kernel drop CONFIG_ACPI (smaller, faster to boot); what ACPI
 * would add (CPU hotplug, power buttons) a per-container VM does not need. */
#include "vmm/arch/boot_x86_64.h"

#include <errno.h>
#include <string.h>

#define MP_IRQ_PINS    24 /* KVM's in-kernel I/O APIC */
#define APIC_VERSION   0x14
#define IOAPIC_VERSION 0x11

struct mpf_intel {
	char signature[4];
	uint32_t physptr;
	uint8_t length, specification, checksum, feature1, feature2, feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4];
	uint16_t length;
	uint8_t spec, checksum;
	char oem[8], productid[12];
	uint32_t oemptr;
	uint16_t oemsize, oemcount;
	uint32_t lapic;
	uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag, reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type, irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mpc_table) == 44, "MP config header");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "MP interrupt entry");

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

static uint8_t checksum(const void *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)p)[i];
	return (uint8_t)-sum;
}

int mptable_write(const struct guest_mem *m, uint64_t gpa, unsigned ncpus)
{
	if (ncpus == 0 || ncpus > 254)
		return -EINVAL;
	const size_t size = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
			    ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
			    sizeof(struct mpc_ioapic) +
			    (MP_IRQ_PINS + 2) * sizeof(struct mpc_intsrc);
	uint8_t *base = guest_mem_ptr(m, gpa, size);
	if (!base || gpa + size > (1ULL << 32))
		return -EFAULT;
	memset(base, 0, size);

	struct mpf_intel *mpf = (struct mpf_intel *)base;
	struct mpc_table *mpc = (struct mpc_table *)(mpf + 1);
	uint8_t *p = (uint8_t *)(mpc + 1);
	uint16_t count = 0;
	const uint8_t ioapic_id = (uint8_t)ncpus;

	for (unsigned i = 0; i < ncpus; i++, count++) {
		struct mpc_cpu c = {
		    .type = MP_PROCESSOR,
		    .apicid = (uint8_t)i,
		    .apicver = APIC_VERSION,
		    .cpuflag = 1 | (i == 0 ? 2 : 0), /* enabled, BSP */
		    .cpufeature = 0x600,	     /* family 6 */
		    .featureflag = 0x201,	     /* FPU, APIC */
		};
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
	}
	struct mpc_bus bus = {.type = MP_BUS, .busid = 0};
	memcpy(bus.bustype, "ISA   ", 6);
	memcpy(p, &bus, sizeof(bus));
	p += sizeof(bus);
	count++;
	struct mpc_ioapic io = {MP_IOAPIC, ioapic_id, IOAPIC_VERSION, 1, (uint32_t)IOAPIC_ADDR};
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	count++;
	/* ISA IRQ n -> I/O APIC pin n, as KVM's default GSI routing wires them. */
	for (unsigned i = 0; i < MP_IRQ_PINS; i++, count++) {
		struct mpc_intsrc s = {MP_INTSRC, MP_INT, 0, 0, (uint8_t)i, ioapic_id, (uint8_t)i};
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
	}
	/* LINT0 takes the PIC's ExtINT, LINT1 the NMI, on every local APIC. */
	struct mpc_intsrc l0 = {MP_LINTSRC, MP_EXTINT, 0, 0, 0, 0xff, 0};
	struct mpc_intsrc l1 = {MP_LINTSRC, MP_NMI, 0, 0, 0, 0xff, 1};
	memcpy(p, &l0, sizeof(l0));
	p += sizeof(l0);
	memcpy(p, &l1, sizeof(l1));
	p += sizeof(l1);
	count += 2;

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "VMM     ", 8);
	memcpy(mpc->productid, "MICROVM     ", 12);
	mpc->oemcount = count;
	mpc->lapic = (uint32_t)LAPIC_ADDR;
	mpc->checksum = checksum(mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(gpa + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return 0;
}
