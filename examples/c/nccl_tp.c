/* Tensor-parallel inference with NCCL, simulated without a GPU.
 *
 * A small integer MLP language model (random weights from a fixed seed,
 * tiny_mlp.h): each of the world's ranks holds a slice of every layer's
 * hidden units (Megatron's column-then-row split), so every layer ends in
 * one ncclAllReduce of the partial outputs. Host buffers and stream NULL:
 * the shim is NCCL (docs/nccl.md), which real NCCL is not, so run it under
 * the shim:
 *
 *   build/tools/unirun -n 4 --config examples/configs/default.yaml -- build/examples/c/nccl_tp
 *
 * Rank 0 shares the unique id through a file named after the session
 * (UNI_SESSION, which unirun sets; else MASTER_PORT) in $TMPDIR or /tmp.
 * Integer arithmetic, so the prediction is the same for every world size
 * (and the same as nccl_pp's, the pipeline over the same model); the time
 * per token is what the program's own clock says, which under the shim is
 * the simulated one.
 *
 * Usage: nccl_tp [TOKENS]   (8 by default) */
#include "tiny_mlp.h"

int main(int argc, char **argv)
{
	rank_world("nccl_tp");
	int tokens = argc > 1 ? atoi(argv[1]) : 8;
	if (world < 1 || rank < 0 || rank >= world || HIDDEN % world || tokens < 1) {
		fprintf(stderr, "nccl_tp: rank %d of %d: the world must divide %d, tokens > 0\n", rank, world, HIDDEN);
		return 2;
	}
	int part = HIDDEN / world;
	struct mlp m;
	mlp_draw(&m, 0, LAYERS, rank * part, part);

	ncclComm_t comm;
	CHECK_NCCL(ncclCommInitRank(&comm, world, share_id("nccl_tp"), rank));

	int32_t x[DIM], y[DIM];
	int tok = 1, *pred = malloc((size_t)tokens * sizeof(int));
	double t0 = now_s();
	for (int t = 0; t < tokens; t++) {
		mlp_embed(&m, tok, x);
		for (int l = 0; l < LAYERS; l++) {
			mlp_partial(&m, l, x, y);
			CHECK_NCCL(ncclAllReduce(y, y, DIM, ncclInt32, ncclSum, comm, NULL));
			mlp_residual(x, y);
		}
		pred[t] = tok = mlp_next(&m, x); /* every rank has x */
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
	drop_id("nccl_tp");
	mlp_free(&m);
	free(pred);
	return 0;
}
