# SPDX-License-Identifier: MIT
# make fuzz - the differential random test as a libFuzzer target (issue 11).
#
# fuzz/fuzz_evq.c feeds libFuzzer's inputs to the engine of tests/random.c
# (tests/helpers/randengine.h).  It is built with clang -fsanitize=fuzzer,address,
# undefined against the library compiled with the same sanitizers (and
# fuzzer coverage) in $(FUZZ_BUILD), then run once per backend for
# FUZZ_SECONDS each over the committed seed corpus fuzz/corpus; new inputs
# go to $(FUZZ_BUILD)/corpus-<backend>, a failing one to
# $(FUZZ_BUILD)/<backend>-crash-*.  Without clang or its libFuzzer
# runtime (Debian: libclang-rt-14-dev) it prints "skipped: install clang".
#
#   make fuzz                        60 s per backend
#   make fuzz FUZZ_SECONDS=600 FUZZ_BACKENDS=uring FUZZ_FLAGS=-jobs=2
#   make fuzz-build                  only build $(FUZZ_BUILD)/fuzz_evq
#
# Refresh the seed corpus (a few dozen short sequences that pass):
#   rm fuzz/corpus/*; make build/tests/random && build/tests/random --corpus fuzz/corpus 40

FUZZ_CC       ?= clang
FUZZ_BUILD    ?= build-fuzz
FUZZ_SECONDS  ?= 60
FUZZ_BACKENDS ?= epoll uring
FUZZ_FLAGS    ?=
FUZZ_BIN      := $(FUZZ_BUILD)/fuzz_evq
FUZZ_HAVE     := printf 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}' | \
		 $(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null >/dev/null 2>&1

.PHONY: fuzz fuzz-build

# The library objects: the default rules, in their own BUILD dir.
$(FUZZ_BIN): fuzz/fuzz_evq.c tests/helpers/randengine.h $(LIB_SRCS) $(LIB_HDRS) include/evq.h
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN=address,undefined \
		CFLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" $(FUZZ_BUILD)/libevq.a
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -Iinclude -Itests/helpers -pthread \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer -o $@ $< $(FUZZ_BUILD)/libevq.a -pthread -lrt

fuzz-build:
	@if ! $(FUZZ_HAVE); then echo "skipped: install clang"; exit 0; fi; \
	$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz:
	@if ! $(FUZZ_HAVE); then echo "skipped: install clang"; exit 0; fi; \
	set -e; $(MAKE) --no-print-directory $(FUZZ_BIN); \
	for b in $(FUZZ_BACKENDS); do \
	  echo "== fuzz_evq on backend $$b, $(FUZZ_SECONDS) s"; \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$b; \
	  EVQ_BACKEND=$$b ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -timeout=60 -max_len=1024 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/$$b- $(FUZZ_FLAGS) \
	    $(FUZZ_BUILD)/corpus-$$b fuzz/corpus; \
	done
