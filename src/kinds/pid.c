/* SPDX-License-Identifier: MIT */
/*
 * pid.c - process exits as events (evq_add_pid), through a pidfd.
 *
 * A pidfd names one process, not a number: once it is open, a recycled pid
 * cannot be mistaken for the process we watch.  It polls readable when the
 * process has exited, and stays readable, so it is registered with the
 * backend as oneshot and never re-armed after the exit was reported: the
 * exit is one occurrence, delivered once.
 *
 * For a child, waitid(P_PIDFD) collects the wait status (and reaps the
 * child unless EVQ_NOREAP, which adds WNOWAIT).  For any other process, or a
 * child somebody else reaped first, waitid fails with ECHILD and the event
 * says EVQ_PID_NOSTATUS.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define IDTYPE_PIDFD ((idtype_t)3) /* P_PIDFD, Linux 5.4 */

#define PID_FLAGS (EVQ_NOREAP | EVQ_ONESHOT | EVQ_DISABLED)

struct pid_reg {
	int fd;      /* pidfd; first two: struct evq__fd_ext */
	int pid;     /* the event's ident */
	int done;    /* the exit was reported */
};

/* waitid()'s siginfo as the status word waitpid() would have stored, so
 * WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG/WCOREDUMP work on it. */
static uint64_t wait_status(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED:
		return (uint64_t)(si->si_status & 0xff) << 8;
	case CLD_KILLED:
		return (uint64_t)(si->si_status & 0x7f);
	case CLD_DUMPED:
		return (uint64_t)(si->si_status & 0x7f) | 0x80;
	default:
		return EVQ_PID_NOSTATUS;
	}
}

static int pid_arm(struct evq *q, struct evq__reg *r, enum evq__fd_op op)
{
	struct pid_reg *p = r->ext;
	return evq__fd_ctl(q, r, op, p->fd, EVQ_READ,
			   EVQ_ONESHOT | (r->flags & EVQ_DISABLED));
}

static int pid_ready(struct evq *q, struct evq__reg *r, uint32_t events,
		     struct evq_event *ev)
{
	struct pid_reg *p = r->ext;
	siginfo_t si = { 0 };
	(void)events;
	int opt = WEXITED | WNOHANG | (r->flags & EVQ_NOREAP ? WNOWAIT : 0);
	int rc = evq__waitid(IDTYPE_PIDFD, (id_t)p->fd, &si, opt);
	if (rc == 0 && si.si_pid == 0) {
		/* not exited after all: watch on */
		(void)pid_arm(q, r, EVQ_FD_MOD);
		return 0;
	}
	p->done = 1;
	ev->events = 0;
	ev->data = rc == 0 ? wait_status(&si) : EVQ_PID_NOSTATUS;
	return 1;
}

/* Enabling re-arms the watch unless the exit was reported already. */
static int pid_mod(struct evq *q, struct evq__reg *r, uint32_t events,
		   uint32_t old_flags)
{
	struct pid_reg *p = r->ext;
	(void)events, (void)old_flags;
	return p->done ? 0 : pid_arm(q, r, EVQ_FD_MOD);
}

static void pid_del(struct evq *q, struct evq__reg *r)
{
	struct pid_reg *p = r->ext;
	if (!p)
		return;
	(void)q->backend->fd_ctl(q, EVQ_FD_DEL, p->fd, 0, 0, 0);
	close(p->fd);
	free(p);
	r->ext = NULL;
}

static int pid_make(struct evq *q, struct evq__add *a)
{
	(void)q;
	if (a->ident <= 0 || (a->flags & ~PID_FLAGS))
		return -EINVAL;
	struct pid_reg *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	/* pidfds are always close-on-exec */
	p->pid = a->ident;
	p->fd = (int)syscall(SYS_pidfd_open, (pid_t)a->ident, 0);
	if (p->fd < 0) {
		/* a thread's id, not a process's: EINVAL, or ENOENT since 6.9 */
		int e = errno == ENOENT ? EINVAL : errno;
		free(p);
		return -e;
	}
	a->ext = p;
	a->events = EVQ_READ;
	return 0;
}

static int pid_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	(void)a;
	return pid_arm(q, r, EVQ_FD_ADD);
}

_Static_assert(offsetof(struct pid_reg, pid) == offsetof(struct evq__fd_ext, ident),
	       "a pid registration's ext begins as struct evq__fd_ext");

const struct evq__kind evq__kind_pid = {
	.name = "pid",
	.caps = EVQ__KIND_IDENT_EXT,
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
	.del = pid_del,
	.ready = pid_ready,
	.mod = pid_mod,
	.make = pid_make,
	.start = pid_start,
	.drop = evq__drop_fd_ext,
};

int64_t evq_add_pid(struct evq *q, pid_t pid, uint32_t flags, uint64_t cookie)
{
	return evq__reg_add(q, EVQ_KIND_PID, flags, cookie, pid, NULL);
}
