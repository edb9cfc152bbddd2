# SPDX-License-Identifier: MIT
# bench/pidexit.mk - process exits: IORING_OP_WAITID against a polled pidfd
# (bench/pidexit.c, issue 4).
#
#   make BUILD=build-bench bench-pidexit
#   make BUILD=build-bench bench-pidexit PIDEXIT_ARGS='-r 11 -n 256 -c 1,64'
#
# Included by the top-level Makefile (bench/*.mk); uses its BUILD, STATIC,
# CFLAGS_ALL and LDFLAGS_ALL.  Results: bench/RESULTS-pids.md.

$(BUILD)/bench/pidexit: bench/pidexit.c bench/wordsbench.h bench/bench.h $(STATIC) include/evq.h bench/pidexit.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL)

bench-pidexit: $(BUILD)/bench/pidexit
	@echo "# $$(date -u '+%Y-%m-%dT%H:%M:%SZ') $$(uname -srm) cpus=$$(nproc)" \
	      "commit=$$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
	      "load=$$(cut -d' ' -f1-3 /proc/loadavg)"
	$(BUILD)/bench/pidexit $(PIDEXIT_ARGS)

.PHONY: bench-pidexit

# "make bench-build" (bench/bench.mk) builds this one too.
bench-build: $(BUILD)/bench/pidexit

# and "make bench-all" runs it with the others
bench-all: bench-pidexit
