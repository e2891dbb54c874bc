/* The shim as NCCL (DESIGN section 4, "NCCL"; docs/nccl.md).
 *
 * libunishim.so exports the NCCL 2.28 API (each pnccl* strong, each nccl*
 * a weak alias, as libnccl does), so a preloaded shim replaces NCCL for a
 * program that links libnccl dynamically. This first part moves host
 * buffers (stream NULL, or any stream while no CUDA runtime is in use)
 * through shared memory, with NCCL's semantics and error codes, and in
 * simulate mode times every operation by the session's network model.
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
 * the time-out UNI_NCCL_TIMEOUT (seconds, default 300; init too: a rank
 * that never joins).
 *
 * Time (simulate mode). The calling thread's compute is charged on entry;
 * the copying is not (a GPU would do it). Each operation is then replayed
 * as the point-to-point transfers of its algorithm on virtual connections
 * between the ranks (made-up addresses, matched by unid like TCP ones), so
 * the network model times them and they contend with Gloo's traffic:
 * ring AllReduce is 2(n-1) steps of S/n to the next rank, ring AllGather
 * and ReduceScatter n-1 steps, Broadcast and Reduce a pipelined chain in
 * 1 MiB chunks, AlltoAll, Gather and Scatter direct transfers, Send/Recv
 * one transfer. A step's send leaves at the sender's clock, the receiver's
 * clock becomes the arrival; the thread leaves the call at the time its
 * part of the algorithm ends. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nccl_impl.h"
#include "shim.h"
#include "uni/shm.h"

#define UNI_NCCL_MAX_RANKS 1024
#define UNI_NCCL_SLOT (4u << 20)
#define UNI_NCCL_PAIR (1u << 20)
#define UNI_NCCL_CHUNK (1u << 20) /* pipelining unit of Broadcast/Reduce timing */
#define UNI_NCCL_MAX_USER_OPS 256
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

struct pairbox {
	_Atomic uint32_t wr, rd; /* bytes written / read, mod 2^32 */
};

struct seg {
	uint64_t magic;
	_Atomic uint32_t nranks;
	_Atomic uint32_t joined;
	_Atomic uint32_t aborted;
	_Atomic uint32_t bar_arrived;
	_Atomic uint32_t bar_gen;
	uint32_t pad;
	_Atomic int32_t pid[UNI_NCCL_MAX_RANKS];
	struct desc desc[UNI_NCCL_MAX_RANKS];
	/* then: struct pairbox[n * n], pair rings n * n * UNI_NCCL_PAIR, slots n * UNI_NCCL_SLOT */
};

struct user_op {
	int used, type;
	uint8_t scalar[8];
	const void *ptr; /* ncclScalarDevice: read when the op runs */
};

struct ncclComm {
	uint32_t magic;
	int rank, nranks;
	struct seg *sh;
	size_t shsize;
	struct pairbox *box;
	uint8_t *rings, *slots;
	uint64_t seq;
	uint8_t key[16]; /* the unique id's key */
	_Atomic int async_err;
	int blocking;
	struct user_op uop[UNI_NCCL_MAX_USER_OPS];
	/* simulate: a virtual connection to each peer (+1), stream offsets */
	uint32_t *vc;
	uint64_t *tx, *rx;
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
	return t > 0 ? t : 300;
}

static uint64_t mono_ns(void)
{
	return uni_now_ns();
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

/* Why a wait must stop, or ncclSuccess. peer: the rank waited for, or -1
 * for all (a barrier): a peer that finished its work and exited is no
 * error to a wait that does not need it. */
static ncclResult_t wait_check(ncclComm_t c, uint64_t since, const char *what, int peer)
{
	if (atomic_load(&c->sh->aborted))
		return fail(c, ncclRemoteError, "rank %d: communicator aborted while waiting for %s", c->rank, what);
	for (int r = 0; r < c->nranks; r++) {
		int pid = atomic_load(&c->sh->pid[r]);
		if (peer >= 0 && r != peer)
			continue;
		if (pid > 0 && r != c->rank && uni_pid_dead(pid))
			return fail(c, ncclRemoteError, "rank %d: rank %d (pid %d) died while rank %d waited for %s",
				    c->rank, r, pid, c->rank, what);
	}
	if ((double)(mono_ns() - since) / 1e9 > timeout_s())
		return fail(c, ncclRemoteError, "rank %d: no progress for %.0f s waiting for %s (UNI_NCCL_TIMEOUT)",
			    c->rank, timeout_s(), what);
	return ncclSuccess;
}

static ncclResult_t barrier(ncclComm_t c, const char *what)
{
	struct seg *s = c->sh;
	uint32_t gen = atomic_load_explicit(&s->bar_gen, memory_order_acquire);
	if (atomic_fetch_add_explicit(&s->bar_arrived, 1, memory_order_acq_rel) == (uint32_t)c->nranks - 1) {
		atomic_store_explicit(&s->bar_arrived, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->bar_gen, 1, memory_order_release);
		uni_futex_wake(&s->bar_gen, INT32_MAX);
		return ncclSuccess;
	}
	uint64_t since = mono_ns();
	for (int spin = 0; atomic_load_explicit(&s->bar_gen, memory_order_acquire) == gen; spin++) {
		if (spin < 200)
			continue;
		uni_futex_wait(&s->bar_gen, gen, 100);
		if (atomic_load_explicit(&s->bar_gen, memory_order_acquire) != gen)
			break;
		ncclResult_t r = wait_check(c, since, what, -1);
		if (r != ncclSuccess)
			return r;
	}
	return ncclSuccess;
}

/* Unique ids and init ------------------------------------------------------- */

struct id_layout {
	uint32_t magic;
	uint32_t pad;
	uint8_t key[16];
};

static void seg_name(const ncclUniqueId *id, char *out, size_t n)
{
	const struct id_layout *l = (const struct id_layout *)id->internal;
	int k = snprintf(out, n, "/uni-nccl-");
	for (int i = 0; i < 16 && k + 2 < (int)n; i++)
		k += snprintf(out + k, n - (size_t)k, "%02x", l->key[i]);
}

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

static ncclResult_t init_rank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank, int blocking)
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
	char name[64];
	seg_name(&id, name, sizeof(name));
	int fd = shm_open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(NULL, ncclSystemError, "ncclCommInitRank: shm_open %s: %s", name, strerror(errno));
	size_t size = seg_size(nranks);
	struct stat st;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size != size && st.st_size != 0) {
		close(fd);
		return fail(NULL, ncclInvalidArgument,
			    "ncclCommInitRank: rank %d says %d ranks, but another rank of this id made the "
			    "communicator for a different number", rank, nranks);
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return fail(NULL, ncclSystemError, "ncclCommInitRank: cannot size %s: %s", name, strerror(e));
	}
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
	if (!c) {
		munmap(s, size);
		return fail(NULL, ncclSystemError, "ncclCommInitRank: out of memory");
	}
	c->magic = COMM_MAGIC;
	c->rank = rank;
	c->nranks = nranks;
	c->sh = s;
	c->shsize = size;
	c->blocking = blocking;
	memcpy(c->key, l->key, sizeof(c->key));
	seg_layout(c);
	s->magic = SEG_MAGIC;
	atomic_fetch_add(&s->joined, 1);
	/* Everyone joins, or the time-out names who did not. */
	uint64_t since = mono_ns();
	for (;;) {
		uint32_t j = atomic_load(&s->joined);
		if (j >= (uint32_t)nranks)
			break;
		uni_futex_wait(&s->joined, j, 50);
		if ((double)(mono_ns() - since) / 1e9 > timeout_s()) {
			char missing[256] = "";
			size_t k = 0;
			for (int r = 0; r < nranks && k + 12 < sizeof(missing); r++)
				if (!atomic_load(&s->pid[r]))
					k += (size_t)snprintf(missing + k, sizeof(missing) - k, "%s%d", k ? ", " : "", r);
			/* Stays counted as joined (and its pid as present): the
			 * others report the same missing ranks. */
			munmap(s, size);
			free(c);
			shm_unlink(name);
			return fail(NULL, ncclRemoteError,
				    "ncclCommInitRank: rank %d waited %.0f s for ranks %s to join (UNI_NCCL_TIMEOUT)", rank,
				    timeout_s(), missing);
		}
	}
	uni_futex_wake(&s->joined, INT32_MAX);
	ncclResult_t r = barrier(c, "the other ranks to finish joining");
	if (r != ncclSuccess) {
		munmap(s, size);
		free(c);
		return r;
	}
	/* Every rank has it mapped: the name can go (no stale segments). */
	if (rank == 0)
		shm_unlink(name);
	*out = c;
	return ncclSuccess;
}

ncclResult_t pncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank)
{
	return init_rank(comm, nranks, commId, rank, 1);
}

ncclResult_t pncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank,
				     ncclConfig_t *config)
{
	int blocking = 1;
	if (config) {
		/* Read by its size and magic, as NCCL does: an older caller's
		 * smaller struct leaves the newer fields at their defaults. */
		ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
		size_t n = config->size < sizeof(cfg) ? config->size : sizeof(cfg);
		if (config->magic != 0xcafebeef || n < offsetof(ncclConfig_t, blocking))
			return fail(NULL, ncclInvalidArgument,
				    "ncclCommInitRankConfig: config not initialised with NCCL_CONFIG_INITIALIZER "
				    "(magic 0x%x, size %zu)", config->magic, config->size);
		memcpy(&cfg, config, n);
		if (cfg.blocking != NCCL_CONFIG_UNDEF_INT)
			blocking = cfg.blocking != 0;
	}
	ncclResult_t r = init_rank(comm, nranks, commId, rank, blocking);
	/* A non-blocking communicator is ready at once: nothing is left
	 * in progress, which ncclCommGetAsyncError reports as success. */
	return r;
}

static int comm_ok(ncclComm_t c)
{
	return c && c->magic == COMM_MAGIC;
}

static void comm_free(ncclComm_t c)
{
	if (c->vc)
		for (int p = 0; p < c->nranks; p++)
			uni_shim_vconn_close(c->vc[p], c->tx[p], c->rx[p]);
	free(c->vc);
	free(c->tx);
	free(c->rx);
	munmap(c->sh, c->shsize);
	c->magic = COMM_DEAD;
	free(c);
}

ncclResult_t pncclCommFinalize(ncclComm_t comm)
{
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommFinalize: invalid communicator");
	return ncclSuccess; /* every operation is complete when its call returns */
}

ncclResult_t pncclCommDestroy(ncclComm_t comm)
{
	if (!comm)
		return ncclSuccess;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommDestroy: invalid communicator");
	comm_free(comm);
	return ncclSuccess;
}

ncclResult_t pncclCommAbort(ncclComm_t comm)
{
	if (!comm)
		return ncclSuccess;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommAbort: invalid communicator");
	/* Peers blocked in a wait on this communicator return an error. */
	atomic_store(&comm->sh->aborted, 1);
	uni_futex_wake(&comm->sh->bar_gen, INT32_MAX);
	comm_free(comm);
	return ncclSuccess;
}

ncclResult_t pncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError)
{
	if (!comm_ok(comm) || !asyncError)
		return fail(NULL, ncclInvalidArgument, "ncclCommGetAsyncError: invalid argument");
	*asyncError = (ncclResult_t)atomic_load(&comm->async_err);
	return ncclSuccess;
}

ncclResult_t pncclCommCount(const ncclComm_t comm, int *count)
{
	if (!comm_ok(comm) || !count)
		return fail(NULL, ncclInvalidArgument, "ncclCommCount: invalid argument");
	*count = comm->nranks;
	return ncclSuccess;
}

ncclResult_t pncclCommUserRank(const ncclComm_t comm, int *rank)
{
	if (!comm_ok(comm) || !rank)
		return fail(NULL, ncclInvalidArgument, "ncclCommUserRank: invalid argument");
	*rank = comm->rank;
	return ncclSuccess;
}

ncclResult_t pncclCommCuDevice(const ncclComm_t comm, int *device)
{
	if (!comm_ok(comm) || !device)
		return fail(NULL, ncclInvalidArgument, "ncclCommCuDevice: invalid argument");
	*device = 0; /* host buffers: no device (several ranks may share one) */
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
		memset(u->scalar, 0, sizeof(u->scalar));
		memcpy(u->scalar, scalar, uni_nccl_type_size(datatype)); /* HostImmediate: read now */
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

static void vaddr(const ncclComm_t c, int a, int b, struct uni_addr *out)
{
	memset(out, 0, sizeof(*out));
	out->ip[0] = 0xfd; /* a unique-local IPv6 prefix: never a real peer */
	out->ip[1] = 'u';
	out->ip[2] = 'n';
	out->ip[3] = 'i';
	memcpy(out->ip + 4, c->key, 8);
	out->ip[12] = (uint8_t)(a >> 8);
	out->ip[13] = (uint8_t)a;
	out->port = (uint16_t)(b + 1);
}

/* The virtual connection to peer p (+1), opened on first use. */
static uint32_t vconn(ncclComm_t c, int p)
{
	if (!uni_shim_simulating())
		return 0;
	if (!c->vc) {
		c->vc = calloc((size_t)c->nranks, sizeof(*c->vc));
		c->tx = calloc((size_t)c->nranks, sizeof(*c->tx));
		c->rx = calloc((size_t)c->nranks, sizeof(*c->rx));
		if (!c->vc || !c->tx || !c->rx)
			return 0;
	}
	if (!c->vc[p]) {
		struct uni_addr l, r;
		vaddr(c, c->rank, p, &l);
		vaddr(c, p, c->rank, &r);
		c->vc[p] = uni_shim_vconn_open(&l, &r);
	}
	return c->vc[p];
}

static void vsend(ncclComm_t c, int p, uint64_t bytes, uint64_t stamp)
{
	uint32_t v = vconn(c, p);
	if (!v || !bytes)
		return;
	uni_shim_vsend(v, c->tx[p], bytes, stamp);
	c->tx[p] += bytes;
}

static uint64_t vrecv(ncclComm_t c, int p, uint64_t bytes)
{
	uint32_t v = vconn(c, p);
	if (!v || !bytes)
		return 0;
	uint64_t t = uni_shim_vrecv(v, c->rx[p], bytes);
	c->rx[p] += bytes;
	return t;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* The virtual time at which this rank's part of the algorithm ends, given
 * its clock t at the call. */
static uint64_t time_op(ncclComm_t c, int kind, uint64_t bytes, int root, int peer, uint64_t t)
{
	int n = c->nranks, me = c->rank;
	if (!uni_shim_simulating() || n == 1)
		return t;
	int right = (me + 1) % n, left = (me + n - 1) % n;
	switch (kind) {
	case K_ALLREDUCE:
	case K_ALLGATHER:
	case K_REDSCAT: {
		/* Ring: steps of S/n; AllReduce has 2(n-1), the others n-1. */
		int steps = kind == K_ALLREDUCE ? 2 * (n - 1) : n - 1;
		uint64_t chunk = (bytes + (uint64_t)n - 1) / (uint64_t)n;
		for (int s = 0; s < steps; s++) {
			vsend(c, right, chunk, t);
			t = max64(t, vrecv(c, left, chunk));
		}
		return t;
	}
	case K_BCAST:
	case K_REDUCE: {
		/* A chain along the ring, pipelined in chunks: Broadcast from
		 * the root on, Reduce ending at the root. */
		int pos = kind == K_BCAST ? (me - root + n) % n : (me - root - 1 + 2 * n) % n;
		int prev = (me + n - 1) % n, next = (me + 1) % n;
		uint64_t left_bytes = bytes;
		while (left_bytes) {
			uint64_t cb = left_bytes < UNI_NCCL_CHUNK ? left_bytes : UNI_NCCL_CHUNK;
			if (pos > 0)
				t = max64(t, vrecv(c, prev, cb));
			if (pos < n - 1)
				vsend(c, next, cb, t);
			left_bytes -= cb;
		}
		return t;
	}
	case K_ALLTOALL: {
		uint64_t per = bytes / (uint64_t)n;
		for (int k = 1; k < n; k++)
			vsend(c, (me + k) % n, per, t);
		uint64_t end = t;
		for (int k = 1; k < n; k++)
			end = max64(end, vrecv(c, (me + n - k) % n, per));
		return end;
	}
	case K_GATHER:
		if (me != root) {
			vsend(c, root, bytes, t);
			return t;
		} else {
			uint64_t end = t;
			for (int p = 0; p < n; p++)
				if (p != root)
					end = max64(end, vrecv(c, p, bytes));
			return end;
		}
	case K_SCATTER:
		if (me == root) {
			for (int p = 0; p < n; p++)
				if (p != root)
					vsend(c, p, bytes, t);
			return t;
		}
		return max64(t, vrecv(c, root, bytes));
	case K_SEND:
		if (peer != me)
			vsend(c, peer, bytes, t);
		return t;
	case K_RECV:
		return peer != me ? max64(t, vrecv(c, peer, bytes)) : t;
	}
	return t;
}

/* Operations ---------------------------------------------------------------------- */

struct op {
	int kind;
	const void *send;
	void *recv;
	size_t count; /* elements: per rank block for AllGather/ReduceScatter/AlltoAll/Gather/Scatter */
	int type, redop, root, peer;
	ncclComm_t comm;
	/* send/recv progress */
	size_t done;
	int hdr_done, finished;
};

static ncclResult_t check_common(ncclComm_t comm, const char *fn, int type, int root_or_peer, int need_root)
{
	if (!comm)
		return fail(NULL, ncclInvalidArgument, "%s: comm is NULL", fn);
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "%s: comm is not a live communicator (destroyed or corrupt)", fn);
	if (!uni_nccl_type_size(type))
		return fail(comm, ncclInvalidArgument, "%s: invalid data type %d", fn, type);
	if (need_root && (root_or_peer < 0 || root_or_peer >= comm->nranks))
		return fail(comm, ncclInvalidArgument, "%s: %s %d out of range 0..%d", fn,
			    need_root == 2 ? "peer" : "root", root_or_peer, comm->nranks - 1);
	return ncclSuccess;
}

/* Device buffers are not built yet. Where the program uses the CUDA
 * runtime (libcudart already loaded; never loaded here for it), a pointer
 * the runtime calls device memory is refused with a clear error; without a
 * GPU the query fails and the pointer is host memory. */
typedef int (*ptrattr_fn)(struct cudaPointerAttributes *, const void *);
static _Atomic(ptrattr_fn) g_ptrattr;
static _Atomic int g_ptrattr_looked;

static int find_cudart(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	const char *slash = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
	const char *base = slash ? slash + 1 : info->dlpi_name;
	if (!base || strncmp(base, "libcudart.so", 12))
		return 0;
	void *h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
	if (h)
		*(void **)arg = dlsym(h, "cudaPointerGetAttributes");
	return 1;
}

static int is_device_ptr(const void *p)
{
	if (!p)
		return 0;
	if (!atomic_exchange(&g_ptrattr_looked, 1)) {
		void *f = NULL;
		dl_iterate_phdr(find_cudart, &f);
		atomic_store(&g_ptrattr, (ptrattr_fn)f);
	}
	ptrattr_fn f = atomic_load(&g_ptrattr);
	if (!f)
		return 0;
	struct cudaPointerAttributes a;
	memset(&a, 0, sizeof(a));
	return f(&a, p) == 0 && a.type == cudaMemoryTypeDevice;
}

/* Pointers are not checked by NCCL (unless NCCL_CHECK_POINTERS=1); host
 * memory that is NULL would crash the program here, so it is an error. */
static ncclResult_t check_bufs(ncclComm_t comm, const char *fn, int kind, const void *sb, const void *rb, size_t count,
			       int root)
{
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
	if ((need_send && is_device_ptr(sb)) || (need_recv && is_device_ptr(rb)))
		return fail(comm, ncclInvalidUsage,
			    "%s: rank %d: device buffers are not supported by uniference's NCCL yet (host buffers are; "
			    "docs/nccl.md)", fn, me);
	return ncclSuccess;
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

/* Every rank describes its call; all must agree. */
static ncclResult_t agree(ncclComm_t c, const struct op *o)
{
	struct desc *d = &c->sh->desc[c->rank];
	int base = o->redop >= ncclNumOps ? -1 : o->redop;
	d->kind = (uint32_t)o->kind;
	d->type = (uint32_t)o->type;
	d->op = (uint32_t)base;
	d->root = (uint32_t)o->root;
	d->count = o->count;
	d->seq = ++c->seq;
	ncclResult_t r = barrier(c, kind_name[o->kind]);
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

static const void *premul_scalar(ncclComm_t c, int redop, int *pre)
{
	*pre = 0;
	if (redop < ncclNumOps)
		return NULL;
	struct user_op *u = &c->uop[redop - ncclNumOps];
	*pre = 1;
	return u->ptr ? u->ptr : u->scalar;
}

/* A collective's data, through the slots in chunks. */
static ncclResult_t run_coll(const struct op *o)
{
	ncclComm_t c = o->comm;
	int n = c->nranks, me = c->rank;
	size_t esz = uni_nccl_type_size(o->type);
	ncclResult_t r = agree(c, o);
	if (r != ncclSuccess)
		return r;
	int pre;
	const void *scalar = premul_scalar(c, o->redop, &pre);
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

static size_t ring_put(ncclComm_t c, int to, const uint8_t *p, size_t len)
{
	struct pairbox *b = box_of(c, c->rank, to);
	uint32_t wr = atomic_load_explicit(&b->wr, memory_order_relaxed);
	uint32_t rd = atomic_load_explicit(&b->rd, memory_order_acquire);
	size_t room = UNI_NCCL_PAIR - (wr - rd);
	if (len > room)
		len = room;
	uint8_t *ring = ring_of(c, c->rank, to);
	size_t at = wr % UNI_NCCL_PAIR, first = UNI_NCCL_PAIR - at < len ? UNI_NCCL_PAIR - at : len;
	memcpy(ring + at, p, first);
	memcpy(ring, p + first, len - first);
	atomic_store_explicit(&b->wr, wr + (uint32_t)len, memory_order_release);
	if (len)
		uni_futex_wake(&b->wr, 1);
	return len;
}

static size_t ring_get(ncclComm_t c, int from, uint8_t *p, size_t len)
{
	struct pairbox *b = box_of(c, from, c->rank);
	uint32_t rd = atomic_load_explicit(&b->rd, memory_order_relaxed);
	uint32_t wr = atomic_load_explicit(&b->wr, memory_order_acquire);
	size_t have = wr - rd;
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

static int p2p_step(struct op *o, ncclResult_t *err)
{
	ncclComm_t c = o->comm;
	size_t bytes = o->count * uni_nccl_type_size(o->type);
	int moved = 0;
	if (o->kind == K_SEND) {
		if (!o->hdr_done) {
			struct pairbox *b = box_of(c, c->rank, o->peer);
			if (UNI_NCCL_PAIR - (atomic_load(&b->wr) - atomic_load(&b->rd)) < 8)
				return 0;
			uint64_t len = bytes;
			ring_put(c, o->peer, (const uint8_t *)&len, 8);
			o->hdr_done = moved = 1;
		}
		size_t k = ring_put(c, o->peer, (const uint8_t *)o->send + o->done, bytes - o->done);
		o->done += k;
		moved |= k > 0;
	} else {
		if (!o->hdr_done) {
			struct pairbox *b = box_of(c, o->peer, c->rank);
			if (atomic_load(&b->wr) - atomic_load(&b->rd) < 8)
				return 0;
			uint64_t len;
			ring_get(c, o->peer, (uint8_t *)&len, 8);
			o->hdr_done = moved = 1;
			if (len != bytes) {
				*err = fail(c, ncclInvalidArgument,
					    "ncclRecv: rank %d expects %zu bytes from rank %d, which sent %llu", c->rank,
					    bytes, o->peer, (unsigned long long)len);
				/* Drain what was sent, so the pair stays in step. */
				o->count = 0;
				o->done = 0;
				o->finished = 0;
				o->kind = -(int)len - 1; /* remember how much to drop */
			}
		}
		if (o->kind < 0) {
			uint8_t sink[4096];
			size_t want = (size_t)(-(o->kind + 1)) - o->done;
			size_t k = ring_get(c, o->peer, sink, want < sizeof(sink) ? want : sizeof(sink));
			o->done += k;
			if (o->done == (size_t)(-(o->kind + 1)))
				o->finished = 1;
			return k > 0 || moved;
		}
		size_t k = ring_get(c, o->peer, (uint8_t *)o->recv + o->done, bytes - o->done);
		o->done += k;
		moved |= k > 0;
	}
	if (o->hdr_done && o->done == bytes)
		o->finished = 1;
	return moved;
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

static ncclResult_t run_p2p(struct op *ops, int nops)
{
	ncclResult_t err = ncclSuccess;
	p2p_self(ops, nops);
	for (int i = 0; i < nops; i++)
		if ((ops[i].kind == K_SEND || ops[i].kind == K_RECV) && ops[i].peer == ops[i].comm->rank &&
		    !ops[i].finished)
			return fail(ops[i].comm, ncclInvalidUsage, "%s to itself (rank %d) without its match in the group",
				    kind_name[ops[i].kind], ops[i].peer);
	uint64_t since = mono_ns();
	int spins = 0;
	for (;;) {
		int left = 0, moved = 0;
		for (int i = 0; i < nops; i++) {
			if ((ops[i].kind != K_SEND && ops[i].kind != K_RECV && ops[i].kind >= 0) || ops[i].finished)
				continue;
			moved |= p2p_step(&ops[i], &err);
			left += !ops[i].finished;
		}
		if (!left)
			return err;
		if (moved) {
			since = mono_ns();
			spins = 0;
			continue;
		}
		if (++spins < 1000)
			continue;
		/* Sleep on the first blocked op's counter. */
		for (int i = 0; i < nops; i++) {
			if (ops[i].finished || (ops[i].kind != K_SEND && ops[i].kind != K_RECV && ops[i].kind >= 0))
				continue;
			ncclComm_t c = ops[i].comm;
			struct pairbox *b = ops[i].kind == K_SEND ? box_of(c, c->rank, ops[i].peer) : box_of(c, ops[i].peer, c->rank);
			_Atomic uint32_t *w = ops[i].kind == K_SEND ? &b->rd : &b->wr;
			uni_futex_wait(w, atomic_load(w), 20);
			ncclResult_t r = wait_check(c, since, kind_name[ops[i].kind < 0 ? K_RECV : ops[i].kind], ops[i].peer);
			if (r != ncclSuccess)
				return r;
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

#define UNI_NCCL_MAX_GROUP 2048
static __thread int t_depth;
static __thread struct op *t_ops;
static __thread int t_nops;
static __thread ncclResult_t t_group_err;

static ncclResult_t execute(struct op *ops, int nops)
{
	/* Compute before the call is charged; the copying is not. */
	uint64_t t0 = uni_shim_vt_charge(), end = t0;
	ncclResult_t r = ncclSuccess;
	int has_p2p = 0;
	uni_shim_quiet_io(1);
	for (int i = 0; i < nops && r == ncclSuccess; i++) {
		if (ops[i].kind == K_SEND || ops[i].kind == K_RECV)
			has_p2p = 1;
		else
			r = run_coll(&ops[i]);
	}
	if (r == ncclSuccess && has_p2p)
		r = run_p2p(ops, nops);
	uni_shim_quiet_io(0);
	if (r == ncclSuccess && uni_shim_simulating()) {
		/* Timing: collectives one after the other; the group's sends
		 * all leave at its start, then its receives complete. */
		uint64_t t = t0;
		for (int i = 0; i < nops; i++) {
			struct op *o = &ops[i];
			if (o->kind == K_SEND || o->kind == K_RECV)
				continue;
			size_t esz = uni_nccl_type_size(o->type);
			uint64_t bytes = (uint64_t)o->count * esz;
			if (o->kind == K_ALLGATHER || o->kind == K_REDSCAT || o->kind == K_ALLTOALL)
				bytes *= (uint64_t)o->comm->nranks;
			t = time_op(o->comm, o->kind, bytes, o->root, -1, t);
		}
		end = t;
		for (int i = 0; i < nops; i++)
			if (ops[i].kind == K_SEND)
				time_op(ops[i].comm, K_SEND, ops[i].count * uni_nccl_type_size(ops[i].type), -1, ops[i].peer, t);
		for (int i = 0; i < nops; i++)
			if (ops[i].kind == K_RECV)
				end = max64(end, time_op(ops[i].comm, K_RECV, ops[i].count * uni_nccl_type_size(ops[i].type), -1,
							 ops[i].peer, t));
		uni_shim_vt_settle(end);
	}
	return r;
}

static ncclResult_t submit(struct op *o)
{
	if (t_depth > 0) {
		if (t_nops == UNI_NCCL_MAX_GROUP)
			return t_group_err = fail(o->comm, ncclInvalidUsage, "more than %d operations in one group",
						  UNI_NCCL_MAX_GROUP);
		if (!t_ops && !(t_ops = calloc(UNI_NCCL_MAX_GROUP, sizeof(*t_ops))))
			return fail(o->comm, ncclSystemError, "out of memory");
		t_ops[t_nops++] = *o;
		return ncclSuccess;
	}
	return execute(o, 1);
}

ncclResult_t pncclGroupStart(void)
{
	t_depth++;
	return ncclSuccess;
}

ncclResult_t pncclGroupEnd(void)
{
	if (t_depth == 0)
		return fail(NULL, ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
	if (--t_depth > 0)
		return ncclSuccess;
	int n = t_nops;
	t_nops = 0;
	ncclResult_t pending = t_group_err;
	t_group_err = ncclSuccess;
	if (pending != ncclSuccess)
		return pending;
	return n ? execute(t_ops, n) : ncclSuccess;
}

/* Collectives ------------------------------------------------------------------- */

#define COLL(fn, k, sb, rb, cnt, ty, rop, rt, need_root)                                        \
	do {                                                                                   \
		ncclResult_t r_ = check_common(comm, fn, ty, rt, need_root);                   \
		if (r_ != ncclSuccess)                                                         \
			return r_;                                                             \
		if ((rop) >= 0 && (r_ = check_redop(comm, fn, rop, ty)) != ncclSuccess)        \
			return r_;                                                             \
		if ((r_ = check_bufs(comm, fn, k, sb, rb, cnt, rt)) != ncclSuccess)            \
			return r_;                                                             \
		(void)stream;                                                                  \
		struct op o_ = {.kind = k, .send = sb, .recv = rb, .count = cnt, .type = ty,   \
				.redop = rop, .root = rt, .peer = -1, .comm = comm};           \
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
	ncclResult_t r = check_common(comm, "ncclSend", datatype, peer, 2);
	if (r == ncclSuccess && count && !sendbuff)
		r = fail(comm, ncclInvalidArgument, "ncclSend: send buffer is NULL");
	if (r == ncclSuccess && count && is_device_ptr(sendbuff))
		r = fail(comm, ncclInvalidUsage, "ncclSend: device buffers are not supported by uniference's NCCL yet");
	if (r != ncclSuccess)
		return r;
	(void)stream;
	struct op o = {.kind = K_SEND, .send = sendbuff, .count = count, .type = datatype, .redop = -1,
		       .root = -1, .peer = peer, .comm = comm};
	return submit(&o);
}

ncclResult_t pncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
		       cudaStream_t stream)
{
	ncclResult_t r = check_common(comm, "ncclRecv", datatype, peer, 2);
	if (r == ncclSuccess && count && !recvbuff)
		r = fail(comm, ncclInvalidArgument, "ncclRecv: receive buffer is NULL");
	if (r == ncclSuccess && count && is_device_ptr(recvbuff))
		r = fail(comm, ncclInvalidUsage, "ncclRecv: device buffers are not supported by uniference's NCCL yet");
	if (r != ncclSuccess)
		return r;
	(void)stream;
	struct op o = {.kind = K_RECV, .recv = recvbuff, .count = count, .type = datatype, .redop = -1,
		       .root = -1, .peer = peer, .comm = comm};
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

ncclResult_t pncclCommWindowRegister(ncclComm_t comm, void *buff, size_t size, ncclWindow_t *win, int winFlags)
{
	(void)buff;
	(void)size;
	(void)winFlags;
	if (!comm_ok(comm) || !win)
		return fail(NULL, ncclInvalidArgument, "ncclCommWindowRegister: invalid argument");
	*win = (ncclWindow_t)comm;
	return ncclSuccess;
}

ncclResult_t pncclCommWindowDeregister(ncclComm_t comm, ncclWindow_t win)
{
	(void)win;
	if (!comm_ok(comm))
		return fail(NULL, ncclInvalidArgument, "ncclCommWindowDeregister: invalid communicator");
	return ncclSuccess;
}

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

ncclResult_t pncclCommInitAll(ncclComm_t *comm, int ndev, const int *devlist)
{
	(void)comm;
	(void)ndev;
	(void)devlist;
	NOT_YET("ncclCommInitAll (several ranks in one process)");
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
ncclResult_t pncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config)
{
	if (!comm_ok(comm) || !newcomm)
		return fail(NULL, ncclInvalidArgument, "ncclCommSplit: invalid communicator or newcomm");
	if (color < 0 && color != NCCL_SPLIT_NOCOLOR)
		return fail(comm, ncclInvalidArgument, "ncclCommSplit: color %d is negative (NCCL_SPLIT_NOCOLOR is -1)",
			    color);
	*newcomm = NULL;
	struct op o = {.kind = K_SPLIT, .type = ncclInt8, .redop = -1, .root = 0, .peer = -1, .comm = comm};
	uni_shim_quiet_io(1);
	ncclResult_t r = agree(comm, &o);
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
	uni_shim_quiet_io(0);
	if (r != ncclSuccess || color == NCCL_SPLIT_NOCOLOR)
		return r;
	ncclUniqueId id;
	memset(&id, 0, sizeof(id));
	struct id_layout *l = (struct id_layout *)id.internal;
	l->magic = ID_MAGIC;
	uint64_t a, b;
	memcpy(&a, comm->key, 8);
	memcpy(&b, comm->key + 8, 8);
	a = mix64(a ^ mix64(comm->seq) ^ mix64((uint64_t)(uint32_t)color << 1));
	b = mix64(b ^ a);
	memcpy(l->key, &a, 8);
	memcpy(l->key + 8, &b, 8);
	int blocking = comm->blocking;
	if (config && config->magic == 0xcafebeef && config->size >= offsetof(ncclConfig_t, cgaClusterSize) &&
	    config->blocking != NCCL_CONFIG_UNDEF_INT)
		blocking = config->blocking != 0;
	return init_rank(newcomm, n, id, me, blocking);
}

ncclResult_t pncclCommShrink(ncclComm_t comm, int *excludeRanksList, int excludeRanksCount, ncclComm_t *newcomm,
			     ncclConfig_t *config, int shrinkFlags)
{
	(void)comm;
	(void)excludeRanksList;
	(void)excludeRanksCount;
	(void)newcomm;
	(void)config;
	(void)shrinkFlags;
	NOT_YET("ncclCommShrink");
}

ncclResult_t pncclCommInitRankScalable(ncclComm_t *newcomm, int nranks, int myrank, int nId, ncclUniqueId *commIds,
				       ncclConfig_t *config)
{
	if (nId == 1 && commIds)
		return pncclCommInitRankConfig(newcomm, nranks, commIds[0], myrank, config);
	NOT_YET("ncclCommInitRankScalable with more than one id");
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

#pragma GCC visibility pop
