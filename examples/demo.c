/* SPDX-License-Identifier: MIT */
/*
 * demo.c - one queue, three kinds of events: a socket, a periodic timer and
 * a user event triggered from another thread.  Prints each event as it
 * arrives and exits when the other thread hangs up (about 0.8 s).
 * events: R readable, W writable, E error, H hang-up.
 *
 *   make demo        (or: cc demo.c $(pkg-config --cflags --libs evq))
 */
#include <evq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { COOKIE_SOCKET = 1, COOKIE_TIMER = 2, COOKIE_USER = 3 };

#define MS 1000000LL /* nanoseconds */

struct peer {
	struct evq *q;
	int fd;      /* our end of the socketpair */
	int64_t user_id; /* the user event to trigger */
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The other thread: writes to the socket, triggers the user event three
 * times in a row (they coalesce into one event if the main thread has not
 * taken the first yet), then hangs up. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	sleep_ms(250);
	if (write(p->fd, "hello", 5) != 5)
		perror("write");
	sleep_ms(250);
	for (int i = 0; i < 3; i++)
		evq_trigger(p->q, p->user_id);
	sleep_ms(250);
	close(p->fd);
	return NULL;
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case EVQ_KIND_FD: return "fd";
	case EVQ_KIND_TIMER: return "timer";
	case EVQ_KIND_USER: return "user";
	default: return "other";
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(void)
{
	struct evq *q;
	int sv[2], rc = evq_new(&q, NULL);
	if (rc < 0) {
		fprintf(stderr, "evq_new: %s\n", strerror(-rc));
		return 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		return 1;
	}
	int64_t sock_id = evq_add_fd(q, sv[0], EVQ_READ, 0, COOKIE_SOCKET);
	int64_t timer_id = evq_add_timer(q, CLOCK_MONOTONIC, 200 * MS, 200 * MS, 0, COOKIE_TIMER);
	int64_t user_id = evq_add_user(q, COOKIE_USER);
	if (sock_id < 0 || timer_id < 0 || user_id < 0) {
		fprintf(stderr, "registration failed\n");
		return 1;
	}
	printf("backend %s: socket id %" PRId64 ", timer id %" PRId64 ", user id %" PRId64 "\n",
	       evq_backend_name(q), sock_id, timer_id, user_id);

	struct peer peer = { q, sv[1], user_id };
	pthread_t thread;
	if (pthread_create(&thread, NULL, peer_main, &peer) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}

	int64_t start = now_ns(), deadline = start + 1500 * MS;
	int hung_up = 0;
	while (!hung_up && now_ns() < deadline) {
		struct evq_event ev[8];
		int n = evq_wait(q, ev, 8, deadline - now_ns(), NULL);
		if (n < 0) {
			fprintf(stderr, "evq_wait: %s\n", strerror(-n));
			break;
		}
		for (int i = 0; i < n; i++) {
			printf("%6.1f ms  kind=%-5s id=%" PRId64 " cookie=%llu events=%s%s%s%s data=%llu",
			       (double)(now_ns() - start) / MS, kind_name(ev[i].kind),
			       ev[i].id, (unsigned long long)ev[i].cookie,
			       ev[i].events & EVQ_READ ? "R" : "-",
			       ev[i].events & EVQ_WRITE ? "W" : "-",
			       ev[i].events & EVQ_ERR ? "E" : "-",
			       ev[i].events & EVQ_HUP ? "H" : "-",
			       (unsigned long long)ev[i].data);
			if (ev[i].cookie == COOKIE_SOCKET) {
				char buf[64];
				ssize_t len = read(sv[0], buf, sizeof buf);
				if (len > 0)
					printf("  read \"%.*s\"", (int)len, buf);
				else if (len == 0) {
					printf("  end of file: peer hung up");
					hung_up = 1;
				}
			}
			putchar('\n');
		}
	}

	pthread_join(thread, NULL);
	evq_del(q, sock_id); /* before close, as evq_add_fd(3) advises */
	close(sv[0]);
	evq_free(q);
	if (!hung_up) {
		fprintf(stderr, "demo: no hang-up within 1.5 s\n");
		return 1;
	}
	return 0;
}
