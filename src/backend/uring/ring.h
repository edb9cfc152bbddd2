/* SPDX-License-Identifier: MIT */
/*
 * ring.h - a raw io_uring, on system calls (no liburing): setup, mmap, the
 * SQE get/push and the CQ indices.  Used by the io_uring backend
 * (backend/uring/) and by the process-wide wake ring (core/wakering.c).
 *
 * Locking is the user's: one submitter and one reaper at a time (the
 * backend's s->lock, the wake ring's try-flag).
 */
#ifndef EVQ_URING_RING_H
#define EVQ_URING_RING_H

#include <linux/io_uring.h>
#include <linux/version.h>
#include <stddef.h>
#include <string.h>

/*
 * Kernel ABI values and layouts this code hands to the kernel, each
 * checked at compile time (the kernel never changes them: the op enum
 * only grows, flags and structs are fixed).
 *
 * Ops: <linux/io_uring.h> declares them in an enum, which #ifdef cannot
 * see, so the header's version says whether it has them (futex and waitid
 * ops: 6.7; EPOLL_WAIT: 6.15).  A header that has them must agree with the
 * values below; an older one (Debian 12's are 6.1) gets them from here.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
_Static_assert(IORING_OP_WAITID == 50, "IORING_OP_WAITID is 50");
_Static_assert(IORING_OP_FUTEX_WAIT == 51, "IORING_OP_FUTEX_WAIT is 51");
_Static_assert(IORING_OP_FUTEX_WAKE == 52, "IORING_OP_FUTEX_WAKE is 52");
_Static_assert(IORING_OP_FUTEX_WAITV == 53, "IORING_OP_FUTEX_WAITV is 53");
#else
#define IORING_OP_WAITID 50
#define IORING_OP_FUTEX_WAIT 51
#define IORING_OP_FUTEX_WAKE 52
#define IORING_OP_FUTEX_WAITV 53
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
_Static_assert(IORING_OP_EPOLL_WAIT == 59, "IORING_OP_EPOLL_WAIT is 59");
#else
#define IORING_OP_EPOLL_WAIT 59
#endif
/* the older ops it uses, from every header since 5.6 */
_Static_assert(IORING_OP_NOP == 0, "IORING_OP_NOP is 0");
_Static_assert(IORING_OP_ASYNC_CANCEL == 14, "IORING_OP_ASYNC_CANCEL is 14");
_Static_assert(IORING_OP_LINK_TIMEOUT == 15, "IORING_OP_LINK_TIMEOUT is 15");

/* Flags: macros, defined here where the header lacks them, checked where
 * it has them. */
#ifdef IORING_SETUP_SUBMIT_ALL
_Static_assert(IORING_SETUP_SUBMIT_ALL == (1U << 7), "IORING_SETUP_SUBMIT_ALL");
#else
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifdef IORING_FEAT_CQE_SKIP
_Static_assert(IORING_FEAT_CQE_SKIP == (1U << 11), "IORING_FEAT_CQE_SKIP");
#else
#define IORING_FEAT_CQE_SKIP (1U << 11)
#endif
#ifdef IOSQE_CQE_SKIP_SUCCESS
_Static_assert(IOSQE_CQE_SKIP_SUCCESS == (1U << 6), "IOSQE_CQE_SKIP_SUCCESS");
#else
#define IOSQE_CQE_SKIP_SUCCESS (1U << 6)
#endif

/* The structs the kernel reads or writes, as the kernel lays them out. */
_Static_assert(sizeof(struct io_uring_sqe) == 64, "an SQE is 64 bytes");
_Static_assert(offsetof(struct io_uring_sqe, opcode) == 0 &&
	       offsetof(struct io_uring_sqe, flags) == 1 &&
	       offsetof(struct io_uring_sqe, fd) == 4 &&
	       offsetof(struct io_uring_sqe, off) == 8 &&
	       offsetof(struct io_uring_sqe, addr) == 16 &&
	       offsetof(struct io_uring_sqe, len) == 24 &&
	       offsetof(struct io_uring_sqe, user_data) == 32,
	       "SQE layout");
_Static_assert(sizeof(struct io_uring_cqe) == 16 &&
	       offsetof(struct io_uring_cqe, user_data) == 0 &&
	       offsetof(struct io_uring_cqe, res) == 8,
	       "CQE layout (no IORING_SETUP_CQE32)");
_Static_assert(sizeof(struct io_uring_getevents_arg) == 24 &&
	       offsetof(struct io_uring_getevents_arg, ts) == 16,
	       "io_uring_getevents_arg layout");
_Static_assert(sizeof(struct io_uring_sync_cancel_reg) == 64 &&
	       offsetof(struct io_uring_sync_cancel_reg, timeout) == 16,
	       "io_uring_sync_cancel_reg layout");
_Static_assert(sizeof(struct io_uring_probe) == 16 &&
	       sizeof(struct io_uring_probe_op) == 8,
	       "io_uring_probe layout");
_Static_assert(sizeof(struct __kernel_timespec) == 16,
	       "__kernel_timespec is 64-bit seconds and nanoseconds");

/* -DEVQ_URING_ENABLED=0 makes init refuse (AUTO and `make check` then skip
 * this backend), e.g. to bisect a failure between backends. */
#ifndef EVQ_URING_ENABLED
#define EVQ_URING_ENABLED 1
#endif
#ifndef EVQ_URING_NATIVE_WORDS
#define EVQ_URING_NATIVE_WORDS 1
#endif

struct evq__ring {
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

int evq__ring_setup(unsigned entries, struct io_uring_params *p);
int evq__ring_enter(int fd, unsigned to_submit, unsigned min_complete,
		    unsigned flags, const void *arg, size_t argsz);
int evq__ring_register(int fd, unsigned op, void *arg, unsigned n);
int evq__ring_map(struct evq__ring *r, const struct io_uring_params *p);
void evq__ring_unmap(struct evq__ring *r);
int evq__ring_probe(int fd, const unsigned *need, size_t n);

/*
 * The shared indices.  Every acquire and release on them pairs with the
 * kernel's side (io_uring/io_uring.c; no SQPOLL here, so the kernel reads
 * the SQ only inside our io_uring_enter, but posts completions from any
 * context, e.g. task work or a waker on another CPU):
 *   sq.head  the kernel stores it with smp_store_release once it has read
 *            the SQEs (io_commit_sqring); our acquire load pairs with it,
 *            so an SQE slot is reused only after the kernel read it.
 *   sq.tail  our release store pairs with the kernel's smp_load_acquire of
 *            sq.tail (io_sqring_entries): the SQEs written before it are
 *            visible to the kernel.  Only we write it: plain reads.
 *   cq.tail  the kernel fills the CQEs, then stores cq.tail with
 *            smp_store_release (io_commit_cqring); our acquire load pairs
 *            with it, so the CQEs below it are complete.
 *   cq.head  our release store, after the CQEs are read, pairs with the
 *            kernel's load of cq.head before it reuses a slot (the free
 *            space in __io_cqring_events/io_cqe_cache_refill): it never
 *            overwrites a CQE being read.  Only we write it: plain reads.
 *   sq_flags IORING_SQ_CQ_OVERFLOW is set with atomic_or by the kernel; a
 *            relaxed load is enough: it is a hint that completions wait in
 *            the kernel's backlog, and one missed now is seen by the next
 *            reap, while a sleeping enter flushes the backlog itself.
 */

/* The kernel's SQ head: SQEs before it have been read by the kernel. */
static inline unsigned evq__sq_head(const struct evq__ring *r)
{
	return __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE); /* sq.head */
}

/* Publishes the SQEs up to tail to the kernel. */
static inline void evq__sq_set_tail(struct evq__ring *r, unsigned tail)
{
	__atomic_store_n(r->sq_tail, tail, __ATOMIC_RELEASE); /* sq.tail */
}

/* Next free SQE, zeroed, or NULL when the SQ is full.  Locked. */
static inline struct io_uring_sqe *evq__sqe_get(struct evq__ring *r)
{
	unsigned head = evq__sq_head(r);
	unsigned tail = *r->sq_tail;
	if (tail - head >= r->sq_entries)
		return NULL;
	struct io_uring_sqe *e = &r->sqes[tail & r->sq_mask];
	memset(e, 0, sizeof *e);
	return e;
}

/* Publishes the SQE evq__sqe_get() returned.  Locked. */
static inline void evq__sqe_push(struct evq__ring *r)
{
	evq__sq_set_tail(r, *r->sq_tail + 1);
}

/* SQEs published but not consumed by the kernel yet. */
static inline unsigned evq__sq_pending(struct evq__ring *r)
{
	return *r->sq_tail - evq__sq_head(r);
}

/* The kernel's CQ tail: the CQEs from *r->cq_head up to it are complete. */
static inline unsigned evq__cq_tail(const struct evq__ring *r)
{
	return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE); /* cq.tail */
}

/* Hands the CQEs before head back to the kernel, once read. */
static inline void evq__cq_set_head(struct evq__ring *r, unsigned head)
{
	__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE); /* cq.head */
}

/* Completions wait in the kernel's overflow backlog (IORING_FEAT_NODROP):
 * an enter with IORING_ENTER_GETEVENTS moves them into the CQ. */
static inline int evq__cq_overflowed(const struct evq__ring *r)
{
	return (__atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & /* sq_flags */
		IORING_SQ_CQ_OVERFLOW) != 0;
}

#endif /* EVQ_URING_RING_H */
