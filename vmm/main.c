/* vmm: run a container in a KVM micro-VM, or boot a Linux kernel. Reads the machine description
 * (flags, --config), builds the VM, runs it (or waits for `start` with --paused, in the
 * background with --detach), and exits with the container's (or the guest's) status.
 * `vmm exec` runs a second process in a running container and `vmm ctl` drives a VM, both
 * through its control API (--api-sock, docs/api.md). */
#include "vmm/api/api_proto.h"
#include "vmm/api/ctl.h"
#include "vmm/log.h"
#include "vmm/config/options.h"
#include "vmm/runtime_stdio.h"
#include "vmm/session.h"
#include "vmm/vm.h"
#include "vmm/volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int exec_main(int argc, char **argv)
{
	static struct vm_config c;
	config_init(&c);
	struct verr e = {0};
	int r = options_parse_exec(argc, argv, &c, &e);
	if (r != 0) {
		if (r < 0)
			vmm_log("%s", e.msg);
		config_free(&c);
		return r > 0 ? 0 : VMM_EXIT_FAILURE;
	}
	vmm_verbose = c.verbose;
	/* Only stdio is the process's: what else came with us (vmm-oci's --process file on fd 3,
	 * an engine's stray fds) is closed once the options are read. */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	int status = VMM_EXIT_FAILURE;
	int fd = api_client_connect(c.api_sock, &e);
	if (fd < 0) {
		vmm_log("exec: %s", e.msg);
		goto out;
	}
	/* The API's exec: once it says ok, the connection carries the agent protocol. */
	struct api_request rq = {.op = API_OP_EXEC};
	json_object *reply = NULL;
	if (api_client_call(fd, &rq, 30000, &reply, &e) < 0) {
		vmm_log("exec: %s", e.msg);
		close(fd);
		goto out;
	}
	json_object *ok, *err;
	if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
		vmm_log("exec: %s", json_object_object_get_ex(reply, "error", &err)
					? json_object_get_string(err)
					: "the VM refused the request");
		json_object_put(reply);
		close(fd);
		goto out;
	}
	json_object_put(reply);
	struct session s;
	const int stdio[3] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
	struct session_cmd cmd = session_cmd_of(&c.process, stdio);
	if (session_init(&s, &cmd, &e) < 0) {
		vmm_log("%s", e.msg);
		close(fd);
		goto out;
	}
	status = session_run(&s, fd);
	session_destroy(&s);
out:
	config_free(&c);
	return status;
}

/* The VM is ready for clients (its pid file written, the API listening): --detach's parent may
 * exit now. */
static void on_ready(void *opaque, int status)
{
	detach_report(opaque, status);
}

/* --console-socket: the process runs on a new pty whose master goes to the engine. */
static int console_socket(struct vm_config *c, struct verr *e)
{
	int slave;
	int r = console_socket_send_pty(c->console_socket, &slave, e);
	if (r < 0)
		return r;
	c->stdio[0] = c->stdio[1] = c->stdio[2] = slave;
	/* The caller's stdio is not the container's then: vmm lets go of it. The containerd shim
	 * runs create with its stdout and stderr on a pipe that it reads to its end, so a VM that
	 * held them would hang `ctr run -t` until the container exits. fd 2 stays for vmm's
	 * messages when they have no file of their own (no --log). With a log file it goes to
	 * /dev/null, or to the pty when the log is JSON lines (the console goes to stderr then). */
	bool log_file = c->log_path && strcmp(c->log_path, "-") != 0;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    (log_file && dup2(c->log_format == LOG_FORMAT_JSON ? slave : null, STDERR_FILENO) < 0))
		vmm_warn("--console-socket: cannot let go of the caller's stdio: %s (an engine "
			 "that reads it to its end waits for the container)",
			 strerror(errno));
	if (null >= 0)
		close(null);
	/* Window size changes on the master reach vmm as SIGWINCH when the pty is its
	 * controlling terminal, which takes a session of its own (always so with --detach). */
	if (getsid(0) != getpid())
		setsid();
	if (stdio_take_ctty(slave) < 0)
		vmm_warn("--console-socket: the pty cannot be vmm's controlling terminal (vmm "
			 "leads a process group): window size changes will not be followed; "
			 "run vmm with --detach or from a process that is not a group leader");
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec t_start;
	clock_gettime(CLOCK_MONOTONIC, &t_start);

	if (argc > 1 && strcmp(argv[1], "exec") == 0)
		return exec_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);

	static struct vm_config c;
	config_init(&c);
	struct verr e = {0};
	int r = options_parse(argc, argv, &c, &e);
	if (r == 0 || c.log_path) {
		struct verr le = {0};
		if (log_open(c.log_path, c.log_level, c.log_format, &le) < 0) {
			vmm_log("%s", le.msg);
			return VMM_EXIT_FAILURE;
		}
	}
	if (r != 0) {
		if (r < 0)
			vmm_log("%s", e.msg);
		return r > 0 ? 0 : VMM_EXIT_FAILURE;
	}
	vmm_verbose = vmm_verbose || c.verbose;

	/* KVM ties a VM to the process that made it: --detach forks before anything exists. */
	static struct detach detach = {.report_fd = -1};
	if (c.detach && detach_begin(&detach, &e) < 0) {
		vmm_log("%s", e.msg);
		return VMM_EXIT_FAILURE;
	}
	if (c.console_socket && console_socket(&c, &e) < 0) {
		vmm_log("%s", e.msg);
		detach_report(&detach, -EIO);
		return VMM_EXIT_FAILURE;
	}

	/* --volume: the staging share, in this process (the one the VM runs in), before vm_create
	 * creates its device and before any thread exists. */
	if (c.nvolumes && volumes_stage(&c, &e) < 0) {
		vmm_log("%s", e.msg);
		detach_report(&detach, -EPERM);
		return VMM_EXIT_FAILURE;
	}

	static struct vm vm;
	r = vm_create(&vm, &c, &t_start, &e);
	if (r < 0) {
		vmm_log("%s", e.msg);
		detach_report(&detach, r);
		vm_destroy(&vm);
		return VMM_EXIT_FAILURE;
	}
	vm.on_ready = on_ready;
	vm.ready_opaque = &detach;
	int status = vm_run(&vm);
	if (c.metrics_path)
		vm_write_metrics(&vm);
	vm_destroy(&vm);
	config_free(&c);
	return status;
}
