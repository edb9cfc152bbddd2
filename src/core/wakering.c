/* SPDX-License-Identifier: MIT */
/*
 * wakering.c - the process-wide wake ring (wakering.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "futex.h"
#include "backend/uring/ring.h"
#include "core/wakering.h"

/*
 * One small ring per process, apart from every queue (evq_latch_set_many
 * needs none).  evq__uring_wake_batch (wakering.h) turns each word into an
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

#ifdef MADV_WIPEONFORK
EVQ__ABI(MADV_WIPEONFORK, 18);
#else
#define MADV_WIPEONFORK 18
#endif

static struct {
	struct evq__ring r;   /* the ring; r.fd < 0: none */
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
	int rc = evq__ring_setup(EVQ_WAKE_BATCH_MAX, &p);
	if (rc < 0)
		return rc;
	wr.r.fd = rc;
	static const unsigned need[] = { IORING_OP_FUTEX_WAKE };
	if (!(p.features & IORING_FEAT_CQE_SKIP) || p.sq_entries < EVQ_WAKE_BATCH_MAX ||
	    !evq__ring_probe(wr.r.fd, need, 1))
		rc = -ENOSYS;
	else
		rc = evq__ring_map(&wr.r, &p);
	if (rc < 0) {
		evq__ring_unmap(&wr.r);
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
		evq__ring_unmap(&wr.r);
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

/* Rounds of reaping while the kernel reports an overflow backlog: bounded,
 * since the enter that flushes it may keep failing, and the caller must
 * not spin (a later batch reaps what is left; stale CQEs are told apart
 * by their batch number). */
#define WR_REAP_ROUNDS 4

/* Redoes the wakes whose requests failed (the only completions: success
 * skips its CQE), flushing a kernel CQ backlog too.  wr_busy held. */
static void wr_reap(uint32_t *const *words, uint64_t shared_mask, int n, unsigned seq)
{
	struct evq__ring *r = &wr.r;
	for (int round = 0; round < WR_REAP_ROUNDS; round++) {
		unsigned head = *r->cq_head;
		unsigned tail = evq__cq_tail(r);
		for (; head != tail; head++) {
			const struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
			int i = (int)(c->user_data & 0xff);
			if (c->res < 0 && (unsigned)(c->user_data >> 8) == seq && i < n)
				evq__futex_wake(words[i], INT_MAX, wr_shared(shared_mask, i));
		}
		evq__cq_set_head(r, head);
		if (!evq__cq_overflowed(r))
			break;
		if (evq__ring_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			break;
	}
}

/* The batch itself.  wr_busy held, the ring open. */
static void wr_submit(uint32_t *const *words, uint64_t shared_mask, int n)
{
	struct evq__ring *r = &wr.r;
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
	evq__sq_set_tail(r, tail + (unsigned)n);
	int got = evq__ring_enter(r->fd, (unsigned)n, 0, 0, NULL, 0);
	if (got < n) {
		/* -EBUSY, -EAGAIN, -EINTR, or short: take the rest back (the
		 * head is where the kernel stopped) and wake it directly */
		if (got < 0)
			got = 0;
		evq__sq_set_tail(r, evq__sq_head(r));
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
