/* SPDX-License-Identifier: MIT */
/*
 * word.pml - a word registration watched by the futex watcher thread
 * (src/kinds/word.c, src/core/watch.c), a waker that changes the word NCHG times, and
 * another (plain, synchronous) futex waiter of the same word, over a model
 * of the kernel futex and futex_waitv.
 *
 *   waker (NCHG times)    owner (q->lock held)       watcher thread
 *   WO1 word = i          O1 lock mu; change the     X1 lock mu
 *   WO2 futex_wake(1)        item; ctl++; unlock     X2 after a wake: for the
 *                         O2 futex_wake(ctl)            word of the last vector,
 *   other waiter          O3 detach only: wait for      if no item wants it
 *   v = word; until v ==     acked >= ctl of O1;        now, futex_wake(1) on
 *   NCHG: futex_wait(v)      then, if an event is    X3 watched item: v = word;
 *                            still undelivered, pass    v != expected: post v
 *                            one wake on (WD1,          (seen = v), expected = v
 *                            word_del); the item and    (-DONESHOT: go idle)
 *                            (after evq_del) the     X4 c = ctl; vector = ctl
 *                            word may be freed          (+ word if watched);
 *                                                       acked = c; unlock
 *                                                    X5 word != expected:
 *                                                       back to X1 at once;
 *                                                       else futex_waitv
 * The owner waits for events and takes each (the value seen), any number of
 * times - with -DONESHOT re-arming after each one with the value seen as
 * the new expected value (word_mod: O1, O2) - and deletes the registration
 * at any moment (nondeterministically), or never.
 *
 * The kernel: FUTEX_WAIT and futex_waitv compare and queue one entry at a
 * time; a wake-one takes any one queued entry of the word and marks it
 * woken; a woken futex_waitv's other entries stay queued, and can take
 * wakes too, until the thread runs.  The word's values only grow (1, 2,
 * ...): a futex cannot see a change undone before it looks (ABA), so the
 * model does not try.  Abstracted away: the queue (pending/seen are the
 * posted, undelivered event), several items or watcher threads, idle.
 *
 * Checked (safety, exhaustive):
 * (1) across re-arms, no change followed by a wake is missed: when nothing
 *     can move, an attached, watched item expects the word's current value
 *     (every change was posted) unless the last wake-one went to the other
 *     waiter while the watcher was queued on the word (wake-one wakes one
 *     waiter); with -DWAKEALL never;
 * (2) no wake is swallowed: when nothing can move and the other waiter
 *     still sleeps, the registration took the last change's wake and used
 *     it - its owner received the latest value, or it still holds that
 *     value as an undelivered event; a wake taken by a registration that
 *     is idle, deleted, or deleted before delivering its event is passed
 *     on (X2, WD1).  An owner waiting for events sleeps on only once it has
 *     received the latest value (or the last wake-one went to the other
 *     waiter, as in (1)).  With -DWAKEALL: the other waiter never sleeps
 *     on, and a waiting owner has the latest value;
 * (3) O3: once evq__watch_detach returned, the watcher never reads the item
 *     (X2's wanted(), X3) or the word (X3, X5) again, and is not queued on
 *     the word (the word may be freed then: asserted when it is).
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   NOPASS     no X2 pass-on
 *   NODELPASS  no pass-on in word_del (WD1)
 *   LATECTL    the watcher reads ctl (X4) after releasing the mutex
 *   NOO3       detach does not wait for the watcher's ack (O3)
 *   NOCOMPARE  X5 queues on the word without comparing it (as if the
 *              vector were built from a stale expected value): a change
 *              between X3 and X5 is missed - property (1)'s own tooth
 *   REREAD     check() posts the value it read but then expects a value it
 *              reads again (a change between the two reads is never posted)
 *   ARMNOW     (-DONESHOT) the re-arm expects the word's value now, not the
 *              value last reported (a change between the event and the
 *              re-arm is never posted)
 *
 * @run | -DSAFETY |
 * @run -DWAKEALL | -DSAFETY |
 * @run -DONESHOT | -DSAFETY |
 * @tooth -DNOPASS | -DSAFETY |
 * @tooth -DNODELPASS | -DSAFETY |
 * @tooth -DLATECTL | -DSAFETY |
 * @tooth -DNOO3 | -DSAFETY |
 * @tooth -DNOCOMPARE | -DSAFETY |
 * @tooth -DREREAD | -DSAFETY |
 * @tooth -DONESHOT -DARMNOW | -DSAFETY |
 */

#ifndef NCHG
#define NCHG 2
#endif
#define WORD 1
#define CTL 2
#define NP 2            /* futex sleepers: 0 watcher, 1 other waiter */

byte word;
byte ctl, acked;
bool mu;

/* the item */
bool attached = true;   /* in the watcher's table */
bool watched;           /* active */
byte expected;
bool pending;           /* event posted, not delivered */
byte seen;              /* the value it reports */
bool detached;          /* O3 done: the watcher must not touch it */
bool freed;             /* evq_del returned: the word may be freed */
byte dv;                /* the value of the last event the owner took */
bool owner_waiting;     /* the owner sleeps in evq_wait for it */

/* the kernel: each sleeper's queued and woken entries */
byte qd[NP];
byte wk[NP];
bool wto;               /* the last WO2 went to the other waiter while the
			 * watcher was queued on the word */

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }

inline wake1(w) {
	atomic {
		if
		:: qd[0] & w -> qd[0] = qd[0] & ~w; wk[0] = wk[0] | w
		:: qd[1] & w -> qd[1] = qd[1] & ~w; wk[1] = wk[1] | w
		:: else -> skip
		fi
	}
}

active proctype waker()
{
	byte i = 1;
	do
	:: i <= NCHG ->
		word = i;                                 /* WO1 */
#ifdef WAKEALL
		atomic {                                  /* WO2, n = all */
			if
			:: qd[0] & WORD -> qd[0] = qd[0] & ~WORD; wk[0] = wk[0] | WORD
			:: else -> skip
			fi;
			if
			:: qd[1] & WORD -> qd[1] = qd[1] & ~WORD; wk[1] = wk[1] | WORD
			:: else -> skip
			fi
		};
#else
		atomic {                                  /* WO2, n = 1 */
			wto = false;
			if
			:: qd[0] & WORD -> qd[0] = qd[0] & ~WORD; wk[0] = wk[0] | WORD
			:: qd[1] & WORD -> qd[1] = qd[1] & ~WORD; wk[1] = wk[1] | WORD;
				wto = (qd[0] & WORD) != 0
			:: else -> skip
			fi
		};
#endif
		i++
	:: else -> break
	od
}

active proctype other()
{
	byte v;
	do
	:: v = word;
		if
		:: v == NCHG -> break
		:: else -> skip
		fi;
		atomic {
			if
			:: word == v -> qd[1] = WORD
			:: else -> skip
			fi
		};
end_other:
		atomic { qd[1] == 0 -> wk[1] = 0 }
	od
}

active proctype owner()
{
	byte c;
	lock(); watched = true; expected = 0; ctl++; unlock();    /* O1 arm */
	wake1(CTL);                                               /* O2 */
	do
	:: owner_waiting = true;                  /* evq_wait */
end_wait:	atomic { pending -> pending = false; dv = seen;
			 owner_waiting = false };
#ifdef ONESHOT
		lock(); watched = true; ctl++;                    /* O1 */
#ifndef ARMNOW
		expected = dv;            /* word_mod: the value seen */
#else
		expected = word;
#endif
		unlock();
		wake1(CTL)                                        /* O2 */
#else
		skip
#endif
	:: break                                  /* evq_del, or never */
	od;
	if
	:: true -> skip
	:: true -> goto end_owner                 /* never deleted */
	fi;
	/* evq_del: evq__watch_detach */
	lock();                                                   /* O1 */
	attached = false; watched = false;
	ctl++; c = ctl;
	wake1(CTL);                                               /* O2 */
#ifndef NOO3
	unlock();                                 /* O3: cond_wait on mu */
	atomic { !mu && acked == c -> mu = true };
#endif
	unlock();
	detached = true;
#ifndef NODELPASS
	if
	:: pending -> wake1(WORD)        /* WD1 word_del: pass one wake on */
	:: else -> skip
	fi;
#endif
	atomic { freed = true; assert(!(qd[0] & WORD)) };
end_owner:
	skip
}

active proctype watcher()
{
	byte c, vec, vexp, v;
	bool woke, moved;
	lock();                                                   /* X1 */
	do
	:: true ->
		if                                                /* X2 */
		:: woke && (vec & WORD) ->
			assert(!detached);                /* wanted() */
#ifndef NOPASS
			if
			:: !(attached && watched) -> wake1(WORD)
			:: else -> skip
			fi
#else
			skip
#endif
		:: else -> skip
		fi;
		if                                                /* X3 */
		:: attached && watched ->
			assert(!detached);
			v = word;
			if
			:: v != expected ->
				seen = v; pending = true; /* evq__post */
#ifdef ONESHOT
				watched = false
#elif defined(REREAD)
				expected = word
#else
				expected = v
#endif
			:: else -> skip
			fi
		:: else -> skip
		fi;
#ifndef LATECTL
		c = ctl;                                          /* X4 */
		vec = CTL | (attached && watched -> WORD : 0);
		vexp = expected;
		acked = c;
		unlock();
#else
		vec = CTL | (attached && watched -> WORD : 0);
		vexp = expected;
		unlock();
		c = ctl;
		acked = c;
#endif
		woke = false;                                     /* X5 */
		/* sleep_on(): a word that already differs ends X5 before the
		 * system call, as -EAGAIN would (the model's word is always
		 * mapped, so the load is always made) */
		if
		:: (vec & WORD) ->
			atomic {
				assert(!detached);        /* loads the word */
				moved = (word != vexp)
			}
		:: else -> moved = false
		fi;
		if
		:: moved -> skip                          /* X5_MOVED */
		:: else ->
			atomic {
				if
				:: ctl == c -> qd[0] = CTL
				:: else -> skip
				fi
			};
			if
			:: qd[0] != 0 && (vec & WORD) ->
				atomic {
					assert(!detached); /* reads the word */
					if
#ifndef NOCOMPARE
					:: word == vexp -> qd[0] = qd[0] | WORD
#else
					:: true -> qd[0] = qd[0] | WORD
#endif
					:: else -> qd[0] = 0; woke = wk[0] != 0; wk[0] = 0
					fi
				}
			:: else -> skip
			fi;
			if
			:: qd[0] != 0 || wk[0] != 0 ->
end_sleep:			atomic { wk[0] != 0 -> qd[0] = 0; wk[0] = 0; woke = true }
			:: else -> skip                   /* -EAGAIN */
			fi
		fi;
		lock()                                            /* X1 */
	od
}

/* Stuck: nothing can move. */
active proctype monitor()
{
	timeout ->
#ifdef WAKEALL
	assert(!(attached && watched) || expected == word);
	assert(!(qd[1] & WORD));
	assert(!(owner_waiting && attached) || dv == word)
#else
	assert(!(attached && watched) || expected == word || wto);
	assert(!(qd[1] & WORD) || dv == word ||
	       (attached && pending && seen == word));
	assert(!(owner_waiting && attached) || dv == word || wto)
#endif
}
