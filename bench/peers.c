/* SPDX-License-Identifier: MIT */
/*
 * peers.c - evq on each backend against the raw epoll floor and the peer
 * libraries (libevent, libev, libuv, sd-event), fd figures, in one process
 * (make bench-peers runs it with peerswake and peerstimers; bench/peers.sh
 * turns their lines into bench/RESULTS-peers.md):
 *
 *   fig=pipes  the libevent/libev pipes benchmark, bench/pipes.c's workload
 *              (bench/pipering.h: N socketpairs, a read watcher on each, A
 *              tokens passed on to pair i+1 until W writes are made); a
 *              fresh loop per round, made untimed; setup = the N
 *              registrations, run = the loop, total = both (the ratio)
 *   fig=scale  100 active socketpairs among N registered fds (the rest are
 *              idle eventfds, so that N = 19,000 fits the 20,000-fd limit):
 *              the tokens go round the 100 active pairs only; run time per
 *              event, which should not grow with N (after an untimed pass
 *              that makes libev and libuv apply their deferred epoll_ctl)
 *   fig=fdmem  user-space bytes per fd registration (N idle eventfds), in a
 *              child process per candidate, first (before the other figures
 *              leave freed memory behind): the growth of malloc's bytes in
 *              use (mallinfo2 uordblks + hblkhd) and of the resident set
 *              over the N registrations (watcher structs included, the
 *              loop's fixed cost not), divided by N; the kernel's epoll
 *              items are not counted for anyone
 *
 * Candidates, interleaved (bench_rounds; round -1 a warm-up):
 *   epoll      epoll_ctl + epoll_wait(256), the floor
 *   evq-epoll  evq_add_fd + evq_wait(256), .backend = EVQ_BACKEND_EPOLL
 *   evq-uring  the same on EVQ_BACKEND_URING
 *   libevent   event_assign + event_add(EV_PERSIST), event_base_loop ONCE
 *   libev      ev_io_start, ev_run EVRUN_ONCE (epoll backend)
 *   libuv      uv_poll_init + uv_poll_start, uv_run UV_RUN_ONCE
 *   sd-event   sd_event_add_io(EPOLLIN), sd_event_run
 * Ratios: the median of per-round impl/epoll, and their spread as the
 * minimum and maximum of the per-round ratios (ratio_min, ratio_max).
 *
 * Usage: peers [-f pipes,scale,fdmem] [-n 100,1000,9000] [-a 1,100]
 *              [-s 100,1000,5000,10000,19000] [-m 19000] [-w 10000] [-r 5]
 *              [-i epoll,evq-epoll,evq-uring,libevent,libev,libuv,sd-event]
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"
#include "pipering.h"

/* libev's enum and libevent's macros both name EV_READ: libev first */
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
#ifdef HAVE_SDEVENT
#include <systemd/sd-event.h>
#endif

#define BATCH 256
#define MAX_LIST 16
#define SCALE_ACTIVE 100

static void die(const char *what, int err)
{
	fprintf(stderr, "peers: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* epoll, evq, libevent, libev, libuv: pipes.c's loops */
#include "pipeloops.h"

/* ---- sd-event ---- */

#ifdef HAVE_SDEVENT
static sd_event *sde;
static sd_event_source **sde_srcs;

static void sde_alloc(int n) { sde_srcs = pipering_calloc(n, sizeof *sde_srcs); }
static void sde_release(void) { free(sde_srcs); }

static int sde_cb(sd_event_source *s, int fd, uint32_t revents, void *arg)
{
	(void)s;
	(void)fd;
	(void)revents;
	pipering_readable((int)(intptr_t)arg);
	return 0;
}

static void sde_open(int n)
{
	int err = sd_event_new(&sde);

	(void)n;
	if (err < 0)
		die("sd_event_new", err);
}

static void sde_setup(int n)
{
	for (int i = 0; i < n; i++) {
		int err = sd_event_add_io(sde, &sde_srcs[i], pr.rfd[i], EPOLLIN, sde_cb,
					  (void *)(intptr_t)i);
		if (err < 0)
			die("sd_event_add_io", err);
	}
}

static void sde_run(long total)
{
	while (pr.handled < total) {
		int err = sd_event_run(sde, UINT64_MAX);
		if (err < 0)
			die("sd_event_run", err);
	}
}

static void sde_teardown(int n)
{
	for (int i = 0; i < n; i++)
		sd_event_source_disable_unref(sde_srcs[i]);
}

static void sde_close(int n)
{
	(void)n;
	sd_event_unref(sde);
}
#endif

/* ---- candidates ---- */

struct impl {
	const char *name;
	const char *missing; /* not built: the install line */
	int backend;         /* evq's */
	void (*alloc)(int n), (*open)(int n), (*setup)(int n), (*run)(long total),
	     (*teardown)(int n), (*close)(int n), (*release)(void);
	int selected;
	double *setup_ns, *run_ns; /* per round */
};

#define IMPL(name, pfx, backend) { name, NULL, backend, pfx##_alloc, pfx##_open, \
	pfx##_setup, pfx##_run, pfx##_teardown, pfx##_close, pfx##_release, 0, 0, 0 }
#define MISSING(name, why) { name, why, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
static struct impl impls[] = {
	IMPL("epoll", epoll, 0),
	IMPL("evq-epoll", evq, EVQ_BACKEND_EPOLL),
	IMPL("evq-uring", evq, EVQ_BACKEND_URING),
#ifdef HAVE_LIBEVENT
	IMPL("libevent", le, 0),
#else
	MISSING("libevent", "install libevent-dev"),
#endif
#ifdef HAVE_LIBEV
	IMPL("libev", lev, 0),
#else
	MISSING("libev", "install libev-dev"),
#endif
#ifdef HAVE_LIBUV
	IMPL("libuv", luv, 0),
#else
	MISSING("libuv", "install libuv1-dev"),
#endif
#ifdef HAVE_SDEVENT
	IMPL("sd-event", sde, 0),
#else
	MISSING("sd-event", "install libsystemd-dev"),
#endif
};
#define NIMPL ((int)(sizeof impls / sizeof impls[0]))

/* a fresh loop for n watchers, and back */
static void loop_open(const struct impl *im, int n)
{
	evq_backend = im->backend;
	im->alloc(n);
	im->open(n);
}

static void loop_close(const struct impl *im, int n)
{
	im->teardown(n);
	im->close(n);
	im->release();
}

static int usable(const struct impl *im)
{
	return im->selected && !im->missing;
}

/* ---- one round: open (untimed), n adds (setup), the run ---- */

struct config {
	int n, a;     /* watchers; tokens */
	long w;       /* writes */
	int rounds;
	int prime;    /* scale: an untimed pass first (below) */
};

static int one_round(int cand, int slot, void *ctx)
{
	const struct config *c = ctx;
	struct impl *im = &impls[cand];
	int64_t t0, t1, t2, t3;

	if (!usable(im))
		return 0;
	loop_open(im, c->n);
	t0 = now_ns();
	im->setup(c->n);
	t1 = now_ns();
	if (c->prime) {
		/* libev and libuv make their epoll_ctl calls in the next loop
		 * turn: an untimed pass of the a tokens, not passed on, lets
		 * scale time the events alone */
		pipering_start(c->a, 0);
		im->run(c->a);
	}
	pipering_start(c->a, c->w);
	t2 = now_ns();
	im->run(c->a + c->w);
	t3 = now_ns();
	loop_close(im, c->n);
	pipering_check("peers", im->name, c->a + c->w);
	if (slot >= 0) {
		im->setup_ns[slot] = (double)(t1 - t0);
		im->run_ns[slot] = (double)(t3 - t2);
	}
	return 0;
}

static void print_ratio(const char *label, const double *num, const double *den, int rounds)
{
	double lo, hi;

	bench_ratio_range(num, den, rounds, &lo, &hi);
	printf(" %s_ratio_vs_epoll=%.3f %s_ratio_min=%.3f %s_ratio_max=%.3f", label,
	       bench_ratio_median(num, den, rounds), label, lo, label, hi);
}

static void print_config(const char *fig, const struct config *c)
{
	const struct impl *base = &impls[0];
	double *tot = pipering_calloc(c->rounds, sizeof *tot);
	double *btot = pipering_calloc(c->rounds, sizeof *btot);
	long events = c->a + c->w;

	for (int r = 0; base->selected && r < c->rounds; r++)
		btot[r] = base->setup_ns[r] + base->run_ns[r];
	for (int i = 0; i < NIMPL; i++) {
		const struct impl *im = &impls[i];
		if (!usable(im))
			continue;
		for (int r = 0; r < c->rounds; r++)
			tot[r] = im->setup_ns[r] + im->run_ns[r];
		printf("bench=peers fig=%s impl=%s n=%d a=%d w=%ld rounds=%d "
		       "setup_us=%.1f run_us=%.1f total_us=%.1f run_ns_per_event=%.1f",
		       fig, im->name, c->n, c->a, c->w, c->rounds,
		       bench_median(im->setup_ns, c->rounds) / 1000,
		       bench_median(im->run_ns, c->rounds) / 1000,
		       bench_median(tot, c->rounds) / 1000,
		       bench_median(im->run_ns, c->rounds) / (double)events);
		if (base->selected) {
			if (strcmp(fig, "pipes") == 0)
				print_ratio("total", tot, btot, c->rounds);
			print_ratio("run", im->run_ns, base->run_ns, c->rounds);
		}
		printf("\n");
	}
	fflush(stdout);
	free(tot);
	free(btot);
}

static void run_config(const char *fig, struct config *c)
{
	for (int i = 0; i < NIMPL; i++) {
		impls[i].setup_ns = pipering_calloc(c->rounds, sizeof(double));
		impls[i].run_ns = pipering_calloc(c->rounds, sizeof(double));
	}
	bench_rounds(c->rounds, NIMPL, 1, one_round, c);
	print_config(fig, c);
	for (int i = 0; i < NIMPL; i++) {
		free(impls[i].setup_ns);
		free(impls[i].run_ns);
	}
}

static void fig_pipes(const int *ns, int nn, const int *as, int na, long w, int rounds)
{
	int maxn = 0;

	for (int i = 0; i < nn; i++)
		maxn = ns[i] > maxn ? ns[i] : maxn;
	pipering_make(maxn, maxn);
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < na; j++) {
			struct config c = { ns[i], as[j], w, rounds, 0 };
			if (as[j] > ns[i])
				continue;
			pr.ring = ns[i];
			run_config("pipes", &c);
		}
	pipering_free();
}

static void fig_scale(const int *ns, int nn, long w, int rounds)
{
	int maxn = SCALE_ACTIVE;

	for (int i = 0; i < nn; i++)
		maxn = ns[i] > maxn ? ns[i] : maxn;
	pipering_make(SCALE_ACTIVE, maxn);
	pr.ring = SCALE_ACTIVE;
	for (int i = 0; i < nn; i++) {
		struct config c = { ns[i], SCALE_ACTIVE, w, rounds, 1 };
		if (ns[i] >= SCALE_ACTIVE)
			run_config("scale", &c);
	}
	pipering_free();
}

/* In a child, so that what one candidate's allocator keeps does not count
 * for the next: the growth over n registrations, per registration. */
static void fdmem_child(struct impl *im, int n, int out)
{
	struct bench_mem m0, m1;
	double res[2];

	loop_open(im, 0);
	loop_close(im, 0);
	bench_mem_now(&m0);
	loop_open(im, n);
	im->setup(n);
	bench_mem_now(&m1);
	res[0] = (m1.heap - m0.heap) / n;
	res[1] = (m1.rss - m0.rss) / n;
	if (write(out, res, sizeof res) != (ssize_t)sizeof res)
		_exit(4);
	_exit(0);
}

static void fig_fdmem(int n)
{
	pipering_make(0, n);
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];
		double res[2];
		int p[2], st;
		pid_t pid;

		if (!usable(im))
			continue;
		fflush(stdout);
		if (pipe(p) < 0)
			die("pipe", errno);
		if ((pid = fork()) < 0)
			die("fork", errno);
		if (pid == 0) {
			close(p[0]);
			fdmem_child(im, n, p[1]);
		}
		close(p[1]);
		if (read(p[0], res, sizeof res) != (ssize_t)sizeof res) {
			printf("bench=peers fig=fdmem impl=%s skipped: child failed\n", im->name);
			res[0] = -1;
		}
		close(p[0]);
		waitpid(pid, &st, 0);
		if (res[0] >= 0)
			printf("bench=peers fig=fdmem impl=%s n=%d heap_bytes_per_fd=%.1f "
			       "rss_bytes_per_fd=%.1f\n", im->name, n, res[0], res[1]);
	}
	fflush(stdout);
	pipering_free();
}

static int evq_backend_works(int backend)
{
	struct evq_options opt = { .backend = backend };
	struct evq *e;

	if (evq_new(&e, &opt) < 0)
		return 0;
	evq_free(e);
	return 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: peers [-f pipes,scale,fdmem] [-n 100,1000,9000] [-a 1,100]\n"
		"  [-s 100,1000,5000,10000,19000] [-m 19000] [-w 10000] [-r 5]\n"
		"  [-i epoll,evq-epoll,evq-uring,libevent,libev,libuv,sd-event]\n");
	exit(2);
}

/* the loops' own fds and stdio besides the n watched */
static void check_fd_limit(int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if ((rlim_t)need + 64 > rl.rlim_cur) {
			fprintf(stderr, "peers: %d fds needed, the limit is %ld\n", need + 64,
				(long)rl.rlim_cur);
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	int ns[MAX_LIST] = { 100, 1000, 9000 }, nn = 3;
	int as[MAX_LIST] = { 1, 100 }, na = 2;
	int ss[MAX_LIST] = { 100, 1000, 5000, 10000, 19000 }, ns_ = 5;
	int memn = 19000, opt, rounds, need = 0;
	long w = 10000;
	const char *figs = NULL;
	struct bench_opts o = { .rounds = 5 };

	while ((opt = getopt(argc, argv, "f:n:a:s:m:w:r:i:v")) != -1) {
		if (opt == 'f')
			figs = optarg;
		else if (opt == 'n' && (nn = bench_intlist(optarg, ns, MAX_LIST)) <= 0)
			usage();
		else if (opt == 'a' && (na = bench_intlist(optarg, as, MAX_LIST)) <= 0)
			usage();
		else if (opt == 's' && (ns_ = bench_intlist(optarg, ss, MAX_LIST)) <= 0)
			usage();
		else if (opt == 'm')
			memn = (int)bench_num(optarg, 1, INT_MAX / 2, usage);
		else if (opt == 'w')
			w = bench_num(optarg, 0, LONG_MAX, usage);
		else if (!strchr("nas", opt) && !bench_opt(&o, opt, optarg))
			usage();
	}
	rounds = bench_opts_end(&o, argc, usage);
	persistent = 0; /* pipes' -P: peers makes a fresh loop every round */
	for (int i = 0; i < NIMPL; i++)
		impls[i].selected = bench_listed(o.impls, impls[i].name);
	for (int i = 0; i < nn; i++)
		need = 2 * ns[i] > need ? 2 * ns[i] : need;
	for (int i = 0; i < ns_; i++)
		need = ss[i] + SCALE_ACTIVE > need ? ss[i] + SCALE_ACTIVE : need;
	check_fd_limit(memn > need ? memn : need);

	bench_header("peers");
	printf("# peers: pipes and scale time a fresh loop per round (open untimed), "
	       "%d interleaved rounds after a warm-up; medians; ratios = median of "
	       "per-round impl/epoll, spread = min..max of those ratios\n", rounds);
	for (int i = 0; i < NIMPL; i++) {
		struct impl *im = &impls[i];
		if (!im->selected)
			continue;
		if (im->missing) {
			bench_skipped("peers", im->name, im->missing);
		} else if (im->backend && !evq_backend_works(im->backend)) {
			bench_skipped("peers", im->name, "its backend is refused here");
			im->missing = "unavailable";
		}
	}
	fflush(stdout);
	if (bench_listed(figs, "fdmem"))
		fig_fdmem(memn);
	if (bench_listed(figs, "pipes"))
		fig_pipes(ns, nn, as, na, w, rounds);
	if (bench_listed(figs, "scale"))
		fig_scale(ss, ns_, w, rounds);
	return 0;
}
