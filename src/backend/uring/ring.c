/* SPDX-License-Identifier: MIT */
/*
 * ring.c - a raw io_uring: the system calls, mapping the rings, probing
 * ops (ring.h).
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend/uring/ring.h"

int evq__ring_setup(unsigned entries, struct io_uring_params *p)
{
	long rc = syscall(SYS_io_uring_setup, entries, p);
	return rc < 0 ? -errno : (int)rc;
}

int evq__ring_enter(int fd, unsigned to_submit, unsigned min_complete,
		    unsigned flags, const void *arg, size_t argsz)
{
	long rc = syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags,
			  arg, argsz);
	return rc < 0 ? -errno : (int)rc;
}

int evq__ring_register(int fd, unsigned op, void *arg, unsigned n)
{
	long rc = syscall(SYS_io_uring_register, fd, op, arg, n);
	return rc < 0 ? -errno : (int)rc;
}

void evq__ring_unmap(struct evq__ring *r)
{
	if (r->sqes && r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_map && r->cq_map != MAP_FAILED && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_len);
	if (r->sq_map && r->sq_map != MAP_FAILED)
		munmap(r->sq_map, r->sq_len);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

int evq__ring_map(struct evq__ring *r, const struct io_uring_params *p)
{
	r->sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
	r->cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_len > r->sq_len)
			r->sq_len = r->cq_len;
		r->cq_len = r->sq_len;
	}
	r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (r->sq_map == MAP_FAILED)
		return -errno;
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		r->cq_map = r->sq_map;
	} else {
		r->cq_map = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (r->cq_map == MAP_FAILED)
			return -errno;
	}
	r->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -errno;
	char *sq = r->sq_map, *cq = r->cq_map;
	r->sq_head = (unsigned *)(sq + p->sq_off.head);
	r->sq_tail = (unsigned *)(sq + p->sq_off.tail);
	r->sq_flags = (unsigned *)(sq + p->sq_off.flags);
	r->sq_array = (unsigned *)(sq + p->sq_off.array);
	r->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
	r->sq_entries = p->sq_entries;
	r->cq_head = (unsigned *)(cq + p->cq_off.head);
	r->cq_tail = (unsigned *)(cq + p->cq_off.tail);
	r->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
	r->cq_entries = p->cq_entries;
	r->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
	/* identity mapping: SQE i is always at array slot i */
	for (unsigned i = 0; i < p->sq_entries; i++)
		r->sq_array[i] = i;
	return 0;
}

/* 1 if the kernel supports each of the n ops in need[] (all below 64): a
 * probe of the first 64 ops on the stack, since the wake ring may be made
 * in a signal handler, and so that no allocation can fail and pass for a
 * missing op. */
#define PROBE_OPS 64
int evq__ring_probe(int fd, const unsigned *need, size_t n)
{
	union {
		struct io_uring_probe p;
		char b[sizeof(struct io_uring_probe) +
		       PROBE_OPS * sizeof(struct io_uring_probe_op)];
	} u;
	memset(&u, 0, sizeof u);
	if (evq__ring_register(fd, IORING_REGISTER_PROBE, &u.p, PROBE_OPS) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (need[i] >= PROBE_OPS || need[i] > u.p.last_op || need[i] >= u.p.ops_len ||
		    !(u.p.ops[need[i]].flags & IO_URING_OP_SUPPORTED))
			return 0;
	return 1;
}
