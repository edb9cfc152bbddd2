#!/bin/sh
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
# or compiler fails.  pan stops at the first error, so teeth are cheap.
#
# One line per run or tooth is printed: model=... run=N (or tooth=N)
# spin="..." cc="..." pan="..." states=... depth=... errors=... time=...s
# result=ok|FAIL (runs) or result=bites|TOOTHLESS|FAIL (teeth), a tooth
# also saying what it found (found="assertion violated ..."); the pan
# output of a failed run or tooth is shown and kept in OUTDIR.
# Without spin: prints "skipped: install spin" and succeeds.
set -u
out=$1
shift
if ! command -v spin >/dev/null 2>&1; then
	echo "skipped: install spin"
	exit 0
fi
cc=${CC:-cc}
# a runaway model must not eat the machine: pan stops at this many MB
memlim=${MODEL_MEMLIM:-4096}
fail=0
now() { date +%s%N 2>/dev/null || echo 0; }
for m in "$@"; do
	name=$(basename "$m" .pml)
	mkdir -p "$out/$name"
	sed -n 's/^[[:space:]/*]*@\(run\|tooth\)[[:space:]]*/\1|/p' "$m" > "$out/$name/runs"
	if ! grep -q '^run|' "$out/$name/runs"; then
		{ echo 'run|| -DSAFETY |'; cat "$out/$name/runs"; } > "$out/$name/runs+"
		mv "$out/$name/runs+" "$out/$name/runs"
	fi
	nrun=0
	ntooth=0
	while IFS='|' read -r kind sopt copt popt; do
		if [ "$kind" = tooth ]; then
			ntooth=$((ntooth + 1))
			dir="$out/$name/tooth$ntooth"
			label="tooth=$ntooth"
		else
			nrun=$((nrun + 1))
			dir="$out/$name/run$nrun"
			label="run=$nrun"
		fi
		rm -rf "$dir"
		mkdir -p "$dir"
		cp "$m" "$dir/"
		log="$dir/log"
		t0=$(now)
		# shellcheck disable=SC2086 # option lists are word lists
		(cd "$dir" && spin $sopt -a "$name.pml" && \
		 $cc -O2 -w -DMEMLIM=$memlim $copt -o pan pan.c && ./pan $popt) > "$log" 2>&1
		rc=$?
		t1=$(now)
		time=$(( (t1 - t0) / 10000000 ))
		time=$((time / 100)).$((time / 10 % 10))$((time % 10))
		states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$log" | head -1)
		depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$log" | head -1)
		errors=$(sed -n 's/.*errors: \([0-9]*\)$/\1/p' "$log" | head -1)
		found=
		if [ "$kind" = tooth ]; then
			if [ -z "$errors" ]; then
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
		line="model=$name $label spin=\"$(echo $sopt)\" cc=\"$(echo $copt)\" pan=\"$(echo $popt)\""
		line="$line states=${states:-?} depth=${depth:-?} errors=${errors:-?} time=${time}s"
		[ -n "$found" ] && line="$line found=\"$found\""
		echo "$line result=$res"
		case $res in
		ok|bites)
			rm -f "$dir/pan" "$dir"/pan.[bchmpt] ;;
		*)
			fail=1
			sed 's/^/#   /' "$log" | tail -40 ;;
		esac
	done < "$out/$name/runs"
done
exit $fail
