/* SPDX-License-Identifier: MIT */
/*
 * mask.pml - the event-mask protocols of src/kinds/mask.c, checked exhaustively.
 * Step names (N0.., W1.., G1.., U1.., Q1..) are those of the comment block
 * at the top of src/kinds/mask.c.  Every shared access of the C code is a seq_cst
 * atomic; here each is one Promela statement (one interleaving point).
 *
 * Seven models, picked with -D at "spin -a" time (model/check.sh runs each
 * line below; fields: spin options | pan compile options | pan options):
 *
 *   @run -DWAITER -DROUNDS=3 | -DSAFETY | -m100000
 *   @run -DWAITER -DTIMEOUTS -DROUNDS=3 | -DSAFETY | -m100000
 *   @run -DGRACE | -DSAFETY | -m100000
 *   @run -DGROW | -DSAFETY | -m100000
 *   @run -DQUEUE -DROUNDS=3 | -DSAFETY | -m100000
 *   @run -DCOALESCE | -DSAFETY | -m100000
 *   @run -DWCOALESCE | -DSAFETY | -m100000
 *
 * WAITER: two notifiers, each notifying its own bit ROUNDS times (each time
 *   only after the waiter has consumed the previous one: otherwise
 *   notifications coalesce by design), and one waiter in a loop of
 *   evq_waiter_wait + ack.  The futex is modelled: futex_wait checks the
 *   word and enqueues atomically; futex_wake dequeues.  A lost wakeup
 *   leaves the waiter asleep in the kernel with a bit pending: an invalid
 *   end state (the notifiers are done), which pan reports.  TIMEOUTS lets
 *   every sleep also end by timeout (and stale wakes hit later sleeps).
 * GRACE: a broadcaster with three subscribed receivers; one thread
 *   unsubscribes receiver 1 (slot 0), subscribes receiver 4 into the freed
 *   slot, unsubscribes receiver 2 (slot 1), then receiver 4, "freeing" each
 *   receiver when its unsubscribe returns; two notifiers notify once each.
 *   Asserts: no notifier touches a freed receiver (use after unsubscribe),
 *   and receiver 3, subscribed throughout, gets both notifications.  The
 *   drain's futex sleep and the DRAINING flag are modelled too.
 * GROW: growth of the subscription table (room()): table 0 (one slot,
 *   receiver 1) is full; one thread subscribes receiver 2, which copies
 *   table 0 into table 1 (two slots) under b->lock, retires table 0 and
 *   publishes table 1 before unlocking; another thread unsubscribes
 *   receiver 1 (U1 in the table it finds, U2 the grace period, U3 frees
 *   the tables retired before) and then frees receiver 1; a notifier
 *   notifies concurrently with both.  Asserts: no notifier reads a freed
 *   table or touches a freed receiver; a receiver subscribed during the
 *   whole notify (its subscribe returned before the notify began, its
 *   unsubscribe was not called before it ended) is notified.  The free
 *   list is left out (the subscribe grows even when the unsubscribe got
 *   the lock first and freed slot 0: more interleavings, not fewer), and
 *   so is notify's "count == 0" shortcut (never 0 here).  One notifier:
 *   GRACE checks notifiers among themselves (a second one here costs 200
 *   times the states and finds nothing growth-specific).
 * QUEUE: the forwarding callback of evq_add_mask (Q1..Q4) into the core's
 *   post path (ctl "queued" bit, val) and a consumer that drains like
 *   evq_wait (clear queued, then exchange val) and sleeps while nothing is
 *   queued.  Two notifiers, one bit each, handshake as in WAITER; a lost
 *   notification deadlocks the consumer.
 * COALESCE: QUEUE's forwarding with both notifiers notifying the same bit,
 *   twice each, with no handshake, so notifies coalesce.  The property is
 *   then: each notify is followed by a take of val (by the consumer)
 *   holding the bit that began after the notify began.  Ghost counter
 *   takes = takes of val holding the bit; a notifier records takes when it
 *   starts; at the end every notifier's last record must be below takes.
 * WCOALESCE: WAITER with both notifiers notifying the same bit, twice
 *   each, no handshake (so N0 and the "no new bit" exit are taken); the
 *   waiter waits, acks and counts forever.  Checked when the notifiers are
 *   done and the waiter sleeps in the kernel: nothing is pending, and each
 *   notifier's last notify began before the waiter's last observation.
 *
 * Abstracted away: b->lock is a flag (its three-state futex is a plain
 * mutex), mask values are one or two bits, the receivers' callbacks are
 * the waiter's (N2) and the queue forwarder's (Q1..Q4) only, and the core
 * beyond the post path is model/queue.pml's.
 *
 * Teeth (each must make pan find an error; make model runs them):
 *   BROKEN_WAITER  swaps W2 and W3 (checks before announcing the sleep):
 *                  WAITER and WCOALESCE lose a wakeup
 *   ONE_FLIP       (GRACE) a grace period of one flip: the straggler
 *                  notifier touches a freed receiver
 *   EAGERFREE      (GROW) the old table is freed when it is replaced, not
 *                  retired until a grace period: a notifier reads it freed
 *   LATEPUBLISH    (GROW) the new table is published after b->lock is
 *                  released: the unsubscriber finds the old one, clears
 *                  receiver 1 there only, and the notifier calls it freed
 *   EARLYPUBLISH   (GROW) the new table is published before the copy: a
 *                  notifier misses receiver 1, subscribed throughout
 *   BROKEN_QUEUE   (COALESCE) acks after posting (Q1 last): a notify lost
 *   LATECLEAR      (QUEUE) the consumer takes val before clearing
 *                  "queued": a forward between the two is never posted
 *
 *   @tooth -DWAITER -DROUNDS=3 -DBROKEN_WAITER | -DSAFETY | -m100000
 *   @tooth -DWCOALESCE -DBROKEN_WAITER | -DSAFETY | -m100000
 *   @tooth -DGRACE -DONE_FLIP | -DSAFETY | -m100000
 *   @tooth -DGROW -DEAGERFREE | -DSAFETY | -m100000
 *   @tooth -DGROW -DLATEPUBLISH | -DSAFETY | -m100000
 *   @tooth -DGROW -DEARLYPUBLISH | -DSAFETY | -m100000
 *   @tooth -DCOALESCE -DBROKEN_QUEUE | -DSAFETY | -m100000
 *   @tooth -DQUEUE -DROUNDS=3 -DLATECLEAR | -DSAFETY | -m100000
 */

#ifndef ROUNDS
#define ROUNDS 2
#endif

#ifdef WAITER
#define AWAKE 0
#define SLEEPING 1

byte pending = 0;    /* receiver bits (bit 0: notifier 0, bit 1: notifier 1) */
bit state = AWAKE;   /* the waiter's futex word */
bit inkernel = 0;    /* the waiter sleeps in futex_wait */
byte sent[2], recv[2];

inline futex_wake()
{
	atomic { if :: inkernel -> inkernel = 0 :: else -> skip fi }
}

proctype notifier(byte me)
{
	byte bits = 1 << me, old;
	byte k = 0;
	do
	:: k == ROUNDS -> break
	:: else ->
		(recv[me] == sent[me]);      /* the last one was consumed */
		sent[me]++;
		k++;
		/* N0 */
		if
		:: (pending & bits) == bits -> goto next
		:: else -> skip
		fi;
		/* N1 */
		atomic { old = pending; pending = pending | bits };
		if
		:: (bits & ~old) == 0 -> goto next
		:: else -> skip
		fi;
		/* N2: the waiter's callback */
		if
		:: state == SLEEPING ->
			atomic { old = state; state = AWAKE };
			if
			:: old == SLEEPING -> futex_wake()
			:: else -> skip
			fi
		:: else -> skip
		fi;
next:		skip
	od
}

proctype waiter()
{
	byte got;
	do
	:: recv[0] == ROUNDS && recv[1] == ROUNDS -> break
	:: else ->
		/* evq_waiter_wait(w, 3, timeout) */
		got = pending & 3;                           /* W1 */
		if
		:: got != 0 -> goto woke
		:: else -> skip
		fi;
		do
		:: true ->
#ifdef BROKEN_WAITER
			got = pending & 3;                   /* W3 first: wrong */
			state = SLEEPING;                    /* W2 */
#else
			state = SLEEPING;                    /* W2 */
			got = pending & 3;                   /* W3 */
#endif
			if
			:: got != 0 -> break
			:: else -> skip
			fi;
			/* W4: futex_wait(state, SLEEPING) */
			atomic {
				if
				:: state == SLEEPING -> inkernel = 1
				:: else -> skip           /* EAGAIN */
				fi
			};
			if
			:: inkernel == 0 -> skip              /* woken */
#ifdef TIMEOUTS
			:: atomic { inkernel == 1 -> inkernel = 0 } /* timed out */
#endif
			fi;
			got = pending & 3;                   /* W5 */
			if
			:: got != 0 -> break
			:: else -> skip
			fi
#ifdef TIMEOUTS
			/* a timeout returns EVQ_MASK_TIMEOUT; the caller waits again */
			; if :: true -> break :: true -> skip fi
#endif
		od;
		state = AWAKE;
woke:
		/* the caller acks what it got and counts it */
		if
		:: got != 0 ->
			atomic { got = pending & got; pending = pending & ~got };
			if :: got & 1 -> recv[0]++ :: else -> skip fi;
			if :: got & 2 -> recv[1]++ :: else -> skip fi;
			assert(recv[0] <= sent[0] && recv[1] <= sent[1])
		:: else -> skip
		fi
	od;
	assert(recv[0] == sent[0] && recv[1] == sent[1])
}

init
{
	atomic { run notifier(0); run notifier(1); run waiter() }
}
#endif /* WAITER */

#if defined(GRACE) || defined(GROW)
#define DRAINING 128

bool alive[5];       /* receivers 1..4: not freed by their owner */
byte phase = 0;
byte inside[2];      /* active[]: count | DRAINING */
bit sleeping[2];     /* the unsubscriber sleeps on inside[p] */
byte ndone = 0;      /* notifiers finished */

inline drain(q)
{
	do
	:: true ->
		v = inside[q];
		if
		:: (v & ~DRAINING) == 0 -> break
		:: else -> skip
		fi;
		if
		:: (v & DRAINING) == 0 ->
			/* CAS(v, v | DRAINING); on failure, look again */
			atomic {
				if
				:: inside[q] == v -> inside[q] = v | DRAINING; v = v | DRAINING
				:: else -> v = 0
				fi
			}
		:: else -> skip
		fi;
		if
		:: v != 0 ->
			/* futex_wait(inside[q], v): sleeps only if unchanged */
			atomic {
				if
				:: inside[q] == v -> sleeping[q] = 1
				:: else -> skip
				fi
			};
			(sleeping[q] == 0)
		:: else -> skip
		fi
	od;
	atomic { inside[q] = inside[q] & ~DRAINING }
}

/* U2: two phase flips, each waiting for the epoch it leaves to drain */
inline grace()
{
	k = 0;
	do
	:: k == 2 -> break
	:: else ->
		p = phase;
		phase = (p + 1) & 1;
		drain(p & 1);
#ifdef ONE_FLIP
		k = 2
#else
		k++
#endif
	od
}

/* G1, and G3 */
inline enter_epoch()
{
	p = phase & 1;
	inside[p]++
}

inline leave_epoch()
{
	atomic { old = inside[p]; inside[p]-- };
	if
	:: old == (DRAINING | 1) -> sleeping[p] = 0           /* futex_wake */
	:: else -> skip
	fi
}
#endif

#ifdef GRACE
#define NSLOT 3

byte slot[NSLOT];    /* receiver in each slot, 0 = none; receivers 1..4 */
byte got3 = 0;       /* notifications of receiver 3 (never unsubscribed) */

proctype bnotify()
{
	byte p, i, r, old;
	enter_epoch();                                       /* G1 */
	i = 0;                                               /* G2 */
	do
	:: i == NSLOT -> break
	:: else ->
		r = slot[i];
		if
		:: r != 0 ->
			/* notify(r): touches the receiver's memory */
			assert(alive[r]);
			if :: r == 3 -> got3++ :: else -> skip fi
		:: else -> skip
		fi;
		i++
	od;
	leave_epoch();                                       /* G3 */
	ndone++
}

proctype unsubscriber()
{
	byte s, r, p, v, k, step = 0;
	do
	:: step == 3 -> break
	:: else ->
		if
		:: step == 1 ->
			/* U3 freed slot 0: subscribe receiver 4 there */
			alive[4] = true;
			slot[0] = 4;
			s = 1
		:: else -> s = 0
		fi;
		r = slot[s];
		slot[s] = 0;                                 /* U1 */
		grace();                                     /* U2 */
		alive[r] = false;                            /* the owner frees it */
		step++
	od
}

init
{
	atomic {
		slot[0] = 1; slot[1] = 2; slot[2] = 3;
		alive[1] = true; alive[2] = true; alive[3] = true;
		run bnotify(); run bnotify(); run unsubscriber()
	};
	(ndone == 2);
	/* subscribed during both notifies: notified by both */
	assert(got3 == 2)
}
#endif /* GRACE */

#ifdef GROW
#ifndef GNOTIFIERS
#define GNOTIFIERS 1
#endif
/* Two tables: 0 (cap 1, the first) and 1 (cap 2, its copy); table t's
 * slot i is tslot[2 * t + i] */
byte tab = 0;        /* b->table: the published table */
byte tslot[4];
byte tused[2];
bool tretired[2];    /* on b->retired */
bool tfreed[2];
bool blk;            /* b->lock */
bool sub2;           /* subscribe(receiver 2) returned */
bool unsub1;         /* unsubscribe(receiver 1) was called */
byte gotby[3];       /* bit n: notifier n notified receiver r */

inline block() { atomic { !blk -> blk = true } }
inline bunlock() { blk = false }

proctype gnotify(byte me)
{
	byte p, i, t, n, r, old;
	bool want1, want2;   /* subscribed when the notify began */
	want1 = !unsub1;
	want2 = sub2;
	enter_epoch();                                       /* G1 */
	t = tab;                                             /* G2 */
	assert(!tfreed[t]);
	n = tused[t];
	i = 0;
	do
	:: i == n -> break
	:: else ->
		assert(!tfreed[t]);
		r = tslot[2 * t + i];
		if
		:: r != 0 ->
			assert(alive[r]);       /* notify(r) */
			gotby[r] = gotby[r] | (1 << me)
		:: else -> skip
		fi;
		i++
	od;
	leave_epoch();                                       /* G3 */
	/* subscribed during the whole notify: notified */
	assert(!want1 || unsub1 || (gotby[1] & (1 << me)));
	assert(!want2 || (gotby[2] & (1 << me)));
	atomic { p = 0; i = 0; t = 0; n = 0; r = 0; old = 0;  /* (fewer states) */
		 want1 = false; want2 = false }
}

/* evq_bcast_subscribe(receiver 2): table 0 is full, so room() grows */
proctype subscriber()
{
	byte t, i;
	alive[2] = true;
	block();
	t = tab;
	if
	:: tused[t] == t + 1 ->                              /* full */
#ifdef EARLYPUBLISH
		tab = 1;                         /* before the copy: wrong */
#endif
		tslot[2] = tslot[0];                         /* copy */
		tused[1] = tused[0];
#ifdef EAGERFREE
		tfreed[0] = true;                /* no grace period: wrong */
#else
		tretired[0] = true;                          /* retire */
#endif
#ifndef LATEPUBLISH
		tab = 1;                                     /* publish */
#endif
		t = 1
	:: else -> skip
	fi;
	i = tused[t];
	tslot[2 * t + i] = 2;                                /* mask, recv */
	tused[t] = i + 1;
	bunlock();
#ifdef LATEPUBLISH
	tab = 1;                                 /* after the unlock: wrong */
#endif
	sub2 = true
}

/* evq_bcast_unsubscribe(receiver 1), then its owner frees it */
proctype unsubscriber()
{
	byte t, p, v, k;
	unsub1 = true;
	block();
	t = tab;
	assert(!tfreed[t]);
	tslot[2 * t] = 0;                                    /* U1 */
	grace();                                             /* U2 */
	for (t : 0 .. 1) {                      /* U3: free_retired */
		if
		:: tretired[t] -> tretired[t] = false; tfreed[t] = true
		:: else -> skip
		fi
	}
	bunlock();
	alive[1] = false
}

init
{
	atomic {
		tslot[0] = 1; tused[0] = 1; alive[1] = true;
		run gnotify(0);
#if GNOTIFIERS > 1
		run gnotify(1);
#endif
		run subscriber(); run unsubscriber()
	}
}
#endif /* GROW */

#ifdef QUEUE
byte rpend = 0;      /* the registration's receiver: pending bits */
byte val = 0;        /* r->val */
bit queued = 0;      /* ctl's QUEUED bit (the post stack holds r) */
byte pend = 0;       /* r->pend_data (under the queue lock) */
byte sent[2], recv[2];

proctype qnotifier(byte me)
{
	byte bits = 1 << me, old, k = 0;
	do
	:: k == ROUNDS -> break
	:: else ->
		(recv[me] == sent[me]);
		sent[me]++;
		k++;
		if                                           /* N0 */
		:: (rpend & bits) == bits -> goto next
		:: else -> skip
		fi;
		atomic { old = rpend; rpend = rpend | bits }; /* N1 */
		bits = bits & ~old;
		if
		:: bits == 0 -> goto next
		:: else -> skip
		fi;
#ifndef BROKEN_QUEUE
		rpend = rpend & ~bits;                       /* Q1 (fetch_and) */
#endif
		if                                           /* Q2 */
		:: (val & bits) == bits -> goto next
		:: else -> skip
		fi;
		val = val | bits;                            /* Q3 (fetch_or) */
		queued = 1;                                  /* Q4 evq__post */
#ifdef BROKEN_QUEUE
		rpend = rpend & ~bits;                       /* Q1 last: wrong */
#endif
next:		bits = 1 << me
	od
}

/* evq_wait's drain: take_post (clear queued, exchange val), fold, deliver */
proctype consumer()
{
	byte bits;
	do
	:: recv[0] == ROUNDS && recv[1] == ROUNDS -> break
	:: else ->
		(queued == 1);   /* sleeps until posted (the core's wake protocol) */
#ifndef LATECLEAR
		queued = 0;
		atomic { bits = val; val = 0 };
#else
		atomic { bits = val; val = 0 };           /* wrong order */
		queued = 0;
#endif
		pend = pend | bits;
		/* deliver: data = pend */
		if :: pend & 1 -> recv[0]++ :: else -> skip fi;
		if :: pend & 2 -> recv[1]++ :: else -> skip fi;
		assert(recv[0] <= sent[0] && recv[1] <= sent[1]);
		pend = 0
	od;
	assert(recv[0] == sent[0] && recv[1] == sent[1])
}

init
{
	atomic { run qnotifier(0); run qnotifier(1); run consumer() }
}
#endif /* QUEUE */

#ifdef COALESCE
#define A 1
byte rpend = 0, val = 0;
bit queued = 0;
byte takes = 0;      /* ghost: takes of val that held A */
byte started[2];     /* ghost: takes when a notifier's last notify began */
byte finished = 0;

proctype cnotifier(byte me)
{
	byte bits, old, k = 0;
	do
	:: k == 2 -> break
	:: else ->
		k++;
		started[me] = takes;
		bits = A;
		if                                           /* N0 */
		:: (rpend & bits) == bits -> goto next
		:: else -> skip
		fi;
		atomic { old = rpend; rpend = rpend | bits }; /* N1 */
		bits = bits & ~old;
		if
		:: bits == 0 -> goto next
		:: else -> skip
		fi;
#ifndef BROKEN_QUEUE
		rpend = rpend & ~bits;                       /* Q1 */
#endif
		if                                           /* Q2 */
		:: (val & bits) == bits -> goto next
		:: else -> skip
		fi;
		val = val | bits;                            /* Q3 */
		queued = 1;                                  /* Q4 */
#ifdef BROKEN_QUEUE
		rpend = rpend & ~bits;                       /* Q1 last: wrong */
#endif
next:		skip
	od;
	finished++
}

proctype cconsumer()
{
	byte bits;
	do
	:: queued == 1 ->
		queued = 0;
		atomic { bits = val; val = 0 };
		if
		:: bits & A -> takes++
		:: else -> skip
		fi
	:: finished == 2 && queued == 0 -> break
	od;
	assert(takes > started[0] && takes > started[1])
}

init
{
	atomic { run cnotifier(0); run cnotifier(1); run cconsumer() }
}
#endif /* COALESCE */

#ifdef WCOALESCE
#define A 1
#define AWAKE 0
#define SLEEPING 1
byte pending = 0;
bit state = AWAKE;
bit inkernel = 0;
byte takes = 0;      /* ghost: times the waiter returned with A */
byte started[2];     /* ghost: takes when a notifier's last notify began */
byte finished = 0;

proctype wnotifier(byte me)
{
	byte old, k = 0;
	do
	:: k == 2 -> break
	:: else ->
		k++;
		started[me] = takes;
		if                                           /* N0 */
		:: (pending & A) == A -> goto next
		:: else -> skip
		fi;
		atomic { old = pending; pending = pending | A }; /* N1 */
		if
		:: (A & ~old) == 0 -> goto next
		:: else -> skip
		fi;
		if                                           /* N2 */
		:: state == SLEEPING ->
			atomic { old = state; state = AWAKE };
			if
			:: old == SLEEPING ->
				atomic { if :: inkernel -> inkernel = 0 :: else -> skip fi }
			:: else -> skip
			fi
		:: else -> skip
		fi;
next:		skip
	od;
	finished++
}

proctype cwaiter()
{
	byte got;
	do
	:: true ->
		got = pending & A;                           /* W1 */
		if
		:: got != 0 -> goto woke
		:: else -> skip
		fi;
		do
		:: true ->
#ifdef BROKEN_WAITER
			got = pending & A;
			state = SLEEPING;
#else
			state = SLEEPING;                    /* W2 */
			got = pending & A;                   /* W3 */
#endif
			if
			:: got != 0 -> break
			:: else -> skip
			fi;
			atomic {                             /* W4 */
				if
				:: state == SLEEPING -> inkernel = 1
				:: else -> skip
				fi
			};
end_sleep:		(inkernel == 0);
			got = pending & A;                   /* W5 */
			if
			:: got != 0 -> break
			:: else -> skip
			fi
		od;
		state = AWAKE;
woke:
		atomic { got = pending & got; pending = pending & ~got };
		if
		:: got -> takes++
		:: else -> skip
		fi
	od
}

active proctype check()
{
end:	atomic {
		finished == 2 && inkernel == 1 ->
		assert(pending == 0 && takes > started[0] && takes > started[1])
	}
}

init
{
	atomic { run wnotifier(0); run wnotifier(1); run cwaiter() }
}
#endif /* WCOALESCE */
