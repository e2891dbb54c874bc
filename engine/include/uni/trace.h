/* The trace file: what unid writes and every tool reads (docs/trace-format.md).
 *
 *   struct uni_trace_hdr   256 bytes, once
 *   struct uni_trec        64 bytes each, until the end of the file
 *
 * All integers little-endian. Records are appended whole with one write and
 * the file is flushed at least every 100 ms, so a reader may open it while a
 * run goes on; a file that ends inside a record (a killed daemon) is read up
 * to the last whole record. A reader refuses a major version it does not
 * know and skips record kinds it does not know (minor additions). */
#ifndef UNI_TRACE_H
#define UNI_TRACE_H

#include <stdint.h>
#include <stdio.h>

#define UNI_TRACE_MAGIC "UNITRACE"
#define UNI_TRACE_VERSION_MAJOR 1u
#define UNI_TRACE_VERSION_MINOR 9u
#define UNI_TRACE_HDR_SIZE 256u
#define UNI_TRACE_REC_SIZE 64u

struct uni_trace_hdr {
	char magic[8];          /* "UNITRACE" */
	uint16_t version_major;
	uint16_t version_minor;
	uint32_t hdr_size;      /* 256 */
	uint32_t rec_size;      /* 64 */
	uint32_t mode;          /* enum uni_mode */
	uint64_t epoch_real_ns; /* CLOCK_REALTIME at session start */
	uint64_t epoch_mono_ns; /* CLOCK_MONOTONIC at session start */
	char session[48];
	char config_path[128];
	uint8_t reserved[40];
};
_Static_assert(sizeof(struct uni_trace_hdr) == 256, "trace header is 256 bytes");

/* UNI_TR_DEADLOCK's off for a blocking write waiting for room (1.3). */
#define UNI_TR_WAIT_ROOM 5u
/* UNI_TR_DEADLOCK's off for a wait in a call of the simulated NCCL (1.6;
 * a = the communicator, as in nccl_op records). */
#define UNI_TR_WAIT_NCCL 6u

enum uni_trec_kind {
	UNI_TR_SESSION_START = 1, /* a = unid pid */
	UNI_TR_RANK_ATTACH = 2,   /* rank; a = pid, len = world size */
	UNI_TR_RANK_EXIT = 3,     /* rank; flags: UNI_TRF_CLEAN or UNI_TRF_DIED; a = pid;
	                             t0 = end (simulate: the exiting thread's virtual clock);
	                             simulate, clean exit: off = that thread's compute,
	                             len = its waiting (virtual ns) */
	UNI_TR_THREAD = 4,        /* rank, tid: a thread began sending events; (1.5) off = its
	                             key (uni/compute_from.h; 0: none) */
	UNI_TR_CONN = 5,          /* rank, conn, peer (rank), a = peer conn,
	                             off = local port, len = peer port */
	UNI_TR_SEND = 6,          /* rank, tid, conn, peer, t0/t1, off, len */
	UNI_TR_RECV = 7,          /* rank, tid, conn, peer, t0/t1, off, len */
	UNI_TR_CONN_CLOSE = 8,    /* rank, conn, peer; a = bytes sent, len = bytes received */
	UNI_TR_SESSION_END = 9,   /* a = events, len = events dropped, off = unmodelled conns */
	UNI_TR_THREAD_END = 10,   /* (1.1) rank, tid; t0 = its clock at exit; off = compute,
	                             len = waiting (virtual ns); flags 1 = dispatcher */
	UNI_TR_DEADLOCK = 11,     /* (1.1) one per blocked thread when unid found a deadlock:
	                             rank, tid, t0 = its virtual clock when it began waiting,
	                             off = enum uni_wait_kind, or UNI_TR_WAIT_ROOM (a blocking
	                             write whose peer does not read), or UNI_TR_WAIT_NCCL (1.6:
	                             in a call of the simulated NCCL, a = its communicator),
	                             a = condvar address or conn,
	                             len = real ns it had waited; peer = the rank it waits
	                             for data (or room) from (-1 unknown) */
	UNI_TR_COMPUTE = 12,      /* (1.2) simulate: rank, tid computed from t0 to t1 (virtual,
	                             CPU time x slowdown); off = the CPU ns it took here. Only
	                             stretches of at least 100 us are recorded */
	UNI_TR_IDLE = 13,         /* (1.2) simulate: rank, tid slept (or a timed wait ran out)
	                             from t0 to t1 (virtual); stretches of at least 100 us */
	/* (1.3) simulate: the event graph that unitrace replay re-times. */
	UNI_TR_SIGNAL = 14,       /* rank, tid handed its time t0 on (a = object) */
	UNI_TR_TAKE = 15,         /* rank, tid took a time: t0 its clock before, t1 the time
	                             taken, a = the id (tid << 32 | seq) of the SIGNAL; flags
	                             UNI_TRF_SET: the clock was set to t1 (a new thread) */
	UNI_TR_DEP = 16,          /* the thread's next send is stamped no earlier than the
	                             event a (a Gloo post, the peer's receive notice) */
	UNI_TR_SENT = 17,         /* a Gloo send completed: conn, off = the message's end,
	                             t0 the waiter's clock before, t1 after */
	UNI_TR_OP = 18,           /* (1.3) simulate: rank, tid began a Gloo operation at t0
	                             (a collective's first notice, or a send/recv it posted);
	                             a = the slot: prefix << 56 (1 gather, 2 allgather, 3 reduce,
	                             4 allreduce, 5 scatter, 6 broadcast, 7 barrier, 8 alltoall;
	                             0: point to point, the rest the user's tag) | tag << 24;
	                             off = its call stack (a STRING id, 0: none); flags 1: a
	                             receive */
	UNI_TR_STRING = 19,       /* (1.3) 40 bytes of string conn of rank: chunk seq, peer = the
	                             string's length, the bytes in t0, t1, off, len, a */
	UNI_TR_NCCL_OP = 20,      /* (1.4) simulate: rank, tid ran an operation of the simulated
	                             NCCL from t0 (its call) to t1 (its part done): a = the
	                             communicator, off = count, len = bytes, conn = its rank
	                             in the communicator | nranks << 16, peer = root or peer
	                             (-1), flags = UNI_NCCL_OPF_* (shm.h); (1.9) the
	                             operation's first event follows a COMPUTE of its
	                             thread (zero-long if need be) that ends at t0 */
	UNI_TR_NCCL_COMM = 21,    /* (1.4) rank, tid joined communicator a (its key's first
	                             8 bytes): off = nranks, len = its rank in it, peer = its
	                             network node (-1: the process's rank) */
	UNI_TR_COMPUTE_FROM = 22, /* (1.5) the session replayed the compute of another trace
	                             (--compute-from; before session_end): a = compute stretches
	                             taken from it, off = threads that followed the recorded
	                             run to their end, len = threads that left it (measured from
	                             there), conn = threads it did not have */
	UNI_TR_DELAY = 23,        /* (1.8) simulate: rank, tid's next send (a transfer of the
	                             simulated NCCL) was stamped at the thread's clock plus
	                             (int64_t)a ns: its protocol's latencies, for unitrace
	                             replay; t0 = t1 = the send's stamp */
};

enum uni_trec_flags {
	UNI_TRF_CLEAN = 1u << 0, /* RANK_EXIT: the rank detached itself */
	UNI_TRF_DIED = 1u << 1,  /* RANK_EXIT: the process vanished */
	UNI_TRF_STORE = 1u << 0, /* CONN: the rendezvous store's (deterministic mode follows it
	                            as a connection that costs nothing: no link, no time) */
	UNI_TRF_CREDIT = 1u << 1, /* CONN: the simulated NCCL's flow-control credits (read only
	                             when a send needs one; left out of the totals and checks) */
	/* SEND and RECV (the event flags of shm.h, UNI_EVF_*): */
	UNI_TRF_DISPATCHER = 1u << 0, /* by a dispatcher thread (Gloo's loop) */
	UNI_TRF_FALLBACK = 1u << 1,   /* stamped from the writer's clock: Gloo stream not parsed */
	UNI_TRF_NOTIFY = 1u << 2,     /* SEND: Gloo notices (48-byte preambles only) */
	UNI_TRF_CONT = 1u << 3,       /* SEND: continues a message an earlier chunk began */
	UNI_TRF_SET = 1u << 4,        /* TAKE: sets the clock */
	UNI_TRF_END = 1u << 5,        /* SEND: ends a Gloo data message */
};

/* One record. t0/t1 are ns since the session epoch: in record mode real
 * (CLOCK_MONOTONIC) time; in simulate mode virtual time. */
struct uni_trec {
	uint16_t kind;
	uint16_t flags;
	int32_t rank;
	int32_t tid;
	int32_t peer;
	uint32_t conn;
	uint32_t seq;   /* (1.3) simulate: the event's index among its thread's events
	                   (THREAD = 0); with tid its id for SIGNAL/TAKE/DEP */
	uint64_t t0;
	uint64_t t1;
	uint64_t off;
	uint64_t len;
	uint64_t a;
};
_Static_assert(sizeof(struct uni_trec) == 64, "trace record is 64 bytes");

/* Whether a record's seq is the index of the event of its thread that
 * made it (simulate mode; a string's seq is its chunk, a deadlock's or a
 * connection's none): --compute-from's table and unitrace diff go by it. */
static inline int uni_trec_kind_indexed(uint16_t kind)
{
	switch (kind) {
	case UNI_TR_THREAD:
	case UNI_TR_SEND:
	case UNI_TR_RECV:
	case UNI_TR_THREAD_END:
	case UNI_TR_COMPUTE:
	case UNI_TR_IDLE:
	case UNI_TR_SIGNAL:
	case UNI_TR_TAKE:
	case UNI_TR_DEP:
	case UNI_TR_SENT:
	case UNI_TR_OP:
	case UNI_TR_NCCL_OP:
	case UNI_TR_NCCL_COMM:
	case UNI_TR_DELAY:
		return 1;
	default:
		return 0;
	}
}

/* Name of a record kind ("send", "recv", ...), "?" when unknown. */
const char *uni_trec_kind_name(uint16_t kind);

/* Reader (engine/trace.c) ---------------------------------------------- */

struct uni_trace_reader {
	FILE *f;
	struct uni_trace_hdr hdr;
	uint64_t nrec;       /* records returned so far */
	int truncated;       /* the file ended inside a record */
	char err[256];
};

/* Opens and checks the header. Returns 0, or -1 with a one-line reason in
 * r->err that names the file. */
int uni_trace_open(struct uni_trace_reader *r, const char *path);
/* Next record: 1 when one was read, 0 at the end (r->truncated says whether
 * a partial record was left), -1 on a read error (r->err). */
int uni_trace_next(struct uni_trace_reader *r, struct uni_trec *rec);
void uni_trace_close(struct uni_trace_reader *r);

#endif
