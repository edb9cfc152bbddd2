/* SPDX-License-Identifier: MIT */
/*
 * sigtable.c - the process-wide table of the signals evq owns, shared by
 * signal.c (evq_add_signal) and sigevent.c (evq_sigevent): who owns each
 * signal, evq's SA_SIGINFO handler that posts what a thread which had not
 * blocked the signal received, the in-flight count that lets a
 * registration die while handlers may still be posting, and the lock
 * that serialises claims (held across fork()).
 *
 * Handler protocol: a claim's target is stored before claims[s].q is
 * published; the handler increments evq__sig_inflight before it loads q and
 * decrements it after posting; evq_del clears q and then waits until
 * inflight is 0 before the registration may be freed.  A handler that loaded
 * q before the clear is counted, so del waits for it; one that loads after
 * sees NULL and does nothing.  No handler ever posts into freed memory, and
 * evq__post's tag check refuses a post into a reused slot.
 */
#include <errno.h>
#include <sched.h>

#include "kinds/sigtable.h"

struct claim {
	_Atomic(struct evq *) q;      /* handler's target queue, or NULL */
	_Atomic uint64_t target;      /* slot idx | ctl tag << 32 */
	_Atomic int owner;            /* EVQ_SIG_*; written under tab_lock */
	struct sigaction old;         /* disposition before the claim */
};

static struct claim claims[NSIG];
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
_Atomic int evq__sig_inflight;

/* fork() in another thread must not leave tab_lock held forever in the
 * child, whose evq_free() takes it. */
static void atfork_prepare(void) { pthread_mutex_lock(&tab_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&tab_lock); }
static void register_atfork(void)
{
	pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

void evq__sig_lock(void)
{
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&tab_lock);
}

void evq__sig_unlock(void) { pthread_mutex_unlock(&tab_lock); }

void evq__sig_quiesce(void)
{
	while (atomic_load(&evq__sig_inflight) != 0)
		sched_yield(); /* a handler's post is a few atomic operations */
}

/* siginfo fields worth an event, only where the kernel's layout for this
 * signal and si_code has them (si_value overlaps SIGCHLD's si_status). */
static uint64_t pack_info(int signo, const siginfo_t *si)
{
	uint32_t pid = 0, value = 0;
	int code = si->si_code;
	if (code == SI_QUEUE || code == SI_MESGQ || code == SI_ASYNCIO) {
		pid = (uint32_t)si->si_pid;
		value = (uint32_t)si->si_value.sival_int;
	} else if (code == SI_TIMER) {
		value = (uint32_t)si->si_value.sival_int;
	} else if (code == SI_USER || code == SI_TKILL ||
		   (signo == SIGCHLD && code > 0)) {
		pid = (uint32_t)si->si_pid;
	}
	return (uint64_t)pid << 32 | value;
}

static void on_signal(int signo, siginfo_t *si, void *uctx)
{
	(void)uctx;
	int saved = errno;
	evq__sig_enter();
	int owner = atomic_load(&claims[signo].owner);
	if (owner == EVQ_SIG_SIGEVENT) {
		evq__sigevent_forward(si->si_code, si->si_value.sival_ptr,
				      si->si_overrun, si->si_timerid);
	} else if (owner == EVQ_SIG_SIGNAL) {
		struct evq *q = atomic_load(&claims[signo].q);
		/* an inherited queue in a forked child is not ours to post to */
		if (q && !evq__forked(q)) {
			uint64_t t = atomic_load(&claims[signo].target);
			struct evq__reg *r = evq__slot(q, (uint32_t)t);
			atomic_store(&r->val, pack_info(signo, si));
			evq__post(q, r, (uint32_t)(t >> 32), 1);
		}
	}
	evq__sig_leave();
	errno = saved;
}

int evq__sig_owner(int signo) { return atomic_load(&claims[signo].owner); }

int evq__sig_claim(int signo, int owner)
{
	struct claim *c = &claims[signo];
	if (atomic_load(&c->owner) != EVQ_SIG_FREE)
		return -EBUSY;
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(signo, NULL, &c->old) < 0)
		return -errno;
	/* keep the caller's choice about stop/continue notifications */
	if (signo == SIGCHLD)
		sa.sa_flags |= c->old.sa_flags & SA_NOCLDSTOP;
	atomic_store(&c->owner, owner);
	if (sigaction(signo, &sa, NULL) < 0) {
		int e = errno;
		atomic_store(&c->owner, EVQ_SIG_FREE);
		return -e;
	}
	return 0;
}

void evq__sig_release(int signo)
{
	struct claim *c = &claims[signo];
	sigaction(signo, &c->old, NULL);
	atomic_store(&c->owner, EVQ_SIG_FREE);
}

struct evq *evq__sig_queue(int signo) { return atomic_load(&claims[signo].q); }

void evq__sig_publish(int signo, struct evq *q, uint64_t target)
{
	if (q)
		atomic_store(&claims[signo].target, target);
	atomic_store(&claims[signo].q, q);
}

int evq__sig_is_target(int signo, struct evq *q, uint64_t target)
{
	return atomic_load(&claims[signo].q) == q &&
	       atomic_load(&claims[signo].target) == target;
}
