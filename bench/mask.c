/* SPDX-License-Identifier: MIT */
/*
 * mask.c - event masks (gVisor syncevent in C) against the usual ways to
 * wake a thread: pthread_cond (signal and broadcast) and one eventfd per
 * source with epoll_wait over them.  Mirrors syncevent's Go benchmarks.
 *
 * case=redundant   notify a receiver that has the bit pending already
 *                  (ns per notify; one thread).  impls: receiver (direct),
 *                  bcast1 (a broadcaster with one such subscriber), eventfd
 *                  (write(2) to an eventfd nobody reads: the syscall floor
 *                  of the epoll way)
 * case=pingpong    two threads bounce a wakeup: A notifies B and waits, B
 *                  wakes, acks and notifies A (ns per round trip = two
 *                  cross-thread wakeups).  Each thread waits on 4 sources
 *                  and the sender picks source i % 4 ("waiting on 1 of 4").
 *                  impls: waiter (evq_waiter, 4 bits), waiter1 (1 bit),
 *                  queue (evq_wait on 4 evq_add_mask registrations, one
 *                  broadcaster each), epoll4 (4 eventfds in an epoll set,
 *                  epoll_wait + read), cond_signal, cond_broadcast (mutex,
 *                  flag word of 4 bits, condvar), futex (the floor: a word
 *                  of 4 bits, FUTEX_WAKE on every send, FUTEX_WAIT while
 *                  it is 0 -- two system calls per wakeup, as a waiter
 *                  that sleeps needs).  ratio_vs_epoll4 = median
 *                  of per-round ratios to epoll4 (< 1: faster); cpu_ns =
 *                  CPU time of both threads per round trip (user + system,
 *                  CLOCK_PROCESS_CPUTIME_ID), the "overhead" without the
 *                  idle time a wakeup spends in the scheduler.
 * case=broadcast   evq_bcast_notify to N subscribers (N = 0,1,8,64,1024)
 *                  whose callback acks at once, so every notify is new to
 *                  every subscriber (ns per notify, and per subscriber);
 *                  impl=pending: plain receivers with the bit pending.
 * case=subscribe   evq_bcast_subscribe + evq_bcast_unsubscribe (with N
 *                  other subscribers; ns per pair).
 *
 * Implementations are interleaved round-robin over R rounds; medians (and
 * minima) over rounds.  Output: one "key=value ..." line per result.
 *
 * Usage: mask [-m 20000] [-r 11]   (m: round trips per round; the one-
 *        thread cases run 100*m operations)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

#define MAXR 101
#define WARMUP 200

static long m_arg = 20000;
static int rounds = 11;

static void die(const char *what, int err)
{
	fprintf(stderr, "mask: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ---- redundant notify ------------------------------------------------ */

static double redundant_receiver(long n)
{
	struct evq_receiver r;
	evq_receiver_init(&r, NULL, NULL);
	evq_receiver_notify(&r, 0x1);
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		evq_receiver_notify(&r, 0x1);
	return (double)(now_ns() - t0) / (double)n;
}

static double redundant_bcast1(long n)
{
	struct evq_receiver r;
	struct evq_bcast b;
	evq_receiver_init(&r, NULL, NULL);
	evq_bcast_init(&b);
	if (evq_bcast_subscribe(&b, &r, 0x1) < 0)
		die("subscribe", ENOMEM);
	evq_bcast_notify(&b, 0x1);
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		evq_bcast_notify(&b, 0x1);
	double ns = (double)(now_ns() - t0) / (double)n;
	evq_bcast_destroy(&b);
	return ns;
}

static double redundant_eventfd(long n)
{
	int fd = eventfd(0, EFD_NONBLOCK);
	if (fd < 0)
		die("eventfd", errno);
	uint64_t one = 1;
	n /= 20; /* a system call each: fewer */
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (write(fd, &one, sizeof one) < 0)
			die("write", errno);
	double ns = (double)(now_ns() - t0) / (double)n;
	close(fd);
	return ns;
}

/* ---- ping-pong --------------------------------------------------------- */

enum { PP_WAITER, PP_WAITER1, PP_QUEUE, PP_EPOLL4, PP_COND_SIGNAL,
       PP_COND_BROADCAST, PP_FUTEX, PP_N };
static const char *pp_name[PP_N] = { "waiter", "waiter1", "queue", "epoll4",
				     "cond_signal", "cond_broadcast", "futex" };

/* One side of a ping-pong: whatever the impl needs to be woken. */
struct side {
	struct evq_waiter w;
	struct evq *q;
	struct evq_bcast b[4];
	int ep, efd[4];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned flags;
	_Atomic uint32_t word; /* futex: bits posted */
};

static struct side sides[2];
static int pp_impl;
static long pp_m;
static double pp_cpu; /* CPU ns (both threads) per round trip, last run */

static void side_init(struct side *s, int impl)
{
	switch (impl) {
	case PP_WAITER:
	case PP_WAITER1:
		evq_waiter_init(&s->w);
		break;
	case PP_FUTEX:
		atomic_store(&s->word, 0);
		break;
	case PP_QUEUE: {
		int rc = evq_new(&s->q, NULL);
		if (rc < 0)
			die("evq_new", rc);
		for (int i = 0; i < 4; i++) {
			evq_bcast_init(&s->b[i]);
			int64_t id = evq_add_mask(s->q, &s->b[i], 0x1, (uint64_t)i);
			if (id < 0)
				die("evq_add_mask", (int)id);
		}
		break;
	}
	case PP_EPOLL4:
		s->ep = epoll_create1(EPOLL_CLOEXEC);
		if (s->ep < 0)
			die("epoll_create1", errno);
		for (int i = 0; i < 4; i++) {
			s->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
			if (s->efd[i] < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd[i], &ev) < 0)
				die("eventfd/epoll_ctl", errno);
		}
		break;
	default:
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		s->flags = 0;
	}
}

static void side_fini(struct side *s, int impl)
{
	switch (impl) {
	case PP_QUEUE:
		evq_free(s->q);
		for (int i = 0; i < 4; i++)
			evq_bcast_destroy(&s->b[i]);
		break;
	case PP_EPOLL4:
		for (int i = 0; i < 4; i++)
			close(s->efd[i]);
		close(s->ep);
		break;
	case PP_COND_SIGNAL:
	case PP_COND_BROADCAST:
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		break;
	}
}

/* Wakes side s through source i (0..3). */
static void pp_send(struct side *s, int i)
{
	switch (pp_impl) {
	case PP_WAITER:
		evq_receiver_notify(&s->w.receiver, (evq_mask_t)1 << i);
		break;
	case PP_WAITER1:
		evq_receiver_notify(&s->w.receiver, 0x1);
		break;
	case PP_QUEUE:
		evq_bcast_notify(&s->b[i], 0x1);
		break;
	case PP_EPOLL4: {
		uint64_t one = 1;
		if (write(s->efd[i], &one, sizeof one) < 0)
			die("write", errno);
		break;
	}
	case PP_FUTEX:
		atomic_fetch_or(&s->word, 1u << i);
		syscall(SYS_futex, &s->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		break;
	default:
		pthread_mutex_lock(&s->mu);
		s->flags |= 1u << i;
		if (pp_impl == PP_COND_SIGNAL)
			pthread_cond_signal(&s->cv);
		else
			pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Waits until side s was woken through any of its 4 sources; consumes it. */
static void pp_wait(struct side *s)
{
	switch (pp_impl) {
	case PP_WAITER:
	case PP_WAITER1: {
		evq_mask_t got = evq_waiter_wait(&s->w, 0xf, -1);
		evq_receiver_ack(&s->w.receiver, got);
		break;
	}
	case PP_QUEUE: {
		struct evq_event ev[4];
		int n = evq_wait(s->q, ev, 4, -1, NULL);
		if (n < 1)
			die("evq_wait", n);
		break;
	}
	case PP_EPOLL4: {
		struct epoll_event ev[4];
		int n;
		while ((n = epoll_wait(s->ep, ev, 4, -1)) < 0 && errno == EINTR)
			;
		if (n < 1)
			die("epoll_wait", errno);
		for (int k = 0; k < n; k++) {
			uint64_t v;
			if (read(s->efd[ev[k].data.u32], &v, sizeof v) < 0)
				die("read", errno);
		}
		break;
	}
	case PP_FUTEX:
		while (atomic_exchange(&s->word, 0) == 0)
			syscall(SYS_futex, &s->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		break;
	default:
		pthread_mutex_lock(&s->mu);
		while (!s->flags)
			pthread_cond_wait(&s->cv, &s->mu);
		s->flags = 0;
		pthread_mutex_unlock(&s->mu);
	}
}

static void *pp_b(void *p)
{
	(void)p;
	for (long i = 0; i < WARMUP + pp_m; i++) {
		pp_wait(&sides[1]);
		pp_send(&sides[0], (int)(i & 3));
	}
	return NULL;
}

static double pingpong(int impl, long m)
{
	pp_impl = impl;
	pp_m = m;
	side_init(&sides[0], impl);
	side_init(&sides[1], impl);
	pthread_t t;
	int err = pthread_create(&t, NULL, pp_b, NULL);
	if (err)
		die("pthread_create", err);
	int64_t t0 = 0, c0 = 0;
	for (long i = 0; i < WARMUP + m; i++) {
		if (i == WARMUP) {
			t0 = now_ns();
			c0 = cpu_ns();
		}
		pp_send(&sides[1], (int)(i & 3));
		pp_wait(&sides[0]);
	}
	double ns = (double)(now_ns() - t0) / (double)m;
	pp_cpu = (double)(cpu_ns() - c0) / (double)m; /* B is about done too */
	pthread_join(t, NULL);
	side_fini(&sides[0], impl);
	side_fini(&sides[1], impl);
	return ns;
}

/* ---- broadcast and subscribe ----------------------------------------- */

static void ack_cb(struct evq_receiver *r, evq_mask_t bits, void *arg)
{
	(void)arg;
	evq_receiver_ack(r, bits);
}

static double broadcast(int n, int fresh, long ops)
{
	struct evq_bcast b;
	struct evq_receiver *r = calloc((size_t)(n ? n : 1), sizeof *r);
	if (!r)
		die("calloc", ENOMEM);
	evq_bcast_init(&b);
	for (int i = 0; i < n; i++) {
		evq_receiver_init(&r[i], fresh ? ack_cb : NULL, NULL);
		if (evq_bcast_subscribe(&b, &r[i], 0x1) < 0)
			die("subscribe", ENOMEM);
	}
	evq_bcast_notify(&b, 0x1);
	int64_t t0 = now_ns();
	for (long i = 0; i < ops; i++)
		evq_bcast_notify(&b, 0x1);
	double ns = (double)(now_ns() - t0) / (double)ops;
	evq_bcast_destroy(&b);
	free(r);
	return ns;
}

static double subscribe(int others, long ops)
{
	struct evq_bcast b;
	struct evq_receiver *r = calloc((size_t)others + 1, sizeof *r);
	if (!r)
		die("calloc", ENOMEM);
	evq_bcast_init(&b);
	for (int i = 0; i <= others; i++)
		evq_receiver_init(&r[i], NULL, NULL);
	for (int i = 0; i < others; i++)
		if (evq_bcast_subscribe(&b, &r[i], 0x1) < 0)
			die("subscribe", ENOMEM);
	int64_t t0 = now_ns();
	for (long i = 0; i < ops; i++) {
		int64_t id = evq_bcast_subscribe(&b, &r[others], 0x2);
		if (id < 0 || evq_bcast_unsubscribe(&b, id) < 0)
			die("subscribe/unsubscribe", (int)id);
	}
	double ns = (double)(now_ns() - t0) / (double)ops;
	evq_bcast_destroy(&b);
	free(r);
	return ns;
}

/* ---- main ---------------------------------------------------------------- */

static void print(const char *c, const char *impl, const char *extra, long m,
		  const double *v)
{
	printf("bench=mask case=%s impl=%s%s m=%ld rounds=%d ns_median=%.1f ns_min=%.1f\n",
	       c, impl, extra, m, rounds, bench_median(v, rounds), bench_min(v, rounds));
}

static double pp[PP_N][MAXR], cpu[PP_N][MAXR]; /* ping-pong: ns, CPU ns */

static int pp_round(int impl, int r, void *ctx)
{
	(void)ctx;
	pp[impl][r] = pingpong(impl, m_arg);
	cpu[impl][r] = pp_cpu;
	return 0;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "m:r:")) != -1) {
		if (opt == 'm')
			m_arg = atol(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else {
			fprintf(stderr, "usage: mask [-m round_trips] [-r rounds]\n");
			return 2;
		}
	}
	if (m_arg < 1 || rounds < 1 || rounds > MAXR) {
		fprintf(stderr, "mask: bad -m or -r\n");
		return 2;
	}
	long ops = 100 * m_arg;

	/* redundant notify */
	static double red[3][MAXR];
	for (int r = 0; r < rounds; r++) {
		red[0][r] = redundant_receiver(ops);
		red[1][r] = redundant_bcast1(ops);
		red[2][r] = redundant_eventfd(ops);
	}
	print("redundant", "receiver", "", ops, red[0]);
	print("redundant", "bcast1", "", ops, red[1]);
	print("redundant", "eventfd", "", ops / 20, red[2]);

	/* ping-pong: impls interleaved, the first one rotating */
	bench_rounds(rounds, PP_N, 0, pp_round, NULL);
	for (int k = 0; k < PP_N; k++)
		printf("bench=mask case=pingpong impl=%s m=%ld rounds=%d ns_median=%.1f "
		       "ns_min=%.1f ratio_vs_epoll4=%.3f cpu_ns_median=%.1f "
		       "cpu_ratio_vs_epoll4=%.3f\n",
		       pp_name[k], m_arg, rounds, bench_median(pp[k], rounds),
		       bench_min(pp[k], rounds), bench_ratio_median(pp[k], pp[PP_EPOLL4], rounds),
		       bench_median(cpu[k], rounds),
		       bench_ratio_median(cpu[k], cpu[PP_EPOLL4], rounds));

	/* broadcast */
	static const int ns_[] = { 0, 1, 8, 64, 1024 };
	for (int fresh = 1; fresh >= 0; fresh--)
		for (unsigned i = 0; i < sizeof ns_ / sizeof ns_[0]; i++) {
			int n = ns_[i];
			long o = ops / (n > 8 ? n / 8 : 1);
			static double v[MAXR];
			for (int r = 0; r < rounds; r++)
				v[r] = broadcast(n, fresh, o);
			double med = bench_median(v, rounds);
			printf("bench=mask case=broadcast impl=%s subscribers=%d m=%ld rounds=%d "
			       "ns_median=%.1f ns_min=%.1f ns_per_subscriber=%.2f\n",
			       fresh ? "callback_ack" : "pending", n, o, rounds, med,
			       bench_min(v, rounds), n ? med / n : 0.0);
		}

	/* subscribe + unsubscribe */
	static const int others[] = { 0, 64 };
	for (unsigned i = 0; i < 2; i++) {
		static double v[MAXR];
		for (int r = 0; r < rounds; r++)
			v[r] = subscribe(others[i], ops / 10);
		char extra[32];
		snprintf(extra, sizeof extra, " others=%d", others[i]);
		print("subscribe", "pair", extra, ops / 10, v);
	}
	return 0;
}
