/* Command-line parsing for `vmm`: every bad value gives one line naming the option and the fix. */
#include "vmm/options.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_vsock.h"
#include "vmm/log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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

void options_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vmm --rootfs IMG [options] [-- CMD [ARGS...]]   run a container\n"
	    "       vmm exec --api-sock PATH [--env, --workdir, --user, --tty] -- CMD [ARGS...]\n"
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
	    "Container options:\n"
	    "  -e, --env KEY=VALUE  set an environment variable (repeatable; PATH, HOME,\n"
	    "                       TERM and HOSTNAME have defaults)\n"
	    "  -w, --workdir DIR    the process's working directory (default /)\n"
	    "  -u, --user UID[:GID] numeric user and group to run as (default 0:0)\n"
	    "      --hostname NAME  the container's host name (default vmm)\n"
	    "  -t, --tty            run the process on a pseudo-terminal (the default when\n"
	    "                       stdin is a terminal)\n"
	    "      --rootfs-rw      mount --rootfs read-write instead of under an overlay\n"
	    "      --ip ADDR/PREFIX, --gateway ADDR\n"
	    "                       configure the first --net interface (eth0) in the guest\n"
	    "      --api-sock PATH  a Unix socket for `vmm exec` (a second process in the\n"
	    "                       running container)\n"
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
	    VMM_MAX_DISKS, VMM_MAX_NETS);
}

const char *options_default_kernel(void)
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

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

enum {
	OPT_BOOT_TIMER = 256,
	OPT_VERSION,
	OPT_RNG,
	OPT_ROOTFS,
	OPT_DISK,
	OPT_NET,
	OPT_VSOCK,
	OPT_SECCOMP,
	OPT_HOSTNAME,
	OPT_ROOTFS_RW,
	OPT_API_SOCK,
	OPT_IP,
	OPT_GATEWAY,
};

/* The options a container process takes, shared by vmm and vmm exec. Returns 1 when c is not
 * one of them, 0 when taken, -EINVAL after one line. */
static int container_opt(int c, const char *arg, struct vmm_options *o)
{
	uint64_t v;
	switch (c) {
	case 'e':
		if (arg[0] == '=' || !strchr(arg, '=') || has_ctl(arg)) {
			vmm_log("--env: '%s' is not KEY=VALUE: write --env NAME=value", arg);
			return -EINVAL;
		}
		if (o->nenv_given == VMM_MAX_ENV) {
			vmm_log("--env: at most %u entries", VMM_MAX_ENV);
			return -EINVAL;
		}
		o->env_given[o->nenv_given++] = (char *)arg;
		return 0;
	case 'w':
		if (arg[0] != '/' || has_ctl(arg) || strlen(arg) > 4095) {
			vmm_log(
			    "--workdir: '%s' is not an absolute path: write e.g. --workdir /app",
			    arg);
			return -EINVAL;
		}
		o->workdir = arg;
		return 0;
	case 'u': {
		char uid[16];
		const char *colon = strchr(arg, ':');
		size_t ulen = colon ? (size_t)(colon - arg) : strlen(arg);
		uint64_t gid = 0;
		bool ok = ulen < sizeof(uid);
		if (ok) {
			memcpy(uid, arg, ulen);
			uid[ulen] = 0;
		}
		ok = ok && parse_u64(uid, 0, UINT32_MAX - 1, &v) == 0 &&
		     (!colon || parse_u64(colon + 1, 0, UINT32_MAX - 1, &gid) == 0);
		if (!ok) {
			vmm_log("--user: '%s' is not UID[:GID] (numbers below 4294967295): write "
				"e.g. --user 1000:1000",
				arg);
			return -EINVAL;
		}
		o->uid = (uint32_t)v;
		o->gid = (uint32_t)gid;
		return 0;
	}
	case 't':
		o->tty = true;
		return 0;
	default:
		return 1;
	}
}

/* Environment defaults (unless --env sets the key) come before the --env entries. */
static void build_env(struct vmm_options *o)
{
	static char home[16], term[] = "TERM=xterm", host[80];
	static char path[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	snprintf(home, sizeof(home), "HOME=%s", o->uid == 0 ? "/root" : "/");
	snprintf(host, sizeof(host), "HOSTNAME=%s", o->hostname ? o->hostname : "vmm");
	char *defaults[] = {path, home, o->tty ? term : NULL, o->hostname ? host : NULL};
	char **env = o->env_buf;
	unsigned n = 0;
	for (size_t d = 0; d < sizeof(defaults) / sizeof(defaults[0]); d++) {
		if (!defaults[d])
			continue;
		size_t klen = (size_t)(strchr(defaults[d], '=') - defaults[d]) + 1;
		bool set = false;
		for (unsigned i = 0; i < o->nenv_given; i++)
			set |= strncmp(o->env_given[i], defaults[d], klen) == 0;
		if (!set)
			env[n++] = defaults[d];
	}
	for (unsigned i = 0; i < o->nenv_given; i++)
		env[n++] = o->env_given[i];
	env[n] = NULL;
	o->env = env;
	o->nenv = n;
}

static int take_command(int argc, char **argv, struct vmm_options *o, bool required)
{
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0) {
		vmm_log("unexpected argument '%s': put the container's command after --, e.g. "
			"vmm --rootfs IMG -- /bin/echo hi",
			argv[optind]);
		return -EINVAL;
	}
	if (optind < argc) {
		o->cmd = &argv[optind];
		o->ncmd = (unsigned)(argc - optind);
		if (!o->cmd[0][0]) {
			vmm_log("the command after -- is empty: give a program name");
			return -EINVAL;
		}
	} else if (required) {
		vmm_log("no command given: write vmm exec --api-sock PATH -- CMD [ARGS...]");
		return -EINVAL;
	}
	return 0;
}

static int check_ipv4(const char *opt, const char *s, bool prefix)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = prefix ? strchr(s, '/') : NULL;
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t p;
	struct in_addr a;
	if (alen >= sizeof(addr) || (prefix && !slash))
		goto bad;
	memcpy(addr, s, alen);
	addr[alen] = 0;
	if (inet_pton(AF_INET, addr, &a) != 1 || (slash && parse_u64(slash + 1, 0, 32, &p) < 0))
		goto bad;
	return 0;
bad:
	vmm_log("%s: '%s' is not an IPv4 address%s: write e.g. %s", opt, s,
		prefix ? " with a /prefix" : "", prefix ? "10.0.2.2/24" : "10.0.2.1");
	return -EINVAL;
}

/* The container's consistency rules and its vmm.* kernel parameters. */
static int check_container(struct vmm_options *o, bool explicit_tty)
{
	if (o->ncmd && o->initrd) {
		vmm_log("a command after -- runs in a container, which boots vmm's own agent: drop "
			"--initrd (or pass your init's arguments in --cmdline)");
		return -EINVAL;
	}
	o->container = o->ncmd || (o->rootfs && !o->initrd);
	bool container_only = o->nenv_given || o->workdir || o->uid || o->gid || o->hostname ||
			      explicit_tty || o->rootfs_rw || o->api_sock || o->ip || o->gw;
	if (!o->container) {
		if (container_only) {
			vmm_log("--env, --workdir, --user, --hostname, --tty, --rootfs-rw, "
				"--api-sock, --ip and --gateway are for containers: give --rootfs "
				"IMG without --initrd");
			return -EINVAL;
		}
		return 0;
	}
	if (!o->rootfs) {
		vmm_log("a container needs a root file system: give --rootfs IMG (vmm-mkrootfs "
			"makes one from a directory)");
		return -EINVAL;
	}
	if ((o->ip || o->gw) && !o->nnets) {
		vmm_log("--ip and --gateway configure the first --net device: add --net tap=NAME");
		return -EINVAL;
	}
	if (o->gw && !o->ip) {
		vmm_log("--gateway needs --ip ADDR/PREFIX for eth0");
		return -EINVAL;
	}
	if ((o->ip && check_ipv4("--ip", o->ip, true) < 0) ||
	    (o->gw && check_ipv4("--gateway", o->gw, false) < 0))
		return -EINVAL;
	if (!o->tty && isatty(STDIN_FILENO))
		o->tty = true;
	if (!o->workdir)
		o->workdir = "/";
	static char *sh[] = {"/bin/sh", NULL};
	if (!o->ncmd) {
		o->cmd = sh;
		o->ncmd = 1;
	}
	int n = snprintf(o->agent_cmdline, sizeof(o->agent_cmdline),
			 "vmm.rootfs=%s vmm.hostname=%s%s%s%s%s", o->rootfs_rw ? "rw" : "ro",
			 o->hostname ? o->hostname : "vmm", o->ip ? " vmm.ip=" : "",
			 o->ip ? o->ip : "", o->gw ? " vmm.gw=" : "", o->gw ? o->gw : "");
	if (n < 0 || (size_t)n >= sizeof(o->agent_cmdline))
		return -EINVAL; /* cannot happen: every part is bounded */
	build_env(o);
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

/* A disk image must exist before anything else is set up (the device checks the rest). */
static int check_image(const char *opt, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		vmm_log("%s: cannot use image '%s': %s", opt, path, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

/* Device options are checked here, before KVM is touched, by the devices' own parsers. */
static int check_devices(const struct vmm_options *o)
{
	static struct virtio_blk_options bo;
	struct virtio_net_opts no;
	struct verr e = {0};
	if (o->rootfs && (virtio_blk_options_path(o->rootfs, false, &bo, &e) < 0 ||
			  check_image("--rootfs", bo.path) < 0)) {
		if (e.msg[0])
			vmm_log("%s", e.msg);
		return -EINVAL;
	}
	for (unsigned i = 0; i < o->ndisks; i++) {
		e.msg[0] = 0;
		if (virtio_blk_parse(o->disks[i], &bo, &e) < 0 ||
		    check_image("--disk", bo.path) < 0) {
			if (e.msg[0])
				vmm_log("%s", e.msg);
			return -EINVAL;
		}
	}
	if (o->vsock) {
		struct virtio_vsock_options vo;
		if (virtio_vsock_parse(o->vsock, &vo, &e) < 0) {
			vmm_log("%s", e.msg);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < o->nnets; i++) {
		if (virtio_net_parse(o->nets[i], &no, &e) < 0) {
			vmm_log("%s", e.msg);
			return -EINVAL;
		}
	}
	return 0;
}

int options_parse(int argc, char **argv, struct vmm_options *o)
{
	static const struct option longopts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"cpus", required_argument, NULL, 'n'},
	    {"memory", required_argument, NULL, 'm'},
	    {"boot-timer", no_argument, NULL, OPT_BOOT_TIMER},
	    {"rng", no_argument, NULL, OPT_RNG},
	    {"rootfs", required_argument, NULL, OPT_ROOTFS},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"net", required_argument, NULL, OPT_NET},
	    {"vsock", required_argument, NULL, OPT_VSOCK},
	    {"seccomp", required_argument, NULL, OPT_SECCOMP},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"tty", no_argument, NULL, 't'},
	    {"hostname", required_argument, NULL, OPT_HOSTNAME},
	    {"rootfs-rw", no_argument, NULL, OPT_ROOTFS_RW},
	    {"api-sock", required_argument, NULL, OPT_API_SOCK},
	    {"ip", required_argument, NULL, OPT_IP},
	    {"gateway", required_argument, NULL, OPT_GATEWAY},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {0},
	};
	memset(o, 0, sizeof(*o));
	o->cpus = 1;
	o->memory_mib = VMM_DEFAULT_MEMORY_MIB;

	optind = 1;
	opterr = 0;
	bool explicit_tty = false;
	for (;;) {
		int c = getopt_long(argc, argv, "+:k:i:c:n:m:e:w:u:tvh", longopts, NULL);
		if (c == -1)
			break;
		uint64_t v;
		int r = container_opt(c, optarg, o);
		if (r <= 0) {
			if (r < 0)
				return r;
			explicit_tty |= c == 't';
			continue;
		}
		switch (c) {
		case OPT_HOSTNAME:
			if (!valid_hostname(optarg)) {
				vmm_log(
				    "--hostname: '%s' is not a host name (1-64 letters, digits, "
				    "'-' and '.')",
				    optarg);
				return -EINVAL;
			}
			o->hostname = optarg;
			break;
		case OPT_ROOTFS_RW:
			o->rootfs_rw = true;
			break;
		case OPT_API_SOCK:
			o->api_sock = optarg;
			break;
		case OPT_IP:
			o->ip = optarg;
			break;
		case OPT_GATEWAY:
			o->gw = optarg;
			break;
		case 'k':
			o->kernel = optarg;
			break;
		case 'i':
			o->initrd = optarg;
			break;
		case 'c':
			o->cmdline = optarg;
			break;
		case 'n':
			r = parse_u64(optarg, 1, VMM_MAX_CPUS, &v);
			if (r < 0) {
				vmm_log("--cpus: '%s' is %s: give a number of vCPUs from 1 to %u",
					optarg, r == -ERANGE ? "out of range" : "not a number",
					VMM_MAX_CPUS);
				return -EINVAL;
			}
			o->cpus = (unsigned)v;
			break;
		case 'm':
			r = parse_u64(optarg, VMM_MIN_MEMORY_MIB, VMM_MAX_MEMORY_MIB, &v);
			if (r < 0) {
				vmm_log(
				    "--memory: '%s' is %s: give the guest RAM in MiB, from %llu to "
				    "%llu",
				    optarg, r == -ERANGE ? "out of range" : "not a number",
				    VMM_MIN_MEMORY_MIB, VMM_MAX_MEMORY_MIB);
				return -EINVAL;
			}
			o->memory_mib = v;
			break;
		case OPT_BOOT_TIMER:
			o->boot_timer = true;
			break;
		case OPT_RNG:
			o->rng = true;
			break;
		case OPT_ROOTFS:
			if (o->rootfs) {
				vmm_log(
				    "--rootfs given twice: one root disk; add others with --disk");
				return -EINVAL;
			}
			o->rootfs = optarg;
			break;
		case OPT_DISK:
			if (o->ndisks == VMM_MAX_DISKS) {
				vmm_log("--disk: at most %u disks (besides --rootfs)",
					VMM_MAX_DISKS);
				return -EINVAL;
			}
			o->disks[o->ndisks++] = optarg;
			break;
		case OPT_NET:
			if (o->nnets == VMM_MAX_NETS) {
				vmm_log("--net: at most %u network devices", VMM_MAX_NETS);
				return -EINVAL;
			}
			o->nets[o->nnets++] = optarg;
			break;
		case OPT_VSOCK:
			if (o->vsock) {
				vmm_log("--vsock given twice: a VM has one vsock device");
				return -EINVAL;
			}
			o->vsock = optarg;
			break;
		case OPT_SECCOMP:
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
				vmm_log("--seccomp: '%s' is not on or off", optarg);
				return -EINVAL;
			}
			o->seccomp_off = strcmp(optarg, "off") == 0;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			options_usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("vmm %s\n", VMM_VERSION);
			return 1;
		case ':':
			vmm_log("option '%s' needs a value: see vmm --help", argv[optind - 1]);
			return -EINVAL;
		default:
			vmm_log("unknown option '%s': see vmm --help", argv[optind - 1]);
			return -EINVAL;
		}
	}
	int r = take_command(argc, argv, o, false);
	if (r == 0)
		r = check_container(o, explicit_tty);
	if (r < 0)
		return r;
	if (!o->kernel)
		o->kernel = options_default_kernel();
	if (!o->kernel) {
		vmm_log("no kernel given and none built: pass --kernel PATH (a vmlinux with PVH "
			"note or a bzImage), set VMM_KERNEL, or build one with "
			"kernel-config/build.sh");
		return -EINVAL;
	}
	return check_devices(o);
}

int options_parse_exec(int argc, char **argv, struct vmm_options *o)
{
	static const struct option longopts[] = {
	    {"api-sock", required_argument, NULL, OPT_API_SOCK},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"tty", no_argument, NULL, 't'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "+:e:w:u:tvh", longopts, NULL);
		if (c == -1)
			break;
		int r = container_opt(c, optarg, o);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		switch (c) {
		case OPT_API_SOCK:
			o->api_sock = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			options_usage(stdout);
			return 1;
		case ':':
			vmm_log("option '%s' needs a value: see vmm --help", argv[optind - 1]);
			return -EINVAL;
		default:
			vmm_log("vmm exec: unknown option '%s': it takes --api-sock, --env, "
				"--workdir, --user and --tty",
				argv[optind - 1]);
			return -EINVAL;
		}
	}
	int r = take_command(argc, argv, o, true);
	if (r < 0)
		return r;
	if (!o->api_sock) {
		vmm_log("vmm exec: no --api-sock PATH: give the socket of the running vmm "
			"(its --api-sock)");
		return -EINVAL;
	}
	if (!o->workdir)
		o->workdir = "/";
	if (!o->tty && isatty(STDIN_FILENO))
		o->tty = true;
	build_env(o);
	return 0;
}
