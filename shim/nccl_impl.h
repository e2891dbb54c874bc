/* Internals of the simulated NCCL (shim/nccl.c, shim/nccl_reduce.c). */
#ifndef UNI_NCCL_IMPL_H
#define UNI_NCCL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <nccl.h>

#include "uni/common.h"

/* Bytes per element of an ncclDataType_t; 0 for an unknown type. */
size_t uni_nccl_type_size(int type) UNI_HIDDEN;

/* out[i] = in[0][i] op in[1][i] op ... in[n-1][i] (rank order), with
 * NCCL's Avg and PreMulSum (pre: scalar points to one element of type).
 * out may be one of the inputs. */
void uni_nccl_reduce(void *out, const void *const *in, int n, size_t count, int type, int op, int pre,
		     const void *scalar) UNI_HIDDEN;

/* For tests. */
float uni_nccl_half_to_float(uint16_t h) UNI_HIDDEN;
uint16_t uni_nccl_float_to_half(float x) UNI_HIDDEN;

#endif
