/* --compute-from: the recorded compute of one rank, per thread key and
 * event index (uni/compute_from.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uni/compute_from.h"
#include "uni/trace.h"

uint64_t uni_cf_child_key(uint64_t parent, uint32_t k)
{
	/* splitmix64 of the pair: keys of different paths do not meet in
	 * any program of sane size. */
	uint64_t z = parent * 0x9e3779b97f4a7c15ull + k + 0x632be59bd9b4e019ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
}

struct building {
	struct uni_cf_thread t;
	int32_t tid;
	uint32_t cap;
	int live; /* its tid names it (a later thread record of the tid ends it) */
};

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = ((const struct uni_cf_thread *)a)->key, y = ((const struct uni_cf_thread *)b)->key;
	return x < y ? -1 : x > y;
}

static void fail(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

static int check_hdr(const struct uni_trace_hdr *h, size_t len, char *err, size_t errlen)
{
	if (memcmp(h->magic, UNI_TRACE_MAGIC, 8) != 0) {
		fail(err, errlen, "not a uniference trace (no UNITRACE magic)");
		return -1;
	}
	if (h->version_major != UNI_TRACE_VERSION_MAJOR || h->hdr_size < UNI_TRACE_HDR_SIZE ||
	    h->rec_size != UNI_TRACE_REC_SIZE || h->hdr_size > len) {
		fail(err, errlen, "a trace format this version cannot read");
		return -1;
	}
	if (h->mode != 1) {
		fail(err, errlen, "not a simulate-mode trace (it has no compute records)");
		return -1;
	}
	if (h->version_minor < 5) {
		fail(err, errlen, "written before trace format 1.5: its threads have no keys (run it again)");
		return -1;
	}
	return 0;
}

int uni_cf_check_file(const char *path, char *err, size_t errlen)
{
	struct uni_trace_hdr h;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char m[160];
		snprintf(m, sizeof(m), "cannot open it: %s", strerror(errno));
		fail(err, errlen, m);
		return -1;
	}
	ssize_t n = read(fd, &h, sizeof(h));
	off_t size = lseek(fd, 0, SEEK_END);
	close(fd);
	if (n != (ssize_t)sizeof(h)) {
		fail(err, errlen, "not a uniference trace (too short)");
		return -1;
	}
	return check_hdr(&h, size > 0 ? (size_t)size : 0, err, errlen);
}

int uni_cf_load(const void *buf, size_t len, int rank, struct uni_cf *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct uni_trace_hdr h;
	if (len < sizeof(h)) {
		fail(err, errlen, "not a uniference trace (too short)");
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (check_hdr(&h, len, err, errlen) != 0)
		return -1;
	struct building *b = NULL;
	uint32_t nb = 0, capb = 0, last = 0;
	const unsigned char *p = (const unsigned char *)buf + h.hdr_size;
	size_t nrec = (len - h.hdr_size) / UNI_TRACE_REC_SIZE;
	for (size_t i = 0; i < nrec; i++) {
		/* The rank first: most records are other ranks' (a 64-rank
		 * trace: 63 in 64), and the whole record costs more. */
		int32_t rr;
		memcpy(&rr, p + i * UNI_TRACE_REC_SIZE + offsetof(struct uni_trec, rank), sizeof(rr));
		if (rr != rank)
			continue;
		struct uni_trec r;
		memcpy(&r, p + i * UNI_TRACE_REC_SIZE, sizeof(r));
		if (r.tid <= 0)
			continue;
		if (r.kind == UNI_TR_THREAD) {
			for (uint32_t j = 0; j < nb; j++)
				if (b[j].tid == r.tid)
					b[j].live = 0;
			if (nb == capb) {
				uint32_t nc = capb ? 2 * capb : 16;
				struct building *nbuf = realloc(b, nc * sizeof(*b));
				if (!nbuf)
					goto oom;
				b = nbuf;
				capb = nc;
			}
			memset(&b[nb], 0, sizeof(b[nb]));
			b[nb].t.key = r.off;
			b[nb].tid = r.tid;
			b[nb].live = 1;
			last = nb++;
		}
		if (!uni_trec_kind_indexed(r.kind))
			continue;
		struct building *t = NULL;
		if (last < nb && b[last].tid == r.tid && b[last].live)
			t = &b[last];
		else
			for (uint32_t j = nb; j-- > 0;)
				if (b[j].tid == r.tid && b[j].live) {
					t = &b[j];
					last = j;
					break;
				}
		/* An index far past the file's records is not a real one (a
		 * damaged file): not worth gigabytes of table. */
		if (!t || r.seq >= (1u << 28) || (size_t)r.seq > 4 * nrec + 1024)
			continue;
		if (r.seq >= t->cap) {
			uint32_t nc = t->cap ? t->cap : 64;
			while (nc <= r.seq)
				nc *= 2;
			struct uni_cf_ev *ne = realloc(t->t.ev, (size_t)nc * sizeof(*ne));
			if (!ne)
				goto oom;
			memset(ne + t->cap, 0, (size_t)(nc - t->cap) * sizeof(*ne));
			t->t.ev = ne;
			t->cap = nc;
		}
		if (r.seq >= t->t.n)
			t->t.n = r.seq + 1;
		struct uni_cf_ev *e = &t->t.ev[r.seq];
		if (e->kind)
			continue; /* the first record of an event says what it was */
		e->kind = (uint8_t)r.kind;
		if (r.kind == UNI_TR_COMPUTE) {
			e->v = r.off;
			out->stretches++;
		} else if (r.kind == UNI_TR_SEND || r.kind == UNI_TR_RECV) {
			e->v = r.len;
		}
	}
	if (!nb) {
		free(b);
		char m[96];
		snprintf(m, sizeof(m), "no thread of rank %d in it", rank);
		fail(err, errlen, m);
		return -1;
	}
	out->threads = calloc(nb, sizeof(*out->threads));
	if (!out->threads) {
		for (uint32_t j = 0; j < nb; j++)
			free(b[j].t.ev);
		free(b);
		goto oom;
	}
	for (uint32_t j = 0; j < nb; j++)
		out->threads[j] = b[j].t;
	out->nthreads = nb;
	free(b);
	qsort(out->threads, nb, sizeof(*out->threads), cmp_key);
	for (uint32_t j = 1; j < nb; j++)
		if (out->threads[j].key == out->threads[j - 1].key)
			out->threads[j].ambiguous = out->threads[j - 1].ambiguous = 1;
	return 0;
oom:
	fail(err, errlen, "out of memory");
	if (b) {
		for (uint32_t j = 0; j < nb; j++)
			free(b[j].t.ev);
		free(b);
	}
	uni_cf_free(out);
	return -1;
}

const struct uni_cf_thread *uni_cf_find(const struct uni_cf *cf, uint64_t key)
{
	if (!key || !cf->nthreads)
		return NULL;
	uint32_t lo = 0, hi = cf->nthreads;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cf->threads[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < cf->nthreads && cf->threads[lo].key == key && !cf->threads[lo].ambiguous)
		return &cf->threads[lo];
	return NULL;
}

void uni_cf_free(struct uni_cf *cf)
{
	for (uint32_t j = 0; j < cf->nthreads; j++)
		free(cf->threads[j].ev);
	free(cf->threads);
	memset(cf, 0, sizeof(*cf));
}
