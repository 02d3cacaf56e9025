/* bzImage loading through the Linux x86 boot protocol (Documentation/arch/x86/boot.rst): the
 * protected-mode kernel goes to 1 MiB and is entered at its 64-bit entry (load address + 0x200);
 * the setup header is kept for boot_params. Needs protocol 2.12+ (XLF_KERNEL_64). */
#include "vmm/loader/loader.h"

#include <errno.h>
#include <string.h>

#define MIB		    (1ULL << 20)
#define HDR_SETUP_SECTS	    0x1f1
#define HDR_SYSSIZE	    0x1f4 /* protected-mode code size, 16-byte units */
#define HDR_BOOT_FLAG	    0x1fe
#define HDR_JUMP	    0x200
#define HDR_MAGIC	    0x202
#define HDR_VERSION	    0x206
#define HDR_LOADFLAGS	    0x211
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_XLOADFLAGS	    0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_INIT_SIZE	    0x260

#define LOADED_HIGH	  0x01
#define XLF_KERNEL_64	  0x01
#define BOOT_PROTOCOL_MIN 0x020c

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int bzimage_load(const struct guest_mem *m, int fd, uint64_t fsize, struct kernel_image *k,
		 struct verr *e)
{
	uint8_t hdr[1024];
	if (fsize < sizeof(hdr))
		return verr_set(e, -ENOEXEC, "bzImage truncated (%llu bytes)",
				(unsigned long long)fsize);
	int r = pread_full(fd, hdr, sizeof(hdr), 0);
	if (r < 0)
		return verr_set(e, r, "cannot read the bzImage header");
	if (le16(hdr + HDR_BOOT_FLAG) != 0xaa55 || memcmp(hdr + HDR_MAGIC, "HdrS", 4) != 0)
		return verr_set(e, -ENOEXEC, "not a bzImage (no boot flag or 'HdrS' magic)");
	uint16_t version = le16(hdr + HDR_VERSION);
	if (version < BOOT_PROTOCOL_MIN)
		return verr_set(e, -ENOEXEC,
				"boot protocol %u.%02u is too old: vmm needs 2.12+ (Linux 3.8+)",
				version >> 8, version & 0xff);
	if (!(hdr[HDR_LOADFLAGS] & LOADED_HIGH) || !(le16(hdr + HDR_XLOADFLAGS) & XLF_KERNEL_64))
		return verr_set(e, -ENOEXEC, "bzImage has no 64-bit entry point (XLF_KERNEL_64)");

	unsigned setup_sects = hdr[HDR_SETUP_SECTS] ? hdr[HDR_SETUP_SECTS] : 4;
	uint64_t payload_off = (uint64_t)(setup_sects + 1) * 512;
	if (payload_off >= fsize)
		return verr_set(e, -ENOEXEC,
				"bzImage truncated: setup code ends at %llu, file has %llu bytes",
				(unsigned long long)payload_off, (unsigned long long)fsize);
	uint64_t payload_len = fsize - payload_off;
	uint64_t syssize = (uint64_t)le32(hdr + HDR_SYSSIZE) * 16;
	if (payload_len < syssize)
		return verr_set(e, -ENOEXEC,
				"bzImage truncated: the header promises %llu bytes of kernel, the "
				"file has %llu",
				(unsigned long long)syssize, (unsigned long long)payload_len);
	uint64_t init_size = le32(hdr + HDR_INIT_SIZE);
	uint64_t need = init_size > payload_len ? init_size : payload_len;
	void *dst = guest_mem_ptr(m, BZIMAGE_LOAD_ADDR, need);
	if (!dst)
		return verr_set(e, -ENOMEM,
				"kernel needs %llu MiB above 1 MiB to decompress but the guest has "
				"%llu MiB: raise --memory",
				(unsigned long long)((need + MIB - 1) / MIB),
				(unsigned long long)(m->total / MIB));

	uint32_t hdr_end = HDR_JUMP + 2 + hdr[HDR_JUMP + 1];
	if (hdr_end > BZIMAGE_SETUP_HDR_MAX)
		hdr_end = BZIMAGE_SETUP_HDR_MAX;
	/* Mapped from the file when the setup code's length is a page multiple; usually it is not
	 * (setup_sects + 1 sectors), and the payload is copied. */
	r = load_file_range(m, BZIMAGE_LOAD_ADDR, fd, fsize, payload_off, payload_len, NULL);
	if (r < 0)
		return verr_set(e, r, "cannot read the kernel payload: %s", strerror(-r));

	memcpy(k->setup_hdr, hdr, hdr_end);
	k->setup_hdr_end = hdr_end;
	k->kind = KERNEL_BZIMAGE;
	k->entry = BZIMAGE_LOAD_ADDR + 0x200;
	k->load_start = BZIMAGE_LOAD_ADDR;
	k->load_end = BZIMAGE_LOAD_ADDR + need;
	k->cmdline_max = le32(hdr + HDR_CMDLINE_SIZE);
	if (k->cmdline_max == 0 || k->cmdline_max > 0x100000)
		k->cmdline_max = 255;
	uint64_t imax = le32(hdr + HDR_INITRD_ADDR_MAX);
	k->initrd_end_max = imax ? imax + 1 : 0x38000000ULL;
	return 0;
}
