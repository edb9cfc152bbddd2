# SPDX-License-Identifier: MIT
# bench/mask.mk - the event-mask benchmark (bench/mask.c).  Include it after
# the variables of the top-level Makefile (CC, CFLAGS_ALL, STATIC, BUILD):
#
#   make BUILD=build-bench bench-mask                   build and run
#   make BUILD=build-bench bench-mask MASK_ARGS='-m 20000 -r 11'
#
# It needs no peer library (pthread_cond and epoll+eventfd are the peers).
# Its table lives in bench/RESULTS-mask.md.

MASK_BENCH := $(BUILD)/bench/mask

$(MASK_BENCH): bench/mask.c $(STATIC) include/evq.h bench/mask.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL) -lrt

bench-mask: $(MASK_BENCH)
	$(MASK_BENCH) $(MASK_ARGS)

.PHONY: bench-mask

# "make bench-build" (bench/bench.mk) builds this one too.
bench-build: $(MASK_BENCH)
