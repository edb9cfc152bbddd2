/*
 * mask.pml - the event-mask protocols of src/mask.c, checked exhaustively.
 * Step names (N0.., W1.., G1.., U1.., Q1..) are those of the comment block
 * at the top of src/mask.c.  Every shared access of the C code is a seq_cst
 * atomic; here each is one Promela statement (one interleaving point).
 *
 * Three models, picked with -D at "spin -a" time (model/model.mk runs each
 * line below; fields: spin options | pan compile options | pan options):
 *
 *   @run -DWAITER -DROUNDS=3 | -DSAFETY | -m100000
 *   @run -DWAITER -DTIMEOUTS -DROUNDS=3 | -DSAFETY | -m100000
 *   @run -DGRACE | -DSAFETY | -m100000
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
 *   and receiver 3, subscribed throughout, gets both notifications.  The drain's
 *   futex sleep and the DRAINING flag are modelled too.
 *   -DONE_FLIP (not run by make) checks a grace period of one flip: pan
 *   finds the straggler notifier that makes it unsafe.
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
 * -DBROKEN_WAITER (not run by make) swaps W2 and W3 (check before
 * announcing the sleep), -DCOALESCE -DBROKEN_QUEUE acks after posting
 * (Q1 last): pan must find the lost notification in each.
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

#ifdef GRACE
#define NSLOT 3
#define DRAINING 128

byte slot[NSLOT];    /* receiver in each slot, 0 = none; receivers 1..4 */
bool alive[5];
byte phase = 0;
byte inside[2];      /* count | DRAINING */
bit sleeping[2];     /* the unsubscriber sleeps on inside[p] */
byte got3 = 0;       /* notifications of receiver 3 (never unsubscribed) */
byte done = 0;

proctype bnotify()
{
	byte p, i, r, old;
	p = phase & 1;                                       /* G1 */
	inside[p]++;
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
	atomic { old = inside[p]; inside[p]-- };             /* G3 */
	if
	:: old == (DRAINING | 1) -> sleeping[p] = 0           /* futex_wake */
	:: else -> skip
	fi;
	done++
}

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
		k = 0;                                       /* U2 */
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
		od;
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
	(done == 2);
	/* subscribed during both notifies: notified by both */
	assert(got3 == 2)
}
#endif /* GRACE */

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
		queued = 0;
		atomic { bits = val; val = 0 };
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
