/* unitrace diff A B [--json]: two simulate-mode traces of one program side
 * by side, thread by thread as their keys pair them (trace 1.5: the
 * `thread` record's off; docs/unitrace.md "diff"): per rank its end in
 * each; per thread its events in each (threads of a rank with one key, or
 * none, pair in the order they began), the first where the two runs part
 * (another kind of event, or a read or a write of other bytes) and the
 * first whose times differ. For two runs with --compute-from, a run and
 * its replay, or one program under two configurations.
 *
 * Exit status, as diff(1): 0 the same event for event and time for time,
 * 1 they differ, 2 a file that is not a trace (or has no thread keys). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uni/common.h"
#include "uni/trace.h"
#include "unitrace.h"

#define UNI_MAX_RANKS_DIFF 1024

struct dthread {
	int32_t rank, tid;
	uint64_t key;
	uint32_t n, cap;
	struct uni_trec *ev; /* its records, by event index */
	uint32_t order;      /* its thread record's place among the trace's */
	uint32_t occ;        /* threads of its rank with its key before it (0: keys are unique) */
};

struct dtrace {
	struct dthread *th;
	uint32_t nth, capth;
	uint64_t end[UNI_MAX_RANKS_DIFF];
	uint8_t have_end[UNI_MAX_RANKS_DIFF];
	int32_t nranks;
};

static int cmp_rec_seq(const void *a, const void *b)
{
	const struct uni_trec *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->kind < y->kind ? -1 : x->kind > y->kind;
}

static int cmp_thread_key(const void *a, const void *b)
{
	const struct dthread *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void oom(void)
{
	fputs("unitrace: out of memory\n", stderr);
	exit(1);
}

static int load(struct dtrace *d, const char *path)
{
	struct uni_trace_reader rd;
	if (uni_trace_open(&rd, path) < 0) {
		fprintf(stderr, "unitrace: %s\n", rd.err);
		return -1;
	}
	if (rd.hdr.mode != UNI_MODE_SIMULATE) {
		fprintf(stderr, "unitrace: %s: a %s-mode trace; diff compares simulate-mode traces\n", path,
			unitrace_mode_name(rd.hdr.mode));
		uni_trace_close(&rd);
		return -1;
	}
	if (rd.hdr.version_major == 1 && rd.hdr.version_minor < 5) {
		fprintf(stderr, "unitrace: %s: trace format 1.%u has no thread keys (1.5 and later do); "
				"record it again with this version\n",
			path, rd.hdr.version_minor);
		uni_trace_close(&rd);
		return -1;
	}
	struct uni_trec t;
	int rc;
	uint32_t last = UINT32_MAX;
	while ((rc = uni_trace_next(&rd, &t)) == 1) {
		if (t.kind == UNI_TR_RANK_EXIT && t.rank >= 0 && t.rank < UNI_MAX_RANKS_DIFF) {
			d->end[t.rank] = t.t0;
			d->have_end[t.rank] = 1;
		}
		if (t.rank >= 0 && t.rank < UNI_MAX_RANKS_DIFF && t.rank + 1 > d->nranks)
			d->nranks = t.rank + 1;
		if (t.rank < 0 || t.tid <= 0 || !uni_trec_kind_indexed(t.kind))
			continue;
		struct dthread *th = NULL;
		if (t.kind == UNI_TR_THREAD) {
			if (d->nth == d->capth) {
				d->capth = d->capth ? 2 * d->capth : 64;
				d->th = realloc(d->th, d->capth * sizeof(*d->th));
				if (!d->th)
					oom();
			}
			th = &d->th[d->nth];
			memset(th, 0, sizeof(*th));
			th->rank = t.rank;
			th->tid = t.tid;
			th->key = t.off;
			th->order = d->nth;
			last = d->nth++;
		} else if (last < d->nth && d->th[last].tid == t.tid && d->th[last].rank == t.rank) {
			th = &d->th[last];
		} else {
			for (uint32_t j = d->nth; j-- > 0;)
				if (d->th[j].tid == t.tid && d->th[j].rank == t.rank) {
					th = &d->th[j];
					last = j;
					break;
				}
		}
		if (!th)
			continue;
		if (th->n == th->cap) {
			th->cap = th->cap ? 2 * th->cap : 64;
			th->ev = realloc(th->ev, th->cap * sizeof(*th->ev));
			if (!th->ev)
				oom();
		}
		th->ev[th->n++] = t;
	}
	if (rc < 0) {
		fprintf(stderr, "unitrace: %s\n", rd.err);
		uni_trace_close(&rd);
		return -1;
	}
	uni_trace_close(&rd);
	for (uint32_t j = 0; j < d->nth; j++)
		if (d->th[j].n)
			qsort(d->th[j].ev, d->th[j].n, sizeof(*d->th[j].ev), cmp_rec_seq);
	if (d->nth)
		qsort(d->th, d->nth, sizeof(*d->th), cmp_thread_key);
	/* Threads with one key in a rank (none, key 0, or a collision) pair
	 * in the order they began. */
	for (uint32_t j = 1; j < d->nth; j++)
		if (d->th[j].rank == d->th[j - 1].rank && d->th[j].key == d->th[j - 1].key)
			d->th[j].occ = d->th[j - 1].occ + 1;
	return 0;
}

static void drop(struct dtrace *d)
{
	for (uint32_t j = 0; j < d->nth; j++)
		free(d->th[j].ev);
	free(d->th);
}

static const struct dthread *find(const struct dtrace *d, int32_t rank, uint64_t key, uint32_t occ)
{
	uint32_t lo = 0, hi = d->nth;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct dthread *m = &d->th[mid];
		if (m->rank < rank || (m->rank == rank && m->key < key))
			lo = mid + 1;
		else
			hi = mid;
	}
	lo += occ;
	if (lo < d->nth && d->th[lo].rank == rank && d->th[lo].key == key && d->th[lo].occ == occ)
		return &d->th[lo];
	return NULL;
}

/* The same event: kind and, for what carries bytes, the bytes. */
static int same_event(const struct uni_trec *a, const struct uni_trec *b)
{
	if (a->kind != b->kind || a->seq != b->seq)
		return 0;
	if (a->kind == UNI_TR_SEND || a->kind == UNI_TR_RECV || a->kind == UNI_TR_NCCL_OP)
		return a->len == b->len;
	return 1;
}

static int same_times(const struct uni_trec *a, const struct uni_trec *b)
{
	return a->t0 == b->t0 && a->t1 == b->t1;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

int unitrace_diff(const char *pa, const char *pb, int json)
{
	struct dtrace A = {0}, B = {0};
	if (load(&A, pa) < 0 || load(&B, pb) < 0) {
		drop(&A);
		drop(&B);
		return UNITRACE_EXIT_TRACE;
	}
	int differ = 0;
	int32_t nranks = A.nranks > B.nranks ? A.nranks : B.nranks;
	if (json)
		printf("{\"a\": ");
	if (json) {
		unitrace_json_str(pa);
		printf(", \"b\": ");
		unitrace_json_str(pb);
		printf(", \"ranks\": [");
	} else {
		printf("diff %s %s\n", pa, pb);
	}
	uint32_t parted = 0, unpaired = 0, retimed = 0, ends = 0;
	int firstr = 1, firstt = 1;
	for (int32_t r = 0; r < nranks; r++) {
		int ha = A.have_end[r], hb = B.have_end[r];
		int same_end = ha == hb && (!ha || A.end[r] == B.end[r]);
		if (!same_end) {
			differ = 1;
			ends++;
		}
		if (json) {
			printf("%s{\"rank\": %" PRId32 ", \"end_a_ns\": ", firstr ? "" : ", ", r);
			if (ha)
				printf("%" PRIu64, A.end[r]);
			else
				printf("null");
			printf(", \"end_b_ns\": ");
			if (hb)
				printf("%" PRIu64, B.end[r]);
			else
				printf("null");
			printf("}");
			firstr = 0;
		} else if (ha && hb) {
			printf("rank %" PRId32 ": ends at %.6f ms / %.6f ms (%+.6f ms)\n", r, ms(A.end[r]), ms(B.end[r]),
			       ((double)B.end[r] - (double)A.end[r]) / 1e6);
		} else {
			printf("rank %" PRId32 ": %s\n", r, ha ? "no end in B" : hb ? "no end in A" : "no end in either");
		}
	}
	if (json)
		printf("], \"threads\": [");
	/* Every thread of A, then those of B that A lacks. */
	for (int side = 0; side < 2; side++) {
		const struct dtrace *X = side ? &B : &A, *Y = side ? &A : &B;
		for (uint32_t j = 0; j < X->nth; j++) {
			const struct dthread *x = &X->th[j];
			const struct dthread *y = find(Y, x->rank, x->key, x->occ);
			if (side && y)
				continue; /* paired: said from A's side */
			const struct dthread *ta = side ? y : x, *tb = side ? x : y;
			int64_t part = -1, retime = -1;
			if (ta && tb) {
				uint32_t n = ta->n < tb->n ? ta->n : tb->n;
				for (uint32_t i = 0; i < n && (part < 0 || retime < 0); i++) {
					if (part < 0 && !same_event(&ta->ev[i], &tb->ev[i]))
						part = i;
					if (retime < 0 && !same_times(&ta->ev[i], &tb->ev[i]))
						retime = i;
				}
				if (part < 0 && ta->n != tb->n)
					part = n;
				if (part >= 0)
					parted++;
				if (retime >= 0)
					retimed++;
			} else {
				unpaired++;
			}
			if (part >= 0 || retime >= 0 || !ta || !tb)
				differ = 1;
			const struct uni_trec *ea = ta && part >= 0 && (uint32_t)part < ta->n ? &ta->ev[part] : NULL;
			const struct uni_trec *eb = tb && part >= 0 && (uint32_t)part < tb->n ? &tb->ev[part] : NULL;
			if (json) {
				printf("%s{\"rank\": %" PRId32 ", \"key\": \"%016" PRIx64 "\", \"events_a\": ", firstt ? "" : ", ",
				       x->rank, x->key);
				if (ta)
					printf("%" PRIu32, ta->n);
				else
					printf("null");
				printf(", \"events_b\": ");
				if (tb)
					printf("%" PRIu32, tb->n);
				else
					printf("null");
				printf(", \"part_at\": ");
				if (part >= 0)
					printf("%" PRIu32, ea ? ea->seq : eb ? eb->seq : (uint32_t)part);
				else
					printf("null");
				printf(", \"kind_a\": \"%s\", \"kind_b\": \"%s\", \"times_from\": ",
				       ea ? uni_trec_kind_name(ea->kind) : "", eb ? uni_trec_kind_name(eb->kind) : "");
				if (retime >= 0)
					printf("%" PRIu32, (ta->ev[retime]).seq);
				else
					printf("null");
				printf("}");
				firstt = 0;
				continue;
			}
			printf("  rank %" PRId32 " thread %016" PRIx64 ": ", x->rank, x->key);
			if (!ta || !tb) {
				printf("only in %s (%" PRIu32 " events)\n", ta ? "A" : "B", x->n);
				continue;
			}
			printf("%" PRIu32 " / %" PRIu32 " events", ta->n, tb->n);
			if (part < 0 && retime < 0) {
				printf(", the same\n");
				continue;
			}
			if (part >= 0) {
				if (ea && eb)
					printf(", part at event %" PRIu32 " (%s %" PRIu64 " / %s %" PRIu64 ")", ea->seq,
					       uni_trec_kind_name(ea->kind), ea->len, uni_trec_kind_name(eb->kind), eb->len);
				else
					printf(", part after event %" PRId64 " (one run has more)", part - 1);
			} else {
				printf(", the same events");
			}
			if (retime >= 0)
				printf("; times differ from event %" PRIu32 " (%.6f / %.6f ms)", ta->ev[retime].seq,
				       ms(ta->ev[retime].t1), ms(tb->ev[retime].t1));
			printf("\n");
		}
	}
	if (json) {
		printf("], \"same\": %s}\n", differ ? "false" : "true");
	} else if (!differ) {
		printf("the same, event for event and time for time\n");
	} else {
		printf("they differ: %" PRIu32 " thread%s part, %" PRIu32 " with other times, %" PRIu32
		       " in one trace only, %" PRIu32 " rank%s end%s otherwise\n",
		       parted, parted == 1 ? "" : "s", retimed, unpaired, ends, ends == 1 ? "" : "s",
		       ends == 1 ? "s" : "");
	}
	drop(&A);
	drop(&B);
	return differ ? 1 : 0;
}
