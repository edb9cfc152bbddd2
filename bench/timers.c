/* SPDX-License-Identifier: MIT */
/*
 * timers.c - a million timers: evq against libev (ev_timer), libuv
 * (uv_timer) and libevent (evtimer), per-operation nanoseconds.
 *
 * Each round of each implementation, on a fresh loop (made untimed):
 *   add   T one-shot timers with random deadlines uniform in [0, 50 ms)
 *         (the same pseudo-random sequence for everyone);        timed
 *         sleep until every deadline has passed;                   untimed
 *   fire  run the loop until all T callbacks/events arrived;     timed
 *         evq's handler also calls evq_del(), because a fired evq
 *         timer stays registered (silent) until deleted, while the
 *         others' one-shot timers stop by themselves;
 *   add   T timers with random deadlines in [10 s, 20 s);        untimed
 *   del   cancel them all, in a random order;                    timed
 *   free the loop (closing libuv's handles first);               untimed
 * There is no raw-syscall floor here (a kernel timer per timer would not
 * even fit the fd limit): ratios are against libev, the usual reference,
 * as the median of per-round impl/libev.  Implementations interleave
 * round-robin, the first rotating each round; round -1 is a warm-up.
 *
 * Output:
 *   bench=timers impl=evq t=1000000 rounds=5 add_ns_median=... fire_ns_median=...
 *   del_ns_median=... add_ratio_vs_libev=... fire_ratio_vs_libev=...
 *   del_ratio_vs_libev=...
 *
 * Usage: timers [-t 1000000] [-r 5] [-i evq,libev,libuv,libevent]
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

/* libev's enum and libevent's macros both name EV_READ: include libev
 * first; this file uses no libev constant the libevent macros hide. */
#ifdef HAVE_LIBEV
#include <ev.h>
#endif
#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define SPREAD_NS 50000000LL      /* fire scenario: deadlines in [0, 50 ms) */
#define FAR_NS 10000000000LL      /* del scenario: [10 s, 20 s) */
#define BATCH 256

static long ntimers;
static int64_t *fire_ns, *far_ns; /* relative deadlines, ns */
static uint32_t *order;           /* random permutation: delete order */
static long fired;

static void die(const char *what, int err)
{
	fprintf(stderr, "timers: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	return bench_calloc("timers", n, size);
}


/* ------------------------------------------------------------------ */
/* evq                                                                  */
/* ------------------------------------------------------------------ */

static struct evq *q;
static int64_t *evq_ids;

static void evq_open(void)
{
	struct evq_options opt = { .backend = getenv("EVQ_BACKEND") ?
				   EVQ_BACKEND_AUTO : EVQ_BACKEND_EPOLL };
	int err = evq_new(&q, &opt);
	if (err < 0)
		die("evq_new", err);
}

static void evq__add(const int64_t *when)
{
	for (long i = 0; i < ntimers; i++) {
		evq_ids[i] = evq_add_timer(q, CLOCK_MONOTONIC, when[i], 0, 0,
					   (uint64_t)i);
		if (evq_ids[i] < 0)
			die("evq_add_timer", (int)evq_ids[i]);
	}
}

static void evq_fire(void)
{
	struct evq_event evs[BATCH];

	while (fired < ntimers) {
		int n = evq_wait(q, evs, BATCH, -1, NULL);
		if (n < 0 && n != -EINTR)
			die("evq_wait", n);
		for (int k = 0; k < n; k++) {
			int err = evq_del(q, evs[k].id);
			if (err < 0)
				die("evq_del (fired)", err);
			fired++;
		}
	}
}

static void evq_delete(void)
{
	for (long i = 0; i < ntimers; i++) {
		int err = evq_del(q, evq_ids[order[i]]);
		if (err < 0)
			die("evq_del", err);
	}
}

static void evq_close(void) { evq_free(q); }

/* ------------------------------------------------------------------ */
/* libev                                                                */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBEV
static struct ev_loop *lev;
static ev_timer *lev_timers;
static double *lev_fire, *lev_far; /* seconds */

static void lev_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	fired++;
}

static void lev_open(void)
{
	lev = ev_loop_new(EVBACKEND_EPOLL);
	if (!lev)
		die("ev_loop_new", ENOMEM);
}

static void lev_add(const double *after)
{
	for (long i = 0; i < ntimers; i++) {
		ev_timer_init(&lev_timers[i], lev_cb, after[i], 0.);
		ev_timer_start(lev, &lev_timers[i]);
	}
}

static void lev_add_fire(void) { lev_add(lev_fire); }
static void lev_add_far(void) { lev_add(lev_far); }

static void lev_run_all(void)
{
	while (fired < ntimers)
		ev_run(lev, EVRUN_ONCE);
}

static void lev_delete(void)
{
	for (long i = 0; i < ntimers; i++)
		ev_timer_stop(lev, &lev_timers[order[i]]);
}

static void lev_close(void) { ev_loop_destroy(lev); }
#endif

/* ------------------------------------------------------------------ */
/* libuv                                                                */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBUV
static uv_loop_t luv;
static uv_timer_t *luv_timers;
static uint64_t *luv_fire, *luv_far; /* milliseconds: libuv's resolution */

static void luv_cb(uv_timer_t *t)
{
	(void)t;
	fired++;
}

static void luv_open(void)
{
	int err = uv_loop_init(&luv);
	if (err < 0)
		die("uv_loop_init", err);
}

/* A handle belongs to its loop: a fresh loop needs uv_timer_init, which
 * is part of adding a timer here, as ev_timer_init and evtimer_assign are
 * for the others.  A handle is initialised once per loop (a second
 * uv_timer_init would link it into the loop's handle list twice), so the
 * untimed second scenario only restarts the handles. */
static void luv_add_fire(void)
{
	for (long i = 0; i < ntimers; i++) {
		uv_timer_init(&luv, &luv_timers[i]);
		if (uv_timer_start(&luv_timers[i], luv_cb, luv_fire[i], 0) < 0)
			die("uv_timer_start", EINVAL);
	}
}

static void luv_add_far(void)
{
	for (long i = 0; i < ntimers; i++)
		if (uv_timer_start(&luv_timers[i], luv_cb, luv_far[i], 0) < 0)
			die("uv_timer_start", EINVAL);
}

static void luv_run_all(void)
{
	while (fired < ntimers)
		uv_run(&luv, UV_RUN_ONCE);
}

static void luv_delete(void)
{
	for (long i = 0; i < ntimers; i++)
		uv_timer_stop(&luv_timers[order[i]]);
}

static void luv_close(void)
{
	for (long i = 0; i < ntimers; i++)
		uv_close((uv_handle_t *)&luv_timers[i], NULL);
	uv_run(&luv, UV_RUN_DEFAULT);
	if (uv_loop_close(&luv) < 0)
		die("uv_loop_close", EBUSY);
}
#endif

/* ------------------------------------------------------------------ */
/* libevent                                                             */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBEVENT
static struct event_base *leb;
static unsigned char *le_mem;
static size_t le_size;
static struct timeval *le_fire, *le_far;

static struct event *le_event(long i)
{
	return (struct event *)(void *)(le_mem + (size_t)i * le_size);
}

static void le_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fired++;
}

static void le_open(void)
{
	leb = event_base_new();
	if (!leb)
		die("event_base_new", ENOMEM);
}

static void le_add(const struct timeval *tv)
{
	for (long i = 0; i < ntimers; i++) {
		struct event *ev = le_event(i);
		if (evtimer_assign(ev, leb, le_cb, NULL) < 0 ||
		    evtimer_add(ev, &tv[i]) < 0)
			die("evtimer_add", EINVAL);
	}
}

static void le_add_fire(void) { le_add(le_fire); }
static void le_add_far(void) { le_add(le_far); }

static void le_run_all(void)
{
	while (fired < ntimers)
		if (event_base_loop(leb, EVLOOP_ONCE) < 0)
			die("event_base_loop", EINVAL);
}

static void le_delete(void)
{
	for (long i = 0; i < ntimers; i++)
		evtimer_del(le_event(order[i]));
}

static void le_close(void) { event_base_free(leb); }
#endif

/* ------------------------------------------------------------------ */
/* driver                                                               */
/* ------------------------------------------------------------------ */

static void evq_add_fire(void) { evq__add(fire_ns); }
static void evq_add_far(void) { evq__add(far_ns); }

struct impl {
	const char *name;
	const char *missing;
	void (*open)(void), (*add_fire)(void), (*fire)(void),
	     (*add_far)(void), (*del)(void), (*close)(void);
	int selected;
	int64_t *add, *fire_t, *del_t; /* per round, ns for all T */
};

static struct impl impls[] = {
	{ "evq", NULL, evq_open, evq_add_fire, evq_fire, evq_add_far,
	  evq_delete, evq_close, 1, 0, 0, 0 },
#ifdef HAVE_LIBEV
	{ "libev", NULL, lev_open, lev_add_fire, lev_run_all, lev_add_far,
	  lev_delete, lev_close, 1, 0, 0, 0 },
#else
	{ "libev", "install libev-dev", 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 },
#endif
#ifdef HAVE_LIBUV
	{ "libuv", NULL, luv_open, luv_add_fire, luv_run_all, luv_add_far,
	  luv_delete, luv_close, 1, 0, 0, 0 },
#else
	{ "libuv", "install libuv1-dev", 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 },
#endif
#ifdef HAVE_LIBEVENT
	{ "libevent", NULL, le_open, le_add_fire, le_run_all, le_add_far,
	  le_delete, le_close, 1, 0, 0, 0 },
#else
	{ "libevent", "install libevent-dev", 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 },
#endif
};
#define NIMPL ((int)(sizeof impls / sizeof impls[0]))

static double per_op_median(const int64_t *t, int rounds, double *v)
{
	for (int r = 0; r < rounds; r++)
		v[r] = (double)t[r] / (double)ntimers;
	return median(v, rounds);
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int one_round(int cand, int slot, void *ctx)
{
	struct impl *im = &impls[cand];
	int64_t t0, t1, t2, t3, t4;

	(void)ctx;
	if (im->missing || !im->selected)
		return 0;
	im->open();
	t0 = now_ns();
	im->add_fire();
	t1 = now_ns();
	sleep_ns(SPREAD_NS + 2000000); /* every deadline is now in the past */
	fired = 0;
	t2 = now_ns();
	im->fire();
	t3 = now_ns();
	if (fired != ntimers) {
		fprintf(stderr, "timers: %s fired %ld of %ld\n", im->name, fired,
			ntimers);
		exit(1);
	}
	im->add_far();
	fired = 0;
	t4 = now_ns();
	im->del();
	if (slot >= 0) {
		im->add[slot] = t1 - t0;
		im->fire_t[slot] = t3 - t2;
		im->del_t[slot] = now_ns() - t4;
	}
	im->close();
	if (fired != 0) {
		fprintf(stderr, "timers: %s fired a deleted timer\n", im->name);
		exit(1);
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: timers [-t timers] [-r rounds] "
		"[-i evq,libev,libuv,libevent]\n");
	exit(2);
}

/* the workload, the same for every implementation and round: ntimers
 * deadlines, near and far, in each library's unit, and a random order */
static void make_workload(void)
{
	fire_ns = xcalloc((size_t)ntimers, sizeof *fire_ns);
	far_ns = xcalloc((size_t)ntimers, sizeof *far_ns);
	order = xcalloc((size_t)ntimers, sizeof *order);
	for (long i = 0; i < ntimers; i++) {
		fire_ns[i] = (int64_t)(bench_random() % SPREAD_NS);
		far_ns[i] = FAR_NS + (int64_t)(bench_random() % FAR_NS);
		order[i] = (uint32_t)i;
	}
	for (long i = ntimers - 1; i > 0; i--) { /* Fisher-Yates */
		long j = (long)(bench_random() % (uint64_t)(i + 1));
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	evq_ids = xcalloc((size_t)ntimers, sizeof *evq_ids);
#ifdef HAVE_LIBEV
	lev_timers = xcalloc((size_t)ntimers, sizeof *lev_timers);
	lev_fire = xcalloc((size_t)ntimers, sizeof *lev_fire);
	lev_far = xcalloc((size_t)ntimers, sizeof *lev_far);
	for (long i = 0; i < ntimers; i++) {
		lev_fire[i] = (double)fire_ns[i] * 1e-9;
		lev_far[i] = (double)far_ns[i] * 1e-9;
	}
#endif
#ifdef HAVE_LIBUV
	luv_timers = xcalloc((size_t)ntimers, sizeof *luv_timers);
	luv_fire = xcalloc((size_t)ntimers, sizeof *luv_fire);
	luv_far = xcalloc((size_t)ntimers, sizeof *luv_far);
	for (long i = 0; i < ntimers; i++) {
		luv_fire[i] = (uint64_t)fire_ns[i] / 1000000;
		luv_far[i] = (uint64_t)far_ns[i] / 1000000;
	}
#endif
#ifdef HAVE_LIBEVENT
	le_size = event_get_struct_event_size();
	le_mem = xcalloc((size_t)ntimers, le_size);
	le_fire = xcalloc((size_t)ntimers, sizeof *le_fire);
	le_far = xcalloc((size_t)ntimers, sizeof *le_far);
	for (long i = 0; i < ntimers; i++) {
		le_fire[i].tv_sec = fire_ns[i] / 1000000000;
		le_fire[i].tv_usec = fire_ns[i] % 1000000000 / 1000;
		le_far[i].tv_sec = far_ns[i] / 1000000000;
		le_far[i].tv_usec = far_ns[i] % 1000000000 / 1000;
	}
#endif
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .rounds = 5 };
	int rounds, opt;
	struct impl *base = NULL;
	double *v;

	ntimers = 1000000;
	while ((opt = getopt(argc, argv, "t:r:i:")) != -1) {
		if (opt == 't')
			ntimers = bench_num(optarg, 1, 1L << 30, usage);
		else if (!bench_opt(&o, opt, optarg))
			usage();
	}
	rounds = bench_opts_end(&o, argc, usage);
	for (int i = 0; i < NIMPL; i++)
		impls[i].selected = bench_listed(o.impls, impls[i].name);

	make_workload();

	printf("# timers: t=%ld one-shot timers, random deadlines; add and "
	       "fire (deadlines in [0,50ms), evq also evq_del()s each fired "
	       "timer), del (deadlines in [10s,20s), random order); ns per "
	       "timer, medians of %d interleaved rounds; ratio = median of "
	       "per-round impl/libev\n", ntimers, rounds);
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];
		if (im->selected && im->missing)
			bench_skipped("timers", im->name, im->missing);
		if (im->missing || !im->selected)
			continue;
		im->add = xcalloc((size_t)rounds, sizeof(int64_t));
		im->fire_t = xcalloc((size_t)rounds, sizeof(int64_t));
		im->del_t = xcalloc((size_t)rounds, sizeof(int64_t));
		if (!strcmp(im->name, "libev"))
			base = im;
	}
	fflush(stdout);

	bench_rounds(rounds, NIMPL, 1, one_round, NULL);

	v = xcalloc((size_t)rounds, sizeof *v);
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];

		if (im->missing || !im->selected)
			continue;
		printf("bench=timers impl=%s t=%ld rounds=%d add_ns_median=%.0f "
		       "fire_ns_median=%.0f del_ns_median=%.0f", im->name,
		       ntimers, rounds, per_op_median(im->add, rounds, v),
		       per_op_median(im->fire_t, rounds, v),
		       per_op_median(im->del_t, rounds, v));
		if (base)
			printf(" add_ratio_vs_libev=%.3f fire_ratio_vs_libev=%.3f "
			       "del_ratio_vs_libev=%.3f",
			       bench_ratio_median_i64(im->add, base->add, rounds),
			       bench_ratio_median_i64(im->fire_t, base->fire_t, rounds),
			       bench_ratio_median_i64(im->del_t, base->del_t, rounds));
		printf("\n");
	}
	return 0;
}
