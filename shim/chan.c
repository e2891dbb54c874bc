/* Wake-ups that do not go through condition variables (DESIGN section 4,
 * rule 1): semaphores, and pipes and eventfds inside one rank. A poster or
 * writer pushes its clock into a queue kept per object; a waiter or reader
 * that gets what was posted takes the time of what it consumed:
 *
 *   semaphore  every sem_post is one unit; a successful wait consumes one
 *              and takes the earliest unit's time (a counting semaphore in
 *              virtual time, as Gloo's buffers are in gloo_buffers.c);
 *   pipe       a write of n bytes is n bytes at the writer's time; a read
 *              consumes bytes in order and takes the latest time among them;
 *   eventfd    a write of v adds v units; a read consumes them all (one in
 *              EFD_SEMAPHORE mode) and takes the latest time consumed.
 *
 * While a rank thread blocks in sem_wait or a blocking read on such a pipe
 * or eventfd, the nic horizon treats it like a condition wait (left out,
 * woken with a floor at the poster's time). Objects are found by address
 * (semaphores) or by channel number (pipes, eventfds: the fd table holds
 * UNI_FD_CHAN | number for both ends). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

#define TQ_SLOTS 1024 /* objects with something posted and not consumed */
#define TQ_PROBE 16
#define TQ_DEPTH 32   /* entries per object; older ones fold together */
#define CHAN_MAX 4096 /* pipes and eventfds a process may create */

struct tq_ent {
	uint64_t amount; /* bytes (pipe) or units (semaphore, eventfd) */
	uint64_t t;
	uint64_t src;    /* the post's SIGNAL event (replay) */
};

struct tq {
	uintptr_t key;
	uint32_t n;
	struct tq_ent e[TQ_DEPTH];
};

static struct tq g_tq[TQ_SLOTS];
static atomic_flag g_tq_lock = ATOMIC_FLAG_INIT;
static _Atomic int g_tq_full_said;

/* Channel kinds, by number. */
static uint8_t g_chan_kind[CHAN_MAX]; /* 1 pipe, 2 eventfd, 3 eventfd semaphore, 4 socket pair end */
/* A socket pair's end (kind 4): the channel of its other end, whose
 * writes it reads (its own channel holds the bytes it writes). */
static _Atomic uint32_t g_nchan;
static uint32_t g_chan_peer[CHAN_MAX];
/* Channels that existed at a fork: their other end may be in another
 * process (a subprocess's pipe, multiprocessing.Pipe's socket pair),
 * whose writes this one's queue never sees; deterministic mode does not
 * follow them (the kernel's answers, outside the turn). */
static uint8_t g_chan_shared[CHAN_MAX];

void uni_chan_forked(void)
{
	uint32_t n = atomic_load(&g_nchan);
	for (uint32_t i = 0; i < n && i < CHAN_MAX; i++)
		g_chan_shared[i] = 1;
}

int uni_chan_shared(uint32_t fdent)
{
	uint32_t id = fdent & ~UNI_FD_CHAN;
	return id >= CHAN_MAX || g_chan_shared[id] || (g_chan_kind[id] == 4 && g_chan_shared[g_chan_peer[id]]);
}

/* (Held in the shim: a signal handler that writes a channel, Python's
 * wake-up fd, while its thread holds the lock would spin for ever.) */
static void tq_lock(void)
{
	uni_shim_hold(1);
	while (atomic_flag_test_and_set_explicit(&g_tq_lock, memory_order_acquire))
		__builtin_ia32_pause();
}

static void tq_unlock(void)
{
	atomic_flag_clear_explicit(&g_tq_lock, memory_order_release);
	uni_shim_hold(0);
}

static struct tq *tq_find(uintptr_t k, int create)
{
	uint32_t h = (uint32_t)(((uint64_t)(k >> 3) * 0x9E3779B97F4A7C15ull) >> 54) & (TQ_SLOTS - 1);
	struct tq *free_e = NULL;
	for (uint32_t i = 0; i < TQ_PROBE; i++) {
		struct tq *q = &g_tq[(h + i) & (TQ_SLOTS - 1)];
		if (q->key == k && q->n)
			return q;
		if (!q->n && !free_e)
			free_e = q;
	}
	if (!create || !free_e)
		return NULL;
	free_e->key = k;
	return free_e;
}

void uni_tq_push(uintptr_t key, uint64_t amount, uint64_t t, uint64_t src)
{
	if (!amount)
		return;
	tq_lock();
	struct tq *q = tq_find(key, 1);
	if (q) {
		if (q->n == TQ_DEPTH) {
			/* Never consumed for that long: fold the oldest two. */
			q->e[1].amount += q->e[0].amount;
			if (q->e[0].t > q->e[1].t) {
				q->e[1].t = q->e[0].t;
				q->e[1].src = q->e[0].src;
			}
			memmove(&q->e[0], &q->e[1], (TQ_DEPTH - 1) * sizeof(q->e[0]));
			q->n--;
		}
		q->e[q->n++] = (struct tq_ent){.amount = amount, .t = t, .src = src};
	}
	tq_unlock();
	if (!q && !atomic_exchange(&g_tq_full_said, 1))
		uni_shim_log("more than %d semaphores, pipes or eventfds with unconsumed posts; some wake-ups "
			     "carry no time", TQ_SLOTS);
}

uint64_t uni_tq_take(uintptr_t key, uint64_t amount, int earliest, uint64_t *src)
{
	uint64_t t = 0;
	*src = 0;
	tq_lock();
	struct tq *q = tq_find(key, 0);
	if (q && earliest) {
		uint32_t m = 0;
		for (uint32_t i = 1; i < q->n; i++)
			if (q->e[i].t < q->e[m].t)
				m = i;
		t = q->e[m].t;
		*src = q->e[m].src;
		if (--q->e[m].amount == 0) {
			memmove(&q->e[m], &q->e[m + 1], (q->n - m - 1) * sizeof(q->e[0]));
			q->n--;
		}
	} else if (q) {
		while (q->n && amount) {
			uint64_t a = q->e[0].amount < amount ? q->e[0].amount : amount;
			if (q->e[0].t > t) {
				t = q->e[0].t;
				*src = q->e[0].src;
			}
			q->e[0].amount -= a;
			amount -= a;
			if (!q->e[0].amount) {
				memmove(&q->e[0], &q->e[1], (q->n - 1) * sizeof(q->e[0]));
				q->n--;
			}
		}
	}
	tq_unlock();
	return t;
}

void uni_tq_forget(uintptr_t key)
{
	tq_lock();
	struct tq *q = tq_find(key, 0);
	if (q)
		q->n = 0;
	tq_unlock();
}

void uni_sem_take(void *sem)
{
	uint64_t src;
	uint64_t t = uni_tq_take((uintptr_t)sem, 1, 1, &src);
	uni_shim_take(t, src);
}

int uni_sem_trytake(sem_t *sem)
{
	if (uni_real.sem_trywait(sem) != 0)
		return 0;
	uni_sem_take(sem);
	return 1;
}

/* Channels ------------------------------------------------------------ */

static uintptr_t chan_key(uint32_t fdent)
{
	/* An address no semaphore or buffer can have: the kind table entry. */
	return (uintptr_t)&g_chan_kind[fdent & ~UNI_FD_CHAN];
}

/* The channel whose queue a read on fdent consumes: a pipe's or an
 * eventfd's own; a socket pair end's other end's. */
static uintptr_t chan_read_key(uint32_t fdent)
{
	uint32_t id = fdent & ~UNI_FD_CHAN;
	if (id < CHAN_MAX && g_chan_kind[id] == 4)
		return chan_key(UNI_FD_CHAN | g_chan_peer[id]);
	return chan_key(fdent);
}

static void chan_track(int fd, uint32_t id)
{
	uni_shim_fd_closed(fd); /* a connection whose number this reuses */
	uni_fd_set(fd, UNI_FD_CHAN | id);
}

void uni_chan_new(int fd0, int fd1, int kind)
{
	if (!uni_shim_sync_on || uni_shim_in_shim())
		return;
	uint32_t id = atomic_fetch_add(&g_nchan, 1);
	if (id >= CHAN_MAX)
		return; /* carries no time: said nowhere, costs a missed hand-off */
	g_chan_kind[id] = (uint8_t)kind;
	g_chan_shared[id] = 0;
	uni_tq_forget(chan_key(UNI_FD_CHAN | id));
	chan_track(fd0, id);
	if (fd1 >= 0)
		chan_track(fd1, id);
}

/* A pair of connected UNIX sockets (socketpair: asyncio's self-pipe, a
 * program's own): each end is a channel of the bytes it writes, read at
 * the other end. */
void uni_chan_pair(int fd0, int fd1)
{
	if (!uni_shim_sync_on || uni_shim_in_shim())
		return;
	uint32_t id = atomic_fetch_add(&g_nchan, 2);
	if (id + 1 >= CHAN_MAX)
		return;
	g_chan_kind[id] = g_chan_kind[id + 1] = 4;
	g_chan_shared[id] = g_chan_shared[id + 1] = 0;
	g_chan_peer[id] = id + 1;
	g_chan_peer[id + 1] = id;
	uni_tq_forget(chan_key(UNI_FD_CHAN | id));
	uni_tq_forget(chan_key(UNI_FD_CHAN | (id + 1)));
	chan_track(fd0, id);
	chan_track(fd1, id + 1);
}

void uni_chan_reset(void)
{
	atomic_store(&g_nchan, 0);
}

/* A read of r bytes on a channel fd: takes the time of what it consumed. */
void uni_chan_read(uint32_t fdent, ssize_t r)
{
	if (r <= 0 || !uni_shim_sync_on || uni_shim_in_shim())
		return;
	uint32_t id = fdent & ~UNI_FD_CHAN;
	if (id >= CHAN_MAX)
		return;
	int kind = g_chan_kind[id];
	uint64_t amount = kind == 1 || kind == 4 ? (uint64_t)r : kind == 3 ? 1 : UINT64_MAX, src;
	uint64_t t = uni_tq_take(chan_read_key(fdent), amount, 0, &src);
	uni_shim_take(t, src);
}

void uni_chan_write_begin(struct uni_chan_w *w, uint32_t fdent, const struct iovec *iov, int cnt)
{
	w->amount = 0;
	if (!uni_shim_sync_on || uni_shim_in_shim())
		return;
	uint32_t id = fdent & ~UNI_FD_CHAN;
	if (id >= CHAN_MAX)
		return;
	w->kind = g_chan_kind[id];
	w->key = chan_key(fdent);
	uint64_t amount = 0;
	if (w->kind == 1 || w->kind == 4) {
		for (int i = 0; i < cnt; i++)
			amount += iov[i].iov_len;
	} else if (cnt > 0 && iov[0].iov_len >= 8) {
		memcpy(&amount, iov[0].iov_base, 8); /* eventfd: the value added */
	}
	if (!amount)
		return;
	uni_shim_det_turn(); /* (deterministic mode: the write in turn) */
	w->t = uni_shim_thread_vt();
	w->src = uni_shim_signal((void *)w->key, w->t);
	w->amount = amount;
	uni_tq_push(w->key, amount, w->t, w->src);
	uni_shim_wake_floors((void *)w->key, w->t);
}

void uni_chan_write_end(const struct uni_chan_w *w, ssize_t r)
{
	if (!w->amount)
		return;
	/* What the kernel took: a pipe's r bytes; an eventfd's value or
	 * nothing. */
	uint64_t took = w->kind == 1 || w->kind == 4 ? (r > 0 ? (uint64_t)r : 0) : (r == 8 ? w->amount : 0);
	if (took)
		uni_shim_det_polled(); /* pollers in turn look again */
	if (took >= w->amount)
		return;
	uint64_t back = w->amount - took;
	tq_lock();
	struct tq *q = tq_find(w->key, 0);
	/* The latest entry this write queued (a reader cannot have taken its
	 * part the kernel did not take). */
	for (uint32_t i = q ? q->n : 0; i-- > 0;) {
		struct tq_ent *e = &q->e[i];
		if (e->t != w->t || e->src != w->src)
			continue;
		if (e->amount > back) {
			e->amount -= back;
		} else {
			memmove(&q->e[i], &q->e[i + 1], (q->n - i - 1) * sizeof(q->e[0]));
			q->n--;
		}
		break;
	}
	tq_unlock();
}

/* Deterministic mode: 1 and the time of the earliest write on a channel
 * that is not read yet, 0 when none is queued (a poll in turn: readable
 * from that time). */
int uni_chan_pending(uint32_t fdent, uint64_t *t)
{
	uint32_t id = fdent & ~UNI_FD_CHAN;
	if (id >= CHAN_MAX)
		return 0;
	int k = 0;
	tq_lock();
	struct tq *q = tq_find(chan_read_key(fdent), 0);
	for (uint32_t i = 0; q && i < q->n; i++)
		if (!k++ || q->e[i].t < *t)
			*t = q->e[i].t;
	tq_unlock();
	return k > 0;
}

/* A blocking read on a channel: counted like a condition wait. */
int uni_chan_wait_begin(uint32_t fdent, int fd)
{
	int fl = uni_real.fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_NONBLOCK))
		return 0;
	/* Only a read that will block is a wait (see sem_wait). */
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (uni_real.poll(&p, 1, 0) > 0)
		return 0;
	return uni_shim_object_wait(1, (void *)chan_read_key(fdent));
}

void uni_chan_wait_end(int began)
{
	if (began)
		uni_shim_object_wait(0, NULL);
}
