/* Wake-ups through semaphores, pipes and eventfds carry virtual time
 * (docs/simulate.md, "Inside a rank"). Run as a rank under unirun in
 * simulate mode. For each primitive a second thread sleeps 200 ms (exact
 * idle time in virtual time) and then posts / writes; the main thread, which
 * was waiting, reads its clock after the wake-up. Prints one line per
 * primitive:
 *   KIND waiter_before_ms waiter_after_ms poster_at_ms
 * where poster_at is the poster's clock just before it posted. With the
 * wake-up carrying time, waiter_after >= poster_at; without, the waiter's
 * clock stays near waiter_before. Also a semaphore posted twice by two
 * threads at different times and waited for twice: the first wait takes
 * the earlier post ("sem2" line: first_ms second_ms early_post_ms
 * late_post_ms). A thread that sleeps 300 ms and ends, joined by the main
 * thread ("join" line: before_ms after_ms ended_ms; after >= ended), and
 * the same with the GNU joins: tryjoin polled until the thread ended
 * ("tryjoin"), timedjoin with a deadline 10 s away ("timedjoin"),
 * clockjoin (CLOCK_MONOTONIC) with a deadline 10 s away ("clockjoin"), and
 * a timedjoin of a thread that waits on a raw futex past a deadline
 * 4 s away ("jointimeout" line: before_ms after_ms rc; virtual after =
 * before + 4000, rc = ETIMEDOUT; longer than unid's deadlock detector
 * waits, which must not take a wait that ends by itself for a deadlock). Last, compute that enters no wrapper (arithmetic) right
 * before a usleep of 50 ms in a new thread (the sleep is its first call
 * into the shim): "sleep" line: virtual_ms cpu_ms, from its creation to
 * after the sleep, and its CPU time (read after, so that no read comes
 * between the compute and the sleep); virtual = cpu x slowdown + 50. And a
 * thread that computes (arithmetic), posts a semaphore the main thread
 * waits on, computes again and posts again ("semc" line: the waiter's
 * clock after each wait): each post hands on the poster's clock by its
 * position among its events, no event of its own, and both posts have the
 * same position (test sim-chan replays them under another slowdown).
 * The same through a socket pair ("sockpair": the main thread reads one
 * end after writing a byte on it, which is the other end's to read).
 * Last, an object with a mutex and a condition variable (a c10d Work's
 * shape): a thread sleeps 300 ms, signals under the mutex, then (for
 * "stale new") destroys the condition variable and makes a new object in
 * the same memory; the main thread, told on a raw futex, then locks the
 * mutex ("stale KIND before_ms after_ms signal_ms"): the same object
 * hands the signaller's time on (after >= signal), a new object made
 * where the old one was does not (after - before < 1 ms). */
#include <errno.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static sem_t sem, sem2, sem3;
static int pfd[2], efd;
static double posted_at, early_at, late_at;

static void *post_sem(void *arg)
{
	(void)arg;
	sleep_ms(200);
	posted_at = now_ms();
	sem_post(&sem);
	return NULL;
}

static void *write_pipe(void *arg)
{
	(void)arg;
	sleep_ms(200);
	posted_at = now_ms();
	if (write(pfd[1], "x", 1) != 1)
		abort();
	return NULL;
}

/* A socket pair (each end a channel of what it writes): the main thread
 * wrote a byte on its end before; it reads the other end's. */
static int spfd[2];

static void *write_sockpair(void *arg)
{
	(void)arg;
	sleep_ms(200);
	posted_at = now_ms();
	if (write(spfd[1], "x", 1) != 1)
		abort();
	return NULL;
}

static void *write_eventfd(void *arg)
{
	(void)arg;
	uint64_t one = 1;
	sleep_ms(200);
	posted_at = now_ms();
	if (write(efd, &one, 8) != 8)
		abort();
	return NULL;
}

static atomic_int posted; /* posts made: a futex word */

static void note_posted(void)
{
	atomic_fetch_add(&posted, 1);
	syscall(SYS_futex, &posted, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void *post_early(void *arg)
{
	(void)arg;
	sleep_ms(100);
	early_at = now_ms();
	sem_post(&sem2);
	note_posted();
	return NULL;
}

static void *post_late(void *arg)
{
	(void)arg;
	sleep_ms(400);
	late_at = now_ms();
	sem_post(&sem2);
	note_posted();
	return NULL;
}

static double ended_at;

static atomic_int det_done;

static void *detached_sleeper(void *arg)
{
	(void)arg;
	sleep_ms(500);
	atomic_store(&det_done, 1);
	syscall(SYS_futex, &det_done, FUTEX_WAKE, 1, NULL, NULL, 0);
	return NULL;
}

static void *noop(void *arg)
{
	return arg;
}

static void *sleep_then_end(void *arg)
{
	(void)arg;
	sleep_ms(300);
	ended_at = now_ms();
	return NULL;
}

static atomic_int hold = 1; /* a futex word: the held thread waits while 1 */

static void *held(void *arg)
{
	(void)arg;
	while (atomic_load(&hold))
		syscall(SYS_futex, &hold, FUTEX_WAIT, 1, NULL, NULL, 0);
	return NULL;
}

static struct timespec in_ms(clockid_t clk, int ms)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* The GNU joins of a thread that sleeps 300 ms and ends. */
static void gnu_join(const char *kind)
{
	pthread_t j;
	double j0 = now_ms();
	int r;
	if (pthread_create(&j, NULL, sleep_then_end, NULL))
		abort();
	if (!strcmp(kind, "tryjoin")) {
		/* Between tries a raw futex wait of 5 ms: real time that
		 * carries no virtual time and burns no CPU (spinning would be
		 * charged as compute, about the thread's 300 ms). */
		static atomic_int never;
		struct timespec five = {0, 5000000};
		while ((r = pthread_tryjoin_np(j, NULL)) == EBUSY)
			syscall(SYS_futex, &never, FUTEX_WAIT, 0, &five, NULL, 0);
	} else if (!strcmp(kind, "timedjoin")) {
		struct timespec dl = in_ms(CLOCK_REALTIME, 10000);
		r = pthread_timedjoin_np(j, NULL, &dl);
	} else {
		struct timespec dl = in_ms(CLOCK_MONOTONIC, 10000);
		r = pthread_clockjoin_np(j, NULL, CLOCK_MONOTONIC, &dl);
	}
	if (r)
		abort();
	printf("%s %.3f %.3f %.3f\n", kind, j0, now_ms(), ended_at);
}

static void run(const char *kind, void *(*fn)(void *), int (*wait_fn)(void))
{
	pthread_t th;
	double before = now_ms();
	if (pthread_create(&th, NULL, fn, NULL))
		abort();
	if (wait_fn())
		abort();
	double after = now_ms();
	pthread_join(th, NULL);
	printf("%s %.3f %.3f %.3f\n", kind, before, after, posted_at);
	fflush(stdout);
}

static int wait_sem(void)
{
	return sem_wait(&sem);
}

static int read_pipe(void)
{
	char c;
	return read(pfd[0], &c, 1) == 1 ? 0 : -1;
}

static int read_sockpair(void)
{
	char c;
	return read(spfd[0], &c, 1) == 1 ? 0 : -1;
}

static int read_eventfd(void)
{
	uint64_t v;
	return read(efd, &v, 8) == 8 ? 0 : -1;
}

static double slept_at, slept_cpu;

static void *compute_then_sleep(void *arg)
{
	(void)arg;
	volatile uint64_t acc = 1;
	for (uint64_t i = 0; i < 200000000ull; i++)
		acc = acc * 6364136223846793005ull + i;
	usleep(50000);
	slept_at = now_ms();
	struct timespec c;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
	slept_cpu = (double)c.tv_sec * 1e3 + (double)c.tv_nsec / 1e6;
	return NULL;
}

static void *compute_then_post(void *arg)
{
	(void)arg;
	volatile uint64_t acc = 1;
	for (uint64_t i = 0; i < 60000000ull; i++)
		acc = acc * 6364136223846793005ull + i;
	sem_post(&sem3);
	for (uint64_t i = 0; i < 60000000ull; i++)
		acc = acc * 6364136223846793005ull + i;
	sem_post(&sem3);
	return NULL;
}

static struct {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int flag;
} obj = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
static atomic_int obj_done;
static double obj_signal_at;

static void *signal_then_remake(void *arg)
{
	sleep_ms(300);
	pthread_mutex_lock(&obj.m);
	obj.flag = 1;
	obj_signal_at = now_ms();
	pthread_cond_signal(&obj.cv);
	pthread_mutex_unlock(&obj.m);
	if (arg) { /* the object goes; a new one is made in its memory */
		pthread_cond_destroy(&obj.cv);
		pthread_mutex_destroy(&obj.m);
		pthread_mutex_init(&obj.m, NULL);
		pthread_cond_init(&obj.cv, NULL);
		obj.flag = 0;
	}
	atomic_store(&obj_done, 1);
	syscall(SYS_futex, &obj_done, FUTEX_WAKE, 1, NULL, NULL, 0);
	return NULL;
}

static int stale(const char *kind, int remake)
{
	pthread_t t;
	atomic_store(&obj_done, 0);
	if (pthread_create(&t, NULL, signal_then_remake, remake ? &obj : NULL))
		return 1;
	while (!atomic_load(&obj_done))
		syscall(SYS_futex, &obj_done, FUTEX_WAIT, 0, NULL, NULL, 0);
	double before = now_ms();
	pthread_mutex_lock(&obj.m);
	double after = now_ms();
	pthread_mutex_unlock(&obj.m);
	printf("stale %s %.3f %.3f %.3f\n", kind, before, after, obj_signal_at);
	return pthread_join(t, NULL);
}

int main(void)
{
	if (sem_init(&sem, 0, 0) || sem_init(&sem2, 0, 0) || sem_init(&sem3, 0, 0) || pipe(pfd) ||
	    (efd = eventfd(0, 0)) < 0)
		return 1;
	run("sem", post_sem, wait_sem);
	run("pipe", write_pipe, read_pipe);
	run("eventfd", write_eventfd, read_eventfd);
	/* (Its own byte, written now, is the other end's to read: the read
	 * below waits for the thread's.) */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, spfd) || write(spfd[0], "y", 1) != 1)
		return 1;
	run("sockpair", write_sockpair, read_sockpair);

	/* Two posts at 100 and 400 ms from two threads; the main thread waits
	 * after both have posted (in real time), twice. */
	pthread_t a, b;
	if (pthread_create(&a, NULL, post_early, NULL) || pthread_create(&b, NULL, post_late, NULL))
		return 1;
	/* Both posted (in real time), waited for on a raw futex, which
	 * carries no time and charges no compute (a join would carry the
	 * posters' ends: the "join" line). */
	for (int p; (p = atomic_load(&posted)) < 2;)
		syscall(SYS_futex, &posted, FUTEX_WAIT, p, NULL, NULL, 0);
	if (sem_wait(&sem2))
		return 1;
	double first = now_ms();
	if (sem_wait(&sem2))
		return 1;
	double second = now_ms();
	printf("sem2 %.3f %.3f %.3f %.3f\n", first, second, early_at, late_at);
	pthread_join(a, NULL);
	pthread_join(b, NULL);

	/* pthread_join hands the time the thread ended to the joiner. */
	pthread_t j;
	double j0 = now_ms();
	if (pthread_create(&j, NULL, sleep_then_end, NULL) || pthread_join(j, NULL))
		return 1;
	printf("join %.3f %.3f %.3f\n", j0, now_ms(), ended_at);
	gnu_join("tryjoin");
	gnu_join("timedjoin");
	gnu_join("clockjoin");
	/* A join that times out (virtual deadline): the joiner is at it. */
	pthread_t h;
	if (pthread_create(&h, NULL, held, NULL))
		return 1;
	double h0 = now_ms();
	struct timespec hdl = in_ms(CLOCK_REALTIME, 4000);
	int hr = pthread_timedjoin_np(h, NULL, &hdl);
	printf("jointimeout %.3f %.3f %d\n", h0, now_ms(), hr == ETIMEDOUT);
	atomic_store(&hold, 0);
	syscall(SYS_futex, &hold, FUTEX_WAKE, 1, NULL, NULL, 0);
	pthread_join(h, NULL);

	/* A detached thread ends 500 ms later; threads created after it
	 * (glibc reuses its pthread_t) and joined must not hand its end on. */
	pthread_attr_t at;
	pthread_t d;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&d, &at, detached_sleeper, NULL))
		return 1;
	while (!atomic_load(&det_done))
		syscall(SYS_futex, &det_done, FUTEX_WAIT, 0, NULL, NULL, 0);
	double worst = 0;
	for (int i = 0; i < 50; i++) {
		pthread_t e;
		double before = now_ms();
		if (pthread_create(&e, NULL, noop, NULL) || pthread_join(e, NULL))
			return 1;
		if (now_ms() - before > worst)
			worst = now_ms() - before;
	}
	printf("detached %.3f\n", worst);

	/* A new thread whose first call into the shim is the sleep. */
	pthread_t c;
	double v0 = now_ms();
	if (pthread_create(&c, NULL, compute_then_sleep, NULL))
		return 1;
	pthread_join(c, NULL);
	double v1 = slept_at, cpu = slept_cpu;
	printf("sleep %.3f %.3f\n", v1 - v0, cpu);

	pthread_t p;
	if (pthread_create(&p, NULL, compute_then_post, NULL) || sem_wait(&sem3))
		return 1;
	double w1 = now_ms();
	if (sem_wait(&sem3))
		return 1;
	printf("semc %.3f %.3f\n", w1, now_ms());
	pthread_join(p, NULL);
	return stale("same", 0) || stale("new", 1);
}
