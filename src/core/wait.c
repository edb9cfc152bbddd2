/* SPDX-License-Identifier: MIT */
/*
 * wait.c - evq_wait and evq_shutdown: the wait path.
 *
 * Where an event can come from:
 *   1. the kernel, through the backend (fds): harvested in evq_wait() and
 *      handed out in the same call, under q->lock, after checking that the
 *      registration still exists (so evq_del() wins over a harvested event);
 *   2. the pending list (timers, triggers, regular files, words, masks...):
 *      registrations with occurrences folded into pend_data, delivered FIFO;
 *   3. the post stack: lock-free producers (evq_trigger, watchers, mask
 *      notifiers) push a registration at most once (ctl "queued" bit); the
 *      waiter drains it into the pending list under q->lock.
 *
 * Sleep protocol (model/queue.pml, steps named there; teeth NORESET,
 * EARLYCHECK, NOPASSON):
 *   waiter                                 producer
 *   W1 sleepers++            (seq_cst)     P1 push on post_head (seq_cst)
 *   W2 if post_head non-empty: W1 undone,  P2 if sleepers > 0 and
 *      collect again                          exchange(wake_sent, 1) == 0:
 *   W3 backend->wait()                     P3    backend->wake()
 *   W4 sleepers--, wake_sent = 0
 * Either W2 sees P1, or P2 sees W1 and the wake makes W3 return: no post
 * waits for a later, unrelated wakeup.  Anything linked into the pending list
 * by a thread other than the waiter (a timer armed earlier than the sleeper's
 * timeout, an enabled registration with parked data) kicks the same way.
 * Q: a blocking call first tries the quiet path (quiet_wait()): W1 without
 * q->lock, then a lock-free look at shut, the post stacks, the pending and
 * again lists and the timers; all idle, it goes to W3 at once and takes the
 * lock only after W4, once per call.  The lists and timers change under
 * the lock, and whoever links or arms there kicks through a seq_cst fence
 * (evq__kick_linked(), and pass_on() when it leaves events pending): with
 * W1 a Dekker pair, so either Q sees the change or the kick sees the
 * sleeper (model/queue.pml, teeth NOFENCE, LATEW1).
 * H: a waiter leaving with events still pending (more than its max) or
 * posted kicks one sleeper (pass_on()): the model checks that what a waiter
 * leaves behind reaches a sleeper even when its caller never waits again.
 * A poll (backend->wait with timeout 0) sleeps nowhere and skips W1..W4.
 *
 * Shutdown (evq_shutdown(3)): one flag and a relay of ordinary wakes, so
 * it needs nothing of a backend but wake() (backend.h) and ends every sleep
 * shape alike (epoll_pwait2; io_uring's leader, followers and inline
 * futex_waitv sleeps):
 *   S1 evq_shutdown: shut = 1 (seq_cst), then kick (P2/P3): one wake().
 *   S2 a waiter checks shut on entry, after W1 (with W2: it backs out
 *      instead of sleeping) and after every W3; seeing it, it parks what
 *      it took from the kernel (as a cancelled waiter does), and leaves
 *      with -ESHUTDOWN through pass_on(), which kicks while sleepers > 0.
 * S1/W1 are a Dekker pair like P1/W1: a waiter either sees shut before it
 * sleeps or is counted when S1 kicks.  Each wake() is consumed by exactly
 * one wait(), whose thread resets wake_sent (W4) and only then reads shut
 * (so a wake on its way when S1 ran, which S1's kick did not repeat, ends
 * in a thread that sees shut); that thread kicks the next sleeper after
 * its own W4.  So a wake is always on its way while a sleeper that missed
 * the flag remains: N sleepers end after N wakes, one after another
 * (model/shutdown.pml; teeth NORELAY, NOW1CHECK; tests/shutdown.c).
 *
 * Fairness (evq_wait(3), tests/fairness.c): no ready source starves while
 * others keep the queue busy.
 *   F1 A call may hand out pending events without asking the kernel only
 *      if the call before it (by any thread) asked it (kernel_owed == 0).
 *   F2 Otherwise it asks the kernel first - a poll with timeout 0 when
 *      events are pending - and returns what the kernel reported ahead of
 *      the pending list.
 *   F3 The pending list is FIFO: a registration whose event was handed out
 *      goes to the back when it fires again (posts, timers and regular
 *      files alike).
 * So the kernel is asked at least every second call, and a source that
 * becomes ready while one other source is always ready is returned by the
 * first or the second evq_wait() after that, with any max.  Kernel-side
 * sources are also those a backend watches itself (io_uring's words), so a
 * backend's poll looks at everything it watches (backend.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

_Static_assert(sizeof(struct evq_event) == 40, "struct evq_event is 40 bytes");

/* evq_wait's own: no cancellation point is reachable under it (see
 * evq__read() in internal.h), so it need not switch cancellation off. */
static void wait_lock(struct evq *q) { pthread_mutex_lock(&q->lock); }
static void wait_unlock(struct evq *q) { pthread_mutex_unlock(&q->lock); }

/* How often a poll (timeout 0) asks the backend again when a call brought
 * back only a stale wakeup or dropped events (wait_rounds). */
#define EVQ_REPOLL_MAX 4

/* ------------------------------------------------------------------ */
/* Waiting                                                              */
/* ------------------------------------------------------------------ */

static void fill(struct evq *q, struct evq_event *ev, struct evq__reg *r,
		 uint32_t events, uint64_t data)
{
	ev->cookie = r->cookie;
	ev->id = evq__reg_id(q, r);
	ev->kind = (uint16_t)evq__reg_kind(atomic_load_explicit(&r->state,
							      memory_order_relaxed));
	ev->flags = (uint16_t)(r->flags & EVQ_R_PUBLIC);
	ev->events = events;
	ev->ident = evq__reg_ident(r, ev->kind);
	ev->data = data;
	ev->reserved = 0;
}

static inline int deliver_pending(struct evq *q, struct evq_event *out, int max)
{
	int n = 0;
	while (n < max && q->pend_head >= 0) {
		struct evq__reg *r = evq__slot(q, (uint32_t)q->pend_head);
		evq__unlink(q, r);
		const struct evq__kind *k = evq__kind_of(r);
		if (k->claim && !k->claim(q, r))
			continue; /* nothing after all (a semaphore's token
				     went elsewhere) */
		fill(q, &out[n++], r, r->pend_events, r->pend_data);
		r->pend_data = 0;
		if (r->flags & EVQ_ONESHOT)
			r->flags |= EVQ_DISABLED | EVQ_R_SPENT;
		if ((r->flags & EVQ_R_ALWAYS) &&
		    !(r->flags & (EVQ_EDGE | EVQ_ONESHOT)))
			/* level: ready again, but only after the next kernel
			 * round, so always-ready files cannot starve others */
			evq__link(q, r, EVQ_LIST_AGAIN);
		else
			r->pend_events = 0;
		if (k->delivered)
			k->delivered(q, r);
	}
	return n;
}

/* Brings library-side occurrences into the pending list: drains the post
 * stack and fires expired timers.  *next_timer = ns to the nearest timer, -1
 * if none. */
static inline void pull(struct evq *q, int64_t *next_timer)
{
	if (atomic_load_explicit(&q->post_head, memory_order_relaxed) >= 0 ||
	    atomic_load_explicit(&q->round_head, memory_order_relaxed) >= 0)
		evq__drain_posts(q);
	/* evq__timer_run's own first test, here: a queue without timers
	 * saves a call per pull */
	*next_timer = q->ntimers || q->rt_fd >= 0 ? evq__timer_run(q) : -1;
}

/* One event the kernel reported, checked against the registration as it
 * is now: fills *ev and returns 1 if it is to be delivered, 0 if its
 * registration was deleted (or deleted and reused) since, disabled,
 * defunct, or has nothing to say after all.  Locked. */
static inline int take_ready(struct evq *q, const struct evq__ready *rd,
			     struct evq_event *ev)
{
	uint32_t nslots = atomic_load_explicit(&q->nslots, memory_order_relaxed);
	uint32_t idx = (uint32_t)rd->token;
	if (rd->token == EVQ_TOKEN_CLOCK) {
		evq__timer_clock_fired(q);
		return 0;
	}
	if (idx >= nslots)
		return 0;
	struct evq__reg *r = evq__slot(q, idx);
	uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
	if (evq__reg_kind(st) == 0 || evq__reg_gen(st) != rd->token >> 32)
		return 0;
	if (r->flags & (EVQ_DISABLED | EVQ_R_DEFUNCT))
		return 0;
	/* fds ask for r->events; kinds watching a kernel fd of their own
	 * (signalfd, pidfd) ask for EVQ_READ */
	const struct evq__kind *k = evq__kind_of(r);
	uint32_t want = (k->caps & EVQ__KIND_EVENTS) ? r->events : EVQ_READ;
	uint32_t e = rd->events & (want | EVQ_ERR | EVQ_HUP);
	if (!e)
		return 0;
	fill(q, ev, r, e, 0);
	return !(k->ready && !k->ready(q, r, e, ev));
}

static int harvest(struct evq *q, const struct evq__ready *ready, int k,
		   struct evq_event *out)
{
	int n = 0;
	for (int i = 0; i < k; i++) {
		if (!take_ready(q, &ready[i], &out[n]))
			continue;
		struct evq__reg *r = evq__slot(q, (uint32_t)ready[i].token);
		if (r->list == EVQ_LIST_PENDING &&
		    (evq__kind_of(r)->caps & EVQ__KIND_READY_MERGES)) {
			/* a record given back (evq_requeue) is pending: one
			 * record for both, not two in this batch (fds) */
			out[n].events |= r->pend_events;
			r->pend_events = 0;
			evq__unlink(q, r);
		}
		n++;
		if (r->flags & EVQ_ONESHOT) /* the kernel disarmed it */
			r->flags |= EVQ_DISABLED | EVQ_R_SPENT;
	}
	return n;
}

/* What a cancelled waiter had taken from the kernel goes to the pending
 * list, as if given back (evq_requeue).  Returns 1 if it linked any.
 * Locked. */
static int park(struct evq *q, const struct evq__ready *ready, int k)
{
	int linked = 0;
	for (int i = 0; i < k; i++) {
		struct evq_event ev;
		if (take_ready(q, &ready[i], &ev))
			linked |= evq__merge_back(q, evq__slot(q, (uint32_t)ready[i].token), &ev);
	}
	return linked;
}

/* After a waiter took its events: if others sleep and work is left for them
 * (pending beyond this caller's max, or armed timers nobody's timeout
 * covers), end one of their sleeps - one, not all. */
static void pass_on(struct evq *q)
{
	if (q->pend_head >= 0) {
		/* fenced: a waiter in Q reads pend_head without the lock */
		evq__kick_linked(q);
		return;
	}
	if (atomic_load(&q->sleepers) == 0)
		return;
	if (evq__posts_waiting(q) ||
	    (q->ntimers && q->keeper_deadline == INT64_MAX) ||
	    atomic_load(&q->shut)) /* S2: the relay */
		evq__kick(q);
}

/* One round of evq_wait through the backend, for its cancellation handler
 * (evq_wait(3) CANCELLATION). */
struct round {
	struct evq *q;
	struct evq__ready *ready;
	struct evq__round round;
	int sleep;        /* counted in q->sleepers (W1) */
	int64_t keep;     /* the keeper deadline it took, INT64_MAX none */
	int k;            /* what the backend returned */
};

#ifdef EVQ__ASAN
/* AddressSanitizer and cancellation.  glibc runs cleanup handlers by
 * unwinding (libgcc's _Unwind_ForcedUnwind) and jumping with its internal
 * longjmp, which ASan does not intercept, into the frame that pushed each
 * handler.  The frames between that one and the cancellation point are
 * abandoned without their epilogues, so the shadow of their redzones stays
 * poisoned although that memory is now free stack below the handler.
 * Which frames those are depends on the compiler's inlining: at -O0 on
 * epoll, ep_sleep()'s (every cancel in the sleep); on io_uring, before it
 * polled with the raw system call, ur_wait's and poll_now()'s (a cancel in
 * glibc's epoll_pwait2 there had no handler but round_cancelled; CI's gcc
 * -O2 asan run aborted in tests/cancel on that).  Instrumented code is
 * not hurt (every function poisons its own frame afresh on entry), but the
 * compiler puts a __asan_handle_no_return() before each handler's
 * __pthread_unwind_next(), and that runtime function calls
 * sigaltstack(NULL, &ss) through ASan's own interceptor, which checks &ss
 * - a local in an uninstrumented runtime frame just below the handler -
 * against that stale shadow: "stack-buffer-overflow WRITE of size 24 ... in
 * __interceptor_sigaltstack ... round_wait" (google/sanitizers#1399), and
 * with abort_on_error=1 a SIGABRT.  A false report: the memory is the
 * thread's own free stack.  (libgcc's unwinder also calls the intercepted
 * memset and memcpy on its own frames there.)
 * So every handler of the library first clears the shadow of the stack
 * below itself, from a frame ASan does not instrument, before any
 * instrumented callee or interceptor runs there: what
 * __asan_handle_no_return does above itself, done below first. */
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
static __thread __attribute__((tls_model("initial-exec"))) char *tl_stack_lo;

/* The lowest address of this thread's stack, once per thread, taken while
 * the shadow is still right (before any sleep could be cancelled). */
void evq__asan_stack_note(void)
{
	if (tl_stack_lo)
		return;
	pthread_attr_t a;
	void *lo;
	size_t size;
	evq__nocancel_enter();
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		if (pthread_attr_getstack(&a, &lo, &size) == 0)
			tl_stack_lo = lo;
		pthread_attr_destroy(&a);
	}
	evq__nocancel_leave();
}

/* Unpoisons the stack below the caller's frame: at most 1 MiB (the frames
 * a cancel skips take a few KiB; a main thread with an unlimited stack
 * limit reports a huge one). */
__attribute__((no_sanitize_address, noinline)) void evq__asan_unstale(void)
{
	char *here = __builtin_frame_address(0), *lo = tl_stack_lo;
	if (!lo || here <= lo)
		return;
	if ((size_t)(here - lo) > ((size_t)1 << 20))
		lo = here - ((size_t)1 << 20);
	__asan_unpoison_memory_region(lo, (size_t)(here - lo));
}
#endif

/* The waiter was cancelled in its sleep: the backend's own handler ran
 * first, or its round.cancelled runs here first (backend.h B11).  Undo W1
 * and the keeper deadline; park what it had taken from
 * the kernel; and since the sleep may have consumed a wake() meant for
 * the queue, let the next one through and end another sleeper's sleep if
 * anything is left for it (pass_on): no event waits for a thread that is
 * gone, and no other waiter is affected. */
static void round_cancelled(void *arg)
{
	evq__asan_unstale(); /* first: see above */
	struct round *w = arg;
	struct evq *q = w->q;
	if (w->round.cancelled)
		w->round.cancelled(&w->round, w->ready);
	evq__tl_round = NULL;
	if (w->sleep)
		atomic_fetch_sub(&q->sleepers, 1);             /* W4 */
	atomic_store(&q->wake_sent, 0);
	wait_lock(q);
	if (w->keep != INT64_MAX && w->keep == q->keeper_deadline)
		q->keeper_deadline = INT64_MAX;
	park(q, w->ready, w->round.taken);
	pass_on(q);
	wait_unlock(q);
}

/* W3: the backend's wait, a cancellation point.  This file is built with
 * -fexceptions (Makefile), so pthread_cleanup_push is an unwinding cleanup
 * here: the cancel's forced unwind runs round_cancelled as it passes this
 * frame (the frames below are abandoned as described above), and a wait
 * that is not cancelled pays no __sigsetjmp for it. */
static inline int round_wait(struct round *w, int64_t t,
			     const sigset_t *sigmask, int batch)
{
	evq__tl_round = w->q; /* posts made by this round go first (F2) */
	evq__asan_stack_note();
	pthread_cleanup_push(round_cancelled, w);
	w->k = w->q->backend->wait(w->q, t, sigmask, w->ready, batch, &w->round);
	pthread_cleanup_pop(0);
	return w->k;
}

/* The timeout of the next backend call (ns; 0: a poll, -1: forever): F2's
 * poll when anything is pending, else what is left of the caller's, cut to
 * the nearest timer unless another sleeper covers it already (idle waiters
 * do not all wake per tick); then *keep is the deadline this round keeps,
 * else INT64_MAX.  Locked. */
static int64_t round_timeout(struct evq *q, int64_t timeout_ns, int64_t end,
			     int64_t next_timer, int64_t *keep)
{
	int64_t t;
	*keep = INT64_MAX;
	if (q->pend_head >= 0 || q->again_head >= 0 || timeout_ns == 0)
		t = 0;
	else if (timeout_ns < 0)
		t = -1;
	else if ((t = end - evq__now(0)) < 0)
		t = 0;
	if (next_timer >= 0 && t != 0) {
		int64_t dl = evq__sat_add(evq__now(0), next_timer);
		if (dl < q->keeper_deadline) {
			q->keeper_deadline = *keep = dl;
			if (t < 0 || next_timer < t)
				t = next_timer;
		}
	}
	return t;
}

/* The round is over: the keeper deadline it took is free again. */
static void drop_keep(struct evq *q, int64_t keep)
{
	if (keep != INT64_MAX && keep == q->keeper_deadline)
		q->keeper_deadline = INT64_MAX;
}

/* W1, then S2 and W2 before sleeping: 0 to go on, 1 to look again (posts
 * arrived: they are pending once pulled, and F2 then polls), or
 * -ESHUTDOWN.  A poll needs no wakeup: no W1..W4.  Locked. */
static int sleep_begin(struct evq *q, struct round *w)
{
	if (!w->sleep)
		return 0;
	atomic_fetch_add(&q->sleepers, 1);                             /* W1 */
	int shut = atomic_load(&q->shut);                              /* S2 */
	if (!shut && !evq__posts_waiting(q))                           /* W2 */
		return 0;
	atomic_fetch_sub(&q->sleepers, 1);
	drop_keep(q, w->keep);
	return shut ? -ESHUTDOWN : 1;
}

/* W3 and W4: the backend's wait, without the lock; returns with it held
 * and what the backend returned. */
static int sleep_round(struct evq *q, struct round *w, int64_t t,
		       const sigset_t *sigmask, int max)
{
	wait_unlock(q);
	int batch = max < q->max_batch ? max : q->max_batch;
	int k = round_wait(w, t, sigmask, batch);                      /* W3 */
	if (w->sleep)
		atomic_fetch_sub(&q->sleepers, 1);                     /* W4 */
	if (w->round.woken)
		atomic_store(&q->wake_sent, 0);
	wait_lock(q);
	drop_keep(q, w->keep);
	return k;
}

/* After a backend call that returned k: the events to hand out, kernel
 * ones first (F2), then the pending list; or -ESHUTDOWN.  Locked.  Inlined
 * in both its callers (wait_rounds, quiet_wait): a call here costs the
 * polling path more than the copy costs in size. */
static inline __attribute__((always_inline)) int round_take(struct evq *q, struct round *w, int k,
		      struct evq_event *out, int max, int64_t *next_timer)
{
	if (atomic_load(&q->shut)) {                                   /* S2 */
		/* read after W4 and wake_sent = 0; what the kernel gave
		 * this round stays pending, for evq_del */
		if (k > 0)
			park(q, w->ready, k);
		evq__tl_round = NULL;
		return -ESHUTDOWN;
	}
	int n = 0;
	q->kernel_owed = 0;
	if (k > 0)
		n = harvest(q, w->ready, k, out);
	evq__tl_round = NULL;
	evq__fd_again(q);
	pull(q, next_timer);
	if (q->pend_head < 0) /* the common case: no call */
		return n;
	return n + deliver_pending(q, out + n, max - n);
}

/* Q: nothing for the locked path to do before sleeping - no shutdown, no
 * posts, nothing pending or waiting for the next round, no timers at all
 * (so no keeper deadline to take, nor a timeout to cut).  Read without
 * q->lock, after W1: pend_head, again_head, ntimers and rt_fd change under
 * the lock, and whoever links or arms there kicks through a fence
 * (evq__kick_linked), a Dekker pair with W1 like P1/W2.  A stale "busy"
 * only sends the caller the locked way. */
static inline int quiet(struct evq *q)
{
	return !atomic_load(&q->shut) && !evq__posts_waiting(q) &&
	       __atomic_load_n(&q->pend_head, __ATOMIC_SEQ_CST) < 0 &&
	       __atomic_load_n(&q->again_head, __ATOMIC_SEQ_CST) < 0 &&
	       __atomic_load_n(&q->ntimers, __ATOMIC_SEQ_CST) == 0 &&
	       __atomic_load_n(&q->rt_fd, __ATOMIC_SEQ_CST) < 0;
}

/* Kernel rounds until something is to be handed out, the timeout passes
 * (0), an error, or -ESHUTDOWN.  Locked. */
static int wait_rounds(struct evq *q, struct evq_event *out, int max,
		       int64_t timeout_ns, int64_t end, const sigset_t *sigmask,
		       int64_t next_timer)
{
	struct evq__ready ready[EVQ_BATCH_MAX];
	int repolled = 0;
	for (;;) {
		int64_t keep, t = round_timeout(q, timeout_ns, end, next_timer, &keep);
		struct round w = { q, ready, { 0, 0, NULL }, t != 0, keep, 0 };
		int n = sleep_begin(q, &w);
		if (n == 1) {
			pull(q, &next_timer);
			continue;
		}
		if (n < 0)
			return n;
		int k = sleep_round(q, &w, t, sigmask, max);
		n = round_take(q, &w, k, out, max, &next_timer);
		if (n != 0)
			return n;
		/* A poll whose backend call brought back only a wakeup left
		 * over from an earlier sleep (epoll: it may fill a batch of
		 * one; io_uring returns before polling) or only events
		 * dropped in harvest (e.g. a oneshot fd the kernel re-armed
		 * while a requeued record spent it) has not seen every fd:
		 * look again, a few times at most. */
		if (timeout_ns == 0 && k >= 0 && (w.round.woken || k > 0) &&
		    repolled++ < EVQ_REPOLL_MAX)
			continue;
		if (k < 0 || timeout_ns == 0 ||
		    (timeout_ns > 0 && evq__now(0) >= end))
			return k < 0 ? k : 0;
	}
}

/* One blocking evq_wait with one lock pair instead of two: W1 and Q
 * without the lock, W3 and W4 as sleep_round does them, then the lock and
 * round_take.  Returns QUIET_NO (unlocked, W1 undone: the queue is not
 * quiet, take the locked way), QUIET_DONE (locked, *n to return) or
 * QUIET_ON (locked: nothing yet, on with wait_rounds from *next_timer).
 * Not inlined: its ready[] and wait_rounds' are not on the stack at once. */
enum { QUIET_NO, QUIET_DONE, QUIET_ON };

static __attribute__((noinline)) int
quiet_wait(struct evq *q, struct evq_event *out, int max, int64_t timeout_ns,
	   int64_t end, const sigset_t *sigmask, int *n, int64_t *next_timer)
{
	/* busy (a relaxed first look), or the timeout went by: skip W1 */
	if (__atomic_load_n(&q->pend_head, __ATOMIC_RELAXED) >= 0 ||
	    atomic_load_explicit(&q->post_head, memory_order_relaxed) >= 0)
		return QUIET_NO;
	int64_t t = timeout_ns < 0 ? -1 : end - evq__now(0);
	if (timeout_ns > 0 && t <= 0)
		return QUIET_NO;
	atomic_fetch_add(&q->sleepers, 1);                             /* W1 */
	if (!quiet(q)) {                                               /* Q */
		atomic_fetch_sub(&q->sleepers, 1);
		return QUIET_NO;
	}
	struct evq__ready ready[EVQ_BATCH_MAX];
	struct round w = { q, ready, { 0, 0, NULL }, 1, INT64_MAX, 0 };
	int batch = max < q->max_batch ? max : q->max_batch;
	int k = round_wait(&w, t, sigmask, batch);                     /* W3 */
	atomic_fetch_sub(&q->sleepers, 1);                             /* W4 */
	if (w.round.woken)
		atomic_store(&q->wake_sent, 0);
	wait_lock(q);
	*n = round_take(q, &w, k, out, max, next_timer);
	if (*n != 0)
		return QUIET_DONE;
	/* as wait_rounds goes on after a round that found nothing */
	if (k < 0)
		*n = k;
	return k < 0 || (timeout_ns > 0 && evq__now(0) >= end) ? QUIET_DONE : QUIET_ON;
}

int evq_wait(struct evq *q, struct evq_event *out, int max, int64_t timeout_ns,
	     const sigset_t *sigmask)
{
	int64_t next_timer, end = 0;
	if (!q || !out || max <= 0)
		return -EINVAL;
	if (evq__forked(q))
		return -ECHILD;
	pthread_testcancel(); /* a cancellation point, also when events wait */
	if (atomic_load(&q->shut))
		return -ESHUTDOWN; /* S2, also with events pending */
	if (timeout_ns > 0)
		end = evq__sat_add(evq__now(0), timeout_ns);

	int n = 0, how = timeout_ns == 0 ? QUIET_NO :
		quiet_wait(q, out, max, timeout_ns, end, sigmask, &n, &next_timer);
	if (how == QUIET_NO) {
		wait_lock(q);
		pull(q, &next_timer);
		if (q->pend_head >= 0 && !q->kernel_owed)
			/* F1: the previous call asked the kernel; this one
			 * may hand out what is pending without a system call
			 * (if all claims fail, it waits as usual) */
			n = deliver_pending(q, out, max);
		if (n > 0)
			q->kernel_owed = 1;
		else
			how = QUIET_ON;
	}
	if (how == QUIET_ON)
		n = wait_rounds(q, out, max, timeout_ns, end, sigmask, next_timer);
	pass_on(q);
	wait_unlock(q);
	if (n > 0)
		evq__hold(q, out, n);
	return n;
}

int evq_shutdown(struct evq *q)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	/* Async-signal-safe: an atomic store and a kick, no lock.  Again:
	 * a harmless extra wake. */
	int saved = errno;
	atomic_store(&q->shut, 1);                                     /* S1 */
	evq__kick(q);
	errno = saved;
	return 0;
}

