/* Deterministic mode's probe (test_det.sh): threads of a rank that race
 * for a mutex, hand work on through a condition variable, sleep, and are
 * joined. NT workers each take the mutex K times after a stretch of
 * compute whose length depends on the worker and the round, and log who
 * took it and the (virtual) clock then; the main thread waits on a
 * condition variable (with a time-out) until the log is full, then joins
 * them. Which worker takes the mutex first is the host's decision without
 * the turn, the virtual clocks' with it.
 *
 * Prints "order: " and the log (worker.round ...), then "in clock order:
 * yes|no N" (N: the largest step back of a logged clock, ns), "timeouts:
 * N" (the main thread's timed waits that ran out) and "end: NS" (its
 * clock at the end).
 *   detprobe */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define NT 3
#define K 24

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int who[NT * K];
static uint64_t when[NT * K];
static int nlog;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t sink;

static void work(uint64_t n)
{
	uint64_t x = 0;
	for (uint64_t i = 0; i < n; i++)
		x += i * i;
	sink = x;
}

static void *worker(void *p)
{
	int i = (int)(intptr_t)p;
	for (int j = 0; j < K; j++) {
		/* Near-equal stretches: the order of the takes is a close call. */
		work(200000 + 9000 * (uint64_t)((i * 7 + j * 5) % 11));
		pthread_mutex_lock(&m);
		who[nlog] = i * 100 + j;
		when[nlog] = now_ns();
		if (++nlog % 4 == 0 || nlog == NT * K)
			pthread_cond_signal(&cv);
		pthread_mutex_unlock(&m);
		if (j % 5 == 4)
			usleep(300);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[NT];
	for (int i = 0; i < NT; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i)) {
			perror("pthread_create");
			return 1;
		}
	int timeouts = 0;
	pthread_mutex_lock(&m);
	while (nlog < NT * K) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 2000000; /* 2 ms */
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&cv, &m, &dl) == ETIMEDOUT)
			timeouts++;
	}
	pthread_mutex_unlock(&m);
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	uint64_t back = 0;
	printf("order:");
	for (int k = 0; k < NT * K; k++) {
		printf(" %d.%d", who[k] / 100, who[k] % 100);
		if (k && when[k] < when[k - 1] && when[k - 1] - when[k] > back)
			back = when[k - 1] - when[k];
	}
	printf("\nin clock order: %s %" PRIu64 "\ntimeouts: %d\nend: %" PRIu64 "\n", back ? "no" : "yes", back,
	       timeouts, now_ns());
	return 0;
}
