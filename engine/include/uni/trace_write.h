/* Trace writer (engine/trace_write.c): used by unid and by the tests.
 *
 * Records are buffered in the writer and reach the file only as whole
 * records, so a reader that opens the file while it grows, or after the
 * writer was killed, sees at most one partial record at the end. The
 * writer does not flush by itself on a timer: the owner calls
 * uni_trace_flush() often enough (unid: at least every 100 ms).
 *
 * Not thread-safe: one writer belongs to one thread at a time. */
#ifndef UNI_TRACE_WRITE_H
#define UNI_TRACE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "uni/trace.h"

#define UNI_TRACE_WBUF_RECS 128u /* records buffered before a write */

struct uni_trace_writer {
	int fd;          /* -1 when not open */
	uint32_t blen;   /* bytes in buf not yet written (may end mid-record
			    after a failed write: the retry continues it) */
	uint64_t nrec;   /* records appended so far (written or buffered) */
	char err[256];   /* one-line reason naming the file, after -1 */
	char path[4096];
	unsigned char buf[UNI_TRACE_WBUF_RECS * UNI_TRACE_REC_SIZE];
};

/* Fills a version-1.0 header: magic, versions, sizes, mode, epochs; session
 * and config_path are copied cut to fit and always NUL-terminated
 * (config_path may be NULL). Everything else is zero. */
void uni_trace_hdr_init(struct uni_trace_hdr *h, uint32_t mode,
			const char *session, uint64_t epoch_real,
			uint64_t epoch_mono, const char *config_path);

/* Creates (or truncates) path, creating missing parent directories (0755),
 * and writes hdr as given (little-endian). hdr->hdr_size must be 256 and
 * hdr->rec_size 64, the only layout this writer writes; magic and versions
 * are not checked, so tests can write files a reader must refuse.
 * Returns 0, or -1 with a one-line reason in err (and w->err) and errno set;
 * err may be NULL. */
int uni_trace_create(struct uni_trace_writer *w, const char *path,
		     const struct uni_trace_hdr *hdr, char *err, size_t errlen);

/* Buffers n records, writing whenever the buffer fills. Returns 0, or -1
 * with w->err and errno set when a write failed: the records not yet taken
 * into the buffer are then dropped (w->nrec counts those taken); buffered
 * bytes are kept for the next flush, so the file keeps its alignment. */
int uni_trace_append(struct uni_trace_writer *w, const struct uni_trec *recs,
		     size_t n);

/* Writes what is buffered (one write() per buffer; no fsync). Returns 0, or
 * -1 with w->err and errno set. */
int uni_trace_flush(struct uni_trace_writer *w);

/* Flushes, fsyncs and closes; the writer is closed even on failure. Returns
 * 0, or -1 with w->err and errno set (the first failure). Calling it again
 * on a closed writer returns 0. */
int uni_trace_finish(struct uni_trace_writer *w);

/* Rewrites the finished trace at path in its canonical form (engine/
 * trace_canon.c: the host's ids, ports, pids and real times taken out,
 * records in an order of their own), through path.canon and a rename:
 * 0, or -1 with one line in err (the file is then as it was). */
int uni_trace_canonicalise(const char *path, char *err, size_t errlen);

#endif
