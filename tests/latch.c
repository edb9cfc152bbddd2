/*
 * latch.c - latches: init/set/reset/is_set/wait and bad input (garbage
 * never crashes or hangs); wait returns at once when set, times out when
 * not, wakes on a set from another thread and from a signal handler;
 * setting an already-set latch, or one nobody waits for, makes no system
 * call (checked with a seccomp filter); set_many; through a queue: one
 * event per set, a set at registration fires at once, a set after a reset
 * is never mistaken for the old one, EVQ_ONESHOT/EVQ_DISABLED, evq_del.
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

#define NEV 16
#define QUIET (30 * EVQT_MS)

/* futex_waitv (Linux 5.16) is what evq_waitv and the epoll backend's word
 * watcher use; valgrind 3.19 does not know it either.  Without it those
 * features answer -ENOSYS: skip what needs them. */
static int have_futex_waitv(void)
{
	int saved = errno;
	errno = 0;
	int no = syscall(449, NULL, 0, 0, NULL, 0) == -1 && errno == ENOSYS;
	errno = saved;
	return !no;
}
#define NO_WAITV "no futex_waitv (kernel < 5.16, or valgrind)"

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
	is(evq_add_latch(q, &l, 1), -EINVAL, "garbage: add_latch -> -EINVAL");
	is(evq_add_latch(q, NULL, 1), -EINVAL, "add_latch(NULL) -> -EINVAL");
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

static void test_queue(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct evq_latch l;
	CHECK(evq_latch_init(&l, 0) == 0);
	int id = evq_add_latch(q, &l, 55);
	ok(id >= 0, "queue: add_latch -> %d", id);
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
	evqt_sleep_ns(QUIET);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "queue: 10 sets while pending -> one event");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: ... and no more");
	is(evq_del(q, id), 0, "queue: evq_del");
	evq_latch_reset(&l);
	evq_latch_set(&l);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "queue: after del -> nothing");
	is(__atomic_load_n(&l.waiters, __ATOMIC_SEQ_CST), 0, "queue: del uncounted its waiter");
	/* A latch set when registered fires at once. */
	id = evq_add_latch(q, &l, 56);
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

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("latches");
	test_bad_input();
	test_sync();
	test_wakeups();
	test_no_syscall();
	test_set_many();
	if (have_futex_waitv())
		test_queue();
	else
		skip(1, "latches through queues: " NO_WAITV);
	done();
}
