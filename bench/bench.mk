# SPDX-License-Identifier: MIT
# bench/bench.mk - every benchmark, included by the top-level Makefile after
# its variables (CC, CFLAGS_ALL, LDFLAGS_ALL, STATIC, TEST_STATIC, BUILD).
# bench/README.md says how to add one.
#
#   make bench                 pipes, trigger, timers (bench/run.sh; a few minutes)
#   make bench PIPES_ARGS='-n 1000 -r 50' TRIGGER_ARGS='-m 50000' \
#              TIMERS_ARGS='-t 100000'           other sizes (each program's usage)
#   make bench-all             every benchmark of every issue, one after the other
#   make bench-build           build them all, run none
#   make bench-waiters  [WAITERS_ARGS='-e 2000 -r 5']        many waiters, one queue
#   make bench-mask     [MASK_ARGS='-m 20000 -r 11']          event masks
#   make bench-words    [JOBTOKEN_ARGS=... LATCH_ARGS=... WAITV_ARGS=...]
#                       words, semaphores, latches (jobtoken, latch, waitv)
#   make bench-latchmany [LATCHMANY_ARGS='-n 2,4,8,32,128 -m 300 -r 11 -v']
#   make bench-uring    [URING_ARGS='-r 21 -m 10000 -t pipes,trigger,latch']
#   make bench-pidexit  [PIDEXIT_ARGS='-r 11 -n 256 -c 1,64']
#   make bench-peers    [PEERS_ARGS=... PEERSWAKE_ARGS=... PEERSTIMERS_ARGS=...]
#                       [PEERS_OUT=bench/RESULTS-peers.md]   evq vs floors and peers
#   make bench-jobpool  [JOBPOOL_ROUNDS=7]                    (bench/jobpool.sh)
#   make bench-tcl      [TCLBENCH_ARGS='-d 3 -r 5 -n 500,1000,5000,9000']
#                       [TCLBENCH_EVQTCLSH=/path/to/evqtclsh]  (bench/tcl/run.sh)
#   make BUILD=build-bench bench       keep the build apart from others'
#
# The results and the exact commands behind them: bench/RESULTS*.md.

# Every bench/NAME.c (and bench/tcl/echo_client.c) is one program,
# $(BUILD)/bench/NAME, built by the one rule below with the harness
# (bench/harness.c, bench/bench.h).  Per program, optionally:
#   BENCH_LIBEVQ_NAME   the libevq.a it links (default $(STATIC))
#   BENCH_PEERS_NAME    yes: compile in the peer libraries found (below)
#   BENCH_CFLAGS_NAME, BENCH_LIBS_NAME   anything else it needs
BENCH_SRCS  := $(filter-out bench/harness.c,$(sort $(wildcard bench/*.c bench/tcl/*.c)))
BENCH_ALL   := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
BENCH_HDRS  := $(wildcard bench/*.h)

# uring measures the ring's own word waits as well: it links the test build
# of libevq.a, the one that reads EVQ_URING_INLINE (src/config.c).
BENCH_LIBEVQ_uring := $(TEST_STATIC)
BENCH_PEERS_pipes   := yes
BENCH_PEERS_trigger := yes
BENCH_PEERS_timers  := yes

# A peer library (libevent, libev, libuv) is compiled in, with
# -DHAVE_<PEER>, only when pkg-config finds it; the programs print
# "skipped: install ..." for the ones that are not.  libev ships no .pc
# file on Debian: its header is the test there.
bench_pc = $(shell pkg-config --exists $(1) 2>/dev/null && echo yes)
BENCH_HAVE_LIBEVENT := $(call bench_pc,libevent)
BENCH_HAVE_LIBEVENT_PTHREADS := $(call bench_pc,libevent_pthreads)
BENCH_HAVE_LIBUV := $(call bench_pc,libuv)
BENCH_HAVE_LIBEV_PC := $(call bench_pc,libev)
BENCH_HAVE_LIBEV := $(or $(BENCH_HAVE_LIBEV_PC),$(if $(wildcard /usr/include/ev.h),yes))

BENCH_PEER_CFLAGS := \
	$(if $(BENCH_HAVE_LIBEVENT),-DHAVE_LIBEVENT $(shell pkg-config --cflags libevent)) \
	$(if $(BENCH_HAVE_LIBEVENT_PTHREADS),-DHAVE_LIBEVENT_PTHREADS) \
	$(if $(BENCH_HAVE_LIBEV),-DHAVE_LIBEV $(if $(BENCH_HAVE_LIBEV_PC),$(shell pkg-config --cflags libev))) \
	$(if $(BENCH_HAVE_LIBUV),-DHAVE_LIBUV $(shell pkg-config --cflags libuv))
BENCH_PEER_LIBS := \
	$(if $(BENCH_HAVE_LIBEVENT_PTHREADS),$(shell pkg-config --libs libevent_pthreads)) \
	$(if $(BENCH_HAVE_LIBEVENT),$(shell pkg-config --libs libevent)) \
	$(if $(BENCH_HAVE_LIBEV),$(if $(BENCH_HAVE_LIBEV_PC),$(shell pkg-config --libs libev),-lev)) \
	$(if $(BENCH_HAVE_LIBUV),$(shell pkg-config --libs libuv))

# make bench-peers: evq on each backend, the raw floors and every peer,
# sd-event (libsystemd) included, in three programs; bench/peers.sh runs
# them and writes the Markdown table (PEERS_OUT, default: stdout only).
BENCH_HAVE_SDEVENT := $(call bench_pc,libsystemd)
BENCH_SDEVENT_CFLAGS := $(if $(BENCH_HAVE_SDEVENT),-DHAVE_SDEVENT $(shell pkg-config --cflags libsystemd))
BENCH_SDEVENT_LIBS := $(if $(BENCH_HAVE_SDEVENT),$(shell pkg-config --libs libsystemd))
BENCH_PEERS_PROGS := peers peerswake peerstimers
$(foreach p,$(BENCH_PEERS_PROGS),$(eval BENCH_PEERS_$(p) := yes)\
	$(eval BENCH_CFLAGS_$(p) := $(BENCH_SDEVENT_CFLAGS))$(eval BENCH_LIBS_$(p) := $(BENCH_SDEVENT_LIBS)))

# The one rule.  $* is the program's name below bench/ ("pipes",
# "tcl/echo_client"); both libraries are prerequisites, as which one a
# program links is a variable of its name.
bench_libevq = $(or $(BENCH_LIBEVQ_$*),$(STATIC))
$(BUILD)/bench/%: bench/%.c bench/harness.c $(BENCH_HDRS) $(STATIC) $(TEST_STATIC) \
		include/evq.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ibench $(if $(BENCH_PEERS_$*),$(BENCH_PEER_CFLAGS)) $(BENCH_CFLAGS_$*) \
		-o $@ $< bench/harness.c $(bench_libevq) \
		$(if $(BENCH_PEERS_$*),$(BENCH_PEER_LIBS)) $(BENCH_LIBS_$*) $(LDFLAGS_ALL) -lrt

bench-build: $(BENCH_ALL)

# The run targets.  One program, its arguments in NAME_ARGS: bench-NAME.
# Those in BENCH_STAMPED first print a "# date kernel cpus commit load"
# line, as their RESULTS files quote it.
BENCH_ONE := waiters mask latchmany uring pidexit
BENCH_STAMPED := uring pidexit
bench_upper = $(shell echo '$(1)' | tr a-z A-Z)
bench_stamp = @echo "\# $$(date -u '+%Y-%m-%dT%H:%M:%SZ') $$(uname -srm) cpus=$$(nproc)" \
	"commit=$$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
	"load=$$(cut -d' ' -f1-3 /proc/loadavg)"
define bench_one
bench-$(1): $$(BUILD)/bench/$(1)
	$(if $(filter $(1),$(BENCH_STAMPED)),$$(bench_stamp))
	$$(BUILD)/bench/$(1) $$($(call bench_upper,$(1))_ARGS)
endef
$(foreach b,$(BENCH_ONE),$(eval $(call bench_one,$(b))))

BENCH_MAIN := $(addprefix $(BUILD)/bench/,pipes trigger timers)
bench: $(BENCH_MAIN)
	@$(if $(BENCH_HAVE_LIBEVENT),,echo "bench: libevent skipped: install libevent-dev";) \
	 $(if $(BENCH_HAVE_LIBEV),,echo "bench: libev skipped: install libev-dev";) \
	 $(if $(BENCH_HAVE_LIBUV),,echo "bench: libuv skipped: install libuv1-dev";) \
	 BENCH_BIN='$(BUILD)/bench' PIPES_ARGS='$(PIPES_ARGS)' \
	 TRIGGER_ARGS='$(TRIGGER_ARGS)' TIMERS_ARGS='$(TIMERS_ARGS)' \
	 sh bench/run.sh

PEERS_OUT ?=
bench-peers: $(addprefix $(BUILD)/bench/,$(BENCH_PEERS_PROGS))
	@$(if $(BENCH_HAVE_SDEVENT),,echo "bench-peers: sd-event skipped: install libsystemd-dev";) \
	 BENCH_BIN='$(BUILD)/bench' PEERS_ARGS='$(PEERS_ARGS)' PEERSWAKE_ARGS='$(PEERSWAKE_ARGS)' \
	 PEERSTIMERS_ARGS='$(PEERSTIMERS_ARGS)' sh bench/peers.sh $(PEERS_OUT)

BENCH_WORDS := $(addprefix $(BUILD)/bench/,jobtoken latch waitv)
bench-words: $(BENCH_WORDS)
	$(BUILD)/bench/jobtoken $(JOBTOKEN_ARGS)
	$(BUILD)/bench/latch $(LATCH_ARGS)
	$(BUILD)/bench/waitv $(WAITV_ARGS)

# this build alone; bench/RESULTS.md ("Job pool") shows how to run it
# against an older build in the same alternated run
JOBPOOL_ROUNDS ?= 7
bench-jobpool: $(BUILD)/bench/jobpool
	sh bench/jobpool.sh $(JOBPOOL_ROUNDS) this=$(BUILD)/bench/jobpool

# A fileevent-driven echo server in Tcl (bench/tcl/echo_server.tcl) against
# a load generator on evq (bench/tcl/echo_client.c), stock tclsh8.6 against
# evqtclsh on each backend (bench/tcl/run.sh).  Needs tclsh8.6 (else
# "skipped: install tcl8.6"); evqtclsh is built by "make tcl" where this
# tree has the Tcl binding (bindings/tcl/tcl.mk, needs tcl8.6-dev) and its
# rows are skipped when it is missing.
TCLBENCH_EVQTCLSH ?= $(BUILD)/tcl/evqtclsh
TCLBENCH_TCLSH ?= tclsh8.6
bench-tcl: $(BUILD)/bench/tcl/echo_client $(if $(wildcard bindings/tcl/tcl.mk),tcl)
	@if ! command -v $(TCLBENCH_TCLSH) >/dev/null 2>&1; then \
	  echo "bench-tcl: skipped: install tcl8.6"; exit 0; fi; \
	 TCLBENCH_CLIENT='$(BUILD)/bench/tcl/echo_client' \
	 TCLBENCH_TCLSH='$(TCLBENCH_TCLSH)' TCLBENCH_EVQTCLSH='$(TCLBENCH_EVQTCLSH)' \
	 sh bench/tcl/run.sh $(TCLBENCH_ARGS)

# the queue core (above), many waiters, event masks, memory words,
# io_uring, evq_latch_set_many, process exits
bench-all: bench bench-waiters bench-mask bench-words bench-uring bench-latchmany bench-pidexit

.PHONY: bench bench-build bench-all bench-words bench-peers bench-jobpool bench-tcl $(BENCH_ONE:%=bench-%)
