#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/tcl/run.sh - the Tcl echo benchmark's matrix (issue 13 item 4):
# bench/tcl/echo_server.tcl under each shell, bench/tcl/echo_client.c as
# the load, for each connection count; prints one raw line per cell as it
# goes, then a markdown table (medians over the rounds).
#
#   sh bench/tcl/run.sh [-d secs] [-r rounds] [-n 500,1000,5000,9000]
#                       [-s stock,evq-epoll,evq-uring] [-m bytes]
#   sh bench/tcl/run.sh -t saved-output   only the table, from the
#                                         "# round=..." lines of a run
#
# Environment: TCLBENCH_CLIENT (the built echo_client), TCLBENCH_TCLSH
# (stock shell, tclsh8.6), TCLBENCH_EVQTCLSH (evqtclsh; its rows are
# skipped when it is not there).  "make bench-tcl" sets them.
#
# Every cell gets a fresh server process, started with its soft descriptor
# limit raised to the hard one (ulimit -n); the client raises its own.
# The shells are interleaved: every round runs every size, and within a
# size every shell, in an order that rotates from round to round.  A cell
# whose server dies is recorded with the server's exit status and the
# first line it printed on stderr (stock tclsh8.6 past FD_SETSIZE).
set -u

secs=3 rounds=5 sizes=500,1000,5000,9000 shells=stock,evq-epoll,evq-uring
bytes=64 tableonly=
while getopts d:r:n:s:m:t: o; do
	case $o in
	d) secs=$OPTARG ;;
	r) rounds=$OPTARG ;;
	n) sizes=$OPTARG ;;
	s) shells=$OPTARG ;;
	m) bytes=$OPTARG ;;
	t) tableonly=$OPTARG ;;
	*) echo "usage: run.sh [-d secs] [-r rounds] [-n sizes] [-s shells] [-m bytes]" >&2
	   exit 1 ;;
	esac
done

# table FILE: per (N, shell) medians over the rounds that ran to the end,
# from the raw lines in FILE (with or without their "# ").
table() {
echo "| connections | shell | echoes/s (median) | min - max | vs stock | p50 ms | p90 ms | p99 ms | max ms | setup ms | client CPU % | server CPU % | rounds ok |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
sed 's/^# //' "$1" | awk -v shells="$shells" '
function med(s,   a, k, i, j, t) {
	k = split(s, a, " ")
	for (i = 2; i <= k; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
function mn(s,   a, k, i, m) {
	k = split(s, a, " "); m = a[1]
	for (i = 2; i <= k; i++) if (a[i] + 0 < m + 0) m = a[i]
	return m
}
function mx(s,   a, k, i, m) {
	k = split(s, a, " "); m = a[1]
	for (i = 2; i <= k; i++) if (a[i] + 0 > m + 0) m = a[i]
	return m
}
/^round=/ {
	delete f
	for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) f[kv[1]] = kv[2]
	key = f["n"] SUBSEP f["shell"]
	if (!(f["n"] in seen)) { seen[f["n"]] = 1; S[++ns] = f["n"] + 0 }
	runs[key]++
	if ("rate" in f) {
		ok[key]++
		rate[key] = rate[key] " " f["rate"]
		rr[f["n"], f["shell"], f["round"]] = f["rate"]; rounds[f["round"]] = 1
		p50[key] = p50[key] " " f["p50_us"]; p90[key] = p90[key] " " f["p90_us"]
		p99[key] = p99[key] " " f["p99_us"]; pmax[key] = pmax[key] " " f["max_us"]
		setup[key] = setup[key] " " f["setup_ms"]; cpu[key] = cpu[key] " " f["client_cpu"]
		scpu[key] = scpu[key] " " ("server_cpu" in f ? f["server_cpu"] : "-")
	} else {
		est[key] = est[key] " " f["established"]
		if (match($0, /err="[^"]*"/)) why[key] = substr($0, RSTART + 5, RLENGTH - 6)
		if (match($0, /server=[^ ]*/)) st[key] = substr($0, RSTART + 7, RLENGTH - 7)
		if (match($0, /server_stderr="[^"]*"/)) serr[key] = substr($0, RSTART + 15, RLENGTH - 16)
	}
}
END {
	for (i = 2; i <= ns; i++)
		for (j = i; j > 1 && S[j - 1] > S[j]; j--) { t = S[j]; S[j] = S[j - 1]; S[j - 1] = t }
	nh = split(shells, H, ",")
	for (i = 1; i <= ns; i++) for (j = 1; j <= nh; j++) {
		key = S[i] SUBSEP H[j]
		if (!runs[key]) continue
		ratio = ""
		if (H[j] != "stock") {
			for (r in rounds)
				if (((S[i], H[j], r) in rr) && ((S[i], "stock", r) in rr))
					ratio = ratio " " rr[S[i], H[j], r] / rr[S[i], "stock", r]
			ratio = ratio != "" ? sprintf("%.2f", med(ratio)) : "-"
		} else
			ratio = "ref"
		if (ok[key])
			printf "| %d | %s | %.0f | %.0f - %.0f | %s | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %s | %d/%d |\n",
			    S[i], H[j], med(rate[key]), mn(rate[key]), mx(rate[key]), ratio,
			    med(p50[key]) / 1e3, med(p90[key]) / 1e3, med(p99[key]) / 1e3,
			    med(pmax[key]) / 1e3, med(setup[key]), med(cpu[key]),
			    scpu[key] ~ /-/ ? "-" : sprintf("%.0f", med(scpu[key])),
			    ok[key], runs[key]
		if (ok[key] < runs[key])
			printf "| %d | %s | failed | established: %s | | server %s: %s | | | | | | | %d/%d |\n",
			    S[i], H[j], substr(est[key], 2), st[key],
			    serr[key] != "" ? serr[key] : why[key], ok[key], runs[key]
	}
}'
}

if [ -n "$tableonly" ]; then
	table "$tableonly"
	exit 0
fi

here=$(dirname "$0")
client=${TCLBENCH_CLIENT:-build/bench/tcl/echo_client}
tclsh=${TCLBENCH_TCLSH:-tclsh8.6}
evqtclsh=${TCLBENCH_EVQTCLSH:-build/tcl/evqtclsh}
server=$here/echo_server.tcl

if ! command -v "$tclsh" >/dev/null 2>&1; then
	echo "bench-tcl: skipped: install tcl8.6"
	exit 0
fi
if [ ! -x "$client" ]; then
	echo "run.sh: $client missing (make $client)" >&2
	exit 1
fi
case ,$shells, in
*,evq-*)
	if [ ! -x "$evqtclsh" ]; then
		echo "# evqtclsh rows skipped: $evqtclsh missing (make tcl; needs tcl8.6-dev)"
		shells=$(echo "$shells" | tr , '\n' | grep -v '^evq-' | paste -sd, -)
	fi ;;
esac
[ -n "$shells" ] || exit 0

hard=$(ulimit -H -n)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tclbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
raw=$tmp/raw

echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(uname -srm) cpus=$(nproc)" \
     "commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
     "load=$(cut -d' ' -f1-3 /proc/loadavg) fd_hard_limit=$hard"
echo "# $(echo 'puts [info patchlevel]' | "$tclsh") stock=$tclsh evqtclsh=$evqtclsh"
echo "# run.sh -d $secs -r $rounds -n $sizes -s $shells -m $bytes"

# cell ROUND SHELL N: one server, one client run; appends one line to $raw.
cell() {
	r=$1 sh=$2 n=$3
	: >"$tmp/port"
	: >"$tmp/serr"
	case $sh in
	stock) (ulimit -S -n "$hard" && exec "$tclsh" "$server") \
		>"$tmp/port" 2>"$tmp/serr" & ;;
	evq-epoll) (ulimit -S -n "$hard" && EVQ_BACKEND=epoll exec "$evqtclsh" "$server") \
		>"$tmp/port" 2>"$tmp/serr" & ;;
	evq-uring) (ulimit -S -n "$hard" && EVQ_BACKEND=uring exec "$evqtclsh" "$server") \
		>"$tmp/port" 2>"$tmp/serr" & ;;
	*) echo "run.sh: unknown shell $sh" >&2; exit 1 ;;
	esac
	spid=$!
	port= i=0
	while [ $i -lt 200 ]; do	# up to 10 s for the server to listen
		port=$(head -n 1 "$tmp/port")
		[ -n "$port" ] && break
		kill -0 $spid 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	if [ -z "$port" ]; then
		out="n=$n failed established=0 err=\"server did not start\""
	else
		out=$("$client" -p "$port" -P $spid -n "$n" -d "$secs" -s "$bytes" 2>"$tmp/cerr")
		[ -n "$out" ] || out="n=$n failed established=0 err=\"client: $(head -n 1 "$tmp/cerr")\""
	fi
	if kill -0 $spid 2>/dev/null; then
		kill $spid
		wait $spid 2>/dev/null
		srv=ok
	else
		wait $spid 2>/dev/null
		srv="exit=$?"
	fi
	msg=$(head -n 1 "$tmp/serr" | tr -d '\r' | sed 's/"/'"'"'/g')
	line="round=$r shell=$sh $out server=$srv"
	[ "$srv" = ok ] || line="$line server_stderr=\"$msg\""
	echo "$line" >>"$raw"
	echo "# $line"
}

nshells=$(echo "$shells" | tr , '\n' | wc -l)
r=1
while [ "$r" -le "$rounds" ]; do
	for n in $(echo "$sizes" | tr , ' '); do
		# rotate the shells' order by the round
		order=$(echo "$shells" | tr , '\n' |
			awk -v k=$(( (r - 1) % nshells )) '{ a[NR - 1] = $0 }
			END { for (i = 0; i < NR; i++) print a[(i + k) % NR] }')
		for sh in $order; do
			cell "$r" "$sh" "$n"
		done
	done
	r=$((r + 1))
done

echo
table "$raw"
