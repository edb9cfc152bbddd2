/* SPDX-License-Identifier: MIT */
/*
 * cancel.c - evq_wait() is a cancellation point on every backend, and a
 * cancelled waiter leaves the queue as it found it: no lock held, no
 * sleeper counted, no event or wakeup lost, other waiters unaffected
 * (evq_wait(3) CANCELLATION).
 *
 * Each scenario runs on a queue that sleeps the backend's ways: with an fd
 * registered (epoll_pwait2, or io_uring's ring with an EPOLL_WAIT), with
 * only a word (io_uring's inline futex_waitv; epoll's watcher thread), and
 * with a second waiter (io_uring's follower).  The cancel may land before,
 * during or right after the sleep; the checks hold in every case.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the thread is inside evq_wait" */

#define NEV 8

/* A thread that pthread_cancel() may end.  The cancellation unwinds with
 * longjmp, and clang's AddressSanitizer (14) then leaves the redzones of
 * the skipped frames poisoned: at thread exit its own runtime writes there
 * and reports an overflow that is not ours.  So such threads start here: a
 * frame without redzones whose outermost cleanup handler unpoisons the
 * stack below it.  (The library's own handlers do the same for the frames
 * below them: src/core/wait.c, evq__asan_unstale.) */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CANCEL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CANCEL_ASAN 1
#endif
#ifdef CANCEL_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
static __thread char *stack_lo; /* the thread's stack, taken at its start */

/* Unpoisons the thread's stack below this frame (no instrumented code and
 * no interceptor may run there first: both would trip over the stale
 * redzones). */
__attribute__((no_sanitize_address)) static void unpoison(void *arg)
{
	(void)arg;
	char *here = __builtin_frame_address(0);
	if (stack_lo && here > stack_lo)
		__asan_unpoison_memory_region(stack_lo, (size_t)(here - stack_lo));
}
#endif

struct start {
	void *(*fn)(void *);
	void *arg;
};

#ifdef CANCEL_ASAN
__attribute__((no_sanitize_address))
#endif
static void *cancellable(void *p)
{
	struct start st = *(struct start *)p;
	free(p);
	void *res = NULL;
#ifdef CANCEL_ASAN
	pthread_attr_t a;
	void *lo;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		if (pthread_attr_getstack(&a, &lo, &size) == 0)
			stack_lo = lo;
		pthread_attr_destroy(&a);
	}
	pthread_cleanup_push(unpoison, NULL);
#endif
	res = st.fn(st.arg);
#ifdef CANCEL_ASAN
	pthread_cleanup_pop(0);
#endif
	return res;
}

/* pthread_create for a thread that may be cancelled. */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	struct start *st = malloc(sizeof *st);
	if (!st)
		return ENOMEM;
	st->fn = fn;
	st->arg = arg;
	int rc = pthread_create(t, NULL, cancellable, st);
	if (rc)
		free(st);
	return rc;
}

/* Where the program is, for a report if it dies of SIGABRT: a sanitizer
 * with abort_on_error=1 (its report is on stderr, or in the log_path file
 * its options name), or the C library's abort.  TAP alone would only say
 * that the program died after the last "ok". */
static const char *volatile where = "start";
static volatile long where_round = -1;

static void say(char *buf, size_t *n, size_t cap, const char *s)
{
	while (*s && *n < cap)
		buf[(*n)++] = *s++;
}

static void aborted(int sig)
{
	char buf[512], num[24];
	size_t n = 0, k = 0;
	say(buf, &n, sizeof buf, "# cancel: SIGABRT during \"");
	say(buf, &n, sizeof buf, where);
	say(buf, &n, sizeof buf, "\"");
	if (where_round >= 0) {
		unsigned long r = (unsigned long)where_round;
		do
			num[k++] = (char)('0' + r % 10);
		while ((r /= 10) && k < sizeof num);
		say(buf, &n, sizeof buf, ", round ");
		while (k > 0 && n < sizeof buf)
			buf[n++] = num[--k];
	}
	say(buf, &n, sizeof buf, ": the reason is above on stderr (a sanitizer report, or in "
		"the file its log_path option names, or a C library message)\n");
	/* stdout for the TAP record, stderr for the log prove shows */
	if (write(1, buf, n) < 0 || write(2, buf, n) < 0) {
		/* dying anyway */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

enum shape { S_FD, S_WORD, S_PLAIN, NSHAPE };
static const char *const shape_name[NSHAPE] = { "with an fd", "with a word", "plain" };

struct scene {
	struct evq *q;
	int pipe[2];          /* S_FD: a registered, idle pipe */
	uint32_t word;        /* S_WORD: a registered word nobody changes */
	int64_t user;          /* a user event to trigger */
	int64_t edge;          /* an edge-triggered pipe's registration */
	int epipe[2];
	atomic_long got_user, got_edge; /* delivered to any waiter */
};

static void scene_new(struct scene *s, enum shape shape)
{
	memset(s, 0, sizeof *s);
	s->q = evqt_new();
	s->pipe[0] = s->pipe[1] = -1;
	if (shape == S_FD) {
		CHECK(pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC) == 0);
		CHECK(evq_add_fd(s->q, s->pipe[0], EVQ_READ, 0, 100) >= 0);
	} else if (shape == S_WORD) {
		CHECK(evq_add_word(s->q, &s->word, 0, 0, 101) >= 0);
	}
	s->user = evq_add_user(s->q, 1);
	CHECK(s->user >= 0);
	CHECK(pipe2(s->epipe, O_NONBLOCK | O_CLOEXEC) == 0);
	s->edge = evq_add_fd(s->q, s->epipe[0], EVQ_READ, EVQ_EDGE, 2);
	CHECK(s->edge >= 0);
}

static void scene_free(struct scene *s)
{
	evq_free(s->q);
	for (int i = 0; i < 2; i++) {
		if (s->pipe[i] >= 0)
			close(s->pipe[i]);
		close(s->epipe[i]);
	}
}

/* A waiter: counts what it gets until cancelled (or a stop cookie). */
static void *waiter(void *arg)
{
	struct scene *s = arg;
	struct evq_event ev[NEV];
	for (;;) {
		int n = evq_wait(s->q, ev, NEV, -1, NULL);
		/* The events are ours now: a cancel must not cut their
		 * handling short (read() is a cancellation point). */
		int old;
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		for (int i = 0; i < n; i++) {
			if (ev[i].cookie == 1)
				atomic_fetch_add(&s->got_user, (long)ev[i].data);
			else if (ev[i].cookie == 2) {
				char b[64];
				while (read(s->epipe[0], b, sizeof b) > 0)
					;
				atomic_fetch_add(&s->got_edge, 1);
			} else if (ev[i].cookie == 99) {
				return NULL; /* stop */
			}
		}
		pthread_setcancelstate(old, NULL);
	}
}

static int sleepers(struct evq *q)
{
	return atomic_load(&q->sleepers);
}

/* Waits (deadline, not a sleep) until n threads are inside the wait. */
static int until_sleepers(struct evq *q, int n)
{
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (sleepers(q) < n && evqt_now(CLOCK_MONOTONIC) < until)
		sched_yield();
	return sleepers(q) >= n;
}

/* Cancels t and joins it with a deadline: 1 if it ended cancelled. */
static int cancel_join(pthread_t t)
{
	void *res = NULL;
	pthread_cancel(t);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += EVQT_SOON / EVQT_SEC;
	if (pthread_timedjoin_np(t, &res, &dl) != 0)
		return 0;
	return res == PTHREAD_CANCELED;
}

static void stop_waiter(struct scene *s, pthread_t t)
{
	int64_t id = evq_add_user(s->q, 99);
	CHECK(id >= 0 && evq_trigger(s->q, id) == 0);
	pthread_join(t, NULL);
}

/* A lone waiter asleep forever is cancelled; the queue is left clean. */
static void test_asleep(enum shape shape)
{
	static const char *const name[NSHAPE] = { "asleep, with an fd", "asleep, with a word",
						  "asleep, plain" };
	where = name[shape];
	where_round = -1;
	struct scene s;
	scene_new(&s, shape);
	pthread_t a;
	CHECK(spawn(&a, waiter, &s) == 0);
	int asleep = until_sleepers(s.q, 1);
	int cancelled = cancel_join(a);
	ok(asleep && cancelled, "asleep, %s: pthread_cancel ends evq_wait(-1)",
	   shape_name[shape]);
	if (!cancelled) {
		/* the old io_uring backend: end it, or the test hangs */
		stop_waiter(&s, a);
		scene_free(&s);
		skip(4, "the waiter was not cancelled");
		return;
	}
	is(sleepers(s.q), 0, "asleep, %s: no sleeper counted afterwards", shape_name[shape]);
	/* no lock held: these return */
	int64_t id = evq_add_user(s.q, 5);
	ok(id >= 0 && evq_del(s.q, id) == 0, "asleep, %s: the queue's lock is free",
	   shape_name[shape]);
	/* another waiter is woken by a trigger and by a timer */
	pthread_t b;
	CHECK(spawn(&b, waiter, &s) == 0);
	CHECK(until_sleepers(s.q, 1));
	CHECK(evq_trigger(s.q, s.user) == 0);
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(&s.got_user) < 1 && evqt_now(CLOCK_MONOTONIC) < until)
		sched_yield();
	is(atomic_load(&s.got_user), 1, "asleep, %s: another waiter gets a trigger",
	   shape_name[shape]);
	int64_t tm = evq_add_timer(s.q, CLOCK_MONOTONIC, EVQT_MS, 0, 0, 99);
	CHECK(tm >= 0);
	void *res;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += EVQT_SOON / EVQT_SEC;
	ok(pthread_timedjoin_np(b, &res, &dl) == 0,
	   "asleep, %s: and a timer (its stop) fires for it", shape_name[shape]);
	scene_free(&s);
}

/* Two waiters asleep, events arriving while one of them is cancelled:
 * every trigger and every edge reaches the survivor (or was taken by the
 * cancelled one before it left, counted then): none lost. */
static void test_race(enum shape shape)
{
	static const char *const name[NSHAPE] = { "race, with an fd", "race, with a word",
						  "race, plain" };
	where = name[shape];
	struct scene s;
	scene_new(&s, shape);
	long rounds = evqt_scale(200), lost_user = 0, lost_edge = 0;
	int hung = 0;
	for (long r = 0; r < rounds && !hung; r++) {
		where_round = r;
		pthread_t a, b;
		long u0 = atomic_load(&s.got_user), e0 = atomic_load(&s.got_edge);
		CHECK(spawn(&a, waiter, &s) == 0);
		CHECK(spawn(&b, waiter, &s) == 0);
		if (!until_sleepers(s.q, 2)) {
			hung = 1;
			break;
		}
		/* the events and the cancel, in a varying order */
		int order = (int)(r % 3);
		if (order == 0)
			pthread_cancel(a);
		CHECK(evq_trigger(s.q, s.user) == 0);
		if (order == 1)
			pthread_cancel(a);
		CHECK(write(s.epipe[1], "x", 1) == 1);
		if (order == 2)
			pthread_cancel(a);
		void *res;
		pthread_join(a, &res);
		/* b must see both (unless a took them before it died) */
		int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
		while ((atomic_load(&s.got_user) < u0 + 1 || atomic_load(&s.got_edge) < e0 + 1) &&
		       evqt_now(CLOCK_MONOTONIC) < until)
			sched_yield();
		lost_user += atomic_load(&s.got_user) != u0 + 1;
		lost_edge += atomic_load(&s.got_edge) != e0 + 1;
		if (atomic_load(&s.got_user) != u0 + 1 || atomic_load(&s.got_edge) != e0 + 1)
			diag("round %ld order %d: triggers %ld, edges %ld (want 1 each); "
			     "sleepers %d wake_sent %d pend_head %d post_head %d",
			     r, order, atomic_load(&s.got_user) - u0,
			     atomic_load(&s.got_edge) - e0, sleepers(s.q),
			     atomic_load(&s.q->wake_sent), s.q->pend_head,
			     atomic_load(&s.q->post_head));
		stop_waiter(&s, b);
		if (sleepers(s.q) != 0)
			hung = 1;
	}
	ok(!hung && lost_user == 0 && lost_edge == 0,
	   "race, %s: %ld cancels while events arrive: triggers lost %ld, edges lost %ld%s",
	   shape_name[shape], rounds, lost_user, lost_edge,
	   hung ? " [a sleeper stayed counted or never slept]" : "");
	scene_free(&s);
}

/* A cancel pending when evq_wait is called acts at once, even with events
 * pending, and takes none of them. */
static void *pending_then_wait(void *arg)
{
	struct scene *s = arg;
	struct evq_event ev[NEV];
	pthread_cancel(pthread_self()); /* deferred: pending */
	evq_wait(s->q, ev, NEV, 0, NULL);
	return (void *)1; /* not reached when evq_wait is a cancellation point */
}

static void test_pending(void)
{
	where = "pending";
	where_round = -1;
	struct scene s;
	scene_new(&s, S_PLAIN);
	CHECK(evq_trigger(s.q, s.user) == 0);
	pthread_t a;
	void *res;
	CHECK(spawn(&a, pending_then_wait, &s) == 0);
	pthread_join(a, &res);
	ok(res == PTHREAD_CANCELED, "pending: a pending cancel acts at evq_wait's entry");
	struct evq_event ev[NEV];
	int n = evqt_wait(s.q, ev, NEV, 0);
	ok(n == 1 && ev[0].cookie == 1 && ev[0].data == 1,
	   "pending: the pending trigger is still there");
	scene_free(&s);
}

/* With cancellation disabled, evq_wait ends normally; the cancel waits for
 * the next cancellation point after it is enabled again. */
static void *disabled_wait(void *arg)
{
	struct scene *s = arg;
	struct evq_event ev[NEV];
	int old;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	int n = evq_wait(s->q, ev, NEV, -1, NULL);
	if (n == 1 && ev[0].cookie == 1)
		atomic_fetch_add(&s->got_user, 1);
	pthread_setcancelstate(old, NULL);
	pthread_testcancel();
	return NULL;
}

static void test_disabled(void)
{
	where = "disabled";
	where_round = -1;
	struct scene s;
	scene_new(&s, S_PLAIN);
	pthread_t a;
	void *res;
	CHECK(spawn(&a, disabled_wait, &s) == 0);
	CHECK(until_sleepers(s.q, 1));
	pthread_cancel(a);
	CHECK(evq_trigger(s.q, s.user) == 0);
	pthread_join(a, &res);
	ok(res == PTHREAD_CANCELED && atomic_load(&s.got_user) == 1,
	   "disabled: the wait ends with its event, the cancel acts afterwards");
	scene_free(&s);
}

/* Cancels landing anywhere in a thread that registers, deletes and waits
 * (signalfd reads, close() and waitid() run under the queue's lock): the
 * lock is never left held, and every real-time signal sent is delivered
 * exactly once (to the busy thread before it died, or afterwards). */
static atomic_long sig_got;
static int sig_no;

static void *churn(void *arg)
{
	struct evq *q = arg;
	struct evq_event ev[NEV];
	for (;;) {
		int64_t id = evq_add_user(q, 7);
		if (id >= 0)
			evq_del(q, id);
		int n = evq_wait(q, ev, NEV, 100 * 1000, NULL);
		for (int i = 0; i < n; i++)
			if (ev[i].kind == EVQ_KIND_SIGNAL)
				atomic_fetch_add(&sig_got, (long)(ev[i].data & 0xffffffffu));
	}
	return NULL;
}

static void test_churn(void)
{
	where = "churn";
	struct evq *q = evqt_new();
	sig_no = SIGRTMIN + 3;
	int64_t sid = evq_add_signal(q, sig_no, 3);
	CHECK(sid >= 0);
	long rounds = evqt_scale(200), sent = 0;
	int stuck = 0;
	for (long r = 0; r < rounds && !stuck; r++) {
		where_round = r;
		pthread_t t;
		CHECK(spawn(&t, churn, q) == 0);
		for (int i = 0; i < (int)(r % 5); i++) {
			union sigval v = { .sival_int = (int)r };
			if (sigqueue(getpid(), sig_no, v) == 0)
				sent++;
			sched_yield();
		}
		if (!cancel_join(t))
			stuck = 1;
		/* the lock is free: a registration goes through (the watchdog
		 * fails the program if it hangs) */
		int64_t id = evq_add_user(q, 8);
		stuck |= id < 0 || evq_del(q, id) != 0;
	}
	/* drain what the cancelled threads left */
	struct evq_event ev[NEV];
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(&sig_got) < sent && evqt_now(CLOCK_MONOTONIC) < until) {
		int n = evqt_wait(q, ev, NEV, 10 * EVQT_MS);
		for (int i = 0; i < n; i++)
			if (ev[i].kind == EVQ_KIND_SIGNAL)
				atomic_fetch_add(&sig_got, (long)(ev[i].data & 0xffffffffu));
	}
	ok(!stuck && atomic_load(&sig_got) == sent,
	   "churn: %ld cancels anywhere: lock never left held, %ld of %ld signals delivered",
	   rounds, atomic_load(&sig_got), sent);
	evq_free(q);
}

/* evq_waiter_wait is a cancellation point too; the waiter is reusable. */
static struct evq_waiter mw;

static void *mask_waiter(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)evq_waiter_wait(&mw, 1, -1);
}

static void test_waiter(void)
{
	where = "waiter";
	where_round = -1;
	CHECK(evq_waiter_init(&mw) == 0);
	pthread_t t;
	CHECK(spawn(&t, mask_waiter, NULL) == 0);
	/* asleep: its futex word says so (W2) */
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (__atomic_load_n(&mw.state, __ATOMIC_SEQ_CST) == 0 &&
	       evqt_now(CLOCK_MONOTONIC) < until)
		sched_yield();
	ok(cancel_join(t), "waiter: pthread_cancel ends evq_waiter_wait(-1)");
	CHECK(spawn(&t, mask_waiter, NULL) == 0);
	CHECK(evq_receiver_notify(&mw.receiver, 1) >= 0);
	void *res;
	pthread_join(t, &res);
	ok((uintptr_t)res == 1, "waiter: reusable afterwards (got %#lx)",
	   (unsigned long)(uintptr_t)res);
}

/* evq_sem_wait, evq_latch_wait and evq_waitv are cancellation points: a
 * cancelled sleeper leaves no count behind, and a token it may have been
 * woken for reaches the next sleeper. */
static struct evq_sem dsem;
static struct evq_latch dlatch;
static uint32_t dword;

static void *sem_sleeper(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)evq_sem_wait(&dsem, -1);
}

static void *latch_sleeper(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)evq_latch_wait(&dlatch, -1);
}

static void *waitv_sleeper(void *arg)
{
	(void)arg;
	struct evq_waitv w = { &dword, 0, 0 };
	return (void *)(intptr_t)evq_waitv(&w, 1, -1, 0);
}

static int until_u32(const uint32_t *p, uint32_t want)
{
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (__atomic_load_n(p, __ATOMIC_SEQ_CST) != want &&
	       evqt_now(CLOCK_MONOTONIC) < until)
		sched_yield();
	return __atomic_load_n(p, __ATOMIC_SEQ_CST) == want;
}

static void test_direct(void)
{
	where = "direct";
	where_round = -1;
	pthread_t t, u;
	void *res;
	/* semaphore: two sleepers, one cancelled as a token arrives */
	CHECK(evq_sem_init(&dsem, 0, 0) == 0);
	CHECK(spawn(&t, sem_sleeper, NULL) == 0);
	CHECK(spawn(&u, sem_sleeper, NULL) == 0);
	CHECK(until_u32(&dsem.waiters, 2));
	CHECK(evq_sem_post(&dsem, 1) == 0);
	pthread_cancel(t);
	pthread_join(t, &res);
	int t_took = res == (void *)0;
	/* the survivor gets the token unless the cancelled one took it first */
	if (t_took)
		CHECK(evq_sem_post(&dsem, 1) == 0);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += EVQT_SOON / EVQT_SEC;
	int joined = pthread_timedjoin_np(u, &res, &dl) == 0 && res == (void *)0;
	ok(joined && __atomic_load_n(&dsem.waiters, __ATOMIC_SEQ_CST) == 0 &&
		   evq_sem_value(&dsem) == 0,
	   "direct: evq_sem_wait cancelled as a token comes: the other sleeper gets it, "
	   "no waiter counted (cancelled one %s)", t_took ? "took it first" : "was cancelled");
	if (!joined) {
		evq_sem_post(&dsem, 1);
		pthread_join(u, NULL);
	}
	/* latch */
	CHECK(evq_latch_init(&dlatch, 0) == 0);
	CHECK(spawn(&t, latch_sleeper, NULL) == 0);
	CHECK(until_u32(&dlatch.waiters, 1));
	ok(cancel_join(t) && __atomic_load_n(&dlatch.waiters, __ATOMIC_SEQ_CST) == 0,
	   "direct: evq_latch_wait is a cancellation point; no waiter counted after");
	/* waitv */
	if (evqt_have_futex_waitv()) {
		dword = 0;
		CHECK(spawn(&t, waitv_sleeper, NULL) == 0);
		ok(cancel_join(t), "direct: evq_waitv is a cancellation point");
	} else {
		skip(1, EVQT_NO_WAITV);
	}
}

int main(void)
{
	evqt_watchdog(300);
	signal(SIGABRT, aborted);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 3);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
	evqt_banner("cancel");
	int waitv = evqt_have_futex_waitv();
	for (int sh = 0; sh < NSHAPE; sh++) {
		if (sh == S_WORD && !waitv) {
			skip(7, EVQT_NO_WAITV);
			continue;
		}
		test_asleep((enum shape)sh);
		test_race((enum shape)sh);
	}
	test_pending();
	test_disabled();
	test_churn();
	test_waiter();
	test_direct();
	return done();
}
