/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what every evq benchmark needs: a monotonic clock in ns, the
 * median of a sample (sorted in place), and the -i list parser.
 */
#ifndef EVQ_BENCH_H
#define EVQ_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of v[0..n-1]; sorts v. */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 1 if name is one of the comma-separated names in list (whole names only:
 * "libev" is inside "libevent"). */
static inline int bench_listed(const char *list, const char *name)
{
	size_t l = strlen(name);
	for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ',') && (p[l] == 0 || p[l] == ','))
			return 1;
	return 0;
}

#endif
