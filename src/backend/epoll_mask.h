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
 * socket's urgent byte is not read by read(), so PRI alone is not READ). */
static inline uint32_t evq__epoll_ready(uint32_t e)
{
	uint32_t m = 0;
	if (e & EPOLLIN)
		m |= EVQ_READ;
	if (e & EPOLLPRI)
		m |= EVQ_PRI;
	if (e & EPOLLOUT)
		m |= EVQ_WRITE;
	if (e & EPOLLERR)
		m |= EVQ_ERR;
	if (e & (EPOLLHUP | EPOLLRDHUP))
		m |= EVQ_HUP | EVQ_READ;
	return m;
}

#endif
