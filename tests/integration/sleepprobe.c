/* Sleeps and timed waits in virtual time (docs/simulate.md, "The
 * program's clock"), as one rank under unirun in simulate mode:
 *   sleepprobe forever     nanosleep({LONG_MAX, 0}) (what sleep_for(
 *                          seconds::max()) passes), interrupted after
 *                          200 ms by a signal: prints "forever RC ERRNO
 *                          BEFORE_MS AFTER_MS"; must be -1 EINTR with the
 *                          clock not moved back (it returned 0 at once and
 *                          the clock went back 1 s: the ns overflowed)
 *   sleepprobe first       a new thread whose first call into the shim is
 *                          a 300 ms nanosleep sets a flag; the main thread
 *                          sleeps 5 s: prints "first FLAG" after it, must
 *                          be 1 (the thread's sleep was unseen by unid,
 *                          which ended the main thread's sleep first)
 *   sleepprobe condslice   pthread_cond_timedwait (CLOCK_MONOTONIC) 3 s
 *                          ahead, never signalled: prints "condslice RC
 *                          ELAPSED_MS": ETIMEDOUT after 3000 ms (the 1 s
 *                          slices moved the real deadline on each time:
 *                          it never timed out)
 *   sleepprobe outside     two ranks (RANK): rank 0 waits in
 *                          sigtimedwait, which the shim does not see
 *                          (blocked outside it), for SIGUSR2 from rank 1
 *                          (10 s at most), which sleeps 100 ms first: the
 *                          sleep waits for rank 0's clock until unid
 *                          leaves it out (250 ms on); prints "outside
 *                          RANK" (unirun says virtual time stood still) */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static pthread_t g_main;
static atomic_int g_flag;

static void on_usr1(int sig)
{
	(void)sig;
}

static void *kicker(void *p)
{
	(void)p;
	struct timespec t = {0, 200000000};
	/* A real 200 ms: this thread's own sleep (virtual time does not
	 * matter here). */
	nanosleep(&t, NULL);
	pthread_kill(g_main, SIGUSR1);
	return NULL;
}

static void *first_sleeper(void *p)
{
	(void)p;
	struct timespec t = {0, 300000000};
	nanosleep(&t, NULL);
	atomic_store(&g_flag, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *kind = argc > 1 ? argv[1] : "";
	g_main = pthread_self();
	if (!strcmp(kind, "forever")) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_usr1; /* no SA_RESTART */
		sigaction(SIGUSR1, &sa, NULL);
		pthread_t k;
		pthread_create(&k, NULL, kicker, NULL);
		struct timespec t = {LONG_MAX, 0}, rem;
		double before = now_ms();
		int rc = nanosleep(&t, &rem);
		int e = errno;
		double after = now_ms();
		pthread_join(k, NULL);
		printf("forever %d %s %.3f %.3f\n", rc, e == EINTR ? "EINTR" : strerror(e), before, after);
	} else if (!strcmp(kind, "first")) {
		pthread_t s;
		pthread_create(&s, NULL, first_sleeper, NULL);
		struct timespec t = {5, 0};
		nanosleep(&t, NULL);
		printf("first %d\n", atomic_load(&g_flag));
		pthread_join(s, NULL);
	} else if (!strcmp(kind, "condslice")) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_t cv;
		pthread_cond_init(&cv, &ca);
		pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		double before = dl.tv_sec * 1e3 + dl.tv_nsec / 1e6;
		dl.tv_sec += 3;
		int rc = 0;
		pthread_mutex_lock(&m);
		while (rc == 0) /* no predicate: only the time-out ends it */
			rc = pthread_cond_timedwait(&cv, &m, &dl);
		pthread_mutex_unlock(&m);
		printf("condslice %s %.3f\n", rc == ETIMEDOUT ? "ETIMEDOUT" : strerror(rc), now_ms() - before);
	} else if (!strcmp(kind, "outside")) {
		const char *rank = getenv("RANK");
		if (rank && !strcmp(rank, "0")) {
			sigset_t set;
			sigemptyset(&set);
			sigaddset(&set, SIGUSR2);
			pthread_sigmask(SIG_BLOCK, &set, NULL);
			struct timespec ms = {0, 1000000}, t = {10, 0};
			nanosleep(&ms, NULL); /* (in the shim once: its clock counts) */
			sigtimedwait(&set, NULL, &t);
		} else {
			signal(SIGUSR2, SIG_IGN);
			struct timespec t = {0, 100000000};
			nanosleep(&t, NULL);
			kill(0, SIGUSR2); /* (the ranks' process group: rank 0) */
		}
		printf("outside %s\n", rank ? rank : "?");
	} else {
		fprintf(stderr, "usage: sleepprobe forever|first|condslice|outside\n");
		return 2;
	}
	return 0;
}
