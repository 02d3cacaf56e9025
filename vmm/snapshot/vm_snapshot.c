/* A paused VM's snapshot into two files the caller opened (vm_snapshot.h). */
#include "vmm/snapshot/vm_snapshot.h"
#include "vmm/arch/snapshot_x86_64.h"
#include "vmm/le.h"
#include "vmm/snapshot/snapfile.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- restore ---- */

struct vm_restore {
	uint8_t *data;
	struct snap_file f;
	char name[PATH_MAX + 8]; /* "DIR/state", for the error lines */
};

static int read_state(const char *dir, struct vm_restore *rs, struct verr *e)
{
	snprintf(rs->name, sizeof(rs->name), "%s/state", dir);
	/* the path itself, so that every error line names it */
	return snap_read_at(AT_FDCWD, rs->name, &rs->data, &rs->f, e);
}

static void free_state(struct vm_restore *rs)
{
	snap_file_free(&rs->f);
	free(rs->data);
	rs->data = NULL;
}

int vm_snapshot_load_description(struct vm_config *c, const char *dir, struct verr *e)
{
	struct vm_restore rs = {0};
	int r = read_state(dir, &rs, e);
	if (r < 0)
		return r;
	/* The description's control keys were the snapshotted vmm's own, not the machine's: this
	 * vmm keeps its command line's, given before --restore or after it. */
	char **own[] = {&c->api_sock, &c->pid_file, &c->metrics_path, &c->console_socket,
			&c->log_path};
	char *mine[sizeof(own) / sizeof(own[0])];
	bool paused = c->paused, detach = c->detach;
	enum log_level level = c->log_level;
	enum log_format format = c->log_format;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		mine[i] = *own[i];
		*own[i] = NULL;
	}
	const struct snap_section *s = snap_find(&rs.f, SNAP_DESCRIPTION, 0);
	if (!s)
		r = verr_set(e, -EINVAL, "%s: no description section: the snapshot is incomplete",
			     rs.name);
	else
		r = config_parse_json(c, (const char *)s->data, s->len, rs.name, e);
	free_state(&rs);
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		free(*own[i]);
		*own[i] = mine[i];
	}
	c->paused = paused;
	c->detach = detach;
	c->log_level = level;
	c->log_format = format;
	return r;
}

int vm_restore_begin(struct vm *vm, const char *dir, struct verr *e)
{
	struct vm_restore *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return verr_set(e, -ENOMEM, "--restore: out of memory");
	vm->restore = rs;
	int r = read_state(dir, rs, e);
	if (r < 0)
		return r;
	const struct guest_mem *m = &vm->mem;
	const struct snap_section *s = snap_find(&rs->f, SNAP_MEMORY, 0);
	if (!s || s->len < 16 || s->len != VM_SNAPSHOT_MEMORY_LEN(le_get32(s->data + 8)) ||
	    le_get32(s->data + 12) != 0)
		return verr_set(e, -EINVAL, "%s: the memory section is %s: the snapshot is damaged",
				rs->name, s ? "malformed" : "missing");
	if (le_get64(s->data) != m->total || le_get32(s->data + 8) != m->nr_regions)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's memory is %llu bytes in %u regions, its "
				"description gives %llu in %u: the snapshot is damaged",
				rs->name, (unsigned long long)le_get64(s->data),
				le_get32(s->data + 8), (unsigned long long)m->total, m->nr_regions);
	char path[PATH_MAX + 8];
	snprintf(path, sizeof(path), "%s/memory", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = verr_set(e, -errno, "--restore: %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	for (unsigned i = 0; r == 0 && i < m->nr_regions; i++) {
		const uint8_t *g = s->data + VM_SNAPSHOT_MEMORY_LEN(i);
		uint64_t gpa = le_get64(g), size = le_get64(g + 8), off = le_get64(g + 16);
		if (gpa != m->region[i].gpa || size != m->region[i].size || off % PAGE ||
		    off > (uint64_t)st.st_size || size > (uint64_t)st.st_size - off)
			r = verr_set(
			    e, -EINVAL,
			    "%s: memory region %u (at %#llx, %llu bytes, file offset %llu) "
			    "does not match the description's layout or %s's %lld bytes: "
			    "the snapshot is damaged",
			    rs->name, i, (unsigned long long)gpa, (unsigned long long)size,
			    (unsigned long long)off, path, (long long)st.st_size);
		else if ((r = guest_mem_map_file(m, gpa, size, fd, off)) < 0)
			r = verr_set(e, r, "--restore: cannot map %s: %s", path, strerror(-r));
	}
	close(fd); /* the mappings keep the file */
	return r;
}

int vm_restore_state(struct vm *vm, struct verr *e)
{
	struct vm_restore *rs = vm->restore;
	const struct snap_file *f = &rs->f;
	struct mmio_devices *md = &vm->virtio;
	int r = 0;
	if (snap_find(f, SNAP_DEV_TRANSPORT, md->n))
		r = verr_set(e, -EINVAL,
			     "%s: the snapshot has more devices than its description's "
			     "%u: give no device options after --restore",
			     rs->name, md->n);
	for (unsigned i = 0; r == 0 && i < md->n; i++) {
		struct virtio_dev *d = md->slot[i].dev;
		const struct snap_section *t = snap_find(f, SNAP_DEV_TRANSPORT, i);
		const struct snap_section *s = snap_find(f, SNAP_DEV_STATE, i);
		if (!t || !s)
			r = verr_set(e, -EINVAL,
				     "%s: no state for device %u (%s): the snapshot has "
				     "fewer devices than its description",
				     rs->name, i, d->name);
		else if (!d->ops->restore)
			r = verr_set(e, -ENOTSUP, "%s: %s cannot be restored by this vmm", rs->name,
				     d->name);
		else if ((r = d->ops->restore(d, s->data, s->len, e)) == 0)
			r = virtio_mmio_restore(&md->slot[i].mmio, t->data, t->len, e);
	}
	const struct snap_section *s = snap_find(f, SNAP_SERIAL, 0);
	if (r == 0 && !s)
		r = verr_set(e, -EINVAL, "%s: no serial section: the snapshot is incomplete",
			     rs->name);
	if (r == 0)
		r = serial_restore(&vm->serial, s->data, s->len, e);
	if (r == 0)
		r = arch_vm_restore(vm->vm_fd, f, e);
	for (unsigned i = 0; r == 0 && i < vm->ncpus; i++)
		r = arch_vcpu_restore(vm->kvm_fd, vm->vcpus[i].fd, i, f, e);
	if (r == 0 && snap_find(f, SNAP_CPUID, vm->ncpus))
		r = verr_set(e, -EINVAL,
			     "%s: the snapshot has more vCPUs than its description's "
			     "%u: give no --cpus after --restore",
			     rs->name, vm->ncpus);
	if (r == 0) {
		vm->restored = true;
		vm_restore_free(vm);
	}
	return r;
}

void vm_restore_kick(struct vm *vm)
{
	struct mmio_devices *md = &vm->virtio;
	for (unsigned i = 0; i < md->n; i++) {
		struct virtio_dev *d = md->slot[i].dev;
		pthread_mutex_lock(&d->lock);
		for (unsigned q = 0; q < d->nr_queues; q++)
			if (virtio_dev_running(d) && d->vq[q].ready && d->ops->queue_notify)
				d->ops->queue_notify(d, q);
		pthread_mutex_unlock(&d->lock);
	}
}

void vm_restore_free(struct vm *vm)
{
	if (!vm->restore)
		return;
	free_state(vm->restore);
	free(vm->restore);
	vm->restore = NULL;
}
