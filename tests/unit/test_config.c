/* The machine description: the command line (vmm/config/options.c), the JSON file
 * (vmm/config/config_json.c) and their equality, every bad key and value, and the device table's
 * slot order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/config/config.h"
#include "vmm/config/device_table.h"
#include "vmm/config/options.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGV(...) ((char *[]){"vmm", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"vmm", __VA_ARGS__}) / sizeof(char *)))
/* Parses into a fresh config (the previous one freed). */
static struct vm_config cfg;
static struct verr err;
static int parse(int argc, char **argv)
{
	config_free(&cfg);
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
	return options_parse(argc, argv, &cfg, &err);
}
#define PARSE(o, ...) ((void)(o), parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__)))

static void options_good(void **state)
{
	(void)state;
	struct vm_config *o = &cfg;
	assert_int_equal(PARSE(o, "--kernel", "k", "--initrd", "i", "--cmdline", "x -- y", "--cpus",
			       "4", "--memory", "512", "--boot-timer"),
			 0);
	assert_string_equal(o->kernel, "k");
	assert_string_equal(o->initrd, "i");
	assert_string_equal(o->cmdline, "x -- y");
	assert_int_equal(o->cpus, 4);
	assert_int_equal(o->memory_mib, 512);
	assert_true(o->boot_timer);
	assert_int_equal(PARSE(o, "-k", "k"), 0);
	assert_int_equal(o->cpus, 1);
	assert_int_equal(o->memory_mib, VMM_DEFAULT_MEMORY_MIB);
	assert_null(o->initrd);
}

static void options_bad(void **state)
{
	(void)state;
	struct vm_config *o = &cfg;
	assert_int_equal(PARSE(o, "-k", "k", "--cpus", "0"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--cpus", "255"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--cpus", "-1"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--cpus", "2x"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--memory", "31"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--memory", "99999999999999999999999"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--memory", ""), -EINVAL);
	setenv("HOME", "/nonexistent", 1); /* no kernel built there, none named */
	unsetenv("XDG_CACHE_HOME");
	unsetenv("VMM_KERNEL");
	assert_int_equal(PARSE(o, "--memory", "64"), -EINVAL); /* no kernel */
	assert_int_equal(PARSE(o, "-k", "k", "--bogus"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "stray"), -EINVAL);
	assert_int_equal(PARSE(o, "-k"), -EINVAL); /* missing value */
}

/* Containers: the command after --, the environment defaults and the vmm.* parameters. */
static void options_container(void **state)
{
	(void)state;
	struct vm_config *o = &cfg;
	char img[] = "/tmp/vmm-test-rootfs-XXXXXX";
	int fd = mkstemp(img);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "-e", "PATH=/bin", "-e", "A=b=c",
			       "-w", "/srv", "-u", "7:8", "--hostname", "box", "--", "ls", "-l"),
			 0);
	assert_true(o->container);
	assert_int_equal(o->process.argc, 2);
	assert_string_equal(o->process.argv[0], "ls");
	assert_string_equal(o->process.argv[1], "-l");
	assert_string_equal(o->process.cwd, "/srv");
	assert_int_equal(o->process.uid, 7);
	assert_int_equal(o->process.gid, 8);
	/* HOME and HOSTNAME defaults, the user's PATH instead of the default one */
	assert_int_equal(o->process.envc, 4);
	assert_string_equal(o->process.env[0], "HOME=/");
	assert_string_equal(o->process.env[1], "HOSTNAME=box");
	assert_string_equal(o->process.env[2], "PATH=/bin");
	assert_string_equal(o->process.env[3], "A=b=c");
	assert_string_equal(o->agent_cmdline, "vmm.rootfs=ro vmm.hostname=box");
	/* --rootfs without --initrd is a container running /bin/sh */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "--rootfs-rw"), 0);
	assert_true(o->container);
	assert_string_equal(o->process.argv[0], "/bin/sh");
	assert_string_equal(o->agent_cmdline, "vmm.rootfs=rw vmm.hostname=vmm");
	/* --rootfs-readonly: the agent is told; it contradicts --rootfs-rw, and needs a container
	 */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "--rootfs-readonly"), 0);
	assert_true(o->rootfs_readonly);
	assert_true(o->devices[0].u.blk.ro);
	assert_string_equal(o->agent_cmdline, "vmm.rootfs=ro vmm.rootro=1 vmm.hostname=vmm");
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "--rootfs-readonly", "--rootfs-rw"),
			 -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "--initrd", img, "--rootfs-readonly"),
			 -EINVAL);
	/* with --initrd it is a plain boot */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "--initrd", img), 0);
	assert_false(o->container);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "-u", "x"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img, "--hostname", "-bad"), -EINVAL);
	assert_int_equal(PARSE(o, "-k", "k", "--", "ls"), -EINVAL); /* no rootfs */
	unlink(img);
}

static char img1[] = "/tmp/vmm-test-cfg1-XXXXXX", img2[] = "/tmp/vmm-test-cfg2-XXXXXX";
static char dir1[] = "/tmp/vmm-test-cfgdir-XXXXXX";

static int setup(void **state)
{
	(void)state;
	int a = mkstemp(img1), b = mkstemp(img2);
	if (a < 0 || b < 0 || !mkdtemp(dir1))
		return -1;
	close(a);
	close(b);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(img1);
	unlink(img2);
	rmdir(dir1);
	config_free(&cfg);
	return 0;
}

static char *dump(const struct vm_config *c)
{
	json_object *o = config_to_json(c);
	assert_non_null(o);
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int from_json(struct vm_config *c, const char *text, struct verr *e)
{
	config_init(c);
	int r = config_parse_json(c, text, strlen(text), "test.json", e);
	return r < 0 ? r : config_finish(c, e);
}

/* --volume and "volumes": the accepted forms (the same struct both ways, the staging share, the
 * agent's key) and every refusal with its line. */
static void volumes(void **state)
{
	(void)state;
	struct vm_config *o = &cfg;
	char d[160], f[160], sub[200], rel[64];
	snprintf(d, sizeof(d), "%s:/data", dir1);
	snprintf(f, sizeof(f), "%s:/etc/hosts:ro", img2);
	snprintf(sub, sizeof(sub), "%s//.:/srv//x/./y/:rw", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--volume", f,
			       "--volume", sub, "--", "ls"),
			 0);
	assert_int_equal(o->nvolumes, 3);
	assert_string_equal(o->volumes[0].host, dir1);
	assert_string_equal(o->volumes[0].guest, "/data");
	assert_true(!o->volumes[0].ro && !o->volumes[0].file);
	assert_string_equal(o->volumes[1].host, img2);
	assert_true(o->volumes[1].ro && o->volumes[1].file);
	assert_string_equal(o->volumes[2].host, dir1); /* realpath'd */
	assert_string_equal(o->volumes[2].guest, "/srv/x/y");
	assert_false(o->volumes[2].ro);
	assert_string_equal(o->agent_cmdline, "vmm.rootfs=ro vmm.hostname=vmm vmm.volumes=3");
	/* one staging share, implicit, its path made later (volumes_stage) */
	unsigned shares = 0;
	for (unsigned i = 0; i < o->ndevices; i++)
		if (o->devices[i].type == VM_DEV_FS) {
			shares++;
			assert_true(o->devices[i].implicit);
			assert_string_equal(o->devices[i].u.fs.tag, VMM_VOLUME_TAG);
			assert_string_equal(o->devices[i].u.fs.path, "");
		}
	assert_int_equal(shares, 1);
	assert_int_equal(config_finish(o, &err), 0); /* idempotent: still one */
	assert_int_equal(o->ndevices, 3);	     /* root, vsock, the staging share */
	/* the same from JSON, and a dump that loads back to itself (without the implicit share) */
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"kernel\":\"k\",\"rootfs\":\"%s\",\"process\":{\"args\":[\"ls\"]},"
		 "\"volumes\":[{\"host\":\"%s\",\"guest\":\"/data\"},{\"host\":\"%s\","
		 "\"guest\":\"/etc/hosts\",\"ro\":true},{\"host\":\"%s\",\"guest\":\"/srv/x/y\","
		 "\"ro\":false}]}",
		 img1, dir1, img2, dir1);
	struct vm_config c2;
	struct verr e = {0};
	assert_int_equal(from_json(&c2, text, &e), 0);
	char *a = dump(o), *b = dump(&c2);
	assert_string_equal(a, b);
	assert_null(strstr(a, VMM_VOLUME_TAG));
	assert_non_null(strstr(a, "\"guest\":\"\\/etc\\/hosts\",\"ro\":true"));
	config_free(&c2);
	assert_int_equal(from_json(&c2, a, &e), 0);
	assert_int_equal(c2.nvolumes, 3);
	assert_string_equal(c2.agent_cmdline, o->agent_cmdline);
	free(b);
	b = dump(&c2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	config_free(&c2);
	/* a relative host path is resolved */
	char *cwd = getcwd(NULL, 0);
	assert_int_equal(chdir("/tmp"), 0);
	snprintf(rel, sizeof(rel), "%s:/r", dir1 + 5);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", rel), 0);
	assert_string_equal(o->volumes[0].host, dir1);
	assert_int_equal(chdir(cwd), 0);
	free(cwd);

	/* refused, each with its line */
	struct {
		const char *spec, *msg;
	} bad[] = {
	    {"/nope",
	     "--volume /nope: not HOST:GUEST[:ro]: write e.g. --volume /srv/data:/data:ro"},
	    {"DIR:/x:rx", "'rx' is not an option: the only ones are :ro (read-only) and :rw"},
	    {"DIR:/x:ro:rw", "'ro:rw' is not an option"},
	    {":/x", "the host path is empty"},
	    {"DIR:", "the guest path is empty"},
	    {"DIR:x", "the guest path 'x' is not an absolute path without '..' components"},
	    {"DIR:/a/../b", "the guest path '/a/../b' is not an absolute path without '..'"},
	    {"DIR:/..", "is not an absolute path without '..'"},
	    {"DIR:/", "the guest path is the container's root '/'"},
	    {"DIR:/./", "the guest path is the container's root '/'"},
	    {"/nonexistent-vmm-test:/x",
	     "--volume /nonexistent-vmm-test:/x: the host path '/nonexistent-vmm-test' cannot be "
	     "used: No such file or directory: give an existing directory or regular file"},
	    {"/dev/null:/x", "the host path '/dev/null' is neither a directory nor a regular file"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char spec[256];
		const char *at = strstr(bad[i].spec, "DIR");
		if (at)
			snprintf(spec, sizeof(spec), "%s%s", dir1, at + 3);
		else
			snprintf(spec, sizeof(spec), "%s", bad[i].spec);
		if (PARSE(o, "-k", "k", "--rootfs", img1, "--volume", spec) != -EINVAL ||
		    !strstr(err.msg, bad[i].msg) || strncmp(err.msg, "--volume ", 9) != 0)
			fail_msg("--volume %s: got '%s'", spec, err.msg);
	}
	/* twice the same guest path (after normalising) */
	snprintf(sub, sizeof(sub), "%s:/data/", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--volume", sub),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "the guest path /data is given twice"));
	/* the same host directory read-only and read-write */
	snprintf(sub, sizeof(sub), "%s:/other:ro", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--volume", sub),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "overlaps the read-write volume of"));
	/* ...but twice read-write is fine */
	snprintf(sub, sizeof(sub), "%s:/other", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--volume", sub), 0);
	/* nothing below a file */
	snprintf(sub, sizeof(sub), "%s:/etc/hosts/x", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", f, "--volume", sub),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "nest under a file volume"));
	/* a container's only */
	assert_int_equal(PARSE(o, "-k", "k", "--initrd", img1, "--volume", d), -EINVAL);
	assert_non_null(strstr(err.msg, "--volume and --tmpfs are for containers"));
	/* vmm's own tag */
	snprintf(sub, sizeof(sub), "tag=vmm-vol,path=%s", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--share", sub), -EINVAL);
	assert_non_null(strstr(err.msg, "the tag 'vmm-vol' is vmm's own"));
	/* the staging share needs a free share slot */
	char specs[VMM_MAX_SHARES][128];
	char *argv[8 + 2 * VMM_MAX_SHARES];
	int argc = 0;
	argv[argc++] = "vmm";
	argv[argc++] = "-k";
	argv[argc++] = "k";
	argv[argc++] = "--rootfs";
	argv[argc++] = img1;
	argv[argc++] = "--volume";
	argv[argc++] = d;
	for (unsigned i = 0; i < VMM_MAX_SHARES; i++) {
		snprintf(specs[i], sizeof(specs[i]), "tag=t%u,path=%s", i, dir1);
		argv[argc++] = "--share";
		argv[argc++] = specs[i];
	}
	argv[argc] = NULL;
	assert_int_equal(parse(argc, argv), -EINVAL);
	assert_non_null(strstr(err.msg, "give at most 7 --share with --volume"));
	assert_int_equal(parse(argc - 2, argv), 0);
	/* at most VMM_MAX_VOLUMES */
	config_free(o);
	config_init(o);
	for (unsigned i = 0; i <= VMM_MAX_VOLUMES; i++) {
		char g[32];
		snprintf(g, sizeof(g), "/v%u", i);
		int r = config_add_volume(o, "volumes[x]", dir1, g, false, &err);
		assert_int_equal(r, i < VMM_MAX_VOLUMES ? 0 : -EINVAL);
	}
	assert_string_equal(err.msg, "volumes[x]: at most 64 volumes and tmpfs mounts");
	/* JSON: keys, types and the same setter's lines */
	struct {
		const char *json, *msg;
	} jbad[] = {
	    {"{\"volumes\":{}}", "volumes: expected an array, got an object"},
	    {"{\"volumes\":[3]}", "volumes[0]: expected an object, got an integer"},
	    {"{\"volumes\":[{\"guest\":\"/x\"}]}", "volumes[0]: a volume needs \"host\""},
	    {"{\"volumes\":[{\"host\":\"/tmp\"}]}", "volumes[0]: a volume needs \"guest\""},
	    {"{\"volumes\":[{\"host\":\"/tmp\",\"guest\":\"/x\",\"rw\":true}]}",
	     "volumes[0].rw: unknown key: a volume has host, guest and ro"},
	    {"{\"volumes\":[{\"host\":\"/tmp\",\"guest\":\"/x\",\"ro\":1}]}",
	     "volumes[0].ro: expected a boolean, got an integer"},
	    {"{\"volumes\":[{\"host\":\"/tmp\",\"guest\":\"x\"}]}",
	     "volumes[0]: the guest path 'x' is not an absolute path"},
	};
	for (size_t i = 0; i < sizeof(jbad) / sizeof(jbad[0]); i++) {
		struct verr je = {0};
		config_free(&c2);
		if (from_json(&c2, jbad[i].json, &je) != -EINVAL || !strstr(je.msg, jbad[i].msg))
			fail_msg("%s: got '%s'", jbad[i].json, je.msg);
		config_free(&c2);
	}
}

/* The same machine from flags and from JSON: the same struct (every field that matters
 * compared, and the whole description through config_to_json). */
static void flags_equal_json(void **state)
{
	(void)state;
	char disk[128], share[128], *j;
	snprintf(disk, sizeof(disk), "path=%s,ro,id=ser1", img2);
	snprintf(share, sizeof(share), "tag=data,path=%s,ro,cache=none", dir1);
	assert_int_equal(
	    PARSE(&cfg, "-k", "/k", "--cpus", "3", "--memory", "256", "--cmdline", "quiet",
		  "--rootfs", img1, "--disk", disk, "--net",
		  "tap=tap0,mac=02:00:00:00:00:01,mtu=1400", "--vsock", "cid=5,uds=/tmp/v.sock",
		  "--rng", "--share", share, "-e", "A=1", "-e", "B=2", "-w", "/srv", "-u", "7:8",
		  "--hostname", "box", "--ip", "10.0.2.2/24", "--gateway", "10.0.2.1", "--ip6",
		  "fd00::2/64", "--gateway6", "fe80::1", "--route", "169.254.1.1/32", "--route",
		  "10.9.0.0/16,via=10.0.2.3", "--route", "fd09::/16,via=fd00::3", "--tty",
		  "--boot-timer", "--seccomp=off", "--api-sock", "/tmp/api", "--paused",
		  "--metrics", "/tmp/m", "--log", "/tmp/l", "--log-level", "debug", "--log-format",
		  "json", "--pid-file", "/tmp/p", "--", "ls", "-l"),
	    0);
	char text[4096];
	snprintf(
	    text, sizeof(text),
	    "{\"kernel\":\"/k\",\"cpus\":3,\"memory_mib\":256,\"cmdline\":\"quiet\","
	    "\"rootfs\":\"%s\",\"devices\":[{\"type\":\"blk\",\"path\":\"%s\","
	    "\"readonly\":true,\"serial\":\"ser1\"},{\"type\":\"net\",\"tap\":\"tap0\","
	    "\"mac\":\"02:00:00:00:00:01\",\"mtu\":1400},{\"type\":\"vsock\",\"cid\":5,"
	    "\"uds\":\"/tmp/v.sock\"},{\"type\":\"fs\",\"tag\":\"data\",\"path\":\"%s\","
	    "\"readonly\":true,\"cache\":\"none\"},{\"type\":\"rng\"}],"
	    "\"process\":{\"args\":[\"ls\",\"-l\"],\"env\":[\"A=1\",\"B=2\"],\"cwd\":\"/srv\","
	    "\"user\":{\"uid\":7,\"gid\":8},\"terminal\":true},\"hostname\":\"box\","
	    "\"ip\":\"10.0.2.2/24\",\"gateway\":\"10.0.2.1\",\"ip6\":\"fd00::2/64\","
	    "\"gateway6\":\"fe80::1\",\"routes\":[{\"dst\":"
	    "\"169.254.1.1/32\"},{\"dst\":\"10.9.0.0/"
	    "16\",\"via\":\"10.0.2.3\"},{\"dst\":\"fd09::/16\",\"via\":\"fd00::3\"}],"
	    "\"boot_timer\":true,"
	    "\"seccomp\":false,\"api_sock\":\"/tmp/api\",\"paused\":true,\"metrics\":\"/tmp/m\","
	    "\"pid_file\":\"/tmp/p\","
	    "\"log\":{\"path\":\"/tmp/l\",\"level\":\"debug\",\"format\":\"json\"}}",
	    img1, img2, dir1);
	struct vm_config c2;
	struct verr e = {0};
	assert_int_equal(from_json(&c2, text, &e), 0);
	/* field by field */
	assert_string_equal(cfg.kernel, c2.kernel);
	assert_int_equal(cfg.cpus, c2.cpus);
	assert_int_equal(cfg.memory_mib, c2.memory_mib);
	assert_int_equal(cfg.ndevices, 6); /* root, disk, net, vsock, fs, rng */
	assert_int_equal(cfg.ndevices, c2.ndevices);
	for (unsigned i = 0; i < cfg.ndevices; i++) {
		assert_int_equal(cfg.devices[i].type, c2.devices[i].type);
		assert_int_equal(cfg.devices[i].root, c2.devices[i].root);
		assert_memory_equal(&cfg.devices[i].u, &c2.devices[i].u, sizeof(cfg.devices[i].u));
	}
	assert_true(cfg.devices[0].root && cfg.devices[0].u.blk.ro); /* under the overlay */
	assert_int_equal(cfg.devices[4].type, VM_DEV_FS);
	assert_string_equal(cfg.devices[4].u.fs.tag, "data");
	assert_true(cfg.devices[4].u.fs.ro && cfg.devices[4].u.fs.cache == FUSE_CACHE_NONE);
	assert_int_equal(cfg.devices[5].type, VM_DEV_RNG);
	assert_int_equal(cfg.process.envc, c2.process.envc);
	for (unsigned i = 0; i < cfg.process.envc; i++)
		assert_string_equal(cfg.process.env[i], c2.process.env[i]);
	assert_string_equal(cfg.agent_cmdline, c2.agent_cmdline);
	/* the routes reach the agent in the order given */
	assert_non_null(strstr(cfg.agent_cmdline,
			       " vmm.gw=10.0.2.1 vmm.ip6=fd00::2/64 vmm.gw6=fe80::1 "
			       "vmm.route=169.254.1.1/32 vmm.route=10.9.0.0/16,10.0.2.3 "
			       "vmm.route=fd09::/16,fd00::3"));
	assert_int_equal(c2.nroutes, 3);
	assert_string_equal(c2.routes[1].via, "10.0.2.3");
	assert_true(c2.routes[2].v6 && !c2.routes[1].v6);
	assert_string_equal(c2.ip6, "fd00::2/64");
	assert_string_equal(c2.gw6, "fe80::1");
	assert_int_equal(cfg.log_level, c2.log_level);
	assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
	assert_true(c2.paused && !c2.seccomp && c2.process.tty);
	/* the whole description, and a dump that loads back to itself */
	char *a = dump(&cfg), *b = dump(&c2);
	assert_string_equal(a, b);
	struct vm_config c3;
	assert_int_equal(from_json(&c3, a, &e), 0);
	j = dump(&c3);
	assert_string_equal(a, j);
	free(a);
	free(b);
	free(j);
	config_free(&c2);
	config_free(&c3);
}

/* --route: NET/PREFIX with no host bits (IPv4 or IPv6), via an address of its family or on the
 * link; at most VMM_MAX_ROUTES; it needs --ip (or --ip6); the JSON form refuses what the flag
 * refuses. */
static void routes(void **state)
{
	(void)state;
#define NET "--rootfs", img1, "--net", "tap=t0", "--ip", "10.0.2.2/24"
	assert_int_equal(
	    PARSE(&cfg, "-k", "k", NET, "--route", "10.1.0.0/16,via=10.0.2.1", "--", "true"), 0);
	assert_string_equal(cfg.routes[0].dst, "10.1.0.0/16");
	assert_string_equal(cfg.routes[0].via, "10.0.2.1");
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--route", "10.1.0.1/16", "--", "true"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--route: '10.1.0.1/16' has bits set past /16"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--route", "10.1.0.0/16,via=x", "--", "true"),
			 -EINVAL);
	assert_int_equal(
	    PARSE(&cfg, "-k", "k", NET, "--route", "10.1.0.0/16,gw=10.0.2.1", "--", "true"),
	    -EINVAL);
	assert_non_null(strstr(err.msg, "is not NET/PREFIX[,via=ADDR]"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--route", "10.1.0.0/16,via=", "--", "true"),
			 -EINVAL);
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--route", "10.1.0.0", "--", "true"), -EINVAL);
	assert_int_equal(PARSE(&cfg, "-k", "k", "--rootfs", img1, "--net", "tap=t0", "--route",
			       "10.1.0.0/16", "--", "true"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--gateway and an IPv4 --route need --ip"));
	assert_int_equal(PARSE(&cfg, "-k", "k", "--route", "0.0.0.0/0,via=1.2.3.4"), -EINVAL);
	/* IPv6: the family follows dst; via is of the same family; an IPv6 route needs --ip6 */
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--ip6", "fd00::2/64", "--gateway6", "fd00::1",
			       "--route", "fd01::/16,via=fe80::1", "--route", "fd02::1/128", "--",
			       "true"),
			 0);
	assert_true(cfg.routes[0].v6 && cfg.routes[1].v6);
	assert_string_equal(cfg.routes[0].via, "fe80::1");
	assert_non_null(strstr(cfg.agent_cmdline, " vmm.ip=10.0.2.2/24 vmm.ip6=fd00::2/64 "
						  "vmm.gw6=fd00::1"));
	assert_non_null(
	    strstr(cfg.agent_cmdline, " vmm.route=fd01::/16,fe80::1 vmm.route=fd02::1/128"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--ip6", "fd00::2/64", "--route",
			       "fd01:8000::/16", "--", "true"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--route: 'fd01:8000::/16' has bits set past /16"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--ip6", "fd00::2/64", "--route",
			       "fd01::/16,via=10.0.2.1", "--", "true"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "'10.0.2.1' is not an IPv6 address"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--route", "fd01::/16", "--", "true"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--gateway6 and an IPv6 --route need --ip6"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--ip6", "fd00::2", "--", "true"), -EINVAL);
	assert_non_null(strstr(err.msg, "--ip6: 'fd00::2' is not an IPv6 address with a /prefix"));
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--ip6", "fd00::2/129", "--", "true"),
			 -EINVAL);
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--ip6", "10.0.2.3/24", "--", "true"),
			 -EINVAL);
	assert_int_equal(PARSE(&cfg, "-k", "k", NET, "--gateway6", "fd00::1", "--", "true"),
			 -EINVAL);
	/* an IPv6-only eth0 */
	assert_int_equal(PARSE(&cfg, "-k", "k", "--rootfs", img1, "--net", "tap=t0", "--ip6",
			       "fd00::2/64", "--route", "::/0,via=fe80::1", "--", "true"),
			 0);
	assert_null(strstr(cfg.agent_cmdline, "vmm.ip="));
	char *argv[64];
	int argc = 0;
	const char *pre[] = {"vmm", "-k", "k", NET};
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		argv[argc++] = (char *)pre[i];
	for (unsigned i = 0; i <= VMM_MAX_ROUTES; i++) {
		argv[argc++] = "--route";
		argv[argc++] = "10.5.0.0/16";
	}
	argv[argc] = NULL;
	config_free(&cfg);
	config_init(&cfg);
	assert_int_equal(options_parse(argc, argv, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "at most 8 routes"));
#undef NET
	/* JSON */
	struct vm_config c;
	struct verr e = {0};
	assert_int_equal(
	    from_json(&c, "{\"routes\":[{\"dst\":\"10.1.0.0/16\",\"gw\":\"1.2.3.4\"}]}", &e),
	    -EINVAL);
	config_free(&c);
	assert_non_null(strstr(e.msg, "routes[0].gw: unknown key"));
	assert_int_equal(from_json(&c, "{\"routes\":[{\"via\":\"1.2.3.4\"}]}", &e), -EINVAL);
	config_free(&c);
	assert_non_null(strstr(e.msg, "routes[0]: a route needs \"dst\""));
	assert_int_equal(from_json(&c, "{\"routes\":[{\"dst\":\"10.1.0.0/16\",\"via\":\"\"}]}", &e),
			 -EINVAL);
	config_free(&c);
	assert_int_equal(from_json(&c, "{\"routes\":{}}", &e), -EINVAL);
	config_free(&c);
}

/* Flags after --config override the file; devices add up; --config errors name the file. */
static void config_then_flags(void **state)
{
	(void)state;
	char path[] = "/tmp/vmm-test-cfgjson-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "{\"kernel\":\"/k\",\"cpus\":2,\"devices\":[{\"type\":\"rng\"}]}";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(PARSE(&cfg, "--config", path, "--cpus", "4", "--net", "tap=t1"), 0);
	assert_int_equal(cfg.cpus, 4);
	assert_int_equal(cfg.ndevices, 2);
	assert_int_equal(cfg.devices[0].type, VM_DEV_NET); /* slot order: net before rng */
	assert_int_equal(cfg.devices[1].type, VM_DEV_RNG);
	assert_int_equal(PARSE(&cfg, "--config", "/no/such.json"), -EINVAL);
	assert_non_null(strstr(err.msg, "--config /no/such.json: cannot open"));
	unlink(path);
}

/* Every bad key and value: -EINVAL and one line that names the key. */
static void json_bad(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"{\"kernel\":\"/k\",\"bogus\":1}", "bogus: unknown key"},
	    {"{\"kernel\":\"/k\",\"cpus\":\"2\"}", "cpus: expected an integer, got a string"},
	    {"{\"kernel\":\"/k\",\"cpus\":0}", "cpus: '0' is out of range"},
	    {"{\"kernel\":\"/k\",\"cpus\":255}", "cpus: '255' is out of range"},
	    {"{\"kernel\":\"/k\",\"cpus\":-1}", "cpus: -1 is negative"},
	    {"{\"kernel\":\"/k\",\"cpus\":1.5}", "cpus: expected an integer, got a fractional"},
	    {"{\"kernel\":\"/k\",\"memory_mib\":16}", "memory_mib: '16' is out of range"},
	    {"{\"kernel\":7}", "kernel: expected a string, got an integer"},
	    {"{\"kernel\":\"\"}", "kernel: the value is empty"},
	    {"{\"kernel\":\"/k\",\"devices\":{}}", "devices: expected an array"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"floppy\"}]}",
	     "devices[0].type: 'floppy' is not a device type"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"tap\":\"x\"}]}", "devices[0]: no \"type\""},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"rng\"},{\"type\":\"net\"}]}",
	     "devices[1]: a net device needs \"tap\""},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"net\",\"tap\":\"t\",\"speed\":1}]}",
	     "devices[0].speed: unknown key for a net device"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"vsock\",\"cid\":\"3\",\"uds\":\"/u\"}]}",
	     "devices[0].cid: expected an integer"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"vsock\",\"cid\":2,\"uds\":\"/u\"}]}",
	     "devices[0]: --vsock"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"vsock\",\"cid\":3,\"uds\":\"/u\"},"
	     "{\"type\":\"vsock\",\"cid\":4,\"uds\":\"/v\"}]}",
	     "devices[1]: at most 1 vsock device"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"blk\",\"path\":\"/a,b\"}]}",
	     "devices[0].path: a ',' cannot"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"blk\",\"path\":\"/x\",\"readonly\":1}]}",
	     "devices[0].readonly: expected a boolean"},
	    {"{\"kernel\":\"/k\",\"devices\":[{\"type\":\"blk\",\"path\":\"/no/such.img\"}]}",
	     "--disk: cannot use image '/no/such.img'"},
	    {"{\"kernel\":\"/k\",\"process\":[]}", "process: expected an object"},
	    {"{\"kernel\":\"/k\",\"process\":{\"args\":\"ls\"}}",
	     "process.args: expected an array"},
	    {"{\"kernel\":\"/k\",\"process\":{\"args\":[1]}}",
	     "process.args[0]: expected a string"},
	    {"{\"kernel\":\"/k\",\"process\":{\"env\":[\"NOEQUALS\"]}}",
	     "process.env[0]: 'NOEQUALS' is not KEY=VALUE"},
	    {"{\"kernel\":\"/k\",\"process\":{\"cwd\":\"rel\"}}",
	     "process.cwd: 'rel' is not an absolute path"},
	    {"{\"kernel\":\"/k\",\"process\":{\"user\":{\"uid\":-3}}}",
	     "process.user.uid: -3 is negative"},
	    {"{\"kernel\":\"/k\",\"process\":{\"user\":{\"uid\":4294967295}}}",
	     "process.user: uid and gid are numbers below"},
	    {"{\"kernel\":\"/k\",\"process\":{\"user\":{\"name\":\"root\"}}}",
	     "process.user.name: unknown key"},
	    {"{\"kernel\":\"/k\",\"process\":{\"shell\":true}}", "process.shell: unknown key"},
	    {"{\"kernel\":\"/k\",\"hostname\":\"a b\"}", "hostname: 'a b' is not a host name"},
	    {"{\"kernel\":\"/k\",\"ip\":\"10.0.0.1\"}", "ip: '10.0.0.1' is not an IPv4 address"},
	    {"{\"kernel\":\"/k\",\"log\":{\"level\":\"loud\"}}",
	     "log.level: 'loud' is not a level"},
	    {"{\"kernel\":\"/k\",\"log\":{\"format\":\"xml\"}}", "log.format: 'xml' is not text"},
	    {"{\"kernel\":\"/k\",\"log\":{\"colour\":true}}", "log.colour: unknown key"},
	    {"{\"kernel\":\"/k\",\"stdio_fds\":[0,1]}", "stdio_fds: give three fds"},
	    {"{\"kernel\":\"/k\",\"stdio_fds\":[0,1,999]}", "stdio_fds: fd 999"},
	    {"{\"kernel\":\"/k\",\"paused\":\"yes\"}", "paused: expected a boolean"},
	    {"[1,2]", "the top level must be an object"},
	    {"{\"kernel\":\"/k\"} x", "not valid JSON near byte 16"},
	    {"{\"kernel\":", "not valid JSON"},
	    {"{'kernel':'/k'}", "not valid JSON"},
	    {"{\"kernel\":\"\xff\xfe\"}", "not valid JSON"},
	    {"{\"kernel\":\"/k\",\"process\":{\"args\":[\"ls\"]},\"initrd\":\"/i\"}",
	     "drop --initrd"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vm_config c;
		struct verr e = {0};
		int r = from_json(&c, cases[i].text, &e);
		if (r != -EINVAL || !strstr(e.msg, cases[i].want))
			fail_msg("case %zu (%s): got %d '%s', want '%s'", i, cases[i].text, r,
				 e.msg, cases[i].want);
		assert_null(strchr(e.msg, '\n'));
		config_free(&c);
	}
	/* a NUL byte inside the text */
	struct vm_config c;
	struct verr e = {0};
	config_init(&c);
	assert_int_equal(config_parse_json(&c, "{\"a\":1}\0", 8, "t", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "NUL"));
	config_free(&c);
}

/* --rootfs DIR: the root is a virtio-fs share (tag vmm-root, read-write); --share: the limits,
 * unique tags, a directory that exists; the JSON dump loads back to the same. */
static void shares(void **state)
{
	(void)state;
	struct vm_config *o = &cfg;
	char spec[128];
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", dir1, "--", "echo"), 0);
	assert_true(o->container);
	assert_int_equal(o->ndevices, 2); /* the root share and the implicit vsock */
	assert_true(o->devices[0].root);
	assert_int_equal(o->devices[0].type, VM_DEV_FS);
	assert_string_equal(o->devices[0].u.fs.tag, VMM_ROOT_TAG);
	assert_string_equal(o->devices[0].u.fs.path, dir1);
	assert_false(o->devices[0].u.fs.ro);
	assert_string_equal(o->agent_cmdline, "vmm.rootfs=virtiofs:vmm-root vmm.hostname=vmm");
	char *a = dump(o);
	assert_non_null(strstr(a, "\"rootfs\":\"\\/tmp\\/vmm-test-cfgdir-"));
	struct vm_config c2;
	struct verr e = {0};
	assert_int_equal(from_json(&c2, a, &e), 0);
	assert_int_equal(c2.devices[0].type, VM_DEV_FS);
	assert_true(c2.devices[0].root);
	char *b = dump(&c2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	config_free(&c2);
	/* --enter-rootfs: a directory root's, kept through the JSON dump */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", dir1, "--enter-rootfs", "--", "echo"), 0);
	assert_true(o->enter_rootfs);
	a = dump(o);
	assert_non_null(strstr(a, "\"enter_rootfs\":true"));
	assert_int_equal(from_json(&c2, a, &e), 0);
	assert_true(c2.enter_rootfs);
	free(a);
	config_free(&c2);
	/* an image path keeps its disk */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--", "echo"), 0);
	assert_int_equal(o->devices[0].type, VM_DEV_BLK);
	/* ... which vmm cannot make its root */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--enter-rootfs", "--", "echo"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--enter-rootfs moves vmm into the container's root"));
	assert_int_equal(PARSE(o, "-k", "k", "--enter-rootfs"), -EINVAL);
	/* one root, of either kind */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", dir1, "--rootfs", img1), -EINVAL);
	assert_non_null(strstr(err.msg, "--rootfs given twice"));
	/* the root's tag is taken; tags are unique */
	snprintf(spec, sizeof(spec), "tag=vmm-root,path=%s", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", dir1, "--share", spec), -EINVAL);
	assert_non_null(strstr(err.msg, "the tag 'vmm-root' is taken by the directory root"));
	snprintf(spec, sizeof(spec), "tag=a,path=%s", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--share", spec, "--share", spec), -EINVAL);
	assert_non_null(strstr(err.msg, "--share: the tag 'a' is taken: give each share"));
	/* at most VMM_MAX_SHARES besides the root */
	char specs[VMM_MAX_SHARES + 1][128];
	char *argv[4 + 2 * (VMM_MAX_SHARES + 1) + 1];
	int argc = 0;
	argv[argc++] = "vmm";
	argv[argc++] = "-k";
	argv[argc++] = "k";
	for (unsigned i = 0; i <= VMM_MAX_SHARES; i++) {
		snprintf(specs[i], sizeof(specs[i]), "tag=t%u,path=%s", i, dir1);
		argv[argc++] = "--share";
		argv[argc++] = specs[i];
		argv[argc] = NULL;
		int r = parse(argc, argv);
		if (i < VMM_MAX_SHARES)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, -EINVAL);
	}
	assert_non_null(strstr(err.msg, "--share: at most 8 shares"));
	/* the directory must exist and be one */
	assert_int_equal(PARSE(o, "-k", "k", "--share", "tag=x,path=/no/such/dir"), -EINVAL);
	assert_non_null(strstr(err.msg, "--share: cannot share '/no/such/dir'"));
	snprintf(spec, sizeof(spec), "tag=x,path=%s", img1);
	assert_int_equal(PARSE(o, "-k", "k", "--share", spec), -EINVAL);
	assert_non_null(strstr(err.msg, "is not a directory"));
	/* the parser's own errors */
	assert_int_equal(PARSE(o, "-k", "k", "--share", "path=/tmp"), -EINVAL);
	assert_non_null(strstr(err.msg, "no tag"));
	/* JSON: a share device needs tag and path */
	assert_int_equal(from_json(&c2,
				   "{\"kernel\":\"/k\",\"devices\":[{\"type\":\"fs\","
				   "\"path\":\"/tmp\"}]}",
				   &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "devices[0]: a fs device needs \"tag\""));
	config_free(&c2);
}

/* --tmpfs and {"tmpfs": true}: the accepted forms (the same struct both ways, counted as volumes,
 * written back) and every refusal with its line. */
static void tmpfs(void **state)
{
	(void)state;
	struct vm_config *o = &cfg;
	char d[160];
	snprintf(d, sizeof(d), "%s:/run/app", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/run:mode=755",
			       "--volume", d, "--tmpfs", "//scratch/.:ro,size=64,mode=0700",
			       "--tmpfs", "/tmp", "--tmpfs", "/w:rw", "--", "ls"),
			 0);
	assert_int_equal(o->nvolumes, 5);
	const struct vm_volume_cfg *v = o->volumes;
	assert_true(v[0].tmpfs && !v[0].ro && !v[0].file && !v[0].host);
	assert_string_equal(v[0].guest, "/run");
	assert_int_equal(v[0].mode, 0755);
	assert_int_equal(v[0].size_mib, 0);
	assert_false(v[1].tmpfs);
	assert_string_equal(v[1].host, dir1);
	assert_true(v[2].tmpfs && v[2].ro);
	assert_string_equal(v[2].guest, "/scratch");
	assert_int_equal(v[2].mode, 0700);
	assert_int_equal(v[2].size_mib, 64);
	assert_int_equal(v[3].mode, 01777); /* podman's default */
	assert_false(v[3].ro);
	assert_false(v[4].ro);
	assert_string_equal(o->agent_cmdline, "vmm.rootfs=ro vmm.hostname=vmm vmm.volumes=5");
	/* the same from JSON, and a dump that loads back to itself */
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"kernel\":\"k\",\"rootfs\":\"%s\",\"process\":{\"args\":[\"ls\"]},"
		 "\"volumes\":[{\"guest\":\"/run\",\"tmpfs\":true,\"mode\":\"755\"},"
		 "{\"host\":\"%s\",\"guest\":\"/run/app\",\"tmpfs\":false},"
		 "{\"guest\":\"/scratch\",\"tmpfs\":true,\"ro\":true,\"size_mib\":64,"
		 "\"mode\":\"0700\"},{\"guest\":\"/tmp\",\"tmpfs\":true},"
		 "{\"guest\":\"/w\",\"tmpfs\":true,\"ro\":false}]}",
		 img1, dir1);
	struct vm_config c2;
	struct verr e = {0};
	if (from_json(&c2, text, &e) < 0)
		fail_msg("%s", e.msg);
	char *a = dump(o), *b = dump(&c2);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "{\"guest\":\"\\/run\",\"tmpfs\":true,\"mode\":\"755\","
				  "\"ro\":false}"));
	assert_non_null(strstr(a, "{\"guest\":\"\\/scratch\",\"tmpfs\":true,\"mode\":\"700\","
				  "\"size_mib\":64,\"ro\":true}"));
	assert_non_null(strstr(a, "\"mode\":\"1777\""));
	config_free(&c2);
	assert_int_equal(from_json(&c2, a, &e), 0);
	assert_int_equal(c2.nvolumes, 5);
	free(b);
	b = dump(&c2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	config_free(&c2);
	/* only tmpfs: the staging share all the same (it carries the list) */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/run"), 0);
	unsigned shares = 0;
	for (unsigned i = 0; i < o->ndevices; i++)
		shares += o->devices[i].type == VM_DEV_FS && o->devices[i].implicit;
	assert_int_equal(shares, 1);
	/* the API's limits */
	assert_int_equal(config_add_tmpfs(o, "t", "/m", 010000, 0, false, &err), -EINVAL);
	assert_string_equal(err.msg, "t: the mode 010000 is above 07777");
	assert_int_equal(config_add_tmpfs(o, "t", "/m", 0, VMM_MAX_MEMORY_MIB + 1, false, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "t: a size of 1048577 MiB: at most 1048576 (1 TiB)");
	assert_int_equal(config_add_tmpfs(o, "t", "/m", 07777, VMM_MAX_MEMORY_MIB, false, &err), 0);
	unsigned m = 5;
	assert_int_equal(config_parse_mode("01777", &m), 0);
	assert_int_equal(m, 01777);
	assert_int_equal(config_parse_mode("0", &m), 0);
	assert_int_equal(m, 0);
	const char *bad_modes[] = {"", "8", "17777", "001777", "-1", "+7", "7 ", "0x7", " 7"};
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		m = 5;
		if (config_parse_mode(bad_modes[i], &m) != -EINVAL || m != 5)
			fail_msg("mode '%s' accepted", bad_modes[i]);
	}

	/* refused, each with its line */
	struct {
		const char *spec, *msg;
	} bad[] = {
	    {"", "--tmpfs : the guest path is empty: write --tmpfs GUEST[:OPT,...] (OPT: ro, "
		 "mode=OCTAL, size=MIB)"},
	    {":ro", "the guest path is empty"},
	    {"x", "--tmpfs x: the guest path 'x' is not an absolute path without '..' components"},
	    {"/a/../b", "the guest path '/a/../b' is not an absolute path without '..'"},
	    {"/", "the guest path is the container's root '/'"},
	    {"/x:", "--tmpfs /x:: '' is not an option: the options are ro, rw, mode=OCTAL and "
		    "size=MIB, separated by commas"},
	    {"/x:noexec", "'noexec' is not an option"},
	    {"/x:ro:rw", "'ro:rw' is not an option"},
	    {"/x:ro,", "'' is not an option"},
	    {"/x:ro,ro", "--tmpfs /x:ro,ro: 'ro' is given twice (or ro with rw)"},
	    {"/x:ro,rw", "'rw' is given twice (or ro with rw)"},
	    {"/x:mode=755,mode=700", "'mode=700' is given twice"},
	    {"/x:size=1,size=2", "'size=2' is given twice"},
	    {"/x:mode=",
	     "--tmpfs /x:mode=: mode '' is not an octal mode from 0 to 7777: write e.g. "
	     "mode=755"},
	    {"/x:mode=10000", "mode '10000' is not an octal mode"},
	    {"/x:mode=8", "mode '8' is not an octal mode"},
	    {"/x:mode=u+rwx", "mode 'u+rwx' is not an octal mode"},
	    {"/x:size=0", "--tmpfs /x:size=0: size '0' is not a number of MiB from 1 to 1048576: "
			  "write e.g. size=64 (64 MiB)"},
	    {"/x:size=64m", "size '64m' is not a number of MiB"},
	    {"/x:size=-1", "size '-1' is not a number of MiB"},
	    {"/x:size=064", "size '064' is not a number of MiB"},
	    {"/x:size=1048577", "size '1048577' is not a number of MiB"},
	    {"/x:size=99999999999999999999999", "is not a number of MiB"},
	    {"/x:size=", "size '' is not a number of MiB"},
	    {"/x:mode=7777777777777777777777777777777777777777777777777777777777777777777",
	     "an option is longer than 63 bytes"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", (char *)bad[i].spec) !=
			-EINVAL ||
		    !strstr(err.msg, bad[i].msg) || strncmp(err.msg, "--tmpfs ", 8) != 0)
			fail_msg("--tmpfs %s: got '%s'", bad[i].spec, err.msg);
	}
	/* one entry per guest path, volumes and tmpfs alike (after normalising) */
	assert_int_equal(
	    PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/run", "--tmpfs", "/run/:mode=755"),
	    -EINVAL);
	assert_string_equal(err.msg, "--tmpfs /run/:mode=755: the guest path /run is given twice: "
				     "one volume or tmpfs per path");
	snprintf(d, sizeof(d), "%s:/run", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--tmpfs", "/run"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "the guest path /run is given twice"));
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/run", "--volume", d),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "the guest path /run is given twice"));
	/* nothing under a file volume, nor under a read-only tmpfs (either order) */
	snprintf(d, sizeof(d), "%s:/etc/hosts", img2);
	assert_int_equal(
	    PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--tmpfs", "/etc/hosts/x"),
	    -EINVAL);
	assert_non_null(strstr(err.msg, "nest under a file volume"));
	snprintf(d, sizeof(d), "%s:/ro/app", dir1);
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/ro:ro", "--volume", d),
			 -EINVAL);
	assert_non_null(strstr(err.msg,
			       ": /ro/app is inside the read-only tmpfs at /ro: nothing "
			       "can be made in it to mount on; drop ro or move one of them"));
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--volume", d, "--tmpfs", "/ro:ro"),
			 -EINVAL);
	assert_non_null(
	    strstr(err.msg, "--tmpfs /ro:ro: /ro/app is inside the read-only tmpfs at /ro"));
	assert_int_equal(
	    PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/ro:ro", "--tmpfs", "/ro/x:ro"),
	    -EINVAL);
	assert_non_null(strstr(err.msg, "/ro/x is inside the read-only tmpfs at /ro"));
	/* ...a read-write tmpfs takes a volume or tmpfs under it, and a ro one beside it */
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--tmpfs", "/ro", "--volume", d,
			       "--tmpfs", "/ro/t:ro", "--tmpfs", "/rox:ro"),
			 0);
	/* a container's only */
	assert_int_equal(PARSE(o, "-k", "k", "--initrd", img1, "--tmpfs", "/run"), -EINVAL);
	assert_non_null(strstr(err.msg, "--volume and --tmpfs are for containers"));
	/* at most VMM_MAX_VOLUMES, with the volumes */
	config_free(o);
	config_init(o);
	assert_int_equal(config_add_volume(o, "v", dir1, "/v", false, &err), 0);
	for (unsigned i = 1; i <= VMM_MAX_VOLUMES; i++) {
		char g[32];
		snprintf(g, sizeof(g), "/t%u", i);
		int r = config_add_tmpfs(o, "tmpfs[x]", g, 0755, 0, false, &err);
		assert_int_equal(r, i < VMM_MAX_VOLUMES ? 0 : -EINVAL);
	}
	assert_string_equal(err.msg, "tmpfs[x]: at most 64 volumes and tmpfs mounts");
	/* JSON: keys, types and the same setter's lines */
	struct {
		const char *json, *msg;
	} jbad[] = {
	    {"{\"volumes\":[{\"tmpfs\":true}]}", "volumes[0]: a tmpfs needs \"guest\""},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"host\":\"/tmp\"}]}",
	     "volumes[0]: a tmpfs has no \"host\": drop it, or \"tmpfs\" for a volume"},
	    {"{\"volumes\":[{\"tmpfs\":1,\"guest\":\"/x\"}]}",
	     "volumes[0].tmpfs: expected a boolean, got an integer"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"mode\":755}]}",
	     "volumes[0].mode: expected a string, got an integer"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"mode\":\"9\"}]}",
	     "volumes[0].mode: '9' is not an octal mode from 0 to 7777: write e.g. \"755\""},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"mode\":\"10000\"}]}",
	     "volumes[0].mode: '10000' is not an octal mode"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"size_mib\":0}]}",
	     "volumes[0].size_mib: 0 MiB: give 1 to 1048576"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"size_mib\":1048577}]}",
	     "volumes[0].size_mib: 1048577 MiB: give 1 to 1048576"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"size_mib\":-1}]}",
	     "volumes[0].size_mib: -1 is negative"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"size_mib\":\"64\"}]}",
	     "volumes[0].size_mib: expected an integer, got a string"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\",\"options\":[]}]}",
	     "volumes[0].options: unknown key: a volume has host, guest and ro; a tmpfs guest, "
	     "tmpfs, mode, size_mib and ro"},
	    {"{\"volumes\":[{\"host\":\"/tmp\",\"guest\":\"/x\",\"mode\":\"755\"}]}",
	     "volumes[0]: \"mode\" is for a tmpfs: add \"tmpfs\": true (and drop \"host\")"},
	    {"{\"volumes\":[{\"guest\":\"/x\",\"tmpfs\":false,\"size_mib\":1}]}",
	     "volumes[0]: \"size_mib\" is for a tmpfs"},
	    {"{\"volumes\":[{\"guest\":\"/x\",\"tmpfs\":false}]}",
	     "volumes[0]: a volume needs \"host\" (or \"tmpfs\": true)"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/\"}]}",
	     "volumes[0]: the guest path is the container's root '/'"},
	    {"{\"volumes\":[{\"tmpfs\":true,\"guest\":\"/x\"},{\"tmpfs\":true,\"guest\":\"/x\"}]}",
	     "volumes[1]: the guest path /x is given twice"},
	};
	for (size_t i = 0; i < sizeof(jbad) / sizeof(jbad[0]); i++) {
		struct verr je = {0};
		if (from_json(&c2, jbad[i].json, &je) != -EINVAL || !strstr(je.msg, jbad[i].msg))
			fail_msg("%s: got '%s'", jbad[i].json, je.msg);
		config_free(&c2);
	}
}

/* Every device type has its table entry, and the entries are complete. */
static void device_table_complete(void **state)
{
	(void)state;
	for (unsigned i = 0; i < VM_DEV_TYPES; i++) {
		const struct device_type *t = &device_table[i];
		assert_non_null(t->name);
		assert_non_null(t->parse);
		assert_non_null(t->create);
		assert_non_null(t->destroy);
		assert_non_null(t->to_json);
		assert_non_null(t->sandbox);
		assert_ptr_equal(device_type_find(t->name), t);
	}
	assert_null(device_type_find("floppy"));
}

/* The process's settings: the JSON keys and flags accepted (the struct, the dump and its
 * reload), and every refusal with its line. */
static void process_settings(void **state)
{
	(void)state;
	char bpf[] = "/tmp/vmm-test-bpf-XXXXXX";
	int fd = mkstemp(bpf);
	assert_true(fd >= 0);
	static const uint8_t prog[16] = {0x06, 0, 0, 0, 0, 0, 0xff, 0x7f, /* ret ALLOW */
					 0x06, 0, 0, 0, 0, 0, 0,    0};
	assert_int_equal(write(fd, prog, sizeof(prog)), (ssize_t)sizeof(prog));
	close(fd);
	char text[2048];
	snprintf(
	    text, sizeof(text),
	    "{\"kernel\":\"/k\",\"rootfs\":\"%s\",\"process\":{\"args\":[\"sh\"],"
	    "\"user\":{\"uid\":5,\"gid\":6,\"additional_gids\":[10,4294967294]},"
	    "\"umask\":23,\"no_new_privileges\":true,\"oom_score_adj\":-999,"
	    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":100,\"hard\":200},"
	    "{\"type\":\"RLIMIT_CORE\",\"soft\":0,\"hard\":18446744073709551615},"
	    "{\"type\":\"nofile\",\"soft\":50,\"hard\":-1}],"
	    "\"capabilities\":{\"bounding\":[\"CAP_NET_BIND_SERVICE\",\"CAP_CHOWN\"],"
	    "\"effective\":[\"CAP_NET_BIND_SERVICE\"],\"ambient\":[]},"
	    "\"seccomp_bpf\":\"%s\"},"
	    "\"sysctl\":{\"kernel.domainname\":\"example.org\",\"net.ipv4.ip_forward\":\"1\"},"
	    "\"masked_paths\":[\"/proc/kcore\"],\"readonly_paths\":[\"/proc/sys\",\"/proc/bus\"]}",
	    img1, bpf);
	struct vm_config c;
	struct verr e = {0};
	assert_int_equal(from_json(&c, text, &e), 0);
	const struct vm_process_cfg *p = &c.process;
	assert_int_equal(p->ngroups, 2);
	assert_int_equal(p->groups[1], 4294967294u);
	assert_true(p->umask_given && p->umask == 23);
	assert_true(p->no_new_privs);
	assert_true(p->oom_given && p->oom_score_adj == -999);
	assert_int_equal(p->nrlimits, 2); /* "nofile" replaced RLIMIT_NOFILE */
	assert_int_equal(p->rlimits[0].resource, 7);
	assert_true(p->rlimits[0].soft == 50 && p->rlimits[0].hard == UINT64_MAX);
	assert_int_equal(p->rlimits[1].resource, 4);
	assert_true(p->rlimits[1].hard == UINT64_MAX);
	assert_true(p->caps_given);
	assert_true(p->caps[VM_CAP_BOUNDING] == (1ull << 10 | 1ull << 0));
	assert_true(p->caps[VM_CAP_EFFECTIVE] == 1ull << 10);
	assert_true(p->caps[VM_CAP_PERMITTED] == 0); /* a set left out is empty */
	assert_int_equal(p->bpf_insns, 2);
	assert_memory_equal(p->bpf, prog, sizeof(prog));
	assert_int_equal(p->nsysctl, 2);
	assert_string_equal(p->sysctl[2], "net.ipv4.ip_forward");
	assert_string_equal(p->sysctl[3], "1");
	assert_string_equal(p->masked[0], "/proc/kcore");
	assert_int_equal(p->nreadonly, 2);
	/* written back and read again: the same description */
	char *d1 = dump(&c);
	struct vm_config c2;
	assert_int_equal(from_json(&c2, d1, &e), 0);
	char *d2 = dump(&c2);
	assert_string_equal(d1, d2);
	assert_non_null(strstr(d1, "\"CAP_NET_BIND_SERVICE\""));
	assert_non_null(strstr(d1, "\"hard\":-1"));
	free(d1);
	free(d2);
	config_free(&c);
	config_free(&c2);

	/* the flags */
	struct vm_config *o = &cfg;
	assert_int_equal(PARSE(o, "-k", "k", "--rootfs", img1, "--ulimit", "nofile=100:200",
			       "--ulimit", "RLIMIT_NPROC=unlimited", "--cap-drop", "CAP_NET_RAW",
			       "--cap-drop", "sys_admin"),
			 0);
	assert_int_equal(cfg.process.nrlimits, 2);
	assert_true(cfg.process.rlimits[0].soft == 100 && cfg.process.rlimits[0].hard == 200);
	assert_true(cfg.process.rlimits[1].soft == UINT64_MAX);
	assert_true(cfg.process.caps_given);
	uint64_t want = ((2ull << VMM_CAP_LAST) - 1) & ~(1ull << 13 | 1ull << 21);
	assert_true(cfg.process.caps[VM_CAP_BOUNDING] == want);
	assert_true(cfg.process.caps[VM_CAP_EFFECTIVE] == want);
	assert_true(cfg.process.caps[VM_CAP_INHERITABLE] == 0);
	assert_int_equal(PARSE(o, "-k", "k", "--cap-drop", "ALL"), 0);
	assert_true(cfg.process.caps[VM_CAP_BOUNDING] == 0);
	assert_int_equal(PARSE(o, "-k", "k", "--ulimit", "nofile=300:200"), -EINVAL);
	assert_string_equal(err.msg, "--ulimit nofile=300:200: the soft limit 300 is above the "
				     "hard limit 200: lower it");
	assert_int_equal(PARSE(o, "-k", "k", "--ulimit", "nofile"), -EINVAL);
	assert_non_null(strstr(err.msg, "write TYPE=SOFT[:HARD]"));
	assert_int_equal(PARSE(o, "-k", "k", "--ulimit", "files=1"), -EINVAL);
	assert_non_null(strstr(err.msg, "'files' is not a resource limit"));
	assert_int_equal(PARSE(o, "-k", "k", "--ulimit", "nofile=x"), -EINVAL);
	assert_non_null(strstr(err.msg, "the limits are numbers or 'unlimited'"));
	assert_int_equal(PARSE(o, "-k", "k", "--cap-drop", "CAP_FLY"), -EINVAL);
	assert_string_equal(err.msg, "--cap-drop: 'CAP_FLY' is not a capability: give "
				     "CAP_NET_RAW, CAP_CHOWN... or ALL");

	/* refusals, each with its line */
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"{\"process\":{\"umask\":512}}", "process.umask: 512 is not a umask"},
	    {"{\"process\":{\"umask\":\"022\"}}", "process.umask: expected an integer"},
	    {"{\"process\":{\"user\":{\"additional_gids\":[1,-2]}}}",
	     "process.user.additional_gids[1]: -2 is negative"},
	    {"{\"process\":{\"user\":{\"additional_gids\":[4294967295]}}}",
	     "process.user.additional_gids[0]: 4294967295 is not a gid"},
	    {"{\"process\":{\"user\":{\"additional_gids\":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,"
	     "14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]}}}",
	     "process.user.additional_gids: at most 32 additional groups"},
	    {"{\"process\":{\"rlimits\":{}}}", "process.rlimits: expected an array"},
	    {"{\"process\":{\"rlimits\":[{\"type\":\"RLIMIT_FILES\",\"soft\":1,\"hard\":1}]}}",
	     "process.rlimits[0]: 'RLIMIT_FILES' is not a resource limit"},
	    {"{\"process\":{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1}]}}",
	     "process.rlimits[0]: an rlimit needs type, soft and hard"},
	    {"{\"process\":{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":2,\"hard\":1}]}}",
	     "process.rlimits[0]: the soft limit 2 is above the hard limit 1"},
	    {"{\"process\":{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":-5,\"hard\":1}]}}",
	     "process.rlimits[0].soft: -5 is negative (-1 is unlimited)"},
	    {"{\"process\":{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,\"hard\":1,"
	     "\"x\":1}]}}",
	     "process.rlimits[0].x: unknown key"},
	    {"{\"process\":{\"no_new_privileges\":1}}",
	     "process.no_new_privileges: expected a boolean"},
	    {"{\"process\":{\"oom_score_adj\":-1001}}",
	     "process.oom_score_adj: -1001 is outside -1000..1000"},
	    {"{\"process\":{\"capabilities\":{\"bounding\":[\"CAP_FLY\"]}}}",
	     "process.capabilities.bounding: 'CAP_FLY' is not a capability"},
	    {"{\"process\":{\"capabilities\":{\"all\":[]}}}",
	     "process.capabilities.all: unknown key"},
	    {"{\"process\":{\"capabilities\":[]}}", "process.capabilities: expected an object"},
	    {"{\"process\":{\"seccomp_bpf\":\"/no/such.bpf\"}}",
	     "process.seccomp_bpf: cannot open /no/such.bpf"},
	    {"{\"process\":{\"seccomp_bpf\":\"/dev/null\"}}",
	     "process.seccomp_bpf: /dev/null is not a seccomp program"},
	    {"{\"sysctl\":[]}", "sysctl: expected an object"},
	    {"{\"sysctl\":{\"kernel/hostname\":\"x\"}}",
	     "sysctl.kernel/hostname: 'kernel/hostname' is not a sysctl name"},
	    {"{\"sysctl\":{\"kernel..x\":\"x\"}}", "is not a sysctl name"},
	    {"{\"sysctl\":{\"kernel.domainname\":1}}",
	     "sysctl.kernel.domainname: expected a string"},
	    {"{\"sysctl\":{\"kernel.domainname\":\"a\\nb\"}}",
	     "sysctl.kernel.domainname: the value holds a newline"},
	    {"{\"masked_paths\":[\"proc/kcore\"]}",
	     "masked_paths[0]: 'proc/kcore' is not an absolute container path"},
	    {"{\"readonly_paths\":[\"/proc/../etc\"]}",
	     "readonly_paths[0]: '/proc/../etc' is not an absolute container path"},
	    {"{\"readonly_paths\":\"/proc\"}", "readonly_paths: expected an array"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct verr be = {0};
		config_init(&c);
		assert_int_equal(
		    config_parse_json(&c, bad[i].text, strlen(bad[i].text), "t.json", &be),
		    -EINVAL);
		if (!strstr(be.msg, bad[i].want))
			fail_msg("%s: got '%s', want '%s'", bad[i].text, be.msg, bad[i].want);
		assert_int_equal(strncmp(be.msg, "t.json: ", 8), 0);
		config_free(&c);
	}
	unlink(bpf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(options_good),
	    cmocka_unit_test(options_bad),
	    cmocka_unit_test(options_container),
	    cmocka_unit_test(flags_equal_json),
	    cmocka_unit_test(routes),
	    cmocka_unit_test(config_then_flags),
	    cmocka_unit_test(json_bad),
	    cmocka_unit_test(device_table_complete),
	    cmocka_unit_test(shares),
	    cmocka_unit_test(volumes),
	    cmocka_unit_test(tmpfs),
	    cmocka_unit_test(process_settings),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
