/* SPDX-License-Identifier: MIT */
/*
 * epoll_mask.h - evq's readiness bits <-> epoll's, for the two backends that
 * wait on an epoll set (epoll.c directly, uring/ through
 * IORING_OP_EPOLL_WAIT), so both translate in exactly the same way.
 */
#ifndef EVQ_EPOLL_MASK_H
#define EVQ_EPOLL_MASK_H

#include <stdint.h>
#include <sys/epoll.h>

#include "backend/backend.h"
#include "evq.h"

/* Interest for epoll_ctl.  Disabled: no events and EPOLLONESHOT, since epoll
 * always adds EPOLLERR|EPOLLHUP - a disabled fd can wake the waiter once
 * (the core drops that event) but never spin it. */
static inline uint32_t evq__epoll_interest(uint32_t events, uint32_t flags)
{
	uint32_t e = 0;
	if (flags & EVQ_DISABLED)
		return EPOLLONESHOT;
	if (events & EVQ_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & EVQ_WRITE)
		e |= EPOLLOUT;
	if (events & EVQ_PRI)
		e |= EPOLLPRI;
	if (flags & EVQ_EDGE)
		e |= EPOLLET;
	if (flags & EVQ_ONESHOT)
		e |= EPOLLONESHOT;
	return e;
}

/* Readiness epoll reported, as EVQ_* bits.  A reader's hang-up (RDHUP) is
 * reported as readable, so the caller reads the EOF, plus EVQ_HUP.  Urgent
 * data (EPOLLPRI, only reported when asked for) is EVQ_PRI alone: the
 * kernel says EPOLLIN itself when there is also something to read (a
 * socket's urgent byte is not read by read(), so PRI alone is not READ).
 * EPOLLIN, PRI, OUT, ERR and HUP are bits 0..4, so a 32-entry table
 * translates them (every ready event passes here: five tests were about a
 * third of the backend's work per event). */
#define EVQ__EP_(e) ((((e) & EPOLLIN) ? EVQ_READ : 0) |			\
		     (((e) & EPOLLPRI) ? EVQ_PRI : 0) |			\
		     (((e) & EPOLLOUT) ? EVQ_WRITE : 0) |			\
		     (((e) & EPOLLERR) ? EVQ_ERR : 0) |			\
		     (((e) & EPOLLHUP) ? EVQ_HUP | EVQ_READ : 0))
#define EVQ__EP4_(e) EVQ__EP_(e), EVQ__EP_((e) + 1), EVQ__EP_((e) + 2), \
		     EVQ__EP_((e) + 3)
_Static_assert((EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP) == 0x1f,
	       "epoll's first five bits are IN, PRI, OUT, ERR, HUP");

static inline uint32_t evq__epoll_ready(uint32_t e)
{
	static const uint8_t low[32] = {
		EVQ__EP4_(0), EVQ__EP4_(4), EVQ__EP4_(8), EVQ__EP4_(12),
		EVQ__EP4_(16), EVQ__EP4_(20), EVQ__EP4_(24), EVQ__EP4_(28),
	};
	uint32_t m = low[e & 0x1f];
	if (e & EPOLLRDHUP)
		m |= EVQ_HUP | EVQ_READ;
	return m;
}
#undef EVQ__EP4_
#undef EVQ__EP_

/* One kernel event as the core takes it (backend.h). */
static inline void evq__epoll_out(struct evq__ready *out,
				  const struct epoll_event *e)
{
	out->token = e->data.u64;
	out->events = evq__epoll_ready(e->events);
}

#endif
