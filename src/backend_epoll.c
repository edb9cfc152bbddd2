/*
 * backend_epoll.c - the epoll backend.
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

#include "epoll_mask.h"
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

static int ep_fd_ctl(struct evq *q, enum evq_fd_op op, int fd, uint32_t events,
		     uint32_t flags, uint64_t token)
{
	static const int ops[] = { EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL };
	struct epoll_event ev = { .events = evq_epoll_interest(events, flags),
				  .data.u64 = token };
	if (epoll_ctl(st(q)->epfd, ops[op], fd, &ev) < 0)
		return -errno;
	return 0;
}

static int ep_wait(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		   struct evq_ready *out, int max, int *woken)
{
	struct epoll_event evs[EVQ_BATCH_MAX];
	struct timespec ts, *tsp = NULL;
	if (max > EVQ_BATCH_MAX)
		max = EVQ_BATCH_MAX;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	*woken = 0;
	int n = -1;
	if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
		n = epoll_pwait2(st(q)->epfd, evs, max, tsp, sigmask);
		if (n < 0 && errno == ENOSYS)
			atomic_store(&have_pwait2, 0);
	}
	if (!atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
		/* Before Linux 5.11 (and under valgrind 3.19) there is no
		 * epoll_pwait2: round up to whole milliseconds, never early. */
		int ms = -1;
		if (timeout_ns >= 0)
			ms = timeout_ns >= (int64_t)INT_MAX * 1000000 ? INT_MAX
				: (int)((timeout_ns + 999999) / 1000000);
		n = epoll_pwait(st(q)->epfd, evs, max, ms, sigmask);
	}
	if (n < 0)
		return -errno;
	int k = 0;
	for (int i = 0; i < n; i++) {
		uint32_t e = evs[i].events;
		if (evs[i].data.u64 == WAKE_TOKEN) {
			/* epoll_wait waiters sleep exclusively: each edge of the
			 * eventfd ends one sleep */
			*woken = 1;
			continue;
		}
		/* translation to evq's mask happens here and only here */
		out[k].token = evs[i].data.u64;
		out[k].events = evq_epoll_ready(e);
		k++;
	}
	return k;
}

static void ep_wake(struct evq *q)
{
	uint64_t one = 1;
	/* EAGAIN would mean 2^64-1 unread wakeups: the waiter is awake anyway */
	ssize_t rc = write(st(q)->wakefd, &one, sizeof one);
	(void)rc;
}

const struct evq_backend evq__backend_epoll = {
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
	.fd_ctl = ep_fd_ctl,
	.wait = ep_wait,
	.wake = ep_wake,
	.word_arm = NULL,
	.word_disarm = NULL,
};
