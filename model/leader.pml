/* SPDX-License-Identifier: MIT */
/*
 * leader.pml - the io_uring backend's leader and followers (src/backend/
 * uring/wait.c, "Leader and followers": LF1, LF2, LF3, LF4, LF5, LF6, and
 * the bell: ring_bell, arm_bell, leave (requests.c), pass_lead,
 * wake_follower, ur_wake, ur_fd_ctl (init.c)), over a model of the ring's
 * completion wait and of the kernel futex.  C names are given without
 * their evq__ur_ prefix.
 *
 *   waiter thread (ur_wait; s->lock held but in the sleeps)
 *   T  top: reap the CQ (the bell's completion: bell_armed = 0; an
 *      EPOLL_WAIT's: its events are "filled"); take_wake (LF2: whoever
 *      clears wpend consumes the wake()); take an event; either: return
 *      (leave(), pass_lead(): LF3)
 *   LF1 if sleepers > 0: follow - leave(); seq = fword; nfollow++; unlock;
 *      futex_wait(fword, seq); lock; nfollow--; back to T
 *   (-DINLINE, no fd registered: IN1 sleepers++, inl = 1, seen = bell; if
 *      wpend: undo, back to T; unlock; futex_wait(bell, seen); lock;
 *      inl = 0, sleepers--; reap, LF2, take: something: return (LF3), else
 *      back to T)
 *   LF5 the ring: sleepers++; seen = bell; if wpend: sleepers--, back to T;
 *      arm_bell(seen) (the bell's FUTEX_WAIT, unless one is in flight);
 *      with fds: an EPOLL_WAIT of its own if fewer are in flight than ring
 *      sleepers; unlock; io_uring_enter(wait for 1 completion); lock;
 *      sleepers--; reap, LF2, take; return (leave(), pass_lead(): LF3)
 *   leave(): cancel this thread's EPOLL_WAITs in flight; if ring sleepers
 *      remain: re-arm the bell if its request was reaped (seen = bell
 *      first), and end one ring sleep with a NOP for each EPOLL_WAIT
 *      missing, or for leftovers or a pending wpend; submit now
 *   LF3 pass_lead(): if sleepers == 0 and nfollow > 0 and (wpend, or fds
 *      registered, or leftovers): wake_follower (fword++, FUTEX_WAKE 1)
 *   waker: LF4 wpend = 1; ring_bell (bell++; if sleepers > 0:
 *      futex_wake(bell, 2)); if sleepers == 0 and nfollow > 0:
 *      wake_follower.  One wake() at a time: the next only after the
 *      last was consumed (the core's wake_sent)
 *   adder (-DFD): LF6 fd_ctl ADD: nfds++, ring the bell if it was the
 *      first; if sleepers == 0 and nfollow > 0: wake_follower; then the
 *      fd becomes ready (once)
 *
 * The kernel: a completion posted to the CQ ends the io_uring_enter wait
 * of every thread waiting since before it; a thread starting its wait
 * returns at once if a completion is there unreaped (its target is the CQ
 * head then + 1), so a completion reaped by another thread first is gone
 * for it.  The bell's FUTEX_WAIT compares the bell when queued (a
 * differing value completes it at once, -EAGAIN), modelled as at
 * arm_bell; an EPOLL_WAIT completes when the fd is ready, or -ECANCELED
 * when cancelled; a NOP and a cancel complete at once.  FUTEX_WAIT on
 * fword or the bell compares and queues atomically; futex_wake(n) ends up
 * to n queued waits.  Each thread loops in ur_wait; after a call that
 * returned something its caller may stop for good (nondeterministically),
 * so that a wake() is not rescued by a thread that happens to come back.
 * Abstracted away: words (model/inline.pml), sigmask callers (several
 * ring sleepers), timeouts and signals, SQ-full paths, errors, LINK_TIMEOUT;
 * fword is modelled as "moved since read" per follower (a 32-bit counter
 * does not wrap within a sleep).
 *
 * Checked (safety, exhaustive): (1) no lost wake(): when nothing can move
 * and some thread still waits (as follower, ring or inline sleeper), no
 * wake() is pending - it ended one wait, which consumed it (LF2), exactly
 * once (asserted where consumed); (2) -DFD: no thread sleeps forever while
 * the fd's event is pending (ready in epoll, in the CQ or harvested and
 * not handed out); (3) the EPOLL_WAIT slots suffice (NSLOT).
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   NOPASSLEAD  leaving threads skip pass_lead (LF3): with fds (-DFD), the
 *               fd's event waits while every thread follows
 *   LATEBELL    LF5 swapped: the ring sleeper reads the bell after looking
 *               at wpend, and sleeps through a wake() in between
 *   NOKFOLLOW   LF4 without the follower wake: a wake() after the leader
 *               left is never seen by the sleeping follower
 *   NOKBELL     -DFD: LF6 without ringing the bell: the leader, asleep with
 *               no EPOLL_WAIT (no fd when it armed), never arms one
 *
 * @run | -DSAFETY |
 * @run -DINLINE | -DSAFETY |
 * @run -DT=3 -DNWAKE=1 | -DSAFETY |
 * @run -DT=3 -DINLINE | -DSAFETY |
 * @run -DFD -DNWAKE=1 | -DSAFETY |
 * @run -DFD -DINLINE -DNWAKE=1 | -DSAFETY |
 * @tooth -DFD -DNWAKE=1 -DNOPASSLEAD | -DSAFETY |
 * @tooth -DLATEBELL | -DSAFETY |
 * @tooth -DNOKFOLLOW | -DSAFETY |
 * @tooth -DINLINE -DNOKFOLLOW | -DSAFETY |
 * @tooth -DFD -DNWAKE=1 -DNOKBELL | -DSAFETY |
 * @tooth -DFD -DINLINE -DNWAKE=1 -DNOINLFDS | -DSAFETY |
 */

#ifndef T
#define T 2             /* waiter threads */
#endif
#ifndef NWAKE
#define NWAKE 2         /* wake()s, one at a time */
#endif
#ifndef NSLOT
#define NSLOT 3         /* EPOLL_WAIT slots */
#endif
#define EV 1            /* an EPOLL_WAIT's completion: events */
#define CAN 2           /* ... cancelled */

bool mu;                /* s->lock */
byte sleepers;          /* in the ring, or inline (atomic) */
byte nfollow;           /* (atomic, changed under mu) */
bool wpend;             /* a wake() not consumed yet */
byte nfds;
byte bell;              /* the bell's futex word */
bool bell_armed;        /* (mu) its FUTEX_WAIT is in flight, as far as
			 * user space knows (until its completion is reaped) */
bool inl;               /* (mu) the inline sleeper */
byte sent, woke;        /* wake()s made, and consumed (LF2) */

/* EPOLL_WAIT slots (mu) */
bool sinfl[NSLOT];      /* in flight (until its completion is reaped) */
bool scanc[NSLOT];      /* being cancelled */
byte sown[NSLOT];       /* the thread that submitted it */
bool sfill[NSLOT];      /* its event harvested, not handed out */
byte inflight, cancelling, filled;

/* the kernel */
bool bellreq;           /* the bell's FUTEX_WAIT queued on the bell */
bool cq_bell;           /* its completion, unreaped */
byte kq[NSLOT];         /* slot's EPOLL_WAIT queued in the kernel */
byte kres[NSLOT];       /* its completion, unreaped: EV or CAN */
bool cq;                /* a completion is unreaped (any kind) */
bool inring[T];         /* waiting in io_uring_enter since before... */
bool fq[T];             /* queued on fword */
bool fmoved[T];         /* fword moved since the thread read seq */
bool iq[T];             /* queued on the bell (inline sleep) */
bool fdready;           /* the fd's event waits in epoll */
bool insleep[T];        /* ghost: the thread waits (any sleep) */

inline lock() { atomic { !mu -> mu = true } }
inline unlock() { mu = false }

/* a completion: every thread waiting for one wakes */
inline post_cqe() {
	cq = true;
	for (j : 0 .. T - 1) { inring[j] = false }
}

inline reap() {
	atomic {
		if
		:: cq_bell -> cq_bell = false; bell_armed = false
		:: else -> skip
		fi;
		for (j : 0 .. NSLOT - 1) {
			if
			:: kres[j] != 0 ->
				sinfl[j] = false; inflight--;
				if
				:: scanc[j] -> scanc[j] = false; cancelling--
				:: else -> skip
				fi;
				if
				:: kres[j] == EV -> sfill[j] = true; filled++
				:: else -> skip
				fi;
				kres[j] = 0
			:: else -> skip
			fi
		}
		cq = false; j = 0
	}
}

/* LF2 */
inline take_wake() {
	atomic {
		if
		:: wpend -> wpend = false; woken = true; woke++; assert(woke <= sent)
		:: else -> skip
		fi
	}
}

inline take() {
	k = 0;
	atomic {
		for (j : 0 .. NSLOT - 1) {
			if
			:: k == 0 && sfill[j] -> sfill[j] = false; filled--; k = 1
			:: else -> skip
			fi
		}
		j = 0
	}
}

/* FUTEX_WAKE(fword, 1) after fword++ */
inline wake_follower() {
	atomic { for (j : 0 .. T - 1) { fmoved[j] = true }; j = 0 };
	atomic {
		if
		:: fq[0] -> fq[0] = false
		:: fq[1] -> fq[1] = false
#if T > 2
		:: fq[2] -> fq[2] = false
#endif
		:: else -> skip
		fi
	}
}

/* bell++; if sleepers > 0: futex_wake(bell, 2): the ring's request and
 * an inline sleeper (at most one of each) */
inline ring_bell() {
	bell++;
	if
	:: sleepers > 0 ->
		atomic {
			if
			:: bellreq -> bellreq = false; cq_bell = true; post_cqe()
			:: else -> skip
			fi;
			for (j : 0 .. T - 1) { iq[j] = false };
			j = 0
		}
	:: else -> skip
	fi
}

/* (mu) */
inline arm_bell(sv) {
	if
	:: !bell_armed ->
		atomic {
			bell_armed = true;
			if
			:: bell == sv -> bellreq = true
			:: else -> cq_bell = true; post_cqe()     /* -EAGAIN */
			fi
		}
	:: else -> skip
	fi
}

/* LF3 (mu).  Each atomic step below holds at most one access to a
 * variable that others touch without s->lock (wpend, nfds, bell, the
 * kernel's); the rest of a step is s->lock's or the thread's own. */
inline pass_lead() {
#ifndef NOPASSLEAD
	atomic { go = sleepers == 0 && nfollow > 0; w = wpend };
	if
	:: go && (w || nfds > 0 || filled > 0) -> wake_follower()
	:: else -> skip
	fi;
	go = false; w = false
#else
	skip
#endif
}

/* (mu) */
inline leave() {
	rs = sleepers - (inl -> 1 : 0);
	urgent = rs > 0;
	for (j : 0 .. NSLOT - 1) {
		if
		:: sinfl[j] && !scanc[j] && sown[j] == me ->
			atomic {                          /* ASYNC_CANCEL */
				urgent = true; scanc[j] = true; cancelling++;
				if
				:: kq[j] -> kq[j] = false; kres[j] = CAN; post_cqe()
				:: else -> skip
				fi;
				post_cqe()                /* the cancel's own */
			}
		:: else -> skip
		fi
	}
	atomic {
		j = 0;
		rearm = rs > 0 && !bell_armed;
		if
		:: rearm -> seen = bell   /* LF5: before wpend and nfds */
		:: else -> skip
		fi
	};
	nudges = (nfds > 0 -> rs : 0) - (inflight - cancelling);
	if
	:: rs > 0 && nudges < 1 && (filled > 0 || wpend) -> nudges = 1
	:: else -> skip
	fi;
	if
	:: rearm -> arm_bell(seen)
	:: else -> skip
	fi;
	do                                                /* NOPs */
	:: nudges > 0 -> atomic { post_cqe(); nudges-- }
	:: else -> break
	od;
	atomic { seen = 0; rs = 0; rearm = false; urgent = false; nudges = 0 }
}

/* Reap, LF2, take (mu) */
inline collect() {
	reap();
	atomic { take_wake(); take() }
}

proctype thr(byte me)
{
	byte k, seen, rs, j;
	short nudges;
	bool woken, urgent, rearm, go, w;
call:
	atomic { !mu -> mu = true; woken = false };
again:
	do
	:: true ->
		collect();                                /* T, LF2 */
		if
		:: k > 0 || woken -> leave(); pass_lead(); unlock(); goto ret
		:: else -> skip
		fi;
		if
		:: sleepers == 0 -> break
		:: else -> skip
		fi;
		leave();                                  /* LF1: follow */
		fmoved[me] = false;                       /* seq = fword */
		atomic { nfollow++; mu = false };
		atomic {
			if
			:: !fmoved[me] -> fq[me] = true; insleep[me] = true
			:: else -> skip
			fi
		};
end_follow:	atomic { !fq[me] -> insleep[me] = false };
		atomic { !mu -> mu = true; nfollow-- }
	od;
#ifdef INLINE
	if
	:: nfds == 0 ->                                   /* inline_fits */
		atomic { sleepers++; inl = true };        /* IN1 */
		seen = bell;                              /* LF5 */
		if
		:: wpend -> atomic { inl = false; sleepers--; seen = 0 }; goto again
#ifndef NOINLFDS
		:: nfds > 0 -> atomic { inl = false; sleepers--; seen = 0 }; goto again
#endif
		:: else -> skip
		fi;
		unlock();
		atomic {                       /* FUTEX_WAIT(bell, seen) */
			if
			:: bell == seen -> iq[me] = true; insleep[me] = true
			:: else -> skip
			fi;
			seen = 0
		};
end_inline:	atomic { !iq[me] -> insleep[me] = false };
		atomic { !mu -> mu = true; inl = false; sleepers-- };
		collect();
		if
		:: k > 0 || woken -> leave(); pass_lead(); unlock(); goto ret
		:: else -> goto again
		fi
	:: else -> skip
	fi;
#endif
	sleepers++;                                       /* LF5 */
#ifndef LATEBELL
	seen = bell;
#endif
	if
	:: wpend -> atomic { sleepers--; seen = 0 }; goto again
	:: else -> skip
	fi;
#ifdef LATEBELL
	seen = bell;
#endif
	arm_bell(seen);
	seen = 0;
	if                                                /* arm_one */
	:: nfds > 0 && inflight - cancelling < sleepers - (inl -> 1 : 0) ->
		atomic {
			if
			:: !sinfl[0] && !sfill[0] -> j = 0
			:: else -> if
				:: !sinfl[1] && !sfill[1] -> j = 1
#if NSLOT > 2
				:: else -> assert(!sinfl[2] && !sfill[2]); j = 2
#else
				:: else -> assert(false)   /* out of slots */
#endif
				fi
			fi;
			sinfl[j] = true; sown[j] = me; inflight++; kq[j] = true;
			j = 0
		}
	:: else -> skip
	fi;
	unlock();
	atomic {                                          /* enter: wait */
		if
		:: cq -> skip
		:: else -> inring[me] = true; insleep[me] = true
		fi
	};
end_ring:
	atomic { !inring[me] -> insleep[me] = false };
	atomic { !mu -> mu = true; sleepers-- };
	collect();
	leave(); pass_lead(); unlock();
ret:
	if
	:: goto call
	:: k > 0 || woken -> skip                         /* the caller stops */
	fi
}

active proctype waker()
{
	byte j;
	do
	:: sent < NWAKE ->
end_waker:	atomic { woke == sent -> sent++ };
		wpend = true;                             /* LF4 */
		ring_bell();
#ifndef NOKFOLLOW
		if                      /* two loads: sleepers, then nfollow */
		:: sleepers == 0 ->
			if
			:: nfollow > 0 -> wake_follower()
			:: else -> skip
			fi
		:: else -> skip
		fi
#endif
	:: else -> break
	od
}

#ifdef FD
active proctype adder()
{
	byte old, j;
	atomic { old = nfds; nfds++ };                    /* LF6: fd_ctl ADD */
#ifndef NOKBELL
	if
	:: old == 0 -> ring_bell()
	:: else -> skip
	fi;
#endif
	if
	:: sleepers == 0 ->
		if
		:: nfollow > 0 -> wake_follower()
		:: else -> skip
		fi
	:: else -> skip
	fi;
	fdready = true                                    /* the fd is ready */
}

/* epoll: the ready fd completes an EPOLL_WAIT in flight */
active proctype epoll()
{
	byte j;
end_epoll:
	do
	:: atomic { fdready && kq[0] -> kq[0] = false; fdready = false; kres[0] = EV; post_cqe() }
	:: atomic { fdready && kq[1] -> kq[1] = false; fdready = false; kres[1] = EV; post_cqe() }
#if NSLOT > 2
	:: atomic { fdready && kq[2] -> kq[2] = false; fdready = false; kres[2] = EV; post_cqe() }
#endif
	od
}
#endif

init {
	byte i;
	atomic {
		for (i : 0 .. T - 1) { run thr(i) }
	}
}

/* Stuck: nothing can move.  A thread that still waits has nothing
 * pending that it should have been woken for. */
active proctype monitor()
{
	bool waiting;
	byte i;
	timeout ->
	for (i : 0 .. T - 1) { waiting = waiting || insleep[i] }
	assert(!(waiting && wpend));
	assert(!(waiting && (fdready || filled > 0 || kres[0] == EV ||
			     kres[1] == EV || kres[NSLOT - 1] == EV)))
}
