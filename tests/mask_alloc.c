/* SPDX-License-Identifier: MIT */
/*
 * mask_alloc.c - event masks allocate nothing in steady state, and fail
 * cleanly when allocation fails.  The program counts allocator calls
 * (malloc, calloc, realloc forwarded to glibc's __libc_*), and can make
 * the n-th next one fail.
 *
 *  steady: after warm-up, broadcasts to 1024 subscribers (waiters,
 *          callback receivers, a queue), waits, acks, queue deliveries and
 *          subscribe/unsubscribe that reuse slots make no allocator call.
 *  enomem: evq_bcast_subscribe (table growth) and evq_add_mask (its record,
 *          or the broadcaster's table) return -ENOMEM and change nothing.
 * Skipped under sanitizers, which own malloc.
 */
#include <limits.h>
#include <stdatomic.h>

#include "evqtest.h"

#if !EVQT_SANITIZED

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static atomic_long n_alloc;
static atomic_long fail_in = -1; /* > 0: the fail_in-th next call fails */

/* Counts a call; 1 if it must fail. */
static int counted(void)
{
	atomic_fetch_add(&n_alloc, 1);
	long f = atomic_load(&fail_in);
	if (f <= 0)
		return 0;
	atomic_store(&fail_in, f - 1);
	return f == 1;
}

void *malloc(size_t n)
{
	return counted() ? NULL : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	return counted() ? NULL : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	return counted() ? NULL : __libc_realloc(p, n);
}

#define NSUB 1024
#define NEV 8

static void ack_cb(struct evq_receiver *r, evq_mask_t bits, void *arg)
{
	(void)arg;
	evq_receiver_ack(r, bits);
}

static void test_steady(void)
{
	static struct evq_receiver recv[NSUB];
	static struct evq_waiter w[4];
	struct evq_bcast b;
	struct evq_event ev[NEV];
	struct evq *q = evqt_new();
	CHECK(evq_bcast_init(&b) == 0);
	for (int i = 0; i < 4; i++) {
		CHECK(evq_waiter_init(&w[i]) == 0);
		CHECK(evq_bcast_subscribe(&b, &w[i].receiver, 0x1) >= 0);
	}
	for (int i = 0; i < NSUB - 4; i++) {
		CHECK(evq_receiver_init(&recv[i], i % 2 ? ack_cb : NULL, NULL) == 0);
		CHECK(evq_bcast_subscribe(&b, &recv[i], 0x3) >= 0);
	}
	int64_t qid = evq_add_mask(q, &b, 0x2, 9);
	CHECK(qid >= 0);
	struct evq_receiver extra;
	CHECK(evq_receiver_init(&extra, NULL, NULL) == 0);
	/* warm up: one of everything, and a subscribe that leaves a freed
	 * slot behind for reuse */
	int64_t xid = evq_bcast_subscribe(&b, &extra, 0x4);
	CHECK(xid >= 0 && evq_bcast_unsubscribe(&b, xid) == 0);
	evq_bcast_notify(&b, 0x3);
	CHECK(evq_wait(q, ev, NEV, 0, NULL) == 1);
	/* and a kernel round: a thread's first one sets up its buffer */
	CHECK(evq_wait(q, ev, NEV, 0, NULL) == 0);

	long before = atomic_load(&n_alloc), bad = 0;
	for (int k = 0; k < 1000; k++) {
		bad += evq_bcast_notify(&b, 0x3) != 0;
		for (int i = 0; i < 4; i++) {
			bad += evq_waiter_wait(&w[i], 0x1, -1) != 0x1;
			evq_receiver_ack(&w[i].receiver, 0x1);
		}
		int n = evq_wait(q, ev, NEV, 0, NULL);
		bad += n != 1 || ev[0].data != 0x2;
		xid = evq_bcast_subscribe(&b, &extra, 0x4);
		bad += xid < 0 || evq_bcast_unsubscribe(&b, xid) != 0;
	}
	long calls = atomic_load(&n_alloc) - before;
	/* Expect: nothing allocated, everything behaved. */
	is(calls, 0, "steady: 1000 rounds (notify %d subscribers, wait/ack, queue event, "
	   "subscribe/unsubscribe) -> no allocator call", NSUB);
	is(bad, 0, "steady: every step behaved");
	evq_free(q);
	evq_bcast_destroy(&b);
}

static void test_enomem(void)
{
	struct evq_bcast b;
	struct evq_receiver r[16];
	CHECK(evq_bcast_init(&b) == 0);
	for (int i = 0; i < 16; i++)
		CHECK(evq_receiver_init(&r[i], NULL, NULL) == 0);

	/* The first subscribe allocates the table: make that fail. */
	atomic_store(&fail_in, 1);
	is(evq_bcast_subscribe(&b, &r[0], 0x1), -ENOMEM, "enomem: first subscribe -> -ENOMEM");
	atomic_store(&fail_in, -1);
	is(b.count, 0, "enomem: nothing subscribed");
	evq_bcast_notify(&b, 0x1);
	is(evq_receiver_pending(&r[0]), 0, "enomem: notify reaches nobody");

	/* Fill the first table (8 slots), then fail its growth. */
	int64_t ids[8];
	for (int i = 0; i < 8; i++)
		CHECK((ids[i] = evq_bcast_subscribe(&b, &r[i], 0x1)) >= 0);
	atomic_store(&fail_in, 1);
	is(evq_bcast_subscribe(&b, &r[8], 0x1), -ENOMEM, "enomem: growth -> -ENOMEM");
	atomic_store(&fail_in, -1);
	is(b.count, 8, "enomem: the 8 subscriptions remain");
	evq_bcast_notify(&b, 0x1);
	int got = 0;
	for (int i = 0; i < 9; i++)
		got += evq_receiver_pending(&r[i]) == 0x1;
	is(got, 8, "enomem: notify reaches the 8, not the refused one");
	ok(evq_bcast_subscribe(&b, &r[8], 0x1) >= 0, "enomem: a later subscribe grows fine");

	/* evq_add_mask: its own record fails, then the table growth fails
	 * (the broadcaster is full again: 9 of 16... fill to 16 first). */
	for (int i = 9; i < 16; i++)
		CHECK(evq_bcast_subscribe(&b, &r[i], 0x1) >= 0);
	struct evq *q = evqt_new();
	atomic_store(&fail_in, 1);
	is(evq_add_mask(q, &b, 0x1, 1), -ENOMEM, "enomem: evq_add_mask record -> -ENOMEM");
	atomic_store(&fail_in, -1);
	/* record ok, registration slots ok (the queue has free slots only
	 * after its first registration: make one and delete it) */
	int64_t u = evq_add_user(q, 0);
	CHECK(u >= 0 && evq_del(q, u) == 0);
	atomic_store(&fail_in, 2);
	is(evq_add_mask(q, &b, 0x1, 1), -ENOMEM, "enomem: evq_add_mask table growth -> -ENOMEM");
	atomic_store(&fail_in, -1);
	is(b.count, 16, "enomem: broadcaster unchanged");
	ok(evqt_roundtrip(q), "enomem: queue still usable");
	struct evq_event ev[NEV];
	evq_bcast_notify(&b, 0x1);
	is(evq_wait(q, ev, NEV, 0, NULL), 0, "enomem: no event from the failed registrations");
	int64_t id = evq_add_mask(q, &b, 0x1, 1);
	ok(id >= 0, "enomem: a later evq_add_mask works");
	evq_bcast_notify(&b, 0x1);
	is(evq_wait(q, ev, NEV, 0, NULL), 1, "enomem: and delivers");
	evq_free(q);
	evq_bcast_destroy(&b);
}

int main(void)
{
	if (getenv("EVQ_TEST_VALGRIND"))
		skip_all("under valgrind: valgrind owns malloc, no interposition");
	evqt_watchdog(60);
	test_steady();
	test_enomem();
	return done();
}

#else

int main(void)
{
	skip_all("sanitizers own malloc");
}

#endif
