/* The OCI seccomp profile compiled with libseccomp (see seccomp.h). */
#include "oci/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define WHERE	  "config.json: linux.seccomp"
#define MAX_INSNS 4096u
#define MAX_ARGS  6u

static int action(json_object *v, const char *key, json_object *errno_ret, uint32_t deflt_errno,
		  uint32_t *out, struct verr *e)
{
	if (json_object_get_type(v) != json_type_string)
		return verr_set(e, -EINVAL, WHERE "%s: expected a string (SCMP_ACT_...)", key);
	const char *a = json_object_get_string(v);
	uint32_t err = deflt_errno;
	if (errno_ret) {
		if (json_object_get_type(errno_ret) != json_type_int ||
		    json_object_get_int64(errno_ret) < 0 || json_object_get_int64(errno_ret) > 4095)
			return verr_set(e, -EINVAL,
					WHERE "%s: errnoRet must be an errno number, 0 to 4095",
					key);
		err = (uint32_t)json_object_get_int64(errno_ret);
	}
	if (!strcmp(a, "SCMP_ACT_ALLOW"))
		*out = SCMP_ACT_ALLOW;
	else if (!strcmp(a, "SCMP_ACT_ERRNO"))
		*out = SCMP_ACT_ERRNO(err);
	else if (!strcmp(a, "SCMP_ACT_KILL") || !strcmp(a, "SCMP_ACT_KILL_THREAD"))
		*out = SCMP_ACT_KILL_THREAD;
	else if (!strcmp(a, "SCMP_ACT_KILL_PROCESS"))
		*out = SCMP_ACT_KILL_PROCESS;
	else if (!strcmp(a, "SCMP_ACT_TRAP"))
		*out = SCMP_ACT_TRAP;
	else if (!strcmp(a, "SCMP_ACT_TRACE"))
		*out = SCMP_ACT_TRACE(err);
	else if (!strcmp(a, "SCMP_ACT_LOG"))
		*out = SCMP_ACT_LOG;
	else if (!strcmp(a, "SCMP_ACT_NOTIFY"))
		return verr_set(e, -EOPNOTSUPP,
				WHERE "%s: SCMP_ACT_NOTIFY needs a listener, which a VM's agent "
				      "does not have: use SCMP_ACT_ERRNO",
				key);
	else
		return verr_set(e, -EINVAL,
				WHERE "%s: '%s' is not a seccomp action: give SCMP_ACT_ALLOW, "
				      "SCMP_ACT_ERRNO, SCMP_ACT_KILL...",
				key, a);
	return 0;
}

static int get(json_object *o, const char *k, json_type t, json_object **v)
{
	if (!json_object_object_get_ex(o, k, v) || json_object_get_type(*v) == json_type_null) {
		*v = NULL;
		return 0;
	}
	return json_object_get_type(*v) == t ? 1 : -1;
}

static int op_of(const char *s, enum scmp_compare *op)
{
	static const struct {
		const char *name;
		enum scmp_compare op;
	} ops[] = {
	    {"SCMP_CMP_NE", SCMP_CMP_NE},
	    {"SCMP_CMP_LT", SCMP_CMP_LT},
	    {"SCMP_CMP_LE", SCMP_CMP_LE},
	    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
	    {"SCMP_CMP_GE", SCMP_CMP_GE},
	    {"SCMP_CMP_GT", SCMP_CMP_GT},
	    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(s, ops[i].name)) {
			*op = ops[i].op;
			return 0;
		}
	return -1;
}

static int args_of(json_object *a, const char *key, struct scmp_arg_cmp *cmp, unsigned *n,
		   bool *repeated, struct verr *e)
{
	size_t len = json_object_array_length(a);
	unsigned seen = 0;
	if (len > MAX_ARGS)
		return verr_set(e, -EINVAL, WHERE "%s: at most %u conditions", key, MAX_ARGS);
	*repeated = false;
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(a, i), *idx, *val, *val2, *op;
		enum scmp_compare c;
		if (json_object_get_type(o) != json_type_object ||
		    get(o, "index", json_type_int, &idx) <= 0 ||
		    get(o, "value", json_type_int, &val) < 0 ||
		    get(o, "valueTwo", json_type_int, &val2) < 0 ||
		    get(o, "op", json_type_string, &op) <= 0 ||
		    op_of(json_object_get_string(op), &c) < 0 || json_object_get_int64(idx) < 0 ||
		    json_object_get_int64(idx) >= 6)
			return verr_set(e, -EINVAL,
					WHERE "%s[%zu]: give {index 0-5, value, valueTwo, op "
					      "SCMP_CMP_EQ...}",
					key, i);
		unsigned ix = (unsigned)json_object_get_int64(idx);
		if (seen >> ix & 1)
			*repeated = true;
		seen |= 1u << ix;
		cmp[i] = (struct scmp_arg_cmp){
		    .arg = ix,
		    .op = c,
		    .datum_a = val ? json_object_get_uint64(val) : 0,
		    .datum_b = val2 ? json_object_get_uint64(val2) : 0,
		};
	}
	*n = (unsigned)len;
	return 0;
}

static int arch_of(const char *s, uint32_t *arch)
{
	char name[32];
	if (!strncmp(s, "SCMP_ARCH_", 10))
		s += 10;
	size_t l = strlen(s);
	if (l == 0 || l >= sizeof(name))
		return -1;
	for (size_t i = 0; i <= l; i++)
		name[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
	*arch = seccomp_arch_resolve_name(name);
	return *arch ? 0 : -1;
}

static int rules(scmp_filter_ctx ctx, json_object *sys, uint32_t deflt, uint32_t deflt_errno,
		 struct verr *e)
{
	for (size_t i = 0; i < json_object_array_length(sys); i++) {
		char key[64];
		json_object *o = json_object_array_get_idx(sys, i), *names, *act, *eret, *args;
		snprintf(key, sizeof(key), ".syscalls[%zu]", i);
		if (json_object_get_type(o) != json_type_object)
			return verr_set(e, -EINVAL, WHERE "%s: expected an object", key);
		if (get(o, "names", json_type_array, &names) < 0 ||
		    get(o, "action", json_type_string, &act) <= 0 ||
		    get(o, "args", json_type_array, &args) < 0)
			return verr_set(e, -EINVAL,
					WHERE "%s: give names (an array), action and args (an "
					      "array)",
					key);
		json_object_object_get_ex(o, "errnoRet", &eret);
		uint32_t a;
		int r = action(act, key, eret, deflt_errno, &a, e);
		if (r < 0)
			return r;
		struct scmp_arg_cmp cmp[MAX_ARGS];
		unsigned ncmp = 0;
		bool repeated = false;
		char akey[80];
		snprintf(akey, sizeof(akey), "%s.args", key);
		if (args && (r = args_of(args, akey, cmp, &ncmp, &repeated, e)) < 0)
			return r;
		if (a == deflt || !names)
			continue; /* libseccomp refuses a rule with the default action */
		for (size_t j = 0; j < json_object_array_length(names); j++) {
			json_object *n = json_object_array_get_idx(names, j);
			if (json_object_get_type(n) != json_type_string)
				return verr_set(e, -EINVAL,
						WHERE "%s.names[%zu]: expected a string", key, j);
			int nr = seccomp_syscall_resolve_name(json_object_get_string(n));
			if (nr == __NR_SCMP_ERROR)
				continue; /* a syscall this libseccomp does not know */
			if (repeated)	  /* conditions on one argument: one rule each (OR) */
				for (unsigned k = 0; k < ncmp && r == 0; k++)
					r = seccomp_rule_add_array(ctx, a, nr, 1, &cmp[k]);
			else
				r = seccomp_rule_add_array(ctx, a, nr, ncmp, cmp);
			if (r < 0)
				return verr_set(e, r, WHERE "%s: syscall %s: libseccomp: %s", key,
						json_object_get_string(n), strerror(-r));
		}
	}
	return 0;
}

int oci_seccomp_compile(json_object *profile, const char *path, struct verr *e)
{
	json_object *da, *der, *arches, *sys;
	if (json_object_get_type(profile) != json_type_object)
		return verr_set(e, -EINVAL, WHERE ": expected an object");
	if (get(profile, "defaultAction", json_type_string, &da) <= 0)
		return verr_set(e, -EINVAL,
				WHERE ".defaultAction: missing: give e.g. SCMP_ACT_ERRNO");
	if (get(profile, "architectures", json_type_array, &arches) < 0 ||
	    get(profile, "syscalls", json_type_array, &sys) < 0)
		return verr_set(e, -EINVAL, WHERE ": architectures and syscalls are arrays");
	uint32_t deflt_errno = EPERM, deflt;
	json_object_object_get_ex(profile, "defaultErrnoRet", &der);
	int r = action(da, ".defaultAction", der, deflt_errno, &deflt, e);
	if (r < 0)
		return r;
	if (der)
		deflt_errno = (uint32_t)json_object_get_int64(der);
	scmp_filter_ctx ctx = seccomp_init(deflt);
	if (!ctx)
		return verr_set(e, -ENOMEM, WHERE ": libseccomp: cannot make a filter");
	for (size_t i = 0; arches && i < json_object_array_length(arches); i++) {
		json_object *a = json_object_array_get_idx(arches, i);
		uint32_t arch;
		if (json_object_get_type(a) != json_type_string ||
		    arch_of(json_object_get_string(a), &arch) < 0) {
			r = verr_set(e, -EINVAL,
				     WHERE ".architectures[%zu]: not an architecture: give "
					   "SCMP_ARCH_X86_64...",
				     i);
			goto out;
		}
		r = seccomp_arch_add(ctx, arch);
		if (r < 0 && r != -EEXIST) {
			r = verr_set(e, r, WHERE ".architectures[%zu]: libseccomp: %s", i,
				     strerror(-r));
			goto out;
		}
	}
	/* OCI's errnoRet default is EPERM; defaultErrnoRet is for the default action only. */
	if (sys && (r = rules(ctx, sys, deflt, EPERM, e)) < 0)
		goto out;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = verr_set(e, -errno, WHERE ": cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	r = seccomp_export_bpf(ctx, fd);
	struct stat st;
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		r = verr_set(e, r, WHERE ": cannot write the program to %s: %s", path,
			     strerror(-r));
		goto out;
	}
	if (st.st_size == 0 || st.st_size % 8 || (size_t)st.st_size > MAX_INSNS * 8u) {
		r = verr_set(e, -E2BIG,
			     WHERE ": the profile compiles to %lld instructions, above the %u a "
				   "filter can have: list fewer architectures or rules",
			     (long long)st.st_size / 8, MAX_INSNS);
		unlink(path);
	}
out:
	seccomp_release(ctx);
	return r;
}
