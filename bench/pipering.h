/* SPDX-License-Identifier: MIT */
/*
 * pipering.h - the workload of the libevent/libev "pipes" benchmark, shared
 * by bench/pipes.c and bench/peers.c (static: each program has its own):
 *
 *   fds    ring socketpairs, the watched end in pr.rfd[i] and the other in
 *          pr.wfd[i], then idle eventfds up to n (never readable: the
 *          registered-but-quiet fds of peers' scale figure; pipes has none)
 *   start  one byte into a pairs spaced ring/a apart, w writes to come
 *   run    each implementation calls pipering_readable(i) when watched fd
 *          i is readable: it reads the byte and, while writes remain,
 *          writes one into pair (i + 1) mod ring, so a tokens go round the
 *          ring until w writes are made: a + w reads in all
 *   check  after a round every pair must be empty and a + w bytes read
 */
#ifndef EVQ_BENCH_PIPERING_H
#define EVQ_BENCH_PIPERING_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

static struct pipering {
	int *rfd, *wfd;   /* watched fd of watcher i; writing end of pair i */
	int ring, nfds;   /* pairs the tokens go round; all fds */
	int npairs;       /* pairs made */
	long writes_left; /* of w */
	long handled;     /* bytes read this round */
} pr;

static inline void pipering_die(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static inline void *pipering_calloc(int n, size_t size)
{
	void *p = calloc((size_t)(n > 0 ? n : 1), size);
	if (!p)
		pipering_die("calloc", ENOMEM);
	return p;
}

/* the one read handler every implementation calls; all inline, so that
 * a program using only some of these gets no unused-function warning */
static inline void pipering_readable(int i)
{
	char c;

	/* a spurious wakeup (none expected) reads nothing and counts nothing */
	if (read(pr.rfd[i], &c, 1) != 1)
		return;
	pr.handled++;
	if (pr.writes_left > 0) {
		pr.writes_left--;
		if (write(pr.wfd[i + 1 == pr.ring ? 0 : i + 1], "e", 1) != 1)
			pipering_die("write", errno);
	}
}

/* npairs socketpairs, then eventfds up to n fds in all */
static inline void pipering_make(int npairs, int n)
{
	pr.rfd = pipering_calloc(n, sizeof *pr.rfd);
	pr.wfd = pipering_calloc(npairs, sizeof *pr.wfd);
	for (int i = 0; i < n; i++) {
		int sv[2];
		if (i >= npairs) {
			if ((pr.rfd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
				pipering_die("eventfd", errno);
			continue;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
			pipering_die("socketpair", errno);
		pr.rfd[i] = sv[0];
		pr.wfd[i] = sv[1];
	}
	pr.npairs = npairs;
	pr.nfds = n;
}

static inline void pipering_free(void)
{
	for (int i = 0; i < pr.nfds; i++)
		close(pr.rfd[i]);
	for (int i = 0; i < pr.npairs; i++)
		close(pr.wfd[i]);
	free(pr.rfd);
	free(pr.wfd);
	memset(&pr, 0, sizeof pr);
}

/* the round's first a bytes; ring must be set */
static inline void pipering_start(int a, long w)
{
	int space = pr.ring / a;

	pr.handled = 0;
	pr.writes_left = w;
	for (int k = 0; k < a; k++)
		if (write(pr.wfd[k * space], "e", 1) != 1)
			pipering_die("write", errno);
}

/* After a round every pair must be empty: nothing lost, nothing extra. */
static inline void pipering_check(const char *prog, const char *impl, long total)
{
	char c;

	if (pr.handled != total) {
		fprintf(stderr, "%s: %s handled %ld of %ld\n", prog, impl, pr.handled, total);
		exit(1);
	}
	for (int i = 0; i < pr.ring; i++)
		if (recv(pr.rfd[i], &c, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN) {
			fprintf(stderr, "%s: %s left a byte in pair %d\n", prog, impl, i);
			exit(1);
		}
}

#endif
