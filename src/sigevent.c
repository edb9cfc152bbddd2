/*
 * sigevent.c - evq_sigevent: a struct sigevent that makes timer_create(),
 * POSIX AIO and mq_notify() deliver into a queue (seed 002's SIGEV_KEVENT,
 * in user space).
 *
 * The sigevent is SIGEV_SIGNAL with one real-time signal the library keeps
 * for itself (SIGRTMAX) and si_value = a token naming the registration.
 * SIGEV_THREAD was the other choice; it costs a thread creation per
 * notification in glibc, and a timer's overruns never reach the function.
 *
 * One signal serves every queue of the process, so tokens are global: a
 * table entry per registration holds (queue, slot, ctl tag), published with
 * release order after its fields; a token is the entry index plus the
 * entry's generation (never 0), so a token that outlived its registration
 * (a timer nobody deleted) finds a newer generation and is dropped, and so
 * does a kill() of the signal (no token, and not a notification's si_code).
 *
 * Each queue with sigevent registrations holds one hidden "carrier"
 * registration that watches a signalfd for the signal.  Its ready hook reads
 * every pending instance and posts each to the entry its token names
 * (evq__post: lock-free), into this queue or another one.  evq's handler for
 * the signal (signal.c) does the same for an instance a thread that had not
 * blocked it received.  Readers bracket their use of an entry with
 * evq__sig_enter/leave; evq_del unpublishes the entry and quiesces before
 * the slot may go (the protocol of signal.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sigsrc.h"

#define ENTRY_BITS 20                      /* entry index in a token */
#define ENTRY_MAX (1u << ENTRY_BITS)       /* 1,048,576 registrations */
#define CHUNK_SHIFT 10
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define NCHUNKS (ENTRY_MAX / CHUNK_SIZE)
#define GEN_MASK (UINTPTR_MAX >> ENTRY_BITS)

struct entry {
	_Atomic(struct evq *) q;       /* NULL: free or being freed */
	_Atomic uint64_t target;       /* slot idx | ctl tag << 32 */
	_Atomic uintptr_t gen;         /* bumped when the entry is freed */
	uint32_t self;                 /* this entry's index, fixed */
	int32_t next_free;             /* (sig lock) */
};

/* All (sig lock) except where marked atomic. */
static _Atomic(struct entry *) chunks[NCHUNKS];
static _Atomic uint32_t nentries;      /* atomic: readers bound-check */
static int32_t free_head = -1;

struct carrier {
	struct evq *q;
	int fd;                        /* signalfd for SIGRTMAX */
	struct carrier *next;
};
static struct carrier *carriers;

static struct entry *entry_at(uint32_t i)
{
	struct entry *c = atomic_load_explicit(&chunks[i >> CHUNK_SHIFT],
					       memory_order_acquire);
	return &c[i & (CHUNK_SIZE - 1)];
}

/* Only notifications carry a token: a plain kill() of the signal (value
 * 0) must not fire anything, so generations start at 1 and skip 0. */
static int is_notification(int code)
{
	return code == SI_TIMER || code == SI_MESGQ || code == SI_ASYNCIO ||
	       code == SI_QUEUE;
}

static uintptr_t next_gen(uintptr_t gen)
{
	gen = (gen + 1) & GEN_MASK;
	return gen ? gen : 1;
}

void evq__sigevent_forward(int code, void *token, uint64_t count)
{
	uintptr_t t = (uintptr_t)token;
	if (!is_notification(code))
		return;
	uint32_t i = (uint32_t)(t & (ENTRY_MAX - 1));
	if (i >= atomic_load_explicit(&nentries, memory_order_acquire))
		return;
	struct entry *e = entry_at(i);
	struct evq *q = atomic_load_explicit(&e->q, memory_order_acquire);
	if (!q || atomic_load(&e->gen) != t >> ENTRY_BITS || evq__forked(q))
		return; /* stale token, or an inherited queue in a child */
	uint64_t tg = atomic_load(&e->target);
	evq__post(q, evq_slot(q, (uint32_t)tg), (uint32_t)(tg >> 32), count);
}

/* (sig lock) A free entry's index, or -ENOMEM/-ENOSPC. */
static int entry_alloc(void)
{
	if (free_head < 0) {
		uint32_t n = atomic_load(&nentries);
		if (n >= ENTRY_MAX)
			return -ENOSPC;
		struct entry *c = calloc(CHUNK_SIZE, sizeof *c);
		if (!c)
			return -ENOMEM;
		for (uint32_t k = CHUNK_SIZE; k-- > 0;) {
			c[k].self = n + k;
			atomic_init(&c[k].gen, 1);
			c[k].next_free = free_head;
			free_head = (int32_t)(n + k);
		}
		atomic_store_explicit(&chunks[n >> CHUNK_SHIFT], c, memory_order_release);
		atomic_store_explicit(&nentries, n + CHUNK_SIZE, memory_order_release);
	}
	int i = free_head;
	free_head = entry_at((uint32_t)i)->next_free;
	return i;
}

/* ------------------------------------------------------------------ */
/* The carrier: one hidden registration per queue                       */
/* ------------------------------------------------------------------ */

static int carrier_ready(struct evq *q, struct evq_reg *r, uint32_t events,
			 struct evq_event *ev)
{
	struct carrier *c = r->ext;
	struct signalfd_siginfo si[16];
	(void)q, (void)events, (void)ev;
	for (int round = 0; round < 16; round++) {
		ssize_t n = read(c->fd, si, sizeof si);
		if (n < (ssize_t)sizeof si[0])
			break;
		size_t k = (size_t)n / sizeof si[0];
		evq__sig_enter();
		for (size_t j = 0; j < k; j++) {
			uint64_t count = 1;
			if (si[j].ssi_code == SI_TIMER)
				count += si[j].ssi_overrun;
			evq__sigevent_forward(si[j].ssi_code,
					      (void *)(uintptr_t)si[j].ssi_ptr, count);
		}
		evq__sig_leave();
		if (k < sizeof si / sizeof si[0])
			break;
	}
	return 0; /* the posts are delivered, not the carrier */
}

static void carrier_del(struct evq *q, struct evq_reg *r)
{
	struct carrier *c = r->ext;
	if (!c)
		return;
	(void)q->backend->fd_ctl(q, EVQ_FD_DEL, c->fd, 0, 0, 0);
	evq__sig_lock();
	for (struct carrier **pp = &carriers; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	evq__sig_unlock();
	close(c->fd);
	free(c);
	r->ext = NULL;
}

static const struct evq_kind_ops carrier_ops = {
	.del = carrier_del,
	.ready = carrier_ready,
};

/* (q->lock, sig lock) Makes sure q watches the sigevent signal. */
static int carrier_get(struct evq *q)
{
	for (struct carrier *c = carriers; c; c = c->next)
		if (c->q == q)
			return 0;
	struct carrier *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMAX);
	c->q = q;
	c->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (c->fd < 0) {
		int e = errno;
		free(c);
		return -e;
	}
	struct evq_reg *r;
	int rc = evq__reg_new(q, EVQ_KIND_SIGEVENT, &carrier_ops, 0, 0, SIGRTMAX, &r);
	if (rc >= 0) {
		r->events = EVQ_READ;
		r->ext = c;
		rc = q->backend->fd_ctl(q, EVQ_FD_ADD, c->fd, EVQ_READ, 0,
					evq_token(atomic_load(&r->state), r->idx));
		if (rc < 0) {
			r->ext = NULL;
			r->ops = NULL;
			evq__reg_free(q, r);
		}
	}
	if (rc < 0) {
		close(c->fd);
		free(c);
		return rc;
	}
	c->next = carriers;
	carriers = c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* evq_sigevent                                                         */
/* ------------------------------------------------------------------ */

static void sev_del(struct evq *q, struct evq_reg *r)
{
	struct entry *e = r->ext;
	(void)q;
	if (!e)
		return;
	evq__sig_lock();
	atomic_store(&e->q, NULL);
	evq__sig_quiesce();
	atomic_store(&e->gen, next_gen(atomic_load(&e->gen)));
	e->next_free = free_head;
	free_head = (int32_t)e->self;
	evq__sig_unlock();
	r->ext = NULL;
}

static const struct evq_kind_ops sev_ops = {
	.del = sev_del,
};

int evq_sigevent(struct evq *q, uint64_t cookie, struct sigevent *sev)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	if (!sev)
		return -EINVAL;
	int signo = SIGRTMAX;
	struct evq_reg *r;
	evq__lock(q);
	evq__sig_lock();
	int rc = 0;
	int owner = evq__sig_owner(signo);
	if (owner == EVQ_SIG_SIGNAL) {
		rc = -EBUSY; /* evq_add_signal(SIGRTMAX) holds it */
	} else if (owner == EVQ_SIG_FREE) {
		/* Never take a signal the program handles itself. */
		struct sigaction cur;
		if (sigaction(signo, NULL, &cur) < 0)
			rc = -errno;
		else if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
			rc = -EBUSY;
		else
			rc = evq__sig_claim(signo, EVQ_SIG_SIGEVENT);
	}
	if (rc == 0)
		rc = carrier_get(q);
	int i = rc < 0 ? rc : entry_alloc();
	if (i < 0) {
		rc = i;
		goto out;
	}
	rc = evq__reg_new(q, EVQ_KIND_SIGEVENT, &sev_ops, 0, cookie, -1, &r);
	if (rc < 0) {
		struct entry *e = entry_at((uint32_t)i);
		e->next_free = free_head;
		free_head = i;
		goto out;
	}
	struct entry *e = entry_at((uint32_t)i);
	r->ext = e;
	atomic_store(&e->target,
		     (uint64_t)evq_ctl_tag(evq_reg_gen(atomic_load(&r->state))) << 32 | r->idx);
	atomic_store_explicit(&e->q, q, memory_order_release);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	memset(sev, 0, sizeof *sev);
	sev->sigev_notify = SIGEV_SIGNAL;
	sev->sigev_signo = signo;
	sev->sigev_value.sival_ptr =
		(void *)((atomic_load(&e->gen) << ENTRY_BITS) | (uintptr_t)i);
out:
	evq__sig_unlock();
	evq__unlock(q);
	return rc;
}
