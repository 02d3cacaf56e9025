/* Loader tests: PVH ELF and bzImage parsing against synthetic kernels, good and hostile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/fake_kernel.h"
#include "vmm/arch/boot_x86_64.h"
#include "vmm/loader/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MIB (1ULL << 20)

static struct guest_mem mem;

static int setup_64m(void **state)
{
	(void)state;
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	unsigned n = x86_memory_layout(64 * MIB, r);
	return guest_mem_init(&mem, r, n);
}

static int teardown(void **state)
{
	(void)state;
	guest_mem_free(&mem);
	return 0;
}

static int load_elf(struct fake_elf *f, size_t len, struct kernel_image *k, struct verr *e)
{
	int fd = fake_file(f, len);
	assert_true(fd >= 0);
	int r = elf_pvh_load(&mem, fd, len, k, e);
	close(fd);
	return r;
}

static void elf_pvh_ok(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 2 * MIB, 1);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), 0);
	assert_int_equal(k.kind, KERNEL_PVH_ELF);
	assert_int_equal(k.entry, FAKE_ENTRY);
	assert_int_equal(k.load_start, FAKE_LOAD_ADDR);
	assert_int_equal(k.load_end, FAKE_LOAD_ADDR + 2 * MIB);
	assert_memory_equal(guest_mem_ptr(&mem, FAKE_LOAD_ADDR, sizeof(f.payload)), f.payload,
			    sizeof(f.payload));
}

static void elf_without_pvh_note(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 0, 0);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, "CONFIG_PVH"));
}

static void elf_truncated(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 0, 1);
	struct kernel_image k;
	struct verr e = {0};
	/* header only */
	assert_int_equal(load_elf(&f, 20, &k, &e), -ENOEXEC);
	/* program headers present, segment data cut off */
	assert_int_equal(load_elf(&f, len - 100, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, "past the end of the file"));
}

static void elf_too_large_for_memory(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 100 * MIB, 1);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOMEM);
	assert_non_null(strstr(e.msg, "raise --memory"));
}

static void elf_hostile_fields(void **state)
{
	(void)state;
	struct fake_elf f;
	struct kernel_image k;
	struct verr e = {0};
	size_t len = fake_elf_build(&f, 0, 1);
	f.eh.e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.eh.e_phnum = 60000; /* absurd table */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.eh.e_phoff = UINT64_MAX - 8; /* wraps */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.ph[0].p_offset = UINT64_MAX - 10; /* offset + size wraps */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.ph[0].p_paddr = UINT64_MAX - 100; /* address + size wraps */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOMEM);

	fake_elf_build(&f, 0, 1);
	f.ph[0].p_paddr = 0x1000; /* over vmm's boot structures */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.entry = 0x500; /* entry outside the kernel */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);

	fake_elf_build(&f, 0, 1);
	f.nh.n_descsz = 0x7fffffff; /* note claims more than the segment */
	assert_int_equal(load_elf(&f, len, &k, &e), -ENOEXEC);
}

static void bzimage_ok(void **state)
{
	(void)state;
	static uint8_t b[FAKE_BZ_SIZE];
	fake_bzimage_build(b, 8 * MIB);
	int fd = fake_file(b, sizeof(b));
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(bzimage_load(&mem, fd, sizeof(b), &k, &e), 0);
	close(fd);
	assert_int_equal(k.kind, KERNEL_BZIMAGE);
	assert_int_equal(k.entry, BZIMAGE_LOAD_ADDR + 0x200);
	assert_int_equal(k.load_end, BZIMAGE_LOAD_ADDR + 8 * MIB);
	assert_int_equal(k.cmdline_max, 2047);
	assert_int_equal(k.setup_hdr_end, 0x268);
	assert_int_equal(k.initrd_end_max, 0x80000000ULL);
	assert_memory_equal(guest_mem_ptr(&mem, BZIMAGE_LOAD_ADDR, FAKE_BZ_PAYLOAD),
			    b + (FAKE_BZ_SETUP_SECTS + 1) * 512, FAKE_BZ_PAYLOAD);
}

static void bzimage_bad(void **state)
{
	(void)state;
	static uint8_t b[FAKE_BZ_SIZE];
	struct kernel_image k;
	struct verr e = {0};
	struct {
		const char *what;
		size_t off;
		uint8_t val;
		int expect;
	} cases[] = {
	    {"no boot flag", 0x1fe, 0, -ENOEXEC},
	    {"old protocol", 0x206, 0x00, -ENOEXEC}, /* 2.00 */
	    {"no 64-bit entry", 0x236, 0, -ENOEXEC},
	    {"setup past end", 0x1f1, 200, -ENOEXEC},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_bzimage_build(b, 8 * MIB);
		b[cases[i].off] = cases[i].val;
		int fd = fake_file(b, sizeof(b));
		int r = bzimage_load(&mem, fd, sizeof(b), &k, &e);
		close(fd);
		if (r != cases[i].expect)
			fail_msg("%s: got %d, want %d (%s)", cases[i].what, r, cases[i].expect,
				 e.msg);
	}
	/* needs more memory to decompress than the guest has */
	fake_bzimage_build(b, 200 * MIB);
	int fd = fake_file(b, sizeof(b));
	assert_int_equal(bzimage_load(&mem, fd, sizeof(b), &k, &e), -ENOMEM);
	close(fd);
	assert_non_null(strstr(e.msg, "raise --memory"));
	/* truncated below the header */
	fd = fake_file(b, 600);
	assert_int_equal(bzimage_load(&mem, fd, 600, &k, &e), -ENOEXEC);
	close(fd);
}

/* ---- zero-copy loading: segments mapped from the file ---------------------------------- */

#define PG 4096ULL

struct seg {
	uint64_t off, paddr, filesz, memsz;
};

/* Every byte of the synthetic files below that is not a header is this, never zero: a byte of
 * the file that leaks where guest memory should be zero shows. */
static uint8_t file_byte(uint64_t off)
{
	return (uint8_t)((off * 13 + 7) | 1);
}

/* A PVH ELF of len bytes: header, program headers (segs, then the PT_NOTE), the note, and
 * file_byte() everywhere else. Returns a memfd. */
static int elf_file(const struct seg *segs, unsigned n, size_t len)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = file_byte(i);
	Elf64_Ehdr eh = {0};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (uint16_t)(n + 1);
	memcpy(b, &eh, sizeof(eh));
	uint64_t note_off = sizeof(eh) + (n + 1) * sizeof(Elf64_Phdr);
	for (unsigned i = 0; i <= n; i++) {
		Elf64_Phdr ph = {
		    .p_type = PT_NOTE, .p_offset = note_off, .p_filesz = 20, .p_align = 4};
		if (i < n)
			ph = (Elf64_Phdr){.p_type = PT_LOAD,
					  .p_offset = segs[i].off,
					  .p_paddr = segs[i].paddr,
					  .p_filesz = segs[i].filesz,
					  .p_memsz = segs[i].memsz,
					  .p_align = PG};
		memcpy(b + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
	}
	Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = 4, .n_type = 18};
	uint32_t entry = (uint32_t)FAKE_ENTRY;
	memcpy(b + note_off, &nh, sizeof(nh));
	memcpy(b + note_off + sizeof(nh), "Xen", 4);
	memcpy(b + note_off + sizeof(nh) + 4, &entry, 4);
	int fd = fake_file(b, len);
	free(b);
	assert_true(fd >= 0);
	return fd;
}

/* What backs host address p: the inode and file offset of its mapping (inode 0: anonymous),
 * whether it is writable and never executable, and whether it carries MADV_DONTDUMP. */
struct backing {
	unsigned long ino;
	uint64_t off;
	int rw_noexec, dontdump;
};

static struct backing backing_of(const void *p)
{
	struct backing b = {0};
	FILE *f = fopen("/proc/self/smaps", "re");
	assert_non_null(f);
	char line[512];
	int in = 0, found = 0;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, ino;
		unsigned long long off;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s %llx %*s %lu", &lo, &hi, perms, &off, &ino) == 5) {
			in = a >= lo && a < hi;
			if (in) {
				found = 1;
				b.ino = ino;
				b.off = off + (a - lo);
				b.rw_noexec = strcmp(perms, "rw-p") == 0;
			}
		} else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			b.dontdump = strstr(line, " dd") != NULL;
		}
	}
	fclose(f);
	assert_true(found);
	return b;
}

static unsigned long ino_of(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return (unsigned long)st.st_ino;
}

/* Page gpa is a mapping of fd at file offset off (an error message naming gpa otherwise). */
static void assert_file_page(uint64_t gpa, int fd, uint64_t off)
{
	struct backing b = backing_of(guest_mem_ptr(&mem, gpa, PG));
	if (b.ino != ino_of(fd) || b.off != off || !b.rw_noexec || !b.dontdump)
		fail_msg("page 0x%" PRIx64 ": inode %lu offset 0x%" PRIx64 " rw-p %d dd %d, want "
			 "inode %lu offset 0x%" PRIx64 " rw-p dd",
			 gpa, b.ino, b.off, b.rw_noexec, b.dontdump, ino_of(fd), off);
}

static void assert_anon_page(uint64_t gpa)
{
	struct backing b = backing_of(guest_mem_ptr(&mem, gpa, PG));
	if (b.ino != 0 || !b.rw_noexec)
		fail_msg("page 0x%" PRIx64 ": inode %lu, want anonymous rw-p memory", gpa, b.ino);
}

/* Guest memory holds exactly the segments: their file bytes, zero past p_filesz (.bss, also on
 * the last file page), and zero everywhere else, where no page was even touched by the load
 * (mincore: never made resident). Whole .bss pages past the last file page are untouched too. */
static void assert_guest_is(const struct seg *segs, unsigned n)
{
	const struct guest_region *r = &mem.region[0];
	unsigned char *vec = malloc(r->size / PG);
	assert_non_null(vec);
	assert_int_equal(mincore(r->host, r->size, vec), 0);
	for (uint64_t pg = 0; pg < r->size; pg += PG) {
		int in_file_page = 0;
		for (unsigned i = 0; i < n; i++)
			if (pg < segs[i].paddr + segs[i].filesz && pg + PG > segs[i].paddr)
				in_file_page = 1;
		if (!in_file_page && (vec[pg / PG] & 1))
			fail_msg("page 0x%" PRIx64 " outside the file's bytes was touched", pg);
	}
	free(vec);
	for (uint64_t gpa = 0; gpa < r->size; gpa++) {
		uint8_t want = 0;
		for (unsigned i = 0; i < n; i++)
			if (gpa >= segs[i].paddr && gpa < segs[i].paddr + segs[i].filesz)
				want = file_byte(segs[i].off + (gpa - segs[i].paddr));
		if (r->host[gpa] != want)
			fail_msg("guest byte 0x%" PRIx64 " is 0x%02x, want 0x%02x", gpa,
				 r->host[gpa], want);
	}
}

static void elf_segments_mapped(void **state)
{
	(void)state;
	/* seg 0 starts on a page and ends inside one, with .bss past it; seg 1 agrees with its
	 * offset modulo the page size but starts and ends inside a page; file bytes follow it. */
	const struct seg segs[] = {
	    {0x1000, FAKE_LOAD_ADDR, 5 * PG + 123, 5 * PG + 123 + 3 * PG + 500},
	    {0x8234, FAKE_LOAD_ADDR + 0x100234, 3 * PG, 3 * PG},
	};
	size_t len = 0x8234 + 3 * PG + 2000;
	int fd = elf_file(segs, 2, len);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(elf_pvh_load(&mem, fd, len, &k, &e), 0);
	assert_int_equal(k.entry, FAKE_ENTRY);
	assert_int_equal(k.load_start, FAKE_LOAD_ADDR);
	assert_int_equal(k.load_end, FAKE_LOAD_ADDR + 0x100234 + 3 * PG);
	for (uint64_t i = 0; i < 5; i++)
		assert_file_page(FAKE_LOAD_ADDR + i * PG, fd, 0x1000 + i * PG);
	assert_anon_page(FAKE_LOAD_ADDR + 5 * PG); /* the partial last page: copied */
	assert_anon_page(FAKE_LOAD_ADDR + 0x100000);
	assert_file_page(FAKE_LOAD_ADDR + 0x101000, fd, 0x9000);
	assert_file_page(FAKE_LOAD_ADDR + 0x102000, fd, 0xa000);
	assert_anon_page(FAKE_LOAD_ADDR + 0x103000);
	assert_guest_is(segs, 2);
	close(fd);
}

static void elf_unaligned_segment_copied(void **state)
{
	(void)state;
	const struct seg segs[] = {{0x1010, FAKE_LOAD_ADDR, 4 * PG, 4 * PG + 100}};
	size_t len = 0x1010 + 4 * PG + 300;
	int fd = elf_file(segs, 1, len);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(elf_pvh_load(&mem, fd, len, &k, &e), 0);
	for (uint64_t i = 0; i <= 4; i++)
		assert_anon_page(FAKE_LOAD_ADDR + i * PG);
	assert_guest_is(segs, 1);
	close(fd);
}

static void elf_short_file_fails_untouched(void **state)
{
	(void)state;
	/* a segment whose last page the file lacks: mapping it would succeed and fault later */
	const struct seg segs[] = {{0x1000, FAKE_LOAD_ADDR, 4 * PG, 4 * PG}};
	size_t len = 0x1000 + 3 * PG;
	int fd = elf_file(segs, 1, len);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(elf_pvh_load(&mem, fd, len, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, "past the end of the file"));
	assert_guest_is(segs, 0);
	close(fd);
}

static void load_file_range_checks(void **state)
{
	(void)state;
	const struct seg segs[] = {{0x1000, FAKE_LOAD_ADDR, 4 * PG, 4 * PG}};
	size_t len = 0x1000 + 4 * PG;
	int fd = elf_file(segs, 1, len);
	uint64_t mapped = 1;
	/* a range past the end of the file the caller knows */
	assert_int_equal(
	    load_file_range(&mem, FAKE_LOAD_ADDR, fd, len, 0x1000, 4 * PG + 1, &mapped), -EIO);
	assert_int_equal(mapped, 0);
	assert_int_equal(load_file_range(&mem, FAKE_LOAD_ADDR, fd, len, UINT64_MAX, 2, NULL), -EIO);
	/* the file is shorter than the caller believes (it shrank after its fstat) */
	assert_int_equal(
	    load_file_range(&mem, FAKE_LOAD_ADDR, fd, len + PG, 0x1000, 5 * PG, &mapped), -EIO);
	/* not inside guest memory */
	assert_int_equal(load_file_range(&mem, 64 * MIB - PG, fd, len, 0x1000, 2 * PG, NULL),
			 -EFAULT);
	/* a whole range mapped, nothing copied */
	assert_int_equal(load_file_range(&mem, FAKE_LOAD_ADDR, fd, len, 0x1000, 4 * PG, &mapped),
			 0);
	assert_int_equal(mapped, 4 * PG);
	assert_guest_is(segs, 1);
	close(fd);
}

static void map_file_arguments(void **state)
{
	(void)state;
	const struct seg segs[] = {{0x1000, FAKE_LOAD_ADDR, PG, PG}};
	int fd = elf_file(segs, 1, 2 * PG);
	assert_int_equal(guest_mem_map_file(&mem, FAKE_LOAD_ADDR + 1, PG, fd, 0), -EINVAL);
	assert_int_equal(guest_mem_map_file(&mem, FAKE_LOAD_ADDR, PG - 1, fd, 0), -EINVAL);
	assert_int_equal(guest_mem_map_file(&mem, FAKE_LOAD_ADDR, PG, fd, 1), -EINVAL);
	assert_int_equal(guest_mem_map_file(&mem, FAKE_LOAD_ADDR, 0, fd, 0), -EINVAL);
	assert_int_equal(guest_mem_map_file(&mem, 64 * MIB, PG, fd, 0), -EFAULT);
	assert_int_equal(guest_mem_map_file(&mem, 64 * MIB - PG, 2 * PG, fd, 0), -EFAULT);
	/* a failed map leaves zero memory behind, not a hole */
	assert_int_equal(guest_mem_map_file(&mem, FAKE_LOAD_ADDR, PG, -1, 0), -EBADF);
	assert_anon_page(FAKE_LOAD_ADDR);
	assert_guest_is(segs, 0);
	/* a read-only fd serves, as vmm-jail's read-only bind mounts give */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	assert_int_equal(guest_mem_map_file(&mem, FAKE_LOAD_ADDR, PG, ro, PG), 0);
	assert_file_page(FAKE_LOAD_ADDR, ro, PG);
	/* the guest's writes stay private: the file keeps its bytes */
	uint8_t *p = guest_mem_ptr(&mem, FAKE_LOAD_ADDR, PG);
	p[0] = 0;
	uint8_t c;
	assert_int_equal(pread(ro, &c, 1, PG), 1);
	assert_int_equal(c, file_byte(PG));
	close(ro);
	close(fd);
}

static void mappable_filesystems(void **state)
{
	(void)state;
	/* tmpfs (a memfd) is local; a pipe (pipefs) and a procfs file are not mapped from */
	int fd = fake_file("x", 1);
	assert_true(fd >= 0);
	assert_true(file_is_mappable(fd));
	close(fd);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_false(file_is_mappable(p[0]));
	close(p[0]);
	close(p[1]);
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_false(file_is_mappable(fd));
	close(fd);
	assert_false(file_is_mappable(-1));
	/* ext4 on a disk; ext4 as 9p reports its server's (no block device); tmpfs, btrfs */
	assert_true(fs_is_mappable(0xEF53, 8));
	assert_false(fs_is_mappable(0xEF53, 0));
	assert_true(fs_is_mappable(0x01021994, 0));
	assert_true(fs_is_mappable(0x9123683E, 0));
	/* 9p itself, NFS, FUSE (virtiofs), CIFS */
	assert_false(fs_is_mappable(0x01021997, 0));
	assert_false(fs_is_mappable(0x6969, 0));
	assert_false(fs_is_mappable(0x65735546, 0));
	assert_false(fs_is_mappable(0xFF534D42, 0));
}

static void kernel_load_detects_format(void **state)
{
	(void)state;
	char path[] = "/tmp/vmm-test-kernel-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage garbage garbage", 23), 23);
	close(fd);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(kernel_load(&mem, path, &k, &e), -ENOEXEC);
	assert_non_null(strstr(e.msg, path));
	unlink(path);
	assert_int_equal(kernel_load(&mem, "/nonexistent/vmlinux", &k, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "cannot open"));
	assert_int_equal(kernel_load(&mem, "/", &k, &e), -EINVAL);
}

static void initrd_placement(void **state)
{
	(void)state;
	struct fake_elf f;
	size_t len = fake_elf_build(&f, 2 * MIB, 1);
	struct kernel_image k;
	struct verr e = {0};
	assert_int_equal(load_elf(&f, len, &k, &e), 0);

	/* a memfd (tmpfs, a filesystem vmm maps from wherever the tests run) opened by its path */
	int fd = memfd_create("initrd", MFD_CLOEXEC);
	assert_true(fd >= 0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	static uint8_t data[10000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = file_byte(i);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	uint64_t gpa, size;
	assert_int_equal(initrd_load(&mem, path, &k, &gpa, &size, &e), 0);
	assert_int_equal(size, sizeof(data));
	assert_int_equal(gpa & 0xfff, 0);
	assert_true(gpa >= k.load_end);
	assert_true(gpa + size <= 64 * MIB);
	assert_memory_equal(guest_mem_ptr(&mem, gpa, size), data, size);
	/* its two whole pages are mapped from the file, the partial last one copied */
	assert_file_page(gpa, fd, 0);
	assert_file_page(gpa + PG, fd, PG);
	assert_anon_page(gpa + 2 * PG);
	const uint8_t *tail = guest_mem_ptr(&mem, gpa + size, 3 * PG - size);
	for (uint64_t i = 0; i < 3 * PG - size; i++)
		assert_int_equal(tail[i], 0);

	/* an initrd bigger than the RAM left above the kernel */
	assert_int_equal(ftruncate(fd, 60 * MIB), 0);
	assert_int_equal(initrd_load(&mem, path, &k, &gpa, &size, &e), -ENOMEM);
	assert_non_null(strstr(e.msg, "raise --memory"));
	/* empty */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(initrd_load(&mem, path, &k, &gpa, &size, &e), -EINVAL);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(elf_pvh_ok, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_without_pvh_note, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_truncated, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_too_large_for_memory, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_hostile_fields, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(bzimage_ok, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(bzimage_bad, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_segments_mapped, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_unaligned_segment_copied, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(elf_short_file_fails_untouched, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(load_file_range_checks, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(map_file_arguments, setup_64m, teardown),
	    cmocka_unit_test(mappable_filesystems),
	    cmocka_unit_test_setup_teardown(kernel_load_detects_format, setup_64m, teardown),
	    cmocka_unit_test_setup_teardown(initrd_placement, setup_64m, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
