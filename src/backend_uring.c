/*
 * backend_uring.c - the io_uring backend (issue 4).  Not implemented yet:
 * init() refuses, so AUTO keeps choosing epoll.
 */
#include <errno.h>

#include "internal.h"

static int ur_init(struct evq *q, int max_batch)
{
	(void)q;
	(void)max_batch;
	return -ENOSYS;
}

const struct evq_backend evq__backend_uring = {
	.name = "uring",
	.init = ur_init,
};
