/* vmm: run a container in a KVM micro-VM, or boot a Linux kernel. Parses options, builds the VM
 * in order, runs it, and exits with the container's (or the guest's) status. `vmm exec` runs a
 * second process in a running container through its --api-sock. */
#include "vmm/log.h"
#include "vmm/options.h"
#include "vmm/session.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int exec_main(int argc, char **argv)
{
	struct vmm_options o;
	int r = options_parse_exec(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : VMM_EXIT_FAILURE;
	vmm_verbose = o.verbose;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(o.api_sock) >= sizeof(sa.sun_path)) {
		vmm_log("exec: --api-sock %s: the path is too long for a Unix socket", o.api_sock);
		return VMM_EXIT_FAILURE;
	}
	strcpy(sa.sun_path, o.api_sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		vmm_log("exec: cannot connect to --api-sock %s: %s: is the container running with "
			"that --api-sock?",
			o.api_sock, strerror(errno));
		return VMM_EXIT_FAILURE;
	}
	struct session s;
	struct session_cmd cmd = {
	    .argv = o.cmd,
	    .argc = o.ncmd,
	    .env = o.env,
	    .envc = o.nenv,
	    .cwd = o.workdir,
	    .uid = o.uid,
	    .gid = o.gid,
	    .tty = o.tty,
	};
	struct verr e = {0};
	if (session_init(&s, &cmd, &e) < 0) {
		vmm_log("%s", e.msg);
		close(fd);
		return VMM_EXIT_FAILURE;
	}
	int status = session_run(&s, fd);
	session_destroy(&s);
	return status;
}

int main(int argc, char **argv)
{
	struct timespec t_start;
	clock_gettime(CLOCK_MONOTONIC, &t_start);

	if (argc > 1 && strcmp(argv[1], "exec") == 0)
		return exec_main(argc - 1, argv + 1);

	struct vmm_options o;
	int r = options_parse(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : VMM_EXIT_FAILURE;
	vmm_verbose = o.verbose;

	static struct vm vm;
	struct verr e = {0};
	r = vm_create(&vm, &o, &t_start, &e);
	if (r < 0) {
		vmm_log("%s", e.msg);
		vm_destroy(&vm);
		return VMM_EXIT_FAILURE;
	}
	int status = vm_run(&vm);
	vm_destroy(&vm);
	return status;
}
