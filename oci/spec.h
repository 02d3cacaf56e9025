/* vmm-oci: an OCI bundle's config.json (runtime-spec 1.0) turned into vmm's machine description
 * (the `--config` schema, docs/config.md). Pure: reads the bundle, touches nothing else, so the
 * unit test (tests/unit/test_oci_spec.c) checks every mapping and every refusal. */
#ifndef VMM_OCI_SPEC_H
#define VMM_OCI_SPEC_H

#include "vmm/log.h"

#include <json-c/json.h>
#include <stdbool.h>

/* The largest config.json read (podman's are a few KiB; a seccomp profile adds ~20 KiB). */
#define OCI_SPEC_MAX (4u << 20)

/* What vmm-oci adds to the description besides the spec: where the VM's control socket, pid
 * file and log go, and the engine's console socket. NULL fields are left out. */
struct oci_vm_opts {
	const char *api_sock;	    /* required */
	const char *pid_file;	    /* vmm writes its pid there once the VM is created */
	const char *console_socket; /* create's --console-socket */
	const char *log_path;	    /* the runtime's --log: vmm appends its own lines there */
	const char *log_format;	    /* "text" or "json" */
	const char *kernel;	    /* the default kernel (an io.vmm.kernel annotation wins) */
	const char *seccomp_bpf;    /* where linux.seccomp is compiled to (oci/seccomp.h); NULL:
				       a spec with a profile is refused */
};

/* Reads BUNDLE/config.json (strict JSON, at most OCI_SPEC_MAX bytes) into *spec, checked to be
 * an object. 0, or a negative errno with one line in e naming the file and the cause. */
int oci_spec_read(const char *bundle, json_object **spec, struct verr *e);

/* Builds vmm's description in *vm (a new object the caller owns) from spec, whose relative
 * root.path is taken from bundle (an absolute path). Checks what it maps, naming the key
 * ("config.json: process.args: ..."): root.path must be a directory, process.args a non-empty
 * array of strings, env entries KEY=VALUE, cwd absolute, user ids numbers, memory at least
 * 32 MiB, io.vmm.* annotations known. Mounts the agent makes itself (proc, sysfs, devpts,
 * mqueue, tmpfs and cgroup at their usual places, and /dev/shm) are left to it; bind mounts
 * become `volumes`. The process's settings (capabilities, rlimits, noNewPrivileges,
 * user.umask, user.additionalGids, oomScoreAdj) and linux.sysctl, maskedPaths, readonlyPaths
 * map to vmm's keys of the same meaning; linux.seccomp is compiled to o->seccomp_bpf (the one
 * file this writes). 0, or a negative errno with e set (*vm NULL). */
int oci_spec_to_vm(json_object *spec, const char *bundle, const struct oci_vm_opts *o,
		   json_object **vm, struct verr *e);

/* The process of an `exec --process F` file (the spec's process object): args, env, cwd, user
 * and terminal, checked as for create. The fields go to *args (a NULL-terminated malloc'd array
 * of borrowed strings from p), and the rest through the out parameters (env likewise). 0, or
 * -EINVAL with e naming the file's key. */
struct oci_process {
	const char **args;
	const char **env;
	const char *cwd;
	long long uid, gid; /* -1 when not given */
	bool terminal;
};
int oci_process_parse(json_object *p, const char *what, struct oci_process *out, struct verr *e);
void oci_process_free(struct oci_process *p);

/* A spec's process object (config.json's, or an exec's --process file) as vmm's "process" (the
 * description's key, and `vmm exec --process`'s file): args, env, cwd, user, terminal and the
 * settings (capabilities, rlimits, noNewPrivileges, oomScoreAdj, user.umask,
 * user.additionalGids). *out is a new object the caller owns. 0, or a negative errno with e
 * naming the key (*out NULL). */
int oci_process_to_vm(json_object *proc, const char *what, json_object **out, struct verr *e);

#endif
