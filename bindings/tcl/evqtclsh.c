/* SPDX-License-Identifier: MIT */
/*
 * evqtclsh - tclsh 8.6 with evq as its notifier.
 *
 * The same shell as tclsh8.6 (Tcl_Main, the same init script and
 * ~/.tclshrc), except that the event loop waits in evq (epoll or io_uring,
 * EVQ_BACKEND=epoll|uring chooses) instead of select() in a notifier
 * thread: fileevent works on any descriptor number.  Adds one command,
 * evq::backend, which returns the calling thread's evq backend (or an
 * error if the thread's notifier is not evq's).
 */
#include <tcl.h>
#include "tclevq.h"

static int backend_cmd(ClientData cd, Tcl_Interp *interp, int objc,
		       Tcl_Obj *const objv[])
{
	(void)cd;
	if (objc != 1) {
		Tcl_WrongNumArgs(interp, 1, objv, "");
		return TCL_ERROR;
	}
	const char *b = tclevq_backend();
	if (!b) {
		Tcl_SetObjResult(interp, Tcl_NewStringObj(
			"this thread's notifier is not evq's", -1));
		return TCL_ERROR;
	}
	Tcl_SetObjResult(interp, Tcl_NewStringObj(b, -1));
	return TCL_OK;
}

static int app_init(Tcl_Interp *interp)
{
	if (Tcl_Init(interp) == TCL_ERROR)
		return TCL_ERROR;
	Tcl_CreateObjCommand(interp, "::evq::backend", backend_cmd, NULL, NULL);
	Tcl_SetVar(interp, "tcl_rcFileName", "~/.tclshrc", TCL_GLOBAL_ONLY);
	return TCL_OK;
}

int main(int argc, char **argv)
{
	tclevq_install(); /* before Tcl_Main creates the interpreter */
	Tcl_Main(argc, argv, app_init);
	return 0;
}
