/* SPDX-License-Identifier: MIT */
/*
 * config.c - every EVQ_* environment variable the library reads is read
 * here, with secure_getenv (so a set-user-ID or set-group-ID program is
 * not steered by its caller's environment), and parsed one way.
 *
 * The test switches exist only in the test build (-DEVQ_TESTING, the
 * libevq.a under $(BUILD)/testing/ that tests/ link): they make the
 * io_uring backend refuse or fail on purpose, or change how it sleeps,
 * which no installed library should let an environment variable do.
 *   EVQ_URING_REFUSE=setup|disabled|feat|op  io_uring init, and the wake
 *        ring of evq_latch_set_many, refuse as if that check had failed
 *        (any other non-empty value: the wake ring refuses with ENOSYS)
 *   EVQ_URING_FAULT=busy|again  every other submitting io_uring_enter
 *        fails with -EBUSY / -EAGAIN (tests/uring.c)
 *   EVQ_URING_ENTRIES=n  ring size (1: one SQE, two CQEs, to overflow
 *        the CQ; tests/uring.c, tests/cqoverflow.c)
 *   EVQ_URING_INLINE=0  io_uring queues never sleep inline in futex_waitv
 *        (make check's third pass, tests/handoff.c, bench/uring.c)
 * The test programs' own variables (EVQ_TEST_*, EVQ_RANDOM_*,
 * EVQ_FAULTS_SITES, EVQ_SRCDIR) are read by the tests, not the library.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evq.h"
#include "config.h"

/* A decimal number >= 0 (at most 9 digits), or -1.  Not strtol/atoi:
 * those may not be async-signal-safe, and garbage must not parse. */
static int number(const char *s)
{
	if (!s || !*s)
		return -1;
	int v = 0;
	for (int i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 9)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int is(const char *s, const char *word)
{
	return s && strcmp(s, word) == 0;
}

void evq__config_read(struct evq__config *c)
{
	const char *v = secure_getenv("EVQ_BACKEND");
	if (!v || !*v || is(v, "auto"))
		c->backend = EVQ_BACKEND_AUTO;
	else if (is(v, "epoll"))
		c->backend = EVQ_BACKEND_EPOLL;
	else if (is(v, "uring"))
		c->backend = EVQ_BACKEND_URING;
	else
		c->backend = -1;

	v = secure_getenv("EVQ_DEBUG");
	c->debug = v && *v && !is(v, "0");

	c->latch_batch = number(secure_getenv("EVQ_LATCH_BATCH"));

	c->uring_refuse = EVQ__REFUSE_NONE;
	c->uring_fault = 0;
	c->uring_entries = 0;
	c->uring_inline = 1;
#ifdef EVQ_TESTING
	v = secure_getenv("EVQ_URING_REFUSE");
	if (is(v, "setup"))
		c->uring_refuse = EVQ__REFUSE_SETUP;
	else if (is(v, "disabled"))
		c->uring_refuse = EVQ__REFUSE_DISABLED;
	else if (is(v, "feat"))
		c->uring_refuse = EVQ__REFUSE_FEAT;
	else if (is(v, "op"))
		c->uring_refuse = EVQ__REFUSE_OP;
	else if (v && *v)
		c->uring_refuse = EVQ__REFUSE_OTHER;

	v = secure_getenv("EVQ_URING_FAULT");
	if (is(v, "busy"))
		c->uring_fault = -EBUSY;
	else if (is(v, "again"))
		c->uring_fault = -EAGAIN;

	int n = number(secure_getenv("EVQ_URING_ENTRIES"));
	if (n > 0)
		c->uring_entries = (unsigned)n;

	c->uring_inline = !is(secure_getenv("EVQ_URING_INLINE"), "0");
#endif
}
