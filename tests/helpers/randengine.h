/* SPDX-License-Identifier: MIT */
/*
 * randengine.h - the engine of the differential random test: it reads a
 * byte string as a sequence of operations on one queue, performs each on
 * the library and on a small reference model, and checks every result and
 * every event evq_wait() returns against the model.  tests/random.c feeds
 * it bytes from a seeded PRNG (make check); fuzz/fuzz_evq.c feeds it
 * libFuzzer's inputs (make fuzz).  Header-only, libc and evq.h only.
 *
 *   rnd_setup()            once per process: shared memory, the requeue probe
 *   rnd_run(e, bytes, n)   one sequence on a fresh queue: 0, or -1 with
 *                          e->msg (the first violation) and e->trace (the
 *                          last operations) filled in
 *
 * Operations (one byte picks one, weighted; the next bytes are its
 * arguments; the sequence ends with the bytes): add user/timer/fd (pipes,
 * a socketpair, eventfds; level, edge, oneshot, disabled)/word/latch/sem/
 * mask; evq_mod, evq_mod_timer, evq_mod_word, evq_del; evq_trigger (also on
 * other kinds: -ENOENT); stale ids on every call (-ENOENT); fd writes and
 * reads; word stores and evq_wake; latch set/set_many/reset; sem post and
 * trywait; bcast notify; evq_requeue; evq_wait (max 1..8, timeout 0 or
 * up to 1 ms); a few bad arguments (specific errors, queue still usable).
 *
 * What the model checks, for every event (safety):
 *   - the id is live (nothing after evq_del() returned), cookie, kind,
 *     ident and flags are the registration's, at most one record per
 *     registration per evq_wait() call, nothing while disabled, one event
 *     per arming of a oneshot registration (plus what was requeued);
 *   - user: data == triggers since the last delivery (exact coalescing,
 *     also across disable/enable); mask: data == OR of the bits notified;
 *   - timer: the expirations delivered since it was armed lie between
 *     those due at the wait's start (latest deadline the add allows) and
 *     at its end (earliest one): never early, none dropped;
 *   - fd: only bits asked for (never ERR/HUP: nothing is closed); READ
 *     only while there is something to read (single-threaded, so no
 *     EPOLL_WAIT of io_uring outlives the wait that took it: both backends
 *     report what epoll sees at that wait); WRITE only on a writable end;
 *     an edge READ-only registration needs a write, read, add or mod since
 *     its last READ event; a requeued record comes back with what was
 *     given back, perhaps merged with a newer kernel report;
 *   - word (every store is a new, larger value): data was held by the
 *     word since the registration and is newer than the value delivered
 *     before, except that an arm expecting another value than the word
 *     holds may report that value once more; latch: no more events than
 *     sets-after-reset (and arms while set), data 1; sem:
 *     tokens conserved at every step: count + held by the test + requeued
 *     + at most one per registration == total, exact when a sem has no
 *     registration;
 *   - when evq_wait() returns fewer than max events, every registration the
 *     library could deliver without the kernel (triggered user, notified
 *     mask, expired timer, requeued record) is among them; when it returns
 *     none, no fd is ready in a way epoll must report.  (How many calls a
 *     source may wait behind others - fairness - is tests/fairness.c's.)
 * Half the sequences (bit 2 of the first byte) run a helper thread that
 * keeps triggering up to 4 "hot" user registrations while the main thread
 * adds, mods, deletes, requeues and waits: their events may not carry more
 * than the triggers started so far, a trigger on a registration that stays
 * registered throughout never fails, and once the helper stops, the
 * triggers that succeeded are exactly those delivered (none lost, none
 * duplicated, none after evq_del).
 * And at the end of each sequence (liveness, asynchronous sources): a
 * drain waits (up to 10 s) until everything owed arrived - ready fds, due
 * timers, user and mask occurrences, requeued records, the current value of
 * each woken word, an event after each latch set, every token of a watched
 * semaphore - then deletes every registration (sems then hold exactly
 * total - held) and checks that the queue is silent.
 *
 * Requeue rule (evq_requeue(3)): a record of this thread's most recent
 * evq_wait() on q that returned events, unchanged, not given back yet, or
 * -EINVAL (-ENOENT for a deleted registration): records of older batches,
 * given back twice or altered are offered and must be refused.  With
 * RND_REQUEUE_STRICT 0 (a library from before that rule, which accepted
 * them) only valid requeues are made; -1 probes the library once (a record
 * given back twice) and picks.  $EVQ_RANDOM_REQUEUE=strict|loose|auto
 * overrides the default, 1.
 */
#ifndef EVQ_RANDENGINE_H
#define EVQ_RANDENGINE_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"

#ifndef RND_REQUEUE_STRICT
#define RND_REQUEUE_STRICT 1
#endif
/* 1: a wait returning fewer than max events must include every
 * registration the library holds deliverable (see above). */
#ifndef RND_STRICT_WAIT
#define RND_STRICT_WAIT 1
#endif

#define RND_MAXREG 40
#define RND_NFD 8
#define RND_NWORD 3
#define RND_NLATCH 2
#define RND_NSEM 2
#define RND_NBCAST 2
#define RND_NDEAD 16
#define RND_NOLD 8
#define RND_NTRACE 1024
#define RND_MAXEV 8
#define RND_NHOT 4
#define RND_HOT_NONE UINT64_MAX
#define RND_HOT_LIVE (1ull << 31)
#define RND_SEC 1000000000LL
#define RND_DRAIN_NS (10 * RND_SEC)

enum rnd_fdtype { RFD_PIPE_R, RFD_PIPE_W, RFD_SOCK, RFD_EVENTFD };

struct rnd_fd {
	int fd;
	int type;
	int peer;        /* pipe: the other end; socket: the other end */
	uint64_t level;  /* bytes to read (pipe read end, socket), counter */
	int unread;      /* socket: writes into it not wholly read yet */
	int reg;         /* model registration on it, -1 none */
};

struct rnd_reg {
	int live, kind, obj;
	int64_t id;
	uint64_t cookie;
	uint32_t flags;   /* the public flags the library holds */
	int spent;        /* oneshot delivered: silent until evq_mod */
	int rq;           /* a requeued record is merged in, undelivered */
	int rq_spent;     /* ... given back while spent: deliverable anyway */
	uint64_t acc;     /* user: triggers, mask: bits, since last delivery */
	uint64_t mask;    /* mask */
	/* timer: deadline between dmin and dmax (the add's clock readings),
	 * got = expirations delivered since armed, minus those requeued */
	int clock;
	int64_t dmin, dmax, interval, got;
	/* fd */
	uint32_t events, rq_events;
	int credit;       /* write/read/add/mod since the last READ (edge) */
	int due_rd, due_wr; /* edge: an event is queued in the kernel */
	/* word: the value the last arm expected; the library's last value
	 * seen (as far as the model knows); the least value a new event may
	 * carry; the greatest delivered since the last arm; evq_mod_word()'s
	 * value for the next arm; values arms may report once more */
	uint32_t arm_exp, wseen, lo, since_arm, next_exp, rq_val;
	uint32_t again[8];
	int nagain, has_next, checked, rq_word;
	/* latch */
	int64_t credits, delivered;
	uint64_t credit_op, deliv_op;
	/* sem: tokens given back by requeue, not delivered again yet; latch:
	 * data given back */
	int64_t rq_tokens;
	/* hot user (slot + 1, 0: not hot): triggered by the helper thread;
	 * triggers it delivered, minus those requeued */
	int hot;
	int64_t hot_got;
	/* drain */
	int owe, owe_rd, owe_wr, owe_val;
};

struct rnd_stats {
	uint64_t seqs, ops, waits, events, requeues, drain_waits, adds, dels;
	int64_t drain_ns, drain_max_ns;
	uint64_t hot_seqs, hot_tries;   /* sequences with the helper, its triggers */
};

struct rnd {
	/* input */
	const uint8_t *in;
	size_t len, pos;
	/* configuration (rnd_setup) */
	int strict_rq;
	int no_words;        /* no futex_waitv: words, latches, sems skipped */
	/* the queue and the model */
	struct evq *q;
	int batch;           /* the queue's max_batch (0: default) */
	struct rnd_reg reg[RND_MAXREG];
	struct rnd_fd fd[RND_NFD];
	uint32_t *word[RND_NWORD];
	uint32_t word_cur[RND_NWORD];
	int word_shared[RND_NWORD];
	struct evq_latch *latch[RND_NLATCH];
	int latch_set[RND_NLATCH];
	struct evq_sem *sem[RND_NSEM];
	int64_t sem_total[RND_NSEM], sem_held[RND_NSEM];
	struct evq_bcast bcast[RND_NBCAST];
	uint32_t ctr;        /* word values: unique, increasing */
	int64_t dead[RND_NDEAD];
	int ndead, dead_pos;
	/* records of the most recent evq_wait(), and older ones */
	struct evq_event last[RND_MAXEV];
	int nlast;
	uint8_t given[RND_MAXEV];
	struct evq_event old[RND_NOLD];
	int nold, old_pos;
	uint64_t serial, opno, wait_op;
	/* hot users: a helper thread triggers them while the sequence runs.
	 * hot[s] = tag << 32 | RND_HOT_LIVE while registered | successful
	 * triggers, where tag is hot_seq[s] when the registration hot_id[s]
	 * took the slot (ids are 64 bits: they do not fit beside the count);
	 * tries[s] counts triggers started (bounds deliveries while the helper
	 * runs); hot_bad: a result the helper found wrong */
	int hot_on;
	pthread_t hot_thread;
	_Atomic uint64_t hot[RND_NHOT];
	_Atomic int64_t hot_id[RND_NHOT];
	_Atomic uint64_t hot_tries[RND_NHOT];
	_Atomic uint32_t hot_seq[RND_NHOT]; /* bumped when s gets a new owner */
	_Atomic int hot_stop, hot_bad;
	_Atomic int64_t hot_bad_id;
	int hot_owner[RND_NHOT];   /* model registration, -1 none */
	int in_drain;
	int drain_n;         /* waits of this drain */
	/* results */
	struct rnd_stats st;
	int failed;
	char msg[1024];
	char trace[RND_NTRACE][128];
	unsigned ntrace;
};

/* 1: evq_wait() may return -EINTR (libFuzzer's timeout alarm is a signal
 * with a handler); it then counts as a call that returned nothing */
static int rnd_eintr_ok;

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static int64_t rnd_now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * RND_SEC + ts.tv_nsec;
}

static unsigned rnd_byte(struct rnd *e)
{
	return e->pos < e->len ? e->in[e->pos++] : 0;
}

static void rnd_trace(struct rnd *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void rnd_trace(struct rnd *e, const char *fmt, ...)
{
	char *t = e->trace[e->ntrace++ % RND_NTRACE];
	int k = snprintf(t, 128, "%6llu ", (unsigned long long)e->opno);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t + k, (size_t)(128 - k), fmt, ap);
	va_end(ap);
}

static void rnd_fail(struct rnd *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void rnd_fail(struct rnd *e, const char *fmt, ...)
{
	if (e->failed)
		return;
	e->failed = 1;
	int k = snprintf(e->msg, sizeof e->msg, "op %llu%s (max_batch %d): ",
			 (unsigned long long)e->opno, e->in_drain ? " (drain)" : "",
			 e->batch);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg + k, sizeof e->msg - (size_t)k, fmt, ap);
	va_end(ap);
}

/* The last max operations, oldest first, one per line. */
static void rnd_print_trace(const struct rnd *e, FILE *f, const char *prefix,
			    unsigned max)
{
	unsigned n = e->ntrace < RND_NTRACE ? e->ntrace : RND_NTRACE;
	if (n > max)
		n = max;
	for (unsigned i = e->ntrace - n; i < e->ntrace; i++)
		fprintf(f, "%s%s\n", prefix, e->trace[i % RND_NTRACE]);
}

#define RND_EXPECT(e, rc, want, what, ...)                                   \
	do {                                                                 \
		if ((rc) != (want))                                          \
			rnd_fail(e, what " returned %d, expected %d",        \
				 __VA_ARGS__, (int)(rc), (int)(want));        \
	} while (0)

static const char *rnd_kind_name(int kind)
{
	static const char *const names[] = { "?", "fd", "timer", "user", "signal",
					     "pid", "word", "sem", "latch", "mask" };
	return kind > 0 && kind < 10 ? names[kind] : "?";
}

static int rnd_enabled(const struct rnd_reg *r)
{
	return !(r->flags & EVQ_DISABLED) && !r->spent;
}

static clockid_t rnd_clock(int c) { return c ? CLOCK_BOOTTIME : CLOCK_MONOTONIC; }

/* Expirations of timer r due by time t (deadline d). */
static int64_t rnd_expirations(const struct rnd_reg *r, int64_t d, int64_t t)
{
	if (t < d)
		return 0;
	return r->interval > 0 ? 1 + (t - d) / r->interval : 1;
}

static int rnd_readable(const struct rnd *e, int f)
{
	return e->fd[f].type != RFD_PIPE_W && e->fd[f].level > 0;
}

static int rnd_writable(const struct rnd *e, int f)
{
	return e->fd[f].type != RFD_PIPE_R;
}

/* ------------------------------------------------------------------ */
/* Registrations in the model                                           */
/* ------------------------------------------------------------------ */

static int rnd_free_slot(struct rnd *e)
{
	for (int i = 0; i < RND_MAXREG; i++)
		if (!e->reg[i].live)
			return i;
	return -1;
}

static int rnd_count(const struct rnd *e, int kind)
{
	int n = 0;
	for (int i = 0; i < RND_MAXREG; i++)
		n += e->reg[i].live && (!kind || e->reg[i].kind == kind);
	return n;
}

/* The (b % count)-th live registration of kind (0: any), or -1. */
static int rnd_pick(struct rnd *e, unsigned b, int kind)
{
	int n = rnd_count(e, kind);
	if (n == 0)
		return -1;
	int k = (int)(b % (unsigned)n);
	for (int i = 0; i < RND_MAXREG; i++)
		if (e->reg[i].live && (!kind || e->reg[i].kind == kind) && k-- == 0)
			return i;
	return -1;
}

static struct rnd_reg *rnd_by_id(struct rnd *e, int64_t id)
{
	for (int i = 0; i < RND_MAXREG; i++)
		if (e->reg[i].live && e->reg[i].id == id)
			return &e->reg[i];
	return NULL;
}

static struct rnd_reg *rnd_new_reg(struct rnd *e, int slot, int64_t id, int kind,
				   uint64_t cookie, int obj, uint32_t flags)
{
	if (id < 0) {
		rnd_fail(e, "add %s returned %d", rnd_kind_name(kind), (int)id);
		return NULL;
	}
	if (rnd_by_id(e, id)) {
		rnd_fail(e, "add %s returned id %#llx, which is live", rnd_kind_name(kind),
			 (unsigned long long)id);
		return NULL;
	}
	for (int i = 0; i < e->ndead; i++)
		if (e->dead[i] == id)
			e->dead[i] = -1; /* never: an id is not handed out twice */
	struct rnd_reg *r = &e->reg[slot];
	memset(r, 0, sizeof *r);
	r->live = 1;
	r->id = id;
	r->kind = kind;
	r->cookie = cookie;
	r->obj = obj;
	r->flags = flags;
	e->st.adds++;
	return r;
}

static uint64_t rnd_cookie(struct rnd *e)
{
	return 0x5eed000000000000ull ^ (++e->serial * 0x9e3779b97f4a7c15ull);
}

/* An fd registration (re)armed by add or evq_mod: epoll polls it then. */
static void rnd_arm_fd(struct rnd *e, struct rnd_reg *r)
{
	r->credit = 1;
	r->due_rd = rnd_readable(e, r->obj);
	r->due_wr = rnd_writable(e, r->obj);
}

/* A word registration armed: the library expects next_exp if
 * evq_mod_word() gave one, else the last value it saw. */
static void rnd_arm_word(struct rnd *e, struct rnd_reg *r)
{
	uint32_t cur = e->word_cur[r->obj];
	r->arm_exp = r->has_next ? r->next_exp : r->wseen;
	r->has_next = 0;
	r->since_arm = 0;
	r->checked = 1;
	/* An arm expecting another value than the word holds reports the
	 * current value, even if an event with it is pending or was just
	 * delivered: once more is allowed. */
	if (cur != r->arm_exp) {
		if (r->nagain == 8)
			memmove(r->again, r->again + 1, 7 * sizeof r->again[0]);
		r->again[r->nagain < 8 ? r->nagain++ : 7] = cur;
	}
}

/* Was d the value of word registration r at an arm that expected
 * another?  Then one more event with it is allowed: take it. */
static int rnd_take_again(struct rnd_reg *r, uint32_t d)
{
	for (int i = 0; i < r->nagain; i++)
		if (r->again[i] == d) {
			r->again[i] = r->again[--r->nagain];
			return 1;
		}
	return 0;
}

static void rnd_latch_credit(struct rnd *e, struct rnd_reg *r)
{
	r->credits++;
	r->credit_op = e->opno;
}

/* Tokens of sem s: count + held + requeued + acquired (<= 1 per live
 * registration) == total. */
static void rnd_check_sem(struct rnd *e, int s)
{
	if (e->no_words)
		return;
	int v = evq_sem_value(e->sem[s]);
	int64_t rq = 0, nreg = 0;
	for (int i = 0; i < RND_MAXREG; i++) {
		struct rnd_reg *r = &e->reg[i];
		if (r->live && r->kind == EVQ_KIND_SEM && r->obj == s) {
			rq += r->rq_tokens;
			nreg++;
		}
	}
	int64_t undelivered = e->sem_total[s] - v - e->sem_held[s] - rq;
	if (v < 0 || undelivered < 0 || undelivered > nreg)
		rnd_fail(e, "sem %d: count %d, held %lld, requeued %lld, total %lld: "
			 "%lld acquired and undelivered by %lld registrations",
			 s, v, (long long)e->sem_held[s], (long long)rq,
			 (long long)e->sem_total[s], (long long)undelivered,
			 (long long)nreg);
}

static void rnd_check_sems(struct rnd *e)
{
	for (int s = 0; s < RND_NSEM; s++)
		rnd_check_sem(e, s);
}

/* ------------------------------------------------------------------ */
/* Hot users: triggers from another thread                              */
/* ------------------------------------------------------------------ */

/* Triggers hot slot s's id (either thread) and counts a success for it. */
static void rnd_hot_trigger(struct rnd *e, int s)
{
	uint32_t seq = atomic_load(&e->hot_seq[s]);
	uint64_t v = atomic_load(&e->hot[s]);
	if (v == RND_HOT_NONE)
		return;
	/* the id of tag's registration: hot[s] still has that tag after the
	 * id was read (the main thread clears hot[s] before a new id) */
	uint32_t tag = (uint32_t)(v >> 32);
	int64_t id = atomic_load(&e->hot_id[s]);
	if ((uint32_t)(atomic_load(&e->hot[s]) >> 32) != tag)
		return;
	atomic_fetch_add(&e->hot_tries[s], 1);
	int rc = evq_trigger(e->q, id);
	uint64_t c = atomic_load(&e->hot[s]);
	if (rc == 0) {
		while ((uint32_t)(c >> 32) == tag &&
		       !atomic_compare_exchange_weak(&e->hot[s], &c, c + 1))
			;
	} else if (rc != -ENOENT ||
		   ((v & RND_HOT_LIVE) && (c & RND_HOT_LIVE) &&
		    atomic_load(&e->hot_seq[s]) == seq)) {
		/* the same registration before and after the call (the main
		 * thread clears LIVE before evq_del), yet refused */
		atomic_store(&e->hot_bad_id, id);
		atomic_store(&e->hot_bad, rc ? rc : 1);
	}
}

static void *rnd_hot_main(void *arg)
{
	struct rnd *e = arg;
	for (unsigned n = 0; !atomic_load(&e->hot_stop); n++) {
		for (int s = 0; s < RND_NHOT; s++)
			rnd_hot_trigger(e, s);
		if (n % 8 == 7)
			sched_yield(); /* two CPUs: leave the watchers some */
	}
	return NULL;
}

static void rnd_hot_stop(struct rnd *e)
{
	if (!e->hot_on)
		return;
	atomic_store(&e->hot_stop, 1);
	pthread_join(e->hot_thread, NULL);
	e->hot_on = 0;
	e->st.hot_seqs++;
	for (int s = 0; s < RND_NHOT; s++)
		e->st.hot_tries += atomic_load(&e->hot_tries[s]);
	int bad = atomic_load(&e->hot_bad);
	if (bad)
		rnd_fail(e, "hot user %#llx: a trigger while it was registered returned %d",
			 (unsigned long long)atomic_load(&e->hot_bad_id), bad);
}

/* Triggers of hot registration r counted so far (helper stopped: all). */
static int64_t rnd_hot_ok(struct rnd *e, const struct rnd_reg *r)
{
	return (int64_t)(atomic_load(&e->hot[r->hot - 1]) & (RND_HOT_LIVE - 1));
}

/* ------------------------------------------------------------------ */
/* Adding                                                               */
/* ------------------------------------------------------------------ */

static const int64_t rnd_whens[8] = { 0, 20000, 200000, 1000000, 3000000,
				      30000000, 0, 500000 };
static const int64_t rnd_intervals[8] = { 0, 0, 0, 100000, 500000, 1000000,
					  4000000, 250000000 };

static void op_add_user(struct rnd *e, int slot)
{
	unsigned b = rnd_byte(e);
	uint64_t ck = rnd_cookie(e);
	int64_t id = evq_add_user(e->q, ck);
	int hs = -1;
	for (int k = 0; e->hot_on && (b & 1) && k < RND_NHOT && hs < 0; k++)
		if (e->hot_owner[k] < 0)
			hs = k;
	rnd_trace(e, "add user%s -> %#llx", hs >= 0 ? " (hot)" : "", (unsigned long long)id);
	struct rnd_reg *r = rnd_new_reg(e, slot, id, EVQ_KIND_USER, ck, -1, 0);
	if (r && hs >= 0) {
		r->hot = hs + 1;
		e->hot_owner[hs] = slot;
		uint32_t tag = atomic_fetch_add(&e->hot_seq[hs], 1) + 1;
		atomic_store(&e->hot_tries[hs], 0);
		atomic_store(&e->hot[hs], RND_HOT_NONE);
		atomic_store(&e->hot_id[hs], id);
		atomic_store(&e->hot[hs], (uint64_t)tag << 32 | RND_HOT_LIVE);
	}
}

static void op_add_timer(struct rnd *e, int slot)
{
	unsigned b = rnd_byte(e), f = rnd_byte(e);
	int c = b & 1;
	int64_t when = rnd_whens[(b >> 1) & 7], iv = rnd_intervals[(b >> 4) & 7];
	uint32_t flags = (f & 1 ? EVQ_ONESHOT : 0) | (f & 2 ? EVQ_DISABLED : 0) |
			 (f & 4 ? EVQ_ABSTIME : 0);
	uint64_t ck = rnd_cookie(e);
	if ((f & 0xf8) == 0xf8) { /* bad arguments */
		int64_t rc = evq_add_timer(e->q, rnd_clock(c), when, -1, flags, ck);
		rnd_trace(e, "add timer interval -1 -> %" PRId64 "", rc);
		RND_EXPECT(e, rc, -EINVAL, "add timer with interval %d", -1);
		rc = evq_add_timer(e->q, CLOCK_PROCESS_CPUTIME_ID, when, 0, 0, ck);
		RND_EXPECT(e, rc, -EINVAL, "add timer on clock %s", "CPUTIME");
		return;
	}
	int64_t tb = rnd_now(rnd_clock(c));
	int64_t arg = (flags & EVQ_ABSTIME) ? tb + when : when;
	int64_t id = evq_add_timer(e->q, rnd_clock(c), arg, iv, flags, ck);
	int64_t ta = rnd_now(rnd_clock(c));
	rnd_trace(e, "add timer clock %d when %lld interval %lld flags %#x -> %#llx",
		  c, (long long)when, (long long)iv, flags, (unsigned long long)id);
	struct rnd_reg *r = rnd_new_reg(e, slot, id, EVQ_KIND_TIMER, ck, -1, flags);
	if (!r)
		return;
	r->clock = c;
	r->interval = iv;
	r->dmin = tb + when;
	r->dmax = (flags & EVQ_ABSTIME) ? tb + when : ta + when;
}

static void op_add_fd(struct rnd *e, int slot)
{
	unsigned b = rnd_byte(e);
	int f = (int)(b % RND_NFD);
	uint32_t events = (b >> 3) & 3;
	uint32_t flags = (b & 0x20 ? EVQ_EDGE : 0) | (b & 0x40 ? EVQ_ONESHOT : 0) |
			 (b & 0x80 ? EVQ_DISABLED : 0);
	uint64_t ck = rnd_cookie(e);
	int64_t id = evq_add_fd(e->q, e->fd[f].fd, events, flags, ck);
	rnd_trace(e, "add fd %d (obj %d) events %u flags %#x -> %#llx", e->fd[f].fd, f,
		  events, flags, (unsigned long long)id);
	if (e->fd[f].reg >= 0) {
		RND_EXPECT(e, id, -EEXIST, "add fd %d registered already", e->fd[f].fd);
		return;
	}
	struct rnd_reg *r = rnd_new_reg(e, slot, id, EVQ_KIND_FD, ck, f, flags);
	if (!r)
		return;
	r->events = events;
	e->fd[f].reg = slot;
	rnd_arm_fd(e, r);
}

static void op_add_word(struct rnd *e, int slot)
{
	unsigned b = rnd_byte(e);
	int w = (int)(b % RND_NWORD);
	uint32_t cur = e->word_cur[w];
	uint32_t exp = ((b >> 2) & 3) == 2 ? cur - 1 : ((b >> 2) & 3) == 3 ? cur + 1 : cur;
	uint32_t flags = (b & 0x10 ? EVQ_ONESHOT : 0) | (b & 0x20 ? EVQ_DISABLED : 0) |
			 (e->word_shared[w] ? EVQ_SHARED : 0);
	uint64_t ck = rnd_cookie(e);
	int64_t id = evq_add_word(e->q, e->word[w], exp, flags, ck);
	rnd_trace(e, "add word %d expected %u (holds %u) flags %#x -> %#llx", w, exp,
		  cur, flags, (unsigned long long)id);
	struct rnd_reg *r = rnd_new_reg(e, slot, id, EVQ_KIND_WORD, ck, w, flags);
	if (!r)
		return;
	r->arm_exp = r->wseen = exp;
	r->lo = exp == cur ? cur + 1 : cur;
	r->checked = !(flags & EVQ_DISABLED);
}

static void op_add_latch(struct rnd *e, int slot)
{
	int l = (int)(rnd_byte(e) % RND_NLATCH);
	uint64_t ck = rnd_cookie(e);
	int64_t id = evq_add_latch(e->q, e->latch[l], 0, ck);
	rnd_trace(e, "add latch %d (set %d) -> %#llx", l, e->latch_set[l], (unsigned long long)id);
	struct rnd_reg *r = rnd_new_reg(e, slot, id, EVQ_KIND_LATCH, ck, l, 0);
	if (r && e->latch_set[l])
		rnd_latch_credit(e, r);
}

static void op_add_sem(struct rnd *e, int slot)
{
	int s = (int)(rnd_byte(e) % RND_NSEM);
	uint64_t ck = rnd_cookie(e);
	int64_t id = evq_add_sem(e->q, e->sem[s], 0, ck);
	rnd_trace(e, "add sem %d (count %d) -> %#llx", s, evq_sem_value(e->sem[s]),
		  (unsigned long long)id);
	rnd_new_reg(e, slot, id, EVQ_KIND_SEM, ck, s, 0);
	rnd_check_sem(e, s);
}

static const evq_mask_t rnd_masks[8] = {
	EVQ_MASK_READ, EVQ_MASK_WRITE, EVQ_MASK_APP_BIT(0), EVQ_MASK_APP_BIT(0) | EVQ_MASK_APP_BIT(1),
	EVQ_MASK_SOURCE, ~(evq_mask_t)0, EVQ_MASK_TIMEOUT, 0x5555555555555555ull,
};
static const evq_mask_t rnd_bits[8] = {
	EVQ_MASK_READ, EVQ_MASK_WRITE | EVQ_MASK_READ, EVQ_MASK_APP_BIT(0), EVQ_MASK_APP_BIT(1),
	EVQ_MASK_TIMEOUT, EVQ_MASK_INTERRUPT, 0x0101010101010101ull, EVQ_MASK_APP_BIT(45),
};

static void op_add_mask(struct rnd *e, int slot)
{
	unsigned b = rnd_byte(e);
	int bc = b & 1;
	uint64_t ck = rnd_cookie(e);
	if ((b & 0xf0) == 0xf0) {
		int64_t rc = evq_add_mask(e->q, &e->bcast[bc], 0, ck);
		rnd_trace(e, "add mask 0 -> %" PRId64 "", rc);
		RND_EXPECT(e, rc, -EINVAL, "add mask %d with mask 0", bc);
		return;
	}
	evq_mask_t mask = rnd_masks[(b >> 1) & 7];
	int64_t id = evq_add_mask(e->q, &e->bcast[bc], mask, ck);
	rnd_trace(e, "add mask bcast %d mask %#llx -> %#llx", bc, (unsigned long long)mask,
		  (unsigned long long)id);
	struct rnd_reg *r = rnd_new_reg(e, slot, id, EVQ_KIND_MASK, ck, bc, 0);
	if (r)
		r->mask = mask;
}

/* ------------------------------------------------------------------ */
/* Changing and removing                                                */
/* ------------------------------------------------------------------ */

/* The model's side of a successful evq_mod(). */
static void rnd_mod_applied(struct rnd *e, struct rnd_reg *r, uint32_t events,
			    uint32_t flags)
{
	if (r->kind == EVQ_KIND_FD) {
		r->flags = flags;
		r->events = events;
	} else {
		r->flags = (r->flags & ~(EVQ_ONESHOT | EVQ_DISABLED)) | flags;
	}
	r->spent = 0;
	r->rq_spent = 0;
	if (r->flags & EVQ_DISABLED)
		return;
	switch (r->kind) {
	case EVQ_KIND_FD:
		rnd_arm_fd(e, r);
		break;
	case EVQ_KIND_WORD:
		rnd_arm_word(e, r);
		break;
	case EVQ_KIND_LATCH:
		if (e->latch_set[r->obj])
			rnd_latch_credit(e, r);
		break;
	}
}

static void op_mod(struct rnd *e)
{
	unsigned which = rnd_byte(e), b = rnd_byte(e);
	int i = rnd_pick(e, which, 0);
	if (i < 0)
		return;
	struct rnd_reg *r = &e->reg[i];
	uint32_t events = 0, flags;
	int want = 0;
	if (r->kind == EVQ_KIND_FD) {
		events = b & 3;
		flags = (b & 4 ? EVQ_EDGE : 0) | (b & 8 ? EVQ_ONESHOT : 0) |
			(b & 16 ? EVQ_DISABLED : 0);
		if ((b & 0xe0) == 0xe0) {
			flags |= EVQ_ABSTIME;
			want = -EINVAL;
		}
	} else {
		flags = (b & 1 ? EVQ_ONESHOT : 0) | (b & 2 ? EVQ_DISABLED : 0);
		if ((b & 0xe0) == 0xe0) {
			events = (b & 0x10) ? EVQ_READ : 0;
			flags |= (b & 0x10) ? 0 : EVQ_EDGE;
			want = -EINVAL;
		}
	}
	int rc = evq_mod(e->q, r->id, events, flags);
	rnd_trace(e, "mod r%d %s %#llx events %u flags %#x -> %d", i, rnd_kind_name(r->kind),
		  (unsigned long long)r->id, events, flags, rc);
	RND_EXPECT(e, rc, want, "evq_mod of %s %#llx", rnd_kind_name(r->kind), (unsigned long long)r->id);
	if (rc == 0 && want == 0)
		rnd_mod_applied(e, r, events, flags);
}

static void op_mod_timer(struct rnd *e)
{
	unsigned which = rnd_byte(e), any = rnd_byte(e), b = rnd_byte(e), f = rnd_byte(e);
	int i = rnd_pick(e, which, (any & 7) ? EVQ_KIND_TIMER : 0);
	if (i < 0)
		return;
	struct rnd_reg *r = &e->reg[i];
	int64_t when = rnd_whens[(b >> 1) & 7], iv = rnd_intervals[(b >> 4) & 7];
	uint32_t flags = (f & 1 ? EVQ_ONESHOT : 0) | (f & 2 ? EVQ_DISABLED : 0) |
			 (f & 4 ? EVQ_ABSTIME : 0);
	int want = r->kind == EVQ_KIND_TIMER ? 0 : -EINVAL;
	if ((f & 0xf8) == 0xf8) {
		iv = -1;
		want = -EINVAL;
	}
	int c = r->kind == EVQ_KIND_TIMER ? r->clock : 0;
	int64_t tb = rnd_now(rnd_clock(c));
	int64_t arg = (flags & EVQ_ABSTIME) ? tb + when : when;
	int rc = evq_mod_timer(e->q, r->id, arg, iv, flags);
	int64_t ta = rnd_now(rnd_clock(c));
	rnd_trace(e, "mod_timer r%d %s %#llx when %lld interval %lld flags %#x -> %d", i,
		  rnd_kind_name(r->kind), (unsigned long long)r->id, (long long)when, (long long)iv,
		  flags, rc);
	RND_EXPECT(e, rc, want, "evq_mod_timer of %s %#llx", rnd_kind_name(r->kind),
		   (unsigned long long)r->id);
	if (rc != 0 || want != 0)
		return;
	/* pending expirations (and requeued ones) are discarded */
	r->flags = flags;
	r->spent = r->rq_spent = r->rq = 0;
	r->interval = iv;
	r->got = 0;
	r->dmin = tb + when;
	r->dmax = (flags & EVQ_ABSTIME) ? tb + when : ta + when;
}

static void op_mod_word(struct rnd *e)
{
	unsigned which = rnd_byte(e), any = rnd_byte(e), b = rnd_byte(e);
	int i = rnd_pick(e, which, (any & 7) ? EVQ_KIND_WORD : 0);
	if (i < 0)
		return;
	struct rnd_reg *r = &e->reg[i];
	int w = r->kind == EVQ_KIND_WORD ? r->obj : 0;
	uint32_t cur = e->word_cur[w];
	uint32_t exp = (b & 3) == 2 ? cur - 1 : (b & 3) == 3 ? cur + 1 : cur;
	uint32_t flags = (b & 4 ? EVQ_ONESHOT : 0) | (b & 8 ? EVQ_DISABLED : 0) |
			 (e->word_shared[w] ? EVQ_SHARED : 0);
	int want = r->kind == EVQ_KIND_WORD ? 0 : -EINVAL; /* not a word */
	if ((b & 0xe0) == 0xe0) {
		if (r->kind == EVQ_KIND_WORD) {
			flags ^= EVQ_SHARED; /* must match the registration */
			want = -EINVAL;
		} else {
			flags |= EVQ_EDGE; /* checked before the id */
			want = -EINVAL;
		}
	}
	int rc = evq_mod_word(e->q, r->id, exp, flags);
	rnd_trace(e, "mod_word r%d %s %#llx expected %u (holds %u) flags %#x -> %d", i,
		  rnd_kind_name(r->kind), (unsigned long long)r->id, exp, cur, flags, rc);
	RND_EXPECT(e, rc, want, "evq_mod_word of %s %#llx", rnd_kind_name(r->kind),
		   (unsigned long long)r->id);
	if (rc != 0 || want != 0)
		return;
	r->has_next = 1;
	r->next_exp = exp;
	rnd_mod_applied(e, r, 0, flags & ~EVQ_SHARED);
}

static void rnd_kill(struct rnd *e, int i)
{
	struct rnd_reg *r = &e->reg[i];
	if (r->kind == EVQ_KIND_FD)
		e->fd[r->obj].reg = -1;
	r->live = 0;
	e->dead[e->dead_pos] = r->id;
	e->dead_pos = (e->dead_pos + 1) % RND_NDEAD;
	if (e->ndead < RND_NDEAD)
		e->ndead++;
	e->st.dels++;
	if (r->kind == EVQ_KIND_SEM) {
		rnd_check_sem(e, r->obj);
		int others = 0;
		for (int k = 0; k < RND_MAXREG; k++)
			others += e->reg[k].live && e->reg[k].kind == EVQ_KIND_SEM &&
				  e->reg[k].obj == r->obj;
		int v = evq_sem_value(e->sem[r->obj]);
		if (!others && v != e->sem_total[r->obj] - e->sem_held[r->obj])
			rnd_fail(e, "sem %d without registrations holds %d, expected "
				 "total %lld - held %lld", r->obj, v,
				 (long long)e->sem_total[r->obj],
				 (long long)e->sem_held[r->obj]);
	}
}

static void rnd_del_index(struct rnd *e, int i)
{
	if (e->reg[i].hot) {
		/* the helper keeps triggering the id: -ENOENT from now on */
		atomic_fetch_and(&e->hot[e->reg[i].hot - 1], ~RND_HOT_LIVE);
		e->hot_owner[e->reg[i].hot - 1] = -1;
	}
	int rc = evq_del(e->q, e->reg[i].id);
	rnd_trace(e, "del r%d %s %#x -> %d", i, rnd_kind_name(e->reg[i].kind),
		  (unsigned)e->reg[i].id, rc);
	RND_EXPECT(e, rc, 0, "evq_del of %s %#x", rnd_kind_name(e->reg[i].kind),
		   (unsigned)e->reg[i].id);
	rnd_kill(e, i);
}

static void op_del(struct rnd *e, unsigned b)
{
	int i = rnd_pick(e, b, 0);
	if (i >= 0)
		rnd_del_index(e, i);
}

static void op_trigger(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int i = rnd_pick(e, b >> 1, (b & 1) ? EVQ_KIND_USER : 0);
	if (i < 0)
		return;
	struct rnd_reg *r = &e->reg[i];
	if (r->hot) {
		rnd_trace(e, "trigger r%d hot user %#llx", i, (unsigned long long)r->id);
		rnd_hot_trigger(e, r->hot - 1); /* counted with the helper's */
		return;
	}
	int rc = evq_trigger(e->q, r->id);
	rnd_trace(e, "trigger r%d %s %#llx -> %d", i, rnd_kind_name(r->kind),
		  (unsigned long long)r->id, rc);
	if (r->kind == EVQ_KIND_USER) {
		RND_EXPECT(e, rc, 0, "evq_trigger of user %#llx", (unsigned long long)r->id);
		r->acc++;
	} else {
		/* not a user event */
		RND_EXPECT(e, rc, -EINVAL, "evq_trigger of %s %#llx", rnd_kind_name(r->kind),
			   (unsigned long long)r->id);
	}
}

/* Every call taking an id refuses a deleted one. */
static void op_stale(struct rnd *e)
{
	unsigned b = rnd_byte(e), c = rnd_byte(e);
	int64_t id = -1;
	if (e->ndead) {
		id = e->dead[b % (unsigned)e->ndead];
		if (id >= 0 && rnd_by_id(e, id))
			id = -1; /* the slot came round to this id again */
	}
	if (id < 0)
		/* never an id: below 2^32 (generation 0), or a slot no queue here
		 * reaches */
		id = (c & 8) ? INT_MAX : (c & 4) ? INT64_MAX : (int64_t)(c & 3) << 32 | 0xfffff;
	int rc;
	const char *what;
	switch (c % 6) {
	case 0: what = "evq_trigger"; rc = evq_trigger(e->q, id); break;
	case 1: what = "evq_mod"; rc = evq_mod(e->q, id, 0, 0); break;
	case 2: what = "evq_del"; rc = evq_del(e->q, id); break;
	case 3: what = "evq_mod_timer"; rc = evq_mod_timer(e->q, id, 0, 0, 0); break;
	case 4: what = "evq_mod_word"; rc = evq_mod_word(e->q, id, 0, 0); break;
	default: {
		struct evq_event ev = { .cookie = 1, .id = id, .kind = EVQ_KIND_USER,
					.ident = -1, .data = 1 };
		what = "evq_requeue";
		rc = evq_requeue(e->q, &ev);
		/* a record never returned: the lead's rule says -EINVAL, and
		 * either error refuses it */
		if (rc == -EINVAL)
			rc = -ENOENT;
		break;
	}
	}
	rnd_trace(e, "stale %s id %#llx -> %d", what, (unsigned long long)id, rc);
	RND_EXPECT(e, rc, -ENOENT, "%s of stale id %#llx", what, (unsigned long long)id);
}

/* A few bad arguments: each gets its error and changes nothing. */
static void op_bad(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	struct evq_event ev[1];
	int64_t rc;
	int want;
	const char *what;
	switch (b % 6) {
	case 0: what = "evq_add_fd(-1)"; want = -EBADF;
		rc = evq_add_fd(e->q, -1, EVQ_READ, 0, 0); break;
	case 1: what = "evq_add_fd(events 0x100)"; want = -EINVAL;
		rc = evq_add_fd(e->q, e->fd[0].fd, 0x100, 0, 0); break;
	case 2: what = "evq_wait(max 0)"; want = -EINVAL;
		rc = evq_wait(e->q, ev, 0, 0, NULL); break;
	case 3: what = "evq_bcast_notify(0)"; want = -EINVAL;
		rc = evq_bcast_notify(&e->bcast[0], 0); break;
	case 4: what = "evq_sem_post(0)"; want = -EINVAL;
		rc = evq_sem_post(e->sem[0], 0); break;
	default: what = "evq_requeue(NULL)"; want = -EINVAL;
		rc = evq_requeue(e->q, NULL); break;
	}
	rnd_trace(e, "bad %s -> %d", what, (int)rc);
	RND_EXPECT(e, rc, want, "%s", what);
}

/* ------------------------------------------------------------------ */
/* Sources                                                              */
/* ------------------------------------------------------------------ */

static void op_fd_write(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int f = (int)(b % RND_NFD), n = 1 + (int)(rnd_byte(e) & 15);
	int w = f, rd = f; /* the fd written, the one that becomes readable */
	switch (e->fd[f].type) {
	case RFD_PIPE_R: w = e->fd[f].peer; break;
	case RFD_PIPE_W: rd = e->fd[f].peer; break;
	case RFD_SOCK: rd = e->fd[f].peer; break;
	}
	/* Stay far from full, where a writer stops being writable: a pipe
	 * holds 64 KiB; a unix socket's sender is charged each write's whole
	 * buffer (hundreds of bytes) against its sndbuf until it is read, so
	 * a few dozen small unread writes already make it unwritable. */
	if (e->fd[rd].level >= 2048 ||
	    (e->fd[rd].type == RFD_SOCK && (e->fd[rd].level >= 256 || e->fd[rd].unread >= 16)))
		return;
	ssize_t rc;
	if (e->fd[f].type == RFD_EVENTFD) {
		uint64_t v = (uint64_t)n;
		rc = write(e->fd[w].fd, &v, sizeof v) == sizeof v ? n : -1;
	} else {
		char buf[16];
		memset(buf, 'x', sizeof buf);
		rc = write(e->fd[w].fd, buf, (size_t)n);
	}
	rnd_trace(e, "write %d to fd %d (obj %d readable %d) -> %zd", n, e->fd[w].fd,
		  w, rd, rc);
	if (rc != n) {
		rnd_fail(e, "write of %d to fd %d returned %zd", n, e->fd[w].fd, rc);
		return;
	}
	e->fd[rd].level += (uint64_t)n;
	e->fd[rd].unread++;
	if (e->fd[rd].reg >= 0) {
		struct rnd_reg *r = &e->reg[e->fd[rd].reg];
		r->credit = 1;
		if (rnd_enabled(r))
			r->due_rd = 1;
	}
}

static void op_fd_read(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int f = (int)(b % RND_NFD), n = 1 + (int)(rnd_byte(e) & 15);
	int rd = e->fd[f].type == RFD_PIPE_W ? e->fd[f].peer : f;
	uint64_t want;
	ssize_t rc;
	if (e->fd[rd].type == RFD_EVENTFD) {
		uint64_t v = 0;
		rc = read(e->fd[rd].fd, &v, sizeof v);
		want = e->fd[rd].level;
		if (rc == sizeof v)
			rc = (ssize_t)v;
	} else {
		char buf[16];
		rc = read(e->fd[rd].fd, buf, (size_t)n);
		want = e->fd[rd].level < (uint64_t)n ? e->fd[rd].level : (uint64_t)n;
	}
	rnd_trace(e, "read %d from fd %d (obj %d, level %llu) -> %zd", n, e->fd[rd].fd,
		  rd, (unsigned long long)e->fd[rd].level, rc);
	if (want == 0 ? !(rc < 0 && errno == EAGAIN) : rc != (ssize_t)want) {
		rnd_fail(e, "read from fd %d returned %zd, expected %llu", e->fd[rd].fd,
			 rc, (unsigned long long)want);
		return;
	}
	e->fd[rd].level -= want;
	if (e->fd[rd].level == 0)
		e->fd[rd].unread = 0;
	if (e->fd[rd].reg >= 0)
		e->reg[e->fd[rd].reg].credit = 1; /* a read may wake readers */
}

static void rnd_woken_all(struct rnd *e, int w)
{
	for (int i = 0; i < RND_MAXREG; i++) {
		struct rnd_reg *r = &e->reg[i];
		if (r->live && r->kind == EVQ_KIND_WORD && r->obj == w && rnd_enabled(r))
			r->checked = 1;
	}
}

static void op_word_store(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int w = (int)(b % RND_NWORD);
	uint32_t v = ++e->ctr;
	__atomic_store_n(e->word[w], v, __ATOMIC_SEQ_CST);
	e->word_cur[w] = v;
	for (int i = 0; i < RND_MAXREG; i++)
		if (e->reg[i].live && e->reg[i].kind == EVQ_KIND_WORD && e->reg[i].obj == w)
			e->reg[i].checked = 0;
	int mode = (int)((b >> 2) & 3), rc = 0;
	if (mode)
		rc = evq_wake(e->word[w], mode == 1 ? 1 : INT_MAX,
			      e->word_shared[w] ? EVQ_SHARED : 0);
	rnd_trace(e, "store %u in word %d, wake %s -> %d", v, w,
		  mode == 0 ? "none" : mode == 1 ? "one" : "all", rc);
	if (rc < 0)
		rnd_fail(e, "evq_wake of word %d returned %d", w, rc);
	if (mode >= 2)
		rnd_woken_all(e, w);
}

static void op_wake(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int w = (int)(b % RND_NWORD), all = (b >> 2) & 1;
	int rc = evq_wake(e->word[w], all ? INT_MAX : 1, e->word_shared[w] ? EVQ_SHARED : 0);
	rnd_trace(e, "wake word %d %s -> %d", w, all ? "all" : "one", rc);
	if (rc < 0)
		rnd_fail(e, "evq_wake of word %d returned %d", w, rc);
	if (all)
		rnd_woken_all(e, w);
}

static void rnd_latch_was_set(struct rnd *e, int l)
{
	if (e->latch_set[l])
		return;
	e->latch_set[l] = 1;
	for (int i = 0; i < RND_MAXREG; i++)
		if (e->reg[i].live && e->reg[i].kind == EVQ_KIND_LATCH && e->reg[i].obj == l)
			rnd_latch_credit(e, &e->reg[i]);
}

static void op_latch(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int l = (int)(b % RND_NLATCH), rc;
	switch ((b >> 1) & 3) {
	case 0:
	case 1:
		rc = evq_latch_set(e->latch[l]);
		rnd_trace(e, "latch %d set -> %d", l, rc);
		RND_EXPECT(e, rc, 0, "evq_latch_set(%d)", l);
		rnd_latch_was_set(e, l);
		break;
	case 2:
		rc = evq_latch_set_many(e->latch, RND_NLATCH);
		rnd_trace(e, "latch set_many -> %d", rc);
		RND_EXPECT(e, rc, 0, "evq_latch_set_many(%d)", RND_NLATCH);
		for (int k = 0; k < RND_NLATCH; k++)
			rnd_latch_was_set(e, k);
		break;
	default:
		rc = evq_latch_reset(e->latch[l]);
		rnd_trace(e, "latch %d reset -> %d", l, rc);
		RND_EXPECT(e, rc, 0, "evq_latch_reset(%d)", l);
		e->latch_set[l] = 0;
		break;
	}
	rc = evq_latch_is_set(e->latch[l]);
	RND_EXPECT(e, rc, e->latch_set[l], "evq_latch_is_set(%d)", l);
}

static void op_sem(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int s = b & 1, rc;
	if (b & 2) {
		rc = evq_sem_trywait(e->sem[s]);
		rnd_trace(e, "sem %d trywait -> %d", s, rc);
		if (rc == 0)
			e->sem_held[s]++;
		else if (rc != -EAGAIN)
			rnd_fail(e, "evq_sem_trywait(%d) returned %d", s, rc);
	} else {
		int64_t n = 1 + ((b >> 2) & 1);
		int back = (b & 8) && e->sem_held[s] >= n;
		if (!back && e->sem_total[s] >= 8)
			return;
		rc = evq_sem_post(e->sem[s], (uint32_t)n);
		rnd_trace(e, "sem %d post %lld (%s) -> %d", s, (long long)n,
			  back ? "held" : "new", rc);
		RND_EXPECT(e, rc, 0, "evq_sem_post(%d)", s);
		if (back)
			e->sem_held[s] -= n;
		else
			e->sem_total[s] += n;
	}
	rnd_check_sem(e, s);
}

static void op_notify(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	int bc = b & 1;
	evq_mask_t bits = rnd_bits[(b >> 1) & 7];
	int rc = evq_bcast_notify(&e->bcast[bc], bits);
	rnd_trace(e, "notify bcast %d bits %#llx -> %d", bc, (unsigned long long)bits, rc);
	RND_EXPECT(e, rc, 0, "evq_bcast_notify(%d)", bc);
	for (int i = 0; i < RND_MAXREG; i++) {
		struct rnd_reg *r = &e->reg[i];
		if (r->live && r->kind == EVQ_KIND_MASK && r->obj == bc)
			r->acc |= bits & r->mask;
	}
}

/* ------------------------------------------------------------------ */
/* Requeue                                                              */
/* ------------------------------------------------------------------ */

/* The model's side of an accepted evq_requeue(): the record merges back. */
static void rnd_requeued(struct rnd *e, struct rnd_reg *r, const struct evq_event *ev)
{
	switch (r->kind) {
	case EVQ_KIND_USER:
		if (r->hot)
			r->hot_got -= (int64_t)ev->data;
		else
			r->acc += ev->data;
		break;
	case EVQ_KIND_MASK: r->acc |= ev->data; break;
	case EVQ_KIND_TIMER: r->got -= (int64_t)ev->data; break;
	case EVQ_KIND_LATCH:
		r->delivered -= (int64_t)ev->data;
		r->rq_tokens += (int64_t)ev->data;
		break;
	case EVQ_KIND_SEM:
		e->sem_held[r->obj] -= (int64_t)ev->data;
		r->rq_tokens += (int64_t)ev->data;
		break;
	case EVQ_KIND_WORD:
		r->rq_word = 1;
		r->rq_val = (uint32_t)ev->data;
		break;
	case EVQ_KIND_FD: r->rq_events |= ev->events; break;
	}
	r->rq = 1;
	if (r->spent)
		r->rq_spent = 1;
	e->st.requeues++;
}

static void op_requeue(struct rnd *e)
{
	unsigned b = rnd_byte(e), c = rnd_byte(e);
	int variant = (int)(b & 7);
	if (variant >= 5 && !e->strict_rq)
		variant = 0; /* the old rule accepts more: make only valid ones */
	struct evq_event ev;
	int k = -1, want;
	for (int t = 0; t < e->nlast; t++) {
		int j = (int)((c + (unsigned)t) % (unsigned)e->nlast);
		if ((variant == 5) == !!e->given[j]) {
			k = j;
			break;
		}
	}
	if (variant == 6) {
		if (!e->nold)
			return;
		ev = e->old[c % (unsigned)e->nold];
	} else {
		if (k < 0)
			return;
		ev = e->last[k];
	}
	if (variant == 6)
		for (int j = 0; j < e->nlast; j++)
			if (!e->given[j] && memcmp(&e->last[j], &ev, sizeof ev) == 0)
				return; /* the same bytes as a record of the last wait */
	struct rnd_reg *r = rnd_by_id(e, ev.id);
	if (variant < 5 && r && r->kind == EVQ_KIND_SEM &&
	    e->sem_held[r->obj] < (int64_t)ev.data)
		return; /* the test posted those tokens back: not its to give */
	const char *what = "valid";
	want = r ? 0 : -ENOENT;
	if (variant == 5) {
		what = "given back already";
		want = -EINVAL;
	} else if (variant == 6) {
		what = "from an older wait";
		want = -EINVAL;
	} else if (variant == 7) {
		what = "altered";
		want = -EINVAL;
		switch (c & 3) {
		case 0: ev.data++; break;
		case 1: ev.cookie ^= 1; break;
		case 2: ev.events ^= EVQ_WRITE; break;
		default: ev.flags ^= EVQ_ONESHOT; break;
		}
	}
	int rc = evq_requeue(e->q, &ev);
	rnd_trace(e, "requeue (%s) %s %#llx data %llu events %u -> %d", what,
		  rnd_kind_name(ev.kind), (unsigned long long)ev.id, (unsigned long long)ev.data,
		  ev.events, rc);
	if (variant >= 5 && !r && rc == -ENOENT)
		rc = -EINVAL; /* deleted since: either error refuses it */
	RND_EXPECT(e, rc, want, "evq_requeue (%s) of %s %#llx", what, rnd_kind_name(ev.kind),
		   (unsigned long long)ev.id);
	if (variant < 5) {
		e->given[k] = 1;
		if (rc == 0 && r)
			rnd_requeued(e, r, &ev);
	}
}

/* ------------------------------------------------------------------ */
/* Waiting: every event against the model                               */
/* ------------------------------------------------------------------ */

/* Would the library hand out r without asking the kernel?  (q->lock
 * semantics: pending list, posts, expired timers.) */
static int rnd_deliverable(const struct rnd_reg *r, const int64_t *t0)
{
	int on = rnd_enabled(r);
	if (r->rq && (on || r->rq_spent))
		return 1;
	if (!on)
		return 0;
	switch (r->kind) {
	case EVQ_KIND_USER: return r->acc > 0;
	case EVQ_KIND_MASK: return r->acc != 0;
	case EVQ_KIND_TIMER:
		return rnd_expirations(r, r->dmax, t0[r->clock]) > r->got;
	}
	return 0;
}

/* fd readiness epoll must report to a wait now: 1 READ, 2 WRITE. */
static int rnd_fd_owed(const struct rnd *e, const struct rnd_reg *r)
{
	if (r->kind != EVQ_KIND_FD || !rnd_enabled(r))
		return 0;
	int f = r->obj, owed = 0;
	int edge = (r->flags & EVQ_EDGE) && !(r->flags & EVQ_ONESHOT);
	if ((r->events & EVQ_READ) && rnd_readable(e, f) && (!edge || r->due_rd))
		owed |= 1;
	if ((r->events & EVQ_WRITE) && rnd_writable(e, f) && (!edge || r->due_wr))
		owed |= 2;
	return owed;
}

static void rnd_check_fd_event(struct rnd *e, struct rnd_reg *r, const struct evq_event *ev)
{
	int f = r->obj;
	if (ev->data != 0)
		rnd_fail(e, "fd %d (%#llx): data %llu", e->fd[f].fd, (unsigned long long)r->id,
			 (unsigned long long)ev->data);
	uint32_t fresh = ev->events & ~r->rq_events;
	if (r->rq) {
		/* the requeued record, perhaps with a kernel report merged in
		 * (bits it did not have must be real; one it had may hide the
		 * kernel's edge or oneshot report: no longer owed) */
		if ((ev->events & r->rq_events) != r->rq_events)
			rnd_fail(e, "fd %d (%#llx): requeued record came back with events "
				 "%#x, given back with %#x", e->fd[f].fd, (unsigned long long)r->id,
				 ev->events, r->rq_events);
		if (ev->events & EVQ_READ)
			r->due_rd = r->owe_rd = 0;
		if (ev->events & EVQ_WRITE)
			r->due_wr = r->owe_wr = 0;
		r->rq_events = 0;
	}
	if (fresh & ~r->events)
		rnd_fail(e, "fd %d (%#llx): events %#x, asked for %#x", e->fd[f].fd,
			 (unsigned long long)r->id, ev->events, r->events);
	if (fresh & EVQ_READ) {
		if (!rnd_readable(e, f))
			rnd_fail(e, "fd %d (%#llx): READ, but nothing to read", e->fd[f].fd,
				 (unsigned long long)r->id);
		if ((r->flags & EVQ_EDGE) && r->events == EVQ_READ && !r->credit)
			rnd_fail(e, "fd %d (%#llx): edge READ without a write, read or mod "
				 "since the last one", e->fd[f].fd, (unsigned long long)r->id);
		r->credit = 0;
		r->due_rd = 0;
		r->owe_rd = 0;
	}
	if (fresh & EVQ_WRITE) {
		if (!rnd_writable(e, f))
			rnd_fail(e, "fd %d (%#llx): WRITE on a pipe's read end", e->fd[f].fd,
				 (unsigned long long)r->id);
		r->due_wr = 0;
		r->owe_wr = 0;
	}
}

static void rnd_check_event(struct rnd *e, const struct evq_event *ev,
			    const int64_t *t0, const int64_t *t1)
{
	struct rnd_reg *r = rnd_by_id(e, ev->id);
	if (!r) {
		rnd_fail(e, "event for id %#llx, not registered (deleted?): kind %u cookie "
			 "%#llx data %llu", (unsigned long long)ev->id, ev->kind,
			 (unsigned long long)ev->cookie, (unsigned long long)ev->data);
		return;
	}
	int fdn = r->kind == EVQ_KIND_FD ? e->fd[r->obj].fd : -1;
	uint32_t flags = r->flags | (r->spent ? EVQ_DISABLED : 0);
	if (ev->cookie != r->cookie || ev->kind != r->kind || ev->ident != fdn ||
	    ev->flags != flags)
		rnd_fail(e, "event for %#llx: cookie %#llx kind %u ident %d flags %#x, "
			 "expected %#llx %u %d %#x", (unsigned long long)ev->id,
			 (unsigned long long)ev->cookie, ev->kind, ev->ident, ev->flags,
			 (unsigned long long)r->cookie, r->kind, fdn, flags);
	if (!rnd_enabled(r) && !(r->rq && r->rq_spent))
		rnd_fail(e, "event for %s %#llx while %s", rnd_kind_name(r->kind),
			 (unsigned long long)r->id, r->spent ? "its oneshot was spent" : "disabled");
	if (r->kind != EVQ_KIND_FD && ev->events != 0)
		rnd_fail(e, "event for %s %#llx: events %#x", rnd_kind_name(r->kind),
			 (unsigned long long)r->id, ev->events);
	uint64_t d = ev->data;
	switch (r->hot ? -1 : r->kind) {
	case -1: {
		/* triggered by the helper too: no more than were started */
		r->hot_got += (int64_t)d;
		int64_t tries = (int64_t)atomic_load(&e->hot_tries[r->hot - 1]);
		if (d == 0 || r->hot_got > tries)
			rnd_fail(e, "hot user %#llx: data %llu makes %lld delivered, %lld "
				 "triggers started", (unsigned long long)r->id, (unsigned long long)d,
				 (long long)r->hot_got, (long long)tries);
		break;
	}
	case EVQ_KIND_USER:
	case EVQ_KIND_MASK:
		if (d != r->acc || d == 0)
			rnd_fail(e, "%s %#llx: data %#llx, expected %#llx", rnd_kind_name(r->kind),
				 (unsigned long long)r->id, (unsigned long long)d,
				 (unsigned long long)r->acc);
		r->acc = 0;
		break;
	case EVQ_KIND_TIMER: {
		r->got += (int64_t)d;
		int64_t lo = rnd_expirations(r, r->dmax, t0[r->clock]);
		int64_t hi = rnd_expirations(r, r->dmin, t1[r->clock]);
		if (d == 0 || r->got < lo || r->got > hi)
			rnd_fail(e, "timer %#llx: data %llu makes %lld expirations since armed, "
				 "expected %lld..%lld (interval %lld)", (unsigned long long)r->id,
				 (unsigned long long)d, (long long)r->got, (long long)lo,
				 (long long)hi, (long long)r->interval);
		break;
	}
	case EVQ_KIND_FD:
		rnd_check_fd_event(e, r, ev);
		break;
	case EVQ_KIND_WORD: {
		uint32_t cur = e->word_cur[r->obj];
		if (r->rq_word && d == r->rq_val) {
			/* the requeued record, unchanged */
		} else if (d < r->lo && rnd_take_again(r, (uint32_t)d)) {
			r->wseen = (uint32_t)d; /* reported once more by a re-arm */
		} else if (d > 0xffffffffu || (uint32_t)d < r->lo || (uint32_t)d > cur) {
			rnd_fail(e, "word %#llx: data %llu, expected %u..%u", (unsigned long long)r->id,
				 (unsigned long long)d, r->lo, cur);
		} else {
			r->wseen = (uint32_t)d;
			r->lo = (uint32_t)d + 1;
		}
		if ((uint32_t)d > r->since_arm)
			r->since_arm = (uint32_t)d;
		if (r->owe_val && (uint32_t)d == cur)
			r->owe_val = 0;
		r->rq_word = 0;
		break;
	}
	case EVQ_KIND_LATCH:
		r->delivered += (int64_t)d;
		r->deliv_op = e->wait_op;
		/* 1, more only when a requeued record merged in */
		if (d == 0 || (int64_t)d > 1 + r->rq_tokens || r->delivered > r->credits)
			rnd_fail(e, "latch %#llx: data %llu (requeued %lld) makes %lld events "
				 "for %lld sets", (unsigned long long)r->id, (unsigned long long)d,
				 (long long)r->rq_tokens, (long long)r->delivered,
				 (long long)r->credits);
		r->rq_tokens = 0;
		break;
	case EVQ_KIND_SEM:
		if (d == 0 || (int64_t)d < r->rq_tokens || (int64_t)d > r->rq_tokens + 1)
			rnd_fail(e, "sem %#llx: data %llu, requeued %lld", (unsigned long long)r->id,
				 (unsigned long long)d, (long long)r->rq_tokens);
		e->sem_held[r->obj] += (int64_t)d;
		r->rq_tokens = 0;
		break;
	}
	if (r->flags & EVQ_ONESHOT) {
		/* spent, even by a requeued record: what the kernel holds for
		 * a re-armed fd is not owed any more */
		r->spent = 1;
		r->owe_rd = r->owe_wr = r->owe_val = 0;
	}
	r->rq = 0;
	r->rq_spent = 0;
	r->owe = 0;
}

static void op_wait_with(struct rnd *e, int max, int64_t timeout)
{
	struct evq_event ev[RND_MAXEV];
	int64_t t0[2], t1[2];
	uint8_t must[RND_MAXREG], fdowed[RND_MAXREG];
	e->wait_op = e->opno;
	t0[0] = rnd_now(CLOCK_MONOTONIC);
	t0[1] = rnd_now(CLOCK_BOOTTIME);
	for (int i = 0; i < RND_MAXREG; i++) {
		must[i] = e->reg[i].live && rnd_deliverable(&e->reg[i], t0);
		fdowed[i] = e->reg[i].live ? (uint8_t)rnd_fd_owed(e, &e->reg[i]) : 0;
	}
	memset(ev, 0xa5, sizeof ev);
	int n = evq_wait(e->q, ev, max, timeout, NULL);
	t1[1] = rnd_now(CLOCK_BOOTTIME);
	t1[0] = rnd_now(CLOCK_MONOTONIC);
	int quiet = e->in_drain && e->drain_n > 50; /* keep what led here */
	if (!quiet)
		rnd_trace(e, "wait max %d timeout %lld -> %d", max, (long long)timeout, n);
	for (int i = 0; i < n && i < max && !quiet; i++)
		rnd_trace(e, "  ev id %#llx kind %u flags %#x events %#x data %llu",
			  (unsigned long long)ev[i].id, ev[i].kind, ev[i].flags, ev[i].events,
			  (unsigned long long)ev[i].data);
	e->st.waits++;
	if (n == -EINTR && rnd_eintr_ok)
		return;
	if (n < 0 || n > max) {
		rnd_fail(e, "evq_wait(max %d) returned %d", max, n);
		return;
	}
	e->st.events += (uint64_t)n;
	if (n > 0) {
		/* the previous batch can no longer be given back (a wait that
		 * returns nothing leaves it as it is) */
		for (int i = 0; i < e->nlast; i++) {
			e->old[e->old_pos] = e->last[i];
			e->old_pos = (e->old_pos + 1) % RND_NOLD;
			if (e->nold < RND_NOLD)
				e->nold++;
		}
		e->nlast = 0;
	}
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < i; j++)
			if (ev[j].id == ev[i].id)
				rnd_fail(e, "two records for id %#llx in one wait",
					 (unsigned long long)ev[i].id);
		struct rnd_reg *r = rnd_by_id(e, ev[i].id);
		if (r)
			must[r - e->reg] = 0;
		rnd_check_event(e, &ev[i], t0, t1);
		e->last[i] = ev[i];
		e->given[i] = 0;
	}
	if (n > 0)
		e->nlast = n;
	if (RND_STRICT_WAIT && n < max)
		for (int i = 0; i < RND_MAXREG; i++)
			if (must[i] && e->reg[i].live)
				rnd_fail(e, "wait returned %d < max %d events without %s %#x, "
					 "deliverable (acc %llu got %lld rq %d)", n, max,
					 rnd_kind_name(e->reg[i].kind), (unsigned)e->reg[i].id,
					 (unsigned long long)e->reg[i].acc,
					 (long long)e->reg[i].got, e->reg[i].rq);
	if (n == 0)
		for (int i = 0; i < RND_MAXREG; i++)
			if (fdowed[i] && e->reg[i].live)
				rnd_fail(e, "wait returned nothing, but fd %d (%#x, events %u "
					 "flags %#x) is %s", e->fd[e->reg[i].obj].fd,
					 (unsigned)e->reg[i].id, e->reg[i].events,
					 e->reg[i].flags, fdowed[i] & 1 ? "readable" : "writable");
	rnd_check_sems(e);
}

static void op_wait(struct rnd *e)
{
	unsigned b = rnd_byte(e);
	static const int64_t timeouts[8] = { 0, 0, 0, 0, 0, 100000, 300000, 1000000 };
	op_wait_with(e, 1 + (int)(b & 7), timeouts[(b >> 3) & 7]);
}

/* ------------------------------------------------------------------ */
/* Drain: everything owed arrives                                       */
/* ------------------------------------------------------------------ */

static int rnd_sem_owed(const struct rnd *e, int s)
{
	if (e->no_words || evq_sem_value(e->sem[s]) == 0)
		return 0;
	for (int i = 0; i < RND_MAXREG; i++) {
		const struct rnd_reg *r = &e->reg[i];
		if (r->live && r->kind == EVQ_KIND_SEM && r->obj == s && rnd_enabled(r))
			return 1;
	}
	return 0;
}

static int rnd_owed(const struct rnd *e, char *what, size_t len)
{
	for (int i = 0; i < RND_MAXREG; i++) {
		const struct rnd_reg *r = &e->reg[i];
		if (r->live && (r->owe || r->owe_rd || r->owe_wr || r->owe_val)) {
			snprintf(what, len, "%s %#llx (owe %d rd %d wr %d value %d: word "
				 "holds %u, lo %u)", rnd_kind_name(r->kind), (unsigned long long)r->id,
				 r->owe, r->owe_rd, r->owe_wr, r->owe_val,
				 r->kind == EVQ_KIND_WORD ? e->word_cur[r->obj] : 0, r->lo);
			return 1;
		}
	}
	for (int s = 0; s < RND_NSEM; s++)
		if (rnd_sem_owed(e, s)) {
			snprintf(what, len, "the tokens of sem %d (count %d)", s,
				 evq_sem_value(e->sem[s]));
			return 1;
		}
	return 0;
}

static void rnd_drain(struct rnd *e)
{
	rnd_hot_stop(e); /* every trigger of a hot user is counted now */
	int64_t t0[2] = { rnd_now(CLOCK_MONOTONIC), rnd_now(CLOCK_BOOTTIME) };
	for (int i = 0; i < RND_MAXREG; i++) {
		struct rnd_reg *r = &e->reg[i];
		if (!r->live)
			continue;
		r->owe = rnd_deliverable(r, t0) ||
			 (r->hot && rnd_enabled(r) && rnd_hot_ok(e, r) > r->hot_got);
		int fo = rnd_fd_owed(e, r);
		r->owe_rd = fo & 1;
		r->owe_wr = !!(fo & 2);
		if (r->kind == EVQ_KIND_WORD && rnd_enabled(r) && r->checked &&
		    e->word_cur[r->obj] != r->arm_exp &&
		    e->word_cur[r->obj] != r->since_arm) {
			if (r->flags & EVQ_ONESHOT)
				r->owe = 1;
			else
				r->owe_val = 1;
		}
		if (r->kind == EVQ_KIND_LATCH && rnd_enabled(r) && e->latch_set[r->obj] &&
		    r->credit_op > r->deliv_op)
			r->owe = 1;
	}
	e->in_drain = 1;
	e->drain_n = 0;
	rnd_trace(e, "drain");
	int64_t end = t0[0] + RND_DRAIN_NS;
	char what[200];
	while (!e->failed && rnd_owed(e, what, sizeof what)) {
		if (rnd_now(CLOCK_MONOTONIC) > end) {
			rnd_fail(e, "drain: after %lld s still waiting for %s",
				 (long long)(RND_DRAIN_NS / RND_SEC), what);
			break;
		}
		e->opno++;
		op_wait_with(e, RND_MAXEV, 2000000);
		e->st.drain_waits++;
		e->drain_n++;
	}
	e->in_drain = 0;
	for (int i = 0; i < RND_MAXREG && !e->failed; i++) {
		struct rnd_reg *r = &e->reg[i];
		int64_t ok = r->live && r->hot ? rnd_hot_ok(e, r) : 0;
		if (r->live && r->hot && (r->hot_got > ok || (rnd_enabled(r) && r->hot_got != ok)))
			rnd_fail(e, "hot user %#llx: %lld triggers succeeded, %lld delivered",
				 (unsigned long long)r->id, (long long)ok, (long long)r->hot_got);
	}
	int64_t took = rnd_now(CLOCK_MONOTONIC) - t0[0];
	e->st.drain_ns += took;
	if (took > e->st.drain_max_ns)
		e->st.drain_max_ns = took;
}

/* ------------------------------------------------------------------ */
/* One sequence                                                         */
/* ------------------------------------------------------------------ */

enum rnd_op {
	OP_ADD_USER, OP_ADD_TIMER, OP_ADD_FD, OP_ADD_WORD, OP_ADD_LATCH, OP_ADD_SEM,
	OP_ADD_MASK, OP_MOD, OP_MOD_TIMER, OP_MOD_WORD, OP_DEL, OP_TRIGGER,
	OP_FD_WRITE, OP_FD_READ, OP_WORD_STORE, OP_WAKE, OP_LATCH, OP_SEM,
	OP_NOTIFY, OP_REQUEUE, OP_WAIT, OP_STALE, OP_BAD, OP_N
};

/* weights out of 256 */
static const uint8_t rnd_weights[OP_N] = {
	[OP_ADD_USER] = 10, [OP_ADD_TIMER] = 10, [OP_ADD_FD] = 10, [OP_ADD_WORD] = 8,
	[OP_ADD_LATCH] = 6, [OP_ADD_SEM] = 6, [OP_ADD_MASK] = 6, [OP_MOD] = 16,
	[OP_MOD_TIMER] = 8, [OP_MOD_WORD] = 6, [OP_DEL] = 12, [OP_TRIGGER] = 24,
	[OP_FD_WRITE] = 16, [OP_FD_READ] = 12, [OP_WORD_STORE] = 12, [OP_WAKE] = 4,
	[OP_LATCH] = 14, [OP_SEM] = 12, [OP_NOTIFY] = 14, [OP_REQUEUE] = 12,
	[OP_WAIT] = 28, [OP_STALE] = 6, [OP_BAD] = 4,
};

static int rnd_decode(unsigned b)
{
	for (int op = 0; op < OP_N; op++) {
		if (b < rnd_weights[op])
			return op;
		b -= rnd_weights[op];
	}
	return OP_WAIT;
}

static void rnd_step(struct rnd *e)
{
	int op = rnd_decode(rnd_byte(e));
	int word_op = op == OP_ADD_WORD || op == OP_ADD_LATCH || op == OP_ADD_SEM;
	if (word_op && e->no_words)
		op = OP_ADD_USER;
	if (op <= OP_ADD_MASK) {
		int slot = rnd_free_slot(e);
		if (slot < 0) {
			op_del(e, rnd_byte(e));
			return;
		}
		switch (op) {
		case OP_ADD_USER: op_add_user(e, slot); break;
		case OP_ADD_TIMER: op_add_timer(e, slot); break;
		case OP_ADD_FD: op_add_fd(e, slot); break;
		case OP_ADD_WORD: op_add_word(e, slot); break;
		case OP_ADD_LATCH: op_add_latch(e, slot); break;
		case OP_ADD_SEM: op_add_sem(e, slot); break;
		default: op_add_mask(e, slot); break;
		}
		return;
	}
	switch (op) {
	case OP_MOD: op_mod(e); break;
	case OP_MOD_TIMER: op_mod_timer(e); break;
	case OP_MOD_WORD: op_mod_word(e); break;
	case OP_DEL: op_del(e, rnd_byte(e)); break;
	case OP_TRIGGER: op_trigger(e); break;
	case OP_FD_WRITE: op_fd_write(e); break;
	case OP_FD_READ: op_fd_read(e); break;
	case OP_WORD_STORE: op_word_store(e); break;
	case OP_WAKE: op_wake(e); break;
	case OP_LATCH: if (!e->no_words) op_latch(e); break;
	case OP_SEM: if (!e->no_words) op_sem(e); break;
	case OP_NOTIFY: op_notify(e); break;
	case OP_REQUEUE: op_requeue(e); break;
	case OP_WAIT: op_wait(e); break;
	case OP_STALE: op_stale(e); break;
	default: op_bad(e); break;
	}
}

static int rnd_open_fds(struct rnd *e)
{
	int p[2][2], sv[2];
	if (pipe2(p[0], O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	if (pipe2(p[1], O_NONBLOCK | O_CLOEXEC) < 0)
		goto close0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		goto close1;
	int e0 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e0 < 0)
		goto close2;
	int e1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e1 < 0) {
		close(e0);
		goto close2;
	}
	static const int types[RND_NFD] = { RFD_PIPE_R, RFD_PIPE_W, RFD_PIPE_R, RFD_PIPE_W,
					    RFD_SOCK, RFD_SOCK, RFD_EVENTFD, RFD_EVENTFD };
	const int fds[RND_NFD] = { p[0][0], p[0][1], p[1][0], p[1][1], sv[0], sv[1], e0, e1 };
	static const int peers[RND_NFD] = { 1, 0, 3, 2, 5, 4, 6, 7 };
	for (int f = 0; f < RND_NFD; f++)
		e->fd[f] = (struct rnd_fd){ .fd = fds[f], .type = types[f],
					    .peer = peers[f], .reg = -1 };
	return 0;
close2:
	close(sv[0]);
	close(sv[1]);
close1:
	close(p[1][0]);
	close(p[1][1]);
close0:
	close(p[0][0]);
	close(p[0][1]);
	return -1;
}

/* Memory for words, latches and semaphores: private ones, and one page
 * shared (EVQ_SHARED), mapped once per process. */
static struct rnd_mem {
	uint32_t words[2];
	struct evq_latch latch;
	struct evq_sem sem;
} rnd_private;
static struct rnd_mem *rnd_shared;
static int rnd_strict_requeue = RND_REQUEUE_STRICT;
static int rnd_have_waitv = -1;

/* Is the lead's requeue rule in the library?  A record given back twice
 * is refused by it and accepted by main's. */
static int rnd_probe_requeue(void)
{
	struct evq *q;
	struct evq_event ev[2];
	if (evq_new(&q, NULL) < 0)
		return 0;
	int64_t id = evq_add_user(q, 7);
	int strict = 0;
	if (id >= 0 && evq_trigger(q, id) == 0 && evq_wait(q, ev, 2, 0, NULL) == 1 &&
	    evq_requeue(q, &ev[0]) == 0)
		strict = evq_requeue(q, &ev[0]) == -EINVAL;
	evq_free(q);
	return strict;
}

/* Once per process.  Returns 0, or -errno if the shared page cannot be
 * mapped. */
static int rnd_setup(void)
{
	if (!rnd_shared) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			       -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		rnd_shared = p;
	}
	const char *env = getenv("EVQ_RANDOM_REQUEUE");
	if (env && strcmp(env, "strict") == 0)
		rnd_strict_requeue = 1;
	else if (env && strcmp(env, "loose") == 0)
		rnd_strict_requeue = 0;
	else if (env && strcmp(env, "auto") == 0)
		rnd_strict_requeue = -1;
	if (rnd_strict_requeue < 0)
		rnd_strict_requeue = rnd_probe_requeue();
	if (rnd_have_waitv < 0) {
		/* futex_waitv: the epoll backend's word watcher needs it
		 * (valgrind 3.19 does not know it) */
		int saved = errno;
		errno = 0;
		rnd_have_waitv = !(syscall(449, NULL, 0, 0, NULL, 0) == -1 && errno == ENOSYS);
		errno = saved;
	}
	return 0;
}

/* Runs the sequence bytes[0..len) on a fresh queue; e is the engine's
 * state (large: make it static).  bytes[0] picks the queue's max_batch.
 * Returns 0, -1 on a violation (e->msg), -2 when the queue or its fds
 * cannot be made (e->msg). */
static int rnd_run(struct rnd *e, const uint8_t *bytes, size_t len)
{
	struct rnd_stats st = e->st;
	memset(e, 0, sizeof *e);
	e->st = st;
	e->in = bytes;
	e->len = len;
	e->strict_rq = rnd_strict_requeue > 0;
	e->no_words = !rnd_have_waitv;

	static const int batches[4] = { 0, 1, 2, 8 };
	unsigned b0 = rnd_byte(e);
	struct evq_options o = { .max_batch = batches[b0 & 3] };
	e->batch = o.max_batch;
	int rc = evq_new(&e->q, &o);
	if (rc < 0) {
		snprintf(e->msg, sizeof e->msg, "evq_new: %d", rc);
		return -2;
	}
	rnd_trace(e, "evq_new backend %s max_batch %d", evq_backend_name(e->q), o.max_batch);
	if (rnd_open_fds(e) < 0) {
		snprintf(e->msg, sizeof e->msg, "pipes/sockets/eventfds: errno %d", errno);
		evq_free(e->q);
		return -2;
	}
	memset(&rnd_private, 0, sizeof rnd_private);
	memset(rnd_shared, 0, sizeof *rnd_shared);
	e->ctr = 1000;
	e->word[0] = &rnd_private.words[0];
	e->word[1] = &rnd_private.words[1];
	e->word[2] = &rnd_shared->words[0];
	e->word_shared[2] = 1;
	for (int w = 0; w < RND_NWORD; w++)
		*e->word[w] = e->word_cur[w] = ++e->ctr;
	e->latch[0] = &rnd_private.latch;
	e->latch[1] = &rnd_shared->latch;
	evq_latch_init(e->latch[0], 0);
	evq_latch_init(e->latch[1], EVQ_SHARED);
	e->sem[0] = &rnd_private.sem;
	e->sem[1] = &rnd_shared->sem;
	e->sem_total[0] = 1;
	e->sem_total[1] = 2;
	evq_sem_init(e->sem[0], 1, 0);
	evq_sem_init(e->sem[1], 2, EVQ_SHARED);
	for (int b = 0; b < RND_NBCAST; b++)
		evq_bcast_init(&e->bcast[b]);
	for (int k = 0; k < RND_NHOT; k++) {
		atomic_store(&e->hot[k], RND_HOT_NONE);
		e->hot_owner[k] = -1;
	}
	if ((b0 & 4) && pthread_create(&e->hot_thread, NULL, rnd_hot_main, e) == 0)
		e->hot_on = 1;
	rnd_trace(e, "hot users %s", e->hot_on ? "on" : "off");

	while (!e->failed && e->pos < e->len) {
		e->opno++;
		rnd_step(e);
		e->st.ops++;
	}
	if (!e->failed)
		rnd_drain(e);
	rnd_hot_stop(e); /* after a failure, before the queue goes */
	/* delete everything: sems get back what was acquired for them */
	for (int i = 0; i < RND_MAXREG && !e->failed; i++)
		if (e->reg[i].live)
			rnd_del_index(e, i);
	if (!e->failed) {
		for (int s = 0; s < RND_NSEM && !e->no_words; s++) {
			int v = evq_sem_value(e->sem[s]);
			if (v != e->sem_total[s] - e->sem_held[s])
				rnd_fail(e, "sem %d holds %d after every evq_del, expected "
					 "total %lld - held %lld", s, v,
					 (long long)e->sem_total[s], (long long)e->sem_held[s]);
		}
		struct evq_event ev[RND_MAXEV];
		int n = evq_wait(e->q, ev, RND_MAXEV, 0, NULL);
		if (n != 0)
			rnd_fail(e, "wait after every evq_del returned %d (id %#llx)", n,
				 n > 0 ? (unsigned long long)ev[0].id : 0);
	}
	evq_free(e->q);
	for (int f = 0; f < RND_NFD; f++)
		close(e->fd[f].fd);
	for (int b = 0; b < RND_NBCAST; b++)
		evq_bcast_destroy(&e->bcast[b]);
	e->q = NULL;
	e->st.seqs++;
	return e->failed ? -1 : 0;
}

#endif
