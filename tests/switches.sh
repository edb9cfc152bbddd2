#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/switches.sh "CC CFLAGS" LIB TESTLIB DIR - run by `make check`
# (check-switches).
#
# The io_uring test switches (EVQ_URING_REFUSE, EVQ_URING_ENTRIES,
# EVQ_URING_INLINE, EVQ_URING_FAULT: src/config.c) must steer TESTLIB, the
# libevq.a tests link, and do nothing to LIB, the installed libevq.a: a
# program creating an io_uring queue with EVQ_DEBUG=1 must print the same
# with and without them against LIB, and be refused with them against
# TESTLIB.  Where this kernel refuses io_uring anyway, only the first half
# can be checked.
set -u
cc=$1 lib=$2 testlib=$3 dir=$4
mkdir -p "$dir" || exit 1
cat > "$dir/switches.c" <<'PROG'
#include <evq.h>
#include <stdio.h>
int main(void)
{
	struct evq *q;
	struct evq_options o = { .backend = EVQ_BACKEND_URING };
	int rc = evq_new(&q, &o);
	fflush(stderr);
	printf("evq_new(URING) = %d\n", rc);
	if (rc == 0)
		evq_free(q);
	return 0;
}
PROG
for v in lib testlib; do
	eval l=\$$v
	$cc -o "$dir/switches-$v" "$dir/switches.c" "$l" -pthread || exit 1
done
switches="EVQ_URING_REFUSE=setup EVQ_URING_ENTRIES=1 EVQ_URING_INLINE=0 EVQ_URING_FAULT=busy"
# ring fd numbers aside, the debug lines must match
run() { env -u EVQ_BACKEND EVQ_DEBUG=1 "$@" 2>&1 | sed 's/ring fd [0-9]*/ring fd N/'; }
plain=$(run "$dir/switches-lib")
steered=$(run env $switches "$dir/switches-lib")
if [ "$plain" != "$steered" ]; then
	printf 'switches: the installed library obeys a test switch (%s):\n%s\n--- without:\n%s\n' \
		"$switches" "$steered" "$plain"
	exit 1
fi
case "$plain" in
*"evq_new(URING) = 0"*)
	test=$(run env EVQ_URING_REFUSE=setup "$dir/switches-testlib")
	case "$test" in
	*"evq_new(URING) = -38"*) ;;
	*) printf 'switches: the test build ignores EVQ_URING_REFUSE=setup:\n%s\n' "$test"
	   exit 1 ;;
	esac
	echo "switches: io_uring test switches steer the test build only" ;;
*)
	echo "switches: the installed library ignores the test switches (io_uring refused here, so the test build's side is not checked)" ;;
esac
