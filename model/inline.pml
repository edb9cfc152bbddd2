/* SPDX-License-Identifier: MIT */
/*
 * inline.pml - the io_uring backend's inline sleep (src/backend/uring/
 * inline.c, "Inline sleep": IN1..IN3; sleep_inline, ur_wake/ring_bell in
 * wait.c, ur_word_arm, ur_word_disarm, process_words in words.c; C names
 * without their evq__ur_ prefix): the waiter sleeps in
 * futex_waitv over the bell and the armed words, with a waker, a setter of
 * the word, another (plain, synchronous) futex waiter of the word, and the
 * registration's owner, over a model of the kernel futex and futex_waitv.
 *
 *   waiter (ur_wait, s->lock held)       waker (wake(), lock-free)
 *   T  top: process_words (q->lock,      LF4 wpend = 1; bell++;
 *      then s->lock): check() collected     if sleepers > 0:
 *      and deferred words; take_wake (LF2):     futex_wake(bell, 2)
 *      a wake() or a post ends wait(), the
 *      caller waits again                setter: word = 1; futex_wake(word, 1)
 *   IN1 sleepers++, inl = 1; seen = bell  other: while word == 0:
 *      (LF5); wpend or a deferred re-check:        futex_wait(word, 0)
 *      undo, back to T                   owner (q->lock, then s->lock):
 *   IN2 vector: the bell (seen) and every O1 word_arm (-DARM: a new word;
 *      loose word (expected), marked inl;   -DREARM: a new expected value):
 *      unlock; futex_waitv                  make it loose; if the sleeper
 *   IN3 lock; inl = 0, sleepers--,           has it inl or sleeps inline:
 *      inl_gen++; per vector word:          ring the bell (bell++, wake)
 *      detached: after any wake, pass    O2 word_disarm, at any moment or
 *      one on (X2); woken (the result,      never: detach (pass on a wake a
 *      or after a wake its value moved)     collected completion took); if
 *      or changed: check() (s->done);
 *      else loose again; signal inl_cv      inl: gen = inl_gen, ring the
 *                                           bell, cond_wait until inl_gen
 *                                           != gen (O3); the word may then
 *                                           be freed
 * The kernel: futex_waitv compares and queues one entry at a time (each
 * under its bucket lock), a differing value unqueues the entries queued
 * (-EAGAIN unless one of them was woken); a wake marks one queued entry
 * woken and unqueues it, the others stay queued (and can take wake-one
 * wakes) until the task runs; it returns the index of the last woken
 * entry (futex_unqueue_multiple).  FUTEX_WAIT on the bell alone is the
 * same with no word.  Abstracted away: a second waiter thread (it would
 * follow, LF1: model/leader.pml), the ring, fds (leader.pml -DINLINE -DFD),
 * timeouts.
 *
 * Checked (safety, exhaustive; the timeout monitor is the "never sleeps
 * forever" check): (1) no lost wake(): when nothing can move, wpend was
 * consumed, exactly once (LF2); (2) no lost word change: when nothing can
 * move, an attached active word holds the value check() last saw (every
 * change was posted) - unless the setter's wake-one went to the other
 * waiter while the sleeper was queued on the word too (as in word.pml) -
 * and the other waiter sleeps on after the setter's wake only if the
 * queue took it and posted the change (-DWAKEALL: never sleeps on): a
 * wake the sleeper took for a word detached meanwhile is passed on (X2 in
 * IN3, word_detach for a collected completion); (3) O3: when word_disarm
 * returns the kernel no longer has the waiter queued on the word, and
 * afterwards the waiter never reads it, futex-waits on it or wakes it
 * (asserts); (4) a word added (-DARM) or re-armed with a new expected
 * value (-DREARM: no setter; the word differs from the new value) while
 * the waiter sleeps inline is watched: the waiter rebuilds its vector and
 * posts the change.
 * Teeth (each must make pan find an error; make model runs them):
 *   LATEBELL    the waiter reads the bell after looking at wpend (LF5 late)
 *   NOGEN       word_disarm does not wait for inl_gen to move (no O3)
 *   NOPASS      no pass-on in IN3 (X2)
 *   NODETPASS   no pass-on in word_detach for a collected completion
 *   NOARMBELL   (-DARM, -DREARM) word_arm does not ring the bell
 *   LASTONLY    (-DTWO) only the entry futex_waitv reports counts as woken
 *               (see below)
 * -DTWO adds a second word (set and woken once) after the first in the
 * vector.  futex_waitv reports only the last woken entry, so when both
 * words' entries took a wake (the second's setter, then the first's
 * wake-one while the task was not yet running), the result does not show
 * the first; IN3 therefore passes one wake on for every detached word
 * after any wake, and counts a word whose value moved from its vector
 * value as woken (res 0, so that an idle word passes it on).  With
 * -DLASTONLY (only the reported entry counts, as first written; src/
 * watch.c had the same gap) the TWO run fails: the other waiter sleeps
 * forever.
 *
 * @run | -DSAFETY |
 * @run -DWAKEALL | -DSAFETY |
 * @run -DARM | -DSAFETY |
 * @run -DREARM | -DSAFETY |
 * @run -DTWO | -DSAFETY |
 * @tooth -DLATEBELL | -DSAFETY |
 * @tooth -DNOGEN | -DSAFETY |
 * @tooth -DNOPASS | -DSAFETY |
 * @tooth -DNODETPASS | -DSAFETY |
 * @tooth -DARM -DNOARMBELL | -DSAFETY |
 * @tooth -DREARM -DNOARMBELL | -DSAFETY |
 * @tooth -DTWO -DLASTONLY | -DSAFETY |
 */

#ifdef TWO
#define NW 2            /* word 1: another word in the vector, set once */
#define ANY(a) (a[0] || a[1])
#else
#define NW 1
#define ANY(a) (a[0])
#endif

#define BELL 1          /* the waiter's vector entries, as bits */
#define BIT(i) (2 << (i))
#define NONE 8          /* futex_waitv results: i + 1: word i woken, */
#define EAGAIN 9        /* 0: the bell woken */
/* futex_unqueue_multiple: the last (highest) woken entry */
#define HIGH(w) ((w) & 4 -> 2 : ((w) & 2 -> 1 : ((w) & 1 -> 0 : EAGAIN)))

byte bell;
byte word[NW];
bool wpend;
byte woke;              /* wake()s consumed (LF2) */
byte sleepers;
bool mu;                /* s->lock */
bool qmu;               /* q->lock */
bool inl;
byte inl_gen;

/* the word's record (struct uword) and item: armed, loose (-DARM: not
 * armed yet) */
#ifdef ARM
#define ARMED false
#else
#define ARMED true
#endif
bool attached[NW] = ARMED; /* w->it != NULL */
bool act[NW] = ARMED; /* it->active (q->lock) */
bool loose[NW] = ARMED;
bool winl[NW];          /* w->inl: in the sleeper's vector */
bool collected[NW];     /* on s->done ... */
bool res0[NW];          /* ... with res 0 (woken) */
bool deferred[NW];      /* on s->rearm */
byte expected[NW];
bool posted[NW];        /* check() posted a change */
bool freed;             /* word_disarm of word 0 returned (O3) */

/* the kernel */
byte q0;                /* the waiter's entries queued */
byte wk0;               /* ... and woken */
bool q1;                /* the other waiter sleeps on word 0 */
bool wto;               /* the setter's wake-one went to the other while
			 * the sleeper was queued on the word too */

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }
inline qlock() { atomic { !qmu -> qmu = true } }
inline qunlock() { qmu = false }

/* futex_wake(&word[i], 1) */
inline wake1(i) {
	atomic {
		if
		:: q0 & BIT(i) -> q0 = q0 - BIT(i); wk0 = wk0 | BIT(i)
		:: i == 0 && q1 -> q1 = false
		:: else -> skip
		fi
	}
}

/* ring_bell: bell++; if sleepers > 0: futex_wake(bell, 2) */
inline ring_bell() {
	bell++;
	if
	:: sleepers > 0 ->
		atomic {
			if
			:: q0 & BELL -> q0 = q0 - BELL; wk0 = wk0 | BELL
			:: else -> skip
			fi
		}
	:: else -> skip
	fi
}

/* the item's check(): post a change, expect the new value */
inline check(i) {
	assert(i != 0 || !freed);
	if
	:: word[i] != expected[i] ->
		posted[i] = true; expected[i] = word[i]; kicked = true
	:: else -> skip
	fi
}

active proctype waker()
{
	wpend = true;                                     /* LF4 */
	ring_bell()
}

#ifndef REARM
active proctype setter()
{
	word[0] = 1;
#ifdef WAKEALL
	atomic {
		if
		:: q0 & BIT(0) -> q0 = q0 - BIT(0); wk0 = wk0 | BIT(0)
		:: else -> skip
		fi;
		q1 = false
	}
#else
	atomic {                        /* wake1(0), noting who took it */
		if
		:: q0 & BIT(0) -> q0 = q0 - BIT(0); wk0 = wk0 | BIT(0)
		:: q1 -> q1 = false; wto = (q0 & BIT(0)) != 0
		:: else -> skip
		fi
	}
#endif
}

active proctype other()
{
	do
	:: word[0] != 0 -> break
	:: else ->
		atomic {
			if
			:: word[0] == 0 -> q1 = true
			:: else -> skip
			fi
		};
end_other:
		!q1
	od
}
#endif

#ifdef TWO
active proctype setter1()
{
	word[1] = 1;
	wake1(1)
}
#endif

active proctype owner()
{
	byte gen;
	bool was;
#ifdef ARM
	qlock(); act[0] = true;                        /* O1 word_arm */
	lock();
	attached[0] = true; expected[0] = 0; loose[0] = true;
#ifndef NOARMBELL
	if
	:: inl -> ring_bell()
	:: else -> skip
	fi;
#endif
	unlock(); qunlock();
#endif
#ifdef REARM
	qlock();                                          /* O1 word_arm */
	lock();
	expected[0] = 1;
	if
	:: collected[0] || deferred[0] || winl[0] ->
#ifndef NOARMBELL
		if
		:: winl[0] -> ring_bell()
		:: else -> skip
		fi
#else
		skip
#endif
	:: else ->
		loose[0] = true;
#ifndef NOARMBELL
		if
		:: inl -> ring_bell()
		:: else -> skip
		fi
#else
		skip
#endif
	fi;
	unlock(); qunlock();
#endif
	if
	:: true ->                                        /* O2 word_disarm */
		qlock(); act[0] = false;
		lock();
		was = winl[0];
		attached[0] = false;                      /* word_detach */
#ifndef NODETPASS
		if
		:: collected[0] && res0[0] -> wake1(0)
		:: else -> skip
		fi;
#endif
		if
		:: was ->
			gen = inl_gen;
			ring_bell();
#ifndef NOGEN
			unlock();                         /* pthread_cond_wait */
			atomic { !mu && inl_gen != gen -> mu = true }
#endif
		:: else -> skip
		fi;
		unlock(); qunlock();
		atomic { freed = true;                    /* O3 */
			 assert(!(q0 & BIT(0))) }
	:: true -> skip
	fi
}

active proctype waiter()
{
	byte i, seen, rc;
	byte vexp[NW];
	bool vw[NW];
	bool kicked, k;
	lock();
top:
	/* process_words: q->lock first (the slow path: s->lock dropped) */
	if
	:: ANY(collected) || ANY(deferred) ->
		unlock(); qlock(); lock();
		for (i : 0 .. NW - 1) {
			if
			:: deferred[i] ->
				deferred[i] = false;
				if
				:: attached[i] && act[i] -> check(i); loose[i] = true
				:: else -> skip
				fi
			:: else -> skip
			fi
		}
		for (i : 0 .. NW - 1) {
			if
			:: collected[i] ->
				collected[i] = false;
				if
				:: attached[i] && act[i] ->
					k = kicked;
					check(i);
					if
					:: kicked && !k -> deferred[i] = true; k = false
					:: else -> loose[i] = true; k = false
					fi
				:: attached[i] && !act[i] && res0[i] -> wake1(i) /* X2 */
				:: else -> skip
				fi
			:: else -> skip
			fi
		}
		qunlock()
	:: else -> skip
	fi;
	if                                                /* take_wake, LF2 */
	:: atomic { wpend -> wpend = false; woke++ }; kicked = true
	:: else -> skip
	fi;
	if
	:: kicked -> kicked = false; unlock(); lock(); goto top /* returns */
	:: else -> skip
	fi;

	sleepers++; inl = true;                           /* IN1 */
#ifndef LATEBELL
	seen = bell;                                      /* LF5 */
#endif
	if
	:: wpend || ANY(deferred) -> inl = false; sleepers--; goto top
	:: else -> skip
	fi;
#ifdef LATEBELL
	seen = bell;
#endif
	for (i : 0 .. NW - 1) {                           /* IN2 */
		vw[i] = false;
		if
		:: loose[i] ->
			loose[i] = false;
			if
			:: attached[i] -> vw[i] = true; winl[i] = true; vexp[i] = expected[i]
			:: else -> skip                   /* freed */
			fi
		:: else -> skip
		fi
	}
	unlock();
	rc = NONE;                                        /* futex_waitv */
	atomic {
		if
		:: bell == seen -> q0 = BELL
		:: else -> rc = EAGAIN
		fi
	};
	i = 0;
	do
	:: i < NW && rc == NONE ->
		if
		:: vw[i] ->
			atomic {
				assert(i != 0 || !freed);
				if
				:: word[i] == vexp[i] -> q0 = q0 | BIT(i)
				:: else -> q0 = 0; rc = HIGH(wk0); wk0 = 0
				fi
			}
		:: else -> skip
		fi;
		i++
	:: else -> break
	od;
	if
	:: rc == NONE ->
end_sleep:	atomic { wk0 != 0 -> q0 = 0; rc = HIGH(wk0); wk0 = 0 }
	:: else -> skip
	fi;

	lock();                                           /* IN3 */
	inl = false; sleepers--; inl_gen++;
	for (i : 0 .. NW - 1) {
		if
		:: vw[i] ->
			winl[i] = false;
#ifndef LASTONLY
			/* an entry that changed may have taken a wake that
			 * the result (the last woken entry) does not show */
			assert(i != 0 || !freed);
			k = rc == i + 1 || (rc != EAGAIN && word[i] != vexp[i]);
#else
			k = rc == i + 1;
#endif
			if
			:: !attached[i] ->
#ifndef NOPASS
				/* X2: after any wake, one wake passed on */
				if
#ifndef LASTONLY
				:: rc != EAGAIN -> assert(i != 0 || !freed); wake1(i)
#else
				:: k -> assert(i != 0 || !freed); wake1(i)
#endif
				:: else -> skip
				fi
#else
				skip
#endif
			:: else ->
				if
				:: k -> collected[i] = true; res0[i] = true
				:: else ->
					assert(i != 0 || !freed);
					if
					:: word[i] != expected[i] -> collected[i] = true; res0[i] = false
					:: else -> loose[i] = true
					fi
				fi
			fi
		:: else -> skip
		fi
	}
	atomic {                                          /* signal inl_cv */
		seen = 0; rc = 0; k = false;              /* (fewer states) */
		vw[0] = false; vexp[0] = 0;
		vw[NW - 1] = false; vexp[NW - 1] = 0;
		i = 0
	};
	goto top
}

/* Stuck: nothing can move. */
active proctype monitor()
{
	byte i;
	timeout ->
	assert(!wpend && woke == 1);
	for (i : 0 .. NW - 1) {
		assert(!(attached[i] && act[i] && word[i] != expected[i]) ||
		       (i == 0 && wto))
	}
#ifndef REARM
#ifdef WAKEALL
	assert(!q1)
#else
	assert(!q1 || posted[0])
#endif
#endif
}
