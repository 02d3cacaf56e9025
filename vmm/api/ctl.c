/* `vmm ctl`: sends one request to a running vmm's control socket (docs/api.md) and prints the
 * reply. */
#include "vmm/api/ctl.h"
#include "vmm/api/api_proto.h"
#include "vmm/log.h"
#include "vmm/snapshot/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTL_FAIL	  125
#define CTL_TIMEOUT_MS	  30000 /* every op but stop, which waits for the VM to end */
#define CTL_MAX_TIMEOUT_S (API_STOP_TIMEOUT_MAX_MS / 1000)
#define CTL_COMMANDS	  "state, start, pause, resume, stop, signal, metrics, snapshot"
#define CTL_SNAPSHOT_MS	  600000 /* snapshot: the whole of guest RAM written and synced */

void ctl_usage(FILE *f)
{
	fprintf(f,
		"Usage: vmm ctl --api-sock PATH COMMAND\n"
		"Sends one request to the control socket of a running vmm (its --api-sock).\n"
		"Commands:\n"
		"  state                  print the VM's state, devices and configuration (JSON)\n"
		"  start                  start a VM that was created without starting\n"
		"  pause                  pause the vCPUs\n"
		"  resume                 resume a paused VM\n"
		"  stop [--timeout SECONDS]\n"
		"                         ask the guest to shut down, forced after SECONDS\n"
		"                         (0-%u, default %u); returns once the VM has stopped\n"
		"  signal SIGNAL          send a signal (1-%d, or a name: TERM, SIGKILL...)\n"
		"                         to the container's main process\n"
		"  metrics                print the counters (JSON)\n"
		"  snapshot DIR           write the paused VM's snapshot into DIR (made if\n"
		"                         missing): DIR/state and DIR/memory (docs/snapshot.md)\n"
		"Exit status: 0 on success; 125 when the request failed (one line on stderr).\n",
		CTL_MAX_TIMEOUT_S, API_STOP_TIMEOUT_DEFAULT_MS / 1000, API_SIGNAL_MAX);
}

static const struct {
	const char *name;
	int sig;
} signals[] = {
    {"HUP", SIGHUP},	   {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},	   {"ABRT", SIGABRT}, {"IOT", SIGIOT},	     {"BUS", SIGBUS},
    {"FPE", SIGFPE},	   {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},	   {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},	   {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},	   {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

/* A whole number in [0, max] written in decimal digits only; -1 otherwise. */
static long parse_num(const char *s, long max)
{
	if (!*s || strlen(s) > 9)
		return -1;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= max ? v : -1;
}

int ctl_parse_signal(const char *s)
{
	if (*s >= '0' && *s <= '9') {
		long v = parse_num(s, API_SIGNAL_MAX);
		return v >= 1 ? (int)v : -1;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcasecmp(s, signals[i].name) == 0)
			return signals[i].sig;
	return -1;
}

/* argv[*i] is NAME or NAME=VALUE: 1 with *value set (the next argument for NAME alone), 0 if
 * argv[*i] is another word, -1 after a line when the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*value = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		vmm_log("ctl: option '%s' needs a value: see vmm ctl --help", name);
		return -1;
	}
	*value = argv[++*i];
	return 1;
}

/* A reply with "ok": false: its error said in one line (the op once) and the reply put. */
static bool reply_failed(struct json_object *reply, const char *cmd)
{
	struct json_object *ok, *err;
	json_object_object_get_ex(reply, "ok", &ok);
	if (json_object_get_boolean(ok))
		return false;
	json_object_object_get_ex(reply, "error", &err);
	/* the server's lines often start with the op already: say it once */
	const char *msg = json_object_get_string(err);
	size_t n = strlen(cmd);
	if (strncmp(msg, cmd, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		msg += n + 2;
	vmm_log("ctl: %s: %s", cmd, msg);
	json_object_put(reply);
	return true;
}

/* The reply's integer key, or -1 */
static long long reply_int(struct json_object *reply, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(reply, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return (long long)json_object_get_int64(v);
}

/* snapshot DIR: the two files are made in DIR under temporary names and their descriptors sent
 * with the request (vmm opens nothing: it may be jailed or in another root). Once vmm has
 * written them, the state file is read back whole (header, every section and its checksum) and
 * the memory file's size checked; then an old DIR/state goes first, the memory file takes its
 * name and the state file last, so that a DIR/state is always next to its own memory. On any
 * failure the temporary files are removed. */
static int ctl_snapshot(int fd, const struct api_request *req, const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		vmm_log("ctl: snapshot: cannot make the directory %s: %s", dir, strerror(errno));
		return CTL_FAIL;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		vmm_log("ctl: snapshot: %s: %s: give a directory", dir, strerror(errno));
		return CTL_FAIL;
	}
	static const char *const tmp[2] = {"state.tmp", "memory.tmp"};
	int fds[2] = {-1, -1}, st = CTL_FAIL;
	struct json_object *reply = NULL;
	struct verr e = {0};
	for (int i = 0; i < 2; i++) {
		fds[i] = openat(dfd, tmp[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
				0600);
		if (fds[i] < 0) {
			vmm_log("ctl: snapshot: cannot create %s/%s: %s", dir, tmp[i],
				strerror(errno));
			goto out;
		}
	}
	if (api_client_call_fds(fd, req, fds, 2, CTL_SNAPSHOT_MS, &reply, &e) < 0) {
		vmm_log("ctl: snapshot: %s", e.msg);
		goto out;
	}
	if (reply_failed(reply, "snapshot")) {
		reply = NULL;
		goto out;
	}
	long long mem = reply_int(reply, "memory_bytes"),
		  written = reply_int(reply, "memory_written");
	struct stat ms;
	if (mem < 0 || written < 0 || fstat(fds[1], &ms) < 0 || ms.st_size != mem) {
		vmm_log("ctl: snapshot: %s/%s is not the %lld bytes vmm reported: the snapshot is "
			"not usable (is this vmm's socket?)",
			dir, tmp[1], mem);
		goto out;
	}
	uint8_t *data = NULL;
	struct snap_file f;
	if (snap_read_at(dfd, tmp[0], &data, &f, &e) < 0) {
		vmm_log("ctl: snapshot: what vmm wrote does not read back: %s", e.msg);
		goto out;
	}
	unsigned nsec = f.nsections;
	snap_file_free(&f);
	free(data);
	if ((unlinkat(dfd, "state", 0) < 0 && errno != ENOENT) ||
	    renameat(dfd, tmp[1], dfd, "memory") < 0 || renameat(dfd, tmp[0], dfd, "state") < 0 ||
	    fsync(dfd) < 0) {
		vmm_log("ctl: snapshot: cannot give %s the files their names: %s", dir,
			strerror(errno));
		goto out;
	}
	struct json_object *ms_v;
	double took = json_object_object_get_ex(reply, "snapshot_ms", &ms_v)
			  ? json_object_get_double(ms_v)
			  : 0;
	printf("snapshot: %s/state (%u sections, %lld bytes) and %s/memory (%lld MiB of guest "
	       "RAM, %lld MiB not zero), written by vmm in %.0f ms\n",
	       dir, nsec, reply_int(reply, "state_bytes"), dir, mem >> 20, written >> 20, took);
	st = fflush(stdout) == 0 ? 0 : CTL_FAIL;
out:
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		if (st)
			unlinkat(dfd, tmp[i], 0);
	}
	json_object_put(reply);
	close(dfd);
	return st;
}

int ctl_main(int argc, char **argv)
{
	const char *sock = NULL, *timeout = NULL, *words[2] = {NULL, NULL};
	int nwords = 0;
	bool options_end = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int r;
		if (!options_end && a[0] == '-' && a[1] != '\0') {
			if (!strcmp(a, "--")) {
				options_end = true;
				continue;
			}
			if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
				ctl_usage(stdout);
				return 0;
			}
			if ((r = opt_value(argc, argv, &i, "--api-sock", &v)) != 0) {
				if (r < 0)
					return CTL_FAIL;
				if (sock) {
					vmm_log("ctl: --api-sock given twice: give one socket");
					return CTL_FAIL;
				}
				if (!*v) {
					vmm_log(
					    "ctl: --api-sock: the path is empty: give the socket "
					    "of the running vmm (its --api-sock)");
					return CTL_FAIL;
				}
				sock = v;
				continue;
			}
			if ((r = opt_value(argc, argv, &i, "--timeout", &v)) != 0) {
				if (r < 0)
					return CTL_FAIL;
				timeout = v;
				continue;
			}
			vmm_log("ctl: unknown option '%s': see vmm ctl --help", a);
			return CTL_FAIL;
		}
		if (nwords == 2) {
			vmm_log("ctl: unexpected argument '%s': give one command (see vmm ctl "
				"--help)",
				a);
			return CTL_FAIL;
		}
		words[nwords++] = a;
	}
	if (!words[0]) {
		vmm_log("ctl: no command: give one of " CTL_COMMANDS);
		return CTL_FAIL;
	}

	struct api_request req = {0};
	const char *cmd = words[0];
	bool known = false;
	for (int op = 0; op < API_OP_COUNT; op++)
		if (op != API_OP_EXEC && !strcmp(cmd, api_op_name((enum api_op)op))) {
			req.op = (enum api_op)op;
			known = true;
		}
	if (!strcmp(cmd, "exec")) {
		vmm_log("ctl: exec is a command of its own: vmm exec --api-sock PATH -- CMD "
			"[ARGS...]");
		return CTL_FAIL;
	}
	if (!known) {
		vmm_log("ctl: unknown command '%s': give one of " CTL_COMMANDS, cmd);
		return CTL_FAIL;
	}
	if (req.op == API_OP_SIGNAL) {
		if (!words[1]) {
			vmm_log("ctl: signal needs a signal: a number from 1 to %d or a name such "
				"as TERM",
				API_SIGNAL_MAX);
			return CTL_FAIL;
		}
		req.signal = ctl_parse_signal(words[1]);
		if (req.signal < 0) {
			vmm_log("ctl: signal: '%s' is not a signal: give a number from 1 to %d or "
				"a name such as TERM, INT, KILL, HUP",
				words[1], API_SIGNAL_MAX);
			return CTL_FAIL;
		}
	} else if (req.op == API_OP_SNAPSHOT) {
		if (!words[1] || !*words[1]) {
			vmm_log("ctl: snapshot needs a directory: vmm ctl --api-sock PATH snapshot "
				"DIR");
			return CTL_FAIL;
		}
	} else if (words[1]) {
		vmm_log("ctl: %s takes no argument: drop '%s'", cmd, words[1]);
		return CTL_FAIL;
	}
	if (timeout && req.op != API_OP_STOP) {
		vmm_log("ctl: --timeout is for stop only (how long the guest may take to shut "
			"down)");
		return CTL_FAIL;
	}
	if (req.op == API_OP_STOP) {
		req.timeout_ms = API_STOP_TIMEOUT_DEFAULT_MS;
		if (timeout) {
			long s = parse_num(timeout, CTL_MAX_TIMEOUT_S);
			if (s < 0) {
				vmm_log("ctl: --timeout: '%s' is not a number of seconds from 0 to "
					"%u",
					timeout, CTL_MAX_TIMEOUT_S);
				return CTL_FAIL;
			}
			req.timeout_ms = (uint32_t)s * 1000;
		}
	}
	if (!sock) {
		vmm_log("ctl: no --api-sock PATH: give the socket of the running vmm (its "
			"--api-sock)");
		return CTL_FAIL;
	}

	struct verr e = {0};
	int fd = api_client_connect(sock, &e);
	if (fd < 0) {
		vmm_log("ctl: %s: %s", cmd, e.msg);
		return CTL_FAIL;
	}
	if (req.op == API_OP_SNAPSHOT) {
		int st = ctl_snapshot(fd, &req, words[1]);
		close(fd);
		return st;
	}
	struct json_object *reply;
	int r = api_client_call(fd, &req, req.op == API_OP_STOP ? -1 : CTL_TIMEOUT_MS, &reply, &e);
	close(fd);
	if (r < 0) {
		vmm_log("ctl: %s: %s", cmd, e.msg);
		return CTL_FAIL;
	}
	if (reply_failed(reply, cmd))
		return CTL_FAIL;
	int status = 0;
	if (req.op == API_OP_STATE || req.op == API_OP_METRICS) {
		json_object_object_del(reply, "v");
		json_object_object_del(reply, "ok");
		const char *s = json_object_to_json_string_ext(
		    reply, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
			       JSON_C_TO_STRING_NOSLASHESCAPE);
		if (!s || printf("%s\n", s) < 0 || fflush(stdout) != 0) {
			vmm_log("ctl: %s: cannot write the reply to stdout: %s", cmd,
				s ? strerror(errno) : "out of memory");
			status = CTL_FAIL;
		}
	}
	json_object_put(reply);
	return status;
}
