/* SPDX-License-Identifier: MIT */
/*
 * wordsbench.h - what the word/semaphore/latch benchmarks (jobtoken.c,
 * latch.c, latchmany.c, pidexit.c, waitv.c) add to the harness (bench.h):
 * the raw futex calls every evq path is compared against.
 */
#ifndef EVQ_WORDSBENCH_H
#define EVQ_WORDSBENCH_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Raw futex calls: the floor every evq path is compared against. */
static inline void wb_futex_wait(uint32_t *w, uint32_t val, int shared)
{
	syscall(SYS_futex, w, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, val,
		NULL, NULL, 0);
}

static inline void wb_futex_wake(uint32_t *w, int n, int shared)
{
	syscall(SYS_futex, w, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, n,
		NULL, NULL, 0);
}

#endif
