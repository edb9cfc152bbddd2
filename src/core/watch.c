/* SPDX-License-Identifier: MIT */
/*
 * watch.c - the futex watcher: word waits for backends that cannot wait on
 * memory (epoll has no futex file descriptor).
 *
 * A queue that watches words owns one or more helper threads, each
 * sleeping in futex_waitv() over up to 127 words plus its own control word
 * (ctl).  When a wait returns, the thread calls each active item's check()
 * under its mutex (mu); check() reads the word and posts into the queue
 * with evq__post(), which is lock-free.  The thread never takes q->lock, so
 * a caller holding q->lock may wait for it.
 *
 * Protocol (model/word.pml, steps named there):
 *   owner (q->lock held)                 watcher thread
 *   O1 lock mu; change the item table;    X1 lock mu after futex_waitv()
 *      ctl++ ; unlock mu                  X2 after a wake, one wake is passed
 *   O2 futex_wake(ctl)                       on for each word no item wants
 *   O3 (detach only) wait under mu until  X3 check() the items, when a
 *      acked >= the ctl value of O1          word may have changed (below)
 *                                         X4 c = ctl; build the vector from
 *                                            the table: the words, then ctl
 *                                            expected == c; acked = c;
 *                                            unlock mu
 *                                         X5 if a word the kernel has read
 *                                            since its arm no longer holds
 *                                            its value, back to X1 (what
 *                                            futex_waitv would answer at
 *                                            once); else futex_waitv(vector)
 * No change is missed: a change made after X4 read ctl makes ctl != c, so
 * X5 returns at once (-EAGAIN) and the thread rebuilds.  No word change is
 * missed: X5 sleeps only while every word holds its expected value (the
 * kernel checks atomically with queueing), and whenever one does not, X5
 * returns -EAGAIN and X3 checks it.
 * After O3 the thread has rebuilt without the item, so neither the item nor
 * the word's memory is touched again (X5's own load of a word, like the
 * kernel's comparison, comes before the next X4, which O3 waits for); a
 * wake that X5 took for a detached or idle word is handed on to another
 * waiter of that word (X2), so no waiter loses a wake-up to a watcher that
 * no longer wanted it.
 * model/word.pml checks X2, WD1 and O3 (once detach returned the watcher
 * neither reads the item or the word nor stays queued on it) with a word
 * that changes twice and is re-armed; model/sem.pml the same thread for a
 * semaphore (X2 matters there with one token).
 *
 * X3 in detail.  Memory that is not there - a word unmapped while
 * registered, which breaks the contract, or a shared file truncated by
 * another process - must neither make the thread spin nor go unreported,
 * and should not crash it.  The kernel tells: futex_waitv fails with
 * -EFAULT when it cannot read a word, and evq__word_probe (a FUTEX_WAIT
 * that cannot sleep) asks about one word.  An item is "mapped" once the
 * kernel has read its word since it was last armed (arm clears it); X3
 * loads only such words, and depends on how X5 ended:
 *   - woken through a word's entry: probe that word (it may have been
 *     unmapped while the thread slept: "unmap, then wake it"); if it
 *     faults, report it and load nothing more, else check() every item,
 *     probing those not mapped yet;
 *   - woken through ctl (the table changed): nothing; X5 compares every
 *     word again and ends at once if one differs or faults;
 *   - -EAGAIN: the kernel read the words in order up to the first that
 *     differs; those are mapped; check() every mapped item and leave the
 *     others to X5;
 *   - skipped (a mapped word already differed before the call; typically
 *     a latch whose owner reset it right after the event was posted, 70%
 *     of the wakes in bench/latch): as -EAGAIN, but nothing more is
 *     known to be mapped;
 *   - -EFAULT: probe each word alone, report those that fault.
 * A faulting word is reported through check(EVQ_WATCH_FAULT), which posts
 * EVQ_ERR without touching the memory, and goes idle; so does a check()
 * that finds garbage (a semaphore or latch with a bad magic, flags or
 * count).  Nothing reported is waited on again until evq_mod() re-arms it:
 * no spin.  ctl is the vector's last entry, so that a table change alone
 * has every word compared.  What is not covered: a mapped word unmapped
 * while the thread sleeps is loaded when another word wakes the thread,
 * and a word unmapped between the kernel's read and ours, or between X3
 * and X5's own look at it, is loaded too: that crashes, as the contract
 * says it may.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "futex.h"
#include "core/watch.h"

#define WATCH_WORDS (FUTEX_WAITV_MAX - 1) /* one slot is the ctl word */
#define WATCH_STACK (64 * 1024)  /* a watcher thread's stack: it only waits */
#define THREADS_FIRST_CAP 4      /* a queue's first table of watcher threads */
/* a watcher that saw a fault it cannot find again pauses this long (ns),
 * so a word that keeps flickering costs at most one round a millisecond */
#define FAULT_PAUSE_NS 1000000

struct evq__watch_thread {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t ctl;    /* futex word, bumped by every table change (atomic) */
	uint32_t acked;  /* (mu) ctl value the current vector was built for */
	int stop;        /* (mu) */
	int nitems;      /* (mu) */
	struct evq__watch_item *items[WATCH_WORDS]; /* (mu) */
	/* the thread's own, outside mu: the vector it sleeps on, and which
	 * of its words the kernel has read since their arm (X5 may load
	 * those itself) */
	struct futex_waitv vec[FUTEX_WAITV_MAX];
	struct evq__watch_item *vitem[FUTEX_WAITV_MAX];
	unsigned char vmapped[FUTEX_WAITV_MAX];
};

/* X5's answer when it did not call futex_waitv (no errno is this low). */
#define X5_MOVED (-4096)

/* The watchers of one queue (q->watch), guarded by q->lock (every caller
 * holds it).  A forked child never reaches them: an inherited queue may
 * only be freed, and its kinds' del hooks skip the watcher there (its
 * threads are the parent's), so the child's copy is left as it is. */
struct evq__watch {
	struct evq__watch_thread **thr;
	int nthr, cap;
	int nitems;
};

static struct evq__watch *watch_find(struct evq *q, int create)
{
	if (!q->watch && create)
		q->watch = calloc(1, sizeof *q->watch);
	return q->watch;
}

static void watch_forget(struct evq *q)
{
	free(q->watch->thr);
	free(q->watch);
	q->watch = NULL;
}

/* Is it still in t's table and active?  (mu held) */
static int wanted(struct evq__watch_thread *t, struct evq__watch_item *it)
{
	return it->thr == t && it->slot >= 0 && it->slot < t->nitems &&
	       t->items[it->slot] == it && it->active;
}

/* Reports it (the kernel cannot read its word) and idles it.  (mu) */
static void fault(struct evq__watch_item *it)
{
	it->check(it, EVQ_WATCH_FAULT);
	it->active = 0;
}

/* X3 after X5 returned -EAGAIN: the kernel read the vector's words in
 * order, up to the first one that differs.  Those it read for their
 * current arm (armed before X4 read ctl, the last entry) are mapped.
 * (mu) */
static void mark_read(struct evq__watch_thread *t, uint32_t n)
{
	uint32_t c = (uint32_t)t->vec[n - 1].val;
	for (uint32_t i = 0; i + 1 < n; i++) {
		struct evq__watch_item *it = t->vitem[i];
		if (wanted(t, it) && (int32_t)(it->arm_ctl - c) <= 0)
			it->mapped = 1;
		if (evq__ld((uint32_t *)(uintptr_t)t->vec[i].uaddr) != (uint32_t)t->vec[i].val)
			break; /* the kernel stopped here */
	}
}

/* X3: check() every active item whose word the kernel has read since it was
 * armed; with probe, ask the kernel about the others first, else leave them
 * to X5.  woken: the item X5 named.  (mu) */
static void check_all(struct evq__watch_thread *t, struct evq__watch_item *woken,
		      int probe)
{
	for (int i = 0; i < t->nitems; i++) {
		struct evq__watch_item *it = t->items[i];
		if (!it->active)
			continue;
		if (!it->mapped) {
			if (!probe)
				continue;
			if (evq__word_probe(it->addr, it->expected, it->shared) < 0) {
				fault(it);
				continue;
			}
			it->mapped = 1;
		}
		if (!it->check(it, it == woken))
			it->active = 0;
	}
}

/* X3 after X5 failed with -EFAULT (or -EINVAL): the kernel could not read
 * some word.  Ask about each one alone, load none, and report those that
 * fault: they go idle until re-armed.  (mu) */
static void check_faults(struct evq__watch_thread *t, uint32_t n)
{
	int found = 0;
	for (uint32_t i = 0; i + 1 < n; i++) {
		struct evq__watch_item *it = t->vitem[i];
		if (!wanted(t, it))
			continue; /* leaves the vector at X4 anyway */
		if (evq__word_probe((uint32_t *)(uintptr_t)t->vec[i].uaddr,
				    (uint32_t)t->vec[i].val, it->shared) < 0) {
			found = 1;
			fault(it);
		}
	}
	if (!found) {
		/* mapped again meanwhile, or the bad word left the table:
		 * X5 decides; a word that keeps flickering costs at most one
		 * round a millisecond */
		struct timespec ms = { 0, FAULT_PAUSE_NS };
		nanosleep(&ms, NULL);
	}
}

/* X5, after mu is released: futex_waitv over the vector, unless a mapped
 * word already differs - the kernel would answer -EAGAIN at once, for a
 * system call and a trip through X1-X4 more. */
static int sleep_on(struct evq__watch_thread *t, uint32_t n)
{
	for (uint32_t i = 0; i + 1 < n; i++)
		if (t->vmapped[i] &&
		    evq__ld((uint32_t *)(uintptr_t)t->vec[i].uaddr) != (uint32_t)t->vec[i].val)
			return X5_MOVED;
	return evq__futex_waitv(t->vec, n, NULL);
}

static void *watch_main(void *arg)
{
	struct evq__watch_thread *t = arg;
	int rc = 0; /* as if woken through ctl: nothing to check yet */
	uint32_t n = 0;

	pthread_mutex_lock(&t->mu);               /* X1 */
	while (!t->stop) {
		/* X2: the kernel woke our wait (rc >= 0).  It names only the
		 * last entry woken, and an entry stays queued until we run,
		 * so any entry may have taken a FUTEX_WAKE meant for another
		 * waiter of its word: for each word no item wants now
		 * (detached or idle meanwhile), hand one wake on (at worst a
		 * spurious wakeup; its memory is valid until O3 returns, and
		 * a wake of a word that is gone fails harmlessly). */
		for (uint32_t i = 0; rc >= 0 && i + 1 < n; i++)
			if (!wanted(t, t->vitem[i]))
				evq__futex_wake((uint32_t *)(uintptr_t)t->vec[i].uaddr, 1,
					       !(t->vec[i].flags & FUTEX2_PRIVATE));
		/* X3 (see the top of the file) */
		if (rc >= 0 && (uint32_t)rc + 1 < n) {
			struct evq__watch_item *it = t->vitem[rc];
			if (!wanted(t, it))
				check_all(t, NULL, 1);
			else if (evq__word_probe(it->addr, (uint32_t)t->vec[rc].val,
						 it->shared) < 0)
				fault(it); /* X5 compares the others first */
			else
				check_all(t, it, 1);
		} else if (rc == -EAGAIN || rc == X5_MOVED) {
			if (rc == -EAGAIN)
				mark_read(t, n);
			check_all(t, NULL, 0);
		} else if (rc == -EFAULT || rc == -EINVAL) {
			check_faults(t, n);
		}
		/* X4: the words, then ctl */
		uint32_t c = evq__ld(&t->ctl);
		n = 0;
		for (int i = 0; i < t->nitems; i++) {
			struct evq__watch_item *it = t->items[i];
			if (!it->active)
				continue;
			t->vec[n] = (struct futex_waitv){
				.val = it->expected, .uaddr = (uintptr_t)it->addr,
				.flags = evq__waitv_flags(it->shared) };
			t->vmapped[n] = (unsigned char)it->mapped;
			t->vitem[n++] = it;
		}
		t->vec[n] = (struct futex_waitv){
			.val = c, .uaddr = (uintptr_t)&t->ctl,
			.flags = evq__waitv_flags(0) };
		t->vitem[n++] = NULL;
		t->acked = c;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		rc = sleep_on(t, n);                       /* X5 */
		pthread_mutex_lock(&t->mu);               /* X1 */
	}
	t->acked = evq__ld(&t->ctl);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* O1 done by the caller (mu held): bump ctl and return the new value. */
static uint32_t ctl_bump(struct evq__watch_thread *t)
{
	return evq__add(&t->ctl, 1) + 1;
}

/* O2 (mu may be held: the thread's X1 then just waits for it). */
static void ctl_wake(struct evq__watch_thread *t)
{
	evq__futex_wake(&t->ctl, 1, 0);
}

/* O3: wait until the thread's vector reflects ctl value c.  mu held. */
static void ctl_wait_ack(struct evq__watch_thread *t, uint32_t c)
{
	while ((int32_t)(t->acked - c) < 0)
		pthread_cond_wait(&t->cv, &t->mu);
}

/* 0, -ENOMEM or -EAGAIN (no thread could be started). */
static int thread_start(struct evq__watch_thread **out)
{
	struct evq__watch_thread *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);

	/* The thread never runs signal handlers: signals belong to the
	 * application's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WATCH_STACK > PTHREAD_STACK_MIN
					 ? WATCH_STACK : PTHREAD_STACK_MIN);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t->tid, &attr, watch_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
		free(t);
		return -EAGAIN;
	}
	*out = t;
	return 0;
}

static void thread_stop(struct evq__watch_thread *t)
{
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	ctl_bump(t);
	pthread_mutex_unlock(&t->mu);
	ctl_wake(t);
	pthread_join(t->tid, NULL);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* futex_waitv arrived in Linux 5.16; without it there is no watcher (-1
 * unknown, 0 no, 1 yes). */
static _Atomic int have_waitv = -1;

static int waitv_supported(void)
{
	int h = atomic_load(&have_waitv);
	if (h < 0) {
		/* an empty vector: -EINVAL where the call exists */
		h = evq__futex_waitv(NULL, 0, NULL) != -ENOSYS;
		atomic_store(&have_waitv, h);
	}
	return h;
}

static int attach(struct evq *q, struct evq__watch_item *it)
{
	if (!waitv_supported())
		return -ENOSYS;
	struct evq__watch *w = watch_find(q, 1);
	struct evq__watch_thread *t = NULL;
	int rc;
	if (!w)
		return -ENOMEM;
	for (int i = 0; i < w->nthr && !t; i++)
		if (w->thr[i]->nitems < WATCH_WORDS)
			t = w->thr[i]; /* nitems only changes under q->lock */
	if (!t) {
		if (w->nthr == w->cap) {
			int cap = w->cap ? 2 * w->cap : THREADS_FIRST_CAP;
			void *p = realloc(w->thr, (size_t)cap * sizeof *w->thr);
			if (!p) {
				rc = -ENOMEM;
				goto fail;
			}
			w->thr = p;
			w->cap = cap;
		}
		if ((rc = thread_start(&t)) < 0)
			goto fail;
		w->thr[w->nthr++] = t;
	}
	pthread_mutex_lock(&t->mu);
	it->thr = t;
	it->slot = t->nitems;
	it->active = 0;
	t->items[t->nitems++] = it;
	pthread_mutex_unlock(&t->mu);
	w->nitems++;
	return 0;
fail:
	if (w->nitems == 0 && w->nthr == 0)
		watch_forget(q); /* frees w */
	return rc;
}

int evq__watch_arm(struct evq *q, struct evq__watch_item *it,
		   uint32_t expected, int oneshot)
{
	if (!it->thr) {
		int rc = attach(q, it);
		if (rc < 0)
			return rc;
	}
	struct evq__watch_thread *t = it->thr;
	pthread_mutex_lock(&t->mu);               /* O1 */
	it->expected = expected;
	it->oneshot = oneshot;
	it->active = 1;
	it->mapped = 0; /* it may have been unmapped: X3 asks the kernel */
	it->arm_ctl = ctl_bump(t);
	pthread_mutex_unlock(&t->mu);
	ctl_wake(t);                              /* O2 */
	return 0;
}

/* O1: takes t->mu and makes it inactive; 1 if it was active. */
static int deactivate(struct evq__watch_thread *t, struct evq__watch_item *it)
{
	pthread_mutex_lock(&t->mu);               /* O1 */
	int was = it->active;
	it->active = 0;
	return was;
}

int evq__watch_idle(struct evq *q, struct evq__watch_item *it)
{
	(void)q;
	struct evq__watch_thread *t = it->thr;
	if (!t)
		return 0;
	int was = deactivate(t, it);
	if (was)
		ctl_bump(t);
	pthread_mutex_unlock(&t->mu);
	if (was)
		ctl_wake(t);                      /* O2 */
	return was;
}

int evq__watch_detach(struct evq *q, struct evq__watch_item *it)
{
	struct evq__watch_thread *t = it->thr;
	if (!t)
		return 0;
	int was = deactivate(t, it);
	int last = --t->nitems;
	if (it->slot != last) {
		t->items[it->slot] = t->items[last];
		t->items[it->slot]->slot = it->slot;
	}
	t->items[last] = NULL;
	it->slot = -1;
	uint32_t c = ctl_bump(t);
	ctl_wake(t);                              /* O2 */
	ctl_wait_ack(t, c);                       /* O3 */
	pthread_mutex_unlock(&t->mu);
	it->thr = NULL;

	struct evq__watch *w = watch_find(q, 0);
	if (w && --w->nitems == 0) {
		/* the queue watches nothing more: stop its threads */
		for (int i = 0; i < w->nthr; i++)
			thread_stop(w->thr[i]);
		watch_forget(q);
	}
	return was;
}

int evq__watch_report(struct evq *q, struct evq__reg *r, uint32_t tag)
{
	atomic_fetch_or(&r->val, (uint64_t)EVQ_ERR);
	return evq__post(q, r, tag, 0);
}

int evq__word_probe(const uint32_t *addr, uint32_t likely, int shared)
{
	/* FUTEX_WAIT reads the word in the kernel (-EFAULT if it cannot) and
	 * returns -EAGAIN at once when it differs from the value given: the
	 * complement of the likely one, so that it almost never queues.  If
	 * it does, the absolute CLOCK_MONOTONIC deadline is long gone. */
	struct timespec past = { 0, 1 };
	int rc = evq__futex_wait((uint32_t *)(uintptr_t)addr, ~likely, &past, shared);
	return rc == -EFAULT ? -EFAULT : 0;
}

/* Native backend or watcher: as the kind says (EVQ__KIND_NATIVE_WORDS).
 * Semaphores stay on the watcher even where the backend waits natively: a
 * wake their watch takes while no thread is inside evq_wait() must be
 * passed on at once (sem.c Q4), and a ring request's completion is looked
 * at only inside a wait(). */
static int native(struct evq *q, struct evq__reg *r)
{
	return q->backend->word_arm &&
	       (evq__kind_of(r)->caps & EVQ__KIND_NATIVE_WORDS);
}

/* A native item stops: the backend's record goes if it was active, or
 * always (detach: an idle item may still have a record in the backend
 * that points at it, and it is about to be freed). */
static int native_stop(struct evq *q, struct evq__reg *r, struct evq__watch_item *it,
		       int always)
{
	int was = it->active;
	it->active = 0;
	if ((was || always) && q->backend->word_disarm)
		q->backend->word_disarm(q, r);
	return was;
}

int evq__word_arm(struct evq *q, struct evq__reg *r, struct evq__watch_item *it,
		  uint32_t expected, int oneshot)
{
	if (native(q, r)) {
		it->expected = expected;
		it->oneshot = oneshot;
		it->active = 1;
		return q->backend->word_arm(q, r);
	}
	return evq__watch_arm(q, it, expected, oneshot);
}

int evq__word_idle(struct evq *q, struct evq__reg *r, struct evq__watch_item *it)
{
	if (native(q, r))
		return native_stop(q, r, it, 0);
	return evq__watch_idle(q, it);
}

int evq__word_detach(struct evq *q, struct evq__reg *r,
		     struct evq__watch_item *it)
{
	if (native(q, r))
		return native_stop(q, r, it, 1);
	return evq__watch_detach(q, it);
}
