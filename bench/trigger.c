/* SPDX-License-Identifier: MIT */
/*
 * trigger.c - cross-thread trigger round trip: evq against a raw
 * eventfd + epoll ping-pong and the peer libraries' own cross-thread wakeups.
 *
 * mode=pingpong: thread A owns queue QA, thread B owns QB.  A triggers a
 *   user event on QB and waits on QA; B wakes, triggers a user event on QA
 *   and waits again.  One round trip = two cross-thread wakeups of a
 *   sleeping thread.  Timed in A over M round trips (after 200 untimed).
 * mode=self: one thread triggers its own queue and collects the event with
 *   a non-blocking wait, M times: the cost of a trigger when nobody sleeps
 *   (evq promises no system call then).
 *
 * Implementations, interleaved round-robin over R rounds (the first one
 * rotates), medians of ns per round trip (or per trigger), ratio = median
 * of the per-round ratios against "epoll" of the same round:
 *   epoll     eventfd write; epoll_wait(1) on it, edge-triggered, never
 *             read: two system calls per wakeup      (the floor)
 *   evq       evq_add_user, evq_trigger, evq_wait
 *   libevent  event_active() on an event of the other base (evthread
 *             pthreads locking), event_base_loop ONCE
 *   libev     ev_async_send, ev_run EVRUN_ONCE (epoll backend)
 *   libuv     uv_async_send, uv_run UV_RUN_ONCE
 * Loops and thread B are made fresh for every round, untimed.
 *
 * Output:
 *   bench=trigger mode=pingpong impl=evq m=10000 rounds=11
 *   ns_median=... ns_min=... ratio_vs_epoll=...
 *
 * Usage: trigger [-m 10000] [-r 11] [-i epoll,evq,libevent,libev,libuv] [-v]
 *   -v prints every round's value too (the distribution is often bimodal:
 *      a round trip costs ~2 us while both vCPUs stay awake and ~40 us when
 *      a wakeup has to bring an idle one back)
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

/* libev's enum and libevent's macros both name EV_READ: include libev
 * first; this file uses no libev constant the libevent macros hide. */
#ifdef HAVE_LIBEV
#include <ev.h>
#endif
#if defined(HAVE_LIBEVENT) && defined(HAVE_LIBEVENT_PTHREADS)
#include <event2/event.h>
#include <event2/thread.h>
#define BENCH_LIBEVENT 1
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define WARMUP 200

static int verbose; /* -v: print every round */

static atomic_int stop; /* tells thread B to leave */
static pthread_t thread_b;

static void die(const char *what, int err)
{
	fprintf(stderr, "trigger: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void start_b(void *(*fn)(void *))
{
	int err;

	atomic_store(&stop, 0);
	err = pthread_create(&thread_b, NULL, fn, NULL);
	if (err)
		die("pthread_create", err);
}

static void join_b(void)
{
	int err = pthread_join(thread_b, NULL);
	if (err)
		die("pthread_join", err);
}

/* ------------------------------------------------------------------ */
/* raw eventfd + epoll: the floor                                       */
/* ------------------------------------------------------------------ */

/* The eventfd is edge-triggered and never read: each write() is a fresh
 * edge, so a wakeup costs one write() and the wait one epoll_wait(), the
 * least the kernel allows (evq's epoll backend wakes the same way). */
static int raw_efd[2], raw_ep[2]; /* [0] A's, [1] B's */

static void raw_signal(int side)
{
	uint64_t one = 1;
	if (write(raw_efd[side], &one, sizeof one) != sizeof one)
		die("eventfd write", errno);
}

static void raw_collect(int side, int timeout_ms)
{
	struct epoll_event e;
	int n;

	while ((n = epoll_wait(raw_ep[side], &e, 1, timeout_ms)) < 0)
		if (errno != EINTR)
			die("epoll_wait", errno);
	if (n != 1)
		die("eventfd: lost wakeup", EPROTO);
}

static void *raw_b(void *arg)
{
	(void)arg;
	for (;;) {
		raw_collect(1, -1);
		if (atomic_load(&stop))
			return NULL;
		raw_signal(0);
	}
}

static void raw_open(void)
{
	for (int s = 0; s < 2; s++) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLET };
		raw_efd[s] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		raw_ep[s] = epoll_create1(EPOLL_CLOEXEC);
		if (raw_efd[s] < 0 || raw_ep[s] < 0 ||
		    epoll_ctl(raw_ep[s], EPOLL_CTL_ADD, raw_efd[s], &e) < 0)
			die("eventfd/epoll", errno);
	}
}

static void raw_close(void)
{
	for (int s = 0; s < 2; s++) {
		close(raw_efd[s]);
		close(raw_ep[s]);
	}
}

static void raw_start(void) { raw_open(); start_b(raw_b); }
static void raw_ping(void) { raw_signal(1); raw_collect(0, -1); }
static void raw_stop(void)
{
	atomic_store(&stop, 1);
	raw_signal(1);
	join_b();
	raw_close();
}
static void raw_self_open(void) { raw_open(); }
static void raw_self(void) { raw_signal(0); raw_collect(0, 0); }
static void raw_self_close(void) { raw_close(); }

/* ------------------------------------------------------------------ */
/* evq                                                                  */
/* ------------------------------------------------------------------ */

static struct evq *evq_qa, *evq_qb;
static int64_t evq_ida, evq_idb;

static void evq_collect(struct evq *q, int64_t id, int64_t timeout_ns)
{
	struct evq_event ev;
	int n;

	do
		n = evq_wait(q, &ev, 1, timeout_ns, NULL);
	while (n == -EINTR || (n == 0 && timeout_ns < 0));
	if (n < 0)
		die("evq_wait", n);
	if (n != 1 || ev.id != id || ev.data != 1)
		die("evq: lost or coalesced trigger", EPROTO);
}

static void evq_trig(struct evq *q, int64_t id)
{
	int err = evq_trigger(q, id);
	if (err < 0)
		die("evq_trigger", err);
}

static void *evq_b(void *arg)
{
	(void)arg;
	for (;;) {
		evq_collect(evq_qb, evq_idb, -1);
		if (atomic_load(&stop))
			return NULL;
		evq_trig(evq_qa, evq_ida);
	}
}

static struct evq *evq_make(int64_t *id)
{
	struct evq_options opt = { .backend = getenv("EVQ_BACKEND") ?
				   EVQ_BACKEND_AUTO : EVQ_BACKEND_EPOLL };
	struct evq *q;
	int err = evq_new(&q, &opt);

	if (err < 0)
		die("evq_new", err);
	if ((*id = evq_add_user(q, 0)) < 0)
		die("evq_add_user", (int)*id);
	return q;
}

static void evq_start(void)
{
	evq_qa = evq_make(&evq_ida);
	evq_qb = evq_make(&evq_idb);
	start_b(evq_b);
}

static void evq_ping(void)
{
	evq_trig(evq_qb, evq_idb);
	evq_collect(evq_qa, evq_ida, -1);
}

static void evq_stop(void)
{
	atomic_store(&stop, 1);
	evq_trig(evq_qb, evq_idb);
	join_b();
	evq_free(evq_qa);
	evq_free(evq_qb);
}

static void evq_self_open(void) { evq_qa = evq_make(&evq_ida); }
static void evq_self(void)
{
	evq_trig(evq_qa, evq_ida);
	evq_collect(evq_qa, evq_ida, 0);
}
static void evq_self_close(void) { evq_free(evq_qa); }

/* ------------------------------------------------------------------ */
/* libevent                                                             */
/* ------------------------------------------------------------------ */

#ifdef BENCH_LIBEVENT
static struct event_base *le_a, *le_b;
static struct event *le_ea, *le_eb;
static int le_got; /* set by A's callback, in A */

static void le_cb_a(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	le_got = 1;
}

static void le_cb_b(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_active(le_ea, EV_READ, 0);
}

static void *le_thread_b(void *arg)
{
	(void)arg;
	if (event_base_loop(le_b, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
		die("event_base_loop", EINVAL);
	return NULL;
}

static struct event_base *le_base(void)
{
	struct event_base *b = event_base_new();
	if (!b)
		die("event_base_new", ENOMEM);
	return b;
}

static void le_open_a(void)
{
	le_a = le_base();
	/* an event with no fd is fired only by event_active() */
	le_ea = event_new(le_a, -1, 0, le_cb_a, NULL);
	if (!le_ea)
		die("event_new", ENOMEM);
}

static void le_close_a(void)
{
	event_free(le_ea);
	event_base_free(le_a);
}

static void le_start(void)
{
	le_open_a();
	le_b = le_base();
	le_eb = event_new(le_b, -1, 0, le_cb_b, NULL);
	if (!le_eb)
		die("event_new", ENOMEM);
	start_b(le_thread_b);
}

static void le_wait_a(int flags)
{
	while (!le_got)
		if (event_base_loop(le_a, flags | EVLOOP_NO_EXIT_ON_EMPTY) < 0)
			die("event_base_loop", EINVAL);
	le_got = 0;
}

static void le_ping(void)
{
	event_active(le_eb, EV_READ, 0);
	le_wait_a(EVLOOP_ONCE);
}

static void le_stop(void)
{
	event_base_loopbreak(le_b);
	join_b();
	event_free(le_eb);
	event_base_free(le_b);
	le_close_a();
}

static void le_self(void)
{
	event_active(le_ea, EV_READ, 0);
	le_wait_a(EVLOOP_NONBLOCK);
}
#endif

/* ------------------------------------------------------------------ */
/* libev                                                                */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBEV
static struct ev_loop *lev_a, *lev_b;
static ev_async lev_aa, lev_ab;
static int lev_got;

static void lev_cb_a(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	lev_got = 1;
}

static void lev_cb_b(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)w;
	(void)revents;
	if (atomic_load(&stop))
		ev_break(loop, EVBREAK_ALL);
	else
		ev_async_send(lev_a, &lev_aa);
}

static void *lev_thread_b(void *arg)
{
	(void)arg;
	ev_run(lev_b, 0);
	return NULL;
}

static struct ev_loop *lev_loop(ev_async *w, void (*cb)(struct ev_loop *,
							  ev_async *, int))
{
	struct ev_loop *l = ev_loop_new(EVBACKEND_EPOLL);

	if (!l)
		die("ev_loop_new", ENOMEM);
	ev_async_init(w, cb);
	ev_async_start(l, w);
	return l;
}

static void lev_free(struct ev_loop *l, ev_async *w)
{
	ev_async_stop(l, w);
	ev_loop_destroy(l);
}

static void lev_wait_a(int flags)
{
	while (!lev_got)
		ev_run(lev_a, flags);
	lev_got = 0;
}

static void lev_start(void)
{
	lev_a = lev_loop(&lev_aa, lev_cb_a);
	lev_b = lev_loop(&lev_ab, lev_cb_b);
	start_b(lev_thread_b);
}

static void lev_ping(void)
{
	ev_async_send(lev_b, &lev_ab);
	lev_wait_a(EVRUN_ONCE);
}

static void lev_stop(void)
{
	atomic_store(&stop, 1);
	ev_async_send(lev_b, &lev_ab);
	join_b();
	lev_free(lev_a, &lev_aa);
	lev_free(lev_b, &lev_ab);
}

static void lev_self_open(void) { lev_a = lev_loop(&lev_aa, lev_cb_a); }
static void lev_self(void)
{
	ev_async_send(lev_a, &lev_aa);
	lev_wait_a(EVRUN_NOWAIT);
}
static void lev_self_close(void) { lev_free(lev_a, &lev_aa); }
#endif

/* ------------------------------------------------------------------ */
/* libuv                                                                */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBUV
static uv_loop_t luv_a, luv_b;
static uv_async_t luv_ha, luv_hb;
static int luv_got;

static void luv_cb_a(uv_async_t *h)
{
	(void)h;
	luv_got = 1;
}

static void luv_cb_b(uv_async_t *h)
{
	if (atomic_load(&stop))
		uv_close((uv_handle_t *)h, NULL); /* B's loop then ends */
	else if (uv_async_send(&luv_ha) < 0)
		die("uv_async_send", EINVAL);
}

static void *luv_thread_b(void *arg)
{
	(void)arg;
	uv_run(&luv_b, UV_RUN_DEFAULT);
	return NULL;
}

static void luv_loop(uv_loop_t *l, uv_async_t *h, uv_async_cb cb)
{
	int err = uv_loop_init(l);
	if (err < 0 || (err = uv_async_init(l, h, cb)) < 0)
		die("uv_loop_init/uv_async_init", err);
}

static void luv_close_a(void)
{
	uv_close((uv_handle_t *)&luv_ha, NULL);
	uv_run(&luv_a, UV_RUN_DEFAULT);
	if (uv_loop_close(&luv_a) < 0)
		die("uv_loop_close", EBUSY);
}

static void luv_wait_a(uv_run_mode mode)
{
	while (!luv_got)
		uv_run(&luv_a, mode);
	luv_got = 0;
}

static void luv_start(void)
{
	luv_loop(&luv_a, &luv_ha, luv_cb_a);
	luv_loop(&luv_b, &luv_hb, luv_cb_b);
	start_b(luv_thread_b);
}

static void luv_ping(void)
{
	if (uv_async_send(&luv_hb) < 0)
		die("uv_async_send", EINVAL);
	luv_wait_a(UV_RUN_ONCE);
}

static void luv_stop(void)
{
	atomic_store(&stop, 1);
	if (uv_async_send(&luv_hb) < 0)
		die("uv_async_send", EINVAL);
	join_b();
	if (uv_loop_close(&luv_b) < 0)
		die("uv_loop_close", EBUSY);
	luv_close_a();
}

static void luv_self_open(void) { luv_loop(&luv_a, &luv_ha, luv_cb_a); }
static void luv_self(void)
{
	if (uv_async_send(&luv_ha) < 0)
		die("uv_async_send", EINVAL);
	luv_wait_a(UV_RUN_NOWAIT);
}
#endif

/* ------------------------------------------------------------------ */
/* driver                                                               */
/* ------------------------------------------------------------------ */

/* open/op/close: for pingpong open starts thread B and close stops it */
struct ops {
	void (*open)(void), (*op)(void), (*close)(void);
};

struct impl {
	const char *name;
	const char *missing;
	struct ops pingpong, self;
	int selected;
	double *ns; /* per round, per op */
};

static struct impl impls[] = {
	{ "epoll", NULL, { raw_start, raw_ping, raw_stop },
	  { raw_self_open, raw_self, raw_self_close }, 1, 0 },
	{ "evq", NULL, { evq_start, evq_ping, evq_stop },
	  { evq_self_open, evq_self, evq_self_close }, 1, 0 },
#ifdef BENCH_LIBEVENT
	{ "libevent", NULL, { le_start, le_ping, le_stop },
	  { le_open_a, le_self, le_close_a }, 1, 0 },
#else
	{ "libevent", "install libevent-dev (with libevent_pthreads)",
	  { 0, 0, 0 }, { 0, 0, 0 }, 1, 0 },
#endif
#ifdef HAVE_LIBEV
	{ "libev", NULL, { lev_start, lev_ping, lev_stop },
	  { lev_self_open, lev_self, lev_self_close }, 1, 0 },
#else
	{ "libev", "install libev-dev", { 0, 0, 0 }, { 0, 0, 0 }, 1, 0 },
#endif
#ifdef HAVE_LIBUV
	{ "libuv", NULL, { luv_start, luv_ping, luv_stop },
	  { luv_self_open, luv_self, luv_close_a }, 1, 0 },
#else
	{ "libuv", "install libuv1-dev", { 0, 0, 0 }, { 0, 0, 0 }, 1, 0 },
#endif
};
#define NIMPL ((int)(sizeof impls / sizeof impls[0]))

struct mode {
	const char *name;
	int self;
	long m;
};

static int one_round(int cand, int r, void *ctx)
{
	const struct mode *md = ctx;
	struct impl *im = &impls[cand];
	const struct ops *o = md->self ? &im->self : &im->pingpong;
	int64_t t0, t1;

	if (im->missing || !im->selected)
		return 0;
	o->open();
	for (int i = 0; i < WARMUP; i++)
		o->op();
	t0 = now_ns();
	for (long i = 0; i < md->m; i++)
		o->op();
	t1 = now_ns();
	o->close();
	if (r >= 0)
		im->ns[r] = (double)(t1 - t0) / (double)md->m;
	if (r >= 0 && verbose)
		printf("# round=%d mode=%s impl=%s ns=%.0f\n", r, md->name,
		       im->name, im->ns[r]);
	return 0;
}

static void run_mode(const char *mode, int self, long m, int rounds)
{
	struct impl *base = &impls[0];

	for (int i = 0; i < NIMPL; i++)
		if (!impls[i].missing && impls[i].selected &&
		    !(impls[i].ns = calloc((size_t)rounds, sizeof(double))))
			die("calloc", ENOMEM);
	/* round -1 warms up and is not recorded */
	bench_rounds(rounds, NIMPL, 1, one_round, &(struct mode){ mode, self, m });
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];

		if (im->missing || !im->selected)
			continue;
		printf("bench=trigger mode=%s impl=%s m=%ld rounds=%d", mode, im->name,
		       m, rounds);
		bench_ns_figures(im->ns, base->selected ? base->ns : NULL, "epoll", 3, rounds);
		printf("\n");
		fflush(stdout);
	}
	for (int i = 0; i < NIMPL; i++) {
		free(impls[i].ns);
		impls[i].ns = NULL;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: trigger [-m round_trips] [-r rounds] "
		"[-i epoll,evq,libevent,libev,libuv] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long m = 10000;
	struct bench_opts o = { .rounds = 11 };
	int opt;

	while ((opt = getopt(argc, argv, "m:r:i:v")) != -1) {
		if (opt == 'm')
			m = bench_num(optarg, 1, LONG_MAX, usage);
		else if (!bench_opt(&o, opt, optarg))
			usage();
	}
	bench_opts_end(&o, argc, usage);
	verbose = o.verbose;
	for (int i = 0; i < NIMPL; i++)
		impls[i].selected = bench_listed(o.impls, impls[i].name);
#ifdef BENCH_LIBEVENT
	if (evthread_use_pthreads() < 0)
		die("evthread_use_pthreads", EINVAL);
#endif
	printf("# trigger: pingpong = round trip between two threads, each "
	       "asleep in its own loop; self = trigger + non-blocking wait in "
	       "one thread; ns per op, medians of %d interleaved rounds; "
	       "ratio = median of per-round impl/epoll\n", o.rounds);
	for (int i = 0; i < NIMPL; i++)
		if (impls[i].selected && impls[i].missing)
			bench_skipped("trigger", impls[i].name, impls[i].missing);
	fflush(stdout);
	run_mode("pingpong", 0, m, o.rounds);
	run_mode("self", 1, m * 10, o.rounds);
	return 0;
}
