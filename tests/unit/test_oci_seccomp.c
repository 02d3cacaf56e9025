/* vmm-oci's seccomp compile (oci/seccomp.c): an OCI profile through libseccomp into a raw BPF
 * file, whose verdicts are checked by loading it in a forked child; and the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "oci/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char bpf_path[96];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vmm-oci-seccomp-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(bpf_path, sizeof(bpf_path), "%s/seccomp.bpf", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char p[128];
	unlink(bpf_path);
	snprintf(p, sizeof(p), "%s/made", dir);
	rmdir(p);
	rmdir(dir);
	return 0;
}

static int compile(const char *json, struct verr *e)
{
	json_object *o = json_tokener_parse(json);
	assert_non_null(o);
	int r = oci_seccomp_compile(o, bpf_path, e);
	json_object_put(o);
	return r;
}

/* Loads the program in a child (with no_new_privs) and runs what: its exit code is the result. */
enum probe { MKDIR, GETPID, UMASK_DIRFD };

static int run_filtered(enum probe what)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static struct sock_filter insns[4096];
		int fd = open(bpf_path, O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, insns, sizeof(insns));
		if (n <= 0 || n % 8)
			_exit(200);
		struct sock_fprog prog = {.len = (unsigned short)(n / 8), .filter = insns};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			_exit(201);
		char p[128];
		snprintf(p, sizeof(p), "%s/made", dir);
		/* Raw system calls only from here: a sanitizer's runtime would make calls the
		 * allow-list profile refuses. */
		long v = 202;
		switch (what) {
		case MKDIR:
			v = syscall(SYS_mkdir, p, 0700) < 0 ? errno : 0;
			break;
		case GETPID:
			v = syscall(SYS_getpid) > 0 ? 0 : 1;
			break;
		case UMASK_DIRFD:
			v = syscall(SYS_mkdirat, AT_FDCWD, p, 0700) < 0 ? errno : 0;
			break;
		}
		syscall(SYS_exit_group, v);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void blocks_mkdir_with_errno(void **state)
{
	(void)state;
	struct verr e = {0};
	assert_int_equal(compile("{\"defaultAction\": \"SCMP_ACT_ALLOW\", "
				 "\"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X86\"], "
				 "\"syscalls\": [{\"names\": [\"mkdir\", \"mkdirat\", "
				 "\"no_such_syscall_at_all\"], \"action\": \"SCMP_ACT_ERRNO\", "
				 "\"errnoRet\": 13}, {\"names\": [\"getpid\"], \"action\": "
				 "\"SCMP_ACT_ALLOW\"}]}",
				 &e),
			 0);
	struct stat st;
	assert_int_equal(stat(bpf_path, &st), 0);
	assert_true(st.st_size > 0 && st.st_size % 8 == 0);
	assert_int_equal(run_filtered(MKDIR), EACCES);
	assert_int_equal(run_filtered(UMASK_DIRFD), EACCES);
	assert_int_equal(run_filtered(GETPID), 0);

	/* without errnoRet, EPERM; an argument condition that does not match lets it through */
	assert_int_equal(compile("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
				 "{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\"}]}",
				 &e),
			 0);
	assert_int_equal(run_filtered(MKDIR), EPERM);
	assert_int_equal(compile("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
				 "{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\", "
				 "\"args\": [{\"index\": 1, \"value\": 511, \"op\": "
				 "\"SCMP_CMP_EQ\"}]}]}",
				 &e),
			 0);
	assert_int_equal(run_filtered(MKDIR), 0); /* mode 0700, not 0777: allowed */
	char p[128];
	snprintf(p, sizeof(p), "%s/made", dir);
	assert_int_equal(rmdir(p), 0);

	/* a default of ERRNO with an allow-list: what is not listed fails with defaultErrnoRet */
	assert_int_equal(
	    compile("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38, "
		    "\"syscalls\": [{\"names\": [\"exit\", \"exit_group\", \"getpid\", "
		    "\"open\", \"openat\", \"read\", \"close\"], \"action\": "
		    "\"SCMP_ACT_ALLOW\"}]}",
		    &e),
	    0);
	assert_int_equal(run_filtered(MKDIR), ENOSYS);
	assert_int_equal(run_filtered(GETPID), 0);
}

static void refusals(void **state)
{
	(void)state;
	struct {
		const char *json, *says;
	} bad[] = {
	    {"[]", "linux.seccomp: expected an object"},
	    {"{}", "defaultAction: missing"},
	    {"{\"defaultAction\": \"SCMP_ACT_NOPE\"}", "'SCMP_ACT_NOPE' is not a seccomp action"},
	    {"{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}", "needs a listener"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_VAX\"]}",
	     "architectures[0]: not an architecture"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": {}}", "are arrays"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"]}]}",
	     "syscalls[0]: give names"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"], "
	     "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": -1}]}",
	     "errnoRet must be an errno number"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"], "
	     "\"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 9, \"value\": 1, \"op\": "
	     "\"SCMP_CMP_EQ\"}]}]}",
	     "syscalls[0].args[0]: give {index 0-5"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"], "
	     "\"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": "
	     "\"SCMP_CMP_ABOUT\"}]}]}",
	     "give {index 0-5"},
	    {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [7], "
	     "\"action\": \"SCMP_ACT_ERRNO\"}]}",
	     "names[0]: expected a string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct verr e = {0};
		unlink(bpf_path);
		assert_true(compile(bad[i].json, &e) < 0);
		if (!strstr(e.msg, bad[i].says))
			fail_msg("%s: got '%s', want '%s'", bad[i].json, e.msg, bad[i].says);
		assert_non_null(strstr(e.msg, "config.json: linux.seccomp"));
		assert_int_equal(access(bpf_path, F_OK), -1); /* nothing written */
	}
	/* a path that cannot be written */
	json_object *o = json_tokener_parse("{\"defaultAction\": \"SCMP_ACT_ALLOW\"}");
	struct verr e = {0};
	assert_true(oci_seccomp_compile(o, "/nonexistent/dir/seccomp.bpf", &e) < 0);
	assert_non_null(strstr(e.msg, "cannot write /nonexistent/dir/seccomp.bpf"));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(blocks_mkdir_with_errno),
	    cmocka_unit_test(refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
