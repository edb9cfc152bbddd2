/* SPDX-License-Identifier: MIT */
/*
 * timerheap.c - the timer heap under tens of thousands of entries, checked
 * against a plain table, and the timer calls with a cancel pending.
 *
 * Heap: one thread adds, deletes and re-arms (evq_mod_timer) timers at
 * random with EVQ_ABSTIME deadlines that have all passed already (a few
 * thousand nanoseconds after the clock's epoch, many of them tied), so
 * nothing fires until the final evq_wait calls, which must then hand out
 * every live timer exactly once, in deadline order (a heap pops its
 * earliest entry first; a wrong sift or a stale position of a removed or
 * moved entry breaks the order, loses a timer or delivers a deleted one).
 * Deleting and re-arming at random positions exercises removal from the
 * middle of the heap in both directions; the size (many levels of a 4-ary
 * heap) and the ties exercise the sifts.
 *
 * Cancel: evq_add_timer, evq_mod_timer, evq_mod and evq_del are no
 * cancellation points, and timers take q->lock without disabling
 * cancellation (EVQ__KIND_NO_CANCEL_POINTS): with a cancel pending they
 * must return, leave the queue usable, and let the thread be cancelled only
 * at its next cancellation point (a cancellation point reached with the
 * lock held would end the thread here, and the join would see it).
 *
 * The random seed is printed; EVQ_TEST_SEED=n repeats a run.
 */
#include "evqtest.h"

#include <pthread.h>

#define NEV 512

static uint64_t rng;

static uint64_t rnd(void) /* xorshift64* */
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

struct tmr {
	int64_t id;        /* 0: not live */
	int64_t deadline;
	int seen;
};

/* a deadline long past: ties are common (NDEADLINES values) */
#define NDEADLINES 4096
static int64_t past_deadline(void)
{
	return 1 + (int64_t)(rnd() % NDEADLINES);
}

static void heap_vs_table(void)
{
	long n = evqt_scale(60000), ops = 4 * n;
	struct tmr *t = calloc((size_t)n, sizeof *t);
	struct evq *q = evqt_new();
	long live = 0, bad = 0;
	for (long k = 0; k < ops && !bad; k++) {
		long i = (long)(rnd() % (uint64_t)n);
		int op = (int)(rnd() % 4);
		int64_t d = past_deadline();
		if (!t[i].id) {
			t[i].id = evq_add_timer(q, CLOCK_MONOTONIC, d, 0, EVQ_ABSTIME,
						(uint64_t)i);
			t[i].deadline = d;
			bad += t[i].id < 0;
			live++;
		} else if (op == 0) {
			bad += evq_del(q, t[i].id) != 0;
			t[i].id = 0;
			live--;
		} else if (op == 1) {
			bad += evq_mod_timer(q, t[i].id, d, 0, EVQ_ABSTIME) != 0;
			t[i].deadline = d;
		}
	}
	ok(!bad, "%ld random adds, deletes and re-arms succeed (%ld live)", ops, live);

	struct evq_event ev[NEV];
	long got = 0, order = 0, dup = 0, dead = 0;
	int64_t last = INT64_MIN;
	for (;;) {
		int r = evq_wait(q, ev, NEV, 0, NULL);
		if (r <= 0)
			break;
		for (int j = 0; j < r; j++) {
			uint64_t i = ev[j].cookie;
			if (i >= (uint64_t)n || t[i].id != ev[j].id) {
				dead++;
				continue;
			}
			dup += t[i].seen++ > 0;
			order += t[i].deadline < last;
			last = t[i].deadline;
			got++;
		}
	}
	is(got, live, "every live timer fired once");
	ok(!dead && !dup, "no deleted timer fired, none twice (%ld, %ld)", dead, dup);
	ok(!order, "in deadline order (%ld out of order)", order);
	evq_free(q);
	free(t);
}

struct cancel_run {
	struct evq *q;
	int steps;         /* calls that returned before the cancel acted */
	int rc_bad;
};

static void *cancel_thread(void *arg)
{
	struct cancel_run *c = arg;
	int64_t when = 10 * EVQT_SEC;
	pthread_cancel(pthread_self()); /* pending: acts at the next point */
	int64_t id = evq_add_timer(c->q, CLOCK_MONOTONIC, when, 0, 0, 1);
	c->rc_bad += id < 0;
	c->steps++;
	c->rc_bad += evq_mod_timer(c->q, id, when, EVQT_SEC, 0) != 0;
	c->steps++;
	c->rc_bad += evq_mod(c->q, id, 0, EVQ_DISABLED) != 0;
	c->steps++;
	c->rc_bad += evq_del(c->q, id) != 0;
	c->steps++;
	pthread_testcancel();
	c->steps = -1; /* not reached */
	return NULL;
}

static void cancel_pending(void)
{
	struct cancel_run c = { .q = evqt_new() };
	pthread_t th;
	void *res = NULL;
	CHECK(pthread_create(&th, NULL, cancel_thread, &c) == 0);
	CHECK(pthread_join(th, &res) == 0);
	ok(res == PTHREAD_CANCELED && c.steps == 4 && !c.rc_bad,
	   "timer calls with a cancel pending return and succeed; the cancel acts "
	   "at the next point (steps %d, failures %d)", c.steps, c.rc_bad);
	/* the lock is free and the queue works */
	int64_t id = evq_add_timer(c.q, CLOCK_MONOTONIC, 0, 0, 0, 2);
	struct evq_event ev[4];
	int r = evq_wait(c.q, ev, 4, EVQT_SOON, NULL);
	ok(id > 0 && r == 1 && ev[0].cookie == 2, "the queue works afterwards");
	evq_free(c.q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("timerheap");
	rng = evqt_seed();
	heap_vs_table();
	cancel_pending();
	return done();
}
