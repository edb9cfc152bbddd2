/* SPDX-License-Identifier: MIT */
/*
 * signal.c - signals as events (evq_add_signal).  The process-wide table of
 * the signals evq owns, which evq's handler reads, is sigtable.c.
 *
 * A registered signal reaches the queue by one of two paths:
 *  1. signalfd, the normal one.  The signal is blocked in the registering
 *     thread (and, by the documented rule, in every thread), so the kernel
 *     keeps it pending; the queue watches a signalfd, and the ready hook
 *     reads every pending instance into one event: data = count.
 *  2. evq's handler (sigtable.c), the safety net.  evq installs a SA_SIGINFO
 *     handler for the signal.  A thread that did not block it receives it
 *     asynchronously; the handler posts it into the queue (evq__post:
 *     lock-free, async-signal-safe) instead of letting the old disposition
 *     kill the process or drop it.  Having a handler also stops SIG_IGN and
 *     default-ignored signals (SIGCHLD, SIGWINCH, SIGURG) from being
 *     discarded when they are sent.
 *
 * One registration per signal per process: two signalfds for one signal
 * would split its instances between queues at random, and restoring the
 * mask and disposition of a shared signal has no right answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "kinds/sigtable.h"

struct sig_reg {
	int fd;               /* signalfd; first two: struct evq__fd_ext */
	int signo;            /* the event's ident */
	int was_blocked;      /* in the registering thread, before */
	uint64_t target;      /* the table's target while it is ours */
	pthread_t thread;     /* the registering thread */
	int takeover;         /* (adding) the claim is a forked queue's */
};

/* Signals a queue may take: 1..SIGRTMAX except the unblockable ones, those
 * the C library keeps for itself (between SIGSYS and SIGRTMIN), and the
 * fault signals: a fault is the faulting thread's to handle at once (a
 * blocked one kills the process, and a handler that only posts would
 * return to the faulting instruction forever). */
static int signo_ok(int signo)
{
	if (signo <= 0 || signo > SIGRTMAX || signo >= NSIG)
		return 0;
	switch (signo) {
	case SIGKILL: case SIGSTOP:
	case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGTRAP: case SIGSYS:
		return 0;
	}
	return signo < SIGSYS || signo >= SIGRTMIN;
}

/* A ready signalfd is read SIG_READ_BATCH instances a read() and at most
 * SIG_READ_ROUNDS reads a kernel round. */
#define SIG_READ_BATCH 16
#define SIG_READ_ROUNDS 16

static int signal_arm(struct evq *q, struct evq__reg *r, enum evq__fd_op op)
{
	struct sig_reg *s = r->ext;
	return evq__fd_ctl(q, r, op, s->fd, EVQ_READ,
			   r->flags & (EVQ_ONESHOT | EVQ_DISABLED));
}

/* Reads every pending instance (up to a bound: a flood is picked up again
 * next round, the signalfd stays readable): one event, data = count, the
 * last instance's sender and value. */
static int signal_ready(struct evq *q, struct evq__reg *r, uint32_t events,
			struct evq_event *ev)
{
	struct sig_reg *s = r->ext;
	struct signalfd_siginfo si[SIG_READ_BATCH];
	uint64_t count = 0;
	uint32_t pid = 0, value = 0;
	(void)events;
	for (int round = 0; round < SIG_READ_ROUNDS; round++) {
		ssize_t n = evq__read(s->fd, si, sizeof si);
		if (n < (ssize_t)sizeof si[0])
			break;
		size_t k = (size_t)n / sizeof si[0];
		count += k;
		pid = si[k - 1].ssi_pid;
		value = (uint32_t)si[k - 1].ssi_int;
		if (k < sizeof si / sizeof si[0])
			break;
	}
	if (count == 0) {
		/* The handler or a reader in another thread took it; a oneshot
		 * watch the kernel just disarmed must watch on. */
		if (r->flags & EVQ_ONESHOT)
			(void)signal_arm(q, r, EVQ_FD_MOD);
		return 0;
	}
	ev->events = pid;
	ev->data = (count > UINT32_MAX ? UINT32_MAX : count) | (uint64_t)value << 32;
	return 1;
}

/* Posts from the handler: r->val = pid << 32 | value of the latest. */
static void signal_posted(struct evq *q, struct evq__reg *r, uint64_t count,
			  uint64_t info)
{
	(void)q;
	uint64_t c = (r->pend_data & UINT32_MAX) + count;
	r->pend_data = (c > UINT32_MAX ? UINT32_MAX : c) | (info & UINT32_MAX) << 32;
	r->pend_events = (uint32_t)(info >> 32);
}

static int signal_mod(struct evq *q, struct evq__reg *r, uint32_t events,
		      uint32_t old_flags)
{
	(void)events, (void)old_flags;
	return signal_arm(q, r, EVQ_FD_MOD);
}

static void signal_del(struct evq *q, struct evq__reg *r)
{
	struct sig_reg *s = r->ext;
	struct signalfd_siginfo si[SIG_READ_BATCH];
	if (!s)
		return;
	(void)q->backend->fd_ctl(q, EVQ_FD_DEL, s->fd, 0, 0, 0);
	evq__sig_lock();
	/* Still ours?  Not if this is a queue inherited through fork() whose
	 * signal the child has registered anew in a queue of its own. */
	int mine = evq__sig_is_target(s->signo, q, s->target);
	if (mine) {
		evq__sig_publish(s->signo, NULL, 0);
		evq__sig_quiesce();
		/* Instances pending now arrived while registered: they die
		 * with the registration instead of meeting the restored
		 * disposition. */
		while (read(s->fd, si, sizeof si) > 0)
			;
		evq__sig_release(s->signo);
	}
	evq__sig_unlock();
	if (mine && !s->was_blocked && pthread_equal(pthread_self(), s->thread)) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, s->signo);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	close(s->fd);
	free(s);
	r->ext = NULL;
}

/* evq_requeue: data is the count in the low half (add, saturating) and
 * the newest value in the high half; events is the newest sender. */
static void signal_merge(struct evq__reg *r, const struct evq_event *ev)
{
	uint64_t c = (r->pend_data & UINT32_MAX) + (ev->data & UINT32_MAX);
	uint64_t hi = r->pend_data ? r->pend_data >> 32 : ev->data >> 32;
	r->pend_data = hi << 32 | (c > UINT32_MAX ? UINT32_MAX : c);
	if (!r->pend_events)
		r->pend_events = ev->events;
}

static int signal_make(struct evq *q, struct evq__add *a)
{
	(void)q;
	if (!signo_ok(a->ident))
		return -EINVAL;
	struct sig_reg *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, a->ident);
	s->signo = a->ident;
	s->thread = pthread_self();
	s->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->fd < 0) {
		int e = errno;
		free(s);
		return -e;
	}
	a->ext = s;
	a->events = EVQ_READ;
	return 0;
}

/* (q->lock, sig lock) A claim left by a queue inherited through fork() is
 * stale: the child may register the signal anew (the handler and the saved
 * disposition stay; the inherited registration then lets go). */
static int signal_prepare(struct evq *q, struct evq__add *a)
{
	struct sig_reg *s = a->ext;
	struct evq *holder = evq__sig_queue(s->signo);
	(void)q;
	s->takeover = evq__sig_owner(s->signo) == EVQ_SIG_SIGNAL && holder &&
		      evq__forked(holder);
	return evq__sig_owner(s->signo) != EVQ_SIG_FREE && !s->takeover ? -EBUSY : 0;
}

/* (q->lock, sig lock) Watch the signalfd, then block, then publish the
 * handler's target, then install the handler: no instance falls between
 * signalfd and handler. */
static int signal_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct sig_reg *s = r->ext;
	int signo = s->signo;
	(void)a;
	int rc = signal_arm(q, r, EVQ_FD_ADD);
	if (rc < 0)
		return rc;
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	s->was_blocked = sigismember(&old, signo);
	s->target = evq__sig_target(r);
	evq__sig_publish(signo, q, s->target);
	rc = s->takeover ? 0 : evq__sig_claim(signo, EVQ_SIG_SIGNAL);
	if (rc < 0) {
		evq__sig_publish(signo, NULL, 0);
		if (!s->was_blocked)
			pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		(void)q->backend->fd_ctl(q, EVQ_FD_DEL, s->fd, 0, 0, 0);
	}
	return rc;
}

_Static_assert(offsetof(struct sig_reg, signo) == offsetof(struct evq__fd_ext, ident),
	       "a signal registration's ext begins as struct evq__fd_ext");

const struct evq__kind evq__kind_signal = {
	.name = "signal",
	.caps = EVQ__KIND_IDENT_EXT,
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.posted = signal_posted,
	.del = signal_del,
	.ready = signal_ready,
	.mod = signal_mod,
	.merge = signal_merge,
	.make = signal_make,
	.lock = evq__sig_lock,
	.unlock = evq__sig_unlock,
	.prepare = signal_prepare,
	.start = signal_start,
	.drop = evq__drop_fd_ext,
};

int64_t evq_add_signal(struct evq *q, int signo, uint64_t cookie)
{
	return evq__reg_add(q, EVQ_KIND_SIGNAL, 0, cookie, signo, NULL);
}
