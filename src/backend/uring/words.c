/* SPDX-License-Identifier: MIT */
/*
 * words.c - native word waits: IORING_OP_FUTEX_WAIT (or the inline sleep)
 * instead of the watcher thread (uring.h; the watcher's protocol,
 * model/word.pml, and the inline sleep's, model/inline.pml; a record's
 * states: enum uword_state in uring.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend/uring/uring.h"

/* Words and latches only: semaphores stay on the watcher thread
 * (watch.c), since a wake a semaphore's watch takes while nobody waits on
 * the queue must be passed on at once (sem.c Q4), and a ring runs check()
 * only inside a wait().
 *
 * Protocol (the watcher's, model/word.pml, with the ring as the thread):
 * word_arm (q->lock, then s->lock) queues a FUTEX_WAIT for *addr ==
 * it->expected and submits it at once: the kernel compares the word when it
 * queues the wait, so a change made before that completes the request with
 * -EAGAIN at once (no change is missed, as at X5).  A completion is
 * collected by whichever thread reaps the CQ and processed by a thread in
 * wait() holding q->lock and s->lock (X3): check() runs serialised with
 * evq__word_arm/idle, which write the item under q->lock; if check() keeps
 * watching, the FUTEX_WAIT is queued again and goes with the next enter
 * (the kernel's comparison again closes the gap).  word_disarm detaches the
 * record and cancels the request synchronously (IORING_REGISTER_SYNC_CANCEL):
 * afterwards the kernel no longer sleeps on the word and check() is never
 * called for it (O3).  A wake the request may have taken meanwhile is
 * passed on with FUTEX_WAKE(1) (X2). */

__thread __attribute__((tls_model("initial-exec")))
struct uring_state *evq__ur_checking;     /* this thread runs check() for it */
__thread __attribute__((tls_model("initial-exec"))) unsigned evq__ur_kicked;

/* w's wait ended with res (a completion's, or what an inline sleep or a
 * poll saw): evq__ur_process_words() runs its check().  Locked. */
void evq__ur_collect_word(struct uring_state *s, struct uword *w, int res)
{
	w->state = UW_DONE;
	w->res = res;
	w->next = s->done;
	s->done = w;
}

static void queue_futex(struct uring_state *s, struct uword *w)
{
	struct io_uring_sqe *e = evq__ur_sqe_get_flush(s);
	if (!e) {
		/* the kernel kept refusing submissions: the next sleeper
		 * tries again (a ring sleep then lasts at most 1 ms) */
		evq__ur_make_loose(s, w);
		return;
	}
	e->opcode = IORING_OP_FUTEX_WAIT;
	e->addr = (uint64_t)(uintptr_t)w->addr;
	e->addr2 = w->expected;
	e->addr3 = FUTEX_BITSET_MATCH_ANY;
	e->fd = (int)evq__waitv_flags(w->shared);
	e->user_data = (uint64_t)(uintptr_t)w;
	evq__sqe_push(&s->r);
	w->state = UW_RING;
	s->nring++;
}

void evq__ur_word_free_if_done(struct uring_state *s, struct uword *w)
{
	if (w->it || w->state != UW_IDLE)
		return;
	for (struct uword **p = &s->words; *p; p = &(*p)->next_all)
		if (*p == w) {
			*p = w->next_all;
			break;
		}
	free(w);
}

/* An armed word that nobody watches yet: the next sleeper takes it, into
 * the ring (evq__ur_queue_loose) or into its inline vector.  Locked. */
void evq__ur_make_loose(struct uring_state *s, struct uword *w)
{
	if (w->state != UW_IDLE)
		return;
	w->state = UW_LOOSE;
	w->next = s->loose;
	s->loose = w;
	s->nloose++;
}

/* Takes the loose words off the list, for the ring (evq__ur_queue_loose),
 * the inline vector or a poll, which go through it with
 * evq__ur_pop_loose().  Locked. */
struct uword *evq__ur_take_loose(struct uring_state *s)
{
	struct uword *list = s->loose;
	s->loose = NULL;
	s->nloose = 0;
	return list;
}

/* The next record of a list taken off s->loose, s->done or s->rearm,
 * idle (on no list) from now on, or NULL at the list's end.  Locked. */
static struct uword *pop(struct uword **list)
{
	struct uword *w = *list;
	if (w) {
		*list = w->next;
		w->state = UW_IDLE;
	}
	return w;
}

/* The next word of a list evq__ur_take_loose() returned, idle again, or
 * NULL at its end; records detached meanwhile are freed on the way.
 * Locked. */
struct uword *evq__ur_pop_loose(struct uring_state *s, struct uword **list)
{
	struct uword *w;
	while ((w = pop(list)) && !w->it)
		evq__ur_word_free_if_done(s, w);
	return w;
}

/* Queues a FUTEX_WAIT for every loose word; the next enter submits them.
 * Locked. */
void evq__ur_queue_loose(struct uring_state *s)
{
	struct uword *list = evq__ur_take_loose(s), *w;
	while ((w = evq__ur_pop_loose(s, &list)))
		queue_futex(s, w);
}

/* Cancels w's FUTEX_WAIT synchronously: when this returns 0 the kernel no
 * longer sleeps on the word (the -ECANCELED completion follows); -ENOENT:
 * it had completed.  Locked. */
int evq__ur_cancel_word(struct uring_state *s, struct uword *w)
{
	struct io_uring_sync_cancel_reg c;
	memset(&c, 0, sizeof c);
	c.addr = (uint64_t)(uintptr_t)w;
	c.fd = -1;
	c.timeout.tv_sec = -1;
	c.timeout.tv_nsec = -1;
	return evq__ring_register(s->r.fd, IORING_REGISTER_SYNC_CANCEL, &c, 1);
}

#if EVQ_URING_NATIVE_WORDS
/* Takes w off the registration: no check() from now on, and the kernel no
 * longer waits on the word.  Locked (q and s). */
static void word_detach(struct uring_state *s, struct uword *w)
{
	int pass_on = 0, inl = w->state == UW_INLINE;
	w->it = NULL;
	if (w->state == UW_RING) {
		/* not found: it completed already, maybe with a wake */
		pass_on = evq__ur_cancel_word(s, w) != 0;
	} else if (w->state == UW_DONE && w->res == 0) {
		pass_on = 1;
	}
	if (pass_on)
		evq__futex_wake(w->addr, 1, w->shared);
	evq__ur_word_free_if_done(s, w);
	/* O3: the inline sleeper may sleep on the word; once its sleep ended
	 * (IN3 passes on a wake it may have taken for the word, X2) the kernel
	 * no longer does, and the word may be freed.  Waiting releases
	 * s->lock, never q->lock: IN3 needs only s->lock. */
	if (inl) {
		unsigned gen = s->inl_gen;
		evq__ur_ring_bell(s);
		s->inl_waiters++;
		while (s->inl_gen == gen)
			pthread_cond_wait(&s->inl_cv, &s->lock);
		s->inl_waiters--;
	}
}

int evq__ur_word_arm(struct evq *q, struct evq__reg *r)
{
	struct uring_state *s = st(q);
	struct evq__watch_item *it = r->ext; /* first member of the kind's state */
	uint32_t idx = evq__idx(r);
	pthread_mutex_lock(&s->lock);
	if (idx >= s->wmap_len) {
		uint32_t len = s->wmap_len ? s->wmap_len : 64;
		while (len <= idx)
			len *= 2;
		struct uword **m = realloc(s->wmap, len * sizeof *m);
		if (!m) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		memset(m + s->wmap_len, 0, (len - s->wmap_len) * sizeof *m);
		s->wmap = m;
		s->wmap_len = len;
	}
	struct uword *w = s->wmap[idx];
	if (w && w->it == it)
		w->expected = it->expected;
	if (w && w->it == it && (w->state == UW_DONE || w->state == UW_REARM ||
				    w->state == UW_INLINE)) {
		/* its completion (or deferred re-check) is about to be
		 * processed against the new expected value, and re-queued if
		 * check() keeps watching; the inline sleeper compares the
		 * word with the new value when it wakes, so wake it */
		if (w->state == UW_INLINE)
			evq__ur_ring_bell(s);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	struct uword *nw = NULL;
	if (!w || w->it != it || w->state == UW_RING) {
		/* first: if this fails, a record in flight keeps watching */
		nw = calloc(1, sizeof *nw);
		if (!nw) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
	}
	if (w && (w->it != it || w->state == UW_RING)) {
		/* another tenant's, or waiting for an older expected value */
		word_detach(s, w);
		w = s->wmap[idx] = NULL;
	}
	if (!w) {
		w = nw;
		w->it = it;
		w->addr = it->addr;
		w->shared = it->shared;
		w->expected = it->expected;
		w->next_all = s->words;
		s->words = w;
		s->wmap[idx] = w;
	}
	evq__ur_make_loose(s, w);
	s->inline_fail = 0; /* a new vector: futex_waitv may take it */
	if (ring_sleepers(s) > 0) {
		/* now, for a waiter asleep in the ring (it would not submit
		 * it); else the next sleeper takes it */
		evq__ur_queue_loose(s);
		unsigned n = evq__sq_pending(&s->r);
		if (n && evq__ur_enter(s, n, 0, 0, NULL, 0) < 0)
			s->submit_errors++;
	} else if (s->inl) {
		evq__ur_ring_bell(s); /* the inline sleeper adds it to its vector */
	}
	evq__ur_pass_lead(s); /* LF6: followers only, nobody watches the ring */
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void evq__ur_word_disarm(struct evq *q, struct evq__reg *r)
{
	struct uring_state *s = st(q);
	pthread_mutex_lock(&s->lock);
	/* r->ext may be gone already (a del hook clears it first): the
	 * record is found by the registration's slot */
	if (evq__idx(r) < s->wmap_len && s->wmap[evq__idx(r)]) {
		struct uword *w = s->wmap[evq__idx(r)];
		s->wmap[evq__idx(r)] = NULL;
		word_detach(s, w); /* O3 */
	}
	pthread_mutex_unlock(&s->lock);
}
#endif /* EVQ_URING_NATIVE_WORDS */

/* Deferred re-checks (UW_REARM): check() each again, then watch it or
 * stop.  Both locks. */
static void recheck_deferred(struct uring_state *s)
{
	struct uword *list = s->rearm, *w;
	s->rearm = NULL;
	while ((w = pop(&list))) {
		if (!w->it || !w->it->active) {
			evq__ur_word_free_if_done(s, w);
			continue;
		}
		if (w->it->check(w->it, 0) && w->it->active) {
			w->expected = w->it->expected;
			evq__ur_make_loose(s, w);
		} else {
			w->it->active = 0;
		}
	}
}

/* Collected completions (UW_DONE): check() each, then watch it again,
 * defer its re-queue (see evq__ur_process_words) or stop.  Both locks. */
static void check_done(struct uring_state *s)
{
	struct uword *list = s->done, *w;
	s->done = NULL;
	while ((w = pop(&list))) {
		if (!w->it || !w->it->active) {
			if (w->it && w->res == 0)
				evq__futex_wake(w->addr, 1, w->shared); /* X2 */
			evq__ur_word_free_if_done(s, w);
			continue;
		}
		if (w->res < 0 && w->res != -EAGAIN && w->res != -ECANCELED &&
		    w->res != -EINTR) {
			/* -EFAULT, -EINVAL: report (EVQ_ERR), stop, never spin */
			w->it->check(w->it, EVQ_WATCH_FAULT);
			w->it->active = 0;
			s->inline_fail = 0; /* the vector lost the bad word */
			continue;
		}
		unsigned kicks = evq__ur_kicked;
		int keep = w->res == -ECANCELED || w->it->check(w->it, w->res == 0);
		w->expected = w->it->expected;
		if (!keep || !w->it->active) {
			w->it->active = 0;
		} else if (evq__ur_kicked != kicks && atomic_load(&s->sleepers) == 0) {
			w->state = UW_REARM; /* posted: deferred */
			w->next = s->rearm;
			s->rearm = w;
		} else {
			evq__ur_make_loose(s, w); /* for the next sleeper (evq__ur_leave()) */
		}
	}
}

/* Runs check() for collected completions, and for words whose re-queue
 * was deferred.  Called with s->lock held and q->lock not held; returns
 * with s->lock held.  *woken = 1 if a check() posted and so kicked this
 * very waiter (the kick is absorbed, see evq__ur_wake).
 *
 * Deferral: when a check() posted an event and nobody sleeps in the ring,
 * the word's next FUTEX_WAIT is not queued now but by the next wait(),
 * after one more check().  The caller typically reacts to the event
 * first - evq_latch_reset() changes the word - and a FUTEX_WAIT queued
 * before that would complete at once with -EAGAIN, costing a whole extra
 * round through the ring per event.  Nothing is missed meanwhile: nobody
 * waits, the re-check sees any change, and a thread entering the ring
 * first runs this (evq__ur_wait re-checks s->rearm after sleepers++). */
void evq__ur_process_words(struct evq *q, struct uring_state *s, int *woken)
{
	if (!s->done && !s->rearm)
		return;
	if (pthread_mutex_trylock(&q->lock) != 0) {
		/* the lock order is q->lock, then s->lock */
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_lock(&q->lock);
		pthread_mutex_lock(&s->lock);
	}
	evq__ur_checking = s;
	recheck_deferred(s);
	check_done(s);
	evq__ur_checking = NULL;
	if (evq__ur_kicked) {
		evq__ur_kicked = 0;
		*woken = 1;
	}
	pthread_mutex_unlock(&q->lock);
}

/* A poll (timeout 0) sleeps nowhere, so nobody watches the loose words
 * (armed, in neither the ring nor an inline vector): read them.  A word
 * that no longer holds its expected value goes to check() as if its wait
 * had failed with -EAGAIN; the others stay loose.  Without this a caller
 * that only polls, or a queue kept busy by other sources (the core polls
 * then), would never see them (core/wait.c, fairness).  Locked. */
void evq__ur_poll_loose(struct uring_state *s)
{
	struct uword *list = evq__ur_take_loose(s), *w;
	while ((w = evq__ur_pop_loose(s, &list))) {
		if (evq__ld(w->addr) != w->expected)
			evq__ur_collect_word(s, w, -EAGAIN);
		else
			evq__ur_make_loose(s, w);
	}
}
