/* SPDX-License-Identifier: MIT */
/*
 * queue.pml - the queue's sleep protocol and the hand-on of leftovers
 * (src/core/wait.c: evq_wait, pass_on; src/core/post.c: evq__kick;
 * backend wake/wait as src/backend/epoll.c does them).
 *
 *   waiter (evq_wait(max))                  producer (evq__post, evq__kick)
 *   Q  quiet path: W1 without the lock,
 *      then read post_head and pend_head
 *      (lock-free); both empty: W3 at once,
 *      else sleepers-- and on to C
 *   C  lock; collect: drain the post stack  P1 push on post_head
 *      into the pending list, take up to    P2 if sleepers > 0 and
 *      max events from it                      exchange(wake_sent, 1) == 0:
 *   W1 sleepers++                           P3    backend wake: the eventfd
 *   W2 if post_head non-empty: sleepers--,        edge becomes ready and one
 *      collect (drain) again                      sleeper is let go
 *   W3 unlock; backend wait: returns when it
 *      harvests the eventfd edge (woken), or on timeout
 *   W4 sleepers--; if woken: wake_sent = 0; lock; collect; none taken:
 *      back to W1 (a timeout returns 0)
 *   H  pass_on: if sleepers > 0 and events are left (pending list or post
 *      stack): kick (P2, P3) - one sleeper; unlock.  With the pending list
 *      non-empty it fences first (evq__kick_linked), then reads sleepers
 *
 * The pending list is written under the lock but Q reads it without: its
 * stores (pend) reach Q's reader (pendv) only at a fence or locked
 * instruction of the writer - H's fence, its W1, or its unlock; until then
 * Q may read an older value.  H's fence and W1 make the Dekker pair that
 * keeps Q from sleeping past a leftover nobody kicks for.  The drain is
 * two steps, as in post.c: the stack is emptied, then its entries linked.
 *
 * The eventfd is edge-triggered in epoll: writes while its edge is ready
 * coalesce into that one edge, and exactly one wait() harvests it.  Each
 * waiter takes at most MAX events per evq_wait, fewer than producers post,
 * and its caller, after a call that returned events, either calls again or
 * stops for good (nondeterministically): the events it left behind are
 * then someone else's.  One waiter may time out, once (more timeouts would
 * only mask a lost wakeup by polling).  Abstracted away: timers and the
 * keeper deadline (pass_on's third reason), fds, the registrations
 * themselves (an event is a count), and q->lock is one flag.
 *
 * Checked (safety, exhaustive): no lost wakeup and no stranded leftover.
 * When the whole system is stuck (Promela's `timeout`), no waiter sleeps
 * in W3 while an event waits on the stack or in the pending list, and
 * every event was posted once and taken at most once.  The sleep itself is
 * a valid end state (end_ label): sleeping with nothing to do is fine.
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   NORESET     W4 never resets wake_sent after a harvested wake
 *   EARLYCHECK  a producer checks sleepers (P2) before pushing (P1)
 *   NOPASSON    no pass_on: a waiter that took MAX of more leaves the rest
 *               to a sleeper nobody wakes
 *   NOFENCE     H reads sleepers before its pending-list stores are
 *               visible (no fence): Q sleeps past the leftover
 *   LATEW1      Q looks before W1: a post or leftover in between is
 *               kicked for nobody
 *
 * @run | -DSAFETY |
 * @tooth -DNORESET | -DSAFETY |
 * @tooth -DEARLYCHECK | -DSAFETY |
 * @tooth -DNOPASSON | -DSAFETY |
 * @tooth -DNOFENCE | -DSAFETY |
 * @tooth -DLATEW1 | -DSAFETY |
 */

#define NPROD 2   /* producers, one post each */
#define NWAIT 2   /* waiters */
#define MAX 1     /* events one evq_wait takes at most */

byte posted;      /* on the post stack, not yet drained */
byte pend;        /* in the pending list (under the lock) */
byte pendv;       /* pend as a lock-free reader (Q) sees it */
byte taken;       /* handed out by evq_wait */
byte sleepers;
bool wake_sent;
bool edge;        /* the eventfd's epoll edge is ready */
bool mu;          /* q->lock */
bool insleep[NWAIT]; /* waiter i sleeps in W3 */

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { atomic { pendv = pend; mu = false } }

/* evq__kick: P2, P3 */
inline kick() {
	if
	:: sleepers > 0 ->
		atomic { old = wake_sent; wake_sent = true };
		if
		:: !old -> edge = true                    /* P3 */
		:: else -> skip
		fi
	:: else -> skip
	fi
}

/* collect (lock held): drain the stack, take up to MAX */
inline collect() {
	atomic { d = posted; posted = 0 };                /* exchange */
	pend = pend + d;                                  /* link */
	k = (pend > MAX -> MAX : pend);
	pend = pend - k;
	taken = taken + k
}

active [NPROD] proctype producer()
{
	bool old;
#ifdef EARLYCHECK
	kick();                                           /* P2 first: wrong */
	posted++
#else
	posted++;                                         /* P1 */
	kick()                                            /* P2, P3 */
#endif
}

active [NWAIT] proctype waiter()
{
	bool woken, old;
	byte k, d;
	bool timed = (_pid % 2 == 0);
call:
#ifdef LATEW1
	if
	:: posted > 0 || pendv > 0 -> goto locked
	:: else -> sleepers++; goto sleep                 /* W1 too late */
	fi;
#endif
	sleepers++;                                       /* Q: W1 */
	if
	:: posted > 0 -> sleepers--; goto locked
	:: else -> skip
	fi;
	if
	:: pendv > 0 -> sleepers--; goto locked
	:: else -> goto sleep                             /* quiet */
	fi;
locked:
	lock();
	collect();                                        /* C */
	do
	:: k > 0 -> break
	:: else ->
		atomic { sleepers++; pendv = pend };      /* W1 */
		if                                        /* W2 */
		:: posted > 0 -> sleepers--; collect(); goto next
		:: else -> skip
		fi;
		unlock();
sleep:
		woken = false;
		insleep[_pid - NPROD] = true;
end_sleep:
		if                                        /* W3 */
		:: atomic { edge -> edge = false; woken = true }
		:: timed -> timed = false                 /* timeout */
		fi;
		insleep[_pid - NPROD] = false;
		sleepers--;                               /* W4 */
#ifndef NORESET
		if
		:: woken -> wake_sent = false
		:: else -> skip
		fi;
#endif
		lock();
		collect();
		if
		:: k == 0 && !woken -> break              /* timed out: 0 */
		:: else -> skip
		fi;
next:		skip
	od;
#ifndef NOPASSON
#ifdef NOFENCE
	if                                                /* H, unfenced */
	:: sleepers > 0 && (pend > 0 || posted > 0) -> kick()
	:: else -> skip
	fi;
#else
	if                                                /* H pass_on */
	:: pend > 0 -> pendv = pend; kick()               /* fence, P2 */
	:: else ->
		if
		:: sleepers > 0 && posted > 0 -> kick()
		:: else -> skip
		fi
	fi;
#endif
#endif
	unlock();
	if
	:: k == 0 -> goto call                            /* timed out */
	:: k > 0 -> goto call                             /* the caller loops */
	:: k > 0 -> skip                                  /* or stops */
	fi
}

/* Stuck: nothing can move.  No waiter sleeps while events wait. */
active proctype monitor()
{
	timeout ->
	assert(!((insleep[0] || insleep[1]) && (posted > 0 || pend > 0)));
	assert(taken + pend + posted == NPROD)
}
