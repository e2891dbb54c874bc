/* Pipeline-parallel inference with NCCL Send/Recv, simulated without a GPU.
 *
 * The model of nccl_tp.c (tiny_mlp.h: the same weights, so the same
 * prediction) split by layers: rank s of the world's n is stage s and
 * holds layers [s L/n, (s+1) L/n); the first stage also embeds, the last
 * also picks the next token. REQUESTS prompts are decoded together, each
 * a micro-batch of one sequence (the GPipe schedule for inference): in
 * every decoding step stage 0 starts request 0, sends its activations to
 * stage 1 (ncclSend, DIM int32) and goes on with request 1 while stage 1
 * works on request 0, and so on; the last stage sends each request's next
 * token back to stage 0 (ncclSend of one int32), which needs it for that
 * request's next step. The sends need no group and no second thread:
 * NCCL's Send ends once its data has a slot in the receiver's FIFO (eight
 * per peer), which the simulated NCCL models (docs/nccl.md, "Flow
 * control"). Host buffers and stream NULL, so run it under the shim:
 *
 *   build/tools/unirun -n 4 --config examples/configs/default.yaml -- build/examples/c/nccl_pp
 *
 * Rank 0 prints request 0's tokens, every request's with more than one,
 * the time per token (the decoding time over TOKENS: one token of every
 * request) and the tokens per second, from its own clock, which under
 * the shim is the simulated one.
 *
 * Usage: nccl_pp [TOKENS [REQUESTS]]   (8 and 4 by default) */
#include "tiny_mlp.h"

/* Request r's prompt: one token; request 0's is nccl_tp's. */
static int prompt(int r)
{
	return (1 + 97 * r) % VOCAB;
}

int main(int argc, char **argv)
{
	rank_world("nccl_pp");
	int tokens = argc > 1 ? atoi(argv[1]) : 8, requests = argc > 2 ? atoi(argv[2]) : 4;
	if (world < 1 || rank < 0 || rank >= world || LAYERS % world || tokens < 1 || requests < 1) {
		fprintf(stderr, "nccl_pp: rank %d of %d: the world must divide %d layers, tokens and requests > 0\n",
			rank, world, LAYERS);
		return 2;
	}
	int per = LAYERS / world, first = rank == 0, last = rank == world - 1;
	struct mlp m;
	mlp_draw(&m, rank * per, (rank + 1) * per, 0, HIDDEN);

	ncclComm_t comm;
	CHECK_NCCL(ncclCommInitRank(&comm, world, share_id("nccl_pp"), rank));

	int32_t x[DIM], y[DIM];
	int32_t *tok = malloc((size_t)requests * sizeof(int32_t));
	int32_t *pred = malloc((size_t)requests * (size_t)tokens * sizeof(int32_t));
	for (int r = 0; r < requests; r++)
		tok[r] = prompt(r);
	double t0 = now_s();
	for (int t = 0; t < tokens; t++) {
		for (int r = 0; r < requests; r++) {
			if (first) {
				if (world > 1 && t > 0)
					CHECK_NCCL(ncclRecv(&tok[r], 1, ncclInt32, world - 1, comm, NULL));
				mlp_embed(&m, tok[r], x);
			} else {
				CHECK_NCCL(ncclRecv(x, DIM, ncclInt32, rank - 1, comm, NULL));
			}
			for (int l = m.l0; l < m.l1; l++) {
				mlp_partial(&m, l, x, y);
				mlp_residual(x, y);
			}
			if (!last) {
				CHECK_NCCL(ncclSend(x, DIM, ncclInt32, rank + 1, comm, NULL));
				continue;
			}
			int32_t next = mlp_next(&m, x);
			pred[(size_t)r * tokens + (size_t)t] = next;
			if (world > 1)
				CHECK_NCCL(ncclSend(&next, 1, ncclInt32, 0, comm, NULL));
			else
				tok[r] = next;
		}
		if (first && world > 1 && t > 0) /* the tokens stage 0 took in this step are the last step's */
			for (int r = 0; r < requests; r++)
				pred[(size_t)r * tokens + (size_t)t - 1] = tok[r];
	}
	if (first && world > 1) /* the last step's tokens */
		for (int r = 0; r < requests; r++) {
			CHECK_NCCL(ncclRecv(&tok[r], 1, ncclInt32, world - 1, comm, NULL));
			pred[(size_t)r * tokens + (size_t)tokens - 1] = tok[r];
		}
	double took = now_s() - t0;
	if (first) {
		printf("prediction:");
		for (int t = 0; t < tokens; t++)
			printf(" %d", pred[t]);
		printf("\n");
		if (requests > 1) {
			printf("predictions:");
			for (int r = 0; r < requests; r++) {
				printf(" [");
				for (int t = 0; t < tokens; t++)
					printf(t ? " %d" : "%d", pred[(size_t)r * tokens + (size_t)t]);
				printf("]");
			}
			printf("\n");
		}
		printf("time per token: %.3f ms (%d stage%s, %d request%s, %zu bytes from stage to stage)\n",
		       took / tokens * 1e3, world, world == 1 ? "" : "s", requests, requests == 1 ? "" : "s",
		       sizeof(x));
		printf("tokens per second: %.1f\n", (double)requests * tokens / took);
		fflush(stdout);
	}
	CHECK_NCCL(ncclCommDestroy(comm));
	drop_id("nccl_pp");
	mlp_free(&m);
	free(tok);
	free(pred);
	return 0;
}
