/* Interposed waits: the calls through which time passes between threads
 * (DESIGN section 4, "Inside a rank"). epoll_wait marks an event loop
 * (Gloo's loop thread), which carries no clock between events. */
#include <errno.h>
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
