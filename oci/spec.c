/* config.json (OCI runtime-spec) to vmm's machine description (spec.h). */
#include "oci/spec.h"
#include "oci/seccomp.h"

#include "vmm/config/json_strict.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int oci_spec_read(const char *bundle, json_object **spec, struct verr *e)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int)sizeof(path))
		return verr_set(e, -ENAMETOOLONG, "bundle %s: the path is too long", bundle);
	int r = json_strict_read_file(path, OCI_SPEC_MAX, path, spec, e);
	if (r == -ENOENT)
		return verr_set(e, r,
				"%s: no such file: the bundle (--bundle, or the current directory) "
				"must hold the container's config.json",
				path);
	return r;
}

static const char *type_word(json_object *v)
{
	return json_type_words(json_object_get_type(v));
}

/* The member key of o, checked to have type t when present: 1 found (*v), 0 absent, <0 wrong. */
static int member(json_object *o, const char *key, json_type t, const char *where, json_object **v,
		  struct verr *e)
{
	*v = NULL;
	if (!json_object_object_get_ex(o, key, v) || json_object_get_type(*v) == json_type_null) {
		*v = NULL;
		return 0;
	}
	if (json_object_get_type(*v) != t) {
		return verr_set(e, -EINVAL, "config.json: %s%s: expected %s, got %s", where, key,
				json_type_words(t), type_word(*v));
	}
	return 1;
}

/* A non-negative integer key (uid, gid, limits): 1 found, 0 absent, <0 wrong or out of range. */
static int member_uint(json_object *o, const char *key, const char *where, uint64_t max,
		       uint64_t *out, struct verr *e)
{
	json_object *v;
	int r = member(o, key, json_type_int, where, &v, e);
	if (r <= 0)
		return r;
	errno = 0;
	int64_t n = json_object_get_int64(v);
	if (n < 0 || errno == EINVAL || (uint64_t)n > max)
		return verr_set(e, -EINVAL, "config.json: %s%s: %lld is out of range (0 to %llu)",
				where, key, (long long)n, (unsigned long long)max);
	*out = (uint64_t)n;
	return 1;
}

/* An array of strings: a malloc'd NULL-terminated vector of borrowed strings. */
static int strv(json_object *a, const char *what, bool need_eq, const char ***out, struct verr *e)
{
	size_t n = json_object_array_length(a);
	const char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return verr_set(e, -ENOMEM, "config.json: out of memory");
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		if (json_object_get_type(s) != json_type_string) {
			free(v);
			return verr_set(e, -EINVAL,
					"config.json: %s[%zu]: expected a string, got %s", what, i,
					type_word(s));
		}
		v[i] = json_object_get_string(s);
		if (need_eq && (!strchr(v[i], '=') || v[i][0] == '=')) {
			int r = verr_set(e, -EINVAL, "config.json: %s[%zu]: '%s' is not KEY=VALUE",
					 what, i, v[i]);
			free(v);
			return r;
		}
	}
	*out = v;
	return 0;
}

void oci_process_free(struct oci_process *p)
{
	free(p->args);
	free(p->env);
	p->args = p->env = NULL;
}

int oci_process_parse(json_object *p, const char *what, struct oci_process *out, struct verr *e)
{
	*out = (struct oci_process){.uid = -1, .gid = -1};
	char where[64];
	snprintf(where, sizeof(where), "%s.", what);
	json_object *v;
	int r = member(p, "args", json_type_array, where, &v, e);
	if (r < 0)
		return r;
	if (r == 0 || json_object_array_length(v) == 0)
		return verr_set(e, -EINVAL,
				"config.json: %sargs: missing or empty: give the command to run",
				where);
	char key[80];
	snprintf(key, sizeof(key), "%sargs", where);
	if ((r = strv(v, key, false, &out->args, e)) < 0)
		return r;
	if (!out->args[0][0]) {
		r = verr_set(e, -EINVAL, "config.json: %sargs[0]: the command is empty", where);
		goto fail;
	}
	if ((r = member(p, "env", json_type_array, where, &v, e)) < 0)
		goto fail;
	snprintf(key, sizeof(key), "%senv", where);
	if (r && (r = strv(v, key, true, &out->env, e)) < 0)
		goto fail;
	if ((r = member(p, "cwd", json_type_string, where, &v, e)) < 0)
		goto fail;
	if (r) {
		out->cwd = json_object_get_string(v);
		if (out->cwd[0] != '/') {
			r = verr_set(e, -EINVAL, "config.json: %scwd: '%s' is not an absolute path",
				     where, out->cwd);
			goto fail;
		}
	}
	if ((r = member(p, "terminal", json_type_boolean, where, &v, e)) < 0)
		goto fail;
	out->terminal = r && json_object_get_boolean(v);
	if ((r = member(p, "user", json_type_object, where, &v, e)) < 0)
		goto fail;
	if (r) {
		char uw[80];
		snprintf(uw, sizeof(uw), "%suser.", where);
		uint64_t id;
		if ((r = member_uint(v, "uid", uw, UINT32_MAX - 1, &id, e)) < 0)
			goto fail;
		out->uid = r ? (long long)id : 0;
		if ((r = member_uint(v, "gid", uw, UINT32_MAX - 1, &id, e)) < 0)
			goto fail;
		out->gid = r ? (long long)id : 0;
	}
	return 0;
fail:
	oci_process_free(out);
	return r;
}

/* The mounts the agent makes in every container (its own proc, sysfs, devpts, mqueue, tmpfs
 * /dev and /dev/shm, cgroup2): a spec's entry there is satisfied without the host. */
static bool agent_mount(const char *dest)
{
	static const char *const made[] = {"/proc",	  "/sys",     "/dev",	       "/dev/pts",
					   "/dev/mqueue", "/dev/shm", "/sys/fs/cgroup"};
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (strcmp(dest, made[i]) == 0)
			return true;
	return false;
}

/* A bind mount's options: ro when "ro" comes last among ro/rw (as mount(8) reads them). */
static int bind_readonly(json_object *m, const char *where, bool *ro, struct verr *e)
{
	json_object *opts;
	*ro = false;
	int r = member(m, "options", json_type_array, where, &opts, e);
	if (r <= 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(opts); i++) {
		json_object *o = json_object_array_get_idx(opts, i);
		if (json_object_get_type(o) != json_type_string)
			return verr_set(e, -EINVAL,
					"config.json: %soptions[%zu]: expected a string, got %s",
					where, i, type_word(o));
		const char *s = json_object_get_string(o);
		if (strcmp(s, "ro") == 0)
			*ro = true;
		else if (strcmp(s, "rw") == 0)
			*ro = false;
	}
	return 0;
}

/* Host paths in the spec: absolute, or relative to the bundle. */
static int host_path(const char *bundle, const char *p, char *out, size_t cap, const char *key,
		     struct verr *e)
{
	int n = p[0] == '/' ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", bundle, p);
	if (n < 0 || (size_t)n >= cap)
		return verr_set(e, -ENAMETOOLONG, "config.json: %s: the path is too long", key);
	return 0;
}

/* A tmpfs mount in the guest: its mode=, size= (k, m, g suffixes) and ro options. */
static int tmpfs_volume(json_object *m, const char *where, const char *dest, json_object **out,
			struct verr *e)
{
	*out = NULL;
	json_object *opts;
	int r = member(m, "options", json_type_array, where, &opts, e);
	if (r < 0)
		return r;
	json_object *t = json_object_new_object();
	json_object_object_add(t, "guest", json_object_new_string(dest));
	json_object_object_add(t, "tmpfs", json_object_new_boolean(true));
	for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
		if (!o)
			continue;
		if (strcmp(o, "ro") == 0) {
			json_object_object_add(t, "ro", json_object_new_boolean(true));
		} else if (strncmp(o, "mode=", 5) == 0) {
			json_object_object_add(t, "mode", json_object_new_string(o + 5));
		} else if (strncmp(o, "size=", 5) == 0) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(o + 5, &end, 10);
			unsigned shift = *end == 'k' || *end == 'K'   ? 10
					 : *end == 'm' || *end == 'M' ? 20
					 : *end == 'g' || *end == 'G' ? 30
								      : 0;
			if (errno || o[5] == '-' || (shift && end[1]) || (!shift && *end) ||
			    n == 0 || n > (1ull << 40)) {
				json_object_put(t);
				return verr_set(e, -EINVAL,
						"config.json: %soptions[%zu]: '%s' is not a size "
						"(bytes, or with k, m or g)",
						where, i, o);
			}
			unsigned long long mib = ((n << shift) + (1 << 20) - 1) >> 20;
			json_object_object_add(t, "size_mib", json_object_new_int64((int64_t)mib));
		}
	}
	*out = t;
	return 0;
}

static int mounts_to_volumes(json_object *spec, const char *bundle, json_object *vm, struct verr *e)
{
	json_object *mounts;
	int r = member(spec, "mounts", json_type_array, "", &mounts, e);
	if (r <= 0)
		return r;
	json_object *vols = NULL;
	for (size_t i = 0; i < json_object_array_length(mounts); i++) {
		json_object *m = json_object_array_get_idx(mounts, i), *v;
		char where[48];
		snprintf(where, sizeof(where), "mounts[%zu].", i);
		if (json_object_get_type(m) != json_type_object)
			return verr_set(e, -EINVAL,
					"config.json: mounts[%zu]: expected an object, got %s", i,
					type_word(m));
		if ((r = member(m, "destination", json_type_string, where, &v, e)) < 0)
			return r;
		if (r == 0)
			return verr_set(e, -EINVAL, "config.json: %sdestination: missing", where);
		const char *dest = json_object_get_string(v);
		if (dest[0] != '/')
			return verr_set(e, -EINVAL,
					"config.json: %sdestination: '%s' is not an absolute path",
					where, dest);
		const char *type = "";
		if ((r = member(m, "type", json_type_string, where, &v, e)) < 0)
			return r;
		if (r)
			type = json_object_get_string(v);
		bool bind = strcmp(type, "bind") == 0;
		json_object *opts;
		if (!bind && (r = member(m, "options", json_type_array, where, &opts, e)) > 0)
			for (size_t k = 0; k < json_object_array_length(opts); k++) {
				const char *s =
				    json_object_get_string(json_object_array_get_idx(opts, k));
				if (s && (strcmp(s, "bind") == 0 || strcmp(s, "rbind") == 0))
					bind = true;
			}
		if (r < 0)
			return r;
		if (agent_mount(dest))
			continue; /* made in the guest, whatever the host offers there */
		if (!bind && strcmp(type, "tmpfs") == 0) {
			json_object *tv;
			if ((r = tmpfs_volume(m, where, dest, &tv, e)) < 0)
				return r;
			if (!vols) {
				vols = json_object_new_array();
				json_object_object_add(vm, "volumes", vols);
			}
			json_object_array_add(vols, tv);
			continue;
		}
		if (!bind)
			return verr_set(
			    e, -EOPNOTSUPP,
			    "config.json: %stype: a '%s' mount at %s is not supported: "
			    "vmm-oci makes proc, sysfs, devpts, mqueue and cgroup at their usual "
			    "places in the guest, tmpfs mounts anywhere, and bind mounts from the "
			    "host",
			    where, type, dest);
		if ((r = member(m, "source", json_type_string, where, &v, e)) < 0)
			return r;
		if (r == 0)
			return verr_set(e, -EINVAL,
					"config.json: %ssource: missing for a bind mount", where);
		char src[PATH_MAX], key[64];
		snprintf(key, sizeof(key), "%ssource", where);
		if ((r = host_path(bundle, json_object_get_string(v), src, sizeof(src), key, e)) <
		    0)
			return r;
		bool ro;
		if ((r = bind_readonly(m, where, &ro, e)) < 0)
			return r;
		if (!vols) {
			vols = json_object_new_array();
			json_object_object_add(vm, "volumes", vols);
		}
		json_object *vol = json_object_new_object();
		json_object_object_add(vol, "host", json_object_new_string(src));
		json_object_object_add(vol, "guest", json_object_new_string(dest));
		if (ro)
			json_object_object_add(vol, "ro", json_object_new_boolean(true));
		json_object_array_add(vols, vol);
	}
	return 0;
}

/* io.vmm.* annotations: the VM's settings per container. */
static int annotations(json_object *spec, json_object *vm, struct verr *e)
{
	json_object *a;
	int r = member(spec, "annotations", json_type_object, "", &a, e);
	if (r <= 0)
		return r;
	json_object_object_foreach(a, k, v)
	{
		if (strncmp(k, "io.vmm.", 7) != 0)
			continue;
		if (json_object_get_type(v) != json_type_string)
			return verr_set(e, -EINVAL,
					"config.json: annotations.%s: expected a string", k);
		const char *s = json_object_get_string(v);
		if (strcmp(k, "io.vmm.kernel") == 0) {
			if (s[0] != '/')
				return verr_set(
				    e, -EINVAL,
				    "config.json: annotations.io.vmm.kernel: '%s' is not "
				    "an absolute path",
				    s);
			json_object_object_add(vm, "kernel", json_object_new_string(s));
			continue;
		}
		const char *out = strcmp(k, "io.vmm.cpus") == 0	    ? "cpus"
				  : strcmp(k, "io.vmm.memory") == 0 ? "memory_mib"
								    : NULL;
		if (!out)
			return verr_set(
			    e, -EINVAL,
			    "config.json: annotations.%s: unknown vmm annotation (known: "
			    "io.vmm.kernel, io.vmm.cpus, io.vmm.memory)",
			    k);
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (!*s || *end || errno || n < 1 || n > 1048576)
			return verr_set(
			    e, -EINVAL,
			    "config.json: annotations.%s: '%s' is not a positive number", k, s);
		/* vmm checks the range (cpus 1-254, memory 32 MiB up) with its own message */
		json_object_object_add(vm, out, json_object_new_int64(n));
	}
	return 0;
}

/* linux.resources: memory.limit (bytes) is the guest's RAM, cpu quota/period its vCPUs. */
static int resources(json_object *spec, json_object *vm, struct verr *e)
{
	json_object *lnx, *res, *mem, *cpu;
	int r = member(spec, "linux", json_type_object, "", &lnx, e);
	if (r <= 0)
		return r;
	if ((r = member(lnx, "resources", json_type_object, "linux.", &res, e)) <= 0)
		return r;
	if ((r = member(res, "memory", json_type_object, "linux.resources.", &mem, e)) < 0)
		return r;
	json_object *lim;
	if (r && (r = member(mem, "limit", json_type_int, "linux.resources.memory.", &lim, e)) < 0)
		return r;
	if (r && mem) {
		int64_t bytes = json_object_get_int64(lim);
		if (bytes > 0) { /* -1 or 0: no limit */
			int64_t mib = (bytes + (1 << 20) - 1) >> 20;
			if (mib < 32)
				return verr_set(e, -EINVAL,
						"config.json: linux.resources.memory.limit: %lld "
						"bytes is below the 32 MiB a VM needs",
						(long long)bytes);
			json_object_object_add(vm, "memory_mib", json_object_new_int64(mib));
		}
	}
	if ((r = member(res, "cpu", json_type_object, "linux.resources.", &cpu, e)) <= 0)
		return r;
	json_object *q, *p;
	if ((r = member(cpu, "quota", json_type_int, "linux.resources.cpu.", &q, e)) < 0)
		return r;
	if ((r = member(cpu, "period", json_type_int, "linux.resources.cpu.", &p, e)) < 0)
		return r;
	if (q && p) {
		int64_t quota = json_object_get_int64(q), period = json_object_get_int64(p);
		if (quota > 0 && period > 0) {
			int64_t n = (quota + period - 1) / period;
			json_object_object_add(vm, "cpus",
					       json_object_new_int64(n > 254 ? 254 : n));
		}
	}
	return 0;
}

static json_object *strv_json(const char **v)
{
	json_object *a = json_object_new_array();
	for (; v && *v; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

/* Copies key of from (checked to have type t) to `to` under name; 0, or <0 wrong type. */
static int copy_key(json_object *from, const char *key, json_type t, const char *where,
		    json_object *to, const char *name, struct verr *e)
{
	json_object *v;
	int r = member(from, key, t, where, &v, e);
	if (r > 0)
		json_object_object_add(to, name, json_object_get(v));
	return r < 0 ? r : 0;
}

/* An array of strings, checked, copied to `to` under name. */
static int copy_strv(json_object *from, const char *key, const char *where, json_object *to,
		     const char *name, struct verr *e)
{
	json_object *v;
	int r = member(from, key, json_type_array, where, &v, e);
	if (r <= 0)
		return r;
	char what[96];
	const char **sv;
	snprintf(what, sizeof(what), "%s%s", where, key);
	if ((r = strv(v, what, false, &sv, e)) < 0)
		return r;
	json_object_object_add(to, name, strv_json(sv));
	free(sv);
	return 0;
}

/* process.capabilities, rlimits, noNewPrivileges, oomScoreAdj, user.umask, additionalGids. */
static int process_settings(json_object *proc, json_object *jp, struct verr *e)
{
	json_object *v;
	int r = member(proc, "capabilities", json_type_object, "process.", &v, e);
	if (r < 0)
		return r;
	if (r) {
		static const char *const sets[] = {"bounding", "effective", "permitted",
						   "inheritable", "ambient"};
		json_object *caps = json_object_new_object();
		json_object_object_add(jp, "capabilities", caps);
		for (size_t i = 0; i < 5; i++)
			if ((r = copy_strv(v, sets[i], "process.capabilities.", caps, sets[i], e)) <
			    0)
				return r;
	}
	if ((r = member(proc, "rlimits", json_type_array, "process.", &v, e)) < 0)
		return r;
	if (r) {
		json_object *a = json_object_new_array();
		json_object_object_add(jp, "rlimits", a);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *l = json_object_array_get_idx(v, i), *t, *lim;
			char where[64];
			snprintf(where, sizeof(where), "process.rlimits[%zu].", i);
			if (json_object_get_type(l) != json_type_object)
				return verr_set(e, -EINVAL,
						"config.json: process.rlimits[%zu]: expected an "
						"object",
						i);
			if ((r = member(l, "type", json_type_string, where, &t, e)) <= 0)
				return r < 0 ? r
					     : verr_set(e, -EINVAL,
							"config.json: %stype: missing: give "
							"RLIMIT_NOFILE...",
							where);
			json_object *o = json_object_new_object();
			json_object_array_add(a, o);
			json_object_object_add(o, "type", json_object_get(t));
			const char *lims[] = {"soft", "hard"};
			for (int k = 0; k < 2; k++) {
				if ((r = member(l, lims[k], json_type_int, where, &lim, e)) < 0)
					return r;
				/* OCI's limits are uint64 (2^64-1 is unlimited); absent is 0. */
				json_object_object_add(o, lims[k],
						       lim ? json_object_get(lim)
							   : json_object_new_int64(0));
			}
		}
	}
	if ((r = copy_key(proc, "noNewPrivileges", json_type_boolean, "process.", jp,
			  "no_new_privileges", e)) < 0 ||
	    (r = copy_key(proc, "oomScoreAdj", json_type_int, "process.", jp, "oom_score_adj", e)) <
		0)
		return r;
	json_object *user, *ju;
	if ((r = member(proc, "user", json_type_object, "process.", &user, e)) <= 0)
		return r;
	if ((r = copy_key(user, "umask", json_type_int, "process.user.", jp, "umask", e)) < 0)
		return r;
	if ((r = member(user, "additionalGids", json_type_array, "process.user.", &v, e)) <= 0)
		return r;
	if (!json_object_object_get_ex(jp, "user", &ju)) {
		ju = json_object_new_object();
		json_object_object_add(jp, "user", ju);
	}
	json_object_object_add(ju, "additional_gids", json_object_get(v));
	return 0;
}

int oci_process_to_vm(json_object *proc, const char *what, json_object **out, struct verr *e)
{
	*out = NULL;
	struct oci_process p;
	int r = oci_process_parse(proc, what, &p, e);
	if (r < 0)
		return r;
	json_object *jp = json_object_new_object();
	if (!jp) {
		oci_process_free(&p);
		return verr_set(e, -ENOMEM, "%s: out of memory", what);
	}
	json_object_object_add(jp, "args", strv_json(p.args));
	if (p.env)
		json_object_object_add(jp, "env", strv_json(p.env));
	if (p.cwd)
		json_object_object_add(jp, "cwd", json_object_new_string(p.cwd));
	if (p.uid >= 0) {
		json_object *u = json_object_new_object();
		json_object_object_add(u, "uid", json_object_new_int64(p.uid));
		json_object_object_add(u, "gid", json_object_new_int64(p.gid));
		json_object_object_add(jp, "user", u);
	}
	json_object_object_add(jp, "terminal", json_object_new_boolean(p.terminal));
	oci_process_free(&p);
	if ((r = process_settings(proc, jp, e)) < 0) {
		json_object_put(jp);
		return r;
	}
	*out = jp;
	return 0;
}

/* linux.sysctl, maskedPaths, readonlyPaths, and the seccomp profile compiled to a file. */
static int linux_settings(json_object *spec, const struct oci_vm_opts *o, json_object *vm,
			  json_object *jp, struct verr *e)
{
	json_object *lnx, *v;
	int r = member(spec, "linux", json_type_object, "", &lnx, e);
	if (r <= 0)
		return r;
	if ((r = member(lnx, "sysctl", json_type_object, "linux.", &v, e)) < 0)
		return r;
	if (r) {
		json_object_object_foreach(v, k, sv)
		{
			if (json_object_get_type(sv) != json_type_string)
				return verr_set(e, -EINVAL,
						"config.json: linux.sysctl.%s: expected a string, "
						"got %s",
						k, type_word(sv));
		}
		json_object_object_add(vm, "sysctl", json_object_get(v));
	}
	if ((r = copy_strv(lnx, "maskedPaths", "linux.", vm, "masked_paths", e)) < 0 ||
	    (r = copy_strv(lnx, "readonlyPaths", "linux.", vm, "readonly_paths", e)) < 0)
		return r;
	if ((r = member(lnx, "seccomp", json_type_object, "linux.", &v, e)) <= 0)
		return r;
	if (!o->seccomp_bpf)
		return verr_set(e, -EINVAL,
				"config.json: linux.seccomp: no place to compile the profile to");
	if ((r = oci_seccomp_compile(v, o->seccomp_bpf, e)) < 0)
		return r;
	json_object_object_add(jp, "seccomp_bpf", json_object_new_string(o->seccomp_bpf));
	return 0;
}

static int build(json_object *spec, const char *bundle, const struct oci_vm_opts *o,
		 json_object *vm, struct verr *e)
{
	json_object *root, *v;
	int r = member(spec, "root", json_type_object, "", &root, e);
	if (r < 0)
		return r;
	if (r == 0 || (r = member(root, "path", json_type_string, "root.", &v, e)) == 0)
		return verr_set(e, -EINVAL,
				"config.json: root.path: missing: name the container's root "
				"directory");
	if (r < 0)
		return r;
	char rootfs[PATH_MAX];
	if ((r = host_path(bundle, json_object_get_string(v), rootfs, sizeof(rootfs), "root.path",
			   e)) < 0)
		return r;
	struct stat st;
	if (stat(rootfs, &st) < 0)
		return verr_set(e, -ENOENT, "config.json: root.path: %s: %s", rootfs,
				strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return verr_set(e, -ENOTDIR, "config.json: root.path: %s is not a directory",
				rootfs);
	json_object *ro;
	if ((r = member(root, "readonly", json_type_boolean, "root.", &ro, e)) < 0)
		return r;
	json_object_object_add(vm, "rootfs", json_object_new_string(rootfs));
	/* vmm's own mount namespace rooted there: an engine that joins it (podman cp of a running
	 * container) reaches the container's files, not the host's */
	json_object_object_add(vm, "enter_rootfs", json_object_new_boolean(true));
	if (r && json_object_get_boolean(ro))
		json_object_object_add(vm, "rootfs_readonly", json_object_new_boolean(true));

	json_object *proc;
	if ((r = member(spec, "process", json_type_object, "", &proc, e)) < 0)
		return r;
	if (r == 0)
		return verr_set(e, -EINVAL,
				"config.json: process: missing: a container needs a process");
	json_object *jp;
	if ((r = oci_process_to_vm(proc, "process", &jp, e)) < 0)
		return r;
	json_object_object_add(vm, "process", jp);
	if ((r = linux_settings(spec, o, vm, jp, e)) < 0)
		return r;

	if ((r = member(spec, "hostname", json_type_string, "", &v, e)) < 0)
		return r;
	if (r && json_object_get_string_len(v) > 0)
		json_object_object_add(vm, "hostname",
				       json_object_new_string(json_object_get_string(v)));
	if (o->kernel)
		json_object_object_add(vm, "kernel", json_object_new_string(o->kernel));
	if ((r = resources(spec, vm, e)) < 0 || (r = annotations(spec, vm, e)) < 0 ||
	    (r = mounts_to_volumes(spec, bundle, vm, e)) < 0)
		return r;

	json_object_object_add(vm, "api_sock", json_object_new_string(o->api_sock));
	json_object_object_add(vm, "paused", json_object_new_boolean(true));
	json_object_object_add(vm, "detach", json_object_new_boolean(true));
	if (o->pid_file)
		json_object_object_add(vm, "pid_file", json_object_new_string(o->pid_file));
	if (o->console_socket)
		json_object_object_add(vm, "console_socket",
				       json_object_new_string(o->console_socket));
	if (o->log_path) {
		json_object *l = json_object_new_object();
		json_object_object_add(l, "path", json_object_new_string(o->log_path));
		json_object_object_add(
		    l, "format", json_object_new_string(o->log_format ? o->log_format : "text"));
		json_object_object_add(vm, "log", l);
	}
	return 0;
}

int oci_spec_to_vm(json_object *spec, const char *bundle, const struct oci_vm_opts *o,
		   json_object **vm, struct verr *e)
{
	*vm = json_object_new_object();
	if (!*vm)
		return verr_set(e, -ENOMEM, "config.json: out of memory");
	int r = build(spec, bundle, o, *vm, e);
	if (r < 0) {
		json_object_put(*vm);
		*vm = NULL;
	}
	return r;
}
