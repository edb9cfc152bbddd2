/* SPDX-License-Identifier: MIT */
/*
 * pipeloops.h - the read watchers of the pipes workload (pipering.h) on
 * each loop: raw epoll, evq, libevent, libev, libuv, shared by
 * bench/pipes.c and bench/peers.c.  For each, in the order a round calls
 * them: X_alloc(n) (its per-watcher records, for n watchers, once),
 * X_open(n) (a loop), X_setup(n) (watch pr.rfd[0..n-1]), X_run(total)
 * (until pr.handled reaches total), X_teardown(n) (stop watching),
 * X_close(n) (free the loop), X_release() (the records).
 *
 * The including program defines, before it: die(what, err), which does
 * not return, and BATCH, the events per wait of epoll and evq; and
 * includes evq.h and the peers' headers (libev's before libevent's, with
 * LEV_READ = libev's EV_READ: the two name EV_READ differently).
 */
#ifndef EVQ_BENCH_PIPELOOPS_H
#define EVQ_BENCH_PIPELOOPS_H

#include <stdint.h>
#include <sys/epoll.h>

#include "pipering.h"

/* -P of pipes: one loop for a whole configuration (setup and teardown
 * then only start and stop the watchers); peers leaves it 0 */
static int persistent;

/* ------------------------------------------------------------------ */
/* raw epoll: the floor                                                 */
/* ------------------------------------------------------------------ */

static int ep = -1;

static inline void epoll_alloc(int n) { (void)n; }
static inline void epoll_release(void) { }

static void epoll_open(int n)
{
	(void)n;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1", errno);
}

static void epoll_setup(int n)
{
	for (int i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, pr.rfd[i], &e) < 0)
			die("epoll_ctl ADD", errno);
	}
}

static void epoll_run(long total)
{
	struct epoll_event evs[BATCH];

	while (pr.handled < total) {
		int n = epoll_wait(ep, evs, BATCH, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait", errno);
		}
		for (int k = 0; k < n; k++)
			pipering_readable((int)evs[k].data.u32);
	}
}

static void epoll_teardown(int n)
{
	for (int i = 0; i < n; i++)
		if (epoll_ctl(ep, EPOLL_CTL_DEL, pr.rfd[i], NULL) < 0)
			die("epoll_ctl DEL", errno);
}

static void epoll_close(int n)
{
	(void)n;
	close(ep);
	ep = -1;
}

/* ------------------------------------------------------------------ */
/* evq                                                                  */
/* ------------------------------------------------------------------ */

static struct evq *q;
static int64_t *evq_ids;

static inline void evq_alloc(int n) { evq_ids = pipering_calloc(n, sizeof *evq_ids); }
static inline void evq_release(void) { free(evq_ids); }

static int evq_backend = EVQ_BACKEND_EPOLL; /* the next evq_open's */

static void evq_open(int n)
{
	struct evq_options opt = { .backend = evq_backend };
	int err = evq_new(&q, &opt);

	(void)n;
	if (err < 0)
		die("evq_new", err);
}

static void evq_setup(int n)
{
	for (int i = 0; i < n; i++) {
		evq_ids[i] = evq_add_fd(q, pr.rfd[i], EVQ_READ, 0, (uint64_t)i);
		if (evq_ids[i] < 0)
			die("evq_add_fd", (int)evq_ids[i]);
	}
}

static void evq_run(long total)
{
	struct evq_event evs[BATCH];

	while (pr.handled < total) {
		int n = evq_wait(q, evs, BATCH, -1, NULL);
		if (n < 0) {
			if (n == -EINTR)
				continue;
			die("evq_wait", n);
		}
		for (int k = 0; k < n; k++)
			pipering_readable((int)evs[k].cookie);
	}
}

static void evq_teardown(int n)
{
	for (int i = 0; i < n; i++) {
		int err = evq_del(q, evq_ids[i]);
		if (err < 0)
			die("evq_del", err);
	}
}

static void evq_close(int n)
{
	(void)n;
	evq_free(q);
	q = NULL;
}

/* ------------------------------------------------------------------ */
/* libevent                                                             */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBEVENT
static struct event_base *eb;
static unsigned char *le_mem; /* N struct events, event_assign()ed */
static size_t le_size;

static inline void le_alloc(int n)
{
	le_size = event_get_struct_event_size();
	le_mem = pipering_calloc(n, le_size);
}

static inline void le_release(void) { free(le_mem); }

static struct event *le_event(int i)
{
	return (struct event *)(void *)(le_mem + (size_t)i * le_size);
}

static void le_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pipering_readable((int)(intptr_t)arg);
}

static void le_open(int n)
{
	(void)n;
	eb = event_base_new();
	if (!eb)
		die("event_base_new", ENOMEM);
}

static void le_setup(int n)
{
	for (int i = 0; i < n; i++) {
		struct event *ev = le_event(i);
		if (event_assign(ev, eb, pr.rfd[i], EV_READ | EV_PERSIST, le_cb,
				 (void *)(intptr_t)i) < 0 ||
		    event_add(ev, NULL) < 0)
			die("event_add", EINVAL);
	}
}

static void le_run(long total)
{
	while (pr.handled < total)
		if (event_base_loop(eb, EVLOOP_ONCE) < 0)
			die("event_base_loop", EINVAL);
}

static void le_teardown(int n)
{
	for (int i = 0; i < n; i++)
		event_del(le_event(i));
}

static void le_close(int n)
{
	(void)n;
	event_base_free(eb);
	eb = NULL;
}
#endif

/* ------------------------------------------------------------------ */
/* libev                                                                */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBEV
static struct ev_loop *lev_loop;
static ev_io *lev_ios;

static inline void lev_alloc(int n) { lev_ios = pipering_calloc(n, sizeof *lev_ios); }
static inline void lev_release(void) { free(lev_ios); }

static void lev_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	pipering_readable((int)(w - lev_ios));
}

static void lev_open(int n)
{
	(void)n;
	lev_loop = ev_loop_new(EVBACKEND_EPOLL);
	if (!lev_loop)
		die("ev_loop_new", ENOMEM);
}

static void lev_setup(int n)
{
	for (int i = 0; i < n; i++) {
		ev_io_init(&lev_ios[i], lev_cb, pr.rfd[i], LEV_READ);
		ev_io_start(lev_loop, &lev_ios[i]);
	}
}

static void lev_run(long total)
{
	while (pr.handled < total)
		ev_run(lev_loop, EVRUN_ONCE);
}

static void lev_teardown(int n)
{
	for (int i = 0; i < n; i++)
		ev_io_stop(lev_loop, &lev_ios[i]);
}

static void lev_close(int n)
{
	(void)n;
	ev_loop_destroy(lev_loop);
	lev_loop = NULL;
}
#endif

/* ------------------------------------------------------------------ */
/* libuv                                                                */
/* ------------------------------------------------------------------ */

#ifdef HAVE_LIBUV
static uv_loop_t luv_loop;
static uv_poll_t *luv_polls;

static inline void luv_alloc(int n) { luv_polls = pipering_calloc(n, sizeof *luv_polls); }
static inline void luv_release(void) { free(luv_polls); }

static void luv_cb(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	pipering_readable((int)(h - luv_polls));
}

/* A uv_poll_t belongs to one loop: fresh loops need fresh handles, and
 * uv_poll_init is part of registering an fd (it also probes the fd with an
 * epoll_ctl ADD/DEL pair and sets O_NONBLOCK). */
static void luv_init_handles(int n)
{
	for (int i = 0; i < n; i++) {
		int err = uv_poll_init(&luv_loop, &luv_polls[i], pr.rfd[i]);
		if (err < 0)
			die("uv_poll_init", err);
	}
}

static void luv_close_handles(int n)
{
	for (int i = 0; i < n; i++)
		uv_close((uv_handle_t *)&luv_polls[i], NULL);
	uv_run(&luv_loop, UV_RUN_DEFAULT); /* runs the close callbacks */
}

static void luv_open(int n)
{
	int err = uv_loop_init(&luv_loop);
	if (err < 0)
		die("uv_loop_init", err);
	if (persistent)
		luv_init_handles(n);
}

static void luv_setup(int n)
{
	if (!persistent)
		luv_init_handles(n);
	for (int i = 0; i < n; i++) {
		int err = uv_poll_start(&luv_polls[i], UV_READABLE, luv_cb);
		if (err < 0)
			die("uv_poll_start", err);
	}
}

static void luv_run(long total)
{
	while (pr.handled < total)
		uv_run(&luv_loop, UV_RUN_ONCE);
}

static void luv_teardown(int n)
{
	for (int i = 0; i < n; i++)
		uv_poll_stop(&luv_polls[i]);
	if (!persistent)
		luv_close_handles(n);
}

static void luv_close(int n)
{
	if (persistent)
		luv_close_handles(n);
	if (uv_loop_close(&luv_loop) < 0)
		die("uv_loop_close", EBUSY);
}
#endif

#endif
