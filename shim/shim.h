/* The shim's core, called by the thin interpose_*.c wrappers.
 *
 * Contract for every wrapper: call the real function through real_<name>
 * (resolved once in uni_shim_ensure_init), and call into the core only for
 * fds the fd table tracks. Every core function below preserves errno and
 * may be called from any thread; none of them blocks except uni_shim_emit
 * on a full ring, and that only while unid is alive. */
#ifndef UNI_SHIM_H
#define UNI_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/time.h>
#include <time.h>
#include <signal.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fdtable.h"
#include "uni/common.h"

/* Real functions, resolved by uni_shim_ensure_init (real.c). */
struct uni_real {
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*listen)(int, int);
	int (*close)(int);
	int (*shutdown)(int, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*fcntl64)(int, int, ...);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*read_chk)(int, void *, size_t, size_t);
	ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
	int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
	int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
	int (*cond_clockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
	int (*cond_signal)(pthread_cond_t *);
	int (*cond_broadcast)(pthread_cond_t *);
	int (*cond_destroy)(pthread_cond_t *);
	int (*mutex_lock)(pthread_mutex_t *);
	int (*mutex_trylock)(pthread_mutex_t *);
	int (*mutex_unlock)(pthread_mutex_t *);
	int (*clock_gettime)(clockid_t, struct timespec *);
	int (*gettimeofday)(struct timeval *, void *);
	time_t (*time)(time_t *);
	int (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
	int (*nanosleep)(const struct timespec *, struct timespec *);
	int (*usleep)(useconds_t);
	int (*sem_timedwait)(sem_t *, const struct timespec *);
	int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
	int (*sem_wait)(sem_t *);
	int (*sem_trywait)(sem_t *);
	int (*sem_post)(sem_t *);
	int (*sem_init)(sem_t *, int, unsigned);
	int (*pipe)(int[2]);
	int (*pipe2)(int[2], int);
	int (*socketpair)(int, int, int, int[2]);
	int (*eventfd)(unsigned, int);
	long (*syscall)(long, ...);
	int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	int (*pthread_join)(pthread_t, void **);
	int (*pthread_tryjoin_np)(pthread_t, void **);
	int (*barrier_wait)(pthread_barrier_t *);
	int (*pthread_timedjoin_np)(pthread_t, void **, const struct timespec *);
	int (*pthread_clockjoin_np)(pthread_t, void **, clockid_t, const struct timespec *);
	int (*epoll_create)(int);
	int (*epoll_create1)(int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
};

extern struct uni_real uni_real UNI_HIDDEN;

/* Ok and cheap to call again; resolves every real_* pointer on the first
 * call (a library constructor may call a wrapper before ours has run). */
void uni_shim_ensure_init(void) UNI_HIDDEN;

/* True while this thread is inside the shim: a wrapper then forwards. */
int uni_shim_in_shim(void) UNI_HIDDEN;
void uni_shim_hold(int on) UNI_HIDDEN;

/* A connect() or accept() produced fd (connected or connecting). peer may
 * be NULL (it is then read with getpeername). Decides whether the
 * connection is one to report and registers it. */
void uni_shim_conn_new(int fd, const struct sockaddr *peer, socklen_t peerlen) UNI_HIDDEN;

/* Around the real call on a tracked fd (slot1 = uni_fd_get(fd)):
 * uni_shim_io_begin returns a token (record: the real start time;
 * simulate: the caller's virtual clock after charging its compute);
 * uni_shim_io_end reports the r bytes moved (r <= 0: nothing moved), with
 * the buffer as an iovec list so that Gloo's stream can be followed. */
uint64_t uni_shim_io_begin(uint32_t slot1) UNI_HIDDEN;
/* Before a read's system call (after uni_shim_io_begin). */
void uni_shim_read_begin(uint32_t slot1, int fd) UNI_HIDDEN;
/* A write with flags on a tracked fd: 1 and *ret when the shim did it (a
 * blocking write on a modelled connection in simulate mode), else 0. */
int uni_shim_send_blocking(uint32_t slot1, int fd, int flags, const struct iovec *iov, int cnt,
			   ssize_t *ret) UNI_HIDDEN;
void uni_shim_io_end(uint32_t slot1, int is_send, const struct iovec *iov, int cnt, ssize_t r,
		     uint64_t token) UNI_HIDDEN;

/* epoll_wait and friends: marks the calling thread as an event loop; while
 * it waits in it, the nic horizon leaves it out (what wakes it is I/O, and
 * a modelled read gives it the bytes' arrival). enter returns 1 when exit
 * must be called after the wait. */
int uni_shim_epoll_enter(int64_t timeout_ns) UNI_HIDDEN;
void uni_shim_epoll_exit(void) UNI_HIDDEN;
/* epoll_wait/poll/ppoll returned 0 after a time-out of ns: a thread with
 * a clock of its own (not a dispatcher, not a loop thread that has not
 * read yet other than the main one) moves it on by ns (idle time). */
void uni_shim_io_timed_out(uint64_t ns) UNI_HIDDEN;
/* Before that: such a thread waits until every rank reached the end of
 * its time-out in virtual time (as a sleep does); 1: it did, and the
 * caller looks again without a time-out (something may be ready now that
 * came before the time-out in virtual time). */
int uni_shim_io_timeout_hold(uint64_t ns) UNI_HIDDEN;
/* poll/ppoll: the same for a thread that is not an event loop (the
 * rendezvous store's threads sit in poll). */
int uni_shim_poll_enter(int64_t timeout_ns) UNI_HIDDEN;
/* nic: event loops read only final bytes. uni_shim_read_clamp gives how
 * many of n bytes a read on tracked fd (slot1) may take, or -1: none now
 * (the caller fails with EAGAIN; the loop's next epoll_wait waits for the
 * network to move first). */
extern int uni_shim_clamp_on UNI_HIDDEN;
ssize_t uni_shim_read_clamp(uint32_t slot1, int fd, size_t n, int flags) UNI_HIDDEN;

/* Wake-ups carry time (simulate mode; no-ops otherwise).
 * A signal or broadcast stamps the condition variable, and the mutex the
 * signaller holds or has just released, with the signaller's time; a
 * waiter returning from a wait takes max(own, stamp) if a signal came
 * while it waited; a thread that locks a stamped mutex takes max(own,
 * stamp): that covers a waiter that finds its predicate already true and
 * never waits. Dispatchers (event loops) never take stamps. */
int uni_shim_cond_signal(void *cv) UNI_HIDDEN;
void uni_shim_cond_destroyed(void *cv) UNI_HIDDEN;
/* Send completion (network.send_buffer): the token of the Gloo data
 * message this thread last finished writing (0: none; taking clears it);
 * the thread is (not) inside waitSend; the waiter of a completion asks
 * unid when the write completes and takes that time. */
uint64_t uni_shim_take_send_token(void) UNI_HIDDEN;
void uni_shim_waiting_send(int on) UNI_HIDDEN;
void uni_shim_send_done(uint64_t token) UNI_HIDDEN;
/* Threads of this rank waiting on obj (a condvar, semaphore or channel)
 * are counted at t by the nic horizon until they run (no-op elsewhere). */
void uni_shim_wake_floors(void *obj, uint64_t t) UNI_HIDDEN;
/* The calling thread blocks on obj (on = 1; returns 1 when it must be
 * called again with on = 0 afterwards) like a condition wait. */
int uni_shim_object_wait(int on, void *obj) UNI_HIDDEN;
/* A wait on obj that ends by itself at abs (clock clk; NULL: never), as
 * sem_timedwait or pthread_timedjoin_np do. A deadline the thread computed
 * from its virtual clock is virtual: w->use is the real one to give the
 * kernel. unid learns both deadlines (the deadlock detector does not count
 * the wait, the nic horizon counts it up to the virtual one). End: the
 * real call returned (timed_out: it said ETIMEDOUT: the thread is then at
 * its virtual deadline). Both keep errno. */
struct uni_timed_wait {
	const struct timespec *use;
	struct timespec real;
	uint64_t vdl; /* the virtual deadline, 0: none */
	int began;
};
void uni_shim_timed_wait_begin(struct uni_timed_wait *w, void *obj, clockid_t clk,
			       const struct timespec *abs) UNI_HIDDEN;
void uni_shim_timed_wait_end(struct uni_timed_wait *w, int timed_out) UNI_HIDDEN;

/* Semaphores, pipes and eventfds (chan.c). uni_tq_*: per-object queues of
 * posted amounts with their times; take consumes amount (the earliest
 * entry's unit when earliest) and returns the latest time consumed, 0 if
 * none. uni_chan_*: pipes (kind 1) and eventfds (2; 3 with
 * EFD_SEMAPHORE) created by a rank, tracked in the fd table. */
void uni_tq_push(uintptr_t key, uint64_t amount, uint64_t t, uint64_t src) UNI_HIDDEN;
uint64_t uni_tq_take(uintptr_t key, uint64_t amount, int earliest, uint64_t *src) UNI_HIDDEN;
void uni_tq_forget(uintptr_t key) UNI_HIDDEN;
void uni_chan_new(int fd0, int fd1, int kind) UNI_HIDDEN;
void uni_chan_pair(int fd0, int fd1) UNI_HIDDEN;
int uni_chan_shared(uint32_t fdent) UNI_HIDDEN;
/* The process forked (in the parent: the shim's fork handler; the child
 * forgets its channels): the channels there are now may have their other
 * end in the other process. */
void uni_chan_forked(void) UNI_HIDDEN;
void uni_chan_reset(void) UNI_HIDDEN;
void uni_chan_read(uint32_t fdent, ssize_t r) UNI_HIDDEN;
/* A write on a channel: its time is queued before the real write (a
 * reader woken by the bytes must find it) and what the write did not take
 * is withdrawn after it. */
struct iovec;
struct uni_chan_w {
	uintptr_t key;
	uint64_t amount, t, src;
	int kind;
};
void uni_chan_write_begin(struct uni_chan_w *w, uint32_t fdent, const struct iovec *iov, int cnt) UNI_HIDDEN;
void uni_chan_write_end(const struct uni_chan_w *w, ssize_t r) UNI_HIDDEN;
int uni_chan_pending(uint32_t fdent, uint64_t *t) UNI_HIDDEN;
int uni_chan_wait_begin(uint32_t fdent, int fd) UNI_HIDDEN;
void uni_chan_wait_end(int began) UNI_HIDDEN;
void uni_shim_mutex_locked(void *mutex) UNI_HIDDEN;
void uni_shim_mutex_unlocking(void *mutex) UNI_HIDDEN;
/* The program's clocks in virtual time (simulate mode; DESIGN section 4,
 * "Virtual time seen by the program"). A rank thread that has a clock (not
 * a dispatcher) reads CLOCK_MONOTONIC* and CLOCK_BOOTTIME as the session's
 * monotonic epoch + its virtual clock, CLOCK_REALTIME* as the real-time
 * epoch + its clock; sleeps advance its clock; absolute deadlines it
 * computed from virtual readings are turned back into real ones before
 * the kernel sees them. UNI_VIRTUAL_CLOCK=0 turns it off. */
int uni_shim_vclock(void) UNI_HIDDEN;
/* Virtual now for clk into ts; returns 0, or -1 when clk is not virtual. */
int uni_shim_vnow(clockid_t clk, struct timespec *ts) UNI_HIDDEN;
/* An absolute deadline on clk read in virtual time: the real deadline on
 * the same clock, and (vdl) the virtual one in ns since the epoch. Returns
 * 0, or -1 when clk is not virtual (use the deadline as it is). */
int uni_shim_deadline(clockid_t clk, const struct timespec *abs, struct timespec *real, uint64_t *vdl) UNI_HIDDEN;
/* The calling thread was idle (a sleep, a wait that timed out) until
 * virtual time t: its clock moves there, counted as idle. */
void uni_shim_idle_until(uint64_t t) UNI_HIDDEN;
/* The calling thread slept ns: its clock moves on by ns. */
void uni_shim_idle_for(uint64_t ns) UNI_HIDDEN;

/* A condition wait in simulate mode (how: 0 pthread_cond_wait, 1 timedwait,
 * 2 clockwait on clk), with the wake-up rules, virtual deadlines, and the
 * wait published for deadlock reports. Long waits are cut into 1 s slices
 * that return as spurious wake-ups (POSIX allows them; every caller
 * re-checks its predicate), so a thread blocked for good has its stack
 * captured for the report. */
int uni_shim_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, int how, clockid_t clk,
		       const struct timespec *abs) UNI_HIDDEN;
/* The calling thread sleeps (1, for ns) or stopped sleeping (0). */
void uni_shim_sleeping(int on, uint64_t ns) UNI_HIDDEN;
/* The real sleep of a thread that called uni_shim_sleeping(1, ...): until
 * the real deadline dl on clk (ns), in slices, ending early when unid
 * warps it (nothing else in the session can happen before it wakes:
 * its virtual time is the same either way). 0, or EINTR with *left the
 * real time it had left, or another clock_nanosleep error. */
int uni_shim_sleep_until(clockid_t clk, uint64_t dl, uint64_t *left) UNI_HIDDEN;
/* Before a connect to addr (simulate mode): waits until every rank
 * reached the caller's virtual time, and moves the caller's clock on to
 * the time its listener began to listen if that is later. */
void uni_shim_connect_hold(const struct sockaddr *addr, socklen_t len) UNI_HIDDEN;
/* How long a connect to the rendezvous store waits for it to listen. */
#define UNI_STORE_WAIT_NS 30000000000ull
/* fd listens, or is about to (before: called before the real listen, so
 * that whoever finds the listener in the kernel finds it in the session
 * too; an unbound fd is left for the call after): the session remembers
 * since when (simulate mode). Returns whether fd is registered. */
int uni_shim_listening(int fd, int before) UNI_HIDDEN;
/* fd, one of this process's listeners, is being closed. */
void uni_shim_listen_closed(int fd) UNI_HIDDEN;
/* Connections to the rendezvous store (simulate mode): a blocking read
 * on one is a wait for I/O. uni_shim_nstore counts them. */
extern _Atomic int uni_shim_nstore UNI_HIDDEN;
int uni_shim_store_fd(int fd) UNI_HIDDEN;
void uni_shim_store_mark(int fd, int on) UNI_HIDDEN;
/* newfd is now what oldfd is (dup): a store connection or not, one to a
 * store outside the session or not. */
void uni_shim_store_dup(int oldfd, int newfd) UNI_HIDDEN;
/* Deterministic mode, a connection to a store outside the session: a
 * write in turn (after: it wakes whoever waits for the store's answers);
 * a read: 0 as without the turn, 1 the call does not block now, -1 return
 * -1 with errno EAGAIN (shim.c). */
void uni_shim_det_ext_write(int fd, int after) UNI_HIDDEN;
int uni_shim_det_ext_read(int fd) UNI_HIDDEN;
/* Listeners this process registered (uni_shim_listening) and not closed. */
extern _Atomic int uni_shim_nlisten UNI_HIDDEN;
/* Seconds past which a sleep or an absolute deadline is "for ever"
 * (about 317 years, past any CLOCK_REALTIME date we will see; in ns still
 * below 2^64): left to the kernel as it is. */
#define UNI_SLEEP_FOREVER_S 10000000000ull
/* glibc keeps a condvar's clock in bit 1 of __wrefs. */
clockid_t uni_cond_clock(const pthread_cond_t *cv) UNI_HIDDEN;

/* pthread_create: a new thread starts at its creator's clock (simulate
 * mode). uni_shim_thread_vt is called by the creator, uni_shim_thread_begin
 * first thing in the new thread. */
uint64_t uni_shim_thread_vt(void) UNI_HIDDEN;
void uni_shim_thread_begin(uint64_t vt, void *ring, uint64_t src, uint64_t key) UNI_HIDDEN;
/* The key of the next thread the calling thread creates (--compute-from:
 * uni/compute_from.h); 0 when the caller has none. */
uint64_t uni_shim_child_key(void) UNI_HIDDEN;
/* pthread_join: the object a joiner of th waits on (an odd address, no
 * condvar's or mutex's); uni_shim_joined: the join succeeded, the joiner
 * takes the time th ended (simulate mode; the exiting thread stamps it). */
void *uni_shim_join_key(pthread_t th) UNI_HIDDEN;
void uni_shim_joined(pthread_t th) UNI_HIDDEN;
/* A semaphore wait succeeded: take the earliest post's time (chan.c). */
void uni_sem_take(void *sem) UNI_HIDDEN;
/* Takes sem if it can without blocking (and the post's time): 1, else 0.
 * A wait begins only after this failed: a thread marked waiting is left
 * out of the nic horizon (its waker's post carries the time), and one
 * whose semaphore was posted before it came (CPython's locks,
 * uncontended) runs on at its own clock. */
int uni_sem_trytake(sem_t *sem) UNI_HIDDEN;
/* Under a horizon model, and in deterministic mode, the creator claims
 * the new thread's ring (NULL: none), handed to uni_shim_thread_begin, or
 * given back if the thread could not be created. */
void *uni_shim_thread_prepare(uint64_t vt, uint64_t key) UNI_HIDDEN;
void uni_shim_thread_abandon(void *ring) UNI_HIDDEN;

/* Deterministic mode (shim/det.h; docs/simulate.md "Deterministic mode"),
 * for the wrappers; each does nothing (returns -1, or 0) outside it or for
 * a thread that takes no part:
 *   uni_shim_det_turn: a turn at the caller's clock (pthread_create);
 *   uni_shim_det_mutex_lock: the lock taken in turn (try: trylock), as
 *     pthread_mutex_lock returns;
 *   uni_shim_det_mutex_unlocked: after the real unlock (its first waiter);
 *   uni_shim_det_signal: before the real signal/broadcast (all);
 *   uni_shim_det_cond_wait: the whole wait, 0 or ETIMEDOUT (clk: the
 *     deadline's clock, abs NULL: none);
 *   uni_shim_det_join: 1: waited for the thread to end in turn (the real
 *     join follows). */
void uni_shim_det_turn(void) UNI_HIDDEN;
int uni_shim_det_mutex_lock(pthread_mutex_t *m, int try) UNI_HIDDEN;
void uni_shim_det_mutex_unlocked(pthread_mutex_t *m) UNI_HIDDEN;
void uni_shim_det_signal(pthread_cond_t *cv, int all) UNI_HIDDEN;
int uni_shim_det_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, const struct timespec *abs)
	UNI_HIDDEN;
int uni_shim_det_join(pthread_t th) UNI_HIDDEN;
void uni_shim_det_created(pthread_t th, int part) UNI_HIDDEN;
/* A blocking accept in turn: returns 1 once a connection is there (made in
 * turn by a connect), 0 where the turn does not apply. */
int uni_shim_det_accept(int fd) UNI_HIDDEN;
/* A wait the turn does not follow (on: before it; off: after): outside. */
void uni_shim_det_outside(int on) UNI_HIDDEN;
/* shutdown(SHUT_WR or SHUT_RDWR) of a modelled connection: the end of its
 * outgoing stream (readers in turn see it). */
void uni_shim_det_shutdown(int fd) UNI_HIDDEN;
/* Semaphores in turn: the wait (try: sem_trywait; abs: a deadline on clk,
 * NULL none) as sem_*wait returns (0, or -1 and errno), -2 outside the
 * turn; a post's turn before it (0) and its waiter's wake-up after it (1). */
int uni_shim_det_sem_wait(sem_t *sem, int try, clockid_t clk, const struct timespec *abs) UNI_HIDDEN;
void uni_shim_det_sem_post(sem_t *sem, int after) UNI_HIDDEN;
/* poll and epoll in turn over modelled connections, pipes and eventfds
 * of the rank, and listening sockets (timeout_ns < 0: none): as poll and
 * epoll_wait return, or -2 (another kind of fd, an epoll set with
 * edge-triggered or one-shot entries: the caller's own path).
 * uni_shim_det_epoll_ctl: after a successful epoll_ctl (the set as the
 * turn follows it); uni_shim_det_epoll_closed: fd closed;
 * uni_shim_det_polled: something a poll in turn may wait for happened
 * (a pipe written, bytes read from a connection: room to write). */
int uni_shim_det_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns) UNI_HIDDEN;
int uni_shim_det_epoll(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns) UNI_HIDDEN;
void uni_shim_det_epoll_ctl(int epfd, int op, int fd, const struct epoll_event *ev) UNI_HIDDEN;
/* A new epoll set (the turn follows only sets made while it holds: one
 * made before has entries it never saw). */
void uni_shim_det_epoll_new(int epfd) UNI_HIDDEN;
void uni_shim_det_epoll_closed(int fd) UNI_HIDDEN;
void uni_shim_det_polled(void) UNI_HIDDEN;
/* A write on a modelled connection that must not block, in turn: how many
 * bytes it may take (the turn's socket buffer; 0: EAGAIN), SIZE_MAX where
 * the turn does not apply. */
size_t uni_shim_det_room(uint32_t slot1, int fd, int flags) UNI_HIDDEN;

/* The first m bytes of an iovec list as entries of part (at most 64):
 * how many. */
static inline int uni_iov_prefix(const struct iovec *iov, int cnt, size_t m, struct iovec *part)
{
	int k = 0;
	for (int i = 0; i < cnt && m && k < 64; i++) {
		part[k] = iov[i];
		if (part[k].iov_len > m)
			part[k].iov_len = m;
		m -= part[k++].iov_len;
	}
	return k;
}
extern _Atomic int uni_shim_nep UNI_HIDDEN;
/* Deterministic mode gives up for the session (why: what it does not
 * follow yet; said once). */
void uni_shim_det_abandon(const char *why) UNI_HIDDEN;
/* 1 when a write on fd must not be held by MSG_MORE (deterministic mode,
 * fd a modelled connection). */
int uni_shim_det_nomore(int fd) UNI_HIDDEN;
/* Deterministic mode: a TCP socket bound to port 0 gets a port of the
 * turn's (the same in every run): 1 and *ret bind's result, or 0 (the
 * caller binds as asked). */
int uni_shim_det_bind(int fd, const struct sockaddr *addr, socklen_t len, int *ret) UNI_HIDDEN;
/* A listen that failed with EADDRINUSE on a port the turn gave the fd
 * (another session's too): the fd becomes a fresh socket listening on the
 * rank's next one (SO_REUSEADDR and IPV6_V6ONLY copied, no other option).
 * 0: done; else -2 (not such a port, or no port left) with errno
 * EADDRINUSE. */
int uni_shim_det_relisten(int fd, int backlog) UNI_HIDDEN;
/* Deterministic mode, Gloo's buffer waits (gloo_buffers.c): the caller
 * waits in turn on obj while none(obj) says no completion is there, at
 * most ms of virtual time (ms < 0: none). 1: one is there (or the turn
 * does not follow this wait: the caller waits as without it), 0: the
 * time-out, in virtual time. uni_shim_det_gloo_done: a completion of obj
 * at t (wakes its waiters). */
int uni_shim_det_gloo_wait(uint64_t obj, long ms, int (*none)(uint64_t obj)) UNI_HIDDEN;
void uni_shim_det_gloo_done(uint64_t obj, uint64_t t) UNI_HIDDEN;

/* Gloo's UnboundBuffer completions (shim/gloo_buffers.c): between
 * uni_shim_quiet_begin and _end the calling thread's condvar signals and
 * mutexes carry no time (the buffer's completions carry it instead).
 * completing != 0: returns the time of the completion the thread is about
 * to signal (its clock; a dispatcher's event time), 0 outside simulate
 * mode. uni_shim_take: the thread consumed a completion of time t. */
uint64_t uni_shim_quiet_begin(int completing) UNI_HIDDEN;
void uni_shim_quiet_end(void) UNI_HIDDEN;
void uni_shim_take(uint64_t t, uint64_t src) UNI_HIDDEN;
/* The calling thread hands time t on through obj (simulate mode): returns
 * the id of the SIGNAL event recording it (0: none), for unitrace replay. */
uint64_t uni_shim_signal(const void *obj, uint64_t t) UNI_HIDDEN;

/* Virtual connections for the simulated NCCL (shim/nccl.c): a connection
 * end with made-up addresses, matched by unid like a TCP one; sends and
 * reads on it are timed by the network model. All no-ops (returning 0)
 * unless simulating. vconn_open returns the connection's index + 1. */
struct uni_addr;
int uni_shim_simulating(void) UNI_HIDDEN;
/* The session's nccl.algorithm (enum uni_nccl_algo; 0 = auto) and its
 * network.default link, for the simulated NCCL's choice of algorithm. */
int uni_shim_nccl_config(uint64_t *latency_ns, double *bandwidth_bps) UNI_HIDDEN;
/* nccl.protocol (enum uni_nccl_proto; 0 auto, also outside simulate mode). */
int uni_shim_nccl_proto(void) UNI_HIDDEN;
/* nccl.ranks_per_node, and nccl.intra_node in *intra (1 and nvlink
 * outside simulate mode); uni_shim_rank: this process's rank (-1: none). */
uint32_t uni_shim_nccl_nodes(uint32_t *intra) UNI_HIDDEN;
int uni_shim_rank(void) UNI_HIDDEN;
/* devices.kernels entry i (glob into match, its slowdown): 0, or -1 past
 * the last. uni_shim_slowdown: the rank's slowdown. */
int uni_shim_kernel_rule(uint32_t i, char *match, size_t n, double *slowdown) UNI_HIDDEN;
double uni_shim_slowdown(void) UNI_HIDDEN;
/* clk read through the real clock_gettime (never the virtual one). */
uint64_t uni_shim_real_ns(clockid_t clk) UNI_HIDDEN;
/* node: the network node the end is on (a rank of the network model), or
 * -1 for this process's rank; peer_node: the peer end's (unid models the
 * sends before that end opens), -1 not known; flags: UNI_CONNF_*. */
uint32_t uni_shim_vconn_open(const struct uni_addr *local, const struct uni_addr *peer, int node,
			     int peer_node, uint32_t flags) UNI_HIDDEN;
/* The reader of virtual connection end idx1 will read its incoming stream
 * up to byte end (nic: the bytes of a connection of UNI_CONNF_CREDIT,
 * which otherwise hold the network only while a read asks for them, hold
 * it once they arrive, as a read's would). */
void uni_shim_vwant(uint32_t idx1, uint64_t end) UNI_HIDDEN;
/* on: the thread that reads on virtual connection end idx1 meets its
 * peers in real time to move an operation's data (nic: its unread
 * arrivals do not hold the network meanwhile); off: no longer. */
void uni_shim_vconn_busy(uint32_t idx1, int on) UNI_HIDDEN;
/* The session's world size as this process was given it (WORLD_SIZE). */
int uni_shim_world(void) UNI_HIDDEN;
void uni_shim_vconn_close(uint32_t idx1, uint64_t sent, uint64_t received) UNI_HIDDEN;
/* The calling thread's clock after charging its compute. */
uint64_t uni_shim_vt_charge(void) UNI_HIDDEN;
/* The same, at the start of an operation of the simulated NCCL: the
 * thread's next event is its COMPUTE record, zero-long where it had no
 * compute, so that the operation starts right after a COMPUTE (trace 1.9:
 * unitrace replay -o times the nccl_op record from there). */
uint64_t uni_shim_vt_start(void) UNI_HIDDEN;
/* len bytes at stream offset off leave at stamp; clock: the thread's
 * clock as unitrace replay counts it there (its clock at the call, then
 * the latest arrival it took), for the trace's delay record (UINT64_MAX:
 * none). */
void uni_shim_vsend(uint32_t idx1, uint64_t off, uint64_t len, uint64_t stamp, uint64_t clock) UNI_HIDDEN;
/* Waits for the first of n reads (connection idx1[i], bytes [off[i],
 * off[i] + len[i])) to become final and returns its arrival (of the last
 * byte read), with its index in *which; the others are not read (ask
 * again). Under nic the first to become final is the earliest, so a
 * caller that acts on each answer before asking again acts in
 * virtual-time order. */
uint64_t uni_shim_vrecv_any(int n, const uint32_t *idx1, const uint64_t *off, const uint64_t *len,
			    int *which, int partial) UNI_HIDDEN;
/* The same reads asked for without waiting (the simulated NCCL's timing
 * while its data moves, docs/nccl.md "While the data moves"): returns
 * the group's tag for uni_shim_vrecv_poll, _wait and _cancel (0: none
 * asked, outside simulate mode or in turn). The thread's published wait
 * is left as it is: the answer makes it count at its time until it
 * publishes a wait again, which it must do only after acting on it.
 * partial (here and in uni_shim_vrecv_any): the thread also waits for
 * reads the group leaves out (UNI_EVF_PARTIAL). */
uint32_t uni_shim_vrecv_post(int n, const uint32_t *idx1, const uint64_t *off, const uint64_t *len,
			     int partial) UNI_HIDDEN;
/* 1 when group tag (of n reads) is answered: as uni_shim_vrecv_any's. */
int uni_shim_vrecv_poll(uint32_t tag, int n, uint64_t *t, int *which) UNI_HIDDEN;
/* Waits until *w is no longer v or unid answers the calling thread (its
 * ring's answer word moves from what uni_shim_vrecv_poll saw last: a read
 * asked for with uni_shim_vrecv_post), ms at most (futex_waitv, Linux
 * 5.16): 0; -1 where the kernel has no futex_waitv or the thread no ring
 * (the caller polls instead). */
int uni_shim_wait_word_or_answer(_Atomic uint32_t *w, uint32_t v, int ms) UNI_HIDDEN;
/* The same for the n words w[i] (each while it holds v[i]; n at most
 * UNI_WAIT_WORDS_MAX), and the answer word when answer is 1. */
#define UNI_WAIT_WORDS_MAX 120
int uni_shim_wait_words(int n, _Atomic uint32_t *const *w, const uint32_t *v, int answer, int ms) UNI_HIDDEN;
/* Waits for group tag's answer (its wait as published: a peer wait, or
 * none once answered). */
uint64_t uni_shim_vrecv_wait(uint32_t tag, int n, int *which) UNI_HIDDEN;
/* Drops group tag unless answered; returns once no answer to it can come. */
void uni_shim_vrecv_cancel(uint32_t tag) UNI_HIDDEN;
/* fn(arg) is called every 100 ms while the calling thread waits for
 * unid's answer to a read (uni_shim_vrecv_any, _wait): the simulated NCCL
 * says what its timing waits for (deadlock reports); NULL: no more. */
void uni_shim_await_note(void (*fn)(void *), void *arg) UNI_HIDDEN;
/* While it waits for its peers (uni_shim_peer_wait): every read of its
 * operation taken, it sends nothing before t (the horizon counts it there
 * for 200 ms of real time); no group read is outstanding any more. */
void uni_shim_peer_floor(uint64_t t) UNI_HIDDEN;
/* Meetings of a simulated NCCL communicator's ranks (its join,
 * CommSplit; docs/nccl.md "Meetings"): every rank goes on from the latest
 * of their clocks at arrival. uni_shim_meet_self: the calling thread's
 * ring (1 + its index; 0: none, outside simulate mode) and tid, and its
 * clock after charging its compute. */
uint32_t uni_shim_meet_self(int32_t *tid, uint64_t *vt, uint64_t *src) UNI_HIDDEN;
/* The last to arrive: the thread of ring ring1 - 1 (if it is still
 * thread tid's) goes on from t, and the nic horizon counts it there until
 * it publishes; then uni_shim_meet_floors_set, before the meeting opens. */
void uni_shim_meet_floor(uint32_t ring1, int32_t tid, uint64_t t) UNI_HIDDEN;
void uni_shim_meet_floors_set(void) UNI_HIDDEN;
/* on: the calling thread waits at a meeting it is not the last to reach
 * (whatever opens it carries a later time: it holds the horizon only at a
 * floor the last gives it); off: the meeting is over (or failed), and the
 * thread goes on from t (its clock the later of its own and t; 0: its
 * own). */
void uni_shim_meet_wait(int on, uint64_t t) UNI_HIDDEN;
/* The meeting is over: the thread goes on from the latest of n ranks'
 * clocks vt[i] at their arrival (t), each taken from its source src[i]
 * (its thread's position among its events, uni_shim_meet_self; 0: none)
 * so that unitrace replay has the meeting as a take from each. */
void uni_shim_meet_takes(int n, const uint64_t *src, const uint64_t *vt, uint64_t t) UNI_HIDDEN;
/* on: the thread waits for its peers (the simulated NCCL's data path)
 * and will send nothing until one of its reads is answered: it does not
 * hold the nic horizon back (an unread arrival does). off: it runs again. */
void uni_shim_peer_wait(int on, void *obj) UNI_HIDDEN;
/* what: the thread waits in a call of the simulated NCCL on the
 * communicator whose key starts with comm, for what the text says (kept
 * in its ring for a deadlock report; the thread counts as blocked for the
 * detector; its stack is captured once it waited 1 s). Called again as
 * the wait goes on (the text may change). NULL: the wait ended. Only a
 * thread that has its ring already, in simulate mode. */
void uni_shim_nccl_wait(uint64_t comm, const char *what) UNI_HIDDEN;
/* Deterministic mode (docs/nccl.md "Deterministic mode"): 1 when the
 * calling thread takes part in the turn. block: it waits in turn until a
 * rank of the communicator with key k moves (wake): 1 (look again), -1
 * not in turn (wait as without). */
int uni_shim_det_nccl(void) UNI_HIDDEN;
/* 1 when the session runs in deterministic mode (whether or not the turn
 * still goes on: the same on every rank, for the whole session). */
int uni_shim_det_session(void) UNI_HIDDEN;
/* Before a wait in turn looks at its peers (alive, aborted): a rank that
 * ends after this wakes the block that follows. */
void uni_shim_det_nccl_look(void) UNI_HIDDEN;
int uni_shim_det_nccl_block(uint64_t k) UNI_HIDDEN;
void uni_shim_det_nccl_wake(uint64_t k) UNI_HIDDEN;
/* Hands unid an event of the simulated NCCL (UNI_EV_NCCL_COMM,
 * UNI_EV_NCCL_OP) from the calling thread; nothing when not attached. */
struct uni_ev;
void uni_shim_nccl_event(struct uni_ev *e) UNI_HIDDEN;
/* 1 when the pthread_create being called comes from CUDA's libraries
 * (the thread is the device's: every call of it goes straight through). */
int uni_shim_cuda_creator(void *caller) UNI_HIDDEN;
/* The calling thread is the device's (made by CUDA's libraries): every
 * call of it goes straight through, no ring, no clock, no turn; its
 * unlocks and signals still wake threads waiting in turn. */
void uni_shim_device_thread(void) UNI_HIDDEN;
/* th, the device's, was made: no part in the turn, no join hand-over. */
void uni_shim_device_created(pthread_t th) UNI_HIDDEN;
/* on: the calling thread's calls into interposed functions (futex waits
 * through syscall(), clocks) forward untouched until off: the NCCL data
 * path's own waits are not the program's. */
void uni_shim_quiet_io(int on) UNI_HIDDEN;
/* The calling thread's clock becomes max(own, t), without charging the
 * CPU time since the last charge (work a device would have done). */
void uni_shim_vt_settle(uint64_t t) UNI_HIDDEN;

/* True when the sync hooks have work to do in this process. */
extern int uni_shim_sync_on UNI_HIDDEN;
/* Record mode: the calling thread slept ns of real time (the summary's
 * idle time of a rank). */
extern int uni_shim_rec_on UNI_HIDDEN;
void uni_shim_rec_slept(uint64_t ns) UNI_HIDDEN;

/* fd is being closed by the program (or implicitly, by dup2 onto it). */
void uni_shim_fd_closed(int fd) UNI_HIDDEN;

/* newfd now refers to the same open file as oldfd. */
/* fcntl(F_SETFL) or ioctl(FIONBIO) succeeded on a tracked fd: its
 * O_NONBLOCK is read again before its next write (uni_shim_send_blocking). */
void uni_shim_fd_flags_changed(int fd) UNI_HIDDEN;
void uni_shim_fd_duped(int oldfd, int newfd) UNI_HIDDEN;

/* One line to stderr, prefixed "uniference: ", without malloc or stdio. */
void uni_shim_log(const char *fmt, ...) UNI_PRINTF(1, 2) UNI_HIDDEN;

#endif
