/*
 * sigsrc.h - what signal.c (evq_add_signal) and sigevent.c (evq_sigevent)
 * share: the process-wide table of signals evq owns and the in-flight count
 * that lets a registration die while signal handlers may still be posting.
 * Not installed.
 */
#ifndef EVQ_SIGSRC_H
#define EVQ_SIGSRC_H

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

/* Lock-free readers (signal handlers, the sigevent carrier) bracket every
 * use of a table entry with enter/leave; a writer that unpublished an entry
 * calls quiesce before the registration behind it may be freed. */
extern _Atomic int evq__sig_inflight;
static inline void evq__sig_enter(void) { atomic_fetch_add(&evq__sig_inflight, 1); }
static inline void evq__sig_leave(void) { atomic_fetch_sub(&evq__sig_inflight, 1); }
void evq__sig_quiesce(void);

/* How the handler of evq_sigevent()'s signal (SIGRTMAX) hands a
 * notification to sigevent.c: code = si_code, token = si_value, count =
 * 1 + overruns.  Async-signal-safe; call between enter and leave. */
void evq__sigevent_forward(int code, void *token, uint64_t count);

#endif /* EVQ_SIGSRC_H */
