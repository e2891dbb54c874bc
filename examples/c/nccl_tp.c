/* Tensor-parallel inference with NCCL, simulated without a GPU.
 *
 * A small integer MLP language model (random weights from a fixed seed):
 * each of the world's ranks holds a slice of every layer's hidden units
 * (Megatron's column-then-row split), so every layer ends in one
 * ncclAllReduce of the partial outputs. Host buffers and stream NULL: the
 * shim is NCCL (docs/nccl.md), which real NCCL is not, so run it under
 * the shim:
 *
 *   build/tools/unirun -n 4 --config examples/configs/default.yaml -- build/examples/c/nccl_tp
 *
 * Rank 0 shares the unique id through a file named after the session
 * (UNI_SESSION, which unirun sets; else MASTER_PORT) in $TMPDIR or /tmp.
 * Integer arithmetic, so the prediction is the same for every world size
 * for every world size; the time per token is what the
 * program's own clock says, which under the shim is the simulated one.
 *
 * Usage: nccl_tp [TOKENS]   (8 by default) */
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

#define CHECK_NCCL(call)                                                                              \
	do {                                                                                          \
		ncclResult_t r_ = (call);                                                             \
		if (r_ != ncclSuccess) {                                                              \
			fprintf(stderr, "rank %d: %s: %s (%s)\n", rank, #call, ncclGetErrorString(r_), \
				ncclGetLastError(NULL));                                              \
			exit(1);                                                                      \
		}                                                                                     \
	} while (0)

static int rank, world;

static uint64_t g_seed = 42;
static int8_t rnd_weight(void)
{
	g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
	return (int8_t)((int)(g_seed >> 60) - 8) / 2; /* -4..3 */
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void id_path(char *out, size_t n)
{
	const char *tag = getenv("UNI_SESSION");
	if (!tag || !*tag)
		tag = getenv("MASTER_PORT");
	const char *dir = getenv("TMPDIR");
	snprintf(out, n, "%s/nccl_tp-id.%s", dir && *dir ? dir : "/tmp", tag ? tag : "default");
}

/* Rank 0 makes the id and writes it (atomically: a file renamed into
 * place); the others wait for it. */
static ncclUniqueId share_id(void)
{
	char path[512], tmp[600];
	id_path(path, sizeof(path));
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

int main(int argc, char **argv)
{
	const char *r = getenv("RANK"), *w = getenv("WORLD_SIZE");
	if (!r || !w) {
		fprintf(stderr, "nccl_tp: RANK and WORLD_SIZE must be set (run it with unirun or torchrun)\n");
		return 2;
	}
	rank = atoi(r);
	world = atoi(w);
	int tokens = argc > 1 ? atoi(argv[1]) : 8;
	if (world < 1 || rank < 0 || rank >= world || HIDDEN % world || tokens < 1) {
		fprintf(stderr, "nccl_tp: rank %d of %d: the world must divide %d, tokens > 0\n", rank, world, HIDDEN);
		return 2;
	}
	int part = HIDDEN / world, lo = rank * part;

	/* Every rank draws the whole model from the seed and keeps its slice. */
	int8_t *emb = malloc((size_t)VOCAB * DIM), *head = malloc((size_t)VOCAB * DIM);
	int8_t *w1 = malloc((size_t)LAYERS * part * DIM), *w2 = malloc((size_t)LAYERS * DIM * part);
	for (size_t i = 0; i < (size_t)VOCAB * DIM; i++)
		emb[i] = rnd_weight();
	for (int l = 0; l < LAYERS; l++) {
		for (int h = 0; h < HIDDEN; h++)
			for (int d = 0; d < DIM; d++) {
				int8_t v = rnd_weight();
				if (h >= lo && h < lo + part)
					w1[((size_t)l * part + (size_t)(h - lo)) * DIM + (size_t)d] = v;
			}
		for (int d = 0; d < DIM; d++)
			for (int h = 0; h < HIDDEN; h++) {
				int8_t v = rnd_weight();
				if (h >= lo && h < lo + part)
					w2[((size_t)l * DIM + (size_t)d) * part + (size_t)(h - lo)] = v;
			}
	}
	for (size_t i = 0; i < (size_t)VOCAB * DIM; i++)
		head[i] = rnd_weight();

	ncclComm_t comm;
	CHECK_NCCL(ncclCommInitRank(&comm, world, share_id(), rank));

	int32_t x[DIM], y[DIM], hid[HIDDEN];
	int tok = 1, *pred = malloc((size_t)tokens * sizeof(int));
	double t0 = now_s();
	for (int t = 0; t < tokens; t++) {
		for (int d = 0; d < DIM; d++)
			x[d] = 16 * emb[(size_t)tok * DIM + (size_t)d];
		for (int l = 0; l < LAYERS; l++) {
			/* this rank's hidden units: relu(W1 x), requantised */
			for (int h = 0; h < part; h++) {
				const int8_t *row = &w1[((size_t)l * part + (size_t)h) * DIM];
				int32_t acc = 0;
				for (int d = 0; d < DIM; d++)
					acc += row[d] * x[d];
				hid[h] = acc > 0 ? acc >> 8 : 0;
			}
			/* its part of W2 h, summed over the ranks */
			for (int d = 0; d < DIM; d++) {
				const int8_t *row = &w2[((size_t)l * DIM + (size_t)d) * part];
				int32_t acc = 0;
				for (int h = 0; h < part; h++)
					acc += row[h] * hid[h];
				y[d] = acc;
			}
			CHECK_NCCL(ncclAllReduce(y, y, DIM, ncclInt32, ncclSum, comm, NULL));
			for (int d = 0; d < DIM; d++) { /* residual, requantised to int8 */
				int32_t v = x[d] + (y[d] >> 12);
				x[d] = v > 127 ? 127 : v < -127 ? -127 : v;
			}
		}
		/* the next token: the best logit (every rank has x) */
		int64_t best = INT64_MIN;
		for (int v = 0; v < VOCAB; v++) {
			int64_t acc = 0;
			for (int d = 0; d < DIM; d++)
				acc += head[(size_t)v * DIM + (size_t)d] * x[d];
			if (acc > best) {
				best = acc;
				tok = v;
			}
		}
		pred[t] = tok;
	}
	double per_token = (now_s() - t0) / tokens;
	if (rank == 0) {
		printf("prediction:");
		for (int t = 0; t < tokens; t++)
			printf(" %d", pred[t]);
		printf("\ntime per token: %.3f ms (%d rank%s, %d AllReduces of %zu bytes per token)\n", per_token * 1e3,
		       world, world == 1 ? "" : "s", LAYERS, sizeof(y));
		fflush(stdout);
	}
	CHECK_NCCL(ncclCommDestroy(comm));
	if (rank == 0) {
		/* every rank joined (the init returned), so each read the id */
		char path[512];
		id_path(path, sizeof(path));
		unlink(path);
	}
	free(emb);
	free(head);
	free(w1);
	free(w2);
	free(pred);
	return 0;
}
