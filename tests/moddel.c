/* SPDX-License-Identifier: MIT */
/*
 * moddel.c - evq_del() and evq_mod(): after evq_del() returns, no event of
 * the registration is returned, including one already harvested from the
 * kernel (or posted) but not yet handed out; stale ids are refused with
 * -ENOENT, also after their slot was reused; evq_mod() flag changes hold
 * for events already pending in the library.
 */
#include <fcntl.h>
#include <sys/socket.h>

#include "evqtest.h"

#define NEV 64
#define QUIET (20 * EVQT_MS)

static void pair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
			 sv) == 0);
}

static int count_id(const struct evq_event *ev, int n, int64_t id)
{
	int c = 0;
	for (int i = 0; i < n; i++)
		c += ev[i].id == id;
	return c;
}

/* N readable fds, level and edge: wait with max=1 takes all of them from
 * the kernel in one batch but hands out one; deleting the others must
 * discard what the library holds. */
static void test_del_harvested_fds(uint32_t flags, const char *what)
{
	enum { N = 10 };
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[N][2];
	int64_t id[N];
	for (int i = 0; i < N; i++) {
		pair(sv[i]);
		id[i] = evq_add_fd(q, sv[i][0], EVQ_READ, flags, (uint64_t)i);
		CHECK(id[i] >= 0);
		CHECK(write(sv[i][1], "x", 1) == 1);
	}
	int n = evqt_wait(q, ev, 1, EVQT_SOON);
	CHECK(n == 1);
	int64_t keep = ev[0].id;
	int dels = 0;
	for (int i = 0; i < N; i++)
		if (id[i] != keep)
			dels += evq_del(q, id[i]) == 0;
	is(dels, N - 1, "%s fds: evq_del of the %d others -> 0", what, N - 1);
	/* Only the kept fd may still be reported. */
	int stray = 0;
	for (int round = 0; round < 3; round++) {
		n = evqt_wait(q, ev, NEV, round ? QUIET : 0);
		stray += n - count_id(ev, n, keep);
	}
	is(stray, 0, "%s fds: no event of a deleted fd after evq_del", what);
	evq_free(q);
	for (int i = 0; i < N; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

static void test_del_user(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	/* Trigger, delete, wait: nothing. */
	int64_t u = evq_add_user(q, 1);
	CHECK(u >= 0);
	CHECK(evq_trigger(q, u) == 0);
	CHECK(evq_trigger(q, u) == 0);
	is(evq_del(q, u), 0, "user: del of a triggered user event -> 0");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "user: triggered then deleted -> nothing");

	/* Two triggered, one handed out with max=1, the other deleted. */
	int64_t a = evq_add_user(q, 2), b = evq_add_user(q, 3);
	CHECK(a >= 0 && b >= 0);
	CHECK(evq_trigger(q, a) == 0 && evq_trigger(q, b) == 0);
	int n = evqt_wait(q, ev, 1, 0);
	CHECK(n == 1 && (ev[0].id == a || ev[0].id == b));
	int64_t other = ev[0].id == a ? b : a;
	is(evq_del(q, other), 0, "user: del of the undelivered one -> 0");
	n = evqt_wait(q, ev, NEV, QUIET);
	is(n, 0, "user: the deleted one is not delivered (n=%d)", n);
	/* Triggers through the deleted id fail, the live one still works. */
	is(evq_trigger(q, other), -ENOENT, "user: trigger after del -> -ENOENT");
	int64_t live = other == a ? b : a;
	CHECK(evq_trigger(q, live) == 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == live && ev[0].data == 1, "user: the live one unaffected");
	evq_free(q);
}

static void test_del_timer(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	/* Expired but not yet waited for: deleted -> nothing. */
	int64_t t = evq_add_timer(q, CLOCK_MONOTONIC, 1 * EVQT_MS, 0, 0, 1);
	CHECK(t >= 0);
	evqt_sleep_ns(5 * EVQT_MS);
	is(evq_del(q, t), 0, "timer: del of an expired timer -> 0");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "timer: expired then deleted -> nothing");

	/* Periodic, expired many times, deleted -> nothing. */
	int64_t p = evq_add_timer(q, CLOCK_MONOTONIC, 1 * EVQT_MS, 1 * EVQT_MS, 0, 2);
	CHECK(p >= 0);
	evqt_sleep_ns(10 * EVQT_MS);
	is(evq_del(q, p), 0, "timer: del of a periodic timer with overruns -> 0");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "timer: periodic deleted -> nothing");

	/* Two expired timers, max=1 hands out one, the other deleted. */
	int64_t a = evq_add_timer(q, CLOCK_MONOTONIC, 0, 2 * EVQT_MS, 0, 3);
	int64_t b = evq_add_timer(q, CLOCK_MONOTONIC, 0, 2 * EVQT_MS, 0, 4);
	CHECK(a >= 0 && b >= 0);
	evqt_sleep_ns(1 * EVQT_MS);
	int n = evqt_wait(q, ev, 1, EVQT_SOON);
	CHECK(n == 1 && (ev[0].id == a || ev[0].id == b));
	int64_t other = ev[0].id == a ? b : a, live = ev[0].id;
	is(evq_del(q, other), 0, "timer: del of the undelivered timer -> 0");
	int stray = 0, lives = 0;
	for (int i = 0; i < 5; i++) {
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		stray += count_id(ev, n, other);
		lives += count_id(ev, n, live);
	}
	is(stray, 0, "timer: the deleted timer never delivered");
	ok(lives >= 1, "timer: the live periodic timer keeps firing");
	is(evq_mod_timer(q, other, EVQT_MS, 0, 0), -ENOENT,
	   "timer: evq_mod_timer of a deleted timer -> -ENOENT");
	evq_free(q);
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void test_stale_ids(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 1);
	CHECK(id >= 0);
	is(evq_del(q, id), 0, "stale: first del -> 0");
	/* Every call through the deleted id fails with -ENOENT. */
	is(evq_del(q, id), -ENOENT, "stale: del again -> -ENOENT");
	is(evq_mod(q, id, 0, EVQ_DISABLED), -ENOENT, "stale: mod -> -ENOENT");
	is(evq_trigger(q, id), -ENOENT, "stale: trigger -> -ENOENT");
	is(evq_mod_timer(q, id, EVQT_MS, 0, 0), -ENOENT, "stale: mod_timer -> -ENOENT");

	/* Keep registering until the slot (the id's low 32 bits) is reused. */
	enum { CAP = 20000 };
	static int64_t live[CAP];
	int nlive = 0;
	int64_t reused = -1;
	for (; nlive < CAP; nlive++) {
		live[nlive] = evq_add_user(q, 100 + (uint64_t)nlive);
		CHECK(live[nlive] >= 0);
		if ((uint32_t)live[nlive] == (uint32_t)id) {
			reused = live[nlive];
			nlive++;
			break;
		}
	}
	ok(reused >= 0, "stale: the deleted slot is reused (after %d adds)", nlive);
	if (reused >= 0) {
		ok(reused != id, "stale: reused slot has a different id (%#llx vs %#llx)",
		   (unsigned long long)reused, (unsigned long long)id);
		is(evq_del(q, id), -ENOENT, "stale: old id after reuse: del -> -ENOENT");
		is(evq_mod(q, id, 0, EVQ_DISABLED), -ENOENT,
		   "stale: old id after reuse: mod -> -ENOENT");
		is(evq_trigger(q, id), -ENOENT,
		   "stale: old id after reuse: trigger -> -ENOENT");
		/* The new tenant was not disturbed by any of that. */
		CHECK(evq_trigger(q, reused) == 0);
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		ok(n == 1 && ev[0].id == reused && ev[0].data == 1,
		   "stale: new tenant delivers, enabled, count 1");
	} else {
		skip(4, "slot never reused");
	}
	/* Ids are non-negative and unique among live registrations. */
	static int64_t sorted[CAP];
	memcpy(sorted, live, sizeof live[0] * (size_t)nlive);
	qsort(sorted, (size_t)nlive, sizeof sorted[0], cmp_id);
	int dup = 0, neg = 0;
	for (int i = 0; i < nlive; i++) {
		neg += sorted[i] < 0;
		if (i && sorted[i] == sorted[i - 1])
			dup++;
	}
	ok(neg == 0 && dup == 0, "stale: live ids non-negative and distinct");
	int delok = 0;
	for (int i = 0; i < nlive; i++)
		delok += evq_del(q, live[i]) == 0;
	is(delok, nlive, "stale: all %d live ids deleted", nlive);
	ok(evqt_roundtrip(q), "stale: queue still works");
	evq_free(q);
}

/* Flag changes reach events already pending in the library. */
static void test_mod_pending(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t a = evq_add_user(q, 1), b = evq_add_user(q, 2);
	CHECK(a >= 0 && b >= 0);
	CHECK(evq_trigger(q, a) == 0 && evq_trigger(q, b) == 0 &&
	      evq_trigger(q, b) == 0);
	int n = evqt_wait(q, ev, 1, 0);
	CHECK(n == 1);
	int64_t other = ev[0].id == a ? b : a;
	uint64_t want = other == b ? 2 : 1;
	/* Disabled while pending: not delivered... */
	is(evq_mod(q, other, 0, EVQ_DISABLED), 0, "mod: disable a pending user event");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: disabled pending event held back");
	/* ...and delivered, count intact, when enabled. */
	is(evq_mod(q, other, 0, 0), 0, "mod: enable it");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == other && ev[0].data == want,
	   "mod: delivered on enable with its count (data=%llu want %llu)",
	   (unsigned long long)ev[0].data, (unsigned long long)want);

	/* An fd harvested but not handed out, then disabled: held back. */
	enum { N = 4 };
	int sv[N][2];
	int64_t id[N];
	for (int i = 0; i < N; i++) {
		pair(sv[i]);
		id[i] = evq_add_fd(q, sv[i][0], EVQ_READ, EVQ_EDGE, (uint64_t)i);
		CHECK(id[i] >= 0 && write(sv[i][1], "x", 1) == 1);
	}
	n = evqt_wait(q, ev, 1, EVQT_SOON);
	CHECK(n == 1);
	int64_t first = ev[0].id, dis = -1;
	for (int i = 0; i < N; i++)
		if (id[i] != first && dis < 0)
			dis = id[i];
	is(evq_mod(q, dis, EVQ_READ, EVQ_EDGE | EVQ_DISABLED), 0, "mod: disable an edge fd");
	int got = 0, stray = 0;
	for (int r = 0; r < 3; r++) {
		n = evqt_wait(q, ev, NEV, r ? QUIET : 0);
		stray += count_id(ev, n, dis);
		got += n - count_id(ev, n, dis);
	}
	is(stray, 0, "mod: disabled edge fd not delivered");
	is(got, N - 2, "mod: the other edge fds delivered once each");
	evq_free(q);
	for (int i = 0; i < N; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

/* Delete/re-add cycles with pending events: no ghost events appear. */
static void test_del_churn(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int rounds = (int)evqt_scale(20000), ghosts = 0;
	int64_t a = evq_add_user(q, 0);
	CHECK(a >= 0);
	for (int r = 1; r <= rounds; r++) {
		CHECK(evq_trigger(q, a) == 0);
		CHECK(evq_del(q, a) == 0);
		a = evq_add_user(q, (uint64_t)r);
		CHECK(a >= 0);
		if (r % 3 == 0) {
			int n = evqt_wait(q, ev, NEV, 0);
			ghosts += n;
		}
	}
	is(ghosts, 0, "churn: %d trigger+del cycles, no ghost event", rounds);
	CHECK(evq_trigger(q, a) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == a && ev[0].cookie == (uint64_t)rounds && ev[0].data == 1,
	   "churn: the last registration delivers its own cookie");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("moddel");
	test_del_harvested_fds(0, "level");
	test_del_harvested_fds(EVQ_EDGE, "edge");
	test_del_harvested_fds(EVQ_ONESHOT, "oneshot");
	test_del_user();
	test_del_timer();
	test_stale_ids();
	test_mod_pending();
	test_del_churn();
	return done();
}
