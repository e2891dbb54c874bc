/* unitrace export TRACE --chrome OUT.json --merge TORCH.json [--merge-rank R]
 *
 * Folds a PyTorch profiler trace of one rank (torch.autograd.profiler /
 * torch.profiler export_chrome_trace: the legacy format, a JSON array, or
 * Kineto's object with traceEvents) into the Chrome export, on that rank's
 * timeline. The profiler's times count from when profiling began, which the
 * file does not say, and its clock need not be the trace's (torch 1.13's
 * legacy profiler reads the TSC: real time, while a simulate-mode trace is
 * in virtual time). So the profile is aligned on the rank's Gloo
 * collectives: every "gloo:<op>" span of the profiler is matched, in order
 * and by kind, with a collective the trace recorded for that rank (trace
 * 1.3 `coll` records: the first notice of each), and a time between two
 * anchors is mapped linearly between them (outside them, by the nearest
 * anchor's offset). A profile without Gloo spans whose times look absolute
 * (Kineto's: microseconds since the epoch) is aligned on the session's
 * real-time epoch instead. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uni/common.h"
#include "uni/trace.h"
#include "unitrace.h"

/* A Gloo collective of the rank in the trace: when its first notice left
 * (virtual time) and its kind (the slot's prefix). */
struct coll {
	uint64_t t;
	int kind;
};

static int colls_of(const char *trace, int32_t rank, struct coll **out, size_t *n, uint64_t *epoch_real, char *err,
		    size_t errlen)
{
	struct uni_trace_reader r;
	struct uni_trec t;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	if (uni_trace_open(&r, trace) < 0) {
		snprintf(err, errlen, "%s", r.err);
		return -1;
	}
	*epoch_real = r.hdr.epoch_real_ns;
	while (uni_trace_next(&r, &t) == 1) {
		if (t.rank != rank || t.kind != UNI_TR_OP || !(t.a >> 56))
			continue; /* collectives only (prefix 0: point to point) */
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct coll *p = realloc(*out, cap * sizeof(*p));
			if (!p) {
				free(*out);
				uni_trace_close(&r);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			*out = p;
		}
		(*out)[(*n)++] = (struct coll){.t = t.t0, .kind = (int)(t.a >> 56)};
	}
	uni_trace_close(&r);
	return 0;
}

/* The slot prefix of a profiler span "gloo:<op>" (gloo/types.h), 0 if none. */
static int span_kind(const char *name)
{
	static const struct { const char *op; int kind; } ops[] = {
		{"gather", 1}, {"all_gather", 2}, {"allgather", 2}, {"reduce", 3}, {"all_reduce", 4},
		{"allreduce", 4}, {"scatter", 5}, {"broadcast", 6}, {"barrier", 7}, {"all_to_all", 8},
		{"alltoall", 8},
	};
	if (strncmp(name, "gloo:", 5))
		return 0;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(name + 5, ops[i].op))
			return ops[i].kind;
	return 0;
}

struct span {
	double ts; /* the profiler's ns */
	int kind;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static double num(json_object *o, const char *key, int *ok)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
		*ok = 0;
		return 0;
	}
	*ok = 1;
	return json_object_get_double(v);
}

/* Maps a profiler time (ns) onto the trace's: piecewise linear between the
 * anchors (span start -> collective start), the nearest anchor's offset
 * outside them. The profiler's own clock need not be the virtual one (the
 * legacy profiler reads the TSC), so the two are not a fixed offset apart. */
static int64_t map_time(const double *pa, const double *va, size_t na, double p)
{
	if (p <= pa[0])
		return (int64_t)(va[0] + (p - pa[0]));
	if (p >= pa[na - 1])
		return (int64_t)(va[na - 1] + (p - pa[na - 1]));
	size_t lo = 0, hi = na - 1;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (pa[mid] <= p)
			lo = mid;
		else
			hi = mid;
	}
	double f = pa[hi] > pa[lo] ? (p - pa[lo]) / (pa[hi] - pa[lo]) : 0;
	return (int64_t)(va[lo] + f * (va[hi] - va[lo]));
}

int unitrace_merge(const char *torch_json, int32_t rank, const char *trace, struct unitrace_merge_sink *sink)
{
	char err[300];
	json_object *root = json_object_from_file(torch_json);
	if (!root) {
		fprintf(stderr, "unitrace: %s: not a JSON file (%s)\n", torch_json, json_util_get_last_err());
		return 2;
	}
	json_object *events = root;
	if (json_object_is_type(root, json_type_object) && !json_object_object_get_ex(root, "traceEvents", &events))
		events = NULL;
	if (!events || !json_object_is_type(events, json_type_array)) {
		fprintf(stderr, "unitrace: %s: no profiler events (a JSON array, or an object with traceEvents)\n",
			torch_json);
		json_object_put(root);
		return 2;
	}
	size_t nev = json_object_array_length(events);
	struct span *sp = malloc((nev ? nev : 1) * sizeof(*sp));
	size_t nsp = 0;
	double tmax = 0;
	if (!sp) {
		json_object_put(root);
		return 1;
	}
	for (size_t i = 0; i < nev; i++) {
		json_object *e = json_object_array_get_idx(events, i), *nm;
		int ok;
		double ts = num(e, "ts", &ok);
		if (!ok)
			continue;
		if (ts > tmax)
			tmax = ts;
		int k = json_object_object_get_ex(e, "name", &nm) && json_object_is_type(nm, json_type_string)
				? span_kind(json_object_get_string(nm))
				: 0;
		if (k)
			sp[nsp++] = (struct span){.ts = ts * 1e3, .kind = k};
	}
	if (nsp)
		qsort(sp, nsp, sizeof(*sp), cmp_span);
	struct coll *co = NULL;
	size_t nco = 0;
	uint64_t epoch_real = 0;
	if (colls_of(trace, rank, &co, &nco, &epoch_real, err, sizeof(err)) < 0) {
		fprintf(stderr, "unitrace: %s\n", err);
		free(sp);
		json_object_put(root);
		return 2;
	}
	/* The profiled stretch is a run of the rank's collectives: the first
	 * shift at which every span's kind matches its collective's. */
	double *pa = malloc((nsp ? nsp : 1) * sizeof(*pa)), *va = malloc((nsp ? nsp : 1) * sizeof(*va));
	size_t na = 0, shift = 0, nshift = 0;
	const char *how = NULL;
	if (!pa || !va) {
		free(pa);
		free(va);
		free(sp);
		free(co);
		json_object_put(root);
		return 1;
	}
	if (nsp && nco >= nsp) {
		for (size_t d = 0; d + nsp <= nco; d++) {
			size_t k = 0;
			while (k < nsp && co[d + k].kind == sp[k].kind)
				k++;
			if (k == nsp) {
				if (!nshift)
					shift = d;
				nshift++;
			}
		}
		if (nshift) {
			for (size_t k = 0; k < nsp; k++) {
				pa[na] = sp[k].ts;
				va[na] = (double)co[shift + k].t;
				na++;
			}
			how = "its Gloo spans";
		}
	}
	if (!na && tmax > 1e12) {
		/* Absolute times (microseconds since the epoch): the session's
		 * real-time epoch. */
		pa[0] = (double)epoch_real;
		va[0] = 0;
		na = 1;
		how = "the session's real-time epoch";
	}
	if (!na) {
		fprintf(stderr, "unitrace: %s: cannot align it with rank %d's timeline: %s\n", torch_json, rank,
			!nsp ? "it has no Gloo spans (gloo:*) and its times are not absolute"
			     : "its Gloo spans do not match that rank's collectives in the trace (another rank's "
			       "profile, or a trace without them: simulate mode, trace 1.3)");
		free(pa);
		free(va);
		free(sp);
		free(co);
		json_object_put(root);
		return 2;
	}
	fprintf(stderr, "unitrace: %s: aligned on %s (%zu anchors%s)\n", torch_json, how, na,
		nshift > 1 ? "; the spans also fit elsewhere: took the earliest" : "");
	free(sp);
	free(co);
	for (size_t i = 0; i < nev; i++) {
		json_object *e = json_object_array_get_idx(events, i), *v;
		int ok, okd;
		double ts = num(e, "ts", &ok), dur = num(e, "dur", &okd);
		if (!ok)
			continue;
		const char *ph = json_object_object_get_ex(e, "ph", &v) && json_object_is_type(v, json_type_string)
					 ? json_object_get_string(v)
					 : "X";
		const char *name = json_object_object_get_ex(e, "name", &v) && json_object_is_type(v, json_type_string)
					   ? json_object_get_string(v)
					   : "?";
		int64_t tid = json_object_object_get_ex(e, "tid", &v) && json_object_is_type(v, json_type_int)
				      ? json_object_get_int64(v)
				      : 0;
		json_object *args = json_object_object_get_ex(e, "args", &v) ? v : NULL;
		int64_t t = map_time(pa, va, na, ts * 1e3);
		if (t < 0)
			t = 0;
		int64_t t_end = okd && dur > 0 ? map_time(pa, va, na, (ts + dur) * 1e3) : t;
		sink->event(sink, ph, name, tid, (uint64_t)t, t_end > t ? (uint64_t)(t_end - t) : 0,
			    args ? json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN) : NULL);
	}
	free(pa);
	free(va);
	json_object_put(root);
	return 0;
}
