/* The device timeline: see devtl.h. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "devtl.h"

void uni_devtl_init(struct uni_devtl *tl, const struct uni_devtl_rule *rules, size_t nrules, double slowdown)
{
	memset(tl, 0, sizeof(*tl));
	tl->rules = rules;
	tl->nrules = nrules;
	tl->slowdown = slowdown > 0 ? slowdown : 1.0;
}

void uni_devtl_free(struct uni_devtl *tl)
{
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++)
		free(tl->s[i].q);
	free(tl->launches);
	memset(tl->s, 0, sizeof(tl->s));
	tl->launches = NULL;
}

double uni_devtl_factor(const struct uni_devtl *tl, const char *name)
{
	for (size_t i = 0; name && i < tl->nrules; i++)
		if (tl->rules[i].match && fnmatch(tl->rules[i].match, name, 0) == 0)
			return tl->rules[i].slowdown;
	return tl->slowdown;
}

static struct uni_devtl_stream *stream_of(struct uni_devtl *tl, uint32_t id, int create)
{
	struct uni_devtl_stream *free_s = NULL;
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++) {
		if (tl->s[i].used && tl->s[i].id == id)
			return &tl->s[i];
		if (!tl->s[i].used && !free_s)
			free_s = &tl->s[i];
	}
	if (!create || !free_s)
		return NULL;
	free_s->used = 1;
	free_s->id = id;
	return free_s;
}

void uni_devtl_launch(struct uni_devtl *tl, uint32_t correlation, uint64_t vlaunch)
{
	if (!tl->launches && !(tl->launches = calloc(UNI_DEVTL_LAUNCHES, sizeof(*tl->launches)))) {
		tl->dropped++;
		return;
	}
	tl->launches[correlation % UNI_DEVTL_LAUNCHES] =
		(struct uni_devtl_launch){.correlation = correlation, .vlaunch = vlaunch};
}

static uint64_t launch_time(const struct uni_devtl *tl, uint32_t correlation)
{
	if (!tl->launches)
		return 0;
	const struct uni_devtl_launch *l = &tl->launches[correlation % UNI_DEVTL_LAUNCHES];
	return l->correlation == correlation ? l->vlaunch : 0;
}

/* Inserts e into the stream's queue, kept sorted by (seq, rstart); an
 * entry behind what was folded already goes at the folded position. */
static void insert(struct uni_devtl *tl, uint32_t stream, struct uni_devtl_ent e)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 1);
	if (!s) {
		tl->dropped++;
		return;
	}
	if (s->folded && e.seq <= s->folded) {
		if (e.kind == UNI_DEVTL_KERNEL)
			tl->late++;
		e.seq = s->folded;
	}
	if (s->nq == s->capq) {
		size_t cap = s->capq ? 2 * s->capq : 16;
		struct uni_devtl_ent *q = realloc(s->q, cap * sizeof(*q));
		if (!q) {
			tl->dropped++;
			return;
		}
		s->q = q;
		s->capq = cap;
	}
	size_t k = s->nq;
	while (k > 0 && (s->q[k - 1].seq > e.seq || (s->q[k - 1].seq == e.seq && s->q[k - 1].rstart > e.rstart)))
		k--;
	memmove(s->q + k + 1, s->q + k, (s->nq - k) * sizeof(*s->q));
	s->q[k] = e;
	s->nq++;
}

void uni_devtl_record(struct uni_devtl *tl, uint32_t stream, uint32_t correlation, uint64_t start, uint64_t end,
		      const char *name)
{
	uint64_t vdur = end > start ? (uint64_t)((double)(end - start) * uni_devtl_factor(tl, name) + 0.5) : 0;
	tl->kernels++;
	insert(tl, stream,
	       (struct uni_devtl_ent){.kind = UNI_DEVTL_KERNEL, .seq = 4 * (uint64_t)correlation + 2, .rstart = start,
				      .vstart = launch_time(tl, correlation), .vdur = vdur});
}

void uni_devtl_op(struct uni_devtl *tl, uint32_t stream, uint64_t seq, uint64_t vstart, uint64_t vdur)
{
	insert(tl, stream, (struct uni_devtl_ent){.kind = UNI_DEVTL_OP, .seq = seq, .vstart = vstart, .vdur = vdur});
}

static struct uni_devtl_event *event_of(struct uni_devtl *tl, uint64_t key, int create)
{
	if (!key)
		return NULL;
	size_t h = (size_t)((key >> 4) * 0x9e3779b97f4a7c15ull >> 56) % UNI_DEVTL_EVENTS;
	for (size_t i = 0; i < UNI_DEVTL_EVENTS; i++) {
		struct uni_devtl_event *e = &tl->ev[(h + i) % UNI_DEVTL_EVENTS];
		if (e->key == key)
			return e;
		if (!e->key) {
			if (!create)
				return NULL;
			e->key = key;
			return e;
		}
	}
	return NULL;
}

void uni_devtl_event_record(struct uni_devtl *tl, uint32_t stream, uint64_t ev, uint64_t seq)
{
	struct uni_devtl_event *e = event_of(tl, ev, 1);
	if (!e) {
		tl->dropped++;
		return;
	}
	e->rec[e->nrec % UNI_DEVTL_EVENT_HIST] = (struct uni_devtl_evrec){.seq = seq, .stream = stream};
	e->nrec++;
	insert(tl, stream, (struct uni_devtl_ent){.kind = UNI_DEVTL_EVENT, .seq = seq, .ev = ev});
}

/* The event's record at seq exactly (at_or_before 0), or its latest before
 * seq (1); NULL: none remembered. */
static struct uni_devtl_evrec *evrec(struct uni_devtl *tl, uint64_t ev, uint64_t seq, int before)
{
	struct uni_devtl_event *e = event_of(tl, ev, 0);
	struct uni_devtl_evrec *best = NULL;
	unsigned n = e ? (e->nrec < UNI_DEVTL_EVENT_HIST ? e->nrec : UNI_DEVTL_EVENT_HIST) : 0;
	for (unsigned i = 0; i < n; i++) {
		struct uni_devtl_evrec *r = &e->rec[i];
		if (!before && r->seq == seq)
			return r;
		if (before && r->seq < seq && (!best || r->seq > best->seq))
			best = r;
	}
	return best;
}

void uni_devtl_wait(struct uni_devtl *tl, uint32_t stream, uint64_t ev, uint64_t seq)
{
	struct uni_devtl_evrec *r = evrec(tl, ev, seq, 1);
	if (r) /* waiting for an event never recorded does nothing (CUDA) */
		insert(tl, stream,
		       (struct uni_devtl_ent){.kind = UNI_DEVTL_WAIT, .seq = seq, .ev = ev, .evseq = r->seq});
}

static void fold(struct uni_devtl *tl, struct uni_devtl_stream *s, uint64_t upto, int depth)
{
	size_t k = 0;
	for (; k < s->nq && s->q[k].seq <= upto; k++) {
		struct uni_devtl_ent *e = &s->q[k];
		uint64_t start = e->vstart > s->vend ? e->vstart : s->vend;
		switch (e->kind) {
		case UNI_DEVTL_KERNEL:
		case UNI_DEVTL_OP:
			s->vend = start + e->vdur;
			break;
		case UNI_DEVTL_EVENT: {
			struct uni_devtl_evrec *r = evrec(tl, e->ev, e->seq, 0);
			if (r) {
				r->t = s->vend;
				r->done = 1;
			}
			break;
		}
		case UNI_DEVTL_WAIT: {
			struct uni_devtl_evrec *r = evrec(tl, e->ev, e->evseq, 0);
			if (r && !r->done && depth < 16) {
				struct uni_devtl_stream *o = stream_of(tl, r->stream, 0);
				if (o && o != s)
					fold(tl, o, r->seq, depth + 1);
			}
			if (r && r->done && r->t > s->vend)
				s->vend = r->t;
			break;
		}
		}
	}
	if (k) {
		memmove(s->q, s->q + k, (s->nq - k) * sizeof(*s->q));
		s->nq -= k;
	}
	if (upto > s->folded)
		s->folded = upto;
}

uint64_t uni_devtl_stream_end(struct uni_devtl *tl, uint32_t stream, uint64_t upto)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 0);
	if (!s)
		return 0;
	fold(tl, s, upto, 0);
	return s->vend;
}

uint64_t uni_devtl_all_end(struct uni_devtl *tl, uint64_t upto)
{
	uint64_t end = 0;
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++)
		if (tl->s[i].used) {
			fold(tl, &tl->s[i], upto, 0);
			if (tl->s[i].vend > end)
				end = tl->s[i].vend;
		}
	return end;
}

int uni_devtl_event_time(struct uni_devtl *tl, uint64_t ev, uint64_t *t)
{
	struct uni_devtl_evrec *r = evrec(tl, ev, UINT64_MAX, 1);
	if (!r)
		return 0;
	if (!r->done) {
		struct uni_devtl_stream *s = stream_of(tl, r->stream, 0);
		if (s)
			fold(tl, s, r->seq, 0);
	}
	*t = r->t;
	return 1;
}
