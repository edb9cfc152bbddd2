# SPDX-License-Identifier: MIT
# bench/bench.mk - benchmarks, included by the top-level Makefile.
#
#   make bench                         build and run all three (a few minutes)
#   make bench-all                     every benchmark of every issue
#   make bench PIPES_ARGS='-n 1000 -r 50' TRIGGER_ARGS='-m 50000' \
#              TIMERS_ARGS='-t 100000'  other sizes (see each program's usage)
#   make BUILD=build-bench bench       keep the build apart from others'
#
# Each program compiles in a peer library (libevent, libev, libuv) only when
# it is installed, with -DHAVE_<PEER>, and prints "skipped: install ..."
# for the ones that are not.  libev ships no .pc file on Debian: its header
# is the test there.

BENCH_NAMES := pipes trigger timers
BENCH_PROGS := $(BENCH_NAMES:%=$(BUILD)/bench/%)

bench_pc = $(shell pkg-config --exists $(1) 2>/dev/null && echo yes)
BENCH_HAVE_LIBEVENT := $(call bench_pc,libevent)
BENCH_HAVE_LIBEVENT_PTHREADS := $(call bench_pc,libevent_pthreads)
BENCH_HAVE_LIBUV := $(call bench_pc,libuv)
BENCH_HAVE_LIBEV_PC := $(call bench_pc,libev)
BENCH_HAVE_LIBEV := $(or $(BENCH_HAVE_LIBEV_PC),$(if $(wildcard /usr/include/ev.h),yes))

BENCH_CFLAGS := \
	$(if $(BENCH_HAVE_LIBEVENT),-DHAVE_LIBEVENT $(shell pkg-config --cflags libevent)) \
	$(if $(BENCH_HAVE_LIBEVENT_PTHREADS),-DHAVE_LIBEVENT_PTHREADS) \
	$(if $(BENCH_HAVE_LIBEV),-DHAVE_LIBEV $(if $(BENCH_HAVE_LIBEV_PC),$(shell pkg-config --cflags libev))) \
	$(if $(BENCH_HAVE_LIBUV),-DHAVE_LIBUV $(shell pkg-config --cflags libuv))
BENCH_LIBS := \
	$(if $(BENCH_HAVE_LIBEVENT_PTHREADS),$(shell pkg-config --libs libevent_pthreads)) \
	$(if $(BENCH_HAVE_LIBEVENT),$(shell pkg-config --libs libevent)) \
	$(if $(BENCH_HAVE_LIBEV),$(if $(BENCH_HAVE_LIBEV_PC),$(shell pkg-config --libs libev),-lev)) \
	$(if $(BENCH_HAVE_LIBUV),$(shell pkg-config --libs libuv))

$(BUILD)/bench/%: bench/%.c bench/bench.h $(STATIC) include/evq.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(BENCH_CFLAGS) -o $@ $< $(STATIC) $(BENCH_LIBS) $(LDFLAGS_ALL) -lrt

bench-build: $(BENCH_PROGS)

bench: $(BENCH_PROGS)
	@$(if $(BENCH_HAVE_LIBEVENT),,echo "bench: libevent skipped: install libevent-dev";) \
	 $(if $(BENCH_HAVE_LIBEV),,echo "bench: libev skipped: install libev-dev";) \
	 $(if $(BENCH_HAVE_LIBUV),,echo "bench: libuv skipped: install libuv1-dev";) \
	 BENCH_BIN='$(BUILD)/bench' PIPES_ARGS='$(PIPES_ARGS)' \
	 TRIGGER_ARGS='$(TRIGGER_ARGS)' TIMERS_ARGS='$(TIMERS_ARGS)' \
	 sh bench/run.sh

.PHONY: bench-build

# Every benchmark of every issue, one after the other (several minutes):
# the queue core (above), many waiters, event masks, memory words, io_uring.
bench-all: bench bench-waiters bench-mask bench-words bench-uring bench-latchmany
.PHONY: bench-all
