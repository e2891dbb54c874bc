/* libFuzzer target: --compute-from's two readers of a trace, on arbitrary
 * records: the table a rank builds (engine/compute_from.c) and the
 * canonical form unid rewrites a trace into (engine/trace_canon.c). The
 * input's records (after its own 256-byte header if it has the UNITRACE
 * magic, else all of it) go behind a simulate-mode 1.5 header, so that
 * the records, not the header checks, are what is explored. Any input
 * must give 0 or -1 with a message, never a crash, a sanitizer report or
 * a leak; a table's events lie within it, a canonical file has the
 * length of the original. Run by tests/fuzz/run.sh. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uni/compute_from.h"
#include "uni/trace.h"
#include "uni/trace_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rec = data;
	size_t nrec = size;
	if (size >= 256 && memcmp(data, UNI_TRACE_MAGIC, 8) == 0) {
		rec = data + 256;
		nrec = size - 256;
	}
	nrec -= nrec % 64;
	if (nrec > (1u << 20))
		nrec = 1u << 20;
	size_t len = 256 + nrec;
	uint8_t *buf = calloc(1, len);
	if (!buf)
		return 0;
	struct uni_trace_hdr h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, UNI_TRACE_MAGIC, 8);
	h.version_major = 1;
	h.version_minor = 5;
	h.hdr_size = 256;
	h.rec_size = 64;
	h.mode = 1;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + 256, rec, nrec);
	for (int rank = 0; rank < 3; rank++) {
		struct uni_cf cf;
		char err[160] = "";
		int rc = uni_cf_load(buf, len, rank, &cf, err, sizeof(err));
		if (rc != 0 && rc != -1)
			abort();
		if (rc == -1) {
			if (!err[0])
				abort();
			continue;
		}
		for (uint32_t i = 0; i < cf.nthreads; i++) {
			const struct uni_cf_thread *t = &cf.threads[i];
			if (t->n && !t->ev)
				abort();
			for (uint32_t k = 0; k < t->n; k++)
				if (t->ev[k].kind > 255)
					abort();
			if (!t->ambiguous && t->key && uni_cf_find(&cf, t->key) != t)
				abort();
		}
		uni_cf_free(&cf);
	}
	char path[] = "/tmp/fuzz_canon.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	if (write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
	char err[256] = "";
	int rc = uni_trace_canonicalise(path, err, sizeof(err));
	if (rc != 0 && (rc != -1 || !err[0]))
		abort();
	struct stat st;
	if (rc == 0 && (stat(path, &st) != 0 || (size_t)st.st_size != len))
		abort();
	unlink(path);
	free(buf);
	return 0;
}
