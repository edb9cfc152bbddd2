/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the harness every evq benchmark is built with (bench/harness.c,
 * linked into each program by the one rule of bench/bench.mk):
 *
 *   clocks      now_ns (monotonic), cpu_ns and thread_cpu_ns (CPU time)
 *   rounds      bench_rounds: maybe a warm-up round, then every round
 *               runs each candidate once, starting one later each round,
 *               so that a drift of the machine's load hits all alike
 *   figures     medians over the rounds, the median of per-round ratios
 *               (the "ratio spread" is then that of the rounds, not of two
 *               medians taken apart), minimums
 *   arguments   bench_opt (-r, -i, -v), bench_num (one number option,
 *               or usage), bench_intlist (-n 100,1000,9000), bench_listed
 *               (the -i candidate lists)
 *   output      one machine-readable line per figure, "bench=NAME k=v ...",
 *               and "#" comments: bench_ns_figures, bench_header,
 *               bench_skipped
 */
#ifndef EVQ_BENCH_H
#define EVQ_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* inline: these are read inside the timed loops */
static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Median of v[0..n-1]; sorts v (so that v[0] is then the minimum). */
double median(double *v, int n);
/* The same, v left alone (sorts a copy). */
double bench_median(const double *v, int n);
/* Median of int64 samples (nanoseconds), v left alone. */
double bench_median_i64(const int64_t *v, int n);
/* Median over the rounds of num[r] / den[r]: how a candidate compares with
 * the base round by round. */
double bench_ratio_median(const double *num, const double *den, int n);
double bench_ratio_median_i64(const int64_t *num, const int64_t *den, int n);
double bench_min(const double *v, int n);
/* The spread of the per-round ratios num[r] / den[r]: their minimum and
 * maximum over the n rounds, into *lo and *hi. */
void bench_ratio_range(const double *num, const double *den, int n, double *lo, double *hi);

/* The process's memory now, all in user space: the bytes malloc has
 * handed out, uordblks + hblkhd (mallinfo2: in use in the sbrk arena, and
 * the mmap'd blocks; the arena's size itself does not grow while freed
 * space is reused), and the resident set (/proc/self/statm), both in
 * bytes.  Differences of two readings around N registrations, divided by
 * N, are the bytes per registration; the RSS one only counts while the
 * process has no freed memory to reuse, so measure first. */
struct bench_mem {
	double heap, rss;
};
void bench_mem_now(struct bench_mem *m);

/* The rounds of one table.  Every round runs each candidate 0..n-1 once
 * (one() returns at once for those not selected), in an order that
 * rotates by one from round to round, so that a drift of the machine's
 * load hits all alike: round r starts with candidate (r + warmup) % n.
 * With warmup, round -1 runs first, a warm-up of caches, page tables and
 * allocators whose figures one() must not record.  Stops at the first
 * nonzero return of one() (a failed run) and returns it. */
int bench_rounds(int rounds, int n, int warmup, int (*one)(int cand, int round, void *ctx),
		 void *ctx);

/* " ns_median=%.0f ns_min=%.0f" of ns[0..rounds-1] and, with a base,
 * " ratio_vs_BASE=%.*f" (digits after the point), the median of the
 * per-round ratios ns[r] / base[r]. */
void bench_ns_figures(const double *ns, const double *base, const char *base_name,
		      int digits, int rounds);

/* A comma-separated list of positive numbers ("100,1000,9000") into
 * v[0..max-1]: how many, or -1 if it is not one. */
int bench_intlist(const char *s, int *v, int max);

/* The options every benchmark reads alike: -r rounds, -i the candidates
 * to run (a comma-separated list, for bench_listed; NULL: all), -v every
 * round's figures.  bench_opt takes opt from getopt: 1 if it was one of
 * these (the program checks the values afterwards), else 0. */
struct bench_opts {
	int rounds;
	const char *impls;
	int verbose;
};
int bench_opt(struct bench_opts *o, int opt, const char *arg);
/* After getopt: usage() unless every argument was an option and the
 * rounds are positive; else the rounds. */
int bench_opts_end(const struct bench_opts *o, int argc, void (*usage)(void));

/* 1 if name is one of the comma-separated names in list (whole names only:
 * "libev" is inside "libevent"); a NULL list names every candidate. */
int bench_listed(const char *list, const char *name);

/* The number in arg if it is in [min, max], else usage() (which exits). */
long bench_num(const char *arg, long min, long max, void (*usage)(void));

/* "# what: cpus=N load="..."": the machine a saved run ran on. */
void bench_header(const char *what);

/* "#   label: v[0] v[1] ...", each %.0f: the rounds behind a median (-v) */
void bench_print_rounds(const char *label, const double *v, int rounds);

/* "bench=NAME impl=IMPL skipped: WHY", for a candidate this build lacks. */
void bench_skipped(const char *bench, const char *impl, const char *why);

/* calloc that exits with "PROG: calloc: ..." on failure (n == 0 allocates
 * one element, so the result is never NULL). */
void *bench_calloc(const char *prog, size_t n, size_t size);
/* xorshift64*: the same fixed-seed sequence in every program that uses it,
 * so runs draw the same deadlines. */
uint64_t bench_random(void);

#endif
