/* vmm-oci's config.json mapping (oci/spec.c): what each part of a podman- or containerd-written
 * spec becomes in vmm's machine description, and each refusal's line. */
#include "oci/cgroup.h"
#include "oci/net.h"
#include "oci/spec.h"
#include "vmm/config/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char bundle[PATH_MAX], rootdir[PATH_MAX + 16];

static int setup(void **state)
{
	(void)state;
	snprintf(bundle, sizeof(bundle), "/tmp/test_oci_spec.XXXXXX");
	if (!mkdtemp(bundle))
		return -1;
	snprintf(rootdir, sizeof(rootdir), "%s/rootfs", bundle);
	return mkdir(rootdir, 0755);
}

static int teardown(void **state)
{
	(void)state;
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/config.json", bundle);
	unlink(p);
	snprintf(p, sizeof(p), "%s/file", bundle);
	unlink(p);
	rmdir(rootdir);
	rmdir(bundle);
	return 0;
}

static const struct oci_vm_opts opts = {.api_sock = "/run/vmm-oci/c/vmm.sock",
					.pid_file = "/run/vmm-oci/c/vmm.pid",
					.console_socket = "/tmp/console.sock",
					.log_path = "/b/log.json",
					.log_format = "json"};

/* Maps text (with %s for the root directory, given twice at most) and returns the result. */
static json_object *map(const char *fmt, struct verr *e, int *r)
{
	char text[8192];
	snprintf(text, sizeof(text), fmt, rootdir, rootdir);
	json_object *spec = json_tokener_parse(text);
	assert_non_null(spec);
	json_object *vm = NULL;
	*r = oci_spec_to_vm(spec, bundle, &opts, &vm, e);
	json_object_put(spec);
	return vm;
}

static const char *str(json_object *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	json_object *cur = o;
	for (char *save, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		if (json_object_get_type(cur) == json_type_array)
			cur = json_object_array_get_idx(cur, (size_t)atoi(k));
		else if (!json_object_object_get_ex(cur, k, &cur))
			return NULL;
	}
	return cur ? json_object_get_string(cur) : NULL;
}

#define PODMAN                                                                                     \
	"{\"ociVersion\":\"1.0.2-dev\",\"root\":{\"path\":\"%s\",\"readonly\":true},\"hostname\":" \
	"\"a1b2c3d4e5f6\","                                                                        \
	"\"process\":{\"terminal\":true,\"user\":{\"uid\":1000,\"gid\":100,\"umask\":18},"         \
	"\"args\":[\"/bin/sh\",\"-c\",\"echo "                                                     \
	"hi\"],\"env\":[\"PATH=/usr/bin:/bin\",\"TERM=xterm\"],"                                   \
	"\"cwd\":\"/"                                                                              \
	"srv\",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":20000,\"soft\":20000}]},"         \
	"\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"           \
	"{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"},"                      \
	"{\"destination\":\"/dev/shm\",\"type\":\"bind\",\"source\":\"/var/"                       \
	"shm\",\"options\":[\"bind\"]},"                                                           \
	"{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"/run/c/hosts\","           \
	"\"options\":[\"bind\",\"rprivate\"]},"                                                    \
	"{\"destination\":\"/vol\",\"type\":\"bind\",\"source\":\"/srv/vol\","                     \
	"\"options\":[\"rw\",\"rprivate\",\"rbind\"]},"                                            \
	"{\"destination\":\"/ro\",\"type\":\"bind\",\"source\":\"/srv/ro\","                       \
	"\"options\":[\"ro\",\"rprivate\",\"rbind\"]},"                                            \
	"{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\"}],"         \
	"\"linux\":{\"resources\":{\"memory\":{\"limit\":268435456},"                              \
	"\"cpu\":{\"quota\":150000,\"period\":100000}}},"                                          \
	"\"annotations\":{\"io.podman.x\":\"1\",\"io.vmm.memory\":\"300\"}}"

static void podman_spec(void **state)
{
	(void)state;
	struct verr e = {0};
	int r;
	json_object *vm = map(PODMAN, &e, &r);
	assert_int_equal(r, 0);
	assert_string_equal(str(vm, "rootfs"), rootdir);
	assert_string_equal(str(vm, "rootfs_readonly"), "true");
	assert_string_equal(str(vm, "enter_rootfs"), "true"); /* podman cp of a running one */
	assert_string_equal(str(vm, "process.args.2"), "echo hi");
	assert_string_equal(str(vm, "process.env.1"), "TERM=xterm");
	assert_string_equal(str(vm, "process.cwd"), "/srv");
	assert_string_equal(str(vm, "process.user.uid"), "1000");
	assert_string_equal(str(vm, "process.user.gid"), "100");
	assert_string_equal(str(vm, "process.terminal"), "true");
	assert_string_equal(str(vm, "hostname"), "a1b2c3d4e5f6");
	/* the annotation wins over memory.limit (256 MiB): it comes later */
	assert_string_equal(str(vm, "memory_mib"), "300");
	assert_string_equal(str(vm, "cpus"), "2"); /* 1.5 CPUs round up */
	/* binds become volumes, ro kept; /dev/shm and the kernel file systems stay the agent's */
	json_object *vols;
	assert_true(json_object_object_get_ex(vm, "volumes", &vols));
	assert_int_equal(json_object_array_length(vols), 3);
	assert_string_equal(str(vm, "volumes.0.guest"), "/etc/hosts");
	assert_string_equal(str(vm, "volumes.0.host"), "/run/c/hosts");
	assert_null(str(vm, "volumes.1.ro"));
	assert_string_equal(str(vm, "volumes.2.host"), "/srv/ro");
	assert_string_equal(str(vm, "volumes.2.ro"), "true");
	/* what the runtime adds */
	assert_string_equal(str(vm, "api_sock"), opts.api_sock);
	assert_string_equal(str(vm, "pid_file"), opts.pid_file);
	assert_string_equal(str(vm, "console_socket"), opts.console_socket);
	assert_string_equal(str(vm, "paused"), "true");
	assert_string_equal(str(vm, "detach"), "true");
	assert_string_equal(str(vm, "log.path"), "/b/log.json");
	assert_string_equal(str(vm, "log.format"), "json");
	json_object_put(vm);
}

/* The process's settings and linux.sysctl/maskedPaths/readonlyPaths/seccomp become vmm's keys,
 * which vmm's own parser takes as they are. */
static void process_settings(void **state)
{
	(void)state;
	char text[PATH_MAX + 2048], bpf[PATH_MAX + 32];
	snprintf(bpf, sizeof(bpf), "%s/seccomp.bpf", bundle);
	snprintf(
	    text, sizeof(text),
	    "{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],"
	    "\"user\":{\"uid\":0,\"gid\":0,\"umask\":23,\"additionalGids\":[10,11]},"
	    "\"noNewPrivileges\":true,\"oomScoreAdj\":100,"
	    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":200,\"soft\":100},"
	    "{\"type\":\"RLIMIT_CORE\",\"hard\":18446744073709551615,\"soft\":0}],"
	    "\"capabilities\":{\"bounding\":[\"CAP_NET_BIND_SERVICE\"],\"effective\":"
	    "[\"CAP_NET_BIND_SERVICE\"],\"permitted\":[\"CAP_NET_BIND_SERVICE\"]}},"
	    "\"linux\":{\"sysctl\":{\"kernel.domainname\":\"example.org\"},"
	    "\"maskedPaths\":[\"/proc/kcore\",\"/proc/keys\"],\"readonlyPaths\":[\"/proc/sys\"],"
	    "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":"
	    "[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\"}]}}}",
	    rootdir);
	json_object *spec = json_tokener_parse(text), *vm = NULL;
	assert_non_null(spec);
	struct oci_vm_opts o = opts;
	o.seccomp_bpf = bpf;
	struct verr e = {0};
	assert_int_equal(oci_spec_to_vm(spec, bundle, &o, &vm, &e), 0);
	assert_string_equal(str(vm, "process.umask"), "23");
	assert_string_equal(str(vm, "process.user.additional_gids.1"), "11");
	assert_string_equal(str(vm, "process.no_new_privileges"), "true");
	assert_string_equal(str(vm, "process.oom_score_adj"), "100");
	assert_string_equal(str(vm, "process.rlimits.0.type"), "RLIMIT_NOFILE");
	assert_string_equal(str(vm, "process.rlimits.0.soft"), "100");
	assert_string_equal(str(vm, "process.rlimits.1.hard"), "18446744073709551615");
	assert_string_equal(str(vm, "process.capabilities.bounding.0"), "CAP_NET_BIND_SERVICE");
	assert_null(str(vm, "process.capabilities.ambient"));
	assert_string_equal(str(vm, "process.seccomp_bpf"), bpf);
	json_object *sc, *dn;
	assert_true(json_object_object_get_ex(vm, "sysctl", &sc)); /* str() splits at the dots */
	assert_true(json_object_object_get_ex(sc, "kernel.domainname", &dn));
	assert_string_equal(json_object_get_string(dn), "example.org");
	assert_string_equal(str(vm, "masked_paths.1"), "/proc/keys");
	assert_string_equal(str(vm, "readonly_paths.0"), "/proc/sys");
	struct stat st;
	assert_int_equal(stat(bpf, &st), 0);
	assert_true(st.st_size > 0 && st.st_size % 8 == 0);

	/* vmm reads the mapping as it is */
	struct vm_config c;
	config_init(&c);
	const char *vj = json_object_to_json_string(vm);
	assert_int_equal(config_parse_json(&c, vj, strlen(vj), "vm.json", &e), 0);
	assert_int_equal(c.process.ngroups, 2);
	assert_true(c.process.umask_given && c.process.umask == 23);
	assert_true(c.process.no_new_privs);
	assert_int_equal(c.process.nrlimits, 2);
	assert_true(c.process.rlimits[1].hard == UINT64_MAX);
	assert_true(c.process.caps[0] == 1ull << 10 && c.process.caps[4] == 0);
	assert_int_equal(c.process.bpf_insns, (unsigned)(st.st_size / 8));
	assert_int_equal(c.process.nsysctl, 1);
	assert_int_equal(c.process.nmasked, 2);
	config_free(&c);
	json_object_put(vm);

	/* refusals: a profile with nowhere to go, a bad set, a bad profile */
	assert_int_equal(oci_spec_to_vm(spec, bundle, &opts, &vm, &e), -EINVAL);
	assert_string_equal(e.msg,
			    "config.json: linux.seccomp: no place to compile the profile to");
	json_object_put(spec);
	unlink(bpf);
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],\"capabilities\":"
	     "{\"bounding\":\"CAP_CHOWN\"}}}",
	     "config.json: process.capabilities.bounding: expected an array, got a string"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],\"rlimits\":"
	     "[{\"soft\":1}]}}",
	     "config.json: process.rlimits[0].type: missing"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],"
	     "\"noNewPrivileges\":\"yes\"}}",
	     "config.json: process.noNewPrivileges: expected a boolean, got a string"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"linux\":"
	     "{\"sysctl\":{\"kernel.domainname\":1}}}",
	     "config.json: linux.sysctl.kernel.domainname: expected a string"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"linux\":"
	     "{\"maskedPaths\":[1]}}",
	     "config.json: linux.maskedPaths[0]: expected a string"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"linux\":"
	     "{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}}}",
	     "config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY needs a listener"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;
		json_object *v2;
		char t2[PATH_MAX + 512];
		snprintf(t2, sizeof(t2), bad[i].text, rootdir);
		json_object *sp = json_tokener_parse(t2);
		assert_non_null(sp);
		r = oci_spec_to_vm(sp, bundle, &o, &v2, &e);
		json_object_put(sp);
		assert_true(r < 0);
		assert_null(v2);
		if (!strstr(e.msg, bad[i].want))
			fail_msg("%s: got '%s'", bad[i].want, e.msg);
	}
	unlink(bpf);
}

/* containerd's root.path is relative to the bundle; no limits give vmm's defaults */
static void containerd_relative_root(void **state)
{
	(void)state;
	struct verr e = {0};
	int r;
	json_object *vm =
	    map("{\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"true\"],"
		"\"noNewPrivileges\":true},\"linux\":{\"resources\":{\"memory\":"
		"{\"limit\":-1}}},\"mounts\":[{\"destination\":\"/dev/shm\",\"type\":"
		"\"tmpfs\",\"source\":\"shm\"},{\"destination\":\"/run\",\"type\":"
		"\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\","
		"\"mode=755\",\"size=65536k\"]}]}",
		&e, &r);
	assert_int_equal(r, 0);
	char want[PATH_MAX + 32];
	snprintf(want, sizeof(want), "%s/rootfs", bundle);
	assert_string_equal(str(vm, "rootfs"), want);
	assert_null(str(vm, "rootfs_readonly"));
	assert_null(str(vm, "memory_mib"));
	assert_null(str(vm, "cpus"));
	/* containerd's /run: a tmpfs in the guest with its mode and size (/dev/shm the agent's) */
	assert_string_equal(str(vm, "volumes.0.guest"), "/run");
	assert_string_equal(str(vm, "volumes.0.tmpfs"), "true");
	assert_string_equal(str(vm, "volumes.0.mode"), "755");
	assert_string_equal(str(vm, "volumes.0.size_mib"), "64");
	assert_null(str(vm, "volumes.1"));
	assert_null(str(vm, "process.user"));
	json_object_put(vm);
}

static void refusals(void **state)
{
	(void)state;
	static const struct {
		const char *spec, *msg;
	} cases[] = {
	    {"{\"process\":{\"args\":[\"x\"]}}", "config.json: root.path: missing"},
	    {"{\"root\":{\"path\":\"/nonexistent-oci\"},\"process\":{\"args\":[\"x\"]}}",
	     "config.json: root.path: /nonexistent-oci: No such file or directory"},
	    {"{\"root\":{\"path\":\"%s/config.json\"},\"process\":{\"args\":[\"x\"]}}",
	     "is not a directory"},
	    {"{\"root\":{\"path\":7},\"process\":{\"args\":[\"x\"]}}",
	     "config.json: root.path: expected a string, got an integer"},
	    {"{\"root\":{\"path\":\"%s\",\"readonly\":\"yes\"},\"process\":{\"args\":[\"x\"]}}",
	     "config.json: root.readonly: expected a boolean, got a string"},
	    {"{\"root\":{\"path\":\"%s\"}}", "config.json: process: missing"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[]}}",
	     "config.json: process.args: missing or empty"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\",3]}}",
	     "config.json: process.args[1]: expected a string, got an integer"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],\"env\":[\"NOEQ\"]}}",
	     "config.json: process.env[0]: 'NOEQ' is not KEY=VALUE"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],\"cwd\":\"srv\"}}",
	     "config.json: process.cwd: 'srv' is not an absolute path"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"],\"user\":{\"uid\":-3}}}",
	     "config.json: process.user.uid: -3 is out of range"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"annotations\":"
	     "{\"io.vmm.cpu\":\"2\"}}",
	     "config.json: annotations.io.vmm.cpu: unknown vmm annotation"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"annotations\":"
	     "{\"io.vmm.cpus\":\"two\"}}",
	     "config.json: annotations.io.vmm.cpus: 'two' is not a positive number"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"linux\":{\"resources\":"
	     "{\"memory\":{\"limit\":1048576}}}}",
	     "config.json: linux.resources.memory.limit: 1048576 bytes is below the 32 MiB"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"mounts\":"
	     "[{\"destination\":\"/data\",\"type\":\"nfs\",\"source\":\"x\"}]}",
	     "config.json: mounts[0].type: a 'nfs' mount at /data is not supported"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"mounts\":"
	     "[{\"destination\":\"rel\",\"type\":\"bind\",\"source\":\"/x\"}]}",
	     "config.json: mounts[0].destination: 'rel' is not an absolute path"},
	    {"{\"root\":{\"path\":\"%s\"},\"process\":{\"args\":[\"sh\"]},\"mounts\":"
	     "[{\"destination\":\"/v\",\"type\":\"bind\"}]}",
	     "config.json: mounts[0].source: missing for a bind mount"},
	};
	char cfg[PATH_MAX + 32];
	snprintf(cfg, sizeof(cfg), "%s/config.json", bundle);
	FILE *f = fopen(cfg, "w"); /* a file where a directory is wanted */
	assert_non_null(f);
	fclose(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[4096];
		/* the one case naming config.json needs the bundle, the others the root */
		if (strstr(cases[i].spec, "%s/config.json"))
			snprintf(text, sizeof(text), cases[i].spec, bundle);
		else
			snprintf(text, sizeof(text), cases[i].spec, rootdir);
		json_object *spec = json_tokener_parse(text);
		assert_non_null(spec);
		json_object *vm = (json_object *)1;
		struct verr e = {0};
		int r = oci_spec_to_vm(spec, bundle, &opts, &vm, &e);
		json_object_put(spec);
		if (r >= 0 || !strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: r=%d, message '%s', wanted '%s'", i, r, e.msg,
				 cases[i].msg);
		assert_null(vm);
	}
}

static void read_bundle(void **state)
{
	(void)state;
	json_object *spec;
	struct verr e = {0};
	assert_int_equal(oci_spec_read(bundle, &spec, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "config.json: no such file"));
	char cfg[PATH_MAX + 32];
	snprintf(cfg, sizeof(cfg), "%s/config.json", bundle);
	FILE *f = fopen(cfg, "w");
	assert_non_null(f);
	fputs("{\"root\": {\"path\": 'x'}}", f);
	fclose(f);
	assert_true(oci_spec_read(bundle, &spec, &e) < 0);
	assert_non_null(strstr(e.msg, "config.json: not valid JSON near byte"));
	f = fopen(cfg, "w");
	fputs("[1]", f);
	fclose(f);
	assert_true(oci_spec_read(bundle, &spec, &e) < 0);
	assert_non_null(strstr(e.msg, "the top level must be an object"));
	f = fopen(cfg, "w");
	fputs("{\"ociVersion\": \"1.0.2\"}\n", f);
	fclose(f);
	assert_int_equal(oci_spec_read(bundle, &spec, &e), 0);
	json_object_put(spec);
}

/* exec's --process file */
static void exec_process(void **state)
{
	(void)state;
	json_object *p = json_tokener_parse(
	    "{\"args\":[\"ls\",\"-l\"],\"env\":[\"A=1\"],\"cwd\":\"/tmp\",\"terminal\":true,"
	    "\"user\":{\"uid\":5,\"gid\":6}}");
	struct oci_process op;
	struct verr e = {0};
	assert_int_equal(oci_process_parse(p, "process", &op, &e), 0);
	assert_string_equal(op.args[1], "-l");
	assert_null(op.args[2]);
	assert_string_equal(op.env[0], "A=1");
	assert_string_equal(op.cwd, "/tmp");
	assert_true(op.terminal);
	assert_int_equal(op.uid, 5);
	assert_int_equal(op.gid, 6);
	oci_process_free(&op);
	json_object_put(p);
	p = json_tokener_parse("{\"args\":[\"\"]}");
	assert_int_equal(oci_process_parse(p, "process", &op, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "process.args[0]: the command is empty"));
	json_object_put(p);
	p = json_tokener_parse("{\"args\":[\"ls\"]}");
	assert_int_equal(oci_process_parse(p, "process", &op, &e), 0);
	assert_int_equal(op.uid, -1);
	assert_null(op.env);
	oci_process_free(&op);
	json_object_put(p);
	/* podman's process.json for exec, whole, as vmm's process: the settings come along */
	p = json_tokener_parse(
	    "{\"args\":[\"id\"],\"cwd\":\"/\",\"terminal\":false,\"noNewPrivileges\":true,"
	    "\"user\":{\"uid\":1000,\"gid\":1000,\"umask\":18,\"additionalGids\":[10]},"
	    "\"capabilities\":{\"bounding\":[\"CAP_CHOWN\"],\"effective\":[\"CAP_CHOWN\"]},"
	    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":20000,\"soft\":20000}]}");
	json_object *vp = NULL;
	assert_int_equal(oci_process_to_vm(p, "process", &vp, &e), 0);
	assert_string_equal(str(vp, "args.0"), "id");
	assert_string_equal(str(vp, "user.uid"), "1000");
	assert_string_equal(str(vp, "user.additional_gids.0"), "10");
	assert_string_equal(str(vp, "umask"), "18");
	assert_string_equal(str(vp, "no_new_privileges"), "true");
	assert_string_equal(str(vp, "capabilities.bounding.0"), "CAP_CHOWN");
	assert_string_equal(str(vp, "rlimits.0.soft"), "20000");
	json_object_put(vp);
	json_object_put(p);
	p = json_tokener_parse("{\"args\":[\"id\"],\"capabilities\":{\"bounding\":7}}");
	assert_int_equal(oci_process_to_vm(p, "process", &vp, &e), -EINVAL);
	assert_null(vp);
	assert_non_null(strstr(e.msg, "process.capabilities.bounding"));
	json_object_put(p);
}

/* the interface a VM takes over in podman's namespace, from `ip -j addr show` */
static void net_pick(void **state)
{
	(void)state;
	static const char text[] =
	    "[{\"ifindex\":1,\"ifname\":\"lo\",\"mtu\":65536,\"link_type\":\"loopback\","
	    "\"address\":\"00:00:00:00:00:00\",\"addr_info\":[{\"family\":\"inet\","
	    "\"local\":\"127.0.0.1\",\"prefixlen\":8}]},"
	    "{\"ifindex\":3,\"ifname\":\"vmmtap0\",\"mtu\":1500,\"link_type\":\"ether\","
	    "\"address\":\"aa:aa:aa:aa:aa:aa\"},"
	    "{\"ifindex\":2,\"link_index\":9,\"ifname\":\"eth0\",\"mtu\":1450,"
	    "\"link_type\":\"ether\",\"address\":\"5e:8f:1c:02:33:44\",\"addr_info\":["
	    "{\"family\":\"inet6\",\"local\":\"fe80::1\",\"prefixlen\":64,\"scope\":\"link\"},"
	    "{\"family\":\"inet6\",\"local\":\"fd00::9\",\"prefixlen\":64,\"scope\":\"global\","
	    "\"dadfailed\":true,\"tentative\":true},"
	    "{\"family\":\"inet6\",\"local\":\"fd00::7\",\"prefixlen\":64,\"scope\":\"global\"},"
	    "{\"family\":\"inet\",\"local\":\"10.88.0.7\",\"prefixlen\":16}]}]";
	char name[16], mac[18], ip[20], ip6[OCI_IP6_LEN];
	int mtu = 0;
	struct verr e = {0};
	assert_int_equal(oci_net_pick(text, name, mac, &mtu, ip, ip6, &e), 1);
	assert_string_equal(name, "eth0");
	assert_string_equal(mac, "5e:8f:1c:02:33:44");
	assert_int_equal(mtu, 1450);
	assert_string_equal(ip, "10.88.0.7/16");
	assert_string_equal(ip6, "fd00::7/64"); /* not the link-local one, nor one DAD refused */
	/* loopback only (--network none): nothing to take over */
	assert_int_equal(oci_net_pick("[{\"ifname\":\"lo\",\"link_type\":\"loopback\"}]", name, mac,
				      &mtu, ip, ip6, &e),
			 0);
	assert_int_equal(oci_net_pick("not json", name, mac, &mtu, ip, ip6, &e), -EINVAL);
	/* eth0's routes: the default one's gateway, a route on the link (Calico's), one through a
	 * gateway; not the kernel's own subnet route, another device's, or a blackhole */
	char gw[INET6_ADDRSTRLEN];
	json_object *routes = json_object_new_array();
	assert_int_equal(
	    oci_net_routes("[{\"dst\":\"default\",\"gateway\":\"169.254.1.1\",\"dev\":\"eth0\","
			   "\"flags\":[]},{\"dst\":\"169.254.1.1\",\"dev\":\"eth0\",\"scope\":"
			   "\"link\",\"flags\":[]},{\"dst\":\"10.88.0.0/16\",\"dev\":\"eth0\","
			   "\"protocol\":\"kernel\",\"scope\":\"link\",\"prefsrc\":\"10.88.0.7\"},"
			   "{\"dst\":\"10.9.0.0/16\",\"gateway\":\"10.88.0.1\",\"dev\":\"eth0\"},"
			   "{\"dst\":\"10.7.0.0/16\",\"dev\":\"eth1\"},{\"type\":\"blackhole\","
			   "\"dst\":\"10.6.0.0/16\",\"dev\":\"eth0\"}]",
			   "eth0", false, gw, routes, &e),
	    0);
	assert_string_equal(gw, "169.254.1.1");
	/* IPv6 into the same array: not the kernel's subnet or fe80::/64 routes; a host route is a
	 * /128; a default route learned from an advertisement is taken as it is */
	assert_int_equal(
	    oci_net_routes(
		"[{\"dst\":\"fd00::/64\",\"dev\":\"eth0\",\"protocol\":\"kernel\","
		"\"metric\":256,\"flags\":[],\"pref\":\"medium\"},{\"dst\":\"fe80::/64\","
		"\"dev\":\"eth0\",\"protocol\":\"kernel\",\"metric\":256},{\"dst\":"
		"\"fd09::/16\",\"gateway\":\"fd00::1\",\"dev\":\"eth0\",\"metric\":1024},"
		"{\"dst\":\"fd08::5\",\"dev\":\"eth0\",\"metric\":1024},{\"dst\":"
		"\"default\",\"gateway\":\"fe80::1\",\"dev\":\"eth0\",\"protocol\":\"ra\","
		"\"metric\":1024,\"expires\":1798}]",
		"eth0", true, gw, routes, &e),
	    0);
	assert_string_equal(gw, "fe80::1");
	assert_string_equal(json_object_to_json_string_ext(routes, JSON_C_TO_STRING_PLAIN),
			    "[{\"dst\":\"169.254.1.1\\/32\"},{\"dst\":\"10.9.0.0\\/16\","
			    "\"via\":\"10.88.0.1\"},{\"dst\":\"fd09::\\/16\",\"via\":\"fd00::1\"},"
			    "{\"dst\":\"fd08::5\\/128\"}]");
	json_object_put(routes);
	/* more than a VM takes, several next hops, not JSON: one line each */
	char many[4096] = "[";
	for (unsigned i = 0; i <= VMM_MAX_ROUTES; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
			 "%s{\"dst\":\"10.%u.0.0/16\",\"dev\":\"eth0\"}", i ? "," : "", i);
	strcat(many, "]");
	routes = json_object_new_array();
	assert_int_equal(oci_net_routes(many, "eth0", false, gw, routes, &e), -E2BIG);
	assert_non_null(strstr(e.msg, "eth0 has more than 8 routes"));
	json_object_put(routes);
	routes = json_object_new_array();
	assert_int_equal(oci_net_routes("[{\"dst\":\"default\",\"nexthops\":[]}]", "eth0", false,
					gw, routes, &e),
			 -ENOTSUP);
	assert_int_equal(oci_net_routes("{}", "eth0", true, gw, routes, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "'ip -j -6 route show' printed no JSON array"));
	json_object_put(routes);
	/* the spec's namespace: a path to join, none, or a new one */
	const char *path;
	json_object *spec = json_tokener_parse(
	    "{\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\","
	    "\"path\":\"/run/netns/netns-1\"}]}}");
	assert_int_equal(oci_net_namespace(spec, &path, &e), 1);
	assert_string_equal(path, "/run/netns/netns-1");
	json_object_put(spec);
	spec = json_tokener_parse("{\"linux\":{\"namespaces\":[{\"type\":\"network\"}]}}");
	assert_int_equal(oci_net_namespace(spec, &path, &e), 0);
	json_object_put(spec);
}

static void touch(const char *dir, const char *name)
{
	char p[2 * PATH_MAX + 80];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
}

/* cgroupsPath under a cgroupfs stand-in: v2 (one tree) and v1 (a tree per controller) */
static void cgroups(void **state)
{
	(void)state;
	char base[] = "/tmp/test_oci_cg.XXXXXX", p[PATH_MAX + 64];
	assert_non_null(mkdtemp(base));
	struct oci_cgroup g;
	struct verr e = {0};
	assert_int_equal(oci_cgroup_prepare(&g, base, NULL, 0, &e), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(oci_cgroup_prepare(&g, base, "/a/../../etc", 0, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "has a '.' or '..' component"));
	assert_int_equal(oci_cgroup_prepare(&g, base, "machine.slice:libpod:x", 0, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "systemd slice"));
	/* v1: only the controllers mounted there */
	snprintf(p, sizeof(p), "%s/memory", base);
	assert_int_equal(mkdir(p, 0755), 0);
	touch(p, "cgroup.procs");
	assert_int_equal(oci_cgroup_prepare(&g, base, "/libpod_parent/libpod-1", 0, &e), 0);
	assert_int_equal(g.n, 1);
	snprintf(p, sizeof(p), "%s/memory/libpod_parent/libpod-1", base);
	assert_string_equal(g.dirs[0], p);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	/* entering needs the kernel's cgroup.procs: a plain directory refuses */
	assert_true(oci_cgroup_enter(&g) < 0);
	oci_cgroup_remove(base, "/libpod_parent/libpod-1");
	assert_int_equal(stat(p, &st), -1);
	snprintf(p, sizeof(p), "%s/memory/libpod_parent", base);
	assert_int_equal(rmdir(p), 0); /* the parent is the engine's: left */
	/* v2: one directory */
	touch(base, "cgroup.controllers");
	assert_int_equal(oci_cgroup_prepare(&g, base, "default/c9", 0, &e), 0);
	assert_int_equal(g.n, 1);
	snprintf(p, sizeof(p), "%s/default/c9", base);
	assert_string_equal(g.dirs[0], p);
	oci_cgroup_remove(base, "default/c9");
	assert_int_equal(stat(p, &st), -1);
	snprintf(p, sizeof(p), "%s/default", base);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/memory/cgroup.procs", base);
	unlink(p);
	snprintf(p, sizeof(p), "%s/memory", base);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/cgroup.controllers", base);
	unlink(p);
	assert_int_equal(rmdir(base), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(podman_spec, setup, teardown),
	    cmocka_unit_test_setup_teardown(process_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(containerd_relative_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(read_bundle, setup, teardown),
	    cmocka_unit_test(exec_process),
	    cmocka_unit_test(net_pick),
	    cmocka_unit_test(cgroups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
