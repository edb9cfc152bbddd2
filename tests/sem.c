/* SPDX-License-Identifier: MIT */
/*
 * sem.c - counting semaphores: init/trywait/wait/post/value and their bad
 * input (NULL, misaligned, garbage memory never crashes or hangs), the
 * bound (-EOVERFLOW), timeouts; post(n) wakes at most n waiters; through a
 * queue (evq_add_sem) each event means one token held, taken only when
 * evq_wait hands the event out (an idle queue takes none, and a wake its
 * watcher took goes on to other waiters), a requeued token is delivered
 * again or given back by evq_del/evq_free, EVQ_ONESHOT and EVQ_DISABLED
 * (at add and through evq_mod), and threads plus queues competing for
 * tokens never lose or duplicate one.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <sys/syscall.h>

#include "evqtest.h"

#define NEV 16
#define QUIET (30 * EVQT_MS)

/* futex_waitv (Linux 5.16) is what evq_waitv and the epoll backend's word
 * watcher use; valgrind 3.19 does not know it either.  Without it those
 * features answer -ENOSYS: skip what needs them. */

static void test_bad_input(void)
{
	struct evq_sem s;
	char buf[64] __attribute__((aligned(8)));
	struct evq_sem *odd = (struct evq_sem *)(buf + 2);
	is(evq_sem_init(NULL, 1, 0), -EINVAL, "init(NULL) -> -EINVAL");
	is(evq_sem_init(odd, 1, 0), -EINVAL, "init(misaligned) -> -EINVAL");
	is(evq_sem_init(&s, EVQ_SEM_MAX + 1u, 0), -EINVAL, "init(count > max) -> -EINVAL");
	is(evq_sem_init(&s, 1, EVQ_ONESHOT), -EINVAL, "init(bad flags) -> -EINVAL");
	/* Garbage: every call refuses, none crashes or waits. */
	memset(&s, 0x5a, sizeof s);
	is(evq_sem_trywait(&s), -EINVAL, "garbage: trywait -> -EINVAL");
	is(evq_sem_wait(&s, -1), -EINVAL, "garbage: wait(forever) -> -EINVAL, no hang");
	is(evq_sem_post(&s, 1), -EINVAL, "garbage: post -> -EINVAL");
	is(evq_sem_value(&s), -EINVAL, "garbage: value -> -EINVAL");
	memset(&s, 0, sizeof s);
	is(evq_sem_wait(&s, -1), -EINVAL, "zeroed (never initialised): wait -> -EINVAL");
	struct evq *q = evqt_new();
	is(evq_add_sem(q, &s, 0, 1), -EINVAL, "garbage: add_sem -> -EINVAL");
	is(evq_add_sem(q, NULL, 0, 1), -EINVAL, "add_sem(NULL) -> -EINVAL");
	is(evq_add_sem(NULL, &s, 0, 1), -EINVAL, "add_sem(NULL q) -> -EINVAL");
	/* Right magic, garbage count: detected, no hang. */
	CHECK(evq_sem_init(&s, 0, 0) == 0);
	s.count = 0xffffffffu;
	is(evq_sem_trywait(&s), -EINVAL, "count > max: trywait -> -EINVAL");
	is(evq_sem_wait(&s, -1), -EINVAL, "count > max: wait -> -EINVAL");
	s.flags = 0x1234;
	is(evq_sem_post(&s, 1), -EINVAL, "bad flags field: post -> -EINVAL");
	evq_free(q);
}

static void test_sync(void)
{
	struct evq_sem s;
	is(evq_sem_init(&s, 2, 0), 0, "sync: init(2)");
	is(evq_sem_value(&s), 2, "sync: value 2");
	is(evq_sem_trywait(&s), 0, "sync: trywait -> 0");
	is(evq_sem_wait(&s, 0), 0, "sync: wait(0) -> 0");
	is(evq_sem_trywait(&s), -EAGAIN, "sync: empty trywait -> -EAGAIN");
	is(evq_sem_wait(&s, 0), -ETIMEDOUT, "sync: empty wait(0) -> -ETIMEDOUT");
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	is(evq_sem_wait(&s, 20 * EVQT_MS), -ETIMEDOUT, "sync: wait(20ms) -> -ETIMEDOUT");
	ok(evqt_now(CLOCK_MONOTONIC) - t0 >= 20 * EVQT_MS, "sync: not early");
	is(evq_sem_post(&s, 0), -EINVAL, "sync: post(0) -> -EINVAL");
	is(evq_sem_post(&s, 3), 0, "sync: post(3)");
	is(evq_sem_value(&s), 3, "sync: value 3");
	is(evq_sem_post(&s, EVQ_SEM_MAX), -EOVERFLOW, "sync: post past max -> -EOVERFLOW");
	is(evq_sem_value(&s), 3, "sync: nothing posted on overflow");
}

/* post(n) wakes at most n: K threads sleep, post(2) lets exactly 2 go. */
static struct evq_sem wk_sem;
static atomic_int wk_got;
static void *wk_thread(void *a)
{
	(void)a;
	if (evq_sem_wait(&wk_sem, -1) == 0)
		atomic_fetch_add(&wk_got, 1);
	return NULL;
}

static void test_wake_n(void)
{
	enum { K = 6 };
	pthread_t t[K];
	CHECK(evq_sem_init(&wk_sem, 0, 0) == 0);
	for (int i = 0; i < K; i++)
		CHECK(pthread_create(&t[i], NULL, wk_thread, NULL) == 0);
	while (__atomic_load_n(&wk_sem.waiters, __ATOMIC_SEQ_CST) < K)
		evqt_sleep_ns(EVQT_MS);
	evq_sem_post(&wk_sem, 2);
	/* Wait for the two takers (a deadline, not a sleep that must be long
	 * enough); no third can take: there are only two tokens. */
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while ((atomic_load(&wk_got) < 2 ||
		__atomic_load_n(&wk_sem.waiters, __ATOMIC_SEQ_CST) > K - 2) &&
	       evqt_now(CLOCK_MONOTONIC) < until)
		sched_yield();
	is(atomic_load(&wk_got), 2, "wake-n: post(2) with %d sleepers -> exactly 2 take a token", K);
	is(evq_sem_value(&wk_sem), 0, "wake-n: count 0");
	is(__atomic_load_n(&wk_sem.waiters, __ATOMIC_SEQ_CST), K - 2,
	   "wake-n: the other %d still wait", K - 2);
	evq_sem_post(&wk_sem, K - 2);
	for (int i = 0; i < K; i++)
		pthread_join(t[i], NULL);
	is(atomic_load(&wk_got), K, "wake-n: the rest take the rest");
}

static void test_queue(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct evq_sem s;
	CHECK(evq_sem_init(&s, 3, 0) == 0);
	int64_t id = evq_add_sem(q, &s, 0, 77);
	ok(id >= 0, "queue: add_sem -> %" PRId64 "", id);
	is(evq_sem_value(&s), 3, "queue: adding takes no token");
	/* One event per wait call, each one token: 3 tokens -> 3 events. */
	int got = 0, good = 1;
	for (int i = 0; i < 3; i++) {
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		if (n != 1 || ev[0].data != 1 || ev[0].cookie != 77 ||
		    ev[0].kind != EVQ_KIND_SEM || ev[0].events != 0)
			good = 0;
		got += n;
	}
	ok(good && got == 3, "queue: 3 tokens -> 3 events of one token each");
	is(evq_sem_value(&s), 0, "queue: all taken on our behalf");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: no token -> no event");
	/* A post reaches the watcher. */
	evq_sem_post(&s, 1);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "queue: post(1) -> event");
	/* Nobody waits: the queue takes nothing (it is told a token is free
	 * and takes it only when evq_wait hands the event out). */
	evq_sem_post(&s, 2);
	/* not a sleep "long enough for the watcher": until the watcher has
	 * seen the post and sleeps again (every other thread asleep) */
	ok(evqt_until(evqt_quiescent()), "queue: the watcher settles after post(2)");
	is(evq_sem_value(&s), 2, "queue: nobody waiting -> no token taken");
	ok(evq_sem_trywait(&s) == 0 && evq_sem_trywait(&s) == 0,
	   "queue: both tokens free for anyone else");
	/* The event the watcher posted finds no token at evq_wait: nothing is
	 * handed out (no event with data 0), and the watch goes on. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: tokens gone before evq_wait -> no event");
	evq_sem_post(&s, 1);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "queue: ...and the next post is seen");
	/* give it back, and one of the two taken with trywait: 2 free */
	CHECK(evq_sem_post(&s, 2) == 0);
	/* Deleting gives back nothing: nothing is held. */
	ok(evqt_until(evqt_quiescent()), "queue: settled");
	is(evq_del(q, id), 0, "queue: evq_del");
	is(evq_sem_value(&s), 2, "queue: del neither takes nor gives a token");
	/* A token handed out and given back with evq_requeue is held by the
	 * registration: delivered again as it is, or given back by evq_del. */
	id = evq_add_sem(q, &s, 0, 78);
	CHECK(id >= 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	CHECK(n == 1 && ev[0].data == 1);
	is(evq_sem_value(&s), 1, "requeue: one token handed out");
	is(evq_requeue(q, &ev[0]), 0, "requeue: given back to the queue");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1 && evq_sem_value(&s) == 1,
	   "requeue: delivered again, no second token taken (value %d)", evq_sem_value(&s));
	is(evq_requeue(q, &ev[0]), 0, "requeue: given back again");
	is(evq_del(q, id), 0, "requeue: evq_del");
	is(evq_sem_value(&s), 2, "requeue: evq_del gave the requeued token back");
	/* evq_free: the same */
	id = evq_add_sem(q, &s, 0, 79);
	CHECK(id >= 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	CHECK(n == 1 && evq_requeue(q, &ev[0]) == 0);
	evq_free(q);
	is(evq_sem_value(&s), 2, "requeue: evq_free gave it back");
	is(__atomic_load_n(&s.waiters, __ATOMIC_SEQ_CST), 0, "queue: no waiter left counted");
}

static void test_disabled(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct evq_sem s;
	CHECK(evq_sem_init(&s, 0, 0) == 0);
	int64_t id = evq_add_sem(q, &s, 0, 1);
	CHECK(id >= 0);
	is(evq_mod(q, id, 0, EVQ_DISABLED), 0, "disabled: evq_mod(DISABLED)");
	evq_sem_post(&s, 1);
	/* a watcher that wrongly acquired would do so at once, then sleep */
	ok(evqt_until(evqt_quiescent()), "disabled: the watcher settles after the post");
	is(evq_sem_value(&s), 1, "disabled: acquires nothing");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: no event");
	is(evq_mod(q, id, 0, 0), 0, "disabled: enable");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "disabled: enabled -> event");
	is(evq_sem_value(&s), 0, "disabled: token taken");
	/* oneshot: one token, then nothing until enabled again */
	evq_sem_post(&s, 2);
	is(evq_mod(q, id, 0, EVQ_ONESHOT), 0, "oneshot: evq_mod(ONESHOT)");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1 && (ev[0].flags & EVQ_ONESHOT), "oneshot: one event");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: then nothing");
	is(evq_sem_value(&s), 1, "oneshot: the other token stays");
	evq_free(q);
	is(evq_sem_value(&s), 1, "oneshot: evq_free gives back nothing extra");
}

/* flags at evq_add_sem: EVQ_ONESHOT, EVQ_DISABLED, nothing else. */
static void test_flags(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct evq_sem s;
	CHECK(evq_sem_init(&s, 2, 0) == 0);
	static const uint32_t bad[] = { EVQ_EDGE, EVQ_ABSTIME, EVQ_SHARED, EVQ_NOREAP,
					0x40u, 0x100u, 0x80000000u,
					EVQ_ONESHOT | EVQ_EDGE };
	int good = 1;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (evq_add_sem(q, &s, bad[i], 1) != -EINVAL)
			good = 0;
	ok(good, "flags: anything but ONESHOT|DISABLED -> -EINVAL");
	is(evq_sem_value(&s), 2, "flags: refused adds took nothing");

	/* EVQ_DISABLED: registered, watching nothing, taking nothing */
	int64_t d = evq_add_sem(q, &s, EVQ_DISABLED, 5);
	ok(d >= 0, "flags: add(DISABLED) -> id");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: disabled -> no event with 2 tokens free");
	is(evq_sem_value(&s), 2, "flags: disabled -> no token taken");
	is(__atomic_load_n(&s.waiters, __ATOMIC_SEQ_CST), 0, "flags: disabled -> not counted as a waiter");
	is(evq_mod(q, d, 0, EVQ_ONESHOT), 0, "flags: enable as oneshot");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].cookie == 5 && ev[0].data == 1, "flags: enabled -> one event, one token");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: oneshot spent -> nothing more");
	is(evq_sem_value(&s), 1, "flags: one token taken");
	CHECK(evq_sem_post(&s, 1) == 0);
	is(evq_del(q, d), 0, "flags: del the disabled one");

	/* EVQ_ONESHOT at add: one token, then disabled until evq_mod */
	int64_t o = evq_add_sem(q, &s, EVQ_ONESHOT, 6);
	ok(o >= 0, "flags: add(ONESHOT) -> id");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == o && ev[0].data == 1 && ev[0].flags == EVQ_ONESHOT,
	   "flags: oneshot -> one event of one token");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: oneshot -> then nothing, a token still free");
	is(evq_sem_value(&s), 1, "flags: oneshot took one token");
	is(evq_mod(q, o, 0, EVQ_ONESHOT), 0, "flags: re-arm with evq_mod");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == o && ev[0].data == 1, "flags: re-armed -> the next token");
	is(evq_sem_value(&s), 0, "flags: both tokens taken");
	/* oneshot whose token goes elsewhere first: nothing delivered, not
	 * spent, the next token is delivered */
	is(evq_mod(q, o, 0, EVQ_ONESHOT), 0, "flags: re-arm with no token free");
	CHECK(evq_sem_post(&s, 1) == 0);
	ok(evqt_until(evqt_quiescent()), "flags: settled after the post");
	is(evq_sem_trywait(&s), 0, "flags: someone else takes the token first");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: oneshot -> no event for a token gone");
	CHECK(evq_sem_post(&s, 1) == 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == o && ev[0].data == 1, "flags: oneshot not spent by the lost race");
	evq_free(q);
	is(evq_sem_value(&s), 0, "flags: evq_free gives back nothing (all handed out)");
	is(__atomic_load_n(&s.waiters, __ATOMIC_SEQ_CST), 0, "flags: no waiter left counted");
}

/* No hoarding.  An idle queue (registered, nobody calling evq_wait) takes
 * no token, and a token posted while its watcher sleeps on the count
 * still reaches a thread sleeping in evq_sem_wait or a queue with a
 * thread in evq_wait (the idle registration passes the wake on). */
static struct evq_sem hs;
static atomic_int h_got, h_stop;
static void *h_sync(void *a)
{
	(void)a;
	/* no timeout: a wake that does not come is a failure, not a delay */
	while (evq_sem_wait(&hs, -1) == 0 && !atomic_load(&h_stop))
		atomic_fetch_add(&h_got, 1);
	return NULL;
}

static void test_no_hoard(void)
{
	enum { IDLE = 4, ROUNDS = 100 };
	struct evq *idle[IDLE], *busy = evqt_new();
	struct evq_event ev[NEV];
	CHECK(evq_sem_init(&hs, 0, 0) == 0);
	for (int i = 0; i < IDLE; i++) {
		idle[i] = evqt_new();
		CHECK(evq_add_sem(idle[i], &hs, 0, 1) >= 0);
	}
	/* the idle registrations watch the count (counted as waiters) */
	ok(evqt_until(__atomic_load_n(&hs.waiters, __ATOMIC_SEQ_CST) == IDLE),
	   "hoard: %d idle registrations watch the count", IDLE);
	/* a thread in evq_sem_wait gets every token posted, one at a time */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, h_sync, NULL) == 0);
	int good = 1;
	int polled = 0;
	for (int i = 0; i < ROUNDS && good; i++) {
		/* an idle registration whose watcher was told of a token
		 * stops watching until its queue is waited on: poll them, as
		 * a busy worker coming back would (no token is free now, so
		 * they hand out nothing and watch again) */
		for (int k = 0; k < IDLE; k++)
			polled += evq_wait(idle[k], ev, NEV, 0, NULL);
		/* all watching, and the thread asleep in evq_sem_wait */
		evqt_until(__atomic_load_n(&hs.waiters, __ATOMIC_SEQ_CST) == IDLE + 1 &&
			   evqt_quiescent());
		CHECK(evq_sem_post(&hs, 1) == 0);
		good = evqt_until(atomic_load(&h_got) == i + 1);
	}
	is(polled, 0, "hoard: the idle queues, polled between posts, hand out nothing");
	ok(good, "hoard: %d tokens posted one at a time all reach evq_sem_wait past "
	   "%d idle registrations (got %d)", ROUNDS, IDLE, atomic_load(&h_got));
	atomic_store(&h_stop, 1);
	CHECK(evq_sem_post(&hs, 1) == 0); /* the thread takes it and leaves */
	pthread_join(t, NULL);
	/* a queue waited on gets the tokens the idle ones do not take */
	int64_t id = evq_add_sem(busy, &hs, 0, 9);
	CHECK(id >= 0);
	int got = 0;
	for (int i = 0; i < ROUNDS / 4; i++) {
		CHECK(evq_sem_post(&hs, 1) == 0);
		int n = evqt_wait(busy, ev, NEV, EVQT_SOON);
		if (n == 1 && ev[0].data == 1 && ev[0].id == id)
			got++;
	}
	is(got, ROUNDS / 4, "hoard: a queue in evq_wait gets each token past %d idle ones", IDLE);
	is(evq_sem_value(&hs), 0, "hoard: the idle ones took none");
	for (int i = 0; i < IDLE; i++)
		evq_free(idle[i]);
	evq_free(busy);
	is(evq_sem_value(&hs), 0, "hoard: freeing them gives nothing back (none held)");
	is(__atomic_load_n(&hs.waiters, __ATOMIC_SEQ_CST), 0, "hoard: no waiter left counted");
}

/* Threads with queues and threads with evq_sem_wait compete; every token
 * taken is counted; the semaphore ends where it began. */
#define TOKENS 3
static struct evq_sem cs;
static atomic_long taken, holders;
static atomic_int max_holders;
static long per_thread;

static void hold(void)
{
	long h = atomic_fetch_add(&holders, 1) + 1;
	int m = atomic_load(&max_holders);
	while (h > m && !atomic_compare_exchange_weak(&max_holders, &m, (int)h))
		;
	atomic_fetch_add(&taken, 1);
	if ((atomic_load(&taken) & 7) == 0)
		sched_yield(); /* let others contend while we hold it */
	atomic_fetch_sub(&holders, 1);
}

static void *queue_thread(void *a)
{
	(void)a;
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	CHECK(evq_add_sem(q, &cs, 0, 1) >= 0);
	for (long i = 0; i < per_thread;) {
		int n = evq_wait(q, ev, NEV, EVQT_SOON, NULL);
		CHECK(n >= 1);
		for (int k = 0; k < n; k++, i++) {
			CHECK(ev[k].data == 1);
			hold();
			CHECK(evq_sem_post(&cs, 1) == 0);
		}
	}
	evq_free(q);
	return NULL;
}

static void *sync_thread(void *a)
{
	(void)a;
	for (long i = 0; i < per_thread; i++) {
		CHECK(evq_sem_wait(&cs, EVQT_SOON) == 0);
		hold();
		CHECK(evq_sem_post(&cs, 1) == 0);
	}
	return NULL;
}

static void test_compete(void)
{
	enum { NQ = 3, NS = 3 };
	pthread_t t[NQ + NS];
	per_thread = evqt_scale(20000);
	CHECK(evq_sem_init(&cs, TOKENS, 0) == 0);
	for (int i = 0; i < NQ; i++)
		CHECK(pthread_create(&t[i], NULL, queue_thread, NULL) == 0);
	for (int i = 0; i < NS; i++)
		CHECK(pthread_create(&t[NQ + i], NULL, sync_thread, NULL) == 0);
	for (int i = 0; i < NQ + NS; i++)
		pthread_join(t[i], NULL);
	is(atomic_load(&taken), (NQ + NS) * per_thread,
	   "compete: %d queue + %d sync threads x %ld cycles, every token counted",
	   NQ, NS, per_thread);
	ok(atomic_load(&max_holders) <= TOKENS, "compete: never more than %d holders (max %d)",
	   TOKENS, atomic_load(&max_holders));
	is(evq_sem_value(&cs), TOKENS, "compete: all %d tokens back", TOKENS);
	is(__atomic_load_n(&cs.waiters, __ATOMIC_SEQ_CST), 0, "compete: no waiter left counted");
}

/* Registrations come and go (evq_del or evq_free, with or without an
 * undelivered token, while the watcher may be acquiring) as other threads
 * take and give tokens: none may be lost or duplicated. */
static struct evq_sem churn_sem;
static long churn_rounds;

static void *churn_thread(void *a)
{
	unsigned seed = (unsigned)(uintptr_t)a;
	struct evq_event ev[4];
	for (long i = 0; i < churn_rounds; i++) {
		struct evq *q = evqt_new();
		int64_t id = evq_add_sem(q, &churn_sem, 0, 1);
		CHECK(id >= 0);
		int r = rand_r(&seed) % 4;
		if (r > 0) {
			int n = evq_wait(q, ev, 4, r == 1 ? 0 : 200000, NULL);
			for (int k = 0; k < n; k++)
				CHECK(evq_sem_post(&churn_sem, (uint32_t)ev[k].data) == 0);
		}
		if (rand_r(&seed) % 2)
			CHECK(evq_del(q, id) == 0);
		evq_free(q);
	}
	return NULL;
}

static void *churn_sync(void *a)
{
	(void)a;
	for (long i = 0; i < churn_rounds * 4; i++)
		if (evq_sem_wait(&churn_sem, 100000) == 0)
			CHECK(evq_sem_post(&churn_sem, 1) == 0);
	return NULL;
}

static void test_churn(void)
{
	enum { NQ = 3, NS = 2 };
	pthread_t t[NQ + NS];
	churn_rounds = evqt_scale(400);
	CHECK(evq_sem_init(&churn_sem, 2, 0) == 0);
	for (int i = 0; i < NQ; i++)
		CHECK(pthread_create(&t[i], NULL, churn_thread, (void *)(uintptr_t)(i + 1)) == 0);
	for (int i = 0; i < NS; i++)
		CHECK(pthread_create(&t[NQ + i], NULL, churn_sync, NULL) == 0);
	for (int i = 0; i < NQ + NS; i++)
		pthread_join(t[i], NULL);
	is(evq_sem_value(&churn_sem), 2, "churn: %d threads x %ld add/wait/del|free rounds, tokens back to 2",
	   NQ, churn_rounds);
	is(__atomic_load_n(&churn_sem.waiters, __ATOMIC_SEQ_CST), 0, "churn: no waiter left counted");
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("semaphores");
	test_bad_input();
	test_sync();
	test_wake_n();
	if (evqt_have_futex_waitv()) {
		test_queue();
		test_disabled();
		test_flags();
		test_no_hoard();
		test_compete();
		test_churn();
	} else {
		skip(1, "semaphores through queues: " EVQT_NO_WAITV);
	}
	done();
}
