/* The machine description's setters, consistency rules and defaults (config.h). The command
 * line and the JSON file both come through here: one place checks every value. */
#include "vmm/config/config.h"
#include "vmm/config/device_table.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || !*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

void config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->memory_mib = VMM_DEFAULT_MEMORY_MIB;
	c->seccomp = true;
	c->stdio[0] = 0;
	c->stdio[1] = 1;
	c->stdio[2] = 2;
	c->log_level = LOG_LEVEL_INFO;
	c->log_format = LOG_FORMAT_TEXT;
}

static void free_strv(char **v, unsigned n)
{
	if (!v)
		return;
	for (unsigned i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void config_free(struct vm_config *c)
{
	char **strs[] = {
	    &c->kernel,	  &c->initrd,	    &c->cmdline,  &c->hostname,	      &c->ip,
	    &c->gw,	  &c->ip6,	    &c->gw6,	  &c->console_socket, &c->api_sock,
	    &c->pid_file, &c->metrics_path, &c->log_path, &c->process.cwd,    &c->restore_dir};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	for (unsigned i = 0; i < c->nvolumes; i++) {
		free(c->volumes[i].host);
		free(c->volumes[i].guest);
	}
	free(c->volumes);
	c->volumes = NULL;
	c->nvolumes = 0;
	free_strv(c->process.argv, c->process.argc);
	free_strv(c->process.env_given, c->process.nenv_given);
	free(c->process.env); /* its strings are env_given's or the defaults below */
	c->process.argv = c->process.env_given = c->process.env = NULL;
	c->process.argc = c->process.nenv_given = c->process.envc = 0;
	free(c->process.seccomp_path);
	free(c->process.bpf);
	free_strv(c->process.sysctl, 2 * c->process.nsysctl);
	free_strv(c->process.masked, c->process.nmasked);
	free_strv(c->process.readonly, c->process.nreadonly);
	c->process.seccomp_path = NULL;
	c->process.bpf = NULL;
	c->process.sysctl = c->process.masked = c->process.readonly = NULL;
	c->process.bpf_insns = c->process.nsysctl = c->process.nmasked = c->process.nreadonly = 0;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int config_set_str(struct vm_config *c, char **field, const char *name, const char *value,
		   struct verr *e)
{
	if (!value || !*value)
		return verr_set(e, -EINVAL, "%s: the value is empty", name);
	if (strlen(value) > 4095 && field != &c->cmdline)
		return verr_set(e, -EINVAL, "%s: the value is longer than 4095 bytes", name);
	char *s = strdup(value);
	if (!s)
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	free(*field);
	*field = s;
	return 0;
}

int config_set_cpus(struct vm_config *c, const char *name, uint64_t v, struct verr *e)
{
	if (v < 1 || v > VMM_MAX_CPUS)
		return verr_set(e, -EINVAL,
				"%s: '%llu' is out of range: give a number of vCPUs "
				"from 1 to %u",
				name, (unsigned long long)v, VMM_MAX_CPUS);
	c->cpus = (unsigned)v;
	return 0;
}

int config_set_memory(struct vm_config *c, const char *name, uint64_t v, struct verr *e)
{
	if (v < VMM_MIN_MEMORY_MIB || v > VMM_MAX_MEMORY_MIB)
		return verr_set(e, -EINVAL,
				"%s: '%llu' is out of range: give the guest RAM in MiB, from %llu "
				"to %llu",
				name, (unsigned long long)v, VMM_MIN_MEMORY_MIB,
				VMM_MAX_MEMORY_MIB);
	c->memory_mib = v;
	return 0;
}

static bool valid_hostname(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

int config_set_hostname(struct vm_config *c, const char *name, const char *v, struct verr *e)
{
	if (!valid_hostname(v))
		return verr_set(e, -EINVAL,
				"%s: '%s' is not a host name (1-64 letters, digits, '-' and '.')",
				name, v);
	return config_set_str(c, &c->hostname, name, v, e);
}

/* An address of family (AF_INET, AF_INET6, or AF_UNSPEC for either), with a /prefix when prefix:
 * its family into *fam, its bytes into out (4 or 16 of them) and the prefix into *plen (any may
 * be NULL). */
static int parse_addr(const char *name, const char *s, int family, bool prefix, int *fam,
		      unsigned char out[16], uint64_t *plen, struct verr *e)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = prefix ? strchr(s, '/') : NULL;
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned char a[16];
	uint64_t p = 0;
	int f = family == AF_UNSPEC ? (memchr(s, ':', alen) ? AF_INET6 : AF_INET) : family;
	unsigned bits = f == AF_INET6 ? 128 : 32;
	if (alen >= sizeof(addr) || (prefix && !slash))
		goto bad;
	memcpy(addr, s, alen);
	addr[alen] = 0;
	if (inet_pton(f, addr, a) != 1 || (slash && parse_u64(slash + 1, 0, bits, &p) < 0))
		goto bad;
	if (fam)
		*fam = f;
	if (out)
		memcpy(out, a, bits / 8);
	if (plen)
		*plen = slash ? p : bits;
	return 0;
bad:
	if (family == AF_INET6)
		return verr_set(e, -EINVAL, "%s: '%s' is not an IPv6 address%s: write e.g. %s",
				name, s, prefix ? " with a /prefix" : "",
				prefix ? "fd00::2/64" : "fd00::1");
	return verr_set(e, -EINVAL, "%s: '%s' is not an IPv4%s address%s: write e.g. %s", name, s,
			family == AF_UNSPEC ? " or IPv6" : "", prefix ? " with a /prefix" : "",
			prefix ? "10.0.2.2/24" : "10.0.2.1");
}

int config_set_ip(struct vm_config *c, const char *name, const char *v, int family, struct verr *e)
{
	int r = parse_addr(name, v, family, true, NULL, NULL, NULL, e);
	return r < 0 ? r : config_set_str(c, family == AF_INET6 ? &c->ip6 : &c->ip, name, v, e);
}

int config_set_gateway(struct vm_config *c, const char *name, const char *v, int family,
		       struct verr *e)
{
	int r = parse_addr(name, v, family, false, NULL, NULL, NULL, e);
	return r < 0 ? r : config_set_str(c, family == AF_INET6 ? &c->gw6 : &c->gw, name, v, e);
}

int config_add_route(struct vm_config *c, const char *name, const char *dst, const char *via,
		     struct verr *e)
{
	unsigned char a[16];
	uint64_t p;
	int fam;
	int r = parse_addr(name, dst, AF_UNSPEC, true, &fam, a, &p, e);
	if (r < 0)
		return r;
	if (via && *via && (r = parse_addr(name, via, fam, false, NULL, NULL, NULL, e)) < 0)
		return r;
	unsigned bits = fam == AF_INET6 ? 128 : 32;
	for (unsigned b = (unsigned)p; b < bits; b++)
		if (a[b / 8] & (0x80u >> (b % 8)))
			return verr_set(e, -EINVAL,
					"%s: '%s' has bits set past /%u: give the network's "
					"address (the host part zero)",
					name, dst, (unsigned)p);
	if (c->nroutes == VMM_MAX_ROUTES)
		return verr_set(e, -EINVAL, "%s: at most %u routes", name, VMM_MAX_ROUTES);
	struct vm_route_cfg *rt = &c->routes[c->nroutes++];
	rt->v6 = fam == AF_INET6;
	snprintf(rt->dst, sizeof(rt->dst), "%s", dst);
	snprintf(rt->via, sizeof(rt->via), "%s", via ? via : "");
	return 0;
}

int config_add_env(struct vm_config *c, const char *name, const char *kv, struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	if (kv[0] == '=' || !strchr(kv, '=') || has_ctl(kv))
		return verr_set(e, -EINVAL, "%s: '%s' is not KEY=VALUE: write NAME=value", name,
				kv);
	if (p->nenv_given == VMM_MAX_ENV)
		return verr_set(e, -EINVAL, "%s: at most %u entries", name, VMM_MAX_ENV);
	if (p->nenv_given % 16 == 0) {
		char **n = realloc(p->env_given, (p->nenv_given + 16) * sizeof(*n));
		if (!n)
			return verr_set(e, -ENOMEM, "%s: out of memory", name);
		p->env_given = n;
	}
	char *s = strdup(kv);
	if (!s)
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	p->env_given[p->nenv_given++] = s;
	return 0;
}

int config_set_workdir(struct vm_config *c, const char *name, const char *v, struct verr *e)
{
	if (v[0] != '/' || has_ctl(v) || strlen(v) > 4095)
		return verr_set(e, -EINVAL, "%s: '%s' is not an absolute path: write e.g. /app",
				name, v);
	return config_set_str(c, &c->process.cwd, name, v, e);
}

int config_set_user(struct vm_config *c, const char *name, uint64_t uid, uint64_t gid,
		    struct verr *e)
{
	if (uid >= UINT32_MAX || gid >= UINT32_MAX)
		return verr_set(e, -EINVAL,
				"%s: uid and gid are numbers below 4294967295 (got %llu:%llu)",
				name, (unsigned long long)uid, (unsigned long long)gid);
	c->process.uid = (uint32_t)uid;
	c->process.gid = (uint32_t)gid;
	return 0;
}

int config_set_args(struct vm_config *c, const char *name, char *const *argv, unsigned argc,
		    struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	if (argc == 0 || !argv[0][0])
		return verr_set(e, -EINVAL, "%s: the command is empty: give a program name", name);
	if (argc > VMM_MAX_ARGS)
		return verr_set(e, -EINVAL, "%s: at most %u arguments", name, VMM_MAX_ARGS);
	char **v = calloc(argc + 1, sizeof(*v));
	if (!v)
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	for (unsigned i = 0; i < argc; i++)
		if (!(v[i] = strdup(argv[i]))) {
			free_strv(v, i);
			return verr_set(e, -ENOMEM, "%s: out of memory", name);
		}
	free_strv(p->argv, p->argc);
	p->argv = v;
	p->argc = argc;
	return 0;
}

/* ---- the process's settings ---- */

int config_set_umask(struct vm_config *c, const char *name, uint64_t v, struct verr *e)
{
	if (v > 0777)
		return verr_set(e, -EINVAL, "%s: %llu is not a umask: give 0 to 511 (0777)", name,
				(unsigned long long)v);
	c->process.umask = (unsigned)v;
	c->process.umask_given = true;
	return 0;
}

int config_add_group(struct vm_config *c, const char *name, uint64_t gid, struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	if (gid >= UINT32_MAX)
		return verr_set(e, -EINVAL, "%s: %llu is not a gid: give a number below 4294967295",
				name, (unsigned long long)gid);
	if (p->ngroups == VMM_MAX_GROUPS)
		return verr_set(e, -EINVAL, "%s: at most %u additional groups", name,
				VMM_MAX_GROUPS);
	p->groups[p->ngroups++] = (uint32_t)gid;
	return 0;
}

static const char *const rlimit_names[VMM_MAX_RLIMITS] = {
    "CPU",     "FSIZE", "DATA",	 "STACK",      "CORE",	   "RSS",  "NPROC",  "NOFILE",
    "MEMLOCK", "AS",	"LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
};

static int rlimit_number(const char *type)
{
	if (!strncasecmp(type, "RLIMIT_", 7))
		type += 7;
	for (int i = 0; i < (int)VMM_MAX_RLIMITS; i++)
		if (!strcasecmp(type, rlimit_names[i]))
			return i;
	return -1;
}

int config_set_rlimit(struct vm_config *c, const char *name, const char *type, uint64_t soft,
		      uint64_t hard, struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	int res = rlimit_number(type);
	if (res < 0)
		return verr_set(e, -EINVAL,
				"%s: '%s' is not a resource limit: give RLIMIT_NOFILE, "
				"RLIMIT_NPROC, RLIMIT_CORE... (the Linux names)",
				name, type);
	if (soft > hard)
		return verr_set(e, -EINVAL,
				"%s: the soft limit %llu is above the hard limit %llu: lower it",
				name, (unsigned long long)soft, (unsigned long long)hard);
	unsigned i;
	for (i = 0; i < p->nrlimits && p->rlimits[i].resource != (unsigned)res; i++)
		;
	if (i == p->nrlimits)
		p->nrlimits++; /* at most one per resource: VMM_MAX_RLIMITS always fit */
	p->rlimits[i] =
	    (struct vm_rlimit_cfg){.resource = (unsigned)res, .soft = soft, .hard = hard};
	return 0;
}

static int parse_limit(const char *s, uint64_t *v)
{
	if (!strcmp(s, "unlimited") || !strcmp(s, "-1")) {
		*v = UINT64_MAX;
		return 0;
	}
	return parse_u64(s, 0, UINT64_MAX - 1, v);
}

int config_add_rlimit_spec(struct vm_config *c, const char *spec, struct verr *e)
{
	char name[128], type[32], num[64];
	snprintf(name, sizeof(name), "--ulimit %s", spec);
	const char *eq = strchr(spec, '=');
	if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof(type) ||
	    strlen(eq + 1) >= sizeof(num))
		return verr_set(e, -EINVAL, "%s: write TYPE=SOFT[:HARD], e.g. nofile=1024:4096",
				name);
	memcpy(type, spec, (size_t)(eq - spec));
	type[eq - spec] = 0;
	strcpy(num, eq + 1);
	char *colon = strchr(num, ':');
	if (colon)
		*colon = 0;
	uint64_t soft, hard;
	if (parse_limit(num, &soft) < 0 || parse_limit(colon ? colon + 1 : num, &hard) < 0)
		return verr_set(e, -EINVAL,
				"%s: the limits are numbers or 'unlimited': write TYPE=SOFT[:HARD]",
				name);
	return config_set_rlimit(c, name, type, soft, hard, e);
}

int config_set_oom_score_adj(struct vm_config *c, const char *name, int64_t v, struct verr *e)
{
	if (v < -1000 || v > 1000)
		return verr_set(e, -EINVAL, "%s: %lld is outside -1000..1000", name, (long long)v);
	c->process.oom_score_adj = (int)v;
	c->process.oom_given = true;
	return 0;
}

static const char *const cap_names[VMM_CAP_LAST + 1] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};

int config_cap_number(const char *cap)
{
	if (!strncasecmp(cap, "CAP_", 4))
		cap += 4;
	for (int i = 0; i <= (int)VMM_CAP_LAST; i++)
		if (!strcasecmp(cap, cap_names[i]))
			return i;
	return -1;
}

const char *config_cap_name(int cap)
{
	return cap >= 0 && cap <= (int)VMM_CAP_LAST ? cap_names[cap] : NULL;
}

#define ALL_CAPS ((2ULL << VMM_CAP_LAST) - 1)

/* The first set given starts every set from root's: full bounding, effective and permitted. */
static void caps_begin(struct vm_process_cfg *p)
{
	if (p->caps_given)
		return;
	p->caps_given = true;
	p->caps[VM_CAP_BOUNDING] = p->caps[VM_CAP_EFFECTIVE] = p->caps[VM_CAP_PERMITTED] = ALL_CAPS;
	p->caps[VM_CAP_INHERITABLE] = p->caps[VM_CAP_AMBIENT] = 0;
}

int config_set_caps(struct vm_config *c, const char *name, enum vm_cap_set set,
		    const char *const *caps, unsigned n, struct verr *e)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++) {
		int b = config_cap_number(caps[i]);
		if (b < 0)
			return verr_set(e, -EINVAL,
					"%s: '%s' is not a capability: give CAP_CHOWN, "
					"CAP_NET_ADMIN... (capabilities(7))",
					name, caps[i]);
		v |= 1ULL << b;
	}
	caps_begin(&c->process);
	c->process.caps[set] = v;
	return 0;
}

int config_drop_cap(struct vm_config *c, const char *name, const char *cap, struct verr *e)
{
	uint64_t v = ALL_CAPS;
	if (strcasecmp(cap, "ALL")) {
		int b = config_cap_number(cap);
		if (b < 0)
			return verr_set(e, -EINVAL,
					"%s: '%s' is not a capability: give CAP_NET_RAW, "
					"CAP_CHOWN... or ALL",
					name, cap);
		v = 1ULL << b;
	}
	caps_begin(&c->process);
	for (int i = 0; i < VM_CAP_SETS; i++)
		c->process.caps[i] &= ~v;
	return 0;
}

int config_set_seccomp_bpf(struct vm_config *c, const char *name, const char *path, struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	const size_t max = VMM_MAX_BPF_INSNS * 8u;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return verr_set(e, -EINVAL, "%s: cannot open %s: %s", name, path, strerror(errno));
	uint8_t *buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	}
	size_t len = 0;
	ssize_t n;
	while (len <= max && (n = read(fd, buf + len, max + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(buf);
			close(fd);
			return verr_set(e, -EINVAL, "%s: cannot read %s: %s", name, path,
					strerror(err));
		}
		len += (size_t)n;
	}
	close(fd);
	if (len == 0 || len % 8 || len > max) {
		free(buf);
		return verr_set(e, -EINVAL,
				"%s: %s is not a seccomp program: it must hold 1 to %u classic "
				"BPF instructions (struct sock_filter, 8 bytes each), it has %zu "
				"bytes",
				name, path, VMM_MAX_BPF_INSNS, len);
	}
	int r = config_set_str(c, &p->seccomp_path, name, path, e);
	if (r < 0) {
		free(buf);
		return r;
	}
	free(p->bpf);
	p->bpf = buf;
	p->bpf_insns = (unsigned)(len / 8);
	return 0;
}

static bool sysctl_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 255 || n[0] == '.' || n[len - 1] == '.' || strstr(n, ".."))
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		      (*n >= '0' && *n <= '9') || *n == '_' || *n == '-' || *n == '.'))
			return false;
	return true;
}

/* Appends strings to a vector that grows by 16. */
static int strv_push(char ***v, unsigned n, const char *s)
{
	if (n % 16 == 0) {
		char **nv = realloc(*v, (n + 16) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
	}
	if (!((*v)[n] = strdup(s)))
		return -ENOMEM;
	return 0;
}

int config_add_sysctl(struct vm_config *c, const char *name, const char *key, const char *value,
		      struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	if (!sysctl_name_ok(key))
		return verr_set(e, -EINVAL,
				"%s: '%s' is not a sysctl name: write dot-separated words, e.g. "
				"kernel.domainname",
				name, key);
	for (const char *q = value; *q; q++)
		if (*q == '\n' || *q == '\r')
			return verr_set(e, -EINVAL, "%s: the value holds a newline", name);
	if (strlen(value) > 4095)
		return verr_set(e, -EINVAL, "%s: the value is longer than 4095 bytes", name);
	for (unsigned i = 0; i < p->nsysctl; i++) {
		if (strcmp(p->sysctl[2 * i], key))
			continue;
		char *v = strdup(value);
		if (!v)
			return verr_set(e, -ENOMEM, "%s: out of memory", name);
		free(p->sysctl[2 * i + 1]);
		p->sysctl[2 * i + 1] = v;
		return 0;
	}
	if (p->nsysctl == VMM_MAX_SYSCTLS)
		return verr_set(e, -EINVAL, "%s: at most %u sysctls", name, VMM_MAX_SYSCTLS);
	/* Two strings per entry: 2n is even, so one growth step covers both. */
	if (strv_push(&p->sysctl, 2 * p->nsysctl, key) < 0)
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	if (!(p->sysctl[2 * p->nsysctl + 1] = strdup(value))) {
		free(p->sysctl[2 * p->nsysctl]);
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	}
	p->nsysctl++;
	return 0;
}

int config_add_guard_path(struct vm_config *c, const char *name, const char *path, bool readonly,
			  struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	char ***v = readonly ? &p->readonly : &p->masked;
	unsigned *n = readonly ? &p->nreadonly : &p->nmasked;
	bool dotdot = false;
	for (const char *q = path; (q = strstr(q, "..")); q += 2)
		if (q[-1] == '/' && (q[2] == '/' || q[2] == 0))
			dotdot = true;
	if (path[0] != '/' || dotdot || has_ctl(path) || strlen(path) > 4095)
		return verr_set(e, -EINVAL,
				"%s: '%s' is not an absolute container path without '..': write "
				"e.g. /proc/kcore",
				name, path);
	if (*n == VMM_MAX_GUARD_PATHS)
		return verr_set(e, -EINVAL, "%s: at most %u paths", name, VMM_MAX_GUARD_PATHS);
	if (strv_push(v, *n, path) < 0)
		return verr_set(e, -ENOMEM, "%s: out of memory", name);
	(*n)++;
	return 0;
}

int config_set_log_level(struct vm_config *c, const char *name, const char *v, struct verr *e)
{
	if (log_parse_level(v, &c->log_level) < 0)
		return verr_set(e, -EINVAL,
				"%s: '%s' is not a level: give error, warn, info or debug", name,
				v);
	return 0;
}

int config_set_log_format(struct vm_config *c, const char *name, const char *v, struct verr *e)
{
	if (log_parse_format(v, &c->log_format) < 0)
		return verr_set(e, -EINVAL, "%s: '%s' is not text or json", name, v);
	return 0;
}

int config_set_stdio(struct vm_config *c, const char *name, const int fds[3], struct verr *e)
{
	for (int i = 0; i < 3; i++)
		if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
			return verr_set(e, -EINVAL,
					"%s: fd %d (the container's %s) is not open in vmm: pass "
					"fds vmm inherits",
					name, fds[i],
					i == 0	 ? "stdin"
					: i == 1 ? "stdout"
						 : "stderr");
	memcpy(c->stdio, fds, sizeof(c->stdio));
	return 0;
}

static unsigned count_type(const struct vm_config *c, enum vm_device_type t, bool root)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->ndevices; i++)
		n += c->devices[i].type == t && c->devices[i].root == root;
	return n;
}

static int add(struct vm_config *c, const struct vm_device_cfg *d, const char *name, struct verr *e)
{
	const struct device_type *t = &device_table[d->type];
	unsigned have = count_type(c, d->type, false);
	unsigned max = d->type == VM_DEV_BLK ? VMM_MAX_DISKS : t->max;
	static const char *const what[VM_DEV_TYPES] = {
	    [VM_DEV_BLK] = "disks besides the root disk",
	    [VM_DEV_NET] = "network devices",
	    [VM_DEV_VSOCK] = "vsock device: a VM has one",
	    [VM_DEV_FS] = "shares besides a directory root",
	    [VM_DEV_RNG] = "rng device",
	};
	if (d->root && (count_type(c, VM_DEV_BLK, true) || count_type(c, VM_DEV_FS, true)))
		return verr_set(e, -EINVAL,
				"%s given twice: one root; add disks with --disk, directories "
				"with --share",
				name);
	for (unsigned i = 0; d->type == VM_DEV_FS && i < c->ndevices; i++)
		if (c->devices[i].type == VM_DEV_FS &&
		    strcmp(c->devices[i].u.fs.tag, d->u.fs.tag) == 0)
			return verr_set(
			    e, -EINVAL, "%s: the tag '%s' is taken%s: give each share its own tag",
			    name, d->u.fs.tag,
			    c->devices[i].root ? " by the directory root (--rootfs DIR)" : "");
	if (!d->root && have >= max)
		return verr_set(e, -EINVAL, "%s: at most %u %s", name, max, what[d->type]);
	if (c->ndevices >= VM_DEVICES_MAX)
		return verr_set(e, -EINVAL, "%s: too many devices: vmm has %u virtio slots", name,
				VM_DEVICES_MAX);
	/* slot order: the root, then by type (blk, net, vsock, fs, rng), each in given order */
	unsigned at = c->ndevices;
	while (at > 0 && !c->devices[at - 1].root && (d->root || c->devices[at - 1].type > d->type))
		at--;
	memmove(&c->devices[at + 1], &c->devices[at], (c->ndevices - at) * sizeof(*d));
	c->devices[at] = *d;
	c->ndevices++;
	return 0;
}

int config_set_root(struct vm_config *c, const char *name, const char *path, struct verr *e)
{
	struct vm_device_cfg d = {.type = VM_DEV_BLK, .root = true};
	struct verr pe = {0};
	struct stat st;
	if (path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* a directory: the container's root is a virtio-fs share of it, read-write */
		d.type = VM_DEV_FS;
		d.u.fs.cache = FUSE_CACHE_AUTO;
		memcpy(d.u.fs.tag, VMM_ROOT_TAG, sizeof(VMM_ROOT_TAG));
		size_t n = strlen(path);
		if (n >= sizeof(d.u.fs.path))
			return verr_set(e, -EINVAL,
					"%s: the directory's path is longer than %zu bytes", name,
					sizeof(d.u.fs.path) - 1);
		memcpy(d.u.fs.path, path, n + 1);
		return add(c, &d, name, e);
	}
	if (virtio_blk_options_path(path, false, &d.u.blk, &pe) < 0)
		return verr_set(e, -EINVAL, "%s: %s", name, pe.msg);
	return add(c, &d, name, e);
}

int config_add_device(struct vm_config *c, enum vm_device_type type, const char *name,
		      const char *spec, struct verr *e)
{
	struct vm_device_cfg d = {.type = type};
	int r = device_table[type].parse(spec, &d, e);
	return r < 0 ? r : add(c, &d, name, e);
}

/* ---- volumes ---- */

/* "/a//b/./c/" -> "/a/b/c" into out[cap]. -EINVAL for a relative path, a ".." component or a
 * control byte, -ENAMETOOLONG when it does not fit. */
static int guest_path_norm(const char *p, char *out, size_t cap)
{
	if (p[0] != '/' || has_ctl(p))
		return -EINVAL;
	size_t n = 0;
	while (*p) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (len == 0 || (len == 1 && p[0] == '.')) {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return -EINVAL;
		if (n + 1 + len >= cap)
			return -ENAMETOOLONG;
		out[n++] = '/';
		memcpy(out + n, p, len);
		n += len;
		p += len;
	}
	out[n] = '\0';
	return 0;
}

/* a is b, or a directory above b (both normalised absolute paths). */
static bool path_covers(const char *a, const char *b)
{
	size_t n = strlen(a);
	if (n == 1) /* "/" */
		return true;
	return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '/');
}

/* The guest path of a volume or tmpfs, normalised into g[4096]; `form` is the flag's syntax for
 * the error lines. 0 or -EINVAL with one line in e. */
static int volume_guest(const char *name, const char *guest, const char *form, char *g, size_t cap,
			struct verr *e)
{
	if (!guest || !*guest)
		return verr_set(e, -EINVAL, "%s: the guest path is empty: write %s", name, form);
	int r = guest_path_norm(guest, g, cap);
	if (r == -ENAMETOOLONG)
		return verr_set(e, -EINVAL, "%s: the guest path is longer than %zu bytes", name,
				cap - 1);
	if (r < 0)
		return verr_set(e, -EINVAL,
				"%s: the guest path '%s' is not an absolute path without '..' "
				"components (or holds a control character): write e.g. /data",
				name, guest);
	if (!g[0])
		return verr_set(e, -EINVAL,
				"%s: the guest path is the container's root '/': give a directory "
				"or file in it (the root itself is --rootfs)",
				name);
	return 0;
}

/* Appends nv (its guest normalised, its host owned: freed on failure) after the checks against
 * the entries already given. 0 or a negative errno with one line in e. */
static int volume_append(struct vm_config *c, const char *name, struct vm_volume_cfg nv,
			 struct verr *e)
{
	int r = 0;
	if (c->nvolumes >= VMM_MAX_VOLUMES) {
		r = verr_set(e, -EINVAL, "%s: at most %u volumes and tmpfs mounts", name,
			     VMM_MAX_VOLUMES);
		goto fail;
	}
	for (unsigned i = 0; i < c->nvolumes; i++) {
		const struct vm_volume_cfg *v = &c->volumes[i];
		if (strcmp(v->guest, nv.guest) == 0) {
			r = verr_set(e, -EINVAL,
				     "%s: the guest path %s is given twice: one volume or tmpfs "
				     "per path",
				     name, nv.guest);
			goto fail;
		}
		if ((v->file && path_covers(v->guest, nv.guest)) ||
		    (nv.file && path_covers(nv.guest, v->guest))) {
			r = verr_set(e, -EINVAL,
				     "%s: the guest paths %s and %s nest under a file volume: a "
				     "file has nothing below it",
				     name, v->guest, nv.guest);
			goto fail;
		}
		bool in_v = v->tmpfs && v->ro && path_covers(v->guest, nv.guest);
		if (in_v || (nv.tmpfs && nv.ro && path_covers(nv.guest, v->guest))) {
			r = verr_set(e, -EINVAL,
				     "%s: %s is inside the read-only tmpfs at %s: nothing can be "
				     "made in it to mount on; drop ro or move one of them",
				     name, in_v ? nv.guest : v->guest, in_v ? v->guest : nv.guest);
			goto fail;
		}
		if (v->host && nv.host && v->ro != nv.ro &&
		    (path_covers(v->host, nv.host) || path_covers(nv.host, v->host))) {
			r = verr_set(
			    e, -EINVAL,
			    "%s: the host path %s overlaps the %s volume of %s: give the "
			    "same directory (or its parts) one mode, read-only or read-write",
			    name, nv.host, v->ro ? "read-only" : "read-write", v->host);
			goto fail;
		}
	}
	if (c->nvolumes % 8 == 0) {
		struct vm_volume_cfg *vs = realloc(c->volumes, (c->nvolumes + 8) * sizeof(*vs));
		if (!vs) {
			r = verr_set(e, -ENOMEM, "%s: out of memory", name);
			goto fail;
		}
		c->volumes = vs;
	}
	nv.guest = strdup(nv.guest);
	if (!nv.guest) {
		r = verr_set(e, -ENOMEM, "%s: out of memory", name);
		goto fail;
	}
	c->volumes[c->nvolumes++] = nv;
	return 0;
fail:
	free(nv.host);
	return r;
}

int config_add_volume(struct vm_config *c, const char *name, const char *host, const char *guest,
		      bool ro, struct verr *e)
{
	char g[4096];
	if (!host || !*host)
		return verr_set(e, -EINVAL, "%s: the host path is empty: write HOST:GUEST[:ro]",
				name);
	int r = volume_guest(name, guest, "HOST:GUEST[:ro]", g, sizeof(g), e);
	if (r < 0)
		return r;
	if (has_ctl(host))
		return verr_set(e, -EINVAL, "%s: the host path holds a control character", name);
	char *real = realpath(host, NULL);
	if (!real)
		return verr_set(e, -EINVAL,
				"%s: the host path '%s' cannot be used: %s: give an existing "
				"directory or regular file",
				name, host, strerror(errno));
	struct stat st;
	if (stat(real, &st) < 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))) {
		r = verr_set(e, -EINVAL,
			     "%s: the host path '%s' is neither a directory nor a regular file: "
			     "give one of those",
			     name, host);
		free(real);
		return r;
	}
	if (strlen(real) > 4095) {
		free(real);
		return verr_set(e, -EINVAL, "%s: the host path is longer than 4095 bytes", name);
	}
	return volume_append(
	    c, name,
	    (struct vm_volume_cfg){.host = real, .guest = g, .ro = ro, .file = S_ISREG(st.st_mode)},
	    e);
}

int config_add_volume_spec(struct vm_config *c, const char *spec, struct verr *e)
{
	char name[96];
	snprintf(name, sizeof(name), "--volume %.80s", spec);
	const char *c1 = strchr(spec, ':');
	if (!c1)
		return verr_set(e, -EINVAL,
				"%s: not HOST:GUEST[:ro]: write e.g. --volume /srv/data:/data:ro",
				name);
	const char *c2 = strchr(c1 + 1, ':');
	bool ro = false;
	if (c2 && strcmp(c2 + 1, "ro") == 0)
		ro = true;
	else if (c2 && strcmp(c2 + 1, "rw") != 0)
		return verr_set(e, -EINVAL,
				"%s: '%s' is not an option: the only ones are :ro (read-only) and "
				":rw (the default)",
				name, c2 + 1);
	size_t hl = (size_t)(c1 - spec), gl = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
	char *host = strndup(spec, hl), *guest = strndup(c1 + 1, gl);
	int r = host && guest ? config_add_volume(c, name, host, guest, ro, e)
			      : verr_set(e, -ENOMEM, "%s: out of memory", name);
	free(host);
	free(guest);
	return r;
}

int config_parse_mode(const char *s, unsigned *mode)
{
	size_t n = strspn(s, "01234567");
	if (n == 0 || n > 5 || s[n])
		return -EINVAL;
	unsigned long m = strtoul(s, NULL, 8);
	if (m > 07777)
		return -EINVAL;
	*mode = (unsigned)m;
	return 0;
}

int config_add_tmpfs(struct vm_config *c, const char *name, const char *guest, unsigned mode,
		     uint64_t size_mib, bool ro, struct verr *e)
{
	char g[4096];
	int r = volume_guest(name, guest, "--tmpfs GUEST[:OPT,...] (OPT: ro, mode=OCTAL, size=MIB)",
			     g, sizeof(g), e);
	if (r < 0)
		return r;
	if (mode > 07777)
		return verr_set(e, -EINVAL, "%s: the mode %#o is above 07777", name, mode);
	if (size_mib > VMM_MAX_MEMORY_MIB)
		return verr_set(e, -EINVAL, "%s: a size of %llu MiB: at most %llu (1 TiB)", name,
				(unsigned long long)size_mib, VMM_MAX_MEMORY_MIB);
	return volume_append(
	    c, name,
	    (struct vm_volume_cfg){
		.guest = g, .ro = ro, .tmpfs = true, .mode = mode, .size_mib = size_mib},
	    e);
}

int config_add_tmpfs_spec(struct vm_config *c, const char *spec, struct verr *e)
{
	char name[96];
	snprintf(name, sizeof(name), "--tmpfs %.80s", spec);
	const char *colon = strchr(spec, ':');
	size_t gl = colon ? (size_t)(colon - spec) : strlen(spec);
	unsigned mode = VMM_TMPFS_DEFAULT_MODE;
	uint64_t size = 0;
	bool ro = false, seen_rw = false, seen_mode = false, seen_size = false;
	for (const char *o = colon ? colon + 1 : NULL; o;) {
		const char *comma = strchr(o, ',');
		size_t len = comma ? (size_t)(comma - o) : strlen(o);
		char opt[64];
		if (len >= sizeof(opt))
			return verr_set(e, -EINVAL, "%s: an option is longer than %zu bytes", name,
					sizeof(opt) - 1);
		memcpy(opt, o, len);
		opt[len] = '\0';
		o = comma ? comma + 1 : NULL;
		bool *seen = NULL;
		if (strcmp(opt, "ro") == 0 || strcmp(opt, "rw") == 0) {
			seen = &seen_rw;
			ro = opt[1] == 'o';
		} else if (strncmp(opt, "mode=", 5) == 0) {
			seen = &seen_mode;
			if (config_parse_mode(opt + 5, &mode) < 0)
				return verr_set(e, -EINVAL,
						"%s: mode '%s' is not an octal mode from 0 to "
						"7777: write e.g. mode=755",
						name, opt + 5);
		} else if (strncmp(opt, "size=", 5) == 0) {
			seen = &seen_size;
			const char *v = opt + 5;
			char *end = NULL;
			errno = 0;
			unsigned long long n = strtoull(v, &end, 10);
			if (v[0] < '1' || v[0] > '9' || *end || errno || n > VMM_MAX_MEMORY_MIB)
				return verr_set(e, -EINVAL,
						"%s: size '%s' is not a number of MiB from 1 to "
						"%llu: write e.g. size=64 (64 MiB)",
						name, v, VMM_MAX_MEMORY_MIB);
			size = n;
		} else {
			return verr_set(e, -EINVAL,
					"%s: '%s' is not an option: the options are ro, rw, "
					"mode=OCTAL and size=MIB, separated by commas",
					name, opt);
		}
		if (*seen)
			return verr_set(e, -EINVAL, "%s: '%s' is given twice (or ro with rw)", name,
					opt);
		*seen = true;
	}
	char *guest = strndup(spec, gl);
	int r = guest ? config_add_tmpfs(c, name, guest, mode, size, ro, e)
		      : verr_set(e, -ENOMEM, "%s: out of memory", name);
	free(guest);
	return r;
}

/* The staging share's device: added once (config_finish is idempotent), its path set when the
 * staging directory exists (volumes_stage). */
static int finish_volumes(struct vm_config *c, struct verr *e)
{
	for (unsigned i = 0; i < c->ndevices; i++)
		if (c->devices[i].type == VM_DEV_FS && !c->devices[i].implicit &&
		    strcmp(c->devices[i].u.fs.tag, VMM_VOLUME_TAG) == 0)
			return verr_set(e, -EINVAL,
					"--share: the tag '%s' is vmm's own (the --volume staging "
					"share): give another tag",
					VMM_VOLUME_TAG);
	if (!c->nvolumes)
		return 0;
	for (unsigned i = 0; i < c->ndevices; i++)
		if (c->devices[i].type == VM_DEV_FS && c->devices[i].implicit)
			return 0;
	if (count_type(c, VM_DEV_FS, false) >= VMM_MAX_SHARES)
		return verr_set(e, -EINVAL,
				"--volume: the volumes take one virtio-fs device and %u --share "
				"take them all: give at most %u --share with --volume",
				VMM_MAX_SHARES, VMM_MAX_SHARES - 1);
	struct vm_device_cfg d = {.type = VM_DEV_FS, .implicit = true};
	memcpy(d.u.fs.tag, VMM_VOLUME_TAG, sizeof(VMM_VOLUME_TAG));
	d.u.fs.cache = FUSE_CACHE_AUTO;
	return add(c, &d, "--volume", e);
}

/* Environment defaults (unless an entry sets the key) come before the given entries. */
static int build_env(struct vm_config *c, struct verr *e)
{
	static char home_root[] = "HOME=/root", home_other[] = "HOME=/", term[] = "TERM=xterm";
	static char path[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	static char host[80];
	struct vm_process_cfg *p = &c->process;
	snprintf(host, sizeof(host), "HOSTNAME=%s", c->hostname ? c->hostname : "vmm");
	char *defaults[] = {path, p->uid == 0 ? home_root : home_other, p->tty ? term : NULL,
			    c->hostname ? host : NULL};
	free(p->env);
	p->env = calloc(p->nenv_given + 5, sizeof(*p->env));
	if (!p->env)
		return verr_set(e, -ENOMEM, "out of memory for the environment");
	unsigned n = 0;
	for (size_t d = 0; d < sizeof(defaults) / sizeof(defaults[0]); d++) {
		if (!defaults[d])
			continue;
		size_t klen = (size_t)(strchr(defaults[d], '=') - defaults[d]) + 1;
		bool set = false;
		for (unsigned i = 0; i < p->nenv_given; i++)
			set |= strncmp(p->env_given[i], defaults[d], klen) == 0;
		if (!set)
			p->env[n++] = defaults[d];
	}
	for (unsigned i = 0; i < p->nenv_given; i++)
		p->env[n++] = p->env_given[i];
	p->env[n] = NULL;
	p->envc = n;
	return 0;
}

int config_finish_process(struct vm_config *c, struct verr *e)
{
	return build_env(c, e);
}

static const struct vm_device_cfg *root_disk(const struct vm_config *c)
{
	return c->ndevices && c->devices[0].root ? &c->devices[0] : NULL;
}

static int finish_container(struct vm_config *c, struct verr *e)
{
	struct vm_process_cfg *p = &c->process;
	if (p->argc && c->initrd)
		return verr_set(
		    e, -EINVAL,
		    "a command after -- runs in a container, which boots vmm's own "
		    "agent: drop --initrd (or pass your init's arguments in --cmdline)");
	c->container = p->argc || (root_disk(c) && !c->initrd);
	bool container_only = p->nenv_given || p->cwd || p->uid || p->gid || c->hostname ||
			      p->tty_given || c->rootfs_rw || c->rootfs_readonly ||
			      c->enter_rootfs || c->ip || c->nroutes || c->gw || c->ip6 || c->gw6 ||
			      c->console_socket || c->nvolumes;
	if (!c->container) {
		if (container_only)
			return verr_set(
			    e, -EINVAL,
			    "--env, --workdir, --user, --hostname, --tty, --rootfs-rw, "
			    "--rootfs-readonly, --enter-rootfs, "
			    "--ip, --gateway, --ip6, --gateway6, --route, --console-socket, "
			    "--volume and --tmpfs are for containers: give --rootfs IMG without "
			    "--initrd");
		return 0;
	}
	if (!root_disk(c))
		return verr_set(e, -EINVAL,
				"a container needs a root file system: give --rootfs IMG "
				"(vmm-mkrootfs makes one from a directory) or --rootfs DIR");
	unsigned nets = count_type(c, VM_DEV_NET, false);
	if ((c->ip || c->gw || c->ip6 || c->gw6 || c->nroutes) && !nets)
		return verr_set(
		    e, -EINVAL,
		    "--ip, --gateway, --ip6, --gateway6 and --route configure the first "
		    "--net device: add --net tap=NAME");
	bool v4_routes = false, v6_routes = false;
	for (unsigned i = 0; i < c->nroutes; i++)
		*(c->routes[i].v6 ? &v6_routes : &v4_routes) = true;
	if ((c->gw || v4_routes) && !c->ip)
		return verr_set(e, -EINVAL,
				"--gateway and an IPv4 --route need --ip ADDR/PREFIX for eth0");
	if ((c->gw6 || v6_routes) && !c->ip6)
		return verr_set(e, -EINVAL,
				"--gateway6 and an IPv6 --route need --ip6 ADDR/PREFIX for eth0");
	if (c->console_socket)
		p->tty = true;
	else if (!p->tty_given && isatty(c->stdio[0]))
		p->tty = true;
	if (!p->cwd && !(p->cwd = strdup("/")))
		return verr_set(e, -ENOMEM, "out of memory");
	if (!p->argc) {
		char *sh[] = {"/bin/sh"};
		int r = config_set_args(c, "the command", sh, 1, e);
		if (r < 0)
			return r;
	}
	/* The root disk is read-only under the agent's overlay unless --rootfs-rw; a directory
	 * root is always read-write, without an overlay. --rootfs-readonly: the agent mounts
	 * either read-only (a disk without the overlay) once the mounts on it are made. */
	bool dir_root = c->devices[0].type == VM_DEV_FS;
	if (c->enter_rootfs && !dir_root)
		return verr_set(e, -EINVAL,
				"--enter-rootfs moves vmm into the container's root directory: "
				"give --rootfs DIR (a directory, not an image)");
	if (c->rootfs_rw && c->rootfs_readonly)
		return verr_set(
		    e, -EINVAL,
		    "--rootfs-rw and --rootfs-readonly contradict each other: give one");
	if (!dir_root)
		c->devices[0].u.blk.ro = !c->rootfs_rw;
	/* The agent's channel: a vsock device (CID 3, no host socket) when none is given. */
	if (!count_type(c, VM_DEV_VSOCK, false)) {
		struct vm_device_cfg v = {
		    .type = VM_DEV_VSOCK, .implicit = true, .u.vsock = {.cid = 3}};
		int r = add(c, &v, "the container's vsock", e);
		if (r < 0)
			return r;
	}
	int r = finish_volumes(c, e);
	if (r < 0)
		return r;
	char vols[32] = "";
	if (c->nvolumes)
		snprintf(vols, sizeof(vols), " vmm.volumes=%u", c->nvolumes);
	int n =
	    snprintf(c->agent_cmdline, sizeof(c->agent_cmdline),
		     "vmm.rootfs=%s%s vmm.hostname=%s%s%s%s%s%s%s%s%s%s",
		     dir_root	    ? "virtiofs:" VMM_ROOT_TAG
		     : c->rootfs_rw ? "rw"
				    : "ro",
		     c->rootfs_readonly ? " vmm.rootro=1" : "", c->hostname ? c->hostname : "vmm",
		     c->ip ? " vmm.ip=" : "", c->ip ? c->ip : "", c->gw ? " vmm.gw=" : "",
		     c->gw ? c->gw : "", c->ip6 ? " vmm.ip6=" : "", c->ip6 ? c->ip6 : "",
		     c->gw6 ? " vmm.gw6=" : "", c->gw6 ? c->gw6 : "", vols);
	/* vmm.route=DST[,VIA], in the order given */
	for (unsigned i = 0; i < c->nroutes && n >= 0 && (size_t)n < sizeof(c->agent_cmdline);
	     i++) {
		const struct vm_route_cfg *rt = &c->routes[i];
		int w = snprintf(c->agent_cmdline + n, sizeof(c->agent_cmdline) - (size_t)n,
				 " vmm.route=%s%s%s", rt->dst, rt->via[0] ? "," : "", rt->via);
		n = w < 0 ? w : n + w;
	}
	if (n < 0 || (size_t)n >= sizeof(c->agent_cmdline))
		return verr_set(e, -EINVAL, "the agent's parameters are too long");
	return build_env(c, e);
}

int config_finish(struct vm_config *c, struct verr *e)
{
	int r = finish_container(c, e);
	if (r < 0)
		return r;
	if (!c->kernel) {
		const char *k = config_default_kernel();
		if (!k)
			return verr_set(e, -EINVAL,
					"no kernel given and none built: pass --kernel PATH (a "
					"vmlinux with PVH note or a bzImage), set VMM_KERNEL, or "
					"build one with kernel-config/build.sh");
		if (!(c->kernel = strdup(k)))
			return verr_set(e, -ENOMEM, "out of memory");
	}
	if (c->detach && !c->api_sock && !c->pid_file)
		return verr_set(e, -EINVAL,
				"--detach without --api-sock or --pid-file: nothing could reach "
				"the VM afterwards; give one of them");
	for (unsigned i = 0; i < c->ndevices; i++) {
		const struct device_type *t = &device_table[c->devices[i].type];
		/* the staging share has no directory yet: volumes_stage makes it */
		if (c->devices[i].type == VM_DEV_FS && c->devices[i].implicit)
			continue;
		if (t->check && (r = t->check(&c->devices[i],
					      c->devices[i].root ? "--rootfs" : t->flag, e)) < 0)
			return r;
	}
	return 0;
}

const char *config_default_kernel(void)
{
	static char path[4096];
	const char *env = getenv("VMM_KERNEL");
	if (env && *env)
		return env;
	const char *cache = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char dir[3072];
	int n;
	if (cache && *cache)
		n = snprintf(dir, sizeof(dir), "%s/vmm/kernel", cache);
	else if (home && *home)
		n = snprintf(dir, sizeof(dir), "%s/.cache/vmm/kernel", home);
	else
		return NULL;
	if (n < 0 || (size_t)n >= sizeof(dir))
		return NULL;
	/* The newest finished build: kernel-config/build.sh writes <key>/done last. */
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	struct timespec best = {0};
	bool found = false;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		char done[4096], vmlinux[4096];
		struct stat st;
		snprintf(done, sizeof(done), "%s/%s/done", dir, de->d_name);
		n = snprintf(vmlinux, sizeof(vmlinux), "%s/%s/vmlinux", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(vmlinux) || stat(done, &st) < 0 ||
		    access(vmlinux, R_OK) < 0)
			continue;
		if (!found || st.st_mtim.tv_sec > best.tv_sec ||
		    (st.st_mtim.tv_sec == best.tv_sec && st.st_mtim.tv_nsec > best.tv_nsec)) {
			best = st.st_mtim;
			memcpy(path, vmlinux, sizeof(path));
			found = true;
		}
	}
	closedir(d);
	return found ? path : NULL;
}
