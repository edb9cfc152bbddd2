/* SPDX-License-Identifier: MIT */
/*
 * sem.c - counting semaphores in (possibly shared) memory, and evq_add_sem:
 * a queue acquires a token for each caller of evq_wait it hands one to.
 *
 * Protocol (model/sem.pml; every access is seq_cst):
 *   taker (evq_sem_wait, or a queue)          poster (evq_sem_post)
 *   S1 take: c = count; c > 0 && CAS(c, c-1)  P1 count += n (CAS, bounded)
 *   S2 waiters++                              P2 if waiters > 0:
 *   S3 take again (ok: waiters--, done)           futex_wake(count, n)
 *   S4 futex_wait(count, 0): the kernel sleeps
 *      only while count == 0, atomically with queueing
 *   S5 waiters--; go to S1 (even after a timeout or a signal: a thread
 *      that was woken tries once more before giving up)
 * No lost wakeup: S2 precedes S4's check and P1 precedes P2's load, so
 * either S4 sees count > 0 or P2 sees waiters > 0 and its wake reaches S4.
 * No token lost or duplicated: tokens move only by CAS on count.
 * A wake is never swallowed by a taker that leaves empty-handed while a
 * token is there: the kernel reports "woken" over "timed out", and S5
 * retries S1 first.
 *
 * A queue registration (evq_add_sem) takes a token only for a caller of
 * evq_wait, when it hands the event out (issue 12: a registration that
 * took one ahead, as before, sat on it while its process was busy):
 *   Q0 arm (add, enable, Q1, Q5): a token free now -> post READY (an
 *      internal pend_events bit; no token); else S2 and the watcher waits
 *      for count != 0 (S4 in its futex_waitv)
 *   Q1 the watcher's check() sees count > 0: S5, post READY, idle.  No
 *      token is taken; evq_wait's claim hook takes one (S1, a CAS as
 *      evq_sem_trywait) just before it hands the event to its caller, and
 *      the delivered hook arms again.  One event is one token.
 *   Q5 the claim finds count == 0 (someone else was quicker): nothing is
 *      delivered (evq_wait goes on waiting), and the registration arms
 *      again (Q0)
 *   Q4 a watch may have taken a futex wake meant for another sleeper.  If
 *      no thread of the queue sleeps in evq_wait (q->sleepers == 0: its
 *      owner is busy, maybe for long) check() passes one wake on when
 *      count > 0 and waiters > 0; so does every stop (disable, evq_del).
 *      A thread that sleeps in evq_wait claims at once instead (it may
 *      first return a full batch of other events: then the wake waits for
 *      its next evq_wait).
 *   Q2 evq_del/evq_free give back only tokens given to the registration
 *      with evq_requeue and not handed out again (pend_data): READY holds
 *      none.
 *   Q3 the registration's own lock (sr->mu, a leaf: taken under q->lock or
 *      the watcher's mutex, nothing taken under it) makes the watcher's
 *      "post, armed = 0" one step for sem_arm's "armed == 0?": an arm
 *      between them (a claim that lost, evq_mod) would arm nothing, for
 *      good.
 * model/sem.pml checks Q0-Q2, Q4 and Q5 with two tokens and with one,
 * with an owner that may go away for good after a job; teeth NOWAKE,
 * NOX2Q4, NOPASS, NOWPASS, NOREARM, NOO3.  It has neither evq_requeue nor
 * evq_mod, so it does not cover Q3.
 *
 * Hostile memory: a semaphore in shared memory is only as good as every
 * process that maps it.  Garbage (a bad magic or flags field, a count above
 * EVQ_SEM_MAX) is never waited on: direct calls return -EINVAL, also when
 * it appears while they sleep; a queue registration posts one EVQ_ERR
 * event and goes idle until evq_mod() enables it again (G1, sem_check and
 * sem_arm), which looks again.  When the kernel cannot read the count
 * (futex -EFAULT: a truncated shared file) the registration reports the
 * same way and touches the memory no more until a probe says it is back.
 * The claim asks the kernel first (evq__word_probe) for a shared
 * semaphore, which another process may have truncated since the watcher
 * looked.
 */
#include <errno.h>
#include <stdlib.h>

#include "futex.h"
#include "core/watch.h"

static int sem_ok(const struct evq_sem *s)
{
	if (!evq__word_ok(s) || evq__ld(&s->magic) != EVQ_SEM_MAGIC)
		return 0;
	uint32_t f = evq__ld(&s->flags);
	return (f & ~EVQ_SHARED) == 0;
}

static int shared(const struct evq_sem *s)
{
	return !!(evq__ld(&s->flags) & EVQ_SHARED);
}

/* sem_ok, and still shared or private as when the caller started: a flipped
 * EVQ_SHARED bit would send every wake to the wrong futex key. */
static int sem_ok_as(const struct evq_sem *s, int sh)
{
	return sem_ok(s) && shared(s) == sh;
}

int evq_sem_init(struct evq_sem *s, uint32_t count, uint32_t flags)
{
	if (!evq__word_ok(s) || count > EVQ_SEM_MAX || (flags & ~EVQ_SHARED))
		return -EINVAL;
	evq__st(&s->magic, 0);
	evq__st(&s->flags, flags);
	evq__st(&s->count, count);
	evq__st(&s->waiters, 0);
	evq__st(&s->magic, EVQ_SEM_MAGIC); /* last: the struct is complete */
	return 0;
}

/* S1 */
static int take(struct evq_sem *s)
{
	uint32_t c = evq__ld(&s->count);
	for (;;) {
		if (c == 0)
			return -EAGAIN;
		if (c > EVQ_SEM_MAX)
			return -EINVAL; /* garbage */
		if (evq__cas(&s->count, &c, c - 1))
			return 0;
	}
}

int evq_sem_trywait(struct evq_sem *s)
{
	if (!sem_ok(s))
		return -EINVAL;
	return take(s);
}

/* S3-S5 until a token, garbage, the deadline or a signal. */
static int sem_sleep(struct evq_sem *s, int sh, const struct timespec *dlp)
{
	int rc;
	for (;;) {
		/* S3; garbage written while we slept ends the wait (G1) */
		rc = sem_ok_as(s, sh) ? take(s) : -EINVAL;
		if (rc != -EAGAIN)
			break;
		int w = evq__futex_wait_cancel(&s->count, 0, dlp, sh); /* S4 */
		if (w < 0 && w != -EAGAIN) {
			/* -ETIMEDOUT, -EINTR (or -EFAULT) */
			rc = sem_ok_as(s, sh) ? take(s) : -EINVAL; /* S5: last try */
			if (rc == -EAGAIN)
				rc = w;
			break;
		}
	}
	return rc;
}

struct sem_sleeper {
	struct evq_sem *s;
	int sh;
	int rc;
};

/* Cancelled in S4: leave as S5 does, and since the sleep may have taken a
 * wake meant for a token that is there, pass one on (a spurious wakeup at
 * worst): no other taker waits for a thread that is gone. */
static void sem_cancelled(void *arg)
{
	struct sem_sleeper *c = arg;
	evq__sub(&c->s->waiters, 1);               /* S5 */
	if (sem_ok_as(c->s, c->sh) && evq__ld(&c->s->count) > 0)
		evq__futex_wake(&c->s->count, 1, c->sh);
}

int evq_sem_wait(struct evq_sem *s, int64_t timeout_ns)
{
	if (!sem_ok(s))
		return -EINVAL;
	pthread_testcancel(); /* a cancellation point, also with tokens there */
	int rc = take(s);                         /* S1 */
	if (rc != -EAGAIN)
		return rc;
	if (timeout_ns == 0)
		return -ETIMEDOUT;
	struct timespec dl;
	const struct timespec *dlp = evq__deadline_or_forever(timeout_ns, &dl);
	struct sem_sleeper c = { s, shared(s), 0 };
	evq__add(&s->waiters, 1);                  /* S2 */
	pthread_cleanup_push(sem_cancelled, &c);
	c.rc = sem_sleep(s, c.sh, dlp);
	pthread_cleanup_pop(0);
	evq__sub(&s->waiters, 1);                  /* S5 */
	return c.rc;
}

int evq_sem_post(struct evq_sem *s, uint32_t n)
{
	if (!sem_ok(s) || n < 1)
		return -EINVAL;
	uint32_t c = evq__ld(&s->count);
	do {                                      /* P1 */
		if (c > EVQ_SEM_MAX || n > EVQ_SEM_MAX - c)
			return c > EVQ_SEM_MAX ? -EINVAL : -EOVERFLOW;
	} while (!evq__cas(&s->count, &c, c + n));
	if (evq__ld(&s->waiters) > 0)              /* P2 */
		evq__futex_wake(&s->count, n > INT32_MAX ? INT32_MAX : (int)n,
			       shared(s));
	return 0;
}

int evq_sem_value(const struct evq_sem *s)
{
	if (!sem_ok(s))
		return -EINVAL;
	uint32_t c = evq__ld(&s->count);
	return c > EVQ_SEM_MAX ? -EINVAL : (int)c;
}

/* ------------------------------------------------------------------ */
/* Through a queue                                                      */
/* ------------------------------------------------------------------ */

struct sem_reg {
	struct evq__watch_item it; /* first: a native backend reads it */
	struct evq *q;
	struct evq__reg *r;
	uint32_t tag;
	struct evq_sem *s;
	_Atomic int waiting;  /* counted in s->waiters (S2 done, S5 not) */
	_Atomic int armed;    /* watching for a token (arm .. check saw one) */
	_Atomic int fault;    /* enum evq__fault: reported, idle until evq_mod */
	pthread_mutex_t mu;   /* check()'s post+disarm vs sem_arm() (Q3) */
};

/* pend_events bit, never reported: the watcher saw a token free (Q1).  The
 * token itself is taken by sem_claim, when the event is handed out. */
#define SEM_READY 0x80000000u

/* G1: the semaphore is garbage or unreadable: post one EVQ_ERR event and
 * acquire nothing more until evq_mod() enables the registration again. */
static void sem_report(struct sem_reg *sr, int fault)
{
	atomic_store(&sr->fault, fault);
	atomic_store(&sr->armed, 0);
	evq__watch_report(sr->q, sr->r, sr->tag);
}

/* Q4: a token may be free and a wake may have been spent on a registration
 * that will not take it soon: hand one wake on to the next sleeper (a
 * spurious wakeup at worst).  Loads count: only while it is readable. */
static void pass_wake(struct sem_reg *sr)
{
	if (evq__ld(&sr->s->count) > 0 && evq__ld(&sr->s->waiters) > 0)
		evq__futex_wake(&sr->s->count, 1, sr->it.shared);
}

/* S3/S5 in the watcher thread (watch.c X3): a token is free.  Take none:
 * post a READY event and go idle; sem_claim takes the token when evq_wait
 * hands the event out (Q1). */
static int sem_check(struct evq__watch_item *it, int woken)
{
	struct sem_reg *sr = (struct sem_reg *)it;
	if (woken == EVQ_WATCH_FAULT) {
		/* the count cannot be read: touch nothing, so S5 is skipped
		 * (if the memory comes back, waiters stays one too high: a
		 * poster then makes a wake that nobody needs) */
		atomic_store(&sr->waiting, 0);
		sem_report(sr, EVQ_FAULT_UNREADABLE);
		return 0;
	}
	pthread_mutex_lock(&sr->mu);                  /* Q3 */
	uint32_t c = sem_ok_as(sr->s, it->shared) ? evq__ld(&sr->s->count) : ~0u;
	if (c == 0) {
		pthread_mutex_unlock(&sr->mu);
		return 1;                         /* S4 again */
	}
	if (atomic_exchange(&sr->waiting, 0))
		evq__sub(&sr->s->waiters, 1);      /* S5 */
	if (c > EVQ_SEM_MAX) {
		sem_report(sr, EVQ_FAULT_GARBAGE); /* G1: never spin on it */
		pthread_mutex_unlock(&sr->mu);
		return 0;
	}
	int gone = evq__post(sr->q, sr->r, sr->tag, 1) < 0;  /* READY */
	atomic_store(&sr->armed, 0); /* after the post: see Q3 */
	pthread_mutex_unlock(&sr->mu);
	/* Q4: no thread of the queue sleeps in evq_wait to claim it now (or
	 * the registration is gone): the wake this watch may have taken goes
	 * on to whoever else waits */
	if (gone || atomic_load(&sr->q->sleepers) == 0)
		pass_wake(sr);
	return 0;
}

/* Drained posts: count = READY (Q1), bits = EVQ_ERR (G1). */
static void sem_posted(struct evq *q, struct evq__reg *r, uint64_t count,
		       uint64_t bits)
{
	(void)q;
	if (count)
		r->pend_events |= SEM_READY;
	if (bits & EVQ_ERR)
		r->pend_events |= EVQ_ERR;
}

/* S2 and let the watcher do S3..S5; a token free now posts READY at once
 * (no watcher involved).  Takes no token.  A registration that reported
 * garbage stays idle (G1) until sem_mod clears fault.  q->lock held. */
static int sem_arm(struct evq *q, struct evq__reg *r, struct sem_reg *sr)
{
	if (r->flags & EVQ_DISABLED)
		return 0;
	pthread_mutex_lock(&sr->mu);                  /* Q3 */
	if (atomic_load(&sr->armed) ||
	    atomic_load(&sr->fault) != EVQ_FAULT_NONE) {
		pthread_mutex_unlock(&sr->mu);
		return 0;
	}
	uint32_t c = sem_ok_as(sr->s, sr->it.shared) ? evq__ld(&sr->s->count) : ~0u;
	if (c > EVQ_SEM_MAX) {
		sem_report(sr, EVQ_FAULT_GARBAGE);        /* G1 */
		pthread_mutex_unlock(&sr->mu);
		return 0;
	}
	if (c > 0) {                              /* READY now */
		evq__post(q, r, sr->tag, 1);
		pthread_mutex_unlock(&sr->mu);
		return 0;
	}
	if (!atomic_exchange(&sr->waiting, 1))
		evq__add(&sr->s->waiters, 1);      /* S2 */
	atomic_store(&sr->armed, 1);
	pthread_mutex_unlock(&sr->mu);
	int rc = evq__word_arm(q, r, &sr->it, 0, 1);
	if (rc < 0) {
		atomic_store(&sr->armed, 0);
		if (atomic_exchange(&sr->waiting, 0))
			evq__sub(&sr->s->waiters, 1);
	}
	return rc;
}

/* Stop watching.  q->lock held. */
static void sem_stop(struct evq *q, struct evq__reg *r, struct sem_reg *sr,
		     int detach)
{
	if (detach)
		evq__word_detach(q, r, &sr->it);
	else
		evq__word_idle(q, r, &sr->it);
	/* check() no longer runs: these are ours now */
	atomic_store(&sr->armed, 0);
	int was = atomic_exchange(&sr->waiting, 0);
	if (atomic_load(&sr->fault) == EVQ_FAULT_UNREADABLE)
		return; /* touch nothing (waiters stays one too high) */
	if (was)
		evq__sub(&sr->s->waiters, 1);      /* S5 */
	/* Q4: a READY this registration will not claim now may stand for a
	 * wake it took */
	if (sem_ok_as(sr->s, sr->it.shared))
		pass_wake(sr);
}

/* Q1: evq_wait is about to hand the event out: take the token now (S1).
 * Lost the race: deliver nothing and watch again.  Tokens given back with
 * evq_requeue (pend_data) are delivered as they are, without a new one.
 * q->lock held. */
static int sem_claim(struct evq *q, struct evq__reg *r)
{
	struct sem_reg *sr = r->ext;
	int ready = !!(r->pend_events & SEM_READY);
	r->pend_events &= ~SEM_READY;
	if (r->pend_data > 0 || (r->pend_events & EVQ_ERR))
		return 1;
	if (!ready || !sr || atomic_load(&sr->fault) != EVQ_FAULT_NONE)
		return 0;
	int rc;
	if (sr->it.shared && evq__word_probe(&sr->s->count, 0, 1) < 0) {
		/* a shared file truncated since the watcher looked: the
		 * kernel says so, a load would raise SIGBUS (G1) */
		atomic_store(&sr->fault, EVQ_FAULT_UNREADABLE);
		rc = -EFAULT;
	} else {
		rc = sem_ok_as(sr->s, sr->it.shared) ? take(sr->s) : -EINVAL;
	}
	if (rc == 0) {
		r->pend_data = 1;                 /* one event, one token */
		return 1;
	}
	if (rc == -EAGAIN) {                      /* Q5: lost the race */
		sem_arm(q, r, sr);
		return 0;
	}
	if (rc == -EINVAL)
		atomic_store(&sr->fault, EVQ_FAULT_GARBAGE);
	sem_stop(q, r, sr, 0);                    /* G1: one EVQ_ERR event */
	r->pend_events |= EVQ_ERR;
	return 1;
}

/* The event was handed out: watch for the next token. */
static void sem_delivered(struct evq *q, struct evq__reg *r)
{
	struct sem_reg *sr = r->ext;
	if (sr)
		sem_arm(q, r, sr);
}

static int sem_mod(struct evq *q, struct evq__reg *r, uint32_t events,
		   uint32_t old_flags)
{
	struct sem_reg *sr = r->ext;
	(void)events, (void)old_flags;
	if (r->flags & EVQ_DISABLED) {
		sem_stop(q, r, sr, 0);
		return 0;
	}
	/* enabled: look at the memory again (G1), but load nothing while the
	 * kernel still cannot read it */
	if (atomic_load(&sr->fault) == EVQ_FAULT_UNREADABLE &&
	    evq__word_probe(&sr->s->count, 0, sr->it.shared) < 0) {
		sem_report(sr, EVQ_FAULT_UNREADABLE);
		return 0;
	}
	atomic_store(&sr->fault, EVQ_FAULT_NONE);
	return sem_arm(q, r, sr);
}

/* Q2: give back the tokens this registration holds: only ones given back
 * to it with evq_requeue and not handed out again (pend_data); a READY
 * holds none. */
static void sem_del(struct evq *q, struct evq__reg *r)
{
	struct sem_reg *sr = r->ext;
	if (!sr)
		return;
	r->ext = NULL;
	if (evq__forked(q)) {
		/* a forked child: the tokens and the watcher are the parent's
		 * (and sr->mu may have been held by one of its threads) */
		free(sr);
		return;
	}
	sem_stop(q, r, sr, 1);
	uint64_t held = r->pend_data;
	if (held && atomic_load(&sr->fault) != EVQ_FAULT_UNREADABLE &&
	    sem_ok(sr->s))
		evq_sem_post(sr->s, held > EVQ_SEM_MAX ? EVQ_SEM_MAX : (uint32_t)held);
	r->pend_data = 0;
	pthread_mutex_destroy(&sr->mu);
	free(sr);
}

#define SEM_FLAGS (EVQ_ONESHOT | EVQ_DISABLED)

static int sem_make(struct evq *q, struct evq__add *a)
{
	struct evq_sem *s = a->arg;
	if (!sem_ok(s) || (a->flags & ~SEM_FLAGS) || evq__ld(&s->count) > EVQ_SEM_MAX)
		return -EINVAL;
	struct sem_reg *sr = calloc(1, sizeof *sr);
	if (!sr)
		return -ENOMEM;
	evq__watch_init(&sr->it, &s->count, shared(s), sem_check);
	sr->q = q;
	sr->s = s;
	pthread_mutex_init(&sr->mu, NULL);
	a->ext = sr;
	return 0;
}

static int sem_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct sem_reg *sr = r->ext;
	(void)a;
	sr->r = r;
	sr->tag = evq__reg_tag(r);
	int rc = sem_arm(q, r, sr); /* EVQ_DISABLED: nothing */
	if (rc < 0)
		sem_stop(q, r, sr, 1);
	return rc;
}

static void sem_drop(struct evq *q, struct evq__add *a)
{
	struct sem_reg *sr = a->ext;
	(void)q;
	pthread_mutex_destroy(&sr->mu);
	free(sr);
}

const struct evq__kind evq__kind_sem = {
	.name = "sem",
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.posted = sem_posted,
	.del = sem_del,
	.claim = sem_claim,
	.delivered = sem_delivered,
	.mod = sem_mod,
	.make = sem_make,
	.start = sem_start,
	.drop = sem_drop,
};

int64_t evq_add_sem(struct evq *q, struct evq_sem *s, uint32_t flags,
		    uint64_t cookie)
{
	return evq__reg_add(q, EVQ_KIND_SEM, flags, cookie, -1, s);
}
