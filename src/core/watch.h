/* SPDX-License-Identifier: MIT */
/*
 * watch.h - the futex watcher (watch.c): helper threads that wait on
 * memory words for a queue whose backend cannot (epoll), and the interface
 * word.c, sem.c and latch.c use to arm a word either natively
 * (backend->word_arm) or through a watcher.  Not installed.
 */
#ifndef EVQ_WATCH_H
#define EVQ_WATCH_H

#include <stdint.h>

#include "internal.h"

struct evq__watch_thread;

/* One watched word.  The owner (word.c, sem.c, latch.c) embeds it in its
 * registration state and fills addr, shared and check before the first
 * arm; the rest belongs to watch.c.  Fields marked (mu) are read and
 * written only under the watching thread's mutex once attached. */
struct evq__watch_item {
	uint32_t *addr;
	int shared;
	/* Called while the item is active when its word may have changed:
	 * by the watcher thread (with its mutex held) once the kernel found
	 * the word no longer holding it->expected, or by a native backend
	 * after a completion (woken: this word's kernel wait was the one
	 * woken).  It must not take q->lock.  Returns 1 to keep watching
	 * (with it->expected possibly updated), 0 to go idle until the next
	 * evq__watch_arm().  woken == EVQ_WATCH_FAULT: the kernel cannot read
	 * the word (see below); check() must not touch the memory, reports
	 * the registration and returns 0. */
	int (*check)(struct evq__watch_item *it, int woken);
	uint32_t expected;  /* (mu) sleep while *addr == expected */
	int oneshot;        /* (mu) for check(): stop after one event */
	int active;         /* (mu) in the watcher's wait set */
	struct evq__watch_thread *thr; /* attached thread, NULL if none */
	int slot;           /* (mu) index in thr's item table */
	int mapped;         /* (mu) the kernel read the word since the arm */
	uint32_t arm_ctl;   /* (mu) thr's ctl value of the last arm */
};

/* The owner's part of an item, before its first arm. */
static inline void evq__watch_init(struct evq__watch_item *it, uint32_t *addr,
				   int shared,
				   int (*check)(struct evq__watch_item *, int))
{
	it->addr = addr;
	it->shared = shared;
	it->check = check;
	it->slot = -1;
}

/* check()'s woken argument when a futex call on the word failed with
 * -EFAULT (its page is unmapped, or a shared file was truncated under it):
 * the registration is broken, not the queue. */
#define EVQ_WATCH_FAULT (-1)

/* How a semaphore or latch registration found its memory (sem.c,
 * latch.c): it stays idle after a fault until evq_mod() enables it again,
 * and after EVQ_FAULT_UNREADABLE it touches the memory again only once
 * evq__word_probe() says the kernel can read it. */
enum evq__fault {
	EVQ_FAULT_NONE,       /* as far as we know, valid */
	EVQ_FAULT_GARBAGE,    /* readable, but bad magic, flags or count */
	EVQ_FAULT_UNREADABLE, /* futex -EFAULT: do not load or store */
};

/* Reports registration r (whose ctl tag is tag) as broken: ORs EVQ_ERR into
 * r->val and posts a count of 0, so the kind's posted hook sees bits ==
 * EVQ_ERR and sets EVQ_ERR in r->pend_events: one EVQ_ERR event, merged
 * with anything else pending.  Lock-free; -ENOENT if r was deleted. */
int evq__watch_report(struct evq *q, struct evq__reg *r, uint32_t tag);

/* Asks the kernel whether it can read the word at addr (FUTEX_WAIT with a
 * deadline in the past): 0 if it can, -EFAULT if not.  Never loads the word
 * from user space.  likely: the value the word probably holds; the wait
 * expects its complement, so it does not even queue unless the word holds
 * that (and only then could it take a wake meant for another waiter, as
 * any waiter may). */
int evq__word_probe(const uint32_t *addr, uint32_t likely, int shared);

/* A native backend (backend->word_arm != NULL) gets the registration: its
 * r->ext starts with a struct evq__watch_item.  It waits while *addr ==
 * expected and, on completion, calls check(it, woken) (check() takes no
 * lock: q->lock may be held), and waits again if check() returned 1 and
 * the item is still active.  word_arm is called (q->lock held) after
 * expected, oneshot and active were set; word_disarm when the item goes
 * idle while active, and always before the item is freed (delete, queue
 * freed): after it, the backend must not touch the item.  The
 * evq__word_*() calls below pick the backend or the watcher; word.c, sem.c
 * and latch.c use only those. */
int evq__word_arm(struct evq *q, struct evq__reg *r, struct evq__watch_item *it,
		  uint32_t expected, int oneshot);
int evq__word_idle(struct evq *q, struct evq__reg *r,
		   struct evq__watch_item *it);
int evq__word_detach(struct evq *q, struct evq__reg *r,
		     struct evq__watch_item *it);

/* All of these are called with q->lock held. */

/* Starts (or restarts) watching it with `expected`; attaches it to one of
 * the queue's watcher threads first, starting a thread if needed.
 * Errors: -ENOMEM, -EAGAIN (no thread could be started), -ENOSYS (kernel
 * without futex_waitv). */
int evq__watch_arm(struct evq *q, struct evq__watch_item *it,
		   uint32_t expected, int oneshot);

/* Stops watching it for now; check() is not called again until the next
 * arm.  Returns 1 if it was active. */
int evq__watch_idle(struct evq *q, struct evq__watch_item *it);

/* Detaches it for good.  When this returns, the watcher neither calls
 * check() nor sleeps on the word: both it and the word may be freed.  The
 * last detach of a queue stops its watcher threads.  Returns 1 if it was
 * active. */
int evq__watch_detach(struct evq *q, struct evq__watch_item *it);

#endif /* EVQ_WATCH_H */
