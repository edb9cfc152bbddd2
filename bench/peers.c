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
 *              event, which should not grow with N
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

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		die("calloc", ENOMEM);
	return p;
}

/* ---- raw epoll ---- */

static int ep = -1;

static int epoll_open(int n)
{
	(void)n;
	ep = epoll_create1(EPOLL_CLOEXEC);
	return ep < 0 ? -errno : 0;
}

static void epoll_add(int i)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, pr.rfd[i], &e) < 0)
		die("epoll_ctl", errno);
}

static void epoll_run(long total)
{
	struct epoll_event evs[BATCH];

	while (pr.handled < total) {
		int n = epoll_wait(ep, evs, BATCH, -1);
		if (n < 0 && errno != EINTR)
			die("epoll_wait", errno);
		for (int k = 0; k < n; k++)
			pipering_readable((int)evs[k].data.u32);
	}
}

static void epoll_close(int n)
{
	(void)n;
	close(ep);
}

/* ---- evq, one backend or the other ---- */

static struct evq *q;
static int64_t *evq_ids;

static int evq_open_on(int backend, int n)
{
	struct evq_options opt = { .backend = backend };
	int err = evq_new(&q, &opt);
	if (err < 0)
		return err;
	evq_ids = xcalloc((size_t)n, sizeof *evq_ids);
	return 0;
}

static int evq_open_epoll(int n) { return evq_open_on(EVQ_BACKEND_EPOLL, n); }
static int evq_open_uring(int n) { return evq_open_on(EVQ_BACKEND_URING, n); }

static void evq_add1(int i)
{
	evq_ids[i] = evq_add_fd(q, pr.rfd[i], EVQ_READ, 0, (uint64_t)i);
	if (evq_ids[i] < 0)
		die("evq_add_fd", (int)evq_ids[i]);
}

static void evq_run(long total)
{
	struct evq_event evs[BATCH];

	while (pr.handled < total) {
		int n = evq_wait(q, evs, BATCH, -1, NULL);
		if (n < 0 && n != -EINTR)
			die("evq_wait", n);
		for (int k = 0; k < n; k++)
			pipering_readable((int)evs[k].cookie);
	}
}

static void evq_close(int n)
{
	for (int i = 0; i < n; i++)
		evq_del(q, evq_ids[i]);
	evq_free(q);
	free(evq_ids);
}

/* ---- libevent ---- */

#ifdef HAVE_LIBEVENT
static struct event_base *eb;
static unsigned char *le_mem;
static size_t le_size;

static struct event *le_event(int i)
{
	return (struct event *)(void *)(le_mem + (size_t)i * le_size);
}

static void le_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pipering_readable((int)(intptr_t)arg);
}

static int le_open(int n)
{
	eb = event_base_new();
	if (!eb)
		return -ENOMEM;
	le_size = event_get_struct_event_size();
	le_mem = xcalloc((size_t)n, le_size);
	return 0;
}

static void le_add(int i)
{
	if (event_assign(le_event(i), eb, pr.rfd[i], EV_READ | EV_PERSIST, le_cb,
			 (void *)(intptr_t)i) < 0 || event_add(le_event(i), NULL) < 0)
		die("event_add", EINVAL);
}

static void le_run(long total)
{
	while (pr.handled < total)
		if (event_base_loop(eb, EVLOOP_ONCE) < 0)
			die("event_base_loop", EINVAL);
}

static void le_close(int n)
{
	for (int i = 0; i < n; i++)
		event_del(le_event(i));
	event_base_free(eb);
	free(le_mem);
}
#endif

/* ---- libev ---- */

#ifdef HAVE_LIBEV
static struct ev_loop *lev;
static ev_io *lev_ios;

static void lev_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	pipering_readable((int)(w - lev_ios));
}

static int lev_open(int n)
{
	lev = ev_loop_new(EVBACKEND_EPOLL);
	if (!lev)
		return -ENOMEM;
	lev_ios = xcalloc((size_t)n, sizeof *lev_ios);
	return 0;
}

static void lev_add(int i)
{
	ev_io_init(&lev_ios[i], lev_cb, pr.rfd[i], LEV_READ);
	ev_io_start(lev, &lev_ios[i]);
}

static void lev_run(long total)
{
	while (pr.handled < total)
		ev_run(lev, EVRUN_ONCE);
}

static void lev_close(int n)
{
	for (int i = 0; i < n; i++)
		ev_io_stop(lev, &lev_ios[i]);
	ev_loop_destroy(lev);
	free(lev_ios);
}
#endif

/* ---- libuv ---- */

#ifdef HAVE_LIBUV
static uv_loop_t luv;
static uv_poll_t *luv_polls;

static void luv_cb(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	pipering_readable((int)(h - luv_polls));
}

static int luv_open(int n)
{
	int err = uv_loop_init(&luv);
	if (err < 0)
		return err;
	luv_polls = xcalloc((size_t)n, sizeof *luv_polls);
	return 0;
}

/* uv_poll_init belongs to the registration: it probes the fd */
static void luv_add(int i)
{
	int err = uv_poll_init(&luv, &luv_polls[i], pr.rfd[i]);
	if (err >= 0)
		err = uv_poll_start(&luv_polls[i], UV_READABLE, luv_cb);
	if (err < 0)
		die("uv_poll_start", err);
}

static void luv_run(long total)
{
	while (pr.handled < total)
		uv_run(&luv, UV_RUN_ONCE);
}

static void luv_close(int n)
{
	for (int i = 0; i < n; i++)
		uv_close((uv_handle_t *)&luv_polls[i], NULL);
	uv_run(&luv, UV_RUN_DEFAULT);
	if (uv_loop_close(&luv) < 0)
		die("uv_loop_close", EBUSY);
	free(luv_polls);
}
#endif

/* ---- sd-event ---- */

#ifdef HAVE_SDEVENT
static sd_event *sde;
static sd_event_source **sde_srcs;

static int sde_cb(sd_event_source *s, int fd, uint32_t revents, void *arg)
{
	(void)s;
	(void)fd;
	(void)revents;
	pipering_readable((int)(intptr_t)arg);
	return 0;
}

static int sde_open(int n)
{
	int err = sd_event_new(&sde);
	if (err < 0)
		return err;
	sde_srcs = xcalloc((size_t)n, sizeof *sde_srcs);
	return 0;
}

static void sde_add(int i)
{
	int err = sd_event_add_io(sde, &sde_srcs[i], pr.rfd[i], EPOLLIN, sde_cb,
				  (void *)(intptr_t)i);
	if (err < 0)
		die("sd_event_add_io", err);
}

static void sde_run(long total)
{
	while (pr.handled < total) {
		int err = sd_event_run(sde, UINT64_MAX);
		if (err < 0)
			die("sd_event_run", err);
	}
}

static void sde_close(int n)
{
	for (int i = 0; i < n; i++)
		sd_event_source_disable_unref(sde_srcs[i]);
	sd_event_unref(sde);
	free(sde_srcs);
}
#endif

/* ---- candidates ---- */

struct impl {
	const char *name;
	const char *missing; /* not built: the install line */
	int (*open)(int n);  /* a fresh loop for n watchers; < 0: unavailable */
	void (*add)(int i), (*run)(long total), (*close)(int n);
	int selected;
	double *setup, *run_ns; /* per round */
};

#define IMPL(name, pfx) { name, NULL, pfx##_open, pfx##_add, pfx##_run, pfx##_close, 0, 0, 0 }
#define MISSING(name, why) { name, why, 0, 0, 0, 0, 0, 0, 0 }
static struct impl impls[] = {
	IMPL("epoll", epoll),
	{ "evq-epoll", NULL, evq_open_epoll, evq_add1, evq_run, evq_close, 0, 0, 0 },
	{ "evq-uring", NULL, evq_open_uring, evq_add1, evq_run, evq_close, 0, 0, 0 },
#ifdef HAVE_LIBEVENT
	IMPL("libevent", le),
#else
	MISSING("libevent", "install libevent-dev"),
#endif
#ifdef HAVE_LIBEV
	IMPL("libev", lev),
#else
	MISSING("libev", "install libev-dev"),
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

static int usable(const struct impl *im)
{
	return im->selected && !im->missing;
}

/* ---- one round: open (untimed), n adds (setup), the run ---- */

struct config {
	int n, a;     /* watchers; tokens */
	long w;       /* writes */
	int rounds;
};

static int one_round(int cand, int slot, void *ctx)
{
	const struct config *c = ctx;
	struct impl *im = &impls[cand];
	int64_t t0, t1, t2, t3;

	if (!usable(im))
		return 0;
	if (im->open(c->n) < 0)
		die("open", EINVAL);
	t0 = now_ns();
	for (int i = 0; i < c->n; i++)
		im->add(i);
	t1 = now_ns();
	pipering_start(c->a, c->w);
	t2 = now_ns();
	im->run(c->a + c->w);
	t3 = now_ns();
	im->close(c->n);
	pipering_check("peers", im->name, c->a + c->w);
	if (slot >= 0) {
		im->setup[slot] = (double)(t1 - t0);
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
	double *tot = xcalloc((size_t)c->rounds, sizeof *tot);
	double *btot = xcalloc((size_t)c->rounds, sizeof *btot);
	long events = c->a + c->w;

	for (int r = 0; base->selected && r < c->rounds; r++)
		btot[r] = base->setup[r] + base->run_ns[r];
	for (int i = 0; i < NIMPL; i++) {
		const struct impl *im = &impls[i];
		if (!usable(im))
			continue;
		for (int r = 0; r < c->rounds; r++)
			tot[r] = im->setup[r] + im->run_ns[r];
		printf("bench=peers fig=%s impl=%s n=%d a=%d w=%ld rounds=%d "
		       "setup_us=%.1f run_us=%.1f total_us=%.1f run_ns_per_event=%.1f",
		       fig, im->name, c->n, c->a, c->w, c->rounds,
		       bench_median(im->setup, c->rounds) / 1000,
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
		impls[i].setup = xcalloc((size_t)c->rounds, sizeof(double));
		impls[i].run_ns = xcalloc((size_t)c->rounds, sizeof(double));
	}
	bench_rounds(c->rounds, NIMPL, 1, one_round, c);
	print_config(fig, c);
	for (int i = 0; i < NIMPL; i++) {
		free(impls[i].setup);
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
			struct config c = { ns[i], as[j], w, rounds };
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
		struct config c = { ns[i], SCALE_ACTIVE, w, rounds };
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

	if (im->open(0) < 0)
		_exit(3);
	im->close(0);
	bench_mem_now(&m0);
	if (im->open(n) < 0)
		_exit(3);
	for (int i = 0; i < n; i++)
		im->add(i);
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
		} else if (im->open(0) < 0) {
			bench_skipped("peers", im->name, "its backend is refused here");
			im->missing = "unavailable";
		} else {
			im->close(0);
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
