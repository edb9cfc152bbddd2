#!/bin/sh
# SPDX-License-Identifier: MIT
# model/check.sh - model-checks Promela models with spin (make model).
#
#   sh model/check.sh OUTDIR model/a.pml model/b.pml ...
#
# Each model lists its runs in comment lines of its own, one per run:
#
#   @run <spin -a options> | <pan compile options> | <pan options>
#   @tooth <spin -a options> | <pan compile options> | <pan options>
#
# e.g. "@run -DWAITER | -DSAFETY | -m10000" (safety: assertions and
# invalid end states), or for a liveness property "@run -DLIVE | | -a -f"
# (acceptance cycles under weak fairness; add -N name to pick an ltl
# claim).  A model without @run lines gets one run "| -DSAFETY |".
# A run fails when spin or the compiler fails, when pan reports errors, or
# when the search was cut short (max search depth too small).
#
# A tooth is a run with a mutation: a -D that breaks one step of the
# protocol, which the model must catch.  It "bites" when pan reports an
# error (assertion violated, invalid end state, acceptance cycle...); one
# that finds none is TOOTHLESS and fails the check, as does one whose spin
# or compiler fails.  The mutation is the tooth's last spin option: without
# it, the tooth must be one of the model's runs (which must pass), so that
# the error is the mutation's.  pan stops at the first error, so teeth are
# cheap.
#
# One line per run or tooth is printed: model=... run=N (or tooth=N)
# spin="..." cc="..." pan="..." states=... depth=... errors=... time=...s
# (wall clock) cpu=...s (spin, cc and pan: user + sys)
# result=ok|FAIL (runs) or result=bites|TOOTHLESS|FAIL (teeth), a tooth
# also saying what it found (found="assertion violated ..."); the pan
# output of a failed run or tooth is shown and kept in OUTDIR.
# Without spin: prints "skipped: install spin" and succeeds.
#
# The runs of one model go MODEL_JOBS at a time (default: the number of
# CPUs); their lines are printed in order when the model is done.  pan is
# compiled -O1 for runs (-O2 buys less than it costs to compile) and -O0
# for teeth (they stop early); a run's own -O in its pan compile options
# wins.  Each pan stops at MODEL_MEMLIM MB (default 4096): a runaway model
# must not eat the machine.
set -u

now() { date +%s%N 2>/dev/null || echo 0; }

# --one MODELDIR MODEL N: do line N of MODELDIR/runs, leave its line in
# MODELDIR/lineN and its result in MODELDIR/resN.
if [ "${1:-}" = --one ]; then
	mdir=$2 m=$3 n=$4
	name=$(basename "$m" .pml)
	IFS='|' read -r kind sopt copt popt <<EOF
$(sed -n "${n}p" "$mdir/runs")
EOF
	k=$(head -n "$n" "$mdir/runs" | grep -c "^$kind|")
	dir="$mdir/$kind$k"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$m" "$dir/"
	log="$dir/log"
	if [ "$kind" = tooth ]; then opt=-O0; else opt=-O1; fi
	t0=$(now)
	# shellcheck disable=SC2086 # option lists are word lists
	(cd "$dir" && spin $sopt -a "$name.pml" && \
	 ${CC:-cc} $opt -w -DMEMLIM=${MODEL_MEMLIM:-4096} $copt -o pan pan.c && \
	 ./pan $popt) > "$log" 2>&1
	rc=$?
	t1=$(now)
	time=$(( (t1 - t0) / 10000000 ))
	time=$((time / 100)).$((time / 10 % 10))$((time % 10))
	# CPU of spin, cc and pan (the children's user + sys): the figure
	# that stays put on a busy machine
	times > "$dir/times"
	cpu=$(sed -n 2p "$dir/times" | awk '{ t = 0; for (i = 1; i <= 2; i++) {
		split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
		printf "%.2f", t }')
	states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$log" | head -1)
	depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$log" | head -1)
	errors=$(sed -n 's/.*errors: \([0-9]*\)$/\1/p' "$log" | head -1)
	found=
	if [ "$kind" = tooth ]; then
		# the mutation is the last spin option; without it the tooth
		# must be one of the model's runs, which passes
		words() { for w in $*; do echo "$w"; done | sort | tr '\n' ' '; }
		base="$(words $(echo $sopt | sed 's/[^ ]*$//'))|$(echo $copt)|$(echo $popt)"
		based=
		while IFS='|' read -r k2 s2 c2 p2; do
			[ "$k2" = run ] &&
			[ "$(words $s2)|$(echo $c2)|$(echo $p2)" = "$base" ] && based=1
		done < "$mdir/runs"
		if [ -z "$based" ]; then
			res=FAIL
			found="no @run has its options without the last one"
		elif [ -z "$errors" ]; then
			res=FAIL          # spin, cc or pan did not run through
		elif [ "$errors" -gt 0 ]; then
			res=bites
			found=$(grep -m1 -E '^pan:[0-9]+:' "$log" |
				sed 's/^pan:[0-9]*: *//; s/ (at depth.*//; s/"/'"'"'/g')
		else
			res=TOOTHLESS
		fi
	elif [ $rc -eq 0 ] && [ "${errors:-x}" = 0 ] &&
	     ! grep -q 'max search depth too small' "$log"; then
		res=ok
	else
		res=FAIL
	fi
	line="model=$name $kind=$k spin=\"$(echo $sopt)\" cc=\"$(echo $copt)\" pan=\"$(echo $popt)\""
	line="$line states=${states:-?} depth=${depth:-?} errors=${errors:-?} time=${time}s cpu=${cpu}s"
	[ -n "$found" ] && line="$line found=\"$found\""
	echo "$line result=$res" > "$mdir/line$n"
	case $res in
	ok|bites)
		rm -f "$dir/pan" "$dir"/pan.[bchmpt] ;;
	*)
		sed 's/^/#   /' "$log" | tail -40 >> "$mdir/line$n" ;;
	esac
	echo $res > "$mdir/res$n"
	exit 0
fi

out=$1
shift
if ! command -v spin >/dev/null 2>&1; then
	echo "skipped: install spin"
	exit 0
fi
jobs=${MODEL_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
fail=0
for m in "$@"; do
	name=$(basename "$m" .pml)
	mdir="$out/$name"
	mkdir -p "$mdir"
	rm -f "$mdir"/line* "$mdir"/res*
	sed -n 's/^[[:space:]/*]*@\(run\|tooth\)[[:space:]]*/\1|/p' "$m" > "$mdir/runs"
	if ! grep -q '^run|' "$mdir/runs"; then
		{ echo 'run|| -DSAFETY |'; cat "$mdir/runs"; } > "$mdir/runs+"
		mv "$mdir/runs+" "$mdir/runs"
	fi
	total=$(wc -l < "$mdir/runs")
	seq 1 "$total" | xargs -P "$jobs" -I{} sh "$0" --one "$mdir" "$m" {}
	n=0
	while [ $n -lt "$total" ]; do
		n=$((n + 1))
		if [ -f "$mdir/line$n" ]; then
			cat "$mdir/line$n"
		else
			echo "model=$name line $n of $mdir/runs: not run result=FAIL"
		fi
		case $(cat "$mdir/res$n" 2>/dev/null) in
		ok|bites) ;;
		*) fail=1 ;;
		esac
	done
done
exit $fail
