/* SPDX-License-Identifier: MIT */
/*
 * requests.c - the queue's requests in its ring: the EPOLL_WAIT slots, their
 * cancels and NOPs, and reaping completions (uring.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "backend/epoll_mask.h"

#include "backend/uring/uring.h"

int evq__ur_enter(struct uring_state *s, unsigned to_submit, unsigned min_complete,
		  unsigned flags, const void *arg, size_t argsz)
{
	if (s->fault && to_submit && (atomic_fetch_add(&s->fault_tick, 1) & 1) == 0)
		return s->fault; /* as if the kernel had refused the batch */
	return evq__ring_enter(s->r.fd, to_submit, min_complete, flags, arg, argsz);
}

/* evq__sqe_get(), handing the queued SQEs to the kernel first if the SQ is
 * full (a ring may have a single SQE).  NULL if it stays full.  Locked. */
struct io_uring_sqe *evq__ur_sqe_get_flush(struct uring_state *s)
{
	struct io_uring_sqe *e;
	for (int i = 0; i < UR_FLUSH_TRIES && !(e = evq__sqe_get(&s->r)); i++)
		if (evq__ur_enter(s, evq__sq_pending(&s->r), 0, 0, NULL, 0) < 0)
			s->submit_errors++;
	return e;
}

static void on_cqe(struct uring_state *s, const struct io_uring_cqe *c)
{
	if (c->user_data >= UD_WORD_MIN) {
		struct uword *w = (struct uword *)(uintptr_t)c->user_data;
		w->state = UW_IDLE;
		s->nring--;
		evq__ur_collect_word(s, w, c->res);
		return;
	}
	if (c->user_data == UD_BELL) {
		s->bell_armed = 0; /* rung, -EAGAIN or -ECANCELED alike */
		return;
	}
	if (c->user_data < 1 || c->user_data > MAX_SLOTS)
		return; /* cancel, nudge and link timeout results */
	struct slot *sl = &s->slot[c->user_data - 1];
	sl->inflight = 0;
	s->inflight--;
	if (sl->cancelling) {
		sl->cancelling = 0;
		s->cancelling--;
	}
	if (c->res > 0) {
		sl->pos = 0;
		sl->count = c->res;
		s->filled++;
	} else if (c->res != -ECANCELED && c->res != -EINTR && c->res != -EAGAIN) {
		/* -ECANCELED: e.g. the submitting thread exited; resubmit */
		s->err = c->res;
	}
}

/* Reaps every completion, flushing a kernel overflow backlog too.  Returns
 * how many.  Locked. */
int evq__ur_reap(struct uring_state *s)
{
	struct evq__ring *r = &s->r;
	int n = 0;
	for (;;) {
		unsigned head = *r->cq_head;
		unsigned tail = evq__cq_tail(r);
		for (; head != tail; head++, n++)
			on_cqe(s, &r->cqes[head & r->cq_mask]);
		evq__cq_set_head(r, head);
		/* IORING_FEAT_NODROP: completions that did not fit wait in the
		 * kernel; entering with GETEVENTS moves them into the CQ */
		if (!evq__cq_overflowed(r))
			break;
		s->overflows++;
		if (evq__ring_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			break;
	}
	s->reaped += (unsigned)n;
	return n;
}

/* Translates harvested epoll events of one slot into out[]. */
int evq__ur_take_slot(struct slot *sl, struct evq__ready *out, int max)
{
	int k = 0;
	while (sl->pos < sl->count && k < max) {
		/* the same translation as the epoll backend */
		evq__epoll_out(&out[k++], &sl->buf[sl->pos++]);
	}
	return k;
}

/* Hands out what completed EPOLL_WAITs harvested.  Locked. */
int evq__ur_take(struct uring_state *s, struct evq__ready *out, int max)
{
	int k = 0;
	for (int i = 0; i < MAX_SLOTS && k < max && s->filled; i++) {
		struct slot *sl = &s->slot[i];
		if (sl->inflight || sl->pos >= sl->count)
			continue;
		k += evq__ur_take_slot(sl, out + k, max - k);
		if (sl->pos >= sl->count)
			s->filled--;
	}
	return k;
}

size_t evq__ur_buf_len(const struct uring_state *s)
{
	return (size_t)s->bufsize * sizeof(struct epoll_event);
}

/* Queues an EPOLL_WAIT for max events on a free slot (in flight: no;
 * events left: none), bounded by a LINK_TIMEOUT of timeout_ns if >= 0, so
 * that it does not outlive the wait() that wants it.  0 if none could be
 * queued.  Locked. */
int evq__ur_arm_one(struct uring_state *s, int max, int64_t timeout_ns)
{
	struct evq__ring *r = &s->r;
	for (int i = 0; i < MAX_SLOTS; i++) {
		struct slot *sl = &s->slot[i];
		if (sl->inflight || sl->pos < sl->count)
			continue;
		if (!sl->buf) {
			/* mmap, not malloc: see ur_fini() (init.c) */
			void *m = mmap(NULL, evq__ur_buf_len(s), PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED)
				return 0;
			sl->buf = m;
		}
		/* a ring of one SQE cannot take the linked pair */
		if (r->sq_entries < 2)
			timeout_ns = -1;
		unsigned need = timeout_ns >= 0 ? 2 : 1;
		if (r->sq_entries - evq__sq_pending(r) < need) {
			/* SQ full: hand what is queued to the kernel first */
			int rc = evq__ur_enter(s, evq__sq_pending(r), 0, 0, NULL, 0);
			if (rc < 0)
				s->submit_errors++;
			if (r->sq_entries - evq__sq_pending(r) < need)
				return 0;
		}
		struct io_uring_sqe *e = evq__sqe_get(r);
		e->opcode = IORING_OP_EPOLL_WAIT;
		e->fd = s->epfd;
		e->addr = (uint64_t)(uintptr_t)sl->buf;
		e->len = (unsigned)(max < s->bufsize ? max : s->bufsize);
		e->user_data = (uint64_t)i + 1;
		if (timeout_ns >= 0)
			e->flags = IOSQE_IO_LINK;
		evq__sqe_push(r);
		if (timeout_ns >= 0) {
			sl->ts.tv_sec = timeout_ns / 1000000000;
			sl->ts.tv_nsec = timeout_ns % 1000000000;
			e = evq__sqe_get(r);
			e->opcode = IORING_OP_LINK_TIMEOUT;
			e->addr = (uint64_t)(uintptr_t)&sl->ts;
			e->len = 1;
			e->user_data = UD_LTIMEOUT;
			evq__sqe_push(r);
		}
		sl->inflight = 1;
		sl->owner = pthread_self();
		sl->pos = sl->count = 0;
		s->inflight++;
		return 1;
	}
	return 0;
}

static void queue_cancel(struct uring_state *s, int i)
{
	struct slot *sl = &s->slot[i];
	struct io_uring_sqe *e = evq__ur_sqe_get_flush(s);
	if (!e)
		return;
	e->opcode = IORING_OP_ASYNC_CANCEL;
	e->fd = -1;
	e->addr = (uint64_t)i + 1;
	e->user_data = UD_CANCEL;
	evq__sqe_push(&s->r);
	if (!sl->cancelling) {
		sl->cancelling = 1;
		s->cancelling++;
	}
}

/* Queues an ASYNC_CANCEL for every EPOLL_WAIT in flight.  Locked. */
void evq__ur_queue_cancels(struct uring_state *s)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (s->slot[i].inflight)
			queue_cancel(s, i);
}

/* Leaving wait().  A request's completion runs as task work of the thread
 * that submitted it, so a thread never leaves one behind: it cancels what
 * it submitted and is still in flight (the LINK_TIMEOUT usually did that
 * already).  Then, if fewer requests remain than threads sleeping, or
 * events are left over (taken from epoll beyond this caller's max), it ends
 * that many sleeps with NOPs: each woken thread arms its own request (as
 * epoll_wait wakes another waiter for items left on its ready list).
 * Locked. */
void evq__ur_leave(struct uring_state *s)
{
	/* Nobody in the ring or inline and nothing in flight: nothing to
	 * cancel, arm or nudge below (a busy single waiter leaves so after
	 * every poll_first()). */
	if (atomic_load(&s->sleepers) == 0 && s->inl == 0 && s->inflight == 0)
		return;
	pthread_t me = pthread_self();
	int rs = ring_sleepers(s);
	int urgent = rs > 0; /* they need re-armed words watched */
	for (int i = 0; i < MAX_SLOTS && s->inflight; i++) {
		struct slot *sl = &s->slot[i];
		if (sl->inflight && !sl->cancelling && pthread_equal(sl->owner, me)) {
			urgent = 1;
			queue_cancel(s, i);
			s->cancels++;
		}
	}
	/* We may have reaped the bell's completion: the sleepers need it
	 * armed again.  LF5 as in evq__ur_wait: read the bell before looking at
	 * wpend and nfds; a wake() or fd add seen here needs a NOP. */
	int rearm_bell = rs > 0 && !s->bell_armed;
	uint32_t seen = rearm_bell ? evq__ld(&s->bell) : 0;
	/* ring sleepers each want an EPOLL_WAIT while fds are registered */
	int want = atomic_load(&s->nfds) > 0 ? rs : 0;
	int nudges = want - (s->inflight - s->cancelling);
	if (rs > 0 && nudges < 1 && (evq__ur_leftovers(s) || atomic_load(&s->wpend)))
		nudges = 1;
	if (rearm_bell)
		evq__ur_arm_bell(s, seen);
	/* Words this thread armed or re-checked: ring sleepers watch them
	 * through the ring; an inline sleeper must rebuild its vector. */
	if (s->loose && rs > 0)
		evq__ur_queue_loose(s);
	else if (s->inl && (s->loose || (rs == 0 && s->nring > 0)))
		evq__ur_ring_bell(s); /* ... or take over words the ring no longer
			       * watches for anyone */
	for (int i = 0; i < nudges && i < MAX_SLOTS; i++) {
		struct io_uring_sqe *e = evq__ur_sqe_get_flush(s);
		if (!e)
			break;
		e->opcode = IORING_OP_NOP;
		e->user_data = UD_NUDGE;
		evq__sqe_push(&s->r);
	}
	/* Re-armed words alone can wait for this thread's next enter: their
	 * FUTEX_WAIT compares the word when it is queued, so nothing is
	 * missed, and nobody else waits to receive it. */
	unsigned n = evq__sq_pending(&s->r);
	if (n && urgent && evq__ur_enter(s, n, 0, 0, NULL, 0) < 0)
		s->submit_errors++;
}
