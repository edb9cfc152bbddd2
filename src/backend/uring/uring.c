/* SPDX-License-Identifier: MIT */
/*
 * backend_uring.c - the io_uring backend, on raw system calls (no liburing).
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
 * futex_waitv on the queue's words and bell (see "Inline sleep" above
 * ur_wait); a sigmask caller's ring sleeps on its futex requests and the
 * enter's own timeout.  A wait with timeout 0 is a plain epoll_pwait2(0)
 * on the set (an EPOLL_WAIT finding nothing would stay armed), skipped
 * when there are no fds.  Level-triggered fds are re-reported by epoll
 * itself on the next EPOLL_WAIT, exactly as by epoll_wait.
 *
 * wake() (evq_trigger, posts from other threads) uses no eventfd: it
 * rings "the bell", a futex word in the backend's state on which the ring
 * sleeper keeps an IORING_OP_FUTEX_WAIT (see ring_bell).  The issue
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
 * above ur_wait, checked by model/leader.pml), because a completion wakes
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
 * "Words" below; -DEVQ_URING_NATIVE_WORDS=0 sends them to the futex
 * watcher thread as on epoll).  Semaphores always use the watcher
 * (watch.c native()).
 *
 * Refusal (AUTO then falls back to epoll), in init: io_uring_setup failing
 * (seccomp, /proc/sys/kernel/io_uring_disabled, old kernel), a missing
 * feature (EXT_ARG, NODROP) or op (EPOLL_WAIT, checked with
 * IORING_REGISTER_PROBE).  For tests, EVQ_URING_REFUSE=setup|disabled|feat|op
 * forces one, EVQ_URING_ENTRIES=n sizes the ring, EVQ_URING_FAULT=busy|again
 * makes every other submitting enter fail once.  EVQ_DEBUG=1 prints the
 * outcome to stderr.
 */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "futex.h"
#include "backend/epoll_mask.h"
#include "internal.h"
#include "core/watch.h"

/* Ops newer than Debian 12's <linux/io_uring.h> (kernel ABI values). */
#ifndef IORING_OP_WAITID
#define IORING_OP_WAITID 50
#endif
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef IORING_OP_FUTEX_WAKE
#define IORING_OP_FUTEX_WAKE 52
#endif
#ifndef IORING_OP_FUTEX_WAITV
#define IORING_OP_FUTEX_WAITV 53
#endif
#ifndef IORING_OP_EPOLL_WAIT
#define IORING_OP_EPOLL_WAIT 59
#endif
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif

/* user_data: EPOLL_WAIT requests are 1..MAX_SLOTS (their slot + 1) */
#define UD_CANCEL 100  /* an ASYNC_CANCEL */
#define UD_NUDGE 101   /* a NOP that ends one sleep on the CQ */
#define UD_LTIMEOUT 102 /* a LINK_TIMEOUT bounding an EPOLL_WAIT */
#define UD_BELL 103     /* the FUTEX_WAIT on s->bell (wake(), fd adds) */
#define ENTRIES_DEFAULT 8
#define MAX_SLOTS 8    /* EPOLL_WAITs in flight: one per sleeping thread */

/* -DEVQ_URING_ENABLED=0 makes init refuse (AUTO and `make check` then skip
 * this backend), e.g. to bisect a failure between backends. */
#ifndef EVQ_URING_ENABLED
#define EVQ_URING_ENABLED 1
#endif
#ifndef EVQ_URING_NATIVE_WORDS
#define EVQ_URING_NATIVE_WORDS 1
#endif

struct ring {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_flags, *sq_array;
	unsigned sq_mask, sq_entries;
	struct io_uring_sqe *sqes;
	unsigned *cq_head, *cq_tail;
	unsigned cq_mask, cq_entries;
	struct io_uring_cqe *cqes;
	void *sq_map, *cq_map;
	size_t sq_len, cq_len, sqes_len;
};

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

/* One IORING_OP_FUTEX_WAIT for a word, semaphore or latch registration.
 * Its address is the request's user_data, so it lives until its
 * completion has been processed, even after the registration let go. */
struct uword {
	struct uword *next_all;      /* every record of the queue, for fini */
	struct uword *next_done;     /* completions waiting for process_words */
	struct evq__watch_item *it;   /* NULL once detached */
	uint32_t *addr;
	int shared;
	struct uword *next_rearm;    /* on s->rearm */
	struct uword *next_loose;    /* on s->loose */
	uint32_t expected;           /* it->expected as of the last arm or
				      * check(), for sleepers holding only
				      * s->lock */
	int inflight;                /* the FUTEX_WAIT is in the kernel */
	int collected;               /* its CQE waits on s->done */
	int deferred;                /* on s->rearm: re-checked, then queued,
				      * by the next wait() */
	int loose;                   /* on s->loose: watched by nobody yet */
	int inl;                     /* in the inline sleeper's vector */
	int res;                     /* that CQE's result */
};

struct uring_state {
	struct ring r;
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
	struct slot slot[MAX_SLOTS];
	struct uword **wmap;    /* registration slot -> current record */
	uint32_t wmap_len;
	struct uword *words;    /* all records */
	struct uword *done;     /* completions to process (LIFO) */
	struct uword *rearm;    /* words to re-check and re-queue (LIFO) */
	struct uword *loose;    /* armed words nobody watches yet (LIFO) */
	int nloose;             /* their number (over-estimate: safe) */
	int nring;              /* word FUTEX_WAITs in flight in the ring */
	/* The inline sleep (see "Inline sleep" above ur_wait) */
	int inline_ok;          /* futex_waitv exists and EVQ_URING_INLINE */
	int inline_fail;        /* futex_waitv refused the vector: ring */
	int inl;                /* a thread sleeps inline (counts in sleepers) */
	unsigned inl_gen;       /* inline sleeps ended so far */
	int inl_waiters;        /* word_disarm()s waiting for one to end */
	pthread_cond_t inl_cv;  /* ... signalled on s->lock */
};

static struct uring_state *st(struct evq *q) { return q->be; }

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
	long rc = syscall(SYS_io_uring_setup, entries, p);
	return rc < 0 ? -errno : (int)rc;
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete,
		     unsigned flags, const void *arg, size_t argsz)
{
	long rc = syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags,
			  arg, argsz);
	return rc < 0 ? -errno : (int)rc;
}

static int sys_register(int fd, unsigned op, void *arg, unsigned n)
{
	long rc = syscall(SYS_io_uring_register, fd, op, arg, n);
	return rc < 0 ? -errno : (int)rc;
}

/* ------------------------------------------------------------------ */
/* Ring                                                                 */
/* ------------------------------------------------------------------ */

static void ring_unmap(struct ring *r)
{
	if (r->sqes && r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_map && r->cq_map != MAP_FAILED && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_len);
	if (r->sq_map && r->sq_map != MAP_FAILED)
		munmap(r->sq_map, r->sq_len);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

static int ring_map(struct ring *r, const struct io_uring_params *p)
{
	r->sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
	r->cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_len > r->sq_len)
			r->sq_len = r->cq_len;
		r->cq_len = r->sq_len;
	}
	r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (r->sq_map == MAP_FAILED)
		return -errno;
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		r->cq_map = r->sq_map;
	} else {
		r->cq_map = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (r->cq_map == MAP_FAILED)
			return -errno;
	}
	r->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -errno;
	char *sq = r->sq_map, *cq = r->cq_map;
	r->sq_head = (unsigned *)(sq + p->sq_off.head);
	r->sq_tail = (unsigned *)(sq + p->sq_off.tail);
	r->sq_flags = (unsigned *)(sq + p->sq_off.flags);
	r->sq_array = (unsigned *)(sq + p->sq_off.array);
	r->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
	r->sq_entries = p->sq_entries;
	r->cq_head = (unsigned *)(cq + p->cq_off.head);
	r->cq_tail = (unsigned *)(cq + p->cq_off.tail);
	r->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
	r->cq_entries = p->cq_entries;
	r->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
	/* identity mapping: SQE i is always at array slot i */
	for (unsigned i = 0; i < p->sq_entries; i++)
		r->sq_array[i] = i;
	return 0;
}

/* Next free SQE, zeroed, or NULL when the SQ is full.  Locked. */
static struct io_uring_sqe *sqe_get(struct ring *r)
{
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	unsigned tail = *r->sq_tail;
	if (tail - head >= r->sq_entries)
		return NULL;
	struct io_uring_sqe *e = &r->sqes[tail & r->sq_mask];
	memset(e, 0, sizeof *e);
	return e;
}

/* Publishes the SQE sqe_get() returned.  Locked. */
static void sqe_push(struct ring *r)
{
	__atomic_store_n(r->sq_tail, *r->sq_tail + 1, __ATOMIC_RELEASE);
}

/* SQEs published but not consumed by the kernel yet. */
static unsigned sq_pending(struct ring *r)
{
	return *r->sq_tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
}

static int enter(struct uring_state *s, unsigned to_submit, unsigned min_complete,
		 unsigned flags, const void *arg, size_t argsz)
{
	if (s->fault && to_submit && (atomic_fetch_add(&s->fault_tick, 1) & 1) == 0)
		return s->fault; /* as if the kernel had refused the batch */
	return sys_enter(s->r.fd, to_submit, min_complete, flags, arg, argsz);
}

/* sqe_get(), handing the queued SQEs to the kernel first if the SQ is
 * full (a ring may have a single SQE).  NULL if it stays full.  Locked. */
static struct io_uring_sqe *sqe_get_flush(struct uring_state *s)
{
	struct io_uring_sqe *e;
	for (int i = 0; i < 4 && !(e = sqe_get(&s->r)); i++)
		if (enter(s, sq_pending(&s->r), 0, 0, NULL, 0) < 0)
			s->submit_errors++;
	return e;
}

/* ------------------------------------------------------------------ */
/* Wake ring: evq_latch_set_many's wakes in one io_uring_enter          */
/* ------------------------------------------------------------------ */

/*
 * One small ring per process, apart from every queue (evq_latch_set_many
 * needs none).  evq__uring_wake_batch (backend.h) turns each word into an
 * IORING_OP_FUTEX_WAKE of all its waiters (addr = the word, addr2 = INT_MAX
 * waiters, addr3 = FUTEX_BITSET_MATCH_ANY, fd = futex2 flags: U32, plus
 * PRIVATE unless shared) flagged IOSQE_CQE_SKIP_SUCCESS, and one
 * io_uring_enter submits them all.  A FUTEX_WAKE is issued inline by the
 * enter (it never blocks or goes to io-wq), so when the enter returns the
 * waiters have been woken.  Only a failed request posts a completion; its
 * word is woken again with FUTEX_WAKE.  SQEs the enter did not take (its
 * return value says how many it did) are taken back by moving the SQ tail
 * to the head, and their words woken with FUTEX_WAKE too.
 *
 * Ownership: wr_busy is a try-flag (an atomic exchange, never a lock) that
 * admits one caller at a time; any other, including a signal handler that
 * interrupted the holder on its own thread, gets -EBUSY and wakes the words
 * itself.  The first holder creates the ring (so creation is serialised by
 * the same flag), without malloc: the descriptor is static, the rings are
 * mmaps.  A refusal (io_uring_setup failing: seccomp, io_uring_disabled, old
 * kernel; no FUTEX_WAKE op or IORING_FEAT_CQE_SKIP; EVQ_URING_REFUSE; a build
 * with EVQ_URING_ENABLED=0) is remembered: -ENOSYS from then on.  Creation
 * may run in a signal handler: it makes only system calls, and
 * evq__config_read (EVQ_URING_REFUSE, EVQ_DEBUG), which only reads environ.
 *
 * Fork: the rings are MAP_SHARED mmaps, so a child must never submit on its
 * parent's ring.  wr.mine points to a page mapped MADV_WIPEONFORK that
 * holds 1 once this process has set wr up: a child, however it was made
 * (fork, _Fork, clone), reads 0 there, unmaps and closes the inherited ring
 * (it holds wr_busy, so nobody in this process is inside it) and creates
 * its own.  A child forked while another thread held wr_busy finds the
 * flag taken for good and always wakes directly (correct, only slower).
 * A signal handler that forks while its own thread is inside the section
 * leaves a child that finishes the interrupted call on the parent's ring:
 * both processes write the same SQEs to the same place and enter, the
 * kernel consumes them once, and the second enter, taking nothing, wakes
 * every word directly.  No wake is lost; some are doubled.
 */

#ifndef IORING_FEAT_CQE_SKIP
#define IORING_FEAT_CQE_SKIP (1U << 11)
#endif
#ifndef IOSQE_CQE_SKIP_SUCCESS
#define IOSQE_CQE_SKIP_SUCCESS (1U << 6)
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static struct {
	struct ring r;   /* the ring; r.fd < 0: none */
	int state;       /* 0 ready, or the -errno of the refusal */
	unsigned seq;    /* batch number, in user_data (stale CQEs) */
	int *mine;       /* WIPEONFORK page: *mine == 1: r and state are ours */
	int nowipe;      /* madvise(MADV_WIPEONFORK) failed: never a ring */
} wr = { .r = { .fd = -1 } };
static _Atomic int wr_busy;

static void wr_say(const char *msg)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	if (cfg.debug) {
		ssize_t rc = write(2, msg, strlen(msg));
		(void)rc;
	}
}

/* 1 if the kernel supports each of the n ops in need[] (all below 64): a
 * probe of the first 64 ops on the stack, since the wake ring may be made
 * in a signal handler, and so that no allocation can fail and pass for a
 * missing op. */
#define PROBE_OPS 64
static int probe_ops(int fd, const unsigned *need, size_t n)
{
	union {
		struct io_uring_probe p;
		char b[sizeof(struct io_uring_probe) +
		       PROBE_OPS * sizeof(struct io_uring_probe_op)];
	} u;
	memset(&u, 0, sizeof u);
	if (sys_register(fd, IORING_REGISTER_PROBE, &u.p, PROBE_OPS) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (need[i] >= PROBE_OPS || need[i] > u.p.last_op || need[i] >= u.p.ops_len ||
		    !(u.p.ops[need[i]].flags & IO_URING_OP_SUPPORTED))
			return 0;
	return 1;
}

/* Sets up wr.r; 0 or -errno.  wr_busy held. */
static int wr_setup(void)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	if (!EVQ_URING_ENABLED)
		return -ENOSYS;
	if (cfg.uring_refuse == EVQ__REFUSE_DISABLED)
		return -EPERM;
	if (cfg.uring_refuse != EVQ__REFUSE_NONE)
		return -ENOSYS; /* setup, feat, op */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
	int rc = sys_setup(EVQ_WAKE_BATCH_MAX, &p);
	if (rc < 0)
		return rc;
	wr.r.fd = rc;
	static const unsigned need[] = { IORING_OP_FUTEX_WAKE };
	if (!(p.features & IORING_FEAT_CQE_SKIP) || p.sq_entries < EVQ_WAKE_BATCH_MAX ||
	    !probe_ops(wr.r.fd, need, 1))
		rc = -ENOSYS;
	else
		rc = ring_map(&wr.r, &p);
	if (rc < 0) {
		ring_unmap(&wr.r);
		memset(&wr.r, 0, sizeof wr.r);
		wr.r.fd = -1;
	}
	return rc;
}

/* Makes sure this process has its own ring (or knows it cannot have one).
 * 0 or -errno.  wr_busy held. */
static int wr_open(void)
{
	if (wr.mine && *wr.mine)
		return wr.state;
	if (wr.nowipe)
		return -ENOSYS;
	if (!wr.mine) {
		void *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (pg == MAP_FAILED)
			return -ENOMEM; /* try again next time */
		if (madvise(pg, 4096, MADV_WIPEONFORK) != 0) {
			munmap(pg, 4096);
			wr.nowipe = 1;
			return -ENOSYS;
		}
		wr.mine = pg;
	}
	/* first use in this process: a ring inherited from the parent goes */
	if (wr.r.fd >= 0) {
		ring_unmap(&wr.r);
		memset(&wr.r, 0, sizeof wr.r);
		wr.r.fd = -1;
	}
	wr.state = wr_setup();
	*wr.mine = 1;
	wr_say(wr.state == 0 ? "evq: wake ring ready (evq_latch_set_many)\n"
			     : "evq: wake ring refused; evq_latch_set_many wakes "
			       "with FUTEX_WAKE_OP\n");
	return wr.state;
}

static int wr_shared(uint64_t mask, int i) { return (int)(mask >> i & 1); }

/* Redoes the wakes whose requests failed (the only completions: success
 * skips its CQE), flushing a kernel CQ backlog too.  wr_busy held. */
static void wr_reap(uint32_t *const *words, uint64_t shared_mask, int n, unsigned seq)
{
	struct ring *r = &wr.r;
	for (int round = 0; round < 4; round++) {
		unsigned head = *r->cq_head;
		unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
		for (; head != tail; head++) {
			const struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
			int i = (int)(c->user_data & 0xff);
			if (c->res < 0 && (unsigned)(c->user_data >> 8) == seq && i < n)
				evq__futex_wake(words[i], INT_MAX, wr_shared(shared_mask, i));
		}
		__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
		if (!(__atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW))
			break;
		if (sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			break;
	}
}

/* The batch itself.  wr_busy held, the ring open. */
static void wr_submit(uint32_t *const *words, uint64_t shared_mask, int n)
{
	struct ring *r = &wr.r;
	unsigned seq = ++wr.seq & 0xffffffu;
	unsigned tail = *r->sq_tail;
	for (int i = 0; i < n; i++) {
		struct io_uring_sqe *e = &r->sqes[(tail + (unsigned)i) & r->sq_mask];
		memset(e, 0, sizeof *e);
		e->opcode = IORING_OP_FUTEX_WAKE;
		e->flags = IOSQE_CQE_SKIP_SUCCESS;
		e->fd = (int)evq__waitv_flags(wr_shared(shared_mask, i));
		e->addr = (uint64_t)(uintptr_t)words[i];
		e->addr2 = INT_MAX;                  /* wake them all */
		e->addr3 = FUTEX_BITSET_MATCH_ANY;
		e->user_data = (uint64_t)seq << 8 | (unsigned)i;
	}
	__atomic_store_n(r->sq_tail, tail + (unsigned)n, __ATOMIC_RELEASE);
	int got = sys_enter(r->fd, (unsigned)n, 0, 0, NULL, 0);
	if (got < n) {
		/* -EBUSY, -EAGAIN, -EINTR, or short: take the rest back (the
		 * head is where the kernel stopped) and wake it directly */
		if (got < 0)
			got = 0;
		__atomic_store_n(r->sq_tail, __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE),
				 __ATOMIC_RELEASE);
		for (int i = got; i < n; i++)
			evq__futex_wake(words[i], INT_MAX, wr_shared(shared_mask, i));
	}
	wr_reap(words, shared_mask, n, seq);
}

int evq__uring_wake_batch(uint32_t *const *words, uint64_t shared_mask, int n)
{
	if (!EVQ_URING_ENABLED)
		return -ENOSYS;
	if (n < 0 || n > EVQ_WAKE_BATCH_MAX || (n > 0 && !words))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (atomic_exchange_explicit(&wr_busy, 1, memory_order_acquire))
		return -EBUSY;
	int saved = errno;
	int rc = wr_open();
	if (rc == 0) {
		wr_submit(words, shared_mask, n);
		rc = n;
	}
	atomic_store_explicit(&wr_busy, 0, memory_order_release);
	errno = saved;
	return rc < 0 ? (rc == -EBUSY ? -EBUSY : -ENOSYS) : rc;
}

int evq__wake_ring_fd(void)
{
	if (atomic_exchange_explicit(&wr_busy, 1, memory_order_acquire))
		return -EBUSY;
	int fd = wr.mine && *wr.mine && wr.state == 0 ? wr.r.fd : -ENOSYS;
	atomic_store_explicit(&wr_busy, 0, memory_order_release);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Completions                                                          */
/* ------------------------------------------------------------------ */

#define UD_WORD_MIN 4096 /* user_data at or above: a struct uword * */

/* w's wait ended with res (a completion's, or what an inline sleep or a
 * poll saw): process_words() runs its check().  Locked. */
static void collect_word(struct uring_state *s, struct uword *w, int res)
{
	w->collected = 1;
	w->res = res;
	w->next_done = s->done;
	s->done = w;
}

static void on_cqe(struct uring_state *s, const struct io_uring_cqe *c)
{
	if (c->user_data >= UD_WORD_MIN) {
		struct uword *w = (struct uword *)(uintptr_t)c->user_data;
		w->inflight = 0;
		s->nring--;
		collect_word(s, w, c->res);
		return;
	}
	if (c->user_data == UD_BELL) {
		s->bell_armed = 0; /* rung, -EAGAIN or -ECANCELED alike */
		return;
	}
	if (c->user_data < 1 || c->user_data > MAX_SLOTS)
		return; /* cancel, nudge and link timeout results */
	struct slot *sl = &s->slot[c->user_data - 1];
	sl->inflight = 0;
	s->inflight--;
	if (sl->cancelling) {
		sl->cancelling = 0;
		s->cancelling--;
	}
	if (c->res > 0) {
		sl->pos = 0;
		sl->count = c->res;
		s->filled++;
	} else if (c->res != -ECANCELED && c->res != -EINTR && c->res != -EAGAIN) {
		/* -ECANCELED: e.g. the submitting thread exited; resubmit */
		s->err = c->res;
	}
}

/* Reaps every completion, flushing a kernel overflow backlog too.  Returns
 * how many.  Locked. */
static int reap(struct uring_state *s)
{
	struct ring *r = &s->r;
	int n = 0;
	for (;;) {
		unsigned head = *r->cq_head;
		unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
		for (; head != tail; head++, n++)
			on_cqe(s, &r->cqes[head & r->cq_mask]);
		__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
		/* IORING_FEAT_NODROP: completions that did not fit wait in the
		 * kernel; entering with GETEVENTS moves them into the CQ */
		if (!(__atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW))
			break;
		s->overflows++;
		if (sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			break;
	}
	s->reaped += (unsigned)n;
	return n;
}

/* Translates harvested epoll events of one slot into out[]. */
static int take_slot(struct slot *sl, struct evq__ready *out, int max)
{
	int k = 0;
	while (sl->pos < sl->count && k < max) {
		const struct epoll_event *e = &sl->buf[sl->pos++];
		/* the same translation as the epoll backend */
		out[k].token = e->data.u64;
		out[k].events = evq__epoll_ready(e->events);
		k++;
	}
	return k;
}

/* Hands out what completed EPOLL_WAITs harvested.  Locked. */
static int take(struct uring_state *s, struct evq__ready *out, int max)
{
	int k = 0;
	for (int i = 0; i < MAX_SLOTS && k < max && s->filled; i++) {
		struct slot *sl = &s->slot[i];
		if (sl->inflight || sl->pos >= sl->count)
			continue;
		k += take_slot(sl, out + k, max - k);
		if (sl->pos >= sl->count)
			s->filled--;
	}
	return k;
}

/* L1: a wake() is consumed by exactly one wait(): whoever clears wpend. */
static void take_wake(struct uring_state *s, int *woken)
{
	if (atomic_load(&s->wpend) && atomic_exchange(&s->wpend, 0))
		*woken = 1;
}

static int leftovers(struct uring_state *s)
{
	return s->filled > 0;
}

/* Ends the sleep of one follower, if any: it takes the ring unless
 * someone did meanwhile (then it sleeps again).  Async-signal-safe. */
static void wake_follower(struct uring_state *s)
{
	evq__add(&s->fword, 1);
	evq__futex_wake(&s->fword, 1, 0);
}

/* The bell: cross-thread wakes without an eventfd.  A thread sleeping in
 * the ring keeps a FUTEX_WAIT on s->bell in flight (arm_bell), an inline
 * sleeper has it in its futex_waitv vector; wake() and fd_ctl() ring it
 * (bell++, then FUTEX_WAKE if anyone sleeps),
 * which completes that request and so ends the ring's sleep: one futex
 * wake, no file, and no epoll round trip between the waker and the
 * waiter.  The request compares the bell when the kernel queues it, so a
 * ring between reading the bell and queueing is never lost.  It may
 * outlive the wait() that armed it, like a word's FUTEX_WAIT.
 * Async-signal-safe. */
static void ring_bell(struct uring_state *s)
{
	evq__add(&s->bell, 1);
	/* two: the ring's request and an inline sleeper may both wait */
	if (atomic_load(&s->sleepers) > 0)
		evq__futex_wake(&s->bell, 2, 0);
}

/* Queues the bell's FUTEX_WAIT, for as long as the bell still reads
 * `seen`, unless one is in flight.  A sleeper reads `seen` after its
 * sleepers++ and before it looks for a pending wake() or fds (B1 in
 * ur_wait): a ring it did not see then changed the bell after `seen`
 * was read, and either completes the request (the kernel's comparison)
 * or finds sleepers > 0 and wakes it.  Locked. */
static void arm_bell(struct uring_state *s, uint32_t seen)
{
	if (s->bell_armed)
		return;
	struct io_uring_sqe *e = sqe_get_flush(s);
	if (!e)
		return; /* the SQ stayed full: ur_wait bounds its sleep */
	e->opcode = IORING_OP_FUTEX_WAIT;
	e->addr = (uint64_t)(uintptr_t)&s->bell;
	e->addr2 = seen;
	e->addr3 = FUTEX_BITSET_MATCH_ANY;
	e->fd = (int)evq__waitv_flags(0);
	e->user_data = UD_BELL;
	sqe_push(&s->r);
	s->bell_armed = 1;
}

/* Called by every thread leaving wait(), under s->lock, after its
 * sleepers-- (L2 below): with nobody in the ring and followers asleep, one
 * follower must take the ring if a wake()'s edge is pending or anything
 * but wake() could end a sleep (fds, words, leftovers, an error). */
static void pass_lead(struct uring_state *s)
{
	if (atomic_load(&s->sleepers) > 0 || atomic_load(&s->nfollow) == 0)
		return;
	if (atomic_load(&s->wpend) || atomic_load(&s->nfds) > 0 || s->words ||
	    s->done || s->err || leftovers(s))
		wake_follower(s);
}

static size_t buf_len(const struct uring_state *s)
{
	return (size_t)s->bufsize * sizeof(struct epoll_event);
}

/* Queues an EPOLL_WAIT for max events on a free slot (in flight: no;
 * events left: none), bounded by a LINK_TIMEOUT of timeout_ns if >= 0, so
 * that it does not outlive the wait() that wants it.  0 if none could be
 * queued.  Locked. */
static int arm_one(struct uring_state *s, int max, int64_t timeout_ns)
{
	struct ring *r = &s->r;
	for (int i = 0; i < MAX_SLOTS; i++) {
		struct slot *sl = &s->slot[i];
		if (sl->inflight || sl->pos < sl->count)
			continue;
		if (!sl->buf) {
			/* mmap, not malloc: see ur_fini() */
			void *m = mmap(NULL, buf_len(s), PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED)
				return 0;
			sl->buf = m;
		}
		/* a ring of one SQE cannot take the linked pair */
		if (r->sq_entries < 2)
			timeout_ns = -1;
		unsigned need = timeout_ns >= 0 ? 2 : 1;
		if (r->sq_entries - sq_pending(r) < need) {
			/* SQ full: hand what is queued to the kernel first */
			int rc = enter(s, sq_pending(r), 0, 0, NULL, 0);
			if (rc < 0)
				s->submit_errors++;
			if (r->sq_entries - sq_pending(r) < need)
				return 0;
		}
		struct io_uring_sqe *e = sqe_get(r);
		e->opcode = IORING_OP_EPOLL_WAIT;
		e->fd = s->epfd;
		e->addr = (uint64_t)(uintptr_t)sl->buf;
		e->len = (unsigned)(max < s->bufsize ? max : s->bufsize);
		e->user_data = (uint64_t)i + 1;
		if (timeout_ns >= 0)
			e->flags = IOSQE_IO_LINK;
		sqe_push(r);
		if (timeout_ns >= 0) {
			sl->ts.tv_sec = timeout_ns / 1000000000;
			sl->ts.tv_nsec = timeout_ns % 1000000000;
			e = sqe_get(r);
			e->opcode = IORING_OP_LINK_TIMEOUT;
			e->addr = (uint64_t)(uintptr_t)&sl->ts;
			e->len = 1;
			e->user_data = UD_LTIMEOUT;
			sqe_push(r);
		}
		sl->inflight = 1;
		sl->owner = pthread_self();
		sl->pos = sl->count = 0;
		s->inflight++;
		return 1;
	}
	return 0;
}

static void queue_cancel(struct uring_state *s, int i)
{
	struct slot *sl = &s->slot[i];
	struct io_uring_sqe *e = sqe_get_flush(s);
	if (!e)
		return;
	e->opcode = IORING_OP_ASYNC_CANCEL;
	e->fd = -1;
	e->addr = (uint64_t)i + 1;
	e->user_data = UD_CANCEL;
	sqe_push(&s->r);
	if (!sl->cancelling) {
		sl->cancelling = 1;
		s->cancelling++;
	}
}

/* Queues an ASYNC_CANCEL for every EPOLL_WAIT in flight.  Locked. */
static void queue_cancels(struct uring_state *s)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (s->slot[i].inflight)
			queue_cancel(s, i);
}

static void queue_loose(struct uring_state *s);

/* Threads asleep in the ring (an inline sleeper counts in sleepers too,
 * so that others follow it).  Locked. */
static int ring_sleepers(struct uring_state *s)
{
	return atomic_load(&s->sleepers) - s->inl;
}

/* Leaving wait().  A request's completion runs as task work of the thread
 * that submitted it, so a thread never leaves one behind: it cancels what
 * it submitted and is still in flight (the LINK_TIMEOUT usually did that
 * already).  Then, if fewer requests remain than threads sleeping, or
 * events are left over (taken from epoll beyond this caller's max), it ends
 * that many sleeps with NOPs: each woken thread arms its own request (as
 * epoll_wait wakes another waiter for items left on its ready list).
 * Locked. */
static void leave(struct uring_state *s)
{
	pthread_t me = pthread_self();
	int rs = ring_sleepers(s);
	int urgent = rs > 0; /* they need re-armed words watched */
	for (int i = 0; i < MAX_SLOTS && s->inflight; i++) {
		struct slot *sl = &s->slot[i];
		if (sl->inflight && !sl->cancelling && pthread_equal(sl->owner, me)) {
			urgent = 1;
			queue_cancel(s, i);
			s->cancels++;
		}
	}
	/* We may have reaped the bell's completion: the sleepers need it
	 * armed again.  B1 as in ur_wait: read the bell before looking at
	 * wpend and nfds; a wake() or fd add seen here needs a NOP. */
	int rearm_bell = rs > 0 && !s->bell_armed;
	uint32_t seen = rearm_bell ? evq__ld(&s->bell) : 0;
	/* ring sleepers each want an EPOLL_WAIT while fds are registered */
	int want = atomic_load(&s->nfds) > 0 ? rs : 0;
	int nudges = want - (s->inflight - s->cancelling);
	if (rs > 0 && nudges < 1 && (leftovers(s) || atomic_load(&s->wpend)))
		nudges = 1;
	if (rearm_bell)
		arm_bell(s, seen);
	/* Words this thread armed or re-checked: ring sleepers watch them
	 * through the ring; an inline sleeper must rebuild its vector. */
	if (s->loose && rs > 0)
		queue_loose(s);
	else if (s->inl && (s->loose || (rs == 0 && s->nring > 0)))
		ring_bell(s); /* ... or take over words the ring no longer
			       * watches for anyone */
	for (int i = 0; i < nudges && i < MAX_SLOTS; i++) {
		struct io_uring_sqe *e = sqe_get_flush(s);
		if (!e)
			break;
		e->opcode = IORING_OP_NOP;
		e->user_data = UD_NUDGE;
		sqe_push(&s->r);
	}
	/* Re-armed words alone can wait for this thread's next enter: their
	 * FUTEX_WAIT compares the word when it is queued, so nothing is
	 * missed, and nobody else waits to receive it. */
	unsigned n = sq_pending(&s->r);
	if (n && urgent && enter(s, n, 0, 0, NULL, 0) < 0)
		s->submit_errors++;
}

/* ------------------------------------------------------------------ */
/* Backend interface                                                    */
/* ------------------------------------------------------------------ */

static int debug_on(void)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	return cfg.debug;
}

/* EVQ_URING_REFUSE (test builds only, config.c) asks for this refusal. */
static int refuse_forced(enum evq__refuse what)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	return cfg.uring_refuse == (int)what;
}

/* Why io_uring_setup failed, for the debug line. */
static const char *setup_reason(int rc)
{
	char buf[8] = "";
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		fclose(f);
	}
	if (rc == -ENOSYS)
		return "io_uring_setup: ENOSYS (kernel without io_uring, or seccomp)";
	if (rc == -EPERM && buf[0] == '2')
		return "io_uring_setup: EPERM (/proc/sys/kernel/io_uring_disabled = 2)";
	if (rc == -EPERM && buf[0] == '1')
		return "io_uring_setup: EPERM (/proc/sys/kernel/io_uring_disabled = 1, "
		       "not in io_uring_group)";
	if (rc == -EPERM)
		return "io_uring_setup: EPERM (seccomp or LSM policy)";
	return "io_uring_setup failed";
}

static int refuse(const char *why, int rc)
{
	if (debug_on())
		fprintf(stderr, "evq: uring refused: %s (%d); AUTO falls back to epoll\n",
			why, rc);
	return rc;
}

/* 1 if the kernel supports every op this backend submits. */
static int probe_queue_ops(int ringfd)
{
	static const unsigned need[] = { IORING_OP_EPOLL_WAIT, IORING_OP_ASYNC_CANCEL,
					 IORING_OP_FUTEX_WAIT };
	return probe_ops(ringfd, need, sizeof need / sizeof need[0]) && !refuse_forced(EVQ__REFUSE_OP);
}

/* Kernel 6.17 gave each multi-threaded process its own futex hash table,
 * allocated when the process creates its first thread.  A FUTEX_WAIT that
 * io_uring queued before that stays in the global table, where no
 * FUTEX_WAKE_PRIVATE looks any more: the wait is lost (seen on 6.18: a
 * latch added by a single-threaded program that then starts the thread
 * which sets it is never woken).  Sleeping syscall waiters cannot hit
 * this (a process cannot create a thread while its only thread sleeps);
 * io_uring's asynchronous waits can.  So before the first native word
 * wait, make sure the private table exists: starting (and joining) one
 * thread allocates it, sized by the kernel's own rules as any program's
 * first thread would.  slots < 0: a kernel before 6.17 (one global table,
 * no transition); slots == 0 after a thread ran: the program pinned the
 * global table (PR_FUTEX_HASH_SET_SLOTS 0), which also has no transition. */
#ifndef PR_FUTEX_HASH
#define PR_FUTEX_HASH 78
#endif
#ifndef PR_FUTEX_HASH_GET_SLOTS
#define PR_FUTEX_HASH_GET_SLOTS 2
#endif

static void *no_work(void *arg) { return arg; }

static int futex_hash_settle(void)
{
	static _Atomic pid_t settled; /* the process that did it (fork: again) */
	pid_t me = getpid();
	if (atomic_load(&settled) == me)
		return 0;
	int saved = errno;
	if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0) == 0) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, no_work, NULL);
		if (rc != 0) {
			errno = saved;
			return -rc;
		}
		pthread_join(t, NULL);
	}
	errno = saved;
	atomic_store(&settled, me);
	return 0;
}

/* The inline sleep (above ur_wait) needs futex_waitv (Linux 5.16): an
 * empty vector is -EINVAL where it exists.  EVQ_URING_INLINE=0 (test
 * builds only, config.c) turns it off, to measure or test the ring's own
 * word waits. */
static int inline_available(void)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	if (!cfg.uring_inline)
		return 0;
	return evq__futex_waitv(NULL, 0, NULL) == -EINVAL;
}

static void ur_fini(struct evq *q);

static int ur_init(struct evq *q, int max_batch)
{
	if (!EVQ_URING_ENABLED)
		return refuse("not enabled in this build (EVQ_URING_ENABLED=0)", -ENOSYS);
	if (refuse_forced(EVQ__REFUSE_SETUP))
		return refuse("io_uring_setup: ENOSYS (forced by EVQ_URING_REFUSE)", -ENOSYS);
	if (refuse_forced(EVQ__REFUSE_DISABLED))
		return refuse("io_uring_setup: EPERM (io_uring_disabled, forced by "
			      "EVQ_URING_REFUSE)", -EPERM);
	if (EVQ_URING_NATIVE_WORDS) {
		int rc = futex_hash_settle();
		if (rc < 0)
			return refuse("could not start a thread to settle the futex hash", rc);
	}
	if (max_batch < 1 || max_batch > EVQ_BATCH_MAX)
		max_batch = EVQ_BATCH_MAX;
	struct uring_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->bufsize = max_batch;
	s->r.fd = s->epfd = -1;
	s->owner = getpid();
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->inl_cv, NULL);
	q->be = s;
	s->inline_ok = inline_available();

	struct evq__config cfg;
	evq__config_read(&cfg);
	s->fault = cfg.uring_fault; /* EVQ_URING_FAULT, test builds only */
	unsigned entries = ENTRIES_DEFAULT;
	if (cfg.uring_entries > 0) /* EVQ_URING_ENTRIES, test builds only */
		entries = cfg.uring_entries;

	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CLAMP;
	int rc = sys_setup(entries, &p);
	if (rc < 0) {
		ur_fini(q);
		return refuse(setup_reason(rc), rc);
	}
	s->r.fd = rc;
	const unsigned feats = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP;
	if ((p.features & feats) != feats || refuse_forced(EVQ__REFUSE_FEAT)) {
		ur_fini(q);
		return refuse("kernel lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP",
			      -ENOSYS);
	}
	if (!probe_queue_ops(s->r.fd)) {
		ur_fini(q);
		return refuse("op IORING_OP_EPOLL_WAIT (59) missing (probe)", -ENOSYS);
	}
	rc = ring_map(&s->r, &p);
	if (rc < 0) {
		ur_fini(q);
		return refuse("mmap of the rings failed", rc);
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		rc = -errno;
		ur_fini(q);
		return rc;
	}
	if (debug_on())
		fprintf(stderr, "evq: uring ready: ring fd %d, sq %u, cq %u entries, "
			"features %#x, inline futex sleep %s\n", s->r.fd, s->r.sq_entries,
			s->r.cq_entries, p.features, s->inline_ok ? "on" : "off");
	return 0;
}

/* Cancels the EPOLL_WAITs in flight and waits (bounded) for their
 * completions, so the kernel never writes into a freed buffer.  Returns 1
 * when none is left. */
static int drain_inflight(struct uring_state *s)
{
	s->fault = 0;
	for (int i = 0; i < 50 && s->inflight > 0; i++) {
		/* again each time: a cancel that raced with a completion or a
		 * full SQ is simply repeated */
		queue_cancels(s);
		struct __kernel_timespec ts = { 0, 10 * 1000000 };
		struct io_uring_getevents_arg arg = { .ts = (uint64_t)(uintptr_t)&ts };
		sys_enter(s->r.fd, sq_pending(&s->r), 1,
			  IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
		reap(s);
	}
	return s->inflight == 0;
}

static void ur_fini(struct evq *q)
{
	struct uring_state *s = st(q);
	if (!s)
		return;
	if (debug_on() && s->owner == getpid() && s->r.sq_map)
		fprintf(stderr, "evq: uring stats: cq_overflow_flushes=%u submit_errors=%u "
			"leave_cancels=%u\n", s->overflows, s->submit_errors, s->cancels);
	int can_free = 1;
	if (s->r.sq_map && s->r.sq_map != MAP_FAILED && s->owner == getpid())
		can_free = drain_inflight(s);
	else if (s->owner != getpid())
		can_free = 0; /* forked child: the parent's requests use the buffers */
	ring_unmap(&s->r);
	if (s->epfd >= 0)
		close(s->epfd);
	q->be = NULL;
	/* An EPOLL_WAIT that would not complete (seen when the thread that
	 * submitted it has exited) keeps its buffer: the buffers are mmaps, so
	 * leaving them mapped is safe against a late write by the kernel and
	 * costs a few pages, and everything else is freed. */
	if (!can_free && debug_on())
		fprintf(stderr, "evq: uring: %d requests still in flight at fini: their "
			"buffers stay mapped\n", s->inflight);
	for (int i = 0; i < MAX_SLOTS; i++)
		if (s->slot[i].buf && (can_free || !s->slot[i].inflight))
			munmap(s->slot[i].buf, buf_len(s));
	while (s->words) {
		struct uword *w = s->words;
		s->words = w->next_all;
		free(w);
	}
	free(s->wmap);
	if (s->owner == getpid()) {
		pthread_cond_destroy(&s->inl_cv);
		pthread_mutex_destroy(&s->lock);
	}
	free(s);
}

static int ur_fd_ctl(struct evq *q, enum evq__fd_op op, int fd, uint32_t events,
		     uint32_t flags, uint64_t token)
{
	static const int ops[] = { EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL };
	struct uring_state *s = st(q);
	struct epoll_event ev = { .events = evq__epoll_interest(events, flags), .data.u64 = token };
	if (epoll_ctl(s->epfd, ops[op], fd, &ev) < 0)
		return -errno;
	/* K2: an fd closed without DEL leaves nfds high, which only costs
	 * handovers */
	if (op == EVQ_FD_DEL) {
		atomic_fetch_sub(&s->nfds, 1);
		return 0;
	}
	/* a ring sleeper that saw no fds sleeps without an EPOLL_WAIT: ring
	 * the bell so that it arms one (nfds/sleepers: Dekker, K2) */
	if (op == EVQ_FD_ADD && atomic_fetch_add(&s->nfds, 1) == 0)
		ring_bell(s);
	if (atomic_load(&s->sleepers) == 0 && atomic_load(&s->nfollow) > 0)
		wake_follower(s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Words: IORING_OP_FUTEX_WAIT instead of the watcher thread            */
/* ------------------------------------------------------------------ */

/* Words and latches only: semaphores stay on the watcher thread
 * (watch.c), since a wake a semaphore's watch takes while nobody waits on
 * the queue must be passed on at once (sem.c Q4), and a ring runs check()
 * only inside a wait().
 *
 * Protocol (the watcher's, model/word.pml, with the ring as the thread):
 * word_arm (q->lock, then s->lock) queues a FUTEX_WAIT for *addr ==
 * it->expected and submits it at once: the kernel compares the word when it
 * queues the wait, so a change made before that completes the request with
 * -EAGAIN at once (no change is missed, as at X5).  A completion is
 * collected by whichever thread reaps the CQ and processed by a thread in
 * wait() holding q->lock and s->lock (X3): check() runs serialised with
 * evq__word_arm/idle, which write the item under q->lock; if check() keeps
 * watching, the FUTEX_WAIT is queued again and goes with the next enter
 * (the kernel's comparison again closes the gap).  word_disarm detaches the
 * record and cancels the request synchronously (IORING_REGISTER_SYNC_CANCEL):
 * afterwards the kernel no longer sleeps on the word and check() is never
 * called for it (O3).  A wake the request may have taken meanwhile is
 * passed on with FUTEX_WAKE(1) (X2). */

static __thread __attribute__((tls_model("initial-exec")))
struct uring_state *tl_checking;     /* this thread runs check() for it */
static __thread __attribute__((tls_model("initial-exec"))) unsigned tl_kicked;

static void make_loose(struct uring_state *s, struct uword *w);

static void queue_futex(struct uring_state *s, struct uword *w)
{
	struct io_uring_sqe *e = sqe_get_flush(s);
	if (!e) {
		/* the kernel kept refusing submissions: the next sleeper
		 * tries again (a ring sleep then lasts at most 1 ms) */
		make_loose(s, w);
		return;
	}
	e->opcode = IORING_OP_FUTEX_WAIT;
	e->addr = (uint64_t)(uintptr_t)w->addr;
	e->addr2 = w->expected;
	e->addr3 = FUTEX_BITSET_MATCH_ANY;
	e->fd = (int)evq__waitv_flags(w->shared);
	e->user_data = (uint64_t)(uintptr_t)w;
	sqe_push(&s->r);
	w->inflight = 1;
	s->nring++;
}

static void word_free_if_done(struct uring_state *s, struct uword *w)
{
	if (w->it || w->inflight || w->collected || w->deferred || w->loose || w->inl)
		return;
	for (struct uword **p = &s->words; *p; p = &(*p)->next_all)
		if (*p == w) {
			*p = w->next_all;
			break;
		}
	free(w);
}

/* An armed word that nobody watches yet: the next sleeper takes it, into
 * the ring (queue_loose) or into its inline vector.  Locked. */
static void make_loose(struct uring_state *s, struct uword *w)
{
	if (w->loose || w->inflight || w->collected || w->deferred || w->inl)
		return;
	w->loose = 1;
	w->next_loose = s->loose;
	s->loose = w;
	s->nloose++;
}

/* Takes the loose words off the list, for the ring (queue_loose) or the
 * inline vector; the caller frees records detached meanwhile.  Locked. */
static struct uword *take_loose(struct uring_state *s)
{
	struct uword *list = s->loose;
	s->loose = NULL;
	s->nloose = 0;
	return list;
}

/* Queues a FUTEX_WAIT for every loose word; the next enter submits them.
 * Locked. */
static void queue_loose(struct uring_state *s)
{
	struct uword *list = take_loose(s);
	while (list) {
		struct uword *w = list;
		list = w->next_loose;
		w->loose = 0;
		if (w->it)
			queue_futex(s, w);
		else
			word_free_if_done(s, w);
	}
}

/* Cancels w's FUTEX_WAIT synchronously: when this returns 0 the kernel no
 * longer sleeps on the word (the -ECANCELED completion follows); -ENOENT:
 * it had completed.  Locked. */
static int cancel_word(struct uring_state *s, struct uword *w)
{
	struct io_uring_sync_cancel_reg c;
	memset(&c, 0, sizeof c);
	c.addr = (uint64_t)(uintptr_t)w;
	c.fd = -1;
	c.timeout.tv_sec = -1;
	c.timeout.tv_nsec = -1;
	return sys_register(s->r.fd, IORING_REGISTER_SYNC_CANCEL, &c, 1);
}

#if EVQ_URING_NATIVE_WORDS
/* Takes w off the registration: no check() from now on, and the kernel no
 * longer waits on the word.  Locked (q and s). */
static void word_detach(struct uring_state *s, struct uword *w)
{
	int pass_on = 0, inl = w->inl;
	w->it = NULL;
	if (w->inflight) {
		/* not found: it completed already, maybe with a wake */
		pass_on = cancel_word(s, w) != 0;
	} else if (w->collected && w->res == 0) {
		pass_on = 1;
	}
	if (pass_on)
		evq__futex_wake(w->addr, 1, w->shared);
	word_free_if_done(s, w);
	/* O3: the inline sleeper may sleep on the word; once its sleep ended
	 * (I3 passes on a wake it may have taken for the word, X2) the kernel
	 * no longer does, and the word may be freed.  Waiting releases
	 * s->lock, never q->lock: I3 needs only s->lock. */
	if (inl) {
		unsigned gen = s->inl_gen;
		ring_bell(s);
		s->inl_waiters++;
		while (s->inl_gen == gen)
			pthread_cond_wait(&s->inl_cv, &s->lock);
		s->inl_waiters--;
	}
}

static int ur_word_arm(struct evq *q, struct evq__reg *r)
{
	struct uring_state *s = st(q);
	struct evq__watch_item *it = r->ext; /* first member of the kind's state */
	uint32_t idx = r->idx;
	pthread_mutex_lock(&s->lock);
	if (idx >= s->wmap_len) {
		uint32_t len = s->wmap_len ? s->wmap_len : 64;
		while (len <= idx)
			len *= 2;
		struct uword **m = realloc(s->wmap, len * sizeof *m);
		if (!m) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		memset(m + s->wmap_len, 0, (len - s->wmap_len) * sizeof *m);
		s->wmap = m;
		s->wmap_len = len;
	}
	struct uword *w = s->wmap[idx];
	if (w && w->it == it)
		w->expected = it->expected;
	if (w && w->it == it && (w->collected || w->deferred || w->inl)) {
		/* its completion (or deferred re-check) is about to be
		 * processed against the new expected value, and re-queued if
		 * check() keeps watching; the inline sleeper compares the
		 * word with the new value when it wakes, so wake it */
		if (w->inl)
			ring_bell(s);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	struct uword *nw = NULL;
	if (!w || w->it != it || w->inflight) {
		/* first: if this fails, a record in flight keeps watching */
		nw = calloc(1, sizeof *nw);
		if (!nw) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
	}
	if (w && (w->it != it || w->inflight)) {
		/* another tenant's, or waiting for an older expected value */
		word_detach(s, w);
		w = s->wmap[idx] = NULL;
	}
	if (!w) {
		w = nw;
		w->it = it;
		w->addr = it->addr;
		w->shared = it->shared;
		w->expected = it->expected;
		w->next_all = s->words;
		s->words = w;
		s->wmap[idx] = w;
	}
	make_loose(s, w);
	s->inline_fail = 0; /* a new vector: futex_waitv may take it */
	if (ring_sleepers(s) > 0) {
		/* now, for a waiter asleep in the ring (it would not submit
		 * it); else the next sleeper takes it */
		queue_loose(s);
		unsigned n = sq_pending(&s->r);
		if (n && enter(s, n, 0, 0, NULL, 0) < 0)
			s->submit_errors++;
	} else if (s->inl) {
		ring_bell(s); /* the inline sleeper adds it to its vector */
	}
	pass_lead(s); /* K2: followers only, nobody watches the ring */
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void ur_word_disarm(struct evq *q, struct evq__reg *r)
{
	struct uring_state *s = st(q);
	pthread_mutex_lock(&s->lock);
	/* r->ext may be gone already (a del hook clears it first): the
	 * record is found by the registration's slot */
	if (r->idx < s->wmap_len && s->wmap[r->idx]) {
		struct uword *w = s->wmap[r->idx];
		s->wmap[r->idx] = NULL;
		word_detach(s, w); /* O3 */
	}
	pthread_mutex_unlock(&s->lock);
}
#endif /* EVQ_URING_NATIVE_WORDS */

/* Runs check() for collected completions, and for words whose re-queue
 * was deferred.  Called with s->lock held and q->lock not held; returns
 * with s->lock held.  *woken = 1 if a check() posted and so kicked this
 * very waiter (the kick is absorbed, see ur_wake).
 *
 * Deferral: when a check() posted an event and nobody sleeps in the ring,
 * the word's next FUTEX_WAIT is not queued now but by the next wait(),
 * after one more check().  The caller typically reacts to the event
 * first - evq_latch_reset() changes the word - and a FUTEX_WAIT queued
 * before that would complete at once with -EAGAIN, costing a whole extra
 * round through the ring per event.  Nothing is missed meanwhile: nobody
 * waits, the re-check sees any change, and a thread entering the ring
 * first runs this (ur_wait re-checks s->rearm after sleepers++). */
static void process_words(struct evq *q, struct uring_state *s, int *woken)
{
	if (!s->done && !s->rearm)
		return;
	if (pthread_mutex_trylock(&q->lock) != 0) {
		/* the lock order is q->lock, then s->lock */
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_lock(&q->lock);
		pthread_mutex_lock(&s->lock);
	}
	tl_checking = s;
	struct uword *list = s->rearm;
	s->rearm = NULL;
	while (list) {
		struct uword *w = list;
		list = w->next_rearm;
		w->deferred = 0;
		if (!w->it || !w->it->active) {
			word_free_if_done(s, w);
			continue;
		}
		if (w->it->check(w->it, 0) && w->it->active) {
			w->expected = w->it->expected;
			make_loose(s, w);
		} else {
			w->it->active = 0;
		}
	}
	list = s->done;
	s->done = NULL;
	while (list) {
		struct uword *w = list;
		list = w->next_done;
		w->collected = 0;
		if (!w->it || !w->it->active) {
			if (w->it && w->res == 0)
				evq__futex_wake(w->addr, 1, w->shared); /* X2 */
			word_free_if_done(s, w);
			continue;
		}
		if (w->res < 0 && w->res != -EAGAIN && w->res != -ECANCELED &&
		    w->res != -EINTR) {
			/* -EFAULT, -EINVAL: report (EVQ_ERR), stop, never spin */
			w->it->check(w->it, EVQ_WATCH_FAULT);
			w->it->active = 0;
			s->inline_fail = 0; /* the vector lost the bad word */
			continue;
		}
		unsigned kicks = tl_kicked;
		int keep = w->res == -ECANCELED || w->it->check(w->it, w->res == 0);
		w->expected = w->it->expected;
		if (!keep || !w->it->active) {
			w->it->active = 0;
		} else if (tl_kicked != kicks && atomic_load(&s->sleepers) == 0) {
			w->deferred = 1; /* posted: see above */
			w->next_rearm = s->rearm;
			s->rearm = w;
		} else {
			make_loose(s, w); /* for the next sleeper (leave()) */
		}
	}
	tl_checking = NULL;
	if (tl_kicked) {
		tl_kicked = 0;
		*woken = 1;
	}
	pthread_mutex_unlock(&q->lock);
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A poll (timeout 0) sleeps nowhere, so nobody watches the loose words
 * (armed, in neither the ring nor an inline vector): read them.  A word
 * that no longer holds its expected value goes to check() as if its wait
 * had failed with -EAGAIN; the others stay loose.  Without this a caller
 * that only polls, or a queue kept busy by other sources (the core polls
 * then), would never see them (evq.c, fairness).  Locked. */
static void poll_loose(struct uring_state *s)
{
	struct uword *list = take_loose(s);
	while (list) {
		struct uword *w = list;
		list = w->next_loose;
		w->loose = 0;
		if (!w->it)
			word_free_if_done(s, w);
		else if (evq__ld(w->addr) != w->expected)
			collect_word(s, w, -EAGAIN);
		else
			make_loose(s, w);
	}
}

/* timeout 0: one epoll_pwait2 on the set, as the epoll backend does (an
 * EPOLL_WAIT request would stay armed after finding nothing); none at all
 * when no fd is registered and no signal mask is to be applied.  The
 * system call itself, not glibc's epoll_pwait2: that one is a cancellation
 * point, and a cancel acting as it returns (glibc checks after the call
 * too) lost the events it had just taken - no handler here parks them, and
 * an edge-triggered fd does not report them again (tests/cancel race:
 * "edges lost 1").  A poll is not a sleep: evq_wait(3) is a cancellation
 * point at its entry and in its sleeps. */
static int poll_now(struct uring_state *s, const sigset_t *sigmask,
		    struct evq__ready *out, int max)
{
	struct epoll_event evs[EVQ_BATCH_MAX];
	struct timespec zero = { 0, 0 };
	if (!sigmask && atomic_load(&s->nfds) == 0)
		return 0;
	if (max > EVQ_BATCH_MAX)
		max = EVQ_BATCH_MAX;
	int n = (int)syscall(SYS_epoll_pwait2, s->epfd, evs, max, &zero, sigmask,
			     (size_t)(_NSIG / 8));
	if (n < 0)
		return -errno;
	struct slot tmp = { .pos = 0, .count = n, .buf = evs };
	return take_slot(&tmp, out, max);
}

/*
 * Inline sleep.  io_uring's own FUTEX_WAIT costs about 1.3x a futex system
 * call per round trip (submission, task work, completion) before evq does
 * anything, so a queue watching memory through the ring cannot come close
 * to a raw futex.  When nothing needs the ring - no fd registered (no
 * EPOLL_WAIT), no sigmask to swap in, no other thread asleep - the leader
 * sleeps in the kernel's futex call itself: futex_waitv(2) over the bell
 * and every armed word (at most 127), each with the value it is expected
 * to hold, or FUTEX_WAIT on the bell alone when no word is armed.  That is
 * the watcher thread's protocol (model/word.pml) run by the waiter, with
 * the bell as its control word:
 *   I1 sleepers++, inl = 1; read the bell (B1); if a wake() is pending, a
 *      word waits for its deferred re-check or an fd was added (K2 rings
 *      the bell after nfds++): back out;
 *   I2 take the loose words (armed, watched by nobody) into the vector,
 *      each marked inl, with its expected value as of its last arm or
 *      check(); drop s->lock; sleep;
 *   I3 retake s->lock; inl = 0, sleepers--, inl_gen++; a word woken or no
 *      longer holding its value goes to check() (as a completion, on
 *      s->done); the others are loose again; after any wake, a word
 *      detached meanwhile gets one wake passed on (X2: futex_waitv names
 *      only the last entry woken, and the others may have taken a wake
 *      too); signal inl_cv.
 * Nothing is missed: the kernel compares every word and the bell as it
 * queues the sleep, so a change after I2 read them ends the sleep at once.
 * Whoever changes what the sleeper watches rings the bell: wake() (K1),
 * the first fd add (it needs the ring), word_arm() (a new word or a new
 * expected value), leave() (words made loose by another thread, or words
 * left in flight in the ring by a sigmask sleeper).  word_disarm() of a
 * word in the vector rings it and waits on inl_cv for I3, so that when it
 * returns the kernel no longer sleeps on the word (O3) and a wake taken
 * for it has been passed on.  Words in flight in the ring are cancelled
 * (IORING_REGISTER_SYNC_CANCEL) before a sleep goes inline: a word is
 * watched by the ring or by the inline sleeper, never by both.
 *
 * The cost: the waiter runs the futex calls a hand-written program would
 * (one futex_waitv to sleep, the setter's FUTEX_WAKE to wake it), and -
 * the one difference in behaviour - the kernel restarts a futex_waitv
 * interrupted by a signal handler installed with SA_RESTART instead of
 * failing it with EINTR, so such a handler does not end evq_wait with
 * -EINTR while a queue that watches words and no fd sleeps inline.  A
 * wait with only the bell uses FUTEX_WAIT with a deadline, which returns
 * -EINTR after any handler, as epoll_wait and io_uring_enter do; a caller
 * that passes a sigmask sleeps in the ring and gets -EINTR too.
 * EVQ_URING_INLINE=0 in the environment turns the inline sleep off (in
 * the test build: config.c).
 */

/* 1 if the next sleep may be inline (the ring's words aside).  Locked. */
static int inline_fits(struct uring_state *s)
{
	return s->inline_ok && !s->inline_fail && atomic_load(&s->nfds) == 0 &&
	       atomic_load(&s->sleepers) == 0 && s->nloose < FUTEX_WAITV_MAX;
}

/* Cancels every word's FUTEX_WAIT in the ring; their completions
 * (-ECANCELED) make them loose again.  Locked. */
static void cancel_ring_words(struct uring_state *s)
{
	for (struct uword *w = s->words; w; w = w->next_all) {
		if (w->inflight)
			cancel_word(s, w);
	}
}

/* I1-I3.  Returns 1 if it backed out at I1 (nothing slept), else 0 with
 * *rc the futex call's result.  Locked, as on return. */
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

static void inline_end(struct uring_state *s, const struct futex_waitv *vec,
		       struct uword *const *vw, unsigned n, int rc);

static void ur_cancelled(void *arg)
{
	evq__asan_unstale(); /* first: stale redzones below (evq.c) */
	struct ur_sleep *c = arg;
	struct uring_state *s = c->s;
	pthread_mutex_lock(&s->lock);
	if (c->where == SLEPT_FOLLOWER) {
		s->nfollow--;
	} else if (c->where == SLEPT_INLINE) {
		inline_end(s, c->vec, c->vw, c->n, 0);
	} else {
		atomic_fetch_sub(&s->sleepers, 1);
		reap(s);
	}
	leave(s);
	pass_lead(s); /* L2 */
	pthread_mutex_unlock(&s->lock);
}

/* The futex call of the inline sleep, a cancellation point. */
static int inline_futex(uint32_t *bell, uint32_t seen, struct futex_waitv *vec,
			unsigned n, int64_t t)
{
	struct timespec dl;
	int rc, old = evq__cancel_async();
	if (n == 1) {
		/* FUTEX_WAIT with a deadline: -EINTR after any handler */
		dl = evq__deadline(t >= 0 ? t : (int64_t)86400 * 1000000000);
		rc = evq__futex_wait(bell, seen, &dl, 0);
	} else {
		if (t >= 0)
			dl = evq__deadline(t);
		rc = evq__futex_waitv(vec, n, t >= 0 ? &dl : NULL);
	}
	evq__cancel_deferred(old);
	return rc;
}

static int sleep_inline(struct uring_state *s, int64_t t, int *rc)
{
	struct futex_waitv vec[FUTEX_WAITV_MAX];
	struct uword *vw[FUTEX_WAITV_MAX];
	atomic_fetch_add(&s->sleepers, 1);
	s->inl = 1;
	uint32_t seen = evq__ld(&s->bell); /* B1 */
	/* nfds again after B1: an fd added since inline_fits() rang the bell
	 * before we read it (K2), so the futex would sleep through it */
	if (atomic_load(&s->wpend) || s->rearm || atomic_load(&s->nfds) > 0) {
		s->inl = 0;
		atomic_fetch_sub(&s->sleepers, 1);
		return 1;
	}
	memset(&vec[0], 0, sizeof vec[0]);
	vec[0].val = seen;
	vec[0].uaddr = (uint64_t)(uintptr_t)&s->bell;
	vec[0].flags = evq__waitv_flags(0);
	unsigned n = 1;
	struct uword *list = take_loose(s);
	while (list) {
		struct uword *w = list;
		list = w->next_loose;
		w->loose = 0;
		if (!w->it) {
			word_free_if_done(s, w);
		} else if (n == FUTEX_WAITV_MAX) {
			make_loose(s, w); /* not reached: inline_fits() */
		} else {
			memset(&vec[n], 0, sizeof vec[n]);
			vec[n].val = w->expected;
			vec[n].uaddr = (uint64_t)(uintptr_t)w->addr;
			vec[n].flags = evq__waitv_flags(w->shared);
			vw[n++] = w;
			w->inl = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);

	struct ur_sleep c = { s, SLEPT_INLINE, 0, vec, vw, n };
	pthread_cleanup_push(ur_cancelled, &c);
	c.rc = inline_futex(&s->bell, seen, vec, n, t);
	pthread_cleanup_pop(0);
	*rc = c.rc;

	pthread_mutex_lock(&s->lock);
	inline_end(s, vec, vw, n, *rc);
	return 0;
}

/* I3: the inline sleep ended with rc.  Locked. */
static void inline_end(struct uring_state *s, const struct futex_waitv *vec,
		       struct uword *const *vw, unsigned n, int rc)
{
	s->inl = 0;
	atomic_fetch_sub(&s->sleepers, 1);
	s->inl_gen++;
	/* e.g. -EFAULT: a word's memory is gone; load none of them */
	int failed = rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT && rc != -EINTR;
	for (unsigned i = 1; i < n; i++) {
		struct uword *w = vw[i];
		w->inl = 0;
		if (!w->it) {
			/* X2: pass one wake on if it may have taken one (a
			 * spurious wakeup at worst; the word is valid until
			 * word_disarm returns, which waits for this) */
			if (rc >= 0)
				evq__futex_wake(w->addr, 1, w->shared);
			word_free_if_done(s, w);
			continue;
		}
		if (failed) {
			make_loose(s, w);
			continue;
		}
		/* futex_waitv names only the last entry woken, and an entry
		 * stays queued until this thread runs: after any wake
		 * (rc >= 0), an entry whose word changed may have taken a
		 * FUTEX_WAKE too (model/inline.pml, run TWO) */
		uint32_t v = evq__ld(w->addr);
		int woken = rc == (int)i || (rc >= 0 && v != (uint32_t)vec[i].val);
		if (woken || v != w->expected) {
			/* woken: res 0, so that an idle word passes it on (X2
			 * in process_words) */
			collect_word(s, w, woken ? 0 : -EAGAIN);
		} else {
			make_loose(s, w);
		}
	}
	if (s->inl_waiters)
		pthread_cond_broadcast(&s->inl_cv);
	if (failed)
		s->inline_fail = 1; /* the ring tells which word (process_words) */
}

/*
 * Leader and followers (issue 5: one wakeup per event).  Every completion
 * posted to the ring wakes every thread asleep in its io_uring_enter (the
 * CQ wait queue is woken whole), so several threads sleeping in the ring
 * made a herd of them per event.  Now a thread sleeps in the ring only if
 * nobody else does (the leader; s->sleepers == 1) or if it passes a
 * sigmask (the ring applies that atomically; such callers keep the old
 * shared-ring behaviour among themselves).  The others are followers: they
 * sleep on the futex word s->fword (FUTEX_WAIT_BITSET with an absolute
 * deadline: -EINTR after a signal handler ran, transparently restarted by
 * io_uring task work), and a follower whose sleep ends re-runs wait() from
 * the top: it takes the ring if it is free, else it follows again.
 *
 * The ring is left empty (no handover, so one event costs one wakeup)
 * when only a wake() could end a sleep; otherwise a leaving thread hands
 * the ring to one follower.  The rules:
 *   F1 follow only if sleepers > 0, nfollow++ - both under s->lock, after
 *      leave() (a NOP for a ring sleeper whose completion we reaped);
 *   L1 a wake() is consumed by whichever wait() clears wpend
 *      (take_wake, under s->lock);
 *   L2 every thread leaving wait(): sleepers-- (if it was in the ring),
 *      then pass_lead(): if sleepers == 0 and nfollow > 0 and (wpend, or
 *      fds registered (nfds), or word records, leftovers, an error):
 *      FUTEX_WAKE one follower;
 *   K1 wake(): wpend = 1, ring the bell (FUTEX_WAKE of the ring's bell
 *      request if sleepers > 0), then if sleepers == 0 and nfollow > 0:
 *      FUTEX_WAKE one follower;
 *   B1 a ring sleeper: sleepers++, read the bell, then look at wpend
 *      (set: back to the top, where L1 consumes it) and nfds, then arm
 *      the bell's FUTEX_WAIT for the value read (arm_bell);
 *   K2 fd_ctl ADD/MOD: nfds++ (ADD), then as K1's last step; word_arm:
 *      pass_lead().
 * wpend/sleepers and nfds/sleepers are seq_cst pairs (Dekker): either the
 * leaving leader sees the wake (or the fd) and hands over, or wake()
 * (fd_ctl) sees the ring empty and wakes a follower itself; a follower
 * registers under the lock the leader leaves under, so the leader counts
 * it.  The wake itself is wpend, consumed by exactly one wait() (L1; the
 * core sends one wake() at a time: wake_sent).
 * While fds or words are registered every leaving thread hands over (two
 * wakeups per event with followers, not one per thread), because their
 * events reach nobody but a ring sleeper.  Timeouts: a follower sleeps to
 * its own deadline; the ring's leader to its own.
 * model/leader.pml checks these rules (steps named as here) with the
 * inline sleep and fds: while a thread waits, no wake() and no fd event is
 * left pending (teeth NOPASSLEAD, LATEBELL, NOKFOLLOW, NOKBELL, NOINLFDS).
 */
/* A follower's sleep on fword, a cancellation point. */
static int follow_futex(uint32_t *fword, uint32_t seq, const struct timespec *dl)
{
	int old = evq__cancel_async();
	int rc = evq__futex_wait(fword, seq, dl, 0);
	evq__cancel_deferred(old);
	return rc;
}

/* The ring's sleep (it also submits), a cancellation point. */
static int ring_enter(struct uring_state *s, unsigned to_submit,
		      const struct io_uring_getevents_arg *arg)
{
	int old = evq__cancel_async();
	int rc = enter(s, to_submit, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
		       arg, sizeof *arg);
	evq__cancel_deferred(old);
	return rc;
}

static int follow_sleep(struct uring_state *s, uint32_t seq, const struct timespec *dl)
{
	struct ur_sleep c = { s, SLEPT_FOLLOWER, 0, NULL, NULL, 0 };
	pthread_cleanup_push(ur_cancelled, &c);
	c.rc = follow_futex(&s->fword, seq, dl);
	pthread_cleanup_pop(0);
	return c.rc;
}

static int ring_sleep(struct uring_state *s, unsigned to_submit,
		      const struct io_uring_getevents_arg *arg)
{
	struct ur_sleep c = { s, SLEPT_RING, 0, NULL, NULL, 0 };
	pthread_cleanup_push(ur_cancelled, &c);
	c.rc = ring_enter(s, to_submit, arg);
	pthread_cleanup_pop(0);
	return c.rc;
}

static int ur_wait(struct evq *q, int64_t timeout_ns, const sigset_t *sigmask,
		   struct evq__ready *out, int max, struct evq__round *round)
{
	int *woken = &round->woken;
	struct uring_state *s = st(q);
	int64_t end = 0, t = timeout_ns;
	if (timeout_ns > 0) {
		end = mono_ns();
		end = timeout_ns > INT64_MAX - end ? INT64_MAX : end + timeout_ns;
	}
	int frc = 1; /* the last follower sleep's result; 1: none yet */
	int cancelled = 0; /* ring words were cancelled for an inline sleep */
	int slept = 0; /* this call slept (as follower; the ring and inline
			* sleeps return from where they are) */
	int k;
	*woken = 0;
	pthread_mutex_lock(&s->lock);
again:
	for (;;) {
		if (timeout_ns == 0 && sq_pending(&s->r) &&
		    enter(s, sq_pending(&s->r), 0, 0, NULL, 0) < 0)
			s->submit_errors++; /* re-armed words (process_words) */
		reap(s);
		if (timeout_ns == 0)
			poll_loose(s);
		process_words(q, s, woken);
		take_wake(s, woken);
		k = take(s, out, max);
		if (k > 0 || *woken || s->err || timeout_ns == 0) {
			if (k == 0 && !*woken && s->err) {
				k = s->err;
				s->err = 0;
			}
			leave(s);
			pass_lead(s);
			pthread_mutex_unlock(&s->lock);
			/* A wake pending before this call slept says nothing
			 * about the fds: look at them too, or a stream of wakes
			 * that deliver nothing (say, triggers of a disabled user
			 * event) keeps every ready fd from being reported. */
			if (k == 0 && (timeout_ns == 0 || (*woken && !slept)))
				k = poll_now(s, sigmask, out, max);
			return k;
		}
		if (frc == -EINTR) {
			leave(s);
			pass_lead(s);
			pthread_mutex_unlock(&s->lock);
			return -EINTR;
		}
		if (timeout_ns > 0 && (t = end - mono_ns()) <= 0) {
			/* the time is up before any sleep (a short timeout, or
			 * a follower's sleep ran out): end with a poll, as
			 * epoll_wait would, so that nothing ready is left out */
			timeout_ns = 0;
			continue;
		}
		if (sigmask || atomic_load(&s->sleepers) == 0)
			break; /* the ring */
		/* F1: follow.  leave() first: this thread may have reaped the
		 * completion the ring's sleeper waits for (its submission and
		 * its wait are one enter, not atomic with our reaping), and
		 * then that sleeper needs a NOP, as in the old multi-sleeper
		 * design. */
		leave(s);
		uint32_t seq = evq__ld(&s->fword);
		s->nfollow++;
		pthread_mutex_unlock(&s->lock);
		struct timespec dl = evq__deadline(timeout_ns > 0 ? t : (int64_t)86400 * 1000000000);
		frc = follow_sleep(s, seq, &dl);
		slept = 1;
		pthread_mutex_lock(&s->lock);
		s->nfollow--;
	}

	if (!sigmask && inline_fits(s) && (s->nring == 0 || !cancelled)) {
		int irc;
		if (s->nring > 0) {
			/* once per wait: if their completions are not in by
			 * the next round, this wait sleeps in the ring */
			cancel_ring_words(s);
			cancelled = 1;
			goto again;
		}
		if (sleep_inline(s, t, &irc))
			goto again; /* I1: a wake() or a re-check is pending */
		reap(s);
		process_words(q, s, woken);
		take_wake(s, woken);
		k = take(s, out, max);
		if (k > 0 || *woken || irc == -EINTR || irc == -ETIMEDOUT) {
			leave(s);
			pass_lead(s); /* L2 */
			pthread_mutex_unlock(&s->lock);
			return k > 0 || *woken ? k : irc == -EINTR ? -EINTR : 0;
		}
		goto again; /* a word changed without an event, or a ring */
	}

	s->sleepers++;
	uint32_t seen = evq__ld(&s->bell); /* B1: before wpend and nfds */
	if (atomic_load(&s->wpend) || s->rearm) {
		/* a wake() came in (K1: it saw no ring sleeper), or another
		 * thread deferred a word's re-queue: the top of the loop */
		s->sleepers--;
		goto again;
	}
	arm_bell(s, seen);
	queue_loose(s);
	if ((!s->bell_armed || s->loose) && (t < 0 || t > 1000000))
		t = 1000000; /* no SQE for the bell or a word (the kernel kept
			      * refusing submissions): a wake() or the word
			      * could not end this sleep, so it lasts 1 ms and
			      * the core asks again */
	int epolling = 0; /* this thread armed an EPOLL_WAIT + LINK_TIMEOUT */
	if (atomic_load(&s->nfds) > 0 && s->inflight - s->cancelling < ring_sleepers(s)) {
		if (arm_one(s, max, t))
			epolling = t >= 0 && s->r.sq_entries >= 2;
		else if (t < 0 || t > 1000000)
			t = 1000000; /* no EPOLL_WAIT (its buffer could not be
				      * mapped, or the SQ stayed full): as above,
				      * for the fds */
	}
	unsigned to_submit = sq_pending(&s->r);
	unsigned reaped = s->reaped;
	pthread_mutex_unlock(&s->lock);

	/* The LINK_TIMEOUT ends the sleep on time; the enter's own timeout,
	 * a little later, only guards against another thread having reaped
	 * that completion. */
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg = { 0 };
	int64_t start = 0;
	if (sigmask) {
		arg.sigmask = (uint64_t)(uintptr_t)sigmask;
		arg.sigmask_sz = _NSIG / 8;
	}
	if (t > 0) {
		/* with no LINK_TIMEOUT, the enter's own timeout is the one */
		int64_t guard = !epolling || t > INT64_MAX - 1000000 ? t : t + 1000000;
		ts.tv_sec = guard / 1000000000;
		ts.tv_nsec = guard % 1000000000;
		arg.ts = (uint64_t)(uintptr_t)&ts;
		start = mono_ns();
	}
	int rc = ring_sleep(s, to_submit, &arg);

	pthread_mutex_lock(&s->lock);
	s->sleepers--;
	if (rc == -EBUSY || rc == -EAGAIN)
		s->submit_errors++;
	int got = reap(s);
	process_words(q, s, woken);
	take_wake(s, woken);
	k = take(s, out, max);
	if (k == 0 && !*woken && s->err) {
		k = s->err;
		s->err = 0;
	} else if (k == 0 && !*woken && got == 0 && s->reaped == reaped) {
		if (rc == -EINTR)
			k = -EINTR;
		else if (rc > 0 && (unsigned)rc == to_submit &&
			 (t < 0 || mono_ns() - start < t))
			/* the enter both submitted and waited, which hides the
			 * wait's -EINTR: time left and nothing came, so it was
			 * a signal */
			k = -EINTR;
	}
	leave(s);
	pass_lead(s); /* L2 */
	pthread_mutex_unlock(&s->lock);
	/* -ETIME: timeout; -EBUSY/-EAGAIN: the SQEs stay queued and go with
	 * the next enter; both look like an empty round to the core */
	return k;
}

static void ur_wake(struct evq *q)
{
	struct uring_state *s = st(q);
	if (tl_checking == s) {
		/* a check() of this waiter posted: it collects the post itself
		 * and reports the wake consumed (*woken) */
		tl_kicked++;
		return;
	}
	int saved = errno;
	atomic_store(&s->wpend, 1); /* K1 */
	ring_bell(s);
	if (atomic_load(&s->sleepers) == 0 && atomic_load(&s->nfollow) > 0)
		wake_follower(s);
	errno = saved;
}

const struct evq__backend evq__backend_uring = {
	.name = "uring",
	.init = ur_init,
	.fini = ur_fini,
	.fd_ctl = ur_fd_ctl,
	.wait = ur_wait,
	.wake = ur_wake,
#if EVQ_URING_NATIVE_WORDS
	.word_arm = ur_word_arm,
	.word_disarm = ur_word_disarm,
#else
	.word_arm = NULL,    /* the watcher thread: see EVQ_URING_NATIVE_WORDS */
	.word_disarm = NULL,
#endif
};
