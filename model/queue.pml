/*
 * queue.pml - the queue's sleep protocol (src/evq.c, evq_wait/evq__kick;
 * backend wake/wait as src/backend_epoll.c does them).
 *
 *   waiter                                  producer (evq__post, evq__kick)
 *   W1 sleepers++                           P1 push on post_head
 *   W2 if post_head non-empty: sleepers--,  P2 if sleepers > 0 and
 *      collect (drain) again                   exchange(wake_sent, 1) == 0:
 *   W3 backend wait: returns when it        P3    backend wake: the eventfd
 *      harvests the eventfd edge (woken),         edge becomes ready and one
 *      or on timeout                              sleeper is let go
 *   W4 sleepers--; if woken: wake_sent = 0;
 *      lock, drain the post stack
 *
 * The eventfd is edge-triggered in epoll: writes while its edge is ready
 * coalesce into that one edge, and exactly one wait() harvests it.
 *
 * Checked: no lost wakeup.  When the whole system is stuck (Promela's
 * `timeout`), every posted occurrence has been drained: no waiter sleeps
 * forever while a post waits on the stack.  The sleep itself is a valid
 * end state (end_ label): sleeping with nothing to do is fine.
 *
 * Teeth: the model fails (lost wakeup found) if wake_sent is never reset
 * after a harvested wake, or if a producer checks sleepers before pushing.
 *
 * @run | -DSAFETY |
 */

#define NPROD 2   /* producers, one post each */
#define NWAIT 2   /* waiters */

byte posted;      /* on the post stack, not yet drained */
byte drained;     /* taken by a waiter */
byte sleepers;
bool wake_sent;
bool edge;        /* the eventfd's epoll edge is ready */
byte finished;        /* producers finished */

active [NPROD] proctype producer()
{
	atomic { posted++ };                              /* P1 */
	if                                                /* P2 */
	:: atomic { sleepers > 0 && !wake_sent -> wake_sent = true };
	   edge = true                                    /* P3 */
	:: else -> skip
	fi;
	finished++
}

active [NWAIT] proctype waiter()
{
	bool woken;
	bool timed = (_pid % 2 == 0); /* one waiter times out, once: more
					 timeouts would only mask a lost
					 wakeup by polling */
collect:
	atomic { drained = drained + posted; posted = 0 };
	/* all work finished, or keep waiting (a real caller loops) */
	atomic { sleepers++ };                            /* W1 */
	if                                                /* W2 */
	:: atomic { posted > 0 -> sleepers-- }; goto collect
	:: else -> skip
	fi;
	woken = false;
end_sleep:
	if                                                /* W3 */
	:: atomic { edge -> edge = false; woken = true }
	:: timed -> timed = false                         /* timeout */
	fi;
	atomic {                                          /* W4 */
		sleepers--;
		if
		:: woken -> wake_sent = false
		:: else -> skip
		fi
	};
	if
	:: drained + posted < NPROD || posted > 0 -> goto collect
	:: else -> skip  /* everything drained: the caller stops */
	fi
}

/* Stuck: nothing can move.  Then nothing may be left on the stack. */
active proctype monitor()
{
	timeout -> assert(posted == 0 && drained + posted <= NPROD)
}
