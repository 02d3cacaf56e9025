/* The metrics object (vmm/api/metrics.c): every key and value of a full object after a round trip
 * through json-c's parser, what is left out (zero exit counts, absent boot moments, vsock
 * without one), clamping, exit reason names, and the in-place write to an open file and its
 * failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/api/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/kvm.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Serializes o the way metrics_write_fd does and parses it back, checking it is one complete
 * JSON text. Returns the parsed object (put it). */
static struct json_object *round_trip(struct json_object *o, char **text)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
	assert_non_null(s);
	struct json_tokener *tok = json_tokener_new();
	assert_non_null(tok);
	struct json_object *back = json_tokener_parse_ex(tok, s, (int)strlen(s));
	assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
	assert_int_equal(json_tokener_get_parse_end(tok), strlen(s));
	json_tokener_free(tok);
	assert_non_null(back);
	if (text)
		*text = strdup(s);
	return back;
}

static struct json_object *get(struct json_object *o, const char *key, enum json_type type)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("key \"%s\" is missing", key);
	assert_int_equal(json_object_get_type(v), type);
	return v;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	return json_object_get_int64(get(o, key, json_type_int));
}

static double get_double(struct json_object *o, const char *key)
{
	return json_object_get_double(get(o, key, json_type_double));
}

static bool has(struct json_object *o, const char *key)
{
	return json_object_object_get_ex(o, key, NULL);
}

/* The keys of o in order, joined with ','. */
static void keys_of(struct json_object *o, char *buf, size_t cap)
{
	size_t at = 0;
	buf[0] = '\0';
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? "," : "", k);
		assert_true(at < cap);
	}
}

static uint64_t exits[45];
static const struct metrics_device devs[] = {
    {.name = "virtio-blk vda",
     .type = "blk",
     .st = {.requests = 10, .bytes = 40960, .errors = 1, .needs_reset = 0}},
    {.name = "virtio-net tap0",
     .type = "net",
     .st = {.requests = 7, .bytes = 4242, .errors = 2, .needs_reset = 1},
     .queues = {{.ready = true,
		 .event_idx = true,
		 .size = 256,
		 .offered = 65535,
		 .taken = 65534,
		 .returned = 65533,
		 .signalled = 65530,
		 .used_event = 65532},
		{.ready = false},
		{.ready = true,
		 .broken = true,
		 .size = 8,
		 .offered = 3,
		 .taken = 3,
		 .returned = 2,
		 .signalled = 2}},
     .nqueues = 3,
     .isr = 1},
};
static const struct metrics_phase phases[] = {
    {"options", 0.125},
    {"memory", 2.5},
    {"kernel", 10.0},
};

static struct metrics_src full_src(void)
{
	memset(exits, 0, sizeof(exits));
	exits[KVM_EXIT_IO] = 4000;
	exits[KVM_EXIT_HLT] = 12;
	exits[KVM_EXIT_MMIO] = 1000;
	exits[42] = 7; /* past every reason Debian 12's headers know */
	return (struct metrics_src){
	    .state = "running",
	    .uptime_ms = 123.4,
	    .exits = exits,
	    .nexits = 45,
	    .devs = devs,
	    .ndevs = 2,
	    .have_vsock = true,
	    .vsock = {.opened = 3, .closed = 2, .active = 1},
	    .log_dropped = 17,
	    .phases = phases,
	    .nphases = 3,
	    .start_ms = 5.0,
	    .first_run_ms = 12.0,
	    .kernel_entry_ms = 0, /* not seen */
	    .init_ms = 80.1,
	    .process_start_ms = 95.25,
	};
}

static void full_object(void **state)
{
	(void)state;
	struct metrics_src src = full_src();
	struct json_object *o = metrics_json(&src);
	assert_non_null(o);
	char *text;
	struct json_object *m = round_trip(o, &text);
	json_object_put(o);
	char keys[256];

	keys_of(m, keys, sizeof(keys));
	assert_string_equal(keys, "version,state,uptime_ms,vcpu_exits,devices,vsock,log,boot");
	assert_int_equal(get_int(m, "version"), 1);
	assert_string_equal(json_object_get_string(get(m, "state", json_type_string)), "running");
	assert_float_equal(get_double(m, "uptime_ms"), 123.4, 1e-9);
	/* milliseconds with 3 decimals, not json-c's 17 digits */
	assert_non_null(strstr(text, "\"uptime_ms\":123.400,"));
	assert_true(strncmp(text, "{\"version\":1,\"state\":\"running\",", 31) == 0);

	struct json_object *ex = get(m, "vcpu_exits", json_type_object);
	keys_of(ex, keys, sizeof(keys));
	assert_string_equal(keys, "total,IO,HLT,MMIO,reason_42"); /* zero counts left out */
	assert_int_equal(get_int(ex, "total"), 4000 + 12 + 1000 + 7);
	assert_int_equal(get_int(ex, "IO"), 4000);
	assert_int_equal(get_int(ex, "HLT"), 12);
	assert_int_equal(get_int(ex, "MMIO"), 1000);
	assert_int_equal(get_int(ex, "reason_42"), 7);
	assert_false(has(ex, "SHUTDOWN"));
	assert_false(has(ex, "UNKNOWN"));

	struct json_object *da = get(m, "devices", json_type_array);
	assert_int_equal(json_object_array_length(da), 2);
	for (unsigned i = 0; i < 2; i++) {
		struct json_object *d = json_object_array_get_idx(da, i);
		assert_int_equal(json_object_get_type(d), json_type_object);
		keys_of(d, keys, sizeof(keys));
		assert_string_equal(
		    keys, "name,type,requests,bytes,errors,needs_reset,interrupt_status,queues");
		assert_string_equal(json_object_get_string(get(d, "name", json_type_string)),
				    devs[i].name);
		assert_string_equal(json_object_get_string(get(d, "type", json_type_string)),
				    devs[i].type);
		assert_int_equal(get_int(d, "requests"), devs[i].st.requests);
		assert_int_equal(get_int(d, "bytes"), devs[i].st.bytes);
		assert_int_equal(get_int(d, "errors"), devs[i].st.errors);
		assert_int_equal(get_int(d, "needs_reset"), devs[i].st.needs_reset);
		assert_int_equal(get_int(d, "interrupt_status"), devs[i].isr);
	}
	/* Only the queues the driver set up; used_event only with event idx. */
	assert_int_equal(json_object_array_length(
			     get(json_object_array_get_idx(da, 0), "queues", json_type_array)),
			 0);
	struct json_object *qa = get(json_object_array_get_idx(da, 1), "queues", json_type_array);
	assert_int_equal(json_object_array_length(qa), 2);
	struct json_object *q0 = json_object_array_get_idx(qa, 0);
	keys_of(q0, keys, sizeof(keys));
	assert_string_equal(keys, "index,size,offered,taken,returned,signalled,used_event,broken");
	assert_int_equal(get_int(q0, "index"), 0);
	assert_int_equal(get_int(q0, "size"), 256);
	assert_int_equal(get_int(q0, "offered"), 65535);
	assert_int_equal(get_int(q0, "taken"), 65534);
	assert_int_equal(get_int(q0, "returned"), 65533);
	assert_int_equal(get_int(q0, "signalled"), 65530);
	assert_int_equal(get_int(q0, "used_event"), 65532);
	assert_false(json_object_get_boolean(get(q0, "broken", json_type_boolean)));
	struct json_object *q2 = json_object_array_get_idx(qa, 1);
	keys_of(q2, keys, sizeof(keys));
	assert_string_equal(keys, "index,size,offered,taken,returned,signalled,broken");
	assert_int_equal(get_int(q2, "index"), 2);
	assert_int_equal(get_int(q2, "returned"), 2);
	assert_true(json_object_get_boolean(get(q2, "broken", json_type_boolean)));

	struct json_object *vs = get(m, "vsock", json_type_object);
	keys_of(vs, keys, sizeof(keys));
	assert_string_equal(keys, "opened,closed,active");
	assert_int_equal(get_int(vs, "opened"), 3);
	assert_int_equal(get_int(vs, "closed"), 2);
	assert_int_equal(get_int(vs, "active"), 1);

	struct json_object *lg = get(m, "log", json_type_object);
	keys_of(lg, keys, sizeof(keys));
	assert_string_equal(keys, "dropped");
	assert_int_equal(get_int(lg, "dropped"), 17);

	struct json_object *b = get(m, "boot", json_type_object);
	keys_of(b, keys, sizeof(keys));
	assert_string_equal(keys, "phases,start_ms,first_kvm_run_ms,init_ms,process_start_ms");
	struct json_object *ph = get(b, "phases", json_type_object);
	keys_of(ph, keys, sizeof(keys));
	assert_string_equal(keys, "options,memory,kernel");
	assert_float_equal(get_double(ph, "options"), 0.125, 1e-9);
	assert_float_equal(get_double(ph, "memory"), 2.5, 1e-9);
	assert_float_equal(get_double(ph, "kernel"), 10.0, 1e-9);
	assert_float_equal(get_double(b, "start_ms"), 5.0, 1e-9);
	assert_float_equal(get_double(b, "first_kvm_run_ms"), 12.0, 1e-9);
	assert_float_equal(get_double(b, "init_ms"), 80.1, 1e-9);
	assert_float_equal(get_double(b, "process_start_ms"), 95.25, 1e-9);
	assert_false(has(b, "kernel_entry_ms"));

	json_object_put(m);
	free(text);
}

/* The smallest object: nothing counted, no vsock, no devices, no exits, no boot moments. */
static void empty_object(void **state)
{
	(void)state;
	struct metrics_src src = {.state = "created"};
	struct json_object *o = metrics_json(&src);
	assert_non_null(o);
	char *text;
	struct json_object *m = round_trip(o, &text);
	json_object_put(o);
	assert_string_equal(text, "{\"version\":1,\"state\":\"created\",\"uptime_ms\":0.000,"
				  "\"vcpu_exits\":{\"total\":0},\"devices\":[],\"log\":{"
				  "\"dropped\":0},\"boot\":{\"phases\":{}}}");
	assert_false(has(m, "vsock"));
	json_object_put(m);
	free(text);
}

/* Counts above INT64_MAX are clamped; the exit total saturates instead of wrapping; a state or
 * name left NULL is null; milliseconds that are not finite are 0, boot moments that are not
 * finite or not positive are left out; a phase without a name too. */
static void clamps_and_odd_values(void **state)
{
	(void)state;
	uint64_t ex[3] = {UINT64_MAX, 0, UINT64_MAX - 1};
	struct metrics_device d = {.type = "rng",
				   .st = {UINT64_MAX, (uint64_t)INT64_MAX + 1, INT64_MAX, 5}};
	struct metrics_phase ph[] = {{NULL, 1.0}, {"x", NAN}, {"y", -INFINITY}};
	struct metrics_src src = {
	    .state = NULL,
	    .uptime_ms = INFINITY,
	    .exits = ex,
	    .nexits = 3,
	    .devs = &d,
	    .ndevs = 1,
	    .have_vsock = true,
	    .vsock = {UINT64_MAX, 0, 0},
	    .log_dropped = ULLONG_MAX,
	    .phases = ph,
	    .nphases = 3,
	    .first_run_ms = NAN,
	    .kernel_entry_ms = -3,
	    .init_ms = INFINITY,
	    .process_start_ms = 1e-4,
	};
	struct json_object *o = metrics_json(&src);
	assert_non_null(o);
	struct json_object *m = round_trip(o, NULL);
	json_object_put(o);

	assert_int_equal(json_object_get_type(get(m, "state", json_type_null)), json_type_null);
	assert_float_equal(get_double(m, "uptime_ms"), 0, 0);
	struct json_object *e = get(m, "vcpu_exits", json_type_object);
	assert_true(get_int(e, "total") == INT64_MAX);
	assert_true(get_int(e, "UNKNOWN") == INT64_MAX);
	assert_true(get_int(e, "IO") == INT64_MAX);
	assert_false(has(e, "EXCEPTION"));
	struct json_object *dj = json_object_array_get_idx(get(m, "devices", json_type_array), 0);
	get(dj, "name", json_type_null);
	assert_true(get_int(dj, "requests") == INT64_MAX);
	assert_true(get_int(dj, "bytes") == INT64_MAX);
	assert_true(get_int(dj, "errors") == INT64_MAX);
	assert_int_equal(get_int(dj, "needs_reset"), 5);
	assert_true(get_int(get(m, "vsock", json_type_object), "opened") == INT64_MAX);
	assert_true(get_int(get(m, "log", json_type_object), "dropped") == INT64_MAX);
	struct json_object *b = get(m, "boot", json_type_object);
	char keys[128];
	keys_of(get(b, "phases", json_type_object), keys, sizeof(keys));
	assert_string_equal(keys, "x,y");
	assert_float_equal(get_double(get(b, "phases", json_type_object), "x"), 0, 0);
	assert_float_equal(get_double(get(b, "phases", json_type_object), "y"), 0, 0);
	keys_of(b, keys, sizeof(keys));
	assert_string_equal(keys, "phases,process_start_ms");
	json_object_put(m);
}

static void exit_reason_names(void **state)
{
	(void)state;
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_UNKNOWN), "UNKNOWN");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_MMIO), "MMIO");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_IO), "IO");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_HLT), "HLT");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_SHUTDOWN), "SHUTDOWN");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_FAIL_ENTRY), "FAIL_ENTRY");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_INTERNAL_ERROR), "INTERNAL_ERROR");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_SYSTEM_EVENT), "SYSTEM_EVENT");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_X86_BUS_LOCK), "X86_BUS_LOCK");
	assert_string_equal(kvm_exit_reason_name(KVM_EXIT_NOTIFY), "NOTIFY");
	/* every reason up to KVM_EXIT_NOTIFY (37) has its own name, none past it */
	for (unsigned i = 0; i <= 37; i++) {
		const char *n = kvm_exit_reason_name(i);
		assert_non_null(n);
		for (unsigned j = 0; j < i; j++)
			assert_string_not_equal(n, kvm_exit_reason_name(j));
	}
	assert_null(kvm_exit_reason_name(38));
	assert_null(kvm_exit_reason_name(1000));
	assert_null(kvm_exit_reason_name(UINT_MAX));
}

/* ---- the file ---- */

static char dir[64];

static int dir_setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_metrics.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int dir_teardown(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *de;
	char p[PATH_MAX];
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	closedir(d);
	return rmdir(dir);
}

/* The names in dir, sorted and joined with ','. */
static void dir_list(char *buf, size_t cap)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	assert_true(n >= 0);
	size_t at = 0;
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.')
			at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? "," : "",
					       list[i]->d_name);
		free(list[i]);
	}
	free(list);
	assert_true(at < cap);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	assert_true(n < sizeof(buf) - 1);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The line metrics_write_fd must write for src: the compact object and "\n" (malloc'd). */
static char *want_line(const struct metrics_src *src)
{
	struct json_object *want = metrics_json(src);
	assert_non_null(want);
	const char *ws = json_object_to_json_string_ext(want, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	assert_non_null(ws);
	size_t n = strlen(ws);
	char *line = malloc(n + 2);
	assert_non_null(line);
	memcpy(line, ws, n);
	memcpy(line + n, "\n", 2);
	json_object_put(want);
	return line;
}

static void write_fd(void **state)
{
	(void)state;
	char path[PATH_MAX], list[256];
	snprintf(path, sizeof(path), "%s/metrics.json", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	struct stat st1, st2;
	assert_int_equal(fstat(fd, &st1), 0);
	struct metrics_src src = full_src();
	struct verr e = {0};
	assert_int_equal(metrics_write_fd(fd, path, &src, &e), 0);

	/* one line: the object, then "\n"; the fd's offset is left where it was */
	char *text = slurp(path);
	size_t len = strlen(text);
	assert_true(len > 2 && text[len - 1] == '\n');
	assert_null(memchr(text, '\n', len - 1));
	char *want = want_line(&src);
	assert_string_equal(text, want);
	free(want);
	struct json_object *back = json_tokener_parse(text);
	assert_non_null(back);
	assert_int_equal(get_int(back, "version"), 1);
	json_object_put(back);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);

	/* a shorter object rewrites the same file in place, with nothing of the old one after it,
	 * from offset 0 wherever the fd's offset is */
	assert_int_equal(lseek(fd, 100000, SEEK_SET), 100000);
	struct metrics_src small = {.state = "stopped"};
	want = want_line(&small);
	assert_true(strlen(want) < len);
	assert_int_equal(metrics_write_fd(fd, path, &small, &e), 0);
	assert_string_equal(slurp(path), want);
	assert_int_equal(fstat(fd, &st2), 0);
	assert_int_equal(st2.st_size, (off_t)strlen(want));
	assert_true(st2.st_ino == st1.st_ino);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 100000);
	free(want);

	/* and a longer one again */
	want = want_line(&src);
	assert_int_equal(metrics_write_fd(fd, NULL, &src, &e), 0);
	assert_string_equal(slurp(path), want);
	free(want);
	close(fd);
	dir_list(list, sizeof(list));
	assert_string_equal(list, "metrics.json"); /* no temporary file */
}

static void write_fd_fails(void **state)
{
	(void)state;
	struct metrics_src src = full_src();
	struct verr e = {0};
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/metrics.json", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old\n", 4), 4);
	close(fd);

	/* a read-only fd: the file is left as it was */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	int r = metrics_write_fd(fd, path, &src, &e);
	assert_true(r == -EINVAL || r == -EBADF);
	assert_int_equal(e.code, r);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "ftruncate"));
	assert_null(strchr(e.msg, '\n'));
	assert_string_equal(slurp(path), "old\n");
	/* without a name: still one line */
	memset(&e, 0, sizeof(e));
	assert_int_equal(metrics_write_fd(fd, NULL, &src, &e), r);
	assert_true(strlen(e.msg) > 10);
	assert_null(strchr(e.msg, '\n'));
	close(fd);

	/* not a file at all */
	int p[2];
	assert_int_equal(pipe(p), 0);
	memset(&e, 0, sizeof(e));
	assert_true(metrics_write_fd(p[1], "the-pipe", &src, &e) < 0);
	assert_non_null(strstr(e.msg, "the-pipe"));
	close(p[0]);
	close(p[1]);

	/* a file size limit cuts the first pwrite short; the retry fails and says so */
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 16;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(&e, 0, sizeof(e));
	r = metrics_write_fd(fd, path, &src, &e);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	close(fd);
	assert_int_equal(r, -EFBIG);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "pwrite"));
	assert_null(strchr(e.msg, '\n'));
	char *want = want_line(&src);
	assert_memory_equal(slurp(path), want, 16); /* the short write went in at offset 0 */
	assert_int_equal(strlen(slurp(path)), 16);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_object),
	    cmocka_unit_test(empty_object),
	    cmocka_unit_test(clamps_and_odd_values),
	    cmocka_unit_test(exit_reason_names),
	    cmocka_unit_test_setup_teardown(write_fd, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(write_fd_fails, dir_setup, dir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
