/* SPDX-License-Identifier: MIT */
/*
 * sigfull.c - evq_sigevent when the real-time signal queue is full.  The
 * kernel queues at most RLIMIT_SIGPENDING signals for a real user (all its
 * processes together) and drops an AIO or mq_notify() notification it
 * cannot queue; a POSIX timer's signal is allocated by timer_create().
 * Checked, each in a forked child so that the lowered limit stays there:
 *  - with the limit at 0 (a full queue whatever the rest of the machine
 *    does): evq_sigevent() says -EAGAIN and the queue stays usable; a timer
 *    created before still notifies; a message queue watched with
 *    evq_add_fd() reports its message (whether its mq_notify() notification
 *    arrived, and what became of an AIO request's, is only reported: the
 *    kernel drops them, which is not evq's doing); with the limit
 *    restored, evq_sigevent() works again;
 *  - in a user namespace of its own (where the count is the child's alone):
 *    the queue filled with a blocked real-time signal up to a small limit,
 *    -EAGAIN, the timer still notifies, and one signal taken off the queue
 *    makes room again.
 */
#include <aio.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "evqtest.h"

#define NEV 16

/* A child prints its own TAP lines (stdout is shared, every line flushed)
 * from the parent's numbering on, and exits with how many it printed and
 * how many failed; the parent then counts them as its own. */
static int child_first, child_failed;
static void child_end(void) __attribute__((noreturn));
static void child_begin(void)
{
	child_first = atomic_load(&tap_n);
	child_failed = atomic_load(&tap_failed);
}
static void child_end(void)
{
	int ran = atomic_load(&tap_n) - child_first;
	int failed = atomic_load(&tap_failed) - child_failed;
	_exit(ran | (failed ? 1 : 0) << 6);
}

/* The events of cookie c within EVQT_SOON: the sum of their data. */
static uint64_t wait_for(struct evq *q, uint64_t c, int *others)
{
	struct evq_event ev[NEV];
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	for (;;) {
		int64_t left = end - evqt_now(CLOCK_MONOTONIC);
		if (left <= 0)
			return 0;
		int n = evqt_wait(q, ev, NEV, left);
		uint64_t sum = 0;
		for (int i = 0; i < n; i++) {
			if (ev[i].cookie == c)
				sum += ev[i].data ? ev[i].data : 1;
			else
				(*others)++;
		}
		if (sum)
			return sum;
	}
}

static int set_soft_limit(rlim_t soft)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_SIGPENDING, &rl) != 0)
		return -errno;
	rl.rlim_cur = soft;
	return setrlimit(RLIMIT_SIGPENDING, &rl) == 0 ? 0 : -errno;
}

static int oneshot(int kid)
{
	struct itimerspec one = { { 0, 0 }, { 0, EVQT_MS } };
	return (int)syscall(SYS_timer_settime, kid, 0, &one, NULL);
}

/* In a child: the limit at 0.  Setup failures exit without printing
 * (the parent reports the missing tests). */
static void child_limit_zero(void)
{
	struct evq *q;
	struct sigevent st, sn, sx;
	int others = 0;
	if (evq_new(&q, NULL) != 0)
		child_end();
	/* Before: a timer's registration and its timer, a message queue
	 * watched as an fd, and a registration for its mq_notify(). */
	int kid;
	int64_t idt = evq_sigevent(q, 1, &st);
	int64_t idn = evq_sigevent(q, 3, &sn);
	struct aiocb cb;
	memset(&cb, 0, sizeof cb);
	int64_t ida = evq_sigevent(q, 6, &cb.aio_sigevent);
	if (idt < 0 || idn < 0 || ida < 0 ||
	    syscall(SYS_timer_create, CLOCK_MONOTONIC, &st, &kid) != 0)
		child_end();
	char name[64];
	snprintf(name, sizeof name, "/evq-sigfull-%d", (int)getpid());
	struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 16 };
	mqd_t mq = mq_open(name, O_CREAT | O_RDWR | O_NONBLOCK, 0600, &attr);
	if (mq != (mqd_t)-1)
		mq_unlink(name);
	int64_t idm = mq == (mqd_t)-1 ? -1 : evq_add_fd(q, mq, EVQ_READ, 0, 2);

	if (set_soft_limit(0) != 0)
		child_end();
	/* No room for one more signal: said at once, nothing registered. */
	is(evq_sigevent(q, 4, &sx), -EAGAIN, "limit 0: evq_sigevent -> -EAGAIN");
	ok(evqt_roundtrip(q), "limit 0: queue usable");
	/* The timer's signal was allocated when it was created. */
	uint64_t got = oneshot(kid) == 0 ? wait_for(q, 1, &others) : 0;
	is(got, 1, "limit 0: a timer created before still notifies");

	if (idm >= 0) {
		/* The message queue as an fd: the message is reported.  Its
		 * mq_notify() signal the kernel drops (it is sent inside
		 * mq_send(): pending or lost once mq_send() returns, and the
		 * waits that follow read it if it is there). */
		int notify = mq_notify(mq, &sn) == 0;
		CHECK(mq_send(mq, "hello", 6, 0) == 0);
		got = wait_for(q, 2, &others);
		char msg[16];
		ok(got >= 1 && mq_receive(mq, msg, sizeof msg, NULL) == 6,
		   "limit 0: a message queue watched with evq_add_fd reports its message");
		struct evq_event ev[NEV];
		int n, notified = 0;
		while ((n = evqt_wait(q, ev, NEV, 0)) > 0)
			for (int i = 0; i < n; i++)
				notified += ev[i].id == idn;
		diag("limit 0: mq_notify() %s, its notification %s",
		     notify ? "accepted" : "refused", notified ? "arrived" : "was lost");
		mq_close(mq);
	} else {
		skip(1, "mq_open failed");
	}

	/* AIO through a registration made before: the kernel drops the
	 * notification, and glibc marks the request failed with EAGAIN.
	 * Reported, not checked: the C library's behaviour, not evq's. */
	char path[] = "/tmp/evq-sigfull-XXXXXX", buf[8];
	int fd = mkstemp(path);
	if (fd >= 0 && (unlink(path), write(fd, "abc", 3) == 3)) {
		cb.aio_fildes = fd;
		cb.aio_buf = buf;
		cb.aio_nbytes = 3;
		const struct aiocb *list[1] = { &cb };
		int rc = aio_read(&cb);
		while (rc == 0 && aio_error(&cb) == EINPROGRESS)
			aio_suspend(list, 1, NULL);
		struct evq_event ev[NEV];
		int n, notified = 0;
		while ((n = evqt_wait(q, ev, NEV, 0)) > 0)
			for (int i = 0; i < n; i++)
				notified += ev[i].id == ida;
		diag("limit 0: aio_read -> %d, aio_error %s, aio_return %zd, event %s", rc,
		     strerror(aio_error(&cb)), aio_return(&cb), notified ? "arrived" : "lost");
		close(fd);
	}

	/* Room again: the refusal was the state of the queue, not sticky. */
	if (set_soft_limit(RLIM_INFINITY) != 0)
		CHECK(set_soft_limit(1024) == 0);
	ok(evq_sigevent(q, 5, &sx) >= 0, "limit restored: evq_sigevent works again");
	is(others, 0, "limit 0: no stray events");
	syscall(SYS_timer_delete, kid);
	evq_free(q);
}

/* In a child: a user namespace of its own, the queue filled. */
static void child_fill(void)
{
	/* Only its own signals count in a user namespace of its own (made
	 * before the limit is lowered: the namespace takes the limit along
	 * as the ceiling of the user's whole count). */
	if (unshare(CLONE_NEWUSER) != 0) {
		/* EINVAL: more than one thread (TSan's own, say); EPERM,
		 * ENOSPC: user namespaces not allowed here */
		char why[160];
		snprintf(why, sizeof why,
			 "no user namespace of its own (unshare: %s); outside one the count "
			 "is the whole user's, and filling it would race with other processes",
			 strerror(errno));
		skip(4, why);
		return;
	}
	const int limit = 8;
	struct evq *q;
	struct sigevent st, sx;
	int others = 0, kid;
	sigset_t fill;
	sigemptyset(&fill);
	sigaddset(&fill, SIGRTMIN + 1);
	if (set_soft_limit((rlim_t)limit) != 0 || sigprocmask(SIG_BLOCK, &fill, NULL) != 0 ||
	    evq_new(&q, NULL) != 0 || evq_sigevent(q, 1, &st) < 0 ||
	    syscall(SYS_timer_create, CLOCK_MONOTONIC, &st, &kid) != 0)
		child_end();
	/* Fill: the timer holds one signal, so limit - 1 more fit. */
	union sigval v = { .sival_int = 7 };
	int queued = 0, e = 0;
	while (queued < 4 * limit && sigqueue(getpid(), SIGRTMIN + 1, v) == 0)
		queued++;
	e = errno;
	ok(queued == limit - 1 && e == EAGAIN, "fill: the queue full after %d signals (%s)",
	   queued, strerror(e));
	is(evq_sigevent(q, 4, &sx), -EAGAIN, "fill: evq_sigevent -> -EAGAIN");
	uint64_t got = oneshot(kid) == 0 ? wait_for(q, 1, &others) : 0;
	ok(got == 1 && others == 0, "fill: a timer created before still notifies (%llu, %d)",
	   (unsigned long long)got, others);
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	CHECK(sigtimedwait(&fill, &si, &zero) == SIGRTMIN + 1);
	ok(evq_sigevent(q, 5, &sx) >= 0, "fill: one signal taken, evq_sigevent works again");
	syscall(SYS_timer_delete, kid);
	evq_free(q);
}

/* Runs fn in a child that prints `expect` test points. */
static void run_child(void (*fn)(void), int expect)
{
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		child_begin();
		fn();
		child_end();
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	int ran = code < 0 ? 0 : code & 63;
	atomic_fetch_add(&tap_n, ran);
	if (code < 0 || (code & 64))
		atomic_fetch_add(&tap_failed, 1);
	if (ran != expect)
		ok(0, "child ran %d of its %d tests (status %#x)", ran, expect, st);
}

int main(void)
{
	/* valgrind keeps the highest real-time signal for itself */
	if (getenv("EVQ_TEST_VALGRIND"))
		skip_all("under valgrind: valgrind reserves SIGRTMAX, which evq_sigevent uses");
	evqt_watchdog(60);
	evqt_banner("sigfull");
	run_child(child_limit_zero, 6);
	run_child(child_fill, 4);
	return done();
}
