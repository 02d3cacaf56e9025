/* Guest RAM: one anonymous mapping, regions over it, file mappings put over parts of it by the
 * loaders, and bounds-checked access. */
#include "vmm/memory.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

int guest_mem_init(struct guest_mem *m, const struct guest_region *layout, unsigned nr)
{
	memset(m, 0, sizeof(*m));
	if (nr == 0 || nr > GUEST_MEM_MAX_REGIONS)
		return -EINVAL;
	uint64_t total = 0, prev_end = 0;
	for (unsigned i = 0; i < nr; i++) {
		if (layout[i].size == 0 || (layout[i].gpa & 0xfff) || (layout[i].size & 0xfff))
			return -EINVAL;
		if (i && layout[i].gpa < prev_end)
			return -EINVAL;
		if (layout[i].gpa + layout[i].size < layout[i].gpa)
			return -EINVAL;
		prev_end = layout[i].gpa + layout[i].size;
		total += layout[i].size;
	}
	/* MAP_NORESERVE: the guest pays for the pages it touches, not for the size it was given. */
	void *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Guest memory never belongs in a core dump of vmm: it is the guest's data. */
	madvise(p, total, MADV_DONTDUMP);
	m->map = p;
	m->map_len = total;
	m->total = total;
	m->nr_regions = nr;
	uint64_t off = 0;
	for (unsigned i = 0; i < nr; i++) {
		m->region[i] = layout[i];
		m->region[i].host = m->map + off;
		off += layout[i].size;
	}
	return 0;
}

void guest_mem_free(struct guest_mem *m)
{
	if (m->map)
		munmap(m->map, m->map_len);
	memset(m, 0, sizeof(*m));
}

int guest_mem_map_file(const struct guest_mem *m, uint64_t gpa, uint64_t len, int fd, uint64_t off)
{
	if (len == 0 || ((gpa | len | off) & (GUEST_PAGE_SIZE - 1)) || off > (uint64_t)INT64_MAX)
		return -EINVAL;
	uint8_t *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	/* Never PROT_EXEC, as for the anonymous memory: a read-only fd allows this (MAP_PRIVATE
	 * needs no write access to the file), as vmm-jail's read-only bind mounts give. */
	void *q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		       (off_t)off);
	int r = 0;
	if (q == MAP_FAILED)
		r = -errno;
	else if (madvise(p, len, MADV_DONTDUMP) < 0)
		r = -errno; /* a guest page in a core dump is worse than a copy */
	if (r == 0)
		return 0;
	/* A failed MAP_FIXED may already have unmapped the old pages: put zero memory back. */
	guest_mem_discard(m, gpa, len);
	return r;
}

int guest_mem_discard(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (len == 0 || ((gpa | len) & (GUEST_PAGE_SIZE - 1)))
		return -EINVAL;
	uint8_t *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	if (mmap(p, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		return -errno;
	madvise(p, len, MADV_DONTDUMP);
	return 0;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_region *r = &m->region[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		/* off <= size and len <= size - off: no addition that can wrap. */
		if (off > r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

uint64_t guest_mem_low_end(const struct guest_mem *m)
{
	if (m->nr_regions && m->region[0].gpa == 0)
		return m->region[0].size;
	return 0;
}
