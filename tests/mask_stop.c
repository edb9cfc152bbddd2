/* SPDX-License-Identifier: MIT */
/*
 * mask_stop.c - a mask notifier stopped at each point of its protocol
 * (src/kinds/mask.c: G1/G2 of the broadcaster, N0..N2 of the receiver, Q1..Q4 of
 * a queue registration's callback) while other notifies go on and the
 * queue is waited on.  Like tests/mask_sched.c, this compiles its own copy
 * of src/kinds/mask.c with a hook at every step boundary (EVQ_MASK_STEP), plus
 * one right after Q4's post returned ("Q4_done", through evq__post); the
 * hook parks the notifier thread at the one point chosen, until released.
 * Every point, deterministically:
 *
 *  coalesce: the parked thread notifies bit 0 of a queue's registration.
 *    While it is parked, another thread notifies bit 1: it is delivered
 *    (a parked notifier holds up nobody).  Whatever else is deliverable is
 *    collected; then bit 0 is notified again, the parked thread released:
 *    bit 0 must be delivered by a wait that began after that second notify
 *    began - a notify that coalesces with one in flight is never lost (an
 *    ack moved after the post, Q1 after Q4, loses exactly this one).  No
 *    bit is delivered more often than it was notified, and none that was
 *    not.
 *  delete: the parked thread notifies; another thread calls evq_del() on
 *    the registration (it waits for the notifier to leave, in the
 *    broadcaster's grace period, unless the notifier stopped before
 *    counting itself); the notifier is released; after evq_del() returned,
 *    no event of the registration is ever delivered (a sentinel user event
 *    triggered afterwards is waited for).
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

static void stop_point(const char *step);
#define EVQ_MASK_STEP(step) stop_point(#step)
/* forward()'s Q4 goes through test_post(), which adds the Q4_done point */
#define evq__post(q, r, tag, count) test_post(q, r, tag, count)
#include "../src/kinds/mask.c"
#undef evq__post
int evq__post(struct evq *q, struct evq__reg *r, uint32_t tag, uint64_t count);

#include "evqtest.h"

static const char *const points[] = { "G1_count", "G2_notify", "N1", "N2",
				      "Q2", "Q3", "Q4", "Q4_done" };
#define NPOINTS (int)(sizeof points / sizeof points[0])

#define BIT0 EVQ_MASK_APP_BIT(0)
#define BIT1 EVQ_MASK_APP_BIT(1)
#define SENTINEL 77

static _Thread_local int am_parker;
static _Atomic(const char *) target;  /* where the parker stops, once */
static _Atomic int parked, release_it;
static _Atomic int drain_seen;        /* an unsubscriber reached U2_drain */

static int64_t deadline(void)
{
	return evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
}

static void pause_a_little(void)
{
	struct timespec ts = { 0, 20000 };
	nanosleep(&ts, NULL);
}

static void stop_point(const char *step)
{
	if (strcmp(step, "U2_drain") == 0)
		atomic_store(&drain_seen, 1);
	if (!am_parker)
		return;
	const char *t = atomic_load(&target);
	if (!t || strcmp(t, step) != 0)
		return;
	atomic_store(&target, NULL); /* once per notify */
	atomic_store(&parked, 1);
	int64_t dl = deadline();
	while (!atomic_load(&release_it) && evqt_now(CLOCK_MONOTONIC) < dl)
		pause_a_little();
	atomic_store(&release_it, 0);
	atomic_store(&parked, 0);
}

int test_post(struct evq *q, struct evq__reg *r, uint32_t tag, uint64_t count)
{
	int rc = evq__post(q, r, tag, count);
	stop_point("Q4_done");
	return rc;
}

/* ---- the parker: a thread that notifies on request ---- */

static struct evq_bcast bc;
static _Atomic uint64_t request;   /* bits to notify; 0 when done */
static _Atomic int quit, notify_errors;

static void *parker_run(void *arg)
{
	(void)arg;
	am_parker = 1;
	for (;;) {
		uint64_t bits;
		while ((bits = atomic_load(&request)) == 0) {
			if (atomic_load(&quit))
				return NULL;
			pause_a_little();
		}
		if (evq_bcast_notify(&bc, bits) != 0)
			atomic_fetch_add(&notify_errors, 1);
		atomic_store(&request, 0);
	}
}

/* Starts the parker's notify of bits, stopping at point; returns 1 once it
 * is parked there (0: it never got there in time). */
static int park_at(const char *point, evq_mask_t bits)
{
	atomic_store(&target, point);
	atomic_store(&request, bits);
	int64_t dl = deadline();
	while (!atomic_load(&parked) && evqt_now(CLOCK_MONOTONIC) < dl)
		pause_a_little();
	return atomic_load(&parked);
}

static int unpark(void)
{
	atomic_store(&release_it, 1);
	int64_t dl = deadline();
	while (atomic_load(&request) != 0 && evqt_now(CLOCK_MONOTONIC) < dl)
		pause_a_little();
	return atomic_load(&request) == 0;
}

/* ---- the queue side ---- */

static struct evq *q;
static long bad_events;

/* One evq_wait; ORs the bits of registration id into *got and counts each
 * bit's deliveries.  Returns the number of events. */
static int collect(int64_t id, int64_t timeout, evq_mask_t *got, int counts[2],
		   int *sentinel)
{
	struct evq_event ev[8];
	int n = evqt_wait(q, ev, 8, timeout);
	CHECK(n >= 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].cookie == SENTINEL && ev[i].kind == EVQ_KIND_USER) {
			if (sentinel)
				*sentinel = 1;
			continue;
		}
		if (ev[i].id != id || ev[i].kind != EVQ_KIND_MASK || ev[i].data == 0 ||
		    (ev[i].data & ~(BIT0 | BIT1))) {
			if (bad_events++ == 0)
				diag("unexpected event: id %#llx (registration %#llx), kind %u, "
				     "data %#llx", (unsigned long long)ev[i].id,
				     (unsigned long long)id, ev[i].kind,
				     (unsigned long long)ev[i].data);
			continue;
		}
		*got |= ev[i].data;
		counts[0] += !!(ev[i].data & BIT0);
		counts[1] += !!(ev[i].data & BIT1);
	}
	return n;
}

/* Waits (bounded) until bits are among those delivered. */
static int await_bits(int64_t id, evq_mask_t bits, evq_mask_t *got, int counts[2])
{
	int64_t dl = deadline();
	while ((*got & bits) != bits && evqt_now(CLOCK_MONOTONIC) < dl)
		collect(id, 10 * EVQT_MS, got, counts, NULL);
	return (*got & bits) == bits;
}

static void coalesce_at(const char *point)
{
	int64_t id = evq_add_mask(q, &bc, BIT0 | BIT1, 1);
	CHECK(id >= 0);
	evq_mask_t got = 0;
	int counts[2] = { 0, 0 };
	if (!park_at(point, BIT0)) {
		ok(0, "coalesce at %s: the notifier reached the point", point);
		unpark();
		CHECK(evq_del(q, id) == 0);
		return;
	}
	/* another notifier is not held up */
	CHECK(evq_bcast_notify(&bc, BIT1) == 0);
	int b1 = await_bits(id, BIT1, &got, counts);
	while (collect(id, 0, &got, counts, NULL) > 0)
		;
	/* everything deliverable now is taken: a notify from here on must
	 * be delivered by a later wait */
	got = 0;
	CHECK(evq_bcast_notify(&bc, BIT0) == 0);
	int released = unpark();
	int b0 = await_bits(id, BIT0, &got, counts);
	while (collect(id, 0, &got, counts, NULL) > 0)
		;
	ok(b1, "coalesce at %s: bit 1 notified meanwhile is delivered", point);
	ok(released, "coalesce at %s: the parked notify returns once released", point);
	ok(b0, "coalesce at %s: bit 0 notified again while the first was parked is "
	   "delivered after (none lost)", point);
	ok(counts[0] <= 2 && counts[1] <= 1, "coalesce at %s: no bit delivered more "
	   "often than notified (bit 0 %d of 2, bit 1 %d of 1)", point, counts[0],
	   counts[1]);
	CHECK(evq_del(q, id) == 0);
}

static void *deleter(void *arg)
{
	int64_t *id = arg;
	*id = evq_del(q, *id);
	return NULL;
}

static void delete_at(const char *point)
{
	int64_t id = evq_add_mask(q, &bc, BIT0 | BIT1, 2);
	CHECK(id >= 0);
	int64_t sentinel_id = evq_add_user(q, SENTINEL);
	CHECK(sentinel_id >= 0);
	evq_mask_t got = 0;
	int counts[2] = { 0, 0 };
	int reached = park_at(point, BIT0);
	atomic_store(&drain_seen, 0);
	pthread_t d;
	int64_t rc = id;
	CHECK(pthread_create(&d, NULL, deleter, &rc) == 0);
	/* the delete runs up to the grace period (or through it, when the
	 * notifier has not counted itself yet); q->lock is held meanwhile,
	 * so no evq_wait here */
	int64_t dl = deadline();
	while (!atomic_load(&drain_seen) && evqt_now(CLOCK_MONOTONIC) < dl)
		pause_a_little();
	int in_grace = atomic_load(&drain_seen);
	int released = unpark();
	pthread_join(d, NULL);
	/* from here on: nothing of id */
	long before = bad_events;
	CHECK(evq_trigger(q, sentinel_id) == 0);
	int sentinel = 0;
	dl = deadline();
	while (!sentinel && evqt_now(CLOCK_MONOTONIC) < dl)
		collect(-1, 10 * EVQT_MS, &got, counts, &sentinel);
	while (collect(-1, 0, &got, counts, NULL) > 0)
		;
	ok(reached && in_grace && released && rc == 0,
	   "delete at %s: notifier parked, evq_del reached the grace period and "
	   "returned 0 once the notifier was released", point);
	ok(sentinel && bad_events == before,
	   "delete at %s: no event of the registration after evq_del returned", point);
	CHECK(evq_del(q, sentinel_id) == 0);
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("mask_stop");
	q = evqt_new();
	CHECK(evq_bcast_init(&bc) == 0);
	pthread_t p;
	CHECK(pthread_create(&p, NULL, parker_run, NULL) == 0);
	for (int i = 0; i < NPOINTS; i++)
		coalesce_at(points[i]);
	for (int i = 0; i < NPOINTS; i++)
		delete_at(points[i]);
	atomic_store(&quit, 1);
	pthread_join(p, NULL);
	is(atomic_load(&notify_errors), 0, "every notify returned 0");
	is(bc.count, 0, "every registration unsubscribed");
	ok(evqt_roundtrip(q), "queue still works");
	evq_free(q);
	evq_bcast_destroy(&bc);
	return done();
}
