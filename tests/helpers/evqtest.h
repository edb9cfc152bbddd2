/* SPDX-License-Identifier: MIT */
/*
 * evqtest.h - small helpers shared by evq's test programs (on top of tap.h).
 *
 *   evqt_new()          a queue on the backend the environment picks
 *                       (EVQ_BACKEND), or skip_all when it is missing
 *   evqt_watchdog(s)    bail out when s seconds pass without a test point
 *                       (x5 under sanitizers or with EVQ_TEST_VALGRIND set)
 *   evqt_now(clock)     clock in ns
 *   evqt_scale(n)       iteration count scaled for sanitizers / EVQ_TEST_SCALE
 *   evqt_roundtrip(q)   trigger + wait on a fresh user event: queue usable?
 *
 * Waiting for a condition instead of sleeping (no test may depend on a
 * sleep being long enough):
 *   evqt_until(cond)         polls cond until it holds or EVQT_SOON passed;
 *                            its value is cond's last
 *   evqt_gettid()            the calling thread's id, for the checks below
 *   evqt_asleep_in_wait(tid) thread tid sleeps in the kernel in a call
 *                            evq_wait() sleeps in
 *   evqt_asleep_in(tid, nr, arg0)  ... in system call nr (on word arg0)
 *   evqt_sleeping_in(q, tid) ... and q counts it as a sleeper (internal.h)
 *   evqt_quiescent()         every other thread of the process sleeps in
 *                            the kernel, none on a lock: the epoll
 *                            backend's watcher threads have taken in every
 *                            change to the words they watch
 */
#ifndef EVQ_TEST_H
#define EVQ_TEST_H

#include <inttypes.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
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

/* A random test's seed: $EVQ_TEST_SEED if set (to repeat a run), else the
 * clock; never 0 (xorshift's fixed point).  Printed as a diagnostic. */
static inline uint64_t evqt_seed(void)
{
	const char *seed = getenv("EVQ_TEST_SEED");
	uint64_t s = seed && *seed ? strtoull(seed, NULL, 0) : (uint64_t)evqt_now(CLOCK_REALTIME);
	if (!s)
		s = 1;
	diag("seed %llu (EVQ_TEST_SEED repeats it)", (unsigned long long)s);
	return s;
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

/* Kills the program with a TAP bail-out when secs (x5 under sanitizers and
 * valgrind) pass without a test point: each ok()/is() starts the count
 * again, so a slow machine (CPU hogs, sanitizers) does not look hung while
 * the program makes progress.  Also ignores SIGPIPE. */
static inline void evqt_watchdog(unsigned secs)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = evqt_watchdog_fire;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a failed test, not a dead program */
	tap_watchdog_secs = getenv("EVQ_TEST_VALGRIND") || EVQT_SANITIZED ? secs * 5 : secs;
	alarm(tap_watchdog_secs);
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
	/* Other sources may be ready too (an always-ready file, a level fd):
	 * the fresh event must come within a deadline, exactly once, with
	 * data 1, whatever else comes with it (fairness: a poll of the kernel
	 * may return those first). */
	struct evq_event ev[4];
	int64_t id = evq_add_user(q, 0xfeedull);
	if (id < 0)
		return 0;
	int seen = 0, good = evq_trigger(q, id) == 0;
	int64_t until = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (good && !seen && evqt_now(CLOCK_MONOTONIC) < until) {
		int n = evq_wait(q, ev, 4, EVQT_SOON, NULL);
		if (n < 0 && n != -EINTR)
			good = 0;
		for (int i = 0; i < n; i++)
			if (ev[i].id == id) {
				seen++;
				good &= ev[i].cookie == 0xfeedull && ev[i].data == 1;
			}
	}
	return evq_del(q, id) == 0 && good && seen == 1;
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

/* ---- waiting for a condition, and what another thread is doing ---- */

/* Polls cond (any expression) every 100 us until it holds or EVQT_SOON has
 * passed; evaluates to cond's last value (1 or 0).  A GNU statement
 * expression (gcc and clang). */
#define evqt_until(cond)                                                     \
	({                                                                   \
		int64_t evqt_end_ = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;   \
		int evqt_ok_;                                                \
		while (!(evqt_ok_ = !!(cond)) &&                             \
		       evqt_now(CLOCK_MONOTONIC) < evqt_end_)                \
			evqt_sleep_ns(100000);                               \
		evqt_ok_;                                                    \
	})

static inline pid_t evqt_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Reads /proc/self/task/<tid>/<what> into buf (NUL-terminated); length, or
 * -1.  open/read, not stdio: no allocation (tests/alloc.c counts them). */
static inline int evqt_task_file(pid_t tid, const char *what, char *buf, int len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/%s", (int)tid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, (size_t)len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

/* Thread tid's state letter ('R', 'S', 'D', ...; 0: gone; 'K' for an
 * io_uring worker, a kernel thread in the process) and its context
 * switches so far (voluntary + involuntary), from its status file. */
static inline char evqt_task_state(pid_t tid, long *switches)
{
	static const char vol[] = "\nvoluntary_ctxt_switches:\t";
	static const char nonvol[] = "\nnonvoluntary_ctxt_switches:\t";
	char buf[4096];
	*switches = -1;
	if (evqt_task_file(tid, "status", buf, sizeof buf) < 0)
		return 0;
	if (strncmp(buf, "Name:\tiou-", 10) == 0)
		return 'K';
	const char *st = strstr(buf, "\nState:\t");
	const char *v = strstr(buf, vol);
	const char *nv = strstr(buf, nonvol);
	if (!st || !v || !nv)
		return 0;
	*switches = strtol(v + sizeof vol - 1, NULL, 10) +
		    strtol(nv + sizeof nonvol - 1, NULL, 10);
	return st[8];
}

/* The system call thread tid sleeps in, with its first two arguments;
 * -1 if it is running or not in a system call.  The kernel names the call
 * in /proc/self/task/<tid>/syscall only once the thread is off the CPU (it
 * waits for that), so a number here means the thread has gone to sleep in
 * that call: whatever it waits on (a futex word, an epoll set, an io_uring)
 * has it queued already, and a wakeup reaches it. */
static inline long evqt_task_syscall(pid_t tid, unsigned long args[2])
{
	char buf[256];
	long nr = -1;
	args[0] = args[1] = 0;
	if (evqt_task_file(tid, "syscall", buf, sizeof buf) <= 0 ||
	    sscanf(buf, "%ld %lx %lx", &nr, &args[0], &args[1]) != 3)
		return -1;
	/* A futex wait with a timeout that was interrupted without a handler
	 * to run - io_uring's task work does that to a thread that submitted
	 * to a ring - goes on in restart_syscall, the futex call's arguments
	 * still in place: report evq's (FUTEX_WAIT_BITSET) as that call. */
	if (nr == SYS_restart_syscall && (args[1] & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET)
		nr = SYS_futex;
	return nr;
}

/* The system call thread tid sleeps in, or -1 unless it sleeps (state S)
 * and stayed asleep while we looked (the same context switch count before
 * and after reading the call). */
static inline long evqt_asleep(pid_t tid, unsigned long args[2])
{
	long s1, s2;
	if (evqt_task_state(tid, &s1) != 'S')
		return -1;
	long nr = evqt_task_syscall(tid, args);
	if (nr < 0 || evqt_task_state(tid, &s2) != 'S' || s1 != s2)
		return -1;
	return nr;
}

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

/* 1 if thread tid sleeps in system call nr (and, if arg0 is not NULL, with
 * arg0 as first argument: the word of a SYS_futex). */
static inline int evqt_asleep_in(pid_t tid, long nr, const void *arg0)
{
	unsigned long a[2];
	return evqt_asleep(tid, a) == nr && (!arg0 || a[0] == (uintptr_t)arg0);
}

/* 1 if thread tid sleeps in one of the calls evq_wait() sleeps in:
 * epoll_pwait2 or epoll_pwait (epoll), io_uring_enter (io_uring's ring),
 * futex_waitv (its inline sleep on words), or FUTEX_WAIT_BITSET (the inline
 * sleep on the bell alone, or a follower behind the ring's leader) - not a
 * lock, which sleeps in plain FUTEX_WAIT.  A test that knows tid is inside
 * evq_wait() and also sees q->sleepers > 0 then knows it sleeps in the
 * backend's wait (W3 in src/core/wait.c): a poll sleeps nowhere. */
static inline int evqt_asleep_in_wait(pid_t tid)
{
	unsigned long a[2];
	long nr = evqt_asleep(tid, a);
	if (nr == SYS_epoll_pwait2 || nr == SYS_io_uring_enter || nr == SYS_futex_waitv)
		return 1;
#ifdef SYS_epoll_pwait
	if (nr == SYS_epoll_pwait)
		return 1;
#endif
	return nr == SYS_futex && (a[1] & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET;
}

/* 1 if thread tid sleeps in the backend's wait inside evq_wait(q): the
 * queue counts a sleeper (W1 in src/core/wait.c) and tid sleeps in a call
 * evq_wait sleeps in.  Tests that use it include "internal.h". */
#define evqt_sleeping_in(q, tid)                                             \
	(atomic_load(&(q)->sleepers) > 0 && evqt_asleep_in_wait(tid))

/* One look for evqt_quiescent(): 1 if every thread but the caller sleeps
 * in a system call, none in plain FUTEX_WAIT (a lock); *switches = the sum
 * of their context switches. */
static inline int evqt_all_asleep(long *switches)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	pid_t self = evqt_gettid();
	int all = 1;
	*switches = 0;
	struct dirent *e;
	while (all && (e = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid <= 0 || tid == self)
			continue;
		long sw;
		unsigned long a[2];
		char st = evqt_task_state(tid, &sw);
		if (st == 0 || st == 'Z' || st == 'X' || st == 'K')
			continue; /* gone, exiting, or io_uring's own */
		long nr = st == 'S' ? evqt_task_syscall(tid, a) : -1;
		if (nr < 0 ||
		    (nr == SYS_futex && (a[1] & FUTEX_CMD_MASK) != FUTEX_WAIT_BITSET))
			all = 0;
		*switches += sw;
	}
	closedir(d);
	return all;
}

/* 1 if every other thread of this process sleeps in the kernel, none on a
 * lock, and none ran between two looks.  Then the epoll backend's watcher
 * threads sleep in futex_waitv, which the kernel lets them do only while
 * every word they watch holds the value they expect: each has checked its
 * words since their last change and posted (or, for a semaphore, taken the
 * token) for what it saw.  With evqt_until(), this replaces sleeping "long
 * enough for the watcher".  On io_uring words are checked by the waiter
 * inside evq_wait(), so a test with no other thread passes at once. */
static inline int evqt_quiescent(void)
{
	long s1, s2;
	return evqt_all_asleep(&s1) && evqt_all_asleep(&s2) && s1 == s2;
}

/* Runs f(arg) with stderr going to a temporary file; returns what was
 * written (a static buffer, overwritten by the next call). */
static inline const char *evqt_capture_stderr(void (*f)(void *), void *arg)
{
	static char out[4096];
	char path[] = "/tmp/evqt-stderr-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	CHECK(saved >= 0 && dup2(fd, 2) == 2);
	f(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, out, sizeof out - 1, 0);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	return out;
}

#endif
