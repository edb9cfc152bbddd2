#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/exports.sh LIB VERSION - run by `make check` (check-exports).
#
# The public API is what include/evq.h declares, and nothing else: the
# functions declared at file scope there (not its static inline helpers)
# must be exactly the functions src/libevq.map lists, exactly the symbols
# LIB (libevq.so) exports, and each must have a page man/man3/NAME.3.
# Every man page's .TH line must name "evq VERSION" (the Makefile's, from
# the header).  Prints each difference with what to do; exit 1 if any.
# Run from the top of the source tree.
set -u
lib=$1
version=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Declarations in evq.h start in column 0 with a type: skip comments
# (lines starting "/*" or " *"), preprocessor lines, static inline
# functions, typedefs, struct/enum bodies (indented) and the C++ guard.
awk '
	/^[ \t]*\/?\*/ { next }
	/^(#|static|typedef|extern|struct [a-z_0-9]+ \{|enum|union|\}|[ \t])/ { next }
	{
		s = $0
		while (match(s, /evq_[a-z0-9_]+[ \t]*\(/)) {
			name = substr(s, RSTART, RLENGTH)
			sub(/[ \t]*\($/, "", name)
			print name
			s = substr(s, RSTART + RLENGTH)
			break
		}
	}
' include/evq.h | sort -u > "$tmp/header"

# src/libevq.map: "name;" lines inside global:.
sed -n 's/^[ \t]*\(evq_[a-z0-9_]*\);.*/\1/p' src/libevq.map | sort -u > "$tmp/map"

# What the shared library exports (any defined dynamic symbol but the
# version node's own).
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	sort -u > "$tmp/lib"

ls man/man3 | sed -n 's/\.3$//p' | sort -u > "$tmp/man"

fail=0
say() { echo "exports: $*"; fail=1; }

for f in $(comm -23 "$tmp/header" "$tmp/map"); do
	say "$f is declared in include/evq.h but not listed in src/libevq.map: add \"$f;\" there"
done
for f in $(comm -13 "$tmp/header" "$tmp/map"); do
	say "$f is listed in src/libevq.map but not declared in include/evq.h: remove it from the map"
done
for f in $(comm -23 "$tmp/header" "$tmp/lib"); do
	grep -qx "$f" "$tmp/map" &&
		say "$f is declared and listed in src/libevq.map but $lib does not define it"
done
for f in $(comm -13 "$tmp/header" "$tmp/lib"); do
	say "$lib exports $f, which include/evq.h does not declare: make it static or name it evq__*"
done
for f in $(comm -23 "$tmp/header" "$tmp/man"); do
	say "$f has no man page: write man/man3/$f.3 (or a \".so man3/PAGE.3\" link)"
done
for p in man/man3/*.3 man/man7/*.7; do
	grep -q '^\.so ' "$p" && continue
	th=$(grep -m1 '^\.TH ' "$p")
	case "$th" in
	*"\"evq $version\""*) ;;
	*) say "$p: its .TH line names no \"evq $version\": $th" ;;
	esac
done

# evq_version(3) shows the version macros: they must be the header's.
for m in MAJOR MINOR PATCH; do
	h=$(grep "^#define EVQ_VERSION_$m " include/evq.h)
	grep -q "^\.B $h\$" man/man3/evq_version.3 ||
		say "man/man3/evq_version.3: its SYNOPSIS does not show \"$h\" as include/evq.h does"
done

n=$(wc -l < "$tmp/header")
if [ "$fail" = 0 ]; then
	echo "exports: $n functions: evq.h = src/libevq.map = $(basename "$lib") = man/man3; pages name evq $version"
fi
exit "$fail"
