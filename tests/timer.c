/* SPDX-License-Identifier: MIT */
/*
 * timer.c - timers on CLOCK_MONOTONIC, CLOCK_REALTIME and CLOCK_BOOTTIME:
 * relative and EVQ_ABSTIME, never early, past deadlines fire at once,
 * periodic with overruns counted in data, evq_mod_timer re-arms and
 * discards pending expirations, disabled timers keep counting, bad clocks
 * and intervals refused, 100,000 timers each fire exactly once, 1,000,000
 * live timers can be added and deleted.
 */
#include <dirent.h>

#include "evqtest.h"

#define NEV 64
#define QUIET (20 * EVQT_MS)

static const struct {
	clockid_t id;
	const char *name;
} clocks[] = {
	{ CLOCK_MONOTONIC, "MONOTONIC" },
	{ CLOCK_REALTIME, "REALTIME" },
	{ CLOCK_BOOTTIME, "BOOTTIME" },
};

static void test_clocks(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	for (size_t c = 0; c < sizeof clocks / sizeof clocks[0]; c++) {
		clockid_t ck = clocks[c].id;
		const char *nm = clocks[c].name;

		/* Relative 20 ms: one event, never before t0 + 20 ms. */
		int64_t t0 = evqt_now(ck);
		int64_t id = evq_add_timer(q, ck, 20 * EVQT_MS, 0, 0, 0xabc0 + c);
		ok(id >= 0, "%s: relative timer added (%" PRId64 ")", nm, id);
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		int64_t t1 = evqt_now(ck);
		ok(n == 1 && ev[0].id == id && ev[0].cookie == 0xabc0 + c &&
			   ev[0].kind == EVQ_KIND_TIMER && ev[0].ident == -1 &&
			   ev[0].data == 1 && ev[0].flags == 0 && ev[0].events == 0,
		   "%s: relative: one event, fields exact (n=%d kind=%u ident=%d data=%llu flags=%#x)",
		   nm, n, ev[0].kind, ev[0].ident, (unsigned long long)ev[0].data,
		   ev[0].flags);
		ok(t1 - t0 >= 20 * EVQT_MS, "%s: relative: not early (%lld ns >= 20 ms)",
		   nm, (long long)(t1 - t0));
		/* A fired one-shot timer stays registered but silent. */
		is(evqt_wait(q, ev, NEV, QUIET), 0, "%s: one-shot fires only once", nm);
		is(evq_del(q, id), 0, "%s: fired timer still registered (del -> 0)", nm);

		/* Absolute: deadline = now + 15 ms. */
		int64_t dl = evqt_now(ck) + 15 * EVQT_MS;
		id = evq_add_timer(q, ck, dl, 0, EVQ_ABSTIME, 7);
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		t1 = evqt_now(ck);
		ok(id >= 0 && n == 1 && ev[0].id == id && ev[0].data == 1 &&
			   ev[0].flags == EVQ_ABSTIME,
		   "%s: absolute: one event with flags EVQ_ABSTIME (flags=%#x)", nm,
		   ev[0].flags);
		ok(t1 >= dl, "%s: absolute: clock after the event >= deadline (%lld ns late)",
		   nm, (long long)(t1 - dl));
		CHECK(evq_del(q, id) == 0);

		/* A deadline in the past fires at once: the next poll has it. */
		id = evq_add_timer(q, ck, evqt_now(ck) - EVQT_SEC, 0, EVQ_ABSTIME, 8);
		n = evqt_wait(q, ev, NEV, 0);
		ok(id >= 0 && n == 1 && ev[0].id == id && ev[0].data == 1,
		   "%s: absolute deadline in the past fires at once (n=%d)", nm, n);
		CHECK(evq_del(q, id) == 0);
		/* Relative 0 fires at once too. */
		id = evq_add_timer(q, ck, 0, 0, 0, 9);
		n = evqt_wait(q, ev, NEV, 0);
		ok(id >= 0 && n == 1 && ev[0].id == id, "%s: relative 0 fires at once", nm);
		CHECK(evq_del(q, id) == 0);
	}
	/* Absolute 0 on REALTIME (1970) is in the past. */
	int64_t id = evq_add_timer(q, CLOCK_REALTIME, 0, 0, EVQ_ABSTIME, 10);
	int n = evqt_wait(q, ev, NEV, 0);
	ok(id >= 0 && n == 1 && ev[0].id == id, "REALTIME absolute 0 fires at once");
	evq_free(q);
}

/* Many short timers, relative and absolute: none is ever early. */
static void test_never_early(void)
{
	enum { N = 200 };
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	static int64_t deadline[N];
	static int fired[N];
	for (int i = 0; i < N; i++) {
		int64_t delay = (int64_t)(i % 50) * 100000 + 1000; /* 1 us .. 4.9 ms */
		int64_t now = evqt_now(CLOCK_MONOTONIC);
		int64_t id;
		if (i % 2) {
			deadline[i] = now + delay;
			id = evq_add_timer(q, CLOCK_MONOTONIC, deadline[i], 0,
					   EVQ_ABSTIME, (uint64_t)i);
		} else {
			deadline[i] = now + delay; /* now taken before the add */
			id = evq_add_timer(q, CLOCK_MONOTONIC, delay, 0, 0, (uint64_t)i);
		}
		CHECK(id >= 0);
	}
	int got = 0, early = 0, bad = 0;
	while (got < N) {
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		int64_t now = evqt_now(CLOCK_MONOTONIC);
		if (n <= 0)
			break;
		for (int k = 0; k < n; k++) {
			uint64_t i = ev[k].cookie;
			if (i >= N || fired[i]++ || ev[k].data != 1) {
				bad++;
				continue;
			}
			got++;
			if (now < deadline[i])
				early++;
		}
	}
	is(got, N, "never early: all %d timers fired", N);
	is(bad, 0, "never early: no duplicate or unknown event, data 1 each");
	is(early, 0, "never early: no timer delivered before its deadline");
	evq_free(q);
}

static void test_periodic(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	const int64_t I = 10 * EVQT_MS;
	int64_t t_before = evqt_now(CLOCK_MONOTONIC);
	int64_t id = evq_add_timer(q, CLOCK_MONOTONIC, I, I, 0, 42);
	int64_t t_after = evqt_now(CLOCK_MONOTONIC);
	CHECK(id >= 0);
	uint64_t total = 0;
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int64_t t1 = evqt_now(CLOCK_MONOTONIC);
	ok(n == 1 && ev[0].id == id && ev[0].data >= 1 && ev[0].cookie == 42,
	   "periodic: first expiry delivered (data=%llu)", (unsigned long long)ev[0].data);
	ok(t1 - t_before >= I, "periodic: first expiry not early");
	total += n == 1 ? ev[0].data : 0;

	/* 3.5 intervals without waiting: one event carrying >= 3 expirations. */
	evqt_sleep_ns(35 * EVQT_MS);
	int64_t ws = evqt_now(CLOCK_MONOTONIC);
	n = evqt_wait(q, ev, NEV, 0);
	int64_t we = evqt_now(CLOCK_MONOTONIC);
	ok(n == 1 && ev[0].id == id && ev[0].data >= 3,
	   "periodic: overruns counted in one event (n=%d data=%llu >= 3)", n,
	   (unsigned long long)ev[0].data);
	total += n == 1 ? ev[0].data : 0;
	/* Exact accounting: expirations delivered so far lie between those due
	 * when the wait started and those due when it ended. */
	uint64_t lo = (uint64_t)((ws - t_after) / I), hi = (uint64_t)((we - t_before) / I);
	ok(total >= lo && total <= hi,
	   "periodic: total expirations %llu within [%llu, %llu]",
	   (unsigned long long)total, (unsigned long long)lo, (unsigned long long)hi);

	/* Keep waiting for ~10 more intervals: still exact, never early. */
	while (evqt_now(CLOCK_MONOTONIC) - t_after < 150 * EVQT_MS) {
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		if (n != 1 || ev[0].id != id)
			break;
		total += ev[0].data;
	}
	ws = evqt_now(CLOCK_MONOTONIC);
	n = evqt_wait(q, ev, NEV, 0);
	we = evqt_now(CLOCK_MONOTONIC);
	if (n == 1 && ev[0].id == id)
		total += ev[0].data;
	lo = (uint64_t)((ws - t_after) / I);
	hi = (uint64_t)((we - t_before) / I);
	ok(total >= lo && total <= hi,
	   "periodic: after ~150 ms total %llu within [%llu, %llu]",
	   (unsigned long long)total, (unsigned long long)lo, (unsigned long long)hi);
	evq_free(q);
}

static void test_mod_timer(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	/* A timer far away re-armed to 10 ms fires then. */
	int64_t id = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 5);
	CHECK(id >= 0);
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	is(evq_mod_timer(q, id, 10 * EVQT_MS, 0, 0), 0, "mod_timer: re-arm to 10 ms");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int64_t t1 = evqt_now(CLOCK_MONOTONIC);
	ok(n == 1 && ev[0].id == id && ev[0].data == 1 && ev[0].cookie == 5,
	   "mod_timer: fires after re-arm (n=%d)", n);
	ok(t1 - t0 >= 10 * EVQT_MS, "mod_timer: not early");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod_timer: fired one-shot is silent");
	/* A fired one-shot timer re-armed fires again (absolute this time). */
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + 5 * EVQT_MS;
	is(evq_mod_timer(q, id, dl, 0, EVQ_ABSTIME), 0, "mod_timer: re-arm fired one-shot");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].flags == EVQ_ABSTIME &&
		   evqt_now(CLOCK_MONOTONIC) >= dl,
	   "mod_timer: fires again, flags now EVQ_ABSTIME, not early");

	/* A near timer pushed far away does not fire. */
	is(evq_mod_timer(q, id, 5 * EVQT_MS, 0, 0), 0, "mod_timer: arm 5 ms");
	is(evq_mod_timer(q, id, 3600 * EVQT_SEC, 0, 0), 0, "mod_timer: push to 1 h");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod_timer: pushed-away timer silent");

	/* Pending expirations are discarded by a re-arm. */
	is(evq_mod_timer(q, id, EVQT_MS, EVQT_MS, 0), 0, "mod_timer: periodic 1 ms");
	evqt_sleep_ns(10 * EVQT_MS);
	is(evq_mod_timer(q, id, 3600 * EVQT_SEC, 0, 0), 0, "mod_timer: re-arm to 1 h");
	is(evqt_wait(q, ev, NEV, QUIET), 0,
	   "mod_timer: undelivered expirations discarded by the re-arm");

	/* Also when already harvested but not handed out: two expired
	 * periodic timers, max=1, the other one re-armed far away. */
	int64_t a = evq_add_timer(q, CLOCK_MONOTONIC, 0, EVQT_MS, 0, 11);
	int64_t b = evq_add_timer(q, CLOCK_MONOTONIC, 0, EVQT_MS, 0, 12);
	CHECK(a >= 0 && b >= 0);
	evqt_sleep_ns(3 * EVQT_MS);
	n = evqt_wait(q, ev, 1, 0);
	CHECK(n == 1 && (ev[0].id == a || ev[0].id == b));
	int64_t other = ev[0].id == a ? b : a;
	CHECK(evq_del(q, ev[0].id) == 0);
	is(evq_mod_timer(q, other, 3600 * EVQT_SEC, 0, 0), 0, "mod_timer: re-arm the other");
	is(evqt_wait(q, ev, NEV, QUIET), 0,
	   "mod_timer: harvested expirations of the re-armed timer discarded");

	/* Re-arm changes period: 5 ms periodic delivers. */
	is(evq_mod_timer(q, other, 5 * EVQT_MS, 5 * EVQT_MS, 0), 0, "mod_timer: periodic 5 ms");
	int c = 0;
	for (int i = 0; i < 3; i++) {
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		c += n == 1 && ev[0].id == other && ev[0].data >= 1;
	}
	is(c, 3, "mod_timer: periodic after re-arm fires repeatedly");
	/* Failed mod_timer leaves the timer as it was. */
	is(evq_mod_timer(q, other, 5 * EVQT_MS, -1, 0), -EINVAL,
	   "mod_timer: negative interval -> -EINVAL");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == other, "mod_timer: still periodic after the failed call");
	is(evq_mod_timer(q, other, -5, 0, 0), -EINVAL,
	   "mod_timer: negative relative when -> -EINVAL");
	is(evq_mod_timer(q, other, 5, 0, 0x8000), -EINVAL,
	   "mod_timer: unknown flag -> -EINVAL");
	evq_free(q);
}

static void test_bad_args(void)
{
	struct evq *q = evqt_new();
	/* Only MONOTONIC, REALTIME and BOOTTIME are timer clocks. */
	is(evq_add_timer(q, CLOCK_PROCESS_CPUTIME_ID, EVQT_MS, 0, 0, 0), -EINVAL,
	   "bad: CLOCK_PROCESS_CPUTIME_ID -> -EINVAL");
	is(evq_add_timer(q, CLOCK_THREAD_CPUTIME_ID, EVQT_MS, 0, 0, 0), -EINVAL,
	   "bad: CLOCK_THREAD_CPUTIME_ID -> -EINVAL");
	is(evq_add_timer(q, CLOCK_MONOTONIC_RAW, EVQT_MS, 0, 0, 0), -EINVAL,
	   "bad: CLOCK_MONOTONIC_RAW -> -EINVAL");
	is(evq_add_timer(q, (clockid_t)12345, EVQT_MS, 0, 0, 0), -EINVAL,
	   "bad: clock 12345 -> -EINVAL");
	is(evq_add_timer(q, (clockid_t)-1, EVQT_MS, 0, 0, 0), -EINVAL,
	   "bad: clock -1 -> -EINVAL");
	is(evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, -1, 0, 0), -EINVAL,
	   "bad: negative interval -> -EINVAL");
	is(evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, INT64_MIN, 0, 0), -EINVAL,
	   "bad: INT64_MIN interval -> -EINVAL");
	is(evq_add_timer(q, CLOCK_MONOTONIC, -1, 0, 0, 0), -EINVAL,
	   "bad: negative relative when -> -EINVAL");
	is(evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, 0, 0x8000, 0), -EINVAL,
	   "bad: unknown flag -> -EINVAL");
	is(evq_add_timer(NULL, CLOCK_MONOTONIC, EVQT_MS, 0, 0, 0), -EINVAL,
	   "bad: NULL queue -> -EINVAL");
	ok(evqt_roundtrip(q), "bad: queue still works");

	/* Huge values do not overflow: far deadlines simply do not fire. */
	struct evq_event ev[NEV];
	int64_t a = evq_add_timer(q, CLOCK_MONOTONIC, INT64_MAX, 0, 0, 1);
	int64_t b = evq_add_timer(q, CLOCK_MONOTONIC, INT64_MAX, INT64_MAX, 0, 2);
	int64_t c = evq_add_timer(q, CLOCK_REALTIME, INT64_MAX, 0, EVQ_ABSTIME, 3);
	int64_t d = evq_add_timer(q, CLOCK_MONOTONIC, INT64_MAX - 1, 1, 0, 4);
	ok(a >= 0 && b >= 0 && c >= 0 && d >= 0, "huge: INT64_MAX deadlines accepted");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "huge: INT64_MAX deadlines never fire");
	/* A near timer next to them still fires. */
	int64_t e = evq_add_timer(q, CLOCK_MONOTONIC, 2 * EVQT_MS, 0, 0, 5);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(e >= 0 && n == 1 && ev[0].id == e, "huge: a near timer still fires");
	/* Periodic 1 ns: each wait gets one event, data counts expirations. */
	int64_t f = evq_add_timer(q, CLOCK_MONOTONIC, 1, 1, 0, 6);
	evqt_sleep_ns(EVQT_MS);
	n = evqt_wait(q, ev, NEV, 0);
	ok(f >= 0 && n == 1 && ev[0].id == f && ev[0].data >= 1000,
	   "huge: 1 ns periodic: one event counting >= 1000 expirations (data=%llu)",
	   (unsigned long long)ev[0].data);
	evq_free(q);
}

/* Extreme values, accepted or refused, but never undefined behaviour (the
 * UBSan run of make check fails on a signed overflow): absolute deadlines
 * as far back as INT64_MIN, periods of 1 ns and INT64_MAX, expirations
 * beyond what data can count. */
static void test_extremes(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t now = evqt_now(CLOCK_MONOTONIC);
	/* INT64_MIN, every ns: 2^63 + now expirations at once */
	int64_t a = evq_add_timer(q, CLOCK_MONOTONIC, INT64_MIN, 1, EVQ_ABSTIME, 1);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(a >= 0 && n == 1 && ev[0].id == a &&
		   ev[0].data >= (uint64_t)INT64_MAX + (uint64_t)now,
	   "extreme: INT64_MIN absolute, 1 ns period: every period counted (data=%llu)",
	   n == 1 ? (unsigned long long)ev[0].data : 0ull);
	/* again: the next expirations continue from there */
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == a && ev[0].data >= 1,
	   "extreme: and it keeps firing every ns");
	CHECK(evq_del(q, a) == 0);
	/* INT64_MIN with a period of INT64_MAX: one or two periods, then
	 * the next deadline saturates far in the future */
	int64_t b = evq_add_timer(q, CLOCK_MONOTONIC, INT64_MIN, INT64_MAX, EVQ_ABSTIME, 2);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(b >= 0 && n == 1 && ev[0].id == b && ev[0].data >= 1 && ev[0].data <= 2,
	   "extreme: INT64_MIN absolute, INT64_MAX period: fires (data=%llu)",
	   n == 1 ? (unsigned long long)ev[0].data : 0ull);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "extreme: then not again soon");
	/* re-armed to INT64_MIN one-shot, and on the other clocks */
	is(evq_mod_timer(q, b, INT64_MIN, 0, EVQ_ABSTIME), 0, "extreme: mod to INT64_MIN");
	int64_t c = evq_add_timer(q, CLOCK_REALTIME, INT64_MIN, 3, EVQ_ABSTIME, 3);
	int64_t d = evq_add_timer(q, CLOCK_BOOTTIME, INT64_MIN + 1, INT64_MAX - 1,
			      EVQ_ABSTIME, 4);
	int got = 0;
	for (int i = 0; i < 10 && got < 3; i++) {
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		for (int k = 0; k < n; k++)
			got += ev[k].id == b || ev[k].id == c || ev[k].id == d;
	}
	ok(c >= 0 && d >= 0 && got >= 3, "extreme: REALTIME and BOOTTIME from INT64_MIN fire");
	/* a relative INT64_MAX period that fired once (when 0) */
	int64_t e = evq_add_timer(q, CLOCK_MONOTONIC, 0, INT64_MAX, 0, 5);
	int seen = 0;
	for (int i = 0; i < 10 && !seen; i++) {
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		for (int k = 0; k < n; k++)
			seen |= ev[k].id == e && ev[k].data == 1;
	}
	ok(e >= 0 && seen, "extreme: relative 0 with an INT64_MAX period fires once");
	CHECK(evq_del(q, c) == 0); /* every 3 ns */
	while (evqt_wait(q, ev, NEV, 0) > 0)
		;
	ok(evqt_roundtrip(q), "extreme: queue still works");
	evq_free(q);
}

static void test_disabled(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	const int64_t I = 5 * EVQT_MS;
	/* Disabled periodic timer keeps counting... */
	int64_t id = evq_add_timer(q, CLOCK_MONOTONIC, I, I, EVQ_DISABLED, 1);
	int64_t t_after = evqt_now(CLOCK_MONOTONIC);
	ok(id >= 0, "disabled: periodic timer added disabled");
	is(evqt_wait(q, ev, NEV, 30 * EVQT_MS), 0, "disabled: nothing delivered");
	/* ...and delivers the count when enabled. */
	int64_t te = evqt_now(CLOCK_MONOTONIC);
	is(evq_mod(q, id, 0, 0), 0, "disabled: enable");
	int n = evqt_wait(q, ev, NEV, 0);
	uint64_t lo = (uint64_t)((te - t_after) / I);
	ok(n == 1 && ev[0].id == id && ev[0].data >= lo && lo >= 5,
	   "disabled: on enable one event with all expirations (data=%llu >= %llu)",
	   (unsigned long long)ev[0].data, (unsigned long long)lo);

	/* Disabled one-shot: fires while disabled, delivered on enable. */
	int64_t o = evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, 0, EVQ_DISABLED, 2);
	CHECK(o >= 0);
	CHECK(evq_del(q, id) == 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: one-shot held back");
	is(evq_mod(q, o, 0, 0), 0, "disabled: enable one-shot");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == o && ev[0].data == 1, "disabled: one-shot delivered on enable");

	/* ONESHOT periodic: delivered once, then counts silently until
	 * re-enabled, which delivers what accumulated. */
	int64_t p = evq_add_timer(q, CLOCK_MONOTONIC, I, I, EVQ_ONESHOT, 3);
	CHECK(p >= 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int64_t td = evqt_now(CLOCK_MONOTONIC);
	ok(n == 1 && ev[0].id == p && (ev[0].flags & EVQ_ONESHOT),
	   "oneshot periodic: first delivery");
	is(evqt_wait(q, ev, NEV, 30 * EVQT_MS), 0, "oneshot periodic: then silent");
	te = evqt_now(CLOCK_MONOTONIC);
	is(evq_mod(q, p, 0, EVQ_ONESHOT), 0, "oneshot periodic: re-enable");
	n = evqt_wait(q, ev, NEV, 0);
	lo = (uint64_t)((te - td) / I);
	ok(n == 1 && ev[0].id == p && ev[0].data >= lo,
	   "oneshot periodic: kept expirations delivered (data=%llu >= %llu)",
	   (unsigned long long)ev[0].data, (unsigned long long)lo);
	evq_free(q);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* 100,000 timers with random deadlines in a 200 ms window: each fires
 * exactly once, never early; roughly in deadline order. */
static void test_many(void)
{
	long N = evqt_scale(100000);
	struct evq *q = evqt_new();
	static struct evq_event ev[256];
	int64_t *deadline = calloc((size_t)N, sizeof *deadline);
	unsigned char *fired = calloc((size_t)N, 1);
	CHECK(deadline && fired);
	int64_t base = evqt_now(CLOCK_MONOTONIC);
	int addfail = 0;
	for (long i = 0; i < N; i++) {
		deadline[i] = base + (int64_t)(xorshift() % (200 * EVQT_MS));
		addfail += evq_add_timer(q, CLOCK_MONOTONIC, deadline[i], 0,
					 EVQ_ABSTIME, (uint64_t)i) < 0;
	}
	is(addfail, 0, "many: %ld timers added", N);
	long got = 0, dupl = 0, early = 0, badd = 0, inversions = 0;
	int64_t last_dl = INT64_MIN;
	while (got < N) {
		int n = evq_wait(q, ev, 256, 2 * EVQT_SEC, NULL);
		int64_t now = evqt_now(CLOCK_MONOTONIC);
		if (n <= 0)
			break;
		int64_t batch_max = INT64_MIN;
		for (int k = 0; k < n; k++) {
			uint64_t i = ev[k].cookie;
			if (i >= (uint64_t)N || fired[i]++) {
				dupl++;
				continue;
			}
			got++;
			early += now < deadline[i];
			badd += ev[k].data != 1;
			if (deadline[i] < last_dl)
				inversions++;
			if (deadline[i] > batch_max)
				batch_max = deadline[i];
		}
		last_dl = batch_max;
	}
	is(got, N, "many: every timer fired");
	is(dupl, 0, "many: none fired twice (or unknown cookie)");
	is(early, 0, "many: none early");
	is(badd, 0, "many: data 1 each");
	diag("many: %ld deliveries with a deadline before the previous batch's latest",
	     inversions);
	is(evqt_wait(q, ev, 256, QUIET), 0, "many: nothing more after all fired");
	free(deadline);
	free(fired);
	evq_free(q);
}

/* 1,000,000 live timers: add, poll, delete. */
static void test_million(void)
{
	long N = EVQT_SANITIZED ? evqt_scale(1000000) : 1000000;
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t *ids = malloc((size_t)N * sizeof *ids);
	CHECK(ids);
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	long bad = 0;
	for (long i = 0; i < N; i++) {
		ids[i] = evq_add_timer(q, CLOCK_MONOTONIC,
				       3600 * EVQT_SEC + (int64_t)(xorshift() % EVQT_SEC), 0,
				       0, (uint64_t)i);
		bad += ids[i] < 0;
	}
	int64_t t1 = evqt_now(CLOCK_MONOTONIC);
	is(bad, 0, "million: %ld live timers added", N);
	is(evqt_wait(q, ev, NEV, 0), 0, "million: none due");
	/* Delete in an order unrelated to the heap order. */
	bad = 0;
	for (long i = 0; i < N; i += 2)
		bad += evq_del(q, ids[i]) != 0;
	for (long i = 1; i < N; i += 2)
		bad += evq_del(q, ids[i]) != 0;
	int64_t t2 = evqt_now(CLOCK_MONOTONIC);
	is(bad, 0, "million: all deleted");
	diag("million: add %.0f ns/timer, del %.0f ns/timer", (double)(t1 - t0) / (double)N,
	     (double)(t2 - t1) / (double)N);
	ok(evqt_roundtrip(q), "million: queue works afterwards");
	int64_t id = evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, 0, 0, 77);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 77, "million: a new timer fires");
	free(ids);
	evq_free(q);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Timers are library objects: 10,000 of them on three clocks cost no file
 * descriptor each (at most one kernel timer per clock per queue). */
static void test_no_kernel_object_per_timer(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	/* Arm one timer per clock first so lazily created kernel timers exist. */
	for (size_t c = 0; c < sizeof clocks / sizeof clocks[0]; c++)
		CHECK(evq_add_timer(q, clocks[c].id, 3600 * EVQT_SEC, 0, 0, 0) >= 0);
	CHECK(evqt_wait(q, ev, NEV, 0) == 0);
	int before = open_fds();
	int bad = 0;
	/* an hour away and more: none may fire before the poll below, however
	 * long the adds take on a loaded machine (the first was 1 s away) */
	for (int i = 0; i < 10000; i++)
		bad += evq_add_timer(q, clocks[i % 3].id, (3600 + (int64_t)i) * EVQT_SEC, 0,
				     0, 0) < 0;
	CHECK(evqt_wait(q, ev, NEV, 0) == 0);
	int after = open_fds();
	ok(bad == 0 && before > 0 && after == before,
	   "no fd per timer: %d open fds before 10,000 timers, %d after", before, after);
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("timer");
	test_clocks();
	test_never_early();
	test_periodic();
	test_mod_timer();
	test_bad_args();
	test_extremes();
	test_disabled();
	test_no_kernel_object_per_timer();
	test_many();
	test_million();
	return done();
}
