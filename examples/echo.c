/* SPDX-License-Identifier: MIT */
/*
 * echo.c - an edge-triggered TCP echo server on one evq, and a client that
 * opens many connections at once and checks every byte that comes back.
 *
 *   echo                       self-test: server thread + client, 100
 *   echo --selftest [-n N]       connections on an ephemeral localhost port
 *   echo -s PORT               server on 127.0.0.1:PORT (until killed)
 *   echo -c PORT [-n N] [-b B] client: N connections (default 100), each
 *                                sends B bytes (default 65536) in messages
 *                                of 1..4096 bytes and checks the echo
 *
 * Both sides register every socket with EVQ_EDGE: an event means "this
 * changed since you last looked", so a handler must read (or write) until
 * the kernel says EAGAIN, or it will not hear of that socket again.  The
 * server echoes through a buffer of its own: what the peer is not ready to
 * take stays there, the server stops reading that connection (so a slow
 * reader cannot make it buffer without bound) and asks for EVQ_WRITE until
 * the buffer has drained.  Registrations are deleted before close().
 *
 * Exit status 0 when every connection's echo was complete and correct.
 *   cc echo.c $(pkg-config --cflags --libs evq)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4() */
#endif
#include <errno.h>
#include <evq.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEC 1000000000LL /* nanoseconds */

/* Cookies: the listening socket and the stop event have small numbers;
 * a connection's cookie is its struct's address (never 1 or 2). */
enum { COOKIE_LISTEN = 1, COOKIE_STOP = 2 };

/* ------------------------------------------------------------------ */
/* Server                                                               */
/* ------------------------------------------------------------------ */

struct conn {
	struct conn *prev, *next; /* the server's list of connections */
	int fd;
	int64_t id;           /* its evq registration */
	int want_write;       /* registered for EVQ_WRITE too */
	size_t off, len;      /* buf[off..len) is still to be sent back */
	char buf[16384];
};

struct server {
	struct evq *q;
	int lfd;              /* listening socket */
	int64_t stop;         /* user event: leave the loop */
	struct conn *conns;   /* open connections */
	long accepted;        /* connections, in all */
	long write_waits;     /* times an echo waited for EVQ_WRITE */
};

/* Closes a connection: the registration goes first, then the fd. */
static void conn_close(struct server *s, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	evq_del(s->q, c->id);
	close(c->fd);
	free(c);
}

/* Handles any event of a connection (edge-triggered: whatever it says, do
 * all there is to do).  Returns 0, or -1 when the connection is over. */
static int conn_service(struct server *s, struct conn *c)
{
	for (;;) {
		/* 1. Send back what is buffered, as far as the peer takes it. */
		while (c->off < c->len) {
			ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off,
					 MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n < 0)
				return -1;          /* EPIPE, ECONNRESET, ... */
			c->off += (size_t)n;
		}
		if (c->off < c->len) {
			/* The peer is full: wait for EVQ_WRITE, read no more. */
			if (!c->want_write &&
			    evq_mod(s->q, c->id, EVQ_READ | EVQ_WRITE, EVQ_EDGE) < 0)
				return -1;
			c->want_write = 1;
			s->write_waits++;
			return 0;
		}
		c->off = c->len = 0;
		if (c->want_write) {
			/* Drained: readiness to write is of no interest now. */
			if (evq_mod(s->q, c->id, EVQ_READ, EVQ_EDGE) < 0)
				return -1;
			c->want_write = 0;
		}
		/* 2. Read more; the buffer is empty.  EAGAIN: all read, the
		 * next EVQ_READ edge will bring us back. */
		ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;                  /* end of file or error */
		c->len = (size_t)n;
	}
}

/* Accepts every pending connection (edge-triggered: until EAGAIN). */
static void server_accept(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				perror("echo: accept4");   /* EMFILE: see ulimit -n */
			return;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		/* Echo at once, do not wait to fill a segment (Nagle); and
		 * bound the kernel's memory per connection: a small send
		 * buffer, so a slow reader soon makes send() partial and the
		 * rest waits in c->buf (the case edge triggering makes hard). */
		int one = 1, sndbuf = 16384;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
		c->id = evq_add_fd(s->q, fd, EVQ_READ, EVQ_EDGE, (uintptr_t)c);
		if (c->id < 0) {
			fprintf(stderr, "echo: evq_add_fd: %s\n", strerror((int)-c->id));
			close(fd);
			free(c);
			continue;
		}
		s->accepted++;
		c->next = s->conns;
		if (c->next)
			c->next->prev = c;
		s->conns = c;
		/* Whatever already arrived is reported by the registration's
		 * first edge; serving now is as good and saves a round. */
		if (conn_service(s, c) < 0)
			conn_close(s, c);
	}
}

/* Listens on 127.0.0.1:port (0: any free port) and prepares the queue. */
static int server_init(struct server *s, int port)
{
	memset(s, 0, sizeof *s);
	int rc = evq_new(&s->q, NULL);
	if (rc < 0) {
		fprintf(stderr, "echo: evq_new: %s\n", strerror(-rc));
		return -1;
	}
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s->lfd < 0 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(s->lfd, SOMAXCONN) < 0) {
		perror("echo: listen");
		return -1;
	}
	int64_t lid = evq_add_fd(s->q, s->lfd, EVQ_READ, EVQ_EDGE, COOKIE_LISTEN);
	s->stop = evq_add_user(s->q, COOKIE_STOP);
	if (lid < 0 || s->stop < 0) {
		fprintf(stderr, "echo: cannot register the listener\n");
		return -1;
	}
	return 0;
}

static int server_port(const struct server *s)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	getsockname(s->lfd, (struct sockaddr *)&a, &len);
	return ntohs(a.sin_port);
}

/* The event loop, until the stop event is triggered. */
static void *server_run(void *arg)
{
	struct server *s = arg;
	for (;;) {
		struct evq_event ev[64];
		int n = evq_wait(s->q, ev, 64, -1, NULL);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "echo: evq_wait: %s\n", strerror(-n));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].cookie == COOKIE_STOP)
				return NULL;
			if (ev[i].cookie == COOKIE_LISTEN) {
				server_accept(s);
				continue;
			}
			/* EVQ_READ, EVQ_WRITE, EVQ_HUP or EVQ_ERR: the
			 * service loop's send() and recv() find out which. */
			struct conn *c = (struct conn *)(uintptr_t)ev[i].cookie;
			if (conn_service(s, c) < 0)
				conn_close(s, c);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Client                                                               */
/* ------------------------------------------------------------------ */

struct cconn {
	int fd;
	int64_t id;
	unsigned idx;         /* which connection: seeds its byte pattern */
	size_t sent, recvd;   /* bytes so far, each way */
};

/* Byte i of connection k's stream: every connection sends different
 * bytes, so a reply crossed between connections would be noticed. */
static unsigned char pattern(unsigned k, size_t i)
{
	return (unsigned char)(i * 131 + (i >> 9) + k * 7 + 1);
}

/* How long the message starting at byte i is: 1..4096, varied. */
static size_t msg_len(unsigned k, size_t i)
{
	return 1 + (size_t)((i * 2654435761u + k) % 4096);
}

struct client {
	struct evq *q;
	size_t total;         /* bytes each connection sends */
	int open;             /* connections not finished yet */
	long bad;             /* connections that failed */
};

static void client_finish(struct client *cl, struct cconn *c, const char *why)
{
	if (why) {
		fprintf(stderr, "echo: connection %u: %s (sent %zu, received %zu of %zu)\n",
			c->idx, why, c->sent, c->recvd, cl->total);
		cl->bad++;
	}
	evq_del(cl->q, c->id);
	close(c->fd);
	c->fd = -1;
	cl->open--;
}

/* One event of a client connection: send while the socket takes it, then
 * read and check everything that has come back. */
static void client_service(struct client *cl, struct cconn *c, uint32_t events)
{
	char buf[4096];
	if (events & EVQ_ERR) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		client_finish(cl, c, err ? strerror(err) : "socket error");
		return;
	}
	while (c->sent < cl->total) {
		size_t len = msg_len(c->idx, c->sent);
		if (len > cl->total - c->sent)
			len = cl->total - c->sent;
		for (size_t j = 0; j < len; j++)
			buf[j] = (char)pattern(c->idx, c->sent + j);
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;              /* the next EVQ_WRITE edge resumes */
		if (n < 0) {
			client_finish(cl, c, strerror(errno));
			return;
		}
		c->sent += (size_t)n;       /* a short send is fine: resume there */
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;             /* the next EVQ_READ edge resumes */
		if (n < 0) {
			client_finish(cl, c, strerror(errno));
			return;
		}
		if (n == 0) {
			client_finish(cl, c, "closed by the server before the end");
			return;
		}
		if (c->recvd + (size_t)n > c->sent) {
			client_finish(cl, c, "more bytes back than sent");
			return;
		}
		for (ssize_t j = 0; j < n; j++)
			if ((unsigned char)buf[j] != pattern(c->idx, c->recvd + (size_t)j)) {
				client_finish(cl, c, "wrong byte in the echo");
				return;
			}
		c->recvd += (size_t)n;
		if (c->recvd == cl->total) {
			client_finish(cl, c, NULL);         /* complete and correct */
			return;
		}
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* Opens nconn connections to 127.0.0.1:port at once and echoes total bytes
 * through each.  Returns 0 if every echo came back complete and correct. */
static int client_run(int port, int nconn, size_t total)
{
	struct client cl = { .total = total };
	int rc = evq_new(&cl.q, NULL);
	if (rc < 0) {
		fprintf(stderr, "echo: evq_new: %s\n", strerror(-rc));
		return 1;
	}
	struct cconn *conns = calloc((size_t)nconn, sizeof *conns);
	if (!conns)
		return 1;
	int64_t start = now_ns();
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int k = 0; k < nconn; k++) {
		struct cconn *c = &conns[k];
		c->idx = (unsigned)k;
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			perror("echo: socket");     /* EMFILE: see ulimit -n */
			return 1;
		}
		/* No Nagle delay; and a small receive buffer, so that the
		 * server's echo often finds it full (a slow reader). */
		int one = 1, rcvbuf = 8192;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
		/* Non-blocking connect: EINPROGRESS, then EVQ_WRITE (or
		 * EVQ_ERR) when it is done; EVQ_WRITE also resumes sending. */
		if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 &&
		    errno != EINPROGRESS) {
			perror("echo: connect");
			return 1;
		}
		c->id = evq_add_fd(cl.q, c->fd, EVQ_READ | EVQ_WRITE, EVQ_EDGE,
				   (uintptr_t)c);
		if (c->id < 0) {
			fprintf(stderr, "echo: evq_add_fd: %s\n", strerror((int)-c->id));
			return 1;
		}
		cl.open++;
	}

	/* Until every connection is finished; 10 s without any event is a
	 * failure (a lost edge would hang here otherwise). */
	while (cl.open > 0) {
		struct evq_event ev[64];
		int n = evq_wait(cl.q, ev, 64, 10 * SEC, NULL);
		if (n == -EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "echo: %s with %d connections unfinished\n",
				n == 0 ? "no progress for 10 s" : strerror(-n), cl.open);
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct cconn *c = (struct cconn *)(uintptr_t)ev[i].cookie;
			if (c->fd >= 0)
				client_service(&cl, c, ev[i].events);
		}
	}
	double secs = (double)(now_ns() - start) / SEC;
	printf("echo: %d connections, %zu bytes each, %ld failed, %.3f s (%.1f MB/s each way)\n",
	       nconn, total, cl.bad, secs, (double)total * nconn / secs / 1e6);
	free(conns);
	evq_free(cl.q);
	return cl.bad ? 1 : 0;
}

/* ------------------------------------------------------------------ */

/* Two sockets per connection in the self-test: allow as many fds as the
 * hard limit does. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: echo [--selftest] [-n N] [-b BYTES]\n"
			"       echo -s PORT\n"
			"       echo -c PORT [-n N] [-b BYTES]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int server_port_arg = -1, client_port = -1, nconn = 100;
	long bytes = 65536;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(opt, "--selftest") == 0)
			continue;
		if (!val)
			return usage();
		i++;
		if (strcmp(opt, "-s") == 0)
			server_port_arg = atoi(val);
		else if (strcmp(opt, "-c") == 0)
			client_port = atoi(val);
		else if (strcmp(opt, "-n") == 0)
			nconn = atoi(val);
		else if (strcmp(opt, "-b") == 0)
			bytes = atol(val);
		else
			return usage();
	}
	if (nconn <= 0 || bytes <= 0 || server_port_arg > 65535 || client_port > 65535)
		return usage();
	raise_fd_limit();

	if (client_port >= 0)
		return client_run(client_port, nconn, (size_t)bytes);

	struct server s;
	if (server_init(&s, server_port_arg >= 0 ? server_port_arg : 0) < 0)
		return 1;
	if (server_port_arg >= 0) {
		printf("echo: serving 127.0.0.1:%d\n", server_port(&s));
		fflush(stdout);
		server_run(&s);
		return 1;
	}

	/* Self-test: the server loop in a thread, the client here. */
	pthread_t t;
	if (pthread_create(&t, NULL, server_run, &s) != 0)
		return 1;
	int rc = client_run(server_port(&s), nconn, (size_t)bytes);
	evq_trigger(s.q, s.stop);
	pthread_join(t, NULL);
	printf("echo: server accepted %ld connections; %ld echoes waited for EVQ_WRITE\n",
	       s.accepted, s.write_waits);
	/* The client has closed its ends; the server may not have seen every
	 * end of file yet. */
	while (s.conns)
		conn_close(&s, s.conns);
	evq_free(s.q);
	close(s.lfd);
	return rc == 0 && s.accepted == nconn ? 0 : 1;
}
