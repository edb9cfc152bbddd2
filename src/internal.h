/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the queue's private state, shared by the core (src/core/)
 * and the event-kind files (src/kinds/), and the kind table's contract
 * (struct evq__kind).  Not installed.
 *
 * Locking: q->lock protects every field of struct evq and of struct
 * evq__reg except those marked "atomic", which lock-free producers
 * (evq_trigger, mask notifiers, word watchers, signal handlers) touch.
 *
 * Lock order.  The library's six mutexes; a thread holding one may take
 * only those below it, never one above:
 *
 *   1. q->lock           the queue (core/queue.c evq__lock; evq_wait's own
 *                        wait_lock in core/wait.c)
 *   2. the signal table  evq__sig_lock (kinds/sigtable.c): after q->lock in
 *                        evq_add_signal/evq_sigevent and their del hooks;
 *                        never in a signal handler
 *   3. s->lock           the io_uring backend's (backend/uring/uring.h);
 *                        its wait() holds it without q->lock and takes
 *                        q->lock only by trylock, or by dropping s->lock
 *                        first (backend.h B4)
 *   4. t->mu             a watcher thread's (core/watch.c): taken under
 *                        q->lock by evq__watch_arm/idle/detach; the watcher
 *                        calls check() with it held
 *   5. sr->mu            a semaphore registration's (kinds/sem.c Q3):
 *                        taken by sem_arm under q->lock (and released
 *                        before it arms the watch: 4 is never taken under
 *                        5), and by the sem's check() under t->mu
 *   6. read_lock         the sigevent carrier's signalfd reads
 *                        (kinds/sigevent.c), under q->lock in its ready
 *                        hook
 *
 * No path holds 2 and 3, or 5 and 6, together today (fd_ctl, which the
 * signal kinds call under 2, takes no backend lock); one that must takes
 * them in this order.  Nothing is taken while
 * a lock-free path runs (evq__post, evq__kick, backend wake(), the wake
 * ring in core/wakering.c, which refuses with -EBUSY instead of waiting):
 * those run in signal handlers and under any of the locks.  check() hooks
 * never take q->lock (watch.h).  pthread_atfork handlers take 2 and 6
 * around fork() (prepare) and release them in both processes.
 *
 * Lock-free posting (evq__post): a producer records an occurrence in a
 * registration's ctl word and, if the registration was not queued yet, pushes
 * its index on q->post_head (a Treiber stack the waiter takes whole with one
 * exchange).  ctl holds a tag (the slot generation) so a post through a stale
 * id fails instead of hitting the slot's next tenant, and a "queued" bit so a
 * slot is on the stack at most once.  A slot deleted while queued becomes a
 * zombie and is recycled by the drain that pops it.  Posts a waiter makes
 * itself while it harvests a kernel round (a kind's ready hook, io_uring's
 * word checks) go on a second stack, round_head, whose registrations are
 * linked at the front of the pending list: they are what the kernel
 * reported (core/wait.c, fairness rule F2).
 */
#ifndef EVQ_INTERNAL_H
#define EVQ_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "evq.h"
#include "backend/backend.h"
#include "futex.h"

/* Registration ids (include/evq.h "Registrations"):
 *   id = (int64_t)generation << 32 | slot index
 * The generation is the slot's own counter, 1 .. EVQ_GEN_MAX, bumped by
 * every evq_del(); so every id is >= 2^32 (an id truncated to an int has
 * generation 0 and matches nothing).  A slot whose generation would pass
 * EVQ_GEN_MAX is retired, never handed out again: a stale id can never
 * equal a later one.  The generation also sits in the slot's state word
 * (gen << 32 | idx << 8 | kind), so one load checks both; internal tags derive from it
 * (evq__token: the full generation; evq__ctl_tag: its low 24 bits). */
#define EVQ_IDX_BITS 24 /* slot indices are below EVQ_MAX_REGS <= 2^24 */
#define EVQ_IDX_MASK ((1u << EVQ_IDX_BITS) - 1)
#define EVQ_ID_GEN_SHIFT 32
#define EVQ_GEN_FIRST 1u
#define EVQ_GEN_MAX 0x7fffffffu
/* the generation a slot gets after EVQ_GEN_MAX: retired (no id has it) */
#define EVQ_GEN_RETIRED (EVQ_GEN_MAX + 1u)
/* Slots live in chunks of 256, all small or all full (struct evq__reg); a
 * chunk is allocated when its size class runs out of free slots, so a queue
 * holds at most 255 unused slots of each size.  A directory page holds 256
 * chunk addresses; 64 pages hold 4,194,304 registrations. */
#define EVQ_CHUNK_SHIFT 8
#define EVQ_CHUNK_SLOTS (1u << EVQ_CHUNK_SHIFT)
#define EVQ_PAGE_SHIFT 8        /* chunks per directory page: 1 << 8 */
#define EVQ_DIR_PAGES 64
#define EVQ_MAX_REGS (EVQ_DIR_PAGES << (EVQ_PAGE_SHIFT + EVQ_CHUNK_SHIFT))
_Static_assert(EVQ_MAX_REGS <= (1u << 23), "slot indices fit the 24-bit list links");
#define EVQ_BATCH_MAX 512
#define EVQ_BATCH_DEFAULT 256
#define EVQ_NCLOCKS 3 /* MONOTONIC, REALTIME, BOOTTIME */
#define EVQ_NSEC_PER_SEC 1000000000

/* Internal registration flags, above the public EVQ_* ones. */
#define EVQ_R_PUBLIC  0x00ffu
#define EVQ_R_ALWAYS  0x0100u /* fd the kernel cannot watch: always ready */
#define EVQ_R_DEFUNCT 0x0200u /* fd closed (number reused): silent */
#define EVQ_R_ZOMBIE  0x0800u /* deleted while on the post stack */
#define EVQ_R_SPENT   0x1000u /* oneshot fired: disabled until evq_mod */
#define EVQ_R_ALL     0x3fffu /* what r->flags holds (14 bits) */

/* ctl word of the lock-free post path. */
#define EVQ_CTL_TAG_SHIFT 40
#define EVQ_CTL_QUEUED (1ull << 39)
#define EVQ_CTL_COUNT ((1ull << 39) - 1)

enum evq__list { EVQ_LIST_NONE, EVQ_LIST_PENDING, EVQ_LIST_AGAIN };

/* A registration.  Slots come in two sizes (one per chunk, never changing):
 * the first EVQ__SMALL_SLOT bytes are all an fd or a timer has (kinds with
 * EVQ__KIND_SMALL), the rest (ctl, val) only kinds that producers post to
 * lock-free.  Code that may see a small slot touches nothing past
 * EVQ__SMALL_SLOT: evq__reg_small() tells which it is. */
struct evq__reg {
	_Atomic uint64_t state; /* gen << 32 | idx << 8 | kind; kind 0: free.
				   idx (evq__idx()) never changes.  atomic */
	uint64_t cookie;
	uint64_t pend_data;     /* occurrences not yet delivered */
	union {                 /* the kind's own 8 bytes */
		void *ext;      /* kind-specific state (words, masks, ...) */
		int64_t interval; /* timers (the deadline is in the heap) */
		struct {        /* fds */
			int32_t ident;  /* the fd */
			int32_t file;   /* regular files (EVQ_R_ALWAYS): index
					   of the identity in q->files, or -1 */
		} fd;
	};
	/* the list r is on - pending, again (regular files) or free - and its
	 * flags, in one word (locked) */
	int64_t next : 24;      /* slot indices, -1 none */
	int64_t prev : 24;
	uint64_t list : 2;      /* enum evq__list */
	uint64_t flags : 14;    /* public EVQ_* | EVQ_R_* */
	uint32_t pend_events;
	union {
		_Atomic int32_t post_next; /* full slots: the lock-free post
					      path (atomic) */
		uint32_t events;        /* fds: requested EVQ_READ|EVQ_WRITE */
		uint32_t tslot;         /* timers: clock index << 30 |
					   (position in its heap + 1, 0:
					   in none) (kinds/timer.c) */
	};
	/* ---- full slots only ---- */
	_Atomic uint64_t ctl;   /* lock-free post path (atomic) */
	_Atomic uint64_t val;   /* bits producers OR in (masks); the drain
				   takes and clears them with the count */
};
#define EVQ__SMALL_SLOT 48
_Static_assert(sizeof(struct evq__reg) == 64, "a full registration is one cache line");
_Static_assert(offsetof(struct evq__reg, ctl) == EVQ__SMALL_SLOT,
	       "small slots end where the post fields begin");

/* The kinds whose ext starts with a kernel fd of their own (signalfd,
 * pidfd) and that report an ident (EVQ__KIND_IDENT_EXT): ext begins so. */
struct evq__fd_ext {
	int fd;
	int32_t ident;          /* signal number, pid */
};

/* A timer heap holds each entry's deadline beside its registration, so
 * sifting compares within the array; a move writes the new position into
 * the slot, found without a lookup (slots never move). */
struct evq__heap_entry {
	int64_t deadline;
	struct evq__reg *r;
};

struct evq__heap {
	struct evq__heap_entry *a;  /* 64-byte aligned + 3 entries (timer.c) */
	void *raw;                  /* the allocation a lies in */
	uint32_t n, cap;
};

/* An event kind: one per file in src/kinds/, each defining one
 * `const struct evq__kind evq__kind_<name>`, and one line in the table
 * evq__kinds[] (kinds/kinds.c) that the core looks it up in by the kind
 * number in a registration's state word (evq__kind_of).  Any hook may be
 * NULL. */
struct evq__add;
struct evq__kind {
	const char *name;
	uint32_t mod_flags;     /* the flags evq_mod() accepts */
	uint32_t caps;          /* EVQ__KIND_* below */
	/* A post was drained: fold count/bits into r->pend_data (and
	 * r->pend_events).  Default: bits ? pend_data |= bits
	 *                                  : pend_data += count. */
	void (*posted)(struct evq *q, struct evq__reg *r, uint64_t count,
		       uint64_t bits);
	/* The registration is being removed (under q->lock); release ext.
	 * Occurrences posted but never delivered have been folded into
	 * r->pend_data first (a semaphore gives those tokens back here). */
	void (*del)(struct evq *q, struct evq__reg *r);
	/* r is about to be handed to a caller of evq_wait() from the pending
	 * list (under q->lock, r already unlinked): return 1 to deliver it
	 * (having set pend_data/pend_events as they are to be reported), 0
	 * to hand out nothing (it may re-arm).  A semaphore takes its token
	 * here, so that it holds one only for an event it delivers at once. */
	int (*claim)(struct evq *q, struct evq__reg *r);
	/* An event of r was just handed to a caller of evq_wait() (under
	 * q->lock); e.g. re-arm a semaphore watch for the next token. */
	void (*delivered)(struct evq *q, struct evq__reg *r);
	/* Kinds that watch a kernel fd of their own (signalfd, pidfd) register
	 * it with q->backend->fd_ctl(q, EVQ_FD_ADD, fd, EVQ_READ, flags,
	 * evq__token(state, idx)); when the kernel reports it, the core calls
	 * this (under q->lock) with ev prefilled (cookie, id, kind, flags,
	 * ident, events).  Return 1 to deliver ev (set ev->data etc.), 0 to
	 * drop it (e.g. nothing to read after all). */
	int (*ready)(struct evq *q, struct evq__reg *r, uint32_t events,
		     struct evq_event *ev);
	/* evq_mod() (under q->lock): the core checked flags against
	 * mod_flags (and events == 0 unless EVQ__KIND_EVENTS) and set them;
	 * old_flags are the flags before.  On failure the core restores the
	 * mod_flags bits of r->flags. */
	int (*mod)(struct evq *q, struct evq__reg *r, uint32_t events,
		   uint32_t old_flags);
	/* Folds an event taken but not handed out (evq_requeue, or harvested
	 * by a cancelled waiter) back into r's pending occurrence.  Default:
	 * counts add, events OR. */
	void (*merge)(struct evq__reg *r, const struct evq_event *ev);

	/* Adding (evq__reg_add, in this order; see there): make: check the
	 * arguments and create a->ext, outside q->lock, cleaning up itself
	 * on failure; lock/unlock: a second lock held after q->lock while
	 * the registration is made (the signal table's); prepare: under the
	 * locks, before a slot is taken, may refuse; start: r is made, with
	 * r->ext = a->ext: watch, arm, publish - on failure it undoes its own
	 * work; drop: frees a->ext after any failure (under the locks;
	 * NULL: free()). */
	int (*make)(struct evq *q, struct evq__add *a);
	void (*lock)(void);
	void (*unlock)(void);
	int (*prepare)(struct evq *q, struct evq__add *a);
	int (*start)(struct evq *q, struct evq__reg *r, struct evq__add *a);
	void (*drop)(struct evq *q, struct evq__add *a);
};

/* What an evq_add_* hands evq__reg_add (core/queue.c): the registration's
 * first fields, the kind's state (ext: evq__reg_add consumes it - the
 * registration's on success, the kind's drop hook frees it on failure),
 * and the kind's own arguments for its hooks (arg). */
struct evq__add {
	int kind;               /* EVQ_KIND_* */
	uint32_t flags;
	uint64_t cookie;
	int32_t ident;
	uint32_t events;        /* fds: r->events (their start sets it) */
	void *ext;
	void *arg;
};

/* caps: */
/* evq_mod() passes `events` to the mod hook (fds), else they must be 0 */
#define EVQ__KIND_EVENTS       0x1u
/* a kernel report and a record given back that is still pending make one
 * event, not two in one batch (fds: readiness ORs) */
#define EVQ__KIND_READY_MERGES 0x2u
/* its words may wait natively in the backend (backend->word_arm); a kind
 * without it stays on the watcher threads (core/watch.c) */
#define EVQ__KIND_NATIVE_WORDS 0x4u
/* nothing evq__reg_add, evq_mod or evq_del runs for it under q->lock (its
 * prepare, start, drop, mod and del hooks, and the core around them)
 * reaches a cancellation point, so they take q->lock without disabling
 * cancellation (evq__lock_light below): two pthread_setcancelstate calls,
 * each a locked CAS, saved on every add and delete (timers) */
#define EVQ__KIND_NO_CANCEL_POINTS 0x8u
/* Its registrations live in small slots (struct evq__reg): nothing posts
 * to them lock-free (fds, timers) */
#define EVQ__KIND_SMALL 0x10u
/* Its ext begins with struct evq__fd_ext, whose ident events report */
#define EVQ__KIND_IDENT_EXT 0x20u

/* A hidden kind no public constant names: the registration through which a
 * queue watches evq_sigevent()'s signal (kinds/sigevent.c).  Its events
 * are never delivered. */
#define EVQ__KIND_CARRIER 63
#define EVQ__NKINDS 64

/* kinds/kinds.c: by kind number; [0] (a free slot) has no hooks. */
extern const struct evq__kind *const evq__kinds[EVQ__NKINDS];
/* drop for kinds whose ext starts with `int fd`, a kernel fd of their own
 * (signalfd, pidfd): closes it and frees ext (kinds.c) */
void evq__drop_fd_ext(struct evq *q, struct evq__add *a);

struct evq {
	const struct evq__backend *backend;
	void *be;               /* backend state */
	int max_batch;
	pthread_mutex_t lock;

	/* registration slots: chunks never move, so lock-free readers may
	 * index them; slots [0, nslots) are initialised.  A page entry is a
	 * chunk's address, | 1 for a chunk of small slots. */
	_Atomic(_Atomic uintptr_t *) dir[EVQ_DIR_PAGES];
	_Atomic uint32_t nslots;
	int32_t free_head[2], free_tail[2]; /* [small]: free slots, FIFO for
					  full ones, LIFO for small (queue.c) */
	uint32_t fresh[2];             /* [small]: the next never used slot
					  of the newest chunk, 0 when none */
	uint32_t nlive;

	/* The heads (like ntimers and rt_fd) change only under q->lock, but
	 * evq_wait's quiet test (wait.c, Q) reads them without it: stores
	 * through evq__head_set, lock-free loads atomic too. */
	int32_t pend_head, pend_tail;  /* deliverable now */
	int32_t again_head, again_tail;/* level regular files: next round */

	int32_t *fdmap;                /* fd -> slot index, -1 none */
	uint32_t fdmap_len;
	/* identities (st_dev, st_ino) of registered regular files, by
	 * r->fd.file; free ones chained through ino (kinds/fd.c) */
	struct evq__fileid { uint64_t dev, ino; } *files;
	uint32_t files_len;
	int32_t files_free;

	struct evq__heap heap[EVQ_NCLOCKS];
	uint32_t ntimers;              /* entries in all heaps (Q reads) */

	_Atomic int32_t post_head;     /* Treiber stack of slot indices */
	_Atomic int32_t round_head;    /* the same, for posts made by a
					  waiter's own kernel round (F2) */
	_Atomic int sleepers;          /* threads inside backend->wait() */
	_Atomic int wake_sent;         /* a wake() is on its way */
	_Atomic int shut;              /* evq_shutdown() was called (wait.c,
					  "Shutdown") */
	/* Many waiters: only the sleeper(s) whose timeout covers the nearest
	 * timer wake for it; this is the earliest deadline (monotonic ns) a
	 * sleeper covers, INT64_MAX if none. */
	int64_t keeper_deadline;
	/* Fairness (wait.c, F1/F2): the last evq_wait handed out pending
	 * events without asking the kernel, so the next one must ask. */
	int kernel_owed;

	unsigned fork_gen;             /* evq__fork_gen when created */
	uint64_t serial;               /* unique in the process (evq_requeue
					  tells queues apart, also one
					  allocated where a freed one was) */

	/* REALTIME timers: one timerfd armed at the earliest deadline, with
	 * TFD_TIMER_CANCEL_ON_SET so a clock step wakes the waiter (timer.c) */
	int rt_fd;                     /* -1 until a REALTIME timer exists
					  (Q reads) */
	int64_t rt_armed;              /* deadline it is armed for, 0 none */

	/* the futex watcher threads of this queue's words (core/watch.c),
	 * NULL while it watches none */
	struct evq__watch *watch;
};

/* backend token of the REALTIME timerfd: no slot has this index */
#define EVQ_TOKEN_CLOCK 0xffffffffull

/* Incremented in the child of every fork() (pthread_atfork).  A queue whose
 * fork_gen differs was inherited: it may only be freed. */
extern _Atomic unsigned evq__fork_gen;
static inline int evq__forked(const struct evq *q)
{
	return atomic_load_explicit(&evq__fork_gen, memory_order_relaxed) != q->fork_gen;
}

/* Slot idx (< nslots): its chunk's address from the directory, and its
 * place in the chunk by the chunk's slot size. */
static inline struct evq__reg *evq__slot(struct evq *q, uint32_t idx)
{
	_Atomic uintptr_t *page = atomic_load_explicit(
		&q->dir[idx >> (EVQ_PAGE_SHIFT + EVQ_CHUNK_SHIFT)], memory_order_acquire);
	uintptr_t c = atomic_load_explicit(
		&page[(idx >> EVQ_CHUNK_SHIFT) & ((1u << EVQ_PAGE_SHIFT) - 1)],
		memory_order_acquire);
	size_t size = (c & 1) ? EVQ__SMALL_SLOT : sizeof(struct evq__reg);
	return (struct evq__reg *)((c & ~(uintptr_t)1) +
				   (idx & (EVQ_CHUNK_SLOTS - 1)) * size);
}

/* r's slot index, from its state word (where it never changes) */
static inline uint32_t evq__idx(const struct evq__reg *r)
{
	return (uint32_t)(atomic_load_explicit(&r->state, memory_order_relaxed) >> 8) &
	       EVQ_IDX_MASK;
}

/* a + b, saturated at INT64_MIN/INT64_MAX instead of overflowing */
static inline int64_t evq__sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

static inline uint32_t evq__reg_gen(uint64_t state)
{
	return (uint32_t)(state >> EVQ_ID_GEN_SHIFT);
}
static inline uint32_t evq__reg_kind(uint64_t state) { return state & 0xff; }
/* the state word of slot idx with generation gen and kind (0: free) */
static inline uint64_t evq__state(uint32_t gen, uint32_t idx, uint32_t kind)
{
	return (uint64_t)gen << EVQ_ID_GEN_SHIFT | (uint64_t)idx << 8 | kind;
}

/* r's kind (a free slot's has no hooks).  q->lock held, or r's state
 * otherwise stable. */
static inline const struct evq__kind *evq__kind_of(const struct evq__reg *r)
{
	return evq__kinds[evq__reg_kind(atomic_load_explicit(&r->state,
							      memory_order_relaxed))];
}

/* Is r a small slot (struct evq__reg)?  Its kind says, for a live one. */
static inline int evq__reg_small(const struct evq__reg *r)
{
	return !!(evq__kind_of(r)->caps & EVQ__KIND_SMALL);
}

/* The ident an event of r reports: the fd, signal number or pid, or -1. */
static inline int32_t evq__reg_ident(const struct evq__reg *r, uint32_t kind)
{
	if (kind == EVQ_KIND_FD)
		return r->fd.ident;
	if (evq__kinds[kind]->caps & EVQ__KIND_IDENT_EXT)
		return ((const struct evq__fd_ext *)r->ext)->ident;
	return -1;
}

/* A backend token: the full generation and the slot, as the id. */
static inline uint64_t evq__token(uint64_t state, uint32_t idx)
{
	return (uint64_t)evq__reg_gen(state) << 32 | idx;
}

/* q->backend->fd_ctl for an fd registration r watches (its own fd, or a
 * signalfd or pidfd of its kind's), with r's token.  locked */
static inline int evq__fd_ctl(struct evq *q, struct evq__reg *r, enum evq__fd_op op,
			      int fd, uint32_t events, uint32_t flags)
{
	return q->backend->fd_ctl(q, op, fd, events, flags,
				  evq__token(atomic_load(&r->state), evq__idx(r)));
}

/* q->lock.  Cancellation is disabled while a thread holds it: the locked
 * sections reach cancellation points (read() of a signalfd, waitid(),
 * close(), pthread_cond_wait(), pthread_join()), and a thread cancelled
 * there would leave the lock held.  A pthread_cancel() meanwhile acts at
 * the thread's next cancellation point (evq_wait(3) CANCELLATION).
 * Nesting (two queues) is counted per thread. */
void evq__lock(struct evq *q);
void evq__unlock(struct evq *q);
/* q->lock alone, cancellation left as it is: only around code that reaches
 * no cancellation point (a kind with EVQ__KIND_NO_CANCEL_POINTS; evq_wait's
 * own locking, core/wait.c, is the same idea).  Deferred cancellation acts
 * only at those points, so none can act while the lock is held; a caller
 * that learns under the lock that it needs more calls evq__nocancel_enter()
 * then (not a cancellation point either). */
static inline void evq__lock_light(struct evq *q) { pthread_mutex_lock(&q->lock); }
static inline void evq__unlock_light(struct evq *q) { pthread_mutex_unlock(&q->lock); }
/* The same without a lock, around other code that reaches cancellation
 * points and must not be cut short (evq_new, evq_free, failure paths). */
void evq__nocancel_enter(void);
void evq__nocancel_leave(void);

/* AddressSanitizer builds: a cancellation cleanup handler runs over stale
 * stack redzones (wait.c, above round_cancelled).  Each handler calls
 * evq__asan_unstale() first; evq_wait notes the thread's stack before its
 * backend sleeps (evq__asan_stack_note).  Nothing in other builds. */
#if defined(__SANITIZE_ADDRESS__)
#define EVQ__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVQ__ASAN 1
#endif
#endif
#ifdef EVQ__ASAN
void evq__asan_stack_note(void);
void evq__asan_unstale(void);
#else
static inline void evq__asan_stack_note(void) {}
static inline void evq__asan_unstale(void) {}
#endif

/* evq_wait takes q->lock without disabling cancellation (it is the hot
 * path): whatever runs under it there - kind hooks (ready, posted,
 * delivered), timers, the backend's wake() - must reach no cancellation
 * point.  So those use these instead of the C library's read(), write(),
 * close() and waitid(), which are cancellation points; they are also
 * async-signal-safe.  They return -1 and set errno, as the C calls do. */
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static inline ssize_t evq__read(int fd, void *buf, size_t n)
{
	return syscall(SYS_read, fd, buf, n);
}
static inline ssize_t evq__write(int fd, const void *buf, size_t n)
{
	return syscall(SYS_write, fd, buf, n);
}
static inline int evq__close(int fd)
{
	return (int)syscall(SYS_close, fd);
}
static inline int evq__waitid(idtype_t type, id_t id, siginfo_t *si, int options)
{
	return (int)syscall(SYS_waitid, type, id, si, options, NULL);
}


/* core (queue.c, post.c); "locked" ones need q->lock held */
int evq__check(const struct evq *q);  /* -EINVAL for NULL, -ECHILD if forked */
int64_t evq__reg_new(struct evq *q, int kind, uint32_t flags, uint64_t cookie,
		     struct evq__reg **out);   /* -> id; locked */
/* Adds a registration of kind `kind` (every evq_add_*): evq__check, the
 * kind's make (arg: the kind's own arguments), q->lock (and the kind's
 * lock), then evq__reg_add_locked.  -> id or -errno. */
int64_t evq__reg_add(struct evq *q, int kind, uint32_t flags, uint64_t cookie,
		     int32_t ident, void *arg);
/* The kind's prepare, a slot, r->ext = a->ext (full slots; a small kind's
 * start fills in its own 8 bytes), the kind's start; on
 * failure the slot goes again and the kind's drop (default: free) frees
 * a->ext.  locked */
int64_t evq__reg_add_locked(struct evq *q, struct evq__add *a);
struct evq__reg *evq__reg_get(struct evq *q, int64_t id);   /* locked */
/* An index map (q->fdmap) covers [0, idx]: it grows by doubling
 * from `first`, new entries -1 (none).  -ENOMEM and nothing changed. */
int evq__map_grow(int32_t **map, uint32_t *len, uint32_t idx, uint32_t first);
/* The live registration id names if it is of kind `kind`: 0 and *out, or
 * -ENOENT (no such live registration) or -EINVAL (another kind).  locked */
int evq__reg_get_kind(struct evq *q, int64_t id, int kind, struct evq__reg **out);
int64_t evq__reg_id(struct evq *q, struct evq__reg *r);
void evq__reg_free(struct evq *q, struct evq__reg *r);  /* locked */
void evq__link(struct evq *q, struct evq__reg *r, int list); /* locked */
void evq__unlink(struct evq *q, struct evq__reg *r);         /* locked */
void evq__kick(struct evq *q);                 /* async-signal-safe */
void evq__kick_linked(struct evq *q);          /* the same, fenced (Q) */
/* A store to a field the quiet test reads without the lock (pend_head,
 * again_head, ntimers, rt_fd): atomic, so that read is no data race. */
#define evq__head_set(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
/* A slot whose registration is gone and that is off the post stack goes
 * back on the free list, or is retired (queue.c).  locked */
void evq__slot_recycle(struct evq *q, struct evq__reg *r, int small);

/* The live registration id names, or NULL: the id's generation half must
 * equal the slot's (an id below 2^32 - generation 0, e.g. one truncated to
 * an int - and a negative one match no slot). */
static inline struct evq__reg *evq__reg_lookup(struct evq *q, int64_t id, uint64_t *state)
{
	uint32_t idx = (uint32_t)id;
	if (id < ((int64_t)EVQ_GEN_FIRST << EVQ_ID_GEN_SHIFT) ||
	    idx >= atomic_load_explicit(&q->nslots, memory_order_acquire))
		return NULL;
	struct evq__reg *r = evq__slot(q, idx);
	uint64_t st = atomic_load_explicit(&r->state, memory_order_acquire);
	if (evq__reg_kind(st) == 0 || (st ^ (uint64_t)id) >> EVQ_ID_GEN_SHIFT)
		return NULL;
	*state = st;
	return r;
}

/* the pending list and the post stacks (post.c); locked */
/* Links r into the pending list (at the front with front != 0) if it is
 * enabled and has something to deliver; 1 if it did. */
int evq__make_pending(struct evq *q, struct evq__reg *r, int front);
void evq__make_pending_kick(struct evq *q, struct evq__reg *r); /* and kicks */
/* Takes what producers recorded in r's ctl/val into pend_data (popped: r
 * came off a post stack, clear its queued bit too). */
void evq__take_post(struct evq *q, struct evq__reg *r, int popped);
void evq__drain_posts(struct evq *q);
int evq__posts_waiting(struct evq *q);   /* lock-free */
/* The queue whose kernel round this thread is harvesting (wait.c sets it
 * around backend->wait; posts made meanwhile go first: F2). */
extern __thread __attribute__((tls_model("initial-exec"))) struct evq *evq__tl_round;

/* evq_wait's helpers in other files; locked */
void evq__hold(struct evq *q, const struct evq_event *out, int n); /* requeue.c */
/* Folds an event taken but not handed out back into r (requeue.c); 1 if
 * it linked r (the caller kicks). */
int evq__merge_back(struct evq *q, struct evq__reg *r, const struct evq_event *ev);
/* fds (kinds/fd.c): level-triggered regular files ready again after a kernel round. */
void evq__fd_again(struct evq *q);

/* Lock-free: record `count` occurrences (and whatever the caller stored in
 * r->val before the call) for the registration whose ctl tag is `tag`, and
 * make sure a waiter will see it.  -ENOENT if the tag is stale.
 * Async-signal-safe. */
int evq__post(struct evq *q, struct evq__reg *r, uint32_t tag, uint64_t count);
/* The ctl tag: the generation's low 24 bits (all that fit beside the count);
 * a post through a tag 2^24 generations old is the only confusion left. */
static inline uint32_t evq__ctl_tag(uint32_t gen) { return gen & 0xffffffu; }
/* r's ctl tag now: what a producer posting to r keeps (kinds' start hooks) */
static inline uint32_t evq__reg_tag(struct evq__reg *r)
{
	return evq__ctl_tag(evq__reg_gen(atomic_load(&r->state)));
}

/* Test hook (tests/ids.c): the next registration made in free slot idx gets
 * generation gen.  For a queue no other thread uses.  Locked or quiet. */
static inline int evq__test_slot_gen(struct evq *q, uint32_t idx, uint32_t gen)
{
	if (idx >= atomic_load(&q->nslots) || gen < EVQ_GEN_FIRST || gen > EVQ_GEN_MAX)
		return -EINVAL;
	struct evq__reg *r = evq__slot(q, idx);
	uint64_t st = atomic_load(&r->state);
	if (evq__reg_kind(st) != 0 || evq__reg_gen(st) > EVQ_GEN_MAX)
		return -EBUSY; /* live or retired */
	atomic_store(&r->state, evq__state(gen, idx, 0));
	return 0;
}

/* timers (timer.c) */
int evq__timer_clock_index(clockid_t clock);
int evq__timer_arm(struct evq *q, struct evq__reg *r, int64_t when_ns,
		   int64_t interval_ns, uint32_t flags);  /* locked */
/* Room for r as one more timer on clock ci: arming it then cannot fail.
 * -ENOMEM.  locked */
int evq__timer_reserve(struct evq *q, struct evq__reg *r, int clock_index);
void evq__timer_disarm(struct evq *q, struct evq__reg *r);   /* locked */
/* Fires expired timers into the pending list; returns ns until the next
 * expiry (-1: none). locked */
int64_t evq__timer_run(struct evq *q);
int64_t evq__now(int clock_index);
void evq__timer_clock_fired(struct evq *q);  /* the timerfd was ready; locked */
void evq__timer_fini(struct evq *q);

/* latches (latch.c): the fewest latch wakes evq_latch_set_many sends
 * through the wake ring (backend.h) instead of FUTEX_WAKE_OP pairs; 0
 * never, < 0 the default.  $EVQ_LATCH_BATCH sets it at load; tests and
 * benchmarks call this. */
void evq__latch_batch_min(int min);

#endif /* EVQ_INTERNAL_H */
