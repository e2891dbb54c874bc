/* The small integer MLP language model the NCCL examples share
 * (nccl_tp.c splits every layer's hidden units over the ranks,
 * nccl_pp.c the layers): random int8 weights drawn from a fixed seed in
 * one order, so that every split of the same model predicts the same
 * tokens; and what both need to start NCCL: RANK and WORLD_SIZE, the
 * unique id shared through a file, the program's own clock.
 *
 * Integer arithmetic throughout: a sum is the same in any order, so a
 * split model's result is exactly the whole model's. */
#ifndef TINY_MLP_H
#define TINY_MLP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#define VOCAB 4096
#define DIM 512
#define HIDDEN 4096
#define LAYERS 4

static int rank, world;

#define CHECK_NCCL(call)                                                                              \
	do {                                                                                          \
		ncclResult_t r_ = (call);                                                             \
		if (r_ != ncclSuccess) {                                                              \
			fprintf(stderr, "rank %d: %s: %s (%s)\n", rank, #call, ncclGetErrorString(r_), \
				ncclGetLastError(NULL));                                              \
			exit(1);                                                                      \
		}                                                                                     \
	} while (0)

/* A rank's part of the model: the embedding and the head whole, and of
 * layers [l0, l1) the hidden units [lo, lo + part). */
struct mlp {
	int l0, l1, lo, part;
	int8_t *emb, *head;
	int8_t *w1; /* [layer - l0][unit - lo][DIM] */
	int8_t *w2; /* [layer - l0][DIM][unit - lo] */
};

static uint64_t g_seed = 42;
static int8_t rnd_weight(void)
{
	g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
	return (int8_t)((int)(g_seed >> 60) - 8) / 2; /* -4..3 */
}

/* Every rank draws the whole model from the seed and keeps its part. */
static void mlp_draw(struct mlp *m, int l0, int l1, int lo, int part)
{
	size_t nl = (size_t)(l1 - l0);
	*m = (struct mlp){ .l0 = l0, .l1 = l1, .lo = lo, .part = part };
	m->emb = malloc((size_t)VOCAB * DIM);
	m->head = malloc((size_t)VOCAB * DIM);
	m->w1 = malloc(nl * (size_t)part * DIM + 1);
	m->w2 = malloc(nl * DIM * (size_t)part + 1);
	if (!m->emb || !m->head || !m->w1 || !m->w2) {
		fprintf(stderr, "rank %d: out of memory for the model\n", rank);
		exit(1);
	}
	for (size_t i = 0; i < (size_t)VOCAB * DIM; i++)
		m->emb[i] = rnd_weight();
	for (int l = 0; l < LAYERS; l++) {
		int keep = l >= l0 && l < l1;
		for (int h = 0; h < HIDDEN; h++)
			for (int d = 0; d < DIM; d++) {
				int8_t v = rnd_weight();
				if (keep && h >= lo && h < lo + part)
					m->w1[((size_t)(l - l0) * part + (size_t)(h - lo)) * DIM + (size_t)d] = v;
			}
		for (int d = 0; d < DIM; d++)
			for (int h = 0; h < HIDDEN; h++) {
				int8_t v = rnd_weight();
				if (keep && h >= lo && h < lo + part)
					m->w2[((size_t)(l - l0) * DIM + (size_t)d) * part + (size_t)(h - lo)] = v;
			}
	}
	for (size_t i = 0; i < (size_t)VOCAB * DIM; i++)
		m->head[i] = rnd_weight();
}

static void mlp_free(struct mlp *m)
{
	free(m->emb);
	free(m->head);
	free(m->w1);
	free(m->w2);
}

/* The input of the first layer for a token. */
static void mlp_embed(const struct mlp *m, int tok, int32_t x[DIM])
{
	for (int d = 0; d < DIM; d++)
		x[d] = 16 * m->emb[(size_t)tok * DIM + (size_t)d];
}

/* Layer l's output from this rank's hidden units: W2 relu(W1 x),
 * requantised; summed over the ranks holding the layer's other units. */
static void mlp_partial(const struct mlp *m, int l, const int32_t x[DIM], int32_t y[DIM])
{
	static int32_t hid[HIDDEN];
	for (int h = 0; h < m->part; h++) {
		const int8_t *row = &m->w1[((size_t)(l - m->l0) * m->part + (size_t)h) * DIM];
		int32_t acc = 0;
		for (int d = 0; d < DIM; d++)
			acc += row[d] * x[d];
		hid[h] = acc > 0 ? acc >> 8 : 0;
	}
	for (int d = 0; d < DIM; d++) {
		const int8_t *row = &m->w2[((size_t)(l - m->l0) * DIM + (size_t)d) * m->part];
		int32_t acc = 0;
		for (int h = 0; h < m->part; h++)
			acc += row[h] * hid[h];
		y[d] = acc;
	}
}

/* The residual: x + y, requantised to int8's range. */
static void mlp_residual(int32_t x[DIM], const int32_t y[DIM])
{
	for (int d = 0; d < DIM; d++) {
		int32_t v = x[d] + (y[d] >> 12);
		x[d] = v > 127 ? 127 : v < -127 ? -127 : v;
	}
}

/* The next token: the best logit. */
static int mlp_next(const struct mlp *m, const int32_t x[DIM])
{
	int64_t best = INT64_MIN;
	int tok = 0;
	for (int v = 0; v < VOCAB; v++) {
		int64_t acc = 0;
		for (int d = 0; d < DIM; d++)
			acc += m->head[(size_t)v * DIM + (size_t)d] * x[d];
		if (acc > best) {
			best = acc;
			tok = v;
		}
	}
	return tok;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RANK and WORLD_SIZE from the launcher (unirun, torchrun). */
static void rank_world(const char *prog)
{
	const char *r = getenv("RANK"), *w = getenv("WORLD_SIZE");
	if (!r || !w) {
		fprintf(stderr, "%s: RANK and WORLD_SIZE must be set (run it with unirun or torchrun)\n", prog);
		exit(2);
	}
	rank = atoi(r);
	world = atoi(w);
}

static void id_path(const char *prog, char *out, size_t n)
{
	const char *tag = getenv("UNI_SESSION");
	if (!tag || !*tag)
		tag = getenv("MASTER_PORT");
	const char *dir = getenv("TMPDIR");
	snprintf(out, n, "%s/%s-id.%s", dir && *dir ? dir : "/tmp", prog, tag ? tag : "default");
}

/* Rank 0 makes the id and writes it to a file named after the session
 * (UNI_SESSION, which unirun sets; else MASTER_PORT) in $TMPDIR or /tmp,
 * atomically: a file renamed into place; the others wait for it. */
static ncclUniqueId share_id(const char *prog)
{
	char path[512], tmp[600];
	id_path(prog, path, sizeof(path));
	ncclUniqueId id;
	if (rank == 0) {
		CHECK_NCCL(ncclGetUniqueId(&id));
		snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
		FILE *f = fopen(tmp, "wb");
		if (!f || fwrite(&id, sizeof(id), 1, f) != 1 || fclose(f) != 0 || rename(tmp, path) != 0) {
			fprintf(stderr, "rank 0: cannot write the unique id to %s: %s\n", path, strerror(errno));
			exit(1);
		}
		return id;
	}
	for (int waited = 0;; waited++) {
		FILE *f = fopen(path, "rb");
		if (f) {
			size_t got = fread(&id, sizeof(id), 1, f);
			fclose(f);
			if (got == 1)
				return id;
		}
		if (waited > 60000) {
			fprintf(stderr, "rank %d: no unique id in %s after 60 s (is rank 0 running?)\n", rank, path);
			exit(1);
		}
		usleep(1000);
	}
}

/* Once every rank joined (the init returned, so each read the id). */
static void drop_id(const char *prog)
{
	if (rank == 0) {
		char path[512];
		id_path(prog, path, sizeof(path));
		unlink(path);
	}
}

#endif
