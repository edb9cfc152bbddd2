# SPDX-License-Identifier: MIT
# model/model.mk - model checking, included by the top-level Makefile.
#
#   make model                        every model/*.pml, every run and tooth
#   make model MODELS=model/mask.pml  some of them
#
# Runs and teeth are listed inside each model, in comment lines
#   @run <spin -a options> | <pan compile options> | <pan options>
#   @tooth <spin -a options> | <pan compile options> | <pan options>
# (safety: "-DSAFETY"; liveness: no -DSAFETY, pan "-a -f"); a tooth is a
# run with a mutation (a -D that breaks one protocol step) that must make
# pan report an error; see model/check.sh.  The target fails if any run
# fails or finds an error, or if any tooth finds none (TOOTHLESS), and
# prints "skipped: install spin" (and succeeds) where spin is missing.
# Work files go to $(BUILD)/model; MODEL_MEMLIM (MB, default 4096) caps
# each pan.

MODELS ?= $(sort $(wildcard model/*.pml))

model:
	@CC='$(CC)' sh model/check.sh $(BUILD)/model $(MODELS)
