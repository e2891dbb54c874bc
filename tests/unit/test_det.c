/* Unit tests for deterministic mode's turn (shim/det.c) on a segment in
 * this process's memory, with real threads.
 *
 * Checks: threads that advance their clocks by different steps run one at
 * a time (never two inside at once) and in the order of (clock, rank,
 * key), whatever the host's scheduling; a thread blocked on an object
 * runs again after a wake-up, at the later of its clock and the waker's,
 * and first come first served among several; a time-out goes when it is
 * the least time, not before a ready thread with an earlier clock; a
 * thread outside (a real wait) does not hold the others; giving the turn
 * up lets every waiting thread go. */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "det.h"
#include "shim.h"

/* What det.c uses of the shim. */
struct uni_real uni_real;
void uni_shim_log(const char *fmt, ...)
{
	(void)fmt;
}
void uni_shim_det_resumed(void)
{
}

#define NR 8
static struct uni_shm_hdr *H;

static void segment(int world)
{
	size_t sz = 4096 + (size_t)NR * sizeof(struct uni_rank) + (size_t)NR * sizeof(struct uni_ring) + 4096;
	H = aligned_alloc(4096, (sz + 4095) / 4096 * 4096);
	memset(H, 0, sz);
	H->ranks_off = 4096;
	H->rings_off = (4096 + NR * sizeof(struct uni_rank) + 63) / 64 * 64;
	H->max_ranks = NR;
	H->max_rings = NR;
	H->det = 1;
	/* (Attached, and unid took a thread's first event: the first turn
	 * waits for both.) */
	for (int i = 0; i < world; i++) {
		atomic_store(&uni_shm_rank(H, (uint32_t)i)->state, UNI_RANK_LIVE);
		atomic_store(&uni_shm_rank(H, (uint32_t)i)->threads, 1);
	}
	uni_real.read = read;
	uni_real.close = close;
	uni_det_init(H, world);
}

static struct uni_ring *ring_of(uint32_t i, int rank)
{
	struct uni_ring *r = uni_shm_ring(H, i);
	r->rank = rank;
	r->pid = getpid();
	atomic_store(&r->state, UNI_RING_LIVE);
	return r;
}

/* The log of who ran at what time. */
static _Atomic int inside, overlap;
static int lw[4096];
static uint64_t lt[4096];
static _Atomic int nl;

static void note(int who, uint64_t t)
{
	if (atomic_fetch_add(&inside, 1))
		atomic_store(&overlap, 1);
	int k = atomic_fetch_add(&nl, 1);
	lw[k] = who;
	lt[k] = t;
	/* Give the host every chance to run another thread now. */
	sched_yield();
	atomic_fetch_sub(&inside, 1);
}

struct stepper {
	uint32_t idx;
	uint64_t step, n;
};

static void *step_thread(void *p)
{
	struct stepper *s = p;
	struct uni_ring *r = uni_shm_ring(H, s->idx);
	__atomic_store_n(&r->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
	uint64_t t = 0;
	uni_det_turn(r, s->idx, t);
	for (uint64_t k = 0; k < s->n; k++) {
		t += s->step;
		uni_det_turn(r, s->idx, t);
		note((int)s->idx, t);
	}
	uni_det_end(r, s->idx);
	return NULL;
}

START_TEST(test_order)
{
	segment(2);
	/* Rings 0..3: ranks 1, 0, 0, 1; keys 5, 9, 2, 1. */
	static const int rank[] = {1, 0, 0, 1};
	static const uint64_t key[] = {5, 9, 2, 1}, step[] = {7, 3, 5, 3};
	struct stepper s[4];
	pthread_t th[4];
	for (uint32_t i = 0; i < 4; i++) {
		struct uni_ring *r = ring_of(i, rank[i]);
		uni_det_adopt(r, i, key[i], 0);
		s[i] = (struct stepper){i, step[i], 40};
	}
	for (int i = 3; i >= 0; i--)
		ck_assert_int_eq(pthread_create(&th[i], NULL, step_thread, &s[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&overlap), 0);
	ck_assert_int_eq(nl, 160);
	/* In (time, rank, key) order: at a tie of 15 (steps 3 and 5), rank 0
	 * key 2 (ring 2) before rank 0 key 9 (ring 1), before rank 1. */
	for (int k = 1; k < nl; k++) {
		ck_assert_uint_le(lt[k - 1], lt[k]);
		if (lt[k - 1] == lt[k]) {
			int a = lw[k - 1], b = lw[k];
			ck_assert(rank[a] < rank[b] || (rank[a] == rank[b] && key[a] < key[b]));
		}
	}
	ck_assert_uint_gt(atomic_load(&H->det_turns), 100);
}
END_TEST

/* Blocking and waking. */
static _Atomic int phase;

static void *sleeper(void *p)
{
	uint32_t idx = (uint32_t)(uintptr_t)p;
	struct uni_ring *r = uni_shm_ring(H, idx);
	__atomic_store_n(&r->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
	uni_det_turn(r, idx, 10 * idx);
	/* Waits on the object 0x1000 from clock 10 idx, time-out 1000. */
	int woken = uni_det_block(r, idx, 0x1000, 10 * idx, 1000);
	note((int)idx, woken ? r->det_t : 1000 + idx);
	uni_det_end(r, idx);
	return NULL;
}

static void *waker(void *p)
{
	uint32_t idx = (uint32_t)(uintptr_t)p;
	struct uni_ring *r = uni_shm_ring(H, idx);
	__atomic_store_n(&r->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
	uni_det_turn(r, idx, 100);
	note((int)idx, 100);
	/* One wake-up at 100: the first that blocked goes on (at 100). */
	ck_assert_int_eq(uni_det_wake(0x1000, 100, 0, 0), 1);
	uni_det_turn(r, idx, 500);
	note((int)idx, 500);
	/* A ready thread at 900 goes before the time-outs at 1000. */
	uni_det_turn(r, idx, 900);
	note((int)idx, 900);
	uni_det_end(r, idx);
	return NULL;
}

START_TEST(test_block_wake)
{
	segment(1);
	pthread_t th[4];
	for (uint32_t i = 0; i < 4; i++)
		uni_det_adopt(ring_of(i, 0), i, i + 1, i == 3 ? 100 : 10 * i);
	for (uint32_t i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, sleeper, (void *)(uintptr_t)i), 0);
	ck_assert_int_eq(pthread_create(&th[3], NULL, waker, (void *)(uintptr_t)3), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&overlap), 0);
	ck_assert_int_eq(nl, 6);
	/* The waker at 100; ring 0 (blocked first) woken, goes on at 100; the
	 * waker at 500 and 900; rings 1 and 2 time out at 1000, in key order. */
	static const int ew[] = {3, 0, 3, 3, 1, 2};
	static const uint64_t et[] = {100, 100, 500, 900, 1001, 1002};
	for (int k = 0; k < 6; k++) {
		ck_assert_int_eq(lw[k], ew[k]);
		ck_assert_uint_eq(lt[k], et[k]);
	}
}
END_TEST

/* Outside and giving up. */
static void *outsider(void *p)
{
	uint32_t idx = (uint32_t)(uintptr_t)p;
	struct uni_ring *r = uni_shm_ring(H, idx);
	__atomic_store_n(&r->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
	uni_det_turn(r, idx, 1);
	uni_det_outside(r, idx);
	/* A real wait: until the other thread got its turn at 50. */
	while (atomic_load(&phase) < 1)
		usleep(1000);
	uni_det_turn(r, idx, 60);
	note((int)idx, 60);
	/* Blocked on something nobody wakes: the give-up lets it go. */
	uni_det_block(r, idx, 0x2000, 60, UINT64_MAX);
	note((int)idx, 61);
	return NULL;
}

static void *inner(void *p)
{
	uint32_t idx = (uint32_t)(uintptr_t)p;
	struct uni_ring *r = uni_shm_ring(H, idx);
	__atomic_store_n(&r->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
	uni_det_turn(r, idx, 50);
	note((int)idx, 50);
	atomic_store(&phase, 1);
	uni_det_block(r, idx, 0x3000, 50, UINT64_MAX);
	note((int)idx, 51);
	return NULL;
}

START_TEST(test_outside_abandon)
{
	segment(1);
	pthread_t a, b;
	uni_det_adopt(ring_of(0, 0), 0, 1, 1);
	uni_det_adopt(ring_of(1, 0), 1, 2, 50);
	ck_assert_int_eq(pthread_create(&a, NULL, outsider, (void *)0), 0);
	ck_assert_int_eq(pthread_create(&b, NULL, inner, (void *)1), 0);
	/* Both end up blocked for ever; then the turn is given up. */
	while (nl < 2)
		usleep(1000);
	usleep(50000);
	ck_assert_int_eq(nl, 2);
	ck_assert_int_eq(uni_det_live(), 1);
	uni_det_abandon("the test");
	ck_assert_int_eq(uni_det_live(), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	ck_assert_int_eq(nl, 4);
	ck_assert_int_eq(lw[0], 1);
	ck_assert_uint_eq(lt[0], 50);
	ck_assert_int_eq(lw[1], 0);
	ck_assert_uint_eq(lt[1], 60);
	ck_assert_uint_ge(atomic_load(&H->det_outside), 1);
}
END_TEST

static void reset(void)
{
	atomic_store(&nl, 0);
	atomic_store(&overlap, 0);
	atomic_store(&phase, 0);
}

int main(void)
{
	Suite *s = suite_create("det");
	TCase *tc = tcase_create("turn");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_block_wake);
	tcase_add_test(tc, test_outside_abandon);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
