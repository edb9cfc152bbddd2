/* SPDX-License-Identifier: MIT */
/*
 * latchmany.c - evq_latch_set_many on n latches that each have a waiter
 * asleep in evq_latch_wait: how long the setter spends inside the call,
 * and how long until every waiter has woken ("all").
 *
 * Implementations, interleaved round-robin over R rounds (the first one
 * rotates), M sets per round, for each n:
 *   ring    evq_latch_set_many with the wake ring forced (batch minimum 1):
 *           one io_uring_enter of n IORING_OP_FUTEX_WAKEs (per 64)
 *   pairs   evq_latch_set_many with the ring off (batch minimum 0): one
 *           FUTEX_WAKE_OP per two latches (the path before issue 4)
 *   single  evq_latch_set on each latch: one FUTEX_WAKE per latch
 *   auto    evq_latch_set_many as shipped (its default batch minimum)
 * Before each set the setter waits until every waiter is asleep in the
 * kernel (state S in /proc/self/task/TID/stat and counted on its latch),
 * so every call wakes n sleeping threads.  The waiters run SCHED_IDLE by
 * default, so that one woken on the setter's CPU does not preempt the
 * setter inside the call (-N: normal policy; "all" then counts the same
 * work, but "set" also counts preemptions).
 *
 * Output (per round the median of its M sets, so that a preemption by
 * another process does not count; then the median over rounds; ratio =
 * median of the per-round ratios against pairs):
 *   bench=latchmany impl=ring n=32 m=300 rounds=11 waiters=asleep set_ns=...
 *   all_ns=... set_ratio_vs_pairs=... all_ratio_vs_pairs=...
 * (with -e: waiters=none, and no all_ns)
 *
 * Usage: latchmany [-n 2,4,8,32,128] [-m 300] [-r 11]
 *                  [-i ring,pairs,single,auto] [-s] [-N] [-e] [-v]
 *   -s  EVQ_SHARED latches (process-shared futex keys)
 *   -e  no waiter threads: each latch counts a waiter that is not asleep,
 *       so every wake finds nobody; "set" is then the cost of issuing the
 *       wakes alone (system calls, ring), without waking anyone
 *
 * Links the static library for evq__latch_batch_min (internal).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "evq.h"
#include "wordsbench.h"

void evq__latch_batch_min(int min); /* src/internal.h */

enum { RING, PAIRS, SINGLE, AUTO, NIMPL };
static const char *names[NIMPL] = { "ring", "pairs", "single", "auto" };

#define NMAX 1024

static struct evq_latch lat[NMAX];
static struct evq_latch *lp[NMAX];
static int statfd[NMAX];
static _Atomic pid_t tids[NMAX];
static atomic_int woke, stop;
static uint32_t done_word;
static int nwait, idle_waiters = 1, empty;

static void *waiter(void *a)
{
	int i = (int)(intptr_t)a;
	if (idle_waiters) {
		struct sched_param sp = { 0 };
		pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	}
	atomic_store(&tids[i], (pid_t)syscall(SYS_gettid));
	for (;;) {
		evq_latch_wait(&lat[i], -1);
		if (atomic_load(&stop))
			return NULL;
		evq_latch_reset(&lat[i]);
		if (atomic_fetch_add(&woke, 1) + 1 == nwait) {
			__atomic_store_n(&done_word, 1, __ATOMIC_SEQ_CST);
			wb_futex_wake(&done_word, 1, 0);
		}
	}
}

/* 1 when thread i sleeps (state S) and is counted on its latch. */
static int asleep(int i)
{
	char buf[512];
	if (__atomic_load_n(&lat[i].waiters, __ATOMIC_SEQ_CST) != 1)
		return 0;
	ssize_t k = pread(statfd[i], buf, sizeof buf - 1, 0);
	if (k <= 0)
		return 0;
	buf[k] = 0;
	const char *p = strrchr(buf, ')'); /* the name may hold spaces */
	return p && p[1] == ' ' && p[2] == 'S';
}

static void all_asleep(int n)
{
	for (int i = 0; i < n; i++)
		while (!asleep(i))
			sched_yield();
}

/* Sets lp[0..n) the way impl does. */
static void set_all(int impl, int n)
{
	if (impl == SINGLE)
		for (int i = 0; i < n; i++)
			evq_latch_set(lp[i]);
	else
		evq_latch_set_many(lp, n);
}

/* One set of all n latches by impl; returns the ns inside the call and
 * stores the ns until every waiter woke in *all. */
static double one(int impl, int n, double *all)
{
	if (empty) {
		/* -e: a waiter counted on each latch, none asleep */
		for (int i = 0; i < n; i++)
			evq_latch_reset(lp[i]);
		int64_t t0 = now_ns();
		set_all(impl, n);
		*all = 0;
		return (double)(now_ns() - t0);
	}
	all_asleep(n);
	atomic_store(&woke, 0);
	__atomic_store_n(&done_word, 0, __ATOMIC_SEQ_CST);
	int64_t t0 = now_ns();
	set_all(impl, n);
	int64_t t1 = now_ns();
	while (__atomic_load_n(&done_word, __ATOMIC_SEQ_CST) == 0)
		wb_futex_wait(&done_word, 0, 0);
	int64_t t2 = now_ns();
	*all = (double)(t2 - t0);
	return (double)(t1 - t0);
}

static void use(int impl)
{
	evq__latch_batch_min(impl == RING ? 1 : impl == PAIRS ? 0 : -1);
}

/* n latches and (without -e) a waiter thread on each, whose
 * /proc/self/task/TID/stat all_asleep reads; 0 or -1 */
static int start_waiters(int n, int flags, pthread_t *th)
{
	nwait = n;
	atomic_store(&stop, 0);
	for (int i = 0; i < n; i++) {
		if (evq_latch_init(&lat[i], (uint32_t)flags) != 0)
			return -1;
		lp[i] = &lat[i];
		if (empty) {
			__atomic_store_n(&lat[i].waiters, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		atomic_store(&tids[i], 0);
		if (pthread_create(&th[i], NULL, waiter, (void *)(intptr_t)i) != 0)
			return -1;
	}
	for (int i = 0; i < n && !empty; i++) {
		char path[64];
		while (atomic_load(&tids[i]) == 0)
			sched_yield();
		snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)atomic_load(&tids[i]));
		statfd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (statfd[i] < 0)
			return -1;
	}
	return 0;
}

static const char *impls; /* -i */
static double set[NIMPL][256], all[NIMPL][256]; /* per round, medians of m */

struct table {
	int n;
	long m;
	double *sv, *av; /* m sets: ns inside the call, ns until all woke */
};

static int one_round(int impl, int r, void *ctx)
{
	const struct table *t = ctx;
	if (!bench_listed(impls, names[impl]))
		return 0;
	use(impl);
	for (long k = 0; k < t->m; k++)
		t->sv[k] = one(impl, t->n, &t->av[k]);
	set[impl][r] = median(t->sv, (int)t->m);
	all[impl][r] = median(t->av, (int)t->m);
	return 0;
}

static void report(int n, long m, int rounds, int verbose)
{
	int have = bench_listed(impls, "pairs");
	for (int impl = 0; impl < NIMPL; impl++) {
		if (!bench_listed(impls, names[impl]))
			continue;
		printf("bench=latchmany impl=%s n=%d m=%ld rounds=%d waiters=%s set_ns=%.0f",
		       names[impl], n, m, rounds, empty ? "none" : "asleep",
		       bench_median(set[impl], rounds));
		if (!empty)
			printf(" all_ns=%.0f", bench_median(all[impl], rounds));
		if (have) {
			printf(" set_ratio_vs_pairs=%.2f",
			       bench_ratio_median(set[impl], set[PAIRS], rounds));
			if (!empty)
				printf(" all_ratio_vs_pairs=%.2f",
				       bench_ratio_median(all[impl], all[PAIRS], rounds));
		}
		printf("\n");
		if (verbose)
			bench_print_rounds("set per round", set[impl], rounds);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *ns_list = "2,4,8,32,128";
	int rounds = 11, verbose = 0, opt, flags = 0;
	long m = 300;
	while ((opt = getopt(argc, argv, "n:m:r:i:sNev")) != -1) {
		switch (opt) {
		case 'n': ns_list = optarg; break;
		case 'm': m = atol(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'i': impls = optarg; break;
		case 's': flags = EVQ_SHARED; break;
		case 'N': idle_waiters = 0; break;
		case 'e': empty = 1; break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: latchmany [-n 2,4,8,32,128] [-m sets] "
					"[-r rounds] [-i ring,pairs,single,auto] [-s] [-N] [-e] [-v]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 256 || m < 1)
		return 2;
	bench_header(empty ? "evq_latch_set_many: n latches, a waiter counted on each, none asleep"
			: "evq_latch_set_many: n latches, one sleeping waiter each");
	printf("# waiters %s, latches %s\n",
	       empty ? "none (-e)" : idle_waiters ? "SCHED_IDLE" : "SCHED_OTHER",
	       flags ? "EVQ_SHARED" : "private");
	for (const char *p = ns_list; *p;) {
		int n = atoi(p);
		p += strcspn(p, ",");
		p += *p == ',';
		if (n < 1 || n > NMAX)
			return 2;
		pthread_t th[NMAX];
		if (start_waiters(n, flags, th) != 0)
			return 1;
		double *sv = malloc(sizeof *sv * (size_t)m), *av = malloc(sizeof *av * (size_t)m);
		if (!sv || !av)
			return 1;
		double dummy;
		for (int impl = 0; impl < NIMPL; impl++) { /* warm-up: the ring */
			use(impl);
			one(impl, n, &dummy);
		}
		bench_rounds(rounds, NIMPL, 0, one_round, &(struct table){ n, m, sv, av });
		report(n, m, rounds, verbose);
		free(sv);
		free(av);
		use(AUTO);
		if (empty)
			continue;
		atomic_store(&stop, 1);
		for (int i = 0; i < n; i++)
			evq_latch_set(&lat[i]);
		for (int i = 0; i < n; i++) {
			pthread_join(th[i], NULL);
			close(statfd[i]);
		}
	}
	return 0;
}
