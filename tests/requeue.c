/* SPDX-License-Identifier: MIT */
/*
 * requeue.c - evq_requeue() accepts only what this thread took: a record
 * that the calling thread's most recent evq_wait() (one that returned
 * events) handed out on this queue, unchanged, and not given back yet.
 * A record of another queue (even one with the same id and cookie), a
 * forged or altered one, one given back already, one from an older batch
 * or one taken by another thread is refused with -EINVAL, and no token or
 * occurrence is made out of it.
 */
#include <pthread.h>

#include "evqtest.h"

#define NEV 8
#define QUIET (20 * EVQT_MS)

/* Two queues whose semaphore registrations have the same id and cookie. */
static void test_other_queue(void)
{
	struct evq *qa = evqt_new(), *qb = evqt_new();
	struct evq_sem sa, sb;
	struct evq_event ev[NEV];
	CHECK(evq_sem_init(&sa, 1, 0) == 0 && evq_sem_init(&sb, 1, 0) == 0);
	int64_t ia = evq_add_sem(qa, &sa, 0, 7), ib = evq_add_sem(qb, &sb, 0, 7);
	CHECK(ia >= 0 && ib >= 0);
	is(ia, ib, "other queue: same id in both queues");
	CHECK(evqt_wait(qb, ev, NEV, EVQT_SOON) == 1);   /* hold b's token */
	struct evq_event b_rec = ev[0];
	CHECK(evqt_wait(qa, ev, NEV, EVQT_SOON) == 1);   /* and a's */
	struct evq_event a_rec = ev[0];
	ok(memcmp(&a_rec, &b_rec, sizeof a_rec) == 0,
	   "other queue: the two records are alike byte for byte");
	/* This thread's most recent wait was on qa: a's token cannot be
	 * given back as one of b's. */
	is(evq_requeue(qb, &a_rec), -EINVAL, "other queue: a's record refused by qb");
	is(evqt_wait(qb, ev, NEV, QUIET), 0, "other queue: qb hands out no token");
	is(evq_sem_value(&sb), 0, "other queue: b's count unchanged");
	/* it can still go back where it came from */
	is(evq_requeue(qa, &a_rec), 0, "other queue: a's record back to qa");
	int n = evqt_wait(qa, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == ia && ev[0].data == 1, "other queue: qa hands it out again");
	evq_free(qa);
	evq_free(qb);
}

static void test_twice_and_forged(void)
{
	struct evq *q = evqt_new();
	struct evq_sem s;
	struct evq_event ev[NEV];
	CHECK(evq_sem_init(&s, 1, 0) == 0);
	int64_t id = evq_add_sem(q, &s, 0, 3);
	CHECK(id >= 0);
	CHECK(evqt_wait(q, ev, NEV, EVQT_SOON) == 1 && ev[0].data == 1);
	struct evq_event rec = ev[0];
	/* forged: the same record with more tokens */
	struct evq_event forged = rec;
	forged.data = 1000;
	is(evq_requeue(q, &forged), -EINVAL, "forged: more tokens refused");
	forged = rec;
	forged.cookie = 4;
	is(evq_requeue(q, &forged), -EINVAL, "forged: another cookie refused");
	/* a copy of the real one is fine, once */
	is(evq_requeue(q, &rec), 0, "twice: first requeue accepted");
	is(evq_requeue(q, &rec), -EINVAL, "twice: second requeue refused");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "twice: one token comes back (data %llu)",
	   n == 1 ? (unsigned long long)ev[0].data : 0ull);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "twice: and no second one");
	is(evq_sem_value(&s), 0, "twice: the semaphore holds no extra token");
	CHECK(evq_sem_post(&s, 1) == 0); /* the token we hold */
	evq_free(q);
	is(evq_sem_value(&s), 1, "twice: every token accounted for at the end");
}

static void test_batches(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t a = evq_add_user(q, 1), b = evq_add_user(q, 2), c = evq_add_user(q, 3);
	CHECK(a >= 0 && b >= 0 && c >= 0);
	CHECK(evq_trigger(q, a) == 0 && evq_trigger(q, b) == 0);
	CHECK(evqt_wait(q, ev, NEV, EVQT_SOON) == 2);
	struct evq_event first[2] = { ev[0], ev[1] };
	/* a poll that returns nothing keeps the batch */
	is(evqt_wait(q, ev, NEV, 0), 0, "batches: empty poll");
	is(evq_requeue(q, &first[1]), 0, "batches: a record of the batch, after an empty poll");
	/* a newer batch replaces it */
	CHECK(evq_trigger(q, c) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	CHECK(n >= 1);
	is(evq_requeue(q, &first[0]), -EINVAL,
	   "batches: a record of an older batch is refused");
	for (int i = 0; i < n; i++)
		is(evq_requeue(q, &ev[i]), 0, "batches: record %d of the newest batch", i);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	uint64_t sum = 0;
	for (int i = 0; i < n; i++)
		sum += ev[i].data;
	is(sum, 2, "batches: b and c come back, a does not (sum of data)");
	/* deleted since: the event died with it */
	int64_t id = ev[0].id;
	CHECK(evq_del(q, id) == 0);
	is(evq_requeue(q, &ev[0]), -ENOENT, "batches: deleted registration -> -ENOENT");
	evq_free(q);
}

struct other {
	struct evq *q;
	struct evq_event rec;
	int rc;
};

static void *requeue_elsewhere(void *arg)
{
	struct other *o = arg;
	o->rc = evq_requeue(o->q, &o->rec);
	return NULL;
}

static void test_other_thread(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 9);
	CHECK(id >= 0 && evq_trigger(q, id) == 0);
	CHECK(evqt_wait(q, ev, NEV, EVQT_SOON) == 1);
	struct other o = { q, ev[0], 1 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, requeue_elsewhere, &o) == 0);
	pthread_join(t, NULL);
	is(o.rc, -EINVAL, "other thread: a record this thread did not take is refused");
	is(evq_requeue(q, &ev[0]), 0, "other thread: the taker gives it back");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "other thread: it comes back once");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("requeue");
	test_other_queue();
	test_twice_and_forged();
	test_batches();
	test_other_thread();
	struct evq_event ev = { 0 };
	struct evq *q = evqt_new();
	is(evq_requeue(q, &ev), -EINVAL, "a record never handed out -> -EINVAL");
	is(evq_requeue(NULL, &ev), -EINVAL, "NULL queue -> -EINVAL");
	is(evq_requeue(q, NULL), -EINVAL, "NULL record -> -EINVAL");
	evq_free(q);
	return done();
}
