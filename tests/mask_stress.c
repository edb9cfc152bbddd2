/* SPDX-License-Identifier: MIT */
/*
 * mask_stress.c - event masks under contention; every notified bit must be
 * observed exactly once, counted.  Notifications of one bit coalesce by
 * design, so each (sender, receiver) pair runs a handshake: the sender
 * notifies its bit, then waits (on its own evq_waiter) until the receiver
 * has seen it and answered before sending again.  A lost wakeup hangs a
 * pair (the watchdog bails out); a bit seen twice counts past the number
 * sent.
 *
 * Each phase sends up to `rounds` bits per pair but stops sending after
 * PHASE_BUDGET once every pair has had MIN_ROUNDS (the free phase: that
 * many queues): under CPU hogs each
 * handoff waits for a time slice (tests/mask_sched.c, which yields at
 * every protocol step, ran 40x slower beside two hogs and reached the
 * watchdog).  The counts stay exact: what was sent is what must arrive.
 *
 *  direct: K notifier threads x J waiter threads, evq_receiver_notify on
 *          each other's waiters; half the waiters use short timeouts so
 *          wakes race with timeouts.
 *  bcast:  the same through one broadcaster (bit k*J+j goes from notifier
 *          k to waiter j only), while churn threads subscribe and
 *          unsubscribe callback receivers (malloc'ed, freed right after
 *          unsubscribe: ASan sees any callback after it; the callback also
 *          checks a "freed" flag) and check that a receiver subscribed
 *          before a notify always gets it.
 *  queue:  K notifiers -> broadcaster -> evq_add_mask -> two threads in
 *          evq_wait, while a churn thread adds and deletes more mask
 *          registrations on the same broadcaster (deleted while notifies
 *          are delivering to them).
 *  free:   evq_free of a queue with mask registrations while other
 *          threads notify its broadcaster non-stop (the del hooks must
 *          wait out running callbacks: ASan sees any late one).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "evqtest.h"

#ifndef STRESS_ROUNDS
#define STRESS_ROUNDS 20000 /* bits per pair */
#endif
#define K 4 /* notifiers */
#define J 6 /* waiters */

static long rounds;
static struct evq_waiter nw[K], ww[J];
static atomic_long sent[K][J], recv[J][K];
static atomic_int extra;       /* a bit seen more often than sent */
static atomic_int stop_churn;
static long min_rounds;   /* sent per pair before the budget may end a phase */
static int64_t phase_end; /* CLOCK_MONOTONIC */
static atomic_int final[K][J]; /* the pair's last bit is sent (or going out) */

#define MIN_ROUNDS 200
#define PHASE_BUDGET (3 * EVQT_SEC)

static void phase_start(void)
{
	phase_end = evqt_now(CLOCK_MONOTONIC) + PHASE_BUDGET;
}

/* Should a pair that has sent n bits send no more? */
static int pair_last(long n)
{
	return n >= rounds || (n >= min_rounds && evqt_now(CLOCK_MONOTONIC) > phase_end);
}

/* Has waiter j received every bit it will get?  (final is set before the
 * last bit is counted in sent, and sent before it is notified.) */
static int waiter_done(int j)
{
	for (int k = 0; k < K; k++)
		if (!atomic_load(&final[k][j]) ||
		    atomic_load(&recv[j][k]) != atomic_load(&sent[k][j]))
			return 0;
	return 1;
}

/* Sends bit k to waiter j once more, or counts the pair done. */
static int next_bit(int k, int j)
{
	if (atomic_load(&final[k][j]))
		return 1;
	if (pair_last(atomic_load(&sent[k][j]) + 1))
		atomic_store(&final[k][j], 1);
	atomic_fetch_add(&sent[k][j], 1);
	return 0;
}

static evq_mask_t all_bits(int n)
{
	return ((evq_mask_t)1 << n) - 1;
}

/* ---- direct ---------------------------------------------------------- */

/* Sends bit k to every waiter, then one more each time a waiter answers. */
static void *direct_notifier(void *p)
{
	int k = (int)(intptr_t)p;
	for (int j = 0; j < J; j++) {
		next_bit(k, j);
		evq_receiver_notify(&ww[j].receiver, (evq_mask_t)1 << k);
	}
	int done = 0;
	while (done < J) {
		evq_mask_t got = evq_waiter_wait(&nw[k], all_bits(J), -1);
		got = evq_receiver_ack(&nw[k].receiver, got);
		for (int j = 0; j < J; j++) {
			if (!(got & (evq_mask_t)1 << j))
				continue;
			if (next_bit(k, j)) {
				done++;
				continue;
			}
			evq_receiver_notify(&ww[j].receiver, (evq_mask_t)1 << k);
		}
	}
	return NULL;
}

/* Receives bits of all notifiers; answers each. */
static void *direct_waiter(void *p)
{
	int j = (int)(intptr_t)p;
	int64_t timeout = j % 2 ? 50000 : -1; /* 50 us: wakes race timeouts */
	while (!waiter_done(j)) {
		evq_mask_t got = evq_waiter_wait(&ww[j], all_bits(K), timeout);
		if (got == EVQ_MASK_TIMEOUT)
			continue;
		got = evq_receiver_ack(&ww[j].receiver, got);
		for (int k = 0; k < K; k++) {
			if (!(got & (evq_mask_t)1 << k))
				continue;
			if (atomic_fetch_add(&recv[j][k], 1) + 1 > atomic_load(&sent[k][j]))
				atomic_fetch_add(&extra, 1);
			evq_receiver_notify(&nw[k].receiver, (evq_mask_t)1 << j);
		}
	}
	return NULL;
}

static void reset_counts(void)
{
	for (int k = 0; k < K; k++)
		for (int j = 0; j < J; j++)
			atomic_store(&sent[k][j], 0), atomic_store(&recv[j][k], 0),
				atomic_store(&final[k][j], 0);
	atomic_store(&extra, 0);
	phase_start();
	for (int k = 0; k < K; k++)
		CHECK(evq_waiter_init(&nw[k]) == 0);
	for (int j = 0; j < J; j++)
		CHECK(evq_waiter_init(&ww[j]) == 0);
}

/* Every pair: all sent bits received, at least min_rounds of them; *least
 * is the fewest any pair sent. */
static int counts_exact(long *least)
{
	int good = 1;
	*least = rounds;
	for (int k = 0; k < K; k++)
		for (int j = 0; j < J; j++) {
			if (atomic_load(&sent[k][j]) < *least)
				*least = atomic_load(&sent[k][j]);
			if (atomic_load(&recv[j][k]) != atomic_load(&sent[k][j]) ||
			    atomic_load(&sent[k][j]) < min_rounds) {
				diag("pair %d->%d: sent %ld received %ld", k, j,
				     atomic_load(&sent[k][j]), atomic_load(&recv[j][k]));
				good = 0;
			}
		}
	return good;
}

static void test_direct(void)
{
	reset_counts();
	pthread_t t[K + J];
	for (int j = 0; j < J; j++)
		CHECK(pthread_create(&t[K + j], NULL, direct_waiter, (void *)(intptr_t)j) == 0);
	for (int k = 0; k < K; k++)
		CHECK(pthread_create(&t[k], NULL, direct_notifier, (void *)(intptr_t)k) == 0);
	for (int i = 0; i < K + J; i++)
		pthread_join(t[i], NULL);
	/* Expect: every pair sent and received exactly `rounds` bits. */
	long least;
	int exact = counts_exact(&least);
	ok(exact, "direct: %d x %d threads, %ld-%ld bits per pair, all observed once",
	   K, J, least, rounds);
	is(atomic_load(&extra), 0, "direct: no bit observed more often than sent");
}

/* ---- bcast ----------------------------------------------------------- */

static struct evq_bcast bc;

static evq_mask_t pair_bit(int k, int j)
{
	return (evq_mask_t)1 << (k * J + j);
}

static void *bcast_notifier(void *p)
{
	int k = (int)(intptr_t)p;
	for (int j = 0; j < J; j++) {
		next_bit(k, j);
		evq_bcast_notify(&bc, pair_bit(k, j));
	}
	int done = 0;
	while (done < J) {
		evq_mask_t got = evq_waiter_wait(&nw[k], all_bits(J), -1);
		got = evq_receiver_ack(&nw[k].receiver, got);
		for (int j = 0; j < J; j++) {
			if (!(got & (evq_mask_t)1 << j))
				continue;
			if (next_bit(k, j)) {
				done++;
				continue;
			}
			evq_bcast_notify(&bc, pair_bit(k, j));
		}
	}
	return NULL;
}

static void *bcast_waiter(void *p)
{
	int j = (int)(intptr_t)p;
	evq_mask_t mine = 0;
	for (int k = 0; k < K; k++)
		mine |= pair_bit(k, j);
	while (!waiter_done(j)) {
		evq_mask_t got = evq_waiter_wait(&ww[j], mine, -1);
		got = evq_receiver_ack(&ww[j].receiver, got);
		for (int k = 0; k < K; k++) {
			if (!(got & pair_bit(k, j)))
				continue;
			if (atomic_fetch_add(&recv[j][k], 1) + 1 > atomic_load(&sent[k][j]))
				atomic_fetch_add(&extra, 1);
			evq_receiver_notify(&nw[k].receiver, (evq_mask_t)1 << j);
		}
	}
	return NULL;
}

struct churn_recv {
	struct evq_receiver r;
	atomic_int freed;
	atomic_long calls;
};

static atomic_long churn_after_free, churn_missed, churn_cycles;

static void churn_cb(struct evq_receiver *r, evq_mask_t bits, void *arg)
{
	struct churn_recv *c = arg;
	(void)bits;
	if (atomic_load(&c->freed))
		atomic_fetch_add(&churn_after_free, 1);
	atomic_fetch_add(&c->calls, 1);
	evq_receiver_ack(r, bits & ~EVQ_MASK_APP_BIT(40)); /* keep the probe bit */
}

static void *churner(void *p)
{
	unsigned seed = (unsigned)(uintptr_t)p * 2654435761u;
	while (!atomic_load(&stop_churn)) {
		struct churn_recv *c = calloc(1, sizeof *c);
		CHECK(c);
		CHECK(evq_receiver_init(&c->r, churn_cb, c) == 0);
		seed = seed * 1103515245u + 12345u;
		/* some of the pair bits (so notifiers call us) + the probe bit */
		evq_mask_t m = ((evq_mask_t)seed << 7 ^ seed) & all_bits(K * J);
		int64_t id = evq_bcast_subscribe(&bc, &c->r, m | EVQ_MASK_APP_BIT(40));
		CHECK(id >= 0);
		/* Subscribed before this notify: it must reach us. */
		evq_bcast_notify(&bc, EVQ_MASK_APP_BIT(40));
		if (!(evq_receiver_pending(&c->r) & EVQ_MASK_APP_BIT(40)))
			atomic_fetch_add(&churn_missed, 1);
		if (seed & 0x100)
			sched_yield();
		CHECK(evq_bcast_unsubscribe(&bc, id) == 0);
		atomic_store(&c->freed, 1); /* from here on no callback may run */
		sched_yield();
		free(c);
		atomic_fetch_add(&churn_cycles, 1);
	}
	return NULL;
}

static void test_bcast(void)
{
	reset_counts();
	CHECK(evq_bcast_init(&bc) == 0);
	for (int j = 0; j < J; j++) {
		evq_mask_t mine = 0;
		for (int k = 0; k < K; k++)
			mine |= pair_bit(k, j);
		CHECK(evq_bcast_subscribe(&bc, &ww[j].receiver, mine) >= 0);
	}
	atomic_store(&stop_churn, 0);
	pthread_t t[K + J], ch[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&ch[i], NULL, churner, (void *)(intptr_t)(i + 1)) == 0);
	for (int j = 0; j < J; j++)
		CHECK(pthread_create(&t[K + j], NULL, bcast_waiter, (void *)(intptr_t)j) == 0);
	for (int k = 0; k < K; k++)
		CHECK(pthread_create(&t[k], NULL, bcast_notifier, (void *)(intptr_t)k) == 0);
	for (int i = 0; i < K + J; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop_churn, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(ch[i], NULL);
	long least;
	int exact = counts_exact(&least);
	ok(exact, "bcast: %d notifiers x %d waiters through a broadcaster, "
	   "%ld-%ld bits per pair, all observed once", K, J, least, rounds);
	is(atomic_load(&extra), 0, "bcast: no bit observed more often than sent");
	ok(atomic_load(&churn_cycles) > 0, "bcast: %ld subscribe/unsubscribe cycles meanwhile",
	   atomic_load(&churn_cycles));
	is(atomic_load(&churn_after_free), 0, "bcast: no callback after unsubscribe returned");
	is(atomic_load(&churn_missed), 0, "bcast: a receiver subscribed before a notify gets it");
	is(bc.count, J, "bcast: only the waiters remain subscribed");
	evq_bcast_destroy(&bc);
}

/* ---- queue ----------------------------------------------------------- */

static struct evq *q;
static int64_t main_id;
static atomic_long qrecv[K], qsent[K];
static atomic_int qstop;

static void *queue_notifier(void *p)
{
	int k = (int)(intptr_t)p;
	for (long i = 0; !pair_last(i); i++) {
		atomic_fetch_add(&qsent[k], 1);
		evq_bcast_notify(&bc, (evq_mask_t)1 << k);
		evq_waiter_wait(&nw[k], 0x1, -1);
		evq_receiver_ack(&nw[k].receiver, 0x1);
	}
	return NULL;
}

static void *queue_consumer(void *p)
{
	(void)p;
	struct evq_event ev[8];
	while (!atomic_load(&qstop)) {
		int n = evq_wait(q, ev, 8, 20 * EVQT_MS, NULL);
		for (int i = 0; i < n; i++) {
			if (ev[i].id != main_id)
				continue; /* a churn registration's */
			for (int k = 0; k < K; k++) {
				if (!(ev[i].data & (evq_mask_t)1 << k))
					continue;
				if (atomic_fetch_add(&qrecv[k], 1) + 1 > atomic_load(&qsent[k]))
					atomic_fetch_add(&extra, 1);
				evq_receiver_notify(&nw[k].receiver, 0x1);
			}
		}
	}
	return NULL;
}

static atomic_long qchurn;

static void *queue_churner(void *p)
{
	(void)p;
	while (!atomic_load(&stop_churn)) {
		/* Gets the notifiers' bits too: deleted while they deliver. */
		int64_t id = evq_add_mask(q, &bc, all_bits(K) | EVQ_MASK_APP_BIT(7), 99);
		CHECK(id >= 0);
		evq_bcast_notify(&bc, EVQ_MASK_APP_BIT(7));
		sched_yield();
		CHECK(evq_del(q, id) == 0);
		atomic_fetch_add(&qchurn, 1);
	}
	return NULL;
}

static void test_queue(void)
{
	for (int k = 0; k < K; k++) {
		CHECK(evq_waiter_init(&nw[k]) == 0);
		atomic_store(&qrecv[k], 0), atomic_store(&qsent[k], 0);
	}
	atomic_store(&extra, 0);
	phase_start();
	CHECK(evq_bcast_init(&bc) == 0);
	q = evqt_new();
	main_id = evq_add_mask(q, &bc, all_bits(K), 1);
	CHECK(main_id >= 0);
	atomic_store(&stop_churn, 0);
	atomic_store(&qstop, 0);
	pthread_t t[K], c[2], ch;
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&c[i], NULL, queue_consumer, NULL) == 0);
	CHECK(pthread_create(&ch, NULL, queue_churner, NULL) == 0);
	for (int k = 0; k < K; k++)
		CHECK(pthread_create(&t[k], NULL, queue_notifier, (void *)(intptr_t)k) == 0);
	for (int k = 0; k < K; k++)
		pthread_join(t[k], NULL);
	atomic_store(&stop_churn, 1);
	pthread_join(ch, NULL);
	atomic_store(&qstop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(c[i], NULL);
	int good = 1;
	long least = rounds;
	for (int k = 0; k < K; k++) {
		good &= atomic_load(&qrecv[k]) == atomic_load(&qsent[k]) &&
			atomic_load(&qsent[k]) >= min_rounds;
		if (atomic_load(&qsent[k]) < least)
			least = atomic_load(&qsent[k]);
	}
	ok(good, "queue: %d notifiers -> evq_add_mask -> 2 evq_wait threads, %ld-%ld bits each, "
	   "all delivered once", K, least, rounds);
	is(atomic_load(&extra), 0, "queue: no bit delivered more often than notified");
	ok(atomic_load(&qchurn) > 0, "queue: %ld add/del cycles of other registrations meanwhile",
	   atomic_load(&qchurn));
	evq_free(q);
	is(bc.count, 0, "queue: evq_free unsubscribed everything");
	evq_bcast_destroy(&bc);
}

/* ---- free while notifying --------------------------------------------- */

static void *hammer(void *p)
{
	(void)p;
	while (!atomic_load(&stop_churn))
		evq_bcast_notify(&bc, 0x3);
	return NULL;
}

static void test_free_race(void)
{
	CHECK(evq_bcast_init(&bc) == 0);
	atomic_store(&stop_churn, 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, hammer, NULL) == 0);
	long n = evqt_scale(2000), got = 0, i;
	phase_start();
	for (i = 0; i < n && !(i >= MIN_ROUNDS && evqt_now(CLOCK_MONOTONIC) > phase_end); i++) {
		struct evq *fq = evqt_new();
		struct evq_event ev[4];
		CHECK(evq_add_mask(fq, &bc, 0x1, 1) >= 0);
		CHECK(evq_add_mask(fq, &bc, 0x2, 2) >= 0);
		/* the hammer's notifies arrive: the queue sees them */
		got += evq_wait(fq, ev, 4, EVQT_SOON, NULL) > 0;
		evq_free(fq);
	}
	atomic_store(&stop_churn, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	is(got, i, "free: %ld queues got notified and were freed mid-notify", i);
	is(bc.count, 0, "free: every registration unsubscribed");
	evq_bcast_destroy(&bc);
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("mask_stress");
	rounds = evqt_scale(STRESS_ROUNDS);
	min_rounds = rounds < MIN_ROUNDS ? rounds : MIN_ROUNDS;
	test_direct();
	test_bcast();
	test_queue();
	test_free_race();
	return done();
}
