/* vmm-oci: the OCI runtime command line in front of vmm (docs/oci.md). podman (through conmon),
 * containerd's runc shim and Docker call it as they call runc or crun; each container is one
 * vmm process, created paused through its control API and driven through it afterwards. What
 * the engines send, and rely on, is in shared/engines/README.md.
 *
 * A container's records live in ROOT/ID/ (--root, default /run/vmm-oci): vm.json (the machine
 * description handed to vmm), state.json (what `state` needs besides the live VM: bundle,
 * created, annotations, vmm's pid and its start time, which guards against pid reuse), vmm.pid
 * and vmm.sock (the VM's control socket). */
#include "oci/cgroup.h"
#include "oci/net.h"
#include "oci/seccomp.h"
#include "oci/spec.h"
#include "vmm/api/api_proto.h"
#include "vmm/api/ctl.h"
#include "vmm/config/config.h"
#include "vmm/config/json_strict.h"
#include "vmm/log.h"
#include "vmm/runtime_stdio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OCI_VERSION    "1.0.2"
#define ID_MAX	       64 /* ROOT/ID/vmm.sock must fit a Unix socket address */
#define STATE_MAX      (1u << 20)
#define HOOK_TIMEOUT_S 30
#define CGROUP_ROOT    "/sys/fs/cgroup"
/* The cgroup's memory limit over the guest's RAM: vmm itself (its threads, rings, buffers) */
#define VMM_OVERHEAD_MIB 64
/* JSON as runc writes it: paths with plain slashes; state pretty-printed with "key": value */
#define JSON_FILE (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JSON_PRINT \
	(JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *root_dir = "/run/vmm-oci";

/* ---- the container's records ---- */

struct container {
	char id[ID_MAX + 1];
	char dir[PATH_MAX];
	char sock[PATH_MAX];
	char link[64];	    /* SOCK_LINKS/HASH when ROOT/ID/vmm.sock is too long, else "" */
	json_object *state; /* state.json */
	int lock_fd;	    /* the directory, flock'ed */
	pid_t pid;	    /* vmm; 0 once it is gone */
};

static int check_id(const char *id, struct verr *e)
{
	size_t n = strlen(id);
	if (n == 0 || n > ID_MAX)
		return verr_set(e, -EINVAL, "container id '%s': give 1 to %d characters", id,
				ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("_.-+", id[i]))
			return verr_set(e, -EINVAL,
					"container id '%s': only letters, digits and _ . - + are "
					"allowed",
					id);
	if (id[0] == '.')
		return verr_set(e, -EINVAL, "container id '%s' must not start with '.'", id);
	return 0;
}

/* Where the control socket is reached when ROOT/ID/vmm.sock does not fit a Unix socket address
 * (Docker's /run/docker/runtime-runc/moby/ID with a long exec-root): a symbolic link
 * SOCK_LINKS/HASH to ROOT/ID, HASH from ROOT/ID's path, made at create and removed at delete. */
#define SOCK_LINKS "/run/vmm-oci/.links"

static void sock_link(const char *dir, char *out, size_t cap)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const char *p = dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	snprintf(out, cap, SOCK_LINKS "/%016llx", (unsigned long long)h);
}

static int paths(struct container *c, const char *id, struct verr *e)
{
	int r = check_id(id, e);
	if (r < 0)
		return r;
	snprintf(c->id, sizeof(c->id), "%s", id);
	if (snprintf(c->dir, sizeof(c->dir), "%s/%s", root_dir, id) >= (int)sizeof(c->dir))
		return verr_set(e, -ENAMETOOLONG, "--root %s: the path is too long", root_dir);
	c->link[0] = 0;
	if (snprintf(c->sock, sizeof(c->sock), "%s/vmm.sock", c->dir) >= 108) {
		sock_link(c->dir, c->link, sizeof(c->link));
		snprintf(c->sock, sizeof(c->sock), "%s/vmm.sock", c->link);
	}
	return 0;
}

/* The link for a long ROOT/ID (see SOCK_LINKS), replacing one a dead container left. */
static int make_sock_link(const struct container *c, struct verr *e)
{
	if (!c->link[0])
		return 0;
	mkdir("/run/vmm-oci", 0700);
	mkdir(SOCK_LINKS, 0700);
	unlink(c->link);
	if (symlink(c->dir, c->link) < 0)
		return verr_set(e, -errno,
				"%s/vmm.sock is too long for a Unix socket, and the short link %s "
				"cannot be made: %s",
				c->dir, c->link, strerror(errno));
	return 0;
}

/* The start time of pid (field 22 of /proc/PID/stat, clock ticks since boot), 0 if none. */
static unsigned long long start_time(pid_t pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *s = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!s)
		return 0;
	unsigned long long t = 0;
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime cutime cstime priority nice threads itrealvalue starttime(22) */
	if (sscanf(s + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
		   "%*d %llu",
		   &t) != 1)
		return 0;
	return t;
}

/* Whether the vmm recorded in state.json still runs: same pid and same start time. */
static pid_t live_pid(json_object *state)
{
	json_object *p, *t;
	if (!json_object_object_get_ex(state, "vmm_pid", &p) ||
	    !json_object_object_get_ex(state, "vmm_start_time", &t))
		return 0;
	pid_t pid = (pid_t)json_object_get_int64(p);
	unsigned long long want = (unsigned long long)json_object_get_uint64(t);
	if (pid <= 0 || want == 0)
		return 0;
	return start_time(pid) == want ? pid : 0;
}

static const char *state_str(json_object *state, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(state, key, &v) ? json_object_get_string(v) : "";
}

/* Opens an existing container: locks its directory and reads state.json. -ENOENT (e: "container
 * ID does not exist") when there is none. */
static int open_container(struct container *c, const char *id, struct verr *e)
{
	*c = (struct container){.lock_fd = -1};
	int r = paths(c, id, e);
	if (r < 0)
		return r;
	c->lock_fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->lock_fd < 0) {
		if (errno == ENOENT)
			return verr_set(e, -ENOENT, "container %s does not exist", id);
		return verr_set(e, -errno, "container %s: cannot open %s: %s", id, c->dir,
				strerror(errno));
	}
	if (flock(c->lock_fd, LOCK_EX) < 0)
		return verr_set(e, -errno, "container %s: cannot lock %s: %s", id, c->dir,
				strerror(errno));
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/state.json", c->dir);
	r = json_strict_read_file(p, STATE_MAX, p, &c->state, e);
	if (r == -ENOENT) /* removed while we waited for the lock, or a create in progress */
		return verr_set(e, -ENOENT, "container %s does not exist", id);
	if (r < 0)
		return r;
	c->pid = live_pid(c->state);
	return 0;
}

static void close_container(struct container *c)
{
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	json_object_put(c->state);
	c->state = NULL;
	c->lock_fd = -1;
}

static int write_file(const char *dir, const char *name, const char *text, struct verr *e)
{
	char p[PATH_MAX + 32], tmp[PATH_MAX + 40];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return verr_set(e, -errno, "cannot write %s: %s", p, strerror(errno));
	int r = fd_write_all(fd, text, strlen(text));
	if (r < 0) {
		close(fd);
		unlink(tmp);
		return verr_set(e, r, "cannot write %s: %s", p, strerror(-r));
	}
	if (close(fd) < 0 || rename(tmp, p) < 0) {
		int err = errno;
		unlink(tmp);
		return verr_set(e, -err, "cannot write %s: %s", p, strerror(err));
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int r = flag == FTW_DP ? rmdir(path) : unlink(path);
	return r < 0 && errno != ENOENT ? -1 : 0;
}

static int remove_dir(const char *dir, struct verr *e)
{
	if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return verr_set(e, -errno, "cannot remove %s: %s", dir, strerror(errno));
	return 0;
}

/* ---- the VM's control API ---- */

/* One request to the container's vmm: 0 with *reply (ok true), or an error with e set. */
static int api(struct container *c, enum api_op op, int arg, int timeout_ms, json_object **reply,
	       struct verr *e)
{
	if (reply)
		*reply = NULL;
	struct verr ce = {0};
	int fd = api_client_connect(c->sock, &ce);
	if (fd < 0)
		return verr_set(e, fd, "container %s: the VM does not answer: %s", c->id, ce.msg);
	struct api_request rq = {.op = op};
	if (op == API_OP_STOP)
		rq.timeout_ms = (uint32_t)arg;
	if (op == API_OP_SIGNAL)
		rq.signal = arg;
	json_object *rep = NULL;
	int r = api_client_call(fd, &rq, timeout_ms, &rep, &ce);
	close(fd);
	if (r < 0)
		return verr_set(e, r, "container %s: %s: %s", c->id, api_op_name(op), ce.msg);
	json_object *ok, *err;
	if (!json_object_object_get_ex(rep, "ok", &ok) || !json_object_get_boolean(ok)) {
		r = verr_set(e, -EIO, "container %s: %s", c->id,
			     json_object_object_get_ex(rep, "error", &err)
				 ? json_object_get_string(err)
				 : "the VM refused the request");
		json_object_put(rep);
		return r;
	}
	if (reply)
		*reply = rep;
	else
		json_object_put(rep);
	return 0;
}

/* The OCI status: created, running, paused or stopped (stopping counts as running). */
static const char *status_of(struct container *c)
{
	if (!c->pid)
		return "stopped";
	json_object *rep;
	struct verr e = {0};
	if (api(c, API_OP_STATE, 0, 5000, &rep, &e) < 0) {
		/* alive but not answering: vmm is on its way out (its socket is gone) */
		vmm_debug("%s", e.msg);
		return "stopped";
	}
	const char *s = state_str(rep, "state");
	const char *out = strcmp(s, "created") == 0   ? "created"
			  : strcmp(s, "paused") == 0  ? "paused"
			  : strcmp(s, "stopped") == 0 ? "stopped"
						      : "running";
	json_object_put(rep);
	return out;
}

static json_object *state_json(struct container *c, const char *status)
{
	json_object *o = json_object_new_object(), *v;
	json_object_object_add(o, "ociVersion", json_object_new_string(OCI_VERSION));
	json_object_object_add(o, "id", json_object_new_string(c->id));
	json_object_object_add(o, "pid",
			       json_object_new_int(strcmp(status, "stopped") == 0 ? 0 : c->pid));
	json_object_object_add(o, "status", json_object_new_string(status));
	static const char *const keys[] = {"bundle", "rootfs", "created", "owner"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		json_object_object_add(o, keys[i],
				       json_object_new_string(state_str(c->state, keys[i])));
	if (json_object_object_get_ex(c->state, "annotations", &v))
		json_object_object_add(o, "annotations", json_object_get(v));
	return o;
}

/* ---- hooks ---- */

/* Runs one hook ({path, args, env, timeout}) with the state JSON on its stdin. */
static int run_hook(json_object *h, const char *kind, size_t i, const char *state, struct verr *e)
{
	json_object *v;
	if (!json_object_object_get_ex(h, "path", &v) ||
	    json_object_get_type(v) != json_type_string)
		return verr_set(e, -EINVAL, "config.json: hooks.%s[%zu].path: missing", kind, i);
	const char *path = json_object_get_string(v);
	int timeout = HOOK_TIMEOUT_S;
	if (json_object_object_get_ex(h, "timeout", &v) && json_object_get_int(v) > 0)
		timeout = json_object_get_int(v);
	size_t na = 0, ne = 0;
	json_object *args = NULL, *env = NULL;
	if (json_object_object_get_ex(h, "args", &args))
		na = json_object_array_length(args);
	if (json_object_object_get_ex(h, "env", &env))
		ne = json_object_array_length(env);
	const char **argv = calloc(na + 2, sizeof(*argv)), **envp = calloc(ne + 1, sizeof(*envp));
	if (!argv || !envp) {
		free(argv);
		free(envp);
		return verr_set(e, -ENOMEM, "hook %s: out of memory", path);
	}
	argv[0] = path;
	for (size_t k = 0; k < na; k++)
		argv[k] = json_object_get_string(json_object_array_get_idx(args, k));
	if (na == 0)
		argv[1] = NULL;
	for (size_t k = 0; k < ne; k++)
		envp[k] = json_object_get_string(json_object_array_get_idx(env, k));
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0) {
		free(argv);
		free(envp);
		return verr_set(e, -errno, "hook %s: pipe: %s", path, strerror(errno));
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		execve(path, (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	free(argv);
	free(envp);
	close(in[0]);
	if (pid < 0) {
		close(in[1]);
		return verr_set(e, -errno, "hook %s: fork: %s", path, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	ssize_t w = write(in[1], state, strlen(state));
	(void)w;
	close(in[1]);
	int st = 0;
	for (int waited = 0;; waited++) {
		pid_t got = waitpid(pid, &st, WNOHANG);
		if (got == pid)
			break;
		if (waited >= timeout * 10) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return verr_set(e, -ETIMEDOUT, "hook %s (%s): still running after %d s",
					path, kind, timeout);
		}
		poll(NULL, 0, 100);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return verr_set(e, -EIO, "hook %s (%s) failed (%s %d)", path, kind,
				WIFEXITED(st) ? "exit status" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

static int run_hooks(json_object *spec, const char *kind, const char *state, struct verr *e)
{
	json_object *hooks, *list;
	if (!json_object_object_get_ex(spec, "hooks", &hooks) ||
	    !json_object_object_get_ex(hooks, kind, &list) ||
	    json_object_get_type(list) != json_type_array)
		return 0;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		int r = run_hook(json_object_array_get_idx(list, i), kind, i, state, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The spec of a container, from its bundle (for hooks after create). */
static json_object *bundle_spec(struct container *c)
{
	json_object *spec = NULL;
	struct verr e = {0};
	if (oci_spec_read(state_str(c->state, "bundle"), &spec, &e) < 0)
		vmm_warn("%s", e.msg);
	return spec;
}

/* ---- finding vmm ---- */

/* vmm beside vmm-oci (installed), or in the build tree's vmm/ (a build directory): never
 * through PATH, which kill, delete and state do not get. */
static int find_vmm(char *out, size_t cap, struct verr *e)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return verr_set(e, -errno, "cannot read /proc/self/exe: %s", strerror(errno));
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	const char *env = getenv("VMM_OCI_VMM");
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return 0;
	}
	static const char *const beside[] = {"/vmm", "/../vmm/vmm"};
	for (size_t i = 0; i < 2; i++)
		if ((size_t)snprintf(out, cap, "%s%s", self, beside[i]) < cap &&
		    access(out, X_OK) == 0)
			return 0;
	return verr_set(e, -ENOENT,
			"cannot find vmm beside %s/vmm-oci: install both in one directory (or set "
			"VMM_OCI_VMM)",
			self);
}

/* ---- the subcommands ---- */

struct cmd_opts {
	const char *bundle, *pid_file, *console_socket, *process;
	const char *log_path, *log_format;
	bool force, detach, tty, all;
	const char *format;
};

static void rfc3339_now(char *buf, size_t cap)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%09ldZ", ts.tv_nsec);
}

static int read_pid(const char *path, pid_t *pid)
{
	char buf[32] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	char *end;
	long v = strtol(buf, &end, 10);
	if (v <= 0 || (*end && *end != '\n'))
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

/* The last line of vmm's log (its error, when it failed) into buf: the "msg" of a JSON line,
 * or the text after "vmm: ". */
static const char *last_line(const char *path, char *buf, size_t cap)
{
	buf[0] = 0;
	FILE *f = path ? fopen(path, "re") : NULL;
	if (!f)
		return buf;
	char line[4096], last[4096] = "";
	while (fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			memcpy(last, line, sizeof(last));
	fclose(f);
	last[strcspn(last, "\n")] = 0;
	const char *m = strncmp(last, "vmm: ", 5) == 0 ? last + 5 : last;
	json_object *o = last[0] == '{' ? json_tokener_parse(last) : NULL, *msg;
	if (o && json_object_object_get_ex(o, "msg", &msg))
		m = json_object_get_string(msg);
	size_t n = strnlen(m, cap - 1);
	memcpy(buf, m, n);
	buf[n] = 0;
	json_object_put(o);
	return buf;
}

/* Runs vmm --config VM.json; vmm --detach returns once the VM is created (its child, the VM,
 * is then re-parented to the engine's subreaper). fds 0-2 are the container's stdio; every
 * other fd is closed first (conmon and the shim leak one at fd 3). log: the file vmm logs to,
 * whose last line says why it failed. */
static int spawn_vmm(const char *vmm, const char *vm_json, const char *log,
		     const struct oci_cgroup *cg, struct verr *e)
{
	pid_t pid = fork();
	if (pid < 0)
		return verr_set(e, -errno, "cannot fork: %s", strerror(errno));
	if (pid == 0) {
		/* into the container's cgroup before the VM exists: its memory is charged there */
		int cr = oci_cgroup_enter(cg);
		if (cr < 0) {
			dprintf(STDERR_FILENO, "vmm-oci: cannot enter the container's cgroup: %s\n",
				strerror(-cr));
			_exit(125);
		}
		/* vmm opens the log file itself (vm.json's log); ours is close-on-exec */
		syscall(SYS_close_range, 3U, ~0U, 0U);
		char *argv[] = {(char *)vmm, "--config", (char *)vm_json, NULL};
		execv(vmm, argv);
		dprintf(STDERR_FILENO, "vmm-oci: cannot run %s: %s\n", vmm, strerror(errno));
		_exit(125);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return verr_set(e, -errno, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char why[900];
		last_line(log, why, sizeof(why));
		return verr_set(e, -EIO, "vmm could not create the VM (%s %d): %s",
				WIFEXITED(st) ? "exit status" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
				why[0] ? why : "it said nothing");
	}
	return 0;
}

static int cmd_create(const char *id, const struct cmd_opts *o, struct verr *e)
{
	struct container c = {.lock_fd = -1};
	int r = paths(&c, id, e);
	if (r < 0)
		return r;
	char bundle[PATH_MAX];
	if (!realpath(o->bundle ? o->bundle : ".", bundle))
		return verr_set(e, -ENOENT, "--bundle %s: %s", o->bundle ? o->bundle : ".",
				strerror(errno));
	json_object *spec = NULL, *vm = NULL;
	struct oci_cgroup cg = {0};
	const char *cgroups_path = NULL;
	pid_t pid = 0;
	if ((r = oci_spec_read(bundle, &spec, e)) < 0)
		return r;
	char vmm[PATH_MAX];
	if ((r = find_vmm(vmm, sizeof(vmm), e)) < 0)
		goto out;
	/* mkdir -p: containerd's shim names /run/containerd/runc/NAMESPACE, parents missing */
	char parents[PATH_MAX];
	snprintf(parents, sizeof(parents), "%s", root_dir);
	for (char *p = parents + 1;; p++) {
		bool last = !*p;
		if (*p != '/' && !last)
			continue;
		*p = 0;
		if (mkdir(parents, 0700) < 0 && errno != EEXIST) {
			r = verr_set(e, -errno, "--root %s: cannot create %s: %s", root_dir,
				     parents, strerror(errno));
			goto out;
		}
		if (last)
			break;
		*p = '/';
	}
	if (mkdir(c.dir, 0700) < 0) {
		r = errno == EEXIST
			? verr_set(e, -EEXIST, "container %s already exists", id)
			: verr_set(e, -errno, "cannot create %s: %s", c.dir, strerror(errno));
		goto out;
	}
	c.lock_fd = open(c.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.lock_fd < 0 || flock(c.lock_fd, LOCK_EX) < 0) {
		r = verr_set(e, -errno, "cannot lock %s: %s", c.dir, strerror(errno));
		goto fail;
	}
	if ((r = make_sock_link(&c, e)) < 0)
		goto fail;
	char vmm_pid[PATH_MAX + 16], vm_json[PATH_MAX + 16];
	snprintf(vmm_pid, sizeof(vmm_pid), "%s/vmm.pid", c.dir);
	snprintf(vm_json, sizeof(vm_json), "%s/vm.json", c.dir);
	/* vmm's own lines go to the engine's --log, else to ROOT/ID/vmm.log: never to the
	 * container's stderr, which is create's */
	char own_log[PATH_MAX + 16], seccomp_bpf[PATH_MAX + 16];
	snprintf(own_log, sizeof(own_log), "%s/vmm.log", c.dir);
	snprintf(seccomp_bpf, sizeof(seccomp_bpf), "%s/" OCI_SECCOMP_FILE, c.dir);
	struct oci_vm_opts vo = {.api_sock = c.sock,
				 .seccomp_bpf = seccomp_bpf,
				 .pid_file = vmm_pid,
				 .console_socket = o->console_socket,
				 .log_path = o->log_path ? o->log_path : own_log,
				 .log_format = o->log_path ? o->log_format : "text",
				 .kernel = getenv("VMM_KERNEL")};
	if (vo.kernel && !*vo.kernel)
		vo.kernel = NULL;
	if (!vo.kernel) {
		/* vmm's default, the newest kernel in the cache under $HOME, which conmon and the
		 * shim may not pass: the user's own home then */
		struct passwd *hp = getenv("HOME") ? NULL : getpwuid(geteuid());
		if (hp)
			setenv("HOME", hp->pw_dir, 1);
		vo.kernel = config_default_kernel();
	}
	if ((r = oci_spec_to_vm(spec, bundle, &vo, &vm, e)) < 0)
		goto fail;
	/* the engine's network namespace: joined here, so vmm (started next) runs in it */
	const char *netns;
	if ((r = oci_net_namespace(spec, &netns, e)) < 0 ||
	    (r == 1 && (r = oci_net_setup(netns, vm, e)) < 0))
		goto fail;
	/* linux.cgroupsPath: vmm is placed there (cgroupfs), limited to the guest's RAM plus
	 * vmm's own overhead */
	json_object *lnx, *cgp = NULL, *mem;
	if (json_object_object_get_ex(spec, "linux", &lnx))
		json_object_object_get_ex(lnx, "cgroupsPath", &cgp);
	cgroups_path = cgp ? json_object_get_string(cgp) : NULL;
	int64_t mem_max = json_object_object_get_ex(vm, "memory_mib", &mem)
			      ? (json_object_get_int64(mem) + VMM_OVERHEAD_MIB) << 20
			      : 0;
	if ((r = oci_cgroup_prepare(&cg, CGROUP_ROOT, cgroups_path, mem_max, e)) < 0)
		goto fail;
	if ((r = write_file(c.dir, "vm.json", json_object_to_json_string_ext(vm, JSON_FILE), e)) <
	    0)
		goto fail;

	/* the records before the VM exists: a failed create leaves nothing behind */
	char created[64];
	rfc3339_now(created, sizeof(created));
	c.state = json_object_new_object();
	json_object_object_add(c.state, "bundle", json_object_new_string(bundle));
	json_object *rootfs;
	json_object_object_get_ex(vm, "rootfs", &rootfs);
	json_object_object_add(c.state, "rootfs", json_object_get(rootfs));
	json_object_object_add(c.state, "created", json_object_new_string(created));
	struct passwd *pw = getpwuid(geteuid());
	json_object_object_add(c.state, "owner", json_object_new_string(pw ? pw->pw_name : ""));
	json_object *ann;
	if (json_object_object_get_ex(spec, "annotations", &ann))
		json_object_object_add(c.state, "annotations", json_object_get(ann));
	if (cg.n)
		json_object_object_add(c.state, "cgroups_path",
				       json_object_new_string(cgroups_path));

	if ((r = spawn_vmm(vmm, vm_json, vo.log_path, &cg, e)) < 0)
		goto fail;
	if (read_pid(vmm_pid, &pid) < 0) {
		r = verr_set(e, -EIO, "vmm created the VM but left no pid in %s", vmm_pid);
		goto fail;
	}
	c.pid = pid;
	json_object_object_add(c.state, "vmm_pid", json_object_new_int(pid));
	json_object_object_add(c.state, "vmm_start_time", json_object_new_uint64(start_time(pid)));
	if ((r = write_file(c.dir, "state.json", json_object_to_json_string_ext(c.state, JSON_FILE),
			    e)) < 0)
		goto kill_vm;
	if (o->pid_file && (r = pidfile_write(o->pid_file, pid, e)) < 0)
		goto kill_vm;
	json_object *st = state_json(&c, "created");
	const char *sj = json_object_to_json_string_ext(st, JSON_FILE);
	r = run_hooks(spec, "createRuntime", sj, e);
	if (r == 0)
		r = run_hooks(spec, "prestart", sj, e);
	json_object_put(st);
	if (r < 0)
		goto kill_vm;
	goto out;
kill_vm:
	if (pid > 0)
		kill(pid, SIGKILL);
fail:
	if (cg.n) { /* once vmm, killed, has left it */
		for (int i = 0; i < 50 && pid > 0 && kill(pid, 0) == 0; i++)
			poll(NULL, 0, 100);
		oci_cgroup_remove(CGROUP_ROOT, cgroups_path);
	}
	remove_dir(c.dir, &(struct verr){0});
	if (c.link[0])
		unlink(c.link);
out:
	close_container(&c);
	json_object_put(vm);
	json_object_put(spec);
	return r;
}

static int cmd_start(const char *id, const char *log_path, struct verr *e)
{
	struct container c;
	int r = open_container(&c, id, e);
	if (r < 0)
		goto out;
	const char *s = status_of(&c);
	if (strcmp(s, "created") != 0) {
		r = verr_set(e, -EINVAL, "container %s is %s, not created: it can be started once",
			     id, s);
		goto out;
	}
	json_object *rep;
	if ((r = api(&c, API_OP_START, 0, -1, &rep, e)) < 0) {
		/* the agent's exec failed (127: not found, 126: cannot run): said the way engines
		 * recognise it (podman's exit codes 127 and 126 come from these words) */
		struct verr was = *e;
		if (strstr(was.msg, "(status 127)")) {
			verr_set(e, r, "%s: executable file not found in $PATH", was.msg);
		} else if (strstr(was.msg, "(status 126)")) {
			verr_set(e, r, "%s: permission denied", was.msg);
		} else {
			/* why the VM ended: vmm's last line (the engine's --log, else our own) */
			char own[PATH_MAX + 16], why[700];
			snprintf(own, sizeof(own), "%s/vmm.log", c.dir);
			last_line(log_path ? log_path : own, why, sizeof(why));
			if (why[0])
				verr_set(e, r, "%.300s (vmm: %s)", was.msg, why);
		}
		goto out;
	}
	json_object_put(rep);
	json_object *spec = bundle_spec(&c);
	if (spec) {
		json_object *st = state_json(&c, "running");
		struct verr he = {0};
		if (run_hooks(spec, "poststart", json_object_to_json_string_ext(st, JSON_FILE),
			      &he) < 0)
			vmm_warn("%s", he.msg); /* the spec: a poststart failure is a warning */
		json_object_put(st);
		json_object_put(spec);
	}
out:
	close_container(&c);
	return r;
}

static int cmd_state(const char *id, struct verr *e)
{
	struct container c;
	int r = open_container(&c, id, e);
	if (r == 0) {
		json_object *st = state_json(&c, status_of(&c));
		printf("%s\n", json_object_to_json_string_ext(st, JSON_PRINT));
		json_object_put(st);
	}
	close_container(&c);
	return r;
}

static int parse_signal(const char *s, int *sig, struct verr *e)
{
	*sig = ctl_parse_signal(s);
	if (*sig < 0)
		return verr_set(e, -EINVAL,
				"kill: '%s' is not a signal: give a number from 1 to 64 or a name "
				"(TERM)",
				s);
	return 0;
}

/* Stops the VM at once and waits up to 10 s for vmm to go (then SIGKILL). */
static void force_stop(struct container *c)
{
	if (!c->pid)
		return;
	struct verr e = {0};
	if (api(c, API_OP_STOP, 0, 10000, NULL, &e) < 0)
		vmm_debug("%s", e.msg);
	unsigned long long t = start_time(c->pid);
	for (int i = 0; i < 100 && t && start_time(c->pid) == t; i++)
		poll(NULL, 0, 100);
	if (t && start_time(c->pid) == t)
		kill(c->pid, SIGKILL);
}

static int cmd_kill(const char *id, const char *sigs, struct verr *e)
{
	int sig = SIGTERM;
	int r = sigs ? parse_signal(sigs, &sig, e) : 0;
	if (r < 0)
		return r;
	struct container c;
	if ((r = open_container(&c, id, e)) < 0)
		goto out;
	const char *s = status_of(&c);
	if (strcmp(s, "stopped") == 0) {
		r = verr_set(e, -ESRCH, "container %s is not running", id);
	} else if (strcmp(s, "created") == 0) {
		/* the process has not started: a fatal signal ends the VM, others wait */
		if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT ||
		    sig == SIGHUP)
			force_stop(&c);
		else
			r = verr_set(e, -EINVAL,
				     "container %s is created, not running: signal %d reaches "
				     "its process once it is started",
				     id, sig);
	} else if (sig == SIGKILL && strcmp(s, "paused") == 0) {
		/* A paused guest cannot act on it, and podman on cgroup v2 waits for the exit
		 * without resuming (SIGKILL ends frozen tasks there): end the VM, status 137 */
		force_stop(&c);
	} else {
		/* other signals to a paused container wait in the agent's queue until resume */
		r = api(&c, API_OP_SIGNAL, sig, 10000, NULL, e);
	}
out:
	close_container(&c);
	return r;
}

static int cmd_delete(const char *id, bool force, struct verr *e)
{
	struct container c;
	int r = open_container(&c, id, e);
	if (r == -ENOENT && force) {
		close_container(&c);
		return 0; /* containerd's second shim, podman's cleanup: already gone is fine */
	}
	if (r < 0)
		goto out;
	const char *s = status_of(&c);
	if (strcmp(s, "stopped") != 0 && strcmp(s, "created") != 0 && !force) {
		r = verr_set(e, -EBUSY,
			     "container %s is %s: stop it first, or delete it with --force", id, s);
		goto out;
	}
	force_stop(&c);
	json_object *cgp;
	if (json_object_object_get_ex(c.state, "cgroups_path", &cgp))
		oci_cgroup_remove(CGROUP_ROOT, json_object_get_string(cgp));
	json_object *spec = bundle_spec(&c);
	if (spec) {
		json_object *st = state_json(&c, "stopped");
		struct verr he = {0};
		if (run_hooks(spec, "poststop", json_object_to_json_string_ext(st, JSON_FILE),
			      &he) < 0)
			vmm_warn("%s", he.msg);
		json_object_put(st);
		json_object_put(spec);
	}
	r = remove_dir(c.dir, e);
	if (c.link[0])
		unlink(c.link);
out:
	close_container(&c);
	return r;
}

static int cmd_pause(const char *id, bool pause, struct verr *e)
{
	struct container c;
	int r = open_container(&c, id, e);
	if (r == 0) {
		const char *s = status_of(&c);
		const char *need = pause ? "running" : "paused";
		if (strcmp(s, need) != 0)
			r = verr_set(e, -EINVAL, "container %s is %s, not %s", id, s, need);
		else
			r = api(&c, pause ? API_OP_PAUSE : API_OP_RESUME, 0, 30000, NULL, e);
	}
	close_container(&c);
	return r;
}

static int cmd_ps(const char *id, const char *format, struct verr *e)
{
	if (format && strcmp(format, "json") != 0 && strcmp(format, "table") != 0)
		return verr_set(e, -EINVAL, "ps: --format %s: give table or json", format);
	struct container c;
	int r = open_container(&c, id, e);
	if (r == 0) {
		bool alive = strcmp(status_of(&c), "stopped") != 0;
		if (format && strcmp(format, "json") == 0)
			alive ? printf("[%d]\n", (int)c.pid) : printf("[]\n");
		else if (alive)
			printf("PID\n%d\n", (int)c.pid);
		else
			printf("PID\n");
	}
	close_container(&c);
	return r;
}

static int cmd_features(void)
{
	json_object *f = json_object_new_object(), *a;
	json_object_object_add(f, "ociVersionMin", json_object_new_string("1.0.0"));
	json_object_object_add(f, "ociVersionMax", json_object_new_string(OCI_VERSION));
	a = json_object_new_array();
	static const char *const hooks[] = {"prestart", "createRuntime", "poststart", "poststop"};
	for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
		json_object_array_add(a, json_object_new_string(hooks[i]));
	json_object_object_add(f, "hooks", a);
	a = json_object_new_array();
	static const char *const mo[] = {"bind", "rbind", "ro", "rw", "rprivate", "private"};
	for (size_t i = 0; i < sizeof(mo) / sizeof(mo[0]); i++)
		json_object_array_add(a, json_object_new_string(mo[i]));
	json_object_object_add(f, "mountOptions", a);
	json_object *ann = json_object_new_object();
	json_object_object_add(ann, "io.vmm.isolation", json_object_new_string("vm"));
	json_object_object_add(f, "annotations", ann);
	printf("%s\n", json_object_to_json_string_ext(f, JSON_PRINT));
	json_object_put(f);
	return 0;
}

/* exec: `vmm exec` runs the process in the VM and lives as long as it, exiting with its
 * status; it is the process the pid file names. A --process file goes to it whole, as vmm's
 * process description (oci_process_to_vm) on fd 3, with the container's seccomp program: the
 * exec'd process gets the container's profile and the file's capabilities, rlimits, user and
 * the rest, as runc gives them. */
static int cmd_exec(const char *id, const struct cmd_opts *o, int argc, char **argv, struct verr *e)
{
	struct container c;
	int r = open_container(&c, id, e);
	if (r < 0) {
		close_container(&c);
		return r;
	}
	const char *s = status_of(&c);
	char sock[PATH_MAX], bpf[PATH_MAX + 16];
	snprintf(sock, sizeof(sock), "%s", c.sock);
	snprintf(bpf, sizeof(bpf), "%s/" OCI_SECCOMP_FILE, c.dir);
	close_container(&c);
	if (strcmp(s, "running") != 0)
		return verr_set(e, -EINVAL, "container %s is %s, not running: cannot exec in it",
				id, s);
	if (!o->process && argc == 0)
		return verr_set(e, -EINVAL, "exec: give --process FILE or a command after the id");
	json_object *pj = NULL, *vp = NULL;
	int pfd = -1;
	char **v = NULL;
	if (o->process) {
		if ((r = json_strict_read_file(o->process, OCI_SPEC_MAX, o->process, &pj, e)) < 0 ||
		    (r = oci_process_to_vm(pj, "process", &vp, e)) < 0)
			goto out;
		if (access(bpf, F_OK) == 0)
			json_object_object_add(vp, "seccomp_bpf", json_object_new_string(bpf));
		const char *text = json_object_to_json_string_ext(vp, JSON_C_TO_STRING_PLAIN);
		pfd = (int)syscall(SYS_memfd_create, "vmm-oci-exec", 1U /* MFD_CLOEXEC */);
		if (pfd < 0 || fd_write_all(pfd, text, strlen(text)) < 0) {
			r = verr_set(e, -errno, "exec: cannot hand the process to vmm: %s",
				     strerror(errno));
			goto out;
		}
	}
	char vmm[PATH_MAX];
	if ((r = find_vmm(vmm, sizeof(vmm), e)) < 0)
		goto out;
	/* vmm exec --api-sock S [--process /dev/fd/3] [--tty] [-- ARGS] */
	if (!(v = calloc(9 + (size_t)argc, sizeof(*v)))) {
		r = verr_set(e, -ENOMEM, "exec: out of memory");
		goto out;
	}
	size_t k = 0;
	v[k++] = vmm;
	v[k++] = "exec";
	v[k++] = "--api-sock";
	v[k++] = sock;
	if (pfd >= 0) {
		v[k++] = "--process";
		v[k++] = "/dev/fd/3";
	}
	if (o->tty)
		v[k++] = "--tty";
	if (pfd < 0) {
		v[k++] = "--";
		for (int i = 0; i < argc; i++)
			v[k++] = argv[i];
	}
	v[k] = NULL;

	int slave = -1;
	if (o->console_socket && (r = console_socket_send_pty(o->console_socket, &slave, e)) < 0)
		goto out;
	pid_t pid = o->detach ? fork() : 0;
	if (pid < 0) {
		r = verr_set(e, -errno, "exec: cannot fork: %s", strerror(errno));
	} else if (pid == 0) {
		if (slave >= 0) {
			setsid();
			dup2(slave, 0);
			dup2(slave, 1);
			dup2(slave, 2);
			stdio_take_ctty(0);
		}
		if (!o->detach && o->pid_file) {
			struct verr pe = {0};
			if (pidfile_write(o->pid_file, getpid(), &pe) < 0) {
				vmm_log("%s", pe.msg);
				_exit(1);
			}
		}
		if (pfd >= 0 && (pfd == 3 ? fcntl(3, F_SETFD, 0) : dup2(pfd, 3)) < 0) {
			dprintf(STDERR_FILENO, "vmm-oci: exec: cannot pass the process: %s\n",
				strerror(errno));
			_exit(125);
		}
		syscall(SYS_close_range, pfd >= 0 ? 4U : 3U, ~0U, 0U);
		execv(vmm, v);
		dprintf(STDERR_FILENO, "vmm-oci: cannot run %s: %s\n", vmm, strerror(errno));
		_exit(125);
	} else if (o->pid_file) {
		r = pidfile_write(o->pid_file, pid, e);
	}
	if (slave >= 0)
		close(slave);
out:
	free(v);
	if (pfd >= 0)
		close(pfd);
	json_object_put(vp);
	json_object_put(pj);
	return r;
}

/* ---- the command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmm-oci [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...\n"
		"An OCI runtime: each container runs in its own KVM micro-VM (one vmm).\n"
		"Commands:\n"
		"  create [--bundle DIR] [--pid-file F] [--console-socket S] ID\n"
		"  start ID        state ID        kill ID [SIGNAL]     delete [--force] ID\n"
		"  pause ID        resume ID       ps [--format table|json] ID\n"
		"  exec [--process F] [--detach] [--pid-file F] [--console-socket S] [--tty] ID "
		"[CMD...]\n"
		"  features        --version\n"
		"Global: --root DIR (default /run/vmm-oci), --log FILE, --log-format text|json,\n"
		"--systemd-cgroup (accepted; vmm-oci uses cgroupfs paths).\n");
}

int main(int argc, char **argv)
{
	log_set_program("vmm-oci");
	struct cmd_opts o = {0};
	enum { O_ROOT = 256, O_LOG, O_LOG_FORMAT, O_SYSTEMD, O_DEBUG, O_VERSION, O_ROOTLESS };
	static const struct option global[] = {
	    {"root", required_argument, NULL, O_ROOT},
	    {"log", required_argument, NULL, O_LOG},
	    {"log-format", required_argument, NULL, O_LOG_FORMAT},
	    {"systemd-cgroup", no_argument, NULL, O_SYSTEMD},
	    {"debug", no_argument, NULL, O_DEBUG},
	    {"rootless", required_argument, NULL, O_ROOTLESS},
	    {"version", no_argument, NULL, O_VERSION},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	enum log_format fmt = LOG_FORMAT_TEXT;
	bool debug = false;
	opterr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "+hv", global, NULL)) != -1) {
		switch (opt) {
		case O_ROOT:
			root_dir = optarg;
			break;
		case O_LOG:
			o.log_path = optarg;
			break;
		case O_LOG_FORMAT:
			if (log_parse_format(optarg, &fmt) < 0) {
				vmm_log("--log-format %s: give text or json", optarg);
				return 1;
			}
			o.log_format = optarg;
			break;
		case O_SYSTEMD:
		case O_ROOTLESS:
			break;
		case O_DEBUG:
			debug = true;
			break;
		case 'v':
		case O_VERSION:
			printf("vmm-oci version %s\nspec: %s\n", VMM_VERSION, OCI_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			vmm_log("unknown global option '%s': see vmm-oci --help", argv[optind - 1]);
			return 1;
		}
	}
	struct verr e = {0};
	if (o.log_path &&
	    log_open(o.log_path, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, fmt, &e) < 0) {
		fprintf(stderr, "vmm-oci: %s\n", e.msg);
		return 1;
	}
	if (optind >= argc) {
		usage(stderr);
		return 1;
	}
	const char *cmd = argv[optind];
	int sub_argc = argc - optind;
	char **sub_argv = argv + optind;

	enum { S_BUNDLE = 300, S_PIDFILE, S_CONSOLE, S_PRESERVE, S_NOOP, S_PROCESS, S_FORMAT };
	static const struct option sub[] = {
	    {"bundle", required_argument, NULL, 'b'},
	    {"pid-file", required_argument, NULL, S_PIDFILE},
	    {"console-socket", required_argument, NULL, S_CONSOLE},
	    {"preserve-fds", required_argument, NULL, S_PRESERVE},
	    {"no-pivot", no_argument, NULL, S_NOOP},
	    {"no-new-keyring", no_argument, NULL, S_NOOP},
	    {"force", no_argument, NULL, 'f'},
	    {"all", no_argument, NULL, 'a'},
	    {"process", required_argument, NULL, 'p'},
	    {"detach", no_argument, NULL, 'd'},
	    {"tty", no_argument, NULL, 't'},
	    {"format", required_argument, NULL, S_FORMAT},
	    {0},
	};
	optind = 1;
	while ((opt = getopt_long(sub_argc, sub_argv, "+b:fap:dt", sub, NULL)) != -1) {
		switch (opt) {
		case 'b':
			o.bundle = optarg;
			break;
		case S_PIDFILE:
			o.pid_file = optarg;
			break;
		case S_CONSOLE:
			o.console_socket = optarg;
			break;
		case S_PRESERVE:
			if (strcmp(optarg, "0") != 0)
				vmm_warn(
				    "--preserve-fds %s: fds cannot cross into the VM; they are "
				    "closed",
				    optarg);
			break;
		case S_NOOP:
			break;
		case 'f':
			o.force = true;
			break;
		case 'a':
			o.all = true;
			break;
		case 'p':
			o.process = optarg;
			break;
		case 'd':
			o.detach = true;
			break;
		case 't':
			o.tty = true;
			break;
		case S_FORMAT:
			o.format = optarg;
			break;
		default:
			vmm_log("%s: unknown option '%s': see vmm-oci --help", cmd,
				sub_argv[optind - 1]);
			return 1;
		}
	}
	const char *id = optind < sub_argc ? sub_argv[optind] : NULL;
	if (strcmp(cmd, "features") == 0)
		return cmd_features();
	if (!id) {
		vmm_log("%s: give the container id", cmd);
		return 1;
	}
	int r;
	if (strcmp(cmd, "create") == 0 || strcmp(cmd, "run") == 0)
		r = strcmp(cmd, "run") == 0
			? verr_set(&e, -EOPNOTSUPP, "run: use create, then start")
			: cmd_create(id, &o, &e);
	else if (strcmp(cmd, "start") == 0)
		r = cmd_start(id, o.log_path, &e);
	else if (strcmp(cmd, "state") == 0)
		r = cmd_state(id, &e);
	else if (strcmp(cmd, "kill") == 0)
		r = cmd_kill(id, optind + 1 < sub_argc ? sub_argv[optind + 1] : NULL, &e);
	else if (strcmp(cmd, "delete") == 0)
		r = cmd_delete(id, o.force, &e);
	else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
		r = cmd_pause(id, strcmp(cmd, "pause") == 0, &e);
	else if (strcmp(cmd, "ps") == 0)
		r = cmd_ps(id, o.format, &e);
	else if (strcmp(cmd, "exec") == 0)
		r = cmd_exec(id, &o, sub_argc - optind - 1, sub_argv + optind + 1, &e);
	else
		r = verr_set(&e, -EINVAL, "unknown command '%s': see vmm-oci --help", cmd);
	if (r < 0) {
		vmm_log("%s", e.msg);
		if (log_fd() != STDERR_FILENO) /* the engine shows stderr, or reads the log */
			fprintf(stderr, "vmm-oci: %s\n", e.msg);
		return 1;
	}
	return 0;
}
