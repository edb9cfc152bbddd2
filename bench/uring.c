/* SPDX-License-Identifier: MIT */
/*
 * uring.c - the io_uring backend against the epoll backend and the raw
 * system-call floor, interleaved in one run (this machine's wakeup latency
 * swings 2x between runs; only same-run ratios mean anything).
 *
 *   pipes    N socketpairs, A active tokens, W writes per round (libevent's
 *            "pipes" workload, as bench/pipes.c): ns per event of the run
 *            phase; impls raw-epoll (epoll_ctl/epoll_wait(256)), evq-epoll,
 *            evq-uring
 *   trigger  cross-thread round trip: A triggers a user event on B's queue
 *            and waits on its own; B answers the same way.  Floor: eventfd
 *            write + epoll_wait (raw-epoll).  ns per round trip
 *   latch    cross-thread latch round trip through a queue (evq_add_latch,
 *            owner resets, peer sets).  Floor: raw FUTEX_WAIT/FUTEX_WAKE
 *            ping-pong on two words (raw-futex).  ns per round trip.  A
 *            fourth row, raw-uring, is the same ping-pong with each side
 *            waiting through its own io_uring (IORING_OP_FUTEX_WAIT + one
 *            io_uring_enter, no library): what the kernel's io_uring path
 *            itself costs over the futex syscall.  evq-uring sleeps inline
 *            in futex_waitv (a queue without fds); evq-uring-ring is the
 *            same queue made with EVQ_URING_INLINE=0, waiting through the
 *            ring's FUTEX_WAIT.  raw-waitv is the raw ping-pong with each
 *            side in futex_waitv on its word and a second, idle word (what
 *            any waiter that can also be woken by a trigger pays).
 *
 * Every round runs each impl once, in an order that rotates per round;
 * medians over rounds, and ratio = median of per-round ratios against the
 * floor of the same round.
 *
 * Output: bench=uring test=pipes impl=evq-uring n=1000 a=100 w=10000
 *         rounds=15 ns_median=... ratio_vs_floor=...
 * Usage: uring [-r rounds] [-m roundtrips] [-t pipes,trigger,latch]
 */
#include <errno.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

#define MAXR 64
#define NIMPL 6 /* the pipes and trigger tests use the first 3 */

static void die(const char *what, int err)
{
	fprintf(stderr, "uring bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static struct evq *new_queue(int backend)
{
	struct evq *q;
	struct evq_options o = { .backend = backend };
	int rc = evq_new(&q, &o);
	if (rc < 0)
		die(backend == EVQ_BACKEND_URING ? "evq_new(URING)" : "evq_new(EPOLL)", rc);
	return q;
}

static const char *names[3][NIMPL] = {
	{ "raw-epoll", "evq-epoll", "evq-uring" },
	{ "raw-epoll", "evq-epoll", "evq-uring" },
	{ "raw-futex", "evq-epoll", "evq-uring", "raw-uring", "evq-uring-ring", "raw-waitv" },
};

static int nimpl(int test) { return test == 2 ? 6 : 3; }

/* the figures of the table being run, res[impl][round] in ns; impl 0 is
 * the floor */
static double res[NIMPL][MAXR];

static void report(int test, const char *what, int rounds)
{
	static const char *tests[] = { "pipes", "trigger", "latch" };
	for (int i = 0; i < nimpl(test); i++)
		printf("bench=uring test=%s impl=%s %s rounds=%d ns_median=%.0f "
		       "ratio_vs_floor=%.3f\n", tests[test], names[test][i], what, rounds,
		       bench_median(res[i], rounds), bench_ratio_median(res[i], res[0], rounds));
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* pipes                                                                */
/* ------------------------------------------------------------------ */

static int (*pairs)[2];
static int npairs;
static long writes_left, handled;

static void on_readable(int i)
{
	char c;
	if (read(pairs[i][0], &c, 1) != 1)
		return;
	handled++;
	if (writes_left > 0) {
		writes_left--;
		if (write(pairs[(i + 1) % npairs][1], "e", 1) != 1)
			die("write", errno);
	}
}

static void start_round(int a, long w)
{
	writes_left = w;
	handled = 0;
	for (int k = 0; k < a; k++)
		if (write(pairs[k * (npairs / a)][1], "e", 1) != 1)
			die("write", errno);
}

static double pipes_raw(int a, long w)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event evs[256];
	for (int i = 0; i < npairs; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, pairs[i][0], &e) < 0)
			die("epoll_ctl", errno);
	}
	int64_t t0 = now_ns();
	start_round(a, w);
	while (handled < a + w) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int k = 0; k < n; k++)
			on_readable((int)evs[k].data.u32);
	}
	int64_t dt = now_ns() - t0;
	close(ep);
	return (double)dt / (double)(a + w);
}

static double pipes_evq(int backend, int a, long w)
{
	struct evq *q = new_queue(backend);
	struct evq_event evs[256];
	for (int i = 0; i < npairs; i++)
		if (evq_add_fd(q, pairs[i][0], EVQ_READ, 0, (uint64_t)i) < 0)
			die("evq_add_fd", EINVAL);
	int64_t t0 = now_ns();
	start_round(a, w);
	while (handled < a + w) {
		int n = evq_wait(q, evs, 256, -1, NULL);
		for (int k = 0; k < n; k++)
			on_readable((int)evs[k].cookie);
	}
	int64_t dt = now_ns() - t0;
	evq_free(q);
	return (double)dt / (double)(a + w);
}

struct config {
	int a;
	long w;
};

static int pipes_round(int i, int r, void *ctx)
{
	const struct config *c = ctx;
	res[i][r] = i == 0 ? pipes_raw(c->a, c->w)
		    : pipes_evq(i == 1 ? EVQ_BACKEND_EPOLL : EVQ_BACKEND_URING, c->a, c->w);
	return 0;
}

static void bench_pipes(int rounds, int n, int a, long w)
{
	npairs = n;
	bench_rounds(rounds, nimpl(0), 0, pipes_round, &(struct config){ a, w });
	char what[64];
	snprintf(what, sizeof what, "n=%d a=%d w=%ld", n, a, w);
	report(0, what, rounds);
}

/* ------------------------------------------------------------------ */
/* trigger and latch round trips                                        */
/* ------------------------------------------------------------------ */

/* A bare io_uring for the raw-uring row: one FUTEX_WAIT at a time. */
struct bare_ring {
	int fd;
	unsigned *sq_tail, *cq_head, *cq_tail, sq_mask, cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq, *cq;
	size_t sq_len, cq_len, sqes_len;
};

static void bare_open(struct bare_ring *b)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	b->fd = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (b->fd < 0)
		die("io_uring_setup", errno);
	b->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	b->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	b->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	b->sq = mmap(NULL, b->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		     b->fd, IORING_OFF_SQ_RING);
	b->cq = mmap(NULL, b->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		     b->fd, IORING_OFF_CQ_RING);
	b->sqes = mmap(NULL, b->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       b->fd, IORING_OFF_SQES);
	if (b->sq == MAP_FAILED || b->cq == MAP_FAILED || b->sqes == MAP_FAILED)
		die("mmap ring", errno);
	char *sq = b->sq, *cq = b->cq;
	b->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	b->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	unsigned *array = (unsigned *)(sq + p.sq_off.array);
	for (unsigned i = 0; i < p.sq_entries; i++)
		array[i] = i;
	b->cq_head = (unsigned *)(cq + p.cq_off.head);
	b->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	b->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
	b->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

static void bare_close(struct bare_ring *b)
{
	munmap(b->sqes, b->sqes_len);
	munmap(b->cq, b->cq_len);
	munmap(b->sq, b->sq_len);
	close(b->fd);
}

/* Sleeps while *w == v: one FUTEX_WAIT submitted and waited for in one
 * io_uring_enter, the loop the raw-futex row runs. */
static void bare_futex_wait(struct bare_ring *b, _Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load(w) == v) {
		unsigned tail = *b->sq_tail;
		struct io_uring_sqe *e = &b->sqes[tail & b->sq_mask];
		memset(e, 0, sizeof *e);
		e->opcode = 51; /* IORING_OP_FUTEX_WAIT */
		e->addr = (uint64_t)(uintptr_t)w;
		e->addr2 = v;
		e->addr3 = 0xffffffffu;
		e->fd = 0x02 | 128; /* FUTEX2_SIZE_U32 | FUTEX2_PRIVATE */
		__atomic_store_n(b->sq_tail, tail + 1, __ATOMIC_RELEASE);
		syscall(SYS_io_uring_enter, b->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		unsigned head = *b->cq_head;
		while (head == __atomic_load_n(b->cq_tail, __ATOMIC_ACQUIRE))
			syscall(SYS_io_uring_enter, b->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		__atomic_store_n(b->cq_head, head + 1, __ATOMIC_RELEASE);
	}
}

struct pingpong {
	int impl, backend;
	struct bare_ring ring[2]; /* raw-uring */
	long m;
	/* raw-epoll */
	int efd[2], ep[2];
	/* raw-futex */
	_Atomic uint32_t word[2], idle[2];
	/* evq */
	struct evq *q[2];
	int64_t uid[2];           /* user event of q[i] */
	struct evq_latch latch[2];/* latch[i] is owned by side i */
	int latchmode;
};

static void raw_epoll_wait1(int ep)
{
	struct epoll_event e;
	while (epoll_wait(ep, &e, 1, -1) != 1)
		;
}

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load(w) == v)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

/* futex_waitv on w and an idle second word, as a sleeper that can also
 * be woken by a trigger must. */
static void waitv_wait(_Atomic uint32_t *w, _Atomic uint32_t *idle, uint32_t v)
{
	struct futex_waitv vec[2];
	memset(vec, 0, sizeof vec);
	vec[0].uaddr = (uint64_t)(uintptr_t)idle;
	vec[0].flags = 0x02 | 128; /* FUTEX2_SIZE_U32 | FUTEX2_PRIVATE */
	vec[1].uaddr = (uint64_t)(uintptr_t)w;
	vec[1].val = v;
	vec[1].flags = 0x02 | 128;
	while (atomic_load(w) == v) {
		vec[0].val = atomic_load(idle);
		syscall(449 /* futex_waitv */, vec, 2, 0, NULL, CLOCK_MONOTONIC);
	}
}

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Side `me` waits for its signal, then signals the other side. */
static void side_wait(struct pingpong *p, int me, uint32_t *seq)
{
	struct evq_event ev[4];
	switch (p->impl) {
	case 0:
		if (p->latchmode) {
			futex_wait(&p->word[me], *seq);
			(*seq)++;
		} else {
			raw_epoll_wait1(p->ep[me]);
		}
		break;
	case 3:
		bare_futex_wait(&p->ring[me], &p->word[me], *seq);
		(*seq)++;
		break;
	case 5:
		waitv_wait(&p->word[me], &p->idle[me], *seq);
		(*seq)++;
		break;
	default:
		while (evq_wait(p->q[me], ev, 4, -1, NULL) < 1)
			;
		if (p->latchmode)
			evq_latch_reset(&p->latch[me]);
		break;
	}
}

static void side_signal(struct pingpong *p, int to)
{
	uint64_t one = 1;
	switch (p->impl) {
	case 0:
	case 3:
	case 5:
		if (p->latchmode) {
			atomic_fetch_add(&p->word[to], 1);
			futex_wake(&p->word[to]);
		} else if (write(p->efd[to], &one, 8) != 8) {
			die("eventfd write", errno);
		}
		break;
	default:
		if (p->latchmode)
			evq_latch_set(&p->latch[to]);
		else
			evq_trigger(p->q[to], p->uid[to]);
		break;
	}
}

static void *side_b(void *arg)
{
	struct pingpong *p = arg;
	uint32_t seq = 0;
	for (long i = 0; i < p->m + 200; i++) {
		side_wait(p, 1, &seq);
		side_signal(p, 0);
	}
	return NULL;
}

static double roundtrip(int impl, int latchmode, long m)
{
	struct pingpong p;
	memset(&p, 0, sizeof p);
	p.impl = impl;
	p.m = m;
	p.latchmode = latchmode;
	if (impl == 0 && !latchmode) {
		for (int i = 0; i < 2; i++) {
			p.efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			p.ep[i] = epoll_create1(EPOLL_CLOEXEC);
			struct epoll_event e = { .events = EPOLLIN | EPOLLET };
			epoll_ctl(p.ep[i], EPOLL_CTL_ADD, p.efd[i], &e);
		}
	} else if (impl == 3) {
		for (int i = 0; i < 2; i++)
			bare_open(&p.ring[i]);
	} else if (impl > 0 && impl != 5) {
		if (impl == 4)
			setenv("EVQ_URING_INLINE", "0", 1); /* read by evq_new */
		for (int i = 0; i < 2; i++) {
			p.q[i] = new_queue(impl == 1 ? EVQ_BACKEND_EPOLL : EVQ_BACKEND_URING);
			if (latchmode) {
				evq_latch_init(&p.latch[i], 0);
				if (evq_add_latch(p.q[i], &p.latch[i], 0, 1) < 0)
					die("evq_add_latch", EINVAL);
			} else {
				p.uid[i] = evq_add_user(p.q[i], 1);
			}
		}
		unsetenv("EVQ_URING_INLINE");
	}
	pthread_t b;
	pthread_create(&b, NULL, side_b, &p);
	uint32_t seq = 0;
	int64_t t0 = 0;
	for (long i = 0; i < m + 200; i++) {
		if (i == 200)
			t0 = now_ns();
		side_signal(&p, 1);
		side_wait(&p, 0, &seq);
	}
	int64_t dt = now_ns() - t0;
	pthread_join(b, NULL);
	for (int i = 0; i < 2; i++) {
		if (impl == 0 && !latchmode) {
			close(p.efd[i]);
			close(p.ep[i]);
		} else if (impl == 3) {
			bare_close(&p.ring[i]);
		} else if (impl > 0 && impl != 5) {
			evq_free(p.q[i]);
		}
	}
	return (double)dt / (double)m;
}

struct trips {
	int latch; /* else trigger */
	long m;
};

static int roundtrip_round(int i, int r, void *ctx)
{
	const struct trips *t = ctx;
	res[i][r] = roundtrip(i, t->latch, t->m);
	return 0;
}

static void bench_roundtrip(int test, int rounds, long m)
{
	bench_rounds(rounds, nimpl(test), 0, roundtrip_round, &(struct trips){ test == 2, m });
	char what[32];
	snprintf(what, sizeof what, "m=%ld", m);
	report(test, what, rounds);
}

int main(int argc, char **argv)
{
	int rounds = 15;
	long m = 5000;
	const char *tests = "pipes,trigger,latch";
	int c;
	while ((c = getopt(argc, argv, "r:m:t:")) != -1) {
		if (c == 'r')
			rounds = atoi(optarg);
		else if (c == 'm')
			m = atol(optarg);
		else if (c == 't')
			tests = optarg;
		else {
			fprintf(stderr, "usage: uring [-r rounds] [-m roundtrips] "
				"[-t pipes,trigger,latch]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAXR || m < 1)
		die("bad arguments", EINVAL);
	struct evq *probe;
	struct evq_options o = { .backend = EVQ_BACKEND_URING };
	int rc = evq_new(&probe, &o);
	if (rc < 0) {
		printf("# io_uring backend unavailable (%d): skipped\n", rc);
		return 0;
	}
	evq_free(probe);
	if (strstr(tests, "pipes")) {
		pairs = calloc(1000, sizeof *pairs);
		for (int i = 0; i < 1000; i++)
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				       pairs[i]) < 0)
				die("socketpair", errno);
		bench_pipes(rounds, 1000, 100, 10000);
		bench_pipes(rounds, 1000, 1, 10000);
		bench_pipes(rounds, 100, 1, 10000);
	}
	if (strstr(tests, "trigger"))
		bench_roundtrip(1, rounds, m);
	if (strstr(tests, "latch"))
		bench_roundtrip(2, rounds, m);
	return 0;
}
