/* SPDX-License-Identifier: MIT */
/*
 * mqueue.c - POSIX message queues through evq_add_fd (an mqd_t is a file
 * descriptor on Linux): EVQ_WRITE while not full, EVQ_READ while a message
 * waits, level and edge triggering, a message sent from another thread
 * (and from another process) wakes a sleeping waiter, mq_close()
 * silences the registration, -EEXIST for a second registration, and the
 * queue stays usable.
 */
#include <fcntl.h>
#include <mqueue.h>
#include <pthread.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h" /* q->sleepers: "the waiter sleeps in evq_wait" */

#define NEV 16
#define QUIET (20 * EVQT_MS)
#define MAXMSG 4

static char name[64];

static mqd_t open_mq(void)
{
	struct mq_attr attr = { .mq_maxmsg = MAXMSG, .mq_msgsize = 64 };
	mqd_t mq = mq_open(name, O_CREAT | O_RDWR | O_NONBLOCK, 0600, &attr);
	return mq;
}

/* The events of the one event for id, or 0 if none within timeout. */
static uint32_t events_of(struct evq *q, int64_t id, int64_t timeout)
{
	struct evq_event ev[NEV];
	int n = evqt_wait(q, ev, NEV, timeout);
	uint32_t e = 0;
	for (int i = 0; i < n; i++)
		if (ev[i].id == id)
			e |= ev[i].events;
	return e;
}

static void test_level(mqd_t mq)
{
	struct evq *q = evqt_new();
	int64_t id = evq_add_fd(q, mq, EVQ_READ | EVQ_WRITE, 0, 0x30);
	ok(id >= 0, "level: evq_add_fd(mqd) -> %" PRId64 "", id);
	/* Empty: writable, not readable. */
	is(events_of(q, id, EVQT_SOON), EVQ_WRITE, "level: empty queue -> EVQ_WRITE only");
	CHECK(mq_send(mq, "one", 4, 0) == 0);
	/* A message: readable and still writable. */
	is(events_of(q, id, EVQT_SOON), EVQ_READ | EVQ_WRITE, "level: one message -> READ|WRITE");
	for (int i = 1; i < MAXMSG; i++)
		CHECK(mq_send(mq, "more", 5, 0) == 0);
	/* Full: readable only. */
	is(events_of(q, id, EVQT_SOON), EVQ_READ, "level: full queue -> EVQ_READ only");
	char buf[64];
	CHECK(mq_receive(mq, buf, sizeof buf, NULL) == 4 && strcmp(buf, "one") == 0);
	is(events_of(q, id, EVQT_SOON), EVQ_READ | EVQ_WRITE, "level: one taken -> writable again");
	while (mq_receive(mq, buf, sizeof buf, NULL) > 0)
		;
	is(events_of(q, id, EVQT_SOON), EVQ_WRITE, "level: drained -> EVQ_WRITE only");
	/* One registration per open mqd. */
	is(evq_add_fd(q, mq, EVQ_READ, 0, 1), -EEXIST, "level: second registration -> -EEXIST");
	is(evq_del(q, id), 0, "level: evq_del");
	ok(evqt_roundtrip(q), "level: queue usable");
	evq_free(q);
}

static void test_edge(mqd_t mq)
{
	struct evq *q = evqt_new();
	int64_t id = evq_add_fd(q, mq, EVQ_READ, EVQ_EDGE, 0x31);
	CHECK(id >= 0);
	is(events_of(q, id, QUIET), 0, "edge: empty -> nothing");
	CHECK(mq_send(mq, "a", 2, 0) == 0);
	/* The arrival is one edge: reported once, not again while it waits. */
	is(events_of(q, id, EVQT_SOON), EVQ_READ, "edge: arrival reported");
	is(events_of(q, id, QUIET), 0, "edge: not again while unread");
	CHECK(mq_send(mq, "b", 2, 0) == 0);
	is(events_of(q, id, EVQT_SOON), EVQ_READ, "edge: a second arrival is a new edge");
	char buf[64];
	while (mq_receive(mq, buf, sizeof buf, NULL) > 0)
		;
	evq_free(q);
}

/* Sends once the waiter sleeps in evq_wait on q (was: after 30 ms). */
struct send_arg {
	mqd_t mq;
	struct evq *q;
	pid_t waiter;
	int asleep;
};

static void *send_later(void *arg)
{
	struct send_arg *a = arg;
	a->asleep = evqt_until(evqt_sleeping_in(a->q, a->waiter));
	CHECK(mq_send(a->mq, "late", 5, 0) == 0);
	return NULL;
}

static void test_wake(mqd_t mq)
{
	struct evq *q = evqt_new();
	int64_t id = evq_add_fd(q, mq, EVQ_READ, 0, 0x32);
	CHECK(id >= 0);
	pthread_t t;
	struct send_arg sa = { mq, q, evqt_gettid(), 0 };
	CHECK(pthread_create(&t, NULL, send_later, &sa) == 0);
	/* A waiter asleep forever wakes for a message from another thread. */
	is(events_of(q, id, -1), EVQ_READ, "wake: message from a thread wakes evq_wait(-1)");
	pthread_join(t, NULL);
	ok(sa.asleep, "wake: the waiter was seen asleep before the message");
	char buf[64];
	CHECK(mq_receive(mq, buf, sizeof buf, NULL) == 5);

	/* ...and from another process that opened the queue by name. */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		mqd_t m = mq_open(name, O_WRONLY);
		evqt_sleep_ns(30 * EVQT_MS);
		_exit(m != (mqd_t)-1 && mq_send(m, "proc", 5, 0) == 0 ? 0 : 1);
	}
	is(events_of(q, id, EVQT_SOON), EVQ_READ, "wake: message from another process");
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(mq_receive(mq, buf, sizeof buf, NULL) == 5 && strcmp(buf, "proc") == 0);
	evq_free(q);
}

static void test_close(void)
{
	struct evq *q = evqt_new();
	mqd_t mq = open_mq();
	CHECK(mq != (mqd_t)-1);
	int64_t id = evq_add_fd(q, mq, EVQ_READ, 0, 0x33);
	CHECK(id >= 0);
	CHECK(mq_send(mq, "z", 2, 0) == 0);
	/* mq_close() while registered: silent, like a closed fd; evq_del of
	 * the id still fine. */
	CHECK(mq_close(mq) == 0);
	is(events_of(q, id, QUIET), 0, "close: closed mqd reports nothing");
	is(evq_del(q, id), 0, "close: evq_del after mq_close");
	ok(evqt_roundtrip(q), "close: queue usable");
	evq_free(q);
}

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("mqueue");
	snprintf(name, sizeof name, "/evq-mqueue-%d", (int)getpid());
	mqd_t mq = open_mq();
	if (mq == (mqd_t)-1)
		skip_all("mq_open failed: no POSIX message queues here");
	test_level(mq);
	test_edge(mq);
	test_wake(mq);
	mq_close(mq);
	test_close();
	mq_unlink(name);
	return done();
}
