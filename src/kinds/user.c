/* SPDX-License-Identifier: MIT */
/*
 * user.c - user events (evq_add_user, evq_trigger): a counter that any
 * thread or signal handler bumps lock-free through the post stack.
 */
#include <errno.h>

#include "internal.h"


int64_t evq_add_user(struct evq *q, uint64_t cookie)
{
	return evq__reg_add(q, EVQ_KIND_USER, 0, cookie, -1, NULL);
}

const struct evq__kind evq__kind_user = {
	.name = "user",
	.mod_flags = EVQ_ONESHOT | EVQ_DISABLED,
};

int evq_trigger(struct evq *q, int64_t id)
{
	int ck = evq__check(q);
	if (ck < 0)
		return ck;
	int saved = errno, rc = -ENOENT;
	uint64_t st;
	struct evq__reg *r = evq__reg_lookup(q, id, &st);
	if (r && evq__reg_kind(st) != EVQ_KIND_USER)
		rc = -EINVAL;
	else if (r)
		/* a del racing with us retags ctl: the post then fails */
		rc = evq__post(q, r, evq__ctl_tag(evq__reg_gen(st)), 1);
	errno = saved;
	return rc;
}

