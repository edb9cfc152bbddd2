/* SPDX-License-Identifier: MIT */
/*
 * mask.c - event masks after gVisor's syncevent: receivers, waiters,
 * broadcasters, and evq_add_mask (a broadcaster feeding a queue).
 *
 * Every shared word is accessed with seq_cst atomics (futex.h's evq_*
 * macros on the plain fields of the public structs), so the arguments
 * below may assume one total order of those accesses, as the model does.
 *
 * Receiver and waiter (model/mask.pml: WAITER, with TIMEOUTS, and
 * WCOALESCE for notifies of one bit that coalesce; BROKEN_WAITER swaps W2
 * and W3 and loses a wakeup):
 *
 *   notifier (evq_receiver_notify)       waiter (evq_waiter_wait, bits B)
 *   N0 if pending holds all bits: done   W1 got = pending & B; if got: done
 *      (one load, no callback)           W2 state = SLEEPING
 *   N1 old = fetch_or(pending, bits);    W3 got = pending & B; if got: done
 *      if no bit is new: done            W4 futex_wait(state, SLEEPING)
 *   N2 callback(new bits); a waiter's:      (sleeps only while the word is
 *      if state == SLEEPING and             still SLEEPING; kernel checks)
 *      exchange(state, AWAKE) ==         W5 go to W2 (after a wake, EAGAIN,
 *      SLEEPING: futex_wake(state, 1)       EINTR); leaving: state = AWAKE
 *
 * No lost wakeup: N1 precedes N2 and W2 precedes W3.  If W3 misses the
 * bit, W3 came before N1, so N2 comes after W2 and sees SLEEPING (or a
 * notifier before it already took SLEEPING and wakes the waiter): it
 * stores AWAKE, so W4 either finds the word changed or is woken.  N0 and
 * the "no bit is new" exit are safe because whoever made those bits new
 * runs N2 itself.  A wake that arrives after the waiter left (it timed out
 * or saw the bit at W3) only makes a later W4 return early: W5 re-checks.
 *
 * Broadcaster (model/mask.pml: GRACE, ONE_FLIP finds the straggler; GROW,
 * the table's growth: EAGERFREE, LATEPUBLISH and EARLYPUBLISH fail):
 * subscriptions live in a table of slots {receiver, mask}; notifiers read
 * it without a lock, subscribe/unsubscribe change it under b->lock.
 *
 *   notifier (evq_bcast_notify)          unsubscriber (under b->lock)
 *   G1 p = phase & 1; active[p]++        U1 slot.receiver = NULL
 *   G2 t = table; for each slot < used:  U2 twice: p = phase; phase = p+1;
 *      r = slot.receiver; if r and          wait until active[p & 1] == 0
 *      slot.mask & bits: notify r        U3 slot free for reuse; free the
 *   G3 active[p]--; if it was the last      tables retired before U2
 *      and the unsubscriber sleeps: wake
 *
 * No callback after unsubscribe: a notifier that read the receiver before
 * U1 did G1 before that, and counted itself in the epoch current then.
 * The first flip waits for that epoch to drain -- unless the notifier read
 * the phase before an *earlier* flip and counted itself late, in the epoch
 * the first flip does not wait for; the second flip waits for that one.
 * (One flip is not enough: the model finds the straggler.)  A notifier
 * that counts itself after U2 saw its epoch empty reads the slot after U1.
 * No lost notification: a receiver subscribed before G2 starts is in the
 * table G2 reads (tables grow by copying under the lock, and the new one is
 * published before the lock is released).  Notify never waits, allocates or
 * takes b->lock; unsubscribe waits only for notifies already running.
 *
 * Queue registrations (evq_add_mask; model/mask.pml: QUEUE and COALESCE,
 * BROKEN_QUEUE acks last and loses a notify, LATECLEAR drains val before
 * the queued bit): a receiver whose callback
 * forwards the new bits into the registration's lock-free post path:
 *   Q1 ack(bits) on the receiver, so the next notify of a bit runs Q again
 *   Q2 if r->val holds all bits: done (a forwarder did Q3 and its Q4 will
 *      post, or the drain has not taken val yet)
 *   Q3 fetch_or(r->val, bits)   Q4 evq__post(q, r, tag, 0)
 * Q1 comes first: acked after Q4, the bit would still look pending to a
 * notify that comes after the drain took val; its N0 would return, and
 * that notify would be lost.  The core
 * folds val into pend_data with OR (posted hook) and delivers it as data.
 * The del hook (evq_del, evq_free; under q->lock) unsubscribes, which waits
 * out notifiers (they never take q->lock: evq__post is lock-free), so no
 * callback touches the registration afterwards.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "futex.h"
#include "internal.h"

/* A point between two steps of a protocol above.  Empty in the library;
 * tests/mask_sched.c compiles this file with a hook that yields or sleeps
 * there at random, to widen every race window the model explores. */
#ifndef EVQ_MASK_STEP
#define EVQ_MASK_STEP(step) ((void)0)
#endif

/* ------------------------------------------------------------------ */
/* Receivers                                                            */
/* ------------------------------------------------------------------ */

static int receiver_ok(const struct evq_receiver *r)
{
	return r && evq__ld(&r->magic) == EVQ_RECEIVER_MAGIC;
}

int evq_receiver_init(struct evq_receiver *r, evq_receiver_fn *fn, void *arg)
{
	if (!r)
		return -EINVAL;
	evq__st(&r->magic, 0);
	evq__st(&r->pending, 0);
	r->callback = fn;
	r->arg = arg;
	r->reserved = 0;
	evq__st(&r->magic, EVQ_RECEIVER_MAGIC);
	return 0;
}

/* N0..N2; r is valid, bits != 0. */
static int notify(struct evq_receiver *r, evq_mask_t bits)
{
	evq_mask_t old = evq__ld(&r->pending);
	if ((old & bits) == bits)
		return 0;                               /* N0 */
	EVQ_MASK_STEP(N1);
	old = evq__or(&r->pending, bits);                /* N1 */
	evq_mask_t fresh = bits & ~old;
	if (!fresh)
		return 0;
	EVQ_MASK_STEP(N2);
	if (r->callback) {
		int saved = errno; /* notify is callable from signal handlers */
		r->callback(r, fresh, r->arg);          /* N2 */
		errno = saved;
	}
	return 1;
}

int evq_receiver_notify(struct evq_receiver *r, evq_mask_t bits)
{
	if (!receiver_ok(r) || !bits)
		return -EINVAL;
	return notify(r, bits);
}

evq_mask_t evq_receiver_pending(const struct evq_receiver *r)
{
	return r ? evq__ld(&r->pending) : 0;
}

evq_mask_t evq_receiver_ack(struct evq_receiver *r, evq_mask_t bits)
{
	if (!r)
		return 0;
	/* nothing to clear: no atomic write (a poll loop acks often) */
	if (!(evq__ld(&r->pending) & bits))
		return 0;
	return evq__and(&r->pending, ~bits) & bits;
}

/* ------------------------------------------------------------------ */
/* Waiters                                                              */
/* ------------------------------------------------------------------ */

#define AWAKE 0u
#define SLEEPING 1u

/* N2 of a waiter: runs on the notifier's thread. */
static void waiter_wake(struct evq_receiver *r, evq_mask_t bits, void *arg)
{
	struct evq_waiter *w = arg;
	(void)r, (void)bits;
	/* the load spares an exchange (a cache-line write) when nobody sleeps */
	if (evq__ld(&w->state) != SLEEPING)
		return;
	EVQ_MASK_STEP(N2_exchange);
	if (__atomic_exchange_n(&w->state, AWAKE, __ATOMIC_SEQ_CST) == SLEEPING)
		evq__futex_wake(&w->state, 1, 0);
}

int evq_waiter_init(struct evq_waiter *w)
{
	if (!w)
		return -EINVAL;
	evq__st(&w->state, AWAKE);
	w->reserved = 0;
	return evq_receiver_init(&w->receiver, waiter_wake, w);
}

static int waiter_ok(const struct evq_waiter *w)
{
	return w && receiver_ok(&w->receiver) &&
	       w->receiver.callback == waiter_wake && w->receiver.arg == w;
}

/* W2..W5 until a bit or the deadline (NULL: none). */
static evq_mask_t waiter_sleep(struct evq_waiter *w, evq_mask_t bits,
			       const struct timespec *deadline)
{
	evq_mask_t got;
	for (;;) {
		evq__st(&w->state, SLEEPING);                        /* W2 */
		EVQ_MASK_STEP(W3);
		got = evq__ld(&w->receiver.pending) & bits;          /* W3 */
		if (got)
			break;
		EVQ_MASK_STEP(W4);
		int rc = evq__futex_wait_cancel(&w->state, SLEEPING, /* W4 */
					       deadline, 0);
		got = evq__ld(&w->receiver.pending) & bits;          /* W5 */
		if (got)
			break;
		if (rc == -ETIMEDOUT) {
			got = EVQ_MASK_TIMEOUT;
			break;
		}
	}
	return got;
}

/* Cancelled in W4: leave as the wait would. */
static void waiter_cancelled(void *arg)
{
	struct evq_waiter *w = arg;
	evq__st(&w->state, AWAKE);
}

evq_mask_t evq_waiter_wait(struct evq_waiter *w, evq_mask_t bits,
			   int64_t timeout_ns)
{
	if (!waiter_ok(w) || !bits)
		return 0;
	pthread_testcancel(); /* a cancellation point, also when bits wait */
	evq_mask_t got = evq__ld(&w->receiver.pending) & bits;      /* W1 */
	if (got)
		return got;
	if (timeout_ns == 0)
		return EVQ_MASK_TIMEOUT;
	struct timespec dl;
	const struct timespec *deadline = evq__deadline_or_forever(timeout_ns, &dl);
	evq_mask_t got_[1];
	pthread_cleanup_push(waiter_cancelled, w);
	got_[0] = waiter_sleep(w, bits, deadline);
	pthread_cleanup_pop(0);
	evq__st(&w->state, AWAKE);
	return got_[0];
}

/* ------------------------------------------------------------------ */
/* Broadcasters                                                         */
/* ------------------------------------------------------------------ */

/* A subscription id is (gen + 1) << 32 | slot: >= 2^32, as registration
 * ids are.  A slot's gen grows at each unsubscribe; a slot whose next id
 * would pass GEN_LAST is retired (never reused), so an id is never handed
 * out twice and a stale one always gets -ENOENT. */
#define SLOT_BITS EVQ_IDX_BITS
#define MAX_SLOTS (1u << SLOT_BITS)
#define GEN_LAST 0x7fffffffu   /* highest gen + 1 an id carries */
#define FIRST_CAP 8u
#define DRAINING 0x80000000u   /* active[]: the unsubscriber sleeps */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

struct slot {
	struct evq_receiver *recv; /* atomic; NULL: free or unsubscribing */
	evq_mask_t mask;           /* atomic; stored before recv */
	uint32_t gen;              /* under b->lock */
	int32_t next_free;         /* under b->lock */
};

struct table {
	uint32_t cap;
	uint32_t used;             /* atomic; slots [0, used) were handed out */
	int32_t free_head;         /* under b->lock: LIFO of freed slots */
	struct table *retired_next;
	struct slot slot[];
};

static int bcast_ok(const struct evq_bcast *b)
{
	return b && evq__ld(&b->magic) == EVQ_BCAST_MAGIC;
}

/* b->lock: a three-state futex mutex (0 free, 1 held, 2 held, contended);
 * only subscribe/unsubscribe/destroy take it. */
static void wlock(uint32_t *l)
{
	uint32_t c = 0;
	if (evq__cas(l, &c, 1))
		return;
	if (c != 2)
		c = __atomic_exchange_n(l, 2, __ATOMIC_SEQ_CST);
	while (c != 0) {
		evq__futex_wait(l, 2, NULL, 0);
		c = __atomic_exchange_n(l, 2, __ATOMIC_SEQ_CST);
	}
}

static void wunlock(uint32_t *l)
{
	if (__atomic_exchange_n(l, 0, __ATOMIC_SEQ_CST) == 2)
		evq__futex_wake(l, 1, 0);
}

int evq_bcast_init(struct evq_bcast *b)
{
	if (!b)
		return -EINVAL;
	evq__st(&b->magic, 0);
	evq__st(&b->table, NULL);
	b->retired = NULL;
	evq__st(&b->lock, 0);
	evq__st(&b->phase, 0);
	evq__st(&b->active[0], 0);
	evq__st(&b->active[1], 0);
	evq__st(&b->count, 0);
	evq__st(&b->magic, EVQ_BCAST_MAGIC);
	return 0;
}

static void free_retired(struct evq_bcast *b)
{
	struct table *t = b->retired;
	b->retired = NULL;
	while (t) {
		struct table *next = t->retired_next;
		free(t);
		t = next;
	}
}

void evq_bcast_destroy(struct evq_bcast *b)
{
	if (!bcast_ok(b))
		return;
	wlock(&b->lock);
	evq__st(&b->magic, 0);
	free(evq__ld(&b->table));
	evq__st(&b->table, NULL);
	free_retired(b);
	evq__st(&b->count, 0);
	wunlock(&b->lock);
}

/* A table with room for one more slot: the current one, or a copy twice
 * its size (the old one is retired: notifiers may still be reading it).
 * Under b->lock. */
static struct table *room(struct evq_bcast *b)
{
	struct table *t = evq__ld(&b->table);
	if (t && (t->free_head >= 0 || evq__ld(&t->used) < t->cap))
		return t;
	uint32_t cap = t ? t->cap * 2 : FIRST_CAP;
	if (t && t->cap >= MAX_SLOTS)
		return NULL;
	struct table *n = calloc(1, sizeof *n + cap * sizeof n->slot[0]);
	if (!n)
		return NULL;
	n->cap = cap;
	n->free_head = -1;
	if (t) {
		/* full, so no free list to copy; no notifier writes slots */
		for (uint32_t i = 0; i < t->cap; i++) {
			n->slot[i].mask = evq__ld(&t->slot[i].mask);
			n->slot[i].recv = evq__ld(&t->slot[i].recv);
			n->slot[i].gen = t->slot[i].gen;
		}
		n->used = t->cap;
		t->retired_next = b->retired;
		b->retired = t;
	}
	evq__st(&b->table, n); /* published: entries complete */
	return n;
}

int64_t evq_bcast_subscribe(struct evq_bcast *b, struct evq_receiver *r,
			    evq_mask_t mask)
{
	if (!bcast_ok(b) || !receiver_ok(r) || !mask)
		return -EINVAL;
	wlock(&b->lock);
	struct table *t = evq__ld(&b->table);
	int rc = t && t->cap >= MAX_SLOTS && t->free_head < 0 &&
			 evq__ld(&t->used) >= t->cap ? -ENOSPC : -ENOMEM;
	t = room(b);
	if (!t) {
		wunlock(&b->lock);
		return rc;
	}
	uint32_t i;
	if (t->free_head >= 0) {
		i = (uint32_t)t->free_head;
		t->free_head = t->slot[i].next_free;
	} else {
		i = evq__ld(&t->used);
	}
	struct slot *s = &t->slot[i];
	evq__st(&s->mask, mask);
	evq__st(&s->recv, r);
	if (i == evq__ld(&t->used))
		evq__st(&t->used, i + 1);
	evq__add(&b->count, 1);
	int64_t id = (int64_t)(s->gen + 1) << 32 | i;
	wunlock(&b->lock);
	return id;
}

/* Waits until no notifier counts itself in epoch p. Under b->lock. */
static void drain(struct evq_bcast *b, uint32_t p)
{
	uint32_t *a = &b->active[p];
	for (int spin = 0;; spin++) {
		uint32_t v = evq__ld(a);
		if ((v & ~DRAINING) == 0)
			break;
		if (spin < 64) { /* notifies are short: try before sleeping */
			cpu_relax();
			continue;
		}
		if (!(v & DRAINING) && !evq__cas(a, &v, v | DRAINING))
			continue;
		evq__futex_wait(a, v | DRAINING, NULL, 0);
	}
	evq__and(a, ~DRAINING);
}

/* U2: afterwards no notifier still uses anything it read before U2. */
static void grace(struct evq_bcast *b)
{
	for (int k = 0; k < 2; k++) {
		uint32_t p = evq__ld(&b->phase);
		evq__st(&b->phase, p + 1);
		EVQ_MASK_STEP(U2_drain);
		drain(b, p & 1);
	}
}

int evq_bcast_unsubscribe(struct evq_bcast *b, int64_t id)
{
	if (!bcast_ok(b))
		return -EINVAL;
	if (id < ((int64_t)1 << 32) || (uint32_t)id >= MAX_SLOTS)
		return -ENOENT;
	uint32_t i = (uint32_t)id, gen = (uint32_t)(id >> 32);
	wlock(&b->lock);
	struct table *t = evq__ld(&b->table);
	if (!t || i >= evq__ld(&t->used) || !evq__ld(&t->slot[i].recv) ||
	    t->slot[i].gen + 1 != gen) {
		wunlock(&b->lock);
		return -ENOENT;
	}
	struct slot *s = &t->slot[i];
	evq__st(&s->recv, NULL);                                 /* U1 */
	EVQ_MASK_STEP(U2);
	grace(b);                                               /* U2 */
	s->gen++;                                               /* U3 */
	if (s->gen + 1 <= GEN_LAST) { /* else retired: never reused */
		s->next_free = t->free_head;
		t->free_head = (int32_t)i;
	}
	free_retired(b);
	evq__sub(&b->count, 1);
	wunlock(&b->lock);
	return 0;
}

int evq_bcast_notify(struct evq_bcast *b, evq_mask_t bits)
{
	if (!bcast_ok(b) || !bits)
		return -EINVAL;
	/* nobody subscribed: a subscribe that returned before us is counted */
	if (evq__ld(&b->count) == 0)
		return 0;
	int saved = errno;
	uint32_t p = evq__ld(&b->phase) & 1;                     /* G1 */
	EVQ_MASK_STEP(G1_count);
	evq__add(&b->active[p], 1);
	struct table *t = evq__ld(&b->table);                    /* G2 */
	uint32_t n = t ? evq__ld(&t->used) : 0;
	for (uint32_t i = 0; i < n; i++) {
		struct evq_receiver *r = evq__ld(&t->slot[i].recv);
		if (!r)
			continue;
		evq_mask_t m = evq__ld(&t->slot[i].mask) & bits;
		EVQ_MASK_STEP(G2_notify);
		if (m)
			notify(r, m);
	}
	if (evq__sub(&b->active[p], 1) == (DRAINING | 1))        /* G3 */
		evq__futex_wake(&b->active[p], 1, 0);
	errno = saved;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Queue registrations                                                  */
/* ------------------------------------------------------------------ */

struct mask_reg {
	struct evq_receiver recv;   /* subscribed to b; callback forward() */
	struct evq *q;
	struct evq__reg *r;
	struct evq_bcast *b;
	uint32_t tag;               /* r's ctl tag when registered */
	int64_t sub;                 /* subscription id, -1 if none */
	_Atomic int dead;           /* forked child dropped the queue */
};

/* Q1..Q4, on the notifier's thread. */
static void forward(struct evq_receiver *rc, evq_mask_t bits, void *arg)
{
	struct mask_reg *m = arg;
	if (atomic_load_explicit(&m->dead, memory_order_relaxed))
		return;
	evq_receiver_ack(rc, bits);                             /* Q1 */
	EVQ_MASK_STEP(Q2);
	struct evq__reg *r = m->r;
	if ((atomic_load(&r->val) & bits) == bits)              /* Q2 */
		return;
	EVQ_MASK_STEP(Q3);
	atomic_fetch_or(&r->val, bits);                         /* Q3 */
	EVQ_MASK_STEP(Q4);
	evq__post(m->q, r, m->tag, 0);                          /* Q4 */
}

static void mask_posted(struct evq *q, struct evq__reg *r, uint64_t count,
			uint64_t bits)
{
	(void)q, (void)count; /* counts carry nothing: bits are the event */
	r->pend_data |= bits;
}

static void mask_del(struct evq *q, struct evq__reg *r)
{
	struct mask_reg *m = r->ext;
	r->ext = NULL;
	if (!m)
		return;
	if (evq__forked(q)) {
		/* The broadcaster's lock or a notifier may have been caught
		 * mid-way by fork(): never wait in the child.  The child's copy
		 * of the subscription stays, silenced, and m is leaked. */
		atomic_store(&m->dead, 1);
		return;
	}
	if (m->sub >= 0)
		evq_bcast_unsubscribe(m->b, m->sub);
	free(m);
}

/* evq_requeue: bits OR. */
static void mask_merge(struct evq__reg *r, const struct evq_event *ev)
{
	r->pend_data |= ev->data;
	r->pend_events |= ev->events;
}

struct mask_add {
	struct evq_bcast *b;
	evq_mask_t mask;
};

static int mask_make(struct evq *q, struct evq__add *a)
{
	struct mask_add *ma = a->arg;
	if (!bcast_ok(ma->b) || !ma->mask)
		return -EINVAL;
	struct mask_reg *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	evq_receiver_init(&m->recv, forward, m);
	m->sub = -1;
	m->b = ma->b;
	m->q = q;
	a->ext = m;
	return 0;
}

static int mask_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct mask_reg *m = r->ext;
	struct mask_add *ma = a->arg;
	(void)q;
	m->r = r;
	m->tag = evq__reg_tag(r);
	int64_t sub = evq_bcast_subscribe(ma->b, &m->recv, ma->mask);
	if (sub < 0)
		return (int)sub;
	m->sub = sub;
	return 0;
}

const struct evq__kind evq__kind_mask = {
	.name = "mask",
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.posted = mask_posted,
	.del = mask_del,
	.merge = mask_merge,
	.make = mask_make,
	.start = mask_start,
};

int64_t evq_add_mask(struct evq *q, struct evq_bcast *b, evq_mask_t mask,
		 uint64_t cookie)
{
	struct mask_add ma = { b, mask };
	return evq__reg_add(q, EVQ_KIND_MASK, 0, cookie, -1, &ma);
}
