# SPDX-License-Identifier: MIT
# bench/latchmany.mk - evq_latch_set_many: the wake ring (one io_uring_enter)
# against FUTEX_WAKE_OP pairs and one FUTEX_WAKE per latch (bench/latchmany.c).
# The top-level Makefile includes every bench/*.mk after its variables:
#
#   make BUILD=build-bench bench-latchmany
#   make BUILD=build-bench bench-latchmany LATCHMANY_ARGS='-n 2,4,8,32,128 -m 300 -r 11 -v'
#
# It links the static library (for the internal evq__latch_batch_min).
# The table lives in bench/RESULTS-words.md ("evq_latch_set_many through
# io_uring").

LATCHMANY_BENCH := $(BUILD)/bench/latchmany

$(LATCHMANY_BENCH): bench/latchmany.c bench/wordsbench.h bench/bench.h $(STATIC) include/evq.h bench/latchmany.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL) -lrt

# built (not run) with the other benchmarks
bench-build: $(LATCHMANY_BENCH)

bench-latchmany: $(LATCHMANY_BENCH)
	$(LATCHMANY_BENCH) $(LATCHMANY_ARGS)

.PHONY: bench-latchmany
