/* SPDX-License-Identifier: MIT */
/*
 * semnowait.c - semaphore registrations that are added, disabled,
 * enabled and deleted while nobody ever calls evq_wait(): tokens are
 * conserved.
 *
 * A queue registration takes a token only when evq_wait() hands its event
 * out - which never happens here - so however registrations are added,
 * deleted (evq_del), disabled, enabled or their queues freed (evq_free),
 * while tokens are posted and consumed, no registration ever holds one:
 * the semaphore's value is exactly what was posted minus what was
 * consumed, at every pause and at the end.  (Before issue 12 a
 * registration took a token as soon as one was free and held it.)
 *
 * One semaphore, several queues.  Registrar threads keep a few live
 * registrations each on random queues and add, delete, disable and enable
 * them at random; poster threads post one token at a time and a consumer
 * thread takes tokens with evq_sem_trywait() and keeps them: the tokens
 * in circulation go from LOW, fewer than the registrations, to HIGH, more
 * than the registrations, and back.  Meanwhile every watcher sees the
 * count go non-zero and zero again, and passes on the wakes it takes.
 * First the same by one thread, step by step, with exact values.
 * At the end (registrations deleted or their queues freed): value +
 * consumed == initial + posted exactly, and no waiter is left counted.
 */
#include <pthread.h>
#include <sched.h>

#include "evqtest.h"

#define NQ 3
#define NREGT 3      /* registrar threads */
#define NPOST 2      /* poster threads */
#define POOL 8       /* live registrations per registrar thread */
#define INITIAL 2
#define RUN (200 * EVQT_MS)
#define LOW 2        /* tokens in circulation go from LOW */
#define HIGH 30      /* to HIGH and back */

static struct evq_sem sem;
static struct evq *qs[NQ];
static _Atomic long posted, consumed;
static _Atomic int stop_posting, stop_regs;

struct reg {
	int q, disabled;
	int64_t id;
};

struct registrar {
	struct reg pool[POOL];
	int n;
	unsigned seed;
	long ops;
};

static void reg_add(struct registrar *g)
{
	struct reg *r = &g->pool[g->n];
	r->q = (int)(rand_r(&g->seed) % NQ);
	r->id = evq_add_sem(qs[r->q], &sem, 0, (uint64_t)r->q);
	CHECK(r->id >= 0);
	r->disabled = 0;
	g->n++;
}

static void reg_del(struct registrar *g, int k)
{
	CHECK(evq_del(qs[g->pool[k].q], g->pool[k].id) == 0);
	g->pool[k] = g->pool[--g->n];
}

static void *registrar_run(void *arg)
{
	struct registrar *g = arg;
	while (!atomic_load(&stop_regs)) {
		int op = (int)(rand_r(&g->seed) % 8);
		if (g->n < POOL && (g->n == 0 || op < 3)) {
			reg_add(g);
		} else if (op < 6) {
			reg_del(g, (int)(rand_r(&g->seed) % (unsigned)g->n));
		} else {
			struct reg *r = &g->pool[rand_r(&g->seed) % (unsigned)g->n];
			r->disabled = !r->disabled;
			uint32_t fl = r->disabled ? EVQ_DISABLED : 0;
			CHECK(evq_mod(qs[r->q], r->id, 0, fl) == 0);
		}
		g->ops++;
	}
	return NULL;
}

/* Tokens in circulation (free or held by registrations). */
static long circulating(void)
{
	return INITIAL + atomic_load(&posted) - atomic_load(&consumed);
}

/* The posters fill up to HIGH tokens, then the consumer drains down to
 * LOW, and so on: registrations find tokens free at evq_add_sem() some of
 * the time, and wait for the watcher to acquire one the rest. */
static _Atomic int draining;

static void *poster_run(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_posting)) {
		if (!atomic_load(&draining)) {
			if (circulating() < HIGH) {
				CHECK(evq_sem_post(&sem, 1) == 0);
				atomic_fetch_add(&posted, 1);
			} else {
				atomic_store(&draining, 1);
			}
		}
		sched_yield();
	}
	return NULL;
}

static void *consumer_run(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_posting)) {
		if (atomic_load(&draining)) {
			if (circulating() <= LOW)
				atomic_store(&draining, 0);
			else if (evq_sem_trywait(&sem) == 0)
				atomic_fetch_add(&consumed, 1);
		}
		sched_yield();
	}
	return NULL;
}

/* One thread, exact values at every step: registrations added with
 * tokens free, a post with registrations watching, disable, enable,
 * evq_del and evq_free: none takes or gives a token. */
static void test_sequence(void)
{
	struct evq_sem s;
	struct evq *q1 = evqt_new(), *q2 = evqt_new();
	CHECK(evq_sem_init(&s, 2, 0) == 0);
	int64_t a = evq_add_sem(q1, &s, 0, 1), b = evq_add_sem(q2, &s, 0, 2);
	CHECK(a >= 0 && b >= 0);
	is(evq_sem_value(&s), 2, "sequence: two registrations took no token");
	CHECK(evq_sem_trywait(&s) == 0 && evq_sem_trywait(&s) == 0);
	int64_t c = evq_add_sem(q1, &s, 0, 3);
	CHECK(c >= 0);
	/* a, b, c watch the count now (a and b were told of the free tokens
	 * at add and watch again only once their queue is waited on) */
	CHECK(evq_sem_post(&s, 1) == 0);
	ok(evqt_until(evqt_quiescent()), "sequence: the watchers settle after a post");
	is(evq_sem_value(&s), 1, "sequence: a post is taken by nobody");
	CHECK(evq_mod(q1, a, 0, EVQ_DISABLED) == 0);
	is(evq_sem_value(&s), 1, "sequence: disabling takes nothing");
	CHECK(evq_sem_post(&s, 1) == 0);
	CHECK(evq_mod(q1, a, 0, 0) == 0);
	is(evq_sem_value(&s), 2, "sequence: enabling takes nothing");
	CHECK(evq_del(q1, a) == 0);
	is(evq_sem_value(&s), 2, "sequence: evq_del gives back nothing (none held)");
	CHECK(evq_del(q1, c) == 0);
	evq_free(q2);
	is(evq_sem_value(&s), 2, "sequence: evq_free gives back nothing");
	evq_free(q1);
	is(evq_sem_value(&s), 2, "sequence: the two tokens posted are there");
	is(__atomic_load_n(&s.waiters, __ATOMIC_SEQ_CST), 0,
	   "sequence: no waiter left counted");
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("semnowait");
	if (!evqt_have_futex_waitv())
		skip_all("semaphore registrations: " EVQT_NO_WAITV);
	test_sequence();
	CHECK(evq_sem_init(&sem, INITIAL, 0) == 0);
	for (int i = 0; i < NQ; i++)
		qs[i] = evqt_new();

	static struct registrar g[NREGT];
	pthread_t rt[NREGT], pt[NPOST], ct;
	for (int i = 0; i < NREGT; i++) {
		g[i].seed = (unsigned)i * 7919u + 1;
		CHECK(pthread_create(&rt[i], NULL, registrar_run, &g[i]) == 0);
	}
	for (int i = 0; i < NPOST; i++)
		CHECK(pthread_create(&pt[i], NULL, poster_run, NULL) == 0);
	CHECK(pthread_create(&ct, NULL, consumer_run, NULL) == 0);
	evqt_sleep_ns(RUN); /* how long, not whether: nothing waits for it */
	atomic_store(&stop_regs, 1);
	for (int i = 0; i < NREGT; i++)
		pthread_join(rt[i], NULL);
	atomic_store(&stop_posting, 1);
	for (int i = 0; i < NPOST; i++)
		pthread_join(pt[i], NULL);
	pthread_join(ct, NULL);

	/* Paused: no registration holds a token. */
	long live = 0, ops = 0;
	for (int i = 0; i < NREGT; i++) {
		live += g[i].n;
		ops += g[i].ops;
	}
	long total = INITIAL + atomic_load(&posted);
	long have = evq_sem_value(&sem) + atomic_load(&consumed);
	diag("%ld add/del/disable/enable, %ld posted, %ld consumed, %ld live "
	     "registrations, value %d", ops, atomic_load(&posted),
	     atomic_load(&consumed), live, evq_sem_value(&sem));
	is(have, total, "paused: value + consumed == initial + posted with %ld "
	   "live registrations (none holds a token)", live);

	/* Delete half the registrations left, free the queues with the rest. */
	for (int i = 0; i < NREGT; i++)
		for (int k = g[i].n - 1; k >= 0; k -= 2)
			reg_del(&g[i], k);
	for (int i = 0; i < NQ; i++)
		evq_free(qs[i]);
	have = evq_sem_value(&sem) + atomic_load(&consumed);
	is(have, total, "all deleted or freed: value + consumed == initial + posted "
	   "(no token lost or made)");
	is(__atomic_load_n(&sem.waiters, __ATOMIC_SEQ_CST), 0,
	   "no waiter left counted on the semaphore");
	return done();
}
