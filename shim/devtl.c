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
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++) {
		free(tl->s[i].q);
		free(tl->s[i].owed);
	}
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

void uni_devtl_alias(struct uni_devtl *tl, uint32_t correlation, uint32_t of)
{
	if (tl->launches && tl->launches[correlation % UNI_DEVTL_LAUNCHES].correlation == correlation)
		tl->launches[correlation % UNI_DEVTL_LAUNCHES].alias = of;
}

static uint64_t launch_time(const struct uni_devtl *tl, uint32_t correlation)
{
	if (!tl->launches)
		return 0;
	const struct uni_devtl_launch *l = &tl->launches[correlation % UNI_DEVTL_LAUNCHES];
	return l->correlation == correlation ? l->vlaunch : 0;
}

/* Inserts e into the stream's queue, kept sorted by (seq, rstart); an
 * entry behind what was folded already goes at the folded position.
 * Returns its position, 0 when it could not be kept. */
static uint64_t insert(struct uni_devtl *tl, uint32_t stream, struct uni_devtl_ent e)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 1);
	if (!s) {
		tl->dropped++;
		return 0;
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
			return 0;
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
	return e.seq;
}

static int owe(struct uni_devtl *tl, struct uni_devtl_stream *s, uint64_t seq, uint32_t correlation)
{
	if (s->nowed == s->capowed) {
		size_t cap = s->capowed ? 2 * s->capowed : 16;
		struct uni_devtl_owed *o = realloc(s->owed, cap * sizeof(*o));
		if (!o) {
			tl->dropped++;
			return -1;
		}
		s->owed = o;
		s->capowed = cap;
	}
	s->owed[s->nowed++] = (struct uni_devtl_owed){.seq = seq, .correlation = correlation};
	return 0;
}

/* Removes what s owes for (seq, correlation); correlation 0: the op at seq. */
static int paid(struct uni_devtl_stream *s, uint64_t seq, uint32_t correlation)
{
	for (size_t i = 0; i < s->nowed; i++)
		if (correlation ? s->owed[i].correlation == correlation
				: (s->owed[i].correlation == 0 && s->owed[i].seq == seq)) {
			s->owed[i] = s->owed[--s->nowed];
			return 1;
		}
	return 0;
}

void uni_devtl_expect(struct uni_devtl *tl, uint32_t stream, uint32_t correlation)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 1);
	if (!s) {
		tl->dropped++;
		return;
	}
	owe(tl, s, uni_devtl_at(correlation), correlation);
}

static const struct uni_devtl_evrec *find_rec(const struct uni_devtl *tl, uint64_t ev, uint64_t seq, int before);

/* Nothing owed on s up to upto, nor on the streams that its waits up to
 * there wait for (up to their events). */
static int complete_s(const struct uni_devtl *tl, const struct uni_devtl_stream *s, uint64_t upto, int depth)
{
	for (size_t k = 0; k < s->nowed; k++)
		if (s->owed[k].seq <= upto)
			return 0;
	for (size_t k = 0; k < s->nq && s->q[k].seq <= upto; k++) {
		const struct uni_devtl_ent *e = &s->q[k];
		if (e->kind != UNI_DEVTL_WAIT || depth >= 16)
			continue;
		const struct uni_devtl_evrec *r = find_rec(tl, e->ev, e->evseq, 0);
		if (!r || r->done)
			continue;
		/* stream_of does not change the table without create */
		const struct uni_devtl_stream *o = stream_of((struct uni_devtl *)tl, r->stream, 0);
		if (o && o != s && !complete_s(tl, o, r->seq, depth + 1))
			return 0;
	}
	return 1;
}

int uni_devtl_complete(const struct uni_devtl *tl, uint32_t stream, uint64_t upto)
{
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++) {
		const struct uni_devtl_stream *s = &tl->s[i];
		if (s->used && (stream == UINT32_MAX || s->id == stream) && !complete_s(tl, s, upto, 0))
			return 0;
	}
	return 1;
}

void uni_devtl_give_up(struct uni_devtl *tl, uint32_t stream, uint64_t upto)
{
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++) {
		struct uni_devtl_stream *s = &tl->s[i];
		if (!s->used || (stream != UINT32_MAX && s->id != stream))
			continue;
		for (size_t k = 0; k < s->nowed;)
			if (s->owed[k].correlation && s->owed[k].seq <= upto) {
				s->owed[k] = s->owed[--s->nowed];
				tl->given_up++;
			} else {
				k++;
			}
	}
}

void uni_devtl_record(struct uni_devtl *tl, uint32_t stream, uint32_t correlation, uint64_t start, uint64_t end,
		      const char *name)
{
	uint64_t vdur = end > start ? (uint64_t)((double)(end - start) * uni_devtl_factor(tl, name) + 0.5) : 0;
	tl->kernels++;
	/* Paid on its stream (where it was expected, normally); a driver
	 * launch's record pays its runtime launch. */
	uint32_t ids[2] = {correlation, 0};
	const struct uni_devtl_launch *l = tl->launches ? &tl->launches[correlation % UNI_DEVTL_LAUNCHES] : NULL;
	if (l && l->correlation == correlation)
		ids[1] = l->alias;
	struct uni_devtl_stream *own = stream_of(tl, stream, 0);
	for (int j = 0; j < 2 && ids[j]; j++)
		if (!own || !paid(own, 0, ids[j]))
			for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++)
				if (tl->s[i].used && &tl->s[i] != own && paid(&tl->s[i], 0, ids[j]))
					break;
	insert(tl, stream,
	       (struct uni_devtl_ent){.kind = UNI_DEVTL_KERNEL, .seq = uni_devtl_at(correlation), .rstart = start,
				      .vstart = launch_time(tl, correlation), .vdur = vdur});
}

int uni_devtl_op_open(struct uni_devtl *tl, uint32_t stream, uint64_t *seqp)
{
	uint64_t seq = *seqp;
	struct uni_devtl_stream *s = stream_of(tl, stream, 1);
	if (!s) {
		tl->dropped++;
		return -1;
	}
	uint64_t at = insert(tl, stream, (struct uni_devtl_ent){.kind = UNI_DEVTL_OP, .seq = seq, .open = 1});
	if (!at)
		return -1;
	if (owe(tl, s, at, 0) < 0) {
		for (size_t k = 0; k < s->nq; k++) /* not owed: closed at once, empty */
			if (s->q[k].kind == UNI_DEVTL_OP && s->q[k].open && s->q[k].seq == at)
				s->q[k].open = 0;
		return -1;
	}
	*seqp = at;
	return 0;
}

void uni_devtl_op_close(struct uni_devtl *tl, uint32_t stream, uint64_t seq, uint64_t vstart, uint64_t vdur)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 0);
	if (!s)
		return;
	for (size_t k = 0; k < s->nq; k++)
		if (s->q[k].kind == UNI_DEVTL_OP && s->q[k].open && s->q[k].seq == seq) {
			s->q[k].open = 0;
			s->q[k].vstart = vstart;
			s->q[k].vdur = vdur;
			paid(s, s->q[k].seq, 0);
			return;
		}
}

static struct uni_devtl_event *event_of(struct uni_devtl *tl, uint64_t key, int create)
{
	if (!key || key == UINT64_MAX)
		return NULL;
	size_t h = (size_t)((key >> 4) * 0x9e3779b97f4a7c15ull >> 56) % UNI_DEVTL_EVENTS;
	struct uni_devtl_event *tomb = NULL;
	for (size_t i = 0; i < UNI_DEVTL_EVENTS; i++) {
		struct uni_devtl_event *e = &tl->ev[(h + i) % UNI_DEVTL_EVENTS];
		if (e->key == key)
			return e;
		if (e->key == UINT64_MAX && !tomb)
			tomb = e;
		if (!e->key) {
			if (!create)
				return NULL;
			if (tomb)
				e = tomb;
			e->key = key;
			return e;
		}
	}
	if (create && tomb) {
		tomb->key = key;
		return tomb;
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
	/* The record's position is where the entry went (a late one goes to
	 * the folded position), so that folding it finds the record. */
	uint64_t at = insert(tl, stream, (struct uni_devtl_ent){.kind = UNI_DEVTL_EVENT, .seq = seq, .ev = ev});
	if (!at)
		return;
	e->rec[e->nrec % UNI_DEVTL_EVENT_HIST] = (struct uni_devtl_evrec){.seq = at, .stream = stream};
	e->nrec++;
}

static void forget(struct uni_devtl_event *e)
{
	memset(e, 0, sizeof(*e));
	e->key = UINT64_MAX; /* a tombstone: searches go on past it */
}

void uni_devtl_event_forget(struct uni_devtl *tl, uint64_t ev)
{
	struct uni_devtl_event *e = event_of(tl, ev, 0);
	if (!e)
		return;
	if (e->waits)
		e->doomed = e->nrec + 1;
	else
		forget(e);
}

/* The event's record at seq exactly (before 0), or its latest before seq
 * (1); NULL: none remembered. */
static const struct uni_devtl_evrec *find_rec(const struct uni_devtl *tl, uint64_t ev, uint64_t seq, int before)
{
	/* event_of does not change the table without create */
	const struct uni_devtl_event *e = event_of((struct uni_devtl *)tl, ev, 0);
	const struct uni_devtl_evrec *best = NULL;
	unsigned n = e ? (e->nrec < UNI_DEVTL_EVENT_HIST ? e->nrec : UNI_DEVTL_EVENT_HIST) : 0;
	for (unsigned i = 0; i < n; i++) {
		const struct uni_devtl_evrec *r = &e->rec[i];
		if (!before && r->seq == seq)
			return r;
		if (before && r->seq < seq && (!best || r->seq > best->seq))
			best = r;
	}
	return best;
}

static struct uni_devtl_evrec *evrec(struct uni_devtl *tl, uint64_t ev, uint64_t seq, int before)
{
	return (struct uni_devtl_evrec *)find_rec(tl, ev, seq, before);
}

void uni_devtl_wait(struct uni_devtl *tl, uint32_t stream, uint64_t ev, uint64_t seq)
{
	struct uni_devtl_evrec *r = evrec(tl, ev, seq, 1);
	/* waiting for an event never recorded does nothing (CUDA) */
	if (r && insert(tl, stream,
			(struct uni_devtl_ent){.kind = UNI_DEVTL_WAIT, .seq = seq, .ev = ev, .evseq = r->seq}))
		event_of(tl, ev, 0)->waits++;
}

static void fold(struct uni_devtl *tl, struct uni_devtl_stream *s, uint64_t upto, int depth)
{
	size_t k = 0;
	for (; k < s->nq && s->q[k].seq <= upto; k++) {
		struct uni_devtl_ent *e = &s->q[k];
		if (e->kind == UNI_DEVTL_OP && e->open) { /* not known yet: stop before it */
			upto = e->seq - 1;
			break;
		}
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
			struct uni_devtl_event *ee = event_of(tl, e->ev, 0);
			if (ee && ee->waits && !--ee->waits && ee->doomed) {
				if (ee->doomed == ee->nrec + 1)
					forget(ee);
				else
					ee->doomed = 0; /* a new event with its handle */
			}
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

int uni_devtl_event_where(const struct uni_devtl *tl, uint64_t ev, uint32_t *stream, uint64_t *seq)
{
	const struct uni_devtl_evrec *r = find_rec(tl, ev, UINT64_MAX, 1);
	if (!r)
		return 0;
	*stream = r->stream;
	*seq = r->seq;
	return 1;
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
