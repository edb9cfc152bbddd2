/* SPDX-License-Identifier: MIT */
/*
 * delrace.c - evq_del() and slot reuse racing with a waiter between the
 * kernel wait and the harvest, with max > 1 (tests/moddel.c's "harvested"
 * cases use max = 1, so nothing is ever harvested but left pending there).
 *
 * One queue holds many ready level-triggered fds (pipes holding a byte
 * that nobody reads), quiet fds (pipes never written) and user events.  A
 * waiter takes up to 64 events per call.  Meanwhile:
 *  - a churn thread deletes registrations and at once adds new ones, which
 *    reuse the freed slots (a new generation and a new cookie): ready fds,
 *    quiet fds and user events, at random;
 *  - a trigger thread triggers user events: K "counted" ones that are
 *    never deleted, and the churn thread's;
 *  - the waiter itself deletes some of its own ready fds between calls and
 *    adds new ones.
 * Every registration has a cookie of its own (never reused).  Checks:
 *  - an event whose registration's evq_del() returned before the waiter's
 *    evq_wait() call began is a failure (for the waiter's own deletes:
 *    any event after its del);
 *  - every event's cookie belongs to the registration its id names (same
 *    id, kind, fd): an old registration's event never arrives under a new
 *    tenant, and a quiet fd never reports readiness;
 *  - the counted user events deliver exactly the number of successful
 *    triggers (sum of data), none lost, none duplicated.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>

#include "evqtest.h"

#define NEV 64
#define MAXREC 200000     /* registrations (cookies) over the whole run */
#define NCHURN 160        /* the churn thread's live registrations */
#define NOWN 40           /* the waiter's own ready fds */
#define NCOUNTED 8        /* user events never deleted, counted exactly */

enum rkind { R_READY, R_QUIET, R_USER };

struct rec {
	_Atomic int64_t id;   /* -1 until evq_add_* returned */
	int kind;             /* enum rkind, written before id */
	int fd[2];            /* pipes: [0] registered, [1] the write end */
	int own;              /* the waiter's own (it deletes them itself) */
	_Atomic long deleted; /* epoch after evq_del returned; 0: live */
};

static struct rec R[MAXREC];
static _Atomic int nrec;
static _Atomic long epoch = 1;   /* bumped after every evq_del */
static _Atomic int stop_churn;
static _Atomic long triggers[NCOUNTED];
static _Atomic int64_t churn_users[NCHURN]; /* ids, -1 none: for the trigger thread */
static struct evq *q;
static _Atomic long reused;      /* adds into a slot some registration had before */
static _Atomic int top_slot = -1;

static int new_rec(int kind, uint64_t *cookie)
{
	int i = atomic_fetch_add(&nrec, 1);
	CHECK(i < MAXREC);
	struct rec *r = &R[i];
	r->kind = kind;
	r->fd[0] = r->fd[1] = -1;
	atomic_store(&r->deleted, 0);
	if (kind != R_USER) {
		CHECK(pipe2(r->fd, O_NONBLOCK | O_CLOEXEC) == 0);
		if (kind == R_READY)
			CHECK(write(r->fd[1], "x", 1) == 1);
	}
	*cookie = (uint64_t)i;
	return i;
}

/* Registers R[i]; the id becomes visible to the waiter last. */
static int64_t add_rec(int i)
{
	struct rec *r = &R[i];
	int64_t id = r->kind == R_USER ? evq_add_user(q, (uint64_t)i)
				   : evq_add_fd(q, r->fd[0], EVQ_READ, 0, (uint64_t)i);
	CHECK(id >= 0);
	int slot = (int)(uint32_t)id, top = atomic_load(&top_slot);
	while (slot > top && !atomic_compare_exchange_weak(&top_slot, &top, slot))
		;
	if (slot <= top)
		atomic_fetch_add(&reused, 1); /* a new generation in an old slot */
	atomic_store(&r->id, id);
	return id;
}

static void del_rec(int i)
{
	struct rec *r = &R[i];
	CHECK(evq_del(q, atomic_load(&r->id)) == 0);
	atomic_store(&r->deleted, atomic_fetch_add(&epoch, 1) + 1);
}

static void close_rec(int i)
{
	for (int k = 0; k < 2; k++)
		if (R[i].fd[k] >= 0)
			close(R[i].fd[k]);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *churn_run(void *arg)
{
	int *live = arg; /* NCHURN record indices */
	uint64_t s = 0x9e3779b97f4a7c15ull;
	long ops = 0;
	/* (the cookie table bounds the number of registrations) */
	while (!atomic_load(&stop_churn) && atomic_load(&nrec) < MAXREC - 2 * NOWN) {
		int k = (int)(xorshift(&s) % NCHURN);
		/* the new tenant's pipe is made first, so that the add follows
		 * the del at once; it takes a freed slot (the free list is a
		 * FIFO: the slot freed longest ago) with a new generation */
		uint64_t cookie;
		int kind = (int)(xorshift(&s) % 5);
		kind = kind < 2 ? R_QUIET : kind < 4 ? R_READY : R_USER;
		int n = new_rec(kind, &cookie);
		int old = live[k];
		atomic_store(&churn_users[k], -1);
		del_rec(old);
		int64_t id = add_rec(n);
		live[k] = n;
		if (kind == R_USER)
			atomic_store(&churn_users[k], id);
		close_rec(old);
		ops++;
	}
	return (void *)(intptr_t)ops;
}

static void *trigger_run(void *arg)
{
	const int64_t *counted = arg;
	uint64_t s = 0x2545f4914f6cdd1dull;
	while (!atomic_load(&stop_churn)) {
		for (int rep = 0; rep < 4; rep++)
			for (int k = 0; k < NCOUNTED; k++)
				if (evq_trigger(q, counted[k]) == 0)
					atomic_fetch_add(&triggers[k], 1);
		int64_t id = atomic_load(&churn_users[xorshift(&s) % NCHURN]);
		if (id >= 0)
			evq_trigger(q, id); /* may be deleted meanwhile: fine */
		sched_yield();
	}
	return NULL;
}

/* failures */
static long f_deleted, f_own, f_mismatch, f_quiet, f_unknown;
static long delivered[NCOUNTED];

static const struct rec *lookup(uint64_t cookie)
{
	if (cookie >= (uint64_t)atomic_load(&nrec))
		return NULL;
	const struct rec *r = &R[cookie];
	/* the adder stores the id after evq_add_* returns: wait for it */
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (atomic_load(&r->id) < 0 && evqt_now(CLOCK_MONOTONIC) < dl)
		sched_yield();
	return atomic_load(&r->id) < 0 ? NULL : r;
}

/* One evq_wait() and the checks on what it returned. */
static int wait_once(int64_t timeout)
{
	static struct evq_event ev[NEV];
	long e0 = atomic_load(&epoch);
	int n = evqt_wait(q, ev, NEV, timeout);
	CHECK(n >= 0);
	for (int k = 0; k < n; k++) {
		const struct rec *r = lookup(ev[k].cookie);
		if (!r) {
			if (f_unknown++ == 0)
				diag("event with an unknown cookie %llu",
				     (unsigned long long)ev[k].cookie);
			continue;
		}
		long d = atomic_load(&r->deleted);
		if (d && r->own && f_own++ == 0)
			diag("cookie %llu: event after the waiter's own evq_del",
			     (unsigned long long)ev[k].cookie);
		if (d && d <= e0 && f_deleted++ == 0)
			diag("cookie %llu (id %#llx): event after an evq_del that returned "
			     "before the call began", (unsigned long long)ev[k].cookie,
			     (unsigned long long)ev[k].id);
		int want_kind = r->kind == R_USER ? EVQ_KIND_USER : EVQ_KIND_FD;
		int want_ident = r->kind == R_USER ? -1 : r->fd[0];
		if ((ev[k].id != atomic_load(&r->id) || ev[k].kind != want_kind ||
		     ev[k].ident != want_ident) && f_mismatch++ == 0)
			diag("cookie %llu: id %#llx kind %u ident %d, but it was registered "
			     "as id %#llx kind %d ident %d", (unsigned long long)ev[k].cookie,
			     (unsigned long long)ev[k].id, ev[k].kind, ev[k].ident,
			     (unsigned long long)atomic_load(&r->id), want_kind, want_ident);
		if (r->kind == R_QUIET && f_quiet++ == 0)
			diag("cookie %llu: a pipe nobody wrote reported ready (events %#x)",
			     (unsigned long long)ev[k].cookie, ev[k].events);
		if (ev[k].cookie < NCOUNTED)
			delivered[ev[k].cookie] += (long)ev[k].data;
	}
	return n;
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("delrace");
	q = evqt_new();
	for (int i = 0; i < MAXREC; i++)
		atomic_init(&R[i].id, -1);

	/* cookies 0..NCOUNTED-1: the counted user events */
	static int64_t counted[NCOUNTED];
	for (int k = 0; k < NCOUNTED; k++) {
		uint64_t c;
		int i = new_rec(R_USER, &c);
		counted[k] = add_rec(i);
	}
	static int churn_live[NCHURN];
	for (int k = 0; k < NCHURN; k++) {
		uint64_t c;
		int i = new_rec(k % 3 == 0 ? R_QUIET : R_READY, &c);
		add_rec(i);
		churn_live[k] = i;
		atomic_init(&churn_users[k], -1);
	}
	int own[NOWN];
	for (int k = 0; k < NOWN; k++) {
		uint64_t c;
		own[k] = new_rec(R_READY, &c);
		R[own[k]].own = 1;
		add_rec(own[k]);
	}

	pthread_t churner, trigger;
	CHECK(pthread_create(&churner, NULL, churn_run, churn_live) == 0);
	CHECK(pthread_create(&trigger, NULL, trigger_run, counted) == 0);

	uint64_t s = 0xdeadbeefcafef00dull;
	long calls = 0, events = 0, own_dels = 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + 600 * EVQT_MS;
	while (evqt_now(CLOCK_MONOTONIC) < end) {
		events += wait_once(10 * EVQT_MS);
		calls++;
		/* now and then, replace one of the waiter's own fds */
		if (xorshift(&s) % 4 == 0 && atomic_load(&nrec) < MAXREC - NOWN) {
			int k = (int)(xorshift(&s) % NOWN);
			del_rec(own[k]);
			close_rec(own[k]);
			own_dels++;
			uint64_t c;
			own[k] = new_rec(R_READY, &c);
			R[own[k]].own = 1;
			add_rec(own[k]);
		}
	}
	atomic_store(&stop_churn, 1);
	void *ops;
	pthread_join(churner, &ops);
	pthread_join(trigger, NULL);
	diag("%ld calls, %ld events, %ld churn del+add, %ld of the waiter's own",
	     calls, events, (long)(intptr_t)ops, own_dels);

	/* the counted user events: every trigger delivered */
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	for (;;) {
		int all = 1;
		for (int k = 0; k < NCOUNTED; k++)
			all &= delivered[k] >= atomic_load(&triggers[k]);
		if (all || evqt_now(CLOCK_MONOTONIC) > dl)
			break;
		wait_once(10 * EVQT_MS);
	}
	wait_once(0);
	long lost = 0, extra = 0, total = 0;
	for (int k = 0; k < NCOUNTED; k++) {
		long t = atomic_load(&triggers[k]);
		total += t;
		lost += delivered[k] < t ? t - delivered[k] : 0;
		extra += delivered[k] > t ? delivered[k] - t : 0;
	}

	ok(atomic_load(&reused) > 0, "slots were reused by new tenants while the "
	   "waiter ran (%ld adds)", atomic_load(&reused));
	is(f_deleted, 0, "no event of a registration deleted before the wait began");
	is(f_own, 0, "no event of an fd after the waiter's own evq_del of it");
	is(f_mismatch, 0, "every event's cookie belongs to the registration its id names");
	is(f_quiet, 0, "no readiness reported for a pipe nobody wrote (an old tenant's)");
	is(f_unknown, 0, "no event with a cookie never registered");
	ok(lost == 0 && extra == 0, "%d counted user events: %ld triggers, %ld lost, "
	   "%ld extra", NCOUNTED, total, lost, extra);
	ok(evqt_roundtrip(q), "queue still works");
	evq_free(q);
	for (int i = 0; i < atomic_load(&nrec); i++)
		if (!atomic_load(&R[i].deleted))
			close_rec(i);
	return done();
}
