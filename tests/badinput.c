/* SPDX-License-Identifier: MIT */
/*
 * badinput.c - every call checks its arguments: NULL queue/pointers,
 * max <= 0, unknown flags and events, bad fds (-EBADF), unknown and stale
 * ids (-ENOENT), bad options and EVQ_BACKEND values (-EINVAL).  After every
 * error the queue still works (a trigger + wait round trip).
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>

#include "evqtest.h"

#define NEV 8

/* The error and then a working queue. */
#define BAD(q, call, want, name)                                             \
	do {                                                                 \
		is((call), (want), name);                                    \
		ok(evqt_roundtrip(q), name ": queue still works");           \
	} while (0)

static void test_options(void)
{
	struct evq *q = NULL;
	struct evq_options o;
	/* NULL result pointer. */
	is(evq_new(NULL, NULL), -EINVAL, "new: NULL q -> -EINVAL");

	memset(&o, 0, sizeof o);
	o.max_batch = -1;
	is(evq_new(&q, &o), -EINVAL, "new: max_batch -1 -> -EINVAL");
	o.max_batch = 65537;
	is(evq_new(&q, &o), -EINVAL, "new: max_batch 65537 -> -EINVAL");
	o.max_batch = INT_MAX;
	is(evq_new(&q, &o), -EINVAL, "new: max_batch INT_MAX -> -EINVAL");
	o.max_batch = INT_MIN;
	is(evq_new(&q, &o), -EINVAL, "new: max_batch INT_MIN -> -EINVAL");

	memset(&o, 0, sizeof o);
	o.backend = 99;
	is(evq_new(&q, &o), -EINVAL, "new: backend 99 -> -EINVAL");
	o.backend = -1;
	is(evq_new(&q, &o), -EINVAL, "new: backend -1 -> -EINVAL");

	memset(&o, 0, sizeof o);
	o.flags = 1;
	is(evq_new(&q, &o), -EINVAL, "new: flags 1 -> -EINVAL");
	o.flags = 0x80000000u;
	is(evq_new(&q, &o), -EINVAL, "new: flags 0x80000000 -> -EINVAL");

	/* The documented range 1..512 is accepted (on the env's backend), 513 is
	 * not. */
	memset(&o, 0, sizeof o);
	int r1 = -1, r2 = -1, r3 = -1;
	o.max_batch = 1;
	if ((r1 = evq_new(&q, &o)) == 0) {
		ok(evqt_roundtrip(q), "new: max_batch 1 queue works");
		evq_free(q);
	}
	o.max_batch = 512;
	if ((r2 = evq_new(&q, &o)) == 0)
		evq_free(q);
	o.max_batch = 513;
	is(evq_new(&q, &o), -EINVAL, "new: max_batch 513 -> -EINVAL");
	o.max_batch = 0;
	if ((r3 = evq_new(&q, &o)) == 0)
		evq_free(q);
	ok(r1 == 0 && r2 == 0 && r3 == 0, "new: max_batch 1, 512, 0 accepted (%d %d %d)",
	   r1, r2, r3);

	/* EVQ_BACKEND with an unknown name: AUTO fails with -EINVAL. */
	const char *saved = getenv("EVQ_BACKEND");
	char *keep = saved ? strdup(saved) : NULL;
	setenv("EVQ_BACKEND", "nonsense", 1);
	q = NULL;
	is(evq_new(&q, NULL), -EINVAL, "env: EVQ_BACKEND=nonsense -> -EINVAL");
	memset(&o, 0, sizeof o);
	o.backend = EVQ_BACKEND_AUTO;
	is(evq_new(&q, &o), -EINVAL, "env: nonsense with explicit AUTO -> -EINVAL");
	/* ...but the environment never overrides an explicit choice. */
	o.backend = EVQ_BACKEND_EPOLL;
	int r = evq_new(&q, &o);
	ok(r == 0 && strcmp(evq_backend_name(q), "epoll") == 0,
	   "env: explicit EPOLL ignores EVQ_BACKEND=nonsense (r=%d)", r);
	if (r == 0)
		evq_free(q);
	setenv("EVQ_BACKEND", "epoll", 1);
	r = evq_new(&q, NULL);
	ok(r == 0 && strcmp(evq_backend_name(q), "epoll") == 0,
	   "env: EVQ_BACKEND=epoll picks epoll (r=%d)", r);
	if (r == 0)
		evq_free(q);
	if (keep) {
		setenv("EVQ_BACKEND", keep, 1);
		free(keep);
	} else {
		unsetenv("EVQ_BACKEND");
	}

	/* The queue runs on the backend the environment names. */
	q = evqt_new();
	const char *env = getenv("EVQ_BACKEND");
	if (env && *env)
		ok(strcmp(evq_backend_name(q), env) == 0, "env: backend name %s == EVQ_BACKEND",
		   evq_backend_name(q));
	else
		ok(strcmp(evq_backend_name(q), "?") != 0, "env: AUTO backend has a name (%s)",
		   evq_backend_name(q));
	evq_free(q);

	/* NULL is harmless where documented. */
	evq_free(NULL);
	ok(strcmp(evq_backend_name(NULL), "?") == 0, "evq_backend_name(NULL) == \"?\"");
}

static void test_fd_args(struct evq *q)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	int closed = dup(sv[0]);
	CHECK(closed >= 0);
	close(closed);

	is(evq_add_fd(NULL, sv[0], EVQ_READ, 0, 0), -EINVAL, "add_fd: NULL q -> -EINVAL");
	BAD(q, evq_add_fd(q, -1, EVQ_READ, 0, 0), -EBADF, "add_fd: fd -1 -> -EBADF");
	BAD(q, evq_add_fd(q, closed, EVQ_READ, 0, 0), -EBADF, "add_fd: closed fd -> -EBADF");
	BAD(q, evq_add_fd(q, 19999, EVQ_READ, 0, 0), -EBADF, "add_fd: fd 19999 -> -EBADF");
	/* fd INT_MAX is checked in alloc.c, with an allocator that refuses
	 * huge requests: a regression that sizes the fd table by the number
	 * before checking the fd (an 8 GiB table, as once happened) would get
	 * a sanitizer run OOM-killed here.  Here a number no process can have
	 * open. */
	BAD(q, evq_add_fd(q, 1 << 20, EVQ_READ, 0, 0), -EBADF, "add_fd: fd 1<<20 -> -EBADF");
	BAD(q, evq_add_fd(q, INT_MIN, EVQ_READ, 0, 0), -EBADF, "add_fd: fd INT_MIN -> -EBADF");
	BAD(q, evq_add_fd(q, sv[0], 0x20, 0, 0), -EINVAL, "add_fd: events 0x20 -> -EINVAL");
	BAD(q, evq_add_fd(q, sv[0], 0x80000000u, 0, 0), -EINVAL,
	    "add_fd: events 0x80000000 -> -EINVAL");
	BAD(q, evq_add_fd(q, sv[0], EVQ_READ, 0x8000, 0), -EINVAL,
	    "add_fd: unknown flag 0x8000 -> -EINVAL");
	BAD(q, evq_add_fd(q, sv[0], EVQ_READ, 0x80000000u, 0), -EINVAL,
	    "add_fd: unknown flag 0x80000000 -> -EINVAL");
	BAD(q, evq_add_fd(q, sv[0], EVQ_READ, EVQ_ABSTIME, 0), -EINVAL,
	    "add_fd: EVQ_ABSTIME (a timer flag) -> -EINVAL");

	/* None of the failed calls registered sv[0]: a real add works. */
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, 0, 5);
	ok(id >= 0, "add_fd: fd still free after the refused calls");
	BAD(q, evq_add_fd(q, sv[0], EVQ_READ, 0, 0), -EEXIST, "add_fd: second -> -EEXIST");

	/* evq_mod on an fd: bad events/flags refused, registration intact. */
	BAD(q, evq_mod(NULL, id, EVQ_READ, 0), -EINVAL, "mod: NULL q -> -EINVAL");
	BAD(q, evq_mod(q, id, 0x20, 0), -EINVAL, "mod: fd events 0x20 -> -EINVAL");
	BAD(q, evq_mod(q, id, EVQ_READ, 0x8000), -EINVAL, "mod: fd flag 0x8000 -> -EINVAL");
	BAD(q, evq_mod(q, id, EVQ_READ, EVQ_ABSTIME), -EINVAL,
	    "mod: fd EVQ_ABSTIME -> -EINVAL");
	CHECK(write(sv[1], "x", 1) == 1);
	struct evq_event ev[NEV];
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_READ && ev[0].flags == 0,
	   "mod: fd registration unchanged by refused mods");
	CHECK(evq_del(q, id) == 0);
	close(sv[0]);
	close(sv[1]);
}

static void test_id_args(struct evq *q)
{
	int64_t u = evq_add_user(q, 1);
	int64_t t = evq_add_timer(q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 2);
	CHECK(u >= 0 && t >= 0);
	/* ids are generation << 32 | slot with generation >= 1: anything
	 * below 2^32 (an id truncated to an int too) names nothing */
	const int64_t bad_ids[] = { -1, INT_MIN, INT_MAX, 0x00ffffff, 0x7f000000,
				    INT64_MIN, INT64_MAX, (int32_t)u, (int64_t)(uint32_t)u,
				    (int64_t)0x7fffffff << 32 | (uint32_t)u };
	for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
		int64_t b = bad_ids[i];
		char name[80];
		snprintf(name, sizeof name, "id %#llx", (unsigned long long)b);
		is(evq_del(q, b), -ENOENT, "del: unknown %s -> -ENOENT", name);
		is(evq_mod(q, b, 0, 0), -ENOENT, "mod: unknown %s -> -ENOENT", name);
		is(evq_trigger(q, b), -ENOENT, "trigger: unknown %s -> -ENOENT", name);
		is(evq_mod_timer(q, b, EVQT_MS, 0, 0), -ENOENT,
		   "mod_timer: unknown %s -> -ENOENT", name);
	}
	ok(evqt_roundtrip(q), "ids: queue still works after unknown ids");
	/* Right slot, wrong generation. */
	int64_t wrong = u ^ ((int64_t)1 << 32);
	BAD(q, evq_del(q, wrong), -ENOENT, "del: wrong generation -> -ENOENT");
	BAD(q, evq_trigger(q, wrong), -ENOENT, "trigger: wrong generation -> -ENOENT");
	BAD(q, evq_mod(q, wrong, 0, 0), -ENOENT, "mod: wrong generation -> -ENOENT");

	/* NULL queue everywhere. */
	is(evq_del(NULL, u), -EINVAL, "del: NULL q -> -EINVAL");
	is(evq_trigger(NULL, u), -EINVAL, "trigger: NULL q -> -EINVAL");
	is(evq_add_user(NULL, 0), -EINVAL, "add_user: NULL q -> -EINVAL");
	is(evq_add_timer(NULL, CLOCK_MONOTONIC, 0, 0, 0, 0), -EINVAL,
	   "add_timer: NULL q -> -EINVAL");
	is(evq_mod_timer(NULL, t, 0, 0, 0), -EINVAL, "mod_timer: NULL q -> -EINVAL");

	/* Kind mismatches. */
	BAD(q, evq_mod(q, u, EVQ_READ, 0), -EINVAL, "mod: user with events -> -EINVAL");
	BAD(q, evq_mod(q, t, EVQ_WRITE, 0), -EINVAL, "mod: timer with events -> -EINVAL");
	BAD(q, evq_mod(q, u, 0, 0x8000), -EINVAL, "mod: user flag 0x8000 -> -EINVAL");
	BAD(q, evq_mod(q, u, 0, EVQ_EDGE), -EINVAL, "mod: user EVQ_EDGE (fds only) -> -EINVAL");
	BAD(q, evq_mod_timer(q, u, EVQT_MS, 0, 0), -EINVAL,
	    "mod_timer: on a user id -> -EINVAL");
	BAD(q, evq_trigger(q, t), -EINVAL, "trigger: on a timer id -> -EINVAL");
	BAD(q, evq_mod_word(q, t, 0, 0), -EINVAL, "mod_word: on a timer id -> -EINVAL");
	ok(evqt_roundtrip(q), "mod_timer on a user id: queue still works");

	/* Timer arguments. */
	BAD(q, evq_add_timer(q, (clockid_t)12345, EVQT_MS, 0, 0, 0), -EINVAL,
	    "add_timer: clock 12345 -> -EINVAL");
	BAD(q, evq_add_timer(q, CLOCK_PROCESS_CPUTIME_ID, EVQT_MS, 0, 0, 0), -EINVAL,
	    "add_timer: CLOCK_PROCESS_CPUTIME_ID -> -EINVAL");
	BAD(q, evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, -1, 0, 0), -EINVAL,
	    "add_timer: negative interval -> -EINVAL");
	BAD(q, evq_add_timer(q, CLOCK_MONOTONIC, -1, 0, 0, 0), -EINVAL,
	    "add_timer: negative relative when -> -EINVAL");
	BAD(q, evq_add_timer(q, CLOCK_MONOTONIC, EVQT_MS, 0, 0x8000, 0), -EINVAL,
	    "add_timer: flag 0x8000 -> -EINVAL");
	BAD(q, evq_mod_timer(q, t, EVQT_MS, -1, 0), -EINVAL,
	    "mod_timer: negative interval -> -EINVAL");
	BAD(q, evq_mod_timer(q, t, -1, 0, 0), -EINVAL, "mod_timer: negative when -> -EINVAL");
	BAD(q, evq_mod_timer(q, t, EVQT_MS, 0, 0x8000), -EINVAL,
	    "mod_timer: flag 0x8000 -> -EINVAL");

	/* The timer, after all those refused changes, is still armed for an
	 * hour: silent. */
	struct evq_event ev[NEV];
	is(evqt_wait(q, ev, NEV, 20 * EVQT_MS), 0, "timer unchanged by refused calls");

	/* Waiting. */
	is(evq_wait(NULL, ev, NEV, 0, NULL), -EINVAL, "wait: NULL q -> -EINVAL");
	BAD(q, evq_wait(q, NULL, NEV, 0, NULL), -EINVAL, "wait: NULL events -> -EINVAL");
	BAD(q, evq_wait(q, ev, 0, 0, NULL), -EINVAL, "wait: max 0 -> -EINVAL");
	BAD(q, evq_wait(q, ev, -1, 0, NULL), -EINVAL, "wait: max -1 -> -EINVAL");
	BAD(q, evq_wait(q, ev, INT_MIN, 0, NULL), -EINVAL, "wait: max INT_MIN -> -EINVAL");

	/* Real ids still work. */
	CHECK(evq_trigger(q, u) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == u && ev[0].data == 1, "ids: the user event still delivers");
	is(evq_del(q, u), 0, "ids: del user");
	is(evq_del(q, t), 0, "ids: del timer");
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("badinput");
	test_options();
	struct evq *q = evqt_new();
	test_fd_args(q);
	test_id_args(q);
	evq_free(q);
	return done();
}
