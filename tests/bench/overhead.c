/* bench_overhead: ns per call of I/O calls on fds the shim does not model,
 * to measure what LD_PRELOAD=libunishim.so costs a program on its fast path
 * (tests/bench/run_overhead.sh runs it with and without the shim).
 *
 *   bench_overhead [RUNS [CALLS]]      defaults: 10 runs of 1000000 calls
 *
 * Measures, each as the median over RUNS runs of CALLS calls:
 *   write(/dev/null, 1 B)       one write per call
 *   read(pipe, 1 B)             one read per call; the pipe is refilled in
 *                               batches outside the timed part
 *   write+read(pipe, 1 B)       a write of 1 byte into a pipe and the read
 *                               of it back, per pair
 *   clock_gettime(MONOTONIC)    one call (vDSO, no syscall where the
 *                               clocksource allows it)
 *   pthread_mutex lock+unlock   an uncontended lock and unlock, per pair
 * The last two enter no kernel, so they time the wrappers (the shim
 * interposes them too, for simulate mode) with little noise.
 * The calls go through the PLT like any program's, so a preloaded shim's
 * write/read are the ones called.
 *
 * Times are wall-clock (CLOCK_MONOTONIC). With UNI_BENCH_CLOCK=cpu they are
 * this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) instead, which leaves out
 * the time the thread sat descheduled: steadier on a busy machine, and
 * still the cost of the calls, since they do not block. The first line says which object `write`
 * resolved to, so a run that was meant to be under the shim can be told
 * from one that was not. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REFILL 32768 /* bytes put into the pipe per refill (fits the default 64 KiB) */

static clockid_t g_clock = CLOCK_MONOTONIC;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(g_clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_overhead: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Each returns ns per call (or per pair) of one run of n. */

static double run_write_devnull(int fd, long n)
{
	char c = 'x';
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (write(fd, &c, 1) != 1)
			die("write(/dev/null)");
	return (double)(now_ns() - t0) / (double)n;
}

static double run_read_pipe(int rfd, int wfd, long n)
{
	static char fill[REFILL];
	char c;
	uint64_t spent = 0;
	long done = 0;
	while (done < n) {
		long batch = n - done < REFILL ? n - done : REFILL;
		/* refill, untimed: one large write */
		if (write(wfd, fill, (size_t)batch) != batch)
			die("write(pipe) refill");
		uint64_t t0 = now_ns();
		for (long i = 0; i < batch; i++)
			if (read(rfd, &c, 1) != 1)
				die("read(pipe)");
		spent += now_ns() - t0;
		done += batch;
	}
	return (double)spent / (double)n;
}

static double run_pair_pipe(int rfd, int wfd, long n)
{
	char c = 'y', d;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (write(wfd, &c, 1) != 1)
			die("write(pipe)");
		if (read(rfd, &d, 1) != 1)
			die("read(pipe)");
	}
	return (double)(now_ns() - t0) / (double)n;
}

static double run_clock(long n)
{
	struct timespec ts;
	uint64_t sink = 0;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		sink += (uint64_t)ts.tv_nsec;
	}
	uint64_t dt = now_ns() - t0;
	__asm__ volatile("" : : "r"(sink));
	return (double)dt / (double)n;
}

static double run_mutex(long n)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (pthread_mutex_lock(&m) != 0)
			die("pthread_mutex_lock");
		pthread_mutex_unlock(&m);
	}
	return (double)(now_ns() - t0) / (double)n;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 10;
	long calls = argc > 2 ? atol(argv[2]) : 1000000;
	if (runs < 1 || runs > 1000 || calls < 1) {
		fprintf(stderr, "usage: bench_overhead [RUNS [CALLS]]\n");
		return 64;
	}
	const char *ck = getenv("UNI_BENCH_CLOCK");
	if (ck && strcmp(ck, "cpu") == 0)
		g_clock = CLOCK_THREAD_CPUTIME_ID;
	else if (ck && *ck && strcmp(ck, "wall") != 0) {
		fprintf(stderr, "bench_overhead: UNI_BENCH_CLOCK is 'wall' or 'cpu', not '%s'\n", ck);
		return 64;
	}
	double *v = calloc((size_t)runs, sizeof(*v));
	if (!v)
		die("calloc");

	Dl_info di;
	ssize_t (*wp)(int, const void *, size_t) = write;
	if (dladdr((void *)wp, &di) && di.dli_fname)
		printf("write resolves to: %s\n", di.dli_fname);
	printf("clock: %s\n", g_clock == CLOCK_MONOTONIC ? "wall (CLOCK_MONOTONIC)" : "cpu (CLOCK_THREAD_CPUTIME_ID)");

	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int p[2];
	if (null < 0)
		die("open /dev/null");
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe2");

	struct {
		const char *name, *unit;
		int kind;
	} tests[] = {
		{"write(/dev/null, 1 B)", "call", 0},
		{"read(pipe, 1 B)", "call", 1},
		{"write+read(pipe, 1 B)", "pair", 2},
		{"clock_gettime(MONOTONIC)", "call", 3},
		{"pthread_mutex lock+unlock", "pair", 4},
	};
	for (size_t t = 0; t < sizeof(tests) / sizeof(tests[0]); t++) {
		for (int r = -1; r < runs; r++) { /* run -1 warms up */
			long n = r < 0 ? calls / 10 + 1 : calls;
			double x = 0;
			switch (tests[t].kind) {
			case 0: x = run_write_devnull(null, n); break;
			case 1: x = run_read_pipe(p[0], p[1], n); break;
			case 2: x = run_pair_pipe(p[0], p[1], n); break;
			case 3: x = run_clock(n); break;
			default: x = run_mutex(n); break;
			}
			if (r >= 0)
				v[r] = x;
		}
		double med = median(v, runs);
		printf("%s: %.1f ns/%s (median of %d x %ld) [min %.1f, max %.1f]\n", tests[t].name, med,
		       tests[t].unit, runs, calls, v[0], v[runs - 1]);
		fflush(stdout);
	}
	free(v);
	return 0;
}
