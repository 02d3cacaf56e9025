/* The metrics object (vmm/api/metrics.h): built with json-c from a struct metrics_src, and written
 * into an open file in place. */
#include "vmm/api/metrics.h"

#include <errno.h>
#include <json-c/json.h>
#include <linux/kvm.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_NAME(n) [KVM_EXIT_##n] = #n

/* Every KVM_EXIT_* of <linux/kvm.h> in Linux 6.1 (Debian 12), by number. */
static const char *const exit_names[] = {
    EXIT_NAME(UNKNOWN),
    EXIT_NAME(EXCEPTION),
    EXIT_NAME(IO),
    EXIT_NAME(HYPERCALL),
    EXIT_NAME(DEBUG),
    EXIT_NAME(HLT),
    EXIT_NAME(MMIO),
    EXIT_NAME(IRQ_WINDOW_OPEN),
    EXIT_NAME(SHUTDOWN),
    EXIT_NAME(FAIL_ENTRY),
    EXIT_NAME(INTR),
    EXIT_NAME(SET_TPR),
    EXIT_NAME(TPR_ACCESS),
    EXIT_NAME(S390_SIEIC),
    EXIT_NAME(S390_RESET),
    EXIT_NAME(DCR),
    EXIT_NAME(NMI),
    EXIT_NAME(INTERNAL_ERROR),
    EXIT_NAME(OSI),
    EXIT_NAME(PAPR_HCALL),
    EXIT_NAME(S390_UCONTROL),
    EXIT_NAME(WATCHDOG),
    EXIT_NAME(S390_TSCH),
    EXIT_NAME(EPR),
    EXIT_NAME(SYSTEM_EVENT),
    EXIT_NAME(S390_STSI),
    EXIT_NAME(IOAPIC_EOI),
    EXIT_NAME(HYPERV),
    EXIT_NAME(ARM_NISV),
    EXIT_NAME(X86_RDMSR),
    EXIT_NAME(X86_WRMSR),
    EXIT_NAME(DIRTY_RING_FULL),
    EXIT_NAME(AP_RESET_HOLD),
    EXIT_NAME(X86_BUS_LOCK),
    EXIT_NAME(XEN),
    EXIT_NAME(RISCV_SBI),
    EXIT_NAME(RISCV_CSR),
    EXIT_NAME(NOTIFY),
};
#define NEXIT_NAMES (sizeof(exit_names) / sizeof(exit_names[0]))

const char *kvm_exit_reason_name(unsigned reason)
{
	return reason < NEXIT_NAMES ? exit_names[reason] : NULL;
}

/* ---- building ---- */

static struct json_object *new_count(uint64_t n)
{
	return json_object_new_int64(n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n);
}

/* Milliseconds with 3 decimals (json-c would print a double with 17 digits). */
static struct json_object *new_ms(double ms)
{
	char s[64];
	if (!isfinite(ms))
		ms = 0;
	snprintf(s, sizeof(s), "%.3f", ms);
	return json_object_new_double_s(ms, s);
}

static struct json_object *new_string_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL; /* NULL is JSON null to json-c */
}

/* Adds val (taken over, put on failure) under key; val NULL is kept only when it is meant as
 * null (is_null). Returns false when out of memory. */
static bool add_val(struct json_object *o, const char *key, struct json_object *val, bool is_null)
{
	if (!val && !is_null)
		return false;
	if (json_object_object_add(o, key, val) < 0) {
		json_object_put(val);
		return false;
	}
	return true;
}

static bool add(struct json_object *o, const char *key, struct json_object *val)
{
	return add_val(o, key, val, false);
}

static bool add_count(struct json_object *o, const char *key, uint64_t n)
{
	return add(o, key, new_count(n));
}

static bool add_array_item(struct json_object *a, struct json_object *val)
{
	if (!val)
		return false;
	if (json_object_array_add(a, val) < 0) {
		json_object_put(val);
		return false;
	}
	return true;
}

static struct json_object *exits_json(const struct metrics_src *s)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	uint64_t total = 0;
	for (unsigned i = 0; i < s->nexits; i++)
		total = s->exits[i] > UINT64_MAX - total ? UINT64_MAX : total + s->exits[i];
	bool ok = add_count(o, "total", total);
	for (unsigned i = 0; ok && i < s->nexits; i++) {
		if (!s->exits[i])
			continue;
		char unknown[32];
		const char *name = kvm_exit_reason_name(i);
		if (!name) {
			snprintf(unknown, sizeof(unknown), "reason_%u", i);
			name = unknown;
		}
		ok = add_count(o, name, s->exits[i]);
	}
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The queues the driver has set up, each with where its indexes stand. */
static struct json_object *queues_json(const struct metrics_device *d)
{
	struct json_object *a = json_object_new_array();
	if (!a)
		return NULL;
	for (unsigned i = 0; i < d->nqueues; i++) {
		const struct virtq_state *q = &d->queues[i];
		if (!q->ready)
			continue;
		struct json_object *o = json_object_new_object();
		bool ok = o && add_count(o, "index", i) && add_count(o, "size", q->size) &&
			  add_count(o, "offered", q->offered) && add_count(o, "taken", q->taken) &&
			  add_count(o, "returned", q->returned) &&
			  add_count(o, "signalled", q->signalled) &&
			  (!q->event_idx || add_count(o, "used_event", q->used_event)) &&
			  add(o, "broken", json_object_new_boolean(q->broken));
		if (!ok) {
			json_object_put(o);
			o = NULL; /* add_array_item fails on it */
		}
		if (!add_array_item(a, o)) {
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

static struct json_object *device_json(const struct metrics_device *d)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	if (!add_val(o, "name", new_string_or_null(d->name), !d->name) ||
	    !add_val(o, "type", new_string_or_null(d->type), !d->type) ||
	    !add_count(o, "requests", d->st.requests) || !add_count(o, "bytes", d->st.bytes) ||
	    !add_count(o, "errors", d->st.errors) ||
	    !add_count(o, "needs_reset", d->st.needs_reset) ||
	    !add_count(o, "interrupt_status", d->isr) || !add(o, "queues", queues_json(d))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *devices_json(const struct metrics_src *s)
{
	struct json_object *a = json_object_new_array();
	if (!a)
		return NULL;
	for (unsigned i = 0; i < s->ndevs; i++) {
		if (!add_array_item(a, device_json(&s->devs[i]))) {
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

static struct json_object *vsock_json(const struct virtio_vsock_stats *v)
{
	struct json_object *o = json_object_new_object();
	if (o && (!add_count(o, "opened", v->opened) || !add_count(o, "closed", v->closed) ||
		  !add_count(o, "active", v->active))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *log_json(const struct metrics_src *s)
{
	struct json_object *o = json_object_new_object();
	if (o && !add_count(o, "dropped", s->log_dropped)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* A boot moment, left out when not seen. */
static bool add_moment(struct json_object *o, const char *key, double ms)
{
	if (!isfinite(ms) || ms <= 0)
		return true;
	return add(o, key, new_ms(ms));
}

struct json_object *metrics_boot_json(const struct metrics_src *s)
{
	struct json_object *o = json_object_new_object();
	struct json_object *ph = json_object_new_object();
	bool ok = o && ph;
	for (unsigned i = 0; ok && i < s->nphases; i++)
		if (s->phases[i].name) /* a phase without a name cannot be keyed: left out */
			ok = add(ph, s->phases[i].name, new_ms(s->phases[i].ms));
	if (ok) {
		ok = add(o, "phases", ph);
		ph = NULL; /* o holds it now, or add put it */
	}
	ok = ok && add_moment(o, "start_ms", s->start_ms) &&
	     add_moment(o, "first_kvm_run_ms", s->first_run_ms) &&
	     add_moment(o, "kernel_entry_ms", s->kernel_entry_ms) &&
	     add_moment(o, "init_ms", s->init_ms) &&
	     add_moment(o, "process_start_ms", s->process_start_ms);
	if (!ok) {
		json_object_put(ph);
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *metrics_json(const struct metrics_src *s)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	bool ok = add(o, "version", json_object_new_int(1)) &&
		  add_val(o, "state", new_string_or_null(s->state), !s->state) &&
		  add(o, "uptime_ms", new_ms(s->uptime_ms)) &&
		  add(o, "vcpu_exits", exits_json(s)) && add(o, "devices", devices_json(s)) &&
		  (!s->have_vsock || add(o, "vsock", vsock_json(&s->vsock))) &&
		  add(o, "log", log_json(s)) && add(o, "boot", metrics_boot_json(s));
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- the file ---- */

/* Writes all of buf to fd at offset off; 0 or -errno. */
static int pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* no progress: do not spin */
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int metrics_write_fd(int fd, const char *path_for_errors, const struct metrics_src *s,
		     struct verr *e)
{
	const char *path = path_for_errors ? path_for_errors : "(no name)";
	struct json_object *o = metrics_json(s);
	if (!o)
		return verr_set(e, -ENOMEM, "metrics file %s: out of memory building the metrics",
				path);
	size_t jlen;
	const char *js = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &jlen);
	if (!js) {
		json_object_put(o);
		return verr_set(e, -ENOMEM,
				"metrics file %s: out of memory serializing the metrics", path);
	}
	if (ftruncate(fd, 0) < 0) {
		int err = errno;
		json_object_put(o);
		return verr_set(e, -err,
				"metrics file %s: cannot empty it before writing (ftruncate: %s): "
				"give a regular file, opened for writing",
				path, strerror(err));
	}
	int r = pwrite_all(fd, js, jlen, 0);
	if (r == 0)
		r = pwrite_all(fd, "\n", 1, (off_t)jlen);
	json_object_put(o);
	if (r < 0)
		return verr_set(e, r,
				"metrics file %s: writing the metrics failed (pwrite: %s): check "
				"the free space and the file system",
				path, strerror(-r));
	return 0;
}
