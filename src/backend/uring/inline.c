/* SPDX-License-Identifier: MIT */
/*
 * inline.c - the inline sleep: futex_waitv over the bell and the armed
 * words instead of the ring (uring.h; model/inline.pml, steps IN1..IN3
 * below; the leader/follower steps LF1..LF6 are wait.c's and
 * model/leader.pml's).
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

/*
 * Inline sleep.  io_uring's own FUTEX_WAIT costs about 1.3x a futex system
 * call per round trip (submission, task work, completion) before evq does
 * anything, so a queue watching memory through the ring cannot come close
 * to a raw futex.  When nothing needs the ring - no fd registered (no
 * EPOLL_WAIT), no sigmask to swap in, no other thread asleep - the leader
 * sleeps in the kernel's futex call itself: futex_waitv(2) over the bell
 * and every armed word (at most 127), each with the value it is expected
 * to hold, or FUTEX_WAIT on the bell alone when no word is armed.  That is
 * the watcher thread's protocol (model/word.pml) run by the waiter, with
 * the bell as its control word:
 *   IN1 sleepers++, inl = 1; read the bell (LF5); if a wake() is pending, a
 *      word waits for its deferred re-check or an fd was added (LF6 rings
 *      the bell after nfds++): back out;
 *   IN2 take the loose words (armed, watched by nobody) into the vector,
 *      each in state UW_INLINE, with its expected value as of its last arm or
 *      check(); drop s->lock; sleep;
 *   IN3 retake s->lock; inl = 0, sleepers--, inl_gen++; a word woken or no
 *      longer holding its value goes to check() (as a completion, on
 *      s->done); the others are loose again; after any wake, a word
 *      detached meanwhile gets one wake passed on (X2: futex_waitv names
 *      only the last entry woken, and the others may have taken a wake
 *      too); signal inl_cv.
 * Nothing is missed: the kernel compares every word and the bell as it
 * queues the sleep, so a change after IN2 read them ends the sleep at once.
 * Whoever changes what the sleeper watches rings the bell: wake() (LF4),
 * the first fd add (it needs the ring), word_arm() (a new word or a new
 * expected value), evq__ur_leave() (words made loose by another thread,
 * or words left in flight in the ring by a sigmask sleeper).  word_disarm() of a
 * word in the vector rings it and waits on inl_cv for IN3, so that when it
 * returns the kernel no longer sleeps on the word (O3) and a wake taken
 * for it has been passed on.  Words in flight in the ring are cancelled
 * (IORING_REGISTER_SYNC_CANCEL) before a sleep goes inline: a word is
 * watched by the ring or by the inline sleeper, never by both.
 *
 * The cost: the waiter runs the futex calls a hand-written program would
 * (one futex_waitv to sleep, the setter's FUTEX_WAKE to wake it), and -
 * the one difference in behaviour - the kernel restarts a futex_waitv
 * interrupted by a signal handler installed with SA_RESTART instead of
 * failing it with EINTR, so such a handler does not end evq_wait with
 * -EINTR while a queue that watches words and no fd sleeps inline.  A
 * wait with only the bell uses FUTEX_WAIT with a deadline, which returns
 * -EINTR after any handler, as epoll_wait and io_uring_enter do; a caller
 * that passes a sigmask sleeps in the ring and gets -EINTR too.
 * EVQ_URING_INLINE=0 in the environment turns the inline sleep off (in
 * the test build: config.c).
 */

/* 1 if the next sleep may be inline (the ring's words aside).  Locked. */
int evq__ur_inline_fits(struct uring_state *s)
{
	return s->inline_ok && !s->inline_fail && atomic_load(&s->nfds) == 0 &&
	       atomic_load(&s->sleepers) == 0 && s->nloose < FUTEX_WAITV_MAX;
}

/* Cancels every word's FUTEX_WAIT in the ring; their completions
 * (-ECANCELED) make them loose again.  Locked. */
void evq__ur_cancel_ring_words(struct uring_state *s)
{
	for (struct uword *w = s->words; w; w = w->next_all) {
		if (w->state == UW_RING)
			evq__ur_cancel_word(s, w);
	}
}

/* The futex call of the inline sleep, a cancellation point. */
static int inline_futex(uint32_t *bell, uint32_t seen, struct futex_waitv *vec,
			unsigned n, int64_t t)
{
	struct timespec dl;
	int rc, old = evq__cancel_async();
	if (n == 1) {
		/* FUTEX_WAIT with a deadline: -EINTR after any handler */
		dl = evq__deadline(t >= 0 ? t : UR_FOREVER_NS);
		rc = evq__futex_wait(bell, seen, &dl, 0);
	} else {
		if (t >= 0)
			dl = evq__deadline(t);
		rc = evq__futex_waitv(vec, n, t >= 0 ? &dl : NULL);
	}
	evq__cancel_deferred(old);
	return rc;
}

/* One entry of a futex_waitv vector: sleep while *addr == val. */
static void set_waitv(struct futex_waitv *v, uint32_t *addr, uint32_t val,
		      int shared)
{
	memset(v, 0, sizeof *v);
	v->val = val;
	v->uaddr = (uint64_t)(uintptr_t)addr;
	v->flags = evq__waitv_flags(shared);
}

/* IN1-IN3.  Returns 1 if it backed out at IN1 (nothing slept), else 0 with
 * *rc the futex call's result.  Locked, as on return. */
int evq__ur_sleep_inline(struct uring_state *s, int64_t t, int *rc)
{
	struct futex_waitv vec[FUTEX_WAITV_MAX];
	struct uword *vw[FUTEX_WAITV_MAX];
	atomic_fetch_add(&s->sleepers, 1);
	s->inl = 1;
	uint32_t seen = evq__ld(&s->bell); /* LF5 */
	/* nfds again after LF5: an fd added since evq__ur_inline_fits() rang the bell
	 * before we read it (LF6), so the futex would sleep through it */
	if (atomic_load(&s->wpend) || s->rearm || atomic_load(&s->nfds) > 0) {
		s->inl = 0;
		atomic_fetch_sub(&s->sleepers, 1);
		return 1;
	}
	set_waitv(&vec[0], &s->bell, seen, 0);
	unsigned n = 1;
	struct uword *list = evq__ur_take_loose(s), *w;
	while ((w = evq__ur_pop_loose(s, &list))) {
		if (n == FUTEX_WAITV_MAX) {
			/* not reached: evq__ur_inline_fits() */
			evq__ur_make_loose(s, w);
			continue;
		}
		set_waitv(&vec[n], w->addr, w->expected, w->shared);
		vw[n++] = w;
		w->state = UW_INLINE; /* IN2 */
	}
	pthread_mutex_unlock(&s->lock);

	struct ur_sleep c = { s, SLEPT_INLINE, 0, vec, vw, n };
	pthread_cleanup_push(evq__ur_cancelled, &c);
	c.rc = inline_futex(&s->bell, seen, vec, n, t);
	pthread_cleanup_pop(0);
	*rc = c.rc;

	pthread_mutex_lock(&s->lock);
	evq__ur_inline_end(s, vec, vw, n, *rc);
	return 0;
}

/* IN3: the inline sleep ended with rc.  Locked. */
void evq__ur_inline_end(struct uring_state *s, const struct futex_waitv *vec,
			struct uword *const *vw, unsigned n, int rc)
{
	s->inl = 0;
	atomic_fetch_sub(&s->sleepers, 1);
	s->inl_gen++;
	/* e.g. -EFAULT: a word's memory is gone; load none of them */
	int failed = rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT && rc != -EINTR;
	for (unsigned i = 1; i < n; i++) {
		struct uword *w = vw[i];
		w->state = UW_IDLE;
		if (!w->it) {
			/* X2: pass one wake on if it may have taken one (a
			 * spurious wakeup at worst; the word is valid until
			 * word_disarm returns, which waits for this) */
			if (rc >= 0)
				evq__futex_wake(w->addr, 1, w->shared);
			evq__ur_word_free_if_done(s, w);
			continue;
		}
		if (failed) {
			evq__ur_make_loose(s, w);
			continue;
		}
		/* futex_waitv names only the last entry woken, and an entry
		 * stays queued until this thread runs: after any wake
		 * (rc >= 0), an entry whose word changed may have taken a
		 * FUTEX_WAKE too (model/inline.pml, run TWO) */
		uint32_t v = evq__ld(w->addr);
		int woken = rc == (int)i || (rc >= 0 && v != (uint32_t)vec[i].val);
		if (woken || v != w->expected) {
			/* woken: res 0, so that an idle word passes it on (X2
			 * in evq__ur_process_words) */
			evq__ur_collect_word(s, w, woken ? 0 : -EAGAIN);
		} else {
			evq__ur_make_loose(s, w);
		}
	}
	if (s->inl_waiters)
		pthread_cond_broadcast(&s->inl_cv);
	if (failed)
		s->inline_fail = 1; /* the ring tells which word (evq__ur_process_words) */
}
