/* SPDX-License-Identifier: MIT */
/*
 * pipes.c - the classic "pipes" benchmark of libevent and libev, for evq,
 * a raw epoll loop and the three peer libraries, in one process and one run.
 *
 * The workload (written from the benchmark's published description):
 *
 *   N socketpairs; a persistent, level-triggered read registration on the
 *   reading end of each.  A round starts by writing one byte into A pairs
 *   spaced N/A apart (the "active" ones).  The read handler of pair i reads
 *   its byte and, while writes remain (W in total per round), writes one
 *   byte into pair (i + 1) mod N.  So A tokens travel round the ring in
 *   parallel until W writes have been made; the round ends when all A + W
 *   bytes have been read.
 *
 * Each round of each implementation is timed in two parts:
 *   setup  - registering the N read watchers (a fresh loop each round, made
 *            untimed just before; see "loops" below),
 *   run    - the event loop, from the first byte until all A + W are read.
 * Teardown (unregister + free the loop) is timed too and printed, not rated.
 *
 * Implementations, interleaved round-robin (the first one rotates each
 * round), many rounds, medians reported; ratios are the median of the
 * per-round ratios against the raw epoll loop of the same round, which is
 * what matters on a shared, noisy machine:
 *   epoll     epoll_ctl + epoll_wait(256) + read/write directly (the floor)
 *   evq       evq_add_fd + evq_wait(256)
 *   libevent  event_assign + event_add (EV_PERSIST), event_base_loop ONCE
 *   libev     ev_io_start, ev_run EVRUN_ONCE            (epoll backend)
 *   libuv     uv_poll_init + uv_poll_start, uv_run UV_RUN_ONCE
 * libev and libuv defer the epoll_ctl calls to the next loop iteration, so
 * their setup is cheap and their run pays for it: compare total = setup +
 * run across libraries.  evq and epoll both register eagerly.
 *
 * Loops: by default every round makes a fresh loop (untimed) and frees it
 * afterwards.  libev and libuv never EPOLL_CTL_DEL a stopped fd (they wait
 * for a spurious event), so loops kept across rounds would leave their
 * epoll sets watching the shared sockets and tax every other
 * implementation's writes; a fresh loop per round keeps the rounds
 * independent.  -P keeps one loop per implementation for a whole (N, A)
 * configuration instead (setup/teardown then only start/stop watchers).
 *
 * The socketpairs are made once, for the largest N, and reused by every
 * implementation (9,000 pairs = 18,000 fds; the hard limit here is 20,000).
 * The workload and its checks are bench/pipering.h, shared with peers.c.
 *
 * Output, one line per implementation and configuration:
 *   bench=pipes impl=evq n=1000 a=100 w=10000 rounds=41 setup_us_median=...
 *   run_us_median=... total_us_median=... teardown_us_median=...
 *   run_ns_per_event=... setup_ratio_vs_epoll=... run_ratio_vs_epoll=...
 *   total_ratio_vs_epoll=...
 *
 * Usage: pipes [-n 100,1000,9000] [-a 1,100] [-w 10000] [-r 41]
 *              [-i epoll,evq,libevent,libev,libuv] [-P]
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

/* libev's enum and libevent's macros both name EV_READ (with different
 * values): include libev first and keep its value under another name. */
#ifdef HAVE_LIBEV
#include <ev.h>
enum { LEV_READ = EV_READ };
#endif
#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define BATCH 256 /* events per wait for epoll and evq (evq's default) */
#define MAX_LIST 16

static void die(const char *what, int err)
{
	fprintf(stderr, "pipes: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* the loops: pipeloops.h (needs die and BATCH) */
#include "pipeloops.h"

/* ------------------------------------------------------------------ */
/* driver                                                               */
/* ------------------------------------------------------------------ */

struct impl {
	const char *name;
	const char *missing; /* non-NULL: not built, why */
	void (*open)(int n), (*setup)(int n), (*run)(long total),
	     (*teardown)(int n), (*close)(int n);
	int selected;
	int64_t *setup_ns, *run_ns, *down_ns; /* per round */
};

static struct impl impls[] = {
	{ "epoll", NULL, epoll_open, epoll_setup, epoll_run, epoll_teardown,
	  epoll_close, 1, 0, 0, 0 },
	{ "evq", NULL, evq_open, evq_setup, evq_run, evq_teardown, evq_close,
	  1, 0, 0, 0 },
#ifdef HAVE_LIBEVENT
	{ "libevent", NULL, le_open, le_setup, le_run, le_teardown, le_close,
	  1, 0, 0, 0 },
#else
	{ "libevent", "install libevent-dev", 0, 0, 0, 0, 0, 1, 0, 0, 0 },
#endif
#ifdef HAVE_LIBEV
	{ "libev", NULL, lev_open, lev_setup, lev_run, lev_teardown, lev_close,
	  1, 0, 0, 0 },
#else
	{ "libev", "install libev-dev", 0, 0, 0, 0, 0, 1, 0, 0, 0 },
#endif
#ifdef HAVE_LIBUV
	{ "libuv", NULL, luv_open, luv_setup, luv_run, luv_teardown, luv_close,
	  1, 0, 0, 0 },
#else
	{ "libuv", "install libuv1-dev", 0, 0, 0, 0, 0, 1, 0, 0, 0 },
#endif
};
#define NIMPL ((int)(sizeof impls / sizeof impls[0]))

/* median over rounds of (num[r] + num2[r]) / (den[r] + den2[r]); NULL
 * num2/den2 count as 0, a NULL den as 1 */
static double median_ratio(const int64_t *num, const int64_t *den,
			   const int64_t *num2, const int64_t *den2, int n)
{
	double *s = malloc(sizeof *s * (size_t)n), m;

	if (!s)
		die("malloc", ENOMEM);
	for (int r = 0; r < n; r++) {
		double a = (double)num[r] + (num2 ? (double)num2[r] : 0);
		double b = den ? (double)den[r] + (den2 ? (double)den2[r] : 0) : 1;
		s[r] = b > 0 ? a / b : 0;
	}
	m = median(s, n);
	free(s);
	return m;
}

struct config {
	int n, a;
	long w;
};

static int one_round(int cand, int slot, void *ctx)
{
	const struct config *c = ctx;
	struct impl *im = &impls[cand];
	int n = c->n, a = c->a;
	long w = c->w, total = a + w;
	int64_t t0, t1, t2, t3;

	if (im->missing || !im->selected)
		return 0;
	if (!persistent)
		im->open(n);
	t0 = now_ns();
	im->setup(n);
	t1 = now_ns();

	pr.ring = n;
	pipering_start(a, w);
	t2 = now_ns();
	im->run(total);
	t3 = now_ns();

	if (slot >= 0) {
		im->setup_ns[slot] = t1 - t0;
		im->run_ns[slot] = t3 - t2;
	}
	t0 = now_ns();
	im->teardown(n);
	if (!persistent)
		im->close(n);
	t1 = now_ns();
	if (slot >= 0)
		im->down_ns[slot] = t1 - t0;
	pipering_check("pipes", im->name, total);
	return 0;
}

static void run_config(int n, int a, long w, int rounds)
{
	struct impl *base = &impls[0];

	if (a > n) {
		printf("# n=%d a=%d skipped: a > n\n", n, a);
		return;
	}
	for (int i = 0; i < NIMPL; i++) {
		if (impls[i].missing || !impls[i].selected)
			continue;
		impls[i].setup_ns = calloc((size_t)rounds, sizeof(int64_t));
		impls[i].run_ns = calloc((size_t)rounds, sizeof(int64_t));
		impls[i].down_ns = calloc((size_t)rounds, sizeof(int64_t));
		if (!impls[i].setup_ns || !impls[i].run_ns || !impls[i].down_ns)
			die("calloc", ENOMEM);
		if (persistent)
			impls[i].open(n);
	}
	bench_rounds(rounds, NIMPL, 1, one_round, &(struct config){ n, a, w });
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];
		double su, ru, du;

		if (im->missing || !im->selected)
			continue;
		su = bench_median_i64(im->setup_ns, rounds) / 1000;
		ru = bench_median_i64(im->run_ns, rounds) / 1000;
		du = bench_median_i64(im->down_ns, rounds) / 1000;
		printf("bench=pipes impl=%s n=%d a=%d w=%ld rounds=%d%s "
		       "setup_us_median=%.1f run_us_median=%.1f "
		       "total_us_median=%.1f teardown_us_median=%.1f "
		       "run_ns_per_event=%.0f",
		       im->name, n, a, w, rounds, persistent ? " loops=persistent" : "",
		       su, ru,
		       median_ratio(im->setup_ns, NULL, im->run_ns, NULL, rounds) / 1000,
		       du, ru * 1000 / (double)(a + w));
		if (base->selected)
			printf(" setup_ratio_vs_epoll=%.3f run_ratio_vs_epoll=%.3f "
			       "total_ratio_vs_epoll=%.3f",
			       median_ratio(im->setup_ns, base->setup_ns, NULL, NULL, rounds),
			       median_ratio(im->run_ns, base->run_ns, NULL, NULL, rounds),
			       median_ratio(im->setup_ns, base->setup_ns, im->run_ns,
					    base->run_ns, rounds));
		printf("\n");
		fflush(stdout);
	}
	for (int i = 0; i < NIMPL; i++) {
		if (impls[i].missing || !impls[i].selected)
			continue;
		if (persistent)
			impls[i].close(n);
		free(impls[i].setup_ns);
		free(impls[i].run_ns);
		free(impls[i].down_ns);
	}
}

/* maxn socket pairs and every loop's per-pair records */
static void make_pairs(int maxn)
{
	evq_alloc(maxn);
#ifdef HAVE_LIBEVENT
	le_alloc(maxn);
#endif
#ifdef HAVE_LIBEV
	lev_alloc(maxn);
#endif
#ifdef HAVE_LIBUV
	luv_alloc(maxn);
#endif
	pipering_make(maxn, maxn);
}

static void usage(void)
{
	fprintf(stderr, "usage: pipes [-n 100,1000,9000] [-a 1,100] [-w 10000] "
		"[-r rounds] [-i epoll,evq,libevent,libev,libuv] [-P]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int ns[MAX_LIST] = { 100, 1000, 9000 }, nn = 3;
	int as[MAX_LIST] = { 1, 100 }, na = 2;
	long w = 10000;
	struct bench_opts o = { .rounds = 41 };
	int rounds, maxn = 0, opt;
	struct rlimit rl;

	while ((opt = getopt(argc, argv, "n:a:w:r:i:P")) != -1) {
		switch (opt) {
		case 'n':
			if ((nn = bench_intlist(optarg, ns, MAX_LIST)) <= 0)
				usage();
			break;
		case 'a':
			if ((na = bench_intlist(optarg, as, MAX_LIST)) <= 0)
				usage();
			break;
		case 'w':
			w = bench_num(optarg, 0, LONG_MAX, usage);
			break;
		case 'P':
			persistent = 1;
			break;
		default:
			if (!bench_opt(&o, opt, optarg))
				usage();
		}
	}
	rounds = bench_opts_end(&o, argc, usage);
	/* evq: the epoll backend, unless EVQ_BACKEND= asks for another (AUTO
	 * obeys the environment, an explicit choice would not) */
	evq_backend = getenv("EVQ_BACKEND") ? EVQ_BACKEND_AUTO : EVQ_BACKEND_EPOLL;
	for (int i = 0; i < NIMPL; i++)
		impls[i].selected = bench_listed(o.impls, impls[i].name);

	for (int i = 0; i < nn; i++)
		if (ns[i] > maxn)
			maxn = ns[i];
	/* the pairs, the loops' own fds, stdio: raise the soft limit to the hard
	 * one and check that the largest N fits */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if ((rlim_t)maxn * 2 + 64 > rl.rlim_cur) {
			fprintf(stderr, "pipes: n=%d needs %d fds, limit is %ld\n",
				maxn, maxn * 2 + 64, (long)rl.rlim_cur);
			return 1;
		}
	}

	make_pairs(maxn);
	printf("# pipes: one handler read per byte, each writes to pair (i+1)%%N "
	       "while writes remain; %s loops; medians of %d interleaved rounds; "
	       "ratios = median of per-round impl/epoll\n",
	       persistent ? "persistent" : "fresh per-round", rounds);
	for (int i = 0; i < NIMPL; i++)
		if (impls[i].selected && impls[i].missing)
			bench_skipped("pipes", impls[i].name, impls[i].missing);
	fflush(stdout);
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < na; j++)
			run_config(ns[i], as[j], w, rounds);
	return 0;
}
