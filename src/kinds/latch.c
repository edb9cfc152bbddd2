/* SPDX-License-Identifier: MIT */
/*
 * latch.c - PostgreSQL-style latches in (possibly shared) memory, and
 * evq_add_latch.
 *
 * state: bit 0 = set, bits 1..31 = how many times it was set (wrapping).
 * Counting the sets lets a waiter that saw state v sleep on v exactly: a
 * set after a reset changes the word even though the set bit looks the
 * same as before the reset, so no set is mistaken for an older one.
 *
 * Protocol (model/latch.pml; every access is seq_cst):
 *   setter (evq_latch_set)             waiter (evq_latch_wait, or a queue)
 *   LA1 v = state; if set: done        LW1 waiters++
 *       (no system call)               LW2 v = state; if set: done
 *   LA2 CAS(v, (v + 2) | 1)            LW3 futex_wait(state, v): sleeps only
 *   LA3 if waiters > 0:                    while state == v (kernel checks)
 *       futex_wake(state, all)         LW4 go to LW2; waiters-- when leaving
 * No set missed: LW1 precedes LW3's check and LA2 precedes LA3's load, so
 * LW3 sees the new state or LA3 sees the waiter and wakes it.
 * The owner resets (LR1: state &= ~1) without any wake: nobody waits for a
 * latch to become unset.
 *
 * evq_latch_set_many does LA1-LA2 for each latch and then the LA3s of up to
 * EVQ_WAKE_BATCH_MAX (64) latches together: through the process's wake
 * ring (evq__uring_wake_batch; one io_uring_enter of IORING_OP_FUTEX_WAKEs,
 * all issued before it returns) when at least batch_min of them need a wake,
 * else, or when the ring is busy or missing, two per FUTEX_WAKE_OP.  Only
 * how LA3's wakes travel changes: each still follows its latch's LA2, so the
 * argument above holds as it is; model/latch.pml -DMANY checks it with two
 * latches and their wakes after all the sets, in any order (teeth
 * EARLYWAKE: a wake before its latch's LA2; SKIPLAST: a latch not woken).
 *
 * A queue registration keeps LW1 for as long as it is armed; its watcher
 * check() is LW2 with "done" replaced by "post an event, then expect the
 * state just seen": the next event needs another LA2.
 *
 * Hostile memory: every state is a valid state, but a latch in shared
 * memory may have its magic or flags overwritten.  Direct calls return
 * -EINVAL, evq_latch_wait also when that happens while it sleeps; a queue
 * registration posts one EVQ_ERR event and goes idle until evq_mod()
 * enables it again (LG1, latch_check and latch_arm), which looks again.
 * When the kernel cannot read the state (futex -EFAULT) the registration
 * reports the same way and touches the memory no more until a probe says
 * it is back.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "futex.h"
#include "core/watch.h"
#include "core/wakering.h"

#define SET 1u

static int latch_ok(const struct evq_latch *l)
{
	return evq__word_ok(l) && evq__ld(&l->magic) == EVQ_LATCH_MAGIC &&
	       (evq__ld(&l->flags) & ~EVQ_SHARED) == 0;
}

static int shared(const struct evq_latch *l)
{
	return !!(evq__ld(&l->flags) & EVQ_SHARED);
}

/* latch_ok, and still shared or private as when the caller started: a
 * flipped EVQ_SHARED bit would send every wake to the wrong futex key. */
static int latch_ok_as(const struct evq_latch *l, int sh)
{
	return latch_ok(l) && shared(l) == sh;
}

int evq_latch_init(struct evq_latch *l, uint32_t flags)
{
	if (!evq__word_ok(l) || (flags & ~EVQ_SHARED))
		return -EINVAL;
	evq__st(&l->magic, 0);
	evq__st(&l->flags, flags);
	evq__st(&l->state, 0);
	evq__st(&l->waiters, 0);
	evq__st(&l->magic, EVQ_LATCH_MAGIC);
	return 0;
}

/* LA1, LA2; l is valid.  Returns 1 if the caller must do LA3 (wake). */
static int set_bit(struct evq_latch *l)
{
	uint32_t v = evq__ld(&l->state), nv;
	do {
		if (v & SET)
			return 0;                         /* LA1 */
		/* count the set; the count skips 0 when it wraps, so a latch
		 * that was ever set never reads 0 again (wake_two relies on it) */
		nv = (v + 2) | SET;
		if (nv == SET)
			nv = 2 | SET;
	} while (!evq__cas(&l->state, &v, nv));            /* LA2 */
	return evq__ld(&l->waiters) > 0;                   /* LA3 */
}

int evq_latch_set(struct evq_latch *l)
{
	if (!latch_ok(l))
		return -EINVAL;
	if (set_bit(l))
		evq__futex_wake(&l->state, INT_MAX, shared(l));   /* LA3 */
	return 0;
}

/* LA3 for two latches in one system call: FUTEX_WAKE_OP wakes a's waiters,
 * applies "OR 0" (no change) to b's word and, since b was set (its word is
 * never 0 again, even if reset meanwhile), wakes b's waiters too.  Both
 * must have the same sharing. */
static void wake_two(uint32_t *a, uint32_t *b, int sh)
{
	int saved = errno;
	long rc = syscall(SYS_futex, a,
			  sh ? FUTEX_WAKE_OP : FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG,
			  INT_MAX, (unsigned long)INT_MAX, b,
			  FUTEX_OP(FUTEX_OP_OR, 0, FUTEX_OP_CMP_NE, 0));
	if (rc < 0) {
		/* (not expected) fall back to one wake each */
		evq__futex_wake(a, INT_MAX, sh);
		evq__futex_wake(b, INT_MAX, sh);
	}
	errno = saved;
}

/* Fewest latch wakes that go through the wake ring (one io_uring_enter)
 * rather than FUTEX_WAKE_OP pairs; 0: never.  bench/latchmany.c measured
 * where the ring starts to pay (bench/RESULTS-words.md).  Read from
 * $EVQ_LATCH_BATCH once, at load (config.c), so that set_many never reads
 * the environment. */
#define BATCH_MIN_DEFAULT 8
static _Atomic int batch_min = BATCH_MIN_DEFAULT;

__attribute__((constructor)) static void batch_min_from_env(void)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	if (cfg.latch_batch >= 0)
		evq__latch_batch_min(cfg.latch_batch);
}

void evq__latch_batch_min(int min)
{
	atomic_store(&batch_min, min < 0 ? BATCH_MIN_DEFAULT : min);
}

/* LA3 for k latch words (k <= EVQ_WAKE_BATCH_MAX; bit i of shm: w[i] is
 * shared): all in one io_uring_enter when there are enough of them and the
 * wake ring is free, else in pairs of the same sharing. */
static void wake_words(uint32_t *const *w, uint64_t shm, int k)
{
	int min = atomic_load_explicit(&batch_min, memory_order_relaxed);
	if (min > 0 && k >= min && evq__uring_wake_batch(w, shm, k) >= 0)
		return;
	uint32_t *held = NULL;
	int held_sh = 0;
	for (int i = 0; i < k; i++) {
		int sh = (int)(shm >> i & 1);
		if (!held) {
			held = w[i];
			held_sh = sh;
		} else if (sh == held_sh && w[i] != held) {
			wake_two(held, w[i], sh);                 /* LA3 x 2 */
			held = NULL;
		} else {
			evq__futex_wake(held, INT_MAX, held_sh);
			held = w[i];
			held_sh = sh;
		}
	}
	if (held)
		evq__futex_wake(held, INT_MAX, held_sh);   /* LA3 */
}

int evq_latch_set_many(struct evq_latch *const *latches, int n)
{
	if (n < 0 || (n > 0 && !latches))
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (!latch_ok(latches[i]))
			return -EINVAL;
	/* LA2 for each; the LA3s of up to EVQ_WAKE_BATCH_MAX latches go
	 * together (no malloc: this may run in a signal handler) */
	uint32_t *w[EVQ_WAKE_BATCH_MAX];
	uint64_t shm = 0;
	int k = 0;
	for (int i = 0; i < n; i++) {
		struct evq_latch *l = latches[i];
		if (!set_bit(l))
			continue;
		if (shared(l))
			shm |= 1ull << k;
		w[k++] = &l->state;
		if (k == EVQ_WAKE_BATCH_MAX) {
			wake_words(w, shm, k);            /* LA3 x k */
			k = 0;
			shm = 0;
		}
	}
	if (k)
		wake_words(w, shm, k);                    /* LA3 x k */
	return 0;
}

int evq_latch_reset(struct evq_latch *l)
{
	if (!latch_ok(l))
		return -EINVAL;
	evq__and(&l->state, ~SET);                         /* LR1 */
	return 0;
}

int evq_latch_is_set(const struct evq_latch *l)
{
	if (!latch_ok(l))
		return -EINVAL;
	return (int)(evq__ld(&l->state) & SET);
}

/* LW2-LW4 until the latch is set, garbage, the deadline or a signal. */
static int latch_sleep(struct evq_latch *l, int sh, const struct timespec *dlp)
{
	int rc = 0;
	for (;;) {
		if (!latch_ok_as(l, sh)) {
			rc = -EINVAL; /* garbage written while we slept */
			break;
		}
		uint32_t v = evq__ld(&l->state);           /* LW2 */
		if (v & SET) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break; /* timed out or interrupted, and still unset */
		int w = evq__futex_wait_cancel(&l->state, v, dlp, sh); /* LW3 */
		if (w < 0 && w != -EAGAIN)
			rc = w; /* LW4: check once more, then give up */
	}
	return rc;
}

/* Cancelled in LW3: leave as LW4 does (a set wakes every waiter: there is
 * no wake to pass on). */
static void latch_cancelled(void *arg)
{
	struct evq_latch *l = arg;
	evq__sub(&l->waiters, 1);                          /* LW4 */
}

static int latch_sleep_cancellable(struct evq_latch *l, int sh,
				   const struct timespec *dlp)
{
	int rc[1];
	pthread_cleanup_push(latch_cancelled, l);
	rc[0] = latch_sleep(l, sh, dlp);
	pthread_cleanup_pop(0);
	return rc[0];
}

int evq_latch_wait(struct evq_latch *l, int64_t timeout_ns)
{
	if (!latch_ok(l))
		return -EINVAL;
	pthread_testcancel(); /* a cancellation point, also when set */
	uint32_t v = evq__ld(&l->state);
	if (v & SET)
		return 0;
	if (timeout_ns == 0)
		return -ETIMEDOUT;
	struct timespec dl;
	const struct timespec *dlp = evq__deadline_or_forever(timeout_ns, &dl);
	evq__add(&l->waiters, 1);                          /* LW1 */
	int rc = latch_sleep_cancellable(l, shared(l), dlp);
	evq__sub(&l->waiters, 1);                          /* LW4 */
	return rc;
}

/* ------------------------------------------------------------------ */
/* Through a queue                                                      */
/* ------------------------------------------------------------------ */

struct latch_reg {
	struct evq__watch_item it; /* first: a native backend reads it */
	struct evq *q;
	struct evq__reg *r;
	uint32_t tag;
	struct evq_latch *l;
	int waiting;              /* (q->lock) counted in l->waiters (LW1) */
	_Atomic int fault;        /* enum evq__fault: reported, idle until evq_mod */
};

/* LG1: the latch is garbage or unreadable: post one EVQ_ERR event; the
 * caller goes idle until evq_mod() enables the registration again. */
static void latch_report(struct latch_reg *lr, int fault)
{
	atomic_store(&lr->fault, fault);
	evq__watch_report(lr->q, lr->r, lr->tag);
}

/* LC1 of model/latch.pml, in the watcher thread (watch.c X3) or a native
 * backend's completion. */
static int latch_check(struct evq__watch_item *it, int woken)
{
	struct latch_reg *lr = (struct latch_reg *)it;
	if (woken == EVQ_WATCH_FAULT) {
		latch_report(lr, EVQ_FAULT_UNREADABLE); /* load nothing */
		return 0;
	}
	if (!latch_ok_as(lr->l, it->shared)) {
		latch_report(lr, EVQ_FAULT_GARBAGE);    /* never spin on it */
		return 0;
	}
	uint32_t v = evq__ld(&lr->l->state);
	if (v == it->expected)
		return 1;                                 /* LW3 again */
	it->expected = v;
	if (v & SET) {
		evq__post(lr->q, lr->r, lr->tag, 1);
		if (it->oneshot)
			return 0;
	}
	return 1;
}

/* One event per set; sets while one is pending coalesce.  bits: EVQ_ERR
 * (LG1), merged with a set still pending. */
static void latch_posted(struct evq *q, struct evq__reg *r, uint64_t count,
			 uint64_t bits)
{
	(void)q;
	if (count)
		r->pend_data = 1;
	if (bits & EVQ_ERR)
		r->pend_events |= EVQ_ERR;
}

/* LW1, then watch; a latch set now fires at once.  Memory found bad now is
 * reported (LG1) instead of watched.  q->lock held. */
static int latch_arm(struct evq *q, struct evq__reg *r, struct latch_reg *lr)
{
	int was = atomic_load(&lr->fault), fault = EVQ_FAULT_NONE;
	if (was == EVQ_FAULT_UNREADABLE &&
	    evq__word_probe(&lr->l->state, lr->it.expected, lr->it.shared) < 0)
		fault = EVQ_FAULT_UNREADABLE;
	else if (!latch_ok_as(lr->l, lr->it.shared))
		fault = EVQ_FAULT_GARBAGE;
	if (fault != EVQ_FAULT_NONE) {
		evq__word_idle(q, r, &lr->it); /* if it was still armed */
		latch_report(lr, fault);
		return 0;
	}
	atomic_store(&lr->fault, EVQ_FAULT_NONE);
	if (!lr->waiting || was != EVQ_FAULT_NONE) {
		/* LW1; again after a fault, as whoever repaired the latch may
		 * have zeroed waiters: one count too many only costs setters
		 * a wake nobody needs, one too few would lose sets */
		evq__add(&lr->l->waiters, 1);
		lr->waiting = 1;
	}
	uint32_t v = evq__ld(&lr->l->state);
	int rc = evq__word_arm(q, r, &lr->it, (v & SET) ? v ^ SET : v,
			       !!(r->flags & EVQ_ONESHOT));
	if (rc < 0) {
		evq__sub(&lr->l->waiters, 1);
		lr->waiting = 0;
	}
	return rc;
}

static void latch_stop(struct evq *q, struct evq__reg *r, struct latch_reg *lr,
		       int detach)
{
	if (detach)
		evq__word_detach(q, r, &lr->it);
	else
		evq__word_idle(q, r, &lr->it);
	if (lr->waiting) {
		/* LW4, unless the memory is gone: then the count stays one
		 * too high, which costs setters a wake nobody needs */
		if (atomic_load(&lr->fault) != EVQ_FAULT_UNREADABLE)
			evq__sub(&lr->l->waiters, 1);
		lr->waiting = 0;
	}
}

static int latch_mod(struct evq *q, struct evq__reg *r, uint32_t events,
		     uint32_t old_flags)
{
	struct latch_reg *lr = r->ext;
	(void)events, (void)old_flags;
	if (r->flags & EVQ_DISABLED) {
		latch_stop(q, r, lr, 0);
		return 0;
	}
	return latch_arm(q, r, lr);
}

static void latch_del(struct evq *q, struct evq__reg *r)
{
	struct latch_reg *lr = r->ext;
	if (!lr)
		return;
	r->ext = NULL;
	if (!evq__forked(q))
		latch_stop(q, r, lr, 1);
	free(lr);
}

static int latch_make(struct evq *q, struct evq__add *a)
{
	struct evq_latch *l = a->arg;
	if (!latch_ok(l) || (a->flags & ~(EVQ_ONESHOT | EVQ_DISABLED)))
		return -EINVAL;
	struct latch_reg *lr = calloc(1, sizeof *lr);
	if (!lr)
		return -ENOMEM;
	evq__watch_init(&lr->it, &l->state, shared(l), latch_check);
	lr->q = q;
	lr->l = l;
	a->ext = lr;
	return 0;
}

static int latch_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct latch_reg *lr = r->ext;
	(void)a;
	lr->r = r;
	lr->tag = evq__reg_tag(r);
	/* EVQ_DISABLED: registered, watching nothing until evq_mod() */
	int rc = (r->flags & EVQ_DISABLED) ? 0 : latch_arm(q, r, lr);
	if (rc < 0)
		latch_stop(q, r, lr, 1);
	return rc;
}

const struct evq__kind evq__kind_latch = {
	.name = "latch",
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.caps = EVQ__KIND_NATIVE_WORDS,
	.posted = latch_posted,
	.del = latch_del,
	.mod = latch_mod,
	.make = latch_make,
	.start = latch_start,
};

int64_t evq_add_latch(struct evq *q, struct evq_latch *l, uint32_t flags,
		      uint64_t cookie)
{
	return evq__reg_add(q, EVQ_KIND_LATCH, flags, cookie, -1, l);
}
