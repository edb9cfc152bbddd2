/* SPDX-License-Identifier: MIT */
/*
 * peerstimers.c - a million timers (make bench-peers): evq on each backend
 * against libev, libuv, libevent and sd-event, ns per timer, in two
 * deadline patterns, and the user-space bytes per timer.
 *
 * Patterns (the same deadlines, in the same random order, for everyone):
 *   ties      libev's own: its adds read the loop's cached time, so a
 *             batch of adds in one loop turn has few distinct deadlines;
 *             here 10 distinct offsets from one time read before the batch
 *             (evq: EVQ_ABSTIME from that read; sd-event: absolute
 *             from it; libev and libuv: relative to their cached time;
 *             libevent has no cached time outside its loop: relative)
 *   distinct  every deadline different: offsets k * SPREAD / T for a
 *             random permutation k (ns apart for evq and libev; libevent
 *             and sd-event round to us, libuv to ms, so theirs tie in
 *             groups: their resolution)
 * Each round of each candidate, per pattern, on a fresh loop (untimed):
 *   add     T timers with deadlines in [0, 200 ms)                  timed
 *           sleep until the last deadline has passed              untimed
 *   fire    run the loop until all T callbacks ran; evq's handler   timed
 *           deletes the fired timer (a fired evq timer stays registered),
 *           sd-event's unrefs its one-shot source, the others stop
 *           by themselves
 *   add     T timers 10 s later, same pattern                    untimed
 *   cancel  all of them, in another random order                  timed
 * No raw floor (a kernel timer per timer would not fit the fd limit):
 * ratios against libev, the median of per-round impl/libev and its spread
 * (min..max of the per-round ratios).
 *
 * fig=timermem: in a child per candidate, the growth of malloc's bytes in
 * use (mallinfo2 uordblks + hblkhd) and of the resident set over T adds of
 * the distinct pattern, watcher structs included, divided by T.
 *
 * Usage: peerstimers [-t 1000000] [-r 5] [-p ties,distinct] [-M]
 *                    [-i evq-epoll,evq-uring,libevent,libev,libuv,sd-event]
 *   -M: memory only
 * sd-event is in the timer rounds only when -i names it (its fire runs
 * one sd_event_run per timer: minutes at T = 1M); its memory is measured.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

#ifdef HAVE_LIBEV
#include <ev.h>
#endif
#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_SDEVENT
#include <systemd/sd-event.h>
#endif

#define SPREAD_NS 200000000LL
#define FAR_NS 10000000000LL
#define TIES 10
#define BATCH 256

static long ntimers;
static int64_t *offs;      /* the pattern's offsets, ns, in add order */
static uint32_t *order;    /* cancel order */
static int64_t far;        /* 0 for the fire adds, FAR_NS for the cancel adds */
static long fired;

static void die(const char *what, int err)
{
	fprintf(stderr, "peerstimers: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	return bench_calloc("peerstimers", n, size);
}


static void shuffle(uint32_t *v, long n)
{
	for (long i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	for (long i = n - 1; i > 0; i--) {
		long j = (long)(bench_random() % (uint64_t)(i + 1));
		uint32_t t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

static void make_pattern(int ties)
{
	shuffle(order, ntimers);
	for (long i = 0; i < ntimers; i++)
		offs[i] = ties ? (int64_t)(order[i] % TIES + 1) * (SPREAD_NS / TIES)
			       : (int64_t)(order[i] + 1) * (SPREAD_NS / ntimers);
	shuffle(order, ntimers);
}

/* ---- evq ---- */

static struct evq *q;
static int64_t *evq_ids;

static int evq_open_on(int backend)
{
	struct evq_options opt = { .backend = backend };
	int err = evq_new(&q, &opt);
	if (err >= 0)
		evq_ids = xcalloc((size_t)ntimers, sizeof *evq_ids);
	return err;
}

static int evq_open_epoll(void) { return evq_open_on(EVQ_BACKEND_EPOLL); }
static int evq_open_uring(void) { return evq_open_on(EVQ_BACKEND_URING); }

static void evq_add(void)
{
	int64_t base = now_ns() + far;
	for (long i = 0; i < ntimers; i++) {
		evq_ids[i] = evq_add_timer(q, CLOCK_MONOTONIC, base + offs[i], 0,
					   EVQ_ABSTIME, (uint64_t)i);
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
		for (int k = 0; k < n; k++, fired++)
			evq_del(q, evs[k].id);
	}
}

static void evq_cancel(void)
{
	for (long i = 0; i < ntimers; i++)
		if (evq_del(q, evq_ids[order[i]]) < 0)
			die("evq_del", EINVAL);
}

static void evq_close(void)
{
	evq_free(q);
	free(evq_ids);
}

/* ---- libev ---- */

#ifdef HAVE_LIBEV
static struct ev_loop *lev;
static ev_timer *lev_t;

static void lev_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	fired++;
}

static int lev_open(void)
{
	if (!(lev = ev_loop_new(EVBACKEND_EPOLL)))
		return -ENOMEM;
	lev_t = xcalloc((size_t)ntimers, sizeof *lev_t);
	return 0;
}

static void lev_add(void)
{
	ev_now_update(lev);
	for (long i = 0; i < ntimers; i++) {
		ev_timer_init(&lev_t[i], lev_cb, (double)(offs[i] + far) * 1e-9, 0.);
		ev_timer_start(lev, &lev_t[i]);
	}
}

static void lev_fire(void)
{
	while (fired < ntimers)
		ev_run(lev, EVRUN_ONCE);
}

static void lev_cancel(void)
{
	for (long i = 0; i < ntimers; i++)
		ev_timer_stop(lev, &lev_t[order[i]]);
}

static void lev_close(void)
{
	ev_loop_destroy(lev);
	free(lev_t);
}
#endif

/* ---- libuv ---- */

#ifdef HAVE_LIBUV
static uv_loop_t luv;
static uv_timer_t *luv_t;
static int luv_inited;

static void luv_cb(uv_timer_t *t)
{
	(void)t;
	fired++;
}

static int luv_open(void)
{
	int err = uv_loop_init(&luv);
	if (err >= 0) {
		luv_t = xcalloc((size_t)ntimers, sizeof *luv_t);
		luv_inited = 0;
	}
	return err;
}

static void luv_add(void)
{
	uv_update_time(&luv);
	for (long i = 0; i < ntimers; i++) {
		if (!luv_inited)
			uv_timer_init(&luv, &luv_t[i]);
		uv_timer_start(&luv_t[i], luv_cb, (uint64_t)((offs[i] + far) / 1000000), 0);
	}
	luv_inited = 1;
}

static void luv_fire(void)
{
	while (fired < ntimers)
		uv_run(&luv, UV_RUN_ONCE);
}

static void luv_cancel(void)
{
	for (long i = 0; i < ntimers; i++)
		uv_timer_stop(&luv_t[order[i]]);
}

static void luv_close(void)
{
	for (long i = 0; luv_inited && i < ntimers; i++)
		uv_close((uv_handle_t *)&luv_t[i], NULL);
	uv_run(&luv, UV_RUN_DEFAULT);
	uv_loop_close(&luv);
	free(luv_t);
}
#endif

/* ---- libevent ---- */

#ifdef HAVE_LIBEVENT
static struct event_base *eb;
static unsigned char *le_mem;
static size_t le_size;

static struct event *le_ev(long i)
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

static int le_open(void)
{
	if (!(eb = event_base_new()))
		return -ENOMEM;
	le_size = event_get_struct_event_size();
	le_mem = xcalloc((size_t)ntimers, le_size);
	return 0;
}

static void le_add(void)
{
	for (long i = 0; i < ntimers; i++) {
		int64_t us = (offs[i] + far) / 1000;
		struct timeval tv = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 };
		evtimer_assign(le_ev(i), eb, le_cb, NULL);
		if (evtimer_add(le_ev(i), &tv) < 0)
			die("evtimer_add", EINVAL);
	}
}

static void le_fire(void)
{
	while (fired < ntimers)
		event_base_loop(eb, EVLOOP_ONCE);
}

static void le_cancel(void)
{
	for (long i = 0; i < ntimers; i++)
		evtimer_del(le_ev(order[i]));
}

static void le_close(void)
{
	event_base_free(eb);
	free(le_mem);
}
#endif

/* ---- sd-event ---- */

#ifdef HAVE_SDEVENT
static sd_event *sde;
static sd_event_source **sde_s;

static int sde_cb(sd_event_source *s, uint64_t usec, void *arg)
{
	(void)usec;
	(void)arg;
	sd_event_source_disable_unref(s);
	fired++;
	return 0;
}

static int sde_open(void)
{
	int err = sd_event_new(&sde);
	if (err >= 0)
		sde_s = xcalloc((size_t)ntimers, sizeof *sde_s);
	return err;
}

/* accuracy 1 us: the default (250 ms) would let it batch the wakeups */
static void sde_add(void)
{
	uint64_t base = (uint64_t)(now_ns() + far) / 1000;
	for (long i = 0; i < ntimers; i++) {
		int err = sd_event_add_time(sde, &sde_s[i], CLOCK_MONOTONIC,
					    base + (uint64_t)offs[i] / 1000, 1, sde_cb, NULL);
		if (err < 0)
			die("sd_event_add_time", err);
	}
}

static void sde_fire(void)
{
	while (fired < ntimers)
		if (sd_event_run(sde, UINT64_MAX) < 0)
			die("sd_event_run", EINVAL);
}

static void sde_cancel(void)
{
	for (long i = 0; i < ntimers; i++)
		sd_event_source_disable_unref(sde_s[order[i]]);
}

static void sde_close(void)
{
	sd_event_unref(sde);
	free(sde_s);
}
#endif

/* ---- candidates and rounds ---- */

struct impl {
	const char *name, *missing;
	int (*open)(void);
	void (*add)(void), (*fire)(void), (*cancel)(void), (*close)(void);
	int selected;
	double *ns[3]; /* per round: add, fire, cancel, ns per timer */
};

#define IMPL(n, p) { n, NULL, p##_open, p##_add, p##_fire, p##_cancel, p##_close, 0, { 0 } }
#define MISSING(n, why) { n, why, 0, 0, 0, 0, 0, 0, { 0 } }
static struct impl impls[] = {
#ifdef HAVE_LIBEV
	IMPL("libev", lev),
#else
	MISSING("libev", "install libev-dev"),
#endif
	{ "evq-epoll", NULL, evq_open_epoll, evq_add, evq_fire, evq_cancel, evq_close, 0, { 0 } },
	{ "evq-uring", NULL, evq_open_uring, evq_add, evq_fire, evq_cancel, evq_close, 0, { 0 } },
#ifdef HAVE_LIBEVENT
	IMPL("libevent", le),
#else
	MISSING("libevent", "install libevent-dev"),
#endif
#ifdef HAVE_LIBUV
	IMPL("libuv", luv),
#else
	MISSING("libuv", "install libuv1-dev"),
#endif
#ifdef HAVE_SDEVENT
	IMPL("sd-event", sde),
#else
	MISSING("sd-event", "install libsystemd-dev"),
#endif
};
#define NIMPL ((int)(sizeof impls / sizeof impls[0]))
static const char *const opname[3] = { "add", "fire", "cancel" };

static int usable(const struct impl *im) { return im->selected && !im->missing; }

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int one_round(int cand, int slot, void *ctx)
{
	struct impl *im = &impls[cand];
	int64_t t[6];

	(void)ctx;
	if (!usable(im))
		return 0;
	if (im->open() < 0)
		die("open", EINVAL);
	far = 0;
	fired = 0;
	t[0] = now_ns();
	im->add();
	t[1] = now_ns();
	/* the whole spread after the last add: libevent reads the clock per
	 * add, so its last deadline is up to SPREAD after t[1] */
	sleep_ns(SPREAD_NS + 2000000);
	t[2] = now_ns();
	im->fire();
	t[3] = now_ns();
	far = FAR_NS;
	im->add();
	t[4] = now_ns();
	im->cancel();
	t[5] = now_ns();
	im->close();
	for (int k = 0; slot >= 0 && k < 3; k++)
		im->ns[k][slot] = (double)(t[2 * k + 1] - t[2 * k]) / (double)ntimers;
	return 0;
}

static void run_pattern(const char *pattern, int rounds)
{
	const struct impl *base = &impls[0];

	make_pattern(strcmp(pattern, "ties") == 0);
	bench_rounds(rounds, NIMPL, 0, one_round, NULL);
	for (int i = 0; i < NIMPL; i++) {
		const struct impl *im = &impls[i];
		if (!usable(im))
			continue;
		printf("bench=peers fig=timers pattern=%s impl=%s t=%ld rounds=%d", pattern,
		       im->name, ntimers, rounds);
		for (int k = 0; k < 3; k++)
			printf(" %s_ns=%.1f", opname[k], bench_median(im->ns[k], rounds));
		for (int k = 0; usable(base) && k < 3; k++) {
			double lo, hi;
			bench_ratio_range(im->ns[k], base->ns[k], rounds, &lo, &hi);
			printf(" %s_ratio_vs_libev=%.3f %s_ratio_min=%.3f %s_ratio_max=%.3f",
			       opname[k], bench_ratio_median(im->ns[k], base->ns[k], rounds),
			       opname[k], lo, opname[k], hi);
		}
		printf("\n");
		fflush(stdout);
	}
}

static void timermem(struct impl *im)
{
	struct bench_mem m0, m1;
	double res[2];
	int p[2], st;
	pid_t pid;

	fflush(stdout);
	if (pipe(p) < 0)
		die("pipe", errno);
	if ((pid = fork()) < 0)
		die("fork", errno);
	if (pid == 0) {
		long n = ntimers;
		ntimers = 0; /* the loop's fixed cost, left out */
		if (im->open() < 0)
			_exit(3);
		im->close();
		ntimers = n;
		far = FAR_NS;
		bench_mem_now(&m0);
		if (im->open() < 0)
			_exit(3);
		im->add();
		bench_mem_now(&m1);
		res[0] = (m1.heap - m0.heap) / (double)n;
		res[1] = (m1.rss - m0.rss) / (double)n;
		_exit(write(p[1], res, sizeof res) == (ssize_t)sizeof res ? 0 : 4);
	}
	close(p[1]);
	if (read(p[0], res, sizeof res) == (ssize_t)sizeof res)
		printf("bench=peers fig=timermem impl=%s t=%ld heap_bytes_per_timer=%.1f "
		       "rss_bytes_per_timer=%.1f\n", im->name, ntimers, res[0], res[1]);
	else
		printf("bench=peers fig=timermem impl=%s skipped: child failed\n", im->name);
	close(p[0]);
	waitpid(pid, &st, 0);
}

static void usage(void)
{
	fprintf(stderr, "usage: peerstimers [-t 1000000] [-r 5] [-p ties,distinct] [-M]\n"
		"  [-i evq-epoll,evq-uring,libevent,libev,libuv,sd-event]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .rounds = 5 };
	const char *patterns = NULL;
	int opt, rounds, memonly = 0;

	ntimers = 1000000;
	while ((opt = getopt(argc, argv, "t:p:Mr:i:v")) != -1)
		if (opt == 't')
			ntimers = bench_num(optarg, 1, 100000000, usage);
		else if (opt == 'p')
			patterns = optarg;
		else if (opt == 'M')
			memonly = 1;
		else if (!bench_opt(&o, opt, optarg))
			usage();
	rounds = bench_opts_end(&o, argc, usage);
	offs = xcalloc((size_t)ntimers, sizeof *offs);
	order = xcalloc((size_t)ntimers, sizeof *order);
	bench_header("peerstimers");
	printf("# timers: ns per timer, add/fire/cancel, fresh loop per round, %d interleaved "
	       "rounds; ratios = median (min..max) of per-round impl/libev\n", rounds);
	make_pattern(0);
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];
		if (!(im->selected = bench_listed(o.impls, im->name)))
			continue;
		if (im->missing) {
			bench_skipped("peers", im->name, im->missing);
			continue;
		}
		if (im->open() < 0) {
			bench_skipped("peers", im->name, "its backend is refused here");
			im->missing = "unavailable";
			continue;
		}
		im->close();
		timermem(im); /* first, in a child: before the rounds free memory */
		if (!o.impls && strcmp(im->name, "sd-event") == 0) {
			/* one sd_event_run per timer, each an epoll_wait and a timerfd
			 * re-arm: ~50 us a timer, a minute per round of 1M */
			printf("# sd-event: not in the default timer rounds (its fire "
			       "costs ~50 us per timer); -i ...,sd-event adds it\n");
			im->selected = 0;
			continue;
		}
		for (int k = 0; k < 3; k++)
			im->ns[k] = xcalloc((size_t)rounds, sizeof(double));
	}
	fflush(stdout);
	for (int i = 0; !memonly && i < 2; i++)
		if (bench_listed(patterns, i ? "distinct" : "ties"))
			run_pattern(i ? "distinct" : "ties", rounds);
	return 0;
}
