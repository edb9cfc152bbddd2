#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/jobpool.sh - runs bench/jobpool.c builds alternately and summarises.
#
#   sh bench/jobpool.sh ROUNDS label=binary [label=binary ...]
#
# Every round runs each binary on each backend with 8 workers (24 jobs)
# and 16 workers (48 jobs), 3 tokens, 100 ms jobs, the binaries in turn
# (so that a change of machine load hits all alike); then prints, per
# (label, backend, workers), the median, min and max of wall/ideal over the
# rounds and the smallest max_in_use seen.
set -eu
rounds=$1; shift
out=$(mktemp)
r=1
while [ "$r" -le "$rounds" ]; do
	for spec in "$@"; do
		label=${spec%%=*} bin=${spec#*=}
		for b in epoll uring; do
			"$bin" -l "$label" -b "$b" -k 8 -t 3 -n 24 -d 100 >> "$out"
			"$bin" -l "$label" -b "$b" -k 16 -t 3 -n 48 -d 100 >> "$out"
		done
	done
	r=$((r + 1))
done
grep '^bench=' "$out" | awk '
{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  key = f["label"] " " f["backend"] " " f["k"]
  if (!(key in n)) { order[++nk] = key }
  v[key, ++n[key]] = f["ratio"]
  if (!(key in mu) || f["max_in_use"] + 0 < mu[key]) mu[key] = f["max_in_use"] + 0 }
END {
  printf "%-8s %-6s %7s %8s %8s %8s %6s %13s\n", "build", "backend", "workers",
	"median", "min", "max", "runs", "min(max_use)"
  for (j = 1; j <= nk; j++) {
    key = order[j]; m = n[key]
    for (a = 1; a <= m; a++) s[a] = v[key, a]
    for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++)
      if (s[b] < s[a]) { t = s[a]; s[a] = s[b]; s[b] = t }
    med = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
    split(key, k, " ")
    printf "%-8s %-6s %7s %7.3fx %7.3fx %7.3fx %6d %13d\n", k[1], k[2], k[3],
	med, s[1], s[m], m, mu[key]
  } }'
rm -f "$out"
