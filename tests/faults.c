/* SPDX-License-Identifier: MIT */
/*
 * faults.c - every allocation, thread start and descriptor creation the
 * library makes fails in turn (issue 11).
 *
 * How: the Makefile links this one program with -Wl,--wrap=malloc,... so
 * that each call libevq.a (and this file) makes to those functions lands in
 * a __wrap_ function below.  It forwards to the real one (__real_: glibc's,
 * a sanitizer's interceptor or valgrind's replacement) unless it is the
 * N-th failable call made by this thread since fi_arm(N): that one fails
 * as the system would - NULL/ENOMEM for malloc, calloc, realloc and mmap,
 * EAGAIN for pthread_create, EMFILE for the descriptor makers (epoll_create1,
 * eventfd, signalfd, timerfd_create, pidfd_open, io_uring_setup) and ENOMEM
 * for epoll_ctl(ADD).  The installed library is untouched.
 *
 * Each scenario walks N = 1, 2, 3...: fresh state (a queue, a socketpair,
 * a word...), arm N, run the operation, disarm.  If the N-th call was
 * reached, the operation must return exactly the injected -errno (or, where
 * the library may absorb the failure, succeed) and leave nothing behind:
 * nlive unchanged, no trace of the kind's own (fd map entry, kernel wait on
 * the word, semaphore/latch waiter count, broadcaster subscription, signal
 * disposition), the queue still works (a user event's round trip), and the same
 * operation retried without faults succeeds and its registration delivers.
 * Then everything is freed and checked for leaks: the library's live heap
 * blocks (counted by the wrappers), mappings and open descriptors must be
 * back where they were (LeakSanitizer checks the heap too in the ASan
 * build).  Freed blocks are poisoned, so a use after free changes results
 * even without ASan.  The walk ends at the first N the operation no longer
 * reaches.
 *
 * Scenarios: evq_new (explicit io_uring and epoll, and $EVQ_BACKEND), every
 * evq_add_*, evq_mod/evq_mod_word/evq_mod_timer where they allocate,
 * evq_wait (io_uring's lazily mapped EPOLL_WAIT buffer, the REALTIME
 * timerfd), evq_latch_set_many's wake ring, and growth past 3,000
 * registrations of mixed kinds (slot chunks, fd map, timer heaps, watcher
 * threads, io_uring's word map) with every add walked the same way and
 * every registration then fired once: each event exactly once.  What a
 * process makes only once (io_uring's futex-table thread, the sigevent
 * token table, the wake ring) is walked with each step in a fresh child.
 *
 * The program ends with how many failure points it exercised: distinct
 * call sites (return addresses into the library, so a function inlined
 * twice counts twice), and (call site, public function) pairs, since the
 * same site reached through another API runs other cleanup code.
 * EVQ_FAULTS_SITES=1 lists them as offsets for
 * addr2line -f -i -e build/tests/faults.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "evqtest.h"
#include "internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

/* ------------------------------------------------------------------ */
/* The wrappers                                                         */
/* ------------------------------------------------------------------ */

enum fi_kind {
	FI_MALLOC, FI_CALLOC, FI_REALLOC, FI_THREAD, FI_MMAP, FI_EPOLL_CREATE,
	FI_EVENTFD, FI_SIGNALFD, FI_TIMERFD, FI_EPOLL_ADD, FI_PIDFD, FI_URING,
	FI_NKINDS
};

static const struct {
	const char *name;
	int err;
} fi_kinds[FI_NKINDS] = {
	[FI_MALLOC] = { "malloc", ENOMEM },
	[FI_CALLOC] = { "calloc", ENOMEM },
	[FI_REALLOC] = { "realloc", ENOMEM },
	[FI_THREAD] = { "pthread_create", EAGAIN },
	[FI_MMAP] = { "mmap", ENOMEM },
	[FI_EPOLL_CREATE] = { "epoll_create1", EMFILE },
	[FI_EVENTFD] = { "eventfd", EMFILE },
	[FI_SIGNALFD] = { "signalfd", EMFILE },
	[FI_TIMERFD] = { "timerfd_create", EMFILE },
	[FI_EPOLL_ADD] = { "epoll_ctl(ADD)", ENOMEM },
	[FI_PIDFD] = { "pidfd_open", EMFILE },
	[FI_URING] = { "io_uring_setup", EMFILE },
};

/* Armed on this thread only: the library allocates in its caller's
 * thread, and its helper threads must not see faults meant for it. */
static _Thread_local int fi_armed;
static _Thread_local long fi_calls, fi_fail_at;
static _Thread_local int fi_hit_kind;
static _Thread_local void *fi_hit_site;

/* Live heap blocks and mappings made through the wrappers (any thread). */
static atomic_long fi_live_mem, fi_live_maps;

/* Failure points: (function, call site), and the public call through
 * which the site was reached (the same site behind another API runs
 * other cleanup code). */
#define MAX_SITES 1024
static struct site {
	void *ret;
	int kind;
	const char *api;
} sites[MAX_SITES];
static int nsites;
static long ninjected, nabsorbed;
static unsigned kinds_hit;

/* 1 if this call must fail (and records where it came from). */
static int fi_fail(int kind, void *ret)
{
	if (!fi_armed || ++fi_calls != fi_fail_at)
		return 0;
	fi_hit_kind = kind;
	fi_hit_site = ret;
	return 1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_epoll_create1(int flags);
int __real_eventfd(unsigned int initval, int flags);
int __real_signalfd(int fd, const sigset_t *mask, int flags);
int __real_timerfd_create(int clockid, int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
long __real_syscall(long nr, ...);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_epoll_create1(int flags);
int __wrap_eventfd(unsigned int initval, int flags);
int __wrap_signalfd(int fd, const sigset_t *mask, int flags);
int __wrap_timerfd_create(int clockid, int flags);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
__attribute__((no_sanitize_address)) long __wrap_syscall(long nr, ...);

#define RET __builtin_return_address(0)

void *__wrap_malloc(size_t n)
{
	if (fi_fail(FI_MALLOC, RET)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __real_malloc(n);
	if (p)
		atomic_fetch_add(&fi_live_mem, 1);
	return p;
}

void *__wrap_calloc(size_t a, size_t b)
{
	if (fi_fail(FI_CALLOC, RET)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __real_calloc(a, b);
	if (p)
		atomic_fetch_add(&fi_live_mem, 1);
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fi_fail(FI_REALLOC, RET)) {
		errno = ENOMEM;
		return NULL;
	}
	void *np = __real_realloc(p, n);
	if (np && !p)
		atomic_fetch_add(&fi_live_mem, 1);
	return np;
}

void __wrap_free(void *p)
{
	if (!p)
		return;
	atomic_fetch_sub(&fi_live_mem, 1);
	/* poisoned: a read after free sees garbage, not the old values */
	memset(p, 0xa5, malloc_usable_size(p));
	__real_free(p);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg)
{
	if (fi_fail(FI_THREAD, RET))
		return EAGAIN;
	return __real_pthread_create(t, a, fn, arg);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fi_fail(FI_MMAP, RET)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	void *p = __real_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		atomic_fetch_add(&fi_live_maps, 1);
	return p;
}

int __wrap_munmap(void *addr, size_t len)
{
	int rc = __real_munmap(addr, len);
	if (rc == 0)
		atomic_fetch_sub(&fi_live_maps, 1);
	return rc;
}

#define FAIL_FD(kind)                                                        \
	do {                                                                 \
		if (fi_fail(kind, RET)) {                                    \
			errno = fi_kinds[kind].err;                          \
			return -1;                                           \
		}                                                            \
	} while (0)

int __wrap_epoll_create1(int flags)
{
	FAIL_FD(FI_EPOLL_CREATE);
	return __real_epoll_create1(flags);
}

int __wrap_eventfd(unsigned int initval, int flags)
{
	FAIL_FD(FI_EVENTFD);
	return __real_eventfd(initval, flags);
}

int __wrap_signalfd(int fd, const sigset_t *mask, int flags)
{
	FAIL_FD(FI_SIGNALFD);
	return __real_signalfd(fd, mask, flags);
}

int __wrap_timerfd_create(int clockid, int flags)
{
	FAIL_FD(FI_TIMERFD);
	return __real_timerfd_create(clockid, flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	/* ADD allocates in the kernel (ENOMEM, or ENOSPC past
	 * max_user_watches); MOD and DEL do not */
	if (op == EPOLL_CTL_ADD)
		FAIL_FD(FI_EPOLL_ADD);
	return __real_epoll_ctl(epfd, op, fd, ev);
}

/* syscall(2) reads six arguments whatever the call; so does this, and
 * the ones the caller did not pass are beyond its stack frame: not for
 * AddressSanitizer's eyes (glibc's syscall is assembly, unchecked). */
__attribute__((no_sanitize_address)) long __wrap_syscall(long nr, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_pidfd_open)
		FAIL_FD(FI_PIDFD);
	else if (nr == SYS_io_uring_setup)
		FAIL_FD(FI_URING);
	return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static void fi_arm(long n)
{
	fi_calls = 0;
	fi_fail_at = n;
	fi_hit_kind = -1;
	fi_armed = 1;
}

/* Disarms; returns the kind of the failure injected (its call site in
 * fi_hit_site), -1 if none. */
static int fi_disarm(void)
{
	fi_armed = 0;
	return fi_hit_kind;
}

/* api: the public function, up to '(' of a scenario name */
static void record_site(int kind, void *ret, const char *api)
{
	size_t len = strcspn(api, "(");
	ninjected++;
	kinds_hit |= 1u << kind;
	for (int i = 0; i < nsites; i++)
		if (sites[i].ret == ret && sites[i].kind == kind &&
		    strlen(sites[i].api) == len && strncmp(sites[i].api, api, len) == 0)
			return;
	if (nsites < MAX_SITES)
		sites[nsites++] = (struct site){ ret, kind, api };
}

/* Distinct call sites, whatever the API. */
static int distinct_sites(int kind)
{
	int n = 0;
	for (int i = 0; i < nsites; i++) {
		int first = 1;
		for (int j = 0; j < i && first; j++)
			first = sites[j].ret != sites[i].ret || sites[j].kind != sites[i].kind;
		n += first && (kind < 0 || sites[i].kind == kind);
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Leaks                                                                */
/* ------------------------------------------------------------------ */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	CHECK(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

struct mark {
	long mem, maps;
	int fds;
};

static struct mark mark_now(void)
{
	return (struct mark){ atomic_load(&fi_live_mem), atomic_load(&fi_live_maps),
			      count_fds() };
}

/* What the process keeps for good the first time it does something (the
 * sigevent token table, the wake ring): allowed up to the given counts. */
static long kept_mem, kept_maps, kept_fds;

static int leaks_ok(const struct mark *m, const char *what, int keep_mem, int keep_maps,
		    int keep_fds)
{
	struct mark n = mark_now();
	long dm = n.mem - m->mem, dp = n.maps - m->maps, df = n.fds - m->fds;
	if (dm > 0 && dm <= keep_mem - kept_mem)
		kept_mem += dm, dm = 0;
	if (dp > 0 && dp <= keep_maps - kept_maps)
		kept_maps += dp, dp = 0;
	if (df > 0 && df <= keep_fds - kept_fds)
		kept_fds += df, df = 0;
	if (dm == 0 && dp == 0 && df == 0)
		return 1;
	diag("%s: leaked %ld heap blocks, %ld mappings, %ld descriptors", what, dm, dp, df);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                            */
/* ------------------------------------------------------------------ */

#define NEV 16

struct ctx {
	struct evq *q;
	struct evq_options opt;
	const struct evq_options *optp;
	int sv[2];
	int64_t id;      /* a registration made by setup */
	int64_t other;   /* another one (a user event, a timer...) */
	uint32_t word;
	struct evq_sem sem;
	struct evq_latch latch;
	struct evq_latch latches[8];
	struct evq_latch *lp[8];
	struct evq_bcast bcast;
	struct sigevent sev;
	pid_t child;
	int child_pipe;  /* its write end: closing it lets the child exit */
	struct sigaction sa0;
	uint32_t nlive0;
	int op_fault;    /* the failure a thread the op started saw, -1 none */
	const char *skip; /* setup found the feature missing: why */
};

struct scen {
	const char *name;
	void (*setup)(struct ctx *c);
	int64_t (*op)(struct ctx *c); /* an id, a count or -errno */
	/* after a failed op: 1 if nothing of it is left (diag otherwise) */
	int (*clean)(struct ctx *c, int64_t rc);
	/* after a successful op (rc its result): 1 if it works */
	int (*works)(struct ctx *c, int64_t rc);
	void (*teardown)(struct ctx *c);
	int absorb;      /* the op must succeed even when a call fails */
	int keep_mem, keep_maps, keep_fds; /* process-lifetime state it may make */
	int extra_regs;  /* registrations a failed op may leave (hidden ones) */
	int in_child;    /* each step in a child process */
};

static struct evq *newq(const struct evq_options *o)
{
	struct evq *q = NULL;
	int rc = evq_new(&q, o);
	if (rc < 0) {
		printf("Bail out! evq_new: %d (%s)\n", rc, strerror(-rc));
		exit(1);
	}
	return q;
}

static void setup_q(struct ctx *c)
{
	c->q = newq(NULL);
}

static void teardown_q(struct ctx *c)
{
	evq_free(c->q);
	c->q = NULL;
}

/* evqt_wait, again after -EINTR.  No signal reaches this program's
 * waits: an -EINTR is the kernel's TIF_NOTIFY_SIGNAL (task work of an
 * io_uring queue freed earlier in this thread ends an epoll_wait), which
 * evq_wait passes on as if a handler had run.  Counted, and reported. */
static long spurious_eintr;

static int wait_ev(struct evq *q, struct evq_event *ev, int max, int64_t timeout_ns)
{
	int n;
	while ((n = evqt_wait(q, ev, max, timeout_ns)) == -EINTR)
		spurious_eintr++;
	return n;
}

/* One event, of registration id, within EVQT_SOON; *ev gets it. */
static int wait_one(struct evq *q, int64_t id, struct evq_event *ev)
{
	struct evq_event evs[NEV];
	int n = wait_ev(q, evs, NEV, EVQT_SOON);
	if (n != 1 || evs[0].id != id) {
		diag("  expected one event of id %" PRId64 ", got %d (first id %" PRId64 " kind %d)", id,
		     n, n > 0 ? evs[0].id : -1, n > 0 ? evs[0].kind : -1);
		return 0;
	}
	*ev = evs[0];
	return 1;
}

/* evqt_roundtrip, but other events may be ready too (a readable fd). */
static int roundtrip(struct evq *q)
{
	struct evq_event ev[NEV];
	int64_t id = evq_add_user(q, 0xfeedull), seen = 0;
	if (id < 0 || evq_trigger(q, id) != 0)
		return 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (!seen && evqt_now(CLOCK_MONOTONIC) < end) {
		int n = wait_ev(q, ev, NEV, EVQT_SOON);
		for (int i = 0; i < n; i++)
			seen += ev[i].id == id && ev[i].data == 1;
	}
	return evq_del(q, id) == 0 && seen == 1;
}

static int nlive(struct ctx *c)
{
	return (int)c->q->nlive;
}

/* ---- evq_new ---- */

static void setup_new(struct ctx *c)
{
	c->q = NULL;
}

static int64_t op_new(struct ctx *c)
{
	return evq_new(&c->q, c->optp);
}

static int clean_new(struct ctx *c, int64_t rc)
{
	(void)rc;
	return c->q == NULL;
}

static int works_new(struct ctx *c, int64_t rc)
{
	(void)rc;
	if (!c->q || !roundtrip(c->q))
		return 0;
	const char *want = c->opt.backend == EVQ_BACKEND_URING ? "uring"
			 : c->opt.backend == EVQ_BACKEND_EPOLL ? "epoll" : NULL;
	return !want || strcmp(evq_backend_name(c->q), want) == 0;
}

/* ---- evq_add_fd ---- */

static void setup_fd(struct ctx *c)
{
	setup_q(c);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) == 0);
}

static void teardown_fd(struct ctx *c)
{
	teardown_q(c);
	close(c->sv[0]);
	close(c->sv[1]);
}

static int64_t op_add_fd(struct ctx *c)
{
	return evq_add_fd(c->q, c->sv[0], EVQ_READ, 0, 101);
}

static int clean_fd(struct ctx *c, int64_t rc)
{
	(void)rc;
	int fd = c->sv[0];
	return (uint32_t)fd >= c->q->fdmap_len || c->q->fdmap[fd] == -1;
}

static int works_fd(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	CHECK(write(c->sv[1], "x", 1) == 1);
	int good = wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_FD &&
		   (ev.events & EVQ_READ) && ev.cookie == 101;
	char b;
	CHECK(read(c->sv[0], &b, 1) == 1);
	return good;
}

/* ---- evq_add_timer ---- */

static int64_t op_add_timer(struct ctx *c)
{
	return evq_add_timer(c->q, CLOCK_MONOTONIC, 0, 0, 0, 102);
}

static int clean_timer(struct ctx *c, int64_t rc)
{
	(void)rc;
	return c->q->ntimers == 0 && c->q->heap[0].n == 0;
}

static int works_timer(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	return wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_TIMER && ev.data == 1;
}

/* ---- evq_add_user ---- */

static int64_t op_add_user(struct ctx *c)
{
	return evq_add_user(c->q, 103);
}

static int clean_none(struct ctx *c, int64_t rc)
{
	(void)c, (void)rc;
	return 1;
}

static int works_user(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	return evq_trigger(c->q, id) == 0 && wait_one(c->q, id, &ev) &&
	       ev.kind == EVQ_KIND_USER && ev.data == 1;
}

/* ---- evq_add_signal ---- */

static void setup_signal(struct ctx *c)
{
	setup_q(c);
	CHECK(sigaction(SIGUSR1, NULL, &c->sa0) == 0);
}

static int64_t op_add_signal(struct ctx *c)
{
	return evq_add_signal(c->q, SIGUSR1, 104);
}

static int clean_signal(struct ctx *c, int64_t rc)
{
	struct sigaction sa;
	sigset_t now;
	(void)rc;
	CHECK(sigaction(SIGUSR1, NULL, &sa) == 0);
	CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0);
	if (sa.sa_handler != c->sa0.sa_handler || sa.sa_flags != c->sa0.sa_flags) {
		diag("  SIGUSR1's disposition was not restored");
		return 0;
	}
	if (!sigismember(&now, SIGUSR1)) {
		diag("  SIGUSR1 unblocked (main blocked it)");
		return 0;
	}
	return 1;
}

static int works_signal(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	CHECK(kill(getpid(), SIGUSR1) == 0);
	return wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_SIGNAL &&
	       ev.ident == SIGUSR1 && (ev.data & 0xffffffffu) == 1;
}

/* ---- evq_add_pid ---- */

static int have_pidfd(void)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static void setup_pid(struct ctx *c)
{
	int p[2];
	setup_q(c);
	if (!have_pidfd()) {
		c->skip = "no pidfd_open (kernel < 5.3, or valgrind)";
		return;
	}
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	c->child = fork();
	CHECK(c->child >= 0);
	if (c->child == 0) {
		char b;
		close(p[1]);
		ssize_t r = read(p[0], &b, 1); /* until the parent closes it */
		_exit(r == 0 ? 7 : 1);
	}
	close(p[0]);
	c->child_pipe = p[1];
}

static void teardown_pid(struct ctx *c)
{
	teardown_q(c);
	if (c->skip)
		return;
	if (c->child_pipe >= 0)
		close(c->child_pipe);
	c->child_pipe = -1;
	if (c->child > 0)
		waitpid(c->child, NULL, 0);
	c->child = 0;
}

static int64_t op_add_pid(struct ctx *c)
{
	return evq_add_pid(c->q, c->child, 0, 105);
}

static int works_pid(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	close(c->child_pipe);
	c->child_pipe = -1;
	int good = wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_PID &&
		   WIFEXITED((int)ev.data) && WEXITSTATUS((int)ev.data) == 7;
	if (good)
		c->child = 0; /* reaped by the queue */
	return good;
}

/* ---- evq_add_word ---- */

/* Words need futex_waitv on epoll (the watcher thread); semaphores need it
 * on every backend. */
static void setup_word(struct ctx *c)
{
	setup_q(c);
	c->word = 0;
	if (!evqt_have_futex_waitv() && !c->q->backend->word_arm)
		c->skip = EVQT_NO_WAITV;
}

static int64_t op_add_word(struct ctx *c)
{
	return evq_add_word(c->q, &c->word, 0, 0, 106);
}

/* Nothing sleeps on the word: no watcher thread, no ring request. */
static int clean_word(struct ctx *c, int64_t rc)
{
	(void)rc;
	int n = evq_wake(&c->word, INT_MAX, 0);
	if (n != 0)
		diag("  %d waiter(s) left on the word", n);
	return n == 0;
}

static int works_word(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	__atomic_add_fetch(&c->word, 1, __ATOMIC_SEQ_CST);
	evq_wake(&c->word, 1, 0);
	return wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_WORD &&
	       ev.data == __atomic_load_n(&c->word, __ATOMIC_SEQ_CST);
}

/* ---- evq_add_sem ---- */

static void setup_sem(struct ctx *c)
{
	setup_word(c);
	if (!evqt_have_futex_waitv())
		c->skip = EVQT_NO_WAITV;
	CHECK(evq_sem_init(&c->sem, 0, 0) == 0);
}

static int64_t op_add_sem(struct ctx *c)
{
	return evq_add_sem(c->q, &c->sem, 0, 107);
}

static int clean_sem(struct ctx *c, int64_t rc)
{
	(void)rc;
	if (c->sem.waiters != 0 || c->sem.count != 0) {
		diag("  semaphore left with waiters %u, count %u", c->sem.waiters,
		     c->sem.count);
		return 0;
	}
	return 1;
}

static int works_sem(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	CHECK(evq_sem_post(&c->sem, 1) == 0);
	return wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_SEM &&
	       evq_sem_value(&c->sem) == 0;
}

/* ---- evq_add_latch ---- */

static void setup_latch(struct ctx *c)
{
	setup_word(c);
	CHECK(evq_latch_init(&c->latch, 0) == 0);
}

static int64_t op_add_latch(struct ctx *c)
{
	return evq_add_latch(c->q, &c->latch, 0, 108);
}

static int clean_latch(struct ctx *c, int64_t rc)
{
	(void)rc;
	if (c->latch.waiters != 0) {
		diag("  latch left with %u waiter(s)", c->latch.waiters);
		return 0;
	}
	return evq_wake(&c->latch.state, INT_MAX, 0) == 0;
}

static int works_latch(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	CHECK(evq_latch_set(&c->latch) == 0);
	int good = wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_LATCH;
	evq_latch_reset(&c->latch);
	return good;
}

/* ---- evq_add_mask ---- */

static void setup_mask(struct ctx *c)
{
	setup_q(c);
	CHECK(evq_bcast_init(&c->bcast) == 0);
}

static void teardown_mask(struct ctx *c)
{
	teardown_q(c);
	evq_bcast_destroy(&c->bcast);
}

static int64_t op_add_mask(struct ctx *c)
{
	return evq_add_mask(c->q, &c->bcast, 0xff, 109);
}

static int clean_mask(struct ctx *c, int64_t rc)
{
	(void)rc;
	if (c->bcast.count != 0) {
		diag("  broadcaster left with %u subscription(s)", c->bcast.count);
		return 0;
	}
	return 1;
}

static int works_mask(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	CHECK(evq_bcast_notify(&c->bcast, 0x5) == 0);
	return wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_MASK && ev.data == 0x5;
}

/* ---- evq_sigevent ---- */

static void setup_sigevent(struct ctx *c)
{
	setup_q(c);
	if (getenv("EVQ_TEST_VALGRIND"))
		c->skip = "under valgrind: valgrind reserves SIGRTMAX, which evq_sigevent uses";
}

static int64_t op_sigevent(struct ctx *c)
{
	return evq_sigevent(c->q, 110, &c->sev);
}

static int works_sigevent(struct ctx *c, int64_t id)
{
	struct evq_event ev;
	timer_t t;
	struct itimerspec its = { { 0, 0 }, { 0, 1000000 } };
	CHECK(timer_create(CLOCK_MONOTONIC, &c->sev, &t) == 0);
	CHECK(timer_settime(t, 0, &its, NULL) == 0);
	int good = wait_one(c->q, id, &ev) && ev.kind == EVQ_KIND_SIGEVENT &&
		   ev.cookie == 110 && ev.data == 1;
	timer_delete(t);
	return good;
}

/* ---- evq_mod (enable) / evq_mod_word of a word registered disabled ---- */

static void setup_word_disabled(struct ctx *c)
{
	setup_word(c);
	if (c->skip)
		return;
	c->id = evq_add_word(c->q, &c->word, 0, EVQ_DISABLED, 111);
	CHECK(c->id >= 0);
}

static int64_t op_mod_enable(struct ctx *c)
{
	return evq_mod(c->q, c->id, 0, 0);
}

/* Expecting the value the word holds: no event until it changes. */
static int64_t op_mod_word(struct ctx *c)
{
	return evq_mod_word(c->q, c->id, __atomic_load_n(&c->word, __ATOMIC_SEQ_CST), 0);
}

static int clean_still_disabled(struct ctx *c, int64_t rc)
{
	(void)rc;
	struct evq__reg *r = evq__reg_get(c->q, c->id);
	if (!r || !(r->flags & EVQ_DISABLED)) {
		diag("  the failed call enabled the registration");
		return 0;
	}
	return clean_word(c, rc);
}

static int works_mod_word(struct ctx *c, int64_t rc)
{
	(void)rc;
	return works_word(c, c->id);
}

/* ---- evq_mod of a latch: disabled, then enabled (io_uring: a new record) ---- */

static void setup_latch_disabled(struct ctx *c)
{
	setup_latch(c);
	if (c->skip)
		return;
	c->id = evq_add_latch(c->q, &c->latch, 0, 112);
	CHECK(c->id >= 0);
	CHECK(evq_mod(c->q, c->id, 0, EVQ_DISABLED) == 0);
}

static int clean_latch_disabled(struct ctx *c, int64_t rc)
{
	struct evq__reg *r = evq__reg_get(c->q, c->id);
	if (!r || !(r->flags & EVQ_DISABLED)) {
		diag("  the failed call enabled the registration");
		return 0;
	}
	return clean_latch(c, rc);
}

static int works_mod_latch(struct ctx *c, int64_t rc)
{
	(void)rc;
	return works_latch(c, c->id);
}

/* ---- evq_mod_word of an armed word whose wait is in flight ---- */

/* An fd keeps io_uring's waits in the ring (no inline sleep), and a wait
 * that times out leaves the word's FUTEX_WAIT in flight there. */
static void setup_word_armed(struct ctx *c)
{
	struct evq_event ev[NEV];
	setup_word(c);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) == 0);
	if (c->skip)
		return;
	CHECK(evq_add_fd(c->q, c->sv[0], EVQ_READ, 0, 113) >= 0);
	c->id = evq_add_word(c->q, &c->word, 0, 0, 114);
	CHECK(c->id >= 0);
	CHECK(wait_ev(c->q, ev, NEV, EVQT_MS) == 0);
}

/* Still armed after a failed re-arm: a change is reported. */
static int clean_word_armed(struct ctx *c, int64_t rc)
{
	(void)rc;
	return works_word(c, c->id);
}

/* ---- evq_mod_timer of a fired timer into a full heap ---- */

/* Timer id fired while disabled (one expiration parked), then 64 timers
 * fill the heap: re-arming id must grow it. */
static void setup_timer_full(struct ctx *c)
{
	struct evq_event ev[NEV];
	setup_q(c);
	c->id = evq_add_timer(c->q, CLOCK_MONOTONIC, 0, 0, EVQ_DISABLED, 115);
	CHECK(c->id >= 0);
	CHECK(wait_ev(c->q, ev, NEV, 0) == 0);
	while (c->q->heap[0].n < c->q->heap[0].cap)
		CHECK(evq_add_timer(c->q, CLOCK_MONOTONIC, 3600 * EVQT_SEC, 0, 0, 0) >= 0);
}

static int64_t op_mod_timer(struct ctx *c)
{
	return evq_mod_timer(c->q, c->id, 0, 0, 0);
}

/* As before: disabled, its parked expiration delivered once enabled. */
static int clean_timer_full(struct ctx *c, int64_t rc)
{
	struct evq_event ev;
	struct evq__reg *r = evq__reg_get(c->q, c->id);
	(void)rc;
	if (!r || !(r->flags & EVQ_DISABLED) || r->pend_data != 1) {
		diag("  the failed call changed the timer (flags %#x, parked %llu)",
		     r ? r->flags : 0, r ? (unsigned long long)r->pend_data : 0ull);
		return 0;
	}
	return evq_mod(c->q, c->id, 0, 0) == 0 && wait_one(c->q, c->id, &ev) &&
	       ev.data == 1 && evq_mod(c->q, c->id, 0, EVQ_DISABLED) == 0;
}

static int works_mod_timer(struct ctx *c, int64_t rc)
{
	(void)rc;
	return works_timer(c, c->id);
}

/* ---- evq_wait: io_uring maps an EPOLL_WAIT buffer on the first wait ---- */

static void setup_wait_fd(struct ctx *c)
{
	setup_fd(c);
	c->id = evq_add_fd(c->q, c->sv[0], EVQ_READ, 0, 116);
	CHECK(c->id >= 0);
	CHECK(write(c->sv[1], "x", 1) == 1);
}

static struct evq_event op_events[NEV];

static int64_t op_wait(struct ctx *c)
{
	return wait_ev(c->q, op_events, NEV, EVQT_SOON);
}

/* The ready fd came out (level-triggered: again on a retry). */
static int works_wait_fd(struct ctx *c, int64_t n)
{
	if (n != 1 || op_events[0].id != c->id) {
		diag("  the readable fd was not reported: %d event(s)", (int)n);
		return 0;
	}
	return 1;
}

/* ---- evq_wait: the REALTIME timerfd (created on a waiter's timer round) ---- */

static void setup_wait_rt(struct ctx *c)
{
	setup_q(c);
	c->id = evq_add_timer(c->q, CLOCK_REALTIME, 3600 * EVQT_SEC, 0, 0, 117);
	c->other = evq_add_user(c->q, 118);
	CHECK(c->id >= 0 && c->other >= 0);
	CHECK(evq_trigger(c->q, c->other) == 0);
}

/* The user event came; the REALTIME timer still fires on time. */
static int works_wait_rt(struct ctx *c, int64_t n)
{
	struct evq_event ev;
	if (n != 1 || op_events[0].id != c->other) {
		diag("  the triggered event was not reported: %d event(s)", (int)n);
		return 0;
	}
	if (evq_mod_timer(c->q, c->id, 2 * EVQT_MS, 0, 0) != 0 ||
	    !wait_one(c->q, c->id, &ev) || ev.data != 1)
		return 0;
	CHECK(evq_trigger(c->q, c->other) == 0); /* for the retry */
	return 1;
}

/* ---- evq_wait + evq_requeue in a new thread: its first delivery ---- */

/* A thread's first evq_wait that returns events allocates the records
 * evq_requeue checks (kept until the thread exits): the op runs in a new
 * thread, armed with this step's N. */
struct thread_op {
	struct evq *q;
	long n;
	int rc, requeue, kind;
	void *site;
	struct evq_event ev[NEV];
};

static void *thread_wait(void *arg)
{
	struct thread_op *t = arg;
	fi_arm(t->n);
	t->rc = wait_ev(t->q, t->ev, NEV, EVQT_SOON);
	t->kind = fi_disarm();
	t->site = fi_hit_site;
	t->requeue = t->rc == 1 ? evq_requeue(t->q, &t->ev[0]) : 1;
	return NULL;
}

static void setup_requeue(struct ctx *c)
{
	setup_q(c);
	c->id = evq_add_user(c->q, 119);
	CHECK(c->id >= 0 && evq_trigger(c->q, c->id) == 0);
}

static int64_t op_wait_requeue(struct ctx *c)
{
	struct thread_op t = { .q = c->q, .n = fi_fail_at };
	pthread_t th;
	fi_armed = 0; /* this thread's calls are not the op's */
	CHECK(pthread_create(&th, NULL, thread_wait, &t) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	fi_hit_kind = t.kind; /* what fi_disarm() reports */
	fi_hit_site = t.site;
	c->other = t.requeue;
	c->op_fault = t.kind;
	return t.rc == 1 && t.ev[0].id == c->id ? 1 : t.rc < 0 ? t.rc : -1000;
}

/* The event came out.  Its requeue worked, or, if the records could not
 * be allocated, failed with -ENOMEM (never -EINVAL: it was a record the
 * thread took); given back, it comes out again. */
static int works_requeue(struct ctx *c, int64_t rc)
{
	struct evq_event ev;
	int want = c->op_fault >= 0 ? -ENOMEM : 0;
	if (rc != 1 || c->other != want) {
		diag("  wait %d, requeue %d (want %d)", (int)rc, (int)c->other, want);
		return 0;
	}
	if (c->other == 0 && !wait_one(c->q, c->id, &ev))
		return 0;
	CHECK(evq_trigger(c->q, c->id) == 0); /* for a retry */
	return 1;
}

/* ---- evq_latch_set_many: the process's wake ring, created on first use ---- */

static void setup_set_many(struct ctx *c)
{
	setup_word(c);
	if (c->skip)
		return;
	for (int i = 0; i < 8; i++) {
		CHECK(evq_latch_init(&c->latches[i], 0) == 0);
		c->lp[i] = &c->latches[i];
		CHECK(evq_add_latch(c->q, &c->latches[i], 0, 200 + (uint64_t)i) >= 0);
	}
}

static int64_t op_set_many(struct ctx *c)
{
	return evq_latch_set_many(c->lp, 8);
}

static int works_set_many(struct ctx *c, int64_t rc)
{
	struct evq_event ev[NEV];
	unsigned seen = 0;
	(void)rc;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (seen != 0xff && evqt_now(CLOCK_MONOTONIC) < end) {
		int n = wait_ev(c->q, ev, NEV, EVQT_SOON);
		for (int i = 0; i < n; i++)
			if (ev[i].kind == EVQ_KIND_LATCH && ev[i].cookie >= 200 &&
			    ev[i].cookie < 208)
				seen |= 1u << (ev[i].cookie - 200);
	}
	for (int i = 0; i < 8; i++)
		evq_latch_reset(&c->latches[i]);
	if (seen != 0xff)
		diag("  latch events seen: %#x of 0xff", seen);
	return seen == 0xff;
}

/* ------------------------------------------------------------------ */
/* The walk                                                             */
/* ------------------------------------------------------------------ */

#define MAX_N 64

/* What one step of a walk found (sent through a pipe from a child). */
struct step {         /* no padding: it goes through a pipe whole */
	void *site;
	const char *skip; /* the feature is missing: why */
	int64_t rc;       /* the operation's result */
	int kind;         /* the failure injected, -1 none */
	int good;         /* every check passed */
	int absorbed;
	int spare;        /* (no padding) */
};

/* Step n of s: fresh state, the operation with its n-th failable call
 * failing, then the checks (the header says which). */
static struct step run_step(const struct scen *s, const struct evq_options *opt, long n)
{
	struct step r = { .site = NULL, .kind = -1, .good = 1 };
	struct ctx c;
	memset(&c, 0, sizeof c);
	c.child_pipe = -1;
	if (opt) {
		c.opt = *opt;
		c.optp = &c.opt;
	}
	struct mark m = mark_now();
	s->setup(&c);
	if (c.skip) {
		s->teardown(&c);
		r.skip = c.skip;
		return r;
	}
	c.nlive0 = c.q ? c.q->nlive : 0;
	fi_arm(n);
	r.rc = s->op(&c);
	r.kind = fi_disarm();
	r.site = fi_hit_site;
	int k = r.kind;
	if (k < 0) {
		/* the walk went past the operation's last failable call */
		if (r.rc == -ENOSYS || (s->op == op_new && r.rc == -EPERM)) {
			r.skip = s->op == op_new ? "backend not available"
						 : "not supported here (-ENOSYS)";
			s->teardown(&c);
			return r;
		}
		if (r.rc < 0)
			diag("%s: %lld with no fault", s->name, (long long)r.rc);
		r.good = r.rc >= 0 && s->works(&c, r.rc);
	} else if (r.rc >= 0) {
		/* the library absorbed the failure: it must still work */
		r.absorbed = 1;
		if (!s->works(&c, r.rc)) {
			diag("%s: %s #%ld failed, the call returned %lld but does not work",
			     s->name, fi_kinds[k].name, n, (long long)r.rc);
			r.good = 0;
		}
	} else {
		if (s->absorb || r.rc != -fi_kinds[k].err) {
			diag("%s: %s #%ld failed: got %lld (%s), want %s", s->name,
			     fi_kinds[k].name, n, (long long)r.rc, strerror((int)-r.rc),
			     s->absorb ? "success" : strerror(fi_kinds[k].err));
			r.good = 0;
		}
		if (c.q && s->op != op_new) {
			int nl = nlive(&c);
			if (nl < (int)c.nlive0 || nl > (int)c.nlive0 + s->extra_regs) {
				diag("%s: %s #%ld failed: %d registrations, %u before",
				     s->name, fi_kinds[k].name, n, nl, c.nlive0);
				r.good = 0;
			}
		}
		if (!s->clean(&c, r.rc)) {
			diag("%s: %s #%ld failed: something was left half-done",
			     s->name, fi_kinds[k].name, n);
			r.good = 0;
		}
		if (c.q && !roundtrip(c.q)) {
			diag("%s: %s #%ld failed: the queue no longer works",
			     s->name, fi_kinds[k].name, n);
			r.good = 0;
		}
		int64_t rc2 = s->op(&c);
		if (rc2 < 0 || !s->works(&c, rc2)) {
			diag("%s: %s #%ld failed: the retry got %lld or does not work",
			     s->name, fi_kinds[k].name, n, (long long)rc2);
			r.good = 0;
		}
	}
	s->teardown(&c);
	if (!leaks_ok(&m, s->name, s->keep_mem, s->keep_maps, s->keep_fds))
		r.good = 0;
	return r;
}

/* run_step in a child process: for what a process does once (its
 * sigevent token table, its wake ring), each step on a fresh copy. */
static struct step run_step_child(const struct scen *s, const struct evq_options *opt,
				  long n)
{
	struct step r = { .site = NULL, .kind = -1 };
	int p[2], st;
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		r = run_step(s, opt, n);
		fflush(stdout);
		_exit(write(p[1], &r, sizeof r) == sizeof r ? 0 : 1);
	}
	close(p[1]);
	ssize_t got = read(p[0], &r, sizeof r);
	close(p[0]);
	CHECK(waitpid(pid, &st, 0) == pid);
	if (got != sizeof r || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		diag("%s: step %ld: the child died (status %#x)", s->name, n, st);
		r = (struct step){ .site = NULL, .kind = -1, .good = 0 };
	}
	return r;
}

/* Walks N = 1, 2, ... through s; returns how many failures it injected. */
static int walk(const struct scen *s, const struct evq_options *opt)
{
	int injected = 0;
	for (long n = 1; n <= MAX_N; n++) {
		struct step r = s->in_child ? run_step_child(s, opt, n) : run_step(s, opt, n);
		if (r.skip) {
			skip(1, r.skip);
			return 0;
		}
		if (r.kind < 0) {
			ok(r.good, "%s: succeeds with no fault, and works (%d failure(s) walked)",
			   s->name, injected);
			return injected;
		}
		injected++;
		nabsorbed += r.absorbed;
		record_site(r.kind, r.site, s->name);
		ok(r.good, "%s: %s #%ld fails -> %lld%s", s->name, fi_kinds[r.kind].name, n,
		   (long long)r.rc,
		   r.absorbed ? " (absorbed), still works" : ", nothing half-done, retry works");
	}
	ok(0, "%s: still failing after %d calls", s->name, MAX_N);
	return injected;
}

#define SCEN(n, su, o, cl, w, td)                                             \
	.name = n, .setup = su, .op = o, .clean = cl, .works = w, .teardown = td

static const struct scen scen_new = {
	SCEN("evq_new", setup_new, op_new, clean_new, works_new, teardown_q),
};
static const struct scen scenarios[] = {
	{ SCEN("evq_add_fd", setup_fd, op_add_fd, clean_fd, works_fd, teardown_fd) },
	{ SCEN("evq_add_timer", setup_q, op_add_timer, clean_timer, works_timer,
	       teardown_q) },
	{ SCEN("evq_add_user", setup_q, op_add_user, clean_none, works_user, teardown_q) },
	{ SCEN("evq_add_signal", setup_signal, op_add_signal, clean_signal, works_signal,
	       teardown_q) },
	{ SCEN("evq_add_pid", setup_pid, op_add_pid, clean_none, works_pid, teardown_pid) },
	/* the process's first: its token table is made (for good) too; a
	 * queue keeps its hidden carrier registration once made */
	{ SCEN("evq_sigevent(first of the process)", setup_sigevent, op_sigevent, clean_none,
	       works_sigevent, teardown_q), .keep_mem = 1, .extra_regs = 1, .in_child = 1 },
	{ SCEN("evq_sigevent", setup_sigevent, op_sigevent, clean_none, works_sigevent,
	       teardown_q), .keep_mem = 1, .extra_regs = 1 },
	{ SCEN("evq_add_mask", setup_mask, op_add_mask, clean_mask, works_mask,
	       teardown_mask) },
	{ SCEN("evq_add_word", setup_word, op_add_word, clean_word, works_word, teardown_q) },
	{ SCEN("evq_add_latch", setup_latch, op_add_latch, clean_latch, works_latch,
	       teardown_q) },
	{ SCEN("evq_add_sem", setup_sem, op_add_sem, clean_sem, works_sem, teardown_q) },
	{ SCEN("evq_mod(enable word)", setup_word_disabled, op_mod_enable,
	       clean_still_disabled, works_mod_word, teardown_q) },
	{ SCEN("evq_mod_word(disabled word)", setup_word_disabled, op_mod_word,
	       clean_still_disabled, works_mod_word, teardown_q) },
	{ SCEN("evq_mod(enable latch)", setup_latch_disabled, op_mod_enable,
	       clean_latch_disabled, works_mod_latch, teardown_q) },
	{ SCEN("evq_mod_word(armed word)", setup_word_armed, op_mod_word,
	       clean_word_armed, works_mod_word, teardown_fd) },
	{ SCEN("evq_mod_timer(full heap)", setup_timer_full, op_mod_timer,
	       clean_timer_full, works_mod_timer, teardown_q) },
	{ SCEN("evq_wait(ready fd)", setup_wait_fd, op_wait, clean_none, works_wait_fd,
	       teardown_fd) },
	{ SCEN("evq_wait(REALTIME timer)", setup_wait_rt, op_wait, clean_none,
	       works_wait_rt, teardown_q), .absorb = 1 },
	{ SCEN("evq_wait(first in a thread)+evq_requeue", setup_requeue, op_wait_requeue,
	       clean_none, works_requeue, teardown_q), .absorb = 1 },
	/* the process's wake ring is made on first use, and a failure to
	 * make it is remembered: a child each time; it keeps the ring */
	{ SCEN("evq_latch_set_many", setup_set_many, op_set_many, clean_none,
	       works_set_many, teardown_q), .absorb = 1, .keep_maps = 3, .keep_fds = 1,
	  .in_child = 1 },
};

/* ------------------------------------------------------------------ */
/* Growth past 3,000 registrations                                      */
/* ------------------------------------------------------------------ */

enum { G_USER, G_TIMER, G_FD, G_WORD, G_LATCH, G_SEM, G_NKINDS };
static const char *const g_names[G_NKINDS] = { "user", "timer", "fd", "word",
					       "latch", "sem" };
static const char *const g_apis[G_NKINDS] = {
	"evq_add_user", "evq_add_timer", "evq_add_fd", "evq_add_word", "evq_add_latch",
	"evq_add_sem",
};

static struct growth {
	int kind;
	int64_t id;
	int fd;
	clockid_t clock;
	uint32_t word;
	struct evq_sem sem;
	struct evq_latch latch;
} *g;

static int64_t g_add(struct evq *q, struct growth *e, uint64_t cookie)
{
	switch (e->kind) {
	case G_USER:
		return evq_add_user(q, cookie);
	case G_TIMER:
		return evq_add_timer(q, e->clock, 3600 * EVQT_SEC, 0, 0, cookie);
	case G_FD:
		return evq_add_fd(q, e->fd, EVQ_READ, EVQ_ONESHOT, cookie);
	case G_WORD:
		return evq_add_word(q, &e->word, 0, EVQ_ONESHOT, cookie);
	case G_LATCH:
		return evq_add_latch(q, &e->latch, 0, cookie);
	default:
		return evq_add_sem(q, &e->sem, 0, cookie);
	}
}

/* Fires registration e once. */
static void g_fire(struct evq *q, struct growth *e)
{
	uint64_t one = 1;
	switch (e->kind) {
	case G_USER:
		CHECK(evq_trigger(q, e->id) == 0);
		break;
	case G_TIMER:
		CHECK(evq_mod_timer(q, e->id, 0, 0, 0) == 0);
		break;
	case G_FD:
		CHECK(write(e->fd, &one, sizeof one) == sizeof one);
		break;
	case G_WORD:
		__atomic_store_n(&e->word, 1, __ATOMIC_SEQ_CST);
		evq_wake(&e->word, 1, 0);
		break;
	case G_LATCH:
		CHECK(evq_latch_set(&e->latch) == 0);
		break;
	default:
		CHECK(evq_sem_post(&e->sem, 1) == 0);
	}
}

/* Adds n registrations of mixed kinds to one queue, walking every add
 * through its failure points (most adds have none: a free slot), then
 * fires each once and counts the events: none lost, none doubled. */
static void growth(long n)
{
	struct mark m = mark_now();
	struct evq *q = newq(NULL);
	/* words and latches need futex_waitv on epoll (the watcher thread),
	 * semaphores on every backend */
	int kinds[G_NKINDS], nk = 0;
	for (int k = 0; k < G_NKINDS; k++)
		if ((k != G_WORD && k != G_LATCH && k != G_SEM) || evqt_have_futex_waitv() ||
		    (k != G_SEM && q->backend->word_arm))
			kinds[nk++] = k;
	g = calloc((size_t)n, sizeof *g);
	unsigned char *seen = calloc((size_t)n, 1);
	CHECK(g && seen);
	long attempts = 0, injected = 0, badrc = 0, badlive = 0, hit[G_NKINDS] = { 0 };
	long ntimers = 0;
	for (long i = 0; i < n; i++) {
		struct growth *e = &g[i];
		e->kind = kinds[i % nk];
		if (e->kind == G_FD) {
			e->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			/* the last one far up: the fd map grows past 3,000 */
			if (i + nk >= n && e->fd >= 0) {
				int hi = fcntl(e->fd, F_DUPFD_CLOEXEC, 3100);
				CHECK(hi >= 0);
				close(e->fd);
				e->fd = hi;
			}
			CHECK(e->fd >= 0);
		} else if (e->kind == G_TIMER) {
			/* a heap per clock; REALTIME ones make the timerfd */
			static const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_BOOTTIME,
							    CLOCK_REALTIME };
			e->clock = clocks[ntimers++ % 3];
		} else if (e->kind == G_SEM) {
			CHECK(evq_sem_init(&e->sem, 0, 0) == 0);
		} else if (e->kind == G_LATCH) {
			CHECK(evq_latch_init(&e->latch, 0) == 0);
		}
		for (long f = 1;; f++) {
			uint32_t live = q->nlive;
			fi_arm(f);
			int64_t rc = g_add(q, e, (uint64_t)i);
			int k = fi_disarm();
			attempts++;
			if (k < 0) {
				CHECK(rc >= 0);
				e->id = rc;
				break;
			}
			injected++;
			hit[e->kind]++;
			record_site(k, fi_hit_site, g_apis[e->kind]);
			if (rc >= 0 ? 1 : rc != -fi_kinds[k].err) {
				if (badrc++ < 5)
					diag("growth: %s #%ld of add %ld (%s) -> %lld", fi_kinds[k].name,
					     f, i, g_names[e->kind], (long long)rc);
				if (rc >= 0) {
					e->id = rc;
					break;
				}
			}
			if (q->nlive != live && badlive++ < 5)
				diag("growth: %s #%ld of add %ld (%s): nlive %u, was %u",
				     fi_kinds[k].name, f, i, g_names[e->kind], q->nlive, live);
			CHECK(f < MAX_N);
		}
	}
	ok(badrc == 0, "growth: %ld adds, %ld attempts, %ld failures injected: each -errno "
	   "as injected", n, attempts, injected);
	ok(badlive == 0, "growth: no failed add left a registration");
	is(q->nlive, n, "growth: %ld registrations live", n);
	diag("growth: failures per kind: user %ld, timer %ld, fd %ld, word %ld, latch %ld, "
	     "sem %ld; fd map %u, timer heaps %u/%u/%u, slots %u", hit[G_USER],
	     hit[G_TIMER], hit[G_FD], hit[G_WORD], hit[G_LATCH], hit[G_SEM], q->fdmap_len,
	     q->heap[0].cap, q->heap[1].cap, q->heap[2].cap, (unsigned)q->nslots);
	ok(q->fdmap_len > 3000 && (n < 3000 || q->nslots >= 3000),
	   "growth: the slot table and the fd map grew past 3,000");

	for (long i = 0; i < n; i++)
		g_fire(q, &g[i]);
	long got = 0, dup = 0, stray = 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON * 3;
	struct evq_event ev[64];
	while (got < n && evqt_now(CLOCK_MONOTONIC) < end) {
		int k = wait_ev(q, ev, 64, EVQT_SOON);
		CHECK(k >= 0);
		for (int j = 0; j < k; j++) {
			uint64_t i = ev[j].cookie;
			if (i >= (uint64_t)n || ev[j].id != g[i].id) {
				stray++;
				continue;
			}
			if (seen[i]++)
				dup++;
			else
				got++;
		}
	}
	is(got, n, "growth: every registration delivered its event");
	ok(dup == 0 && stray == 0, "growth: no event doubled (%ld) or unknown (%ld)", dup,
	   stray);
	evq_free(q);
	for (long i = 0; i < n; i++)
		if (g[i].kind == G_FD)
			close(g[i].fd);
	free(g);
	free(seen);
	ok(leaks_ok(&m, "growth", 0, 0, 0), "growth: nothing leaked");
}

/* ------------------------------------------------------------------ */

int main(void)
{
	evqt_watchdog(300);
	/* the rule of evq_add_signal() and evq_sigevent(): blocked in every
	 * thread, so in main before any thread starts */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMAX);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
	/* This thread's evq_requeue records (made on its first delivery) and
	 * its epoll buffer (on its first kernel round) are kept until it
	 * exits: made now, not inside a step.  (epoll: no io_uring queue may
	 * exist before the first walk.) */
	static const struct evq_options o_warm = { .backend = EVQ_BACKEND_EPOLL };
	struct evq *warm = newq(&o_warm);
	CHECK(roundtrip(warm));
	struct evq_event wev[NEV];
	CHECK(evq_wait(warm, wev, NEV, 0, NULL) == 0); /* a kernel round */
	evq_free(warm);

	const char *env = getenv("EVQ_BACKEND");
	diag("fault injection on backend %s (EVQ_BACKEND=%s)", env ? env : "auto",
	     env ? env : "unset");

	/* io_uring's first queue of the process starts a thread (futex hash):
	 * explicit io_uring first, while that is still to come */
	static const struct evq_options o_uring = { .backend = EVQ_BACKEND_URING };
	static const struct evq_options o_epoll = { .backend = EVQ_BACKEND_EPOLL };
	struct scen s = scen_new;
	s.name = "evq_new(uring, first of the process)";
	s.in_child = 1;
	walk(&s, &o_uring);
	s.in_child = 0;
	s.name = "evq_new(uring)";
	walk(&s, &o_uring);
	s.name = "evq_new(epoll)";
	walk(&s, &o_epoll);
	s.name = "evq_new($EVQ_BACKEND)";
	walk(&s, NULL);

	struct evq *probe = NULL;
	if (evq_new(&probe, NULL) < 0)
		skip_all("backend not available on this kernel");
	diag("the scenarios below run on %s", evq_backend_name(probe));
	evq_free(probe);

	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
		walk(&scenarios[i], NULL);

	/* past 3,000 even under sanitizers; valgrind (EVQ_TEST_SCALE=0.05)
	 * scales it down */
	const char *sc = getenv("EVQ_TEST_SCALE");
	double f = sc && *sc ? strtod(sc, NULL) : 1.0;
	long n = (long)(3300 * f);
	growth(n < 60 ? 60 : n);

	if (spurious_eintr)
		diag("evq_wait returned -EINTR %ld time(s) with no signal (io_uring task work)",
		     spurious_eintr);
	diag("failure points: %d call sites, %d (call site, public function) pairs; "
	     "%ld failures injected, %ld absorbed", distinct_sites(-1), nsites, ninjected,
	     nabsorbed);
	for (int k = 0; k < FI_NKINDS; k++) {
		int pairs = 0;
		for (int i = 0; i < nsites; i++)
			pairs += sites[i].kind == k;
		diag("  %-16s %2d call site(s), %2d pair(s)", fi_kinds[k].name,
		     distinct_sites(k), pairs);
	}
	/* every wrapper took effect (a link without --wrap would pass
	 * everything above trivially) */
	unsigned want = 1u << FI_MALLOC | 1u << FI_CALLOC | 1u << FI_REALLOC |
			1u << FI_EPOLL_CREATE | 1u << FI_EVENTFD | 1u << FI_SIGNALFD |
			1u << FI_EPOLL_ADD | 1u << FI_TIMERFD |
			(have_pidfd() ? 1u << FI_PIDFD : 0) |
			(evqt_have_futex_waitv() ? 1u << FI_THREAD : 0);
	ok((kinds_hit & want) == want, "every kind of call failed at least once "
	   "(missing mask %#x)", want & ~kinds_hit);
	const char *list = getenv("EVQ_FAULTS_SITES");
	if (list && *list && *list != '0') {
		extern char __executable_start[];
		for (int i = 0; i < nsites; i++)
			diag("site %3d: %-16s +%#lx %s", i, fi_kinds[sites[i].kind].name,
			     (unsigned long)((char *)sites[i].ret - __executable_start),
			     sites[i].api);
	}
	done();
}
