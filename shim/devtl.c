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
	memset(tl->s, 0, sizeof(tl->s));
}

double uni_devtl_factor(const struct uni_devtl *tl, const char *name)
{
	for (size_t i = 0; name && i < tl->nrules; i++)
		if (tl->rules[i].match && fnmatch(tl->rules[i].match, name, 0) == 0)
			return tl->rules[i].slowdown;
	return tl->slowdown;
}

static struct uni_devtl_stream *stream_of(struct uni_devtl *tl, uint64_t id, int create)
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

/* Folds the prefix of launches whose records came into vend. */
static void fold(struct uni_devtl_stream *s)
{
	size_t k = 0;
	while (k < s->nq && s->q[k].have) {
		uint64_t start = s->q[k].vlaunch > s->vend ? s->q[k].vlaunch : s->vend;
		s->vend = start + s->q[k].vdur;
		k++;
	}
	if (k) {
		memmove(s->q, s->q + k, (s->nq - k) * sizeof(*s->q));
		s->nq -= k;
	}
}

int uni_devtl_launch(struct uni_devtl *tl, uint64_t stream, uint32_t correlation, uint64_t vlaunch)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 1);
	if (!s) {
		tl->dropped++;
		return -1;
	}
	if (s->nq == s->capq) {
		size_t cap = s->capq ? 2 * s->capq : 64;
		struct uni_devtl_launch *q = realloc(s->q, cap * sizeof(*q));
		if (!q) {
			tl->dropped++;
			return -1;
		}
		s->q = q;
		s->capq = cap;
	}
	struct uni_devtl_launch *l = &s->q[s->nq++];
	memset(l, 0, sizeof(*l));
	l->correlation = correlation;
	l->vlaunch = vlaunch;
	/* Its record may have come first. */
	for (size_t i = 0; i < tl->norphans; i++) {
		if (tl->orphans[i].correlation == correlation) {
			l->vdur = tl->orphans[i].vdur;
			l->have = 1;
			tl->orphans[i] = tl->orphans[--tl->norphans];
			fold(s);
			break;
		}
	}
	return 0;
}

void uni_devtl_record(struct uni_devtl *tl, uint32_t correlation, uint64_t start, uint64_t end, const char *name)
{
	uint64_t vdur = end > start ? (uint64_t)((double)(end - start) * uni_devtl_factor(tl, name) + 0.5) : 0;
	for (size_t i = 0; i < UNI_DEVTL_STREAMS; i++) {
		struct uni_devtl_stream *s = &tl->s[i];
		if (!s->used)
			continue;
		for (size_t k = 0; k < s->nq; k++) {
			if (s->q[k].correlation == correlation && !s->q[k].have) {
				s->q[k].vdur = vdur;
				s->q[k].have = 1;
				fold(s);
				return;
			}
		}
	}
	if (tl->norphans == UNI_DEVTL_PENDING) {
		tl->dropped++;
		return;
	}
	tl->orphans[tl->norphans++] = (struct uni_devtl_orphan){.correlation = correlation, .vdur = vdur};
}

int uni_devtl_stream_end(struct uni_devtl *tl, uint64_t stream, uint64_t *vend)
{
	struct uni_devtl_stream *s = stream_of(tl, stream, 0);
	if (!s) {
		*vend = 0;
		return 1;
	}
	fold(s);
	*vend = s->vend;
	return s->nq == 0;
}
