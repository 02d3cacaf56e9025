/* The console: vmm's stdin feeds the guest's serial port, serial output goes to vmm's stdout.
 * A terminal on stdin is put in raw mode (input side) and restored on every exit path. */
#ifndef VMM_CONSOLE_H
#define VMM_CONSOLE_H

#include "devices/serial_8250.h"
#include "vmm/eventloop.h"

#include <stdbool.h>
#include <termios.h>

struct console {
	int in_fd, out_fd;
	struct serial8250 *serial;
	struct event_loop *el;
	struct ev_handler in_h, space_h;
	int space_efd;	      /* the serial signals "room again" here (from a vCPU thread) */
	bool in_watched;      /* stdin is in the epoll set */
	bool in_unpollable;   /* a regular file or /dev/null: read it whenever there is room */
	bool in_done;	      /* EOF or error on stdin */
	unsigned panic_match; /* chars of the panic banner matched so far */
	bool panic_seen;
	/* A container keeps the console (kernel and agent messages) to itself unless something
	 * fails: the last CONSOLE_HELD bytes wait here for console_flush_held. */
	bool hold;
	size_t held_len;
	uint8_t held[16384];
};

/* Sets up input: raw mode if in_fd is a terminal, stdin watching. Returns 0 or -errno. */
int console_init(struct console *c, struct event_loop *el, struct serial8250 *s, int in_fd,
		 int out_fd);
/* Guest output: written to out_fd in full (or held, see hold), and watched for the kernel's
 * panic banner. */
void console_output(struct console *c, const uint8_t *buf, size_t len);
/* With c->hold, writes what the console printed (its last 16 KiB) to out_fd and stops
 * holding. */
void console_flush_held(struct console *c);
/* Called from a vCPU thread by the serial when its input buffer has room again. */
void console_rx_space(struct console *c);
/* Puts the terminal fd in raw mode on the input side (every key, Ctrl-C included, goes to the
 * guest) and remembers its settings for console_restore, which also runs at exit. Returns 0 or
 * -errno. */
int console_make_raw(int fd);
/* Restores the terminal. Safe to call more than once and from an atexit handler. */
void console_restore(void);
void console_close(struct console *c);

#endif
