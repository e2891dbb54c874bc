/* NCCL's PAT algorithm (AllGather and ReduceScatter with one GPU per
 * node): the step generators of NCCL 2.28 (src/include/collectives.h,
 * PatAGAlgorithm and PatRSAlgorithm), ported to C for the simulated
 * NCCL's timing (docs/nccl.md "PAT"). The sequence of steps is the same on
 * every rank except for the data indices (inp, out); a step moves `nelem`
 * elements over dimension d, the peer at distance 2^d:
 *
 *   AllGather      receives from rank + 2^d, sends to rank - 2^d;
 *   ReduceScatter  receives from rank - 2^d, sends to rank + 2^d.
 *
 * Each connection has NCCL_STEPS slots; a post (post_send, post_recv)
 * moves that end of the connection to its next slot, and the message a
 * sender posts is its current slot, (send_off + nelem) elements. AllGather
 * reads slot (its receive step + step_off) and writes its current send
 * slot; ReduceScatter reads its current receive slot and writes (and adds
 * into) send slot (its send step + step_off). */
#ifndef UNI_NCCL_PAT_H
#define UNI_NCCL_PAT_H

#include <stddef.h>

#define UNI_PAT_STEPS 8      /* NCCL_STEPS */
#define UNI_PAT_PARALLEL 16  /* NCCL_PAT_NWORKERS / WARP_SIZE */

struct uni_pat_step {
	int recv_dim, send_dim; /* -1: none */
	long recv_off, send_off; /* elements into the slot */
	int step_off;
	int post_recv, post_send;
	long nelem;
	int last;  /* 2: the last step */
	int skip;  /* nothing moves in this step */
	size_t inp, out; /* element index into the input and output buffers */
};

struct uni_pat {
	int rs; /* 1 ReduceScatter, 0 AllGather */
	size_t offset, end, count;
	long chunk, nelem;
	int rank, nranks, nr_pow2, post_freq, last_a, parallel, agg_factor;
	int as, a, agg_delta, scale, phase;
	int send_skipped, step_offset; /* ReduceScatter */
	int as_dim, v, bit_count[32], bit_zero_step[32]; /* AllGather */
};

/* NCCL's constructor, for elements of one byte (NCCL compares its
 * step_size, chunkCount * sizeof(T), with channelSize * sizeof(T): in
 * bytes, what this does with both counted in bytes): step_size the
 * chunk's bytes; step_depth NCCL_STEPS,
 * max_parallel NCCL_PAT_NWORKERS / WARP_SIZE; [offset, end) the channel's
 * part of a rank's block of `count` elements, in chunks of `chunk`. */
void uni_pat_init(struct uni_pat *p, int rs, long step_size, int step_depth, int max_parallel, size_t offset,
		  size_t end, size_t count, long chunk, int rank, int nranks);
void uni_pat_next(struct uni_pat *p, struct uni_pat_step *ps);

#endif
