/* Trace reader: see uni/trace.h and docs/trace-format.md.
 *
 * The file is little-endian on disk; every field is decoded explicitly so the
 * reader does not depend on the host's byte order or on struct layout. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "uni/trace.h"

const char *uni_trec_kind_name(uint16_t kind)
{
	static const char *const names[] = {
		[UNI_TR_SESSION_START] = "session_start",
		[UNI_TR_RANK_ATTACH] = "rank_attach",
		[UNI_TR_RANK_EXIT] = "rank_exit",
		[UNI_TR_THREAD] = "thread",
		[UNI_TR_CONN] = "conn",
		[UNI_TR_SEND] = "send",
		[UNI_TR_RECV] = "recv",
		[UNI_TR_CONN_CLOSE] = "conn_close",
		[UNI_TR_SESSION_END] = "session_end",
		[UNI_TR_THREAD_END] = "thread_end",
		[UNI_TR_DEADLOCK] = "deadlock",
		[UNI_TR_COMPUTE] = "compute",
		[UNI_TR_IDLE] = "idle",
		[UNI_TR_SIGNAL] = "signal",
		[UNI_TR_TAKE] = "take",
		[UNI_TR_DEP] = "dep",
		[UNI_TR_SENT] = "sent",
		[UNI_TR_OP] = "op",
		[UNI_TR_STRING] = "string",
		[UNI_TR_NCCL_OP] = "nccl_op",
		[UNI_TR_NCCL_COMM] = "nccl_comm",
		[UNI_TR_COMPUTE_FROM] = "compute_from",
		[UNI_TR_DELAY] = "delay",
	};

	if (kind < sizeof(names) / sizeof(names[0]) && names[kind])
		return names[kind];
	return "?";
}

static uint16_t get16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

#define OFF(type, field) __builtin_offsetof(type, field)

static void decode_hdr(struct uni_trace_hdr *h, const unsigned char *p)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, p + OFF(struct uni_trace_hdr, magic), sizeof(h->magic));
	h->version_major = get16(p + OFF(struct uni_trace_hdr, version_major));
	h->version_minor = get16(p + OFF(struct uni_trace_hdr, version_minor));
	h->hdr_size = get32(p + OFF(struct uni_trace_hdr, hdr_size));
	h->rec_size = get32(p + OFF(struct uni_trace_hdr, rec_size));
	h->mode = get32(p + OFF(struct uni_trace_hdr, mode));
	h->epoch_real_ns = get64(p + OFF(struct uni_trace_hdr, epoch_real_ns));
	h->epoch_mono_ns = get64(p + OFF(struct uni_trace_hdr, epoch_mono_ns));
	memcpy(h->session, p + OFF(struct uni_trace_hdr, session),
	       sizeof(h->session));
	memcpy(h->config_path, p + OFF(struct uni_trace_hdr, config_path),
	       sizeof(h->config_path));
	memcpy(h->reserved, p + OFF(struct uni_trace_hdr, reserved),
	       sizeof(h->reserved));
	/* Callers print these as C strings: never leave them unterminated,
	 * whatever the file says. */
	h->session[sizeof(h->session) - 1] = '\0';
	h->config_path[sizeof(h->config_path) - 1] = '\0';
}

static void decode_rec(struct uni_trec *r, const unsigned char *p)
{
	r->kind = get16(p + OFF(struct uni_trec, kind));
	r->flags = get16(p + OFF(struct uni_trec, flags));
	r->rank = (int32_t)get32(p + OFF(struct uni_trec, rank));
	r->tid = (int32_t)get32(p + OFF(struct uni_trec, tid));
	r->peer = (int32_t)get32(p + OFF(struct uni_trec, peer));
	r->conn = get32(p + OFF(struct uni_trec, conn));
	r->seq = get32(p + OFF(struct uni_trec, seq));
	r->t0 = get64(p + OFF(struct uni_trec, t0));
	r->t1 = get64(p + OFF(struct uni_trec, t1));
	r->off = get64(p + OFF(struct uni_trec, off));
	r->len = get64(p + OFF(struct uni_trec, len));
	r->a = get64(p + OFF(struct uni_trec, a));
}

__attribute__((format(printf, 3, 4)))
static void set_err(struct uni_trace_reader *r, const char *path,
		    const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(r->err, sizeof(r->err), "%s: ", path);
	if (n < 0 || (size_t)n >= sizeof(r->err))
		return;
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
	va_end(ap);
}

int uni_trace_open(struct uni_trace_reader *r, const char *path)
{
	unsigned char buf[UNI_TRACE_HDR_SIZE];
	struct uni_trace_hdr *h = &r->hdr;
	size_t got;

	memset(r, 0, sizeof(*r));
	/* "e": O_CLOEXEC, so a reader inside unid leaks no fd to children. */
	r->f = fopen(path, "rbe");
	if (!r->f) {
		set_err(r, path, "cannot open: %s", strerror(errno));
		return -1;
	}

	got = fread(buf, 1, sizeof(buf), r->f);
	if (got < sizeof(buf) && ferror(r->f)) {
		set_err(r, path, "read error: %s", strerror(errno));
		goto fail;
	}
	if (got < sizeof(h->magic) ||
	    memcmp(buf, UNI_TRACE_MAGIC, sizeof(h->magic)) != 0) {
		set_err(r, path, "not a uniference trace (bad magic)");
		goto fail;
	}
	if (got < sizeof(buf)) {
		set_err(r, path, "trace header cut short (%zu of %u bytes)",
			got, UNI_TRACE_HDR_SIZE);
		goto fail;
	}
	decode_hdr(h, buf);

	/* Major first: a future major may change every other field. */
	if (h->version_major != UNI_TRACE_VERSION_MAJOR) {
		set_err(r, path,
			"trace format version %u.%u, this reader knows only %u.x",
			h->version_major, h->version_minor,
			UNI_TRACE_VERSION_MAJOR);
		goto fail;
	}
	if (h->hdr_size < UNI_TRACE_HDR_SIZE) {
		set_err(r, path, "trace header size %u, expected at least %u",
			h->hdr_size, UNI_TRACE_HDR_SIZE);
		goto fail;
	}
	if (h->rec_size != UNI_TRACE_REC_SIZE) {
		set_err(r, path, "trace record size %u, expected %u",
			h->rec_size, UNI_TRACE_REC_SIZE);
		goto fail;
	}

	/* A newer minor may grow the header; its extra bytes are skipped.
	 * Read rather than seek so that a header cut inside the extension
	 * is noticed here. */
	for (uint64_t left = h->hdr_size - UNI_TRACE_HDR_SIZE; left > 0;) {
		size_t chunk = left < sizeof(buf) ? (size_t)left : sizeof(buf);

		got = fread(buf, 1, chunk, r->f);
		if (got < chunk) {
			if (ferror(r->f))
				set_err(r, path, "read error: %s",
					strerror(errno));
			else
				set_err(r, path,
					"trace header cut short (header size %u)",
					h->hdr_size);
			goto fail;
		}
		left -= got;
	}
	/* The reader struct has no room for the path, and a later read
	 * error must name the file too: err holds just the path until an
	 * error replaces it (see uni_trace_next). */
	snprintf(r->err, sizeof(r->err), "%s", path);
	return 0;

fail:
	fclose(r->f);
	r->f = NULL;
	return -1;
}

int uni_trace_next(struct uni_trace_reader *r, struct uni_trec *rec)
{
	unsigned char buf[UNI_TRACE_REC_SIZE];
	char path[sizeof(r->err)];
	size_t got;

	if (!r->f)
		return 0;
	got = fread(buf, 1, sizeof(buf), r->f);
	if (got == sizeof(buf)) {
		decode_rec(rec, buf);
		r->nrec++;
		return 1;
	}
	if (ferror(r->f)) {
		/* r->err holds the path while no error has been reported. */
		snprintf(path, sizeof(path), "%s", r->err);
		set_err(r, path, "read error after %llu records: %s",
			(unsigned long long)r->nrec, strerror(errno));
		return -1;
	}
	/* EOF. A partial record is what a killed writer leaves behind; what
	 * came before it is still good. EOF is sticky, so later calls return
	 * 0 as well. A caller following a live file reopens and skips nrec
	 * records to pick up what was written since. */
	if (got > 0)
		r->truncated = 1;
	return 0;
}

void uni_trace_close(struct uni_trace_reader *r)
{
	if (r->f)
		fclose(r->f);
	r->f = NULL;
}
