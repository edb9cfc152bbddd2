# SPDX-License-Identifier: MIT
# bindings/tcl: evq as Tcl 8.6's notifier (included by the Makefile).
#
#   make tcl              $(BUILD)/tcl/evqtclsh and $(BUILD)/tcl/libtclevq.a
#   make check-tcl-smoke  tests/tcl/notifier.c (the notifier through Tcl's C
#                         API) and tests/tcl/smoke.tcl (with evqtclsh), on
#                         every backend (make check runs it)
#
# Both need tcl8.6-dev (tcl.h, libtcl8.6); without it they print
# "skipped: install tcl8.6-dev".  TCL_INCDIR and TCL_LIBS override the
# defaults (Debian's paths).

TCL_INCDIR ?= $(patsubst %/tcl.h,%,$(firstword $(wildcard \
	/usr/include/tcl8.6/tcl.h /usr/include/tcl/tcl.h /usr/local/include/tcl.h)))
TCL_LIBS   ?= -ltcl8.6
TCL_BUILD  := $(BUILD)/tcl
EVQTCLSH   := $(TCL_BUILD)/evqtclsh
TCL_CFLAGS  = $(CFLAGS_ALL) -I$(TCL_INCDIR) -Ibindings/tcl

.PHONY: tcl check-tcl-smoke
ifneq ($(TCL_INCDIR),)
tcl: $(EVQTCLSH) $(TCL_BUILD)/libtclevq.a

$(TCL_BUILD)/tclevq.o: bindings/tcl/tclevq.c bindings/tcl/tclevq.h include/evq.h \
		bindings/tcl/tcl.mk
	@mkdir -p $(dir $@)
	$(CC) $(TCL_CFLAGS) -fPIC -c -o $@ $<

$(TCL_BUILD)/libtclevq.a: $(TCL_BUILD)/tclevq.o
	@rm -f $@
	ar rcs $@ $^

$(EVQTCLSH): bindings/tcl/evqtclsh.c bindings/tcl/tclevq.h $(TCL_BUILD)/tclevq.o $(STATIC)
	$(CC) $(TCL_CFLAGS) -o $@ $< $(TCL_BUILD)/tclevq.o $(STATIC) $(TCL_LIBS) $(LDFLAGS_ALL)

$(TCL_BUILD)/notifier: tests/tcl/notifier.c bindings/tcl/tclevq.h tests/helpers/tap.h \
		$(TCL_BUILD)/tclevq.o $(STATIC)
	$(CC) $(TCL_CFLAGS) -o $@ $< $(TCL_BUILD)/tclevq.o $(STATIC) $(TCL_LIBS) $(LDFLAGS_ALL)

# The smoke test needs more than 1,024 descriptors (a fileevent above
# FD_SETSIZE): the soft limit is raised to 4096 if it is lower.  Skipped
# under SAN=thread: ThreadSanitizer reports a race inside libtcl itself
# (its mutexes are created lazily, unlocked: Tcl_MutexLock), which the
# smoke test's threads reach.  AddressSanitizer/UBSan runs are clean.
check-tcl-smoke: $(EVQTCLSH) $(TCL_BUILD)/notifier $(BUILD)/tests/backends
	@case "$(SAN)" in *thread*) echo "tcl smoke: skipped under SAN=$(SAN) (races inside libtcl)"; exit 0;; esac; \
	[ "$$(ulimit -n)" = unlimited ] || [ "$$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null; \
	for b in $$($(BUILD)/tests/backends); do \
	  echo "== tcl smoke, evqtclsh, backend $$b"; \
	  EVQ_BACKEND=$$b prove -f $(PROVEFLAGS) $(TCL_BUILD)/notifier || exit 1; \
	  EVQ_BACKEND=$$b prove -f $(PROVEFLAGS) --exec '$(EVQTCLSH)' tests/tcl/smoke.tcl || exit 1; \
	done
else
tcl check-tcl-smoke:
	@echo "skipped: install tcl8.6-dev"
endif
