/* mktrace: writes a small synthetic trace for tests/integration/
 * test_unitrace.sh, using the engine's trace writer.
 *
 *   mktrace OUT [--truncate] [--no-end] [--unknown] [--mismatch]
 *               [--session NAME] [--simulate] [--far-peer] [--late] [--nccl]
 *
 * The trace: a record-mode session "demo-run" with two ranks on one
 * connection. Rank 0 (pid 1000, threads 1000 and 1002, detaches cleanly)
 * sends 1000 + 2000 + 4096 = 7096 bytes to rank 1 and receives 2048.
 * Rank 1 (pid 1001, thread 1001, dies) receives 1000 + 6096 = 7096 and sends
 * 512 + 1536 = 2048. Totals: 5 sends, 3 recvs, 9144 bytes each way.
 *
 *   --truncate  cut the file 30 bytes into the record after the first
 *               N - 2 (so rank 1's exit and the session end are lost)
 *   --no-end    leave out the session-end record
 *   --unknown   add a record of kind 200 (what a newer minor might add)
 *   --mismatch  rank 0 receives 2000 bytes instead of 2048
 *   --session   use NAME as the session name (to test escaping)
 *   --simulate  a simulate-mode header (the same records)
 *   --far-peer  one more send of 100 bytes, from rank 0 to rank 65535 on a
 *               connection with no record (what a corrupt trace may hold)
 *   --late      the session end says 3 transfers started late, the
 *               latest 2.5 ms after its stamp
 *   --nccl      both ranks join NCCL communicator 0x1234abcd (2 ranks) and
 *               run an AllReduce of 4 MB float32 (ring) from 1 ms: rank 0
 *               until 3 ms, rank 1 until 3.5 ms
 *
 * Prints the number of whole records in the file. Exit 0, 1 on error,
 * 64 on usage. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "uni/common.h"
#include "uni/shm.h"
#include "uni/trace.h"
#include "uni/trace_write.h"

#define MAXREC 32

static struct uni_trec recs[MAXREC];
static size_t nrec;

static struct uni_trec *add(uint16_t kind, int32_t rank)
{
	struct uni_trec *t = &recs[nrec++];

	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->rank = rank;
	return t;
}

static void xfer(uint16_t kind, int32_t rank, int32_t tid, int32_t peer,
		 uint64_t t0, uint64_t t1, uint64_t off, uint64_t len)
{
	struct uni_trec *t = add(kind, rank);

	t->tid = tid;
	t->peer = peer;
	t->conn = 0;
	t->t0 = t0;
	t->t1 = t1;
	t->off = off;
	t->len = len;
}

int main(int argc, char **argv)
{
	int truncate_it = 0, no_end = 0, unknown = 0, mismatch = 0, simulate = 0, far_peer = 0, late = 0, nccl = 0;
	const char *out = NULL, *session = "demo-run";
	struct uni_trace_writer w;
	struct uni_trace_hdr h;
	struct uni_trec *t;
	char err[256];
	size_t keep;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--truncate"))
			truncate_it = 1;
		else if (!strcmp(argv[i], "--no-end"))
			no_end = 1;
		else if (!strcmp(argv[i], "--unknown"))
			unknown = 1;
		else if (!strcmp(argv[i], "--mismatch"))
			mismatch = 1;
		else if (!strcmp(argv[i], "--simulate"))
			simulate = 1;
		else if (!strcmp(argv[i], "--far-peer"))
			far_peer = 1;
		else if (!strcmp(argv[i], "--late"))
			late = 1;
		else if (!strcmp(argv[i], "--nccl"))
			nccl = 1;
		else if (!strcmp(argv[i], "--session") && i + 1 < argc)
			session = argv[++i];
		else if (argv[i][0] != '-' && !out)
			out = argv[i];
		else
			goto usage;
	}
	if (!out)
		goto usage;

	/* Session-level records carry rank -1. */
	t = add(UNI_TR_SESSION_START, -1);
	t->a = 4242;
	t = add(UNI_TR_RANK_ATTACH, 0);
	t->a = 1000;
	t->len = 2; /* b: world size */
	t = add(UNI_TR_RANK_ATTACH, 1);
	t->a = 1001;
	t->len = 2;
	add(UNI_TR_THREAD, 0)->tid = 1000;
	add(UNI_TR_THREAD, 1)->tid = 1001;
	t = add(UNI_TR_CONN, 0);
	t->peer = 1;
	t->off = 40000;
	t->len = 5000;
	t = add(UNI_TR_CONN, 1);
	t->peer = 0;
	t->off = 5000;
	t->len = 40000;

	xfer(UNI_TR_SEND, 0, 1000, 1, 100000, 150000, 0, 1000);
	xfer(UNI_TR_RECV, 1, 1001, 0, 120000, 200000, 0, 1000);
	add(UNI_TR_THREAD, 0)->tid = 1002;
	xfer(UNI_TR_SEND, 0, 1002, 1, 300000, 320000, 1000, 2000);
	xfer(UNI_TR_SEND, 0, 1000, 1, 400000, 410000, 3000, 4096);
	xfer(UNI_TR_RECV, 1, 1001, 0, 330000, 500000, 1000, 6096);
	xfer(UNI_TR_SEND, 1, 1001, 0, 600000, 650000, 0, 512);
	xfer(UNI_TR_SEND, 1, 1001, 0, 700000, 720000, 512, 1536);
	xfer(UNI_TR_RECV, 0, 1000, 1, 610000, 900000, 0,
	     mismatch ? 2000 : 2048);
	if (far_peer) {
		xfer(UNI_TR_SEND, 0, 1000, 65535, 800000, 810000, 7096, 100);
		recs[nrec - 1].conn = 5;
	}
	if (nccl) {
		for (int r = 0; r < 2; r++) {
			t = add(UNI_TR_NCCL_COMM, r);
			t->tid = 1000 + r;
			t->a = 0x1234abcd;
			t->off = 2; /* nranks */
			t->len = (uint64_t)r;
			t->peer = -1;
			t = add(UNI_TR_NCCL_OP, r);
			t->tid = 1000 + r;
			t->t0 = 1000000;
			t->t1 = r ? 3500000 : 3000000;
			t->a = 0x1234abcd;
			t->off = 1048576;       /* count */
			t->len = 4194304;       /* bytes */
			t->conn = (uint32_t)r | 2u << 16;
			t->peer = -1;
			t->flags = 1 | 1 << UNI_NCCL_OPF_ALGO_SHIFT | 7 << UNI_NCCL_OPF_TYPE_SHIFT;
		}
	}
	if (unknown) {
		t = add(200, 0);
		t->a = 0xdeadbeef;
	}

	t = add(UNI_TR_CONN_CLOSE, 0);
	t->peer = 1;
	t->a = 7096;
	t->len = mismatch ? 2000 : 2048; /* b: received */
	t = add(UNI_TR_CONN_CLOSE, 1);
	t->peer = 0;
	t->a = 2048;
	t->len = 7096;
	t = add(UNI_TR_RANK_EXIT, 0);
	t->flags = UNI_TRF_CLEAN;
	t->t0 = 1000000;
	t = add(UNI_TR_RANK_EXIT, 1);
	t->flags = UNI_TRF_DIED;
	t->t0 = 1100000;
	if (!no_end) {
		t = add(UNI_TR_SESSION_END, -1);
		t->a = 8;   /* events */
		t->len = 0; /* b: dropped */
		t->off = 0; /* unmodelled connections */
		t->conn = late ? 3 : 0; /* transfers that started late */
		t->peer = late ? 2500 : -1; /* the latest one's delay, us */
	}

	/* 2024-05-01 12:34:56.789 UTC */
	uni_trace_hdr_init(&h, simulate ? UNI_MODE_SIMULATE : UNI_MODE_RECORD, session, 1714566896789000000ull,
			   123456789ull, "examples/configs/demo.yaml");
	if (uni_trace_create(&w, out, &h, err, sizeof(err)) < 0) {
		fprintf(stderr, "mktrace: %s\n", err);
		return 1;
	}
	if (uni_trace_append(&w, recs, nrec) < 0 || uni_trace_finish(&w) < 0) {
		fprintf(stderr, "mktrace: %s\n", w.err);
		return 1;
	}

	keep = nrec;
	if (truncate_it) {
		keep = nrec - 2;
		if (truncate(out, UNI_TRACE_HDR_SIZE +
			     (off_t)keep * UNI_TRACE_REC_SIZE + 30) < 0) {
			perror("mktrace: truncate");
			return 1;
		}
	}
	printf("%zu\n", keep);
	return 0;

usage:
	fprintf(stderr, "usage: mktrace OUT [--truncate] [--no-end] [--unknown]"
		" [--mismatch] [--session NAME] [--simulate] [--far-peer]\n");
	return 64;
}
