/* SPDX-License-Identifier: MIT */
/*
 * fuzz_evq.c - the random test's engine (tests/helpers/randengine.h) as a
 * libFuzzer target: each input is one sequence of operations on a fresh
 * queue, checked against the reference model; a violation prints the
 * model's message and the last operations, then aborts (libFuzzer keeps
 * the input).  The backend is the one $EVQ_BACKEND names.
 *
 * Build and run with `make fuzz` (fuzz/fuzz.mk); the seed corpus in
 * fuzz/corpus was written by `build/tests/random --corpus fuzz/corpus N`,
 * in the same format.  A crash input replays with
 *   EVQ_BACKEND=epoll build-fuzz/fuzz_evq build-fuzz/epoll-crash-...
 */
#include "randengine.h"

static struct rnd engine;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	struct evq *q;
	int rc = evq_new(&q, NULL);
	if (rc < 0) {
		const char *be = getenv("EVQ_BACKEND");
		printf("skipped: backend %s not available (%s)\n", be ? be : "auto",
		       strerror(-rc));
		exit(0);
	}
	fprintf(stderr, "fuzz_evq: backend %s\n", evq_backend_name(q));
	rnd_eintr_ok = 1; /* libFuzzer's SIGALRM (-timeout) ends sleeps */
	evq_free(q);
	rc = rnd_setup();
	if (rc < 0) {
		fprintf(stderr, "fuzz_evq: setup: %s\n", strerror(-rc));
		exit(1);
	}
	fprintf(stderr, "fuzz_evq: requeue rule %s%s\n",
		rnd_strict_requeue > 0 ? "strict" : "the old one (valid requeues only)",
		rnd_have_waitv ? "" : "; words, latches, sems skipped (no futex_waitv)");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc = rnd_run(&engine, data, size);
	if (rc == -2) {
		fprintf(stderr, "fuzz_evq: %s\n", engine.msg);
		exit(1);
	}
	if (rc < 0) {
		fprintf(stderr, "fuzz_evq: violation: %s\nthe last operations:\n",
			engine.msg);
		rnd_print_trace(&engine, stderr, "  ", 60);
		abort();
	}
	return 0;
}
