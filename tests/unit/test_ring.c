/* Unit tests for the SPSC event ring (uni_ring_push / uni_ring_pop /
 * uni_ring_used in engine/include/uni/shm.h) and the process-shared futex
 * helpers (uni_futex_wait / uni_futex_wake in engine/shm.c).
 *
 * Checks, always on a struct uni_ring in memory from
 * mmap(MAP_SHARED | MAP_ANONYMOUS), as the session segment is shared:
 * records come out in push order with every field intact; an empty ring
 * pops nothing; pop honours its max; exactly UNI_RING_CAP pushes succeed,
 * the next returns -11 (-EAGAIN) and overwrites nothing; one pop makes room
 * for exactly one push; wrap-around over many cycles of mixed batch sizes,
 * also with head == tail started just below 2^32 and just below
 * 2 * UINT32_MAX (so the 64-bit counters cross 32-bit boundaries and the
 * full/empty tests must not truncate); four producer threads (one per
 * ring) pushing 1,000,000 sequence-numbered records each while a single
 * consumer thread drains all four rings, every record arriving exactly once,
 * in per-ring order, with no torn fields; a forked child producing 200,000
 * records into a ring that the parent consumes; uni_futex_wait returning
 * -ETIMEDOUT on an unchanged word (and not before about the timeout),
 * 0 at once when the word differs, 0 when another thread wakes it (also
 * across fork, since the futex must not be FUTEX_PRIVATE), and both
 * helpers preserving errno.
 *
 * Deliberately does not check: the ring state machine (claiming, FREE /
 * CLAIMING / LIVE, reuse after THREAD_END), the prod_waiting / doorbell
 * handshake between the shim and unid, the segment layout and
 * uni_shm_open, multiple producers on one ring (not allowed by design),
 * signal handlers interrupting a producer, or memory-ordering bugs that
 * only a weakly-ordered CPU would expose (this runs on whatever the build
 * host is; on x86 acquire/release mistakes mostly stay hidden, which is
 * why the TSan build is worth running). Timing is only asserted loosely. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uni/common.h"
#include "uni/shm.h"

/* Memory ------------------------------------------------------------------ */

static void *shared_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_msg(p != MAP_FAILED, "mmap(%zu): %s", size, strerror(errno));
	return p;
}

static struct uni_ring *ring_new(uint64_t start)
{
	struct uni_ring *r = shared_map(sizeof(*r));
	atomic_store(&r->head, start);
	atomic_store(&r->tail, start);
	return r;
}

static void ring_free(struct uni_ring *r)
{
	munmap(r, sizeof(*r));
}

/* Records: every field is derived from (ring, seq) so that a torn or
 * misplaced record is caught, not only a missing one. -------------------- */

static void ev_make(struct uni_ev *e, uint32_t ring, uint64_t seq)
{
	memset(e, 0, sizeof(*e));
	e->kind = (uint16_t)(UNI_EV_SEND + (seq & 1));
	e->flags = (uint16_t)(seq * 7u);
	e->conn = ring;
	e->t0 = seq;
	e->t1 = ~seq;
	e->off = seq * 3u + ring;
	e->len = seq ^ 0x5a5a5a5a5a5a5a5aull;
	e->a = (uint64_t)ring << 32 | (seq & 0xffffffffu);
	e->b = seq + 0x1000;
	e->c = e->t0 ^ e->t1 ^ e->off ^ e->len ^ e->a ^ e->b ^ e->conn;
}

/* 1 if e is exactly record seq of ring. */
static int ev_ok(const struct uni_ev *e, uint32_t ring, uint64_t seq)
{
	struct uni_ev want;
	ev_make(&want, ring, seq);
	return memcmp(e, &want, sizeof(want)) == 0;
}

/* Set when the concurrent test's consumer gives up: producers stop. */
static _Atomic int g_abandon;

/* Pushes, yielding while the ring is full. Returns -1 if abandoned. */
static int push_wait(struct uni_ring *r, const struct uni_ev *e)
{
	while (uni_ring_push(r, e) != 0) {
		if (atomic_load_explicit(&g_abandon, memory_order_relaxed))
			return -1;
		sched_yield();
	}
	return 0;
}

/* The concurrent tests give up (and say how far they got) after this. */
#define DEADLINE_NS (90ull * 1000000000ull)

/* Order and contents -------------------------------------------------- */

START_TEST(test_push_pop_order)
{
	struct uni_ring *r = ring_new(0);
	struct uni_ev e, out[16];

	ck_assert_uint_eq(uni_ring_used(r), 0);
	ck_assert_uint_eq(uni_ring_pop(r, out, 16), 0);
	for (uint64_t i = 0; i < 10; i++) {
		ev_make(&e, 0, i);
		ck_assert_int_eq(uni_ring_push(r, &e), 0);
		ck_assert_uint_eq(uni_ring_used(r), i + 1);
	}
	/* pop honours max */
	ck_assert_uint_eq(uni_ring_pop(r, out, 3), 3);
	for (uint64_t i = 0; i < 3; i++)
		ck_assert_msg(ev_ok(&out[i], 0, i), "record %llu differs", (unsigned long long)i);
	ck_assert_uint_eq(uni_ring_used(r), 7);
	ck_assert_uint_eq(atomic_load(&r->tail), 3);
	ck_assert_uint_eq(atomic_load(&r->head), 10);
	/* max above what is there: returns what is there */
	ck_assert_uint_eq(uni_ring_pop(r, out, 16), 7);
	for (uint64_t i = 0; i < 7; i++)
		ck_assert_msg(ev_ok(&out[i], 0, 3 + i), "record %llu differs", (unsigned long long)(3 + i));
	ck_assert_uint_eq(uni_ring_used(r), 0);
	ck_assert_uint_eq(uni_ring_pop(r, out, 16), 0);
	/* max 0 takes nothing */
	ev_make(&e, 0, 10);
	ck_assert_int_eq(uni_ring_push(r, &e), 0);
	ck_assert_uint_eq(uni_ring_pop(r, out, 0), 0);
	ck_assert_uint_eq(uni_ring_used(r), 1);
	ring_free(r);
}
END_TEST

/* Capacity ---------------------------------------------------------------- */

static void check_capacity(uint64_t start)
{
	struct uni_ring *r = ring_new(start);
	static struct uni_ev out[UNI_RING_CAP];
	struct uni_ev e;

	for (uint64_t i = 0; i < UNI_RING_CAP; i++) {
		ev_make(&e, 1, i);
		if (uni_ring_push(r, &e) != 0)
			ck_abort_msg("push %llu of %u failed", (unsigned long long)i, UNI_RING_CAP);
	}
	ck_assert_uint_eq(uni_ring_used(r), UNI_RING_CAP);
	/* Full: refused, repeatedly, and nothing is overwritten. */
	for (int k = 0; k < 3; k++) {
		ev_make(&e, 1, 999999);
		ck_assert_int_eq(uni_ring_push(r, &e), -11);
		ck_assert_int_eq(uni_ring_push(r, &e), -EAGAIN);
	}
	ck_assert_uint_eq(atomic_load(&r->head), start + UNI_RING_CAP);
	ck_assert_uint_eq(uni_ring_used(r), UNI_RING_CAP);
	for (uint64_t i = 0; i < UNI_RING_CAP; i++)
		if (!ev_ok(&r->ev[(start + i) & (UNI_RING_CAP - 1)], 1, i))
			ck_abort_msg("slot of record %llu was overwritten", (unsigned long long)i);

	/* One pop makes room for exactly one push. */
	ck_assert_uint_eq(uni_ring_pop(r, out, 1), 1);
	ck_assert(ev_ok(&out[0], 1, 0));
	ev_make(&e, 1, UNI_RING_CAP);
	ck_assert_int_eq(uni_ring_push(r, &e), 0);
	ck_assert_int_eq(uni_ring_push(r, &e), -11);

	/* Drain: records 1 .. CAP in order. */
	ck_assert_uint_eq(uni_ring_pop(r, out, UNI_RING_CAP), UNI_RING_CAP);
	for (uint64_t i = 0; i < UNI_RING_CAP; i++)
		if (!ev_ok(&out[i], 1, i + 1))
			ck_abort_msg("record %llu differs", (unsigned long long)(i + 1));
	ck_assert_uint_eq(uni_ring_used(r), 0);
	ck_assert_uint_eq(atomic_load(&r->tail), atomic_load(&r->head));
	ring_free(r);
}

START_TEST(test_capacity)
{
	check_capacity(0);
}
END_TEST

START_TEST(test_capacity_high_counters)
{
	/* Full ring straddling 2^32 and 2^33. */
	check_capacity((uint64_t)UINT32_MAX - UNI_RING_CAP / 2);
	check_capacity((uint64_t)UINT32_MAX * 2 - UNI_RING_CAP / 2 + 1);
}
END_TEST

/* Wrap-around ----------------------------------------------------------- */

/* Returns the final head. */
static uint64_t check_wrap(uint64_t start, uint64_t cycles)
{
	struct uni_ring *r = ring_new(start);
	static struct uni_ev out[UNI_RING_CAP];
	struct uni_ev e;
	uint64_t pushed = 0, popped = 0;
	/* Batch sizes that do not divide the capacity, so that every slot is
	 * hit at every phase; the ring is also filled completely now and then. */
	static const uint32_t sizes[] = {1, 7, 333, UNI_RING_CAP - 1, 5, UNI_RING_CAP, 1023, 2};

	for (uint64_t c = 0; c < cycles; c++) {
		uint32_t n = sizes[c % UNI_ARRAY_LEN(sizes)];
		/* Plain ifs in the loops: every passing ck_assert costs a write
		 * to Check's pipe in fork mode. */
		for (uint32_t i = 0; i < n; i++) {
			ev_make(&e, 2, pushed);
			if (uni_ring_push(r, &e) != 0)
				ck_abort_msg("cycle %llu: push %u of %u refused", (unsigned long long)c, i, n);
			pushed++;
		}
		if (n == UNI_RING_CAP && uni_ring_push(r, &e) != -11)
			ck_abort_msg("cycle %llu: push into a full ring not refused", (unsigned long long)c);
		if (uni_ring_used(r) != n)
			ck_abort_msg("cycle %llu: used %llu, want %u", (unsigned long long)c,
				     (unsigned long long)uni_ring_used(r), n);
		/* pop in two uneven parts */
		uint32_t first = n / 3;
		uint32_t got = uni_ring_pop(r, out, first);
		got += uni_ring_pop(r, out + got, UNI_RING_CAP);
		if (got != n)
			ck_abort_msg("cycle %llu: popped %u, want %u", (unsigned long long)c, got, n);
		for (uint32_t i = 0; i < n; i++) {
			if (!ev_ok(&out[i], 2, popped))
				ck_abort_msg("cycle %llu: record %llu differs (start %llu)",
					     (unsigned long long)c, (unsigned long long)popped,
					     (unsigned long long)start);
			popped++;
		}
	}
	ck_assert_uint_eq(pushed, popped);
	ck_assert_uint_eq(atomic_load(&r->head), start + pushed);
	ck_assert_uint_eq(atomic_load(&r->tail), start + popped);
	ring_free(r);
	return start + pushed;
}

START_TEST(test_wrap_many_cycles)
{
	check_wrap(0, 4000); /* about 2,800 times round the ring */
}
END_TEST

START_TEST(test_wrap_beyond_2_32)
{
	uint64_t end = check_wrap((uint64_t)UINT32_MAX - 3 * UNI_RING_CAP + 17, 400);
	ck_assert_uint_gt(end, (uint64_t)1 << 32);
}
END_TEST

START_TEST(test_wrap_beyond_2_33)
{
	uint64_t end = check_wrap((uint64_t)UINT32_MAX * 2 - 3 * UNI_RING_CAP + 5, 400);
	ck_assert_uint_gt(end, (uint64_t)1 << 33);
}
END_TEST

/* Concurrency: 4 producers, one ring each, one consumer ------------------- */

#define NRINGS 4
#define PER_PRODUCER 1000000ull

struct prod_arg {
	struct uni_ring *r;
	uint32_t ring;
	uint64_t n;
};

static void *producer(void *p)
{
	struct prod_arg *a = p;
	struct uni_ev e;
	for (uint64_t s = 0; s < a->n; s++) {
		ev_make(&e, a->ring, s);
		if (push_wait(a->r, &e) < 0)
			break;
	}
	return NULL;
}

struct cons_arg {
	struct uni_ring **rings;
	uint32_t nrings;
	uint64_t per_ring;
	uint64_t got[NRINGS];
	char err[256]; /* first failure; asserted by the main thread */
};

static void *consumer(void *p)
{
	struct cons_arg *a = p;
	struct uni_ev out[64];
	uint64_t total = 0, want = a->per_ring * a->nrings;
	uint64_t deadline = uni_now_ns() + DEADLINE_NS;
	while (total < want) {
		uint32_t any = 0;
		for (uint32_t k = 0; k < a->nrings; k++) {
			uint32_t n = uni_ring_pop(a->rings[k], out, 64);
			for (uint32_t i = 0; i < n; i++) {
				if (a->got[k] >= a->per_ring) {
					snprintf(a->err, sizeof(a->err), "ring %u: more than %llu records", k,
						 (unsigned long long)a->per_ring);
					atomic_store(&g_abandon, 1);
					return NULL;
				}
				if (!ev_ok(&out[i], k, a->got[k])) {
					snprintf(a->err, sizeof(a->err),
						 "ring %u: expected record %llu, got seq %llu (conn %u)", k,
						 (unsigned long long)a->got[k], (unsigned long long)out[i].t0,
						 out[i].conn);
					atomic_store(&g_abandon, 1);
					return NULL;
				}
				a->got[k]++;
			}
			total += n;
			any += n;
		}
		if (!any) {
			if (uni_now_ns() > deadline) {
				snprintf(a->err, sizeof(a->err),
					 "gave up: %llu of %llu records after %llu s (%llu %llu %llu %llu per ring)",
					 (unsigned long long)total, (unsigned long long)want,
					 DEADLINE_NS / 1000000000ull, (unsigned long long)a->got[0],
					 (unsigned long long)a->got[1], (unsigned long long)a->got[2],
					 (unsigned long long)a->got[3]);
				atomic_store(&g_abandon, 1);
				return NULL;
			}
			sched_yield();
		}
	}
	return NULL;
}

START_TEST(test_concurrent_producers)
{
	struct uni_ring *rings[NRINGS];
	struct prod_arg pa[NRINGS];
	pthread_t pt[NRINGS], ct;
	static struct cons_arg ca;

	memset(&ca, 0, sizeof(ca));
	/* Two rings start near 2^32 so the race also runs over that boundary. */
	for (uint32_t k = 0; k < NRINGS; k++)
		rings[k] = ring_new(k & 1 ? (uint64_t)UINT32_MAX - 500000 : 0);
	ca.rings = rings;
	ca.nrings = NRINGS;
	ca.per_ring = PER_PRODUCER;
	ck_assert_int_eq(pthread_create(&ct, NULL, consumer, &ca), 0);
	for (uint32_t k = 0; k < NRINGS; k++) {
		pa[k] = (struct prod_arg){.r = rings[k], .ring = k, .n = PER_PRODUCER};
		ck_assert_int_eq(pthread_create(&pt[k], NULL, producer, &pa[k]), 0);
	}
	for (uint32_t k = 0; k < NRINGS; k++)
		pthread_join(pt[k], NULL);
	pthread_join(ct, NULL);
	ck_assert_msg(ca.err[0] == 0, "%s", ca.err);
	for (uint32_t k = 0; k < NRINGS; k++) {
		ck_assert_uint_eq(ca.got[k], PER_PRODUCER);
		ck_assert_uint_eq(uni_ring_used(rings[k]), 0);
		ring_free(rings[k]);
	}
}
END_TEST

/* Cross-process: a forked child produces ---------------------------------- */

#define XPROC_N 200000ull

START_TEST(test_cross_process)
{
	struct uni_ring *r = ring_new(0);
	struct uni_ev out[128];
	uint64_t got = 0;

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uni_ev e;
		for (uint64_t s = 0; s < XPROC_N; s++) {
			ev_make(&e, 7, s);
			push_wait(r, &e);
		}
		_exit(0);
	}
	uint64_t deadline = uni_now_ns() + DEADLINE_NS;
	while (got < XPROC_N) {
		uint32_t n = uni_ring_pop(r, out, 128);
		for (uint32_t i = 0; i < n; i++) {
			if (!ev_ok(&out[i], 7, got)) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				ck_abort_msg("expected record %llu, got seq %llu", (unsigned long long)got,
					     (unsigned long long)out[i].t0);
			}
			got++;
		}
		if (!n) {
			if (uni_now_ns() > deadline) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				ck_abort_msg("only %llu of %llu records arrived", (unsigned long long)got, XPROC_N);
			}
			sched_yield();
		}
	}
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_uint_eq(uni_ring_used(r), 0);
	ck_assert_uint_eq(atomic_load(&r->head), XPROC_N);
	ring_free(r);
}
END_TEST

/* Futex helpers --------------------------------------------------------- */

START_TEST(test_futex_timeout)
{
	_Atomic uint32_t *w = shared_map(4096);
	atomic_store(w, 5);
	errno = 4242;
	uint64_t t0 = uni_now_ns();
	int r = uni_futex_wait(w, 5, 50);
	uint64_t dt = uni_now_ns() - t0;
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_int_eq(errno, 4242);
	/* Loose bounds: it waited (about) the timeout, and it did return. */
	ck_assert_msg(dt >= 25ull * 1000000, "returned after %llu ns, timeout was 50 ms",
		      (unsigned long long)dt);
	ck_assert_msg(dt < 10ull * 1000000000, "returned after %llu ns, timeout was 50 ms",
		      (unsigned long long)dt);
	/* Over a second: the helper splits it into tv_sec and tv_nsec; a wrong
	 * split (e.g. nsec out of range) would make the call fail at once. */
	t0 = uni_now_ns();
	ck_assert_int_eq(uni_futex_wait(w, 5, 1100), -ETIMEDOUT);
	ck_assert_uint_ge(uni_now_ns() - t0, 550ull * 1000000);
	munmap((void *)w, 4096);
}
END_TEST

START_TEST(test_futex_value_differs)
{
	_Atomic uint32_t *w = shared_map(4096);
	atomic_store(w, 1);
	errno = 77;
	uint64_t t0 = uni_now_ns();
	ck_assert_int_eq(uni_futex_wait(w, 0, 5000), 0);
	ck_assert_int_eq(errno, 77);
	ck_assert_msg(uni_now_ns() - t0 < 1000000000ull, "waited although the value differed");
	/* wake with nobody waiting is harmless and keeps errno */
	errno = 78;
	uni_futex_wake(w, 1);
	uni_futex_wake(w, 1000);
	ck_assert_int_eq(errno, 78);
	munmap((void *)w, 4096);
}
END_TEST

struct waiter {
	_Atomic uint32_t *word;
	uint32_t expect;
	_Atomic int started;
	_Atomic int done;
	int rc;
	uint64_t ns;
};

static void *waiter_main(void *p)
{
	struct waiter *w = p;
	atomic_store(&w->started, 1);
	uint64_t t0 = uni_now_ns();
	w->rc = uni_futex_wait(w->word, w->expect, 20000);
	w->ns = uni_now_ns() - t0;
	atomic_store(&w->done, 1);
	return NULL;
}

START_TEST(test_futex_wake_thread)
{
	_Atomic uint32_t *word = shared_map(4096);
	struct waiter w = {.word = word, .expect = 0};
	pthread_t t;

	atomic_store(word, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	/* The value stays 0: only a wake can end the wait before its 20 s.
	 * The waiter may not be in the kernel yet, so wake until it is out. */
	for (int i = 0; i < 1000 && !atomic_load(&w.done); i++) {
		usleep(10000);
		uni_futex_wake(word, 1);
	}
	pthread_join(t, NULL);
	ck_assert_int_eq(w.rc, 0);
	ck_assert_msg(w.ns < 15ull * 1000000000, "the waiter was not woken (%llu ns)",
		      (unsigned long long)w.ns);
	munmap((void *)word, 4096);
}
END_TEST

START_TEST(test_futex_wake_other_process)
{
	/* The word is in a MAP_SHARED mapping: a FUTEX_PRIVATE wait would not
	 * be woken from another process. The child waits, the parent wakes. */
	struct shared {
		_Atomic uint32_t word;
		_Atomic uint32_t started;
		_Atomic uint32_t done;
		int32_t rc;
		uint64_t ns;
	} *s = shared_map(4096);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		atomic_store(&s->started, 1);
		uint64_t t0 = uni_now_ns();
		s->rc = uni_futex_wait(&s->word, 0, 20000);
		s->ns = uni_now_ns() - t0;
		atomic_store(&s->done, 1);
		_exit(0);
	}
	while (!atomic_load(&s->started))
		sched_yield();
	for (int i = 0; i < 1000 && !atomic_load(&s->done); i++) {
		usleep(10000);
		uni_futex_wake(&s->word, 1);
	}
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(atomic_load(&s->done), 1);
	ck_assert_int_eq(s->rc, 0);
	ck_assert_msg(s->ns < 15ull * 1000000000, "the child was not woken (%llu ns)",
		      (unsigned long long)s->ns);
	munmap(s, 4096);
}
END_TEST

START_TEST(test_futex_wake_after_store)
{
	/* The protocol the shim uses: store a new value, then wake. */
	_Atomic uint32_t *word = shared_map(4096);
	struct waiter w = {.word = word, .expect = 1};
	pthread_t t;

	atomic_store(word, 1);
	ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	usleep(20000);
	atomic_store(word, 0);
	uni_futex_wake(word, 1);
	pthread_join(t, NULL);
	ck_assert_int_eq(w.rc, 0);
	ck_assert_msg(w.ns < 15ull * 1000000000, "the waiter was not woken (%llu ns)",
		      (unsigned long long)w.ns);
	munmap((void *)word, 4096);
}
END_TEST

/* ---- the alpha-beta schedule log (struct uni_sched) ------------------ */

static struct uni_sched *sched_new(uint64_t latency, double npb)
{
	struct uni_sched *sd = calloc(1, sizeof(*sd));
	ck_assert_ptr_nonnull(sd);
	sd->latency = latency;
	sd->ns_per_byte = npb;
	return sd;
}

START_TEST(test_sched_find)
{
	struct uni_sched *sd = sched_new(1000000, 80.0); /* 1 ms, 100 Mbit/s */
	uint64_t t = 7;
	ck_assert_int_eq(uni_sched_find(sd, 0, &t), 0); /* nothing scheduled */
	ck_assert_uint_eq(t, 7);
	/* A notice at 5 ms, 100 bytes of data behind it at 2 ms (FIFO start
	 * given by unid), a 1-byte chunk. */
	uni_sched_publish(sd, 0, 48, 5000000);
	uni_sched_publish(sd, 48, 100, 5003840);
	uni_sched_publish(sd, 148, 1, 9000000);
	ck_assert_int_eq(uni_sched_find(sd, 0, &t), 1);
	ck_assert_uint_eq(t, 5000000 + 80 + 1000000);
	ck_assert_int_eq(uni_sched_find(sd, 47, &t), 1);
	ck_assert_uint_eq(t, 5000000 + 48 * 80 + 1000000);
	ck_assert_int_eq(uni_sched_find(sd, 48, &t), 1);
	ck_assert_uint_eq(t, 5003840 + 80 + 1000000);
	ck_assert_int_eq(uni_sched_find(sd, 147, &t), 1);
	ck_assert_uint_eq(t, 5003840 + 100 * 80 + 1000000);
	ck_assert_uint_eq(t, uni_ab_arrival(5003840, 48, 80.0, 1000000, 147));
	ck_assert_int_eq(uni_sched_find(sd, 148, &t), 1);
	ck_assert_uint_eq(t, 9000000 + 80 + 1000000);
	/* Beyond what is scheduled. */
	ck_assert_int_eq(uni_sched_find(sd, 149, &t), 0);
	ck_assert_int_eq(uni_sched_find(sd, 1u << 30, &t), 0);
	free(sd);
}
END_TEST

START_TEST(test_sched_window)
{
	/* More chunks than the log holds: the oldest fall out (the reader asks
	 * unid), every chunk in the window is found by binary search. */
	struct uni_sched *sd = sched_new(0, 1.0);
	uint64_t nch = 3ull * UNI_SCHED_LOG + 7, t;
	for (uint64_t i = 0; i < nch; i++)
		uni_sched_publish(sd, 10 * i, 10, 1000 * i);
	uint64_t first = nch - UNI_SCHED_LOG;
	for (uint64_t i = 0; i < nch; i++) {
		int found = uni_sched_find(sd, 10 * i + 9, &t);
		ck_assert_int_eq(found, i >= first);
		if (found)
			ck_assert_uint_eq(t, 1000 * i + 10);
	}
	ck_assert_int_eq(uni_sched_find(sd, 10 * nch, &t), 0);
	free(sd);
}
END_TEST

START_TEST(test_sched_torn)
{
	/* A chunk being rewritten (seq 0) or whose seq is not its index's is
	 * never taken; a gap (a chunk not published) is not bridged. */
	struct uni_sched *sd = sched_new(0, 1.0);
	uint64_t t;
	uni_sched_publish(sd, 0, 10, 100);
	uni_sched_publish(sd, 10, 10, 200);
	uni_sched_publish(sd, 30, 10, 400); /* bytes 20..29 never published */
	ck_assert_int_eq(uni_sched_find(sd, 25, &t), 0);
	ck_assert_int_eq(uni_sched_find(sd, 35, &t), 1);
	ck_assert_uint_eq(t, 406);
	atomic_store(&sd->ch[1].seq, 0);
	ck_assert_int_eq(uni_sched_find(sd, 15, &t), 0);
	atomic_store(&sd->ch[1].seq, 2 + UNI_SCHED_LOG); /* a later lap's */
	ck_assert_int_eq(uni_sched_find(sd, 15, &t), 0);
	atomic_store(&sd->ch[1].seq, 2);
	ck_assert_int_eq(uni_sched_find(sd, 15, &t), 1);
	ck_assert_uint_eq(t, 206);
	free(sd);
}
END_TEST

struct sched_race {
	struct uni_sched *sd;
	atomic_int stop;
};

static void *sched_writer(void *arg)
{
	struct sched_race *r = arg;
	/* Chunk i: bytes [i, i + 1), start 3 * i: byte b arrives at 3 b + 1.
	 * Until the reader has had enough. */
	for (uint64_t i = 0; !atomic_load_explicit(&r->stop, memory_order_relaxed); i++)
		uni_sched_publish(r->sd, i, 1, 3 * i);
	return NULL;
}

START_TEST(test_sched_concurrent)
{
	/* A reader racing the writer never sees a torn chunk: every arrival
	 * it finds is the right one. */
	struct sched_race r = {.sd = sched_new(0, 1.0)};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, sched_writer, &r), 0);
	uint64_t found = 0, x = 1;
	/* Until the writer has begun (a loaded host may start it late). */
	while (atomic_load(&r.sd->n) < 2 * UNI_SCHED_LOG)
		sched_yield();
	for (int it = 0; it < 2000000 && found < 100000; it++) {
		uint64_t n = atomic_load(&r.sd->n), t;
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t b = n - 1 - (x >> 33) % (2 * UNI_SCHED_LOG < n ? 2 * UNI_SCHED_LOG : n);
		if (uni_sched_find(r.sd, b, &t)) {
			ck_assert_uint_eq(t, 3 * b + 1);
			found++;
		}
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	ck_assert_uint_gt(found, 0);
	free(r.sd);
}
END_TEST

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = tcase_create("single");
	tcase_add_test(tc, test_push_pop_order);
	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_capacity_high_counters);
	tcase_add_test(tc, test_wrap_many_cycles);
	tcase_add_test(tc, test_wrap_beyond_2_32);
	tcase_add_test(tc, test_wrap_beyond_2_33);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrent");
	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, test_concurrent_producers);
	tcase_add_test(tc, test_cross_process);
	suite_add_tcase(s, tc);

	tc = tcase_create("futex");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_futex_timeout);
	tcase_add_test(tc, test_futex_value_differs);
	tcase_add_test(tc, test_futex_wake_thread);
	tcase_add_test(tc, test_futex_wake_other_process);
	tcase_add_test(tc, test_futex_wake_after_store);
	suite_add_tcase(s, tc);

	tc = tcase_create("sched");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sched_find);
	tcase_add_test(tc, test_sched_window);
	tcase_add_test(tc, test_sched_torn);
	tcase_add_test(tc, test_sched_concurrent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
