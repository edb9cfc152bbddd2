/* SPDX-License-Identifier: MIT */
/*
 * mask_sched.c - the mask stress test (tests/mask_stress.c) again, against
 * a copy of src/kinds/mask.c compiled with a hook at every step boundary of its
 * protocols (EVQ_MASK_STEP: N1, N2, W3, W4, G1, G2, U2, Q2..Q4) that yields
 * or sleeps at random.  Real races are a few instructions wide and rarely
 * hit; stretching the gaps makes the interleavings the spin model explores
 * (model/mask.pml) happen for real, so a reordered step (e.g. checking the
 * bits before announcing the sleep, or a missing grace period) hangs or
 * fails this test instead of passing by luck.  Expectations: as in
 * mask_stress.c (every bit observed exactly once, no callback after
 * unsubscribe), with fewer rounds.
 */
#include <sched.h>
#include <time.h>

static void sched_step(void);
#define EVQ_MASK_STEP(step) sched_step()
#include "../src/kinds/mask.c"

#define STRESS_ROUNDS 6000
#define main mask_stress_main
#include "mask_stress.c"
#undef main

static _Thread_local unsigned rng;

/* 1 in 8 steps yields the CPU, 1 in 128 sleeps 50 us. */
static void sched_step(void)
{
	if (!rng)
		rng = (unsigned)(uintptr_t)&rng | 1;
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	if ((rng & 127) == 0) {
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
	} else if ((rng & 7) == 0) {
		sched_yield();
	}
}

int main(void)
{
	return mask_stress_main();
}
