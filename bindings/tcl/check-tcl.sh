#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-tcl.sh BUILD: judge evq's Tcl notifier (evqtclsh) with Tcl's own
# test suite.
#
# 1. Fetches the Tcl sources of the installed patchlevel (Debian's source
#    package, through a private apt configuration: nothing under /etc is
#    touched) into BUILD/tcl-src/PATCHLEVEL, once.
# 2. Builds Tcl's test commands (testchannel, testthread, ...) from them
#    into a library linked through the stubs library only, which every shell
#    gets in LD_PRELOAD (tcltest-preload.c), as Tcl's tcltest binary has
#    them built in.
# 3. Runs each test file in its own process and temporary directory with
#    the stock tclsh8.6 and, when BUILD/tcl/evqtclsh exists, with evqtclsh
#    on every backend; prints a Total/Passed/Skipped/Failed table per shell.
#    A file with failing tests runs a second time (see CHECK_TCL_RETRY).
# 4. Verdict: every shell has 0 failures, and no test that passes with the
#    stock shell fails, is skipped or is missing with evqtclsh.
# 5. Idle check: a 1 s `after`+`vwait` under evqtclsh uses <= 200 ms CPU
#    and (where strace works) <= 20 waiting system calls.
#
# Environment:
#   TCLSH              stock shell (tclsh8.6)
#   EVQTCLSH           the shell under test (BUILD/tcl/evqtclsh); pointing it
#                      at a stock tclsh tests this harness itself
#   CHECK_TCL_BACKENDS evq backends for EVQTCLSH ("epoll uring")
#   CHECK_TCL_FILES    test files, without .test (the list below)
#   CHECK_TCL_TIMEOUT  seconds per file and shell (600)
#   CHECK_TCL_RETRY    0: no second run of a file with failing tests
#   CHECK_TCL_REQUIRE  1: a missing prerequisite or failed fetch is an error,
#                      not a skip (CI sets it)
#   CC                 compiler for the test commands (cc)
# Exit status: 0 pass or skipped, 1 failure.
set -uo pipefail

build=${1:-build}
mkdir -p "$build" || exit 1
build=$(cd "$build" && pwd)
# shellcheck disable=SC2034 # used in the eval below
here=$(cd "$(dirname "$0")" && pwd)

TCLSH=${TCLSH:-tclsh8.6}
EVQTCLSH=${EVQTCLSH:-$build/tcl/evqtclsh}
backends=${CHECK_TCL_BACKENDS:-epoll uring}
files=${CHECK_TCL_FILES:-event timer socket io ioCmd chanio thread unixNotfy iogt ioTrans chan notify async exec http http11 httpold zlib}
tmo=${CHECK_TCL_TIMEOUT:-600}
CC=${CC:-cc}

skip() {
	echo "check-tcl: skipped: $*"
	if [ "${CHECK_TCL_REQUIRE:-0}" = 1 ]; then
		echo "check-tcl: CHECK_TCL_REQUIRE=1: a skip is a failure"
		exit 1
	fi
	exit 0
}
die() { echo "check-tcl: $*" >&2; exit 1; }

command -v "$TCLSH" >/dev/null 2>&1 || skip "install tcl8.6 (apt-get install tcl8.6-dev)"
pl=$(echo 'puts [info patchlevel]' | "$TCLSH") || die "$TCLSH does not run"
tclconfig=
for d in $(echo 'puts [join [list [file dirname [info library]] {*}$tcl_pkgPath] \n]' | "$TCLSH") \
	/usr/lib/"$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null)"/tcl8.6 \
	/usr/lib/tcl8.6 /usr/lib64 /usr/lib /usr/local/lib; do
	if [ -f "$d/tclConfig.sh" ]; then tclconfig=$d/tclConfig.sh; break; fi
	if [ -f "$d/tcl8.6/tclConfig.sh" ]; then tclconfig=$d/tcl8.6/tclConfig.sh; break; fi
done
[ -n "$tclconfig" ] || skip "install tcl8.6-dev (no tclConfig.sh)"
# shellcheck disable=SC1090
. "$tclconfig" || die "cannot read $tclconfig"
[ "$TCL_PATCH_LEVEL" = "${pl#"$TCL_VERSION"}" ] || [ "$TCL_VERSION$TCL_PATCH_LEVEL" = "$pl" ] ||
	die "$tclconfig is for $TCL_VERSION$TCL_PATCH_LEVEL, $TCLSH is $pl"
[ -f "$TCL_STUB_LIB_PATH" ] || skip "install tcl8.6-dev (no $TCL_STUB_LIB_PATH)"
command -v timeout >/dev/null 2>&1 || skip "install coreutils (timeout)"
if ! echo 'package require Thread' | "$TCLSH" >/dev/null 2>&1; then
	[ "${CHECK_TCL_REQUIRE:-0}" != 1 ] || die "install tcl-thread (CHECK_TCL_REQUIRE=1)"
	echo "check-tcl: install tcl-thread: without it thread.test skips its tests"
fi

# ---- 1. the sources ------------------------------------------------------
cache=$build/tcl-src/$pl
src=$cache/src
fetch_apt() { # Debian's source package: apt verifies the Release signature
	local srcpkg ver codename keyring t O
	command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 || return 1
	srcpkg=$(dpkg-query -W -f '${source:Package}' "libtcl$TCL_VERSION" 2>/dev/null) || return 1
	ver=$(dpkg-query -W -f '${source:Version}' "libtcl$TCL_VERSION" 2>/dev/null) || return 1
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -n "$codename" ] && [ -f "$keyring" ] || return 1
	t=$cache/apt
	mkdir -p "$t/lists/partial" "$t/cache/archives/partial" "$t/parts" "$t/dl" || return 1
	for suite in "$codename" "$codename-updates"; do
		echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian $suite main"
	done > "$t/sources.list"
	echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian-security $codename-security main" >> "$t/sources.list"
	O=(-o "Dir::Etc::SourceList=$t/sources.list" -o "Dir::Etc::SourceParts=$t/parts"
		-o "Dir::State::Lists=$t/lists" -o "Dir::Cache=$t/cache" -o Debug::NoLocking=1
		-o APT::Sandbox::User=root)
	echo "check-tcl: fetching $srcpkg $ver with apt-get source (private sources list in $t)"
	apt-get -qq "${O[@]}" update >"$t/log" 2>&1 &&
	(cd "$t/dl" && apt-get -qq "${O[@]}" source --download-only "$srcpkg=$ver") >>"$t/log" 2>&1 || {
		sed 's/^/  apt: /' "$t/log" | tail -5; return 1; }
	unpack "$t/dl"/*.dsc
}
fetch_pool() { # the same files from the pool; checked against the .dsc's sums
	local srcpkg ver dsc t f sum
	command -v dpkg-query >/dev/null 2>&1 || return 1
	if command -v curl >/dev/null 2>&1; then get() { curl -fsSL --retry 2 -o "$2" "$1"; }
	elif command -v wget >/dev/null 2>&1; then get() { wget -q -O "$2" "$1"; }
	else return 1; fi
	srcpkg=$(dpkg-query -W -f '${source:Package}' "libtcl$TCL_VERSION" 2>/dev/null) || return 1
	ver=$(dpkg-query -W -f '${source:Version}' "libtcl$TCL_VERSION" 2>/dev/null) || return 1
	t=$cache/pool; mkdir -p "$t" || return 1
	dsc=${srcpkg}_${ver#*:}.dsc
	echo "check-tcl: fetching $dsc from deb.debian.org's pool"
	get "http://deb.debian.org/debian/pool/main/${srcpkg:0:1}/$srcpkg/$dsc" "$t/$dsc" || return 1
	while read -r sum _ f; do
		get "http://deb.debian.org/debian/pool/main/${srcpkg:0:1}/$srcpkg/$f" "$t/$f" || return 1
		[ "$(sha256sum < "$t/$f" | cut -d' ' -f1)" = "$sum" ] || { echo "  $f: bad checksum"; return 1; }
	done < <(sed -n '/^Checksums-Sha256:/,/^[^ ]/s/^ \([0-9a-f]\{64\}\) \([0-9]*\) \(.*\)$/\1 \2 \3/p' "$t/$dsc")
	unpack "$t/$dsc"
}
unpack() { # a .dsc and its files -> $src
	local dsc=$1 d
	d=$(dirname "$dsc")
	rm -rf "$src.new"
	if command -v dpkg-source >/dev/null 2>&1; then
		dpkg-source -q -x "$dsc" "$src.new" >/dev/null 2>&1 || return 1
	else # no patches applied: the tests and test commands do not need them
		mkdir -p "$src.new" &&
		tar -xzf "$(ls "$d"/*.orig.tar.gz | head -1)" -C "$src.new" --strip-components=1 || return 1
	fi
	mv "$src.new" "$src"
}
if [ ! -f "$src/tests/all.tcl" ]; then
	mkdir -p "$cache" || die "cannot create $cache"
	fetch_apt || fetch_pool || { rm -rf "$src"; skip "cannot fetch the Tcl $pl sources"; }
fi
grep -q "TCL_PATCH_LEVEL[[:space:]]*\"$pl\"" "$src/generic/tcl.h" ||
	die "$src is not Tcl $pl (remove it to fetch again)"

# ---- 2. the test commands, as a preloaded library -------------------------
# Tcl's tcltest binary has its test commands built in, and so do the shells
# a test starts with [interpreter]: LD_PRELOAD gives a stock shell the same
# (tcltest-preload.c); -load is the fallback for `loadTestedCommands`.
lib=$cache/libtcltest.so
if [ ! -f "$lib" ] || [ "$here/tcltest-preload.c" -nt "$lib" ]; then
	echo "check-tcl: building Tcl's test commands into $lib"
	mkdir -p "$cache/obj"
	objs=()
	for f in generic/tclTest.c generic/tclTestObj.c generic/tclTestProcBodyObj.c \
		generic/tclThreadTest.c unix/tclUnixTest.c; do
		o=$cache/obj/$(basename "$f" .c).o
		# TCL_DEFS is shell-quoted, as configure wrote it
		eval "\"\$CC\" -c -O2 -g -fPIC -w $TCL_DEFS -DUSE_TCL_STUBS \
			-I\"\$src/generic\" -I\"\$src/unix\" -I\"\$src/libtommath\" \
			-o \"\$o\" \"\$src/\$f\"" || die "cannot compile $f"
		objs+=("$o")
	done
	o=$cache/obj/tcltest-preload.o
	eval "\"\$CC\" -c -O2 -g -fPIC -std=c11 -Wall -Wextra $TCL_INCLUDE_SPEC \
		-o \"\$o\" \"\$here/tcltest-preload.c\"" || die "cannot compile tcltest-preload.c"
	objs+=("$o")
	"$CC" -shared -Wl,-z,defs -o "$lib.new" "${objs[@]}" "$TCL_STUB_LIB_PATH" -ldl -lpthread -lm ||
		die "cannot link $lib"
	mv "$lib.new" "$lib"
fi
load="package ifneeded Tcltest $pl [list load $lib Tcltest]; package require Tcltest $pl"

# ---- 3. the runs ---------------------------------------------------------
shells=(stock)
declare -A shcmd shenv
shcmd[stock]=$TCLSH
shenv[stock]=
if [ -x "$EVQTCLSH" ]; then
	for b in $backends; do
		shells+=("evq-$b"); shcmd[evq-$b]=$EVQTCLSH; shenv[evq-$b]=EVQ_BACKEND=$b
	done
else
	echo "check-tcl: evqtclsh not built ($EVQTCLSH): stock $TCLSH only"
fi
for sh in "${shells[@]}"; do
	# shellcheck disable=SC2086
	got=$(echo 'puts [llength [info commands testchannel]]' |
		env ${shenv[$sh]} LD_PRELOAD="$lib" "${shcmd[$sh]}" 2>&1)
	[ "$got" = 1 ] || die "$sh: ${shcmd[$sh]} does not get the test commands from LD_PRELOAD=$lib: $got"
done
runs=$build/tcl-check
rm -rf "$runs"; mkdir -p "$runs" || die "cannot create $runs"
for f in $files; do
	[ -f "$src/tests/$f.test" ] || die "no $f.test in $src/tests"
done

run_file() { # run_file SHELL FILE: output in $runs/SHELL/FILE/{log,rc,secs}
	local sh=$1 f=$2 d=$runs/$1/$2 t0 t1
	rm -rf "$d/tmp"; mkdir -p "$d/tmp"
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	(cd "$d/tmp" && exec env ${shenv[$sh]} LD_PRELOAD="$lib" timeout -k 10 "$tmo" "${shcmd[$sh]}" \
		"$src/tests/$f.test" -tmpdir "$d/tmp" -verbose bps -load "$load") \
		</dev/null >"$d/log" 2>&1
	echo "$?" >"$d/rc"
	t1=$(date +%s.%N)
	echo "$t0 $t1" | perl -ane 'printf "%.1f\n", $F[1] - $F[0]' >"$d/secs"
}
# Some of Tcl's tests race with the clock (event-7.5 loses its background
# error when the machine is slow enough that both of its timers expire in
# one pass): a file with failing tests runs once more, and its second run
# counts; the first run's failures are reported as flaky (log.1), never
# hidden.  A crash or a timeout is not rerun.  CHECK_TCL_RETRY=0: no reruns.
for sh in "${shells[@]}"; do
	echo "check-tcl: $sh: ${shcmd[$sh]} ${shenv[$sh]}"
	for f in $files; do
		run_file "$sh" "$f"
		d=$runs/$sh/$f
		if [ "${CHECK_TCL_RETRY:-1}" != 0 ] && grep -aq '^==== [^ ]* FAILED$' "$d/log" &&
			grep -aEq "^$f\.test:[[:space:]]+Total" "$d/log"; then
			echo "check-tcl: $sh: $f.test failed: running it again"
			mv "$d/log" "$d/log.1"; mv "$d/secs" "$d/secs.1"
			run_file "$sh" "$f"
		fi
	done
done

# ---- 4. the table and the verdict ----------------------------------------
perl - "$runs" "$tmo" "$files" "${shells[@]}" <<'PERL'
use strict; use warnings;
my ($runs, $tmo, $files, @shells) = @ARGV;
my @files = split ' ', $files;
my (%res, %bad, %died, %flaky);
for my $sh (@shells) {
	printf "\n%s\n%-10s %6s %6s %7s %6s %7s  %s\n", $sh, "file", "Total", "Passed",
		"Skipped", "Failed", "seconds", "";
	my @sum = (0) x 4;
	for my $f (@files) {
		my $d = "$runs/$sh/$f";
		open my $fh, '<', "$d/log" or die "$d/log: $!";
		my (%t, @counts);
		while (<$fh>) {
			s/\r?\n\z//;
			if (/^\+\+\+\+ (\S+) (PASSED|SKIPPED)/) { $t{$1} //= $2; }
			elsif (/^==== (\S+) FAILED$/) { $t{$1} = 'FAILED'; }
			elsif (/^\Q$f\E\.test:\s+Total\s+(\d+)\s+Passed\s+(\d+)\s+Skipped\s+(\d+)\s+Failed\s+(\d+)/) {
				@counts = ($1, $2, $3, $4);
			}
		}
		close $fh;
		$res{$sh}{$f} = \%t;
		if (open my $f1, '<', "$d/log.1") {
			my @first = sort map { /^==== (\S+) FAILED$/ ? $1 : () } <$f1>;
			push @{$flaky{$sh}}, "$f: @first" if @first;
		}
		my $rc = do { open my $r, '<', "$d/rc"; my $x = <$r>; chomp $x; $x };
		my $secs = do { open my $r, '<', "$d/secs"; my $x = <$r>; chomp $x; $x };
		my $note = '';
		if ($rc == 124 || $rc == 137) { $note = "TIMEOUT after $tmo s"; }
		elsif (!@counts) { $note = "CRASHED: no summary line, exit status $rc"; }
		elsif ($counts[3]) { $note = "FAILED"; }
		elsif ($rc) { $note = "exit status $rc"; }
		push @{$bad{$sh}}, "$f: $note" if $note;
		push @{$died{$sh}}, $f if $note =~ /^(TIMEOUT|CRASHED)/;
		@counts = ('-') x 4 unless @counts;
		$sum[$_] += ($counts[$_] =~ /^\d+$/ ? $counts[$_] : 0) for 0..3;
		$note ||= "passed when run again (first run: log.1)" if -e "$d/log.1";
		printf "%-10s %6s %6s %7s %6s %7s  %s\n", $f, @counts, $secs, $note;
	}
	printf "%-10s %6d %6d %7d %6d\n", "all", @sum;
}
# failures, with the test's own report (the first lines of each)
for my $sh (@shells) {
	for my $f (@files) {
		my @failed = grep { $res{$sh}{$f}{$_} eq 'FAILED' } sort keys %{$res{$sh}{$f}};
		next unless @failed;
		print "\n$sh $f.test failed: @failed ($runs/$sh/$f/log)\n";
		open my $fh, '<', "$runs/$sh/$f/log" or next;
		my ($in, $n) = (0, 0);
		while (<$fh>) {
			$in = 1 if /^==== \S+ .*FAILED$/ && !/^==== \S+ FAILED$/;
			if ($in && $n < 60) { print "  $_"; $n++; }
			$in = 0 if /^==== \S+ FAILED$/;
		}
	}
}
# files that timed out or died: the end of their output
for my $sh (@shells) {
	for my $f (@{$died{$sh} // []}) {
		print "\n$sh $f.test: the last lines of $runs/$sh/$f/log\n";
		open my $fh, '<', "$runs/$sh/$f/log" or next;
		my @l = <$fh>;
		print map { "  $_" } @l[($#l > 19 ? $#l - 19 : 0) .. $#l];
	}
}
# evq vs stock, test by test
my $fail = 0;
for my $sh (grep { $_ ne 'stock' } @shells) {
	my @reg;
	for my $f (@files) {
		my $s = $res{stock}{$f};
		for my $t (sort keys %$s) {
			next unless $s->{$t} eq 'PASSED';
			my $e = $res{$sh}{$f}{$t} // 'MISSING';
			push @reg, "$t ($e)" if $e ne 'PASSED';
		}
	}
	if (@reg) {
		my $more = @reg > 100 ? " ... and " . (@reg - 100) . " more" : "";
		print "\n$sh: passes with stock but not here: @reg[0 .. ($#reg < 99 ? $#reg : 99)]$more\n";
		push @{$bad{$sh}}, scalar(@reg) . " tests that pass with stock do not pass";
	}
}
print "\n";
for my $sh (@shells) {
	if ($bad{$sh}) { print "check-tcl: $sh: FAIL: ", join('; ', @{$bad{$sh}}), "\n"; $fail = 1; }
	else { print "check-tcl: $sh: ok\n"; }
	print "check-tcl: $sh: failed in a first run (log.1), then the file ran again: ",
		join('; ', @{$flaky{$sh}}), "\n" if $flaky{$sh};
}
exit $fail;
PERL
verdict=$?

# ---- 5. idle: a 1 s after+vwait must sleep, not spin ---------------------
# CPU: the children's times from bash's `times`.  Waits: the waiting system
# calls that strace -f -c counts, minus those of the same shell running
# `set x 1` (start-up and exit: loading, the stock notifier thread's start).
waits() { # waits SCRIPT SHELL ENV...: prints the count, or - without strace
	local script=$1 sh=$2; shift 2
	command -v strace >/dev/null 2>&1 &&
	echo "$script" | strace -f -c -o "$runs/strace" env "$@" "$sh" >/dev/null 2>&1 || { echo -; return; }
	perl -ane '$n += $F[3] if /\s(epoll_wait|epoll_pwait2?|io_uring_enter|futex|select|pselect6|poll|ppoll|nanosleep|clock_nanosleep)$/ && $F[3] =~ /^\d+$/;
		END { print $n // 0 }' "$runs/strace"
}
idle='after 1000 {set x 1}; vwait x'
echo
echo "idle check: '$idle' (limits for evq: <= 200 ms CPU, <= 20 waits beyond start-up)"
printf "%-12s %8s %6s %8s %6s\n" shell "CPU ms" waits start-up "idle"
for sh in "${shells[@]}"; do
	# shellcheck disable=SC2086
	cpu=$( { (echo "$idle" | env ${shenv[$sh]} "${shcmd[$sh]}" >/dev/null 2>&1); times; } | tail -1 |
		perl -ne '@t = /(\d+)m([\d.]+)s/g; printf "%d", 1000 * ($t[0]*60 + $t[1] + $t[2]*60 + $t[3])')
	# shellcheck disable=SC2086
	all=$(waits "$idle" "${shcmd[$sh]}" ${shenv[$sh]})
	# shellcheck disable=SC2086
	base=$(waits 'set x 1' "${shcmd[$sh]}" ${shenv[$sh]})
	w=-
	[ "$all" != - ] && [ "$base" != - ] && w=$((all - base))
	note=
	if [ "$sh" != stock ]; then
		if [ "$cpu" -gt 200 ] || { [ "$w" != - ] && [ "$w" -gt 20 ]; }; then
			note=FAIL; verdict=1
		else note=ok; fi
	fi
	printf "%-12s %8s %6s %8s %6s  %s\n" "$sh" "$cpu" "$all" "$base" "$w" "$note"
done
[ "$all" != - ] || echo "check-tcl: no working strace: waits not counted"
[ -x "$EVQTCLSH" ] || echo "check-tcl: evqtclsh not built: the verdict covers stock $TCLSH only"
if [ "$verdict" = 0 ]; then echo "check-tcl: PASS"; else echo "check-tcl: FAIL"; fi
exit "$verdict"
