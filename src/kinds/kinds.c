/* SPDX-License-Identifier: MIT */
/*
 * kinds.c - the table of event kinds, by the kind number a registration's
 * state word holds (include/evq.h EVQ_KIND_*).  Adding a kind: its own file
 * in src/kinds/ defining `const struct evq__kind evq__kind_<name>`, and one
 * line in KINDS below (plus its public constant and API in include/evq.h).
 */
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* The drop hook of kinds whose ext starts with a kernel fd of their own
 * (signalfd, pidfd): close it, free ext. */
void evq__drop_fd_ext(struct evq *q, struct evq__add *a)
{
	int *fd = a->ext; /* the first member */
	(void)q;
	close(*fd);
	free(a->ext);
}

#define KINDS(X)                               \
	X(EVQ_KIND_FD, fd)                     \
	X(EVQ_KIND_TIMER, timer)               \
	X(EVQ_KIND_USER, user)                 \
	X(EVQ_KIND_SIGNAL, signal)             \
	X(EVQ_KIND_PID, pid)                   \
	X(EVQ_KIND_WORD, word)                 \
	X(EVQ_KIND_SEM, sem)                   \
	X(EVQ_KIND_LATCH, latch)               \
	X(EVQ_KIND_MASK, mask)                 \
	X(EVQ_KIND_SIGEVENT, sigevent)         \
	X(EVQ__KIND_CARRIER, carrier)

#define DECLARE(num, name) extern const struct evq__kind evq__kind_##name;
KINDS(DECLARE)

/* a free slot (kind 0): no hooks */
static const struct evq__kind kind_free = { .name = "free" };

#define ENTRY(num, name) [num] = &evq__kind_##name,
const struct evq__kind *const evq__kinds[EVQ__NKINDS] = {
	[0] = &kind_free,
	KINDS(ENTRY)
};
