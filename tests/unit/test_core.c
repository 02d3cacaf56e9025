/* Core tests: option parsing (good and bad values), the checked guest-memory accessor, the bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/memory.h"
#include "vmm/options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGV(...)     ((char *[]){"vmm", __VA_ARGS__, NULL})
#define ARGC(...)     ((int)(sizeof((char *[]){"vmm", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), o)

static void options_good(void **state)
{
	(void)state;
	struct vmm_options o;
	assert_int_equal(PARSE(&o, "--kernel", "k", "--initrd", "i", "--cmdline", "x -- y",
			       "--cpus", "4", "--memory", "512", "--boot-timer"),
			 0);
	assert_string_equal(o.kernel, "k");
	assert_string_equal(o.initrd, "i");
	assert_string_equal(o.cmdline, "x -- y");
	assert_int_equal(o.cpus, 4);
	assert_int_equal(o.memory_mib, 512);
	assert_true(o.boot_timer);
	assert_int_equal(PARSE(&o, "-k", "k"), 0);
	assert_int_equal(o.cpus, 1);
	assert_int_equal(o.memory_mib, VMM_DEFAULT_MEMORY_MIB);
	assert_null(o.initrd);
}

static void options_bad(void **state)
{
	(void)state;
	struct vmm_options o;
	assert_int_equal(PARSE(&o, "-k", "k", "--cpus", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--cpus", "255"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--cpus", "-1"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--cpus", "2x"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--memory", "31"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--memory", "99999999999999999999999"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--memory", ""), -EINVAL);
	setenv("HOME", "/nonexistent", 1); /* no kernel built there, none named */
	unsetenv("XDG_CACHE_HOME");
	unsetenv("VMM_KERNEL");
	assert_int_equal(PARSE(&o, "--memory", "64"), -EINVAL); /* no kernel */
	assert_int_equal(PARSE(&o, "-k", "k", "--bogus"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "stray"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k"), -EINVAL); /* missing value */
}

/* Containers: the command after --, the environment defaults and the vmm.* parameters. */
static void options_container(void **state)
{
	(void)state;
	struct vmm_options o;
	char img[] = "/tmp/vmm-test-rootfs-XXXXXX";
	int fd = mkstemp(img);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(PARSE(&o, "-k", "k", "--rootfs", img, "-e", "PATH=/bin", "-e", "A=b=c",
			       "-w", "/srv", "-u", "7:8", "--hostname", "box", "--", "ls", "-l"),
			 0);
	assert_true(o.container);
	assert_int_equal(o.ncmd, 2);
	assert_string_equal(o.cmd[0], "ls");
	assert_string_equal(o.cmd[1], "-l");
	assert_string_equal(o.workdir, "/srv");
	assert_int_equal(o.uid, 7);
	assert_int_equal(o.gid, 8);
	/* HOME and HOSTNAME defaults, the user's PATH instead of the default one */
	assert_int_equal(o.nenv, 4);
	assert_string_equal(o.env[0], "HOME=/");
	assert_string_equal(o.env[1], "HOSTNAME=box");
	assert_string_equal(o.env[2], "PATH=/bin");
	assert_string_equal(o.env[3], "A=b=c");
	assert_string_equal(o.agent_cmdline, "vmm.rootfs=ro vmm.hostname=box");
	/* --rootfs without --initrd is a container running /bin/sh */
	assert_int_equal(PARSE(&o, "-k", "k", "--rootfs", img, "--rootfs-rw"), 0);
	assert_true(o.container);
	assert_string_equal(o.cmd[0], "/bin/sh");
	assert_string_equal(o.agent_cmdline, "vmm.rootfs=rw vmm.hostname=vmm");
	/* with --initrd it is a plain boot */
	assert_int_equal(PARSE(&o, "-k", "k", "--rootfs", img, "--initrd", img), 0);
	assert_false(o.container);
	assert_int_equal(PARSE(&o, "-k", "k", "--rootfs", img, "-u", "x"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--rootfs", img, "--hostname", "-bad"), -EINVAL);
	assert_int_equal(PARSE(&o, "-k", "k", "--", "ls"), -EINVAL); /* no rootfs */
	unlink(img);
}

static void parse_numbers(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("+1", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("0x10", 0, 100, &v), -EINVAL);
	assert_int_equal(parse_u64("11", 0, 10, &v), -ERANGE);
}

static void memory_accessor(void **state)
{
	(void)state;
	struct guest_region layout[2] = {{0, 0x10000, NULL}, {0x100000, 0x2000, NULL}};
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, layout, 2), 0);
	assert_int_equal(m.total, 0x12000);
	assert_non_null(guest_mem_ptr(&m, 0, 0x10000));
	assert_null(guest_mem_ptr(&m, 0, 0x10001));	/* runs off region 0 */
	assert_null(guest_mem_ptr(&m, 0xffff, 2));	/* straddles the hole */
	assert_null(guest_mem_ptr(&m, 0x20000, 1));	/* in the hole */
	assert_non_null(guest_mem_ptr(&m, 0x10000, 0)); /* empty range at the end */
	assert_ptr_equal(guest_mem_ptr(&m, 0x100000, 1), m.region[1].host);
	assert_null(guest_mem_ptr(&m, 0x101fff, 2));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));	      /* gpa + len wraps */
	assert_null(guest_mem_ptr(&m, 0x100000, UINT64_MAX)); /* len huge */
	assert_null(guest_mem_ptr(&m, 8, UINT64_MAX - 4));    /* wraps to a small end */
	uint8_t buf[4] = {1, 2, 3, 4}, out[4];
	assert_int_equal(guest_mem_write(&m, 0x101ffc, buf, 4), 0);
	assert_int_equal(guest_mem_read(&m, 0x101ffc, out, 4), 0);
	assert_memory_equal(buf, out, 4);
	assert_int_equal(guest_mem_write(&m, 0x101ffd, buf, 4), -EFAULT);
	assert_int_equal(guest_mem_low_end(&m), 0x10000);
	guest_mem_free(&m);

	/* bad layouts */
	struct guest_region unaligned = {0, 0x1001, NULL};
	assert_int_equal(guest_mem_init(&m, &unaligned, 1), -EINVAL);
	struct guest_region overlap[2] = {{0, 0x2000, NULL}, {0x1000, 0x1000, NULL}};
	assert_int_equal(guest_mem_init(&m, overlap, 2), -EINVAL);
	assert_int_equal(guest_mem_init(&m, layout, 0), -EINVAL);
}

static unsigned last_off, last_size, calls;
static void dev(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	(void)opaque;
	last_off = (unsigned)off;
	last_size = size;
	calls++;
	if (!is_write)
		memset(data, 0x42, size);
}

static void bus_routing(void **state)
{
	(void)state;
	struct bus b = {0};
	assert_int_equal(bus_register(&b, 0x3f8, 8, dev, NULL), 0);
	assert_int_equal(bus_register(&b, 0x3fc, 8, dev, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 9, dev, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 8, dev, NULL), 0);
	assert_int_equal(bus_register(&b, 1, 0, dev, NULL), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, dev, NULL), -EINVAL);
	uint8_t d[4];
	calls = 0;
	assert_true(bus_dispatch(&b, 0x3fd, d, 1, false));
	assert_int_equal(last_off, 5);
	assert_int_equal(d[0], 0x42);
	/* straddles the end of the device: not delivered, reads float high */
	assert_false(bus_dispatch(&b, 0x3fe, d, 4, false));
	assert_int_equal(d[3], 0xff);
	assert_false(bus_dispatch(&b, 0x80, d, 1, true));
	assert_int_equal(calls, 1);
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
		bus_register(&b, 0x10000 + i * 16, 16, dev, NULL);
	assert_int_equal(bus_register(&b, 0x90000, 1, dev, NULL), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(options_good),	 cmocka_unit_test(options_bad),
	    cmocka_unit_test(options_container), cmocka_unit_test(parse_numbers),
	    cmocka_unit_test(memory_accessor),	 cmocka_unit_test(bus_routing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
