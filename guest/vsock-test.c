/* vsock-test: the guest half of the vsock integration tests (static, in the test initramfs).
 *
 *   vsock-test connect CID PORT BYTES   connect to CID:PORT, send BYTES of a known pattern while
 *                                       reading the echo back; exit 0 if it came back intact
 *   vsock-test listen PORT              accept one connection on PORT and echo it until EOF
 *
 * The pattern is byte i = (i * 7 + i / 65536) mod 251, so a lost, doubled or reordered block
 * shows. One line on stdout says what happened. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char pattern(unsigned long long i)
{
	return (unsigned char)((i * 7 + i / 65536) % 251);
}

static int die(const char *what)
{
	printf("vsock-test: %s: %s\n", what, strerror(errno));
	return 1;
}

static int do_connect(unsigned cid, unsigned port, unsigned long long bytes)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return die("socket");
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return die("connect");
	fcntl(fd, F_SETFL, O_NONBLOCK);
	unsigned long long sent = 0, got = 0;
	unsigned char buf[65536];
	while (got < bytes) {
		struct pollfd p = {fd, POLLIN | (sent < bytes ? POLLOUT : 0), 0};
		if (poll(&p, 1, 60000) <= 0)
			return die("poll (no progress in 60 s)");
		if (sent < bytes && (p.revents & POLLOUT)) {
			size_t n =
			    bytes - sent < sizeof(buf) ? (size_t)(bytes - sent) : sizeof(buf);
			for (size_t i = 0; i < n; i++)
				buf[i] = pattern(sent + i);
			ssize_t w = write(fd, buf, n);
			if (w < 0 && errno != EAGAIN)
				return die("write");
			if (w > 0)
				sent += (unsigned long long)w;
			if (sent == bytes)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r < 0 && errno != EAGAIN)
				return die("read");
			if (r == 0) {
				printf("vsock-test: EOF after %llu of %llu bytes\n", got, bytes);
				return 1;
			}
			for (ssize_t i = 0; i < r; i++)
				if (buf[i] != pattern(got + (unsigned long long)i)) {
					printf("vsock-test: byte %llu differs\n",
					       got + (unsigned long long)i);
					return 1;
				}
			if (r > 0)
				got += (unsigned long long)r;
		}
	}
	printf("vsock-test: echoed %llu bytes intact\n", got);
	close(fd);
	return 0;
}

static int do_listen(unsigned port)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return die("socket");
	struct sockaddr_vm a = {
	    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0)
		return die("bind/listen");
	printf("vsock-test: listening on port %u\n", port);
	fflush(stdout);
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return die("accept");
	unsigned long long total = 0;
	char buf[65536];
	for (;;) {
		ssize_t r = read(c, buf, sizeof(buf));
		if (r < 0)
			return die("read");
		if (r == 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(c, buf + off, (size_t)(r - off));
			if (w < 0)
				return die("write");
			off += w;
		}
		total += (unsigned long long)r;
	}
	printf("vsock-test: echoed %llu bytes back\n", total);
	close(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "connect"))
		return do_connect((unsigned)strtoul(argv[2], NULL, 0),
				  (unsigned)strtoul(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "listen"))
		return do_listen((unsigned)strtoul(argv[2], NULL, 0));
	fprintf(stderr, "usage: vsock-test connect CID PORT BYTES | listen PORT\n");
	return 2;
}
