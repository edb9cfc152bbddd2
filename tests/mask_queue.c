/* SPDX-License-Identifier: MIT */
/*
 * mask_queue.c - evq_add_mask: a broadcaster feeding a queue.  The event
 * carries the notified bits (& the registration's mask) as data, notifies
 * coalesce while it is pending, evq_mod disables/oneshots it keeping the
 * bits, evq_del and evq_free unsubscribe (the broadcaster then has no
 * subscriber left), a notify from another thread wakes evq_wait, a forked
 * child frees an inherited queue without hanging (and its broadcaster copy
 * stays usable), and bad input is refused.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 8
#define QUIET (20 * EVQT_MS)

static void test_basic(void)
{
	struct evq *q = evqt_new();
	struct evq_bcast b;
	struct evq_event ev[NEV];
	CHECK(evq_bcast_init(&b) == 0);
	int64_t id = evq_add_mask(q, &b, 0xff, 0xc0ffeeull);
	ok(id >= 0, "basic: evq_add_mask -> id %" PRId64 "", id);
	is(b.count, 1, "basic: the queue is one subscriber");
	is(evqt_wait(q, ev, NEV, 0), 0, "basic: nothing before a notify");

	/* One notify -> one event with data = bits & mask, exact fields. */
	CHECK(evq_bcast_notify(&b, 0x101) == 0);
	int n = evqt_wait(q, ev, NEV, 0);
	is(n, 1, "basic: one event");
	ok(ev[0].cookie == 0xc0ffeeull && ev[0].id == id && ev[0].kind == EVQ_KIND_MASK &&
		   ev[0].ident == -1 && ev[0].events == 0 && ev[0].flags == 0,
	   "basic: fields exact (kind=%u ident=%d)", ev[0].kind, ev[0].ident);
	is(ev[0].data, 0x01, "basic: data = 0x101 & 0xff = 0x01");

	/* Notifies coalesce while pending: bits OR together, one event. */
	evq_bcast_notify(&b, 0x2);
	evq_bcast_notify(&b, 0x2);
	evq_bcast_notify(&b, 0x8);
	evq_bcast_notify(&b, 0x300); /* outside the mask: nothing */
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == 0xa, "coalesce: 0x2,0x2,0x8 -> one event, data 0xa (n=%d data=%#llx)",
	   n, (unsigned long long)ev[0].data);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "coalesce: nothing more");
	/* After delivery the same bit fires again. */
	evq_bcast_notify(&b, 0x2);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == 0x2, "coalesce: delivered bit fires again");
	evq_bcast_notify(&b, 0x300);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mask: bits outside the mask -> no event");

	/* Two registrations on one broadcaster, different masks. */
	int64_t id2 = evq_add_mask(q, &b, 0x300, 7);
	CHECK(id2 >= 0);
	evq_bcast_notify(&b, 0x104);
	n = evqt_wait(q, ev, NEV, 0);
	int seen = 0;
	for (int i = 0; i < n; i++)
		seen |= (ev[i].id == id && ev[i].data == 0x4) << 0 |
			(ev[i].id == id2 && ev[i].data == 0x100 && ev[i].cookie == 7) << 1;
	ok(n == 2 && seen == 3, "two regs: each gets its own bits (n=%d)", n);

	/* Disabled: bits are kept and delivered when enabled. */
	CHECK(evq_mod(q, id, 0, EVQ_DISABLED) == 0);
	evq_bcast_notify(&b, 0x10);
	evq_bcast_notify(&b, 0x20);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: no event");
	CHECK(evq_mod(q, id, 0, 0) == 0);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].data == 0x30, "disabled: enabling delivers 0x30");

	/* Oneshot: one event, then silent (bits kept) until re-enabled. */
	CHECK(evq_mod(q, id, 0, EVQ_ONESHOT) == 0);
	evq_bcast_notify(&b, 0x1);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == 0x1, "oneshot: first event");
	evq_bcast_notify(&b, 0x40);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: silent after firing");
	CHECK(evq_mod(q, id, 0, EVQ_ONESHOT) == 0);
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].data == 0x40, "oneshot: re-armed -> kept bits 0x40");

	/* evq_requeue gives an event back: its bits OR with newer ones. */
	CHECK(evq_mod(q, id, 0, 0) == 0);
	evq_bcast_notify(&b, 0x1);
	n = evqt_wait(q, ev, NEV, 0);
	CHECK(n == 1 && ev[0].data == 0x1);
	evq_bcast_notify(&b, 0x4);
	is(evq_requeue(q, &ev[0]), 0, "requeue: evq_requeue");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].data == 0x5,
	   "requeue: given-back 0x1 merges with newer 0x4 -> data 0x5 (got %#llx)",
	   (unsigned long long)ev[0].data);

	/* evq_del unsubscribes: the broadcaster loses the subscriber, and a
	 * bit notified before the del but not delivered dies with it. */
	evq_bcast_notify(&b, 0x1);
	is(evq_del(q, id), 0, "del: evq_del");
	is(b.count, 1, "del: broadcaster has one subscriber left");
	evq_bcast_notify(&b, 0x1);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "del: no event of the deleted registration");
	is(evq_del(q, id), -ENOENT, "del: second evq_del -> -ENOENT");

	/* evq_free unsubscribes what is left. */
	evq_free(q);
	is(b.count, 0, "free: evq_free unsubscribed the queue");
	is(evq_bcast_notify(&b, 0xffff), 0, "free: notify afterwards is harmless");
	evq_bcast_destroy(&b);
}

/* Notifies once the waiter sleeps in evq_wait on q (was: after 20 ms). */
struct thr {
	struct evq_bcast *b;
	evq_mask_t bits;
	struct evq *q;
	pid_t waiter;
	int asleep;
};

static void *notify_later(void *p)
{
	struct thr *t = p;
	t->asleep = evqt_until(evqt_sleeping_in(t->q, t->waiter));
	evq_bcast_notify(t->b, t->bits);
	return NULL;
}

static void test_cross_thread(void)
{
	/* A thread sleeping in evq_wait is woken by another thread's notify. */
	struct evq *q = evqt_new();
	struct evq_bcast b;
	struct evq_event ev[NEV];
	CHECK(evq_bcast_init(&b) == 0);
	int64_t id = evq_add_mask(q, &b, EVQ_MASK_READ | EVQ_MASK_WRITE, 1);
	CHECK(id >= 0);
	struct thr t = { &b, EVQ_MASK_WRITE, q, evqt_gettid(), 0 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, notify_later, &t) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	pthread_join(th, NULL);
	ok(t.asleep && n == 1 && ev[0].id == id && ev[0].data == EVQ_MASK_WRITE,
	   "thread: notify wakes evq_wait, seen asleep, with data EVQ_MASK_WRITE");
	evq_free(q);
	evq_bcast_destroy(&b);
}

static void test_fork(void)
{
	struct evq *q = evqt_new();
	struct evq_bcast b;
	struct evq_event ev[NEV];
	CHECK(evq_bcast_init(&b) == 0);
	int64_t id = evq_add_mask(q, &b, 0x1, 5);
	CHECK(id >= 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Child: the inherited queue only accepts evq_free, which must
		 * not wait for anything; notifying the child's copy of b then
		 * reaches nothing that was freed (ASan would see it). */
		alarm(10);
		int r = evq_add_mask(q, &b, 0x1, 6) == -ECHILD;
		evq_free(q);
		r &= evq_bcast_notify(&b, 0x1) == 0;
		_exit(r ? 0 : 1);
	}
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "fork: child's evq_free of the inherited queue returns, notify after is safe (status %#x)", st);
	/* The parent's registration is untouched. */
	evq_bcast_notify(&b, 0x1);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].data == 0x1, "fork: parent still gets its events");
	evq_free(q);
	evq_bcast_destroy(&b);
}

static void test_bad(void)
{
	struct evq *q = evqt_new();
	struct evq_bcast b, junk;
	memset(&junk, 0, sizeof junk);
	CHECK(evq_bcast_init(&b) == 0);
	is(evq_add_mask(NULL, &b, 1, 0), -EINVAL, "bad: NULL queue");
	is(evq_add_mask(q, NULL, 1, 0), -EINVAL, "bad: NULL broadcaster");
	is(evq_add_mask(q, &junk, 1, 0), -EINVAL, "bad: uninitialised broadcaster");
	is(evq_add_mask(q, &b, 0, 0), -EINVAL, "bad: zero mask");
	is(b.count, 0, "bad: nothing subscribed by failed calls");
	/* The queue still works. */
	ok(evqt_roundtrip(q), "bad: queue still usable");
	evq_free(q);
	evq_bcast_destroy(&b);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("mask_queue");
	test_basic();
	test_cross_thread();
	test_fork();
	test_bad();
	return done();
}
