/* SPDX-License-Identifier: MIT */
/*
 * ids.c - registration ids cannot be confused (include/evq.h
 * "Registrations"): id = generation << 32 | slot with a 31-bit generation
 * per slot starting at 1, so
 *   - every id is >= 2^32, and one truncated to an int names nothing;
 *   - a slot reused 100,000 times never hands out an old id again, and
 *     every call through an old id (evq_trigger, evq_mod, evq_del,
 *     evq_mod_timer, evq_mod_word) gets -ENOENT and leaves the live
 *     registration alone (the old 7-bit generation came round after 128);
 *   - a slot whose generation is spent is retired, never reused (started
 *     near the end through the white-box hook evq__test_slot_gen), also
 *     when it is deleted while on the post stack;
 *   - a call that implies a kind refuses another kind's live id with
 *     -EINVAL for every call/kind pair, and both registrations still work;
 *     evq_requeue refuses a record whose kind was altered.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evqtest.h"
#include "internal.h" /* evq__test_slot_gen, EVQ_GEN_MAX, evq__slot */

#define NEV 32
#define TWO32 ((int64_t)1 << 32)

/* Every call that takes an id, through id: each must say -ENOENT.
 * Returns the number that did not. */
static int refused_everywhere(struct evq *q, int64_t id, const char *what)
{
	int bad = 0;
	int rc[5] = {
		evq_trigger(q, id),
		evq_mod(q, id, 0, EVQ_DISABLED),
		evq_mod_timer(q, id, 0, 0, 0),
		evq_mod_word(q, id, 0, 0),
		evq_del(q, id),
	};
	static const char *const call[5] = { "evq_trigger", "evq_mod", "evq_mod_timer",
					     "evq_mod_word", "evq_del" };
	for (int i = 0; i < 5; i++)
		if (rc[i] != -ENOENT) {
			if (bad++ == 0)
				diag("%s id %#llx: %s -> %d, want -ENOENT", what,
				     (unsigned long long)id, call[i], rc[i]);
		}
	return bad;
}

/* One user event of id (count 1, cookie) comes out, and nothing else. */
static int delivers_once(struct evq *q, int64_t id, uint64_t cookie)
{
	struct evq_event ev[NEV];
	if (evq_trigger(q, id) != 0)
		return 0;
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	return n == 1 && ev[0].id == id && ev[0].cookie == cookie &&
	       ev[0].kind == EVQ_KIND_USER && ev[0].data == 1 &&
	       evqt_wait(q, ev, NEV, 0) == 0;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* ---- stale ids after many reuses of one slot ---- */

static void test_reuse(void)
{
	enum { CYCLES = 100000 };
	struct evq *q = evqt_new();
	int64_t *all = malloc(CYCLES * sizeof *all);
	CHECK(all);
	/* A queue with one registration at a time: the free list (FIFO) has
	 * that one slot, so every add reuses it.  Kinds alternate user,
	 * latch, user...: with the old 7-bit generation, cycle k + 128 had
	 * cycle k's id, so a stale id of one kind deleted another kind's
	 * registration.  (Both live in full slots; fds and timers have small
	 * slots of their own, below.) */
	struct evq_latch l;
	CHECK(evq_latch_init(&l, 0) == 0);
	/* valgrind knows no futex_waitv, which an epoll queue's latch watcher
	 * needs: a signal registration is the other kind there */
	int64_t probe = evq_add_latch(q, &l, 0, 0);
	int latch = probe >= 0;
	CHECK(latch ? evq_del(q, probe) == 0 : probe == -ENOSYS);
	int same_slot = 1, small = 0;
	for (int i = 0; i < CYCLES; i++) {
		int64_t id = i % 2 == 0 ? evq_add_user(q, (uint64_t)i)
			     : latch    ? evq_add_latch(q, &l, 0, (uint64_t)i)
					: evq_add_signal(q, SIGUSR1, (uint64_t)i);
		CHECK(id >= 0);
		all[i] = id;
		small += id < TWO32;
		same_slot &= (uint32_t)id == (uint32_t)all[0];
		CHECK(evq_del(q, id) == 0);
	}
	ok(same_slot, "reuse: %d add/del cycles all used one slot (%u)", CYCLES,
	   (unsigned)(uint32_t)all[0]);
	is(small, 0, "reuse: every id >= 2^32");
	qsort(all, CYCLES, sizeof *all, cmp_id);
	int dup = 0;
	for (int i = 1; i < CYCLES; i++)
		dup += all[i] == all[i - 1];
	is(dup, 0, "reuse: %d ids of one slot, all distinct", CYCLES);

	/* The slot's next tenant, a user event, and every old id: -ENOENT
	 * from every call, and the tenant untouched (not deleted, disabled,
	 * re-armed or triggered).  All 100,000 are tried. */
	int64_t live = evq_add_user(q, 4242);
	CHECK(live >= 0);
	is((uint32_t)live, (uint32_t)all[0], "reuse: the live user event is in that slot");
	int bad = 0, tried = 0;
	for (int i = 0; i < CYCLES; i++, tried++)
		bad += refused_everywhere(q, all[i], "old") != 0;
	is(bad, 0, "reuse: %d old ids of the slot each refused by 5 calls (-ENOENT)", tried);
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 0), 0, "reuse: no old id triggered the live user event");
	ok(delivers_once(q, live, 4242), "reuse: the live user event still delivers, enabled");
	free(all);
	evq_free(q);
}

/* ---- fds and timers: small slots of their own ---- */

/* Timers and fds live in slots of their own size (48 bytes, no lock-free
 * post fields): such a slot is reused by them alone, its stale ids are
 * refused everywhere, and an id never names a slot of the other size. */
static void test_small_slots(void)
{
	enum { CYCLES = 20000 };
	struct evq *q = evqt_new();
	int fds[2];
	CHECK(pipe(fds) == 0);
	int64_t *all = malloc(CYCLES * sizeof *all);
	CHECK(all);
	int same_slot = 1;
	for (int i = 0; i < CYCLES; i++) {
		int64_t id = i % 2 ? evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0,
						   (uint64_t)i)
				   : evq_add_fd(q, fds[0], EVQ_READ, 0, (uint64_t)i);
		CHECK(id >= TWO32);
		all[i] = id;
		same_slot &= (uint32_t)id == (uint32_t)all[0];
		CHECK(evq_del(q, id) == 0);
	}
	ok(same_slot, "small: %d timer/fd add/del cycles all used one slot (%u)", CYCLES,
	   (unsigned)(uint32_t)all[0]);
	int64_t user = evq_add_user(q, 7), timer = evq_add_timer(q, CLOCK_MONOTONIC, 0, 0, 0, 8);
	CHECK(user >= 0 && timer >= 0);
	ok((uint32_t)user != (uint32_t)all[0], "small: a user event gets a slot of its own size");
	is((uint32_t)timer, (uint32_t)all[0], "small: the next timer reuses the small slot");
	int bad = 0;
	for (int i = 0; i < CYCLES; i += 97)
		bad += refused_everywhere(q, all[i], "old small") != 0;
	is(bad, 0, "small: old timer and fd ids of the slot refused by 5 calls (-ENOENT)");
	struct evq_event ev[NEV];
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == timer && ev[0].cookie == 8 && ev[0].kind == EVQ_KIND_TIMER &&
	   ev[0].ident == -1, "small: the live timer fires once (n=%d)", n);
	ok(delivers_once(q, user, 7), "small: the user event still delivers");

	/* A small slot whose generation runs out is retired as a full one is:
	 * its last id stays stale, and no later timer gets the slot. */
	uint32_t slot = (uint32_t)timer;
	CHECK(evq_del(q, timer) == 0);
	CHECK(evq__test_slot_gen(q, slot, EVQ_GEN_MAX) == 0);
	int64_t last = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 9);
	is((uint32_t)last, slot, "small retire: the last generation's timer is in the slot");
	ok(last >> 32 == EVQ_GEN_MAX, "small retire: its id has generation %#x",
	   (unsigned)EVQ_GEN_MAX);
	CHECK(evq_del(q, last) == 0);
	int reused = 0;
	for (int i = 0; i < 600; i++) {
		int64_t id = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 10);
		CHECK(id >= TWO32);
		reused += (uint32_t)id == slot;
		all[i] = id;
	}
	is(reused, 0, "small retire: 600 timers later, none in the spent slot");
	is(refused_everywhere(q, last, "retired small"), 0,
	   "small retire: the last id refused everywhere");
	for (int i = 0; i < 600; i++)
		CHECK(evq_del(q, all[i]) == 0);
	free(all);
	close(fds[0]);
	close(fds[1]);
	evq_free(q);
}

/* ---- the generation runs out: the slot is retired ---- */

static void test_retire(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t first = evq_add_user(q, 1);
	CHECK(first >= 0);
	uint32_t slot = (uint32_t)first;
	is(evq__test_slot_gen(q, slot, EVQ_GEN_MAX - 2), -EBUSY,
	   "retire: the hook refuses a live slot");
	CHECK(evq_del(q, first) == 0);
	CHECK(evq__test_slot_gen(q, slot, EVQ_GEN_MAX - 2) == 0);
	int64_t old[3];
	int right = 1;
	for (int i = 0; i < 3; i++) {
		old[i] = evq_add_user(q, 10 + (uint64_t)i);
		right &= old[i] == ((int64_t)(EVQ_GEN_MAX - 2 + (uint32_t)i) << 32 | slot);
		if (i < 2)
			CHECK(evq_del(q, old[i]) == 0);
	}
	ok(right, "retire: generations %#x..%#x in slot %u give ids up to %#llx (> 0)",
	   EVQ_GEN_MAX - 2, EVQ_GEN_MAX, slot, (unsigned long long)old[2]);
	ok(old[2] > 0 && old[2] == ((int64_t)EVQ_GEN_MAX << 32 | slot),
	   "retire: the last generation's id is positive");
	ok(delivers_once(q, old[2], 12), "retire: the last generation works");
	CHECK(evq_del(q, old[2]) == 0);

	/* Spent: the slot is never handed out again. */
	int reused = 0;
	int64_t keep[64];
	for (int i = 0; i < 64; i++) {
		keep[i] = evq_add_user(q, 100 + (uint64_t)i);
		CHECK(keep[i] >= 0);
		reused += (uint32_t)keep[i] == slot;
	}
	for (int r = 0; r < 2000; r++) { /* churn through the free list */
		int64_t id = evq_add_user(q, 7);
		CHECK(id >= 0);
		reused += (uint32_t)id == slot;
		CHECK(evq_del(q, id) == 0);
	}
	is(reused, 0, "retire: the spent slot is not reused (64 live + 2000 add/del)");
	int bad = 0;
	for (int i = 0; i < 3; i++)
		bad += refused_everywhere(q, old[i], "retired");
	is(bad, 0, "retire: its three ids refused by every call (-ENOENT)");
	ok(!!(atomic_load(&evq__slot(q, slot)->ctl) & EVQ_CTL_QUEUED),
	   "retire: the retired slot keeps its ctl queued bit");
	/* A post that matched the retired slot's tag could not queue it. */
	is(evq__post(q, evq__slot(q, slot), evq__ctl_tag(EVQ_GEN_RETIRED), 1), 0,
	   "retire: a post with the retired tag is absorbed");
	is(evqt_wait(q, ev, NEV, 0), 0, "retire: and delivers nothing");
	bad = 0;
	for (int i = 0; i < 64; i++)
		bad += !delivers_once(q, keep[i], 100 + (uint64_t)i);
	is(bad, 0, "retire: the 64 live user events work");
	for (int i = 0; i < 64; i++)
		CHECK(evq_del(q, keep[i]) == 0);

	/* Retired while on the post stack: the drain that pops the zombie
	 * retires it instead of freeing it. */
	int64_t u = evq_add_user(q, 5);
	CHECK(u >= 0);
	uint32_t s2 = (uint32_t)u;
	CHECK(evq_del(q, u) == 0);
	/* the free list is FIFO: fill it up so s2 is the next one out */
	CHECK(evq__test_slot_gen(q, s2, EVQ_GEN_MAX) == 0);
	int64_t z = -1;
	int64_t filler[128];
	int nf = 0;
	while (nf < 128) {
		int64_t id = evq_add_user(q, 6);
		CHECK(id >= 0);
		if ((uint32_t)id == s2) {
			z = id;
			break;
		}
		filler[nf++] = id;
	}
	CHECK(z >= 0);
	ok(z == ((int64_t)EVQ_GEN_MAX << 32 | s2), "retire/zombie: slot %u at its last generation",
	   s2);
	CHECK(evq_trigger(q, z) == 0); /* on the post stack now */
	CHECK(evq_del(q, z) == 0);     /* a zombie until a waiter drains it */
	is(evqt_wait(q, ev, NEV, 0), 0, "retire/zombie: the deleted event is not delivered");
	reused = 0;
	for (int r = 0; r < 2000; r++) {
		int64_t id = evq_add_user(q, 7);
		CHECK(id >= 0);
		reused += (uint32_t)id == s2;
		CHECK(evq_del(q, id) == 0);
	}
	is(reused, 0, "retire/zombie: the drained slot is retired, not reused");
	is(refused_everywhere(q, z, "retired zombie"), 0,
	   "retire/zombie: its id refused by every call");
	for (int i = 0; i < nf; i++)
		CHECK(evq_del(q, filler[i]) == 0);
	ok(evqt_roundtrip(q), "retire: the queue still works");
	evq_free(q);
}

/* ---- kinds ---- */

enum { K_FD, K_TIMER, K_USER, K_WORD, K_SEM, K_LATCH, K_MASK, K_SIGNAL, K_PID,
       K_SIGEVENT, NK };
static const char *const kname[NK] = { "fd", "timer", "user", "word", "sem", "latch",
				       "mask", "signal", "pid", "sigevent" };
static const uint16_t kkind[NK] = { EVQ_KIND_FD, EVQ_KIND_TIMER, EVQ_KIND_USER,
				    EVQ_KIND_WORD, EVQ_KIND_SEM, EVQ_KIND_LATCH,
				    EVQ_KIND_MASK, EVQ_KIND_SIGNAL, EVQ_KIND_PID,
				    EVQ_KIND_SIGEVENT };

struct regs {
	int64_t id[NK];  /* -1: not available here */
	int pipe[2], child_pipe[2];
	pid_t child;
	uint32_t word;
	struct evq_sem sem;
	struct evq_latch latch;
	struct evq_bcast bcast;
	struct sigevent sev;
	timer_t timer;
	int have_timer;
	int left_out; /* kinds this system cannot register (diag says why) */
};

static void add_all(struct evq *q, struct regs *g)
{
	memset(g, 0, sizeof *g);
	CHECK(pipe2(g->pipe, O_CLOEXEC | O_NONBLOCK) == 0);
	CHECK(pipe2(g->child_pipe, O_CLOEXEC) == 0);
	CHECK(evq_sem_init(&g->sem, 0, 0) == 0);
	CHECK(evq_latch_init(&g->latch, 0) == 0);
	CHECK(evq_bcast_init(&g->bcast) == 0);
	g->child = fork();
	CHECK(g->child >= 0);
	if (g->child == 0) { /* exits when the parent closes the pipe */
		char c;
		close(g->child_pipe[1]);
		while (read(g->child_pipe[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(g->child_pipe[0]);
	g->id[K_FD] = evq_add_fd(q, g->pipe[0], EVQ_READ, 0, 100 + K_FD);
	g->id[K_TIMER] = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0,
				       100 + K_TIMER);
	g->id[K_USER] = evq_add_user(q, 100 + K_USER);
	g->id[K_WORD] = evq_add_word(q, &g->word, 0, 0, 100 + K_WORD);
	g->id[K_SEM] = evq_add_sem(q, &g->sem, 0, 100 + K_SEM);
	g->id[K_LATCH] = evq_add_latch(q, &g->latch, 0, 100 + K_LATCH);
	g->id[K_MASK] = evq_add_mask(q, &g->bcast, 1, 100 + K_MASK);
	g->id[K_SIGNAL] = evq_add_signal(q, SIGUSR1, 100 + K_SIGNAL);
	g->id[K_PID] = evq_add_pid(q, g->child, 0, 100 + K_PID);
	g->id[K_SIGEVENT] = evq_sigevent(q, 100 + K_SIGEVENT, &g->sev);
	for (int k = 0; k < NK; k++)
		if (g->id[k] < 0) {
			/* word registrations on a kernel without futex_waitv;
			 * under valgrind, which keeps SIGRTMAX for itself, the
			 * sigevent */
			CHECK(g->id[k] == -ENOSYS ||
			      (k == K_SIGEVENT && getenv("EVQ_TEST_VALGRIND")));
			diag("%s: %s here, left out", kname[k], strerror((int)-g->id[k]));
			g->id[k] = -1;
			g->left_out++;
		}
}

static void fire(struct evq *q, struct regs *g, int k)
{
	switch (k) {
	case K_FD: CHECK(write(g->pipe[1], "x", 1) == 1); break;
	case K_TIMER: CHECK(evq_mod_timer(q, g->id[k], 0, 0, 0) == 0); break;
	case K_USER: CHECK(evq_trigger(q, g->id[k]) == 0); break;
	case K_WORD:
		__atomic_store_n(&g->word, 1, __ATOMIC_SEQ_CST);
		evq_wake(&g->word, INT_MAX, 0);
		break;
	case K_SEM: CHECK(evq_sem_post(&g->sem, 1) == 0); break;
	case K_LATCH: CHECK(evq_latch_set(&g->latch) == 0); break;
	case K_MASK: CHECK(evq_bcast_notify(&g->bcast, 1) >= 0); break;
	case K_SIGNAL: CHECK(kill(getpid(), SIGUSR1) == 0); break;
	case K_PID: close(g->child_pipe[1]); break;
	case K_SIGEVENT: {
		struct itimerspec one = { { 0, 0 }, { 0, 1000 } };
		CHECK(timer_create(CLOCK_MONOTONIC, &g->sev, &g->timer) == 0);
		g->have_timer = 1;
		CHECK(timer_settime(g->timer, 0, &one, NULL) == 0);
		break;
	}
	}
}

/* Fires every registration once; each delivers (its id, kind, cookie),
 * nothing else comes. */
static int all_work(struct evq *q, struct regs *g, const char *when)
{
	int seen[NK] = { 0 }, want = 0, got = 0, stray = 0;
	for (int k = 0; k < NK; k++)
		if (g->id[k] >= 0) {
			fire(q, g, k);
			want++;
		}
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (got < want && evqt_now(CLOCK_MONOTONIC) < dl) {
		struct evq_event ev[NEV];
		int n = evqt_wait(q, ev, NEV, 100 * EVQT_MS);
		for (int i = 0; i < n; i++) {
			int k = (int)ev[i].cookie - 100;
			if (k < 0 || k >= NK || ev[i].id != g->id[k] || ev[i].kind != kkind[k] ||
			    seen[k]) {
				if (stray++ == 0)
					diag("%s: stray event id %#llx kind %u cookie %llu", when,
					     (unsigned long long)ev[i].id, ev[i].kind,
					     (unsigned long long)ev[i].cookie);
				continue;
			}
			seen[k] = 1;
			got++;
			if (k == K_FD) { /* level-triggered: empty it */
				char c;
				CHECK(read(g->pipe[0], &c, 1) == 1);
			}
		}
	}
	if (got < want)
		for (int k = 0; k < NK; k++)
			if (g->id[k] >= 0 && !seen[k])
				diag("%s: %s never delivered", when, kname[k]);
	return got == want && stray == 0;
}

static void del_all(struct evq *q, struct regs *g)
{
	for (int k = 0; k < NK; k++)
		if (g->id[k] >= 0)
			CHECK(evq_del(q, g->id[k]) == 0);
	if (g->have_timer)
		timer_delete(g->timer);
	if (g->id[K_PID] < 0)
		close(g->child_pipe[1]);
	int st;
	CHECK(waitpid(g->child, &st, 0) == g->child || errno == ECHILD); /* reaped */
	close(g->pipe[0]);
	close(g->pipe[1]);
	evq_bcast_destroy(&g->bcast);
}

static void test_kinds(void)
{
	struct evq *q = evqt_new();
	struct regs g;
	add_all(q, &g);
	int small = 0, have = 0;
	for (int k = 0; k < NK; k++)
		if (g.id[k] >= 0) {
			have++;
			small += g.id[k] < TWO32;
		}
	/* all of them, but where valgrind or the kernel lacks a system call */
	int all = !getenv("EVQ_TEST_VALGRIND") && evqt_have_futex_waitv();
	ok(have + g.left_out == NK && (!all || have == NK),
	   "kinds: %d of %d kinds registered", have, NK);
	is(small, 0, "kinds: every kind's id is >= 2^32");

	/* Truncated to an int (or to its low 32 bits): names nothing. */
	int bad = 0;
	for (int k = 0; k < NK; k++)
		if (g.id[k] >= 0) {
			int as_int = (int)g.id[k];
			bad += refused_everywhere(q, as_int, kname[k]) != 0;
			bad += refused_everywhere(q, (int64_t)(uint32_t)g.id[k], kname[k]) != 0;
		}
	is(bad, 0, "kinds: every id truncated to an int is refused by every call (-ENOENT)");

	/* Each call that implies a kind, on every other kind: -EINVAL. */
	int pairs = 0, wrong = 0;
	for (int k = 0; k < NK; k++) {
		if (g.id[k] < 0)
			continue;
		int64_t id = g.id[k];
		struct { const char *call; int applies, rc; } c[4] = {
			{ "evq_trigger", k == K_USER, 0 },
			{ "evq_mod_timer", k == K_TIMER, 0 },
			{ "evq_mod_word", k == K_WORD, 0 },
			{ "evq_mod(events)", k == K_FD, 0 },
		};
		if (!c[0].applies)
			c[0].rc = evq_trigger(q, id);
		if (!c[1].applies)
			c[1].rc = evq_mod_timer(q, id, 0, 0, 0);
		if (!c[2].applies)
			c[2].rc = evq_mod_word(q, id, 1, 0);
		if (!c[3].applies)
			c[3].rc = evq_mod(q, id, EVQ_READ, 0);
		for (int i = 0; i < 4; i++) {
			if (c[i].applies)
				continue;
			pairs++;
			if (c[i].rc != -EINVAL && wrong++ < 5)
				diag("%s on a %s id -> %d, want -EINVAL", c[i].call, kname[k],
				     c[i].rc);
		}
	}
	is(wrong, 0, "kinds: %d call/kind mismatches each -> -EINVAL", pairs);
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 0), 0, "kinds: no refused call made an event");
	ok(all_work(q, &g, "after the mismatches"),
	   "kinds: every registration still delivers its own event");

	/* Deleted: -ENOENT before any kind check. */
	del_all(q, &g);
	bad = 0;
	for (int k = 0; k < NK; k++)
		if (g.id[k] >= 0)
			bad += refused_everywhere(q, g.id[k], kname[k]);
	is(bad, 0, "kinds: deleted ids of every kind -> -ENOENT from every call");
	ok(evqt_roundtrip(q), "kinds: the queue still works");
	evq_free(q);
}

/* evq_requeue: a record whose kind was altered is not one handed out. */
static void test_requeue_kind(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t u = evq_add_user(q, 1);
	int64_t t = evq_add_timer(q, CLOCK_MONOTONIC, 0, 0, 0, 2);
	CHECK(u >= 0 && t >= 0 && evq_trigger(q, u) == 0);
	/* both in one batch: evq_requeue takes the last wait's records */
	int n = 0;
	int64_t dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (n != 2 && evqt_now(CLOCK_MONOTONIC) < dl) {
		n = evqt_wait(q, ev, NEV, 100 * EVQT_MS);
		if (n == 1) /* the other one was late: give this one back */
			CHECK(evq_requeue(q, &ev[0]) == 0);
	}
	CHECK(n == 2);
	for (int i = 0; i < 2; i++) {
		struct evq_event alt = ev[i];
		alt.kind = ev[i].kind == EVQ_KIND_USER ? EVQ_KIND_TIMER : EVQ_KIND_USER;
		is(evq_requeue(q, &alt), -EINVAL, "requeue: a %s record altered to kind %u -> -EINVAL",
		   ev[i].kind == EVQ_KIND_USER ? "user" : "timer", alt.kind);
	}
	is(evq_requeue(q, &ev[0]), 0, "requeue: the unaltered records still go back (1)");
	is(evq_requeue(q, &ev[1]), 0, "requeue: the unaltered records still go back (2)");
	int64_t seen_u = 0, seen_t = 0;
	dl = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while ((!seen_u || !seen_t) && evqt_now(CLOCK_MONOTONIC) < dl) {
		int k = evqt_wait(q, ev, NEV, 100 * EVQT_MS);
		for (int i = 0; i < k; i++) {
			seen_u += ev[i].id == u && ev[i].kind == EVQ_KIND_USER;
			seen_t += ev[i].id == t && ev[i].kind == EVQ_KIND_TIMER;
		}
	}
	ok(seen_u == 1 && seen_t == 1, "requeue: both come out again, once each");
	evq_free(q);
}

int main(void)
{
	evqt_banner("ids");
	evqt_watchdog(120);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
	test_reuse();
	test_small_slots();
	test_retire();
	test_kinds();
	test_requeue_kind();
	return done();
}
