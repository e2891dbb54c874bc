/* Trace writer: see uni/trace_write.h and docs/trace-format.md. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uni/trace.h"
#include "uni/trace_write.h"

#define OFF(type, field) __builtin_offsetof(type, field)

static void put16(unsigned char *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void encode_hdr(unsigned char *p, const struct uni_trace_hdr *h)
{
	memset(p, 0, UNI_TRACE_HDR_SIZE);
	memcpy(p + OFF(struct uni_trace_hdr, magic), h->magic, sizeof(h->magic));
	put16(p + OFF(struct uni_trace_hdr, version_major), h->version_major);
	put16(p + OFF(struct uni_trace_hdr, version_minor), h->version_minor);
	put32(p + OFF(struct uni_trace_hdr, hdr_size), h->hdr_size);
	put32(p + OFF(struct uni_trace_hdr, rec_size), h->rec_size);
	put32(p + OFF(struct uni_trace_hdr, mode), h->mode);
	put64(p + OFF(struct uni_trace_hdr, epoch_real_ns), h->epoch_real_ns);
	put64(p + OFF(struct uni_trace_hdr, epoch_mono_ns), h->epoch_mono_ns);
	memcpy(p + OFF(struct uni_trace_hdr, session), h->session,
	       sizeof(h->session));
	memcpy(p + OFF(struct uni_trace_hdr, config_path), h->config_path,
	       sizeof(h->config_path));
	memcpy(p + OFF(struct uni_trace_hdr, reserved), h->reserved,
	       sizeof(h->reserved));
}

static void encode_rec(unsigned char *p, const struct uni_trec *r)
{
	put16(p + OFF(struct uni_trec, kind), r->kind);
	put16(p + OFF(struct uni_trec, flags), r->flags);
	put32(p + OFF(struct uni_trec, rank), (uint32_t)r->rank);
	put32(p + OFF(struct uni_trec, tid), (uint32_t)r->tid);
	put32(p + OFF(struct uni_trec, peer), (uint32_t)r->peer);
	put32(p + OFF(struct uni_trec, conn), r->conn);
	put32(p + OFF(struct uni_trec, seq), r->seq);
	put64(p + OFF(struct uni_trec, t0), r->t0);
	put64(p + OFF(struct uni_trec, t1), r->t1);
	put64(p + OFF(struct uni_trec, off), r->off);
	put64(p + OFF(struct uni_trec, len), r->len);
	put64(p + OFF(struct uni_trec, a), r->a);
}

/* Copies s into a fixed field, cut to fit, NUL-terminated, zero-padded. */
static void copy_field(char *dst, size_t size, const char *s)
{
	size_t n = s ? strnlen(s, size - 1) : 0;

	memset(dst, 0, size);
	if (n)
		memcpy(dst, s, n);
}

void uni_trace_hdr_init(struct uni_trace_hdr *h, uint32_t mode,
			const char *session, uint64_t epoch_real,
			uint64_t epoch_mono, const char *config_path)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, UNI_TRACE_MAGIC, sizeof(h->magic));
	h->version_major = UNI_TRACE_VERSION_MAJOR;
	h->version_minor = UNI_TRACE_VERSION_MINOR;
	h->hdr_size = UNI_TRACE_HDR_SIZE;
	h->rec_size = UNI_TRACE_REC_SIZE;
	h->mode = mode;
	h->epoch_real_ns = epoch_real;
	h->epoch_mono_ns = epoch_mono;
	copy_field(h->session, sizeof(h->session), session);
	copy_field(h->config_path, sizeof(h->config_path), config_path);
}

/* Sets w->err to "path: reason"; keeps errno. */
__attribute__((format(printf, 2, 3)))
static void werr(struct uni_trace_writer *w, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	int n;

	n = snprintf(w->err, sizeof(w->err), "%s: ", w->path);
	if (n >= 0 && (size_t)n < sizeof(w->err)) {
		va_start(ap, fmt);
		vsnprintf(w->err + n, sizeof(w->err) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	errno = saved;
}

/* mkdir -p of every directory above path. EEXIST is fine whatever the
 * entry is: if it is not a directory, open() reports ENOTDIR afterwards. */
static int make_parents(struct uni_trace_writer *w, const char *path)
{
	char dir[sizeof(w->path)];
	size_t len = strlen(path);

	if (len >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		werr(w, "path too long");
		return -1;
	}
	memcpy(dir, path, len + 1);
	/* Start at 1: a leading '/' is the root, not an empty component. */
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			werr(w, "cannot create directory %s: %s", dir,
			     strerror(errno));
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/* Writes all of len bytes, retrying short writes and EINTR. Returns the
 * bytes written; fewer than len means errno says why. */
static size_t write_all(int fd, const unsigned char *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (n == 0) {
			errno = ENOSPC;
			break;
		}
		done += (size_t)n;
	}
	return done;
}

int uni_trace_create(struct uni_trace_writer *w, const char *path,
		     const struct uni_trace_hdr *hdr, char *err, size_t errlen)
{
	unsigned char buf[UNI_TRACE_HDR_SIZE];
	int saved;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	snprintf(w->path, sizeof(w->path), "%s", path);

	if (hdr->hdr_size != UNI_TRACE_HDR_SIZE ||
	    hdr->rec_size != UNI_TRACE_REC_SIZE) {
		errno = EINVAL;
		werr(w, "header says %u/%u bytes per header/record, the writer"
		     " writes only %u/%u", hdr->hdr_size, hdr->rec_size,
		     UNI_TRACE_HDR_SIZE, UNI_TRACE_REC_SIZE);
		goto fail;
	}
	if (make_parents(w, path) < 0)
		goto fail;
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		werr(w, "cannot create: %s", strerror(errno));
		goto fail;
	}
	encode_hdr(buf, hdr);
	if (write_all(w->fd, buf, sizeof(buf)) < sizeof(buf)) {
		werr(w, "cannot write header: %s", strerror(errno));
		saved = errno;
		close(w->fd);
		w->fd = -1;
		errno = saved;
		goto fail;
	}
	return 0;

fail:
	if (err && errlen)
		snprintf(err, errlen, "%s", w->err);
	return -1;
}

int uni_trace_flush(struct uni_trace_writer *w)
{
	size_t done;

	if (w->fd < 0) {
		errno = EBADF;
		werr(w, "trace writer is not open");
		return -1;
	}
	if (!w->blen)
		return 0;
	done = write_all(w->fd, w->buf, w->blen);
	if (done < w->blen) {
		/* Keep the unwritten tail: the next flush continues exactly
		 * where the file ends, so alignment survives a transient
		 * ENOSPC. */
		werr(w, "write failed: %s", strerror(errno));
		memmove(w->buf, w->buf + done, w->blen - done);
		w->blen -= (uint32_t)done;
		return -1;
	}
	w->blen = 0;
	return 0;
}

int uni_trace_append(struct uni_trace_writer *w, const struct uni_trec *recs,
		     size_t n)
{
	if (w->fd < 0) {
		errno = EBADF;
		werr(w, "trace writer is not open");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (sizeof(w->buf) - w->blen < UNI_TRACE_REC_SIZE &&
		    uni_trace_flush(w) < 0)
			return -1; /* recs[i..n) are dropped */
		encode_rec(w->buf + w->blen, &recs[i]);
		w->blen += UNI_TRACE_REC_SIZE;
		w->nrec++;
	}
	return 0;
}

int uni_trace_finish(struct uni_trace_writer *w)
{
	int ret = 0, saved = 0;

	if (w->fd < 0)
		return 0;
	if (uni_trace_flush(w) < 0) {
		ret = -1;
		saved = errno;
	}
	/* EINVAL: the path is something that cannot be synced (a FIFO,
	 * /dev/null); nothing was lost. */
	if (fsync(w->fd) < 0 && errno != EINVAL && !ret) {
		werr(w, "fsync failed: %s", strerror(errno));
		ret = -1;
		saved = errno;
	}
	if (close(w->fd) < 0 && errno != EINTR && !ret) {
		werr(w, "close failed: %s", strerror(errno));
		ret = -1;
		saved = errno;
	}
	w->fd = -1;
	w->blen = 0;
	if (ret)
		errno = saved;
	return ret;
}
