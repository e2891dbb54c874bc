/* The device timeline of a rank in simulate mode (docs/nccl.md, "CUPTI").
 *
 * Work on a CUDA stream runs in order. Every entry of a stream has a
 * position (seq) in the process's order of CUDA calls: CUPTI gives every
 * API call a correlation id from one increasing counter, and a kernel's
 * activity record carries the id of the call that launched it, so a
 * kernel's seq is 4 * id + 2; work the shim places itself (an NCCL
 * operation) goes after every call seen so far, 4 * id + 3. On the
 * timeline an entry starts when the stream's previous entry ended and no
 * earlier than:
 *  - a kernel: its launching thread's virtual clock at the launch (L),
 *    lasting its real duration (CUPTI end - start) times its slowdown
 *    (first glob of devices.kernels that matches its name, else the
 *    rank's slowdown);
 *  - an NCCL operation: the start the shim computed for it, lasting what
 *    the network model said;
 *  - an event record: takes no time; the event's time is the stream's end
 *    there;
 *  - a wait for an event (cudaStreamWaitEvent): the event's time.
 *
 * Launch times come from CUPTI's API callback on the launching thread,
 * keyed by correlation id, with the stream where the call names it (the
 * launch is then expected: a record is owed); activity records come later,
 * from CUPTI's buffer thread, in any order. Entries are folded into the
 * stream's end only up to a position the caller knows to be complete:
 * uni_devtl_complete says when every expected record and every operation
 * of the shim's up to there is in. Stream ids are CUPTI's (one context per
 * process). Pure
 * bookkeeping: no CUDA, unit-tested on synthetic records
 * (tests/unit/test_devtl.c). Not thread-safe: the caller locks. */
#ifndef UNI_DEVTL_H
#define UNI_DEVTL_H

#include <stddef.h>
#include <stdint.h>

#define UNI_DEVTL_STREAMS 256
#define UNI_DEVTL_LAUNCHES 65536 /* launch times kept (direct-mapped by id) */
#define UNI_DEVTL_EVENTS 256
#define UNI_DEVTL_EVENT_HIST 8   /* records of one event remembered */

/* Positions on a stream (seq): the call with correlation id c itself (a
 * kernel it launched, an event it records or waits for), and just after
 * it (work of the shim's placed after every call seen so far). */
static inline uint64_t uni_devtl_at(uint32_t c)
{
	return 4 * (uint64_t)c + 2;
}
static inline uint64_t uni_devtl_after(uint32_t c)
{
	return 4 * (uint64_t)c + 3;
}

struct uni_devtl_rule {
	const char *match; /* fnmatch(3) glob on the kernel's name */
	double slowdown;
};

enum uni_devtl_kind { UNI_DEVTL_KERNEL, UNI_DEVTL_OP, UNI_DEVTL_EVENT, UNI_DEVTL_WAIT };

/* What a stream still owes before a position is complete. */
struct uni_devtl_owed {
	uint64_t seq;      /* an expected kernel's position, or an open op's */
	uint32_t correlation; /* kernel: its launch (0: an op) */
};

struct uni_devtl_ent {
	uint64_t seq;
	uint64_t rstart;  /* kernel: real start (orders a graph's kernels) */
	uint64_t vstart;  /* kernel: launch time (0: unknown); op: its start */
	uint64_t vdur;    /* kernel: scaled duration; op: duration */
	uint64_t ev;      /* event, wait: the event */
	uint64_t evseq;   /* wait: seq of the event's record waited for */
	int kind;
	int open;         /* op: its duration is not known yet */
};

struct uni_devtl_stream {
	uint32_t id;
	int used;
	uint64_t vend;    /* end of the entries folded so far */
	uint64_t folded;  /* seq up to which it is folded */
	struct uni_devtl_ent *q; /* not folded yet, sorted by (seq, rstart) */
	size_t nq, capq;
	struct uni_devtl_owed *owed; /* expected records, open ops */
	size_t nowed, capowed;
};

struct uni_devtl_launch {
	uint32_t correlation;
	uint32_t alias;   /* the runtime launch this driver launch is part of */
	uint64_t vlaunch;
};

struct uni_devtl_evrec {
	uint64_t seq;
	uint64_t t;
	uint32_t stream;
	int done;
};

struct uni_devtl_event {
	uint64_t key;     /* 0: free */
	struct uni_devtl_evrec rec[UNI_DEVTL_EVENT_HIST];
	unsigned nrec;    /* records so far (rec[(nrec - 1) % HIST] is the latest) */
	unsigned waits;   /* stream waits on it not folded yet */
	unsigned doomed;  /* destroyed while some were (nrec then, + 1):
			   * forgotten after them, unless the handle was
			   * made again and recorded since */
};

struct uni_devtl {
	const struct uni_devtl_rule *rules;
	size_t nrules;
	double slowdown;  /* rank default */
	struct uni_devtl_stream s[UNI_DEVTL_STREAMS];
	struct uni_devtl_launch *launches; /* UNI_DEVTL_LAUNCHES, allocated on first use */
	struct uni_devtl_event ev[UNI_DEVTL_EVENTS];
	uint64_t kernels;  /* records taken */
	uint64_t late;     /* records behind a position already folded (placed at it) */
	uint64_t dropped;  /* entries with nowhere to go (tables full, no memory) */
	uint64_t given_up; /* expected records never seen (uni_devtl_give_up) */
};

void uni_devtl_init(struct uni_devtl *tl, const struct uni_devtl_rule *rules, size_t nrules, double slowdown);
void uni_devtl_free(struct uni_devtl *tl);

/* The slowdown factor for a kernel name. */
double uni_devtl_factor(const struct uni_devtl *tl, const char *name);

/* The call with this correlation id launched work at virtual time vlaunch.
 * uni_devtl_expect: on stream, so its record is owed before the call's
 * position there is complete. */
void uni_devtl_launch(struct uni_devtl *tl, uint32_t correlation, uint64_t vlaunch);
void uni_devtl_expect(struct uni_devtl *tl, uint32_t stream, uint32_t correlation);
/* The launch correlation (a driver call) is part of the launch of (the
 * runtime call): a record with either id pays what of owes. */
void uni_devtl_alias(struct uni_devtl *tl, uint32_t correlation, uint32_t of);

/* A kernel's activity record: stream, launching call, real start and end
 * (ns), name. */
void uni_devtl_record(struct uni_devtl *tl, uint32_t stream, uint32_t correlation, uint64_t start, uint64_t end,
		      const char *name);

/* Work of the shim's on stream at seq: [vstart, vstart + vdur] unless the
 * stream is busy longer. Opened first (its place is known before its
 * times: positions after it are not complete until it is closed), then
 * closed with its times. open: 0 with the position it got in *seq (a
 * position already folded moves to the folded one), or -1 when the stream
 * table is full. */
int uni_devtl_op_open(struct uni_devtl *tl, uint32_t stream, uint64_t *seq);
void uni_devtl_op_close(struct uni_devtl *tl, uint32_t stream, uint64_t seq, uint64_t vstart, uint64_t vdur);

/* 1 when nothing is owed on stream at or before upto (every expected
 * record came, every op is closed); the caller waits for CUPTI otherwise.
 * stream UINT32_MAX: every stream. */
int uni_devtl_complete(const struct uni_devtl *tl, uint32_t stream, uint64_t upto);
/* Stops waiting for the records owed on stream up to upto (they never
 * came: counted in given_up). */
void uni_devtl_give_up(struct uni_devtl *tl, uint32_t stream, uint64_t upto);

/* cudaEventRecord(ev, stream) at seq; cudaStreamWaitEvent(stream, ev) at
 * seq (waits for the event's latest record before seq; none: no-op). */
void uni_devtl_event_record(struct uni_devtl *tl, uint32_t stream, uint64_t ev, uint64_t seq);
/* cudaEventDestroy: its records are forgotten, once the stream waits on
 * it made before are folded (CUDA keeps such a dependency:
 * torch.cuda.Stream.wait_stream records an event, waits on it and
 * destroys it at once). */
void uni_devtl_event_forget(struct uni_devtl *tl, uint64_t ev);
void uni_devtl_wait(struct uni_devtl *tl, uint32_t stream, uint64_t ev, uint64_t seq);

/* The stream's end after folding every entry at or before upto (the
 * caller knows every record up to there came). An unknown stream: 0. */
uint64_t uni_devtl_stream_end(struct uni_devtl *tl, uint32_t stream, uint64_t upto);
/* The same for every stream: the latest end. */
uint64_t uni_devtl_all_end(struct uni_devtl *tl, uint64_t upto);
/* The time of the event's latest record (folding its stream up to it):
 * 1, or 0 when the event was never recorded. */
int uni_devtl_event_time(struct uni_devtl *tl, uint64_t ev, uint64_t *t);
/* Where the event's latest record is: its stream and position; 0 when
 * the event was never recorded (or is forgotten). What a wait for the
 * event needs: that stream's records up to there, no other stream's. */
int uni_devtl_event_where(const struct uni_devtl *tl, uint64_t ev, uint32_t *stream, uint64_t *seq);

#endif
