/* fs-hostile: a hostile guest against a virtio-fs share (static; tests/integration/fs-tests.sh
 * copies it into the container's root directory and checks the host side).
 *
 *   fs-hostile MNT HOSTPATH
 *
 * MNT is the mounted share; on the host it sits next to a canary file (HOSTPATH is that file's
 * host path, which means nothing in the guest). The host planted these symlinks in the share:
 * planted-rel -> ../canary, planted-abs -> HOSTPATH, planted-dir -> .., planted-root -> /. The
 * guest's own root has a /canary of its own. Every attempt goes through the guest kernel, as a
 * program in the container would: following a symlink, "..", rename and link across the mount
 * must stay in the guest's view; device nodes, security.capability and trusted.* are refused;
 * odd names are stored as they are; deep nesting works; opening one file again and again ends
 * in an error (ENFILE from the server's handle table, or EMFILE from vmm's descriptor limit) and
 * the share works again once the handles are closed. Raw FUSE requests that the
 * guest kernel would never send are the host-side fuzz target's (tests/fuzz/fuzz_fuse.c) and
 * the server's unit tests' (tests/unit/test_fuse_server.c) business, not this program's.
 *
 * One line per attempt, "ok: WHAT: RESULT" when the result is the expected one and
 * "UNEXPECTED: WHAT: RESULT" otherwise, then "fs-hostile: N attempts, M unexpected"; the exit
 * status is 1 when M > 0. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char *mnt;
static int attempts, unexpected;

static void report(bool expected, const char *what, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	attempts++;
	if (!expected)
		unexpected++;
	printf("%s: %s: %s\n", expected ? "ok" : "UNEXPECTED", what, buf);
}

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

/* An errno result: "ENAME" or "success". */
static const char *res(int r)
{
	return r < 0 ? ename(errno) : "success";
}

static char *at(const char *name)
{
	static char bufs[4][4096];
	static int k;
	char *b = bufs[k++ % 4];
	snprintf(b, sizeof(bufs[0]), "%s/%s", mnt, name);
	return b;
}

/* Reads up to cap - 1 bytes of path into buf: the length, or -errno. */
static int slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return (int)n;
}

/* Following VIA must give what the guest's own DIRECT path gives: the same bytes or the same
 * error. */
static void same_view(const char *what, const char *via, const char *direct)
{
	char a[4096], b[4096];
	int na = slurp(via, a, sizeof(a)), nb = slurp(direct, b, sizeof(b));
	bool same = na == nb && (na < 0 || memcmp(a, b, (size_t)na) == 0);
	if (na < 0)
		report(same, what, "%s, as the guest's %s gives %s", ename(-na), direct,
		       nb < 0 ? ename(-nb) : "content");
	else
		report(same, what, "reads %d bytes, %s the guest's %s", na,
		       same ? "the same as" : "NOT those of", direct);
}

static void dotdot(void)
{
	struct stat root, st;
	stat("/", &root);
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		report(false, "open the share's root", "%s", ename(errno));
		return;
	}
	for (int i = 0; i < 20; i++) {
		int up = openat(fd, "..", O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = up;
		if (fd < 0)
			break;
	}
	bool top =
	    fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == root.st_dev && st.st_ino == root.st_ino;
	report(top, "20 x openat(\"..\") from the share's root", "%s",
	       top ? "the guest's / (the mount is crossed in the guest)" : "somewhere else");
	/* the guest's / that ".." led to lists the guest's root, not the host directory */
	bool listed = false;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	for (struct dirent *de; d && (de = readdir(d));)
		if (strcmp(de->d_name, "hostile-secret") == 0)
			listed = true;
	if (d)
		closedir(d);
	report(!listed, "list the directory above the share", "%s",
	       listed ? "the host's hostile-secret is listed" : "no host file in it");

	if (chdir(mnt) < 0) {
		report(false, "chdir to the share", "%s", ename(errno));
		return;
	}
	for (int i = 0; i < 20; i++)
		if (chdir("..") < 0)
			break;
	char cwd[256];
	bool slash = getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/") == 0;
	report(slash, "20 x chdir(\"..\") from the share", "cwd %s", slash ? "/" : cwd);

	mkdir(at("sub"), 0755);
	mkdir(at("sub/sub2"), 0755);
	int s2 = open(at("sub/sub2"), O_RDONLY | O_DIRECTORY);
	int top3 = s2 >= 0 ? openat(s2, "../../..", O_RDONLY | O_DIRECTORY) : -1;
	top = top3 >= 0 && fstat(top3, &st) == 0 && st.st_dev == root.st_dev &&
	      st.st_ino == root.st_ino;
	report(top, "openat(\"../../..\") from sub/sub2", "%s", top ? "the guest's /" : res(top3));
	if (s2 >= 0)
		close(s2);
	if (top3 >= 0)
		close(top3);

	DIR *m = opendir(mnt);
	bool leak = false;
	for (struct dirent *de; m && (de = readdir(m));)
		if (strcmp(de->d_name, "hostile-secret") == 0 || strcmp(de->d_name, "share") == 0)
			leak = true;
	if (m)
		closedir(m);
	report(m && !leak, "list the share's root", "%s",
	       leak ? "a host name outside the share is listed" : "only the share's names");
}

static void symlinks(const char *hostpath)
{
	same_view("follow planted-rel -> ../canary", at("planted-rel"), "/canary");
	same_view("follow planted-abs -> the canary's host path", at("planted-abs"), hostpath);
	same_view("follow planted-dir/canary (planted-dir -> ..)", at("planted-dir/canary"),
		  "/canary");
	same_view("follow planted-root/etc/passwd (planted-root -> /)",
		  at("planted-root/etc/passwd"), "/etc/passwd");

	int r = symlink("../canary", at("up"));
	report(r == 0, "symlink up -> ../canary", "%s", res(r));
	same_view("follow up", at("up"), "/canary");
	r = symlink(hostpath, at("abs"));
	report(r == 0, "symlink abs -> the canary's host path", "%s", res(r));
	same_view("follow abs", at("abs"), hostpath);
	r = symlink("/etc/passwd", at("etc"));
	report(r == 0, "symlink etc -> /etc/passwd", "%s", res(r));
	same_view("follow etc", at("etc"), "/etc/passwd");

	/* a write through a planted link lands in the guest's own /canary */
	int fd = open(at("planted-rel"), O_WRONLY | O_APPEND);
	const char add[] = "appended-through-planted-rel\n";
	r = fd < 0 ? -1 : (int)write(fd, add, sizeof(add) - 1);
	report(r == (int)sizeof(add) - 1, "append through planted-rel", "%s",
	       r < 0 ? ename(errno) : "written (to the guest's /canary)");
	if (fd >= 0)
		close(fd);
	fd = open(at("planted-dir/made-through-planted-dir"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	report(fd >= 0, "create planted-dir/made-through-planted-dir", "%s",
	       fd < 0 ? ename(errno) : "created (in the guest's /)");
	if (fd >= 0)
		close(fd);

	/* link() of a symlink links the symlink itself; following it leaves the mount: EXDEV */
	r = link(at("planted-rel"), at("linked"));
	struct stat st;
	bool islink = r == 0 && lstat(at("linked"), &st) == 0 && S_ISLNK(st.st_mode);
	report(islink, "link planted-rel linked", "%s",
	       r < 0	? ename(errno)
	       : islink ? "a second name of the symlink"
			: "NOT a symlink");
	r = linkat(AT_FDCWD, at("planted-rel"), AT_FDCWD, at("linked-follow"), AT_SYMLINK_FOLLOW);
	report(r < 0 && errno == EXDEV, "linkat planted-rel linked-follow AT_SYMLINK_FOLLOW", "%s",
	       res(r));
}

static void renames(void)
{
	int fd = open(at("f"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		write(fd, "f\n", 2);
		close(fd);
	}
	int r = rename(at("f"), at("../x"));
	report(r < 0 && errno == EXDEV, "rename f ../x", "%s", res(r));
	r = link(at("f"), at("../x"));
	report(r < 0 && errno == EXDEV, "link f ../x", "%s", res(r));
	int d = open(mnt, O_RDONLY | O_DIRECTORY);
	r = renameat(d, "f", d, "../x");
	report(r < 0 && errno == EXDEV, "renameat(share, f, share, ../x)", "%s", res(r));
	r = renameat(d, "f", d, "planted-dir/x");
	report(r < 0 && errno == EXDEV, "renameat f planted-dir/x", "%s", res(r));
	r = renameat2(d, "f", d, "../canary", RENAME_EXCHANGE);
	report(r < 0 && errno == EXDEV, "renameat2 f ../canary RENAME_EXCHANGE", "%s", res(r));
	r = symlinkat("..", d, "dotdot-link");
	int via = openat(d, "dotdot-link/x", O_WRONLY | O_CREAT | O_EXCL, 0644);
	report(r == 0 && via >= 0, "create dotdot-link/x (dotdot-link -> ..)", "%s",
	       via < 0 ? ename(errno) : "created (in the guest's /)");
	if (via >= 0)
		close(via);
	close(d);
}

static const char *const odd[] = {
    "\x01\x02\x03",  "new\nline", "\xff\xfe\xfd", "tab\there", " lead-space", "-n",
    "back\\slash",   "q\"uo'te",  "*?[glob",	  "%s%n%x",    "\x7f",	      "\xc3\x28",
    "trailing-dot.", "...",	  "..x",	  "a b c",
};

static void names(void)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/odd", mnt);
	mkdir(dir, 0755);
	int d = open(dir, O_RDONLY | O_DIRECTORY);
	int made = 0;
	size_t n = sizeof(odd) / sizeof(odd[0]);
	for (size_t i = 0; i < n; i++) {
		int fd = openat(d, odd[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd >= 0) {
			made++;
			close(fd);
		} else {
			report(false, "create an odd name", "index %zu: %s", i, ename(errno));
		}
	}
	char longname[300];
	memset(longname, 'n', 255);
	longname[255] = '\0';
	int fd = openat(d, longname, O_WRONLY | O_CREAT | O_EXCL, 0644);
	report(fd >= 0, "create a 255-byte name", "%s", fd < 0 ? ename(errno) : "success");
	if (fd >= 0)
		close(fd);
	longname[255] = 'n';
	longname[256] = '\0';
	fd = openat(d, longname, O_WRONLY | O_CREAT | O_EXCL, 0644);
	report(fd < 0 && errno == ENAMETOOLONG, "create a 256-byte name", "%s",
	       fd < 0 ? ename(errno) : "success");
	if (fd >= 0)
		close(fd);
	/* read back: every odd name and the long one, nothing else */
	size_t seen = 0, others = 0;
	DIR *dd = fdopendir(dup(d));
	for (struct dirent *de; dd && (de = readdir(dd));) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool known = strlen(de->d_name) == 255;
		for (size_t i = 0; i < n && !known; i++)
			known = strcmp(de->d_name, odd[i]) == 0;
		if (known)
			seen++;
		else
			others++;
	}
	if (dd)
		closedir(dd);
	close(d);
	report(made == (int)n && seen == n + 1 && others == 0,
	       "create and list 16 odd names (control bytes, newline, bad UTF-8, ...)",
	       "%d created, %zu listed back, %zu others", made, seen, others);
}

static void nodes(void)
{
	int r = mknod(at("dev-null"), S_IFCHR | 0666, makedev(1, 3));
	report(r < 0 && errno == EPERM, "mknod dev-null c 1 3", "%s", res(r));
	r = mknod(at("dev-sda"), S_IFBLK | 0600, makedev(8, 0));
	report(r < 0 && errno == EPERM, "mknod dev-sda b 8 0", "%s", res(r));
	r = mkfifo(at("fifo"), 0644);
	report(r == 0, "mkfifo fifo", "%s", res(r));
}

static void xattrs(void)
{
	struct vfs_cap_data cap = {.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE};
	cap.data[0].permitted = 1u << CAP_SYS_ADMIN | 1u << CAP_DAC_OVERRIDE;
	int r = setxattr(at("f"), "security.capability", &cap, XATTR_CAPS_SZ_2, 0);
	report(r < 0 && errno == EPERM, "setxattr f security.capability (CAP_SYS_ADMIN)", "%s",
	       res(r));
	char buf[64];
	ssize_t g = getxattr(at("f"), "security.capability", buf, sizeof(buf));
	report(g < 0 && errno == ENODATA, "getxattr f security.capability", "%s",
	       g < 0 ? ename(errno) : "present");
	r = setxattr(at("f"), "trusted.vmm-hostile", "1", 1, 0);
	report(r < 0 && errno == EPERM, "setxattr f trusted.vmm-hostile", "%s", res(r));
}

static void deep(void)
{
	char name[101];
	memset(name, 'd', 100);
	name[100] = '\0';
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);
	int made = 0;
	const int levels = 60; /* 60 x 101 bytes: deeper than PATH_MAX */
	if (mkdirat(fd, "deep", 0755) == 0) {
		int n = openat(fd, "deep", O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = n;
	}
	for (int i = 0; i < levels && fd >= 0; i++) {
		if (mkdirat(fd, name, 0755) < 0)
			break;
		int n = openat(fd, name, O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = n;
		if (fd >= 0)
			made++;
	}
	int f = fd >= 0 ? openat(fd, "bottom", O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
	bool wrote = f >= 0 && write(f, "bottom\n", 7) == 7;
	if (f >= 0)
		close(f);
	report(made == levels && wrote, "nest 60 directories of 100-byte names, write bottom",
	       "%d levels, bottom %s", made, wrote ? "written" : res(f));
	/* back up: 61 ".." reach the share's root, one more the guest's / */
	struct stat root, st;
	stat("/", &root);
	for (int i = 0; i < levels + 2 && fd >= 0; i++) {
		int n = openat(fd, "..", O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = n;
	}
	bool top =
	    fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == root.st_dev && st.st_ino == root.st_ino;
	report(top, "62 x openat(\"..\") from the bottom", "%s",
	       top ? "the guest's /" : "elsewhere");
	if (fd >= 0)
		close(fd);
	char path[8192];
	int len = snprintf(path, sizeof(path), "%s/deep", mnt);
	for (int i = 0; i < levels; i++)
		len += snprintf(path + len, sizeof(path) - (size_t)len, "/%s", name);
	snprintf(path + len, sizeof(path) - (size_t)len, "/bottom");
	f = open(path, O_RDONLY);
	report(f < 0 && errno == ENAMETOOLONG, "open the bottom by its 6 KiB path", "%s",
	       f < 0 ? ename(errno) : "opened");
	if (f >= 0)
		close(f);
}

/* Opens one file until an open fails: the server's handle table (16384, ENFILE) or, first, vmm's
 * own descriptor limit (EMFILE: every handle is a host descriptor) is the bound; then, with the
 * handles closed, the share works again. */
static void many(void)
{
	const int want = 20000;
	struct rlimit rl = {(rlim_t)want + 64, (rlim_t)want + 64};
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		report(false, "setrlimit RLIMIT_NOFILE 20064", "%s", ename(errno));
		return;
	}
	int fd = open(at("many"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		write(fd, "many\n", 5);
		close(fd);
	}
	int *fds = calloc((size_t)want, sizeof(int));
	int n = 0, err = 0;
	while (fds && n < want) {
		fds[n] = open(at("many"), O_RDONLY);
		if (fds[n] < 0) {
			err = errno;
			break;
		}
		n++;
	}
	report((err == ENFILE || err == EMFILE) && n >= 64 && n <= 16384,
	       "open one file until it fails", "%d opens, then %s", n,
	       err ? ename(err) : "no error");
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	char buf[16];
	int r = slurp(at("many"), buf, sizeof(buf));
	fd = open(at("after-many"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	bool w = fd >= 0 && write(fd, "after\n", 6) == 6;
	if (fd >= 0)
		close(fd);
	report(r == 5 && w, "after closing them: read many, create after-many", "%s",
	       r == 5 && w ? "both work" : "failed");
}

/* "fs-hostile: NAME took N.NN s", for the nest's time budget (not an attempt) */
static void timed(const char *name, void (*fn)(void))
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	fn();
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("fs-hostile: %s took %.2f s\n", name,
	       (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
}

static const char *hostpath;

static void symlinks_host(void)
{
	symlinks(hostpath);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: fs-hostile MNT HOSTPATH\n");
		return 2;
	}
	mnt = argv[1];
	hostpath = argv[2];
	timed("dotdot", dotdot);
	timed("symlinks", symlinks_host);
	timed("renames", renames);
	timed("names", names);
	timed("nodes", nodes);
	timed("xattrs", xattrs);
	timed("deep", deep);
	timed("many", many);
	printf("fs-hostile: %d attempts, %d unexpected\n", attempts, unexpected);
	return unexpected ? 1 : 0;
}
