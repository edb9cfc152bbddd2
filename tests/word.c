/* SPDX-License-Identifier: MIT */
/*
 * word.c - memory words as events: evq_add_word fires when the word was
 * woken and no longer holds the expected value (data = value seen), not on
 * a wake without a change; without EVQ_ONESHOT every later change is
 * reported; EVQ_ONESHOT fires once and evq_mod_word re-arms it; a raw
 * FUTEX_WAKE wakes queue waiters; evq_del stops events and passes on wakes;
 * hundreds of words (several watcher threads); shared words across fork at
 * different addresses; evq_wake bad input.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "evqtest.h"

#define NEV 16
#define QUIET (30 * EVQT_MS)

static void store_wake(uint32_t *w, uint32_t v, uint32_t flags)
{
	__atomic_store_n(w, v, __ATOMIC_SEQ_CST);
	evq_wake(w, 1, flags);
}

static void test_bad_input(void)
{
	struct evq *q = evqt_new();
	uint32_t words[2];
	uint32_t *odd = (uint32_t *)((char *)words + 1);
	is(evq_wake(NULL, 1, 0), -EINVAL, "evq_wake(NULL) -> -EINVAL");
	is(evq_wake(odd, 1, 0), -EINVAL, "evq_wake(misaligned) -> -EINVAL");
	is(evq_wake(words, 0, 0), -EINVAL, "evq_wake(n = 0) -> -EINVAL");
	is(evq_wake(words, -1, 0), -EINVAL, "evq_wake(n = -1) -> -EINVAL");
	is(evq_wake(words, 1, EVQ_ONESHOT), -EINVAL, "evq_wake(bad flag) -> -EINVAL");
	is(evq_wake(words, 1, 0), 0, "evq_wake with no waiter -> 0 woken");
	is(evq_add_word(NULL, words, 0, 0, 1), -EINVAL, "add_word(NULL q) -> -EINVAL");
	is(evq_add_word(q, NULL, 0, 0, 1), -EINVAL, "add_word(NULL addr) -> -EINVAL");
	is(evq_add_word(q, odd, 0, 0, 1), -EINVAL, "add_word(misaligned) -> -EINVAL");
	is(evq_add_word(q, words, 0, EVQ_EDGE, 1), -EINVAL, "add_word(EVQ_EDGE) -> -EINVAL");
	is(evq_mod_word(q, 12345, 0, 0), -ENOENT, "mod_word(unknown id) -> -ENOENT");
	int64_t uid = evq_add_user(q, 5);
	CHECK(uid >= 0);
	is(evq_mod_word(q, uid, 0, 0), -EINVAL, "mod_word(user id: not a word) -> -EINVAL");
	int64_t id = evq_add_word(q, words, 0, 0, 1);
	CHECK(id >= 0);
	is(evq_mod_word(q, id, 0, EVQ_SHARED), -EINVAL,
	   "mod_word cannot change EVQ_SHARED -> -EINVAL");
	evq_free(q);
}

static void test_basic(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	uint32_t w = 7;
	int64_t id = evq_add_word(q, &w, 7, 0, 0xabcull);
	ok(id >= 0, "basic: add_word -> %" PRId64 "", id);
	/* The word holds the expected value: nothing, even when woken. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "basic: unchanged -> no event");
	evq_wake(&w, 1, 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "basic: woken but unchanged -> no event");
	/* Changed and woken: one event, data = the value seen. */
	store_wake(&w, 8, 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 0xabcull &&
		   ev[0].kind == EVQ_KIND_WORD && ev[0].ident == -1 && ev[0].data == 8,
	   "basic: changed -> one event, data 8 (n=%d kind=%u data=%llu)", n,
	   ev[0].kind, (unsigned long long)ev[0].data);
	/* Not oneshot: now it expects 8; the next change is reported too. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "basic: nothing more while 8");
	store_wake(&w, 9, 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 9, "basic: next change -> data 9");
	/* A raw FUTEX_WAKE_PRIVATE from code that knows nothing of evq. */
	__atomic_store_n(&w, 10, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 10, "basic: raw FUTEX_WAKE_PRIVATE -> data 10");
	/* Deleted: later changes are not reported. */
	is(evq_del(q, id), 0, "basic: evq_del -> 0");
	store_wake(&w, 11, 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "basic: after del -> no event");
	/* Already different when registered: fires at once. */
	id = evq_add_word(q, &w, 0, 0, 2);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 11, "basic: differs at registration -> fires (data %llu)",
	   (unsigned long long)ev[0].data);
	evq_free(q);
}

static void test_oneshot(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	uint32_t w = 0;
	int64_t id = evq_add_word(q, &w, 0, EVQ_ONESHOT, 3);
	CHECK(id >= 0);
	store_wake(&w, 1, 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 1, "oneshot: first change -> event");
	store_wake(&w, 2, 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: second change -> no event");
	/* Re-armed expecting 2: nothing until it moves from 2. */
	is(evq_mod_word(q, id, 2, EVQ_ONESHOT), 0, "oneshot: mod_word(expected 2) -> 0");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: holds 2 -> no event");
	store_wake(&w, 3, 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 3, "oneshot: after mod, change -> event data 3");
	/* Re-armed with a value it does not hold: fires at once. */
	is(evq_mod_word(q, id, 100, 0), 0, "oneshot: mod_word(expected 100, not oneshot)");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 3, "oneshot: word != expected -> at once");
	store_wake(&w, 4, 0);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 4, "oneshot: no longer oneshot -> next change too");
	evq_free(q);
}

static void test_disabled(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	uint32_t w = 0;
	int64_t id = evq_add_word(q, &w, 0, EVQ_DISABLED, 4);
	CHECK(id >= 0);
	store_wake(&w, 5, 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: change -> no event");
	is(evq_mod(q, id, 0, 0), 0, "disabled: enable -> 0");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 5, "disabled: enabled -> the change is reported");
	is(evq_mod(q, id, 0, EVQ_DISABLED), 0, "disabled: disable again");
	store_wake(&w, 6, 0);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: change while disabled -> nothing");
	evq_free(q);
}

/* Coalescing: many changes while one event is pending -> latest value. */
static void test_coalesce(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	uint32_t w = 0;
	int64_t id = evq_add_word(q, &w, 0, 0, 5);
	CHECK(id >= 0);
	for (uint32_t v = 1; v <= 50; v++) {
		store_wake(&w, v, 0);
		evqt_sleep_ns(100000); /* the epoll watcher sees some of them */
	}
	/* Not a sleep "long enough for the watcher": until it has seen 50 and
	 * sleeps again (every other thread asleep), so that it posts nothing
	 * after the event below is handed out.  (io_uring: evq_wait checks.) */
	ok(evqt_until(evqt_quiescent()), "coalesce: the watcher settles");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 50, "coalesce: 50 changes -> one event, data 50 (n=%d data=%llu)",
	   n, (unsigned long long)ev[0].data);
	evq_free(q);
}

/* More words than one futex_waitv covers: several watcher threads. */
static void test_many(void)
{
	enum { N = 300 };
	static uint32_t w[N];
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t ids[N];
	for (int i = 0; i < N; i++) {
		w[i] = 0;
		ids[i] = evq_add_word(q, &w[i], 0, 0, (uint64_t)i);
		CHECK(ids[i] >= 0);
	}
	int good = 1;
	for (int i = 0; i < N; i += 7) {
		store_wake(&w[i], (uint32_t)i + 1, 0);
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		if (n != 1 || ev[0].cookie != (uint64_t)i || ev[0].data != (uint64_t)i + 1) {
			good = 0;
			diag("word %d: n=%d cookie=%llu", i, n, (unsigned long long)ev[0].cookie);
			break;
		}
	}
	ok(good, "many: %d words, each change reported by its own registration", N);
	/* Delete half, the rest still works. */
	for (int i = 0; i < N; i += 2)
		CHECK(evq_del(q, ids[i]) == 0);
	store_wake(&w[N - 1], 12345, 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].cookie == N - 1, "many: after deleting half, word %d still fires", N - 1);
	evq_free(q);
}

/* A queue registration takes its share of wakes: when it is deleted while
 * its watcher holds a wake, the wake goes on to another waiter. */
static uint32_t pass_word;
static atomic_int pass_done, pass_tid;
static void *pass_waiter(void *arg)
{
	(void)arg;
	atomic_store(&pass_tid, evqt_gettid());
	struct evq_waitv v = { &pass_word, 0, 0 };
	while (__atomic_load_n(&pass_word, __ATOMIC_SEQ_CST) == 0)
		evq_waitv(&v, 1, -1, 0);
	atomic_store(&pass_done, 1);
	return NULL;
}

static void test_pass_on(void)
{
	int good = 1;
	long rounds = evqt_scale(200);
	for (long k = 0; k < rounds && good; k++) {
		struct evq *q = evqt_new();
		pass_word = 0;
		atomic_store(&pass_done, 0);
		atomic_store(&pass_tid, 0);
		int64_t id = evq_add_word(q, &pass_word, 0, 0, 1);
		CHECK(id >= 0);
		pthread_t t;
		CHECK(pthread_create(&t, NULL, pass_waiter, NULL) == 0);
		/* the thread asleep on the word, and the epoll watcher too (every
		 * other thread asleep): the wake has two sleepers to pick from */
		evqt_until(atomic_load(&pass_tid) &&
			   evqt_asleep_in(atomic_load(&pass_tid), SYS_futex_waitv, NULL) &&
			   evqt_quiescent());
		/* one wake, racing with the deletion */
		__atomic_store_n(&pass_word, 1, __ATOMIC_SEQ_CST);
		evq_wake(&pass_word, 1, 0);
		evq_del(q, id);
		int64_t end = evqt_now(CLOCK_MONOTONIC) + 5 * EVQT_SEC;
		while (!atomic_load(&pass_done) && evqt_now(CLOCK_MONOTONIC) < end)
			evqt_sleep_ns(100000);
		if (!atomic_load(&pass_done)) {
			good = 0;
			diag("round %ld: the thread never woke", k);
			__atomic_store_n(&pass_word, 2, __ATOMIC_SEQ_CST);
			evq_wake(&pass_word, 100, 0);
		}
		pthread_join(t, NULL);
		evq_free(q);
	}
	ok(good, "pass-on: a wake taken by a deleted registration reaches the other waiter (%ld rounds)",
	   rounds);
}

/* Shared word across fork, mapped at a different address in the child. */
static void test_shared_fork(void)
{
	int fd = memfd_create("evq-word", 0);
	CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
	uint32_t *pw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(pw != MAP_FAILED);
	pw[0] = 0;
	pw[1] = 0;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* map again, elsewhere, and drop the inherited mapping */
		uint32_t *cw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		munmap(pw, 4096);
		if (cw == MAP_FAILED)
			_exit(2);
		/* wait until the parent's queue is armed, then change+wake */
		struct evq_waitv v = { &cw[1], 0, EVQ_SHARED };
		while (__atomic_load_n(&cw[1], __ATOMIC_SEQ_CST) == 0)
			evq_waitv(&v, 1, EVQT_SEC, 0);
		__atomic_store_n(&cw[0], 42, __ATOMIC_SEQ_CST);
		evq_wake(&cw[0], INT32_MAX, EVQ_SHARED);
		_exit(0);
	}
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_word(q, &pw[0], 0, EVQ_SHARED, 9);
	CHECK(id >= 0);
	__atomic_store_n(&pw[1], 1, __ATOMIC_SEQ_CST);
	evq_wake(&pw[1], 1, EVQ_SHARED);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].data == 42, "shared: change+wake from a forked child at another address -> event (n=%d)", n);
	int st;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "shared: child exited 0");
	evq_free(q);
	munmap(pw, 4096);
	close(fd);
}

/* Registrations added and deleted (or whole queues freed) while other
 * threads change and wake the words: no crash, no event for a deleted
 * registration, the sanitizers stay quiet. */
static uint32_t churn_words[8];
static atomic_int churn_stop;
static void *churn_waker(void *a)
{
	unsigned seed = (unsigned)(uintptr_t)a;
	while (!atomic_load(&churn_stop)) {
		int i = (int)(rand_r(&seed) % 8);
		__atomic_fetch_add(&churn_words[i], 1, __ATOMIC_SEQ_CST);
		evq_wake(&churn_words[i], INT32_MAX, 0);
		if ((rand_r(&seed) & 15) == 0)
			sched_yield();
	}
	return NULL;
}

static void test_churn(void)
{
	pthread_t t[2];
	atomic_store(&churn_stop, 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, churn_waker, (void *)(uintptr_t)(i + 7)) == 0);
	long rounds = evqt_scale(300), events = 0, stale = 0;
	struct evq_event ev[NEV];
	for (long k = 0; k < rounds; k++) {
		struct evq *q = evqt_new();
		int64_t ids[8];
		for (int i = 0; i < 8; i++) {
			ids[i] = evq_add_word(q, &churn_words[i],
					      __atomic_load_n(&churn_words[i], __ATOMIC_SEQ_CST),
					      (k & 1) ? EVQ_ONESHOT : 0, (uint64_t)i);
			CHECK(ids[i] >= 0);
		}
		int n = evq_wait(q, ev, NEV, 1000000, NULL);
		events += n > 0 ? n : 0;
		for (int i = 0; i < 8; i += 2)
			CHECK(evq_del(q, ids[i]) == 0);
		n = evq_wait(q, ev, NEV, 0, NULL);
		for (int j = 0; j < n; j++)
			if (ev[j].cookie % 2 == 0)
				stale++; /* an event of a deleted registration */
		if (k % 3 == 0)
			for (int i = 1; i < 8; i += 2)
				CHECK(evq_del(q, ids[i]) == 0);
		evq_free(q);
	}
	atomic_store(&churn_stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	is(stale, 0, "churn: %ld rounds of add/del/free under wakers, %ld events, none after del",
	   rounds, events);
}

/* A child of fork() frees the queue it inherited and makes its own, maybe
 * at the same address: its words are watched by its own thread, not by
 * the parent's (which the child does not have). */

static void test_fork_child_queue(void)
{
	static uint32_t fw;
#if EVQT_TSAN
	/* TSan refuses new threads in the child of a threaded process */
	skip(1, "ThreadSanitizer: no threads after a multi-threaded fork");
	return;
#endif
	struct evq *q = evqt_new();
	CHECK(evq_add_word(q, &fw, 0, 0, 1) >= 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		evq_free(q); /* the inherited one */
		struct evq *c = NULL;
		if (evq_new(&c, NULL) != 0)
			_exit(2);
		uint32_t w = 0;
		if (evq_add_word(c, &w, 0, 0, 5) < 0)
			_exit(3);
		__atomic_store_n(&w, 1, __ATOMIC_SEQ_CST);
		evq_wake(&w, 1, 0);
		struct evq_event ev[2];
		int n = evq_wait(c, ev, 2, 5 * EVQT_SEC, NULL);
		evq_free(c);
		_exit(n == 1 && ev[0].data == 1 ? 0 : 4);
	}
	int st;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "fork: a child's own queue watches its words (status %d)", st);
	evq_free(q);
}

/* A program whose only thread adds a word and a latch, then starts the
 * thread that changes them (kernel 6.17+ gives a process its own futex
 * table at its first thread: an io_uring FUTEX_WAIT queued before that
 * was lost; src/backend/uring/init.c futex_hash_settle).  A forked child is
 * such a program: it starts single-threaded, on the global table. */
static uint32_t ft_word;
static struct evq_latch ft_latch;
static void *ft_setter(void *arg)
{
	(void)arg;
	evqt_sleep_ns(20 * EVQT_MS);
	__atomic_store_n(&ft_word, 1, __ATOMIC_SEQ_CST);
	evq_wake(&ft_word, 1, 0);
	evqt_sleep_ns(20 * EVQT_MS);
	evq_latch_set(&ft_latch);
	return NULL;
}

static void test_first_thread(void)
{
#if EVQT_TSAN
	skip(1, "ThreadSanitizer: no threads after a multi-threaded fork");
	return;
#endif
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct evq *c = NULL;
		if (evq_new(&c, NULL) != 0)
			_exit(2);
		evq_latch_init(&ft_latch, 0);
		if (evq_add_word(c, &ft_word, 0, 0, 7) < 0 ||
		    evq_add_latch(c, &ft_latch, 0, 8) < 0)
			_exit(3);
		pthread_t t;
		if (pthread_create(&t, NULL, ft_setter, NULL) != 0)
			_exit(4);
		uint64_t seen = 0;
		struct evq_event ev[2];
		for (int i = 0; i < 4 && seen != 3; i++) {
			int n = evq_wait(c, ev, 2, 5 * EVQT_SEC, NULL);
			if (n <= 0)
				break;
			for (int k = 0; k < n; k++)
				seen |= ev[k].cookie == 7 ? 1 : ev[k].cookie == 8 ? 2 : 4;
		}
		pthread_join(t, NULL);
		evq_free(c);
		_exit(seen == 3 ? 0 : 10 + (int)seen);
	}
	int st;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "first thread: a word and a latch added before the program's first "
	   "thread started are still woken by it (status %d)", st);
}

int main(void)
{
	evqt_watchdog(120);
	if (!evqt_have_futex_waitv())
		skip_all(EVQT_NO_WAITV);
	evqt_banner("words");
	test_bad_input();
	test_basic();
	test_oneshot();
	test_disabled();
	test_coalesce();
	test_many();
	test_pass_on();
	test_shared_fork();
	test_churn();
	test_fork_child_queue();
	test_first_thread();
	done();
}
