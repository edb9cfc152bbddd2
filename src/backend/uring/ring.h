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
#include <stddef.h>
#include <string.h>

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

#ifndef IORING_FEAT_CQE_SKIP
#define IORING_FEAT_CQE_SKIP (1U << 11)
#endif
#ifndef IOSQE_CQE_SKIP_SUCCESS
#define IOSQE_CQE_SKIP_SUCCESS (1U << 6)
#endif

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

/* Next free SQE, zeroed, or NULL when the SQ is full.  Locked. */
static inline struct io_uring_sqe *evq__sqe_get(struct evq__ring *r)
{
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
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
	__atomic_store_n(r->sq_tail, *r->sq_tail + 1, __ATOMIC_RELEASE);
}

/* SQEs published but not consumed by the kernel yet. */
static inline unsigned evq__sq_pending(struct evq__ring *r)
{
	return *r->sq_tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
}

#endif /* EVQ_URING_RING_H */
