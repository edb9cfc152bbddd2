/* SPDX-License-Identifier: MIT */
/*
 * sigforge.c - evq_sigevent against another process of the same user that
 * sends SIGRTMAX with made-up contents (rt_sigqueueinfo(2) lets it choose
 * any si_code below 0 but SI_TKILL, and si_value, si_pid, si_overrun,
 * si_timerid):
 *  - tokens cannot be guessed: the first registrations of two processes
 *    forked from one state differ, and a registration made again in the
 *    same table entry gets a new token each time;
 *  - forged notifications fire nothing: the tokens the library used to
 *    hand out (generation << 20 | entry index, the first one always the
 *    same), sequential and random guesses, under every notification code;
 *    kill() and sigqueue() of the signal; the token of a deleted
 *    registration (its entry since reused); SI_QUEUE, even with a valid
 *    token;
 *  - a valid token (which a process that reads /proc/PID/timers has) adds
 *    one notification per signal, and a forged timer notification's claimed
 *    overruns count only up to the kernel's count for the timer it names;
 *    a genuine timer notification counts its overruns exactly.
 * Every event is counted.  The forger ends with one notification for a
 * marker registration: a real-time signal's instances queue in order, so
 * once the marker's event is in, everything sent before it was handled.
 */
#include <limits.h>
#include <sys/wait.h>

#include "evqtest.h"

#define NEV 64

/* rt_sigqueueinfo() to pid, retried while the real-time signal queue is
 * full (its limit counts every process of the user).  0 or -errno. */
static int forge(pid_t pid, int code, uintptr_t token, int overrun, int timer_id)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGRTMAX;
	si.si_code = code;
	if (code == SI_TIMER) {
		si.si_timerid = timer_id;
		si.si_overrun = overrun;
	} else {
		si.si_pid = getpid();
		si.si_uid = (uid_t)overrun; /* where a timer's overrun would be */
	}
	si.si_value.sival_ptr = (void *)token;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + EVQT_SOON;
	while (syscall(SYS_rt_sigqueueinfo, pid, SIGRTMAX, &si) != 0) {
		if (errno != EAGAIN || evqt_now(CLOCK_MONOTONIC) > end)
			return -errno;
		evqt_sleep_ns(EVQT_MS / 10);
	}
	return 0;
}

static uintptr_t token_of(const struct sigevent *sev)
{
	return (uintptr_t)sev->sigev_value.sival_ptr;
}

/* A token's entry index and key, as the library lays them out. */
#define INDEX_BITS 20
#define INDEX_OF(t) ((t) & ((1u << INDEX_BITS) - 1))

/* Two children forked from the same state each make their first
 * registration: their tokens differ (they used to be equal, and equal to
 * every other process's first token). */
static void test_first_tokens_differ(void)
{
	uintptr_t tok[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		int p[2];
		CHECK(pipe(p) == 0);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			struct evq *q;
			struct sigevent sev;
			uintptr_t t = 0;
			if (evq_new(&q, NULL) == 0 && evq_sigevent(q, 1, &sev) >= 0)
				t = token_of(&sev);
			_exit(write(p[1], &t, sizeof t) == (ssize_t)sizeof t ? 0 : 1);
		}
		close(p[1]);
		CHECK(read(p[0], &tok[k], sizeof tok[k]) == (ssize_t)sizeof tok[k]);
		close(p[0]);
		int st;
		CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ok(tok[0] != 0 && tok[1] != 0 && tok[0] != tok[1],
	   "unguessable: two processes' first tokens differ (%#lx, %#lx)",
	   (unsigned long)tok[0], (unsigned long)tok[1]);
}

/* The same table entry, registered and deleted again and again: a new
 * token each time, so no old one ever names the new registration. */
static void test_remade_tokens_differ(void)
{
	struct evq *q = evqt_new();
	enum { N = 64 };
	uintptr_t tok[N];
	int same_entry = 1, distinct = 1;
	for (int i = 0; i < N; i++) {
		struct sigevent sev;
		int64_t id = evq_sigevent(q, 1, &sev);
		CHECK(id >= 0);
		tok[i] = token_of(&sev);
		CHECK(evq_del(q, id) == 0);
		same_entry &= INDEX_OF(tok[i]) == INDEX_OF(tok[0]);
		for (int j = 0; j < i; j++)
			distinct &= tok[j] != tok[i];
	}
	ok(same_entry && distinct, "unguessable: %d registrations of one entry, %d tokens", N,
	   distinct ? N : -1);
	evq_free(q);
}

enum { C_FIRST = 1, C_TIMER, C_MARKER, C_STALE, C_REUSER, C_NCOOKIES };

/* The forger: everything a same-user process can send without knowing a
 * token, then what it can do with one.  Returns the number of signals it
 * failed to send. */
static int forger(pid_t victim, uintptr_t first, uintptr_t timer_tok, int timer_id,
		  uintptr_t stale, uintptr_t marker)
{
	static const int codes[] = { SI_TIMER, SI_MESGQ, SI_ASYNCIO, SI_QUEUE };
	int bad = 0;
	/* The old tokens, generation << 20 | index: the first registration
	 * of a process was always 1 << 20. */
	for (unsigned c = 0; c < sizeof codes / sizeof codes[0]; c++)
		for (uintptr_t gen = 1; gen <= 4; gen++)
			for (uintptr_t idx = 0; idx < 64; idx++)
				bad += forge(victim, codes[c], gen << INDEX_BITS | idx, INT_MAX,
					     timer_id) != 0;
	/* Sequential guesses: raw values, and small keys over the entries in
	 * use. */
	for (uintptr_t v = 0; v < 256; v++)
		bad += forge(victim, SI_ASYNCIO, v, 0, 0) != 0;
	for (uintptr_t key = 1; key <= 64; key++) {
		bad += forge(victim, SI_TIMER, key << INDEX_BITS | INDEX_OF(timer_tok), INT_MAX,
			     timer_id) != 0;
		bad += forge(victim, SI_MESGQ, key << INDEX_BITS | INDEX_OF(first), 0, 0) != 0;
	}
	/* Random guesses with the right entry index. */
	uint64_t x = (uint64_t)evqt_now(CLOCK_MONOTONIC) | 1;
	for (int i = 0; i < 256; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uintptr_t idx = INDEX_OF(i & 1 ? first : timer_tok);
		bad += forge(victim, codes[i & 3], ((uintptr_t)x & ~(uintptr_t)0xfffff) | idx,
			     INT_MAX, timer_id) != 0;
	}
	/* kill() and sigqueue() carry no token, or one without a code of a
	 * notification source. */
	union sigval zero = { .sival_ptr = NULL }, valid = { .sival_ptr = (void *)first };
	for (int i = 0; i < 4; i++) {
		bad += kill(victim, SIGRTMAX) != 0;
		bad += sigqueue(victim, SIGRTMAX, zero) != 0;
		bad += sigqueue(victim, SIGRTMAX, valid) != 0;
		bad += forge(victim, SI_QUEUE, timer_tok, 0, 0) != 0;
	}
	/* The token of a deleted registration, whose entry was reused. */
	for (unsigned c = 0; c < sizeof codes / sizeof codes[0]; c++)
		bad += forge(victim, codes[c], stale, INT_MAX, timer_id) != 0;

	/* With the timer registration's token (from /proc/PID/timers, say):
	 * each signal is one notification, whatever the code, plus for
	 * SI_TIMER min(claimed overruns, the kernel's count for the timer
	 * named).  The parent expects exactly what these add up to. */
	static const int claims[] = { INT_MAX, INT_MIN, -1, 0, 3, 1000000 };
	for (unsigned i = 0; i < sizeof claims / sizeof claims[0]; i++)
		bad += forge(victim, SI_TIMER, timer_tok, claims[i], timer_id) != 0;
	bad += forge(victim, SI_TIMER, timer_tok, INT_MAX, -1) != 0;      /* no such timer */
	bad += forge(victim, SI_TIMER, timer_tok, INT_MAX, INT_MAX) != 0; /* nor this */
	bad += forge(victim, SI_MESGQ, timer_tok, INT_MAX, 0) != 0;
	bad += forge(victim, SI_ASYNCIO, timer_tok, INT_MAX, 0) != 0;

	bad += forge(victim, SI_ASYNCIO, marker, 0, 0) != 0;
	return bad;
}

/* What the timer registration's forged notifications above add up to, with
 * the kernel's count k for the timer: 1 + min(max(claim, 0), k) each for
 * the six claims, 1 each for the four others. */
static uint64_t forged_timer_sum(uint64_t k)
{
	static const int claims[] = { INT_MAX, INT_MIN, -1, 0, 3, 1000000 };
	uint64_t sum = 4;
	for (unsigned i = 0; i < sizeof claims / sizeof claims[0]; i++) {
		uint64_t c = claims[i] > 0 ? (uint64_t)claims[i] : 0;
		sum += 1 + (c < k ? c : k);
	}
	return sum;
}

static void test_forgery(void)
{
	struct evq *q = evqt_new();
	struct evq_event ev[NEV];
	struct sigevent s_first, s_timer, s_marker, s_stale, s_reuser;
	/* The process's first registration: the old token 1 << 20. */
	int64_t id_first = evq_sigevent(q, C_FIRST, &s_first);
	int64_t id_timer = evq_sigevent(q, C_TIMER, &s_timer);
	int64_t id_marker = evq_sigevent(q, C_MARKER, &s_marker);
	int64_t id_stale = evq_sigevent(q, C_STALE, &s_stale);
	CHECK(id_first >= 0 && id_timer >= 0 && id_marker >= 0 && id_stale >= 0);
	CHECK(evq_del(q, id_stale) == 0);
	int64_t id_reuser = evq_sigevent(q, C_REUSER, &s_reuser);
	CHECK(id_reuser >= 0);
	ok(INDEX_OF(token_of(&s_reuser)) == INDEX_OF(token_of(&s_stale)) &&
		   token_of(&s_reuser) != token_of(&s_stale),
	   "stale: a deleted registration's entry reused under another token");

	/* The timer registration's timer: one hour apart, the first
	 * expiration ten and a half hours ago, so it fires at once with 10
	 * overruns (11 expirations) and not again for half an hour. */
	int kid;
	CHECK(syscall(SYS_timer_create, CLOCK_REALTIME, &s_timer, &kid) == 0);
	const time_t hour = 3600;
	struct itimerspec its = { { hour, 0 }, { 0, 0 } };
	its.it_value.tv_sec = (time_t)(evqt_now(CLOCK_REALTIME) / EVQT_SEC) - 10 * hour - hour / 2;
	CHECK(syscall(SYS_timer_settime, kid, TIMER_ABSTIME, &its, NULL) == 0);
	int n = evqt_wait(q, ev, NEV, EVQT_SOON);
	ok(n == 1 && ev[0].id == id_timer && ev[0].data == 11,
	   "genuine: a timer notification counts its 10 overruns (n %d, data %llu)", n,
	   n == 1 ? (unsigned long long)ev[0].data : 0ull);
	long k = syscall(SYS_timer_getoverrun, kid);
	is(k, 10L, "genuine: the kernel's count for the timer stays 10 after the event");

	pid_t parent = getpid(), pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(forger(parent, token_of(&s_first), token_of(&s_timer), kid,
			     token_of(&s_stale), token_of(&s_marker)) ? 1 : 0);

	/* Every event until the marker's, then whatever is left. */
	uint64_t data[C_NCOOKIES] = { 0 };
	int events[C_NCOOKIES] = { 0 }, others = 0, polling = 0;
	int64_t end = evqt_now(CLOCK_MONOTONIC) + 2 * EVQT_SOON;
	for (;;) {
		int64_t left = end - evqt_now(CLOCK_MONOTONIC);
		if (!polling && left <= 0)
			break;
		n = evqt_wait(q, ev, NEV, polling ? 0 : left);
		if (polling && n == 0)
			break;
		for (int i = 0; i < n; i++) {
			if (ev[i].kind == EVQ_KIND_SIGEVENT && ev[i].cookie > 0 &&
			    ev[i].cookie < C_NCOOKIES) {
				data[ev[i].cookie] += ev[i].data;
				events[ev[i].cookie]++;
				polling |= ev[i].cookie == C_MARKER;
			} else {
				others++;
			}
		}
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forger: every signal sent (%#x)", st);
	is(data[C_MARKER], 1ull, "forger: the marker arrived once");
	ok(events[C_FIRST] == 0,
	   "guesses: old tokens, sequential, random, kill, sigqueue fire nothing "
	   "(%d events, data %llu)",
	   events[C_FIRST], (unsigned long long)data[C_FIRST]);
	ok(events[C_STALE] == 0 && events[C_REUSER] == 0,
	   "stale: a deleted registration's token fires neither it nor its entry's "
	   "new one (%d, %d)",
	   events[C_STALE], events[C_REUSER]);
	uint64_t want = forged_timer_sum((uint64_t)k);
	ok(data[C_TIMER] == want,
	   "valid token: forged overruns capped by the kernel's count %ld "
	   "(data %llu, want %llu)",
	   k, (unsigned long long)data[C_TIMER], (unsigned long long)want);
	is(others, 0, "no other events");

	CHECK(syscall(SYS_timer_delete, kid) == 0);
	ok(evqt_roundtrip(q), "queue usable");
	evq_free(q);
}

int main(void)
{
	/* valgrind keeps the highest real-time signal for itself */
	if (getenv("EVQ_TEST_VALGRIND"))
		skip_all("under valgrind: valgrind reserves SIGRTMAX, which evq_sigevent uses");
	evqt_watchdog(60);
	evqt_banner("sigforge");
	/* First: this process's first registrations get the tokens the
	 * library used to give every process. */
	test_forgery();
	test_first_tokens_differ();
	test_remade_tokens_differ();
	return done();
}
