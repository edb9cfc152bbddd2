/* SPDX-License-Identifier: MIT */
/*
 * user.c - user events: evq_add_user/evq_trigger coalesce (data = count),
 * wake a thread blocked in evq_wait from another thread and from a signal
 * handler (async-signal-safe, errno preserved, lock-free even when the
 * handler interrupts evq_wait), EVQ_ONESHOT and EVQ_DISABLED through
 * evq_mod, -EINVAL for another kind's id, -ENOENT for stale ones.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 16
#define QUIET (20 * EVQT_MS)

static void test_coalesce(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 0xdeadbeefcafeull);
	ok(id >= 0, "coalesce: evq_add_user -> id %" PRId64 "", id);
	/* Not triggered: nothing. */
	is(evqt_wait(q, ev, NEV, 0), 0, "coalesce: untriggered -> no event");
	int r = 0;
	for (int i = 0; i < 5; i++)
		r |= evq_trigger(q, id);
	is(r, 0, "coalesce: 5 triggers return 0");
	/* Five triggers, one event with data 5 and exact fields. */
	int n = evqt_wait(q, ev, NEV, 0);
	is(n, 1, "coalesce: one event");
	ok(ev[0].cookie == 0xdeadbeefcafeull && ev[0].id == id &&
		   ev[0].kind == EVQ_KIND_USER && ev[0].ident == -1 &&
		   ev[0].events == 0 && ev[0].flags == 0,
	   "coalesce: fields exact (kind=%u ident=%d events=%#x flags=%#x)",
	   ev[0].kind, ev[0].ident, ev[0].events, ev[0].flags);
	is(ev[0].data, 5, "coalesce: data == 5");
	/* Delivered: the count restarts. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "coalesce: nothing after delivery");
	CHECK(evq_trigger(q, id) == 0);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == 1, "coalesce: next trigger -> data 1");

	long many = evqt_scale(100000);
	for (long i = 0; i < many; i++)
		CHECK(evq_trigger(q, id) == 0);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == (uint64_t)many,
	   "coalesce: %ld triggers -> one event, data %llu", many,
	   (unsigned long long)ev[0].data);

	/* Several user events: each its own event and count. */
	int64_t ids[4];
	for (int i = 0; i < 4; i++) {
		ids[i] = evq_add_user(q, 100 + (uint64_t)i);
		CHECK(ids[i] >= 0);
		for (int k = 0; k <= i; k++)
			CHECK(evq_trigger(q, ids[i]) == 0);
	}
	n = evqt_wait(q, ev, NEV, 0);
	int good = n == 4;
	for (int k = 0; k < n; k++) {
		uint64_t i = ev[k].cookie - 100;
		good &= i < 4 && ev[k].id == ids[i] && ev[k].data == i + 1;
	}
	ok(good, "coalesce: 4 user events, each with its own count (n=%d)", n);
	evq_free(q);
}

/* Acts on q once thread tid sleeps in evq_wait on it (it was: after
 * 30 ms, when it was asleep most likely).  asleep: it was seen asleep. */
struct later {
	struct evq *q;
	int64_t id;
	pid_t tid;
	int rc, asleep;
};

static void *trigger_later(void *arg)
{
	struct later *l = arg;
	l->asleep = evqt_until(evqt_sleeping_in(l->q, l->tid));
	l->rc = evq_trigger(l->q, l->id);
	return NULL;
}

static void *enable_later(void *arg)
{
	struct later *l = arg;
	l->asleep = evqt_until(evqt_sleeping_in(l->q, l->tid));
	l->rc = evq_mod(l->q, l->id, 0, 0);
	return NULL;
}

static void test_thread_wakes_waiter(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 3);
	CHECK(id >= 0);
	for (int round = 0; round < 3; round++) {
		struct later l = { q, id, evqt_gettid(), -1, 0 };
		pthread_t t;
		CHECK(pthread_create(&t, NULL, trigger_later, &l) == 0);
		/* Blocked forever until the other thread triggers. */
		int n = evqt_wait(q, ev, NEV, -1);
		pthread_join(t, NULL);
		ok(n == 1 && ev[0].id == id && ev[0].data == 1 && l.rc == 0,
		   "thread: trigger from another thread wakes evq_wait(-1) (round %d, n=%d)",
		   round, n);
		ok(l.asleep, "thread: the wait really slept (seen asleep in the kernel)");
	}
	evq_free(q);
}

/* ---- signal handlers ---- */

static struct evq *sig_q;
static int64_t sig_id;
static atomic_int sig_calls, sig_bad;

static void on_signal(int sig)
{
	(void)sig;
	int saved = errno;
	errno = 4242;
	int r = evq_trigger(sig_q, sig_id);
	if (r != 0 || errno != 4242)
		atomic_fetch_add(&sig_bad, 1);
	errno = saved;
	atomic_fetch_add(&sig_calls, 1);
}

static void install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* Raises SIGUSR1 once thread *arg sleeps in evq_wait on sig_q. */
static void *raise_later(void *arg)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	evqt_until(evqt_sleeping_in(sig_q, *(pid_t *)arg));
	raise(SIGUSR1); /* handled in this thread */
	return NULL;
}

static void test_signal_handler(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	sig_q = q;
	sig_id = evq_add_user(q, 77);
	CHECK(sig_id >= 0);
	install(SIGUSR1);

	/* In this thread, nobody waiting: handler's trigger is pending. */
	errno = 0;
	raise(SIGUSR1);
	is(atomic_load(&sig_calls), 1, "signal: handler ran");
	is(atomic_load(&sig_bad), 0, "signal: trigger in handler returned 0, errno preserved");
	int n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == sig_id && ev[0].data == 1 && ev[0].cookie == 77,
	   "signal: trigger from a handler delivered");

	/* In another thread while this one sleeps in evq_wait(-1) with the
	 * signal blocked: the handler's trigger must wake us. */
	sigset_t s, old;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, &old);
	pid_t me = evqt_gettid();
	pthread_t t;
	CHECK(pthread_create(&t, NULL, raise_later, &me) == 0);
	n = evqt_wait(q, ev, NEV, -1);
	pthread_join(t, NULL);
	ok(n == 1 && ev[0].id == sig_id && ev[0].data == 1,
	   "signal: handler in another thread wakes evq_wait(-1) (n=%d)", n);
	is(atomic_load(&sig_bad), 0, "signal: errno preserved when waking a sleeper");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	evq_free(q);
}

/* A thread signals the main thread N times (each signal handled before the
 * next is sent) while main busy-polls evq_wait, so handlers interrupt the
 * library at arbitrary points, with its lock held: every trigger counted,
 * no deadlock. */
static pthread_t main_thread;
static atomic_int stress_done;

static void *signaller(void *arg)
{
	long n = *(long *)arg;
	for (long i = 0; i < n; i++) {
		int before = atomic_load(&sig_calls);
		pthread_kill(main_thread, SIGUSR1);
		int64_t t0 = evqt_now(CLOCK_MONOTONIC);
		while (atomic_load(&sig_calls) == before) {
			if (evqt_now(CLOCK_MONOTONIC) - t0 > 10 * EVQT_SEC)
				break; /* main is stuck: the test will fail */
			sched_yield();
		}
	}
	atomic_store(&stress_done, 1);
	return NULL;
}

static void test_signal_stress(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	sig_q = q;
	sig_id = evq_add_user(q, 88);
	CHECK(sig_id >= 0);
	atomic_store(&sig_calls, 0);
	atomic_store(&sig_bad, 0);
	install(SIGUSR1);
	main_thread = pthread_self();
	long N = evqt_scale(2000);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, signaller, &N) == 0);
	uint64_t sum = 0;
	int errs = 0, intr = 0;
	for (long i = 0; !atomic_load(&stress_done); i++) {
		int n = evq_wait(q, ev, NEV, i % 4 == 3 ? EVQT_MS : 0, NULL);
		if (n == -EINTR) {
			intr++;
			continue;
		}
		if (n < 0)
			errs++;
		for (int k = 0; k < n; k++)
			sum += ev[k].id == sig_id ? ev[k].data : 0;
	}
	pthread_join(t, NULL);
	/* Everything posted before the last handler returned is visible. */
	for (;;) {
		int n = evq_wait(q, ev, NEV, 0, NULL);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			break;
		for (int k = 0; k < n; k++)
			sum += ev[k].id == sig_id ? ev[k].data : 0;
	}
	is(atomic_load(&sig_calls), N, "signal stress: %ld handlers ran", N);
	is(sum, atomic_load(&sig_calls), "signal stress: sum of data == handler calls");
	is(atomic_load(&sig_bad), 0, "signal stress: every trigger 0, errno preserved");
	is(errs, 0, "signal stress: no error other than -EINTR (%d EINTR)", intr);
	signal(SIGUSR1, SIG_IGN);
	evq_free(q);
}

static void test_oneshot_disabled(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 5);
	CHECK(id >= 0);
	/* ONESHOT through evq_mod: one delivery, then behaves as disabled. */
	is(evq_mod(q, id, 0, EVQ_ONESHOT), 0, "oneshot: evq_mod EVQ_ONESHOT");
	CHECK(evq_trigger(q, id) == 0);
	int n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].data == 1 && ev[0].flags == EVQ_ONESHOT,
	   "oneshot: delivered once with flags EVQ_ONESHOT (flags=%#x)", ev[0].flags);
	CHECK(evq_trigger(q, id) == 0);
	CHECK(evq_trigger(q, id) == 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: later triggers held back");
	/* Re-arming delivers the two kept triggers. */
	is(evq_mod(q, id, 0, EVQ_ONESHOT), 0, "oneshot: re-arm with evq_mod");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].data == 2,
	   "oneshot: re-armed -> kept count 2 delivered (data=%llu)",
	   (unsigned long long)ev[0].data);
	is(evqt_wait(q, ev, NEV, 0), 0, "oneshot: and silent again");

	/* DISABLED keeps the count and delivers it on enable. */
	is(evq_mod(q, id, 0, EVQ_DISABLED), 0, "disabled: evq_mod EVQ_DISABLED");
	for (int i = 0; i < 3; i++)
		CHECK(evq_trigger(q, id) == 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: triggers not delivered");
	is(evq_mod(q, id, 0, 0), 0, "disabled: enable");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].data == 3 && ev[0].flags == 0,
	   "disabled: enable delivers data 3 (data=%llu)", (unsigned long long)ev[0].data);
	/* Plain again: each trigger delivered. */
	CHECK(evq_trigger(q, id) == 0);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == 1, "disabled: back to normal");
	/* Enabling a registration with nothing pending delivers nothing. */
	is(evq_mod(q, id, 0, EVQ_DISABLED), 0, "disabled: disable again");
	is(evq_mod(q, id, 0, 0), 0, "disabled: enable again");
	is(evqt_wait(q, ev, NEV, 0), 0, "disabled: nothing pending -> no event");

	/* A waiter blocked in evq_wait(-1) is woken by another thread's
	 * enable of a disabled registration with kept triggers. */
	CHECK(evq_mod(q, id, 0, EVQ_DISABLED) == 0);
	CHECK(evq_trigger(q, id) == 0);
	pthread_t t;
	struct later l = { q, id, evqt_gettid(), -1, 0 };
	CHECK(pthread_create(&t, NULL, enable_later, &l) == 0);
	n = evqt_wait(q, ev, NEV, -1);
	pthread_join(t, NULL);
	ok(n == 1 && ev[0].id == id && ev[0].data == 1 && l.rc == 0,
	   "disabled: enable from another thread wakes the waiter (n=%d)", n);
	evq_free(q);
}

static void test_enoent(void)
{
	struct evq *q = evqt_new();
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	int64_t fid = evq_add_fd(q, sv[0], EVQ_READ, 0, 1);
	int64_t tid = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 2);
	int64_t uid = evq_add_user(q, 3);
	CHECK(fid >= 0 && tid >= 0 && uid >= 0);
	/* Only user registrations can be triggered: another kind's live id
	 * is -EINVAL, an id naming nothing -ENOENT. */
	is(evq_trigger(q, fid), -EINVAL, "einval: trigger on an fd id");
	is(evq_trigger(q, tid), -EINVAL, "einval: trigger on a timer id");
	is(evq_trigger(q, -1), -ENOENT, "enoent: trigger id -1");
	is(evq_trigger(q, 0x7fffffff), -ENOENT, "enoent: trigger id INT_MAX");
	is(evq_trigger(q, (int32_t)uid), -ENOENT, "enoent: id truncated to an int");
	is(evq_trigger(q, uid ^ ((int64_t)1 << 32)), -ENOENT, "enoent: wrong generation");
	is(evq_trigger(q, uid + 1000), -ENOENT, "enoent: unused slot");
	is(evq_trigger(NULL, uid), -EINVAL, "enoent: NULL queue -> -EINVAL");
	CHECK(evq_del(q, uid) == 0);
	is(evq_trigger(q, uid), -ENOENT, "enoent: deleted id");
	/* evq_add_user(NULL) fails. */
	is(evq_add_user(NULL, 0), -EINVAL, "enoent: evq_add_user(NULL) -> -EINVAL");
	ok(evqt_roundtrip(q), "enoent: queue still works");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("user");
	test_coalesce();
	test_thread_wakes_waiter();
	test_signal_handler();
	test_signal_stress();
	test_oneshot_disabled();
	test_enoent();
	return done();
}
