/* --volume: the staging share's list (vmm/volumes.c writes it, guest/agent_boot.c reads it), and
 * with the argument "stage" the staging itself (as root: exit 77 otherwise): the binds, read-only
 * ones refusing writes with EROFS, tmpfs entries only in the list, the namespace left behind, the
 * host's mount table untouched, and the FUSE server crossing into the binds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/fuse_server.h"
#include "guest/agent.h"
#include "vmm/volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the list ---- */

static const char *parse_err(const char *text, unsigned expect)
{
	static char buf[8192];
	struct agent_volume v[AGENT_MAX_VOLUMES];
	const char *why = NULL;
	snprintf(buf, sizeof(buf), "%s", text);
	int r = agent_volumes_parse(buf, strlen(buf), expect, v, &why);
	return r == 0 ? NULL : why;
}

static void list_roundtrip(void **state)
{
	(void)state;
	struct vm_volume_cfg v[] = {
	    {.host = "/h/z", .guest = "/z/data"},
	    {.host = "/h/hosts", .guest = "/etc/hosts", .ro = true, .file = true},
	    {.host = "/h/a", .guest = "/a b/with space", .ro = true},
	    {.host = "/h/z2", .guest = "/z"},
	};
	char buf[1024];
	int n = volumes_list_format(v, 4, buf, sizeof(buf));
	assert_true(n > 0);
	/* sorted by guest path: a parent before what is inside it */
	assert_string_equal(buf, "2 dir ro /a b/with space\n1 file ro /etc/hosts\n3 dir rw /z\n"
				 "0 dir rw /z/data\n");
	assert_int_equal(volumes_list_format(v, 4, buf, 20), -E2BIG);
	struct agent_volume av[AGENT_MAX_VOLUMES];
	const char *why = NULL;
	n = volumes_list_format(v, 4, buf, sizeof(buf));
	assert_int_equal(agent_volumes_parse(buf, (size_t)n, 4, av, &why), 0);
	assert_int_equal(av[0].index, 2);
	assert_true(av[0].ro && !av[0].file);
	assert_string_equal(av[0].guest, "/a b/with space");
	assert_int_equal(av[1].index, 1);
	assert_true(av[1].ro && av[1].file);
	assert_string_equal(av[1].guest, "/etc/hosts");
	assert_int_equal(av[3].index, 0);
	assert_false(av[3].ro);
	assert_string_equal(av[3].guest, "/z/data");
}

/* tmpfs entries: their own type word, sorted with the binds (a bind under a tmpfs after it) */
static void list_tmpfs(void **state)
{
	(void)state;
	struct vm_volume_cfg v[] = {
	    {.host = "/h/sock", .guest = "/run/app"},
	    {.guest = "/run", .tmpfs = true, .mode = 0755},
	    {.guest = "/scratch", .tmpfs = true, .mode = 01777, .size_mib = 64, .ro = true},
	    {.guest = "/z", .tmpfs = true, .mode = 0, .size_mib = 1048576},
	};
	char buf[1024];
	int n = volumes_list_format(v, 4, buf, sizeof(buf));
	assert_true(n > 0);
	assert_string_equal(buf,
			    "1 tmpfs=755 rw /run\n0 dir rw /run/app\n"
			    "2 tmpfs=1777,size=64 ro /scratch\n3 tmpfs=0,size=1048576 rw /z\n");
	struct agent_volume av[AGENT_MAX_VOLUMES];
	const char *why = NULL;
	assert_int_equal(agent_volumes_parse(buf, (size_t)n, 4, av, &why), 0);
	assert_true(av[0].tmpfs && !av[0].ro && !av[0].file);
	assert_int_equal(av[0].index, 1);
	assert_int_equal(av[0].mode, 0755);
	assert_int_equal(av[0].size_mib, 0);
	assert_string_equal(av[0].guest, "/run");
	assert_false(av[1].tmpfs);
	assert_string_equal(av[1].guest, "/run/app");
	assert_true(av[2].tmpfs && av[2].ro);
	assert_int_equal(av[2].mode, 01777);
	assert_int_equal(av[2].size_mib, 64);
	assert_string_equal(av[2].guest, "/scratch");
	assert_int_equal(av[3].mode, 0);
	assert_int_equal(av[3].size_mib, 1048576);
	/* the type word's edges, accepted */
	assert_null(parse_err("0 tmpfs=7777 rw /a\n", 1));
	assert_null(parse_err("0 tmpfs=1,size=1 ro /a\n", 1));
	/* and refused */
	const char *mode = "a tmpfs mode that is not octal from 0 to 7777 (without a leading zero)";
	const char *size = "a tmpfs size that is not a number of MiB from 1 to 1048576";
	const char *more = "a tmpfs type with more than mode and size=MIB";
	const struct {
		const char *line, *why;
	} bad[] = {
	    {"0 tmpfs= rw /a\n", mode},
	    {"0 tmpfs=10000 rw /a\n", mode},
	    {"0 tmpfs=17777 rw /a\n", mode},
	    {"0 tmpfs=0755 rw /a\n", mode},
	    {"0 tmpfs=8 rw /a\n", mode},
	    {"0 tmpfs=-1 rw /a\n", mode},
	    {"0 tmpfs=x rw /a\n", mode},
	    {"0 tmpfs=99999999999999999999 rw /a\n", mode},
	    {"0 tmpfs=755,size=0 rw /a\n", size},
	    {"0 tmpfs=755,size=064 rw /a\n", size},
	    {"0 tmpfs=755,size=1048577 rw /a\n", size},
	    {"0 tmpfs=755,size=99999999999999999999999 rw /a\n", size},
	    {"0 tmpfs=755,size= rw /a\n", size},
	    {"0 tmpfs=755,size=-1 rw /a\n", size},
	    {"0 tmpfs=78 rw /a\n", more},
	    {"0 tmpfs=755,size=64m rw /a\n", more},
	    {"0 tmpfs=755,nr_inodes=5 rw /a\n", more},
	    {"0 tmpfs=755,size=1,size=2 rw /a\n", more},
	    {"0 tmpfs=755, rw /a\n", more},
	    {"0 tmpfs=755\n", more},
	    {"0 tmpfs=755  rw /a\n", "a mode that is not ro or rw"},
	    {"0 tmpfs=755 RO /a\n", "a mode that is not ro or rw"},
	    {"0 tmpfs rw /a\n", "a type that is not dir, file or tmpfs=MODE"},
	    {"0 TMPFS=755 rw /a\n", "a type that is not dir, file or tmpfs=MODE"},
	    {"0 tmpfs=755 rw /a/\n", "a guest path that is not absolute and normalised"},
	    {"0 tmpfs=755 rw /\n", "a guest path that is not absolute and normalised"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got = parse_err(bad[i].line, 1);
		if (!got || strcmp(got, bad[i].why) != 0)
			fail_msg("'%s' gave %s", bad[i].line, got ? got : "no error");
	}
	/* a tmpfs and a bind at one path: the order check catches it too */
	assert_string_equal(parse_err("0 tmpfs=755 rw /a\n1 dir rw /a\n", 2),
			    "guest paths not in ascending order (or given twice)");
}

static void list_refused(void **state)
{
	(void)state;
	assert_null(parse_err("0 dir rw /a\n", 1));
	assert_string_equal(parse_err("0 dir rw /a\n", 2), "fewer lines than vmm.volumes says");
	assert_string_equal(parse_err("0 dir rw /a\n1 dir rw /b\n", 1),
			    "more lines than vmm.volumes says");
	assert_string_equal(parse_err("0 dir rw /a", 1), "the last line has no newline");
	assert_non_null(parse_err("", 1));
	assert_string_equal(parse_err("0 dir rw /a\n", 0), "the count is not 1 to 64");
	assert_string_equal(parse_err("0 dir rw /a\n", 65), "the count is not 1 to 64");
	const char *bad_index = "an index out of range, given twice or not followed by a space";
	assert_string_equal(parse_err("1 dir rw /a\n", 1), bad_index);
	assert_string_equal(parse_err("0 dir rw /a\n0 dir rw /b\n", 2), bad_index);
	assert_string_equal(parse_err("0  dir rw /a\n", 1),
			    "a type that is not dir, file or tmpfs=MODE");
	assert_string_equal(parse_err("00 dir rw /a\n", 1), "a line does not start with an index");
	assert_string_equal(parse_err("x dir rw /a\n", 1), "a line does not start with an index");
	assert_string_equal(parse_err("99999999999 dir rw /a\n", 1), bad_index);
	assert_string_equal(parse_err("0 fifo rw /a\n", 1),
			    "a type that is not dir, file or tmpfs=MODE");
	assert_string_equal(parse_err("0 dir RW /a\n", 1), "a mode that is not ro or rw");
	const char *bad_path = "a guest path that is not absolute and normalised";
	const char *paths[] = {"/",  "a",     "/a/", "/a//b", "/a/./b", "/a/../b", "/..",
			       "/.", "/a\tb", "",    "/a/..", "/a/.",	"//a",	   "/a\x7f"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "0 dir rw %s\n", paths[i]);
		const char *why = parse_err(line, 1);
		if (!why || strcmp(why, bad_path) != 0)
			fail_msg("'%s' gave %s", paths[i], why ? why : "no error");
	}
	char long_path[AGENT_VOLUME_PATH_MAX + 40] = "0 dir rw /";
	memset(long_path + 10, 'x', AGENT_VOLUME_PATH_MAX);
	strcpy(long_path + 10 + AGENT_VOLUME_PATH_MAX, "\n");
	assert_string_equal(parse_err(long_path, 1), bad_path);
	const char *order = "guest paths not in ascending order (or given twice)";
	assert_string_equal(parse_err("0 dir rw /b\n1 dir rw /a\n", 2), order);
	assert_string_equal(parse_err("0 dir rw /a\n1 dir rw /a\n", 2), order);
	char nul[] = "0 dir rw /a\0b\n";
	struct agent_volume v[2];
	const char *why = NULL;
	assert_int_equal(agent_volumes_parse(nul, sizeof(nul) - 1, 1, v, &why), -1);
	assert_string_equal(why, "a NUL byte in the list");
}

static void cmdline_key(void **state)
{
	(void)state;
	char line[] = "quiet vmm.volumes=3 vmm.hostname=x";
	struct agent_config c;
	memset(&c, 0, sizeof(c));
	agent_cmdline_parse(line, &c);
	assert_int_equal(c.volumes, 3);
	const char *bad[] = {"vmm.volumes=0",  "vmm.volumes=65", "vmm.volumes=x", "vmm.volumes=-1",
			     "vmm.volumes=3x", "vmm.volumes=",	 "vmm.volumes=+2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char b[64];
		snprintf(b, sizeof(b), "%s", bad[i]);
		memset(&c, 0, sizeof(c));
		agent_cmdline_parse(b, &c);
		assert_int_equal(c.volumes, 0);
	}
}

/* ---- the staging (root only) ---- */

struct st {
	char top[64];
	char dir[96], rodir[96], file[96], rofile[96];
	struct vm_volume_cfg v[5];
	struct volume_stage s;
};

static char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A file in the staging root's entry `entry` (NULL: the entry itself), opened with flags. */
static int open_in(struct st *t, const char *entry, const char *name, int flags)
{
	char p[128];
	if (name)
		snprintf(p, sizeof(p), "/proc/self/fd/%d/%s/%s", t->s.root_fd, entry, name);
	else
		snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", t->s.root_fd, entry);
	return open(p, flags | O_CLOEXEC, 0644);
}

static int stage_setup(void **state)
{
	struct st *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	snprintf(t->top, sizeof(t->top), "/tmp/vmm-test-vol-XXXXXX");
	assert_non_null(mkdtemp(t->top));
	snprintf(t->dir, sizeof(t->dir), "%s/dir", t->top);
	snprintf(t->rodir, sizeof(t->rodir), "%s/rodir", t->top);
	snprintf(t->file, sizeof(t->file), "%s/file", t->top);
	snprintf(t->rofile, sizeof(t->rofile), "%s/rofile", t->top);
	assert_int_equal(mkdir(t->dir, 0755), 0);
	assert_int_equal(mkdir(t->rodir, 0755), 0);
	char p[160];
	snprintf(p, sizeof(p), "%s/inside", t->rodir);
	put(p, "ro-data\n");
	put(t->file, "file-data\n");
	put(t->rofile, "rofile-data\n");
	t->v[0] = (struct vm_volume_cfg){.host = t->dir, .guest = "/data"};
	t->v[1] = (struct vm_volume_cfg){.host = t->rodir, .guest = "/ro", .ro = true};
	t->v[2] = (struct vm_volume_cfg){.host = t->file, .guest = "/etc/f", .file = true};
	t->v[3] =
	    (struct vm_volume_cfg){.host = t->rofile, .guest = "/etc/rf", .ro = true, .file = true};
	t->v[4] = (struct vm_volume_cfg){.guest = "/run", .tmpfs = true, .mode = 0755};
	t->s.root_fd = t->s.ns_fd = -1;
	*state = t;
	return 0;
}

static int stage_teardown(void **state)
{
	struct st *t = *state;
	volume_stage_close(&t->s);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->top);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", t->top);
	free(t);
	return 0;
}

static void stage_binds(void **state)
{
	struct st *t = *state;
	struct stat ns0, ns1, cwd0, cwd1, st, hst;
	char *mounts = strdup(slurp("/proc/self/mountinfo"));
	assert_int_equal(stat("/proc/self/ns/mnt", &ns0), 0);
	assert_int_equal(chdir(t->top), 0);
	assert_int_equal(stat(".", &cwd0), 0);
	struct verr e = {0};
	if (volume_stage_create(&t->s, t->v, 4, &e) < 0)
		fail_msg("%s", e.msg);
	/* back in the host's namespace, same working directory, nothing new in its mount table */
	assert_int_equal(stat("/proc/self/ns/mnt", &ns1), 0);
	assert_true(ns0.st_ino == ns1.st_ino && ns0.st_dev == ns1.st_dev);
	assert_int_equal(stat(".", &cwd1), 0);
	assert_true(cwd0.st_ino == cwd1.st_ino && cwd0.st_dev == cwd1.st_dev);
	assert_string_equal(slurp("/proc/self/mountinfo"), mounts);
	free(mounts);
	assert_int_equal(chdir("/"), 0);
	/* the staging namespace is another one, kept by its descriptor */
	assert_int_equal(fstat(t->s.ns_fd, &st), 0);
	assert_true(st.st_ino != ns0.st_ino);
	/* entry 0: the host directory itself; what is written there is on the host */
	int fd = open_in(t, "0", NULL, O_PATH);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(stat(t->dir, &hst), 0);
	assert_true(st.st_dev == hst.st_dev && st.st_ino == hst.st_ino);
	close(fd);
	fd = open_in(t, "0", "new", O_WRONLY | O_CREAT | O_EXCL);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "guest\n", 6), 6);
	close(fd);
	char p[160];
	snprintf(p, sizeof(p), "%s/new", t->dir);
	assert_string_equal(slurp(p), "guest\n");
	/* entry 1: read-only, whoever asks (we are root) */
	fd = open_in(t, "1", "inside", O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(open_in(t, "1", "x", O_WRONLY | O_CREAT), -1);
	assert_int_equal(errno, EROFS);
	assert_int_equal(open_in(t, "1", "inside", O_WRONLY), -1);
	assert_int_equal(errno, EROFS);
	/* entries 2 and 3: single files, written through or refused */
	fd = open_in(t, "2", NULL, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "changed\n", 8), 8);
	close(fd);
	assert_string_equal(slurp(t->file), "changed\n");
	snprintf(p, sizeof(p), "/proc/self/fd/%d/3", t->s.root_fd);
	assert_string_equal(slurp(p), "rofile-data\n");
	assert_int_equal(open_in(t, "3", NULL, O_WRONLY), -1);
	assert_int_equal(errno, EROFS);
	/* nosuid,nodev on every bind, the tmpfs read-only, and the list in it */
	snprintf(p, sizeof(p), "/proc/self/fd/%d/x", t->s.root_fd);
	assert_int_equal(mkdir(p, 0755), -1);
	assert_int_equal(errno, EROFS);
	snprintf(p, sizeof(p), "/proc/self/fd/%d/" VOLUMES_LIST_NAME, t->s.root_fd);
	assert_string_equal(slurp(p), "0 dir rw /data\n2 file rw /etc/f\n3 file ro /etc/rf\n"
				      "1 dir ro /ro\n");
}

/* tmpfs entries: a line in the list, nothing in the staging root; alone they are staged too */
static void stage_tmpfs(void **state)
{
	struct st *t = *state;
	struct verr e = {0};
	if (volume_stage_create(&t->s, t->v, 5, &e) < 0)
		fail_msg("%s", e.msg);
	char p[160];
	snprintf(p, sizeof(p), "/proc/self/fd/%d/" VOLUMES_LIST_NAME, t->s.root_fd);
	assert_string_equal(slurp(p), "0 dir rw /data\n2 file rw /etc/f\n3 file ro /etc/rf\n"
				      "1 dir ro /ro\n4 tmpfs=755 rw /run\n");
	struct stat st;
	snprintf(p, sizeof(p), "/proc/self/fd/%d/4", t->s.root_fd);
	assert_int_equal(lstat(p, &st), -1);
	assert_int_equal(errno, ENOENT);
	volume_stage_close(&t->s);
	if (volume_stage_create(&t->s, &t->v[4], 1, &e) < 0)
		fail_msg("%s", e.msg);
	snprintf(p, sizeof(p), "/proc/self/fd/%d/" VOLUMES_LIST_NAME, t->s.root_fd);
	assert_string_equal(slurp(p), "0 tmpfs=755 rw /run\n");
	snprintf(p, sizeof(p), "/proc/self/fd/%d/0", t->s.root_fd);
	assert_int_equal(lstat(p, &st), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(p, sizeof(p), "/proc/self/fd/%d/x", t->s.root_fd);
	assert_int_equal(mkdir(p, 0755), -1);
	assert_int_equal(errno, EROFS);
}

/* The FUSE server on the staging root ("/proc/self/fd/N/.", as vmm names it) crosses into the
 * binds, and ".." of its root is its root. */
static void stage_fuse(void **state)
{
	struct st *t = *state;
	struct verr e = {0};
	if (volume_stage_create(&t->s, t->v, 2, &e) < 0)
		fail_msg("%s", e.msg);
	char root[64];
	snprintf(root, sizeof(root), "/proc/self/fd/%d/.", t->s.root_fd);
	struct fuse_server_config c = {.root = root, .cache = FUSE_CACHE_AUTO};
	struct fuse_server *s;
	if (fuse_server_create(&s, &c, &e) < 0)
		fail_msg("%s", e.msg);
	static uint8_t in[4096], out[1 << 17];
	struct fuse_result res;
	struct fuse_init_in init = {.major = 7, .minor = 36, .max_readahead = 65536};
	struct fuse_in_header h = {
	    .len = sizeof(h) + sizeof(init), .opcode = FUSE_INIT, .unique = 1};
	memcpy(in, &h, sizeof(h));
	memcpy(in + sizeof(h), &init, sizeof(init));
	struct iovec iv = {in, h.len}, ov = {out, sizeof(out)};
	assert_int_equal(fuse_server_handle(s, &iv, 1, &ov, 1, &res), 0);
	assert_int_equal(res.error, 0);
	const char *names[] = {"0", "1", ".."};
	struct stat hst;
	for (unsigned i = 0; i < 3; i++) {
		h = (struct fuse_in_header){.len = (uint32_t)(sizeof(h) + strlen(names[i]) + 1),
					    .opcode = FUSE_LOOKUP,
					    .unique = 2 + i,
					    .nodeid = FUSE_ROOT_ID};
		memcpy(in, &h, sizeof(h));
		memcpy(in + sizeof(h), names[i], strlen(names[i]) + 1);
		iv.iov_len = h.len;
		assert_int_equal(fuse_server_handle(s, &iv, 1, &ov, 1, &res), 0);
		assert_int_equal(res.error, 0);
		struct fuse_entry_out eo;
		memcpy(&eo, out + sizeof(struct fuse_out_header), sizeof(eo));
		if (i == 2) { /* ".." of the root: the root */
			assert_int_equal(eo.nodeid, FUSE_ROOT_ID);
			continue;
		}
		assert_int_equal(stat(i ? t->rodir : t->dir, &hst), 0);
		assert_int_equal(eo.attr.ino, hst.st_ino);
	}
	fuse_server_destroy(s);
}

/* What the unprivileged get: one line, -EPERM, nothing left. */
static void stage_unprivileged(void **state)
{
	struct st *t = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* as nobody: no capabilities */
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		struct verr e = {0};
		int r = volume_stage_create(&t->s, t->v, 1, &e);
		if (r != -EPERM || !strstr(e.msg, "needs CAP_SYS_ADMIN") ||
		    !strstr(e.msg, "--share tag=NAME,path=DIR") || t->s.root_fd >= 0)
			_exit(1);
		/* only a tmpfs: it says so */
		r = volume_stage_create(&t->s, &t->v[4], 1, &e);
		_exit(r == -EPERM && strncmp(e.msg, "--tmpfs: ", 9) == 0 &&
			      strstr(e.msg, "needs CAP_SYS_ADMIN") &&
			      strstr(e.msg, "mount the tmpfs in the guest yourself") &&
			      t->s.root_fd < 0
			  ? 0
			  : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "stage") == 0) {
		/* root with CAP_SYS_ADMIN: a child can make a mount namespace */
		pid_t pid = geteuid() == 0 ? fork() : -1;
		if (pid == 0)
			_exit(unshare(CLONE_NEWNS) == 0 ? 0 : 1);
		int status = 1;
		if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) {
			printf("the staging test needs root (CAP_SYS_ADMIN): skipped\n");
			return 77;
		}
		const struct CMUnitTest tests[] = {
		    cmocka_unit_test_setup_teardown(stage_binds, stage_setup, stage_teardown),
		    cmocka_unit_test_setup_teardown(stage_tmpfs, stage_setup, stage_teardown),
		    cmocka_unit_test_setup_teardown(stage_fuse, stage_setup, stage_teardown),
		    cmocka_unit_test_setup_teardown(stage_unprivileged, stage_setup,
						    stage_teardown),
		};
		return cmocka_run_group_tests(tests, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(list_roundtrip),
	    cmocka_unit_test(list_tmpfs),
	    cmocka_unit_test(list_refused),
	    cmocka_unit_test(cmdline_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
