# SPDX-License-Identifier: MIT
# evq - GNU make, no configure step.
#
#   make                 library (static + shared), tests, examples
#   make check           run the test suite (TAP, prove) on every backend
#   make check-docs      compile and run the man pages' and README's examples
#   make demo            run examples/demo
#   make bench           run the benchmarks
#   make model           model-check the Promela protocols with spin
#   make fuzz            libFuzzer run of the random test, clang (fuzz/fuzz.mk)
#   make tcl             evqtclsh, Tcl 8.6 on evq, if tcl8.6-dev is installed
#                        (bindings/tcl/tcl.mk; make check runs its smoke test)
#   make install PREFIX=/usr/local    also DESTDIR=; make uninstall likewise
#
# Variants: BUILD=dir (default build), SAN=address,undefined or SAN=thread,
# CC=clang.  Each variant should use its own BUILD directory.  WERROR=1
# turns warnings into errors (.ci/run does; the default does not, so that a
# newer compiler's new warnings never break a user's build).

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
OPT      ?= -O2
SAN      ?=

WERROR   ?=

# The version comes from include/evq.h (EVQ_VERSION_MAJOR/MINOR/PATCH), so
# the header, evq_version(), the file names and evq.pc cannot disagree.
# The soname changes whenever the ABI may: with every minor release while
# the major number is 0 (libevq.so.0.2), with every major one from 1.0 on.
evq_hver  = $(shell sed -n 's/^.define EVQ_VERSION_$(1)  *\([0-9][0-9]*\).*/\1/p' include/evq.h)
VMAJOR   := $(call evq_hver,MAJOR)
VMINOR   := $(call evq_hver,MINOR)
VPATCH   := $(call evq_hver,PATCH)
VERSION  := $(VMAJOR).$(VMINOR).$(VPATCH)
ifeq ($(words $(VMAJOR) $(VMINOR) $(VPATCH)),3)
else
$(error include/evq.h: no EVQ_VERSION_MAJOR/MINOR/PATCH lines to take the version from)
endif
SOMAJOR  := $(if $(filter 0,$(VMAJOR)),0.$(VMINOR),$(VMAJOR))

WARN     := -Wall -Wextra $(if $(filter-out 0,$(WERROR)),-Werror)
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -pthread \
	      $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer) $(CFLAGS)
LDFLAGS_ALL := -pthread $(if $(SAN),-fsanitize=$(SAN)) $(LDFLAGS)

# src/ holds the library: core/ (queue, posting, waiting, the watcher
# threads), kinds/ (one file per event kind), backend/ (the contract and one
# folder or file per kernel mechanism), and the few files all of them share
# (README.md "Layout").  Private headers are included by their path below
# src/ ("backend/backend.h"), so the library compiles with -Isrc.
LIB_SRCS  := $(sort $(wildcard src/*.c src/*/*.c src/*/*/*.c))
LIB_HDRS  := $(sort $(wildcard src/*.h src/*/*.h src/*/*/*.h))
LIB_OBJS  := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
# tests/*.c: one TAP program per feature, each run by prove;
# tests/helpers/: what they share (tap.h, evqtest.h, ...) and the programs
# that are not tests (backends, xproc_child), built next to the tests
# (tests/README.md).
TEST_SRCS := $(sort $(wildcard tests/*.c))
TESTS     := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
TEST_HELPERS := $(TEST_HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/%)
TEST_HDRS := $(wildcard tests/helpers/*.h)
EX_SRCS   := $(sort $(wildcard examples/*.c))
EXAMPLES  := $(EX_SRCS:examples/%.c=$(BUILD)/examples/%)

STATIC := $(BUILD)/libevq.a
SHARED := $(BUILD)/libevq.so.$(VERSION)
# What tests/ (and benchmarks that steer the backend) link: the same
# objects, but config.c compiled with -DEVQ_TESTING, so that the test
# switches of the environment (EVQ_URING_REFUSE, EVQ_URING_FAULT,
# EVQ_URING_ENTRIES, EVQ_URING_INLINE: src/config.c) work there and
# nowhere else; $(STATIC) and $(SHARED), which are installed, ignore them.
TEST_STATIC := $(BUILD)/testing/libevq.a
TEST_OBJS   := $(filter-out $(BUILD)/obj/config.o,$(LIB_OBJS)) $(BUILD)/testing/config.o

.PHONY: all lib tests examples check check-exports check-switches demo bench model install uninstall clean
all: lib tests examples

lib: $(STATIC) $(SHARED) $(TEST_STATIC)

$(BUILD)/obj/%.o: src/%.c $(LIB_HDRS) include/evq.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -fPIC -c -o $@ $<

# evq_wait pushes a cancellation handler around every sleep (core/wait.c,
# round_wait): compiled with -fexceptions, glibc's pthread_cleanup_push is
# an unwinding cleanup, run by the cancel's forced unwind, instead of a
# __sigsetjmp and a register/unregister pair per wait.
$(BUILD)/obj/core/wait.o: CFLAGS_ALL += -fexceptions

$(BUILD)/testing/config.o: src/config.c $(LIB_HDRS) include/evq.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -DEVQ_TESTING -fPIC -c -o $@ $<

$(STATIC): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(TEST_STATIC): $(TEST_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJS) src/libevq.map
	$(CC) -shared -Wl,-soname,libevq.so.$(SOMAJOR) -Wl,--version-script=src/libevq.map -o $@ $(LIB_OBJS) $(LDFLAGS_ALL)
	ln -sf libevq.so.$(VERSION) $(BUILD)/libevq.so.$(SOMAJOR)
	ln -sf libevq.so.$(SOMAJOR) $(BUILD)/libevq.so

# Tests link the static library (its test build) and may include src/
# headers for white-box checks; tests/helpers/tap.h is the TAP helper.
# The helper programs land beside the tests: tests/xproc execs its
# xproc_child from its own directory.
TEST_CC = $(CC) $(CFLAGS_ALL) -Isrc -Itests/helpers -o $@ $< $(TEST_STATIC) $(LDFLAGS_ALL) -lrt
$(BUILD)/tests/%: tests/%.c $(TEST_STATIC) $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(TEST_CC)

$(BUILD)/tests/%: tests/helpers/%.c $(TEST_STATIC) $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(TEST_CC)

$(BUILD)/tests/xproc: | $(BUILD)/tests/xproc_child

# tests/faults makes the library's allocations, thread starts and descriptor
# creations fail one at a time: its calls (and libevq.a's) to these go
# through wrappers in the test.  The library itself is built as always.
comma := ,
FAULT_WRAPS := malloc calloc realloc free pthread_create mmap munmap \
	epoll_create1 eventfd signalfd timerfd_create epoll_ctl syscall
$(BUILD)/tests/faults: LDFLAGS_ALL += $(addprefix -Wl$(comma)--wrap=,$(FAULT_WRAPS))

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS_ALL)

tests: $(TESTS) $(TEST_HELPERS)
examples: $(EXAMPLES)

# Every test runs once per backend this machine has ($(BUILD)/tests/backends,
# from tests/helpers/, lists them; BACKENDS is that list for the programs of
# the documentation, MANEX below); a backend the kernel lacks is reported
# as skipped by the tests.
# On io_uring the tests of memory words run once more with the inline
# futex_waitv sleep off, so that the ring's own word waits are tested on
# queues without fds too.
BACKENDS ?= $(shell $(BUILD)/tests/backends 2>/dev/null || echo epoll)
RING_WORD_TESTS := $(addprefix $(BUILD)/tests/,word latch sem wordsleep threads multiwait xproc uring fairness hostile shutdown)
check: $(TESTS) $(TEST_HELPERS) $(EXAMPLES) check-exports check-switches
	@set -e; bs=$$($(BUILD)/tests/backends); for b in $$bs; do \
	  echo "== backend $$b"; \
	  EVQ_BACKEND=$$b prove -f $(PROVEFLAGS) $(TESTS); \
	done; \
	case "$$bs" in *uring*) \
	  echo "== backend uring, words through the ring (EVQ_URING_INLINE=0)"; \
	  EVQ_BACKEND=uring EVQ_URING_INLINE=0 prove -f $(PROVEFLAGS) $(RING_WORD_TESTS);; \
	esac; \
	echo "== documentation and examples"; \
	$(MANEX) prove -f $(PROVEFLAGS) tests/manex.pl; \
	$(MAKE) -s --no-print-directory check-tcl-smoke

# The code of the documentation, compiled once and run on every backend:
# every man page's EXAMPLES section, README.md's C blocks (the first one is
# examples/readme.c), and every program of examples/ with no arguments,
# which must be a short self-test exiting 0 (tests/manex.pl says more).
MANEX = MANEX_BUILD='$(BUILD)' MANEX_CC='$(CC)' MANEX_BACKENDS='$(BACKENDS)' \
	MANEX_CFLAGS='$(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer) $(CFLAGS) $(LDFLAGS)'
check-docs: $(STATIC) $(EXAMPLES) $(BUILD)/tests/backends
	@$(MANEX) prove -f $(PROVEFLAGS) tests/manex.pl
.PHONY: check-docs

# libevq.so exports exactly the functions include/evq.h declares, each
# listed in src/libevq.map and documented in man/man3, whose pages carry
# this version (tests/exports.sh says what to add where).
check-exports: $(SHARED)
	@sh tests/exports.sh $(SHARED) $(VERSION)

# The test switches of the environment steer $(TEST_STATIC), never the
# installed $(STATIC) (src/config.c).
check-switches: $(STATIC) $(TEST_STATIC)
	@sh tests/switches.sh "$(CC) $(CFLAGS_ALL)" $(STATIC) $(TEST_STATIC) $(BUILD)/switches

demo: $(BUILD)/examples/demo
	$(BUILD)/examples/demo

-include bench/bench.mk
-include model/model.mk
-include fuzz/fuzz.mk
-include bindings/tcl/tcl.mk

# evq.pc's paths are relative to ${prefix} (or ${exec_prefix}) where
# LIBDIR and INCDIR are inside PREFIX, so the file can be relocated.
PC_LIBDIR := $(patsubst $(PREFIX)/%,$${exec_prefix}/%,$(LIBDIR))
PC_INCDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCDIR))
MAN3 := $(notdir $(wildcard man/man3/*.3))
MAN7 := $(notdir $(wildcard man/man7/*.7))

install: $(STATIC) $(SHARED)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man7
	install -m 644 include/evq.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libevq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libevq.so.$(SOMAJOR)
	ln -sf libevq.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libevq.so
	install -m 644 $(addprefix man/man3/,$(MAN3)) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(addprefix man/man7/,$(MAN7)) $(DESTDIR)$(MANDIR)/man7/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCDIR@|$(PC_INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    evq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/evq.pc

# Removes what install put there, given the same PREFIX (LIBDIR, ...) and
# DESTDIR; directories stay, as other packages may use them.
uninstall:
	rm -f $(DESTDIR)$(INCDIR)/evq.h $(DESTDIR)$(LIBDIR)/libevq.a \
	      $(DESTDIR)$(LIBDIR)/libevq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libevq.so.$(SOMAJOR) \
	      $(DESTDIR)$(LIBDIR)/libevq.so $(DESTDIR)$(LIBDIR)/pkgconfig/evq.pc
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(MAN3))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(MAN7))

clean:
	rm -rf $(BUILD) build-*

# The suite under valgrind (memcheck), scaled down: valgrind serialises
# threads and is 20-50x slower.  Memory errors fail the run; leaks are left
# to LeakSanitizer in the ASan runs (forked children that _exit() without
# freeing what they inherited are not leaks, but memcheck reports them).
# The malloc-counting test skips itself.  --fair-sched=yes: valgrind's
# default lock let a spinning thread keep a woken one from running for over
# a minute (tests/latch.c, set_many in a handler).
VALGRIND := valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=no
check-valgrind: $(TESTS) $(TEST_HELPERS)
	@command -v valgrind >/dev/null || { echo "skipped: install valgrind"; exit 0; }; \
	EVQ_TEST_SCALE=0.05 EVQ_TEST_VALGRIND=1 prove -f --exec '$(VALGRIND)' $(TESTS)
.PHONY: check-valgrind

# Tcl's own test suite judges evqtclsh (bindings/tcl/check-tcl.sh: fetches
# the Tcl sources of the installed patchlevel into $(BUILD)/tcl-src, builds
# Tcl's test commands, runs the files with stock tclsh8.6 and evqtclsh on
# every backend).  `make tcl` builds evqtclsh where that target exists
# (`make -q` exits 2 when there is no rule); without evqtclsh only stock runs.
check-tcl:
	@$(MAKE) -q tcl >/dev/null 2>&1; if [ $$? -ne 2 ]; then $(MAKE) tcl || exit 1; fi; \
	CC='$(CC)' bash bindings/tcl/check-tcl.sh $(BUILD)
.PHONY: check-tcl
