/* SPDX-License-Identifier: MIT */
/*
 * fork.c - what a child may do with a queue it inherited (issue 5): every
 * call but evq_free fails with -ECHILD, evq_free does not unregister or steal
 * what the parent waits on, and the child can create and use its own queue.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include "evqtest.h"

/* Runs in the child; returns the number of failed checks as exit status. */
static int child(struct evq *q, int64_t fd_id, int64_t user_id, int sv)
{
	int bad = 0;
	struct evq_event ev[4];
	/* every call on the inherited queue is refused */
	bad += evq_wait(q, ev, 4, 0, NULL) != -ECHILD;
	bad += evq_trigger(q, user_id) != -ECHILD;
	bad += evq_add_user(q, 1) != -ECHILD;
	bad += evq_mod(q, fd_id, EVQ_READ, 0) != -ECHILD;
	bad += evq_del(q, fd_id) != -ECHILD;
	bad += evq_add_timer(q, CLOCK_MONOTONIC, 1, 0, 0, 1) != -ECHILD;
	bad += evq_add_fd(q, sv, EVQ_READ, 0, 1) != -ECHILD;
	bad += evq_requeue(q, ev) != -ECHILD;
	/* freeing it is allowed and must not touch the parent's epoll set */
	evq_free(q);

	/* a queue of its own works */
	struct evq *mine;
	if (evq_new(&mine, NULL) != 0)
		return 100;
	int p[2];
	if (pipe(p) != 0)
		return 101;
	int64_t id = evq_add_fd(mine, p[0], EVQ_READ, 0, 7);
	bad += id < 0;
	bad += write(p[1], "x", 1) != 1;
	int n = evq_wait(mine, ev, 4, EVQT_SOON, NULL);
	bad += !(n == 1 && ev[0].id == id && ev[0].cookie == 7);
	int64_t u = evq_add_user(mine, 8);
	bad += evq_trigger(mine, u) != 0;
	n = evq_wait(mine, ev, 4, EVQT_SOON, NULL);
	bad += !(n == 1 && ev[0].id == u && ev[0].data == 1);
	evq_free(mine);
	return bad;
}

int main(void)
{
	evqt_banner("fork");
	evqt_watchdog(60);
	struct evq *q = evqt_new();
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	int64_t fd_id = evq_add_fd(q, sv[0], EVQ_READ, 0, 1);
	int64_t user_id = evq_add_user(q, 2);
	int64_t tid = evq_add_timer(q, CLOCK_MONOTONIC, 50 * EVQT_MS, 0, 0, 3);
	CHECK(fd_id >= 0 && user_id >= 0 && tid >= 0);

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(child(q, fd_id, user_id, sv[1]));
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "child: inherited queue refuses with -ECHILD, frees cleanly, own queue works (status %d)",
	   WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	/* The parent's registrations survived the child's evq_free. */
	struct evq_event ev[4];
	CHECK(write(sv[1], "y", 1) == 1);
	/* the timer may have expired while the child ran (it is then
	 * delivered first, without asking the kernel): collect until both */
	int n, saw_fd = 0, saw_timer = 0;
	char c;
	for (int round = 0; round < 4 && !(saw_fd && saw_timer); round++) {
		n = evqt_wait(q, ev, 4, EVQT_SOON);
		for (int i = 0; i < n; i++) {
			if (ev[i].id == fd_id && !saw_fd) {
				saw_fd = 1;
				CHECK(read(sv[0], &c, 1) == 1); /* level: drain it */
			}
			saw_timer |= ev[i].id == tid;
		}
	}
	ok(saw_fd, "parent: fd registration still delivers after the child freed its copy");
	ok(saw_timer, "parent: timer still fires");
	ok(evq_trigger(q, user_id) == 0 && evqt_wait(q, ev, 4, EVQT_SOON) == 1 &&
	   ev[0].id == user_id, "parent: user trigger still delivers");

	/* A child that exits without evq_free: nothing changes for the parent. */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(write(sv[1], "z", 1) == 1);
	n = evqt_wait(q, ev, 4, EVQT_SOON);
	ok(n == 1 && ev[0].id == fd_id, "parent: unaffected by a child that just exits");
	evq_free(q);
	close(sv[0]);
	close(sv[1]);
	done();
}
