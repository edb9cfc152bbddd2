/* SPDX-License-Identifier: MIT */
/*
 * waitv.c - evq_waitv: bad input (-EINVAL, -E2BIG beyond 128 words),
 * returns the lowest index that differs on entry, timeouts (0, relative,
 * absolute and in the past), -EINTR, the woken index among 128 words, and
 * 128 words hammered by random waker threads with every increment seen.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <sys/syscall.h>

#include "evqtest.h"

static uint32_t words[EVQ_WAITV_MAX + 1];
static struct evq_waitv wv[EVQ_WAITV_MAX + 1];

/* futex_waitv (Linux 5.16) is what evq_waitv and the epoll backend's word
 * watcher use; valgrind 3.19 does not know it either.  Without it those
 * features answer -ENOSYS: skip what needs them. */

static void setup(int n)
{
	for (int i = 0; i < n; i++) {
		wv[i].addr = &words[i];
		wv[i].expected = __atomic_load_n(&words[i], __ATOMIC_SEQ_CST);
		wv[i].flags = 0;
	}
}

static void test_bad_input(void)
{
	memset(words, 0, sizeof words);
	setup(EVQ_WAITV_MAX + 1);
	is(evq_waitv(NULL, 1, 0, 0), -EINVAL, "NULL words -> -EINVAL");
	is(evq_waitv(wv, 0, 0, 0), -EINVAL, "n = 0 -> -EINVAL");
	is(evq_waitv(wv, -3, 0, 0), -EINVAL, "n < 0 -> -EINVAL");
	is(evq_waitv(wv, EVQ_WAITV_MAX + 1, 0, 0), -E2BIG, "n = 129 -> -E2BIG");
	is(evq_waitv(wv, 1, 0, EVQ_ONESHOT), -EINVAL, "bad flags -> -EINVAL");
	is(evq_waitv(wv, 1, -1, EVQ_ABSTIME), -EINVAL, "negative absolute time -> -EINVAL");
	struct evq_waitv bad[2] = { { &words[0], 0, 0 }, { NULL, 0, 0 } };
	is(evq_waitv(bad, 2, 0, 0), -EINVAL, "a NULL address -> -EINVAL");
	bad[1].addr = (uint32_t *)((char *)&words[1] + 2);
	is(evq_waitv(bad, 2, 0, 0), -EINVAL, "a misaligned address -> -EINVAL");
	bad[1].addr = &words[1];
	bad[1].flags = 0x8000;
	is(evq_waitv(bad, 2, 0, 0), -EINVAL, "a bad word flag -> -EINVAL");
}

static void test_values(void)
{
	memset(words, 0, sizeof words);
	setup(EVQ_WAITV_MAX);
	is(evq_waitv(wv, EVQ_WAITV_MAX, 0, 0), -ETIMEDOUT, "128 words, all equal, timeout 0 -> -ETIMEDOUT");
	words[77] = 1;
	words[100] = 1;
	is(evq_waitv(wv, EVQ_WAITV_MAX, -1, 0), 77, "words 77 and 100 differ -> 77 at once");
	words[77] = 0;
	words[100] = 0;
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	is(evq_waitv(wv, 4, 20 * EVQT_MS, 0), -ETIMEDOUT, "relative 20ms -> -ETIMEDOUT");
	ok(evqt_now(CLOCK_MONOTONIC) - t0 >= 20 * EVQT_MS, "relative: not early");
	t0 = evqt_now(CLOCK_MONOTONIC);
	is(evq_waitv(wv, 4, t0 + 20 * EVQT_MS, EVQ_ABSTIME), -ETIMEDOUT, "absolute +20ms -> -ETIMEDOUT");
	ok(evqt_now(CLOCK_MONOTONIC) - t0 >= 20 * EVQT_MS, "absolute: not early");
	is(evq_waitv(wv, 4, t0 - EVQT_SEC, EVQ_ABSTIME), -ETIMEDOUT, "absolute in the past -> -ETIMEDOUT");
	words[3] = 9;
	is(evq_waitv(wv, 4, t0 - EVQT_SEC, EVQ_ABSTIME), 3, "absolute in the past, word differs -> its index");
	words[3] = 0;
}

static atomic_int target = -1, waiter_tid;
/* Changes and wakes the target word once the waiter sleeps (were it still
 * awake, evq_waitv would find the word changed on entry: the same index,
 * but not the kernel's wake). */
static void *one_waker(void *a)
{
	(void)a;
	evqt_until(evqt_asleep_in(atomic_load(&waiter_tid), SYS_futex_waitv, NULL));
	int i = atomic_load(&target);
	__atomic_store_n(&words[i], 1, __ATOMIC_SEQ_CST);
	evq_wake(&words[i], 1, 0);
	return NULL;
}

static void test_woken(void)
{
	int good = 1;
	for (int k = 0; k < 8; k++) {
		memset(words, 0, sizeof words);
		setup(EVQ_WAITV_MAX);
		int i = (k * 37 + 5) % EVQ_WAITV_MAX;
		atomic_store(&target, i);
		atomic_store(&waiter_tid, evqt_gettid());
		pthread_t t;
		CHECK(pthread_create(&t, NULL, one_waker, NULL) == 0);
		int rc = evq_waitv(wv, EVQ_WAITV_MAX, EVQT_SOON, 0);
		pthread_join(t, NULL);
		if (rc != i) {
			good = 0;
			diag("woke %d, want %d", rc, i);
		}
	}
	ok(good, "woken: the index of the word changed and woken, among 128");
}

static void on_usr1(int sig) { (void)sig; }
struct interrupt_arg {
	pthread_t thread;
	pid_t tid;
};
/* Signals the thread once it sleeps in futex_waitv: a signal that came
 * before would run the handler and leave evq_waitv to sleep its timeout
 * (it used to send it after 10 ms, hoping the sleep had started). */
static void *interrupter(void *p)
{
	struct interrupt_arg *a = p;
	evqt_until(evqt_asleep_in(a->tid, SYS_futex_waitv, NULL));
	pthread_kill(a->thread, SIGUSR1);
	return NULL;
}

static void test_eintr(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	memset(words, 0, sizeof words);
	setup(2);
	struct interrupt_arg a = { pthread_self(), evqt_gettid() };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, interrupter, &a) == 0);
	is(evq_waitv(wv, 2, EVQT_SOON, 0), -EINTR, "a signal handler -> -EINTR");
	pthread_join(t, NULL);
}

/* Random wakers: each increments a random word and wakes it; the waiter
 * follows every word's value and must account for every increment. */
static atomic_long incs;
static long per_waker;
static void *rand_waker(void *a)
{
	unsigned seed = (unsigned)(uintptr_t)a * 2654435761u;
	for (long k = 0; k < per_waker; k++) {
		int i = (int)(rand_r(&seed) % EVQ_WAITV_MAX);
		__atomic_fetch_add(&words[i], 1, __ATOMIC_SEQ_CST);
		atomic_fetch_add(&incs, 1);
		evq_wake(&words[i], 1, 0);
		if ((k & 63) == 0)
			evqt_sleep_ns(1000);
	}
	return NULL;
}

static void test_random(void)
{
	enum { W = 4 };
	memset(words, 0, sizeof words);
	setup(EVQ_WAITV_MAX);
	per_waker = evqt_scale(50000);
	pthread_t t[W];
	for (int i = 0; i < W; i++)
		CHECK(pthread_create(&t[i], NULL, rand_waker, (void *)(uintptr_t)(i + 1)) == 0);
	long seen = 0, returns = 0, bogus = 0;
	long total = W * per_waker;
	while (seen < total) {
		int rc = evq_waitv(wv, EVQ_WAITV_MAX, EVQT_SOON, 0);
		if (rc < 0) {
			diag("evq_waitv -> %d with %ld of %ld seen", rc, seen, total);
			break;
		}
		returns++;
		uint32_t v = __atomic_load_n(&words[rc], __ATOMIC_SEQ_CST);
		if (v == wv[rc].expected)
			bogus++; /* woken, but already seen: allowed, counted */
		for (int i = 0; i < EVQ_WAITV_MAX; i++) {
			v = __atomic_load_n(&words[i], __ATOMIC_SEQ_CST);
			seen += (long)(v - wv[i].expected);
			wv[i].expected = v;
		}
	}
	for (int i = 0; i < W; i++)
		pthread_join(t[i], NULL);
	is(seen, total, "random: %d wakers x %ld increments over 128 words, all seen (%ld returns, %ld without news)",
	   W, per_waker, returns, bogus);
}

int main(void)
{
	evqt_watchdog(120);
	if (!evqt_have_futex_waitv())
		skip_all(EVQT_NO_WAITV);
	test_bad_input();
	test_values();
	test_woken();
	test_eintr();
	test_random();
	done();
}
