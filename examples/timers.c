/* SPDX-License-Identifier: MIT */
/*
 * timers.c - periodic and one-shot timers, overruns, re-arming.
 *
 * A 50 ms periodic timer ticks while the program also sleeps 230 ms without
 * waiting (as if busy): the next event's data says how many periods passed,
 * nothing is dropped.  A relative one-shot timer fires once and is re-armed
 * with evq_mod_timer(); an absolute one (EVQ_ABSTIME) ends the program
 * after about 0.6 s.
 */
#include <evq.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS 1000000LL /* nanoseconds */

enum { TICK = 1, ONCE = 2, END = 3 };

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(void)
{
	struct evq *q;
	int rc = evq_new(&q, NULL);
	if (rc < 0) {
		fprintf(stderr, "evq_new: %s\n", strerror(-rc));
		return 1;
	}
	int64_t start = now_ns();
	int64_t tick = evq_add_timer(q, CLOCK_MONOTONIC, 50 * MS, 50 * MS, 0, TICK);
	int64_t once = evq_add_timer(q, CLOCK_MONOTONIC, 120 * MS, 0, 0, ONCE);
	int64_t end = evq_add_timer(q, CLOCK_MONOTONIC, start + 600 * MS, 0, EVQ_ABSTIME, END);
	if (tick < 0 || once < 0 || end < 0) {
		fprintf(stderr, "evq_add_timer failed\n");
		return 1;
	}

	int ticks = 0, done = 0, rearmed = 0;
	unsigned long long periods = 0;
	while (!done) {
		struct evq_event ev[4];
		int n = evq_wait(q, ev, 4, 2000 * MS, NULL);
		if (n <= 0) {
			fprintf(stderr, "evq_wait: %s\n", n ? strerror(-n) : "timed out");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			double t = (double)(now_ns() - start) / MS;
			switch (ev[i].cookie) {
			case TICK:
				printf("%6.1f ms  tick, %llu period(s)%s\n", t,
				       (unsigned long long)ev[i].data,
				       ev[i].data > 1 ? " (overrun)" : "");
				periods += ev[i].data;
				if (++ticks == 3) {
					/* busy for 230 ms: the timer keeps counting */
					struct timespec busy = { 0, 230 * MS };
					nanosleep(&busy, NULL);
				}
				break;
			case ONCE:
				printf("%6.1f ms  one-shot fired (data %llu)\n", t,
				       (unsigned long long)ev[i].data);
				/* a fired one-shot stays registered: re-arm it once */
				if (!rearmed++)
					evq_mod_timer(q, once, 100 * MS, 0, 0);
				break;
			case END:
				printf("%6.1f ms  absolute timer fired\n", t);
				done = 1;
				break;
			}
		}
	}
	/* every period is accounted for: about 600 / 50 = 12 */
	printf("%d tick events, %llu periods\n", ticks, periods);
	evq_free(q); /* frees the timers too */
	return 0;
}
