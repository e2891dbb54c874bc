/* Resolving the real functions: every lookup goes through uni_resolve, once,
 * from uni_shim_ensure_init; never lazily inside a wrapper (a failed dlsym
 * mallocs, see research/interposition.md section 1). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "shim.h"

UNI_HIDDEN struct uni_real uni_real;

static void *uni_resolve(const char *name, const char *version)
{
	void *p = NULL;
	if (version)
		p = dlvsym(RTLD_NEXT, name, version);
	if (!p)
		p = dlsym(RTLD_NEXT, name);
	return p;
}

#define RESOLVE(field, name) \
	uni_real.field = (__typeof__(uni_real.field))uni_resolve(name, NULL)

static void uni_resolve_all(void)
{
	RESOLVE(connect, "connect");
	RESOLVE(bind, "bind");
	RESOLVE(accept, "accept");
	RESOLVE(accept4, "accept4");
	RESOLVE(listen, "listen");
	RESOLVE(close, "close");
	RESOLVE(shutdown, "shutdown");
	RESOLVE(dup, "dup");
	RESOLVE(dup2, "dup2");
	RESOLVE(dup3, "dup3");
	RESOLVE(fcntl, "fcntl");
	RESOLVE(ioctl, "ioctl");
	RESOLVE(fcntl64, "fcntl64");
	RESOLVE(read, "read");
	RESOLVE(readv, "readv");
	RESOLVE(recv, "recv");
	RESOLVE(recvfrom, "recvfrom");
	RESOLVE(recvmsg, "recvmsg");
	RESOLVE(write, "write");
	RESOLVE(writev, "writev");
	RESOLVE(send, "send");
	RESOLVE(sendto, "sendto");
	RESOLVE(sendmsg, "sendmsg");
	RESOLVE(read_chk, "__read_chk");
	RESOLVE(recv_chk, "__recv_chk");
	RESOLVE(recvfrom_chk, "__recvfrom_chk");
	/* The default (GLIBC_2.3.2) condvar ABI, whatever the lookup rules:
	 * the 2.2.5 compat entries use another object layout. */
	uni_real.cond_wait = uni_resolve("pthread_cond_wait", "GLIBC_2.3.2");
	uni_real.cond_timedwait = uni_resolve("pthread_cond_timedwait", "GLIBC_2.3.2");
	uni_real.cond_signal = uni_resolve("pthread_cond_signal", "GLIBC_2.3.2");
	uni_real.cond_broadcast = uni_resolve("pthread_cond_broadcast", "GLIBC_2.3.2");
	uni_real.cond_destroy = uni_resolve("pthread_cond_destroy", "GLIBC_2.3.2");
	uni_real.cond_clockwait = uni_resolve("pthread_cond_clockwait", NULL);
	RESOLVE(mutex_lock, "pthread_mutex_lock");
	RESOLVE(mutex_trylock, "pthread_mutex_trylock");
	RESOLVE(mutex_unlock, "pthread_mutex_unlock");
	RESOLVE(clock_gettime, "clock_gettime");
	RESOLVE(gettimeofday, "gettimeofday");
	RESOLVE(time, "time");
	RESOLVE(clock_nanosleep, "clock_nanosleep");
	RESOLVE(nanosleep, "nanosleep");
	RESOLVE(usleep, "usleep");
	RESOLVE(sem_timedwait, "sem_timedwait");
	RESOLVE(sem_clockwait, "sem_clockwait");
	RESOLVE(sem_wait, "sem_wait");
	RESOLVE(sem_trywait, "sem_trywait");
	RESOLVE(sem_post, "sem_post");
	RESOLVE(sem_init, "sem_init");
	RESOLVE(pipe, "pipe");
	RESOLVE(pipe2, "pipe2");
	RESOLVE(socketpair, "socketpair");
	RESOLVE(eventfd, "eventfd");
	RESOLVE(syscall, "syscall");
	RESOLVE(pthread_create, "pthread_create");
	RESOLVE(pthread_join, "pthread_join");
	RESOLVE(pthread_tryjoin_np, "pthread_tryjoin_np");
	RESOLVE(barrier_wait, "pthread_barrier_wait");
	RESOLVE(pthread_timedjoin_np, "pthread_timedjoin_np");
	RESOLVE(pthread_clockjoin_np, "pthread_clockjoin_np");
	RESOLVE(epoll_create, "epoll_create");
	RESOLVE(epoll_create1, "epoll_create1");
	RESOLVE(epoll_ctl, "epoll_ctl");
	RESOLVE(epoll_wait, "epoll_wait");
	RESOLVE(epoll_pwait, "epoll_pwait");
	RESOLVE(poll, "poll");
	RESOLVE(ppoll, "ppoll");
	RESOLVE(select, "select");
	RESOLVE(pselect, "pselect");
	/* fcntl64 is an alias on 64-bit glibc; fall back rather than crash. */
	if (!uni_real.fcntl64)
		uni_real.fcntl64 = uni_real.fcntl;
}

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

void uni_shim_resolve(void) UNI_HIDDEN;
void uni_shim_resolve(void)
{
	pthread_once(&resolve_once, uni_resolve_all);
}
