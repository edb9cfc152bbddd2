# SPDX-License-Identifier: MIT
# bench/tcl.mk - Tcl's event loop under load (issue 13 item 4): a
# fileevent-driven echo server in Tcl (bench/tcl/echo_server.tcl) against a
# load generator on evq (bench/tcl/echo_client.c), stock tclsh8.6 against
# evqtclsh on each backend, 500 to 9,000 connections (bench/tcl/run.sh).
#
#   make bench-tcl
#   make bench-tcl TCLBENCH_ARGS='-d 3 -r 5 -n 500,1000,5000,9000' (the defaults; ~3 min)
#   make bench-tcl TCLBENCH_EVQTCLSH=/path/to/evqtclsh
#
# Needs tclsh8.6 (else "skipped: install tcl8.6"); evqtclsh is built by
# "make tcl" (bindings/tcl, needs tcl8.6-dev) and its rows are skipped when
# it is missing.  Results: bench/RESULTS-tcl.md.

TCLBENCH_EVQTCLSH ?= $(BUILD)/tcl/evqtclsh
TCLBENCH_TCLSH ?= tclsh8.6

$(BUILD)/bench/tcl/echo_client: bench/tcl/echo_client.c bench/bench.h $(STATIC) include/evq.h bench/tcl.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL)

bench-build: $(BUILD)/bench/tcl/echo_client

# evqtclsh too, when this tree has the Tcl binding (bindings/tcl/tcl.mk)
bench-tcl: $(BUILD)/bench/tcl/echo_client $(if $(wildcard bindings/tcl/tcl.mk),tcl)
	@if ! command -v $(TCLBENCH_TCLSH) >/dev/null 2>&1; then \
	  echo "bench-tcl: skipped: install tcl8.6"; exit 0; fi; \
	 TCLBENCH_CLIENT='$(BUILD)/bench/tcl/echo_client' \
	 TCLBENCH_TCLSH='$(TCLBENCH_TCLSH)' TCLBENCH_EVQTCLSH='$(TCLBENCH_EVQTCLSH)' \
	 sh bench/tcl/run.sh $(TCLBENCH_ARGS)

.PHONY: bench-tcl
