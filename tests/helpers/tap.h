/* SPDX-License-Identifier: MIT */
/*
 * tap.h - a minimal TAP producer for evq's tests (one program per feature,
 * run by prove).  Header-only; every test includes it once.
 *
 *   ok(cond, "name %d", i)         one test point
 *   is(got, want, "name")          integers, prints both on failure
 *   skip_all("reason")             whole program skipped (exit 0, "1..0 # SKIP")
 *   skip(n, "reason")              n skipped points
 *   done()                         prints the plan, exits 1 if any failed
 *
 * CHECK(expr) aborts the program (bail out) when a setup step fails: use it
 * for preconditions, ok()/is() for the behaviour under test.
 */
#ifndef EVQ_TAP_H
#define EVQ_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdatomic.h>
#include <unistd.h>

static atomic_int tap_n, tap_failed;
/* evqt_watchdog's limit: every test point restarts it (0: no watchdog) */
static unsigned tap_watchdog_secs;

static inline void tap_vok(int cond, const char *fmt, va_list ap)
{
	int n = atomic_fetch_add(&tap_n, 1) + 1;
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	if (!cond)
		atomic_fetch_add(&tap_failed, 1);
	printf("%sok %d - %s\n", cond ? "" : "not ", n, buf);
	fflush(stdout);
	if (tap_watchdog_secs)
		alarm(tap_watchdog_secs); /* progress: the watchdog starts again */
}

static inline int ok(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

#define is(got, want, ...)                                                   \
	do {                                                                 \
		long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);    \
		if (!ok(tap_g_ == tap_w_, __VA_ARGS__))                      \
			printf("#   got %lld, want %lld  (%s:%d)\n", tap_g_,     \
			       tap_w_, __FILE__, __LINE__);                  \
	} while (0)

#define CHECK(expr)                                                          \
	do {                                                                 \
		if (!(expr)) {                                               \
			printf("Bail out! %s:%d: %s\n", __FILE__, __LINE__,  \
			       #expr);                                       \
			fflush(stdout);                                      \
			exit(1);                                             \
		}                                                            \
	} while (0)

static inline void skip(int n, const char *why)
{
	for (int i = 0; i < n; i++) {
		int k = atomic_fetch_add(&tap_n, 1) + 1;
		printf("ok %d # SKIP %s\n", k, why);
	}
	fflush(stdout);
}

static inline void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
	exit(0);
}

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputs("\n", stdout);
	va_end(ap);
	fflush(stdout);
}

static inline int done(void)
{
	printf("1..%d\n", atomic_load(&tap_n));
	fflush(stdout);
	exit(atomic_load(&tap_failed) ? 1 : 0);
}

#endif
