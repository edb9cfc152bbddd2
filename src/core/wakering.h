/* SPDX-License-Identifier: MIT */
/*
 * wakering.h - the process-wide wake ring: evq_latch_set_many's wakes in
 * one io_uring_enter (wakering.c).  Not a backend: it needs no queue and
 * works whichever backend the queues use.
 *
 * Contract:
 *   W1 evq__uring_wake_batch wakes every waiter of words[0..n) (n <=
 *      EVQ_WAKE_BATCH_MAX; bit i of shared_mask set: words[i] is
 *      process-shared, else private) with IORING_OP_FUTEX_WAKE requests
 *      submitted in one io_uring_enter, and returns n once every wake has
 *      been issued (a request the kernel did not take or that failed is
 *      redone with FUTEX_WAKE before returning).
 *   W2 -ENOSYS: this process has no wake ring (refused, or built with
 *      -DEVQ_URING_ENABLED=0); -EBUSY: another thread, or a signal
 *      handler's interrupted caller, holds it.  Either way nothing was
 *      woken and the caller wakes the words itself.  -EINVAL: bad n or
 *      words.
 *   W3 lock-free (a try-flag, never a lock), async-signal-safe, preserves
 *      errno; no allocation.
 *   W4 fork: a child never submits on its parent's ring (it makes its own).
 */
#ifndef EVQ_WAKERING_H
#define EVQ_WAKERING_H

#include <stdint.h>

#define EVQ_WAKE_BATCH_MAX 64
int evq__uring_wake_batch(uint32_t *const *words, uint64_t shared_mask, int n);

/* For tests: the wake ring's fd if this process has created its own,
 * -ENOSYS if it has none (yet), -EBUSY if it is in use. */
int evq__wake_ring_fd(void);

#endif /* EVQ_WAKERING_H */
