/* SPDX-License-Identifier: MIT */
/*
 * evq.h - one place to wait for everything that can block a program.
 *
 * This is the only public header of libevq.  Conventions, true of every
 * function below unless its comment says otherwise:
 *
 *  - Return value: 0 or a count (or an id >= 0) on success, a negative errno
 *    on failure (-EINVAL, -ENOENT, ...).  errno is never read or relied on;
 *    it may be clobbered by failing system calls inside the library.
 *  - A failed call leaves the queue exactly as usable as before.
 *  - In a child process created by fork(), inherited queues only accept
 *    evq_free() (and evq_backend_name()); every other call returns -ECHILD
 *    (see below).
 *  - Thread-safety: every function taking a struct evq * may be called from
 *    any thread, concurrently with a thread blocked in evq_wait() on the same
 *    queue, except evq_free() (which must be the last call on the queue).
 *  - Async-signal-safety: only the functions marked "async-signal-safe"
 *    may be called from a signal handler.
 */
#ifndef EVQ_H
#define EVQ_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#if !defined(_POSIX_C_SOURCE) && !defined(__cplusplus)
#error "evq.h uses POSIX types (sigset_t, clockid_t, pid_t, struct sigevent): compile with -D_POSIX_C_SOURCE=200809L (or -D_GNU_SOURCE, or -std=gnu11)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Versions                                                             */
/* ------------------------------------------------------------------ */

/* The version of this header (NEWS.md lists the releases).  Releases
 * that share a soname share an ABI: from 1.0 on, those with the same major
 * number; while the major number is 0, those with the same minor number
 * (every 0.x minor release may break the ABI and changes the soname,
 * libevq.so.0.2 for 0.2.x; README.md "ABI and versions").  The Makefile
 * takes the library's version and soname from these three lines. */
#define EVQ_VERSION_MAJOR 0
#define EVQ_VERSION_MINOR 2
#define EVQ_VERSION_PATCH 0

/* This header's version as one number: major << 16 | minor << 8 | patch,
 * e.g. 0x000200 for 0.2.0; compare it with evq_version(). */
#define EVQ_VERSION \
	((EVQ_VERSION_MAJOR << 16) | (EVQ_VERSION_MINOR << 8) | EVQ_VERSION_PATCH)

/* The version of the library running, encoded as EVQ_VERSION: it tells a
 * program which libevq it was loaded with, which the header it was
 * compiled against cannot (e.g. a library older than the header within
 * one soname: evq_version() < EVQ_VERSION).  Never fails;
 * async-signal-safe. */
unsigned evq_version(void);

/* ------------------------------------------------------------------ */
/* The queue                                                            */
/* ------------------------------------------------------------------ */

struct evq;

/* Backends.  AUTO picks the best one the kernel offers; the environment
 * variable EVQ_BACKEND=epoll|uring overrides AUTO (never an explicit
 * choice). */
enum evq_backend_id {
	EVQ_BACKEND_AUTO = 0,
	EVQ_BACKEND_EPOLL = 1,
	EVQ_BACKEND_URING = 2,
};

struct evq_options {
	int backend;      /* enum evq_backend_id; 0 = AUTO */
	int max_batch;    /* kernel events harvested per system call at most;
	                     0 = 256; 1..512 */
	unsigned flags;   /* reserved, must be 0 */
};

/* Creates a queue.  opt may be NULL for the defaults.
 * Errors: -EINVAL (NULL q, bad option, unknown $EVQ_BACKEND), -ENOSYS or
 * -EPERM (the backend asked for is missing or refused, e.g. io_uring
 * disabled or blocked by seccomp), -ENOMEM, -EMFILE/-ENFILE (out of
 * descriptors), -EAGAIN (io_uring: the short-lived thread its first queue
 * in a process starts could not be created). */
int evq_new(struct evq **q, const struct evq_options *opt);

/* Frees a queue and every registration in it.  NULL is ignored.  No other
 * thread may use the queue during or after this call.  File descriptors
 * registered with evq_add_fd() are not closed. */
void evq_free(struct evq *q);

/* "epoll" or "uring"; "?" for NULL. */
const char *evq_backend_name(const struct evq *q);

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

/* Kinds of registrations (struct evq_event.kind). */
enum evq_kind {
	EVQ_KIND_FD = 1,
	EVQ_KIND_TIMER = 2,
	EVQ_KIND_USER = 3,
	EVQ_KIND_SIGNAL = 4,
	EVQ_KIND_PID = 5,
	EVQ_KIND_WORD = 6,
	EVQ_KIND_SEM = 7,
	EVQ_KIND_LATCH = 8,
	EVQ_KIND_MASK = 9,
	EVQ_KIND_SIGEVENT = 10, /* evq_sigevent() notifications */
};

/* Readiness bits (evq_add_fd() events, struct evq_event.events).
 * EVQ_ERR and EVQ_HUP are always reported, whether asked for or not.
 * EVQ_PRI (epoll's EPOLLPRI, select()'s "exceptional condition") is
 * urgent data: TCP out-of-band data not yet read with recv(MSG_OOB), a
 * packet-mode pty master's status byte, sysfs/cgroup files that signal a
 * change; reported only when asked for, and never for a regular file or
 * directory. */
#define EVQ_READ  0x1u
#define EVQ_WRITE 0x2u
#define EVQ_ERR   0x4u
#define EVQ_HUP   0x8u
#define EVQ_PRI   0x10u

/* Registration flags. */
#define EVQ_ONESHOT  0x01u /* deliver once, then behave as EVQ_DISABLED */
#define EVQ_EDGE     0x02u /* fds: report transitions, not levels */
#define EVQ_DISABLED 0x04u /* registered but not reported until enabled */
#define EVQ_ABSTIME  0x08u /* timers: when_ns is an absolute clock value */
#define EVQ_SHARED   0x10u /* words: memory shared between processes */
#define EVQ_NOREAP   0x20u /* pids: report the exit, do not reap */

/* One delivered event: a fixed 40-byte record, no pointers into the
 * library. */
struct evq_event {
	uint64_t cookie;   /* the caller's cookie, as registered */
	int64_t id;        /* the registration id */
	uint64_t data;     /* timers: expirations; user: trigger count; ... */
	uint32_t events;   /* EVQ_READ|EVQ_WRITE|EVQ_PRI|EVQ_ERR|EVQ_HUP for fds */
	int32_t ident;     /* fd, signal number or pid; -1 otherwise */
	uint16_t kind;     /* enum evq_kind */
	uint16_t flags;    /* the registration's flags when it fired */
	uint32_t reserved; /* 0 */
};

/* ------------------------------------------------------------------ */
/* Registrations                                                        */
/* ------------------------------------------------------------------ */

/* Each evq_add_*() returns a registration id >= 0 or -errno.  Ids are
 * int64_t: store them in an int64_t (an int truncates them).
 * An id is generation << 32 | slot: the low 32 bits name a slot, reused
 * after evq_del(); the high bits the slot's generation, 1 .. 2^31 - 1,
 * which each evq_del() advances.  A slot whose generation would wrap is
 * retired (never handed out again: one slot per 2^31 reuses of it), so an
 * id is never handed out twice in a queue's life and a stale id (its
 * registration deleted) is refused with -ENOENT by every call, forever.
 * Every id is >= 2^32: one truncated to an int names nothing and is
 * refused (-ENOENT) instead of reaching another registration.  Treat ids as
 * opaque; compare them only for equality.
 * Errors of the calls that take an id: -ENOENT means no such live
 * registration (unknown, stale, truncated); -EINVAL means a live one of
 * another kind than the call needs - evq_trigger() on a non-user id,
 * evq_mod_timer() on a non-timer, evq_mod_word() on a non-word, evq_mod()
 * with fd events on a non-fd - or a bad argument.  -ENOENT is checked
 * first: a deleted timer's id is -ENOENT also for evq_trigger(). */

/* File descriptor readiness.  events: any of EVQ_READ, EVQ_WRITE, EVQ_PRI
 * (0 is allowed: only EVQ_ERR/EVQ_HUP are then reported).  flags: EVQ_EDGE,
 * EVQ_ONESHOT, EVQ_DISABLED.  A regular file or directory (which epoll
 * refuses) is reported ready at once, with the EVQ_READ/EVQ_WRITE asked for
 * (never EVQ_PRI: select() reports no exception for one either; asked for
 * EVQ_PRI alone it is never reported): level-triggered, once per kernel
 * round (and, since no kernel watches it, evq checks with fstat() each round
 * that the fd still names that file; closed, it goes silent); edge-triggered
 * or oneshot, once.  One registration per descriptor number: a second one
 * for the same fd gets -EEXIST (a dup() is another descriptor and may be
 * registered too).  Call evq_del() before close().  If the fd is closed
 * while registered and nothing else keeps the file open, its registration
 * goes silent; a new fd that reuses the number may be registered anew and
 * never sees the old registration's events; evq_del() of the old id is then
 * still required and harmless.  If a dup() or a child keeps the file open,
 * the kernel keeps reporting it: its events still arrive under the old id,
 * and after evq_del() (which then cannot reach the kernel registration) evq
 * drops them, but a level-triggered one keeps waking evq_wait() until the
 * file is closed everywhere - the epoll rule evq cannot hide.
 * Errors: -EBADF (fd not open), -EINVAL (bad events/flags), -EEXIST,
 * -ENOMEM, -ENOSPC (too many registrations). */
int64_t evq_add_fd(struct evq *q, int fd, uint32_t events, uint32_t flags,
	       uint64_t cookie);

/* A timer on clock CLOCK_MONOTONIC, CLOCK_REALTIME or CLOCK_BOOTTIME.
 * when_ns: delay (relative) or clock value (EVQ_ABSTIME); a time in the
 * past fires at once.  interval_ns > 0 makes it periodic.  data in the
 * event = expirations since last delivered (overruns are counted, never
 * dropped).  A fired one-shot timer stays registered (silent) until
 * evq_del() or evq_mod_timer().  Timers live in a heap in the library: no
 * kernel object per timer.  CLOCK_REALTIME deadlines (a relative one is
 * converted when armed) are wall-clock times: if the clock is set, they fire
 * when the clock passes them (the queue then holds one timerfd with
 * TFD_TIMER_CANCEL_ON_SET, its only kernel timer).  CLOCK_BOOTTIME timers
 * count suspended time; one whose deadline passed during a suspend fires at
 * the queue's next wakeup.
 * Errors: -EINVAL (unknown clock, negative when_ns for a relative timer,
 * negative interval, bad flags), -ENOMEM, -ENOSPC (too many registrations).
 */
int64_t evq_add_timer(struct evq *q, clockid_t clock, int64_t when_ns,
		  int64_t interval_ns, uint32_t flags, uint64_t cookie);

/* Re-arms timer id with a new expiry and interval; pending expirations not
 * yet delivered are discarded.  flags as for evq_add_timer().
 * Errors: -ENOENT (no such live registration: unknown or stale id),
 * -EINVAL (a live id that is not a timer, or bad arguments as for
 * evq_add_timer()), -ENOMEM. */
int evq_mod_timer(struct evq *q, int64_t id, int64_t when_ns, int64_t interval_ns,
		  uint32_t flags);

/* A user event, fired by evq_trigger().  flags: none at registration; use
 * evq_mod() for EVQ_ONESHOT/EVQ_DISABLED.  Errors: -EINVAL (NULL q),
 * -ENOMEM, -ENOSPC (too many registrations). */
int64_t evq_add_user(struct evq *q, uint64_t cookie);

/* Fires user event id.  Triggers coalesce while pending: data = number of
 * triggers since the last delivery.  Async-signal-safe, lock-free, callable
 * from any thread; makes a system call only when a thread sleeps in
 * evq_wait() and no wakeup is already on its way; preserves errno.
 * Errors: -EINVAL (NULL q, or a live id that is not a user event),
 * -ENOENT (no such live registration: unknown or stale id). */
int evq_trigger(struct evq *q, int64_t id);

/* Changes a registration: events (fds only; must be 0 for other kinds) and
 * flags (EVQ_ONESHOT, EVQ_EDGE for fds, EVQ_DISABLED).  Enabling a oneshot
 * registration that has fired re-arms it.  Occurrences of a disabled
 * timer, user, word or mask registration are kept and delivered when it is
 * enabled again, as is an event of any kind given back with evq_requeue().
 * Errors: -ENOENT (no such live registration), -EINVAL (events on a
 * registration that is not an fd, a flag its kind does not take),
 * -EBADF (fd closed); enabling a
 * word, semaphore or latch registration also as evq_add_word(): -ENOMEM,
 * -EAGAIN, -ENOSYS.  A failed call leaves the registration as it was. */
int evq_mod(struct evq *q, int64_t id, uint32_t events, uint32_t flags);

/* Removes a registration.  When evq_del() returns, no event of it will be
 * returned by any evq_wait(), including one already taken from the kernel
 * but not yet handed out.  Errors: -EINVAL (NULL q), -ENOENT. */
int evq_del(struct evq *q, int64_t id);

/* ------------------------------------------------------------------ */
/* Waiting                                                              */
/* ------------------------------------------------------------------ */

/* Waits for events and stores up to max of them in events[].
 * timeout_ns < 0 waits forever, 0 polls, > 0 waits that many nanoseconds
 * (no rounding to milliseconds).  sigmask, if not NULL, replaces the
 * thread's signal mask atomically for the duration of the sleep (as
 * epoll_pwait2/ppoll do).  Never sleeps while events are pending in the
 * library.  Fairness: a call returns pending events without asking the
 * kernel only if the call before it asked; otherwise it polls the kernel
 * first and returns what it reported ahead of the pending events, which
 * come oldest first.  So no ready source starves: one that becomes ready
 * while another is always ready is returned within two calls, even with
 * max = 1 (evq_wait(3) FAIRNESS).
 *
 * Many threads may wait on one queue at once.  Each occurrence is handed to
 * exactly one of them, and new events end the sleep of one waiter, not all
 * (a waiter that takes fewer than are pending passes the rest on to the
 * next).  A level-triggered fd stays "ready" until drained, so two waiters
 * may both see it; use EVQ_EDGE, or EVQ_ONESHOT re-armed with evq_mod()
 * after handling, to hand each readiness to one thread.  A periodic timer
 * is the same: it fires again on time while another thread still handles
 * its last expiry.  Register it EVQ_ONESHOT and re-arm it after handling
 * with evq_mod(q, id, 0, EVQ_ONESHOT) (not 0, which would make it
 * non-oneshot): the period is kept (evq_mod does not move the deadline, as
 * evq_mod_timer would), and expirations while it was spent are counted
 * and come at once, so the data of its events still adds up to the
 * periods elapsed.  To stop a pool of waiters, evq_shutdown().
 *
 * A cancellation point on every backend (pthread_cancel): a cancelled
 * waiter holds no lock, and what it had taken from the kernel or a wakeup
 * it consumed goes to the other waiters; nothing is lost.
 *
 * Returns the number of events, 0 on timeout, -EINTR when a signal was
 * caught, -ESHUTDOWN once evq_shutdown() was called (even with events
 * pending), -EINVAL (NULL q/events, max <= 0), -ECHILD (see fork below). */
int evq_wait(struct evq *q, struct evq_event *events, int max,
	     int64_t timeout_ns, const sigset_t *sigmask);

/* Gives back an event this thread took but will not handle: it becomes
 * pending again (merged with anything newer of the same registration) and
 * another waiter is woken for it.  ev must be (a copy of) a record that
 * the calling thread's most recent evq_wait() returning events handed out
 * on q, unchanged and not given back yet; anything else - another queue's
 * record, an altered one, one of an older batch or of another thread, one
 * given back already - is refused, so no occurrence or semaphore token is
 * ever made out of it.  A oneshot registration's event is given back too.
 * Errors: -EINVAL (NULL, or not a record this thread holds from q - also
 * one whose kind was altered: a record's kind must be its registration's),
 * -ENOENT (the registration was deleted since: the event died with it),
 * -ENOMEM (the last batch could not be recorded), -ECHILD. */
int evq_requeue(struct evq *q, const struct evq_event *ev);

/* Stops the queue's waiters: from now on every evq_wait() on q - the
 * threads blocked in it now, on any backend and whatever they sleep on,
 * and every later call, also with timeout 0 and with events pending -
 * returns -ESHUTDOWN at once.  Only evq_wait() changes: registrations may
 * still be added, changed, triggered and deleted (never delivered); events
 * pending stay until evq_del() or evq_free(), which remains the last call
 * (after the waiting threads have returned).  Idempotent: 0 each time.
 * Async-signal-safe (no lock, no allocation), preserves errno.
 * Errors: -EINVAL (NULL q), -ECHILD. */
int evq_shutdown(struct evq *q);

/* fork(): the child inherits a copy of every queue, but the kernel objects
 * behind it (epoll set, io_uring) stay shared with the parent.  In the child
 * every call on an inherited queue fails with -ECHILD, except evq_free(),
 * which releases the child's copy without touching what the parent waits on
 * (nothing is unregistered, stolen or woken).  The child creates its own
 * queues with evq_new(). */

/* ------------------------------------------------------------------ */
/* Memory words, semaphores, latches                                    */
/* ------------------------------------------------------------------ */

/* Words are 32-bit, 4-byte aligned, and must stay mapped while anything
 * waits on them.  A word is "private" (one process; threads share it) or,
 * with EVQ_SHARED, "shared": memory mapped MAP_SHARED (memfd, shm_open,
 * anonymous shared across fork), possibly at different addresses in each
 * process.  Waiters and wakers of one word must agree on EVQ_SHARED: a
 * shared wake does not reach private waiters and vice versa.
 *
 * On a backend without native word waits (epoll), a registration of the
 * kinds below is watched by a helper thread of the queue (one per 127
 * words) that sleeps in futex_waitv and posts into the queue.  Such a
 * registration holds a kernel wait on the word: it takes its share of
 * wake-ups like any waiter (a wake it does not need is passed on).
 *
 * Hostile memory.  Shared memory is only as good as every process that
 * maps it, so whatever another process writes into a semaphore or latch,
 * or wherever a word's memory goes, evq does not spin and reports it:
 *  - the direct calls (evq_sem_*, evq_latch_*) return -EINVAL for garbage
 *    (a bad magic or flags field, EVQ_SHARED flipped, a semaphore count
 *    above EVQ_SEM_MAX), also when it appears while evq_sem_wait() or
 *    evq_latch_wait() sleeps (noticed when it wakes up);
 *  - a registration (evq_add_sem, evq_add_latch, evq_add_word) whose memory
 *    turns out to be garbage, or unreadable (a futex call on the word fails
 *    with EFAULT: unmapped, or a shared file truncated under it), delivers
 *    ONE event with events = EVQ_ERR - data: what an event of its kind
 *    that was still pending carried (a semaphore's tokens given back to it
 *    with evq_requeue(), a latch's 1, a word's value), normally 0 - and then waits on
 *    nothing, as if disabled, until evq_mod() (or evq_mod_word()) enables
 *    it again, which looks again: still bad, one more EVQ_ERR event.
 * evq notices garbage when it looks at the memory: when the futex word
 * changes or is woken, and when a registration is (re-)armed.  A peer
 * that corrupts a waiters field can make wake-ups go missing (sleepers
 * then wait for the next change or their timeout).
 * Known limit: evq reads magic, flags and counts with plain loads.  When
 * another process truncates a shared file, a load of the vanished page
 * raises SIGBUS (the kernel's rule for MAP_SHARED), in a direct call or in
 * the queue's helper thread alike; evq reports the page as EVQ_ERR only
 * where the kernel tells it first.  Unmapping a registered word breaks the
 * rule above: evq reports it when the kernel next reads the word (e.g. it
 * is re-armed), but may load it before that and crash (evq_add_word(3)
 * says when). */

/* An event when the word at addr was woken (evq_wake(), FUTEX_WAKE, or the
 * library noticed) and no longer holds `expected`; data = the value seen.
 * Without EVQ_ONESHOT the registration then waits for the word to move
 * away from the value seen, so each change is reported (changes while an
 * event is pending coalesce: data is the latest value).  With EVQ_ONESHOT
 * it fires once; evq_mod_word() re-arms it.  flags: EVQ_SHARED,
 * EVQ_ONESHOT, EVQ_DISABLED.  ident in the event: -1.  A word the kernel
 * cannot read delivers one EVQ_ERR event (see "Hostile memory" above).
 * Errors: -EINVAL (NULL q, NULL or misaligned addr, bad flags), -ENOMEM,
 * -EAGAIN (helper thread could not be started), -ENOSPC, -ENOSYS (epoll
 * backend on a kernel without futex_waitv, before Linux 5.16). */
int64_t evq_add_word(struct evq *q, uint32_t *addr, uint32_t expected,
		 uint32_t flags, uint64_t cookie);

/* Re-arms word registration id: wait again until the word no longer holds
 * `expected`.  flags: EVQ_ONESHOT (kept or dropped), EVQ_DISABLED;
 * EVQ_SHARED must match the registration.  An event already pending is
 * still delivered.  Errors: -ENOENT (no such live registration), -EINVAL
 * (a live id that is not a word, a bad flag, EVQ_SHARED differing), and as
 * evq_add_word(): -ENOMEM, -EAGAIN, -ENOSYS. */
int evq_mod_word(struct evq *q, int64_t id, uint32_t expected, uint32_t flags);

/* Wakes up to n (>= 1; INT_MAX for all) threads, processes or queues
 * waiting on the word at addr; no queue needed.  flags: EVQ_SHARED or 0.
 * Returns the number of waiters woken.  Async-signal-safe, preserves
 * errno.  Errors: -EINVAL (NULL/misaligned addr, n < 1, bad flags). */
int evq_wake(uint32_t *addr, int n, uint32_t flags);

/* One word of evq_waitv(). */
struct evq_waitv {
	uint32_t *addr;    /* 4-byte aligned */
	uint32_t expected; /* sleep while *addr == expected */
	uint32_t flags;    /* EVQ_SHARED or 0 */
};

#define EVQ_WAITV_MAX 128 /* words per evq_waitv() call */

/* Waits until one of the n words is woken or does not hold its expected
 * value, and returns its index (the lowest one that differs, when the
 * values already differ on entry).  timeout_ns < 0 waits forever, 0 only
 * checks, > 0 waits that long (relative, CLOCK_MONOTONIC); with
 * flags = EVQ_ABSTIME it is an absolute CLOCK_MONOTONIC time (one in the
 * past only checks).  A word woken without changing (a spurious or
 * "check again" wake) is returned too: re-check the value.
 * Errors: -EINVAL (NULL words, n < 1, a bad address or flag), -E2BIG
 * (n > EVQ_WAITV_MAX), -ETIMEDOUT, -EINTR (a signal handler ran), -ENOSYS
 * (kernel without futex_waitv, before 5.16).  Thread-safe.  A
 * cancellation point (a cancelled call passes a wake on for each word). */
int evq_waitv(const struct evq_waitv *words, int n, int64_t timeout_ns,
	      uint32_t flags);

/* A counting semaphore: plain data, place it anywhere (in shared memory
 * for EVQ_SHARED).  Fields are private; the magic field lets every call
 * detect memory that was never initialised (-EINVAL).
 *
 * If a process dies while holding tokens (acquired through any call, or
 * acquired by a queue on its behalf and not yet returned), those tokens
 * are lost: nothing gives them back, so the count stays lower for good.
 * A process that dies inside evq_sem_wait() may also take a wake-up with
 * it; other waiters then only notice a token at the next post.  (Recovery
 * of dead holders is planned, not done.)  Garbage written into it by
 * another process: see "Hostile memory" above. */
struct evq_sem {
	uint32_t magic;   /* EVQ_SEM_MAGIC once initialised */
	uint32_t flags;   /* EVQ_SHARED or 0 */
	uint32_t count;   /* tokens available; the futex word */
	uint32_t waiters; /* sleepers on count (a hint for post) */
};

#define EVQ_SEM_MAGIC 0x65736d01u /* "esm", version 1 */
#define EVQ_SEM_MAX 0x7fffffffu   /* most tokens a semaphore holds */

/* Initialises s with count tokens.  flags: EVQ_SHARED (other processes map
 * it) or 0.  Do not call while s is in use.
 * Errors: -EINVAL (NULL/misaligned s, count > EVQ_SEM_MAX, bad flags). */
int evq_sem_init(struct evq_sem *s, uint32_t count, uint32_t flags);

/* Takes one token without waiting.  -EAGAIN if none; -EINVAL (NULL,
 * misaligned or uninitialised s).  Lock-free, async-signal-safe. */
int evq_sem_trywait(struct evq_sem *s);

/* Takes one token, waiting up to timeout_ns (< 0 forever, 0 only tries).
 * A thread woken for a token always tries once more before it reports a
 * timeout or a signal, so it never leaves with a wake-up meant for it.
 * Errors: -ETIMEDOUT (also for 0 with no token), -EINTR (a signal handler
 * ran while it slept), -EINVAL (also for garbage written while it slept:
 * it takes no token from it).  A cancellation point: a cancelled sleeper
 * takes no token and passes on a wake it may have taken. */
int evq_sem_wait(struct evq_sem *s, int64_t timeout_ns);

/* Returns n >= 1 tokens and wakes at most n waiters (threads in
 * evq_sem_wait() or queues), with no system call when nobody waits.
 * Errors: -EINVAL (bad s, n < 1), -EOVERFLOW (the count would exceed
 * EVQ_SEM_MAX; nothing posted).  Lock-free, async-signal-safe, preserves
 * errno. */
int evq_sem_post(struct evq_sem *s, uint32_t n);

/* Tokens available now (a snapshot), or -EINVAL. */
int evq_sem_value(const struct evq_sem *s);

/* An event that means the caller now holds one token of s: the queue
 * takes a token only when evq_wait() hands the event to its caller (the
 * registration watches the count; when a token is free, evq_wait takes it
 * for the caller it returns the event to, and if another process or queue
 * was quicker it returns nothing for it and watches again).  So a queue
 * never holds a token nobody waits for: an idle or busy queue leaves every
 * free token to the others.  data = the tokens the event hands over: 1
 * (more only after evq_requeue() merged events).  The caller returns the
 * token with evq_sem_post() when done.  evq_del() (or evq_free()) gives
 * back only tokens given back to the queue with evq_requeue() and not
 * handed out again.
 * flags: EVQ_ONESHOT (one event, one token, then disabled until evq_mod()
 * enables it), EVQ_DISABLED (registered, watching nothing, taking nothing
 * until evq_mod() enables it); evq_mod() may set either later.
 * Garbage found later (a count above EVQ_SEM_MAX, a bad magic...): one
 * EVQ_ERR event, data = tokens it holds (given back with evq_requeue(),
 * normally 0), then nothing until evq_mod() enables it again ("Hostile
 * memory").
 * Errors: -EINVAL (NULL q, bad or uninitialised s, a count above
 * EVQ_SEM_MAX, flags other than EVQ_ONESHOT|EVQ_DISABLED), -ENOMEM,
 * -EAGAIN, -ENOSPC. */
int64_t evq_add_sem(struct evq *q, struct evq_sem *s, uint32_t flags,
		    uint64_t cookie);

/* A latch (PostgreSQL's): a flag that any thread, process or signal
 * handler sets to wake its owner; the owner waits for it and resets it.
 * Plain data, place it anywhere (shared memory for EVQ_SHARED).  Fields are
 * private; state counts the times it was set so that a set after a reset
 * is never mistaken for the one before. */
struct evq_latch {
	uint32_t magic;   /* EVQ_LATCH_MAGIC once initialised */
	uint32_t flags;   /* EVQ_SHARED or 0 */
	uint32_t state;   /* bit 0: set; bits 1..31: times set; futex word */
	uint32_t waiters; /* sleepers on state */
};

#define EVQ_LATCH_MAGIC 0x656c7401u /* "elt", version 1 */

/* Initialises l, not set.  flags: EVQ_SHARED or 0.
 * Errors: -EINVAL (NULL/misaligned l, bad flags). */
int evq_latch_init(struct evq_latch *l, uint32_t flags);

/* Sets l and wakes everything waiting for it.  Setting a latch that is
 * already set makes no system call, nor does setting one nobody waits
 * for.  Async-signal-safe, lock-free, preserves errno; callable from any
 * thread or process.  Errors: -EINVAL (bad or uninitialised l). */
int evq_latch_set(struct evq_latch *l);

/* Sets n latches (n >= 0), waking each one's waiters; latches already set
 * cost nothing.  When 8 or more have waiters ($EVQ_LATCH_BATCH), their
 * wakes go to the kernel in one io_uring_enter (one IORING_OP_FUTEX_WAKE
 * each, up to 64) through a small per-process io_uring; fewer wakes, or no
 * such ring, or the ring busy (another thread, or the call a signal
 * handler interrupted), and they are woken two per system call
 * (FUTEX_WAKE_OP pairs latches of the same sharing).  Every waiter has been
 * woken when it returns.  Every latch is checked before any is set: -EINVAL
 * (NULL array or a bad latch) sets none.  Async-signal-safe, preserves
 * errno. */
int evq_latch_set_many(struct evq_latch *const *latches, int n);

/* Clears l (the owner does this before checking for work, then waits).
 * Errors: -EINVAL.  Async-signal-safe. */
int evq_latch_reset(struct evq_latch *l);

/* 1 if l is set, 0 if not, -EINVAL. */
int evq_latch_is_set(const struct evq_latch *l);

/* Waits until l is set (returns at once if it is; does not reset it).
 * timeout_ns < 0 forever, 0 only checks.  Returns 0, -ETIMEDOUT, -EINTR
 * (a signal handler ran), -EINVAL (also for garbage written while it
 * slept, even with the set bit on).  A cancellation point. */
int evq_latch_wait(struct evq_latch *l, int64_t timeout_ns);

/* An event each time l becomes set (data = 1; sets while an event is
 * pending coalesce).  A latch set when registered fires at once.  A latch
 * that stays set fires once: reset it, and the next set fires again.
 * evq_mod() may set EVQ_ONESHOT or EVQ_DISABLED.  Garbage found later: one
 * EVQ_ERR event (data 0, or 1 if a set was still pending), then nothing
 * until evq_mod() enables it again ("Hostile memory" above).
 * flags: EVQ_ONESHOT (one event, then disabled until evq_mod()),
 * EVQ_DISABLED (registered, not watching until evq_mod() enables it).
 * Errors: -EINVAL (also flags other than EVQ_ONESHOT|EVQ_DISABLED),
 * -ENOMEM, -EAGAIN, -ENOSPC. */
int64_t evq_add_latch(struct evq *q, struct evq_latch *l, uint32_t flags,
		      uint64_t cookie);

/* ------------------------------------------------------------------ */
/* Signals, processes, sigevent                                         */
/* ------------------------------------------------------------------ */

/* A signal as an event, synchronously (signalfd) instead of in a handler.
 * signo: 1..SIGRTMAX except SIGKILL, SIGSTOP, the faults (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGTRAP, SIGSYS: the faulting thread must handle them at
 * once) and the C library's own (32 and 33 on glibc), else -EINVAL.  One
 * registration per signal per process: a second one, in any queue, gets
 * -EBUSY (so does SIGRTMAX once evq_sigevent() reserved it).
 *
 * The call blocks signo in the calling thread and installs evq's handler,
 * saving the old disposition.  THE RULE every signalfd user must know:
 * block signo in every thread (pthread_sigmask() in main() before creating
 * threads), because the kernel gives a process-directed signal to any
 * thread that has it unblocked.  If a thread has not, evq's handler still
 * posts the signal into the queue, but interrupts that thread: nothing is
 * lost, and the old disposition never runs while registered.
 *
 * Event: kind EVQ_KIND_SIGNAL, ident = signo, events = pid of the sender of
 * the last signal counted (0 for the kernel's own; the child for SIGCHLD),
 * data = count | (uint64_t)value << 32 where count (low 32 bits, >= 1) is
 * the number of signals since the last event (standard signals merge in
 * the kernel while pending; real-time ones queue and each counts) and value
 * is si_value.sival_int of the last one if it carried one (sigqueue(),
 * timers, mq_notify, AIO), else 0: for kill() and kernel signals,
 * data == count.  evq_mod() may set EVQ_ONESHOT or EVQ_DISABLED (while
 * disabled, signals stay pending in the kernel).
 *
 * evq_del()/evq_free() discard instances still pending (for the process and
 * the calling thread), restore the disposition, and unblock signo if it was
 * unblocked before - in the registering thread only: a thread cannot change
 * another's mask, so elsewhere it stays blocked there.  A forked child
 * may register anew, in a queue of its own, a signal its parent registered.
 * Errors: -EINVAL, -EBUSY, -ENOMEM, -EMFILE/-ENFILE, -ENOSPC, -ECHILD.
 * Changes process-wide signal state: not async-signal-safe. */
int64_t evq_add_signal(struct evq *q, int signo, uint64_t cookie);

/* data of an EVQ_KIND_PID event whose exit status is unknown (not the
 * caller's child, or reaped by someone else first).  No waitpid() status
 * looks like it: WIFEXITED() and WIFSIGNALED() are false for (int)data. */
#define EVQ_PID_NOSTATUS UINT64_MAX

/* The exit of process pid, without the pid-reuse race: a pidfd (Linux 5.3)
 * names the process, not the number.  Any process the caller can see,
 * child or not - e.g. PostgreSQL's "postmaster died":
 * evq_add_pid(q, parent, 0, c) then check getppid() == parent, as the
 * parent may have died before the call.
 * The exit is one occurrence, delivered once; the registration then stays
 * silent until evq_del().  Event: kind EVQ_KIND_PID, ident = pid, events 0,
 * data = for a child, its status as waitpid() stores it (WIFEXITED(),
 * WEXITSTATUS(), WIFSIGNALED(), WTERMSIG() work on (int)data), and the
 * child is reaped unless flags has EVQ_NOREAP; EVQ_PID_NOSTATUS for any
 * other process, or a child reaped elsewhere first (a waitpid(-1) loop,
 * SIGCHLD set to SIG_IGN).  An exited, unreaped child fires at once.
 * flags: EVQ_NOREAP, EVQ_DISABLED, EVQ_ONESHOT (no effect: once anyway).
 * Errors: -EINVAL (pid <= 0, bad flags, a thread id that is not a
 * process's), -ESRCH (no such process: exited and reaped, or never was),
 * -ENOSYS (no pidfd), -ENOMEM, -EMFILE/-ENFILE, -ENOSPC, -ECHILD. */
int64_t evq_add_pid(struct evq *q, pid_t pid, uint32_t flags, uint64_t cookie);

/* Fills *sev so that timer_create(), POSIX AIO (aio_read(), aio_write(),
 * lio_listio()) and mq_notify() deliver into q, and returns the id of the
 * new registration (one per sigevent: per timer, per aiocb, per
 * mq_notify() call).  evq_del() it once the timer/request is gone; a
 * notification for a deleted registration is dropped.
 *
 * Mechanism: SIGEV_SIGNAL with SIGRTMAX, which evq reserves from the first
 * call on, for the life of the process, and si_value = a token naming the
 * registration (do not change the filled fields).  SIGEV_THREAD was
 * rejected: glibc creates a thread per notification and loses timer
 * overruns.  The rule of evq_add_signal() applies: block SIGRTMAX in every
 * thread (this call blocks it in the calling one); a thread that did not
 * is interrupted by evq's handler, which forwards the notification.  One
 * signal serves all queues: each queue with sigevent registrations watches
 * it and forwards what it reads to the queue the token names.
 *
 * Event: kind EVQ_KIND_SIGEVENT, ident -1, events 0, data = notifications
 * since the last event (a timer's overruns count, as the kernel counts them
 * for the timer (timer_getoverrun()): data = expirations).
 * evq_mod() may set EVQ_ONESHOT or EVQ_DISABLED (notifications are kept).
 *
 * Other processes: any process allowed to signal us can send SIGRTMAX with
 * any si_code < 0, si_value and si_overrun, so the token holds 44 random
 * bits (getrandom(); 12 on 32-bit systems), only SI_TIMER, SI_MESGQ and SI_ASYNCIO count (a
 * kill() or sigqueue() of SIGRTMAX fires nothing, even with a valid token),
 * and a timer's overruns never exceed the kernel's count.  A same-user
 * process that may read /proc/PID/timers sees the timers' tokens there
 * (prctl(PR_SET_DUMPABLE, 0) hides them) and can add notifications.
 * Full signal queue: the kernel queues RLIMIT_SIGPENDING signals per real
 * user and drops AIO and mq_notify() notifications beyond that: no event
 * (glibc marks such an AIO request failed, EAGAIN); a timer's signal is
 * allocated by timer_create() and never dropped.  This call fails with
 * -EAGAIN when the queue is full at the call.
 * Lossless instead: evq_add_fd() on the mqd, io_uring for I/O.
 *
 * Errors: -EINVAL (NULL), -EAGAIN (real-time signal queue full), -EBUSY
 * (SIGRTMAX registered with evq_add_signal(), or the program installed a
 * handler or SIG_IGN for it), -ENOMEM, -ENOSPC, -EMFILE/-ENFILE, -ECHILD.
 * Not async-signal-safe. */
int64_t evq_sigevent(struct evq *q, uint64_t cookie, struct sigevent *sev);

/* POSIX message queues need no function of their own: on Linux an mqd_t is
 * a file descriptor, so evq_add_fd(q, mqd, EVQ_READ|EVQ_WRITE, flags, c)
 * reports EVQ_READ while a message can be received and EVQ_WRITE while the
 * queue is not full.  Open it with O_NONBLOCK: another thread may take the
 * message first.  For mq_notify(), see evq_sigevent(). */

/* ------------------------------------------------------------------ */
/* Event masks (gVisor syncevent) */
/* ------------------------------------------------------------------ */

/* A set of up to 64 events, one per bit.  Bits are assigned by the program
 * in the layout below; a notifier sets bits, a receiver accumulates them
 * until its owner acknowledges them.  Many sources can share one receiver
 * (a thread waits for any of them in O(1)), and one broadcaster notifies
 * any number of receivers without allocating.
 *
 * Functions returning an evq_mask_t cannot return a negative errno: they
 * return 0 for bad input instead (0 is never a successful result of
 * evq_waiter_wait(); for pending/ack it also means "nothing"). */
typedef uint64_t evq_mask_t;

/* Bit layout (the seed's): the top two bits are global, the low 16 bits
 * are the source's own, bits 16..61 are the application's.
 *   EVQ_MASK_TIMEOUT    bit 63: a wait timed out (evq_waiter_wait returns
 *                       it; a timer source may also notify it)
 *   EVQ_MASK_INTERRUPT  bit 62: "stop waiting" (e.g. notified from a signal
 *                       handler; evq_waiter_wait never returns because of
 *                       a signal otherwise)
 *   EVQ_MASK_SOURCE     bits 0..15: what the source reports; for
 *                       readiness, the same values as EVQ_READ/EVQ_WRITE/
 *                       EVQ_ERR/EVQ_HUP/EVQ_PRI (EVQ_MASK_READ ==
 *                       EVQ_READ, ...)
 *   EVQ_MASK_APP        bits 16..61: free for the application; bit n of
 *                       them is EVQ_MASK_APP_BIT(n), 0 <= n < 46 */
#define EVQ_MASK_TIMEOUT   ((evq_mask_t)1 << 63)
#define EVQ_MASK_INTERRUPT ((evq_mask_t)1 << 62)
#define EVQ_MASK_RESERVED  (EVQ_MASK_TIMEOUT | EVQ_MASK_INTERRUPT)
#define EVQ_MASK_SOURCE    ((evq_mask_t)0xffff)
#define EVQ_MASK_APP       (~(EVQ_MASK_RESERVED | EVQ_MASK_SOURCE))
#define EVQ_MASK_APP_BIT(n) ((evq_mask_t)1 << (16 + (n)))
#define EVQ_MASK_READ      ((evq_mask_t)EVQ_READ)
#define EVQ_MASK_WRITE     ((evq_mask_t)EVQ_WRITE)
#define EVQ_MASK_ERR       ((evq_mask_t)EVQ_ERR)
#define EVQ_MASK_HUP       ((evq_mask_t)EVQ_HUP)
#define EVQ_MASK_PRI       ((evq_mask_t)EVQ_PRI)

/* Readiness (EVQ_READ|EVQ_WRITE|EVQ_PRI|EVQ_ERR|EVQ_HUP, evq_event.events)
 * as source bits, and back: the mapping is the identity on bits 0..15. */
static inline evq_mask_t evq_mask_from_events(uint32_t events)
{
	return (evq_mask_t)events & EVQ_MASK_SOURCE;
}
static inline uint32_t evq_mask_to_events(evq_mask_t bits)
{
	return (uint32_t)(bits & EVQ_MASK_SOURCE);
}

struct evq_receiver;

/* A receiver's callback: runs on the notifier's thread, inside
 * evq_receiver_notify() or evq_bcast_notify(), with the bits that just
 * became pending (never 0).  It may call evq_receiver_pending/ack on r and
 * notify receivers and broadcasters; it should be short and must not
 * block.  It must not subscribe to or unsubscribe from a broadcaster that
 * is notifying it, nor evq_add_mask()/evq_del() a mask registration of
 * one, nor take the lock of a queue subscribed to one (evq_mod, evq_wait,
 * evq_add_*...): those may wait for this notify to finish (deadlock). */
typedef void evq_receiver_fn(struct evq_receiver *r, evq_mask_t bits,
			     void *arg);

/* A receiver: the bits notified and not yet acknowledged, and an optional
 * callback.  Plain data; fields are private (pending is accessed
 * atomically).  Must stay valid while subscribed to a broadcaster. */
struct evq_receiver {
	evq_mask_t pending;        /* bits notified, not acknowledged */
	evq_receiver_fn *callback; /* NULL: none */
	void *arg;                 /* the callback's */
	uint32_t magic;            /* EVQ_RECEIVER_MAGIC once initialised */
	uint32_t reserved;
};

#define EVQ_RECEIVER_MAGIC 0x65726301u /* "erc", version 1 */

/* Initialises r with nothing pending.  fn (may be NULL) runs whenever a
 * notify makes bits pending that were not (the owner acknowledges bits to
 * hear about them again).  Do not call while r is in use.
 * Errors: -EINVAL (NULL r). */
int evq_receiver_init(struct evq_receiver *r, evq_receiver_fn *fn, void *arg);

/* Makes bits pending on r.  If some of them were not pending, runs r's
 * callback with those (for a waiter: wakes it if it sleeps).  Notifying
 * bits that are all pending already costs one atomic load.  Returns 1 if
 * bits became pending, 0 if all were already, -EINVAL (NULL or
 * uninitialised r, bits == 0).  Lock-free; thread-safe; async-signal-safe
 * if the callback is (a waiter's is), preserves errno. */
int evq_receiver_notify(struct evq_receiver *r, evq_mask_t bits);

/* The bits pending on r now (a snapshot); 0 for NULL r.  Lock-free,
 * thread-safe, async-signal-safe. */
evq_mask_t evq_receiver_pending(const struct evq_receiver *r);

/* Clears bits on r and returns those of them that were pending (pass
 * ~(evq_mask_t)0 to take everything); the next notify of a cleared bit
 * runs the callback / wakes the waiter again.  0 for NULL r.  Lock-free,
 * thread-safe, async-signal-safe. */
evq_mask_t evq_receiver_ack(struct evq_receiver *r, evq_mask_t bits);

/* A receiver one thread sleeps on.  Notify it (or subscribe
 * &w->receiver to broadcasters) like any receiver; read and clear its bits
 * with evq_receiver_pending/ack(&w->receiver, ...).  Plain data, no
 * resources: nothing to destroy. */
struct evq_waiter {
	struct evq_receiver receiver; /* its callback is the library's */
	uint32_t state;               /* private: futex word */
	uint32_t reserved;
};

/* Initialises w with nothing pending.  Errors: -EINVAL (NULL w). */
int evq_waiter_init(struct evq_waiter *w);

/* Waits until one of bits is pending on w and returns the pending subset
 * of bits (without clearing it: evq_receiver_ack() does).  Returns at once,
 * with no system call, if one is pending already.  timeout_ns < 0 waits
 * forever, 0 only checks, > 0 waits that many ns (CLOCK_MONOTONIC); on
 * timeout returns EVQ_MASK_TIMEOUT.  Signals do not end the wait: a
 * handler that wants it to end notifies EVQ_MASK_INTERRUPT (include it in
 * bits).  Returns 0 for bad input (NULL or uninitialised w, bits == 0).
 * One thread at a time may wait on a given waiter; any thread may notify
 * it.  A cancellation point (pthread_cancel).  Not async-signal-safe (it
 * may sleep). */
evq_mask_t evq_waiter_wait(struct evq_waiter *w, evq_mask_t bits,
			   int64_t timeout_ns);

/* A broadcaster: a set of (receiver, mask) subscriptions.  Plain data;
 * fields are private.  Notifying takes no lock and allocates nothing;
 * subscribing allocates (grows a table) only when it is full. */
struct evq_bcast {
	void *table;        /* private: current subscription table */
	void *retired;      /* private: older tables, freed after a grace */
	uint32_t lock;      /* private: serialises subscribe/unsubscribe */
	uint32_t phase;     /* private: notifier epoch */
	uint32_t active[2]; /* private: notifiers inside, per epoch */
	uint32_t magic;     /* EVQ_BCAST_MAGIC once initialised */
	uint32_t count;     /* subscriptions */
};

#define EVQ_BCAST_MAGIC 0x65626301u /* "ebc", version 1 */

/* Initialises b with no subscriptions.  Errors: -EINVAL (NULL b). */
int evq_bcast_init(struct evq_bcast *b);

/* Frees b's memory.  Subscriptions left are dropped (their receivers are
 * not touched).  No other thread may use b during or after the call.
 * NULL or uninitialised b is ignored. */
void evq_bcast_destroy(struct evq_bcast *b);

/* Subscribes r to the bits of mask: every later evq_bcast_notify(b, bits)
 * with bits & mask != 0 notifies r with bits & mask.  Returns an id >= 0
 * for evq_bcast_unsubscribe(), an int64_t like a registration id (>= 2^32,
 * never handed out twice by b: a stale id gets -ENOENT).  One receiver may be subscribed
 * to many broadcasters, and more than once to one.  O(1) amortized.
 * Errors: -EINVAL (NULL or uninitialised b or r, mask == 0), -ENOMEM,
 * -ENOSPC (2^24 subscriptions).  Thread-safe; not async-signal-safe. */
int64_t evq_bcast_subscribe(struct evq_bcast *b, struct evq_receiver *r,
			    evq_mask_t mask);

/* Removes subscription id.  When it returns, no notify of b is still
 * touching the receiver (it waits for notifies already running), so the
 * receiver may be freed.  Errors: -EINVAL (NULL or uninitialised b),
 * -ENOENT (unknown id, or unsubscribed already).  Thread-safe; must not be
 * called from a callback of a notify of b (nor may subscribe); not
 * async-signal-safe. */
int evq_bcast_unsubscribe(struct evq_bcast *b, int64_t id);

/* Notifies every receiver subscribed to b whose mask intersects bits with
 * bits & mask; callbacks run on this thread.  Returns 0 or -EINVAL (NULL or
 * uninitialised b, bits == 0).  Lock-free and allocation-free (waits for
 * nothing); concurrent notifies, subscribes and unsubscribes are safe; a
 * receiver subscribed during the whole call is notified.  Async-signal-
 * safe if the receivers' callbacks are (waiters' and queues' are). */
int evq_bcast_notify(struct evq_bcast *b, evq_mask_t bits);

/* Subscribes queue q to b: evq_bcast_notify(b, bits) with bits & mask != 0
 * produces an event with kind EVQ_KIND_MASK, ident -1, events 0 and data =
 * the bits notified (& mask) since the last delivery: notifies coalesce
 * while the event is pending (bits OR together).  evq_mod() may set
 * EVQ_ONESHOT or EVQ_DISABLED (bits notified meanwhile are kept);
 * evq_del() unsubscribes.  b must outlive the registration (evq_del() or
 * evq_free() first, then evq_bcast_destroy()).
 * Errors: -EINVAL (NULL q, NULL or uninitialised b, mask == 0), -ENOMEM,
 * -ENOSPC, -ECHILD. */
int64_t evq_add_mask(struct evq *q, struct evq_bcast *b, evq_mask_t mask,
		 uint64_t cookie);

#ifdef __cplusplus
}
#endif

#endif /* EVQ_H */
