/* Fluid max-min sharing of per-rank uplinks and downlinks, and under the
 * topology model of the links between switches too (see nic.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nic.h"
#include "uni/config.h"
#include "uni/common.h"

struct seg {
	uint64_t t0; /* network time the segment begins */
	double b0;   /* bytes sent by then */
	double rate; /* bytes per ns during it */
};

enum { F_WAIT = 0, F_ACTIVE = 1, F_DONE = 2 };

/* Why an unread arrival no longer holds the network (nic_unread_bound). */
enum released { REL_HELD, REL_SOFT, REL_STALE };

struct nic_flow {
	int src, dst;
	int state;
	int read;          /* read to its end */
	int gated;         /* behind bytes not final yet: its reader cannot read it */
	int soft, wanted;  /* unread, it holds the network only while hold(wconn) says so (nic_flow_soft) */
	int lazy;          /* unread, it holds the network only once wanted (nic_flow_lazy) */
	int why;           /* unread: why nic_unread_bound last left it out (enum released; 0: it held) */
	int passed;        /* the network went past its arrival unread, counted */
	uint32_t wconn;
	uint64_t stamp;    /* may not start before */
	uint64_t latency;
	double bytes, sent;
	double rate;
	uint64_t done_t;   /* when its last byte left */
	uint64_t done_real; /* real time it finished (for stale unread flows) */
	uint64_t want_real; /* a lazy flow: real time it was last wanted (it holds from then) */
	struct nic_flow *pred;
	uint32_t npath;
	uint32_t path[UNI_CFG_MAX_ROUTE]; /* the links it crosses (uni_config_route) */
	struct seg *seg;
	uint32_t nseg, capseg;
	int frozen;        /* max-min pass */
	uint32_t refs;     /* chunks (and the stream's FIFO tail) referring to it */
	int in_live;
	double watch;      /* stop the network when this many bytes have left (0: none) */
	uint64_t start;    /* when it began to leave */
	void *ctx;
};

static struct {
	uint32_t nranks;
	const struct uni_config *cfg;
	uint64_t now;
	struct nic_flow **live; /* not done, or done but not read */
	uint32_t nlive, caplive;
	/* Links: uplinks 0..nranks-1, downlinks nranks..2 nranks-1, then
	 * the directed links between switches (topology). */
	uint32_t nlinks;
	double *left, *cap; /* bytes per ns */
	uint32_t *n;        /* unfrozen flows on it (max-min pass) */
	uint64_t late;
	uint64_t late_max, late_sum; /* how far before the network time, ns */
	uint64_t released[3];        /* arrivals passed unread, by why (soft, stale) */
	nic_done_f done_fn;
	int idle_jump;
} N;

void nic_idle_jump(int on)
{
	N.idle_jump = on;
}

int debug_nic(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("UNI_DEBUG_NIC") != NULL;
	return on;
}

int debug_nic2(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("UNI_DEBUG_NIC2") != NULL;
	return on;
}

void nic_on_done(nic_done_f fn)
{
	N.done_fn = fn;
}

static void flow_done(struct nic_flow *f, uint64_t t)
{
	f->state = F_DONE;
	f->done_t = t;
	f->done_real = uni_now_ns();
	if (N.done_fn)
		N.done_fn(f->ctx, f->start, t + f->latency);
	f->ctx = NULL;
}

void nic_flow_hold(struct nic_flow *f)
{
	f->refs++;
}

void nic_flow_release(struct nic_flow *f)
{
	if (--f->refs == 0 && !f->in_live) {
		free(f->seg);
		free(f);
	}
}

void nic_flow_unhold(struct nic_flow *f)
{
	nic_flow_release(f);
}

void nic_flow_watch(struct nic_flow *f, uint64_t bytes)
{
	double b = (double)bytes;
	if (b > f->bytes)
		b = f->bytes;
	if (b > f->sent && (f->watch == 0 || b < f->watch))
		f->watch = b;
}

uint64_t nic_flow_latency(const struct nic_flow *f)
{
	return f->latency;
}

uint64_t nic_flow_stamp(const struct nic_flow *f)
{
	return f->stamp;
}

void nic_flow_truncate(struct nic_flow *f, uint64_t bytes)
{
	double b = (double)bytes > f->sent ? (double)bytes : f->sent;
	if (b < f->bytes)
		f->bytes = b;
	if (f->watch > f->bytes)
		f->watch = 0;
}

void *nic_flow_ctx(const struct nic_flow *f)
{
	return f->ctx;
}

int nic_flow_complete_at(const struct nic_flow *f, uint64_t n)
{
	return (double)n >= f->bytes;
}

void nic_reset(void)
{
	for (uint32_t i = 0; i < N.nlive; i++) {
		free(N.live[i]->seg);
		free(N.live[i]);
	}
	free(N.live);
	free(N.left);
	free(N.cap);
	free(N.n);
	int jump = N.idle_jump;
	memset(&N, 0, sizeof(N));
	N.idle_jump = jump;
}

int nic_init(uint32_t max_ranks, const struct uni_config *cfg)
{
	N.nranks = max_ranks;
	N.cfg = cfg;
	N.nlinks = uni_config_route_links(cfg, max_ranks);
	N.left = calloc(N.nlinks, sizeof(double));
	N.cap = calloc(N.nlinks, sizeof(double));
	N.n = calloc(N.nlinks, sizeof(uint32_t));
	if (!N.left || !N.cap || !N.n)
		return -1;
	for (uint32_t i = 0; i < N.nlinks; i++)
		N.cap[i] = uni_config_route_capacity(cfg, i, max_ranks) / 8e9;
	return 0;
}

uint64_t nic_now(void)
{
	return N.now;
}

uint64_t nic_late(void)
{
	return N.late;
}

void nic_late_ns(uint64_t *max, uint64_t *sum)
{
	*max = N.late_max;
	*sum = N.late_sum;
}

struct nic_flow *nic_flow_new(int src, int dst, uint64_t stamp, uint64_t bytes, struct nic_flow *pred,
			      void *ctx)
{
	struct nic_flow *f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	if ((uint32_t)src >= N.nranks || (uint32_t)dst >= N.nranks)
		src = dst = 0;
	f->src = src;
	f->dst = dst;
	f->npath = (uint32_t)uni_config_route(N.cfg, src, dst, N.nranks, f->path, &f->latency);
	if (stamp < N.now) {
		/* Written by a thread the horizon had stopped waiting for
		 * (blocked outside the shim, or a reader that came late). */
		N.late++;
		N.late_sum += N.now - stamp;
		if (N.now - stamp > N.late_max)
			N.late_max = N.now - stamp;
		if (debug_nic())
			fprintf(stderr, "nic: late flow %d->%d stamp %llu now %llu (%llu ns early) bytes %llu\n", src, dst,
				(unsigned long long)stamp, (unsigned long long)N.now,
				(unsigned long long)(N.now - stamp), (unsigned long long)bytes);
		stamp = N.now;
	}
	f->stamp = stamp;
	f->bytes = (double)bytes;
	f->pred = pred && pred->state != F_DONE ? pred : NULL;
	if (f->pred)
		f->pred->refs++; /* dropped when f starts */
	f->ctx = ctx;
	f->refs = 1;
	if (N.nlive == N.caplive) {
		N.caplive = N.caplive ? N.caplive * 2 : 64;
		N.live = realloc(N.live, N.caplive * sizeof(*N.live));
		if (!N.live)
			abort();
	}
	N.live[N.nlive++] = f;
	f->in_live = 1;
	return f;
}

static void add_seg(struct nic_flow *f, uint64_t t, double rate)
{
	if (f->nseg && f->seg[f->nseg - 1].rate == rate)
		return;
	if (f->nseg == f->capseg) {
		f->capseg = f->capseg ? f->capseg * 2 : 4;
		f->seg = realloc(f->seg, f->capseg * sizeof(*f->seg));
		if (!f->seg)
			abort();
	}
	f->seg[f->nseg++] = (struct seg){.t0 = t, .b0 = f->sent, .rate = rate};
}

/* The earliest a waiting flow may start: its stamp, after its predecessor. */
static int startable(const struct nic_flow *f, uint64_t *at)
{
	uint64_t t = f->stamp;
	if (f->pred) {
		if (f->pred->state != F_DONE)
			return 0;
		if (f->pred->done_t > t)
			t = f->pred->done_t;
	}
	*at = t;
	return 1;
}

/* The share a flow would get on the tightest link of its path now. */
static double share(const struct nic_flow *f)
{
	double s = INFINITY;
	for (uint32_t k = 0; k < f->npath; k++) {
		uint32_t l = f->path[k];
		double a = N.left[l] / N.n[l];
		if (a < s)
			s = a;
	}
	return s;
}

/* Max-min fair rates by progressive filling over every link. */
static void compute_rates(void)
{
	memcpy(N.left, N.cap, N.nlinks * sizeof(double));
	memset(N.n, 0, N.nlinks * sizeof(uint32_t));
	uint32_t unfrozen = 0;
	for (uint32_t i = 0; i < N.nlive; i++) {
		struct nic_flow *f = N.live[i];
		f->frozen = f->state != F_ACTIVE;
		if (f->frozen)
			continue;
		unfrozen++;
		for (uint32_t k = 0; k < f->npath; k++)
			N.n[f->path[k]]++;
	}
	while (unfrozen) {
		double best = INFINITY;
		for (uint32_t i = 0; i < N.nlive; i++) {
			struct nic_flow *f = N.live[i];
			if (f->frozen)
				continue;
			double s = share(f);
			if (s < best)
				best = s;
		}
		/* Freeze every flow whose tighter link gives exactly the best
		 * share (one bottleneck level at a time). */
		for (uint32_t i = 0; i < N.nlive; i++) {
			struct nic_flow *f = N.live[i];
			if (f->frozen)
				continue;
			if (share(f) <= best * (1 + 1e-12)) {
				f->rate = best;
				f->frozen = 1;
				unfrozen--;
				for (uint32_t k = 0; k < f->npath; k++) {
					N.left[f->path[k]] -= best;
					N.n[f->path[k]]--;
				}
			}
		}
	}
}

static void drop_read_done(void)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < N.nlive; i++) {
		struct nic_flow *f = N.live[i];
		if (f->state == F_DONE && f->read) {
			f->in_live = 0;
			if (f->refs == 0) {
				free(f->seg);
				free(f);
			}
			/* else freed when its last holder releases it */
			continue;
		}
		N.live[k++] = f;
	}
	N.nlive = k;
}

/* Arrivals the network went past unread because the soft hold or the
 * stale time let them go: each one is real time the network waited (200
 * ms, 2 s). */
static void count_released(void)
{
	for (uint32_t i = 0; i < N.nlive; i++) {
		struct nic_flow *f = N.live[i];
		if (f->state != F_DONE || f->read || f->passed || f->why == REL_HELD || f->done_t + f->latency >= N.now)
			continue;
		f->passed = 1;
		N.released[f->why]++;
		if (debug_nic())
			fprintf(stderr, "nic: the network went past the arrival at %llu of flow %d->%d unread (%s)\n",
				(unsigned long long)(f->done_t + f->latency), f->src, f->dst,
				f->why == REL_SOFT ? "the 200 ms soft hold" : "stale after 2 s");
	}
}

void nic_released(uint64_t *soft, uint64_t *stale)
{
	*soft = N.released[REL_SOFT];
	*stale = N.released[REL_STALE];
}

uint64_t nic_advance(uint64_t h)
{
	while (N.now < h) {
		/* Start what may start now. */
		uint64_t next_start = UINT64_MAX;
		int any_active = 0;
		for (uint32_t i = 0; i < N.nlive; i++) {
			struct nic_flow *f = N.live[i];
			uint64_t at;
			if (f->state == F_WAIT && startable(f, &at)) {
				if (at <= N.now) {
					f->state = F_ACTIVE;
					f->start = N.now;
					if (f->pred) {
						struct nic_flow *p = f->pred;
						f->pred = NULL;
						nic_flow_release(p);
					}
					if (f->bytes <= 0) {
						flow_done(f, N.now);
						continue;
					}
				} else if (at < next_start) {
					next_start = at;
				}
			}
			any_active |= f->state == F_ACTIVE;
		}
		if (!any_active) {
			/* Idle: jump to the next start, never past it: with nothing
			 * to send, the network time has no reason to move (and a
			 * horizon of "never" must not take it to infinity). */
			if (next_start == UINT64_MAX || next_start >= h) {
				if (N.idle_jump && h != UINT64_MAX && h != UINT64_MAX - 1)
					N.now = h;
				break;
			}
			N.now = next_start;
			continue;
		}
		compute_rates();
		double dt = INFINITY;
		for (uint32_t i = 0; i < N.nlive; i++) {
			struct nic_flow *f = N.live[i];
			if (f->state != F_ACTIVE)
				continue;
			add_seg(f, N.now, f->rate);
			double d = (f->bytes - f->sent) / f->rate;
			if (d < dt)
				dt = d;
			if (f->watch > f->sent && (d = (f->watch - f->sent) / f->rate) < dt)
				dt = d;
		}
		uint64_t t_end = N.now + (uint64_t)ceil(dt);
		uint64_t t_next = t_end;
		if (next_start < t_next)
			t_next = next_start;
		if (h < t_next)
			t_next = h;
		if (t_next == N.now)
			t_next = N.now + 1;
		double span = (double)(t_next - N.now);
		int stop = 0;
		for (uint32_t i = 0; i < N.nlive; i++) {
			struct nic_flow *f = N.live[i];
			if (f->state != F_ACTIVE)
				continue;
			f->sent += f->rate * span;
			if (f->watch > 0 && f->sent >= f->watch - 1e-6) {
				f->watch = 0;
				stop = 1; /* a send completes: its waiter may act from here */
			}
			if (f->sent >= f->bytes - 1e-6) {
				f->sent = f->bytes;
				flow_done(f, t_next);
				if (!f->read)
					stop = 1;
			}
		}
		N.now = t_next;
		if (stop)
			break; /* its reader may act from here: recompute the horizon */
	}
	count_released();
	drop_read_done();
	return N.now;
}

uint64_t nic_final_to(uint64_t h)
{
	int busy = 0;
	for (uint32_t i = 0; i < N.nlive; i++) {
		const struct nic_flow *f = N.live[i];
		uint64_t at;
		if (f->state == F_ACTIVE || (f->state == F_WAIT && (!startable(f, &at) || at < h)))
			return N.now >= h ? h : N.now;
		busy |= f->state != F_DONE;
	}
	return busy ? h : UINT64_MAX; /* (nothing in flight: until the next write) */
}

int nic_byte_arrival(const struct nic_flow *f, uint64_t k, uint64_t *t)
{
	double want = (double)(k + 1);
	if (want > f->bytes)
		want = f->bytes;
	for (uint32_t i = 0; i < f->nseg; i++) {
		const struct seg *s = &f->seg[i];
		uint64_t t1 = i + 1 < f->nseg ? f->seg[i + 1].t0 : (f->state == F_DONE ? f->done_t : N.now);
		double b1 = s->b0 + s->rate * (double)(t1 - s->t0);
		if (want <= b1 + 1e-6) {
			double tt = (double)s->t0 + (want - s->b0) / s->rate;
			uint64_t left = (uint64_t)ceil(tt);
			if (f->state == F_DONE && k + 1 >= (uint64_t)f->bytes)
				left = f->done_t;
			if (left > N.now)
				return 0;
			*t = left + f->latency;
			return 1;
		}
	}
	if (f->bytes <= 0 && f->state == F_DONE) {
		*t = f->done_t + f->latency;
		return 1;
	}
	return 0;
}

void nic_flow_read(struct nic_flow *f)
{
	f->read = 1;
}

void nic_flow_soft(struct nic_flow *f, uint32_t wconn)
{
	f->soft = 1;
	f->wconn = wconn;
}

void nic_flow_lazy(struct nic_flow *f)
{
	f->lazy = 1;
}

void nic_flow_want(struct nic_flow *f)
{
	if (!f->wanted)
		f->want_real = uni_now_ns();
	f->wanted = 1;
}

void nic_flow_unwant(struct nic_flow *f)
{
	f->wanted = 0;
}

void nic_flow_gate(struct nic_flow *f, int gated)
{
	f->gated = gated;
}

void nic_debug_dump(FILE *f)
{
	fprintf(f, "nic: now %llu, %u live flows\n", (unsigned long long)N.now, N.nlive);
	for (uint32_t i = 0; i < N.nlive; i++) {
		struct nic_flow *x = N.live[i];
		fprintf(f, "  flow %d->%d state %d read %d stamp %llu bytes %.0f sent %.0f pred %p(state %d) done_t %llu\n",
			x->src, x->dst, x->state, x->read, (unsigned long long)x->stamp, x->bytes, x->sent,
			(void *)x->pred, x->pred ? x->pred->state : -1, (unsigned long long)x->done_t);
	}
}

int nic_idle_before(uint64_t t)
{
	for (uint32_t i = 0; i < N.nlive; i++) {
		const struct nic_flow *f = N.live[i];
		uint64_t at;
		if (f->state == F_ACTIVE || (f->state == F_WAIT && startable(f, &at) && at < t))
			return 0;
	}
	return 1;
}

uint64_t nic_unread_bound(uint64_t real_now, uint64_t stale_ns, int (*away)(uint32_t wconn),
			  int (*hold)(uint32_t wconn), uint64_t soft_ns)
{
	uint64_t b = UINT64_MAX;
	for (uint32_t i = 0; i < N.nlive; i++) {
		struct nic_flow *f = N.live[i];
		/* done_real may be later than real_now (a flow that finished
		 * during this advance): not stale. A lazy one holds from when it
		 * is wanted: a flow-control credit that arrived long before its
		 * sender said it will read it was let go at once, and counted as
		 * held 200 ms, when it was read a few microseconds later (3 to 5
		 * such in nccl_check correctness under nic; it had held nothing,
		 * not being wanted before). */
		uint64_t since = f->lazy && f->want_real > f->done_real ? f->want_real : f->done_real;
		uint64_t age = real_now > since ? real_now - since : 0;
		if (f->state != F_DONE || f->read)
			continue;
		f->why = REL_HELD;
		if (f->gated || (f->lazy && !f->wanted) || (f->soft && !f->wanted && away && away(f->wconn)))
			continue; /* (its reader cannot act on it yet) */
		if (age > stale_ns) {
			f->why = REL_STALE;
			continue;
		}
		if (f->soft && hold && age > soft_ns && (!f->wanted || !hold(f->wconn))) {
			f->why = REL_SOFT;
			continue;
		}
		if (f->done_t + f->latency < b)
			b = f->done_t + f->latency;
	}
	return b;
}
