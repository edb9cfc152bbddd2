/* SPDX-License-Identifier: MIT */
/*
 * peerswake.c - cross-thread wake round trip (make bench-peers): evq on
 * each backend against the raw floors and each peer's documented way of
 * waking its loop from another thread.
 *
 * Two threads, A and B, each with its own loop (or word).  A wakes B and
 * sleeps; B wakes, wakes A and sleeps again: one round trip = two wakeups
 * of a sleeping thread.  M round trips per round (after 200 untimed),
 * timed in A; loops and thread B are fresh every round.
 *
 *   futex      a word per side: store 1 + FUTEX_WAKE; FUTEX_WAIT while 0
 *              (the floor of a wakeup)
 *   epoll      an eventfd per side, edge-triggered in an epoll of its own,
 *              never read: eventfd write, epoll_wait(1)
 *   evq-epoll  evq_add_user on each side's queue, evq_trigger from the
 *   evq-uring  other thread, evq_wait (EVQ_BACKEND_EPOLL / _URING)
 *   libevent   event_active() from the other thread on an fd-less event
 *              (evthread_use_pthreads), event_base_loop ONCE
 *   libev      ev_async_send, ev_run EVRUN_ONCE (epoll backend)
 *   libuv      uv_async_send, uv_run UV_RUN_ONCE
 *   sd-event   an sd_event is for one thread only and has no async
 *              source: its documented way in is an fd, an eventfd here,
 *              written by the other thread and read in the
 *              sd_event_add_io handler; sd_event_run
 * Ratios: the median of per-round impl/futex and impl/epoll, with their
 * spread (min..max of the per-round ratios).
 *
 * Output: bench=peers fig=wake impl=evq-epoll m=10000 rounds=5
 *         ns_median=... ns_min=... ratio_vs_futex=... ...
 *
 * Usage: peerswake [-m 10000] [-r 5] [-i futex,epoll,evq-epoll,...] [-v]
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

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
#ifdef HAVE_SDEVENT
#include <systemd/sd-event.h>
#endif

#define WARMUP 200

#if defined(BENCH_LIBEVENT) || defined(HAVE_LIBEV) || defined(HAVE_LIBUV) || \
	defined(HAVE_SDEVENT)
static int woken[2]; /* the peers': set by side s's handler, read by its waiter */
#endif
static atomic_int stop;

static void die(const char *what, int err)
{
	fprintf(stderr, "peerswake: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ---- futex ---- */

static _Atomic uint32_t words[2];

static int fx_open(void) { words[0] = words[1] = 0; return 0; }
static void fx_close(void) { }

static void fx_kick(int s)
{
	atomic_store(&words[s], 1);
	syscall(SYS_futex, &words[s], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void fx_wait(int s)
{
	while (atomic_exchange(&words[s], 0) == 0)
		syscall(SYS_futex, &words[s], FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

/* ---- eventfd + epoll ---- */

static int efd[2], eps[2];

static int ep_open(void)
{
	for (int s = 0; s < 2; s++) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLET };
		efd[s] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		eps[s] = epoll_create1(EPOLL_CLOEXEC);
		if (efd[s] < 0 || eps[s] < 0 || epoll_ctl(eps[s], EPOLL_CTL_ADD, efd[s], &e) < 0)
			die("eventfd/epoll", errno);
	}
	return 0;
}

static void ep_kick(int s)
{
	uint64_t one = 1;
	if (write(efd[s], &one, sizeof one) != sizeof one)
		die("write", errno);
}

static void ep_wait(int s)
{
	struct epoll_event e;
	while (epoll_wait(eps[s], &e, 1, -1) != 1)
		;
}

static void ep_close(void)
{
	for (int s = 0; s < 2; s++) {
		close(efd[s]);
		close(eps[s]);
	}
}

/* ---- evq ---- */

static struct evq *qs[2];
static int64_t uid[2];

static int evq_open_on(int backend)
{
	struct evq_options opt = { .backend = backend };
	for (int s = 0; s < 2; s++) {
		int err = evq_new(&qs[s], &opt);
		if (err < 0)
			return err;
		if ((uid[s] = evq_add_user(qs[s], 0)) < 0)
			die("evq_add_user", (int)uid[s]);
	}
	return 0;
}

static int evq_open_epoll(void) { return evq_open_on(EVQ_BACKEND_EPOLL); }
static int evq_open_uring(void) { return evq_open_on(EVQ_BACKEND_URING); }

static void evq_kick(int s)
{
	int err = evq_trigger(qs[s], uid[s]);
	if (err < 0)
		die("evq_trigger", err);
}

static void evq_wait1(int s)
{
	struct evq_event ev;
	while (evq_wait(qs[s], &ev, 1, -1, NULL) != 1)
		;
}

static void evq_close(void)
{
	evq_free(qs[0]);
	evq_free(qs[1]);
}

/* ---- libevent ---- */

#ifdef BENCH_LIBEVENT
static struct event_base *lebs[2];
static struct event *les[2];

static void le_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

static int le_open(void)
{
	for (int s = 0; s < 2; s++) {
		if (!(lebs[s] = event_base_new()))
			return -ENOMEM;
		/* an event with no fd is fired only by event_active() */
		if (!(les[s] = event_new(lebs[s], -1, 0, le_cb, &woken[s])))
			return -ENOMEM;
	}
	return 0;
}

static void le_kick(int s) { event_active(les[s], EV_READ, 0); }

static void le_wait(int s)
{
	woken[s] = 0;
	while (!woken[s])
		if (event_base_loop(lebs[s], EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY) < 0)
			die("event_base_loop", EINVAL);
}

static void le_close(void)
{
	for (int s = 0; s < 2; s++) {
		event_free(les[s]);
		event_base_free(lebs[s]);
	}
}
#endif

/* ---- libev ---- */

#ifdef HAVE_LIBEV
static struct ev_loop *levs[2];
static ev_async lasync[2];

static void lev_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	woken[w - lasync] = 1;
}

static int lev_open(void)
{
	for (int s = 0; s < 2; s++) {
		if (!(levs[s] = ev_loop_new(EVBACKEND_EPOLL)))
			return -ENOMEM;
		ev_async_init(&lasync[s], lev_cb);
		ev_async_start(levs[s], &lasync[s]);
	}
	return 0;
}

static void lev_kick(int s) { ev_async_send(levs[s], &lasync[s]); }

static void lev_wait(int s)
{
	woken[s] = 0;
	while (!woken[s])
		ev_run(levs[s], EVRUN_ONCE);
}

static void lev_close(void)
{
	for (int s = 0; s < 2; s++) {
		ev_async_stop(levs[s], &lasync[s]);
		ev_loop_destroy(levs[s]);
	}
}
#endif

/* ---- libuv ---- */

#ifdef HAVE_LIBUV
static uv_loop_t luvs[2];
static uv_async_t uasync[2];

static void luv_cb(uv_async_t *h) { woken[h - uasync] = 1; }

static int luv_open(void)
{
	for (int s = 0; s < 2; s++) {
		int err = uv_loop_init(&luvs[s]);
		if (err < 0 || (err = uv_async_init(&luvs[s], &uasync[s], luv_cb)) < 0)
			return err;
	}
	return 0;
}

static void luv_kick(int s) { uv_async_send(&uasync[s]); }

static void luv_wait(int s)
{
	woken[s] = 0;
	while (!woken[s])
		uv_run(&luvs[s], UV_RUN_ONCE);
}

static void luv_close(void)
{
	for (int s = 0; s < 2; s++) {
		uv_close((uv_handle_t *)&uasync[s], NULL);
		uv_run(&luvs[s], UV_RUN_DEFAULT);
		uv_loop_close(&luvs[s]);
	}
}
#endif

/* ---- sd-event ---- */

#ifdef HAVE_SDEVENT
static sd_event *sdes[2];
static sd_event_source *sdsrc[2];
static int sdfd[2];

static int sde_cb(sd_event_source *src, int fd, uint32_t revents, void *arg)
{
	uint64_t v;
	(void)src;
	(void)revents;
	if (read(fd, &v, sizeof v) == sizeof v)
		*(int *)arg = 1;
	return 0;
}

static int sde_open(void)
{
	for (int s = 0; s < 2; s++) {
		int err = sd_event_new(&sdes[s]);
		if (err < 0)
			return err;
		if ((sdfd[s] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
			die("eventfd", errno);
		err = sd_event_add_io(sdes[s], &sdsrc[s], sdfd[s], EPOLLIN, sde_cb, &woken[s]);
		if (err < 0)
			die("sd_event_add_io", err);
	}
	return 0;
}

static void sde_kick(int s)
{
	uint64_t one = 1;
	if (write(sdfd[s], &one, sizeof one) != sizeof one)
		die("write", errno);
}

static void sde_wait(int s)
{
	woken[s] = 0;
	while (!woken[s])
		if (sd_event_run(sdes[s], UINT64_MAX) < 0)
			die("sd_event_run", EINVAL);
}

static void sde_close(void)
{
	for (int s = 0; s < 2; s++) {
		sd_event_source_disable_unref(sdsrc[s]);
		sd_event_unref(sdes[s]);
		close(sdfd[s]);
	}
}
#endif

/* ---- candidates and rounds ---- */

struct impl {
	const char *name, *missing;
	int (*open)(void);
	void (*kick)(int side), (*wait)(int side), (*close)(void);
	int selected;
	double *ns;
};

#define IMPL(n, p) { n, NULL, p##_open, p##_kick, p##_wait, p##_close, 0, 0 }
static struct impl impls[] = {
	{ "futex", NULL, fx_open, fx_kick, fx_wait, fx_close, 0, 0 },
	IMPL("epoll", ep),
	{ "evq-epoll", NULL, evq_open_epoll, evq_kick, evq_wait1, evq_close, 0, 0 },
	{ "evq-uring", NULL, evq_open_uring, evq_kick, evq_wait1, evq_close, 0, 0 },
#ifdef BENCH_LIBEVENT
	IMPL("libevent", le),
#else
	{ "libevent", "install libevent-dev (with libevent_pthreads)", 0, 0, 0, 0, 0, 0 },
#endif
#ifdef HAVE_LIBEV
	IMPL("libev", lev),
#else
	{ "libev", "install libev-dev", 0, 0, 0, 0, 0, 0 },
#endif
#ifdef HAVE_LIBUV
	IMPL("libuv", luv),
#else
	{ "libuv", "install libuv1-dev", 0, 0, 0, 0, 0, 0 },
#endif
#ifdef HAVE_SDEVENT
	IMPL("sd-event", sde),
#else
	{ "sd-event", "install libsystemd-dev", 0, 0, 0, 0, 0, 0 },
#endif
};
#define NIMPL ((int)(sizeof impls / sizeof impls[0]))

static const struct impl *cur;

/* thread B: wait for A's wake, wake A back, until told to stop */
static void *side_b(void *arg)
{
	(void)arg;
	for (;;) {
		cur->wait(1);
		if (atomic_load(&stop))
			return NULL;
		cur->kick(0);
	}
}

static int one_round(int cand, int slot, void *ctx)
{
	struct impl *im = &impls[cand];
	long m = *(long *)ctx;
	pthread_t tb;
	int64_t t0 = 0;

	if (!im->selected || im->missing)
		return 0;
	if (im->open() < 0)
		die("open", EINVAL);
	cur = im;
	atomic_store(&stop, 0);
	if (pthread_create(&tb, NULL, side_b, NULL))
		die("pthread_create", EAGAIN);
	for (long i = -WARMUP; i < m; i++) {
		if (i == 0)
			t0 = now_ns();
		im->kick(1);
		im->wait(0);
	}
	if (slot >= 0)
		im->ns[slot] = (double)(now_ns() - t0) / (double)m;
	atomic_store(&stop, 1);
	im->kick(1);
	pthread_join(tb, NULL);
	im->close();
	return 0;
}

static void print_vs(const struct impl *im, const struct impl *base, int rounds)
{
	double lo, hi;

	if (!base->selected || base->missing)
		return;
	bench_ratio_range(im->ns, base->ns, rounds, &lo, &hi);
	printf(" ratio_vs_%s=%.3f ratio_vs_%s_min=%.3f ratio_vs_%s_max=%.3f", base->name,
	       bench_ratio_median(im->ns, base->ns, rounds), base->name, lo, base->name, hi);
}

static void usage(void)
{
	fprintf(stderr, "usage: peerswake [-m 10000] [-r 5] "
		"[-i futex,epoll,evq-epoll,evq-uring,libevent,libev,libuv,sd-event] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .rounds = 5 };
	long m = 10000;
	int opt, rounds;

	while ((opt = getopt(argc, argv, "m:r:i:v")) != -1)
		if (opt == 'm')
			m = bench_num(optarg, 1, LONG_MAX, usage);
		else if (!bench_opt(&o, opt, optarg))
			usage();
	rounds = bench_opts_end(&o, argc, usage);
#ifdef BENCH_LIBEVENT
	if (evthread_use_pthreads() < 0)
		die("evthread_use_pthreads", EINVAL);
#endif
	bench_header("peerswake");
	printf("# wake: round trips between two threads, each sleeping in its own loop; "
	       "ns per round trip, medians of %d interleaved rounds; ratios = median "
	       "(min..max) of per-round impl/futex and impl/epoll\n", rounds);
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];
		im->selected = bench_listed(o.impls, im->name);
		if (!im->selected)
			continue;
		if (im->missing) {
			bench_skipped("peers", im->name, im->missing);
		} else if (im->open() < 0) {
			bench_skipped("peers", im->name, "its backend is refused here");
			im->missing = "unavailable";
		} else {
			im->close();
		}
		if (!(im->ns = calloc((size_t)rounds, sizeof *im->ns)))
			die("calloc", ENOMEM);
	}
	fflush(stdout);
	bench_rounds(rounds, NIMPL, 1, one_round, &m);
	for (int i = 0; i < NIMPL; i++) {
		const struct impl *im = &impls[i];
		if (!im->selected || im->missing)
			continue;
		printf("bench=peers fig=wake impl=%s m=%ld rounds=%d", im->name, m, rounds);
		bench_ns_figures(im->ns, NULL, NULL, 0, rounds);
		print_vs(im, &impls[0], rounds);
		print_vs(im, &impls[1], rounds);
		printf("\n");
		if (o.verbose)
			bench_print_rounds(im->name, im->ns, rounds);
	}
	return 0;
}
