/* SPDX-License-Identifier: MIT */
/*
 * futex.h - raw futex system calls for word.c, sem.c, latch.c, watch.c and
 * the io_uring backend.
 *
 * Every wrapper returns 0/a count or -errno and preserves errno, so the
 * wake paths stay async-signal-safe (evq_latch_set, evq_sem_post, evq_wake
 * may run in a signal handler).  Words are 32-bit and must be 4-byte
 * aligned; "shared" selects the process-shared key (inode/offset of the
 * mapping) instead of the private one (mm/address): a waiter and a waker
 * must agree on it, or the wake goes to nobody.
 *
 * Debian 12's headers predate futex2: the constants below are defined here
 * where <linux/futex.h> lacks them (values from the kernel ABI).
 */
#ifndef EVQ_FUTEX_H
#define EVQ_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Each value is defined here where the header lacks it and checked
 * against the header where it has it (the kernel never changes them). */
#define EVQ__ABI(name, value)                                                  \
	_Static_assert((name) == (value), #name " is " #value)
#ifdef SYS_futex_waitv
EVQ__ABI(SYS_futex_waitv, 449);
#else
#define SYS_futex_waitv 449
#endif
#ifdef SYS_futex_wake
EVQ__ABI(SYS_futex_wake, 454);
#else
#define SYS_futex_wake 454
#endif
#ifdef SYS_futex_wait
EVQ__ABI(SYS_futex_wait, 455);
#else
#define SYS_futex_wait 455
#endif
#ifdef FUTEX2_SIZE_U32
EVQ__ABI(FUTEX2_SIZE_U32, 0x02);
#else
#define FUTEX2_SIZE_U32 0x02
#endif
#ifdef FUTEX2_PRIVATE
EVQ__ABI(FUTEX2_PRIVATE, 128);
#else
#define FUTEX2_PRIVATE 128
#endif
#ifdef FUTEX_WAITV_MAX
EVQ__ABI(FUTEX_WAITV_MAX, 128);
#else
#define FUTEX_WAITV_MAX 128
#endif
#ifdef FUTEX_BITSET_MATCH_ANY
EVQ__ABI(FUTEX_BITSET_MATCH_ANY, 0xffffffff);
#else
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#endif

/* struct futex_waitv arrived in <linux/futex.h> with kernel 5.16 headers;
 * Debian 12 has it.  Older headers: declare the ABI layout ourselves.
 * Either way it must be the kernel's. */
#ifndef FUTEX_32
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif
_Static_assert(sizeof(struct futex_waitv) == 24 &&
	       offsetof(struct futex_waitv, val) == 0 &&
	       offsetof(struct futex_waitv, uaddr) == 8 &&
	       offsetof(struct futex_waitv, flags) == 16 &&
	       offsetof(struct futex_waitv, __reserved) == 20,
	       "struct futex_waitv is the kernel's");

/* Atomics on plain uint32_t words living in user structs (the public
 * header cannot use _Atomic: it must also compile as C++).  All of them
 * are sequentially consistent, on purpose: the protocols built on them
 * (word.c, sem.c, latch.c, the io_uring bell and follower word) pair a
 * store to one variable with a load of another against a peer doing the
 * opposite (Dekker: a setter stores the word, then reads whether anyone
 * sleeps; a sleeper announces itself, then reads the word), and only
 * seq_cst forbids the store-then-load reordering that would let both miss
 * each other - acquire/release does not.  The price, a locked instruction
 * per store or read-modify-write on x86, is small next to the futex
 * system calls around them. */
#define evq__ld(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define evq__st(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define evq__add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define evq__sub(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define evq__or(p, v) __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
#define evq__and(p, v) __atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)
#define evq__cas(p, expp, v)                                                   \
	__atomic_compare_exchange_n((p), (expp), (v), 0, __ATOMIC_SEQ_CST,   \
				    __ATOMIC_SEQ_CST)

static inline int evq__word_ok(const void *addr)
{
	return addr && ((uintptr_t)addr & 3) == 0;
}

static inline long evq__sys_errno(long rc, int saved)
{
	long r = rc < 0 ? -(long)errno : rc;
	errno = saved;
	return r;
}

/* Wakes up to n waiters of addr (n <= INT_MAX).  Returns the number woken. */
static inline int evq__futex_wake(uint32_t *addr, int n, int shared)
{
	int saved = errno;
	long rc = syscall(SYS_futex, addr,
			  shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, n, NULL,
			  NULL, 0);
	return (int)evq__sys_errno(rc, saved);
}

/* Sleeps while *addr == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline (NULL: none).  0 when woken (or spuriously), -EAGAIN when *addr
 * != val, -ETIMEDOUT, -EINTR. */
static inline int evq__futex_wait(uint32_t *addr, uint32_t val,
				 const struct timespec *deadline, int shared)
{
	int saved = errno;
	long rc = syscall(SYS_futex, addr,
			  (shared ? FUTEX_WAIT_BITSET
				  : FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG),
			  val, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
	return (int)evq__sys_errno(rc, saved);
}

/* Waits for any of n (<= FUTEX_WAITV_MAX) words.  Returns the index of the
 * word that was woken, -EAGAIN if one of them did not hold its value,
 * -ETIMEDOUT (absolute CLOCK_MONOTONIC deadline), -EINTR, -ENOSYS. */
static inline int evq__futex_waitv(struct futex_waitv *w, unsigned n,
				  const struct timespec *deadline)
{
	int saved = errno;
	long rc = syscall(SYS_futex_waitv, w, n, 0, deadline,
			  (long)CLOCK_MONOTONIC);
	return (int)evq__sys_errno(rc, saved);
}

/* A raw blocking system call as a cancellation point (evq_wait(3)
 * CANCELLATION): raw futex and io_uring calls are none, so the call runs
 * between these two with asynchronous cancellation, as glibc runs its own
 * cancellation points, and the caller has pushed a cleanup handler that
 * copes with the call having completed or not.  A caller that disabled
 * cancellation keeps it so.
 *
 * Leaving asynchronous mode needs what glibc's own wrappers do there: a
 * pthread_cancel() that saw the thread asynchronous sends it SIGCANCEL,
 * and if that signal is handled later - in a section that disabled
 * cancellation but sits in a glibc cancellation point, which runs
 * asynchronously too (a read() under the queue's lock, the caller's
 * handler) - the thread dies there.  glibc waits for such a signal before
 * it leaves a cancellation point; we get the same by passing through one
 * (close(-1): EBADF at once) in deferred mode, which also acts on a cancel
 * that became pending meanwhile, still under the caller's handler.
 *
 * That barrier is a system call, so it is paid only where such a signal
 * can exist.  pthread_cancel() sends SIGCANCEL only to a thread that has
 * cancellation enabled and asynchronous; no public call tells whether one
 * is on its way (glibc's "canceling" bit is private), so a thread with
 * cancellation enabled pays it after every sleep.  None is paid by:
 *   - a thread that has cancellation disabled: nobody can send it
 *     SIGCANCEL while it sleeps (and a signal from an earlier sleep was
 *     waited for when that one ended).  The state is read after the sleep
 *     by "enabling" it with the type already deferred, which cannot act
 *     on a pending cancel, and disabling it again: only the thread itself
 *     changes its state, so it is the state it slept with;
 *   - a thread that was asynchronous already: it stays so, as glibc's
 *     wrappers leave it (their exit path returns early then too).
 * EVQ__CANCEL_KEPT: nothing to undo at the end. */
#define EVQ__CANCEL_KEPT (-1)
static inline int evq__cancel_async(void)
{
	int old;
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);
	return old == PTHREAD_CANCEL_ASYNCHRONOUS ? EVQ__CANCEL_KEPT : old;
}
static inline void evq__cancel_deferred(int old)
{
	int state, ignored;
	if (old == EVQ__CANCEL_KEPT)
		return;
	pthread_setcanceltype(old, &ignored);
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &state);
	if (state == PTHREAD_CANCEL_DISABLE) {
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &ignored);
		return; /* no SIGCANCEL can be on its way */
	}
	int saved = errno;
	(void)close(-1);
	errno = saved;
}

/* evq__futex_wait as a cancellation point (see above). */
static inline int evq__futex_wait_cancel(uint32_t *addr, uint32_t val,
					const struct timespec *deadline, int shared)
{
	int old = evq__cancel_async();
	int rc = evq__futex_wait(addr, val, deadline, shared);
	evq__cancel_deferred(old);
	return rc;
}

static inline uint32_t evq__waitv_flags(int shared)
{
	return FUTEX2_SIZE_U32 | (shared ? 0 : FUTEX2_PRIVATE);
}

/* Absolute CLOCK_MONOTONIC deadline timeout_ns from now (timeout_ns >= 0). */
static inline struct timespec evq__deadline(int64_t timeout_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ns = ts.tv_nsec + timeout_ns % 1000000000;
	ts.tv_sec += (time_t)(timeout_ns / 1000000000 + ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	return ts;
}

/* A relative timeout as a futex sleep's deadline: NULL (no deadline) when
 * timeout_ns < 0, else *dl, set to evq__deadline(timeout_ns). */
static inline const struct timespec *evq__deadline_or_forever(int64_t timeout_ns,
							     struct timespec *dl)
{
	if (timeout_ns < 0)
		return NULL;
	*dl = evq__deadline(timeout_ns);
	return dl;
}

#endif /* EVQ_FUTEX_H */
