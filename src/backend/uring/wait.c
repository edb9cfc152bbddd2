/* SPDX-License-Identifier: MIT */
/*
 * wait.c - the io_uring backend's wait() and wake() (uring.h): leader and
 * followers and the bell (model/leader.pml, steps LF1..LF6 below), and the
 * rounds of one wait(), each ending in one sleep - as a follower, inline
 * (inline.c, model/inline.pml, steps IN1..IN3) or in the ring.
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

/*
 * Leader and followers (issue 5: one wakeup per event).  Every completion
 * posted to the ring wakes every thread asleep in its io_uring_enter (the
 * CQ wait queue is woken whole), so several threads sleeping in the ring
 * made a herd of them per event.  Now a thread sleeps in the ring only if
 * nobody else does (the leader; s->sleepers == 1) or if it passes a
 * sigmask (the ring applies that atomically; such callers keep the old
 * shared-ring behaviour among themselves).  The others are followers: they
 * sleep on the futex word s->fword (FUTEX_WAIT_BITSET with an absolute
 * deadline: -EINTR after a signal handler ran, transparently restarted by
 * io_uring task work), and a follower whose sleep ends re-runs wait() from
 * the top: it takes the ring if it is free, else it follows again.
 *
 * The ring is left empty (no handover, so one event costs one wakeup)
 * when only a wake() could end a sleep; otherwise a leaving thread hands
 * the ring to one follower.  The rules:
 *   LF1 follow only if sleepers > 0, nfollow++ - both under s->lock,
 *      after evq__ur_leave() (a NOP for a ring sleeper whose completion
 *      we reaped);
 *   LF2 a wake() is consumed by whichever wait() clears wpend
 *      (take_wake, under s->lock);
 *   LF3 every thread leaving wait(): sleepers-- (if it was in the ring),
 *      then evq__ur_pass_lead(): if sleepers == 0 and nfollow > 0 and
 *      (wpend, or fds registered (nfds), or word records, leftovers, an
 *      error): FUTEX_WAKE one follower;
 *   LF4 wake(): wpend = 1, ring the bell (FUTEX_WAKE of the ring's bell
 *      request if sleepers > 0), then if sleepers == 0 and nfollow > 0:
 *      FUTEX_WAKE one follower;
 *   LF5 a ring sleeper: sleepers++, read the bell, then look at wpend
 *      (set: back to the top, where LF2 consumes it) and nfds, then arm
 *      the bell's FUTEX_WAIT for the value read (evq__ur_arm_bell);
 *   LF6 fd_ctl ADD/MOD: nfds++ (ADD), then as LF4's last step; word_arm:
 *      evq__ur_pass_lead().
 * wpend/sleepers and nfds/sleepers are seq_cst pairs (Dekker): either the
 * leaving leader sees the wake (or the fd) and hands over, or wake()
 * (fd_ctl) sees the ring empty and wakes a follower itself; a follower
 * registers under the lock the leader leaves under, so the leader counts
 * it.  The wake itself is wpend, consumed by exactly one wait() (LF2; the
 * core sends one wake() at a time: wake_sent).
 * While fds or words are registered every leaving thread hands over (two
 * wakeups per event with followers, not one per thread), because their
 * events reach nobody but a ring sleeper.  Timeouts: a follower sleeps to
 * its own deadline; the ring's leader to its own.
 * model/leader.pml checks these rules (steps named as here) with the
 * inline sleep and fds: while a thread waits, no wake() and no fd event is
 * left pending (teeth NOPASSLEAD, LATEBELL, NOKFOLLOW, NOKBELL, NOINLFDS).
 */

/* A follower's sleep on fword, a cancellation point. */
static int follow_futex(uint32_t *fword, uint32_t seq, const struct timespec *dl)
{
	int old = evq__cancel_async();
	int rc = evq__futex_wait(fword, seq, dl, 0);
	evq__cancel_deferred(old);
	return rc;
}

/* LF2: a wake() is consumed by exactly one wait(): whoever clears wpend. */
static void take_wake(struct uring_state *s, int *woken)
{
	if (atomic_load(&s->wpend) && atomic_exchange(&s->wpend, 0))
		*woken = 1;
}

int evq__ur_leftovers(struct uring_state *s)
{
	return s->filled > 0;
}

/* Ends the sleep of one follower, if any: it takes the ring unless
 * someone did meanwhile (then it sleeps again).  Async-signal-safe. */
void evq__ur_wake_follower(struct uring_state *s)
{
	evq__add(&s->fword, 1);
	evq__futex_wake(&s->fword, 1, 0);
}

/* The bell: cross-thread wakes without an eventfd.  A thread sleeping in
 * the ring keeps a FUTEX_WAIT on s->bell in flight (evq__ur_arm_bell), an inline
 * sleeper has it in its futex_waitv vector; wake() and fd_ctl() ring it
 * (bell++, then FUTEX_WAKE if anyone sleeps),
 * which completes that request and so ends the ring's sleep: one futex
 * wake, no file, and no epoll round trip between the waker and the
 * waiter.  The request compares the bell when the kernel queues it, so a
 * ring between reading the bell and queueing is never lost.  It may
 * outlive the wait() that armed it, like a word's FUTEX_WAIT.
 * Async-signal-safe. */
void evq__ur_ring_bell(struct uring_state *s)
{
	evq__add(&s->bell, 1);
	/* two: the ring's request and an inline sleeper may both wait */
	if (atomic_load(&s->sleepers) > 0)
		evq__futex_wake(&s->bell, 2, 0);
}

/* Queues the bell's FUTEX_WAIT, for as long as the bell still reads
 * `seen`, unless one is in flight.  A sleeper reads `seen` after its
 * sleepers++ and before it looks for a pending wake() or fds (LF5 in
 * evq__ur_wait): a ring it did not see then changed the bell after `seen`
 * was read, and either completes the request (the kernel's comparison)
 * or finds sleepers > 0 and wakes it.  Locked. */
void evq__ur_arm_bell(struct uring_state *s, uint32_t seen)
{
	if (s->bell_armed)
		return;
	struct io_uring_sqe *e = evq__ur_sqe_get_flush(s);
	if (!e)
		return; /* the SQ stayed full: evq__ur_wait bounds its sleep */
	e->opcode = IORING_OP_FUTEX_WAIT;
	e->addr = (uint64_t)(uintptr_t)&s->bell;
	e->addr2 = seen;
	e->addr3 = FUTEX_BITSET_MATCH_ANY;
	e->fd = (int)evq__waitv_flags(0);
	e->user_data = UD_BELL;
	evq__sqe_push(&s->r);
	s->bell_armed = 1;
}

/* Called by every thread leaving wait(), under s->lock, after its
 * sleepers-- (LF3 above): with nobody in the ring and followers asleep, one
 * follower must take the ring if a wake()'s edge is pending or anything
 * but wake() could end a sleep (fds, words, leftovers, an error). */
void evq__ur_pass_lead(struct uring_state *s)
{
	if (atomic_load(&s->sleepers) > 0 || atomic_load(&s->nfollow) == 0)
		return;
	if (atomic_load(&s->wpend) || atomic_load(&s->nfds) > 0 || s->words ||
	    s->done || s->err || evq__ur_leftovers(s))
		evq__ur_wake_follower(s);
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* timeout 0: one epoll_pwait2 on the set, as the epoll backend does (an
 * EPOLL_WAIT request would stay armed after finding nothing); none at all
 * when no fd is registered and no signal mask is to be applied.  The
 * system call itself, not glibc's epoll_pwait2: that one is a cancellation
 * point, and a cancel acting as it returns (glibc checks after the call
 * too) lost the events it had just taken - no handler here parks them, and
 * an edge-triggered fd does not report them again (tests/cancel race:
 * "edges lost 1").  A poll is not a sleep: evq_wait(3) is a cancellation
 * point at its entry and in its sleeps. */
static int poll_now(struct uring_state *s, const sigset_t *sigmask,
		    struct evq__ready *out, int max)
{
	struct epoll_event evs[EVQ_BATCH_MAX];
	struct timespec zero = { 0, 0 };
	if (!sigmask && atomic_load(&s->nfds) == 0)
		return 0;
	if (max > EVQ_BATCH_MAX)
		max = EVQ_BATCH_MAX;
	/* without a mask, plain epoll_pwait with 0 ms is the same poll, and
	 * exists where epoll_pwait2 does not (valgrind 3.19, for one) */
	int n = sigmask ? (int)syscall(SYS_epoll_pwait2, s->epfd, evs, max, &zero,
				       sigmask, (size_t)(_NSIG / 8))
			: (int)syscall(SYS_epoll_pwait, s->epfd, evs, max, 0, NULL, 0);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) /* n <= max: no slot bookkeeping */
		evq__epoll_out(&out[i], &evs[i]);
	return n;
}

/* A thread cancelled in one of wait()'s sleeps (evq_wait(3)
 * CANCELLATION): the handler undoes what that sleep registered, treats
 * the sleep as woken (it may have consumed a wake: passing one on costs a
 * spurious wakeup at most), and leaves as any wait() does, handing the
 * ring or its completions to the others.  Runs without s->lock. */

void evq__ur_cancelled(void *arg)
{
	evq__asan_unstale(); /* first: stale redzones below (core/wait.c) */
	struct ur_sleep *c = arg;
	struct uring_state *s = c->s;
	pthread_mutex_lock(&s->lock);
	if (c->where == SLEPT_FOLLOWER) {
		s->nfollow--;
	} else if (c->where == SLEPT_INLINE) {
		evq__ur_inline_end(s, c->vec, c->vw, c->n, 0);
	} else {
		atomic_fetch_sub(&s->sleepers, 1);
		evq__ur_reap(s);
	}
	evq__ur_leave(s);
	evq__ur_pass_lead(s); /* LF3 */
	pthread_mutex_unlock(&s->lock);
}

/* The ring's sleep (it also submits), a cancellation point. */
static int ring_enter(struct uring_state *s, unsigned to_submit,
		      const struct io_uring_getevents_arg *arg)
{
	int old = evq__cancel_async();
	int rc = evq__ur_enter(s, to_submit, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
		       arg, sizeof *arg);
	evq__cancel_deferred(old);
	return rc;
}

static int follow_sleep(struct uring_state *s, uint32_t seq, const struct timespec *dl)
{
	struct ur_sleep c = { s, SLEPT_FOLLOWER, 0, NULL, NULL, 0 };
	pthread_cleanup_push(evq__ur_cancelled, &c);
	c.rc = follow_futex(&s->fword, seq, dl);
	pthread_cleanup_pop(0);
	return c.rc;
}

static int ring_sleep(struct uring_state *s, unsigned to_submit,
		      const struct io_uring_getevents_arg *arg)
{
	struct ur_sleep c = { s, SLEPT_RING, 0, NULL, NULL, 0 };
	pthread_cleanup_push(evq__ur_cancelled, &c);
	c.rc = ring_enter(s, to_submit, arg);
	pthread_cleanup_pop(0);
	return c.rc;
}

/* One wait() call: what its rounds share.  A round is the top of the
 * loop (harvest, maybe return) and at most one sleep: as a follower (LF1),
 * inline (inline.c) or in the ring (LF5). */
struct ur_call {
	struct evq *q;
	struct uring_state *s;
	const sigset_t *sigmask;
	struct evq__ready *out;
	int max;
	int *woken;             /* round->woken */
	int64_t timeout_ns;     /* the caller's; 0 once the time is up */
	int64_t end;            /* its deadline (timeout_ns > 0) */
	int64_t t;              /* what is left of it for the next sleep */
	int frc;                /* the last follower sleep's result; 1: none */
	int cancelled;          /* ring words were cancelled for an inline
				 * sleep */
	int slept;              /* slept as a follower (the ring and inline
				 * sleeps end the call themselves) */
	int k;                  /* the result */
	int poll;               /* nothing came: poll the fds on the way out */
	int polled;             /* poll_first() looked already */
};

/* Reaps and hands out: completions, words (check()), a wake (LF2), events.
 * A poll (timeout 0) first submits re-armed words (evq__ur_process_words)
 * and reads the loose ones.  Returns the events taken, *got the
 * completions reaped.  Locked. */
static int harvest(struct ur_call *c, int *got)
{
	struct uring_state *s = c->s;
	unsigned n = evq__sq_pending(&s->r);
	if (c->timeout_ns == 0 && n && evq__ur_enter(s, n, 0, 0, NULL, 0) < 0)
		s->submit_errors++;
	*got = evq__ur_reap(s);
	if (c->timeout_ns == 0)
		evq__ur_poll_loose(s);
	evq__ur_process_words(c->q, s, c->woken);
	take_wake(s, c->woken);
	return s->filled ? evq__ur_take(s, c->out, c->max) : 0;
}

/* A failed EPOLL_WAIT is reported once, by a call that returns nothing
 * else.  Locked. */
static int take_err(struct uring_state *s, int k, int woken)
{
	if (k == 0 && !woken && s->err) {
		k = s->err;
		s->err = 0;
	}
	return k;
}

/* The top of the loop: 1 if the call is over (c->k, c->poll set). */
static int top(struct ur_call *c)
{
	int got;
	int k = harvest(c, &got);
	if (k > 0 || *c->woken || c->s->err || c->timeout_ns == 0) {
		c->k = take_err(c->s, k, *c->woken);
		/* A wake pending before this call slept says nothing about
		 * the fds: look at them too, or a stream of wakes that
		 * deliver nothing (say, triggers of a disabled user event)
		 * keeps every ready fd from being reported. */
		c->poll = c->k == 0 && (c->timeout_ns == 0 || (*c->woken && !c->slept));
		return 1;
	}
	if (c->frc == -EINTR) {
		c->k = -EINTR;
		return 1;
	}
	return 0;
}

/* LF1: follow.  leave() first: this thread may have reaped the completion
 * the ring's sleeper waits for (its submission and its wait are one
 * enter, not atomic with our reaping), and then that sleeper needs a NOP,
 * as in the old multi-sleeper design.  Locked, as on return. */
static void follow(struct ur_call *c)
{
	struct uring_state *s = c->s;
	evq__ur_leave(s);
	uint32_t seq = evq__ld(&s->fword);
	s->nfollow++;
	pthread_mutex_unlock(&s->lock);
	struct timespec dl = evq__deadline(c->timeout_ns > 0 ? c->t : UR_FOREVER_NS);
	c->frc = follow_sleep(s, seq, &dl);
	c->slept = 1;
	pthread_mutex_lock(&s->lock);
	s->nfollow--;
}

/* The inline sleep's round: 1 if the call is over.  Locked. */
static int inline_round(struct ur_call *c)
{
	struct uring_state *s = c->s;
	int irc, got;
	if (s->nring > 0) {
		/* once per wait: if their completions are not in by the
		 * next round, this wait sleeps in the ring */
		evq__ur_cancel_ring_words(s);
		c->cancelled = 1;
		return 0;
	}
	if (evq__ur_sleep_inline(s, c->t, &irc))
		return 0; /* IN1: a wake() or a re-check is pending */
	int k = harvest(c, &got);
	if (k > 0 || *c->woken || irc == -EINTR || irc == -ETIMEDOUT) {
		c->k = k > 0 || *c->woken ? k : irc == -EINTR ? -EINTR : 0;
		return 1;
	}
	return 0; /* a word changed without an event, or a ring */
}

/* What ring_prepare() left for the ring's sleep and its aftermath. */
struct ur_ring {
	int64_t t;              /* the sleep's timeout (< 0: none) */
	int epolling;           /* armed an EPOLL_WAIT + LINK_TIMEOUT */
	unsigned to_submit;     /* SQEs the enter submits */
	unsigned reaped;        /* s->reaped before the sleep */
};

/* LF5: enter the ring, unless a wake() or a deferred re-check came in
 * meanwhile (then 0: back to the top).  Arms the bell, the loose words
 * and an EPOLL_WAIT; returns 1 with s->lock dropped.  Locked. */
static int ring_prepare(struct ur_call *c, struct ur_ring *rr)
{
	struct uring_state *s = c->s;
	s->sleepers++;
	uint32_t seen = evq__ld(&s->bell); /* LF5: before wpend and nfds */
	if (atomic_load(&s->wpend) || s->rearm) {
		/* a wake() came in (LF4: it saw no ring sleeper), or another
		 * thread deferred a word's re-queue: the top of the loop */
		s->sleepers--;
		return 0;
	}
	evq__ur_arm_bell(s, seen);
	evq__ur_queue_loose(s);
	rr->t = c->t;
	if ((!s->bell_armed || s->loose) && (rr->t < 0 || rr->t > UR_SHORT_NS))
		rr->t = UR_SHORT_NS; /* no SQE for the bell or a word (the
				      * kernel kept refusing submissions): a
				      * wake() or the word could not end this
				      * sleep, so it is short and the core asks
				      * again */
	rr->epolling = 0;
	if (atomic_load(&s->nfds) > 0 &&
	    s->inflight - s->cancelling < ring_sleepers(s)) {
		if (evq__ur_arm_one(s, c->max, rr->t))
			rr->epolling = rr->t >= 0 && s->r.sq_entries >= 2;
		else if (rr->t < 0 || rr->t > UR_SHORT_NS)
			rr->t = UR_SHORT_NS; /* no EPOLL_WAIT (its buffer could
					      * not be mapped, or the SQ stayed
					      * full): as above, for the fds */
	}
	rr->to_submit = evq__sq_pending(&s->r);
	rr->reaped = s->reaped;
	pthread_mutex_unlock(&s->lock);
	return 1;
}

/* The ring's sleep: returns the enter's result, *start when it began
 * (timed sleeps only).  The LINK_TIMEOUT ends the sleep on time; the
 * enter's own timeout, a little later, only guards against another thread
 * having reaped that completion.  Unlocked. */
static int ring_wait(struct ur_call *c, const struct ur_ring *rr, int64_t *start)
{
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg = { 0 };
	if (c->sigmask) {
		arg.sigmask = (uint64_t)(uintptr_t)c->sigmask;
		arg.sigmask_sz = _NSIG / 8;
	}
	if (rr->t > 0) {
		/* with no LINK_TIMEOUT, the enter's own timeout is the one */
		int64_t guard = !rr->epolling || rr->t > INT64_MAX - UR_GUARD_NS
				? rr->t : rr->t + UR_GUARD_NS;
		ts.tv_sec = guard / 1000000000;
		ts.tv_nsec = guard % 1000000000;
		arg.ts = (uint64_t)(uintptr_t)&ts;
		*start = mono_ns();
	}
	return ring_sleep(c->s, rr->to_submit, &arg);
}

/* The ring's round (LF5): always ends the call.  Locked, as on return. */
static int ring_round(struct ur_call *c)
{
	struct uring_state *s = c->s;
	struct ur_ring rr;
	int64_t start = 0;
	if (!ring_prepare(c, &rr))
		return 0;
	int rc = ring_wait(c, &rr, &start);
	pthread_mutex_lock(&s->lock);
	s->sleepers--;
	if (rc == -EBUSY || rc == -EAGAIN)
		s->submit_errors++;
	int got;
	int k = take_err(s, harvest(c, &got), *c->woken);
	if (k == 0 && !*c->woken && got == 0 && s->reaped == rr.reaped) {
		if (rc == -EINTR)
			k = -EINTR;
		else if (rc > 0 && (unsigned)rc == rr.to_submit &&
			 (rr.t < 0 || mono_ns() - start < rr.t))
			/* the enter both submitted and waited, which hides the
			 * wait's -EINTR: time left and nothing came, so it was
			 * a signal */
			k = -EINTR;
	}
	/* -ETIME: timeout; -EBUSY/-EAGAIN: the SQEs stay queued and go with
	 * the next enter; both look like an empty round to the core */
	c->k = k;
	return 1;
}

/* Before a sleep, on a busy queue (the last call handed out fd events):
 * the fds are likely ready again, and one epoll_pwait2 of the set costs
 * less than the ring's round for them (an EPOLL_WAIT submitted and
 * completed through io_uring_enter, the enter's switch to asynchronous
 * cancellation and back, a second pass over s->lock).  Runs after top(),
 * which reaped completions, words and a wake, so kernel sources other than
 * fds are looked at first (F2, B9); once per call, and a miss makes the
 * queue cold: the next calls sleep at once, so a quiet queue pays no
 * extra system call.  Not a sleep: it takes nobody's place in the ring
 * (LF1..LF6 are untouched) and is no cancellation point.  1 if the call
 * is over (events in c->k).  Locked; the poll runs under s->lock, as
 * harvest() submits under it. */
static int poll_first(struct ur_call *c)
{
	struct uring_state *s = c->s;
	if (!s->hot || c->polled || c->sigmask || atomic_load(&s->nfds) == 0)
		return 0;
	c->polled = 1;
	int k = poll_now(s, NULL, c->out, c->max);
	if (k <= 0) {
		s->hot = 0; /* an error is the ring's to report */
		return 0;
	}
	c->k = k;
	return 1;
}

/* One round: 1 if the call is over.  Locked, as on return. */
static int round_once(struct ur_call *c)
{
	struct uring_state *s = c->s;
	if (top(c))
		return 1;
	if (c->timeout_ns > 0 && (c->t = c->end - mono_ns()) <= 0) {
		/* the time is up before any sleep (a short timeout, or a
		 * follower's sleep ran out): end with a poll, as epoll_wait
		 * would, so that nothing ready is left out */
		c->timeout_ns = 0;
		return 0;
	}
	if (poll_first(c))
		return 1;
	if (!c->sigmask && atomic_load(&s->sleepers) > 0) {
		follow(c);
		return 0;
	}
	if (!c->sigmask && evq__ur_inline_fits(s) && (s->nring == 0 || !c->cancelled))
		return inline_round(c);
	return ring_round(c);
}

int evq__ur_wait(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		 struct evq__ready *out, int max, struct evq__round *round)
{
	struct ur_call c = {
		.q = q, .s = st(q), .sigmask = sigmask, .out = out, .max = max,
		.woken = &round->woken, .timeout_ns = timeout_ns,
		.t = timeout_ns, .frc = 1,
	};
	if (timeout_ns > 0) {
		c.end = mono_ns();
		c.end = timeout_ns > INT64_MAX - c.end ? INT64_MAX : c.end + timeout_ns;
	}
	*c.woken = 0;
	pthread_mutex_lock(&c.s->lock);
	while (!round_once(&c))
		;
	c.s->hot = c.k > 0;
	evq__ur_leave(c.s);
	evq__ur_pass_lead(c.s); /* LF3 */
	pthread_mutex_unlock(&c.s->lock);
	if (c.poll)
		c.k = poll_now(c.s, sigmask, out, max);
	return c.k;
}

void evq__ur_wake(struct evq *q)
{
	struct uring_state *s = st(q);
	if (evq__ur_checking == s) {
		/* a check() of this waiter posted: it collects the post itself
		 * and reports the wake consumed (*woken) */
		evq__ur_kicked++;
		return;
	}
	int saved = errno;
	atomic_store(&s->wpend, 1); /* LF4 */
	evq__ur_ring_bell(s);
	if (atomic_load(&s->sleepers) == 0 && atomic_load(&s->nfollow) > 0)
		evq__ur_wake_follower(s);
	errno = saved;
}
