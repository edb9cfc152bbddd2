/* SPDX-License-Identifier: MIT */
/*
 * init.c - the io_uring backend's init, fini and fd_ctl, the probes that
 * decide whether it runs, and its struct evq__backend (uring.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/prctl.h>

#include "config.h"
#include "backend/epoll_mask.h"

#include "backend/uring/uring.h"

static int debug_on(void)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	return cfg.debug;
}

/* EVQ_URING_REFUSE (test builds only, config.c) asks for this refusal. */
static int refuse_forced(enum evq__refuse what)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	return cfg.uring_refuse == (int)what;
}

/* Why io_uring_setup failed, for the debug line. */
static const char *setup_reason(int rc)
{
	char buf[8] = "";
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		fclose(f);
	}
	if (rc == -ENOSYS)
		return "io_uring_setup: ENOSYS (kernel without io_uring, or seccomp)";
	if (rc == -EPERM && buf[0] == '2')
		return "io_uring_setup: EPERM (/proc/sys/kernel/io_uring_disabled = 2)";
	if (rc == -EPERM && buf[0] == '1')
		return "io_uring_setup: EPERM (/proc/sys/kernel/io_uring_disabled = 1, "
		       "not in io_uring_group)";
	if (rc == -EPERM)
		return "io_uring_setup: EPERM (seccomp or LSM policy)";
	return "io_uring_setup failed";
}

static int refuse(const char *why, int rc)
{
	if (debug_on())
		fprintf(stderr, "evq: uring refused: %s (%d); AUTO falls back to epoll\n",
			why, rc);
	return rc;
}

/* 1 if the kernel supports every op this backend submits. */
static int probe_queue_ops(int ringfd)
{
	static const unsigned need[] = { IORING_OP_EPOLL_WAIT, IORING_OP_ASYNC_CANCEL,
					 IORING_OP_FUTEX_WAIT };
	return evq__ring_probe(ringfd, need, sizeof need / sizeof need[0]) && !refuse_forced(EVQ__REFUSE_OP);
}

/* Kernel 6.17 gave each multi-threaded process its own futex hash table,
 * allocated when the process creates its first thread.  A FUTEX_WAIT that
 * io_uring queued before that stays in the global table, where no
 * FUTEX_WAKE_PRIVATE looks any more: the wait is lost (seen on 6.18: a
 * latch added by a single-threaded program that then starts the thread
 * which sets it is never woken).  Sleeping syscall waiters cannot hit
 * this (a process cannot create a thread while its only thread sleeps);
 * io_uring's asynchronous waits can.  So before the first native word
 * wait, make sure the private table exists: starting (and joining) one
 * thread allocates it, sized by the kernel's own rules as any program's
 * first thread would.  slots < 0: a kernel before 6.17 (one global table,
 * no transition); slots == 0 after a thread ran: the program pinned the
 * global table (PR_FUTEX_HASH_SET_SLOTS 0), which also has no transition. */
#ifdef PR_FUTEX_HASH
EVQ__ABI(PR_FUTEX_HASH, 78);
#else
#define PR_FUTEX_HASH 78
#endif
#ifdef PR_FUTEX_HASH_GET_SLOTS
EVQ__ABI(PR_FUTEX_HASH_GET_SLOTS, 2);
#else
#define PR_FUTEX_HASH_GET_SLOTS 2
#endif

static void *no_work(void *arg) { return arg; }

static int futex_hash_settle(void)
{
	static _Atomic pid_t settled; /* the process that did it (fork: again) */
	pid_t me = getpid();
	if (atomic_load(&settled) == me)
		return 0;
	int saved = errno;
	if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0) == 0) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, no_work, NULL);
		if (rc != 0) {
			errno = saved;
			return -rc;
		}
		pthread_join(t, NULL);
	}
	errno = saved;
	atomic_store(&settled, me);
	return 0;
}

/* The inline sleep (inline.c) needs futex_waitv (Linux 5.16): an
 * empty vector is -EINVAL where it exists.  EVQ_URING_INLINE=0 (test
 * builds only, config.c) turns it off, to measure or test the ring's own
 * word waits. */
static int inline_available(void)
{
	struct evq__config cfg;
	evq__config_read(&cfg);
	if (!cfg.uring_inline)
		return 0;
	return evq__futex_waitv(NULL, 0, NULL) == -EINVAL;
}

static void ur_fini(struct evq *q);

static int ur_init(struct evq *q, int max_batch)
{
	if (!EVQ_URING_ENABLED)
		return refuse("not enabled in this build (EVQ_URING_ENABLED=0)", -ENOSYS);
	if (refuse_forced(EVQ__REFUSE_SETUP))
		return refuse("io_uring_setup: ENOSYS (forced by EVQ_URING_REFUSE)", -ENOSYS);
	if (refuse_forced(EVQ__REFUSE_DISABLED))
		return refuse("io_uring_setup: EPERM (io_uring_disabled, forced by "
			      "EVQ_URING_REFUSE)", -EPERM);
	if (EVQ_URING_NATIVE_WORDS) {
		int rc = futex_hash_settle();
		if (rc < 0)
			return refuse("could not start a thread to settle the futex hash", rc);
	}
	if (max_batch < 1 || max_batch > EVQ_BATCH_MAX)
		max_batch = EVQ_BATCH_MAX;
	struct uring_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->bufsize = max_batch;
	s->r.fd = s->epfd = -1;
	s->owner = getpid();
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->inl_cv, NULL);
	q->be = s;
	s->inline_ok = inline_available();

	struct evq__config cfg;
	evq__config_read(&cfg);
	s->fault = cfg.uring_fault; /* EVQ_URING_FAULT, test builds only */
	unsigned entries = ENTRIES_DEFAULT;
	if (cfg.uring_entries > 0) /* EVQ_URING_ENTRIES, test builds only */
		entries = cfg.uring_entries;

	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CLAMP;
	int rc = evq__ring_setup(entries, &p);
	if (rc < 0) {
		ur_fini(q);
		return refuse(setup_reason(rc), rc);
	}
	s->r.fd = rc;
	const unsigned feats = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP;
	if ((p.features & feats) != feats || refuse_forced(EVQ__REFUSE_FEAT)) {
		ur_fini(q);
		return refuse("kernel lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP",
			      -ENOSYS);
	}
	if (!probe_queue_ops(s->r.fd)) {
		ur_fini(q);
		return refuse("op IORING_OP_EPOLL_WAIT (59) missing (probe)", -ENOSYS);
	}
	rc = evq__ring_map(&s->r, &p);
	if (rc < 0) {
		ur_fini(q);
		return refuse("mmap of the rings failed", rc);
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		rc = -errno;
		ur_fini(q);
		return rc;
	}
	if (debug_on())
		fprintf(stderr, "evq: uring ready: ring fd %d, sq %u, cq %u entries, "
			"features %#x, inline futex sleep %s\n", s->r.fd, s->r.sq_entries,
			s->r.cq_entries, p.features, s->inline_ok ? "on" : "off");
	return 0;
}

/* Cancels the EPOLL_WAITs in flight and waits (bounded) for their
 * completions, so the kernel never writes into a freed buffer.  Returns 1
 * when none is left. */
static int drain_inflight(struct uring_state *s)
{
	s->fault = 0;
	for (int i = 0; i < UR_DRAIN_TRIES && s->inflight > 0; i++) {
		/* again each time: a cancel that raced with a completion or a
		 * full SQ is simply repeated */
		evq__ur_queue_cancels(s);
		struct __kernel_timespec ts = { 0, UR_DRAIN_WAIT_NS };
		struct io_uring_getevents_arg arg = { .ts = (uint64_t)(uintptr_t)&ts };
		evq__ring_enter(s->r.fd, evq__sq_pending(&s->r), 1,
			  IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
		evq__ur_reap(s);
	}
	return s->inflight == 0;
}

static void ur_fini(struct evq *q)
{
	struct uring_state *s = st(q);
	if (!s)
		return;
	if (debug_on() && s->owner == getpid() && s->r.sq_map)
		fprintf(stderr, "evq: uring stats: cq_overflow_flushes=%u submit_errors=%u "
			"leave_cancels=%u\n", s->overflows, s->submit_errors, s->cancels);
	int can_free = 1;
	if (s->r.sq_map && s->r.sq_map != MAP_FAILED && s->owner == getpid())
		can_free = drain_inflight(s);
	else if (s->owner != getpid())
		can_free = 0; /* forked child: the parent's requests use the buffers */
	evq__ring_unmap(&s->r);
	if (s->epfd >= 0)
		close(s->epfd);
	q->be = NULL;
	/* An EPOLL_WAIT that would not complete (seen when the thread that
	 * submitted it has exited) keeps its buffer: the buffers are mmaps, so
	 * leaving them mapped is safe against a late write by the kernel and
	 * costs a few pages, and everything else is freed. */
	if (!can_free && debug_on())
		fprintf(stderr, "evq: uring: %d requests still in flight at fini: their "
			"buffers stay mapped\n", s->inflight);
	for (int i = 0; i < MAX_SLOTS; i++)
		if (s->slot[i].buf && (can_free || !s->slot[i].inflight))
			munmap(s->slot[i].buf, evq__ur_buf_len(s));
	while (s->words) {
		struct uword *w = s->words;
		s->words = w->next_all;
		free(w);
	}
	free(s->wmap);
	if (s->owner == getpid()) {
		pthread_cond_destroy(&s->inl_cv);
		pthread_mutex_destroy(&s->lock);
	}
	free(s);
}

static int ur_fd_ctl(struct evq *q, enum evq__fd_op op, int fd, uint32_t events,
		     uint32_t flags, uint64_t token)
{
	static const int ops[] = { EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL };
	struct uring_state *s = st(q);
	struct epoll_event ev = { .events = evq__epoll_interest(events, flags), .data.u64 = token };
	if (epoll_ctl(s->epfd, ops[op], fd, &ev) < 0)
		return -errno;
	/* LF6: an fd closed without DEL leaves nfds high, which only costs
	 * handovers */
	if (op == EVQ_FD_DEL) {
		atomic_fetch_sub(&s->nfds, 1);
		return 0;
	}
	/* a ring sleeper that saw no fds sleeps without an EPOLL_WAIT: ring
	 * the bell so that it arms one (nfds/sleepers: Dekker, LF6) */
	if (op == EVQ_FD_ADD && atomic_fetch_add(&s->nfds, 1) == 0)
		evq__ur_ring_bell(s);
	if (atomic_load(&s->sleepers) == 0 && atomic_load(&s->nfollow) > 0)
		evq__ur_wake_follower(s);
	return 0;
}

const struct evq__backend evq__backend_uring = {
	.name = "uring",
	.init = ur_init,
	.fini = ur_fini,
	.fd_ctl = ur_fd_ctl,
	.wait = evq__ur_wait,
	.wake = evq__ur_wake,
#if EVQ_URING_NATIVE_WORDS
	.word_arm = evq__ur_word_arm,
	.word_disarm = evq__ur_word_disarm,
#else
	.word_arm = NULL,    /* the watcher thread: see EVQ_URING_NATIVE_WORDS */
	.word_disarm = NULL,
#endif
};
