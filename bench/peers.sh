#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/peers.sh - make bench-peers: runs peers, peerswake and peerstimers
# one after the other and, given a file name, writes their figures there as
# Markdown tables (bench/RESULTS-peers.md), the raw lines kept below them.
#
#   sh bench/peers.sh [OUT.md]
#   BENCH_BIN          the built programs (default build/bench)
#   PEERS_ARGS, PEERSWAKE_ARGS, PEERSTIMERS_ARGS   each program's arguments
#   BENCH_COMMIT       names the source when it is not a git checkout
set -e
bin=${BENCH_BIN:-build/bench}
out=$1
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ,; }
{
	echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(uname -srm) cpus=$(nproc)" \
	     "load=$(load)" \
	     "commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo none)}"
	# shellcheck disable=SC2086 # the *_ARGS are word lists on purpose
	"$bin/peers" $PEERS_ARGS
	# shellcheck disable=SC2086
	"$bin/peerswake" $PEERSWAKE_ARGS
	# shellcheck disable=SC2086
	"$bin/peerstimers" $PEERSTIMERS_ARGS
	echo "# done $(date -u '+%Y-%m-%dT%H:%M:%SZ') load=$(load)"
} | tee "$raw"
[ -n "$out" ] || exit 0

# The tables: one awk pass over the lines; v[k] is field k of a line.
awk -v cmd="make BUILD=build-bench bench-peers PEERS_OUT=$out \
PEERS_ARGS='$PEERS_ARGS' PEERSWAKE_ARGS='$PEERSWAKE_ARGS' PEERSTIMERS_ARGS='$PEERSTIMERS_ARGS'" '
function parse(   i, kv) {
	delete v
	for (i = 1; i <= NF; i++)
		if (split($i, kv, "=") == 2)
			v[kv[1]] = kv[2]
}
function r(k) { return sprintf("%s (%s–%s)", v[k "_ratio_vs_epoll"], v[k "_ratio_min"], v[k "_ratio_max"]) }
function add(fig, line) { body[fig] = body[fig] line "\n" }
NR == 1 { stamp = $0; split($0, w, "load="); split(w[2], l, ","); load1 = l[1] + 0 }
/^bench=/ { parse() }
/^bench=.*skipped/ { skipped = skipped "- " $0 "\n"; next }
/fig=pipes / { add("pipes", "| " v["n"] " | " v["a"] " | " v["impl"] " | " v["setup_us"] " | " v["run_us"] " | " v["total_us"] " | " r("total") " |") }
/fig=scale / { add("scale", "| " v["n"] " | " v["impl"] " | " v["run_ns_per_event"] " | " r("run") " |") }
/fig=fdmem / { add("fdmem", "| " v["impl"] " | " v["heap_bytes_per_fd"] " | " v["rss_bytes_per_fd"] " |") }
/fig=timermem / { add("tmem", "| " v["impl"] " | " v["heap_bytes_per_timer"] " | " v["rss_bytes_per_timer"] " |") }
/fig=wake / { add("wake", "| " v["impl"] " | " v["ns_median"] " | " v["ratio_vs_futex"] " (" v["ratio_vs_futex_min"] "–" v["ratio_vs_futex_max"] ") | " v["ratio_vs_epoll"] " (" v["ratio_vs_epoll_min"] "–" v["ratio_vs_epoll_max"] ") |") }
/fig=timers / {
	s = "| " v["pattern"] " | " v["impl"]
	for (k = 1; k <= 3; k++) {
		op = k == 1 ? "add" : k == 2 ? "fire" : "cancel"
		s = s " | " v[op "_ns"] " | " v[op "_ratio_vs_libev"] " (" v[op "_ratio_min"] "–" v[op "_ratio_max"] ")"
	}
	add("timers", s " |")
}
{ rawlines = rawlines $0 "\n" }
END {
	print "# bench-peers: evq against the floors and its peers\n"
	print "Written by `bench/peers.sh` (`make bench-peers`); the programs are"
	print "`bench/peers.c`, `bench/peerswake.c`, `bench/peerstimers.c` (their head"
	print "comments say what each figure does).  Command:\n"
	print "    " cmd "\n"
	print "Machine: `" stamp "`\n"
	if (load1 > 1)
		print "**The machine was shared and noisy during this run (load " load1 " > 1): other jobs ran on its 2 CPUs. The figures are indicative only; rerun on an idle machine.**\n"
	print "Ratios are the median of the per-round ratios of the same run, and in"
	print "brackets their spread: the minimum and maximum of the per-round ratios."
	print "Times are medians over the rounds.\n"
	if (skipped != "")
		print "Skipped:\n\n" skipped
	print "## Pipes (setup + run per round, µs; ratio of total vs raw epoll)\n"
	print "N socketpairs with a read watcher each, A tokens passed on to the next"
	print "pair until 10,000 writes are made (bench/pipering.h, as bench/pipes.c)."
	print "A fresh loop per round, made untimed; setup = the N registrations, run"
	print "= the loop.  libev and libuv defer their epoll_ctl calls into the run:"
	print "compare totals.\n"
	print "| N | A | impl | setup µs | run µs | total µs | total / epoll |\n| --- | --- | --- | --- | --- | --- | --- |"
	printf "%s\n", body["pipes"]
	print "## Scale: 100 active of N registered (run ns per event; vs raw epoll)\n"
	print "100 socketpairs pass the tokens among themselves; the other N - 100"
	print "registered fds are idle eventfds (so that N = 19,000 fits the"
	print "20,000-fd limit).  An untimed pass of the tokens first lets libev"
	print "and libuv make the epoll_ctl calls they defer to the next loop turn."
	print "The cost per event should not grow with N.\n"
	print "| N | impl | ns / event | run / epoll |\n| --- | --- | --- | --- |"
	printf "%s\n", body["scale"]
	print "## Cross-thread wake round trip (ns)\n"
	print "Two threads, each asleep in its own loop, wake each other in turn"
	print "(one round trip = two wakeups).  The mechanisms: futex: FUTEX_WAKE /"
	print "FUTEX_WAIT on a word; epoll: eventfd write, epoll_wait (edge-triggered,"
	print "never read); evq: evq_trigger on an evq_add_user event, evq_wait;"
	print "libevent: event_active() from the other thread (evthread_use_pthreads);"
	print "libev: ev_async_send; libuv: uv_async_send; sd-event (one thread per"
	print "sd_event, no async source): an eventfd written by the other thread and"
	print "read in its sd_event_add_io handler.\n"
	print "| impl | ns | / raw futex | / eventfd+epoll |\n| --- | --- | --- | --- |"
	printf "%s\n", body["wake"]
	print "## Timers (ns per timer; vs libev)\n"
	print "Deadlines in [0, 200 ms), each round on a fresh loop: add T, sleep,"
	print "fire (run until all fired), add T 10 s later, cancel them in a random"
	print "order.  ties: 10 distinct deadlines from one time read before the"
	print "batch (libev and libuv: their cached loop time; evq and sd-event:"
	print "absolute deadlines from one clock read; libevent reads the clock per"
	print "add).  distinct: all different in ns, which libevent and sd-event round"
	print "to us and libuv to ms.  No warm-up round for timers.  sd-event is"
	print "left out of the default rounds (one sd_event_run per fired timer:"
	print "about 50 us each, a minute per round); its memory is measured.\n"
	print "| pattern | impl | add | add / libev | fire | fire / libev | cancel | cancel / libev |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
	printf "%s\n", body["timers"]
	print "## Memory, user space, bytes per registration\n"
	print "The figure to read is the malloc column (mallinfo2 uordblks + hblkhd:"
	print "bytes handed out, watcher structs included; arena + hblkhd does not"
	print "grow while malloc reuses freed space); RSS is the"
	print "resident-set growth over the same registrations.  Kernel memory (epoll"
	print "items, io_uring rings) is not counted for anyone.\n"
	print "| impl | malloc B / fd | RSS B / fd |\n| --- | --- | --- |"
	printf "%s\n", body["fdmem"]
	print "| impl | malloc B / timer | RSS B / timer |\n| --- | --- | --- |"
	printf "%s\n", body["tmem"]
	print "## The lines the programs printed\n\n```"
	printf "%s", rawlines
	print "```"
}' "$raw" >"$out"
echo "wrote $out"
