#!/bin/sh
# model/check.sh - model-checks Promela models with spin (make model).
#
#   sh model/check.sh OUTDIR model/a.pml model/b.pml ...
#
# Each model lists its runs in comment lines of its own, one per run:
#
#   @run <spin -a options> | <pan compile options> | <pan options>
#
# e.g. "@run -DWAITER | -DSAFETY | -m10000" (safety: assertions and
# invalid end states), or for a liveness property "@run -DLIVE | | -a -f"
# (acceptance cycles under weak fairness; add -N name to pick an ltl
# claim).  A model without @run lines gets one run "| -DSAFETY |".
# A run fails when spin or the compiler fails, when pan reports errors, or
# when the search was cut short (max search depth too small).  One line per
# run is printed: model=... run=N spin="..." states=... depth=... errors=...
# result=ok|FAIL; the pan output of a failed run is kept in OUTDIR.
# Without spin: prints "skipped: install spin" and succeeds.
set -u
out=$1
shift
if ! command -v spin >/dev/null 2>&1; then
	echo "skipped: install spin"
	exit 0
fi
cc=${CC:-cc}
fail=0
for m in "$@"; do
	name=$(basename "$m" .pml)
	mkdir -p "$out/$name"
	sed -n 's/^[[:space:]/*]*@run[[:space:]]*//p' "$m" > "$out/$name/runs"
	[ -s "$out/$name/runs" ] || echo '| -DSAFETY |' > "$out/$name/runs"
	n=0
	while IFS='|' read -r sopt copt popt; do
		n=$((n + 1))
		dir="$out/$name/run$n"
		rm -rf "$dir"
		mkdir -p "$dir"
		cp "$m" "$dir/"
		log="$dir/log"
		# shellcheck disable=SC2086 # option lists are word lists
		if (cd "$dir" && spin $sopt -a "$name.pml" && \
		    $cc -O2 -w $copt -o pan pan.c && ./pan $popt) > "$log" 2>&1 &&
		   grep -q 'errors: 0$' "$log" &&
		   ! grep -q 'max search depth too small' "$log"; then
			res=ok
		else
			res=FAIL
			fail=1
		fi
		states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$log" | head -1)
		depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$log" | head -1)
		errors=$(sed -n 's/.*errors: \([0-9]*\)$/\1/p' "$log" | head -1)
		echo "model=$name run=$n spin=\"$(echo $sopt)\" cc=\"$(echo $copt)\" pan=\"$(echo $popt)\"" \
		     "states=${states:-?} depth=${depth:-?} errors=${errors:-?} result=$res"
		if [ $res = FAIL ]; then
			sed 's/^/#   /' "$log" | tail -40
		else
			rm -f "$dir/pan" "$dir"/pan.[bchmpt]
		fi
	done < "$out/$name/runs"
done
exit $fail
