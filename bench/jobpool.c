/* SPDX-License-Identifier: MIT */
/*
 * jobpool.c - the job pool of issue 12, item 5: K worker processes, each
 * with its own queue registered on one shared struct evq_sem of T tokens,
 * run N jobs in all; a worker takes a token per job through evq_wait,
 * runs the job (a sleep of D ms: the job itself costs nothing, so the
 * wall time shows only how well the tokens are used), and posts the token
 * back.  The ideal wall time is ceil(N / T) * D ms: T jobs always
 * running.  A queue that sits on a token while its worker runs another
 * job (issue 12: "hoards") makes it longer.
 *
 * One run per invocation (so that a script can alternate builds, e.g.
 * before and after a change: bench/jobpool.sh), one line of output:
 *   bench=jobpool label=after backend=epoll k=8 tokens=3 jobs=24 job_ms=100
 *   wall_ms=812.3 ideal_ms=800 ratio=1.015 max_in_use=3
 * max_in_use: the most jobs that ever ran at once (at most T; T unless
 * tokens went unused all the time).
 *
 * Usage: jobpool [-k 8] [-t 3] [-n 24] [-d 100] [-b epoll|uring] [-l label]
 * Exit status 2 if a check failed (more than T at once, a job lost).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evq.h"
#include "bench.h"

struct shared {
	struct evq_sem sem;
	_Atomic int next_job;   /* jobs handed out */
	_Atomic int done;       /* jobs finished */
	_Atomic int in_use;     /* jobs running now */
	_Atomic int max_in_use;
	_Atomic int errors;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int worker(struct shared *sh, int backend, int jobs, int job_ms)
{
	struct evq *q;
	struct evq_options o = { .backend = backend };
	if (evq_new(&q, &o) < 0)
		return 1;
	if (evq_add_sem(q, &sh->sem, 0, 1) < 0)
		return 1;
	for (;;) {
		struct evq_event ev;
		int n = evq_wait(q, &ev, 1, -1, NULL);
		if (n < 0) {
			atomic_fetch_add(&sh->errors, 1);
			break;
		}
		if (n == 0)
			continue;
		/* one token held */
		if (atomic_fetch_add(&sh->next_job, 1) >= jobs) {
			evq_sem_post(&sh->sem, (uint32_t)ev.data);
			break; /* no job left */
		}
		int u = atomic_fetch_add(&sh->in_use, 1) + 1;
		int m = atomic_load(&sh->max_in_use);
		while (u > m && !atomic_compare_exchange_weak(&sh->max_in_use, &m, u))
			;
		sleep_ms(job_ms);
		atomic_fetch_sub(&sh->in_use, 1);
		atomic_fetch_add(&sh->done, 1);
		evq_sem_post(&sh->sem, (uint32_t)ev.data);
	}
	evq_free(q);
	return 0;
}

int main(int argc, char **argv)
{
	int k = 8, tokens = 3, jobs = 24, job_ms = 100, c;
	const char *bname = "epoll", *label = "-";
	while ((c = getopt(argc, argv, "k:t:n:d:b:l:")) != -1) {
		switch (c) {
		case 'k': k = atoi(optarg); break;
		case 't': tokens = atoi(optarg); break;
		case 'n': jobs = atoi(optarg); break;
		case 'd': job_ms = atoi(optarg); break;
		case 'b': bname = optarg; break;
		case 'l': label = optarg; break;
		default:
			fprintf(stderr, "usage: jobpool [-k workers] [-t tokens] [-n jobs] "
				"[-d job_ms] [-b epoll|uring] [-l label]\n");
			return 1;
		}
	}
	int backend = strcmp(bname, "uring") == 0 ? EVQ_BACKEND_URING : EVQ_BACKEND_EPOLL;
	struct evq *probe;
	struct evq_options po = { .backend = backend };
	if (evq_new(&probe, &po) < 0) {
		printf("# jobpool: backend %s unavailable: skipped\n", bname);
		return 0;
	}
	evq_free(probe);

	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || evq_sem_init(&sh->sem, (uint32_t)tokens, EVQ_SHARED) < 0)
		return 1;
	int64_t t0 = now_ns();
	for (int i = 0; i < k; i++) {
		pid_t p = fork();
		if (p < 0)
			return 1;
		if (p == 0)
			_exit(worker(sh, backend, jobs, job_ms));
	}
	int bad = 0, st;
	for (int i = 0; i < k; i++)
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	double wall = (double)(now_ns() - t0) / 1e6;
	double ideal = (double)((jobs + tokens - 1) / tokens) * job_ms;
	int max = atomic_load(&sh->max_in_use);
	printf("bench=jobpool label=%s backend=%s k=%d tokens=%d jobs=%d job_ms=%d "
	       "wall_ms=%.1f ideal_ms=%.0f ratio=%.3f max_in_use=%d\n", label, bname,
	       k, tokens, jobs, job_ms, wall, ideal, wall / ideal, max);
	if (bad || max > tokens || atomic_load(&sh->done) != jobs ||
	    atomic_load(&sh->errors) || evq_sem_value(&sh->sem) != tokens) {
		fprintf(stderr, "jobpool: check failed (workers %s, max %d, done %d of %d, "
			"value %d)\n", bad ? "failed" : "ok", max, atomic_load(&sh->done),
			jobs, evq_sem_value(&sh->sem));
		return 2;
	}
	return 0;
}
