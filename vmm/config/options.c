/* The command line of `vmm`, `vmm exec`: each flag goes through the machine description's
 * setters (vmm/config/config.c), which check it and name the flag in their one-line errors. */
#include "vmm/config/options.h"
#include "vmm/config/device_table.h"
#include "vmm/log.h"
#include "vmm/runtime_stdio.h"
#include "vmm/snapshot/vm_snapshot.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void options_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vmm --rootfs IMG [options] [-- CMD [ARGS...]]   run a container\n"
	    "       vmm exec --api-sock PATH [--process FILE] [--env, --workdir, --user, --tty]\n"
	    "                [-- CMD [ARGS...]]   run one more process in the container; FILE\n"
	    "                holds its settings as the description's \"process\" (JSON)\n"
	    "       vmm ctl --api-sock PATH state|start|pause|resume|stop|signal N|metrics\n"
	    "       vmm --kernel PATH --initrd CPIO [options]       boot a kernel and initramfs\n"
	    "A container: a KVM micro-VM whose built-in agent mounts IMG (read-only, with a\n"
	    "tmpfs overlay) as root, runs CMD (default /bin/sh) with vmm's stdin/stdout/stderr\n"
	    "and exits with its status. Otherwise the serial console is vmm's stdin/stdout.\n"
	    "\n"
	    "  -k, --kernel PATH    vmlinux with a PVH entry note, or a bzImage (default:\n"
	    "                       $VMM_KERNEL, else the newest kernel built by\n"
	    "                       kernel-config/build.sh in ~/.cache/vmm/kernel/)\n"
	    "  -i, --initrd PATH    initramfs (cpio) to hand the kernel\n"
	    "  -c, --cmdline STR    appended to the default kernel command line\n"
	    "                       (console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 quiet);\n"
	    "                       words after ' -- ' go to the guest's init as arguments\n"
	    "  -n, --cpus N         vCPUs, 1-%u (default 1)\n"
	    "  -m, --memory MIB     guest RAM in MiB, %llu-%llu (default %llu)\n"
	    "      --boot-timer     print the time from vmm start to the guest init's\n"
	    "                       boot-timer write (port 0x440)\n"
	    "      --rootfs IMG     the first virtio-blk disk (/dev/vda): a raw image file or\n"
	    "                       block device, read-write\n"
	    "      --rootfs DIR     a container's root from a directory: a virtio-fs share\n"
	    "                       (tag vmm-root), read-write into DIR, no overlay\n"
	    "      --disk path=IMG[,ro][,id=SERIAL]\n"
	    "                       one more virtio-blk disk (vdb, vdc...; up to %u)\n"
	    "      --net tap=NAME[,mac=MAC]\n"
	    "                       a virtio-net device on the TAP device NAME (up to %u)\n"
	    "      --vsock cid=N,uds=PATH\n"
	    "                       a virtio-vsock device for guest CID N; vmm listens on\n"
	    "                       the Unix socket PATH (host -> guest: connect, write\n"
	    "                       \"CONNECT <port>\\n\", read \"OK <port>\\n\"); guest -> host\n"
	    "                       port P: vmm connects to PATH_P (Firecracker's scheme)\n"
	    "      --rng            a virtio-rng device (the guest's /dev/hwrng), fed from\n"
	    "                       the host's getrandom()\n"
	    "      --share tag=NAME,path=DIR[,ro][,cache=none|auto|always]\n"
	    "                       share the host directory DIR over virtio-fs (up to %u);\n"
	    "                       the guest mounts it: mount -t virtiofs NAME /mnt\n"
	    "      --volume HOST:GUEST[:ro]\n"
	    "                       a host directory or file at GUEST in the container,\n"
	    "                       read-write into HOST or read-only (repeatable, up to\n"
	    "                       %u; one virtio-fs device for all; needs root)\n"
	    "      --tmpfs GUEST[:OPT,...]\n"
	    "                       a new tmpfs at GUEST in the container; OPT: ro,\n"
	    "                       mode=OCTAL (default 1777), size=MIB (default: half\n"
	    "                       the RAM); repeatable, counted with --volume; needs root\n"
	    "Container options:\n"
	    "  -e, --env KEY=VALUE  set an environment variable (repeatable; PATH, HOME,\n"
	    "                       TERM and HOSTNAME have defaults)\n"
	    "  -w, --workdir DIR    the process's working directory (default /)\n"
	    "  -u, --user UID[:GID] numeric user and group to run as (default 0:0)\n"
	    "      --hostname NAME  the container's host name (default vmm)\n"
	    "      --ulimit TYPE=SOFT[:HARD]\n"
	    "                       a resource limit (nofile, nproc, core...; 'unlimited')\n"
	    "      --cap-drop CAP   drop a capability (CAP_NET_RAW..., or ALL) from root's\n"
	    "                       full set (repeatable; the rest of the process settings\n"
	    "                       are JSON only: docs/config.md)\n"
	    "  -t, --tty            run the process on a pseudo-terminal (the default when\n"
	    "                       stdin is a terminal)\n"
	    "      --rootfs-rw      mount --rootfs read-write instead of under an overlay\n"
	    "      --rootfs-readonly\n"
	    "                       make the container's root read-only (no overlay; the\n"
	    "                       mounts on it, --volume and --tmpfs, keep their modes)\n"
	    "      --enter-rootfs   with --rootfs DIR: vmm itself moves into a mount namespace\n"
	    "                       rooted at DIR, the volumes at their guest paths, so tools\n"
	    "                       that join it (podman cp) see the container's files\n"
	    "      --ip ADDR/PREFIX, --gateway ADDR\n"
	    "                       configure the first --net interface (eth0) in the guest\n"
	    "      --ip6 ADDR/PREFIX, --gateway6 ADDR\n"
	    "                       and its IPv6 address and default route\n"
	    "      --route NET/PREFIX[,via=ADDR]\n"
	    "                       another route for eth0 (IPv4 or IPv6), through ADDR or\n"
	    "                       on the link itself (repeatable, at most 8)\n"
	    "      --console-socket PATH\n"
	    "                       run the process on a new pty and send its master over\n"
	    "                       the Unix socket PATH (the OCI console socket)\n"
	    "      --stdio-fds IN,OUT,ERR\n"
	    "                       the process's stdio: these inherited fds (default 0,1,2)\n"
	    "Control:\n"
	    "      --config FILE    the machine description as JSON (docs/config.md); flags\n"
	    "                       after it override its values\n"
	    "      --restore DIR    the VM of the snapshot in DIR (vmm ctl snapshot DIR), on\n"
	    "                       from where it was paused: its description as --config\n"
	    "                       gives one (flags after it override the control ones)\n"
	    "      --api-sock PATH  the control API on a Unix socket (docs/api.md): vmm ctl,\n"
	    "                       vmm exec\n"
	    "      --paused         create the VM and wait for `vmm ctl ... start`\n"
	    "      --detach         return once the VM is created (vmm goes on in the\n"
	    "                       background); --pid-file PATH names its pid\n"
	    "      --metrics FILE   write the metrics (JSON) there when vmm exits\n"
	    "      --log FILE       log there instead of stderr; --log-level\n"
	    "                       error|warn|info|debug (default info); --log-format\n"
	    "                       text|json\n"
	    "\n"
	    "      --seccomp=on|off seccomp allow-lists per thread (default on; off only\n"
	    "                       to debug a forbidden system call)\n"
	    "  -v, --verbose        debug output\n"
	    "  -h, --help           this help\n"
	    "      --version        print the version\n"
	    "\n"
	    "Devices: 8250 serial (ttyS0, port 0x3f8, IRQ 4), i8042 reset line (port 0x64),\n"
	    "guest-signal port (0x440: boot timer and exit status); virtio devices on\n"
	    "virtio-mmio from 0xd0000000 (4 KiB apart, IRQ 5 up), announced on the kernel\n"
	    "command line.\n"
	    "Exit status: a container's process status (128+N when signal N killed it; 127:\n"
	    "command not found); else the guest init's announced status, 0 when the guest\n"
	    "reboots by itself; 125 when vmm or the guest kernel failed, 128+N when signal N\n"
	    "stopped vmm (a container forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT instead).\n",
	    VMM_MAX_CPUS, VMM_MIN_MEMORY_MIB, VMM_MAX_MEMORY_MIB, VMM_DEFAULT_MEMORY_MIB,
	    VMM_MAX_DISKS, VMM_MAX_NETS, VMM_MAX_SHARES, VMM_MAX_VOLUMES);
}

enum {
	OPT_BOOT_TIMER = 256,
	OPT_VERSION,
	OPT_RNG,
	OPT_ROOTFS,
	OPT_DISK,
	OPT_NET,
	OPT_VSOCK,
	OPT_SHARE,
	OPT_VOLUME,
	OPT_TMPFS,
	OPT_SECCOMP,
	OPT_HOSTNAME,
	OPT_ROOTFS_RW,
	OPT_ENTER_ROOTFS,
	OPT_ROOTFS_READONLY,
	OPT_API_SOCK,
	OPT_PROCESS,
	OPT_IP,
	OPT_GATEWAY,
	OPT_IP6,
	OPT_GATEWAY6,
	OPT_ROUTE,
	OPT_CONFIG,
	OPT_RESTORE,
	OPT_PAUSED,
	OPT_DETACH,
	OPT_PID_FILE,
	OPT_STDIO_FDS,
	OPT_CONSOLE_SOCKET,
	OPT_METRICS,
	OPT_LOG,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_ULIMIT,
	OPT_CAP_DROP,
};

static int number(const char *flag, const char *arg, uint64_t min, uint64_t max, uint64_t *v,
		  const char *what, struct verr *e)
{
	int r = parse_u64(arg, min, max, v);
	if (r == -EINVAL)
		return verr_set(e, -EINVAL, "%s: '%s' is not a number: give %s", flag, arg, what);
	if (r == -ERANGE)
		return verr_set(e, -EINVAL, "%s: '%s' is out of range: give %s", flag, arg, what);
	return 0;
}

/* "UID[:GID]" */
static int user_opt(struct vm_config *c, const char *arg, struct verr *e)
{
	char uid[16];
	const char *colon = strchr(arg, ':');
	size_t ulen = colon ? (size_t)(colon - arg) : strlen(arg);
	uint64_t u = 0, g = 0;
	bool ok = ulen < sizeof(uid);
	if (ok) {
		memcpy(uid, arg, ulen);
		uid[ulen] = 0;
	}
	ok = ok && parse_u64(uid, 0, UINT32_MAX - 1, &u) == 0 &&
	     (!colon || parse_u64(colon + 1, 0, UINT32_MAX - 1, &g) == 0);
	if (!ok)
		return verr_set(e, -EINVAL,
				"--user: '%s' is not UID[:GID] (numbers below 4294967295): write "
				"e.g. --user 1000:1000",
				arg);
	return config_set_user(c, "--user", u, g, e);
}

/* The options a container process takes, shared by vmm and vmm exec. Returns 1 when c is not
 * one of them, 0 when taken, or a negative errno with e set. */
static int process_opt(int opt, const char *arg, struct vm_config *c, struct verr *e)
{
	switch (opt) {
	case 'e':
		return config_add_env(c, "--env", arg, e);
	case 'w':
		return config_set_workdir(c, "--workdir", arg, e);
	case 'u':
		return user_opt(c, arg, e);
	case 't':
		c->process.tty = c->process.tty_given = true;
		return 0;
	case OPT_ULIMIT:
		return config_add_rlimit_spec(c, arg, e);
	case OPT_CAP_DROP:
		return config_drop_cap(c, "--cap-drop", arg, e);
	default:
		return 1;
	}
}

static int take_command(int argc, char **argv, struct vm_config *c, bool required, struct verr *e)
{
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
		return verr_set(e, -EINVAL,
				"unexpected argument '%s': put the container's command after --, "
				"e.g. vmm --rootfs IMG -- /bin/echo hi",
				argv[optind]);
	if (optind < argc)
		return config_set_args(c, "the command after --", &argv[optind],
				       (unsigned)(argc - optind), e);
	if (required)
		return verr_set(
		    e, -EINVAL,
		    "no command given: write vmm exec --api-sock PATH -- CMD [ARGS...]");
	return 0;
}

static int vmm_opt(int opt, const char *arg, struct vm_config *c, struct verr *e)
{
	uint64_t v;
	int r;
	switch (opt) {
	case 'k':
		return config_set_str(c, &c->kernel, "--kernel", arg, e);
	case 'i':
		return config_set_str(c, &c->initrd, "--initrd", arg, e);
	case 'c':
		return config_set_str(c, &c->cmdline, "--cmdline", arg, e);
	case 'n':
		r = number("--cpus", arg, 1, VMM_MAX_CPUS, &v, "a number of vCPUs from 1 to 254",
			   e);
		return r < 0 ? r : config_set_cpus(c, "--cpus", v, e);
	case 'm':
		r = number("--memory", arg, VMM_MIN_MEMORY_MIB, VMM_MAX_MEMORY_MIB, &v,
			   "the guest RAM in MiB, from 32 to 1048576", e);
		return r < 0 ? r : config_set_memory(c, "--memory", v, e);
	case OPT_CONFIG:
		return config_load_json(c, arg, e);
	case OPT_RESTORE:
		if (c->restore_dir)
			return verr_set(e, -EINVAL, "--restore is given twice: give one snapshot");
		if (vm_snapshot_load_description(c, arg, e) < 0)
			return -EINVAL;
		return config_set_str(c, &c->restore_dir, "--restore", arg, e);
	case OPT_HOSTNAME:
		return config_set_hostname(c, "--hostname", arg, e);
	case OPT_ROOTFS_RW:
		c->rootfs_rw = true;
		return 0;
	case OPT_ENTER_ROOTFS:
		c->enter_rootfs = true;
		return 0;
	case OPT_ROOTFS_READONLY:
		c->rootfs_readonly = true;
		return 0;
	case OPT_API_SOCK:
		return config_set_str(c, &c->api_sock, "--api-sock", arg, e);
	case OPT_IP:
		return config_set_ip(c, "--ip", arg, AF_INET, e);
	case OPT_GATEWAY:
		return config_set_gateway(c, "--gateway", arg, AF_INET, e);
	case OPT_IP6:
		return config_set_ip(c, "--ip6", arg, AF_INET6, e);
	case OPT_GATEWAY6:
		return config_set_gateway(c, "--gateway6", arg, AF_INET6, e);
	case OPT_ROUTE: {
		char dst[INET6_ADDRSTRLEN + 8];
		const char *comma = strchr(arg, ',');
		size_t n = comma ? (size_t)(comma - arg) : strlen(arg);
		if (n >= sizeof(dst) ||
		    (comma && (strncmp(comma + 1, "via=", 4) != 0 || !comma[5])))
			return verr_set(e, -EINVAL,
					"--route: '%s' is not NET/PREFIX[,via=ADDR]: write e.g. "
					"10.1.0.0/16,via=10.0.2.1",
					arg);
		memcpy(dst, arg, n);
		dst[n] = 0;
		return config_add_route(c, "--route", dst, comma ? comma + 5 : NULL, e);
	}
	case OPT_BOOT_TIMER:
		c->boot_timer = true;
		return 0;
	case OPT_RNG:
		return config_add_device(c, VM_DEV_RNG, "--rng", "", e);
	case OPT_ROOTFS:
		return config_set_root(c, "--rootfs", arg, e);
	case OPT_DISK:
		return config_add_device(c, VM_DEV_BLK, "--disk", arg, e);
	case OPT_NET:
		return config_add_device(c, VM_DEV_NET, "--net", arg, e);
	case OPT_VSOCK:
		return config_add_device(c, VM_DEV_VSOCK, "--vsock", arg, e);
	case OPT_SHARE:
		return config_add_device(c, VM_DEV_FS, "--share", arg, e);
	case OPT_VOLUME:
		return config_add_volume_spec(c, arg, e);
	case OPT_TMPFS:
		return config_add_tmpfs_spec(c, arg, e);
	case OPT_SECCOMP:
		if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
			return verr_set(e, -EINVAL, "--seccomp: '%s' is not on or off", arg);
		c->seccomp = strcmp(arg, "on") == 0;
		return 0;
	case OPT_PAUSED:
		c->paused = true;
		return 0;
	case OPT_DETACH:
		c->detach = true;
		return 0;
	case OPT_PID_FILE:
		return config_set_str(c, &c->pid_file, "--pid-file", arg, e);
	case OPT_STDIO_FDS: {
		int fds[3];
		int r2 = stdio_fds_parse(arg, fds, e);
		return r2 < 0 ? r2 : config_set_stdio(c, "--stdio-fds", fds, e);
	}
	case OPT_CONSOLE_SOCKET:
		return config_set_str(c, &c->console_socket, "--console-socket", arg, e);
	case OPT_METRICS:
		return config_set_str(c, &c->metrics_path, "--metrics", arg, e);
	case OPT_LOG:
		return config_set_str(c, &c->log_path, "--log", arg, e);
	case OPT_LOG_LEVEL:
		return config_set_log_level(c, "--log-level", arg, e);
	case OPT_LOG_FORMAT:
		return config_set_log_format(c, "--log-format", arg, e);
	case 'v':
		c->verbose = true;
		return 0;
	default:
		return 1;
	}
}

int options_parse(int argc, char **argv, struct vm_config *c, struct verr *e)
{
	static const struct option longopts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"cpus", required_argument, NULL, 'n'},
	    {"memory", required_argument, NULL, 'm'},
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"restore", required_argument, NULL, OPT_RESTORE},
	    {"boot-timer", no_argument, NULL, OPT_BOOT_TIMER},
	    {"rng", no_argument, NULL, OPT_RNG},
	    {"rootfs", required_argument, NULL, OPT_ROOTFS},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"net", required_argument, NULL, OPT_NET},
	    {"vsock", required_argument, NULL, OPT_VSOCK},
	    {"share", required_argument, NULL, OPT_SHARE},
	    {"volume", required_argument, NULL, OPT_VOLUME},
	    {"tmpfs", required_argument, NULL, OPT_TMPFS},
	    {"seccomp", required_argument, NULL, OPT_SECCOMP},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"tty", no_argument, NULL, 't'},
	    {"hostname", required_argument, NULL, OPT_HOSTNAME},
	    {"ulimit", required_argument, NULL, OPT_ULIMIT},
	    {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
	    {"rootfs-rw", no_argument, NULL, OPT_ROOTFS_RW},
	    {"enter-rootfs", no_argument, NULL, OPT_ENTER_ROOTFS},
	    {"rootfs-readonly", no_argument, NULL, OPT_ROOTFS_READONLY},
	    {"api-sock", required_argument, NULL, OPT_API_SOCK},
	    {"ip", required_argument, NULL, OPT_IP},
	    {"gateway", required_argument, NULL, OPT_GATEWAY},
	    {"ip6", required_argument, NULL, OPT_IP6},
	    {"gateway6", required_argument, NULL, OPT_GATEWAY6},
	    {"route", required_argument, NULL, OPT_ROUTE},
	    {"paused", no_argument, NULL, OPT_PAUSED},
	    {"detach", no_argument, NULL, OPT_DETACH},
	    {"pid-file", required_argument, NULL, OPT_PID_FILE},
	    {"stdio-fds", required_argument, NULL, OPT_STDIO_FDS},
	    {"console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"log", required_argument, NULL, OPT_LOG},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {0},
	};
	optind = 1;
	opterr = 0;
	for (;;) {
		int opt = getopt_long(argc, argv, "+:k:i:c:n:m:e:w:u:tvh", longopts, NULL);
		if (opt == -1)
			break;
		int r = process_opt(opt, optarg, c, e);
		if (r == 1)
			r = vmm_opt(opt, optarg, c, e);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		switch (opt) {
		case 'h':
			options_usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("vmm %s\n", VMM_VERSION);
			return 1;
		case ':':
			return verr_set(e, -EINVAL, "option '%s' needs a value: see vmm --help",
					argv[optind - 1]);
		default:
			return verr_set(e, -EINVAL, "unknown option '%s': see vmm --help",
					argv[optind - 1]);
		}
	}
	int r = take_command(argc, argv, c, false, e);
	return r < 0 ? r : config_finish(c, e);
}

int options_parse_exec(int argc, char **argv, struct vm_config *c, struct verr *e)
{
	static const struct option longopts[] = {
	    {"api-sock", required_argument, NULL, OPT_API_SOCK},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"tty", no_argument, NULL, 't'},
	    {"process", required_argument, NULL, OPT_PROCESS},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	bool process_file = false;
	optind = 1;
	opterr = 0;
	for (;;) {
		int opt = getopt_long(argc, argv, "+:e:w:u:tvh", longopts, NULL);
		if (opt == -1)
			break;
		int r = process_opt(opt, optarg, c, e);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		switch (opt) {
		case OPT_API_SOCK:
			r = config_set_str(c, &c->api_sock, "--api-sock", optarg, e);
			if (r < 0)
				return r;
			break;
		case OPT_PROCESS:
			if (process_file)
				return verr_set(e, -EINVAL, "vmm exec: --process given twice");
			process_file = true;
			r = config_load_process_json(c, optarg, e);
			if (r < 0)
				return r;
			break;
		case 'v':
			c->verbose = true;
			break;
		case 'h':
			options_usage(stdout);
			return 1;
		case ':':
			return verr_set(e, -EINVAL, "option '%s' needs a value: see vmm --help",
					argv[optind - 1]);
		default:
			return verr_set(
			    e, -EINVAL,
			    "vmm exec: unknown option '%s': it takes --api-sock, --process, "
			    "--env, --workdir, --user and --tty",
			    argv[optind - 1]);
		}
	}
	/* a command after -- replaces the file's args */
	int r = take_command(argc, argv, c, !c->process.argc, e);
	if (r < 0)
		return r;
	if (!c->api_sock)
		return verr_set(e, -EINVAL,
				"vmm exec: no --api-sock PATH: give the socket of the running vmm "
				"(its --api-sock)");
	/* the process's defaults, as for the main process */
	c->container = true;
	if (!c->process.cwd && !(c->process.cwd = strdup("/")))
		return verr_set(e, -ENOMEM, "out of memory");
	if (!c->process.tty_given && isatty(STDIN_FILENO))
		c->process.tty = true;
	return config_finish_process(c, e);
}
