/* SPDX-License-Identifier: MIT */
/*
 * fd.c - file descriptor readiness: READ/WRITE on socketpairs, pipes and
 * eventfds; level, EVQ_EDGE, EVQ_ONESHOT, EVQ_DISABLED; EVQ_HUP/EVQ_ERR;
 * regular files, directories and /dev/null (ready at once); -EEXIST for a
 * second registration; the exact fields of struct evq_event.
 */
#include <fcntl.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "evqtest.h"

#define NEV 16
#define QUIET (20 * EVQT_MS) /* how long "nothing more is reported" waits */

static void pair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
			 sv) == 0);
}

static void put(int fd)
{
	CHECK(write(fd, "x", 1) == 1);
}

static void drain(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* How many of ev[0..n) belong to id. */
static int count_id(const struct evq_event *ev, int n, int64_t id)
{
	int c = 0;
	for (int i = 0; i < n; i++)
		c += ev[i].id == id;
	return c;
}

static const struct evq_event *find_id(const struct evq_event *ev, int n, int64_t id)
{
	for (int i = 0; i < n; i++)
		if (ev[i].id == id)
			return &ev[i];
	return NULL;
}

static void test_layout(void)
{
	_Static_assert(sizeof(struct evq_event) == 40, "40-byte event");
	/* The record is exactly 40 bytes with the documented field order. */
	is(sizeof(struct evq_event), 40, "sizeof(struct evq_event) == 40");
	ok(offsetof(struct evq_event, cookie) == 0 &&
		   offsetof(struct evq_event, id) == 8 &&
		   offsetof(struct evq_event, data) == 16 &&
		   offsetof(struct evq_event, events) == 24 &&
		   offsetof(struct evq_event, ident) == 28 &&
		   offsetof(struct evq_event, kind) == 32 &&
		   offsetof(struct evq_event, flags) == 34 &&
		   offsetof(struct evq_event, reserved) == 36,
	   "struct evq_event field offsets 0,8,16,24,28,32,34,36");
}

static void test_socket_read_level(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	const uint64_t cookie = 0x1122334455667788ull;
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, 0, cookie);
	ok(id >= 0, "socket: evq_add_fd READ returns an id (%" PRId64 ")", id);

	/* Nothing to read yet: a poll returns no event. */
	is(evqt_wait(q, ev, NEV, 0), 0, "socket: not readable -> no event");

	put(sv[1]);
	/* One byte arrives: exactly one event with every field as registered. */
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	is(n, 1, "socket: readable -> one event");
	ok(ev[0].cookie == cookie, "socket: event cookie is the registered one");
	is(ev[0].id, id, "socket: event id is the registration id");
	is(ev[0].kind, EVQ_KIND_FD, "socket: kind EVQ_KIND_FD");
	is(ev[0].ident, sv[0], "socket: ident is the fd");
	/* WRITE was not asked for although the socket is writable. */
	is(ev[0].events, EVQ_READ, "socket: events == EVQ_READ exactly");
	is(ev[0].flags, 0, "socket: flags == 0 (level)");

	/* Level-triggered: still readable, so every later wait reports it. */
	int again = 0;
	for (int i = 0; i < 3; i++) {
		n = evqt_wait(q, ev, NEV, 0);
		again += n == 1 && ev[0].id == id && ev[0].events == EVQ_READ;
	}
	is(again, 3, "socket: level fd reported again on 3 later waits");

	/* Drained: no more events. */
	drain(sv[0]);
	is(evqt_wait(q, ev, NEV, 0), 0, "socket: drained -> no event");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_write(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	int64_t id = evq_add_fd(q, sv[0], EVQ_WRITE, 0, 7);
	ok(id >= 0, "write: evq_add_fd WRITE ok");
	/* An empty socket is writable at once, and only WRITE is reported. */
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_WRITE && ev[0].cookie == 7,
	   "write: writable socket -> one EVQ_WRITE event (n=%d events=%#x)", n,
	   ev[0].events);

	/* Fill the send buffer: no longer writable, no event. */
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	char buf[4096];
	memset(buf, 'y', sizeof buf);
	while (write(sv[0], buf, sizeof buf) > 0)
		;
	is(evqt_wait(q, ev, NEV, QUIET), 0, "write: full socket -> no event");

	/* The peer drains it: writable again, reported. */
	drain(sv[1]);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && (ev[0].events & EVQ_WRITE),
	   "write: drained by peer -> EVQ_WRITE again");

	/* evq_mod switches interest to READ: not readable, silent... */
	is(evq_mod(q, id, EVQ_READ, 0), 0, "write: evq_mod to READ ok");
	is(evqt_wait(q, ev, NEV, 0), 0, "write: READ interest, nothing to read");
	/* ...then READ when data arrives, without WRITE. */
	put(sv[1]);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_READ,
	   "write: after mod, EVQ_READ only (events=%#x)", ev[0].events);

	/* READ|WRITE with data: both bits in one event. */
	is(evq_mod(q, id, EVQ_READ | EVQ_WRITE, 0), 0, "write: mod READ|WRITE");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].events == (EVQ_READ | EVQ_WRITE),
	   "write: READ|WRITE both reported in one event (events=%#x)", ev[0].events);
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

static void test_pipe_eventfd(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	int64_t rid = evq_add_fd(q, p[0], EVQ_READ, 0, 100);
	int64_t wid = evq_add_fd(q, p[1], EVQ_WRITE, 0, 101);
	ok(rid >= 0 && wid >= 0 && rid != wid, "pipe: both ends registered");
	/* Empty pipe: only the write end is ready. */
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == wid && ev[0].ident == p[1] &&
		   ev[0].events == EVQ_WRITE && ev[0].cookie == 101,
	   "pipe: empty -> write end only");
	put(p[1]);
	/* Data: both ends, each exactly once in this wait. */
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	const struct evq_event *r = find_id(ev, n, rid);
	ok(n == 2 && count_id(ev, n, rid) == 1 && count_id(ev, n, wid) == 1,
	   "pipe: with data -> read and write end once each (n=%d)", n);
	ok(r && r->events == EVQ_READ && r->ident == p[0] && r->cookie == 100,
	   "pipe: read end event fields");

	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(efd >= 0);
	int64_t eid = evq_add_fd(q, efd, EVQ_READ, 0, 200);
	ok(eid >= 0, "eventfd: registered");
	CHECK(evq_del(q, wid) == 0);
	drain(p[0]);
	/* Counter 0: not readable. */
	is(evqt_wait(q, ev, NEV, 0), 0, "eventfd: zero counter -> no event");
	uint64_t one = 3;
	CHECK(write(efd, &one, 8) == 8);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == eid && ev[0].events == EVQ_READ &&
		   ev[0].ident == efd,
	   "eventfd: counter set -> EVQ_READ");
	CHECK(read(efd, &one, 8) == 8);
	is(evqt_wait(q, ev, NEV, 0), 0, "eventfd: read -> no event");
	evq_free(q);
	close(efd);
	close(p[0]);
	close(p[1]);
}

static void test_edge(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, EVQ_EDGE, 5);
	ok(id >= 0, "edge: registered");
	is(evqt_wait(q, ev, NEV, 0), 0, "edge: nothing yet");
	put(sv[1]);
	/* One transition, one event, carrying the EVQ_EDGE flag. */
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_READ &&
		   ev[0].flags == EVQ_EDGE,
	   "edge: readable -> one event with flags EVQ_EDGE (flags=%#x)",
	   ev[0].flags);
	/* Still readable but no new transition: silent. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "edge: not reported again while undrained");
	is(evqt_wait(q, ev, NEV, 0), 0, "edge: still silent on a second wait");
	/* New data is a new edge. */
	put(sv[1]);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id, "edge: more data -> one more event");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "edge: then silent again");
	drain(sv[0]);
	is(evqt_wait(q, ev, NEV, 0), 0, "edge: drained -> nothing");

	/* EDGE on WRITE: writable socket reported once. */
	int64_t wid = evq_add_fd(q, sv[1], EVQ_WRITE, EVQ_EDGE, 6);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(wid >= 0 && n == 1 && ev[0].id == wid && ev[0].events == EVQ_WRITE,
	   "edge: writable -> one EVQ_WRITE event");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "edge: writable not reported twice");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

static void test_oneshot(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, EVQ_ONESHOT, 9);
	ok(id >= 0, "oneshot: registered");
	put(sv[1]);
	/* Delivered once, with the EVQ_ONESHOT flag. */
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].flags == EVQ_ONESHOT &&
		   ev[0].events == EVQ_READ,
	   "oneshot: one event, flags EVQ_ONESHOT (flags=%#x)", ev[0].flags);
	/* Then silent although readable, even when more data comes. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: silent after firing");
	put(sv[1]);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: silent despite new data");
	/* evq_mod re-enables it: still readable, so it fires once more. */
	is(evq_mod(q, id, EVQ_READ, EVQ_ONESHOT), 0, "oneshot: evq_mod re-arms");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id, "oneshot: fires again after re-arm");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: and silent again");
	/* Back to level: reported on every wait. */
	is(evq_mod(q, id, EVQ_READ, 0), 0, "oneshot: evq_mod to level");
	int c = 0;
	for (int i = 0; i < 2; i++)
		c += evqt_wait(q, ev, NEV, EVQT_SOON) == 1 && ev[0].id == id &&
		     ev[0].flags == 0;
	is(c, 2, "oneshot: as level it is reported on two waits");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

static void test_disabled(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	put(sv[1]);
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, EVQ_DISABLED, 11);
	ok(id >= 0, "disabled: registered disabled");
	/* Readable but disabled: nothing. */
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: readable fd not reported");
	is(evq_mod(q, id, EVQ_READ, 0), 0, "disabled: enable");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 11, "disabled: enabled -> reported");
	is(evq_mod(q, id, EVQ_READ, EVQ_DISABLED), 0, "disabled: disable again");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "disabled: silent again");
	is(evq_mod(q, id, EVQ_READ, 0), 0, "disabled: re-enable");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id, "disabled: reported after re-enable");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

static void test_hup_err(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, 0, 1);
	close(sv[1]);
	/* Peer closed: EVQ_HUP is reported (EOF also reads as READ). */
	int n;
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && (ev[0].events & EVQ_HUP),
	   "hup: socket peer closed -> EVQ_HUP (events=%#x)", ev[0].events);

	/* events 0: only EVQ_ERR/EVQ_HUP are reported, never READ. */
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	int64_t pid = evq_add_fd(q, p[0], 0, 0, 2);
	ok(pid >= 0, "hup: events 0 accepted");
	put(p[1]);
	n = evqt_wait(q, ev, NEV, QUIET);
	is(count_id(ev, n, pid), 0,
	   "hup: data alone does not report an events-0 registration");
	close(p[1]);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	const struct evq_event *e = find_id(ev, n, pid);
	ok(e && (e->events & EVQ_HUP) && !(e->events & (EVQ_READ | EVQ_WRITE)),
	   "hup: pipe writer closed -> EVQ_HUP without READ (events=%#x)",
	   e ? e->events : 0);
	CHECK(evq_del(q, id) == 0);
	CHECK(evq_del(q, pid) == 0);

	/* Writing end of a pipe whose reader is gone: EVQ_ERR. */
	int p2[2];
	CHECK(pipe2(p2, O_NONBLOCK | O_CLOEXEC) == 0);
	int64_t wid = evq_add_fd(q, p2[1], EVQ_WRITE, 0, 3);
	close(p2[0]);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	e = find_id(ev, n, wid);
	ok(e && (e->events & EVQ_ERR),
	   "err: pipe reader closed -> EVQ_ERR on the write end (events=%#x)",
	   e ? e->events : 0);
	evq_free(q);
	close(sv[0]);
	close(p[0]);
	close(p2[1]);
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/evq-fd-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK(write(fd, "hello", 5) == 5);
	return fd;
}

static void test_regular_files(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];

	/* Level regular file: ready at once, and again on every later wait,
	 * but only once per wait. */
	int f = tmpfile_fd();
	int64_t id = evq_add_fd(q, f, EVQ_READ | EVQ_WRITE, 0, 21);
	ok(id >= 0, "file: regular file accepted (%" PRId64 ")", id);
	int n = evqt_wait(q, ev, NEV, 0);
	const struct evq_event *e = find_id(ev, n, id);
	ok(n == 1 && e && e->cookie == 21 && e->kind == EVQ_KIND_FD &&
		   e->ident == f && e->events == (EVQ_READ | EVQ_WRITE),
	   "file: ready at once with READ|WRITE (n=%d events=%#x)", n,
	   e ? e->events : 0);
	int c = 0;
	for (int i = 0; i < 3; i++) {
		n = evqt_wait(q, ev, NEV, 0);
		c += n == 1 && count_id(ev, n, id) == 1;
	}
	is(c, 3, "file: level -> reported once on each of 3 later waits");
	/* Second registration of the same fd is refused, the first still works. */
	is(evq_add_fd(q, f, EVQ_READ, 0, 22), -EEXIST, "file: second registration -EEXIST");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 21,
	   "file: first registration unaffected by the refused one");
	CHECK(evq_del(q, id) == 0);
	is(evqt_wait(q, ev, NEV, 0), 0, "file: deleted -> no more events");

	/* Edge: once. */
	int f2 = tmpfile_fd();
	int64_t eid = evq_add_fd(q, f2, EVQ_READ, EVQ_EDGE, 23);
	n = evqt_wait(q, ev, NEV, 0);
	ok(eid >= 0 && n == 1 && ev[0].id == eid && ev[0].events == EVQ_READ,
	   "file: edge -> reported once");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "file: edge -> not again");
	is(evqt_wait(q, ev, NEV, 0), 0, "file: edge -> still not");
	CHECK(evq_del(q, eid) == 0);

	/* Oneshot: once, re-armed by evq_mod, once more. */
	int f3 = tmpfile_fd();
	int64_t oid = evq_add_fd(q, f3, EVQ_READ, EVQ_ONESHOT, 24);
	n = evqt_wait(q, ev, NEV, 0);
	ok(oid >= 0 && n == 1 && ev[0].id == oid && ev[0].flags == EVQ_ONESHOT,
	   "file: oneshot -> reported once");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "file: oneshot -> then silent");
	is(evq_mod(q, oid, EVQ_READ, EVQ_ONESHOT), 0, "file: oneshot re-armed");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == oid, "file: oneshot fires after re-arm");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "file: oneshot silent again");

	/* Disabled: nothing until enabled. */
	is(evq_mod(q, oid, EVQ_READ, EVQ_DISABLED), 0, "file: disable");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "file: disabled -> silent");
	is(evq_mod(q, oid, EVQ_READ, 0), 0, "file: enable as level");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == oid, "file: enabled -> ready");
	CHECK(evq_del(q, oid) == 0);

	/* Directory and /dev/null (epoll refuses both): ready at once. */
	int d = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(d >= 0 && nul >= 0);
	int64_t did = evq_add_fd(q, d, EVQ_READ, 0, 25);
	int64_t nid = evq_add_fd(q, nul, EVQ_READ | EVQ_WRITE, 0, 26);
	ok(did >= 0, "dir: accepted (%" PRId64 ")", did);
	ok(nid >= 0, "/dev/null: accepted (%" PRId64 ")", nid);
	n = evqt_wait(q, ev, NEV, 0);
	e = find_id(ev, n, did);
	ok(e && e->events == EVQ_READ && e->ident == d, "dir: ready at once");
	e = find_id(ev, n, nid);
	ok(e && e->events == (EVQ_READ | EVQ_WRITE) && e->ident == nul,
	   "/dev/null: ready at once for READ|WRITE");
	/* Level: both again on the next wait (exactly once each). */
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 2 && count_id(ev, n, did) == 1 && count_id(ev, n, nid) == 1,
	   "dir + /dev/null: level -> both again, once each (n=%d)", n);

	/* An always-ready fd does not starve others: a socket with data is
	 * reported alongside. */
	int sv[2];
	pair(sv);
	int64_t sid = evq_add_fd(q, sv[0], EVQ_READ, 0, 27);
	put(sv[1]);
	c = 0;
	for (int i = 0; i < 4; i++) {
		n = evqt_wait(q, ev, NEV, EVQT_SOON);
		c += count_id(ev, n, sid);
	}
	ok(sid >= 0 && c >= 1, "file: socket still reported next to always-ready fds");
	evq_free(q);
	close(f);
	close(f2);
	close(f3);
	close(d);
	close(nul);
	close(sv[0]);
	close(sv[1]);
}

static void test_eexist(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int sv[2];
	pair(sv);
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, 0, 31);
	ok(id >= 0, "eexist: first registration");
	/* The same fd again (any interest): refused. */
	is(evq_add_fd(q, sv[0], EVQ_READ, 0, 32), -EEXIST, "eexist: same fd READ -> -EEXIST");
	is(evq_add_fd(q, sv[0], EVQ_WRITE, EVQ_EDGE, 33), -EEXIST,
	   "eexist: same fd WRITE|EDGE -> -EEXIST");
	/* The first registration is intact. */
	put(sv[1]);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 31 && ev[0].events == EVQ_READ,
	   "eexist: first registration still delivers, unchanged");
	ok(evqt_roundtrip(q), "eexist: queue still works");
	/* After evq_del the fd can be registered again, with a new id. */
	is(evq_del(q, id), 0, "eexist: evq_del");
	int64_t id2 = evq_add_fd(q, sv[0], EVQ_READ, 0, 34);
	ok(id2 >= 0 && id2 != id, "eexist: re-registration after del gets a new id");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id2 && ev[0].cookie == 34,
	   "eexist: new registration delivers with its cookie");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
}

static void test_many_fds(void)
{
	/* 500 socketpairs, every 2nd one readable: exactly those are reported,
	 * each once per wait, with its own cookie. */
	enum { N = 500 };
	static int fds[N][2];
	static int64_t ids[N];
	struct evq *q = evqt_new();
	static struct evq_event ev[N];
	for (int i = 0; i < N; i++) {
		pair(fds[i]);
		ids[i] = evq_add_fd(q, fds[i][0], EVQ_READ, 0, 1000 + (uint64_t)i);
		CHECK(ids[i] >= 0);
	}
	for (int i = 0; i < N; i += 2)
		put(fds[i][1]);
	static int seen[N];
	int got = 0, bad = 0;
	for (int round = 0; round < 10 && got < N / 2; round++) {
		int n = evqt_wait(q, ev, N, EVQT_SOON);
		for (int k = 0; k < n; k++) {
			uint64_t i = ev[k].cookie - 1000;
			if (i >= N || ev[k].id != ids[i] || i % 2 || seen[i]++)
				bad++;
			else
				got++;
		}
	}
	is(got, N / 2, "many: all %d readable fds reported", N / 2);
	is(bad, 0, "many: no wrong, unreadable or duplicate event");
	evq_free(q);
	for (int i = 0; i < N; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

static void test_free_keeps_fds(void)
{
	/* evq_free with live registrations (one readable, events pending)
	 * does not close the fds: they still work afterwards. */
	struct evq *q = evqt_new();
	int sv[2], f = tmpfile_fd();
	pair(sv);
	CHECK(evq_add_fd(q, sv[0], EVQ_READ, 0, 1) >= 0);
	CHECK(evq_add_fd(q, sv[1], EVQ_WRITE, EVQ_EDGE, 2) >= 0);
	CHECK(evq_add_fd(q, f, EVQ_READ, 0, 3) >= 0);
	put(sv[1]);
	struct evq_event ev[1];
	CHECK(evqt_wait(q, ev, 1, EVQT_SOON) == 1); /* more left pending */
	evq_free(q);
	ok(fcntl(sv[0], F_GETFD) >= 0 && fcntl(sv[1], F_GETFD) >= 0 &&
		   fcntl(f, F_GETFD) >= 0,
	   "free: registered fds are still open after evq_free");
	char c;
	ok(read(sv[0], &c, 1) == 1 && write(sv[1], "y", 1) == 1,
	   "free: the socketpair still works");
	/* A new queue can register them again. */
	q = evqt_new();
	int64_t id = evq_add_fd(q, sv[0], EVQ_READ, 0, 4);
	int n = evqt_wait(q, ev, 1, EVQT_SOON);
	ok(id >= 0 && n == 1 && ev[0].id == id, "free: fd registers in a new queue");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
	close(f);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("fd");
	test_layout();
	test_socket_read_level();
	test_socket_write();
	test_pipe_eventfd();
	test_edge();
	test_oneshot();
	test_disabled();
	test_hup_err();
	test_regular_files();
	test_eexist();
	test_many_fds();
	test_free_keeps_fds();
	return done();
}
