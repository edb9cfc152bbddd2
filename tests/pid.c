/* SPDX-License-Identifier: MIT */
/*
 * pid.c - evq_add_pid: a child's exit with its wait status (exited,
 * killed), reaped unless EVQ_NOREAP, delivered once; an exited unreaped
 * child fires at once; a non-child's exit reports EVQ_PID_NOSTATUS; the
 * PostgreSQL "postmaster died" case (a grandchild watches its parent);
 * disabled then enabled; evq_del before the exit (the child stays ours to
 * reap); two queues watching one child; many children; requeue; fork (the
 * child frees the inherited queue and steals nothing); bad input (-EINVAL,
 * also for a thread's id; -ESRCH for a reaped pid) with the queue usable
 * after each.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 64
#define QUIET (20 * EVQT_MS)

/* A child that exits with code when its gate pipe is written or closed. */
struct kid {
	pid_t pid;
	int gate;
};

static struct kid spawn(int code)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(code);
	}
	close(p[0]);
	return (struct kid){ pid, p[1] };
}

static void release(struct kid *k)
{
	close(k->gate);
	k->gate = -1;
}

/* Waits until pid is a zombie, without reaping it. */
static void wait_zombie(pid_t pid)
{
	siginfo_t si;
	CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0);
}

/* 1 if pid is no longer our child to wait for (peeks: reaps nothing). */
static int reaped(pid_t pid)
{
	siginfo_t si;
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
	       errno == ECHILD;
}

static atomic_int thread_tid, thread_stop;
static void *report_tid(void *arg)
{
	(void)arg;
	atomic_store(&thread_tid, (int)gettid());
	while (!atomic_load(&thread_stop))
		evqt_sleep_ns(EVQT_MS);
	return NULL;
}

static void test_bad_input(void)
{
	struct evq *q = evqt_new();
	is(evq_add_pid(NULL, getpid(), 0, 0), -EINVAL, "bad: NULL queue -> -EINVAL");
	is(evq_add_pid(q, 0, 0, 0), -EINVAL, "bad: pid 0 -> -EINVAL");
	is(evq_add_pid(q, -1, 0, 0), -EINVAL, "bad: pid -1 -> -EINVAL");
	is(evq_add_pid(q, -getpid(), 0, 0), -EINVAL, "bad: negative pid (a group) -> -EINVAL");
	is(evq_add_pid(q, getpid(), EVQ_EDGE, 0), -EINVAL, "bad: EVQ_EDGE -> -EINVAL");
	is(evq_add_pid(q, getpid(), 0x4000, 0), -EINVAL, "bad: unknown flag -> -EINVAL");
	/* A child that exited and was reaped: its pid names nothing. */
	struct kid k = spawn(0);
	release(&k);
	CHECK(waitpid(k.pid, NULL, 0) == k.pid);
	is(evq_add_pid(q, k.pid, 0, 0), -ESRCH, "bad: reaped pid -> -ESRCH");
	/* A thread's id (not its process's main thread): refused. */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, report_tid, NULL) == 0);
	while (atomic_load(&thread_tid) == 0)
		evqt_sleep_ns(EVQT_MS);
	is(evq_add_pid(q, atomic_load(&thread_tid), 0, 0), -EINVAL,
	   "bad: a non-main thread's id -> -EINVAL");
	atomic_store(&thread_stop, 1);
	pthread_join(t, NULL);
	ok(evqt_roundtrip(q), "bad: queue usable after errors");
	evq_free(q);
}

static void test_child_exit(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(7);
	int64_t id = evq_add_pid(q, k.pid, 0, 0x9191);
	ok(id >= 0, "exit: evq_add_pid(child) -> %" PRId64 "", id);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "exit: nothing while the child runs");
	release(&k);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	/* One event with the child's status, the child reaped. */
	is(n, 1, "exit: one event");
	ok(ev[0].cookie == 0x9191 && ev[0].id == id && ev[0].kind == EVQ_KIND_PID &&
		   ev[0].ident == k.pid && ev[0].events == 0 && ev[0].flags == 0,
	   "exit: fields exact (kind %u ident %d events %#x)", ev[0].kind,
	   ev[0].ident, ev[0].events);
	int st = (int)ev[0].data;
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 7, "exit: WEXITSTATUS == 7 (data %#llx)",
	   (unsigned long long)ev[0].data);
	ok(reaped(k.pid), "exit: child reaped");
	/* The exit is one occurrence. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "exit: not reported again");
	is(evq_mod(q, id, 0, 0), 0, "exit: evq_mod after the exit");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "exit: enabling does not re-report");
	is(evq_del(q, id), 0, "exit: evq_del");
	ok(evqt_roundtrip(q), "exit: queue usable");
	evq_free(q);
}

static void test_killed_and_noreap(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(0);
	int64_t id = evq_add_pid(q, k.pid, 0, 1);
	CHECK(id >= 0);
	CHECK(kill(k.pid, SIGKILL) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int st = n == 1 ? (int)ev[0].data : 0;
	/* Killed: WIFSIGNALED, WTERMSIG == SIGKILL. */
	ok(n == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	   "killed: WTERMSIG == SIGKILL (n=%d data %#x)", n, st);
	release(&k);
	CHECK(evq_del(q, id) == 0);

	k = spawn(5);
	id = evq_add_pid(q, k.pid, EVQ_NOREAP, 2);
	CHECK(id >= 0);
	release(&k);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	st = n == 1 ? (int)ev[0].data : 0;
	/* NOREAP: the status is reported and the child is still there. */
	ok(n == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 5 && ev[0].flags == EVQ_NOREAP,
	   "noreap: status 5, flags EVQ_NOREAP (n=%d)", n);
	int st2 = 0;
	ok(waitpid(k.pid, &st2, WNOHANG) == k.pid && st2 == st,
	   "noreap: waitpid still collects the same status");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "noreap: the zombie is not reported again");
	evq_free(q);
}

static void test_zombie_at_once(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(9);
	release(&k);
	wait_zombie(k.pid);
	/* Exited before the registration, not reaped: fires at once. */
	int64_t id = evq_add_pid(q, k.pid, 0, 3);
	ok(id >= 0, "zombie: registered (%" PRId64 ")", id);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int st = n == 1 ? (int)ev[0].data : 0;
	ok(n == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 9, "zombie: immediate event, status 9");
	ok(reaped(k.pid), "zombie: reaped");
	evq_free(q);
}

/* A grandchild: not ours to wait for.  Returns its pid; it exits when
 * *gate is closed. */
static pid_t spawn_grandchild(int *gate)
{
	int p[2], g[2];
	CHECK(pipe(p) == 0 && pipe(g) == 0);
	pid_t mid = fork();
	CHECK(mid >= 0);
	if (mid == 0) {
		pid_t gc = fork();
		if (gc == 0) {
			char c;
			close(g[1]);
			while (read(g[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		_exit(write(p[1], &gc, sizeof gc) == sizeof gc ? 0 : 1);
	}
	close(p[1]);
	close(g[0]);
	pid_t gc = -1;
	CHECK(read(p[0], &gc, sizeof gc) == sizeof gc);
	close(p[0]);
	CHECK(waitpid(mid, NULL, 0) == mid);
	*gate = g[1];
	return gc;
}

static void test_non_child(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int gate;
	pid_t gc = spawn_grandchild(&gate);
	int64_t id = evq_add_pid(q, gc, 0, 4);
	ok(id >= 0, "non-child: registered (%" PRId64 ")", id);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "non-child: nothing while it runs");
	close(gate);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	/* Not our child: the exit without a status. */
	ok(n == 1 && ev[0].ident == gc && ev[0].data == EVQ_PID_NOSTATUS,
	   "non-child: exit reported, data EVQ_PID_NOSTATUS (n=%d)", n);
	int st = (int)EVQ_PID_NOSTATUS;
	ok(!WIFEXITED(st) && !WIFSIGNALED(st), "non-child: marker is neither exited nor signaled");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "non-child: reported once");
	evq_free(q);
}

/* Grandchild watches its parent (the "postmaster"), reports via pipe. */
static void test_parent_death(void)
{
	int ready[2], result[2], gate[2];
	CHECK(pipe(ready) == 0 && pipe(result) == 0 && pipe(gate) == 0);
	pid_t mid = fork();
	CHECK(mid >= 0);
	if (mid == 0) {
		close(gate[1]);
		pid_t gc = fork();
		if (gc == 0) {
			struct evq *q;
			struct evq_event ev[4];
			char r = 'N';
			pid_t parent = getppid();
			if (evq_new(&q, NULL) == 0 &&
			    evq_add_pid(q, parent, 0, 5) >= 0 && getppid() == parent) {
				(void)!write(ready[1], "r", 1);
				int n = evq_wait(q, ev, 4, 10 * EVQT_SEC, NULL);
				if (n == 1 && ev[0].data == EVQ_PID_NOSTATUS && ev[0].ident == parent)
					r = 'Y';
			}
			(void)!write(result[1], &r, 1);
			_exit(0);
		}
		char c;
		while (read(gate[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(gate[0]);
	close(ready[1]);
	close(result[1]);
	char c = 0;
	CHECK(read(ready[0], &c, 1) == 1);
	/* The parent dies: the grandchild's queue reports it. */
	close(gate[1]);
	CHECK(waitpid(mid, NULL, 0) == mid);
	struct pollfd pf = { result[0], POLLIN, 0 };
	c = 0;
	if (poll(&pf, 1, 10000) == 1)
		CHECK(read(result[0], &c, 1) == 1);
	is(c, 'Y', "postmaster: a grandchild sees its parent's death");
	close(ready[0]);
	close(result[0]);
}

static void test_disabled_and_del(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(11);
	int64_t id = evq_add_pid(q, k.pid, EVQ_DISABLED, 6);
	CHECK(id >= 0);
	release(&k);
	wait_zombie(k.pid);
	/* Disabled: the exit waits, and the child is not reaped. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: no event");
	ok(!reaped(k.pid), "disabled: child not reaped yet");
	is(evq_mod(q, id, 0, 0), 0, "disabled: enable");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	int st = n == 1 ? (int)ev[0].data : 0;
	ok(n == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 11, "disabled: event on enable");
	CHECK(evq_del(q, id) == 0);

	/* Deleted before the exit: no event, the child is still ours. */
	k = spawn(12);
	id = evq_add_pid(q, k.pid, 0, 7);
	CHECK(id >= 0);
	is(evq_del(q, id), 0, "del: before the exit");
	release(&k);
	st = 0;
	ok(waitpid(k.pid, &st, 0) == k.pid && WEXITSTATUS(st) == 12,
	   "del: the caller reaps the child itself");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "del: no event");
	evq_free(q);
}

static void test_two_queues(void)
{
	struct evq *a = evqt_new(), *b = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(13);
	/* Two watchers of one child, neither reaping: both see the status. */
	CHECK(evq_add_pid(a, k.pid, EVQ_NOREAP, 8) >= 0);
	CHECK(evq_add_pid(b, k.pid, EVQ_NOREAP, 9) >= 0);
	release(&k);
	int na = evqt_wait(a, ev, NEV, EVQT_SOON);
	int sa = na == 1 ? (int)ev[0].data : -1;
	int nb = evqt_wait(b, ev, NEV, EVQT_SOON);
	int sb = nb == 1 ? (int)ev[0].data : -1;
	ok(na == 1 && nb == 1 && WEXITSTATUS(sa) == 13 && sa == sb,
	   "two queues: both report status 13");
	CHECK(waitpid(k.pid, NULL, 0) == k.pid);
	evq_free(a);
	evq_free(b);
}

static void test_many(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	enum { MAX = 64 };
	long nk = evqt_scale(64);
	if (nk > MAX)
		nk = MAX;
	struct kid k[MAX];
	int seen[MAX] = { 0 };
	for (long i = 0; i < nk; i++) {
		k[i] = spawn((int)i);
		CHECK(evq_add_pid(q, k[i].pid, 0, (uint64_t)i) >= 0);
	}
	for (long i = 0; i < nk; i++)
		release(&k[i]);
	long got = 0, good = 1;
	while (got < nk) {
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		if (n <= 0)
			break;
		for (int j = 0; j < n; j++) {
			uint64_t i = ev[j].cookie;
			int st = (int)ev[j].data;
			good &= i < (uint64_t)nk && ev[j].ident == k[i].pid &&
				WIFEXITED(st) && WEXITSTATUS(st) == (int)i;
			if (i < (uint64_t)nk)
				seen[i]++;
			got++;
		}
	}
	int once = 1;
	for (long i = 0; i < nk; i++)
		once &= seen[i] == 1;
	ok(got == nk && once && good, "many: %ld children, each exit once with its status", nk);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "many: nothing more");
	evq_free(q);
}

/* Lets the child exit once the waiter sleeps in evq_wait (was: 30 ms). */
struct release_arg {
	struct kid *k;
	struct evq *q;
	pid_t waiter;
	int asleep;
};

static void *release_later(void *arg)
{
	struct release_arg *a = arg;
	a->asleep = evqt_until(evqt_sleeping_in(a->q, a->waiter));
	release(a->k);
	return NULL;
}

static void test_wake_and_requeue(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(21);
	int64_t id = evq_add_pid(q, k.pid, 0, 10);
	CHECK(id >= 0);
	pthread_t t;
	struct release_arg ra = { &k, q, evqt_gettid(), 0 };
	CHECK(pthread_create(&t, NULL, release_later, &ra) == 0);
	/* A waiter asleep forever wakes for the exit. */
	int n = evqt_wait(q, ev, NEV, -1);
	pthread_join(t, NULL);
	ok(ra.asleep && n == 1 && ev[0].id == id && WEXITSTATUS((int)ev[0].data) == 21,
	   "wake: evq_wait(-1), seen asleep, returns the exit");
	struct evq_event first = ev[0];
	is(evq_requeue(q, &first), 0, "requeue: given back");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].data == first.data,
	   "requeue: the same status comes back");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "requeue: once");
	evq_free(q);
}

/* fork(): a child that frees the inherited queue steals nothing: the
 * parent still gets (and reaps) its child's exit. */
static void test_fork(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct kid k = spawn(23);
	int64_t id = evq_add_pid(q, k.pid, 0, 11);
	CHECK(id >= 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int bad = evq_add_pid(q, getppid(), 0, 1) != -ECHILD;
		evq_free(q);
		struct evq *mine;
		struct evq_event e[4];
		/* the child's own queue watches its own child */
		if (evq_new(&mine, NULL) != 0)
			_exit(64);
		pid_t c = fork();
		if (c == 0)
			_exit(4);
		if (evq_add_pid(mine, c, 0, 2) < 0 ||
		    evq_wait(mine, e, 4, EVQT_SOON, NULL) != 1 ||
		    WEXITSTATUS((int)e[0].data) != 4)
			bad |= 2;
		evq_free(mine);
		_exit(bad);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "fork: child gets -ECHILD, frees the inherited queue, uses its own (%#x)", st);
	release(&k);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && WEXITSTATUS((int)ev[0].data) == 23,
	   "fork: the parent still gets its child's exit");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("pid");
	struct evq *probe = evqt_new();
	int64_t r = evq_add_pid(probe, getpid(), 0, 0);
	evq_free(probe);
	if (r == -ENOSYS)
		skip_all("kernel without pidfd_open");
	test_bad_input();
	test_child_exit();
	test_killed_and_noreap();
	test_zombie_at_once();
	test_non_child();
	test_parent_death();
	test_disabled_and_del();
	test_two_queues();
	test_many();
	test_wake_and_requeue();
	test_fork();
	return done();
}
