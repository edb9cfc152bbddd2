/* SPDX-License-Identifier: MIT */
/*
 * mask.c - event masks without a queue: receiver notify/pending/ack,
 * callback receivers (run once per newly pending bits, on the notifier's
 * thread), waiters (immediate return, timeout, cross-thread wake, signal
 * handler interrupt), broadcasters (intersecting and disjoint masks,
 * unsubscribe, slot reuse, growth) and bad input (NULL, zero masks,
 * uninitialised objects, unknown and double-unsubscribed ids).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "evqtest.h"

#define ALL (~(evq_mask_t)0)

static void test_layout(void)
{
	/* The documented layout: reserved top bits, source bits = readiness. */
	ok(EVQ_MASK_TIMEOUT == 1ull << 63 && EVQ_MASK_INTERRUPT == 1ull << 62,
	   "layout: timeout bit 63, interrupt bit 62");
	ok(EVQ_MASK_READ == EVQ_READ && EVQ_MASK_WRITE == EVQ_WRITE &&
		   EVQ_MASK_ERR == EVQ_ERR && EVQ_MASK_HUP == EVQ_HUP,
	   "layout: readiness bits map to EVQ_READ/WRITE/ERR/HUP");
	ok((EVQ_MASK_RESERVED & EVQ_MASK_SOURCE) == 0 &&
		   (EVQ_MASK_APP & (EVQ_MASK_RESERVED | EVQ_MASK_SOURCE)) == 0 &&
		   (EVQ_MASK_APP | EVQ_MASK_RESERVED | EVQ_MASK_SOURCE) == ALL,
	   "layout: reserved, source and app bits partition the mask");
	ok(EVQ_MASK_APP_BIT(0) == 1ull << 16 && EVQ_MASK_APP_BIT(45) == 1ull << 61,
	   "layout: app bits 0..45 are mask bits 16..61");
	is(evq_mask_from_events(EVQ_READ | EVQ_HUP), EVQ_MASK_READ | EVQ_MASK_HUP,
	   "layout: evq_mask_from_events");
	is(evq_mask_to_events(EVQ_MASK_WRITE | EVQ_MASK_APP_BIT(3) | EVQ_MASK_TIMEOUT),
	   EVQ_WRITE, "layout: evq_mask_to_events keeps only source bits");
}

static void test_receiver(void)
{
	struct evq_receiver r;
	is(evq_receiver_init(&r, NULL, NULL), 0, "receiver: init");
	is(evq_receiver_pending(&r), 0, "receiver: nothing pending after init");
	/* The first notify of a bit makes it pending (returns 1), the second
	 * finds it pending already (returns 0). */
	is(evq_receiver_notify(&r, 0x5), 1, "receiver: notify 0x5 -> new bits");
	is(evq_receiver_notify(&r, 0x1), 0, "receiver: notify 0x1 again -> redundant");
	is(evq_receiver_notify(&r, 0x3), 1, "receiver: notify 0x3 -> bit 1 new");
	is(evq_receiver_pending(&r), 0x7, "receiver: pending == 0x7");
	/* Ack returns the acked bits that were pending and clears only them. */
	is(evq_receiver_ack(&r, 0x9), 0x1, "receiver: ack 0x9 -> 0x1 was pending");
	is(evq_receiver_pending(&r), 0x6, "receiver: pending == 0x6 after ack");
	is(evq_receiver_ack(&r, 0x8), 0, "receiver: ack of a bit not pending -> 0");
	is(evq_receiver_notify(&r, 0x1), 1, "receiver: acked bit is new again");
	is(evq_receiver_ack(&r, ALL), 0x7, "receiver: ack all -> 0x7");
	is(evq_receiver_pending(&r), 0, "receiver: nothing pending after ack all");
	is(evq_receiver_notify(&r, EVQ_MASK_TIMEOUT | EVQ_MASK_INTERRUPT), 1,
	   "receiver: reserved bits are ordinary bits");
	is(evq_receiver_pending(&r), EVQ_MASK_RESERVED, "receiver: top bits pending");
}

struct cb_log {
	int calls;
	evq_mask_t bits[8];
	struct evq_receiver *who;
	void *arg;
	pthread_t thread;
};

static void cb_record(struct evq_receiver *r, evq_mask_t bits, void *arg)
{
	struct cb_log *l = arg;
	if (l->calls < 8)
		l->bits[l->calls] = bits;
	l->calls++;
	l->who = r;
	l->arg = arg;
	l->thread = pthread_self();
}

static void test_callback(void)
{
	struct cb_log log;
	memset(&log, 0, sizeof log);
	struct evq_receiver r;
	CHECK(evq_receiver_init(&r, cb_record, &log) == 0);
	/* The callback runs with exactly the newly pending bits, on the
	 * notifier's thread, with r and arg. */
	evq_receiver_notify(&r, 0x3);
	ok(log.calls == 1 && log.bits[0] == 0x3 && log.who == &r &&
		   log.arg == &log && pthread_equal(log.thread, pthread_self()),
	   "callback: first notify -> one call with 0x3, r, arg, this thread");
	evq_receiver_notify(&r, 0x3);
	is(log.calls, 1, "callback: redundant notify -> no call");
	evq_receiver_notify(&r, 0x6);
	ok(log.calls == 2 && log.bits[1] == 0x4,
	   "callback: notify 0x6 with 0x2 pending -> call with 0x4 only (got %#llx)",
	   (unsigned long long)log.bits[1]);
	evq_receiver_ack(&r, 0x1);
	evq_receiver_notify(&r, 0x1);
	ok(log.calls == 3 && log.bits[2] == 0x1,
	   "callback: after ack, the bit calls again");
	/* The pending bits are visible inside the callback already. */
	is(evq_receiver_pending(&r), 0x7, "callback: pending == 0x7");
}

/* A callback that acks at once: every notify is "new" (a forwarder). */
static void cb_forward(struct evq_receiver *r, evq_mask_t bits, void *arg)
{
	atomic_fetch_add((atomic_long *)arg, 1);
	evq_receiver_ack(r, bits);
}

static void test_forwarder(void)
{
	atomic_long n = 0;
	struct evq_receiver r;
	CHECK(evq_receiver_init(&r, cb_forward, &n) == 0);
	for (int i = 0; i < 10; i++)
		evq_receiver_notify(&r, 0x10);
	is(atomic_load(&n), 10, "forwarder: a callback that acks sees every notify");
	is(evq_receiver_pending(&r), 0, "forwarder: nothing left pending");
}

/* Notifies w once thread `waiter` sleeps on w's futex word (it was: after
 * 20 ms, when it slept most likely). */
struct notify_arg {
	struct evq_waiter *w;
	evq_mask_t bits;
	pid_t waiter;
	int asleep;
};

static void *notify_later(void *p)
{
	struct notify_arg *a = p;
	a->asleep = evqt_until(evqt_asleep_in(a->waiter, SYS_futex, &a->w->state));
	evq_receiver_notify(&a->w->receiver, a->bits);
	return NULL;
}

static void test_waiter(void)
{
	struct evq_waiter w;
	is(evq_waiter_init(&w), 0, "waiter: init");
	/* Nothing pending: a poll (timeout 0) returns the timeout bit. */
	is(evq_waiter_wait(&w, 0x1, 0), EVQ_MASK_TIMEOUT, "waiter: poll -> timeout bit");
	/* Pending bits return at once, and only the subset asked for; wait
	 * does not ack. */
	evq_receiver_notify(&w.receiver, 0x6);
	is(evq_waiter_wait(&w, 0x3, -1), 0x2, "waiter: pending subset 0x2 of 0x3");
	is(evq_waiter_wait(&w, 0xf, 0), 0x6, "waiter: 0x6 still pending (no ack)");
	evq_receiver_ack(&w.receiver, ALL);

	/* A timed wait with no notifier times out after >= the timeout. */
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	evq_mask_t got = evq_waiter_wait(&w, 0x1, 30 * EVQT_MS);
	int64_t dt = evqt_now(CLOCK_MONOTONIC) - t0;
	ok(got == EVQ_MASK_TIMEOUT && dt >= 30 * EVQT_MS,
	   "waiter: 30 ms timeout -> timeout bit after %lld ns", (long long)dt);

	/* Bits the wait does not ask for do not end it. */
	evq_receiver_notify(&w.receiver, 0x100);
	is(evq_waiter_wait(&w, 0x1, 20 * EVQT_MS), EVQ_MASK_TIMEOUT,
	   "waiter: other pending bits -> still times out");
	evq_receiver_ack(&w.receiver, ALL);

	/* Another thread's notify wakes a sleeping waiter (forever wait), with
	 * the bit it notified, well before the watchdog. */
	pthread_t th;
	struct notify_arg a = { &w, 0x40, evqt_gettid(), 0 };
	CHECK(pthread_create(&th, NULL, notify_later, &a) == 0);
	got = evq_waiter_wait(&w, 0x40 | 0x1, -1);
	pthread_join(th, NULL);
	is(got, 0x40, "waiter: cross-thread notify wakes the sleeper");
	ok(a.asleep, "waiter: ... seen asleep before the notify");
	evq_receiver_ack(&w.receiver, ALL);

	/* ... also a timed wait, before its timeout. */
	a.bits = 0x1;
	a.asleep = 0;
	CHECK(pthread_create(&th, NULL, notify_later, &a) == 0);
	t0 = evqt_now(CLOCK_MONOTONIC);
	got = evq_waiter_wait(&w, 0x1, 5 * EVQT_SEC);
	dt = evqt_now(CLOCK_MONOTONIC) - t0;
	pthread_join(th, NULL);
	ok(got == 0x1 && a.asleep && dt < 4 * EVQT_SEC,
	   "waiter: timed wait, seen asleep, woken by notify (%lld ns)", (long long)dt);
	evq_receiver_ack(&w.receiver, ALL);

}

static struct evq_waiter pp_a, pp_b;
static long pp_rounds;

static void *pp_thread(void *p)
{
	(void)p;
	for (long i = 0; i < pp_rounds; i++) {
		evq_waiter_wait(&pp_b, 0x1, -1);
		evq_receiver_ack(&pp_b.receiver, 0x1);
		evq_receiver_notify(&pp_a.receiver, 0x2);
	}
	return NULL;
}

static void test_pingpong(void)
{
	/* Two threads bounce a bit back and forth; every round trip is one
	 * notify that must wake a (possibly sleeping) waiter: a lost wakeup
	 * hangs and the watchdog fails the test. */
	pp_rounds = evqt_scale(20000);
	CHECK(evq_waiter_init(&pp_a) == 0 && evq_waiter_init(&pp_b) == 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, pp_thread, NULL) == 0);
	long seen = 0;
	for (long i = 0; i < pp_rounds; i++) {
		evq_receiver_notify(&pp_b.receiver, 0x1);
		if (evq_waiter_wait(&pp_a, 0x2, -1) == 0x2)
			seen++;
		evq_receiver_ack(&pp_a.receiver, 0x2);
	}
	pthread_join(th, NULL);
	is(seen, pp_rounds, "pingpong: %ld round trips, each answered", pp_rounds);
}

static struct evq_waiter sig_w;

static void on_sigusr1(int sig)
{
	(void)sig;
	int saved = errno;
	errno = 1234;
	evq_receiver_notify(&sig_w.receiver, EVQ_MASK_INTERRUPT);
	if (errno != 1234)
		_exit(3); /* notify must preserve errno */
	errno = saved;
}

static void *send_signal(void *p)
{
	evqt_sleep_ns(20 * EVQT_MS);
	pthread_kill(*(pthread_t *)p, SIGUSR1);
	return NULL;
}

static void test_interrupt(void)
{
	/* A signal alone does not end the wait; a handler that notifies the
	 * interrupt bit does (notify is async-signal-safe). */
	CHECK(evq_waiter_init(&sig_w) == 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr1;
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	pthread_t self = pthread_self(), th;
	CHECK(pthread_create(&th, NULL, send_signal, &self) == 0);
	evq_mask_t got = evq_waiter_wait(&sig_w, 0x1 | EVQ_MASK_INTERRUPT, 5 * EVQT_SEC);
	pthread_join(th, NULL);
	is(got, EVQ_MASK_INTERRUPT, "interrupt: handler's notify ends the wait");
	signal(SIGUSR1, SIG_DFL);
}

static void test_bcast(void)
{
	struct evq_bcast b;
	is(evq_bcast_init(&b), 0, "bcast: init");
	/* Notify with no subscribers: fine, nothing happens. */
	is(evq_bcast_notify(&b, 0x1), 0, "bcast: notify with no subscribers");

	struct evq_receiver r[4];
	for (int i = 0; i < 4; i++)
		CHECK(evq_receiver_init(&r[i], NULL, NULL) == 0);
	int64_t id0 = evq_bcast_subscribe(&b, &r[0], 0x3);   /* bits 0,1 */
	int64_t id1 = evq_bcast_subscribe(&b, &r[1], 0x4);   /* bit 2 */
	int64_t id2 = evq_bcast_subscribe(&b, &r[2], 0x6);   /* bits 1,2 */
	ok(id0 >= 0 && id1 >= 0 && id2 >= 0 && id0 != id1 && id1 != id2 && id0 != id2,
	   "bcast: three subscriptions, distinct ids %" PRId64 " %" PRId64 " %" PRId64, id0, id1, id2);
	/* Each receiver gets bits & its mask; r[3] (not subscribed) nothing. */
	is(evq_bcast_notify(&b, 0x2 | 0x8), 0, "bcast: notify 0xa");
	ok(evq_receiver_pending(&r[0]) == 0x2 && evq_receiver_pending(&r[1]) == 0 &&
		   evq_receiver_pending(&r[2]) == 0x2 && evq_receiver_pending(&r[3]) == 0,
	   "bcast: 0xa reaches r0 and r2 with 0x2, not r1 (disjoint), not r3");
	evq_bcast_notify(&b, 0x4);
	ok(evq_receiver_pending(&r[0]) == 0x2 && evq_receiver_pending(&r[1]) == 0x4 &&
		   evq_receiver_pending(&r[2]) == 0x6,
	   "bcast: 0x4 reaches r1 and r2");
	/* Bits outside every mask reach nobody. */
	evq_bcast_notify(&b, 0xf0);
	ok(evq_receiver_pending(&r[0]) == 0x2 && evq_receiver_pending(&r[1]) == 0x4 &&
		   evq_receiver_pending(&r[2]) == 0x6,
	   "bcast: 0xf0 intersects no mask: nothing changes");

	/* Unsubscribed: no more notifications; the id is dead. */
	is(evq_bcast_unsubscribe(&b, id1), 0, "bcast: unsubscribe r1");
	evq_receiver_ack(&r[1], ALL);
	evq_bcast_notify(&b, 0x4);
	is(evq_receiver_pending(&r[1]), 0, "bcast: unsubscribed r1 not notified");
	is(evq_bcast_unsubscribe(&b, id1), -ENOENT, "bcast: double unsubscribe -> -ENOENT");
	/* The slot is reused with a new generation: the old id stays dead. */
	int64_t id3 = evq_bcast_subscribe(&b, &r[3], 0x4);
	ok(id3 >= 0 && id3 != id1 && (uint32_t)id3 == (uint32_t)id1,
	   "bcast: slot reused, new id %" PRId64 " != old %" PRId64, id3, id1);
	is(evq_bcast_unsubscribe(&b, id1), -ENOENT, "bcast: stale id after reuse -> -ENOENT");
	evq_bcast_notify(&b, 0x4);
	is(evq_receiver_pending(&r[3]), 0x4, "bcast: new tenant notified");
	is(evq_bcast_unsubscribe(&b, 12345), -ENOENT, "bcast: unknown id -> -ENOENT");
	is(evq_bcast_unsubscribe(&b, -1), -ENOENT, "bcast: negative id -> -ENOENT");
	is(evq_bcast_unsubscribe(&b, (int)id3), -ENOENT,
	   "bcast: an id truncated to an int -> -ENOENT");
	{
		/* 100,000 reuses of one slot: every id distinct and >= 2^32,
		 * every old one refused afterwards (0.1's 7-bit generation
		 * accepted a stale id again after 128) */
		enum { CYCLES = 100000 };
		static int64_t old[CYCLES];
		struct evq_receiver x;
		CHECK(evq_receiver_init(&x, NULL, NULL) == 0);
		int good = 1;
		for (int i = 0; i < CYCLES && good; i++) {
			old[i] = evq_bcast_subscribe(&b, &x, 0x8);
			good = old[i] >= ((int64_t)1 << 32) && (i == 0 || old[i] != old[i - 1]) &&
			       evq_bcast_unsubscribe(&b, old[i]) == 0;
		}
		int64_t live = evq_bcast_subscribe(&b, &x, 0x8);
		int refused = 0;
		for (int i = 0; i < CYCLES; i++)
			refused += evq_bcast_unsubscribe(&b, old[i]) == -ENOENT;
		ok(good && refused == CYCLES, "bcast: %d reuses of a slot, %d stale ids refused",
		   CYCLES, refused);
		evq_bcast_notify(&b, 0x8);
		ok(evq_receiver_pending(&x) == 0x8 && evq_bcast_unsubscribe(&b, live) == 0,
		   "bcast: the live subscription is untouched");
		evq_receiver_ack(&x, 0x8);
	}

	/* One receiver subscribed twice gets the union. */
	struct evq_receiver u;
	CHECK(evq_receiver_init(&u, NULL, NULL) == 0);
	int64_t a1 = evq_bcast_subscribe(&b, &u, 0x10), a2 = evq_bcast_subscribe(&b, &u, 0x20);
	evq_bcast_notify(&b, 0x30);
	is(evq_receiver_pending(&u), 0x30, "bcast: receiver subscribed twice gets both");
	CHECK(evq_bcast_unsubscribe(&b, a1) == 0 && evq_bcast_unsubscribe(&b, a2) == 0);

	/* A waiter subscribed to a broadcaster is woken by it. */
	struct evq_waiter w;
	CHECK(evq_waiter_init(&w) == 0);
	int64_t wid = evq_bcast_subscribe(&b, &w.receiver, 0x100);
	CHECK(wid >= 0);
	evq_bcast_notify(&b, 0x100);
	is(evq_waiter_wait(&w, 0x100, 0), 0x100, "bcast: waiter subscribed gets the bit");
	CHECK(evq_bcast_unsubscribe(&b, wid) == 0);

	/* Growth: 1000 subscribers (tables copied), all notified; then half
	 * unsubscribed, and only the other half notified. */
	enum { N = 1000 };
	static struct evq_receiver many[N];
	static int64_t ids[N];
	int okc = 1;
	for (int i = 0; i < N; i++) {
		CHECK(evq_receiver_init(&many[i], NULL, NULL) == 0);
		ids[i] = evq_bcast_subscribe(&b, &many[i], (evq_mask_t)1 << (i % 64));
		okc &= ids[i] >= 0;
	}
	ok(okc, "bcast: %d subscriptions", N);
	evq_bcast_notify(&b, ALL);
	int got = 0;
	for (int i = 0; i < N; i++)
		got += evq_receiver_pending(&many[i]) == (evq_mask_t)1 << (i % 64);
	is(got, N, "bcast: all %d notified with their own bit", N);
	for (int i = 0; i < N; i += 2)
		okc &= evq_bcast_unsubscribe(&b, ids[i]) == 0;
	for (int i = 0; i < N; i++)
		evq_receiver_ack(&many[i], ALL);
	evq_bcast_notify(&b, ALL);
	got = 0;
	for (int i = 0; i < N; i++)
		got += (evq_receiver_pending(&many[i]) != 0) == (i % 2 == 1);
	ok(okc && got == N, "bcast: after unsubscribing evens, only odds notified");
	evq_bcast_destroy(&b);
	/* Destroyed: like uninitialised. */
	is(evq_bcast_notify(&b, 0x1), -EINVAL, "bcast: notify after destroy -> -EINVAL");
}

static void test_bad_input(void)
{
	struct evq_receiver r, junk;
	struct evq_waiter w, wjunk;
	struct evq_bcast b, bjunk;
	memset(&junk, 0xa5, sizeof junk);
	memset(&wjunk, 0, sizeof wjunk);
	memset(&bjunk, 0, sizeof bjunk);
	CHECK(evq_receiver_init(&r, NULL, NULL) == 0);
	CHECK(evq_waiter_init(&w) == 0);
	CHECK(evq_bcast_init(&b) == 0);

	is(evq_receiver_init(NULL, NULL, NULL), -EINVAL, "bad: receiver_init(NULL)");
	is(evq_receiver_notify(NULL, 1), -EINVAL, "bad: notify(NULL)");
	is(evq_receiver_notify(&r, 0), -EINVAL, "bad: notify zero bits");
	is(evq_receiver_notify(&junk, 1), -EINVAL, "bad: notify uninitialised receiver");
	is(evq_receiver_pending(NULL), 0, "bad: pending(NULL) -> 0");
	is(evq_receiver_ack(NULL, 1), 0, "bad: ack(NULL) -> 0");
	is(evq_waiter_init(NULL), -EINVAL, "bad: waiter_init(NULL)");
	is(evq_waiter_wait(NULL, 1, 0), 0, "bad: waiter_wait(NULL) -> 0");
	is(evq_waiter_wait(&w, 0, -1), 0, "bad: waiter_wait zero bits -> 0 (no hang)");
	is(evq_waiter_wait(&wjunk, 1, -1), 0, "bad: waiter_wait uninitialised -> 0");
	/* A plain receiver is not a waiter. */
	struct evq_waiter fake;
	memset(&fake, 0, sizeof fake);
	CHECK(evq_receiver_init(&fake.receiver, NULL, NULL) == 0);
	is(evq_waiter_wait(&fake, 1, -1), 0, "bad: waiter_wait on a plain receiver -> 0");
	is(evq_bcast_init(NULL), -EINVAL, "bad: bcast_init(NULL)");
	is(evq_bcast_subscribe(NULL, &r, 1), -EINVAL, "bad: subscribe(NULL b)");
	is(evq_bcast_subscribe(&b, NULL, 1), -EINVAL, "bad: subscribe(NULL r)");
	is(evq_bcast_subscribe(&b, &r, 0), -EINVAL, "bad: subscribe zero mask");
	is(evq_bcast_subscribe(&bjunk, &r, 1), -EINVAL, "bad: subscribe uninitialised b");
	is(evq_bcast_subscribe(&b, &junk, 1), -EINVAL, "bad: subscribe uninitialised r");
	is(evq_bcast_unsubscribe(NULL, 0), -EINVAL, "bad: unsubscribe(NULL)");
	is(evq_bcast_unsubscribe(&bjunk, 0), -EINVAL, "bad: unsubscribe uninitialised b");
	is(evq_bcast_unsubscribe(&b, 0), -ENOENT, "bad: unsubscribe on empty b -> -ENOENT");
	is(evq_bcast_notify(NULL, 1), -EINVAL, "bad: bcast_notify(NULL)");
	is(evq_bcast_notify(&b, 0), -EINVAL, "bad: bcast_notify zero bits");
	is(evq_bcast_notify(&bjunk, 1), -EINVAL, "bad: bcast_notify uninitialised");
	evq_bcast_destroy(NULL);
	evq_bcast_destroy(&bjunk);
	ok(1, "bad: bcast_destroy(NULL / uninitialised) ignored");
	/* Nothing above changed r. */
	is(evq_receiver_pending(&r), 0, "bad: receiver untouched");
	evq_bcast_destroy(&b);
}

int main(void)
{
	evqt_watchdog(60);
	test_layout();
	test_receiver();
	test_callback();
	test_forwarder();
	test_waiter();
	test_pingpong();
	test_interrupt();
	test_bcast();
	test_bad_input();
	return done();
}
