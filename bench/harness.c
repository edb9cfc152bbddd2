/* SPDX-License-Identifier: MIT */
/*
 * harness.c - what every evq benchmark shares (bench.h says what each
 * part is for); compiled into each program by bench/bench.mk.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double *alloc(int n)
{
	double *s = malloc(sizeof *s * (size_t)(n > 0 ? n : 1));
	if (!s) {
		perror("bench: malloc");
		exit(1);
	}
	return s;
}

/* v as doubles, in a new array */
static double *to_double(const int64_t *v, int n)
{
	double *s = alloc(n);
	for (int i = 0; i < n; i++)
		s[i] = (double)v[i];
	return s;
}

double bench_median(const double *v, int n)
{
	double *s = alloc(n), m;
	memcpy(s, v, sizeof *v * (size_t)n);
	m = median(s, n);
	free(s);
	return m;
}

double bench_median_i64(const int64_t *v, int n)
{
	double *s = to_double(v, n), m = median(s, n);
	free(s);
	return m;
}

double bench_ratio_median(const double *num, const double *den, int n)
{
	double *s = alloc(n), m;
	for (int i = 0; i < n; i++)
		s[i] = num[i] / den[i];
	m = median(s, n);
	free(s);
	return m;
}

double bench_ratio_median_i64(const int64_t *num, const int64_t *den, int n)
{
	double *a = to_double(num, n), *b = to_double(den, n);
	double m = bench_ratio_median(a, b, n);
	free(a);
	free(b);
	return m;
}

double bench_min(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

void bench_ratio_range(const double *num, const double *den, int n, double *lo, double *hi)
{
	*lo = *hi = num[0] / den[0];
	for (int i = 1; i < n; i++) {
		double x = num[i] / den[i];
		if (x < *lo)
			*lo = x;
		if (x > *hi)
			*hi = x;
	}
}

void bench_mem_now(struct bench_mem *m)
{
	struct mallinfo2 mi = mallinfo2();
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	m->heap = (double)mi.uordblks + (double)mi.hblkhd;
	m->rss = (double)resident * (double)sysconf(_SC_PAGESIZE);
}

int bench_rounds(int rounds, int n, int warmup, int (*one)(int cand, int round, void *ctx),
		 void *ctx)
{
	for (int r = warmup ? -1 : 0; r < rounds; r++)
		for (int k = 0; k < n; k++) {
			int rc = one((r + (warmup ? 1 : 0) + k) % n, r, ctx);
			if (rc)
				return rc;
		}
	return 0;
}

void bench_ns_figures(const double *ns, const double *base, const char *base_name,
		      int digits, int rounds)
{
	printf(" ns_median=%.0f ns_min=%.0f", bench_median(ns, rounds), bench_min(ns, rounds));
	if (base)
		printf(" ratio_vs_%s=%.*f", base_name, digits,
		       bench_ratio_median(ns, base, rounds));
}

int bench_intlist(const char *s, int *v, int max)
{
	int n = 0;
	char *end;

	while (*s && n < max) {
		long x = strtol(s, &end, 10);
		if (end == s || x <= 0)
			return -1;
		v[n++] = (int)x;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return n;
}

int bench_opt(struct bench_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case 'r':
		o->rounds = atoi(arg);
		return 1;
	case 'i':
		o->impls = arg;
		return 1;
	case 'v':
		o->verbose = 1;
		return 1;
	}
	return 0;
}

int bench_opts_end(const struct bench_opts *o, int argc, void (*usage)(void))
{
	if (optind != argc || o->rounds <= 0)
		usage();
	return o->rounds;
}

int bench_listed(const char *list, const char *name)
{
	size_t l = strlen(name);
	if (!list)
		return 1;
	for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ',') && (p[l] == 0 || p[l] == ','))
			return 1;
	return 0;
}

long bench_num(const char *arg, long min, long max, void (*usage)(void))
{
	char *end;
	long v = strtol(arg, &end, 10);
	if (end == arg || v < min || v > max)
		usage();
	return v;
}

void bench_header(const char *what)
{
	char load[64];
	FILE *f = fopen("/proc/loadavg", "r");
	if (f && fgets(load, sizeof load, f))
		load[strcspn(load, "\n")] = 0;
	else
		strcpy(load, "?");
	if (f)
		fclose(f);
	printf("# %s: cpus=%ld load=\"%s\"\n", what, sysconf(_SC_NPROCESSORS_ONLN), load);
}

void bench_print_rounds(const char *label, const double *v, int rounds)
{
	printf("#   %s:", label);
	for (int r = 0; r < rounds; r++)
		printf(" %.0f", v[r]);
	printf("\n");
}

void bench_skipped(const char *bench, const char *impl, const char *why)
{
	printf("bench=%s impl=%s skipped: %s\n", bench, impl, why);
}

void *bench_calloc(const char *prog, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "%s: calloc: %s\n", prog, strerror(ENOMEM));
		exit(1);
	}
	return p;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

uint64_t bench_random(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}
