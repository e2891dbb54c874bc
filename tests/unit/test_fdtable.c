/* Unit tests for the shim's fd -> connection table (shim/fdtable.c,
 * compiled into this test directly).
 *
 * Checks: uni_fd_get is 0 for untracked fds, negative fds, INT_MIN, fds at
 * and beyond UNI_FD_MAX and INT_MAX; uni_fd_set returns the previous entry
 * (0 the first time) and stores nothing out of range; the last in-range fd
 * (UNI_FD_MAX - 1) works; uni_fd_take returns the entry and clears it (a
 * second take returns 0); uni_fd_reset clears every entry; several threads
 * setting, reading and taking their own distinct fds concurrently never
 * see another thread's value; several threads exchanging tokens through
 * one shared fd never lose or duplicate a token (set is one atomic
 * exchange).
 *
 * Does not check: the shim's use of the table (dup/close bookkeeping,
 * fork), nor that the fast-path load compiles to what fdtable.h says. */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdtable.h"

static void setup(void)
{
	uni_fd_reset();
}

START_TEST(test_get_untracked)
{
	static const int fds[] = {0, 1, 2, 3, 100, UNI_FD_MAX - 1, UNI_FD_MAX, UNI_FD_MAX + 1,
				  1 << 20, INT_MAX, -1, -2, -UNI_FD_MAX, INT_MIN};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		ck_assert_msg(uni_fd_get(fds[i]) == 0, "fd %d: %u", fds[i], uni_fd_get(fds[i]));
}
END_TEST

START_TEST(test_set_returns_previous)
{
	ck_assert_uint_eq(uni_fd_set(5, 11), 0);
	ck_assert_uint_eq(uni_fd_get(5), 11);
	ck_assert_uint_eq(uni_fd_set(5, 12), 11);
	ck_assert_uint_eq(uni_fd_get(5), 12);
	ck_assert_uint_eq(uni_fd_set(5, 12), 12);
	ck_assert_uint_eq(uni_fd_set(5, 0), 12);
	ck_assert_uint_eq(uni_fd_get(5), 0);
	/* neighbours untouched */
	ck_assert_uint_eq(uni_fd_set(6, 99), 0);
	ck_assert_uint_eq(uni_fd_get(4), 0);
	ck_assert_uint_eq(uni_fd_get(7), 0);
	ck_assert_uint_eq(uni_fd_get(6), 99);
	/* the full 32-bit range of a slot + 1 round-trips */
	ck_assert_uint_eq(uni_fd_set(0, UINT32_MAX), 0);
	ck_assert_uint_eq(uni_fd_get(0), UINT32_MAX);
	/* last fd of the table */
	ck_assert_uint_eq(uni_fd_set(UNI_FD_MAX - 1, 3), 0);
	ck_assert_uint_eq(uni_fd_get(UNI_FD_MAX - 1), 3);
	ck_assert_uint_eq(uni_fd_set(UNI_FD_MAX - 1, 4), 3);
}
END_TEST

START_TEST(test_out_of_range)
{
	static const int fds[] = {-1, -2, INT_MIN, UNI_FD_MAX, UNI_FD_MAX + 1, INT_MAX};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		ck_assert_uint_eq(uni_fd_set(fds[i], 42), 0);
		ck_assert_uint_eq(uni_fd_set(fds[i], 43), 0); /* nothing was stored */
		ck_assert_uint_eq(uni_fd_get(fds[i]), 0);
		ck_assert_uint_eq(uni_fd_take(fds[i]), 0);
	}
	/* and nothing leaked into the table (e.g. by wrapping the index) */
	for (int fd = 0; fd < UNI_FD_MAX; fd++)
		ck_assert_msg(uni_fd_get(fd) == 0, "fd %d holds %u", fd, uni_fd_get(fd));
}
END_TEST

START_TEST(test_take_clears)
{
	ck_assert_uint_eq(uni_fd_take(9), 0);
	uni_fd_set(9, 7);
	ck_assert_uint_eq(uni_fd_take(9), 7);
	ck_assert_uint_eq(uni_fd_get(9), 0);
	ck_assert_uint_eq(uni_fd_take(9), 0);
	ck_assert_uint_eq(uni_fd_set(9, 8), 0);
	ck_assert_uint_eq(uni_fd_take(9), 8);
}
END_TEST

START_TEST(test_reset_clears_all)
{
	for (int fd = 0; fd < UNI_FD_MAX; fd += 3)
		uni_fd_set(fd, (uint32_t)fd + 1);
	uni_fd_set(UNI_FD_MAX - 1, 5);
	uni_fd_reset();
	for (int fd = 0; fd < UNI_FD_MAX; fd++)
		ck_assert_msg(uni_fd_get(fd) == 0, "fd %d still holds %u", fd, uni_fd_get(fd));
	/* usable after a reset */
	ck_assert_uint_eq(uni_fd_set(3, 1), 0);
	ck_assert_uint_eq(uni_fd_get(3), 1);
	uni_fd_reset();
	uni_fd_reset(); /* twice is harmless */
	ck_assert_uint_eq(uni_fd_get(3), 0);
}
END_TEST

/* Concurrency ---------------------------------------------------------- */

#define NTHREADS 8
#define ROUNDS 200

struct worker {
	int id;
	char err[200];
};

/* Thread id owns the fds with fd % NTHREADS == id. Values encode the thread
 * and round so that a value from another thread or round is recognised. */
static uint32_t val(int id, int round, int fd)
{
	return ((uint32_t)id << 28 | (uint32_t)round << 16 | (uint32_t)fd) + 1;
}

static void *distinct_worker(void *p)
{
	struct worker *w = p;
	for (int round = 0; round < ROUNDS; round++) {
		for (int fd = w->id; fd < 4096; fd += NTHREADS) {
			uint32_t prev = uni_fd_set(fd, val(w->id, round, fd));
			uint32_t want = round ? val(w->id, round - 1, fd) : 0;
			if (round % 2 == 0 && round > 0)
				want = 0; /* cleared by the take of the odd round */
			if (prev != want) {
				snprintf(w->err, sizeof(w->err), "fd %d round %d: set returned %#x, want %#x", fd,
					 round, prev, want);
				return NULL;
			}
			if (uni_fd_get(fd) != val(w->id, round, fd)) {
				snprintf(w->err, sizeof(w->err), "fd %d round %d: get %#x", fd, round,
					 uni_fd_get(fd));
				return NULL;
			}
		}
		if (round % 2 == 1) {
			for (int fd = w->id; fd < 4096; fd += NTHREADS) {
				uint32_t got = uni_fd_take(fd);
				if (got != val(w->id, round, fd) || uni_fd_get(fd) != 0) {
					snprintf(w->err, sizeof(w->err), "fd %d round %d: take %#x", fd, round,
						 got);
					return NULL;
				}
			}
		}
	}
	return NULL;
}

START_TEST(test_concurrent_distinct)
{
	pthread_t t[NTHREADS];
	static struct worker w[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, distinct_worker, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_msg(w[i].err[0] == 0, "thread %d: %s", i, w[i].err);
	/* ROUNDS is even: the last round (odd) took everything */
	for (int fd = 0; fd < UNI_FD_MAX; fd++)
		ck_assert_msg(uni_fd_get(fd) == 0, "fd %d holds %#x", fd, uni_fd_get(fd));
}
END_TEST

/* Token passing through one fd: each thread starts with one token and
 * repeatedly exchanges the token it holds (possibly 0) into the fd. If set
 * is a single atomic exchange, the tokens held plus the one in the table
 * are exactly the starting set. */
#define SHARED_FD 1234
#define EXCHANGES 200000

struct tok {
	uint32_t held;
};

static void *token_worker(void *p)
{
	struct tok *t = p;
	for (int i = 0; i < EXCHANGES; i++) {
		if (i % 3 == 2 && t->held == 0)
			t->held = uni_fd_take(SHARED_FD);
		else
			t->held = uni_fd_set(SHARED_FD, t->held);
	}
	return NULL;
}

START_TEST(test_concurrent_shared_exchange)
{
	pthread_t th[NTHREADS];
	static struct tok tk[NTHREADS];
	uint32_t seen[NTHREADS + 1];
	int nseen = 0;

	uni_fd_set(SHARED_FD, 1000);
	for (int i = 0; i < NTHREADS; i++) {
		tk[i].held = (uint32_t)i + 1;
		ck_assert_int_eq(pthread_create(&th[i], NULL, token_worker, &tk[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		if (tk[i].held)
			seen[nseen++] = tk[i].held;
	if (uni_fd_get(SHARED_FD))
		seen[nseen++] = uni_fd_get(SHARED_FD);
	/* the 9 tokens 1..8 and 1000, each exactly once */
	ck_assert_int_eq(nseen, NTHREADS + 1);
	uint64_t sum = 0;
	for (int i = 0; i < nseen; i++) {
		for (int j = i + 1; j < nseen; j++)
			ck_assert_msg(seen[i] != seen[j], "token %u duplicated", seen[i]);
		ck_assert(seen[i] == 1000 || (seen[i] >= 1 && seen[i] <= NTHREADS));
		sum += seen[i];
	}
	ck_assert_uint_eq(sum, 1000 + NTHREADS * (NTHREADS + 1) / 2);
}
END_TEST

static Suite *fdtable_suite(void)
{
	Suite *s = suite_create("fdtable");
	TCase *tc = tcase_create("basic");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_get_untracked);
	tcase_add_test(tc, test_set_returns_previous);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_take_clears);
	tcase_add_test(tc, test_reset_clears_all);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrent");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_concurrent_distinct);
	tcase_add_test(tc, test_concurrent_shared_exchange);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fdtable_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
