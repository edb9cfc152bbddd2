#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/run.sh - runs the three benchmarks one after the other (make bench).
#
#   BENCH_BIN     directory of the built programs (default build/bench)
#   PIPES_ARGS    arguments for pipes   (default: its own, -n 100,1000,9000 -a 1,100 ...)
#   TRIGGER_ARGS  arguments for trigger
#   TIMERS_ARGS   arguments for timers
#   BENCH_COMMIT  names the source when it is not a git checkout
#
# Every line a program prints is "key=value ..." or a "#" comment; the
# machine note comes first so a saved run says where it ran.
set -e
bin=${BENCH_BIN:-build/bench}

echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(uname -srm) cpus=$(nproc)" \
     "load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ,)" \
     "commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo none)}"
# shellcheck disable=SC2086 # the *_ARGS are word lists on purpose
"$bin/pipes" $PIPES_ARGS
# shellcheck disable=SC2086
"$bin/trigger" $TRIGGER_ARGS
# shellcheck disable=SC2086
"$bin/timers" $TIMERS_ARGS
echo "# done $(date -u '+%Y-%m-%dT%H:%M:%SZ')" \
     "load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ,)"
