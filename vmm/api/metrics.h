/* The metrics object: vmm's counters as one JSON object, for the control API's `metrics`
 * operation and for `--metrics FILE` (written at exit). Modelled on Firecracker's metrics, so
 * the same dashboards can graph them. This file only builds and writes the object from a
 * struct metrics_src the caller filled; where each number comes from is the caller's business
 * (vCPU exit counts, virtio_dev_stats_get, virtio_vsock_get_stats, the log's dropped lines, the
 * boot timer).
 *
 * The object (keys in this order; version 1):
 *
 *   {
 *     "version": 1,
 *     "state": "running",              the VM's state as the caller names it (null if NULL)
 *     "uptime_ms": 123.400,            milliseconds, 3 decimals
 *     "vcpu_exits": {                  KVM_RUN exits summed over the vCPUs
 *       "total": 5012,                 every exit, whatever its reason
 *       "IO": 4000, "HLT": 12, "MMIO": 1000,
 *                                      one key per reason with a non-zero count, in reason
 *                                      order, named as kvm_exit_reason_name() names it, or
 *                                      "reason_<n>" for a reason it does not know
 *       ...
 *     },
 *     "devices": [                     one entry per device, in the caller's order
 *       {"name": "virtio-blk vda", "type": "blk",
 *        "requests": 10, "bytes": 40960, "errors": 0, "needs_reset": 0,
 *        "interrupt_status": 0,        (devices/virtio.h defines the counters per type)
 *        "queues": [{"index": 0, "size": 256, "offered": 120, "taken": 120,
 *                    "returned": 120, "signalled": 120, "used_event": 119,
 *                    "broken": false}]},
 *                                      the queues the driver set up (struct virtq_state;
 *                                      used_event only with event idx)
 *       ...
 *     ],
 *     "vsock": {"opened": 3, "closed": 2, "active": 1},
 *                                      only with have_vsock (devices/virtio_vsock.h)
 *     "log": {"dropped": 0},           rate-limited log lines not printed
 *     "boot": {
 *       "phases": {"options": 0.125, "memory": 2.500, ...},
 *                                      each start-up phase's milliseconds, in the caller's
 *                                      order (a name given twice: the last value, in the
 *                                      first one's place; a NULL name is left out)
 *       "start_ms": 5.000,             milliseconds since vmm started; each of these five
 *                                      is left out when the caller has not seen the moment
 *                                      (start_ms: the start, at once or the API's with --paused)
 *       "first_kvm_run_ms": 12.000,
 *       "kernel_entry_ms": 15.200,     (0, negative or not a finite number)
 *       "init_ms": 80.100,
 *       "process_start_ms": 95.300
 *     }
 *   }
 *
 * Counters are JSON integers (int64: a count above INT64_MAX is written as INT64_MAX);
 * milliseconds are JSON numbers with 3 decimals (a value that is not finite is written as 0).
 * New keys may be added in version 1; a key is never renamed or given another meaning without
 * a new version. */
#ifndef VMM_METRICS_H
#define VMM_METRICS_H

#include "devices/virtio.h"
#include "devices/virtio_vsock.h"
#include "vmm/log.h"

#include <stdbool.h>
#include <stdint.h>

struct json_object;

/* The name of KVM exit reason `reason` (KVM_EXIT_<NAME> in <linux/kvm.h>, without the prefix:
 * "UNKNOWN", "IO", "HLT", "MMIO", "SHUTDOWN", ...), for every reason the Linux 6.1 headers of
 * Debian 12 define (0 to KVM_EXIT_NOTIFY, 37); NULL for any other number. */
const char *kvm_exit_reason_name(unsigned reason);

struct metrics_device {
	const char *name; /* "virtio-blk vda" */
	const char *type; /* "blk", "net", "vsock" or "rng" */
	struct virtio_dev_stats_snapshot st;
	struct virtq_state queues[VIRTIO_MAX_QUEUES]; /* [0, nqueues) */
	unsigned nqueues;
	unsigned isr; /* interrupt status not yet acknowledged */
};

struct metrics_phase {
	const char *name;
	double ms;
};

/* Everything the object holds; pointers are only read during the call. */
struct metrics_src {
	const char *state;
	double uptime_ms;
	const uint64_t *exits; /* exits[reason], summed over the vCPUs; NULL when nexits is 0 */
	unsigned nexits;
	const struct metrics_device *devs;
	unsigned ndevs;
	bool have_vsock;
	struct virtio_vsock_stats vsock;
	unsigned long long log_dropped;
	const struct metrics_phase *phases;
	unsigned nphases;
	/* 0: not seen. start_ms: the start (at once, or the API's with --paused) */
	double start_ms, first_run_ms, kernel_entry_ms, init_ms, process_start_ms;
};

/* The "boot" member alone (the API's `state` reply carries it too). NULL only when out of
 * memory. */
struct json_object *metrics_boot_json(const struct metrics_src *s);

/* Builds the object described above. Returns a new object (json_object_put it), or NULL only
 * when out of memory. */
struct json_object *metrics_json(const struct metrics_src *s);

/* Writes the object as one line (compact JSON and "\n") into the open file fd, in place:
 * ftruncate(fd, 0), then pwrite from offset 0 (short writes retried), so no file is opened or
 * renamed (vmm writes --metrics FILE at exit from a thread whose seccomp filter allows neither,
 * on an fd it opened before the sandbox). fd's file offset is neither used nor moved; a reader
 * may see the file empty or partly written meanwhile. path_for_errors (may be NULL) only names
 * the file in messages. Returns 0, or a negative errno with one line in e that names the file,
 * what failed and what to do. */
int metrics_write_fd(int fd, const char *path_for_errors, const struct metrics_src *s,
		     struct verr *e);

#endif
