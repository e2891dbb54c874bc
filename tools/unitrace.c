/* unitrace: reads a uniference trace (docs/trace-format.md).
 *
 *   unitrace summary FILE [--json]   per-rank and per-peer totals
 *   unitrace dump FILE [--json]      one line per record
 *
 * The trace is streamed: memory grows with the number of ranks, threads and
 * (rank, peer) pairs, never with the number of records.
 *
 * Exit status: 0 done (also for a truncated trace), 1 out of memory or
 * output error, 2 unreadable or corrupt trace, 64 usage. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uni/common.h"
#include "uni/shm.h"
#include "uni/trace.h"
#include "unitrace.h"

#if defined(__has_include)
#if __has_include("uni_build_config.h")
#include "uni_build_config.h"
#endif
#endif
#ifndef UNI_VERSION
#define UNI_VERSION "0.1.0"
#endif

#define EXIT_OUTPUT UNITRACE_EXIT_OUTPUT
#define EXIT_TRACE UNITRACE_EXIT_TRACE
#define EXIT_USAGE UNITRACE_EXIT_USAGE

static const char usage_line[] = "usage: unitrace {summary|dump} FILE [--json]\n"
				 "       unitrace plot FILE [-o OUT.svg] [--from MS] [--to MS]\n"
				 "       unitrace export FILE {--chrome OUT.json [--merge TORCH.json [--merge-rank R]] | --sqlite OUT.db}\n"
				 "       unitrace critical-path FILE [--json]\n"
				 "       unitrace compare REAL SIM [--json]\n"
				 "       unitrace diff A B [--json]\n"
				 "       unitrace replay FILE [--config OTHER.yaml] [--sweep KEY=V1,V2,...] [-o OUT.unitrace] [--json]\n"
				 "       unitrace links FILE [--config RUN.yaml] [--top N] [--json]";

/* common.c (uni_mode_name) lives in libunicommon; the tool keeps its own
 * copy so that it links against the reader alone. */
const char *unitrace_mode_name(uint32_t mode)
{
	switch (mode) {
	case UNI_MODE_RECORD:
		return "record";
	case UNI_MODE_SIMULATE:
		return "simulate";
	case UNI_MODE_EMULATE:
		return "emulate";
	}
	return "?";
}

/* What t0/t1 measure. Record and emulate runs real processes on the real
 * clock; simulate advances a virtual clock. */
const char *unitrace_time_base(uint32_t mode)
{
	switch (mode) {
	case UNI_MODE_RECORD:
	case UNI_MODE_EMULATE:
		return "real";
	case UNI_MODE_SIMULATE:
		return "virtual";
	}
	return "unknown";
}

static void oom(void)
{
	fprintf(stderr, "unitrace: out of memory\n");
	exit(EXIT_OUTPUT);
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		oom();
	p = realloc(p, n * size);
	if (!p && n)
		oom();
	return p;
}

/* Network nodes ----------------------------------------------------------- */

/* unitrace.h says what it does. */
int32_t unitrace_node_of(struct unitrace_nodes *n, const struct uni_trec *t)
{
	if (t->rank < 0 || t->rank >= UNITRACE_NODE_RANKS)
		return t->rank;
	if (t->kind == UNI_TR_RANK_ATTACH)
		n->attached[t->rank] = 1;
	if (t->kind == UNI_TR_CONN && t->conn < UNITRACE_NODE_CONNS && !n->attached[t->rank]) {
		if (!n->conn_rank && !(n->conn_rank = calloc(UNITRACE_NODE_CONNS, sizeof(*n->conn_rank))))
			oom();
		n->conn_rank[t->conn] = t->rank + 1;
	}
	if ((t->kind == UNI_TR_SEND || t->kind == UNI_TR_RECV) && t->conn < UNITRACE_NODE_CONNS && n->conn_rank &&
	    n->conn_rank[t->conn])
		return n->conn_rank[t->conn] - 1;
	return t->rank;
}

/* Output helpers ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* A JSON string. Header fields come from the file and may hold anything:
 * invalid UTF-8 becomes U+FFFD so the output always parses. */
void unitrace_json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	putchar('"');
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len;

		switch (c) {
		case '"':
			fputs("\\\"", stdout);
			i++;
			continue;
		case '\\':
			fputs("\\\\", stdout);
			i++;
			continue;
		case '\n':
			fputs("\\n", stdout);
			i++;
			continue;
		case '\r':
			fputs("\\r", stdout);
			i++;
			continue;
		case '\t':
			fputs("\\t", stdout);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			printf("\\u%04x", c);
			i++;
			continue;
		}
		len = utf8_len(s + i, n - i);
		if (!len) {
			fputs("\\ufffd", stdout);
			i++;
			continue;
		}
		fwrite(s + i, 1, len, stdout);
		i += len;
	}
	putchar('"');
}

/* A string for a terminal: control bytes are shown as \xNN so a crafted
 * file cannot send escape sequences. */
static void text_str(const char *str)
{
	for (const unsigned char *s = (const unsigned char *)str; *s; s++) {
		if (*s < 0x20 || *s == 0x7f || *s == '\\' || *s == '"')
			printf("\\x%02x", *s);
		else
			putchar(*s);
	}
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* "2024-05-01 12:34:56.789 UTC" */
static void fmt_realtime(char *buf, size_t size, uint64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char date[32];

	if (!gmtime_r(&secs, &tm) ||
	    !strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm)) {
		snprintf(buf, size, "%" PRIu64 " ns", ns);
		return;
	}
	snprintf(buf, size, "%s.%03u UTC", date,
		 (unsigned)(ns % 1000000000ull / 1000000u));
}

/* A small open-addressing hash: uint64 key -> uint32 index. ---------------- */

#define MAP_EMPTY UINT32_MAX

struct u64map {
	uint64_t *keys;
	uint32_t *vals;
	size_t cap; /* power of two or 0 */
	size_t n;
};

static size_t map_slot(uint64_t key, size_t cap)
{
	/* splitmix64 finalizer: ranks and tids are small and dense. */
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ull;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebull;
	key ^= key >> 31;
	return (size_t)key & (cap - 1);
}

static uint32_t map_get(const struct u64map *m, uint64_t key)
{
	if (!m->cap)
		return MAP_EMPTY;
	for (size_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->vals[i] == MAP_EMPTY)
			return MAP_EMPTY;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static void map_insert(struct u64map *m, uint64_t key, uint32_t val);

static void map_grow(struct u64map *m)
{
	struct u64map old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->n = 0;
	m->keys = xrealloc(NULL, m->cap, sizeof(*m->keys));
	m->vals = xrealloc(NULL, m->cap, sizeof(*m->vals));
	memset(m->vals, 0xff, m->cap * sizeof(*m->vals));
	for (size_t i = 0; i < old.cap; i++)
		if (old.vals[i] != MAP_EMPTY)
			map_insert(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

/* key must not be present yet. */
static void map_insert(struct u64map *m, uint64_t key, uint32_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap)
		map_grow(m);
	for (i = map_slot(key, m->cap); m->vals[i] != MAP_EMPTY;
	     i = (i + 1) & (m->cap - 1))
		;
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

static void map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static uint64_t pair_key(int32_t a, int32_t b)
{
	return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* summary ----------------------------------------------------------------- */

enum rank_end { END_UNKNOWN, END_CLEAN, END_DIED };

struct rank_stat {
	int32_t rank;
	int attached;
	uint64_t pid;
	uint64_t world;
	enum rank_end end;
	uint32_t threads;
	int have_events;
	uint64_t first, last; /* ns since epoch, SEND/RECV only */
	uint64_t sends, recvs, bytes_sent, bytes_recv;
	uint64_t conns;
	int have_end_t;       /* a RANK_EXIT said when the rank ended */
	uint64_t attach_t;    /* when it attached (record mode: its life begins) */
	uint64_t end_t;       /* ns since epoch (virtual in simulate mode) */
	uint64_t compute, waited; /* simulate: the exiting thread's, virtual ns */
	uint32_t deadlocked;  /* threads blocked for good when unid found a deadlock */
	int32_t host;         /* a network node only (a simulated NCCL rank of a world
	                         of one process): that process's rank + 1; else 0 */
};

struct pair_stat {
	int32_t rank, peer;
	uint64_t sends, recvs, bytes_sent, bytes_recv;
};

struct mismatch {
	int32_t from, to;
	uint64_t sent, received;
};

struct summary {
	struct uni_trace_hdr hdr;
	uint64_t nrec;
	int truncated;

	int have_start, have_end;
	uint64_t unid_pid;
	uint64_t end_events, end_dropped, end_unmodelled;
	uint64_t end_late, end_late_us; /* transfers that started after their stamp */
	int have_cf;                    /* compute_from: the session replayed compute ... */
	uint64_t cf_replayed, cf_followed, cf_diverged, cf_unknown;
	uint64_t world; /* largest world size any rank reported */
	uint64_t unknown;  /* records of unknown kinds, skipped */
	uint64_t bad_rank; /* per-rank records with a negative rank */
	uint64_t conns;

	struct rank_stat *ranks;
	size_t nranks, cap_ranks;
	struct u64map rank_idx;

	struct pair_stat *pairs;
	size_t npairs, cap_pairs;
	struct u64map pair_idx;

	struct u64map threads; /* (rank, tid) seen; values unused */
	struct unitrace_nodes nodes;    /* the network node of each transfer */

	struct mismatch *mism;
	size_t nmism, cap_mism;
	uint64_t external_bytes; /* to/from peers outside the session (< 0) */
	struct u64map store_conns; /* connections of the rendezvous store (UNI_TRF_STORE) */
	uint64_t store_msgs, store_bytes; /* their sends: no link, no time, not in the totals */
	struct u64map credit_conns; /* the simulated NCCL's flow-control credits (UNI_TRF_CREDIT) */
	uint64_t credits_sent, credits_read; /* their bytes: not in the totals */
	uint64_t deadlocked;     /* DEADLOCK records: threads blocked for good */

	/* The longest transfers (sends: stamp/call start to the last byte's
	 * arrival in simulate mode, the call in record mode), longest first. */
#define TOP_N 5
	struct top {
		uint64_t dur, t0, len;
		int32_t from, to;
	} top[TOP_N];
	size_t ntop;

	/* Gloo collectives (trace 1.3 op records): each from its first notice
	 * to the last arrival, send completion or hand-off of the thread that
	 * ran it before its next operation; the longest, and totals by kind. */
	struct openop {
		int32_t rank, tid;
		uint64_t slot, t0, end;
	} *open;
	size_t nopen, capopen;
	struct topop {
		uint64_t dur, t0, slot;
		int32_t rank;
	} topop[TOP_N];
	size_t ntopop;
	uint64_t op_count[9], op_total[9];

	/* The simulated NCCL (trace 1.4): each rank's part of an operation,
	 * call to completion; communicators by id. */
	struct topnccl {
		uint64_t dur, t0, bytes, comm;
		int32_t rank;
		uint16_t flags;
		uint32_t nranks;
	} topnccl[TOP_N];
	size_t ntopnccl;
	uint64_t nccl_count[11], nccl_total[11];
	struct ncomm {
		uint64_t id;
		uint32_t nranks, members;
	} *comms;
	size_t ncomms;
};

/* The top lists below (longest transfers, collectives, NCCL operations)
 * begin each entry with its duration. */
_Static_assert(offsetof(struct top, dur) == 0 && offsetof(struct topop, dur) == 0 &&
		       offsetof(struct topnccl, dur) == 0,
	       "a top entry begins with its duration");

/* Where an entry lasting dur goes in a longest-first list of at most
 * TOP_N entries of elsz bytes (n of them so far): the shorter ones move
 * down to make room and n grows; -1: it is not among the longest. */
static int top_slot(void *list, size_t elsz, size_t *n, uint64_t dur)
{
	unsigned char *b = list;
	uint64_t d;
	if (*n == TOP_N) {
		memcpy(&d, b + (TOP_N - 1) * elsz, sizeof(d));
		if (dur <= d)
			return -1;
	}
	size_t i = *n < TOP_N ? *n : TOP_N - 1;
	for (; i > 0; i--) {
		memcpy(&d, b + (i - 1) * elsz, sizeof(d));
		if (d >= dur)
			break;
		memmove(b + i * elsz, b + (i - 1) * elsz, elsz);
	}
	if (*n < TOP_N)
		(*n)++;
	return (int)i;
}

static const char *const nccl_names[16] = {"?", "all_reduce", "broadcast", "reduce",
					   "all_gather", "reduce_scatter", "all_to_all", "gather",
					   "scatter", "send", "recv", "?", "?", "?", "?", "?"};
static const char *const nccl_types[16] = {"int8", "uint8", "int32", "uint32", "int64", "uint64",
					   "float16", "float32", "float64", "bfloat16", "fp8e4m3", "fp8e5m2",
					   "?", "?", "?", "?"};

const char *unitrace_nccl_op(uint16_t flags)
{
	return nccl_names[flags & 15];
}

/* The algorithm, and (trace 1.5) the protocol after a slash: "ring/LL". */
static const char *const nccl_algo_protos[8][4] = {
	{"-", "-", "-", "-"},
	{"ring", "ring/LL", "ring/LL128", "ring/Simple"},
	{"tree", "tree/LL", "tree/LL128", "tree/Simple"},
	{"chain", "chain/LL", "chain/LL128", "chain/Simple"},
	{"direct", "direct/LL", "direct/LL128", "direct/Simple"},
	{"p2p", "p2p/LL", "p2p/LL128", "p2p/Simple"},
	{"pat", "pat/LL", "pat/LL128", "pat/Simple"},
	{"?", "?", "?", "?"}};

const char *unitrace_nccl_algo(uint16_t flags)
{
	return nccl_algo_protos[(flags >> UNI_NCCL_OPF_ALGO_SHIFT) & 7][(flags >> UNI_NCCL_OPF_PROTO_SHIFT) & 3];
}

const char *unitrace_nccl_type(uint16_t flags)
{
	return nccl_types[(flags >> UNI_NCCL_OPF_TYPE_SHIFT) & 15];
}

/* nccl-tests' bus bandwidth of an operation of `bytes` over `dur` ns on
 * nranks ranks, bits per second (algorithm bandwidth bytes/time times
 * 2(n-1)/n for AllReduce, (n-1)/n for AllGather, ReduceScatter and
 * AlltoAll, 1 otherwise); 0 when it has no time. */
static double nccl_busbw(unsigned kind, uint64_t bytes, uint64_t dur, uint32_t nranks)
{
	if (!dur || !nranks)
		return 0;
	double n = (double)nranks, f = 1.0;
	if (kind == 1)
		f = 2.0 * (n - 1) / n;
	else if (kind == 4 || kind == 5 || kind == 6)
		f = (n - 1) / n;
	return (double)bytes * 8.0 / ((double)dur * 1e-9) * f;
}

static void nccl_account(struct summary *s, const struct uni_trec *t)
{
	if (t->kind == UNI_TR_NCCL_COMM) {
		for (size_t i = 0; i < s->ncomms; i++)
			if (s->comms[i].id == t->a) {
				s->comms[i].members++;
				return;
			}
		if (s->ncomms == 4096)
			return; /* a corrupt trace's worth */
		s->comms = xrealloc(s->comms, s->ncomms + 1, sizeof(*s->comms));
		s->comms[s->ncomms++] = (struct ncomm){.id = t->a, .nranks = (uint32_t)(t->off > 65535 ? 65535 : t->off),
						       .members = 1};
		return;
	}
	unsigned k = t->flags & 15;
	if (k < 1 || k > 10 || t->t1 < t->t0)
		return;
	uint64_t dur = t->t1 - t->t0;
	s->nccl_count[k]++;
	s->nccl_total[k] += dur;
	int i = top_slot(s->topnccl, sizeof(*s->topnccl), &s->ntopnccl, dur);
	if (i >= 0)
		s->topnccl[i] = (struct topnccl){.dur = dur, .t0 = t->t0, .bytes = t->len, .comm = t->a,
						 .rank = t->rank, .flags = t->flags, .nranks = t->conn >> 16};
}

static const char *const coll_names[9] = {"send/recv", "gather", "all_gather", "reduce", "all_reduce",
					  "scatter", "broadcast", "barrier", "all_to_all"};

static void op_close(struct summary *s, struct openop *o)
{
	unsigned k = (unsigned)(o->slot >> 56);
	if (!k || k > 8 || o->end <= o->t0)
		return;
	uint64_t dur = o->end - o->t0;
	s->op_count[k]++;
	s->op_total[k] += dur;
	int i = top_slot(s->topop, sizeof(*s->topop), &s->ntopop, dur);
	if (i >= 0)
		s->topop[i] = (struct topop){.dur = dur, .t0 = o->t0, .slot = o->slot, .rank = o->rank};
}

static struct openop *op_of(struct summary *s, int32_t rank, int32_t tid, int create)
{
	for (size_t i = 0; i < s->nopen; i++)
		if (s->open[i].rank == rank && s->open[i].tid == tid)
			return &s->open[i];
	if (!create)
		return NULL;
	s->open = xrealloc(s->open, s->nopen + 1, sizeof(*s->open));
	struct openop *o = &s->open[s->nopen++];
	memset(o, 0, sizeof(*o));
	o->rank = rank;
	o->tid = tid;
	return o;
}

/* Follows the thread's operation: an op record opens one (closing the
 * last), what the thread then receives, completes or hands on ends it. */
static void op_account(struct summary *s, const struct uni_trec *t)
{
	struct openop *o;
	switch (t->kind) {
	case UNI_TR_OP:
		o = op_of(s, t->rank, t->tid, 1);
		op_close(s, o);
		o->slot = t->a;
		o->t0 = o->end = t->t0;
		break;
	case UNI_TR_RECV:
	case UNI_TR_SENT:
		if ((o = op_of(s, t->rank, t->tid, 0)) && t->t1 > o->end)
			o->end = t->t1;
		break;
	case UNI_TR_SIGNAL:
		if ((o = op_of(s, t->rank, t->tid, 0)) && t->t0 > o->end)
			o->end = t->t0;
		break;
	case UNI_TR_THREAD_END:
		if ((o = op_of(s, t->rank, t->tid, 0)) != NULL) {
			op_close(s, o);
			o->slot = 0;
		}
		break;
	}
}

static void top_add(struct summary *s, const struct uni_trec *t, int32_t from)
{
	uint64_t dur = t->t1 > t->t0 ? t->t1 - t->t0 : 0;
	int i = top_slot(s->top, sizeof(*s->top), &s->ntop, dur);
	if (i >= 0)
		s->top[i] = (struct top){.dur = dur, .t0 = t->t0, .len = t->len, .from = from, .to = t->peer};
}

static struct rank_stat *get_rank(struct summary *s, int32_t rank)
{
	uint32_t i = map_get(&s->rank_idx, (uint32_t)rank);
	struct rank_stat *r;

	if (i != MAP_EMPTY)
		return &s->ranks[i];
	if (s->nranks == s->cap_ranks) {
		s->cap_ranks = s->cap_ranks ? s->cap_ranks * 2 : 16;
		s->ranks = xrealloc(s->ranks, s->cap_ranks, sizeof(*s->ranks));
	}
	r = &s->ranks[s->nranks];
	memset(r, 0, sizeof(*r));
	r->rank = rank;
	map_insert(&s->rank_idx, (uint32_t)rank, (uint32_t)s->nranks++);
	return r;
}

static struct pair_stat *get_pair(struct summary *s, int32_t rank,
				  int32_t peer)
{
	uint32_t i = map_get(&s->pair_idx, pair_key(rank, peer));
	struct pair_stat *p;

	if (i != MAP_EMPTY)
		return &s->pairs[i];
	if (s->npairs == s->cap_pairs) {
		s->cap_pairs = s->cap_pairs ? s->cap_pairs * 2 : 16;
		s->pairs = xrealloc(s->pairs, s->cap_pairs, sizeof(*s->pairs));
	}
	p = &s->pairs[s->npairs];
	memset(p, 0, sizeof(*p));
	p->rank = rank;
	p->peer = peer;
	map_insert(&s->pair_idx, pair_key(rank, peer), (uint32_t)s->npairs++);
	return p;
}

static void see_thread(struct summary *s, struct rank_stat *r, int32_t tid)
{
	uint64_t key = pair_key(r->rank, tid);

	if (map_get(&s->threads, key) != MAP_EMPTY)
		return;
	map_insert(&s->threads, key, 0);
	r->threads++;
}

/* trace.h's kinds name a second value "b", which struct uni_trec has no
 * field for; it travels in len (docs/trace-format.md). */
static uint64_t rec_b(const struct uni_trec *t)
{
	return t->len;
}

static void account(struct summary *s, const struct uni_trec *t)
{
	struct rank_stat *r;
	struct pair_stat *p;
	uint64_t last;

	if (t->rank >= 0 && t->tid > 0)
		op_account(s, t);
	switch (t->kind) {
	case UNI_TR_SESSION_START:
		s->have_start = 1;
		s->unid_pid = t->a;
		return;
	case UNI_TR_SESSION_END:
		s->have_end = 1;
		s->end_events = t->a;
		s->end_dropped = rec_b(t);
		s->end_unmodelled = t->off;
		s->end_late = t->conn;
		s->end_late_us = t->conn && t->peer > 0 ? (uint64_t)t->peer : 0;
		return;
	case UNI_TR_COMPUTE_FROM:
		s->have_cf = 1;
		s->cf_replayed = t->a;
		s->cf_followed = t->off;
		s->cf_diverged = rec_b(t);
		s->cf_unknown = t->conn;
		return;
	case UNI_TR_RANK_ATTACH:
	case UNI_TR_RANK_EXIT:
	case UNI_TR_THREAD:
	case UNI_TR_CONN:
	case UNI_TR_SEND:
	case UNI_TR_RECV:
	case UNI_TR_CONN_CLOSE:
	case UNI_TR_THREAD_END:
	case UNI_TR_DEADLOCK:
	case UNI_TR_COMPUTE:
	case UNI_TR_IDLE:
		break;
	case UNI_TR_SIGNAL:
	case UNI_TR_TAKE:
	case UNI_TR_DEP:
	case UNI_TR_DELAY:
	case UNI_TR_SENT:
	case UNI_TR_OP:
	case UNI_TR_STRING:
		return; /* the event graph, operations and strings: replay, export */
	case UNI_TR_NCCL_OP:
	case UNI_TR_NCCL_COMM:
		nccl_account(s, t);
		return;
	default:
		/* A newer minor's addition: skipped, but counted. */
		s->unknown++;
		return;
	}
	if (t->rank < 0) {
		s->bad_rank++;
		return;
	}
	/* A transfer belongs to the network node of its connection's end. */
	int32_t who = unitrace_node_of(&s->nodes, t);
	r = get_rank(s, who);
	if (who != t->rank && !r->attached && !r->host)
		r->host = t->rank + 1;

	switch (t->kind) {
	case UNI_TR_RANK_ATTACH:
		r->attached = 1;
		r->attach_t = t->t0;
		r->pid = t->a;
		r->world = rec_b(t);
		if (r->world > s->world)
			s->world = r->world;
		break;
	case UNI_TR_RANK_EXIT:
		if (t->flags & UNI_TRF_DIED)
			r->end = END_DIED;
		else if (t->flags & UNI_TRF_CLEAN)
			r->end = END_CLEAN;
		r->have_end_t = 1;
		r->end_t = t->t0;
		r->compute = t->off;
		r->waited = t->len;
		break;
	case UNI_TR_THREAD_END:
		see_thread(s, r, t->tid);
		break;
	case UNI_TR_DEADLOCK:
		s->deadlocked++;
		r->deadlocked++;
		break;
	case UNI_TR_THREAD:
		see_thread(s, r, t->tid);
		break;
	case UNI_TR_CONN:
		r->conns++;
		s->conns++;
		if (t->flags & UNI_TRF_STORE)
			map_insert(&s->store_conns, t->conn, 1);
		if (t->flags & UNI_TRF_CREDIT)
			map_insert(&s->credit_conns, t->conn, 1);
		break;
	case UNI_TR_SEND:
	case UNI_TR_RECV:
		see_thread(s, r, t->tid);
		if (s->store_conns.cap && map_get(&s->store_conns, t->conn) != MAP_EMPTY) {
			/* The rendezvous store's control plane (deterministic
			 * mode): not the network's traffic. */
			if (t->kind == UNI_TR_SEND) {
				s->store_msgs++;
				s->store_bytes += t->len;
			}
			break;
		}
		if (s->credit_conns.cap && map_get(&s->credit_conns, t->conn) != MAP_EMPTY) {
			/* Flow control (docs/nccl.md): a sender reads a credit
			 * only when a send needs it. */
			*(t->kind == UNI_TR_SEND ? &s->credits_sent : &s->credits_read) += t->len;
			break;
		}
		last = t->t1 > t->t0 ? t->t1 : t->t0;
		if (!r->have_events || t->t0 < r->first)
			r->first = t->t0;
		if (!r->have_events || last > r->last)
			r->last = last;
		r->have_events = 1;
		p = get_pair(s, who, t->peer);
		if (t->kind == UNI_TR_SEND) {
			top_add(s, t, who);
			r->sends++;
			r->bytes_sent += t->len;
			p->sends++;
			p->bytes_sent += t->len;
		} else {
			r->recvs++;
			r->bytes_recv += t->len;
			p->recvs++;
			p->bytes_recv += t->len;
		}
		break;
	}
}

static int cmp_rank(const void *a, const void *b)
{
	const struct rank_stat *x = a, *y = b;

	return (x->rank > y->rank) - (x->rank < y->rank);
}

static int cmp_pair(const void *a, const void *b)
{
	const struct pair_stat *x = a, *y = b;

	if (x->rank != y->rank)
		return (x->rank > y->rank) - (x->rank < y->rank);
	return (x->peer > y->peer) - (x->peer < y->peer);
}

static int cmp_mism(const void *a, const void *b)
{
	const struct mismatch *x = a, *y = b;

	if (x->from != y->from)
		return (x->from > y->from) - (x->from < y->from);
	return (x->to > y->to) - (x->to < y->to);
}

static const struct pair_stat *find_pair(const struct summary *s,
					 int32_t rank, int32_t peer)
{
	struct pair_stat key = { .rank = rank, .peer = peer };

	if (!s->npairs)
		return NULL;
	return bsearch(&key, s->pairs, s->npairs, sizeof(*s->pairs), cmp_pair);
}

static void add_mismatch(struct summary *s, int32_t from, int32_t to,
			 uint64_t sent, uint64_t received)
{
	if (s->nmism == s->cap_mism) {
		s->cap_mism = s->cap_mism ? s->cap_mism * 2 : 8;
		s->mism = xrealloc(s->mism, s->cap_mism, sizeof(*s->mism));
	}
	s->mism[s->nmism++] = (struct mismatch){ from, to, sent, received };
}

/* Sorts everything and compares, for every ordered pair a->b, what a sent
 * to b with what b received from a. Bytes to or from a negative peer (a
 * connection unid could not match to a rank) have no other side to check. */
static void finish_summary(struct summary *s)
{
	for (size_t i = 0; i < s->nopen; i++)
		op_close(s, &s->open[i]); /* operations still open at the end */
	if (s->nranks)
		qsort(s->ranks, s->nranks, sizeof(*s->ranks), cmp_rank);
	if (s->npairs)
		qsort(s->pairs, s->npairs, sizeof(*s->pairs), cmp_pair);
	/* The maps index the unsorted arrays; nothing uses them after this. */
	map_free(&s->rank_idx);
	map_free(&s->pair_idx);
	map_free(&s->threads);
	map_free(&s->store_conns);
	map_free(&s->credit_conns);
	free(s->nodes.conn_rank);
	s->nodes.conn_rank = NULL;

	for (size_t i = 0; i < s->npairs; i++) {
		const struct pair_stat *p = &s->pairs[i], *q;

		if (p->peer < 0) {
			s->external_bytes += p->bytes_sent + p->bytes_recv;
			continue;
		}
		q = find_pair(s, p->peer, p->rank);
		/* p->rank -> p->peer, seen from both ends. */
		if (p->bytes_sent != (q ? q->bytes_recv : 0))
			add_mismatch(s, p->rank, p->peer, p->bytes_sent,
				     q ? q->bytes_recv : 0);
		/* p->peer -> p->rank when the sender logged nothing at all
		 * (otherwise the peer's own entry covers it). */
		if (!q && p->bytes_recv)
			add_mismatch(s, p->peer, p->rank, 0, p->bytes_recv);
	}
	if (s->nmism)
		qsort(s->mism, s->nmism, sizeof(*s->mism), cmp_mism);
}

static void free_summary(struct summary *s)
{
	map_free(&s->rank_idx);
	map_free(&s->pair_idx);
	map_free(&s->threads);
	map_free(&s->store_conns);
	map_free(&s->credit_conns);
	free(s->nodes.conn_rank);
	free(s->ranks);
	free(s->pairs);
	free(s->mism);
	free(s->open);
	free(s->comms);
}

static const char *end_text(enum rank_end e)
{
	switch (e) {
	case END_CLEAN:
		return "detached cleanly";
	case END_DIED:
		return "died";
	case END_UNKNOWN:
		break;
	}
	return "still running or unknown";
}

static const char *end_json(enum rank_end e)
{
	switch (e) {
	case END_CLEAN:
		return "clean";
	case END_DIED:
		return "died";
	case END_UNKNOWN:
		break;
	}
	return "unknown";
}

static void print_peer(int32_t peer)
{
	if (peer < 0)
		printf("%8s", "?");
	else
		printf("%8" PRId32, peer);
}

/* The rank that ends last (the predicted makespan), or NULL. */
static const struct rank_stat *last_rank(const struct summary *s)
{
	const struct rank_stat *last = NULL;
	for (size_t i = 0; i < s->nranks; i++)
		if (s->ranks[i].have_end_t && (!last || s->ranks[i].end_t > last->end_t))
			last = &s->ranks[i];
	return last;
}

/* Simulate mode: the main thread's time that was neither compute nor
 * communication (sleeps, clocks pushed by something else). */
static uint64_t rank_idle(const struct rank_stat *r, uint32_t mode)
{
	/* Simulate: the main thread's clock from 0; record: its life in real
	 * time, since the rank attached. */
	uint64_t life = mode == UNI_MODE_SIMULATE ? r->end_t : r->end_t > r->attach_t ? r->end_t - r->attach_t : 0;
	uint64_t busy = r->compute + r->waited;
	return life > busy ? life - busy : 0;
}

static void summary_text(const struct summary *s, const char *path)
{
	const struct uni_trace_hdr *h = &s->hdr;
	const char *tb = unitrace_time_base(h->mode);
	uint64_t sends = 0, recvs = 0, sent = 0, recvd = 0;
	size_t pi = 0;
	char when[64];

	printf("trace      ");
	text_str(path);
	printf(" (format %u.%u, %" PRIu64 " records)\n", h->version_major,
	       h->version_minor, s->nrec);
	printf("session    ");
	text_str(h->session);
	printf("\nmode       %s (times: %s time, ms since session start)\n",
	       unitrace_mode_name(h->mode), tb);
	fmt_realtime(when, sizeof(when), h->epoch_real_ns);
	printf("started    %s\n", when);
	if (h->config_path[0]) {
		printf("config     ");
		text_str(h->config_path);
		putchar('\n');
	}
	if (s->have_start)
		printf("unid pid   %" PRIu64 "\n", s->unid_pid);
	printf("ranks      %zu", s->nranks);
	if (s->world)
		printf(" (world size %" PRIu64 ")", s->world);
	putchar('\n');

	for (size_t i = 0; i < s->nranks; i++) {
		const struct rank_stat *r = &s->ranks[i];

		printf("\nrank %" PRId32 ": ", r->rank);
		if (r->attached)
			printf("pid %" PRIu64, r->pid);
		else if (r->host) {
			printf("a simulated NCCL rank in rank %" PRId32 "'s process (its own network node)\n",
			       r->host - 1);
			goto transfers;
		} else
			printf("pid unknown (no attach record)");
		printf(", %s, %" PRIu32 " thread%s\n", end_text(r->end),
		       r->threads, r->threads == 1 ? "" : "s");
	transfers:
		if (r->have_events)
			printf("  transfers %.3f .. %.3f ms (span %.3f ms, %s time)\n",
			       ms(r->first), ms(r->last),
			       ms(r->last - r->first), tb);
		else
			printf("  no transfers\n");
		printf("  sends %" PRIu64 ", recvs %" PRIu64
		       ", bytes sent %" PRIu64 ", bytes received %" PRIu64 "\n",
		       r->sends, r->recvs, r->bytes_sent, r->bytes_recv);
		if (h->mode == UNI_MODE_SIMULATE && r->have_end_t && r->end == END_CLEAN) {
			printf("  end %.3f ms virtual: compute %.3f ms, communication %.3f ms, idle %.3f ms "
			       "(main thread)\n", ms(r->end_t), ms(r->compute), ms(r->waited), ms(rank_idle(r, h->mode)));
		} else if (h->mode == UNI_MODE_RECORD && r->have_end_t && r->end == END_CLEAN && r->compute) {
			printf("  lived %.3f ms real (%.3f .. %.3f ms): compute %.3f ms (CPU), communication %.3f ms "
			       "(waiting, blocked), idle %.3f ms (sleeps) (main thread)\n",
			       ms(r->end_t - r->attach_t), ms(r->attach_t), ms(r->end_t), ms(r->compute), ms(r->waited),
			       ms(rank_idle(r, h->mode)));
		}

		while (pi < s->npairs && s->pairs[pi].rank < r->rank)
			pi++;
		if (pi < s->npairs && s->pairs[pi].rank == r->rank)
			printf("  %8s %10s %10s %16s %16s\n", "peer", "sends",
			       "recvs", "bytes sent", "bytes received");
		for (; pi < s->npairs && s->pairs[pi].rank == r->rank; pi++) {
			const struct pair_stat *p = &s->pairs[pi];

			printf("  ");
			print_peer(p->peer);
			printf(" %10" PRIu64 " %10" PRIu64 " %16" PRIu64
			       " %16" PRIu64 "\n", p->sends, p->recvs,
			       p->bytes_sent, p->bytes_recv);
		}
		sends += r->sends;
		recvs += r->recvs;
		sent += r->bytes_sent;
		recvd += r->bytes_recv;
	}

	if (s->deadlocked) {
		printf("\nDEADLOCK: unid found %" PRIu64 " thread%s blocked for good (", s->deadlocked,
		       s->deadlocked == 1 ? "" : "s");
		for (size_t i = 0, first = 1; i < s->nranks; i++)
			if (s->ranks[i].deadlocked) {
				printf("%srank %" PRId32 ": %" PRIu32, first ? "" : ", ", s->ranks[i].rank,
				       s->ranks[i].deadlocked);
				first = 0;
			}
		printf("); the ranks were stopped, so there is no makespan; the report is beside the trace "
		       "(TRACE.deadlock.txt)\n");
	} else if (h->mode == UNI_MODE_SIMULATE) {
		const struct rank_stat *last = last_rank(s);
		if (last)
			printf("\npredicted makespan %.3f ms (virtual; rank %" PRId32 " ends last)\n",
			       ms(last->end_t), last->rank);
	}
	if (s->ntopop) {
		printf("\nlongest collectives (first notice to the worker's last arrival or completion, %s):\n",
		       h->mode == UNI_MODE_SIMULATE ? "virtual" : "real");
		for (size_t i = 0; i < s->ntopop; i++)
			printf("  %10.3f ms  rank %" PRId32 " %s (tag %" PRIu64 "), at %.3f ms\n", ms(s->topop[i].dur),
			       s->topop[i].rank, coll_names[s->topop[i].slot >> 56], (s->topop[i].slot >> 24) & 0xffffffffu,
			       ms(s->topop[i].t0));
		printf("  by kind:");
		for (int k = 1; k < 9; k++)
			if (s->op_count[k])
				printf(" %s %" PRIu64 " (%.3f ms)", coll_names[k], s->op_count[k], ms(s->op_total[k]));
		putchar('\n');
	}
	if (s->ncomms) {
		printf("\nNCCL communicators: %zu:", s->ncomms);
		for (size_t i = 0; i < s->ncomms && i < 8; i++)
			printf("%s %016" PRIx64 " (%" PRIu32 " ranks)", i ? "," : "", s->comms[i].id, s->comms[i].nranks);
		printf("%s\n", s->ncomms > 8 ? ", ..." : "");
	}
	if (s->ntopnccl) {
		printf("longest NCCL operations (each rank's part, call to completion, %s):\n",
		       h->mode == UNI_MODE_SIMULATE ? "virtual" : "real");
		for (size_t i = 0; i < s->ntopnccl; i++) {
			const struct topnccl *o = &s->topnccl[i];
			printf("  %10.3f ms  rank %" PRId32 " %s %" PRIu64 " B %s %s%s, busbw %.3f Gbit/s, comm %016" PRIx64
			       " (%" PRIu32 " ranks), at %.3f ms\n",
			       ms(o->dur), o->rank, unitrace_nccl_op(o->flags), o->bytes,
			       unitrace_nccl_type(o->flags),
			       unitrace_nccl_algo(o->flags),
			       (o->flags & UNI_NCCL_OPF_GROUP) ? " (grouped)" : "",
			       nccl_busbw(o->flags & 15, o->bytes, o->dur, o->nranks) / 1e9, o->comm, o->nranks, ms(o->t0));
		}
		printf("  by kind:");
		for (int k = 1; k < 11; k++)
			if (s->nccl_count[k])
				printf(" %s %" PRIu64 " (%.3f ms)", unitrace_nccl_op((uint16_t)k), s->nccl_count[k], ms(s->nccl_total[k]));
		putchar('\n');
	}
	if (s->ntop) {
		printf("\nlongest transfers (%s):\n", h->mode == UNI_MODE_SIMULATE
							 ? "handed over to last byte arrived, virtual"
							 : "the send calls, real");
		for (size_t i = 0; i < s->ntop; i++)
			printf("  %10.3f ms  rank %" PRId32 " -> %" PRId32 ", %" PRIu64 " B, at %.3f ms\n",
			       ms(s->top[i].dur), s->top[i].from, s->top[i].to, s->top[i].len, ms(s->top[i].t0));
	}
	printf("\ntotals     sends %" PRIu64 ", recvs %" PRIu64
	       ", bytes sent %" PRIu64 ", bytes received %" PRIu64 "\n",
	       sends, recvs, sent, recvd);
	if (s->conns)
		printf("           %" PRIu64 " connection%s\n", s->conns,
		       s->conns == 1 ? "" : "s");
	if (s->have_end)
		printf("session end: %" PRIu64 " events, %" PRIu64
		       " dropped, %" PRIu64 " unmodelled connections\n",
		       s->end_events, s->end_dropped, s->end_unmodelled);
	if (s->end_late)
		printf("late:      %" PRIu64 " transfer%s started after %s stamp, the latest %.3f ms after it "
		       "(a sender the network had stopped waiting for; times after it may be off)\n",
		       s->end_late, s->end_late == 1 ? "" : "s", s->end_late == 1 ? "its" : "their",
		       (double)s->end_late_us / 1e3);
	if (s->have_cf)
		printf("compute:   replayed from another trace (--compute-from): %" PRIu64
		       " stretches; threads: %" PRIu64 " followed the recorded run to their end, %" PRIu64
		       " left it (measured from there), %" PRIu64 " were not in it\n",
		       s->cf_replayed, s->cf_followed, s->cf_diverged, s->cf_unknown);

	if (!s->nmism) {
		printf("consistency: bytes sent == bytes received on every connection\n");
	} else {
		printf("consistency: %zu mismatch%s (bytes sent by A to B vs received by B from A):\n",
		       s->nmism, s->nmism == 1 ? "" : "es");
		for (size_t i = 0; i < s->nmism; i++) {
			const struct mismatch *m = &s->mism[i];

			printf("  %" PRId32 " -> %" PRId32 ": sent %" PRIu64
			       ", received %" PRIu64 "\n", m->from, m->to,
			       m->sent, m->received);
		}
	}
	if (s->external_bytes)
		printf("note: %" PRIu64 " bytes to/from unknown peers were not checked\n",
		       s->external_bytes);
	if (s->store_msgs)
		printf("note: the rendezvous store's %" PRIu64 " message%s (%" PRIu64
		       " bytes; deterministic mode, over no link, in no time) are not in the totals\n",
		       s->store_msgs, s->store_msgs == 1 ? "" : "s", s->store_bytes);
	if (s->credits_sent)
		printf("note: the simulated NCCL's flow control sent %" PRIu64 " credit bytes, of which senders read %" PRIu64
		       " (only those a send needed); not in the totals\n",
		       s->credits_sent, s->credits_read);
	if (s->unknown)
		printf("note: skipped %" PRIu64 " record%s of unknown kinds (newer minor version?)\n",
		       s->unknown, s->unknown == 1 ? "" : "s");
	if (s->bad_rank)
		printf("note: ignored %" PRIu64 " per-rank record%s with a negative rank\n",
		       s->bad_rank, s->bad_rank == 1 ? "" : "s");
	if (s->truncated)
		printf("warning: trace ends inside a record after %" PRIu64
		       " records: was the daemon killed?\n", s->nrec);
	if (!s->have_end)
		printf("warning: session did not end cleanly (no session-end record)\n");
}

static void summary_json(const struct summary *s, const char *path)
{
	const struct uni_trace_hdr *h = &s->hdr;
	uint64_t sends = 0, recvs = 0, sent = 0, recvd = 0;
	size_t pi = 0;

	printf("{\n  \"file\": ");
	unitrace_json_str(path);
	printf(",\n  \"version_major\": %u,\n  \"version_minor\": %u,\n",
	       h->version_major, h->version_minor);
	printf("  \"session\": ");
	unitrace_json_str(h->session);
	printf(",\n  \"mode\": \"%s\",\n  \"mode_id\": %" PRIu32 ",\n",
	       unitrace_mode_name(h->mode), h->mode);
	printf("  \"time_base\": \"%s\",\n", unitrace_time_base(h->mode));
	printf("  \"epoch_real_ns\": %" PRIu64 ",\n  \"epoch_mono_ns\": %" PRIu64
	       ",\n", h->epoch_real_ns, h->epoch_mono_ns);
	printf("  \"config_path\": ");
	unitrace_json_str(h->config_path);
	printf(",\n  \"records\": %" PRIu64 ",\n", s->nrec);
	printf("  \"truncated\": %s,\n  \"complete\": %s,\n",
	       s->truncated ? "true" : "false",
	       s->have_end ? "true" : "false");
	if (s->have_start)
		printf("  \"unid_pid\": %" PRIu64 ",\n", s->unid_pid);
	else
		printf("  \"unid_pid\": null,\n");
	printf("  \"world_size\": %" PRIu64 ",\n  \"nranks\": %zu,\n",
	       s->world, s->nranks);

	printf("  \"ranks\": [");
	for (size_t i = 0; i < s->nranks; i++) {
		const struct rank_stat *r = &s->ranks[i];
		int first = 1;

		printf("%s\n    {\"rank\": %" PRId32 ", ", i ? "," : "", r->rank);
		if (r->attached)
			printf("\"pid\": %" PRIu64 ", ", r->pid);
		else
			printf("\"pid\": null, ");
		if (r->host)
			printf("\"node_of_rank\": %" PRId32 ", ", r->host - 1);
		printf("\"end\": \"%s\", \"threads\": %" PRIu32 ", ",
		       end_json(r->end), r->threads);
		if (r->have_events)
			printf("\"first_ns\": %" PRIu64 ", \"last_ns\": %" PRIu64
			       ", \"span_ms\": %.6f, ", r->first, r->last,
			       ms(r->last - r->first));
		else
			printf("\"first_ns\": null, \"last_ns\": null, \"span_ms\": null, ");
		if (r->have_end_t)
			printf("\"end_ns\": %" PRIu64 ", ", r->end_t);
		else
			printf("\"end_ns\": null, ");
		if ((h->mode == UNI_MODE_SIMULATE || (h->mode == UNI_MODE_RECORD && r->compute)) && r->have_end_t &&
		    r->end == END_CLEAN) {
			printf("\"compute_ms\": %.6f, \"communication_ms\": %.6f, \"idle_ms\": %.6f, ",
			       ms(r->compute), ms(r->waited), ms(rank_idle(r, h->mode)));
		}
		printf("\"sends\": %" PRIu64 ", \"recvs\": %" PRIu64
		       ", \"bytes_sent\": %" PRIu64 ", \"bytes_received\": %"
		       PRIu64 ", \"connections\": %" PRIu64 ",\n     \"per_peer\": [",
		       r->sends, r->recvs, r->bytes_sent, r->bytes_recv,
		       r->conns);
		while (pi < s->npairs && s->pairs[pi].rank < r->rank)
			pi++;
		for (; pi < s->npairs && s->pairs[pi].rank == r->rank; pi++) {
			const struct pair_stat *p = &s->pairs[pi];

			printf("%s\n       {\"peer\": %" PRId32 ", \"sends\": %"
			       PRIu64 ", \"recvs\": %" PRIu64
			       ", \"bytes_sent\": %" PRIu64
			       ", \"bytes_received\": %" PRIu64 "}",
			       first ? "" : ",", p->peer, p->sends, p->recvs,
			       p->bytes_sent, p->bytes_recv);
			first = 0;
		}
		printf("%s]}", first ? "" : "\n     ");
		sends += r->sends;
		recvs += r->recvs;
		sent += r->bytes_sent;
		recvd += r->bytes_recv;
	}
	printf("%s],\n", s->nranks ? "\n  " : "");

	printf("  \"deadlocked_threads\": %" PRIu64 ",\n", s->deadlocked);
	if (h->mode == UNI_MODE_SIMULATE) {
		const struct rank_stat *last = last_rank(s);
		if (last && !s->deadlocked)
			printf("  \"makespan_ms\": %.6f,\n  \"makespan_rank\": %" PRId32 ",\n",
			       ms(last->end_t), last->rank);
		else
			printf("  \"makespan_ms\": null,\n");
	}
	printf("  \"top_collectives\": [");
	for (size_t i = 0; i < s->ntopop; i++)
		printf("%s{\"rank\": %" PRId32 ", \"kind\": \"%s\", \"tag\": %" PRIu64 ", \"start_ms\": %.6f, "
		       "\"duration_ms\": %.6f}",
		       i ? ", " : "", s->topop[i].rank, coll_names[s->topop[i].slot >> 56],
		       (s->topop[i].slot >> 24) & 0xffffffffu, ms(s->topop[i].t0), ms(s->topop[i].dur));
	printf("],\n  \"collectives\": {");
	for (int k = 1, first = 1; k < 9; k++)
		if (s->op_count[k]) {
			printf("%s\"%s\": {\"count\": %" PRIu64 ", \"total_ms\": %.6f}", first ? "" : ", ", coll_names[k],
			       s->op_count[k], ms(s->op_total[k]));
			first = 0;
		}
	printf("},\n");
	printf("  \"nccl_comms\": [");
	for (size_t i = 0; i < s->ncomms; i++)
		printf("%s{\"id\": \"%016" PRIx64 "\", \"nranks\": %" PRIu32 ", \"ranks_seen\": %" PRIu32 "}",
		       i ? ", " : "", s->comms[i].id, s->comms[i].nranks, s->comms[i].members);
	printf("],\n  \"top_nccl_ops\": [");
	for (size_t i = 0; i < s->ntopnccl; i++) {
		const struct topnccl *o = &s->topnccl[i];
		printf("%s{\"rank\": %" PRId32 ", \"op\": \"%s\", \"bytes\": %" PRIu64 ", \"type\": \"%s\", "
		       "\"algorithm\": \"%s\", \"grouped\": %s, \"comm\": \"%016" PRIx64 "\", \"nranks\": %" PRIu32
		       ", \"start_ms\": %.6f, \"duration_ms\": %.6f, \"busbw_bps\": %.0f}",
		       i ? ", " : "", o->rank, unitrace_nccl_op(o->flags), o->bytes,
		       unitrace_nccl_type(o->flags),
		       unitrace_nccl_algo(o->flags),
		       (o->flags & UNI_NCCL_OPF_GROUP) ? "true" : "false", o->comm, o->nranks, ms(o->t0), ms(o->dur),
		       nccl_busbw(o->flags & 15, o->bytes, o->dur, o->nranks));
	}
	printf("],\n  \"nccl_ops\": {");
	for (int k = 1, first = 1; k < 11; k++)
		if (s->nccl_count[k]) {
			printf("%s\"%s\": {\"count\": %" PRIu64 ", \"total_ms\": %.6f}", first ? "" : ", ", unitrace_nccl_op((uint16_t)k),
			       s->nccl_count[k], ms(s->nccl_total[k]));
			first = 0;
		}
	printf("},\n");
	printf("  \"top_transfers\": [");
	for (size_t i = 0; i < s->ntop; i++)
		printf("%s{\"from\": %" PRId32 ", \"to\": %" PRId32 ", \"bytes\": %" PRIu64 ", \"start_ms\": %.6f, "
		       "\"duration_ms\": %.6f}",
		       i ? ", " : "", s->top[i].from, s->top[i].to, s->top[i].len, ms(s->top[i].t0), ms(s->top[i].dur));
	printf("],\n");
	printf("  \"totals\": {\"sends\": %" PRIu64 ", \"recvs\": %" PRIu64
	       ", \"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64
	       ", \"connections\": %" PRIu64 "},\n",
	       sends, recvs, sent, recvd, s->conns);
	if (s->have_end)
		printf("  \"session_end\": {\"events\": %" PRIu64
		       ", \"dropped\": %" PRIu64 ", \"unmodelled_conns\": %"
		       PRIu64 ", \"late_transfers\": %" PRIu64 ", \"late_max_ms\": %.3f},\n",
		       s->end_events, s->end_dropped, s->end_unmodelled, s->end_late,
		       (double)s->end_late_us / 1e3);
	else
		printf("  \"session_end\": null,\n");
	if (s->have_cf)
		printf("  \"compute_from\": {\"stretches\": %" PRIu64 ", \"threads_followed\": %" PRIu64
		       ", \"threads_left\": %" PRIu64 ", \"threads_unknown\": %" PRIu64 "},\n",
		       s->cf_replayed, s->cf_followed, s->cf_diverged, s->cf_unknown);
	printf("  \"consistent\": %s,\n  \"mismatches\": [",
	       s->nmism ? "false" : "true");
	for (size_t i = 0; i < s->nmism; i++) {
		const struct mismatch *m = &s->mism[i];

		printf("%s\n    {\"from\": %" PRId32 ", \"to\": %" PRId32
		       ", \"sent\": %" PRIu64 ", \"received\": %" PRIu64 "}",
		       i ? "," : "", m->from, m->to, m->sent, m->received);
	}
	printf("%s],\n", s->nmism ? "\n  " : "");
	printf("  \"unchecked_external_bytes\": %" PRIu64 ",\n",
	       s->external_bytes);
	printf("  \"store_messages\": %" PRIu64 ",\n  \"store_bytes\": %" PRIu64 ",\n", s->store_msgs,
	       s->store_bytes);
	printf("  \"credit_bytes_sent\": %" PRIu64 ",\n  \"credit_bytes_read\": %" PRIu64 ",\n", s->credits_sent,
	       s->credits_read);
	printf("  \"unknown_records\": %" PRIu64 ",\n  \"bad_rank_records\": %"
	       PRIu64 "\n}\n", s->unknown, s->bad_rank);
}

static int trace_fail(const struct uni_trace_reader *r)
{
	fprintf(stderr, "unitrace: %s\n", r->err);
	return EXIT_TRACE;
}

static int cmd_summary(const char *path, int json)
{
	struct uni_trace_reader r;
	struct summary s;
	struct uni_trec t;
	int rc;

	if (uni_trace_open(&r, path) < 0)
		return trace_fail(&r);
	memset(&s, 0, sizeof(s));
	s.hdr = r.hdr;
	while ((rc = uni_trace_next(&r, &t)) == 1)
		account(&s, &t);
	if (rc < 0) {
		rc = trace_fail(&r);
		uni_trace_close(&r);
		free_summary(&s);
		return rc;
	}
	s.nrec = r.nrec;
	s.truncated = r.truncated;
	uni_trace_close(&r);

	finish_summary(&s);
	if (json)
		summary_json(&s, path);
	else
		summary_text(&s, path);
	free_summary(&s);
	/* Simulate mode: the three most loaded links, when the configuration
	 * the trace names is there. */
	if (!json && s.hdr.mode == UNI_MODE_SIMULATE) {
		fflush(stdout);
		unitrace_links(path, NULL, 0, 3, 1);
	}
	return 0;
}

/* dump -------------------------------------------------------------------- */

static void dump_rec(const struct uni_trec *t, uint64_t i, int json)
{
	const char *name = uni_trec_kind_name(t->kind);

	if (json) {
		printf("{\"kind\":\"%s\",\"kind_id\":%u", name, t->kind);
	} else {
		printf("%" PRIu64 " ", i);
		if (name[0] == '?')
			printf("?(%u)", t->kind);
		else
			printf("%s", name);
	}
	/* One format for both: the JSON keys double as text labels. */
	printf(json ? ",\"rank\":%" PRId32 ",\"tid\":%" PRId32
		      ",\"peer\":%" PRId32 ",\"conn\":%" PRIu32
		      ",\"t0\":%" PRIu64 ",\"t1\":%" PRIu64
		      ",\"off\":%" PRIu64 ",\"len\":%" PRIu64
		      ",\"a\":%" PRIu64 ",\"flags\":%u"
		    : " rank=%" PRId32 " tid=%" PRId32 " peer=%" PRId32
		      " conn=%" PRIu32 " t0=%" PRIu64 " t1=%" PRIu64
		      " off=%" PRIu64 " len=%" PRIu64 " a=%" PRIu64
		      " flags=0x%x",
	       t->rank, t->tid, t->peer, t->conn, t->t0, t->t1, t->off,
	       t->len, t->a, t->flags);
	if (t->kind == UNI_TR_STRING) {
		/* The chunk's bytes (string record seq of string conn, peer
		 * bytes in all) as text, as well as the raw fields. */
		char text[41] = "";
		uint64_t w[5] = {t->t0, t->t1, t->off, t->len, t->a}, at = (uint64_t)t->seq * 40;
		if (t->peer > 0 && at < (uint64_t)t->peer)
			memcpy(text, w, (uint64_t)t->peer - at < 40 ? (size_t)((uint64_t)t->peer - at) : 40);
		if (json) {
			printf(",\"text\":");
			unitrace_json_str(text);
		} else {
			printf(" text=\"");
			text_str(text);
			putchar('"');
		}
	}
	printf(json ? "}\n" : "\n");
}

static int cmd_dump(const char *path, int json)
{
	struct uni_trace_reader r;
	const struct uni_trace_hdr *h = &r.hdr;
	struct uni_trec t;
	int rc;

	if (uni_trace_open(&r, path) < 0)
		return trace_fail(&r);
	if (!json) {
		/* Header lines start with '#' so that records are the only
		 * other lines. */
		printf("# trace format %u.%u, mode %s, session ",
		       h->version_major, h->version_minor, unitrace_mode_name(h->mode));
		text_str(h->session);
		printf("\n# epoch_real_ns %" PRIu64 " epoch_mono_ns %" PRIu64
		       "\n", h->epoch_real_ns, h->epoch_mono_ns);
	}
	while ((rc = uni_trace_next(&r, &t)) == 1)
		dump_rec(&t, r.nrec - 1, json);
	if (rc < 0) {
		rc = trace_fail(&r);
		uni_trace_close(&r);
		return rc;
	}
	/* stderr, so that --json output stays one object per line. */
	if (r.truncated)
		fprintf(stderr, "unitrace: %s: trace ends inside a record after %"
			PRIu64 " records: was the daemon killed?\n", path,
			r.nrec);
	uni_trace_close(&r);
	return 0;
}

/* export --chrome -------------------------------------------------------- */

/* Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): a process
 * per rank, a track per thread, and per (rank, peer) a "link" track that
 * shows each transfer on the wire. Streamed: three passes over the file,
 * events written as records are read; memory grows with threads,
 * connections and the number of transfers (a 16-byte entry per send and
 * read end, to join each send to the read that ends at its last byte),
 * never with what records hold. Times are in microseconds (the format's
 * unit) with nanosecond decimals. */
#define CHROME_LINK_TID 1000000000 /* + peer: the link tracks' thread ids */

/* (sender's conn, end offset) -> 1: a send chunk ends there, 2: a read does. */
struct endset {
	uint64_t *key;
	uint8_t *bits;
	size_t cap, n;
};

static uint64_t end_key(uint32_t conn, uint64_t end)
{
	return (uint64_t)conn << 44 | (end & ((1ull << 44) - 1));
}

static size_t endset_slot(const struct endset *e, uint64_t k)
{
	size_t i = (size_t)((k + 1) * 0x9E3779B97F4A7C15ull >> 20) & (e->cap - 1);
	while (e->key[i] && e->key[i] != k + 1)
		i = (i + 1) & (e->cap - 1);
	return i;
}

static void endset_add(struct endset *e, uint64_t k, uint8_t bit)
{
	if (2 * (e->n + 1) > e->cap) {
		struct endset g = {.cap = e->cap ? 2 * e->cap : 1024};
		g.key = xrealloc(NULL, g.cap, sizeof(*g.key));
		g.bits = xrealloc(NULL, g.cap, 1);
		memset(g.key, 0, g.cap * sizeof(*g.key));
		for (size_t i = 0; i < e->cap; i++)
			if (e->key[i]) {
				size_t j = endset_slot(&g, e->key[i] - 1);
				g.key[j] = e->key[i];
				g.bits[j] = e->bits[i];
				g.n++;
			}
		free(e->key);
		free(e->bits);
		*e = g;
	}
	size_t i = endset_slot(e, k);
	if (!e->key[i]) {
		e->key[i] = k + 1;
		e->bits[i] = 0;
		e->n++;
	}
	e->bits[i] |= bit;
}

static int endset_both(const struct endset *e, uint64_t k)
{
	if (!e->cap)
		return 0;
	size_t i = endset_slot(e, k);
	return e->key[i] && e->bits[i] == 3;
}

struct chrome {
	int first;
	struct endset ends;
	uint32_t mode;
	uint32_t *peer_conn; /* conn -> the other end's conn + 1 (0: unknown) */
	size_t npeer;
	uint64_t *seen;      /* (rank << 32 | tid) already named */
	size_t nseen, capseen;
	uint64_t links[256 * 4]; /* bitmap: (rank, peer) link tracks named */
	uint64_t merge_named;    /* --merge: profiler threads 0..63 named */
	struct cstr *str;        /* strings (call stacks), by (rank, id) */
	size_t nstr, capstr;
};

/* A string of the trace (1.3: call stacks of Gloo operations), assembled
 * from its 40-byte STRING records. */
struct cstr {
	int32_t rank;
	uint32_t id;
	uint32_t len;
	char *text;
};

static struct cstr *cstr_get(struct chrome *c, int32_t rank, uint32_t id, uint32_t len)
{
	for (size_t i = 0; i < c->nstr; i++)
		if (c->str[i].rank == rank && c->str[i].id == id)
			return &c->str[i];
	if (!len || len > (1u << 16))
		return NULL;
	if (c->nstr == c->capstr) {
		c->capstr = c->capstr ? c->capstr * 2 : 16;
		c->str = xrealloc(c->str, c->capstr, sizeof(*c->str));
	}
	struct cstr *s = &c->str[c->nstr++];
	s->rank = rank;
	s->id = id;
	s->len = len;
	s->text = xrealloc(NULL, (size_t)len + 1, 1);
	memset(s->text, 0, (size_t)len + 1);
	return s;
}

static void cstr_add(struct chrome *c, const struct uni_trec *t)
{
	struct cstr *s = cstr_get(c, t->rank, t->conn, t->peer > 0 ? (uint32_t)t->peer : 0);
	if (!s)
		return;
	uint64_t w[5] = {t->t0, t->t1, t->off, t->len, t->a};
	uint64_t at = (uint64_t)t->seq * 40;
	if (at < s->len)
		memcpy(s->text + at, w, s->len - at < 40 ? s->len - at : 40);
}

/* Gloo's slot prefixes (gloo/types.h). */
static const char *op_name(uint64_t slot, int recv)
{
	static const char *const names[] = {NULL, "gather", "all_gather", "reduce", "all_reduce",
					    "scatter", "broadcast", "barrier", "all_to_all"};
	unsigned p = (unsigned)(slot >> 56);
	if (p == 0)
		return recv ? "recv" : "send";
	return p < UNI_ARRAY_LEN(names) ? names[p] : "?";
}

static void chrome_sep(struct chrome *c)
{
	fputs(c->first ? "\n" : ",\n", stdout);
	c->first = 0;
}

static void chrome_ts(const char *key, uint64_t ns)
{
	printf(",\"%s\":%" PRIu64 ".%03u", key, ns / 1000, (unsigned)(ns % 1000));
}

static void chrome_meta(struct chrome *c, const char *what, int32_t pid, int64_t tid, const char *fmt, ...)
	UNI_PRINTF(5, 6);
static void chrome_meta(struct chrome *c, const char *what, int32_t pid, int64_t tid, const char *fmt, ...)
{
	char name[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	chrome_sep(c);
	printf("{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%" PRId32 ",\"tid\":%" PRId64 ",\"args\":{\"name\":", what, pid,
	       tid);
	unitrace_json_str(name);
	fputs("}}", stdout);
}

static void chrome_thread(struct chrome *c, int32_t rank, int32_t tid, int dispatcher)
{
	uint64_t key = (uint64_t)(uint32_t)rank << 32 | (uint32_t)tid;
	for (size_t i = 0; i < c->nseen; i++)
		if (c->seen[i] == key)
			return;
	if (c->nseen == c->capseen) {
		c->capseen = c->capseen ? 2 * c->capseen : 64;
		c->seen = xrealloc(c->seen, c->capseen, sizeof(*c->seen));
	}
	c->seen[c->nseen++] = key;
	chrome_meta(c, "thread_name", rank, tid, "%s %d", dispatcher ? "Gloo loop" : "thread", tid);
}

static void chrome_link(struct chrome *c, int32_t rank, int32_t peer)
{
	if (rank < 0 || rank >= 256 || peer < 0 || peer >= 256)
		return;
	uint32_t bit = (uint32_t)rank * 256 + (uint32_t)peer;
	if (c->links[bit / 64] >> (bit % 64) & 1)
		return;
	c->links[bit / 64] |= 1ull << (bit % 64);
	chrome_meta(c, "thread_name", rank, (int64_t)CHROME_LINK_TID + peer, "link to rank %d", peer);
}

static void chrome_slice(struct chrome *c, const char *cat, int32_t pid, int64_t tid, uint64_t t0, uint64_t t1,
			 const struct uni_trec *t, const char *name)
{
	chrome_sep(c);
	printf("{\"ph\":\"X\",\"cat\":\"%s\",\"name\":\"%s\",\"pid\":%" PRId32 ",\"tid\":%" PRId64, cat, name, pid, tid);
	chrome_ts("ts", t0);
	chrome_ts("dur", t1 > t0 ? t1 - t0 : 0);
	printf(",\"args\":{\"bytes\":%" PRIu64 ",\"peer\":%" PRId32 ",\"conn\":%" PRIu32 ",\"offset\":%" PRIu64
	       ",\"t0_ns\":%" PRIu64 ",\"t1_ns\":%" PRIu64 ",\"a_ns\":%" PRIu64 ",\"flags\":%u}}",
	       t->len, t->peer, t->conn, t->off, t->t0, t->t1, t->a, t->flags);
}

static void chrome_flow(struct chrome *c, char ph, uint32_t conn, uint64_t end, int32_t pid, int64_t tid, uint64_t ts)
{
	chrome_sep(c);
	printf("{\"ph\":\"%c\",\"cat\":\"message\",\"name\":\"message\",\"id\":\"c%" PRIu32 "e%" PRIu64
	       "\",\"pid\":%" PRId32 ",\"tid\":%" PRId64,
	       ph, conn, end, pid, tid);
	chrome_ts("ts", ts);
	fputs(ph == 'f' ? ",\"bp\":\"e\"}" : "}", stdout);
}

/* Pass 1: which conn is which one's other end, and where sends and reads
 * end: an arrow joins a send and the read that ends at its last byte. */
static void chrome_scan(struct chrome *c, const struct uni_trec *t)
{
	if (t->kind == UNI_TR_CONN && t->conn < 1u << 20) {
		if (t->conn >= c->npeer) {
			size_t n = c->npeer ? c->npeer : 64;
			while (n <= t->conn)
				n *= 2;
			c->peer_conn = xrealloc(c->peer_conn, n, sizeof(*c->peer_conn));
			memset(c->peer_conn + c->npeer, 0, (n - c->npeer) * sizeof(*c->peer_conn));
			c->npeer = n;
		}
		c->peer_conn[t->conn] = (uint32_t)t->a + 1;
	} else if (t->kind == UNI_TR_SEND) {
		endset_add(&c->ends, end_key(t->conn, t->off + t->len), 1);
	} else if (t->kind == UNI_TR_STRING) {
		cstr_add(c, t);
	}
}

/* The reads, once every conn is known (a conn record may follow reads). */
static void chrome_scan_reads(struct chrome *c, const struct uni_trec *t)
{
	if (t->kind == UNI_TR_RECV && t->conn < c->npeer && c->peer_conn[t->conn])
		endset_add(&c->ends, end_key(c->peer_conn[t->conn] - 1, t->off + t->len), 2);
}

static void chrome_rec(struct chrome *c, const struct uni_trec *t)
{
	char name[96];
	int sim = c->mode == UNI_MODE_SIMULATE;
	switch (t->kind) {
	case UNI_TR_RANK_ATTACH:
		chrome_meta(c, "process_name", t->rank, 0, "rank %d (pid %" PRIu64 ")", t->rank, t->a);
		chrome_sep(c);
		printf("{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":%" PRId32
		       ",\"tid\":0,\"args\":{\"sort_index\":%" PRId32 "}}",
		       t->rank, t->rank);
		break;
	case UNI_TR_CONN:
		break;
	case UNI_TR_SEND: {
		int notify = (t->flags & UNI_TRF_NOTIFY) != 0;
		chrome_thread(c, t->rank, t->tid, (t->flags & UNI_TRF_DISPATCHER) != 0);
		snprintf(name, sizeof(name), "%s %" PRIu64 " B to rank %d", notify ? "notice" : "send", t->len, t->peer);
		if (sim) {
			/* The writer hands the bytes over at its clock (t0); they
			 * are on the wire from a until the last arrives (t1). */
			chrome_slice(c, "send", t->rank, t->tid, t->t0, t->t0, t, name);
			chrome_link(c, t->rank, t->peer);
			chrome_slice(c, "wire", t->rank, (int64_t)CHROME_LINK_TID + t->peer, t->a, t->t1, t, name);
		} else {
			chrome_slice(c, "send", t->rank, t->tid, t->t0, t->t1, t, name);
		}
		if (endset_both(&c->ends, end_key(t->conn, t->off + t->len)))
			chrome_flow(c, 's', t->conn, t->off + t->len, t->rank, t->tid, t->t0);
		break;
	}
	case UNI_TR_RECV:
		chrome_thread(c, t->rank, t->tid, (t->flags & UNI_TRF_DISPATCHER) != 0);
	{
		/* A dispatcher (Gloo's loop) has no clock of its own between
		 * events: its read happens at the arrival. Any other reader
		 * waits from t0 to t1. The arrow ends where the slice starts. */
		uint64_t from = sim && (t->flags & UNI_TRF_DISPATCHER) ? t->t1 : t->t0;
		snprintf(name, sizeof(name), "recv %" PRIu64 " B from rank %d", t->len, t->peer);
		chrome_slice(c, "recv", t->rank, t->tid, from, t->t1, t, name);
		if (t->conn < c->npeer && c->peer_conn[t->conn] &&
		    endset_both(&c->ends, end_key(c->peer_conn[t->conn] - 1, t->off + t->len)))
			chrome_flow(c, 'f', c->peer_conn[t->conn] - 1, t->off + t->len, t->rank, t->tid, from);
	}
		break;
	case UNI_TR_IDLE:
	case UNI_TR_COMPUTE: {
		int compute = t->kind == UNI_TR_COMPUTE;
		/* Since 1.3 every stretch is recorded (the event graph): slices
		 * shorter than 100 us would drown the timeline. */
		if (compute && t->t1 - t->t0 < UNI_COMPUTE_MIN_NS)
			break;
		chrome_thread(c, t->rank, t->tid, 0);
		chrome_sep(c);
		printf("{\"ph\":\"X\",\"cat\":\"%s\",\"name\":\"%s\",\"pid\":%" PRId32 ",\"tid\":%" PRId32,
		       compute ? "compute" : "idle", compute ? "compute" : "sleep", t->rank, t->tid);
		chrome_ts("ts", t->t0);
		chrome_ts("dur", t->t1 > t->t0 ? t->t1 - t->t0 : 0);
		if (compute)
			printf(",\"args\":{\"cpu_ns\":%" PRIu64 "}", t->off);
		fputs("}", stdout);
		break;
	}
	case UNI_TR_OP: {
		/* Where the program began a Gloo operation, with its call stack. */
		chrome_thread(c, t->rank, t->tid, 0);
		chrome_sep(c);
		printf("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"op\",\"name\":\"gloo %s\",\"pid\":%" PRId32
		       ",\"tid\":%" PRId32, op_name(t->a, t->flags & 1), t->rank, t->tid);
		chrome_ts("ts", t->t0);
		printf(",\"args\":{\"slot\":\"0x%" PRIx64 "\"", t->a);
		struct cstr *s = t->off ? cstr_get(c, t->rank, (uint32_t)t->off, 0) : NULL;
		if (s) {
			fputs(",\"stack\":", stdout);
			unitrace_json_str(s->text);
		}
		fputs("}}", stdout);
		break;
	}
	case UNI_TR_NCCL_OP:
		/* An operation of the simulated NCCL: call to completion. */
		if ((t->flags & 15) < 1 || (t->flags & 15) > 10 || t->t1 < t->t0)
			break;
		chrome_thread(c, t->rank, t->tid, 0);
		chrome_sep(c);
		printf("{\"ph\":\"X\",\"cat\":\"nccl\",\"name\":\"nccl %s\",\"pid\":%" PRId32 ",\"tid\":%" PRId32,
		       unitrace_nccl_op(t->flags), t->rank, t->tid);
		chrome_ts("ts", t->t0);
		chrome_ts("dur", t->t1 - t->t0);
		printf(",\"args\":{\"bytes\":%" PRIu64 ",\"type\":\"%s\",\"algorithm\":\"%s\",\"grouped\":%s,"
		       "\"comm\":\"%016" PRIx64 "\",\"comm_rank\":%u,\"nranks\":%u}}",
		       t->len, unitrace_nccl_type(t->flags),
		       unitrace_nccl_algo(t->flags),
		       (t->flags & UNI_NCCL_OPF_GROUP) ? "true" : "false", t->a, t->conn & 0xffff, t->conn >> 16);
		break;
	case UNI_TR_THREAD_END:
		chrome_sep(c);
		printf("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"thread\",\"name\":\"thread end\",\"pid\":%" PRId32
		       ",\"tid\":%" PRId32,
		       t->rank, t->tid);
		chrome_ts("ts", t->t0);
		printf(",\"args\":{\"compute_ns\":%" PRIu64 ",\"waiting_ns\":%" PRIu64 "}}", t->off, t->len);
		break;
	case UNI_TR_RANK_EXIT:
		chrome_sep(c);
		printf("{\"ph\":\"i\",\"s\":\"p\",\"cat\":\"rank\",\"name\":\"%s\",\"pid\":%" PRId32 ",\"tid\":0",
		       (t->flags & UNI_TRF_DIED) ? "rank died" : "rank exit", t->rank);
		chrome_ts("ts", t->t0);
		fputs("}", stdout);
		break;
	case UNI_TR_DEADLOCK:
		chrome_sep(c);
		printf("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"deadlock\",\"name\":\"deadlock\",\"pid\":%" PRId32
		       ",\"tid\":%" PRId32,
		       t->rank, t->tid);
		chrome_ts("ts", t->t0);
		printf(",\"args\":{\"waits_for_rank\":%" PRId32 ",\"wait_kind\":%" PRIu64 ",\"object\":%" PRIu64
		       ",\"real_wait_ns\":%" PRIu64 "}}",
		       t->peer, t->off, t->a, t->len);
		break;
	}
}

#define MERGE_TID_BASE INT64_C(1000000000) /* the profiler's threads, beside the OS tids */

static void merge_event(struct unitrace_merge_sink *s, const char *ph, const char *name, int64_t tid, uint64_t t,
			uint64_t dur, const char *args)
{
	struct chrome *c = s->ctx;
	if (tid >= 0 && tid < 64 && !(c->merge_named & (1ull << tid))) {
		c->merge_named |= 1ull << tid;
		chrome_meta(c, "thread_name", s->rank, MERGE_TID_BASE + tid, "torch profiler, thread %" PRId64, tid);
	}
	chrome_sep(c);
	fputs("{\"ph\":", stdout);
	unitrace_json_str(ph[0] == 'B' || ph[0] == 'E' || ph[0] == 'i' ? ph : "X");
	fputs(",\"cat\":\"torch\",\"name\":", stdout);
	unitrace_json_str(name);
	printf(",\"pid\":%" PRId32 ",\"tid\":%" PRId64, s->rank, MERGE_TID_BASE + tid);
	chrome_ts("ts", t);
	if (ph[0] == 'X' || !ph[0])
		chrome_ts("dur", dur);
	if (args)
		printf(",\"args\":%s", args);
	fputs("}", stdout);
}

static int cmd_export_chrome(const char *path, const char *out, const char *merge, int32_t merge_rank)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	struct chrome c;
	int rc;

	memset(&c, 0, sizeof(c));
	/* Passes 1 and 2: connections and where transfers end. */
	for (int pass = 0; pass < 2; pass++) {
		if (uni_trace_open(&r, path) < 0) {
			free(c.peer_conn);
			free(c.ends.key);
			free(c.ends.bits);
			return trace_fail(&r);
		}
		while ((rc = uni_trace_next(&r, &t)) == 1)
			pass ? chrome_scan_reads(&c, &t) : chrome_scan(&c, &t);
		uni_trace_close(&r);
		if (rc < 0)
			break;
	}
	if (uni_trace_open(&r, path) < 0)
		return trace_fail(&r);
	if (!freopen(out, "w", stdout)) {
		fprintf(stderr, "unitrace: %s: %s\n", out, strerror(errno));
		uni_trace_close(&r);
		return EXIT_OUTPUT;
	}
	c.first = 1;
	c.mode = r.hdr.mode;
	fputs("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"session\":", stdout);
	unitrace_json_str(r.hdr.session);
	printf(",\"mode\":\"%s\",\"time\":\"%s\",\"format\":\"%u.%u\"},\"traceEvents\":[", unitrace_mode_name(r.hdr.mode),
	       unitrace_time_base(r.hdr.mode), r.hdr.version_major, r.hdr.version_minor);
	while ((rc = uni_trace_next(&r, &t)) == 1)
		chrome_rec(&c, &t);
	int mrc = 0;
	if (merge && rc >= 0) {
		struct unitrace_merge_sink sink = {.event = merge_event, .ctx = &c, .rank = merge_rank};
		mrc = unitrace_merge(merge, merge_rank, path, &sink);
	}
	fputs("\n]}\n", stdout);
	free(c.peer_conn);
	free(c.seen);
	free(c.ends.key);
	free(c.ends.bits);
	for (size_t i = 0; i < c.nstr; i++)
		free(c.str[i].text);
	free(c.str);
	if (rc < 0) {
		rc = trace_fail(&r);
		uni_trace_close(&r);
		return rc;
	}
	if (r.truncated)
		fprintf(stderr, "unitrace: %s: trace ends inside a record after %" PRIu64
				" records: was the daemon killed? Exported what came before.\n",
			path, r.nrec);
	uni_trace_close(&r);
	return mrc;
}

/* main -------------------------------------------------------------------- */

/* plot -------------------------------------------------------------------- */

/* A self-contained SVG timeline: one row per rank, time left to right.
 * Per rank: a grey bar from 0 to its end; each transfer it sends as a blue
 * bar on its row from the moment the bytes start to leave until the last
 * one arrives (data messages; Gloo's 48-byte notices are left out), and a
 * line from there to the receiving row at the arrival. Two passes over the
 * file, nothing held in memory but per-rank ends. */
#define PLOT_W 1200
#define PLOT_LEFT 90
#define PLOT_ROW 44
#define PLOT_TOP 60

struct plot_rank {
	int seen;
	uint64_t end;
};

static int plot_open(struct uni_trace_reader *r, const char *path)
{
	if (uni_trace_open(r, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", r->err);
		return -1;
	}
	return 0;
}

/* x of time ns in a plot of the window w0..w1, sx pixels per ns. */
static double plot_x(uint64_t ns, uint64_t w0, uint64_t w1, double sx)
{
	return PLOT_LEFT + (double)(ns < w0 ? 0 : ns > w1 ? w1 - w0 : ns - w0) * sx;
}

static int cmd_plot(const char *path, const char *out, double from_ms, double to_ms)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	struct plot_rank ranks[1024];
	int nranks = 0, rc;
	uint64_t tmax = 1, ndata = 0;

	memset(ranks, 0, sizeof(ranks));
	/* A transfer's row is its connection's network node. */
	struct unitrace_nodes nodes;
	memset(&nodes, 0, sizeof(nodes));
	if (plot_open(&r, path) < 0)
		return 2;
	/* NCCL operations (trace 1.4): drawn on the row of their rank's
	 * network node (a single process's NCCL ranks are nodes of their
	 * own: nccl_comm says which). */
	struct plot_cnode {
		uint64_t comm;
		uint32_t crank;
		int32_t node;
	} *cnodes = NULL;
	size_t ncnodes = 0;
	uint64_t nnccl = 0;
	while ((rc = uni_trace_next(&r, &t)) == 1) {
		if (t.rank < 0 || t.rank >= 1024)
			continue;
		if (t.kind == UNI_TR_NCCL_COMM && t.peer >= 0 && t.peer < 1024 && ncnodes < 65536) {
			cnodes = xrealloc(cnodes, ncnodes + 1, sizeof(*cnodes));
			cnodes[ncnodes++] = (struct plot_cnode){.comm = t.a, .crank = (uint32_t)t.len, .node = t.peer};
			if (t.peer + 1 > nranks)
				nranks = t.peer + 1;
			continue;
		}
		if (t.kind == UNI_TR_NCCL_OP) {
			nnccl++;
			continue;
		}
		t.rank = unitrace_node_of(&nodes, &t);
		if (t.peer >= 0 && t.peer < 1024 && t.peer + 1 > nranks && t.kind == UNI_TR_SEND)
			nranks = t.peer + 1;
		uint64_t hi = 0;
		if (t.kind == UNI_TR_SEND || t.kind == UNI_TR_RECV)
			hi = t.t1 > t.t0 ? t.t1 : t.t0;
		else if (t.kind == UNI_TR_RANK_EXIT || t.kind == UNI_TR_RANK_ATTACH)
			hi = t.t0;
		else
			continue;
		ranks[t.rank].seen = 1;
		if (t.kind == UNI_TR_SEND && t.len > 48) {
			/* Counted where the window will show it. */
			uint64_t a = r.hdr.mode == UNI_MODE_SIMULATE ? t.a : t.t0;
			if (!(from_ms > 0 && hi < (uint64_t)llround(from_ms * 1e6)) &&
			    !(to_ms > 0 && a > (uint64_t)llround(to_ms * 1e6)))
				ndata++;
		}
		if (t.kind == UNI_TR_RANK_EXIT)
			ranks[t.rank].end = t.t0;
		if (t.rank + 1 > nranks)
			nranks = t.rank + 1;
		if (hi > tmax)
			tmax = hi;
	}
	struct uni_trace_hdr hdr = r.hdr;
	uni_trace_close(&r);
	if (rc < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		free(nodes.conn_rank);
		free(cnodes);
		return 2;
	}
	FILE *f = out ? fopen(out, "w") : stdout;
	if (!f) {
		fprintf(stderr, "unitrace: %s: %s\n", out, strerror(errno));
		free(nodes.conn_rank);
		free(cnodes);
		return 1;
	}
	/* The window drawn: the whole run, or --from/--to. */
	uint64_t w0 = from_ms > 0 ? (uint64_t)llround(from_ms * 1e6) : 0;
	uint64_t w1 = to_ms > 0 ? (uint64_t)llround(to_ms * 1e6) : tmax;
	if (w0 >= w1) {
		fprintf(stderr, "unitrace: plot: the window %.3f .. %.3f ms is empty (the trace ends at %.3f ms)\n",
			(double)w0 / 1e6, (double)w1 / 1e6, (double)tmax / 1e6);
		free(nodes.conn_rank);
		free(cnodes);
		if (out)
			fclose(f);
		return EXIT_USAGE;
	}
	int height = PLOT_TOP + nranks * PLOT_ROW + 50;
	double sx = (double)(PLOT_W - PLOT_LEFT - 20) / (double)(w1 - w0);
	/* Clamped to the window: what begins before it or ends after it is
	 * drawn to its edge. */
#define X(ns) plot_x((uint64_t)(ns), w0, w1, sx)
#define Y(rk) (PLOT_TOP + (rk) * PLOT_ROW)
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "font-family=\"sans-serif\" font-size=\"12\">\n", PLOT_W, height);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">session ", PLOT_LEFT);
	for (const char *p = hdr.session; *p && p < hdr.session + sizeof(hdr.session); p++)
		fputc(*p == '<' || *p == '&' ? '_' : *p, f);
	fprintf(f, ", %s mode: %s time, makespan %.3f ms", unitrace_mode_name(hdr.mode), unitrace_time_base(hdr.mode),
		(double)tmax / 1e6);
	if (w0 || w1 != tmax)
		fprintf(f, "; %.3f to %.3f ms shown", (double)w0 / 1e6, (double)w1 / 1e6);
	fprintf(f, "</text>\n");
	fprintf(f, "<text x=\"%d\" y=\"40\" fill=\"#555\">grey: rank alive; blue: a message leaving "
		   "its sender until its last byte arrives%s%s%s</text>\n",
		PLOT_LEFT, hdr.mode == UNI_MODE_SIMULATE && ndata <= 400 ? "; line: to the receiver, at the arrival"
									 : "",
		hdr.mode == UNI_MODE_SIMULATE ? "; green: compute" : "", nnccl ? "; orange: NCCL operations" : "");
	/* Axis: 10 ticks. */
	int ybase = PLOT_TOP + nranks * PLOT_ROW;
	for (int i = 0; i <= 10; i++) {
		uint64_t tt = w0 + (w1 - w0) / 10 * (uint64_t)i;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
			   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.*f ms</text>\n",
			X(tt), PLOT_TOP - 6, X(tt), ybase, X(tt), ybase + 16, w1 - w0 < 100000000 ? 1 : 0,
			(double)tt / 1e6);
	}
	for (int i = 0; i < nranks; i++) {
		if (!ranks[i].seen)
			continue;
		uint64_t end = ranks[i].end ? ranks[i].end : tmax;
		fprintf(f, "<text x=\"8\" y=\"%d\">rank %d</text>\n", Y(i) + PLOT_ROW / 2 + 4, i);
		fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#e8e8e8\"/>\n",
			X(0), Y(i) + 8, X(end) - X(0), PLOT_ROW - 16);
	}
	if (plot_open(&r, path) < 0) {
		free(nodes.conn_rank);
		free(cnodes);
		return 2;
	}
	/* Compute (simulate mode): a green strip along the bottom of the
	 * rank's row, stretches closer than a pixel merged. */
	uint64_t px_ns = (uint64_t)(1.0 / sx) + 1;
	/* Only what meets the window is drawn. */
#define OUTSIDE(a, b) ((b) < w0 || (a) > w1)
	uint64_t *cs = calloc((size_t)nranks + 1, sizeof(uint64_t)), *ce = calloc((size_t)nranks + 1, sizeof(uint64_t));
	double *nx = calloc((size_t)nranks + 1, sizeof(double));
	if (!cs || !ce || !nx) {
		fprintf(stderr, "unitrace: out of memory\n");
		exit(EXIT_OUTPUT);
	}
#define FLUSH(rk)                                                                                               \
	do {                                                                                                    \
		if (ce[rk] > cs[rk])                                                                            \
			fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"6\" fill=\"#2ca25f\"/>\n",  \
				X(cs[rk]), Y(rk) + PLOT_ROW - 14, X(ce[rk]) - X(cs[rk]) < 0.6 ? 0.6 : X(ce[rk]) - X(cs[rk])); \
	} while (0)
	while (uni_trace_next(&r, &t) == 1) {
		if (t.kind == UNI_TR_COMPUTE && t.rank >= 0 && t.rank < nranks && t.t1 > t.t0) {
			int rk = t.rank;
			if (OUTSIDE(t.t0, t.t1))
				continue;
			if (ce[rk] > cs[rk] && t.t0 <= ce[rk] + px_ns && t.t1 + px_ns >= cs[rk]) {
				if (t.t1 > ce[rk])
					ce[rk] = t.t1;
				if (t.t0 < cs[rk])
					cs[rk] = t.t0;
			} else {
				FLUSH(rk);
				cs[rk] = t.t0;
				ce[rk] = t.t1;
			}
			continue;
		}
		if (t.kind == UNI_TR_NCCL_OP && t.rank >= 0 && t.t1 >= t.t0 && (t.flags & 15) >= 1 &&
		    (t.flags & 15) <= 10) {
			int rk = t.rank;
			for (size_t i = 0; i < ncnodes; i++)
				if (cnodes[i].comm == t.a && cnodes[i].crank == (t.conn & 0xffff)) {
					rk = cnodes[i].node;
					break;
				}
			if (rk >= nranks || OUTSIDE(t.t0, t.t1))
				continue;
			/* A strip along the top of the row; a label where it is wide.
			 * One within a pixel of the last drawn is covered by it. */
			if (X(t.t1) <= nx[rk] + 0.6)
				continue;
			if (X(t.t1) > nx[rk])
				nx[rk] = X(t.t1);
			double w = X(t.t1) - X(t.t0);
			fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"4\" fill=\"#e67e22\">"
				   "<title>rank %d: nccl %s %llu B %s %s, %.3f .. %.3f ms</title></rect>\n",
				X(t.t0), Y(rk) + 8, w < 0.6 ? 0.6 : w, rk, unitrace_nccl_op(t.flags),
				(unsigned long long)t.len, unitrace_nccl_type(t.flags),
				unitrace_nccl_algo(t.flags), (double)t.t0 / 1e6,
				(double)t.t1 / 1e6);
			if (w >= 70)
				fprintf(f, "<text x=\"%.2f\" y=\"%d\" font-size=\"9\" fill=\"#a04000\">%s</text>\n",
					X(t.t0) + 1, Y(rk) + 6, unitrace_nccl_op(t.flags));
			continue;
		}
		t.rank = unitrace_node_of(&nodes, &t);
		if (t.kind != UNI_TR_SEND || t.len <= 48 || t.rank < 0 || t.rank >= nranks || t.peer < 0 ||
		    t.peer >= nranks)
			continue;
		/* Simulate mode: a = start on the wire, t1 = arrival of the last
		 * byte; record mode: the write call's span. */
		uint64_t a = hdr.mode == UNI_MODE_SIMULATE ? t.a : t.t0, b = t.t1 > a ? t.t1 : a;
		if (OUTSIDE(a, b))
			continue;
		double w = X(b) - X(a);
		fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#3b7dd8\" "
			   "fill-opacity=\"0.55\"><title>rank %d to %d: %llu bytes, %.3f .. %.3f ms</title></rect>\n",
			X(a), Y(t.rank) + 12, w < 0.6 ? 0.6 : w, PLOT_ROW - 24, t.rank, t.peer,
			(unsigned long long)t.len, (double)a / 1e6, (double)b / 1e6);
		/* Lines to the receiver only while they stay readable. */
		if (hdr.mode == UNI_MODE_SIMULATE && ndata <= 400 && b <= w1)
			fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#c0392b\" "
				   "stroke-opacity=\"0.35\"/>\n",
				X(b), Y(t.rank) + PLOT_ROW / 2, X(b), Y(t.peer) + PLOT_ROW / 2);
	}
	uni_trace_close(&r);
	free(nodes.conn_rank);
	free(cnodes);
	for (int i = 0; i < nranks; i++)
		FLUSH(i);
#undef FLUSH
	free(cs);
	free(ce);
	free(nx);
	fprintf(f, "</svg>\n");
#undef OUTSIDE
#undef X
#undef Y
	if (out && fclose(f) != 0) {
		fprintf(stderr, "unitrace: %s: %s\n", out, strerror(errno));
		return 1;
	}
	return 0;
}

static void help(void)
{
	printf("%s\n"
	       "       unitrace --help | --version\n"
	       "\n"
	       "Reads a uniference trace file (docs/trace-format.md).\n"
	       "\n"
	       "  summary   per rank: pid, how it ended, threads, time span,\n"
	       "            transfers and bytes in total and per peer; simulate mode:\n"
	       "            compute, communication, idle, the makespan; the longest\n"
	       "            transfers; session totals; whether every byte sent was received\n"
	       "  dump      every record, one per line\n"
	       "  --json    summary: one JSON object; dump: one object per line\n"
	       "  export    --chrome OUT.json: Chrome trace-event JSON for ui.perfetto.dev\n"
	       "            and chrome://tracing (a process per rank, a track per thread\n"
	       "            and per link, arrows from each send to the read it completes)\n"
	       "            --merge TORCH.json: fold a PyTorch profiler trace of rank R\n"
	       "            (--merge-rank, default 0) into it, aligned on its Gloo spans\n"
	       "            --sqlite OUT.db: an SQLite database, one table per record kind\n"
	       "  critical-path  the chain of local work and transfers that sets the\n"
	       "            makespan, each step with its share (--json)\n"
	       "  compare   REAL SIM: the same program's record-mode and simulate-mode\n"
	       "            traces, message by message: latency and completion errors,\n"
	       "            MAPE, R^2, total error (--json: every message)\n"
	       "  diff      A B: two simulate-mode traces of one program, thread by\n"
	       "            thread (trace 1.5's thread keys): each rank's end in both,\n"
	       "            where each thread's runs part and where their times differ;\n"
	       "            exit status 0 the same, 1 they differ (--json)\n"
	       "  plot      a self-contained SVG timeline (ranks as rows, transfers as\n"
	       "            bars and lines, compute in green) to stdout, or to OUT with -o OUT;\n"
	       "            --from MS, --to MS: only that window of the run (ms of its time)\n"
	       "  replay    re-times a simulate-mode trace's event graph under another\n"
	       "            configuration (--config; default: the run's own, which the trace\n"
	       "            names, while that file is there, else the built-in defaults) without\n"
	       "            running the program: per rank end, compute, communication,\n"
	       "            idle, the makespan; --sweep KEY=V1,V2,... one line per value\n"
	       "            (network.default.bandwidth, network.default.latency,\n"
	       "            network.send_buffer, network.model, devices.default.slowdown);\n"
	       "            -o OUT.unitrace also writes the re-timed trace (the same records\n"
	       "            with the replayed times) for summary, plot, export\n"
	       "  links     per link of the simulated network (a rank's uplink and\n"
	       "            downlink, the links between switches; under alpha-beta each\n"
	       "            pair): bytes, busy time, rate while busy against capacity,\n"
	       "            most loaded first (--top N: the first N); the configuration is\n"
	       "            the one the trace names, or --config; summary shows the top 3\n"
	       "\n"
	       "Exit status: 0 ok (a truncated trace too), 1 out of memory or\n"
	       "output error, 2 unreadable or corrupt trace, 64 usage error.\n",
	       usage_line);
}

static int usage_error(const char *what, const char *arg)
{
	if (arg)
		fprintf(stderr, "unitrace: %s: %s\n", what, arg);
	else
		fprintf(stderr, "unitrace: %s\n", what);
	fprintf(stderr, "%s\n", usage_line);
	return EXIT_USAGE;
}

static int run(int argc, char **argv)
{
	const char *cmd, *path = NULL;
	int json = 0, opts = 1;

	if (argc < 2)
		return usage_error("no command given", NULL);
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		help();
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("unitrace %s\n", UNI_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "compare") || !strcmp(cmd, "diff")) {
		int d = !strcmp(cmd, "diff");
		const char *files[2] = {NULL, NULL};
		int nf = 0, tjson = 0;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				tjson = 1;
			else if (argv[i][0] == '-' && argv[i][1])
				return usage_error("unknown option", argv[i]);
			else if (nf < 2)
				files[nf++] = argv[i];
			else
				return usage_error(d ? "diff takes two traces" : "compare takes two traces", argv[i]);
		}
		if (nf != 2)
			return usage_error(d ? "diff takes two traces" : "compare takes two traces", d ? "A B" : "REAL SIM");
		return d ? unitrace_diff(files[0], files[1], tjson) : unitrace_compare(files[0], files[1], tjson);
	}
	if (!strcmp(cmd, "links")) {
		const char *file = NULL, *config = NULL;
		int ljson = 0, top = 0;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				ljson = 1;
			else if (!strcmp(argv[i], "--config") && i + 1 < argc)
				config = argv[++i];
			else if (!strcmp(argv[i], "--top") && i + 1 < argc) {
				char *end;
				long v = strtol(argv[++i], &end, 10);
				if (*end || v < 1 || v > 1000000)
					return usage_error("--top wants a number of links", argv[i]);
				top = (int)v;
			}
			else if (argv[i][0] == '-' && argv[i][1])
				return usage_error("unknown option", argv[i]);
			else if (!file)
				file = argv[i];
			else
				return usage_error("links takes one trace", argv[i]);
		}
		if (!file)
			return usage_error("no trace file given", NULL);
		return unitrace_links(file, config, ljson, top, 0);
	}
	if (!strcmp(cmd, "replay")) {
		const char *file = NULL, *config = NULL, *sweep = NULL, *rout = NULL;
		int rjson = 0;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				rjson = 1;
			else if (!strcmp(argv[i], "--config") && i + 1 < argc)
				config = argv[++i];
			else if (!strcmp(argv[i], "--sweep") && i + 1 < argc)
				sweep = argv[++i];
			else if (!strcmp(argv[i], "-o") && i + 1 < argc)
				rout = argv[++i];
			else if (argv[i][0] == '-' && argv[i][1])
				return usage_error("unknown option", argv[i]);
			else if (!file)
				file = argv[i];
			else
				return usage_error("replay takes one trace", argv[i]);
		}
		if (!file)
			return usage_error("no trace file given", NULL);
		if (sweep && rout)
			return usage_error("-o writes one replay; not with --sweep", rout);
		return unitrace_replay(file, config, sweep, rout, rjson);
	}
	if (strcmp(cmd, "summary") && strcmp(cmd, "dump") && strcmp(cmd, "plot") && strcmp(cmd, "export") &&
	    strcmp(cmd, "critical-path"))
		return usage_error("unknown command", cmd);
	const char *out = NULL, *chrome = NULL, *sqlite = NULL, *merge = NULL;
	int32_t merge_rank = 0;
	double from_ms = 0, to_ms = 0;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (opts && !strcmp(a, "--")) {
			opts = 0;
		} else if (opts && !strcmp(a, "--json")) {
			json = 1;
		} else if (opts && !strcmp(a, "-o") && i + 1 < argc) {
			out = argv[++i];
		} else if (opts && !strcmp(a, "--chrome") && i + 1 < argc) {
			chrome = argv[++i];
		} else if (opts && !strcmp(a, "--sqlite") && i + 1 < argc) {
			sqlite = argv[++i];
		} else if (opts && !strcmp(a, "--merge") && i + 1 < argc) {
			merge = argv[++i];
		} else if (opts && (!strcmp(a, "--from") || !strcmp(a, "--to")) && i + 1 < argc) {
			char *end;
			double v = strtod(argv[++i], &end);
			if (end == argv[i] || *end || !(v >= 0) || !isfinite(v))
				return usage_error("--from and --to want a time in ms, e.g. 1500 or 1523.5", argv[i]);
			if (a[2] == 'f')
				from_ms = v;
			else
				to_ms = v;
		} else if (opts && !strcmp(a, "--merge-rank") && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 0 || v >= 1 << 20)
				return usage_error("--merge-rank wants a rank number", argv[i]);
			merge_rank = (int32_t)v;
		} else if (opts && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
			help();
			return 0;
		} else if (opts && a[0] == '-' && a[1]) {
			return usage_error("unknown option", a);
		} else if (path) {
			return usage_error("more than one file", a);
		} else {
			path = a;
		}
	}
	if (!path)
		return usage_error("no trace file given", NULL);
	if ((from_ms > 0 || to_ms > 0) && strcmp(cmd, "plot"))
		return usage_error("--from and --to choose the window of a plot", cmd);
	if (!strcmp(cmd, "plot"))
		return cmd_plot(path, out, from_ms, to_ms);
	if (!strcmp(cmd, "critical-path"))
		return unitrace_critical_path(path, json);
	if (!strcmp(cmd, "export")) {
		if (!chrome && !sqlite)
			return usage_error("export needs a format", "--chrome OUT.json or --sqlite OUT.db");
		if (chrome && sqlite)
			return usage_error("one format per export", "--chrome or --sqlite");
		if (merge && !chrome)
			return usage_error("--merge folds a profiler trace into the Chrome export", "--chrome OUT.json");
		return chrome ? cmd_export_chrome(path, chrome, merge, merge_rank) : unitrace_export_sqlite(path, sqlite);
	}
	return !strcmp(cmd, "summary") ? cmd_summary(path, json)
				       : cmd_dump(path, json);
}

int main(int argc, char **argv)
{
	int rc = run(argc, argv);

	/* A full disk or closed pipe must not look like success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "unitrace: error writing output: %s\n",
			strerror(errno));
		return rc ? rc : EXIT_OUTPUT;
	}
	return rc;
}
