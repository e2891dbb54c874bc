/* Interposed waits: the calls through which time passes between threads
 * (DESIGN section 4, "Inside a rank"). epoll_wait marks an event loop
 * (Gloo's loop thread), which carries no clock between events. */
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>

#include "shim.h"

#define ENSURE(fn)                              \
	do {                                    \
		if (UNI_UNLIKELY(!uni_real.fn)) \
			uni_shim_ensure_init(); \
	} while (0)

UNI_EXTERN int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	ENSURE(epoll_wait);
	if (!uni_shim_in_shim())
		uni_shim_epoll_enter();
	return uni_real.epoll_wait(epfd, ev, max, timeout);
}

UNI_EXTERN int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *ss)
{
	ENSURE(epoll_pwait);
	if (!uni_shim_in_shim())
		uni_shim_epoll_enter();
	return uni_real.epoll_pwait(epfd, ev, max, timeout, ss);
}

/* Condition variables and mutexes: unversioned definitions receive the
 * GLIBC_2.3.2 calls of libstdc++ and libgloo (research/interposition.md
 * section 8) and forward to the 2.3.2 originals. */

UNI_EXTERN int pthread_cond_signal(pthread_cond_t *cv)
{
	ENSURE(cond_signal);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim())
		uni_shim_cond_signal(cv);
	return uni_real.cond_signal(cv);
}

UNI_EXTERN int pthread_cond_broadcast(pthread_cond_t *cv)
{
	ENSURE(cond_broadcast);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim())
		uni_shim_cond_signal(cv);
	return uni_real.cond_broadcast(cv);
}

#define WAIT_WRAP(fn, call)                                              \
	do {                                                             \
		ENSURE(fn);                                              \
		if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim()) \
			return call;                                     \
		uint32_t tok_ = uni_shim_cond_wait_begin(cv, m);         \
		int r_ = call;                                           \
		uni_shim_cond_wait_end(cv, m, tok_);                     \
		return r_;                                               \
	} while (0)

/* A timed wait whose deadline the thread computed from a virtual clock:
 * give the kernel the real deadline; a time-out leaves the thread's clock
 * at the virtual deadline. */
#define TIMED_WAIT_WRAP(fn, clk, call_with)                                           \
	do {                                                                          \
		ENSURE(fn);                                                           \
		if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())              \
			return call_with(ts);                                         \
		struct timespec real_;                                                \
		uint64_t vdl_ = 0;                                                    \
		const struct timespec *use_ = ts;                                     \
		if (uni_shim_vclock() && uni_shim_deadline(clk, ts, &real_, &vdl_) == 0) \
			use_ = &real_;                                                \
		else                                                                  \
			vdl_ = 0;                                                     \
		uint32_t tok_ = uni_shim_cond_wait_begin(cv, m);                      \
		int r_ = call_with(use_);                                             \
		uni_shim_cond_wait_end(cv, m, tok_);                                  \
		if (r_ == ETIMEDOUT && vdl_)                                          \
			uni_shim_idle_until(vdl_);                                    \
		return r_;                                                            \
	} while (0)

UNI_EXTERN int pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m)
{
	WAIT_WRAP(cond_wait, uni_real.cond_wait(cv, m));
}

/* glibc keeps a condvar's clock in bit 1 of __wrefs (nptl
 * pthread_cond_common.c: "Bit 1 is the clock ID (0 == CLOCK_REALTIME,
 * 1 == CLOCK_MONOTONIC)"), set by pthread_condattr_setclock. */
static clockid_t cond_clock(const pthread_cond_t *cv)
{
	return (__atomic_load_n(&cv->__data.__wrefs, __ATOMIC_RELAXED) & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

UNI_EXTERN int pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m, const struct timespec *ts)
{
#define CALL(t) uni_real.cond_timedwait(cv, m, t)
	TIMED_WAIT_WRAP(cond_timedwait, cond_clock(cv), CALL);
#undef CALL
}

UNI_EXTERN int pthread_cond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk,
				      const struct timespec *ts)
{
#define CALL(t) uni_real.cond_clockwait(cv, m, clk, t)
	TIMED_WAIT_WRAP(cond_clockwait, clk, CALL);
#undef CALL
}

UNI_EXTERN int pthread_mutex_lock(pthread_mutex_t *m)
{
	ENSURE(mutex_lock);
	int r = uni_real.mutex_lock(m);
	if (UNI_UNLIKELY(uni_shim_sync_on) && r == 0 && !uni_shim_in_shim())
		uni_shim_mutex_locked(m);
	return r;
}

UNI_EXTERN int pthread_mutex_trylock(pthread_mutex_t *m)
{
	ENSURE(mutex_trylock);
	int r = uni_real.mutex_trylock(m);
	if (UNI_UNLIKELY(uni_shim_sync_on) && r == 0 && !uni_shim_in_shim())
		uni_shim_mutex_locked(m);
	return r;
}

UNI_EXTERN int pthread_mutex_unlock(pthread_mutex_t *m)
{
	ENSURE(mutex_unlock);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim())
		uni_shim_mutex_unlocking(m);
	return uni_real.mutex_unlock(m);
}
