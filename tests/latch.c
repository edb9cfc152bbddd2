/* SPDX-License-Identifier: MIT */
/*
 * latch.c - latches: init/set/reset/is_set/wait and bad input (garbage
 * never crashes or hangs); wait returns at once when set, times out when
 * not, wakes on a set from another thread and from a signal handler;
 * setting an already-set latch, or one nobody waits for, makes no system
 * call (checked with a seccomp filter); set_many; through a queue: one
 * event per set, a set at registration fires at once, a set after a reset
 * is never mistaken for the old one, EVQ_ONESHOT/EVQ_DISABLED, evq_del.
 * set_many through the wake ring (one io_uring_enter), in pairs and by
 * default: 3..300 latches with threads and queues waiting, setters racing
 * for the ring, a signal handler interrupting a holder, a forked child
 * (its own ring, never the parent's), io_uring refused (EVQ_URING_REFUSE,
 * seccomp), and a setter forbidden futex calls (the ring does the wakes).
 * The cancellation barrier after a sleep (futex.h): there when cancellation
 * is enabled, absent when it is disabled, and a cancel then still waits.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h" /* evq__latch_batch_min */
#include "core/wakering.h" /* the wake ring's test hooks */

#define NEV 16
#define QUIET (30 * EVQT_MS)

/* futex_waitv (Linux 5.16) is what evq_waitv and the epoll backend's word
 * watcher use; valgrind 3.19 does not know it either.  Without it those
 * features answer -ENOSYS: skip what needs them. */

static void test_bad_input(void)
{
	struct evq_latch l;
	char buf[64] __attribute__((aligned(8)));
	struct evq_latch *odd = (struct evq_latch *)(buf + 1);
	is(evq_latch_init(NULL, 0), -EINVAL, "init(NULL) -> -EINVAL");
	is(evq_latch_init(odd, 0), -EINVAL, "init(misaligned) -> -EINVAL");
	is(evq_latch_init(&l, EVQ_ONESHOT), -EINVAL, "init(bad flags) -> -EINVAL");
	memset(&l, 0xa5, sizeof l);
	is(evq_latch_set(&l), -EINVAL, "garbage: set -> -EINVAL");
	is(evq_latch_reset(&l), -EINVAL, "garbage: reset -> -EINVAL");
	is(evq_latch_is_set(&l), -EINVAL, "garbage: is_set -> -EINVAL");
	is(evq_latch_wait(&l, -1), -EINVAL, "garbage: wait(forever) -> -EINVAL, no hang");
	struct evq *q = evqt_new();
	is(evq_add_latch(q, &l, 0, 1), -EINVAL, "garbage: add_latch -> -EINVAL");
	is(evq_add_latch(q, NULL, 0, 1), -EINVAL, "add_latch(NULL) -> -EINVAL");
	evq_free(q);
	struct evq_latch good;
	CHECK(evq_latch_init(&good, 0) == 0);
	struct evq_latch *arr[2] = { &good, &l };
	is(evq_latch_set_many(arr, 2), -EINVAL, "set_many with a garbage latch -> -EINVAL");
	is(evq_latch_is_set(&good), 0, "set_many: ... and sets none");
	is(evq_latch_set_many(NULL, 1), -EINVAL, "set_many(NULL, 1) -> -EINVAL");
	is(evq_latch_set_many(arr, -1), -EINVAL, "set_many(n < 0) -> -EINVAL");
	is(evq_latch_set_many(NULL, 0), 0, "set_many(NULL, 0) -> 0");
}

static void test_sync(void)
{
	struct evq_latch l;
	is(evq_latch_init(&l, 0), 0, "sync: init");
	is(evq_latch_is_set(&l), 0, "sync: not set");
	is(evq_latch_wait(&l, 0), -ETIMEDOUT, "sync: wait(0) unset -> -ETIMEDOUT");
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	is(evq_latch_wait(&l, 20 * EVQT_MS), -ETIMEDOUT, "sync: wait(20ms) -> -ETIMEDOUT");
	ok(evqt_now(CLOCK_MONOTONIC) - t0 >= 20 * EVQT_MS, "sync: not early");
	is(evq_latch_set(&l), 0, "sync: set");
	is(evq_latch_is_set(&l), 1, "sync: is set");
	is(evq_latch_set(&l), 0, "sync: set again");
	is(evq_latch_wait(&l, -1), 0, "sync: wait on a set latch -> 0 at once");
	is(evq_latch_is_set(&l), 1, "sync: wait does not reset");
	is(evq_latch_reset(&l), 0, "sync: reset");
	is(evq_latch_is_set(&l), 0, "sync: not set after reset");
}

static struct evq_latch tl;
static void *setter(void *a)
{
	(void)a;
	evqt_sleep_ns(10 * EVQT_MS);
	evq_latch_set(&tl);
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
	int e = errno;
	evq_latch_set(&tl);
	if (errno != e)
		_exit(3);
}

static void test_wakeups(void)
{
	pthread_t t;
	CHECK(evq_latch_init(&tl, 0) == 0);
	CHECK(pthread_create(&t, NULL, setter, NULL) == 0);
	is(evq_latch_wait(&tl, EVQT_SOON), 0, "wake: set from another thread wakes wait");
	pthread_join(t, NULL);
	/* Many rounds: no set is ever missed. */
	long rounds = evqt_scale(2000), missed = 0;
	for (long i = 0; i < rounds; i++) {
		evq_latch_reset(&tl);
		CHECK(pthread_create(&t, NULL, setter, NULL) == 0);
		if (evq_latch_wait(&tl, EVQT_SOON) != 0)
			missed++;
		pthread_join(t, NULL);
		if (i == 20)
			break; /* the sleep in setter makes more rounds slow */
	}
	is(missed, 0, "wake: rounds with a missed set");
	/* From a signal handler (async-signal-safe, errno preserved). */
	evq_latch_reset(&tl);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	struct sigaction old;
	sigaction(SIGUSR1, &sa, &old);
	pid_t self = getpid();
	pid_t k = fork();
	CHECK(k >= 0);
	if (k == 0) {
		evqt_sleep_ns(10 * EVQT_MS);
		kill(self, SIGUSR1);
		_exit(0);
	}
	int rc;
	do
		rc = evq_latch_wait(&tl, EVQT_SOON);
	while (rc == -EINTR);
	is(rc, 0, "wake: set from a signal handler wakes wait (-EINTR retried)");
	waitpid(k, NULL, 0);
	sigaction(SIGUSR1, &old, NULL);
}

/* A set of an already-set latch, or of one nobody waits for, makes no
 * system call: in a child, a seccomp filter kills the process on any
 * futex call. */
static int no_futex_child(void (*fn)(struct evq_latch *), struct evq_latch *l)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
#if defined(__x86_64__)
		const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
		const unsigned arch = AUDIT_ARCH_AARCH64;
#else
		_exit(77);
#endif
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_futex, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
			_exit(77);
		fn(l);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static void set_twice(struct evq_latch *l)
{
	evq_latch_set(l);
	evq_latch_set(l);
	struct evq_latch *arr[3] = { l, l, l };
	evq_latch_set_many(arr, 3);
}

static void do_futex(struct evq_latch *l)
{
	syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void test_no_syscall(void)
{
	struct evq_latch l;
	CHECK(evq_latch_init(&l, 0) == 0);
	int probe = no_futex_child(do_futex, &l);
	if (probe == 77) {
		skip(3, "seccomp not available");
		return;
	}
	ok(probe == 128 + SIGSYS, "no-syscall: the filter does kill a futex call (status %d)", probe);
	/* Unset, but nobody waits: set makes no futex call. */
	is(no_futex_child(set_twice, &l), 0, "no-syscall: set with no waiter makes no futex call");
	/* Set, with a (pretend) waiter counted: still no call. */
	evq_latch_set(&l);
	__atomic_store_n(&l.waiters, 1, __ATOMIC_SEQ_CST);
	is(no_futex_child(set_twice, &l), 0, "no-syscall: set of a set latch makes no futex call");
	__atomic_store_n(&l.waiters, 0, __ATOMIC_SEQ_CST);
}

static pthread_t sm_t[5];
static atomic_int sm_woken;
static void *sm_waiter(void *a)
{
	if (evq_latch_wait(a, EVQT_SOON) == 0)
		atomic_fetch_add(&sm_woken, 1);
	return NULL;
}

static void test_set_many(void)
{
	enum { N = 5 };
	struct evq_latch l[N], *p[N];
	for (int i = 0; i < N; i++) {
		CHECK(evq_latch_init(&l[i], 0) == 0);
		p[i] = &l[i];
	}
	is(evq_latch_set_many(p, N), 0, "set_many: 5 latches");
	int all = 1;
	for (int i = 0; i < N; i++)
		all &= evq_latch_is_set(&l[i]) == 1;
	ok(all, "set_many: all set");
	/* Waiters on every latch, some shared, some private, one listed
	 * twice: all woken (pairs share one FUTEX_WAKE_OP). */
	for (int i = 0; i < N; i++) {
		CHECK(evq_latch_init(&l[i], i == 2 ? EVQ_SHARED : 0) == 0);
		CHECK(pthread_create(&sm_t[i], NULL, sm_waiter, &l[i]) == 0);
	}
	for (int i = 0; i < N; i++)
		while (__atomic_load_n(&l[i].waiters, __ATOMIC_SEQ_CST) == 0)
			evqt_sleep_ns(EVQT_MS);
	struct evq_latch *q6[N + 1] = { p[0], p[1], p[1], p[2], p[3], p[4] };
	is(evq_latch_set_many(q6, N + 1), 0, "set_many: with a waiter on each");
	for (int i = 0; i < N; i++)
		pthread_join(sm_t[i], NULL);
	is(atomic_load(&sm_woken), N, "set_many: every waiter woke");
}

/* ---- evq_latch_set_many through the wake ring (issue 4) ---- */

/* Batch minimums: 1 forces the wake ring for any batch, 0 keeps the old
 * FUTEX_WAKE_OP pairs, -1 is the default. */
static const int batch_modes[] = { 1, 0, -1 };
static const char *batch_name(int m) { return m == 1 ? "ring" : m == 0 ? "pairs" : "default"; }

static atomic_int wm_woken, wm_failed;

/* Waits once for its latch (retrying -EINTR), counts the wake. */
static void *wm_waiter(void *a)
{
	int rc;
	do
		rc = evq_latch_wait(a, EVQT_SOON);
	while (rc == -EINTR);
	atomic_fetch_add(rc == 0 ? &wm_woken : &wm_failed, 1);
	return NULL;
}

/* Until every latch of l[] with want[i] counts a waiter and every other
 * thread sleeps (the waiters in the kernel, on their latches), so that the
 * set wakes sleepers.  Not required for the counts, which hold either way
 * (a waiter that comes late finds its latch set): it makes the wakes real.
 * Gives up after EVQT_SOON; the counts are still checked. */
static void wm_until_waiting(struct evq_latch *l, const int *want, int n)
{
	evqt_until(({
		int all = 1;
		for (int i = 0; i < n; i++)
			all &= !want[i] || __atomic_load_n(&l[i].waiters, __ATOMIC_SEQ_CST) > 0;
		all && evqt_quiescent();
	}));
}

#define WM_MAX 300

/* n latches (every third EVQ_SHARED): a thread in evq_latch_wait on every
 * fourth, a queue registration on the next, a counted waiter that never
 * sleeps on the next (its wake finds nobody), nobody on the rest; the list
 * names two latches twice.  One set_many must wake every thread and post
 * exactly one event per registration. */
static int wide_round(int n, int mode, struct evq *q)
{
	static struct evq_latch l[WM_MAX];
	static struct evq_latch *p[WM_MAX + 2];
	static pthread_t t[WM_MAX];
	static int want[WM_MAX], seen[WM_MAX];
	static int64_t ids[WM_MAX];
	int threads = 0, regs = 0, bad = 0;
	atomic_store(&wm_woken, 0);
	atomic_store(&wm_failed, 0);
	for (int i = 0; i < n; i++) {
		CHECK(evq_latch_init(&l[i], i % 3 == 1 ? EVQ_SHARED : 0) == 0);
		p[i] = &l[i];
		want[i] = seen[i] = 0;
		ids[i] = -1;
	}
	p[n] = &l[0];
	p[n + 1] = &l[n - 1];
	for (int i = 0; i < n; i++) {
		switch (i % 4) {
		case 0:
			CHECK(pthread_create(&t[threads++], NULL, wm_waiter, &l[i]) == 0);
			want[i] = 1;
			break;
		case 1:
			ids[i] = evq_add_latch(q, &l[i], 0, (uint64_t)i);
			CHECK(ids[i] >= 0);
			regs++;
			break;
		case 2:
			__atomic_store_n(&l[i].waiters, 1, __ATOMIC_SEQ_CST);
			break;
		}
	}
	wm_until_waiting(l, want, n);
	evq__latch_batch_min(mode);
	int rc = evq_latch_set_many(p, n + 2);
	evq__latch_batch_min(-1);
	bad |= rc != 0;
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	bad |= atomic_load(&wm_woken) != threads || atomic_load(&wm_failed) != 0;
	struct evq_event ev[NEV];
	int got = 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (got < regs && evqt_now(CLOCK_MONOTONIC) < end) {
		int k = evqt_wait(q, ev, NEV, EVQT_SOON);
		for (int j = 0; j < k; j++) {
			uint64_t c = ev[j].cookie;
			if (c >= (uint64_t)n || ids[c] != ev[j].id || seen[c]++)
				bad = 1; /* unknown, or twice */
			else
				got++;
		}
	}
	bad |= got != regs;
	bad |= evqt_wait(q, ev, NEV, 0) != 0; /* nothing more */
	for (int i = 0; i < n; i++) {
		bad |= evq_latch_is_set(&l[i]) != 1;
		if (ids[i] >= 0)
			CHECK(evq_del(q, ids[i]) == 0);
		if (i % 4 == 2)
			__atomic_store_n(&l[i].waiters, 0, __ATOMIC_SEQ_CST);
	}
	if (bad)
		diag("wide n=%d %s: rc %d, threads %d/%d woke (%d failed), events %d/%d",
		     n, batch_name(mode), rc, atomic_load(&wm_woken), threads,
		     atomic_load(&wm_failed), got, regs);
	return !bad;
}

static void test_set_many_wide(void)
{
	static const int sizes[] = { 3, 7, 8, 9, 63, 64, 65, 130, 300 };
	struct evq *q = evqt_new();
	for (size_t m = 0; m < sizeof batch_modes / sizeof batch_modes[0]; m++) {
		int good = 0, total = 0;
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++, total++)
			good += wide_round(sizes[s], batch_modes[m], q);
		is(good, total, "set_many wide (%s): 3..300 latches, mixed sharing, threads and "
		   "queues: every waiter woken once", batch_name(batch_modes[m]));
	}
	evq_free(q);
}

/* Several threads run set_many at once, each on its own group of latches
 * with a waiter each: the wake ring admits one at a time, the others wake
 * in pairs.  Every set of every round must reach its waiter. */
enum { CS_SETTERS = 4, CS_GROUP = 12 };
static struct evq_latch cs_l[CS_SETTERS][CS_GROUP];
static atomic_int cs_count[CS_SETTERS][CS_GROUP];
static atomic_int cs_failed;
static long cs_rounds;

static void *cs_waiter(void *a)
{
	int g = (int)((intptr_t)a / CS_GROUP), i = (int)((intptr_t)a % CS_GROUP);
	for (long r = 0; r < cs_rounds; r++) {
		int rc;
		do
			rc = evq_latch_wait(&cs_l[g][i], EVQT_SOON);
		while (rc == -EINTR);
		if (rc != 0) {
			atomic_fetch_add(&cs_failed, 1);
			return NULL;
		}
		evq_latch_reset(&cs_l[g][i]);
		atomic_fetch_add(&cs_count[g][i], 1);
	}
	return NULL;
}

static void *cs_setter(void *a)
{
	int g = (int)(intptr_t)a;
	struct evq_latch *p[CS_GROUP];
	for (int i = 0; i < CS_GROUP; i++)
		p[i] = &cs_l[g][i];
	for (long r = 0; r < cs_rounds; r++) {
		if (evq_latch_set_many(p, CS_GROUP) != 0)
			atomic_fetch_add(&cs_failed, 1);
		/* next round once every waiter took this one (and reset) */
		int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
		for (int i = 0; i < CS_GROUP; i++)
			while (atomic_load(&cs_count[g][i]) <= r) {
				if (evqt_now(CLOCK_MONOTONIC) > end || atomic_load(&cs_failed))
					return NULL;
				sched_yield();
			}
	}
	return NULL;
}

static void test_set_many_concurrent(void)
{
	pthread_t w[CS_SETTERS * CS_GROUP], s[CS_SETTERS];
	cs_rounds = evqt_scale(400);
	for (int g = 0; g < CS_SETTERS; g++)
		for (int i = 0; i < CS_GROUP; i++) {
			CHECK(evq_latch_init(&cs_l[g][i], (g + i) % 2 ? EVQ_SHARED : 0) == 0);
			atomic_store(&cs_count[g][i], 0);
		}
	evq__latch_batch_min(1);
	for (int k = 0; k < CS_SETTERS * CS_GROUP; k++)
		CHECK(pthread_create(&w[k], NULL, cs_waiter, (void *)(intptr_t)k) == 0);
	for (int g = 0; g < CS_SETTERS; g++)
		CHECK(pthread_create(&s[g], NULL, cs_setter, (void *)(intptr_t)g) == 0);
	for (int g = 0; g < CS_SETTERS; g++)
		pthread_join(s[g], NULL);
	for (int k = 0; k < CS_SETTERS * CS_GROUP; k++)
		pthread_join(w[k], NULL);
	evq__latch_batch_min(-1);
	long total = 0;
	for (int g = 0; g < CS_SETTERS; g++)
		for (int i = 0; i < CS_GROUP; i++)
			total += atomic_load(&cs_count[g][i]);
	is(atomic_load(&cs_failed), 0, "set_many concurrent: no wait timed out");
	is(total, cs_rounds * CS_SETTERS * CS_GROUP,
	   "set_many concurrent: %d threads x %ld rounds x %d latches, every set woke its waiter",
	   CS_SETTERS, cs_rounds, CS_GROUP);
}

/* A signal handler calls set_many while its thread is inside set_many
 * (mostly inside the wake ring): it finds the ring busy, wakes in pairs,
 * and preserves errno. */
enum { SG_A = 64, SG_B = 6 };
static struct evq_latch sg_a[SG_A], sg_b[SG_B];
static atomic_int sg_count, sg_busy, sg_errno_bad, sg_stop, sg_failed;
static uint32_t sg_dummy;

static void on_usr2(int sig)
{
	(void)sig;
	int e = errno;
	uint32_t *w = &sg_dummy;
	errno = 12345;
	if (evq__uring_wake_batch(&w, 0, 1) == -EBUSY)
		atomic_fetch_add(&sg_busy, 1);
	struct evq_latch *p[SG_B];
	for (int i = 0; i < SG_B; i++)
		p[i] = &sg_b[i];
	evq_latch_set_many(p, SG_B);
	if (errno != 12345)
		atomic_fetch_add(&sg_errno_bad, 1);
	errno = e;
}

static void *sg_looper(void *a)
{
	(void)a;
	struct evq_latch *p[SG_A];
	for (int i = 0; i < SG_A; i++)
		p[i] = &sg_a[i];
	while (!atomic_load(&sg_stop)) {
		for (int i = 0; i < SG_A; i++)
			evq_latch_reset(&sg_a[i]);
		evq_latch_set_many(p, SG_A);
	}
	return NULL;
}

/* How long one round may take.  valgrind runs one thread at a time and
 * its default lock is unfair: a woken waiter was once seen not to run for
 * 10 s while the looper and the main thread kept the lock busy, and one
 * round was seen to take 73 s (a CI run failed on it).  make check-valgrind
 * now runs valgrind with --fair-sched=yes (rounds then take 10-30 ms), and
 * the main thread sleeps between its looks. */
static int64_t sg_soon(void)
{
	return getenv("EVQ_TEST_VALGRIND") ? 6 * EVQT_SOON : EVQT_SOON;
}

static void *sg_waiter(void *a)
{
	struct evq_latch *l = a;
	for (;;) {
		int rc;
		do /* no deadline of its own: the main thread's finds a loss */
			rc = evq_latch_wait(l, -1);
		while (rc == -EINTR);
		if (rc != 0) {
			atomic_fetch_add(&sg_failed, 1);
			return NULL;
		}
		if (atomic_load(&sg_stop))
			return NULL;
		evq_latch_reset(l);
		atomic_fetch_add(&sg_count, 1);
	}
}

static void test_set_many_signal(void)
{
	pthread_t loop, w[SG_B];
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, &old);
	for (int i = 0; i < SG_A; i++) {
		CHECK(evq_latch_init(&sg_a[i], i % 2 ? EVQ_SHARED : 0) == 0);
		__atomic_store_n(&sg_a[i].waiters, 1, __ATOMIC_SEQ_CST); /* never asleep */
	}
	for (int i = 0; i < SG_B; i++) {
		CHECK(evq_latch_init(&sg_b[i], i % 3 ? 0 : EVQ_SHARED) == 0);
		CHECK(pthread_create(&w[i], NULL, sg_waiter, &sg_b[i]) == 0);
	}
	evq__latch_batch_min(1);
	CHECK(pthread_create(&loop, NULL, sg_looper, NULL) == 0);
	/* valgrind delivers a signal to a busy thread only every second or
	 * so: 20 rounds there (2-4 minutes at the scaled 75 otherwise) */
	int vg = getenv("EVQ_TEST_VALGRIND") != NULL;
	long rounds = vg ? 20 : evqt_scale(1500), r;
	int lost = 0;
	int64_t slowest = 0;
	for (r = 0; r < rounds && !lost; r++) {
		pthread_kill(loop, SIGUSR2);
		int64_t t0 = evqt_now(CLOCK_MONOTONIC), end = t0 + sg_soon();
		while (atomic_load(&sg_count) < (r + 1) * SG_B && !lost)
			if (evqt_now(CLOCK_MONOTONIC) > end || atomic_load(&sg_failed))
				lost = 1;
			else if (vg)
				evqt_sleep_ns(1000000); /* leave valgrind's lock to the waiters */
			else
				sched_yield();
		if (evqt_now(CLOCK_MONOTONIC) - t0 > slowest)
			slowest = evqt_now(CLOCK_MONOTONIC) - t0;
	}
	diag("slowest of %ld rounds: %.3f s", r, slowest / 1e9);
	if (lost)
		diag("lost at round %ld of %ld: count %d (want %ld), a waiter failed: %d",
		     r, rounds, atomic_load(&sg_count), r * SG_B, atomic_load(&sg_failed));
	atomic_store(&sg_stop, 1);
	pthread_join(loop, NULL);
	for (int i = 0; i < SG_B; i++)
		evq_latch_set(&sg_b[i]);
	for (int i = 0; i < SG_B; i++)
		pthread_join(w[i], NULL);
	evq__latch_batch_min(-1);
	sigaction(SIGUSR2, &old, NULL);
	is(atomic_load(&sg_count), rounds * SG_B,
	   "set_many in a handler interrupting set_many: %ld signals, every waiter woke each time",
	   rounds);
	is(atomic_load(&sg_errno_bad), 0, "set_many in a handler: errno preserved");
	int have_ring = evq__wake_ring_fd() >= 0;
	diag("handler found the wake ring busy %d times of %ld", atomic_load(&sg_busy), rounds);
	if (!have_ring || EVQT_TSAN || getenv("EVQ_TEST_VALGRIND"))
		skip(1, "no wake ring, or signals deferred to safe points (TSan/valgrind)");
	else
		ok(atomic_load(&sg_busy) > 0, "set_many in a handler: it did interrupt a holder "
		   "of the wake ring (busy %d times)", atomic_load(&sg_busy));
}

/* SqHead of an io_uring fd, from /proc/self/fdinfo; -1 if unknown. */
static long sq_head(int fd)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	long h = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "SqHead: %ld", &h) == 1)
			break;
	fclose(f);
	return h;
}

/* In a child: k waiter threads (mixed sharing) woken by one set_many with
 * the ring forced; 0 if all woke. */
static int child_wakes(int k)
{
	static struct evq_latch l[32];
	static struct evq_latch *p[32];
	pthread_t t[32];
	int want[32];
	atomic_store(&wm_woken, 0);
	atomic_store(&wm_failed, 0);
	for (int i = 0; i < k; i++) {
		if (evq_latch_init(&l[i], i % 2 ? EVQ_SHARED : 0) != 0)
			return 20;
		p[i] = &l[i];
		want[i] = 1;
		if (pthread_create(&t[i], NULL, wm_waiter, &l[i]) != 0)
			return 21;
	}
	wm_until_waiting(l, want, k);
	evq__latch_batch_min(1);
	if (evq_latch_set_many(p, k) != 0)
		return 22;
	for (int i = 0; i < k; i++)
		pthread_join(t[i], NULL);
	return atomic_load(&wm_woken) == k && atomic_load(&wm_failed) == 0 ? 0 : 23;
}

static int child_status(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_set_many_fork(void)
{
	struct evq_latch l[8], *p[8];
	for (int i = 0; i < 8; i++) {
		CHECK(evq_latch_init(&l[i], 0) == 0);
		__atomic_store_n(&l[i].waiters, 1, __ATOMIC_SEQ_CST);
		p[i] = &l[i];
	}
	evq__latch_batch_min(1);
	CHECK(evq_latch_set_many(p, 8) == 0);
	int fd = evq__wake_ring_fd();
	long h0 = fd >= 0 ? sq_head(fd) : -1;
	if (fd < 0 || h0 < 0) {
		evq__latch_batch_min(-1);
		skip(4, "no wake ring in this process (io_uring refused or too old)");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int rc = child_wakes(10);
		if (rc)
			_exit(rc);
		/* its own ring: fresh, so exactly the 10 wakes went through it */
		int cfd = evq__wake_ring_fd();
		_exit(cfd < 0 ? 30 : sq_head(cfd) != 10 ? 31 : 0);
	}
	int st = child_status(pid);
	is(st, 0, "fork: the child's set_many wakes its waiters through a ring of its own "
	   "(status %d)", st);
	is(sq_head(fd), h0, "fork: the child never submitted on the parent's ring");
	for (int i = 0; i < 8; i++)
		evq_latch_reset(&l[i]);
	is(evq_latch_set_many(p, 8), 0, "fork: the parent's set_many after the child");
	is(sq_head(fd), h0 + 8, "fork: ... went through the parent's ring, still its own");
	for (int i = 0; i < 8; i++)
		__atomic_store_n(&l[i].waiters, 0, __ATOMIC_SEQ_CST);
	evq__latch_batch_min(-1);
}

/* Installs, for the calling thread (and threads it creates later), a
 * filter answering system call nr with ret - with check_arg, only when the
 * low 32 bits of its first argument are arg0 (close(-1): 0xffffffff).
 * 0, or 77 if impossible. */
static int filter_syscall_arg(long nr, unsigned ret, int check_arg, uint32_t arg0)
{
#if defined(__x86_64__)
	const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
	const unsigned arch = AUDIT_ARCH_AARCH64;
#else
	(void)nr, (void)ret, (void)check_arg, (void)arg0;
	return 77;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
	struct sock_filter f[9];
	unsigned short k = 0;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0,
					      check_arg ? 3 : 1);
	if (check_arg) {
		/* the argument's low half: both arches are little-endian */
		f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						      offsetof(struct seccomp_data, args[0]));
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arg0, 0, 1);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { k, f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return 77;
	return 0;
#endif
}

static int filter_syscall(long nr, unsigned ret)
{
	return filter_syscall_arg(nr, ret, 0, 0);
}

/* The wakes really go through the ring: the setting thread may not call
 * futex at all (a filter on it alone kills the process if it does). */
static int child_no_futex(void)
{
	static struct evq_latch l[12];
	static struct evq_latch *p[12];
	pthread_t t[12];
	int want[12];
	for (int i = 0; i < 12; i++) {
		if (evq_latch_init(&l[i], i % 3 ? 0 : EVQ_SHARED) != 0)
			return 20;
		p[i] = &l[i];
		want[i] = 1;
		if (pthread_create(&t[i], NULL, wm_waiter, &l[i]) != 0)
			return 21;
	}
	wm_until_waiting(l, want, 12);
	evq__latch_batch_min(1);
	if (filter_syscall(__NR_futex, SECCOMP_RET_KILL_PROCESS) != 0)
		return 77;
	if (evq_latch_set_many(p, 12) != 0)
		return 22;
	/* no pthread_join (futex): count, sleeping with nanosleep */
	for (int i = 0; i < 10000 && atomic_load(&wm_woken) < 12; i++)
		evqt_sleep_ns(EVQT_MS);
	return atomic_load(&wm_woken) == 12 ? 0 : 23;
}

/* io_uring refused: set_many still wakes everyone, in pairs. */
static int child_refused(int how)
{
	if (how == 0) {
		/* EVQ_URING_REFUSE is honoured: were it not, the ring's
		 * system calls would kill the process */
		setenv("EVQ_URING_REFUSE", "setup", 1);
		if (filter_syscall(__NR_io_uring_setup, SECCOMP_RET_KILL_PROCESS) != 0)
			return 77;
	} else if (filter_syscall(__NR_io_uring_setup, SECCOMP_RET_ERRNO | (unsigned)how) != 0) {
		return 77;
	}
	for (int i = 0; i < 3; i++) { /* the refusal is remembered */
		int rc = child_wakes(9);
		if (rc)
			return rc;
	}
	return evq__wake_ring_fd() == -ENOSYS ? 0 : 24;
}

static void test_set_many_ring_used_or_refused(void)
{
	if (getenv("EVQ_TEST_VALGRIND")) {
		skip(4, "seccomp filters: not under valgrind");
		return;
	}
	int have_ring = evq__wake_ring_fd() >= 0;
	int st;
	pid_t pid;
	if (EVQT_TSAN) {
		/* its runtime makes futex calls of its own (internal locks the
		 * woken waiters contend for) in the thread the filter watches:
		 * seen killing the child once in CI */
		skip(1, "ThreadSanitizer: its runtime calls futex in the filtered thread");
	} else {
		fflush(stdout);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) /* exit_group: the waiters are not joined (that
			       * takes futex calls) */
			syscall(SYS_exit_group, child_no_futex());
		st = child_status(pid);
		if (st == 77 || !have_ring)
			skip(1, "seccomp unavailable, or no wake ring here");
		else
			is(st, 0, "ring: 12 waiters woken by a setter that makes no futex "
			   "call (status %d)", st);
	}
	static const struct { int how; const char *name; } r[] = {
		{ 0, "EVQ_URING_REFUSE=setup" }, { EPERM, "seccomp EPERM" },
		{ ENOSYS, "seccomp ENOSYS" },
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		fflush(stdout);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			_exit(child_refused(r[i].how));
		st = child_status(pid);
		if (st == 77)
			skip(1, "seccomp unavailable");
		else
			is(st, 0, "refused (%s): set_many falls back and wakes every waiter "
			   "(status %d)", r[i].name, st);
	}
}

/* The cancellation barrier (futex.h): a sleeper with cancellation enabled
 * passes through close(-1) after its futex wait, one with cancellation
 * disabled does not (no SIGCANCEL can be on its way to it).  In a child
 * whose waiting thread is killed by a close(-1) (only that: a sanitizer's
 * runtime closes its own files at exit), the waiter sleeps until another
 * thread (created before the filter) sets the latch. */
static struct evq_latch cb_l;
static pid_t cb_tid; /* the sleeper */
static void *cb_setter(void *a)
{
	/* sets once the sleeper is in its futex wait: a set before it would
	 * end the wait without a sleep (and so without a barrier) */
	evqt_until(evqt_asleep_in(cb_tid, SYS_futex, &cb_l.state));
	evq_latch_set(&cb_l);
	return a;
}

static int child_barrier(int disable)
{
	int old;
	pthread_t t;
	cb_tid = evqt_gettid();
	if (disable)
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	if (evq_latch_init(&cb_l, 0) != 0 ||
	    pthread_create(&t, NULL, cb_setter, NULL) != 0)
		return 20;
	if (filter_syscall_arg(__NR_close, SECCOMP_RET_KILL_PROCESS, 1, 0xffffffffu) != 0)
		return 77;
	int rc = evq_latch_wait(&cb_l, EVQT_SOON) == 0 ? 0 : 21;
	pthread_join(t, NULL);
	return rc;
}

/* A cancel that arrives while a thread with cancellation disabled sleeps
 * waits: the set ends the sleep, the cancel acts once it is enabled. */
static atomic_int cd_asleep;
/* Not on the stack: the cancel unwinds cd_waiter's frame without its
 * epilogue, and AddressSanitizer would find the redzones of a local left
 * poisoned below the thread's exit (google/sanitizers#1399: clang's ASan
 * runtime then reports its own sigaltstack call there). */
static _Thread_local int cd_old;
static void *cd_waiter(void *a)
{
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cd_old);
	atomic_store(&cd_asleep, 1);
	int rc = evq_latch_wait(&cb_l, EVQT_SOON);
	atomic_store(&cd_asleep, rc == 0 ? 2 : 3);
	pthread_setcancelstate(cd_old, &cd_old);
	pthread_testcancel();
	return a;
}

static void test_cancel_barrier(void)
{
	if (getenv("EVQ_TEST_VALGRIND")) {
		skip(3, "seccomp filters: not under valgrind");
	} else {
		int st[2];
		for (int disable = 0; disable < 2; disable++) {
			pid_t pid = fork();
			if (pid == 0)
				_exit(child_barrier(disable));
			st[disable] = pid < 0 ? -1 : child_status(pid);
		}
		if (st[0] == 77 || st[1] == 77) {
			skip(2, "seccomp unavailable");
		} else {
			is(st[0], 128 + SIGSYS, "barrier: an enabled sleeper passes "
			   "through close(-1) (status %d)", st[0]);
			is(st[1], 0, "barrier: a disabled sleeper makes no close(-1) "
			   "(status %d)", st[1]);
		}
	}
	pthread_t t;
	void *res = NULL;
	CHECK(evq_latch_init(&cb_l, 0) == 0);
	CHECK(pthread_create(&t, NULL, cd_waiter, NULL) == 0);
	while (atomic_load(&cd_asleep) == 0 ||
	       __atomic_load_n(&cb_l.waiters, __ATOMIC_SEQ_CST) == 0)
		evqt_sleep_ns(EVQT_MS);
	evqt_sleep_ns(10 * EVQT_MS); /* into the futex wait, most likely */
	pthread_cancel(t);
	evqt_sleep_ns(10 * EVQT_MS);
	evq_latch_set(&cb_l);
	pthread_join(t, &res);
	ok(res == PTHREAD_CANCELED && atomic_load(&cd_asleep) == 2,
	   "barrier: a cancel while disabled waits for the set, then acts");
}

static void test_queue(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct evq_latch l;
	CHECK(evq_latch_init(&l, 0) == 0);
	int64_t id = evq_add_latch(q, &l, 0, 55);
	ok(id >= 0, "queue: add_latch -> %" PRId64 "", id);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: unset -> nothing");
	evq_latch_set(&l);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].cookie == 55 && ev[0].kind == EVQ_KIND_LATCH && ev[0].data == 1,
	   "queue: set -> one event (n=%d)", n);
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: set again while set -> nothing");
	/* Reset then set, fast: a new event, never mistaken for the old set. */
	long rounds = evqt_scale(2000), lost = 0;
	for (long i = 0; i < rounds; i++) {
		evq_latch_reset(&l);
		evq_latch_set(&l);
		if (evqt_wait(q, ev, NEV, EVQT_SOON) != 1)
			lost++;
	}
	is(lost, 0, "queue: %ld reset+set rounds, each one event", rounds);
	/* Sets while an event is pending coalesce. */
	for (int i = 0; i < 10; i++) {
		evq_latch_reset(&l);
		evq_latch_set(&l);
	}
	/* The epoll watcher posts each set it sees, in its own thread: not a
	 * sleep "long enough", but until it has seen the last set and sleeps
	 * again (every other thread asleep), so that nothing is posted after
	 * the event below is handed out.  (io_uring: evq_wait checks.) */
	ok(evqt_until(evqt_quiescent()), "queue: the watcher settles after the sets");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "queue: 10 sets while pending -> one event");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: ... and no more");
	is(evq_del(q, id), 0, "queue: evq_del");
	evq_latch_reset(&l);
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: after del -> nothing");
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "queue: del uncounted its waiter");
	/* A latch set when registered fires at once. */
	id = evq_add_latch(q, &l, 0, 56);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].cookie == 56, "queue: set at registration -> fires at once");
	/* oneshot */
	is(evq_mod(q, id, 0, EVQ_ONESHOT), 0, "queue: evq_mod(ONESHOT)");
	evq_latch_reset(&l);
	evq_latch_set(&l);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1, "oneshot: one event");
	evq_latch_reset(&l);
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: then nothing");
	is(evq_mod(q, id, 0, 0), 0, "oneshot: enable again");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1, "oneshot: enabled while set -> fires");
	is(evq_mod(q, id, 0, EVQ_DISABLED), 0, "disabled: evq_mod(DISABLED)");
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "disabled: not counted as a waiter");
	evq_latch_reset(&l);
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: set -> nothing");
	evq_free(q);
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "evq_free: no waiter left counted");
}

/* flags at evq_add_latch: EVQ_ONESHOT, EVQ_DISABLED, nothing else. */
static void test_flags(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct evq_latch l;
	CHECK(evq_latch_init(&l, 0) == 0);
	static const uint32_t bad[] = { EVQ_EDGE, EVQ_ABSTIME, EVQ_SHARED, EVQ_NOREAP,
					0x40u, 0x100u, 0x80000000u,
					EVQ_DISABLED | EVQ_EDGE };
	int good = 1;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (evq_add_latch(q, &l, bad[i], 1) != -EINVAL)
			good = 0;
	ok(good, "flags: anything but ONESHOT|DISABLED -> -EINVAL");
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "flags: refused adds count no waiter");

	/* EVQ_DISABLED: registered, not watching, nothing until enabled */
	int64_t d = evq_add_latch(q, &l, EVQ_DISABLED, 5);
	ok(d >= 0, "flags: add(DISABLED) -> id");
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "flags: disabled -> not counted as a waiter");
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: disabled, set -> nothing");
	is(evq_mod(q, d, 0, 0), 0, "flags: enable");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == d && ev[0].data == 1, "flags: enabled while set -> fires");
	is(evq_del(q, d), 0, "flags: del");
	evq_latch_reset(&l);

	/* EVQ_ONESHOT at add: one event, then nothing until evq_mod */
	int64_t o = evq_add_latch(q, &l, EVQ_ONESHOT, 6);
	ok(o >= 0, "flags: add(ONESHOT) -> id");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: oneshot, unset -> nothing");
	evq_latch_set(&l);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == o && ev[0].flags == EVQ_ONESHOT, "flags: oneshot -> one event");
	evq_latch_reset(&l);
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: oneshot spent -> nothing on the next set");
	is(evq_mod(q, o, 0, EVQ_ONESHOT), 0, "flags: re-arm with evq_mod");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == o, "flags: re-armed while set -> fires once more");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "flags: ...and is spent again");
	evq_free(q);
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "flags: no waiter left counted");
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("latches");
	test_bad_input();
	test_sync();
	test_wakeups();
	test_no_syscall();
	test_set_many();
	test_set_many_concurrent();
	test_set_many_signal();
	test_set_many_fork();
	test_set_many_ring_used_or_refused();
	test_cancel_barrier();
	if (evqt_have_futex_waitv()) {
		test_set_many_wide();
		test_queue();
		test_flags();
	} else {
		skip(4, "latches through queues: " EVQT_NO_WAITV);
	}
	done();
}
