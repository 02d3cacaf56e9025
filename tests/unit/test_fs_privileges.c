/* The virtio-fs workers' privileges: the sequence vm_run follows (sandbox_drop_privileges with
 * the workers' set, the worker threads created and raising it, sandbox_drop_fs_caps on the main
 * thread, then the other threads) run for real in a child process, each thread's capability
 * sets read back from /proc/self/task/TID/status; and the `dev` and `suid` share options from
 * the command line and from JSON. The capability cases need root (skipped otherwise), except the
 * unprivileged one, which drops to nobody first when run as root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/virtio_fs.h"
#include "vmm/config/config.h"
#include "vmm/sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(c) (1ull << (c))
#define FS_SET                                                                        \
	(BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FOWNER) | BIT(CAP_FSETID) | \
	 BIT(CAP_SETUID) | BIT(CAP_SETGID))

/* ---- in the child: plain checks, the first failure is one line on stderr and exit 1 ---- */

static void failf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ssize_t w = write(STDERR_FILENO, buf, n > 0 ? (size_t)n : 0);
	(void)w;
	_exit(1);
}

#define CHECK(cond, ...)                    \
	do {                                \
		if (!(cond))                \
			failf(__VA_ARGS__); \
	} while (0)

struct task_caps {
	uint64_t inh, prm, eff, bnd, amb;
	char groups[128];
	unsigned fsuid, fsgid;
};

static uint64_t field(const char *status, const char *key)
{
	const char *p = strstr(status, key);
	CHECK(p, "no %s in a task's status\n", key);
	return strtoull(p + strlen(key), NULL, 16);
}

static void read_task(pid_t tid, struct task_caps *c)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s: %s\n", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0, "read %s\n", path);
	buf[n] = 0;
	c->inh = field(buf, "CapInh:\t");
	c->prm = field(buf, "CapPrm:\t");
	c->eff = field(buf, "CapEff:\t");
	c->bnd = field(buf, "CapBnd:\t");
	c->amb = field(buf, "CapAmb:\t");
	const char *g = strstr(buf, "Groups:\t");
	CHECK(g, "no Groups in %s\n", path);
	g += 8;
	size_t len = strcspn(g, "\n");
	snprintf(c->groups, sizeof(c->groups), "%.*s", (int)len, g);
	const char *u = strstr(buf, "Uid:\t"), *gi = strstr(buf, "Gid:\t");
	unsigned a, b, d;
	CHECK(u && sscanf(u, "Uid:\t%u\t%u\t%u\t%u", &a, &b, &d, &c->fsuid) == 4, "Uid line\n");
	CHECK(gi && sscanf(gi, "Gid:\t%u\t%u\t%u\t%u", &a, &b, &d, &c->fsgid) == 4, "Gid line\n");
}

/* A thread that waits for steps from the main thread; a worker takes the workers' privileges
 * and its filter first, as vmm's virtio-fs worker does. */
struct worker {
	pthread_t t;
	bool fs;   /* a virtio-fs worker (else: a thread like a vCPU's) */
	int dirfd; /* where a step creates a file as 1234:5678 */
	pid_t tid;
	int step, done; /* step asked, steps done (under lock) */
	int rc;
	char err[512];
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct verr e = {0};
	int rc = 0;
	pid_t tid = (pid_t)syscall(SYS_gettid); /* not on the fs list */
	if (w->fs) {
		rc = sandbox_fs_thread_enter(&e);
		if (rc == 0)
			rc = sandbox_enter(SANDBOX_FS, &e);
	}
	pthread_mutex_lock(&w->lock);
	w->tid = tid;
	w->rc = rc;
	snprintf(w->err, sizeof(w->err), "%s", e.msg);
	w->done = 1;
	pthread_cond_broadcast(&w->cond);
	for (;;) {
		while (w->step == w->done)
			pthread_cond_wait(&w->cond, &w->lock);
		int step = w->step;
		pthread_mutex_unlock(&w->lock);
		if (step < 0)
			return NULL;
		/* step 2: as the guest's 1234:5678 (the calls the FUSE server makes, under the fs
		 * filter), the ids read back, and a file created; step 3: back to 0:0; step 4:
		 * fsuid 0 only (for a worker whose own fsuid is not 0) */
		if (step == 2) {
			syscall(SYS_setfsgid, 5678);
			syscall(SYS_setfsuid, 1234);
			if (syscall(SYS_setfsuid, -1) != 1234 || syscall(SYS_setfsgid, -1) != 5678)
				rc = -EPERM;
			int fd =
			    openat(w->dirfd, "made", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0)
				rc = -errno;
			else
				close(fd);
		} else if (step == 3) {
			syscall(SYS_setfsuid, 0);
			syscall(SYS_setfsgid, 0);
		} else if (step == 4) {
			syscall(SYS_setfsuid, 0);
		}
		pthread_mutex_lock(&w->lock);
		w->rc = rc;
		w->done = step;
		pthread_cond_broadcast(&w->cond);
	}
}

static void worker_start(struct worker *w, bool fs, int dirfd)
{
	memset(w, 0, sizeof(*w));
	w->fs = fs;
	w->dirfd = dirfd;
	w->step = 1; /* the start itself: done is 1 once the thread is ready */
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	CHECK(pthread_create(&w->t, NULL, worker_main, w) == 0, "pthread_create\n");
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	CHECK(w->rc == 0, "worker start: %s\n", w->err);
}

static int worker_step(struct worker *w, int step)
{
	pthread_mutex_lock(&w->lock);
	w->step = step;
	pthread_cond_broadcast(&w->cond);
	while (w->done != step)
		pthread_cond_wait(&w->cond, &w->lock);
	int rc = w->rc;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

static void worker_stop(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->step = -1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->t, NULL);
}

static void expect_none(const char *who, const struct task_caps *c)
{
	CHECK(c->inh == 0 && c->prm == 0 && c->eff == 0 && c->amb == 0,
	      "%s: CapInh %" PRIx64 " CapPrm %" PRIx64 " CapEff %" PRIx64 " CapAmb %" PRIx64
	      ", want none\n",
	      who, c->inh, c->prm, c->eff, c->amb);
}

static char tmpdir[256];

/* vm_run's order with one share (with device nodes when mknod): drop, the worker, the main
 * thread's clear, a vCPU-like thread. */
static void child_sequence(int mknod)
{
	struct task_caps before;
	read_task((pid_t)syscall(SYS_gettid), &before);
	bool setpcap = before.eff & BIT(CAP_SETPCAP);
	struct verr e = {0};
	unsigned fs = SANDBOX_FS_OWNERS | (mknod ? SANDBOX_FS_MKNOD : 0);
	CHECK(sandbox_drop_privileges(fs, &e) == 0, "drop: %s\n", e.msg);
	CHECK(sandbox_fs_credentials(), "root kept nothing for the workers\n");
	uint64_t want = FS_SET | (mknod ? BIT(CAP_MKNOD) : 0);
	struct task_caps m;
	read_task((pid_t)syscall(SYS_gettid), &m);
	CHECK(m.prm == (want | (setpcap ? BIT(CAP_SETPCAP) : 0)) &&
		  m.eff == (setpcap ? BIT(CAP_SETPCAP) : 0) && m.inh == 0,
	      "main after the drop: CapPrm %" PRIx64 " CapEff %" PRIx64 "\n", m.prm, m.eff);
	if (setpcap)
		CHECK(m.bnd == want, "main's bounding set %" PRIx64 ", want %" PRIx64 "\n", m.bnd,
		      want);
	int dirfd = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(dirfd >= 0, "open %s\n", tmpdir);
	struct worker fsw, vcpu;
	worker_start(&fsw, true, dirfd);
	CHECK(sandbox_drop_fs_caps(&e) == 0, "drop_fs_caps: %s\n", e.msg);
	worker_start(&vcpu, false, -1);

	struct task_caps wc, mc, vc;
	read_task(fsw.tid, &wc);
	read_task((pid_t)syscall(SYS_gettid), &mc);
	read_task(vcpu.tid, &vc);
	CHECK(wc.prm == want && wc.eff == want && wc.inh == 0 && wc.amb == 0,
	      "fs worker: CapPrm %" PRIx64 " CapEff %" PRIx64 ", want %" PRIx64 "\n", wc.prm,
	      wc.eff, want);
	CHECK(strcmp(wc.groups, "") == 0 || strcmp(wc.groups, " ") == 0,
	      "fs worker keeps groups '%s'\n", wc.groups);
	expect_none("main", &mc);
	expect_none("vcpu", &vc);
	if (setpcap) {
		CHECK(mc.bnd == 0, "main's bounding set %" PRIx64 " after the clear\n", mc.bnd);
		CHECK(vc.bnd == 0, "vcpu's bounding set %" PRIx64 "\n", vc.bnd);
		CHECK(wc.bnd == want, "worker's bounding set %" PRIx64 "\n", wc.bnd);
	}

	/* The guest's 1234:5678 under the real fs filter: the worker's ids only, and the kernel
	 * drops its file system capabilities meanwhile. */
	int rc = worker_step(&fsw, 2);
	CHECK(rc == 0, "worker as 1234:5678: %s\n", strerror(-rc));
	read_task(fsw.tid, &wc);
	read_task((pid_t)syscall(SYS_gettid), &mc);
	CHECK(wc.fsuid == 1234 && wc.fsgid == 5678, "worker fsuid %u fsgid %u\n", wc.fsuid,
	      wc.fsgid);
	CHECK(mc.fsuid == 0 && mc.fsgid == 0, "main's fsuid %u changed with the worker's\n",
	      mc.fsuid);
	CHECK(wc.eff == (BIT(CAP_SETUID) | BIT(CAP_SETGID)),
	      "worker as 1234: CapEff %" PRIx64 ", want only SETUID|SETGID\n", wc.eff);
	struct stat st;
	CHECK(fstatat(dirfd, "made", &st, 0) == 0 && st.st_uid == 1234 && st.st_gid == 5678,
	      "the worker's file is %u:%u\n", (unsigned)st.st_uid, (unsigned)st.st_gid);
	worker_step(&fsw, 3);
	read_task(fsw.tid, &wc);
	CHECK(wc.eff == want, "worker back to 0: CapEff %" PRIx64 "\n", wc.eff);
	worker_stop(&fsw);
	worker_stop(&vcpu);
	_exit(0);
}

/* No share: nothing kept anywhere (as before the workers had capabilities). */
static void child_no_share(int unused)
{
	(void)unused;
	struct verr e = {0};
	CHECK(sandbox_drop_privileges(0, &e) == 0, "drop: %s\n", e.msg);
	CHECK(!sandbox_fs_credentials(), "credentials without a share\n");
	struct worker w;
	worker_start(&w, true, -1);
	CHECK(sandbox_drop_fs_caps(&e) == 0, "drop_fs_caps: %s\n", e.msg);
	struct task_caps c;
	read_task(w.tid, &c);
	expect_none("fs worker", &c);
	read_task((pid_t)syscall(SYS_gettid), &c);
	expect_none("main", &c);
	worker_stop(&w);
	_exit(0);
}

/* vmm without the capabilities (an ordinary user, or vmm-jail's uid): nothing kept, requests
 * would run as vmm's own ids. */
static void child_unprivileged(int unused)
{
	(void)unused;
	if (geteuid() == 0)
		CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0,
		      "cannot become nobody\n");
	struct verr e = {0};
	CHECK(sandbox_drop_privileges(SANDBOX_FS_OWNERS | SANDBOX_FS_MKNOD, &e) == 0, "drop: %s\n",
	      e.msg);
	CHECK(!sandbox_fs_credentials(), "an unprivileged vmm claims the workers' set\n");
	struct worker w;
	worker_start(&w, true, -1);
	CHECK(sandbox_drop_fs_caps(&e) == 0, "drop_fs_caps: %s\n", e.msg);
	struct task_caps c;
	read_task(w.tid, &c);
	expect_none("fs worker", &c);
	worker_stop(&w);
	_exit(0);
}

/* vmm as uid 1000 holding the set: the worker's file system capabilities are off while its fsuid
 * is 1000, on while a request's fsuid is 0 (the kernel raises them from the permitted set). */
static void child_user_with_caps(int unused)
{
	(void)unused;
	CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0, "PR_SET_KEEPCAPS\n");
	CHECK(setresgid(1000, 1000, 1000) == 0 && setresuid(1000, 1000, 1000) == 0,
	      "cannot become 1000\n");
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	CHECK(syscall(SYS_capget, &h, d) == 0, "capget\n");
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	CHECK(syscall(SYS_capset, &h, d) == 0, "capset\n");
	struct verr e = {0};
	CHECK(sandbox_drop_privileges(SANDBOX_FS_OWNERS, &e) == 0, "drop: %s\n", e.msg);
	CHECK(sandbox_fs_credentials(), "uid 1000 with the set kept nothing\n");
	struct worker w;
	worker_start(&w, true, -1);
	CHECK(sandbox_drop_fs_caps(&e) == 0, "drop_fs_caps: %s\n", e.msg);
	struct task_caps c;
	read_task(w.tid, &c);
	CHECK(c.prm == FS_SET && c.eff == (BIT(CAP_SETUID) | BIT(CAP_SETGID)),
	      "worker as uid 1000: CapPrm %" PRIx64 " CapEff %" PRIx64 "\n", c.prm, c.eff);
	worker_step(&w, 4);
	read_task(w.tid, &c);
	CHECK(c.fsuid == 0 && c.eff == FS_SET,
	      "worker with fsuid %u: CapEff %" PRIx64 ", want the whole set\n", c.fsuid, c.eff);
	read_task((pid_t)syscall(SYS_gettid), &c);
	expect_none("main", &c);
	worker_stop(&w);
	_exit(0);
}

/* Runs fn(arg) in a child; its stderr in out; returns its exit status (-1: a signal). */
static int run_child(void (*fn)(int), int arg, char *out, size_t cap)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	size_t at = 0;
	ssize_t n;
	while (at + 1 < cap && (n = read(p[0], out + at, cap - 1 - at)) > 0)
		at += (size_t)n;
	out[at] = 0;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_root_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	if (geteuid() != 0 || syscall(SYS_capget, &h, d) < 0)
		return false;
	uint64_t eff = d[0].effective | (uint64_t)d[1].effective << 32;
	return (eff & (FS_SET | BIT(CAP_MKNOD))) == (FS_SET | BIT(CAP_MKNOD));
}

static void expect_child(void (*fn)(int), int arg)
{
	char out[1024];
	int st = run_child(fn, arg, out, sizeof(out));
	if (st != 0)
		fail_msg("child exited %d: %s", st, out);
}

static int make_tmp(void **state)
{
	(void)state;
	const char *dir = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/vmm-fspriv-XXXXXX", dir && *dir ? dir : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chmod(tmpdir, 0777), 0); /* uid 1234 creates a file there */
	return 0;
}

static int rm_tmp(void **state)
{
	(void)state;
	char p[300];
	snprintf(p, sizeof(p), "%s/made", tmpdir);
	unlink(p);
	rmdir(tmpdir);
	return 0;
}

static void sequence(void **state)
{
	(void)state;
	if (!have_root_caps())
		skip();
	expect_child(child_sequence, 0);
	char p[300];
	snprintf(p, sizeof(p), "%s/made", tmpdir);
	unlink(p);
	expect_child(child_sequence, 1); /* a share with dev: CAP_MKNOD too */
}

static void no_share(void **state)
{
	(void)state;
	expect_child(child_no_share, 0);
}

static void unprivileged(void **state)
{
	(void)state;
	expect_child(child_unprivileged, 0);
}

static void user_with_caps(void **state)
{
	(void)state;
	if (!have_root_caps())
		skip();
	expect_child(child_user_with_caps, 0);
}

/* ---- the options ---- */

static void share_options(void **state)
{
	(void)state;
	struct virtio_fs_options o;
	struct verr e = {0};
	assert_int_equal(virtio_fs_parse("tag=a,path=/tmp", &o, &e), 0);
	assert_false(o.dev);
	assert_false(o.suid);
	assert_int_equal(virtio_fs_parse("dev,tag=a,path=/tmp,suid", &o, &e), 0);
	assert_true(o.dev);
	assert_true(o.suid);
	assert_int_equal(virtio_fs_parse("tag=a,path=/tmp,dev=1", &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "'dev' takes no value: write ,dev"));
	assert_int_equal(virtio_fs_parse("tag=a,path=/tmp,suid=yes", &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "'suid' takes no value: write ,suid"));
	assert_int_equal(virtio_fs_parse("tag=a,path=/tmp,suid,suid", &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "'suid' is given twice"));
	assert_int_equal(virtio_fs_parse("tag=a,path=/tmp,nosuid", &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "ro, dev and suid"));
}

static int from_json(struct vm_config *c, const char *text, struct verr *e)
{
	config_init(c);
	int r = config_parse_json(c, text, strlen(text), "test.json", e);
	return r < 0 ? r : config_finish(c, e);
}

static void json_options(void **state)
{
	(void)state;
	struct vm_config c;
	struct verr e = {0};
	int r = from_json(&c,
			  "{\"kernel\":\"/k\",\"devices\":[{\"type\":\"fs\",\"tag\":\"a\",\"path\":"
			  "\"/tmp\",\"dev\":true,\"suid\":true},{\"type\":\"fs\",\"tag\":\"b\","
			  "\"path\":\"/tmp\",\"dev\":false}]}",
			  &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	unsigned seen = 0;
	for (unsigned i = 0; i < c.ndevices; i++) {
		if (c.devices[i].type != VM_DEV_FS)
			continue;
		const struct virtio_fs_options *o = &c.devices[i].u.fs;
		bool first = strcmp(o->tag, "a") == 0;
		assert_int_equal(o->dev, first);
		assert_int_equal(o->suid, first);
		seen++;
	}
	assert_int_equal(seen, 2);
	config_free(&c);
	r = from_json(&c,
		      "{\"kernel\":\"/k\",\"devices\":[{\"type\":\"fs\",\"tag\":\"a\",\"path\":"
		      "\"/tmp\",\"suid\":\"yes\"}]}",
		      &e);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(e.msg, "suid"));
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(sequence, make_tmp, rm_tmp),
	    cmocka_unit_test(no_share),
	    cmocka_unit_test(unprivileged),
	    cmocka_unit_test(user_with_caps),
	    cmocka_unit_test(share_options),
	    cmocka_unit_test(json_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
