/* SPDX-License-Identifier: MIT */
/*
 * echo_client.c - the load generator of the Tcl echo benchmark (issue 13
 * item 4), written on evq so that it is not the bottleneck: one thread, one
 * queue, N non-blocking loopback connections to bench/tcl/echo_server.tcl.
 *
 * Setup: at most -w connections are in flight at once (connecting, or
 * waiting for their first echo), so the server's accept queue never
 * overflows; a connection counts as established once its first message
 * came back whole (the server has accepted it and set its fileevent).
 * Timed part: every connection sends its message, waits for the whole
 * echo (checked byte for byte), sends it again at once, for -d seconds.
 * Echoes completed inside the window count; throughput = that count / the
 * window; latency = send to last byte of the echo, percentiles over every
 * echo in the window (those still in flight at its end are dropped).
 * client_cpu = this process's CPU time over the window in % of one CPU
 * (near 100: the client, not the server, would be the limit); with -P,
 * server_cpu = the server process's (from /proc/PID/stat, 10 ms ticks).
 *
 * At the end every socket is closed with SO_LINGER 0 (a reset: no
 * TIME_WAIT left to fill the port range across runs).
 *
 * Output, one line on stdout:
 *   n=500 secs=3.000 echoes=123456 rate=41152 p50_us=.. p90_us=.. p99_us=..
 *   max_us=.. setup_ms=.. client_cpu=.. [server_cpu=..]
 * or, when the server fails (exit status 2):
 *   n=5000 failed established=1017 err="connection 1018: ..."
 *
 * Usage: echo_client -p port [-n conns] [-d secs] [-s bytes] [-w window]
 *                    [-b epoll|uring] [-P server-pid]
 * The soft descriptor limit is raised to the hard one.  The queue uses
 * -b's backend (default epoll: the same client for every server).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evq.h"
#include "../bench.h"

enum { C_CONNECTING, C_SETUP, C_IDLE, C_RUN };

struct conn {
	int fd;
	int state;
	int got;
	int64_t id;
	int64_t t0;
};

static struct conn *conns;
static int nconn = 500, msgsize = 64;
static unsigned char *msg, *rbuf;
static int established;
static int64_t *lat;
static size_t nlat, caplat;

static void fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	printf("n=%d failed established=%d err=\"%s\"\n", nconn, established, buf);
	fflush(stdout);
	fprintf(stderr, "echo_client: %s\n", buf);
	exit(2);
}

static void record(int64_t ns)
{
	if (nlat == caplat) {
		caplat = caplat ? caplat * 2 : 1 << 16;
		lat = realloc(lat, caplat * sizeof *lat);
		if (!lat) {
			perror("echo_client: realloc");
			exit(1);
		}
	}
	lat[nlat++] = ns;
}

static void send_msg(int i)
{
	struct conn *c = &conns[i];
	ssize_t w = send(c->fd, msg, (size_t)msgsize, MSG_NOSIGNAL);
	if (w != msgsize)
		fail("connection %d: send: %s", i + 1,
		     w < 0 ? strerror(errno) : "short write");
	c->got = 0;
	c->t0 = now_ns();
}

static void start_connect(struct evq *q, int i, const struct sockaddr_in *sa)
{
	struct conn *c = &conns[i];
	int one = 1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		fail("connection %d: socket: %s", i + 1, strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) < 0 &&
	    errno != EINPROGRESS)
		fail("connection %d: connect: %s", i + 1, strerror(errno));
	c->state = C_CONNECTING;
	c->id = evq_add_fd(q, c->fd, EVQ_WRITE, 0, (uint64_t)i);
	if (c->id < 0)
		fail("connection %d: evq_add_fd: %s", i + 1, strerror((int)-c->id));
}

/* Reads what is there; returns 1 when the whole echo is in. */
static int take(int i)
{
	struct conn *c = &conns[i];
	ssize_t r = recv(c->fd, rbuf + c->got, (size_t)(msgsize - c->got + 1), 0);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		fail("connection %d: recv: %s", i + 1, strerror(errno));
	}
	if (r == 0)
		fail("connection %d: end of file from the server", i + 1);
	c->got += (int)r;
	if (c->got > msgsize)
		fail("connection %d: more bytes back than sent", i + 1);
	if (c->got < msgsize)
		return 0;
	if (memcmp(rbuf, msg, (size_t)msgsize))
		fail("connection %d: the echo differs from the message", i + 1);
	return 1;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of process pid (user + system), < 0 if unknown. */
static double proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	/* fields after the command name, which ends at the last ')':
	 * state(3) ... utime(14) stime(15) */
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

static double pct_us(double q)
{
	if (!nlat)
		return 0;
	size_t k = (size_t)(q * (double)nlat + 0.999999);
	if (k < 1)
		k = 1;
	if (k > nlat)
		k = nlat;
	return (double)lat[k - 1] / 1e3;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: echo_client -p port [-n conns] [-d secs] "
		"[-s bytes] [-w window] [-b epoll|uring] [-P server-pid]\n");
	exit(1);
}

int main(int argc, char **argv)
{
	int port = 0, window = 256, spid = 0, opt;
	double secs = 3;
	struct evq_options qo = { .backend = EVQ_BACKEND_EPOLL };

	while ((opt = getopt(argc, argv, "p:n:d:s:w:b:P:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'n': nconn = atoi(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 's': msgsize = atoi(optarg); break;
		case 'w': window = atoi(optarg); break;
		case 'P': spid = atoi(optarg); break;
		case 'b':
			if (!strcmp(optarg, "epoll"))
				qo.backend = EVQ_BACKEND_EPOLL;
			else if (!strcmp(optarg, "uring"))
				qo.backend = EVQ_BACKEND_URING;
			else
				usage();
			break;
		default: usage();
		}
	}
	if (port <= 0 || port > 65535 || nconn < 1 || secs <= 0 ||
	    msgsize < 1 || msgsize > 65536 || window < 1)
		usage();

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			perror("echo_client: setrlimit");
	}

	conns = calloc((size_t)nconn, sizeof *conns);
	msg = malloc((size_t)msgsize);
	rbuf = malloc((size_t)msgsize + 1);
	if (!conns || !msg || !rbuf) {
		perror("echo_client: malloc");
		return 1;
	}
	for (int i = 0; i < msgsize; i++)
		msg[i] = (unsigned char)('a' + i % 26);

	struct evq *q;
	int rc = evq_new(&q, &qo);
	if (rc < 0) {
		fprintf(stderr, "echo_client: evq_new: %s\n", strerror(-rc));
		return 1;
	}

	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	enum { MAXEV = 256 };
	struct evq_event ev[MAXEV];
	const int64_t stall = 10 * (int64_t)1000000000;

	/* Setup: connect everyone, one first echo each. */
	int64_t t_setup = now_ns();
	int next = 0, inflight = 0;
	while (established < nconn) {
		while (inflight < window && next < nconn) {
			start_connect(q, next++, &sa);
			inflight++;
		}
		int n = evq_wait(q, ev, MAXEV, stall, NULL);
		if (n < 0 && n != -EINTR)
			fail("evq_wait: %s", strerror(-n));
		if (n == 0)
			fail("no progress for 10 s with %d connections in setup",
			     inflight);
		for (int k = 0; k < n; k++) {
			int i = (int)ev[k].cookie;
			struct conn *c = &conns[i];
			if (c->state == C_CONNECTING) {
				int err = 0;
				socklen_t len = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err)
					fail("connection %d: connect: %s", i + 1,
					     strerror(err));
				if (!(ev[k].events & EVQ_WRITE))
					continue;
				rc = evq_mod(q, c->id, EVQ_READ, 0);
				if (rc < 0)
					fail("connection %d: evq_mod: %s", i + 1,
					     strerror(-rc));
				c->state = C_SETUP;
				send_msg(i);
			} else if (c->state == C_SETUP) {
				if (take(i)) {
					c->state = C_IDLE;
					inflight--;
					established++;
				}
			} else {
				/* an idle connection is never readable unless
				 * the server breaks it */
				char b;
				ssize_t r = recv(c->fd, &b, 1, 0);
				if (r == 0)
					fail("connection %d: end of file from the server",
					     i + 1);
				if (r > 0)
					fail("connection %d: unexpected bytes", i + 1);
				if (errno != EAGAIN)
					fail("connection %d: recv: %s", i + 1,
					     strerror(errno));
			}
		}
	}
	double setup_ms = (double)(now_ns() - t_setup) / 1e6;

	/* The timed window. */
	int64_t start = now_ns(), end = start + (int64_t)(secs * 1e9);
	double cpu0 = cpu_s(), scpu0 = spid > 0 ? proc_cpu_s(spid) : -1;
	for (int i = 0; i < nconn; i++) {
		conns[i].state = C_RUN;
		send_msg(i);
	}
	uint64_t echoes = 0;
	for (;;) {
		int64_t t = now_ns();
		if (t >= end)
			break;
		int n = evq_wait(q, ev, MAXEV, end - t, NULL);
		if (n < 0 && n != -EINTR)
			fail("evq_wait: %s", strerror(-n));
		for (int k = 0; k < n; k++) {
			int i = (int)ev[k].cookie;
			struct conn *c = &conns[i];
			if (!take(i))
				continue;
			int64_t done = now_ns();
			if (done > end)
				continue;
			record(done - c->t0);
			echoes++;
			send_msg(i);
		}
	}
	double wall = (double)(now_ns() - start) / 1e9;
	double cpu = cpu_s() - cpu0;
	double scpu = scpu0 >= 0 ? proc_cpu_s(spid) : -1;

	qsort(lat, nlat, sizeof *lat, cmp_i64);
	printf("n=%d secs=%.3f echoes=%llu rate=%.0f p50_us=%.0f p90_us=%.0f "
	       "p99_us=%.0f max_us=%.0f setup_ms=%.0f client_cpu=%.0f",
	       nconn, secs, (unsigned long long)echoes, (double)echoes / secs,
	       pct_us(0.50), pct_us(0.90), pct_us(0.99), pct_us(1.0), setup_ms,
	       100 * cpu / wall);
	if (scpu >= 0)
		printf(" server_cpu=%.0f", 100 * (scpu - scpu0) / wall);
	printf("\n");
	fflush(stdout);

	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	for (int i = 0; i < nconn; i++) {
		evq_del(q, conns[i].id);
		setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(conns[i].fd);
	}
	evq_free(q);
	free(lat);
	free(conns);
	free(msg);
	free(rbuf);
	return 0;
}
