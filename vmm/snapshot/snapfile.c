/* The snapshot state file's codec: layout in docs/snapshot.md, contracts in snapfile.h. */
#include "vmm/snapshot/snapfile.h"
#include "vmm/le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const struct {
	uint32_t type;
	const char *name;
} types[] = {
    {SNAP_VMM, "vmm"},
    {SNAP_DESCRIPTION, "description"},
    {SNAP_CPUID, "cpuid"},
    {SNAP_MEMORY, "memory"},
    {SNAP_VCPU_REGS, "vcpu-regs"},
    {SNAP_VCPU_SREGS, "vcpu-sregs"},
    {SNAP_VCPU_XSAVE, "vcpu-xsave"},
    {SNAP_VCPU_XCRS, "vcpu-xcrs"},
    {SNAP_VCPU_MSRS, "vcpu-msrs"},
    {SNAP_VCPU_LAPIC, "vcpu-lapic"},
    {SNAP_VCPU_MP_STATE, "vcpu-mp-state"},
    {SNAP_VCPU_EVENTS, "vcpu-events"},
    {SNAP_VCPU_DEBUGREGS, "vcpu-debugregs"},
    {SNAP_VM_PIC, "pic"},
    {SNAP_VM_IOAPIC, "ioapic"},
    {SNAP_VM_PIT, "pit"},
    {SNAP_VM_CLOCK, "clock"},
    {SNAP_DEV_TRANSPORT, "device-transport"},
    {SNAP_DEV_STATE, "device-state"},
    {SNAP_SERIAL, "serial"},
    {SNAP_I8042, "i8042"},
};

const char *snap_type_name(uint32_t type)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

/* zlib's CRC-32 of a section: its header's type, index and length, then its payload. */
static uint32_t section_crc(const uint8_t *hdr, const uint8_t *payload, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	c = crc32(c, hdr, 16);
	/* zlib takes a uInt length: feed a large payload in parts */
	for (size_t at = 0; at < len;) {
		size_t n = len - at > (1u << 30) ? (1u << 30) : len - at;
		c = crc32(c, payload + at, (uInt)n);
		at += n;
	}
	return (uint32_t)c;
}

static size_t padded(size_t len)
{
	return (len + 7) & ~(size_t)7;
}

void snap_writer_init(struct snap_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->data);
	snap_writer_init(w);
}

static int reserve(struct snap_writer *w, size_t more, struct verr *e)
{
	if (w->len + more <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->len + more)
		cap *= 2;
	uint8_t *p = realloc(w->data, cap);
	if (!p)
		return verr_set(e, -ENOMEM, "snapshot: out of memory for the state file");
	w->data = p;
	w->cap = cap;
	return 0;
}

int snap_add(struct snap_writer *w, uint32_t type, uint32_t index, const void *data, size_t len,
	     struct verr *e)
{
	const char *tn = snap_type_name(type);
	if (!tn)
		return verr_set(e, -EINVAL, "snapshot: section type %u is not one this vmm writes",
				type);
	if (len > SNAP_MAX_SECTION)
		return verr_set(e, -E2BIG, "snapshot: the %s section of %u is %zu bytes, past %u",
				tn, index, len, SNAP_MAX_SECTION);
	if (w->nsections == SNAP_MAX_SECTIONS)
		return verr_set(e, -E2BIG, "snapshot: more than %u sections", SNAP_MAX_SECTIONS);
	if (!w->len) {
		int r = reserve(w, SNAP_HEADER_LEN, e);
		if (r < 0)
			return r;
		memset(w->data, 0, SNAP_HEADER_LEN);
		w->len = SNAP_HEADER_LEN;
	}
	for (size_t at = SNAP_HEADER_LEN; at < w->len;
	     at += SNAP_SECTION_HDR_LEN + padded(le_get64(w->data + at + 8)))
		if (le_get32(w->data + at) == type && le_get32(w->data + at + 4) == index)
			return verr_set(e, -EINVAL, "snapshot: two %s sections for %u", tn, index);
	size_t total = SNAP_SECTION_HDR_LEN + padded(len);
	if (w->len + total > SNAP_MAX_FILE)
		return verr_set(e, -E2BIG, "snapshot: the state file would pass %u bytes",
				SNAP_MAX_FILE);
	int r = reserve(w, total, e);
	if (r < 0)
		return r;
	uint8_t *h = w->data + w->len;
	memset(h, 0, total);
	le_put32(h, type);
	le_put32(h + 4, index);
	le_put64(h + 8, len);
	if (len)
		memcpy(h + SNAP_SECTION_HDR_LEN, data, len);
	le_put32(h + 16, section_crc(h, h + SNAP_SECTION_HDR_LEN, len));
	w->len += total;
	w->nsections++;
	return 0;
}

void snap_writer_finish(struct snap_writer *w)
{
	struct verr ignore;
	if (!w->len && reserve(w, SNAP_HEADER_LEN, &ignore) == 0) {
		memset(w->data, 0, SNAP_HEADER_LEN);
		w->len = SNAP_HEADER_LEN;
	}
	if (!w->len)
		return;
	uint8_t *h = w->data;
	memcpy(h, SNAP_MAGIC, 8);
	le_put32(h + 8, SNAP_FORMAT_VERSION);
	le_put32(h + 12, SNAP_HEADER_LEN);
	le_put64(h + 16, w->len);
	le_put32(h + 24, w->nsections);
	le_put32(h + 28, 0);
	le_put32(h + 32, 0);
	le_put32(h + 36, (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 36));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int snap_parse(const void *bytes, size_t len, const char *name, struct snap_file *f, struct verr *e)
{
	const uint8_t *d = bytes;
	memset(f, 0, sizeof(*f));
	if (len < SNAP_HEADER_LEN || memcmp(d, SNAP_MAGIC, 8) != 0)
		return verr_set(e, -EINVAL,
				"%s: not a vmm snapshot state file (no VMMSNAP header): give "
				"the state file of a snapshot folder",
				name);
	uint32_t version = le_get32(d + 8);
	if (version != SNAP_FORMAT_VERSION)
		return verr_set(e, -EINVAL,
				"%s: written by a vmm with snapshot format %u, this one reads %u: "
				"restore it with that vmm, or take the snapshot again",
				name, version, SNAP_FORMAT_VERSION);
	if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), d, 36) != le_get32(d + 36))
		return verr_set(e, -EINVAL,
				"%s: the header's checksum does not match: the file is "
				"damaged; take the snapshot again",
				name);
	uint64_t flen = le_get64(d + 16);
	uint32_t n = le_get32(d + 24);
	if (le_get32(d + 12) != SNAP_HEADER_LEN || !all_zero(d + 28, 8))
		return verr_set(e, -EINVAL, "%s: a header this vmm does not know (length %u)", name,
				le_get32(d + 12));
	if (flen != len)
		return verr_set(e, -EINVAL,
				"%s: is %zu bytes, its header says %llu: the file is cut short or "
				"has bytes added; take the snapshot again",
				name, len, (unsigned long long)flen);
	if (n > SNAP_MAX_SECTIONS)
		return verr_set(e, -EINVAL, "%s: %u sections, past this vmm's %u", name, n,
				SNAP_MAX_SECTIONS);
	f->sections = calloc(n ? n : 1, sizeof(*f->sections));
	if (!f->sections)
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	size_t at = SNAP_HEADER_LEN;
	int r = 0;
	for (uint32_t i = 0; i < n && r == 0; i++) {
		if (len - at < SNAP_SECTION_HDR_LEN) {
			r = verr_set(e, -EINVAL, "%s: section %u of %u starts past the end", name,
				     i, n);
			break;
		}
		const uint8_t *h = d + at;
		uint32_t type = le_get32(h), index = le_get32(h + 4);
		uint64_t slen = le_get64(h + 8);
		const char *tn = snap_type_name(type);
		if (!tn) {
			r = verr_set(e, -EINVAL,
				     "%s: section %u has type %u, which this vmm does not know: "
				     "restore it with the vmm that wrote it",
				     name, i, type);
			break;
		}
		if (slen > SNAP_MAX_SECTION || padded(slen) > len - at - SNAP_SECTION_HDR_LEN) {
			r = verr_set(e, -EINVAL,
				     "%s: section %u (%s %u) says %llu bytes, past the file's end "
				     "or this vmm's %u",
				     name, i, tn, index, (unsigned long long)slen,
				     SNAP_MAX_SECTION);
			break;
		}
		const uint8_t *p = h + SNAP_SECTION_HDR_LEN;
		if (!all_zero(h + 20, 4) || !all_zero(p + slen, padded(slen) - slen)) {
			r = verr_set(
			    e, -EINVAL,
			    "%s: section %u (%s %u) has reserved or padding bytes set: the "
			    "file is damaged",
			    name, i, tn, index);
			break;
		}
		if (section_crc(h, p, slen) != le_get32(h + 16)) {
			r = verr_set(
			    e, -EINVAL,
			    "%s: section %u (%s %u): the checksum does not match: the file "
			    "is damaged; take the snapshot again",
			    name, i, tn, index);
			break;
		}
		if (snap_find(f, type, index)) {
			r = verr_set(e, -EINVAL, "%s: two %s sections for %u", name, tn, index);
			break;
		}
		f->sections[f->nsections++] =
		    (struct snap_section){.type = type, .index = index, .data = p, .len = slen};
		at += SNAP_SECTION_HDR_LEN + padded(slen);
	}
	if (r == 0 && at != len)
		r = verr_set(e, -EINVAL, "%s: %zu bytes after the last of its %u sections", name,
			     len - at, n);
	if (r < 0)
		snap_file_free(f);
	else
		f->name = name;
	return r;
}

void snap_file_free(struct snap_file *f)
{
	free(f->sections);
	memset(f, 0, sizeof(*f));
}

const struct snap_section *snap_find(const struct snap_file *f, uint32_t type, uint32_t index)
{
	for (uint32_t i = 0; i < f->nsections; i++)
		if (f->sections[i].type == type && f->sections[i].index == index)
			return &f->sections[i];
	return NULL;
}

int snap_get(const struct snap_file *f, uint32_t type, uint32_t index, void *out, size_t len,
	     struct verr *e)
{
	const struct snap_section *s = snap_find(f, type, index);
	const char *tn = snap_type_name(type);
	if (!s)
		return verr_set(e, -EINVAL, "%s: no %s section for %u: the snapshot is incomplete",
				f->name, tn ? tn : "?", index);
	if (s->len != len)
		return verr_set(e, -EINVAL,
				"%s: the %s section of %u is %zu bytes, this vmm expects %zu: "
				"restore it with the vmm that wrote it",
				f->name, tn, index, s->len, len);
	memcpy(out, s->data, len);
	return 0;
}

int snap_write_at(int dirfd, const char *name, const struct snap_writer *w, struct verr *e)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
		return verr_set(e, -ENAMETOOLONG, "snapshot: the name %s is too long", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return verr_set(e, -errno, "snapshot: cannot create %s: %s", tmp, strerror(errno));
	int err = 0;
	for (size_t at = 0; at < w->len && !err;) {
		ssize_t n = write(fd, w->data + at, w->len - at);
		if (n > 0)
			at += (size_t)n;
		else if (n < 0 && errno != EINTR)
			err = errno;
	}
	if (!err && fsync(fd) < 0)
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err && renameat(dirfd, tmp, dirfd, name) < 0)
		err = errno;
	if (err) {
		unlinkat(dirfd, tmp, 0);
		return verr_set(e, -err, "snapshot: cannot write %s: %s", name, strerror(err));
	}
	return 0;
}

int snap_read_at(int dirfd, const char *name, uint8_t **data, struct snap_file *f, struct verr *e)
{
	*data = NULL;
	memset(f, 0, sizeof(*f));
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return verr_set(e, -errno, "%s: cannot open it: %s", name, strerror(errno));
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0)
		r = verr_set(e, -errno, "%s: %s", name, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = verr_set(e, -EINVAL, "%s: not a regular file", name);
	else if (st.st_size > (off_t)SNAP_MAX_FILE)
		r = verr_set(e, -EINVAL, "%s: %lld bytes, past this vmm's %u for a state file",
			     name, (long long)st.st_size, SNAP_MAX_FILE);
	size_t len = r == 0 ? (size_t)st.st_size : 0, at = 0;
	uint8_t *buf = r == 0 ? malloc(len ? len : 1) : NULL;
	if (r == 0 && !buf)
		r = verr_set(e, -ENOMEM, "%s: out of memory", name);
	while (r == 0 && at < len) {
		ssize_t n = read(fd, buf + at, len - at);
		if (n > 0)
			at += (size_t)n;
		else if (n == 0)
			r = verr_set(e, -EINVAL, "%s: shorter than its size as it was read", name);
		else if (errno != EINTR)
			r = verr_set(e, -errno, "%s: %s", name, strerror(errno));
	}
	close(fd);
	if (r == 0)
		r = snap_parse(buf, len, name, f, e);
	if (r < 0)
		free(buf);
	else
		*data = buf;
	return r;
}
