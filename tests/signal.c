/* SPDX-License-Identifier: MIT */
/*
 * signal.c - evq_add_signal: synchronous delivery with exact fields, count
 * and coalescing (standard signals merge, real-time ones queue), sender pid
 * and sigqueue() value, wakes a sleeping waiter, the handler path for a
 * thread that did not block the signal, disabled/oneshot through evq_mod,
 * mask and disposition restored by evq_del/evq_free (pending instances
 * discarded), SIGCHLD not lost to SIG_IGN, floods counted exactly,
 * requeue, several waiter threads counting every signal once, a signal
 * unblocked by evq_wait()'s sigmask counted once, one
 * registration per signal per process (-EBUSY), fork (the
 * child registers anew, frees the inherited queue, the parent keeps its
 * signal), and invalid signals refused with the queue usable after.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 16
#define QUIET (20 * EVQT_MS)

static atomic_int old_handler_calls;
static void old_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&old_handler_calls, 1);
}

static int blocked(int sig)
{
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	return sigismember(&cur, sig);
}

static void set_blocked(int sig, int on)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	CHECK(pthread_sigmask(on ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL) == 0);
}

static void install_old(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = old_handler;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0);
}

static void (*current_handler(int sig))(int)
{
	struct sigaction sa;
	CHECK(sigaction(sig, NULL, &sa) == 0);
	return sa.sa_handler;
}

static void test_bad_input(void)
{
	struct evq *q = evqt_new();
	static const int bad[] = { 0,       -1,     SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
				   SIGILL,  SIGFPE, SIGTRAP, SIGSYS,  32,      33,
				   65,      1000 };
	is(evq_add_signal(NULL, SIGUSR1, 0), -EINVAL, "bad: NULL queue -> -EINVAL");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int sig = bad[i];
		if (sig == 32 || sig == 33)
			if (sig >= SIGRTMIN)
				continue; /* not a C library that keeps them */
		/* Unblockable, a fault, reserved or out of range: refused. */
		is(evq_add_signal(q, sig, 1), -EINVAL, "bad: signal %d -> -EINVAL", sig);
	}
	is(evq_add_signal(q, SIGRTMAX + 1, 1), -EINVAL, "bad: SIGRTMAX+1 -> -EINVAL");
	/* Refusals leave no trace: nothing blocked, queue usable. */
	ok(!blocked(SIGKILL) && !blocked(SIGSTOP), "bad: nothing blocked by refusals");
	ok(evqt_roundtrip(q), "bad: queue usable after errors");
	evq_free(q);
}

static void test_basic(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	install_old(SIGUSR1);
	set_blocked(SIGUSR1, 0);
	int64_t id = evq_add_signal(q, SIGUSR1, 0x5151);
	ok(id >= 0, "basic: evq_add_signal(SIGUSR1) -> %" PRId64 "", id);
	/* The call blocks the signal in this thread. */
	ok(blocked(SIGUSR1), "basic: SIGUSR1 blocked while registered");
	is(evqt_wait(q, ev, NEV, 0), 0, "basic: nothing before a signal");
	CHECK(kill(getpid(), SIGUSR1) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	/* One event: kind, ident = signo, events = sender (us), count 1, no
	 * value for kill(). */
	is(n, 1, "basic: one event");
	ok(ev[0].cookie == 0x5151 && ev[0].id == id && ev[0].kind == EVQ_KIND_SIGNAL &&
		   ev[0].ident == SIGUSR1 && ev[0].flags == 0,
	   "basic: fields exact (kind %u ident %d flags %#x)", ev[0].kind,
	   ev[0].ident, ev[0].flags);
	is(ev[0].events, getpid(), "basic: events = sender pid");
	is(ev[0].data, 1, "basic: data = count 1, value 0");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "basic: no second event");
	is(atomic_load(&old_handler_calls), 0, "basic: the old handler never ran");

	/* Three kill()s while pending: standard signals merge in the kernel. */
	for (int i = 0; i < 3; i++)
		CHECK(kill(getpid(), SIGUSR1) == 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "basic: 3 pending SIGUSR1 -> one event, count 1 (n=%d)", n);

	/* Deleted: the disposition and mask are as before. */
	is(evq_del(q, id), 0, "basic: evq_del");
	ok(current_handler(SIGUSR1) == old_handler, "basic: old handler restored");
	ok(!blocked(SIGUSR1), "basic: SIGUSR1 unblocked again");
	is(evq_del(q, id), -ENOENT, "basic: second evq_del -> -ENOENT");
	is(evq_mod(q, id, 0, 0), -ENOENT, "basic: evq_mod of a deleted id -> -ENOENT");
	CHECK(kill(getpid(), SIGUSR1) == 0);
	is(atomic_load(&old_handler_calls), 1, "basic: after del the old handler runs");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "basic: and the queue sees nothing");
	atomic_store(&old_handler_calls, 0);
	evq_free(q);
}

static void test_realtime(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sig = SIGRTMIN + 2;
	int64_t id = evq_add_signal(q, sig, 7);
	CHECK(id >= 0);
	union sigval v;
	for (int i = 1; i <= 3; i++) {
		v.sival_int = 10 * i;
		CHECK(sigqueue(getpid(), sig, v) == 0);
	}
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	/* Real-time signals queue: 3 counted in one event, last value 30. */
	is(n, 1, "rt: one event for 3 queued signals");
	is(ev[0].data & 0xffffffffu, 3, "rt: count 3");
	is(ev[0].data >> 32, 30, "rt: value of the last (30)");
	is(ev[0].events, getpid(), "rt: sender pid");

	/* A flood: every instance counted, over however many events. */
	long total = 0, sent = evqt_scale(400);
	for (long i = 0; i < sent; i++) {
		v.sival_int = (int)i;
		if (sigqueue(getpid(), sig, v) != 0) {
			sent = i; /* RLIMIT_SIGPENDING */
			break;
		}
	}
	while ((n = evqt_wait(q, ev, NEV, 0)) > 0)
		for (int k = 0; k < n; k++)
			total += (long)(ev[k].data & 0xffffffffu);
	is(total, sent, "rt: flood of %ld signals counted exactly", sent);
	evq_free(q);
	/* evq_free restores the default disposition. */
	ok(current_handler(sig) == SIG_DFL, "rt: evq_free restored SIG_DFL");
}

static void test_sender(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_signal(q, SIGUSR2, 2);
	CHECK(id >= 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		union sigval v = { .sival_int = 4242 };
		_exit(sigqueue(getppid(), SIGUSR2, v) == 0 ? 0 : 1);
	}
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int st;
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* sigqueue() from a child: its pid and value reach the event. */
	ok(n == 1 && ev[0].events == (uint32_t)child, "sender: events = child pid %d (got %u)",
	   (int)child, n == 1 ? ev[0].events : 0);
	ok(n == 1 && ev[0].data == (4242ull << 32 | 1), "sender: data = value 4242 << 32 | 1");
	evq_free(q);
}

/* Sends sig to the process once the waiter sleeps in evq_wait on q (it
 * was: after 30 ms). */
struct sender_arg {
	struct evq *q;
	pid_t waiter;
	int sig, asleep;
};

static void *kill_later(void *arg)
{
	struct sender_arg *a = arg;
	a->asleep = evqt_until(evqt_sleeping_in(a->q, a->waiter));
	kill(getpid(), a->sig);
	return NULL;
}

static void test_wakes_sleeper(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_signal(q, SIGUSR1, 3);
	CHECK(id >= 0);
	/* The thread inherits the blocked mask: the signal stays pending and
	 * the signalfd wakes the sleeping waiter. */
	struct sender_arg a = { q, evqt_gettid(), SIGUSR1, 0 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, kill_later, &a) == 0);
	int n = evqt_wait(q, ev, NEV, -1);
	pthread_join(t, NULL);
	ok(a.asleep && n == 1 && ev[0].id == id && ev[0].data == 1,
	   "wake: kill() from another thread wakes evq_wait(-1), seen asleep (n=%d)", n);
	evq_free(q);
}

/* A thread created before the registration has the signal unblocked. */
/* It naps in short sleeps rather than one long blocking call: a sanitizer
 * (TSan) runs a handler only when the thread next enters the runtime, and a
 * restarted read() would never return. */
static atomic_int stop_thread;
static void *unblocked_thread(void *arg)
{
	sigset_t s;
	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	while (!atomic_load(&stop_thread))
		evqt_sleep_ns(EVQT_MS);
	return NULL;
}

static void test_handler_path(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	install_old(SIGUSR1);
	atomic_store(&stop_thread, 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, unblocked_thread, NULL) == 0);
	int64_t id = evq_add_signal(q, SIGUSR1, 4);
	CHECK(id >= 0);
	long rounds = evqt_scale(20), got = 0;
	for (long i = 0; i < rounds; i++) {
		CHECK(pthread_kill(t, SIGUSR1) == 0);
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		if (n == 1 && ev[0].id == id && (ev[0].data & 0xffffffffu) == 1)
			got++;
	}
	/* Sent to a thread that did not block it: evq's handler posts it. */
	is(got, rounds, "handler: %ld signals to an unblocked thread delivered", rounds);
	ok(ev[0].events == (uint32_t)getpid(), "handler: sender pid %u", ev[0].events);
	is(atomic_load(&old_handler_calls), 0, "handler: the old disposition never ran");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "handler: no extra event");
	atomic_store(&stop_thread, 1);
	pthread_join(t, NULL);
	evq_free(q);
	ok(current_handler(SIGUSR1) == old_handler, "handler: old handler restored by evq_free");
	set_blocked(SIGUSR1, 0);
}

static void test_discard_and_mask(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	install_old(SIGUSR1);
	set_blocked(SIGUSR1, 0);
	int64_t id = evq_add_signal(q, SIGUSR1, 5);
	CHECK(id >= 0);
	CHECK(kill(getpid(), SIGUSR1) == 0);
	/* Pending but never waited for: evq_del discards it, so unblocking
	 * does not run the old handler. */
	is(evq_del(q, id), 0, "discard: evq_del with a signal pending");
	is(atomic_load(&old_handler_calls), 0, "discard: pending instance not redelivered");
	ok(!blocked(SIGUSR1), "discard: unblocked again");

	/* Blocked before the registration: stays blocked after. */
	set_blocked(SIGUSR2, 1);
	id = evq_add_signal(q, SIGUSR2, 6);
	CHECK(id >= 0);
	CHECK(evq_del(q, id) == 0);
	ok(blocked(SIGUSR2), "mask: a signal blocked before stays blocked");
	set_blocked(SIGUSR2, 0);
	ok(evqt_roundtrip(q), "discard: queue usable");
	(void)ev;
	evq_free(q);
}

static void test_mod(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_signal(q, SIGUSR1, 8);
	CHECK(id >= 0);
	/* Disabled: the signal stays pending, delivered when enabled. */
	is(evq_mod(q, id, 0, EVQ_DISABLED), 0, "mod: disable");
	CHECK(kill(getpid(), SIGUSR1) == 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: nothing while disabled");
	is(evq_mod(q, id, 0, 0), 0, "mod: enable");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].data == 1, "mod: pending signal delivered on enable");
	/* Oneshot: one event, then silent until re-armed. */
	is(evq_mod(q, id, 0, EVQ_ONESHOT), 0, "mod: oneshot");
	CHECK(kill(getpid(), SIGUSR1) == 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].flags == EVQ_ONESHOT, "mod: oneshot fires (flags %#x)", n ? ev[0].flags : 0);
	CHECK(kill(getpid(), SIGUSR1) == 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: fired oneshot stays silent");
	is(evq_mod(q, id, 0, EVQ_ONESHOT), 0, "mod: re-arm");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id, "mod: re-armed oneshot delivers the pending one");
	is(evq_mod(q, id, EVQ_READ, 0), -EINVAL, "mod: events != 0 -> -EINVAL");
	is(evq_mod(q, id, 0, EVQ_EDGE), -EINVAL, "mod: EVQ_EDGE -> -EINVAL");
	/* Requeue: the event comes back whole. */
	is(evq_mod(q, id, 0, 0), 0, "mod: back to plain");
	union sigval v = { .sival_int = 77 };
	CHECK(sigqueue(getpid(), SIGUSR1, v) == 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	CHECK(n == 1);
	struct evq_event first = ev[0];
	is(evq_requeue(q, &first), 0, "requeue: given back");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].data == first.data &&
		   ev[0].events == first.events && ev[0].kind == EVQ_KIND_SIGNAL,
	   "requeue: same data %#llx and sender", (unsigned long long)ev[0].data);
	evq_free(q);
}

static void test_busy(void)
{
	struct evq *q = evqt_new(), *q2 = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_signal(q, SIGUSR1, 9);
	CHECK(id >= 0);
	/* One registration per signal per process. */
	is(evq_add_signal(q, SIGUSR1, 10), -EBUSY, "busy: same queue -> -EBUSY");
	is(evq_add_signal(q2, SIGUSR1, 11), -EBUSY, "busy: other queue -> -EBUSY");
	/* The refusals did not disturb the owner. */
	CHECK(kill(getpid(), SIGUSR1) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id, "busy: owner still gets the signal");
	is(evqt_wait(q2, ev, NEV, QUIET), 0, "busy: other queue gets nothing");
	ok(evqt_roundtrip(q2), "busy: other queue usable");
	/* Free after del: the other queue may take it. */
	CHECK(evq_del(q, id) == 0);
	int64_t id2 = evq_add_signal(q2, SIGUSR1, 12);
	ok(id2 >= 0, "busy: after evq_del another queue registers it (%" PRId64 ")", id2);
	CHECK(kill(getpid(), SIGUSR1) == 0);
	n = evqt_wait(q2, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].cookie == 12, "busy: and receives it");
	evq_free(q2);
	/* Freed with the queue too. */
	id = evq_add_signal(q, SIGUSR1, 13);
	ok(id >= 0, "busy: evq_free released it (%" PRId64 ")", id);
	evq_free(q);
}

static void test_sigchld_ignored(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct sigaction ign, saved;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	CHECK(sigaction(SIGCHLD, &ign, &saved) == 0);
	int64_t id = evq_add_signal(q, SIGCHLD, 14);
	CHECK(id >= 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0)
		_exit(3);
	/* SIG_IGN would discard SIGCHLD and auto-reap; registered, neither. */
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].ident == SIGCHLD && ev[0].events == (uint32_t)child,
	   "sigchld: delivered despite SIG_IGN, events = child pid (n=%d)", n);
	int st = 0;
	pid_t w = waitpid(child, &st, 0);
	ok(w == child && WIFEXITED(st) && WEXITSTATUS(st) == 3,
	   "sigchld: child not auto-reaped (waitpid %d)", (int)w);
	CHECK(evq_del(q, id) == 0);
	ok(current_handler(SIGCHLD) == SIG_IGN, "sigchld: SIG_IGN restored");
	CHECK(sigaction(SIGCHLD, &saved, NULL) == 0);
	evq_free(q);
}

/* fork(): the child cannot use the inherited queue, may register the
 * parent's signal in a queue of its own, and freeing the inherited queue
 * neither disturbs that nor the parent. */
static void test_fork(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	install_old(SIGUSR1);
	int64_t id = evq_add_signal(q, SIGUSR1, 15);
	CHECK(id >= 0);
	for (int order = 0; order < 2; order++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			int bad = 0;
			struct evq *mine;
			struct evq_event e[4];
			if (evq_add_signal(q, SIGUSR2, 1) != -ECHILD)
				bad |= 1;
			if (order == 1) {
				/* freed first: the old disposition is back */
				evq_free(q);
				if (current_handler(SIGUSR1) != old_handler)
					bad |= 2;
			}
			if (evq_new(&mine, NULL) != 0 || evq_add_signal(mine, SIGUSR1, 2) < 0)
				_exit(64);
			kill(getpid(), SIGUSR1);
			if (evq_wait(mine, e, 4, EVQT_SOON, NULL) != 1 || e[0].cookie != 2)
				bad |= 4;
			if (order == 0) {
				/* freed after: the child's registration stays */
				evq_free(q);
				kill(getpid(), SIGUSR1);
				if (evq_wait(mine, e, 4, EVQT_SOON, NULL) != 1 || e[0].cookie != 2)
					bad |= 8;
			}
			evq_free(mine);
			if (current_handler(SIGUSR1) != old_handler ||
			    atomic_load(&old_handler_calls) != 0)
				bad |= 16;
			_exit(bad);
		}
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "fork: child (%s) -ECHILD on the inherited queue, own registration works "
		   "(status %#x)", order ? "frees first" : "frees last", st);
	}
	/* The parent's registration is intact. */
	CHECK(kill(getpid(), SIGUSR1) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 15, "fork: parent still receives it");
	is(atomic_load(&old_handler_calls), 0, "fork: the parent's old handler never ran");
	evq_free(q);
	set_blocked(SIGUSR1, 0);
}

/* Several threads wait on one queue while real-time signals arrive: every
 * signal is counted exactly once across them (no instance read twice, none
 * lost), and the waiters all return when told to stop. */
struct waiter_arg {
	struct evq *q;
	int64_t id, stop_id;
	atomic_long *total;
};

static void *signal_waiter(void *arg)
{
	struct waiter_arg *a = arg;
	struct evq_event ev[4];
	for (;;) {
		int n = evq_wait(a->q, ev, 4, EVQT_SOON, NULL);
		if (n <= 0)
			return NULL; /* a lost wakeup: the count check fails */
		for (int i = 0; i < n; i++) {
			if (ev[i].id == a->stop_id) {
				/* hand the stop on to the next waiter */
				evq_requeue(a->q, &ev[i]);
				return NULL;
			}
			if (ev[i].id == a->id)
				atomic_fetch_add(a->total, (long)(ev[i].data & 0xffffffffu));
		}
	}
}

static void test_many_waiters(void)
{
	enum { NT = 4 };
	struct evq *q = evqt_new();
	int sig = SIGRTMIN + 3;
	int64_t id = evq_add_signal(q, sig, 16);
	CHECK(id >= 0);
	int64_t stop_id = evq_add_user(q, 17);
	CHECK(stop_id >= 0);
	atomic_long total = 0;
	struct waiter_arg a = { q, id, stop_id, &total };
	pthread_t t[NT];
	for (int i = 0; i < NT; i++)
		CHECK(pthread_create(&t[i], NULL, signal_waiter, &a) == 0);
	long sent = evqt_scale(4000);
	union sigval v = { .sival_int = 1 };
	for (long i = 0; i < sent; i++)
		while (sigqueue(getpid(), sig, v) != 0)
			evqt_sleep_ns(EVQT_MS); /* RLIMIT_SIGPENDING: let them drain */
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(&total) < sent && evqt_now(CLOCK_MONOTONIC) < end)
		evqt_sleep_ns(EVQT_MS);
	/* One stop event, which each waiter requeues for the next. */
	CHECK(evq_trigger(q, stop_id) == 0);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	is(atomic_load(&total), sent, "waiters: %d threads counted %ld signals exactly once", NT,
	   sent);
	evq_free(q);
}

/* evq_wait()'s sigmask unblocks the registered signal during the sleep: it
 * then reaches evq's handler, which posts it; the wait returns it or
 * -EINTR, and the next wait has it.  Counted once either way. */
static void *kill_soon(void *arg)
{
	(void)arg;
	evqt_sleep_ns(20 * EVQT_MS);
	kill(getpid(), SIGUSR2);
	return NULL;
}

static void test_wait_sigmask(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_signal(q, SIGUSR2, 18);
	CHECK(id >= 0);
	sigset_t during;
	pthread_sigmask(SIG_SETMASK, NULL, &during);
	sigdelset(&during, SIGUSR2);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, kill_soon, NULL) == 0);
	memset(ev, 0, sizeof ev);
	int n1 = evq_wait(q, ev, NEV, EVQT_SOON, &during);
	long count = n1 == 1 && ev[0].id == id ? (long)(ev[0].data & 0xffffffffu) : 0;
	pthread_join(t, NULL);
	int n2 = evqt_wait(q, ev, NEV, n1 == 1 ? QUIET : EVQT_SOON);
	if (n2 == 1 && ev[0].id == id)
		count += (long)(ev[0].data & 0xffffffffu);
	ok((n1 == 1 || n1 == -EINTR) && count == 1,
	   "wait sigmask: the signal arrives once (first wait %d, second %d)", n1, n2);
	ok(blocked(SIGUSR2), "wait sigmask: mask restored after the wait");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("signal");
	test_bad_input();
	test_basic();
	test_realtime();
	test_sender();
	test_wakes_sleeper();
	test_handler_path();
	test_discard_and_mask();
	test_mod();
	test_busy();
	test_sigchld_ignored();
	test_fork();
	test_many_waiters();
	test_wait_sigmask();
	return done();
}
