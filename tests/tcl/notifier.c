/* SPDX-License-Identifier: MIT */
/*
 * tests/tcl/notifier.c - bindings/tcl/tclevq.c through Tcl's C API, for
 * what scripts cannot reach: one queued event per ready descriptor, the
 * handler found again when the event runs (deleted, replaced), readiness
 * as select() reports it (hang-up readable, error writable), alerts from
 * another thread (also one sent before the wait), polling, descriptors
 * above FD_SETSIZE, TCL_EXCEPTION (with EVQ_PRI), fork().  Built and run
 * by make check-tcl-smoke when tcl8.6-dev is installed.  Waits have a
 * watchdog (alarm), never a sleep that must be long enough.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evq.h>
#include "tclevq.h"
#include "../helpers/tap.h"

static int calls, last_mask, deadline;

static void count_proc(ClientData cd, int mask)
{
	(void)cd;
	calls++;
	last_mask = mask;
}

static void other_proc(ClientData cd, int mask)
{
	*(int *)cd = mask;
}

static void drain_proc(ClientData cd, int mask)
{
	char buf[256];
	calls++;
	last_mask = mask;
	while (read((int)(intptr_t)cd, buf, sizeof buf) > 0)
		;
}

static void deadline_proc(ClientData cd)
{
	(void)cd;
	deadline = 1;
}

/* Runs the event loop until *flag is set or 10 s pass. */
static int run_until(int *flag)
{
	deadline = 0;
	Tcl_TimerToken t = Tcl_CreateTimerHandler(10000, deadline_proc, NULL);
	while (!*flag && !deadline)
		Tcl_DoOneEvent(TCL_ALL_EVENTS);
	Tcl_DeleteTimerHandler(t);
	return *flag;
}

static int ev_ran;
static int ev_proc(Tcl_Event *ev, int flags)
{
	(void)ev;
	(void)flags;
	ev_ran = 1;
	return 1;
}

static Tcl_ThreadId main_id;
static void *alerter(void *arg)
{
	(void)arg;
	usleep(20000); /* not needed for correctness: the main thread may sleep */
	Tcl_Event *ev = (Tcl_Event *)ckalloc(sizeof *ev);
	ev->proc = ev_proc;
	Tcl_ThreadQueueEvent(main_id, ev, TCL_QUEUE_TAIL);
	Tcl_ThreadAlert(main_id);
	return NULL;
}

static void called_proc(ClientData cd, int mask)
{
	*(int *)cd = mask ? mask : -1;
}

int main(int argc, char **argv)
{
	(void)argc;
	tap_watchdog_secs = 60;
	alarm(60);
	tclevq_install();
	Tcl_FindExecutable(argv[0]);
	Tcl_Interp *interp = Tcl_CreateInterp();
	CHECK(interp);
	const char *b = tclevq_backend();
	const char *want = getenv("EVQ_BACKEND");
	ok(b && (!want || !strcmp(b, want)), "the main thread's notifier is evq's (%s)",
	   b ? b : "none");

	/* Readable pipe: one queued event however often the loop polls
	 * without servicing file events. */
	int p[2];
	CHECK(pipe(p) == 0);
	Tcl_CreateFileHandler(p[0], TCL_READABLE, count_proc, NULL);
	CHECK(write(p[1], "x", 1) == 1);
	for (int i = 0; i < 5; i++)
		Tcl_DoOneEvent(TCL_TIMER_EVENTS | TCL_DONT_WAIT);
	calls = 0;
	is(Tcl_ServiceEvent(TCL_FILE_EVENTS), 1, "a ready fd's event was queued");
	ok(calls == 1 && last_mask == TCL_READABLE, "its handler ran once, readable");
	is(Tcl_ServiceEvent(TCL_FILE_EVENTS), 0, "five polls queued one event, not more");

	/* Deleted while its event is queued: nothing runs. */
	Tcl_DoOneEvent(TCL_TIMER_EVENTS | TCL_DONT_WAIT);
	Tcl_DeleteFileHandler(p[0]);
	calls = 0;
	Tcl_ServiceEvent(TCL_FILE_EVENTS);
	is(calls, 0, "a handler deleted while its event is queued is not called");

	/* Replaced while queued: the event finds the new handler. */
	int got = 0;
	Tcl_CreateFileHandler(p[0], TCL_READABLE, count_proc, NULL);
	Tcl_DoOneEvent(TCL_TIMER_EVENTS | TCL_DONT_WAIT);
	Tcl_CreateFileHandler(p[0], TCL_READABLE, other_proc, &got);
	calls = 0;
	Tcl_ServiceEvent(TCL_FILE_EVENTS);
	ok(calls == 0 && got == TCL_READABLE, "a handler replaced while queued: the new one runs");

	/* The mask changed while queued to one that is not ready: no call. */
	got = 0;
	Tcl_DoOneEvent(TCL_TIMER_EVENTS | TCL_DONT_WAIT);
	Tcl_CreateFileHandler(p[0], TCL_WRITABLE, other_proc, &got);
	Tcl_ServiceEvent(TCL_FILE_EVENTS);
	is(got, 0, "a queued readiness the new mask does not want is dropped");
	Tcl_DeleteFileHandler(p[0]);

	/* Drained: the level goes away. */
	calls = 0;
	Tcl_CreateFileHandler(p[0], TCL_READABLE, drain_proc, (ClientData)(intptr_t)p[0]);
	CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
	run_until(&calls);
	calls = 0;
	while (Tcl_DoOneEvent(TCL_DONT_WAIT))
		;
	is(calls, 0, "a drained pipe is not reported again");

	/* Hang-up reads as readable. */
	close(p[1]);
	calls = 0;
	ok(run_until(&calls) && last_mask == TCL_READABLE, "a pipe's hang-up is readable");
	Tcl_DeleteFileHandler(p[0]);
	close(p[0]);

	/* Error reads as writable: the reader is gone. */
	CHECK(pipe(p) == 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	got = 0;
	Tcl_CreateFileHandler(p[1], TCL_WRITABLE, called_proc, &got);
	ok(run_until(&got) && got == TCL_WRITABLE, "a pipe with no reader is writable (error)");
	Tcl_DeleteFileHandler(p[1]);
	close(p[1]);

	/* Polling and blocking. */
	Tcl_Time zero = {0, 0};
	is(Tcl_WaitForEvent(&zero), 0, "Tcl_WaitForEvent({0,0}) polls");
	Tcl_Time ms20 = {0, 20000};
	Tcl_Time t0, t1;
	Tcl_GetTime(&t0);
	is(Tcl_WaitForEvent(&ms20), 0, "Tcl_WaitForEvent(20 ms) times out with 0");
	Tcl_GetTime(&t1);
	long us = (t1.sec - t0.sec) * 1000000L + (t1.usec - t0.usec);
	ok(us >= 19000, "... not early (%ld us)", us);

	/* An alert sent before the wait is not lost; one from another
	 * thread ends a wait with no timeout. */
	main_id = Tcl_GetCurrentThread();
	Tcl_ThreadAlert(main_id);
	is(Tcl_WaitForEvent(NULL), 0, "an alert sent before Tcl_WaitForEvent(NULL) ends it");
	pthread_t th;
	CHECK(pthread_create(&th, NULL, alerter, NULL) == 0);
	ev_ran = 0;
	while (!ev_ran)
		Tcl_DoOneEvent(TCL_ALL_EVENTS);
	ok(ev_ran, "Tcl_ThreadQueueEvent + Tcl_ThreadAlert from another thread");
	pthread_join(th, NULL);

	/* Above FD_SETSIZE. */
	CHECK(pipe(p) == 0);
	int hi = fcntl(p[0], F_DUPFD, 1500);
	if (hi < 0) {
		skip(1, "no descriptor above 1500 (ulimit -n)");
	} else {
		got = 0;
		Tcl_CreateFileHandler(hi, TCL_READABLE, called_proc, &got);
		CHECK(write(p[1], "x", 1) == 1);
		ok(run_until(&got) && got == TCL_READABLE, "a handler on descriptor %d", hi);
		Tcl_DeleteFileHandler(hi);
		close(hi);
	}

	/* fork(): the child's notifier builds a new queue. */
	got = 0;
	Tcl_CreateFileHandler(p[0], TCL_READABLE, called_proc, &got);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(20);
		run_until(&got);
		_exit(got == TCL_READABLE ? 0 : 1);
	}
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a forked child's handlers fire in the child");
	Tcl_DeleteFileHandler(p[0]);
	close(p[0]);
	close(p[1]);

	/* TCL_EXCEPTION: urgent TCP data. */
#ifdef EVQ_PRI
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sl) == 0 && listen(ls, 1) == 0);
	CHECK(getsockname(ls, (struct sockaddr *)&sa, &sl) == 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(c >= 0 && connect(c, (struct sockaddr *)&sa, sl) == 0);
	int s = accept(ls, NULL, NULL);
	CHECK(s >= 0);
	got = 0;
	Tcl_CreateFileHandler(s, TCL_EXCEPTION, called_proc, &got);
	CHECK(send(c, "!", 1, MSG_OOB) == 1);
	ok(run_until(&got) && got == TCL_EXCEPTION, "urgent data: TCL_EXCEPTION");
	Tcl_DeleteFileHandler(s);
	close(s);
	close(c);
	close(ls);
#else
	skip(1, "this evq has no EVQ_PRI: TCL_EXCEPTION never fires");
#endif

	Tcl_DeleteInterp(interp);
	Tcl_Finalize();
	ok(tclevq_backend() == NULL, "Tcl_Finalize finalized the notifier");
	return done();
}
