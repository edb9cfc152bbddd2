/* SPDX-License-Identifier: MIT */
/*
 * requeue.c - evq_requeue: an event handed out but not consumed goes back.
 * The records a thread may give back are those its last evq_wait handed
 * out (hold/unhold below); a waiter cancelled in its sleep gives back what
 * it had taken from the kernel the same way (wait.c, park()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void lock(struct evq *q) { evq__lock(q); }
static void unlock(struct evq *q) { evq__unlock(q); }

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

#define HELD_FIRST_CAP 16

static pthread_key_t held_key;
static int held_key_ok;
static pthread_once_t held_once = PTHREAD_ONCE_INIT;
static __thread __attribute__((tls_model("initial-exec"))) struct held *tl_held;
/* evq__hold() could not allocate tl_held: the batch is lost (-ENOMEM) */
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
void evq__hold(struct evq *q, const struct evq_event *out, int n)
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
		int cap = n < HELD_FIRST_CAP ? HELD_FIRST_CAP : n;
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

/* Folds an event that was taken but not handed out (given back by
 * evq_requeue, or harvested by a waiter cancelled before it could return
 * it) into r's pending occurrence, as r's kind says (default: counts add,
 * bits and readiness OR).  Returns 1 if it linked r (the caller kicks a
 * sleeper).  Locked. */
int evq__merge_back(struct evq *q, struct evq__reg *r, const struct evq_event *ev)
{
	const struct evq__kind *k = evq__kind_of(r);
	if (k->merge) {
		k->merge(r, ev);
	} else {
		r->pend_data += ev->data;
		r->pend_events |= ev->events;
	}
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
	int rc = ev ? evq__check(q) : -EINVAL;
	if (rc == 0)
		rc = unhold(q, ev);
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
	if (evq__merge_back(q, r, ev))
		evq__kick_linked(q);
out:
	unlock(q);
	return rc;
}
