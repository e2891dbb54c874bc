/* unitrace export --sqlite: the trace as an SQLite database, one table per
 * record kind (schema in docs/trace-format.md, "Exports"), so that a run
 * can be queried with SQL or pandas. Streamed: records go into the tables
 * as they are read, in one transaction. */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unitrace.h"
#include "uni/shm.h"
#include "uni/trace.h"

static const char schema[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);\n"
	"CREATE TABLE session_start(unid_pid INTEGER);\n"
	"CREATE TABLE rank_attach(rank INTEGER, pid INTEGER, world_size INTEGER, t_ns INTEGER);\n"
	"CREATE TABLE rank_exit(rank INTEGER, pid INTEGER, how TEXT, end_ns INTEGER, compute_ns INTEGER,"
	" waiting_ns INTEGER);\n"
	"CREATE TABLE thread(rank INTEGER, tid INTEGER, t_ns INTEGER, key TEXT);\n"
	"CREATE TABLE conn(conn INTEGER PRIMARY KEY, rank INTEGER, peer INTEGER, peer_conn INTEGER,"
	" local_port INTEGER, peer_port INTEGER);\n"
	"CREATE TABLE send(rank INTEGER, tid INTEGER, peer INTEGER, conn INTEGER, t0_ns INTEGER, t1_ns INTEGER,"
	" offset INTEGER, bytes INTEGER, leave_ns INTEGER, dispatcher INTEGER, fallback INTEGER, notice INTEGER);\n"
	"CREATE TABLE recv(rank INTEGER, tid INTEGER, peer INTEGER, conn INTEGER, t0_ns INTEGER, t1_ns INTEGER,"
	" offset INTEGER, bytes INTEGER, arrival_ns INTEGER, dispatcher INTEGER);\n"
	"CREATE TABLE conn_close(rank INTEGER, peer INTEGER, conn INTEGER, bytes_sent INTEGER,"
	" bytes_received INTEGER, t_ns INTEGER);\n"
	"CREATE TABLE session_end(events INTEGER, dropped INTEGER, unmodelled_conns INTEGER, t_ns INTEGER,"
	" late_transfers INTEGER, late_max_us INTEGER);\n"
	"CREATE TABLE thread_end(rank INTEGER, tid INTEGER, end_ns INTEGER, compute_ns INTEGER,"
	" waiting_ns INTEGER, dispatcher INTEGER);\n"
	"CREATE TABLE deadlock(rank INTEGER, tid INTEGER, waits_for_rank INTEGER, wait_kind INTEGER,"
	" object INTEGER, since_ns INTEGER, real_wait_ns INTEGER);\n"
	"CREATE TABLE compute(rank INTEGER, tid INTEGER, t0_ns INTEGER, t1_ns INTEGER, cpu_ns INTEGER);\n"
	"CREATE TABLE idle(rank INTEGER, tid INTEGER, t0_ns INTEGER, t1_ns INTEGER);\n"
	/* 1.3: the event graph, operations and strings. */
	"CREATE TABLE signal(rank INTEGER, tid INTEGER, seq INTEGER, t_ns INTEGER, object INTEGER);\n"
	"CREATE TABLE take(rank INTEGER, tid INTEGER, seq INTEGER, before_ns INTEGER, taken_ns INTEGER,"
	" source INTEGER, sets INTEGER);\n"
	"CREATE TABLE dep(rank INTEGER, tid INTEGER, seq INTEGER, source INTEGER);\n"
	"CREATE TABLE delay(rank INTEGER, tid INTEGER, seq INTEGER, t_ns INTEGER, delay_ns INTEGER);\n"
	"CREATE TABLE sent(rank INTEGER, tid INTEGER, seq INTEGER, conn INTEGER, message_end INTEGER,"
	" before_ns INTEGER, after_ns INTEGER, completion_ns INTEGER);\n"
	"CREATE TABLE op(rank INTEGER, tid INTEGER, seq INTEGER, t_ns INTEGER, slot INTEGER, kind TEXT,"
	" recv INTEGER, stack INTEGER);\n"
	"CREATE TABLE string(rank INTEGER, id INTEGER, text TEXT, PRIMARY KEY(rank, id));\n"
	/* 1.4: the simulated NCCL. */
	"CREATE TABLE nccl_op(rank INTEGER, tid INTEGER, t0_ns INTEGER, t1_ns INTEGER, op TEXT, type TEXT,"
	" algorithm TEXT, grouped INTEGER, device INTEGER, count INTEGER, bytes INTEGER, root_or_peer INTEGER,"
	" comm TEXT, comm_rank INTEGER, nranks INTEGER);\n"
	"CREATE TABLE nccl_comm(rank INTEGER, tid INTEGER, comm TEXT, nranks INTEGER, comm_rank INTEGER,"
	" node INTEGER);\n";

/* One prepared INSERT per kind, indexed by kind. */
static const char *const inserts[] = {
	[UNI_TR_SESSION_START] = "INSERT INTO session_start VALUES(?1)",
	[UNI_TR_RANK_ATTACH] = "INSERT INTO rank_attach VALUES(?1,?2,?3,?4)",
	[UNI_TR_RANK_EXIT] = "INSERT INTO rank_exit VALUES(?1,?2,?3,?4,?5,?6)",
	[UNI_TR_THREAD] = "INSERT INTO thread VALUES(?1,?2,?3,?4)",
	[UNI_TR_CONN] = "INSERT OR REPLACE INTO conn VALUES(?1,?2,?3,?4,?5,?6)",
	[UNI_TR_SEND] = "INSERT INTO send VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
	[UNI_TR_RECV] = "INSERT INTO recv VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
	[UNI_TR_CONN_CLOSE] = "INSERT INTO conn_close VALUES(?1,?2,?3,?4,?5,?6)",
	[UNI_TR_SESSION_END] = "INSERT INTO session_end VALUES(?1,?2,?3,?4,?5,?6)",
	[UNI_TR_THREAD_END] = "INSERT INTO thread_end VALUES(?1,?2,?3,?4,?5,?6)",
	[UNI_TR_DEADLOCK] = "INSERT INTO deadlock VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[UNI_TR_COMPUTE] = "INSERT INTO compute VALUES(?1,?2,?3,?4,?5)",
	[UNI_TR_IDLE] = "INSERT INTO idle VALUES(?1,?2,?3,?4)",
	[UNI_TR_SIGNAL] = "INSERT INTO signal VALUES(?1,?2,?3,?4,?5)",
	[UNI_TR_TAKE] = "INSERT INTO take VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[UNI_TR_DEP] = "INSERT INTO dep VALUES(?1,?2,?3,?4)",
	[UNI_TR_DELAY] = "INSERT INTO delay VALUES(?1,?2,?3,?4,?5)",
	[UNI_TR_SENT] = "INSERT INTO sent VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
	[UNI_TR_OP] = "INSERT INTO op VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
	[UNI_TR_NCCL_OP] = "INSERT INTO nccl_op VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
	[UNI_TR_NCCL_COMM] = "INSERT INTO nccl_comm VALUES(?1,?2,?3,?4,?5,?6)",
};
#define NKINDS (sizeof(inserts) / sizeof(inserts[0]))

/* SQLite integers are signed 64-bit: larger values (none in practice) are
 * clamped rather than wrapped. */
static sqlite3_int64 i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int bind_rec(sqlite3_stmt *st, const struct uni_trec *t)
{
	int k = 1;
#define B(v) sqlite3_bind_int64(st, k++, (sqlite3_int64)(v))
#define U(v) sqlite3_bind_int64(st, k++, i64(v))
	switch (t->kind) {
	case UNI_TR_SESSION_START:
		U(t->a);
		break;
	case UNI_TR_RANK_ATTACH:
		B(t->rank), U(t->a), U(t->len), U(t->t0);
		break;
	case UNI_TR_RANK_EXIT:
		B(t->rank), U(t->a);
		sqlite3_bind_text(st, k++, (t->flags & UNI_TRF_DIED) ? "died" : (t->flags & UNI_TRF_CLEAN) ? "clean" : "?",
				  -1, SQLITE_STATIC);
		U(t->t0), U(t->off), U(t->len);
		break;
	case UNI_TR_THREAD: {
		/* (1.5) its key, 16 hex digits; empty before 1.5 or without one. */
		char key[17] = "";
		if (t->off)
			snprintf(key, sizeof(key), "%016" PRIx64, t->off);
		B(t->rank), B(t->tid), U(t->t0);
		sqlite3_bind_text(st, k++, key, -1, SQLITE_TRANSIENT);
		break;
	}
	case UNI_TR_CONN:
		U(t->conn), B(t->rank), B(t->peer), U(t->a), U(t->off), U(t->len);
		break;
	case UNI_TR_SEND:
		B(t->rank), B(t->tid), B(t->peer), U(t->conn), U(t->t0), U(t->t1), U(t->off), U(t->len), U(t->a);
		B((t->flags & UNI_TRF_DISPATCHER) != 0), B((t->flags & UNI_TRF_FALLBACK) != 0);
		B((t->flags & UNI_TRF_NOTIFY) != 0);
		break;
	case UNI_TR_RECV:
		B(t->rank), B(t->tid), B(t->peer), U(t->conn), U(t->t0), U(t->t1), U(t->off), U(t->len), U(t->a);
		B((t->flags & UNI_TRF_DISPATCHER) != 0);
		break;
	case UNI_TR_CONN_CLOSE:
		B(t->rank), B(t->peer), U(t->conn), U(t->a), U(t->len), U(t->t0);
		break;
	case UNI_TR_SESSION_END:
		U(t->a), U(t->len), U(t->off), U(t->t0), U(t->conn), U(t->conn && t->peer > 0 ? (uint64_t)t->peer : 0);
		break;
	case UNI_TR_THREAD_END:
		B(t->rank), B(t->tid), U(t->t0), U(t->off), U(t->len), B(t->flags & 1);
		break;
	case UNI_TR_DEADLOCK:
		B(t->rank), B(t->tid), B(t->peer), U(t->off), U(t->a), U(t->t0), U(t->len);
		break;
	case UNI_TR_COMPUTE:
		B(t->rank), B(t->tid), U(t->t0), U(t->t1), U(t->off);
		break;
	case UNI_TR_IDLE:
		B(t->rank), B(t->tid), U(t->t0), U(t->t1);
		break;
	case UNI_TR_SIGNAL:
		B(t->rank), B(t->tid), U(t->seq), U(t->t0), U(t->a);
		break;
	case UNI_TR_TAKE:
		B(t->rank), B(t->tid), U(t->seq), U(t->t0), U(t->t1), U(t->a), B((t->flags & UNI_TRF_SET) != 0);
		break;
	case UNI_TR_DEP:
		B(t->rank), B(t->tid), U(t->seq), U(t->a);
		break;
	case UNI_TR_DELAY:
		B(t->rank), B(t->tid), U(t->seq), U(t->t0), B((int64_t)t->a);
		break;
	case UNI_TR_SENT:
		B(t->rank), B(t->tid), U(t->seq), U(t->conn), U(t->off), U(t->t0), U(t->t1), U(t->a);
		break;
	case UNI_TR_OP: {
		static const char *const kinds[] = {"point-to-point", "gather", "all_gather", "reduce", "all_reduce",
						    "scatter", "broadcast", "barrier", "all_to_all"};
		unsigned p = (unsigned)(t->a >> 56);
		B(t->rank), B(t->tid), U(t->seq), U(t->t0), U(t->a);
		sqlite3_bind_text(st, k++, p < 9 ? kinds[p] : "?", -1, SQLITE_STATIC);
		B(t->flags & 1), U(t->off);
		break;
	}
	case UNI_TR_NCCL_OP: {
		char id[17];
		snprintf(id, sizeof(id), "%016" PRIx64, t->a);
		B(t->rank), B(t->tid), U(t->t0), U(t->t1);
		sqlite3_bind_text(st, k++, unitrace_nccl_op(t->flags), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, k++, unitrace_nccl_type(t->flags), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, k++, unitrace_nccl_algo(t->flags), -1, SQLITE_STATIC);
		B((t->flags & UNI_NCCL_OPF_GROUP) != 0), B((t->flags & UNI_NCCL_OPF_DEV) != 0);
		U(t->off), U(t->len), B(t->peer);
		sqlite3_bind_text(st, k++, id, -1, SQLITE_TRANSIENT);
		B(t->conn & 0xffff), B(t->conn >> 16);
		break;
	}
	case UNI_TR_NCCL_COMM: {
		char id[17];
		snprintf(id, sizeof(id), "%016" PRIx64, t->a);
		B(t->rank), B(t->tid);
		sqlite3_bind_text(st, k++, id, -1, SQLITE_TRANSIENT);
		U(t->off), U(t->len), B(t->peer);
		break;
	}
	default:
		return 0;
	}
#undef B
#undef U
	return 1;
}

static int meta(sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?1,?2)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

int unitrace_export_sqlite(const char *path, const char *out)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	sqlite3 *db = NULL;
	sqlite3_stmt *st[NKINDS];
	char buf[64];
	int rc = 0, n;
	struct sstr {
		int32_t rank;
		uint32_t id, len;
		char *text;
	} *strs = NULL; /* strings (call stacks), assembled from their records */
	size_t nstrs = 0, capstrs = 0;

	memset(st, 0, sizeof(st));
	if (uni_trace_open(&r, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		return UNITRACE_EXIT_TRACE;
	}
	/* A fresh database: an old file would mix two runs. */
	if (unlink(out) < 0 && errno != ENOENT) {
		fprintf(stderr, "unitrace: %s: %s\n", out, strerror(errno));
		uni_trace_close(&r);
		return UNITRACE_EXIT_OUTPUT;
	}
	if (sqlite3_open(out, &db) != SQLITE_OK)
		goto sql_fail;
	if (sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		goto sql_fail;
	for (size_t k = 0; k < NKINDS; k++)
		if (inserts[k] && sqlite3_prepare_v2(db, inserts[k], -1, &st[k], NULL) != SQLITE_OK)
			goto sql_fail;
	while ((n = uni_trace_next(&r, &t)) == 1) {
		if (t.kind == UNI_TR_STRING && t.peer > 0 && t.peer <= 65536) {
			/* Strings are assembled here and written at the end. */
			size_t i = 0;
			while (i < nstrs && !(strs[i].rank == t.rank && strs[i].id == t.conn))
				i++;
			if (i == nstrs) {
				if (nstrs == capstrs) {
					capstrs = capstrs ? capstrs * 2 : 16;
					void *p = realloc(strs, capstrs * sizeof(*strs));
					if (!p)
						goto sql_fail;
					strs = p;
				}
				strs[i].rank = t.rank;
				strs[i].id = t.conn;
				strs[i].len = (uint32_t)t.peer;
				strs[i].text = calloc((size_t)t.peer + 1, 1);
				if (!strs[i].text)
					goto sql_fail;
				nstrs++;
			}
			uint64_t w[5] = {t.t0, t.t1, t.off, t.len, t.a}, at = (uint64_t)t.seq * 40;
			if (at < strs[i].len)
				memcpy(strs[i].text + at, w, strs[i].len - at < 40 ? strs[i].len - at : 40);
			continue;
		}
		if (t.kind >= NKINDS || !st[t.kind])
			continue; /* a kind from a newer minor version */
		sqlite3_stmt *s = st[t.kind];
		sqlite3_reset(s);
		if (bind_rec(s, &t) && sqlite3_step(s) != SQLITE_DONE)
			goto sql_fail;
	}
	if (n < 0) {
		fprintf(stderr, "unitrace: %s\n", r.err);
		rc = UNITRACE_EXIT_TRACE;
	}
	for (size_t i = 0; i < nstrs; i++) {
		sqlite3_stmt *ss;
		if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO string VALUES(?1,?2,?3)", -1, &ss, NULL) != SQLITE_OK)
			goto sql_fail;
		sqlite3_bind_int64(ss, 1, strs[i].rank);
		sqlite3_bind_int64(ss, 2, strs[i].id);
		sqlite3_bind_text(ss, 3, strs[i].text, -1, SQLITE_TRANSIENT);
		int ok = sqlite3_step(ss) == SQLITE_DONE;
		sqlite3_finalize(ss);
		if (!ok)
			goto sql_fail;
	}
	for (size_t i = 0; i < nstrs; i++)
		free(strs[i].text);
	free(strs);
	strs = NULL;
	nstrs = 0;
	if (meta(db, "session", r.hdr.session) < 0 || meta(db, "mode", unitrace_mode_name(r.hdr.mode)) < 0 ||
	    meta(db, "time", unitrace_time_base(r.hdr.mode)) < 0)
		goto sql_fail;
	snprintf(buf, sizeof(buf), "%u.%u", r.hdr.version_major, r.hdr.version_minor);
	if (meta(db, "format", buf) < 0)
		goto sql_fail;
	snprintf(buf, sizeof(buf), "%" PRIu64, r.hdr.epoch_real_ns);
	if (meta(db, "epoch_real_ns", buf) < 0)
		goto sql_fail;
	snprintf(buf, sizeof(buf), "%" PRIu64, r.nrec);
	if (meta(db, "records", buf) < 0 || meta(db, "truncated", r.truncated ? "1" : "0") < 0)
		goto sql_fail;
	if (sqlite3_exec(db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK)
		goto sql_fail;
	for (size_t k = 0; k < NKINDS; k++)
		sqlite3_finalize(st[k]);
	if (sqlite3_close(db) != SQLITE_OK) {
		fprintf(stderr, "unitrace: %s: could not close the database\n", out);
		rc = UNITRACE_EXIT_OUTPUT;
	}
	if (r.truncated)
		fprintf(stderr, "unitrace: %s: trace ends inside a record after %" PRIu64
				" records: was the daemon killed? Exported what came before.\n",
			path, r.nrec);
	uni_trace_close(&r);
	return rc;

sql_fail:
	for (size_t i = 0; i < nstrs; i++)
		free(strs[i].text);
	free(strs);
	fprintf(stderr, "unitrace: %s: %s\n", out, db ? sqlite3_errmsg(db) : "cannot open");
	for (size_t k = 0; k < NKINDS; k++)
		sqlite3_finalize(st[k]);
	sqlite3_close(db);
	uni_trace_close(&r);
	return UNITRACE_EXIT_OUTPUT;
}
