/* The device timeline of a rank in simulate mode (docs/nccl.md, "CUPTI").
 *
 * Kernels run on a stream in launch order. The host thread that launches
 * one has a virtual clock (L); CUPTI's activity record later gives the
 * kernel's real duration on this GPU (end - start), which the kernel's
 * slowdown factor scales (first glob of devices.kernels that matches its
 * name, else the rank's slowdown). On the device timeline a kernel starts
 * at max(L, end of the stream's previous kernel) and lasts the scaled
 * duration. An NCCL operation on the stream starts at max(its caller's
 * clock, the end of the stream's work so far).
 *
 * Launches (from the CUPTI callback on the launching thread) and records
 * (delivered later, in any order, from CUPTI's buffer thread) are matched
 * by correlation id. The end of a stream is known once every kernel
 * launched on it has its record; uni_devtl_stream_end says whether it is.
 * Pure bookkeeping: no CUDA, unit-tested on synthetic records
 * (tests/unit/test_devtl.c). Not thread-safe: the caller locks. */
#ifndef UNI_DEVTL_H
#define UNI_DEVTL_H

#include <stddef.h>
#include <stdint.h>

#define UNI_DEVTL_STREAMS 64
#define UNI_DEVTL_PENDING 4096

struct uni_devtl_rule {
	const char *match; /* fnmatch(3) glob on the kernel's name */
	double slowdown;
};

struct uni_devtl_launch {
	uint32_t correlation;
	uint64_t vlaunch;  /* host thread's virtual clock at the launch */
	uint64_t vdur;     /* scaled duration, once the record came */
	int have;          /* the record came */
};

struct uni_devtl_stream {
	uint64_t id;       /* CUDA stream id (0: unused slot... see used) */
	int used;
	uint64_t vend;     /* end of the kernels folded in so far */
	struct uni_devtl_launch *q; /* launched, not folded yet, in launch order */
	size_t nq, capq;
};

struct uni_devtl_orphan { /* a record that came before its launch */
	uint32_t correlation;
	uint64_t vdur;
};

struct uni_devtl {
	const struct uni_devtl_rule *rules;
	size_t nrules;
	double slowdown;   /* rank default */
	struct uni_devtl_stream s[UNI_DEVTL_STREAMS];
	struct uni_devtl_orphan orphans[UNI_DEVTL_PENDING];
	size_t norphans;
	uint64_t dropped;  /* records with nowhere to go (tables full) */
};

void uni_devtl_init(struct uni_devtl *tl, const struct uni_devtl_rule *rules, size_t nrules, double slowdown);
void uni_devtl_free(struct uni_devtl *tl);

/* The slowdown factor for a kernel name. */
double uni_devtl_factor(const struct uni_devtl *tl, const char *name);

/* A kernel launched on stream at virtual time vlaunch. 0, or -1 when the
 * stream table is full. */
int uni_devtl_launch(struct uni_devtl *tl, uint64_t stream, uint32_t correlation, uint64_t vlaunch);

/* Its activity record: real start and end (ns) and name. */
void uni_devtl_record(struct uni_devtl *tl, uint32_t correlation, uint64_t start, uint64_t end, const char *name);

/* The virtual time at which the stream's work launched so far ends, in
 * *vend; returns 1 when every launched kernel has its record (the value is
 * final), 0 when some are still missing (*vend is then the end of the
 * known prefix: a caller flushes CUPTI's buffers and asks again). */
int uni_devtl_stream_end(struct uni_devtl *tl, uint64_t stream, uint64_t *vend);

#endif
