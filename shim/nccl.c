/* The shim as NCCL (DESIGN section 4, "NCCL"; docs/nccl.md).
 *
 * libunishim.so exports the NCCL 2.28 API (each pnccl* strong, each nccl*
 * a weak alias, as libnccl does), so a preloaded shim replaces NCCL for a
 * program that links libnccl dynamically. It moves host buffers through
 * shared memory (device buffers through host copies made by the program's
 * CUDA runtime, on the caller's stream), with NCCL's semantics and error
 * codes, and in simulate mode times every operation by the session's
 * network model.
 *
 * Data path. A communicator is a shared-memory segment named after its
 * unique id (/dev/shm/uni-nccl-<id>), laid out from nranks: a header
 * (join count, barrier, the pids of the ranks, each rank's description of
 * its current collective), one slot of UNI_NCCL_SLOT bytes per rank for
 * collectives, and one ring of UNI_NCCL_PAIR bytes per ordered pair of
 * ranks for send/recv. A collective goes in chunks: every rank puts its
 * part of the chunk into its slot, a barrier, every rank builds its
 * result from the slots (reductions in rank order 0..n-1), a barrier.
 * Before the first chunk every rank checks that all called the same
 * operation with the same count, type, op and root (else
 * ncclInvalidArgument on every rank, with a message naming both). Send
 * and recv go through the pair's ring with a length header (a count
 * mismatch is an error); the ops of a group progress together, so a
 * group of sends and receives never deadlocks. Waits are futex slices
 * that notice a dead peer (ncclRemoteError), an aborted communicator and
 * the time-out UNI_NCCL_TIMEOUT (seconds, default 1800, PyTorch's default
 * for a process group; init too: a rank that never joins).
 *
 * Time (simulate mode). The calling thread's compute is charged on entry;
 * the copying is not (a GPU would do it). Each operation (each group, as
 * one) is then replayed as the point-to-point transfers of its algorithm
 * on virtual connections between the ranks (made-up addresses, matched by
 * unid like TCP ones), so the network model times them and they contend
 * with Gloo's traffic: AllReduce by ring (2(n-1) steps of S/n) or NCCL's
 * double binary tree (chosen by size as NCCL does, or by config), ring
 * AllGather and ReduceScatter n-1 steps, Broadcast and Reduce a pipelined
 * chain in 1 MiB chunks, AlltoAll, Gather and Scatter direct transfers,
 * Send/Recv one transfer. A send leaves when what it forwards has arrived;
 * the rank waits for the first of its pending receives, so it acts in
 * virtual-time order; the thread leaves the call at the time its part of
 * the algorithm ends (docs/nccl.md). */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cupti_glue.h"
#include "nccl_impl.h"
#include "nccl_pat.h"
#include "shim.h"
#include "uni/config.h"
#include "uni/shm.h"

#define UNI_NCCL_MAX_RANKS 1024
#define UNI_NCCL_SLOT (4u << 20)
#define UNI_NCCL_PAIR (1u << 20)
#define UNI_NCCL_CHUNK (1u << 20) /* pipelining unit of Broadcast/Reduce timing */
#define UNI_NCCL_MAX_USER_OPS 256
#define UNI_NCCL_NCH 16 /* virtual channels per peer (Virtual time, below) */
/* Send/Recv flow control (simulate mode; docs/nccl.md "Flow control"):
 * NCCL's p2p FIFO over the network, NCCL_STEPS slots of
 * NCCL_P2P_NET_CHUNKSIZE, and the channel that carries its credits. */
#define UNI_NCCL_FC_SLOTS 8
#define UNI_NCCL_FC_CHUNK (128u << 10)
#define UNI_NCCL_FC_CH (UNI_NCCL_NCH - 1)
#define UNI_NCCL_FC_CREDIT 8 /* bytes of one credit */
/* A wait for peers while its timing's reads are asked for ("While the
 * data moves"), woken by their answers (or polling them every
 * millisecond), says what it waits for and looks for dead peers, an abort
 * and the time-out this often. */
#define UNI_NCCL_LOOK_NS 20000000ull
#define ID_MAGIC 0x4e4e4955u  /* "UINN" */
#define SEG_MAGIC 0x554e4943434c4e31ull
#define COMM_MAGIC 0x636f6d6du
#define COMM_DEAD 0xdeadc0deu

enum kind { K_ALLREDUCE = 1, K_BCAST, K_REDUCE, K_ALLGATHER, K_REDSCAT, K_ALLTOALL, K_GATHER, K_SCATTER,
	    K_SEND, K_RECV, K_SPLIT };
static const char *const kind_name[] = {"?", "AllReduce", "Broadcast", "Reduce", "AllGather", "ReduceScatter",
					"AlltoAll", "Gather", "Scatter", "Send", "Recv", "CommSplit"};

struct desc {
	uint32_t kind, type, op, root;
	uint64_t count;
	uint64_t seq;
};

/* The call a rank is in (0: none): its first operation on the
 * communicator, that operation's peer, how many operations of the
 * communicator the call has (a group). Written by the rank, read by its
 * peers only to say what they wait for. */
struct incall {
	_Atomic uint32_t kind;
	int32_t peer;
	uint32_t nops, pad;
};

struct pairbox {
	_Atomic uint32_t wr, rd; /* bytes written / read, mod 2^32 */
	_Atomic uint32_t rbusy;  /* the reader copies a message's rest kept outside the ring */
	uint32_t pad;
};

struct seg {
	uint64_t magic;
	_Atomic uint32_t nranks;
	_Atomic uint32_t joined;
	_Atomic uint32_t aborted;
	_Atomic uint32_t bar_arrived;
	_Atomic uint32_t bar_gen;
	_Atomic uint32_t join_open; /* 1: every rank joined (its last opened the join) */
	_Atomic int32_t pid[UNI_NCCL_MAX_RANKS];
	_Atomic int32_t hnode[UNI_NCCL_MAX_RANKS]; /* simulate: each rank's node ("Nodes") */
	_Atomic int32_t nnode[UNI_NCCL_MAX_RANKS]; /* simulate: each rank's network node (its transfers') */
	/* Meetings (simulate: the join, CommSplit): each rank's clock at its
	 * arrival, its thread's ring (1 + index, 0: none) and tid; the
	 * latest clock, written by the last to arrive. */
	uint64_t meet_vt[UNI_NCCL_MAX_RANKS];
	uint64_t meet_src[UNI_NCCL_MAX_RANKS]; /* its thread's position among its events (unitrace replay) */
	_Atomic uint32_t meet_ring[UNI_NCCL_MAX_RANKS]; /* taken (0) by the last, or by the rank as it leaves */
	int32_t meet_tid[UNI_NCCL_MAX_RANKS];
	uint64_t meet_t;
	struct desc desc[UNI_NCCL_MAX_RANKS];
	struct incall in[UNI_NCCL_MAX_RANKS]; /* the call each rank is in now (deadlock reports) */
	/* then: struct pairbox[n * n], pair rings n * n * UNI_NCCL_PAIR, slots n * UNI_NCCL_SLOT */
};

/* Flow control with one peer (docs/nccl.md "Flow control"): chunks sent
 * to it, and the credits it owes this rank as a sender, in the order it
 * sends them: q[qh .. qn) not read yet, each the count of chunks it says
 * were consumed; covered: what the credits read so far (or to be read by
 * the operation being timed) say. */
struct fcpeer {
	uint64_t sent, covered;
	uint64_t due; /* consumed before c's next operation may move (fc_gates) */
	int cover;    /* the read that made covered in the graph being built (-1: none) */
	uint64_t *q;
	size_t qh, qn, qcap;
};

struct user_op {
	int used, type;
	uint8_t scalar[8];
	const void *ptr; /* ncclScalarDevice: read when the op runs */
	int ptr_dev;     /* ptr is device memory: copied to the host by the runtime */
};

struct ncclComm {
	uint32_t magic;
	int rank, nranks;
	struct seg *sh;
	size_t shsize;
	struct pairbox *box;
	uint8_t *rings, *slots;
	uint64_t seq;
	uint64_t shrinks; /* CommShrink calls made on it */
	uint8_t key[16]; /* the unique id's key */
	_Atomic int async_err;
	int blocking;
	/* A non-blocking init still joining (async_err ncclInProgress until
	 * it ends): its thread, joined by Destroy or Abort. */
	pthread_t init_thread;
	int init_thread_live;
	/* Made in a group, its join not started yet (init_call): Destroy
	 * then aborts it, so that its peers are not left waiting. */
	int deferred;
	/* Deterministic mode: a non-blocking init whose join the caller's
	 * later calls complete in turn (GetAsyncError once every rank is in,
	 * Destroy, Abort) instead of a thread outside the turn. */
	_Atomic int det_join;
	int meet_last; /* it was the last to join (opened the join: "Meetings") */
	char seg[64];
	struct user_op uop[UNI_NCCL_MAX_USER_OPS];
	/* simulate: a virtual connection to each peer and channel (+1),
	 * stream offsets, their generation (a new one after a failure) */
	uint32_t *vc;
	uint64_t *tx, *rx;
	uint8_t gen;
	/* simulate: Send/Recv flow control with each peer (with vc) */
	struct fcpeer *fc;
	/* Send/Recv messages sent to each peer [0, n) and received from each
	 * [n, 2n): the number of a message kept outside the ring (spill) */
	uint64_t *p2pn;
	/* simulate: the network node its transfers leave from (-1: this
	 * process's rank); see init_rank. */
	int node;
	/* Its CUDA device (ncclCommCuDevice): the caller's current one at
	 * InitRank, the parent's for Split and Shrink, InitAll's list; 0 where
	 * no runtime answers. The shim's CUDA calls for it run with it
	 * current (dev_use). */
	int dev;
	/* Device work queued on a stream and not run yet ("Device buffers"):
	 * groups whose data moves in a host function of pending_stream; refs
	 * holds the memory while they may still run (the caller's one, and
	 * one per such group). */
	_Atomic uint32_t pending;
	cudaStream_t pending_stream;
	_Atomic int refs;
	/* threads inside a call on it (each holds a ref); the virtual
	 * connections close when the communicator is freed and none is */
	_Atomic int calls;
	_Atomic int vclosed;
	int local_ranks; /* ranks of it in this process (0: not counted yet) */
	/* simulate: its nodes (comm_nodes, at init): nnodes; for
	 * each rank its node and place in it; ranks by node and place
	 * (NCCL's ring order), each node's first index in it and size. */
	int nnodes;
	int *nidx, *npos, *nrank, *nstart, *nsize;
	/* Each rank's process as a pidfd (dead_peer; -1: not opened yet, -2:
	 * none: kill and /proc instead); NULL until the first look. */
	_Atomic(_Atomic int *) pidfd;
};

/* Everything below with a prototype in nccl.h is the exported API. */
#pragma GCC visibility push(default)

/* Errors ------------------------------------------------------------------ */

static __thread char t_last_err[512];

static ncclResult_t fail(ncclComm_t comm, ncclResult_t r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ncclResult_t fail(ncclComm_t comm, ncclResult_t r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t_last_err, sizeof(t_last_err), fmt, ap);
	va_end(ap);
	uni_shim_log("NCCL: %s", t_last_err);
	if (comm && r != ncclInvalidArgument && r != ncclInvalidUsage)
		atomic_store(&comm->async_err, r);
	return r;
}

static double timeout_s(void)
{
	const char *e = getenv("UNI_NCCL_TIMEOUT");
	double t = e ? atof(e) : 0;
	return t > 0 ? t : 1800;
}

/* UNI_NCCL_TEST_KILL_TIMING=1 (tests only): the rank kills itself after
 * the data of its first operation that receives moved, before timing it. */
static int test_kill_timing(void)
{
	static int v = -1;
	if (v < 0) {
		const char *e = getenv("UNI_NCCL_TEST_KILL_TIMING");
		v = e && *e == '1';
	}
	return v;
}

static uint64_t mono_ns(void)
{
	return uni_now_ns();
}

/* UNI_NCCL_TEST_STALL=R:MS[:K] (tests only): rank R of a communicator,
 * in its operations that receive 64 kB or more from the K-th on (default
 * 1; counted over the process), stops for MS ms of real time as its data
 * begins to move (a process the host does not run for a while, as on a
 * loaded host: it spins, yielding). */
static int stall_set, stall_rank, stall_ms, stall_k = 1;

static void stall_read(void)
{
	const char *e = getenv("UNI_NCCL_TEST_STALL");
	stall_set = e && sscanf(e, "%d:%d:%d", &stall_rank, &stall_ms, &stall_k) >= 2;
}

static void test_stall(ncclComm_t c, uint64_t bytes)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	static _Atomic int seen;
	pthread_once(&once, stall_read); /* (every operation with receives asks) */
	if (!stall_set || bytes < 65536 || stall_rank != c->rank || atomic_fetch_add(&seen, 1) + 1 < stall_k)
		return;
	/* (Runnable, as such a process is: a thread asleep for 250 ms while
	 * it counts as running is taken to be blocked outside the shim. It
	 * yields: tests running beside it keep their CPU.) */
	for (uint64_t end = mono_ns() + (uint64_t)stall_ms * 1000000u; mono_ns() < end;)
		sched_yield();
}

/* Layout ------------------------------------------------------------------ */

static size_t seg_size(int n)
{
	return sizeof(struct seg) + (size_t)n * n * sizeof(struct pairbox) + (size_t)n * n * UNI_NCCL_PAIR +
	       (size_t)n * UNI_NCCL_SLOT;
}

static void seg_layout(ncclComm_t c)
{
	int n = c->nranks;
	c->box = (struct pairbox *)(c->sh + 1);
	c->rings = (uint8_t *)(c->box + (size_t)n * n);
	c->slots = c->rings + (size_t)n * n * UNI_NCCL_PAIR;
}

static uint8_t *slot(ncclComm_t c, int r)
{
	return c->slots + (size_t)r * UNI_NCCL_SLOT;
}

/* Waiting ------------------------------------------------------------------ */

/* The pidfds the shim holds in this process, and how many it may: a
 * quarter of the descriptors the process may open (the program's are
 * the rest), kept in the upper half of the numbers (select() and
 * programs that count on low numbers keep the lower half). */
static _Atomic int g_pidfds;

static int pidfd_budget(int *floor)
{
	struct rlimit rl;
	rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (cur == RLIM_INFINITY || cur > 1u << 20)
		cur = 1u << 20;
	*floor = (int)(cur / 2);
	return (int)(cur / 4);
}

/* Rank r's process as a pidfd (-2: none to be had), opened at the first
 * look: 1 when the process is gone already. */
static int peer_pidfd(ncclComm_t c, int r, int pid, int *fd)
{
	*fd = atomic_load_explicit(&c->pidfd[r], memory_order_acquire);
	if (*fd != -1)
		return 0;
	int f = -1, floor = 0;
#ifdef SYS_pidfd_open
	if (atomic_fetch_add(&g_pidfds, 1) < pidfd_budget(&floor)) {
		int saved = errno;
		f = (int)syscall(SYS_pidfd_open, pid, 0); /* (close-on-exec) */
		int gone = f < 0 && errno == ESRCH;
		if (f >= 0 && f < floor) {
			int hi = fcntl(f, F_DUPFD_CLOEXEC, floor);
			if (hi >= 0) {
				close(f);
				f = hi;
			}
		}
		errno = saved;
		if (f < 0)
			atomic_fetch_sub(&g_pidfds, 1);
		if (gone)
			return 1;
	} else {
		atomic_fetch_sub(&g_pidfds, 1);
	}
#endif
	int want = f >= 0 ? f : -2, expect = -1;
	if (!atomic_compare_exchange_strong(&c->pidfd[r], &expect, want)) {
		if (f >= 0) { /* another thread's came first */
			close(f);
			atomic_fetch_sub(&g_pidfds, 1);
		}
		want = expect;
	}
	*fd = want;
	return 0;
}

/* A peer (peer, or any for -1) whose process died: its rank, its pid in
 * *pid; -1 when none. One poll of the peers' pidfds (a pidfd turns
 * readable when its process ends, a zombie too): a look at 63 peers took
 * 252 system calls with kill and /proc (their stat, for zombies), and 64
 * ranks waiting spent most of two CPUs' system time there. Where the
 * kernel has no pidfd_open (before 5.3), kill and /proc. Ranks of this
 * process (one thread each) are never looked at. */
static int dead_peer(ncclComm_t c, int peer, int *pid)
{
	if (!atomic_load_explicit(&c->pidfd, memory_order_acquire)) {
		_Atomic int *a = malloc((size_t)c->nranks * sizeof(*a)), *expect = NULL;
		if (a) {
			for (int r = 0; r < c->nranks; r++)
				atomic_init(&a[r], -1);
			if (!atomic_compare_exchange_strong(&c->pidfd, &expect, a))
				free(a);
		}
	}
	struct pollfd one, *pf = &one;
	int one_who, *who = &one_who, cap = 1, n = 0, self = (int)getpid();
	if (peer < 0 && c->nranks > 2) {
		struct pollfd *a = malloc((size_t)c->nranks * sizeof(*a));
		int *b = malloc((size_t)c->nranks * sizeof(*b));
		if (a && b) {
			pf = a;
			who = b;
			cap = c->nranks;
		} else {
			free(a);
			free(b);
		}
	}
	int dead = -1;
	for (int r = 0; r < c->nranks && dead < 0; r++) {
		if (r == c->rank || (peer >= 0 && r != peer))
			continue;
		int p = atomic_load(&c->sh->pid[r]), fd = -2;
		if (p <= 0 || p == self)
			continue;
		if (c->pidfd && peer_pidfd(c, r, p, &fd)) {
			*pid = p;
			dead = r;
		} else if (fd < 0 || n == cap) { /* (no pidfd, or no room: the old look) */
			if (uni_pid_dead(p)) {
				*pid = p;
				dead = r;
			}
		} else {
			pf[n] = (struct pollfd){.fd = fd, .events = POLLIN};
			who[n++] = r;
		}
	}
	if (dead < 0 && n > 0) {
		int saved = errno;
		struct timespec zero = {0, 0};
		if (syscall(SYS_ppoll, pf, (unsigned long)n, &zero, NULL, (size_t)8) > 0)
			for (int i = 0; i < n && dead < 0; i++) {
				if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
					continue;
				/* Still a pidfd? The program may have closed it and
				 * opened another file under its number (no longer
				 * ours: looked at the old way from now on). */
				int p = atomic_load(&c->sh->pid[who[i]]);
				int ours = syscall(SYS_pidfd_send_signal, pf[i].fd, 0, NULL, 0) == 0 || errno == ESRCH ||
					   errno == EPERM;
				if (ours || uni_pid_dead(p)) {
					dead = who[i];
					*pid = p;
				}
				if (!ours) {
					atomic_store(&c->pidfd[who[i]], -2);
					atomic_fetch_sub(&g_pidfds, 1);
				}
			}
		errno = saved;
	}
	if (pf != &one) {
		free(pf);
		free(who);
	}
	return dead;
}

/* Its pidfds closed (the communicator is freed). A rank's set to -2
 * after a false alarm is left alone (its number is the program's now). */
static void close_pidfds(ncclComm_t c)
{
	if (!c->pidfd)
		return;
	for (int r = 0; r < c->nranks; r++)
		if (atomic_load(&c->pidfd[r]) >= 0) {
			close(atomic_load(&c->pidfd[r]));
			atomic_fetch_sub(&g_pidfds, 1);
		}
	free((void *)c->pidfd);
	c->pidfd = NULL;
}

/* Why a wait must stop, or ncclSuccess. peer: the rank waited for, or -1
 * for all (a barrier): a peer that finished its work and exited is no
 * error to a wait that does not need it; -2: only the time-out (the
 * caller saw no abort or death before its last look, peers_gone). */
static ncclResult_t wait_check(ncclComm_t c, uint64_t since, const char *what, int peer)
{
	if (peer != -2 && atomic_load(&c->sh->aborted))
		return fail(c, ncclRemoteError, "rank %d: communicator aborted while waiting for %s", c->rank, what);
	int pid, dead = peer != -2 ? dead_peer(c, peer, &pid) : -1;
	if (dead >= 0)
		return fail(c, ncclRemoteError, "rank %d: rank %d (pid %d) died while rank %d waited for %s", c->rank,
			    dead, pid, c->rank, what);
	if ((double)(mono_ns() - since) / 1e9 > timeout_s())
		return fail(c, ncclRemoteError, "rank %d: no progress for %.0f s waiting for %s (UNI_NCCL_TIMEOUT)",
			    c->rank, timeout_s(), what);
	return ncclSuccess;
}

/* The communicator aborted or the peer (-1: any) died: sampled before a
 * last look at the rings, so that what a peer sent before it went is
 * taken first. */
static int peers_gone(ncclComm_t c, int peer)
{
	int pid;
	return atomic_load(&c->sh->aborted) || dead_peer(c, peer, &pid) >= 0;
}

static uint64_t comm_key64(ncclComm_t c)
{
	uint64_t k;
	memcpy(&k, c->key, sizeof(k));
	return k;
}

/* The calling rank of c is in a call now (kind 0: none): its first
 * operation on c, that operation's peer, how many operations of c the
 * call has; for its peers' deadlock reports. */
static void in_call(ncclComm_t c, int kind, int peer, uint32_t nops)
{
	struct incall *in = &c->sh->in[c->rank];
	in->peer = peer;
	in->nops = nops;
	atomic_store_explicit(&in->kind, (uint32_t)kind, memory_order_release);
}

/* What rank p of c is doing, for a wait's description. */
static int rank_doing(ncclComm_t c, int p, char *buf, size_t len)
{
	const struct incall *in = &c->sh->in[p];
	uint32_t k = atomic_load_explicit(&in->kind, memory_order_acquire);
	int n;
	if (!atomic_load(&c->sh->pid[p]))
		n = snprintf(buf, len, "rank %d has not joined", p);
	else if (k > K_SPLIT || !k)
		n = snprintf(buf, len, "rank %d is in no call on it", p);
	else if (in->nops > 1)
		n = snprintf(buf, len, "rank %d is in a group of %u calls on it, the first nccl%s", p, in->nops,
			     kind_name[k]);
	else
		n = snprintf(buf, len, "rank %d is in nccl%s", p, kind_name[k]);
	if ((k == K_SEND || k == K_RECV) && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " %s rank %d", k == K_SEND ? "to" : "from", in->peer);
	return n;
}

/* Publishes what the calling rank of c waits for in its call `what`
 * (uni_shim_nccl_wait; the deadlock report says it): peer >= 0 that rank;
 * -1 every rank (a barrier: those that have not described the call this
 * rank is in, if the barrier is a call's first; else how many arrived). */
static void note_wait_why(ncclComm_t c, const char *what, int peer, const char *why)
{
	if (!uni_shim_simulating())
		return;
	char t[216];
	size_t len = sizeof(t);
	/* what: an operation's name, or (the join's last barrier) a phrase */
	int n = snprintf(t, len, "in nccl%s on NCCL communicator %016llx (rank %d of %d): ",
			 strchr(what, ' ') ? "CommInitRank" : what, (unsigned long long)comm_key64(c), c->rank,
			 c->nranks);
	if (n < 0 || (size_t)n >= len)
		return;
	if (peer >= 0) {
		n += snprintf(t + n, len - (size_t)n, "waits for rank %d%s; ", peer, why ? why : "");
		if ((size_t)n < len)
			rank_doing(c, peer, t + n, len - (size_t)n);
	} else {
		uint64_t mine = c->sh->desc[c->rank].seq;
		int missing = 0;
		for (int p = 0; p < c->nranks && (size_t)n + 40 < len; p++) {
			const struct desc *e = &c->sh->desc[p], *d = &c->sh->desc[c->rank];
			int empty = e->seq == mine && !e->count && (e->kind != d->kind || d->count) && e->kind <= K_SPLIT;
			if (p == c->rank || (e->seq >= mine && !empty))
				continue;
			n += snprintf(t + n, len - (size_t)n, "%s", missing++ ? "; " : "waits for ranks that have not called it: ");
			if (empty)
				n += snprintf(t + n, len - (size_t)n,
					      "rank %d called nccl%s with count 0 (discarded: it does not come)", p,
					      kind_name[e->kind]);
			else
				n += rank_doing(c, p, t + n, len - (size_t)n);
		}
		if (!missing)
			snprintf(t + n, len - (size_t)n, "waits for the other ranks (%u of %d arrived)",
				 atomic_load(&c->sh->bar_arrived) + 0u, c->nranks);
	}
	uni_shim_nccl_wait(comm_key64(c), t);
}

static void note_wait(ncclComm_t c, const char *what, int peer)
{
	note_wait_why(c, what, peer, NULL);
}

/* Marks c aborted for every rank: peers blocked in its barriers wake and
 * return an error. */
static void abort_all(ncclComm_t c)
{
	atomic_store(&c->sh->aborted, 1);
	uni_futex_wake(&c->sh->bar_gen, INT32_MAX);
	uni_shim_det_nccl_wake(comm_key64(c));
}

/* Waits for a peer of c to move: in turn (*det; given up: 0 from then),
 * else a futex wait on w while it holds v, ms at most. In turn it does
 * not block when peer (-1: any) is gone or c aborted (-2: only aborted):
 * nothing would wake it; nor when a rank ends after that look. asked:
 * the timing's reads are asked for (prog_poll), and unid's answer to
 * them wakes the wait too (futex_waitv on w and the thread's answer
 * word); where the kernel has none, the wait looks every millisecond
 * (which cost 3 to 4% of a core per waiting rank: 64 ranks waiting kept
 * two CPUs busy, docs/benchmarks.md). */
static void wait_peers(ncclComm_t c, int *det, int peer, _Atomic uint32_t *w, uint32_t v, int ms, int asked)
{
	if (*det) {
		uni_shim_det_nccl_look();
		if ((peer == -2 ? atomic_load(&c->sh->aborted) != 0 : peers_gone(c, peer)) ||
		    uni_shim_det_nccl_block(comm_key64(c)) >= 0)
			return;
	}
	*det = 0;
	if (asked && uni_shim_wait_word_or_answer(w, v, ms) == 0)
		return;
	uni_futex_wait(w, v, asked ? 1 : ms);
}

/* Milliseconds to real time at (at least 1). */
static int ms_until(uint64_t at)
{
	uint64_t now = mono_ns();
	return at > now + 1000000 ? (int)((at - now) / 1000000) : 1;
}

static int prog_poll(void);

/* Meetings (docs/nccl.md "Meetings"): the ranks of c meet in real time
 * (the join, CommSplit) as NCCL's do through its bootstrap network, and
 * every rank goes on from the latest of their clocks at arrival. A rank
 * that waits for the others does not hold the nic horizon back at its own
 * clock (the ranks still to come do, at theirs): a rank in the join
 * beside ranks asleep in virtual time (polling for the unique id) held
 * the network still until unid found it blocked outside the shim, 250 ms
 * of real time each. The last to arrive gives the others a floor at the
 * latest clock before it opens the meeting, so that none is left out
 * between the opening and its publishing its clock.
 *
 * Each rank's entry names its thread's ring while it waits; whoever
 * takes the entry first (atomic_exchange to 0) decides: the last to
 * arrive, which then gives the thread its floor, or the rank itself as it
 * leaves (a wait that failed: a time-out, an abort, a dead peer; or one
 * that a rank not in the meeting opened, calls that do not match), after
 * which no floor comes. A rank that finds its entry taken waits for the
 * opening, which comes right after the floors, before it clears its
 * floor: a floor written after that would hold the horizon back at a
 * time the thread has left.
 *
 * A rank's arrival (sync: its thread takes part; else only its clock
 * counts, a non-blocking init's): 1 when its thread takes part (it has a
 * ring, in simulate mode). */
static int meet_arrive(ncclComm_t c, int sync)
{
	struct seg *s = c->sh;
	int32_t tid = 0;
	uint64_t vt = 0, src = 0;
	/* (A caller that goes on at once still has a position: the others
	 * take its clock from there.) */
	uint32_t ring = uni_shim_meet_self(&tid, &vt, &src);
	if (!ring)
		vt = uni_shim_vt_charge();
	if (!sync)
		ring = 0, tid = 0;
	s->meet_vt[c->rank] = vt;
	s->meet_src[c->rank] = src;
	s->meet_tid[c->rank] = tid;
	atomic_store_explicit(&s->meet_ring[c->rank], ring, memory_order_relaxed);
	return ring != 0;
}

/* The last to arrive, before it opens the meeting: the latest clock, and
 * the others' floors there (its own entry taken too). */
static uint64_t meet_close(ncclComm_t c)
{
	struct seg *s = c->sh;
	uint64_t t = 0;
	for (int r = 0; r < c->nranks; r++)
		if (s->meet_vt[r] > t)
			t = s->meet_vt[r];
	s->meet_t = t;
	for (int r = 0; r < c->nranks; r++) {
		uint32_t ring = atomic_exchange(&s->meet_ring[r], 0);
		if (ring && r != c->rank)
			uni_shim_meet_floor(ring, s->meet_tid[r], t);
	}
	uni_shim_meet_floors_set();
	return t;
}

/* The calling rank, which took part in a meeting, goes on from t (0: its
 * own clock; in turn, a turn there): from the latest of the ranks' clocks
 * at their arrival, each taken from its thread (unitrace replay). */
static void meet_go(ncclComm_t c, uint64_t t)
{
	if (t)
		uni_shim_meet_takes(c->nranks, c->sh->meet_src, c->sh->meet_vt, t);
	else
		uni_shim_meet_wait(0, 0);
	if (t && uni_shim_det_nccl())
		uni_shim_det_turn();
}

/* The meeting is over for the calling rank, a waiter that took part
 * (meet_arrive 1), whether it was opened (*open no longer v) or its wait
 * failed. The rank goes on from the latest clock if the last to arrive
 * gave it its floor, else from its own. */
static void meet_end(ncclComm_t c, _Atomic uint32_t *open, uint32_t v)
{
	struct seg *s = c->sh;
	uint64_t t = 0;
	if (!atomic_exchange(&s->meet_ring[c->rank], 0)) {
		/* Taken by the last to arrive: the opening follows its floors
		 * (1 s at most: it may have died between). */
		for (int i = 0; i < 1000 && atomic_load_explicit(open, memory_order_acquire) == v; i++)
			uni_futex_wait(open, v, 1);
		if (atomic_load_explicit(open, memory_order_acquire) != v)
			t = s->meet_t;
	}
	meet_go(c, t);
}

static ncclResult_t barrier_wait(ncclComm_t c, const char *what, uint32_t gen);

/* A barrier of c's ranks; sync: a meeting (above). */
static ncclResult_t barrier_x(ncclComm_t c, const char *what, int sync)
{
	struct seg *s = c->sh;
	uint32_t gen = atomic_load_explicit(&s->bar_gen, memory_order_acquire);
	int part = sync ? meet_arrive(c, 1) : 0;
	if (atomic_fetch_add_explicit(&s->bar_arrived, 1, memory_order_acq_rel) == (uint32_t)c->nranks - 1) {
		uint64_t t = sync ? meet_close(c) : 0;
		atomic_store_explicit(&s->bar_arrived, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->bar_gen, 1, memory_order_release);
		uni_futex_wake(&s->bar_gen, INT32_MAX);
		uni_shim_det_nccl_wake(comm_key64(c));
		if (part)
			meet_go(c, t);
		return ncclSuccess;
	}
	if (part && !uni_shim_det_nccl()) /* (in turn the network moves in turn) */
		uni_shim_meet_wait(1, 0);
	ncclResult_t r = barrier_wait(c, what, gen);
	if (part)
		meet_end(c, &s->bar_gen, gen);
	return r;
}

static ncclResult_t barrier(ncclComm_t c, const char *what)
{
	return barrier_x(c, what, 0);
}

static ncclResult_t barrier_wait(ncclComm_t c, const char *what, uint32_t gen)
{
	struct seg *s = c->sh;
	uint64_t since = mono_ns(), look = 0;
	int spin = 0, det = uni_shim_det_nccl();
	for (; atomic_load_explicit(&s->bar_gen, memory_order_acquire) == gen; spin++) {
		if (spin < 200 && !det)
			continue;
		int asked = prog_poll();
		uint64_t now = mono_ns();
		if (asked && now < look) {
			wait_peers(c, &det, -1, &s->bar_gen, gen, ms_until(look), 1);
			continue;
		}
		look = now + UNI_NCCL_LOOK_NS;
		note_wait(c, what, -1);
		/* In turn: until the last to arrive wakes it (no spinning: the
		 * others need the turn to come). */
		wait_peers(c, &det, -1, &s->bar_gen, gen, asked ? UNI_NCCL_LOOK_NS / 1000000 : 100, asked);
		spin = spin < 200 ? 200 : spin;
		/* A peer's death or an abort counts only if the barrier was
		 * still closed after it was seen: the last to arrive opens it
		 * and may be gone (or abort) at once. */
		int gone = peers_gone(c, -1);
		if (atomic_load_explicit(&s->bar_gen, memory_order_acquire) != gen)
			break;
		ncclResult_t r = wait_check(c, since, what, gone ? -1 : -2);
		if (r != ncclSuccess) {
			uni_shim_nccl_wait(0, NULL);
			return r;
		}
	}
	if (spin >= 200)
		uni_shim_nccl_wait(0, NULL);
	return ncclSuccess;
}

/* Unique ids and init ------------------------------------------------------- */

static int comm_nodes(ncclComm_t c);

struct id_layout {
	uint32_t magic;
	uint32_t pad;
	uint8_t key[16];
};

ncclResult_t pncclGetUniqueId(ncclUniqueId *uniqueId)
{
	if (!uniqueId)
		return fail(NULL, ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
	memset(uniqueId, 0, sizeof(*uniqueId));
	struct id_layout *l = (struct id_layout *)uniqueId->internal;
	l->magic = ID_MAGIC;
	if (getrandom(l->key, sizeof(l->key), 0) != (ssize_t)sizeof(l->key)) {
		uint64_t a = mono_ns() ^ ((uint64_t)getpid() << 32), b = (uint64_t)(uintptr_t)uniqueId;
		memcpy(l->key, &a, 8);
		memcpy(l->key + 8, &b, 8);
	}
	return ncclSuccess;
}

static void rt_look(void);

/* The join's wait, for a deadlock report: the ranks not there yet. */
static void note_join(ncclComm_t c)
{
	if (!uni_shim_simulating())
		return;
	char t[216];
	size_t k = (size_t)snprintf(t, sizeof(t), "in ncclCommInitRank on NCCL communicator %016llx (rank %d of %d): "
				    "waits for rank%s ", (unsigned long long)comm_key64(c), c->rank, c->nranks,
				    c->nranks - (int)atomic_load(&c->sh->joined) > 1 ? "s" : "");
	for (int r = 0, first = 1; r < c->nranks && k + 16 < sizeof(t); r++)
		if (!atomic_load(&c->sh->pid[r])) {
			k += (size_t)snprintf(t + k, sizeof(t) - k, "%s%d", first ? "" : ", ", r);
			first = 0;
		}
	if (k + 10 < sizeof(t))
		snprintf(t + k, sizeof(t) - k, " to join");
	uni_shim_nccl_wait(comm_key64(c), t);
}

/* The rank joined c's segment: wait for everyone, or the time-out names
 * who did not; an abort ends the wait. sync: the join is a meeting for
 * the calling thread (a blocking init; "Meetings" above barrier_x). */
static ncclResult_t init_join(ncclComm_t c, int sync)
{
	struct seg *s = c->sh;
	uint64_t since = mono_ns();
	int det = uni_shim_det_nccl();
	if (sync && c->meet_last) {
		meet_go(c, s->meet_t); /* (it opened the join itself) */
		sync = 0;
	}
	if (sync && !det && !atomic_load_explicit(&s->join_open, memory_order_acquire))
		uni_shim_meet_wait(1, 0);
	for (;;) {
		if (atomic_load_explicit(&s->join_open, memory_order_acquire))
			break;
		note_join(c);
		wait_peers(c, &det, -2, &s->join_open, 0, 50, 0);
		if (atomic_load(&s->aborted)) {
			uni_shim_nccl_wait(0, NULL);
			if (sync)
				meet_end(c, &s->join_open, 0);
			shm_unlink(c->seg); /* nobody else may join it now */
			return fail(NULL, ncclRemoteError, "ncclCommInitRank: rank %d: the communicator was aborted "
				    "while it joined", c->rank);
		}
		if ((double)(mono_ns() - since) / 1e9 > timeout_s()) {
			char missing[256] = "";
			size_t k = 0;
			for (int r = 0; r < c->nranks && k + 12 < sizeof(missing); r++)
				if (!atomic_load(&s->pid[r]))
					k += (size_t)snprintf(missing + k, sizeof(missing) - k, "%s%d", k ? ", " : "", r);
			/* Stays counted as joined (and its pid as present): the
			 * others report the same missing ranks. */
			uni_shim_nccl_wait(0, NULL);
			if (sync)
				meet_end(c, &s->join_open, 0);
			shm_unlink(c->seg);
			return fail(NULL, ncclRemoteError,
				    "ncclCommInitRank: rank %d waited %.0f s for ranks %s to join (UNI_NCCL_TIMEOUT)",
				    c->rank, timeout_s(), missing);
		}
	}
	uni_shim_nccl_wait(0, NULL);
	if (sync)
		meet_end(c, &s->join_open, 0);
	ncclResult_t r = barrier(c, "the other ranks to finish joining");
	if (r != ncclSuccess) {
		shm_unlink(c->seg); /* rank 0 may never get to it */
		return r;
	}
	/* Every rank has it mapped: the name can go (no stale segments). */
	if (c->rank == 0)
		shm_unlink(c->seg);
	/* Its nodes, from every rank's entry (written before it joined):
	 * every rank must see the same, so no rank may go without. */
	if (comm_nodes(c) <= 0)
		return fail(NULL, ncclSystemError, "ncclCommInitRank: rank %d: out of memory", c->rank);
	return ncclSuccess;
}

static void *join_thread(void *p)
{
	ncclComm_t c = p;
	uni_shim_quiet_io(1);
	ncclResult_t r = init_join(c, 0);
	atomic_store(&c->async_err, r);
	uni_shim_quiet_io(0);
	return NULL;
}

/* Split and Shrink: the parent's node, for the communicator being made;
 * and the device (Split, Shrink, InitAll; -1: the caller's current one). */
static __thread int t_parent_node = -2;
static __thread int t_init_dev = -1;
static int rt_device(void);

/* The calling thread's group (GroupStart to GroupEnd): its depth, the
 * operations queued, the first error of a call in it, the inits joining
 * meanwhile (init_call). */
#define UNI_NCCL_MAX_GROUP 2048
static __thread int t_depth;
static __thread struct op *t_ops;
static __thread int t_nops;
static __thread ncclResult_t t_group_err;
static __thread ncclComm_t *t_inits;
static __thread int t_ninits;

/* A call's argument error, inside a group also the group's (GroupEnd). */
static ncclResult_t arg_err(ncclResult_t r)
{
	if (t_depth > 0 && t_group_err == ncclSuccess)
		t_group_err = r;
	return r;
}

/* The queues are freed as their thread ends (room for 2048 operations,
 * hundreds of kB: a program that runs groups from many short threads lost
 * that per thread). */
static pthread_key_t g_queue_key[2];
static pthread_once_t g_queue_once = PTHREAD_ONCE_INIT;
static void queue_free(void *p)
{
	/* (Other destructors of the thread that run later may still make
	 * NCCL calls: they start from an empty queue.) */
	if (p == t_ops) {
		t_ops = NULL;
		t_nops = 0;
	} else if (p == t_inits) {
		t_inits = NULL;
		t_ninits = 0;
	}
	free(p);
}

static void queue_keys(void)
{
	for (int i = 0; i < 2; i++)
		pthread_key_create(&g_queue_key[i], queue_free);
}

static void *queue_alloc(int which, size_t size)
{
	void *p = calloc(UNI_NCCL_MAX_GROUP, size);
	if (p) {
		pthread_once(&g_queue_once, queue_keys);
		pthread_setspecific(g_queue_key[which], p);
	}
	return p;
}

static ncclResult_t init_start(ncclComm_t *out, ncclComm_t c, int blocking, int det, int may_wait);

/* defer: in a group (init_call): the communicator is made and given out,
 * its join starts at GroupEnd (init_start). */
static ncclResult_t init_rank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank, int blocking, int defer)
{
	if (!out)
		return fail(NULL, ncclInvalidArgument, "ncclCommInitRank: comm is NULL");
	*out = NULL;
	if (nranks < 1 || nranks > UNI_NCCL_MAX_RANKS)
		return fail(NULL, ncclInvalidArgument, "ncclCommInitRank: nranks %d out of range 1..%d", nranks,
			    UNI_NCCL_MAX_RANKS);
	if (rank < 0 || rank >= nranks)
		return fail(NULL, ncclInvalidArgument, "ncclCommInitRank: rank %d out of range 0..%d", rank, nranks - 1);
	const struct id_layout *l = (const struct id_layout *)id.internal;
	if (l->magic != ID_MAGIC)
		return fail(NULL, ncclInvalidArgument,
			    "ncclCommInitRank: the unique id does not come from ncclGetUniqueId of this shim");
	/* In turn (deterministic mode) the join is a turn at the caller's
	 * clock and waits in turn; a non-blocking one returns ncclInProgress
	 * and its join ends in the caller's own later calls (det_join): a
	 * thread of the shim's own, outside the turn, would join in real
	 * time. */
	int det = uni_shim_det_nccl();
	if (det)
		uni_shim_det_turn();
	rt_look();
	char name[UNI_NCCL_SEG_NAME_LEN];
	uni_nccl_seg_name(l->key, name);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(NULL, ncclSystemError, "ncclCommInitRank: shm_open %s: %s", name, strerror(errno));
	size_t size = seg_size(nranks);
	struct stat st = {0};
	/* (Looked at and sized under a lock: two ranks that disagree on
	 * nranks and both found it empty sized it each, the second shrinking
	 * the first one's mapping, which then faulted with SIGBUS.) */
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (fstat(fd, &st) < 0)
		st.st_size = 0;
	if ((size_t)st.st_size != size && st.st_size != 0) {
		close(fd);
		return fail(NULL, ncclInvalidArgument,
			    "ncclCommInitRank: rank %d says %d ranks, but another rank of this id made the "
			    "communicator for a different number", rank, nranks);
	}
	if (st.st_size == 0 && ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return fail(NULL, ncclSystemError, "ncclCommInitRank: cannot size %s: %s", name, strerror(e));
	}
	flock(fd, LOCK_UN);
	struct seg *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (s == MAP_FAILED)
		return fail(NULL, ncclSystemError, "ncclCommInitRank: mmap %s: %s", name, strerror(errno));
	uint32_t zero = 0;
	if (!atomic_compare_exchange_strong(&s->nranks, &zero, (uint32_t)nranks) && zero != (uint32_t)nranks) {
		munmap(s, size);
		return fail(NULL, ncclInvalidArgument, "ncclCommInitRank: rank %d says %d ranks, another says %u", rank,
			    nranks, zero);
	}
	int32_t none = 0;
	if (!atomic_compare_exchange_strong(&s->pid[rank], &none, (int32_t)getpid())) {
		munmap(s, size);
		return fail(NULL, ncclInvalidArgument, "ncclCommInitRank: rank %d joined this communicator twice "
			    "(pid %d and %d)", rank, none, (int)getpid());
	}
	ncclComm_t c = calloc(1, sizeof(*c));
	uint64_t *p2pn = calloc(2 * (size_t)nranks, sizeof(*p2pn));
	if (!c || !p2pn) {
		free(c);
		free(p2pn);
		munmap(s, size);
		return fail(NULL, ncclSystemError, "ncclCommInitRank: out of memory");
	}
	c->p2pn = p2pn;
	c->magic = COMM_MAGIC;
	atomic_store(&c->refs, 1);
	c->rank = rank;
	c->nranks = nranks;
	/* The network node of its transfers: this process's rank, as for Gloo,
	 * except in a world of one process, whose NCCL ranks (CommInitAll, or
	 * a thread per rank) are the devices: there a communicator made from
	 * a unique id puts each rank on the node of its number, one made by
	 * Split or Shrink on its parent's node. */
	if (t_parent_node != -2)
		c->node = t_parent_node;
	else
		c->node = uni_shim_world() == 1 ? rank : -1;
	c->dev = t_init_dev >= 0 ? t_init_dev : rt_device();
	c->sh = s;
	c->shsize = size;
	c->blocking = blocking;
	memcpy(c->key, l->key, sizeof(c->key));
	snprintf(c->seg, sizeof(c->seg), "%s", name);
	seg_layout(c);
	s->magic = SEG_MAGIC;
	/* unid learns the communicator: a trace record, and the segment's
	 * name, which it removes at the session's end if a rank that never
	 * joined left it behind. */
	struct uni_ev ce = {.kind = UNI_EV_NCCL_COMM, .off = (uint64_t)nranks, .len = (uint64_t)rank,
			    .c = (uint64_t)(int64_t)c->node};
	memcpy(&ce.a, l->key, 8);
	memcpy(&ce.b, l->key + 8, 8);
	uni_shim_nccl_event(&ce);
	/* Its node: nccl.ranks_per_node consecutive network nodes. */
	uint32_t intra, ppn = uni_shim_nccl_nodes(&intra);
	int net = c->node >= 0 ? c->node : uni_shim_rank();
	atomic_store(&s->hnode[rank], net >= 0 ? (int32_t)((uint32_t)net / ppn) : 0);
	atomic_store(&s->nnode[rank], net);
	if (defer) {
		/* A blocking one takes operations in the group meanwhile (they
		 * run after the joins, as in NCCL, whose readiness check passes
		 * until GroupEnd); a non-blocking one is not to be used until
		 * GetAsyncError says so (NCCL queues them too: not built). */
		atomic_store(&c->async_err, blocking ? ncclSuccess : ncclInProgress);
		c->deferred = 1;
		*out = c;
		return ncclSuccess;
	}
	return init_start(out, c, blocking, det, 1);
}

/* The join of c (made by init_rank): *out gets c, or NULL where the join
 * failed and c is freed; where *out already holds it (a deferred init),
 * a failed join leaves it, with the error as its asynchronous one.
 * may_wait 0: a non-blocking join whose thread does not start fails (one
 * of several in a group: joined here, it would wait for the others). */
static ncclResult_t init_start(ncclComm_t *out, ncclComm_t c, int blocking, int det, int may_wait)
{
	struct seg *s = c->sh;
	int nranks = c->nranks;
	c->deferred = 0;
	/* The join is a meeting ("Meetings" above barrier_x); a non-blocking
	 * init's caller goes on meanwhile (only its clock counts). */
	int part = meet_arrive(c, blocking);
	if (atomic_fetch_add(&s->joined, 1) == (uint32_t)nranks - 1) {
		c->meet_last = 1;
		meet_close(c);
		atomic_store_explicit(&s->join_open, 1, memory_order_release);
		uni_futex_wake(&s->join_open, INT32_MAX);
	}
	uni_shim_det_nccl_wake(comm_key64(c));
	if (!blocking && det) {
		/* In turn: the caller's own calls finish the join (det_join). */
		atomic_store(&c->async_err, ncclInProgress);
		c->det_join = 1;
		*out = c;
		return ncclInProgress;
	}
	if (!blocking) {
		/* Joins in a thread of its own; the caller polls
		 * ncclCommGetAsyncError (ncclInProgress until it ends). */
		atomic_store(&c->async_err, ncclInProgress);
		int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
			uni_real.pthread_create ? uni_real.pthread_create : pthread_create;
		if (create(&c->init_thread, NULL, join_thread, c) == 0) {
			c->init_thread_live = 1;
			*out = c;
			return ncclInProgress;
		}
		if (!may_wait) {
			abort_all(c);
			ncclResult_t e = fail(NULL, ncclSystemError, "ncclCommInitRank: rank %d: cannot start a thread "
					      "for its join in the group: %s", c->rank, strerror(errno));
			atomic_store(&c->async_err, e);
			return e;
		}
	}
	/* (A non-blocking init whose thread did not start joins here, its
	 * thread not in the meeting: part 0.) */
	ncclResult_t r = init_join(c, part);
	atomic_store(&c->async_err, r);
	if (r != ncclSuccess && *out != c) {
		close_pidfds(c);
		munmap(s, c->shsize);
		free(c->p2pn);
		free(c);
		return r;
	}
	*out = c;
	return r;
}

static void comm_unref(ncclComm_t c);
static void init_wait(ncclComm_t c);
static int comm_dead(ncclComm_t c);

/* InitRank and InitRankConfig. In a group (NCCL's way for one thread to
 * make several ranks: GroupStart, an InitRank per device, GroupEnd) the
 * communicator is made and given out at the call, which returns
 * ncclSuccess, and joins at GroupEnd (group_inits), as in NCCL. Before
 * session 32 the first of several such InitRanks waited in its call for
 * the ranks its own thread was still to make: a deadlock. */
static ncclResult_t init_call(ncclComm_t *out, int nranks, ncclUniqueId id, int rank, int blocking)
{
	if (t_depth == 0)
		return init_rank(out, nranks, id, rank, blocking, 0);
	if (!t_inits && !(t_inits = queue_alloc(1, sizeof(*t_inits))))
		return t_group_err = fail(NULL, ncclSystemError, "ncclCommInitRank: out of memory");
	if (t_ninits == UNI_NCCL_MAX_GROUP)
		return t_group_err = fail(NULL, ncclInvalidUsage, "ncclCommInitRank: more than %d in one group",
					  UNI_NCCL_MAX_GROUP);
	ncclResult_t r = init_rank(out, nranks, id, rank, blocking, 1);
	if (r != ncclSuccess)
		return arg_err(r);
	atomic_fetch_add(&(*out)->refs, 1); /* (until GroupEnd: it may be destroyed before) */
	t_inits[t_ninits++] = *out;
	return ncclSuccess;
}

/* GroupEnd: the group's inits join. One alone joins as outside a group
 * (PyTorch 1.13 wraps its InitRank in a group: its meeting and turn as
 * before). Several join at once, each in a thread of its own as a
 * non-blocking one does (one after the other, the first would wait for a
 * rank the thread has yet to start, or a peer process that starts them in
 * another order), and GroupEnd waits for the blocking ones; their
 * caller's clock is not the ranks' meeting (as a non-blocking init's
 * caller's is not), and the turn (deterministic mode) does not follow
 * them. A blocking one's error is the group's; a non-blocking one still
 * joining makes it ncclInProgress (the caller polls GetAsyncError).
 * gerr: the group failed: none joins, each has that error (they are to be
 * destroyed or aborted; comm_free aborts them). */
static ncclResult_t group_inits(ncclResult_t gerr)
{
	ncclResult_t r = ncclSuccess;
	int n = t_ninits, fail_ = gerr != ncclSuccess;
	t_ninits = 0;
	/* (A failed group's communicators have its error: they are to be
	 * destroyed or aborted, and Destroy aborts them: c->deferred.) */
	for (int i = 0; i < n && fail_; i++)
		if (!comm_dead(t_inits[i]))
			atomic_store(&t_inits[i]->async_err, gerr);
	if (n > 1 && !fail_ && uni_shim_det_nccl())
		uni_shim_det_abandon("several ncclCommInitRank calls in one group, which the turn does not follow yet");
	for (int i = 0; i < n && !fail_; i++) {
		ncclComm_t c = t_inits[i], o = c;
		if (comm_dead(c))
			continue;
		int det = n == 1 && uni_shim_det_nccl();
		if (det)
			uni_shim_det_turn();
		ncclResult_t e = init_start(&o, c, n == 1 && c->blocking, det, n == 1);
		if (e != ncclSuccess && e != ncclInProgress && r == ncclSuccess)
			r = e;
	}
	for (int i = 0; i < n && !fail_; i++) {
		ncclComm_t c = t_inits[i];
		if (comm_dead(c))
			continue;
		if (c->blocking)
			init_wait(c);
		ncclResult_t e = (ncclResult_t)atomic_load(&c->async_err);
		if (e != ncclSuccess && (r == ncclSuccess || r == ncclInProgress))
			r = e;
	}
	for (int i = 0; i < n; i++)
		comm_unref(t_inits[i]);
	return r;
}

ncclResult_t pncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank)
{
	return init_call(comm, nranks, commId, rank, 1);
}

/* A config of InitRankConfig, Split or Shrink (NULL: none), read by its
 * size and magic, as NCCL does: an older caller's smaller struct leaves
 * the newer fields at their defaults. *blocking: its blocking, if set. */
static ncclResult_t config_read(const char *fn, const ncclConfig_t *config, int *blocking)
{
	if (!config)
		return ncclSuccess;
	ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
	size_t n = config->size < sizeof(cfg) ? config->size : sizeof(cfg);
	if (config->magic != 0xcafebeef || n < offsetof(ncclConfig_t, blocking))
		return fail(NULL, ncclInvalidArgument,
			    "%s: config not initialised with NCCL_CONFIG_INITIALIZER (magic 0x%x, size %zu)", fn,
			    config->magic, config->size);
	memcpy(&cfg, config, n);
	if (cfg.blocking != NCCL_CONFIG_UNDEF_INT && cfg.blocking != 0 && cfg.blocking != 1)
		return fail(NULL, ncclInvalidArgument, "%s: invalid config blocking attribute value %d (0 or 1)", fn,
			    cfg.blocking);
	if (cfg.blocking != NCCL_CONFIG_UNDEF_INT)
		*blocking = cfg.blocking;
	return ncclSuccess;
}

ncclResult_t pncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank,
				     ncclConfig_t *config)
{
	int blocking = 1;
	ncclResult_t r = config_read("ncclCommInitRankConfig", config, &blocking);
	if (r != ncclSuccess)
		return arg_err(r);
	/* Non-blocking: ncclInProgress, the join goes on in a thread. */
	return init_call(comm, nranks, commId, rank, blocking);
}

static int comm_ok(ncclComm_t c)
{
	return c && __atomic_load_n(&c->magic, __ATOMIC_RELAXED) == COMM_MAGIC;
}

/* Closes the virtual connections of c (simulate mode). */
static void vclose(ncclComm_t c)
{
	if (c->vc)
		for (int i = 0; i < c->nranks * UNI_NCCL_NCH; i++)
			uni_shim_vconn_close(c->vc[i], c->tx[i], c->rx[i]);
	if (c->fc)
		for (int i = 0; i < c->nranks; i++)
			free(c->fc[i].q);
	free(c->vc);
	free(c->tx);
	free(c->rx);
	free(c->fc);
	c->vc = NULL;
	c->tx = c->rx = NULL;
	c->fc = NULL;
}

/* A non-blocking init's thread is over (it ends by itself: everyone
 * joined, an abort, or the time-out). */
static void init_wait(ncclComm_t c)
{
	if (atomic_exchange(&c->det_join, 0)) {
		/* An aborted one does not join (its peers may never come, and
		 * nothing would wake it in turn). */
		if (atomic_load(&c->sh->aborted)) {
			shm_unlink(c->seg);
			atomic_store(&c->async_err, fail(NULL, ncclRemoteError, "ncclCommInitRank: rank %d: the "
							 "communicator was aborted while it joined", c->rank));
		} else {
			atomic_store(&c->async_err, init_join(c, 0));
		}
	}
	if (c->init_thread_live) {
		(uni_real.pthread_join ? uni_real.pthread_join : pthread_join)(c->init_thread, NULL);
		c->init_thread_live = 0;
	}
}

/* NCCL's ncclCommEnsureReady: a communicator whose last call returned
 * ncclInProgress is not to be used until it is done. */
static ncclResult_t ensure_ready(ncclComm_t c, const char *fn)
{
	int e = atomic_load(&c->async_err);
	if (e == ncclInProgress)
		return fail(NULL, ncclInvalidArgument,
			    "%s: attempt to use a communicator before the previous operation returned ncclSuccess "
			    "(a non-blocking init still joining: poll ncclCommGetAsyncError)", fn);
	return ncclSuccess;
}

/* An operation on a communicator that has an asynchronous error (a dead
 * or aborted peer, a failed join) gets that error at once, as in NCCL,
 * instead of waiting for peers that will not come. */
static ncclResult_t ensure_usable(ncclComm_t c, const char *fn)
{
	ncclResult_t r = ensure_ready(c, fn);
	if (r != ncclSuccess)
		return r;
	int e = atomic_load(&c->async_err);
	if (e != ncclSuccess)
		return fail(NULL, (ncclResult_t)e,
			    "%s: the communicator has an error from an earlier operation (%s): abort it", fn,
			    pncclGetErrorString((ncclResult_t)e));
	return ncclSuccess;
}

static void spill_drop(ncclComm_t c);

static void comm_unref(ncclComm_t c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1) {
		spill_drop(c);
		close_pidfds(c);
		munmap(c->sh, c->shsize);
		free(c->nidx);
		free(c->p2pn);
		free(c);
	}
}

static void vclose_once(ncclComm_t c)
{
	if (!atomic_exchange(&c->vclosed, 1))
		vclose(c);
}

static int comm_dead(ncclComm_t c)
{
	return __atomic_load_n(&c->magic, __ATOMIC_SEQ_CST) == COMM_DEAD;
}

/* A call that may block holds c for its length: another thread may abort
 * or destroy c meanwhile (PyTorch's watchdog aborts a communicator while
 * the main thread waits in it), and the waiting call then ends with the
 * abort's error instead of touching freed memory. */
static void call_enter(ncclComm_t c)
{
	atomic_fetch_add(&c->refs, 1);
	atomic_fetch_add(&c->calls, 1);
}

static void call_exit(ncclComm_t c)
{
	if (atomic_fetch_sub(&c->calls, 1) == 1 && comm_dead(c))
		vclose_once(c);
	comm_unref(c);
}

/* The caller is done with c; groups still queued on a stream keep its
 * memory until they have run (an abort makes them fail fast), and so
 * does a call of another thread still inside it. */
static void comm_free(ncclComm_t c)
{
	if (c->deferred) {
		/* Made in a group that never joined it (the group failed, or
		 * GroupEnd never came): its peers are told, not left waiting. */
		c->deferred = 0;
		abort_all(c);
		uni_futex_wake(&c->sh->join_open, INT32_MAX);
	}
	init_wait(c);
	__atomic_store_n(&c->magic, COMM_DEAD, __ATOMIC_SEQ_CST);
	if (atomic_load(&c->calls) == 0)
		vclose_once(c);
	comm_unref(c);
}

/* Waits until the groups of c queued on a stream have run (their data
 * moved): before c is used from the host again, finalised or destroyed.
 * They run once the stream reaches them; a stream held for longer than
 * UNI_NCCL_TIMEOUT is an error. */
static const char *stream_broken(cudaStream_t s);
static void dev_use(ncclComm_t c);
static void dev_end(void);

static ncclResult_t pending_drain(ncclComm_t c, const char *fn)
{
	uint64_t since = mono_ns();
	uint32_t v;
	while ((v = atomic_load(&c->pending)) != 0) {
		if (atomic_load(&c->sh->aborted))
			return fail(NULL, ncclRemoteError,
				    "%s: rank %d: the communicator was aborted while operations queued on a CUDA "
				    "stream waited to run", fn, c->rank);
		uni_futex_wait(&c->pending, v, 100);
		const char *why = NULL;
		if (atomic_load(&c->pending)) {
			dev_use(c);
			why = stream_broken(c->pending_stream);
		}
		if (why)
			return fail(NULL, ncclUnhandledCudaError,
				    "%s: rank %d: the CUDA stream holding the communicator's queued operations has an "
				    "error (%s): they will not run", fn, c->rank, why);
		if ((double)(mono_ns() - since) / 1e9 > timeout_s() && atomic_load(&c->pending))
			return fail(NULL, ncclInternalError,
				    "%s: rank %d: %u operations queued on a CUDA stream did not run in %.0f s "
				    "(UNI_NCCL_TIMEOUT): is the stream held?", fn, c->rank, atomic_load(&c->pending),
				    timeout_s());
	}
	return ncclSuccess;
}

ncclResult_t pncclCommFinalize(ncclComm_t comm)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommFinalize: invalid communicator");
	/* Flushes the operations still queued on a stream (as NCCL does). */
	call_enter(comm);
	ncclResult_t r = pending_drain(comm, "ncclCommFinalize");
	dev_end();
	call_exit(comm);
	return r;
}

ncclResult_t pncclCommDestroy(ncclComm_t comm)
{
	if (!comm)
		return ncclSuccess;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommDestroy: invalid communicator");
	/* Destroy finalises first (NCCL 2.28); ops that never ran make it an
	 * abort, as a time-out does in NCCL. */
	if (pending_drain(comm, "ncclCommDestroy") != ncclSuccess)
		abort_all(comm);
	dev_end();
	comm_free(comm);
	return ncclSuccess;
}

ncclResult_t pncclCommAbort(ncclComm_t comm)
{
	if (!comm)
		return ncclSuccess;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommAbort: invalid communicator");
	/* Peers blocked in a wait on this communicator return an error (and
	 * so does this rank's own non-blocking init, if it still joins). */
	abort_all(comm);
	uni_futex_wake(&comm->sh->join_open, INT32_MAX);
	comm_free(comm);
	return ncclSuccess;
}

/* The shim's own CPU in an operation's call (its checks, a group's
 * bookkeeping: the first group of a thread allocates its queue) is
 * nobody's compute, as the copying is not (execute_held): the caller's
 * compute is charged as it enters and its clock does not move with the
 * CPU the call spends. (A group call charged at its end what its Send
 * and Recv spent: 0.1 to 2 ms of made-up compute before the first group,
 * depending on the host's page faults.) */
static void api_out(const uint64_t *t)
{
	uni_shim_vt_settle(*t);
}
#define API_CPU_NOT_COMPUTE __attribute__((cleanup(api_out))) const uint64_t api_t_ = uni_shim_vt_charge()

ncclResult_t pncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError)
{
	/* A thread that polls (PyTorch's watchdog; a loop of polls and
	 * sched_yield, test nccl_check pytorch) enters the shim nowhere
	 * else: its clock, published here, moves with its compute (under nic
	 * the horizon waited for it at its creation for ever: the ranks'
	 * first AllReduce never ended). */
	API_CPU_NOT_COMPUTE;
	if (!comm_ok(comm) || !asyncError)
		return fail(NULL, ncclInvalidArgument, "ncclCommGetAsyncError: invalid argument");
	/* In turn, a poll is a turn: a loop of them (PyTorch's watchdog
	 * thread) lets the others come (its clock moves with its compute). */
	uni_shim_det_turn();
	/* A non-blocking join in turn ends once every rank is in (or an
	 * abort). */
	if (atomic_load(&comm->det_join) &&
	    (atomic_load(&comm->sh->join_open) || atomic_load(&comm->sh->aborted))) {
		/* (held: another thread's Abort must not free it meanwhile) */
		call_enter(comm);
		init_wait(comm);
		call_exit(comm);
	}
	*asyncError = (ncclResult_t)atomic_load(&comm->async_err);
	return ncclSuccess;
}

ncclResult_t pncclCommCount(const ncclComm_t comm, int *count)
{
	if (!comm_ok(comm) || !count)
		return fail(NULL, ncclInvalidArgument, "ncclCommCount: invalid argument");
	if (ensure_ready(comm, "ncclCommCount") != ncclSuccess)
		return ncclInvalidArgument;
	*count = comm->nranks;
	return ncclSuccess;
}

ncclResult_t pncclCommUserRank(const ncclComm_t comm, int *rank)
{
	if (!comm_ok(comm) || !rank)
		return fail(NULL, ncclInvalidArgument, "ncclCommUserRank: invalid argument");
	if (ensure_ready(comm, "ncclCommUserRank") != ncclSuccess)
		return ncclInvalidArgument;
	*rank = comm->rank;
	return ncclSuccess;
}

ncclResult_t pncclCommCuDevice(const ncclComm_t comm, int *device)
{
	if (!comm_ok(comm) || !device)
		return fail(NULL, ncclInvalidArgument, "ncclCommCuDevice: invalid argument");
	if (ensure_ready(comm, "ncclCommCuDevice") != ncclSuccess)
		return ncclInvalidArgument;
	*device = comm->dev;
	return ncclSuccess;
}

ncclResult_t pncclGetVersion(int *version)
{
	if (!version)
		return fail(NULL, ncclInvalidArgument, "ncclGetVersion: version is NULL");
	*version = NCCL_VERSION_CODE;
	return ncclSuccess;
}

const char *pncclGetErrorString(ncclResult_t r)
{
	switch (r) {
	case ncclSuccess:
		return "no error";
	case ncclUnhandledCudaError:
		return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
	case ncclSystemError:
		return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
	case ncclInternalError:
		return "internal error - please report this issue to the NCCL developers";
	case ncclInvalidArgument:
		return "invalid argument (run with NCCL_DEBUG=WARN for details)";
	case ncclInvalidUsage:
		return "invalid usage (run with NCCL_DEBUG=WARN for details)";
	case ncclRemoteError:
		return "remote process exited or there was a network error";
	case ncclInProgress:
		return "NCCL operation in progress";
	default:
		return "unknown result code";
	}
}

const char *pncclGetLastError(ncclComm_t comm)
{
	(void)comm;
	return t_last_err;
}

/* Reduction ops --------------------------------------------------------------- */

static int is_device_ptr(const void *p);

ncclResult_t pncclRedOpCreatePreMulSum(ncclRedOp_t *op, void *scalar, ncclDataType_t datatype,
				       ncclScalarResidence_t residence, ncclComm_t comm)
{
	if (!comm_ok(comm) || !op || !scalar || !uni_nccl_type_size(datatype))
		return fail(comm_ok(comm) ? comm : NULL, ncclInvalidArgument, "ncclRedOpCreatePreMulSum: invalid argument");
	for (int i = 0; i < UNI_NCCL_MAX_USER_OPS; i++) {
		struct user_op *u = &comm->uop[i];
		if (u->used)
			continue;
		u->used = 1;
		u->type = datatype;
		u->ptr = residence == ncclScalarDevice ? scalar : NULL;
		/* Device memory (PyTorch's PREMUL_SUM by a tensor) is copied
		 * by the runtime when an op uses it ("Device buffers"); the
		 * host must not touch it. */
		u->ptr_dev = u->ptr && is_device_ptr(scalar);
		memset(u->scalar, 0, sizeof(u->scalar));
		if (!u->ptr_dev) /* HostImmediate: read now */
			memcpy(u->scalar, scalar, uni_nccl_type_size(datatype));
		*op = (ncclRedOp_t)(ncclNumOps + i);
		return ncclSuccess;
	}
	return fail(comm, ncclInvalidUsage, "ncclRedOpCreatePreMulSum: more than %d ops on one communicator",
		    UNI_NCCL_MAX_USER_OPS);
}

ncclResult_t pncclRedOpDestroy(ncclRedOp_t op, ncclComm_t comm)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclRedOpDestroy: invalid communicator");
	int i = (int)op - ncclNumOps;
	if (i < 0 || i >= UNI_NCCL_MAX_USER_OPS || !comm->uop[i].used)
		return fail(comm, ncclInvalidArgument, "ncclRedOpDestroy: op %d was not created on this communicator",
			    (int)op);
	comm->uop[i].used = 0;
	return ncclSuccess;
}

/* Virtual time ------------------------------------------------------------------ */

/* Channels: each (peer, channel) is its own virtual connection, an ordered
 * byte stream. Send/Recv use channel 0 (NCCL matches a group's sends to a
 * peer with its receives in order); the k-th collective of a group uses
 * channels 1 + 2k (its ring, or tree 0) and 2 + 2k (tree 1), so the
 * transfers of one operation never wait behind another's in a stream;
 * the last, UNI_NCCL_FC_CH, carries Send/Recv's flow-control credits
 * (UNI_NCCL_NCH channels in all). */

static void vaddr(const ncclComm_t c, int a, int b, int ch, struct uni_addr *out)
{
	uni_nccl_addr(c->key, a, b, ch, c->gen, out);
}

/* Index of (peer p, channel ch) in c->vc, tx, rx. */
static size_t vidx(const ncclComm_t c, int p, int ch)
{
	return (size_t)ch * (size_t)c->nranks + (size_t)p;
}

/* The virtual connections' state (simulate mode), allocated on first use:
 * 1 when it is there. */
static int vinit(ncclComm_t c)
{
	if (!uni_shim_simulating())
		return 0;
	if (c->vc)
		return 1;
	size_t n = (size_t)c->nranks * UNI_NCCL_NCH;
	uint32_t *vc = calloc(n, sizeof(*vc));
	uint64_t *tx = calloc(n, sizeof(*tx)), *rx = calloc(n, sizeof(*rx));
	struct fcpeer *fc = calloc((size_t)c->nranks, sizeof(*fc));
	if (!vc || !tx || !rx || !fc) { /* (all or none: the others use tx, rx, fc once vc is there) */
		free(vc);
		free(tx);
		free(rx);
		free(fc);
		return 0;
	}
	c->vc = vc;
	c->tx = tx;
	c->rx = rx;
	c->fc = fc;
	return 1;
}

/* The virtual connection to peer p on channel ch (+1), opened on first use. */
static uint32_t vconn(ncclComm_t c, int p, int ch)
{
	if (!vinit(c))
		return 0;
	size_t i = vidx(c, p, ch);
	if (!c->vc[i]) {
		struct uni_addr l, r;
		vaddr(c, c->rank, p, ch, &l);
		vaddr(c, p, c->rank, ch, &r);
		c->vc[i] = uni_shim_vconn_open(&l, &r, c->node, atomic_load(&c->sh->nnode[p]),
					       ch == UNI_NCCL_FC_CH ? UNI_CONNF_CREDIT : 0);
	}
	return c->vc[i];
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* This rank's part of one or more operations as a graph of transfers: a
 * send leaves once the receives it forwards (dep) have arrived, at the
 * latest of their arrivals (or the call's time); receives on one
 * connection arrive in order. run_sched issues every send as soon as it
 * is ready and then waits for the first of the pending receives (one per
 * connection) to arrive, so the rank acts in virtual-time order and the
 * network (nic) never runs past a send it still has to make. */
struct xf {
	ncclComm_t c;
	int peer, ch, recv, done;
	int dep[2];
	int xdep, nxdep; /* more dependencies: s->deps[xdep .. xdep + nxdep) */
	uint64_t bytes, t;
	uint64_t base, hop; /* its protocol's latencies (ns): the operation's start, each send */
};

struct sched {
	struct xf *x;
	int n, cap, oom;
	/* the protocol of the operation being added (nccl_choose): its
	 * latency per operation, per hop within a node and between nodes */
	uint64_t base, hop_intra, hop_inter;
	uint32_t wire_num, wire_den; /* bytes on the wire per byte of data */
	int *deps, ndeps, capdeps;   /* the xf's xdep (PAT) */
	int ngate; /* x[0 .. ngate): reads every send waits for (fc_gates) */
};

/* The protocol's bytes on the wire for bytes of data (LL: a flag with
 * every 4 bytes of data, LL128: 8 in every 128). */
static uint64_t wire_bytes(const struct sched *s, uint64_t bytes)
{
	return s->wire_den && s->wire_num != s->wire_den ? (bytes * s->wire_num + s->wire_den - 1) / s->wire_den
							  : bytes;
}

static int xadd(struct sched *s, ncclComm_t c, int recv, int peer, int ch, uint64_t bytes, int d0, int d1)
{
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 64;
		struct xf *x = realloc(s->x, (size_t)cap * sizeof(*x));
		if (!x) {
			s->oom = 1;
			return -1;
		}
		s->x = x;
		s->cap = cap;
	}
	/* The protocol's bytes on the wire; both ends count alike. */
	bytes = wire_bytes(s, bytes);
	uint64_t hop = c->nidx[peer] == c->nidx[c->rank] ? s->hop_intra : s->hop_inter;
	s->x[s->n] = (struct xf){.c = c, .peer = peer, .ch = ch % UNI_NCCL_NCH, .recv = recv, .dep = {d0, d1}, .xdep = -1,
				 .bytes = bytes, .base = s->base, .hop = hop};
	return s->n++;
}

static int xrecv(struct sched *s, ncclComm_t c, int peer, int ch, uint64_t bytes)
{
	return xadd(s, c, 1, peer, ch, bytes, -1, -1);
}

static void xsend(struct sched *s, ncclComm_t c, int peer, int ch, uint64_t bytes, int d0, int d1)
{
	xadd(s, c, 0, peer, ch, bytes, d0, d1);
}

/* A send that waits for nd receives (PAT's messages gather pieces
 * received over several dimensions). */
static void xsend_deps(struct sched *s, ncclComm_t c, int peer, int ch, uint64_t bytes, const int *deps, int nd)
{
	int i = xadd(s, c, 0, peer, ch, bytes, nd > 0 ? deps[0] : -1, nd > 1 ? deps[1] : -1);
	if (i < 0 || nd <= 2)
		return;
	if (s->ndeps + nd - 2 > s->capdeps) {
		int cap = s->capdeps ? 2 * s->capdeps : 256;
		while (cap < s->ndeps + nd - 2)
			cap *= 2;
		int *d = realloc(s->deps, (size_t)cap * sizeof(*d));
		if (!d) {
			s->oom = 1;
			return;
		}
		s->deps = d;
		s->capdeps = cap;
	}
	s->x[i].xdep = s->ndeps;
	s->x[i].nxdep = nd - 2;
	memcpy(s->deps + s->ndeps, deps + 2, (size_t)(nd - 2) * sizeof(*deps));
	s->ndeps += nd - 2;
}

static int same_conn(const struct xf *a, const struct xf *b);

/* A transfer of exactly bytes (not scaled to the protocol's wire bytes);
 * lat 0: one that leaves at its dependency's time (no protocol latency:
 * a credit). */
static int xraw(struct sched *s, ncclComm_t c, int recv, int peer, int ch, uint64_t bytes, int dep, int lat)
{
	int i = xadd(s, c, recv, peer, ch, bytes, dep, -1);
	if (i >= 0) {
		s->x[i].bytes = bytes;
		if (!lat)
			s->x[i].base = s->x[i].hop = 0;
	}
	return i;
}

/* Flow control of Send/Recv (docs/nccl.md "Flow control"). NCCL moves a
 * message in chunks through a FIFO of UNI_NCCL_FC_SLOTS slots per peer: a
 * chunk leaves once the receiver consumed the chunk UNI_NCCL_FC_SLOTS
 * before it and said so (its slot is free), and a send is complete once
 * its last chunk has a slot. Here each received message sends a credit
 * back on channel UNI_NCCL_FC_CH once consumed (and a message of
 * UNI_NCCL_FC_SLOTS chunks or more one more, once all but its last
 * UNI_NCCL_FC_SLOTS - 1 are in: it moves as two transfers, split there).
 * A send's data leaves after the credit that frees the slot of its first
 * chunk (fc_send); its completion, the credit that frees the slot of its
 * last, is what the communicator's next operation waits for before any
 * of its transfers leaves (fc_gates: NCCL's operations on a stream run in
 * order), not the call: on a GPU the call returns at once and the host
 * goes on, and a sender that waited in its call for its receiver's later
 * call could wait for ever where NCCL does not (a barrier of its own
 * between the two). The credits are read only when needed: those never
 * needed are never read.
 *
 * Between ranks of different processes only, and not in deterministic
 * mode (the same on both ends: a sender that waits for credits its
 * receiver does not send would wait for ever): one thread may drive both
 * ends in a process (CommInitAll), and its operation after a send would
 * wait for its own receive, which NCCL's streams let run beside it; the
 * turn times an operation after its data moved, and there a sender may
 * wait for room in the pair's ring (nothing is kept outside it in turn)
 * for a receiver whose timing waits for the sends that the sender's
 * timing releases only after a credit. */
static int fc_on(ncclComm_t c, int peer)
{
	return peer != c->rank && !uni_shim_det_session() && vinit(c) &&
	       atomic_load(&c->sh->pid[peer]) != atomic_load(&c->sh->pid[c->rank]);
}

static uint64_t fc_chunks(uint64_t bytes)
{
	return (bytes + UNI_NCCL_FC_CHUNK - 1) / UNI_NCCL_FC_CHUNK;
}

static int fc_owe(struct fcpeer *f, uint64_t chunks)
{
	if (f->qh && f->qh * 2 >= f->qn) {
		memmove(f->q, f->q + f->qh, (f->qn - f->qh) * sizeof(*f->q));
		f->qn -= f->qh;
		f->qh = 0;
	}
	if (f->qn == f->qcap) {
		size_t cap = f->qcap ? 2 * f->qcap : 16;
		uint64_t *q = realloc(f->q, cap * sizeof(*q));
		if (!q)
			return -1;
		f->q = q;
		f->qcap = cap;
	}
	f->q[f->qn++] = chunks;
	return 0;
}

/* Reads of the credits up to the first that says chunk y was consumed,
 * one each (a read of several would hold the nic network at the first's
 * arrival while it waits for the next): the transfer of the read that
 * says so in this graph, or -1 (an earlier graph's, or none owed). */
static int fc_need(struct sched *s, ncclComm_t c, int peer, struct fcpeer *f, uint64_t y)
{
	while (f->qh < f->qn && f->covered < y) {
		f->cover = xraw(s, c, 1, peer, UNI_NCCL_FC_CH, UNI_NCCL_FC_CREDIT, -1, 0);
		f->covered = f->q[f->qh++];
	}
	return f->cover;
}

/* The graph of c's next operation starts with the reads of the credits
 * that complete its earlier sends (fc_send's due): every send of c in the
 * graph leaves after them (ready_sends, s->ngate; a group's operations
 * on other communicators, other streams, do not wait). Called for each
 * communicator of a group before its operations are added. */
static void fc_gates(struct sched *s, ncclComm_t c)
{
	if (!vinit(c))
		return;
	for (int p = 0; p < c->nranks; p++) {
		struct fcpeer *f = &c->fc[p];
		f->cover = -1;
		if (f->due > f->covered)
			fc_need(s, c, p, f, f->due);
	}
	s->ngate = s->n;
}

/* A message of k >= UNI_NCCL_FC_SLOTS chunks, w bytes on the wire: its
 * wire bytes up to the receiver's first credit (all but its last
 * UNI_NCCL_FC_SLOTS - 1 chunks). */
static uint64_t fc_split(const struct sched *s, uint64_t w, uint64_t k)
{
	uint64_t w1 = wire_bytes(s, (k - (UNI_NCCL_FC_SLOTS - 1)) * UNI_NCCL_FC_CHUNK);
	return w1 >= w ? w - 1 : w1 < 1 ? 1 : w1;
}

/* A Send or Recv of 0 bytes: NCCL's zero-byte Send and Recv match and
 * synchronise (the sender's step moves the receiver's FIFO tail, an
 * 8-byte counter), so the receive waits for it: an 8-byte transfer, as a
 * credit, with the protocol's latencies; it takes no slot of the FIFO. */
#define UNI_NCCL_EMPTY_WIRE UNI_NCCL_FC_CREDIT

static void fc_send(struct sched *s, ncclComm_t c, int peer, uint64_t bytes)
{
	uint64_t k = fc_chunks(bytes);
	if (!k) {
		xraw(s, c, 0, peer, 0, UNI_NCCL_EMPTY_WIRE, -1, 1);
		return;
	}
	if (!fc_on(c, peer)) {
		xsend(s, c, peer, 0, bytes, -1, -1);
		return;
	}
	struct fcpeer *f = &c->fc[peer];
	/* (The end that reads the credits opens with the first message, so
	 * that the receiver's end is matched even if none is ever read.) */
	vconn(c, peer, UNI_NCCL_FC_CH);
	uint64_t s0 = f->sent;
	f->sent += k;
	if ((k >= UNI_NCCL_FC_SLOTS && fc_owe(f, f->sent - (UNI_NCCL_FC_SLOTS - 1)) < 0) || fc_owe(f, f->sent) < 0) {
		s->oom = 1;
		return;
	}
	/* Its first chunk's slot: chunk s0 + 1 - UNI_NCCL_FC_SLOTS consumed. */
	int dep = s0 >= UNI_NCCL_FC_SLOTS ? fc_need(s, c, peer, f, s0 + 1 - UNI_NCCL_FC_SLOTS) : -1;
	if (k >= UNI_NCCL_FC_SLOTS) {
		/* In two parts, where the receiver sends its first credit
		 * (fc_recv): under nic the network stops at the end of a
		 * transfer (its arrival, unread, holds it), not inside one. */
		uint64_t w = wire_bytes(s, bytes), w1 = fc_split(s, w, k);
		xraw(s, c, 0, peer, 0, w1, dep, 1);
		xraw(s, c, 0, peer, 0, w - w1, dep, 1);
	} else {
		xsend(s, c, peer, 0, bytes, dep, -1);
	}
	/* Complete once its last chunk has a slot: the next operation waits. */
	if (f->sent > UNI_NCCL_FC_SLOTS && f->sent - UNI_NCCL_FC_SLOTS > f->due)
		f->due = f->sent - UNI_NCCL_FC_SLOTS;
}

static void fc_recv(struct sched *s, ncclComm_t c, int peer, uint64_t bytes)
{
	uint64_t k = fc_chunks(bytes);
	if (!k) {
		xraw(s, c, 1, peer, 0, UNI_NCCL_EMPTY_WIRE, -1, 1);
		return;
	}
	if (!fc_on(c, peer)) {
		xrecv(s, c, peer, 0, bytes);
		return;
	}
	/* (The end that writes the credits opens with the first message:
	 * matched, it tells unid when it closes, and a sender waiting for a
	 * credit it will never send is answered; docs/nccl.md.) */
	vconn(c, peer, UNI_NCCL_FC_CH);
	if (k >= UNI_NCCL_FC_SLOTS) {
		/* A credit once all but the last UNI_NCCL_FC_SLOTS - 1 chunks
		 * are in (what frees the slot of the next message's first
		 * chunk, and of this one's last), another at the end. */
		uint64_t w = wire_bytes(s, bytes), w1 = fc_split(s, w, k);
		int r1 = xraw(s, c, 1, peer, 0, w1, -1, 1);
		xraw(s, c, 0, peer, UNI_NCCL_FC_CH, UNI_NCCL_FC_CREDIT, r1, 0);
		int r2 = xraw(s, c, 1, peer, 0, w - w1, -1, 1);
		xraw(s, c, 0, peer, UNI_NCCL_FC_CH, UNI_NCCL_FC_CREDIT, r2, 0);
	} else {
		int r = xrecv(s, c, peer, 0, bytes);
		xraw(s, c, 0, peer, UNI_NCCL_FC_CH, UNI_NCCL_FC_CREDIT, r, 0);
	}
}

/* The credits the graph will read (flow control), by peer: they hold the
 * nic network once they arrive, as a read's bytes would. */
static void fc_want(const struct sched *s)
{
	for (int i = 0; i < s->n; i++) {
		const struct xf *x = &s->x[i];
		if (!x->recv || x->ch != UNI_NCCL_FC_CH || !x->bytes)
			continue;
		int first = 1;
		for (int j = 0; j < i && first; j++)
			first = !same_conn(&s->x[j], x);
		if (!first)
			continue;
		uint64_t end = x->c->rx[vidx(x->c, x->peer, x->ch)];
		for (int j = i; j < s->n; j++)
			if (same_conn(&s->x[j], x))
				end += s->x[j].bytes;
		uni_shim_vwant(vconn(x->c, x->peer, x->ch), end);
	}
}

static int same_conn(const struct xf *a, const struct xf *b)
{
	return a->c == b->c && a->peer == b->peer && a->ch == b->ch && a->recv == b->recv;
}

/* Issues the sends of s that are ready, in order per connection; clock:
 * the thread's clock as unitrace replay counts it now (uni_shim_vsend). */
static void ready_sends(struct sched *s, int first, uint64_t t0, uint64_t clock)
{
	for (int i = first; i < s->n; i++) {
		struct xf *x = &s->x[i];
		if (x->recv || x->done)
			continue;
		uint64_t t = t0 + x->base;
		int ready = 1;
		for (int d = 0; d < 2 + x->nxdep; d++) {
			int dd = d < 2 ? x->dep[d] : s->deps[x->xdep + d - 2];
			if (dd >= 0) {
				if (!s->x[dd].done)
					ready = 0;
				else
					t = max64(t, s->x[dd].t);
			}
		}
		for (int g = 0; g < s->ngate && ready; g++) {
			if (s->x[g].c != x->c) /* (its own communicator's: another's is another stream) */
				continue;
			if (!s->x[g].done)
				ready = 0;
			else
				t = max64(t, s->x[g].t);
		}
		t += x->hop;
		for (int j = first; ready && j < i; j++)
			if (!s->x[j].done && same_conn(&s->x[j], x))
				ready = 0;
		if (!ready)
			continue;
		x->t = t;
		x->done = 1;
		uint32_t v = x->bytes ? vconn(x->c, x->peer, x->ch) : 0;
		if (v) {
			uint64_t *tx = &x->c->tx[vidx(x->c, x->peer, x->ch)];
			uni_shim_vsend(v, *tx, x->bytes, t, clock);
			*tx += x->bytes;
		}
	}
}

/* How far a rank has run its graph: what run_sched and, while the data
 * moves, prog_poll have done. */
struct prog {
	struct sched *s;
	uint64_t t0, end;
	uint64_t clock; /* the caller's clock, then the latest arrival taken (unitrace replay's) */
	int first;    /* every transfer before it is done */
	uint32_t tag; /* a group read asked for without waiting, not taken yet (0: none) */
	int nh;
	int head[UNI_READ_GROUP_MAX]; /* its reads' transfers */
	void *obj;    /* the peer wait prog_poll publishes again */
	const char *what; /* the call's (first) operation, for deadlock reports */
	int noted;        /* prog_note said what it waits for */
	int again;        /* prog_heads found a receive with nothing to wait for */
	int partial;      /* the reads asked for leave some out (UNI_READ_GROUP_MAX) */
};

/* Every 100 ms of a wait of the timing for unid's answer: what it waits
 * for, for deadlock reports (the peer of its first pending read; a
 * credit of the flow control says so: two ranks that each send more than
 * the FIFO holds to the other before they receive, outside a group,
 * deadlock in NCCL too). */
static void prog_note(void *arg)
{
	struct prog *p = arg;
	if (!p->nh || !p->what)
		return;
	const struct xf *x = &p->s->x[p->head[0]];
	note_wait_why(x->c, p->what, x->peer,
		      x->ch == UNI_NCCL_FC_CH ? " to take what it sent (flow control: NCCL's Send ends once its receiver "
						"took all but 1 MiB)"
					      : NULL);
	p->noted = 1;
}

/* The first pending receive of each connection (its transfer in
 * p->head); receives with nothing to wait for are done at once. */
static int prog_heads(struct prog *p, uint32_t *hv, uint64_t *ho, uint64_t *hl)
{
	struct sched *s = p->s;
	int nh = 0;
	p->partial = 0;
	for (int i = p->first; i < s->n && !p->partial; i++) {
		struct xf *x = &s->x[i];
		if (!x->recv || x->done)
			continue;
		int seen = 0;
		for (int k = 0; k < nh && !seen; k++)
			seen = same_conn(&s->x[p->head[k]], x);
		if (seen)
			continue;
		if (nh == UNI_READ_GROUP_MAX) { /* a receive on one more connection */
			p->partial = x->bytes && vconn(x->c, x->peer, x->ch);
			continue;
		}
		uint32_t v = x->bytes ? vconn(x->c, x->peer, x->ch) : 0;
		if (!v) { /* nothing to wait for */
			x->done = 1;
			x->t = p->t0;
			p->again = 1; /* (sends may wait for it) */
			continue;
		}
		p->head[nh] = i;
		hv[nh] = v;
		ho[nh] = x->c->rx[vidx(x->c, x->peer, x->ch)];
		hl[nh] = x->bytes;
		nh++;
	}
	while (p->first < s->n && s->x[p->first].done)
		p->first++;
	p->nh = nh;
	return nh;
}

/* Receive p->head[w] arrived at t. */
static void prog_take(struct prog *p, int w, uint64_t t)
{
	struct xf *x = &p->s->x[p->head[w]];
	x->c->rx[vidx(x->c, x->peer, x->ch)] += x->bytes;
	x->done = 1;
	x->t = max64(t, p->t0);
	p->end = max64(p->end, x->t);
	p->clock = max64(p->clock, t);
}

/* Issues the sends that are ready, then the receives to wait for next
 * (prog_heads); 0: the graph is done. */
static int prog_next(struct prog *p, uint32_t *hv, uint64_t *ho, uint64_t *hl)
{
	for (;;) {
		ready_sends(p->s, p->first, p->t0, p->clock);
		p->again = 0;
		int nh = prog_heads(p, hv, ho, hl);
		if ((nh && !p->again) || p->first >= p->s->n)
			return nh;
		/* (sends made ready by receives with nothing to wait for) */
	}
}

/* Runs the graph from time t0 (or where prog_poll left it); returns when
 * this rank's part ends (its last arrival, or t0). */
static uint64_t run_sched(struct prog *p)
{
	uint32_t hv[UNI_READ_GROUP_MAX];
	uint64_t ho[UNI_READ_GROUP_MAX], hl[UNI_READ_GROUP_MAX];
	int nh;
	uni_shim_await_note(prog_note, p);
	while ((nh = prog_next(p, hv, ho, hl)) != 0) {
		int w = 0;
		uint64_t t = uni_shim_vrecv_any(nh, hv, ho, hl, &w, p->partial);
		prog_take(p, w, t);
	}
	uni_shim_await_note(NULL, NULL);
	if (p->noted)
		uni_shim_nccl_wait(0, NULL);
	return p->end;
}

/* While the data moves (docs/nccl.md "While the data moves"): the graph
 * of the operation this thread runs alone and outside the turn, else
 * NULL. */
static __thread struct prog *t_prog;

/* Sends what is ready and asks for the next reads without waiting
 * (until it takes their answer, the answer holds the network for the
 * thread), or, every read taken, holds the network at the operation's end
 * for what the rank sends after it (for 200 ms of real time, as its last
 * arrival would unread). */
static void prog_ask(struct prog *p)
{
	uint32_t hv[UNI_READ_GROUP_MAX];
	uint64_t ho[UNI_READ_GROUP_MAX], hl[UNI_READ_GROUP_MAX];
	int nh = prog_next(p, hv, ho, hl);
	if (!nh)
		uni_shim_peer_floor(p->end);
	else if (!(p->tag = uni_shim_vrecv_post(nh, hv, ho, hl, p->partial)))
		t_prog = NULL; /* (run_sched goes on from here) */
}

/* Takes the answer to the reads asked for, if it came: sends what it
 * makes ready and asks for the next. 1 while reads are asked for (the
 * caller looks again within a millisecond). */
static int prog_poll(void)
{
	struct prog *p = t_prog;
	if (!p || !p->tag)
		return 0;
	uint64_t t;
	int w;
	if (!uni_shim_vrecv_poll(p->tag, p->nh, &t, &w))
		return 1;
	p->tag = 0;
	prog_take(p, w, t);
	prog_ask(p);
	/* (The answer made it count at the arrival's time until now: what
	 * that released is sent, what comes next asked for.) */
	uni_shim_peer_wait(1, p->obj);
	return p->tag != 0;
}

/* After the data moved: the reads asked for are taken (ok), or dropped. */
static void prog_end(struct prog *p, int ok)
{
	t_prog = NULL;
	if (!p->tag)
		return;
	if (ok) { /* (run_sched sends what it released) */
		int w;
		uni_shim_await_note(prog_note, p);
		uint64_t t = uni_shim_vrecv_wait(p->tag, p->nh, &w);
		uni_shim_await_note(NULL, NULL);
		prog_take(p, w, t);
	} else {
		uni_shim_vrecv_cancel(p->tag);
	}
	p->tag = 0;
}

/* NCCL's double binary tree (src/graph/trees.cc, ncclGetBtree and
 * ncclGetDtree): the first tree is rooted at 0, the lowest set bit of a
 * rank giving its level; the second is the first mirrored (n even) or
 * shifted by one rank (n odd), so that most ranks are a leaf in one tree
 * and an inner node in the other. */
static void btree(int n, int rank, int *up, int *d0, int *d1, int *ct)
{
	int bit;
	for (bit = 1; bit < n; bit <<= 1)
		if (bit & rank)
			break;
	*ct = 0;
	if (rank == 0) {
		*up = -1;
		*d0 = -1;
		*d1 = n > 1 ? bit >> 1 : -1;
		return;
	}
	int u = (rank ^ bit) | (bit << 1);
	if (u >= n)
		u = rank ^ bit;
	*up = u;
	*ct = rank < u ? 0 : 1; /* which of its parent's two children it is */
	int low = bit >> 1;
	*d0 = low == 0 ? -1 : rank - low;
	int down1 = low == 0 ? -1 : rank + low;
	while (down1 >= n) {
		down1 = low == 0 ? -1 : rank + low;
		low >>= 1;
	}
	*d1 = down1;
}

static void dtree(int n, int rank, int tree, int *up, int *d0, int *d1, int *ct)
{
	if (tree == 0) {
		btree(n, rank, up, d0, d1, ct);
		return;
	}
	int u, a, b;
	if (n % 2 == 1) {
		btree(n, (rank - 1 + n) % n, &u, &a, &b, ct);
		*up = u < 0 ? -1 : (u + 1) % n;
		*d0 = a < 0 ? -1 : (a + 1) % n;
		*d1 = b < 0 ? -1 : (b + 1) % n;
	} else {
		btree(n, n - 1 - rank, &u, &a, &b, ct);
		*up = u < 0 ? -1 : n - 1 - u;
		*d0 = a < 0 ? -1 : n - 1 - a;
		*d1 = b < 0 ? -1 : n - 1 - b;
	}
}

/* floor(log2 n): NCCL's log2i. */
static int log2i(int n)
{
	int d = 0;
	while (n >>= 1)
		d++;
	return d;
}

/* The communicator's nodes ("Nodes", docs/nccl.md): ranks whose
 * segment entry hnode is the same share a node; nodes are numbered by
 * their first rank, a node's ranks ordered by rank, and NCCL's ring goes
 * through them in that order, node after node. Computed once the ranks
 * joined (every rank wrote its entry before), by init_join, which fails
 * without it. Returns the number of nodes, 0 without memory. */
static int comm_nodes(ncclComm_t c)
{
	int n = c->nranks;
	int *m = calloc((size_t)5 * (size_t)n, sizeof(int));
	if (!m)
		return 0;
	int *nidx = m, *npos = m + n, *nrank = m + 2 * n, *nstart = m + 3 * n, *nsize = m + 4 * n;
	int nn = 0;
	for (int r = 0; r < n; r++) {
		int h = atomic_load(&c->sh->hnode[r]), k = 0;
		while (k < nn && atomic_load(&c->sh->hnode[nstart[k]]) != h)
			k++;
		if (k == nn)
			nstart[nn++] = r; /* for now: the node's first rank */
		nidx[r] = k;
		npos[r] = nsize[k]++;
	}
	for (int k = 0, at = 0; k < nn; k++) {
		nstart[k] = at;
		at += nsize[k];
	}
	for (int r = 0; r < n; r++)
		nrank[nstart[nidx[r]] + npos[r]] = r;
	c->nidx = nidx;
	c->npos = npos;
	c->nrank = nrank;
	c->nstart = nstart;
	c->nsize = nsize;
	c->nnodes = nn;
	return nn;
}

/* A rank's place on the ring, and the rank at a place. */
static int ring_pos(ncclComm_t c, int r)
{
	return c->nstart[c->nidx[r]] + c->npos[r];
}

static int ring_rank(ncclComm_t c, int pos)
{
	return c->nrank[pos % c->nranks];
}

/* This rank's links in tree t (0, 1) of NCCL's double binary tree over
 * the nodes (src/graph/connect.cc, connectTrees, with the default
 * balanced pattern): within a node its ranks form a chain, the first
 * (place 0) linked to the parent node, the second (or the first, alone)
 * to the node's first child node, the first to its second; a node's
 * link from a child ends at the child node's first rank. With a rank per
 * node this is the double binary tree over the ranks. */
static void tree_links(ncclComm_t c, int t, int *up, int *d0, int *d1)
{
	int me = c->rank;
	int k = c->nidx[me], i = c->npos[me], m = c->nsize[k];
	const int *nr = c->nrank, *st = c->nstart, *sz = c->nsize;
#define TTP(node) nr[st[node]]
#define TTC0(node) nr[st[node] + (sz[node] > 1 ? 1 : 0)]
#define TTC1(node) nr[st[node]]
	int u, a, b, ct;
	dtree(c->nnodes, k, t, &u, &a, &b, &ct);
	*up = i > 0 ? nr[st[k] + i - 1] : u < 0 ? -1 : ct == 0 ? TTC0(u) : TTC1(u);
	int down[3], nd = 0;
	if (i < m - 1)
		down[nd++] = nr[st[k] + i + 1];
	if (me == TTC0(k) && a >= 0)
		down[nd++] = TTP(a);
	if (me == TTC1(k) && b >= 0)
		down[nd++] = TTP(b);
#undef TTP
#undef TTC0
#undef TTC1
	*d0 = nd > 0 ? down[0] : -1;
	*d1 = nd > 1 ? down[1] : -1;
}

/* NCCL_ALGO, read once: UNI_NCCL_ALGO_RING or _TREE, or -1 (not set, or
 * not a choice between the two). */
/* NCCL_ALGO and NCCL_PROTO, read once each: a mask of what they allow
 * (bit i for names[i]: enum uni_nccl_algo, enum uni_nccl_proto), 0 when
 * not set. NCCL's syntax: a comma list of names, or ^ and the names to
 * leave out; names it has that are not simulated here count for
 * nothing (NCCL_ALGO: of NCCL's algorithms Ring, Tree and PAT are). */
static unsigned env_names(const char *var, const char *const *names, int n)
{
	const char *env = getenv(var);
	if (!env || !*env)
		return 0;
	int neg = env[0] == '^';
	unsigned m = 0, all = 0;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", env + neg);
	for (int i = 0; i < n; i++)
		all |= names[i] ? 1u << i : 0;
	for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		for (int i = 0; i < n; i++)
			if (names[i] && !strcasecmp(tok, names[i]))
				m |= 1u << i;
	return neg ? all & ~m : m;
}

static unsigned g_env_algo, g_env_proto;
static pthread_once_t g_env_algo_once = PTHREAD_ONCE_INIT, g_env_proto_once = PTHREAD_ONCE_INIT;

#define ALGO_ALL (1u << UNI_NCCL_ALGO_RING | 1u << UNI_NCCL_ALGO_TREE | 1u << UNI_NCCL_ALGO_PAT)

static void read_env_algo(void)
{
	static const char *const names[] = {
		[UNI_NCCL_ALGO_RING] = "Ring", [UNI_NCCL_ALGO_TREE] = "Tree", [UNI_NCCL_ALGO_PAT] = "PAT"};
	g_env_algo = env_names("NCCL_ALGO", names, (int)(sizeof(names) / sizeof(*names)));
}

/* NCCL_PAT_ENABLE=0 leaves PAT out (NCCL's switch; 1, which makes NCCL
 * take PAT where it has no connections for it, is not followed). */
static int pat_enabled(void)
{
	const char *e = getenv("NCCL_PAT_ENABLE");
	return !(e && *e && atoi(e) == 0);
}

static void read_env_proto(void)
{
	static const char *const names[] = {
		[UNI_NCCL_PROTO_LL] = "LL", [UNI_NCCL_PROTO_LL128] = "LL128", [UNI_NCCL_PROTO_SIMPLE] = "Simple"};
	g_env_proto = env_names("NCCL_PROTO", names, (int)(sizeof(names) / sizeof(*names)));
}

/* NCCL's latencies (tuning.cc, NCCL 2.28): per operation (base), ns, by
 * algorithm (0 ring, 1 tree) and protocol (LL, LL128, Simple); per hop by
 * link (NVLink, PCI, network), algorithm and protocol; and each
 * protocol's bytes on the wire per byte of data (LL: 8-byte stores of 4
 * bytes of data and a flag; LL128: 120 bytes of data in every 128-byte
 * line; Simple: the data). */
static const uint64_t nccl_base_ns[2][4] = {{0, 6600, 14000, 8400}, {0, 6800, 14000, 8400}};
enum { HW_NVLINK, HW_PCI, HW_NET };
static const uint64_t nccl_hw_ns[3][2][4] = {
	{{0, 600, 1900, 3400}, {0, 600, 1250, 4000}},
	{{0, 1000, 2500, 5700}, {0, 1000, 1900, 4000}},
	{{0, 2700, 4000, 14000}, {0, 5000, 8500, 14000}},
};
static const uint32_t nccl_wire[4][2] = {{1, 1}, {2, 1}, {16, 15}, {1, 1}};
/* NCCL's correction of the tree AllReduce's bandwidth in its rule by
 * size (tuning.cc, treeCorrectionFactor: powers of two from 64 B to
 * 256 MB; by protocol LL, LL128, Simple): trees do not keep to the
 * model at medium sizes. */
static const float nccl_tree_corr[3][23] = {
	{1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0},
	{1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0},
	{.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9}};

/* PAT (tuning.cc): per operation 8 us and a part linear in the ranks,
 * 2.8 us each; per step of its logarithmic part the tree's network
 * latency over 3.5 (14 us / 3.5 with Simple, its only protocol). */
#define NCCL_PAT_BASE_NS 8000u
#define NCCL_PAT_PER_RANK_NS 2800u
#define NCCL_PAT_HOP_NS 4000u
/* The cost of a network post that a ring step across nodes still pays
 * where its hop is within a node (getNetOverhead: x86 Intel and others
 * 1 us; x3 for Simple). */
#define NCCL_NET_OVERHEAD_NS 1000u

/* NCCL's hop latencies for an operation of algorithm ti (0 ring, 1 tree)
 * and protocol p on c: within a node (NVLink or PCI, nccl.intra_node; a
 * ring across nodes at least the network overhead) and between nodes (the
 * network's; with one rank a node the tree's, whose latencies NCCL
 * takes as fully exposed then). */
static void hop_lats(ncclComm_t c, int ti, int p, uint64_t *intra, uint64_t *inter)
{
	uint32_t hw;
	uni_shim_nccl_nodes(&hw);
	int nn = c->nnodes, n = c->nranks;
	*intra = nccl_hw_ns[hw == UNI_NCCL_INTRA_PCI ? HW_PCI : HW_NVLINK][ti][p];
	*inter = nccl_hw_ns[HW_NET][nn == n ? 1 : ti][p];
	uint64_t oh = NCCL_NET_OVERHEAD_NS * (p == UNI_NCCL_PROTO_SIMPLE ? 3u : 1u);
	if (ti == 0 && nn > 1 && *intra < oh)
		*intra = oh;
}

/* How an operation of `bytes` on n ranks is timed: its algorithm (an
 * AllReduce's ring or tree; the others have one each) and protocol.
 * NCCL_ALGO and NCCL_PROTO (NCCL's own variables) win over the config
 * (nccl.algorithm, nccl.protocol); what is left open is NCCL's rule: the
 * pair with the smallest predicted time by NCCL's formulas, with the
 * session's default link (latency a, bandwidth B): base + hops x (a + hop)
 * + the protocol's wire bytes at the algorithm's bandwidth (ring
 * AllReduce 2(n-1) hops and 2(n-1)/n S; tree 2 ceil(log2 n) hops and 2S;
 * AllGather, ReduceScatter n-1 and (n-1)/n S; Broadcast, Reduce n-1 and
 * S; AlltoAll, Gather, Scatter one hop and S/n; Send, Recv one and S),
 * in NCCL's order (tree before ring, LL before LL128 before Simple) on a
 * tie. */
static void nccl_choose(ncclComm_t c, int kind, int redop, uint64_t bytes, int *algo, int *proto)
{
	int n = c->nranks, nn = c->nnodes;
	uint64_t lat;
	double bps;
	int calgo = uni_shim_nccl_config(&lat, &bps), cproto = uni_shim_nccl_proto();
	pthread_once(&g_env_algo_once, read_env_algo);
	pthread_once(&g_env_proto_once, read_env_proto);
	unsigned pmask = g_env_proto ? g_env_proto
			 : cproto ? 1u << cproto
				  : (1u << UNI_NCCL_PROTO_LL | 1u << UNI_NCCL_PROTO_LL128 | 1u << UNI_NCCL_PROTO_SIMPLE);
	/* The operation's algorithms: AllReduce ring and tree (tree from 3
	 * ranks unless asked for), AllGather and ReduceScatter ring and, with
	 * one rank a node, PAT (Simple only; not a ReduceScatter that scales:
	 * ncclAvg, PreMulSum), the others their one. What NCCL_ALGO (over
	 * the config) allows of them is chosen from; where it allows none,
	 * all of them. */
	unsigned sel = g_env_algo ? g_env_algo : calgo == UNI_NCCL_ALGO_AUTO ? ALGO_ALL : 1u << calgo;
	unsigned cand = 1u << UNI_NCCL_ALGO_RING;
	if (kind == K_ALLREDUCE && (n > 2 || sel == 1u << UNI_NCCL_ALGO_TREE))
		cand |= 1u << UNI_NCCL_ALGO_TREE;
	if ((kind == K_ALLGATHER || kind == K_REDSCAT) && nn == n && n > 1 && (pmask & 1u << UNI_NCCL_PROTO_SIMPLE) &&
	    !(kind == K_REDSCAT && (redop == ncclAvg || redop >= ncclNumOps)) && pat_enabled())
		cand |= 1u << UNI_NCCL_ALGO_PAT;
	unsigned amask = cand & sel ? cand & sel : cand;
	/* NCCL enables LL128 by default only where a node's GPUs are joined
	 * by NVLink (tuning.cc: typeIntra <= PATH_NVB). */
	uint32_t hw;
	uni_shim_nccl_nodes(&hw);
	if (!g_env_proto && !cproto && hw == UNI_NCCL_INTRA_PCI && nn < n)
		pmask &= ~(1u << UNI_NCCL_PROTO_LL128);
	double a = (double)lat, sb = (double)bytes * 8.0 / bps * 1e9; /* ns */
	double best = -1;
	*algo = UNI_NCCL_ALGO_RING;
	*proto = UNI_NCCL_PROTO_SIMPLE;
	static const int aorder[3] = {UNI_NCCL_ALGO_TREE, UNI_NCCL_ALGO_RING, UNI_NCCL_ALGO_PAT};
	for (int ai = 0; ai < 3; ai++) {
		int al = aorder[ai];
		if (!(amask & 1u << al))
			continue;
		if (al == UNI_NCCL_ALGO_PAT) {
			/* NCCL's PAT formula: its latencies, log2i(nNodes) steps
			 * of the tree's network latency (with the network's, a,
			 * as the other formulas take it) over 3.5, the whole of
			 * S at 3/4 of the bandwidth */
			double hops = log2i(nn);
			double tm = NCCL_PAT_BASE_NS + (double)NCCL_PAT_PER_RANK_NS * n +
				    hops * (NCCL_PAT_HOP_NS + a / 3.5) + sb / 0.75;
			if (best < 0 || tm < best) {
				best = tm;
				*algo = al;
				*proto = UNI_NCCL_PROTO_SIMPLE;
			}
			continue;
		}
		for (int p = UNI_NCCL_PROTO_LL; p <= UNI_NCCL_PROTO_SIMPLE; p++) {
			if (!(pmask & 1u << p))
				continue;
			int t = al == UNI_NCCL_ALGO_TREE;
			uint64_t hi, ho;
			hop_lats(c, t, p, &hi, &ho);
			/* hops within and between nodes, and the share of the
			 * data each rank moves at the algorithm's bandwidth */
			double intra, inter, frac;
			switch (kind) {
			case K_ALLREDUCE:
				if (t) {
					intra = 2.0 * (n / nn - 1);
					inter = 2.0 * log2i(nn);
					frac = 2.0;
				} else {
					inter = nn > 1 ? 2.0 * (nn - 1) : 0;
					intra = 2.0 * (n - 1) - inter;
					frac = 2.0 * (n - 1) / n;
				}
				break;
			case K_ALLGATHER:
			case K_REDSCAT:
			case K_BCAST:
			case K_REDUCE:
				inter = nn > 1 ? nn - 1 : 0;
				intra = (n - 1) - inter;
				frac = kind == K_BCAST || kind == K_REDUCE ? 1.0 : (double)(n - 1) / n;
				break;
			case K_ALLTOALL:
			case K_GATHER:
			case K_SCATTER:
			default:
				inter = nn > 1;
				intra = nn == 1;
				frac = kind == K_SEND || kind == K_RECV ? 1.0 : 1.0 / n;
				break;
			}
			double nlat = (double)nccl_base_ns[t][p] + intra * (double)hi + inter * (double)ho;
			/* NCCL's plateau of the multi-node ring (sm80 and later) */
			if (!t && p == UNI_NCCL_PROTO_SIMPLE && nn > 1 && kind == K_ALLREDUCE && bytes / (uint64_t)n >= 64)
				nlat *= 1.4;
			if (t && kind == K_ALLREDUCE && bytes >> 6) {
				int ls = log2i((int)(bytes >> 6 > INT32_MAX ? INT32_MAX : bytes >> 6));
				if (ls < 23)
					frac /= nccl_tree_corr[p - UNI_NCCL_PROTO_LL][ls];
			}
			double tm = nlat + (intra + inter) * a + frac * sb * nccl_wire[p][0] / nccl_wire[p][1];
			if (best < 0 || tm < best) {
				best = tm;
				*algo = al;
				*proto = p;
			}
		}
	}
}

/* NCCL's PAT (AllGather, ReduceScatter with one rank a node; docs/nccl.md
 * "PAT"): the steps of NCCL's own generator (nccl_pat.c) on this rank, one
 * channel, NCCL's chunk (a Simple step, 512 KiB, halved while more than
 * S/32 for AllGather, S/16 for ReduceScatter, down to 64 KiB). Every
 * post is a message of its slot's bytes. NCCL's workers run the steps in
 * order (with aggregated data in groups that meet at a barrier every
 * step), so a post leaves once every receive of the steps up to it has
 * arrived: on each dimension the latest (a connection delivers in order).
 * Dimension d joins the ranks 2^d apart: AllGather sends to rank - 2^d
 * and receives from rank + 2^d, ReduceScatter the other way round. The
 * steps are the same on every rank, so the messages a rank receives on a
 * dimension are those it sends on it. */
/* The rank 2^d away from me: above (up) or below. */
static int pat_peer(int me, int n, int d, int up)
{
	int delta = (1 << d) % n;
	return up ? (me + delta) % n : (me - delta + n) % n;
}

static void sched_pat(struct sched *s, ncclComm_t c, int rs, uint64_t bytes, int ch)
{
	int n = c->nranks, me = c->rank;
	uint64_t block = bytes / (uint64_t)n;
	if (!block)
		return;
	long chunk = 512 * 1024;
	while ((uint64_t)chunk * (rs ? 16u : 32u) > bytes && chunk > 65536)
		chunk /= 2;
	int dims = 0;
	while ((1 << dims) < n)
		dims++;
	/* the messages of each dimension: their sizes, then their receives */
	uint64_t *size[32] = {0};
	int nsz[32] = {0}, cap[32] = {0}, *rx[32] = {0}, nrx[32] = {0};
	int seen[32], rstep[32] = {0};
	struct uni_pat p;
	struct uni_pat_step ps;
	uni_pat_init(&p, rs, chunk, UNI_PAT_STEPS, UNI_PAT_PARALLEL, 0, block, block, chunk, me, n);
	do {
		uni_pat_next(&p, &ps);
		if (ps.skip || !ps.post_send || ps.send_dim < 0)
			continue;
		int d = ps.send_dim;
		if (nsz[d] == cap[d]) {
			cap[d] = cap[d] ? 2 * cap[d] : 16;
			uint64_t *z = realloc(size[d], (size_t)cap[d] * sizeof(*z));
			if (!z)
				goto oom;
			size[d] = z;
		}
		size[d][nsz[d]++] = (uint64_t)(ps.send_off + ps.nelem);
	} while (ps.last != 2);
	for (int d = 0; d < dims; d++) {
		seen[d] = -1;
		rx[d] = malloc((size_t)(nsz[d] ? nsz[d] : 1) * sizeof(int));
		if (!rx[d])
			goto oom;
	}
	uni_pat_init(&p, rs, chunk, UNI_PAT_STEPS, UNI_PAT_PARALLEL, 0, block, block, chunk, me, n);
	do {
		uni_pat_next(&p, &ps);
		if (ps.skip)
			continue;
		if (ps.recv_dim >= 0) {
			int d = ps.recv_dim, from = pat_peer(me, n, d, !rs);
			int j = rstep[d] + (rs ? 0 : ps.step_off);
			while (nrx[d] <= j && nrx[d] < nsz[d]) {
				rx[d][nrx[d]] = xrecv(s, c, from, ch, size[d][nrx[d]]);
				nrx[d]++;
			}
			if (j < nrx[d] && rx[d][j] > seen[d])
				seen[d] = rx[d][j];
			if (ps.post_recv)
				rstep[d]++;
		}
		if (ps.send_dim >= 0 && ps.post_send) {
			int d = ps.send_dim, to = pat_peer(me, n, d, rs);
			int list[32], nl = 0;
			for (int k = 0; k < dims; k++)
				if (seen[k] >= 0)
					list[nl++] = seen[k];
			xsend_deps(s, c, to, ch, (uint64_t)(ps.send_off + ps.nelem), list, nl);
		}
	} while (ps.last != 2);
	/* every message is received (the rank's end is its last arrival) */
	for (int d = 0; d < dims; d++) {
		int from = pat_peer(me, n, d, !rs);
		while (nrx[d] < nsz[d]) {
			xrecv(s, c, from, ch, size[d][nrx[d]]);
			nrx[d]++;
		}
	}
	goto out;
oom:
	s->oom = 1;
out:
	for (int d = 0; d < 32; d++) {
		free(size[d]);
		free(rx[d]);
	}
}

/* Adds this rank's transfers of one operation of `bytes` (the nccl-tests
 * S: the whole buffer of AllReduce, Broadcast, Reduce; the whole output or
 * input of AllGather, ReduceScatter, AlltoAll; one rank's block of Gather,
 * Scatter, Send, Recv) on channels ch, ch + 1. */
static void sched_op(struct sched *s, ncclComm_t c, int kind, int redop, uint64_t bytes, int root, int peer, int ch)
{
	int n = c->nranks, me = c->rank;
	if (n == 1)
		return;
	/* NCCL's ring: the nodes one after the other ("Nodes") */
	int mypos = ring_pos(c, me), right = ring_rank(c, mypos + 1), left = ring_rank(c, mypos + n - 1);
	int algo, proto;
	nccl_choose(c, kind, redop, bytes, &algo, &proto);
	if (algo == UNI_NCCL_ALGO_PAT) {
		s->base = NCCL_PAT_BASE_NS + NCCL_PAT_PER_RANK_NS * (uint64_t)n;
		s->hop_intra = s->hop_inter = NCCL_PAT_HOP_NS;
		s->wire_num = s->wire_den = 1;
		sched_pat(s, c, kind == K_REDSCAT, bytes, ch);
		return;
	}
	int ti = algo == UNI_NCCL_ALGO_TREE;
	s->base = nccl_base_ns[ti][proto];
	hop_lats(c, ti, proto, &s->hop_intra, &s->hop_inter);
	s->wire_num = nccl_wire[proto][0];
	s->wire_den = nccl_wire[proto][1];
	switch (kind) {
	case K_ALLREDUCE:
		if (algo == UNI_NCCL_ALGO_TREE) {
			/* Each tree carries half: reduce up, broadcast down,
			 * pipelined in chunks. */
			for (int t = 0; t < 2; t++) {
				int up, d0, d1;
				tree_links(c, t, &up, &d0, &d1);
				uint64_t half = t == 0 ? bytes / 2 : bytes - bytes / 2;
				for (uint64_t off = 0; off < half; off += UNI_NCCL_CHUNK) {
					uint64_t cb = half - off < UNI_NCCL_CHUNK ? half - off : UNI_NCCL_CHUNK;
					int r0 = d0 >= 0 ? xrecv(s, c, d0, ch + t, cb) : -1;
					int r1 = d1 >= 0 ? xrecv(s, c, d1, ch + t, cb) : -1;
					int b0 = r0, b1 = r1;
					if (up >= 0) {
						xsend(s, c, up, ch + t, cb, r0, r1);
						b0 = xrecv(s, c, up, ch + t, cb);
						b1 = -1;
					}
					if (d0 >= 0)
						xsend(s, c, d0, ch + t, cb, b0, b1);
					if (d1 >= 0)
						xsend(s, c, d1, ch + t, cb, b0, b1);
				}
			}
			return;
		}
		/* ring */
		__attribute__((fallthrough));
	case K_ALLGATHER:
	case K_REDSCAT: {
		/* Ring: steps of S/n; AllReduce has 2(n-1), the others n-1. */
		int steps = kind == K_ALLREDUCE ? 2 * (n - 1) : n - 1;
		uint64_t chunk = (bytes + (uint64_t)n - 1) / (uint64_t)n;
		int prev = -1;
		for (int st = 0; st < steps; st++) {
			xsend(s, c, right, ch, chunk, prev, -1);
			prev = xrecv(s, c, left, ch, chunk);
		}
		return;
	}
	case K_BCAST:
	case K_REDUCE: {
		/* A chain along the ring, pipelined in chunks: Broadcast from
		 * the root on, Reduce ending at the root. */
		int rp = ring_pos(c, root);
		int pos = kind == K_BCAST ? (mypos - rp + n) % n : (mypos - rp - 1 + 2 * n) % n;
		for (uint64_t off = 0; off < bytes; off += UNI_NCCL_CHUNK) {
			uint64_t cb = bytes - off < UNI_NCCL_CHUNK ? bytes - off : UNI_NCCL_CHUNK;
			int r = pos > 0 ? xrecv(s, c, left, ch, cb) : -1;
			if (pos < n - 1)
				xsend(s, c, right, ch, cb, r, -1);
		}
		return;
	}
	case K_ALLTOALL: {
		uint64_t per = bytes / (uint64_t)n;
		for (int k = 1; k < n; k++)
			xsend(s, c, (me + k) % n, ch, per, -1, -1);
		for (int k = 1; k < n; k++)
			xrecv(s, c, (me + n - k) % n, ch, per);
		return;
	}
	case K_GATHER:
		if (me != root)
			xsend(s, c, root, ch, bytes, -1, -1);
		else
			for (int p = 0; p < n; p++)
				if (p != root)
					xrecv(s, c, p, ch, bytes);
		return;
	case K_SCATTER:
		if (me == root) {
			for (int p = 0; p < n; p++)
				if (p != root)
					xsend(s, c, p, ch, bytes, -1, -1);
		} else {
			xrecv(s, c, root, ch, bytes);
		}
		return;
	case K_SEND:
		if (peer != me)
			fc_send(s, c, peer, bytes);
		return;
	case K_RECV:
		if (peer != me)
			fc_recv(s, c, peer, bytes);
		return;
	}
}

/* Operations ---------------------------------------------------------------------- */

enum { DEV_SEND = 1, DEV_RECV = 2 };

struct op {
	int kind;
	const void *send;
	void *recv;
	size_t count; /* elements: per rank block for AllGather/ReduceScatter/AlltoAll/Gather/Scatter */
	int type, redop, root, peer;
	ncclComm_t comm;
	cudaStream_t stream;
	int dev; /* DEV_SEND, DEV_RECV: which buffers are device memory */
	/* device buffers: the caller's, while send/recv point at host copies
	 * (pinned: from cudaMallocHost) */
	const void *dsend;
	void *drecv;
	size_t recv_bytes;
	int pinned_send, pinned_recv;
	size_t cap_send, cap_recv;
	/* a PreMulSum op's scalar, as the op was when called (NCCL lets the
	 * caller destroy the op once the call returns): its value, or where
	 * to read it when the op runs (ncclScalarDevice), and for device
	 * memory (scal_dev) the host copy the runtime makes (scal_h) */
	int pre;
	uint8_t pval[8];
	const void *pptr;
	int scal_dev, pinned_scal;
	void *scal_h;
	size_t cap_scal;
	/* send/recv progress; a receive whose sender sent another length
	 * drops that message (drop: its bytes) so the pair stays in step */
	size_t done, drop;
	int hdr_done, finished, draining;
	/* its number between the pair (spill), a receive's bytes left in the
	 * ring's current fragment, and since when (real ns) a send found no
	 * room */
	uint64_t msgn;
	size_t frag;
	uint64_t stall;
	int spill_failed; /* no segment could be made for its rest: not tried again */
	int coll; /* a message of this collective (run_rooted; 0: a Send or Recv) */
	uint64_t tag; /* such a message's tag, in its length word (msg_tag) */
};

/* What an op is, for messages: its own kind, or the collective whose
 * message it moves. */
#define OP_NAME(o) kind_name[(o)->coll ? (o)->coll : (o)->kind]

static ncclResult_t check_common(ncclComm_t comm, const char *fn, int type, int root_or_peer, int need_root)
{
	if (!comm)
		return fail(NULL, ncclInvalidArgument, "%s: comm is NULL", fn);
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "%s: comm is not a live communicator (destroyed or corrupt)", fn);
	ncclResult_t r = ensure_usable(comm, fn);
	if (r != ncclSuccess)
		return r;
	if (!uni_nccl_type_size(type))
		return fail(comm, ncclInvalidArgument, "%s: invalid data type %d", fn, type);
	if (need_root && (root_or_peer < 0 || root_or_peer >= comm->nranks))
		return fail(comm, ncclInvalidArgument, "%s: %s %d out of range 0..%d", fn,
			    need_root == 2 ? "peer" : "root", root_or_peer, comm->nranks - 1);
	return ncclSuccess;
}

/* Device buffers. Where the program uses the CUDA runtime (libcudart
 * already loaded: the shim never loads it), a pointer the runtime calls
 * device memory goes through host copies: before the data moves, the
 * input is copied to host memory on the caller's stream (after the work
 * queued before the call) and the stream is synchronised; afterwards the
 * result is copied back on the stream, synchronised again, so the call
 * returns with the result in place and later work on any stream sees it.
 * Without a GPU the runtime's pointer query fails and every pointer is
 * host memory. */
struct cudart {
	cudaError_t (*_Atomic ptrattr)(struct cudaPointerAttributes *, const void *);
	cudaError_t (*memcpy_async)(void *, const void *, size_t, enum cudaMemcpyKind, cudaStream_t);
	cudaError_t (*stream_sync)(cudaStream_t);
	cudaError_t (*malloc_host)(void **, size_t);
	cudaError_t (*free_host)(void *);
	cudaError_t (*launch_host)(cudaStream_t, void (*)(void *), void *);
	cudaError_t (*is_capturing)(cudaStream_t, enum cudaStreamCaptureStatus *);
	cudaError_t (*stream_query)(cudaStream_t);
	const char *(*errstr)(cudaError_t);
	cudaError_t (*peek_last)(void);
	cudaError_t (*get_last)(void);
	cudaError_t (*get_device)(int *);
	cudaError_t (*set_device)(int);
	cudaError_t (*device_count)(int *);
};
static struct cudart g_rt;

/* The runtime keeps the last error of a call in the calling thread
 * (cudaGetLastError), the cudaErrorNotReady of a stream query and the
 * failed query of a pointer without a GPU too; PyTorch checks it after
 * its kernel launches. The shim's own probing calls (stream queries,
 * pointer queries, a pinned allocation it can do without) leave it as
 * they found it where it was clear: rt_mark before, rt_unmark after (an
 * error already there is replaced by the latest, which nothing can undo;
 * a sticky error stays in the context whatever is cleared). */
static cudaError_t rt_mark(void)
{
	uni_shim_quiet_io(1);
	return g_rt.peek_last ? g_rt.peek_last() : cudaSuccess;
}

static void rt_unmark(cudaError_t before, cudaError_t e)
{
	if (before == cudaSuccess && e != cudaSuccess && g_rt.get_last)
		(void)g_rt.get_last();
	uni_shim_quiet_io(0);
}

/* The calling thread's current CUDA device (a communicator made now is
 * on it, as NCCL's InitRank takes it); 0 where no runtime answers (none
 * loaded, no GPU). */
static int rt_device(void)
{
	if (!g_rt.get_device)
		return 0;
	int d = 0;
	cudaError_t before = rt_mark(), e = g_rt.get_device(&d);
	rt_unmark(before, e);
	return e == cudaSuccess && d >= 0 ? d : 0;
}

/* The shim's CUDA calls for a communicator (its copies, stream queries
 * and syncs, pinned buffers) run with the communicator's device current,
 * as NCCL's own launches do (cudaSetDevice(comm->cudaDev)), and the
 * caller's comes back after the call (dev_end; NCCL's GroupEnd and
 * Destroy too): so a call from a thread whose current device is another
 * one (one thread driving several GPUs, a watchdog thread) moves nothing
 * through that device. As in NCCL, a thread that had no device gets
 * device 0 back, which makes its context there.
 * t_dev_saved: the caller's device (-1: not changed), t_dev_cur: the one
 * set. */
static __thread int t_dev_saved = -1, t_dev_cur = -1;

static void dev_use(ncclComm_t c)
{
	if (!g_rt.get_device || !g_rt.set_device || c->dev == t_dev_cur)
		return;
	cudaError_t before = rt_mark(), e = cudaSuccess;
	if (t_dev_saved < 0) {
		int cur = -1;
		if ((e = g_rt.get_device(&cur)) == cudaSuccess && cur >= 0) {
			t_dev_saved = t_dev_cur = cur;
		}
	}
	if (e == cudaSuccess && c->dev != t_dev_cur && (e = g_rt.set_device(c->dev)) == cudaSuccess)
		t_dev_cur = c->dev;
	rt_unmark(before, e);
}

static void dev_end(void)
{
	if (t_dev_saved >= 0 && t_dev_cur != t_dev_saved) {
		cudaError_t before = rt_mark(), e = g_rt.set_device(t_dev_saved);
		rt_unmark(before, e);
	}
	t_dev_saved = t_dev_cur = -1;
}

/* Without the runtime (linked statically into the program: nvcc's
 * default), the driver's pointer query (libcuda, which such a program
 * has loaded): a device buffer is then an error, not read on the host,
 * where it faulted. (cuPointerGetAttribute, CU_POINTER_ATTRIBUTE_MEMORY_TYPE
 * 2; CU_MEMORYTYPE_DEVICE 2, CU_MEMORYTYPE_UNIFIED 4.) */
static int (*_Atomic g_drv_ptrattr)(void *, int, unsigned long long);

static unsigned long long g_rt_adds; /* loads seen by the last look */

struct rt_look_arg {
	int first, unchanged;
	unsigned long long adds;
	char name[512];
	char drv[512];
};

static int find_cudart(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct rt_look_arg *a = arg;
	if (a->first) { /* nothing loaded since the last look: done */
		a->first = 0;
		if (size >= offsetof(struct dl_phdr_info, dlpi_subs) &&
		    info->dlpi_adds == __atomic_load_n(&g_rt_adds, __ATOMIC_ACQUIRE)) {
			a->unchanged = 1;
			return 1;
		}
		a->adds = info->dlpi_adds;
	}
	const char *slash = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
	const char *base = slash ? slash + 1 : info->dlpi_name;
	if (base && !strncmp(base, "libcuda.so", 10) && !a->drv[0])
		snprintf(a->drv, sizeof(a->drv), "%s", info->dlpi_name);
	if (!base || strncmp(base, "libcudart.so", 12))
		return 0;
	snprintf(a->name, sizeof(a->name), "%s", info->dlpi_name);
	return 1;
}

/* Looks for the CUDA runtime the program loaded (until it finds one, and
 * only when something was loaded since the last look); a process that has
 * one uses CUDA, so the device timeline starts (CUPTI, unless the
 * driver's injection hook started it already). dlopen after the walk: not
 * under the loader's lock that dl_iterate_phdr holds. */
static void rt_look(void)
{
	if (atomic_load_explicit(&g_rt.ptrattr, memory_order_acquire))
		return;
	struct rt_look_arg a = {.first = 1};
	dl_iterate_phdr(find_cudart, &a);
	if (a.unchanged)
		return;
	if (a.drv[0] && !atomic_load_explicit(&g_drv_ptrattr, memory_order_acquire)) {
		void *d = dlopen(a.drv, RTLD_LAZY | RTLD_NOLOAD);
		if (d)
			atomic_store_explicit(&g_drv_ptrattr, dlsym(d, "cuPointerGetAttribute"), memory_order_release);
	}
	void *h = a.name[0] ? dlopen(a.name, RTLD_LAZY | RTLD_NOLOAD) : NULL;
	if (h) {
		*(void **)&g_rt.memcpy_async = dlsym(h, "cudaMemcpyAsync");
		*(void **)&g_rt.stream_sync = dlsym(h, "cudaStreamSynchronize");
		*(void **)&g_rt.malloc_host = dlsym(h, "cudaMallocHost");
		*(void **)&g_rt.free_host = dlsym(h, "cudaFreeHost");
		*(void **)&g_rt.launch_host = dlsym(h, "cudaLaunchHostFunc");
		*(void **)&g_rt.is_capturing = dlsym(h, "cudaStreamIsCapturing");
		*(void **)&g_rt.stream_query = dlsym(h, "cudaStreamQuery");
		*(void **)&g_rt.errstr = dlsym(h, "cudaGetErrorString");
		*(void **)&g_rt.peek_last = dlsym(h, "cudaPeekAtLastError");
		*(void **)&g_rt.get_last = dlsym(h, "cudaGetLastError");
		*(void **)&g_rt.get_device = dlsym(h, "cudaGetDevice");
		*(void **)&g_rt.set_device = dlsym(h, "cudaSetDevice");
		*(void **)&g_rt.device_count = dlsym(h, "cudaGetDeviceCount");
		void *pa = dlsym(h, "cudaPointerGetAttributes");
		atomic_store_explicit(&g_rt.ptrattr, pa, memory_order_release);
		if (pa)
			uni_cupti_start("the first NCCL call");
	}
	/* (Only now that what it found is published: a thread that looks
	 * meanwhile walks again, and never takes a device pointer for host
	 * memory because the loads were counted before they were looked up.) */
	__atomic_store_n(&g_rt_adds, a.adds, __ATOMIC_RELEASE);
}

static int is_device_ptr(const void *p)
{
	if (!p)
		return 0;
	rt_look();
	cudaError_t (*pa)(struct cudaPointerAttributes *, const void *) =
		atomic_load_explicit(&g_rt.ptrattr, memory_order_acquire);
	if (!pa) {
		int (*dp)(void *, int, unsigned long long) = atomic_load_explicit(&g_drv_ptrattr, memory_order_acquire);
		unsigned int type = 0, managed = 0;
		unsigned long long v = (unsigned long long)(uintptr_t)p;
		if (!dp || dp(&type, 2, v) != 0 || (type != 2 && type != 4))
			return 0;
		/* (Managed memory says device too; the host may read it, as the
		 * runtime's query lets it: CU_POINTER_ATTRIBUTE_IS_MANAGED, 8.) */
		return !(dp(&managed, 8, v) == 0 && managed);
	}
	struct cudaPointerAttributes a;
	memset(&a, 0, sizeof(a));
	cudaError_t before = rt_mark(), e = pa(&a, p);
	rt_unmark(before, e);
	return e == cudaSuccess && a.type == cudaMemoryTypeDevice;
}

static const char *rt_err(cudaError_t e)
{
	return g_rt.errstr ? g_rt.errstr(e) : "CUDA error";
}

/* The error of a stream whose queued work will never run (a sticky CUDA
 * error: an illegal address in a kernel), or NULL while it may still run
 * (cudaErrorNotReady) or where the runtime cannot say. */
static const char *stream_broken(cudaStream_t s)
{
	if (!g_rt.stream_query)
		return NULL;
	uni_cupti_internal(1);
	cudaError_t before = rt_mark(), e = g_rt.stream_query(s);
	rt_unmark(before, e);
	uni_cupti_internal(0);
	return e == cudaSuccess || e == cudaErrorNotReady ? NULL : rt_err(e);
}

static ncclResult_t check_device_path(ncclComm_t comm, const char *fn)
{
	if (!atomic_load_explicit(&g_rt.ptrattr, memory_order_acquire))
		return fail(comm, ncclInvalidUsage,
			    "%s: a device buffer, but the program has no CUDA runtime library loaded (libcudart.so: "
			    "one linked into the program, nvcc's default, is not seen): the simulated NCCL moves "
			    "device buffers through the program's libcudart; link it with -cudart shared", fn);
	if (!g_rt.memcpy_async || !g_rt.stream_sync)
		return fail(comm, ncclInvalidUsage,
			    "%s: device buffers need cudaMemcpyAsync and cudaStreamSynchronize from the program's CUDA "
			    "runtime, which it does not export", fn);
	return ncclSuccess;
}

/* Pointers are not checked by NCCL (unless NCCL_CHECK_POINTERS=1); host
 * memory that is NULL would crash the program here, so it is an error.
 * *dev says which of the buffers the rank uses are device memory. */
static ncclResult_t check_bufs(ncclComm_t comm, const char *fn, int kind, const void *sb, const void *rb, size_t count,
			       int root, int *dev)
{
	*dev = 0;
	if (!count)
		return ncclSuccess;
	int me = comm->rank, need_send = 1, need_recv = 1;
	if (kind == K_BCAST || kind == K_SCATTER)
		need_send = me == root;
	if (kind == K_REDUCE || kind == K_GATHER)
		need_recv = me == root;
	if ((need_send && !sb) || (need_recv && !rb))
		return fail(comm, ncclInvalidArgument, "%s: rank %d: %s buffer is NULL", fn, me,
			    need_send && !sb ? "send" : "receive");
	*dev = (need_send && is_device_ptr(sb) ? DEV_SEND : 0) | (need_recv && is_device_ptr(rb) ? DEV_RECV : 0);
	return *dev ? check_device_path(comm, fn) : ncclSuccess;
}

/* A count whose buffers no address space holds (their bytes would wrap
 * the arithmetic of the data path: a copy of 0 bytes, then a read past
 * it): ncclInvalidArgument. Each buffer is count elements, or count per
 * rank for AllGather, ReduceScatter, AlltoAll, Gather, Scatter. */
static ncclResult_t check_count(ncclComm_t comm, const char *fn, int kind, size_t count, int type)
{
	uint64_t per = uni_nccl_type_size(type), n = 1;
	if (kind == K_ALLGATHER || kind == K_REDSCAT || kind == K_ALLTOALL || kind == K_GATHER || kind == K_SCATTER)
		n = (uint64_t)comm->nranks;
	if (!per || (uint64_t)count <= ((uint64_t)SIZE_MAX >> 2) / per / n)
		return ncclSuccess;
	return fail(comm, ncclInvalidArgument, "%s: rank %d: a count of %zu elements of %llu bytes%s is more memory than "
		    "there is", fn, comm->rank, count, (unsigned long long)per, n > 1 ? " per rank" : "");
}

static ncclResult_t check_redop(ncclComm_t comm, const char *fn, int op, int type)
{
	if (op >= 0 && op < ncclNumOps)
		return ncclSuccess;
	int i = op - ncclNumOps;
	if (i < 0 || i >= UNI_NCCL_MAX_USER_OPS || !comm->uop[i].used)
		return fail(comm, ncclInvalidArgument, "%s: invalid reduction op %d", fn, op);
	if (comm->uop[i].type != type)
		return fail(comm, ncclInvalidArgument, "%s: op %d was created for data type %d, used with %d", fn, op,
			    comm->uop[i].type, type);
	return ncclSuccess;
}

/* Every rank describes its call; all must agree. sync: their first
 * barrier is a meeting (CommSplit; "Meetings" above barrier_x). */
static ncclResult_t agree(ncclComm_t c, const struct op *o, int sync)
{
	struct desc *d = &c->sh->desc[c->rank];
	int base = o->redop >= ncclNumOps ? -1 : o->redop;
	d->kind = (uint32_t)o->kind;
	d->type = (uint32_t)o->type;
	d->op = (uint32_t)base;
	d->root = (uint32_t)o->root;
	d->count = o->count;
	d->seq = ++c->seq;
	ncclResult_t r = barrier_x(c, kind_name[o->kind], sync);
	if (r != ncclSuccess)
		return r;
	ncclResult_t bad = ncclSuccess;
	for (int p = 0; p < c->nranks && bad == ncclSuccess; p++) {
		const struct desc *e = &c->sh->desc[p];
		if (e->seq != d->seq || e->kind != d->kind)
			bad = fail(c, ncclInvalidUsage, "rank %d called %s as its operation #%llu, rank %d called %s as #%llu",
				   c->rank, kind_name[d->kind], (unsigned long long)d->seq, p,
				   e->kind <= K_SPLIT ? kind_name[e->kind] : "?", (unsigned long long)e->seq);
		else if (e->count != d->count || e->type != d->type)
			bad = fail(c, ncclInvalidArgument,
				   "%s: rank %d has count %llu of type %u, rank %d count %llu of type %u", kind_name[d->kind],
				   c->rank, (unsigned long long)d->count, d->type, p, (unsigned long long)e->count, e->type);
		else if (e->root != d->root && (d->kind == K_BCAST || d->kind == K_REDUCE || d->kind == K_GATHER ||
						 d->kind == K_SCATTER))
			bad = fail(c, ncclInvalidArgument, "%s: rank %d has root %u, rank %d root %u", kind_name[d->kind],
				   c->rank, d->root, p, e->root);
		else if (e->op != d->op)
			bad = fail(c, ncclInvalidArgument, "%s: rank %d reduces with op %d, rank %d with %d",
				   kind_name[d->kind], c->rank, (int)d->op, p, (int)e->op);
	}
	/* Nobody may reuse the descriptions before all have read them. */
	r = barrier(c, kind_name[o->kind]);
	return bad != ncclSuccess ? bad : r;
}

static const void *premul_scalar(const struct op *o, int *pre)
{
	*pre = o->pre;
	if (!o->pre)
		return NULL;
	if (o->scal_dev)
		return o->scal_h;
	return o->pptr ? o->pptr : o->pval;
}

/* Takes the PreMulSum op's scalar into o when it is called. */
static void premul_take(struct op *o)
{
	if (o->redop < ncclNumOps)
		return;
	const struct user_op *u = &o->comm->uop[o->redop - ncclNumOps];
	o->pre = 1;
	memcpy(o->pval, u->scalar, sizeof(o->pval));
	o->pptr = u->ptr;
	o->scal_dev = u->ptr_dev;
}

/* A collective's data, through the slots in chunks. */
static ncclResult_t run_coll(const struct op *o)
{
	ncclComm_t c = o->comm;
	int n = c->nranks, me = c->rank;
	size_t esz = uni_nccl_type_size(o->type);
	/* Of nothing, nothing moves, and the ranks do not meet: NCCL discards
	 * an empty collective ("Empty collectives can be discarded",
	 * taskAppend in src/enqueue.cc). It still counts (agree's numbers):
	 * a rank that called it with a count where the others had none is
	 * told by its next operation's agreement, or waits (unid reports the
	 * deadlock), as with NCCL. */
	if (o->count == 0) {
		/* (Described all the same, for a peer's deadlock report: every
		 * rank has read the descriptions of the operation before.) */
		struct desc *d = &c->sh->desc[me];
		d->kind = (uint32_t)o->kind;
		d->count = 0;
		d->seq = ++c->seq;
		return ncclSuccess;
	}
	ncclResult_t r = agree(c, o, 0);
	if (r != ncclSuccess)
		return r;
	int pre;
	const void *scalar = premul_scalar(o, &pre);
	int base = pre ? ncclSum : o->redop;
	/* Elements per chunk: a whole slot, or a slot cut in n blocks. */
	int blocks = (o->kind == K_REDSCAT || o->kind == K_ALLTOALL || o->kind == K_SCATTER) ? n : 1;
	size_t per = UNI_NCCL_SLOT / (esz * (size_t)blocks);
	const void *in[UNI_NCCL_MAX_RANKS];
	for (size_t off = 0; off < o->count || (off == 0 && o->count == 0); off += per) {
		size_t m = o->count - off < per ? o->count - off : per;
		if (!m)
			break;
		const uint8_t *sb = o->send;
		uint8_t *rb = o->recv;
		/* 1. my part into my slot */
		switch (o->kind) {
		case K_ALLREDUCE:
		case K_REDUCE:
		case K_ALLGATHER:
		case K_GATHER:
			memcpy(slot(c, me), sb + off * esz, m * esz);
			break;
		case K_BCAST:
			if (me == o->root)
				memcpy(slot(c, me), sb + off * esz, m * esz);
			break;
		case K_REDSCAT:
		case K_ALLTOALL:
			for (int b = 0; b < n; b++)
				memcpy(slot(c, me) + (size_t)b * m * esz, sb + ((size_t)b * o->count + off) * esz, m * esz);
			break;
		case K_SCATTER:
			if (me == o->root)
				for (int b = 0; b < n; b++)
					memcpy(slot(c, me) + (size_t)b * m * esz, sb + ((size_t)b * o->count + off) * esz,
					       m * esz);
			break;
		}
		if ((r = barrier(c, kind_name[o->kind])) != ncclSuccess)
			return r;
		/* 2. my result from the slots */
		switch (o->kind) {
		case K_ALLREDUCE:
		case K_REDUCE:
			if (o->kind == K_ALLREDUCE || me == o->root) {
				for (int p = 0; p < n; p++)
					in[p] = slot(c, p);
				uni_nccl_reduce(rb + off * esz, in, n, m, o->type, o->redop < ncclNumOps ? o->redop : base, pre,
						scalar);
			}
			break;
		case K_BCAST:
			memcpy(rb + off * esz, slot(c, o->root), m * esz);
			break;
		case K_ALLGATHER:
			for (int p = 0; p < n; p++)
				memcpy(rb + ((size_t)p * o->count + off) * esz, slot(c, p), m * esz);
			break;
		case K_GATHER:
			if (me == o->root)
				for (int p = 0; p < n; p++)
					memcpy(rb + ((size_t)p * o->count + off) * esz, slot(c, p), m * esz);
			break;
		case K_REDSCAT:
			for (int p = 0; p < n; p++)
				in[p] = slot(c, p) + (size_t)me * m * esz;
			uni_nccl_reduce(rb + off * esz, in, n, m, o->type, o->redop < ncclNumOps ? o->redop : base, pre, scalar);
			break;
		case K_ALLTOALL:
			for (int p = 0; p < n; p++)
				memcpy(rb + ((size_t)p * o->count + off) * esz, slot(c, p) + (size_t)me * m * esz, m * esz);
			break;
		case K_SCATTER:
			memcpy(rb + off * esz, slot(c, o->root) + (size_t)me * m * esz, m * esz);
			break;
		}
		if ((r = barrier(c, kind_name[o->kind])) != ncclSuccess)
			return r;
	}
	return ncclSuccess;
}

/* Send/recv through the pair rings: [u64 length][bytes]. Returns 1 when
 * the op made progress. */
static uint8_t *ring_of(ncclComm_t c, int from, int to)
{
	return c->rings + ((size_t)from * c->nranks + to) * UNI_NCCL_PAIR;
}

static struct pairbox *box_of(ncclComm_t c, int from, int to)
{
	return &c->box[(size_t)from * c->nranks + to];
}

/* Bytes free in the pair's ring (its writer's view), and bytes to read
 * (its reader's). */
static size_t ring_room(const struct pairbox *b)
{
	return UNI_NCCL_PAIR - (atomic_load_explicit(&b->wr, memory_order_relaxed) -
				atomic_load_explicit(&b->rd, memory_order_acquire));
}

static size_t ring_have(const struct pairbox *b)
{
	return atomic_load_explicit(&b->wr, memory_order_acquire) - atomic_load_explicit(&b->rd, memory_order_relaxed);
}

/* Pieces that fit the ring (ring_room), in order, published (and their
 * reader woken) once. */
static void ring_putv(ncclComm_t c, int to, const uint8_t *const *p, const size_t *len, int n)
{
	struct pairbox *b = box_of(c, c->rank, to);
	uint32_t wr = atomic_load_explicit(&b->wr, memory_order_relaxed);
	uint8_t *ring = ring_of(c, c->rank, to);
	size_t all = 0;
	for (int i = 0; i < n; i++) {
		size_t at = (wr + all) % UNI_NCCL_PAIR, first = UNI_NCCL_PAIR - at < len[i] ? UNI_NCCL_PAIR - at : len[i];
		memcpy(ring + at, p[i], first);
		memcpy(ring, p[i] + first, len[i] - first);
		all += len[i];
	}
	atomic_store_explicit(&b->wr, wr + (uint32_t)all, memory_order_release);
	if (all)
		uni_futex_wake(&b->wr, 1);
}

/* One u64 (a message's length or a fragment's) into a ring with room. */
static void ring_put_u64(ncclComm_t c, int to, uint64_t v)
{
	const uint8_t *p = (const uint8_t *)&v;
	size_t len = 8;
	ring_putv(c, to, &p, &len, 1);
}

static size_t ring_get(ncclComm_t c, int from, uint8_t *p, size_t len)
{
	struct pairbox *b = box_of(c, from, c->rank);
	uint32_t rd = atomic_load_explicit(&b->rd, memory_order_relaxed);
	size_t have = ring_have(b);
	if (len > have)
		len = have;
	uint8_t *ring = ring_of(c, from, c->rank);
	size_t at = rd % UNI_NCCL_PAIR, first = UNI_NCCL_PAIR - at < len ? UNI_NCCL_PAIR - at : len;
	memcpy(p, ring + at, first);
	memcpy(p + first, ring, len - first);
	atomic_store_explicit(&b->rd, rd + (uint32_t)len, memory_order_release);
	if (len)
		uni_futex_wake(&b->rd, 1);
	return len;
}

/* Send/recv through the pair's ring: a message is its length (u64; a
 * collective's message has a tag above its 44 bits of bytes, msg_tag),
 * then fragments, each a u64 of its length and its bytes, until the length is
 * there; a fragment whose u64 has UNI_NCCL_SPILL set is the rest of the
 * message, kept outside the ring in a segment of its own, named after the
 * communicator's, the pair and the message's number between them, which
 * its reader removes. A fragment is the rest of its message or at least
 * UNI_NCCL_FRAG_MIN (fragments of a few bytes, written as room came,
 * made the two sides wake each other for each: 10 times slower for
 * messages of 16 kB). A send keeps UNI_NCCL_SPILL_ROOM of the ring free
 * (for such fragments' u64s) and puts its rest outside the ring once the
 * ring has had no room for it for UNI_NCCL_SPILL_AFTER_NS (not in
 * deterministic mode, whose turn wakes the sender as its receiver
 * reads). So a sender does not wait for
 * long for its receiver to read: in simulate mode it waited, holding the
 * nic network at its clock, for a receiver still in an earlier operation
 * that needed the network to move (docs/nccl.md "Data path"); and a
 * receiver that reads as the sender writes takes the message through the
 * ring, without a segment made, filled and removed (20 times slower for
 * messages of MiBs, docs/benchmarks.md). */
#define UNI_NCCL_SPILL (1ull << 63)
#define UNI_NCCL_SPILL_ROOM (64u << 10)
#define UNI_NCCL_SPILL_AFTER_NS 2000000ull
#define UNI_NCCL_FRAG_MIN (64u << 10) /* a fragment: the rest, or this much at least */

/* bytes at p, the rest of message n to peer, into a segment of its own:
 * 1, or 0 when one cannot be made (the rest then waits for the ring). */
static int spill_put(ncclComm_t c, int peer, const void *p, size_t bytes, uint64_t n, int coll)
{
	/* A collective's message: never more than half of what /dev/shm has
	 * free (others use it too, and a Broadcast's root keeps a copy for
	 * every rank behind it; every rank moves collectives in the same
	 * order, so waiting for room instead cannot hang, where a Send whose
	 * receiver waits for a sign of its own could). */
	struct statvfs sv;
	if (coll && statvfs("/dev/shm", &sv) == 0 && (uint64_t)bytes > (uint64_t)sv.f_bavail * sv.f_frsize / 2)
		return 0;
	char name[128];
	uni_nccl_spill_name(c->seg, c->rank, peer, n, name, sizeof(name));
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0)
		return 0;
	/* (Space taken now: a full /dev/shm is a fall-back to the ring, not
	 * a SIGBUS in the copy, as a tmpfs ftruncate reserves nothing.) */
	void *m = MAP_FAILED;
	if (ftruncate(fd, (off_t)bytes) == 0 && posix_fallocate(fd, 0, (off_t)bytes) == 0)
		m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		shm_unlink(name);
		return 0;
	}
	memcpy(m, p, bytes);
	munmap(m, bytes);
	return 1;
}

/* The rest (bytes) of message n from o's peer, kept outside the ring,
 * into dst (NULL: dropped); the segment is removed. */
static ncclResult_t spill_get(ncclComm_t c, const struct op *o, void *dst, size_t bytes, uint64_t n)
{
	char name[128];
	uni_nccl_spill_name(c->seg, o->peer, c->rank, n, name, sizeof(name));
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd < 0)
		return fail(c, ncclSystemError, "nccl%s: rank %d: the message from rank %d (/dev/shm%s) is gone: %s",
			    OP_NAME(o), c->rank, o->peer, name, strerror(errno));
	ncclResult_t r = ncclSuccess;
	if (dst && bytes) {
		/* (Its sender meanwhile waits for room rather than put its
		 * next message outside the ring too: each kept outside made its
		 * reader slower, and the next was kept outside again.) */
		struct pairbox *b = box_of(c, o->peer, c->rank);
		atomic_store_explicit(&b->rbusy, 1, memory_order_release);
		void *p = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			r = fail(c, ncclSystemError, "nccl%s: rank %d: cannot map the message from rank %d: %s", OP_NAME(o),
				 c->rank, o->peer, strerror(errno));
		} else {
			memcpy(dst, p, bytes);
			munmap(p, bytes);
		}
		atomic_store_explicit(&b->rbusy, 0, memory_order_release);
		uni_futex_wake(&b->rd, 1); /* (its sender may wait for room) */
	}
	close(fd);
	shm_unlink(name);
	return r;
}

/* c is gone: the messages to its rank kept outside the ring, which it
 * will never read, are removed (there are some only if a header is
 * unread in a ring to it). */
static void spill_drop(ncclComm_t c)
{
	int unread = 0;
	for (int p = 0; p < c->nranks && !unread; p++) {
		struct pairbox *b = box_of(c, p, c->rank);
		unread = p != c->rank && atomic_load(&b->wr) != atomic_load(&b->rd);
	}
	if (unread)
		uni_nccl_spills_remove(c->seg, c->rank);
}

/* A message's length word: its bytes, and for a collective's message
 * (run_rooted) a tag above them: the collective, its data type and its
 * number on the communicator (mod 2^10), so that a receiver finds a
 * message of another operation (ranks that disagree on an operation, its
 * root or its type; a group whose Send a peer takes for a Broadcast's
 * message) instead of taking its bytes. */
#define MSG_BYTES ((1ull << 44) - 1)

static uint64_t msg_tag(int kind, int type, uint64_t seq)
{
	return 1ull << 63 | (uint64_t)(kind & 15) << 59 | (uint64_t)(type & 31) << 54 | (seq & 1023) << 44;
}

/* What a length word's tag says, for messages. */
static void msg_what(uint64_t w, char *buf, size_t len)
{
	if (!(w >> 44))
		snprintf(buf, len, "a Send of %llu bytes", (unsigned long long)(w & MSG_BYTES));
	else
		snprintf(buf, len, "nccl%s's message of %llu bytes (type %u, its operation #%llu mod 1024)",
			 kind_name[((w >> 59) & 15) <= K_SPLIT ? (w >> 59) & 15 : 0], (unsigned long long)(w & MSG_BYTES),
			 (unsigned)(w >> 54) & 31, (unsigned long long)(w >> 44) & 1023);
}

static int p2p_send_step(struct op *o)
{
	ncclComm_t c = o->comm;
	struct pairbox *b = box_of(c, c->rank, o->peer);
	size_t bytes = o->count * uni_nccl_type_size(o->type);
	int moved = 0, lead = 0; /* lead: the length is still to write, with the first fragment */
	uint64_t len = bytes | o->tag;
	if (!o->hdr_done) {
		if (ring_room(b) < 8)
			return 0;
		o->msgn = c->p2pn[o->peer]++;
		o->hdr_done = moved = lead = 1;
	}
	while (o->done < bytes) {
		size_t room = ring_room(b) - (lead ? 8 : 0), left = bytes - o->done;
		const uint8_t *p = (const uint8_t *)o->send + o->done;
		if (room >= UNI_NCCL_SPILL_ROOM + 8 + (left < UNI_NCCL_FRAG_MIN ? left : UNI_NCCL_FRAG_MIN)) {
			size_t f = room - UNI_NCCL_SPILL_ROOM - 8;
			uint64_t h = f < left ? f : left;
			const uint8_t *pv[3] = {(const uint8_t *)&len, (const uint8_t *)&h, p};
			size_t lv[3] = {8, 8, (size_t)h};
			ring_putv(c, o->peer, pv + !lead, lv + !lead, 2 + lead);
			lead = 0;
			o->done += (size_t)h;
			o->stall = 0;
			moved = 1;
			continue;
		}
		if (lead) {
			ring_put_u64(c, o->peer, len);
			lead = 0;
			continue;
		}
		uint64_t now = mono_ns();
		if (!o->stall || atomic_load_explicit(&b->rbusy, memory_order_acquire))
			o->stall = now;
		if (room < 8 || o->spill_failed || uni_shim_det_nccl() || now - o->stall < UNI_NCCL_SPILL_AFTER_NS)
			break;
		if (!spill_put(c, o->peer, p, left, o->msgn, o->coll)) {
			o->spill_failed = 1;
			break;
		}
		ring_put_u64(c, o->peer, left | UNI_NCCL_SPILL);
		o->done = bytes;
		moved = 1;
	}
	if (lead)
		ring_put_u64(c, o->peer, len); /* (no bytes) */
	if (o->hdr_done && o->done == bytes)
		o->finished = 1;
	return moved;
}

static int p2p_recv_step(struct op *o, ncclResult_t *err)
{
	ncclComm_t c = o->comm;
	struct pairbox *b = box_of(c, o->peer, c->rank);
	size_t bytes = o->count * uni_nccl_type_size(o->type);
	int moved = 0;
	if (!o->hdr_done) {
		if (ring_have(b) < 8)
			return 0;
		uint64_t len;
		o->msgn = c->p2pn[c->nranks + o->peer]++;
		ring_get(c, o->peer, (uint8_t *)&len, 8);
		o->hdr_done = moved = 1;
		if (len != (bytes | o->tag)) {
			char want[160], got[160];
			msg_what(bytes | o->tag, want, sizeof(want));
			msg_what(len, got, sizeof(got));
			*err = fail(c, ncclInvalidArgument,
				    "nccl%s: rank %d expects %s from rank %d, which sent %s (%s)", OP_NAME(o), c->rank,
				    want, o->peer, got,
				    (len & ~MSG_BYTES) == o->tag
					    ? "the ranks disagree on the count"
					    : "the ranks disagree on the operation, its root or its data type, or on the "
					      "order of their operations");
			/* Only this rank found it: its virtual connections and
			 * its peers' are apart now (it starts new ones, they do
			 * not: they did not fail), so its communicator is to be
			 * aborted and its later calls say so, rather than wait
			 * for ever in a timing its peers no longer meet (NCCL
			 * leaves such a mismatch undefined). */
			int none = ncclSuccess;
			atomic_compare_exchange_strong(&c->async_err, &none, (int)ncclInvalidArgument);
			/* Drain what was sent, so the pair stays in step. */
			o->count = 0;
			o->done = 0;
			o->finished = 0;
			o->draining = 1;
			o->drop = (size_t)(len & MSG_BYTES);
		}
	}
	size_t total = o->draining ? o->drop : bytes;
	while (o->done < total) {
		if (!o->frag) {
			uint64_t h;
			if (ring_have(b) < 8)
				break;
			ring_get(c, o->peer, (uint8_t *)&h, 8);
			moved = 1;
			if (h & UNI_NCCL_SPILL) {
				size_t rest = total - o->done;
				ncclResult_t r = spill_get(c, o, o->draining ? NULL : (uint8_t *)o->recv + o->done, rest, o->msgn);
				if (r != ncclSuccess && *err == ncclSuccess)
					*err = r;
				o->done = total;
				break;
			}
			o->frag = (size_t)h;
			continue;
		}
		uint8_t sink[4096], *dst = sink;
		size_t want = o->frag;
		if (!o->draining)
			dst = (uint8_t *)o->recv + o->done;
		else if (want > sizeof(sink))
			want = sizeof(sink);
		size_t k = ring_get(c, o->peer, dst, want);
		if (!k)
			break;
		o->done += k;
		o->frag -= k;
		moved = 1;
	}
	if (o->hdr_done && o->done == total)
		o->finished = 1;
	return moved;
}

static int p2p_step(struct op *o, ncclResult_t *err)
{
	return o->kind == K_SEND ? p2p_send_step(o) : p2p_recv_step(o, err);
}

/* Self send/recv inside a group: matched in order. */
static void p2p_self(struct op *ops, int nops)
{
	for (int i = 0; i < nops; i++) {
		if (ops[i].kind != K_SEND || ops[i].peer != ops[i].comm->rank || ops[i].finished)
			continue;
		for (int j = 0; j < nops; j++) {
			if (ops[j].kind == K_RECV && ops[j].peer == ops[j].comm->rank && !ops[j].finished &&
			    ops[j].comm == ops[i].comm) {
				size_t b = ops[i].count * uni_nccl_type_size(ops[i].type);
				memmove(ops[j].recv, ops[i].send, b);
				ops[i].finished = ops[j].finished = 1;
				break;
			}
		}
	}
}

/* Whether ops[i] may move: NCCL matches a group's sends to a peer with
 * that peer's receives in order, so an op waits until the earlier ones
 * of its kind to the same peer of its communicator are done (one pair's
 * ring carries them one after the other). */
static int p2p_turn(const struct op *ops, int i)
{
	for (int j = 0; j < i; j++)
		if (!ops[j].finished && ops[j].kind == ops[i].kind && ops[j].comm == ops[i].comm &&
		    ops[j].peer == ops[i].peer)
			return 0;
	return 1;
}

/* The word a send or receive waits on: a send's, its reader's count; a
 * receive's, its writer's. */
static _Atomic uint32_t *p2p_word(const struct op *o)
{
	ncclComm_t c = o->comm;
	return o->kind == K_SEND ? &box_of(c, c->rank, o->peer)->rd : &box_of(c, o->peer, c->rank)->wr;
}

/* The words the send/recv loop sleeps on, of each op not finished, and
 * their values now; UNI_WAIT_WORDS_MAX at most (the rest: the wait's
 * time-out). */
static int p2p_words(const struct op *ops, int nops, _Atomic uint32_t **w, uint32_t *v)
{
	int n = 0;
	for (int i = 0; i < nops && n < UNI_WAIT_WORDS_MAX; i++) {
		if (ops[i].finished || (ops[i].kind != K_SEND && ops[i].kind != K_RECV) ||
		    ops[i].peer == ops[i].comm->rank)
			continue;
		w[n] = p2p_word(&ops[i]);
		v[n] = atomic_load(w[n]);
		n++;
	}
	return n;
}

static int p2p_pass(struct op *ops, int nops, ncclResult_t *err, int *left)
{
	int moved = 0;
	*left = 0;
	for (int i = 0; i < nops; i++) {
		if ((ops[i].kind != K_SEND && ops[i].kind != K_RECV) || ops[i].finished)
			continue;
		if (p2p_turn(ops, i))
			moved |= p2p_step(&ops[i], err);
		*left += !ops[i].finished;
	}
	return moved;
}

static int first_of_comm(const struct op *ops, int i);

/* Deterministic mode: the peers of ops' communicators that wait in turn
 * look again (what moved may be what they wait for). */
static void wake_comms(const struct op *ops, int nops)
{
	for (int i = 0; i < nops; i++)
		if (first_of_comm(ops, i))
			uni_shim_det_nccl_wake(comm_key64(ops[i].comm));
}

static ncclResult_t run_p2p(struct op *ops, int nops)
{
	ncclResult_t err = ncclSuccess;
	p2p_self(ops, nops);
	for (int i = 0; i < nops; i++)
		if ((ops[i].kind == K_SEND || ops[i].kind == K_RECV) && ops[i].peer == ops[i].comm->rank &&
		    !ops[i].finished)
			return fail(ops[i].comm, ncclInvalidUsage, "%s to itself (rank %d) without its match in the group",
				    OP_NAME(&ops[i]), ops[i].peer);
	uint64_t since = mono_ns(), look = 0;
	int spins = 0, noted = 0, det = uni_shim_det_nccl();
	_Atomic uint32_t *words[UNI_WAIT_WORDS_MAX];
	uint32_t vals[UNI_WAIT_WORDS_MAX];
	for (;;) {
		int left;
		/* (Each blocked op's word as it was before the pass: a peer's
		 * move after the pass wakes the wait below at once.) */
		int nw = p2p_words(ops, nops, words, vals);
		int asked = prog_poll();
		int moved = p2p_pass(ops, nops, &err, &left);
		if (moved && det)
			wake_comms(ops, nops);
		if (!left) {
			if (noted)
				uni_shim_nccl_wait(0, NULL);
			return err;
		}
		if (moved) {
			since = mono_ns();
			spins = 0;
			continue;
		}
		if (++spins < 1000 && !det)
			continue;
		/* Sleep on the first blocked op's counter; a group with a send
		 * not done looks again soon (a send that found no room puts its
		 * rest outside the ring after UNI_NCCL_SPILL_AFTER_NS). */
		int ms = 20;
		for (int i = 0; i < nops && ms > 2; i++)
			if (ops[i].kind == K_SEND && !ops[i].finished)
				ms = 2;
		uint64_t now = mono_ns();
		int quick = asked && now < look;
		if (!quick)
			look = now + UNI_NCCL_LOOK_NS;
		else if (ms > ms_until(look))
			ms = ms_until(look);
		for (int i = 0; i < nops; i++) {
			if (ops[i].finished || (ops[i].kind != K_SEND && ops[i].kind != K_RECV))
				continue;
			ncclComm_t c = ops[i].comm;
			_Atomic uint32_t *w = p2p_word(&ops[i]);
			/* One wait on every blocked op's word and, asked, on
			 * unid's answer; in turn, or where the kernel has no
			 * futex_waitv, on this op's word. */
			int waited = !det && nw > 0 && uni_shim_wait_words(nw, words, vals, asked, ms) == 0;
			if (quick) {
				if (!waited)
					wait_peers(c, &det, ops[i].peer, w, atomic_load(w), ms, asked);
				break;
			}
			note_wait(c, OP_NAME(&ops[i]), ops[i].peer);
			noted = 1;
			if (!waited)
				wait_peers(c, &det, ops[i].peer, w, atomic_load(w), ms, asked);
			/* A peer that wrote its sends and exited (or aborted):
			 * what it wrote is in the ring (its writes came before),
			 * so a death or abort seen before one more look counts
			 * only if that look moved nothing. */
			int gone = peers_gone(c, ops[i].peer);
			if (p2p_pass(ops, nops, &err, &left)) {
				if (det)
					wake_comms(ops, nops);
				since = mono_ns();
				spins = 0;
				break;
			}
			ncclResult_t r = wait_check(c, since, OP_NAME(&ops[i]), gone ? ops[i].peer : -2);
			if (r != ncclSuccess) {
				uni_shim_nccl_wait(0, NULL);
				return r;
			}
			break;
		}
	}
}

/* Groups ------------------------------------------------------------------------ */

/* nccl.h declares these without a prototype. */
ncclResult_t pncclGroupStart(void);
ncclResult_t pncclGroupEnd(void);
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);


/* The nccl-tests size S of op o: the whole buffer of AllReduce,
 * Broadcast, Reduce; the whole output or input of AllGather,
 * ReduceScatter, AlltoAll; one rank's block of Gather, Scatter, Send,
 * Recv (what sched_op times and the nccl_op record says). */
static uint64_t op_size(const struct op *o)
{
	uint64_t bytes = (uint64_t)o->count * uni_nccl_type_size(o->type);
	if (o->kind == K_ALLGATHER || o->kind == K_REDSCAT || o->kind == K_ALLTOALL)
		bytes *= (uint64_t)o->comm->nranks;
	return bytes;
}

/* The bytes of op o's input and output on this rank (0: none). */
static void op_bytes(const struct op *o, size_t *in, size_t *out)
{
	size_t b = o->count * uni_nccl_type_size(o->type), bn = b * (size_t)o->comm->nranks;
	int me = o->comm->rank;
	*in = *out = 0;
	switch (o->kind) {
	case K_ALLREDUCE: *in = b; *out = b; break;
	case K_BCAST: *in = me == o->root ? b : 0; *out = b; break;
	case K_REDUCE: *in = b; *out = me == o->root ? b : 0; break;
	case K_ALLGATHER: *in = b; *out = bn; break;
	case K_REDSCAT: *in = bn; *out = b; break;
	case K_ALLTOALL: *in = bn; *out = bn; break;
	case K_GATHER: *in = b; *out = me == o->root ? bn : 0; break;
	case K_SCATTER: *in = me == o->root ? bn : 0; *out = b; break;
	case K_SEND: *in = b; break;
	case K_RECV: *out = b; break;
	}
}

/* Host copies of device buffers: pinned memory from cudaMallocHost where
 * the runtime has it (else malloc's), kept for the next operation (pinning
 * takes a millisecond or more on a GPU, and more the more it pins) up to
 * STAGE_KEEP buffers and STAGE_KEEP_BYTES more than the program had out
 * at once lately (at most STAGE_KEEP_MAX buffers): the most copies handed
 * out and not back yet (g_st_out*), over this window of STAGE_WINDOW
 * staged groups and the last (g_st_peak*). So a program that repeats
 * operations of more than 512 MiB, alternates them with small ones, or
 * queues several on a stream before they run, does not pin and free its
 * copies at every call; the large ones go once 16 to 32 groups needed
 * less. Buffers come back from host functions (which must not call CUDA)
 * through g_st_back and are freed only by the program's threads. */
#define STAGE_KEEP 8
#define STAGE_KEEP_BYTES ((size_t)512 << 20)
#define STAGE_WINDOW 16
#define STAGE_KEEP_MAX 256
static _Atomic size_t g_st_out;
static _Atomic int g_st_out_n;
static size_t g_st_peak[2]; /* (lock held) */
static int g_st_peak_n[2];
static unsigned g_st_groups;

/* (UNI_NCCL_STAGE_KEEP_BYTES: tests, a smaller base.) */
static size_t stage_keep_base(void)
{
	static size_t v;
	if (!v) {
		const char *e = getenv("UNI_NCCL_STAGE_KEEP_BYTES");
		long long x = e ? atoll(e) : 0;
		v = x >= 4096 ? (size_t)x : STAGE_KEEP_BYTES;
	}
	return v;
}

/* A copy of cap bytes handed out (1) or back (-1). */
static void st_out(size_t cap, int dir)
{
	if (dir > 0) {
		atomic_fetch_add(&g_st_out, cap);
		atomic_fetch_add(&g_st_out_n, 1);
	} else {
		atomic_fetch_sub(&g_st_out, cap);
		atomic_fetch_sub(&g_st_out_n, 1);
	}
}

/* The peak of what is out, in this window (lock held). */
static void st_peak(void)
{
	size_t out = atomic_load(&g_st_out);
	int out_n = atomic_load(&g_st_out_n);
	if (out > g_st_peak[0])
		g_st_peak[0] = out;
	if (out_n > g_st_peak_n[0])
		g_st_peak_n[0] = out_n;
}

struct stbuf {
	void *p;
	size_t cap;
	int pinned;
	struct stbuf *next;
};

static atomic_flag g_st_lock = ATOMIC_FLAG_INIT;
static struct stbuf *g_st_cache;
static int g_st_count;
static size_t g_st_bytes;
static struct stbuf *_Atomic g_st_back;

/* The staging cache's lock and g_q_lock: held for a few instructions. */
static void spin_lock(atomic_flag *l)
{
	while (atomic_flag_test_and_set_explicit(l, memory_order_acquire))
		sched_yield();
}

static void spin_unlock(atomic_flag *l)
{
	atomic_flag_clear_explicit(l, memory_order_release);
}

static void host_mem_free(void *p, int pinned)
{
	if (pinned) {
		cudaError_t before = rt_mark(), e = g_rt.free_host(p);
		rt_unmark(before, e);
	} else {
		free(p);
	}
}

static void st_release(struct stbuf *b)
{
	host_mem_free(b->p, b->pinned);
	free(b);
}

/* Into the cache, first in line; the least recently kept ones go onto
 * *drop while it holds too much (lock held). */
static void st_keep(struct stbuf *b, struct stbuf **drop)
{
	size_t peak = g_st_peak[0] > g_st_peak[1] ? g_st_peak[0] : g_st_peak[1];
	int peak_n = g_st_peak_n[0] > g_st_peak_n[1] ? g_st_peak_n[0] : g_st_peak_n[1];
	size_t keep_bytes = stage_keep_base() + peak;
	int keep_n = STAGE_KEEP + peak_n < STAGE_KEEP_MAX ? STAGE_KEEP + peak_n : STAGE_KEEP_MAX;
	if (b->cap > keep_bytes) {
		b->next = *drop;
		*drop = b;
		return;
	}
	b->next = g_st_cache;
	g_st_cache = b;
	g_st_count++;
	g_st_bytes += b->cap;
	while (g_st_count > keep_n || g_st_bytes > keep_bytes) {
		struct stbuf **last = &g_st_cache;
		while ((*last)->next)
			last = &(*last)->next;
		struct stbuf *old = *last;
		*last = NULL;
		g_st_count--;
		g_st_bytes -= old->cap;
		old->next = *drop;
		*drop = old;
	}
}

/* The buffers host functions gave back join the cache (lock held). */
static void st_collect(struct stbuf **drop)
{
	struct stbuf *b = atomic_exchange(&g_st_back, NULL);
	while (b) {
		struct stbuf *next = b->next;
		st_out(b->cap, -1);
		st_keep(b, drop);
		b = next;
	}
}

static void st_drop(struct stbuf *drop)
{
	while (drop) {
		struct stbuf *next = drop->next;
		st_release(drop);
		drop = next;
	}
}

/* Frees the kept pinned copies; 0 when there were none. */
static int st_drop_pinned(void)
{
	struct stbuf *drop = NULL;
	spin_lock(&g_st_lock);
	st_collect(&drop);
	for (struct stbuf **b = &g_st_cache; *b;) {
		struct stbuf *x = *b;
		if (!x->pinned) {
			b = &x->next;
			continue;
		}
		*b = x->next;
		g_st_count--;
		g_st_bytes -= x->cap;
		x->next = drop;
		drop = x;
	}
	spin_unlock(&g_st_lock);
	int any = 0;
	for (struct stbuf *x = drop; x && !any; x = x->next)
		any = x->pinned;
	st_drop(drop);
	return any;
}

/* A host buffer of at least n bytes: *cap its size, *pinned whether
 * cudaMallocHost's. */
static void *host_alloc(size_t n, int *pinned, size_t *cap)
{
	if (!n)
		n = 1;
	struct stbuf *drop = NULL, **best = NULL;
	spin_lock(&g_st_lock);
	st_collect(&drop);
	for (struct stbuf **b = &g_st_cache; *b; b = &(*b)->next)
		if ((*b)->cap >= n && (*b)->cap / 2 <= n && (!best || (*b)->cap < (*best)->cap))
			best = b;
	struct stbuf *got = NULL;
	if (best) {
		got = *best;
		*best = got->next;
		g_st_count--;
		g_st_bytes -= got->cap;
		st_out(got->cap, 1);
		st_peak();
	}
	spin_unlock(&g_st_lock);
	st_drop(drop);
	if (got) {
		void *p = got->p;
		*pinned = got->pinned;
		*cap = got->cap;
		free(got);
		return p;
	}
	void *p = NULL;
	*cap = n;
	*pinned = 0;
	if (g_rt.malloc_host && g_rt.free_host) {
		/* (Not pinned: the synchronous path instead, no error. Where
		 * pinning fails for want of memory the kept pinned copies go and
		 * it is tried once more: what they hold may be what it lacked.) */
		for (int again = 0; again < 2 && !*pinned; again++) {
			if (again && !st_drop_pinned())
				break;
			cudaError_t before = rt_mark(), e = g_rt.malloc_host(&p, n);
			rt_unmark(before, e);
			*pinned = e == cudaSuccess && p;
			if (e != cudaErrorMemoryAllocation)
				break;
		}
	}
	if (!*pinned && !(p = malloc(n)))
		return NULL;
	spin_lock(&g_st_lock);
	st_out(n, 1);
	st_peak();
	spin_unlock(&g_st_lock);
	return p;
}

/* Back to the cache (the program's threads). */
static void host_free(void *p, int pinned, size_t cap)
{
	struct stbuf *b = malloc(sizeof(*b)), *drop = NULL;
	st_out(cap, -1);
	if (!b) {
		host_mem_free(p, pinned);
		return;
	}
	*b = (struct stbuf){.p = p, .cap = cap, .pinned = pinned};
	spin_lock(&g_st_lock);
	st_collect(&drop);
	st_keep(b, &drop);
	spin_unlock(&g_st_lock);
	st_drop(drop);
}

/* Back from a host function: no CUDA call here. */
static void host_give_back(void *p, int pinned, size_t cap)
{
	struct stbuf *b = malloc(sizeof(*b));
	if (!b) {
		st_out(cap, -1);
		if (!pinned)
			free(p);
		return; /* pinned and no memory to note it: lost */
	}
	*b = (struct stbuf){.p = p, .cap = cap, .pinned = pinned};
	b->next = atomic_load(&g_st_back);
	while (!atomic_compare_exchange_weak(&g_st_back, &b->next, b))
		;
}

/* Device buffers of the ops (o->dev, from check_bufs), and a PreMulSum
 * scalar in device memory, go through host copies: the inputs are copied
 * here on the op's stream (after the work queued on it before), and, when
 * sync, the stream synchronised; unstage copies the outputs back. */
static ncclResult_t stage(struct op *ops, int nops, int sync)
{
	for (int i = 0; i < nops; i++) {
		struct op *o = &ops[i];
		size_t in, out;
		op_bytes(o, &in, &out);
		cudaError_t e = cudaSuccess;
		if (o->dev || o->scal_dev)
			dev_use(o->comm);
		if (in && (o->dev & DEV_SEND)) {
			void *h = host_alloc(in, &o->pinned_send, &o->cap_send);
			if (!h)
				return fail(o->comm, ncclSystemError, "%s: out of host memory for a device buffer's copy",
					    kind_name[o->kind]);
			e = g_rt.memcpy_async(h, o->send, in, cudaMemcpyDeviceToHost, o->stream);
			o->dsend = o->send;
			o->send = h;
		}
		if (e == cudaSuccess && o->scal_dev) {
			if (!(o->scal_h = host_alloc(8, &o->pinned_scal, &o->cap_scal)))
				return fail(o->comm, ncclSystemError, "%s: out of host memory for a scalar's copy",
					    kind_name[o->kind]);
			e = g_rt.memcpy_async(o->scal_h, o->pptr, uni_nccl_type_size(o->type), cudaMemcpyDeviceToHost,
					      o->stream);
		}
		if (e == cudaSuccess && sync && ((o->dev & DEV_SEND) || o->scal_dev))
			e = g_rt.stream_sync(o->stream);
		if (e != cudaSuccess) {
			g_rt.stream_sync(o->stream); /* nothing may still write into the copies */
			return fail(o->comm, ncclUnhandledCudaError, "%s: copying the input from the device: %s",
				    kind_name[o->kind], rt_err(e));
		}
		if (out && (o->dev & DEV_RECV)) {
			void *h = host_alloc(out, &o->pinned_recv, &o->cap_recv);
			if (!h)
				return fail(o->comm, ncclSystemError, "%s: out of host memory for a device buffer's copy",
					    kind_name[o->kind]);
			o->drecv = o->recv;
			o->recv = h;
			o->recv_bytes = out;
		}
	}
	/* A group that took copies counts in the cache's window. */
	int took = 0;
	for (int i = 0; i < nops; i++)
		took |= ops[i].dsend || ops[i].drecv || ops[i].scal_h;
	if (took) {
		spin_lock(&g_st_lock);
		if (++g_st_groups >= STAGE_WINDOW) {
			g_st_groups = 0;
			g_st_peak[1] = g_st_peak[0];
			g_st_peak_n[1] = g_st_peak_n[0];
			g_st_peak[0] = 0;
			g_st_peak_n[0] = 0;
			st_peak();
		}
		spin_unlock(&g_st_lock);
	}
	return ncclSuccess;
}

/* The results back to the device (r: the data path's outcome), the
 * stream synchronised, and the host copies freed (the synchronous path;
 * stream work queues its copies in stream_work). */
static ncclResult_t unstage(struct op *ops, int nops, ncclResult_t r)
{
	for (int i = 0; i < nops; i++) {
		struct op *o = &ops[i];
		if (o->drecv || o->dsend || o->scal_h)
			dev_use(o->comm);
		if (o->drecv) {
			if (r == ncclSuccess) {
				cudaError_t e = g_rt.memcpy_async(o->drecv, o->recv, o->recv_bytes, cudaMemcpyHostToDevice,
								  o->stream);
				if (e == cudaSuccess)
					e = g_rt.stream_sync(o->stream);
				if (e != cudaSuccess)
					r = fail(o->comm, ncclUnhandledCudaError, "%s: copying the result to the device: %s",
						 kind_name[o->kind], rt_err(e));
			}
			host_free(o->recv, o->pinned_recv, o->cap_recv);
			o->recv = o->drecv;
			o->drecv = NULL;
		}
		if (o->dsend) {
			host_free((void *)o->send, o->pinned_send, o->cap_send);
			o->send = o->dsend;
			o->dsend = NULL;
		}
		if (o->scal_h) {
			host_free(o->scal_h, o->pinned_scal, o->cap_scal);
			o->scal_h = NULL;
		}
	}
	return r;
}

/* Broadcast, Reduce, Gather and Scatter: messages between the root and
 * each other rank through the pairs' rings, as Send and Recv move theirs,
 * not the slots: a rank waits only for the ranks whose data it needs.
 * The root of a Broadcast or Scatter, and the other ranks of a Reduce or
 * Gather, need none and do not wait for their peers (a message that does
 * not fit the ring goes outside it). Through the slots, whose barriers
 * hold every rank, a rank that needed nothing met its peers in real time
 * while they still timed an earlier operation, and in a run of such
 * operations every rank waited for the slowest: under nic the network
 * stood still (250 to 500 ms) or held arrivals unread (200 ms) each
 * time, and what a rank sent next was late. A Reduce moves in messages
 * of a bounded size, so that its root holds a bounded part of its peers'
 * data at a time. The ranks must agree on the count, the type and the
 * root, as in NCCL; a count or type size that differs is found by a
 * receiving rank (the message's length), a root that differs leaves a
 * rank waiting (unid reports the deadlock).
 *
 * Not in a deterministic session (every rank of it decides alike): the
 * turn times an operation after its data moved, and a rank's timing waits
 * for what its predecessor in the operation's algorithm (a Broadcast's
 * chain) sends, whose end must be open: a rank that got the root's data
 * before its predecessor even called the Broadcast waited a second in
 * turn for that end and then read outside the turn (the slots' barriers
 * have every rank in the operation first). */
static size_t rooted_part_bytes(void)
{
	static size_t v;
	if (!v) {
		/* (UNI_NCCL_REDUCE_PART: tests, a Reduce in several parts) */
		const char *e = getenv("UNI_NCCL_REDUCE_PART");
		long long x = e ? atoll(e) : 0;
		v = x >= 4096 ? (size_t)x : (size_t)64 << 20;
	}
	return v;
}

static int rooted(const struct op *o)
{
	return (o->kind == K_BCAST || o->kind == K_REDUCE || o->kind == K_GATHER || o->kind == K_SCATTER) &&
	       o->comm->nranks > 1 && !uni_shim_det_session();
}

static struct op rooted_msg(const struct op *o, int kind, int peer, const void *send, void *recv, size_t count)
{
	return (struct op){.kind = kind, .send = send, .recv = recv, .count = count, .type = o->type,
			   .redop = -1, .root = -1, .peer = peer, .comm = o->comm, .stream = o->stream,
			   .coll = o->kind, .tag = msg_tag(o->kind, o->type, o->comm->seq)};
}

/* (A message that does not match sets the communicator's error where the
 * receiver finds it, p2p_recv_step: its virtual connections and its
 * peers' are apart from then on.) */
static ncclResult_t run_rooted(const struct op *o)
{
	ncclComm_t c = o->comm;
	int n = c->nranks, me = c->rank, root = o->root;
	size_t esz = uni_nccl_type_size(o->type), b = o->count * esz;
	const uint8_t *sb = o->send;
	uint8_t *rb = o->recv;
	ncclResult_t r = ncclSuccess;
	c->seq++; /* (every collective counts, as in agree) */
	/* Of nothing, nothing moves: such a rank's timing receives nothing
	 * either, and waiting for its peers' empty messages in real time it
	 * held the horizon (5 stops in 20 rounds under nic). A peer that
	 * sent something all the same leaves a message that the next receive
	 * from it finds (its tag). */
	if (o->count == 0)
		return ncclSuccess;
	if (o->kind == K_REDUCE) {
		/* Messages of per elements; the root reduces each part as it
		 * comes, in rank order. */
		size_t per = rooted_part_bytes() / (size_t)(n - 1) / esz;
		if (per < 64)
			per = 64;
		size_t parts = (o->count + per - 1) / per;
		if (me != root) {
			struct op *m = calloc(parts, sizeof(*m));
			if (!m)
				return fail(c, ncclSystemError, "ncclReduce: out of memory for %zu messages", parts);
			for (size_t k = 0; k < parts; k++) {
				size_t off = k * per, cnt = o->count - off < per ? o->count - off : per;
				m[k] = rooted_msg(o, K_SEND, root, sb + off * esz, NULL, cnt);
			}
			r = run_p2p(m, (int)parts);
			free(m);
			return r;
		}
		size_t cap = (per < o->count ? per : o->count) * esz;
		uint8_t *tmp = malloc((size_t)(n - 1) * cap);
		struct op *m = calloc((size_t)n, sizeof(*m));
		const void **in = calloc((size_t)n, sizeof(*in));
		if (!tmp || !m || !in)
			r = fail(c, ncclSystemError, "ncclReduce: rank %d (the root): out of memory for %zu bytes of its "
				 "peers' data", me, (size_t)(n - 1) * cap);
		int pre;
		const void *scalar = premul_scalar(o, &pre);
		int base = pre ? ncclSum : o->redop;
		/* (After a failure the rest are not taken: a peer of another
		 * count has another number of parts, and the communicator is to
		 * be aborted anyway, p2p_recv_step.) */
		for (size_t k = 0; k < parts && r == ncclSuccess; k++) {
			size_t off = k * per, cnt = o->count - off < per ? o->count - off : per;
			int nm = 0;
			for (int p = 0; p < n; p++) {
				uint8_t *dst = tmp + (size_t)(p < me ? p : p - 1) * cap;
				in[p] = p == me ? sb + off * esz : dst;
				if (p != me)
					m[nm++] = rooted_msg(o, K_RECV, p, NULL, dst, cnt);
			}
			r = run_p2p(m, nm);
			if (r == ncclSuccess)
				uni_nccl_reduce(rb + off * esz, in, n, cnt, o->type, o->redop < ncclNumOps ? o->redop : base,
						pre, scalar);
		}
		free(tmp);
		free(m);
		free(in);
		return r;
	}
	int gives = (o->kind == K_BCAST || o->kind == K_SCATTER) ? me == root : me != root;
	if (!gives && o->kind != K_GATHER) { /* a Broadcast's or Scatter's other rank */
		struct op m = rooted_msg(o, K_RECV, root, NULL, rb, o->count);
		return run_p2p(&m, 1);
	}
	if (gives && o->kind == K_GATHER) {
		struct op m = rooted_msg(o, K_SEND, root, sb, NULL, o->count);
		return run_p2p(&m, 1);
	}
	/* A Gather's root takes a message from every other rank; a
	 * Broadcast's or Scatter's gives one to each: its own part first. */
	struct op *m = calloc((size_t)n, sizeof(*m));
	if (!m)
		return fail(c, ncclSystemError, "nccl%s: out of memory for %d messages", kind_name[o->kind], n);
	const uint8_t *own = o->kind == K_SCATTER ? sb + (size_t)me * b : sb;
	uint8_t *mine = o->kind == K_GATHER ? rb + (size_t)me * b : rb;
	if (own != mine && b)
		memmove(mine, own, b);
	int nm = 0;
	for (int p = 0; p < n; p++) {
		if (p == me)
			continue;
		if (o->kind == K_GATHER)
			m[nm++] = rooted_msg(o, K_RECV, p, NULL, rb + (size_t)p * b, o->count);
		else
			m[nm++] = rooted_msg(o, K_SEND, p, o->kind == K_SCATTER ? sb + (size_t)p * b : rb, NULL,
					     o->count);
	}
	r = run_p2p(m, nm);
	free(m);
	return r;
}

/* The data of ops (all on host buffers by now): collectives in order, then
 * the sends and receives together. */
static ncclResult_t data_path(struct op *ops, int nops)
{
	ncclResult_t r = ncclSuccess;
	int has_p2p = 0;
	for (int i = 0; i < nops && r == ncclSuccess; i++) {
		if (ops[i].kind == K_SEND || ops[i].kind == K_RECV)
			has_p2p = 1;
		else
			r = rooted(&ops[i]) ? run_rooted(&ops[i]) : run_coll(&ops[i]);
	}
	if (r == ncclSuccess && has_p2p)
		r = run_p2p(ops, nops);
	return r;
}

/* 1 when the group holds ops of two ranks of one communicator (InitAll:
 * one thread drives several ranks), which must progress together. */
static int several_ranks(const struct op *ops, int nops)
{
	for (int i = 1; i < nops; i++)
		for (int j = 0; j < i; j++)
			if (ops[i].comm != ops[j].comm && !memcmp(ops[i].comm->key, ops[j].comm->key, 16))
				return 1;
	return 0;
}

/* Work for threads of the shim's own (never modelled: they run quiet). */
struct job {
	ncclResult_t (*fn)(void *);
	void *arg;
	ncclResult_t r;
};

static void *job_thread(void *p)
{
	struct job *j = p;
	uni_shim_quiet_io(1);
	j->r = j->fn(j->arg);
	uni_shim_quiet_io(0);
	return NULL;
}

/* Runs the n jobs, each in a thread of its own; the first error. */
static ncclResult_t run_jobs(struct job *jobs, int n)
{
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	int *started = calloc((size_t)n, sizeof(*started));
	ncclResult_t r = ncclSuccess;
	if (!t || !started) {
		free(t);
		free(started);
		return fail(NULL, ncclSystemError, "out of memory for %d threads", n);
	}
	int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
		uni_real.pthread_create ? uni_real.pthread_create : pthread_create;
	for (int i = 0; i < n; i++)
		started[i] = create(&t[i], NULL, job_thread, &jobs[i]) == 0;
	for (int i = 0; i < n; i++) {
		if (started[i])
			(uni_real.pthread_join ? uni_real.pthread_join : pthread_join)(t[i], NULL);
		else
			jobs[i].r = fail(NULL, ncclSystemError, "cannot start a thread for rank %d of the group", i);
		if (jobs[i].r != ncclSuccess && r == ncclSuccess)
			r = jobs[i].r;
	}
	free(t);
	free(started);
	return r;
}

struct dp_arg {
	struct op *ops;
	int nops;
};

static ncclResult_t dp_job(void *p)
{
	struct dp_arg *a = p;
	return data_path(a->ops, a->nops);
}

/* Each communicator's ops of the group in a thread of its own. */
static ncclResult_t data_path_threads(struct op *ops, int nops)
{
	struct op *sorted = malloc((size_t)nops * sizeof(*sorted));
	struct dp_arg *a = calloc((size_t)nops, sizeof(*a));
	struct job *jobs = calloc((size_t)nops, sizeof(*jobs));
	ncclResult_t r;
	if (!sorted || !a || !jobs) {
		r = fail(ops[0].comm, ncclSystemError, "out of memory for a group of several ranks");
		goto out;
	}
	int ns = 0, na = 0;
	for (int i = 0; i < nops; i++) {
		int seen = 0;
		for (int j = 0; j < i && !seen; j++)
			seen = ops[j].comm == ops[i].comm;
		if (seen)
			continue;
		a[na].ops = sorted + ns;
		for (int j = i; j < nops; j++)
			if (ops[j].comm == ops[i].comm)
				sorted[ns++] = ops[j];
		a[na].nops = (int)(sorted + ns - a[na].ops);
		jobs[na] = (struct job){.fn = dp_job, .arg = &a[na]};
		na++;
	}
	r = run_jobs(jobs, na);
out:
	free(sorted);
	free(a);
	free(jobs);
	return r;
}

/* After a failed operation the ranks' virtual streams may disagree (some
 * sent what others will never read): every rank whose operation failed
 * starts new connections (a new generation in their addresses). */
static void vreset(ncclComm_t c)
{
	vclose(c);
	c->gen++;
}

/* The streams of a group's ops on the device timeline. */
#define DEV_STREAMS 8
struct devpos {
	uint32_t sid;
	uint64_t seq;
};

/* With CUPTI on and device buffers, the operation runs on its stream(s):
 * it starts when the work queued there before it ends (and not before the
 * caller's clock), the host does not wait for it (NCCL's calls return at
 * once; the caller's clock stays behind the operation's sends, which only
 * holds the nic network back earlier than needed), and the stream's later
 * work and whoever synchronises with it come after its end. Returns how
 * many streams, 0: the host's timeline. */
static int device_start(const struct op *ops, int nops, struct devpos *dp, uint64_t *t0)
{
	int dev = 0, n = 0;
	for (int i = 0; i < nops; i++)
		dev |= ops[i].dev;
	if (!dev || !uni_cupti_on() || !g_rt.stream_sync)
		return 0;
	for (int i = 0; i < nops; i++) {
		int seen = 0;
		for (int j = 0; j < i && !seen; j++)
			seen = ops[j].stream == ops[i].stream;
		if (seen || n == DEV_STREAMS)
			continue;
		/* Really done, so every kernel before has its record. */
		dev_use(ops[i].comm);
		uni_shim_quiet_io(1);
		uni_cupti_internal(1);
		g_rt.stream_sync(ops[i].stream);
		uni_cupti_internal(0);
		uni_shim_quiet_io(0);
		uint64_t vend;
		if (uni_cupti_op_open(ops[i].stream, &dp[n].sid, &dp[n].seq, &vend) == 0) {
			*t0 = max64(*t0, vend);
			n++;
		}
	}
	return n;
}

/* The nccl_op record's algorithm and protocol bits (UNI_NCCL_OPF_*): what
 * sched_op times an operation of `bytes` with (0: one rank). */
static uint64_t op_timing_flags(const struct op *o, uint64_t bytes)
{
	if (o->comm->nranks == 1)
		return 0;
	int algo, proto;
	nccl_choose(o->comm, o->kind, o->redop, bytes, &algo, &proto);
	uint64_t a;
	switch (o->kind) {
	case K_ALLREDUCE: a = algo == UNI_NCCL_ALGO_TREE ? 2 : 1; break;
	case K_ALLGATHER:
	case K_REDSCAT: a = algo == UNI_NCCL_ALGO_PAT ? 6 : 1; break;
	case K_BCAST:
	case K_REDUCE: a = 3; break;
	case K_ALLTOALL:
	case K_GATHER:
	case K_SCATTER: a = 4; break;
	default: a = 5; break;
	}
	return a << UNI_NCCL_OPF_ALGO_SHIFT | (uint64_t)proto << UNI_NCCL_OPF_PROTO_SHIFT;
}

/* One nccl_op record per operation: the group's start to its end (devtl:
 * the device timeline's). */
static void trace_ops(const struct op *ops, int nops, uint64_t t0, uint64_t end, int devtl)
{
	for (int i = 0; i < nops; i++) {
		const struct op *o = &ops[i];
		if (o->kind > K_RECV)
			continue; /* a split's agreement moves no data */
		uint64_t bytes = op_size(o), a;
		memcpy(&a, o->comm->key, 8);
		int rp = o->kind == K_SEND || o->kind == K_RECV ? o->peer
			 : o->kind == K_BCAST || o->kind == K_REDUCE || o->kind == K_GATHER || o->kind == K_SCATTER
			     ? o->root
			     : -1;
		struct uni_ev e = {.kind = UNI_EV_NCCL_OP,
				   .conn = (uint32_t)o->comm->rank | (uint32_t)o->comm->nranks << 16,
				   .t0 = t0,
				   .t1 = end,
				   .off = o->count,
				   .len = bytes,
				   .a = a,
				   .b = (uint64_t)(int64_t)rp,
				   .c = (uint64_t)o->kind | op_timing_flags(o, bytes) |
					(nops > 1 ? UNI_NCCL_OPF_GROUP : 0) | (o->dev ? UNI_NCCL_OPF_DEV : 0) |
					(devtl ? UNI_NCCL_OPF_DEVTL : 0) |
					((uint64_t)o->type & 15) << UNI_NCCL_OPF_TYPE_SHIFT};
		uni_shim_nccl_event(&e);
	}
}

/* Stream work ("Device buffers", docs/nccl.md). A group whose every buffer
 * is device memory, all on one stream, is queued on that stream: the
 * inputs' copies to the host, a host function that moves the data
 * (sjob_run), the results' copies back, a host function that gives the
 * host copies back (sjob_done); the call returns at once, as NCCL's does.
 * CUDA may run every host function of a process on one thread, in the
 * order their streams reach them, and sjob_run waits for the peers: so
 * only one communicator of a process has work queued at a time (another
 * one's call takes the synchronous path meanwhile), and never a process
 * that holds two ranks of one communicator (a thread per rank,
 * CommInitAll), whose ranks' host functions would wait for each other. */
struct sjob {
	int nops;
	struct op ops[];
};

static atomic_flag g_q_lock = ATOMIC_FLAG_INIT;
static _Atomic int g_q_comms; /* communicators with work queued on a stream */

/* The ops of one communicator count once. */
static int first_of_comm(const struct op *ops, int i)
{
	for (int j = 0; j < i; j++)
		if (ops[j].comm == ops[i].comm)
			return 0;
	return 1;
}

static void sjob_run(void *p)
{
	struct sjob *j = p;
	uni_shim_quiet_io(1);
	/* A communicator that failed or was aborted since: the peers are
	 * not in step any more; its queued work moves nothing. */
	ncclResult_t r = ncclSuccess;
	for (int i = 0; i < j->nops && r == ncclSuccess; i++) {
		ncclComm_t c = j->ops[i].comm;
		int e = atomic_load(&c->async_err);
		r = e != ncclSuccess ? (ncclResult_t)e : atomic_load(&c->sh->aborted) ? ncclRemoteError : ncclSuccess;
	}
	if (r == ncclSuccess)
		r = data_path(j->ops, j->nops);
	/* Nobody to return it to: an asynchronous error, as in NCCL
	 * (ncclCommGetAsyncError; the next call on the communicator). The
	 * copies back to the device are queued already: what they carry
	 * must not be the leftovers of another operation (the host copies
	 * are reused), so a device output gets its own input back where
	 * it holds it (in place) and zeros elsewhere (NCCL leaves a failed
	 * operation's output undefined). */
	if (r != ncclSuccess)
		for (int i = 0; i < j->nops; i++) {
			struct op *o = &j->ops[i];
			atomic_store(&o->comm->async_err, r);
			if (!o->drecv)
				continue;
			memset(o->recv, 0, o->recv_bytes);
			size_t in, out;
			op_bytes(o, &in, &out);
			uintptr_t s0 = (uintptr_t)o->dsend, r0 = (uintptr_t)o->drecv;
			if (o->dsend && in && s0 >= r0 && s0 - r0 <= o->recv_bytes && in <= o->recv_bytes - (s0 - r0))
				memcpy((uint8_t *)o->recv + (s0 - r0), o->send, in);
		}
	uni_shim_quiet_io(0);
}

/* The group is no longer queued (stream_work_take counted it). */
static void drop_counts(const struct op *ops, int nops)
{
	for (int i = 0; i < nops; i++) {
		if (!first_of_comm(ops, i))
			continue;
		ncclComm_t c = ops[i].comm;
		if (atomic_fetch_sub(&c->pending, 1) == 1) {
			atomic_fetch_sub(&g_q_comms, 1);
			uni_futex_wake(&c->pending, INT32_MAX);
		}
		comm_unref(c);
	}
}

static void sjob_done(void *p)
{
	struct sjob *j = p;
	uni_shim_quiet_io(1);
	for (int i = 0; i < j->nops; i++) {
		struct op *o = &j->ops[i];
		if (o->dsend)
			host_give_back((void *)o->send, o->pinned_send, o->cap_send);
		if (o->drecv)
			host_give_back(o->recv, o->pinned_recv, o->cap_recv);
		if (o->scal_h)
			host_give_back(o->scal_h, o->pinned_scal, o->cap_scal);
	}
	drop_counts(j->ops, j->nops);
	free(j);
	uni_shim_quiet_io(0);
}

static int local_ranks(ncclComm_t c)
{
	if (c->local_ranks)
		return c->local_ranks;
	int n = 0, all = 1;
	for (int r = 0; r < c->nranks; r++) {
		int pid = atomic_load(&c->sh->pid[r]);
		all &= pid != 0;
		n += pid == (int)getpid();
	}
	if (all)
		c->local_ranks = n;
	return n;
}

/* Whether the group goes on its stream; if so its communicators count
 * it as queued already (under g_q_lock, so that two threads do not both
 * take a second communicator onto the streams). */
static int stream_work_take(struct op *ops, int nops)
{
	static int off = -1;
	if (off < 0) {
		const char *e = getenv("UNI_NCCL_DEVICE_SYNC");
		off = e && *e && strcmp(e, "0");
	}
	/* (cudaStreamPerThread is another stream in every thread: two
	 * threads' calls on it are not ordered by it, so it takes the
	 * synchronous path.) */
	if (off || !g_rt.launch_host || several_ranks(ops, nops) || ops[0].stream == cudaStreamPerThread)
		return 0;
	int any = 0, mine = 0;
	for (int i = 0; i < nops; i++) {
		const struct op *o = &ops[i];
		size_t in, out;
		op_bytes(o, &in, &out);
		if (o->stream != ops[0].stream || (in && !(o->dev & DEV_SEND)) || (out && !(o->dev & DEV_RECV)) ||
		    local_ranks(o->comm) > 1)
			return 0;
		any |= o->dev || o->scal_dev;
	}
	if (!any)
		return 0;
	spin_lock(&g_q_lock);
	int ok = 1;
	for (int i = 0; i < nops; i++)
		if (first_of_comm(ops, i) && atomic_load(&ops[i].comm->pending) > 0) {
			mine++;
			ok &= ops[i].comm->pending_stream == ops[0].stream; /* else: drained first */
		}
	ok &= atomic_load(&g_q_comms) == mine;
	for (int i = 0; ok && i < nops; i++)
		if (first_of_comm(ops, i)) {
			atomic_fetch_add(&ops[i].comm->refs, 1);
			if (atomic_fetch_add(&ops[i].comm->pending, 1) == 0)
				atomic_fetch_add(&g_q_comms, 1);
			ops[i].comm->pending_stream = ops[0].stream;
		}
	spin_unlock(&g_q_lock);
	return ok;
}

/* Queues the group on its stream (stream_work_take counted it). */
static ncclResult_t stream_work(struct op *ops, int nops)
{
	cudaStream_t s = ops[0].stream;
	dev_use(ops[0].comm);
	struct sjob *j = calloc(1, sizeof(*j) + (size_t)nops * sizeof(struct op));
	struct op *out = calloc((size_t)nops, sizeof(*out));
	if (!j || !out) {
		free(j);
		free(out);
		drop_counts(ops, nops);
		return fail(ops[0].comm, ncclSystemError, "%s: out of memory", kind_name[ops[0].kind]);
	}
	memcpy(j->ops, ops, (size_t)nops * sizeof(struct op));
	j->nops = nops;
	ncclResult_t r = stage(j->ops, nops, 0);
	/* A copy from pageable memory to the device may take the bytes when
	 * it is queued, before sjob_run made them: where pinning failed, the
	 * group goes the synchronous way. */
	int pageable = 0;
	for (int i = 0; i < nops; i++)
		pageable |= (j->ops[i].drecv && !j->ops[i].pinned_recv) || (j->ops[i].scal_h && !j->ops[i].pinned_scal);
	if (r == ncclSuccess && pageable) {
		cudaError_t se = g_rt.stream_sync(s);
		r = se == cudaSuccess ? data_path(j->ops, nops)
				      : fail(ops[0].comm, ncclUnhandledCudaError, "%s: synchronising the stream: %s",
					     kind_name[ops[0].kind], rt_err(se));
		r = unstage(j->ops, nops, r);
		drop_counts(j->ops, nops);
		free(j);
		free(out);
		return r;
	}
	/* What the results' copies need, taken before sjob_run may run and
	 * change the ops. */
	if (r == ncclSuccess)
		memcpy(out, j->ops, (size_t)nops * sizeof(struct op));
	cudaError_t e = cudaSuccess;
	if (r == ncclSuccess && (e = g_rt.launch_host(s, sjob_run, j)) != cudaSuccess)
		r = fail(ops[0].comm, ncclUnhandledCudaError, "%s: queueing the exchange on the stream: %s",
			 kind_name[ops[0].kind], rt_err(e));
	if (r != ncclSuccess) {
		/* Nothing runs: the copies queued so far end, the job goes. */
		g_rt.stream_sync(s);
		unstage(j->ops, nops, r);
		sjob_done(j);
		free(out);
		return r;
	}
	for (int i = 0; i < nops && r == ncclSuccess; i++)
		if (out[i].drecv && (e = g_rt.memcpy_async(out[i].drecv, out[i].recv, out[i].recv_bytes,
							   cudaMemcpyHostToDevice, s)) != cudaSuccess)
			r = fail(ops[0].comm, ncclUnhandledCudaError, "%s: copying the result to the device: %s",
				 kind_name[out[i].kind], rt_err(e));
	free(out);
	if ((e = g_rt.launch_host(s, sjob_done, j)) != cudaSuccess) {
		g_rt.stream_sync(s);
		sjob_done(j);
		if (r == ncclSuccess)
			r = fail(ops[0].comm, ncclUnhandledCudaError, "%s: queueing on the stream: %s",
				 kind_name[ops[0].kind], rt_err(e));
	}
	return r;
}

/* NCCL operations inside a CUDA graph capture cannot be ours: the data
 * would move once, at the capture, and not at each replay. */
static ncclResult_t check_capture(const struct op *ops, int nops)
{
	if (!g_rt.is_capturing)
		return ncclSuccess;
	for (int i = 0; i < nops; i++) {
		enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
		cudaError_t e = cudaSuccess;
		if (ops[i].dev || ops[i].scal_dev) {
			dev_use(ops[i].comm);
			cudaError_t before = rt_mark();
			e = g_rt.is_capturing(ops[i].stream, &st);
			rt_unmark(before, e);
		}
		if (e == cudaSuccess && st != cudaStreamCaptureStatusNone)
			return fail(ops[i].comm, ncclInvalidUsage,
				    "%s: the stream is being captured into a CUDA graph; the simulated NCCL cannot run "
				    "in a graph (docs/nccl.md, \"Device buffers\")", kind_name[ops[i].kind]);
	}
	return ncclSuccess;
}

/* on: this rank meets its peers in real time to move the data of ops:
 * under nic, what arrived unread on its connections does not hold the
 * network meanwhile (a peer may still need it to move to get here). */
static void vbusy(const struct op *ops, int nops, int on)
{
	for (int i = 0; i < nops; i++)
		if (first_of_comm(ops, i) && ops[i].comm->vc)
			for (int k = 0; k < ops[i].comm->nranks * UNI_NCCL_NCH; k++)
				if (ops[i].comm->vc[k])
					uni_shim_vconn_busy(ops[i].comm->vc[k], on);
}

/* Deterministic mode: 1 when the calling thread's operations go in turn
 * (docs/nccl.md "Deterministic mode"); what the turn does not follow yet
 * gives it up (a thread driving several ranks). Device buffers go in
 * turn on the synchronous path (execute_held). */
static int det_ops(const struct op *ops, int nops)
{
	if (!uni_shim_det_nccl())
		return 0;
	if (several_ranks(ops, nops)) {
		uni_shim_det_abandon("one thread drives several ranks of a communicator of the simulated NCCL, which the "
				     "turn does not follow yet");
		return 0;
	}
	return 1;
}


static ncclResult_t execute_held(struct op *ops, int nops)
{
	/* A turn at the caller's clock (deterministic mode). */
	int det = det_ops(ops, nops);
	if (det)
		uni_shim_det_turn();
	/* Compute before the call is charged; the copying is not. */
	uint64_t t0 = uni_shim_vt_start(), end = t0, vt0 = t0;
	ncclResult_t r = ncclSuccess;
	int timed = uni_shim_simulating(), waits = 0, ndp = 0;
	if ((r = check_capture(ops, nops)) != ncclSuccess)
		return r;
	/* A communicator's data moves in call order: groups of it still
	 * queued on a stream go first, unless this one follows them there. */
	/* (In turn the data moves in the call: on the stream path it would
	 * move in the runtime's thread, outside the turn.) */
	int async = !det && stream_work_take(ops, nops);
	for (int i = 0; i < nops && r == ncclSuccess; i++)
		if (first_of_comm(ops, i) && atomic_load(&ops[i].comm->pending) &&
		    (!async || ops[i].comm->pending_stream != ops[0].stream))
			r = pending_drain(ops[i].comm, kind_name[ops[i].kind]);
	if (r != ncclSuccess)
		return r;
	struct devpos dp[DEV_STREAMS];
	if (timed) {
		ndp = device_start(ops, nops, dp, &t0);
		end = t0;
	}
	/* Timing: the group as one fused operation, every op's transfers in
	 * one graph from the group's start. The sends that leave at once go
	 * before the data moves: while it moves the thread waits for its
	 * peers in real time and, if it has receives, does not hold the nic
	 * network back with its clock (a rank that must first receive
	 * something else, Gloo, is not stuck behind it); it times the graph
	 * meanwhile (prog_poll), its answered reads and its operation's end
	 * holding the network for what it sends later. */
	struct sched sc = {0};
	/* (On the device timeline the host's clock does not go to the
	 * operation's arrivals, the replay's does: from the first such
	 * operation on, the thread's transfers say no delay and the replay
	 * stamps them at its clock, as before trace 1.8.) */
	static __thread int dev_timeline;
	dev_timeline |= ndp > 0;
	struct prog pg = {.s = &sc, .t0 = t0, .end = t0, .clock = dev_timeline ? UINT64_MAX : vt0,
			  .what = kind_name[ops[0].kind]};
	if (timed) {
		/* (First, what the communicators' earlier sends still wait for:
		 * the group's transfers leave after it, flow control.) */
		for (int i = 0; i < nops; i++)
			if (first_of_comm(ops, i))
				fc_gates(&sc, ops[i].comm);
		for (int i = 0; i < nops; i++) {
			struct op *o = &ops[i];
			uint64_t bytes = op_size(o);
			/* A collective's channel: its place among the group's
			 * collectives of the same rank (every rank counts the
			 * same; one thread may drive several ranks: InitAll). */
			int ch = 0;
			if (o->kind != K_SEND && o->kind != K_RECV) {
				int coll = 0;
				for (int j = 0; j < i; j++)
					coll += ops[j].comm == o->comm && ops[j].kind != K_SEND && ops[j].kind != K_RECV;
				ch = 1 + (2 * coll) % (UNI_NCCL_NCH - 2);
			}
			sched_op(&sc, o->comm, o->kind, o->redop, bytes, o->root, o->peer, ch);
		}
		/* In turn, every connection of the graph is opened before the
		 * data moves: a rank that waits for a receive in turn then finds
		 * its writer's end open (unid matches the two a moment later). */
		for (int i = 0; det && i < sc.n; i++)
			if (sc.x[i].bytes)
				vconn(sc.x[i].c, sc.x[i].peer, sc.x[i].ch);
		ready_sends(&sc, 0, t0, pg.clock);
		fc_want(&sc);
		for (int i = 0; i < sc.n && !waits; i++)
			waits = sc.x[i].recv && sc.x[i].bytes;
		waits &= !async; /* the data moves later, on the stream */
		/* The timing goes on while the data moves, where this thread
		 * moves it alone (not several ranks' data) and outside the
		 * turn: its waits for its peers look at the answers. The first
		 * reads are asked for while it still counts at its clock. */
		if (waits && !det && !sc.oom && !several_ranks(ops, nops)) {
			pg.obj = ops[0].comm;
			t_prog = &pg;
			prog_ask(&pg);
		}
		if (waits)
			uni_shim_peer_wait(1, ops[0].comm);
	}
	uni_shim_quiet_io(1);
	uni_cupti_internal(1);
	if (timed && !async)
		vbusy(ops, nops, 1);
	if (UNI_UNLIKELY(waits))
		test_stall(ops[0].comm, op_size(&ops[0]));
	if (async) {
		r = stream_work(ops, nops);
	} else {
		r = stage(ops, nops, 1);
		if (r == ncclSuccess)
			r = several_ranks(ops, nops) ? data_path_threads(ops, nops) : data_path(ops, nops);
		r = unstage(ops, nops, r);
	}
	if (timed && !async)
		vbusy(ops, nops, 0);
	prog_end(&pg, r == ncclSuccess);
	/* Tests: a rank killed between moving an operation's data and timing
	 * it (its peers' timing receives wait for sends it never makes:
	 * engine/sim.c answers them once unid sees it dead). */
	if (UNI_UNLIKELY(waits && r == ncclSuccess && test_kill_timing()))
		raise(SIGKILL);
	uni_cupti_internal(0);
	uni_shim_quiet_io(0);
	if (waits)
		uni_shim_peer_wait(0, NULL);
	if (timed) {
		if (r == ncclSuccess && !sc.oom) {
			end = run_sched(&pg);
		} else {
			for (int i = 0; i < nops; i++)
				if (comm_ok(ops[i].comm) && ops[i].comm->vc)
					vreset(ops[i].comm);
		}
		free(sc.x);
		free(sc.deps);
		if (r == ncclSuccess)
			trace_ops(ops, nops, t0, end, ndp > 0);
		for (int i = 0; i < ndp; i++)
			uni_cupti_op_close(dp[i].sid, dp[i].seq, t0, end - t0);
		/* On the device timeline the host does not wait; the CPU spent
		 * moving the data is nobody's compute either way. */
		uni_shim_vt_settle(ndp ? 0 : end);
	}
	return r;
}

/* Runs ops with their communicators held (call_enter). */
static ncclResult_t execute(struct op *ops, int nops)
{
	/* (A group's communicator destroyed or aborted after its call was
	 * queued: the queue's reference kept its memory, submit.) */
	for (int i = 0; i < nops; i++)
		if (comm_dead(ops[i].comm))
			return fail(NULL, ncclInvalidArgument,
				    "nccl%s: its communicator was destroyed or aborted after the call was queued in "
				    "the group: the group does not run", kind_name[ops[i].kind]);
	for (int i = 0; i < nops; i++)
		if (first_of_comm(ops, i)) {
			call_enter(ops[i].comm);
			uint32_t n = 0;
			for (int j = i; j < nops; j++)
				n += ops[j].comm == ops[i].comm;
			in_call(ops[i].comm, ops[i].kind, ops[i].peer, n);
		}
	ncclResult_t r = execute_held(ops, nops);
	dev_end();
	for (int i = 0; i < nops; i++)
		if (first_of_comm(ops, i)) {
			in_call(ops[i].comm, 0, -1, 0);
			call_exit(ops[i].comm);
		}
	return r;
}

static ncclResult_t submit(struct op *o)
{
	if (t_depth > 0) {
		if (t_nops == UNI_NCCL_MAX_GROUP)
			return t_group_err = fail(o->comm, ncclInvalidUsage, "more than %d operations in one group",
						  UNI_NCCL_MAX_GROUP);
		if (!t_ops && !(t_ops = queue_alloc(0, sizeof(*t_ops))))
			return t_group_err = fail(o->comm, ncclSystemError, "out of memory");
		/* The queue holds the communicator until GroupEnd: one destroyed
		 * or aborted meanwhile (PyTorch's watchdog aborts from another
		 * thread) is found there, not freed under it. */
		atomic_fetch_add(&o->comm->refs, 1);
		t_ops[t_nops++] = *o;
		return ncclSuccess;
	}
	return execute(o, 1);
}

ncclResult_t pncclGroupStart(void)
{
	API_CPU_NOT_COMPUTE;
	t_depth++;
	return ncclSuccess;
}

ncclResult_t pncclGroupEnd(void)
{
	API_CPU_NOT_COMPUTE;
	if (t_depth == 0)
		return fail(NULL, ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
	if (--t_depth > 0)
		return ncclSuccess;
	int n = t_nops;
	t_nops = 0;
	/* A call of the group that failed its checks fails the group, which
	 * does not run (NCCL's ncclGroupErrCheck): its error again. */
	ncclResult_t r = t_group_err;
	t_group_err = ncclSuccess;
	ncclResult_t ri = group_inits(r);
	if (r == ncclSuccess && ri != ncclSuccess && ri != ncclInProgress)
		r = ri;
	if (r == ncclSuccess && n)
		r = execute(t_ops, n);
	if (r == ncclSuccess)
		r = ri;
	for (int i = 0; i < n; i++)
		comm_unref(t_ops[i].comm);
	return r;
}

/* Collectives ------------------------------------------------------------------- */

#define COLL(fn, k, sb, rb, cnt, ty, rop, rt, need_root)                                        \
	do {                                                                                   \
		API_CPU_NOT_COMPUTE;                                                           \
		ncclResult_t r_ = check_common(comm, fn, ty, rt, need_root);                   \
		if (r_ != ncclSuccess)                                                         \
			return arg_err(r_);                                                    \
		if (((k) == K_ALLREDUCE || (k) == K_REDUCE || (k) == K_REDSCAT) &&            \
		    (r_ = check_redop(comm, fn, rop, ty)) != ncclSuccess)                      \
			return arg_err(r_);                                                    \
		if ((r_ = check_count(comm, fn, k, cnt, ty)) != ncclSuccess)                   \
			return arg_err(r_);                                                    \
		int dev_;                                                                      \
		if ((r_ = check_bufs(comm, fn, k, sb, rb, cnt, rt, &dev_)) != ncclSuccess)     \
			return arg_err(r_);                                                    \
		struct op o_ = {.kind = k, .send = sb, .recv = rb, .count = cnt, .type = ty,   \
				.redop = rop, .root = rt, .peer = -1, .comm = comm,            \
				.stream = stream, .dev = dev_};                                \
		premul_take(&o_);                                                              \
		if (o_.scal_dev && (r_ = check_device_path(comm, fn)) != ncclSuccess)          \
			return arg_err(r_);                                                    \
		return submit(&o_);                                                            \
	} while (0)

ncclResult_t pncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
			    ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclAllReduce", K_ALLREDUCE, sendbuff, recvbuff, count, datatype, op, 0, 0);
}

ncclResult_t pncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
			    ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclBroadcast", K_BCAST, sendbuff, recvbuff, count, datatype, -1, root, 1);
}

ncclResult_t pncclBcast(void *buff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm,
			cudaStream_t stream)
{
	COLL("ncclBcast", K_BCAST, buff, buff, count, datatype, -1, root, 1);
}

ncclResult_t pncclReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
			 int root, ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclReduce", K_REDUCE, sendbuff, recvbuff, count, datatype, op, root, 1);
}

ncclResult_t pncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ncclDataType_t datatype,
			    ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclAllGather", K_ALLGATHER, sendbuff, recvbuff, sendcount, datatype, -1, 0, 0);
}

ncclResult_t pncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount, ncclDataType_t datatype,
				ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclReduceScatter", K_REDSCAT, sendbuff, recvbuff, recvcount, datatype, op, 0, 0);
}

ncclResult_t pncclAlltoAll(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
			   ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclAlltoAll", K_ALLTOALL, sendbuff, recvbuff, count, datatype, -1, 0, 0);
}

ncclResult_t pncclGather(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
			 ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclGather", K_GATHER, sendbuff, recvbuff, count, datatype, -1, root, 1);
}

ncclResult_t pncclScatter(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
			  ncclComm_t comm, cudaStream_t stream)
{
	COLL("ncclScatter", K_SCATTER, sendbuff, recvbuff, count, datatype, -1, root, 1);
}

ncclResult_t pncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
		       cudaStream_t stream)
{
	API_CPU_NOT_COMPUTE;
	ncclResult_t r = check_common(comm, "ncclSend", datatype, peer, 2);
	if (r == ncclSuccess)
		r = check_count(comm, "ncclSend", K_SEND, count, datatype);
	if (r == ncclSuccess && count && !sendbuff)
		r = fail(comm, ncclInvalidArgument, "ncclSend: send buffer is NULL");
	int dev = r == ncclSuccess && count && is_device_ptr(sendbuff) ? DEV_SEND : 0;
	if (dev)
		r = check_device_path(comm, "ncclSend");
	if (r != ncclSuccess)
		return arg_err(r);
	struct op o = {.kind = K_SEND, .send = sendbuff, .count = count, .type = datatype, .redop = -1,
		       .root = -1, .peer = peer, .comm = comm, .stream = stream, .dev = dev};
	return submit(&o);
}

ncclResult_t pncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
		       cudaStream_t stream)
{
	API_CPU_NOT_COMPUTE;
	ncclResult_t r = check_common(comm, "ncclRecv", datatype, peer, 2);
	if (r == ncclSuccess)
		r = check_count(comm, "ncclRecv", K_RECV, count, datatype);
	if (r == ncclSuccess && count && !recvbuff)
		r = fail(comm, ncclInvalidArgument, "ncclRecv: receive buffer is NULL");
	int dev = r == ncclSuccess && count && is_device_ptr(recvbuff) ? DEV_RECV : 0;
	if (dev)
		r = check_device_path(comm, "ncclRecv");
	if (r != ncclSuccess)
		return arg_err(r);
	struct op o = {.kind = K_RECV, .recv = recvbuff, .count = count, .type = datatype, .redop = -1,
		       .root = -1, .peer = peer, .comm = comm, .stream = stream, .dev = dev};
	return submit(&o);
}

/* Registration: honest no-ops (host memory needs none). ---------------------------- */

ncclResult_t pncclCommRegister(const ncclComm_t comm, void *buff, size_t size, void **handle)
{
	(void)buff;
	(void)size;
	if (!comm_ok(comm) || !handle)
		return fail(NULL, ncclInvalidArgument, "ncclCommRegister: invalid argument");
	*handle = comm;
	return ncclSuccess;
}

ncclResult_t pncclCommDeregister(const ncclComm_t comm, void *handle)
{
	(void)handle;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommDeregister: invalid communicator");
	return ncclSuccess;
}

/* A window is the buffer it was made from (ncclWinGetUserPtr gives it
 * back); nothing is registered anywhere. */
struct uni_window {
	uint32_t magic;
	ncclComm_t comm;
	void *buff;
};
#define WIN_MAGIC 0x756e6977u /* "uniw" */

ncclResult_t pncclCommWindowRegister(ncclComm_t comm, void *buff, size_t size, ncclWindow_t *win, int winFlags)
{
	(void)size;
	(void)winFlags;
	if (!comm_ok(comm) || !win)
		return fail(NULL, ncclInvalidArgument, "ncclCommWindowRegister: invalid argument");
	struct uni_window *w = malloc(sizeof(*w));
	if (!w)
		return fail(NULL, ncclSystemError, "ncclCommWindowRegister: out of memory");
	*w = (struct uni_window){.magic = WIN_MAGIC, .comm = comm, .buff = buff};
	*win = (ncclWindow_t)w;
	return ncclSuccess;
}

static struct uni_window *window_of(ncclComm_t comm, ncclWindow_t win)
{
	struct uni_window *w = (struct uni_window *)win;
	return w && w->magic == WIN_MAGIC && w->comm == comm ? w : NULL;
}

ncclResult_t pncclCommWindowDeregister(ncclComm_t comm, ncclWindow_t win)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommWindowDeregister: invalid communicator");
	struct uni_window *w = window_of(comm, win);
	if (!w)
		return fail(NULL, ncclInvalidArgument, "ncclCommWindowDeregister: not a window of this communicator");
	w->magic = 0;
	free(w);
	return ncclSuccess;
}

/* The API after 2.28 (nccl.h of NCCL 2.31, config version 23100): a
 * libtorch built against it may import these, and a symbol the shim does
 * not define would reach the real libnccl with the shim's communicator.
 * Declared here (the local nccl.h has none of them); the per-collective
 * config is read by its size and magic only. */
ncclResult_t pncclWinGetUserPtr(ncclComm_t comm, ncclWindow_t win, void **out);
ncclResult_t pncclWinGetUserPtr(ncclComm_t comm, ncclWindow_t win, void **out)
{
	struct uni_window *w = comm_ok(comm) ? window_of(comm, win) : NULL;
	if (!w || !out)
		return fail(NULL, ncclInvalidArgument, "ncclWinGetUserPtr: invalid argument");
	*out = w->buff;
	return ncclSuccess;
}

/* Device pointers of a window (NCCL 2.29's host API, which PyTorch's NCCL
 * symmetric memory calls). The simulated ranks share no memory: the load/
 * store (LSA) domain of a rank is itself, so its own buffer is the only
 * peer pointer there is; another peer's is NULL, NCCL's answer for a peer
 * outside the domain; multimem (NVLS) does not exist. */
ncclResult_t pncclGetPeerDevicePointer(ncclWindow_t win, size_t offset, int peer, void **out);
ncclResult_t pncclGetPeerDevicePointer(ncclWindow_t win, size_t offset, int peer, void **out)
{
	struct uni_window *w = (struct uni_window *)win;
	if (!w || w->magic != WIN_MAGIC || !out || !comm_ok(w->comm))
		return fail(NULL, ncclInvalidArgument, "ncclGetPeerDevicePointer: invalid argument");
	if (peer < 0 || peer >= w->comm->nranks)
		return fail(NULL, ncclInvalidArgument, "ncclGetPeerDevicePointer: peer %d is not a rank of the "
			    "communicator (0 to %d)", peer, w->comm->nranks - 1);
	*out = peer == w->comm->rank && w->buff ? (char *)w->buff + offset : NULL;
	return ncclSuccess;
}

ncclResult_t pncclGetLsaDevicePointer(ncclWindow_t win, size_t offset, int lsaRank, void **out);
ncclResult_t pncclGetLsaDevicePointer(ncclWindow_t win, size_t offset, int lsaRank, void **out)
{
	struct uni_window *w = (struct uni_window *)win;
	if (!w || w->magic != WIN_MAGIC || !out || !comm_ok(w->comm) || lsaRank != 0)
		return fail(NULL, ncclInvalidArgument, "ncclGetLsaDevicePointer: invalid argument (the "
			    "simulated NCCL's load/store domain is the rank itself: lsaRank 0)");
	*out = w->buff ? (char *)w->buff + offset : NULL;
	return ncclSuccess;
}

ncclResult_t pncclGetLsaMultimemDevicePointer(ncclWindow_t win, size_t offset, void **out);
ncclResult_t pncclGetLsaMultimemDevicePointer(ncclWindow_t win, size_t offset, void **out)
{
	(void)win, (void)offset;
	if (out)
		*out = NULL;
	return fail(NULL, ncclInvalidUsage, "ncclGetLsaMultimemDevicePointer: multimem (NVLS) is not "
		    "simulated by uniference's NCCL");
}

/* Suspend releases NCCL's dynamic device memory: the simulated
 * communicator has none, so there is nothing to release or take back. */
ncclResult_t pncclCommSuspend(ncclComm_t comm, int flags);
ncclResult_t pncclCommSuspend(ncclComm_t comm, int flags)
{
	(void)flags;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommSuspend: invalid communicator");
	return ncclSuccess;
}

ncclResult_t pncclCommResume(ncclComm_t comm);
ncclResult_t pncclCommResume(ncclComm_t comm)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommResume: invalid communicator");
	return ncclSuccess;
}

/* Every statistic is of device memory NCCL holds: 0 bytes (and not
 * suspended). */
ncclResult_t pncclCommMemStats(ncclComm_t comm, int stat, uint64_t *value);
ncclResult_t pncclCommMemStats(ncclComm_t comm, int stat, uint64_t *value)
{
	if (!comm_ok(comm) || !value || stat < 0 || stat > 3)
		return fail(NULL, ncclInvalidArgument, "ncclCommMemStats: invalid argument");
	*value = 0;
	return ncclSuccess;
}

/* The nccl*Config collectives: the plain ones once the config is one
 * (NULL, or NCCL_COLLCONFIG_INITIALIZER's size and magic); its tuning
 * (CTAs, algorithm selection) is not used. */
struct coll_config_head {
	size_t size;
	unsigned int magic;
	unsigned int version;
};

static int coll_config_ok(const void *config, const char *fn)
{
	const struct coll_config_head *h = config;
	if (!h || (h->size >= sizeof(*h) && h->magic == 0xcafebeef))
		return 1;
	fail(NULL, ncclInvalidArgument, "%s: config not initialised with NCCL_COLLCONFIG_INITIALIZER "
	     "(magic 0x%x, size %zu)", fn, h->magic, h->size);
	return 0;
}

#define CONFIG_COLL(name, params, args)                                                  \
	ncclResult_t p##name##Config params;                                             \
	ncclResult_t p##name##Config params                                              \
	{                                                                                \
		if (!coll_config_ok(config, #name "Config"))                             \
			return ncclInvalidArgument;                                      \
		return p##name args;                                                     \
	}
CONFIG_COLL(ncclAllReduce,
	    (const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c, cudaStream_t st,
	     const void *config),
	    (s, r, n, t, op, c, st))
CONFIG_COLL(ncclBroadcast,
	    (const void *s, void *r, size_t n, ncclDataType_t t, int root, ncclComm_t c, cudaStream_t st,
	     const void *config),
	    (s, r, n, t, root, c, st))
CONFIG_COLL(ncclReduce,
	    (const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, int root, ncclComm_t c,
	     cudaStream_t st, const void *config),
	    (s, r, n, t, op, root, c, st))
CONFIG_COLL(ncclAllGather,
	    (const void *s, void *r, size_t n, ncclDataType_t t, ncclComm_t c, cudaStream_t st, const void *config),
	    (s, r, n, t, c, st))
CONFIG_COLL(ncclReduceScatter,
	    (const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c, cudaStream_t st,
	     const void *config),
	    (s, r, n, t, op, c, st))
CONFIG_COLL(ncclAlltoAll,
	    (const void *s, void *r, size_t n, ncclDataType_t t, ncclComm_t c, cudaStream_t st, const void *config),
	    (s, r, n, t, c, st))
CONFIG_COLL(ncclGather,
	    (const void *s, void *r, size_t n, ncclDataType_t t, int root, ncclComm_t c, cudaStream_t st,
	     const void *config),
	    (s, r, n, t, root, c, st))
CONFIG_COLL(ncclScatter,
	    (const void *s, void *r, size_t n, ncclDataType_t t, int root, ncclComm_t c, cudaStream_t st,
	     const void *config),
	    (s, r, n, t, root, c, st))

/* Not built yet: a clear InvalidUsage, never an unresolved symbol. -------------------- */

#define NOT_YET(fn) return fail(NULL, ncclInvalidUsage, "%s is not supported by uniference's NCCL yet", fn)

ncclResult_t pncclMemAlloc(void **ptr, size_t size)
{
	(void)ptr;
	(void)size;
	NOT_YET("ncclMemAlloc (device memory)");
}

ncclResult_t pncclMemFree(void *ptr)
{
	(void)ptr;
	NOT_YET("ncclMemFree (device memory)");
}

/* NCCL's device API (the nccl_device headers: kernels that talk to peers
 * themselves): the host calls that take a communicator would hand ours to
 * the real libnccl. Declared here with opaque pointers (nccl.h does not
 * declare them). The ones that take none (ncclLsaBarrierCreateRequirement,
 * ncclLLA2A*) and the device-side inlines stay NCCL's. */
ncclResult_t pncclDevCommCreate(ncclComm_t comm, const void *reqs, void *out);
ncclResult_t pncclDevCommCreate(ncclComm_t comm, const void *reqs, void *out)
{
	(void)comm, (void)reqs, (void)out;
	NOT_YET("ncclDevCommCreate (the device API)");
}

ncclResult_t pncclDevCommDestroy(ncclComm_t comm, const void *dev);
ncclResult_t pncclDevCommDestroy(ncclComm_t comm, const void *dev)
{
	(void)comm, (void)dev;
	NOT_YET("ncclDevCommDestroy (the device API)");
}

ncclResult_t pncclGinBarrierCreateRequirement(ncclComm_t comm, void *team, int n, void *handle, void *req);
ncclResult_t pncclGinBarrierCreateRequirement(ncclComm_t comm, void *team, int n, void *handle, void *req)
{
	(void)comm, (void)team, (void)n, (void)handle, (void)req;
	NOT_YET("ncclGinBarrierCreateRequirement (the device API)");
}

/* After 2.28, not simulated: growing a communicator, one-sided puts and
 * signals, the parameter API. */
ncclResult_t pncclCommGetUniqueId(ncclComm_t comm, ncclUniqueId *id);
ncclResult_t pncclCommGetUniqueId(ncclComm_t comm, ncclUniqueId *id)
{
	(void)comm, (void)id;
	NOT_YET("ncclCommGetUniqueId (growing a communicator)");
}

ncclResult_t pncclCommGrow(ncclComm_t comm, int n, const ncclUniqueId *id, int rank, ncclComm_t *newcomm,
			   ncclConfig_t *config);
ncclResult_t pncclCommGrow(ncclComm_t comm, int n, const ncclUniqueId *id, int rank, ncclComm_t *newcomm,
			   ncclConfig_t *config)
{
	(void)comm, (void)n, (void)id, (void)rank, (void)newcomm, (void)config;
	NOT_YET("ncclCommGrow");
}

ncclResult_t pncclPutSignal(const void *buf, size_t count, ncclDataType_t t, int peer, ncclWindow_t win, size_t off,
			    int sig, int ctx, unsigned int flags, ncclComm_t comm, cudaStream_t st);
ncclResult_t pncclPutSignal(const void *buf, size_t count, ncclDataType_t t, int peer, ncclWindow_t win, size_t off,
			    int sig, int ctx, unsigned int flags, ncclComm_t comm, cudaStream_t st)
{
	(void)buf, (void)count, (void)t, (void)peer, (void)win, (void)off, (void)sig, (void)ctx, (void)flags,
		(void)comm, (void)st;
	NOT_YET("ncclPutSignal (one-sided communication)");
}

ncclResult_t pncclSignal(int peer, int sig, int ctx, unsigned int flags, ncclComm_t comm, cudaStream_t st);
ncclResult_t pncclSignal(int peer, int sig, int ctx, unsigned int flags, ncclComm_t comm, cudaStream_t st)
{
	(void)peer, (void)sig, (void)ctx, (void)flags, (void)comm, (void)st;
	NOT_YET("ncclSignal (one-sided communication)");
}

ncclResult_t pncclWaitSignal(int n, void *descs, ncclComm_t comm, cudaStream_t st);
ncclResult_t pncclWaitSignal(int n, void *descs, ncclComm_t comm, cudaStream_t st)
{
	(void)n, (void)descs, (void)comm, (void)st;
	NOT_YET("ncclWaitSignal (one-sided communication)");
}

/* The parameter API (NCCL's own settings): every call, one message. */
#define PARAM_NOT_YET(fn, params)                                                   \
	ncclResult_t p##fn params;                                                  \
	ncclResult_t p##fn params                                                   \
	{                                                                           \
		NOT_YET(#fn " (NCCL's parameter API)");                             \
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
PARAM_NOT_YET(ncclParamBind, (void **out, const char *key))
PARAM_NOT_YET(ncclParamGetI8, (void *h, int8_t *out))
PARAM_NOT_YET(ncclParamGetI16, (void *h, int16_t *out))
PARAM_NOT_YET(ncclParamGetI32, (void *h, int32_t *out))
PARAM_NOT_YET(ncclParamGetI64, (void *h, int64_t *out))
PARAM_NOT_YET(ncclParamGetU8, (void *h, uint8_t *out))
PARAM_NOT_YET(ncclParamGetU16, (void *h, uint16_t *out))
PARAM_NOT_YET(ncclParamGetU32, (void *h, uint32_t *out))
PARAM_NOT_YET(ncclParamGetU64, (void *h, uint64_t *out))
PARAM_NOT_YET(ncclParamGetStr, (void *h, const char **out))
PARAM_NOT_YET(ncclParamGet, (void *h, void *out, int max, int *len))
PARAM_NOT_YET(ncclParamGetParameter, (const char *key, const char **value, int *len))
PARAM_NOT_YET(ncclParamGetAllParameterKeys, (const char ***table, int *len))
#pragma GCC diagnostic pop

/* Logs NCCL's parameters: the shim has none of NCCL's. */
void pncclParamDumpAll(void);
void pncclParamDumpAll(void)
{
}

/* Deprecated in nccl.h: re-reads NCCL_DEBUG; the shim has nothing to
 * reset. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
void pncclResetDebugInit(void)
{
}
#pragma GCC diagnostic pop

/* InitAll: ndev ranks in this process, each initialised by a thread of
 * its own (a rank waits for the others to join). */
struct initall_arg {
	ncclComm_t *out;
	int n, rank, dev;
	ncclUniqueId id;
};

static ncclResult_t initall_job(void *p)
{
	struct initall_arg *a = p;
	t_init_dev = a->dev;
	return init_rank(a->out, a->n, a->id, a->rank, 1, 0);
}

/* Rank i on devlist[i] (NULL: device i), as in NCCL, which checks the
 * list against the devices there are; several ranks may share a device
 * here (NCCL refuses that): without a list, more ranks than devices go
 * round them (NCCL fails to set device i). */
ncclResult_t pncclCommInitAll(ncclComm_t *comm, int ndev, const int *devlist)
{
	if (!comm)
		return fail(NULL, ncclInvalidArgument, "ncclCommInitAll: comm is NULL");
	if (ndev < 1 || ndev > UNI_NCCL_MAX_RANKS)
		return fail(NULL, ncclInvalidArgument, "ncclCommInitAll: ndev %d out of range 1..%d", ndev,
			    UNI_NCCL_MAX_RANKS);
	rt_look();
	int count = -1;
	if (g_rt.device_count) {
		cudaError_t before = rt_mark(), e = g_rt.device_count(&count);
		rt_unmark(before, e);
		if (e != cudaSuccess)
			count = -1;
	}
	for (int i = 0; devlist && i < ndev; i++)
		if (devlist[i] < 0 || (count >= 0 && devlist[i] >= count))
			return count >= 0 ? fail(NULL, ncclInvalidArgument, "ncclCommInitAll: devlist[%d] is device %d, "
						 "not one of the %d there are", i, devlist[i], count)
					  : fail(NULL, ncclInvalidArgument, "ncclCommInitAll: devlist[%d] is device %d",
						 i, devlist[i]);
	ncclUniqueId id;
	ncclResult_t r = pncclGetUniqueId(&id);
	if (r != ncclSuccess)
		return r;
	if (uni_shim_det_nccl())
		uni_shim_det_abandon("ncclCommInitAll (one thread drives several ranks of the simulated NCCL), which "
				     "the turn does not follow yet");
	struct initall_arg *a = calloc((size_t)ndev, sizeof(*a));
	struct job *jobs = calloc((size_t)ndev, sizeof(*jobs));
	if (!a || !jobs) {
		free(a);
		free(jobs);
		return fail(NULL, ncclSystemError, "ncclCommInitAll: out of memory");
	}
	for (int i = 0; i < ndev; i++) {
		comm[i] = NULL;
		a[i] = (struct initall_arg){.out = &comm[i], .n = ndev, .rank = i,
					    .dev = devlist ? devlist[i] : count > 0 ? i % count : i, .id = id};
		jobs[i] = (struct job){.fn = initall_job, .arg = &a[i]};
	}
	r = run_jobs(jobs, ndev);
	if (r != ncclSuccess)
		for (int i = 0; i < ndev; i++)
			if (comm[i]) {
				pncclCommAbort(comm[i]);
				comm[i] = NULL;
			}
	free(a);
	free(jobs);
	return r;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Every rank of the parent calls it (NCCL_SPLIT_NOCOLOR: it takes part but
 * gets no communicator); the ranks of one color form a communicator,
 * ranked by (key, parent rank). Its id is derived from the parent's, the
 * split's sequence number and the color, the same on every member. */
/* A communicator made from comm (Split, Shrink): its id is comm's key
 * mixed with salt (the same on every rank that joins it), its blocking
 * mode comm's unless config says. */
static ncclResult_t child(ncclComm_t comm, uint64_t salt, const ncclConfig_t *config, int n, int me,
			  ncclComm_t *newcomm)
{
	ncclUniqueId id;
	memset(&id, 0, sizeof(id));
	struct id_layout *l = (struct id_layout *)id.internal;
	l->magic = ID_MAGIC;
	uint64_t a, b;
	memcpy(&a, comm->key, 8);
	memcpy(&b, comm->key + 8, 8);
	a = mix64(a ^ salt);
	b = mix64(b ^ a);
	memcpy(l->key, &a, 8);
	memcpy(l->key + 8, &b, 8);
	int blocking = comm->blocking;
	config_read("ncclCommSplit", config, &blocking); /* (checked at the call) */
	t_parent_node = comm->node;
	t_init_dev = comm->dev;
	ncclResult_t r = init_rank(newcomm, n, id, me, blocking, 0);
	t_parent_node = -2;
	t_init_dev = -1;
	return r;
}

static ncclResult_t comm_split(ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config);

ncclResult_t pncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommSplit: invalid communicator or newcomm");
	int blocking;
	if (config_read("ncclCommSplit", config, &blocking) != ncclSuccess)
		return ncclInvalidArgument;
	call_enter(comm);
	ncclResult_t r = comm_split(comm, color, key, newcomm, config);
	call_exit(comm);
	return r;
}

static ncclResult_t comm_split(ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config)
{
	if (!comm_ok(comm) || !newcomm)
		return fail(NULL, ncclInvalidArgument, "ncclCommSplit: invalid communicator or newcomm");
	if (ensure_ready(comm, "ncclCommSplit") != ncclSuccess)
		return ncclInvalidArgument;
	if (color < 0 && color != NCCL_SPLIT_NOCOLOR)
		return fail(comm, ncclInvalidArgument, "ncclCommSplit: color %d is negative (NCCL_SPLIT_NOCOLOR is -1)",
			    color);
	*newcomm = NULL;
	/* Its agreement moves data: after the operations queued on a stream. */
	ncclResult_t pr = pending_drain(comm, "ncclCommSplit");
	dev_end();
	if (pr != ncclSuccess)
		return pr;
	struct op o = {.kind = K_SPLIT, .type = ncclInt8, .redop = -1, .root = 0, .peer = -1, .comm = comm};
	uni_shim_quiet_io(1);
	in_call(comm, K_SPLIT, -1, 1);
	ncclResult_t r = agree(comm, &o, 1);
	int32_t mine[2] = {color, key};
	if (r == ncclSuccess) {
		memcpy(slot(comm, comm->rank), mine, sizeof(mine));
		r = barrier(comm, "CommSplit");
	}
	int n = 0, me = -1;
	if (r == ncclSuccess) {
		for (int p = 0; p < comm->nranks; p++) {
			int32_t ck[2];
			memcpy(ck, slot(comm, p), sizeof(ck));
			if (ck[0] != color || color == NCCL_SPLIT_NOCOLOR)
				continue;
			/* ranks before me in (key, rank) order */
			if (ck[1] < key || (ck[1] == key && p < comm->rank))
				me = me < 0 ? 1 : me + 1;
			n++;
		}
		me = me < 0 ? 0 : me;
		r = barrier(comm, "CommSplit");
	}
	in_call(comm, 0, -1, 0);
	uni_shim_quiet_io(0);
	if (r != ncclSuccess || color == NCCL_SPLIT_NOCOLOR)
		return r;
	return child(comm, mix64(comm->seq) ^ mix64((uint64_t)(uint32_t)color << 1), config, n, me, newcomm);
}

/* Shrink: every rank not excluded calls it (the excluded ones may be
 * dead); no word with the parent's ranks is needed: the new ranks are the
 * survivors in their old order, and the new communicator's id follows from
 * the parent's, how many shrinks it made and the excluded set (ranks that
 * pass different lists make different communicators, whose ranks never
 * all join: ncclRemoteError after the time-out). NCCL_SHRINK_ABORT ends
 * the parent's operations still queued on a stream (they fail at once);
 * every other operation is complete when its call returns. */
static ncclResult_t comm_shrink(ncclComm_t comm, int *excludeRanksList, int excludeRanksCount, ncclComm_t *newcomm,
			       ncclConfig_t *config, int shrinkFlags);

ncclResult_t pncclCommShrink(ncclComm_t comm, int *excludeRanksList, int excludeRanksCount, ncclComm_t *newcomm,
			     ncclConfig_t *config, int shrinkFlags)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommShrink: invalid communicator or newcomm");
	int blocking;
	if (config_read("ncclCommShrink", config, &blocking) != ncclSuccess)
		return ncclInvalidArgument;
	call_enter(comm);
	ncclResult_t r = comm_shrink(comm, excludeRanksList, excludeRanksCount, newcomm, config, shrinkFlags);
	call_exit(comm);
	return r;
}

static ncclResult_t comm_shrink(ncclComm_t comm, int *excludeRanksList, int excludeRanksCount, ncclComm_t *newcomm,
			       ncclConfig_t *config, int shrinkFlags)
{
	if (!comm_ok(comm) || !newcomm)
		return fail(NULL, ncclInvalidArgument, "ncclCommShrink: invalid communicator or newcomm");
	if (ensure_ready(comm, "ncclCommShrink") != ncclSuccess)
		return ncclInvalidArgument;
	if (excludeRanksCount < 0 || (excludeRanksCount > 0 && !excludeRanksList) ||
	    excludeRanksCount >= comm->nranks)
		return fail(comm, ncclInvalidArgument, "ncclCommShrink: %d ranks to exclude of %d", excludeRanksCount,
			    comm->nranks);
	if (shrinkFlags & ~(NCCL_SHRINK_DEFAULT | NCCL_SHRINK_ABORT))
		return fail(comm, ncclInvalidArgument, "ncclCommShrink: unknown flags 0x%x", shrinkFlags);
	uint8_t *out = calloc((size_t)comm->nranks, 1);
	if (!out)
		return fail(comm, ncclSystemError, "ncclCommShrink: out of memory");
	for (int i = 0; i < excludeRanksCount; i++) {
		int x = excludeRanksList[i];
		const char *why = x < 0 || x >= comm->nranks ? "out of range" : out[x] ? "listed twice"
							       : x == comm->rank ? "the calling rank" : NULL;
		if (why) {
			free(out);
			return fail(comm, ncclInvalidArgument, "ncclCommShrink: excluded rank %d is %s", x, why);
		}
		out[x] = 1;
	}
	int me = 0, n = 0;
	uint64_t h = mix64(0x5348524bull ^ ++comm->shrinks);
	for (int p = 0; p < comm->nranks; p++) {
		if (out[p]) {
			h = mix64(h ^ (uint64_t)(p + 1));
			continue;
		}
		if (p < comm->rank)
			me++;
		n++;
	}
	free(out);
	*newcomm = NULL;
	if ((shrinkFlags & NCCL_SHRINK_ABORT) && atomic_load(&comm->pending))
		abort_all(comm);
	return child(comm, h, config, n, me, newcomm);
}

ncclResult_t pncclCommInitRankScalable(ncclComm_t *newcomm, int nranks, int myrank, int nId, ncclUniqueId *commIds,
				       ncclConfig_t *config)
{
	/* Several ids spread NCCL's bootstrap over several roots; every rank
	 * passes the same array, so the first names the communicator (the
	 * others must still be ids of this shim's). */
	if (!commIds || nId < 1 || nId > nranks)
		return fail(NULL, ncclInvalidArgument, "ncclCommInitRankScalable: %d ids for %d ranks (want 1..nranks)",
			    commIds ? nId : 0, nranks);
	for (int i = 0; i < nId; i++)
		if (((const struct id_layout *)commIds[i].internal)->magic != ID_MAGIC)
			return fail(NULL, ncclInvalidArgument,
				    "ncclCommInitRankScalable: id %d does not come from ncclGetUniqueId of this shim", i);
	return pncclCommInitRankConfig(newcomm, nranks, commIds[0], myrank, config);
}

ncclResult_t pncclCommRevoke(ncclComm_t comm, int revokeFlags)
{
	(void)comm;
	(void)revokeFlags;
	NOT_YET("ncclCommRevoke");
}

ncclResult_t pncclGroupSimulateEnd(ncclSimInfo_t *simInfo)
{
	(void)simInfo;
	NOT_YET("ncclGroupSimulateEnd");
}

/* nccl* are weak aliases of pnccl*, as in libnccl (NCCL_API, PROFAPI). */
#define ALIAS(name) extern __typeof(p##name) name __attribute__((weak, alias("p" #name)))
ALIAS(ncclGetUniqueId);
ALIAS(ncclCommInitRank);
ALIAS(ncclCommInitRankConfig);
ALIAS(ncclCommInitAll);
ALIAS(ncclCommInitRankScalable);
ALIAS(ncclCommFinalize);
ALIAS(ncclCommDestroy);
ALIAS(ncclCommAbort);
ALIAS(ncclCommRevoke);
ALIAS(ncclCommSplit);
ALIAS(ncclCommShrink);
ALIAS(ncclCommGetAsyncError);
ALIAS(ncclCommCount);
ALIAS(ncclCommCuDevice);
ALIAS(ncclCommUserRank);
ALIAS(ncclCommRegister);
ALIAS(ncclCommDeregister);
ALIAS(ncclWinGetUserPtr);
ALIAS(ncclGetPeerDevicePointer);
ALIAS(ncclGetLsaDevicePointer);
ALIAS(ncclGetLsaMultimemDevicePointer);
ALIAS(ncclCommSuspend);
ALIAS(ncclCommResume);
ALIAS(ncclCommMemStats);
ALIAS(ncclAllReduceConfig);
ALIAS(ncclBroadcastConfig);
ALIAS(ncclReduceConfig);
ALIAS(ncclAllGatherConfig);
ALIAS(ncclReduceScatterConfig);
ALIAS(ncclAlltoAllConfig);
ALIAS(ncclGatherConfig);
ALIAS(ncclScatterConfig);
ALIAS(ncclCommGetUniqueId);
ALIAS(ncclCommGrow);
ALIAS(ncclPutSignal);
ALIAS(ncclSignal);
ALIAS(ncclWaitSignal);
ALIAS(ncclParamBind);
ALIAS(ncclParamGetI8);
ALIAS(ncclParamGetI16);
ALIAS(ncclParamGetI32);
ALIAS(ncclParamGetI64);
ALIAS(ncclParamGetU8);
ALIAS(ncclParamGetU16);
ALIAS(ncclParamGetU32);
ALIAS(ncclParamGetU64);
ALIAS(ncclParamGetStr);
ALIAS(ncclParamGet);
ALIAS(ncclParamGetParameter);
ALIAS(ncclParamGetAllParameterKeys);
ALIAS(ncclParamDumpAll);
ALIAS(ncclCommWindowRegister);
ALIAS(ncclCommWindowDeregister);
ALIAS(ncclGetVersion);
ALIAS(ncclGetErrorString);
ALIAS(ncclGetLastError);
ALIAS(ncclRedOpCreatePreMulSum);
ALIAS(ncclRedOpDestroy);
ALIAS(ncclAllReduce);
ALIAS(ncclBroadcast);
ALIAS(ncclBcast);
ALIAS(ncclReduce);
ALIAS(ncclAllGather);
ALIAS(ncclReduceScatter);
ALIAS(ncclAlltoAll);
ALIAS(ncclGather);
ALIAS(ncclScatter);
ALIAS(ncclSend);
ALIAS(ncclRecv);
ALIAS(ncclGroupStart);
ALIAS(ncclGroupEnd);
ALIAS(ncclGroupSimulateEnd);
ALIAS(ncclMemAlloc);
ALIAS(ncclMemFree);
ALIAS(ncclDevCommCreate);
ALIAS(ncclDevCommDestroy);
ALIAS(ncclGinBarrierCreateRequirement);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
ALIAS(ncclResetDebugInit);
#pragma GCC diagnostic pop

#pragma GCC visibility pop
