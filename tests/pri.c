/* SPDX-License-Identifier: MIT */
/*
 * pri.c - EVQ_PRI, urgent data: TCP out-of-band data on a loopback pair
 * (send(MSG_OOB)) is reported as EVQ_PRI when asked for and only then;
 * level (until recv(MSG_OOB) reads it), EVQ_EDGE (once per arrival),
 * EVQ_ONESHOT (once, re-armed by evq_mod), evq_mod adding and removing
 * EVQ_PRI; a regular file never reports it; a packet-mode pty master
 * reports its status byte as EVQ_PRI; unknown event bits stay -EINVAL.
 *
 * What the kernel does, asserted here: a socket's urgent byte (without
 * SO_OOBINLINE) is not in-band data, so with nothing else queued the
 * socket is EVQ_PRI but not EVQ_READ; in-band data queued with it makes it
 * EVQ_READ|EVQ_PRI.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "evqtest.h"

#define NEV 8
#define QUIET (20 * EVQT_MS) /* how long "nothing more is reported" waits */

/* A connected TCP loopback pair: *rx (non-blocking) receives, *tx sends.
 * 0, or -1 if this machine has no loopback TCP. */
static int tcp_pair(int *rx, int *tx)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&a, al) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0) {
		close(l);
		return -1;
	}
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c >= 0);
	if (connect(c, (struct sockaddr *)&a, al) < 0) {
		close(c);
		close(l);
		return -1;
	}
	int s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	CHECK(s >= 0);
	close(l);
	int one = 1;
	CHECK(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
	*rx = s;
	*tx = c;
	return 0;
}

static void send_oob(int tx)
{
	CHECK(send(tx, "!", 1, MSG_OOB) == 1);
}

/* Reads the urgent byte: 1 if it was '!'. */
static int read_oob(int rx)
{
	char b = 0;
	return recv(rx, &b, 1, MSG_OOB) == 1 && b == '!';
}

/* Waits (up to EVQT_SOON) until id reports all of want; the last events
 * seen for id (0 if none). */
static uint32_t wait_for(struct evq *q, int64_t id, uint32_t want)
{
	struct evq_event ev[NEV];
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	uint32_t last = 0;
	while (evqt_now(CLOCK_MONOTONIC) < end) {
		int n = evqt_wait(q, ev, NEV, 100 * EVQT_MS);
		for (int i = 0; i < n; i++)
			if (ev[i].id == id)
				last = ev[i].events;
		if ((last & want) == want)
			break;
	}
	return last;
}

static void test_bits(void)
{
	ok(EVQ_PRI == 0x10u && !(EVQ_PRI & (EVQ_READ | EVQ_WRITE | EVQ_ERR | EVQ_HUP)),
	   "EVQ_PRI is 0x10, next to READ/WRITE/ERR/HUP");
	ok(EVQ_MASK_PRI == EVQ_PRI && evq_mask_from_events(EVQ_PRI) == EVQ_MASK_PRI &&
		   evq_mask_to_events(EVQ_MASK_PRI) == EVQ_PRI,
	   "EVQ_MASK_PRI == EVQ_PRI, mapped both ways");
}

static void test_level(int rx, int tx)
{
	struct evq *q = evqt_new(), *q2 = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_fd(q, rx, EVQ_READ | EVQ_PRI, 0, 7);
	int64_t id2 = evq_add_fd(q2, rx, EVQ_READ, 0, 8);
	ok(id >= 0 && id2 >= 0, "level: READ|PRI and READ-only registrations");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "level: nothing before urgent data");

	send_oob(tx);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].cookie == 7 && ev[0].kind == EVQ_KIND_FD &&
		   ev[0].ident == rx && ev[0].events == EVQ_PRI,
	   "level: urgent byte alone -> EVQ_PRI only, not READ (n=%d events=%#x)", n,
	   ev[0].events);
	is(evqt_wait(q2, ev, NEV, QUIET), 0,
	   "level: READ-only registration reports nothing for it");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].events == EVQ_PRI, "level: unread -> EVQ_PRI again");
	ok(read_oob(rx), "level: recv(MSG_OOB) reads the byte");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "level: read -> EVQ_PRI no longer reported");

	/* In-band data and an urgent byte: READ|PRI; READ-only sees READ. */
	CHECK(send(tx, "ab", 2, 0) == 2);
	send_oob(tx);
	uint32_t e = wait_for(q, id, EVQ_READ | EVQ_PRI);
	is(e, EVQ_READ | EVQ_PRI, "level: data + urgent byte -> READ|PRI");
	e = wait_for(q2, id2, EVQ_READ);
	is(e, EVQ_READ, "level: READ-only registration -> READ, never PRI");
	ok(read_oob(rx), "level: urgent byte read");
	char buf[8];
	ok(recv(rx, buf, sizeof buf, 0) == 2 && buf[0] == 'a' && buf[1] == 'b',
	   "level: in-band data read (the urgent byte is not in it)");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "level: all read -> silent");
	is(evqt_wait(q2, ev, NEV, 0), 0, "level: READ-only -> silent");
	evq_free(q2);
	evq_free(q);
}

static void test_edge(int rx, int tx)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_fd(q, rx, EVQ_PRI, EVQ_EDGE, 9);
	send_oob(tx);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(id >= 0 && n == 1 && ev[0].id == id && ev[0].events == EVQ_PRI &&
		   ev[0].flags == EVQ_EDGE,
	   "edge: urgent byte -> EVQ_PRI once (events=%#x)", ev[0].events);
	is(evqt_wait(q, ev, NEV, QUIET), 0, "edge: unread, but not again");
	ok(read_oob(rx), "edge: urgent byte read");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "edge: reading is no transition to report");
	send_oob(tx);
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_PRI,
	   "edge: a second arrival -> EVQ_PRI once more");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "edge: and only once");
	ok(read_oob(rx), "edge: second urgent byte read");
	evq_free(q);
}

static void test_oneshot(int rx, int tx)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_fd(q, rx, EVQ_READ | EVQ_PRI, EVQ_ONESHOT, 10);
	send_oob(tx);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(id >= 0 && n == 1 && ev[0].id == id && ev[0].events == EVQ_PRI &&
		   ev[0].flags == EVQ_ONESHOT,
	   "oneshot: urgent byte -> EVQ_PRI");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: unread, but spent");
	is(evq_mod(q, id, EVQ_READ | EVQ_PRI, EVQ_ONESHOT), 0, "oneshot: re-armed");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_PRI,
	   "oneshot: still unread -> EVQ_PRI after re-arm");
	ok(read_oob(rx), "oneshot: urgent byte read");
	is(evq_mod(q, id, EVQ_READ | EVQ_PRI, EVQ_ONESHOT), 0, "oneshot: re-armed again");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "oneshot: read -> nothing to report");
	evq_free(q);
}

static void test_mod(int rx, int tx)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_fd(q, rx, EVQ_READ, 0, 11);
	ok(id >= 0, "mod: READ-only registration");
	send_oob(tx);
	/* Wait until the byte is there (as poll() sees it) before asserting
	 * silence. */
	ok(evqt_until(recv(rx, (char[1]){ 0 }, 1, MSG_OOB | MSG_PEEK) == 1),
	   "mod: urgent byte arrived (MSG_PEEK)");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: READ only -> no EVQ_PRI");
	is(evq_mod(q, id, EVQ_READ | EVQ_PRI, 0), 0, "mod: EVQ_PRI added");
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_PRI,
	   "mod: added -> EVQ_PRI reported (events=%#x)", ev[0].events);
	is(evq_mod(q, id, EVQ_READ, 0), 0, "mod: EVQ_PRI removed");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: removed -> no longer reported");
	is(evq_mod(q, id, EVQ_PRI, EVQ_EDGE), 0, "mod: EVQ_PRI alone, edge");
	n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_PRI,
	   "mod: edge registration reports the pending byte once");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: edge -> once");

	/* Unknown bits are still refused, and leave the registration alone. */
	is(evq_mod(q, id, EVQ_PRI << 1, 0), -EINVAL, "mod: events 0x20 -> -EINVAL");
	is(evq_mod(q, id, EVQ_READ | EVQ_ERR, 0), -EINVAL,
	   "mod: EVQ_ERR is reported, not asked for -> -EINVAL");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "mod: refused calls changed nothing");
	ok(read_oob(rx), "mod: urgent byte read");
	CHECK(evq_del(q, id) == 0);
	is(evq_add_fd(q, rx, EVQ_PRI << 1, 0, 0), -EINVAL, "add: events 0x20 -> -EINVAL");
	is(evq_add_fd(q, rx, EVQ_PRI | 0x80000000u, 0, 0), -EINVAL,
	   "add: EVQ_PRI with an unknown bit -> -EINVAL");
	is(evq_add_fd(q, rx, EVQ_HUP, 0, 0), -EINVAL, "add: EVQ_HUP as interest -> -EINVAL");
	evq_free(q);
}

static void test_regular_file(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	char path[] = "/tmp/evq-pri-XXXXXX";
	int f = mkstemp(path);
	CHECK(f >= 0);
	unlink(path);
	int64_t id = evq_add_fd(q, f, EVQ_READ | EVQ_WRITE | EVQ_PRI, 0, 12);
	int n = evqt_wait(q, ev, NEV, 0);
	ok(id >= 0 && n == 1 && ev[0].id == id && ev[0].events == (EVQ_READ | EVQ_WRITE),
	   "file: READ|WRITE|PRI -> READ|WRITE, never PRI (events=%#x)", ev[0].events);
	is(evq_mod(q, id, EVQ_PRI, 0), 0, "file: mod to EVQ_PRI alone");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "file: EVQ_PRI alone -> never reported");
	is(evq_mod(q, id, EVQ_READ | EVQ_PRI, EVQ_EDGE), 0, "file: mod to READ|PRI edge");
	n = evqt_wait(q, ev, NEV, 0);
	ok(n == 1 && ev[0].id == id && ev[0].events == EVQ_READ, "file: edge -> READ once");
	CHECK(evq_del(q, id) == 0);
	id = evq_add_fd(q, f, EVQ_PRI, EVQ_ONESHOT, 13);
	ok(id >= 0, "file: EVQ_PRI alone, oneshot, accepted");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "file: ... and never reported");
	evq_free(q);
	close(f);
}

/* A packet-mode pty master: a flush of the slave's output queues a status
 * byte (TIOCPKT_FLUSHWRITE) the kernel reports as POLLPRI|POLLIN. */
static void test_pty(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		if (m >= 0)
			close(m);
		skip(5, "no pty");
		return;
	}
	int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHECK(s >= 0);
	int one = 1;
	CHECK(ioctl(m, TIOCPKT, &one) == 0);
	CHECK(fcntl(m, F_SETFL, O_NONBLOCK) == 0);
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	int64_t id = evq_add_fd(q, m, EVQ_READ | EVQ_PRI, 0, 14);
	ok(id >= 0, "pty: packet-mode master registered");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "pty: nothing yet");
	CHECK(tcflush(s, TCOFLUSH) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id && ev[0].events == (EVQ_READ | EVQ_PRI),
	   "pty: slave's output flushed -> READ|PRI (events=%#x)", ev[0].events);
	unsigned char b[8];
	ok(read(m, b, sizeof b) == 1 && (b[0] & TIOCPKT_FLUSHWRITE),
	   "pty: the status byte says TIOCPKT_FLUSHWRITE");
	is(evqt_wait(q, ev, NEV, QUIET), 0, "pty: read -> silent");
	evq_free(q);
	close(s);
	close(m);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("pri");
	test_bits();
	int rx, tx;
	if (tcp_pair(&rx, &tx) < 0) {
		skip(44, "no loopback TCP");
	} else {
		test_level(rx, tx);
		test_edge(rx, tx);
		test_oneshot(rx, tx);
		test_mod(rx, tx);
		close(rx);
		close(tx);
	}
	test_regular_file();
	test_pty();
	return done();
}
