/* SPDX-License-Identifier: MIT */
/*
 * bcastids.c - a broadcaster's subscription slot whose generation is spent
 * is retired: never handed out again, so no id is ever handed out twice
 * (evq_bcast_subscribe(3)).  White-box: includes src/kinds/mask.c to start a
 * slot's generation next to the end.
 */
#include "../src/kinds/mask.c"

#include "evqtest.h"

int main(void)
{
	evqt_watchdog(60);
	evqt_banner("bcastids");
	struct evq_bcast b;
	struct evq_receiver r;
	CHECK(evq_bcast_init(&b) == 0 && evq_receiver_init(&r, NULL, NULL) == 0);

	int64_t id = evq_bcast_subscribe(&b, &r, 0x1);
	CHECK(id >= 0 && evq_bcast_unsubscribe(&b, id) == 0);
	uint32_t slot = (uint32_t)id;
	/* the slot's last two ids: gen + 1 = GEN_LAST - 1, then GEN_LAST */
	struct table *t = evq__ld(&b.table);
	t->slot[slot].gen = GEN_LAST - 2;
	int64_t a = evq_bcast_subscribe(&b, &r, 0x1);
	ok(a == ((int64_t)(GEN_LAST - 1) << 32 | slot) && evq_bcast_unsubscribe(&b, a) == 0,
	   "the slot's next-to-last id (%#llx)", (unsigned long long)a);
	int64_t last = evq_bcast_subscribe(&b, &r, 0x1);
	ok(last == ((int64_t)GEN_LAST << 32 | slot) && last > 0,
	   "its last id is positive (%#llx)", (unsigned long long)last);
	CHECK(evq_bcast_unsubscribe(&b, last) == 0);

	/* retired: 1,000 subscriptions later none has the slot, the old ids
	 * are all refused */
	enum { N = 1000 };
	static int64_t ids[N];
	int reused = 0, good = 1;
	for (int i = 0; i < N; i++) {
		ids[i] = evq_bcast_subscribe(&b, &r, 0x1);
		good &= ids[i] >= 0;
		reused += good && (uint32_t)ids[i] == slot;
	}
	ok(good && reused == 0, "the spent slot is never handed out again (%d of %d)", reused, N);
	is(evq_bcast_unsubscribe(&b, last), -ENOENT, "its last id stays refused");
	is(evq_bcast_unsubscribe(&b, a), -ENOENT, "and the one before");
	int freed = 1;
	for (int i = 0; i < N; i++)
		freed &= evq_bcast_unsubscribe(&b, ids[i]) == 0;
	ok(freed, "the others unsubscribe");
	evq_bcast_destroy(&b);
	return done();
}
