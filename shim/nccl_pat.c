/* NCCL's PAT step generators, from NCCL 2.28.9's src/include/collectives.h
 * (PatRSAlgorithm, PatAGAlgorithm; BSD-3-Clause, Copyright (c) NVIDIA
 * CORPORATION), in C: the same fields, the same arithmetic, one step per
 * call (nccl_pat.h). Kept line for line close to the original so that a
 * later NCCL can be compared with it. */
#include "nccl_pat.h"

static int log2_up(long x)
{
	int w = 0;
	if (x != 0)
		x -= 1;
	while (x) {
		w++;
		x >>= 1;
	}
	return w;
}

static long minl(long a, long b)
{
	return a < b ? a : b;
}

static int first_bit_set(int i, int max)
{
	int ffs = __builtin_ffs(i);
	return ffs ? ffs - 1 : max;
}

static int n_bits_set(int i)
{
	return __builtin_popcount((unsigned)i);
}

/* ReduceScatter ----------------------------------------------------------- */

static int mirror_invert(int i, int max)
{
	int ret = 0;
	for (int mask = 1, imask = max / 2; mask < max; mask <<= 1, imask >>= 1)
		if ((i & mask) == 0)
			ret += imask;
	return ret;
}

/* 1 when only upper bits are set (for 16: 8, 12, 14, 15). */
static int new_peer(int i, int pow2)
{
	return n_bits_set((i ^ (pow2 - 1)) + 1) == 1 ? 1 : 0;
}

static void rs_reset_a(struct uni_pat *p)
{
	p->a = 0;
	p->send_skipped = p->step_offset = 0;
	p->last_a = p->agg_factor;
	if (p->phase >= 2)
		p->last_a /= 2 * p->scale;
	if (p->phase == 4)
		p->last_a = 1;
}

static void rs_reset(struct uni_pat *p)
{
	p->nelem = minl(p->chunk, (long)(p->end - p->offset));
	p->phase = 0;
	p->scale = 1;
	p->as = p->agg_delta - 1;
	rs_reset_a(p);
}

static void rs_next(struct uni_pat *p, struct uni_pat_step *ps)
{
	int rank = p->rank, nranks = p->nranks, a = p->a, last_a = p->last_a, pf = p->post_freq;
	ps->last = 0;
	ps->nelem = p->nelem;
	ps->out = p->offset;
	ps->step_off = p->step_offset;
	int skip = 0;
	if (a >= last_a) {
		skip = 1;
	} else if (p->phase == 0) {
		int s = mirror_invert(a, last_a) * p->agg_delta + p->as;
		if (s >= nranks)
			skip = 1;
		int send_data_rank = (rank + s) % nranks;
		ps->inp = (size_t)send_data_rank * p->count + p->offset;
		ps->recv_dim = -1;
		ps->send_dim = 0;
		ps->out = 0;
		ps->recv_off = -1;
		ps->send_off = (a % pf) * p->nelem;
		ps->post_send = (a % pf) + 1 >= pf || a == last_a - 1;
		ps->post_recv = 0;
	} else if (p->phase == 1) {
		int s = mirror_invert(a, last_a) * p->agg_delta + p->as;
		if (s >= nranks)
			skip = 1;
		ps->recv_dim = first_bit_set(s, p->nr_pow2);
		ps->send_off = (a % pf) * p->nelem;
		ps->recv_off = (a % pf) * p->nelem;
		ps->post_send = 0;
		if (ps->recv_dim == 0 && ((a % pf) + 1 >= pf || a == last_a - 1))
			ps->post_send = 1;
		ps->post_recv = (a % pf) + 1 >= pf || a == last_a - 1;
		s -= 1 << ps->recv_dim;
		int recv_data_rank = (rank + nranks + s) % nranks;
		ps->inp = (size_t)recv_data_rank * p->count + p->offset;
		ps->send_dim = s ? first_bit_set(s, p->nr_pow2) : -1;
		if (ps->send_dim == -1) {
			ps->send_off = -1;
		} else if (p->as - (1 << ps->recv_dim) == 0) {
			if (new_peer(a, p->agg_factor)) {
				p->send_skipped = a;
				ps->step_off = p->step_offset = 0;
			}
			int foffset = a - p->send_skipped;
			ps->send_off = (foffset % pf) * p->nelem;
		}
		int recv_dim = ps->recv_dim;
		if (s < nranks && skip) {
			ps->recv_dim = -1;
			ps->recv_off = -1;
			ps->post_recv = 0;
			skip = 0;
		}
		if (recv_dim > 0 && ((a - p->send_skipped) % pf) + 1 >= pf && skip == 0)
			p->step_offset++;
	} else if (p->phase == 2) {
		int s = (2 * mirror_invert(a, last_a) + 1) * p->scale * p->agg_delta + 1;
		ps->post_recv = 0;
		if (s >= nranks)
			skip = 1;
		ps->recv_dim = 0;
		ps->post_send = a == last_a - 1;
		s -= 1;
		if (s < nranks && skip) {
			ps->recv_dim = -1;
			ps->recv_off = -1;
			skip = 0;
		} else if (!skip) {
			int foffset = a + p->agg_factor - p->agg_factor / p->scale;
			ps->post_recv |= (foffset + 1) % pf == 0;
			ps->recv_off = (foffset % pf) * p->nelem;
		}
		int recv_data_rank = (rank + nranks + s) % nranks;
		ps->inp = (size_t)recv_data_rank * p->count + p->offset;
		ps->send_dim = s ? first_bit_set(s, p->nr_pow2) : -1;
		int foffset = a;
		ps->post_send |= (foffset + 1) % pf == 0;
		ps->send_off = (foffset % pf) * p->nelem;
	} else if (p->phase == 3) {
		int s = (2 * mirror_invert(a, last_a) + 1) * p->scale * p->agg_delta;
		ps->post_recv = a == last_a - 1;
		if (s >= nranks)
			skip = 1;
		ps->recv_dim = first_bit_set(s, p->nr_pow2);
		ps->post_send = 0;
		s -= 1 << ps->recv_dim;
		int foffset = a;
		ps->post_recv |= (foffset + 1) % pf == 0;
		ps->recv_off = (foffset % pf) * p->nelem;
		int recv_data_rank = (rank + nranks + s) % nranks;
		ps->inp = (size_t)recv_data_rank * p->count + p->offset;
		ps->send_dim = s ? first_bit_set(s, p->nr_pow2) : -1;
		if (s < nranks && skip) {
			ps->recv_dim = -1;
			ps->recv_off = -1;
			ps->post_recv = 0;
			skip = 0;
		}
		if (new_peer(a, p->agg_factor / (2 * p->scale))) {
			p->send_skipped = a;
			ps->step_off = p->step_offset = 0;
		}
		foffset = a - p->send_skipped;
		if ((foffset % pf) + 1 >= pf && skip == 0)
			p->step_offset++;
		ps->send_off = ps->send_dim >= 0 ? (foffset % pf) * p->nelem : -1;
	} else if (p->phase == 4) {
		ps->recv_dim = 0;
		ps->send_dim = -1;
		ps->inp = (size_t)rank * p->count + p->offset;
		ps->recv_off = ((p->agg_factor - 1) % pf) * p->nelem;
		ps->send_off = -1;
		ps->post_recv = 1;
		ps->post_send = 0;
		p->offset += (size_t)p->chunk;
	}
	p->a = ++a;
	if (a >= p->last_a && a >= p->parallel) {
		int ph = p->phase;
		if (ph == 1)
			p->as--;
		if (ph == 3)
			p->scale *= 2;
		p->phase = ph == 0   ? (p->as == 1 ? (p->agg_factor > 1 ? 2 : 4) : 1)
			   : ph == 1 ? (p->as % 2 == 1 ? 0 : 1)
			   : ph == 2 ? 3
			   : ph == 3 ? (p->scale < p->agg_factor ? 2 : 4)
				     : 5;
		if (ph == 4) {
			if (p->offset >= p->end)
				ps->last = 2;
			else
				rs_reset(p);
		} else {
			rs_reset_a(p);
		}
	} else if (p->phase == 4 && p->offset >= p->end) {
		ps->last = 1;
	}
	ps->skip = skip;
}

/* AllGather --------------------------------------------------------------- */

/* (NCCL's PatAGAlgorithm also has a mirror(), which it does not use.) */

static void ag_reset_a(struct uni_pat *p)
{
	p->a = 0;
	p->last_a = p->agg_factor;
	if (p->phase >= 2)
		p->last_a /= 2 * p->scale;
}

static int ag_next_as(struct uni_pat *p)
{
	for (int d = 0; d < p->as_dim; d++) {
		int q = 1 << d;
		p->bit_count[d]--;
		if (p->bit_count[d] == 0) {
			p->v ^= q;
			p->bit_count[d] = q;
			if ((p->v & q) == 0) {
				p->bit_count[d] += first_bit_set(p->bit_zero_step[d], p->as_dim) - 1;
				if (p->bit_count[d] == 0) {
					p->v ^= q;
					p->bit_count[d] = q;
				}
				p->bit_zero_step[d]++;
			}
		}
	}
	return p->v;
}

static void ag_reset(struct uni_pat *p)
{
	p->nelem = minl(p->chunk, (long)(p->end - p->offset));
	p->scale = p->agg_factor / 2;
	p->phase = p->scale ? 2 : 1;
	p->v = 0;
	for (int i = 0; i < p->as_dim; i++) {
		p->bit_count[i] = p->as_dim - i;
		p->bit_zero_step[i] = 1;
	}
	p->as = ag_next_as(p);
	ag_reset_a(p);
}

static void ag_next(struct uni_pat *p, struct uni_pat_step *ps)
{
	int rank = p->rank, nranks = p->nranks, a = p->a, pf = p->post_freq, ad = p->agg_delta, as = p->as;
	ps->last = 0;
	ps->nelem = p->nelem;
	ps->inp = p->offset;
	ps->step_off = 0;
	int skip = 0;
	if (a >= p->last_a) {
		skip = 1;
	} else if (p->phase == 0) {
		int s = a * ad + as;
		if (s >= nranks)
			skip = 1;
		int recv_data_rank = (rank + s) % nranks;
		ps->out = (size_t)recv_data_rank * p->count + p->offset;
		ps->send_dim = -1;
		ps->recv_dim = 0;
		ps->inp = 0;
		ps->send_off = -1;
		ps->recv_off = (a % pf) * p->nelem;
		ps->step_off = 0;
		ps->post_recv = a % pf == pf - 1 || (a + 1) * ad + as >= nranks;
		ps->post_send = 0;
	} else if (p->phase == 1) {
		int s = a * ad + as;
		if (s >= nranks)
			skip = 1;
		ps->send_dim = first_bit_set(s, p->nr_pow2);
		s -= 1 << ps->send_dim;
		int send_data_rank = (rank + nranks + s) % nranks;
		ps->out = (size_t)send_data_rank * p->count + p->offset;
		ps->recv_dim = s ? first_bit_set(s, p->nr_pow2) : -1;
		ps->send_off = ps->recv_off = (a % pf) * p->nelem;
		ps->post_send = a % pf == pf - 1 || (a + 1) * ad + as >= nranks;
		ps->post_recv = ps->send_dim == 0 && (a % pf == pf - 1 || (a + 1) * ad + as - 1 >= nranks);
		ps->step_off = ps->send_dim == 0 ? 0 : a / pf;
		if (ps->recv_dim == -1) {
			ps->recv_off = -1;
			ps->post_recv = 0;
		} else if (as - (1 << ps->send_dim) == 0) {
			int foffset = (a * ad) >> (ps->recv_dim + 1);
			ps->recv_off = (foffset % pf) * p->nelem;
			ps->post_recv = ps->send_dim == 0 &&
					(foffset % pf == pf - 1 || (((foffset + 1) * 2) + 1) << ps->recv_dim >= nranks);
			ps->step_off = ps->send_dim == 0 ? 0 : foffset / pf;
		}
		if (s < nranks && ps->send_dim == 0 && skip) {
			/* receive at least once even without a send after it */
			ps->send_dim = -1;
			ps->send_off = -1;
			ps->post_send = 0;
			skip = 0;
		}
	} else if (p->phase == 2) {
		int s = (2 * a + 1) * p->scale * ad;
		ps->post_send = a % pf == pf - 1 || (2 * (a + 1) + 1) * p->scale * ad >= nranks;
		ps->post_recv = 0;
		if (s >= nranks)
			skip = 1;
		ps->send_dim = first_bit_set(s, p->nr_pow2);
		s -= 1 << ps->send_dim;
		ps->send_off = (a % pf) * p->nelem;
		ps->step_off = a / pf;
		int send_data_rank = (rank + nranks + s) % nranks;
		ps->out = (size_t)send_data_rank * p->count + p->offset;
		ps->recv_dim = s ? first_bit_set(s, p->nr_pow2) : -1;
		if (ps->recv_dim == -1) {
			ps->recv_off = -1;
		} else {
			s -= 1 << ps->recv_dim;
			int foffset = (a * 2 * p->scale * ad) >> (ps->recv_dim + 1);
			ps->recv_off = (foffset % pf) * p->nelem;
			ps->step_off = foffset / pf;
		}
	}
	p->a = ++a;
	if (a >= p->last_a && a >= p->parallel) {
		int ph = p->phase;
		if (ph == 2)
			p->scale /= 2;
		p->phase = ph == 2 ? (p->scale ? 2 : 1) : ph == 1 ? (p->as % 2 == 1 ? 0 : 1) : 1;
		if (ph == 0 || (ph == 1 && p->as % 2 == 0))
			p->as = ag_next_as(p);
		if (ph == 0 && p->as == ad / 2) {
			p->offset += (size_t)p->chunk;
			if (p->offset >= p->end)
				ps->last = 2;
			else
				ag_reset(p);
		} else {
			ag_reset_a(p);
		}
	} else if (p->phase == 0 && as == 1 && p->offset + (size_t)p->chunk >= p->end &&
		   a - 1 >= ((p->last_a - 1) / p->parallel) * p->parallel) {
		ps->last = 1;
	}
	ps->skip = skip;
}

void uni_pat_init(struct uni_pat *p, int rs, long step_size, int step_depth, int max_parallel, size_t offset,
		  size_t end, size_t count, long chunk, int rank, int nranks)
{
	*p = (struct uni_pat){.rs = rs, .offset = offset, .end = end, .count = count, .chunk = chunk,
			      .rank = rank, .nranks = nranks};
	p->parallel = max_parallel;
	p->agg_delta = p->nr_pow2 = 1 << log2_up(nranks);
	p->agg_factor = 1;
	size_t channel_size = end - offset;
	while (channel_size && (size_t)step_size / (channel_size * (size_t)p->agg_factor) >= 2 &&
	       p->agg_factor < nranks / 2) {
		p->agg_factor *= 2;
		p->agg_delta /= 2;
	}
	p->post_freq = p->agg_factor;
	if (p->post_freq < p->parallel)
		p->parallel = p->post_freq;
	int d = step_depth;
	while (d > 1 && p->agg_factor < nranks / 2) {
		d /= 2;
		p->agg_factor *= 2;
		p->agg_delta /= 2;
	}
	if (rs) {
		rs_reset(p);
	} else {
		p->as_dim = log2_up(p->agg_delta);
		ag_reset(p);
	}
}

void uni_pat_next(struct uni_pat *p, struct uni_pat_step *ps)
{
	*ps = (struct uni_pat_step){.recv_dim = -1, .send_dim = -1, .recv_off = -1, .send_off = -1};
	if (p->rs)
		rs_next(p, ps);
	else
		ag_next(p, ps);
}
