# SPDX-License-Identifier: MIT
# bench/uring.mk - the io_uring backend's benchmark (bench/uring.c).
#
#   make BUILD=build-bench bench-uring
#   make BUILD=build-bench bench-uring URING_ARGS='-r 21 -m 10000 -t pipes,trigger,latch'
#
# Included by the top-level Makefile (bench/*.mk); uses its BUILD,
# TEST_STATIC, CFLAGS_ALL and LDFLAGS_ALL.  Results: bench/RESULTS-uring.md.
# It links the test build of libevq.a, the one that reads EVQ_URING_INLINE
# (src/config.c), to measure the ring's own word waits as well.

$(BUILD)/bench/uring: bench/uring.c bench/bench.h $(TEST_STATIC) include/evq.h bench/uring.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(TEST_STATIC) $(LDFLAGS_ALL)

bench-uring: $(BUILD)/bench/uring
	@echo "# $$(date -u '+%Y-%m-%dT%H:%M:%SZ') $$(uname -srm) cpus=$$(nproc)" \
	      "commit=$$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
	      "load=$$(cut -d' ' -f1-3 /proc/loadavg)"
	$(BUILD)/bench/uring $(URING_ARGS)

.PHONY: bench-uring

bench-build: $(BUILD)/bench/uring
