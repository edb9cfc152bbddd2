/* SPDX-License-Identifier: MIT */
/*
 * post.c - the pending lists and the lock-free post stacks: how an
 * occurrence gets from a producer (evq_trigger, a watcher thread, a signal
 * handler, a mask notifier) to the list evq_wait hands out from.  The sleep
 * protocol the producers' half (P1-P3) belongs to is described in wait.c
 * and model/queue.pml.
 */
#include <errno.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* Pending lists                                                        */
/* ------------------------------------------------------------------ */

void evq__link(struct evq *q, struct evq__reg *r, int list)
{
	int32_t *head = list == EVQ_LIST_PENDING ? &q->pend_head : &q->again_head;
	int32_t *tail = list == EVQ_LIST_PENDING ? &q->pend_tail : &q->again_tail;
	int32_t idx = (int32_t)evq__idx(r);
	r->list = (unsigned)list;
	r->next = -1;
	r->prev = *tail;
	if (*tail >= 0)
		evq__slot(q, (uint32_t)*tail)->next = idx;
	else
		evq__head_set(head, idx);
	*tail = idx;
}

/* Links r at the front of the pending list. */
static void link_front(struct evq *q, struct evq__reg *r)
{
	int32_t idx = (int32_t)evq__idx(r);
	r->list = EVQ_LIST_PENDING;
	r->prev = -1;
	r->next = q->pend_head;
	if (q->pend_head >= 0)
		evq__slot(q, (uint32_t)q->pend_head)->prev = idx;
	else
		q->pend_tail = idx;
	evq__head_set(&q->pend_head, idx);
}

void evq__unlink(struct evq *q, struct evq__reg *r)
{
	if (r->list == EVQ_LIST_NONE)
		return;
	int32_t *head = r->list == EVQ_LIST_PENDING ? &q->pend_head : &q->again_head;
	int32_t *tail = r->list == EVQ_LIST_PENDING ? &q->pend_tail : &q->again_tail;
	int32_t prev = (int32_t)r->prev, next = (int32_t)r->next;
	if (prev >= 0)
		evq__slot(q, (uint32_t)prev)->next = next;
	else
		evq__head_set(head, next);
	if (next >= 0)
		evq__slot(q, (uint32_t)next)->prev = prev;
	else
		*tail = prev;
	r->next = r->prev = -1;
	r->list = EVQ_LIST_NONE;
}

/* Makes registration r deliverable if it is enabled and has something to
 * deliver.  Returns 1 if it linked r: a caller outside the wait path then
 * kicks a sleeper (the wait path hands leftovers on in pass_on()). */
int evq__make_pending(struct evq *q, struct evq__reg *r, int front)
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

void evq__make_pending_kick(struct evq *q, struct evq__reg *r)
{
	if (evq__make_pending(q, r, 0))
		evq__kick_linked(q);
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

/* After linking into the pending list (or arming a timer) under q->lock:
 * the store and the load of sleepers are a Dekker pair with W1 and the
 * quiet test (wait.c, Q), which reads pend_head without the lock; the
 * fence keeps the store from passing the load.  Posts need none: their
 * push is a seq_cst read-modify-write already (P1). */
void evq__kick_linked(struct evq *q)
{
	atomic_thread_fence(memory_order_seq_cst);
	evq__kick(q);
}

/* The queue whose kernel round this thread is harvesting (F2), if any. */
__thread __attribute__((tls_model("initial-exec"))) struct evq *evq__tl_round;

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
	_Atomic int32_t *stack = evq__tl_round == q ? &q->round_head : &q->post_head;
	int32_t head = atomic_load(stack);
	do
		atomic_store_explicit(&r->post_next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak(stack, &head, (int32_t)evq__idx(r)));
	evq__kick(q);
	return 0;
}

/* Anything posted and not drained yet? */
int evq__posts_waiting(struct evq *q)
{
	return atomic_load(&q->post_head) >= 0 || atomic_load(&q->round_head) >= 0;
}

static void fold(struct evq *q, struct evq__reg *r, uint64_t count, uint64_t bits)
{
	const struct evq__kind *k = evq__kind_of(r);
	if (k->posted)
		k->posted(q, r, count, bits);
	else if (bits)
		r->pend_data |= bits;
	else
		r->pend_data += count;
}

/* Takes what producers recorded in r (count, bits), clearing the queued bit
 * too when the caller popped r from the stack. */
void evq__take_post(struct evq *q, struct evq__reg *r, int popped)
{
	uint64_t keep = popped ? ~(EVQ_CTL_QUEUED | EVQ_CTL_COUNT) : ~EVQ_CTL_COUNT;
	uint64_t c = atomic_load(&r->ctl);
	/* Nothing to clear (evq_del of an idle registration, the common
	 * case): the seq_cst load stands for a CAS that would write c back,
	 * and acquires what the producer of c made visible before its post
	 * CAS (the release this load pairs with), so no locked instruction. */
	while ((c & keep) != c && !atomic_compare_exchange_weak(&r->ctl, &c, c & keep))
		;
	/* Likewise val: a bit OR-ed in before a post we took above is
	 * visible to this load (happens-before through the ctl CAS chain); a
	 * bit racing with it belongs to a post after ours, whose drain takes
	 * it.  Reading 0 is an exchange that found 0. */
	uint64_t bits = atomic_load_explicit(&r->val, memory_order_relaxed)
		? atomic_exchange(&r->val, 0) : 0;
	if ((c & EVQ_CTL_COUNT) || bits)
		fold(q, r, c & EVQ_CTL_COUNT, bits);
}

/* One registration popped from a post stack. */
static void drain_one(struct evq *q, struct evq__reg *r, int front)
{
	if (r->flags & EVQ_R_ZOMBIE) {
		evq__take_post(q, r, 1);
		r->pend_data = 0;
		r->flags = 0;
		evq__slot_recycle(q, r, 0);
		return;
	}
	evq__take_post(q, r, 1);
	evq__make_pending(q, r, front);
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

void evq__drain_posts(struct evq *q)
{
	if (atomic_load_explicit(&q->round_head, memory_order_relaxed) >= 0)
		drain_stack(q, &q->round_head, 1);
	if (atomic_load_explicit(&q->post_head, memory_order_relaxed) >= 0)
		drain_stack(q, &q->post_head, 0);
}

