/* SPDX-License-Identifier: MIT */
/*
 * evq.c - the queue core: registrations, the pending list, posting from other
 * threads and signal handlers, and the wait path.
 *
 * Where an event can come from:
 *   1. the kernel, through the backend (fds): harvested in evq_wait() and
 *      handed out in the same call, under q->lock, after checking that the
 *      registration still exists (so evq_del() wins over a harvested event);
 *   2. the pending list (timers, triggers, regular files, words, masks...):
 *      registrations with occurrences folded into pend_data, delivered FIFO;
 *   3. the post stack: lock-free producers (evq_trigger, watchers, mask
 *      notifiers) push a registration at most once (ctl "queued" bit); the
 *      waiter drains it into the pending list under q->lock.
 *
 * Sleep protocol (model/queue.pml, steps named there; teeth NORESET,
 * EARLYCHECK, NOPASSON):
 *   waiter                                 producer
 *   W1 sleepers++            (seq_cst)     P1 push on post_head (seq_cst)
 *   W2 if post_head non-empty: W1 undone,  P2 if sleepers > 0 and
 *      collect again                          exchange(wake_sent, 1) == 0:
 *   W3 backend->wait()                     P3    backend->wake()
 *   W4 sleepers--, wake_sent = 0
 * Either W2 sees P1, or P2 sees W1 and the wake makes W3 return: no post
 * waits for a later, unrelated wakeup.  Anything linked into the pending list
 * by a thread other than the waiter (a timer armed earlier than the sleeper's
 * timeout, an enabled registration with parked data) kicks the same way.
 * H: a waiter leaving with events still pending (more than its max) or
 * posted kicks one sleeper (pass_on()): the model checks that what a waiter
 * leaves behind reaches a sleeper even when its caller never waits again.
 * A poll (backend->wait with timeout 0) sleeps nowhere and skips W1..W4.
 *
 * Shutdown (evq_shutdown(3)): one flag and a relay of ordinary wakes, so
 * it needs nothing of a backend but wake() (backend.h) and ends every sleep
 * shape alike (epoll_pwait2; io_uring's leader, followers and inline
 * futex_waitv sleeps):
 *   S1 evq_shutdown: shut = 1 (seq_cst), then kick (P2/P3): one wake().
 *   S2 a waiter checks shut on entry, after W1 (with W2: it backs out
 *      instead of sleeping) and after every W3; seeing it, it parks what
 *      it took from the kernel (as a cancelled waiter does), and leaves
 *      with -ESHUTDOWN through pass_on(), which kicks while sleepers > 0.
 * S1/W1 are a Dekker pair like P1/W1: a waiter either sees shut before it
 * sleeps or is counted when S1 kicks.  Each wake() is consumed by exactly
 * one wait(), whose thread resets wake_sent (W4) and only then reads shut
 * (so a wake on its way when S1 ran, which S1's kick did not repeat, ends
 * in a thread that sees shut); that thread kicks the next sleeper after
 * its own W4.  So a wake is always on its way while a sleeper that missed
 * the flag remains: N sleepers end after N wakes, one after another
 * (model/shutdown.pml; teeth NORELAY, NOW1CHECK; tests/shutdown.c).
 *
 * Fairness (evq_wait(3), tests/fairness.c): no ready source starves while
 * others keep the queue busy.
 *   F1 A call may hand out pending events without asking the kernel only
 *      if the call before it (by any thread) asked it (kernel_owed == 0).
 *   F2 Otherwise it asks the kernel first - a poll with timeout 0 when
 *      events are pending - and returns what the kernel reported ahead of
 *      the pending list.
 *   F3 The pending list is FIFO: a registration whose event was handed out
 *      goes to the back when it fires again (posts, timers and regular
 *      files alike).
 * So the kernel is asked at least every second call, and a source that
 * becomes ready while one other source is always ready is returned by the
 * first or the second evq_wait() after that, with any max.  Kernel-side
 * sources are also those a backend watches itself (io_uring's words), so a
 * backend's poll looks at everything it watches (backend.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "internal.h"

_Static_assert(sizeof(struct evq_event) == 40, "struct evq_event is 40 bytes");

static __thread __attribute__((tls_model("initial-exec"))) int tl_nocancel, tl_cancel_state;

void evq__nocancel_enter(void)
{
	if (tl_nocancel++ == 0)
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &tl_cancel_state);
}

void evq__nocancel_leave(void)
{
	if (--tl_nocancel == 0)
		pthread_setcancelstate(tl_cancel_state, NULL);
}

void evq__lock(struct evq *q)
{
	evq__nocancel_enter();
	pthread_mutex_lock(&q->lock);
}

void evq__unlock(struct evq *q)
{
	pthread_mutex_unlock(&q->lock);
	evq__nocancel_leave();
}

static void lock(struct evq *q) { evq__lock(q); }
static void unlock(struct evq *q) { evq__unlock(q); }
/* evq_wait's own: no cancellation point is reachable under it (see
 * evq__read() in internal.h), so it need not switch cancellation off. */
static void wait_lock(struct evq *q) { pthread_mutex_lock(&q->lock); }
static void wait_unlock(struct evq *q) { pthread_mutex_unlock(&q->lock); }

static void take_post(struct evq *q, struct evq__reg *r, int popped);

_Atomic unsigned evq__fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void in_child(void) { atomic_fetch_add(&evq__fork_gen, 1); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, in_child); }

int evq__check(const struct evq *q)
{
	if (!q)
		return -EINVAL;
	return evq__forked(q) ? -ECHILD : 0;
}

/* ------------------------------------------------------------------ */
/* Queue lifetime                                                       */
/* ------------------------------------------------------------------ */

static const struct {
	int id;
	const char *name;
	const struct evq__backend *be;
} backends[] = {
	/* AUTO tries these in order; epoll first while uring is slower on
	 * bench/uring.c (see bench/RESULTS-uring.md) */
	{ EVQ_BACKEND_EPOLL, "epoll", &evq__backend_epoll },
	{ EVQ_BACKEND_URING, "uring", &evq__backend_uring },
};
#define NBACKENDS (sizeof backends / sizeof backends[0])

/* Creates the backend state for q: the one asked for, or with AUTO the one
 * named by $EVQ_BACKEND, or the first in the table whose init succeeds. */
static int backend_init(struct evq *q, int want, int max_batch)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	if (want == EVQ_BACKEND_AUTO)
		want = cfg.backend;
	if (want < 0)
		return -EINVAL;
	int rc = -EINVAL;
	for (size_t i = 0; i < NBACKENDS; i++) {
		if (want != EVQ_BACKEND_AUTO && want != backends[i].id)
			continue;
		q->backend = backends[i].be;
		rc = q->backend->init(q, max_batch);
		if (cfg.debug)
			fprintf(stderr, "evq: backend %s: %s\n", backends[i].name,
				rc == 0 ? "chosen" : strerror(-rc));
		if (rc == 0 || want != EVQ_BACKEND_AUTO)
			return rc;
	}
	return rc;
}

static int create(struct evq **qp, const struct evq_options *opt);

int evq_new(struct evq **qp, const struct evq_options *opt)
{
	/* not a cancellation point: it must not stop half way */
	evq__nocancel_enter();
	int rc = create(qp, opt);
	evq__nocancel_leave();
	return rc;
}

static int create(struct evq **qp, const struct evq_options *opt)
{
	struct evq_options o = { 0 };
	if (!qp)
		return -EINVAL;
	*qp = NULL;
	if (opt)
		o = *opt;
	if (o.flags != 0 || o.max_batch < 0 || o.max_batch > EVQ_BATCH_MAX)
		return -EINVAL;
	if (o.max_batch == 0)
		o.max_batch = EVQ_BATCH_DEFAULT;

	pthread_once(&atfork_once, register_atfork);
	struct evq *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	static _Atomic uint64_t serials;
	q->fork_gen = atomic_load(&evq__fork_gen);
	q->serial = atomic_fetch_add(&serials, 1) + 1;
	q->keeper_deadline = INT64_MAX;
	q->rt_fd = -1;
	q->max_batch = o.max_batch;
	q->free_head = q->free_tail = -1;
	q->pend_head = q->pend_tail = -1;
	q->again_head = q->again_tail = -1;
	atomic_init(&q->post_head, -1);
	atomic_init(&q->round_head, -1);
	pthread_mutex_init(&q->lock, NULL);
	int rc = backend_init(q, o.backend, o.max_batch);
	if (rc < 0) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		return rc;
	}
	*qp = q;
	return 0;
}

/* What an inherited queue's kind hooks see in a forked child: the kernel
 * objects (epoll set, ring) are shared with the parent, so the child must
 * not change them; it only closes its own references. */
static int forked_fd_ctl(struct evq *q, enum evq__fd_op op, int fd, uint32_t events,
			 uint32_t flags, uint64_t token)
{
	(void)q, (void)op, (void)fd, (void)events, (void)flags, (void)token;
	return 0;
}
static void forked_wake(struct evq *q) { (void)q; }
static void forked_word_disarm(struct evq *q, struct evq__reg *r) { (void)q, (void)r; }

static void destroy(struct evq *q);

void evq_free(struct evq *q)
{
	if (!q)
		return;
	/* not a cancellation point: it must not stop half way */
	evq__nocancel_enter();
	destroy(q);
	evq__nocancel_leave();
}

static void destroy(struct evq *q)
{
	const struct evq__backend *be = q->backend;
	struct evq__backend forked;
	int child = evq__forked(q);
	if (child) {
		/* The lock may have been held by a thread that did not follow
		 * us through fork(): never take it in the child. */
		forked = *be;
		forked.fd_ctl = forked_fd_ctl;
		forked.wake = forked_wake;
		forked.word_disarm = be->word_disarm ? forked_word_disarm : NULL;
		q->backend = &forked;
	} else {
		lock(q);
	}
	uint32_t n = atomic_load(&q->nslots);
	for (uint32_t i = 0; i < n; i++) {
		struct evq__reg *r = evq__slot(q, i);
		if (evq__reg_kind(atomic_load(&r->state)) != 0 && r->ops && r->ops->del) {
			take_post(q, r, 0); /* as evq_del: del sees every occurrence */
			r->ops->del(q, r);
		}
	}
	evq__timer_fini(q);
	if (!child)
		unlock(q);
	be->fini(q);
	for (uint32_t c = 0; c < EVQ_MAX_CHUNKS; c++)
		free(atomic_load(&q->chunk[c]));  /* NULL beyond the last one */
	for (int i = 0; i < EVQ_NCLOCKS; i++)
		free(q->heap[i].a);
	free(q->fdmap);
	if (!child)
		pthread_mutex_destroy(&q->lock);
	free(q);
}

const char *evq_backend_name(const struct evq *q)
{
	return q ? q->backend->name : "?";
}

/* ------------------------------------------------------------------ */
/* Registration slots                                                   */
/* ------------------------------------------------------------------ */

uint32_t evq__reg_idx(struct evq *q, struct evq__reg *r)
{
	(void)q;
	return r->idx;
}

/* id = generation << 32 | slot (internal.h): the state word's generation
 * half with the kind replaced by the index. */
int64_t evq__reg_id(struct evq *q, struct evq__reg *r)
{
	(void)q;
	uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
	return (int64_t)((st & ~(uint64_t)UINT32_MAX) | r->idx);
}

static void free_push(struct evq *q, struct evq__reg *r)
{
	r->next = -1;
	if (q->free_tail >= 0)
		evq__slot(q, (uint32_t)q->free_tail)->next = (int32_t)r->idx;
	else
		q->free_head = (int32_t)r->idx;
	q->free_tail = (int32_t)r->idx;
}

/* Initialises one more slot, allocating its chunk first if needed.  The
 * chunk pointer and the slot are published before nslots grows, so
 * lock-free readers that saw idx < nslots find an initialised slot. */
static int grow_slots(struct evq *q)
{
	uint32_t n = atomic_load_explicit(&q->nslots, memory_order_relaxed);
	if (n >= EVQ_MAX_REGS)
		return -ENOSPC;
	uint32_t c = evq__chunk_of(n);
	if (n == evq__chunk_base(c)) {
		size_t len = c ? EVQ_CHUNK0 << (c - 1) : EVQ_CHUNK0;
		/* not calloc: slots are initialised one by one, as they are
		 * first used, so a big chunk costs only the pages it touches */
		struct evq__reg *p = malloc(len * sizeof *p);
		if (!p)
			return -ENOMEM;
		atomic_store_explicit(&q->chunk[c], p, memory_order_release);
	}
	struct evq__reg *r = evq__slot(q, n);
	memset(r, 0, sizeof *r);
	r->idx = n;
	r->heap_pos = -1;
	atomic_init(&r->state, (uint64_t)EVQ_GEN_FIRST << EVQ_ID_GEN_SHIFT);
	atomic_init(&r->ctl, 0);
	atomic_init(&r->val, 0);
	atomic_init(&r->post_next, -1);
	free_push(q, r);
	atomic_store_explicit(&q->nslots, n + 1, memory_order_release);
	return 0;
}

int64_t evq__reg_new(struct evq *q, int kind, const struct evq__kind_ops *ops,
		 uint32_t flags, uint64_t cookie, int32_t ident,
		 struct evq__reg **out)
{
	if (q->free_head < 0) {
		int rc = grow_slots(q);
		if (rc < 0)
			return rc;
	}
	struct evq__reg *r = evq__slot(q, (uint32_t)q->free_head);
	q->free_head = r->next;
	if (q->free_head < 0)
		q->free_tail = -1;

	uint32_t gen = evq__reg_gen(atomic_load_explicit(&r->state, memory_order_relaxed));
	r->flags = flags;
	r->cookie = cookie;
	r->events = 0;
	r->ident = ident;
	r->next = r->prev = -1;
	r->list = EVQ_LIST_NONE;
	r->clock = 0;
	r->pend_events = 0;
	r->pend_data = 0;
	atomic_store(&r->val, 0);
	atomic_store(&r->ctl, (uint64_t)evq__ctl_tag(gen) << EVQ_CTL_TAG_SHIFT);
	r->heap_pos = -1;
	r->deadline = r->interval = 0;
	r->dev = r->ino = 0;
	r->ops = ops;
	r->ext = NULL;
	atomic_store_explicit(&r->state, (uint64_t)gen << EVQ_ID_GEN_SHIFT | (uint32_t)kind,
			      memory_order_release);
	q->nlive++;
	*out = r;
	return evq__reg_id(q, r);
}

/* The live registration id names, or NULL: the id's generation half must
 * equal the slot's (an id below 2^32 - generation 0, e.g. one truncated to
 * an int - and a negative one match no slot). */
static inline struct evq__reg *reg_lookup(struct evq *q, int64_t id, uint64_t *state)
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

struct evq__reg *evq__reg_get(struct evq *q, int64_t id)
{
	uint64_t st;
	return reg_lookup(q, id, &st);
}

int evq__reg_get_kind(struct evq *q, int64_t id, int kind, struct evq__reg **out)
{
	uint64_t st;
	struct evq__reg *r = reg_lookup(q, id, &st);
	if (!r)
		return -ENOENT;
	if (evq__reg_kind(st) != (uint32_t)kind)
		return -EINVAL;
	*out = r;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pending lists                                                        */
/* ------------------------------------------------------------------ */

void evq__link(struct evq *q, struct evq__reg *r, int list)
{
	int32_t *head = list == EVQ_LIST_PENDING ? &q->pend_head : &q->again_head;
	int32_t *tail = list == EVQ_LIST_PENDING ? &q->pend_tail : &q->again_tail;
	r->list = (uint8_t)list;
	r->next = -1;
	r->prev = *tail;
	if (*tail >= 0)
		evq__slot(q, (uint32_t)*tail)->next = (int32_t)r->idx;
	else
		*head = (int32_t)r->idx;
	*tail = (int32_t)r->idx;
}

/* Links r at the front of the pending list. */
static void link_front(struct evq *q, struct evq__reg *r)
{
	r->list = EVQ_LIST_PENDING;
	r->prev = -1;
	r->next = q->pend_head;
	if (q->pend_head >= 0)
		evq__slot(q, (uint32_t)q->pend_head)->prev = (int32_t)r->idx;
	else
		q->pend_tail = (int32_t)r->idx;
	q->pend_head = (int32_t)r->idx;
}

void evq__unlink(struct evq *q, struct evq__reg *r)
{
	if (r->list == EVQ_LIST_NONE)
		return;
	int32_t *head = r->list == EVQ_LIST_PENDING ? &q->pend_head : &q->again_head;
	int32_t *tail = r->list == EVQ_LIST_PENDING ? &q->pend_tail : &q->again_tail;
	if (r->prev >= 0)
		evq__slot(q, (uint32_t)r->prev)->next = r->next;
	else
		*head = r->next;
	if (r->next >= 0)
		evq__slot(q, (uint32_t)r->next)->prev = r->prev;
	else
		*tail = r->prev;
	r->next = r->prev = -1;
	r->list = EVQ_LIST_NONE;
}

/* Makes registration r deliverable if it is enabled and has something to
 * deliver.  Returns 1 if it linked r: a caller outside the wait path then
 * kicks a sleeper (the wait path hands leftovers on in pass_on()). */
static int make_pending_at(struct evq *q, struct evq__reg *r, int front)
{
	if ((r->flags & EVQ_DISABLED) || r->list != EVQ_LIST_NONE)
		return 0;
	if (r->pend_data == 0 && r->pend_events == 0)
		return 0;
	if (front)
		link_front(q, r);
	else
		evq__link(q, r, EVQ_LIST_PENDING);
	return 1;
}

static int make_pending(struct evq *q, struct evq__reg *r)
{
	return make_pending_at(q, r, 0);
}

static void make_pending_kick(struct evq *q, struct evq__reg *r)
{
	if (make_pending(q, r))
		evq__kick(q);
}

/* ------------------------------------------------------------------ */
/* Lock-free posting                                                    */
/* ------------------------------------------------------------------ */

void evq__kick(struct evq *q)
{
	/* P2/P3 of the sleep protocol */
	if (atomic_load(&q->sleepers) > 0 && !atomic_exchange(&q->wake_sent, 1))
		q->backend->wake(q);
}

/* The queue whose kernel round this thread is harvesting (F2), if any. */
static __thread __attribute__((tls_model("initial-exec"))) struct evq *tl_round;

int evq__post(struct evq *q, struct evq__reg *r, uint32_t tag, uint64_t count)
{
	uint64_t c = atomic_load(&r->ctl), n;
	do {
		if ((c >> EVQ_CTL_TAG_SHIFT) != tag)
			return -ENOENT;
		uint64_t cnt = (c & EVQ_CTL_COUNT) + count;
		if (cnt > EVQ_CTL_COUNT)
			cnt = EVQ_CTL_COUNT;
		n = (c & ~EVQ_CTL_COUNT) | cnt | EVQ_CTL_QUEUED;
	} while (!atomic_compare_exchange_weak(&r->ctl, &c, n));
	if (c & EVQ_CTL_QUEUED)
		return 0; /* already on the stack: the drain will see our count */
	/* P1: push r on the post stack (a round's own posts on its stack) */
	_Atomic int32_t *stack = tl_round == q ? &q->round_head : &q->post_head;
	int32_t head = atomic_load(stack);
	do
		atomic_store_explicit(&r->post_next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak(stack, &head, (int32_t)r->idx));
	evq__kick(q);
	return 0;
}

/* Anything posted and not drained yet? */
static int posts_waiting(struct evq *q)
{
	return atomic_load(&q->post_head) >= 0 || atomic_load(&q->round_head) >= 0;
}

static void fold(struct evq *q, struct evq__reg *r, uint64_t count, uint64_t bits)
{
	if (r->ops && r->ops->posted)
		r->ops->posted(q, r, count, bits);
	else if (bits)
		r->pend_data |= bits;
	else
		r->pend_data += count;
}

/* Takes what producers recorded in r (count, bits), clearing the queued bit
 * too when the caller popped r from the stack. */
static void take_post(struct evq *q, struct evq__reg *r, int popped)
{
	uint64_t keep = popped ? ~(EVQ_CTL_QUEUED | EVQ_CTL_COUNT) : ~EVQ_CTL_COUNT;
	uint64_t c = atomic_load(&r->ctl);
	while (!atomic_compare_exchange_weak(&r->ctl, &c, c & keep))
		;
	uint64_t bits = atomic_exchange(&r->val, 0);
	if ((c & EVQ_CTL_COUNT) || bits)
		fold(q, r, c & EVQ_CTL_COUNT, bits);
}

/* A slot whose registration is gone (and off the post stack) goes back on
 * the free list - unless its generation is spent (EVQ_GEN_RETIRED): then no
 * registration may ever use it again, or a new id could equal an old one.
 * A retired slot keeps its ctl "queued" bit, so that not even a stale
 * post's tag that matched could put it on a post stack.  Locked. */
static void recycle(struct evq *q, struct evq__reg *r)
{
	if (evq__reg_gen(atomic_load_explicit(&r->state, memory_order_relaxed)) <= EVQ_GEN_MAX) {
		free_push(q, r);
		return;
	}
	atomic_fetch_or(&r->ctl, EVQ_CTL_QUEUED);
	r->flags = 0;
	r->next = -1;
}

/* One registration popped from a post stack. */
static void drain_one(struct evq *q, struct evq__reg *r, int front)
{
	if (r->flags & EVQ_R_ZOMBIE) {
		take_post(q, r, 1);
		r->pend_data = 0;
		r->flags = 0;
		recycle(q, r);
		return;
	}
	take_post(q, r, 1);
	make_pending_at(q, r, front);
}

/* Moves the registrations on one post stack into the pending list: at the
 * back in the order they were posted, or (front: a round's own posts) at
 * the front in that order. */
static void drain_stack(struct evq *q, _Atomic int32_t *stack, int front)
{
	int32_t i = atomic_exchange(stack, -1), rev = -1;
	if (front) {
		/* LIFO: linking each at the front leaves the first posted
		 * first */
		while (i >= 0) {
			struct evq__reg *r = evq__slot(q, (uint32_t)i);
			i = atomic_load_explicit(&r->post_next, memory_order_relaxed);
			drain_one(q, r, 1);
		}
		return;
	}
	/* The stack is LIFO; reverse it so occurrences are delivered in the
	 * order they were posted.  post_next is stable while "queued" is set. */
	while (i >= 0) {
		struct evq__reg *r = evq__slot(q, (uint32_t)i);
		int32_t next = atomic_load_explicit(&r->post_next, memory_order_relaxed);
		atomic_store_explicit(&r->post_next, rev, memory_order_relaxed);
		rev = i;
		i = next;
	}
	for (i = rev; i >= 0;) {
		struct evq__reg *r = evq__slot(q, (uint32_t)i);
		i = atomic_load_explicit(&r->post_next, memory_order_relaxed);
		drain_one(q, r, 0);
	}
}

static void drain_posts(struct evq *q)
{
	if (atomic_load_explicit(&q->round_head, memory_order_relaxed) >= 0)
		drain_stack(q, &q->round_head, 1);
	if (atomic_load_explicit(&q->post_head, memory_order_relaxed) >= 0)
		drain_stack(q, &q->post_head, 0);
}

/* ------------------------------------------------------------------ */
/* Removing registrations                                               */
/* ------------------------------------------------------------------ */

void evq__reg_free(struct evq *q, struct evq__reg *r)
{
	/* fold undelivered posts so the kind's del hook sees them all */
	take_post(q, r, 0);
	if (r->ops && r->ops->del)
		r->ops->del(q, r);
	evq__unlink(q, r);
	evq__timer_disarm(q, r);
	/* EVQ_GEN_MAX + 1 = EVQ_GEN_RETIRED: recycle() retires the slot */
	uint32_t gen = evq__reg_gen(atomic_load(&r->state)) + 1;
	atomic_store_explicit(&r->state, (uint64_t)gen << EVQ_ID_GEN_SHIFT,
			      memory_order_release);
	/* Retag: posts through the old id fail from now on. */
	uint64_t c = atomic_load(&r->ctl), n;
	do
		n = (uint64_t)evq__ctl_tag(gen) << EVQ_CTL_TAG_SHIFT | (c & EVQ_CTL_QUEUED);
	while (!atomic_compare_exchange_weak(&r->ctl, &c, n));
	atomic_store(&r->val, 0);
	r->pend_data = 0;
	r->pend_events = 0;
	r->ext = NULL;
	r->ops = NULL;
	q->nlive--;
	if (n & EVQ_CTL_QUEUED)
		r->flags = EVQ_R_ZOMBIE; /* still on the post stack */
	else
		recycle(q, r);
}

/* ------------------------------------------------------------------ */
/* File descriptors                                                     */
/* ------------------------------------------------------------------ */

static int fdmap_reserve(struct evq *q, int fd)
{
	if ((uint32_t)fd < q->fdmap_len)
		return 0;
	/* Before sizing the map by a number the caller gave us: an open fd is
	 * below RLIMIT_NOFILE (asked only when the map must grow). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)fd >= rl.rlim_cur && fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	uint32_t len = q->fdmap_len ? q->fdmap_len : 64;
	while (len <= (uint32_t)fd)
		len *= 2;
	int32_t *m = realloc(q->fdmap, len * sizeof *m);
	if (!m)
		return -ENOMEM;
	for (uint32_t i = q->fdmap_len; i < len; i++)
		m[i] = -1;
	q->fdmap = m;
	q->fdmap_len = len;
	return 0;
}

/* The fd's number now belongs to another registration (or none): the old one
 * goes silent; its kernel registration died with the file. */
static void fd_defunct(struct evq *q, struct evq__reg *r)
{
	r->flags |= EVQ_R_DEFUNCT;
	r->pend_events = 0;
	evq__unlink(q, r);
}

#define FD_EVENTS (EVQ_READ | EVQ_WRITE | EVQ_PRI)
/* What a regular file or directory reports: always readable and writable,
 * never urgent data (select() reports no exception for one either). */
#define FD_ALWAYS_EVENTS (EVQ_READ | EVQ_WRITE)
#define FD_FLAGS (EVQ_EDGE | EVQ_ONESHOT | EVQ_DISABLED)

int64_t evq_add_fd(struct evq *q, int fd, uint32_t events, uint32_t flags,
	       uint64_t cookie)
{
	struct evq__reg *r;
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	if (fd < 0)
		return -EBADF;
	if ((events & ~FD_EVENTS) || (flags & ~FD_FLAGS))
		return -EINVAL;
	lock(q);
	int64_t rc = fdmap_reserve(q, fd);
	if (rc < 0)
		goto out;
	int64_t id = evq__reg_new(q, EVQ_KIND_FD, NULL, flags, cookie, fd, &r);
	if (id < 0) {
		rc = id;
		goto out;
	}
	r->events = events;
	int32_t old = q->fdmap[fd];
	rc = q->backend->fd_ctl(q, EVQ_FD_ADD, fd, events, flags,
				evq__token(atomic_load(&r->state), r->idx));
	if (rc == -EPERM) {
		/* A regular file or directory: always ready (epoll refuses it). */
		struct stat sb;
		if (fstat(fd, &sb) < 0) {
			rc = -errno;
			goto fail;
		}
		if (old >= 0) {
			struct evq__reg *o = evq__slot(q, (uint32_t)old);
			if ((o->flags & EVQ_R_ALWAYS) && !(o->flags & EVQ_R_DEFUNCT) &&
			    o->dev == (uint64_t)sb.st_dev && o->ino == (uint64_t)sb.st_ino) {
				rc = -EEXIST;
				goto fail;
			}
		}
		r->flags |= EVQ_R_ALWAYS;
		r->dev = (uint64_t)sb.st_dev;
		r->ino = (uint64_t)sb.st_ino;
		r->pend_events = events & FD_ALWAYS_EVENTS;
		make_pending_kick(q, r);
	} else if (rc < 0) {
		goto fail;
	}
	if (old >= 0)
		fd_defunct(q, evq__slot(q, (uint32_t)old));
	q->fdmap[fd] = (int32_t)r->idx;
	rc = id;
	goto out;
fail:
	evq__reg_free(q, r);
out:
	unlock(q);
	return rc;
}

static int fd_mod(struct evq *q, struct evq__reg *r, uint32_t events, uint32_t flags)
{
	if ((events & ~FD_EVENTS) || (flags & ~FD_FLAGS))
		return -EINVAL;
	if (r->flags & EVQ_R_DEFUNCT)
		return -EBADF;
	if (r->flags & EVQ_R_ALWAYS) {
		r->flags = (r->flags & ~(EVQ_R_PUBLIC | EVQ_R_SPENT)) | flags;
		r->events = events;
		evq__unlink(q, r);
		r->pend_events = events & FD_ALWAYS_EVENTS;
		make_pending_kick(q, r);
		return 0;
	}
	int rc = q->backend->fd_ctl(q, EVQ_FD_MOD, r->ident, events, flags,
				    evq__token(atomic_load(&r->state), r->idx));
	if (rc == -ENOENT || rc == -EBADF) {
		fd_defunct(q, r);
		return -EBADF;
	}
	if (rc < 0)
		return rc;
	r->flags = (r->flags & ~(EVQ_R_PUBLIC | EVQ_R_SPENT)) | flags;
	r->events = events;
	return 0;
}

static void fd_del(struct evq *q, struct evq__reg *r)
{
	int fd = r->ident;
	if (q->fdmap[fd] != (int32_t)r->idx)
		return; /* defunct: the number belongs to someone else */
	q->fdmap[fd] = -1;
	if (!(r->flags & (EVQ_R_ALWAYS | EVQ_R_DEFUNCT)))
		/* ENOENT/EBADF: the file was closed, and epoll forgot it then */
		(void)q->backend->fd_ctl(q, EVQ_FD_DEL, fd, 0, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Timers and user events                                               */
/* ------------------------------------------------------------------ */

#define TIMER_FLAGS (EVQ_ABSTIME | EVQ_ONESHOT | EVQ_DISABLED)

static int timer_args(clockid_t clock, int64_t when_ns, int64_t interval_ns,
		      uint32_t flags)
{
	/* the three clocks every Linux since 2.6.39 has */
	int ci = evq__timer_clock_index(clock);
	if (ci < 0)
		return -EINVAL;
	if ((flags & ~TIMER_FLAGS) || interval_ns < 0)
		return -EINVAL;
	if (!(flags & EVQ_ABSTIME) && when_ns < 0)
		return -EINVAL;
	return ci;
}

int64_t evq_add_timer(struct evq *q, clockid_t clock, int64_t when_ns,
		  int64_t interval_ns, uint32_t flags, uint64_t cookie)
{
	struct evq__reg *r;
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	int ci = timer_args(clock, when_ns, interval_ns, flags);
	if (ci < 0)
		return ci;
	lock(q);
	int64_t id = evq__reg_new(q, EVQ_KIND_TIMER, NULL, flags, cookie, -1, &r);
	if (id >= 0) {
		r->clock = (uint8_t)ci;
		int rc = evq__timer_arm(q, r, when_ns, interval_ns, flags);
		if (rc < 0) {
			evq__reg_free(q, r);
			id = rc;
		}
	}
	unlock(q);
	return id;
}

int evq_mod_timer(struct evq *q, int64_t id, int64_t when_ns, int64_t interval_ns,
		  uint32_t flags)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	lock(q);
	struct evq__reg *r;
	int rc = evq__reg_get_kind(q, id, EVQ_KIND_TIMER, &r);
	if (rc < 0)
		goto out;
	int ci = r->clock;
	static const clockid_t ids[EVQ_NCLOCKS] = { CLOCK_MONOTONIC, CLOCK_REALTIME,
						   CLOCK_BOOTTIME };
	rc = timer_args(ids[ci], when_ns, interval_ns, flags);
	if (rc < 0)
		goto out;
	/* a fired timer is in no heap: room first, so that a failed call
	 * has discarded nothing */
	rc = evq__timer_reserve(q, ci);
	if (rc < 0)
		goto out;
	evq__unlink(q, r);
	r->pend_data = 0;
	r->flags = (r->flags & ~(EVQ_R_PUBLIC | EVQ_R_SPENT)) | flags;
	rc = evq__timer_arm(q, r, when_ns, interval_ns, flags);
out:
	unlock(q);
	return rc;
}

int64_t evq_add_user(struct evq *q, uint64_t cookie)
{
	struct evq__reg *r;
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	lock(q);
	int64_t id = evq__reg_new(q, EVQ_KIND_USER, NULL, 0, cookie, -1, &r);
	unlock(q);
	return id;
}

int evq_trigger(struct evq *q, int64_t id)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	int saved = errno, rc = -ENOENT;
	uint64_t st;
	struct evq__reg *r = reg_lookup(q, id, &st);
	if (r && evq__reg_kind(st) != EVQ_KIND_USER)
		rc = -EINVAL;
	else if (r)
		/* a del racing with us retags ctl: the post then fails */
		rc = evq__post(q, r, evq__ctl_tag(evq__reg_gen(st)), 1);
	errno = saved;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Changing and removing                                                */
/* ------------------------------------------------------------------ */

int evq_mod(struct evq *q, int64_t id, uint32_t events, uint32_t flags)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	lock(q);
	int rc = -ENOENT;
	struct evq__reg *r = evq__reg_get(q, id);
	if (!r)
		goto out;
	if (evq__reg_kind(atomic_load(&r->state)) == EVQ_KIND_FD) {
		rc = fd_mod(q, r, events, flags);
		/* a requeued record waits while disabled, as other kinds' do */
		if (rc == 0 && (r->flags & EVQ_DISABLED))
			evq__unlink(q, r);
		else if (rc == 0)
			make_pending_kick(q, r);
		goto out;
	}
	rc = -EINVAL;
	if (events != 0 || (flags & ~(EVQ_ONESHOT | EVQ_DISABLED)))
		goto out;
	uint32_t old = r->flags;
	r->flags = (r->flags & ~(EVQ_ONESHOT | EVQ_DISABLED | EVQ_R_SPENT)) | flags;
	rc = 0;
	if (r->ops && r->ops->mod) {
		rc = r->ops->mod(q, r, old);
		if (rc < 0) {
			r->flags = old;
			goto out;
		}
	}
	if (r->flags & EVQ_DISABLED)
		evq__unlink(q, r); /* occurrences stay parked in pend_data */
	else
		make_pending_kick(q, r);
out:
	unlock(q);
	return rc;
}

int evq_del(struct evq *q, int64_t id)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	lock(q);
	struct evq__reg *r = evq__reg_get(q, id);
	if (r) {
		if (evq__reg_kind(atomic_load(&r->state)) == EVQ_KIND_FD)
			fd_del(q, r);
		evq__reg_free(q, r);
	}
	unlock(q);
	return r ? 0 : -ENOENT;
}

/* ------------------------------------------------------------------ */
/* What this thread holds (evq_requeue)                                 */
/* ------------------------------------------------------------------ */

/* The records the calling thread's most recent evq_wait() that returned
 * events handed out, and which of them were given back: evq_requeue()
 * accepts exactly those (a record of another queue, an altered or forged
 * one, or one given back already cannot make an occurrence - or a
 * semaphore's token - out of nothing).  Per thread, so no lock; freed
 * when the thread exits. */
struct held {
	uint64_t serial;   /* the queue's (0: nothing held) */
	int n, cap;
	struct evq_event *ev; /* kind 0 (no event has it): given back */
};

static pthread_key_t held_key;
static int held_key_ok;
static pthread_once_t held_once = PTHREAD_ONCE_INIT;
static __thread __attribute__((tls_model("initial-exec"))) struct held *tl_held;
/* hold() could not allocate tl_held: the batch is lost (-ENOMEM) */
static __thread __attribute__((tls_model("initial-exec"))) int tl_held_lost;

static void held_free(void *p)
{
	struct held *h = p;
	if (h) {
		free(h->ev);
		free(h);
	}
}

static void held_key_init(void)
{
	held_key_ok = pthread_key_create(&held_key, held_free) == 0;
}

/* Records out[0..n) as held; on allocation failure records nothing (a
 * later evq_requeue() of them then fails with -ENOMEM, never wrongly
 * succeeds). */
static void hold(struct evq *q, const struct evq_event *out, int n)
{
	struct held *h = tl_held;
	if (!h) {
		pthread_once(&held_once, held_key_init);
		tl_held_lost = !(h = calloc(1, sizeof *h));
		if (!h)
			return;
		tl_held = h;
		if (held_key_ok)
			pthread_setspecific(held_key, h);
	}
	if (n > h->cap) {
		int cap = n < 16 ? 16 : n;
		struct evq_event *ev = malloc((size_t)cap * sizeof *ev);
		if (!ev) {
			h->serial = 0;
			h->n = -1; /* lost */
			return;
		}
		free(h->ev);
		h->ev = ev;
		h->cap = cap;
	}
	memcpy(h->ev, out, (size_t)n * sizeof *out);
	h->n = n;
	h->serial = q->serial;
}

/* Finds ev among the records this thread holds from q and marks it given
 * back: 0, -EINVAL (not one of them, or given back already) or -ENOMEM
 * (they could not be recorded). */
static int unhold(struct evq *q, const struct evq_event *ev)
{
	struct held *h = tl_held;
	if (h ? h->n < 0 : tl_held_lost)
		return -ENOMEM;
	if (!h || h->serial != q->serial)
		return -EINVAL;
	for (int i = 0; i < h->n; i++)
		if (memcmp(&h->ev[i], ev, sizeof *ev) == 0) {
			h->ev[i].kind = 0; /* given back */
			return 0;
		}
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Waiting                                                              */
/* ------------------------------------------------------------------ */

static void fill(struct evq *q, struct evq_event *ev, struct evq__reg *r,
		 uint32_t events, uint64_t data)
{
	ev->cookie = r->cookie;
	ev->id = evq__reg_id(q, r);
	ev->kind = (uint16_t)evq__reg_kind(atomic_load_explicit(&r->state,
							      memory_order_relaxed));
	ev->flags = (uint16_t)(r->flags & EVQ_R_PUBLIC);
	ev->events = events;
	ev->ident = r->ident;
	ev->data = data;
	ev->reserved = 0;
}

static inline int deliver_pending(struct evq *q, struct evq_event *out, int max)
{
	int n = 0;
	while (n < max && q->pend_head >= 0) {
		struct evq__reg *r = evq__slot(q, (uint32_t)q->pend_head);
		evq__unlink(q, r);
		if (r->ops && r->ops->claim && !r->ops->claim(q, r))
			continue; /* nothing after all (a semaphore's token
				     went elsewhere) */
		fill(q, &out[n++], r, r->pend_events, r->pend_data);
		r->pend_data = 0;
		if (r->flags & EVQ_ONESHOT)
			r->flags |= EVQ_DISABLED | EVQ_R_SPENT;
		if ((r->flags & EVQ_R_ALWAYS) &&
		    !(r->flags & (EVQ_EDGE | EVQ_ONESHOT)))
			/* level: ready again, but only after the next kernel
			 * round, so always-ready files cannot starve others */
			evq__link(q, r, EVQ_LIST_AGAIN);
		else
			r->pend_events = 0;
		if (r->ops && r->ops->delivered)
			r->ops->delivered(q, r);
	}
	return n;
}

/* Brings library-side occurrences into the pending list: drains the post
 * stack and fires expired timers.  *next_timer = ns to the nearest timer, -1
 * if none. */
static inline void pull(struct evq *q, int64_t *next_timer)
{
	if (atomic_load_explicit(&q->post_head, memory_order_relaxed) >= 0 ||
	    atomic_load_explicit(&q->round_head, memory_order_relaxed) >= 0)
		drain_posts(q);
	*next_timer = evq__timer_run(q);
}

/* One event the kernel reported, checked against the registration as it
 * is now: fills *ev and returns 1 if it is to be delivered, 0 if its
 * registration was deleted (or deleted and reused) since, disabled,
 * defunct, or has nothing to say after all.  Locked. */
static inline int take_ready(struct evq *q, const struct evq__ready *rd,
			     struct evq_event *ev)
{
	uint32_t nslots = atomic_load_explicit(&q->nslots, memory_order_relaxed);
	uint32_t idx = (uint32_t)rd->token;
	if (rd->token == EVQ_TOKEN_CLOCK) {
		evq__timer_clock_fired(q);
		return 0;
	}
	if (idx >= nslots)
		return 0;
	struct evq__reg *r = evq__slot(q, idx);
	uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
	if (evq__reg_kind(st) == 0 || evq__reg_gen(st) != rd->token >> 32)
		return 0;
	if (r->flags & (EVQ_DISABLED | EVQ_R_DEFUNCT))
		return 0;
	uint32_t e = rd->events & (r->events | EVQ_ERR | EVQ_HUP);
	if (!e)
		return 0;
	fill(q, ev, r, e, 0);
	return !(r->ops && r->ops->ready && !r->ops->ready(q, r, e, ev));
}

static int harvest(struct evq *q, const struct evq__ready *ready, int k,
		   struct evq_event *out)
{
	int n = 0;
	for (int i = 0; i < k; i++) {
		if (!take_ready(q, &ready[i], &out[n]))
			continue;
		struct evq__reg *r = evq__slot(q, (uint32_t)ready[i].token);
		if (r->list == EVQ_LIST_PENDING && !r->ops) {
			/* an fd record given back (evq_requeue) is pending:
			 * one record for both, not two in this batch */
			out[n].events |= r->pend_events;
			r->pend_events = 0;
			evq__unlink(q, r);
		}
		n++;
		if (r->flags & EVQ_ONESHOT) /* the kernel disarmed it */
			r->flags |= EVQ_DISABLED | EVQ_R_SPENT;
	}
	return n;
}

static int merge_back(struct evq *q, struct evq__reg *r, const struct evq_event *ev);

/* What a cancelled waiter had taken from the kernel goes to the pending
 * list, as if given back (evq_requeue).  Returns 1 if it linked any.
 * Locked. */
static int park(struct evq *q, const struct evq__ready *ready, int k)
{
	int linked = 0;
	for (int i = 0; i < k; i++) {
		struct evq_event ev;
		if (take_ready(q, &ready[i], &ev))
			linked |= merge_back(q, evq__slot(q, (uint32_t)ready[i].token), &ev);
	}
	return linked;
}

/* Level-triggered regular files come back once per kernel round.  The kernel
 * cannot tell us they were closed, so look: a registration whose fd is gone
 * or now names another file goes silent, as epoll does for closed fds. */
static void again_to_pending(struct evq *q)
{
	while (q->again_head >= 0) {
		struct evq__reg *r = evq__slot(q, (uint32_t)q->again_head);
		struct stat sb;
		evq__unlink(q, r);
		if (fstat(r->ident, &sb) < 0 || (uint64_t)sb.st_dev != r->dev ||
		    (uint64_t)sb.st_ino != r->ino)
			fd_defunct(q, r);
		else
			evq__link(q, r, EVQ_LIST_PENDING);
	}
}

/* After a waiter took its events: if others sleep and work is left for them
 * (pending beyond this caller's max, or armed timers nobody's timeout
 * covers), end one of their sleeps - one, not all. */
static void pass_on(struct evq *q)
{
	if (atomic_load(&q->sleepers) == 0)
		return;
	if (q->pend_head >= 0 || posts_waiting(q) ||
	    (q->ntimers && q->keeper_deadline == INT64_MAX) ||
	    atomic_load(&q->shut)) /* S2: the relay */
		evq__kick(q);
}

/* One round of evq_wait through the backend, for its cancellation handler
 * (evq_wait(3) CANCELLATION). */
struct round {
	struct evq *q;
	struct evq__ready *ready;
	struct evq__round round;
	int sleep;        /* counted in q->sleepers (W1) */
	int64_t keep;     /* the keeper deadline it took, INT64_MAX none */
	int k;            /* what the backend returned */
};

#ifdef EVQ__ASAN
/* AddressSanitizer and cancellation.  glibc runs cleanup handlers by
 * unwinding (libgcc's _Unwind_ForcedUnwind) and jumping with its internal
 * longjmp, which ASan does not intercept, into the frame that pushed each
 * handler.  The frames between that one and the cancellation point are
 * abandoned without their epilogues, so the shadow of their redzones stays
 * poisoned although that memory is now free stack below the handler.
 * Which frames those are depends on the compiler's inlining: at -O0 on
 * epoll, ep_sleep()'s (every cancel in the sleep); on io_uring, before it
 * polled with the raw system call, ur_wait's and poll_now()'s (a cancel in
 * glibc's epoll_pwait2 there had no handler but round_cancelled; CI's gcc
 * -O2 asan run aborted in tests/cancel on that).  Instrumented code is
 * not hurt (every function poisons its own frame afresh on entry), but the
 * compiler puts a __asan_handle_no_return() before each handler's
 * __pthread_unwind_next(), and that runtime function calls
 * sigaltstack(NULL, &ss) through ASan's own interceptor, which checks &ss
 * - a local in an uninstrumented runtime frame just below the handler -
 * against that stale shadow: "stack-buffer-overflow WRITE of size 24 ... in
 * __interceptor_sigaltstack ... round_wait" (google/sanitizers#1399), and
 * with abort_on_error=1 a SIGABRT.  A false report: the memory is the
 * thread's own free stack.  (libgcc's unwinder also calls the intercepted
 * memset and memcpy on its own frames there.)
 * So every handler of the library first clears the shadow of the stack
 * below itself, from a frame ASan does not instrument, before any
 * instrumented callee or interceptor runs there: what
 * __asan_handle_no_return does above itself, done below first. */
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
static __thread __attribute__((tls_model("initial-exec"))) char *tl_stack_lo;

/* The lowest address of this thread's stack, once per thread, taken while
 * the shadow is still right (before any sleep could be cancelled). */
void evq__asan_stack_note(void)
{
	if (tl_stack_lo)
		return;
	pthread_attr_t a;
	void *lo;
	size_t size;
	evq__nocancel_enter();
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		if (pthread_attr_getstack(&a, &lo, &size) == 0)
			tl_stack_lo = lo;
		pthread_attr_destroy(&a);
	}
	evq__nocancel_leave();
}

/* Unpoisons the stack below the caller's frame: at most 1 MiB (the frames
 * a cancel skips take a few KiB; a main thread with an unlimited stack
 * limit reports a huge one). */
__attribute__((no_sanitize_address, noinline)) void evq__asan_unstale(void)
{
	char *here = __builtin_frame_address(0), *lo = tl_stack_lo;
	if (!lo || here <= lo)
		return;
	if ((size_t)(here - lo) > ((size_t)1 << 20))
		lo = here - ((size_t)1 << 20);
	__asan_unpoison_memory_region(lo, (size_t)(here - lo));
}
#endif

/* The waiter was cancelled in its sleep (the backend's own handler ran
 * first).  Undo W1 and the keeper deadline; park what it had taken from
 * the kernel; and since the sleep may have consumed a wake() meant for
 * the queue, let the next one through and end another sleeper's sleep if
 * anything is left for it (pass_on): no event waits for a thread that is
 * gone, and no other waiter is affected. */
static void round_cancelled(void *arg)
{
	evq__asan_unstale(); /* first: see above */
	struct round *w = arg;
	struct evq *q = w->q;
	tl_round = NULL;
	if (w->sleep)
		atomic_fetch_sub(&q->sleepers, 1);             /* W4 */
	atomic_store(&q->wake_sent, 0);
	wait_lock(q);
	if (w->keep != INT64_MAX && w->keep == q->keeper_deadline)
		q->keeper_deadline = INT64_MAX;
	park(q, w->ready, w->round.taken);
	pass_on(q);
	wait_unlock(q);
}

/* W3: the backend's wait, a cancellation point. */
static __attribute__((noinline)) int round_wait(struct round *w, int64_t t,
						const sigset_t *sigmask, int batch)
{
	tl_round = w->q; /* posts made by this round go first (F2) */
	evq__asan_stack_note();
	pthread_cleanup_push(round_cancelled, w);
	w->k = w->q->backend->wait(w->q, t, sigmask, w->ready, batch, &w->round);
	pthread_cleanup_pop(0);
	return w->k;
}

int evq_wait(struct evq *q, struct evq_event *out, int max, int64_t timeout_ns,
	     const sigset_t *sigmask)
{
	struct evq__ready ready[EVQ_BATCH_MAX];
	int64_t next_timer;
	/* live across the setjmp of pthread_cleanup_push (-Wclobbered) */
	volatile int64_t end = 0;
	volatile int repolled = 0;
	if (!q || !out || max <= 0)
		return -EINVAL;
	if (evq__forked(q))
		return -ECHILD;
	pthread_testcancel(); /* a cancellation point, also when events wait */
	if (atomic_load(&q->shut))
		return -ESHUTDOWN; /* S2, also with events pending */
	if (timeout_ns > 0)
		end = evq__sat_add(evq__now(0), timeout_ns);

	wait_lock(q);
	pull(q, &next_timer);
	if (q->pend_head >= 0 && !q->kernel_owed) {
		/* F1: the previous call asked the kernel; this one may hand
		 * out what is pending without a system call */
		int n = deliver_pending(q, out, max);
		if (n > 0) { /* else all claims failed: wait as usual */
			q->kernel_owed = 1;
			pass_on(q);
			wait_unlock(q);
			hold(q, out, n);
			return n;
		}
	}
	int n = 0;
	for (;;) {
		/* F2: ask the kernel - a poll (t = 0) when anything is pending,
		 * so that kernel-side sources are harvested even while
		 * library-side ones keep the queue busy */
		int64_t t, keep = INT64_MAX;
		if (q->pend_head >= 0 || q->again_head >= 0 || timeout_ns == 0)
			t = 0;
		else if (timeout_ns < 0)
			t = -1;
		else if ((t = end - evq__now(0)) < 0)
			t = 0;
		if (next_timer >= 0 && t != 0) {
			/* Wake for the nearest timer only if no other sleeper
			 * already does: idle waiters do not all wake per tick. */
			int64_t dl = evq__sat_add(evq__now(0), next_timer);
			if (dl < q->keeper_deadline) {
				q->keeper_deadline = keep = dl;
				if (t < 0 || next_timer < t)
					t = next_timer;
			}
		}

		struct round w = { q, ready, { 0, 0 }, t != 0, keep, 0 };
		if (w.sleep) { /* a poll needs no wakeup: no W1..W4 */
			atomic_fetch_add(&q->sleepers, 1);             /* W1 */
			if (atomic_load(&q->shut)) {                   /* S2 */
				atomic_fetch_sub(&q->sleepers, 1);
				if (keep == q->keeper_deadline)
					q->keeper_deadline = INT64_MAX;
				n = -ESHUTDOWN;
				break;
			}
			if (posts_waiting(q)) {                        /* W2 */
				atomic_fetch_sub(&q->sleepers, 1);
				if (keep == q->keeper_deadline)
					q->keeper_deadline = INT64_MAX;
				pull(q, &next_timer);
				continue;  /* pending now: F2 polls */
			}
		}
		wait_unlock(q);
		int batch = max < q->max_batch ? max : q->max_batch;
		int k = round_wait(&w, t, sigmask, batch);             /* W3 */
		if (w.sleep)
			atomic_fetch_sub(&q->sleepers, 1);             /* W4 */
		if (w.round.woken)
			atomic_store(&q->wake_sent, 0);
		wait_lock(q);
		if (keep != INT64_MAX && keep == q->keeper_deadline)
			q->keeper_deadline = INT64_MAX;
		if (atomic_load(&q->shut)) {                           /* S2 */
			/* read after W4 and wake_sent = 0; what the kernel
			 * gave this round stays pending, for evq_del */
			if (k > 0)
				park(q, ready, k);
			tl_round = NULL;
			n = -ESHUTDOWN;
			break;
		}

		q->kernel_owed = 0;
		if (k > 0)
			n = harvest(q, ready, k, out);
		tl_round = NULL;
		again_to_pending(q);
		pull(q, &next_timer);
		n += deliver_pending(q, out + n, max - n);
		if (n > 0)
			break;
		/* A poll whose backend call brought back only a wakeup left
		 * over from an earlier sleep (epoll: it may fill a batch of
		 * one; io_uring returns before polling) or only events dropped
		 * above (e.g. a oneshot fd the kernel re-armed while a
		 * requeued record spent it) has not seen every fd: look again,
		 * a few times at most. */
		if (timeout_ns == 0 && k >= 0 && (w.round.woken || k > 0) && repolled++ < 4)
			continue;
		if (k < 0 || timeout_ns == 0 ||
		    (timeout_ns > 0 && evq__now(0) >= end)) {
			n = k < 0 ? k : 0;
			break;
		}
	}
	pass_on(q);
	wait_unlock(q);
	if (n > 0)
		hold(q, out, n);
	return n;
}

int evq_shutdown(struct evq *q)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	/* Async-signal-safe: an atomic store and a kick, no lock.  Again:
	 * a harmless extra wake. */
	int saved = errno;
	atomic_store(&q->shut, 1);                                     /* S1 */
	evq__kick(q);
	errno = saved;
	return 0;
}

/* Folds an event that was taken but not handed out (given back by
 * evq_requeue, or harvested by a waiter cancelled before it could return
 * it) into r's pending occurrence: counts add, bits and readiness OR, a
 * signal's newest sender and value stay the newest.  Returns 1 if it
 * linked r (the caller kicks a sleeper).  Locked. */
static int merge_back(struct evq *q, struct evq__reg *r, const struct evq_event *ev)
{
	if (ev->kind == EVQ_KIND_MASK) {
		r->pend_data |= ev->data;
	} else if (ev->kind == EVQ_KIND_WORD) {
		r->pend_data = ev->data;
	} else if (ev->kind == EVQ_KIND_SIGNAL) {
		/* data: count in the low half (add, saturating), the newest
		 * value in the high half; events: the newest sender */
		uint64_t c = (r->pend_data & 0xffffffffu) + (ev->data & 0xffffffffu);
		uint64_t hi = r->pend_data ? r->pend_data >> 32 : ev->data >> 32;
		r->pend_data = hi << 32 | (c > 0xffffffffu ? 0xffffffffu : c);
		if (!r->pend_events)
			r->pend_events = ev->events;
	} else {
		r->pend_data += ev->data;
	}
	if (ev->kind != EVQ_KIND_SIGNAL)
		r->pend_events |= ev->events;
	/* A fired oneshot gives its event back too; one the caller disabled
	 * keeps it parked until enabled. */
	if (r->list == EVQ_LIST_NONE &&
	    (!(r->flags & EVQ_DISABLED) || (r->flags & EVQ_R_SPENT))) {
		evq__link(q, r, EVQ_LIST_PENDING);
		return 1;
	}
	return 0;
}

int evq_requeue(struct evq *q, const struct evq_event *ev)
{
	if (!q || !ev)
		return -EINVAL;
	if (evq__forked(q))
		return -ECHILD;
	int rc = unhold(q, ev);
	if (rc < 0)
		return rc;
	lock(q);
	/* -ENOENT: deleted since, the event is gone with it.  -EINVAL: the
	 * registration is not the record's kind (or cookie) - only an altered
	 * record, which unhold() refuses already, could get here. */
	struct evq__reg *r;
	rc = evq__reg_get_kind(q, ev->id, ev->kind, &r);
	if (rc < 0)
		goto out;
	rc = -EINVAL;
	if (r->cookie != ev->cookie)
		goto out;
	rc = 0;
	if (merge_back(q, r, ev))
		evq__kick(q);
out:
	unlock(q);
	return rc;
}
