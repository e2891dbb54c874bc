/* Unit tests for the trace reader (engine/trace.c) and writer
 * (engine/trace_write.c).
 *
 * Checks: a trace written with the writer reads back field for field
 * (header and records, more records than the write buffer holds, negative
 * and 64-bit values); the writer creates missing parent directories and
 * reports a path it cannot create; uni_trace_hdr_init cuts long strings and
 * NUL-terminates; a file cut inside a record yields the whole records before
 * the cut and sets truncated; a header-only file has no records and is not
 * truncated; bad magic, a wrong major version, a header cut short, a header
 * size below 256, a record size other than 64, an empty and a missing file
 * are refused with an error naming the file; a larger header (newer minor)
 * is skipped; unknown record kinds are passed through; kind names.
 *
 * Does not check: reading a file while it is being written, the writer's
 * behaviour on a full disk (short writes), big-endian hosts, or unitrace
 * itself (tests/integration/test_unitrace.sh does). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uni/common.h"
#include "uni/trace.h"
#include "uni/trace_write.h"

static char tmpdir[256];

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_trace.XXXXXX",
		 base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[300];

	/* The directory holds only what these tests wrote. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_trace: could not remove %s\n", tmpdir);
}

static void path_in_tmp(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void make_hdr(struct uni_trace_hdr *h)
{
	uni_trace_hdr_init(h, UNI_MODE_SIMULATE, "unit-test",
			   1700000000123456789ull, 987654321ull,
			   "/etc/uni/test.yaml");
}

/* Record i of a deterministic sequence that exercises every field. */
static struct uni_trec make_rec(uint32_t i)
{
	struct uni_trec t;

	memset(&t, 0, sizeof(t));
	t.kind = (uint16_t)(1 + i % 9);
	t.flags = (uint16_t)(i * 7);
	t.rank = (int32_t)i - 5;
	t.tid = (int32_t)(100000 + i);
	t.peer = -(int32_t)i;
	t.conn = 0xfffffff0u + i;
	t.seq = 0;
	t.t0 = 0x0102030405060708ull + i;
	t.t1 = UINT64_MAX - i;
	t.off = (uint64_t)i << 40;
	t.len = i * 4096ull;
	t.a = 0xa5a5a5a5a5a5a5a5ull ^ i;
	return t;
}

/* Writes a valid trace with n records of make_rec(). */
static void write_trace(const char *path, uint32_t n)
{
	struct uni_trace_writer *w = malloc(sizeof(*w));
	struct uni_trace_hdr h;
	char err[256];

	ck_assert_ptr_nonnull(w);
	make_hdr(&h);
	ck_assert_msg(uni_trace_create(w, path, &h, err, sizeof(err)) == 0,
		      "%s", err);
	for (uint32_t i = 0; i < n; i++) {
		struct uni_trec t = make_rec(i);

		ck_assert_msg(uni_trace_append(w, &t, 1) == 0, "%s", w->err);
	}
	ck_assert_msg(uni_trace_finish(w) == 0, "%s", w->err);
	free(w);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* A raw little-endian header, so tests can set fields the writer refuses. */
static void raw_hdr(unsigned char *buf, size_t size, uint16_t major,
		    uint32_t hdr_size, uint32_t rec_size)
{
	memset(buf, 0, size);
	memcpy(buf, UNI_TRACE_MAGIC, 8);
	buf[8] = (unsigned char)major;
	buf[9] = (unsigned char)(major >> 8);
	for (int i = 0; i < 4; i++) {
		buf[12 + i] = (unsigned char)(hdr_size >> (8 * i));
		buf[16 + i] = (unsigned char)(rec_size >> (8 * i));
	}
}

/* Opening must fail with an error that names the file and says want. */
static void expect_refused(const char *path, const char *want)
{
	struct uni_trace_reader r;

	ck_assert_int_eq(uni_trace_open(&r, path), -1);
	ck_assert_ptr_null(r.f);
	ck_assert_msg(strstr(r.err, path) != NULL, "error lacks path: %s",
		      r.err);
	ck_assert_msg(strstr(r.err, want) != NULL, "error lacks '%s': %s",
		      want, r.err);
	ck_assert_ptr_null(strchr(r.err, '\n'));
	uni_trace_close(&r); /* harmless after a failed open */
}

START_TEST(test_roundtrip)
{
	/* 300 > UNI_TRACE_WBUF_RECS: the buffer is written several times. */
	const uint32_t n = 300;
	struct uni_trace_reader r;
	struct uni_trace_hdr want;
	struct uni_trec t;
	char path[512];
	struct stat st;

	/* Two missing directory levels: the writer creates them. */
	path_in_tmp(path, sizeof(path), "x/y/run.trace");
	write_trace(path, n);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, UNI_TRACE_HDR_SIZE +
			 (off_t)n * UNI_TRACE_REC_SIZE);

	make_hdr(&want);
	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	ck_assert_mem_eq(r.hdr.magic, "UNITRACE", 8);
	ck_assert_uint_eq(r.hdr.version_major, UNI_TRACE_VERSION_MAJOR);
	ck_assert_uint_eq(r.hdr.version_minor, UNI_TRACE_VERSION_MINOR);
	ck_assert_uint_eq(r.hdr.hdr_size, 256);
	ck_assert_uint_eq(r.hdr.rec_size, 64);
	ck_assert_uint_eq(r.hdr.mode, UNI_MODE_SIMULATE);
	ck_assert_uint_eq(r.hdr.epoch_real_ns, 1700000000123456789ull);
	ck_assert_uint_eq(r.hdr.epoch_mono_ns, 987654321ull);
	ck_assert_str_eq(r.hdr.session, "unit-test");
	ck_assert_str_eq(r.hdr.config_path, "/etc/uni/test.yaml");
	ck_assert_mem_eq(&r.hdr, &want, sizeof(want));

	for (uint32_t i = 0; i < n; i++) {
		struct uni_trec e = make_rec(i);

		ck_assert_int_eq(uni_trace_next(&r, &t), 1);
		ck_assert_uint_eq(t.kind, e.kind);
		ck_assert_uint_eq(t.flags, e.flags);
		ck_assert_int_eq(t.rank, e.rank);
		ck_assert_int_eq(t.tid, e.tid);
		ck_assert_int_eq(t.peer, e.peer);
		ck_assert_uint_eq(t.conn, e.conn);
		ck_assert_uint_eq(t.seq, e.seq);
		ck_assert_uint_eq(t.t0, e.t0);
		ck_assert_uint_eq(t.t1, e.t1);
		ck_assert_uint_eq(t.off, e.off);
		ck_assert_uint_eq(t.len, e.len);
		ck_assert_uint_eq(t.a, e.a);
		ck_assert_uint_eq(r.nrec, i + 1);
	}
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(r.truncated, 0);
	ck_assert_uint_eq(r.nrec, n);
	uni_trace_close(&r);
	ck_assert_ptr_null(r.f);
	uni_trace_close(&r);
}
END_TEST

START_TEST(test_append_many_at_once)
{
	struct uni_trace_writer *w = malloc(sizeof(*w));
	struct uni_trec recs[1000], t;
	struct uni_trace_reader r;
	struct uni_trace_hdr h;
	char path[512], err[256];
	uint32_t i;

	ck_assert_ptr_nonnull(w);
	for (i = 0; i < 1000; i++)
		recs[i] = make_rec(i);
	path_in_tmp(path, sizeof(path), "bulk.trace");
	make_hdr(&h);
	ck_assert_int_eq(uni_trace_create(w, path, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(uni_trace_append(w, recs, 1000), 0);
	ck_assert_uint_eq(w->nrec, 1000);
	ck_assert_int_eq(uni_trace_flush(w), 0);
	ck_assert_int_eq(uni_trace_flush(w), 0);
	ck_assert_int_eq(uni_trace_finish(w), 0);
	ck_assert_int_eq(uni_trace_finish(w), 0); /* already closed */
	ck_assert_int_eq(uni_trace_append(w, recs, 1), -1);
	free(w);

	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	for (i = 0; uni_trace_next(&r, &t) == 1; i++)
		ck_assert_mem_eq(&t, &recs[i], sizeof(t));
	ck_assert_uint_eq(i, 1000);
	ck_assert_int_eq(r.truncated, 0);
	uni_trace_close(&r);
}
END_TEST

START_TEST(test_flush_makes_records_visible)
{
	struct uni_trace_writer *w = malloc(sizeof(*w));
	struct uni_trec in = make_rec(3), out;
	struct uni_trace_reader r;
	struct uni_trace_hdr h;
	char path[512];

	ck_assert_ptr_nonnull(w);
	path_in_tmp(path, sizeof(path), "live.trace");
	make_hdr(&h);
	ck_assert_int_eq(uni_trace_create(w, path, &h, NULL, 0), 0);
	ck_assert_int_eq(uni_trace_append(w, &in, 1), 0);
	ck_assert_int_eq(uni_trace_flush(w), 0);

	/* The writer is still open: a reader sees the flushed record. */
	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	ck_assert_int_eq(uni_trace_next(&r, &out), 1);
	ck_assert_mem_eq(&out, &in, sizeof(in));
	ck_assert_int_eq(uni_trace_next(&r, &out), 0);
	ck_assert_int_eq(r.truncated, 0);
	uni_trace_close(&r);
	ck_assert_int_eq(uni_trace_finish(w), 0);
	free(w);
}
END_TEST

START_TEST(test_create_errors)
{
	struct uni_trace_writer *w = malloc(sizeof(*w));
	struct uni_trace_hdr h;
	char path[512], bad[600], err[256];

	ck_assert_ptr_nonnull(w);
	make_hdr(&h);
	/* A parent that is a regular file. */
	path_in_tmp(path, sizeof(path), "plain");
	write_bytes(path, "x", 1);
	snprintf(bad, sizeof(bad), "%s/sub/t.trace", path);
	ck_assert_int_eq(uni_trace_create(w, bad, &h, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, bad) != NULL, "%s", err);
	ck_assert_str_eq(err, w->err);
	ck_assert_int_eq(w->fd, -1);

	/* A layout the writer does not write. */
	path_in_tmp(path, sizeof(path), "odd.trace");
	h.rec_size = 128;
	ck_assert_int_eq(uni_trace_create(w, path, &h, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	free(w);
}
END_TEST

START_TEST(test_hdr_init)
{
	struct uni_trace_hdr h;
	char longname[100], longpath[300];

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';

	memset(&h, 0x55, sizeof(h));
	uni_trace_hdr_init(&h, UNI_MODE_EMULATE, longname, 1, 2, longpath);
	ck_assert_mem_eq(h.magic, UNI_TRACE_MAGIC, 8);
	ck_assert_uint_eq(h.hdr_size, UNI_TRACE_HDR_SIZE);
	ck_assert_uint_eq(h.rec_size, UNI_TRACE_REC_SIZE);
	ck_assert_uint_eq(h.mode, UNI_MODE_EMULATE);
	ck_assert_uint_eq(strlen(h.session), sizeof(h.session) - 1);
	ck_assert_uint_eq(strlen(h.config_path), sizeof(h.config_path) - 1);
	for (size_t i = 0; i < sizeof(h.reserved); i++)
		ck_assert_uint_eq(h.reserved[i], 0);

	uni_trace_hdr_init(&h, UNI_MODE_RECORD, "s", 0, 0, NULL);
	ck_assert_str_eq(h.session, "s");
	ck_assert_str_eq(h.config_path, "");
	/* The rest of a string field is zero, so files are reproducible. */
	for (size_t i = 2; i < sizeof(h.session); i++)
		ck_assert_int_eq(h.session[i], 0);
}
END_TEST

START_TEST(test_truncated)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	char path[512];
	uint32_t i;

	path_in_tmp(path, sizeof(path), "cut.trace");
	write_trace(path, 10);
	/* Seven whole records and 30 bytes of the eighth. */
	ck_assert_int_eq(truncate(path, UNI_TRACE_HDR_SIZE +
				  7 * UNI_TRACE_REC_SIZE + 30), 0);

	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	for (i = 0; i < 7; i++) {
		struct uni_trec e = make_rec(i);

		ck_assert_int_eq(uni_trace_next(&r, &t), 1);
		ck_assert_mem_eq(&t, &e, sizeof(t));
		ck_assert_int_eq(r.truncated, 0);
	}
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(r.truncated, 1);
	ck_assert_uint_eq(r.nrec, 7);
	/* Stays at the end. */
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(r.truncated, 1);
	ck_assert_uint_eq(r.nrec, 7);
	uni_trace_close(&r);

	/* Cut one byte into the first record. */
	ck_assert_int_eq(truncate(path, UNI_TRACE_HDR_SIZE + 1), 0);
	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(r.truncated, 1);
	ck_assert_uint_eq(r.nrec, 0);
	uni_trace_close(&r);
}
END_TEST

START_TEST(test_header_only)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	char path[512];

	path_in_tmp(path, sizeof(path), "empty-run.trace");
	write_trace(path, 0);
	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(r.truncated, 0);
	ck_assert_uint_eq(r.nrec, 0);
	uni_trace_close(&r);
}
END_TEST

START_TEST(test_bad_magic)
{
	unsigned char buf[UNI_TRACE_HDR_SIZE + UNI_TRACE_REC_SIZE];
	char path[512];

	path_in_tmp(path, sizeof(path), "bad-magic.trace");
	raw_hdr(buf, sizeof(buf), 1, 256, 64);
	memcpy(buf, "UNITRACX", 8);
	write_bytes(path, buf, sizeof(buf));
	expect_refused(path, "magic");

	/* Shorter than the magic itself. */
	write_bytes(path, "UNI", 3);
	expect_refused(path, "magic");
}
END_TEST

START_TEST(test_wrong_major)
{
	struct uni_trace_writer *w = malloc(sizeof(*w));
	unsigned char buf[UNI_TRACE_HDR_SIZE];
	struct uni_trace_hdr h;
	char path[512];

	ck_assert_ptr_nonnull(w);
	path_in_tmp(path, sizeof(path), "v2.trace");
	make_hdr(&h);
	h.version_major = 2;
	h.version_minor = 3;
	ck_assert_int_eq(uni_trace_create(w, path, &h, NULL, 0), 0);
	ck_assert_int_eq(uni_trace_finish(w), 0);
	free(w);
	expect_refused(path, "version 2.3");

	/* Major 0 is refused too. */
	raw_hdr(buf, sizeof(buf), 0, 256, 64);
	write_bytes(path, buf, sizeof(buf));
	expect_refused(path, "version 0.0");
}
END_TEST

START_TEST(test_short_header)
{
	unsigned char buf[UNI_TRACE_HDR_SIZE];
	char path[512];

	/* The file ends inside the header. */
	path_in_tmp(path, sizeof(path), "short.trace");
	raw_hdr(buf, sizeof(buf), 1, 256, 64);
	write_bytes(path, buf, 100);
	expect_refused(path, "cut short");

	/* The header claims to be smaller than version 1's. */
	raw_hdr(buf, sizeof(buf), 1, 128, 64);
	write_bytes(path, buf, sizeof(buf));
	expect_refused(path, "header size 128");
}
END_TEST

START_TEST(test_bad_rec_size)
{
	unsigned char buf[UNI_TRACE_HDR_SIZE];
	char path[512];

	path_in_tmp(path, sizeof(path), "rec128.trace");
	raw_hdr(buf, sizeof(buf), 1, 256, 128);
	write_bytes(path, buf, sizeof(buf));
	expect_refused(path, "record size 128");
}
END_TEST

START_TEST(test_empty_and_missing)
{
	char path[512];

	path_in_tmp(path, sizeof(path), "zero.trace");
	write_bytes(path, "", 0);
	expect_refused(path, "magic");

	path_in_tmp(path, sizeof(path), "does-not-exist.trace");
	expect_refused(path, "No such file");
}
END_TEST

/* A newer minor may grow the header: the reader skips the extension. */
START_TEST(test_bigger_header)
{
	unsigned char buf[320 + 2 * UNI_TRACE_REC_SIZE];
	struct uni_trace_reader r;
	struct uni_trec t;
	char path[512];

	path_in_tmp(path, sizeof(path), "big-hdr.trace");
	raw_hdr(buf, sizeof(buf), 1, 320, 64);
	buf[10] = 7; /* minor 7 */
	memset(buf + 256, 0xee, 64); /* the extension */
	/* Two records: kind 6 (send) with len 42, and kind 9. */
	buf[320] = 6;
	buf[320 + 48] = 42;
	buf[320 + 64] = 9;
	write_bytes(path, buf, sizeof(buf));

	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	ck_assert_uint_eq(r.hdr.version_minor, 7);
	ck_assert_uint_eq(r.hdr.hdr_size, 320);
	ck_assert_int_eq(uni_trace_next(&r, &t), 1);
	ck_assert_uint_eq(t.kind, UNI_TR_SEND);
	ck_assert_uint_eq(t.len, 42);
	ck_assert_int_eq(uni_trace_next(&r, &t), 1);
	ck_assert_uint_eq(t.kind, UNI_TR_SESSION_END);
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	ck_assert_int_eq(r.truncated, 0);
	uni_trace_close(&r);

	/* Cut inside the extension: refused, not misread as records. */
	write_bytes(path, buf, 300);
	expect_refused(path, "cut short");
}
END_TEST

START_TEST(test_unknown_kind_passed_through)
{
	struct uni_trace_writer *w = malloc(sizeof(*w));
	struct uni_trec recs[3], t;
	struct uni_trace_reader r;
	struct uni_trace_hdr h;
	char path[512];

	ck_assert_ptr_nonnull(w);
	recs[0] = make_rec(5);  /* kind 6, send */
	recs[1] = make_rec(11);
	recs[1].kind = 999;
	recs[2] = make_rec(0);
	recs[2].kind = 0;
	path_in_tmp(path, sizeof(path), "unknown.trace");
	make_hdr(&h);
	ck_assert_int_eq(uni_trace_create(w, path, &h, NULL, 0), 0);
	ck_assert_int_eq(uni_trace_append(w, recs, 3), 0);
	ck_assert_int_eq(uni_trace_finish(w), 0);
	free(w);

	ck_assert_int_eq(uni_trace_open(&r, path), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(uni_trace_next(&r, &t), 1);
		ck_assert_mem_eq(&t, &recs[i], sizeof(t));
	}
	ck_assert_int_eq(uni_trace_next(&r, &t), 0);
	uni_trace_close(&r);
	ck_assert_str_eq(uni_trec_kind_name(999), "?");
	ck_assert_str_eq(uni_trec_kind_name(0), "?");
}
END_TEST

START_TEST(test_kind_names)
{
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_SESSION_START),
			 "session_start");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_RANK_ATTACH), "rank_attach");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_RANK_EXIT), "rank_exit");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_THREAD), "thread");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_CONN), "conn");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_SEND), "send");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_RECV), "recv");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_CONN_CLOSE), "conn_close");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_SESSION_END), "session_end");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_THREAD_END), "thread_end");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_DEADLOCK), "deadlock");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_COMPUTE), "compute");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_IDLE), "idle");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_SIGNAL), "signal");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_TAKE), "take");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_DEP), "dep");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_SENT), "sent");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_OP), "op");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_STRING), "string");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_NCCL_OP), "nccl_op");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_NCCL_COMM), "nccl_comm");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_COMPUTE_FROM), "compute_from");
	ck_assert_str_eq(uni_trec_kind_name(UNI_TR_DELAY), "delay");
	ck_assert_str_eq(uni_trec_kind_name(24), "?");
	ck_assert_str_eq(uni_trec_kind_name(UINT16_MAX), "?");
}
END_TEST

static Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("reader-writer");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_append_many_at_once);
	tcase_add_test(tc, test_flush_makes_records_visible);
	tcase_add_test(tc, test_create_errors);
	tcase_add_test(tc, test_hdr_init);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_header_only);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_wrong_major);
	tcase_add_test(tc, test_short_header);
	tcase_add_test(tc, test_bad_rec_size);
	tcase_add_test(tc, test_empty_and_missing);
	tcase_add_test(tc, test_bigger_header);
	tcase_add_test(tc, test_unknown_kind_passed_through);
	tcase_add_test(tc, test_kind_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(trace_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
