/* SPDX-License-Identifier: MIT */
/*
 * waitv.c - waiting for one of N words, woken by another thread: evq_waitv
 * against the raw futex_waitv system call, and a word wait through a queue
 * (evq_add_word + evq_wait; on epoll the futex watcher thread's path)
 * against a raw futex wait.
 *
 * Round trip: thread B changes word k % N and wakes it, then sleeps on an
 * ack word; thread A, sleeping on the N words, wakes, learns which word
 * changed, and wakes B through the ack word (a raw futex in every
 * implementation).  One round trip = two cross-thread wakeups.
 *
 * Implementations (interleaved round-robin over R rounds, M round trips
 * each, threads fresh per round):
 *   futex        A waits with FUTEX_WAIT on word 0 (N = 1 only): the floor
 *   futex_waitv  A calls the futex_waitv system call over the N words
 *   evq_waitv    A calls evq_waitv over the N words
 *   queue        A waits in evq_wait on a queue holding N evq_add_word
 *                registrations
 * Output (medians; ratio = median of per-round ratios to futex_waitv with
 * the same N):
 *   bench=waitv n=128 impl=evq_waitv m=20000 rounds=11 ns_median=...
 *   ns_min=... ratio_vs_futex_waitv=...
 *
 * Usage: waitv [-n 1,128] [-m 20000] [-r 11] [-i futex,futex_waitv,evq_waitv,queue]
 */
#include <pthread.h>

#include "evq.h"
#include "wordsbench.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

struct raw_waitv { /* struct futex_waitv of the kernel ABI */
	uint64_t val, uaddr;
	uint32_t flags, reserved;
};

enum { FUTEX, FUTEX_WAITV, EVQ_WAITV, QUEUE, NIMPL };
static const char *names[NIMPL] = { "futex", "futex_waitv", "evq_waitv", "queue" };

static uint32_t words[128], ack;
static long m_trips = 20000;
static int nwords, impl_now;

static void *side_b(void *arg)
{
	(void)arg;
	for (long i = 0; i < m_trips; i++) {
		uint32_t *w = &words[i % nwords];
		__atomic_fetch_add(w, 1, __ATOMIC_SEQ_CST);
		wb_futex_wake(w, 1, 0);
		while (__atomic_load_n(&ack, __ATOMIC_SEQ_CST) == 0)
			wb_futex_wait(&ack, 0, 0);
		__atomic_store_n(&ack, 0, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void ack_b(void)
{
	__atomic_store_n(&ack, 1, __ATOMIC_SEQ_CST);
	wb_futex_wake(&ack, 1, 0);
}

static double run(int impl)
{
	struct raw_waitv rv[128];
	struct evq_waitv ev[128];
	struct evq *q = NULL;
	struct evq_event out[8];
	memset(words, 0, sizeof words);
	ack = 0;
	impl_now = impl;
	for (int i = 0; i < nwords; i++) {
		rv[i] = (struct raw_waitv){ 0, (uintptr_t)&words[i], 2 | 128, 0 };
		ev[i] = (struct evq_waitv){ &words[i], 0, 0 };
	}
	if (impl == QUEUE) {
		if (evq_new(&q, NULL) != 0)
			return -1;
		for (int i = 0; i < nwords; i++)
			if (evq_add_word(q, &words[i], 0, 0, (uint64_t)i) < 0)
				return -1;
	}
	pthread_t t;
	int64_t t0 = now_ns();
	if (pthread_create(&t, NULL, side_b, NULL) != 0)
		return -1;
	for (long i = 0; i < m_trips; i++) {
		int k = (int)(i % nwords);
		switch (impl) {
		case FUTEX:
			while (__atomic_load_n(&words[0], __ATOMIC_SEQ_CST) == rv[0].val)
				wb_futex_wait(&words[0], (uint32_t)rv[0].val, 0);
			rv[0].val++;
			break;
		case FUTEX_WAITV:
			while (__atomic_load_n(&words[k], __ATOMIC_SEQ_CST) == rv[k].val)
				syscall(SYS_futex_waitv, rv, nwords, 0, NULL, CLOCK_MONOTONIC);
			rv[k].val++;
			break;
		case EVQ_WAITV:
			while (__atomic_load_n(&words[k], __ATOMIC_SEQ_CST) == ev[k].expected)
				if (evq_waitv(ev, nwords, -1, 0) < 0)
					return -1;
			ev[k].expected++;
			break;
		case QUEUE:
			if (evq_wait(q, out, 8, -1, NULL) < 1)
				return -1;
			break;
		}
		ack_b();
	}
	pthread_join(t, NULL);
	int64_t t1 = now_ns();
	evq_free(q);
	return (double)(t1 - t0) / (double)m_trips;
}

static const char *impls; /* -i */
static double ns[NIMPL][256];

/* futex waits on one word only */
static int runs(int impl)
{
	return bench_listed(impls, names[impl]) && (impl != FUTEX || nwords == 1);
}

static int one_round(int impl, int r, void *ctx)
{
	(void)ctx;
	if (!runs(impl))
		return 0;
	if ((ns[impl][r] = run(impl)) < 0) {
		printf("# n=%d impl=%s round %d FAILED\n", nwords, names[impl], r);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *nlist = "1,128";
	int rounds = 11, opt;
	while ((opt = getopt(argc, argv, "n:m:r:i:")) != -1) {
		switch (opt) {
		case 'n': nlist = optarg; break;
		case 'm': m_trips = atol(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'i': impls = optarg; break;
		default:
			fprintf(stderr, "usage: waitv [-n 1,128] [-m trips] [-r rounds] "
					"[-i futex,futex_waitv,evq_waitv,queue]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 256 || m_trips < 1)
		return 2;
	bench_header("waitv / word wait round trip between two threads");
	char *nl = strdup(nlist);
	for (char *tok = strtok(nl, ","); tok; tok = strtok(NULL, ",")) {
		nwords = atoi(tok);
		if (nwords < 1 || nwords > 128)
			continue;
		if (bench_rounds(rounds, NIMPL, 0, one_round, NULL))
			return 1;
		for (int impl = 0; impl < NIMPL; impl++) {
			if (!runs(impl))
				continue;
			printf("bench=waitv n=%d impl=%s m=%ld rounds=%d", nwords, names[impl],
			       m_trips, rounds);
			bench_ns_figures(ns[impl],
					 bench_listed(impls, "futex_waitv") ? ns[FUTEX_WAITV] : NULL,
					 "futex_waitv", 2, rounds);
			printf("\n");
			fflush(stdout);
		}
	}
	free(nl);
	return 0;
}
