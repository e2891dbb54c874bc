/* The session's shared-memory segment: the one channel between the shim
 * (in every rank) and the coordinator unid.
 *
 * Layout, all offsets from the start of the segment, pointer-free so that
 * every process can map it anywhere:
 *
 *   struct uni_shm_hdr                      (one page)
 *   struct uni_rank   ranks[max_ranks]      who is attached
 *   struct uni_conn   conns[max_conns]      TCP connections the ranks opened
 *   struct uni_ring   rings[max_rings]      one SPSC event ring per thread
 *   struct uni_shm_kernel kernels[64]       devices.kernels
 *   struct uni_sched  sched[UNI_SCHED_LOGS] alpha-beta: streams' last
 *                                           scheduled chunks
 *   struct uni_listener listeners[UNI_MAX_LISTENERS]  sockets the ranks
 *                                           listen on
 *   struct uni_ring_hint hints[UNI_MAX_RINGS] records pushed per ring
 *
 * Every ring has exactly one producer (the thread that claimed it) and one
 * consumer (unid). Records are fixed-size (struct uni_ev); a record is
 * published by one release store of the ring's head, so a signal handler
 * that interrupts a producer never sees a half-written ring (the shim's
 * reentrancy guard makes the handler's own calls pass-through).
 *
 * Versioning: a reader checks magic and version first; a segment of another
 * version is refused with a message that names both versions. */
#ifndef UNI_SHM_H
#define UNI_SHM_H

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define UNI_SHM_MAGIC 0x31304d4853494e55ull /* "UNISHM01" little-endian */
#define UNI_SHM_VERSION 26u
/* The longest real time a sleep waits for the session before it ends
 * anyway (a thread that computes for ever without entering the shim), per
 * CPU share: times the world's ranks per CPU of the host where there are
 * more ranks than CPUs (a rank's 10 s of CPU take that much longer). */
#define UNI_HOLD_MAX_NS 10000000000ull
/* Listening sockets the session remembers (struct uni_listener, at
 * uni_shm_hdr.listeners_off). */
#define UNI_MAX_LISTENERS 16384u /* a power of two; older Gloo listens once per pair */

#define UNI_MAX_RANKS 256u
#define UNI_MAX_RINGS 512u
#define UNI_RING_CAP 2048u /* records per ring, power of two */
#define UNI_MAX_CONNS 16384u

/* Event kinds sent from the shim to unid. */
enum uni_ev_kind {
	UNI_EV_NONE = 0,
	UNI_EV_THREAD = 1,     /* a thread claimed this ring; a = tid */
	UNI_EV_CONN_OPEN = 2,  /* conn registered its endpoints (in conns[]) */
	UNI_EV_SEND = 3,       /* bytes written: off, len; t0/t1 call start/end;
	                          simulate: t0 = stamp, b = bytes of the same
	                          Gloo message still to be written after these */
	UNI_EV_RECV = 4,       /* bytes read: off, len */
	UNI_EV_CONN_CLOSE = 5, /* last fd of the conn closed; a = tx, b = rx */
	UNI_EV_DETACH = 6,     /* the rank is exiting normally (atexit); simulate:
	                          t0 = exiting thread's clock, a = its compute, b = its waiting */
	UNI_EV_THREAD_END = 7, /* the thread exits; ring may be reused after this;
	                          simulate: t0, a, b as DETACH, c = 1 for a dispatcher */
	UNI_EV_READ_REQ = 8,   /* simulate: bytes [off, off+len) were read on conn;
	                          t0 = reader's clock; a = request number; unid
	                          answers in the ring's resp_* with the virtual
	                          arrival of the last byte once it is final */
	UNI_EV_COMPUTE = 9,    /* simulate: the thread computed from t0 to t1 of
	                          its clock (charged since it last left the shim,
	                          at least UNI_COMPUTE_MIN_NS); a = its CPU ns */
	UNI_EV_IDLE = 10,      /* simulate: the thread slept (or a timed wait ran
	                          out) from t0 to t1 of its clock (>= UNI_COMPUTE_MIN_NS) */
	UNI_EV_SENT_REQ = 11,  /* simulate: the Gloo message (or blocking write) ending at byte off of
	                          conn's outgoing stream was written and its send
	                          completion signalled; t0 = the waiter's clock,
	                          a = request number; answered like READ_REQ with
	                          the virtual time the write completes (send
	                          completion model, network.send_buffer). With
	                          UNI_EVF_LOCAL the writer found that time itself
	                          (alpha-beta, shim.c): c = it, t1 = the clock
	                          after; no answer */
	/* The event graph for unitrace replay (simulate mode). An event's id is
	 * (tid << 32 | its index among the events of its thread's ring, the
	 * UNI_EV_THREAD being 0). */
	UNI_EV_SIGNAL = 12,    /* the thread handed its time t0 on through object a
	                          (a condvar or mutex stamp, a Gloo buffer completion,
	                          a semaphore post, a channel write, a thread it created,
	                          a Gloo SEND_READY it posted) */
	UNI_EV_TAKE = 13,      /* the thread took a handed-on time: clock t0 before,
	                          t1 the time handed on, a = the SIGNAL's id; its clock
	                          is now max(t0, t1) (flags UNI_EVF_SET: = t1) */
	UNI_EV_DEP = 14,       /* the next SEND's stamp is at least the time of event a
	                          (a Gloo post or the peer's receive notice, read) */
	UNI_EV_OP = 15,        /* the thread began a Gloo operation: the first notice of a
	                          collective, or a send or receive it posted: t0 = its clock,
	                          a = the slot (prefix << 56 | tag << 24, or the user's tag),
	                          b = its call stack (a STRING id, 0: none), c = 1 a receive */
	UNI_EV_STRING = 16,    /* 40 bytes of string conn (an id, per rank): chunk off of
	                          len bytes in all, the bytes in t0, t1, a, b, c */
	UNI_EV_NCCL_COMM = 17, /* the simulated NCCL: the thread joins a communicator:
	                          a, b = its 16-byte key, off = nranks, len = its rank
	                          in it, c = its network node (-1: the process's) */
	UNI_EV_NCCL_OP = 18,   /* the simulated NCCL: one operation of the thread, from
	                          its call (t0) to its completion (t1, virtual): a = the
	                          communicator (key's first 8 bytes), off = count,
	                          len = bytes, conn = rank in it | nranks << 16,
	                          b = root or peer (-1), c = UNI_NCCL_OPF_* flags */
	UNI_EV_DET_WATCH = 19, /* deterministic mode under nic or topology: the thread
	                          waits for byte off of the stream coming in on conn to
	                          leave (unid stops the network there); not an event of
	                          the thread (no record, not counted) */
	UNI_EV_READ_CANCEL = 20, /* simulate: the thread's group read b (a group of
	                          READ_REQs it asked for without waiting) is
	                          dropped, unless answered already; unid answers a
	                          (a request number) once it took this, so no answer
	                          to the group can come after that; no record */
	UNI_EV_WANT = 21,      /* simulate, nic: the thread will read the stream coming
	                          in on conn (a connection of UNI_CONNF_CREDIT) up to
	                          byte off: its bytes hold the network once they
	                          arrive, as a read's would; no record */
	UNI_EV_DELAY = 22,     /* simulate: the thread's next SEND (a transfer of the
	                          simulated NCCL) is stamped at the thread's clock plus
	                          (int64_t)a ns, its clock as unitrace replay counts it
	                          (the protocol's latencies; docs/unitrace.md) */
};

/* 1 for a kind that is a note to unid, not an event of its thread: no
 * index among the thread's events, not in a recorded run (the shim's
 * push, unid's handle). */
static inline int uni_ev_note(uint32_t kind)
{
	return kind == UNI_EV_STRING || kind == UNI_EV_DET_WATCH || kind == UNI_EV_READ_CANCEL ||
	       kind == UNI_EV_WANT;
}

/* UNI_EV_NCCL_OP's c, and the nccl_op trace record's flags: bits 0-3 the
 * operation (1 AllReduce, 2 Broadcast, 3 Reduce, 4 AllGather, 5
 * ReduceScatter, 6 AlltoAll, 7 Gather, 8 Scatter, 9 Send, 10 Recv), 4-6
 * the algorithm (0 none: one rank, 1 ring, 2 tree, 3 chain, 4 direct,
 * 5 point to point, 6 PAT), 7 in a group of several, 8 device buffers, 9-12 the
 * data type (ncclDataType_t). */
#define UNI_NCCL_OPF_ALGO_SHIFT 4
#define UNI_NCCL_OPF_GROUP (1u << 7)
#define UNI_NCCL_OPF_DEV (1u << 8)
#define UNI_NCCL_OPF_TYPE_SHIFT 9
#define UNI_NCCL_OPF_PROTO_SHIFT 13 /* bits 13-14: 1 LL, 2 LL128, 3 Simple (0: one rank) */
/* (1.9) bit 15: timed on the device timeline (CUPTI; its group's start and
 * end are the device's, not the calling thread's clock) */
#define UNI_NCCL_OPF_DEVTL (1u << 15)

/* The name of the simulated NCCL's segment for a communicator whose
 * unique id has key (shm_open's: "/uni-nccl-" and the key in hex; the
 * shim makes it, unid removes one a killed join left behind). */
#define UNI_NCCL_SEG_NAME_LEN (sizeof("/uni-nccl-") + 32)
static inline void uni_nccl_seg_name(const uint8_t key[16], char out[UNI_NCCL_SEG_NAME_LEN])
{
	static const char hex[] = "0123456789abcdef";
	const char *pfx = "/uni-nccl-";
	size_t k = 0;
	while (*pfx)
		out[k++] = *pfx++;
	for (int i = 0; i < 16; i++) {
		out[k++] = hex[key[i] >> 4];
		out[k++] = hex[key[i] & 15];
	}
	out[k] = 0;
}

/* A group read (READ_REQs with the same e.b, the first one's request
 * number): unid answers the first of them to become final and drops the
 * others. At most this many reads in a group. */
#define UNI_READ_GROUP_MAX 64

/* A TAKE's source whose seq has this bit is a position, not an event: the
 * thread's clock before its event seq (without the bit), that is, its
 * clock after the event before that plus what it computed since (t1 minus
 * that clock, in the recorded run). */
#define UNI_SRC_POS 0x80000000u

/* Shorter stretches of compute are charged but not reported one by one. */
#define UNI_COMPUTE_MIN_NS 100000ull

/* Flags of UNI_EV_SEND / UNI_EV_READ_REQ. */
enum uni_ev_flags {
	UNI_EVF_DISPATCHER = 1u << 0, /* issued by a dispatcher thread (Gloo's loop) */
	UNI_EVF_FALLBACK = 1u << 1,   /* stamp from the writer's time: stream not parsed */
	UNI_EVF_NOTIFY = 1u << 2,     /* SEND: whole Gloo notify messages (48-byte preambles) */
	UNI_EVF_CONT = 1u << 3,       /* SEND: continues a message begun by an earlier chunk */
	UNI_EVF_SET = 1u << 4,        /* TAKE: the clock is set (a new thread's start) */
	UNI_EVF_END = 1u << 5,        /* SEND: the last bytes of a Gloo data message */
	UNI_EVF_LOCAL = 1u << 6,      /* READ_REQ: answered by the reader itself from the
	                                 published schedule (uni_sched); t1 = its clock
	                                 after, c = the last byte's arrival; no answer
	                                 (SENT_REQ likewise: c = the completion) */
	UNI_EVF_CUT = 1u << 7,        /* SEND of no bytes at off: the blocking write that
	                                 ended there (its parts said b bytes more were
	                                 to come) stopped short (an error, a signal,
	                                 SO_SNDTIMEO): the rest will not come. No record */
	UNI_EVF_PARTIAL = 1u << 8,    /* READ_REQ of a group: its thread also waits for
	                                 reads it could not ask for in the group (more
	                                 connections than UNI_READ_GROUP_MAX): under
	                                 nic their arrivals hold the network while it
	                                 waits (engine/sim.c reader_waits) */
	/* SEND of Gloo data: c = ring index + 1 of the thread that posted the
	 * message (0: unknown); the nic model holds the network at its send
	 * completion while that thread waits for it. */
};

/* One event, 64 bytes. Times are CLOCK_MONOTONIC ns minus the session
 * epoch (uni_shm_hdr.epoch_mono_ns). */
struct uni_ev {
	uint16_t kind;
	uint16_t flags;
	uint32_t conn; /* index into conns[] */
	uint64_t t0;
	uint64_t t1;
	uint64_t off;
	uint64_t len;
	uint64_t a;
	uint64_t b;
	uint64_t c;
};
_Static_assert(sizeof(struct uni_ev) == 64, "uni_ev is 64 bytes");

/* An endpoint: IPv4 addresses are stored v4-mapped (::ffff:a.b.c.d) so that
 * an AF_INET6 dual-stack socket and an AF_INET socket compare equal. */
struct uni_addr {
	uint8_t ip[16];
	uint16_t port; /* host byte order */
	uint16_t pad[3];
};

/* The address of a simulated NCCL connection end (the shim opens one per
 * peer and channel; unid matches the ends like TCP ones): a unique-local
 * IPv6 prefix, never a real peer ("fd75:6e69", "uni"), the first 8 bytes
 * of the communicator's key, the end's rank, its channel and the
 * communicator's generation; the port is the peer's rank + 1. */
static inline void uni_nccl_addr(const uint8_t key8[8], int rank, int peer, int ch, uint8_t gen,
				 struct uni_addr *out)
{
	*out = (struct uni_addr){.ip = {0xfd, 'u', 'n', 'i'}, .port = (uint16_t)(peer + 1)};
	for (int i = 0; i < 8; i++)
		out->ip[4 + i] = key8[i];
	out->ip[12] = (uint8_t)(rank >> 8);
	out->ip[13] = (uint8_t)rank;
	out->ip[14] = (uint8_t)ch;
	out->ip[15] = gen;
}

/* 1 when ad is such an address: its communicator in *comm (the key's 8
 * bytes), its rank and generation in *rank_gen (rank << 8 | gen); the
 * channel and the peer left out. */
static inline int uni_nccl_addr_rank(const struct uni_addr *ad, uint64_t *comm, uint32_t *rank_gen)
{
	if (ad->ip[0] != 0xfd || ad->ip[1] != 'u' || ad->ip[2] != 'n' || ad->ip[3] != 'i')
		return 0;
	uint64_t k = 0;
	for (int i = 7; i >= 0; i--)
		k = k << 8 | ad->ip[4 + i];
	*comm = k;
	*rank_gen = (uint32_t)ad->ip[12] << 16 | (uint32_t)ad->ip[13] << 8 | ad->ip[15];
	return 1;
}

enum uni_rank_state {
	UNI_RANK_FREE = 0,
	UNI_RANK_LIVE = 1,     /* attached; pid set */
	UNI_RANK_DETACHED = 2, /* exited through exit()/return from main */
	UNI_RANK_DEAD = 3,     /* pid vanished without detaching (unid saw it) */
};

struct uni_rank {
	_Atomic uint32_t state;
	int32_t pid;
	int32_t world_size; /* as the rank's environment said */
	uint32_t pad;
	uint64_t attach_t;          /* ns since epoch */
	_Atomic uint64_t last_t;    /* time of the newest event unid took */
	_Atomic uint64_t events;    /* events unid took from this rank */
	_Atomic uint32_t threads;   /* rings currently claimed */
	uint32_t pad2;
	double slowdown;            /* compute slowdown, set by unid from the config */
	uint8_t reserved[8];
};
_Static_assert(sizeof(struct uni_rank) == 64, "uni_rank is 64 bytes");

enum uni_conn_state {
	UNI_CONN_FREE = 0,
	UNI_CONN_OPEN = 1,       /* registered, peer not known yet */
	UNI_CONN_MATCHED = 2,    /* both ends are ranks: modelled */
	UNI_CONN_UNMODELLED = 3, /* unid gave up on it: the shim stops reporting */
	UNI_CONN_CLOSED = 4,
};

struct uni_conn {
	_Atomic uint32_t state;
	int32_t rank;
	int32_t fd;
	_Atomic int32_t peer_rank; /* -1 until matched */
	_Atomic uint32_t peer_conn;
	uint32_t pad;
	struct uni_addr local;
	struct uni_addr peer;
	/* Gloo receives this end announced (RECV_READY) whose data has not
	 * come yet, and the last one's slot and size: deadlock reports. */
	_Atomic uint32_t rr_outstanding;
	uint32_t rr_len;
	uint64_t rr_slot;
	/* Gloo sends this end posted (SEND_READY) that the peer has not
	 * answered with its receive (RECV_READY), and the latest one's slot
	 * and size: deadlock reports. */
	_Atomic uint32_t sr_waiting;
	uint32_t sr_len;
	uint64_t sr_slot;
	/* nic: bytes of the incoming stream whose arrival is final (they have
	 * left their sender in the network model); written by unid only. */
	_Atomic uint64_t final_off;
	/* nic: the earliest stamp of a Gloo data message this end owes (its
	 * send was posted and the peer's receive announced, but it is not
	 * written yet: Gloo's loop writes it later, on the poster's behalf);
	 * UINT64_MAX: none. Written by the shim; the horizon counts it. */
	_Atomic uint64_t owed;
	/* alpha-beta: this end's outgoing stream's log in sched[] + 1 (0:
	 * none); written by unid only. */
	_Atomic uint32_t sched_log;
	uint32_t pad2;
	/* simulate: the connecting end's clock when it connected (0: an
	 * accepted end, or none) and its CONN_OPEN event: the accepting end
	 * takes that time (a connection is accepted no earlier than made). */
	uint64_t open_vt;
	uint64_t open_src;
	/* simulate: bytes written on this end so far (after their SEND
	 * events went out), and 1 once this end closed; written by the shim
	 * (deterministic mode's reads in turn). */
	_Atomic uint64_t written;
	_Atomic uint32_t wclosed;
	uint32_t pad3;
	/* deterministic mode: bytes of the incoming stream this end has read
	 * (its writer's room in the turn's socket buffer); written by the
	 * shim. */
	_Atomic uint64_t consumed;
	/* UNI_CONNF_*: set by the shim before the end is registered. */
	uint32_t flags;
	/* 1 once the process that opened this end died without detaching
	 * (unid, simulate mode): bytes it has not written never come. */
	_Atomic uint32_t wdead;
	/* deterministic mode: the closer's clock when this end closed (or
	 * its process left the turn); written before wclosed. */
	uint64_t wclosed_vt;
	/* A simulated NCCL connection end (fd -1): its peer's network node
	 * + 1, known when it opens (0: not one, or not known). unid models its
	 * sends from then on, before the peer's end opens (holding the
	 * network at their stamps until then stalled it: a rank still in an
	 * earlier operation waited for bytes the held network never let
	 * arrive). Set before state. */
	int32_t vpeer1;
	/* A simulated NCCL end whose reader meets its peers in real time to
	 * move an operation's data (nic: its unread arrivals do not hold the
	 * network meanwhile, engine/sim.c soft_holds). Written by the shim. */
	_Atomic uint32_t vbusy;
};
_Static_assert(sizeof(struct uni_conn) == 192, "uni_conn is 192 bytes (three cache lines)");

/* uni_conn.flags */
enum {
	/* A connection to or from the rendezvous store (MASTER_PORT) in
	 * deterministic mode: followed in turn like a modelled one, but it
	 * costs nothing (its bytes arrive when written, over no link; a
	 * control plane, as the store is unmodelled without the turn), and a
	 * rank's client may talk to a store its own process hosts. */
	UNI_CONNF_STORE = 1u << 0,
	/* A simulated NCCL connection that carries Send/Recv's flow-control
	 * credits (docs/nccl.md "Flow control"): its reader reads them only
	 * when a send needs one, so under nic an arrival holds the network
	 * only once a read asks for it (or UNI_EV_WANT said it will), and the
	 * trace leaves them out of the consistency check. */
	UNI_CONNF_CREDIT = 1u << 1,
};

enum uni_wait_kind {
	UNI_WAIT_NONE = 0,
	UNI_WAIT_COND = 1,  /* pthread_cond_*wait on wait_obj */
	UNI_WAIT_READ = 2,  /* waiting for unid's answer to a read (or a send completion);
	                       wait_obj = the connection, with UNI_WAIT_OBJ_ROOM: a
	                       blocking write waiting for room (its peer must read) */
	UNI_WAIT_SLEEP = 3, /* a sleep: not blocked */
	UNI_WAIT_POLL = 4,  /* in epoll_wait: an event loop waiting for I/O */
};

#define UNI_WAIT_OBJ_ROOM (1ull << 40)

/* A thread's part in deterministic mode's turn (uni_ring.det_st). */
enum uni_det_st {
	UNI_DET_NONE = 0,    /* not taking part (no ring yet, or ended) */
	UNI_DET_READY = 1,   /* wants the turn at det_t */
	UNI_DET_RUN = 2,     /* has it */
	UNI_DET_BLOCKED = 3, /* waits for a wake-up on det_obj, or its time-out det_t */
	UNI_DET_OUTSIDE = 4, /* in a wait the turn does not model: counts again when it is back */
};

/* nic: what a thread BLOCKED in turn waits for from the network
 * (uni_ring.det_net; shim/det.c "the network in turn"). */
enum uni_det_net {
	UNI_DET_NET_NONE = 0,
	UNI_DET_NET_ANY = 1,    /* more bytes final anywhere (final_seq moved past det_net_seq) */
	UNI_DET_NET_ANSWER = 2, /* unid's answer to its request det_net_seq (resp_seq, resp_t) */
};

enum uni_ring_state {
	UNI_RING_FREE = 0,
	UNI_RING_CLAIMING = 1,
	UNI_RING_LIVE = 2,
};

#define UNI_CACHELINE 64

struct uni_ring {
	_Atomic uint32_t state;
	int32_t rank;
	int32_t tid;
	int32_t pid;
	_Atomic uint32_t prod_waiting; /* futex word: producer sleeps on full */
	/* 1 while the thread counts in the header's hold_waiters: unid takes
	 * it off the count when it frees the ring of a thread killed there. */
	_Atomic uint32_t holding;
	_Atomic uint64_t dropped; /* records lost because unid was gone */
	uint8_t pad1[UNI_CACHELINE - 32];
	_Atomic uint64_t head; /* written by the producer only */
	uint8_t pad2[UNI_CACHELINE - 8];
	_Atomic uint64_t tail; /* written by unid only */
	uint8_t pad3[UNI_CACHELINE - 8];
	/* unid's answer to the producer's last UNI_EV_READ_REQ: resp_t is
	 * written first, then resp_seq (a futex word) is set to the request
	 * number. */
	_Atomic uint32_t resp_seq;
	uint32_t pad4;
	uint64_t resp_t;
	uint8_t pad5[UNI_CACHELINE - 16];
	/* What the producer thread is blocked on now (simulate mode), for
	 * deadlock reports. Written by the producer only; read by unid. */
	_Atomic uint32_t wait_kind;  /* enum uni_wait_kind */
	uint32_t dispatcher;         /* 1: an event loop (Gloo's loop thread) */
	uint64_t wait_obj;           /* condvar address, or conn index */
	uint64_t wait_since;         /* CLOCK_MONOTONIC ns (real) when the wait began */
	uint64_t wait_deadline;      /* real CLOCK_MONOTONIC ns of its time-out, 0 = none */
	uint64_t wait_vt;            /* the thread's virtual clock when it began */
	/* The thread's virtual clock as of its last shim entry or exit: a
	 * lower bound on the stamp of anything it sends next (nic horizon).
	 * UINT64_MAX: an idle event loop, which sends only on others' behalf. */
	_Atomic uint64_t vt_pub;
	/* A thread of the same rank woke this one (signalled the condvar it
	 * waits on) at this virtual time; it has not published its own clock
	 * since. Until it does, the horizon counts it at this time: what it
	 * sends next is stamped no earlier. UINT64_MAX: none. Written by the
	 * waker (a lowering compare-and-swap) and cleared by the thread. */
	_Atomic uint64_t wake_floor;
	/* The virtual deadline of the timed wait it is in (0: none): it runs
	 * again at the latest then. */
	uint64_t wait_vdl;
	/* 1 while the thread is inside Gloo's waitSend: the nic horizon counts
	 * it at the completion time of the sends it posted (sim.c). */
	_Atomic uint32_t wait_sending;
	/* Set by unid to the low 32 bits of wait_since of the sleep it ends
	 * early (nothing else in the session can happen first): the sleeping
	 * thread wakes within a slice and takes its whole sleep. */
	_Atomic uint32_t warp;
	/* The request a thread in UNI_WAIT_READ waits on (its number, the
	 * last of a group; written before wait_kind), and the last request
	 * unid took from the ring (written by unid). Until unid took it, the
	 * horizon counts the thread at its clock: an answer at once may lie
	 * behind the network time (bytes or a completion already final). */
	uint32_t wait_req;
	_Atomic uint32_t req_taken;
	/* The simulated NCCL's timing while its data moves (shim/nccl.c
	 * prog_poll), for a thread in UNI_WAIT_COND. async_tag (0: none) and
	 * async_n: a group read it asked for without waiting (written after
	 * its requests); answered and not taken yet, the horizon counts the
	 * thread at the answer's time. soft_floor (the time + 1, 0: none):
	 * every read of its operation taken, it sends nothing before that
	 * time; the horizon counts it there until soft_since (real ns) is
	 * UNI_NIC_SOFT_STALE_NS old (as an arrival it has not read: a peer
	 * may need the network to move to come). */
	_Atomic uint32_t async_tag;
	uint32_t async_n;
	_Atomic uint64_t soft_floor;
	_Atomic uint64_t soft_since;
	/* Deterministic mode (shim/det.c): the thread's part in the turn.
	 * det_st (enum uni_det_st), det_t (READY: the time it goes on at;
	 * BLOCKED: its time-out, UINT64_MAX none), det_wt (BLOCKED: its
	 * clock when it blocked), det_obj (BLOCKED: what on), det_seq (the
	 * order in which it blocked: wake-ups go first come first served),
	 * det_key (its thread key: ties), det_woken (1: a wake-up, not its
	 * time-out, ended its block; det_src: its waker's SIGNAL), det_word
	 * (a futex word bumped when it
	 * is given the turn). All under the header's det_lock. */
	_Atomic uint32_t det_st;
	_Atomic uint32_t det_word;
	uint32_t det_woken;
	/* nic (BLOCKED): what of the network it waits for (enum
	 * uni_det_net), and det_net_seq: the final_seq it looked at (ANY),
	 * the request it waits on (ANSWER); det_net_gen: the header's
	 * det_sync_req then (a request unid may not have drained yet). */
	uint32_t det_net;
	uint64_t det_t, det_wt, det_obj, det_seq, det_key;
	uint64_t det_src; /* the waker's SIGNAL event (its id), 0: none */
	uint32_t det_net_seq, det_net_gen;
	/* The simulated NCCL: what the thread waits for in an NCCL call (its
	 * communicator and rank, the peers it waits on), for deadlock
	 * reports; "" when not in such a wait. Written by the thread (text
	 * first, then wait_since as the wait begins); a thread waiting here
	 * counts as blocked for the deadlock detector whatever its
	 * wait_kind (a join waits with none: the horizon keeps counting it
	 * at its clock). */
	char wait_what[216];
	uint64_t wait_nccl; /* the communicator (its key's first 8 bytes) */
	char stack[1536];            /* its native stack, captured once it waited 1 s */
	struct uni_ev ev[UNI_RING_CAP];
};

struct uni_shm_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint64_t total_size;
	char session[48];
	int32_t daemon_pid;
	uint32_t mode;
	int32_t master_port; /* rendezvous port not to model, 0 = from env */
	uint32_t strict;     /* 1: a rank that cannot attach stops */
	uint64_t epoch_mono_ns;
	uint64_t epoch_real_ns;
	uint32_t max_ranks, max_rings, ring_cap, max_conns;
	uint64_t ranks_off, conns_off, rings_off;
	_Atomic uint64_t heartbeat;      /* unid bumps it every loop */
	_Atomic uint32_t doorbell;       /* futex word unid sleeps on */
	_Atomic uint32_t daemon_sleeping;
	_Atomic uint32_t stop;           /* set by unictl stop */
	_Atomic uint32_t ready;          /* set by unid once serving */
	_Atomic uint32_t next_conn;      /* conns[] allocation cursor */
	uint32_t horizon;                /* 1: the network model needs the horizon (nic):
	                                    ranks publish wake floors */
	_Atomic uint64_t events_total;
	_Atomic uint64_t dropped_total;
	_Atomic uint32_t deadlock;       /* set by unid when it found one */
	_Atomic uint32_t final_seq;      /* nic: bumped (futex wake) when a final_off grows */
	_Atomic uint32_t horizon_ring;   /* nic: ring index + 1 of the thread that holds the
	                                    horizon (0: none); it rings the doorbell when
	                                    it publishes a later clock */
	uint32_t stacks;                 /* 1: ranks record call stacks (trace.stacks) */
	_Atomic uint32_t handoffs;       /* nic: bumped after a thread lowers another's
	                                    hold (a wake floor, a new thread's ring) and
	                                    before it raises its own: unid scans the
	                                    horizon again when it moved during a scan */
	uint32_t nccl_algo;              /* nccl.algorithm (enum uni_nccl_algo) */
	uint32_t nccl_proto;             /* nccl.protocol (enum uni_nccl_proto) */
	uint32_t nccl_ppn;               /* nccl.ranks_per_node */
	uint32_t nccl_intra;             /* nccl.intra_node (enum uni_nccl_intra) */
	uint32_t nkernels;               /* devices.kernels entries at kernels_off */
	uint64_t kernels_off;
	uint64_t net_latency_ns;         /* network.default: the simulated NCCL's */
	double net_bandwidth_bps;        /* choice of algorithm by size */
	uint64_t sched_off;              /* alpha-beta: sched[UNI_SCHED_LOGS] (0: none) */
	uint64_t listeners_off;          /* listeners[UNI_MAX_LISTENERS] */
	uint64_t hints_off;              /* hints[UNI_MAX_RINGS] */
	uint64_t send_buffer;            /* network.send_buffer (UINT64_MAX: unlimited) */
	_Atomic uint64_t warps;          /* sleeps unid ended early (uni_ring.warp) ... */
	_Atomic uint64_t warp_saved_ns;  /* ... and the real time they had left */
	/* Sleeps that wait for the session (simulate mode, docs/simulate.md
	 * "Sleeps and connects in causal order"): a sleep whose real time is
	 * up ends once no rank thread can still act before its virtual end.
	 * A sleeper counts itself in hold_waiters while it waits, takes a
	 * number from hold_req and rings the doorbell; unid computes the
	 * horizon every loop while anybody waits and, when it changed or a
	 * new number was taken, stores it in hold_h (0: not known yet, not
	 * every rank attached), the last number taken in hold_ack, and bumps
	 * hold_seq (a futex word). */
	_Atomic uint64_t hold_h;
	/* The horizon without the threads of rank hold_rank (the rank whose
	 * threads hold hold_h): what that rank's sleepers wait for. */
	_Atomic uint64_t hold_hx;
	_Atomic uint32_t hold_rank;
	_Atomic uint32_t hold_seq;
	_Atomic uint32_t hold_waiters;
	_Atomic uint32_t hold_req;
	_Atomic uint32_t hold_ack;
	_Atomic uint64_t holds;          /* sleeps that waited for the session ... */
	_Atomic uint64_t hold_ns;        /* ... the real time they waited ... */
	_Atomic uint64_t holds_given_up; /* ... and those that gave up after hold_max_ns */
	_Atomic uint64_t hold_max_ns;    /* UNI_HOLD_MAX_NS (unid), times the CPU share (the ranks raise it) */
	/* Where the simulation stood still in wall time (unid; unirun says
	 * so at the end): the horizon, UNI_NIC_OUTSIDE_NS each time, until
	 * threads that held it and were not running were left out ... */
	_Atomic uint64_t stalls;
	_Atomic uint64_t stall_ns;       /* ... the real time they stood still in all */
	/* ... and (nic, at the session's end) arrivals the network went past
	 * unread after the soft hold's 200 ms and after 2 s (stale). */
	_Atomic uint64_t soft_released;
	_Atomic uint64_t stale_released;
	/* --compute-from (docs/simulate.md "Compute from a trace"): */
	_Atomic uint64_t cf_replayed;    /* compute stretches taken from the trace */
	_Atomic uint64_t cf_followed;    /* threads that followed the recorded run to their end */
	_Atomic uint64_t cf_diverged;    /* threads that left it (their compute measured from there) */
	_Atomic uint64_t cf_unknown;     /* threads the recorded run did not have */
	char compute_from[512];          /* the trace, "" without */
	/* Deterministic mode (--deterministic; shim/det.c, docs/simulate.md
	 * "Deterministic mode"): one rank thread of the session runs at a
	 * time, the one with the least (clock, rank, key). det_owner is its
	 * ring + 1 (0: none); det_lock guards the turn's fields here and in
	 * the rings; det_hi is one past the highest ring that took part. */
	uint32_t det;
	_Atomic uint32_t det_lock;
	_Atomic uint32_t det_owner;
	_Atomic uint32_t det_hi;
	_Atomic uint32_t det_off;        /* 1: given up for this session (uni_det_abandon) */
	/* nic under the turn: the network moves only when a thread of the
	 * turn asks (under det_lock): det_sync_h the time to move it toward,
	 * det_sync_req its number (then the doorbell); unid drains the rings,
	 * moves the network one step (to det_sync_h, or the first flow that
	 * ends or send that completes before it), answers what became final,
	 * publishes det_sync_fin (the time up to which the network is final)
	 * and sets det_sync_ack to the number (futex wake). */
	_Atomic uint32_t det_sync_req, det_sync_ack;
	uint64_t det_sync_h;
	_Atomic uint64_t det_sync_fin;
	_Atomic uint64_t det_sync_now;   /* the network's time after the last step */
	_Atomic uint64_t det_syncs;      /* steps asked for (the summary) */
	uint64_t det_seq;
	_Atomic uint64_t det_turns;      /* turns handed from one thread to another */
	_Atomic uint64_t det_outside;    /* turns given up for a wait the turn does not model */
	_Atomic uint64_t det_steals;     /* turns taken from a thread blocked outside the shim */
	_Atomic uint32_t rank_ends;      /* bumped by unid as a rank ends (exits or dies): the
	                                    turn's blocked readers look again (shim/det.c) */
	char deadlock_report[512];       /* where unid wrote the report */
	char trace_path[512];
	char config_path[512];
};
_Static_assert(sizeof(struct uni_shm_hdr) <= 4096, "the header fits its page");

/* Sockets the ranks listen on, with the virtual time they began to: a
 * connection is not made before its listener listens (the shim moves a
 * connector's clock on to that time). listeners[UNI_MAX_LISTENERS] at
 * listeners_off. */
struct uni_listener {
	_Atomic uint32_t state; /* 0 never used, 1 being written, 2 live, 3 closed */
	int32_t pid;
	int32_t fd;
	uint32_t pad;
	struct uni_addr addr; /* :: (or 0.0.0.0, mapped) for any address */
	uint64_t vt;
	uint64_t src; /* the listener's SIGNAL event: a connector's take names it */
	/* Connections the session's ranks made to it, and accepted from it
	 * (deterministic mode: a listener is readable in turn while one is
	 * waiting, whatever the host's TCP has got to). */
	_Atomic uint32_t connects, accepts;
};

/* How many records each ring's producers pushed in all (never reset): one
 * per cache line, side by side, so that unid finds the rings with
 * something new by reading this array instead of every ring (the rings lie
 * 130 kB apart: visiting 512 of them at every loop was 12% of a 64-rank
 * run's samples). pushed[i] moves after ring i's head. */
struct uni_ring_hint {
	_Atomic uint64_t pushed;
	uint8_t pad[UNI_CACHELINE - 8];
};

/* devices.kernels, for the device timeline of the simulated NCCL. */
#define UNI_SHM_MAX_KERNELS 64
struct uni_shm_kernel {
	char match[128]; /* glob */
	double slowdown;
};

/* Alpha-beta: the chunks unid scheduled last on a connection's outgoing
 * stream. An arrival is final once its chunk is scheduled, so a reader
 * that finds the chunk of the last byte it read here knows its arrival
 * without asking unid (UNI_EVF_LOCAL). A pool of logs; unid gives a stream
 * one (uni_conn.sched_log of the writing end) at its first chunk, while
 * any are left. unid writes a chunk as a seqlock (seq 0, the fields, seq =
 * its index + 1), then n; chunks are published in byte order. Latency and
 * bandwidth are the link's, the same for every chunk of the stream. */
#define UNI_SCHED_LOGS 512u
#define UNI_SCHED_LOG 1024u /* chunks a log holds: a reader further behind asks unid */
struct uni_sched_chunk {
	_Atomic uint64_t seq;
	_Atomic uint64_t off, len, start;
};
struct uni_sched {
	_Atomic uint64_t n;  /* chunks published */
	uint64_t latency;    /* set before the first chunk is published */
	double ns_per_byte;
	uint64_t pad[5];
	struct uni_sched_chunk ch[UNI_SCHED_LOG];
};

/* Alpha-beta: when byte `byte` of a chunk that starts leaving at `start`
 * arrives (progressive arrival; engine/sim.c and the shim both use this). */
static inline uint64_t uni_ab_arrival(uint64_t start, uint64_t off, double ns_per_byte, uint64_t latency,
				      uint64_t byte)
{
	double k = (double)(byte - off + 1);
	return start + (uint64_t)llround(k * ns_per_byte) + latency;
}

/* unid: publishes the stream's next chunk (in byte order) in its log. */
static inline void uni_sched_publish(struct uni_sched *sd, uint64_t off, uint64_t len, uint64_t start)
{
	uint64_t n = atomic_load_explicit(&sd->n, memory_order_relaxed);
	struct uni_sched_chunk *k = &sd->ch[n % UNI_SCHED_LOG];
	/* Release stores: a reader that sees a new field sees seq 0 (or
	 * later) when it looks at seq again. No fences (TSan knows none). */
	atomic_store_explicit(&k->seq, 0, memory_order_relaxed);
	atomic_store_explicit(&k->off, off, memory_order_release);
	atomic_store_explicit(&k->len, len, memory_order_release);
	atomic_store_explicit(&k->start, start, memory_order_release);
	atomic_store_explicit(&k->seq, n + 1, memory_order_release);
	atomic_store_explicit(&sd->n, n + 1, memory_order_release);
}

/* A reader: the bytes b.. of b's chunk up to last (chunks are in byte
 * order: a binary search over the log's window): 1, *t the arrival of the
 * last of them (arrivals grow within a chunk, not across
 * chunks: a Gloo notice is sent when posted, ahead of data written before
 * it) and *end the chunk's end (the first byte after it). */
static inline int uni_sched_span(struct uni_sched *sd, uint64_t b, uint64_t last, uint64_t *t, uint64_t *end)
{
	uint64_t n = atomic_load_explicit(&sd->n, memory_order_acquire);
	uint64_t lo = n > UNI_SCHED_LOG ? n - UNI_SCHED_LOG : 0, hi = n;
	while (lo < hi) {
		uint64_t i = lo + (hi - lo) / 2;
		struct uni_sched_chunk *k = &sd->ch[i % UNI_SCHED_LOG];
		uint64_t seq = atomic_load_explicit(&k->seq, memory_order_acquire);
		uint64_t off = atomic_load_explicit(&k->off, memory_order_acquire);
		uint64_t len = atomic_load_explicit(&k->len, memory_order_acquire);
		uint64_t start = atomic_load_explicit(&k->start, memory_order_acquire);
		if (seq != i + 1 || atomic_load_explicit(&k->seq, memory_order_relaxed) != seq)
			return 0;
		if (b < off) {
			hi = i;
		} else if (b >= off + len) {
			lo = i + 1;
		} else {
			*end = off + len;
			*t = uni_ab_arrival(start, off, sd->ns_per_byte, sd->latency, last < off + len ? last : off + len - 1);
			return 1;
		}
	}
	return 0;
}

/* A reader: the arrival of byte b of the stream, 1 and *t when the log
 * holds its chunk; 0 when it is not scheduled yet or older than the log
 * (or was overwritten while read): then unid answers. */
static inline int uni_sched_find(struct uni_sched *sd, uint64_t b, uint64_t *t)
{
	uint64_t end;
	return uni_sched_span(sd, b, b, t, &end);
}

static inline size_t uni_shm_layout(uint64_t *ranks_off, uint64_t *conns_off, uint64_t *rings_off,
				    uint64_t *kernels_off, uint64_t *sched_off, uint64_t *listeners_off,
				    uint64_t *hints_off)
{
	size_t off = 4096;
	*ranks_off = off;
	off += UNI_MAX_RANKS * sizeof(struct uni_rank);
	*conns_off = off;
	off += UNI_MAX_CONNS * sizeof(struct uni_conn);
	off = (off + 4095) & ~(size_t)4095;
	*rings_off = off;
	off += UNI_MAX_RINGS * sizeof(struct uni_ring);
	*kernels_off = off;
	off += UNI_SHM_MAX_KERNELS * sizeof(struct uni_shm_kernel);
	off = (off + 4095) & ~(size_t)4095;
	*sched_off = off;
	off += UNI_SCHED_LOGS * sizeof(struct uni_sched);
	off = (off + 4095) & ~(size_t)4095;
	*listeners_off = off;
	off += UNI_MAX_LISTENERS * sizeof(struct uni_listener);
	off = (off + 4095) & ~(size_t)4095;
	*hints_off = off;
	off += UNI_MAX_RINGS * sizeof(struct uni_ring_hint);
	return (off + 4095) & ~(size_t)4095;
}

static inline struct uni_rank *uni_shm_rank(struct uni_shm_hdr *h, uint32_t i)
{
	return (struct uni_rank *)((char *)h + h->ranks_off) + i;
}
static inline struct uni_conn *uni_shm_conn(struct uni_shm_hdr *h, uint32_t i)
{
	return (struct uni_conn *)((char *)h + h->conns_off) + i;
}
static inline struct uni_ring *uni_shm_ring(struct uni_shm_hdr *h, uint32_t i)
{
	return (struct uni_ring *)((char *)h + h->rings_off) + i;
}
static inline struct uni_shm_kernel *uni_shm_kernels(struct uni_shm_hdr *h)
{
	return (struct uni_shm_kernel *)((char *)h + h->kernels_off);
}
static inline struct uni_sched *uni_shm_sched(struct uni_shm_hdr *h, uint32_t i)
{
	return (struct uni_sched *)((char *)h + h->sched_off) + i;
}
static inline struct uni_listener *uni_shm_listener(struct uni_shm_hdr *h, uint32_t i)
{
	return (struct uni_listener *)((char *)h + h->listeners_off) + i;
}
static inline struct uni_ring_hint *uni_shm_hint(struct uni_shm_hdr *h, uint32_t i)
{
	return (struct uni_ring_hint *)((char *)h + h->hints_off) + i;
}

/* Ring operations ------------------------------------------------------ */

/* Producer: appends one record if there is room. Returns 0, or -EAGAIN when
 * the ring is full (the caller decides whether to wait). Never blocks. */
static inline int uni_ring_push(struct uni_ring *r, const struct uni_ev *e)
{
	uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (h - t >= UNI_RING_CAP)
		return -11; /* -EAGAIN */
	r->ev[h & (UNI_RING_CAP - 1)] = *e;
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return 0;
}

/* Records waiting in the ring. */
static inline uint64_t uni_ring_used(struct uni_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) -
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

/* Consumer: copies up to max records out, returns how many. */
static inline uint32_t uni_ring_pop(struct uni_ring *r, struct uni_ev *out, uint32_t max)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t n = 0;
	while (t + n < h && n < max) {
		out[n] = r->ev[(t + n) & (UNI_RING_CAP - 1)];
		n++;
	}
	/* (Not written when nothing was taken: the producer reads it.) */
	if (n)
		atomic_store_explicit(&r->tail, t + n, memory_order_release);
	return n;
}

/* Process-shared futex helpers (engine/shm.c). Both preserve errno.
 * uni_futex_wait returns 0 when woken or the value differed, -ETIMEDOUT. */
int uni_futex_wait(_Atomic uint32_t *word, uint32_t expect, uint32_t timeout_ms);
void uni_futex_wake(_Atomic uint32_t *word, int n);
/* Test hook: with UNI_DET_FUZZ=US set, one call in four sleeps a random
 * 0 to US microseconds of the host's time (deterministic mode's runs must
 * not depend on the host's timing: the shim calls it as a thread gets the
 * turn, unid before it drains the rings). Nothing without it. */
void uni_fuzz(void);

/* True when process pid is gone: no such process, or a zombie (dead but
 * not reaped: kill(pid, 0) still succeeds on those). Preserves errno. */
int uni_pid_dead(int pid);

/* The scheduler state letter of a /proc/.../stat file ('R', 'S', 'Z', ...),
 * or 0 when it cannot be read. Preserves errno. */
char uni_proc_state(const char *stat_path);
/* The same, and the task's CPU time (utime + stime, clock ticks) in
 * *cpu_ticks (0 when unreadable). */
char uni_proc_stat(const char *stat_path, uint64_t *cpu_ticks);

/* Segment names and opening (engine/shm.c) ----------------------------- */

/* "/uni.<session>" into buf (size >= 64). */
void uni_shm_name(const char *session, char *buf, size_t len);
/* Lock file path "/dev/shm/uni.<session>.lock". */
void uni_lock_path(const char *session, char *buf, size_t len);
/* The simulated NCCL's send/recv message number n from rank `from` to
 * rank `to` kept outside the pair's ring of the communicator whose
 * segment is seg (uni_nccl_seg_name): "<seg>-<from>-<to>-<n>"; and the
 * removal of those still there that go to rank `to` (-1: to any), how
 * many it removed (shim/nccl.c, unid's clean-up). */
void uni_nccl_spill_name(const char *seg, int from, int to, uint64_t n, char *out, size_t len);
size_t uni_nccl_spills_remove(const char *seg, int to);

/* Maps an existing session read-write. Returns the header or NULL with a
 * one-line reason in err (errno preserved). Checks magic, version, size. */
struct uni_shm_hdr *uni_shm_open(const char *session, char *err, size_t errlen);
void uni_shm_close(struct uni_shm_hdr *h);

#endif
