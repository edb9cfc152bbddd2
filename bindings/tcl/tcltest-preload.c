/* SPDX-License-Identifier: MIT */
/*
 * Gives a stock shell (tclsh8.6, evqtclsh) Tcl's test commands the way
 * Tcl's own `tcltest` binary has them: built in, in every process.  Linked
 * with Tcl's test command objects into one library that check-tcl.sh puts
 * in LD_PRELOAD, so that the shells a test starts with [interpreter] have
 * them too (io-28.5 runs `testchannel` in such a child).
 *
 * The shell's application init calls Tcl_Init(); this definition takes
 * that call, runs the real one, then, for the process's first interpreter
 * only (as the tcltest binary's Tcl_AppInit does; child interpreters and
 * threads do not get the commands), Tcltest_Init() and registers the
 * static package for `load {} Tcltest`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>

#ifndef USE_TCL_STUBS
#define USE_TCL_STUBS
#endif
#include <tcl.h>

#undef Tcl_Init

extern int Tcltest_Init(Tcl_Interp *interp);
extern int Tcltest_SafeInit(Tcl_Interp *interp);
int Tcl_Init(Tcl_Interp *interp);

static atomic_int first_done;

int Tcl_Init(Tcl_Interp *interp)
{
	int (*real)(Tcl_Interp *) = (int (*)(Tcl_Interp *))dlsym(RTLD_NEXT, "Tcl_Init");

	if (!real) {
		fprintf(stderr, "tcltest-preload: no Tcl_Init after this library\n");
		return TCL_ERROR;
	}
	if (real(interp) != TCL_OK)
		return TCL_ERROR;
	if (atomic_exchange(&first_done, 1))
		return TCL_OK;
	if (Tcltest_Init(interp) != TCL_OK)
		return TCL_ERROR;
	/* stubs are set up now (Tcltest_Init called Tcl_InitStubs); tcl.h
	 * has no stubs macro for this application-only call */
	tclStubsPtr->tcl_StaticPackage(interp, "Tcltest", Tcltest_Init, Tcltest_SafeInit);
	return TCL_OK;
}
