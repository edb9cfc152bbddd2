/* SPDX-License-Identifier: MIT */
/*
 * random.c - the differential random test: long random sequences of
 * add/mod/del/trigger/timer-mod/word-wake/requeue/wait (tests/helpers/randengine.h)
 * checked against a small reference model: no event lost or duplicated,
 * nothing after evq_del() returned, coalescing exact, timers never early,
 * semaphore tokens conserved, and everything owed delivered by the drain
 * that ends each sequence.
 *
 * Runs for a bounded time per backend (3 s; evqt_scale(): less under
 * sanitizers and valgrind), at least 3 sequences.  Environment:
 *   EVQ_RANDOM_SEED=n      first sequence's seed (the others follow from it);
 *                          a failure prints the seed that replays it
 *   EVQ_RANDOM_SECONDS=s   time budget instead of the default
 *   EVQ_RANDOM_SAVE=dir    write a failing sequence's bytes there (for
 *                          fuzz/fuzz_evq, which reads the same format)
 *   EVQ_RANDOM_TRACE=n     print the last n operations of a failure (40)
 *   EVQ_RANDOM_REQUEUE=strict|loose|auto   see randengine.h
 * `random --corpus DIR N` writes N short passing sequences to DIR (the seed
 * corpus of fuzz/); `random --replay FILE...` runs sequences from files
 * (a fuzz/ input or crash, an EVQ_RANDOM_SAVE file) with the full trace.
 */
#include <stdio.h>

#include "evqtest.h"
#include "randengine.h"

static struct rnd engine;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The bytes of sequence `seed`: its length (minlen..maxlen) and content
 * both follow from the seed. */
static size_t make_sequence(uint64_t seed, uint8_t *buf, size_t minlen, size_t maxlen)
{
	uint64_t s = seed;
	size_t len = minlen + (size_t)(splitmix(&s) % (maxlen - minlen + 1));
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = splitmix(&s);
		for (size_t k = 0; k < 8 && i + k < len; k++)
			buf[i + k] = (uint8_t)(v >> (8 * k));
	}
	return len;
}

static void save(const char *dir, uint64_t seed, const uint8_t *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/seed-%016llx", dir, (unsigned long long)seed);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len) {
		diag("cannot write %s", path);
		if (f)
			fclose(f);
		return;
	}
	fclose(f);
	diag("wrote %s (%zu bytes)", path, len);
}

static void report(uint64_t seed, const uint8_t *buf, size_t len)
{
	const char *be = getenv("EVQ_BACKEND");
	diag("violation: %s", engine.msg);
	diag("the last operations (op number, call, result):");
	const char *lines = getenv("EVQ_RANDOM_TRACE");
	rnd_print_trace(&engine, stdout, "#   ", lines && *lines ? (unsigned)atoi(lines) : 40);
	diag("replay: EVQ_RANDOM_SEED=%#llx EVQ_BACKEND=%s build/tests/random",
	     (unsigned long long)seed, be ? be : "epoll");
	const char *dir = getenv("EVQ_RANDOM_SAVE");
	if (dir && *dir)
		save(dir, seed, buf, len);
}

/* random --corpus DIR N: N short sequences that pass, as files. */
static int corpus(const char *dir, int n)
{
	static uint8_t buf[512];
	uint64_t s = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	for (int i = 0; i < n;) {
		uint64_t seed = splitmix(&s);
		size_t len = make_sequence(seed, buf, 24, sizeof buf);
		int rc = rnd_run(&engine, buf, len);
		if (rc == -2) {
			printf("Bail out! %s\n", engine.msg);
			return 1;
		}
		if (rc < 0) {
			report(seed, buf, len);
			return 1;
		}
		save(dir, seed, buf, len);
		i++;
	}
	return 0;
}

/* random --replay FILE...: each file once, as one sequence. */
static int replay(int n, char **files)
{
	static uint8_t buf[1 << 16];
	int bad = 0;
	for (int i = 0; i < n; i++) {
		FILE *f = fopen(files[i], "rb");
		CHECK(f != NULL);
		size_t len = fread(buf, 1, sizeof buf, f);
		fclose(f);
		int rc = rnd_run(&engine, buf, len);
		printf("%s: %s\n", files[i], rc == 0 ? "ok" : engine.msg);
		if (rc < 0) {
			rnd_print_trace(&engine, stdout, "#   ", RND_NTRACE);
			bad = 1;
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	static uint8_t buf[4096];
	CHECK(rnd_setup() == 0);
	if (argc == 4 && strcmp(argv[1], "--corpus") == 0)
		return corpus(argv[2], atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "--replay") == 0)
		return replay(argc - 2, argv + 2);

	const char *env = getenv("EVQ_RANDOM_SECONDS");
	int64_t budget = env && *env ? (int64_t)(strtod(env, NULL) * EVQT_SEC)
				     : evqt_scale(3000) * EVQT_MS;
	evqt_watchdog((unsigned)(budget / EVQT_SEC) + 120);
	evqt_banner("random sequences against the model");

	env = getenv("EVQ_RANDOM_SEED");
	uint64_t seed = env && *env ? strtoull(env, NULL, 0)
				    : (uint64_t)evqt_now(CLOCK_REALTIME) ^ (uint64_t)getpid() << 40;
	diag("EVQ_RANDOM_SEED=%#llx; requeue rule: %s%s", (unsigned long long)seed,
	     rnd_strict_requeue > 0 ? "strict (only the last wait's records)" :
	     "the old one (valid requeues only)",
	     rnd_have_waitv ? "" : "; words, latches, sems skipped: " EVQT_NO_WAITV);

	uint64_t next = seed, s = seed;
	int64_t start = evqt_now(CLOCK_MONOTONIC);
	int failed = 0;
	while (!failed && (engine.st.seqs < 3 || evqt_now(CLOCK_MONOTONIC) - start < budget)) {
		size_t len = make_sequence(next, buf, 64, sizeof buf);
		int rc = rnd_run(&engine, buf, len);
		if (rc == -2) {
			if (strstr(engine.msg, "-38"))
				skip_all("backend not available on this kernel");
			printf("Bail out! %s\n", engine.msg);
			return 1;
		}
		if (rc < 0) {
			report(next, buf, len);
			failed = 1;
			break;
		}
		next = splitmix(&s);
	}
	double secs = (double)(evqt_now(CLOCK_MONOTONIC) - start) / EVQT_SEC;
	const struct rnd_stats *st = &engine.st;
	diag("%llu sequences, %llu operations (%llu adds, %llu dels, %llu waits, "
	     "%llu events, %llu requeues, %llu drain waits in %.2f s, longest "
	     "drain %.3f s) in %.1f s",
	     (unsigned long long)st->seqs, (unsigned long long)st->ops,
	     (unsigned long long)st->adds, (unsigned long long)st->dels,
	     (unsigned long long)st->waits, (unsigned long long)st->events,
	     (unsigned long long)st->requeues, (unsigned long long)st->drain_waits,
	     (double)st->drain_ns / EVQT_SEC, (double)st->drain_max_ns / EVQT_SEC, secs);
	diag("%llu sequences with a thread triggering hot user events meanwhile: "
	     "%llu triggers", (unsigned long long)st->hot_seqs,
	     (unsigned long long)st->hot_tries);
	ok(!failed, "%llu random operations in %llu sequences agree with the model",
	   (unsigned long long)st->ops, (unsigned long long)st->seqs);
	done();
}
