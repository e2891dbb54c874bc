/* CUPTI glue for the simulated NCCL's device timeline (shim/cupti.c,
 * docs/nccl.md "CUPTI"). Simulate mode only; all no-ops when CUPTI is off. */
#ifndef UNI_CUPTI_GLUE_H
#define UNI_CUPTI_GLUE_H

#include <stdint.h>

#include "uni/common.h"
#include "uni_build_config.h"

#if UNI_HAVE_CUPTI

/* Loads CUPTI (once per process) and starts timing kernels: why names the
 * trigger for the log. Says once when it cannot (no GPU). 1: on. */
int uni_cupti_start(const char *why) UNI_HIDDEN;
int uni_cupti_on(void) UNI_HIDDEN;
/* on: the calling thread's CUDA calls are the shim's own (staging copies
 * and synchronisations): CUPTI callbacks ignore them. */
void uni_cupti_internal(int on) UNI_HIDDEN;
/* An NCCL operation on stream (a cudaStream_t), after every call so far:
 * the caller synchronised the stream, so every kernel before it has (or
 * soon gets) its record. Returns 0 with the stream's id, the operation's
 * position and the stream's end before it; -1 when the stream cannot be
 * followed. Until closed, positions after it on the stream are not
 * complete (a thread that synchronises with the stream waits for it). */
int uni_cupti_op_open(void *stream, uint32_t *sid, uint64_t *seq, uint64_t *vend) UNI_HIDDEN;
/* Its times: [vstart, vstart + vdur]. */
void uni_cupti_op_close(uint32_t sid, uint64_t seq, uint64_t vstart, uint64_t vdur) UNI_HIDDEN;
#else /* built without cupti.h: no device timeline */
static inline int uni_cupti_start(const char *why)
{
	(void)why;
	return 0;
}
static inline int uni_cupti_on(void)
{
	return 0;
}
static inline void uni_cupti_internal(int on)
{
	(void)on;
}
static inline int uni_cupti_op_open(void *stream, uint32_t *sid, uint64_t *seq, uint64_t *vend)
{
	(void)stream, (void)sid, (void)seq, (void)vend;
	return -1;
}
static inline void uni_cupti_op_close(uint32_t sid, uint64_t seq, uint64_t vstart, uint64_t vdur)
{
	(void)sid, (void)seq, (void)vstart, (void)vdur;
}
#endif

#endif
