/* io-bench: the guest half of the device I/O benchmark (static, in the test initramfs).
 *
 *   io-bench randread DEV QD SECONDS [SPAN_MIB]   4 KiB O_DIRECT reads at random aligned offsets
 *   io-bench randwrite DEV QD SECONDS [SPAN_MIB]  the same with writes (a known pattern)
 *   io-bench tcp-recv PORT                        accept one TCP connection and read it to EOF
 *
 * The block modes keep QD requests in flight through Linux AIO (io_submit/io_getevents, raw
 * syscalls, so no libaio is needed: the guest kernel has CONFIG_AIO), resubmitting each one as
 * it completes, for SECONDS, over the first SPAN_MIB MiB of DEV (all of it when left out).
 * Offsets come from a fixed-seed xorshift generator, so each run asks for the same sequence.
 * One line on stdout gives the result, for bench/io.py to parse:
 *
 *   io-bench: randread qd=16 ops=12345 seconds=5.000 iops=2469.0
 *   io-bench: tcp-recv bytes=33554432 seconds=4.000 mib_s=8.0
 *
 * Time is the guest's CLOCK_MONOTONIC. Any failure is one "io-bench: ..." line and exit 1. */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BS     4096u
#define QD_MAX 256u

static int die(const char *what)
{
	printf("io-bench: %s: %s\n", what, strerror(errno));
	return 1;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift64(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int do_block(const char *mode, const char *dev, unsigned qd, double seconds,
		    unsigned long long span_mib)
{
	bool write_mode = !strcmp(mode, "randwrite");
	int fd = open(dev, (write_mode ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return die(dev);
	uint64_t size;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return die("fstat");
	if (S_ISREG(st.st_mode))
		size = (uint64_t)st.st_size; /* a plain file serves for trying it out on a host */
	else if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return die("BLKGETSIZE64");
	if (span_mib && span_mib << 20 < size)
		size = span_mib << 20;
	uint64_t blocks = size / BS;
	if (blocks == 0) {
		printf("io-bench: %s is smaller than one 4 KiB block\n", dev);
		return 1;
	}

	aio_context_t ctx = 0;
	if (syscall(SYS_io_setup, qd, &ctx) < 0)
		return die("io_setup");
	static struct iocb cbs[QD_MAX];
	static struct iocb *cbp[QD_MAX];
	static struct io_event ev[QD_MAX];
	uint8_t *bufs;
	if (posix_memalign((void **)&bufs, BS, (size_t)qd * BS)) {
		printf("io-bench: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < (size_t)qd * BS; i++)
		bufs[i] = (uint8_t)(i * 7 % 251);
	for (unsigned i = 0; i < qd; i++) {
		cbs[i] = (struct iocb){
		    .aio_data = i,
		    .aio_lio_opcode = write_mode ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD,
		    .aio_fildes = (uint32_t)fd,
		    .aio_buf = (uint64_t)(uintptr_t)(bufs + (size_t)i * BS),
		    .aio_nbytes = BS,
		    .aio_offset = (int64_t)(xorshift64() % blocks * BS),
		};
		cbp[i] = &cbs[i];
	}

	unsigned long long ops = 0;
	double t0 = now(), end = t0 + seconds, t1 = t0;
	long r = syscall(SYS_io_submit, ctx, (long)qd, cbp);
	if (r != (long)qd)
		return die("io_submit");
	unsigned inflight = qd;
	while (inflight) {
		long n = syscall(SYS_io_getevents, ctx, 1L, (long)inflight, ev, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return die("io_getevents");
		}
		t1 = now();
		unsigned again = 0;
		for (long i = 0; i < n; i++) {
			if (ev[i].res != (int64_t)BS) {
				errno = ev[i].res < 0 ? (int)-ev[i].res : EIO;
				return die(write_mode ? "write" : "read");
			}
			ops++;
			inflight--;
			if (t1 < end) {
				struct iocb *cb = &cbs[ev[i].data];
				cb->aio_offset = (int64_t)(xorshift64() % blocks * BS);
				cbp[again++] = cb;
			}
		}
		if (again) {
			r = syscall(SYS_io_submit, ctx, (long)again, cbp);
			if (r != (long)again)
				return die("io_submit");
			inflight += again;
		}
	}
	double dt = t1 - t0;
	printf("io-bench: %s qd=%u ops=%llu seconds=%.3f iops=%.1f\n", mode, qd, ops, dt,
	       dt > 0 ? (double)ops / dt : 0.0);
	syscall(SYS_io_destroy, ctx);
	free(bufs);
	close(fd);
	return 0;
}

static int do_tcp_recv(unsigned port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return die("socket");
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0)
		return die("bind/listen");
	printf("io-bench: listening on TCP port %u\n", port);
	fflush(stdout);
	int c = accept(s, NULL, NULL);
	if (c < 0)
		return die("accept");
	static char buf[1 << 18];
	unsigned long long total = 0;
	double t0 = now();
	for (;;) {
		ssize_t r = read(c, buf, sizeof(buf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return die("read");
		}
		if (r == 0)
			break;
		total += (unsigned long long)r;
	}
	double dt = now() - t0;
	printf("io-bench: tcp-recv bytes=%llu seconds=%.3f mib_s=%.1f\n", total, dt,
	       dt > 0 ? (double)total / (1 << 20) / dt : 0.0);
	close(c);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long long qd, secs, span = 0, port;
	if ((argc == 5 || argc == 6) &&
	    (!strcmp(argv[1], "randread") || !strcmp(argv[1], "randwrite")) &&
	    !parse_uint(argv[3], QD_MAX, &qd) && qd > 0 && !parse_uint(argv[4], 3600, &secs) &&
	    (argc == 5 || !parse_uint(argv[5], 1ull << 30, &span)))
		return do_block(argv[1], argv[2], (unsigned)qd, (double)secs, span);
	if (argc == 3 && !strcmp(argv[1], "tcp-recv") && !parse_uint(argv[2], 65535, &port))
		return do_tcp_recv((unsigned)port);
	fprintf(stderr,
		"usage: io-bench randread|randwrite DEV QD(1-%u) SECONDS [SPAN_MIB]\n"
		"       io-bench tcp-recv PORT\n",
		QD_MAX);
	return 2;
}
