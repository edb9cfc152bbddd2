/* SPDX-License-Identifier: MIT */
/*
 * word.c - memory words as events: evq_add_word/evq_mod_word (through the
 * backend or the futex watcher, watch.c), evq_wake, evq_waitv.
 *
 * Protocol (model/word.pml, which changes the word twice and re-arms;
 * watcher steps X1..X5 are in watch.c):
 *   waker                         registration, in the watcher thread
 *   WO1 store the new value       X3 v = *addr; if v != expected: post v
 *   WO2 futex_wake(addr)             and expect v from now on (ONESHOT:
 *                                    go idle)
 *                                 X5 futex_waitv sleeps only while *addr
 *                                    == expected (checked atomically by
 *                                    the kernel against WO1/WO2)
 * A wake between X3 and X5 finds *addr != expected at X5, which returns at
 * once and X3 runs again: no change followed by a wake is missed.  The
 * registration is one waiter of the word: a wake-one may reach it alone.
 * A wake it took but no longer wants is passed on: by the watcher (X2) if
 * the registration went idle or was deleted first, by word_del (WD1) if it
 * was deleted with its event undelivered.
 *
 * Every value is a valid value, so a word can only be bad by not being
 * there: a futex call on it fails with -EFAULT (unmapped, which breaks the
 * contract, or a shared file truncated by another process).  The watcher
 * or backend then calls check() with EVQ_WATCH_FAULT: the registration
 * posts one EVQ_ERR event, loads nothing and goes idle until evq_mod() or
 * evq_mod_word() re-arms it, which asks the kernel again.
 */
#include <errno.h>
#include <stdlib.h>

#include "futex.h"
#include "core/watch.h"

struct word_reg {
	struct evq__watch_item it; /* first: a native backend reads it */
	struct evq *q;
	struct evq__reg *r;
	uint32_t tag;             /* ctl tag of r at registration */
	_Atomic uint32_t seen;    /* latest value reported (watcher) or the
				     expected value set by add */
	int has_pending;          /* (q->lock) an event folded, undelivered */
	int has_next;             /* (q->lock) evq_mod_word() gave...  */
	uint32_t next_expected;   /* (q->lock) ...the value to expect next */
};

#define WORD_FLAGS (EVQ_SHARED | EVQ_ONESHOT | EVQ_DISABLED)
/* r->val: the core's bits word (EVQ_ERR, OR-ed in by evq__watch_report)
 * in the low half; the value posted last in the high half, with
 * WORD_VALUE set while a drain has not taken it */
#define WORD_VALUE (1ull << 31)

/* X3, in the watcher thread. */
static int word_check(struct evq__watch_item *it, int woken)
{
	struct word_reg *w = (struct word_reg *)it;
	if (woken == EVQ_WATCH_FAULT) {
		evq__watch_report(w->q, w->r, w->tag); /* and load nothing */
		return 0;
	}
	uint32_t v = evq__ld(it->addr);
	if (v == it->expected)
		return 1;                         /* X5 again */
	atomic_store(&w->seen, v);
	/* The value travels with its post (the drain takes r->val with the
	 * count): a drain that takes an earlier post's count with this value
	 * leaves this post's count without one, instead of reporting v a
	 * second time. */
	uint64_t c = atomic_load(&w->r->val);
	while (!atomic_compare_exchange_weak(&w->r->val, &c,
					     (c & (WORD_VALUE - 1)) | WORD_VALUE |
					     (uint64_t)v << 32))
		;
	evq__post(w->q, w->r, w->tag, 1);
	if (it->oneshot)
		return 0;
	it->expected = v;
	return 1;
}

/* Drained posts: data = the latest value posted (a count without one was
 * reported by an earlier drain); bits: EVQ_ERR (the word faulted), merged
 * with a change still pending. */
static void word_posted(struct evq *q, struct evq__reg *r, uint64_t count,
			uint64_t bits)
{
	struct word_reg *w = r->ext;
	(void)q, (void)count;
	if (w && (bits & WORD_VALUE)) {
		r->pend_data = bits >> 32;
		w->has_pending = 1;
	}
	if (bits & EVQ_ERR)
		r->pend_events |= EVQ_ERR;
}

static void word_delivered(struct evq *q, struct evq__reg *r)
{
	struct word_reg *w = r->ext;
	(void)q;
	if (w)
		w->has_pending = 0;
}

static void word_del(struct evq *q, struct evq__reg *r)
{
	struct word_reg *w = r->ext;
	if (!w)
		return;
	if (!evq__forked(q)) { /* a forked child has no watcher threads */
		evq__word_detach(q, r, &w->it);
		/* The wake that made the undelivered event may have been meant
		 * for another waiter too (wake-one): pass one on.  At worst a
		 * spurious wake, which every futex waiter tolerates. */
		if (w->has_pending || (atomic_load(&r->ctl) & EVQ_CTL_COUNT))
			evq__futex_wake(w->it.addr, 1, w->it.shared);  /* WD1 */
	}
	r->ext = NULL;
	free(w);
}

/* evq_mod(): disabling stops the wait; enabling (or re-enabling a fired
 * oneshot) waits again for a change from the last value seen. */
static int word_mod(struct evq *q, struct evq__reg *r, uint32_t events,
		    uint32_t old_flags)
{
	struct word_reg *w = r->ext;
	(void)events, (void)old_flags;
	if (r->flags & EVQ_DISABLED) {
		evq__word_idle(q, r, &w->it);
		return 0;
	}
	uint32_t expect = w->has_next ? w->next_expected : atomic_load(&w->seen);
	w->has_next = 0;
	return evq__word_arm(q, r, &w->it, expect, !!(r->flags & EVQ_ONESHOT));
}

/* evq_requeue: the value given back is the latest one. */
static void word_merge(struct evq__reg *r, const struct evq_event *ev)
{
	r->pend_data = ev->data;
	r->pend_events |= ev->events;
}

struct word_add {
	uint32_t *addr;
	uint32_t expected;
};

static int word_make(struct evq *q, struct evq__add *a)
{
	struct word_add *wa = a->arg;
	if (!evq__word_ok(wa->addr) || (a->flags & ~WORD_FLAGS))
		return -EINVAL;
	struct word_reg *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	evq__watch_init(&w->it, wa->addr, !!(a->flags & EVQ_SHARED), word_check);
	w->q = q;
	a->ext = w;
	return 0;
}

static int word_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct word_reg *w = r->ext;
	struct word_add *wa = a->arg;
	w->r = r;
	w->tag = evq__reg_tag(r);
	atomic_store(&w->seen, wa->expected);
	if (r->flags & EVQ_DISABLED)
		return 0;
	return evq__word_arm(q, r, &w->it, wa->expected, !!(r->flags & EVQ_ONESHOT));
}

const struct evq__kind evq__kind_word = {
	.name = "word",
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.caps = EVQ__KIND_NATIVE_WORDS,
	.posted = word_posted,
	.del = word_del,
	.delivered = word_delivered,
	.mod = word_mod,
	.merge = word_merge,
	.make = word_make,
	.start = word_start,
};

int64_t evq_add_word(struct evq *q, uint32_t *addr, uint32_t expected,
		 uint32_t flags, uint64_t cookie)
{
	struct word_add wa = { addr, expected };
	return evq__reg_add(q, EVQ_KIND_WORD, flags, cookie, -1, &wa);
}

int evq_mod_word(struct evq *q, int64_t id, uint32_t expected, uint32_t flags)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	if (flags & ~WORD_FLAGS)
		return -EINVAL;
	evq__lock(q);
	struct evq__reg *r;
	/* -ENOENT: no such live registration; -EINVAL: not a word */
	int rc = evq__reg_get_kind(q, id, EVQ_KIND_WORD, &r);
	if (rc == 0 && (flags & EVQ_SHARED) != (r->flags & EVQ_SHARED)) {
		rc = -EINVAL;
	} else if (rc == 0) {
		struct word_reg *w = r->ext;
		w->has_next = 1;
		w->next_expected = expected;
		rc = 1;
	}
	evq__unlock(q);
	if (rc <= 0)
		return rc;
	/* The core changes the flags and calls word_mod(), which re-arms
	 * with next_expected. */
	return evq_mod(q, id, 0, flags & ~EVQ_SHARED);
}

int evq_wake(uint32_t *addr, int n, uint32_t flags)
{
	if (!evq__word_ok(addr) || n < 1 || (flags & ~EVQ_SHARED))
		return -EINVAL;
	return evq__futex_wake(addr, n, !!(flags & EVQ_SHARED));  /* WO2 */
}

struct waitv_sleep {
	const struct futex_waitv *v;
	int n;
	int rc;
};

/* Cancelled in futex_waitv: it may have taken a FUTEX_WAKE(1) meant for
 * another waiter of one of the words; pass one on for each (a spurious
 * wakeup at worst), as the watcher does (X2). */
static void waitv_cancelled(void *arg)
{
	struct waitv_sleep *c = arg;
	for (int i = 0; i < c->n; i++)
		evq__futex_wake((uint32_t *)(uintptr_t)c->v[i].uaddr, 1,
			       !(c->v[i].flags & FUTEX2_PRIVATE));
}

/* futex_waitv as a cancellation point. */
static int waitv_sleep(struct futex_waitv *v, int n, const struct timespec *tsp)
{
	struct waitv_sleep c = { v, n, 0 };
	pthread_cleanup_push(waitv_cancelled, &c);
	int old = evq__cancel_async();
	c.rc = evq__futex_waitv(v, (unsigned)n, tsp);
	evq__cancel_deferred(old);
	pthread_cleanup_pop(0);
	return c.rc;
}

int evq_waitv(const struct evq_waitv *words, int n, int64_t timeout_ns,
	      uint32_t flags)
{
	struct futex_waitv v[EVQ_WAITV_MAX];
	if (!words || n < 1 || (flags & ~EVQ_ABSTIME))
		return -EINVAL;
	if (n > EVQ_WAITV_MAX)
		return -E2BIG;
	for (int i = 0; i < n; i++) {
		if (!evq__word_ok(words[i].addr) || (words[i].flags & ~EVQ_SHARED))
			return -EINVAL;
		v[i] = (struct futex_waitv){
			.val = words[i].expected,
			.uaddr = (uintptr_t)words[i].addr,
			.flags = evq__waitv_flags(!!(words[i].flags & EVQ_SHARED)) };
	}
	struct timespec ts, *tsp = NULL;
	if (flags & EVQ_ABSTIME) {
		if (timeout_ns < 0)
			return -EINVAL;
		ts.tv_sec = (time_t)(timeout_ns / EVQ_NSEC_PER_SEC);
		ts.tv_nsec = (long)(timeout_ns % EVQ_NSEC_PER_SEC);
		tsp = &ts;
	} else if (timeout_ns >= 0) {
		ts = evq__deadline(timeout_ns);
		tsp = &ts;
	}
	pthread_testcancel(); /* a cancellation point, also when words differ */
	int rc = waitv_sleep(v, n, tsp);
	if (rc == -EAGAIN) {
		/* some word did not hold its value: report the first one */
		for (int i = 0; i < n; i++)
			if (evq__ld(words[i].addr) != words[i].expected)
				return i;
		return 0; /* it changed back already: a spurious wake */
	}
	return rc;
}
