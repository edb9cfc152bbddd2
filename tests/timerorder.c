/* SPDX-License-Identifier: MIT */
/*
 * timerorder.c - hundreds of timers with random deadlines arrive in
 * deadline order and on time.  One thread owns the queue: it adds one-shot
 * and periodic timers on CLOCK_MONOTONIC, CLOCK_REALTIME and CLOCK_BOOTTIME
 * (relative and EVQ_ABSTIME, some deadlines tied, some in the past), and
 * between waits re-arms some with evq_mod_timer, deletes some and adds
 * more while the others run.  Doing everything in one thread makes every
 * expectation exact:
 *
 *  - never early: each event's newest expiration is at or before the
 *    timer's clock read after evq_wait returned (deadlines are computed
 *    from a clock reading before the add, so a relative deadline is known
 *    to lie in [before + when, after + when]);
 *  - deadline order within one clock: in a batch, events of one clock come
 *    in order of their deadlines, and a timer armed before a call began is
 *    never left out of a batch that delivered a timer of the same clock
 *    with a later deadline (the heap pops the earliest deadline first);
 *  - periodic counts exact: at the end, each periodic timer's sum of data
 *    equals the periods passed between a clock reading before and one
 *    after a final poll;
 *  - not late beyond a generous bound (2 s, x5 under sanitizers and
 *    valgrind): a call that began that long after a timer's deadline
 *    delivers it, and every one-shot timer ends up delivered (a lost or
 *    parked timer fails here; speed is never asserted);
 *  - no event of a deleted timer, no second event of a one-shot timer,
 *    cookies and ids match.
 *
 * The random seed is printed; EVQ_TEST_SEED=n repeats a run.
 */
#include "evqtest.h"

#define MAXT 400          /* timers ever live at once; <= NEV */
#define NEV 512           /* a batch holds every live timer */
#define NCLK 3
#define SPAN (600 * EVQT_MS) /* deadlines: up to this far ahead */
#define RUN (800 * EVQT_MS)  /* re-arms, deletes and adds go on this long */

static const clockid_t clock_id[NCLK] = { CLOCK_MONOTONIC, CLOCK_REALTIME,
					  CLOCK_BOOTTIME };
static const char *const clock_name[NCLK] = { "MONOTONIC", "REALTIME", "BOOTTIME" };

struct tmr {
	int64_t id;        /* -1: slot unused */
	int clk;
	int64_t interval;  /* 0: one-shot */
	/* the next expiration not yet reported lies in [next_lo, next_hi] */
	int64_t next_lo, next_hi;
	int64_t first_lo, first_hi; /* first expiration since the last arm */
	uint64_t sum;      /* data since the last arm */
	long armed_call;   /* the first call that began after the last arm */
	int fired;         /* one-shot: delivered */
	long in_batch;     /* the call whose batch had it last, -1 none */
};

static struct tmr T[MAXT];
static long ncall;         /* calls made so far */
static int64_t late_ns;
static uint64_t rng;

/* failures, counted and reported once each kind */
static long n_early, n_order, n_batch_order, n_late, n_twice,
	n_badfields, n_unknown, n_period;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int64_t rnd_range(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* Arms T[i] (new when its id < 0, else with evq_mod_timer) on clock clk,
 * due `when` ns from now (< 0: in the past), every iv ns (0: once):
 * absolute or relative at random (a past deadline only absolute); every
 * 8th absolute deadline is rounded to 10 ms, so some deadlines tie. */
static void arm(struct evq *q, int i, int clk, int64_t when, int64_t iv)
{
	struct tmr *t = &T[i];
	int abs = when < 0 || (rnd() & 1);
	int64_t t0 = evqt_now(clock_id[clk]);
	int64_t arg = when;
	if (abs) {
		arg = t0 + when;
		if (rnd() % 8 == 0)
			arg -= arg % (10 * EVQT_MS);
	}
	uint32_t flags = abs ? EVQ_ABSTIME : 0;
	if (t->id < 0) {
		int64_t rc = evq_add_timer(q, clock_id[clk], arg, iv, flags, (uint64_t)i);
		CHECK(rc >= 0);
		t->id = rc;
	} else {
		CHECK(evq_mod_timer(q, t->id, arg, iv, flags) == 0);
	}
	int64_t t1 = evqt_now(clock_id[clk]);
	t->clk = clk;
	t->interval = iv;
	t->first_lo = abs ? arg : t0 + arg;
	t->first_hi = abs ? arg : t1 + arg;
	t->next_lo = t->first_lo;
	t->next_hi = t->first_hi;
	t->sum = 0;
	t->fired = 0;
	t->armed_call = ncall;
	t->in_batch = -1;
}

static void arm_random(struct evq *q, int i)
{
	/* evq_mod_timer keeps the timer's clock */
	int clk = T[i].id >= 0 ? T[i].clk : (int)(rnd() % NCLK);
	int64_t when = rnd() % 16 == 0 ? -rnd_range(0, 50 * EVQT_MS)
				       : rnd_range(0, SPAN);
	int64_t iv = rnd() % 5 < 2 ? rnd_range(10 * EVQT_MS, 200 * EVQT_MS) : 0;
	arm(q, i, clk, when, iv);
}

static int live(const struct tmr *t)
{
	return t->id >= 0 && !(t->interval == 0 && t->fired);
}

/* One evq_wait and every check on its batch. */
static int wait_and_check(struct evq *q, int64_t timeout)
{
	static struct evq_event ev[NEV];
	int64_t before[NCLK], after[NCLK];
	for (int c = 0; c < NCLK; c++)
		before[c] = evqt_now(clock_id[c]);
	long call = ncall++;
	int n = evqt_wait(q, ev, NEV, timeout);
	for (int c = 0; c < NCLK; c++)
		after[c] = evqt_now(clock_id[c]);
	CHECK(n >= 0);

	int64_t prev_lo[NCLK], max_lo[NCLK];
	for (int c = 0; c < NCLK; c++)
		prev_lo[c] = max_lo[c] = INT64_MIN;
	for (int k = 0; k < n; k++) {
		uint64_t i = ev[k].cookie;
		if (i >= MAXT || T[i].id < 0) {
			if (n_unknown++ == 0)
				diag("event with unknown cookie %llu (id %" PRId64 ")",
				     (unsigned long long)i, ev[k].id);
			continue;
		}
		struct tmr *t = &T[i];
		if (ev[k].id != t->id || ev[k].kind != EVQ_KIND_TIMER || ev[k].data < 1 ||
		    ev[k].ident != -1) {
			if (n_badfields++ == 0)
				diag("timer %llu: id %" PRId64 " (want %" PRId64 "), kind %u, data %llu",
				     (unsigned long long)i, ev[k].id, t->id, ev[k].kind,
				     (unsigned long long)ev[k].data);
			continue;
		}
		if (t->interval == 0 && (t->fired || ev[k].data != 1)) {
			if (n_twice++ == 0)
				diag("one-shot timer %llu delivered again (data %llu)",
				     (unsigned long long)i, (unsigned long long)ev[k].data);
			continue;
		}
		int c = t->clk;
		/* the newest expiration this event reports */
		int64_t newest = t->next_lo + (int64_t)(ev[k].data - 1) * t->interval;
		if (newest > after[c] && n_early++ == 0)
			diag("%s timer %llu early: expiration at %lld, clock %lld "
			     "after the wait",
			     clock_name[c], (unsigned long long)i, (long long)newest,
			     (long long)after[c]);
		/* in a batch, one clock's events come in deadline order */
		if (t->next_hi < prev_lo[c] && n_batch_order++ == 0)
			diag("%s timer %llu (deadline <= %lld) after one due at %lld in the "
			     "same batch", clock_name[c], (unsigned long long)i,
			     (long long)t->next_hi, (long long)prev_lo[c]);
		if (t->next_lo > prev_lo[c])
			prev_lo[c] = t->next_lo;
		if (t->next_lo > max_lo[c])
			max_lo[c] = t->next_lo;
		t->next_lo += (int64_t)ev[k].data * t->interval;
		t->next_hi += (int64_t)ev[k].data * t->interval;
		t->sum += ev[k].data;
		t->fired = 1;
		t->in_batch = call;
	}

	/* Timers left out of this batch: none may be due before a timer of its
	 * clock that the batch delivered, nor long before the call began. */
	for (int i = 0; i < MAXT; i++) {
		struct tmr *t = &T[i];
		if (!live(t) || t->in_batch == call || t->armed_call > call)
			continue;
		int c = t->clk;
		if (t->next_hi < max_lo[c] && n_order++ == 0)
			diag("%s timer %d (due <= %lld) left out of a batch that had one due "
			     "at %lld", clock_name[c], i, (long long)t->next_hi,
			     (long long)max_lo[c]);
		if (t->next_hi + late_ns < before[c] && n_late++ == 0)
			diag("%s timer %d due at <= %lld not delivered by a call that began "
			     "%lld ns later", clock_name[c], i, (long long)t->next_hi,
			     (long long)(before[c] - t->next_hi));
	}
	return n;
}

/* P(t): periods of a timer first due at d0 that have passed at time t. */
static uint64_t periods(int64_t t, int64_t d0, int64_t iv)
{
	return t < d0 ? 0 : (uint64_t)((t - d0) / iv) + 1;
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("timerorder");
	rng = evqt_seed();
	int slow = EVQT_SANITIZED || getenv("EVQ_TEST_VALGRIND");
	late_ns = (slow ? 10 : 2) * EVQT_SEC;

	struct evq *q = evqt_new();
	for (int i = 0; i < MAXT; i++)
		T[i].id = -1;
	int first = (int)evqt_scale(300);
	if (first > MAXT - 50)
		first = MAXT - 50;
	for (int i = 0; i < first; i++)
		arm_random(q, i);

	/* random re-arms, deletes and adds between waits */
	long adds = 0, mods = 0, dels = 0, events = 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + RUN;
	while (evqt_now(CLOCK_MONOTONIC) < end) {
		events += wait_and_check(q, (int64_t)(rnd() % 20) * EVQT_MS);
		int ops = (int)(rnd() % 4);
		for (int k = 0; k < ops; k++) {
			int i = (int)(rnd() % MAXT);
			struct tmr *t = &T[i];
			if (t->id < 0) {
				arm_random(q, i);
				adds++;
			} else if (rnd() % 3 == 0) {
				CHECK(evq_del(q, t->id) == 0);
				t->id = -1;
				dels++;
			} else {
				arm_random(q, i);
				mods++;
			}
		}
	}
	diag("%ld adds, %ld re-arms, %ld deletes, %ld events in %ld calls", adds, mods,
	     dels, events, ncall);

	/* Periodic counts: one poll bracketed by clock readings. */
	int64_t before[NCLK], after[NCLK];
	for (int c = 0; c < NCLK; c++)
		before[c] = evqt_now(clock_id[c]);
	wait_and_check(q, 0);
	for (int c = 0; c < NCLK; c++)
		after[c] = evqt_now(clock_id[c]);
	int nper = 0;
	for (int i = 0; i < MAXT; i++) {
		struct tmr *t = &T[i];
		if (t->id < 0 || t->interval == 0)
			continue;
		nper++;
		uint64_t lo = periods(before[t->clk], t->first_hi, t->interval);
		uint64_t hi = periods(after[t->clk], t->first_lo, t->interval);
		if ((t->sum < lo || t->sum > hi) && n_period++ == 0)
			diag("%s periodic timer %d (every %lld ns): sum of data %llu, "
			     "periods passed %llu..%llu", clock_name[t->clk], i,
			     (long long)t->interval, (unsigned long long)t->sum,
			     (unsigned long long)lo, (unsigned long long)hi);
		CHECK(evq_del(q, t->id) == 0);
		t->id = -1;
	}

	/* Every one-shot timer left arrives (deadlines are at most SPAN
	 * after the last arm). */
	int left = 0;
	for (int i = 0; i < MAXT; i++)
		left += live(&T[i]);
	int64_t give_up = evqt_now(CLOCK_MONOTONIC) + SPAN + late_ns;
	while (left > 0 && evqt_now(CLOCK_MONOTONIC) < give_up) {
		wait_and_check(q, 50 * EVQT_MS);
		left = 0;
		for (int i = 0; i < MAXT; i++)
			left += live(&T[i]);
	}

	is(left, 0, "every one-shot timer was delivered (none lost)");
	is(n_early, 0, "no timer event before its deadline");
	is(n_batch_order, 0, "in a batch, one clock's timers come in deadline order");
	is(n_order, 0, "no timer left out of a batch that delivered a later deadline "
		       "of its clock");
	is(n_late, 0, "no timer delivered more than %lld s late",
	   (long long)(late_ns / EVQT_SEC));
	is(n_period, 0, "%d periodic timers: sum of data == periods passed", nper);
	is(n_twice, 0, "no one-shot timer delivered twice");
	is(n_unknown + n_badfields, 0, "every event names a live timer with its own cookie");
	ok(evqt_roundtrip(q), "queue still works");
	evq_free(q);
	return done();
}
