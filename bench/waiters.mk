# SPDX-License-Identifier: MIT
# bench/waiters.mk - many threads waiting on one queue (issue 5).
#   make bench-waiters [WAITERS_ARGS='-e 2000 -r 5']
bench-waiters: $(BUILD)/bench/waiters
	$(BUILD)/bench/waiters $(WAITERS_ARGS)

bench-build: $(BUILD)/bench/waiters
.PHONY: bench-waiters
