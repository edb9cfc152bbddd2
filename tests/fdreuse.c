/* SPDX-License-Identifier: MIT */
/*
 * fdreuse.c - an fd closed while registered (no evq_del) goes silent; a new
 * fd that reuses the number may be registered anew and never sees the old
 * registration's events; evq_del() of the old id is harmless to the new
 * one, evq_mod() of the old id fails with -EBADF.
 */
#include <fcntl.h>
#include <sys/socket.h>

#include "evqtest.h"

#define NEV 16
#define QUIET (50 * EVQT_MS)

static void pair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
			 sv) == 0);
}

static void put(int fd)
{
	CHECK(write(fd, "x", 1) == 1);
}

static int count_id(const struct evq_event *ev, int n, int64_t id)
{
	int c = 0;
	for (int i = 0; i < n; i++)
		c += ev[i].id == id;
	return c;
}

/* Makes fd number num refer to a fresh socketpair end; *peer gets the
 * other end. */
static void reuse_number_socket(int num, int *peer)
{
	int sv[2];
	pair(sv);
	if (sv[1] == num) { /* use the end that got the number */
		int t = sv[0];
		sv[0] = sv[1];
		sv[1] = t;
	}
	if (sv[0] != num) {
		CHECK(dup2(sv[0], num) == num);
		close(sv[0]);
	}
	*peer = sv[1];
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/evq-fdreuse-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	return fd;
}

/* The registered socket is closed (its file is gone) and the number reused
 * by another socket. */
static void test_plain_reuse(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int a[2];
	pair(a);
	int num = a[0];
	int64_t old = evq_add_fd(q, num, EVQ_READ, 0, 0x01d);
	CHECK(old >= 0);
	/* Make the old one readable and let the library see it once. */
	put(a[1]);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == old, "plain: old registration delivers before close");
	close(num);
	/* Closed, not reused yet: silent. */
	n = evqt_wait(q, ev, NEV, QUIET);
	is(count_id(ev, n, old), 0, "plain: closed fd -> no event of the old id");

	int bpeer;
	reuse_number_socket(num, &bpeer);
	int64_t nw = evq_add_fd(q, num, EVQ_READ, 0, 0x9e3);
	ok(nw >= 0, "plain: registering the reused number succeeds (%" PRId64 ")", nw);
	ok(nw != old, "plain: new id differs from the old id");
	/* The new socket is empty: no event for anyone. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "plain: new fd idle -> no event");
	put(bpeer);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == nw && ev[0].cookie == 0x9e3 && ev[0].ident == num,
	   "plain: new fd's event goes to the new id/cookie only (n=%d id=%" PRId64 ")", n,
	   ev[0].id);
	/* Old id: mod refused with -EBADF, del accepted and harmless. */
	is(evq_mod(q, old, EVQ_READ, 0), -EBADF, "plain: evq_mod(old id) -> -EBADF");
	is(evq_del(q, old), 0, "plain: evq_del(old id) -> 0");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == nw && ev[0].cookie == 0x9e3,
	   "plain: new registration still delivers after evq_del(old)");
	is(evq_del(q, old), -ENOENT, "plain: evq_del(old id) again -> -ENOENT");
	is(evq_mod(q, nw, EVQ_READ, EVQ_DISABLED), 0, "plain: evq_mod(new id) works");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "plain: new id disabled -> silent");
	is(evq_del(q, nw), 0, "plain: evq_del(new id)");
	evq_free(q);
	close(num);
	close(a[1]);
	close(bpeer);
}

/* The registered number is closed but its file stays open through a dup
 * (as after fork): the kernel still watches the old file under the old
 * number.  Its readiness must never surface. */
static void test_reuse_with_dup(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int a[2];
	pair(a);
	int num = a[0];
	int keep = dup(num);
	CHECK(keep >= 0);
	int64_t old = evq_add_fd(q, num, EVQ_READ, 0, 0x01d);
	CHECK(old >= 0);
	close(num);
	int bpeer;
	reuse_number_socket(num, &bpeer);
	int64_t nw = evq_add_fd(q, num, EVQ_READ, 0, 0x9e3);
	ok(nw >= 0 && nw != old, "dup: reused number registers (%" PRId64 ")", nw);

	/* The old file becomes readable: neither id reports it, and the wait
	 * runs its whole timeout (no spurious early return). */
	put(a[1]);
	int64_t t0 = evqt_now(CLOCK_MONOTONIC);
	int n = evqt_wait(q, ev, NEV, QUIET);
	int64_t dt = evqt_now(CLOCK_MONOTONIC) - t0;
	is(n, 0, "dup: old file readable -> no event at all");
	ok(dt >= QUIET, "dup: the wait lasted its timeout (%lld ns)", (long long)dt);

	put(bpeer);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == nw && ev[0].cookie == 0x9e3,
	   "dup: new fd's event to the new id only (n=%d)", n);
	is(evq_mod(q, old, EVQ_READ, 0), -EBADF, "dup: evq_mod(old id) -> -EBADF");
	is(evq_del(q, old), 0, "dup: evq_del(old id) -> 0");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == nw, "dup: new registration intact after evq_del(old)");
	/* Drain the new socket: only the old (still readable) file remains. */
	char c;
	CHECK(read(num, &c, 1) == 1);
	n = evqt_wait(q, ev, NEV, QUIET);
	is(n, 0, "dup: after del(old), the old file is still silent");
	ok(evqt_roundtrip(q), "dup: queue still works");
	evq_free(q);
	close(keep);
	close(num);
	close(a[1]);
	close(bpeer);
}

/* A regular file (always ready, not in the kernel set) closed while
 * registered goes silent; the number reused by a socket works. */
static void test_regular_then_socket(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int num = tmpfile_fd();
	int64_t old = evq_add_fd(q, num, EVQ_READ, 0, 0x01d);
	CHECK(old >= 0);
	int n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == old, "file->socket: file ready before close");
	close(num);
	n = evqt_wait(q, ev, NEV, QUIET);
	is(count_id(ev, n, old), 0, "file->socket: closed regular file goes silent");
	int bpeer;
	reuse_number_socket(num, &bpeer);
	int64_t nw = evq_add_fd(q, num, EVQ_READ, 0, 0x9e3);
	ok(nw >= 0 && nw != old, "file->socket: reused number registers (%" PRId64 ")", nw);
	/* Idle socket: nothing (the old always-ready registration is silent). */
	n = evqt_wait(q, ev, NEV, QUIET);
	is(n, 0, "file->socket: no event while the new socket is idle");
	put(bpeer);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == nw && ev[0].cookie == 0x9e3,
	   "file->socket: socket event to the new id");
	is(evq_mod(q, old, EVQ_READ, 0), -EBADF, "file->socket: evq_mod(old) -> -EBADF");
	is(evq_del(q, old), 0, "file->socket: evq_del(old) -> 0");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == nw, "file->socket: new one intact");
	evq_free(q);
	close(num);
	close(bpeer);
}

/* A socket closed while registered; the number reused by a regular file. */
static void test_socket_then_regular(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int a[2];
	pair(a);
	int num = a[0];
	int64_t old = evq_add_fd(q, num, EVQ_READ, 0, 0x01d);
	CHECK(old >= 0);
	close(num);
	int f = tmpfile_fd();
	if (f != num) {
		CHECK(dup2(f, num) == num);
		close(f);
	}
	int64_t nw = evq_add_fd(q, num, EVQ_READ, 0, 0x9e3);
	ok(nw >= 0 && nw != old, "socket->file: reused number registers (%" PRId64 ")", nw);
	int n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == nw && ev[0].cookie == 0x9e3 && ev[0].ident == num,
	   "socket->file: the file is ready at once under the new id (n=%d)", n);
	is(evq_del(q, old), 0, "socket->file: evq_del(old) -> 0");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == nw, "socket->file: new one intact after del(old)");
	evq_free(q);
	close(num);
	close(a[1]);
}

/* Closed and not reused: mod says -EBADF, del works, and the next fd with
 * that number is registered normally. */
static void test_closed_not_reused(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int a[2];
	pair(a);
	int64_t id = evq_add_fd(q, a[0], EVQ_READ, 0, 1);
	CHECK(id >= 0);
	close(a[0]);
	is(evq_mod(q, id, EVQ_READ | EVQ_WRITE, 0), -EBADF,
	   "closed: evq_mod of a closed fd -> -EBADF");
	ok(evqt_roundtrip(q), "closed: queue still works after -EBADF");
	is(evq_del(q, id), 0, "closed: evq_del of a closed fd -> 0");
	is(evq_del(q, id), -ENOENT, "closed: second evq_del -> -ENOENT");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "closed: nothing reported");
	evq_free(q);
	close(a[1]);
}

/* Many rounds of register / close / reuse: the old ids never get events. */
static void test_churn(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int rounds = (int)evqt_scale(200), wrong = 0, missed = 0, delbad = 0;
	int a[2];
	pair(a);
	int num = a[0], peer = a[1];
	int64_t id = evq_add_fd(q, num, EVQ_READ, 0, 0);
	CHECK(id >= 0);
	for (int r = 1; r <= rounds; r++) {
		put(peer);
		close(num); /* no evq_del */
		close(peer);
		reuse_number_socket(num, &peer);
		put(peer);
		int64_t nw = evq_add_fd(q, num, EVQ_READ, 0, (uint64_t)r);
		CHECK(nw >= 0);
		int n = evqt_wait(q, ev, NEV, EVQT_SOON);
		for (int i = 0; i < n; i++)
			wrong += ev[i].id != nw || ev[i].cookie != (uint64_t)r;
		missed += count_id(ev, n, nw) != 1;
		delbad += evq_del(q, id) != 0;
		id = nw;
	}
	is(wrong, 0, "churn: %d close/reuse rounds, no event for an old id", rounds);
	is(missed, 0, "churn: every new registration reported once per wait");
	is(delbad, 0, "churn: evq_del of every old id returned 0");
	evq_free(q);
	close(num);
	close(peer);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("fdreuse");
	test_plain_reuse();
	test_reuse_with_dup();
	test_regular_then_socket();
	test_socket_then_regular();
	test_closed_not_reused();
	test_churn();
	return done();
}
