/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the contract between the queue core and a kernel mechanism.
 *
 * A backend exports one const struct evq__backend from its own file
 * (epoll.c) or folder (uring/).  Below, every rule a backend may rely on
 * or must keep; the hooks' comments name the rules they follow.
 *
 * Shape
 *   B1 Nothing outside the backend includes <sys/epoll.h> or io_uring
 *      headers, and the core never asks which backend runs.  Every hook
 *      returns 0/a count or -errno (wake and fini return nothing).
 *   B2 Tokens: the core names each kernel-side registration with a 64-bit
 *      token (evq__token() in internal.h); the backend hands it back with
 *      the ready events.  A backend keeps its own wakeup mechanism out of
 *      that namespace: its wakes are never reported as ready events.
 *
 * Locks (q->lock is the core's; "the backend's lock" is any it has)
 *   B3 Which hooks run under q->lock:
 *        init, fini      no lock; fini only once no thread is inside any
 *                        hook of the queue and every registration's del
 *                        hook has run (fd DEL, word_disarm)
 *        fd_ctl          q->lock held; reaches no cancellation point
 *                        (epoll_ctl and futex wakes are none): fds'
 *                        calls take q->lock without switching
 *                        cancellation off (EVQ__KIND_NO_CANCEL_POINTS)
 *        word_arm/disarm q->lock held
 *        wait            q->lock NOT held; any number of threads at once,
 *                        concurrently with fd_ctl and word_arm/disarm
 *        wake            any: with or without q->lock, from any thread,
 *                        from a signal handler, and from inside wait() on
 *                        the waiting thread itself (B7)
 *   B4 Lock order: q->lock before the backend's lock.  A hook entered with
 *      q->lock may take the backend's lock.  wait() may take q->lock - the
 *      io_uring wait does, to run watch items' check(), which the core
 *      requires under q->lock (B8) - but never while it holds its own
 *      lock: it tries q->lock, and if that fails drops its lock, takes
 *      q->lock, then retakes its own.  It releases q->lock before it
 *      sleeps or returns.
 *   B5 A hook holding q->lock may wait (a condition variable on the
 *      backend's lock) for a thread in wait() to finish a step, only if
 *      that step needs no q->lock (uring: word_disarm waits for the inline
 *      sleep's IN3, which takes only s->lock).
 *
 * Waking
 *   B6 wake() makes one concurrent or the next wait() return, and each
 *      wake() is consumed by exactly one wait(), which reports it in
 *      round->woken.  It is async-signal-safe: it takes no lock (neither
 *      q->lock nor the backend's), allocates nothing, preserves errno.  No
 *      sleep shape may consume a wake() without returning (a follower or
 *      an inline sleeper that takes it returns too), and no broadcast is
 *      needed: the core sends one wake() at a time (wake_sent, reset only
 *      after the wait() that consumed it returned: core/wait.c W4) and relays
 *      it itself (evq_shutdown, pass_on).
 *   B7 Self-wake: a check() that wait() runs (B8) may post, and the
 *      post's kick calls wake() on the same thread, inside wait(), with
 *      q->lock held.  The backend may take that wake() as consumed by this
 *      very wait() (round->woken = 1) without making it visible to other
 *      sleepers: the thread returns to the core, which collects the post
 *      and resets wake_sent (W4); passing it on would only wake another
 *      thread for an event this one delivers (uring: evq__ur_checking and
 *      evq__ur_kicked, thread-local, in words.c and wait.c).  The core
 *      relies on nothing else: a self-wake left visible is consumed as any
 *      other.
 *
 * Words (word_arm != NULL)
 *   B8 The kind's registration state r->ext begins with its struct
 *      evq__watch_item (watch.h): the backend takes the item as r->ext.
 *      word_arm arms (or re-arms) it for it->expected; from then on the
 *      backend calls it->check() only from inside wait(), under q->lock,
 *      so serialised with evq__word_arm/idle, which write the item under
 *      q->lock.  When word_disarm returns, the kernel no longer sleeps on
 *      the word for the backend and check() is never called for it again
 *      (O3); a futex wake the backend may have taken for it meanwhile has
 *      been passed on (FUTEX_WAKE 1, X2).  word_disarm may find r->ext
 *      cleared already (a del hook clears it first): records are found by
 *      evq__idx(r).  Semaphores never go native (their kind lacks EVQ__KIND_NATIVE_WORDS, internal.h): a wake
 *      their watch takes must be passed on at once (sem.c Q4), and a
 *      backend runs check() only inside wait().
 *
 * Waiting
 *   B9 wait() with timeout 0 is a poll: it must not sleep, and it must
 *      look at everything the backend watches on the core's behalf (fds,
 *      and words for a backend with word_arm), since the core polls to
 *      keep kernel-side sources from starving (core/wait.c, F2).
 *   B10 A wake() or a kernel event should end the sleep of one waiter, not
 *      all (no thundering herd).
 *   B11 Cancellation: wait()'s sleep is a cancellation point (evq_wait(3)
 *      CANCELLATION).  The blocking system call is glibc's own
 *      cancellation point where there is one, else runs between
 *      evq__cancel_async() and evq__cancel_deferred() (futex.h).  On a
 *      cancel the backend undoes the sleep's own state, hands on whatever
 *      the call may have consumed (a wake, a futex wake for a word, a turn
 *      in the ring), and stores the events it had taken from the kernel in
 *      out[] and their count in round->taken (with round->woken); the
 *      core's handler, which runs after, parks them in the pending list:
 *      nothing is lost.  It does so in one of two ways:
 *      - its own cleanup handler (pthread_cleanup_push), which calls
 *        evq__asan_unstale() first;
 *      - or, cheaper (no second handler per wait), round->cancelled: set
 *        before the sleep, it is called first by the core's handler with
 *        the round and out[].  That handler runs in a frame above wait()'s,
 *        which is gone by then: what cancelled() reads must live outside
 *        wait()'s frame (epoll: the thread's own event buffer).
 *
 * Life
 *   B12 init may refuse with -errno, leaving nothing behind (q->be unset
 *      or cleared); EVQ_BACKEND_AUTO then tries the next backend.
 *   B13 Fork: a child never waits, wakes, arms or adds on an inherited
 *      queue (evq_wait returns -ECHILD first).  When the child frees it,
 *      the core swaps in no-op fd_ctl, wake and word_disarm (core/queue.c,
 *      destroy) and calls fini, which must release only the child's own
 *      references: no submission, no cancel, no wait for the parent's
 *      kernel requests (they may still write into buffers: leave those
 *      mapped), and no destroying a mutex a parent's thread may have held.
 */
#ifndef EVQ_BACKEND_H
#define EVQ_BACKEND_H

#include <signal.h>
#include <stdint.h>

struct evq;
struct evq__reg;

/* One ready kernel event, already translated to EVQ_READ/WRITE/PRI/ERR/HUP. */
struct evq__ready {
	uint64_t token;
	uint32_t events;
};

/* What one wait() did besides returning events. */
struct evq__round {
	int woken;  /* it consumed a wake() */
	int taken;  /* cancelled: events it had taken from the kernel, in out[] */
	/* B11: the backend's step on a cancel, run by the core's handler
	 * (NULL: none; the core clears it before each wait()) */
	void (*cancelled)(struct evq__round *round, struct evq__ready *out);
};

enum evq__fd_op { EVQ_FD_ADD, EVQ_FD_MOD, EVQ_FD_DEL };

struct evq__backend {
	const char *name;

	/* Creates the kernel objects and stores private state in q->be.
	 * max_batch bounds the events one wait() returns.  B12.  fini: B3,
	 * B13. */
	int (*init)(struct evq *q, int max_batch);
	void (*fini)(struct evq *q);

	/* Registers, changes or removes interest in fd.  events are EVQ_READ|
	 * EVQ_WRITE|EVQ_PRI, flags EVQ_EDGE|EVQ_ONESHOT.  ADD returns -EPERM for files
	 * the mechanism cannot watch (regular files), -EEXIST if the same open
	 * fd is registered already.  Under q->lock (B3). */
	int (*fd_ctl)(struct evq *q, enum evq__fd_op op, int fd, uint32_t events,
		      uint32_t flags, uint64_t token);

	/* Sleeps until a kernel event, wake() or the timeout (ns; < 0 forever),
	 * with sigmask (may be NULL) swapped in atomically.  Stores up to max
	 * ready events in out and returns their count (0: timeout or wakeup),
	 * -EINTR, or once the -errno of a failed kernel request.  Sets
	 * round->woken to 1 if this call consumed a wake() (B6, B7), else 0.
	 * Without q->lock, several threads at once (B3, B4); a poll: B9; one
	 * waiter per event: B10; cancellation: B11. */
	int (*wait)(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		    struct evq__ready *out, int max, struct evq__round *round);

	/* Makes one concurrent or the next wait() return: B6, B7.
	 * evq_shutdown() relies on exactly this (core/wait.c, "Shutdown"). */
	void (*wake)(struct evq *q);

	/* Word waits (evq_add_word/sem/latch).  NULL: the mechanism cannot
	 * wait on memory, and the library's futex watcher thread (watch.c)
	 * emulates it.  Under q->lock (B3); the rules: B8. */
	int (*word_arm)(struct evq *q, struct evq__reg *r);
	void (*word_disarm)(struct evq *q, struct evq__reg *r);
};

extern const struct evq__backend evq__backend_epoll;
extern const struct evq__backend evq__backend_uring;

#endif /* EVQ_BACKEND_H */
