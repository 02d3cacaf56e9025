/* The seccomp allow-lists, one per thread kind, as data: the single source of truth for the
 * filters. Compiled into the build-time generator (vmm/sandbox/gen-seccomp-filters.c), which turns
 * them into the classic BPF programs vmm installs (vmm/sandbox/sandbox_filters.h), and into the
 * unit test, which compiles them again at run time and checks both programs agree. vmm itself does
 * not link this file nor libseccomp. See docs/security.md. */
#ifndef VMM_SANDBOX_RULES_H
#define VMM_SANDBOX_RULES_H

#include "vmm/log.h"
#include "vmm/sandbox/sandbox.h"

#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>

#include <linux/filter.h>

/* A system call allowed whatever its arguments, by name (resolved by libseccomp for the native
 * architecture; a name unknown there is skipped). */
struct sc_rule {
	const char *name;
	const char *why;
};

/* ioctl with this request number (compared on its low 32 bits, the kernel's unsigned int cmd). */
struct ioctl_rule {
	unsigned long req;
	const char *why;
};

/* One thread kind's list: the common calls, its own calls, its ioctl requests, and socket(2)
 * with domain AF_UNIX only when unix_socket is set. */
struct sandbox_rules {
	const char *name; /* "main", "vcpu", "session", "fs": the SIGSYS line, VMM_SECCOMP_TEST */
	const struct sc_rule *calls;
	size_t ncalls;
	const struct ioctl_rule *ioctls;
	size_t nioctls;
	bool unix_socket;
	bool devices; /* the device back ends' lists too (sandbox_device_rules) */
};

/* One device type's back-end calls, by the name the device table gives (device_type.sandbox). */
struct sandbox_device_rules {
	const char *name;
	const struct sc_rule *calls;
	size_t ncalls;
};
extern const struct sandbox_device_rules sandbox_device_rules[];
extern const size_t sandbox_device_rules_len;

extern const struct sc_rule sandbox_common_rules[];
extern const size_t sandbox_common_rules_len;
/* Added to every kind in sanitizer builds only (VMM_SANDBOX_SANITIZER, set by meson when
 * b_sanitize is not none): the sanitizer runtime's own calls. Empty otherwise. */
extern const struct sc_rule *const sandbox_sanitizer_rules;
extern const size_t sandbox_sanitizer_rules_len;
extern const struct sandbox_rules sandbox_rules[SANDBOX_KINDS];

/* Builds KIND's filter with libseccomp: default action SCMP_ACT_TRAP, libseccomp's default for a
 * wrong architecture (SCMP_ACT_KILL, the thread), the rules added in a fixed order (common,
 * sanitizer, the kind's calls, the device lists when the kind runs device code, its ioctls,
 * socket). On success
 * *ctx is the filter (the caller releases it with seccomp_release). Returns 0 or a negative errno
 * with e set. */
int sandbox_rules_filter(enum sandbox_kind kind, scmp_filter_ctx *ctx, struct verr *e);

/* Compiles KIND's filter to classic BPF with seccomp_export_bpf (through a memfd, read back):
 * exactly the program seccomp_load would install. On success *insns (malloc'd, the caller frees
 * it) holds *len instructions. Returns 0 or a negative errno with e set. */
int sandbox_rules_export(enum sandbox_kind kind, struct sock_filter **insns, size_t *len,
			 struct verr *e);

#endif
