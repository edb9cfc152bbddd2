/* SPDX-License-Identifier: MIT */
/*
 * handoff.c - a waiter that takes one of two pending events and then
 * blocks hands the other to another sleeper (src/core/wait.c pass_on(), and on
 * io_uring the ring's handover to a follower).
 *
 * Two threads sleep in evq_wait() on one queue, each with max = 1.  Two
 * events become pending at once; whichever thread gets the first one
 * blocks in its handler until the second has been handled - by the other
 * thread, necessarily - and gives up after EVQT_SOON.  So the second
 * event must reach the second sleeper while the first is blocked: if
 * nobody wakes it, the first handler times out and the round fails.
 * "At once": two timers with the same deadline (both fire in one round of
 * the timer heap), two triggers back to back, one broadcast reaching two
 * mask registrations, two latches set by one evq_latch_set_many(), and
 * two fds written back to back (one-shot, re-armed each round).  Each
 * kind runs on a fresh queue, and on io_uring a second time with the
 * inline futex sleep off (EVQ_URING_INLINE=0: words wait in the ring).
 * A round starts only when both threads are inside evq_wait (the queue's
 * sleeper count, read white-box); no sleep decides anything.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include "evqtest.h"
#include "internal.h"

#define STOP_COOKIE 99

enum kind { K_TIMER, K_TRIGGER, K_MASK, K_LATCH, K_FD, NKINDS };
static const char *const kind_name[NKINDS] = { "timers", "triggers", "mask",
					       "latches", "fds" };

struct ctx {
	struct evq *q;
	enum kind kind;
	int64_t stop_id;
	int sv[2][2];              /* K_FD */
	_Atomic int handled;       /* events handled this round */
	_Atomic int finished;      /* handlers returned this round */
	_Atomic int handler[2];    /* which thread handled the k-th event */
	_Atomic uint64_t cookies;  /* cookies seen this round, one bit each */
	_Atomic int timeouts;      /* first handler gave up waiting */
	_Atomic int bad;           /* wrong events, errors */
};

struct thr {
	struct ctx *c;
	int me;
};

static int64_t handoff_deadline(void)
{
	return evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
}

static void *waiter(void *arg)
{
	struct thr *t = arg;
	struct ctx *c = t->c;
	struct evq_event ev[1];
	for (;;) {
		int n = evq_wait(c->q, ev, 1, -1, NULL);
		if (n == -EINTR)
			continue;
		if (n != 1) {
			atomic_fetch_add(&c->bad, 1);
			continue;
		}
		if (ev[0].cookie == STOP_COOKIE) {
			evq_trigger(c->q, c->stop_id); /* for the other thread */
			return NULL;
		}
		if (ev[0].cookie != 1 && ev[0].cookie != 2) {
			atomic_fetch_add(&c->bad, 1);
			continue;
		}
		if (c->kind == K_FD) {
			char b;
			if (read(c->sv[ev[0].cookie - 1][0], &b, 1) != 1)
				atomic_fetch_add(&c->bad, 1);
		}
		atomic_fetch_or(&c->cookies, 1ull << ev[0].cookie);
		int k = atomic_fetch_add(&c->handled, 1);
		if (k < 2)
			atomic_store(&c->handler[k], t->me);
		if (k == 0) {
			/* the first: block until the other event was handled */
			int64_t dl = handoff_deadline();
			while (atomic_load(&c->handled) < 2) {
				if (evqt_now(CLOCK_MONOTONIC) > dl) {
					atomic_fetch_add(&c->timeouts, 1);
					break;
				}
				sched_yield();
			}
		}
		atomic_fetch_add(&c->finished, 1);
	}
}

/* Waits (bounded) until cond(c) holds; returns whether it did. */
static int await(struct ctx *c, int (*cond)(struct ctx *))
{
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + 3 * EVQT_SOON;
	while (!cond(c)) {
		if (evqt_now(CLOCK_MONOTONIC) > dl)
			return 0;
		sched_yield();
	}
	return 1;
}

static int both_asleep(struct ctx *c)
{
	return atomic_load(&c->q->sleepers) == 2;
}

static int round_done(struct ctx *c)
{
	return atomic_load(&c->finished) == 2;
}

static void run(enum kind kind, const char *variant)
{
	struct ctx c;
	memset(&c, 0, sizeof c);
	c.kind = kind;
	c.q = evqt_new();
	c.stop_id = evq_add_user(c.q, STOP_COOKIE);
	CHECK(c.stop_id >= 0);

	int64_t id[2] = { -1, -1 };
	struct evq_bcast b;
	struct evq_latch latch[2];
	struct evq_latch *lp[2] = { &latch[0], &latch[1] };
	switch (kind) {
	case K_TRIGGER:
		for (int i = 0; i < 2; i++)
			CHECK((id[i] = evq_add_user(c.q, (uint64_t)i + 1)) >= 0);
		break;
	case K_MASK:
		CHECK(evq_bcast_init(&b) == 0);
		for (int i = 0; i < 2; i++)
			CHECK((id[i] = evq_add_mask(c.q, &b, 1, (uint64_t)i + 1)) >= 0);
		break;
	case K_LATCH:
		for (int i = 0; i < 2; i++) {
			CHECK(evq_latch_init(&latch[i], 0) == 0);
			CHECK((id[i] = evq_add_latch(c.q, &latch[i], 0, (uint64_t)i + 1)) >= 0);
		}
		break;
	case K_FD:
		for (int i = 0; i < 2; i++) {
			CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
					 c.sv[i]) == 0);
			CHECK((id[i] = evq_add_fd(c.q, c.sv[i][0], EVQ_READ, EVQ_ONESHOT,
						  (uint64_t)i + 1)) >= 0);
		}
		break;
	default:
		break;
	}

	pthread_t th[2];
	struct thr targ[2] = { { &c, 0 }, { &c, 1 } };
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, waiter, &targ[i]) == 0);

	int rounds = (int)evqt_scale(100), r, same = 0, missing = 0, stuck = 0;
	for (r = 0; r < rounds; r++) {
		if (!await(&c, both_asleep)) {
			stuck = 1;
			break;
		}
		atomic_store(&c.handled, 0);
		atomic_store(&c.finished, 0);
		atomic_store(&c.cookies, 0);
		atomic_store(&c.handler[0], -1);
		atomic_store(&c.handler[1], -1);
		/* two events pending at once */
		switch (kind) {
		case K_TIMER: {
			int64_t dl = evqt_now(CLOCK_MONOTONIC) + 2 * EVQT_MS;
			for (int i = 0; i < 2; i++)
				CHECK((id[i] = evq_add_timer(c.q, CLOCK_MONOTONIC, dl, 0,
							     EVQ_ABSTIME,
							     (uint64_t)i + 1)) >= 0);
			break;
		}
		case K_TRIGGER:
			CHECK(evq_trigger(c.q, id[0]) == 0);
			CHECK(evq_trigger(c.q, id[1]) == 0);
			break;
		case K_MASK:
			CHECK(evq_bcast_notify(&b, 1) == 0);
			break;
		case K_LATCH:
			CHECK(evq_latch_set_many(lp, 2) == 0);
			break;
		case K_FD:
			CHECK(write(c.sv[0][1], "x", 1) == 1);
			CHECK(write(c.sv[1][1], "y", 1) == 1);
			break;
		default:
			break;
		}
		if (!await(&c, round_done)) {
			stuck = 1;
			break;
		}
		same += atomic_load(&c.handler[0]) == atomic_load(&c.handler[1]);
		missing += atomic_load(&c.cookies) != (1u << 1 | 1u << 2);
		/* set up the next round */
		switch (kind) {
		case K_TIMER:
			for (int i = 0; i < 2; i++)
				CHECK(evq_del(c.q, id[i]) == 0);
			break;
		case K_LATCH:
			for (int i = 0; i < 2; i++)
				CHECK(evq_latch_reset(&latch[i]) == 0);
			break;
		case K_FD:
			for (int i = 0; i < 2; i++)
				CHECK(evq_mod(c.q, id[i], EVQ_READ, EVQ_ONESHOT) == 0);
			break;
		default:
			break;
		}
		if (atomic_load(&c.timeouts)) {
			r++;
			break; /* each failed round costs EVQT_SOON: one is enough */
		}
	}
	if (stuck) {
		printf("Bail out! %s %s: round %d never completed\n", kind_name[kind],
		       variant, r);
		exit(1);
	}
	CHECK(evq_trigger(c.q, c.stop_id) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);

	is(atomic_load(&c.timeouts), 0,
	   "%s%s: the second event reached the other sleeper while the first "
	   "handler blocked (%d rounds run)", kind_name[kind], variant, r);
	is(same, 0, "%s%s: the two events went to different threads", kind_name[kind],
	   variant);
	is(missing + atomic_load(&c.bad), 0, "%s%s: each round delivered both events, "
	   "nothing else", kind_name[kind], variant);
	evq_free(c.q);
	if (kind == K_MASK)
		evq_bcast_destroy(&b);
	if (kind == K_FD)
		for (int i = 0; i < 2; i++) {
			close(c.sv[i][0]);
			close(c.sv[i][1]);
		}
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("handoff");
	struct evq *q = evqt_new();
	int uring = strcmp(evq_backend_name(q), "uring") == 0;
	evq_free(q);
	int waitv = evqt_have_futex_waitv();
	for (int k = 0; k < NKINDS; k++) {
		if (k == K_LATCH && !waitv) {
			skip(3, "latches: " EVQT_NO_WAITV);
			continue;
		}
		run((enum kind)k, "");
	}
	if (uring) {
		/* words (latches) in the ring rather than the inline sleep; the
		 * other kinds too, for the ring's own handover */
		setenv("EVQ_URING_INLINE", "0", 1);
		for (int k = 0; k < NKINDS; k++)
			run((enum kind)k, " (EVQ_URING_INLINE=0)");
		unsetenv("EVQ_URING_INLINE");
	} else {
		skip(3 * NKINDS, "EVQ_URING_INLINE=0: io_uring only");
	}
	return done();
}
