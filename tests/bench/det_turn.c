/* What a turn point of deterministic mode adds to the compute it measures
 * (docs/benchmarks.md "Deterministic mode"). Run under unirun in simulate
 * mode, with and without --deterministic:
 *   bench_det_turn KIND N W
 * KIND lock: N rounds of W iterations of arithmetic, then a mutex lock and
 * unlock, while a second thread waits on a condition variable (so that
 * the process has two threads taking part: the lock and the unlock are
 * turn points, and the unlock's wake-up looks for a waiter); KIND clock:
 * the same with a clock read instead (a turn point with one thread).
 * Prints the virtual time and the thread's real CPU time per round:
 *   KIND: per round X us virtual, Y us CPU
 * The virtual time per round with the turn minus that without it is what
 * the shim's own work around a turn point still counts as compute. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER, m2 = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stop;
static volatile uint64_t sink;

static uint64_t ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void *idle(void *a)
{
	pthread_mutex_lock(&m2);
	while (!stop)
		pthread_cond_wait(&cv, &m2);
	pthread_mutex_unlock(&m2);
	return a;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "lock") && strcmp(argv[1], "clock"))) {
		fprintf(stderr, "usage: bench_det_turn lock|clock ROUNDS WORK\n");
		return 2;
	}
	int lock = !strcmp(argv[1], "lock"), n = atoi(argv[2]), w = atoi(argv[3]);
	pthread_t t;
	if (lock && pthread_create(&t, NULL, idle, NULL))
		return 1;
	struct timespec s = {0, 10000000}; /* (the other thread waits by now) */
	nanosleep(&s, NULL);
	uint64_t v0 = ns(CLOCK_MONOTONIC), c0 = ns(CLOCK_THREAD_CPUTIME_ID);
	for (int i = 0; i < n; i++) {
		uint64_t x = 0;
		for (int k = 0; k < w; k++)
			x += (uint64_t)k * (uint64_t)k;
		sink = x;
		if (lock) {
			pthread_mutex_lock(&m);
			pthread_mutex_unlock(&m);
		} else {
			struct timespec r;
			clock_gettime(CLOCK_MONOTONIC, &r);
		}
	}
	uint64_t v1 = ns(CLOCK_MONOTONIC), c1 = ns(CLOCK_THREAD_CPUTIME_ID);
	if (lock) {
		pthread_mutex_lock(&m2);
		stop = 1;
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&m2);
		pthread_join(t, NULL);
	}
	printf("%s: per round %.3f us virtual, %.3f us CPU\n", argv[1], (double)(v1 - v0) / n / 1e3,
	       (double)(c1 - c0) / n / 1e3);
	return 0;
}
