/* SPDX-License-Identifier: MIT */
/*
 * slotstress.c - registration slots published by one thread while others
 * trigger them (a ThreadSanitizer stress of src/core/queue.c grow_slots() and
 * the lock-free evq_trigger()).
 *
 * One thread adds user events on a fresh queue, growing it past several
 * slot chunks (256, 512 and 1024 slots, and in one round of 8 also 2048
 * and 4096: src/internal.h), and publishes each id through an atomic as
 * soon as evq_add_user() returned.  A trigger thread triggers the newest
 * published ids at once; a prober triggers the next few ids before they
 * are published (an id is the slot index while no slot was ever freed):
 * such a trigger races with the slot (and its chunk) being made and must
 * answer 0 (the registration exists: it counts) or -ENOENT, never crash
 * or read a half-made slot.  After the adder is done both sweep all ids
 * once more.  A waiter thread sums data per cookie.  All of it runs on
 * 128 fresh queues, one after the other (32 under sanitizers): the window
 * between a slot's or chunk's making and its publication is narrow.
 * Checks: a published registration always accepts a trigger, and every
 * successful trigger is delivered exactly once (sum of data per
 * registration == its successful triggers), none lost.
 */
#include <pthread.h>
#include <sched.h>

#include "evqtest.h"

#define NREG (4096 + 512)  /* big rounds: into the sixth chunk (slot 4096) */
#define NSMALL (1024 + 64) /* the others: into the fourth (slot 1024) */
#define BIG_EVERY 8        /* one round in 8 is big */
#define WINDOW 32          /* newest published ids each trigger round */
#define AHEAD 4            /* unpublished ids probed */
#define STOP_COOKIE UINT64_MAX

static struct evq *q;
static int64_t ids[NREG];
static _Atomic int published;       /* ids[0 .. published) are valid */
static _Atomic int adding;
static _Atomic long triggered[NREG];
static long delivered[NREG];         /* the waiter's */
static _Atomic long refused, odd_rc, unknown, total_delivered;
static int64_t stop_id, first_id;
static int nreg; /* this round's */

static void *adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < nreg; i++) {
		int64_t id = evq_add_user(q, (uint64_t)i);
		CHECK(id >= 0);
		ids[i] = id;
		atomic_store_explicit(&published, i + 1, memory_order_release);
	}
	atomic_store(&adding, 0);
	return NULL;
}

static void trigger_one(int i, int64_t id, int is_published)
{
	int rc = evq_trigger(q, id);
	if (rc == 0)
		atomic_fetch_add(&triggered[i], 1);
	else if (is_published)
		atomic_fetch_add(&refused, 1);
	else if (rc != -ENOENT)
		atomic_fetch_add(&odd_rc, 1);
}

static void sweep(void)
{
	for (int i = 0; i < nreg; i++)
		trigger_one(i, ids[i], 1);
}

/* the newest published ids, each time more are published */
static void *trigger_run(void *arg)
{
	(void)arg;
	int last = 0;
	while (atomic_load(&adding)) {
		int n = atomic_load_explicit(&published, memory_order_acquire);
		if (n == last) {
			sched_yield();
			continue;
		}
		for (int i = n > WINDOW ? n - WINDOW : 0; i < n; i++)
			trigger_one(i, ids[i], 1);
		last = n;
	}
	sweep();
	return NULL;
}

/* ids of slots not handed out yet: index published onwards */
static void *prober(void *arg)
{
	(void)arg;
	while (atomic_load(&adding)) {
		int n = atomic_load_explicit(&published, memory_order_acquire);
		for (int k = 0; k < AHEAD && n + k < nreg; k++)
			trigger_one(n + k, first_id + n + k, 0);
	}
	sweep();
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	static struct evq_event ev[64];
	for (;;) {
		int n = evq_wait(q, ev, 64, -1, NULL);
		if (n < 0)
			continue;
		for (int k = 0; k < n; k++) {
			if (ev[k].cookie == STOP_COOKIE)
				return NULL;
			if (ev[k].cookie >= (uint64_t)nreg ||
			    ev[k].id != first_id + (int64_t)ev[k].cookie) {
				atomic_fetch_add(&unknown, 1);
				continue;
			}
			delivered[ev[k].cookie] += (long)ev[k].data;
			atomic_fetch_add(&total_delivered, (long)ev[k].data);
		}
	}
}

/* One fresh queue grown to n registrations.  Returns 1 if the ids were
 * the slot indices the prober guessed, and adds up what went astray. */
static int run(int n, long *want, long *lost, long *extra)
{
	nreg = n;
	q = evqt_new();
	stop_id = evq_add_user(q, STOP_COOKIE);
	CHECK(stop_id >= 0);
	/* a fresh queue hands out its slots in order: the prober's guesses */
	first_id = stop_id + 1;
	atomic_store(&published, 0);
	atomic_store(&adding, 1);
	atomic_store(&total_delivered, 0);
	for (int i = 0; i < nreg; i++) {
		atomic_store(&triggered[i], 0);
		delivered[i] = 0;
	}

	pthread_t w, a, t, p;
	CHECK(pthread_create(&w, NULL, waiter, NULL) == 0);
	CHECK(pthread_create(&t, NULL, trigger_run, NULL) == 0);
	CHECK(pthread_create(&p, NULL, prober, NULL) == 0);
	CHECK(pthread_create(&a, NULL, adder, NULL) == 0);
	pthread_join(a, NULL);
	pthread_join(t, NULL);
	pthread_join(p, NULL);

	int seq = 1;
	for (int i = 0; i < nreg; i++)
		seq &= ids[i] == first_id + i;

	long sum = 0;
	for (int i = 0; i < nreg; i++)
		sum += atomic_load(&triggered[i]);
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(&total_delivered) < sum && evqt_now(CLOCK_MONOTONIC) < dl)
		sched_yield();
	CHECK(evq_trigger(q, stop_id) == 0);
	pthread_join(w, NULL);

	int bad = -1;
	for (int i = 0; i < nreg; i++) {
		long tr = atomic_load(&triggered[i]);
		if (delivered[i] != tr && bad < 0)
			bad = i;
		*lost += delivered[i] < tr ? tr - delivered[i] : 0;
		*extra += delivered[i] > tr ? delivered[i] - tr : 0;
	}
	if (bad >= 0)
		diag("registration %d: %ld triggers, %ld delivered", bad,
		     atomic_load(&triggered[bad]), delivered[bad]);
	*want += sum;
	CHECK(evqt_roundtrip(q));
	evq_free(q);
	return seq;
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("slotstress");
	int rounds = (int)evqt_scale(128), seq = 1;
	long want = 0, lost = 0, extra = 0, regs = 0;
	for (int r = 0; r < rounds; r++) {
		int n = r % BIG_EVERY == 0 ? NREG : NSMALL;
		seq &= run(n, &want, &lost, &extra);
		regs += n;
	}
	ok(seq, "ids are slot indices on a fresh queue (the prober named the "
	   "right slots)");
	is(atomic_load(&refused), 0, "no published registration refused a trigger");
	is(atomic_load(&odd_rc), 0, "triggers of slots being made: 0 or -ENOENT only");
	ok(lost == 0 && extra == 0, "%d rounds, %ld registrations, %ld successful "
	   "triggers: %ld lost, %ld extra", rounds, regs, want, lost, extra);
	is(atomic_load(&unknown), 0, "every event names its own registration");
	return done();
}
