/* SPDX-License-Identifier: MIT */
/*
 * queue.c - a queue's life and its registrations: evq_new/evq_free, the
 * slots that hold registrations and the ids that name them, q->lock, and
 * the kind-independent halves of evq_mod/evq_del.  Posting and the pending
 * list are in post.c, evq_wait in wait.c, evq_requeue in requeue.c; each
 * event kind has its own file in src/kinds/.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"

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
	q->free_head[0] = q->free_tail[0] = -1;
	q->free_head[1] = q->free_tail[1] = -1;
	q->files_free = -1;
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
	/* The fd map goes first: fds need no EVQ_FD_DEL each (kinds/fd.c),
	 * their kernel registrations go with the backend. */
	free(q->fdmap);
	q->fdmap = NULL;
	q->fdmap_len = 0;
	uint32_t n = atomic_load(&q->nslots);
	for (uint32_t i = 0; i < n; i++) {
		struct evq__reg *r = evq__slot(q, i);
		const struct evq__kind *k = evq__kind_of(r);
		if (k->del) {
			if (!(k->caps & EVQ__KIND_SMALL))
				evq__take_post(q, r, 0); /* as evq_del: del sees
							    every occurrence */
			k->del(q, r);
		}
	}
	evq__timer_fini(q);
	free(q->files);
	if (!child)
		unlock(q);
	be->fini(q);
	for (uint32_t i = 0; i < n; i += EVQ_CHUNK_SLOTS)
		free(evq__slot(q, i));  /* a chunk's first slot */
	for (uint32_t p = 0; p < EVQ_DIR_PAGES; p++)
		free((void *)atomic_load(&q->dir[p]));  /* NULL beyond the last */
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

int evq__map_grow(int32_t **map, uint32_t *len, uint32_t idx, uint32_t first)
{
	if (idx < *len)
		return 0;
	uint32_t n = *len ? *len : first;
	while (n <= idx)
		n *= 2;
	int32_t *m = realloc(*map, n * sizeof *m);
	if (!m)
		return -ENOMEM;
	for (uint32_t i = *len; i < n; i++)
		m[i] = -1;
	*map = m;
	*len = n;
	return 0;
}

/* id = generation << 32 | slot (internal.h): the state word's generation
 * half with the kind replaced by the index. */
int64_t evq__reg_id(struct evq *q, struct evq__reg *r)
{
	(void)q;
	uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
	return (int64_t)((st & ~(uint64_t)UINT32_MAX) | ((st >> 8) & EVQ_IDX_MASK));
}

/* Onto the free list of its size (small: 1).  Full slots go to the back
 * (FIFO): a slot's ctl tag holds only 24 bits of its generation, so reuse
 * is spread over every free slot before a stale post's tag could match
 * again.  Small slots have no tag and go to the front (LIFO): the next add
 * reuses the slot still in the cache, and no other slot is touched. */
static void free_push(struct evq *q, struct evq__reg *r, int small)
{
	int32_t idx = (int32_t)evq__idx(r);
	if (small) {
		r->next = q->free_head[1];
		q->free_head[1] = idx;
		return;
	}
	r->next = -1;
	if (q->free_tail[small] >= 0)
		evq__slot(q, (uint32_t)q->free_tail[small])->next = idx;
	else
		q->free_head[small] = idx;
	q->free_tail[small] = idx;
}

/* A slot whose registration is gone (and off the post stack) goes back on
 * the free list - unless its generation is spent (EVQ_GEN_RETIRED): then no
 * registration may ever use it again, or a new id could equal an old one.
 * A retired full slot keeps its ctl "queued" bit, so that not even a stale
 * post's tag that matched could put it on a post stack (nothing posts to
 * small ones).  Locked. */
void evq__slot_recycle(struct evq *q, struct evq__reg *r, int small)
{
	if (evq__reg_gen(atomic_load_explicit(&r->state, memory_order_relaxed)) <= EVQ_GEN_MAX) {
		free_push(q, r, small);
		return;
	}
	if (!small)
		atomic_fetch_or(&r->ctl, EVQ_CTL_QUEUED);
	r->flags = 0;
	r->next = -1;
}

/* Adds a chunk of slots of one size (small: 1), handed out in order after
 * the free list (q->fresh).  The chunk's address and its slots are
 * published before nslots
 * grows, so lock-free readers that saw idx < nslots find an initialised
 * slot. */
static int grow_slots(struct evq *q, int small)
{
	uint32_t n = atomic_load_explicit(&q->nslots, memory_order_relaxed);
	if (n >= EVQ_MAX_REGS)
		return -ENOSPC;
	uint32_t pg = n >> (EVQ_PAGE_SHIFT + EVQ_CHUNK_SHIFT);
	_Atomic uintptr_t *page = atomic_load_explicit(&q->dir[pg], memory_order_relaxed);
	if (!page) {
		page = calloc((size_t)1 << EVQ_PAGE_SHIFT, sizeof *page);
		if (!page)
			return -ENOMEM;
		atomic_store_explicit(&q->dir[pg], page, memory_order_release);
	}
	/* All zero is a valid never-used slot: state 0 is generation 0
	 * (no id has it) and kind 0 (free), ctl and val 0; post_next is read
	 * only while "queued" is set.  evq__reg_new fills in the rest when
	 * it hands the slot out; calloc clears fresh memory for free. */
	size_t size = small ? EVQ__SMALL_SLOT : sizeof(struct evq__reg);
	char *p = calloc(EVQ_CHUNK_SLOTS, size);
	if (!p)
		return -ENOMEM;
	q->fresh[small] = n;
	atomic_store_explicit(&page[(n >> EVQ_CHUNK_SHIFT) & ((1u << EVQ_PAGE_SHIFT) - 1)],
			      (uintptr_t)p | (uintptr_t)small, memory_order_release);
	atomic_store_explicit(&q->nslots, n + EVQ_CHUNK_SLOTS, memory_order_release);
	return 0;
}

int64_t evq__reg_new(struct evq *q, int kind, uint32_t flags, uint64_t cookie,
		     struct evq__reg **out)
{
	int small = !!(evq__kinds[kind]->caps & EVQ__KIND_SMALL);
	uint32_t idx;
	struct evq__reg *r;
	if (q->free_head[small] >= 0) {
		idx = (uint32_t)q->free_head[small];
		r = evq__slot(q, idx);
		q->free_head[small] = (int32_t)r->next;
		if (q->free_head[small] < 0)
			q->free_tail[small] = -1; /* (unused for small) */
	} else {
		if (!(q->fresh[small] & (EVQ_CHUNK_SLOTS - 1))) {
			/* none fresh left (or none yet: 0) */
			int rc = grow_slots(q, small);
			if (rc < 0)
				return rc;
		}
		idx = q->fresh[small]++;
		r = evq__slot(q, idx);
	}

	uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
	uint32_t gen = evq__reg_gen(st);
	if (gen == 0)
		gen = EVQ_GEN_FIRST; /* never used */
	r->flags = flags & EVQ_R_ALL;
	r->cookie = cookie;
	r->next = r->prev = -1;
	r->list = EVQ_LIST_NONE;
	r->pend_events = 0;
	r->pend_data = 0;
	r->ext = NULL; /* the whole union: ext, interval, fd */
	if (small) {
		r->events = 0; /* the whole union: events, tm */
	} else {
		/* Relaxed: nobody may post with the new tag before learning
		 * the id, which the release store of state below (paired
		 * with the acquire in evq__reg_lookup, or the adder's own
		 * hand-off of the id) orders after these stores; a stale post
		 * whose tag matched (2^24 generations old) races with them as
		 * it did with seq_cst ones.  post_next is -1 or stale: only
		 * read while "queued" is set. */
		atomic_store_explicit(&r->val, 0, memory_order_relaxed);
		atomic_store_explicit(&r->ctl,
				      (uint64_t)evq__ctl_tag(gen) << EVQ_CTL_TAG_SHIFT,
				      memory_order_relaxed);
	}
	atomic_store_explicit(&r->state, evq__state(gen, idx, (uint32_t)kind),
			      memory_order_release);
	q->nlive++;
	*out = r;
	return evq__reg_id(q, r);
}

/* The one way every kind adds a registration.  Failure after make leaves
 * nothing behind: start undid its own work, the slot is freed (its del
 * hook sees r->ext == NULL) and drop frees a->ext. */
int64_t evq__reg_add_locked(struct evq *q, struct evq__add *a)
{
	const struct evq__kind *k = evq__kinds[a->kind];
	struct evq__reg *r = NULL;
	int64_t id = k->prepare ? k->prepare(q, a) : 0;
	if (id >= 0)
		id = evq__reg_new(q, a->kind, a->flags, a->cookie, &r);
	if (id >= 0) {
		if (!(k->caps & EVQ__KIND_SMALL))
			r->ext = a->ext;
		int rc = k->start ? k->start(q, r, a) : 0;
		if (rc < 0) {
			if (!(k->caps & EVQ__KIND_SMALL))
				r->ext = NULL;
			evq__reg_free(q, r);
			id = rc;
		}
	}
	if (id < 0 && a->ext) {
		if (k->drop)
			k->drop(q, a);
		else
			free(a->ext);
	}
	return id;
}

int64_t evq__reg_add(struct evq *q, int kind, uint32_t flags, uint64_t cookie,
		     int32_t ident, void *arg)
{
	const struct evq__kind *k = evq__kinds[kind];
	struct evq__add a = { .kind = kind, .flags = flags, .cookie = cookie,
			      .ident = ident, .arg = arg };
	int rc = evq__check(q);
	if (rc == 0 && k->make)
		rc = k->make(q, &a);
	if (rc < 0)
		return rc;
	if (k->caps & EVQ__KIND_NO_CANCEL_POINTS) {
		/* no lock hook either: such a kind's locked part is short */
		evq__lock_light(q);
		int64_t id = evq__reg_add_locked(q, &a);
		evq__unlock_light(q);
		return id;
	}
	lock(q);
	if (k->lock)
		k->lock();
	int64_t id = evq__reg_add_locked(q, &a);
	if (k->unlock)
		k->unlock();
	unlock(q);
	return id;
}

struct evq__reg *evq__reg_get(struct evq *q, int64_t id)
{
	uint64_t st;
	return evq__reg_lookup(q, id, &st);
}

int evq__reg_get_kind(struct evq *q, int64_t id, int kind, struct evq__reg **out)
{
	uint64_t st;
	struct evq__reg *r = evq__reg_lookup(q, id, &st);
	if (!r)
		return -ENOENT;
	if (evq__reg_kind(st) != (uint32_t)kind)
		return -EINVAL;
	*out = r;
	return 0;
}

/* ------------------------------------------------------------------ */
/* ------------------------------------------------------------------ */
/* Removing registrations                                               */
/* ------------------------------------------------------------------ */

/* A small slot (fd, timer): nothing posted to it, so no post to fold or
 * tag to change; the state word alone makes the old id stale. */
static void free_small(struct evq *q, struct evq__reg *r, const struct evq__kind *k)
{
	if (k->del)
		k->del(q, r);
	evq__unlink(q, r);
	uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
	if (evq__reg_kind(st) == EVQ_KIND_TIMER)
		evq__timer_disarm(q, r);
	atomic_store_explicit(&r->state, evq__state(evq__reg_gen(st) + 1, evq__idx(r), 0),
			      memory_order_release);
	r->pend_data = 0;
	r->pend_events = 0;
	q->nlive--;
	evq__slot_recycle(q, r, 1);
}

void evq__reg_free(struct evq *q, struct evq__reg *r)
{
	const struct evq__kind *k = evq__kind_of(r);
	if (k->caps & EVQ__KIND_SMALL) {
		free_small(q, r, k);
		return;
	}
	/* fold undelivered posts so the kind's del hook sees them all */
	evq__take_post(q, r, 0);
	if (k->del)
		k->del(q, r);
	evq__unlink(q, r);
	/* EVQ_GEN_MAX + 1 = EVQ_GEN_RETIRED: evq__slot_recycle() retires the slot */
	uint64_t st = atomic_load(&r->state);
	uint32_t gen = evq__reg_gen(st) + 1;
	atomic_store_explicit(&r->state, evq__state(gen, evq__idx(r), 0),
			      memory_order_release);
	/* Retag: posts through the old id fail from now on. */
	uint64_t c = atomic_load(&r->ctl), n;
	do
		n = (uint64_t)evq__ctl_tag(gen) << EVQ_CTL_TAG_SHIFT | (c & EVQ_CTL_QUEUED);
	while (!atomic_compare_exchange_weak(&r->ctl, &c, n));
	/* Relaxed: it cannot move above the CAS (acquire), and only stale
	 * producers, whose bits are junk, touch val now; evq__reg_new clears
	 * it again for the next tenant. */
	atomic_store_explicit(&r->val, 0, memory_order_relaxed);
	r->pend_data = 0;
	r->pend_events = 0;
	r->ext = NULL;
	q->nlive--;
	if (n & EVQ_CTL_QUEUED)
		r->flags = EVQ_R_ZOMBIE; /* still on the post stack */
	else
		evq__slot_recycle(q, r, 0);
}

/* ------------------------------------------------------------------ */
/* Changing and removing                                                */
/* ------------------------------------------------------------------ */

/* evq_mod and evq_del take q->lock light (internal.h) to find r, then
 * disable cancellation, still before anything that could reach a
 * cancellation point, unless r's kind needs no such care.  1 if it did:
 * the caller leaves after unlocking, as evq__unlock does. */
static int lock_guard(const struct evq__reg *r)
{
	if (!r || (evq__kind_of(r)->caps & EVQ__KIND_NO_CANCEL_POINTS))
		return 0;
	evq__nocancel_enter();
	return 1;
}

/* evq_mod and evq_del: q->lock, the registration id names (or NULL), and
 * the guard lock_guard() took; leave() undoes both. */
static struct evq__reg *enter(struct evq *q, int64_t id, int *guard)
{
	evq__lock_light(q);
	struct evq__reg *r = evq__reg_get(q, id);
	*guard = lock_guard(r);
	return r;
}

static void leave(struct evq *q, int guard)
{
	evq__unlock_light(q);
	if (guard)
		evq__nocancel_leave();
}

/* The kind checks events (EVQ__KIND_EVENTS: fds) in its mod hook; every
 * other kind takes none. */
static int mod(struct evq *q, struct evq__reg *r, uint32_t events, uint32_t flags)
{
	const struct evq__kind *k = evq__kind_of(r);
	if ((events != 0 && !(k->caps & EVQ__KIND_EVENTS)) || (flags & ~k->mod_flags))
		return -EINVAL;
	uint32_t old = r->flags, mine = k->mod_flags | EVQ_R_SPENT;
	r->flags = (r->flags & ~mine) | flags;
	int rc = k->mod ? k->mod(q, r, events, old) : 0;
	if (rc < 0) {
		/* the hook may have set flags of its own (EVQ_R_DEFUNCT) */
		r->flags = (r->flags & ~mine) | (old & mine);
		return rc;
	}
	if (r->flags & EVQ_DISABLED)
		evq__unlink(q, r); /* occurrences stay parked in pend_data */
	else
		evq__make_pending_kick(q, r);
	return 0;
}

int evq_mod(struct evq *q, int64_t id, uint32_t events, uint32_t flags)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	int guard;
	struct evq__reg *r = enter(q, id, &guard);
	int rc = r ? mod(q, r, events, flags) : -ENOENT;
	leave(q, guard);
	return rc;
}

int evq_del(struct evq *q, int64_t id)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	int guard;
	struct evq__reg *r = enter(q, id, &guard);
	if (r)
		evq__reg_free(q, r);
	leave(q, guard);
	return r ? 0 : -ENOENT;
}

