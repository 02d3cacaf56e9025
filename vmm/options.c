/* Command-line parsing for `vmm`: every bad value gives one line naming the option and the fix. */
#include "vmm/options.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_vsock.h"
#include "vmm/log.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	    "Usage: vmm --kernel PATH [options]\n"
	    "Boot a Linux kernel in a KVM micro-VM; the serial console is vmm's stdin/stdout.\n"
	    "\n"
	    "  -k, --kernel PATH    vmlinux with a PVH entry note, or a bzImage\n"
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
	    "Exit status: the guest init's announced status, 0 when the guest reboots or powers\n"
	    "off by itself, 125 when vmm or the guest kernel failed, 128+N on signal N.\n",
	    VMM_MAX_CPUS, VMM_MIN_MEMORY_MIB, VMM_MAX_MEMORY_MIB, VMM_DEFAULT_MEMORY_MIB,
	    VMM_MAX_DISKS, VMM_MAX_NETS);
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
	enum {
		OPT_BOOT_TIMER = 256,
		OPT_VERSION,
		OPT_RNG,
		OPT_ROOTFS,
		OPT_DISK,
		OPT_NET,
		OPT_VSOCK,
		OPT_SECCOMP
	};
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
	for (;;) {
		int c = getopt_long(argc, argv, ":k:i:c:n:m:vh", longopts, NULL);
		if (c == -1)
			break;
		uint64_t v;
		int r;
		switch (c) {
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
	if (optind < argc) {
		vmm_log(
		    "unexpected argument '%s': pass guest arguments inside --cmdline after ' -- '",
		    argv[optind]);
		return -EINVAL;
	}
	if (!o->kernel) {
		vmm_log(
		    "no kernel given: pass --kernel PATH (a vmlinux with PVH note or a bzImage)");
		return -EINVAL;
	}
	return check_devices(o);
}
