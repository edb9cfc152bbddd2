/* SPDX-License-Identifier: MIT */
/*
 * wordsbench.h - small helpers shared by the word/semaphore/latch
 * benchmarks (jobtoken.c, latch.c, waitv.c): clocks, medians, raw futex
 * calls, and the "key=value" output lines.
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

static inline int64_t wb_now(void) { return now_ns(); }

/* Median of n values (sorts a copy; bench.h's median sorts in place). */
static inline double wb_median(const double *v, int n)
{
	double tmp[256];
	if (n > 256)
		n = 256;
	memcpy(tmp, v, sizeof *v * (size_t)n);
	return median(tmp, n);
}

static inline double wb_min(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

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

/* Does the comma-separated list `list` (NULL: all) name `impl`? */
static inline int wb_wanted(const char *list, const char *impl)
{
	if (!list)
		return 1;
	size_t n = strlen(impl);
	for (const char *p = list; (p = strstr(p, impl)) != NULL; p += n)
		if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return 1;
	return 0;
}

static inline void wb_header(const char *what)
{
	char load[64] = "?";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (!fgets(load, sizeof load, f))
			strcpy(load, "?");
		fclose(f);
		load[strcspn(load, "\n")] = 0;
	}
	printf("# %s: cpus=%ld load=\"%s\"\n", what, sysconf(_SC_NPROCESSORS_ONLN), load);
}

#endif
