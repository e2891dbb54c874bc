/* Deterministic mode's turn (det.h; docs/simulate.md "Deterministic
 * mode"). The turn is a baton in the session segment: det_owner names the
 * ring of the one thread that runs; every other rank thread that takes part
 * is READY (waiting for the turn at its clock), BLOCKED (waiting for a
 * wake-up from another thread, or for its virtual time-out), or OUTSIDE (in
 * a wait the turn cannot follow: a real blocking call). Whoever gives the
 * turn up hands it to the least (time, rank, key) of the READY threads and
 * of the BLOCKED ones' time-outs, under det_lock. With the same compute
 * (--compute-from) the same threads get the turn at the same points, so
 * every hand-off between threads, every mutex and every wake-up happens in
 * the same order: the event graph is a function of the program and the
 * compute. A thread OUTSIDE comes back when the kernel says; from there the
 * order may differ between runs (counted in det_outside, and said). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "det.h"
#include "shim.h"

static struct uni_shm_hdr *H;
static int W;
static _Atomic int g_started;
static uint64_t g_gate_since;
static _Atomic int g_said_steal, g_said_gate, g_gate_open;
static _Atomic int g_blocked; /* this process's threads in uni_det_block */
static _Atomic uint32_t g_ends_seen; /* H->rank_ends when this process last looked */
static _Atomic uint64_t g_nccl_look;   /* host time of the NCCL waits' last look (watch) */
static int g_net;              /* nic or topology: the network moves in turn (below) */
static int g_net_wait, g_net_ask; /* (net_wake's count: blocked on the network; a request not drained) */
static uint64_t g_net_askt;         /* (... the least clock of those) */

/* This process's pid, without a system call each time (glibc's getpid
 * is one: every unlock with a thread blocked somewhere made one); a
 * forked child asks again (uni_det_forked). */
static _Atomic pid_t g_mypid;

void uni_det_forked(void)
{
	atomic_store(&g_mypid, 0);
}

static pid_t my_pid(void)
{
	pid_t p = atomic_load_explicit(&g_mypid, memory_order_relaxed);
	if (UNI_UNLIKELY(!p)) {
		p = getpid();
		atomic_store_explicit(&g_mypid, p, memory_order_relaxed);
	}
	return p;
}

void uni_det_init(struct uni_shm_hdr *h, int world)
{
	H = h;
	W = world;
	g_net = h->horizon != 0;
	atomic_store(&g_mypid, 0);
	atomic_store(&g_ends_seen, atomic_load(&h->rank_ends));
}

/* The network in turn (below): a thread that goes on after a wait goes on
 * no earlier than the network's time. What woke it happened then or later
 * (a write, a read, bytes that left), and a transfer it then starts must
 * not start behind the network (it would be late, and the network has
 * moved on without it). Without the network in turn, t. */
static inline uint64_t net_floor(uint64_t t)
{
	uint64_t now;
	return g_net && (now = atomic_load_explicit(&H->det_sync_now, memory_order_acquire)) > t ? now : t;
}

static inline struct uni_ring *ring(uint32_t i)
{
	return uni_shm_ring(H, i);
}

/* det_lock holds the holder's tid: a holder that died (killed between two
 * stores) is seen and the lock broken, after a second. */
static void lk(void)
{
	uint32_t me = (uint32_t)syscall(SYS_gettid), z = 0;
	uint64_t t0 = 0;
	for (unsigned i = 0; !atomic_compare_exchange_weak_explicit(&H->det_lock, &z, me, memory_order_acquire,
								   memory_order_relaxed);
	     i++, z = 0) {
		if (i < 64)
			continue;
		sched_yield();
		if ((i & 1023) == 0) {
			uint64_t now = uni_now_ns();
			if (!t0)
				t0 = now;
			else if (now - t0 > 1000000000ull) {
				uint32_t h = atomic_load(&H->det_lock);
				if (h && kill((pid_t)h, 0) < 0 && errno == ESRCH)
					atomic_compare_exchange_strong(&H->det_lock, &h, 0);
				t0 = now;
			}
		}
	}
}

static void unlk(void)
{
	atomic_store_explicit(&H->det_lock, 0, memory_order_release);
}

/* Every rank of the world attached and its first thread in the turn
 * (unid took its THREAD event), or a minute went by: before that a rank
 * that has not started would come first at clock 0. (Attached was not
 * enough: a rank whose main thread took its ring after another rank's
 * turns had begun came after them whatever its clock, so whether rank 0
 * listened before rank 1 connected was the host's, and one replay in
 * thirty took another way.) */
static int started(void)
{
	if (atomic_load_explicit(&g_started, memory_order_relaxed))
		return 1;
	int all = 1;
	for (int i = 0; i < W && i < (int)H->max_ranks; i++) {
		struct uni_rank *rk = uni_shm_rank(H, (uint32_t)i);
		uint32_t st = atomic_load_explicit(&rk->state, memory_order_acquire);
		if (st == UNI_RANK_FREE || (st == UNI_RANK_LIVE && !atomic_load_explicit(&rk->threads, memory_order_acquire)))
			all = 0; /* (one that ended already: not waited for) */
	}
	if (!all) {
		uint64_t now = uni_now_ns();
		if (!g_gate_since)
			g_gate_since = now;
		if (now - g_gate_since < 60000000000ull)
			return 0;
		atomic_store(&g_gate_open, 1); /* said by watch, outside the lock */
	}
	atomic_store(&g_started, 1);
	return 1;
}

static int less(uint32_t i, uint64_t t, uint32_t j, uint64_t u)
{
	if (t != u)
		return t < u;
	struct uni_ring *a = ring(i), *b = ring(j);
	if (a->rank != b->rank)
		return a->rank < b->rank;
	if (a->det_key != b->det_key)
		return a->det_key < b->det_key;
	return i < j;
}

/* Under the lock: the ring that goes next, -1 none. */
static int pick(void)
{
	uint32_t hi = atomic_load_explicit(&H->det_hi, memory_order_acquire);
	int best = -1;
	uint64_t bt = 0;
	for (uint32_t i = 0; i < hi && i < H->max_rings; i++) {
		struct uni_ring *r = ring(i);
		if (atomic_load_explicit(&r->state, memory_order_acquire) != UNI_RING_LIVE)
			continue;
		uint32_t st = atomic_load_explicit(&r->det_st, memory_order_relaxed);
		if (st != UNI_DET_READY && !(st == UNI_DET_BLOCKED && r->det_t != UINT64_MAX))
			continue;
		if (best < 0 || less(i, r->det_t, (uint32_t)best, bt)) {
			best = (int)i;
			bt = r->det_t;
		}
	}
	return best;
}

/* UNI_DET_LOG=FILE (debugging; docs/simulate.md "Deterministic mode"):
 * every hand-off of the turn, wake-up, block (with the shim's code
 * address that blocked: addr2line -e libunishim.so) and intervention of
 * the watch, a line each, appended by every process of the session. Two
 * replays' logs differ first where their turns did. */
static int g_log = -2;

static int log_on(void)
{
	if (UNI_LIKELY(g_log != -2))
		return g_log >= 0;
	const char *p = getenv("UNI_DET_LOG");
	g_log = p && *p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
	return g_log >= 0;
}

static void dlog(const char *what, const struct uni_ring *r, uint64_t t, uint64_t x)
{
	if (UNI_LIKELY(!log_on()))
		return;
	char b[160];
	int n = snprintf(b, sizeof(b), "%s r%d k%016llx t%llu x%llx\n", what, r ? (int)r->rank : -1,
			 r ? (unsigned long long)r->det_key : 0ull, (unsigned long long)t, (unsigned long long)x);
	if (uni_real.write(g_log, b, (size_t)n) < 0)
		g_log = -1;
}

/* pc's offset in its object (the log's code addresses). */
static uint64_t code_off(void *pc)
{
	Dl_info di;
	return dladdr(pc, &di) ? (uint64_t)((uintptr_t)pc - (uintptr_t)di.dli_fbase) : (uint64_t)(uintptr_t)pc;
}

/* The network in turn (nic, topology; docs/simulate.md "Deterministic
 * mode"). Whether bytes have left by some time depends on every flow that
 * starts before it, so unid moves the network only when the turn asks:
 * before the turn goes to a thread at clock c, the network is made final
 * up to c (no thread of the turn sends before c), one step at a time
 * (a step stops where a flow ends, a send completes or a byte a thread
 * waits for leaves: UNI_EV_DET_WATCH), and threads that
 * wait for the network and whose wait is over go on (at their clock, or
 * at their answer's time), possibly before c. Every step is asked for at
 * the same point of the turn in every run, so the network's arithmetic is
 * the same too. A write lowers det_sync_fin to its stamp (its flow
 * changes what others send from then on). */

static int abandon_locked(void);
static _Atomic int g_net_dead; /* 1: a step found unid gone (said once, outside the lock) */

/* Says once, outside the lock, that the turn was given up for a dead unid. */
static void net_said_dead(void)
{
	if (UNI_UNLIKELY(atomic_load_explicit(&g_net_dead, memory_order_relaxed) == 1) &&
	    atomic_exchange(&g_net_dead, 2) == 1)
		uni_shim_log("deterministic: the coordinator is gone: this session goes on without the turn "
			     "(not deterministic)");
}

/* Under the lock: one step of the network toward h (unid's answer, at
 * most a few seconds; a unid gone or stuck gives the turn up). Returns
 * the time up to which the network is final. */
static uint64_t net_step(uint64_t h)
{
	/* The session gave the turn up: unid no longer moves the network in
	 * steps (det_net()), the horizon does; waiting for its answer waited
	 * 5 s, and the deadlock detector called it a deadlock first. */
	if (atomic_load_explicit(&H->det_off, memory_order_acquire))
		return atomic_load_explicit(&H->det_sync_fin, memory_order_acquire);
	uint32_t req = atomic_load_explicit(&H->det_sync_req, memory_order_relaxed) + 1;
	H->det_sync_h = h;
	atomic_store_explicit(&H->det_sync_req, req, memory_order_release);
	atomic_fetch_add_explicit(&H->doorbell, 1, memory_order_release);
	if (atomic_load_explicit(&H->daemon_sleeping, memory_order_acquire))
		uni_futex_wake(&H->doorbell, 1);
	uint64_t t0 = 0;
	for (unsigned i = 0;; i++) {
		uint32_t a = atomic_load_explicit(&H->det_sync_ack, memory_order_acquire);
		if (a == req || atomic_load_explicit(&H->det_off, memory_order_acquire))
			break;
		if (i < 256) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		if (uni_futex_wait(&H->det_sync_ack, a, 10) == -ETIMEDOUT) {
			uint64_t now = uni_now_ns();
			if (!t0)
				t0 = now;
			else if (now - t0 > 5000000000ull || uni_pid_dead(H->daemon_pid)) {
				/* Gone (or stuck): the network will not move again; the
				 * threads waiting for it would wait for ever. */
				abandon_locked();
				atomic_store(&g_net_dead, 1);
				break;
			}
		}
	}
	uint64_t fin = atomic_load_explicit(&H->det_sync_fin, memory_order_acquire);
	if (UNI_UNLIKELY(log_on()))
		dlog("step", NULL, h, atomic_load_explicit(&H->det_sync_now, memory_order_relaxed));
	return fin;
}

/* Under the lock: threads blocked on the network whose wait is over go
 * on: more bytes final (ANY: they look again, at their clock), unid's
 * answer there (ANSWER: at its time). Counts the ones left in g_net_wait
 * and those whose request unid may not have taken yet in g_net_ask. */
static int net_wake(void)
{
	uint32_t hi = atomic_load_explicit(&H->det_hi, memory_order_acquire);
	uint32_t fseq = atomic_load_explicit(&H->final_seq, memory_order_acquire);
	uint32_t req = atomic_load_explicit(&H->det_sync_req, memory_order_relaxed);
	int woke = 0;
	g_net_wait = g_net_ask = 0;
	g_net_askt = UINT64_MAX;
	for (uint32_t i = 0; i < hi && i < H->max_rings; i++) {
		struct uni_ring *r = ring(i);
		if (!r->det_net || atomic_load_explicit(&r->det_st, memory_order_relaxed) != UNI_DET_BLOCKED ||
		    atomic_load_explicit(&r->state, memory_order_acquire) != UNI_RING_LIVE)
			continue;
		/* Not before a step has come since it blocked: whether unid took
		 * its request before it blocked is the host's, and what the turn
		 * does next must not depend on it (a step drains the rings). */
		int fresh = r->det_net_gen == req;
		uint64_t t = UINT64_MAX;
		if (!fresh && r->det_net == UNI_DET_NET_ANY && r->det_net_seq != fseq)
			t = net_floor(r->det_wt);
		else if (!fresh && r->det_net == UNI_DET_NET_ANSWER &&
			 atomic_load_explicit(&r->resp_seq, memory_order_acquire) == r->det_net_seq)
			t = net_floor(r->resp_t > r->det_wt ? r->resp_t : r->det_wt);
		if (t == UINT64_MAX) {
			g_net_wait++;
			if (fresh) {
				g_net_ask++; /* (unid may not have taken what it waits for: a step drains) */
				if (r->det_wt < g_net_askt)
					g_net_askt = r->det_wt;
			}
			continue;
		}
		r->det_net = UNI_DET_NET_NONE;
		r->det_t = t;
		r->det_woken = 1;
		atomic_store_explicit(&r->det_st, UNI_DET_READY, memory_order_relaxed);
		dlog("net-wake", r, t, r->det_obj);
		woke++;
	}
	return woke;
}

/* Under the lock: ring i (-1: none) is to have the turn next: the network
 * final up to its time first; returns who goes next after threads whose
 * network wait ended. */
static int net_settle(int i)
{
	uint64_t last = 0;
	for (int stepped = 0;;) {
		int woke = net_wake();
		if (woke)
			i = pick();
		uint64_t c = i >= 0 ? ring((uint32_t)i)->det_t : UINT64_MAX;
		uint64_t fin = atomic_load_explicit(&H->det_sync_fin, memory_order_acquire);
		if ((fin >= c && !g_net_ask) || (c == UINT64_MAX && !g_net_wait))
			return i;
		if (stepped && !woke && fin <= last && !g_net_ask)
			return i; /* held back (data sent where no peer registered yet; unid gone): the turn goes on */
		last = fin;
		stepped = 1;
		/* A step that only drains a request goes no further than the
		 * asker's clock (toward c, the network ran past the answer the
		 * asker then took: a write that fit the send buffer completed
		 * 8 ms late). */
		net_step(fin >= c && g_net_askt < c ? g_net_askt : c);
		if (atomic_load_explicit(&H->det_off, memory_order_relaxed))
			return -1;
	}
}

static void hand_on(int self);

void uni_det_net_kick(void)
{
	if (!g_net)
		return;
	lk();
	if (!atomic_load(&H->det_owner) && !atomic_load(&H->det_off)) {
		net_step(UINT64_MAX);
		if (!atomic_load(&H->det_owner) && !atomic_load(&H->det_off))
			hand_on(-1);
	}
	unlk();
	net_said_dead();
}

void uni_det_net_sent(uint64_t stamp)
{
	if (!g_net)
		return;
	lk();
	if (atomic_load_explicit(&H->det_sync_fin, memory_order_relaxed) > stamp)
		atomic_store_explicit(&H->det_sync_fin, stamp, memory_order_release);
	unlk();
}

int uni_det_net(void)
{
	return g_net && H && !atomic_load_explicit(&H->det_off, memory_order_relaxed);
}

/* Under the lock: the turn to the next thread (self: the caller's ring,
 * which needs no wake-up). */
static void hand_on(int self)
{
	int i = started() ? pick() : -1;
	if (g_net)
		i = net_settle(i);
	uint32_t prev = atomic_load_explicit(&H->det_owner, memory_order_relaxed);
	if (i >= 0 && prev != (uint32_t)i + 1)
		dlog("turn", ring((uint32_t)i), ring((uint32_t)i)->det_t, 0);
	if (i < 0) {
		atomic_store_explicit(&H->det_owner, 0, memory_order_release);
		return;
	}
	struct uni_ring *r = ring((uint32_t)i);
	if (prev != (uint32_t)i + 1)
		atomic_fetch_add_explicit(&H->det_turns, 1, memory_order_relaxed);
	atomic_store_explicit(&r->det_st, UNI_DET_RUN, memory_order_relaxed);
	atomic_store_explicit(&H->det_owner, (uint32_t)i + 1, memory_order_release);
	atomic_fetch_add_explicit(&r->det_word, 1, memory_order_release);
	if (i != self)
		uni_futex_wake(&r->det_word, 1);
}

/* /proc's view of a thread: 1 and its state letter and time on a CPU (ns),
 * 0 when it is gone. */
static int thread_view(const struct uni_ring *r, char *state, uint64_t *run)
{
	char p[64], b[512];
	int pid = __atomic_load_n(&r->pid, __ATOMIC_RELAXED), tid = __atomic_load_n(&r->tid, __ATOMIC_RELAXED);
	snprintf(p, sizeof(p), "/proc/%d/task/%d/stat", pid, tid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = uni_real.read(fd, b, sizeof(b) - 1);
	uni_real.close(fd);
	if (n <= 0)
		return 0;
	b[n] = 0;
	const char *c = strrchr(b, ')');
	*state = c && c[1] ? c[2] : '?';
	*run = 0;
	snprintf(p, sizeof(p), "/proc/%d/task/%d/schedstat", pid, tid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = uni_real.read(fd, b, sizeof(b) - 1);
		uni_real.close(fd);
		if (n > 0) {
			b[n] = 0;
			*run = strtoull(b, NULL, 10);
		}
	}
	return 1;
}

/* A thread waiting for the turn looks at the one that has it now and
 * then: an owner that has been asleep in the kernel without using a CPU
 * for 50 ms waits where the shim does not see (or died): the turn goes on
 * without it (it takes part again at its next call into the shim). With
 * nobody owning the turn, a mutex waiter whose mutex is free (released
 * where no wrapper saw it: inside glibc's condition wait) is woken. */
static __thread uint32_t w_owner, w_word;
static __thread uint64_t w_since, w_run, w_idle, w_spin;

/* A rank ended: how a wait for obj looks again (uni_det_block's answer),
 * 0 when it cannot wait for that rank. A wait of the simulated NCCL, and
 * a poll (the simulated NCCL's receives in turn wait on one), look at
 * their peers themselves (1: look again; for a poll that finds nothing
 * new, nothing changes). The bytes of a connection end whose process died
 * (unid marks its ends, uni_conn.wdead) will not be written in turn: its
 * reader goes the kernel's way (2: what the writer left there, then the
 * end). Not the others: a wait that gives up goes the kernel's way, where
 * a run may differ. */
static int ended_wake(uint64_t obj)
{
	if (UNI_DET_OBJ_IS_NCCL(obj) || obj == UNI_DET_OBJ_POLL)
		return 1;
	if ((obj >> 32) != (UNI_DET_OBJ_CONN(0) >> 32) || (uint32_t)obj >= H->max_conns)
		return 0;
	/* (A writer that exited woke its readers as it left: det_detach.) */
	return atomic_load(&uni_shm_conn(H, (uint32_t)obj)->wdead) ? 2 : 0;
}

enum { LOOK_ALL, LOOK_ENDED, LOOK_NCCL };

/* Threads blocked without a time-out on something of the session (bytes
 * of a connection, a communicator of the simulated NCCL) look again at
 * their next turn: every one (LOOK_ALL; uni_det_block says 2: everybody
 * waited), those that may wait for a rank that ended (LOOK_ENDED:
 * ended_wake), or the waits of the simulated NCCL (LOOK_NCCL: 1, look
 * again; their time-out is the host's, UNI_NCCL_TIMEOUT). Under det_lock. */
static void look_again(int which)
{
	uint32_t hi = atomic_load(&H->det_hi);
	for (uint32_t i = 0; i < hi && i < H->max_rings; i++) {
		struct uni_ring *r = ring(i);
		int how;
		if (atomic_load(&r->state) == UNI_RING_LIVE && atomic_load(&r->det_st) == UNI_DET_BLOCKED &&
		    (r->det_obj >> 63) && r->det_t == UINT64_MAX &&
		    (how = which == LOOK_ALL     ? 2
			   : which == LOOK_ENDED ? ended_wake(r->det_obj)
						 : UNI_DET_OBJ_IS_NCCL(r->det_obj))) {
			atomic_store(&r->det_st, UNI_DET_READY);
			/* A look (1) that finds nothing new blocks again: at its own
			 * clock, not the network's (when it looks is the host's; a
			 * poll that took the network's time sent later from then
			 * on, and a replay left the recording). A reader going the
			 * kernel's way (2) acts: no earlier than the network. */
			r->det_t = how == 1 ? r->det_wt : net_floor(r->det_wt);
			r->det_woken = how;
			dlog("watch-recheck", r, r->det_t, r->det_obj);
		}
	}
}

/* look_again now, and the turn to whom it readied if nobody has it. */
static void look_now(int which)
{
	lk();
	look_again(which);
	if (!atomic_load(&H->det_owner))
		hand_on(-1);
	unlk();
}

static void watch(void)
{
	/* A rank ended (exited or died): what waits for it looks again, at
	 * once, not only once the turn has been idle 200 ms (a thread in a
	 * timed wait, a polling watchdog, keeps it busy for ever). Nothing
	 * wakes such a wait otherwise: the dead do not signal. */
	uint32_t ends = atomic_load_explicit(&H->rank_ends, memory_order_acquire), seen = atomic_load(&g_ends_seen);
	if (UNI_UNLIKELY(ends != seen) && atomic_compare_exchange_strong(&g_ends_seen, &seen, ends))
		look_now(LOOK_ENDED);
	/* Each second of the host's time the simulated NCCL's waits look
	 * again: their time-out (UNI_NCCL_TIMEOUT) is the host's, and with a
	 * thread in a timed wait the turn is never idle 200 ms. A look that
	 * finds nothing new blocks again and makes no event: the same run. */
	uint64_t now0 = uni_now_ns(), last = atomic_load_explicit(&g_nccl_look, memory_order_relaxed);
	if (UNI_UNLIKELY(now0 - last > 1000000000ull) && atomic_compare_exchange_strong(&g_nccl_look, &last, now0) &&
	    last)
		look_now(LOOK_NCCL);
	if (atomic_load(&g_gate_open) && !atomic_exchange(&g_said_gate, 1))
		uni_shim_log("deterministic: not every rank of the world of %d attached and started within 60 s: the "
			     "turn goes on without the missing ones",
			     W);
	uint32_t o = atomic_load_explicit(&H->det_owner, memory_order_acquire);
	if (!o) {
		/* Nobody has had the turn for 200 ms: readers waiting for bytes
		 * look again (a writer that died left them in the kernel). */
		uint64_t now = uni_now_ns();
		int recheck = 0;
		if (!w_idle)
			w_idle = now;
		else if (now - w_idle > 200000000ull) {
			recheck = 1;
			w_idle = now;
		}
		lk();
		if (!atomic_load(&H->det_owner)) {
			uint32_t hi = atomic_load(&H->det_hi), pid = (uint32_t)my_pid();
			for (uint32_t i = 0; i < hi && i < H->max_rings; i++) {
				struct uni_ring *r = ring(i);
				if ((uint32_t)r->pid == pid && atomic_load(&r->state) == UNI_RING_LIVE &&
				    atomic_load(&r->det_st) == UNI_DET_BLOCKED && !(r->det_obj >> 63) && (r->det_obj & 3) == UNI_DET_OBJ_MUTEX &&
				    ((pthread_mutex_t *)(uintptr_t)(r->det_obj & ~(uint64_t)3))->__data.__lock == 0) {
					atomic_store(&r->det_st, UNI_DET_READY);
					r->det_t = net_floor(r->det_wt);
					r->det_woken = 1;
					dlog("watch-mutex-free", r, r->det_t, r->det_obj);
				}
			}
			if (recheck)
				look_again(LOOK_ALL);
			hand_on(-1);
		}
		unlk();
		return;
	}
	struct uni_ring *r = ring(o - 1);
	uint32_t word = atomic_load(&r->det_word);
	uint64_t now = uni_now_ns();
	char st = 'R';
	uint64_t run = 0;
	/* (A thread its creator counted in that has not started yet has no
	 * tid: it is on its way.) */
	int alive = __atomic_load_n(&r->tid, __ATOMIC_RELAXED) == 0 || thread_view(r, &st, &run);
	w_idle = 0;
	if (o != w_owner || word != w_word) {
		/* Another owner, or the same at another turn point: a new look. */
		w_owner = o;
		w_word = word;
		w_run = run;
		w_since = now;
		w_spin = now;
		return;
	}
	/* Asleep in the kernel ('S'; not 'D', a disk read that ends) without
	 * using a CPU for 200 ms: it waits for something the shim does not
	 * see. Running for 5 s without a turn point while others wait: it may
	 * spin on something another thread must do (a spin lock); compute
	 * that long between two calls into the shim is rare. Gone: dead. */
	int stuck = 0;
	if (!alive)
		stuck = 1;
	else if (st == 'S' && run == w_run)
		stuck = now - w_since >= 200000000ull;
	else {
		w_run = run;
		w_since = now;
		stuck = st == 'R' && now - w_spin >= 5000000000ull ? 2 : 0;
	}
	if (!stuck)
		return;
	int said = 0;
	lk();
	/* (Not one that is giving the turn up: BLOCKED or READY, it hands it
	 * on itself, and marked OUTSIDE there it would wait for ever.) */
	if (atomic_load(&H->det_owner) == o && atomic_load(&r->det_word) == word &&
	    (!alive || atomic_load(&r->det_st) == UNI_DET_RUN)) {
		atomic_store(&r->det_st, alive ? UNI_DET_OUTSIDE : UNI_DET_NONE);
		atomic_fetch_add(&H->det_steals, 1);
		dlog("watch-steal", r, r->det_t, (uint64_t)stuck);
		hand_on(-1);
		said = alive && !atomic_exchange(&g_said_steal, 1);
	}
	unlk();
	if (said)
		uni_shim_log("deterministic: rank %d thread %d %s while it had the turn; the others went on without "
			     "it (from here a run may differ from another; counted in the summary)",
			     r->rank, __atomic_load_n(&r->tid, __ATOMIC_RELAXED),
			     stuck == 2 ? "ran 5 s without a call into the shim (a spin?)"
					: "waited in a call the shim does not follow");
	w_owner = 0;
}

static __thread int t_cancel; /* in a wait that is a cancellation point */
static __thread int t_marked; /* this wait set the ring's wait_kind */

void uni_det_cancelable(int on)
{
	t_cancel = on;
}

void uni_det_cancelled(struct uni_ring *r)
{
	atomic_fetch_sub(&g_blocked, 1);
	lk();
	if (atomic_load(&r->det_st) == UNI_DET_BLOCKED) {
		r->det_t = net_floor(r->det_wt);
		atomic_store(&r->det_st, UNI_DET_READY);
	}
	unlk();
}

static void await_turn(struct uni_ring *r, uint32_t idx)
{
	net_said_dead();
	for (int waited = 0;; waited = 1) {
		if (t_cancel)
			pthread_testcancel();
		uint32_t w = atomic_load_explicit(&r->det_word, memory_order_acquire);
		if (atomic_load_explicit(&H->det_off, memory_order_acquire) ||
		    (atomic_load_explicit(&H->det_owner, memory_order_acquire) == idx + 1 &&
		     atomic_load_explicit(&r->det_st, memory_order_relaxed) == UNI_DET_RUN)) {
			uni_fuzz();
			if (waited)
				uni_shim_det_resumed();
			return;
		}
		if (uni_futex_wait(&r->det_word, w, 10) == -ETIMEDOUT)
			watch();
	}
}

void uni_det_adopt(struct uni_ring *r, uint32_t idx, uint64_t key, uint64_t t)
{
	lk();
	r->det_key = key;
	dlog("adopt", r, t, (uint64_t)syscall(SYS_gettid));
	r->det_t = t;
	r->det_obj = 0;
	r->det_woken = 0;
	atomic_store(&r->det_st, UNI_DET_READY);
	uint32_t hi = atomic_load(&H->det_hi);
	while (idx + 1 > hi && !atomic_compare_exchange_weak(&H->det_hi, &hi, idx + 1))
		;
	/* (An owner that is this ring already: its thread before, gone.) */
	uint32_t o = atomic_load(&H->det_owner);
	if (!o || o == idx + 1)
		hand_on(-1);
	unlk();
}

void uni_det_turn(struct uni_ring *r, uint32_t idx, uint64_t t)
{
	lk();
	uint32_t o = atomic_load(&H->det_owner);
	r->det_t = t;
	atomic_store(&r->det_st, UNI_DET_READY);
	if (o == idx + 1 || !o)
		hand_on((int)idx);
	unlk();
	await_turn(r, idx);
}

static void block_begin(struct uni_ring *r, uint64_t obj, uint64_t t, uint64_t until, uint32_t net, uint32_t seq,
			void *pc)
{
	if (UNI_UNLIKELY(log_on()))
		dlog("block", r, t, code_off(pc));
	lk();
	r->det_net = net;
	r->det_net_seq = seq;
	r->det_net_gen = atomic_load_explicit(&H->det_sync_req, memory_order_relaxed);
	r->det_obj = obj;
	r->det_wt = t;
	r->det_t = until;
	r->det_seq = ++H->det_seq;
	r->det_woken = 0;
	atomic_store(&r->det_st, UNI_DET_BLOCKED);
	atomic_fetch_add(&g_blocked, 1);
	unlk();
	if (until == UINT64_MAX && atomic_load_explicit(&r->wait_kind, memory_order_relaxed) == UNI_WAIT_NONE) {
		/* For unid's deadlock reports: waiting for another thread. */
		r->wait_obj = obj;
		r->wait_since = uni_now_ns();
		r->wait_deadline = 0;
		r->wait_vt = t;
		r->wait_vdl = 0;
		r->stack[0] = 0;
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_COND, memory_order_release);
		t_marked = 1;
	}
}

void uni_det_block_begin(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until)
{
	(void)idx;
	block_begin(r, obj, t, until, UNI_DET_NET_NONE, 0, __builtin_return_address(0));
}

void uni_det_block_net_begin(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until,
			     uint32_t net, uint32_t seq)
{
	(void)idx;
	block_begin(r, obj, t, until, g_net ? net : UNI_DET_NET_NONE, seq, __builtin_return_address(0));
}

int uni_det_block_net(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until, uint32_t net,
		      uint32_t seq)
{
	block_begin(r, obj, t, until, g_net ? net : UNI_DET_NET_NONE, seq, __builtin_return_address(0));
	return uni_det_block_wait(r, idx, NULL);
}

int uni_det_block_wait(struct uni_ring *r, uint32_t idx, int (*still)(uint64_t obj))
{
	lk();
	/* What it waits for happened before it was registered (a waker
	 * without the turn: its real unlock or end comes before its wake-up,
	 * which takes this lock): it goes on at once. */
	if (still && atomic_load(&r->det_st) == UNI_DET_BLOCKED && !still(r->det_obj)) {
		r->det_t = net_floor(r->det_wt);
		r->det_woken = 1;
		atomic_store(&r->det_st, UNI_DET_READY);
		dlog("block-already", r, r->det_t, r->det_obj);
	}
	uint32_t o = atomic_load(&H->det_owner);
	if (o == idx + 1 || !o)
		hand_on((int)idx);
	unlk();
	await_turn(r, idx);
	atomic_fetch_sub(&g_blocked, 1);
	if (t_marked) {
		t_marked = 0;
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	}
	if (atomic_load_explicit(&H->det_off, memory_order_acquire))
		return -1;
	return (int)r->det_woken;
}

int uni_det_block(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until)
{
	uni_det_block_begin(r, idx, obj, t, until);
	return uni_det_block_wait(r, idx, NULL);
}

int uni_det_wake(uint64_t obj, uint64_t t, int all, uint64_t src)
{
	int n = 0;
	if (!atomic_load(&g_blocked) && !(obj >> 63))
		return 0; /* (nobody of this process waits) */
	uint32_t pid = (uint32_t)my_pid();
	lk();
	uint32_t hi = atomic_load(&H->det_hi);
	for (;;) {
		int best = -1;
		for (uint32_t i = 0; i < hi && i < H->max_rings; i++) {
			struct uni_ring *r = ring(i);
			if (((uint32_t)r->pid != pid && !(obj >> 63)) || r->det_obj != obj ||
			    atomic_load(&r->det_st) != UNI_DET_BLOCKED || atomic_load(&r->state) != UNI_RING_LIVE)
				continue;
			if (best < 0 || r->det_seq < ring((uint32_t)best)->det_seq)
				best = (int)i;
		}
		if (best < 0)
			break;
		struct uni_ring *r = ring((uint32_t)best);
		r->det_t = net_floor(t > r->det_wt ? t : r->det_wt);
		r->det_woken = 1;
		r->det_src = src;
		atomic_store(&r->det_st, UNI_DET_READY);
		dlog("wake", r, r->det_t, obj);
		n++;
		if (!all)
			break;
	}
	/* A waker without the turn (a thread that does not take part): the
	 * woken must not wait for a hand-off nobody makes. */
	if (n && !atomic_load(&H->det_owner))
		hand_on(-1);
	unlk();
	return n;
}

void uni_det_outside(struct uni_ring *r, uint32_t idx)
{
	/* UNI_DET_DEBUG=1: where (a code address of the shim's caller; its
	 * line: addr2line -e libunishim.so) a thread leaves the turn. */
	static int dbg = -1;
	if (dbg < 0) {
		const char *d = getenv("UNI_DET_DEBUG");
		dbg = d && *d == '1';
	}
	if (dbg)
		uni_shim_log("deterministic: rank %d thread %d waits outside the turn (from %p)", r->rank,
			     __atomic_load_n(&r->tid, __ATOMIC_RELAXED), __builtin_return_address(0));
	if (UNI_UNLIKELY(log_on()))
		dlog("outside", r, r->det_t, code_off(__builtin_return_address(0)));
	lk();
	atomic_store(&r->det_st, UNI_DET_OUTSIDE);
	atomic_fetch_add_explicit(&H->det_outside, 1, memory_order_relaxed);
	if (atomic_load(&H->det_owner) == idx + 1)
		hand_on(-1);
	unlk();
}

void uni_det_end(struct uni_ring *r, uint32_t idx)
{
	lk();
	atomic_store(&r->det_st, UNI_DET_NONE);
	if (atomic_load(&H->det_owner) == idx + 1)
		hand_on(-1);
	unlk();
}

int uni_det_live(void)
{
	return H && !atomic_load_explicit(&H->det_off, memory_order_relaxed);
}

/* Under the lock: the session goes on without the turn. 1: the first. */
static int abandon_locked(void)
{
	int first = !atomic_exchange(&H->det_off, 1);
	uint32_t hi = atomic_load(&H->det_hi);
	for (uint32_t i = 0; i < hi && i < H->max_rings; i++) {
		struct uni_ring *r = ring(i);
		atomic_store(&r->det_st, UNI_DET_NONE);
		atomic_fetch_add(&r->det_word, 1);
		uni_futex_wake(&r->det_word, 1);
	}
	atomic_store(&H->det_owner, 0);
	return first;
}

void uni_det_abandon(const char *why)
{
	lk();
	int first = abandon_locked();
	unlk();
	if (first)
		uni_shim_log("deterministic: %s: this session goes on without the turn (not deterministic)", why);
}
