/* SPDX-License-Identifier: MIT */
/* Prints, one per line, the backends this machine can run (used by
 * `make check` to run every test once per backend).  Not a TAP test. */
#include <stdio.h>
#include <stdlib.h>
#include "evq.h"

int main(void)
{
	static const struct { int id; const char *name; } all[] = {
		{ EVQ_BACKEND_EPOLL, "epoll" },
		{ EVQ_BACKEND_URING, "uring" },
	};
	unsetenv("EVQ_BACKEND");
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		struct evq *q;
		struct evq_options o = { .backend = all[i].id };
		if (evq_new(&q, &o) == 0) {
			puts(all[i].name);
			evq_free(q);
		}
	}
	return 0;
}
