/* SPDX-License-Identifier: MIT */
/*
 * tclevq.h - evq as the notifier of Tcl 8.6 (Tcl_SetNotifier).
 *
 * Any program that embeds Tcl 8.6 gets evq's event loop with two lines:
 *
 *	#include "tclevq.h"
 *	tclevq_install();	(first thing in main(), before Tcl_Main(),
 *				 Tcl_FindExecutable() or Tcl_CreateInterp())
 *
 * and links tclevq.o (or libtclevq.a), -ltcl8.6 and libevq.a.  Each thread
 * that gets a Tcl interpreter then gets its own evq queue; file handlers
 * work on any descriptor number (no FD_SETSIZE limit), with no notifier
 * thread.  Tcl 8.6 only: Tcl 9 changed the notifier interface.
 */
#ifndef TCLEVQ_H
#define TCLEVQ_H

#include <tcl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Makes evq Tcl's notifier (Tcl_SetNotifier with every hook set).  Must
 * run before Tcl initialises its notifier in any thread, i.e. before the
 * first Tcl_FindExecutable(), Tcl_CreateInterp() or Tcl_Main(): a notifier
 * cannot be swapped once a thread uses one (README.md, "Tcl").  Returns 0.
 * (tclevq.c does not compile against Tcl headers other than 8.6's.) */
int tclevq_install(void);

/* The hooks tclevq_install() passes to Tcl_SetNotifier(). */
const Tcl_NotifierProcs *tclevq_procs(void);

/* The name of the evq backend ("epoll", "uring") of the calling thread's
 * notifier, or NULL if the thread has none (not installed, or no
 * interpreter in this thread yet). */
const char *tclevq_backend(void);

#ifdef __cplusplus
}
#endif

#endif /* TCLEVQ_H */
