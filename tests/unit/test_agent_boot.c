/* The agent's kernel command line parsing (guest/agent_boot.c: agent_cmdline_parse): the vmm.*
 * keys it takes, and what it ignores. The mounts and the network need a guest (tests/nested). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest/agent.h"

#include <stdio.h>
#include <string.h>

static struct agent_config parse(const char *line)
{
	char buf[1024];
	struct agent_config c;
	memset(&c, 0, sizeof(c));
	snprintf(buf, sizeof(buf), "%s", line);
	agent_cmdline_parse(buf, &c);
	return c;
}

static void defaults(void **state)
{
	(void)state;
	struct agent_config c = parse("console=ttyS0 reboot=k panic=-1 quiet\n");
	assert_false(c.rootfs_rw);
	assert_string_equal(c.rootfs_tag, "");
	assert_string_equal(c.hostname, "");
	assert_string_equal(c.ip, "");
	assert_string_equal(c.gw, "");
}

static void keys(void **state)
{
	(void)state;
	struct agent_config c = parse("console=ttyS0 vmm.rootfs=rw vmm.hostname=box-1 "
				      "vmm.ip=10.0.2.15/24 vmm.gw=10.0.2.2 vmm.color=blue\n");
	assert_true(c.rootfs_rw);
	assert_string_equal(c.hostname, "box-1");
	assert_string_equal(c.ip, "10.0.2.15/24");
	assert_string_equal(c.gw, "10.0.2.2");
	/* vmm.route repeats, in order, up to AGENT_MAX_ROUTES */
	c = parse("vmm.route=169.254.1.1/32 vmm.route=10.9.0.0/16,10.0.2.3");
	assert_int_equal(c.nroutes, 2);
	assert_string_equal(c.routes[0], "169.254.1.1/32");
	assert_string_equal(c.routes[1], "10.9.0.0/16,10.0.2.3");
	/* IPv6: its own address and gateway keys; the routes share vmm.route */
	c = parse("vmm.ip6=fd00:1:2:3::15/64 vmm.gw6=fe80::1 "
		  "vmm.route=ffff:ffff:ffff:ffff:ffff:ffff:ffff:0/112,"
		  "fe80::ffff:ffff:ffff:ffff\n");
	assert_string_equal(c.ip6, "fd00:1:2:3::15/64");
	assert_string_equal(c.gw6, "fe80::1");
	assert_int_equal(c.nroutes, 1);
	assert_string_equal(c.routes[0],
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:0/112,fe80::ffff:ffff:ffff:ffff");
	char many[1024] = "";
	for (unsigned i = 0; i <= AGENT_MAX_ROUTES; i++)
		strcat(many, "vmm.route=10.1.0.0/16 ");
	c = parse(many);
	assert_int_equal(c.nroutes, AGENT_MAX_ROUTES);
	c = parse("vmm.rootfs=rw vmm.rootfs=ro"); /* the last one counts */
	assert_false(c.rootfs_rw);
	assert_false(c.root_readonly);
}

/* vmm.rootro=1 asks for a read-only root, whatever its kind; other values are ignored. */
static void readonly_root(void **state)
{
	(void)state;
	struct agent_config c = parse("vmm.rootfs=virtiofs:vmm-root vmm.rootro=1");
	assert_true(c.root_readonly);
	assert_string_equal(c.rootfs_tag, "vmm-root");
	c = parse("vmm.rootfs=ro vmm.rootro=1 vmm.rootro=0");
	assert_false(c.root_readonly);
	c = parse("vmm.rootro=yes vmm.rootro=");
	assert_false(c.root_readonly);
	c = parse("-- vmm.rootro=1");
	assert_false(c.root_readonly);
}

/* vmm.rootfs=virtiofs:TAG: the root is a virtio-fs share, read-write; ro/rw after it go back to
 * the disk; an empty or too long tag is ignored. */
static void virtiofs_root(void **state)
{
	(void)state;
	struct agent_config c = parse("vmm.rootfs=virtiofs:vmm-root vmm.hostname=h");
	assert_string_equal(c.rootfs_tag, "vmm-root");
	assert_true(c.rootfs_rw);
	c = parse("vmm.rootfs=virtiofs:vmm-root vmm.rootfs=ro");
	assert_string_equal(c.rootfs_tag, "");
	assert_false(c.rootfs_rw);
	c = parse("vmm.rootfs=virtiofs:");
	assert_string_equal(c.rootfs_tag, "");
	assert_false(c.rootfs_rw);
	c = parse("vmm.rootfs=virtiofs:0123456789012345678901234567890123456"); /* 37 bytes */
	assert_string_equal(c.rootfs_tag, "");
	c = parse("vmm.rootfs=virtiofs:012345678901234567890123456789012345"); /* 36 */
	assert_string_equal(c.rootfs_tag, "012345678901234567890123456789012345");
}

static void bad_values_are_ignored(void **state)
{
	(void)state;
	char line[200];
	memset(line, 0, sizeof(line));
	strcpy(line, "vmm.rootfs=rwx vmm.hostname= vmm.ip vmm.hostname=");
	memset(line + strlen(line), 'h', 70); /* longer than a hostname may be */
	struct agent_config c = parse(line);
	assert_false(c.rootfs_rw);
	assert_string_equal(c.hostname, "");
	assert_string_equal(c.ip, "");
}

static void stops_at_init_arguments(void **state)
{
	(void)state;
	struct agent_config c = parse("quiet -- vmm.rootfs=rw vmm.hostname=x");
	assert_false(c.rootfs_rw);
	assert_string_equal(c.hostname, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(keys),
	    cmocka_unit_test(readonly_root),
	    cmocka_unit_test(virtiofs_root),
	    cmocka_unit_test(bad_values_are_ignored),
	    cmocka_unit_test(stops_at_init_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
