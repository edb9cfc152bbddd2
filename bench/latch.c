/* SPDX-License-Identifier: MIT */
/*
 * latch.c - cross-process latch round trip: process A sets latch P and
 * waits for latch Q; process B waits for P, resets it, sets Q; A resets Q.
 * One round trip = two cross-process wakeups of a sleeping process.
 *
 * Implementations, interleaved round-robin over R rounds (the first one
 * rotates), M round trips per round, both processes fresh each round:
 *   futex       raw shared futex ping-pong (store, FUTEX_WAKE; FUTEX_WAIT
 *               while 0): the floor
 *   pipe        a pipe pair: write one byte, read one byte
 *   latch       evq_latch_set / evq_latch_wait / evq_latch_reset on both
 *               sides
 *   latch-queue both sides wait through their own queue (evq_add_latch,
 *               evq_wait): on epoll this is the futex watcher thread's path
 *               (watcher wakes, posts through the queue's eventfd)
 *   latch-nc, latch-queue-nc
 *               the same with cancellation disabled in both processes: no
 *               cancellation barrier (close(-1)) after a futex sleep
 *               (src/futex.h), so what a caller that never cancels pays
 *   hop         the floor of latch-queue on epoll: each side has a thread
 *               asleep in FUTEX_WAIT on its word that writes an eventfd
 *               (edge-triggered, never read) when woken; the main thread
 *               sleeps in epoll_wait on it.  A futex in another process
 *               waking an epoll sleeper cannot cost less than this chain
 * Output (medians; ratio = median of per-round ratios to futex):
 *   bench=latch impl=latch m=20000 rounds=11 ns_median=... ns_min=...
 *   ratio_vs_futex=...
 *
 * Usage: latch [-m 20000] [-r 11] [-i futex,pipe,latch,...] [-v]
 */
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "evq.h"
#include "wordsbench.h"

enum { FUTEX, PIPE, LATCH, LATCH_QUEUE, LATCH_NC, LATCH_QUEUE_NC, HOP, NIMPL };
static const char *names[NIMPL] = { "futex", "pipe", "latch", "latch-queue",
				    "latch-nc", "latch-queue-nc", "hop" };

struct shm {
	uint32_t fa, fb;              /* futex ping-pong words */
	uint32_t ha, hb;              /* hop: counters, one bump per trip */
	struct evq_latch p, q;
};

static long m_trips = 20000;

/* side 0 = A (starts), side 1 = B */
static int side_futex(struct shm *s, int side)
{
	uint32_t *mine = side ? &s->fb : &s->fa, *theirs = side ? &s->fa : &s->fb;
	for (long i = 0; i < m_trips; i++) {
		if (side == 0) {
			__atomic_store_n(theirs, 1, __ATOMIC_SEQ_CST);
			wb_futex_wake(theirs, 1, 1);
		}
		while (__atomic_load_n(mine, __ATOMIC_SEQ_CST) == 0)
			wb_futex_wait(mine, 0, 1);
		__atomic_store_n(mine, 0, __ATOMIC_SEQ_CST);
		if (side == 1) {
			__atomic_store_n(theirs, 1, __ATOMIC_SEQ_CST);
			wb_futex_wake(theirs, 1, 1);
		}
	}
	return 0;
}

static int side_pipe(int rfd, int wfd, int side)
{
	char c = 'x';
	for (long i = 0; i < m_trips; i++) {
		if (side == 0 && write(wfd, &c, 1) != 1)
			return 1;
		if (read(rfd, &c, 1) != 1)
			return 2;
		if (side == 1 && write(wfd, &c, 1) != 1)
			return 3;
	}
	return 0;
}

/* hop: a thread that turns each bump of *word into an eventfd write. */
struct hop {
	uint32_t *word;
	int efd;
};

static void *hop_watch(void *arg)
{
	struct hop *h = arg;
	uint64_t one = 1;
	uint32_t seen = 0;
	for (long i = 0; i < m_trips; i++) {
		uint32_t v;
		while ((v = __atomic_load_n(h->word, __ATOMIC_SEQ_CST)) == seen)
			wb_futex_wait(h->word, seen, 1);
		seen = v;
		if (write(h->efd, &one, sizeof one) != sizeof one)
			break;
	}
	return NULL;
}

static int side_hop(struct shm *s, int side)
{
	uint32_t *mine = side ? &s->hb : &s->ha, *theirs = side ? &s->ha : &s->hb;
	struct hop h = { mine, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	pthread_t t;
	if (h.efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, h.efd, &ev) != 0 ||
	    pthread_create(&t, NULL, hop_watch, &h) != 0)
		return 30;
	for (long i = 0; i < m_trips; i++) {
		if (side == 0) {
			__atomic_add_fetch(theirs, 1, __ATOMIC_SEQ_CST);
			wb_futex_wake(theirs, 1, 1);
		}
		while (epoll_wait(ep, &ev, 1, -1) != 1)
			;
		if (side == 1) {
			__atomic_add_fetch(theirs, 1, __ATOMIC_SEQ_CST);
			wb_futex_wake(theirs, 1, 1);
		}
	}
	pthread_join(t, NULL);
	close(ep);
	close(h.efd);
	return 0;
}

static int side_latch(struct shm *s, int side, int queue)
{
	struct evq_latch *mine = side ? &s->p : &s->q, *theirs = side ? &s->q : &s->p;
	struct evq *q = NULL;
	struct evq_event ev[4];
	if (queue && (evq_new(&q, NULL) != 0 || evq_add_latch(q, mine, 0, 1) < 0))
		return 10;
	for (long i = 0; i < m_trips; i++) {
		if (side == 0)
			evq_latch_set(theirs);
		if (queue) {
			if (evq_wait(q, ev, 4, -1, NULL) != 1)
				return 11;
		} else if (evq_latch_wait(mine, -1) != 0) {
			return 12;
		}
		evq_latch_reset(mine);
		if (side == 1)
			evq_latch_set(theirs);
	}
	evq_free(q);
	return 0;
}

static double run(int impl, struct shm *s)
{
	int ab[2], ba[2];
	memset(s, 0, sizeof *s);
	evq_latch_init(&s->p, EVQ_SHARED);
	evq_latch_init(&s->q, EVQ_SHARED);
	if (pipe(ab) != 0 || pipe(ba) != 0)
		return -1;
	/* Both sides are children: neither pays for the other's fork. */
	int go[2];
	if (pipe(go) != 0)
		return -1;
	pid_t pid[2];
	for (int side = 0; side < 2; side++) {
		pid[side] = fork();
		if (pid[side] == 0) {
			char c;
			if (read(go[0], &c, 1) != 1)
				_exit(20);
			int rc;
			int old;
			if (impl == LATCH_NC || impl == LATCH_QUEUE_NC)
				pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
			switch (impl) {
			case FUTEX: rc = side_futex(s, side); break;
			case PIPE: rc = side_pipe(side ? ab[0] : ba[0], side ? ba[1] : ab[1], side); break;
			case HOP: rc = side_hop(s, side); break;
			default:
				rc = side_latch(s, side, impl == LATCH_QUEUE ||
						       impl == LATCH_QUEUE_NC);
				break;
			}
			_exit(rc);
		}
	}
	/* B first gets ready; then time from the go signal to A's exit. */
	usleep(20000);
	int64_t t0 = now_ns();
	if (write(go[1], "gg", 2) != 2)
		return -1;
	int st, bad = 0;
	waitpid(pid[0], &st, 0);
	int64_t t1 = now_ns();
	bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	waitpid(pid[1], &st, 0);
	bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	close(ab[0]); close(ab[1]); close(ba[0]); close(ba[1]);
	close(go[0]); close(go[1]);
	return bad ? -1 : (double)(t1 - t0) / (double)m_trips;
}

static const char *impls; /* -i */
static double ns[NIMPL][256];

static int one_round(int impl, int r, void *s)
{
	if (!bench_listed(impls, names[impl]))
		return 0;
	ns[impl][r] = run(impl, s);
	if (ns[impl][r] < 0) {
		printf("# impl=%s round %d FAILED\n", names[impl], r);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = 11, verbose = 0, opt;
	while ((opt = getopt(argc, argv, "m:r:i:v")) != -1) {
		switch (opt) {
		case 'm': m_trips = atol(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'i': impls = optarg; break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: latch [-m trips] [-r rounds] "
					"[-i futex,pipe,latch,latch-queue,latch-nc,"
					"latch-queue-nc,hop] [-v]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 256 || m_trips < 1)
		return 2;
	struct shm *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return 1;
	bench_header("latch round trip between two processes");
	if (bench_rounds(rounds, NIMPL, 0, one_round, s))
		return 1;
	for (int impl = 0; impl < NIMPL; impl++) {
		if (!bench_listed(impls, names[impl]))
			continue;
		printf("bench=latch impl=%s m=%ld rounds=%d", names[impl], m_trips, rounds);
		bench_ns_figures(ns[impl], bench_listed(impls, "futex") ? ns[FUTEX] : NULL,
				 "futex", 2, rounds);
		printf("\n");
		if (verbose)
			bench_print_rounds("rounds", ns[impl], rounds);
	}
	return 0;
}
