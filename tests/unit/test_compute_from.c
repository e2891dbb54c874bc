/* Unit tests for --compute-from's parts: the table of recorded compute
 * (engine/compute_from.c) and the canonical form of a trace
 * (engine/trace_canon.c).
 *
 * Checks: thread keys are never 0 and differ for siblings, parents and
 * forks; the table holds, per thread key and event index, each record's
 * kind, a compute record's CPU ns and a send's or receive's bytes, only for
 * the rank asked, from records in any order of threads; a tid reused by a
 * later thread record starts a new thread; two threads with one key are
 * not replayed; strings and deadlock records (whose seq is not an event
 * index) and an index far past the file's records (a damaged file) are
 * left out; the file is refused with a message when it is not a
 * trace, not simulate mode, older than format 1.5, or has no thread of the
 * rank. The canonical form of a trace is the same file whatever the order
 * of its records, the tids, connection ids, ports, pids, real times and
 * epochs the host gave it; tids are renumbered per rank in key order
 * everywhere they appear (take and dep sources included), connections in
 * the order of their first transfer, NCCL communicator keys by first use.
 *
 * Does not check: a live run (tests/integration/test_sim_determinism.sh). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uni/compute_from.h"
#include "uni/trace.h"
#include "uni/trace_write.h"

static struct uni_trec R(uint16_t kind, int32_t rank, int32_t tid, uint32_t seq)
{
	struct uni_trec r;
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.rank = rank;
	r.tid = tid;
	r.seq = seq;
	r.peer = -1;
	return r;
}

/* A trace file in memory: header (simulate, minor as given) and records. */
static void *mkbuf(const struct uni_trec *rec, size_t n, uint32_t mode, uint16_t minor, size_t *len)
{
	*len = 256 + n * sizeof(*rec);
	char *b = calloc(1, *len);
	struct uni_trace_hdr h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, UNI_TRACE_MAGIC, 8);
	h.version_major = 1;
	h.version_minor = minor;
	h.hdr_size = 256;
	h.rec_size = 64;
	h.mode = mode;
	memcpy(b, &h, sizeof(h));
	memcpy(b + 256, rec, n * sizeof(*rec));
	return b;
}

START_TEST(test_keys)
{
	uint64_t a = uni_cf_child_key(1, 1), b = uni_cf_child_key(1, 2), c = uni_cf_child_key(a, 1);
	ck_assert_uint_ne(a, 0);
	ck_assert_uint_ne(a, b);
	ck_assert_uint_ne(a, c);
	ck_assert_uint_ne(b, c);
	ck_assert_uint_ne(uni_cf_child_key(1, 1u << 31), a);
	ck_assert_uint_eq(uni_cf_child_key(1, 1), a); /* a function of its inputs */
	for (uint32_t k = 0; k < 1000; k++)
		ck_assert_uint_ne(uni_cf_child_key(k, k), 0);
}
END_TEST

START_TEST(test_table)
{
	uint64_t k2 = uni_cf_child_key(1, 1);
	struct uni_trec rec[16];
	size_t n = 0;
	rec[n] = R(UNI_TR_THREAD, 0, 100, 0), rec[n++].off = 1;
	rec[n] = R(UNI_TR_THREAD, 1, 200, 0), rec[n++].off = 1; /* another rank */
	rec[n] = R(UNI_TR_THREAD, 0, 101, 0), rec[n++].off = k2;
	rec[n] = R(UNI_TR_COMPUTE, 0, 101, 1), rec[n++].off = 777;
	rec[n] = R(UNI_TR_COMPUTE, 0, 100, 1), rec[n++].off = 5000;
	rec[n] = R(UNI_TR_COMPUTE, 1, 200, 1), rec[n++].off = 9;
	rec[n] = R(UNI_TR_RECV, 0, 100, 4), rec[n++].len = 4096; /* written late: seq 4 before 2 */
	rec[n] = R(UNI_TR_SEND, 0, 100, 2), rec[n++].len = 100;
	rec[n] = R(UNI_TR_STRING, 0, 100, 3), rec[n++].off = 1; /* seq = a chunk, not an event */
	rec[n] = R(UNI_TR_COMPUTE, 0, 100, 100000000), rec[n++].off = 1; /* damaged: no 1.6 GB table */
	rec[n] = R(UNI_TR_DEADLOCK, 0, 100, 0), n++;
	size_t len;
	void *b = mkbuf(rec, n, 1, 5, &len);
	struct uni_cf cf;
	char err[160];
	ck_assert_int_eq(uni_cf_load(b, len, 0, &cf, err, sizeof(err)), 0);
	ck_assert_uint_eq(cf.nthreads, 2);
	ck_assert_uint_eq(cf.stretches, 2); /* the damaged one left out */
	const struct uni_cf_thread *t = uni_cf_find(&cf, 1);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->n, 5);
	ck_assert_uint_eq(t->ev[0].kind, UNI_TR_THREAD); /* not the deadlock record */
	ck_assert_uint_eq(t->ev[1].kind, UNI_TR_COMPUTE);
	ck_assert_uint_eq(t->ev[1].v, 5000);
	ck_assert_uint_eq(t->ev[2].kind, UNI_TR_SEND);
	ck_assert_uint_eq(t->ev[2].v, 100);
	ck_assert_uint_eq(t->ev[3].kind, 0); /* the string left out */
	ck_assert_uint_eq(t->ev[4].kind, UNI_TR_RECV);
	ck_assert_uint_eq(t->ev[4].v, 4096);
	t = uni_cf_find(&cf, k2);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->ev[1].v, 777);
	ck_assert_ptr_null(uni_cf_find(&cf, 0));
	ck_assert_ptr_null(uni_cf_find(&cf, 12345));
	uni_cf_free(&cf);
	ck_assert_int_eq(uni_cf_load(b, len, 1, &cf, err, sizeof(err)), 0);
	ck_assert_uint_eq(cf.nthreads, 1);
	ck_assert_uint_eq(uni_cf_find(&cf, 1)->ev[1].v, 9);
	uni_cf_free(&cf);
	ck_assert_int_eq(uni_cf_load(b, len, 2, &cf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no thread of rank 2"));
	free(b);
}
END_TEST

START_TEST(test_reuse_and_ambiguous)
{
	struct uni_trec rec[8];
	size_t n = 0;
	rec[n] = R(UNI_TR_THREAD, 0, 100, 0), rec[n++].off = 7;
	rec[n] = R(UNI_TR_COMPUTE, 0, 100, 1), rec[n++].off = 1;
	rec[n] = R(UNI_TR_THREAD, 0, 100, 0), rec[n++].off = 8; /* the tid again: a new thread */
	rec[n] = R(UNI_TR_COMPUTE, 0, 100, 1), rec[n++].off = 2;
	rec[n] = R(UNI_TR_THREAD, 0, 300, 0), rec[n++].off = 9;
	rec[n] = R(UNI_TR_THREAD, 0, 301, 0), rec[n++].off = 9; /* one key, two threads */
	size_t len;
	void *b = mkbuf(rec, n, 1, 5, &len);
	struct uni_cf cf;
	char err[160];
	ck_assert_int_eq(uni_cf_load(b, len, 0, &cf, err, sizeof(err)), 0);
	ck_assert_uint_eq(uni_cf_find(&cf, 7)->ev[1].v, 1);
	ck_assert_uint_eq(uni_cf_find(&cf, 8)->ev[1].v, 2);
	ck_assert_ptr_null(uni_cf_find(&cf, 9));
	uni_cf_free(&cf);
	free(b);
}
END_TEST

START_TEST(test_refused)
{
	struct uni_trec rec[1] = {R(UNI_TR_THREAD, 0, 1, 0)};
	rec[0].off = 1;
	size_t len;
	struct uni_cf cf;
	char err[160];
	void *b = mkbuf(rec, 1, 0, 5, &len);
	ck_assert_int_eq(uni_cf_load(b, len, 0, &cf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a simulate-mode trace"));
	free(b);
	b = mkbuf(rec, 1, 1, 4, &len);
	ck_assert_int_eq(uni_cf_load(b, len, 0, &cf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "1.5"));
	memcpy(b, "NOTATRAC", 8);
	ck_assert_int_eq(uni_cf_load(b, len, 0, &cf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "magic"));
	ck_assert_int_eq(uni_cf_load(b, 100, 0, &cf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too short"));
	free(b);
	ck_assert_int_eq(uni_cf_check_file("/nonexistent/x.unitrace", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

/* One small session as a host might have written it: tids, connection
 * ids, ports, pids and real times of its own, records in its order. */
static size_t session(struct uni_trec *rec, int32_t tid0, int32_t tid1, uint32_t c0, uint32_t c1, int swap,
		      uint64_t nkey)
{
	size_t n = 0;
	uint64_t k = uni_cf_child_key(1, 1);
	rec[n] = R(UNI_TR_SESSION_START, -1, -1, 0), rec[n++].a = (uint64_t)tid0 + 5;
	rec[n] = R(UNI_TR_RANK_ATTACH, 0, -1, 0), rec[n].a = (uint64_t)tid0, rec[n++].t0 = (uint64_t)tid1 * 3;
	rec[n] = R(UNI_TR_THREAD, 0, tid0, 0), rec[n].off = 1, rec[n++].a = (uint64_t)tid0;
	rec[n] = R(UNI_TR_THREAD, 0, tid1, 0), rec[n].off = k, rec[n++].a = (uint64_t)tid1;
	rec[n] = R(UNI_TR_CONN, 0, -1, 0), rec[n].conn = c0, rec[n].a = c1, rec[n].peer = 1,
	rec[n].off = (uint64_t)tid0 + 40000, rec[n++].len = 29500;
	rec[n] = R(UNI_TR_SIGNAL, 0, tid0, 1), rec[n].t0 = 10, rec[n++].a = (uint64_t)tid0 * 4096; /* an address */
	rec[n] = R(UNI_TR_TAKE, 0, tid1, 1), rec[n].t0 = 0, rec[n].t1 = 10,
	rec[n++].a = ((uint64_t)(uint32_t)tid0 << 32) | 1;
	rec[n] = R(UNI_TR_SEND, 0, tid1, 2), rec[n].conn = c0, rec[n].peer = 1, rec[n].t0 = 10, rec[n++].len = 64;
	rec[n] = R(UNI_TR_NCCL_COMM, 0, tid0, 2), rec[n++].a = nkey;
	rec[n] = R(UNI_TR_THREAD, 1, tid1 + 1, 0), rec[n].off = 1, rec[n++].a = (uint64_t)tid1 + 1;
	rec[n] = R(UNI_TR_CONN, 1, -1, 0), rec[n].conn = c1, rec[n].a = c0, rec[n].peer = 0,
	rec[n].off = 29500, rec[n++].len = (uint64_t)tid0 + 40000;
	rec[n] = R(UNI_TR_RECV, 1, tid1 + 1, 1), rec[n].conn = c1, rec[n].peer = 0, rec[n].t1 = 2010,
	rec[n++].len = 64;
	rec[n] = R(UNI_TR_RANK_EXIT, 0, -1, 0), rec[n].a = (uint64_t)tid0, rec[n++].t0 = 2010;
	rec[n] = R(UNI_TR_SESSION_END, -1, -1, 0), rec[n].t0 = (uint64_t)tid1 * 7, rec[n++].a = 11;
	if (swap) {
		/* unid wrote the recv before the send, the threads the other way round */
		struct uni_trec t = rec[7];
		rec[7] = rec[11];
		rec[11] = t;
		t = rec[2];
		rec[2] = rec[3];
		rec[3] = t;
	}
	return n;
}

static char *canon_of(const struct uni_trec *rec, size_t n, uint64_t epoch, size_t *len)
{
	char path[] = "/tmp/test_canon.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	size_t blen;
	char *b = mkbuf(rec, n, 1, 5, &blen);
	((struct uni_trace_hdr *)b)->epoch_real_ns = epoch;
	((struct uni_trace_hdr *)b)->epoch_mono_ns = epoch / 3;
	ck_assert_int_eq(write(fd, b, blen), (ssize_t)blen);
	close(fd);
	free(b);
	char err[256];
	ck_assert_msg(uni_trace_canonicalise(path, err, sizeof(err)) == 0, "%s", err);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	char *out = malloc(1 << 16);
	*len = fread(out, 1, 1 << 16, f);
	fclose(f);
	unlink(path);
	return out;
}

START_TEST(test_canonical)
{
	struct uni_trec a[32], b[32];
	size_t na = session(a, 1000, 1001, 3, 4, 0, 0xdeadbeef);
	size_t nb = session(b, 52000, 51999, 17, 9, 1, 0x12345678);
	ck_assert_uint_eq(na, nb);
	size_t la, lb;
	char *ca = canon_of(a, na, 1796470000000000000ull, &la);
	char *cb = canon_of(b, nb, 1796479999999999999ull, &lb);
	ck_assert_uint_eq(la, 256 + na * 64);
	ck_assert_uint_eq(la, lb);
	ck_assert_msg(memcmp(ca, cb, la) == 0, "canonical forms differ");
	/* What it says: */
	const struct uni_trace_hdr *h = (const void *)ca;
	ck_assert_uint_eq(h->epoch_real_ns, 0);
	const struct uni_trec *r = (const void *)(ca + 256);
	ck_assert_uint_eq(r[0].kind, UNI_TR_SESSION_START);
	ck_assert_uint_eq(r[0].a, 0);
	ck_assert_uint_eq(r[na - 1].kind, UNI_TR_SESSION_END);
	ck_assert_uint_eq(r[na - 1].t0, 0);
	ck_assert_uint_eq(r[na - 1].a, 11);
	int seen_take = 0, seen_send = 0, seen_recv = 0;
	for (size_t i = 0; i < na; i++) {
		if (r[i].kind == UNI_TR_THREAD && r[i].rank == 0 && r[i].off == 1)
			ck_assert_int_eq(r[i].tid, (1 << 16) | 1); /* key 1 first */
		if (r[i].kind == UNI_TR_TAKE) {
			seen_take = 1;
			ck_assert_int_eq(r[i].tid, (1 << 16) | 2);
			ck_assert_uint_eq(r[i].a, ((uint64_t)((1 << 16) | 1) << 32) | 1);
		}
		if (r[i].kind == UNI_TR_SIGNAL)
			ck_assert_uint_eq(r[i].a, 0);
		if (r[i].kind == UNI_TR_CONN) {
			ck_assert_uint_eq(r[i].off, 0);
			ck_assert_uint_eq(r[i].conn, r[i].rank == 0 ? 0 : 1);
			ck_assert_uint_eq(r[i].a, r[i].rank == 0 ? 1 : 0);
		}
		if (r[i].kind == UNI_TR_SEND) {
			seen_send = 1;
			ck_assert_uint_eq(r[i].conn, 0);
		}
		if (r[i].kind == UNI_TR_RECV) {
			seen_recv = 1;
			ck_assert_int_eq(r[i].tid, (2 << 16) | 1);
		}
		if (r[i].kind == UNI_TR_NCCL_COMM)
			ck_assert_uint_eq(r[i].a, 1);
		if (r[i].kind == UNI_TR_RANK_ATTACH) {
			ck_assert_uint_eq(r[i].a, (1 << 16) | 1); /* the pid: the main thread's number */
			ck_assert_uint_eq(r[i].t0, 0);
		}
		if (i)
			ck_assert_int_le(r[i - 1].rank < 0 && r[i - 1].kind != UNI_TR_SESSION_START ? 99 : r[i - 1].rank,
					 r[i].rank < 0 && r[i].kind != UNI_TR_SESSION_START ? 99 : r[i].rank);
	}
	ck_assert(seen_take && seen_send && seen_recv);
	free(ca);
	free(cb);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("compute_from");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_reuse_and_ambiguous);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_canonical);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? 1 : 0;
}
