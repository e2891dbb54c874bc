/* fd -> tracked connection. The one lookup every interposed I/O call makes,
 * so it is a flat array of atomics indexed by fd: one bounds check and one
 * relaxed load on the fast path. Entries hold a connection slot + 1 (0 = not
 * tracked). Slots are never freed while the process lives (they are recycled
 * only by an explicit reset after fork), so a racing close never leaves a
 * dangling pointer behind: at worst a call sees the slot of a connection
 * that has just been closed. */
#ifndef UNI_SHIM_FDTABLE_H
#define UNI_SHIM_FDTABLE_H

#include <stdatomic.h>
#include <stdint.h>

#define UNI_FD_MAX 65536
/* An entry with this bit is an in-process channel (pipe or eventfd; the
 * rest is its number, shim/chan.c), not a connection. */
#define UNI_FD_CHAN 0x80000000u

extern _Atomic uint32_t uni_fdtab[UNI_FD_MAX] __attribute__((visibility("hidden")));

/* Slot + 1 of fd, or 0. Safe for any int, negative included. */
static inline uint32_t uni_fd_get(int fd)
{
	if ((unsigned)fd >= UNI_FD_MAX)
		return 0;
	return atomic_load_explicit(&uni_fdtab[fd], memory_order_relaxed);
}

/* Sets fd's entry; returns the previous one. fds beyond the table are not
 * tracked (returns 0 and stores nothing). */
uint32_t uni_fd_set(int fd, uint32_t slot1);
/* Clears fd's entry and returns what it held. */
uint32_t uni_fd_take(int fd);
/* Forgets every entry (forked child). */
void uni_fd_reset(void);

#endif
