/*
 * latch.pml - latches (src/latch.c): setters, and an owner that resets,
 * takes the work it finds, and waits, either with evq_latch_wait or
 * (-DQUEUE) through a queue registration watched by the futex watcher.
 *
 * state = times_set << 1 | set
 *   setter (evq_latch_set)               owner, sync (evq_latch_wait)
 *   (work++ first: the reason to wake)     R1 state &= ~1 (evq_latch_reset)
 *   L1 v = state; if set: done, no call    then take all work; stop when
 *   L2 CAS(state, v, (v + 2) | 1), else L1    all of it was taken
 *   L3 if waiters > 0: futex_wake(all)     A1 waiters++
 *                                          A2 v = state; if set: leave
 *                                          A3 futex_wait(state, v)
 *                                          A4 back to A2; waiters-- on leaving
 *   owner, -DQUEUE: the registration did A1 when armed; the watcher's
 *   check (W1) reads v = state and, if v != expected, sets expected = v
 *   and posts an event when v is set; then futex_wait(state, expected).
 *   The owner waits for the event (the queue itself is model/queue.pml).
 *
 * Checked (safety, exhaustive): no latch set is missed - the owner never
 * sleeps forever after work was added (its sleep is not a valid end state:
 * the run must end with the owner having taken every item).
 * Teeth: the -DQUEUE run fails if the state does not count sets
 * (-DNOCOUNT: with a set bit alone the watcher mistakes a set after a
 * reset for the set it already reported), and both runs fail if a setter
 * tests waiters before its CAS.
 *
 * @run | -DSAFETY |
 * @run -DQUEUE | -DSAFETY |
 */

#define NSET 2          /* setters, one work item and one set each */
#define SETBIT 1

byte state;
byte waiters;
byte work;
byte taken;

/* futex: the owner (sync) or the watcher (QUEUE) is the only sleeper */
bool asleep;
#ifdef QUEUE
bool pending;
byte expected;
#endif

#ifdef NOCOUNT
#define NEXT(v) ((v) | SETBIT)
#else
#define NEXT(v) (((v) + 2) | SETBIT)
#endif

active [NSET] proctype setter()
{
	byte v;
	work++;
	do
	:: v = state;                                     /* L1 */
		if
		:: v & SETBIT -> goto out
		:: else -> skip
		fi;
		atomic {                                  /* L2 */
			if
			:: state == v -> state = NEXT(v); break
			:: else -> skip
			fi
		}
	od;
	if                                                /* L3 */
	:: waiters > 0 -> asleep = false
	:: else -> skip
	fi;
out:
	skip
}

#ifndef QUEUE
active proctype owner()
{
	byte v;
	do
	:: state = state & ~SETBIT;                       /* R1 */
		taken = work;
		if
		:: taken == NSET -> break
		:: else -> skip
		fi;
		waiters++;                                /* A1 */
		do
		:: v = state;                             /* A2 */
			if
			:: v & SETBIT -> break
			:: else -> skip
			fi;
			atomic {                          /* A3 */
				if
				:: state == v -> asleep = true
				:: else -> skip
				fi
			};
			!asleep                           /* A4 */
		od;
		waiters--
	od
}
#else
active proctype owner()
{
	do
	:: state = state & ~SETBIT;                       /* R1 */
		taken = work;
		if
		:: taken == NSET -> break
		:: else -> skip
		fi;
		atomic { pending -> pending = false }     /* evq_wait */
	od
}

active proctype watcher()
{
	byte v;
	atomic {                                          /* arm */
		waiters++;                                /* A1 */
		v = state;
		expected = (v & SETBIT -> v ^ SETBIT : v)
	};
	do
	:: v = state;                                     /* W1 */
		if
		:: v != expected ->
			expected = v;
			if
			:: v & SETBIT -> pending = true   /* evq__post */
			:: else -> skip
			fi
		:: else -> skip
		fi;
		atomic {                                  /* futex_waitv */
			if
			:: state == expected -> asleep = true
			:: else -> skip
			fi
		};
end_sleep:
		!asleep
	od
}
#endif
