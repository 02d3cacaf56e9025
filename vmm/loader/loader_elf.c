/* vmlinux (ELF64) loading for the PVH boot path: PT_LOAD segments go to their physical addresses
 * (mapped from the file where they can be, see load_file_range),
 * and the entry point comes from the XEN_ELFNOTE_PHYS32_ENTRY note, the 32-bit entry Linux builds
 * with CONFIG_PVH. No decompression, no real-mode setup code: the fastest way into Linux. */
#include "vmm/loader/loader.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define ELF_MAX_PHDRS		 64
#define ELF_MAX_NOTE_BYTES	 (1u << 20)
#define MIB			 (1ULL << 20)
/* Below 1 MiB vmm keeps its boot structures (GDT, start info, MP table): no segment goes there. */
#define ELF_MIN_LOAD_ADDR MIB
/* The PVH entry runs in 32-bit mode without paging: it must sit below 4 GiB. */
#define PVH_ENTRY_LIMIT (1ULL << 32)
/* x86 Linux's COMMAND_LINE_SIZE is 2048 bytes including the NUL. */
#define PVH_CMDLINE_MAX 2047

/* Walks one PT_NOTE segment's bytes for the PVH entry note. Returns 1 and sets *entry if found. */
static int find_pvh_note(const uint8_t *p, uint64_t len, uint64_t align, uint64_t *entry)
{
	uint64_t off = 0;
	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, p + off, sizeof(nh));
		off += sizeof(nh);
		uint64_t name_len = ((uint64_t)nh.n_namesz + align - 1) & ~(align - 1);
		uint64_t desc_len = ((uint64_t)nh.n_descsz + align - 1) & ~(align - 1);
		if (name_len > len - off || desc_len > len - off - name_len)
			return 0; /* truncated note: stop, the caller reports "no note" */
		const uint8_t *name = p + off, *desc = p + off + name_len;
		off += name_len + desc_len;
		if (nh.n_type != XEN_ELFNOTE_PHYS32_ENTRY || nh.n_namesz != 4 ||
		    memcmp(name, "Xen", 4) != 0)
			continue;
		if (nh.n_descsz == 4) {
			uint32_t v;
			memcpy(&v, desc, 4);
			*entry = v;
			return 1;
		}
		if (nh.n_descsz == 8) {
			memcpy(entry, desc, 8);
			return 1;
		}
		return 0;
	}
	return 0;
}

int elf_pvh_load(const struct guest_mem *m, int fd, uint64_t fsize, struct kernel_image *k,
		 struct verr *e)
{
	Elf64_Ehdr eh;
	if (fsize < sizeof(eh))
		return verr_set(e, -ENOEXEC, "ELF file truncated (%llu bytes, header needs %zu)",
				(unsigned long long)fsize, sizeof(eh));
	int r = pread_full(fd, &eh, sizeof(eh), 0);
	if (r < 0)
		return verr_set(e, r, "cannot read the ELF header");
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return verr_set(e, -ENOEXEC, "not an ELF file");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return verr_set(e, -ENOEXEC,
				"not a 64-bit little-endian x86-64 ELF (class %u, machine %u)",
				eh.e_ident[EI_CLASS], eh.e_machine);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS)
		return verr_set(e, -ENOEXEC, "bad program header table (entry size %u, count %u)",
				eh.e_phentsize, eh.e_phnum);
	uint64_t ph_bytes = (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr);
	if (eh.e_phoff > fsize || ph_bytes > fsize - eh.e_phoff)
		return verr_set(e, -ENOEXEC, "program headers lie past the end of the file");

	Elf64_Phdr ph[ELF_MAX_PHDRS];
	r = pread_full(fd, ph, ph_bytes, eh.e_phoff);
	if (r < 0)
		return verr_set(e, r, "cannot read the program headers");

	uint64_t lo = UINT64_MAX, hi = 0, entry = 0;
	int found = 0, loads = 0;
	/* Validate every segment before the first byte is copied. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD && p->p_type != PT_NOTE)
			continue;
		if (p->p_filesz > fsize || p->p_offset > fsize - p->p_filesz)
			return verr_set(
			    e, -ENOEXEC,
			    "segment %u (offset 0x%llx, %llu bytes) lies past the end of "
			    "the file (%llu bytes): truncated kernel?",
			    i, (unsigned long long)p->p_offset, (unsigned long long)p->p_filesz,
			    (unsigned long long)fsize);
		if (p->p_type == PT_NOTE)
			continue;
		loads++;
		if (p->p_filesz > p->p_memsz)
			return verr_set(e, -ENOEXEC, "segment %u: file size exceeds memory size",
					i);
		if (p->p_paddr < ELF_MIN_LOAD_ADDR)
			return verr_set(
			    e, -ENOEXEC,
			    "segment %u loads at 0x%llx, below 1 MiB where vmm keeps its "
			    "boot structures",
			    i, (unsigned long long)p->p_paddr);
		if (!guest_mem_ptr(m, p->p_paddr, p->p_memsz))
			return verr_set(
			    e, -ENOMEM,
			    "segment %u needs guest memory 0x%llx-0x%llx (up to %llu MiB) "
			    "but the guest has %llu MiB: raise --memory",
			    i, (unsigned long long)p->p_paddr,
			    (unsigned long long)(p->p_paddr + p->p_memsz),
			    (unsigned long long)((p->p_paddr + p->p_memsz + MIB - 1) / MIB),
			    (unsigned long long)(m->total / MIB));
		if (p->p_paddr < lo)
			lo = p->p_paddr;
		if (p->p_paddr + p->p_memsz > hi)
			hi = p->p_paddr + p->p_memsz;
	}
	if (!loads)
		return verr_set(e, -ENOEXEC, "no loadable segment");

	for (unsigned i = 0; i < eh.e_phnum && !found; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_NOTE || p->p_filesz == 0)
			continue;
		if (p->p_filesz > ELF_MAX_NOTE_BYTES)
			return verr_set(e, -ENOEXEC, "note segment %u is too large", i);
		uint8_t *buf = malloc(p->p_filesz);
		if (!buf)
			return verr_set(e, -ENOMEM, "out of memory reading notes");
		r = pread_full(fd, buf, p->p_filesz, p->p_offset);
		if (r == 0)
			found = find_pvh_note(buf, p->p_filesz, p->p_align == 8 ? 8 : 4, &entry);
		free(buf);
		if (r < 0)
			return verr_set(e, r, "cannot read note segment %u", i);
	}
	if (!found)
		return verr_set(
		    e, -ENOEXEC,
		    "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build "
		    "it with CONFIG_PVH=y, or boot its bzImage");
	if (entry < lo || entry >= hi || entry >= PVH_ENTRY_LIMIT)
		return verr_set(
		    e, -ENOEXEC, "PVH entry 0x%llx lies outside the loaded kernel (0x%llx-0x%llx)",
		    (unsigned long long)entry, (unsigned long long)lo, (unsigned long long)hi);

	uint64_t mapped = 0, filesz = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD || p->p_filesz == 0)
			continue;
		/* Whole pages are mapped from the file (a vmlinux's p_offset and p_paddr agree
		 * modulo the page size), the partial ones copied. Fresh guest memory is zero, and
		 * the last file page's part past p_filesz is in a copied page, so .bss and whatever
		 * the file holds after the segment read as zero without a write (a write would cost
		 * each page of .bss its memory). */
		uint64_t n;
		r = load_file_range(m, p->p_paddr, fd, fsize, p->p_offset, p->p_filesz, &n);
		if (r < 0)
			return verr_set(e, r, "cannot read segment %u: %s", i, strerror(-r));
		mapped += n;
		filesz += p->p_filesz;
	}
	vmm_debug("kernel: %llu of %llu KiB mapped from the file, the rest copied",
		  (unsigned long long)(mapped >> 10), (unsigned long long)(filesz >> 10));
	k->kind = KERNEL_PVH_ELF;
	k->entry = entry;
	k->load_start = lo;
	k->load_end = hi;
	k->cmdline_max = PVH_CMDLINE_MAX;
	k->initrd_end_max = 1ULL << 32;
	return 0;
}
