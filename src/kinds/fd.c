/* SPDX-License-Identifier: MIT */
/*
 * fd.c - file descriptors (evq_add_fd): the backend watches them; a
 * regular file or directory, which epoll refuses, is always ready, and a
 * level-triggered one comes back once per kernel round (the "again" list).
 * q->fdmap maps an fd number to its registration, so a number reused for
 * another file makes the old registration go silent, as epoll does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* File descriptors                                                     */
/* ------------------------------------------------------------------ */

#define FDMAP_FIRST 64 /* the fd map's first length */

static int fdmap_reserve(struct evq *q, int fd)
{
	if ((uint32_t)fd < q->fdmap_len)
		return 0;
	/* Before sizing the map by a number the caller gave us: an open fd is
	 * below RLIMIT_NOFILE (asked only when the map must grow). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)fd >= rl.rlim_cur && fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	return evq__map_grow(&q->fdmap, &q->fdmap_len, (uint32_t)fd, FDMAP_FIRST);
}

/* The fd's number now belongs to another registration (or none): the old one
 * goes silent; its kernel registration died with the file. */
static void fd_defunct(struct evq *q, struct evq__reg *r)
{
	r->flags |= EVQ_R_DEFUNCT;
	r->pend_events = 0;
	evq__unlink(q, r);
}

#define FD_EVENTS (EVQ_READ | EVQ_WRITE | EVQ_PRI)
/* What a regular file or directory reports: always readable and writable,
 * never urgent data (select() reports no exception for one either). */
#define FD_ALWAYS_EVENTS (EVQ_READ | EVQ_WRITE)
#define FD_FLAGS (EVQ_EDGE | EVQ_ONESHOT | EVQ_DISABLED)

/* arg: the events asked for */
static int fd_make(struct evq *q, struct evq__add *a)
{
	(void)q;
	a->events = *(const uint32_t *)a->arg;
	if (a->ident < 0)
		return -EBADF;
	if ((a->events & ~FD_EVENTS) || (a->flags & ~FD_FLAGS))
		return -EINVAL;
	return 0;
}

static int fd_prepare(struct evq *q, struct evq__add *a)
{
	return fdmap_reserve(q, a->ident);
}

/* A regular file or directory, which epoll refuses: always ready, unless
 * the fd's number is registered for the same file already. */
/* Is the file r names (a regular file) the one sb describes? */
static int same_file(const struct evq *q, const struct evq__reg *r, const struct stat *sb)
{
	const struct evq__fileid *f = &q->files[r->fd.file];
	return f->dev == (uint64_t)sb->st_dev && f->ino == (uint64_t)sb->st_ino;
}

/* A slot in q->files for r's file identity: free ones are chained through
 * ino (the index of the next, -1 none). */
static int file_new(struct evq *q, struct evq__reg *r, const struct stat *sb)
{
	if (q->files_free < 0) {
		uint32_t n = q->files_len ? q->files_len * 2 : 8;
		struct evq__fileid *f = realloc(q->files, n * sizeof *f);
		if (!f)
			return -ENOMEM;
		for (uint32_t i = q->files_len; i < n; i++)
			f[i].ino = i + 1 < n ? i + 1 : (uint64_t)-1;
		q->files = f;
		q->files_free = (int32_t)q->files_len;
		q->files_len = n;
	}
	int32_t i = q->files_free;
	q->files_free = (int32_t)q->files[i].ino;
	q->files[i].dev = (uint64_t)sb->st_dev;
	q->files[i].ino = (uint64_t)sb->st_ino;
	r->fd.file = i;
	return 0;
}

static void file_free(struct evq *q, struct evq__reg *r)
{
	if (r->fd.file < 0)
		return;
	q->files[r->fd.file].ino = (uint64_t)(int64_t)q->files_free;
	q->files_free = r->fd.file;
	r->fd.file = -1;
}

static int fd_always(struct evq *q, struct evq__reg *r, int32_t old)
{
	struct stat sb;
	if (fstat(r->fd.ident, &sb) < 0)
		return -errno;
	if (old >= 0) {
		struct evq__reg *o = evq__slot(q, (uint32_t)old);
		if ((o->flags & EVQ_R_ALWAYS) && !(o->flags & EVQ_R_DEFUNCT) &&
		    same_file(q, o, &sb))
			return -EEXIST;
	}
	int rc = file_new(q, r, &sb);
	if (rc < 0)
		return rc;
	r->flags |= EVQ_R_ALWAYS;
	r->pend_events = r->events & FD_ALWAYS_EVENTS;
	evq__make_pending_kick(q, r);
	return 0;
}

static int fd_start(struct evq *q, struct evq__reg *r, struct evq__add *a)
{
	int fd = a->ident;
	int32_t old = q->fdmap[fd];
	r->fd.ident = fd;
	r->fd.file = -1;
	r->events = a->events;
	int rc = evq__fd_ctl(q, r, EVQ_FD_ADD, fd, r->events, a->flags);
	if (rc == -EPERM)
		rc = fd_always(q, r, old);
	if (rc < 0)
		return rc;
	if (old >= 0)
		fd_defunct(q, evq__slot(q, (uint32_t)old));
	q->fdmap[fd] = (int32_t)evq__idx(r);
	return 0;
}

int64_t evq_add_fd(struct evq *q, int fd, uint32_t events, uint32_t flags,
	       uint64_t cookie)
{
	return evq__reg_add(q, EVQ_KIND_FD, flags, cookie, fd, &events);
}

/* evq_mod(): the core checked and set the flags (FD_FLAGS). */
static int fd_mod(struct evq *q, struct evq__reg *r, uint32_t events, uint32_t old_flags)
{
	(void)old_flags;
	if (events & ~FD_EVENTS)
		return -EINVAL;
	if (r->flags & EVQ_R_DEFUNCT)
		return -EBADF;
	if (r->flags & EVQ_R_ALWAYS) {
		r->events = events;
		evq__unlink(q, r);
		r->pend_events = events & FD_ALWAYS_EVENTS;
		evq__make_pending_kick(q, r);
		return 0;
	}
	int rc = evq__fd_ctl(q, r, EVQ_FD_MOD, r->fd.ident, events, r->flags & EVQ_R_PUBLIC);
	if (rc == -ENOENT || rc == -EBADF) {
		fd_defunct(q, r);
		return -EBADF;
	}
	if (rc < 0)
		return rc;
	r->events = events;
	return 0;
}

static void fd_del(struct evq *q, struct evq__reg *r)
{
	int fd = r->fd.ident;
	file_free(q, r);
	/* defunct: the number belongs to someone else; or the queue is being
	 * freed and has dropped its fd map (core/queue.c destroy) */
	if ((uint32_t)fd >= q->fdmap_len || q->fdmap[fd] != (int32_t)evq__idx(r))
		return;
	q->fdmap[fd] = -1;
	if (!(r->flags & (EVQ_R_ALWAYS | EVQ_R_DEFUNCT)))
		/* ENOENT/EBADF: the file was closed, and epoll forgot it then */
		(void)q->backend->fd_ctl(q, EVQ_FD_DEL, fd, 0, 0, 0);
}

const struct evq__kind evq__kind_fd = {
	.name = "fd",
	.mod_flags = FD_FLAGS,
	/* No cancellation point under q->lock: fd_ctl reaches none (backend.h
	 * B3), nor do fstat(), getrlimit(), fcntl(F_GETFD) and realloc(). */
	.caps = EVQ__KIND_EVENTS | EVQ__KIND_READY_MERGES | EVQ__KIND_SMALL |
		EVQ__KIND_NO_CANCEL_POINTS,
	.del = fd_del,
	.mod = fd_mod,
	.make = fd_make,
	.prepare = fd_prepare,
	.start = fd_start,
};


/* Level-triggered regular files come back once per kernel round.  The kernel
 * cannot tell us they were closed, so look: a registration whose fd is gone
 * or now names another file goes silent, as epoll does for closed fds. */
void evq__fd_again(struct evq *q)
{
	while (q->again_head >= 0) {
		struct evq__reg *r = evq__slot(q, (uint32_t)q->again_head);
		struct stat sb;
		evq__unlink(q, r);
		if (fstat(r->fd.ident, &sb) < 0 || !same_file(q, r, &sb))
			fd_defunct(q, r);
		else
			evq__link(q, r, EVQ_LIST_PENDING);
	}
}
