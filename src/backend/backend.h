/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the contract between the queue core and a kernel mechanism.
 *
 * A backend is one file (backend_epoll.c, backend_uring.c) exporting one
 * const struct evq__backend.  Nothing outside the backend file includes
 * <sys/epoll.h> or io_uring headers, and the core never asks which backend
 * runs.  All functions return 0/a count or -errno.
 *
 * Tokens: the core names each kernel-side registration with a 64-bit token
 * (evq__token() in internal.h); the backend hands it back with the ready
 * events.  Backends keep their own wakeup mechanism out of that namespace.
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
};

enum evq__fd_op { EVQ_FD_ADD, EVQ_FD_MOD, EVQ_FD_DEL };

struct evq__backend {
	const char *name;

	/* Creates the kernel objects and stores private state in q->be.
	 * max_batch bounds the events one wait() returns. */
	int (*init)(struct evq *q, int max_batch);
	void (*fini)(struct evq *q);

	/* Registers, changes or removes interest in fd.  events are EVQ_READ|
	 * EVQ_WRITE|EVQ_PRI, flags EVQ_EDGE|EVQ_ONESHOT.  ADD returns -EPERM for files
	 * the mechanism cannot watch (regular files), -EEXIST if the same open
	 * fd is registered already. */
	int (*fd_ctl)(struct evq *q, enum evq__fd_op op, int fd, uint32_t events,
		      uint32_t flags, uint64_t token);

	/* Sleeps until a kernel event, wake() or the timeout (ns; < 0 forever),
	 * with sigmask (may be NULL) swapped in atomically.  Stores up to max
	 * ready events in out and returns their count (0: timeout or wakeup),
	 * or -EINTR.  Sets round->woken to 1 if this call consumed a wake()
	 * (each wake() is consumed by exactly one wait(), now or later), else
	 * 0.
	 * The sleep is a cancellation point (evq_wait(3) CANCELLATION): the
	 * blocking system call is glibc's own cancellation point where there
	 * is one (epoll_pwait2), else runs between evq__cancel_async() and
	 * evq__cancel_deferred() (futex.h), and a cleanup handler the backend pushed
	 * undoes its own state, hands on whatever the call may have consumed
	 * (a wake, a futex wake for a word, a turn in the ring), and stores
	 * the events it had taken from the kernel in out[] and their count in
	 * round->taken (with round->woken); the core's handler, which runs
	 * next, parks them in the pending list: nothing is lost.
	 * Called without the queue lock, possibly by several threads at once;
	 * a wake() or a kernel event should end the sleep of one of them, not
	 * all (no thundering herd).  timeout 0 is a poll: it must not sleep,
	 * and it must look at everything the backend watches on the core's
	 * behalf (fds, and words for a backend with word_arm), since the core
	 * polls to keep kernel-side sources from starving (evq.c, F2). */
	int (*wait)(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		    struct evq__ready *out, int max, struct evq__round *round);

	/* Makes one concurrent or the next wait() return.  Async-signal-safe.
	 * evq_shutdown() relies on exactly this (evq.c, "Shutdown"): the
	 * wait() that consumes a wake() reports round->woken and returns to
	 * the core, which hands a wake on to the next sleeper; so a backend
	 * needs no broadcast, but no sleep shape of it may consume a wake()
	 * without returning (a thread in the backend's own machinery - a
	 * follower, an inline sleeper - that takes the wake returns too). */
	void (*wake)(struct evq *q);

	/* Word waits (evq_add_word/sem/latch).  NULL: the mechanism cannot
	 * wait on memory, and the library's futex watcher thread (watch.c)
	 * emulates it.  Called under q->lock. */
	int (*word_arm)(struct evq *q, struct evq__reg *r);
	void (*word_disarm)(struct evq *q, struct evq__reg *r);
};

extern const struct evq__backend evq__backend_epoll;
extern const struct evq__backend evq__backend_uring;

#endif /* EVQ_BACKEND_H */
