#include <string.h>

#include "fdtable.h"
#include "uni/common.h"

UNI_HIDDEN _Atomic uint32_t uni_fdtab[UNI_FD_MAX];

UNI_HIDDEN uint32_t uni_fd_set(int fd, uint32_t slot1)
{
	if ((unsigned)fd >= UNI_FD_MAX)
		return 0;
	return atomic_exchange_explicit(&uni_fdtab[fd], slot1, memory_order_acq_rel);
}

UNI_HIDDEN uint32_t uni_fd_take(int fd)
{
	return uni_fd_set(fd, 0);
}

UNI_HIDDEN void uni_fd_reset(void)
{
	for (int i = 0; i < UNI_FD_MAX; i++)
		if (atomic_load_explicit(&uni_fdtab[i], memory_order_relaxed))
			atomic_store_explicit(&uni_fdtab[i], 0, memory_order_relaxed);
}
