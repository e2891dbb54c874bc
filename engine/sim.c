/* Simulate mode: streams, the alpha-beta model, read finality.
 *
 * Each connection end that writes has a stream: the bytes it wrote, as
 * chunks in stream order (offsets), each scheduled on the link of its
 * (rank -> peer) pair. Alpha-beta: a chunk starts when it is stamped or when
 * the stream's previous chunk has left, whichever is later (FIFO); byte k of
 * a chunk (1-based) arrives at start + k * 8 / bandwidth + latency
 * (progressive arrival). A chunk is scheduled only when every earlier byte
 * of its stream is, so chunks that reach unid out of order (written by two
 * threads, drained from two rings) are held until the gap closes: the result
 * does not depend on the order unid drains rings.
 *
 * Under alpha-beta an arrival is final once scheduled (no other sender can
 * change it), so a read is answered as soon as the chunk holding its last
 * byte is scheduled. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nic.h"
#include "sim.h"
#include "uni/common.h"

struct chunk {
	uint64_t off, len;
	uint64_t stamp;   /* its message's stamp (the writer's clock, also under nic for a late flow) */
	uint64_t start;   /* alpha-beta: first bit on the wire */
	double ns_per_byte;
	uint64_t latency;
	struct nic_flow *nf; /* nic: its flow (a whole Gloo message) */
	uint64_t flow_off;   /* nic: where the chunk starts within the flow */
};

struct waiter {
	struct uni_op op;
	uint64_t end; /* byte offset (exclusive) the read needs */
	int sent;     /* a SENT_REQ (on the writer's own stream), not a read */
};

/* nic: a send whose completion the network must not pass while its poster
 * waits for it (sim.c, send completion). */
struct watch {
	uint32_t ring;      /* the poster's ring */
	uint32_t stream;    /* the writer's connection end */
	uint64_t end;       /* the message ends at this stream offset */
	uint64_t t;         /* its completion, once reached */
	uint64_t reached_real;
	int reached;
};

struct stream {
	uint64_t next_off; /* bytes scheduled */
	uint64_t free_at;  /* when the last scheduled chunk has left */
	struct chunk *ch;
	uint32_t nch, capch, headch;
	struct uni_op *held; /* out-of-order sends */
	uint32_t nheld, capheld;
	struct waiter *wait;
	uint32_t nwait, capwait;
	struct nic_flow *last_data; /* nic: the last data flow (FIFO) */
	uint64_t last_lat;          /* nic: its latency */
	uint64_t msg_left;          /* nic: bytes of last_data's message not seen yet */
	uint64_t msg_seen;          /* nic: bytes of it seen */
	uint64_t msg_stamp;         /* nic: its writer's stamp (the flow may start later) */
	int listed;                 /* in S.waiting_streams */
	int active;                 /* nic: in S.act (bytes not all final yet) */
	uint64_t final_pub;         /* nic: final prefix published to the reader */
	uint32_t read_ch;           /* nic: first chunk not yet known read to its end */
	int rclosed;                /* nic: its reader's end closed (a simulated NCCL end) */
	int wclosed;                /* its writer's end closed (a simulated NCCL end) */
	uint64_t wclosed_t, wclosed_sent; /* then: the writer's clock, the bytes it had sent */
	uint32_t reader_ring;       /* nic: the ring + 1 of the thread that last asked to read it (0: none) */
	int32_t reader_tid;         /* and its thread id (a ring is reused by another thread) */
	uint32_t open_ring;         /* nic: the ring + 1 of the thread that opened this end, a simulated
	                               NCCL one (0: none), and its thread id: its reader until
	                               one asks (reader_waits) */
	int32_t open_tid;
};

static struct {
	const struct uni_config *cfg;
	struct uni_shm_hdr *h;
	uni_trace_put_f put;
	struct stream *st;
	uint64_t waiting;
	uint64_t ans_min; /* nic: earliest answer given since the network last moved */
	int nic;
	uint32_t *wstreams; /* streams with waiting reads (nic) */
	uint32_t nwstreams;
	uint32_t *act;       /* nic: streams whose bytes are not all final */
	uint32_t nact;
	struct watch *watch; /* nic: send completions to stop at */
	uint32_t nwatch, capwatch;
	uint64_t stale_watches;
	struct group *grp;   /* by ring: its group read (uni_shim_vrecv_any) */
	struct stream *serving; /* the stream serve_waiters is going through */
	uint32_t sched_used;    /* alpha-beta: logs of sched[] given out */
	uint64_t sched_denied;  /* ... and streams that found none left */
	uint32_t sched_cap;     /* logs to give: UNI_SCHED_LOGS, fewer by UNI_SCHED_LOGS (tests) */
	struct dwatch *dw;      /* deterministic mode: bytes threads in turn wait for */
	uint32_t ndw, capdw;
	uint64_t *want;         /* nic: by reading end, what its reader will read (UNI_EV_WANT) */
	uint64_t gone;          /* reads answered without their bytes: the writer died or closed */
	struct opener *openers; /* nic: by a simulated NCCL end's communicator and rank */
	uint32_t nopeners;      /* (a power of two, at least twice the connections: each key has one) */
} S;

/* nic: the thread that last opened an end of a simulated NCCL
 * communicator's rank (reader_waits): by (comm, rank) from the end's
 * address (shim/nccl.c vaddr: its channel left out). */
struct opener {
	uint64_t a, b; /* the address's communicator and rank (b 0: free) */
	uint32_t ring; /* + 1 */
	int32_t tid;
};

/* Deterministic mode under nic: byte `byte` of the stream written on
 * connection end `stream` is awaited (uni_sim_det_watch). */
struct dwatch {
	uint32_t stream;
	uint64_t byte;
};

/* A group read: a thread waits for the first of several reads (READ_REQs
 * tagged with the same e.b, the group's first request number) to become
 * final; that one is answered, the others are dropped. Under nic the first
 * to become final is the earliest arrival (an unread finished flow holds
 * the network at its arrival), so the thread can go on in time order. */
struct group {
	uint32_t done;                 /* tag of the last group answered (or dropped) */
	uint32_t valid;                /* done is set (a ring taken again has none) */
	uint32_t tag, n;               /* the group whose waiters are listed */
	uint32_t st[UNI_READ_GROUP_MAX]; /* their streams */
	int partial;                   /* its thread waits for reads it leaves out (UNI_EVF_PARTIAL) */
};

/* nic: the SEND record of a flow is written once its arrival is known. */
static void flow_done(void *ctx, uint64_t start, uint64_t arrival)
{
	struct uni_trec *r = ctx;
	if (!r)
		return;
	r->a = start;
	r->t1 = arrival;
	S.put(r);
	free(r);
}

/* The opener table's size for n connections (struct opener). */
static uint32_t opener_slots(uint32_t n)
{
	uint32_t k = 4096;
	while (k < 2 * (uint64_t)n && k < (1u << 30))
		k *= 2;
	return k;
}

int uni_sim_init(const struct uni_config *cfg, struct uni_shm_hdr *h, uni_trace_put_f put)
{
	S.cfg = cfg;
	S.h = h;
	S.put = put;
	S.st = calloc(h->max_conns, sizeof(*S.st));
	S.wstreams = calloc(h->max_conns, sizeof(*S.wstreams));
	S.act = calloc(h->max_conns, sizeof(*S.act));
	S.nic = uni_config_fluid(cfg);
	S.ans_min = UINT64_MAX;
	const char *cap = getenv("UNI_SCHED_LOGS");
	int c = cap ? atoi(cap) : 0;
	S.sched_cap = c > 0 && (uint32_t)c < UNI_SCHED_LOGS ? (uint32_t)c : UNI_SCHED_LOGS;
	S.grp = calloc(h->max_rings, sizeof(*S.grp));
	if (!S.grp)
		return -1;
	if (S.nic) {
		if (nic_init(h->max_ranks, cfg) < 0 || !(S.want = calloc(h->max_conns, sizeof(*S.want))) ||
		    !(S.openers = calloc(S.nopeners = opener_slots(h->max_conns), sizeof(*S.openers))))
			return -1;
		nic_on_done(flow_done);
	}
	return S.st && S.wstreams && S.act ? 0 : -1;
}

static void *grow(void *p, uint32_t *cap, size_t elem)
{
	uint32_t n = *cap ? *cap * 2 : 8;
	void *q = realloc(p, n * elem);
	if (!q)
		abort(); /* unid cannot go on without its state; the ranks notice */
	*cap = n;
	return q;
}

static uint64_t arrival(const struct chunk *c, uint64_t byte)
{
	return uni_ab_arrival(c->start, c->off, c->ns_per_byte, c->latency, byte);
}

/* The log of the stream written on conn (struct uni_sched), given one
 * with the link's latency and rate at its first chunk; NULL when none
 * (none left: its readers ask; the turn does not follow it, sched_log
 * UINT32_MAX). */
static struct uni_sched *sched_log(uint32_t conn, uint64_t latency, double ns_per_byte)
{
	if (!S.h->sched_off)
		return NULL;
	struct uni_conn *uc = uni_shm_conn(S.h, conn);
	if (uc->fd < 0 && !S.h->det)
		return NULL; /* a simulated NCCL connection: its reads ask unid (group reads; in
			      * deterministic mode they read the log in turn) */
	uint32_t li = atomic_load_explicit(&uc->sched_log, memory_order_relaxed);
	if (!li) {
		if (S.sched_used >= S.sched_cap) {
			atomic_store_explicit(&uc->sched_log, UINT32_MAX, memory_order_release);
			S.sched_denied++;
			return NULL;
		}
		li = ++S.sched_used;
		struct uni_sched *sd = uni_shm_sched(S.h, li - 1);
		sd->latency = latency;
		sd->ns_per_byte = ns_per_byte;
		atomic_store_explicit(&uc->sched_log, li, memory_order_release);
	}
	if (li > UNI_SCHED_LOGS)
		return NULL;
	struct uni_sched *sd = uni_shm_sched(S.h, li - 1);
	if (sd->latency != latency || sd->ns_per_byte != ns_per_byte)
		return NULL; /* not the link's (cannot happen): leave the reader to ask */
	return sd;
}

/* Alpha-beta (and the store's chunks in deterministic mode): the chunk
 * just scheduled, for readers. */
static void publish_sched(uint32_t conn, const struct chunk *c)
{
	struct uni_sched *sd = sched_log(conn, c->latency, c->ns_per_byte);
	if (sd)
		uni_sched_publish(sd, c->off, c->len, c->start);
}

/* Arrival of byte b of stream s (b < s->next_off): 1 and *t when final. */
static int stream_final(struct stream *s, uint64_t b, uint64_t *t)
{
	for (uint32_t i = s->nch; i-- > s->headch;) {
		struct chunk *c = &s->ch[i];
		if (b >= c->off && b < c->off + c->len) {
			if (!c->nf) {
				*t = arrival(c, b);
				return 1;
			}
			if (!nic_byte_arrival(c->nf, c->flow_off + (b - c->off), t))
				return 0;
			if (b + 1 == c->off + c->len && nic_flow_complete_at(c->nf, c->flow_off + c->len))
				nic_flow_read(c->nf);
			return 1;
		}
	}
	*t = 0;
	return 1;
}

static struct chunk *find_chunk(struct stream *s, uint64_t b)
{
	for (uint32_t i = s->nch; i-- > s->headch;) {
		struct chunk *c = &s->ch[i];
		if (b >= c->off && b < c->off + c->len)
			return c;
	}
	return NULL;
}

/* nic: the flow that carries byte b of stream s and the byte's index in
 * it: a scheduled chunk's, or (b not written yet) the flow of the message
 * being written, which already has its whole length. */
static struct nic_flow *flow_of(struct stream *s, uint64_t b, uint64_t *fb, uint64_t *lat)
{
	struct chunk *c = b < s->next_off ? find_chunk(s, b) : NULL;
	if (c && c->nf) {
		*fb = c->flow_off + (b - c->off);
		*lat = c->latency;
		return c->nf;
	}
	if (!c && b >= s->next_off && s->last_data && b - s->next_off < s->msg_left) {
		*fb = s->msg_seen + (b - s->next_off);
		*lat = s->last_lat;
		return s->last_data;
	}
	return NULL;
}

/* When byte b of stream s left its sender: 1 and *t when final. A byte no
 * chunk holds any more left long ago (0). */
static int byte_left(struct stream *s, uint64_t b, uint64_t *t)
{
	uint64_t fb, lat, a;
	struct nic_flow *nf = S.nic ? flow_of(s, b, &fb, &lat) : NULL;
	*t = 0;
	if (nf) {
		if (!nic_byte_arrival(nf, fb, &a))
			return 0;
		*t = a - lat;
		return 1;
	}
	struct chunk *c = b < s->next_off ? find_chunk(s, b) : NULL;
	if (c && !c->nf)
		*t = arrival(c, b) - c->latency;
	return c || b < s->next_off;
}

/* Send completion (docs/simulate.md): a write of the message ending at
 * byte end completes when every byte but the last send_buffer ones has
 * left the sender, and never before the message was written (its stamp).
 * 1 and *t when that is final. */
static int completion_final(struct stream *s, uint64_t end, uint64_t *t)
{
	uint64_t buf = S.cfg->send_buffer, left = 0, fb, lat;
	struct chunk *c = end && end <= s->next_off ? find_chunk(s, end - 1) : NULL;
	struct nic_flow *nf = !c && end && S.nic ? flow_of(s, end - 1, &fb, &lat) : NULL;
	if (!c && !nf && end > s->next_off)
		return 0; /* not written yet */
	uint64_t stamp = c ? c->stamp : nf ? nic_flow_stamp(nf) : 0;
	if (buf != UINT64_MAX && end > buf && !byte_left(s, end - buf - 1, &left))
		return 0;
	*t = left > stamp ? left : stamp;
	return 1;
}

/* The group of a read that belongs to one, else NULL. */
static struct group *group_of(const struct uni_op *op)
{
	if (op->e.kind != UNI_EV_READ_REQ || !op->e.b || op->ring >= S.h->max_rings)
		return NULL;
	return &S.grp[op->ring];
}

/* 1 when op is a member of a group read that was answered already. */
static int group_stale(const struct uni_op *op)
{
	struct group *g = group_of(op);
	return g && g->valid && (int32_t)((uint32_t)op->e.b - g->done) <= 0;
}

static void group_cancel(uint32_t ring, uint32_t tag);

/* A read of op's ring: its group (tag, partial) is the ring's now; a read
 * outside a group (tag 0) leaves none partial. Noted before the read may
 * be answered at once (reader_waits reads partial while the ring waits). */
static void group_note(const struct uni_op *op)
{
	if (op->e.kind != UNI_EV_READ_REQ || op->ring >= S.h->max_rings)
		return;
	struct group *g = &S.grp[op->ring];
	if (!op->e.b) {
		g->partial = 0;
		return;
	}
	if (g->tag != (uint32_t)op->e.b) {
		g->tag = (uint32_t)op->e.b;
		g->n = 0;
		g->partial = 0;
	}
	if (op->e.flags & UNI_EVF_PARTIAL)
		g->partial = 1;
}

/* Group tag of ring is answered or dropped: its other reads are not. */
static void group_close(struct group *g, uint32_t ring, uint32_t tag)
{
	g->done = tag;
	g->valid = 1;
	group_cancel(ring, tag);
}

static void answered_record(const struct uni_op *op, uint64_t t0, uint64_t t1, uint64_t arrive);

/* Answers request op at t1 (the rest of its group is dropped). */
static void respond(const struct uni_op *op, uint64_t t1)
{
	struct uni_ring *ring = uni_shm_ring(S.h, op->ring);
	struct group *g = group_of(op);
	if (g)
		group_close(g, op->ring, (uint32_t)op->e.b);
	ring->resp_t = t1;
	if (t1 < S.ans_min)
		S.ans_min = t1;
	/* Until the reader publishes its own state, the horizon must count
	 * it at the time it is given now (not as waiting, not as an idle
	 * loop): else the network could run past t1 before it sends what
	 * this answer releases. */
	atomic_store_explicit(&ring->vt_pub, t1, memory_order_release);
	atomic_store_explicit(&ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
	atomic_store_explicit(&ring->resp_seq, (uint32_t)op->e.a, memory_order_release);
	uni_futex_wake(&ring->resp_seq, 1);
}

static void answer(const struct uni_op *op, uint64_t arrive)
{
	uint64_t t0 = op->e.t0;
	uint64_t t1 = (op->e.flags & UNI_EVF_DISPATCHER) ? arrive : (arrive > t0 ? arrive : t0);
	respond(op, t1);
	answered_record(op, t0, t1, arrive);
}

/* The writer of stream wconn died (its process is gone without
 * detaching: uni_sim_rank_died marked the ends it opened). */
static int writer_died(uint32_t wconn)
{
	return atomic_load_explicit(&uni_shm_conn(S.h, wconn)->wdead, memory_order_acquire) != 0;
}

/* A read of bytes its writer never sent, and never will (it died): answered
 * at the reader's clock (no earlier than the writer's last event), without
 * a record; the reader finds its peer gone (the simulated NCCL: its timing
 * receives, whose sends a rank killed between moving an operation's data
 * and timing it never made, waited for ever). */
static void answer_gone(const struct uni_op *op, uint64_t not_before)
{
	respond(op, op->e.t0 > not_before ? op->e.t0 : not_before);
}

static uint64_t writer_last(uint32_t wconn)
{
	int32_t rk = uni_shm_conn(S.h, wconn)->rank;
	return rk >= 0 && (uint32_t)rk < S.h->max_ranks
		       ? atomic_load_explicit(&uni_shm_rank(S.h, (uint32_t)rk)->last_t, memory_order_relaxed)
		       : 0;
}

/* A simulated NCCL read that can never be answered from its writer
 * (closed): at the later of the close and, under nic, the network's
 * time (what the reader sends next is not late). */
static uint64_t closed_time(const struct stream *s)
{
	return S.nic && nic_now() > s->wclosed_t ? nic_now() : s->wclosed_t;
}

/* The reads of s that wait for bytes past sent, which its writer never
 * sent and never will (it died, or closed its end): answered, no earlier
 * than not_before. */
static void answer_unsent(struct stream *s, uint64_t sent, uint64_t not_before)
{
	for (uint32_t j = 0; j < s->nwait;) {
		if (s->wait[j].sent || s->wait[j].end <= sent) {
			j++;
			continue;
		}
		struct waiter w = s->wait[j];
		s->wait[j] = s->wait[--s->nwait];
		S.waiting--;
		S.gone++;
		answer_gone(&w.op, not_before);
		j = 0; /* (group_cancel may have changed the list) */
	}
}

void uni_sim_rank_died(int rank)
{
	uint32_t n = atomic_load(&S.h->next_conn);
	if (n > S.h->max_conns)
		n = S.h->max_conns;
	for (uint32_t i = 0; i < n; i++) {
		struct uni_conn *c = uni_shm_conn(S.h, i);
		if (c->rank != rank)
			continue;
		atomic_store_explicit(&c->wdead, 1, memory_order_release);
		/* Reads of bytes it never sent (those it sent arrive: under
		 * nic some are on their way). */
		answer_unsent(&S.st[i], S.st[i].next_off, writer_last(i));
	}
}

/* The RECV (or SENT) record of an answered request. */
static void answered_record(const struct uni_op *op, uint64_t t0, uint64_t t1, uint64_t arrive)
{
	struct uni_trec r;
	memset(&r, 0, sizeof(r));
	r.kind = op->e.kind == UNI_EV_READ_REQ ? UNI_TR_RECV : UNI_TR_SENT;
	r.seq = op->seq;
	r.flags = op->e.flags & (uint16_t)~(UNI_EVF_LOCAL | UNI_EVF_PARTIAL);
	r.rank = op->rank;
	r.tid = op->tid;
	r.peer = atomic_load(&uni_shm_conn(S.h, op->e.conn)->peer_rank);
	r.conn = op->e.conn;
	r.t0 = t0;
	r.t1 = t1;
	r.off = op->e.off;
	r.len = op->e.len;
	r.a = arrive;
	S.put(&r);
}

void uni_sim_answer_unmodelled(const struct uni_op *op)
{
	if (group_stale(op))
		return; /* another read of its group was answered, or the group dropped */
	struct group *g = group_of(op);
	if (g)
		group_close(g, op->ring, (uint32_t)op->e.b);
	struct uni_ring *ring = uni_shm_ring(S.h, op->ring);
	ring->resp_t = op->e.t0;
	atomic_store_explicit(&ring->resp_seq, (uint32_t)op->e.a, memory_order_release);
	uni_futex_wake(&ring->resp_seq, 1);
}

/* nic: a finished flow of a simulated NCCL stream written on end wconn,
 * unread: it holds the network at its arrival only while its reader could
 * read it and act on it: not while the reading end is not open yet, nor
 * while the reader meets its peers in real time to move an operation's
 * data (uni_conn.vbusy), which may wait for a peer still in an earlier
 * operation that needs the network to move. */
static int soft_holds(uint32_t wconn)
{
	const struct uni_conn *c = uni_shm_conn(S.h, wconn);
	if (atomic_load_explicit(&c->peer_rank, memory_order_acquire) < 0)
		return 0;
	uint32_t rc = atomic_load_explicit(&c->peer_conn, memory_order_relaxed);
	return rc < S.h->max_conns && !atomic_load_explicit(&uni_shm_conn(S.h, rc)->vbusy, memory_order_acquire);
}

/* The opener entry of the simulated NCCL end address ad's communicator
 * and rank (NULL: none; create: made if there is room). */
static struct opener *opener_find(const struct uni_addr *ad, int create)
{
	uint64_t a;
	uint32_t rank_gen;
	if (!S.openers || !uni_nccl_addr_rank(ad, &a, &rank_gen))
		return NULL;
	uint64_t b = 1ull << 32 | rank_gen;
	uint32_t m = S.nopeners - 1, h = (uint32_t)((a ^ b * 0x9E3779B97F4A7C15ull) >> 20) & m;
	for (uint32_t i = 0; i <= m; i++) {
		struct opener *o = &S.openers[(h + i) & m];
		if (o->b == b && o->a == a)
			return o;
		if (!o->b) {
			if (!create)
				return NULL;
			o->a = a;
			o->b = b;
			return o;
		}
	}
	return NULL;
}

/* nic: the thread that last asked to read the simulated NCCL stream
 * written on wconn waits for unid's answer to reads of other bytes
 * (those of this stream are not wanted), requests unid took: blocked in
 * them (UNI_WAIT_READ, as the horizon leaves it out, unid.c), or asked
 * for while its operation's data moves (prog_poll: async_tag, in the
 * peers' wait). Its reads ask for the first pending receive of every
 * connection of its operation (shim/nccl.c prog_heads), so an arrival
 * no read asked for is behind one asked for on its connection, or for
 * a later operation, which starts after this one's answers: nothing the
 * thread sends from it is stamped before the answer it waits for, and
 * that answer holds the network (respond). Not so when its operation
 * has more connections than a group holds (UNI_EVF_PARTIAL: the others
 * are not asked for yet), nor for a thread waiting for room to write (its
 * room comes when its peer reads): there the arrival holds as before.
 * (A failed operation's cancel is answered at the operation's start,
 * behind the network perhaps: errors are not timed exactly.) Held, it
 * stopped the network with nothing else
 * to happen before the arrival, until the 2 s an unread arrival counts
 * as stale or the 200 ms of the soft hold: a pipeline stage waiting for
 * a credit to send, or for its peers to move its send's data, its next
 * input arrived unread (examples/c/nccl_pp.c with 16 requests under
 * nic: 28 to 83 s of wall time for 0.3 s of virtual time). */
static int reader_waits(uint32_t wconn)
{
	const struct stream *s = &S.st[wconn];
	uint32_t rr = s->reader_ring;
	int32_t rt = s->reader_tid;
	if (!rr) {
		/* Nobody asked to read it yet: the thread that opened the
		 * reading end, or before that end is open the one that last
		 * opened an end of that rank of the communicator (the simulated
		 * NCCL opens an end in the operation that first uses it, and its
		 * rank's thread reads it: a rank still in an earlier operation
		 * held the first arrival on a connection for the 200 ms soft
		 * hold, ProcessGroupNCCL's call sequences under nic). */
		struct uni_conn *wc = uni_shm_conn(S.h, wconn);
		uint32_t pc = atomic_load_explicit(&wc->peer_conn, memory_order_acquire);
		if (atomic_load_explicit(&wc->peer_rank, memory_order_acquire) >= 0 && pc < S.h->max_conns) {
			rr = S.st[pc].open_ring;
			rt = S.st[pc].open_tid;
		} else {
			const struct opener *o = opener_find(&wc->peer, 0);
			if (!o)
				return 0;
			rr = o->ring;
			rt = o->tid;
		}
	}
	if (!rr || rr - 1 >= S.h->max_rings)
		return 0;
	struct uni_ring *r = uni_shm_ring(S.h, rr - 1);
	if (atomic_load_explicit(&r->state, memory_order_acquire) != UNI_RING_LIVE || r->tid != rt ||
	    S.grp[rr - 1].partial)
		return 0;
	uint32_t wk = atomic_load_explicit(&r->wait_kind, memory_order_acquire);
	uint32_t taken = atomic_load_explicit(&r->req_taken, memory_order_relaxed);
	if (wk == UNI_WAIT_READ)
		return !(r->wait_obj & UNI_WAIT_OBJ_ROOM) && taken == r->wait_req;
	uint32_t at = atomic_load_explicit(&r->async_tag, memory_order_acquire);
	return wk == UNI_WAIT_COND && at && (int32_t)(taken - (at + r->async_n - 1)) >= 0;
}

/* nic: the first chunk of s not known read to its end. */
static uint32_t first_unread(const struct stream *s)
{
	return s->read_ch > s->headch ? s->read_ch : s->headch;
}

/* nic: the reader has read bytes [0, end) of s: every flow whose last
 * chunk lies inside is read (it no longer holds the network at its
 * arrival). A read that runs past a message's end into the next one does
 * not end on the message's last byte (stream_final only sees the last
 * byte read): the network then stopped at that message's arrival for the
 * 2 s until an unread flow counts as stale, again and again. */
static void mark_read(struct stream *s, uint64_t end)
{
	if (!S.nic)
		return;
	if (s->read_ch < s->headch)
		s->read_ch = s->headch;
	while (s->read_ch < s->nch) {
		struct chunk *c = &s->ch[s->read_ch];
		if (c->off + c->len > end)
			break;
		if (c->nf && nic_flow_complete_at(c->nf, c->flow_off + c->len))
			nic_flow_read(c->nf);
		s->read_ch++;
	}
}

/* nic: flows of s whose last byte lies beyond the final prefix fin are
 * gated (their reader cannot read them yet, so they do not hold the
 * network at their arrival); the others not. Read chunks are skipped. */
static void gate_stream(struct stream *s, uint64_t fin)
{
	uint32_t i = first_unread(s);
	for (; i < s->nch; i++) {
		struct chunk *c = &s->ch[i];
		if (c->nf && nic_flow_complete_at(c->nf, c->flow_off + c->len))
			nic_flow_gate(c->nf, c->off + c->len > fin);
	}
}

/* Drops chunks no read can need any more. */
static void trim(struct stream *s, uint64_t consumed)
{
	/* A send completion asks when byte end - send_buffer - 1 left, often
	 * after the reader has read past it: keep the chunks of the last
	 * send_buffer bytes read, and of the last 1024 chunks (sends waited
	 * for later than the next one). A byte no chunk holds any more is
	 * taken to have left at 0. */
	uint64_t buf = S.cfg->send_buffer;
	if (buf != UINT64_MAX)
		consumed = consumed > buf + 1 ? consumed - buf - 1 : 0;
	while (s->headch < s->nch && s->ch[s->headch].off + s->ch[s->headch].len <= consumed &&
	       (buf == UINT64_MAX || s->nch - s->headch > 1024)) {
		if (s->ch[s->headch].nf)
			nic_flow_release(s->ch[s->headch].nf);
		s->headch++;
	}
	if (s->headch > 64 && s->headch * 2 > s->nch) {
		memmove(s->ch, s->ch + s->headch, (s->nch - s->headch) * sizeof(*s->ch));
		s->nch -= s->headch;
		s->read_ch = s->read_ch > s->headch ? s->read_ch - s->headch : 0;
		s->headch = 0;
	}
}

static void watch_drop(uint32_t stream, uint64_t end)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < S.nwatch; i++)
		if (S.watch[i].stream != stream || S.watch[i].end != end)
			S.watch[k++] = S.watch[i];
	S.nwatch = k;
}

static void serve_waiters(struct stream *s)
{
	uint32_t k = 0;
	uint64_t t;
	S.serving = s;
	for (uint32_t i = 0; i < s->nwait; i++) {
		struct waiter *w = &s->wait[i];
		if (group_stale(&w->op)) {
			S.waiting--;
			continue;
		}
		if (w->sent ? completion_final(s, w->end, &t)
			    : (w->end <= s->next_off && stream_final(s, w->end - 1, &t))) {
			answer(&w->op, t);
			if (w->sent)
				watch_drop(w->op.e.conn, w->end);
			else
				mark_read(s, w->end);
			S.waiting--;
		} else {
			s->wait[k++] = *w;
		}
	}
	s->nwait = k;
	S.serving = NULL;
}

static void schedule(struct stream *s, const struct uni_op *op)
{
	const struct uni_ev *e = &op->e;
	if (e->flags & UNI_EVF_CUT) {
		/* A blocking write stopped short: the rest its parts announced
		 * (one nic flow) will not come, nor its completion's watch. */
		if (S.nic && s->msg_left && s->last_data) {
			nic_flow_truncate(s->last_data, s->msg_seen);
			struct uni_trec *r = nic_flow_ctx(s->last_data);
			if (r)
				r->len = s->msg_seen;
		}
		s->msg_left = 0;
		uint32_t k = 0;
		for (uint32_t i = 0; i < S.nwatch; i++)
			if (S.watch[i].stream != e->conn || S.watch[i].end <= e->off)
				S.watch[k++] = S.watch[i];
		S.nwatch = k;
		return;
	}
	if (S.nic && !s->active) {
		s->active = 1;
		S.act[S.nact++] = e->conn;
	}
	struct uni_conn *c = uni_shm_conn(S.h, e->conn);
	int peer = atomic_load(&c->peer_rank);
	if (peer < 0 && c->vpeer1 > 0)
		peer = c->vpeer1 - 1; /* (a simulated NCCL end whose peer has not opened yet) */
	/* The store's control plane (deterministic mode) crosses no link
	 * under any model: a chunk in no time, below. */
	int fluid = S.nic && !(c->flags & UNI_CONNF_STORE);
	/* The network node the stream leaves from: the connection's rank
	 * (the process's, or a simulated NCCL rank's in a world of one
	 * process). */
	int src = c->rank;
	if (fluid && !(e->flags & UNI_EVF_NOTIFY) && s->msg_left && s->last_data) {
		/* The rest of a message whose first part came earlier (a write
		 * that hit EAGAIN, finished by the loop thread): same flow. */
		uint64_t take = e->len < s->msg_left ? e->len : s->msg_left;
		if (s->nch == s->capch)
			s->ch = grow(s->ch, &s->capch, sizeof(*s->ch));
		s->ch[s->nch++] = (struct chunk){.off = e->off, .len = e->len, .nf = s->last_data,
						 .flow_off = s->msg_seen, .latency = s->last_lat,
						 .stamp = s->msg_stamp};
		nic_flow_hold(s->last_data);
		s->msg_seen += e->len;
		s->msg_left -= take;
		s->next_off = e->off + e->len;
		return;
	}
	if (fluid) {
		if (debug_nic() && e->t0 < nic_now())
			fprintf(stderr, "nic: late: rank %d tid %d ring %u (%s) conn %u stamp %llu\n", op->rank, op->tid,
				op->ring, (e->flags & UNI_EVF_DISPATCHER) ? "dispatcher" : "thread", e->conn,
				(unsigned long long)e->t0);
		struct uni_trec *r = calloc(1, sizeof(*r));
		if (!r)
			abort();
		r->kind = UNI_TR_SEND;
		r->flags = e->flags;
		r->seq = op->seq;
		r->rank = op->rank;
		r->tid = op->tid;
		r->peer = peer;
		r->conn = e->conn;
		r->t0 = e->t0;
		r->off = e->off;
		r->len = e->len;
		/* Notices go when posted (see below); data is FIFO per connection. */
		/* A data flow is the whole message (this part + e->b to come). */
		uint64_t bytes = e->len + ((e->flags & UNI_EVF_NOTIFY) ? 0 : e->b);
		r->len = bytes;
		struct nic_flow *nf = nic_flow_new(src, peer, e->t0, bytes,
						   (e->flags & UNI_EVF_NOTIFY) ? NULL : s->last_data, r);
		if (c->fd < 0) {
			/* A simulated NCCL stream (soft_holds, reader_waits):
			 * wanted now if a read waits for its bytes (a read asked
			 * for before they were sent: else its reader, waiting
			 * for them, was taken for one that waits for others and
			 * what it sent on their arrival went late). */
			nic_flow_soft(nf, e->conn);
			for (uint32_t j = 0; j < s->nwait; j++)
				if (!s->wait[j].sent && s->wait[j].end > e->off)
					nic_flow_want(nf);
		}
		if (c->flags & UNI_CONNF_CREDIT) {
			/* Held only once wanted: now, if its reader said it will
			 * read it or a read waits for it (above). */
			uint32_t rc = atomic_load_explicit(&c->peer_conn, memory_order_relaxed);
			nic_flow_lazy(nf);
			if (rc < S.h->max_conns && S.want[rc] > e->off)
				nic_flow_want(nf);
		}
		if (s->rclosed)
			nic_flow_read(nf); /* (nobody will) */
		uint64_t lat = nic_flow_latency(nf);
		if (!(e->flags & UNI_EVF_NOTIFY)) {
			if (s->last_data)
				nic_flow_unhold(s->last_data);
			s->last_data = nf;
			s->last_lat = lat;
			nic_flow_hold(nf);
			s->msg_seen = e->len;
			s->msg_left = e->b;
			s->msg_stamp = e->t0;
		}
		if (s->nch == s->capch)
			s->ch = grow(s->ch, &s->capch, sizeof(*s->ch));
		/* The write's own stamp, for its completion: a flow that came
		 * late starts at the network's time, but its writer wrote it at
		 * its clock, and a write that fits the send buffer completes
		 * then (a program's write made while it polled for room; the
		 * horizon leaves pollers out). */
		s->ch[s->nch++] = (struct chunk){.off = e->off, .len = e->len, .nf = nf, .latency = lat,
						 .stamp = e->t0};
		s->next_off = e->off + e->len;
		/* Its poster may wait for its completion: the network stops
		 * there (uni_sim_advance). */
		if (!(e->flags & UNI_EVF_NOTIFY) && e->c && e->c <= S.h->max_rings &&
		    S.cfg->send_buffer != UINT64_MAX) {
			if (S.nwatch == S.capwatch)
				S.watch = grow(S.watch, &S.capwatch, sizeof(*S.watch));
			S.watch[S.nwatch++] = (struct watch){.ring = (uint32_t)e->c - 1, .stream = e->conn,
							     .end = e->off + e->len + e->b};
		}
		return;
	}
	uint64_t lat, start;
	double bps;
	uni_config_link(S.cfg, src, peer, &lat, &bps);
	double npb = 8e9 / bps;
	if (uni_shm_conn(S.h, e->conn)->flags & UNI_CONNF_STORE)
		lat = 0, npb = 0; /* the store's control plane: no link, no time */
	uint64_t tx = (uint64_t)llround((double)e->len * npb);
	if (e->flags & UNI_EVF_NOTIFY) {
		/* A 48-byte Gloo notice goes when it is posted, not behind data
		 * that reached the socket first on this host: on the modelled
		 * network that data waits for a notice from the peer, and the
		 * poster's next notices would have been written before it.
		 * Keeping host byte order here made results depend on host
		 * timing (which rank's notices happened to queue behind data). */
		start = e->t0;
	} else {
		start = e->t0 > s->free_at ? e->t0 : s->free_at;
		s->free_at = start + tx;
	}
	if (s->nch == s->capch)
		s->ch = grow(s->ch, &s->capch, sizeof(*s->ch));
	s->ch[s->nch++] = (struct chunk){.off = e->off, .len = e->len, .start = start, .stamp = e->t0,
					 .ns_per_byte = npb, .latency = lat};
	s->next_off = e->off + e->len;
	publish_sched(e->conn, &s->ch[s->nch - 1]);

	struct uni_trec r;
	memset(&r, 0, sizeof(r));
	r.kind = UNI_TR_SEND;
	r.flags = e->flags;
	r.seq = op->seq;
	r.rank = op->rank;
	r.tid = op->tid;
	r.peer = peer;
	r.conn = e->conn;
	r.t0 = e->t0;
	r.t1 = start + tx + lat; /* arrival of the last byte */
	r.off = e->off;
	r.len = e->len;
	r.a = start;
	S.put(&r);
}

void uni_sim_send(const struct uni_op *op)
{
	struct stream *s = &S.st[op->e.conn];
	if (op->e.off != s->next_off) {
		if (s->nheld == s->capheld)
			s->held = grow(s->held, &s->capheld, sizeof(*s->held));
		s->held[s->nheld++] = *op;
		return;
	}
	schedule(s, op);
	/* Held chunks that now follow on. */
	for (int progress = 1; progress && s->nheld;) {
		progress = 0;
		for (uint32_t i = 0; i < s->nheld; i++) {
			if (s->held[i].e.off == s->next_off) {
				struct uni_op h = s->held[i];
				s->held[i] = s->held[--s->nheld];
				schedule(s, &h);
				progress = 1;
				break;
			}
		}
	}
	serve_waiters(s);
}

/* nic: a read asked for the bytes of s before end: the flows that carry
 * them are wanted (nic_flow_soft). */
static void want_upto(struct stream *s, uint64_t end)
{
	for (uint32_t i = first_unread(s); i < s->nch && s->ch[i].off < end; i++)
		if (s->ch[i].nf)
			nic_flow_want(s->ch[i].nf);
}

void uni_sim_opener(const struct uni_addr *ad, uint32_t ring, int32_t tid)
{
	struct opener *o = S.nic ? opener_find(ad, 1) : NULL;
	if (o) {
		o->ring = ring + 1;
		o->tid = tid;
	}
}

void uni_sim_opened(uint32_t conn, uint32_t ring, int32_t tid)
{
	if (!S.nic || conn >= S.h->max_conns)
		return;
	S.st[conn].open_ring = ring + 1;
	S.st[conn].open_tid = tid;
	uni_sim_opener(&uni_shm_conn(S.h, conn)->local, ring, tid);
}

void uni_sim_read(const struct uni_op *op)
{
	struct uni_conn *c = uni_shm_conn(S.h, op->e.conn);
	uint32_t peer_conn = atomic_load(&c->peer_conn);
	struct stream *s = &S.st[peer_conn];
	uint64_t end = op->e.off + op->e.len;
	uint64_t t;
	if (group_stale(op))
		return; /* another read of its group was answered */
	group_note(op);
	if (S.nic) {
		want_upto(s, end);
		s->reader_ring = op->ring + 1;
		s->reader_tid = op->tid;
	}
	if (op->e.flags & UNI_EVF_LOCAL) {
		/* The reader found the arrival in the published schedule (nic:
		 * under the turn, the bytes are final and read). */
		answered_record(op, op->e.t0, op->e.t1, op->e.c);
		if (S.nic)
			mark_read(s, end);
		trim(s, op->e.off);
		return;
	}
	if (end <= s->next_off && stream_final(s, end - 1, &t)) {
		answer(op, t);
		mark_read(s, end);
		trim(s, op->e.off);
		return;
	}
	if (UNI_UNLIKELY(writer_died(peer_conn)) && end > s->next_off) {
		S.gone++;
		answer_gone(op, writer_last(peer_conn));
		return;
	}
	if (UNI_UNLIKELY(s->wclosed) && end > s->wclosed_sent) {
		S.gone++;
		answer_gone(op, closed_time(s));
		return;
	}
	if (s->nwait == s->capwait)
		s->wait = grow(s->wait, &s->capwait, sizeof(*s->wait));
	s->wait[s->nwait++] = (struct waiter){.op = *op, .end = end};
	S.waiting++;
	struct group *g = group_of(op);
	if (g && g->n < UNI_READ_GROUP_MAX)
		g->st[g->n++] = peer_conn;
	if (S.nic && !s->listed) {
		s->listed = 1;
		S.wstreams[S.nwstreams++] = peer_conn;
	}
}

void uni_sim_sent(const struct uni_op *op)
{
	uint32_t si = op->e.conn;
	struct stream *s = &S.st[si];
	uint64_t end = op->e.off, t;
	if (op->e.flags & UNI_EVF_LOCAL) {
		/* The writer found the completion itself (alpha-beta). */
		answered_record(op, op->e.t0, op->e.t1, op->e.c);
		watch_drop(si, end);
		return;
	}
	if (completion_final(s, end, &t)) {
		answer(op, t);
		watch_drop(si, end);
		return;
	}
	if (s->nwait == s->capwait)
		s->wait = grow(s->wait, &s->capwait, sizeof(*s->wait));
	s->wait[s->nwait++] = (struct waiter){.op = *op, .end = end, .sent = 1};
	S.waiting++;
	if (S.nic && !s->listed) {
		s->listed = 1;
		S.wstreams[S.nwstreams++] = si;
	}
}

/* nic: the network stops (nic_advance returns) when byte b of stream s
 * has left: a watch on the flow that carries it, if it is written. */
static void stop_at(struct stream *s, uint64_t b)
{
	uint64_t fb, lat;
	struct nic_flow *nf = flow_of(s, b, &fb, &lat);
	if (nf)
		nic_flow_watch(nf, fb + 1);
}

/* nic: the earliest completion the network must stop at: a send whose
 * completion was reached while its poster waits in waitSend and has not
 * taken it. Unreached ones set a watch on the flow that holds their byte,
 * so that nic_advance stops exactly there. */
static uint64_t watches_bound(uint64_t real_now)
{
	uint64_t bound = UINT64_MAX;
	uint32_t k = 0;
	for (uint32_t i = 0; i < S.nwatch; i++) {
		struct watch *w = &S.watch[i];
		struct uni_ring *ring = uni_shm_ring(S.h, w->ring);
		if (atomic_load_explicit(&ring->state, memory_order_acquire) != UNI_RING_LIVE)
			continue;
		struct stream *s = &S.st[w->stream];
		if (!w->reached) {
			uint64_t t;
			if (completion_final(s, w->end, &t)) {
				w->reached = 1;
				w->t = t;
				w->reached_real = real_now;
				if (debug_nic())
					fprintf(stderr, "nic: send completion reached: ring %u stream %u end %llu at %llu "
						"(network %llu), poster in waitSend %u, its clock %llu\n", w->ring, w->stream,
						(unsigned long long)w->end, (unsigned long long)t,
						(unsigned long long)nic_now(), atomic_load(&ring->wait_sending),
						(unsigned long long)atomic_load(&ring->vt_pub));
			} else if (w->end > S.cfg->send_buffer) {
				stop_at(s, w->end - S.cfg->send_buffer - 1);
			}
		}
		if (w->reached) {
			if (atomic_load_explicit(&ring->vt_pub, memory_order_acquire) >= w->t)
				continue; /* its poster is past it */
			if (real_now - w->reached_real > UNI_NIC_UNREAD_STALE_NS) {
				S.stale_watches++;
				continue; /* never taken: not waited for after all */
			}
			/* Its poster waits for it: inside waitSend, or already
			 * asking unid for the time (SENT_REQ on this stream). Not
			 * a blocking write still waiting for room for its last
			 * bytes (shim.c, uni_shim_send_blocking): they need the
			 * reader to read, so the network must go on past the
			 * completion (its writer then goes on from there, late). */
			int waits = atomic_load_explicit(&ring->wait_sending, memory_order_acquire) ||
				    (atomic_load_explicit(&ring->wait_kind, memory_order_acquire) == UNI_WAIT_READ &&
				     ring->wait_obj == w->stream && s->next_off >= w->end);
			if (waits && w->t < bound)
				bound = w->t;
		}
		S.watch[k++] = *w;
	}
	S.nwatch = k;
	return bound;
}

/* Drops the waiting reads of ring's group tag (one of them was answered;
 * a stream being served drops its own in serve_waiters). */
/* Deterministic mode: a watch on the flow that carries each completion
 * not reached yet, so that a step stops exactly there (watches_bound's
 * stops without its real-time rules). */
static void watches_set(void)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < S.nwatch; i++) {
		struct watch *w = &S.watch[i];
		uint64_t t;
		/* (A poster gone: not kept, as watches_bound does not run.) */
		if (atomic_load_explicit(&uni_shm_ring(S.h, w->ring)->state, memory_order_acquire) != UNI_RING_LIVE)
			continue;
		S.watch[k++] = *w;
		if (w->reached || completion_final(&S.st[w->stream], w->end, &t) || w->end <= S.cfg->send_buffer)
			continue;
		stop_at(&S.st[w->stream], w->end - S.cfg->send_buffer - 1);
	}
	S.nwatch = k;
}

static void group_cancel(uint32_t ring, uint32_t tag)
{
	struct group *g = &S.grp[ring];
	if (g->tag != tag)
		return;
	for (uint32_t i = 0; i < g->n; i++) {
		struct stream *s = &S.st[g->st[i]];
		if (s == S.serving)
			continue; /* serve_waiters drops them (group_stale) */
		uint32_t k = 0;
		for (uint32_t j = 0; j < s->nwait; j++) {
			struct waiter *w = &s->wait[j];
			if (!w->sent && w->op.ring == ring && (uint32_t)w->op.e.b == tag)
				S.waiting--;
			else
				s->wait[k++] = *w;
		}
		s->nwait = k;
	}
	g->n = 0;
}

void uni_sim_read_cancel(const struct uni_op *op)
{
	if (op->ring >= S.h->max_rings)
		return;
	struct group *g = &S.grp[op->ring];
	uint32_t tag = (uint32_t)op->e.b;
	/* Its members still waiting go (unid dropped those queued on
	 * unmatched connections: drop_pending_reqs), and what they asked
	 * for holds the network no longer than bytes nobody asked for (a
	 * count mismatch asks for bytes never sent: 2 s of real time). */
	if (!g->valid || (int32_t)(tag - g->done) > 0) {
		for (uint32_t i = 0; S.nic && g->tag == tag && i < g->n; i++) {
			struct stream *s = &S.st[g->st[i]];
			for (uint32_t k = first_unread(s); k < s->nch; k++)
				if (s->ch[k].nf)
					nic_flow_unwant(s->ch[k].nf);
		}
		group_close(g, op->ring, tag);
	}
	respond(op, op->e.t0);
}

void uni_sim_reader_closed(uint32_t conn)
{
	const struct uni_conn *c = uni_shm_conn(S.h, conn);
	uint32_t wc = atomic_load(&c->peer_conn);
	if (!S.nic || c->fd >= 0 || wc >= S.h->max_conns)
		return;
	/* (A count mismatch leaves bytes nobody reads: they held the network
	 * 2 s of real time, as stale.) */
	struct stream *s = &S.st[wc];
	s->rclosed = 1;
	for (uint32_t k = first_unread(s); k < s->nch; k++)
		if (s->ch[k].nf)
			nic_flow_read(s->ch[k].nf);
}

void uni_sim_writer_closed(uint32_t conn, uint64_t t, uint64_t sent)
{
	if (conn >= S.h->max_conns || uni_shm_conn(S.h, conn)->fd >= 0)
		return;
	struct stream *s = &S.st[conn];
	s->wclosed = 1;
	s->wclosed_t = t;
	s->wclosed_sent = sent;
	answer_unsent(s, sent, closed_time(s));
}

uint64_t uni_sim_gone(void)
{
	return S.gone;
}

void uni_sim_forget_ring(uint32_t ring)
{
	if (S.grp && ring < S.h->max_rings)
		memset(&S.grp[ring], 0, sizeof(S.grp[ring]));
	uint32_t kw = 0;
	for (uint32_t i = 0; i < S.nwatch; i++)
		if (S.watch[i].ring != ring)
			S.watch[kw++] = S.watch[i];
	S.nwatch = kw;
	if (!S.st || !S.waiting)
		return;
	for (uint32_t i = 0; i < S.h->max_conns; i++) {
		struct stream *s = &S.st[i];
		uint32_t k = 0;
		for (uint32_t j = 0; j < s->nwait; j++) {
			if (s->wait[j].op.ring == ring)
				S.waiting--;
			else
				s->wait[k++] = s->wait[j];
		}
		s->nwait = k;
	}
}

void uni_sim_debug_dump(FILE *f)
{
	if (!S.st)
		return;
	if (S.nic)
		nic_debug_dump(f);
	for (uint32_t i = 0; i < S.nwatch; i++)
		fprintf(f, "watch: ring %u stream %u end %llu reached %d at %llu (ring waits in waitSend: %u)\n",
			S.watch[i].ring, S.watch[i].stream, (unsigned long long)S.watch[i].end, S.watch[i].reached,
			(unsigned long long)S.watch[i].t,
			atomic_load(&uni_shm_ring(S.h, S.watch[i].ring)->wait_sending));
	for (uint32_t i = 0; i < S.h->max_conns; i++) {
		struct stream *st = &S.st[i];
		if (!st->nwait && !st->nheld && !st->nch)
			continue;
		fprintf(f, "stream %u: next_off %llu, %u chunks, %u held (first at %llu), %u reads waiting (first to %llu)\n", i,
			(unsigned long long)st->next_off, st->nch, st->nheld,
			st->nheld ? (unsigned long long)st->held[0].e.off : 0ull, st->nwait,
			st->nwait ? (unsigned long long)st->wait[0].end : 0ull);
	}
}

void uni_sim_released(uint64_t *soft, uint64_t *stale)
{
	*soft = *stale = 0;
	if (S.nic)
		nic_released(soft, stale);
}

uint64_t uni_sim_waiting_reads(void)
{
	return S.waiting;
}

int uni_sim_is_nic(void)
{
	return S.nic;
}

static void publish_final(void);
static uint64_t final_prefix(struct stream *s);
static void settle(void);

/* nic, after the network moved: which finished flows their readers can
 * read now. */
static void gate_active(void)
{
	for (uint32_t i = 0; i < S.nact; i++)
		gate_stream(&S.st[S.act[i]], final_prefix(&S.st[S.act[i]]));
}

void uni_sim_advance(uint64_t horizon, uint64_t real_now)
{
	if (!S.nic)
		return;
	for (int round = 0; round < 64; round++) {
		/* A thread answered after unid read the horizon (while it was
		 * draining) was left out of it as a reader: it holds at its
		 * answer's time. */
		uint64_t h = horizon < S.ans_min ? horizon : S.ans_min;
		uint64_t w = watches_bound(real_now);
		if (w < h)
			h = w;
		uint64_t before = nic_now();
		uint64_t b = nic_unread_bound(real_now, UNI_NIC_UNREAD_STALE_NS, reader_waits, NULL, 0), b0 = b;
		/* Held where it is by nothing but arrivals whose readers cannot
		 * read them now (simulated NCCL ranks meeting their peers in real
		 * time, soft_holds, or still in an earlier operation: no read
		 * asked for them yet): after 200 ms of real time those no longer
		 * hold (a peer may need the network to move to get there, or the
		 * reader itself; released at once, a reader that was a few
		 * milliseconds away sent late: 26 late transfers in a tree
		 * AllReduce under nic). Held where it is also when the arrival
		 * lies ahead but nothing is to move before it (the network does
		 * not move its time when idle: it stayed, for 2 s). */
		if (b < h && (b <= before || nic_idle_before(b)))
			b = nic_unread_bound(real_now, UNI_NIC_UNREAD_STALE_NS, reader_waits, soft_holds,
					     UNI_NIC_SOFT_STALE_NS);
		if (b < h)
			h = b;
		static uint64_t dbg_last;
		if (round == 0 && debug_nic() && real_now - dbg_last > 500000000ull) {
			dbg_last = real_now;
			fprintf(stderr, "nic: network %llu: horizon %llu, answered %llu, unread %llu, watches %llu\n",
				(unsigned long long)before, (unsigned long long)horizon,
				(unsigned long long)S.ans_min, (unsigned long long)b0, (unsigned long long)w);
			if (getenv("UNI_DEBUG_NIC3"))
				nic_debug_dump(stderr);
		}
		if (h <= before)
			break;
		nic_advance(h);
		gate_active();
		if (debug_nic2())
			fprintf(stderr, "adv: %llu -> %llu (horizon %llu unread %llu watches %llu)\n",
				(unsigned long long)before, (unsigned long long)nic_now(), (unsigned long long)horizon,
				(unsigned long long)b, (unsigned long long)w);
		if (nic_now() == before)
			break;
	}
	/* From here the horizon unid reads next sees every answer. */
	S.ans_min = UINT64_MAX;
	settle();
}

/* What became final: published to the readers, and the requests it
 * answers answered. */
static void settle(void)
{
	publish_final();
	uint32_t k = 0;
	for (uint32_t i = 0; i < S.nwstreams; i++) {
		struct stream *s = &S.st[S.wstreams[i]];
		serve_waiters(s);
		if (s->nwait)
			S.wstreams[k++] = S.wstreams[i];
		else
			s->listed = 0;
	}
	S.nwstreams = k;
}

void uni_sim_finish(void)
{
	if (!S.nic)
		return;
	for (uint32_t i = 0; i < 10000000u; i++) {
		uint64_t before = nic_now();
		nic_advance(UINT64_MAX);
		if (nic_now() == before)
			break;
	}
}

void uni_sim_want(uint32_t conn, uint64_t end)
{
	if (!S.nic || conn >= S.h->max_conns)
		return;
	if (end > S.want[conn])
		S.want[conn] = end;
	const struct uni_conn *c = uni_shm_conn(S.h, conn);
	uint32_t si = atomic_load(&c->peer_conn);
	if (si < S.h->max_conns && atomic_load(&c->peer_rank) >= 0)
		want_upto(&S.st[si], end);
}

void uni_sim_det_watch(uint32_t conn, uint64_t byte)
{
	if (!S.nic || conn >= S.h->max_conns)
		return;
	uint32_t si = atomic_load(&uni_shm_conn(S.h, conn)->peer_conn);
	if (si >= S.h->max_conns)
		return;
	for (uint32_t i = 0; i < S.ndw; i++)
		if (S.dw[i].stream == si && S.dw[i].byte == byte)
			return;
	if (S.ndw == S.capdw)
		S.dw = grow(S.dw, &S.capdw, sizeof(*S.dw));
	S.dw[S.ndw++] = (struct dwatch){.stream = si, .byte = byte};
}

/* The awaited bytes not final yet: the network stops where each leaves
 * (its flow's watch); the others are forgotten. Taken at a step, when
 * every chunk written before is in (a watch can come before its chunk's
 * SEND in a drain). */
static void dwatches_set(void)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < S.ndw; i++) {
		struct stream *s = &S.st[S.dw[i].stream];
		uint64_t t;
		if (byte_left(s, S.dw[i].byte, &t))
			continue;
		stop_at(s, S.dw[i].byte);
		S.dw[k++] = S.dw[i];
	}
	S.ndw = k;
}

/* Deterministic mode (docs/simulate.md "Deterministic mode", the network
 * in turn): one step of the network toward h, asked for by the thread
 * that has the turn, which knows that no thread of the turn starts a
 * transfer before h. No real-time rule takes part (stale unread flows,
 * answered readers, the horizon's scan): the steps, and so the network's
 * arithmetic, are the same in every run. It stops early where a flow
 * ends, a send completes or an awaited byte leaves (its waiter may act
 * from there; the turn asks again). Returns the time up to which the
 * network is final. */
uint64_t uni_sim_det_step(uint64_t h)
{
	if (!S.nic)
		return h;
	if (h > nic_now()) {
		watches_set();
		dwatches_set();
		nic_advance(h);
		gate_active();
	}
	settle();
	uint64_t fin = nic_final_to(h);
	if (debug_nic2())
		fprintf(stderr, "det step: h %llu now %llu fin %llu watches %u\n", (unsigned long long)h,
			(unsigned long long)nic_now(), (unsigned long long)fin, S.ndw);
	return fin;
}

/* nic: the prefix of stream s whose bytes have left (binary search over
 * each chunk: finality is monotone in the byte). */
static uint64_t final_prefix(struct stream *s)
{
	uint64_t fin = s->final_pub;
	for (uint32_t i = s->headch; i < s->nch; i++) {
		struct chunk *c = &s->ch[i];
		if (c->off + c->len <= fin)
			continue;
		uint64_t lo = fin > c->off ? fin - c->off : 0, hi = c->len, t; /* lo bytes known final */
		if (!c->nf || nic_byte_arrival(c->nf, c->flow_off + c->len - 1, &t)) {
			fin = c->off + c->len;
			continue;
		}
		while (lo < hi) { /* largest L in [lo, hi) with bytes [0, L) final */
			uint64_t mid = lo + (hi - lo + 1) / 2;
			if (mid && nic_byte_arrival(c->nf, c->flow_off + mid - 1, &t))
				lo = mid;
			else
				hi = mid - 1;
		}
		return c->off + lo;
	}
	return fin;
}

/* Deterministic mode under nic (docs/simulate.md "Deterministic mode"):
 * bytes [from, to) of stream si became final: one chunk of its log, all
 * arriving when the last of them does (latency and rate 0 in the log: the
 * chunk's start is that arrival). A read in turn reads what arrived by
 * its clock from it, as under alpha-beta. The store's chunks are in
 * already (publish_sched). */
static void publish_final_range(uint32_t si, struct stream *s, uint64_t from, uint64_t to)
{
	if (!S.h->det || (uni_shm_conn(S.h, si)->flags & UNI_CONNF_STORE))
		return;
	struct uni_sched *sd = sched_log(si, 0, 0);
	/* The first chunk that ends past from (chunks lie in byte order; a
	 * stream keeps a thousand and more). */
	uint32_t lo = s->headch, hi = s->nch;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->ch[mid].off + s->ch[mid].len <= from)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t i = lo; sd && i < s->nch; i++) {
		/* One log chunk per stream chunk it overlaps, at its own last
		 * byte's arrival: a Gloo notice leaves before data written ahead
		 * of it, and one chunk at the notice's arrival let the data be
		 * read before it arrived. */
		const struct chunk *c = &s->ch[i];
		if (c->off >= to)
			break; /* (chunks lie in byte order) */
		uint64_t a = c->off > from ? c->off : from, b = c->off + c->len < to ? c->off + c->len : to, t;
		if (b <= a)
			continue;
		if (!c->nf)
			t = arrival(c, b - 1);
		else if (!nic_byte_arrival(c->nf, c->flow_off + (b - 1 - c->off), &t))
			t = nic_now() + c->latency; /* (cannot be: below the final prefix) */
		uni_sched_publish(sd, a, b - a, t);
	}
}

/* nic: tells every reader how far its incoming stream is final (event
 * loops read no further; shim.c), and wakes loops that found nothing. */
static void publish_final(void)
{
	int grew = 0;
	uint32_t k = 0;
	for (uint32_t i = 0; i < S.nact; i++) {
		uint32_t si = S.act[i];
		struct stream *s = &S.st[si];
		uint64_t fin = final_prefix(s);
		gate_stream(s, fin);
		if (fin > s->final_pub) {
			publish_final_range(si, s, s->final_pub, fin);
			s->final_pub = fin;
			struct uni_conn *wc = uni_shm_conn(S.h, si);
			uint32_t rc = atomic_load_explicit(&wc->peer_conn, memory_order_acquire);
			if (atomic_load_explicit(&wc->peer_rank, memory_order_acquire) >= 0 && rc < S.h->max_conns)
				atomic_store_explicit(&uni_shm_conn(S.h, rc)->final_off, fin, memory_order_release);
			grew = 1;
		}
		if (fin == s->next_off && !s->msg_left)
			s->active = 0;
		else
			S.act[k++] = si;
	}
	S.nact = k;
	if (grew) {
		atomic_fetch_add_explicit(&S.h->final_seq, 1, memory_order_release);
		uni_futex_wake(&S.h->final_seq, INT32_MAX);
	}
}

uint64_t uni_sim_network_time(void)
{
	return S.nic ? nic_now() : 0;
}

void uni_sim_sched_logs(uint32_t *used, uint32_t *cap, uint64_t *denied)
{
	*used = S.sched_used;
	*cap = S.sched_cap;
	*denied = S.sched_denied;
}

uint64_t uni_sim_late(void)
{
	return S.nic ? nic_late() : 0;
}

void uni_sim_late_ns(uint64_t *max, uint64_t *sum)
{
	*max = *sum = 0;
	if (S.nic)
		nic_late_ns(max, sum);
}
