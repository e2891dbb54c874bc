/* Interposed waits: the calls through which time passes between threads
 * (DESIGN section 4, "Inside a rank"). epoll_wait marks an event loop
 * (Gloo's loop thread), which carries no clock between events. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

#define ENSURE(fn)                              \
	do {                                    \
		if (UNI_UNLIKELY(!uni_real.fn)) \
			uni_shim_ensure_init(); \
	} while (0)

/* A time-out in ms as ns (-1: none). */
#define MS_NS(ms) ((ms) > 0 ? (int64_t)(ms) * 1000000ll : (ms) == 0 ? 0 : -1)

/* A time-out as a timespec (ppoll, pselect) in ns (-1: none, or longer
 * than the shim takes for a sleep). */
static int64_t ts_ns(const struct timespec *ts)
{
	return !ts ? -1
	       : ts->tv_sec < 0 || (uint64_t)ts->tv_sec > UNI_SLEEP_FOREVER_S
		   ? -1
		   : (int64_t)ts->tv_sec * 1000000000ll + ts->tv_nsec;
}

/* A wait for I/O that timed out (returned 0 after a positive time-out):
 * the thread waited that long, in virtual time too (asyncio's timers
 * and Python's socket time-outs are computed from the virtual clock: a
 * time-out that left the clock where it was made asyncio.sleep wait for
 * ever). Not before every rank reached the time-out's end in virtual
 * time (docs/simulate.md, "Sleeps and connects in causal order"); then
 * the call looks again (again: the same call without a time-out), and
 * what is ready now came before the time-out's end. ns: the time-out in
 * ns (not positive: none). */
#define IO_WAIT_END(r, ns, again)                                      \
	do {                                                           \
		int e_ = errno;                                        \
		uni_shim_epoll_exit();                                 \
		if ((r) == 0 && (ns) > 0) {                            \
			if (uni_shim_io_timeout_hold((uint64_t)(ns))) \
				(r) = (again);                         \
			if ((r) == 0)                                  \
				uni_shim_io_timed_out((uint64_t)(ns)); \
			else                                           \
				e_ = errno;                            \
		}                                                      \
		errno = e_;                                            \
	} while (0)

/* The epoll set as the turn follows it (deterministic mode). */
static int epoll_made(int r)
{
	if (r >= 0 && UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		int e = errno;
		uni_shim_det_epoll_new(r);
		errno = e;
	}
	return r;
}

UNI_EXTERN int epoll_create(int size)
{
	ENSURE(epoll_create);
	return epoll_made(uni_real.epoll_create(size));
}

UNI_EXTERN int epoll_create1(int flags)
{
	ENSURE(epoll_create1);
	return epoll_made(uni_real.epoll_create1(flags));
}

UNI_EXTERN int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	ENSURE(epoll_ctl);
	int r = uni_real.epoll_ctl(epfd, op, fd, ev);
	if (r == 0 && UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		int e = errno;
		uni_shim_det_epoll_ctl(epfd, op, fd, ev);
		errno = e;
	}
	return r;
}

UNI_EXTERN int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	ENSURE(epoll_wait);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		int d = uni_shim_det_epoll(epfd, ev, max, MS_NS(timeout));
		if (d != -2)
			return d;
	}
	if (uni_shim_in_shim() || !uni_shim_epoll_enter(MS_NS(timeout)))
		return uni_real.epoll_wait(epfd, ev, max, timeout);
	int r = uni_real.epoll_wait(epfd, ev, max, timeout);
	IO_WAIT_END(r, MS_NS(timeout), uni_real.epoll_wait(epfd, ev, max, 0));
	return r;
}

UNI_EXTERN int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *ss)
{
	ENSURE(epoll_pwait);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim() && !ss) {
		int d = uni_shim_det_epoll(epfd, ev, max, MS_NS(timeout));
		if (d != -2)
			return d;
	}
	if (uni_shim_in_shim() || !uni_shim_epoll_enter(MS_NS(timeout)))
		return uni_real.epoll_pwait(epfd, ev, max, timeout, ss);
	int r = uni_real.epoll_pwait(epfd, ev, max, timeout, ss);
	IO_WAIT_END(r, MS_NS(timeout), uni_real.epoll_pwait(epfd, ev, max, 0, ss));
	return r;
}

UNI_EXTERN int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	ENSURE(poll);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		int d = uni_shim_det_poll(fds, n, MS_NS(timeout));
		if (d != -2)
			return d;
	}
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim() || !uni_shim_poll_enter(MS_NS(timeout)))
		return uni_real.poll(fds, n, timeout);
	int r = uni_real.poll(fds, n, timeout);
	IO_WAIT_END(r, MS_NS(timeout), uni_real.poll(fds, n, 0));
	return r;
}

UNI_EXTERN int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *ss)
{
	ENSURE(ppoll);
	int64_t tns = ts_ns(ts);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim() && !ss) {
		int d = uni_shim_det_poll(fds, n, tns);
		if (d != -2)
			return d;
	}
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim() || !uni_shim_poll_enter(tns))
		return uni_real.ppoll(fds, n, ts, ss);
	int r = uni_real.ppoll(fds, n, ts, ss);
	const struct timespec zero = {0, 0};
	IO_WAIT_END(r, tns, uni_real.ppoll(fds, n, &zero, ss));
	return r;
}

/* Deterministic mode: select as a poll in turn (uni_shim_det_poll: the
 * fds of the sets, read as POLLIN, written as POLLOUT, exceptions as
 * POLLPRI; back into the sets as the kernel's select reads poll's bits:
 * readable on POLLIN, POLLHUP or POLLERR, writable on POLLOUT or POLLERR).
 * -2: not followed (a set the turn does not follow, no fd: the caller's
 * own path). */
static int det_select(int n, fd_set *r, fd_set *w, fd_set *e, int64_t tns)
{
	if (n <= 0 || n > FD_SETSIZE)
		return -2;
	struct pollfd p[FD_SETSIZE];
	int k = 0;
	for (int fd = 0; fd < n; fd++) {
		short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) | (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
				   (e && FD_ISSET(fd, e) ? POLLPRI : 0));
		if (ev)
			p[k++] = (struct pollfd){.fd = fd, .events = ev};
	}
	if (!k)
		return -2;
	int d = uni_shim_det_poll(p, (nfds_t)k, tns);
	if (d < 0)
		return d;
	for (int i = 0; i < k; i++)
		if (p[i].revents & POLLNVAL) {
			errno = EBADF;
			return -1;
		}
	int cnt = 0;
	for (int i = 0; i < k; i++) {
		int fd = p[i].fd;
		short v = p[i].revents;
		if (r && FD_ISSET(fd, r) && !(v & (POLLIN | POLLHUP | POLLERR)))
			FD_CLR(fd, r);
		else if (r && FD_ISSET(fd, r))
			cnt++;
		if (w && FD_ISSET(fd, w) && !(v & (POLLOUT | POLLERR)))
			FD_CLR(fd, w);
		else if (w && FD_ISSET(fd, w))
			cnt++;
		if (e && FD_ISSET(fd, e) && !(v & POLLPRI))
			FD_CLR(fd, e);
		else if (e && FD_ISSET(fd, e))
			cnt++;
	}
	return cnt;
}

/* select and pselect outside the turn: a wait for I/O as poll's (without
 * the turn, or where the turn does not follow the sets). The sets are
 * kept for the look again after a time-out (the kernel clears them). */
static int select_common(int n, fd_set *r, fd_set *w, fd_set *e, int64_t tns, const struct timeval *tv,
			 const struct timespec *ts, const sigset_t *ss, int p)
{
	fd_set r0, w0, e0;
	if (r)
		r0 = *r;
	if (w)
		w0 = *w;
	if (e)
		e0 = *e;
	int k = p ? uni_real.pselect(n, r, w, e, ts, ss) : uni_real.select(n, r, w, e, (struct timeval *)tv);
	int err = errno;
	uni_shim_epoll_exit();
	if (k == 0 && tns > 0 && uni_shim_io_timeout_hold((uint64_t)tns)) {
		if (r)
			*r = r0;
		if (w)
			*w = w0;
		if (e)
			*e = e0;
		struct timespec zero = {0, 0};
		k = uni_real.pselect(n, r, w, e, &zero, p ? ss : NULL);
		err = errno;
	}
	if (k == 0 && tns > 0)
		uni_shim_io_timed_out((uint64_t)tns);
	errno = err;
	return k;
}

UNI_EXTERN int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	ENSURE(select);
	int64_t tns = !tv ? -1 : tv->tv_sec < 0 || (uint64_t)tv->tv_sec > UNI_SLEEP_FOREVER_S
				    ? -1
				    : (int64_t)tv->tv_sec * 1000000000ll + (int64_t)tv->tv_usec * 1000ll;
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		int d = det_select(n, r, w, e, tns);
		if (d != -2) {
			if (d == 0 && tv) /* (the time left, as Linux's select says it) */
				tv->tv_sec = tv->tv_usec = 0;
			return d;
		}
	}
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim() || !uni_shim_poll_enter(tns))
		return uni_real.select(n, r, w, e, tv);
	return select_common(n, r, w, e, tns, tv, NULL, NULL, 0);
}

UNI_EXTERN int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *ss)
{
	ENSURE(pselect);
	int64_t tns = ts_ns(ts);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim() && !ss) {
		int d = det_select(n, r, w, e, tns);
		if (d != -2)
			return d;
	}
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim() || !uni_shim_poll_enter(tns))
		return uni_real.pselect(n, r, w, e, ts, ss);
	return select_common(n, r, w, e, tns, NULL, ts, ss, 1);
}

/* Semaphores, pipes and eventfds carry time too (chan.c). */

UNI_EXTERN int sem_init(sem_t *sem, int pshared, unsigned value)
{
	ENSURE(sem_init);
	int r = uni_real.sem_init(sem, pshared, value);
	if (r == 0 && uni_shim_sync_on)
		uni_tq_forget((uintptr_t)sem); /* a new one where an old one was */
	return r;
}

UNI_EXTERN int sem_post(sem_t *sem)
{
	ENSURE(sem_post);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		uni_shim_det_sem_post(sem, 0);
		uint64_t t = uni_shim_thread_vt();
		uni_tq_push((uintptr_t)sem, 1, t, uni_shim_signal(sem, t));
		uni_shim_wake_floors(sem, t);
		int r = uni_real.sem_post(sem), e = errno;
		uni_shim_det_sem_post(sem, 1);
		errno = e;
		return r;
	}
	return uni_real.sem_post(sem);
}

UNI_EXTERN int sem_wait(sem_t *sem)
{
	ENSURE(sem_wait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.sem_wait(sem);
	int d = uni_shim_det_sem_wait(sem, 0, CLOCK_REALTIME, NULL);
	if (d != -2)
		return d;
	if (uni_sem_trytake(sem)) /* never blocks: not a wait */
		return 0;
	int began = uni_shim_object_wait(1, sem);
	int r = uni_real.sem_wait(sem);
	int e = errno;
	if (began)
		uni_shim_object_wait(0, NULL);
	if (r == 0)
		uni_sem_take(sem);
	errno = e;
	return r;
}

UNI_EXTERN int sem_trywait(sem_t *sem)
{
	ENSURE(sem_trywait);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim()) {
		int d = uni_shim_det_sem_wait(sem, 1, CLOCK_REALTIME, NULL);
		if (d != -2)
			return d;
	}
	int r = uni_real.sem_trywait(sem);
	if (r == 0 && UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim())
		uni_sem_take(sem);
	return r;
}

UNI_EXTERN int pipe(int fds[2])
{
	ENSURE(pipe);
	int r = uni_real.pipe(fds);
	if (r == 0 && UNI_UNLIKELY(uni_shim_sync_on))
		uni_chan_new(fds[0], fds[1], 1);
	return r;
}

UNI_EXTERN int pipe2(int fds[2], int flags)
{
	ENSURE(pipe2);
	int r = uni_real.pipe2(fds, flags);
	if (r == 0 && UNI_UNLIKELY(uni_shim_sync_on))
		uni_chan_new(fds[0], fds[1], 1);
	return r;
}

/* A pair of connected UNIX sockets: a channel each way (chan.c), as a
 * pipe is one. */
UNI_EXTERN int socketpair(int domain, int type, int protocol, int fds[2])
{
	ENSURE(socketpair);
	int r = uni_real.socketpair(domain, type, protocol, fds);
	if (r == 0 && UNI_UNLIKELY(uni_shim_sync_on) && domain == AF_UNIX)
		uni_chan_pair(fds[0], fds[1]);
	return r;
}

UNI_EXTERN int eventfd(unsigned initval, int flags)
{
	ENSURE(eventfd);
	int fd = uni_real.eventfd(initval, flags);
	if (fd >= 0 && UNI_UNLIKELY(uni_shim_sync_on))
		uni_chan_new(fd, -1, (flags & EFD_SEMAPHORE) ? 3 : 2);
	return fd;
}

/* Condition variables and mutexes: unversioned definitions receive the
 * GLIBC_2.3.2 calls of libstdc++ and libgloo (research/interposition.md
 * section 8) and forward to the 2.3.2 originals. */

UNI_EXTERN int pthread_cond_signal(pthread_cond_t *cv)
{
	ENSURE(cond_signal);
	if (UNI_UNLIKELY(uni_shim_sync_on))
		uni_shim_det_signal(cv, 0);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim() && uni_shim_cond_signal(cv))
		return uni_real.cond_broadcast(cv); /* see uni_shim_cond_signal */
	return uni_real.cond_signal(cv);
}

UNI_EXTERN int pthread_cond_broadcast(pthread_cond_t *cv)
{
	ENSURE(cond_broadcast);
	if (UNI_UNLIKELY(uni_shim_sync_on))
		uni_shim_det_signal(cv, 1);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim())
		uni_shim_cond_signal(cv);
	return uni_real.cond_broadcast(cv);
}

/* A condition variable goes (std::condition_variable's destructor): what
 * the shim keeps by its address is forgotten, so that an object made
 * there later does not find it. */
UNI_EXTERN int pthread_cond_destroy(pthread_cond_t *cv)
{
	ENSURE(cond_destroy);
	if (UNI_UNLIKELY(uni_shim_sync_on))
		uni_shim_cond_destroyed(cv);
	return uni_real.cond_destroy(cv);
}

UNI_EXTERN int pthread_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m)
{
	ENSURE(cond_wait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.cond_wait(cv, m);
	int d = uni_shim_det_cond_wait(cv, m, 0, NULL);
	if (d >= 0)
		return d;
	return uni_shim_cond_wait(cv, m, 0, 0, NULL);
}

/* glibc keeps a condvar's clock in bit 1 of __wrefs (nptl
 * pthread_cond_common.c: "Bit 1 is the clock ID (0 == CLOCK_REALTIME,
 * 1 == CLOCK_MONOTONIC)"), set by pthread_condattr_setclock. */
clockid_t uni_cond_clock(const pthread_cond_t *cv)
{
	return (__atomic_load_n(&cv->__data.__wrefs, __ATOMIC_RELAXED) & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

UNI_EXTERN int pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m, const struct timespec *ts)
{
	ENSURE(cond_timedwait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.cond_timedwait(cv, m, ts);
	int d = uni_shim_det_cond_wait(cv, m, uni_cond_clock(cv), ts);
	if (d >= 0)
		return d;
	return uni_shim_cond_wait(cv, m, 1, uni_cond_clock(cv), ts);
}

UNI_EXTERN int pthread_cond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk,
				      const struct timespec *ts)
{
	ENSURE(cond_clockwait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.cond_clockwait(cv, m, clk, ts);
	int d = uni_shim_det_cond_wait(cv, m, clk, ts);
	if (d >= 0)
		return d;
	return uni_shim_cond_wait(cv, m, 2, clk, ts);
}

UNI_EXTERN int pthread_mutex_lock(pthread_mutex_t *m)
{
	ENSURE(mutex_lock);
	int r = UNI_UNLIKELY(uni_shim_sync_on) ? uni_shim_det_mutex_lock(m, 0) : -1;
	if (r < 0)
		r = uni_real.mutex_lock(m);
	if (UNI_UNLIKELY(uni_shim_sync_on) && r == 0 && !uni_shim_in_shim())
		uni_shim_mutex_locked(m);
	return r;
}

UNI_EXTERN int pthread_mutex_trylock(pthread_mutex_t *m)
{
	ENSURE(mutex_trylock);
	int r = UNI_UNLIKELY(uni_shim_sync_on) ? uni_shim_det_mutex_lock(m, 1) : -1;
	if (r < 0)
		r = uni_real.mutex_trylock(m);
	if (UNI_UNLIKELY(uni_shim_sync_on) && r == 0 && !uni_shim_in_shim())
		uni_shim_mutex_locked(m);
	return r;
}

UNI_EXTERN int pthread_mutex_unlock(pthread_mutex_t *m)
{
	ENSURE(mutex_unlock);
	if (UNI_UNLIKELY(uni_shim_sync_on) && !uni_shim_in_shim())
		uni_shim_mutex_unlocking(m);
	int r = uni_real.mutex_unlock(m);
	if (UNI_UNLIKELY(uni_shim_sync_on))
		uni_shim_det_mutex_unlocked(m);
	return r;
}

/* Barriers: a wait the turn does not follow yet (deterministic mode: the
 * thread waits outside the turn; otherwise the real call). */
UNI_EXTERN int pthread_barrier_wait(pthread_barrier_t *b)
{
	ENSURE(barrier_wait);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.barrier_wait(b);
	uni_shim_det_outside(1);
	int r = uni_real.barrier_wait(b);
	uni_shim_det_outside(0);
	return r;
}

/* Threads: a new thread starts at its creator's virtual clock, as if the
 * creator had handed it work (without this, a thread created late in a run
 * would start at 0 and send "in the past"). */
struct uni_tramp {
	void *(*fn)(void *);
	void *arg;
	uint64_t vt;
	void *ring;
	uint64_t src;
	uint64_t key;
};

static void *uni_tramp_start(void *p)
{
	struct uni_tramp t = *(struct uni_tramp *)p;
	free(p);
	uni_shim_thread_begin(t.vt, t.ring, t.src, t.key);
	return t.fn(t.arg);
}

/* pthread_join hands the time the thread ended to the joiner (simulate
 * mode): a C program that joins its workers (nccl-tests with -t, a
 * std::thread) goes on after their work, not at its own clock. */
UNI_EXTERN int pthread_join(pthread_t th, void **ret)
{
	ENSURE(pthread_join);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.pthread_join(th, ret);
	if (uni_shim_det_join(th)) {
		int r = uni_real.pthread_join(th, ret);
		if (r == 0)
			uni_shim_joined(th);
		return r;
	}
	int began = uni_shim_object_wait(1, uni_shim_join_key(th));
	int r = uni_real.pthread_join(th, ret);
	if (began)
		uni_shim_object_wait(0, NULL);
	if (r == 0)
		uni_shim_joined(th);
	return r;
}

/* The GNU joins: the same hand-over when they join. A deadline the thread
 * computed from the virtual clock is a virtual deadline (the kernel gets
 * the real one; a join that times out leaves the joiner there, as
 * sem_timedwait does); a thread still running gives tryjoin EBUSY and no
 * time. */
static int timed_join(pthread_t th, void **ret, clockid_t clk, const struct timespec *abs, int is_clock)
{
	struct uni_timed_wait w;
	uni_shim_timed_wait_begin(&w, uni_shim_join_key(th), clk, abs);
	int r = is_clock ? uni_real.pthread_clockjoin_np(th, ret, clk, w.use)
			 : uni_real.pthread_timedjoin_np(th, ret, w.use);
	uni_shim_timed_wait_end(&w, r == ETIMEDOUT);
	if (r == 0)
		uni_shim_joined(th);
	return r;
}

UNI_EXTERN int pthread_timedjoin_np(pthread_t th, void **ret, const struct timespec *abs)
{
	ENSURE(pthread_timedjoin_np);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.pthread_timedjoin_np(th, ret, abs);
	return timed_join(th, ret, CLOCK_REALTIME, abs, 0);
}

UNI_EXTERN int pthread_clockjoin_np(pthread_t th, void **ret, clockid_t clk, const struct timespec *abs)
{
	ENSURE(pthread_clockjoin_np);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.pthread_clockjoin_np(th, ret, clk, abs);
	return timed_join(th, ret, clk, abs, 1);
}

UNI_EXTERN int pthread_tryjoin_np(pthread_t th, void **ret)
{
	ENSURE(pthread_tryjoin_np);
	int r = uni_real.pthread_tryjoin_np(th, ret);
	if (UNI_UNLIKELY(uni_shim_sync_on) && r == 0 && !uni_shim_in_shim())
		uni_shim_joined(th);
	return r;
}

/* A thread of CUDA's libraries (uni_shim_cuda_creator): the device's, not
 * the program's. Every call of it goes straight through, as the shim's
 * own threads' do: no clock, no part in the turn (in deterministic mode
 * the runtime's thread that runs host functions waited for the turn that
 * a program thread held while it synchronised with that stream). */
struct uni_dev_tramp {
	void *(*fn)(void *);
	void *arg;
};

static void *uni_dev_tramp_start(void *p)
{
	struct uni_dev_tramp t = *(struct uni_dev_tramp *)p;
	free(p);
	uni_shim_device_thread();
	/* (Here too: a detached thread's pthread_t may be another's by the
	 * time its creator says so.) */
	uni_shim_device_created(pthread_self());
	return t.fn(t.arg);
}

UNI_EXTERN int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	ENSURE(pthread_create);
	if (UNI_LIKELY(!uni_shim_sync_on))
		return uni_real.pthread_create(th, attr, fn, arg);
	/* (Also while the caller is in the shim: CUDA calls of the shim's own,
	 * CUPTI's start, make CUDA's threads too. The shim's threads are made
	 * with the real pthread_create.) */
	if (UNI_UNLIKELY(uni_shim_cuda_creator(__builtin_return_address(0)))) {
		struct uni_dev_tramp *d = malloc(sizeof(*d));
		if (!d)
			return EAGAIN;
		*d = (struct uni_dev_tramp){fn, arg};
		int r = uni_real.pthread_create(th, attr, uni_dev_tramp_start, d), detached = 0;
		if (r)
			free(d);
		else if (!attr || pthread_attr_getdetachstate(attr, &detached) != 0 ||
			 detached != PTHREAD_CREATE_DETACHED)
			uni_shim_device_created(*th); /* (joinable: not reused before its join) */
		return r;
	}
	if (uni_shim_in_shim())
		return uni_real.pthread_create(th, attr, fn, arg);
	struct uni_tramp *t = malloc(sizeof(*t));
	if (!t)
		return uni_real.pthread_create(th, attr, fn, arg);
	t->fn = fn;
	t->arg = arg;
	uni_shim_det_turn();
	t->vt = uni_shim_thread_vt();
	t->src = uni_shim_signal(t, t->vt);
	t->key = uni_shim_child_key();
	t->ring = uni_shim_thread_prepare(t->vt, t->key);
	void *ring = t->ring;
	int r = uni_real.pthread_create(th, attr, uni_tramp_start, t);
	if (r == 0)
		uni_shim_det_created(*th, ring != NULL); /* (t may be freed by now) */
	if (r) {
		uni_shim_thread_abandon(t->ring);
		free(t);
	}
	return r;
}
