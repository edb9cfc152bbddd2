/* SPDX-License-Identifier: MIT */
/*
 * timerpool.c - a periodic timer in a pool of threads (issue 12, item 8).
 *
 * A periodic timer fires on time whether or not a thread still handles
 * its last expiry, so in a pool two threads may handle it at once (as a
 * level-triggered fd).  The documented pattern (evq_wait(3) "Many
 * waiters"): register it EVQ_ONESHOT and re-arm it after handling with
 * evq_mod(q, id, 0, EVQ_ONESHOT).  Checked here with 4 threads and
 * handlers that take longer than a period: no two threads ever handle the
 * timer at once (an atomic in-handler counter), and no expiration is lost
 * or invented: the data of its events add up to the periods elapsed (at
 * most those elapsed by now, at least those elapsed when we stopped
 * counting).  The pool is stopped with evq_shutdown().
 */
#include <pthread.h>

#include "evqtest.h"

#define NTHREADS 4
#define PERIOD (1 * EVQT_MS)

static struct evq *q;
static int64_t tid_timer, t0;
static int oneshot;
static _Atomic int inside, overlaps, bad;
static _Atomic long total, events, merged;

static void spin_until(int64_t t)
{
	while (evqt_now(CLOCK_MONOTONIC) < t)
		;
}

static void *worker(void *arg)
{
	(void)arg;
	struct evq_event ev[4];
	for (;;) {
		int n = evq_wait(q, ev, 4, -1, NULL);
		if (n == -ESHUTDOWN)
			return NULL;
		if (n < 0 && n != -EINTR) {
			atomic_fetch_add(&bad, 1);
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].id != tid_timer || ev[i].kind != EVQ_KIND_TIMER || ev[i].data < 1) {
				atomic_fetch_add(&bad, 1);
				continue;
			}
			if (atomic_fetch_add(&inside, 1) != 0)
				atomic_fetch_add(&overlaps, 1);
			/* handling takes 1.5 periods: the timer expires meanwhile */
			spin_until(evqt_now(CLOCK_MONOTONIC) + PERIOD * 3 / 2);
			atomic_fetch_add(&total, (long)ev[i].data);
			atomic_fetch_add(&events, 1);
			if (ev[i].data > 1)
				atomic_fetch_add(&merged, 1);
			atomic_fetch_sub(&inside, 1);
			/* re-arm after handling; the period is kept */
			if (oneshot && evq_mod(q, tid_timer, 0, EVQ_ONESHOT) != 0)
				atomic_fetch_add(&bad, 1);
		}
	}
}

/* Expirations of the timer by time t (deadlines t0, t0 + P, ...). */
static long expirations(int64_t t)
{
	return t < t0 ? 0 : (long)((t - t0) / PERIOD) + 1;
}

static void run(int use_oneshot, long target)
{
	const char *what = use_oneshot ? "EVQ_ONESHOT + evq_mod re-arm" : "plain periodic";
	q = evqt_new();
	oneshot = use_oneshot;
	atomic_store(&inside, 0);
	atomic_store(&overlaps, 0);
	atomic_store(&bad, 0);
	atomic_store(&total, 0);
	atomic_store(&events, 0);
	atomic_store(&merged, 0);
	t0 = evqt_now(CLOCK_MONOTONIC) + PERIOD;
	tid_timer = evq_add_timer(q, CLOCK_MONOTONIC, t0, PERIOD,
				  EVQ_ABSTIME | (use_oneshot ? EVQ_ONESHOT : 0), 42);
	CHECK(tid_timer >= 0);
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&th[i], NULL, worker, NULL) == 0);

	ok(evqt_until(atomic_load(&total) >= target), "%s: %ld expirations handled", what,
	   target);
	int64_t t_stop = evqt_now(CLOCK_MONOTONIC);
	long e_stop = expirations(t_stop);
	/* every period elapsed by t_stop is delivered, sooner or later */
	ok(evqt_until(atomic_load(&total) >= e_stop),
	   "%s: the data add up to the %ld periods elapsed when we stopped counting", what,
	   e_stop);
	CHECK(evq_shutdown(q) == 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	long e_end = expirations(evqt_now(CLOCK_MONOTONIC)), got = atomic_load(&total);
	ok(got <= e_end, "%s: no more than the %ld periods elapsed by now (got %ld)", what,
	   e_end, got);
	is(atomic_load(&bad), 0, "%s: every event the timer's, data >= 1, re-arm ok", what);
	diag("%s: %ld events, %ld carried more than one expiration, %d overlapped",
	     what, atomic_load(&events), atomic_load(&merged), atomic_load(&overlaps));
	if (use_oneshot)
		is(atomic_load(&overlaps), 0, "%s: never two threads handling it at once", what);
	is(evq_del(q, tid_timer), 0, "%s: evq_del after shutdown", what);
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("periodic timer in a 4-thread pool");
	/* Without the pattern (not asserted: it only shows why it is needed;
	 * the overlaps depend on scheduling). */
	run(0, evqt_scale(50));
	run(1, evqt_scale(200));
	done();
}
