/* SPDX-License-Identifier: MIT */
/*
 * config.h - the library's environment, read in one place (config.c).
 *
 * User-facing (documented in evq(3) ENVIRONMENT, read in every build):
 *   EVQ_BACKEND      epoll | uring | auto: what EVQ_BACKEND_AUTO means
 *   EVQ_DEBUG        diagnostics on stderr
 *   EVQ_LATCH_BATCH  evq_latch_set_many's wake-ring threshold
 *
 * Test switches (read only when config.c is compiled with -DEVQ_TESTING,
 * as for the libevq.a that tests/ and some benchmarks link; the installed
 * libraries ignore them): EVQ_URING_REFUSE, EVQ_URING_FAULT,
 * EVQ_URING_ENTRIES, EVQ_URING_INLINE.  See config.c.
 */
#ifndef EVQ_CONFIG_H
#define EVQ_CONFIG_H

/* EVQ_URING_REFUSE: the io_uring check to fail as if the kernel had. */
enum evq__refuse {
	EVQ__REFUSE_NONE = 0,
	EVQ__REFUSE_SETUP,    /* "setup": io_uring_setup fails with ENOSYS */
	EVQ__REFUSE_DISABLED, /* "disabled": EPERM, as io_uring_disabled */
	EVQ__REFUSE_FEAT,     /* "feat": a needed IORING_FEAT_* is missing */
	EVQ__REFUSE_OP,       /* "op": a needed opcode is missing */
	EVQ__REFUSE_OTHER,    /* any other non-empty value */
};

struct evq__config {
	int backend;            /* EVQ_BACKEND: an enum evq_backend_id (unset,
	                           empty and "auto": AUTO); -1: unknown name */
	int debug;              /* EVQ_DEBUG: 1 unless unset, empty or "0" */
	int latch_batch;        /* EVQ_LATCH_BATCH: a number >= 0; -1: unset
	                           or not a number (the default) */
	/* Test switches: these defaults unless built with EVQ_TESTING. */
	int uring_refuse;       /* EVQ_URING_REFUSE: an enum evq__refuse */
	int uring_fault;        /* EVQ_URING_FAULT: busy -EBUSY, again -EAGAIN */
	unsigned uring_entries; /* EVQ_URING_ENTRIES: ring size; 0 default */
	int uring_inline;       /* EVQ_URING_INLINE: 0 if "0", else 1 */
};

/* Fills *c from the environment as it is now.  Callers read it once per
 * operation (evq_new, the wake ring's creation, ...), so a variable set
 * with setenv() applies to the queues created after it.  Async-signal-safe
 * in practice: only secure_getenv (which reads environ) and comparisons. */
void evq__config_read(struct evq__config *c);

#endif /* EVQ_CONFIG_H */
