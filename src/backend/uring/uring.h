/* SPDX-License-Identifier: MIT */
/*
 * uring.h - the io_uring backend's private header: its design, its state
 * and the functions its files share (evq__ur_*).  The backend runs on raw
 * system calls (no liburing).
 *
 * Files (one job each):
 *   ring.c, ring.h  the raw ring: setup, mmap, SQE get/push, probes
 *                   (shared with the wake ring, core/wakering.c)
 *   requests.c      the queue's requests: EPOLL_WAIT slots, cancels,
 *                   NOPs, reaping completions, leave()
 *   wait.c          wait() and wake(): leader and followers, the bell
 *                   (model/leader.pml)
 *   inline.c        the inline futex_waitv sleep (model/inline.pml)
 *   words.c         native word waits (model/word.pml, model/inline.pml)
 *   init.c          init, fini, fd_ctl, the probes, evq__backend_uring
 *
 * Design: the ring is where the waiter sleeps; fd readiness comes from a
 * private epoll set that the ring waits on with IORING_OP_EPOLL_WAIT (kernel
 * 6.15).  Why not one IORING_OP_POLL_ADD per fd: an io_uring poll pins the
 * file it polls, and re-arming by number follows the number, not the file.
 * evq promises epoll's rules exactly (a closed fd goes silent and its file is
 * released; a reused number registers anew; -EEXIST for the same (file, fd))
 * and io_uring cannot tell from user space whether number N still names the
 * polled file without a system call per event.  The epoll set gets all of
 * that right by construction, and level/edge/oneshot are epoll's own.
 *
 * While fds are registered, a sleeping wait() submits an EPOLL_WAIT
 * (events land in a slot's buffer) linked to a LINK_TIMEOUT of its
 * timeout, and sleeps for a completion in the same io_uring_enter, the
 * signal mask passed through IORING_ENTER_EXT_ARG: one system call per
 * wait, as with epoll_pwait2.  With no fd registered there is no
 * EPOLL_WAIT at all, and unless the caller passes a sigmask (or another
 * thread sleeps in the ring) no ring either: the waiter sleeps in
 * futex_waitv on the queue's words and bell (see "Inline sleep" in
 * inline.c); a sigmask caller's ring sleeps on its futex requests and the
 * enter's own timeout.  A wait with timeout 0 is a plain epoll_pwait2(0)
 * on the set (an EPOLL_WAIT finding nothing would stay armed), skipped
 * when there are no fds.  Level-triggered fds are re-reported by epoll
 * itself on the next EPOLL_WAIT, exactly as by epoll_wait.
 *
 * wake() (evq_trigger, posts from other threads) uses no eventfd: it
 * rings "the bell", a futex word in the backend's state on which the ring
 * sleeper keeps an IORING_OP_FUTEX_WAIT (see evq__ur_ring_bell).  The issue
 * offered IORING_OP_MSG_RING too; it was not taken because it needs a
 * ring on the sending side (a lock or a ring per thread), which
 * evq_trigger, lock-free and async-signal-safe, cannot have, while a
 * FUTEX_WAKE is one system call from anywhere.  The bell costs one futex
 * wake per wake() that finds a ring sleeper, and none otherwise.
 *
 * No EPOLL_WAIT outlives the wait() that submitted it (the LINK_TIMEOUT or
 * an explicit cancel ends it): epoll events are taken from the kernel only
 * while someone waits, as with epoll_wait, and a request never depends on
 * a thread that left (a completion runs as task work of the submitting
 * thread).  One thread at a time sleeps in the ring (the leader); other
 * waiters sleep on a futex word as followers (see "Leader and followers"
 * in wait.c, checked by model/leader.pml), because a completion wakes
 * every thread asleep in the ring.  Callers passing a sigmask sleep in the
 * ring all the same (the ring swaps the mask atomically); such threads
 * each arm their own request unless enough are in flight, and one leaving
 * with work or a missing request for the others ends one sleep per missing
 * request with a NOP.
 *
 * io_uring_enter hides the wait's error (-EINTR, -ETIME) when it also
 * submitted something: then an empty completion queue with time left (and
 * nobody else having reaped in between) can only mean a signal, and is
 * reported as -EINTR.
 *
 * Locking: s->lock guards the SQ, the CQ, the slots and the counters; it
 * is never held across the sleep, so fd_ctl() (epoll_ctl, no ring access)
 * and other waiters run concurrently.
 *
 * CQ overflow: the kernel keeps what does not fit (IORING_FEAT_NODROP, which
 * init requires) and the reaper flushes that backlog whenever
 * IORING_SQ_CQ_OVERFLOW is set; -EBUSY/-EAGAIN from a submitting enter
 * leave the SQEs queued for the next enter.  Nothing is lost either way
 * (tests/uring.c provokes both on a ring of 1 SQE / 2 CQEs).
 *
 * Words: word and latch registrations wait natively, in the inline
 * futex_waitv sleep or with one IORING_OP_FUTEX_WAIT each in the ring (see
 * words.c; -DEVQ_URING_NATIVE_WORDS=0 sends them to the futex
 * watcher thread as on epoll).  Semaphores always use the watcher
 * (their kind lacks EVQ__KIND_NATIVE_WORDS: core/watch.c).
 *
 * Refusal (AUTO then falls back to epoll), in init: io_uring_setup failing
 * (seccomp, /proc/sys/kernel/io_uring_disabled, old kernel), a missing
 * feature (EXT_ARG, NODROP) or op (EPOLL_WAIT, checked with
 * IORING_REGISTER_PROBE).  For tests, EVQ_URING_REFUSE=setup|disabled|feat|op
 * forces one, EVQ_URING_ENTRIES=n sizes the ring, EVQ_URING_FAULT=busy|again
 * makes every other submitting enter fail once.  EVQ_DEBUG=1 prints the
 * outcome to stderr.
 */
#ifndef EVQ_URING_H
#define EVQ_URING_H

#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "futex.h"
#include "internal.h"
#include "core/watch.h"
#include "backend/uring/ring.h"

/* user_data: EPOLL_WAIT requests are 1..MAX_SLOTS (their slot + 1) */
#define UD_CANCEL 100  /* an ASYNC_CANCEL */
#define UD_NUDGE 101   /* a NOP that ends one sleep on the CQ */
#define UD_LTIMEOUT 102 /* a LINK_TIMEOUT bounding an EPOLL_WAIT */
#define UD_BELL 103     /* the FUTEX_WAIT on s->bell (wake(), fd adds) */
#define ENTRIES_DEFAULT 8
#define MAX_SLOTS 8    /* EPOLL_WAITs in flight: one per sleeping thread */

#define UD_WORD_MIN 4096 /* user_data at or above: a struct uword * */

/* "Forever" for the sleeps that need a deadline: FUTEX_WAIT with a
 * timeout fails with -EINTR after a signal handler ran (without one the
 * kernel restarts it under SA_RESTART), as epoll_wait and io_uring_enter
 * do, so the followers and the inline bell sleep always pass one.  A day
 * is beyond any real sleep; should it pass, the sleep ends like a
 * spurious wakeup (an empty round) and the core waits again. */
#define UR_FOREVER_NS ((int64_t)86400 * 1000000000)
/* A ring sleep that something could not be armed for (the bell, a word,
 * an EPOLL_WAIT: the kernel kept refusing submissions, or no buffer) lasts
 * at most this long, so that the core asks again soon (1 ms). */
#define UR_SHORT_NS ((int64_t)1000000)
/* The enter's own timeout runs this much past an EPOLL_WAIT's
 * LINK_TIMEOUT, which ends the sleep on time; the enter's only guards
 * against another thread having reaped that completion (1 ms). */
#define UR_GUARD_NS ((int64_t)1000000)
/* sqe_get_flush: enters that hand queued SQEs to the kernel before giving
 * up on a full SQ (a refusing kernel: -EBUSY/-EAGAIN). */
#define UR_FLUSH_TRIES 4
/* fini: rounds of cancel-and-wait for the EPOLL_WAITs in flight, each
 * waiting up to UR_DRAIN_WAIT_NS for a completion (half a second in all). */
#define UR_DRAIN_TRIES 50
#define UR_DRAIN_WAIT_NS (10 * 1000000)

/* One EPOLL_WAIT and the buffer the kernel fills.  The buffer belongs to
 * the kernel while inflight, to whoever holds s->lock otherwise. */
struct slot {
	int inflight;
	int cancelling;         /* an ASYNC_CANCEL for it was sent */
	pthread_t owner;        /* the thread that submitted it */
	struct __kernel_timespec ts; /* its LINK_TIMEOUT, read at submission */
	int pos, count;         /* buf[pos..count) harvested, not returned yet */
	struct epoll_event *buf;
};

/* Where a word record is; exactly one at a time, all under s->lock.  Who
 * watches the word in each state, and the moves (words.c, inline.c,
 * requests.c; the steps of model/word.pml and model/inline.pml):
 *
 *   state      on list    the word is watched by     moves to
 *   UW_IDLE    none       nobody                     LOOSE: make_loose (word_arm
 *                                                    O1, a check() that keeps
 *                                                    watching, an unchanged word
 *                                                    after a sleep or a poll, a
 *                                                    full SQ); freed once
 *                                                    detached (it == NULL)
 *   UW_LOOSE   s->loose   nobody yet: armed, for     RING: queue_loose (a ring
 *                         the next sleeper           sleeper takes it); INLINE:
 *                                                    the inline vector (IN2);
 *                                                    DONE: a poll saw it change;
 *                                                    IDLE: taken off, detached
 *   UW_RING    (kernel)   its FUTEX_WAIT in the      DONE: its completion
 *                         ring (user_data = w)       (on_cqe, X3)
 *   UW_INLINE  (vector)   the inline sleeper's       DONE: woken or changed;
 *                         futex_waitv                IDLE -> LOOSE: unchanged
 *                                                    (IN3)
 *   UW_DONE    s->done    nobody: res waits for      REARM: a check() posted,
 *                         process_words's check()    nobody sleeps (deferred
 *                                                    re-queue); LOOSE: check()
 *                                                    keeps watching; IDLE:
 *                                                    stopped or detached
 *   UW_REARM   s->rearm   nobody: re-checked by      LOOSE: check() keeps
 *                         the next wait() first      watching; IDLE: stopped
 *                                                    or detached
 *
 * A record is taken off its list (state IDLE) before it moves on, so
 * make_loose only ever moves an idle one.  Detaching (it = NULL, O2/O3)
 * changes no state: a record in the ring is cancelled, one inline waits
 * for IN3, one on a list is freed when the list is next walked. */
enum uword_state { UW_IDLE, UW_LOOSE, UW_RING, UW_INLINE, UW_DONE, UW_REARM };

/* One IORING_OP_FUTEX_WAIT for a word, semaphore or latch registration.
 * Its address is the request's user_data, so it lives until its
 * completion has been processed, even after the registration let go. */
struct uword {
	struct uword *next_all;      /* every record of the queue, for fini */
	struct evq__watch_item *it;  /* NULL once detached */
	uint32_t *addr;
	int shared;
	struct uword *next;          /* on s->loose, s->done or s->rearm
				      * (one at a time: see state) */
	uint32_t expected;           /* it->expected as of the last arm or
				      * check(), for sleepers holding only
				      * s->lock */
	enum uword_state state;      /* see above */
	int res;                     /* UW_DONE: the wait's result */
};

struct uring_state {
	struct evq__ring r;
	pthread_mutex_t lock;   /* SQ, CQ, the slots, sleepers */
	int epfd;
	pid_t owner;            /* a forked child must not submit on our ring */
	_Atomic int sleepers;   /* threads inside the enter of wait() (locked
				 * writes; wake() reads it) */
	_Atomic int nfollow;    /* followers: threads asleep on fword */
	_Atomic int wpend;      /* a wake() not consumed yet */
	_Atomic int nfds;       /* fd registrations (over-estimate: safe) */
	uint32_t fword;         /* the followers' futex word (__atomic ops) */
	uint32_t bell;          /* the ring sleepers' futex word (__atomic) */
	int bell_armed;         /* a FUTEX_WAIT on bell is in flight */
	int inflight;           /* slots in flight */
	int filled;             /* slots holding events not handed out */
	int cancelling;         /* of which being cancelled */
	int err;                /* a failed EPOLL_WAIT, reported once */
	unsigned reaped;        /* completions reaped so far (EINTR inference) */
	int fault;              /* test fault injection: 0, -EBUSY, -EAGAIN */
	unsigned overflows;     /* kernel CQ overflow backlogs flushed */
	unsigned submit_errors; /* -EBUSY/-EAGAIN from a submitting enter */
	unsigned cancels;       /* EPOLL_WAITs a leaving thread had to cancel */
	_Atomic unsigned fault_tick;
	int bufsize;
	int hot;                /* the last wait() handed out fd events:
				 * the next polls before it sleeps (wait.c,
				 * poll_first) */
	struct slot slot[MAX_SLOTS];
	struct uword **wmap;    /* registration slot -> current record */
	uint32_t wmap_len;
	struct uword *words;    /* all records */
	struct uword *done;     /* completions to process (LIFO) */
	struct uword *rearm;    /* words to re-check and re-queue (LIFO) */
	struct uword *loose;    /* armed words nobody watches yet (LIFO) */
	int nloose;             /* their number (over-estimate: safe) */
	int nring;              /* word FUTEX_WAITs in flight in the ring */
	/* The inline sleep (see "Inline sleep", inline.c) */
	int inline_ok;          /* futex_waitv exists and EVQ_URING_INLINE */
	int inline_fail;        /* futex_waitv refused the vector: ring */
	int inl;                /* a thread sleeps inline (counts in sleepers) */
	unsigned inl_gen;       /* inline sleeps ended so far */
	int inl_waiters;        /* word_disarm()s waiting for one to end */
	pthread_cond_t inl_cv;  /* ... signalled on s->lock */
};

static inline struct uring_state *st(struct evq *q) { return q->be; }

/* Threads asleep in the ring (an inline sleeper counts in sleepers too,
 * so that others follow it).  Locked. */
static inline int ring_sleepers(struct uring_state *s)
{
	return atomic_load(&s->sleepers) - s->inl;
}

/* A thread cancelled in one of wait()'s sleeps (evq_wait(3)
 * CANCELLATION): the handler undoes what that sleep registered, treats
 * the sleep as woken (it may have consumed a wake: passing one on costs a
 * spurious wakeup at most), and leaves as any wait() does, handing the
 * ring or its completions to the others.  Runs without s->lock. */
enum { SLEPT_FOLLOWER, SLEPT_INLINE, SLEPT_RING };

struct ur_sleep {
	struct uring_state *s;
	int where;                 /* SLEPT_* */
	int rc;                    /* what the system call returned */
	struct futex_waitv *vec;   /* SLEPT_INLINE: the vector ... */
	struct uword **vw;         /* ... its words */
	unsigned n;                /* ... and their number */
};

/* requests.c */
int evq__ur_enter(struct uring_state *s, unsigned to_submit, unsigned min_complete,
		  unsigned flags, const void *arg, size_t argsz);
struct io_uring_sqe *evq__ur_sqe_get_flush(struct uring_state *s);
int evq__ur_reap(struct uring_state *s);
int evq__ur_take_slot(struct slot *sl, struct evq__ready *out, int max);
int evq__ur_take(struct uring_state *s, struct evq__ready *out, int max);
size_t evq__ur_buf_len(const struct uring_state *s);
int evq__ur_arm_one(struct uring_state *s, int max, int64_t timeout_ns);
void evq__ur_queue_cancels(struct uring_state *s);
void evq__ur_leave(struct uring_state *s);

/* wait.c */
int evq__ur_leftovers(struct uring_state *s);
void evq__ur_wake_follower(struct uring_state *s);
void evq__ur_ring_bell(struct uring_state *s);
void evq__ur_arm_bell(struct uring_state *s, uint32_t seen);
void evq__ur_pass_lead(struct uring_state *s);
void evq__ur_cancelled(void *arg);
int evq__ur_wait(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		 struct evq__ready *out, int max, struct evq__round *round);
void evq__ur_wake(struct evq *q);

/* inline.c */
int evq__ur_inline_fits(struct uring_state *s);
void evq__ur_cancel_ring_words(struct uring_state *s);
int evq__ur_sleep_inline(struct uring_state *s, int64_t t, int *rc);
void evq__ur_inline_end(struct uring_state *s, const struct futex_waitv *vec,
			struct uword *const *vw, unsigned n, int rc);

/* words.c */
void evq__ur_collect_word(struct uring_state *s, struct uword *w, int res);
void evq__ur_word_free_if_done(struct uring_state *s, struct uword *w);
void evq__ur_make_loose(struct uring_state *s, struct uword *w);
struct uword *evq__ur_take_loose(struct uring_state *s);
struct uword *evq__ur_pop_loose(struct uring_state *s, struct uword **list);
void evq__ur_queue_loose(struct uring_state *s);
int evq__ur_cancel_word(struct uring_state *s, struct uword *w);
int evq__ur_word_arm(struct evq *q, struct evq__reg *r);
void evq__ur_word_disarm(struct evq *q, struct evq__reg *r);
void evq__ur_process_words(struct evq *q, struct uring_state *s, int *woken);
void evq__ur_poll_loose(struct uring_state *s);

/* words.c: the thread running check() for a queue, and the kicks its
 * posts made (evq__ur_wake absorbs them) */
extern __thread __attribute__((tls_model("initial-exec")))
struct uring_state *evq__ur_checking;
extern __thread __attribute__((tls_model("initial-exec"))) unsigned evq__ur_kicked;

#endif /* EVQ_URING_H */
