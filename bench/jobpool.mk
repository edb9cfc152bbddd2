# SPDX-License-Identifier: MIT
# bench/jobpool.mk - the job pool of issue 12 item 5 (bench/jobpool.c):
#
#   make bench-jobpool [JOBPOOL_ROUNDS=7]
#
# runs this build alone; bench/RESULTS.md ("Job pool") shows how to run it
# against an older build in the same alternated run.
JOBPOOL_ROUNDS ?= 7

bench-jobpool: $(BUILD)/bench/jobpool
	sh bench/jobpool.sh $(JOBPOOL_ROUNDS) this=$(BUILD)/bench/jobpool
.PHONY: bench-jobpool
