/* The machine description as JSON (--config FILE, docs/config.md): read with json-c and put
 * through the same setters as the command line; written back by config_to_json. */
#include "vmm/config/config.h"
#include "vmm/config/json_strict.h"
#include "vmm/config/device_table.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (1u << 20)

static int want(json_object *v, json_type t, const char *key, struct verr *e)
{
	if (json_object_get_type(v) == t)
		return 0;
	return verr_set(e, -EINVAL, "%s: expected %s, got %s", key, json_type_words(t),
			json_type_words(json_object_get_type(v)));
}

/* A non-negative integer (json-c keeps integers as int64/uint64). */
static int get_uint(json_object *v, const char *key, uint64_t *out, struct verr *e)
{
	int r = want(v, json_type_int, key, e);
	if (r < 0)
		return r;
	errno = 0;
	int64_t i = json_object_get_int64(v);
	if (i < 0)
		return verr_set(e, -EINVAL, "%s: %lld is negative", key, (long long)i);
	*out = (uint64_t)i;
	return 0;
}

static int get_str(json_object *v, const char *key, const char **out, struct verr *e)
{
	int r = want(v, json_type_string, key, e);
	if (r < 0)
		return r;
	const char *s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return verr_set(e, -EINVAL, "%s: the string holds a NUL byte", key);
	*out = s;
	return 0;
}

static int get_bool(json_object *v, const char *key, bool *out, struct verr *e)
{
	int r = want(v, json_type_boolean, key, e);
	if (r == 0)
		*out = json_object_get_boolean(v);
	return r;
}

static int set_string_key(struct vm_config *c, char **field, json_object *v, const char *key,
			  struct verr *e)
{
	const char *s;
	int r = get_str(v, key, &s, e);
	return r < 0 ? r : config_set_str(c, field, key, s, e);
}

/* ---- devices ---- */

/* One device object: its keys, checked against the type's table, become the option string its
 * parser reads on the command line. */
static int device_from_json(struct vm_config *c, json_object *o, const char *where, struct verr *e)
{
	char key[96];
	int r = want(o, json_type_object, where, e);
	if (r < 0)
		return r;
	json_object *tv;
	if (!json_object_object_get_ex(o, "type", &tv))
		return verr_set(e, -EINVAL, "%s: no \"type\": give one of blk, net, vsock, fs, rng",
				where);
	const char *tname;
	snprintf(key, sizeof(key), "%s.type", where);
	if ((r = get_str(tv, key, &tname, e)) < 0)
		return r;
	const struct device_type *t = device_type_find(tname);
	if (!t)
		return verr_set(e, -EINVAL,
				"%s: '%s' is not a device type: give blk, net, vsock, "
				"fs or rng",
				key, tname);
	char spec[8192];
	size_t at = 0;
	spec[0] = 0;
	bool seen[8] = {0};
	json_object_object_foreach(o, k, v)
	{
		if (strcmp(k, "type") == 0)
			continue;
		snprintf(key, sizeof(key), "%s.%s", where, k);
		unsigned i;
		for (i = 0; i < t->nkeys && strcmp(t->keys[i].json, k) != 0; i++)
			;
		if (i == t->nkeys)
			return verr_set(e, -EINVAL, "%s: unknown key for a %s device", key,
					t->name);
		seen[i] = true;
		const struct device_key *dk = &t->keys[i];
		const char *s;
		bool b = false;
		uint64_t u = 0;
		switch (dk->type) {
		case DK_STR:
			if ((r = get_str(v, key, &s, e)) < 0)
				return r;
			if (strchr(s, ','))
				return verr_set(e, -EINVAL,
						"%s: a ',' cannot be part of this value", key);
			str_appendf(spec, sizeof(spec), &at, "%s%s=%s", at ? "," : "", dk->spec, s);
			break;
		case DK_BOOL:
			if ((r = get_bool(v, key, &b, e)) < 0)
				return r;
			if (b)
				str_appendf(spec, sizeof(spec), &at, "%s%s", at ? "," : "",
					    dk->spec);
			break;
		case DK_U32:
			if ((r = get_uint(v, key, &u, e)) < 0)
				return r;
			if (u > UINT32_MAX)
				return verr_set(e, -EINVAL, "%s: %llu is out of range", key,
						(unsigned long long)u);
			str_appendf(spec, sizeof(spec), &at, "%s%s=%llu", at ? "," : "", dk->spec,
				    (unsigned long long)u);
			break;
		}
	}
	for (unsigned i = 0; i < t->nkeys; i++)
		if (t->keys[i].required && !seen[i])
			return verr_set(e, -EINVAL, "%s: a %s device needs \"%s\"", where, t->name,
					t->keys[i].json);
	if (at >= sizeof(spec))
		return verr_set(e, -EINVAL, "%s: the values are too long", where);
	struct verr de = {0};
	r = config_add_device(c, (enum vm_device_type)(t - device_table), where, spec, &de);
	if (r < 0)
		return verr_set(e, r, "%s: %s", where, de.msg);
	return 0;
}

/* ---- routes ---- */

/* {"dst": "A.B.C.D/N", "via": "A.B.C.D"} ("via" absent: on the link): the setter of --route. */
static int route_from_json(struct vm_config *c, json_object *o, const char *where, struct verr *e)
{
	char key[64];
	int r = want(o, json_type_object, where, e);
	if (r < 0)
		return r;
	const char *dst = NULL, *via = NULL;
	json_object_object_foreach(o, k, v)
	{
		snprintf(key, sizeof(key), "%s.%s", where, k);
		if (strcmp(k, "dst") == 0)
			r = get_str(v, key, &dst, e);
		else if (strcmp(k, "via") == 0)
			r = get_str(v, key, &via, e);
		else
			r = verr_set(e, -EINVAL, "%s: unknown key: a route has dst and via", key);
		if (r < 0)
			return r;
	}
	if (!dst)
		return verr_set(e, -EINVAL, "%s: a route needs \"dst\" (NET/PREFIX)", where);
	if (via && !*via)
		return verr_set(e, -EINVAL,
				"%s.via: empty: give the gateway's address, or drop it for a "
				"route on the link",
				where);
	return config_add_route(c, where, dst, via, e);
}

/* ---- volumes ---- */

/* {"host": PATH, "guest": PATH, "ro": BOOL}: the same setter as --volume; or {"guest": PATH,
 * "tmpfs": true, "mode": "OCTAL", "size_mib": N, "ro": BOOL}: the same as --tmpfs. */
static int volume_from_json(struct vm_config *c, json_object *o, const char *where, struct verr *e)
{
	char key[64];
	int r = want(o, json_type_object, where, e);
	if (r < 0)
		return r;
	const char *host = NULL, *guest = NULL, *mode_s = NULL;
	bool ro = false, tmpfs = false;
	uint64_t size = 0;
	bool has_size = false;
	json_object_object_foreach(o, k, v)
	{
		snprintf(key, sizeof(key), "%s.%s", where, k);
		if (strcmp(k, "host") == 0)
			r = get_str(v, key, &host, e);
		else if (strcmp(k, "guest") == 0)
			r = get_str(v, key, &guest, e);
		else if (strcmp(k, "ro") == 0)
			r = get_bool(v, key, &ro, e);
		else if (strcmp(k, "tmpfs") == 0)
			r = get_bool(v, key, &tmpfs, e);
		else if (strcmp(k, "mode") == 0)
			r = get_str(v, key, &mode_s, e);
		else if (strcmp(k, "size_mib") == 0) {
			r = get_uint(v, key, &size, e);
			has_size = true;
			if (r == 0 && (size == 0 || size > VMM_MAX_MEMORY_MIB))
				r = verr_set(e, -EINVAL, "%s: %llu MiB: give 1 to %llu", key,
					     (unsigned long long)size, VMM_MAX_MEMORY_MIB);
		} else
			r = verr_set(e, -EINVAL,
				     "%s: unknown key: a volume has host, guest and ro; a tmpfs "
				     "guest, tmpfs, mode, size_mib and ro",
				     key);
		if (r < 0)
			return r;
	}
	if (tmpfs) {
		unsigned mode = VMM_TMPFS_DEFAULT_MODE;
		if (host)
			return verr_set(e, -EINVAL,
					"%s: a tmpfs has no \"host\": drop it, or \"tmpfs\" for a "
					"volume",
					where);
		if (!guest)
			return verr_set(e, -EINVAL, "%s: a tmpfs needs \"guest\"", where);
		if (mode_s && config_parse_mode(mode_s, &mode) < 0)
			return verr_set(e, -EINVAL,
					"%s.mode: '%s' is not an octal mode from 0 to 7777: write "
					"e.g. \"755\"",
					where, mode_s);
		return config_add_tmpfs(c, where, guest, mode, size, ro, e);
	}
	if (mode_s || has_size)
		return verr_set(e, -EINVAL,
				"%s: \"%s\" is for a tmpfs: add \"tmpfs\": true (and drop "
				"\"host\")",
				where, mode_s ? "mode" : "size_mib");
	if (!host || !guest)
		return verr_set(e, -EINVAL, "%s: a volume needs \"%s\" (or \"tmpfs\": true)", where,
				host ? "guest" : "host");
	return config_add_volume(c, where, host, guest, ro, e);
}

/* ---- process ---- */

static int strv_from_json(json_object *a, const char *key, const char ***out, unsigned *n,
			  unsigned max, struct verr *e)
{
	char k[96];
	int r = want(a, json_type_array, key, e);
	if (r < 0)
		return r;
	size_t len = json_object_array_length(a);
	if (len > max)
		return verr_set(e, -EINVAL, "%s: at most %u entries", key, max);
	const char **v = calloc(len + 1, sizeof(*v));
	if (!v)
		return verr_set(e, -ENOMEM, "%s: out of memory", key);
	for (size_t i = 0; i < len; i++) {
		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		if ((r = get_str(json_object_array_get_idx(a, i), k, &v[i], e)) < 0) {
			free(v);
			return r;
		}
	}
	*out = v;
	*n = (unsigned)len;
	return 0;
}

/* An integer of either sign. */
static int get_int(json_object *v, const char *key, int64_t *out, struct verr *e)
{
	int r = want(v, json_type_int, key, e);
	if (r == 0)
		*out = json_object_get_int64(v);
	return r;
}

/* An rlimit value: a non-negative integer up to 2^64-1 (the largest is unlimited, as OCI's
 * 18446744073709551615), or -1 for unlimited. */
static int get_limit(json_object *v, const char *key, uint64_t *out, struct verr *e)
{
	int r = want(v, json_type_int, key, e);
	if (r < 0)
		return r;
	int64_t i = json_object_get_int64(v);
	if (i == -1) {
		*out = UINT64_MAX;
		return 0;
	}
	if (i < 0)
		return verr_set(e, -EINVAL, "%s: %lld is negative (-1 is unlimited)", key,
				(long long)i);
	*out = json_object_get_uint64(v);
	return 0;
}

static int rlimits_from_json(struct vm_config *c, json_object *a, const char *key, struct verr *e)
{
	int r = want(a, json_type_array, key, e);
	if (r < 0)
		return r;
	size_t n = json_object_array_length(a);
	if (n > VMM_MAX_RLIMITS)
		return verr_set(e, -EINVAL, "%s: at most %u entries", key, VMM_MAX_RLIMITS);
	for (size_t i = 0; i < n; i++) {
		char where[96], k2[128];
		snprintf(where, sizeof(where), "%s[%zu]", key, i);
		json_object *o = json_object_array_get_idx(a, i);
		if ((r = want(o, json_type_object, where, e)) < 0)
			return r;
		const char *type = NULL;
		uint64_t soft = 0, hard = 0;
		bool has_soft = false, has_hard = false;
		json_object_object_foreach(o, lk, lv)
		{
			snprintf(k2, sizeof(k2), "%s.%s", where, lk);
			if (!strcmp(lk, "type"))
				r = get_str(lv, k2, &type, e);
			else if (!strcmp(lk, "soft"))
				r = get_limit(lv, k2, &soft, e), has_soft = true;
			else if (!strcmp(lk, "hard"))
				r = get_limit(lv, k2, &hard, e), has_hard = true;
			else
				r = verr_set(e, -EINVAL,
					     "%s: unknown key: an rlimit has type, soft and hard",
					     k2);
			if (r < 0)
				return r;
		}
		if (!type || !has_soft || !has_hard)
			return verr_set(e, -EINVAL, "%s: an rlimit needs type, soft and hard",
					where);
		if ((r = config_set_rlimit(c, where, type, soft, hard, e)) < 0)
			return r;
	}
	return 0;
}

static const char *const cap_set_names[VM_CAP_SETS] = {"bounding", "effective", "permitted",
						       "inheritable", "ambient"};

static int caps_from_json(struct vm_config *c, json_object *o, const char *key, struct verr *e)
{
	int r = want(o, json_type_object, key, e);
	if (r < 0)
		return r;
	/* Every set the object names is set; one it leaves out is empty (as in OCI). */
	const char *none[1] = {NULL};
	for (int i = 0; i < VM_CAP_SETS; i++)
		if ((r = config_set_caps(c, key, (enum vm_cap_set)i, none, 0, e)) < 0)
			return r;
	json_object_object_foreach(o, ck, cv)
	{
		char k2[80];
		snprintf(k2, sizeof(k2), "%s.%s", key, ck);
		int set;
		for (set = 0; set < VM_CAP_SETS && strcmp(ck, cap_set_names[set]); set++)
			;
		if (set == VM_CAP_SETS)
			return verr_set(e, -EINVAL,
					"%s: unknown key: capabilities has bounding, effective, "
					"permitted, inheritable and ambient",
					k2);
		const char **sv = NULL;
		unsigned n = 0;
		if ((r = strv_from_json(cv, k2, &sv, &n, VMM_CAP_LAST + 1, e)) < 0)
			return r;
		r = config_set_caps(c, k2, (enum vm_cap_set)set, sv, n, e);
		free(sv);
		if (r < 0)
			return r;
	}
	return 0;
}

static int gids_from_json(struct vm_config *c, json_object *a, const char *key, struct verr *e)
{
	int r = want(a, json_type_array, key, e);
	if (r < 0)
		return r;
	size_t n = json_object_array_length(a);
	if (n > VMM_MAX_GROUPS)
		return verr_set(e, -EINVAL, "%s: at most %u additional groups", key,
				VMM_MAX_GROUPS);
	c->process.ngroups = 0;
	for (size_t i = 0; i < n; i++) {
		char k2[96];
		uint64_t g;
		snprintf(k2, sizeof(k2), "%s[%zu]", key, i);
		if ((r = get_uint(json_object_array_get_idx(a, i), k2, &g, e)) < 0 ||
		    (r = config_add_group(c, k2, g, e)) < 0)
			return r;
	}
	return 0;
}

static int process_from_json(struct vm_config *c, json_object *o, struct verr *e)
{
	int r = want(o, json_type_object, "process", e);
	if (r < 0)
		return r;
	json_object_object_foreach(o, k, v)
	{
		char key[64];
		snprintf(key, sizeof(key), "process.%s", k);
		if (strcmp(k, "args") == 0 || strcmp(k, "env") == 0) {
			const char **sv = NULL;
			unsigned n = 0;
			bool args = k[0] == 'a';
			r = strv_from_json(v, key, &sv, &n, args ? VMM_MAX_ARGS : VMM_MAX_ENV, e);
			if (r < 0)
				return r;
			if (args) {
				r = config_set_args(c, key, (char *const *)sv, n, e);
			} else {
				for (unsigned i = 0; i < n && r == 0; i++) {
					char ek[80];
					snprintf(ek, sizeof(ek), "%s[%u]", key, i);
					r = config_add_env(c, ek, sv[i], e);
				}
			}
			free(sv);
		} else if (strcmp(k, "cwd") == 0) {
			const char *s;
			r = get_str(v, key, &s, e);
			if (r == 0)
				r = config_set_workdir(c, key, s, e);
		} else if (strcmp(k, "terminal") == 0) {
			r = get_bool(v, key, &c->process.tty, e);
			c->process.tty_given = true;
		} else if (strcmp(k, "user") == 0) {
			uint64_t uid = 0, gid = 0;
			if ((r = want(v, json_type_object, key, e)) < 0)
				return r;
			json_object_object_foreach(v, uk, uv)
			{
				char ukey[80];
				snprintf(ukey, sizeof(ukey), "%s.%s", key, uk);
				if (strcmp(uk, "uid") == 0)
					r = get_uint(uv, ukey, &uid, e);
				else if (strcmp(uk, "gid") == 0)
					r = get_uint(uv, ukey, &gid, e);
				else if (strcmp(uk, "additional_gids") == 0)
					r = gids_from_json(c, uv, ukey, e);
				else
					r = verr_set(e, -EINVAL,
						     "%s: unknown key: give uid, gid and "
						     "additional_gids",
						     ukey);
				if (r < 0)
					return r;
			}
			r = config_set_user(c, key, uid, gid, e);
		} else if (strcmp(k, "umask") == 0) {
			uint64_t u;
			r = get_uint(v, key, &u, e);
			if (r == 0)
				r = config_set_umask(c, key, u, e);
		} else if (strcmp(k, "rlimits") == 0) {
			r = rlimits_from_json(c, v, key, e);
		} else if (strcmp(k, "no_new_privileges") == 0) {
			r = get_bool(v, key, &c->process.no_new_privs, e);
		} else if (strcmp(k, "capabilities") == 0) {
			r = caps_from_json(c, v, key, e);
		} else if (strcmp(k, "oom_score_adj") == 0) {
			int64_t i;
			r = get_int(v, key, &i, e);
			if (r == 0)
				r = config_set_oom_score_adj(c, key, i, e);
		} else if (strcmp(k, "seccomp_bpf") == 0) {
			const char *s;
			r = get_str(v, key, &s, e);
			if (r == 0)
				r = config_set_seccomp_bpf(c, key, s, e);
		} else {
			r = verr_set(e, -EINVAL,
				     "%s: unknown key: a process has args, env, cwd, user, "
				     "terminal, umask, rlimits, no_new_privileges, capabilities, "
				     "oom_score_adj and seccomp_bpf",
				     key);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the top level ---- */

static int log_from_json(struct vm_config *c, json_object *o, struct verr *e)
{
	int r = want(o, json_type_object, "log", e);
	if (r < 0)
		return r;
	json_object_object_foreach(o, k, v)
	{
		char key[64];
		const char *s;
		snprintf(key, sizeof(key), "log.%s", k);
		if (strcmp(k, "path") == 0) {
			r = set_string_key(c, &c->log_path, v, key, e);
		} else if (strcmp(k, "level") == 0 || strcmp(k, "format") == 0) {
			if ((r = get_str(v, key, &s, e)) < 0)
				return r;
			r = k[0] == 'l' ? config_set_log_level(c, key, s, e)
					: config_set_log_format(c, key, s, e);
		} else {
			r = verr_set(e, -EINVAL, "%s: unknown key: log has path, level and format",
				     key);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int top_key(struct vm_config *c, const char *k, json_object *v, struct verr *e)
{
	struct {
		const char *key;
		char **field;
	} strs[] = {
	    {"kernel", &c->kernel},
	    {"initrd", &c->initrd},
	    {"cmdline", &c->cmdline},
	    {"api_sock", &c->api_sock},
	    {"pid_file", &c->pid_file},
	    {"metrics", &c->metrics_path},
	    {"console_socket", &c->console_socket},
	};
	struct {
		const char *key;
		bool *field;
	} bools[] = {
	    {"rootfs_rw", &c->rootfs_rw}, {"rootfs_readonly", &c->rootfs_readonly},
	    {"paused", &c->paused},	  {"detach", &c->detach},
	    {"seccomp", &c->seccomp},	  {"boot_timer", &c->boot_timer},
	    {"verbose", &c->verbose},	  {"enter_rootfs", &c->enter_rootfs},
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (strcmp(k, strs[i].key) == 0)
			return set_string_key(c, strs[i].field, v, k, e);
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if (strcmp(k, bools[i].key) == 0)
			return get_bool(v, k, bools[i].field, e);
	uint64_t u;
	const char *s;
	int r;
	if (strcmp(k, "cpus") == 0 || strcmp(k, "memory_mib") == 0) {
		if ((r = get_uint(v, k, &u, e)) < 0)
			return r;
		return k[0] == 'c' ? config_set_cpus(c, k, u, e) : config_set_memory(c, k, u, e);
	}
	if (strcmp(k, "rootfs") == 0 || strcmp(k, "hostname") == 0 || strcmp(k, "ip") == 0 ||
	    strcmp(k, "gateway") == 0 || strcmp(k, "ip6") == 0 || strcmp(k, "gateway6") == 0) {
		if ((r = get_str(v, k, &s, e)) < 0)
			return r;
		int fam = k[strlen(k) - 1] == '6' ? AF_INET6 : AF_INET;
		switch (k[0]) {
		case 'r':
			return config_set_root(c, k, s, e);
		case 'h':
			return config_set_hostname(c, k, s, e);
		case 'i':
			return config_set_ip(c, k, s, fam, e);
		default:
			return config_set_gateway(c, k, s, fam, e);
		}
	}
	if (strcmp(k, "devices") == 0) {
		if ((r = want(v, json_type_array, k, e)) < 0)
			return r;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			char where[32];
			snprintf(where, sizeof(where), "devices[%zu]", i);
			if ((r = device_from_json(c, json_object_array_get_idx(v, i), where, e)) <
			    0)
				return r;
		}
		return 0;
	}
	if (strcmp(k, "routes") == 0) {
		if ((r = want(v, json_type_array, k, e)) < 0)
			return r;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			char where[32];
			snprintf(where, sizeof(where), "routes[%zu]", i);
			if ((r = route_from_json(c, json_object_array_get_idx(v, i), where, e)) < 0)
				return r;
		}
		return 0;
	}
	if (strcmp(k, "volumes") == 0) {
		if ((r = want(v, json_type_array, k, e)) < 0)
			return r;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			char where[32];
			snprintf(where, sizeof(where), "volumes[%zu]", i);
			if ((r = volume_from_json(c, json_object_array_get_idx(v, i), where, e)) <
			    0)
				return r;
		}
		return 0;
	}
	if (strcmp(k, "process") == 0)
		return process_from_json(c, v, e);
	if (strcmp(k, "sysctl") == 0) {
		if ((r = want(v, json_type_object, k, e)) < 0)
			return r;
		json_object_object_foreach(v, sk, sv)
		{
			char key[300];
			snprintf(key, sizeof(key), "sysctl.%s", sk);
			if ((r = get_str(sv, key, &s, e)) < 0 ||
			    (r = config_add_sysctl(c, key, sk, s, e)) < 0)
				return r;
		}
		return 0;
	}
	if (strcmp(k, "masked_paths") == 0 || strcmp(k, "readonly_paths") == 0) {
		const char **sv = NULL;
		unsigned n = 0;
		if ((r = strv_from_json(v, k, &sv, &n, VMM_MAX_GUARD_PATHS, e)) < 0)
			return r;
		for (unsigned i = 0; i < n && r == 0; i++) {
			char key[48];
			snprintf(key, sizeof(key), "%s[%u]", k, i);
			r = config_add_guard_path(c, key, sv[i], k[0] == 'r', e);
		}
		free(sv);
		return r;
	}
	if (strcmp(k, "log") == 0)
		return log_from_json(c, v, e);
	if (strcmp(k, "stdio_fds") == 0) {
		int fds[3];
		if ((r = want(v, json_type_array, k, e)) < 0)
			return r;
		if (json_object_array_length(v) != 3)
			return verr_set(e, -EINVAL, "%s: give three fds: [stdin, stdout, stderr]",
					k);
		for (int i = 0; i < 3; i++) {
			char key[32];
			snprintf(key, sizeof(key), "%s[%d]", k, i);
			if ((r = get_uint(json_object_array_get_idx(v, (size_t)i), key, &u, e)) < 0)
				return r;
			if (u > 65535)
				return verr_set(e, -EINVAL, "%s: %llu is not an fd", key,
						(unsigned long long)u);
			fds[i] = (int)u;
		}
		return config_set_stdio(c, k, fds, e);
	}
	return verr_set(e, -EINVAL, "%s: unknown key (docs/config.md lists the keys)", k);
}

static int config_from_object(struct vm_config *c, json_object *root, const char *origin,
			      struct verr *e)
{
	json_object_object_foreach(root, k, v)
	{
		struct verr ke = {0};
		int r = top_key(c, k, v, &ke);
		if (r < 0)
			return verr_set(e, r, "%s: %s", origin, ke.msg);
	}
	return 0;
}

int config_parse_json(struct vm_config *c, const char *text, size_t len, const char *origin,
		      struct verr *e)
{
	json_object *root;
	int r = json_strict_parse(text, len, CONFIG_MAX_BYTES, origin, &root, e);
	if (r < 0)
		return r;
	r = config_from_object(c, root, origin, e);
	json_object_put(root);
	return r;
}

/* FILE as the whole description (--config), or as its process object alone (vmm exec
 * --process); errors start with the flag and the file. */
static int load_file(struct vm_config *c, const char *flag, const char *path, bool process_only,
		     struct verr *e)
{
	char origin[128];
	snprintf(origin, sizeof(origin), "%s %s", flag, path);
	json_object *root;
	int r = json_strict_read_file(path, CONFIG_MAX_BYTES, origin, &root, e);
	if (r < 0)
		return r == -ENOENT ? -EINVAL : r;
	if (process_only) {
		struct verr ke = {0};
		if ((r = process_from_json(c, root, &ke)) < 0)
			verr_set(e, r, "%s: %s", origin, ke.msg);
	} else {
		r = config_from_object(c, root, origin, e);
	}
	json_object_put(root);
	return r;
}

int config_load_json(struct vm_config *c, const char *path, struct verr *e)
{
	return load_file(c, "--config", path, false, e);
}

int config_load_process_json(struct vm_config *c, const char *path, struct verr *e)
{
	return load_file(c, "--process", path, true, e);
}

/* ---- writing it back ---- */

static void add_str(json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static json_object *strv_json(char *const *v, unsigned n)
{
	json_object *a = json_object_new_array();
	for (unsigned i = 0; a && i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *limit_json(uint64_t v)
{
	return v == UINT64_MAX ? json_object_new_int64(-1) : json_object_new_uint64(v);
}

/* The process's settings given (the keys left out when not). */
static void process_settings_json(const struct vm_process_cfg *p, json_object *pj)
{
	static const char *const rl[VMM_MAX_RLIMITS] = {
	    "RLIMIT_CPU",      "RLIMIT_FSIZE", "RLIMIT_DATA",	"RLIMIT_STACK",
	    "RLIMIT_CORE",     "RLIMIT_RSS",   "RLIMIT_NPROC",	"RLIMIT_NOFILE",
	    "RLIMIT_MEMLOCK",  "RLIMIT_AS",    "RLIMIT_LOCKS",	"RLIMIT_SIGPENDING",
	    "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
	if (p->umask_given)
		json_object_object_add(pj, "umask", json_object_new_int64(p->umask));
	if (p->nrlimits) {
		json_object *a = json_object_new_array();
		for (unsigned i = 0; i < p->nrlimits; i++) {
			json_object *l = json_object_new_object();
			add_str(l, "type", rl[p->rlimits[i].resource]);
			json_object_object_add(l, "soft", limit_json(p->rlimits[i].soft));
			json_object_object_add(l, "hard", limit_json(p->rlimits[i].hard));
			json_object_array_add(a, l);
		}
		json_object_object_add(pj, "rlimits", a);
	}
	if (p->no_new_privs)
		json_object_object_add(pj, "no_new_privileges", json_object_new_boolean(true));
	if (p->caps_given) {
		json_object *co = json_object_new_object();
		for (int s = 0; s < VM_CAP_SETS; s++) {
			json_object *a = json_object_new_array();
			for (int b = 0; b <= (int)VMM_CAP_LAST; b++) {
				if (!(p->caps[s] >> b & 1))
					continue;
				char name[32];
				snprintf(name, sizeof(name), "CAP_%s", config_cap_name(b));
				json_object_array_add(a, json_object_new_string(name));
			}
			json_object_object_add(co, cap_set_names[s], a);
		}
		json_object_object_add(pj, "capabilities", co);
	}
	if (p->oom_given)
		json_object_object_add(pj, "oom_score_adj", json_object_new_int(p->oom_score_adj));
	add_str(pj, "seccomp_bpf", p->seccomp_path);
}

json_object *config_to_json(const struct vm_config *c)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	add_str(o, "kernel", c->kernel);
	add_str(o, "initrd", c->initrd);
	add_str(o, "cmdline", c->cmdline);
	json_object_object_add(o, "cpus", json_object_new_int64(c->cpus));
	json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)c->memory_mib));
	json_object *devs = json_object_new_array();
	for (unsigned i = 0; i < c->ndevices; i++) {
		const struct vm_device_cfg *d = &c->devices[i];
		if (d->root)
			add_str(o, "rootfs", d->type == VM_DEV_FS ? d->u.fs.path : d->u.blk.path);
		if (d->root || d->implicit)
			continue;
		json_object *dj = json_object_new_object();
		json_object_object_add(dj, "type",
				       json_object_new_string(device_table[d->type].name));
		device_table[d->type].to_json(d, dj);
		json_object_array_add(devs, dj);
	}
	json_object_object_add(o, "devices", devs);
	json_object_object_add(o, "rootfs_rw", json_object_new_boolean(c->rootfs_rw));
	json_object_object_add(o, "rootfs_readonly", json_object_new_boolean(c->rootfs_readonly));
	json_object_object_add(o, "enter_rootfs", json_object_new_boolean(c->enter_rootfs));
	json_object *vols = json_object_new_array();
	for (unsigned i = 0; i < c->nvolumes; i++) {
		const struct vm_volume_cfg *v = &c->volumes[i];
		json_object *vj = json_object_new_object();
		add_str(vj, "host", v->host);
		add_str(vj, "guest", v->guest);
		if (v->tmpfs) {
			char mode[8];
			snprintf(mode, sizeof(mode), "%o", v->mode);
			json_object_object_add(vj, "tmpfs", json_object_new_boolean(true));
			add_str(vj, "mode", mode);
			if (v->size_mib)
				json_object_object_add(vj, "size_mib",
						       json_object_new_int64((int64_t)v->size_mib));
		}
		json_object_object_add(vj, "ro", json_object_new_boolean(v->ro));
		json_object_array_add(vols, vj);
	}
	json_object_object_add(o, "volumes", vols);
	if (c->container) {
		const struct vm_process_cfg *p = &c->process;
		json_object *pj = json_object_new_object();
		json_object_object_add(pj, "args", strv_json(p->argv, p->argc));
		json_object_object_add(pj, "env", strv_json(p->env_given, p->nenv_given));
		add_str(pj, "cwd", p->cwd);
		json_object *u = json_object_new_object();
		json_object_object_add(u, "uid", json_object_new_int64(p->uid));
		json_object_object_add(u, "gid", json_object_new_int64(p->gid));
		if (p->ngroups) {
			json_object *g = json_object_new_array();
			for (unsigned i = 0; i < p->ngroups; i++)
				json_object_array_add(g, json_object_new_int64(p->groups[i]));
			json_object_object_add(u, "additional_gids", g);
		}
		json_object_object_add(pj, "user", u);
		json_object_object_add(pj, "terminal", json_object_new_boolean(p->tty));
		process_settings_json(p, pj);
		json_object_object_add(o, "process", pj);
	}
	if (c->process.nsysctl) {
		json_object *so = json_object_new_object();
		for (unsigned i = 0; i < c->process.nsysctl; i++)
			add_str(so, c->process.sysctl[2 * i], c->process.sysctl[2 * i + 1]);
		json_object_object_add(o, "sysctl", so);
	}
	if (c->process.nmasked)
		json_object_object_add(o, "masked_paths",
				       strv_json(c->process.masked, c->process.nmasked));
	if (c->process.nreadonly)
		json_object_object_add(o, "readonly_paths",
				       strv_json(c->process.readonly, c->process.nreadonly));
	add_str(o, "hostname", c->hostname);
	add_str(o, "ip", c->ip);
	add_str(o, "gateway", c->gw);
	add_str(o, "ip6", c->ip6);
	add_str(o, "gateway6", c->gw6);
	if (c->nroutes) {
		json_object *rts = json_object_new_array();
		for (unsigned i = 0; i < c->nroutes; i++) {
			json_object *rj = json_object_new_object();
			add_str(rj, "dst", c->routes[i].dst);
			if (c->routes[i].via[0])
				add_str(rj, "via", c->routes[i].via);
			json_object_array_add(rts, rj);
		}
		json_object_object_add(o, "routes", rts);
	}
	json_object *fds = json_object_new_array();
	for (int i = 0; i < 3; i++)
		json_object_array_add(fds, json_object_new_int(c->stdio[i]));
	json_object_object_add(o, "stdio_fds", fds);
	add_str(o, "console_socket", c->console_socket);
	add_str(o, "api_sock", c->api_sock);
	json_object_object_add(o, "paused", json_object_new_boolean(c->paused));
	json_object_object_add(o, "detach", json_object_new_boolean(c->detach));
	add_str(o, "pid_file", c->pid_file);
	add_str(o, "metrics", c->metrics_path);
	json_object *lj = json_object_new_object();
	add_str(lj, "path", c->log_path);
	add_str(lj, "level", log_level_name(c->log_level));
	add_str(lj, "format", log_format_name(c->log_format));
	json_object_object_add(o, "log", lj);
	json_object_object_add(o, "seccomp", json_object_new_boolean(c->seccomp));
	json_object_object_add(o, "boot_timer", json_object_new_boolean(c->boot_timer));
	json_object_object_add(o, "verbose", json_object_new_boolean(c->verbose));
	return o;
}
