/* SPDX-License-Identifier: MIT */
/*
 * sigtable.h - sigtable.c, what signal.c (evq_add_signal) and sigevent.c
 * (evq_sigevent) share: the process-wide table of signals evq owns and the in-flight count
 * that lets a registration die while signal handlers may still be posting.
 * Not installed.
 */
#ifndef EVQ_SIGTABLE_H
#define EVQ_SIGTABLE_H

#include <signal.h>
#include <stdatomic.h>

#include "internal.h"

/* Who owns a signal process-wide (evq__sig_owner). */
enum { EVQ_SIG_FREE, EVQ_SIG_SIGNAL, EVQ_SIG_SIGEVENT };

/* Serialises claims, the sigevent token table and the carriers; taken
 * after q->lock, never in a signal handler; held across fork(). */
void evq__sig_lock(void);
void evq__sig_unlock(void);

/* Owner of signo (locked).  Claim: installs evq's SA_SIGINFO handler and
 * saves the old disposition; -EBUSY if owned already, -errno from
 * sigaction().  Release: restores the old disposition (locked). */
int evq__sig_owner(int signo);
int evq__sig_claim(int signo, int owner);
void evq__sig_release(int signo);

/* What a handler posts to: r's slot and ctl tag in one word (the slot in
 * the low half), published by a store the handler loads at once. */
static inline uint64_t evq__sig_target(struct evq__reg *r)
{
	return (uint64_t)evq__reg_tag(r) << 32 | evq__idx(r);
}

/* evq_add_signal's registration for signo, which the handler posts to
 * (target: slot idx | ctl tag << 32).  publish stores the target before
 * the queue, so a handler that sees q sees its target; q NULL unpublishes.
 * is_target: signo's is this one.  queue: the queue published, or NULL.
 * (sig lock) */
struct evq *evq__sig_queue(int signo);
void evq__sig_publish(int signo, struct evq *q, uint64_t target);
int evq__sig_is_target(int signo, struct evq *q, uint64_t target);

/* Lock-free readers (signal handlers, the sigevent carrier) bracket every
 * use of a table entry with enter/leave; a writer that unpublished an entry
 * calls quiesce before the registration behind it may be freed. */
extern _Atomic int evq__sig_inflight;
static inline void evq__sig_enter(void) { atomic_fetch_add(&evq__sig_inflight, 1); }
static inline void evq__sig_leave(void) { atomic_fetch_sub(&evq__sig_inflight, 1); }
void evq__sig_quiesce(void);

/* How a reader of evq_sigevent()'s signal (SIGRTMAX: the handler, a
 * queue's signalfd) hands an instance to sigevent.c, as dequeued: code =
 * si_code, token = si_value, and for SI_TIMER overrun = si_overrun and
 * timer_id = si_timerid (other codes: ignored).  sigevent.c decides whether
 * it is a notification and what it counts: none of these fields is trusted.
 * Async-signal-safe; call between enter and leave. */
void evq__sigevent_forward(int code, void *token, int overrun, int timer_id);

#endif /* EVQ_SIGTABLE_H */
