/* Console plumbing between vmm's stdio and the guest's 8250. Input is read only while the
 * serial's buffer has room, so piped input is never dropped; output is written unbuffered. */
#include "vmm/console.h"
#include "vmm/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Linux prints this, whatever the loglevel short of 0, when it panics. There is no paravirtual
 * panic device without ACPI or PCI, so the console is how vmm tells a panic from a reboot. */
static const char panic_banner[] = "Kernel panic - not syncing";

static struct termios saved_termios;
static int saved_fd = -1;

void console_restore(void)
{
	if (saved_fd >= 0) {
		tcsetattr(saved_fd, TCSANOW, &saved_termios);
		saved_fd = -1;
	}
}

int console_make_raw(int fd)
{
	if (tcgetattr(fd, &saved_termios) < 0)
		return -errno;
	struct termios t = saved_termios;
	/* Input side raw: every key, Ctrl-C included, goes to the guest. Output processing stays on
	 * so vmm's own messages still start at column 0. */
	t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag = (t.c_cflag & ~(CSIZE | PARENB)) | CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return -errno;
	saved_fd = fd;
	atexit(console_restore);
	return 0;
}

/* Reads what fits into the serial buffer. For pollable input one read per readiness event (a
 * second could block); for unpollable input (files) until full or EOF. */
static void pump_input(struct console *c)
{
	uint8_t buf[SERIAL_RX_BUF];
	while (!c->in_done) {
		size_t room = serial_rx_space(c->serial);
		if (room == 0) {
			if (c->in_watched) {
				ev_del(c->el, &c->in_h);
				c->in_watched = false;
			}
			return;
		}
		ssize_t n = read(c->in_fd, buf, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* EOF: the guest simply gets no more input, as with a closed serial line.
			 */
			c->in_done = true;
			if (c->in_watched)
				ev_del(c->el, &c->in_h);
			c->in_watched = false;
			return;
		}
		serial_rx_push(c->serial, buf, (size_t)n);
		if (!c->in_unpollable)
			return;
	}
}

static void on_input(void *opaque, uint32_t events)
{
	(void)events;
	pump_input(opaque);
}

static void on_space(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint64_t v;
	(void)events;
	if (read(c->space_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (c->in_done)
		return;
	if (!c->in_unpollable && !c->in_watched) {
		if (ev_add(c->el, &c->in_h, EPOLLIN) == 0)
			c->in_watched = true;
		return;
	}
	pump_input(c);
}

void console_rx_space(struct console *c)
{
	uint64_t one = 1;
	if (write(c->space_efd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; nothing else to do. */
	}
}

int console_init(struct console *c, struct event_loop *el, struct serial8250 *s, int in_fd,
		 int out_fd)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->serial = s;
	c->el = el;
	c->space_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->space_efd < 0)
		return -errno;
	c->space_h = (struct ev_handler){c->space_efd, on_space, c};
	int r = ev_add(el, &c->space_h, EPOLLIN);
	if (r < 0)
		return r;
	if (isatty(in_fd)) {
		r = console_make_raw(in_fd);
		if (r < 0)
			vmm_log("cannot put the terminal in raw mode: %s (continuing)",
				strerror(-r));
	}
	c->in_h = (struct ev_handler){in_fd, on_input, c};
	r = ev_add(el, &c->in_h, EPOLLIN);
	if (r == 0) {
		c->in_watched = true;
	} else if (r == -EPERM) {
		c->in_unpollable = true;
		pump_input(c);
	} else if (r == -EBADF) {
		c->in_done = true; /* no stdin at all */
	} else {
		return r;
	}
	return 0;
}

static void write_out(struct console *c, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(c->out_fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* stdout gone: the guest keeps running, its output is lost */
		buf += n;
		len -= (size_t)n;
	}
}

void console_output(struct console *c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		/* The banner's first letter occurs only once in it, so a mismatch can restart the
		 * match at this character without backtracking. */
		if (buf[i] == (uint8_t)panic_banner[c->panic_match]) {
			if (++c->panic_match == sizeof(panic_banner) - 1) {
				c->panic_seen = true;
				c->panic_match = 0;
			}
		} else {
			c->panic_match = buf[i] == (uint8_t)panic_banner[0] ? 1 : 0;
		}
	}
	if (c->hold) {
		size_t cap = sizeof(c->held);
		if (len >= cap) {
			buf += len - cap;
			len = cap;
		}
		if (c->held_len + len > cap) { /* keep the newest bytes */
			size_t drop = c->held_len + len - cap;
			memmove(c->held, c->held + drop, c->held_len - drop);
			c->held_len -= drop;
		}
		memcpy(c->held + c->held_len, buf, len);
		c->held_len += len;
		return;
	}
	write_out(c, buf, len);
}

void console_flush_held(struct console *c)
{
	if (!c->hold)
		return;
	c->hold = false;
	write_out(c, c->held, c->held_len);
	c->held_len = 0;
}

void console_close(struct console *c)
{
	console_restore();
	if (c->space_efd >= 0)
		close(c->space_efd);
	c->space_efd = -1;
}
