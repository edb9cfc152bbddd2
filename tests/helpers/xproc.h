/* SPDX-License-Identifier: MIT */
/*
 * xproc.h - what tests/xproc.c and its exec'ed helper tests/xproc_child.c
 * share: the layout of the shared memory (a memfd each process maps on its
 * own, at its own address) and the loops both kinds of process run.
 */
#ifndef EVQ_XPROC_H
#define EVQ_XPROC_H

#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "evqtest.h"

#define XP_WORDS 128

struct xp_shared {
	struct evq_sem sem;
	struct evq_latch ping, pong;
	uint32_t words[XP_WORDS];
	/* sem stress accounting */
	_Atomic long taken, holders, max_holders, bad;
	/* latch ping-pong accounting */
	_Atomic long pings, pongs;
	_Atomic int ready;
};

static inline struct xp_shared *xp_map(int fd)
{
	void *p = mmap(NULL, sizeof(struct xp_shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Takes `cycles` tokens through a queue, one event = one token, checking
 * that never more than `tokens` are held at once across all processes,
 * and gives each back.  0 on success. */
static inline int xp_sem_loop(struct xp_shared *sh, long cycles, long tokens)
{
	struct evq *q;
	struct evq_event ev[8];
	if (evq_new(&q, NULL) != 0)
		return 10;
	if (evq_add_sem(q, &sh->sem, 0, 7) < 0)
		return 11;
	for (long i = 0; i < cycles;) {
		int n = evq_wait(q, ev, 8, 30 * EVQT_SEC, NULL);
		if (n <= 0)
			return 12; /* a lost wakeup shows up here */
		for (int k = 0; k < n; k++, i++) {
			if (ev[k].data != 1 || ev[k].kind != EVQ_KIND_SEM)
				atomic_fetch_add(&sh->bad, 1);
			long h = atomic_fetch_add(&sh->holders, 1) + 1;
			long m = atomic_load(&sh->max_holders);
			while (h > m && !atomic_compare_exchange_weak(&sh->max_holders, &m, h))
				;
			if (h > tokens)
				atomic_fetch_add(&sh->bad, 1);
			/* hold it a moment now and then, so that the others
			 * run out of tokens and have to wait */
			if ((atomic_fetch_add(&sh->taken, 1) & 3) == 0)
				sched_yield();
			atomic_fetch_sub(&sh->holders, 1);
			if (evq_sem_post(&sh->sem, 1) != 0)
				return 13;
		}
	}
	evq_free(q);
	return 0;
}

/* The pong side of the ping-pong: waits for ping synchronously, resets it,
 * sets pong.  0 on success. */
static inline int xp_pong_loop(struct xp_shared *sh, long rounds)
{
	for (long i = 0; i < rounds; i++) {
		int rc;
		do
			rc = evq_latch_wait(&sh->ping, 30 * EVQT_SEC);
		while (rc == -EINTR);
		if (rc != 0)
			return 20;
		evq_latch_reset(&sh->ping);
		atomic_fetch_add(&sh->pongs, 1);
		if (evq_latch_set(&sh->pong) != 0)
			return 21;
	}
	return 0;
}

/* Increments `count` random shared words and wakes each word's waiters. */
static inline int xp_waker_loop(struct xp_shared *sh, long count, unsigned seed)
{
	for (long k = 0; k < count; k++) {
		int i = (int)(rand_r(&seed) % XP_WORDS);
		__atomic_fetch_add(&sh->words[i], 1, __ATOMIC_SEQ_CST);
		/* all: both evq_waitv and the queue's watcher wait on it */
		if (evq_wake(&sh->words[i], INT32_MAX, EVQ_SHARED) < 0)
			return 30;
		if ((k & 255) == 0)
			evqt_sleep_ns(2000);
	}
	return 0;
}

#endif
