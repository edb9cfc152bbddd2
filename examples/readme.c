/* SPDX-License-Identifier: MIT */
/* The example of README.md: stdin, a timer and a user event on one queue. */
#include <evq.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	struct evq *q;
	if (evq_new(&q, NULL) < 0)
		return 1;
	evq_add_fd(q, STDIN_FILENO, EVQ_READ, 0, 1);           /* cookie 1 */
	evq_add_timer(q, CLOCK_MONOTONIC, 2000000000, 0, 0, 2); /* in 2 s, cookie 2 */
	int64_t user = evq_add_user(q, 3);                      /* cookie 3 */
	evq_trigger(q, user);       /* from any thread or signal handler */

	for (int done = 0; !done;) {
		struct evq_event ev[8];
		int n = evq_wait(q, ev, 8, -1, NULL);   /* < 0: -errno */
		for (int i = 0; i < n; i++) {
			printf("cookie %llu: kind %u, data %llu\n",
			       (unsigned long long)ev[i].cookie, ev[i].kind,
			       (unsigned long long)ev[i].data);
			char buf[512];
			if (ev[i].cookie == 1 && read(STDIN_FILENO, buf, sizeof buf) <= 0)
				evq_del(q, ev[i].id);   /* end of input */
			done = done || ev[i].cookie == 2;
		}
	}
	evq_free(q);
	return 0;
}
