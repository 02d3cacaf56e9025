/* A paused VM's snapshot into two files the caller opened (vm_snapshot.h). */
#include "vmm/snapshot/vm_snapshot.h"
#include "vmm/arch/snapshot_x86_64.h"
#include "vmm/le.h"
#include "vmm/snapshot/snapfile.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE	  4096u
#define MAX_WRITE (1u << 20) /* bytes of one pwrite of guest memory */

static int check_file(int fd, const char *what, struct stat *st, struct verr *e)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, st) < 0)
		return verr_set(e, -errno, "snapshot: the %s file's descriptor: %s", what,
				strerror(errno));
	if (!S_ISREG(st->st_mode))
		return verr_set(e, -EINVAL,
				"snapshot: the %s file is not a regular file: give files in a "
				"directory",
				what);
	if ((fl & O_ACCMODE) == O_RDONLY || (fl & O_APPEND))
		return verr_set(e, -EBADF,
				"snapshot: the %s file is %s: open it for writing, without "
				"O_APPEND",
				what, (fl & O_APPEND) ? "in append mode" : "open read-only");
	return 0;
}

static int write_at(int fd, const uint8_t *p, size_t len, uint64_t off, const char *what,
		    struct verr *e)
{
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return verr_set(e, w < 0 ? -errno : -EIO,
					"snapshot: writing the %s file failed at byte %llu: %s",
					what, (unsigned long long)off,
					w < 0 ? strerror(errno) : "no progress");
		p += w, len -= (size_t)w, off += (uint64_t)w;
	}
	return 0;
}

static bool zero_page(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	for (size_t i = 0; i < PAGE / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Guest RAM, region after region, its zero pages left as holes. */
static int write_memory(const struct guest_mem *m, int fd, uint64_t *written, struct verr *e)
{
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)m->total) < 0)
		return verr_set(e, -errno,
				"snapshot: sizing the memory file to %llu bytes failed: %s",
				(unsigned long long)m->total, strerror(errno));
	uint64_t off = 0;
	*written = 0;
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_region *g = &m->region[i];
		for (uint64_t at = 0; at < g->size;) {
			if (zero_page(g->host + at)) {
				at += PAGE;
				continue;
			}
			uint64_t end = at + PAGE;
			while (end < g->size && end - at < MAX_WRITE && !zero_page(g->host + end))
				end += PAGE;
			int r = write_at(fd, g->host + at, end - at, off + at, "memory", e);
			if (r < 0)
				return r;
			*written += end - at;
			at = end;
		}
		off += g->size;
	}
	return 0;
}

static int add_memory(struct snap_writer *w, const struct guest_mem *m, struct verr *e)
{
	uint8_t b[VM_SNAPSHOT_MEMORY_LEN(GUEST_MEM_MAX_REGIONS)];
	memset(b, 0, sizeof(b));
	le_put64(b, m->total);
	le_put32(b + 8, m->nr_regions);
	uint64_t off = 0;
	for (unsigned i = 0; i < m->nr_regions; i++) {
		uint8_t *r = b + VM_SNAPSHOT_MEMORY_LEN(i);
		le_put64(r, m->region[i].gpa);
		le_put64(r + 8, m->region[i].size);
		le_put64(r + 16, off);
		off += m->region[i].size;
	}
	return snap_add(w, SNAP_MEMORY, 0, b, VM_SNAPSHOT_MEMORY_LEN(m->nr_regions), e);
}

static int add_text(struct snap_writer *w, uint32_t type, const char *s, struct verr *e)
{
	if (!s)
		return verr_set(e, -ENOMEM, "snapshot: out of memory for the description");
	return snap_add(w, type, 0, s, strlen(s), e);
}

/* Every device able to be saved, each quiesced (in slot order), then their sections. */
static int add_devices(struct mmio_devices *md, struct snap_writer *w, struct verr *e)
{
	for (unsigned i = 0; i < md->n; i++)
		if (!md->slot[i].dev->ops->save)
			return verr_set(
			    e, -ENOTSUP,
			    "snapshot: %s keeps state this vmm cannot save yet (so far "
			    "virtio-blk and virtio-rng can be): snapshot a VM without it",
			    md->slot[i].dev->name);
	for (unsigned i = 0; i < md->n; i++) {
		struct virtio_dev *d = md->slot[i].dev;
		int r = 0;
		pthread_mutex_lock(&d->lock);
		if (d->ops->quiesce)
			r = d->ops->quiesce(d, e);
		pthread_mutex_unlock(&d->lock);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < md->n; i++) {
		struct virtio_dev *d = md->slot[i].dev;
		uint8_t t[VIRTIO_MMIO_STATE_LEN], s[VIRTIO_DEV_STATE_MAX];
		virtio_mmio_save(&md->slot[i].mmio, t);
		pthread_mutex_lock(&d->lock);
		size_t n = d->ops->save(d, s);
		pthread_mutex_unlock(&d->lock);
		int r = snap_add(w, SNAP_DEV_TRANSPORT, i, t, sizeof(t), e);
		if (r == 0)
			r = snap_add(w, SNAP_DEV_STATE, i, s, n, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int build_state(struct vm *vm, struct snap_writer *w, struct verr *e)
{
	int r = add_text(w, SNAP_VMM, "vmm " VMM_VERSION, e);
	if (r == 0) {
		struct json_object *j = config_to_json(vm->cfg);
		r = add_text(w, SNAP_DESCRIPTION,
			     j ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN) : NULL,
			     e);
		json_object_put(j);
	}
	if (r == 0)
		r = add_memory(w, &vm->mem, e);
	/* the devices first: finishing their requests can raise interrupts, which the irqchip's
	 * state below then holds */
	if (r == 0)
		r = add_devices(&vm->virtio, w, e);
	if (r == 0) {
		uint8_t s[SERIAL_STATE_MAX];
		size_t n = serial_save(&vm->serial, s);
		r = snap_add(w, SNAP_SERIAL, 0, s, n, e);
	}
	for (unsigned i = 0; r == 0 && i < vm->ncpus; i++)
		r = arch_vcpu_save(vm->kvm_fd, vm->vcpus[i].fd, i, w, e);
	/* kvmclock as it was at the pause: the guest does not see the paused time after a restore
	 * either (resume sets it so again) */
	if (r == 0 && vm->clock_saved) {
		struct kvm_clock_data cd = {.clock = vm->paused_clock.clock};
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &cd) < 0)
			r = verr_set(e, -errno, "snapshot: ioctl (KVM_SET_CLOCK) failed: %s",
				     strerror(errno));
	}
	if (r == 0)
		r = arch_vm_save(vm->vm_fd, w, e);
	return r;
}

int vm_snapshot(struct vm *vm, int state_fd, int mem_fd, struct vm_snapshot_info *info,
		struct verr *e)
{
	double t0 = vm_elapsed_ms(vm);
	memset(info, 0, sizeof(*info));
	if (vm_state(vm) != VM_PAUSED)
		return verr_set(e, -EBUSY,
				"snapshot: the VM is %s, not paused: pause it first (vmm "
				"ctl pause)",
				vm_state_name(vm_state(vm)));
	struct stat ss, ms;
	int r = check_file(state_fd, "state", &ss, e);
	if (r == 0)
		r = check_file(mem_fd, "memory", &ms, e);
	if (r < 0)
		return r;
	if (ss.st_dev == ms.st_dev && ss.st_ino == ms.st_ino)
		return verr_set(e, -EINVAL,
				"snapshot: the state and memory files are one file: give two");

	struct snap_writer w;
	snap_writer_init(&w);
	r = build_state(vm, &w, e);
	if (r == 0) {
		snap_writer_finish(&w);
		r = write_memory(&vm->mem, mem_fd, &info->memory_written, e);
	}
	if (r == 0 && ftruncate(state_fd, 0) < 0)
		r = verr_set(e, -errno, "snapshot: truncating the state file failed: %s",
			     strerror(errno));
	if (r == 0)
		r = write_at(state_fd, w.data, w.len, 0, "state", e);
	if (r == 0 && (fdatasync(mem_fd) < 0 || fdatasync(state_fd) < 0))
		r = verr_set(e, -errno, "snapshot: syncing the files failed: %s", strerror(errno));
	if (r == 0) {
		info->state_bytes = w.len;
		info->sections = w.nsections;
		info->memory_bytes = vm->mem.total;
		info->ms = vm_elapsed_ms(vm) - t0;
	}
	snap_writer_free(&w);
	return r;
}
