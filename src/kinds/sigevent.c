/* SPDX-License-Identifier: MIT */
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
 * release order after its fields.  A token is the entry index (low 20 bits)
 * and the entry's key: random bits drawn when the registration is made
 * (44 on 64-bit systems), never 0, never the entry's previous key.  Any
 * process of the same user may sigqueue() the signal to us with any si_code
 * below 0 (except SI_TKILL) and any si_value, si_pid, si_overrun: none of
 * those fields says who sent it, so the key is the one secret: a blind
 * guess names a live registration with odds of 2^-44 per try.  A token
 * that outlived its registration (a timer nobody deleted) meets key 0 (a
 * free entry) or a new key, and is dropped.  Only the codes the
 * notification sources use count: SI_TIMER (timer_create), SI_MESGQ
 * (mq_notify), SI_ASYNCIO (glibc's and musl's AIO).  SI_QUEUE is what
 * sigqueue() sends; no notification source evq documents produces it, so
 * it is refused like kill()'s SI_USER.
 *
 * A timer's overruns: si_overrun is as forgeable as the rest.  After the
 * kernel dequeues a timer's signal, timer_getoverrun() of its timer id
 * returns the overrun count of that very signal until the next one of the
 * timer is dequeued, so a notification counts 1 + min(si_overrun, that),
 * and 1 where the timer id names no timer.  A forger holding a valid token
 * adds 1 plus at most the kernel's count per signal.  To keep the genuine
 * count exact, nothing may dequeue the timer's next signal between the read
 * and the lookup: a carrier reads one instance per read() (a read() of
 * several dequeues them one by one, and a periodic timer re-armed by the
 * first dequeue may fire again before the last: seen under load, 49
 * overruns counted as 0), and the carriers of all queues read and look up
 * under one lock.  Only the handler, in a thread that left the signal
 * unblocked, can still come in between (documented).
 *
 * Each queue with sigevent registrations holds one hidden "carrier"
 * registration that watches a signalfd for the signal.  Its ready hook reads
 * every pending instance and posts each to the entry its token names
 * (evq__post: lock-free), into this queue or another one.  evq's handler for
 * the signal (sigtable.c) does the same for an instance a thread that had not
 * blocked it received.  Readers bracket their use of an entry with
 * evq__sig_enter/leave; evq_del unpublishes the entry and quiesces before
 * the slot may go (the protocol of sigtable.c).
 *
 * The kernel drops a real-time notification (mq_notify, AIO) whose signal
 * it cannot queue because RLIMIT_SIGPENDING, counted per real user, is
 * reached; a POSIX timer's signal is allocated by timer_create() and never
 * dropped.  evq_sigevent() refuses with -EAGAIN when the limit is reached at
 * the call (a probe: timer_create() of a SIGEV_NONE timer charges one signal
 * to the same count).  Later losses evq cannot see (glibc marks an AIO
 * request whose signal failed as failed with EAGAIN; an mq_notify() one
 * leaves nothing): they are documented in evq_sigevent(3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kinds/sigtable.h"

#define ENTRY_BITS 20                      /* entry index in a token */
#define ENTRY_MAX (1u << ENTRY_BITS)       /* 1,048,576 registrations */
#define CHUNK_SHIFT 10
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define NCHUNKS (ENTRY_MAX / CHUNK_SIZE)
#define KEY_MASK (UINTPTR_MAX >> ENTRY_BITS)

struct entry {
	_Atomic(struct evq *) q;       /* NULL: free or being freed */
	_Atomic uint64_t target;       /* slot idx | ctl tag << 32 */
	_Atomic uintptr_t key;         /* token's secret part; 0 while free */
	uintptr_t last_key;            /* the previous registration's (sig lock) */
	uint32_t self;                 /* this entry's index, fixed */
	int32_t next_free;             /* (sig lock) */
};

/* All (sig lock) except where marked atomic. */
static _Atomic(struct entry *) chunks[NCHUNKS];
static _Atomic uint32_t nentries;      /* atomic: readers bound-check */
static int32_t free_head = -1;

struct carrier {
	int fd;                        /* signalfd for SIGRTMAX; first:
					  evq__drop_fd_ext */
	struct evq *q;
	struct carrier *next;
};
static struct carrier *carriers;

/* Held by a carrier from reading one instance off its signalfd to the
 * overrun lookup for it (the top of the file says why); never in a signal
 * handler.  fork() in another thread must not leave it held in the child. */
static pthread_mutex_t read_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t read_lock_once = PTHREAD_ONCE_INIT;
static void read_lock_take(void) { pthread_mutex_lock(&read_lock); }
static void read_lock_drop(void) { pthread_mutex_unlock(&read_lock); }
static void read_lock_atfork(void)
{
	pthread_atfork(read_lock_take, read_lock_drop, read_lock_drop);
}

static struct entry *entry_at(uint32_t i)
{
	struct entry *c = atomic_load_explicit(&chunks[i >> CHUNK_SHIFT],
					       memory_order_acquire);
	return &c[i & (CHUNK_SIZE - 1)];
}

/* The si_codes of the notification sources evq_sigevent() serves.  kill()
 * (SI_USER), tgkill() (SI_TKILL) and sigqueue() (SI_QUEUE) are not
 * notifications: they fire nothing. */
static int is_notification(int code)
{
	return code == SI_TIMER || code == SI_MESGQ || code == SI_ASYNCIO;
}

/* Overruns a timer notification may count: the claim, capped by the
 * kernel's count for that timer (the top of the file).  Async-signal-safe. */
static uint64_t timer_overruns(int claimed, int timer_id)
{
	if (claimed <= 0)
		return 0;
	long kernel = syscall(SYS_timer_getoverrun, timer_id);
	if (kernel <= 0)
		return 0; /* none, or no such timer: a forgery */
	return (uint64_t)(claimed < kernel ? claimed : kernel);
}

void evq__sigevent_forward(int code, void *token, int overrun, int timer_id)
{
	uintptr_t t = (uintptr_t)token;
	if (!is_notification(code))
		return;
	uint32_t i = (uint32_t)(t & (ENTRY_MAX - 1));
	if (i >= atomic_load_explicit(&nentries, memory_order_acquire))
		return;
	struct entry *e = entry_at(i);
	struct evq *q = atomic_load_explicit(&e->q, memory_order_acquire);
	uintptr_t key = t >> ENTRY_BITS;
	if (!q || key == 0 || atomic_load(&e->key) != key || evq__forked(q))
		return; /* a guess, a stale token, or an inherited queue */
	uint64_t count = 1;
	if (code == SI_TIMER)
		count += timer_overruns(overrun, timer_id);
	uint64_t tg = atomic_load(&e->target);
	evq__post(q, evq__slot(q, (uint32_t)tg), (uint32_t)(tg >> 32), count);
}

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* 64 bits another process cannot predict.  getrandom() never blocks here
 * (GRND_NONBLOCK); where it fails (its pool not ready yet early in boot, a
 * kernel before 3.17, a seccomp filter), the fallback hashes the 16 random
 * bytes the kernel gave the program at exec (AT_RANDOM: readable only by
 * processes that may ptrace-read us, which can read the tokens anyway)
 * with the time, the pid and a counter. */
static uint64_t random64(void)
{
	uint64_t r;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
		return r;
	static _Atomic uint64_t counter;
	uint64_t seed[2] = { 0, 0 };
	const void *at = (const void *)getauxval(AT_RANDOM);
	if (at)
		memcpy(seed, at, sizeof seed);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r = mix64(seed[0] ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)ts.tv_nsec);
	clock_gettime(CLOCK_REALTIME, &ts);
	r = mix64(r ^ seed[1] ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 40);
	return mix64(r ^ atomic_fetch_add(&counter, 1) ^ (uint64_t)(uintptr_t)&ts);
}

/* A key for a new registration in entry e from the random bits r: not 0
 * (a free entry's), not the entry's previous one (whose tokens may still be
 * out there).  Draws again in the rare case r does not do. */
static uintptr_t entry_key(const struct entry *e, uint64_t r)
{
	for (;;) {
		uintptr_t k = (uintptr_t)r & KEY_MASK;
		if (k != 0 && k != e->last_key)
			return k;
		r = random64();
	}
}

/* 1 when the real-time signal queue is full: one more queued signal would
 * exceed RLIMIT_SIGPENDING.  timer_create() charges its signal to that
 * count and fails with EAGAIN when it cannot; a SIGEV_NONE timer, deleted
 * at once, never fires.  Other failures (no POSIX timers, a seccomp
 * filter) say nothing about the queue. */
static int sigqueue_full(void)
{
	struct sigevent none;
	memset(&none, 0, sizeof none);
	none.sigev_notify = SIGEV_NONE;
	int id;
	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &id) == 0) {
		(void)syscall(SYS_timer_delete, id);
		return 0;
	}
	return errno == EAGAIN;
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
			atomic_init(&c[k].key, 0);
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

/* Reads the pending instances one by one (the top of the file says why),
 * at most CARRIER_READ_MAX a call: a flood is picked up again next round,
 * the signalfd stays readable. */
#define CARRIER_READ_MAX 256

static int carrier_ready(struct evq *q, struct evq__reg *r, uint32_t events,
			 struct evq_event *ev)
{
	struct carrier *c = r->ext;
	struct signalfd_siginfo si;
	(void)q, (void)events, (void)ev;
	pthread_once(&read_lock_once, read_lock_atfork);
	for (int k = 0; k < CARRIER_READ_MAX; k++) {
		pthread_mutex_lock(&read_lock);
		ssize_t n = evq__read(c->fd, &si, sizeof si);
		if (n == (ssize_t)sizeof si) {
			evq__sig_enter();
			evq__sigevent_forward(si.ssi_code, (void *)(uintptr_t)si.ssi_ptr,
					      (int)si.ssi_overrun, (int)si.ssi_tid);
			evq__sig_leave();
		}
		pthread_mutex_unlock(&read_lock);
		if (n != (ssize_t)sizeof si)
			break;
	}
	return 0; /* the posts are delivered, not the carrier */
}

static void carrier_del(struct evq *q, struct evq__reg *r)
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

static int carrier_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct carrier *c = r->ext;
	(void)a;
	return evq__fd_ctl(q, r, EVQ_FD_ADD, c->fd, EVQ_READ, 0);
}

const struct evq__kind evq__kind_carrier = {
	.name = "carrier",
	.del = carrier_del,
	.ready = carrier_ready,
	.start = carrier_start,
	.drop = evq__drop_fd_ext,
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
	struct evq__add a = { .kind = EVQ__KIND_CARRIER, .ident = SIGRTMAX,
			      .events = EVQ_READ, .ext = c };
	int64_t id = evq__reg_add_locked(q, &a); /* frees c on failure */
	if (id < 0)
		return (int)id;
	c->next = carriers;
	carriers = c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* evq_sigevent                                                         */
/* ------------------------------------------------------------------ */

static void sev_del(struct evq *q, struct evq__reg *r)
{
	struct entry *e = r->ext;
	(void)q;
	if (!e)
		return;
	evq__sig_lock();
	atomic_store(&e->q, NULL);
	evq__sig_quiesce();
	e->last_key = atomic_load(&e->key);
	atomic_store(&e->key, 0); /* its tokens now fire nothing */
	e->next_free = free_head;
	free_head = (int32_t)e->self;
	evq__sig_unlock();
	r->ext = NULL;
}

struct sev_add {
	struct sigevent *sev;
	uint64_t rnd;           /* for the entry's key */
};

static int sev_make(struct evq *q, struct evq__add *a)
{
	struct sev_add *sa = a->arg;
	(void)q;
	if (!sa->sev)
		return -EINVAL;
	/* A notification the kernel cannot queue is dropped: say so now if
	 * it would be (later losses are documented). */
	if (sigqueue_full())
		return -EAGAIN;
	sa->rnd = random64(); /* system calls outside the locks */
	return 0;
}

/* (q->lock, sig lock) The signal, the queue's carrier, a table entry. */
static int sev_prepare(struct evq *q, struct evq__add *a)
{
	int signo = SIGRTMAX, rc = 0;
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
	if (i < 0)
		return i;
	a->ext = entry_at((uint32_t)i);
	return 0;
}

/* (q->lock, sig lock) Publishes the entry and fills in the sigevent. */
static int sev_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct sev_add *sa = a->arg;
	struct entry *e = r->ext;
	int signo = SIGRTMAX;
	uintptr_t key = entry_key(e, sa->rnd);
	atomic_store(&e->key, key);
	atomic_store(&e->target, evq__sig_target(r));
	atomic_store_explicit(&e->q, q, memory_order_release);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct sigevent *sev = sa->sev;
	memset(sev, 0, sizeof *sev);
	sev->sigev_notify = SIGEV_SIGNAL;
	sev->sigev_signo = signo;
	sev->sigev_value.sival_ptr = (void *)(key << ENTRY_BITS | (uintptr_t)e->self);
	return 0;
}

/* (sig lock) An entry no registration got goes back. */
static void sev_drop(struct evq *q, struct evq__add *a)
{
	struct entry *e = a->ext;
	(void)q;
	e->next_free = free_head;
	free_head = (int32_t)e->self;
}

const struct evq__kind evq__kind_sigevent = {
	.name = "sigevent",
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.del = sev_del,
	.make = sev_make,
	.lock = evq__sig_lock,
	.unlock = evq__sig_unlock,
	.prepare = sev_prepare,
	.start = sev_start,
	.drop = sev_drop,
};

int64_t evq_sigevent(struct evq *q, uint64_t cookie, struct sigevent *sev)
{
	struct sev_add sa = { .sev = sev };
	return evq__reg_add(q, EVQ_KIND_SIGEVENT, 0, cookie, -1, &sa);
}
