# SPDX-License-Identifier: MIT
# bench/words.mk - the word, semaphore and latch benchmarks (bench/jobtoken.c,
# bench/latch.c, bench/waitv.c).  The top-level Makefile includes every
# bench/*.mk after its variables (CC, CFLAGS_ALL, STATIC, BUILD):
#
#   make BUILD=build-bench bench-words            build and run all three
#   make BUILD=build-bench bench-words JOBTOKEN_ARGS='-k 2,8,32 -m 20000 -r 5' \
#        LATCH_ARGS='-m 20000 -r 11' WAITV_ARGS='-m 20000 -r 11'
#
# They need no peer library (pipes, raw futexes and futex_waitv are the
# peers).  The table lives in bench/RESULTS-words.md.  jobtoken runs its evq
# rows on both backends (evq-epoll, evq-uring, and the prefetch variants).

WORDS_BENCH := $(BUILD)/bench/jobtoken $(BUILD)/bench/latch $(BUILD)/bench/waitv

$(WORDS_BENCH): $(BUILD)/bench/%: bench/%.c bench/wordsbench.h bench/bench.h $(STATIC) include/evq.h bench/words.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL) -lrt

# built (not run) with the other benchmarks
bench-build: $(WORDS_BENCH)

bench-words: $(WORDS_BENCH)
	$(BUILD)/bench/jobtoken $(JOBTOKEN_ARGS)
	$(BUILD)/bench/latch $(LATCH_ARGS)
	$(BUILD)/bench/waitv $(WAITV_ARGS)

.PHONY: bench-words
