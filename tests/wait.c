/* SPDX-License-Identifier: MIT */
/*
 * wait.c - evq_wait(): timeout 0 polls, nanosecond timeouts are honoured
 * (never early), negative waits forever, huge timeouts do not overflow,
 * sigmask is swapped atomically (-EINTR), max smaller than the ready set
 * loses nothing, and no system call is made by evq_trigger with nobody
 * asleep, nor by evq_wait while events are pending and the call before it
 * asked the kernel (every second call polls it: the fairness rule).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/wait.h>

#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#define HAVE_SECCOMP_TEST 1
#else
#define HAVE_SECCOMP_TEST 0
#endif

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 64

static void test_poll(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	/* Empty queue: timeout 0 returns 0 at once. */
	is(evqt_wait(q, ev, NEV, 0), 0, "poll: empty queue -> 0");
	/* A far timer and a disabled user event change nothing. */
	int64_t t = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 1);
	int64_t u = evq_add_user(q, 2);
	CHECK(t >= 0 && u >= 0);
	CHECK(evq_mod(q, u, 0, EVQ_DISABLED) == 0 && evq_trigger(q, u) == 0);
	is(evqt_wait(q, ev, NEV, 0), 0, "poll: far timer + disabled user -> 0");
	evq_free(q);
}

static void test_timeouts(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	static const int64_t tmo[] = { 1, 1000, 999999, 1500000, 2500000, 20 * EVQT_MS };
	for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
		int64_t t0 = evqt_now(CLOCK_MONOTONIC);
		int n = evqt_wait(q, ev, NEV, tmo[i]);
		int64_t dt = evqt_now(CLOCK_MONOTONIC) - t0;
		/* Nothing ready: 0 after at least the timeout (no rounding down
		 * to milliseconds). */
		ok(n == 0 && dt >= tmo[i],
		   "timeout %lld ns: returns 0 after >= timeout (n=%d, %lld ns)",
		   (long long)tmo[i], n, (long long)dt);
	}
	/* Same with timers armed (the library then sleeps min(timeout, timer)). */
	int64_t far = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 1);
	CHECK(far >= 0);
	/* A thread held off the CPU for 40 ms sees the timer fire instead:
	 * such a try proves nothing, and is tried again (up to 50 times). */
	int64_t tb, t0, dt;
	int n, tries = 0;
	int64_t near;
	for (;;) {
		tb = evqt_now(CLOCK_MONOTONIC);
		near = evq_add_timer(q, CLOCK_MONOTONIC, 40 * EVQT_MS, 0, 0, 2);
		CHECK(near >= 0);
		t0 = evqt_now(CLOCK_MONOTONIC);
		n = evqt_wait(q, ev, NEV, 1500000);
		dt = evqt_now(CLOCK_MONOTONIC) - t0;
		if (n == 0 || evqt_now(CLOCK_MONOTONIC) - tb < 40 * EVQT_MS || ++tries == 50)
			break;
		CHECK(evq_del(q, near) == 0);
	}
	ok(n == 0 && dt >= 1500000,
	   "timeout 1.5 ms with a 40 ms timer: 0 after >= 1.5 ms (n=%d, %lld ns, %d late tries)",
	   n, (long long)dt, tries);
	/* A timeout longer than the timer: the timer's event comes first. */
	n = evqt_wait(q, ev, NEV, 5 * EVQT_SEC);
	dt = evqt_now(CLOCK_MONOTONIC) - tb;
	ok(n == 1 && ev[0].id == near && dt >= 40 * EVQT_MS,
	   "timeout 5 s with a 40 ms timer: the timer fires (n=%d)", n);
	evq_free(q);
}

struct later {
	struct evq *q;
	int64_t id;
	int64_t delay;
};

static void *trigger_later(void *arg)
{
	struct later *l = arg;
	evqt_sleep_ns(l->delay);
	CHECK(evq_trigger(l->q, l->id) == 0);
	return NULL;
}

/* Waits with timeout tmo while another thread triggers after delay. */
static void wait_woken(int64_t tmo, const char *what)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 9);
	CHECK(id >= 0);
	struct later l = { q, id, 50 * EVQT_MS };
	pthread_t t;
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	CHECK(pthread_create(&t, NULL, trigger_later, &l) == 0);
	int n = evqt_wait(q, ev, NEV, tmo);
	int64_t dt = evqt_now(CLOCK_MONOTONIC) - t0;
	pthread_join(t, NULL);
	/* Not an early 0 or error from an overflowed deadline: the trigger's
	 * event, after the trigger. */
	ok(n == 1 && ev[0].id == id && ev[0].data == 1 && dt >= 50 * EVQT_MS,
	   "%s: woken by a trigger after 50 ms (n=%d, %lld ns)", what, n, (long long)dt);
	evq_free(q);
}

static void test_forever_and_huge(void)
{
	wait_woken(-1, "timeout -1");
	wait_woken(-1000, "timeout -1000");
	wait_woken(INT64_MIN, "timeout INT64_MIN");
	wait_woken(INT64_MAX, "timeout INT64_MAX");
	wait_woken(INT64_MAX - 1, "timeout INT64_MAX-1");
	wait_woken(INT64_MAX / 2 + 12345, "timeout INT64_MAX/2");

	/* INT64_MAX timeout with a 20 ms timer: the timer's event. */
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	int64_t id = evq_add_timer(q, CLOCK_MONOTONIC, 20 * EVQT_MS, 0, 0, 3);
	CHECK(id >= 0);
	int n = evqt_wait(q, ev, NEV, INT64_MAX);
	int64_t dt = evqt_now(CLOCK_MONOTONIC) - t0;
	ok(n == 1 && ev[0].id == id && dt >= 20 * EVQT_MS,
	   "timeout INT64_MAX with a 20 ms timer: timer event (n=%d)", n);
	evq_free(q);
}

/* ---- sigmask ---- */

static atomic_int usr1_calls;
static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&usr1_calls, 1);
}

struct kill_later {
	pthread_t target;
	pid_t tid;           /* the target's thread id */
	struct evq *q;
	atomic_int left;     /* the target's evq_wait returned */
};

/* Signals the target once it sleeps in evq_wait (or has left it). */
static void *kill_later(void *arg)
{
	struct kill_later *k = arg;
	evqt_until(atomic_load(&k->left) ||
		   (atomic_load(&k->q->sleepers) > 0 && evqt_asleep_in_wait(k->tid)));
	pthread_kill(k->target, SIGUSR1);
	return NULL;
}

static int usr1_blocked(void)
{
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, SIGUSR1);
}

static void test_sigmask(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	sigset_t blk, old, unblock;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &blk, &old);
	pthread_sigmask(SIG_BLOCK, NULL, &unblock);
	sigdelset(&unblock, SIGUSR1);

	/* SIGUSR1 blocked in the thread, unblocked by the wait's sigmask; a
	 * thread sends it while we sleep: -EINTR, handler ran, mask restored. */
	struct kill_later k = { pthread_self(), evqt_gettid(), q, 0 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, kill_later, &k) == 0);
	int n = evq_wait(q, ev, NEV, -1, &unblock);
	atomic_store(&k.left, 1);
	pthread_join(t, NULL);
	is(n, -EINTR, "sigmask: signal let through by the mask -> -EINTR");
	is(atomic_load(&usr1_calls), 1, "sigmask: handler ran once");
	ok(usr1_blocked(), "sigmask: thread mask restored after the wait");

	/* Without a sigmask the blocked signal stays pending and the wait
	 * times out normally. */
	pthread_kill(pthread_self(), SIGUSR1);
	n = evq_wait(q, ev, NEV, 30 * EVQT_MS, NULL);
	is(n, 0, "sigmask: NULL mask, blocked signal pending -> timeout 0");
	is(atomic_load(&usr1_calls), 1, "sigmask: handler not run");
	/* The mask swap is atomic: the pending signal interrupts at once. */
	n = evq_wait(q, ev, NEV, -1, &unblock);
	is(n, -EINTR, "sigmask: pending signal unblocked by the mask -> -EINTR");
	is(atomic_load(&usr1_calls), 2, "sigmask: handler ran for the pending signal");
	ok(usr1_blocked(), "sigmask: mask restored again");

	/* A mask that keeps it blocked: the signal does not interrupt. */
	atomic_store(&k.left, 0);
	CHECK(pthread_create(&t, NULL, kill_later, &k) == 0);
	n = evq_wait(q, ev, NEV, 80 * EVQT_MS, &blk);
	atomic_store(&k.left, 1);
	pthread_join(t, NULL);
	is(n, 0, "sigmask: mask blocking the signal -> timeout 0, no -EINTR");
	is(atomic_load(&usr1_calls), 2, "sigmask: handler not run while blocked");
	/* Unblocking delivers it. */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	is(atomic_load(&usr1_calls), 3, "sigmask: delivered when unblocked");

	/* Queue still works after -EINTR. */
	ok(evqt_roundtrip(q), "sigmask: queue still works");
	signal(SIGUSR1, SIG_DFL);
	evq_free(q);
}

static int count_id(const struct evq_event *ev, int n, int64_t id)
{
	int c = 0;
	for (int i = 0; i < n; i++)
		c += ev[i].id == id;
	return c;
}

/* max smaller than the ready set: the rest comes in later calls. */
static void test_small_max(void)
{
	enum { N = 10 };
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id[N];
	int seen[N] = { 0 };
	for (int i = 0; i < N; i++) {
		id[i] = evq_add_user(q, (uint64_t)i);
		CHECK(id[i] >= 0);
		for (int k = 0; k <= i; k++)
			CHECK(evq_trigger(q, id[i]) == 0);
	}
	int sizes[8], calls = 0, bad = 0;
	for (;;) {
		int n = evqt_wait(q, ev, 3, 0);
		if (n <= 0 || calls == 8)
			break;
		sizes[calls++] = n;
		for (int k = 0; k < n; k++) {
			uint64_t i = ev[k].cookie;
			if (i >= N || ev[k].id != id[i] || ev[k].data != i + 1 || seen[i]++)
				bad++;
		}
	}
	ok(calls == 4 && sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 3 && sizes[3] == 1,
	   "max 3, 10 user events: 3+3+3+1 (calls=%d)", calls);
	int all = 1;
	for (int i = 0; i < N; i++)
		all &= seen[i] == 1;
	ok(all && bad == 0, "max 3: every user event once, with its own count");

	/* max 1 with 10 readable edge fds: each exactly once, none lost. */
	int sv[N][2], fseen[N] = { 0 };
	int64_t fid[N];
	for (int i = 0; i < N; i++) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				 sv[i]) == 0);
		fid[i] = evq_add_fd(q, sv[i][0], EVQ_READ, EVQ_EDGE, (uint64_t)i);
		CHECK(fid[i] >= 0 && write(sv[i][1], "x", 1) == 1);
	}
	int got = 0;
	bad = 0;
	for (int c = 0; c < 3 * N; c++) {
		int n = evqt_wait(q, ev, 1, c < N ? EVQT_SOON : 20 * EVQT_MS);
		if (n < 0 || n > 1)
			bad++;
		if (n != 1)
			continue;
		uint64_t i = ev[0].cookie;
		if (i >= N || ev[0].id != fid[i] || fseen[i]++)
			bad++;
		else
			got++;
	}
	is(got, N, "max 1, 10 edge fds: every fd delivered");
	is(bad, 0, "max 1, 10 edge fds: none twice, nothing else");

	/* Level fds with max 3: every one is reported within a few calls (the
	 * rest of a batch is not starved by the first ones coming back).  4
	 * calls suffice when one wait sees all 10; a wait may see fewer (a
	 * backend re-arming asynchronously), so allow 3 times that. */
	for (int i = 0; i < N; i++)
		CHECK(evq_mod(q, fid[i], EVQ_READ, 0) == 0);
	memset(fseen, 0, sizeof fseen);
	int calls_needed = 0;
	all = 0;
	for (int c = 0; c < 12 && !all; c++) {
		int n = evqt_wait(q, ev, 3, EVQT_SOON);
		for (int k = 0; k < n; k++)
			if (ev[k].cookie < N)
				fseen[ev[k].cookie]++;
		all = 1;
		for (int i = 0; i < N; i++)
			all &= fseen[i] >= 1;
		calls_needed = c + 1;
	}
	diag("max 3, 10 level fds: all seen after %d calls", calls_needed);
	if (!ok(all, "max 3, 10 level fds: all reported within 12 calls")) {
		char buf[128];
		int len = 0;
		for (int i = 0; i < N; i++)
			len += snprintf(buf + len, sizeof buf - (size_t)len, " %d", fseen[i]);
		diag("times each fd was seen:%s", buf);
	}
	(void)count_id;
	evq_free(q);
	for (int i = 0; i < N; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

/* Never sleeps while events are pending: with one handed out of two, the
 * next wait with a long timeout returns the other without sleeping. */
static void test_no_sleep_when_pending(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t a = evq_add_user(q, 1), b = evq_add_user(q, 2);
	CHECK(a >= 0 && b >= 0);
	CHECK(evq_trigger(q, a) == 0 && evq_trigger(q, b) == 0);
	int n = evqt_wait(q, ev, 1, 0);
	CHECK(n == 1);
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	n = evqt_wait(q, ev, NEV, 20 * EVQT_SEC);
	int64_t dt = evqt_now(CLOCK_MONOTONIC) - t0;
	/* Not a speed bound: "slept the 20 s timeout" vs "returned". */
	ok(n == 1 && dt < 10 * EVQT_SEC, "pending: next wait returns the other at once");
	/* A trigger posted before the wait is seen by a blocking wait. */
	CHECK(evq_trigger(q, a) == 0);
	t0 = evqt_now(CLOCK_MONOTONIC);
	n = evqt_wait(q, ev, NEV, 20 * EVQT_SEC);
	dt = evqt_now(CLOCK_MONOTONIC) - t0;
	ok(n == 1 && ev[0].id == a && dt < 10 * EVQT_SEC,
	   "pending: trigger before a blocking wait returns at once");
	evq_free(q);
}

/* ---- no system call while events are pending (seccomp trap) ---- */
#if HAVE_SECCOMP_TEST
static volatile sig_atomic_t trapped, first_nr = -1;

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	(void)sig;
	if (trapped++ == 0)
		first_nr = si->si_syscall;
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#else
	uc->uc_mcontext.regs[0] = (unsigned long long)-ENOSYS;
#endif
}

static int trap_all_syscalls(void)
{
#if defined(__x86_64__)
	const unsigned arch = AUDIT_ARCH_X86_64;
#else
	const unsigned arch = AUDIT_ARCH_AARCH64;
#endif
	/* Allowed: what the measuring code itself needs (write, exit), signal
	 * return, and the clock (a vDSO call that may fall back to a syscall
	 * on odd clocksources). Everything else traps with SIGSYS. */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 6, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 5, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clock_gettime, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_gettimeofday, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -errno;
	return 0;
}

struct nosys_result {
	int setup;            /* 0 ok, else -errno of the seccomp setup */
	int trig_traps;       /* syscalls made by evq_trigger, nobody waiting */
	int n1, n2, n3;       /* evq_wait results with events pending */
	int traps[3];         /* syscalls made by each of those calls */
	int first_nr;
	uint64_t d1, d2;
};

static void nosys_child(int wfd)
{
	struct nosys_result r;
	memset(&r, 0, sizeof r);
	struct evq_event ev[8];
	struct evq *q = evqt_new();
	int64_t id = evq_add_user(q, 1), id2 = evq_add_user(q, 2);
	CHECK(id >= 0 && id2 >= 0);
	/* Warm up: one full round trip, including a sleeping wait. */
	CHECK(evq_trigger(q, id) == 0 && evq_wait(q, ev, 8, -1, NULL) == 1);
	CHECK(evq_wait(q, ev, 8, 1000, NULL) == 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	CHECK(sigaction(SIGSYS, &sa, NULL) == 0);
	sigset_t mask;
	sigemptyset(&mask);

	r.setup = trap_all_syscalls();
	if (r.setup == 0) {
		/* Nobody sleeps: triggering makes no system call. */
		evq_trigger(q, id);
		evq_trigger(q, id);
		evq_trigger(q, id2);
		r.trig_traps = trapped;
		/* Events pending: evq_wait returns them without a system call
		 * when the call before it asked the kernel (the warm-up's
		 * did), whatever the timeout and sigmask; the call after that
		 * polls the kernel once (fairness, F2: here the poll traps,
		 * and the pending events are returned all the same). */
		int before = trapped;
		r.n1 = evq_wait(q, ev, 1, -1, NULL);
		r.d1 = ev[0].data;
		r.traps[0] = trapped - before;
		before = trapped;
		r.n2 = evq_wait(q, ev, 8, 5 * EVQT_SEC, &mask);
		r.d2 = ev[0].data;
		r.traps[1] = trapped - before;
		evq_trigger(q, id2);
		before = trapped;
		r.n3 = evq_wait(q, ev, 8, 0, NULL);
		r.traps[2] = trapped - before;
		r.first_nr = first_nr;
	}
	if (write(wfd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(2);
	_exit(0);
}

static void test_no_syscall_when_pending(void)
{
	if (EVQT_SANITIZED || getenv("EVQ_TEST_VALGRIND")) {
		skip(5, "sanitizer/valgrind runtimes make their own system calls");
		return;
	}
	int p[2];
	CHECK(pipe(p) == 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		nosys_child(p[1]);
	}
	close(p[1]);
	struct nosys_result r;
	ssize_t got = read(p[0], &r, sizeof r);
	int st;
	waitpid(pid, &st, 0);
	close(p[0]);
	if (got != (ssize_t)sizeof r) {
		ok(0, "nosys: child reported (status %#x)", st);
		skip(6, "child failed");
		return;
	}
	if (r.setup != 0) {
		skip(7, "seccomp filter unavailable");
		return;
	}
	is(r.trig_traps, 0, "nosys: evq_trigger with no sleeper makes no system call");
	ok(r.n1 == 1 && r.d1 >= 1, "nosys: first wait returned a pending event (n=%d)", r.n1);
	ok(r.n2 == 1, "nosys: second wait (timeout, sigmask) returned the other (n=%d)", r.n2);
	ok(r.n3 == 1 && r.d1 + r.d2 == 3, "nosys: third wait; counts add up");
	is(r.traps[0], 0, "nosys: evq_wait with events pending, the kernel asked by "
	   "the call before: no system call");
	ok(r.traps[1] > 0, "nosys: the next one polls the kernel (%d system calls)",
	   r.traps[1]);
	is(r.traps[2], 0, "nosys: and the one after that makes none again");
	if (r.traps[0] || r.traps[2] || r.trig_traps)
		diag("first trapped syscall: %d", r.first_nr);
}

/* ---- one wake system call per sleeping waiter, not one per trigger ----
 * The triggering thread runs under a filter that traps every system call
 * (except sigreturn and calls re-issued by the handler, marked by a magic
 * sixth argument); the SIGSYS handler counts the call and re-issues it, so
 * the trigger still works and we learn how many calls it made. */
#define REISSUE_MAGIC 0x5ecc0de5u
static atomic_int thread_syscalls;

static void on_sigsys_reissue(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	int saved = errno;
	(void)sig;
	atomic_fetch_add(&thread_syscalls, 1);
#if defined(__x86_64__)
	greg_t *g = uc->uc_mcontext.gregs;
	long r = syscall(si->si_syscall, g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10],
			 g[REG_R8], (long)REISSUE_MAGIC);
	g[REG_RAX] = r == -1 ? -errno : r;
#else
	unsigned long long *x = uc->uc_mcontext.regs;
	long r = syscall(si->si_syscall, x[0], x[1], x[2], x[3], x[4], (long)REISSUE_MAGIC);
	x[0] = (unsigned long long)(r == -1 ? -errno : r);
#endif
	errno = saved;
}

static int trap_thread_syscalls(void)
{
#if defined(__x86_64__)
	const unsigned arch = AUDIT_ARCH_X86_64;
#else
	const unsigned arch = AUDIT_ARCH_AARCH64;
#endif
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 3, 0),
		/* low half of args[5] (little-endian) */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[5])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, REISSUE_MAGIC, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -errno;
	return 0;
}

enum { WK_IDS = 16 };

struct wakecount {
	struct evq *q;
	int64_t ids[WK_IDS];
	int rounds, setup;
	atomic_int waiter;    /* the waiter's thread id */
	atomic_int asleep;    /* rounds in which it was seen asleep */
	atomic_int phase;     /* waiter: 2*r+1 = about to sleep in round r */
	int calls[8];         /* syscalls made by the triggers of round r */
	int n[8];
	uint64_t data[8];
};

enum { WK_TRIGGERS = 1000 };

static void *wk_waiter(void *arg)
{
	struct wakecount *w = arg;
	struct evq_event ev[2 * WK_IDS];
	atomic_store(&w->waiter, evqt_gettid());
	for (int r = 0; r < w->rounds; r++) {
		atomic_store(&w->phase, 2 * r + 1);
		w->n[r] = evq_wait(w->q, ev, 2 * WK_IDS, 10 * EVQT_SEC, NULL);
		for (int i = 0; i < w->n[r]; i++)
			w->data[r] += ev[i].data;
		while (atomic_load(&w->phase) != 2 * r + 2) /* triggers done */
			sched_yield();
		/* collect what came after the wakeup */
		int n = evq_wait(w->q, ev, 2 * WK_IDS, 0, NULL);
		for (int i = 0; i < n; i++)
			w->data[r] += ev[i].data;
	}
	return NULL;
}

static void *wk_trigger(void *arg)
{
	struct wakecount *w = arg;
	w->setup = trap_thread_syscalls();
	for (int r = 0; r < w->rounds && w->setup == 0; r++) {
		while (atomic_load(&w->phase) != 2 * r + 1)
			;
		/* Until the waiter sleeps in the kernel inside evq_wait (it
		 * used to be "asleep by now" after 50 ms; had it not been,
		 * the triggers would have made no system call, and the
		 * check below proved nothing).  These reads trap too; the
		 * count starts after them. */
		if (evqt_until(atomic_load(&w->q->sleepers) > 0 &&
			       evqt_asleep_in_wait(atomic_load(&w->waiter))))
			atomic_fetch_add(&w->asleep, 1);
		atomic_store(&thread_syscalls, 0);
		/* spread over many ids: each first post of an id needs a kick */
		for (int i = 0; i < WK_TRIGGERS; i++)
			evq_trigger(w->q, w->ids[i % WK_IDS]);
		w->calls[r] = atomic_load(&thread_syscalls);
		atomic_store(&w->phase, 2 * r + 2);
	}
	if (w->setup != 0)
		for (int r = 0; r < w->rounds; r++)
			atomic_store(&w->phase, 2 * r + 2);
	return NULL;
}

static void test_one_wake_per_sleep(void)
{
	if (EVQT_SANITIZED || getenv("EVQ_TEST_VALGRIND")) {
		skip(4, "sanitizer/valgrind runtimes make their own system calls");
		return;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigsys_reissue;
	sa.sa_flags = SA_SIGINFO;
	CHECK(sigaction(SIGSYS, &sa, NULL) == 0);
	static struct wakecount w;
	w.q = evqt_new();
	for (int i = 0; i < WK_IDS; i++)
		CHECK((w.ids[i] = evq_add_user(w.q, (uint64_t)i)) >= 0);
	w.rounds = 3;
	pthread_t tw, tt;
	CHECK(pthread_create(&tw, NULL, wk_waiter, &w) == 0);
	CHECK(pthread_create(&tt, NULL, wk_trigger, &w) == 0);
	pthread_join(tt, NULL);
	pthread_join(tw, NULL);
	if (w.setup != 0) {
		skip(4, "seccomp filter unavailable");
		evq_free(w.q);
		return;
	}
	int woke = 1, most = 0, sum_ok = 1;
	for (int r = 0; r < w.rounds; r++) {
		woke &= w.n[r] >= 1;
		if (w.calls[r] > most)
			most = w.calls[r];
		sum_ok &= w.data[r] == WK_TRIGGERS;
	}
	is(atomic_load(&w.asleep), w.rounds, "wake: the waiter slept in evq_wait when the "
	   "triggers came, in each of %d rounds", w.rounds);
	ok(woke, "wake: the sleeping waiter was woken in each of %d rounds", w.rounds);
	ok(sum_ok, "wake: every trigger counted (%llu %llu %llu of %d)",
	   (unsigned long long)w.data[0], (unsigned long long)w.data[1],
	   (unsigned long long)w.data[2], WK_TRIGGERS);
	ok(most <= 1, "wake: %d triggers over %d ids on a sleeping waiter make at most 1 "
		      "system call (rounds: %d %d %d)", WK_TRIGGERS, WK_IDS, w.calls[0],
	   w.calls[1], w.calls[2]);
	evq_free(w.q);
}
#else
static void test_no_syscall_when_pending(void)
{
	skip(7, "seccomp trap test only on x86_64/aarch64 Linux");
}

static void test_one_wake_per_sleep(void)
{
	skip(4, "seccomp trap test only on x86_64/aarch64 Linux");
}
#endif

static void test_bad_args(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	is(evq_wait(NULL, ev, NEV, 0, NULL), -EINVAL, "bad: NULL queue -> -EINVAL");
	is(evq_wait(q, NULL, NEV, 0, NULL), -EINVAL, "bad: NULL events -> -EINVAL");
	is(evq_wait(q, ev, 0, 0, NULL), -EINVAL, "bad: max 0 -> -EINVAL");
	is(evq_wait(q, ev, -1, 0, NULL), -EINVAL, "bad: max -1 -> -EINVAL");
	/* Even with an event pending, bad arguments are refused first and the
	 * event is kept. */
	int64_t u = evq_add_user(q, 4);
	CHECK(u >= 0 && evq_trigger(q, u) == 0);
	is(evq_wait(q, ev, 0, 0, NULL), -EINVAL, "bad: max 0 with an event pending");
	int n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == u && ev[0].data == 1, "bad: pending event kept");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("wait");
	test_poll();
	test_timeouts();
	test_forever_and_huge();
	test_sigmask();
	test_small_max();
	test_no_sleep_when_pending();
	test_no_syscall_when_pending();
	test_one_wake_per_sleep();
	test_bad_args();
	return done();
}
