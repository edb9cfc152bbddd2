/*
 * evqtest.h - small helpers shared by evq's test programs (on top of tap.h).
 *
 *   evqt_new()          a queue on the backend the environment picks
 *                       (EVQ_BACKEND), or skip_all when it is missing
 *   evqt_watchdog(s)    bail out instead of hanging when a wakeup is lost
 *                       (x5 under sanitizers or with EVQ_TEST_VALGRIND set)
 *   evqt_now(clock)     clock in ns
 *   evqt_scale(n)       iteration count scaled for sanitizers / EVQ_TEST_SCALE
 *   evqt_roundtrip(q)   trigger + wait on a fresh user event: queue usable?
 */
#ifndef EVQ_TEST_H
#define EVQ_TEST_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "tap.h"

#define EVQT_MS 1000000LL
#define EVQT_SEC 1000000000LL
/* Timeout for an event that is expected: returns as soon as it arrives, so
 * it only bounds how long a broken library makes us wait. */
#define EVQT_SOON (10 * EVQT_SEC)

/* Sanitizer builds (ASan replaces malloc, TSan is 5-20x slower). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EVQT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define EVQT_SANITIZED 1
#endif
#endif
#ifndef EVQT_SANITIZED
#define EVQT_SANITIZED 0
#endif
/* ThreadSanitizer alone: no threads after a multi-threaded fork, signals
 * deferred to safe points, futex calls of its own inside any thread. */
#if defined(__SANITIZE_THREAD__)
#define EVQT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVQT_TSAN 1
#endif
#endif
#ifndef EVQT_TSAN
#define EVQT_TSAN 0
#endif

static inline int64_t evqt_now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * EVQT_SEC + ts.tv_nsec;
}

static inline void evqt_sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / EVQT_SEC), (long)(ns % EVQT_SEC) };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* n scaled by EVQ_TEST_SCALE (a factor, default 1) and by 1/4 under
 * sanitizers; never below 1. */
static inline long evqt_scale(long n)
{
	double f = EVQT_SANITIZED ? 0.25 : 1.0;
	const char *s = getenv("EVQ_TEST_SCALE");
	if (s && *s)
		f *= strtod(s, NULL);
	long r = (long)((double)n * f);
	return r < 1 ? 1 : r;
}

static inline void evqt_watchdog_fire(int sig)
{
	static const char msg[] = "Bail out! watchdog: test hung (lost wakeup?)\n";
	(void)sig;
	if (write(1, msg, sizeof msg - 1) < 0) {
		/* nothing more we can do */
	}
	_exit(1);
}

/* Kills the program with a TAP bail-out after secs (x5 under sanitizers);
 * also ignores SIGPIPE. */
static inline void evqt_watchdog(unsigned secs)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = evqt_watchdog_fire;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a failed test, not a dead program */
	alarm(getenv("EVQ_TEST_VALGRIND") ? secs * 5 : EVQT_SANITIZED ? secs * 5 : secs);
}

static inline struct evq *evqt_new_opt(const struct evq_options *o)
{
	struct evq *q = NULL;
	int r = evq_new(&q, o);
	if (r == -ENOSYS)
		skip_all("backend not available on this kernel");
	if (r != 0 || q == NULL) {
		printf("Bail out! evq_new: %d (%s)\n", r, strerror(-r));
		fflush(stdout);
		exit(1);
	}
	return q;
}

static inline struct evq *evqt_new(void)
{
	return evqt_new_opt(NULL);
}

/* Prints which backend runs, once. */
static inline void evqt_banner(const char *what)
{
	struct evq *q = evqt_new();
	const char *env = getenv("EVQ_BACKEND");
	diag("%s on backend %s (EVQ_BACKEND=%s)", what, evq_backend_name(q),
	     env ? env : "unset");
	evq_free(q);
}

/* 1 if a fresh user event can be triggered and waited for on q. */
static inline int evqt_roundtrip(struct evq *q)
{
	struct evq_event ev[4];
	int id = evq_add_user(q, 0xfeedull);
	if (id < 0)
		return 0;
	int good = evq_trigger(q, id) == 0 &&
		   evq_wait(q, ev, 4, EVQT_SOON, NULL) == 1 && ev[0].id == id &&
		   ev[0].cookie == 0xfeedull && ev[0].data == 1;
	return evq_del(q, id) == 0 && good;
}

/* futex_waitv (Linux 5.16) is what evq_waitv, the epoll backend's word
 * watcher and io_uring's inline sleep use; valgrind 3.19 does not know it
 * either.  Without it those features answer -ENOSYS: tests skip what needs
 * them. */
static inline int evqt_have_futex_waitv(void)
{
	int saved = errno;
	errno = 0;
	int no = syscall(449, NULL, 0, 0, NULL, 0) == -1 && errno == ENOSYS;
	errno = saved;
	return !no;
}
#define EVQT_NO_WAITV "no futex_waitv (kernel < 5.16, or valgrind)"

/* Zeroes the event array so a short return never leaves stale records. */
static inline int evqt_wait(struct evq *q, struct evq_event *ev, int max,
			    int64_t timeout_ns)
{
	memset(ev, 0, sizeof *ev * (size_t)max);
	return evq_wait(q, ev, max, timeout_ns, NULL);
}

#endif
