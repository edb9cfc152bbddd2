/* SPDX-License-Identifier: MIT */
/*
 * cqoverflow.c - the io_uring completion queue overflows and every event
 * still arrives, counted exactly; white-box, the backend's overflow path
 * is confirmed to have run (its EVQ_DEBUG stats line at evq_free counts
 * the kernel backlogs it flushed: cq_overflow_flushes).
 *
 * The queue gets a ring of 1 SQE and 2 CQEs (EVQ_URING_ENTRIES=1) and its
 * words wait in the ring (EVQ_URING_INLINE=0: one IORING_OP_FUTEX_WAIT
 * per latch).
 *  latches: one thread; a wait with a short timeout submits the FUTEX_WAIT
 *    of each of N latches (the submission happens before the sleep, so
 *    the timeout's length does not matter), then all N latches are set at
 *    once: N completions for 2 CQ slots, so the kernel keeps N - 2 in its
 *    overflow list (IORING_FEAT_NODROP) until the backend flushes them.
 *    Each round must deliver each latch exactly once.  This overflows on
 *    every round: the flush count must be > 0.
 *  storm: three waiter threads (max 7) on many one-shot fds (each round
 *    writes a byte into every one, through EPOLL_WAIT), N latches and user
 *    triggers, all at once; every fd event, latch set and trigger is
 *    counted exactly.
 * io_uring only: under any other backend the test skips.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include "evqtest.h"

#define NLATCH 32
#define NFD 64
#define NWAIT 3

static struct evq *new_tiny_ring(void)
{
	struct evq_options o = { .backend = EVQ_BACKEND_URING };
	struct evq *q = NULL;
	setenv("EVQ_URING_ENTRIES", "1", 1);
	setenv("EVQ_URING_INLINE", "0", 1);
	int rc = evq_new(&q, &o);
	unsetenv("EVQ_URING_ENTRIES");
	unsetenv("EVQ_URING_INLINE");
	if (rc < 0) {
		printf("Bail out! evq_new(io_uring, 1 entry): %d\n", rc);
		exit(1);
	}
	return q;
}

/* evq_free(q) with EVQ_DEBUG=1; returns cq_overflow_flushes of its stats
 * line (-1 if it printed none). */
static void free_queue(void *q)
{
	evq_free(q);
}

static long free_and_count_flushes(struct evq *q)
{
	setenv("EVQ_DEBUG", "1", 1);
	const char *out = evqt_capture_stderr(free_queue, q);
	unsetenv("EVQ_DEBUG");
	const char *p = strstr(out, "cq_overflow_flushes=");
	return p ? strtol(p + strlen("cq_overflow_flushes="), NULL, 10) : -1;
}

static struct evq_latch latch[NLATCH];

static void test_latches(void)
{
	struct evq *q = new_tiny_ring();
	int64_t id[NLATCH];
	for (int i = 0; i < NLATCH; i++) {
		CHECK(evq_latch_init(&latch[i], 0) == 0);
		id[i] = evq_add_latch(q, &latch[i], 0, (uint64_t)i);
		CHECK(id[i] >= 0);
	}
	struct evq_event ev[64];
	int rounds = (int)evqt_scale(20), bad = 0, missing = 0, extra = 0;
	for (int r = 0; r < rounds; r++) {
		/* submits every latch's FUTEX_WAIT, then sleeps 1 ms */
		int n = evqt_wait(q, ev, 64, EVQT_MS);
		bad += n != 0;
		for (int i = 0; i < NLATCH; i++)
			CHECK(evq_latch_set(&latch[i]) == 0);
		int seen[NLATCH] = { 0 }, got = 0;
		int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
		while (got < NLATCH && evqt_now(CLOCK_MONOTONIC) < dl) {
			n = evqt_wait(q, ev, 64, 100 * EVQT_MS);
			for (int k = 0; k < n; k++) {
				uint64_t c = ev[k].cookie;
				if (c >= NLATCH || ev[k].kind != EVQ_KIND_LATCH ||
				    ev[k].id != id[c] || ev[k].data != 1) {
					bad++;
					continue;
				}
				if (seen[c]++)
					extra++;
				else
					got++;
			}
		}
		missing += NLATCH - got;
		/* nothing more for this round */
		n = evqt_wait(q, ev, 64, 0);
		extra += n;
		for (int i = 0; i < NLATCH; i++)
			CHECK(evq_latch_reset(&latch[i]) == 0);
	}
	long flushes = free_and_count_flushes(q);
	diag("latches: %ld CQ overflow backlogs flushed in %d rounds", flushes, rounds);
	is(missing, 0, "latches: %d rounds x %d latches set at once, each delivered",
	   rounds, NLATCH);
	is(extra, 0, "latches: none delivered twice");
	is(bad, 0, "latches: no stray event");
	ok(flushes > 0, "latches: the overflow path ran (cq_overflow_flushes=%ld)",
	   flushes);
}

/* ---- storm: fds, latches and triggers at once, three waiters ---- */

struct storm {
	struct evq *q;
	int sv[NFD][2];
	int64_t fid[NFD], lid[NLATCH], uid;
	_Atomic long fd_events, latch_events, user_data, bad;
	_Atomic int stop;
};

static void *storm_waiter(void *arg)
{
	struct storm *s = arg;
	struct evq_event ev[7];
	while (!atomic_load(&s->stop)) {
		int n = evq_wait(s->q, ev, 7, 5 * EVQT_MS, NULL);
		if (n < 0 && n != -EINTR)
			atomic_fetch_add(&s->bad, 1);
		for (int i = 0; i < n; i++) {
			uint64_t c = ev[i].cookie;
			if (ev[i].kind == EVQ_KIND_FD && c < NFD && ev[i].id == s->fid[c]) {
				char b;
				if (read(s->sv[c][0], &b, 1) == 1)
					atomic_fetch_add(&s->fd_events, 1);
				else
					atomic_fetch_add(&s->bad, 1);
			} else if (ev[i].kind == EVQ_KIND_LATCH && c >= 1000 &&
				   c < 1000 + NLATCH && ev[i].id == s->lid[c - 1000]) {
				atomic_fetch_add(&s->latch_events, 1);
			} else if (ev[i].kind == EVQ_KIND_USER && ev[i].id == s->uid) {
				atomic_fetch_add(&s->user_data, (long)ev[i].data);
			} else {
				atomic_fetch_add(&s->bad, 1);
			}
		}
	}
	return NULL;
}

static int await_count(_Atomic long *c, long want)
{
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(c) < want && evqt_now(CLOCK_MONOTONIC) < dl)
		sched_yield();
	return atomic_load(c) >= want;
}

static void test_storm(void)
{
	static struct storm s;
	memset(&s, 0, sizeof s);
	s.q = new_tiny_ring();
	for (int i = 0; i < NFD; i++) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				 s.sv[i]) == 0);
		s.fid[i] = evq_add_fd(s.q, s.sv[i][0], EVQ_READ, EVQ_ONESHOT, (uint64_t)i);
		CHECK(s.fid[i] >= 0);
	}
	for (int i = 0; i < NLATCH; i++) {
		CHECK(evq_latch_init(&latch[i], 0) == 0);
		s.lid[i] = evq_add_latch(s.q, &latch[i], 0, 1000 + (uint64_t)i);
		CHECK(s.lid[i] >= 0);
	}
	CHECK((s.uid = evq_add_user(s.q, 2000)) >= 0);
	pthread_t w[NWAIT];
	for (int i = 0; i < NWAIT; i++)
		CHECK(pthread_create(&w[i], NULL, storm_waiter, &s) == 0);

	int rounds = (int)evqt_scale(20), all = 1;
	long triggers = 0;
	for (int r = 0; r < rounds && all; r++) {
		for (int i = 0; i < NFD; i++)
			CHECK(write(s.sv[i][1], "x", 1) == 1);
		for (int i = 0; i < NLATCH; i++)
			CHECK(evq_latch_set(&latch[i]) == 0);
		for (int i = 0; i < 50; i++)
			triggers += evq_trigger(s.q, s.uid) == 0;
		all = await_count(&s.fd_events, (long)(r + 1) * NFD) &&
		      await_count(&s.latch_events, (long)(r + 1) * NLATCH);
		for (int i = 0; i < NLATCH; i++)
			CHECK(evq_latch_reset(&latch[i]) == 0);
		for (int i = 0; i < NFD; i++)
			CHECK(evq_mod(s.q, s.fid[i], EVQ_READ, EVQ_ONESHOT) == 0);
	}
	await_count(&s.user_data, triggers);
	atomic_store(&s.stop, 1);
	for (int i = 0; i < NWAIT; i++)
		pthread_join(w[i], NULL);
	/* nothing beyond: one more look */
	struct evq_event ev[8];
	int late = evqt_wait(s.q, ev, 8, 0);
	long flushes = free_and_count_flushes(s.q);
	diag("storm: %ld CQ overflow backlogs flushed", flushes);
	is(atomic_load(&s.fd_events), (long)rounds * NFD,
	   "storm: every fd readiness delivered once (%d rounds x %d one-shot fds)",
	   rounds, NFD);
	is(atomic_load(&s.latch_events), (long)rounds * NLATCH,
	   "storm: every latch set delivered once (%d rounds x %d)", rounds, NLATCH);
	is(atomic_load(&s.user_data), triggers, "storm: every trigger counted");
	is(atomic_load(&s.bad) + late, 0, "storm: no error, no stray or late event");
	for (int i = 0; i < NFD; i++) {
		close(s.sv[i][0]);
		close(s.sv[i][1]);
	}
}

int main(void)
{
	evqt_watchdog(120);
	const char *env = getenv("EVQ_BACKEND");
	if (!env || strcmp(env, "uring") != 0)
		skip_all("io_uring only (the CQ overflow path is the io_uring "
			 "backend's); runs under EVQ_BACKEND=uring");
	evqt_banner("cqoverflow");
	struct evq_options o = { .backend = EVQ_BACKEND_URING };
	struct evq *q = NULL;
	int rc = evq_new(&q, &o);
	if (rc < 0) {
		diag("evq_new(io_uring): %d", rc);
		skip_all("no io_uring backend on this kernel");
	}
	struct evq_latch l;
	CHECK(evq_latch_init(&l, 0) == 0);
	int64_t lid = evq_add_latch(q, &l, 0, 0);
	evq_free(q);
	if (lid < 0) {
		diag("evq_add_latch on io_uring: %d", (int)lid);
		skip_all("latches on io_uring unavailable here");
	}
	test_latches();
	test_storm();
	return done();
}
