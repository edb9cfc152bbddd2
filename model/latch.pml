/* SPDX-License-Identifier: MIT */
/*
 * latch.pml - latches (src/kinds/latch.c): setters, and an owner per latch that
 * resets, takes the work it finds, and waits, either with evq_latch_wait
 * or (-DQUEUE) through a queue registration watched by the futex watcher;
 * with -DMANY two latches, set together by evq_latch_set_many.
 *
 * state = times_set << 1 | set
 *   setter (evq_latch_set)               owner, sync (evq_latch_wait)
 *   (work++ first: the reason to wake)      LR1 state &= ~1 (evq_latch_reset)
 *   LA1 v = state; if set: done, no call        then take all work; stop when
 *   LA2 CAS(state, v, (v + 2) | 1), else LA1    all of it was taken
 *   LA3 if waiters > 0: futex_wake(all)     LW1 waiters++
 *                                           LW2 v = state; if set: leave
 *                                           LW3 futex_wait(state, v)
 *                                           LW4 back to LW2; waiters-- on leaving
 *   owner, -DQUEUE: the registration did LW1 when armed; the watcher's
 *   check (LC1) reads v = state and, if v != expected, sets expected = v
 *   and posts an event when v is set; then futex_wait(state, expected).
 *   The owner waits for the event (the queue itself is model/queue.pml).
 *   -DMANY: each setter calls evq_latch_set_many over both latches: work
 *   for both first, then LA1-LA2 and LA3's load of waiters for each latch in
 *   turn, and only after all of them the wakes of the latches that need
 *   one - in any order (the wake ring issues them all in one
 *   io_uring_enter, FUTEX_WAKE_OP two at a time: either way after every
 *   LA2 of the call, in an order the model leaves open).
 *
 * Checked (safety, exhaustive): no latch set is missed - an owner never
 * sleeps forever after work was added to its latch (its sleep is not a
 * valid end state: the run must end with every owner having taken every
 * item of its latch).
 * Abstracted away: the futex wake's "all" (one sleeper per latch here),
 * several registrations per watcher, timeouts, the 31-bit set count's
 * wrap (it skips 0), shared vs private words, the wake ring's fallbacks.
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   NOCOUNT       (-DQUEUE) the state does not count sets: with a set bit
 *                 alone the watcher mistakes a set after a reset for the
 *                 set it already reported
 *   EARLYWAITERS  a setter loads waiters (LA3) before its CAS (LA2) - sync
 *                 and queue owners both miss the set
 *   EARLYWAKE     (-DMANY) set_many wakes a latch (load waiters, wake)
 *                 after LA1 saw it unset but before that latch's LA2
 *   SKIPLAST      (-DMANY) set_many leaves the last latch of its batch
 *                 unwoken (as if a pairing lost the odd one out)
 *
 * @run | -DSAFETY |
 * @run -DQUEUE | -DSAFETY |
 * @run -DMANY | -DSAFETY |
 * @tooth -DQUEUE -DNOCOUNT | -DSAFETY |
 * @tooth -DEARLYWAITERS | -DSAFETY |
 * @tooth -DQUEUE -DEARLYWAITERS | -DSAFETY |
 * @tooth -DMANY -DEARLYWAKE | -DSAFETY |
 * @tooth -DMANY -DSKIPLAST | -DSAFETY |
 */

#define NSET 2          /* setters, one work item and one set each */
#define SETBIT 1
#ifdef MANY
#define NL 2            /* latches */
#else
#define NL 1
#endif

byte state[NL];
byte waiters[NL];
byte work[NL];
byte taken[NL];

/* futex: the owner (sync) or the watcher (QUEUE) of each latch is its
 * only sleeper */
bool asleep[NL];
#ifdef QUEUE
bool pending[NL];
byte expected[NL];
#endif

#ifdef NOCOUNT
#define NEXT(v) ((v) | SETBIT)
#else
#define NEXT(v) (((v) + 2) | SETBIT)
#endif

/* LA1, LA2 (and LA3's load) for latch l: need = a wake is due */
inline set_bit(l) {
	need = false;
	do
	:: v = state[l];                                  /* LA1 */
		if
		:: v & SETBIT -> break
		:: else -> skip
		fi;
#ifdef EARLYWAITERS
		need = waiters[l] > 0;                    /* LA3 first: wrong */
#endif
#ifdef EARLYWAKE
		if                                        /* LA3 whole: wrong */
		:: waiters[l] > 0 -> asleep[l] = false
		:: else -> skip
		fi;
#endif
		atomic {                                  /* LA2 */
			if
			:: state[l] == v -> state[l] = NEXT(v); set = true
			:: else -> set = false
			fi
		};
		if
		:: set ->
#ifndef EARLYWAITERS
			need = waiters[l] > 0;            /* LA3: load */
#endif
			break
		:: else -> skip
		fi
	od
}

#ifndef MANY
active [NSET] proctype setter()
{
	byte v;
	bool need, set;
	work[0]++;
	set_bit(0);
	if                                                /* LA3: wake */
	:: need -> asleep[0] = false
	:: else -> skip
	fi
}
#else
active [NSET] proctype setter()
{
	byte v, l;
	bool need, set;
	bool wake[NL];
	for (l : 0 .. NL - 1) {
		work[l]++
	}
	for (l : 0 .. NL - 1) {
		set_bit(l);
#ifndef EARLYWAKE
		wake[l] = need
#else
		wake[l] = false           /* it woke before its LA2 */
#endif
	}
#ifdef SKIPLAST
	wake[NL - 1] = false;
#endif
	do                                                /* LA3s, any order */
	:: wake[0] -> wake[0] = false; asleep[0] = false
	:: wake[1] -> wake[1] = false; asleep[1] = false
	:: else -> break
	od
}
#endif

#ifndef QUEUE
active [NL] proctype owner()
{
	byte v, me = _pid - NSET;
	do
	:: state[me] = state[me] & ~SETBIT;               /* LR1 */
		taken[me] = work[me];
		if
		:: taken[me] == NSET -> break
		:: else -> skip
		fi;
		waiters[me]++;                            /* LW1 */
		do
		:: v = state[me];                         /* LW2 */
			if
			:: v & SETBIT -> break
			:: else -> skip
			fi;
			atomic {                          /* LW3 */
				if
				:: state[me] == v -> asleep[me] = true
				:: else -> skip
				fi
			};
			!asleep[me]                       /* LW4 */
		od;
		waiters[me]--
	od
}
#else
active [NL] proctype owner()
{
	byte me = _pid - NSET;
	do
	:: state[me] = state[me] & ~SETBIT;               /* LR1 */
		taken[me] = work[me];
		if
		:: taken[me] == NSET -> break
		:: else -> skip
		fi;
		atomic { pending[me] -> pending[me] = false } /* evq_wait */
	od
}

active [NL] proctype watcher()
{
	byte v, me = _pid - NSET - NL;
	atomic {                                          /* arm */
		waiters[me]++;                            /* LW1 */
		v = state[me];
		expected[me] = (v & SETBIT -> v ^ SETBIT : v)
	};
	do
	:: v = state[me];                                 /* LC1 */
		if
		:: v != expected[me] ->
			expected[me] = v;
			if
			:: v & SETBIT -> pending[me] = true /* evq__post */
			:: else -> skip
			fi
		:: else -> skip
		fi;
		if
		:: state[me] != expected[me] -> skip     /* X5: moved, no call */
		:: else ->
			atomic {                          /* futex_waitv */
				if
				:: state[me] == expected[me] -> asleep[me] = true
				:: else -> skip
				fi
			}
		fi;
end_sleep:
		!asleep[me]
	od
}
#endif
