/* SPDX-License-Identifier: MIT */
/*
 * epoll.c - the epoll backend (the reference one: backend.h B1..B13).
 *
 * One epoll instance per queue plus one eventfd for wake().  The eventfd is
 * registered edge-triggered and never read: every write() queues a fresh edge
 * event (eventfd wakes its waitqueue on each write), so a wakeup costs exactly
 * one system call on the waker's side and none extra on the waiter's.  The
 * counter would need 2^64 writes to saturate.
 *
 * Disabling an fd keeps it in the epoll set with no events and EPOLLONESHOT
 * (epoll_mask.h translates both ways, for this backend and io_uring's).
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend/epoll_mask.h"
#include "internal.h"

#define WAKE_TOKEN UINT64_MAX

static _Atomic int have_pwait2 = 1;

struct epoll_state {
	int epfd;
	int wakefd;
};

static struct epoll_state *st(struct evq *q) { return q->be; }

static int ep_init(struct evq *q, int max_batch)
{
	(void)max_batch;
	struct epoll_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		int e = errno;
		free(s);
		return -e;
	}
	s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET,
				  .data.u64 = WAKE_TOKEN };
	if (s->wakefd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0) {
		int e = errno;
		if (s->wakefd >= 0)
			close(s->wakefd);
		close(s->epfd);
		free(s);
		return -e;
	}
	q->be = s;
	return 0;
}

static void ep_fini(struct evq *q)
{
	struct epoll_state *s = st(q);
	if (!s)
		return;
	close(s->wakefd);
	close(s->epfd);
	free(s);
	q->be = NULL;
}

static int ep_fd_ctl(struct evq *q, enum evq__fd_op op, int fd, uint32_t events,
		     uint32_t flags, uint64_t token)
{
	static const int ops[] = { EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL };
	struct epoll_event ev = { .events = evq__epoll_interest(events, flags),
				  .data.u64 = token };
	if (epoll_ctl(st(q)->epfd, ops[op], fd, &ev) < 0)
		return -errno;
	return 0;
}

/* An epoll_event slot the kernel has not written: no token has this
 * value (tokens are a generation << 32 | a slot below 2^24; WAKE_TOKEN and
 * the core's clock token differ too). */
#define UNWRITTEN (UINT64_MAX - 1)

/* Translates what epoll_wait stored in evs[0..n) into out[] - the
 * translation to evq's mask happens here and only here - and marks those
 * slots UNWRITTEN again (the thread buffer's rule, below).  Returns the
 * count; *woken = 1 if the wake eventfd was among them.  Inlined: it is
 * most of the backend's part of a wait. */
static inline __attribute__((always_inline)) int
translate(struct epoll_event *evs, int n, struct evq__ready *out, int *woken)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		uint64_t token = evs[i].data.u64;
		evs[i].data.u64 = UNWRITTEN;
		if (token == WAKE_TOKEN) {
			/* epoll_wait waiters sleep exclusively: each edge of the
			 * eventfd ends one sleep */
			*woken = 1;
			continue;
		}
		out[k].token = token; /* evs[i]'s is UNWRITTEN now */
		out[k].events = evq__epoll_ready(evs[i].events);
		k++;
	}
	return k;
}

/* The kernel may have stored events before a cancel acted: it writes them
 * in order from evs[0], and the slots it did not write still read
 * UNWRITTEN.  Translates those into out[] for the core, which parks them. */
static void cancelled_in(struct epoll_event *evs, int max,
			 struct evq__ready *out, struct evq__round *round)
{
	int n = 0;
	while (n < max && evs[n].data.u64 != UNWRITTEN)
		n++;
	round->taken = translate(evs, n, out, &round->woken);
}

/* The system call: a count or -errno.  glibc's epoll_pwait2 and
 * epoll_pwait are cancellation points themselves. */
static inline __attribute__((always_inline)) int
ep_sleep(int epfd, struct epoll_event *evs, int max, int64_t timeout_ns,
	 const sigset_t *sigmask)
{
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	int n = -1, e = ENOSYS;
	if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
		n = epoll_pwait2(epfd, evs, max, tsp, sigmask);
		e = errno;
	}
	if (n < 0 && e == ENOSYS) {
		/* Before Linux 5.11 (and under valgrind 3.19) there is no
		 * epoll_pwait2: round up to whole milliseconds, never early. */
		atomic_store(&have_pwait2, 0);
		int ms = -1;
		if (timeout_ns >= 0)
			ms = timeout_ns >= (int64_t)INT_MAX * 1000000 ? INT_MAX
				: (int)((timeout_ns + 999999) / 1000000);
		n = epoll_pwait(epfd, evs, max, ms, sigmask);
		e = errno;
	}
	return n < 0 ? -e : n;
}

/* Each thread's epoll_wait buffer, every slot UNWRITTEN but for a sleep
 * in progress: after a sleep only the slots the kernel wrote are reset, so
 * a cancelled sleep can tell what was written without a buffer-wide fill
 * per wait.  Freed when the thread exits.  It outlives ep_wait's frame,
 * so the core's cancellation handler can read it (B11, round->cancelled):
 * no handler of the backend's own on this path. */
static pthread_key_t buf_key;
static int buf_key_ok;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static __thread __attribute__((tls_model("initial-exec"))) struct epoll_event *tl_buf;

static void buf_key_init(void)
{
	buf_key_ok = pthread_key_create(&buf_key, free) == 0;
}

static struct epoll_event *thread_buf(void)
{
	if (tl_buf)
		return tl_buf;
	pthread_once(&buf_once, buf_key_init);
	struct epoll_event *b = buf_key_ok ? malloc(EVQ_BATCH_MAX * sizeof *b) : NULL;
	if (!b)
		return NULL;
	for (int i = 0; i < EVQ_BATCH_MAX; i++)
		b[i].data.u64 = UNWRITTEN;
	pthread_setspecific(buf_key, b);
	return tl_buf = b;
}

/* Cancelled in epoll_pwait2 with the thread's buffer: run by the core's
 * handler (B11), in a frame above ep_wait's. */
static void ep_cancelled(struct evq__round *round, struct evq__ready *out)
{
	cancelled_in(tl_buf, EVQ_BATCH_MAX, out, round);
}

/* Without a thread buffer (no memory for it): one on the stack, filled per
 * wait, and a handler of its own, which runs in this frame. */
struct ep_stack {
	struct epoll_event evs[EVQ_BATCH_MAX];
	int max;
	struct evq__ready *out;
	struct evq__round *round;
};

static void ep_stack_cancelled(void *arg)
{
	evq__asan_unstale(); /* first: stale redzones below (core/wait.c) */
	struct ep_stack *c = arg;
	cancelled_in(c->evs, c->max, c->out, c->round);
}

static __attribute__((noinline)) int
ep_wait_stack(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
	      struct evq__ready *out, int max, struct evq__round *round)
{
	struct ep_stack c = { .max = max, .out = out, .round = round };
	for (int i = 0; i < max; i++)
		c.evs[i].data.u64 = UNWRITTEN;
	int n;
	pthread_cleanup_push(ep_stack_cancelled, &c);
	n = ep_sleep(st(q)->epfd, c.evs, max, timeout_ns, sigmask);
	pthread_cleanup_pop(0);
	return n < 0 ? n : translate(c.evs, n, out, &round->woken);
}

static int ep_wait(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		   struct evq__ready *out, int max, struct evq__round *round)
{
	struct epoll_event *evs = thread_buf();
	if (max > EVQ_BATCH_MAX)
		max = EVQ_BATCH_MAX;
	if (!evs)
		return ep_wait_stack(q, timeout_ns, sigmask, out, max, round);
	round->cancelled = ep_cancelled;
	int n = ep_sleep(st(q)->epfd, evs, max, timeout_ns, sigmask);
	return n < 0 ? n : translate(evs, n, out, &round->woken);
}

static void ep_wake(struct evq *q)
{
	uint64_t one = 1;
	/* EAGAIN would mean 2^64-1 unread wakeups: the waiter is awake anyway */
	ssize_t rc = evq__write(st(q)->wakefd, &one, sizeof one);
	(void)rc;
}

const struct evq__backend evq__backend_epoll = {
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
	.fd_ctl = ep_fd_ctl,
	.wait = ep_wait,
	.wake = ep_wake,
	.word_arm = NULL,
	.word_disarm = NULL,
};
