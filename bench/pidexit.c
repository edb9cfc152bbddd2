/* SPDX-License-Identifier: MIT */
/*
 * pidexit.c - learning of a child's exit (issue 4: "process exits through
 * WAITID or pidfd poll, whichever is better - measure").
 *
 * evq_add_pid (src/kinds/pid.c) polls a pidfd: on the epoll backend it sits in
 * the queue's epoll set, on the io_uring backend in the private epoll set
 * that IORING_OP_EPOLL_WAIT harvests; on the report, waitid(P_PIDFD) takes
 * the status and reaps.  The alternative on io_uring is IORING_OP_WAITID
 * (Linux 6.7), which waits and reaps in one request.  Implementations:
 *
 *   waitpid        reference, no event loop: a blocking waitpid(pid) per
 *                  child (the least any program can pay to reap)
 *   raw-pidfd      the floor: pidfd_open, epoll_ctl(ADD, EPOLLIN |
 *                  EPOLLONESHOT), epoll_wait(64), waitid(P_PIDFD, WEXITED),
 *                  close
 *   uring-waitid   one IORING_OP_WAITID(P_PID, WEXITED) per child on a raw
 *                  ring (io_uring_setup/enter + mmap, no liburing); the batch
 *                  is submitted and waited for in one io_uring_enter
 *   uring-waitid-pidfd  the same with pidfd_open and P_PIDFD (what a
 *                  pid-reuse-safe WAITID costs), close after
 *   uring-poll     pidfd_open, IORING_OP_POLL_ADD(POLLIN) on it (one
 *                  io_uring_enter for the batch), waitid(P_PIDFD), close
 *   evq-epoll      evq_add_pid + evq_wait + evq_del, EVQ_BACKEND_EPOLL
 *   evq-uring      the same on EVQ_BACKEND_URING
 *
 * Tests (C = children alive at once; a batch forks C children, registers
 * each right after its fork, then collects all C exits, reaped):
 *   full    each child _exit(0)s at once; ns per child of the whole batch
 *           (fork, registration, notification, reap, cleanup)
 *   notify  each child closes its copy of a "go" pipe's write end, says it
 *           is ready and blocks reading the go pipe; once all C are ready
 *           and registered (io_uring requests submitted), the parent
 *           starts the clock, closes the write end (EOF releases all C at
 *           once) and stops it when the last exit was collected and
 *           reaped: the notification part without fork and setup (the
 *           children's wake-up and exit are still inside, the same for
 *           every impl).  ns per child.
 *   notify-vm  the same with clone(CLONE_VM) children: no memory to copy
 *           or tear down, and no copy-on-write faults in the parent after
 *           the release, so what is left is the wake-up, the exit proper
 *           and the notification.
 *
 * Each test starts with one uncounted batch per impl (warm-up); then every
 * round runs each impl once, in an order that rotates per round; all
 * rings, epoll sets and queues exist for the whole run, so every fork copies
 * the same process.  Figures: medians over the rounds; ratio = median of the
 * per-round ratios against raw-pidfd in the same round, delta = median of
 * the per-round differences (ns per child; < 0: cheaper than raw-pidfd).
 * cpu = this (the parent's) thread's CPU time in the timed part
 * (CLOCK_THREAD_CPUTIME_ID) per child: what the waiting side pays (in
 * full, the parent's side of fork too); the children's own work is not in
 * it.
 *
 * Output: bench=pidexit test=full c=64 impl=uring-waitid n=256 rounds=11
 *         ns_median=... ratio_vs_floor=... delta_ns_vs_floor=...
 *         cpu_ns_median=... cpu_ratio_vs_floor=...
 * Usage: pidexit [-r rounds] [-n children] [-c 1,64] [-t full,notify,notify-vm]
 *                [-i impl,impl...]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evq.h"
#include "wordsbench.h"

/* Debian 12's headers predate these (the kernel has them). */
#ifndef IORING_OP_WAITID
#define IORING_OP_WAITID 50
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define IDTYPE_PIDFD ((idtype_t)3) /* P_PIDFD, Linux 5.4 */

#define MAXR 64
#define MAXC 256

enum { WAITPID, RAW_PIDFD, URING_WAITID, URING_WAITID_PIDFD, URING_POLL,
       EVQ_EPOLL, EVQ_URING, NIMPL };
static const char *names[NIMPL] = {
	"waitpid", "raw-pidfd", "uring-waitid", "uring-waitid-pidfd",
	"uring-poll", "evq-epoll", "evq-uring",
};
#define FLOOR RAW_PIDFD

static void die(const char *what, int err)
{
	fprintf(stderr, "pidexit bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ------------------------------------------------------------------ */
/* A minimal ring on raw system calls                                   */
/* ------------------------------------------------------------------ */

struct bring {
	int fd;
	unsigned *sq_tail, *sq_head, *sq_array, sq_mask, sq_n;
	unsigned *cq_head, *cq_tail, cq_mask;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
};

static int bring_enter(struct bring *b, unsigned submit, unsigned wait)
{
	long rc = syscall(SYS_io_uring_enter, b->fd, submit, wait,
			  wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
	return rc < 0 ? -errno : (int)rc;
}

/* 0, or -errno; also checks that the kernel knows IORING_OP_WAITID. */
static int bring_init(struct bring *b, unsigned entries)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * entries;
	long fd = syscall(SYS_io_uring_setup, entries, &p);
	if (fd < 0)
		return -errno;
	b->fd = (int)fd;
	size_t probe_len = sizeof(struct io_uring_probe) +
			   256 * sizeof(struct io_uring_probe_op);
	struct io_uring_probe *pr = calloc(1, probe_len);
	int ok = pr && syscall(SYS_io_uring_register, b->fd, IORING_REGISTER_PROBE,
			       pr, 256) == 0 &&
		 pr->last_op >= IORING_OP_WAITID &&
		 (pr->ops[IORING_OP_WAITID].flags & IO_URING_OP_SUPPORTED);
	free(pr);
	if (!ok || !(p.features & IORING_FEAT_SINGLE_MMAP)) {
		close(b->fd);
		return -ENOSYS;
	}
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	size_t len = sq_len > cq_len ? sq_len : cq_len;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       b->fd, IORING_OFF_SQ_RING);
	void *s = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, b->fd,
		       IORING_OFF_SQES);
	if (m == MAP_FAILED || s == MAP_FAILED)
		die("mmap ring", errno);
	b->sq_tail = (unsigned *)(m + p.sq_off.tail);
	b->sq_head = (unsigned *)(m + p.sq_off.head);
	b->sq_array = (unsigned *)(m + p.sq_off.array);
	b->sq_mask = *(unsigned *)(m + p.sq_off.ring_mask);
	b->sq_n = p.sq_entries;
	b->cq_head = (unsigned *)(m + p.cq_off.head);
	b->cq_tail = (unsigned *)(m + p.cq_off.tail);
	b->cq_mask = *(unsigned *)(m + p.cq_off.ring_mask);
	b->cqe = (struct io_uring_cqe *)(m + p.cq_off.cqes);
	b->sqe = s;
	return 0;
}

/* The next SQE, zeroed; the caller fills it and calls bring_push. */
static struct io_uring_sqe *bring_sqe(struct bring *b)
{
	unsigned t = *b->sq_tail;
	if (t - __atomic_load_n(b->sq_head, __ATOMIC_ACQUIRE) >= b->sq_n)
		die("SQ full", ENOSPC);
	struct io_uring_sqe *e = &b->sqe[t & b->sq_mask];
	memset(e, 0, sizeof *e);
	b->sq_array[t & b->sq_mask] = t & b->sq_mask;
	return e;
}

static void bring_push(struct bring *b)
{
	__atomic_store_n(b->sq_tail, *b->sq_tail + 1, __ATOMIC_RELEASE);
}

/* Takes every completion there is; calls f(user_data, res) on each.
 * Returns how many. */
static int bring_reap(struct bring *b, void (*f)(uint64_t, int))
{
	unsigned h = *b->cq_head, t = __atomic_load_n(b->cq_tail, __ATOMIC_ACQUIRE);
	int n = 0;
	for (; h != t; h++, n++) {
		struct io_uring_cqe *c = &b->cqe[h & b->cq_mask];
		f(c->user_data, c->res);
	}
	__atomic_store_n(b->cq_head, h, __ATOMIC_RELEASE);
	return n;
}

/* ------------------------------------------------------------------ */
/* One batch                                                            */
/* ------------------------------------------------------------------ */

static struct bring ring;
static int have_uring, epfd;
static struct evq *q_epoll, *q_uring;

static pid_t kid[MAXC];
static int pfd[MAXC];
static int64_t rid[MAXC];
static siginfo_t info[MAXC];
static int go[2], ready[2]; /* notify: the go pipe, the ready pipe */
static int bad;

static void check_info(const siginfo_t *si, pid_t pid)
{
	if (si->si_pid != pid || si->si_code != CLD_EXITED || si->si_status != 0)
		bad = 1;
}

static void on_waitid_cqe(uint64_t k, int res)
{
	if (res != 0 || k >= MAXC)
		bad = 1;
	else
		check_info(&info[k], kid[k]);
}

static void on_poll_cqe(uint64_t k, int res)
{
	if (res < 0 || !(res & POLLIN) || k >= MAXC) {
		bad = 1;
		return;
	}
	siginfo_t si = { 0 };
	if (waitid(IDTYPE_PIDFD, (id_t)pfd[k], &si, WEXITED) != 0)
		bad = 1;
	check_info(&si, kid[k]);
	close(pfd[k]);
}

/* A notify-vm child: shares our memory (nothing to copy or tear down) but
 * has its own fd table; touches no libc state but the two calls' (which
 * leave errno alone when they succeed). */
static int vm_child(void *arg)
{
	char c = 0;
	(void)arg;
	close(go[1]);
	if (write(ready[1], &c, 1) != 1)
		return 3;
	(void)!read(go[0], &c, 1);
	return 0;
}

#define VM_STACK 16384
static _Alignas(64) char vm_stacks[MAXC][VM_STACK];

static pid_t spawn(int notify, int k)
{
	if (notify == 2) {
		pid_t pid = clone(vm_child, vm_stacks[k] + VM_STACK, CLONE_VM | SIGCHLD, NULL);
		if (pid < 0)
			die("clone", errno);
		return pid;
	}
	pid_t pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		if (notify) {
			char c = 0;
			close(go[1]);
			if (write(ready[1], &c, 1) != 1)
				_exit(3);
			while (read(go[0], &c, 1) < 0 && errno == EINTR)
				;
		}
		_exit(0);
	}
	return pid;
}

/* Registers child k with impl (after its fork). */
static void watch(int impl, int k)
{
	pid_t pid = kid[k];
	struct io_uring_sqe *e;
	switch (impl) {
	case WAITPID:
		break;
	case RAW_PIDFD: {
		pfd[k] = (int)syscall(SYS_pidfd_open, pid, 0);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT,
					  .data.u32 = (uint32_t)k };
		if (pfd[k] < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, pfd[k], &ev) != 0)
			die("pidfd_open/epoll_ctl", errno);
		break;
	}
	case URING_WAITID:
	case URING_WAITID_PIDFD:
		e = bring_sqe(&ring);
		e->opcode = IORING_OP_WAITID;
		if (impl == URING_WAITID) {
			e->fd = pid;
			e->len = P_PID;
		} else {
			pfd[k] = (int)syscall(SYS_pidfd_open, pid, 0);
			if (pfd[k] < 0)
				die("pidfd_open", errno);
			e->fd = pfd[k];
			e->len = (uint32_t)IDTYPE_PIDFD;
		}
		e->file_index = WEXITED; /* the options */
		e->addr2 = (uint64_t)(uintptr_t)&info[k];
		e->user_data = (uint64_t)k;
		bring_push(&ring);
		break;
	case URING_POLL:
		pfd[k] = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd[k] < 0)
			die("pidfd_open", errno);
		e = bring_sqe(&ring);
		e->opcode = IORING_OP_POLL_ADD;
		e->fd = pfd[k];
		e->poll32_events = POLLIN;
		e->user_data = (uint64_t)k;
		bring_push(&ring);
		break;
	default:
		rid[k] = evq_add_pid(impl == EVQ_EPOLL ? q_epoll : q_uring, pid, 0,
				     (uint64_t)k);
		if (rid[k] < 0)
			die("evq_add_pid", (int)rid[k]);
		break;
	}
}

/* Collects the exits of children 0..c-1, reaped; `submitted`: the ring's
 * requests went to the kernel already (notify). */
static void collect(int impl, int c, int submitted)
{
	int got = 0;
	switch (impl) {
	case WAITPID:
		for (int k = 0; k < c; k++) {
			int st;
			if (waitpid(kid[k], &st, 0) != kid[k] || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 0)
				bad = 1;
		}
		break;
	case RAW_PIDFD:
		while (got < c) {
			struct epoll_event ev[64];
			int n = epoll_wait(epfd, ev, 64, -1);
			for (int i = 0; i < n; i++, got++) {
				int k = (int)ev[i].data.u32;
				siginfo_t si = { 0 };
				if (waitid(IDTYPE_PIDFD, (id_t)pfd[k], &si, WEXITED) != 0)
					bad = 1;
				check_info(&si, kid[k]);
				close(pfd[k]); /* oneshot: the item is disabled */
			}
		}
		break;
	case URING_WAITID:
	case URING_WAITID_PIDFD:
	case URING_POLL: {
		unsigned todo = submitted ? 0 : (unsigned)c;
		while (got < c) {
			int rc = bring_enter(&ring, todo, (unsigned)(c - got));
			if (rc < 0 && rc != -EINTR)
				die("io_uring_enter", rc);
			if (rc > 0)
				todo -= (unsigned)rc;
			got += bring_reap(&ring, impl == URING_POLL ? on_poll_cqe
								     : on_waitid_cqe);
		}
		if (impl == URING_WAITID_PIDFD)
			for (int k = 0; k < c; k++)
				close(pfd[k]);
		break;
	}
	default: {
		struct evq *q = impl == EVQ_EPOLL ? q_epoll : q_uring;
		while (got < c) {
			struct evq_event ev[64];
			int n = evq_wait(q, ev, 64, -1, NULL);
			if (n < 0 && n != -EINTR)
				die("evq_wait", n);
			for (int i = 0; i < n; i++, got++) {
				int k = (int)ev[i].cookie;
				if (ev[i].kind != EVQ_KIND_PID || ev[i].ident != kid[k] ||
				    !WIFEXITED((int)ev[i].data) ||
				    WEXITSTATUS((int)ev[i].data) != 0)
					bad = 1;
				if (evq_del(q, rid[k]) != 0)
					bad = 1;
			}
		}
		break;
	}
	}
}

struct cost {
	double wall, cpu; /* ns per child: elapsed, and this thread's CPU */
};

/* n children (rounded up to batches of c) */
static struct cost run(int impl, int notify, int c, int n)
{
	int64_t wall = 0, cpu = 0;
	for (int done = 0; done < n; done += c) {
		if (notify) {
			if (pipe2(go, O_CLOEXEC) != 0 || pipe2(ready, O_CLOEXEC) != 0)
				die("pipe", errno);
			for (int k = 0; k < c; k++) {
				kid[k] = spawn(notify, k);
				watch(impl, k);
			}
			char buf[MAXC];
			for (int got = 0; got < c;) {
				ssize_t r = read(ready[0], buf, (size_t)(c - got));
				if (r <= 0)
					die("read ready", errno);
				got += (int)r;
			}
			int ur = impl == URING_WAITID || impl == URING_WAITID_PIDFD ||
				 impl == URING_POLL;
			if (ur && bring_enter(&ring, (unsigned)c, 0) != c)
				die("io_uring_enter (submit)", EIO);
			int64_t c0 = thread_cpu_ns(), t0 = now_ns();
			close(go[1]);
			collect(impl, c, ur);
			wall += now_ns() - t0;
			cpu += thread_cpu_ns() - c0;
			close(go[0]);
			close(ready[0]);
			close(ready[1]);
		} else {
			int64_t c0 = thread_cpu_ns(), t0 = now_ns();
			for (int k = 0; k < c; k++) {
				kid[k] = spawn(0, k);
				watch(impl, k);
			}
			collect(impl, c, 0);
			wall += now_ns() - t0;
			cpu += thread_cpu_ns() - c0;
		}
		if (bad) {
			fprintf(stderr, "pidexit bench: impl %s: wrong exit report\n",
				names[impl]);
			exit(1);
		}
	}
	double kids = (double)((n + c - 1) / c * c);
	return (struct cost){ (double)wall / kids, (double)cpu / kids };
}

static int usable(const char *impls, int impl)
{
	if (impls && !bench_listed(impls, names[impl]))
		return 0;
	return have_uring || (impl != URING_WAITID && impl != URING_WAITID_PIDFD &&
			      impl != URING_POLL && impl != EVQ_URING);
}

static const char *tests[] = { "full", "notify", "notify-vm" };

struct config {
	const char *impls;
	int test, c, n;
};

static struct cost res[NIMPL][MAXR];

static int one_round(int i, int r, void *ctx)
{
	const struct config *cf = ctx;
	if (i == FLOOR || usable(cf->impls, i))
		res[i][r] = run(i, cf->test, cf->c, cf->n);
	return 0;
}

static void bench(const char *impls, int test, int c, int n, int rounds)
{
	for (int i = 0; i < NIMPL; i++) /* warm-up: one batch each, not counted */
		if (i == FLOOR || usable(impls, i))
			(void)run(i, test, c, c);
	bench_rounds(rounds, NIMPL, 0, one_round, &(struct config){ impls, test, c, n });
	for (int i = 0; i < NIMPL; i++) {
		if (i != FLOOR && !usable(impls, i))
			continue;
		double v[MAXR], ratio[MAXR], delta[MAXR], cpu[MAXR], cratio[MAXR];
		for (int r = 0; r < rounds; r++) {
			v[r] = res[i][r].wall;
			ratio[r] = res[i][r].wall / res[FLOOR][r].wall;
			delta[r] = res[i][r].wall - res[FLOOR][r].wall;
			cpu[r] = res[i][r].cpu;
			cratio[r] = res[i][r].cpu / res[FLOOR][r].cpu;
		}
		printf("bench=pidexit test=%s c=%d impl=%s n=%d rounds=%d ns_median=%.0f "
		       "ratio_vs_floor=%.3f delta_ns_vs_floor=%.0f cpu_ns_median=%.0f "
		       "cpu_ratio_vs_floor=%.3f\n",
		       tests[test], c, names[i], (n + c - 1) / c * c, rounds,
		       median(v, rounds), median(ratio, rounds), median(delta, rounds),
		       median(cpu, rounds), median(cratio, rounds));
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int rounds = 11, n = 256, opt;
	const char *clist = "1,64", *tlist = "full,notify,notify-vm", *impls = NULL;
	while ((opt = getopt(argc, argv, "r:n:c:t:i:")) != -1) {
		switch (opt) {
		case 'r': rounds = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'c': clist = optarg; break;
		case 't': tlist = optarg; break;
		case 'i': impls = optarg; break;
		default:
			fprintf(stderr, "usage: pidexit [-r rounds] [-n children] "
				"[-c 1,64] [-t full,notify,notify-vm] [-i impl,...]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAXR || n < 1)
		die("bad arguments", EINVAL);

	bench_header("pidexit");

	/* Everything exists for the whole run: every fork copies the same
	 * process, whichever impl runs. */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1", errno);
	struct evq_options oe = { .backend = EVQ_BACKEND_EPOLL };
	struct evq_options ou = { .backend = EVQ_BACKEND_URING };
	int rc = evq_new(&q_epoll, &oe);
	if (rc < 0)
		die("evq_new(EPOLL)", rc);
	rc = bring_init(&ring, MAXC);
	int rc2 = rc == 0 ? evq_new(&q_uring, &ou) : rc;
	have_uring = rc == 0 && rc2 == 0;
	if (!have_uring)
		printf("# io_uring unavailable (%d): skipped\n", rc < 0 ? rc : rc2);

	char *cl = strdup(clist), *save = NULL;
	for (char *tok = strtok_r(cl, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int c = atoi(tok);
		if (c < 1 || c > MAXC)
			die("-c: 1..256 children at once", EINVAL);
		for (int t = 0; t < 3; t++)
			if (bench_listed(tlist, tests[t]))
				bench(impls, t, c, n, rounds);
	}
	free(cl);
	return 0;
}
