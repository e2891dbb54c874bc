/* The canonical form of a simulate-mode trace (--compute-from): what the
 * host decides is taken out, the records put in an order of their own, so
 * that two runs with the same event graph and the same compute give the
 * same file byte for byte (docs/simulate.md "Compute from a trace").
 *
 *   - threads are numbered per rank in the order of their keys (tid
 *     (rank + 1) << 16 | k, k from 1), everywhere a tid appears (tid, a
 *     thread record's a, the source ids of take and dep records);
 *   - connections are numbered in the order of their first send or
 *     receive (rank, thread, event), ports left out;
 *   - a rank's pid becomes its main thread's new number (the thread whose
 *     tid was the pid);
 *   - unid's pid, real times (attach, session end, a deadlock's real wait), the
 *     epochs, objects' addresses in signal records and NCCL
 *     communicators' random keys (numbered in order of first use) are
 *     taken out;
 *   - records go in order: session start, per rank its attach, its
 *     connections, its threads' records by thread and event, its
 *     connection ends and its exit; then the session's closing records.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uni/trace.h"
#include "uni/trace_write.h"

struct tmap {
	int32_t rank, tid;
	uint64_t key;
	uint32_t order; /* its thread record's place in the file */
	int32_t ctid;
};

struct cmap {
	uint32_t id;
	int32_t rank, ctid;
	uint32_t seq, found;
	uint32_t cid;
};

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int cmp_thread(const void *a, const void *b)
{
	const struct tmap *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_tid(const void *a, const void *b)
{
	const struct tmap *x = a, *y = b;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_conn_first(const void *a, const void *b)
{
	const struct cmap *x = a, *y = b;
	if (x->found != y->found)
		return x->found ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->ctid != y->ctid)
		return x->ctid < y->ctid ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_conn_id(const void *a, const void *b)
{
	const struct cmap *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static struct tmap *g_bytid; /* for the lookups below (sorted by tid) */
static size_t g_nt;

/* The new number of thread tid of rank (a tid the host gave threads of
 * two ranks, one after the other: the rank's own; else the first). */
static int32_t ctid_of(int32_t rank, int32_t tid)
{
	size_t lo = 0, hi = g_nt;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g_bytid[mid].tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == g_nt || g_bytid[lo].tid != tid)
		return 0;
	for (size_t i = lo; i < g_nt && g_bytid[i].tid == tid; i++)
		if (g_bytid[i].rank == rank)
			return g_bytid[i].ctid;
	return g_bytid[lo].ctid;
}

static struct cmap *g_conns;
static size_t g_nc;

/* The connection with unid's id (g_conns sorted by id), or NULL. */
static struct cmap *conn_of(uint32_t id)
{
	size_t lo = 0, hi = g_nc;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g_conns[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < g_nc && g_conns[lo].id == id ? &g_conns[lo] : NULL;
}

static uint32_t cid_of(uint32_t id)
{
	const struct cmap *c = conn_of(id);
	return c ? c->cid : id;
}

/* An event id (tid << 32 | seq) with its tid renumbered. */
static uint64_t event_id(int32_t rank, uint64_t id)
{
	int32_t c = ctid_of(rank, (int32_t)(id >> 32));
	return ((uint64_t)(uint32_t)c << 32) | (id & 0xffffffffull);
}

/* Where a record goes: session start, then per rank: attach, connections,
 * threads by thread and event, connection ends, exit; then the rest. */
static uint32_t place(const struct uni_trec *r)
{
	switch (r->kind) {
	case UNI_TR_SESSION_START: return 0;
	case UNI_TR_RANK_ATTACH: return 1;
	case UNI_TR_CONN: return 2;
	case UNI_TR_CONN_CLOSE: return 4;
	case UNI_TR_RANK_EXIT: return 5;
	case UNI_TR_COMPUTE_FROM: return 7;
	case UNI_TR_SESSION_END: return 8;
	default: return r->rank < 0 ? 6 : 3;
	}
}

static int cmp_rec(const void *a, const void *b)
{
	const struct uni_trec *x = a, *y = b;
	uint32_t px = place(x), py = place(y);
	int sx = px == 0 || px >= 6, sy = py == 0 || py >= 6;
	/* Session-level records around the ranks. */
	if (sx || sy) {
		uint32_t kx = sx ? (px == 0 ? 0 : 2) : 1, ky = sy ? (py == 0 ? 0 : 2) : 1;
		if (kx != ky)
			return kx < ky ? -1 : 1;
	}
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (px != py)
		return px < py ? -1 : 1;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->conn != y->conn)
		return x->conn < y->conn ? -1 : 1;
	return memcmp(x, y, sizeof(*x));
}

int uni_trace_canonicalise(const char *path, char *err, size_t errlen)
{
	int rc = -1, fd = -1;
	struct uni_trec *rec = NULL;
	struct tmap *th = NULL;
	uint64_t *nkeys = NULL;
	size_t nnk = 0;
	char tmp[4200];
	g_bytid = NULL;
	g_conns = NULL;
	g_nt = g_nc = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	struct uni_trace_hdr h;
	if (st.st_size < (off_t)sizeof(h) || read(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    h.hdr_size < sizeof(h) || h.rec_size != sizeof(struct uni_trec)) {
		snprintf(err, errlen, "%s is not a trace this version writes", path);
		goto out;
	}
	size_t n = ((size_t)st.st_size - h.hdr_size) / sizeof(*rec);
	rec = malloc(n ? n * sizeof(*rec) : 1);
	if (!rec) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (pread(fd, rec, n * sizeof(*rec), h.hdr_size) != (ssize_t)(n * sizeof(*rec))) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;

	/* Threads: numbered per rank in the order of their keys. */
	size_t nt = 0;
	for (size_t i = 0; i < n; i++)
		nt += rec[i].kind == UNI_TR_THREAD;
	th = calloc(nt ? nt : 1, sizeof(*th));
	if (!th) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	nt = 0;
	for (size_t i = 0; i < n; i++)
		if (rec[i].kind == UNI_TR_THREAD)
			th[nt++] = (struct tmap){.rank = rec[i].rank, .tid = rec[i].tid, .key = rec[i].off,
						 .order = (uint32_t)i};
	qsort(th, nt, sizeof(*th), cmp_thread);
	for (size_t i = 0, k = 0; i < nt; i++) {
		k = i && th[i - 1].rank == th[i].rank ? k + 1 : 1;
		th[i].ctid = (int32_t)(((uint32_t)(th[i].rank + 1) << 16) | (uint32_t)(k & 0xffff));
	}
	qsort(th, nt, sizeof(*th), cmp_tid);
	g_bytid = th;
	g_nt = nt;

	/* Connections: in the order of their first transfer. */
	size_t nc = 0;
	for (size_t i = 0; i < n; i++)
		nc += rec[i].kind == UNI_TR_CONN;
	g_conns = calloc(nc ? nc : 1, sizeof(*g_conns));
	if (!g_conns) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (rec[i].kind == UNI_TR_CONN)
			g_conns[g_nc++] = (struct cmap){.id = rec[i].conn, .rank = rec[i].rank};
	qsort(g_conns, g_nc, sizeof(*g_conns), cmp_conn_id);
	for (size_t i = 0; i < n; i++) {
		const struct uni_trec *r = &rec[i];
		if (r->kind != UNI_TR_SEND && r->kind != UNI_TR_RECV && r->kind != UNI_TR_SENT)
			continue;
		struct cmap *c = conn_of(r->conn);
		if (!c)
			continue;
		int32_t ct = ctid_of(r->rank, r->tid);
		if (!c->found || ct < c->ctid || (ct == c->ctid && r->seq < c->seq)) {
			c->found = 1;
			c->ctid = ct;
			c->seq = r->seq;
		}
	}
	qsort(g_conns, g_nc, sizeof(*g_conns), cmp_conn_first);
	for (size_t i = 0; i < g_nc; i++)
		g_conns[i].cid = (uint32_t)i;
	qsort(g_conns, g_nc, sizeof(*g_conns), cmp_conn_id);

	/* The records, renumbered and without what the host decided. */
	for (size_t i = 0; i < n; i++) {
		struct uni_trec *r = &rec[i];
		if (r->tid > 0)
			r->tid = ctid_of(r->rank, r->tid);
		switch (r->kind) {
		case UNI_TR_SESSION_START:
			r->a = 0;
			break;
		case UNI_TR_RANK_ATTACH:
			/* The pid: its main thread's new number (tools find the
			 * main thread as the one whose tid is the pid). */
			r->a = (uint64_t)(uint32_t)ctid_of(r->rank, (int32_t)r->a);
			r->t0 = r->t1 = 0;
			break;
		case UNI_TR_RANK_EXIT:
			r->a = (uint64_t)(uint32_t)ctid_of(r->rank, (int32_t)r->a);
			break;
		case UNI_TR_THREAD:
			r->a = (uint64_t)(uint32_t)r->tid;
			break;
		case UNI_TR_CONN:
			r->conn = cid_of(r->conn);
			r->a = cid_of((uint32_t)r->a);
			r->off = r->len = 0;
			break;
		case UNI_TR_SEND:
		case UNI_TR_RECV:
		case UNI_TR_SENT:
		case UNI_TR_CONN_CLOSE:
			r->conn = cid_of(r->conn);
			break;
		case UNI_TR_SESSION_END:
			r->t0 = r->t1 = 0;
			break;
		case UNI_TR_DEADLOCK:
			r->len = 0;
			if (r->off == 2 || r->off == UNI_TR_WAIT_ROOM)
				r->a = cid_of((uint32_t)r->a);
			else if (r->off != UNI_TR_WAIT_NCCL) /* (its communicator: below) */
				r->a = 0;
			break;
		case UNI_TR_SIGNAL:
			/* A connection's connecting end keeps its (new) number;
			 * addresses, ports and fds are the host's. */
			r->a = (r->a >> 63) ? (1ull << 63) | cid_of((uint32_t)r->a) : 0;
			break;
		case UNI_TR_TAKE:
		case UNI_TR_DEP:
			r->a = event_id(r->rank, r->a);
			break;
		default: /* (NCCL communicators: numbered after the sort, below) */
			break;
		}
	}
	qsort(rec, n, sizeof(*rec), cmp_rec);
	/* NCCL communicators' keys, numbered in order of first use. */
	for (size_t i = 0; i < n; i++) {
		struct uni_trec *r = &rec[i];
		if (r->kind != UNI_TR_NCCL_OP && r->kind != UNI_TR_NCCL_COMM &&
		    !(r->kind == UNI_TR_DEADLOCK && r->off == UNI_TR_WAIT_NCCL))
			continue;
		size_t k = 0;
		while (k < nnk && nkeys[k] != r->a)
			k++;
		if (k == nnk) {
			uint64_t *nk = realloc(nkeys, (nnk + 1) * sizeof(*nkeys));
			if (!nk) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			nkeys = nk;
			nkeys[nnk++] = r->a;
		}
		r->a = k + 1;
	}
	h.epoch_real_ns = h.epoch_mono_ns = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.canon", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "trace path too long");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	char pad[UNI_TRACE_HDR_SIZE] = {0};
	memcpy(pad, &h, sizeof(h));
	/* (A longer header of a later minor is not ours to write: 256.) */
	struct uni_trace_hdr *ph = (struct uni_trace_hdr *)pad;
	ph->hdr_size = UNI_TRACE_HDR_SIZE;
	if (write_all(fd, pad, sizeof(pad)) != 0 || write_all(fd, rec, n * sizeof(*rec)) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		fd = -1;
		unlink(tmp);
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(rec);
	free(th);
	free(g_conns);
	free(nkeys);
	g_bytid = NULL;
	g_conns = NULL;
	return rc;
}
