/* jail-probe: a static program that vmm-jail runs instead of vmm (--exec-file) in the jail
 * tests. It prints what it sees, one "key: value" line each, for tests/jail/test_jail.sh to
 * check: its pid, ids and groups, environment, arguments, open descriptors, rlimits,
 * no_new_privs, capabilities, hostname, network interfaces and every file under / (with type,
 * mode, owner and device numbers); then the result of each operation it was asked for.
 *
 * Usage: jail-probe report|wait-term STATUS [read:PATH | write:PATH | open:PATH | mknod:PATH]...
 * report: print, run the operations, exit STATUS. wait-term: the same, then print "ready" and
 * wait for SIGTERM (handled, as vmm does, through a blocked signal), print "got SIGTERM" and
 * exit 143. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern char **environ;

static char type_of(mode_t m)
{
	return S_ISDIR(m)    ? 'd'
	       : S_ISREG(m)  ? 'f'
	       : S_ISCHR(m)  ? 'c'
	       : S_ISBLK(m)  ? 'b'
	       : S_ISLNK(m)  ? 'l'
	       : S_ISSOCK(m) ? 's'
	       : S_ISFIFO(m) ? 'p'
			     : '?';
}

static int print_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	printf("file: %s %c %04o %u:%u", path, type_of(st->st_mode), st->st_mode & 07777,
	       st->st_uid, st->st_gid);
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		printf(" %u:%u", major(st->st_rdev), minor(st->st_rdev));
	printf("\n");
	return 0;
}

static void print_rlimit(const char *name, int res)
{
	struct rlimit r;
	getrlimit(res, &r);
	printf("rlimit %s:", name);
	if (r.rlim_cur == RLIM_INFINITY)
		printf(" unlimited");
	else
		printf(" %llu", (unsigned long long)r.rlim_cur);
	if (r.rlim_max == RLIM_INFINITY)
		printf(" unlimited\n");
	else
		printf(" %llu\n", (unsigned long long)r.rlim_max);
}

static void report(int argc, char **argv)
{
	printf("pid: %d\nppid: %d\n", (int)getpid(), (int)getppid());
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	printf("uid: %u %u %u\ngid: %u %u %u\n", ru, eu, su, rg, eg, sg);
	gid_t groups[64];
	int ng = getgroups(64, groups);
	printf("groups: %d\n", ng);

	int nenv = 0;
	for (char **e = environ; e && *e; e++)
		nenv++;
	printf("env: %d\n", nenv);
	printf("args:");
	for (int i = 0; i < argc; i++)
		printf(" [%s]", argv[i]);
	printf("\n");

	printf("fds:");
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf(" %d", fd);
	printf("\n");

	print_rlimit("nofile", RLIMIT_NOFILE);
	print_rlimit("nproc", RLIMIT_NPROC);
	print_rlimit("core", RLIMIT_CORE);
	print_rlimit("fsize", RLIMIT_FSIZE);
	printf("nnp: %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));

	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {{0}};
	if (syscall(SYS_capget, &h, d) == 0)
		printf("capeff: %08x%08x\ncapprm: %08x%08x\n", d[1].effective, d[0].effective,
		       d[1].permitted, d[0].permitted);
	else
		printf("capeff: error %s\n", strerror(errno));

	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	printf("hostname: %s\n", host);

	struct if_nameindex *ifs = if_nameindex();
	printf("netifs:");
	for (struct if_nameindex *i = ifs; i && i->if_index; i++)
		printf(" %s", i->if_name);
	printf("\n");
	if (ifs)
		if_freenameindex(ifs);

	nftw("/", print_file, 16, FTW_PHYS);
}

static void run_op(const char *op)
{
	const char *path = strchr(op, ':');
	if (!path) {
		printf("op %s: malformed\n", op);
		return;
	}
	path++;
	int fd = -1, r = 0;
	char buf[128] = "";
	if (strncmp(op, "read:", 5) == 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		r = n < 0 ? -1 : 0;
		if (n > 0)
			buf[strcspn(buf, "\n")] = '\0';
	} else if (strncmp(op, "write:", 6) == 0) {
		fd = open(path, O_WRONLY | O_CLOEXEC);
		static const char msg[] = "written-in-jail\n";
		r = fd < 0 || pwrite(fd, msg, sizeof(msg) - 1, 0) != (ssize_t)sizeof(msg) - 1 ? -1
											      : 0;
	} else if (strncmp(op, "open:", 5) == 0) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		r = fd < 0 ? -1 : 0;
	} else if (strncmp(op, "mknod:", 6) == 0) {
		r = mknod(path, S_IFCHR | 0600, makedev(1, 3));
	} else {
		printf("op %s: unknown\n", op);
		return;
	}
	if (r < 0)
		printf("%.*s %s: error %s\n", (int)(path - op - 1), op, path, strerror(errno));
	else
		printf("%.*s %s: ok%s%s\n", (int)(path - op - 1), op, path, buf[0] ? " " : "", buf);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "report") != 0 && strcmp(argv[1], "wait-term") != 0)) {
		fprintf(stderr, "usage: jail-probe report|wait-term STATUS [OP:PATH]...\n");
		return 2;
	}
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);

	report(argc, argv);
	for (int i = 3; i < argc; i++)
		run_op(argv[i]);
	if (strcmp(argv[1], "wait-term") == 0) {
		printf("ready\n");
		fflush(stdout);
		int sig = sigwaitinfo(&term, NULL);
		printf("got %s\n", sig == SIGTERM ? "SIGTERM" : "something else");
		return 143;
	}
	return atoi(argv[2]);
}
