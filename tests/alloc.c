/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - steady state allocates nothing.  The program interposes the
 * allocator (malloc, calloc, realloc, free, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc forward to glibc's __libc_* with a counter),
 * warms a queue up, then runs add/del cycles that reuse slots, waits,
 * triggers, timer re-arms and fd deliveries and checks that no allocator
 * call happened.  Skipped under sanitizers, which own malloc.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "evqtest.h"

#if !EVQT_SANITIZED

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_long n_alloc, n_free, n_bytes;
/* Requests above this fail (so a runaway request is seen, not served). */
static atomic_size_t refuse_above = SIZE_MAX;

static int count(size_t n)
{
	atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_bytes, (long)(n > LONG_MAX ? LONG_MAX : n),
				  memory_order_relaxed);
	return n > atomic_load_explicit(&refuse_above, memory_order_relaxed);
}

void *malloc(size_t n)
{
	return count(n) ? NULL : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	size_t n = a && b <= SIZE_MAX / a ? a * b : SIZE_MAX;
	return count(n) ? NULL : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	return count(n) ? NULL : __libc_realloc(p, n);
}

void free(void *p)
{
	if (p)
		atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
	__libc_free(p);
}

void *memalign(size_t al, size_t n)
{
	return count(n) ? NULL : __libc_memalign(al, n);
}

void *aligned_alloc(size_t al, size_t n)
{
	return count(n) ? NULL : __libc_memalign(al, n);
}

int posix_memalign(void **out, size_t al, size_t n)
{
	if (al < sizeof(void *) || (al & (al - 1)))
		return EINVAL;
	if (count(n))
		return ENOMEM;
	void *p = __libc_memalign(al, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t n)
{
	return count(n) ? NULL : __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

void *pvalloc(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	return count(n) ? NULL : __libc_memalign(pg, (n + pg - 1) / pg * pg);
}

#define NEV 32
enum { NPAIRS = 8 };

struct rig {
	struct evq *q;
	int sv[NPAIRS][2];
	int64_t user, periodic, level_id;
	int level_fd;
	long failures; /* behaviour checks inside the measured loop */
};

static void expect(struct rig *g, int cond)
{
	if (!cond)
		g->failures++;
}

/* One round of everything the steady state does. */
static void round_trip(struct rig *g, int k)
{
	struct evq *q = g->q;
	struct evq_event ev[NEV];
	char c;

	/* add/del of a user event: the slot is reused */
	int64_t u = evq_add_user(q, 1);
	expect(g, u >= 0);
	expect(g, evq_trigger(q, u) == 0);
	int n = evq_wait(q, ev, NEV, 0, NULL);
	expect(g, n >= 1);
	expect(g, evq_del(q, u) == 0);

	/* add/del of an fd with an event delivered */
	int fd = g->sv[k % NPAIRS][0];
	int64_t f = evq_add_fd(q, fd, EVQ_READ, k & 1 ? EVQ_EDGE : 0, 2);
	expect(g, f >= 0);
	expect(g, write(g->sv[k % NPAIRS][1], "x", 1) == 1);
	n = evq_wait(q, ev, NEV, EVQT_SOON, NULL);
	expect(g, n >= 1);
	expect(g, read(fd, &c, 1) == 1);
	expect(g, evq_del(q, f) == 0);

	/* add/del of a timer that fires */
	int64_t t = evq_add_timer(q, CLOCK_MONOTONIC, 0, 0, 0, 3);
	expect(g, t >= 0);
	n = evq_wait(q, ev, NEV, EVQT_SOON, NULL);
	expect(g, n >= 1);
	expect(g, evq_del(q, t) == 0);

	/* coalesced triggers */
	for (int i = 0; i < 3; i++)
		expect(g, evq_trigger(q, g->user) == 0);
	n = evq_wait(q, ev, NEV, 0, NULL);
	expect(g, n >= 1);

	/* disable / trigger / enable */
	expect(g, evq_mod(q, g->user, 0, EVQ_DISABLED) == 0);
	expect(g, evq_trigger(q, g->user) == 0);
	expect(g, evq_mod(q, g->user, 0, 0) == 0);
	n = evq_wait(q, ev, NEV, 0, NULL);
	expect(g, n >= 1);

	/* periodic timer re-armed and fired (a sleeping wait) */
	expect(g, evq_mod_timer(q, g->periodic, 200000, 200000, 0) == 0);
	int got = 0;
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	while (!got && evqt_now(CLOCK_MONOTONIC) - t0 < EVQT_SOON) {
		n = evq_wait(q, ev, NEV, EVQT_SOON, NULL);
		for (int j = 0; j < n; j++)
			got |= ev[j].id == g->periodic;
	}
	expect(g, got);

	/* a wait that times out */
	n = evq_wait(q, ev, NEV, 50000, NULL);
	expect(g, n >= 0);
}

static void test_steady_state(void)
{
	struct rig g;
	memset(&g, 0, sizeof g);
	long c0 = atomic_load(&n_alloc);
	g.q = evqt_new();
	/* The counter sees the library's allocations (evq_new allocates the
	 * queue), so a 0 below means something. */
	ok(atomic_load(&n_alloc) > c0, "interposition active: evq_new counted %ld allocations",
	   atomic_load(&n_alloc) - c0);
	for (int i = 0; i < NPAIRS; i++)
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				 g.sv[i]) == 0);
	/* A level fd that stays readable: delivered on every wait. */
	int lv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, lv) == 0);
	CHECK(write(lv[1], "x", 1) == 1);
	g.level_fd = lv[0];
	g.level_id = evq_add_fd(g.q, lv[0], EVQ_READ, 0, 9);
	g.user = evq_add_user(g.q, 10);
	g.periodic = evq_add_timer(g.q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 11);
	CHECK(g.level_id >= 0 && g.user >= 0 && g.periodic >= 0);

	/* Warm-up: grow the slot table, the timer heap and the free list
	 * beyond what the measured rounds use, then run the rounds once. */
	int64_t tmp[256];
	for (int i = 0; i < 256; i++)
		CHECK((tmp[i] = evq_add_timer(g.q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0,
					      0)) >= 0);
	for (int i = 0; i < 256; i++)
		CHECK(evq_del(g.q, tmp[i]) == 0);
	for (int i = 0; i < 256; i++)
		CHECK((tmp[i] = evq_add_user(g.q, 0)) >= 0);
	for (int i = 0; i < 256; i++)
		CHECK(evq_del(g.q, tmp[i]) == 0);
	for (int k = 0; k < 64; k++)
		round_trip(&g, k);
	is(g.failures, 0, "warm-up rounds behave");
	g.failures = 0;

	long rounds = evqt_scale(500);
	long a0 = atomic_load(&n_alloc), f0 = atomic_load(&n_free);
	for (long k = 0; k < rounds; k++)
		round_trip(&g, (int)k);
	long a1 = atomic_load(&n_alloc), f1 = atomic_load(&n_free);

	is(g.failures, 0, "measured rounds behave");
	/* No allocator call at all in the steady state. */
	is(a1 - a0, 0, "steady state: %ld rounds of add/del, wait, trigger, timer re-arm, "
		       "fd delivery: no allocation", rounds);
	is(f1 - f0, 0, "steady state: no free either");

	/* Many registrations at once, after a warm-up with the same count of
	 * each size of slot (user events full, timers small): deleting and
	 * adding again reuses slots and heap space. */
	enum { M = 2000 };
	static int64_t ids[M];
	for (int i = 0; i < M; i++)
		CHECK((ids[i] = i % 2 ? evq_add_user(g.q, 0)
				      : evq_add_timer(g.q, CLOCK_MONOTONIC, 3600 * EVQT_SEC,
						      0, 0, 0)) >= 0);
	for (int i = 0; i < M; i++)
		CHECK(evq_del(g.q, ids[i]) == 0);
	a0 = atomic_load(&n_alloc);
	long bad = 0;
	for (int rep = 0; rep < 3; rep++) {
		for (int i = 0; i < M; i++) {
			ids[i] = i % 2 ? evq_add_user(g.q, 0)
				       : evq_add_timer(g.q, CLOCK_MONOTONIC,
						       3600 * EVQT_SEC, 0, 0, 0);
			bad += ids[i] < 0;
		}
		for (int i = 0; i < M; i++)
			bad += evq_del(g.q, ids[i]) != 0;
	}
	a1 = atomic_load(&n_alloc);
	is(bad, 0, "reuse: 3 x %d adds and dels succeed", M);
	is(a1 - a0, 0, "reuse: re-adding after deletes allocates nothing");
	evq_free(g.q);
	for (int i = 0; i < NPAIRS; i++) {
		close(g.sv[i][0]);
		close(g.sv[i][1]);
	}
	close(lv[0]);
	close(lv[1]);
}

/* An fd number that cannot be open is refused before anything is sized for
 * it (no multi-gigabyte table for fd INT_MAX). */
static void test_bad_fd_no_alloc(void)
{
	struct evq *q = evqt_new();
	atomic_store(&refuse_above, (size_t)64 << 20);
	long b0 = atomic_load(&n_bytes);
	int64_t r1 = evq_add_fd(q, INT_MAX, EVQ_READ, 0, 0);
	int64_t r2 = evq_add_fd(q, INT_MAX / 2, EVQ_READ, 0, 0);
	long b1 = atomic_load(&n_bytes);
	atomic_store(&refuse_above, SIZE_MAX);
	is(r1, -EBADF, "bad fd INT_MAX -> -EBADF");
	is(r2, -EBADF, "bad fd INT_MAX/2 -> -EBADF");
	ok(b1 - b0 < (1L << 20), "bad fds: less than 1 MiB requested (%ld bytes)", b1 - b0);
	ok(evqt_roundtrip(q), "bad fds: queue still works");
	evq_free(q);
}

int main(void)
{
	if (getenv("EVQ_TEST_VALGRIND"))
		skip_all("under valgrind: valgrind owns malloc, no interposition");
	evqt_watchdog(60);
	evqt_banner("alloc");
	test_steady_state();
	test_bad_fd_no_alloc();
	return done();
}

#else

int main(void)
{
	skip_all("sanitizer build: the sanitizer owns malloc, no interposition");
}

#endif
