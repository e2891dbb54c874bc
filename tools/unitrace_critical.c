/* unitrace critical-path: the chain of local work and transfers that sets
 * the makespan of a simulate-mode run.
 *
 * Walking back from the rank that ends last: on the current rank, the
 * latest read whose bytes arrived at or before the current time is the
 * last thing that rank received before it went on; the time from that
 * arrival to the current time is the rank's own (compute, sleeps, local
 * hand-offs: "local"). The read's last byte came in a send of another rank:
 * the step from that send (when the writer handed the bytes over) to the
 * arrival is a "transfer" (queueing on the link included), and the walk
 * continues on the sender at the time it sent. It stops at time 0 or at a
 * rank with nothing received before the current time. Every step is listed
 * with its share of the makespan; the shares add up to 100%.
 *
 * Which read gated the rank is inferred, not recorded: reads that arrived
 * while the rank was busy (inside a compute or sleep record of one of its
 * threads, trace 1.2) are passed over; of the others, the latest. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unitrace.h"
#include "uni/common.h"
#include "uni/trace.h"

struct csend {
	uint64_t off, end, stamp, arrive;
	int32_t rank;
};

struct crecv {
	uint64_t arrive, off, end;
	uint32_t conn;
	int32_t peer;
};

struct cp_conn {
	uint32_t peer_conn; /* + 1 */
	struct csend *s;
	size_t n, cap;
};

struct busy {
	uint64_t t0, t1;
};

struct cp_rank {
	struct crecv *r;
	size_t n, cap;
	struct busy *b; /* compute and sleeps of its threads, merged */
	size_t nb, capb;
	uint64_t end;
	int seen;
};

struct step {
	int kind; /* 0 local, 1 transfer */
	int32_t rank, peer;
	uint64_t t0, t1, bytes;
};

static void *xgrow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? 2 * *cap : 64;
	p = realloc(p, *cap * size);
	if (!p) {
		fprintf(stderr, "unitrace: out of memory\n");
		exit(UNITRACE_EXIT_OUTPUT);
	}
	return p;
}

static int recv_cmp(const void *a, const void *b)
{
	const struct crecv *x = a, *y = b;
	return x->arrive < y->arrive ? -1 : x->arrive > y->arrive;
}

static int busy_cmp(const void *a, const void *b)
{
	const struct busy *x = a, *y = b;
	return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

/* Sorts and merges a rank's busy stretches. */
static void busy_merge(struct cp_rank *rk)
{
	if (!rk->nb)
		return;
	qsort(rk->b, rk->nb, sizeof(*rk->b), busy_cmp);
	size_t k = 0;
	for (size_t i = 1; i < rk->nb; i++) {
		if (rk->b[i].t0 <= rk->b[k].t1) {
			if (rk->b[i].t1 > rk->b[k].t1)
				rk->b[k].t1 = rk->b[i].t1;
		} else {
			rk->b[++k] = rk->b[i];
		}
	}
	rk->nb = k + 1;
}

/* Was the rank busy (computing or sleeping) just before and after t? Then
 * bytes arriving at t did not let it go on. */
static int busy_at(const struct cp_rank *rk, uint64_t t)
{
	size_t lo = 0, hi = rk->nb;
	while (lo < hi) { /* first stretch starting at or after t */
		size_t mid = (lo + hi) / 2;
		if (rk->b[mid].t0 < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && rk->b[lo - 1].t1 > t;
}

static int send_cmp(const void *a, const void *b)
{
	const struct csend *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void cp_free(struct cp_conn *conns, size_t nconns, struct cp_rank *ranks)
{
	for (size_t i = 0; i < nconns; i++)
		free(conns[i].s);
	free(conns);
	for (int i = 0; i < 256; i++) {
		free(ranks[i].r);
		free(ranks[i].b);
	}
}

int unitrace_critical_path(const char *path, int json)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	int rc;
	struct cp_conn *conns = NULL;
	size_t nconns = 0;
	struct cp_rank ranks[256];
	memset(ranks, 0, sizeof(ranks));

	if (uni_trace_open(&r, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return UNITRACE_EXIT_TRACE;
	}
	uint32_t mode = r.hdr.mode;
	while ((rc = uni_trace_next(&r, &t)) == 1) {
		if (t.rank < 0 || t.rank >= 256)
			continue;
		struct cp_rank *rk = &ranks[t.rank];
		if (t.kind == UNI_TR_CONN || t.kind == UNI_TR_SEND || t.kind == UNI_TR_RECV) {
			if (t.conn >= 1u << 20)
				continue;
			if (t.conn >= nconns) {
				size_t n = nconns ? nconns : 64;
				while (n <= t.conn)
					n *= 2;
				conns = realloc(conns, n * sizeof(*conns));
				if (!conns) {
					fprintf(stderr, "unitrace: out of memory\n");
					exit(UNITRACE_EXIT_OUTPUT);
				}
				memset(conns + nconns, 0, (n - nconns) * sizeof(*conns));
				nconns = n;
			}
		}
		switch (t.kind) {
		case UNI_TR_RANK_ATTACH:
			rk->seen = 1;
			break;
		case UNI_TR_RANK_EXIT:
			rk->seen = 1;
			if (t.t0 > rk->end)
				rk->end = t.t0;
			break;
		case UNI_TR_CONN:
			conns[t.conn].peer_conn = (uint32_t)t.a + 1;
			break;
		case UNI_TR_SEND: {
			struct cp_conn *c = &conns[t.conn];
			c->s = xgrow(c->s, &c->cap, c->n, sizeof(*c->s));
			c->s[c->n++] = (struct csend){.off = t.off, .end = t.off + t.len, .stamp = t.t0, .arrive = t.t1,
						      .rank = t.rank};
			if (t.t0 > rk->end)
				rk->end = t.t0;
			break;
		}
		case UNI_TR_COMPUTE:
		case UNI_TR_IDLE:
			if (t.t1 > t.t0) {
				rk->b = xgrow(rk->b, &rk->capb, rk->nb, sizeof(*rk->b));
				rk->b[rk->nb++] = (struct busy){t.t0, t.t1};
			}
			break;
		case UNI_TR_RECV:
			rk->r = xgrow(rk->r, &rk->cap, rk->n, sizeof(*rk->r));
			rk->r[rk->n++] = (struct crecv){.arrive = t.a, .off = t.off, .end = t.off + t.len, .conn = t.conn,
							.peer = t.peer};
			if (t.t1 > rk->end)
				rk->end = t.t1;
			break;
		}
	}
	uni_trace_close(&r);
	if (rc < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		cp_free(conns, nconns, ranks);
		return UNITRACE_EXIT_TRACE;
	}
	if (mode != UNI_MODE_SIMULATE)
		fprintf(stderr, "unitrace: %s is a %s-mode trace: its times are real, the chain is only a guess\n", path,
			unitrace_mode_name(mode));
	for (size_t i = 0; i < nconns; i++)
		if (conns[i].n)
			qsort(conns[i].s, conns[i].n, sizeof(*conns[i].s), send_cmp);
	int last = -1;
	for (int i = 0; i < 256; i++) {
		busy_merge(&ranks[i]);
		if (ranks[i].n)
			qsort(ranks[i].r, ranks[i].n, sizeof(*ranks[i].r), recv_cmp);
		if (ranks[i].seen && (last < 0 || ranks[i].end > ranks[last].end))
			last = i;
	}
	if (last < 0) {
		fprintf(stderr, "unitrace: %s: no rank in the trace\n", path);
		cp_free(conns, nconns, ranks);
		return UNITRACE_EXIT_TRACE;
	}
	uint64_t makespan = ranks[last].end;

	struct step *steps = NULL;
	size_t nsteps = 0, capsteps = 0;
	int cur = last;
	uint64_t now = makespan;
	for (int guard = 0; guard < 1000000 && now > 0; guard++) {
		struct cp_rank *rk = &ranks[cur];
		/* The latest read that arrived at or before now, and whose
		 * sender is known. */
		const struct crecv *g = NULL;
		const struct csend *s = NULL;
		size_t lo = 0, hi = rk->n;
		while (lo < hi) { /* first with arrive > now */
			size_t mid = (lo + hi) / 2;
			if (rk->r[mid].arrive <= now)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t k = lo; k-- > 0 && !s;) {
			const struct crecv *cand = &rk->r[k];
			/* Arrived while the rank was busy: not what it waited for. */
			if (busy_at(rk, cand->arrive))
				continue;
			if (cand->conn >= nconns || !conns[cand->conn].peer_conn ||
			    conns[cand->conn].peer_conn - 1 >= nconns)
				continue;
			struct cp_conn *pc = &conns[conns[cand->conn].peer_conn - 1];
			/* the send chunk holding the read's last byte */
			size_t a = 0, b = pc->n;
			while (a < b) {
				size_t mid = (a + b) / 2;
				if (pc->s[mid].end < cand->end)
					a = mid + 1;
				else
					b = mid;
			}
			if (a < pc->n && pc->s[a].off < cand->end && pc->s[a].stamp <= cand->arrive && pc->s[a].stamp < now) {
				g = cand;
				s = &pc->s[a];
			}
		}
		steps = xgrow(steps, &capsteps, nsteps + 2, sizeof(*steps));
		if (!s) {
			steps[nsteps++] = (struct step){.kind = 0, .rank = cur, .peer = -1, .t0 = 0, .t1 = now};
			break;
		}
		if (now > g->arrive)
			steps[nsteps++] = (struct step){.kind = 0, .rank = cur, .peer = -1, .t0 = g->arrive, .t1 = now};
		steps[nsteps++] = (struct step){.kind = 1, .rank = s->rank, .peer = cur, .t0 = s->stamp, .t1 = g->arrive,
						.bytes = s->end - s->off};
		cur = s->rank;
		now = s->stamp;
	}

	/* Oldest first. */
	if (json) {
		printf("{\"trace\":");
		unitrace_json_str(path);
		printf(",\"mode\":\"%s\",\"makespan_ns\":%" PRIu64 ",\"last_rank\":%d,\"steps\":[", unitrace_mode_name(mode),
		       makespan, last);
		for (size_t k = nsteps; k-- > 0;) {
			const struct step *p = &steps[k];
			printf("%s{\"kind\":\"%s\",\"rank\":%d,\"to\":%d,\"t0_ns\":%" PRIu64 ",\"t1_ns\":%" PRIu64
			       ",\"bytes\":%" PRIu64 ",\"share\":%.6f}",
			       k + 1 == nsteps ? "" : ",", p->kind ? "transfer" : "local", p->rank, p->peer, p->t0, p->t1,
			       p->bytes, makespan ? (double)(p->t1 - p->t0) / (double)makespan : 0);
		}
		printf("]}\n");
	} else {
		printf("critical path of %s: makespan %.3f ms, set by rank %d\n", path, makespan / 1e6, last);
		uint64_t tl = 0, tt = 0;
		for (size_t k = nsteps; k-- > 0;) {
			const struct step *p = &steps[k];
			double ms = (double)(p->t1 - p->t0) / 1e6, share = makespan ? 100.0 * (double)(p->t1 - p->t0) / (double)makespan : 0;
			if (p->kind) {
				tt += p->t1 - p->t0;
				printf("  %10.3f ms  transfer rank %d -> %d, %" PRIu64 " B: %.3f ms (%.1f%%)\n", p->t0 / 1e6,
				       p->rank, p->peer, p->bytes, ms, share);
			} else {
				tl += p->t1 - p->t0;
				printf("  %10.3f ms  rank %d local: %.3f ms (%.1f%%)\n", p->t0 / 1e6, p->rank, ms, share);
			}
		}
		printf("total: local %.3f ms (%.1f%%), transfers %.3f ms (%.1f%%), %zu steps\n", tl / 1e6,
		       makespan ? 100.0 * (double)tl / (double)makespan : 0, tt / 1e6,
		       makespan ? 100.0 * (double)tt / (double)makespan : 0, nsteps);
	}
	cp_free(conns, nconns, ranks);
	free(steps);
	return 0;
}
