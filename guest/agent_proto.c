/* The agent protocol's frame header and START codec (see agent_proto.h). */
#include "guest/agent_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define START_FIXED 24u /* flags, uid, gid, rows+cols, argc, envc */
#define PROC_FIXED  76u /* proc_flags, umask, oom, 5 caps, 6 counts */
#define RLIMIT_SIZE 20u
#define INSN_SIZE   8u

int agent_hdr_decode(const uint8_t *buf, struct agent_hdr *h)
{
	h->len = le_get32(buf);
	h->type = le_get16(buf + 4);
	h->flags = le_get16(buf + 6);
	if (h->len > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (h->flags != 0 || h->type < AGENT_HELLO || h->type > AGENT_SHUTDOWN)
		return -EPROTO;
	return 0;
}

void agent_hdr_encode(uint8_t *buf, uint16_t type, uint32_t len)
{
	le_put32(buf, len);
	le_put16(buf + 4, type);
	le_put16(buf + 6, 0);
}

static const char *check_env(const char *s)
{
	if (s[0] == '=' || !strchr(s, '='))
		return "an environment entry is not KEY=VALUE";
	return NULL;
}

static int put_str(uint8_t *buf, size_t cap, size_t *off, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > cap - *off)
		return -E2BIG;
	memcpy(buf + *off, s, n);
	*off += n;
	return 0;
}

/* A sysctl name as /proc/sys knows them: dot-separated words of [A-Za-z0-9_-]. */
static bool sysctl_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len >= AGENT_MAX_SETTING || n[0] == '.' || n[len - 1] == '.' ||
	    strstr(n, ".."))
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

/* An absolute container path without a ".." component. */
static bool path_ok(const char *p)
{
	size_t len = strlen(p);
	if (p[0] != '/' || len >= AGENT_MAX_SETTING)
		return false;
	for (const char *c = p; (c = strstr(c, "..")); c += 2)
		if (c[-1] == '/' && (c[2] == '/' || c[2] == 0))
			return false;
	return true;
}

static bool strv_ok(char *const *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!v || !v[i] || !path_ok(v[i]))
			return false;
	return true;
}

/* Everything but the strings. */
static const char *proc_check_fixed(const struct agent_start *s)
{
	if (s->proc_flags & ~AGENT_PROC_FLAGS)
		return "START's process settings have unknown flags";
	if (s->umask > 0777)
		return "START's umask is above 0777";
	if (s->oom_score_adj < -1000 || s->oom_score_adj > 1000)
		return "START's oom_score_adj is outside -1000..1000";
	for (int i = 0; i < AGENT_CAP_SETS; i++)
		if (s->caps[i] >> AGENT_CAP_LAST >> 1)
			return "START names a capability above CAP_CHECKPOINT_RESTORE (40)";
	if (!(s->proc_flags & AGENT_PROC_CAPS))
		for (int i = 0; i < AGENT_CAP_SETS; i++)
			if (s->caps[i])
				return "START has capabilities without their flag";
	if (s->ngroups > AGENT_MAX_GROUPS)
		return "START has more than 32 additional groups";
	if (s->nrlimits > AGENT_MAX_RLIMITS)
		return "START has more than 16 rlimits";
	uint32_t seen = 0;
	for (uint32_t i = 0; i < s->nrlimits; i++) {
		const struct agent_rlimit *l = &s->rlimits[i];
		if (l->resource >= AGENT_MAX_RLIMITS || (seen >> l->resource & 1))
			return "START has an unknown or repeated rlimit resource";
		if (l->soft > l->hard)
			return "START has an rlimit whose soft limit is above its hard limit";
		seen |= 1u << l->resource;
	}
	if (s->nsysctl > AGENT_MAX_SYSCTLS)
		return "START has more than 64 sysctls";
	if (s->nmasked > AGENT_MAX_PATHS || s->nreadonly > AGENT_MAX_PATHS)
		return "START has more than 128 masked or read-only paths";
	if (s->nfilter > AGENT_MAX_BPF_INSNS || (s->nfilter && !s->filter))
		return "START's seccomp program has more than 4096 instructions";
	return NULL;
}

const char *agent_proc_check(const struct agent_start *s)
{
	const char *why = proc_check_fixed(s);
	if (why)
		return why;
	for (uint32_t i = 0; i < s->nsysctl; i++) {
		if (!s->sysctl || !s->sysctl[2 * i] || !s->sysctl[2 * i + 1])
			return "START is missing a sysctl";
		if (!sysctl_name_ok(s->sysctl[2 * i]))
			return "START has a sysctl name that is not dot-separated words";
		if (strlen(s->sysctl[2 * i + 1]) >= AGENT_MAX_SETTING)
			return "START has a sysctl value that is too long";
	}
	if (!strv_ok(s->masked, s->nmasked) || !strv_ok(s->readonly, s->nreadonly))
		return "START has a masked or read-only path that is not absolute or has '..'";
	return NULL;
}

static int proc_encode(const struct agent_start *s, uint8_t *buf, size_t cap, size_t *off)
{
	if (agent_proc_check(s))
		return -EINVAL;
	size_t need = PROC_FIXED + 4u * s->ngroups + RLIMIT_SIZE * s->nrlimits +
		      INSN_SIZE * (size_t)s->nfilter;
	if (need > cap - *off)
		return -E2BIG;
	uint8_t *p = buf + *off;
	le_put32(p, s->proc_flags);
	le_put32(p + 4, s->umask);
	le_put32(p + 8, (uint32_t)s->oom_score_adj);
	p += 12;
	for (int i = 0; i < AGENT_CAP_SETS; i++, p += 8)
		le_put64(p, s->caps[i]);
	const uint32_t counts[] = {s->ngroups, s->nrlimits,  s->nsysctl,
				   s->nmasked, s->nreadonly, s->nfilter};
	for (size_t i = 0; i < 6; i++, p += 4)
		le_put32(p, counts[i]);
	for (uint32_t i = 0; i < s->ngroups; i++, p += 4)
		le_put32(p, s->groups[i]);
	for (uint32_t i = 0; i < s->nrlimits; i++, p += RLIMIT_SIZE) {
		le_put32(p, s->rlimits[i].resource);
		le_put64(p + 4, s->rlimits[i].soft);
		le_put64(p + 12, s->rlimits[i].hard);
	}
	for (uint32_t i = 0; i < s->nfilter; i++, p += INSN_SIZE) {
		le_put16(p, s->filter[i].code);
		p[2] = s->filter[i].jt;
		p[3] = s->filter[i].jf;
		le_put32(p + 4, s->filter[i].k);
	}
	*off += need;
	for (uint32_t i = 0; i < 2 * s->nsysctl; i++)
		if (put_str(buf, cap, off, s->sysctl[i]) < 0)
			return -E2BIG;
	for (uint32_t i = 0; i < s->nmasked; i++)
		if (put_str(buf, cap, off, s->masked[i]) < 0)
			return -E2BIG;
	for (uint32_t i = 0; i < s->nreadonly; i++)
		if (put_str(buf, cap, off, s->readonly[i]) < 0)
			return -E2BIG;
	return 0;
}

int agent_start_encode(const struct agent_start *s, uint8_t *buf, size_t cap)
{
	if (s->argc == 0 || !s->argv[0] || !s->argv[0][0] || !s->cwd || s->cwd[0] != '/')
		return -EINVAL;
	if (s->argc > AGENT_MAX_ARGS || s->envc > AGENT_MAX_ARGS)
		return -E2BIG;
	if (cap > AGENT_MAX_PAYLOAD)
		cap = AGENT_MAX_PAYLOAD;
	if (cap < START_FIXED)
		return -E2BIG;
	le_put32(buf, s->flags);
	le_put32(buf + 4, s->uid);
	le_put32(buf + 8, s->gid);
	le_put16(buf + 12, s->rows);
	le_put16(buf + 14, s->cols);
	le_put32(buf + 16, s->argc);
	le_put32(buf + 20, s->envc);
	size_t off = START_FIXED;
	if (put_str(buf, cap, &off, s->cwd) < 0)
		return -E2BIG;
	for (uint32_t i = 0; i < s->argc; i++)
		if (put_str(buf, cap, &off, s->argv[i]) < 0)
			return -E2BIG;
	for (uint32_t i = 0; i < s->envc; i++) {
		if (check_env(s->env[i]))
			return -EINVAL;
		if (put_str(buf, cap, &off, s->env[i]) < 0)
			return -E2BIG;
	}
	if (s->flags & AGENT_START_PROC) {
		int r = proc_encode(s, buf, cap, &off);
		if (r < 0)
			return r;
	}
	return (int)off;
}

/* Splits buf[off, len) into n NUL-terminated strings stored in out[]; fails unless exactly n fit
 * and nothing is left over. buf[len] is writable scratch. */
static int take_strs(uint8_t *buf, size_t len, size_t *off, char **out, uint32_t n)
{
	buf[len] = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (*off >= len)
			return -1;
		char *s = (char *)buf + *off;
		size_t l = strlen(s); /* stops at buf[len] at the latest */
		if (*off + l == len)
			return -1; /* the last string lacks its NUL */
		out[i] = s;
		*off += l + 1;
	}
	return 0;
}

static const char oom[] = "out of memory";

/* The process settings section at buf[*off, len); NULL or the reason it is refused. */
static const char *proc_decode(uint8_t *buf, size_t len, size_t *off, struct agent_start *s)
{
	if (len - *off < PROC_FIXED)
		return "START's process settings are shorter than their fixed fields";
	const uint8_t *p = buf + *off;
	s->proc_flags = le_get32(p);
	s->umask = le_get32(p + 4);
	s->oom_score_adj = (int32_t)le_get32(p + 8);
	p += 12;
	for (int i = 0; i < AGENT_CAP_SETS; i++, p += 8)
		s->caps[i] = le_get64(p);
	s->ngroups = le_get32(p);
	s->nrlimits = le_get32(p + 4);
	s->nsysctl = le_get32(p + 8);
	s->nmasked = le_get32(p + 12);
	s->nreadonly = le_get32(p + 16);
	s->nfilter = le_get32(p + 20);
	p += 24;
	/* The counts, bounded before any size is computed from them. */
	if (s->ngroups > AGENT_MAX_GROUPS || s->nrlimits > AGENT_MAX_RLIMITS ||
	    s->nsysctl > AGENT_MAX_SYSCTLS || s->nmasked > AGENT_MAX_PATHS ||
	    s->nreadonly > AGENT_MAX_PATHS || s->nfilter > AGENT_MAX_BPF_INSNS)
		return "START's process settings have too many groups, rlimits, sysctls, paths or "
		       "seccomp instructions";
	uint32_t nfilter = s->nfilter;
	s->nfilter = 0;
	size_t bin = PROC_FIXED + 4u * s->ngroups + RLIMIT_SIZE * s->nrlimits + INSN_SIZE * nfilter;
	if (len - *off < bin)
		return "START's process settings are shorter than their counts";
	for (uint32_t i = 0; i < s->ngroups; i++, p += 4)
		s->groups[i] = le_get32(p);
	for (uint32_t i = 0; i < s->nrlimits; i++, p += RLIMIT_SIZE) {
		s->rlimits[i].resource = le_get32(p);
		s->rlimits[i].soft = le_get64(p + 4);
		s->rlimits[i].hard = le_get64(p + 12);
	}
	if (nfilter) {
		s->filter = calloc(nfilter, sizeof(*s->filter));
		if (!s->filter)
			return oom;
		s->nfilter = nfilter;
		for (uint32_t i = 0; i < nfilter; i++, p += INSN_SIZE) {
			s->filter[i].code = le_get16(p);
			s->filter[i].jt = p[2];
			s->filter[i].jf = p[3];
			s->filter[i].k = le_get32(p + 4);
		}
	}
	*off += bin;
	s->sysctl = calloc(2 * s->nsysctl + 1, sizeof(char *));
	s->masked = calloc(s->nmasked + 1, sizeof(char *));
	s->readonly = calloc(s->nreadonly + 1, sizeof(char *));
	if (!s->sysctl || !s->masked || !s->readonly)
		return oom;
	if (take_strs(buf, len, off, s->sysctl, 2 * s->nsysctl) < 0 ||
	    take_strs(buf, len, off, s->masked, s->nmasked) < 0 ||
	    take_strs(buf, len, off, s->readonly, s->nreadonly) < 0)
		return "START's process settings hold fewer strings than they announce";
	return agent_proc_check(s);
}

int agent_start_decode(uint8_t *buf, size_t len, struct agent_start *s, const char **why)
{
	memset(s, 0, sizeof(*s));
	if (len < START_FIXED) {
		*why = "START is shorter than its fixed fields";
		return -EPROTO;
	}
	s->flags = le_get32(buf);
	s->uid = le_get32(buf + 4);
	s->gid = le_get32(buf + 8);
	s->rows = le_get16(buf + 12);
	s->cols = le_get16(buf + 14);
	s->argc = le_get32(buf + 16);
	s->envc = le_get32(buf + 20);
	if (s->flags & ~(AGENT_START_TTY | AGENT_START_PROC)) {
		*why = "START has unknown flags";
		return -EPROTO;
	}
	if (s->argc == 0 || s->argc > AGENT_MAX_ARGS || s->envc > AGENT_MAX_ARGS) {
		*why = "START has no arguments or too many arguments or environment entries";
		return -EPROTO;
	}
	s->argv = calloc(s->argc + 1, sizeof(char *));
	s->env = calloc(s->envc + 1, sizeof(char *));
	if (!s->argv || !s->env) {
		agent_start_free(s);
		*why = "out of memory";
		return -ENOMEM;
	}
	size_t off = START_FIXED;
	char *cwd;
	if (take_strs(buf, len, &off, &cwd, 1) < 0 ||
	    take_strs(buf, len, &off, s->argv, s->argc) < 0 ||
	    take_strs(buf, len, &off, s->env, s->envc) < 0) {
		agent_start_free(s);
		*why = "START holds fewer strings than it announces";
		return -EPROTO;
	}
	s->cwd = cwd;
	*why = NULL;
	if ((s->flags & AGENT_START_PROC) && (*why = proc_decode(buf, len, &off, s))) {
		agent_start_free(s);
		return *why == oom ? -ENOMEM : -EPROTO;
	}
	if (off != len)
		*why = "START has bytes after its last string";
	else if (cwd[0] != '/')
		*why = "START's working directory is not an absolute path";
	else if (!s->argv[0][0])
		*why = "START's program name is empty";
	for (uint32_t i = 0; !*why && i < s->envc; i++)
		*why = check_env(s->env[i]);
	if (*why) {
		agent_start_free(s);
		return -EPROTO;
	}
	return 0;
}

void agent_start_free(struct agent_start *s)
{
	free(s->argv);
	free(s->env);
	free(s->sysctl);
	free(s->masked);
	free(s->readonly);
	free(s->filter);
	s->argv = s->env = s->sysctl = s->masked = s->readonly = NULL;
	s->filter = NULL;
}
