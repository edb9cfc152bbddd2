/*
 * sem.pml - counting semaphore (src/sem.c) with synchronous takers and a
 * queue registration (evq_add_sem: owner thread + futex watcher thread,
 * src/watch.c), over a model of the kernel futex.
 *
 * Taker (evq_sem_wait)                 Poster (evq_sem_post)
 *   S1 take: count > 0 -> count--         P1 count += 1
 *   S2 waiters++                          P2 if waiters > 0: futex_wake(1)
 *   S3 take again (ok: waiters--, done)
 *   S4 futex_wait(count, 0)
 *   S5 after a timeout: take once more, waiters--, leave
 * Queue registration:
 *   owner: add = arm (Q0: S1 fast path -> pending, else S2 and activate
 *   the watch under the watcher mutex); evq_wait hands out the pending
 *   token and the delivered hook arms again (Q1); the user gives the token
 *   back (P1, P2); evq_del idles the watch under the mutex, undoes S2 and
 *   gives back a token acquired and not delivered (Q2).
 *   watcher: X3 check under the mutex: if watched, S3 (ok: waiters--,
 *   inactive, post -> pending); X4/X5 futex_waitv on count (if watched) and
 *   the control word; X2 a wake taken for a word no longer watched is
 *   passed on.
 *
 * Checked (safety, exhaustive): no token lost or duplicated (holders never
 * exceed the tokens; when everything has stopped, count is back to TOTAL
 * and nothing is held or pending); no lost wakeup (a taker never sleeps
 * forever: its sleep is not a valid end state, and the system may only
 * stop with every taker finished); the watcher never acquires after the
 * registration was deleted.
 *
 * Teeth: the model fails if post never wakes (P2), if the watcher does not
 * pass on a wake taken for a deleted registration (X2), if evq_del does
 * not give back an undelivered token (Q2), or if the watcher keeps
 * acquiring before the previous token was delivered (one event = one
 * token, asserted as pending <= 1).
 *
 * @run | -DSAFETY | -m100000
 */

#define TOTAL 2        /* tokens */
#define CYCLES 1       /* per taker */
#define QCYCLES 2      /* tokens the queue registration takes */
#define NPROC 4        /* 2 takers, owner, watcher */
#define W_COUNT 1      /* futex words: bit masks for on[] */
#define W_CTL 2

byte count = TOTAL;
byte waiters;
byte held;
byte pending;          /* token acquired by the queue, not delivered */
bool deleted;

/* the futex: who sleeps, on which words, which one woke it */
bool asleep[NPROC];
byte on[NPROC];
byte widx[NPROC];

/* watcher state, guarded by mu */
bool mu;
bool watched;           /* the item is watched */
bool waiting;          /* the registration is counted in waiters */
byte ctl;

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }

/* futex_wake(word, 1): any one sleeper on word */
inline wake1(word) {
	atomic {
		if
		:: asleep[0] && (on[0] & word) -> asleep[0] = false; widx[0] = word
		:: asleep[1] && (on[1] & word) -> asleep[1] = false; widx[1] = word
		:: asleep[2] && (on[2] & word) -> asleep[2] = false; widx[2] = word
		:: asleep[3] && (on[3] & word) -> asleep[3] = false; widx[3] = word
		:: else -> skip
		fi
	}
}

inline post_token() {
	atomic { count++; assert(count <= TOTAL) };      /* P1 */
	if                                                /* P2 */
	:: waiters > 0 -> wake1(W_COUNT)
	:: else -> skip
	fi
}

inline hold() {
	atomic { held++; assert(held + count + pending <= TOTAL) };
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
		:: count == 0 -> asleep[me] = true; on[me] = W_COUNT
		:: else -> skip  /* EAGAIN */
		fi
	};
	tout = false;
	if
	:: atomic { !asleep[me] -> on[me] = 0 }
	:: atomic { timed && asleep[me] -> asleep[me] = false; on[me] = 0;
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

/* sem_arm, q->lock held by the owner (the only caller here). */
inline arm() {
	atomic {
		if
		:: count > 0 -> count--; pending++; assert(pending <= 1); got = true  /* S1 fast */
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
	byte n;
	bool got;
	arm();                                            /* Q0 */
	do
	:: n < QCYCLES ->
		atomic { pending > 0 -> pending--; held++ }  /* evq_wait */
		arm();                                    /* Q1 delivered hook */
		atomic { held--; count++; assert(count + held + pending <= TOTAL) };
		if
		:: waiters > 0 -> wake1(W_COUNT)
		:: else -> skip
		fi;
		n++
	:: else -> break
	od;
	/* Q2: evq_del */
	lock(); watched = false; deleted = true; ctl++; unlock();
	wake1(W_CTL);
	if
	:: waiting -> waiting = false; waiters--
	:: else -> skip
	fi;
	if
	:: pending > 0 -> pending--; post_token()
	:: else -> skip
	fi
}

proctype watcher(byte me)
{
	byte c, vec;   /* ctl value and words of the current wait */
	bool got;
	widx[me] = 0;
	lock();
	do
	:: true ->
		/* X2: woken on count, which is no longer watched: pass on */
		if
		:: widx[me] == W_COUNT && !watched -> wake1(W_COUNT)
		:: else -> skip
		fi;
		/* X3 */
		if
		:: watched ->
			assert(!deleted);
			atomic {
				if
				:: count > 0 -> count--; got = true
				:: else -> got = false
				fi
			};
			if
			:: got ->
				if
				:: waiting -> waiting = false; waiters--
				:: else -> skip
				fi;
				watched = false;
				pending++; assert(pending <= 1)     /* evq__post */
			:: else -> skip
			fi
		:: else -> skip
		fi;
		/* X4 */
		c = ctl;
		vec = W_CTL | (watched -> W_COUNT : 0);
		unlock();
		/* X5: futex_waitv */
		widx[me] = 0;
		atomic {
			if
			:: ctl != c -> skip
			:: (vec & W_COUNT) && count != 0 -> skip
			:: else -> asleep[me] = true; on[me] = vec
			fi
		};
end_sleep:
		atomic { !asleep[me] -> on[me] = 0 };
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

/* Everything stopped: tokens all back, nothing held or pending. */
active proctype monitor()
{
	timeout -> assert(count == TOTAL && held == 0 && pending == 0 && waiters == 0)
}
