/* SPDX-License-Identifier: MIT */
/*
 * hostile.c - memory that lies (issue 11, finding 3).  Semaphores, latches
 * and words live in memory that other processes write, or that goes away
 * under a registration.  Whatever is written there, evq never spins on it
 * (CPU time measured over a wait that must time out), never crashes, and
 * always reports it: -EINVAL from the direct calls, also when the garbage
 * appears while they sleep; exactly one EVQ_ERR event per episode from a
 * queue registration, which then stays quiet until evq_mod() looks again.
 * The caller's timeouts hold, and the queue's other registrations (a
 * healthy semaphore, latch and word) keep delivering.
 *
 * A forked peer process maps the same memfd at an address of its own and
 * writes on command (through a pipe), waking the futex word as a poster
 * would:
 *  1. semaphores through a queue: a count above EVQ_SEM_MAX (the finding:
 *     the watcher thread spun on it), a bad magic, an unknown flag, the
 *     EVQ_SHARED flag flipped; evq_mod() while still garbage, then after
 *     the peer repaired them
 *  2. latches through a queue: bad magic, unknown flag, EVQ_SHARED flipped
 *  3. garbage written while evq_sem_wait() / evq_latch_wait() sleep
 *  4. a latch's state flipped at random while evq_latch_wait() and a queue
 *     wait on it: timeouts hold, no event, no spin
 * And in this process:
 *  5. a word unmapped while registered (the caller breaking the contract;
 *     PROT_NONE stands for the unmap, see take_away()): re-armed with
 *     evq_mod_word(), and woken
 *  6. a shared file truncated under a semaphore registration
 * Known crashes outside this change run in a child, reported as TODO (the
 * suite passes; prove lists them): on io_uring, a word taken away and
 * then woken is loaded by the ring's completion handling (process_words)
 * or by the inline sleep (I3) before the kernel is asked.  Whether the
 * sleeper thread of the second one got to sleep first decides between a
 * crash and a report: a TODO's outcome, not a pass or a fail.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "evqtest.h"

#define NEV 16
#define WINDOW (200 * EVQT_MS) /* a wait that must time out, CPU measured */

enum {
	C_VICTIM = 100, /* + index: registrations fed garbage */
	C_SEM_OK = 10,  /* the healthy ones, on the same queue */
	C_LATCH_OK,
	C_WORD_OK,
};

/* The shared page.  sem[0..3], latch[0..2]: queue victims; sem[4],
 * latch[4], word[0]: healthy; sem[5], latch[5]: direct-call victims;
 * sem[6]: refused by evq_add_sem; latch[6]: flipped at random. */
struct shm {
	struct evq_sem sem[8];
	struct evq_latch latch[8];
	uint32_t word[4];
};

static struct shm *sh; /* this process's mapping */
static int memfd, cmd_fd = -1, ack_fd = -1;
static pid_t peer_pid;

/* ------------------------------------------------------------------ */
/* The peer                                                             */
/* ------------------------------------------------------------------ */

enum op {
	OP_SEM_COUNT,   /* count = val, wake */
	OP_SEM_MAGIC,   /* magic = val, then a token appears (count = 1), wake */
	OP_SEM_FLAGS,   /* flags = val, then count = 1, wake */
	OP_SEM_INIT,    /* evq_sem_init(val tokens, EVQ_SHARED): repaired */
	OP_LATCH_MAGIC, /* magic = val, then the state says "set", wake */
	OP_LATCH_FLAGS, /* flags = val, then set, wake */
	OP_LATCH_INIT,  /* evq_latch_init(EVQ_SHARED): repaired */
	OP_LATCH_SET,   /* evq_latch_set() */
	OP_LATCH_FLIP,  /* val times: state = a random unset value, wake */
	OP_QUIT,
};
#define OP_WHEN_WAITING 0x100 /* first wait (bounded) for waiters > 0 */

struct cmd {
	int op, idx;
	uint32_t val;
};

#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define LD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)

static void wait_for_waiter(const uint32_t *waiters)
{
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (LD(waiters) == 0 && evqt_now(CLOCK_MONOTONIC) < end)
		evqt_sleep_ns(EVQT_MS / 2);
}

static void peer_do(struct shm *m, const struct cmd *c)
{
	struct evq_sem *s = &m->sem[c->idx];
	struct evq_latch *l = &m->latch[c->idx];
	uint32_t v;
	switch (c->op & ~OP_WHEN_WAITING) {
	case OP_SEM_COUNT:
		if (c->op & OP_WHEN_WAITING)
			wait_for_waiter(&s->waiters);
		ST(&s->count, c->val);
		evq_wake(&s->count, INT_MAX, EVQ_SHARED);
		break;
	case OP_SEM_MAGIC:
	case OP_SEM_FLAGS:
		if (c->op & OP_WHEN_WAITING)
			wait_for_waiter(&s->waiters);
		/* the garbage first: whoever sees the token sees it too */
		ST((c->op & ~OP_WHEN_WAITING) == OP_SEM_MAGIC ? &s->magic : &s->flags,
		   c->val);
		ST(&s->count, 1u);
		evq_wake(&s->count, INT_MAX, EVQ_SHARED);
		break;
	case OP_SEM_INIT:
		evq_sem_init(s, c->val, EVQ_SHARED);
		break;
	case OP_LATCH_MAGIC:
	case OP_LATCH_FLAGS:
		if (c->op & OP_WHEN_WAITING)
			wait_for_waiter(&l->waiters);
		ST((c->op & ~OP_WHEN_WAITING) == OP_LATCH_MAGIC ? &l->magic : &l->flags,
		   c->val);
		v = LD(&l->state);
		ST(&l->state, (v + 2) | 1u);
		evq_wake(&l->state, INT_MAX, EVQ_SHARED);
		break;
	case OP_LATCH_INIT:
		evq_latch_init(l, EVQ_SHARED);
		break;
	case OP_LATCH_SET:
		evq_latch_set(l);
		break;
	case OP_LATCH_FLIP:
		if (c->op & OP_WHEN_WAITING)
			wait_for_waiter(&l->waiters);
		v = 0x2468ace0u;
		for (uint32_t i = 0; i < c->val; i++) {
			v = v * 1103515245u + 12345u;
			ST(&l->state, v & ~1u); /* any value, never "set" */
			evq_wake(&l->state, INT_MAX, EVQ_SHARED);
			evqt_sleep_ns(EVQT_MS);
		}
		break;
	}
}

static void peer_main(int in, int out)
{
	/* map the page again, elsewhere, and drop the inherited mapping */
	struct shm *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED,
			     memfd, 0);
	if (m == MAP_FAILED)
		_exit(2);
	munmap(sh, sizeof *sh);
	struct cmd c;
	while (read(in, &c, sizeof c) == (ssize_t)sizeof c && c.op != OP_QUIT) {
		peer_do(m, &c);
		char a = 'k';
		if (write(out, &a, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static void peer_start(void)
{
	int cmd[2], ack[2];
	CHECK(pipe(cmd) == 0 && pipe(ack) == 0);
	peer_pid = fork();
	CHECK(peer_pid >= 0);
	if (peer_pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		peer_main(cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	cmd_fd = cmd[1];
	ack_fd = ack[0];
}

static void peer_send(int op, int idx, uint32_t val)
{
	struct cmd c = { op, idx, val };
	CHECK(write(cmd_fd, &c, sizeof c) == (ssize_t)sizeof c);
}

static void peer_ack(void)
{
	char a;
	CHECK(read(ack_fd, &a, 1) == 1); /* 0: the peer died */
}

static void peer(int op, int idx, uint32_t val)
{
	peer_send(op, idx, val);
	peer_ack();
}

static void peer_stop(void)
{
	peer_send(OP_QUIT, 0, 0);
	int st;
	CHECK(waitpid(peer_pid, &st, 0) == peer_pid);
	is(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), 0, "the peer process exited 0");
	close(cmd_fd);
	close(ack_fd);
}

/* ------------------------------------------------------------------ */
/* Checks                                                               */
/* ------------------------------------------------------------------ */

static int64_t cpu_ns(void)
{
	return evqt_now(CLOCK_PROCESS_CPUTIME_ID);
}

/* A wait with a timeout and nothing to deliver: it returns 0 after the
 * timeout, and the process (the queue's helper thread included) burns
 * little CPU meanwhile.  Idle is ~0% whatever else runs on the machine; a
 * spin is ~100% of a CPU on a quiet machine, but only its share on a busy
 * one (30-45% measured with a load of 17 on 2 CPUs), hence 10%. */
static void quiet_window(struct evq *q, const char *what)
{
	struct evq_event ev[NEV];
	int64_t c0 = cpu_ns(), t0 = evqt_now(CLOCK_MONOTONIC);
	int n = evqt_wait(q, ev, NEV, WINDOW);
	int64_t el = evqt_now(CLOCK_MONOTONIC) - t0, cpu = cpu_ns() - c0;
	if (!ok(n == 0, "%s: nothing more is delivered (one event per episode)", what))
		diag("got %d: cookie %llu events %#x data %llu", n,
		     n > 0 ? (unsigned long long)ev[0].cookie : 0ull, n > 0 ? ev[0].events : 0,
		     n > 0 ? (unsigned long long)ev[0].data : 0ull);
	ok(n != 0 || el >= WINDOW, "%s: the wait's timeout holds (%lld ms)", what,
	   (long long)(el / EVQT_MS));
	ok(cpu * 10 < el, "%s: no spin: %.1f%% of a CPU over the %lld ms wait", what,
	   100.0 * (double)cpu / (double)el, (long long)(el / EVQT_MS));
}

/* Collects events until want of them came (or EVQT_SOON passed).  Returns
 * the number collected (at most NEV; more is counted, not stored). */
static int collect(struct evq *q, struct evq_event *out, int want)
{
	int got = 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (got < want) {
		int64_t left = end - evqt_now(CLOCK_MONOTONIC);
		if (left <= 0)
			break;
		struct evq_event ev[NEV];
		int n = evqt_wait(q, ev, NEV, left);
		if (n < 0) {
			diag("evq_wait: %d", n);
			break;
		}
		for (int i = 0; i < n; i++, got++)
			if (got < NEV)
				out[got] = ev[i];
	}
	return got;
}

/* Exactly the n EVQ_ERR events of ids[0..n): one each, data 0. */
static void expect_errors(struct evq *q, const int64_t *ids, int n, int kind,
			  const char *what)
{
	struct evq_event ev[NEV];
	int got = collect(q, ev, n), good = got == n;
	for (int i = 0; i < n && good; i++) {
		int seen = 0;
		for (int k = 0; k < got; k++)
			if (ev[k].id == ids[i])
				seen++;
		good = seen == 1;
	}
	for (int k = 0; k < got && k < NEV && good; k++)
		good = ev[k].kind == kind && ev[k].events == EVQ_ERR &&
		       ev[k].data == 0 && ev[k].ident == -1 &&
		       ev[k].cookie >= C_VICTIM && ev[k].cookie < C_VICTIM + 8;
	if (!ok(good, "%s: %d EVQ_ERR event%s, one per registration, data 0", what,
		n, n == 1 ? "" : "s"))
		for (int k = 0; k < got && k < NEV; k++)
			diag("event: id %" PRId64 " kind %u cookie %llu events %#x data %llu", ev[k].id,
			     ev[k].kind, (unsigned long long)ev[k].cookie, ev[k].events,
			     (unsigned long long)ev[k].data);
}

struct healthy {
	int64_t sem, latch, word;
	uint32_t value;
};

static void add_healthy(struct evq *q, struct healthy *h)
{
	CHECK(evq_sem_init(&sh->sem[4], 0, EVQ_SHARED) == 0);
	CHECK(evq_latch_init(&sh->latch[4], EVQ_SHARED) == 0);
	ST(&sh->word[0], 0u);
	h->value = 0;
	CHECK((h->sem = evq_add_sem(q, &sh->sem[4], 0, C_SEM_OK)) >= 0);
	CHECK((h->latch = evq_add_latch(q, &sh->latch[4], 0, C_LATCH_OK)) >= 0);
	CHECK((h->word = evq_add_word(q, &sh->word[0], 0, EVQ_SHARED, C_WORD_OK)) >= 0);
}

/* A token, a set and a change: each delivered once, as usual. */
static void healthy_check(struct evq *q, struct healthy *h, const char *what)
{
	CHECK(evq_sem_post(&sh->sem[4], 1) == 0);
	CHECK(evq_latch_set(&sh->latch[4]) == 0);
	ST(&sh->word[0], ++h->value);
	evq_wake(&sh->word[0], INT_MAX, EVQ_SHARED);
	struct evq_event ev[NEV];
	int got = collect(q, ev, 3), s = 0, l = 0, w = 0, other = 0;
	for (int k = 0; k < got && k < NEV; k++) {
		if (ev[k].cookie == C_SEM_OK && ev[k].events == 0 && ev[k].data == 1)
			s++;
		else if (ev[k].cookie == C_LATCH_OK && ev[k].events == 0 && ev[k].data == 1)
			l++;
		else if (ev[k].cookie == C_WORD_OK && ev[k].events == 0 &&
			 ev[k].data == h->value)
			w++;
		else
			other++;
	}
	ok(got == 3 && s == 1 && l == 1 && w == 1 && other == 0,
	   "%s: a healthy semaphore, latch and word on the same queue still deliver "
	   "(got %d: sem %d latch %d word %d other %d)", what, got, s, l, w, other);
	evq_latch_reset(&sh->latch[4]);
}

/* ------------------------------------------------------------------ */
/* 1. Semaphores through a queue                                        */
/* ------------------------------------------------------------------ */

static void test_sem_queue(void)
{
	static const struct {
		int op;
		uint32_t val;
		const char *what;
	} g[4] = {
		{ OP_SEM_COUNT, EVQ_SEM_MAX + 1u, "count > EVQ_SEM_MAX" },
		{ OP_SEM_MAGIC, 0xdeadbeefu, "bad magic" },
		{ OP_SEM_FLAGS, 0x1234u, "unknown flag" },
		{ OP_SEM_FLAGS, 0, "EVQ_SHARED flipped off" },
	};
	struct evq *q = evqt_new();
	struct healthy h;
	add_healthy(q, &h);
	int64_t id[4];
	for (int i = 0; i < 4; i++) {
		CHECK(evq_sem_init(&sh->sem[i], 0, EVQ_SHARED) == 0);
		CHECK((id[i] = evq_add_sem(q, &sh->sem[i], 0, C_VICTIM + (uint64_t)i)) >= 0);
	}
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 0), 0, "sem: nothing pending before the peer writes");
	for (int i = 0; i < 4; i++)
		peer(g[i].op, i, g[i].val);
	expect_errors(q, id, 4, EVQ_KIND_SEM,
		      "sem: count > max, bad magic, unknown flag, EVQ_SHARED flipped, while the "
		      "watcher sleeps");
	quiet_window(q, "sem garbage");
	healthy_check(q, &h, "sem garbage");

	/* what the direct calls say about the same memory */
	for (int i = 0; i < 3; i++) {
		struct evq_sem *s = &sh->sem[i];
		ok(evq_sem_trywait(s) == -EINVAL && evq_sem_post(s, 1) == -EINVAL &&
		   evq_sem_value(s) == -EINVAL && evq_sem_wait(s, -1) == -EINVAL,
		   "sem %s: trywait, post, value, wait(forever) -> -EINVAL", g[i].what);
	}

	/* evq_mod() looks again: still garbage, one more EVQ_ERR, not a loop */
	for (int i = 0; i < 4; i++)
		is(evq_mod(q, id[i], 0, 0), 0, "sem %s: evq_mod() enables it again", g[i].what);
	expect_errors(q, id, 4, EVQ_KIND_SEM, "sem: enabled while still garbage");
	quiet_window(q, "sem still garbage");

	/* repaired by the peer, enabled: tokens again */
	for (int i = 0; i < 4; i++) {
		peer(OP_SEM_INIT, i, 1);
		CHECK(evq_mod(q, id[i], 0, 0) == 0);
	}
	int got = collect(q, ev, 4), good = got == 4;
	for (int k = 0; k < got && k < NEV; k++)
		good = good && ev[k].events == 0 && ev[k].data == 1 &&
		       ev[k].cookie >= C_VICTIM && ev[k].cookie < C_VICTIM + 4;
	ok(good, "sem: repaired and enabled, each registration takes a token again (%d)", got);
	healthy_check(q, &h, "sem repaired");
	evq_free(q);
}

/* A semaphore whose count is garbage cannot be registered at all. */
static void test_sem_add(void)
{
	struct evq *q = evqt_new();
	CHECK(evq_sem_init(&sh->sem[6], 0, EVQ_SHARED) == 0);
	ST(&sh->sem[6].count, 0xffffffffu);
	is(evq_add_sem(q, &sh->sem[6], 0, 1), -EINVAL, "sem: add with a count > EVQ_SEM_MAX -> -EINVAL");
	evq_free(q);
}

/* ------------------------------------------------------------------ */
/* 2. Latches through a queue                                           */
/* ------------------------------------------------------------------ */

static void test_latch_queue(void)
{
	static const struct {
		int op;
		uint32_t val;
		const char *what;
	} g[3] = {
		{ OP_LATCH_MAGIC, 0xdeadbeefu, "bad magic" },
		{ OP_LATCH_FLAGS, 0x1234u, "unknown flag" },
		{ OP_LATCH_FLAGS, 0, "EVQ_SHARED flipped off" },
	};
	struct evq *q = evqt_new();
	struct healthy h;
	add_healthy(q, &h);
	int64_t id[3];
	for (int i = 0; i < 3; i++) {
		CHECK(evq_latch_init(&sh->latch[i], EVQ_SHARED) == 0);
		CHECK((id[i] = evq_add_latch(q, &sh->latch[i], 0, C_VICTIM + (uint64_t)i)) >= 0);
	}
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 0), 0, "latch: nothing pending before the peer writes");
	for (int i = 0; i < 3; i++)
		peer(g[i].op, i, g[i].val);
	expect_errors(q, id, 3, EVQ_KIND_LATCH,
		      "latch: bad magic, unknown flag, EVQ_SHARED flipped, then set, while the "
		      "queue waits");
	quiet_window(q, "latch garbage");
	healthy_check(q, &h, "latch garbage");
	for (int i = 0; i < 2; i++) {
		struct evq_latch *l = &sh->latch[i];
		ok(evq_latch_set(l) == -EINVAL && evq_latch_reset(l) == -EINVAL &&
		   evq_latch_is_set(l) == -EINVAL && evq_latch_wait(l, -1) == -EINVAL,
		   "latch %s: set, reset, is_set, wait(forever) -> -EINVAL", g[i].what);
	}

	for (int i = 0; i < 3; i++)
		is(evq_mod(q, id[i], 0, 0), 0, "latch %s: evq_mod() enables it again", g[i].what);
	expect_errors(q, id, 3, EVQ_KIND_LATCH, "latch: enabled while still garbage");
	quiet_window(q, "latch still garbage");

	for (int i = 0; i < 3; i++) {
		peer(OP_LATCH_INIT, i, 0);
		CHECK(evq_mod(q, id[i], 0, 0) == 0);
	}
	is(evqt_wait(q, ev, NEV, 0), 0, "latch: repaired and enabled, not set: no event");
	for (int i = 0; i < 3; i++)
		peer(OP_LATCH_SET, i, 0);
	int got = collect(q, ev, 3), good = got == 3;
	for (int k = 0; k < got && k < NEV; k++)
		good = good && ev[k].events == 0 && ev[k].data == 1 &&
		       ev[k].cookie >= C_VICTIM && ev[k].cookie < C_VICTIM + 3;
	ok(good, "latch: repaired and enabled, a set fires each registration again (%d)", got);
	healthy_check(q, &h, "latch repaired");
	evq_free(q);
}

/* ------------------------------------------------------------------ */
/* 3. Garbage while a direct call sleeps                                */
/* ------------------------------------------------------------------ */

static void test_direct(void)
{
	struct evq_sem *s = &sh->sem[5];
	struct evq_latch *l = &sh->latch[5];
	static const struct {
		int op;
		uint32_t val;
		const char *what;
	} gs[] = {
		{ OP_SEM_COUNT, 0xffffffffu, "count > EVQ_SEM_MAX" },
		{ OP_SEM_MAGIC, 0xdeadbeefu, "bad magic (and a token)" },
		{ OP_SEM_FLAGS, 0x1234u, "unknown flag (and a token)" },
		{ OP_SEM_FLAGS, 0, "EVQ_SHARED flipped off (and a token)" },
	};
	for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
		CHECK(evq_sem_init(s, 0, EVQ_SHARED) == 0);
		peer_send(gs[i].op | OP_WHEN_WAITING, 5, gs[i].val);
		int64_t t0 = evqt_now(CLOCK_MONOTONIC);
		int rc = evq_sem_wait(s, EVQT_SOON);
		int64_t el = evqt_now(CLOCK_MONOTONIC) - t0;
		peer_ack();
		ok(rc == -EINVAL && el < EVQT_SOON,
		   "evq_sem_wait: %s written while it sleeps -> -EINVAL at once (%d, %lld ms)",
		   gs[i].what, rc, (long long)(el / EVQT_MS));
	}
	static const struct {
		int op;
		uint32_t val;
		const char *what;
	} gl[] = {
		{ OP_LATCH_MAGIC, 0xdeadbeefu, "bad magic (and set)" },
		{ OP_LATCH_FLAGS, 0x1234u, "unknown flag (and set)" },
		{ OP_LATCH_FLAGS, 0, "EVQ_SHARED flipped off (and set)" },
	};
	for (size_t i = 0; i < sizeof gl / sizeof gl[0]; i++) {
		CHECK(evq_latch_init(l, EVQ_SHARED) == 0);
		peer_send(gl[i].op | OP_WHEN_WAITING, 5, gl[i].val);
		int64_t t0 = evqt_now(CLOCK_MONOTONIC);
		int rc = evq_latch_wait(l, EVQT_SOON);
		int64_t el = evqt_now(CLOCK_MONOTONIC) - t0;
		peer_ack();
		ok(rc == -EINVAL && el < EVQT_SOON,
		   "evq_latch_wait: %s written while it sleeps -> -EINVAL at once (%d, %lld ms)",
		   gl[i].what, rc, (long long)(el / EVQT_MS));
	}
}

/* ------------------------------------------------------------------ */
/* 4. A latch's state flipped at random                                 */
/* ------------------------------------------------------------------ */

static void test_flip(void)
{
	struct evq_latch *l = &sh->latch[6];
	CHECK(evq_latch_init(l, EVQ_SHARED) == 0);

	/* a direct wait: its timeout holds while the word keeps changing */
	peer_send(OP_LATCH_FLIP | OP_WHEN_WAITING, 6, 50);
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	int rc = evq_latch_wait(l, WINDOW);
	int64_t el = evqt_now(CLOCK_MONOTONIC) - t0;
	peer_ack();
	ok(rc == -ETIMEDOUT && el >= WINDOW && el < EVQT_SOON,
	   "evq_latch_wait: state flipped (never set) while it sleeps -> -ETIMEDOUT after "
	   "its timeout (%d, %lld ms)", rc, (long long)(el / EVQT_MS));

	/* a queue: no event, no spin, and it still sees the next set */
	struct evq *q = evqt_new();
	int64_t id = evq_add_latch(q, l, 0, C_VICTIM);
	CHECK(id >= 0);
	peer_send(OP_LATCH_FLIP, 6, 100);
	quiet_window(q, "latch state flipped at random under a queue");
	peer_ack();
	peer(OP_LATCH_SET, 6, 0);
	struct evq_event ev[NEV];
	int n = collect(q, ev, 1);
	ok(n == 1 && ev[0].id == id && ev[0].events == 0 && ev[0].data == 1,
	   "latch: after the flips, a set fires the registration (n=%d)", n);
	evq_free(q);
}

/* ------------------------------------------------------------------ */
/* 5. A word unmapped while registered (in this process)                */
/* ------------------------------------------------------------------ */

/* io_uring with the inline sleep off: each word waits in the ring. */
static int ring_words(struct evq *q)
{
	const char *e = getenv("EVQ_URING_INLINE");
	return strcmp(evq_backend_name(q), "uring") == 0 && e && strcmp(e, "0") == 0;
}

static uint32_t *new_page(void)
{
	uint32_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	ST(p, 0u);
	return p;
}

/* Takes the page away.  munmap() would leave a hole that the next mmap()
 * of any thread may fill (ASan's allocator does, under load), and the word
 * would then be readable again; PROT_NONE keeps the address taken, and to
 * the kernel's futex code (and to a load) it is the same: EFAULT. */
static void take_away(uint32_t *p)
{
	CHECK(mprotect(p, 4096, PROT_NONE) == 0);
}

/* The caller unmaps a registered word and re-arms it with evq_mod_word():
 * every backend asks the kernel before it loads the word. */
static void test_unmap_rearm(void)
{
	struct evq *q = evqt_new();
	struct healthy h;
	add_healthy(q, &h);
	uint32_t *w = new_page();
	int64_t id = evq_add_word(q, w, 0, 0, C_VICTIM);
	CHECK(id >= 0);
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 20 * EVQT_MS), 0, "unmapped word: nothing before the unmap");
	take_away(w);
	is(evq_mod_word(q, id, 0, 0), 0, "unmapped word: evq_mod_word() re-arms it");
	expect_errors(q, &id, 1, EVQ_KIND_WORD, "unmapped word, re-armed");
	quiet_window(q, "unmapped word");
	healthy_check(q, &h, "unmapped word");
	is(evq_mod(q, id, 0, 0), 0, "unmapped word: evq_mod() re-arms it again");
	expect_errors(q, &id, 1, EVQ_KIND_WORD, "unmapped word, re-armed again");
	quiet_window(q, "unmapped word, again");
	is(evq_del(q, id), 0, "unmapped word: evq_del() -> 0");
	healthy_check(q, &h, "unmapped word deleted");
	evq_free(q);
	munmap(w, 4096);
}

struct sleeper {
	struct evq *q;
	int n;
	struct evq_event ev[NEV];
};

static void *sleeper_main(void *arg)
{
	struct sleeper *sl = arg;
	sl->n = collect(sl->q, sl->ev, 1);
	return NULL;
}

/* The caller takes a registered word's page away, then wakes the word;
 * with asleep, another thread sleeps in evq_wait() meanwhile (on io_uring
 * that thread sleeps on the word itself).  Returns 1 if the queue reported
 * it: one EVQ_ERR event, data 0. */
static int unmap_wake(int asleep, int quiet)
{
	struct sleeper sl = { .q = evqt_new() };
	uint32_t *w = new_page();
	int64_t id = evq_add_word(sl.q, w, 0, 0, C_VICTIM);
	CHECK(id >= 0);
	/* let the backend (or the sleeper) sleep on the word: whether it
	 * does yet or not, the result must be the same */
	pthread_t t;
	if (asleep) {
		CHECK(pthread_create(&t, NULL, sleeper_main, &sl) == 0);
		evqt_sleep_ns(20 * EVQT_MS);
	} else {
		evqt_wait(sl.q, sl.ev, NEV, 20 * EVQT_MS);
	}
	take_away(w);
	evq_wake(w, 1, 0); /* a private wake needs no memory */
	if (asleep)
		pthread_join(t, NULL);
	else
		sl.n = collect(sl.q, sl.ev, 1);
	int good = sl.n == 1 && sl.ev[0].id == id && sl.ev[0].events == EVQ_ERR &&
		   sl.ev[0].data == 0;
	if (quiet)
		quiet_window(sl.q, asleep ? "unmapped word, woken, a thread asleep"
					  : "unmapped word, woken");
	evq_free(sl.q);
	munmap(w, 4096);
	return good;
}

/* Known crashes, outside what this change touched: run in a child and
 * reported as TODO, so they show (and turn into "TODO passed" once
 * fixed). */
static void todo_in_child(int asleep, const char *name, const char *why)
{
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* no sanitizer report: it is known */
		_exit(unmap_wake(asleep, 0) ? 0 : 1);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	int good = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	int k = atomic_fetch_add(&tap_n, 1) + 1;
	printf("%sok %d - %s (%s) # TODO %s\n", good ? "" : "not ", k, name,
	       WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : good ? "reported" : "not reported",
	       why);
	fflush(stdout);
}

static void test_unmap_wake(void)
{
	struct evq *q = evqt_new();
	int uring = strcmp(evq_backend_name(q), "uring") == 0, ring = ring_words(q);
	evq_free(q);
	if (!ring)
		ok(unmap_wake(0, 1), "unmapped word, woken: one EVQ_ERR event, data 0");
	else
		todo_in_child(0, "unmapped word, woken, in the ring: one EVQ_ERR event",
			      "io_uring loads a word its FUTEX_WAIT completion names "
			      "(process_words) without asking the kernel");
	if (!uring)
		ok(unmap_wake(1, 1), "unmapped word, woken while a thread sleeps in evq_wait: "
		   "one EVQ_ERR event, data 0");
	else if (EVQT_TSAN)
		skip(1, "ThreadSanitizer: no threads in a child of a multi-threaded fork");
	else
		todo_in_child(1, "unmapped word, woken while a thread sleeps on it in "
			      "evq_wait: one EVQ_ERR event",
			      ring ? "process_words loads it (as above)"
				   : "the inline sleep (I3) loads every word after a wake");
}

/* ------------------------------------------------------------------ */
/* 6. A shared file truncated under a semaphore registration            */
/* ------------------------------------------------------------------ */

static void test_truncate(void)
{
	int fd = memfd_create("evq-hostile-trunc", 0);
	CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
	struct evq_sem *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(s != MAP_FAILED);
	CHECK(evq_sem_init(s, 0, EVQ_SHARED) == 0);
	struct evq *q = evqt_new();
	int64_t id = evq_add_sem(q, s, 0, C_VICTIM);
	CHECK(id >= 0);
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 20 * EVQT_MS), 0, "truncated: nothing before");
	/* any load of s would now raise SIGBUS (the documented limit); the
	 * registration must learn it from the kernel: another semaphore
	 * registration (semaphores share the helper thread on every
	 * backend) has the thread look at its words again */
	CHECK(ftruncate(fd, 0) == 0);
	static struct evq_sem other;
	CHECK(evq_sem_init(&other, 0, 0) == 0);
	int64_t oid = evq_add_sem(q, &other, 0, 7);
	CHECK(oid >= 0);
	expect_errors(q, &id, 1, EVQ_KIND_SEM, "shared file truncated under a semaphore");
	quiet_window(q, "truncated semaphore");
	is(evq_del(q, id), 0, "truncated semaphore: evq_del() -> 0, no SIGBUS");
	CHECK(evq_sem_post(&other, 1) == 0);
	int n = collect(q, ev, 1);
	ok(n == 1 && ev[0].id == oid && ev[0].events == 0 && ev[0].data == 1,
	   "truncated: the queue's other semaphore still delivers");
	evq_free(q);
	munmap(s, 4096);
	close(fd);
}

int main(void)
{
	evqt_watchdog(120);
	if (!evqt_have_futex_waitv())
		skip_all(EVQT_NO_WAITV); /* semaphores need the watcher thread */
	evqt_banner("hostile memory");
	memfd = memfd_create("evq-hostile", 0);
	CHECK(memfd >= 0 && ftruncate(memfd, sizeof *sh) == 0);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	CHECK(sh != MAP_FAILED);
	peer_start(); /* before any queue: the child never has threads */

	test_sem_queue();
	test_sem_add();
	test_latch_queue();
	test_direct();
	test_flip();
	peer_stop();
	test_unmap_rearm();
	test_unmap_wake();
	test_truncate();
	return done();
}
