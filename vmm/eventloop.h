/* The event loop on vmm's main thread: epoll over the fds devices and the console register.
 * vCPU threads only run the guest; everything that waits on the host happens here. */
#ifndef VMM_EVENTLOOP_H
#define VMM_EVENTLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ev_handler {
	int fd;
	void (*fn)(void *opaque, uint32_t events); /* called on the loop thread */
	void *opaque;
};

struct event_loop {
	int epfd;
	bool stop; /* set by a handler to make ev_run return */
};

int ev_init(struct event_loop *el);
void ev_close(struct event_loop *el);
/* Watch h->fd for `events` (EPOLLIN...). h must live until ev_del. Returns 0 or -errno (-EPERM
 * for fds epoll cannot watch, like regular files). */
int ev_add(struct event_loop *el, struct ev_handler *h, uint32_t events);
int ev_del(struct event_loop *el, struct ev_handler *h);
/* Dispatches events until a handler sets el->stop. Returns 0 or -errno on an epoll failure. */
int ev_run(struct event_loop *el);
/* Waits up to timeout_ms (-1: forever) for events and dispatches those that came. Returns how
 * many were dispatched (0 on timeout) or -errno. For tests and for draining at shutdown. */
int ev_run_once(struct event_loop *el, int timeout_ms);

#endif
