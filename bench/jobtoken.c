/* SPDX-License-Identifier: MIT */
/*
 * jobtoken.c - the job-token benchmark of seed 001 (bmake's jobserver):
 * K worker processes each run M tiny jobs and take a token before each
 * one; T tokens in all.
 *
 * Implementations (interleaved round-robin over R rounds, rotating the
 * first one):
 *   pipe       GNU make / bmake's jobserver: a pipe holding T bytes.  A
 *              worker poll()s the pipe (as make does, multiplexed with its
 *              children), read()s one byte (non-blocking; -EAGAIN: another
 *              worker won the fight, poll again), runs the job, write()s
 *              the byte back.
 *   evq-epoll  struct evq_sem in a MAP_SHARED page, taken through each
 *              worker's own queue (EVQ_BACKEND_EPOLL): evq_add_sem with
 *              EVQ_ONESHOT, evq_wait -> one token held, job,
 *              evq_sem_post(1), evq_mod re-arms (the worker never holds a
 *              token it does not use).
 *   evq-uring  the same on EVQ_BACKEND_URING (skipped, with a "#" line,
 *              where io_uring is unavailable).
 *   evq-prefetch-epoll, evq-prefetch-uring  the same without EVQ_ONESHOT.
 *              Until issue 12 the queue then took the next token as soon
 *              as the previous one was handed out, so a worker could hold
 *              a spare token while its job ran; now a token is taken only
 *              when evq_wait hands it out, and these differ from the
 *              oneshot rows only by the evq_mod() call they save (the
 *              name stays for comparison with older results).
 * (Before the backends were split out, "evq" and "evq-prefetch" were these
 * on the default backend, AUTO = epoll: -i still takes those two names, as
 * the epoll rows.)
 * A job is a short busy loop (-w iterations, ~1 us).
 *
 * Per (K, impl, round): the parent forks the K workers, waits for all and
 * takes user/sys time from getrusage(RUSAGE_CHILDREN) deltas and wall time
 * from CLOCK_MONOTONIC.  Output (medians over the rounds; ratios are
 * medians of per-round ratios against pipe in the same round):
 *   bench=jobtoken k=8 impl=evq-uring m=20000 tokens=2 rounds=5 wall_ms=...
 *   user_ms=... sys_ms=... sys_ratio_vs_pipe=... wall_ratio_vs_pipe=...
 * (ratio > 1: pipe needed that many times more).
 *
 * Usage: jobtoken [-k 2,8,32] [-m 20000] [-t 2] [-r 5] [-w 1000]
 *                 [-i pipe,evq-epoll,evq-uring,evq-prefetch-epoll,
 *                     evq-prefetch-uring]
 */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "evq.h"
#include "wordsbench.h"

enum { PIPE, EVQ_EPOLL, EVQ_URING, EVQ_PREFETCH_EPOLL, EVQ_PREFETCH_URING, NIMPL };
static const char *names[NIMPL] = { "pipe", "evq-epoll", "evq-uring",
				    "evq-prefetch-epoll", "evq-prefetch-uring" };
static const char *old_names[NIMPL] = { "pipe", "evq", NULL, "evq-prefetch", NULL };
static int have_uring = 1;

static int is_uring(int impl) { return impl == EVQ_URING || impl == EVQ_PREFETCH_URING; }
static int is_oneshot(int impl) { return impl == EVQ_EPOLL || impl == EVQ_URING; }

static int wanted(const char *impls, int impl)
{
	if (is_uring(impl) && !have_uring)
		return 0;
	return bench_listed(impls, names[impl]) ||
	       (impls && old_names[impl] && bench_listed(impls, old_names[impl]));
}

static long m_jobs = 20000, work = 1000;
static int tokens = 2;
static volatile uint64_t sink;

static void job(void)
{
	uint64_t x = sink;
	for (long i = 0; i < work; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	sink = x;
}

static int worker_pipe(int rfd, int wfd)
{
	char c;
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	for (long i = 0; i < m_jobs; i++) {
		for (;;) {
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return 1;
			ssize_t n = read(rfd, &c, 1);
			if (n == 1)
				break;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return 2;
		}
		job();
		if (write(wfd, &c, 1) != 1)
			return 3;
	}
	return 0;
}

static int worker_evq(struct evq_sem *s, int backend, int oneshot)
{
	struct evq *q;
	struct evq_event ev[4];
	struct evq_options o = { .backend = backend };
	if (evq_new(&q, &o) != 0)
		return 10;
	int64_t id = evq_add_sem(q, s, 0, 1);
	if (id < 0 || (oneshot && evq_mod(q, id, 0, EVQ_ONESHOT) != 0))
		return 11;
	for (long i = 0; i < m_jobs;) {
		int n = evq_wait(q, ev, 4, -1, NULL);
		if (n <= 0)
			return 12;
		for (int k = 0; k < n; k++, i++) {
			job();
			if (evq_sem_post(s, 1) != 0)
				return 13;
		}
		if (oneshot && evq_mod(q, id, 0, EVQ_ONESHOT) != 0)
			return 14;
	}
	evq_free(q);
	return 0;
}

struct result {
	double wall, user, sys;
};

static double tv_ms(struct timeval tv)
{
	return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
}

static int run(int impl, int k, struct evq_sem *s, struct result *res)
{
	int pfd[2] = { -1, -1 };
	if (impl == PIPE) {
		if (pipe2(pfd, O_NONBLOCK) != 0)
			return -1;
		char buf[64];
		memset(buf, '+', sizeof buf);
		if (write(pfd[1], buf, (size_t)tokens) != tokens)
			return -1;
	} else {
		evq_sem_init(s, (uint32_t)tokens, EVQ_SHARED);
	}
	struct rusage r0, r1;
	getrusage(RUSAGE_CHILDREN, &r0);
	int64_t t0 = now_ns();
	pid_t pid[256];
	for (int i = 0; i < k; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			return -1;
		if (pid[i] == 0)
			_exit(impl == PIPE ? worker_pipe(pfd[0], pfd[1])
					   : worker_evq(s, is_uring(impl) ? EVQ_BACKEND_URING
									  : EVQ_BACKEND_EPOLL,
							is_oneshot(impl)));
	}
	int bad = 0;
	for (int i = 0; i < k; i++) {
		int st;
		waitpid(pid[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	int64_t t1 = now_ns();
	getrusage(RUSAGE_CHILDREN, &r1);
	if (impl == PIPE) {
		close(pfd[0]);
		close(pfd[1]);
	} else if (evq_sem_value(s) != tokens) {
		bad = 1; /* a token was lost or duplicated */
	}
	res->wall = (double)(t1 - t0) / 1e6;
	res->user = tv_ms(r1.ru_utime) - tv_ms(r0.ru_utime);
	res->sys = tv_ms(r1.ru_stime) - tv_ms(r0.ru_stime);
	return bad ? -1 : 0;
}

static const char *impls; /* -i */
static struct result res[NIMPL][256];

struct config {
	int k;
	struct evq_sem *s;
};

static int one_round(int impl, int r, void *ctx)
{
	const struct config *c = ctx;
	if (!wanted(impls, impl))
		return 0;
	if (run(impl, c->k, c->s, &res[impl][r]) != 0) {
		printf("# k=%d impl=%s round %d FAILED\n", c->k, names[impl], r);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *klist = "2,8,32";
	int rounds = 5, opt;
	while ((opt = getopt(argc, argv, "k:m:t:r:w:i:")) != -1) {
		switch (opt) {
		case 'k': klist = optarg; break;
		case 'm': m_jobs = atol(optarg); break;
		case 't': tokens = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'w': work = atol(optarg); break;
		case 'i': impls = optarg; break;
		default:
			fprintf(stderr, "usage: jobtoken [-k 2,8,32] [-m jobs] [-t tokens] "
					"[-r rounds] [-w work] [-i pipe,evq-epoll,evq-uring,"
					"evq-prefetch-epoll,evq-prefetch-uring]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 256 || tokens < 1 || tokens > 64)
		return 2;
	struct evq_sem *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return 1;
	bench_header("jobtoken");
	struct evq *probe;
	struct evq_options po = { .backend = EVQ_BACKEND_URING };
	if (evq_new(&probe, &po) == 0)
		evq_free(probe);
	else
		have_uring = 0;
	if (!have_uring)
		printf("# io_uring unavailable: skipped\n");
	char *kl = strdup(klist);
	for (char *tok = strtok(kl, ","); tok; tok = strtok(NULL, ",")) {
		int k = atoi(tok);
		if (k < 1 || k > 256)
			continue;
		if (bench_rounds(rounds, NIMPL, 0, one_round, &(struct config){ k, s }))
			return 1;
		for (int impl = 0; impl < NIMPL; impl++) {
			if (!wanted(impls, impl))
				continue;
			double w[256], u[256], sy[256], sr[256], wr[256];
			int have_pipe = bench_listed(impls, "pipe");
			for (int r = 0; r < rounds; r++) {
				w[r] = res[impl][r].wall;
				u[r] = res[impl][r].user;
				sy[r] = res[impl][r].sys;
				if (have_pipe) {
					/* getrusage counts in clock ticks: 0 ms of
					 * system time is "less than a tick" (inf) */
					sr[r] = sy[r] > 0 ? res[PIPE][r].sys / sy[r] : INFINITY;
					wr[r] = res[PIPE][r].wall / w[r];
				}
			}
			printf("bench=jobtoken k=%d impl=%s m=%ld tokens=%d rounds=%d "
			       "wall_ms=%.1f user_ms=%.1f sys_ms=%.1f",
			       k, names[impl], m_jobs, tokens, rounds, bench_median(w, rounds),
			       bench_median(u, rounds), bench_median(sy, rounds));
			if (have_pipe)
				printf(" sys_ratio_vs_pipe=%.2f wall_ratio_vs_pipe=%.2f",
				       bench_median(sr, rounds), bench_median(wr, rounds));
			printf("\n");
			fflush(stdout);
		}
	}
	free(kl);
	return 0;
}
