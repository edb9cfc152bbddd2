/* SPDX-License-Identifier: MIT */
/*
 * waiters.c - many threads waiting on one queue (issue 5).
 *
 * 1. wakeups per event: W idle waiter threads block in evq_wait(); a
 *    producer triggers one user event at a time and waits until a waiter
 *    took it.  Every time a waiter thread blocks it counts one voluntary
 *    context switch (/proc/self/task/TID/status), so
 *        wakeups per event = sum of the waiters' voluntary switches / events
 *    (1.0 = exactly one waiter woken per event; W = a thundering herd).
 *    The same is measured for the raw mechanism the kernel offers: W
 *    threads in epoll_wait() on one epoll set holding one eventfd (EPOLLET),
 *    and for pthread_cond_broadcast (the herd, for scale).
 * 2. throughput with 1, 2, 4 waiter threads: one producer triggers NUSER user
 *    events round-robin; waiters take them and do ~200 ns of work each;
 *    events handled per second (the machine has 2 cores: read ratios).
 *
 * Output: key=value lines.  Usage: waiters [-e events] [-r rounds]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

static long vol_switches(pid_t tid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* ---------------- wakeups per event ---------------- */

enum impl { EVQ, EPOLL, COND, NIMPL };
static const char *impl_name[] = { "evq", "epoll_eventfd", "cond_broadcast" };

#define MAXW 8
static struct {
	enum impl impl;
	struct evq *q;
	int64_t uid;
	int epfd, efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long cond_seq;
	_Atomic long taken;
	_Atomic int stop;
	pid_t tids[MAXW];
	_Atomic int ready, exited;
} S;

static void *idle_waiter(void *arg)
{
	int me = (int)(intptr_t)arg;
	S.tids[me] = (pid_t)syscall(SYS_gettid);
	atomic_fetch_add(&S.ready, 1);
	if (S.impl == EVQ) {
		struct evq_event ev[4];
		while (!atomic_load(&S.stop)) {
			int n = evq_wait(S.q, ev, 4, -1, NULL);
			for (int i = 0; i < n; i++)
				if (ev[i].id == S.uid)
					atomic_fetch_add(&S.taken, (long)ev[i].data);
		}
	} else if (S.impl == EPOLL) {
		struct epoll_event ev[4];
		while (!atomic_load(&S.stop)) {
			int n = epoll_wait(S.epfd, ev, 4, -1);
			for (int i = 0; i < n; i++) {
				uint64_t v;
				if (read(S.efd, &v, sizeof v) == sizeof v)
					atomic_fetch_add(&S.taken, (long)v);
			}
		}
	} else {
		pthread_mutex_lock(&S.mu);
		long seen = S.cond_seq;
		while (!atomic_load(&S.stop)) {
			while (S.cond_seq == seen && !atomic_load(&S.stop))
				pthread_cond_wait(&S.cv, &S.mu);
			if (S.cond_seq != seen) {
				atomic_fetch_add(&S.taken, S.cond_seq - seen);
				seen = S.cond_seq;
			}
		}
		pthread_mutex_unlock(&S.mu);
	}
	atomic_fetch_add(&S.exited, 1);
	return NULL;
}

static void fire(void)
{
	if (S.impl == EVQ) {
		evq_trigger(S.q, S.uid);
	} else if (S.impl == EPOLL) {
		uint64_t one = 1;
		if (write(S.efd, &one, sizeof one) < 0)
			abort();
	} else {
		pthread_mutex_lock(&S.mu);
		S.cond_seq++;
		pthread_cond_broadcast(&S.cv);
		pthread_mutex_unlock(&S.mu);
	}
}

/* Returns wakeups per event for nw idle waiters and nev events. */
static double wakeups(enum impl impl, int nw, long nev)
{
	pthread_t th[MAXW];
	memset(&S, 0, sizeof S);
	S.impl = impl;
	if (evq_new(&S.q, NULL) != 0)
		abort();
	S.uid = evq_add_user(S.q, 1);
	S.epfd = epoll_create1(0);
	S.efd = eventfd(0, EFD_NONBLOCK);
	struct epoll_event e = { .events = EPOLLIN | EPOLLET };
	epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.efd, &e);
	pthread_mutex_init(&S.mu, NULL);
	pthread_cond_init(&S.cv, NULL);
	for (int i = 0; i < nw; i++)
		pthread_create(&th[i], NULL, idle_waiter, (void *)(intptr_t)i);
	while (atomic_load(&S.ready) < nw)
		usleep(100);
	usleep(20000); /* let all of them block */
	long before = 0;
	for (int i = 0; i < nw; i++)
		before += vol_switches(S.tids[i]);
	for (long k = 1; k <= nev; k++) {
		fire();
		while (atomic_load(&S.taken) < k)
			; /* spin: the producer does not sleep, waiters do */
		usleep(50); /* let the waiter go back to sleep: "idle" waiters */
	}
	usleep(20000);
	long after = 0;
	for (int i = 0; i < nw; i++)
		after += vol_switches(S.tids[i]);
	atomic_store(&S.stop, 1);
	/* keep firing until every waiter noticed (coalesced triggers and
	 * eventfd edges may wake fewer threads than fires) */
	while (atomic_load(&S.exited) < nw) {
		fire();
		usleep(1000);
	}
	for (int i = 0; i < nw; i++)
		pthread_join(th[i], NULL);
	evq_free(S.q);
	close(S.epfd);
	close(S.efd);
	return (double)(after - before) / (double)nev;
}

/* ---------------- throughput ---------------- */

#define NUSER 64
static struct evq *tq;
static int64_t tuid[NUSER];
static _Atomic long handled;
static _Atomic int tstop;

static void *busy_waiter(void *arg)
{
	(void)arg;
	struct evq_event ev[16];
	while (!atomic_load(&tstop)) {
		int n = evq_wait(tq, ev, 16, 1000000, NULL);
		for (int i = 0; i < n; i++) {
			/* ~200 ns of "work" per event */
			int64_t end = now_ns() + 200;
			while (now_ns() < end)
				;
			atomic_fetch_add(&handled, 1);
		}
	}
	return NULL;
}

static double throughput(int nw, int64_t dur_ns)
{
	pthread_t th[MAXW];
	if (evq_new(&tq, NULL) != 0)
		abort();
	for (int i = 0; i < NUSER; i++)
		tuid[i] = evq_add_user(tq, (uint64_t)i);
	atomic_store(&handled, 0);
	atomic_store(&tstop, 0);
	for (int i = 0; i < nw; i++)
		pthread_create(&th[i], NULL, busy_waiter, NULL);
	int64_t start = now_ns(), end = start + dur_ns;
	long k = 0;
	while (now_ns() < end) {
		evq_trigger(tq, tuid[k++ % NUSER]);
		if ((k & 63) == 0)
			sched_yield();
	}
	long h = atomic_load(&handled);
	double secs = (double)(now_ns() - start) / 1e9;
	atomic_store(&tstop, 1);
	for (int i = 0; i < nw; i++)
		pthread_join(th[i], NULL);
	evq_free(tq);
	return (double)h / secs;
}

int main(int argc, char **argv)
{
	long nev = 2000;
	int rounds = 5;
	int opt;
	while ((opt = getopt(argc, argv, "e:r:")) != -1) {
		if (opt == 'e')
			nev = atol(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else {
			fprintf(stderr, "usage: waiters [-e events] [-r rounds]\n");
			return 2;
		}
	}
	static const int ws[] = { 1, 8 };
	for (size_t wi = 0; wi < sizeof ws / sizeof ws[0]; wi++) {
		double v[NIMPL][32];
		for (int r = 0; r < rounds && r < 32; r++)
			for (int i = 0; i < NIMPL; i++) /* interleaved */
				v[i][r] = wakeups((enum impl)i, ws[wi], nev);
		for (int i = 0; i < NIMPL; i++)
			printf("bench=waiters test=wakeups_per_event impl=%s waiters=%d events=%ld rounds=%d median=%.3f\n",
			       impl_name[i], ws[wi], nev, rounds, median(v[i], rounds));
	}
	static const int tw[] = { 1, 2, 4 };
	double t[3][32];
	for (int r = 0; r < rounds && r < 32; r++)
		for (int i = 0; i < 3; i++)
			t[i][r] = throughput(tw[i], 200000000);
	double base = median(t[0], rounds);
	for (int i = 0; i < 3; i++) {
		double m = median(t[i], rounds);
		printf("bench=waiters test=throughput impl=evq waiters=%d events_per_s_median=%.0f ratio_vs_1=%.2f\n",
		       tw[i], m, m / base);
	}
	return 0;
}
