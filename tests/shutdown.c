/* SPDX-License-Identifier: MIT */
/*
 * shutdown.c - evq_shutdown() (issue 12, item 6): N threads asleep in
 * evq_wait(-1) on every sleep shape a backend has all return -ESHUTDOWN,
 * whoever calls it (another thread, a signal handler in a thread that does
 * not wait, a signal handler run by one of the sleepers); every later call
 * returns -ESHUTDOWN at once, also with timeout 0 and with events pending;
 * registrations can still be deleted, added and triggered; evq_free last.
 *
 * Sleep shapes (on io_uring; epoll has one, epoll_pwait2): a plain queue
 * (the leader sleeps inline on the bell, or in the ring with
 * EVQ_URING_INLINE=0, the others follow on a futex word), an fd (the
 * leader in the ring with an EPOLL_WAIT), a word (inline futex_waitv, or
 * the ring's FUTEX_WAIT), a far timer (one sleeper keeps its deadline),
 * and callers passing a sigmask (every one of them in the ring).
 */
#include <pthread.h>
#include <sched.h>

#include "evqtest.h"
#include "internal.h"

#define N 8

#define BAIL_OUT_HUNG()                                                      \
	do {                                                                 \
		printf("Bail out! sleepers did not return\n");               \
		exit(1);                                                     \
	} while (0)


enum shape { PLAIN, FD, WORD, TIMER, SIGMASK, NSHAPES };
static const char *const shape_name[NSHAPES] = { "plain", "fd", "word", "far timer",
						  "sigmask" };

static struct evq *q;
static enum shape cur;
static sigset_t cur_mask;
static pthread_t th[N];
static _Atomic pid_t tid[N];
static _Atomic int rc[N];
static _Atomic int returned;

static void *sleeper(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct evq_event ev[4];
	atomic_store(&tid[i], evqt_gettid());
	int r;
	do
		r = evq_wait(q, ev, 4, -1, cur == SIGMASK ? &cur_mask : NULL);
	while (r == -EINTR); /* a handler ran here before shutdown (not expected) */
	atomic_store(&rc[i], r);
	atomic_fetch_add(&returned, 1);
	return NULL;
}

/* All N threads sleep in the backend's wait on q. */
static int all_asleep(void)
{
	for (int i = 0; i < N; i++) {
		pid_t t = atomic_load(&tid[i]);
		if (t == 0 || !evqt_sleeping_in(q, t))
			return 0;
	}
	return atomic_load(&q->sleepers) == N;
}

static void start(void)
{
	atomic_store(&returned, 0);
	for (int i = 0; i < N; i++) {
		atomic_store(&tid[i], 0);
		atomic_store(&rc[i], 1);
		CHECK(pthread_create(&th[i], NULL, sleeper, (void *)(intptr_t)i) == 0);
	}
}

/* After shutdown: every sleeper came back with -ESHUTDOWN. */
static void finish(const char *what)
{
	ok(evqt_until(atomic_load(&returned) == N), "%s: all %d sleepers returned", what, N);
	int bad = 0;
	for (int i = 0; i < N; i++)
		bad += atomic_load(&rc[i]) != -ESHUTDOWN;
	is(bad, 0, "%s: every one with -ESHUTDOWN", what);
	if (atomic_load(&returned) != N)
		BAIL_OUT_HUNG();
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	is(atomic_load(&q->sleepers), 0, "%s: no sleeper counted", what);
}

/* Calls after shutdown return at once. */
static void after(const char *what)
{
	struct evq_event ev[4];
	is(evq_wait(q, ev, 4, -1, NULL), -ESHUTDOWN, "%s: a later wait(-1)", what);
	is(evq_wait(q, ev, 4, 0, NULL), -ESHUTDOWN, "%s: a later poll", what);
	is(evq_wait(q, ev, 4, 3600 * EVQT_SEC, &cur_mask), -ESHUTDOWN,
	   "%s: a later wait(1 h, sigmask)", what);
	is(evq_shutdown(q), 0, "%s: evq_shutdown again", what);
}

static uint32_t word;
static int pfd[2];

/* A queue with the sources of shape s; the ids in ids[0..*n). */
static void setup(enum shape s, int64_t *ids, int *n)
{
	q = evqt_new();
	cur = s;
	*n = 0;
	if (s == FD) {
		CHECK(pipe(pfd) == 0);
		ids[(*n)++] = evq_add_fd(q, pfd[0], EVQ_READ, 0, 1);
	} else if (s == WORD) {
		word = 0;
		ids[(*n)++] = evq_add_word(q, &word, 0, 0, 2);
	} else if (s == TIMER) {
		ids[(*n)++] = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 3);
	}
	for (int i = 0; i < *n; i++)
		CHECK(ids[i] >= 0);
}

static void teardown(enum shape s, const int64_t *ids, int n, const char *what)
{
	int bad = 0;
	for (int i = 0; i < n; i++)
		bad += evq_del(q, ids[i]) != 0;
	is(bad, 0, "%s: evq_del after shutdown", what);
	evq_free(q);
	q = NULL;
	if (s == FD) {
		close(pfd[0]);
		close(pfd[1]);
	}
}

/* ---- from another thread ---- */

static void from_thread(enum shape s)
{
	char what[64];
	int64_t ids[4];
	int n;
	snprintf(what, sizeof what, "%s, from a thread", shape_name[s]);
	if (s == WORD && !evqt_have_futex_waitv()) {
		skip(10, EVQT_NO_WAITV);
		return;
	}
	setup(s, ids, &n);
	start();
	ok(evqt_until(all_asleep()), "%s: %d threads asleep in evq_wait", what, N);
	is(evq_shutdown(q), 0, "%s: evq_shutdown", what);
	finish(what);
	after(what);
	teardown(s, ids, n, what);
}

/* ---- from a signal handler ---- */

static void on_usr1(int sig)
{
	(void)sig;
	int saved = errno;
	if (evq_shutdown(q) != 0)
		abort();
	if (errno != saved)
		abort(); /* it preserves errno */
}

/* in_sleeper: the handler runs in one of the sleeping threads (the
 * signal interrupts its sleep); else in this thread, the only one that
 * does not block SIGUSR1 (sigqueue to the process). */
static void from_handler(enum shape s, int in_sleeper)
{
	char what[80];
	int64_t ids[4];
	int n;
	snprintf(what, sizeof what, "%s, from a handler in %s", shape_name[s],
		 in_sleeper ? "a sleeper" : "another thread");
	if (s == WORD && !evqt_have_futex_waitv()) {
		skip(9, EVQT_NO_WAITV);
		return;
	}
	setup(s, ids, &n);
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (!in_sleeper)
		pthread_sigmask(SIG_BLOCK, &usr1, &old); /* inherited by the sleepers */
	start();
	if (!in_sleeper)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	ok(evqt_until(all_asleep()), "%s: %d threads asleep in evq_wait", what, N);
	if (in_sleeper) {
		CHECK(pthread_kill(th[N / 2], SIGUSR1) == 0);
	} else {
		union sigval v = { 0 };
		CHECK(sigqueue(getpid(), SIGUSR1, v) == 0);
	}
	finish(what);
	after(what);
	teardown(s, ids, n, what);
}

/* ---- pending events, registrations after shutdown ---- */

static void pending(void)
{
	struct evq_event ev[4];
	q = evqt_new();
	int64_t u = evq_add_user(q, 7), t = evq_add_timer(q, CLOCK_MONOTONIC, 0, 0, 0, 8);
	CHECK(u >= 0 && t >= 0);
	CHECK(evq_trigger(q, u) == 0);
	is(evq_shutdown(q), 0, "pending: evq_shutdown with a trigger and an expired timer");
	is(evq_wait(q, ev, 4, -1, NULL), -ESHUTDOWN, "pending: evq_wait says -ESHUTDOWN");
	is(evq_wait(q, ev, 4, 0, NULL), -ESHUTDOWN, "pending: ... also a poll");
	/* registrations keep working; nothing is delivered */
	int64_t u2 = evq_add_user(q, 9);
	ok(u2 >= 0, "pending: evq_add_user after shutdown: %lld", (long long)u2);
	is(evq_trigger(q, u2), 0, "pending: evq_trigger after shutdown");
	is(evq_mod(q, u, 0, EVQ_DISABLED), 0, "pending: evq_mod after shutdown");
	is(evq_del(q, u), 0, "pending: evq_del of the triggered event");
	is(evq_del(q, t), 0, "pending: evq_del of the expired timer");
	is(evq_del(q, u2), 0, "pending: evq_del of the later one");
	is(evq_del(q, u2), -ENOENT, "pending: ... once");
	is(evq_wait(q, ev, 4, 0, NULL), -ESHUTDOWN, "pending: still -ESHUTDOWN");
	evq_free(q);
	q = NULL;
}

static void bad_args(void)
{
	is(evq_shutdown(NULL), -EINVAL, "evq_shutdown(NULL)");
}

/* Shutdown racing with threads that are entering and leaving evq_wait
 * (short timeouts, triggers flowing): every thread still ends with
 * -ESHUTDOWN. */
static _Atomic int race_stop;
static int64_t race_user;

static void *racer(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct evq_event ev[2];
	int r;
	for (;;) {
		static const int64_t t[3] = { -1, 0, 100000 };
		r = evq_wait(q, ev, 1 + i % 2, t[i % 3], NULL);
		if (r < 0 && r != -EINTR)
			break;
	}
	atomic_store(&rc[i], r);
	atomic_fetch_add(&returned, 1);
	return NULL;
}

static void *trigger_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&race_stop))
		evq_trigger(q, race_user);
	return NULL;
}

static void race(void)
{
	long rounds = evqt_scale(50);
	int bad = 0, hung = 0;
	for (long r = 0; r < rounds && !hung; r++) {
		q = evqt_new();
		race_user = evq_add_user(q, 1);
		CHECK(race_user >= 0);
		atomic_store(&race_stop, 0);
		atomic_store(&returned, 0);
		pthread_t tr;
		CHECK(pthread_create(&tr, NULL, trigger_loop, NULL) == 0);
		for (int i = 0; i < N; i++) {
			atomic_store(&rc[i], 1);
			CHECK(pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i) == 0);
		}
		if (r % 2)
			sched_yield();
		CHECK(evq_shutdown(q) == 0);
		if (!evqt_until(atomic_load(&returned) == N)) {
			hung = 1;
			break;
		}
		for (int i = 0; i < N; i++) {
			pthread_join(th[i], NULL);
			bad += atomic_load(&rc[i]) != -ESHUTDOWN;
		}
		atomic_store(&race_stop, 1);
		pthread_join(tr, NULL);
		CHECK(evq_del(q, race_user) == 0);
		evq_free(q);
		q = NULL;
	}
	ok(!hung, "race: shutdown while %d threads come and go, %ld rounds", N, rounds);
	if (hung)
		BAIL_OUT_HUNG();
	is(bad, 0, "race: every thread ended with -ESHUTDOWN");
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("evq_shutdown");
	sigemptyset(&cur_mask);
	pthread_sigmask(SIG_BLOCK, NULL, &cur_mask);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);

	bad_args();
	for (int s = 0; s < NSHAPES; s++)
		from_thread((enum shape)s);
	from_handler(PLAIN, 0);
	from_handler(PLAIN, 1);
	from_handler(WORD, 1);
	from_handler(FD, 1);
	pending();
	race();
	done();
}
