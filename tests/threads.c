/* SPDX-License-Identifier: MIT */
/*
 * threads.c - the queue used from several threads while one waits:
 * triggers from 8 threads are all counted (none lost, none duplicated),
 * no wakeup is lost in a two-queue ping-pong, concurrent add/trigger/del
 * never yields an event of a registration deleted before the wait began,
 * and registrations/changes made by other threads wake a blocked waiter.
 *
 * EVQ_TEST_SCALE scales the iteration counts (1/4 under sanitizers).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 256

/* ---- 8 producers x M triggers on K user ids ---- */

enum { P = 8, K = 4 };

struct storm {
	struct evq *q;
	int64_t ids[K];
	int64_t end_id;
	long m;
	atomic_int errors;
	pthread_t prod[P];
};

struct prod_arg {
	struct storm *s;
	int p;
};

static void *producer_run(void *arg)
{
	struct prod_arg *a = arg;
	struct storm *s = a->s;
	for (long i = 0; i < s->m; i++) {
		if (evq_trigger(s->q, s->ids[(a->p + i) % K]) != 0)
			atomic_fetch_add(&s->errors, 1);
		if ((i & 1023) == 0)
			sched_yield(); /* let the waiter fall asleep now and then */
	}
	return NULL;
}

static void *storm_coordinator(void *arg)
{
	struct storm *s = arg;
	struct prod_arg pa[P];
	for (int p = 0; p < P; p++) {
		pa[p].s = s;
		pa[p].p = p;
		CHECK(pthread_create(&s->prod[p], NULL, producer_run, &pa[p]) == 0);
	}
	for (int p = 0; p < P; p++)
		pthread_join(s->prod[p], NULL);
	CHECK(evq_trigger(s->q, s->end_id) == 0);
	return NULL;
}

static void test_trigger_storm(void)
{
	static struct storm s;
	static struct evq_event ev[NEV];
	s.q = evqt_new();
	s.m = evqt_scale(100000);
	for (int k = 0; k < K; k++) {
		s.ids[k] = evq_add_user(s.q, (uint64_t)k);
		CHECK(s.ids[k] >= 0);
	}
	s.end_id = evq_add_user(s.q, 999);
	CHECK(s.end_id >= 0);
	uint64_t want[K] = { 0 }, got[K] = { 0 };
	for (int p = 0; p < P; p++)
		for (long i = 0; i < s.m; i++)
			want[(p + i) % K]++;
	pthread_t coord;
	CHECK(pthread_create(&coord, NULL, storm_coordinator, &s) == 0);
	int ended = 0, errs = 0, stray = 0, waits = 0;
	/* Block until the end marker, then drain what is left. */
	while (!ended) {
		int n = evq_wait(s.q, ev, NEV, -1, NULL);
		waits++;
		if (n <= 0) {
			errs++;
			if (errs > 100)
				break;
			continue;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].id == s.end_id)
				ended = 1;
			else if (ev[i].cookie < K && ev[i].id == s.ids[ev[i].cookie])
				got[ev[i].cookie] += ev[i].data;
			else
				stray++;
		}
	}
	pthread_join(coord, NULL);
	for (;;) {
		int n = evq_wait(s.q, ev, NEV, 0, NULL);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			if (ev[i].cookie < K && ev[i].id == s.ids[ev[i].cookie])
				got[ev[i].cookie] += ev[i].data;
	}
	is(atomic_load(&s.errors), 0, "storm: every evq_trigger returned 0");
	is(errs, 0, "storm: evq_wait(-1) never returned <= 0");
	is(stray, 0, "storm: no unknown event");
	for (int k = 0; k < K; k++)
		ok(got[k] == want[k], "storm: id %d: sum of data %llu == %llu triggers", k,
		   (unsigned long long)got[k], (unsigned long long)want[k]);
	diag("storm: %d threads x %ld triggers, %d waits", P, s.m, waits);
	evq_free(s.q);
}

/* ---- ping-pong between two queues: a lost wakeup shows as a timeout ---- */

struct pp {
	struct evq *mine, *other;
	int64_t my_id, other_id;
	long rounds;
	int starter;
	int timeouts, errors;
};

static void *pingpong(void *arg)
{
	struct pp *p = arg;
	struct evq_event ev[4];
	for (long r = 0; r < p->rounds; r++) {
		if (p->starter && evq_trigger(p->other, p->other_id) != 0)
			p->errors++;
		int n;
		do {
			n = evq_wait(p->mine, ev, 4, 5 * EVQT_SEC, NULL);
		} while (n == -EINTR);
		if (n == 0) {
			p->timeouts++;
			if (p->timeouts > 3)
				break;
		} else if (n != 1 || ev[0].id != p->my_id || ev[0].data != 1) {
			p->errors++;
		}
		if (!p->starter && evq_trigger(p->other, p->other_id) != 0)
			p->errors++;
	}
	return NULL;
}

static void test_pingpong(void)
{
	struct evq *a = evqt_new(), *b = evqt_new();
	int64_t ia = evq_add_user(a, 1), ib = evq_add_user(b, 2);
	CHECK(ia >= 0 && ib >= 0);
	long rounds = evqt_scale(20000);
	struct pp x = { a, b, ia, ib, rounds, 1, 0, 0 };
	struct pp y = { b, a, ib, ia, rounds, 0, 0, 0 };
	pthread_t tx, ty;
	CHECK(pthread_create(&tx, NULL, pingpong, &x) == 0);
	CHECK(pthread_create(&ty, NULL, pingpong, &y) == 0);
	pthread_join(tx, NULL);
	pthread_join(ty, NULL);
	is(x.timeouts + y.timeouts, 0, "pingpong: %ld round trips, no lost wakeup", rounds);
	is(x.errors + y.errors, 0, "pingpong: every event exact (one trigger, data 1)");
	evq_free(a);
	evq_free(b);
}

/* ---- concurrent add / trigger / del while a thread waits ---- */

enum { CHURNERS = 2, NPAIRS = 16 };

struct churn {
	struct evq *q;
	long n;
	_Atomic int64_t *ids[CHURNERS];  /* id of registration seq */
	_Atomic long *delepoch[CHURNERS]; /* epoch at which its del returned */
	atomic_long epoch;
	atomic_int running;
	atomic_int errors;
	int sv[NPAIRS][2];
};

struct churn_arg {
	struct churn *c;
	int t;
};

static void *churner(void *arg)
{
	struct churn_arg *a = arg;
	struct churn *c = a->c;
	int t = a->t;
	for (long s = 0; s < c->n; s++) {
		uint64_t cookie = (uint64_t)t << 32 | (uint64_t)s;
		int64_t id;
		if (t == 0) {
			/* user event: add, trigger, del */
			id = evq_add_user(c->q, cookie);
			if (id < 0) {
				atomic_fetch_add(&c->errors, 1);
				continue;
			}
			atomic_store(&c->ids[t][s], id);
			if (evq_trigger(c->q, id) != 0)
				atomic_fetch_add(&c->errors, 1);
		} else {
			/* readable socket: add (level), del */
			int fd = c->sv[s % NPAIRS][0];
			id = evq_add_fd(c->q, fd, EVQ_READ, 0, cookie);
			if (id < 0) {
				atomic_fetch_add(&c->errors, 1);
				continue;
			}
			atomic_store(&c->ids[t][s], id);
		}
		if (s & 1)
			sched_yield(); /* give the waiter a chance to see it */
		if (evq_del(c->q, id) != 0)
			atomic_fetch_add(&c->errors, 1);
		long e = atomic_fetch_add(&c->epoch, 1) + 1;
		atomic_store(&c->delepoch[t][s], e);
	}
	atomic_fetch_sub(&c->running, 1);
	return NULL;
}

static void test_churn(void)
{
	static struct churn c;
	static struct evq_event ev[NEV];
	c.q = evqt_new();
	c.n = evqt_scale(20000);
	for (int t = 0; t < CHURNERS; t++) {
		c.ids[t] = calloc((size_t)c.n, sizeof(_Atomic int64_t));
		c.delepoch[t] = calloc((size_t)c.n, sizeof(_Atomic long));
		CHECK(c.ids[t] && c.delepoch[t]);
		for (long s = 0; s < c.n; s++)
			atomic_init(&c.ids[t][s], -1);
	}
	for (int i = 0; i < NPAIRS; i++) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				 c.sv[i]) == 0);
		CHECK(write(c.sv[i][1], "x", 1) == 1);
	}
	unsigned char *seen[CHURNERS];
	for (int t = 0; t < CHURNERS; t++)
		CHECK((seen[t] = calloc((size_t)c.n, 1)) != NULL);
	atomic_store(&c.running, CHURNERS);
	pthread_t th[CHURNERS];
	struct churn_arg ca[CHURNERS];
	for (int t = 0; t < CHURNERS; t++) {
		ca[t].c = &c;
		ca[t].t = t;
		CHECK(pthread_create(&th[t], NULL, churner, &ca[t]) == 0);
	}
	enum { DEFER_CAP = 1 << 20 };
	struct { int t; long s; int64_t id; } *defer = malloc(DEFER_CAP * sizeof *defer);
	CHECK(defer);
	long ndefer = 0;
	long after_del = 0, wrong_id = 0, dup_user = 0, bad_data = 0, events = 0;
	int errs = 0;
	for (int last = 0; !last;) {
		last = atomic_load(&c.running) == 0;
		long e_before = atomic_load(&c.epoch);
		int n = evq_wait(c.q, ev, NEV, last ? 0 : 2 * EVQT_MS, NULL);
		if (n < 0)
			errs++;
		for (int i = 0; i < n; i++) {
			int t = (int)(ev[i].cookie >> 32);
			long s = (long)(ev[i].cookie & 0xffffffffu);
			events++;
			if (t >= CHURNERS || s >= c.n) {
				wrong_id++;
				continue;
			}
			/* An fd can fire before its adder has stored the id:
			 * check those after the join. */
			int64_t want = atomic_load(&c.ids[t][s]);
			if (want == -1 && ndefer < DEFER_CAP) {
				defer[ndefer].t = t;
				defer[ndefer].s = s;
				defer[ndefer++].id = ev[i].id;
			} else if (want != -1 && ev[i].id != want) {
				wrong_id++;
			}
			long d = atomic_load(&c.delepoch[t][s]);
			/* Its evq_del returned before this evq_wait began. */
			if (d != 0 && d <= e_before)
				after_del++;
			if (t == 0) {
				if (seen[t][s]++)
					dup_user++;
				if (ev[i].data != 1)
					bad_data++;
			}
		}
	}
	for (int t = 0; t < CHURNERS; t++)
		pthread_join(th[t], NULL);
	for (long i = 0; i < ndefer; i++)
		wrong_id += defer[i].id != atomic_load(&c.ids[defer[i].t][defer[i].s]);
	free(defer);
	is(atomic_load(&c.errors), 0, "churn: add/trigger/del all succeeded");
	is(errs, 0, "churn: no evq_wait error");
	is(wrong_id, 0, "churn: every event carries the id its cookie was registered with");
	is(after_del, 0, "churn: no event of a registration deleted before the wait");
	is(dup_user, 0, "churn: no user event delivered twice");
	is(bad_data, 0, "churn: user events carry data 1");
	diag("churn: %d threads x %ld add/del, %ld events seen", CHURNERS, c.n, events);
	ok(evqt_roundtrip(c.q), "churn: queue works afterwards");
	evq_free(c.q);
	for (int t = 0; t < CHURNERS; t++) {
		free(c.ids[t]);
		free(c.delepoch[t]);
		free(seen[t]);
	}
	for (int i = 0; i < NPAIRS; i++) {
		close(c.sv[i][0]);
		close(c.sv[i][1]);
	}
}

/* ---- another thread registers or changes something: waiter woken ---- */

struct act {
	struct evq *q;
	int kind;
	int fd;
	int64_t id;
	int64_t deadline;
	int rc;        /* 0 or -errno */
	pid_t waiter;   /* thread id of the waiter */
	int asleep;     /* it was seen asleep in evq_wait before the act */
};

enum { ACT_ADD_FD, ACT_ADD_TIMER, ACT_MOD_TIMER, ACT_ADD_FILE, ACT_ENABLE_FD };

/* Acts once the waiter sleeps in evq_wait (it was: after 30 ms). */
static void *act_later(void *arg)
{
	struct act *a = arg;
	a->asleep = evqt_until(evqt_sleeping_in(a->q, a->waiter));
	switch (a->kind) {
	case ACT_ADD_FD:
	case ACT_ADD_FILE:
		a->id = evq_add_fd(a->q, a->fd, EVQ_READ, 0, 55);
		a->rc = a->id < 0 ? (int)a->id : 0;
		break;
	case ACT_ADD_TIMER:
		a->deadline = evqt_now(CLOCK_MONOTONIC) + 20 * EVQT_MS;
		a->id = evq_add_timer(a->q, CLOCK_MONOTONIC, a->deadline, 0,
				      EVQ_ABSTIME, 55);
		a->rc = a->id < 0 ? (int)a->id : 0;
		break;
	case ACT_MOD_TIMER:
		a->deadline = evqt_now(CLOCK_MONOTONIC) + 20 * EVQT_MS;
		a->rc = evq_mod_timer(a->q, a->id, a->deadline, 0, EVQ_ABSTIME);
		break;
	case ACT_ENABLE_FD:
		a->rc = evq_mod(a->q, a->id, EVQ_READ, 0);
		break;
	}
	return NULL;
}

static void woken_by(int kind, const char *what)
{
	struct evq *q = evqt_new();
	struct evq_event ev[8];
	struct act a = { q, kind, -1, -1, 0, -1, evqt_gettid(), 0 };
	int sv[2] = { -1, -1 };
	if (kind == ACT_ADD_FD || kind == ACT_ENABLE_FD) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				 sv) == 0);
		CHECK(write(sv[1], "x", 1) == 1);
		a.fd = sv[0];
	}
	if (kind == ACT_ADD_FILE) {
		char path[] = "/tmp/evq-threads-XXXXXX";
		a.fd = mkstemp(path);
		CHECK(a.fd >= 0);
		unlink(path);
	}
	if (kind == ACT_MOD_TIMER) {
		a.id = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 55);
		CHECK(a.id >= 0);
	}
	if (kind == ACT_ENABLE_FD) {
		a.id = evq_add_fd(q, a.fd, EVQ_READ, EVQ_DISABLED, 55);
		CHECK(a.id >= 0);
	}
	pthread_t t;
	CHECK(pthread_create(&t, NULL, act_later, &a) == 0);
	/* Blocked (10 s bound: the only other deadline is an hour away) until
	 * the other thread's change makes something ready. */
	int n = evqt_wait(q, ev, 8, 10 * EVQT_SEC);
	int64_t now = evqt_now(CLOCK_MONOTONIC);
	pthread_join(t, NULL);
	ok(a.rc >= 0 && a.asleep && n == 1 && ev[0].id == a.id && ev[0].cookie == 55,
	   "woken: %s from another thread wakes a blocked evq_wait (n=%d rc=%d, %s)", what, n,
	   a.rc, a.asleep ? "seen asleep" : "never seen asleep");
	if (kind == ACT_ADD_TIMER || kind == ACT_MOD_TIMER)
		ok(now >= a.deadline, "woken: %s: not early", what);
	evq_free(q);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	if (kind == ACT_ADD_FILE)
		close(a.fd);
}

int main(void)
{
	evqt_watchdog(120);
	evqt_banner("threads");
	test_trigger_storm();
	test_pingpong();
	test_churn();
	woken_by(ACT_ADD_FD, "evq_add_fd of a readable socket");
	woken_by(ACT_ADD_TIMER, "evq_add_timer 20 ms");
	woken_by(ACT_MOD_TIMER, "evq_mod_timer 1 h -> 20 ms");
	woken_by(ACT_ADD_FILE, "evq_add_fd of a regular file");
	woken_by(ACT_ENABLE_FD, "evq_mod enabling a readable fd");
	return done();
}
