/* SPDX-License-Identifier: MIT */
/*
 * shutdown.pml - evq_shutdown's relay (src/core/wait.c, "Shutdown"; steps named
 * there), on top of the sleep protocol of queue.pml.
 *
 *   evq_shutdown                       waiter (a pool thread: it calls
 *   S1 shut = 1; kick (P2, P3)         evq_wait again until -ESHUTDOWN)
 *                                      S2 entry: shut -> -ESHUTDOWN
 *   producer                           C  lock; collect
 *   P1 post; P2/P3 kick                W1 sleepers++; S2: shut -> undo W1,
 *                                         leave through H
 *                                      W2 posted -> undo W1, collect again
 *                                      W3 unlock; wait: the edge (woken), a
 *                                         timeout (once), or - a poll, for
 *                                         waiter 0 when it chooses - no
 *                                         sleep at all (not counted in W1)
 *                                      W4 sleepers--; woken: wake_sent = 0;
 *                                         lock; S2: shut -> leave through H
 *                                      H  pass_on: sleepers > 0 and (left
 *                                         over or shut): kick; unlock
 *
 * The wake is the epoll backend's edge: writes while it is ready coalesce,
 * and one wait() harvests it (a poll may harvest it too).  Every other
 * backend keeps the same contract (backend.h: one wake ends one wait,
 * which returns to the core), which is all the relay uses.
 *
 * Checked (safety, exhaustive): when nothing can move any more, every
 * waiter has returned -ESHUTDOWN: none sleeps on after evq_shutdown, with
 * a producer's wake racing with S1's (wake_sent already set), a poll
 * harvesting the wake, and a waiter backing out at W1.
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   NORELAY    pass_on does not kick for shut: one wake ends one sleeper
 *   NOW1CHECK  no S2 after W1: a waiter that missed S1's flag at entry
 *              and was not counted by S1's kick sleeps for ever
 *
 * @run | -DSAFETY |
 * @tooth -DNORELAY | -DSAFETY |
 * @tooth -DNOW1CHECK | -DSAFETY |
 */

#define NWAIT 3   /* pool threads */
#define MAX 1     /* events one evq_wait takes at most */
#define SHUT 255  /* k: the call returns -ESHUTDOWN */

byte posted;      /* on the post stack, not yet drained */
byte pend;        /* in the pending list (under the lock) */
byte sleepers;
bool wake_sent;
bool edge;        /* the eventfd's epoll edge is ready */
bool mu;          /* q->lock */
bool shut;
byte ended;       /* waiters that returned -ESHUTDOWN */

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }

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

inline collect() {
	atomic { pend = pend + posted; posted = 0 };
	k = (pend > MAX -> MAX : pend);
	pend = pend - k
}

active proctype producer()
{
	bool old;
	posted++;                                         /* P1 */
	kick()                                            /* P2, P3 */
}

active proctype shutdown()
{
	bool old;
	shut = true;                                      /* S1 */
	kick()
}

active [NWAIT] proctype waiter()
{
	bool woken, old, poll;
	byte k;
	bool timed = (_pid == 2);
call:
	if
	:: shut -> goto out                               /* S2 entry */
	:: else -> skip
	fi;
	lock();
	collect();                                        /* C */
	do
	:: k > 0 -> break
	:: else ->
		poll = false;
		if
		:: _pid == 2 -> poll = true
		:: true -> skip
		fi;
		if
		:: !poll ->
			sleepers++;                       /* W1 */
#ifndef NOW1CHECK
			if                                /* S2 */
			:: shut -> sleepers--; k = SHUT; break
			:: else -> skip
			fi;
#endif
			if                                /* W2 */
			:: posted > 0 -> sleepers--; collect(); goto next
			:: else -> skip
			fi
		:: else -> skip
		fi;
		unlock();
		woken = false;
		if                                        /* W3 */
		:: poll ->
			if
			:: atomic { edge -> edge = false; woken = true }
			:: else -> skip
			fi
		:: !poll ->
end_sleep:
			if
			:: atomic { edge -> edge = false; woken = true }
			:: timed -> timed = false         /* timeout */
			fi;
			sleepers--                        /* W4 */
		fi;
		if
		:: woken -> wake_sent = false
		:: else -> skip
		fi;
		lock();
		if                                        /* S2 */
		:: shut -> k = SHUT; break
		:: else -> skip
		fi;
		collect();
		if
		:: k == 0 && (!woken || poll) -> break    /* 0: call again */
		:: else -> skip
		fi;
next:		skip
	od;
	if                                                /* H pass_on */
#ifdef NORELAY
	:: sleepers > 0 && (pend > 0 || posted > 0) -> kick()
#else
	:: sleepers > 0 && (pend > 0 || posted > 0 || shut) -> kick()
#endif
	:: else -> skip
	fi;
	unlock();
	if
	:: k == SHUT -> goto out
	:: else -> goto call                              /* the pool loops */
	fi;
out:
	ended++
}

/* Stuck: nothing can move.  Every pool thread has returned -ESHUTDOWN. */
active proctype monitor()
{
	timeout ->
	assert(shut && ended == NWAIT)
}
