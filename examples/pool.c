/* SPDX-License-Identifier: MIT */
/*
 * pool.c - a pool of worker threads sharing one queue.
 *
 *   pool [jobs]      (default 2000; run with no argument it checks itself
 *                     and exits 0 in well under a second)
 *
 * Four workers block in evq_wait() on the same queue.  Each event goes to
 * exactly one of them.  The sources:
 *
 *   - a work queue: jobs are pushed on a list and a user event is
 *     triggered.  Triggers coalesce and one trigger wakes one worker (no
 *     thundering herd), so a worker takes one job and, if more are
 *     left, triggers again to wake the next one;
 *   - a few pipes, written by the main thread, each registered EVQ_ONESHOT:
 *     only one worker at a time reads a given pipe, and it re-arms the
 *     registration with evq_mod() when it has drained it;
 *   - a periodic timer, also EVQ_ONESHOT and re-armed after handling: a
 *     plain periodic timer would fire again while one worker still
 *     handles it and a second worker would run the same handler at once.
 *     Expirations that pass while it is disarmed are not lost: the next
 *     event's data counts them (the period is kept, nothing drifts).
 *
 * When all the work is done, evq_shutdown() makes every worker's
 * evq_wait() return -ESHUTDOWN - also those asleep - and the workers
 * exit.  Then the registrations are deleted and the queue freed.
 */
#include <errno.h>
#include <evq.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NWORKERS 4
#define NPIPES 3
#define MS 1000000LL /* nanoseconds */

enum { WORK = 1, TICK = 2, PIPE0 = 16 }; /* cookies; pipe i is PIPE0 + i */

static struct evq *q;
static int64_t work_id, tick_id, pipe_id[NPIPES];
static int pipes[NPIPES][2];

/* The job list: a mutex-protected stack (any structure will do; the user
 * event only says "look at the list"). */
struct job {
	struct job *next;
	long value;
};
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs;

/* What the workers did, for the summary. */
static _Atomic long jobs_done, job_sum, bytes_read, ticks, tick_events, tick_overlaps;
static _Atomic int in_tick;
static _Atomic long per_worker[NWORKERS];

static void submit(long value)
{
	struct job *j = malloc(sizeof *j);
	if (!j)
		abort();
	j->value = value;
	pthread_mutex_lock(&jobs_lock);
	j->next = jobs;
	jobs = j;
	pthread_mutex_unlock(&jobs_lock);
	evq_trigger(q, work_id); /* async-signal-safe, lock-free */
}

static struct job *take_job(void)
{
	pthread_mutex_lock(&jobs_lock);
	struct job *j = jobs;
	if (j)
		jobs = j->next;
	pthread_mutex_unlock(&jobs_lock);
	return j;
}

static int jobs_left(void)
{
	pthread_mutex_lock(&jobs_lock);
	int left = jobs != NULL;
	pthread_mutex_unlock(&jobs_lock);
	return left;
}

static void handle(int self, const struct evq_event *ev)
{
	if (ev->cookie == WORK) {
		/* One event may stand for many triggers (they coalesce).  Take
		 * one job, and if more are left trigger again first, so that
		 * another worker wakes up and the jobs spread over the pool. */
		struct job *j = take_job();
		if (!j)
			return; /* another worker took it */
		if (jobs_left())
			evq_trigger(q, work_id);
		atomic_fetch_add(&job_sum, j->value);
		atomic_fetch_add(&jobs_done, 1);
		atomic_fetch_add(&per_worker[self], 1);
		free(j);
	} else if (ev->cookie == TICK) {
		if (atomic_fetch_add(&in_tick, 1) != 0)
			atomic_fetch_add(&tick_overlaps, 1); /* never, with ONESHOT */
		atomic_fetch_add(&ticks, (long)ev->data); /* expirations */
		atomic_fetch_add(&tick_events, 1);
		atomic_fetch_sub(&in_tick, 1);
		/* Re-arm: EVQ_ONESHOT again (flags 0 would make it a plain
		 * periodic timer).  The deadline does not move. */
		evq_mod(q, ev->id, 0, EVQ_ONESHOT);
	} else {
		/* A pipe: this worker is the only one reading it until it
		 * re-arms the registration.  Drain it (it is non-blocking). */
		int i = (int)(ev->cookie - PIPE0);
		char buf[512];
		ssize_t n;
		while ((n = read(pipes[i][0], buf, sizeof buf)) > 0)
			atomic_fetch_add(&bytes_read, n);
		if (n == 0 || (ev->events & EVQ_HUP)) {
			evq_del(q, ev->id); /* writer closed: done with it */
			pipe_id[i] = -1;
		} else {
			evq_mod(q, ev->id, EVQ_READ, EVQ_ONESHOT);
		}
	}
}

static void *worker(void *arg)
{
	int self = (int)(intptr_t)arg;
	struct evq_event ev[8];
	for (;;) {
		int n = evq_wait(q, ev, 8, -1, NULL);
		if (n == -ESHUTDOWN)
			return NULL;  /* the pool is stopping */
		if (n == -EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "evq_wait: %s\n", strerror(-n));
			exit(1);
		}
		for (int i = 0; i < n; i++)
			handle(self, &ev[i]);
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fail(const char *what, long long rc)
{
	fprintf(stderr, "%s: %s\n", what, strerror((int)-rc));
	return 1;
}

int main(int argc, char **argv)
{
	long njobs = argc > 1 ? atol(argv[1]) : 2000;
	int rc = evq_new(&q, NULL);
	if (rc < 0)
		return fail("evq_new", rc);

	/* the sources */
	work_id = evq_add_user(q, WORK);
	if (work_id < 0)
		return fail("evq_add_user", work_id);
	int64_t t0 = now_ns() + 2 * MS;
	tick_id = evq_add_timer(q, CLOCK_MONOTONIC, t0, 2 * MS,
				EVQ_ABSTIME | EVQ_ONESHOT, TICK);
	if (tick_id < 0)
		return fail("evq_add_timer", tick_id);
	for (int i = 0; i < NPIPES; i++) {
		if (pipe2(pipes[i], O_NONBLOCK | O_CLOEXEC) < 0)
			return fail("pipe2", -errno);
		pipe_id[i] = evq_add_fd(q, pipes[i][0], EVQ_READ, EVQ_ONESHOT, PIPE0 + i);
		if (pipe_id[i] < 0)
			return fail("evq_add_fd", pipe_id[i]);
	}

	pthread_t th[NWORKERS];
	for (int i = 0; i < NWORKERS; i++)
		if ((rc = pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i)) != 0)
			return fail("pthread_create", -rc);

	/* produce: jobs, and some bytes on every pipe */
	long want_sum = 0, want_bytes = 0;
	for (long k = 1; k <= njobs; k++) {
		submit(k);
		want_sum += k;
		if (k % 100 == 0) {
			char msg[64];
			int len = snprintf(msg, sizeof msg, "job %ld\n", k);
			int i = (int)(k / 100 % NPIPES);
			if (write(pipes[i][1], msg, (size_t)len) == len)
				want_bytes += len;
		}
	}
	for (int i = 0; i < NPIPES; i++)
		close(pipes[i][1]); /* the readers see EOF and delete their pipe */

	/* wait (briefly, at most 10 s) for the workers to finish the work,
	 * and for at least 20 timer periods to be handled */
	int64_t deadline = now_ns() + 10000 * MS;
	while ((atomic_load(&jobs_done) < njobs || atomic_load(&bytes_read) < want_bytes ||
		atomic_load(&ticks) < 20) && now_ns() < deadline) {
		struct timespec ms = { 0, 1 * MS };
		nanosleep(&ms, NULL);
	}

	/* stop the pool: every evq_wait returns -ESHUTDOWN, sleeping or not */
	evq_shutdown(q);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(th[i], NULL);
	long elapsed = (long)((now_ns() - t0) / (2 * MS)) + 1; /* periods by now */

	/* the registrations are still there: delete them, then free */
	evq_del(q, work_id);
	evq_del(q, tick_id);
	for (int i = 0; i < NPIPES; i++) {
		if (pipe_id[i] >= 0)
			evq_del(q, pipe_id[i]);
		close(pipes[i][0]);
	}
	printf("pool: %d workers on one queue (%s)\n", NWORKERS, evq_backend_name(q));
	evq_free(q);

	printf("jobs: %ld done (sum %ld), per worker:", atomic_load(&jobs_done),
	       atomic_load(&job_sum));
	for (int i = 0; i < NWORKERS; i++)
		printf(" %ld", atomic_load(&per_worker[i]));
	printf("\npipes: %ld of %ld bytes read\n", atomic_load(&bytes_read), want_bytes);
	printf("timer: %ld expirations in %ld events, %ld periods elapsed, %ld overlaps\n",
	       atomic_load(&ticks), atomic_load(&tick_events), elapsed,
	       atomic_load(&tick_overlaps));

	int good = atomic_load(&jobs_done) == njobs && atomic_load(&job_sum) == want_sum &&
		   atomic_load(&bytes_read) == want_bytes && atomic_load(&ticks) >= 20 &&
		   atomic_load(&ticks) <= elapsed && atomic_load(&tick_overlaps) == 0;
	printf("%s\n", good ? "ok" : "FAILED");
	return good ? 0 : 1;
}
