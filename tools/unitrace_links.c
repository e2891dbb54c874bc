/* unitrace links: how much each link of the simulated network carried and
 * for how long it was in use, from a simulate-mode trace and the
 * configuration it ran under (docs/unitrace.md).
 *
 * Every send record is a transfer (under nic and topology a whole message)
 * or a part of one: its bytes left between its first byte's start on the
 * wire (a; its stamp t0 in older traces) and the arrival of its last byte
 * (t1) less the route's latency. It is put on every link of its route (uni_config_route: under
 * nic the sender's uplink and the receiver's downlink, under topology
 * also the links between switches; under alpha-beta a pair's link is its
 * own). A link's *busy* time is the union of those spans of its parts:
 * time in which at least one transfer was using it; its bytes over its
 * busy time, against its capacity, says whether it was the bottleneck
 * (near 100%) or shared with a tighter one elsewhere. Links are listed by
 * their *load*, the time their bytes take at their capacity. Under
 * alpha-beta a notice does not queue behind other transfers of its pair,
 * so a pair's rate while busy may pass its capacity by a little. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unitrace.h"
#include "uni/common.h"
#include "uni/config.h"
#include "uni/shm.h"
#include "uni/trace.h"

struct span {
	uint64_t t0, t1;
};

struct link {
	int used;
	uint64_t bytes, parts;
	struct span *sp;
	size_t nsp, capsp;
	uint64_t busy;
	double cap_bps;
	char name[96];
};

struct conn_end {
	int32_t node;      /* + 1 */
	uint32_t peer_conn; /* + 1 */
	int store;         /* the rendezvous store's (UNI_TRF_STORE) */
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fputs("unitrace: out of memory\n", stderr);
		exit(UNITRACE_EXIT_OUTPUT);
	}
	return p;
}

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

static uint64_t union_len(struct span *sp, size_t n)
{
	uint64_t total = 0, c0 = 0, c1 = 0;
	int open = 0;
	qsort(sp, n, sizeof(*sp), span_cmp);
	for (size_t i = 0; i < n; i++) {
		if (open && sp[i].t0 <= c1) {
			if (sp[i].t1 > c1)
				c1 = sp[i].t1;
			continue;
		}
		if (open)
			total += c1 - c0;
		c0 = sp[i].t0;
		c1 = sp[i].t1;
		open = 1;
	}
	if (open)
		total += c1 - c0;
	return total;
}

/* A link's load: the time its bytes take at its capacity. */
static double load_ns(const struct link *l)
{
	return l->cap_bps > 0 ? (double)l->bytes * 8e9 / l->cap_bps : 0;
}

static int load_cmp(const void *a, const void *b)
{
	const struct link *x = *(const struct link *const *)a, *y = *(const struct link *const *)b;
	double lx = load_ns(x), ly = load_ns(y);
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x->busy > y->busy ? -1 : x->busy < y->busy;
}

/* A link's name for people: under alpha-beta links are pairs; under
 * topology a rank's cables name their switch. */
static void link_name(const struct uni_config *c, uint32_t l, uint32_t nranks, char *out, size_t len)
{
	int rank, sw, up;
	if (c->net_model == UNI_NET_ALPHA_BETA)
		snprintf(out, len, "rank %u -> rank %u", l / nranks, l % nranks);
	else if (uni_config_cable(c, l, nranks, &rank, &sw, &up)) {
		if (sw >= 0 && up)
			snprintf(out, len, "rank %d -> %s", rank, c->switches[sw].name);
		else if (sw >= 0)
			snprintf(out, len, "%s -> rank %d", c->switches[sw].name, rank);
		else
			snprintf(out, len, "rank %d %s", rank, up ? "uplink" : "downlink");
	} else {
		const struct uni_trunk_cfg *t = &c->trunks[(l - 2 * nranks) / 2];
		int back = (l - 2 * nranks) & 1;
		snprintf(out, len, "%s -> %s", c->switches[back ? t->b : t->a].name,
			 c->switches[back ? t->a : t->b].name);
	}
}

/* "100 Mbit/s", "3.6 Gbit/s", "1.5 kbit/s". */
static const char *rate_str(double bps, char *buf, size_t len)
{
	if (bps >= 1e9)
		snprintf(buf, len, "%.4g Gbit/s", bps / 1e9);
	else if (bps >= 1e6)
		snprintf(buf, len, "%.4g Mbit/s", bps / 1e6);
	else
		snprintf(buf, len, "%.4g kbit/s", bps / 1e3);
	return buf;
}

int unitrace_links(const char *path, const char *config, int json, int top, int brief)
{
	struct uni_trace_reader r;
	static struct uni_config cfg;
	char err[512];
	int rc = UNITRACE_EXIT_TRACE;

	if (uni_trace_open(&r, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return UNITRACE_EXIT_TRACE;
	}
	if (r.hdr.mode != UNI_MODE_SIMULATE) {
		uni_trace_close(&r);
		if (brief)
			return 0;
		fprintf(stderr, "unitrace: %s: links needs a simulate-mode trace (this one is %s mode)\n", path,
			unitrace_mode_name(r.hdr.mode));
		return UNITRACE_EXIT_TRACE;
	}
	char hdr_config[sizeof(r.hdr.config_path) + 1];
	snprintf(hdr_config, sizeof(hdr_config), "%.*s", (int)sizeof(r.hdr.config_path), r.hdr.config_path);
	const char *cpath = config ? config : hdr_config;
	uni_config_defaults(&cfg);
	/* Only a regular file: a trace could name /dev/stdin, or a FIFO. */
	struct stat sb;
	if (cpath[0] && stat(cpath, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		uni_trace_close(&r);
		if (brief)
			return 0;
		fprintf(stderr, "unitrace: %s: not a regular file; give the configuration the run used with --config\n",
			cpath);
		return UNITRACE_EXIT_USAGE;
	}
	if (cpath[0] && uni_config_load(&cfg, cpath, err, sizeof(err)) < 0) {
		uni_trace_close(&r);
		if (brief)
			return 0; /* summary: the section is left out */
		fprintf(stderr, "unitrace: %s%s; give the configuration the run used with --config\n", err,
			config ? "" : " (the configuration the trace names)");
		return UNITRACE_EXIT_USAGE;
	}

	/* The records, once: connection ends, nodes, sends. */
	struct unitrace_nodes nodes;
	memset(&nodes, 0, sizeof(nodes));
	struct conn_end *ce = NULL;
	uint32_t nce = 0;
	struct uni_trec *sends = NULL, t;
	int32_t *snode = NULL;
	size_t ns = 0, caps = 0;
	int32_t maxnode = -1;
	uint64_t end = 0;
	int k;
	while ((k = uni_trace_next(&r, &t)) == 1) {
		int32_t node = unitrace_node_of(&nodes, &t);
		if (t.kind != UNI_TR_STRING && t.rank >= 0 && t.t1 > end && t.t1 != UINT64_MAX)
			end = t.t1;
		if (t.kind == UNI_TR_CONN && t.conn < UNITRACE_NODE_CONNS) {
			if (t.conn >= nce) {
				uint32_t n = t.conn + 1;
				ce = xrealloc(ce, n * sizeof(*ce));
				memset(ce + nce, 0, (n - nce) * sizeof(*ce));
				nce = n;
			}
			ce[t.conn].node = node + 1;
			ce[t.conn].peer_conn = (uint32_t)t.a + 1;
			ce[t.conn].store = (t.flags & UNI_TRF_STORE) != 0;
		}
		/* (The rendezvous store's messages use no link.) */
		if (t.kind == UNI_TR_SEND && t.len && node >= 0 && node < (int32_t)UNI_MAX_RANKS &&
		    !(t.conn < nce && ce[t.conn].store)) {
			if (ns == caps) {
				caps = caps ? caps * 2 : 1024;
				sends = xrealloc(sends, caps * sizeof(*sends));
				snode = xrealloc(snode, caps * sizeof(*snode));
			}
			sends[ns] = t;
			snode[ns++] = node;
			if (node > maxnode)
				maxnode = node;
		}
	}
	if (k < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		goto out;
	}
	/* Receiving nodes: the node of the connection's other end. Nodes are
	 * ranks below UNI_MAX_RANKS, as in unid's network; a corrupt trace's
	 * others are left out. */
	int32_t *dnode = xrealloc(NULL, (ns ? ns : 1) * sizeof(*dnode));
	uint64_t skipped = 0;
	for (size_t i = 0; i < ns; i++) {
		const struct uni_trec *s = &sends[i];
		uint32_t pc = s->conn < nce ? ce[s->conn].peer_conn : 0;
		dnode[i] = pc && pc - 1 < nce && ce[pc - 1].node ? ce[pc - 1].node - 1 : s->peer;
		if (dnode[i] < 0 || dnode[i] >= (int32_t)UNI_MAX_RANKS) {
			dnode[i] = -1;
			skipped++;
		} else if (dnode[i] > maxnode) {
			maxnode = dnode[i];
		}
	}
	if (skipped)
		fprintf(stderr, "unitrace: %s: %" PRIu64 " transfers to no rank from 0 to %u left out\n", path, skipped,
			UNI_MAX_RANKS - 1);
	uint32_t nranks = (uint32_t)(maxnode + 1);
	int pairs = cfg.net_model == UNI_NET_ALPHA_BETA;
	uint32_t nlinks = pairs ? nranks * nranks : uni_config_route_links(&cfg, nranks);
	struct link *L = calloc(nlinks ? nlinks : 1, sizeof(*L));
	if (!L) {
		fputs("unitrace: out of memory\n", stderr);
		exit(UNITRACE_EXIT_OUTPUT);
	}
	for (size_t i = 0; i < ns; i++) {
		const struct uni_trec *s = &sends[i];
		int32_t a = snode[i], b = dnode[i];
		if (a < 0 || b < 0 || a == b)
			continue;
		uint32_t route[UNI_CFG_MAX_ROUTE];
		uint64_t lat = 0;
		int n;
		if (pairs) {
			double bps;
			uni_config_link(&cfg, a, b, &lat, &bps);
			route[0] = (uint32_t)a * nranks + (uint32_t)b;
			n = 1;
			L[route[0]].cap_bps = bps;
		} else {
			n = uni_config_route(&cfg, a, b, nranks, route, &lat);
		}
		/* From its first byte on the wire (a, simulate mode) to its
		 * last (the arrival less the route's latency). */
		uint64_t t0 = s->a >= s->t0 && s->a <= s->t1 ? s->a : s->t0;
		struct span sp = {.t0 = t0, .t1 = s->t1 > t0 + lat ? s->t1 - lat : t0};
		for (int j = 0; j < n; j++) {
			struct link *l = &L[route[j]];
			l->used = 1;
			l->bytes += s->len;
			l->parts++;
			if (l->nsp == l->capsp) {
				l->capsp = l->capsp ? l->capsp * 2 : 16;
				l->sp = xrealloc(l->sp, l->capsp * sizeof(*l->sp));
			}
			l->sp[l->nsp++] = sp;
		}
	}
	struct link **order = xrealloc(NULL, (nlinks ? nlinks : 1) * sizeof(*order));
	uint32_t nused = 0;
	for (uint32_t i = 0; i < nlinks; i++) {
		struct link *l = &L[i];
		if (!l->used)
			continue;
		l->busy = union_len(l->sp, l->nsp);
		if (!pairs)
			l->cap_bps = uni_config_route_capacity(&cfg, i, nranks);
		link_name(&cfg, i, nranks, l->name, sizeof(l->name));
		order[nused++] = l;
	}
	qsort(order, nused, sizeof(*order), load_cmp);

	const char *model = uni_config_model_name(cfg.net_model);
	if (json) {
		printf("{\"model\": ");
		unitrace_json_str(model);
		printf(", \"config\": ");
		unitrace_json_str(cpath);
		printf(", \"end_ns\": %" PRIu64 ", \"links\": [", end);
		for (uint32_t i = 0; i < nused; i++) {
			const struct link *l = order[i];
			double rate = l->busy ? (double)l->bytes * 8e9 / (double)l->busy : 0;
			printf("%s{\"link\": ", i ? ", " : "");
			unitrace_json_str(l->name);
			printf(", \"capacity_bps\": %.17g, \"bytes\": %" PRIu64 ", \"parts\": %" PRIu64
			       ", \"load_ns\": %.0f, \"busy_ns\": %" PRIu64 ", \"rate_while_busy_bps\": %.17g}",
			       l->cap_bps, l->bytes, l->parts, load_ns(l), l->busy, rate);
		}
		printf("]}\n");
	} else {
		if (brief)
			printf("\nmost loaded links (%s model; every link: unitrace links TRACE):\n", model);
		else
			printf("links of %s under %s (%s model), most loaded first\n"
			       "(load: its bytes at its capacity; busy: some transfer was using it)\n", path,
			       cpath[0] ? cpath : "the default configuration", model);
		printf("%-30s %12s %13s %11s %11s %7s %19s\n", "link", "capacity", "bytes", "load ms", "busy ms",
		       "of run", "rate while busy");
		for (uint32_t i = 0; i < nused && (!top || i < (uint32_t)top); i++) {
			const struct link *l = order[i];
			double rate = l->busy ? (double)l->bytes * 8e9 / (double)l->busy : 0;
			char cap[32], rt[32];
			printf("%-30s %12s %13" PRIu64 " %11.3f %11.3f %6.1f%% %15s %3.0f%%\n", l->name,
			       rate_str(l->cap_bps, cap, sizeof(cap)), l->bytes, load_ns(l) / 1e6, (double)l->busy / 1e6,
			       end ? 100.0 * (double)l->busy / (double)end : 0.0, rate_str(rate, rt, sizeof(rt)),
			       l->cap_bps > 0 ? 100.0 * rate / l->cap_bps : 0.0);
		}
		if (!nused)
			printf("(no transfers between network nodes)\n");
		else if (top && nused > (uint32_t)top)
			printf("(%u more)\n", nused - (uint32_t)top);
	}
	rc = 0;
	for (uint32_t i = 0; i < nlinks; i++)
		free(L[i].sp);
	free(L);
	free(order);
	free(dnode);
out:
	free(sends);
	free(snode);
	free(ce);
	free(nodes.conn_rank);
	uni_trace_close(&r);
	return rc;
}
