/* --compute-from TRACE: the compute of an earlier simulate-mode run, per
 * thread and event, for a live run to take instead of measuring it
 * (docs/simulate.md "Compute from a trace").
 *
 * A thread is named by its key (the `thread` record's `off`, trace 1.5):
 * the process's main thread has key 1, a thread created through
 * pthread_create the mix of its creator's key and the creator's count of
 * threads created so far (uni_cf_child_key), so the same program makes the
 * same keys in every run whatever the host's scheduling. For each thread
 * of one rank the table holds, by event index (the records' `seq`), the
 * kind of the record at that index (0: an event that writes no record),
 * for a `compute` record the CPU ns it measured, for a `send` or `recv`
 * its bytes. */
#ifndef UNI_COMPUTE_FROM_H
#define UNI_COMPUTE_FROM_H

#include <stddef.h>
#include <stdint.h>

struct uni_cf_ev {
	uint64_t v;   /* compute: the CPU ns it measured; send, recv: the bytes */
	uint8_t kind; /* the trace record's kind at this index, 0: none */
};

struct uni_cf_thread {
	uint64_t key;
	uint32_t n;            /* events 0 .. n-1 */
	uint32_t ambiguous;    /* two threads of the rank had this key: not replayed */
	struct uni_cf_ev *ev;
};

struct uni_cf {
	uint32_t nthreads; /* sorted by key */
	struct uni_cf_thread *threads;
	uint64_t stretches; /* compute records of the rank */
};

/* The key of the k-th thread (k from 1) that a thread with key parent
 * creates; the main thread of a forked child is the child k | 1 << 31 of
 * the thread that forked. Never 0 (0: no key). */
uint64_t uni_cf_child_key(uint64_t parent, uint32_t k);

/* Builds the table of rank from a whole trace file in memory (buf, len).
 * Returns 0, or -1 with one line in err: not a trace, not simulate mode,
 * written before thread keys (format 1.5), no thread of that rank. */
int uni_cf_load(const void *buf, size_t len, int rank, struct uni_cf *out, char *err, size_t errlen);

/* Whether path is a trace --compute-from can use (readable, simulate
 * mode, format 1.5 or later): 0, or -1 with one line in err. */
int uni_cf_check_file(const char *path, char *err, size_t errlen);

/* The thread with key, or NULL (none, or key 0). */
const struct uni_cf_thread *uni_cf_find(const struct uni_cf *cf, uint64_t key);

void uni_cf_free(struct uni_cf *cf);

#endif
