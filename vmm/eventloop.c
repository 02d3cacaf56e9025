/* epoll-based event loop. */
#include "vmm/eventloop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int ev_init(struct event_loop *el)
{
	el->stop = false;
	el->epfd = epoll_create1(EPOLL_CLOEXEC);
	return el->epfd < 0 ? -errno : 0;
}

void ev_close(struct event_loop *el)
{
	if (el->epfd >= 0)
		close(el->epfd);
	el->epfd = -1;
}

int ev_add(struct event_loop *el, struct ev_handler *h, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};
	return epoll_ctl(el->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0 ? -errno : 0;
}

int ev_del(struct event_loop *el, struct ev_handler *h)
{
	return epoll_ctl(el->epfd, EPOLL_CTL_DEL, h->fd, NULL) < 0 ? -errno : 0;
}

int ev_run_once(struct event_loop *el, int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(el->epfd, evs, 16, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !el->stop; i++) {
		struct ev_handler *h = evs[i].data.ptr;
		h->fn(h->opaque, evs[i].events);
	}
	return n;
}

int ev_run(struct event_loop *el)
{
	while (!el->stop) {
		int n = ev_run_once(el, -1);
		if (n < 0)
			return n;
	}
	return 0;
}
