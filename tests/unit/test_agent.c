/* vmm-agent driven through its protocol in test mode (`vmm-agent --test MAIN LISTEN`): each test
 * starts an agent that connects to a Unix socket the test listens on (the main session) and
 * accepts `vmm exec` sessions on another, then plays the host: START, stdio, RESIZE, SIGNAL,
 * SHUTDOWN, and malformed frames. Usage: test_agent PATH_TO_AGENT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest/agent_proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *agent_path;

struct agent {
	pid_t pid;
	int fd; /* the main session */
	char dir[64], main_path[96], listen_path[96];
};

struct result {
	char *out, *err; /* NUL-terminated */
	size_t out_len, err_len;
	uint32_t status, signal;
	int errors;	      /* ERROR frames */
	uint32_t first_errno; /* of the first ERROR */
	char first_msg[256];
	bool started;
};

static int unix_listen(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void send_frame(int fd, uint16_t type, const void *payload, uint32_t len)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	agent_hdr_encode(hdr, type, len);
	write_all(fd, hdr, sizeof(hdr));
	write_all(fd, payload, len);
}

/* Reads one frame into buf (AGENT_MAX_PAYLOAD + 1 bytes, NUL-terminated); returns its type. */
static uint16_t recv_frame(int fd, uint8_t *buf, uint32_t *len)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	struct agent_hdr h;
	read_all(fd, hdr, sizeof(hdr));
	assert_int_equal(agent_hdr_decode(hdr, &h), 0);
	read_all(fd, buf, h.len);
	buf[h.len] = 0;
	*len = h.len;
	return h.type;
}

static void expect_hello(int fd, uint32_t flags)
{
	uint8_t buf[AGENT_MAX_PAYLOAD + 1];
	uint32_t len;
	assert_int_equal(recv_frame(fd, buf, &len), AGENT_HELLO);
	assert_int_equal(len, 8);
	assert_int_equal(le_get32(buf), AGENT_PROTO_VERSION);
	assert_int_equal(le_get32(buf + 4), flags);
}

/* Expects one ERROR frame with errno err. */
static void expect_error(int fd, uint32_t err)
{
	uint8_t buf[AGENT_MAX_PAYLOAD + 1];
	uint32_t len;
	assert_int_equal(recv_frame(fd, buf, &len), AGENT_ERROR);
	assert_true(len > 4);
	assert_int_equal(le_get32(buf), err);
}

static void spawn_agent(struct agent *a, const char *root)
{
	snprintf(a->dir, sizeof(a->dir), "/tmp/test_agent.XXXXXX");
	assert_non_null(mkdtemp(a->dir));
	snprintf(a->main_path, sizeof(a->main_path), "%s/main.sock", a->dir);
	snprintf(a->listen_path, sizeof(a->listen_path), "%s/exec.sock", a->dir);
	int lfd = unix_listen(a->main_path);
	a->pid = fork();
	assert_true(a->pid >= 0);
	if (a->pid == 0) {
		execl(agent_path, agent_path, "--test", a->main_path, a->listen_path,
		      root ? "--root" : NULL, root, NULL);
		_exit(99);
	}
	a->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a->fd >= 0);
	close(lfd);
	expect_hello(a->fd, AGENT_HELLO_MAIN);
}

static int setup(void **state)
{
	struct agent *a = calloc(1, sizeof(*a));
	spawn_agent(a, NULL);
	*state = a;
	return 0;
}

/* Waits for the agent to end (a test makes it end first) and returns its exit status. */
static int agent_wait(struct agent *a)
{
	int st;
	assert_int_equal(waitpid(a->pid, &st, 0), a->pid);
	a->pid = 0;
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int teardown(void **state)
{
	struct agent *a = *state;
	if (a->pid > 0) {
		kill(a->pid, SIGKILL);
		waitpid(a->pid, NULL, 0);
	}
	if (a->fd >= 0)
		close(a->fd);
	unlink(a->main_path);
	unlink(a->listen_path);
	rmdir(a->dir);
	free(a);
	return 0;
}

static void start_full(int fd, const char *const *argv, const char *const *env, const char *cwd,
		       uint32_t flags, uint32_t uid, uint32_t gid, uint16_t rows, uint16_t cols)
{
	static uint8_t buf[AGENT_MAX_PAYLOAD];
	struct agent_start s = {
	    .flags = flags, .uid = uid, .gid = gid, .rows = rows, .cols = cols, .cwd = cwd};
	while (argv[s.argc])
		s.argc++;
	while (env[s.envc])
		s.envc++;
	s.argv = (char **)argv;
	s.env = (char **)env;
	int len = agent_start_encode(&s, buf, sizeof(buf));
	assert_true(len > 0);
	send_frame(fd, AGENT_START, buf, (uint32_t)len);
}

static const char *const std_env[] = {"PATH=/usr/bin:/bin", NULL};

static void start(int fd, const char *const *argv)
{
	start_full(fd, argv, std_env, "/", 0, getuid(), getgid(), 0, 0);
}

static void append(char **p, size_t *len, const uint8_t *b, size_t n)
{
	*p = realloc(*p, *len + n + 1);
	assert_non_null(*p);
	if (n)
		memcpy(*p + *len, b, n);
	*len += n;
	(*p)[*len] = 0;
}

/* Handles one frame from the agent into r; returns true on EXIT. */
static bool take_frame(int fd, struct result *r)
{
	static uint8_t buf[AGENT_MAX_PAYLOAD + 1];
	uint32_t len;
	uint16_t type = recv_frame(fd, buf, &len);

	switch (type) {
	case AGENT_STARTED:
		assert_int_equal(len, 4);
		assert_false(r->started);
		assert_true(le_get32(buf) > 0);
		r->started = true;
		break;
	case AGENT_STDOUT:
		assert_true(r->started);
		append(&r->out, &r->out_len, buf, len);
		break;
	case AGENT_STDERR:
		assert_true(r->started);
		append(&r->err, &r->err_len, buf, len);
		break;
	case AGENT_ERROR:
		assert_true(len >= 4);
		if (!r->errors++) {
			r->first_errno = le_get32(buf);
			size_t n =
			    len - 4 < sizeof(r->first_msg) - 1 ? len - 4 : sizeof(r->first_msg) - 1;
			memcpy(r->first_msg, buf + 4, n);
			r->first_msg[n] = 0;
		}
		break;
	case AGENT_EXIT:
		assert_int_equal(len, 8);
		r->status = le_get32(buf);
		r->signal = le_get32(buf + 4);
		return true;
	default:
		fail_msg("unexpected frame type %u", type);
	}
	return false;
}

static void result_init(struct result *r)
{
	memset(r, 0, sizeof(*r));
	append(&r->out, &r->out_len, NULL, 0);
	append(&r->err, &r->err_len, NULL, 0);
}

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

/* Sends in[len] as STDIN frames (then an empty one if close_stdin) while taking the agent's
 * frames into r (set up by result_init), until EXIT: never blocks on one direction while the
 * other has to move. */
static void exchange(int fd, const uint8_t *in, size_t len, bool close_stdin, struct result *r)
{
	uint8_t out[AGENT_HDR_SIZE + 4096];
	size_t out_len = 0, out_off = 0, in_off = 0;
	bool eof_sent = !close_stdin;

	for (;;) {
		if (out_off == out_len && (in_off < len || !eof_sent)) {
			size_t n = len - in_off < 4096 ? len - in_off : 4096;
			agent_hdr_encode(out, AGENT_STDIN, (uint32_t)n);
			memcpy(out + AGENT_HDR_SIZE, in + in_off, n);
			in_off += n;
			if (!n)
				eof_sent = true;
			out_off = 0;
			out_len = AGENT_HDR_SIZE + n;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN | (out_off < out_len ? POLLOUT : 0)};
		assert_true(poll(&p, 1, -1) > 0);
		if (p.revents & POLLIN && take_frame(fd, r))
			return;
		if (p.revents & POLLOUT) {
			ssize_t n = send(fd, out + out_off, out_len - out_off, MSG_DONTWAIT);
			assert_true(n > 0 || errno == EAGAIN);
			if (n > 0)
				out_off += (size_t)n;
		}
	}
}

static void run_to_exit(int fd, struct result *r)
{
	result_init(r);
	exchange(fd, NULL, 0, false, r);
}

/* Tells the agent all output is in; it must then end with the main process's status. */
static void shut_down(struct agent *a, int status)
{
	send_frame(a->fd, AGENT_SHUTDOWN, NULL, 0);
	assert_int_equal(agent_wait(a), status);
}

static void echo_hello(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"echo", "hello", NULL});
	run_to_exit(a->fd, &r);
	assert_true(r.started);
	assert_string_equal(r.out, "hello\n");
	assert_int_equal(r.err_len, 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.signal, 0);
	assert_int_equal(r.errors, 0);
	result_free(&r);
	shut_down(a, 0);
}

static void exit_status_and_stderr(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"sh", "-c", "echo oops >&2; exit 7", NULL});
	run_to_exit(a->fd, &r);
	assert_string_equal(r.err, "oops\n");
	assert_int_equal(r.out_len, 0);
	assert_int_equal(r.status, 7);
	result_free(&r);
	shut_down(a, 7);
}

static void killed_by_sigkill(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"sh", "-c", "kill -9 $$", NULL});
	run_to_exit(a->fd, &r);
	assert_int_equal(r.status, 137);
	assert_int_equal(r.signal, 9);
	result_free(&r);
	shut_down(a, 137);
}

/* More stdin than the agent buffers (AGENT_STDIN_LIMIT), so its flow control is exercised. */
static void stdin_through_cat(void **state)
{
	struct agent *a = *state;
	struct result r;
	size_t len = 600 * 1024;
	uint8_t *in = malloc(len);
	for (size_t i = 0; i < len; i++)
		in[i] = (uint8_t)(i * 7 + i / 251);
	start(a->fd, (const char *const[]){"cat", NULL});
	result_init(&r);
	exchange(a->fd, in, len, true, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.out_len, len);
	assert_memory_equal(r.out, in, len);
	free(in);
	result_free(&r);
	shut_down(a, 0);
}

static void one_mib_of_stdout(void **state)
{
	struct agent *a = *state;
	struct result r;
	char *want = malloc(2 * 1024 * 1024);
	size_t want_len = 0;
	assert_non_null(want);
	for (int i = 1; i <= 200000; i++)
		want_len += (size_t)sprintf(want + want_len, "%d\n", i);
	assert_true(want_len >= 1024 * 1024);
	start(a->fd, (const char *const[]){"seq", "1", "200000", NULL});
	run_to_exit(a->fd, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.out_len, want_len);
	assert_memory_equal(r.out, want, want_len);
	free(want);
	result_free(&r);
	shut_down(a, 0);
}

static void env_and_cwd_as_asked(void **state)
{
	struct agent *a = *state;
	struct result r;
	char cwd[PATH_MAX], want[PATH_MAX + 8];
	assert_non_null(realpath(a->dir, cwd));
	const char *const env[] = {"PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY=", NULL};
	start_full(a->fd, (const char *const[]){"env", NULL}, env, cwd, 0, getuid(), getgid(), 0,
		   0);
	run_to_exit(a->fd, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "PATH=/usr/bin:/bin\nFOO=bar baz\nEMPTY=\n");
	result_free(&r);

	/* A second process in the same container, through a `vmm exec` session. */
	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0);
	start_full(fd, (const char *const[]){"pwd", "-P", NULL}, std_env, cwd, 0, getuid(),
		   getgid(), 0, 0);
	run_to_exit(fd, &r);
	snprintf(want, sizeof(want), "%s\n", cwd);
	assert_string_equal(r.out, want);
	close(fd);
	result_free(&r);
	shut_down(a, 0);
}

static void user_and_group(void **state)
{
	struct agent *a = *state;
	struct result r;
	const char *const argv[] = {"sh", "-c", "id -u; id -g; id -G", NULL};
	if (getuid() == 0) {
		start_full(a->fd, argv, std_env, "/", 0, 65534, 65533, 0, 0);
		run_to_exit(a->fd, &r);
		assert_int_equal(r.status, 0);
		assert_string_equal(r.out, "65534\n65533\n65533\n"); /* no supplementary groups */
	} else {
		/* Not root: only its own ids; anything else is refused, not ignored. */
		start_full(a->fd, argv, std_env, "/", 0, getuid() + 1, getgid(), 0, 0);
		run_to_exit(a->fd, &r);
		assert_int_equal(r.errors, 1);
		assert_int_equal(r.first_errno, EPERM);
		assert_int_equal(r.status, 125);
	}
	result_free(&r);
	shut_down(a, getuid() == 0 ? 0 : 125);
}

static void sigterm_reaches_sleep(void **state)
{
	struct agent *a = *state;
	struct result r;
	uint8_t sig[4];
	start(a->fd, (const char *const[]){"sleep", "1000", NULL});
	result_init(&r);
	assert_false(take_frame(a->fd, &r)); /* STARTED: sleep is exec'd */
	assert_true(r.started);
	le_put32(sig, SIGTERM);
	send_frame(a->fd, AGENT_SIGNAL, sig, 4);
	while (!take_frame(a->fd, &r))
		;
	assert_int_equal(r.status, 128 + SIGTERM);
	assert_int_equal(r.signal, SIGTERM);
	result_free(&r);
	shut_down(a, 143);
}

static void unknown_command(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"no-such-command-here", "x", NULL});
	run_to_exit(a->fd, &r);
	assert_false(r.started);
	assert_int_equal(r.errors, 1);
	assert_int_equal(r.first_errno, ENOENT);
	assert_string_equal(r.first_msg, "no-such-command-here: command not found");
	assert_int_equal(r.status, 127);
	result_free(&r);
	shut_down(a, 127);
}

/* A file that is there but cannot run (126), and a working directory that is not (125); both on
 * exec sessions, which end after EXIT. */
static void cannot_execute_or_chdir(void **state)
{
	struct agent *a = *state;
	struct result r;
	char path[160];
	snprintf(path, sizeof(path), "%s/not-executable", a->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\necho no\n", f);
	fclose(f);
	chmod(path, 0644);

	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0);
	start(fd, (const char *const[]){path, NULL});
	run_to_exit(fd, &r);
	assert_int_equal(r.first_errno, EACCES);
	assert_int_equal(r.status, 126);
	uint8_t b;
	assert_int_equal(read(fd, &b, 1), 0); /* the agent closed the exec session */
	close(fd);
	result_free(&r);
	unlink(path);

	start_full(a->fd, (const char *const[]){"true", NULL}, std_env, "/no/such/dir", 0, getuid(),
		   getgid(), 0, 0);
	run_to_exit(a->fd, &r);
	assert_int_equal(r.first_errno, ENOENT);
	assert_non_null(strstr(r.first_msg, "working directory /no/such/dir"));
	assert_int_equal(r.status, 125);
	result_free(&r);
	shut_down(a, 125);
}

/* The process settings (AGENT_START_PROC) the agent applies without privileges: umask, an
 * rlimit, no_new_privs and a seccomp program (mkdir and mkdirat fail with EPERM); and a step that
 * fails (a sysctl that does not exist) fails the start with its line and 125. */
static void process_settings(void **state)
{
	struct agent *a = *state;
	struct result r;
	static uint8_t buf[AGENT_MAX_PAYLOAD];
	char dir[200];
	snprintf(dir, sizeof(dir), "%s/made", a->dir);
	const char *argv[] = {"sh", "-c",
			      "umask; ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status; "
			      "grep Seccomp: /proc/self/status; mkdir \"$0\" || echo mkdir-failed",
			      dir, NULL};
	struct agent_bpf_insn prog[] = {
	    {0x20, 0, 0, 4},   {0x15, 0, 4, 0xc000003e}, {0x20, 0, 0, 0},	   {0x15, 1, 0, 83},
	    {0x15, 0, 1, 258}, {0x06, 0, 0, 0x00050001}, {0x06, 0, 0, 0x7fff0000},
	};
	struct agent_start s = {.flags = AGENT_START_PROC,
				.uid = getuid(),
				.gid = getgid(),
				.cwd = "/",
				.argc = 4,
				.envc = 1,
				.argv = (char **)argv,
				.env = (char **)std_env,
				.proc_flags = AGENT_PROC_UMASK | AGENT_PROC_NO_NEW_PRIVS,
				.umask = 027,
				.nrlimits = 1,
				.rlimits = {{.resource = 7, .soft = 100, .hard = 200}},
				.nfilter = 7,
				.filter = prog};
	int len = agent_start_encode(&s, buf, sizeof(buf));
	assert_true(len > 0);
	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0);
	send_frame(fd, AGENT_START, buf, (uint32_t)len);
	run_to_exit(fd, &r);
	close(fd);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "0027\n100\n200\n"));
	assert_non_null(strstr(r.out, "NoNewPrivs:\t1\n"));
	assert_non_null(strstr(r.out, "Seccomp:\t2\n"));
	assert_non_null(strstr(r.err, "Operation not permitted"));
	assert_non_null(strstr(r.out, "mkdir-failed"));
	assert_int_equal(access(dir, F_OK), -1);
	result_free(&r);

	char *sysctl[] = {"vmm.no_such.sysctl", "1", NULL};
	struct agent_start bad = {.flags = AGENT_START_PROC,
				  .uid = getuid(),
				  .gid = getgid(),
				  .cwd = "/",
				  .argc = 1,
				  .envc = 1,
				  .argv = (char *[]){"true", NULL},
				  .env = (char **)std_env,
				  .nsysctl = 1,
				  .sysctl = sysctl};
	len = agent_start_encode(&bad, buf, sizeof(buf));
	assert_true(len > 0);
	send_frame(a->fd, AGENT_START, buf, (uint32_t)len);
	run_to_exit(a->fd, &r);
	assert_int_equal(r.first_errno, ENOENT);
	assert_non_null(strstr(r.first_msg, "cannot set sysctl vmm.no_such.sysctl=1"));
	assert_int_equal(r.status, 125);
	assert_false(r.started);
	result_free(&r);
	shut_down(a, 125);
}

static void tty_mode(void **state)
{
	struct agent *a = *state;
	struct result r;
	uint8_t ws[4];
	start_full(a->fd,
		   (const char *const[]){"sh", "-c", "tty; stty size; read x; stty size", NULL},
		   std_env, "/", AGENT_START_TTY, getuid(), getgid(), 33, 101);
	result_init(&r);
	/* Wait for the first size, then resize and let the shell go on. */
	while (!strstr(r.out, "33 101"))
		assert_false(take_frame(a->fd, &r));
	le_put16(ws, 40);
	le_put16(ws + 2, 120);
	send_frame(a->fd, AGENT_RESIZE, ws, 4);
	send_frame(a->fd, AGENT_STDIN, "\n", 1);
	while (!take_frame(a->fd, &r))
		;
	assert_int_equal(r.status, 0);
	assert_int_equal(r.err_len, 0); /* with a tty everything is STDOUT */
	assert_non_null(strstr(r.out, "/dev/pts/"));
	assert_non_null(strstr(r.out, "40 120"));
	result_free(&r);

	/* An empty STDIN is the end-of-file character on a tty. */
	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0);
	start_full(fd, (const char *const[]){"cat", NULL}, std_env, "/", AGENT_START_TTY, getuid(),
		   getgid(), 0, 0);
	result_init(&r);
	exchange(fd, (const uint8_t *)"hi\n", 3, true, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "hi\r\nhi\r\n"); /* the echo, then cat */
	close(fd);
	result_free(&r);
	shut_down(a, 0);
}

/* Frames a hostile or buggy host may send: each gets ERROR, and the session goes on. */
static void malformed_input(void **state)
{
	struct agent *a = *state;
	struct result r;
	uint8_t hdr[AGENT_HDR_SIZE], junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	static uint8_t big[AGENT_MAX_PAYLOAD + 1];

	agent_hdr_encode(hdr, AGENT_STDIN, 3);
	hdr[6] = 1; /* flags */
	write_all(a->fd, hdr, sizeof(hdr));
	write_all(a->fd, "abc", 3);
	expect_error(a->fd, EPROTO);

	agent_hdr_encode(hdr, 99, 5); /* unknown type, with a payload to skip */
	write_all(a->fd, hdr, sizeof(hdr));
	write_all(a->fd, junk, 5);
	expect_error(a->fd, EPROTO);

	agent_hdr_encode(hdr, AGENT_STDIN, AGENT_MAX_PAYLOAD + 1);
	write_all(a->fd, hdr, sizeof(hdr));
	write_all(a->fd, big, sizeof(big));
	expect_error(a->fd, EMSGSIZE);

	send_frame(a->fd, AGENT_START, junk, 8); /* truncated START */
	expect_error(a->fd, EPROTO);
	send_frame(a->fd, AGENT_STDIN, "x", 1); /* before START */
	expect_error(a->fd, EPROTO);
	send_frame(a->fd, AGENT_STDOUT, "x", 1); /* the agent's own type */
	expect_error(a->fd, EPROTO);
	send_frame(a->fd, AGENT_RESIZE, junk, 3); /* wrong size */
	expect_error(a->fd, EPROTO);
	send_frame(a->fd, AGENT_SHUTDOWN, junk, 1); /* wrong size: not a SHUTDOWN */
	expect_error(a->fd, EPROTO);

	start(a->fd, (const char *const[]){"cat", NULL});
	result_init(&r);
	assert_false(take_frame(a->fd, &r));
	assert_true(r.started);
	start(a->fd, (const char *const[]){"echo", "again", NULL}); /* a second START */
	expect_error(a->fd, EPROTO);
	uint8_t sig[4];
	le_put32(sig, 0);
	send_frame(a->fd, AGENT_SIGNAL, sig, 4);
	expect_error(a->fd, EINVAL);
	le_put32(sig, 65);
	send_frame(a->fd, AGENT_SIGNAL, sig, 4);
	expect_error(a->fd, EINVAL);

	exchange(a->fd, (const uint8_t *)"still here", 10, true, &r);
	assert_string_equal(r.out, "still here");
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.status, 0);
	result_free(&r);
	shut_down(a, 0);
}

/* After the main process's EXIT the agent keeps serving until the host says the output is out;
 * the host's close says so too. */
static void main_exit_waits_for_the_host(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"sh", "-c", "exit 3", NULL});
	run_to_exit(a->fd, &r);
	assert_int_equal(r.status, 3);
	result_free(&r);
	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0); /* still serving */
	close(fd);
	close(a->fd);
	a->fd = -1;
	assert_int_equal(agent_wait(a), 3);
}

/* A background process that keeps stdout open does not hold back EXIT. */
static void exit_does_not_wait_for_grandchildren(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"sh", "-c", "echo a; sleep 1000 & exit 4", NULL});
	run_to_exit(a->fd, &r);
	assert_string_equal(r.out, "a\n");
	assert_int_equal(r.status, 4);
	result_free(&r);
	shut_down(a, 4);
}

static void host_leaves_or_shuts_down_early(void **state)
{
	struct agent *a = *state;
	struct result r;

	/* An exec session whose host leaves: its process is killed, the agent goes on. */
	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0);
	start(fd, (const char *const[]){"sleep", "1000", NULL});
	result_init(&r);
	assert_false(take_frame(fd, &r));
	close(fd);
	result_free(&r);

	start(a->fd, (const char *const[]){"sleep", "1000", NULL});
	result_init(&r);
	assert_false(take_frame(a->fd, &r));
	result_free(&r);
	shut_down(a, 137); /* SHUTDOWN before EXIT: everything is killed */
}

static void main_host_leaves(void **state)
{
	struct agent *a = *state;
	struct result r;
	start(a->fd, (const char *const[]){"cat", NULL});
	result_init(&r);
	assert_false(take_frame(a->fd, &r));
	result_free(&r);
	close(a->fd);
	a->fd = -1;
	assert_int_equal(agent_wait(a), 137);
}

static void session_limit(void **state)
{
	struct agent *a = *state;
	uint8_t b;
	int fds[15];
	for (int i = 0; i < 15; i++) {
		fds[i] = unix_connect(a->listen_path);
		expect_hello(fds[i], 0);
	}
	int fd = unix_connect(a->listen_path);
	expect_hello(fd, 0);
	expect_error(fd, EBUSY);
	assert_int_equal(read(fd, &b, 1), 0);
	close(fd);
	for (int i = 0; i < 15; i++)
		close(fds[i]);
	shut_down(a, 137);
}

/* With --root the process is chrooted: into a root that holds only a copy of a static busybox. */
static void chroot_with_root(void **state)
{
	(void)state;
	char root[64] = "/tmp/test_agent_root.XXXXXX", bin[96], copy[112], buf[65536];
	struct result r;
	struct agent *a;
	ssize_t n;

	if (getuid() != 0 || access("/bin/busybox", X_OK) != 0)
		skip(); /* chroot needs root; the copy needs a busybox */
	assert_non_null(mkdtemp(root));
	snprintf(bin, sizeof(bin), "%s/bin", root);
	snprintf(copy, sizeof(copy), "%s/bin/busybox", root);
	assert_int_equal(mkdir(bin, 0755), 0);
	FILE *in = fopen("/bin/busybox", "rb"), *out = fopen(copy, "wb");
	assert_non_null(in);
	assert_non_null(out);
	while ((n = (ssize_t)fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
	fclose(in);
	fclose(out);
	assert_int_equal(chmod(copy, 0755), 0);

	a = calloc(1, sizeof(*a));
	spawn_agent(a, root);
	start(a->fd, (const char *const[]){"busybox", "ls", "/", NULL});
	run_to_exit(a->fd, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "bin\n");
	result_free(&r);
	shut_down(a, 0);
	void *p = a;
	teardown(&p);
	unlink(copy);
	rmdir(bin);
	rmdir(root);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH_TO_VMM_AGENT\n", argv[0]);
		return 2;
	}
	agent_path = argv[1];
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(echo_hello, setup, teardown),
	    cmocka_unit_test_setup_teardown(exit_status_and_stderr, setup, teardown),
	    cmocka_unit_test_setup_teardown(killed_by_sigkill, setup, teardown),
	    cmocka_unit_test_setup_teardown(stdin_through_cat, setup, teardown),
	    cmocka_unit_test_setup_teardown(one_mib_of_stdout, setup, teardown),
	    cmocka_unit_test_setup_teardown(env_and_cwd_as_asked, setup, teardown),
	    cmocka_unit_test_setup_teardown(user_and_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(sigterm_reaches_sleep, setup, teardown),
	    cmocka_unit_test_setup_teardown(unknown_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(process_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(cannot_execute_or_chdir, setup, teardown),
	    cmocka_unit_test_setup_teardown(tty_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(malformed_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(main_exit_waits_for_the_host, setup, teardown),
	    cmocka_unit_test_setup_teardown(exit_does_not_wait_for_grandchildren, setup, teardown),
	    cmocka_unit_test_setup_teardown(host_leaves_or_shuts_down_early, setup, teardown),
	    cmocka_unit_test_setup_teardown(main_host_leaves, setup, teardown),
	    cmocka_unit_test_setup_teardown(session_limit, setup, teardown),
	    cmocka_unit_test(chroot_with_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
