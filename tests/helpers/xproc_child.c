/* SPDX-License-Identifier: MIT */
/*
 * xproc_child.c - helper program tests/xproc.c execs, so that semaphores,
 * latches and words are exercised by separately exec'ed programs mapping
 * the shared memory at their own addresses.  Not a test: prove does not
 * run it (it lives in tests/helpers/), and run by hand without arguments
 * it skips.
 *
 *   xproc_child sem FD CYCLES TOKENS    xp_sem_loop
 *   xproc_child pong FD ROUNDS          xp_pong_loop
 *   xproc_child waker FD COUNT SEED     xp_waker_loop
 * FD is an inherited memfd holding a struct xp_shared.  Exit status 0 on
 * success.
 */
#include "xproc.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		skip_all("helper of tests/xproc, runs only when exec'ed by it");
		return 0;
	}
	struct xp_shared *sh = xp_map(atoi(argv[2]));
	if (!sh)
		return 2;
	long a = atol(argv[3]);
	if (strcmp(argv[1], "sem") == 0 && argc == 5)
		return xp_sem_loop(sh, a, atol(argv[4]));
	if (strcmp(argv[1], "pong") == 0)
		return xp_pong_loop(sh, a);
	if (strcmp(argv[1], "waker") == 0 && argc == 5)
		return xp_waker_loop(sh, a, (unsigned)atol(argv[4]));
	return 3;
}
