/* SPDX-License-Identifier: MIT */
/*
 * jobs.c - job tokens across processes: at most K jobs at once, whichever
 * process runs them (a "jobserver", as make -j has).
 *
 * The parent puts a counting semaphore with K tokens in shared memory and
 * forks N worker processes.  Each worker has its own event queue with the
 * semaphore registered on it (evq_add_sem): an event from that
 * registration means one token is now the worker's.  The worker runs one
 * job while it holds the token, gives the token back (evq_sem_post), and
 * asks for the next one, M jobs in all.  A real worker would have more on
 * its queue - the pipes of the jobs it started, a timer - and take tokens
 * only when it has a job to start, in the same evq_wait() loop.
 *
 * A queue takes a token only when evq_wait() hands the event out, so a
 * worker busy with a job holds exactly that job's token, never a spare
 * one: with N > K workers, all K tokens stay in use.
 *
 * The parent collects the workers' exits with evq_add_pid (a pidfd: no
 * SIGCHLD handler, no pid-reuse race) on its own queue, then checks what
 * the workers recorded in shared memory: never more than K jobs running
 * at once, every job done, every token back.  Exit status 0 if so.
 *
 *   jobs [-k tokens] [-n workers] [-m jobs per worker] [-d job ms]
 *   (defaults: 3 tokens, 5 workers, 4 jobs each, 10 ms jobs: ~0.1 s)
 */
#include <evq.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Everything the processes share: one anonymous MAP_SHARED mapping made
 * before fork(), so every process sees it at the same address.  (Unrelated
 * processes would map a file or a memfd instead.) */
struct shared {
	struct evq_sem tokens;    /* initialised with EVQ_SHARED */
	atomic_int running;       /* jobs running now */
	atomic_int max_running;   /* the most that ever ran at once */
	atomic_int done;          /* jobs finished */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* One job: count it in while it runs.  A real job would be a child
 * process or a piece of work; here it just takes some time. */
static void run_job(struct shared *sh, int ms)
{
	int now = atomic_fetch_add(&sh->running, 1) + 1;
	int max = atomic_load(&sh->max_running);
	while (now > max && !atomic_compare_exchange_weak(&sh->max_running, &max, now))
		;
	sleep_ms(ms);
	atomic_fetch_sub(&sh->running, 1);
	atomic_fetch_add(&sh->done, 1);
}

/* A worker process: its own queue (a queue is never shared across
 * fork(): each process makes its own after the fork). */
static int worker(struct shared *sh, int jobs, int ms)
{
	struct evq *q;
	int rc = evq_new(&q, NULL);
	if (rc < 0) {
		fprintf(stderr, "worker: evq_new: %s\n", strerror(-rc));
		return 1;
	}
	enum { TOKEN = 1 }; /* the cookie of our semaphore registration */
	int64_t id = evq_add_sem(q, &sh->tokens, 0, TOKEN);
	if (id < 0) {
		fprintf(stderr, "worker: evq_add_sem: %s\n", strerror((int)-id));
		evq_free(q);
		return 1;
	}
	for (int j = 0; j < jobs;) {
		struct evq_event ev[4];
		int n = evq_wait(q, ev, 4, -1, NULL); /* sleep until a token */
		if (n < 0) {
			fprintf(stderr, "worker: evq_wait: %s\n", strerror(-n));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].cookie != TOKEN)
				continue; /* other sources would be handled here */
			if (ev[i].events & EVQ_ERR) {
				/* the shared memory was found corrupt */
				fprintf(stderr, "worker: semaphore unusable\n");
				evq_free(q);
				return 1;
			}
			/* ev[i].data tokens are ours now: one per event */
			for (uint64_t t = 0; t < ev[i].data; t++) {
				run_job(sh, ms);
				j++;
				evq_sem_post(&sh->tokens, 1); /* give it back */
			}
		}
	}
	evq_free(q); /* holds no token: nothing to give back */
	return 0;
}

int main(int argc, char **argv)
{
	int k = 3, nworkers = 5, jobs = 4, ms = 10, c;
	while ((c = getopt(argc, argv, "k:n:m:d:")) != -1) {
		switch (c) {
		case 'k': k = atoi(optarg); break;
		case 'n': nworkers = atoi(optarg); break;
		case 'm': jobs = atoi(optarg); break;
		case 'd': ms = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: jobs [-k tokens] [-n workers] "
				"[-m jobs per worker] [-d job ms]\n");
			return 2;
		}
	}
	if (k < 1 || nworkers < 1 || nworkers > 1000 || jobs < 0 || ms < 0) {
		fprintf(stderr, "jobs: bad arguments\n");
		return 2;
	}

	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	int rc = evq_sem_init(&sh->tokens, (uint32_t)k, EVQ_SHARED);
	if (rc < 0) {
		fprintf(stderr, "evq_sem_init: %s\n", strerror(-rc));
		return 1;
	}
	atomic_init(&sh->running, 0);
	atomic_init(&sh->max_running, 0);
	atomic_init(&sh->done, 0);

	/* The parent's queue: one registration per worker's exit.  Made
	 * before the forks is fine: the children never touch it. */
	struct evq *q;
	if ((rc = evq_new(&q, NULL)) < 0) {
		fprintf(stderr, "evq_new: %s\n", strerror(-rc));
		return 1;
	}
	int started = 0, failed = 0;
	for (int i = 0; i < nworkers; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			failed = 1;
			break;
		}
		if (pid == 0)
			_exit(worker(sh, jobs, ms));
		/* the child's exit, reaped by the queue: data is its status */
		if (evq_add_pid(q, pid, 0, (uint64_t)pid) < 0) {
			fprintf(stderr, "evq_add_pid failed\n");
			waitpid(pid, NULL, 0);
			failed = 1;
			continue;
		}
		started++;
	}

	for (int left = started; left > 0;) {
		struct evq_event ev[16];
		int n = evq_wait(q, ev, 16, -1, NULL);
		if (n < 0) {
			fprintf(stderr, "evq_wait: %s\n", strerror(-n));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int status = (int)ev[i].data;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "worker %d failed\n", ev[i].ident);
				failed = 1;
			}
			evq_del(q, ev[i].id);
			left--;
		}
	}
	evq_free(q);

	int max = atomic_load(&sh->max_running), done = atomic_load(&sh->done);
	int value = evq_sem_value(&sh->tokens);
	printf("%d workers, %d tokens: %d of %d jobs done, at most %d at once, "
	       "%d tokens back\n", started, k, done, started * jobs, max, value);
	if (failed || max > k || done != started * jobs || value != k) {
		printf("FAILED\n");
		return 1;
	}
	printf("ok\n");
	return 0;
}
