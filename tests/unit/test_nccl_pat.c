/* NCCL's PAT step generators as ported (shim/nccl_pat.c), checked by
 * running them: every rank's steps executed with the data they move
 * (each element tagged with where it belongs and, for ReduceScatter,
 * which ranks' inputs it holds), slots per connection as NCCL's (a
 * receive waits for the sender's post of its slot). A wrong port leaves
 * a rank waiting forever or an element where it does not belong; the
 * check also holds the simulated NCCL's timing assumption: what a post
 * sends is (send_off + nelem) elements, and nothing else in that slot. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nccl_pat.h"

#define MAXSTEPS 200000

struct piece {
	long idx;      /* element index it belongs to (output for AllGather, input block for ReduceScatter) */
	uint64_t mask; /* ReduceScatter: the ranks whose input it holds */
	int set;
};

struct conn {
	struct piece **slot; /* slot j: an array of slot_cap pieces */
	int nslots;
	long *size;          /* slot j's posted size */
	int posted;          /* slots 0 .. posted-1 are sent */
};

struct rankst {
	struct uni_pat_step *steps;
	int nsteps, pc;
	int sstep[32], rstep[32];
	struct piece *out;
	int *out_set;
};

static long slot_cap;

static struct piece *slot_of(struct conn *c, int j)
{
	while (c->nslots <= j) {
		c->slot = realloc(c->slot, (size_t)(c->nslots + 1) * sizeof(*c->slot));
		c->size = realloc(c->size, (size_t)(c->nslots + 1) * sizeof(*c->size));
		c->slot[c->nslots] = calloc((size_t)slot_cap, sizeof(struct piece));
		c->size[c->nslots] = -1;
		c->nslots++;
	}
	return c->slot[j];
}

static int peer_of(int rank, int n, int d, int towards_plus)
{
	int delta = 1 << d;
	return towards_plus ? (rank + delta) % n : (rank - delta % n + n) % n;
}

/* Runs every rank's steps; returns a message or NULL when all is well. */
static const char *run(int rs, int n, long count, long chunk, char *why, size_t whylen)
{
	int dims = 0;
	while ((1 << dims) < n)
		dims++;
	struct rankst *R = calloc((size_t)n, sizeof(*R));
	struct conn *C = calloc((size_t)n * 32, sizeof(*C)); /* C[sender * 32 + dim] */
	long pf_max = 1;
	for (int r = 0; r < n; r++) {
		struct uni_pat p;
		uni_pat_init(&p, rs, chunk, UNI_PAT_STEPS, UNI_PAT_PARALLEL, 0, (size_t)count, (size_t)count, chunk, r, n);
		if (p.post_freq > pf_max)
			pf_max = p.post_freq;
		int cap = 0;
		for (;;) {
			if (R[r].nsteps == MAXSTEPS) {
				snprintf(why, whylen, "rank %d: more than %d steps", r, MAXSTEPS);
				return why;
			}
			if (R[r].nsteps == cap) {
				cap = cap ? 2 * cap : 256;
				R[r].steps = realloc(R[r].steps, (size_t)cap * sizeof(*R[r].steps));
			}
			struct uni_pat_step *ps = &R[r].steps[R[r].nsteps++];
			uni_pat_next(&p, ps);
			if (ps->last == 2)
				break;
		}
		R[r].out = calloc((size_t)(n * count), sizeof(struct piece));
	}
	/* every rank has the same steps but for the data indices */
	for (int r = 1; r < n; r++) {
		if (R[r].nsteps != R[0].nsteps) {
			snprintf(why, whylen, "rank %d has %d steps, rank 0 %d", r, R[r].nsteps, R[0].nsteps);
			return why;
		}
		for (int i = 0; i < R[r].nsteps; i++) {
			struct uni_pat_step a = R[r].steps[i], b = R[0].steps[i];
			if (a.recv_dim != b.recv_dim || a.send_dim != b.send_dim || a.post_send != b.post_send ||
			    a.post_recv != b.post_recv || a.skip != b.skip || a.step_off != b.step_off ||
			    a.send_off != b.send_off || a.recv_off != b.recv_off || a.nelem != b.nelem) {
				snprintf(why, whylen, "rank %d step %d differs from rank 0's", r, i);
				return why;
			}
		}
	}
	slot_cap = pf_max * chunk + chunk;
	int left = n, stuck = 0;
	while (left) {
		int moved = 0;
		for (int r = 0; r < n; r++) {
			struct rankst *me = &R[r];
			while (me->pc < me->nsteps) {
				struct uni_pat_step *ps = &me->steps[me->pc];
				if (ps->skip) {
					me->pc++;
					continue;
				}
				struct piece in[4096];
				long ne = ps->nelem;
				if (ne > 4096) {
					snprintf(why, whylen, "nelem %ld", ne);
					return why;
				}
				if (ps->recv_dim >= 0) {
					int src = peer_of(r, n, ps->recv_dim, !rs);
					struct conn *c = &C[src * 32 + ps->recv_dim];
					int j = me->rstep[ps->recv_dim] + (rs ? 0 : ps->step_off);
					if (c->posted <= j)
						break; /* not sent yet: wait */
					if (ps->recv_off < 0 || ps->recv_off + ne > c->size[j]) {
						snprintf(why, whylen, "rank %d step %d reads [%ld, +%ld) of a slot of %ld",
							 r, me->pc, ps->recv_off, ne, c->size[j]);
						return why;
					}
					for (long e = 0; e < ne; e++) {
						in[e] = c->slot[j][ps->recv_off + e];
						if (!in[e].set) {
							snprintf(why, whylen, "rank %d step %d reads an unwritten element", r, me->pc);
							return why;
						}
					}
				}
				if (!rs) {
					/* AllGather: the piece is out's, from the peer or our input */
					for (long e = 0; e < ne; e++) {
						long want = (long)ps->out + e;
						if (ps->recv_dim < 0) {
							if ((long)ps->out != (long)r * count + (long)ps->inp) {
								snprintf(why, whylen, "rank %d step %d: own data to %zu", r, me->pc, ps->out);
								return why;
							}
							in[e] = (struct piece){.idx = want, .set = 1};
						} else if (in[e].idx != want) {
							snprintf(why, whylen, "rank %d step %d: element %ld where %ld belongs", r,
								 me->pc, in[e].idx, want);
							return why;
						}
						me->out[want] = in[e];
					}
					if (ps->send_dim >= 0) {
						struct conn *c = &C[r * 32 + ps->send_dim];
						struct piece *sl = slot_of(c, me->sstep[ps->send_dim]);
						for (long e = 0; e < ne; e++)
							sl[ps->send_off + e] = in[e];
					}
				} else {
					/* ReduceScatter: in (if received) + our input, or what
					 * the destination holds already */
					struct piece *dst;
					if (ps->send_dim >= 0) {
						struct conn *c = &C[r * 32 + ps->send_dim];
						dst = slot_of(c, me->sstep[ps->send_dim] + ps->step_off) + ps->send_off;
					} else {
						dst = &me->out[ps->out];
					}
					for (long e = 0; e < ne; e++) {
						long want = (long)ps->inp + e;
						struct piece acc = dst[e];
						if (!acc.set)
							acc = (struct piece){.idx = want, .mask = 1ull << r, .set = 1};
						if (acc.idx != want) {
							snprintf(why, whylen, "rank %d step %d: adds into %ld for %ld", r, me->pc,
								 acc.idx, want);
							return why;
						}
						if (ps->recv_dim >= 0) {
							if (in[e].idx != want || (in[e].mask & acc.mask)) {
								snprintf(why, whylen,
									 "rank %d step %d: received %ld (mask %llx) for %ld (mask %llx)",
									 r, me->pc, in[e].idx, (unsigned long long)in[e].mask, want,
									 (unsigned long long)acc.mask);
								return why;
							}
							acc.mask |= in[e].mask;
						}
						dst[e] = acc;
					}
				}
				if (ps->post_send && ps->send_dim >= 0) {
					struct conn *c = &C[r * 32 + ps->send_dim];
					int j = me->sstep[ps->send_dim]++;
					struct piece *sl = slot_of(c, j);
					long size = ps->send_off + ne;
					for (long e = size; e < slot_cap; e++)
						if (sl[e].set) {
							snprintf(why, whylen, "rank %d posts %ld elements of a slot holding more",
								 r, size);
							return why;
						}
					c->size[j] = size;
					c->posted = j + 1;
				}
				if (ps->post_recv && ps->recv_dim >= 0)
					me->rstep[ps->recv_dim]++;
				me->pc++;
				moved = 1;
			}
			if (me->pc == me->nsteps && !me->out_set) {
				me->out_set = (int *)1;
				left--;
			}
		}
		if (!moved && left) {
			if (++stuck > 1) {
				snprintf(why, whylen, "%d ranks wait for data that never comes", left);
				return why;
			}
		} else {
			stuck = 0;
		}
	}
	for (int r = 0; r < n; r++) {
		long m = rs ? count : n * count;
		for (long i = 0; i < m; i++) {
			struct piece p = R[r].out[i];
			long want = rs ? (long)r * count + i : i;
			uint64_t all = n == 64 ? ~0ull : (1ull << n) - 1;
			if (!p.set || p.idx != want || (rs && p.mask != all)) {
				snprintf(why, whylen, "rank %d output element %ld: %s (idx %ld mask %llx)", r, i,
					 p.set ? "wrong" : "missing", p.idx, (unsigned long long)p.mask);
				return why;
			}
		}
	}
	for (int i = 0; i < n * 32; i++) {
		for (int j = 0; j < C[i].nslots; j++)
			free(C[i].slot[j]);
		free(C[i].slot);
		free(C[i].size);
	}
	for (int r = 0; r < n; r++) {
		free(R[r].steps);
		free(R[r].out);
	}
	free(C);
	free(R);
	(void)dims;
	return NULL;
}

static void check_all(int rs)
{
	static const long counts[] = {1, 3, 8, 20};
	static const long chunks[] = {1, 2, 5, 64};
	char why[256];
	for (int n = 2; n <= 64; n = n < 20 ? n + 1 : n + 11)
		for (size_t ci = 0; ci < sizeof(counts) / sizeof(*counts); ci++)
			for (size_t hi = 0; hi < sizeof(chunks) / sizeof(*chunks); hi++) {
				const char *e = run(rs, n, counts[ci], chunks[hi], why, sizeof(why));
				ck_assert_msg(e == NULL, "%s, %d ranks, count %ld, chunk %ld: %s",
					      rs ? "ReduceScatter" : "AllGather", n, counts[ci], chunks[hi], e);
			}
}

START_TEST(allgather)
{
	check_all(0);
}
END_TEST

START_TEST(reducescatter)
{
	check_all(1);
}
END_TEST

/* With data much smaller than a chunk, PAT aggregates: a rank sends
 * ceil(log2 n) messages in all (Bruck's rounds), one per dimension. */
START_TEST(aggregated)
{
	for (int rs = 0; rs < 2; rs++)
		for (int n = 2; n <= 64; n *= 2) {
			struct uni_pat p;
			uni_pat_init(&p, rs, 1 << 19, UNI_PAT_STEPS, UNI_PAT_PARALLEL, 0, 16, 16, 1 << 19, 0, n);
			int posts[32] = {0}, total = 0, dims = 0;
			while ((1 << dims) < n)
				dims++;
			for (int i = 0; i < MAXSTEPS; i++) {
				struct uni_pat_step s;
				uni_pat_next(&p, &s);
				if (!s.skip && s.post_send && s.send_dim >= 0) {
					posts[s.send_dim]++;
					total++;
				}
				if (s.last == 2)
					break;
			}
			ck_assert_msg(total == dims, "%s n=%d: %d posts", rs ? "RS" : "AG", n, total);
			for (int d = 0; d < dims; d++)
				ck_assert_int_eq(posts[d], 1);
		}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("nccl_pat");
	TCase *tc = tcase_create("pat");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, allgather);
	tcase_add_test(tc, reducescatter);
	tcase_add_test(tc, aggregated);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
