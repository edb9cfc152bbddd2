/*
 * word.pml - a word registration watched by the futex watcher thread
 * (src/word.c, src/watch.c), a waker, and another (synchronous) waiter of
 * the same word, over a model of the kernel futex and futex_waitv.
 *
 *   waker                 owner (q->lock held)       watcher thread
 *   K1 word = 1           O1 lock mu; change the     X1 lock mu
 *   K2 futex_wake(1)         item; ctl++; unlock     X2 woken on a word no item
 *                         O2 futex_wake(ctl)            wants: futex_wake(1) it on
 *                         O3 detach only: wait for   X3 watched item: v = word;
 *                            acked >= ctl of O1;        v != expected: post,
 *                            then, if an event is       expected = v
 *                            still undelivered, pass X4 c = ctl; vector = ctl
 *                            one wake on (word_del)     (+ word if watched);
 *                                                       acked = c; unlock
 *                                                    X5 futex_waitv
 * The owner either waits for the event, or deletes the registration at any
 * moment (nondeterministically).
 *
 * Checked (safety, exhaustive): the registration reports the change when
 * the wake reaches it (with -DWAKEALL the waker wakes every waiter and an
 * owner waiting for the event never sleeps forever); after O3 the watcher never
 * runs the item's check again; and the other waiter never sleeps forever
 * after K1/K2 unless the registration received the one wake and its event
 * was delivered (wake-one: the waker wakes a single waiter, which may be
 * the watcher): a wake taken by a registration that is idle, deleted, or
 * deleted before delivering its event is passed on.
 * Teeth: the model fails without X2, without the pass-on in word_del, or
 * if the watcher reads ctl (X4) after releasing the mutex.
 *
 * @run | -DSAFETY |
 * @run -DWAKEALL | -DSAFETY |
 */

#define WORD 1
#define CTL 2
#define NP 2            /* futex sleepers: 0 watcher, 1 other waiter */

byte word;
byte ctl, acked;
bool mu;

/* the item */
bool attached = true;   /* in the watcher's table */
bool watched;            /* watched */
byte expected;
bool pending;           /* event posted, not delivered */
bool detached;          /* O3 done: the watcher must not touch it */
bool delivered;         /* the owner received the event */
bool owner_waiting;     /* the owner sleeps in evq_wait for it */

bool asleep[NP];
byte on[NP];
byte widx[NP];

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }

inline wake1(w) {
	atomic {
		if
		:: asleep[0] && (on[0] & w) -> asleep[0] = false; widx[0] = w
		:: asleep[1] && (on[1] & w) -> asleep[1] = false; widx[1] = w
		:: else -> skip
		fi
	}
}

active proctype waker()
{
	word = 1;                                         /* K1 */
#ifdef WAKEALL
	atomic {                                          /* K2, n = all */
		if
		:: asleep[0] && (on[0] & WORD) -> asleep[0] = false; widx[0] = WORD
		:: else -> skip
		fi;
		if
		:: asleep[1] && (on[1] & WORD) -> asleep[1] = false; widx[1] = WORD
		:: else -> skip
		fi
	}
#else
	wake1(WORD)                                       /* K2, n = 1 */
#endif
}

active proctype other()
{
	do
	:: word != 0 -> break
	:: else ->
		atomic {
			if
			:: word == 0 -> asleep[1] = true; on[1] = WORD
			:: else -> skip
			fi
		};
end_other:
		atomic { !asleep[1] -> on[1] = 0 }
	od
}

active proctype owner()
{
	byte c;
	lock(); watched = true; expected = 0; ctl++; unlock();    /* O1 arm */
	wake1(CTL);                                               /* O2 */
	if
	:: true -> owner_waiting = true;          /* evq_wait */
end_wait:	atomic { pending -> pending = false; delivered = true;
			 owner_waiting = false }
	:: true -> skip                           /* or not waited for */
	fi;
	/* evq_del */
	lock();                                                   /* O1 */
	attached = false; watched = false;
	ctl++; c = ctl;
	wake1(CTL);                                               /* O2 */
	unlock();                                                 /* O3 */
	acked == c;
	lock();
	detached = true;
	unlock();
#ifndef NODELPASS
	if
	:: pending -> wake1(WORD)        /* D1 word_del: pass one wake on */
	:: else -> skip
	fi
#endif
}

active proctype watcher()
{
	byte c, vec;
	lock();                                                   /* X1 */
	do
	:: true ->
#ifndef NOPASS
		if                                                /* X2 */
		:: widx[0] == WORD && !(attached && watched) -> wake1(WORD)
		:: else -> skip
		fi;
#endif
		if                                                /* X3 */
		:: attached && watched ->
			assert(!detached);
			if
			:: word != expected -> pending = true; expected = word
			:: else -> skip
			fi
		:: else -> skip
		fi;
#ifndef LATECTL
		c = ctl;                                          /* X4 */
		vec = CTL | (attached && watched -> WORD : 0);
		acked = c;
		unlock();
#else
		vec = CTL | (attached && watched -> WORD : 0);
		unlock();
		c = ctl;
		acked = c;
#endif
		widx[0] = 0;
		atomic {                                          /* X5 */
			if
			:: ctl != c -> skip
			:: (vec & WORD) && word != expected -> skip
			:: else -> asleep[0] = true; on[0] = vec
			fi
		};
end_sleep:
		atomic { !asleep[0] -> on[0] = 0 };
		lock()                                            /* X1 */
	od
}

/* Stuck.  Wake-all: nobody may still wait.  Wake-one: the other waiter may
 * sleep on only if the wake went to the registration and its event was
 * delivered; the owner may wait on only if the other waiter took the wake. */
active proctype monitor()
{
	timeout ->
#ifdef WAKEALL
	assert(!asleep[1] && !owner_waiting)
#else
	assert((!asleep[1] || word == 0 || delivered) &&
	       (!owner_waiting || widx[1] == WORD))
#endif
}
