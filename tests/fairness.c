/* SPDX-License-Identifier: MIT */
/*
 * fairness.c - no ready source starves while another keeps the queue busy
 * (evq_wait(3) FAIRNESS; src/core/wait.c F1-F3).
 *
 * Every pair of
 *   busy source: a user event its handler re-triggers, an always-ready
 *                regular file, a 1 us periodic timer, a caller that only
 *                polls (timeout 0), a broadcaster its handler re-notifies;
 *   victim:      fd, word, latch, semaphore, signal, pid, timer, mask,
 *                sigevent;
 * with max = 1 and max = 64: once the victim is ready, it must come out of
 * the first or the second evq_wait() call, and the busy source must go on
 * being delivered too.
 *
 * "Ready" is when the library can know: at once for kernel-side sources
 * (a pipe written, a signal sent, a child exited, a timer's deadline
 * passed, a word changed on io_uring, which watches words itself); for a
 * source a helper thread of the library watches (words and latches on
 * epoll, semaphores everywhere) when that thread has posted it - the test
 * waits for that (white box: the registration's post is queued) with a
 * deadline, never a sleep.
 */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h" /* the post queued bit: "a helper thread posted it" */

enum busy { B_TRIGGER, B_FILE, B_TIMER, B_POLL, B_MASK, NBUSY };
enum victim { V_FD, V_WORD, V_LATCH, V_SEM, V_SIGNAL, V_PID, V_TIMER, V_MASK,
	      V_SIGEVENT, NVICTIM };

static const char *const busy_name[NBUSY] = {
	"re-triggered user event", "always-ready file", "1us periodic timer",
	"0-timeout polling caller", "re-notified mask",
};
static const char *const victim_name[NVICTIM] = {
	"fd", "word", "latch", "sem", "signal", "pid", "timer", "mask", "sigevent",
};

#define BUSY_COOKIE 1
#define VICTIM_COOKIE 2
#define LIMIT 1000 /* calls before we call it starvation */

struct scene {
	struct evq *q;
	enum busy busy;
	enum victim victim;
	int64_t busy_id, victim_id;
	int file;                  /* B_FILE */
	struct evq_bcast bb, vb;   /* B_MASK, V_MASK */
	int pipe[2];               /* V_FD; V_PID: the child's exit switch */
	uint32_t word;             /* V_WORD */
	struct evq_latch latch;    /* V_LATCH */
	struct evq_sem sem;        /* V_SEM */
	pid_t child;               /* V_PID */
	timer_t timer;             /* V_SIGEVENT */
	int64_t deadline;          /* V_TIMER */
};

static int uring(struct evq *q)
{
	return strcmp(evq_backend_name(q), "uring") == 0;
}

static void busy_setup(struct scene *s)
{
	struct evq *q = s->q;
	s->busy_id = -1;
	switch (s->busy) {
	case B_TRIGGER:
		s->busy_id = evq_add_user(q, BUSY_COOKIE);
		CHECK(s->busy_id >= 0 && evq_trigger(q, s->busy_id) == 0);
		break;
	case B_FILE: {
		char path[] = "/tmp/evq-fairness-XXXXXX";
		s->file = mkstemp(path);
		CHECK(s->file >= 0);
		unlink(path);
		s->busy_id = evq_add_fd(q, s->file, EVQ_READ, 0, BUSY_COOKIE);
		CHECK(s->busy_id >= 0);
		break;
	}
	case B_TIMER:
		s->busy_id = evq_add_timer(q, CLOCK_MONOTONIC, 1000, 1000, 0, BUSY_COOKIE);
		CHECK(s->busy_id >= 0);
		break;
	case B_POLL:
		break;
	case B_MASK:
		CHECK(evq_bcast_init(&s->bb) == 0);
		s->busy_id = evq_add_mask(q, &s->bb, 2, BUSY_COOKIE);
		CHECK(s->busy_id >= 0 && evq_bcast_notify(&s->bb, 2) == 0);
		break;
	case NBUSY:
		break;
	}
}

/* The busy source's handler: keep it busy. */
static void busy_handle(struct scene *s)
{
	if (s->busy == B_TRIGGER)
		CHECK(evq_trigger(s->q, s->busy_id) == 0);
	else if (s->busy == B_MASK)
		CHECK(evq_bcast_notify(&s->bb, 2) == 0);
}

/* 1, or 0 when the kernel (or valgrind) lacks what the victim needs. */
static int victim_setup(struct scene *s)
{
	struct evq *q = s->q;
	const uint64_t c = VICTIM_COOKIE;
	switch (s->victim) {
	case V_FD:
		CHECK(pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC) == 0);
		s->victim_id = evq_add_fd(q, s->pipe[0], EVQ_READ, 0, c);
		break;
	case V_WORD:
		s->word = 0;
		s->victim_id = evq_add_word(q, &s->word, 0, 0, c);
		break;
	case V_LATCH:
		CHECK(evq_latch_init(&s->latch, 0) == 0);
		s->victim_id = evq_add_latch(q, &s->latch, 0, c);
		break;
	case V_SEM:
		CHECK(evq_sem_init(&s->sem, 0, 0) == 0);
		s->victim_id = evq_add_sem(q, &s->sem, 0, c);
		break;
	case V_SIGNAL:
		s->victim_id = evq_add_signal(q, SIGUSR1, c);
		break;
	case V_PID:
		CHECK(pipe2(s->pipe, O_CLOEXEC) == 0);
		s->child = fork();
		CHECK(s->child >= 0);
		if (s->child == 0) {
			char b;
			close(s->pipe[1]);
			while (read(s->pipe[0], &b, 1) < 0 && errno == EINTR)
				;
			_exit(7);
		}
		close(s->pipe[0]);
		s->victim_id = evq_add_pid(q, s->child, 0, c);
		break;
	case V_TIMER:
		s->victim_id = -1; /* added when made ready */
		break;
	case V_MASK:
		CHECK(evq_bcast_init(&s->vb) == 0);
		s->victim_id = evq_add_mask(q, &s->vb, 1, c);
		break;
	case V_SIGEVENT: {
		struct sigevent sev;
		s->victim_id = evq_sigevent(q, c, &sev);
		if (s->victim_id < 0 && getenv("EVQ_TEST_VALGRIND"))
			return 0; /* valgrind keeps SIGRTMAX for itself */
		CHECK(s->victim_id >= 0);
		CHECK(timer_create(CLOCK_MONOTONIC, &sev, &s->timer) == 0);
		break;
	}
	case NVICTIM:
		break;
	}
	if (s->victim_id == -ENOSYS && s->victim == V_PID) {
		/* no pidfd_open (valgrind 3.19): the child is not watched */
		close(s->pipe[1]);
		waitpid(s->child, NULL, 0);
		s->child = -1;
		return 0;
	}
	CHECK(s->victim == V_TIMER || s->victim_id >= 0);
	return 1;
}

/* 1 once a helper thread of the library posted the victim's event: the
 * registration is on the post stack (its queued bit is set before the push,
 * so it alone says too early).  Only this thread drains the stack, and it
 * is not in evq_wait now: walking it races with pushes only. */
static int posted(struct evq *q, int64_t id)
{
	uint32_t idx = (uint32_t)id & EVQ_IDX_MASK;
	for (int32_t i = atomic_load(&q->post_head); i >= 0;
	     i = atomic_load(&evq__slot(q, (uint32_t)i)->post_next))
		if ((uint32_t)i == idx)
			return 1;
	return 0;
}

static int signal_pending(int signo)
{
	sigset_t set;
	CHECK(sigpending(&set) == 0);
	return sigismember(&set, signo);
}

static int child_exited(pid_t pid)
{
	siginfo_t si = { 0 };
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == pid;
}

/* Makes the victim ready, then waits (with a deadline, never a sleep)
 * until the library can know it.  0 if it never became observable. */
static int victim_fire(struct scene *s)
{
	struct evq *q = s->q;
	switch (s->victim) {
	case V_FD:
		CHECK(write(s->pipe[1], "x", 1) == 1);
		return 1;
	case V_WORD:
		__atomic_store_n(&s->word, 1, __ATOMIC_SEQ_CST);
		CHECK(evq_wake(&s->word, INT_MAX, 0) >= 0);
		if (uring(q))
			return 1;
		break;
	case V_LATCH:
		CHECK(evq_latch_set(&s->latch) == 0);
		if (uring(q))
			return 1;
		break;
	case V_SEM:
		CHECK(evq_sem_post(&s->sem, 1) == 0);
		break;
	case V_SIGNAL:
		CHECK(kill(getpid(), SIGUSR1) == 0);
		return 1;
	case V_PID:
		close(s->pipe[1]);
		break;
	case V_TIMER:
		s->victim_id = evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, 0, 0,
					     VICTIM_COOKIE);
		CHECK(s->victim_id >= 0);
		/* read after the add: at or after the timer's own deadline */
		s->deadline = evqt_now(CLOCK_MONOTONIC) + EVQT_MS;
		break;
	case V_MASK:
		CHECK(evq_bcast_notify(&s->vb, 1) == 0);
		return 1;
	case V_SIGEVENT: {
		struct itimerspec its = { { 0, 0 }, { 0, 1 } };
		CHECK(timer_settime(s->timer, 0, &its, NULL) == 0);
		break;
	}
	case NVICTIM:
		break;
	}
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (evqt_now(CLOCK_MONOTONIC) < until) {
		int ready = 0;
		switch (s->victim) {
		case V_WORD: case V_LATCH: case V_SEM:
			ready = posted(q, s->victim_id);
			break;
		case V_PID:
			ready = child_exited(s->child);
			break;
		case V_TIMER:
			ready = evqt_now(CLOCK_MONOTONIC) >= s->deadline;
			break;
		case V_SIGEVENT:
			ready = signal_pending(SIGRTMAX);
			break;
		default:
			ready = 1;
		}
		if (ready)
			return 1;
		sched_yield();
	}
	return 0;
}

static void victim_handle(struct scene *s, const struct evq_event *ev)
{
	char b[8];
	if (s->victim == V_FD)
		CHECK(read(s->pipe[0], b, sizeof b) == 1);
	(void)ev;
}

static void scene_free(struct scene *s)
{
	if (s->victim == V_SIGEVENT)
		timer_delete(s->timer);
	evq_free(s->q);
	if (s->busy == B_FILE)
		close(s->file);
	if (s->busy == B_MASK)
		evq_bcast_destroy(&s->bb);
	if (s->victim == V_FD && s->pipe[0] >= 0) {
		close(s->pipe[0]);
		close(s->pipe[1]);
	}
	if (s->victim == V_PID && s->child > 0)
		waitpid(s->child, NULL, WNOHANG); /* reaped by evq already */
	if (s->victim == V_MASK)
		evq_bcast_destroy(&s->vb);
	/* a signal delivered but never read would fire the next scene */
	while (signal_pending(SIGUSR1)) {
		sigset_t set;
		int sig;
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigwait(&set, &sig);
	}
}

/* One call; counts what it delivered in *victim and *busy. */
static int one_wait(struct scene *s, int max, int *victim, int *busy)
{
	struct evq_event ev[64];
	int64_t timeout = s->busy == B_POLL ? 0 : EVQT_SOON;
	int n = evqt_wait(s->q, ev, max, timeout);
	if (n < 0)
		return n;
	int handled_busy = 0;
	for (int i = 0; i < n; i++) {
		if (ev[i].cookie == VICTIM_COOKIE && ev[i].id == s->victim_id) {
			++*victim;
			victim_handle(s, &ev[i]);
		} else if (ev[i].cookie == BUSY_COOKIE && ev[i].id == s->busy_id) {
			++*busy;
			handled_busy = 1;
		} else {
			return -1000; /* a record nobody registered */
		}
	}
	if (handled_busy)
		busy_handle(s);
	return n;
}

static void run(enum busy b, enum victim v, int max)
{
	struct scene s;
	memset(&s, 0, sizeof s);
	s.busy = b;
	s.victim = v;
	s.q = evqt_new();
	busy_setup(&s);
	if (!victim_setup(&s)) {
		skip(1, v == V_PID ? "no pidfd_open here"
				   : "SIGRTMAX is valgrind's own");
		s.victim = V_FD; /* nothing of the victim's to free */
		s.pipe[0] = s.pipe[1] = -1;
		scene_free(&s);
		return;
	}

	/* steady state: the busy source is delivered call after call */
	int vic = 0, busy = 0, bad = 0;
	for (int i = 0; i < 4; i++)
		bad |= one_wait(&s, max, &vic, &busy) < 0;
	int warm_ok = !bad && vic == 0 && (b == B_POLL || busy >= 2);

	int observable = victim_fire(&s);
	int calls = 0;
	busy = 0;
	while (vic == 0 && calls < LIMIT && !bad) {
		calls++;
		bad |= one_wait(&s, max, &vic, &busy) < 0;
	}
	/* and the busy source is not starved by the victim's handling */
	int after = 0;
	for (int i = 0; i < 3 && b != B_POLL && !bad; i++)
		bad |= one_wait(&s, max, &vic, &after) < 0;

	ok(warm_ok && observable && !bad && vic == 1 && calls <= 2 &&
		   (b == B_POLL || after > 0),
	   "%s, victim %s, max %d: victim in call %d (<= 2)%s%s%s", busy_name[b],
	   victim_name[v], max, calls, warm_ok ? "" : " [busy source not steady]",
	   observable ? "" : " [victim never became ready]",
	   b == B_POLL || after > 0 ? "" : " [busy source starved afterwards]");
	scene_free(&s);
}

int main(void)
{
	evqt_watchdog(240);
	/* signals a queue takes are blocked in every thread (the signalfd
	 * rule), before any helper thread exists */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMAX);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
	evqt_banner("fairness");
	int futex_waitv = evqt_have_futex_waitv();
	static const int maxes[] = { 1, 64 };
	for (int b = 0; b < NBUSY; b++)
		for (int v = 0; v < NVICTIM; v++)
			for (int m = 0; m < 2; m++) {
				int watched = v == V_WORD || v == V_LATCH || v == V_SEM;
				if (watched && !futex_waitv) {
					skip(1, EVQT_NO_WAITV);
					continue;
				}
				run((enum busy)b, (enum victim)v, maxes[m]);
			}
	return done();
}
