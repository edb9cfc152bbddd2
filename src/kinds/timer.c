/* SPDX-License-Identifier: MIT */
/*
 * timer.c - library timers: one 4-ary min-heap of registrations per clock.
 *
 * No kernel object per timer: the queue sleeps in the backend with a timeout
 * equal to the nearest deadline, and evq__timer_run() fires whatever has
 * expired when the waiter comes back.  A million timers cost a million heap
 * entries (16 bytes each, plus the timer's 48-byte registration slot) and O(log n) per
 * add/del/fire.  Heap arrays grow only when a new high-water mark of timers is
 * reached, so re-arming and firing never allocate.
 *
 * Clocks: CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME.  The sleep itself is
 * measured on the backend's clock (monotonic).  REALTIME deadlines are wall
 * clock times that move when the clock is set, so while REALTIME timers exist
 * the queue keeps the one kernel timer it ever uses: a timerfd armed at the
 * earliest REALTIME deadline with TFD_TIMER_CANCEL_ON_SET, which wakes the
 * waiter at that wall-clock time and whenever the clock is stepped.  A
 * system suspend is noticed for BOOTTIME timers at the next wakeup; see
 * evq_add_timer(3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define HEAP_FIRST_CAP 64 /* a timer heap's first size */

static const clockid_t clock_ids[EVQ_NCLOCKS] = {
	CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME,
};

int evq__timer_clock_index(clockid_t clock)
{
	for (int i = 0; i < EVQ_NCLOCKS; i++)
		if (clock_ids[i] == clock)
			return i;
	return -1;
}

int64_t evq__now(int ci)
{
	struct timespec ts;
	clock_gettime(clock_ids[ci], &ts);
	return (int64_t)ts.tv_sec * EVQ_NSEC_PER_SEC + ts.tv_nsec;
}

/* ---- heap ---- */

/* A 4-ary min-heap: half the levels of a binary one (about 10 at a million
 * timers), and a node's four children share one cache line: entries are 16
 * bytes and the array is stored 3 entries past a 64-byte boundary, so the
 * children of position p (4p+1 .. 4p+4) start at byte 64(p+1) of the
 * allocation.
 *
 * Where each timer sits (for O(log n) delete and re-arm) is in the timer's
 * own small slot (r->tslot: its clock and position + 1): a move writes it
 * there through the entry's pointer, as libev does; 4 bytes in a slot the
 * timer has anyway. */
#define TSLOT_CLOCK_SHIFT 30
#define TSLOT_POS ((1u << TSLOT_CLOCK_SHIFT) - 1)
_Static_assert(EVQ_NCLOCKS <= 4 && EVQ_MAX_REGS < TSLOT_POS,
	       "a clock index and a heap position fit in r->tslot");

static inline uint32_t tslot_clock(const struct evq__reg *r)
{
	return r->tslot >> TSLOT_CLOCK_SHIFT;
}
/* the position in its heap + 1, 0: in none */
static inline uint32_t tslot_pos1(const struct evq__reg *r)
{
	return r->tslot & TSLOT_POS;
}
#define HEAP_D 4
#define HEAP_SKEW 3 /* entries before position 0 in the allocation */
#define HEAP_ALIGN 64

static void sift_up(struct evq *q, struct evq__heap *h, uint32_t pos)
{
	struct evq__heap_entry *a = h->a, e = a[pos];
	uint32_t tag = (uint32_t)(h - q->heap) << TSLOT_CLOCK_SHIFT;
	while (pos > 0) {
		uint32_t parent = (pos - 1) / HEAP_D;
		if (a[parent].deadline <= e.deadline)
			break;
		a[pos] = a[parent];
		a[pos].r->tslot = tag | (pos + 1);
		pos = parent;
	}
	a[pos] = e;
	e.r->tslot = tag | (pos + 1);
}

/* Moves the entry at pos down to where its deadline belongs.  The four
 * children of a node are one cache line; the earliest of them is found by
 * a tournament (two independent compares, then one). */
static void sift_down(struct evq *q, struct evq__heap *h, uint32_t pos)
{
	struct evq__heap_entry *a = h->a, e = a[pos];
	uint32_t n = h->n, tag = (uint32_t)(h - q->heap) << TSLOT_CLOCK_SHIFT;
	for (;;) {
		uint32_t c = HEAP_D * pos + 1;
		const struct evq__heap_entry *p = a + c, *m;
		if (c + HEAP_D <= n) {
			const struct evq__heap_entry *x = p[1].deadline < p[0].deadline ? p + 1 : p;
			const struct evq__heap_entry *y = p[3].deadline < p[2].deadline ? p + 3 : p + 2;
			m = y->deadline < x->deadline ? y : x;
		} else if (c < n) {
			m = p;
			for (uint32_t i = c + 1; i < n; i++)
				if (a[i].deadline < m->deadline)
					m = a + i;
		} else {
			break;
		}
		if (e.deadline <= m->deadline)
			break;
		a[pos] = *m;
		m->r->tslot = tag | (pos + 1);
		pos = (uint32_t)(m - a);
	}
	a[pos] = e;
	e.r->tslot = tag | (pos + 1);
}

static int heap_reserve(struct evq__heap *h)
{
	if (h->n < h->cap)
		return 0;
	uint32_t cap = h->cap ? h->cap * 2 : HEAP_FIRST_CAP;
	/* malloc, aligned by hand: the skewed alignment must survive growth,
	 * which realloc would not keep (growth doubles, so copies are rare) */
	char *raw = malloc((cap + HEAP_SKEW) * sizeof *h->a + HEAP_ALIGN);
	if (!raw)
		return -ENOMEM;
	uintptr_t at = ((uintptr_t)raw + HEAP_ALIGN - 1) & ~(uintptr_t)(HEAP_ALIGN - 1);
	struct evq__heap_entry *a = (struct evq__heap_entry *)at + HEAP_SKEW;
	if (h->n)
		memcpy(a, h->a, h->n * sizeof *a);
	free(h->raw);
	h->raw = raw;
	h->a = a;
	h->cap = cap;
	return 0;
}

int evq__timer_reserve(struct evq *q, struct evq__reg *r, int ci)
{
	(void)r;
	return heap_reserve(&q->heap[ci]);
}

/* room reserved (evq__timer_reserve) */
static void heap_push(struct evq *q, struct evq__heap *h, struct evq__reg *r,
		      int64_t deadline)
{
	struct evq__heap_entry e = { deadline, r };
	h->a[h->n++] = e;
	sift_up(q, h, h->n - 1);
	evq__head_set(&q->ntimers, q->ntimers + 1);
}

static void heap_remove(struct evq *q, struct evq__heap *h, uint32_t pos)
{
	struct evq__reg *r = h->a[pos].r;
	r->tslot &= ~TSLOT_POS;
	evq__head_set(&q->ntimers, q->ntimers - 1);
	if (--h->n == pos)
		return;
	h->a[pos] = h->a[h->n];
	/* the moved entry may belong above or below its new place; either
	 * sift writes its position into its slot */
	if (pos > 0 && h->a[pos].deadline < h->a[(pos - 1) / HEAP_D].deadline)
		sift_up(q, h, pos);
	else
		sift_down(q, h, pos);
}

/* ---- timers ---- */

void evq__timer_disarm(struct evq *q, struct evq__reg *r)
{
	if (tslot_pos1(r))
		heap_remove(q, &q->heap[tslot_clock(r)], tslot_pos1(r) - 1);
}

int evq__timer_arm(struct evq *q, struct evq__reg *r, int64_t when_ns,
		   int64_t interval_ns, uint32_t flags)
{
	int ci = (int)tslot_clock(r);
	int64_t deadline = (flags & EVQ_ABSTIME) ? when_ns
						 : evq__sat_add(evq__now(ci), when_ns);
	int rc = evq__timer_reserve(q, r, ci);
	if (rc < 0)
		return rc;
	evq__timer_disarm(q, r);
	r->interval = interval_ns;
	heap_push(q, &q->heap[ci], r, deadline);
	/* A sleeper computed its timeout before this timer existed (or took
	 * the quiet path, seeing none: hence the fence). */
	if (tslot_pos1(r) == 1)
		evq__kick_linked(q);
	return 0;
}

/* Keeps the REALTIME timerfd armed at the earliest REALTIME deadline.  A
 * syscall only when that deadline changes. */
static void rt_arm(struct evq *q)
{
	struct evq__heap *h = &q->heap[1];
	int64_t want = h->n ? h->a[0].deadline : 0;
	if (want == q->rt_armed)
		return;
	if (q->rt_fd < 0) {
		if (!want)
			return;
		int fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
		if (fd < 0)
			return; /* the sleep timeout still bounds the wait */
		if (q->backend->fd_ctl(q, EVQ_FD_ADD, fd, EVQ_READ, 0, EVQ_TOKEN_CLOCK) < 0) {
			evq__close(fd);
			return;
		}
		evq__head_set(&q->rt_fd, fd);
	}
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	if (want) {
		int64_t at = want > 0 ? want : 1; /* before 1970: at once */
		its.it_value.tv_sec = (time_t)(at / EVQ_NSEC_PER_SEC);
		its.it_value.tv_nsec = (long)(at % EVQ_NSEC_PER_SEC);
	}
	if (timerfd_settime(q->rt_fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
			    &its, NULL) == 0 || errno == ECANCELED)
		q->rt_armed = want;
	else
		q->rt_armed = -1; /* try again next round */
}

void evq__timer_clock_fired(struct evq *q)
{
	uint64_t n;
	/* ECANCELED: the clock was set; either way re-arm for the (possibly
	 * changed) earliest deadline when the timers run next */
	ssize_t rc = evq__read(q->rt_fd, &n, sizeof n);
	(void)rc;
	q->rt_armed = -1;
}

void evq__timer_fini(struct evq *q)
{
	if (q->rt_fd >= 0)
		close(q->rt_fd);
	q->rt_fd = -1;
	for (int i = 0; i < EVQ_NCLOCKS; i++) {
		free(q->heap[i].raw);
		q->heap[i].raw = NULL;
		q->heap[i].a = NULL;
		q->heap[i].n = q->heap[i].cap = 0;
	}
	q->ntimers = 0;
}

int64_t evq__timer_run(struct evq *q)
{
	int64_t next = -1;
	if (q->ntimers == 0 && q->rt_fd < 0)
		return -1;
	for (int ci = 0; ci < EVQ_NCLOCKS; ci++) {
		struct evq__heap *h = &q->heap[ci];
		if (h->n == 0)
			continue;
		int64_t now = evq__now(ci);
		while (h->n > 0) {
			if (h->a[0].deadline > now) {
				int64_t rel = h->a[0].deadline - now;
				if (next < 0 || rel < next)
					next = rel;
				break;
			}
			struct evq__reg *r = h->a[0].r;
			uint64_t exp = 1;
			if (r->interval > 0) {
				/* Count every period that has passed: overruns are
				 * reported, never dropped.  Unsigned: a deadline
				 * may be as far back as INT64_MIN (now - deadline
				 * < 2^64 since now >= deadline), and the next one
				 * is now + the rest of the current period, which
				 * saturates instead of overflowing. */
				uint64_t late = (uint64_t)now - (uint64_t)h->a[0].deadline;
				uint64_t per = (uint64_t)r->interval;
				exp = late / per == UINT64_MAX ? UINT64_MAX : 1 + late / per;
				h->a[0].deadline = evq__sat_add(now, (int64_t)(per - late % per));
				sift_down(q, h, 0);
			} else {
				heap_remove(q, h, 0);
			}
			/* saturate: undelivered expirations of an absurd timer */
			r->pend_data = r->pend_data > UINT64_MAX - exp ? UINT64_MAX
								: r->pend_data + exp;
			if (!(r->flags & EVQ_DISABLED) && r->list == EVQ_LIST_NONE)
				evq__link(q, r, EVQ_LIST_PENDING);
		}
	}
	if (q->rt_fd >= 0 || q->heap[1].n)
		rt_arm(q);
	return next;
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

struct timer_add {
	clockid_t clock;
	int ci;                 /* its index (make) */
	int64_t when_ns, interval_ns;
};

static int timer_make(struct evq *q, struct evq__add *a)
{
	struct timer_add *t = a->arg;
	(void)q;
	t->ci = timer_args(t->clock, t->when_ns, t->interval_ns, a->flags);
	return t->ci < 0 ? t->ci : 0;
}

static int timer_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	struct timer_add *t = a->arg;
	r->tslot = (uint32_t)t->ci << TSLOT_CLOCK_SHIFT;
	return evq__timer_arm(q, r, t->when_ns, t->interval_ns, a->flags);
}

int64_t evq_add_timer(struct evq *q, clockid_t clock, int64_t when_ns,
		  int64_t interval_ns, uint32_t flags, uint64_t cookie)
{
	struct timer_add t = { .clock = clock, .when_ns = when_ns,
			       .interval_ns = interval_ns };
	return evq__reg_add(q, EVQ_KIND_TIMER, flags, cookie, -1, &t);
}

int evq_mod_timer(struct evq *q, int64_t id, int64_t when_ns, int64_t interval_ns,
		  uint32_t flags)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	evq__lock_light(q); /* EVQ__KIND_NO_CANCEL_POINTS, below */
	struct evq__reg *r;
	int rc = evq__reg_get_kind(q, id, EVQ_KIND_TIMER, &r);
	if (rc < 0)
		goto out;
	int ci = (int)tslot_clock(r);
	static const clockid_t ids[EVQ_NCLOCKS] = { CLOCK_MONOTONIC, CLOCK_REALTIME,
						   CLOCK_BOOTTIME };
	rc = timer_args(ids[ci], when_ns, interval_ns, flags);
	if (rc < 0)
		goto out;
	/* a fired timer is in no heap: room first, so that a failed call
	 * has discarded nothing */
	rc = evq__timer_reserve(q, r, ci);
	if (rc < 0)
		goto out;
	evq__unlink(q, r);
	r->pend_data = 0;
	r->flags = (r->flags & ~(EVQ_R_PUBLIC | EVQ_R_SPENT)) | flags;
	rc = evq__timer_arm(q, r, when_ns, interval_ns, flags);
out:
	evq__unlock_light(q);
	return rc;
}

/* No cancellation point under q->lock: arming sifts a heap, may grow it
 * (malloc) and kicks a sleeper (backend wake(), lock-free); deleting
 * unlinks and disarms.  rt_arm's timerfd calls run only in evq_wait. */
const struct evq__kind evq__kind_timer = {
	.name = "timer",
	.caps = EVQ__KIND_NO_CANCEL_POINTS | EVQ__KIND_SMALL,
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.make = timer_make,
	.start = timer_start,
};
