/* unitrace replay TRACE --config OTHER.yaml [--sweep KEY=V1,V2,...] [--json]
 *
 * Re-times the event graph a simulate-mode trace recorded (trace 1.3,
 * docs/trace-format.md) under another network or other slowdowns, without
 * running the program again. Every thread is replayed as the program of its
 * records, in their order (seq):
 *
 *   compute   the clock moves by the CPU time it took x the new slowdown
 *             (the recorded virtual time x new/old slowdown);
 *   idle      a sleep: the clock moves by the same virtual time;
 *   signal    the thread hands its clock on (the value other threads take);
 *   take      the clock becomes max(clock, the signal's replayed value)
 *             (set, for a new thread's start);
 *   dep       the next send is stamped no earlier than that event's value;
 *   send      a chunk of a connection's byte stream, stamped with the clock
 *             (data: max with its deps; a dispatcher's data: its deps alone;
 *             a continuation: its message's stamp), timed by the network
 *             model of the new configuration (engine/nic.c for nic);
 *   recv      the clock becomes max(clock, arrival of the last byte read)
 *             (a dispatcher's: that arrival);
 *   sent      a Gloo send completion: max(clock, the send-buffer model).
 *
 * Threads go in virtual-time order (the runnable thread with the earliest
 * clock next); under nic the network moves only up to the earliest clock
 * of a thread that can still send. The answer is exact for a program whose
 * control flow does not depend on timing; where it does (a wait that found
 * its predicate true in the recorded run but would block in the new one,
 * and it is not in the graph), the replay follows the recorded control
 * flow. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nic.h"
#include "uni/common.h"
#include "uni/config.h"
#include "uni/shm.h"
#include "uni/trace.h"
#include "uni/trace_write.h"
#include "unitrace.h"

struct chunk {
	uint64_t off, len;
	uint32_t flags;
	uint32_t msg;      /* index of its message's first chunk in the stream */
	uint64_t msg_len;  /* first chunk of a message: bytes of the whole message */
	int sched;         /* scheduled in the replayed network */
	uint64_t stamp;    /* replayed stamp */
	uint64_t start;    /* alpha-beta: first bit on the wire */
	double npb;
	uint64_t lat;
	struct nic_flow *nf; /* nic */
	uint64_t flow_off;
	uint64_t rec;      /* the SEND record */
};

struct stream {
	int32_t rank, peer;
	uint32_t peer_conn; /* + 1; 0: unknown */
	struct chunk *ch;   /* sorted by offset */
	uint32_t nch, capch;
	uint32_t next;      /* chunks scheduled so far (in offset order) */
	uint64_t free_at;   /* alpha-beta */
	struct nic_flow *last_data;
	int store;          /* the rendezvous store's: costs nothing (UNI_TRF_STORE) */
};

struct thread {
	int32_t rank, tid;
	int dispatcher, main;
	uint32_t *ev;     /* record indices, by seq */
	uint32_t nev, capev;
	uint32_t pc;
	uint64_t T, dep;
	int have_dep;
	int64_t delay;  /* (1.8) the next send's stamp: the clock plus this (UNI_TR_DELAY) */
	int have_delay;
	uint32_t delay_seq; /* ... for the send right after it (seq + 1) */
	int done;
	uint64_t *val;    /* replayed value of each event, by seq */
	uint8_t *have;    /* ... known */
	uint64_t *tafter; /* replayed clock after each event, by seq */
	uint64_t *rval;   /* recorded clock after each event (UNI_SRC_POS sources) */
	uint8_t *present; /* an event with that seq is in the trace */
	uint32_t *prev;   /* by seq, 0 to maxseq + 1: 1 + the last event before it (0: none) */
	uint32_t *prevcomp; /* ... the last COMPUTE before it (an NCCL operation's start, 1.9) */
	uint32_t maxseq;
	uint64_t compute, idle, waited, end;
	int diverged;
	int owner;        /* owns val/have (a dispatcher's per-connection programs share them) */
	int64_t conn;     /* a dispatcher's program for this connection's reads; -1: the rest */
};

struct replay {
	struct uni_trec *rec;
	uint64_t nrec;
	struct thread *th;
	uint32_t nth, capth;
	struct stream *st; /* by connection index */
	uint32_t nst;
	double old_slow[UNI_MAX_RANKS];
	int32_t nranks;
	int32_t pid[UNI_MAX_RANKS];
	char hdr_config[132];
	struct uni_trace_hdr hdr;
	struct uni_trec *out; /* -o: the re-timed records, by record index */
	uint64_t orig_end[UNI_MAX_RANKS];
	int have_orig_end[UNI_MAX_RANKS];
	/* per configuration */
	const struct uni_config *cfg;
	int nic;
	uint64_t late;
};

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static void *xgrow(void *p, uint32_t *cap, size_t elem)
{
	uint32_t n = *cap ? *cap * 2 : 16;
	void *q = realloc(p, (size_t)n * elem);
	if (!q) {
		fputs("unitrace: out of memory\n", stderr);
		exit(1);
	}
	*cap = n;
	return q;
}

static struct thread *thread_of(struct replay *R, int32_t rank, int32_t tid, int create)
{
	for (uint32_t i = 0; i < R->nth; i++)
		if (R->th[i].tid == tid && R->th[i].rank == rank)
			return &R->th[i];
	if (!create)
		return NULL;
	if (R->nth == R->capth)
		R->th = xgrow(R->th, &R->capth, sizeof(*R->th));
	struct thread *t = &R->th[R->nth++];
	memset(t, 0, sizeof(*t));
	t->rank = rank;
	t->tid = tid;
	t->conn = -1;
	return t;
}

static struct thread *thread_by_tid(struct replay *R, uint32_t tid)
{
	for (uint32_t i = 0; i < R->nth; i++)
		if ((uint32_t)R->th[i].tid == tid)
			return &R->th[i];
	return NULL;
}

static int graph_kind(uint16_t k)
{
	switch (k) {
	case UNI_TR_THREAD:
	case UNI_TR_COMPUTE:
	case UNI_TR_IDLE:
	case UNI_TR_SEND:
	case UNI_TR_RECV:
	case UNI_TR_SENT:
	case UNI_TR_SIGNAL:
	case UNI_TR_TAKE:
	case UNI_TR_DEP:
	case UNI_TR_DELAY:
		return 1;
	}
	return 0;
}

static struct thread *sort_thread;
static struct uni_trec *sort_rec;
static int cmp_seq(const void *a, const void *b)
{
	uint32_t x = sort_rec[*(const uint32_t *)a].seq, y = sort_rec[*(const uint32_t *)b].seq;
	if (x != y)
		return x < y ? -1 : 1;
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	return i < j ? -1 : i > j;
}

static int cmp_chunk(const void *a, const void *b)
{
	const struct chunk *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Loads the trace and builds the threads' programs and the streams. */
static int load(struct replay *R, const char *path)
{
	struct uni_trace_reader rd;
	if (uni_trace_open(&rd, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", rd.err);
		return -1;
	}
	if (rd.hdr.mode != UNI_MODE_SIMULATE) {
		fprintf(stderr, "unitrace: %s: a %s-mode trace; replay re-times a simulate-mode trace\n", path,
			uni_mode_name(rd.hdr.mode));
		uni_trace_close(&rd);
		return -1;
	}
	if (rd.hdr.version_major == 1 && rd.hdr.version_minor < 3) {
		fprintf(stderr, "unitrace: %s: trace format 1.%u has no event graph (1.3 and later do); "
				"record it again with this version\n",
			path, rd.hdr.version_minor);
		uni_trace_close(&rd);
		return -1;
	}
	uint64_t cap = 0;
	struct uni_trec t;
	int rc;
	while ((rc = uni_trace_next(&rd, &t)) == 1) {
		if (R->nrec == cap) {
			cap = cap ? cap * 2 : 4096;
			R->rec = realloc(R->rec, cap * sizeof(*R->rec));
			if (!R->rec) {
				fputs("unitrace: out of memory\n", stderr);
				exit(1);
			}
		}
		R->rec[R->nrec++] = t;
	}
	if (rc < 0) {
		fprintf(stderr, "unitrace: %s\n", rd.err);
		uni_trace_close(&rd);
		return -1;
	}
	if (rd.truncated)
		fprintf(stderr, "unitrace: %s ends inside a record; replaying what is there\n", path);
	snprintf(R->hdr_config, sizeof(R->hdr_config), "%.*s", (int)sizeof(rd.hdr.config_path), rd.hdr.config_path);
	R->hdr = rd.hdr;
	uni_trace_close(&rd);

	/* Connections, ranks, slowdowns. */
	double vsum[UNI_MAX_RANKS] = {0}, csum[UNI_MAX_RANKS] = {0};
	for (uint64_t i = 0; i < R->nrec; i++) {
		struct uni_trec *r = &R->rec[i];
		if (r->rank >= 0 && r->rank < (int32_t)UNI_MAX_RANKS && r->rank + 1 > R->nranks)
			R->nranks = r->rank + 1;
		if (r->kind == UNI_TR_RANK_ATTACH && r->rank >= 0 && r->rank < (int32_t)UNI_MAX_RANKS)
			R->pid[r->rank] = (int32_t)r->a;
		if (r->kind == UNI_TR_RANK_EXIT && r->rank >= 0 && r->rank < (int32_t)UNI_MAX_RANKS &&
		    (r->flags & UNI_TRF_CLEAN)) {
			R->orig_end[r->rank] = r->t0;
			R->have_orig_end[r->rank] = 1;
		}
		if (r->kind == UNI_TR_CONN && r->conn < UNI_MAX_CONNS) {
			if (r->conn + 1 > R->nst) {
				uint32_t n = r->conn + 1;
				R->st = realloc(R->st, n * sizeof(*R->st));
				if (!R->st)
					exit(1);
				memset(R->st + R->nst, 0, (n - R->nst) * sizeof(*R->st));
				R->nst = n;
			}
			R->st[r->conn].rank = r->rank;
			R->st[r->conn].peer = r->peer;
			R->st[r->conn].peer_conn = (uint32_t)r->a + 1;
			R->st[r->conn].store = (r->flags & UNI_TRF_STORE) != 0;
		}
		if (r->kind == UNI_TR_COMPUTE && r->rank >= 0 && r->rank < (int32_t)UNI_MAX_RANKS && r->off) {
			vsum[r->rank] += (double)(r->t1 - r->t0);
			csum[r->rank] += (double)r->off;
		}
	}
	/* The recorded run's slowdowns: from its configuration when that file
	 * is still there, else estimated from the compute records. */
	static struct uni_config old;
	char err[256];
	uni_config_defaults(&old);
	struct stat sb; /* a regular file only: a trace could name /dev/stdin */
	int have_old = R->hdr_config[0] && stat(R->hdr_config, &sb) == 0 && S_ISREG(sb.st_mode) &&
		       uni_config_load(&old, R->hdr_config, err, sizeof(err)) == 0;
	for (int32_t i = 0; i < R->nranks; i++)
		R->old_slow[i] = have_old ? uni_config_rank_slowdown(&old, i) : csum[i] > 0 ? vsum[i] / csum[i] : 1.0;

	/* Threads and their programs. */
	for (uint64_t i = 0; i < R->nrec; i++) {
		struct uni_trec *r = &R->rec[i];
		if (r->rank < 0 || r->tid <= 0)
			continue;
		if (r->kind == UNI_TR_THREAD_END) {
			struct thread *th = thread_of(R, r->rank, r->tid, 1);
			if (r->flags & 1)
				th->dispatcher = 1;
			continue;
		}
		if (!graph_kind(r->kind))
			continue;
		struct thread *th = thread_of(R, r->rank, r->tid, 1);
		if ((r->kind == UNI_TR_SEND || r->kind == UNI_TR_RECV) && (r->flags & UNI_TRF_DISPATCHER))
			th->dispatcher = 1;
		if (th->nev == th->capev)
			th->ev = xgrow(th->ev, &th->capev, sizeof(*th->ev));
		th->ev[th->nev++] = (uint32_t)i;
		if (r->seq > th->maxseq)
			th->maxseq = r->seq;
		/* A send is also a chunk of its connection's stream. */
		if (r->kind == UNI_TR_SEND && r->conn < R->nst) {
			struct stream *s = &R->st[r->conn];
			if (s->nch == s->capch)
				s->ch = xgrow(s->ch, &s->capch, sizeof(*s->ch));
			s->ch[s->nch++] = (struct chunk){.off = r->off, .len = r->len, .flags = r->flags, .rec = i};
		}
	}
	sort_rec = R->rec;
	uint32_t nreal = R->nth;
	for (uint32_t i = 0; i < nreal; i++) {
		/* Event numbers are dense in a real trace (a few events leave no
		 * record): far beyond the records, the file is not sound. */
		if (R->th[i].maxseq > 16u * R->th[i].nev + 1024u) {
			fprintf(stderr, "unitrace: %s: thread %d of rank %d numbers its events up to %u with %u "
					"records: not a sound trace\n",
				path, R->th[i].tid, R->th[i].rank, R->th[i].maxseq, R->th[i].nev);
			return -1;
		}
	}
	for (uint32_t i = 0; i < nreal; i++) {
		struct thread *th = &R->th[i];
		sort_thread = th;
		if (th->nev)
			qsort(th->ev, th->nev, sizeof(*th->ev), cmp_seq);
		th->main = th->rank < (int32_t)UNI_MAX_RANKS && R->pid[th->rank] == th->tid;
		th->val = calloc((size_t)th->maxseq + 1, sizeof(*th->val));
		th->have = calloc((size_t)th->maxseq + 1, 1);
		th->tafter = calloc((size_t)th->maxseq + 1, sizeof(*th->tafter));
		th->rval = calloc((size_t)th->maxseq + 1, sizeof(*th->rval));
		th->present = calloc((size_t)th->maxseq + 1, 1);
		th->prev = calloc((size_t)th->maxseq + 2, sizeof(*th->prev));
		th->prevcomp = calloc((size_t)th->maxseq + 2, sizeof(*th->prevcomp));
		th->owner = 1;
		if (!th->val || !th->have || !th->tafter || !th->rval || !th->present || !th->prev || !th->prevcomp)
			exit(1);
		/* The recorded clock after each event, where the record says it;
		 * elsewhere (a data send, a dep) the clock did not move. */
		uint64_t clk = 0;
		for (uint32_t k = 0; k < th->nev; k++) {
			struct uni_trec *r = &R->rec[th->ev[k]];
			switch (r->kind) {
			case UNI_TR_THREAD:
			case UNI_TR_SIGNAL:
				clk = r->t0;
				break;
			case UNI_TR_SEND:
				if (r->flags & UNI_TRF_NOTIFY)
					clk = r->t0;
				break;
			case UNI_TR_COMPUTE:
			case UNI_TR_IDLE:
			case UNI_TR_RECV:
			case UNI_TR_SENT:
				clk = r->t1;
				break;
			case UNI_TR_TAKE:
				clk = (r->flags & UNI_TRF_SET) ? r->t1 : max64(r->t0, r->t1);
				break;
			}
			th->rval[r->seq] = clk;
			th->present[r->seq] = 1;
		}
		/* (Where each position's last event and last COMPUTE are:
		 * clock_before.) */
		for (uint32_t k = 0; k < th->nev; k++)
			if (R->rec[th->ev[k]].kind == UNI_TR_COMPUTE)
				th->prevcomp[R->rec[th->ev[k]].seq + 1] = R->rec[th->ev[k]].seq + 1;
		for (uint32_t q = 1; q <= th->maxseq + 1; q++) {
			th->prev[q] = th->present[q - 1] ? q : th->prev[q - 1];
			if (!th->prevcomp[q])
				th->prevcomp[q] = th->prevcomp[q - 1];
		}
	}
	/* An event loop has no clock of its own: it handles each connection's
	 * bytes when they arrive, in whatever order that is under the new
	 * configuration, not in the order the recorded run met them. So a
	 * dispatcher is replayed as one program per connection it reads: a
	 * read and what the loop did in answer to it (until its next read)
	 * go to that connection's program. */
	for (uint32_t i = 0; i < nreal; i++) {
		if (!R->th[i].dispatcher)
			continue;
		uint32_t n = R->th[i].nev, cur = i;
		uint32_t *ev = R->th[i].ev;
		R->th[i].ev = NULL;
		R->th[i].nev = R->th[i].capev = 0;
		for (uint32_t k = 0; k < n; k++) {
			struct uni_trec *r = &R->rec[ev[k]];
			if (r->kind == UNI_TR_RECV) {
				cur = UINT32_MAX;
				for (uint32_t j = 0; j < R->nth; j++)
					if (R->th[j].tid == R->th[i].tid && R->th[j].rank == R->th[i].rank &&
					    R->th[j].conn == (int64_t)r->conn)
						cur = j;
				if (cur == UINT32_MAX) {
					if (R->nth == R->capth)
						R->th = xgrow(R->th, &R->capth, sizeof(*R->th));
					cur = R->nth++;
					R->th[cur] = R->th[i];
					R->th[cur].owner = 0;
					R->th[cur].conn = r->conn;
					R->th[cur].ev = NULL;
					R->th[cur].nev = R->th[cur].capev = 0;
				}
			}
			struct thread *tp = &R->th[cur];
			if (tp->nev == tp->capev)
				tp->ev = xgrow(tp->ev, &tp->capev, sizeof(*tp->ev));
			tp->ev[tp->nev++] = ev[k];
		}
		free(ev);
	}
	/* Messages: a chunk that does not continue one begins one. */
	for (uint32_t c = 0; c < R->nst; c++) {
		struct stream *s = &R->st[c];
		if (s->nch)
			qsort(s->ch, s->nch, sizeof(*s->ch), cmp_chunk);
		uint32_t m = 0;
		for (uint32_t k = 0; k < s->nch; k++) {
			if (!(s->ch[k].flags & UNI_TRF_CONT) || k == 0)
				m = k;
			s->ch[k].msg = m;
			s->ch[m].msg_len += s->ch[k].len;
		}
	}
	return 0;
}

/* Replay state -------------------------------------------------------- */

static int debug_replay; /* UNI_DEBUG_REPLAY: say where a replay departs from the recording */

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void reset(struct replay *R, const struct uni_config *cfg)
{
	R->cfg = cfg;
	R->nic = uni_config_fluid(cfg);
	R->late = 0;
	for (uint32_t i = 0; i < R->nth; i++) {
		struct thread *th = &R->th[i];
		th->pc = 0;
		th->T = 0;
		th->dep = 0;
		th->have_dep = 0;
		th->delay = 0;
		th->have_delay = 0;
		th->done = th->nev == 0;
		th->compute = th->idle = th->waited = th->end = 0;
		th->diverged = 0;
		if (th->owner)
			memset(th->have, 0, (size_t)th->maxseq + 1);
	}
	for (uint32_t c = 0; c < R->nst; c++) {
		struct stream *s = &R->st[c];
		s->next = 0;
		s->free_at = 0;
		s->last_data = NULL;
		for (uint32_t k = 0; k < s->nch; k++) {
			s->ch[k].sched = 0;
			s->ch[k].nf = NULL;
		}
	}
	if (R->nic) {
		nic_reset();
		nic_idle_jump(1);
		nic_init(UNI_MAX_RANKS, cfg);
	}
}


static void schedule_chunk(struct replay *R, struct stream *s, struct chunk *c)
{
	int notify = (c->flags & UNI_TRF_NOTIFY) != 0;
	struct chunk *m = &s->ch[c->msg];
	if (!notify && m != c)
		c->stamp = m->stamp; /* the rest of a message keeps its stamp */
	if (s->store) {
		/* The store's control plane (as unid times it): a byte arrives
		 * when it is written, over no link. */
		c->nf = NULL;
		c->lat = 0;
		c->npb = 0;
		c->start = c->stamp;
	} else if (R->nic) {
		if (!notify && m != c) {
			c->nf = m->nf; /* the rest of a message: its flow */
			c->flow_off = c->off - m->off;
		} else {
			uint64_t st = c->stamp;
			if (st < nic_now()) {
				R->late++;
				if (debug_replay)
					fprintf(stderr, "replay: late flow conn %u off %" PRIu64 ": stamp %.6f ms, network %.6f ms\n",
						(uint32_t)(s - R->st), c->off, ms(st), ms(nic_now()));
				st = nic_now();
			}
			c->nf = nic_flow_new(s->rank, s->peer, st, notify ? c->len : c->msg_len,
					     notify ? NULL : s->last_data, NULL);
			c->flow_off = 0;
			if (!notify)
				s->last_data = c->nf;
		}
		c->lat = nic_flow_latency(c->nf);
	} else {
		double bps;
		uni_config_link(R->cfg, s->rank, s->peer, &c->lat, &bps);
		c->npb = 8e9 / bps;
		uint64_t tx = (uint64_t)llround((double)c->len * c->npb);
		c->start = notify ? c->stamp : max64(c->stamp, s->free_at);
		if (!notify)
			s->free_at = c->start + tx;
	}
	c->sched = 2;
}

/* A chunk's send was replayed. A notice goes when posted; data goes in
 * the connection's order (FIFO), so it waits for the data before it. */
static void schedule(struct replay *R, struct stream *s, struct chunk *c)
{
	if (c->flags & UNI_TRF_NOTIFY) {
		schedule_chunk(R, s, c);
		return;
	}
	while (s->next < s->nch) {
		struct chunk *d = &s->ch[s->next];
		if (d->flags & UNI_TRF_NOTIFY) {
			s->next++;
			continue;
		}
		if (!d->sched)
			return;
		schedule_chunk(R, s, d);
		s->next++;
	}
}

static struct chunk *chunk_at(struct stream *s, uint64_t b)
{
	uint32_t lo = 0, hi = s->nch;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (s->ch[mid].off + s->ch[mid].len <= b)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nch && s->ch[lo].off <= b ? &s->ch[lo] : NULL;
}

/* When byte b of stream s left (*dep) and arrives (*arr): 1 when final,
 * 0 when not yet (not scheduled, or nic not that far), -1 when no chunk
 * holds it (the trace lacks it). */
static int byte_time(struct stream *s, uint64_t b, uint64_t *dep, uint64_t *arr)
{
	struct chunk *c = chunk_at(s, b);
	if (!c)
		return -1;
	if (c->sched != 2)
		return 0;
	if (c->nf) {
		uint64_t a;
		if (!nic_byte_arrival(c->nf, c->flow_off + (b - c->off), &a)) {
			nic_flow_watch(c->nf, c->flow_off + (b - c->off) + 1);
			return 0;
		}
		*arr = a;
		*dep = a - c->lat;
		return 1;
	}
	*dep = c->start + (uint64_t)llround((double)(b - c->off + 1) * c->npb);
	*arr = *dep + c->lat;
	return 1;
}

/* Recorded compute d of rank at the new configuration's slowdown (x new /
 * old); the same slowdown gives the recorded time exactly (no rounding). */
static uint64_t scaled_compute(const struct replay *R, int32_t rank, uint64_t d)
{
	double sn = uni_config_rank_slowdown(R->cfg, rank);
	double so = rank >= 0 && rank < (int32_t)UNI_MAX_RANKS ? R->old_slow[rank] : 1.0;
	return sn == so || !(so > 0) ? d : (uint64_t)llround((double)d * (sn / so));
}

/* Value of event id, or 0 and *ok = 0 when not replayed yet; *ok = -1:
 * no such event (no dependency). recorded: the value the take had in the
 * recorded run (a UNI_SRC_POS source is the thread's clock before an
 * event: after the event before it, plus the compute it had not reported
 * yet, recorded minus its clock then). */
static uint64_t event_value(struct replay *R, uint64_t id, uint64_t recorded, int *ok)
{
	struct thread *th = thread_by_tid(R, (uint32_t)(id >> 32));
	uint32_t seq = (uint32_t)id;
	if (th && (seq & UNI_SRC_POS)) {
		uint32_t pos = seq & ~UNI_SRC_POS, k = pos < th->maxseq + 1 ? pos : th->maxseq + 1;
		while (k > 0 && !th->present[k - 1])
			k--;
		if (k == 0) {
			*ok = -1;
			return 0;
		}
		if (!th->have[k - 1]) {
			*ok = 0;
			return 0;
		}
		*ok = 1;
		/* What the thread added since is compute (the rest are events:
		 * takes, sleeps and timed waits of 100 us or more; shorter idle
		 * stretches fall in here too and are scaled with it). */
		uint64_t base = th->rval[k - 1];
		return th->tafter[k - 1] + scaled_compute(R, th->rank, recorded > base ? recorded - base : 0);
	}
	if (!th || seq > th->maxseq) {
		*ok = -1; /* not in the trace: no dependency */
		return 0;
	}
	*ok = th->have[seq];
	return th->val[seq];
}

enum step { STEP_DONE, STEP_BLOCKED, STEP_NET };

/* -o: the record of an event the replay just ran, with its new times
 * (the fields as unid writes them; docs/trace-format.md). before/after: the
 * thread's clock around the event; v: its value (a send's stamp); taken: a
 * take's or dep's source value, a send completion's time. A send's arrival
 * (t1) is filled in once the network has run (finish_out). An event loop
 * has no clock between events: its read begins (t0) where that connection's
 * program left it, 0 at the first. */
static void retime(struct uni_trec *o, const struct uni_trec *r, uint64_t before, uint64_t after,
		   uint64_t v, int have_taken, uint64_t taken)
{
	switch (r->kind) {
	case UNI_TR_RECV:
		if (have_taken)
			o->a = taken; /* the last byte's arrival */
		/* fall through */
	case UNI_TR_COMPUTE:
	case UNI_TR_IDLE:
		o->t0 = before;
		o->t1 = after;
		break;
	case UNI_TR_SIGNAL:
		o->t0 = o->t1 = after;
		break;
	case UNI_TR_TAKE:
		o->t0 = before;
		if (have_taken)
			o->t1 = taken;
		break;
	case UNI_TR_SEND:
		o->t0 = v;
		break;
	case UNI_TR_SENT:
		o->t0 = before;
		o->t1 = after;
		if (have_taken)
			o->a = taken;
		break;
	default:
		break;
	}
}

/* Runs th's next event if it can; says why not otherwise. */
static enum step step(struct replay *R, struct thread *th)
{
	struct uni_trec *r = &R->rec[th->ev[th->pc]];
	uint64_t v = th->T, before = th->T, taken = 0;
	int ok, have_taken = 0;
	if (debug_replay > 1)
		fprintf(stderr, "step rank %d tid %d seq %u %s T %.6f net %.6f\n", th->rank, th->tid, r->seq,
			uni_trec_kind_name(r->kind), ms(th->T), ms(R->nic ? nic_now() : 0));
	switch (r->kind) {
	case UNI_TR_THREAD:
		break;
	case UNI_TR_COMPUTE: {
		uint64_t d = scaled_compute(R, r->rank, r->t1 - r->t0);
		th->T += d;
		th->compute += d;
		v = th->T;
		break;
	}
	case UNI_TR_IDLE:
		th->T += r->t1 - r->t0;
		th->idle += r->t1 - r->t0;
		v = th->T;
		break;
	case UNI_TR_SIGNAL:
		v = th->T;
		break;
	case UNI_TR_TAKE: {
		uint64_t s = event_value(R, r->a, r->t1, &ok);
		if (ok == 0)
			return STEP_BLOCKED;
		if (ok > 0) {
			taken = s;
			have_taken = 1;
			if (r->flags & UNI_TRF_SET) {
				th->T = s;
			} else if (s > th->T) {
				th->waited += s - th->T;
				th->T = s;
			}
		}
		v = th->T;
		break;
	}
	case UNI_TR_DEP: {
		uint64_t s = event_value(R, r->a, r->t0, &ok);
		if (ok == 0)
			return STEP_BLOCKED;
		if (ok > 0) {
			taken = s;
			have_taken = 1;
			th->dep = th->have_dep ? max64(th->dep, s) : s;
			th->have_dep = 1;
		}
		v = th->T;
		break;
	}
	case UNI_TR_DELAY:
		/* A transfer of the simulated NCCL: its protocol's latencies
		 * after the clock (or, where it left on an earlier arrival than
		 * the latest the thread took, before it). */
		th->delay = (int64_t)r->a;
		th->have_delay = 1;
		th->delay_seq = r->seq;
		v = th->T;
		break;
	case UNI_TR_SEND: {
		struct stream *s = r->conn < R->nst ? &R->st[r->conn] : NULL;
		struct chunk *c = s ? chunk_at(s, r->off) : NULL;
		uint64_t stamp;
		if (th->have_delay && r->seq == th->delay_seq + 1) {
			/* (no sum beyond 2^64 nor below 0, however the file says) */
			uint64_t d = (uint64_t)th->delay;
			if (th->delay < 0)
				stamp = 0ull - d > th->T ? 0 : th->T - (0ull - d);
			else
				stamp = d > UINT64_MAX - th->T ? UINT64_MAX : th->T + d;
		} else if (r->flags & UNI_TRF_NOTIFY)
			stamp = th->T;
		else if (th->dispatcher)
			stamp = th->have_dep ? th->dep : th->T;
		else
			stamp = th->have_dep ? max64(th->T, th->dep) : th->T;
		th->have_dep = 0;
		th->have_delay = 0;
		if (c && c->off == r->off && !c->sched) {
			c->stamp = stamp;
			c->sched = 1;
			schedule(R, s, c);
			if (c->sched == 2)
				stamp = c->stamp; /* a continuation keeps its message's stamp */
		}
		/* A dispatcher that finished a message on its poster's behalf
		 * handles an event of that message's time. */
		if (th->dispatcher && !(r->flags & UNI_TRF_NOTIFY) && (r->flags & UNI_TRF_END))
			th->T = stamp;
		v = stamp;
		break;
	}
	case UNI_TR_RECV: {
		struct stream *s = r->conn < R->nst && R->st[r->conn].peer_conn &&
					   R->st[r->conn].peer_conn - 1 < R->nst
				   ? &R->st[R->st[r->conn].peer_conn - 1]
				   : NULL;
		uint64_t dep, arr;
		int f = s && r->len ? byte_time(s, r->off + r->len - 1, &dep, &arr) : -1;
		if (f == 0)
			return STEP_NET;
		if (f > 0) {
			taken = arr;
			have_taken = 1;
			if (th->dispatcher) {
				th->T = arr;
			} else if (arr > th->T) {
				th->waited += arr - th->T;
				th->T = arr;
			}
			if (R->nic && r->off + r->len == chunk_at(s, r->off + r->len - 1)->off +
								  chunk_at(s, r->off + r->len - 1)->len) {
				struct chunk *c = chunk_at(s, r->off + r->len - 1);
				if (c->nf && nic_flow_complete_at(c->nf, c->flow_off + c->len))
					nic_flow_read(c->nf);
			}
		}
		v = th->T;
		break;
	}
	case UNI_TR_SENT: {
		struct stream *s = r->conn < R->nst ? &R->st[r->conn] : NULL;
		uint64_t end = r->off, buf = R->cfg->send_buffer, dep = 0, arr, stamp = 0;
		struct chunk *c = s && end ? chunk_at(s, end - 1) : NULL;
		if (c && c->sched != 2)
			return STEP_NET;
		if (c)
			stamp = s->ch[c->msg].stamp;
		if (c && buf != UINT64_MAX && end > buf) {
			int f = byte_time(s, end - buf - 1, &dep, &arr);
			if (f == 0)
				return STEP_NET;
			if (f < 0)
				dep = 0;
		}
		uint64_t t = max64(stamp, dep);
		taken = t;
		have_taken = 1;
		if (t > th->T) {
			th->waited += t - th->T;
			th->T = t;
		}
		v = th->T;
		break;
	}
	default:
		break;
	}
	if (R->out) {
		retime(&R->out[th->ev[th->pc]], r, before, th->T, v, have_taken, taken);
		/* The deps just before a send carry its stamp (as the shim
		 * writes them). */
		for (uint32_t q = th->pc; r->kind == UNI_TR_SEND && q-- > 0;) {
			const struct uni_trec *p = &R->rec[th->ev[q]];
			if (p->kind == UNI_TR_DEP || p->kind == UNI_TR_DELAY)
				R->out[th->ev[q]].t0 = R->out[th->ev[q]].t1 = v;
			else if (p->kind != UNI_TR_COMPUTE)
				break;
		}
	}
	if (r->seq <= th->maxseq) {
		th->val[r->seq] = v;
		th->tafter[r->seq] = th->T;
		th->have[r->seq] = 1;
	}
	if (debug_replay) {
		/* The value the recorded run had here, to find where a replay
		 * under the same configuration departs from it. */
		uint64_t want = v;
		switch (r->kind) {
		case UNI_TR_SEND:
		case UNI_TR_SIGNAL:
			want = r->t0;
			break;
		case UNI_TR_RECV:
		case UNI_TR_SENT:
		case UNI_TR_COMPUTE:
		case UNI_TR_IDLE:
			want = r->t1;
			break;
		case UNI_TR_TAKE:
			want = (r->flags & UNI_TRF_SET) ? r->t1 : max64(r->t0, r->t1);
			break;
		}
		if ((want > v ? want - v : v - want) > 1000 && !th->diverged) {
			th->diverged = 1;
			fprintf(stderr, "replay: rank %d tid %d%s departs at seq %u (%s): replayed %.6f ms, recorded %.6f ms "
					"(conn %u off %" PRIu64 " len %" PRIu64 " a %" PRIx64 " flags %#x)\n",
				th->rank, th->tid, th->dispatcher ? " (dispatcher)" : "", r->seq,
				uni_trec_kind_name(r->kind), ms(v), ms(want), r->conn, r->off, r->len, r->a, r->flags);
		}
	}
	if (++th->pc == th->nev) {
		th->done = 1;
		th->end = th->T;
	}
	return STEP_DONE;
}

/* Replays every thread to its end. Returns 0, or -1 when it cannot go on
 * (the graph waits on itself: a trace that lacks part of it).
 *
 * Each round: the candidates are the threads whose next event does not
 * wait for another thread's event; they go in clock order, and under nic
 * the network first moves up to the clock of the earliest one not known
 * to wait for it (a thread waiting for bytes cannot send before they come,
 * and the byte it waits for stops the network when it leaves). */
static int run_replay(struct replay *R)
{
	uint8_t *netw = calloc(R->nth ? R->nth : 1, 1);
	if (!netw)
		exit(1);
	int rc = -1;
	uint64_t idle_rounds = 0;
	for (;;) {
		if (++idle_rounds > 10000000) /* no event for that long: a graph that cannot go on */
			break;
		/* Earliest runnable thread not known to wait for the network. */
		struct thread *cand = NULL;
		int left = 0, waiting_net = 0;
		for (uint32_t i = 0; i < R->nth; i++) {
			struct thread *th = &R->th[i];
			if (th->done)
				continue;
			left = 1;
			if (netw[i]) {
				waiting_net = 1;
				continue;
			}
			struct uni_trec *r = &R->rec[th->ev[th->pc]];
			int ok = 1;
			if (r->kind == UNI_TR_TAKE || r->kind == UNI_TR_DEP)
				event_value(R, r->a, r->kind == UNI_TR_TAKE ? r->t1 : r->t0, &ok);
			if (ok == 0)
				continue;
			if (!cand || th->T < cand->T)
				cand = th;
		}
		if (!left) {
			rc = 0;
			break;
		}
		if (cand) {
			if (R->nic && cand->T > nic_now()) {
				nic_advance(cand->T);
				if (nic_now() < cand->T) {
					/* Stopped early: a byte somebody waits for has
					 * left (or a flow ended); look again. */
					memset(netw, 0, R->nth);
					continue;
				}
			}
			if (step(R, cand) == STEP_DONE) {
				memset(netw, 0, R->nth);
				idle_rounds = 0;
			} else {
				netw[cand - R->th] = 1;
			}
			continue;
		}
		/* Everyone left waits for the network (or for those who do). */
		if (R->nic && waiting_net) {
			uint64_t before = nic_now();
			nic_advance(UINT64_MAX - 1);
			memset(netw, 0, R->nth);
			if (nic_now() != before)
				continue;
			/* Nothing moved: maybe a wait that is final now. */
			int any = 0;
			for (uint32_t i = 0; i < R->nth && !any; i++)
				if (!R->th[i].done && step(R, &R->th[i]) == STEP_DONE)
					any = 1;
			if (any)
				continue;
		}
		break;
	}
	free(netw);
	return rc;
}

/* Results ------------------------------------------------------------- */

struct result {
	uint64_t end[UNI_MAX_RANKS], compute[UNI_MAX_RANKS], idle[UNI_MAX_RANKS], waited[UNI_MAX_RANKS];
	int have[UNI_MAX_RANKS];
	uint64_t makespan;
	int32_t last;
};

static void collect(struct replay *R, struct result *o)
{
	memset(o, 0, sizeof(*o));
	o->last = -1;
	for (uint32_t i = 0; i < R->nth; i++) {
		struct thread *th = &R->th[i];
		if (th->rank < 0 || th->rank >= (int32_t)UNI_MAX_RANKS || !th->main)
			continue;
		o->have[th->rank] = 1;
		o->end[th->rank] = th->end;
		o->compute[th->rank] = th->compute;
		o->idle[th->rank] = th->idle;
		o->waited[th->rank] = th->waited;
	}
	for (int32_t k = 0; k < R->nranks; k++)
		if (o->have[k] && (o->last < 0 || o->end[k] > o->makespan)) {
			o->makespan = o->end[k];
			o->last = k;
		}
}

static int replay_one(struct replay *R, const struct uni_config *cfg, struct result *o, const char *path)
{
	reset(R, cfg);
	if (run_replay(R) < 0) {
		fprintf(stderr, "unitrace: %s: the replay cannot go on: the recorded graph waits on itself "
				"(a trace cut short, or events the run did not record)\n", path);
		return -1;
	}
	collect(R, o);
	return 0;
}

/* The replayed clock after thread th's last event before seq (a corrupt
 * trace's seq may be far past the thread's events: from its last); with
 * comp, after its last COMPUTE before seq; 0 where there is none or it
 * was not replayed. */
static int clock_before(const struct thread *th, uint32_t seq, int comp, uint64_t *t)
{
	uint32_t q = seq < th->maxseq + 1 ? seq : th->maxseq + 1;
	uint32_t p = comp ? th->prevcomp[q] : th->prev[q];
	if (!p || !th->have[p - 1])
		return 0;
	*t = th->tafter[p - 1];
	return 1;
}

/* -o: what the threads' programs do not say. A send's arrival (t1) once
 * the network has run; an operation's start: its thread's clock after the
 * event before it; an operation of the simulated NCCL (1.9): from its
 * thread's clock after the COMPUTE record before its first event (the shim
 * puts one there, uni_shim_vt_start) to its clock after the operation's
 * last event (the thread's clock goes to the operation's completion),
 * left out where that is not so: an operation timed on the device
 * timeline (its group's start and end are the device's), one of an event
 * loop (no clock of its own), and every one of a trace before 1.9; a
 * thread's end (its programs', for an event loop); a rank's end: its main
 * thread's, as the summary reports it. */
static void finish_out(struct replay *R)
{
	for (uint64_t i = 0; i < R->nrec; i++) {
		struct uni_trec *r = &R->rec[i], *o = &R->out[i];
		switch (r->kind) {
		case UNI_TR_SEND: {
			struct stream *s = r->conn < R->nst ? &R->st[r->conn] : NULL;
			uint64_t dep, arr;
			if (s && r->len && byte_time(s, r->off + r->len - 1, &dep, &arr) > 0)
				o->t1 = arr;
			break;
		}
		case UNI_TR_OP:
		case UNI_TR_THREAD_END: {
			uint64_t end = 0, compute = 0, waited = 0;
			int found = 0;
			for (uint32_t k = 0; k < R->nth; k++) {
				struct thread *th = &R->th[k];
				if (th->rank != r->rank || th->tid != r->tid)
					continue;
				if (r->kind == UNI_TR_OP) {
					/* The programs of an event loop share val/have/tafter. */
					uint64_t t;
					if (clock_before(th, r->seq, 0, &t))
						o->t0 = o->t1 = t;
					break;
				}
				found = 1;
				end = max64(end, th->T);
				compute += th->compute;
				waited += th->waited;
			}
			if (found) {
				/* An event loop ends without a clock, as recorded. */
				o->t0 = o->t1 = (r->flags & 1) ? 0 : end;
				o->off = o->a = compute;
				o->len = waited;
			}
			break;
		}
		case UNI_TR_NCCL_OP: {
			o->kind = 0; /* left out, unless it can be placed */
			struct thread *th = thread_of(R, r->rank, r->tid, 0);
			uint64_t t0, t1;
			if (th && !th->dispatcher && !(r->flags & UNI_NCCL_OPF_DEVTL) &&
			    (R->hdr.version_major > 1 || R->hdr.version_minor >= 9) && clock_before(th, r->seq, 1, &t0) &&
			    clock_before(th, r->seq, 0, &t1)) {
				o->kind = UNI_TR_NCCL_OP;
				o->t0 = t0;
				o->t1 = max64(t0, t1);
			}
			break;
		}
		case UNI_TR_RANK_EXIT:
			for (uint32_t k = 0; k < R->nth; k++) {
				struct thread *th = &R->th[k];
				if (th->rank == r->rank && th->main) {
					o->t0 = o->t1 = th->end;
					o->off = th->compute;
					o->len = th->waited;
				}
			}
			break;
		default:
			break;
		}
	}
}

/* Writes the re-timed trace: the recorded file's header (the configuration
 * replaced by the one replayed) and records, in the recorded order. The
 * header is this writer's (its size and minor version): a newer minor's
 * header extension was skipped when reading and is not copied. */
static int write_out(struct replay *R, const char *config, const char *out)
{
	struct uni_trace_writer *w = calloc(1, sizeof(*w));
	struct uni_trace_hdr h = R->hdr;
	char err[512];
	int rc = 0;

	if (!w)
		return 1;
	w->fd = -1;
	h.hdr_size = UNI_TRACE_HDR_SIZE;
	h.rec_size = UNI_TRACE_REC_SIZE;
	h.version_minor = UNI_TRACE_VERSION_MINOR;
	memset(h.reserved, 0, sizeof(h.reserved));
	memset(h.config_path, 0, sizeof(h.config_path));
	if (config) /* (NUL-terminated, as unid writes it: 127 characters at most) */
		snprintf(h.config_path, sizeof(h.config_path), "%.*s", (int)sizeof(h.config_path) - 1, config);
	/* (What finish_out could not re-time is left out, not kept stale:
	 * its kind is 0.) */
	uint64_t k = 0;
	for (uint64_t i = 0; i < R->nrec; i++)
		if (R->out[i].kind)
			R->out[k++] = R->out[i];
	if (uni_trace_create(w, out, &h, err, sizeof(err)) < 0 ||
	    uni_trace_append(w, R->out, k) < 0 || uni_trace_finish(w) < 0) {
		fprintf(stderr, "unitrace: %s\n", w->err[0] ? w->err : err);
		uni_trace_finish(w);
		rc = 1;
	}
	free(w);
	return rc;
}

/* --sweep KEY=V1,V2,...: the keys a sweep may change. */
static int sweep_set(struct uni_config *c, const char *key, const char *val, char *err, size_t len)
{
	if (!strcmp(key, "network.default.bandwidth")) {
		if (uni_parse_bandwidth(val, &c->bandwidth_bps) < 0)
			goto bad;
		for (uint32_t i = 0; i < c->nlinks; i++)
			c->links[i].bandwidth_bps = c->bandwidth_bps;
		for (uint32_t i = 0; i < c->ntrunks; i++)
			c->trunks[i].bandwidth_bps = c->bandwidth_bps;
		return 0;
	}
	if (!strcmp(key, "network.default.latency")) {
		if (uni_parse_duration(val, &c->latency_ns) < 0)
			goto bad;
		for (uint32_t i = 0; i < c->nlinks; i++)
			c->links[i].latency_ns = c->latency_ns;
		return 0;
	}
	if (!strcmp(key, "network.send_buffer"))
		return uni_parse_size(val, &c->send_buffer) < 0 ? (snprintf(err, len, "'%s' is not a size", val), -1)
								 : 0;
	if (!strcmp(key, "network.model")) {
		if (!strcmp(val, "alpha-beta"))
			c->net_model = UNI_NET_ALPHA_BETA;
		else if (!strcmp(val, "nic"))
			c->net_model = UNI_NET_NIC;
		else if (!strcmp(val, "topology") && c->nswitches)
			c->net_model = UNI_NET_TOPOLOGY;
		else if (!strcmp(val, "topology")) {
			snprintf(err, len, "--sweep: network.model topology needs network.topology in the --config file");
			return -1;
		} else
			goto bad;
		return 0;
	}
	if (!strcmp(key, "devices.default.slowdown")) {
		char *end;
		double v = strtod(val, &end);
		if (*end || !(v > 0) || !isfinite(v))
			goto bad;
		c->slowdown = v;
		c->nrank_slowdowns = 0;
		return 0;
	}
	snprintf(err, len, "--sweep: unknown key '%s' (network.default.bandwidth, network.default.latency, "
			   "network.send_buffer, network.model, devices.default.slowdown)", key);
	return -1;
bad:
	snprintf(err, len, "--sweep: '%s' is not a value for %s", val, key);
	return -1;
}

static void print_result_text(const struct replay *R, const struct result *o)
{
	printf("%6s %12s %12s %12s %12s %12s\n", "rank", "end ms", "recorded", "compute", "comm", "idle");
	for (int32_t k = 0; k < R->nranks; k++) {
		if (!o->have[k])
			continue;
		char rec[32] = "-";
		if (R->have_orig_end[k])
			snprintf(rec, sizeof(rec), "%.3f", ms(R->orig_end[k]));
		printf("%6d %12.3f %12s %12.3f %12.3f %12.3f\n", k, ms(o->end[k]), rec, ms(o->compute[k]),
		       ms(o->waited[k]), ms(o->idle[k]));
	}
	printf("predicted makespan %.3f ms (replayed; rank %d ends last)\n", ms(o->makespan), o->last);
	if (R->late)
		printf("note: %" PRIu64 " transfers would have started before the network time\n", R->late);
}

static void print_result_json(const struct replay *R, const struct result *o)
{
	printf("{\"makespan_ns\":%" PRIu64 ",\"last_rank\":%d,\"ranks\":[", o->makespan, o->last);
	int first = 1;
	for (int32_t k = 0; k < R->nranks; k++) {
		if (!o->have[k])
			continue;
		printf("%s{\"rank\":%d,\"end_ns\":%" PRIu64 ",\"recorded_end_ns\":%" PRIu64
		       ",\"compute_ns\":%" PRIu64 ",\"communication_ns\":%" PRIu64 ",\"idle_ns\":%" PRIu64 "}",
		       first ? "" : ",", k, o->end[k], R->have_orig_end[k] ? R->orig_end[k] : 0, o->compute[k],
		       o->waited[k], o->idle[k]);
		first = 0;
	}
	printf("]}");
}

int unitrace_replay(const char *path, const char *config, const char *sweep, const char *out, int json)
{
	static struct uni_config cfg; /* large: not on the stack */
	char err[512];
	uni_config_defaults(&cfg);
	if (config && uni_config_load(&cfg, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "unitrace: %s\n", err);
		return 2;
	}
	struct replay *R = calloc(1, sizeof(*R));
	if (!R)
		return 1;
	debug_replay = getenv("UNI_DEBUG_REPLAY") ? atoi(getenv("UNI_DEBUG_REPLAY")) : 0;
	int rc = 0;
	if (load(R, path) < 0) {
		rc = 2; /* unreadable, corrupt, or not a simulate-mode 1.3 trace */
		goto out;
	}
	/* No --config: the configuration the run had (the trace names it),
	 * while that file is there; else the built-in defaults, said so. */
	if (!config && R->hdr_config[0]) {
		struct stat sb; /* (a regular file only: a trace could name /dev/stdin) */
		if (stat(R->hdr_config, &sb) != 0 || !S_ISREG(sb.st_mode)) {
			fprintf(stderr, "unitrace: replay: the run's configuration %s is not there: the built-in "
					"defaults (--config names another)\n",
				R->hdr_config);
		} else if (uni_config_load(&cfg, R->hdr_config, err, sizeof(err)) < 0) {
			uni_config_defaults(&cfg);
			fprintf(stderr, "unitrace: replay: the run's configuration: %s: the built-in defaults (--config "
					"names another)\n",
				err);
		} else {
			config = R->hdr_config;
		}
	}
	if (!sweep) {
		struct result o;
		if (out) {
			R->out = malloc((R->nrec ? R->nrec : 1) * sizeof(*R->out));
			if (!R->out) {
				rc = 1;
				goto out;
			}
			if (R->nrec) /* a trace of no records has no rec (memcpy of NULL) */
				memcpy(R->out, R->rec, R->nrec * sizeof(*R->out));
		}
		if (replay_one(R, &cfg, &o, path) < 0) {
			rc = 2;
			goto out;
		}
		if (out) {
			finish_out(R);
			if (write_out(R, config, out)) {
				rc = 1;
				goto out;
			}
		}
		if (json) {
			print_result_json(R, &o);
			putchar('\n');
		} else {
			printf("replay of %s under %s (%s)\n", path, config ? config : "the default configuration",
			       uni_config_model_name(cfg.net_model));
			print_result_text(R, &o);
		}
		goto out;
	}
	/* --sweep KEY=V1,V2,... */
	const char *eq = strchr(sweep, '=');
	if (!eq || eq == sweep || !eq[1]) {
		fprintf(stderr, "unitrace: --sweep wants KEY=V1,V2,... (e.g. network.default.bandwidth=10Mbit,100Mbit)\n");
		rc = 2;
		goto out;
	}
	char key[128];
	snprintf(key, sizeof(key), "%.*s", (int)(eq - sweep), sweep);
	char *vals = strdup(eq + 1), *save = NULL;
	static struct uni_config c2;
	if (json)
		printf("{\"key\":\"%s\",\"runs\":[", key);
	else
		printf("replay of %s, sweeping %s\n%16s %14s %6s\n", path, key, "value", "makespan ms", "last");
	int first = 1;
	for (char *v = strtok_r(vals, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
		c2 = cfg;
		if (sweep_set(&c2, key, v, err, sizeof(err)) < 0) {
			fprintf(stderr, "unitrace: %s\n", err);
			rc = 2;
			break;
		}
		struct result o;
		if (replay_one(R, &c2, &o, path) < 0) {
			rc = 2;
			break;
		}
		if (json) {
			printf("%s{\"value\":", first ? "" : ",");
			unitrace_json_str(v);
			printf(",\"result\":");
			print_result_json(R, &o);
			putchar('}');
		} else {
			printf("%16s %14.3f %6d\n", v, ms(o.makespan), o.last);
		}
		first = 0;
	}
	if (json && rc == 0)
		printf("]}\n");
	free(vals);
out:
	if (R->nic)
		nic_reset();
	for (uint32_t i = 0; i < R->nth; i++) {
		free(R->th[i].ev);
		if (R->th[i].owner) {
			free(R->th[i].val);
			free(R->th[i].have);
			free(R->th[i].tafter);
			free(R->th[i].rval);
			free(R->th[i].present);
			free(R->th[i].prev);
			free(R->th[i].prevcomp);
		}
	}
	for (uint32_t c = 0; c < R->nst; c++)
		free(R->st[c].ch);
	free(R->th);
	free(R->st);
	free(R->rec);
	free(R->out);
	free(R);
	return rc;
}
