/* Shared between unitrace's source files. */
#ifndef UNITRACE_H
#define UNITRACE_H

#include <stdint.h>

#define UNITRACE_EXIT_OUTPUT 1
#define UNITRACE_EXIT_TRACE 2
#define UNITRACE_EXIT_USAGE 64

struct uni_trec;

const char *unitrace_mode_name(uint32_t mode);

/* Which network node a transfer belongs to (docs/nccl.md, "Network
 * nodes"): the rank of its connection's end (its CONN record) when no
 * process attached as that rank (a simulated NCCL rank of a world of one
 * process), else the record's rank; a trace whose connection ids repeat
 * across attached ranks keeps its ranks. Fed every record in file order,
 * it returns the rank the record belongs to. Zero-initialise; free
 * conn_rank. */
#define UNITRACE_NODE_CONNS 65536u
#define UNITRACE_NODE_RANKS 1024
struct unitrace_nodes {
	int32_t *conn_rank; /* conn -> that rank + 1 (0: none); allocated at the first */
	uint8_t attached[UNITRACE_NODE_RANKS];
};
int32_t unitrace_node_of(struct unitrace_nodes *n, const struct uni_trec *t);

/* unitrace links TRACE [--config C] [--top N] [--json] (unitrace_links.c);
 * top 0: every link. brief: summary's section (the top links, nothing at
 * all for a trace not in simulate mode or a configuration not found). */
int unitrace_links(const char *path, const char *config, int json, int top, int brief);
const char *unitrace_time_base(uint32_t mode);
/* Names from a nccl_op record's flags (UNI_NCCL_OPF_*): the operation
 * ("all_reduce", ..., "recv"; "?" outside 1..10), the algorithm ("ring",
 * ...; "-" none) and the data type ("float32", ...). */
const char *unitrace_nccl_op(uint16_t flags);
const char *unitrace_nccl_algo(uint16_t flags);
const char *unitrace_nccl_type(uint16_t flags);

/* A JSON string on stdout (invalid UTF-8 becomes U+FFFD). */
void unitrace_json_str(const char *str);

/* unitrace critical-path TRACE [--json] (unitrace_critical.c). */
int unitrace_critical_path(const char *path, int json);

/* unitrace diff A B [--json] (unitrace_diff.c): 0 the same, 1 they
 * differ, UNITRACE_EXIT_TRACE a bad file. */
int unitrace_diff(const char *a, const char *b, int json);

/* unitrace compare REAL SIM [--json] (unitrace_compare.c). */
int unitrace_compare(const char *real_path, const char *sim_path, int json);

/* unitrace export TRACE --sqlite OUT.db (unitrace_sqlite.c). */
int unitrace_export_sqlite(const char *path, const char *out);

/* export --merge (unitrace_merge.c): the profiler trace's events, shifted
 * onto rank's timeline, handed to sink->event one by one (ph, name, the
 * profiler's thread, start and duration in trace ns, args as JSON or NULL).
 * Returns 0, 1 out of memory, 2 unreadable or unalignable file. */
struct unitrace_merge_sink {
	void (*event)(struct unitrace_merge_sink *s, const char *ph, const char *name, int64_t tid, uint64_t t,
		      uint64_t dur, const char *args_json);
	void *ctx;
	int32_t rank;
};
int unitrace_merge(const char *torch_json, int32_t rank, const char *trace, struct unitrace_merge_sink *sink);

/* unitrace replay TRACE [--config OTHER.yaml] [--sweep KEY=V1,...] [-o OUT] [--json]
 * (unitrace_replay.c). out: write the re-timed trace there (not with sweep). */
int unitrace_replay(const char *path, const char *config, const char *sweep, const char *out, int json);

#endif
