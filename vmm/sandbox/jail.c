/* vmm-jail: starts vmm (or --exec-file) inside a jail of its own, then gets out of the way.
 *
 * The jail: no inherited descriptors but 0-2, an empty environment, new mount, PID, IPC and UTS
 * namespaces (and a network namespace on request), a root directory <base>/<id>/root holding only
 * the files named with --file, the program itself and a /dev with /dev/kvm and /dev/net/tun as
 * its only nodes, a cgroup v2 leaf with the limits named with --cgroup, rlimits, and an
 * unprivileged uid/gid. vmm then adds its own layers (capabilities dropped, no_new_privs, seccomp
 * per thread kind). See docs/security.md.
 *
 * Order: every argument is checked first, with nothing created (a bad one: one line and exit
 * 125). Then the parent creates the jail directory and the cgroup, and clones the child into the
 * new namespaces; the child (PID 1 of its PID namespace) builds the mounts, joins the cgroup,
 * pivots into the root, sets the rlimits, switches to uid/gid and execs the program. The parent
 * stays outside: it forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to the child, waits, removes
 * the jail directory and the cgroup, and exits with the child's status (128+N for signal N). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define JAIL_FAIL	   125 /* a bad argument or a failed jail setup, as vmm's own failures */
#define JAIL_MAX_FILES	   32
#define JAIL_MAX_CGROUP	   16
#define JAIL_MAX_RLIMITS   16
#define JAIL_ID_MAX	   64 /* also the UTS hostname limit */
#define JAIL_DEFAULT_BASE  "/srv/vmm-jail"
#define JAIL_CGROUP_PARENT "vmm" /* leaves are <cgroup2 mount>/vmm/<id> */
#define KVM_MISC_MINOR	   232	 /* /dev/kvm is misc 10:232 on every Linux (KVM_MINOR) */

struct jail_file {
	const char *host; /* as given: opened by root in the host's namespaces */
	char jail[PATH_MAX];
	bool rw;
};

struct jail_cgroup {
	char key[64]; /* e.g. memory.max */
	const char *value;
	char controller[16];
};

struct jail_rlimit {
	const char *name;
	int resource;
	struct rlimit lim;
};

struct jail {
	const char *id;
	uid_t uid;
	gid_t gid;
	char base[PATH_MAX];
	char exec[PATH_MAX];	  /* on the host */
	char exec_jail[PATH_MAX]; /* inside the jail: "/" + its base name */
	struct jail_file files[JAIL_MAX_FILES];
	unsigned nfiles;
	const char *netns;
	bool new_netns;
	struct jail_cgroup cg[JAIL_MAX_CGROUP];
	unsigned ncg;
	struct jail_rlimit rl[JAIL_MAX_RLIMITS];
	unsigned nrl;
	char **args; /* the program's arguments, after "--" */
	int nargs;

	char dir[PATH_MAX];    /* <base>/<id> */
	char root[PATH_MAX];   /* <base>/<id>/root */
	char cgroot[PATH_MAX]; /* the cgroup2 mount */
	char cgdir[PATH_MAX];  /* <cgroot>/vmm/<id> */
	bool dir_made, cg_made;
};

/* ---- messages: one line each, "vmm-jail: " first ---- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "vmm-jail: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

/* Formats a path into out (PATH_MAX bytes). Every path is built from checked arguments well
 * below PATH_MAX; a longer one would be a bug, and ends the program. Returns the length. */
static int jpath(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jpath(char *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		say("a path is too long (%.60s...)", out);
		_exit(JAIL_FAIL);
	}
	return n;
}

/* A bad argument: said before anything is created. */
#define bad(...)                  \
	do {                      \
		say(__VA_ARGS__); \
		exit(JAIL_FAIL);  \
	} while (0)

static void usage(void)
{
	printf(
	    "Usage: vmm-jail --id ID --uid UID --gid GID [options] -- [VMM ARGUMENTS...]\n"
	    "Run vmm in a jail: new mount, PID, IPC and UTS namespaces, a root holding only the\n"
	    "files it is given, /dev/kvm and /dev/net/tun as its only device nodes, a cgroup v2\n"
	    "leaf with limits, rlimits, no inherited descriptors or environment, an unprivileged\n"
	    "uid/gid. Must run as root. Paths in VMM ARGUMENTS are paths inside the jail.\n"
	    "The program must be statically linked (vmm is): the jail holds no libraries.\n"
	    "\n"
	    "  --id ID                 the jail's name: 1-%d of A-Z a-z 0-9 _ -\n"
	    "  --uid UID, --gid GID    the user and group the program runs as (not 0); one uid\n"
	    "                          per jail keeps jails apart (RLIMIT_NPROC counts per uid)\n"
	    "  --chroot-base DIR       the jail is DIR/ID/root (default %s);\n"
	    "                          DIR/ID must not exist, it is removed at exit\n"
	    "  --exec-file PATH        the program (default: the vmm beside vmm-jail), at\n"
	    "                          /NAME in the jail\n"
	    "  --file HOST[:JAIL][,rw] bind HOST (file, block device or directory) at JAIL\n"
	    "                          (default /NAME), read-only unless rw; up to %d\n"
	    "  --netns PATH            join the network namespace PATH (e.g. /run/netns/X)\n"
	    "  --new-netns             a new, empty network namespace\n"
	    "  --cgroup KEY=VALUE      write VALUE to the cgroup v2 file KEY of the jail's leaf\n"
	    "                          (<cgroup2>/%s/ID), e.g. memory.max=512M,\n"
	    "                          cpu.max=\"100000 100000\", pids.max=64\n"
	    "  --rlimit NAME=SOFT[:HARD]  NAME: as core cpu data fsize memlock nofile nproc\n"
	    "                          stack; a number or 'unlimited' (defaults: nofile=1024,\n"
	    "                          nproc=512, core=0)\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Exit status: the program's (128+N when signal N ended it), 125 when the jail could\n"
	    "not be built.\n",
	    JAIL_ID_MAX, JAIL_DEFAULT_BASE, JAIL_MAX_FILES, JAIL_CGROUP_PARENT);
}

/* ---- argument checks (nothing is created here) ---- */

static uint32_t parse_id_number(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *s < '0' || *s > '9' || *end)
		bad("%s: '%s' is not a number: give a numeric id", opt, s);
	if (errno == ERANGE || v >= UINT32_MAX)
		bad("%s: '%s' is out of range: give an id below 4294967295", opt, s);
	if (v == 0)
		bad("%s: 0 is root: give the unprivileged %s the program runs as", opt,
		    strcmp(opt, "--uid") == 0 ? "user" : "group");
	return (uint32_t)v;
}

static void check_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > JAIL_ID_MAX)
		bad("--id: '%s' must have 1 to %d characters", id, JAIL_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && id[i] != '_' && id[i] != '-')
			bad("--id: '%s' has the character '%c': use only A-Z a-z 0-9 _ -", id,
			    id[i]);
}

/* A path inside the jail: absolute, no empty, "." or ".." component, not / or under /dev. */
static void check_jail_path(const char *spec, const char *p)
{
	if (p[0] != '/')
		bad("--file %s: the jail path '%s' must be absolute", spec, p);
	if (strlen(p) >= PATH_MAX / 2)
		bad("--file %s: the jail path is too long", spec);
	if (strcmp(p, "/") == 0)
		bad("--file %s: the jail path cannot be / itself: name a file or directory", spec);
	if (strcmp(p, "/dev") == 0 || strncmp(p, "/dev/", 5) == 0)
		bad("--file %s: the jail path '%s' is under /dev, which holds only kvm and net/tun",
		    spec, p);
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		const char *next = c + 1;
		size_t len = strcspn(next, "/");
		if (len == 0 || (len == 1 && next[0] == '.') ||
		    (len == 2 && next[0] == '.' && next[1] == '.'))
			bad("--file %s: the jail path '%s' has an empty, '.' or '..' component",
			    spec, p);
	}
}

/* Whether a lies inside b (b is a directory prefix of a) or they are the same path. */
static bool path_within(const char *a, const char *b)
{
	size_t n = strlen(b);
	return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

static void parse_file(struct jail *j, char *spec)
{
	if (j->nfiles == JAIL_MAX_FILES)
		bad("--file: at most %d files", JAIL_MAX_FILES);
	char *copy = strdup(spec);
	if (!copy)
		bad("out of memory");
	struct jail_file *f = &j->files[j->nfiles];
	char *comma = strrchr(copy, ',');
	if (comma && (strcmp(comma, ",rw") == 0 || strcmp(comma, ",ro") == 0)) {
		f->rw = strcmp(comma, ",rw") == 0;
		*comma = '\0';
	}
	char *colon = strchr(copy, ':');
	if (colon)
		*colon = '\0';
	f->host = copy;
	if (!*copy)
		bad("--file %s: no host path: give HOST[:JAIL][,rw]", spec);
	struct stat st;
	if (stat(copy, &st) < 0)
		bad("--file %s: cannot use '%s': %s", spec, copy, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISDIR(st.st_mode))
		bad("--file %s: '%s' is not a regular file, block device or directory", spec, copy);
	if (colon) {
		jpath(f->jail, "%s", colon + 1);
	} else {
		char tmp[PATH_MAX];
		jpath(tmp, "%s", copy);
		jpath(f->jail, "/%s", basename(tmp));
	}
	check_jail_path(spec, f->jail);
	for (unsigned i = 0; i < j->nfiles; i++)
		if (path_within(f->jail, j->files[i].jail) ||
		    path_within(j->files[i].jail, f->jail))
			bad("--file %s: the jail path '%s' clashes with '%s' of another --file: "
			    "give "
			    "each its own place",
			    spec, f->jail, j->files[i].jail);
	j->nfiles++;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
    {"as", RLIMIT_AS},	       {"core", RLIMIT_CORE},	{"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE}, {"memlock", RLIMIT_MEMLOCK},
    {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC}, {"stack", RLIMIT_STACK},
};
#define N_RLIMIT_NAMES (sizeof(rlimit_names) / sizeof(rlimit_names[0]))

static bool parse_rlim(const char *s, rlim_t *out)
{
	if (strcmp(s, "unlimited") == 0) {
		*out = RLIM_INFINITY;
		return true;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *s < '0' || *s > '9' || *end || errno == ERANGE || v >= RLIM_INFINITY)
		return false;
	*out = (rlim_t)v;
	return true;
}

static void add_rlimit(struct jail *j, const char *name, int resource, rlim_t soft, rlim_t hard)
{
	for (unsigned i = 0; i < j->nrl; i++)
		if (j->rl[i].resource == resource) {
			j->rl[i].lim = (struct rlimit){soft, hard};
			return;
		}
	j->rl[j->nrl++] = (struct jail_rlimit){name, resource, {soft, hard}};
}

static void parse_rlimit(struct jail *j, const char *spec, bool *given)
{
	char name[16];
	const char *eq = strchr(spec, '=');
	size_t n = eq ? (size_t)(eq - spec) : 0;
	if (!eq || n == 0 || n >= sizeof(name))
		bad("--rlimit %s: give NAME=SOFT[:HARD], e.g. nofile=1024", spec);
	memcpy(name, spec, n);
	name[n] = '\0';
	unsigned k = 0;
	while (k < N_RLIMIT_NAMES && strcmp(rlimit_names[k].name, name) != 0)
		k++;
	if (k == N_RLIMIT_NAMES)
		bad("--rlimit %s: unknown limit '%s': use as, core, cpu, data, fsize, memlock, "
		    "nofile, nproc or stack",
		    spec, name);
	if (given[k])
		bad("--rlimit %s: %s given twice", spec, name);
	given[k] = true;
	char vals[64];
	snprintf(vals, sizeof(vals), "%s", eq + 1);
	char *colon = strchr(vals, ':');
	if (colon)
		*colon = '\0';
	rlim_t soft, hard;
	if (!parse_rlim(vals, &soft) || !parse_rlim(colon ? colon + 1 : vals, &hard))
		bad("--rlimit %s: the values must be numbers or 'unlimited'", spec);
	if (soft != RLIM_INFINITY && (hard == RLIM_INFINITY ? false : soft > hard))
		bad("--rlimit %s: the soft limit is above the hard limit", spec);
	if (soft == RLIM_INFINITY && hard != RLIM_INFINITY)
		bad("--rlimit %s: the soft limit is above the hard limit", spec);
	add_rlimit(j, rlimit_names[k].name, rlimit_names[k].resource, soft, hard);
}

static const char *const cgroup_controllers[] = {"memory", "cpu",    "pids",
						 "io",	   "cpuset", "hugetlb"};

static void parse_cgroup(struct jail *j, const char *spec)
{
	if (j->ncg == JAIL_MAX_CGROUP)
		bad("--cgroup: at most %d settings", JAIL_MAX_CGROUP);
	struct jail_cgroup *c = &j->cg[j->ncg];
	const char *eq = strchr(spec, '=');
	size_t n = eq ? (size_t)(eq - spec) : 0;
	if (!eq || n == 0 || n >= sizeof(c->key) || !eq[1])
		bad("--cgroup %s: give KEY=VALUE, e.g. memory.max=512M", spec);
	memcpy(c->key, spec, n);
	c->key[n] = '\0';
	c->value = eq + 1;
	const char *dot = strchr(c->key, '.');
	size_t cn = dot ? (size_t)(dot - c->key) : 0;
	bool known = false;
	for (unsigned i = 0; dot && i < sizeof(cgroup_controllers) / sizeof(cgroup_controllers[0]);
	     i++)
		known |= strlen(cgroup_controllers[i]) == cn &&
			 strncmp(c->key, cgroup_controllers[i], cn) == 0;
	if (!known || !dot[1])
		bad("--cgroup %s: '%s' is not a file of the memory, cpu, pids, io, cpuset or "
		    "hugetlb controller (e.g. memory.max)",
		    spec, c->key);
	for (const char *p = c->key; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '.' && *p != '_')
			bad("--cgroup %s: the key '%s' has the character '%c'", spec, c->key, *p);
	for (const char *p = c->value; *p; p++)
		if (*p < ' ' || *p > '~')
			bad("--cgroup %s: the value has a control character", spec);
	memcpy(c->controller, c->key, cn);
	c->controller[cn] = '\0';
	for (unsigned i = 0; i < j->ncg; i++)
		if (strcmp(j->cg[i].key, c->key) == 0)
			bad("--cgroup %s: %s given twice", spec, c->key);
	j->ncg++;
}

/* Reads a small file whole (NUL-terminated, trailing newline cut). Returns 0 or -errno. */
static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

/* Whether the space-separated list has word. */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

/* The first cgroup2 mount in /proc/self/mountinfo (fields: ... mount point (5th) ... " - "
 * fstype ...). Octal escapes in the mount point (\040 for a space) are decoded. */
static bool find_cgroup2(char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		char *save, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		size_t o = 0;
		for (const char *p = tok; *p && o + 1 < cap; p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
				out[o++] =
				    (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				p += 3;
			} else {
				out[o++] = *p;
			}
		}
		out[o] = '\0';
		found = true;
	}
	fclose(f);
	return found;
}

static void check_cgroups(struct jail *j)
{
	if (!j->ncg)
		return;
	if (!find_cgroup2(j->cgroot, sizeof(j->cgroot)))
		bad("--cgroup %s: no cgroup v2 hierarchy is mounted here (mount -t cgroup2 none "
		    "/sys/fs/cgroup, or boot with systemd.unified_cgroup_hierarchy=1)",
		    j->cg[0].key);
	char path[PATH_MAX], list[1024];
	jpath(path, "%s/cgroup.controllers", j->cgroot);
	int r = read_small(path, list, sizeof(list));
	if (r < 0)
		bad("--cgroup: cannot read %s: %s", path, strerror(-r));
	for (unsigned i = 0; i < j->ncg; i++)
		if (!has_word(list, j->cg[i].controller))
			bad("--cgroup %s: the %s controller is not available in cgroup v2 at %s "
			    "(cgroup.controllers: '%s'); it is not enabled or is bound to cgroup "
			    "v1",
			    j->cg[i].key, j->cg[i].controller, j->cgroot, list);
	jpath(j->cgdir, "%s/%s/%s", j->cgroot, JAIL_CGROUP_PARENT, j->id);
	struct stat st;
	if (lstat(j->cgdir, &st) == 0)
		bad("--cgroup: the cgroup %s exists: a jail with --id %s runs, or a previous one "
		    "left it (rmdir it)",
		    j->cgdir, j->id);
}

static void default_exec(char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		bad("--exec-file not given and /proc/self/exe unreadable (%s): name the program",
		    strerror(errno));
	self[n] = '\0';
	snprintf(out, cap, "%s/vmm", dirname(self));
}

static void parse_args(int argc, char **argv, struct jail *j)
{
	enum { O_ID = 256, O_UID, O_GID, O_BASE, O_EXEC, O_FILE, O_NETNS, O_NEWNET, O_CG, O_RL };
	static const struct option longopts[] = {
	    {"id", required_argument, NULL, O_ID},
	    {"uid", required_argument, NULL, O_UID},
	    {"gid", required_argument, NULL, O_GID},
	    {"chroot-base", required_argument, NULL, O_BASE},
	    {"exec-file", required_argument, NULL, O_EXEC},
	    {"file", required_argument, NULL, O_FILE},
	    {"netns", required_argument, NULL, O_NETNS},
	    {"new-netns", no_argument, NULL, O_NEWNET},
	    {"cgroup", required_argument, NULL, O_CG},
	    {"rlimit", required_argument, NULL, O_RL},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	bool have_uid = false, have_gid = false, rl_given[N_RLIMIT_NAMES] = {0};
	const char *base = JAIL_DEFAULT_BASE, *exec = NULL;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "+:h", longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case O_ID:
			j->id = optarg;
			break;
		case O_UID:
			j->uid = parse_id_number("--uid", optarg);
			have_uid = true;
			break;
		case O_GID:
			j->gid = parse_id_number("--gid", optarg);
			have_gid = true;
			break;
		case O_BASE:
			base = optarg;
			break;
		case O_EXEC:
			exec = optarg;
			break;
		case O_FILE:
			parse_file(j, optarg);
			break;
		case O_NETNS:
			j->netns = optarg;
			break;
		case O_NEWNET:
			j->new_netns = true;
			break;
		case O_CG:
			parse_cgroup(j, optarg);
			break;
		case O_RL:
			parse_rlimit(j, optarg, rl_given);
			break;
		case 'h':
			usage();
			exit(0);
		case ':':
			bad("option '%s' needs a value: see vmm-jail --help", argv[optind - 1]);
		default:
			bad("unknown option '%s': see vmm-jail --help", argv[optind - 1]);
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
		bad("unexpected argument '%s': put the program's arguments after --", argv[optind]);
	j->args = argv + optind;
	j->nargs = argc - optind;

	if (!j->id)
		bad("no --id given: name the jail (A-Z a-z 0-9 _ -)");
	check_id(j->id);
	if (!have_uid)
		bad("no --uid given: name the unprivileged user the program runs as");
	if (!have_gid)
		bad("no --gid given: name the unprivileged group the program runs as");

	if (base[0] != '/')
		bad("--chroot-base: '%s' must be an absolute path", base);
	if (strlen(base) + JAIL_ID_MAX + 8 >= PATH_MAX / 2)
		bad("--chroot-base: '%s' is too long", base);
	memcpy(j->base, base, strlen(base) + 1); /* fits: checked just above */
	struct stat st;
	if (stat(j->base, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			bad("--chroot-base: '%s' is not a directory", base);
	} else {
		int err = errno;
		char parent[PATH_MAX];
		memcpy(parent, j->base, sizeof(parent));
		if (err != ENOENT || stat(dirname(parent), &st) < 0 || !S_ISDIR(st.st_mode))
			bad("--chroot-base: cannot use '%s' (its parent must be an existing "
			    "directory)",
			    base);
	}
	jpath(j->dir, "%s/%s", j->base, j->id);
	jpath(j->root, "%s/root", j->dir);
	if (lstat(j->dir, &st) == 0)
		bad("the jail directory %s exists: a jail with --id %s runs, or a previous one "
		    "left "
		    "it (remove it, or pick another --id)",
		    j->dir, j->id);

	if (exec)
		jpath(j->exec, "%s", exec);
	else
		default_exec(j->exec, sizeof(j->exec));
	if (stat(j->exec, &st) < 0)
		bad("--exec-file: cannot use '%s': %s", j->exec, strerror(errno));
	if (!S_ISREG(st.st_mode) || access(j->exec, X_OK) < 0)
		bad("--exec-file: '%s' is not an executable file", j->exec);
	char tmp[PATH_MAX];
	jpath(tmp, "%s", j->exec);
	jpath(j->exec_jail, "/%s", basename(tmp));
	for (unsigned i = 0; i < j->nfiles; i++)
		if (path_within(j->exec_jail, j->files[i].jail))
			bad("--file %s: the jail path '%s' is where the program goes (%s)",
			    j->files[i].host, j->files[i].jail, j->exec_jail);

	if (j->netns && j->new_netns)
		bad("--netns and --new-netns exclude each other: give one");
	if (j->netns && stat(j->netns, &st) < 0)
		bad("--netns: cannot use '%s': %s", j->netns, strerror(errno));

	/* the defaults, unless given: vmm needs well under 1024 fds and 512 tasks (vCPU and
	 * io_uring worker threads count), and writes no core dump of guest memory */
	static const struct {
		const char *name;
		rlim_t value;
	} defaults[] = {{"nofile", 1024}, {"nproc", 512}, {"core", 0}};
	for (unsigned d = 0; d < sizeof(defaults) / sizeof(defaults[0]); d++)
		for (unsigned k = 0; k < N_RLIMIT_NAMES; k++)
			if (strcmp(rlimit_names[k].name, defaults[d].name) == 0 && !rl_given[k])
				add_rlimit(j, defaults[d].name, rlimit_names[k].resource,
					   defaults[d].value, defaults[d].value);

	check_cgroups(j);
	if (geteuid() != 0)
		bad("must run as root: it creates namespaces, mounts and device nodes (the program "
		    "then runs as --uid %u)",
		    (unsigned)j->uid);
}

/* ---- the parent's part: jail directory, cgroup, cleanup ---- */

/* Writes s to the file at path. Returns 0 or -errno. */
static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int err = n < 0 ? errno : 0;
	close(fd);
	return n < 0 ? -err : 0;
}

/* Enables controller in dir's cgroup.subtree_control unless it is on already. */
static int enable_controller(const char *dir, const char *controller)
{
	char path[PATH_MAX], list[1024], cmd[32];
	jpath(path, "%s/cgroup.subtree_control", dir);
	int r = read_small(path, list, sizeof(list));
	if (r < 0 || has_word(list, controller))
		return r;
	snprintf(cmd, sizeof(cmd), "+%s", controller);
	r = write_file(path, cmd);
	if (r < 0)
		say("cgroup: cannot enable %s in %s: %s%s", controller, path, strerror(-r),
		    r == -EBUSY ? " (that cgroup holds processes: cgroup v2 allows controllers "
				  "only above leaves)"
				: "");
	return r;
}

/* Creates <cgroot>/vmm/<id>, writes the limits, and returns an fd of its cgroup.procs (the child
 * writes itself there), or -1 after saying why. */
static int cgroup_setup(struct jail *j)
{
	char parent[PATH_MAX];
	jpath(parent, "%s/%s", j->cgroot, JAIL_CGROUP_PARENT);
	if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
		say("cgroup: cannot create %s: %s", parent, strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < j->ncg; i++)
		if (enable_controller(j->cgroot, j->cg[i].controller) < 0 ||
		    enable_controller(parent, j->cg[i].controller) < 0)
			return -1;
	if (mkdir(j->cgdir, 0755) < 0) {
		say("cgroup: cannot create %s: %s", j->cgdir, strerror(errno));
		return -1;
	}
	j->cg_made = true;
	for (unsigned i = 0; i < j->ncg; i++) {
		char path[PATH_MAX];
		jpath(path, "%s/%s", j->cgdir, j->cg[i].key);
		int r = write_file(path, j->cg[i].value);
		if (r < 0) {
			say("--cgroup %s=%s: cannot write %s: %s", j->cg[i].key, j->cg[i].value,
			    path, strerror(-r));
			return -1;
		}
	}
	char procs[PATH_MAX];
	jpath(procs, "%s/cgroup.procs", j->cgdir);
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		say("cgroup: cannot open %s: %s", procs, strerror(errno));
	return fd;
}

/* Removes name (in dirfd) and everything below it without following a symbolic link: the jailed
 * user owned the root and may have left links. Nothing is mounted there in this (the host's)
 * mount namespace: the bind mounts live only in the jail's. Returns 0 or -errno. */
static int remove_tree(int dirfd, const char *name, int depth)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > 16)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && r == 0)
			r = remove_tree(fd, e->d_name, depth + 1);
	closedir(d);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		r = -errno;
	return r;
}

static void cleanup(struct jail *j)
{
	if (j->dir_made) {
		int r = remove_tree(AT_FDCWD, j->dir, 0);
		if (r < 0)
			say("cannot remove the jail directory %s: %s", j->dir, strerror(-r));
	}
	if (j->cg_made) {
		/* the cgroup empties when the last task is reaped; its removal may lag a little */
		int r;
		for (int tries = 0; (r = rmdir(j->cgdir)) < 0 && errno == EBUSY && tries < 100;
		     tries++)
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
		if (r < 0)
			say("cannot remove the cgroup %s: %s", j->cgdir, strerror(errno));
	}
}

/* ---- the child's part: mounts, cgroup, pivot_root, limits, identity, exec ---- */

/* Says what failed in the child and ends it; the parent cleans up. */
#define child_fail(...)           \
	do {                      \
		say(__VA_ARGS__); \
		_exit(JAIL_FAIL); \
	} while (0)

/* Creates the directories of path (absolute, inside the jail root) below root, root-owned. */
static void make_parents(const char *root, const char *path)
{
	char p[PATH_MAX];
	int n = jpath(p, "%s%s", root, path);
	for (char *c = p + strlen(root) + 1; c < p + n; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			child_fail("cannot create %s: %s", p, strerror(errno));
		*c = '/';
	}
}

/* Binds host at path (inside the jail root), read-only unless rw, never setuid or device nodes;
 * executable only when exec. */
static void bind_into(const char *root, const char *host, const char *path, bool rw, bool exec)
{
	struct stat st;
	if (stat(host, &st) < 0)
		child_fail("cannot use %s: %s", host, strerror(errno));
	char target[PATH_MAX];
	jpath(target, "%s%s", root, path);
	make_parents(root, path);
	int fd = -1;
	if (S_ISDIR(st.st_mode)
		? mkdir(target, 0755) < 0
		: (fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) <
		      0)
		child_fail("cannot create the mount point %s: %s", target, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (mount(host, target, NULL, MS_BIND, NULL) < 0)
		child_fail("cannot bind %s at %s: %s", host, target, strerror(errno));
	unsigned long fl = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV;
	fl |= (rw ? 0 : MS_RDONLY) | (exec ? 0 : MS_NOEXEC);
	if (mount(NULL, target, NULL, fl, NULL) < 0)
		child_fail("cannot remount %s (%s): %s", target, rw ? "rw" : "ro", strerror(errno));
}

/* /dev: a small tmpfs with /dev/kvm and (where the host has it) /dev/net/tun, owned by uid:gid. */
static void make_dev(const struct jail *j)
{
	char dev[PATH_MAX], node[PATH_MAX];
	jpath(dev, "%s/dev", j->root);
	if (mkdir(dev, 0755) < 0)
		child_fail("cannot create %s: %s", dev, strerror(errno));
	if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=16") <
	    0)
		child_fail("cannot mount a tmpfs on %s: %s", dev, strerror(errno));
	jpath(node, "%s/kvm", dev);
	if (mknod(node, S_IFCHR | 0600, makedev(10, KVM_MISC_MINOR)) < 0 ||
	    chown(node, j->uid, j->gid) < 0)
		child_fail("cannot create %s: %s", node, strerror(errno));
	struct stat st;
	if (stat("/dev/net/tun", &st) == 0 && S_ISCHR(st.st_mode)) {
		jpath(node, "%s/net", dev);
		if (mkdir(node, 0755) < 0)
			child_fail("cannot create %s: %s", node, strerror(errno));
		jpath(node, "%s/net/tun", dev);
		if (mknod(node, S_IFCHR | 0600, st.st_rdev) < 0 || chown(node, j->uid, j->gid) < 0)
			child_fail("cannot create %s: %s", node, strerror(errno));
	}
	/* nothing more goes in: the jailed user could not write there, nor can anyone now */
	if (mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
		  "mode=0755,size=64k,nr_inodes=16") < 0)
		child_fail("cannot remount %s read-only: %s", dev, strerror(errno));
}

static void enter_root(const struct jail *j)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail("cannot make the mounts private: %s", strerror(errno));
	/* pivot_root needs the new root to be a mount point; nosuid, nodev (/dev is its own) */
	if (mount(j->root, j->root, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, j->root, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
		child_fail("cannot bind %s onto itself: %s", j->root, strerror(errno));
	for (unsigned i = 0; i < j->nfiles; i++)
		bind_into(j->root, j->files[i].host, j->files[i].jail, j->files[i].rw, false);
	bind_into(j->root, j->exec, j->exec_jail, false, true);
	make_dev(j);
	/* pivot_root(".", "."): the old root is stacked under the new one, then detached */
	if (chdir(j->root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail("pivot_root into %s failed: %s", j->root, strerror(errno));
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		child_fail("cannot detach the old root: %s", strerror(errno));
	/* the jailed user may create its sockets (vsock uds=) in its root, as in Firecracker */
	if (chown("/", j->uid, j->gid) < 0)
		child_fail("cannot hand the jail root to %u:%u: %s", (unsigned)j->uid,
			   (unsigned)j->gid, strerror(errno));
}

static void become_user(const struct jail *j)
{
	for (unsigned i = 0; i < j->nrl; i++)
		if (setrlimit(j->rl[i].resource, &j->rl[i].lim) < 0)
			child_fail("--rlimit %s: setrlimit failed: %s", j->rl[i].name,
				   strerror(errno));
	if (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0 ||
	    setresuid(j->uid, j->uid, j->uid) < 0)
		child_fail("cannot switch to uid %u gid %u: %s", (unsigned)j->uid, (unsigned)j->gid,
			   strerror(errno));
	/* root is gone for good: no way back, and no capabilities left (set*uid cleared them) */
	if (setuid(0) == 0)
		child_fail("could switch back to root after setresuid: refusing to go on");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail("prctl (PR_SET_NO_NEW_PRIVS) failed: %s", strerror(errno));
	/* the jail dies with vmm-jail, even by SIGKILL (set after the uid change, which clears it)
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail("prctl (PR_SET_PDEATHSIG) failed: %s", strerror(errno));
}

static _Noreturn void run_child(const struct jail *j, int procs_fd, int netns_fd,
				const sigset_t *mask)
{
	sigprocmask(SIG_SETMASK, mask, NULL);
	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
		child_fail("--netns %s: setns failed: %s", j->netns, strerror(errno));
	if (procs_fd >= 0) {
		if (write(procs_fd, "0", 1) < 0)
			child_fail("cannot join the cgroup %s: %s", j->cgdir, strerror(errno));
		if (unshare(CLONE_NEWCGROUP) < 0) /* the jail sees its leaf as its root */
			child_fail("unshare (CLONE_NEWCGROUP) failed: %s", strerror(errno));
	}
	if (sethostname(j->id, strlen(j->id)) < 0)
		child_fail("sethostname failed: %s", strerror(errno));
	enter_root(j);
	become_user(j);
	char *argv[j->nargs + 2];
	argv[0] = (char *)j->exec_jail + 1;
	for (int i = 0; i < j->nargs; i++)
		argv[i + 1] = j->args[i];
	argv[j->nargs + 1] = NULL;
	char *envp[] = {NULL};
	execve(j->exec_jail, argv, envp);
	child_fail("cannot run %s in the jail: %s", j->exec_jail, strerror(errno));
}

/* ---- main: check, build, run, wait, clean up ---- */

static volatile pid_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
#define N_FORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

int main(int argc, char **argv)
{
	/* nothing inherited reaches the jail but stdin, stdout and stderr */
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);

	static struct jail j;
	parse_args(argc, argv, &j);
	if (clearenv() != 0)
		bad("clearenv failed");

	int status = JAIL_FAIL, procs_fd = -1, netns_fd = -1;
	if (mkdir(j.base, 0755) < 0 && errno != EEXIST) {
		say("cannot create the jail base %s: %s", j.base, strerror(errno));
		return JAIL_FAIL;
	}
	if (mkdir(j.dir, 0711) < 0) {
		say("cannot create the jail directory %s: %s", j.dir, strerror(errno));
		return JAIL_FAIL;
	}
	j.dir_made = true;
	if (mkdir(j.root, 0755) < 0) {
		say("cannot create %s: %s", j.root, strerror(errno));
		goto out;
	}
	if (j.ncg && (procs_fd = cgroup_setup(&j)) < 0)
		goto out;
	if (j.netns && (netns_fd = open(j.netns, O_RDONLY | O_CLOEXEC)) < 0) {
		say("--netns: cannot open %s: %s", j.netns, strerror(errno));
		goto out;
	}

	sigset_t block, old;
	sigemptyset(&block);
	for (unsigned i = 0; i < N_FORWARDED; i++)
		sigaddset(&block, forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
	if (j.new_netns)
		flags |= CLONE_NEWNET;
	/* a fork into new namespaces (the child continues here on a copy of the stack); the parent
	 * stays in the host's mount namespace, where the jail's bind mounts do not exist */
	pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
	if (pid == 0)
		run_child(&j, procs_fd, netns_fd, &old);
	if (pid < 0) {
		say("clone into new namespaces failed: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		goto out;
	}
	child_pid = pid;
	struct sigaction sa = {.sa_handler = forward, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < N_FORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (procs_fd >= 0)
		close(procs_fd);
	procs_fd = -1;

	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR) {
			say("waitpid failed: %s", strerror(errno));
			goto out;
		}
	child_pid = 0;
	status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
out:
	if (procs_fd >= 0)
		close(procs_fd);
	if (netns_fd >= 0)
		close(netns_fd);
	cleanup(&j);
	return status;
}
