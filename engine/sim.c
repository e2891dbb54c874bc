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
	uint64_t start;   /* alpha-beta: first bit on the wire */
	double ns_per_byte;
	uint64_t latency;
	struct nic_flow *nf; /* nic: its flow (a whole Gloo message) */
	uint64_t flow_off;   /* nic: where the chunk starts within the flow */
};

struct waiter {
	struct uni_op op;
	uint64_t end; /* byte offset (exclusive) the read needs */
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
	uint64_t msg_left;          /* nic: bytes of last_data's message not seen yet */
	uint64_t msg_seen;          /* nic: bytes of it seen */
	int listed;                 /* in S.waiting_streams */
};

static struct {
	const struct uni_config *cfg;
	struct uni_shm_hdr *h;
	uni_trace_put_f put;
	struct stream *st;
	uint64_t waiting;
	int nic;
	uint32_t *wstreams; /* streams with waiting reads (nic) */
	uint32_t nwstreams;
} S;

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

int uni_sim_init(const struct uni_config *cfg, struct uni_shm_hdr *h, uni_trace_put_f put)
{
	S.cfg = cfg;
	S.h = h;
	S.put = put;
	S.st = calloc(h->max_conns, sizeof(*S.st));
	S.wstreams = calloc(h->max_conns, sizeof(*S.wstreams));
	S.nic = cfg->net_model == UNI_NET_NIC;
	if (S.nic) {
		if (nic_init(h->max_ranks, cfg->bandwidth_bps / 8e9) < 0)
			return -1;
		nic_on_done(flow_done);
	}
	return S.st && S.wstreams ? 0 : -1;
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

/* Latency and bandwidth of the link from rank a to rank b. */
static void link_params(int a, int b, uint64_t *lat, double *bps)
{
	*lat = S.cfg->latency_ns;
	*bps = S.cfg->bandwidth_bps;
	for (uint32_t i = 0; i < S.cfg->nlinks; i++) {
		const struct uni_link_cfg *l = &S.cfg->links[i];
		if ((l->from < 0 || l->from == a) && (l->to < 0 || l->to == b)) {
			*lat = l->latency_ns;
			*bps = l->bandwidth_bps;
		}
	}
}

static uint64_t arrival(const struct chunk *c, uint64_t byte)
{
	double k = (double)(byte - c->off + 1);
	return c->start + (uint64_t)llround(k * c->ns_per_byte) + c->latency;
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

static void answer(const struct uni_op *op, uint64_t arrive)
{
	struct uni_ring *ring = uni_shm_ring(S.h, op->ring);
	uint64_t t0 = op->e.t0;
	uint64_t t1 = (op->e.flags & UNI_EVF_DISPATCHER) ? arrive : (arrive > t0 ? arrive : t0);
	ring->resp_t = t1;
	/* Until the reader publishes its own state, the horizon must count
	 * it at the time it is given now (not as waiting, not as an idle
	 * loop): else the network could run past t1 before it sends what
	 * this answer releases. */
	atomic_store_explicit(&ring->vt_pub, t1, memory_order_release);
	atomic_store_explicit(&ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
	atomic_store_explicit(&ring->resp_seq, (uint32_t)op->e.a, memory_order_release);
	uni_futex_wake(&ring->resp_seq, 1);

	struct uni_trec r;
	memset(&r, 0, sizeof(r));
	r.kind = UNI_TR_RECV;
	r.flags = op->e.flags;
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
	struct uni_ring *ring = uni_shm_ring(S.h, op->ring);
	ring->resp_t = op->e.t0;
	atomic_store_explicit(&ring->resp_seq, (uint32_t)op->e.a, memory_order_release);
	uni_futex_wake(&ring->resp_seq, 1);
}

/* Drops chunks no read can need any more. */
static void trim(struct stream *s, uint64_t consumed)
{
	while (s->headch < s->nch && s->ch[s->headch].off + s->ch[s->headch].len <= consumed) {
		if (s->ch[s->headch].nf)
			nic_flow_release(s->ch[s->headch].nf);
		s->headch++;
	}
	if (s->headch > 64 && s->headch * 2 > s->nch) {
		memmove(s->ch, s->ch + s->headch, (s->nch - s->headch) * sizeof(*s->ch));
		s->nch -= s->headch;
		s->headch = 0;
	}
}

static void serve_waiters(struct stream *s)
{
	uint32_t k = 0;
	uint64_t t;
	for (uint32_t i = 0; i < s->nwait; i++) {
		struct waiter *w = &s->wait[i];
		if (w->end <= s->next_off && stream_final(s, w->end - 1, &t)) {
			answer(&w->op, t);
			S.waiting--;
		} else {
			s->wait[k++] = *w;
		}
	}
	s->nwait = k;
}

static void schedule(struct stream *s, const struct uni_op *op)
{
	const struct uni_ev *e = &op->e;
	struct uni_conn *c = uni_shm_conn(S.h, e->conn);
	int peer = atomic_load(&c->peer_rank);
	uint64_t lat;
	double bps;
	link_params(op->rank, peer, &lat, &bps);
	double npb = 8e9 / bps;
	uint64_t tx = (uint64_t)llround((double)e->len * npb);
	uint64_t start;
	if (S.nic && !(e->flags & UNI_EVF_NOTIFY) && s->msg_left && s->last_data) {
		/* The rest of a message whose first part came earlier (a write
		 * that hit EAGAIN, finished by the loop thread): same flow. */
		uint64_t take = e->len < s->msg_left ? e->len : s->msg_left;
		if (s->nch == s->capch)
			s->ch = grow(s->ch, &s->capch, sizeof(*s->ch));
		s->ch[s->nch++] = (struct chunk){.off = e->off, .len = e->len, .nf = s->last_data,
						 .flow_off = s->msg_seen};
		nic_flow_hold(s->last_data);
		s->msg_seen += e->len;
		s->msg_left -= take;
		s->next_off = e->off + e->len;
		return;
	}
	if (S.nic) {
		struct uni_trec *r = calloc(1, sizeof(*r));
		if (!r)
			abort();
		r->kind = UNI_TR_SEND;
		r->flags = e->flags;
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
		struct nic_flow *nf = nic_flow_new(op->rank, peer, e->t0, bytes, lat,
						   (e->flags & UNI_EVF_NOTIFY) ? NULL : s->last_data, r);
		if (!(e->flags & UNI_EVF_NOTIFY)) {
			if (s->last_data)
				nic_flow_unhold(s->last_data);
			s->last_data = nf;
			nic_flow_hold(nf);
			s->msg_seen = e->len;
			s->msg_left = e->b;
		}
		if (s->nch == s->capch)
			s->ch = grow(s->ch, &s->capch, sizeof(*s->ch));
		s->ch[s->nch++] = (struct chunk){.off = e->off, .len = e->len, .nf = nf};
		s->next_off = e->off + e->len;
		return;
	}
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
	s->ch[s->nch++] = (struct chunk){.off = e->off, .len = e->len, .start = start,
					 .ns_per_byte = npb, .latency = lat};
	s->next_off = e->off + e->len;

	struct uni_trec r;
	memset(&r, 0, sizeof(r));
	r.kind = UNI_TR_SEND;
	r.flags = e->flags;
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

void uni_sim_read(const struct uni_op *op)
{
	struct uni_conn *c = uni_shm_conn(S.h, op->e.conn);
	uint32_t peer_conn = atomic_load(&c->peer_conn);
	struct stream *s = &S.st[peer_conn];
	uint64_t end = op->e.off + op->e.len;
	uint64_t t;
	if (end <= s->next_off && stream_final(s, end - 1, &t)) {
		answer(op, t);
		trim(s, op->e.off);
		return;
	}
	if (s->nwait == s->capwait)
		s->wait = grow(s->wait, &s->capwait, sizeof(*s->wait));
	s->wait[s->nwait++] = (struct waiter){.op = *op, .end = end};
	S.waiting++;
	if (S.nic && !s->listed) {
		s->listed = 1;
		S.wstreams[S.nwstreams++] = peer_conn;
	}
}

void uni_sim_forget_ring(uint32_t ring)
{
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

uint64_t uni_sim_waiting_reads(void)
{
	return S.waiting;
}

int uni_sim_is_nic(void)
{
	return S.nic;
}

void uni_sim_advance(uint64_t horizon, uint64_t real_now)
{
	if (!S.nic)
		return;
	for (int round = 0; round < 64; round++) {
		uint64_t h = horizon;
		uint64_t b = nic_unread_bound(real_now, UNI_NIC_UNREAD_STALE_NS);
		if (b < h)
			h = b;
		uint64_t before = nic_now();
		if (h <= before)
			break;
		nic_advance(h);
		if (nic_now() == before)
			break;
	}
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

uint64_t uni_sim_network_time(void)
{
	return S.nic ? nic_now() : 0;
}

uint64_t uni_sim_late(void)
{
	return S.nic ? nic_late() : 0;
}
