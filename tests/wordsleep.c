/* SPDX-License-Identifier: MIT */
/*
 * wordsleep.c - what a thread asleep in evq_wait on memory words must
 * notice while it sleeps (on io_uring: the inline futex_waitv sleep, see
 * src/backend/uring/inline.c; on epoll: the watcher thread):
 *   - a latch or word added, or re-armed with a new value, by another
 *     thread is watched at once;
 *   - after evq_del of a word returns, the sleeper no longer sleeps on it:
 *     a later FUTEX_WAKE(1) reaches a plain futex waiter of the word, and
 *     the word's memory may be unmapped;
 *   - the first fd added wakes it into a sleep that watches fds, and
 *     removing it brings the words back;
 *   - a sleeper passing a sigmask and one passing none share the queue:
 *     every latch set gives exactly one event, also while the masked one
 *     comes and goes, and a latch added while both sleep is still watched
 *     after the masked one left for good;
 *   - more words than one futex_waitv takes (127) are all watched;
 *   - signals: a handler ends a wait on a queue of triggers only with
 *     -EINTR (SA_RESTART or not), a handler without SA_RESTART ends a
 *     wait on words with -EINTR, and any wait passed a sigmask gets -EINTR.
 */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 16


/* ---- a waiter thread that counts events by cookie ---- */

#define MAXC 256
struct counter {
	struct evq *q;
	const sigset_t *mask;     /* passed to evq_wait, or NULL */
	int64_t timeout;          /* per evq_wait */
	struct evq_latch *reset;  /* latches indexed by cookie, reset on event */
	_Atomic long count[MAXC];
	_Atomic long total, errors, eintr;
	long waits;               /* > 0: leave after that many evq_waits */
	_Atomic int stop, gone_own;
	_Atomic int *gone;        /* threads that left count_main */
	_Atomic int tid;          /* the thread's id */
};

static void *count_main(void *arg)
{
	struct counter *c = arg;
	struct evq_event ev[NEV];
	atomic_store(&c->tid, evqt_gettid());
	for (long w = 0; !atomic_load(&c->stop) && (c->waits <= 0 || w < c->waits); w++) {
		int n = evq_wait(c->q, ev, NEV, c->timeout, c->mask);
		if (n == -EINTR) {
			atomic_fetch_add(&c->eintr, 1);
			continue;
		}
		if (n < 0) {
			atomic_fetch_add(&c->errors, 1);
			continue;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].cookie >= MAXC)
				continue; /* the stop trigger */
			if (c->reset)
				evq_latch_reset(&c->reset[ev[i].cookie]);
			atomic_fetch_add(&c->count[ev[i].cookie], 1);
			atomic_fetch_add(&c->total, 1);
		}
	}
	atomic_fetch_add(c->gone, 1);
	return NULL;
}

/* Waits until count[ck] reaches want (or 10 s); 1 if it did. */
static int await_count(struct counter *c, int ck, long want)
{
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(&c->count[ck]) < want) {
		if (evqt_now(CLOCK_MONOTONIC) > end)
			return 0;
		evqt_sleep_ns(50000);
	}
	return 1;
}

/* Stops the nt threads of c (all of them counters whose stop is set, on
 * c->q): triggers until every one has left (one trigger may end the
 * sleeps of several threads, or two may coalesce into one event). */
static void stop_counter(struct counter *c, pthread_t *t, int nt)
{
	int64_t id = evq_add_user(c->q, MAXC + 1);
	atomic_store(&c->stop, 1);
	while (atomic_load(c->gone) < nt) {
		evq_trigger(c->q, id);
		evqt_sleep_ns(EVQT_MS);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
}

static struct counter *new_counter(struct evq *q)
{
	struct counter *c = calloc(1, sizeof *c);
	CHECK(c != NULL);
	c->q = q ? q : evqt_new();
	c->timeout = -1;
	c->gone = &c->gone_own;
	return c;
}

/* Initialises l[0..n) and adds the first nadd to q (cookie = index). */
static void latches(struct evq *q, struct evq_latch *l, int n, int nadd)
{
	for (int i = 0; i < n; i++) {
		evq_latch_init(&l[i], 0);
		if (i < nadd)
			CHECK(evq_add_latch(q, &l[i], 0, (uint64_t)i) >= 0);
	}
}

/* A sleeper on one latch; other latches and words are added, set and
 * deleted while it sleeps. */
static void test_arm_while_sleeping(void)
{
	static struct evq_latch l[MAXC];
	static uint32_t words[MAXC];
	struct counter *c = new_counter(NULL);
	c->reset = l;
	latches(c->q, l, MAXC, 1);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, count_main, c) == 0);
	long rounds = evqt_scale(200);
	int good = 1;
	for (long k = 0; k < rounds && good; k++) {
		int ck = 1 + (int)(k % (MAXC / 2 - 1));
		evqt_sleep_ns(k % 4 == 0 ? 2 * EVQT_MS : 20000); /* let it sleep */
		long before;
		int64_t id;
		if (k & 1) {
			before = atomic_load(&c->count[ck]);
			id = evq_add_latch(c->q, &l[ck], 0, (uint64_t)ck);
			CHECK(id >= 0);
			evqt_sleep_ns(20000);
			evq_latch_set(&l[ck]);
		} else {
			/* a word: then a new value through evq_mod_word */
			int wk = ck + MAXC / 2;
			before = atomic_load(&c->count[wk]);
			__atomic_store_n(&words[wk], 5, __ATOMIC_SEQ_CST);
			id = evq_add_word(c->q, &words[wk], 5, EVQ_ONESHOT, (uint64_t)wk);
			CHECK(id >= 0);
			evqt_sleep_ns(20000);
			/* re-armed while the waiter sleeps on it */
			CHECK(evq_mod_word(c->q, id, 5, EVQ_ONESHOT) == 0);
			evqt_sleep_ns(20000);
			__atomic_store_n(&words[wk], 5, __ATOMIC_SEQ_CST);
			evq_wake(&words[wk], 1, 0); /* no change from 5: no event */
			evqt_sleep_ns(20000);
			__atomic_store_n(&words[wk], 7, __ATOMIC_SEQ_CST);
			evq_wake(&words[wk], 1, 0);
			ck = wk;
		}
		if (!await_count(c, ck, before + 1)) {
			good = 0;
			diag("round %ld: no event for cookie %d", k, ck);
		}
		CHECK(evq_del(c->q, id) == 0);
	}
	/* the first latch still works */
	long before = atomic_load(&c->count[0]);
	evq_latch_set(&l[0]);
	int first = await_count(c, 0, before + 1);
	stop_counter(c, &t, 1);
	ok(good && first, "arm while asleep: %ld latches/words added and set while the "
	   "waiter slept, each reported", rounds);
	long extra = 0;
	for (int i = 1; i < MAXC; i++)
		extra += atomic_load(&c->count[i]);
	is(extra, rounds, "arm while asleep: one event each, none doubled (the word's "
	   "wake without a change gave none)");
	is(atomic_load(&c->errors), 0, "arm while asleep: no evq_wait error");
	evq_free(c->q);
	free(c);
}

/* After evq_del returns, the kernel no longer sleeps on the word for the
 * queue: a FUTEX_WAKE(1) must reach the plain waiter queued after it. */
static uint32_t *del_word;
static _Atomic int del_woke, plain_tid;

static void *plain_waiter(void *arg)
{
	(void)arg;
	atomic_store(&plain_tid, evqt_gettid());
	while (__atomic_load_n(del_word, __ATOMIC_SEQ_CST) == 0)
		syscall(SYS_futex, del_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_store(&del_woke, 1);
	return NULL;
}

static void test_del_while_sleeping(void)
{
	struct counter *c = new_counter(NULL);
	long rounds = evqt_scale(100);
	int good = 1, unmapped = 1, asleep = 1;
	pthread_t t;
	CHECK(pthread_create(&t, NULL, count_main, c) == 0);
	for (long k = 0; k < rounds && good; k++) {
		void *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(pg != MAP_FAILED);
		del_word = pg;
		atomic_store(&del_woke, 0);
		int64_t id = evq_add_word(c->q, del_word, 0, 0, 3);
		CHECK(id >= 0);
		/* The queue sleeps on the word: its waiter sleeps in evq_wait
		 * and every other thread (the epoll watcher) sleeps too - after
		 * the add, which woke them to take the word in.  (Were 2 ms
		 * sleeps: without them, the wake below could not go wrong.) */
		asleep &= evqt_until(c->q->sleepers > 0 &&
				     evqt_asleep_in_wait(atomic_load(&c->tid)) &&
				     evqt_quiescent());
		atomic_store(&plain_tid, 0);
		pthread_t p;
		CHECK(pthread_create(&p, NULL, plain_waiter, NULL) == 0);
		/* queued behind the queue's sleep */
		asleep &= evqt_until(atomic_load(&plain_tid) &&
				     evqt_asleep_in(atomic_load(&plain_tid), SYS_futex, del_word));
		CHECK(evq_del(c->q, id) == 0);
		__atomic_store_n(del_word, 1, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, del_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		int64_t end = evqt_now(CLOCK_MONOTONIC) + 5 * EVQT_SEC;
		while (!atomic_load(&del_woke) && evqt_now(CLOCK_MONOTONIC) < end)
			evqt_sleep_ns(100000);
		if (!atomic_load(&del_woke)) {
			good = 0;
			diag("round %ld: the wake went to the deleted word's sleeper", k);
			syscall(SYS_futex, del_word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
		}
		pthread_join(p, NULL);
		/* the sleeper must not touch it any more */
		if (munmap(pg, 4096) != 0)
			unmapped = 0;
	}
	/* and it still sleeps and wakes */
	int64_t uid = evq_add_user(c->q, 9);
	evq_trigger(c->q, uid);
	int alive = await_count(c, 9, 1);
	stop_counter(c, &t, 1);
	ok(asleep, "del while asleep: the queue and then the plain waiter slept on the "
	   "word in every round");
	ok(good && unmapped, "del while asleep: after evq_del the wake reaches the plain "
	   "waiter, and the word can be unmapped (%ld rounds)", rounds);
	ok(alive && atomic_load(&c->count[3]) == 0 && atomic_load(&c->errors) == 0,
	   "del while asleep: no event of the deleted word, the waiter still works");
	evq_free(c->q);
	free(c);
}

/* The first fd added while a waiter sleeps on words only. */
static void test_fd_while_sleeping(void)
{
	/* ls[0] is the latch (cookie 0); the fd's events (cookie 1) reset
	 * ls[1], which is never added */
	static struct evq_latch ls[2];
	struct evq_latch *l = &ls[0];
	struct counter *c = new_counter(NULL);
	c->reset = ls;
	latches(c->q, ls, 2, 1);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, count_main, c) == 0);
	long rounds = evqt_scale(100);
	int good = 1;
	for (long k = 0; k < rounds && good; k++) {
		int p[2];
		CHECK(pipe(p) == 0);
		evqt_sleep_ns(k % 4 == 0 ? 2 * EVQT_MS : 20000);
		long fdb = atomic_load(&c->count[1]), lb = atomic_load(&c->count[0]);
		int64_t id = evq_add_fd(c->q, p[0], EVQ_READ, EVQ_ONESHOT, 1);
		CHECK(id >= 0);
		CHECK(write(p[1], "x", 1) == 1);
		if (!await_count(c, 1, fdb + 1)) {
			good = 0;
			diag("round %ld: fd added while asleep never reported", k);
		}
		/* the latch is still watched while the fd is registered ... */
		evq_latch_set(l);
		if (!await_count(c, 0, lb + 1)) {
			good = 0;
			diag("round %ld: latch lost while an fd was registered", k);
		}
		CHECK(evq_del(c->q, id) == 0);
		close(p[0]);
		close(p[1]);
		/* ... and after it went */
		evqt_sleep_ns(20000);
		evq_latch_set(l);
		if (!await_count(c, 0, lb + 2)) {
			good = 0;
			diag("round %ld: latch lost after the fd went", k);
		}
	}
	stop_counter(c, &t, 1);
	ok(good && atomic_load(&c->errors) == 0,
	   "fd while asleep: %ld fds added to a words-only sleeper, latch watched "
	   "with and without them", rounds);
	evq_free(c->q);
	free(c);
}

/* Two waiters, one passing a sigmask (it sleeps in the ring on io_uring),
 * one not; the masked one also comes and goes with short timeouts. */
static void test_mask_mix(void)
{
	static struct evq_latch l[4];
	struct counter *a = new_counter(NULL), *b = new_counter(a->q);
	sigset_t none;
	sigemptyset(&none);
	b->gone = a->gone;
	b->timeout = 3 * EVQT_MS;
	b->mask = &none;
	a->reset = b->reset = l;
	latches(a->q, l, 4, 4);
	pthread_t t[2];
	CHECK(pthread_create(&t[0], NULL, count_main, a) == 0);
	CHECK(pthread_create(&t[1], NULL, count_main, b) == 0);
	long rounds = evqt_scale(2000);
	int good = 1;
	for (long k = 0; k < rounds && good; k++) {
		int i = (int)(k % 4);
		long want = k / 4 + 1;
		if (k % 64 == 0)
			evqt_sleep_ns(4 * EVQT_MS); /* the masked one times out */
		evq_latch_set(&l[i]);
		int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
		while (atomic_load(&a->count[i]) + atomic_load(&b->count[i]) < want &&
		       evqt_now(CLOCK_MONOTONIC) < end)
			evqt_sleep_ns(10000);
		if (atomic_load(&a->count[i]) + atomic_load(&b->count[i]) < want) {
			good = 0;
			diag("set %ld of latch %d: no event", k, i);
		}
	}
	/* An extra event (a set reported twice) would be handed out before
	 * every thread sleeps again: wait for that, not 20 ms. */
	evqt_until(evqt_quiescent());
	long total = atomic_load(&a->total) + atomic_load(&b->total);
	atomic_store(&b->stop, 1);
	stop_counter(a, t, 2);
	ok(good, "mask mix: %ld latch sets, a masked and an unmasked waiter, each "
	   "reported", rounds);
	is(total, rounds, "mask mix: exactly one event per set (unmasked %ld, masked %ld)",
	   atomic_load(&a->total), atomic_load(&b->total));
	ok(atomic_load(&a->errors) == 0 && atomic_load(&b->errors) == 0,
	   "mask mix: no evq_wait error");
	evq_free(a->q);
	free(a);
	free(b);
}

/* A latch added while a masked waiter sleeps (on io_uring it watches it
 * through the ring) and an unmasked one too; the masked one then leaves
 * for good: the other must watch the latch from then on. */
static void test_masked_leaves(void)
{
	enum { N = 64 };
	static struct evq_latch l[N];
	struct counter *a = new_counter(NULL);
	a->reset = l;
	latches(a->q, l, N, 1);
	pthread_t ta;
	CHECK(pthread_create(&ta, NULL, count_main, a) == 0);
	sigset_t none;
	sigemptyset(&none);
	long rounds = evqt_scale(60);
	int good = 1;
	for (long k = 0; k < rounds && good; k++) {
		int i = 1 + (int)(k % (N - 1));
		struct counter *b = new_counter(a->q);
		b->mask = &none;
		b->timeout = 3 * EVQT_MS;
		b->waits = 1;
		b->reset = l;
		/* a asleep, then b asleep too (or, if we missed its 3 ms
		 * sleep, gone: the check below holds either way; these were
		 * 1 ms sleeps) */
		evqt_until(a->q->sleepers > 0 && evqt_asleep_in_wait(atomic_load(&a->tid)));
		pthread_t tb;
		CHECK(pthread_create(&tb, NULL, count_main, b) == 0);
		evqt_until(atomic_load(b->gone) ||
			   (atomic_load(&b->tid) && a->q->sleepers > 1 &&
			    evqt_asleep_in_wait(atomic_load(&b->tid))));
		long before = atomic_load(&a->count[i]);
		int64_t id = evq_add_latch(a->q, &l[i], 0, (uint64_t)i);
		CHECK(id >= 0);
		pthread_join(tb, NULL); /* b timed out and left */
		evq_latch_set(&l[i]);
		if (!await_count(a, i, before + 1)) {
			good = 0;
			diag("round %ld: latch added while a masked waiter slept, set after it "
			     "left: never reported", k);
		}
		CHECK(evq_del(a->q, id) == 0);
		free(b);
	}
	stop_counter(a, &ta, 1);
	ok(good && atomic_load(&a->errors) == 0, "masked waiter leaves: %ld latches added "
	   "while it slept are watched by the other waiter after it left", rounds);
	evq_free(a->q);
	free(a);
}

/* More words than one futex_waitv takes. */
static void test_many_words(void)
{
	enum { N = 200 };
	static struct evq_latch l[N];
	struct counter *c = new_counter(NULL);
	c->reset = l;
	latches(c->q, l, N, N);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, count_main, c) == 0);
	int good = 1;
	long rounds = evqt_scale(400);
	for (long k = 0; k < rounds && good; k++) {
		int i = (int)((k * 37) % N);
		long before = atomic_load(&c->count[i]);
		if (k % 16 == 0)
			evqt_sleep_ns(EVQT_MS);
		evq_latch_set(&l[i]);
		if (!await_count(c, i, before + 1)) {
			good = 0;
			diag("set %ld: latch %d of %d never reported", k, i, N);
		}
	}
	stop_counter(c, &t, 1);
	ok(good && atomic_load(&c->total) == rounds && atomic_load(&c->errors) == 0,
	   "many words: %d latches, %ld sets, one event each (%ld)", N, rounds,
	   atomic_load(&c->total));
	evq_free(c->q);
	free(c);
}

/* ---- signals ---- */

static _Atomic int handled;
static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

struct sigwait_arg {
	struct evq *q;
	const sigset_t *mask;
	_Atomic int rc, tid;
};

static void *sig_waiter(void *arg)
{
	struct sigwait_arg *a = arg;
	struct evq_event ev[NEV];
	atomic_store(&a->tid, evqt_gettid());
	atomic_store(&a->rc, evq_wait(a->q, ev, NEV, EVQT_SOON, a->mask));
	return NULL;
}

/* Runs one evq_wait in a thread, signals it once it sleeps and returns
 * what evq_wait returned (the queue has nothing else to report), or 1 if
 * it was still asleep after a second of signals (then a trigger ends it). */
#define NOT_YET (-100000)
static int interrupted_wait(struct evq *q, const sigset_t *mask, int restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGUSR1, &sa, NULL);
	struct sigwait_arg a = { .q = q, .mask = mask, .rc = NOT_YET };
	atomic_store(&handled, 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, sig_waiter, &a) == 0);
	/* A signal that lands before the sleep starts ends nothing: wait
	 * (10 s at most) until the thread sleeps in the kernel inside evq_wait
	 * - it used to be 20 ms, "asleep, most likely", and a thread that
	 * slept only after the second of signals below failed the test */
	evqt_until(atomic_load(&a.tid) && atomic_load(&q->sleepers) > 0 &&
		   evqt_asleep_in_wait(atomic_load(&a.tid)));
	/* then one every 100 ms, for a second (the first ends it, unless the
	 * kernel restarts the sleep: SA_RESTART on io_uring's inline sleep) */
	for (int i = 0; i < 10 && atomic_load(&a.rc) == NOT_YET; i++) {
		pthread_kill(t, SIGUSR1);
		int64_t end = evqt_now(CLOCK_MONOTONIC) + 100 * EVQT_MS;
		while (atomic_load(&a.rc) == NOT_YET && evqt_now(CLOCK_MONOTONIC) < end)
			evqt_sleep_ns(EVQT_MS);
	}
	int rc = atomic_load(&a.rc);
	if (rc == NOT_YET) {
		/* still asleep (a restarted sleep): end it */
		int64_t id = evq_add_user(q, 77);
		evq_trigger(q, id);
		pthread_join(t, NULL);
		evq_del(q, id);
		return 1;
	}
	pthread_join(t, NULL);
	return rc;
}

static void test_signals(void)
{
	struct evq *q = evqt_new();
	int64_t uid = evq_add_user(q, 1);
	CHECK(uid >= 0);
	is(interrupted_wait(q, NULL, 1), -EINTR,
	   "signals: triggers only, SA_RESTART handler -> -EINTR");
	is(interrupted_wait(q, NULL, 0), -EINTR,
	   "signals: triggers only, handler without SA_RESTART -> -EINTR");
	static struct evq_latch l;
	evq_latch_init(&l, 0);
	CHECK(evq_add_latch(q, &l, 0, 2) >= 0);
	is(interrupted_wait(q, NULL, 0), -EINTR,
	   "signals: a latch, handler without SA_RESTART -> -EINTR");
	sigset_t none;
	sigemptyset(&none);
	is(interrupted_wait(q, &none, 1), -EINTR,
	   "signals: a latch, SA_RESTART handler, wait given a sigmask -> -EINTR");
	/* SA_RESTART without a sigmask: -EINTR on epoll; io_uring's inline
	 * futex_waitv sleep is restarted by the kernel (documented in
	 * evq_wait(3)), so the wait ends with the next event instead */
	int rc = interrupted_wait(q, NULL, 1);
	const char *be = evq_backend_name(q);
	if (strcmp(be, "epoll") == 0)
		is(rc, -EINTR, "signals: a latch, SA_RESTART handler -> -EINTR (epoll)");
	else
		ok(rc == -EINTR || rc == 1, "signals: a latch, SA_RESTART handler -> -EINTR, "
		   "or the sleep goes on to the next event (%s: %s)", be,
		   rc == 1 ? "went on" : "-EINTR");
	ok(atomic_load(&handled) >= 1, "signals: the handler ran");
	signal(SIGUSR1, SIG_DFL);
	ok(evqt_roundtrip(q), "signals: the queue still works");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(300);
	if (!evqt_have_futex_waitv())
		skip_all(EVQT_NO_WAITV);
	evqt_banner("words while the waiter sleeps");
	test_arm_while_sleeping();
	test_del_while_sleeping();
	test_fd_while_sleeping();
	test_mask_mix();
	test_masked_leaves();
	test_many_words();
	test_signals();
	return done();
}
