/* SPDX-License-Identifier: MIT */
/*
 * sem.pml - counting semaphore (src/kinds/sem.c) with synchronous takers and a
 * queue registration (evq_add_sem: owner thread + futex watcher thread,
 * src/core/watch.c), over a model of the kernel futex and futex_waitv.
 *
 * Taker (evq_sem_wait)                 Poster (evq_sem_post)
 *   S1 take: count > 0 -> count--         P1 count += 1
 *   S2 waiters++                          P2 if waiters > 0: futex_wake(1)
 *   S3 take again (ok: waiters--, done)
 *   S4 futex_wait(count, 0)
 *   S5 after a timeout: take once more, waiters--, leave
 * Queue registration (issue 12: it takes a token only for a caller of
 * evq_wait, never ahead of one):
 *   owner: arm (Q0; again in the delivered hook and after a lost claim):
 *   a token free now -> READY, else S2 and activate the watch under the
 *   watcher mutex (O1/O2).  evq_wait (Q1): sleeping while it waits for
 *   READY; the claim takes a token (S1) when it hands the event out - got
 *   one: held, delivered hook arms again, the job, the token back (P1,
 *   P2), and then maybe away for good, the registration left armed;
 *   lost the race (Q5): nothing delivered, arm again.  evq_del (Q2)
 *   detaches the item (O1: under the mutex, out of the table; O2: ctl++,
 *   wake the watcher; O3: wait until the watcher acked the new ctl),
 *   undoes S2, passes a wake on (Q4) and frees the item; nothing to give
 *   back, nothing is held.
 *   watcher: X2 after any wake, one wake is passed on for a word of the
 *   last vector that no item wants now; X3 check under the mutex: if
 *   watched and count > 0: S5, inactive, READY (evq__post; takes no
 *   token), and if the owner is not sleeping in evq_wait, pass one wake on
 *   (Q4: the wake it may have taken must not wait for a busy owner); X4
 *   c = ctl, the vector (ctl, and count if watched), acked = c; X5
 *   back to X1 at once if a watched count already moved, else
 *   futex_waitv.
 *
 * The kernel: FUTEX_WAIT and futex_waitv compare and queue one entry at a
 * time; a wake-one takes any one queued entry of the word (not only the
 * oldest) and marks it woken; the sleeper's other entries stay queued, and
 * can take wakes too, until it runs; futex_waitv then returns (the index
 * of the last woken entry; the model only needs "a wake was taken").  A
 * differing value unqueues what was queued (-EAGAIN unless one was woken).
 *
 * Two runs: TOTAL=2 tokens (concurrent holders), and TOTAL=1, where the
 * watcher's X2 matters: a taker sleeps on count, the registration's entry
 * takes the owner's last give-back wake-one, and evq_del deletes the
 * registration before the watcher's check() could look.  With two tokens
 * that wake is never the last one, so the first run alone could not tell
 * X2 was missing.
 *
 * Checked (safety, exhaustive): no token lost or duplicated (holders never
 * exceed the tokens; when everything has stopped, count is back to TOTAL
 * and nothing is held); nobody holds a token it is not using (the queue
 * takes one only in the claim, for the caller it hands it to); no lost
 * wakeup (a taker never sleeps forever, nor the owner in evq_wait: their
 * sleeps are not valid end states, and the system may only stop with
 * every taker and the owner finished); the watcher never looks after the
 * registration was deleted, and never reads the item after evq_del
 * returned (it is freed then: O3).
 * Abstracted away: the queue itself (READY is the posted event), evq_wait
 * returning other events first (the owner always claims what woke it),
 * evq_requeue, disable/enable (idle), several registrations or watcher
 * threads.
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   NOWAKE      P2 never wakes (posts and give-backs)
 *   NOX2Q4      neither X2 nor evq_del's Q4: a wake taken by the watch of
 *               a registration being deleted is lost (TOTAL=1: a taker
 *               sleeps forever).  Each alone covers that case: evq_del
 *               passes a wake on whatever the watcher did
 *   NOPASS      no Q4 at all: a wake taken by the watch of a busy owner (or
 *               of a registration being deleted) is not passed on (TOTAL=1:
 *               a taker sleeps forever with the token free)
 *   NOWPASS     the watcher's Q4 only: a wake taken by the watch of an
 *               owner that is busy - and stays away - is not passed on
 *               (TOTAL=1: a taker sleeps forever with the token free)
 *   NOREARM     a lost claim does not arm again: the owner sleeps in
 *               evq_wait forever with a token free
 *   NOO3        evq_del does not wait for the watcher's ack: the watcher
 *               reads the freed item in X2
 *
 * @run | -DSAFETY | -m100000
 * @run -DTOTAL=1 | -DSAFETY | -m100000
 * @tooth -DNOWAKE | -DSAFETY | -m100000
 * @tooth -DTOTAL=1 -DNOX2Q4 | -DSAFETY | -m100000
 * @tooth -DTOTAL=1 -DNOPASS | -DSAFETY | -m100000
 * @tooth -DTOTAL=1 -DNOWPASS | -DSAFETY | -m100000
 * @tooth -DNOREARM | -DSAFETY | -m100000
 * @tooth -DNOO3 | -DSAFETY | -m100000
 */

#ifndef TOTAL
#define TOTAL 2        /* tokens */
#endif
#define CYCLES 1       /* per taker */
#define QCYCLES 2      /* tokens the queue registration takes */
#define NPROC 4        /* 2 takers, owner, watcher */
#define W_COUNT 1      /* futex words: bit masks */
#define W_CTL 2

byte count = TOTAL;
byte waiters;
byte held;
bool ready;            /* READY posted to the queue, not claimed yet */
bool sleeping;         /* the owner sleeps in evq_wait (q->sleepers) */
bool deleted;
bool freed;            /* evq_del returned: the item is freed */

/* the kernel: each thread's queued entries and woken entries */
byte qd[NPROC];
byte wk[NPROC];

/* watcher state, guarded by mu */
bool mu;
bool watched;          /* the item is in the table and active */
bool waiting;          /* the registration is counted in waiters */
byte ctl, acked;

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }

/* futex_wake(word, 1): any one queued entry of word */
inline wake1(word) {
	atomic {
		if
		:: qd[0] & word -> qd[0] = qd[0] & ~word; wk[0] = wk[0] | word
		:: qd[1] & word -> qd[1] = qd[1] & ~word; wk[1] = wk[1] | word
		:: qd[2] & word -> qd[2] = qd[2] & ~word; wk[2] = wk[2] | word
		:: qd[3] & word -> qd[3] = qd[3] & ~word; wk[3] = wk[3] | word
		:: else -> skip
		fi
	}
}

inline wake_count() {                                    /* P2 */
#ifndef NOWAKE
	if
	:: waiters > 0 -> wake1(W_COUNT)
	:: else -> skip
	fi
#else
	skip
#endif
}

inline post_token() {
	atomic { count++; assert(count <= TOTAL) };      /* P1 */
	wake_count()
}

inline hold() {
	atomic { held++; assert(held + count <= TOTAL) };
	held--
}

proctype taker(byte me; bool timed)
{
	byte n;
	bool got, tout;
again:
	if
	:: n == CYCLES -> goto out
	:: else -> skip
	fi;
	atomic {                                          /* S1 */
		if
		:: count > 0 -> count--; got = true
		:: else -> got = false
		fi
	};
	if
	:: got -> goto have
	:: else -> skip
	fi;
	waiters++;                                        /* S2 */
take:
	atomic {                                          /* S3 */
		if
		:: count > 0 -> count--; got = true
		:: else -> got = false
		fi
	};
	if
	:: got -> waiters--; goto have
	:: else -> skip
	fi;
	atomic {                                          /* S4 */
		if
		:: count == 0 -> qd[me] = W_COUNT
		:: else -> skip  /* EAGAIN */
		fi
	};
	tout = false;
	if                             /* not an end state: no lost wakeup */
	:: atomic { qd[me] == 0 -> wk[me] = 0 }           /* woken, EAGAIN */
	:: atomic { timed && qd[me] != 0 -> qd[me] = 0;
		    timed = false; tout = true }
	fi;
	if
	:: tout ->                                        /* S5 */
		atomic {
			if
			:: count > 0 -> count--; got = true
			:: else -> got = false
			fi
		};
		waiters--;
		if
		:: got -> goto have
		:: else -> n++; goto again   /* gave up this cycle */
		fi
	:: else -> goto take
	fi;
have:
	hold();
	post_token();
	n++;
	goto again;
out:
	skip
}

/* Q4: a token free and someone sleeping on count: one wake on */
inline pass_wake() {
#ifndef NOPASS
	if
	:: count > 0 ->
		if
		:: waiters > 0 -> wake1(W_COUNT)
		:: else -> skip
		fi
	:: else -> skip
	fi
#else
	skip
#endif
}

/* sem_arm, q->lock held by the owner (the only caller here): takes no
 * token. */
inline arm() {
	atomic {
		if
		:: count > 0 -> ready = true; got = true          /* READY now */
		:: else -> got = false
		fi
	};
	if
	:: !got ->
		if
		:: !waiting -> waiters++; waiting = true              /* S2 */
		:: else -> skip
		fi;
		lock(); watched = true; ctl++; unlock();               /* O1 */
		wake1(W_CTL)                                          /* O2 */
	:: else -> skip
	fi
}

proctype owner()
{
	byte n, c;
	bool got;
	arm();                                            /* Q0 */
	do
	:: n < QCYCLES ->
		/* evq_wait: W1, then sleep until READY (not an end state) */
		sleeping = true;
		atomic { ready -> ready = false; sleeping = false };
		atomic {                                  /* Q1: claim, S1 */
			if
			:: count > 0 -> count--; held++; assert(held + count <= TOTAL); got = true
			:: else -> got = false
			fi
		};
		if
		:: got ->
			arm();                            /* delivered hook */
			atomic { held--; count++; assert(count + held <= TOTAL) };
			wake_count();                     /* the job done: P1, P2 */
			n++;
			/* or its thread goes on with other work and never waits
			 * on the queue again (a valid end: the registration
			 * holds no token; a watch still armed stays counted) */
			if
			:: true -> skip
			:: true ->
end_away:			false
			fi
		:: else ->                                /* Q5: lost the race */
#ifndef NOREARM
			arm()
#else
			skip
#endif
		fi
	:: else -> break
	od;
	/* Q2: evq_del.  evq__watch_detach: */
	lock(); watched = false; deleted = true;          /* O1 */
	ctl++; c = ctl; wake1(W_CTL);                     /* O2 */
#ifndef NOO3
	unlock();                                         /* O3: cond_wait */
	atomic { !mu && acked == c -> mu = true };
#endif
	unlock();
	if                                                /* sem_stop: S5 */
	:: waiting -> waiting = false; waiters--
	:: else -> skip
	fi;
#ifndef NOX2Q4
	pass_wake();                                      /* Q4 */
#endif
	freed = true
}

proctype watcher(byte me)
{
	byte c, vec;   /* ctl value and words of the current wait */
	bool got, woke;
	lock();
	do
	:: true ->
		/* X2: after a wake, the last vector's count entry, if no item
		 * wants it now: pass one wake on (wanted() reads the item) */
		if
		:: woke && (vec & W_COUNT) ->
			assert(!freed);
#ifndef NOX2Q4
			if
			:: !watched -> wake1(W_COUNT)
			:: else -> skip
			fi
#else
			skip
#endif
		:: else -> skip
		fi;
		/* X3 */
		if
		:: watched ->
			assert(!deleted);
			if
			:: count > 0 ->
				if
				:: waiting -> waiting = false; waiters--   /* S5 */
				:: else -> skip
				fi;
				watched = false;
				ready = true;                   /* evq__post READY */
				if
				:: !sleeping ->                 /* Q4 */
#ifndef NOWPASS
					pass_wake()
#else
					skip
#endif
				:: else -> skip
				fi
			:: else -> skip
			fi
		:: else -> skip
		fi;
		/* X4 */
		c = ctl;
		vec = W_CTL | (watched -> W_COUNT : 0);
		acked = c;
		unlock();
		/* X5: a watched count that already differs from its expected 0
		 * ends X5 before the system call (watch.c sleep_on: the
		 * kernel would answer -EAGAIN; X5_MOVED), else futex_waitv,
		 * one entry at a time */
		woke = false;
		if
		:: (vec & W_COUNT) && count != 0 -> skip        /* X5_MOVED */
		:: else ->
			atomic {
				if
				:: ctl == c -> qd[me] = W_CTL
				:: else -> skip
				fi
			};
			if
			:: qd[me] != 0 && (vec & W_COUNT) ->
				atomic {
					if
					:: count == 0 -> qd[me] = qd[me] | W_COUNT
					:: else -> qd[me] = 0; woke = wk[me] != 0; wk[me] = 0
					fi
				}
			:: else -> skip
			fi;
			if
			:: qd[me] != 0 || wk[me] != 0 ->    /* queued: sleep */
end_sleep:			atomic { wk[me] != 0 -> qd[me] = 0; wk[me] = 0; woke = true }
			:: else -> skip                     /* -EAGAIN */
			fi
		fi;
		lock()
	od
}

init {
	atomic {
		run taker(0, false);
		run taker(1, true);
		run owner();
		run watcher(3)
	}
}

/* Everything stopped: tokens all back, nothing held. */
active proctype monitor()
{
	timeout -> assert(count == TOTAL && held == 0 && waiters == (waiting -> 1 : 0))
}
