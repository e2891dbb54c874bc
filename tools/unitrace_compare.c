/* unitrace compare REAL SIM: how far a prediction is from the real run.
 *
 * Both traces come from the same program, so every connection carries the
 * same byte stream in both. An operation is a message boundary: a stream
 * offset at which, in both traces, a send ends (the writer's call) and a
 * read ends (the reader got the message's last byte). Connections are
 * matched by (sender rank, receiver rank, how many connections that pair
 * had before), offsets by value. Per operation:
 *
 *   latency    = read end (t1) - send (t0): how long the message took;
 *   completion = read end - the trace's first matched send: where it
 *                falls on the run's timeline.
 *
 * Printed: the operations (data messages, more than one 48-byte Gloo
 * notice), the total (last completion) in both and its error, the MAPE of
 * latencies and of completions, and R^2 of the simulated completions
 * against the real ones (1 = the same timeline). --json gives everything,
 * every operation included. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unitrace.h"
#include "uni/trace.h"

struct cconn {
	int32_t from, to;
	uint32_t ord;      /* connections of (from, to) before this one */
	uint32_t peer_conn; /* + 1; 0 unknown */
};

struct cev {
	uint64_t key; /* pair index << 48 | end offset */
	uint64_t t;
	uint32_t pair;
	int is_send;
	uint64_t end;
};

struct cside {
	struct cconn *conn;
	size_t nconn;
	struct cev *ev;
	size_t nev, capev;
	uint32_t mode;
};

/* (from, to, ord) triples seen in either trace, so both use one index. */
struct cpairs {
	int32_t *from, *to;
	uint32_t *ord;
	size_t n;
};

static void *cgrow(void *p, size_t n, size_t size)
{
	p = realloc(p, n * size);
	if (!p) {
		fprintf(stderr, "unitrace: out of memory\n");
		exit(UNITRACE_EXIT_OUTPUT);
	}
	return p;
}

static uint32_t pair_index(struct cpairs *P, int32_t from, int32_t to, uint32_t ord)
{
	for (size_t i = 0; i < P->n; i++)
		if (P->from[i] == from && P->to[i] == to && P->ord[i] == ord)
			return (uint32_t)i;
	P->from = cgrow(P->from, P->n + 1, sizeof(*P->from));
	P->to = cgrow(P->to, P->n + 1, sizeof(*P->to));
	P->ord = cgrow(P->ord, P->n + 1, sizeof(*P->ord));
	P->from[P->n] = from;
	P->to[P->n] = to;
	P->ord[P->n] = ord;
	return (uint32_t)P->n++;
}

static int load(const char *path, struct cside *s, struct cpairs *P)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	int rc;

	memset(s, 0, sizeof(*s));
	/* Pass 1: connections (a conn record can come after its first I/O). */
	if (uni_trace_open(&r, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return -1;
	}
	s->mode = r.hdr.mode;
	while ((rc = uni_trace_next(&r, &t)) == 1) {
		if (t.kind != UNI_TR_CONN || t.conn >= 1u << 20)
			continue;
		if (t.conn >= s->nconn) {
			size_t n = s->nconn ? s->nconn : 64;
			while (n <= t.conn)
				n *= 2;
			s->conn = cgrow(s->conn, n, sizeof(*s->conn));
			memset(s->conn + s->nconn, 0, (n - s->nconn) * sizeof(*s->conn));
			s->nconn = n;
		}
		uint32_t ord = 0;
		for (size_t i = 0; i < s->nconn; i++)
			if (i != t.conn && s->conn[i].peer_conn && s->conn[i].from == t.rank && s->conn[i].to == t.peer)
				ord++;
		s->conn[t.conn] = (struct cconn){.from = t.rank, .to = t.peer, .ord = ord,
						 .peer_conn = (uint32_t)t.a + 1};
	}
	uni_trace_close(&r);
	if (rc < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return -1;
	}
	/* Pass 2: where sends and reads end, keyed by the sending end's pair. */
	if (uni_trace_open(&r, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return -1;
	}
	while ((rc = uni_trace_next(&r, &t)) == 1) {
		if ((t.kind != UNI_TR_SEND && t.kind != UNI_TR_RECV) || t.conn >= s->nconn)
			continue;
		uint32_t c = t.conn;
		if (t.kind == UNI_TR_RECV) {
			/* The stream a read consumes is the other end's. */
			if (!s->conn[c].peer_conn || s->conn[c].peer_conn - 1 >= s->nconn)
				continue;
			c = s->conn[c].peer_conn - 1;
		}
		if (!s->conn[c].peer_conn)
			continue;
		if (s->nev == s->capev) {
			s->capev = s->capev ? 2 * s->capev : 1024;
			s->ev = cgrow(s->ev, s->capev, sizeof(*s->ev));
		}
		uint32_t pi = pair_index(P, s->conn[c].from, s->conn[c].to, s->conn[c].ord);
		uint64_t end = t.off + t.len;
		s->ev[s->nev++] = (struct cev){.key = (uint64_t)pi << 48 | (end & ((1ull << 48) - 1)),
					       .t = t.kind == UNI_TR_SEND ? t.t0 : t.t1,
					       .pair = pi,
					       .is_send = t.kind == UNI_TR_SEND,
					       .end = end};
	}
	uni_trace_close(&r);
	if (rc < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return -1;
	}
	if (r.truncated)
		fprintf(stderr, "unitrace: %s: trace ends inside a record after %" PRIu64
				" records: comparing what came before\n",
			path, r.nrec);
	return 0;
}

static int cev_cmp(const void *a, const void *b)
{
	const struct cev *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->is_send != y->is_send)
		return x->is_send ? -1 : 1;
	return x->t < y->t ? -1 : x->t > y->t;
}

/* Per key: the send (first) and the read ending there, if both exist. */
struct cop {
	uint64_t key;
	uint32_t pair;
	uint64_t end;
	uint64_t send, read;
};

static size_t ops_of(struct cside *s, struct cop **out)
{
	if (s->nev)
		qsort(s->ev, s->nev, sizeof(*s->ev), cev_cmp);
	struct cop *o = NULL;
	size_t n = 0;
	for (size_t i = 0; i < s->nev;) {
		size_t j = i;
		int has_send = 0, has_read = 0;
		uint64_t ts = 0, tr = 0;
		for (; j < s->nev && s->ev[j].key == s->ev[i].key; j++) {
			if (s->ev[j].is_send && !has_send) {
				has_send = 1;
				ts = s->ev[j].t;
			} else if (!s->ev[j].is_send && !has_read) {
				has_read = 1;
				tr = s->ev[j].t;
			}
		}
		if (has_send && has_read) {
			o = cgrow(o, n + 1, sizeof(*o));
			o[n++] = (struct cop){.key = s->ev[i].key, .pair = s->ev[i].pair, .end = s->ev[i].end,
					      .send = ts, .read = tr};
		}
		i = j;
	}
	*out = o;
	return n;
}

int unitrace_compare(const char *real_path, const char *sim_path, int json)
{
	struct cpairs P;
	struct cside a, b;
	struct cop *oa = NULL, *ob = NULL;
	memset(&P, 0, sizeof(P));
	if (load(real_path, &a, &P) < 0)
		return UNITRACE_EXIT_TRACE;
	if (load(sim_path, &b, &P) < 0) {
		free(a.conn);
		free(a.ev);
		return UNITRACE_EXIT_TRACE;
	}
	size_t na = ops_of(&a, &oa), nb = ops_of(&b, &ob);

	/* Matched operations: both sorted by key. A message's size is the
	 * distance from the previous matched boundary of its stream. */
	struct m {
		uint32_t pair;
		uint64_t end, bytes;
		uint64_t ra_send, ra_read, sb_send, sb_read;
	} *m = NULL;
	size_t nm = 0;
	uint64_t prev_end = 0;
	uint32_t prev_pair = UINT32_MAX;
	for (size_t i = 0, j = 0; i < na && j < nb;) {
		if (oa[i].key < ob[j].key) {
			i++;
		} else if (oa[i].key > ob[j].key) {
			j++;
		} else {
			if (oa[i].pair != prev_pair)
				prev_end = 0;
			m = cgrow(m, nm + 1, sizeof(*m));
			m[nm++] = (struct m){.pair = oa[i].pair, .end = oa[i].end, .bytes = oa[i].end - prev_end,
					     .ra_send = oa[i].send, .ra_read = oa[i].read,
					     .sb_send = ob[j].send, .sb_read = ob[j].read};
			prev_end = oa[i].end;
			prev_pair = oa[i].pair;
			i++;
			j++;
		}
	}
	/* Data messages only; the timeline starts at the first of them. */
	uint64_t a0 = UINT64_MAX, b0 = UINT64_MAX;
	size_t nd = 0;
	for (size_t k = 0; k < nm; k++) {
		if (m[k].bytes <= 48)
			continue;
		nd++;
		if (m[k].ra_send < a0)
			a0 = m[k].ra_send;
		if (m[k].sb_send < b0)
			b0 = m[k].sb_send;
	}
	double ape_lat = 0, ape_done = 0, ta = 0, tb = 0, sum_a = 0;
	size_t nlat = 0, ndone = 0;
	for (size_t k = 0; k < nm; k++) {
		if (m[k].bytes <= 48)
			continue;
		double la = (double)m[k].ra_read - (double)m[k].ra_send, lb = (double)m[k].sb_read - (double)m[k].sb_send;
		double da = (double)m[k].ra_read - (double)a0, db = (double)m[k].sb_read - (double)b0;
		if (la > 0) {
			ape_lat += fabs(lb - la) / la;
			nlat++;
		}
		if (da > 0) {
			ape_done += fabs(db - da) / da;
			ndone++;
		}
		if (da > ta)
			ta = da;
		if (db > tb)
			tb = db;
		sum_a += da;
	}
	double mean = nd ? sum_a / (double)nd : 0, ss_res = 0, ss_tot = 0;
	for (size_t k = 0; k < nm; k++) {
		if (m[k].bytes <= 48)
			continue;
		double da = (double)m[k].ra_read - (double)a0, db = (double)m[k].sb_read - (double)b0;
		ss_res += (db - da) * (db - da);
		ss_tot += (da - mean) * (da - mean);
	}
	double r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : (ss_res == 0 ? 1 : 0);
	double mape_lat = nlat ? 100 * ape_lat / (double)nlat : 0;
	double mape_done = ndone ? 100 * ape_done / (double)ndone : 0;
	double err_total = ta > 0 ? 100 * (tb - ta) / ta : 0;

	if (json) {
		printf("{\"real\":{\"trace\":");
		unitrace_json_str(real_path);
		printf(",\"mode\":\"%s\"},\"sim\":{\"trace\":", unitrace_mode_name(a.mode));
		unitrace_json_str(sim_path);
		printf(",\"mode\":\"%s\"},", unitrace_mode_name(b.mode));
		printf("\"matched\":%zu,\"operations\":%zu,\"total_real_ns\":%.0f,\"total_sim_ns\":%.0f,"
		       "\"total_error_pct\":%.6f,\"mape_latency_pct\":%.6f,\"mape_completion_pct\":%.6f,\"r2\":%.9f,"
		       "\"ops\":[",
		       nm, nd, ta, tb, err_total, mape_lat, mape_done, r2);
		int first = 1;
		for (size_t k = 0; k < nm; k++) {
			if (m[k].bytes <= 48)
				continue;
			printf("%s{\"from\":%d,\"to\":%d,\"conn\":%u,\"end\":%" PRIu64 ",\"bytes\":%" PRIu64
			       ",\"real_latency_ns\":%" PRId64 ",\"sim_latency_ns\":%" PRId64
			       ",\"real_done_ns\":%" PRIu64 ",\"sim_done_ns\":%" PRIu64 "}",
			       first ? "" : ",", P.from[m[k].pair], P.to[m[k].pair], P.ord[m[k].pair], m[k].end, m[k].bytes,
			       (int64_t)(m[k].ra_read - m[k].ra_send), (int64_t)(m[k].sb_read - m[k].sb_send),
			       m[k].ra_read - a0, m[k].sb_read - b0);
			first = 0;
		}
		printf("]}\n");
	} else {
		printf("real: %s (%s)\nsim:  %s (%s)\n", real_path, unitrace_mode_name(a.mode), sim_path,
		       unitrace_mode_name(b.mode));
		printf("%zu message boundaries matched, %zu data messages compared\n", nm, nd);
		printf("  %-5s %-5s %12s %12s %12s %8s\n", "from", "to", "bytes", "real ms", "sim ms", "error");
		size_t shown = 0;
		for (size_t k = 0; k < nm && shown < 40; k++) {
			if (m[k].bytes <= 48)
				continue;
			double la = (double)(m[k].ra_read - m[k].ra_send) / 1e6;
			double lb = (double)(m[k].sb_read - m[k].sb_send) / 1e6;
			printf("  %-5d %-5d %12" PRIu64 " %12.3f %12.3f %7.1f%%\n", P.from[m[k].pair], P.to[m[k].pair],
			       m[k].bytes, la, lb, la > 0 ? 100 * (lb - la) / la : 0.0);
			shown++;
		}
		if (nd > shown)
			printf("  ... %zu more (--json lists all)\n", nd - shown);
		printf("total (first data send to last data read): real %.3f ms, sim %.3f ms, error %+.2f%%\n", ta / 1e6,
		       tb / 1e6, err_total);
		printf("MAPE: latency %.2f%%, completion %.2f%%; R^2 of completions %.4f\n", mape_lat, mape_done, r2);
	}
	free(m);
	free(oa);
	free(ob);
	free(a.conn);
	free(a.ev);
	free(b.conn);
	free(b.ev);
	free(P.from);
	free(P.to);
	free(P.ord);
	if (!nd) {
		fprintf(stderr, "unitrace: the traces share no data message: not the same program?\n");
		return UNITRACE_EXIT_TRACE;
	}
	return 0;
}
