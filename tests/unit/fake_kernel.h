/* Synthetic kernels for tests: a minimal PVH vmlinux (ELF64 with a Xen PHYS32_ENTRY note) and a
 * minimal bzImage header, built in memory so loaders can be tested without a real kernel. */
#ifndef VMM_TEST_FAKE_KERNEL_H
#define VMM_TEST_FAKE_KERNEL_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAKE_LOAD_ADDR 0x1000000ULL /* 16 MiB, like Linux's CONFIG_PHYSICAL_START */
#define FAKE_ENTRY     (FAKE_LOAD_ADDR + 0x40)

struct fake_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	/* note: Nhdr + "Xen\0" + 4-byte entry */
	Elf64_Nhdr nh;
	char name[4];
	uint32_t entry;
	uint8_t payload[256];
};

/* An ELF whose single PT_LOAD of payload_len bytes (memsz memsz) lands at FAKE_LOAD_ADDR. */
static inline size_t fake_elf_build(struct fake_elf *f, uint64_t memsz, int with_note)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->eh.e_ident, ELFMAG, SELFMAG);
	f->eh.e_ident[EI_CLASS] = ELFCLASS64;
	f->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	f->eh.e_ident[EI_VERSION] = EV_CURRENT;
	f->eh.e_type = ET_EXEC;
	f->eh.e_machine = EM_X86_64;
	f->eh.e_version = EV_CURRENT;
	f->eh.e_phoff = offsetof(struct fake_elf, ph);
	f->eh.e_ehsize = sizeof(Elf64_Ehdr);
	f->eh.e_phentsize = sizeof(Elf64_Phdr);
	f->eh.e_phnum = with_note ? 2 : 1;
	f->ph[0].p_type = PT_LOAD;
	f->ph[0].p_offset = offsetof(struct fake_elf, payload);
	f->ph[0].p_paddr = FAKE_LOAD_ADDR;
	f->ph[0].p_vaddr = 0xffffffff81000000ULL;
	f->ph[0].p_filesz = sizeof(f->payload);
	f->ph[0].p_memsz = memsz < sizeof(f->payload) ? sizeof(f->payload) : memsz;
	f->ph[1].p_type = PT_NOTE;
	f->ph[1].p_offset = offsetof(struct fake_elf, nh);
	f->ph[1].p_filesz = sizeof(Elf64_Nhdr) + 4 + 4;
	f->ph[1].p_align = 4;
	f->nh.n_namesz = 4;
	f->nh.n_descsz = 4;
	f->nh.n_type = 18; /* XEN_ELFNOTE_PHYS32_ENTRY */
	memcpy(f->name, "Xen", 4);
	f->entry = (uint32_t)FAKE_ENTRY;
	for (size_t i = 0; i < sizeof(f->payload); i++)
		f->payload[i] = (uint8_t)(i * 7 + 1);
	return sizeof(*f);
}

/* A bzImage: boot sector + 4 setup sectors + payload, protocol 2.15, 64-bit capable. */
#define FAKE_BZ_SETUP_SECTS 4
#define FAKE_BZ_PAYLOAD	    4096
#define FAKE_BZ_SIZE	    ((FAKE_BZ_SETUP_SECTS + 1) * 512 + FAKE_BZ_PAYLOAD)
static inline void fake_bzimage_build(uint8_t *b, uint32_t init_size)
{
	memset(b, 0, FAKE_BZ_SIZE);
	b[0x1f1] = FAKE_BZ_SETUP_SECTS;
	uint32_t syssize = FAKE_BZ_PAYLOAD / 16;
	memcpy(b + 0x1f4, &syssize, 4);
	b[0x1fe] = 0x55;
	b[0x1ff] = 0xaa;
	b[0x200] = 0xeb;
	b[0x201] = 0x66; /* header ends at 0x268 */
	memcpy(b + 0x202, "HdrS", 4);
	b[0x206] = 0x0f;
	b[0x207] = 0x02; /* 2.15 */
	b[0x211] = 0x01; /* LOADED_HIGH */
	uint32_t imax = 0x7fffffff, cl = 2047;
	memcpy(b + 0x22c, &imax, 4);
	b[0x236] = 0x01; /* XLF_KERNEL_64 */
	memcpy(b + 0x238, &cl, 4);
	memcpy(b + 0x260, &init_size, 4);
	for (size_t i = 0; i < FAKE_BZ_PAYLOAD; i++)
		b[(FAKE_BZ_SETUP_SECTS + 1) * 512 + i] = (uint8_t)(i ^ 0x5a);
}

/* An anonymous file holding len bytes of buf: the loaders take fds. */
static inline int fake_file(const void *buf, size_t len)
{
	int fd = memfd_create("fake", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

#endif
