/* SPDX-License-Identifier: MIT */
/*
 * tclevq.c - a complete Tcl 8.6 notifier on evq.
 *
 * What Tcl 8.6 asks of a notifier (generic/tclNotify.c calls these through
 * Tcl_NotifierProcs; unix/tclUnixNotfy.c is the stock one), and how this
 * one answers:
 *
 *  - initNotifierProc / finalizeNotifierProc: once per thread that uses
 *    Tcl's event loop (TclInitNotifier, from TclInitSubsystems, i.e. from
 *    Tcl_CreateInterp and Tcl_FindExecutable; TclFinalizeNotifier from
 *    Tcl_FinalizeThread and Tcl_Finalize).  Each such thread gets one evq
 *    queue, with one user registration for alerts.  The other hooks take no
 *    client data: they find the thread's notifier in a thread-local.
 *
 *  - alertNotifierProc: Tcl_ThreadAlert() from any thread, holding Tcl's
 *    notifier list lock, which finalizeNotifierProc also runs under, so the
 *    queue cannot be freed meanwhile.  evq_trigger() is lock-free and
 *    thread-safe; a trigger while the owner is not waiting stays pending
 *    and ends its next wait at once, so no alert is lost (the stock
 *    notifier's eventReady flag).
 *
 *  - createFileHandlerProc / deleteFileHandlerProc: handlers are kept in a
 *    table indexed by descriptor (no FD_SETSIZE limit); each is one
 *    level-triggered evq_add_fd() registration (TCL_READABLE -> EVQ_READ,
 *    TCL_WRITABLE -> EVQ_WRITE, TCL_EXCEPTION -> EVQ_PRI where evq has it),
 *    changed with evq_mod() when the mask changes.
 *
 *  - waitForEventProc: NULL blocks, {0,0} polls, anything else is scaled
 *    by the virtual time hook (TIP 233, Tcl_QueryTimeProc) like the stock
 *    notifier does, then one evq_wait().  Each ready descriptor gets its
 *    readiness recorded and, unless one is already queued for it, one
 *    Tcl_Event whose proc re-finds the handler by fd when it runs (the
 *    handler may have been deleted or changed meanwhile), takes the
 *    readiness that the current mask still wants and calls the handler.
 *    Readiness as Linux select() reports it: hang-up and error count as
 *    readable, error as writable too.  Returns 0 (the stock threaded
 *    notifier's answer, also on timeout: Tcl_DoOneEvent then looks at the
 *    event sources), -1 only if the thread has no working queue, which
 *    makes Tcl_DoOneEvent return instead of blocking forever.
 *
 *  - setTimerProc: nothing to do.  Tcl calls it from Tcl_SetMaxBlockTime()
 *    outside Tcl_DoOneEvent's setup phase, for notifiers driven by a
 *    foreign event loop; Tcl_DoOneEvent is our only loop and passes the
 *    block time to waitForEventProc (the stock Unix notifier does the same).
 *
 *  - serviceModeHookProc: the stock Unix notifier only starts its select()
 *    thread there; that thread merely wakes threads blocked in
 *    Tcl_WaitForEvent and never services events by itself.  evq needs no
 *    such thread, so nothing is left to do.
 *
 *  - Regular files and other descriptors epoll refuses: evq reports them
 *    ready at once (as select() does).  A handler whose descriptor evq
 *    refuses otherwise (e.g. EBADF) never fires, as with select().
 *
 *  - fork(): in the child, evq answers -ECHILD; the notifier of the thread
 *    that forked then builds a new queue and registers its handlers again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <evq.h>
#include "tclevq.h"

#if TCL_MAJOR_VERSION != 8 || TCL_MINOR_VERSION < 6
#error "tclevq needs Tcl 8.6's notifier interface (Tcl 9 changed it)"
#endif

#define TCLEVQ_MAGIC 0x74636c65u /* "tcle" */
#define BATCH 128

struct handler {
	int64_t id;            /* evq registration, 0 = none */
	Tcl_FileProc *proc;    /* NULL: no handler for this fd */
	ClientData data;
	int mask;              /* TCL_READABLE | TCL_WRITABLE | TCL_EXCEPTION */
	int ready;             /* readiness seen since the last event ran */
	unsigned char queued;  /* a FileEvent for this fd is in Tcl's queue */
	unsigned char muted;   /* disabled: it reported only what mask ignores */
};

struct notifier {
	uint32_t magic;
	struct evq *q;
	int64_t alert;         /* user registration that Tcl_AlertNotifier fires */
	struct handler *fh;    /* indexed by fd */
	int nfh;
};

struct file_event {
	Tcl_Event header;
	int fd;
};

static _Thread_local struct notifier *self;

static uint32_t to_evq(int mask)
{
	uint32_t ev = 0;
	if (mask & TCL_READABLE)
		ev |= EVQ_READ;
	if (mask & TCL_WRITABLE)
		ev |= EVQ_WRITE;
#ifdef EVQ_PRI
	if (mask & TCL_EXCEPTION)
		ev |= EVQ_PRI;
#endif
	return ev;
}

/* evq readiness -> what select() would report for the conditions asked. */
static int to_tcl(uint32_t ev, int mask)
{
	int m = 0;
	if (ev & (EVQ_READ | EVQ_HUP | EVQ_ERR))
		m |= TCL_READABLE;
	if (ev & (EVQ_WRITE | EVQ_ERR))
		m |= TCL_WRITABLE;
#ifdef EVQ_PRI
	if (ev & EVQ_PRI)
		m |= TCL_EXCEPTION;
#endif
	return m & mask;
}

static void open_queue(struct notifier *n)
{
	int rc = evq_new(&n->q, NULL);
	if (rc < 0)
		Tcl_Panic("tclevq: evq_new: %s", strerror(-rc));
	n->alert = evq_add_user(n->q, 0);
	if (n->alert < 0)
		Tcl_Panic("tclevq: evq_add_user: %s", strerror((int)-n->alert));
}

static int64_t add_fd(struct notifier *n, int fd)
{
	struct handler *h = &n->fh[fd];
	int64_t id = evq_add_fd(n->q, fd, to_evq(h->mask), 0, (uint64_t)fd);
	/* A descriptor that is not open never fires, as with select(); a
	 * handler that cannot be registered otherwise would hang the program
	 * silently: fail loudly, as Tcl does when out of memory. */
	if (id < 0 && id != -EBADF && id != -ECHILD)
		Tcl_Panic("tclevq: evq_add_fd(%d): %s", fd, strerror((int)-id));
	h->id = id > 0 ? id : 0;
	h->muted = 0;
	return id;
}

/* In a forked child the inherited queue only accepts evq_free(). */
static void rebuild(struct notifier *n)
{
	evq_free(n->q);
	n->q = NULL;
	open_queue(n);
	for (int fd = 0; fd < n->nfh; fd++) {
		n->fh[fd].id = 0;
		if (n->fh[fd].proc)
			add_fd(n, fd);
	}
}

static ClientData init_notifier(void)
{
	if (self)
		return self;
	struct notifier *n = calloc(1, sizeof *n);
	if (!n)
		Tcl_Panic("tclevq: out of memory");
	n->magic = TCLEVQ_MAGIC;
	open_queue(n);
	self = n;
	return n;
}

static void finalize_notifier(ClientData cd)
{
	struct notifier *n = cd;
	if (!n || n->magic != TCLEVQ_MAGIC)
		return;
	n->magic = 0;
	evq_free(n->q);
	free(n->fh);
	if (self == n)
		self = NULL;
	free(n);
}

static void alert_notifier(ClientData cd)
{
	struct notifier *n = cd;
	if (n && n->magic == TCLEVQ_MAGIC)
		evq_trigger(n->q, n->alert);
}

static struct notifier *me(void)
{
	/* Tcl initialises the notifier before any use; this covers a caller
	 * that reaches a hook first anyway (then alerts cannot find it). */
	return self ? self : init_notifier();
}

static void set_timer(CONST86 Tcl_Time *t)
{
	(void)t;
}

static void service_mode_hook(int mode)
{
	(void)mode;
}

static int grow(struct notifier *n, int fd)
{
	if (fd < n->nfh)
		return 0;
	int nn = n->nfh ? n->nfh : 64;
	while (nn <= fd)
		nn = nn > 1 << 29 ? fd + 1 : nn * 2;
	struct handler *fh = realloc(n->fh, (size_t)nn * sizeof *fh);
	if (!fh)
		return -ENOMEM;
	memset(fh + n->nfh, 0, (size_t)(nn - n->nfh) * sizeof *fh);
	n->fh = fh;
	n->nfh = nn;
	return 0;
}

static void create_file_handler(int fd, int mask, Tcl_FileProc *proc,
				ClientData data)
{
	struct notifier *n = me();
	if (fd < 0)
		return;
	if (grow(n, fd) < 0)
		Tcl_Panic("tclevq: out of memory");
	struct handler *h = &n->fh[fd];
	uint32_t old = to_evq(h->mask);
	if (!h->proc)
		h->ready = 0;
	h->proc = proc;
	h->data = data;
	h->mask = mask;
	if (h->id && (old != to_evq(mask) || h->muted)) {
		/* Fails if the fd was closed (and maybe reopened) without
		 * Tcl_DeleteFileHandler: then register it anew. */
		int rc = evq_mod(n->q, h->id, to_evq(mask), 0);
		if (rc == -ECHILD) {
			rebuild(n);
			return;
		}
		if (rc < 0) {
			evq_del(n->q, h->id);
			h->id = 0;
		}
		h->muted = 0;
	}
	if (!h->id && add_fd(n, fd) == -ECHILD)
		rebuild(n);
}

static void delete_file_handler(int fd)
{
	struct notifier *n = me();
	if (fd < 0 || fd >= n->nfh || !n->fh[fd].proc)
		return;
	struct handler *h = &n->fh[fd];
	if (h->id && evq_del(n->q, h->id) == -ECHILD)
		rebuild(n);
	h = &n->fh[fd];
	/* queued stays: the event in Tcl's queue finds no handler, or the
	 * next handler of this fd, which it serves as its own. */
	unsigned char queued = h->queued;
	memset(h, 0, sizeof *h);
	h->queued = queued;
}

static int file_event_proc(Tcl_Event *ev, int flags)
{
	if (!(flags & TCL_FILE_EVENTS))
		return 0;
	struct notifier *n = self;
	int fd = ((struct file_event *)ev)->fd;
	if (!n || fd >= n->nfh)
		return 1;
	struct handler *h = &n->fh[fd];
	h->queued = 0;
	int m = h->ready & h->mask;
	h->ready = 0;
	if (m && h->proc)
		h->proc(h->data, m); /* may change n->fh: h is stale after */
	return 1;
}

static void ready(struct notifier *n, const struct evq_event *e)
{
	int fd = e->ident;
	if (fd < 0 || fd >= n->nfh)
		return;
	struct handler *h = &n->fh[fd];
	if (!h->proc || h->id != e->id)
		return;
	int m = to_tcl(e->events, h->mask);
	if (!m) {
		/* Only a hang-up the mask does not ask for (say, a write-only
		 * handler): select() would not report it, and level-triggered
		 * it would never stop waking us.  Quiet until the handler is
		 * changed. */
		if (evq_mod(n->q, h->id, to_evq(h->mask), EVQ_DISABLED) == 0)
			h->muted = 1;
		return;
	}
	h->ready = m;
	if (!h->queued) {
		struct file_event *fe = (struct file_event *)ckalloc(sizeof *fe);
		fe->header.proc = file_event_proc;
		fe->header.nextPtr = NULL;
		fe->fd = fd;
		h->queued = 1;
		Tcl_QueueEvent(&fe->header, TCL_QUEUE_TAIL);
	}
}

static int wait_for_event(CONST86 Tcl_Time *t)
{
	struct notifier *n = me();
	int64_t ns = -1;
	if (t) {
		Tcl_Time v = *t;
		if (v.sec != 0 || v.usec != 0) {
			Tcl_GetTimeProc *get;
			Tcl_ScaleTimeProc *scale;
			ClientData cd;
			Tcl_QueryTimeProc(&get, &scale, &cd);
			if (scale)
				scale(&v, cd);
		}
		if (v.sec < 0 || (v.sec == 0 && v.usec <= 0))
			ns = 0;
		else if (v.sec > INT64_MAX / 1000000000 - 1)
			ns = -1;
		else
			ns = (int64_t)v.sec * 1000000000 + (int64_t)v.usec * 1000;
	}
	struct evq_event evs[BATCH];
	int k = evq_wait(n->q, evs, BATCH, ns, NULL);
	if (k == -ECHILD) {
		rebuild(n);
		k = evq_wait(n->q, evs, BATCH, 0, NULL);
	}
	if (k == -EINTR)
		return 0;
	if (k < 0)
		return -1;
	for (int i = 0; i < k; i++)
		if (evs[i].kind == EVQ_KIND_FD)
			ready(n, &evs[i]);
	return 0;
}

static const Tcl_NotifierProcs procs = {
	.setTimerProc = set_timer,
	.waitForEventProc = wait_for_event,
	.createFileHandlerProc = create_file_handler,
	.deleteFileHandlerProc = delete_file_handler,
	.initNotifierProc = init_notifier,
	.finalizeNotifierProc = finalize_notifier,
	.alertNotifierProc = alert_notifier,
	.serviceModeHookProc = service_mode_hook,
};

const Tcl_NotifierProcs *tclevq_procs(void)
{
	return &procs;
}

int tclevq_install(void)
{
	Tcl_NotifierProcs p = procs;
	Tcl_SetNotifier(&p);
	return 0;
}

const char *tclevq_backend(void)
{
	return self ? evq_backend_name(self->q) : NULL;
}
