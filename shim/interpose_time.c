/* The program's clocks, sleeps and deadlines in virtual time (simulate
 * mode): see uni_shim_vclock in shim.h. Outside a simulated rank thread
 * every wrapper is the real call after one flag test. */
#include <errno.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define ENSURE(fn)                              \
	do {                                    \
		if (UNI_UNLIKELY(!uni_real.fn)) \
			uni_shim_ensure_init(); \
	} while (0)

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

UNI_EXTERN int clock_gettime(clockid_t clk, struct timespec *ts)
{
	ENSURE(clock_gettime);
	if (UNI_UNLIKELY(uni_shim_sync_on) && uni_shim_vclock() && uni_shim_vnow(clk, ts) == 0)
		return 0;
	return uni_real.clock_gettime(clk, ts);
}

UNI_EXTERN int gettimeofday(struct timeval *tv, void *tz)
{
	ENSURE(gettimeofday);
	struct timespec ts;
	if (UNI_UNLIKELY(uni_shim_sync_on) && uni_shim_vclock() &&
	    uni_shim_vnow(CLOCK_REALTIME, &ts) == 0) {
		tv->tv_sec = ts.tv_sec;
		tv->tv_usec = ts.tv_nsec / 1000;
		return 0;
	}
	return uni_real.gettimeofday(tv, tz);
}

UNI_EXTERN time_t time(time_t *t)
{
	ENSURE(time);
	struct timespec ts;
	if (UNI_UNLIKELY(uni_shim_sync_on) && uni_shim_vclock() && uni_shim_vnow(CLOCK_REALTIME, &ts) == 0) {
		if (t)
			*t = ts.tv_sec;
		return ts.tv_sec;
	}
	return uni_real.time(t);
}

/* Sleeps: the thread really sleeps (other processes may depend on it),
 * unless unid ends the sleep early because nothing else in the session
 * can happen before it wakes (docs/simulate.md), and its clock moves on
 * by the time it asked for. */
static int rel_sleep(const struct timespec *req, struct timespec *rem)
{
	uint64_t want = ts_ns(req), left = 0;
	if (req->tv_nsec < 0 || req->tv_nsec >= 1000000000L || req->tv_sec < 0)
		return EINVAL;
	/* "For ever" (sleep_for(seconds::max()), Duration::MAX: past any
	 * clock's range in ns): the kernel's own sleep, as without the shim. */
	if ((uint64_t)req->tv_sec > UNI_SLEEP_FOREVER_S)
		return uni_real.clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem);
	uni_shim_sleeping(1, want);
	int r = uni_shim_sleep_until(CLOCK_MONOTONIC, uni_shim_real_ns(CLOCK_MONOTONIC) + want, &left);
	uni_shim_sleeping(0, 0);
	if (r == EINTR && rem) {
		rem->tv_sec = (time_t)(left / 1000000000ull);
		rem->tv_nsec = (long)(left % 1000000000ull);
	}
	if (r == 0 || r == EINTR)
		uni_shim_idle_for(want > left ? want - left : 0);
	return r;
}

/* Record mode: a rank's sleeps are timed (real time) for the summary. */
#define REC_SLEEP(call)                                                      \
	do {                                                                 \
		if (UNI_UNLIKELY(uni_shim_rec_on) && !uni_shim_in_shim()) {   \
			uint64_t t0_ = uni_now_ns();                         \
			__typeof__(call) r_ = call;                          \
			int e_ = errno;                                      \
			uni_shim_rec_slept(uni_now_ns() - t0_);              \
			errno = e_;                                          \
			return r_;                                           \
		}                                                            \
	} while (0)

UNI_EXTERN int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
	ENSURE(clock_nanosleep);
	REC_SLEEP(uni_real.clock_nanosleep(clk, flags, req, rem));
	if (UNI_LIKELY(!uni_shim_sync_on) || !req || !uni_shim_vclock())
		return uni_real.clock_nanosleep(clk, flags, req, rem);
	if (flags & TIMER_ABSTIME) {
		struct timespec real;
		uint64_t vdl;
		if (uni_shim_deadline(clk, req, &real, &vdl) < 0)
			return uni_real.clock_nanosleep(clk, flags, req, rem);
		uint64_t left, vnow = uni_shim_thread_vt(), dl = ts_ns(&real), t0 = uni_shim_real_ns(clk);
		uni_shim_sleeping(1, vdl > vnow ? vdl - vnow : 0);
		int r = uni_shim_sleep_until(clk, dl, &left);
		uni_shim_sleeping(0, 0);
		if (r == 0)
			uni_shim_idle_until(vdl);
		else if (r == EINTR) {
			/* The time it slept is slept: a caller that retries with
			 * the same deadline (CPython does) gets nearer each time,
			 * even under a stream of signals. */
			uint64_t slept = dl - left > t0 ? dl - left - t0 : 0;
			uni_shim_idle_until(vnow + slept < vdl ? vnow + slept : vdl);
		}
		return r;
	}
	return rel_sleep(req, rem);
}

UNI_EXTERN int nanosleep(const struct timespec *req, struct timespec *rem)
{
	ENSURE(nanosleep);
	REC_SLEEP(uni_real.nanosleep(req, rem));
	if (UNI_LIKELY(!uni_shim_sync_on) || !req || !uni_shim_vclock())
		return uni_real.nanosleep(req, rem);
	int r = rel_sleep(req, rem);
	if (r) {
		errno = r;
		return -1;
	}
	return 0;
}

UNI_EXTERN int usleep(useconds_t us)
{
	ENSURE(usleep);
	REC_SLEEP(uni_real.usleep(us));
	if (UNI_LIKELY(!uni_shim_sync_on) || !uni_shim_vclock())
		return uni_real.usleep(us);
	struct timespec req = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
	int r = rel_sleep(&req, NULL);
	if (r) {
		errno = r;
		return -1;
	}
	return 0;
}

UNI_EXTERN int sem_timedwait(sem_t *sem, const struct timespec *abs)
{
	ENSURE(sem_timedwait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.sem_timedwait(sem, abs);
	int d = uni_shim_det_sem_wait(sem, 0, CLOCK_REALTIME, abs);
	if (d != -2)
		return d;
	if (uni_sem_trytake(sem)) /* never blocks: not a wait */
		return 0;
	struct uni_timed_wait w;
	uni_shim_timed_wait_begin(&w, sem, CLOCK_REALTIME, abs);
	int r = uni_real.sem_timedwait(sem, w.use), e = errno;
	uni_shim_timed_wait_end(&w, r != 0 && e == ETIMEDOUT);
	if (r == 0)
		uni_sem_take(sem);
	errno = e;
	return r;
}

UNI_EXTERN int sem_clockwait(sem_t *sem, clockid_t clk, const struct timespec *abs)
{
	ENSURE(sem_clockwait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.sem_clockwait(sem, clk, abs);
	int d = uni_shim_det_sem_wait(sem, 0, clk, abs);
	if (d != -2)
		return d;
	if (uni_sem_trytake(sem)) /* never blocks: not a wait */
		return 0;
	struct uni_timed_wait w;
	uni_shim_timed_wait_begin(&w, sem, clk, abs);
	int r = uni_real.sem_clockwait(sem, clk, w.use), e = errno;
	uni_shim_timed_wait_end(&w, r != 0 && e == ETIMEDOUT);
	if (r == 0)
		uni_sem_take(sem);
	errno = e;
	return r;
}

/* syscall(): libstdc++'s std::future and std::atomic::wait wait on futexes
 * through it, with absolute deadlines for FUTEX_WAIT_BITSET. Everything
 * else is forwarded untouched (six argument words, as glibc's own
 * syscall() reads them). */
UNI_EXTERN long syscall(long n, ...)
{
	ENSURE(syscall);
	va_list ap;
	va_start(ap, n);
	long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
	long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
	va_end(ap);
	if (UNI_UNLIKELY(uni_shim_sync_on) && n == SYS_futex && a4 &&
	    (a2 & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET && uni_shim_vclock()) {
		clockid_t clk = (a2 & FUTEX_CLOCK_REALTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC;
		struct timespec real;
		uint64_t vdl;
		if (uni_shim_deadline(clk, (const struct timespec *)a4, &real, &vdl) == 0) {
			long r = uni_real.syscall(n, a1, a2, a3, (long)&real, a5, a6);
			if (r < 0 && errno == ETIMEDOUT) {
				uni_shim_idle_until(vdl);
				errno = ETIMEDOUT;
			}
			return r;
		}
	}
	return uni_real.syscall(n, a1, a2, a3, a4, a5, a6);
}
