# model/model.mk - model checking, included by the top-level Makefile.
#
#   make model                        every model/*.pml, every run it lists
#   make model MODELS=model/mask.pml  some of them
#
# Runs are listed inside each model, in comment lines
#   @run <spin -a options> | <pan compile options> | <pan options>
# (safety: "-DSAFETY"; liveness: no -DSAFETY, pan "-a -f"); see
# model/check.sh.  The target fails if any run fails or finds an error, and
# prints "skipped: install spin" (and succeeds) where spin is missing.
# Work files go to $(BUILD)/model.

MODELS ?= $(sort $(wildcard model/*.pml))

model:
	@CC='$(CC)' sh model/check.sh $(BUILD)/model $(MODELS)
