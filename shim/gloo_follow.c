#include <string.h>
#include <sys/uio.h>

#include "gloo_follow.h"
#include "uni/common.h"

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void slot_put(struct uni_gf_slot_time *tab, uint64_t slot, uint64_t t, uint32_t who, uint64_t src,
		     uint64_t len)
{
	/* Oldest-first reuse: a full table drops the oldest entry. */
	uint32_t victim = 0;
	uint64_t oldest = UINT64_MAX;
	for (uint32_t i = 0; i < UNI_GF_SLOTS; i++) {
		if (!tab[i].used) {
			victim = i;
			break;
		}
		if (tab[i].t < oldest) {
			oldest = tab[i].t;
			victim = i;
		}
	}
	tab[victim].slot = slot;
	tab[victim].t = t;
	tab[victim].used = 1;
	tab[victim].who = who;
	tab[victim].src = src;
	tab[victim].len = len;
}

/* Takes the earliest entry for slot (and its who and src); 0 when there is none. */
static uint64_t slot_take(struct uni_gf_slot_time *tab, uint64_t slot, uint32_t *who, uint64_t *src)
{
	int best = -1;
	for (uint32_t i = 0; i < UNI_GF_SLOTS; i++)
		if (tab[i].used && tab[i].slot == slot && (best < 0 || tab[i].t < tab[best].t))
			best = (int)i;
	if (best < 0)
		return 0;
	tab[best].used = 0;
	if (who)
		*who = tab[best].who;
	if (src)
		*src = tab[best].src;
	return tab[best].t;
}

static inline uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* The earliest max(post, release) over slots that have both: data the
 * connection owes. */
static void update_owed(struct uni_gf_conn *c)
{
	uint64_t owed = UINT64_MAX, latest = 0;
	uint32_t waiting = 0;
	for (uint32_t i = 0; i < UNI_GF_SLOTS; i++) {
		if (!c->posted[i].used)
			continue;
		int released = 0;
		for (uint32_t j = 0; j < UNI_GF_SLOTS; j++)
			if (c->released[j].used && c->released[j].slot == c->posted[i].slot) {
				uint64_t d = max64(c->posted[i].t, c->released[j].t);
				if (d < owed)
					owed = d;
				released = 1;
			}
		/* Posted, not released: a send waiting for the peer's receive
		 * (deadlock reports). */
		if (!released) {
			if (!waiting++ || c->posted[i].t >= latest) {
				latest = c->posted[i].t;
				c->sr_slot = c->posted[i].slot;
				c->sr_len = (uint32_t)(c->posted[i].len > UINT32_MAX ? UINT32_MAX : c->posted[i].len);
			}
		}
	}
	c->owed = owed;
	c->sr_wait = waiting;
}

/* A complete preamble is in d->pre: check it and start the message. */
static int preamble_done(struct uni_gf_dir *d)
{
	uint64_t nbytes = le64(d->pre), op = le64(d->pre + 8);
	if (nbytes < UNI_GF_PREAMBLE || nbytes > (1ull << 42) || op > UNI_GF_RECV_READY) {
		d->broken = 1;
		return -1;
	}
	d->opcode = op;
	d->slot = le64(d->pre + 16);
	d->body_left = nbytes - UNI_GF_PREAMBLE;
	return 0;
}

/* The stamp of an outgoing message, decided when its preamble is whole. */
static uint64_t out_stamp(struct uni_gf_conn *c, uint64_t vt, int dispatcher)
{
	struct uni_gf_dir *d = &c->out;
	switch (d->opcode) {
	case UNI_GF_SEND_READY:
		slot_put(c->posted, d->slot, vt, c->writer, 0, le64(d->pre + 32));
		update_owed(c);
		return vt;
	case UNI_GF_RECV_READY:
		c->rr_out++;
		c->rr_slot = d->slot;
		c->rr_len = (uint32_t)le64(d->pre + 32);
		return vt;
	case UNI_GF_SEND_UNBOUND: {
		uint32_t who = 0;
		uint64_t due = max64(slot_take(c->posted, d->slot, &who, &d->dep[0]),
				     slot_take(c->released, d->slot, NULL, &d->dep[1]));
		d->poster = who ? who : c->writer;
		update_owed(c);
		/* The loop thread's own time is that of whatever event it is
		 * handling (often unrelated bytes it just read): rule 3. */
		if (dispatcher && due)
			return due;
		return max64(vt, due);
	}
	default:
		return vt;
	}
}

/* Walks one contiguous buffer of an outgoing write. */
static void out_bytes(struct uni_gf_conn *c, const uint8_t *p, size_t n, uint64_t vt, int dispatcher,
		      uint64_t base, struct uni_gf_seg *segs, size_t max, size_t *nseg)
{
	struct uni_gf_dir *d = &c->out;
	size_t i = 0;
	while (i < n) {
		uint64_t stamp;
		size_t take;
		int notify = 0;
		if (d->broken) {
			stamp = vt;
			take = n - i;
			c->fallbacks += take;
		} else if (d->npre < UNI_GF_PREAMBLE) {
			/* Inside a preamble: its bytes carry the writer's time
			 * until the message's own stamp is known. */
			uint32_t started = d->npre;
			take = UNI_GF_PREAMBLE - d->npre;
			if (take > n - i)
				take = n - i;
			memcpy(d->pre + d->npre, p + i, take);
			if (d->npre == 0) {
				d->stamp = vt;
				d->poster = 0;
				d->dep[0] = d->dep[1] = 0;
				d->emitted = 0;
			}
			d->npre += (uint32_t)take;
			if (d->npre == UNI_GF_PREAMBLE) {
				if (preamble_done(d) == 0)
					d->stamp = out_stamp(c, vt, dispatcher);
				if (!d->broken && d->body_left == 0) {
					notify = started == 0 && (d->opcode == UNI_GF_SEND_READY ||
								  d->opcode == UNI_GF_RECV_READY);
					d->npre = 0;
					d->messages++;
				}
			}
			stamp = d->stamp;
		} else {
			take = d->body_left < n - i ? (size_t)d->body_left : n - i;
			d->body_left -= take;
			stamp = d->stamp;
			if (d->body_left == 0) {
				d->npre = 0;
				d->messages++;
			}
		}
		uint64_t at = base + i;
		/* What is left of this message after these bytes (a preamble
		 * not yet whole: unknown, 0). */
		uint64_t rest = (!d->broken && d->npre == UNI_GF_PREAMBLE) ? d->body_left : 0;
		uint32_t poster = d->broken ? 0 : d->poster;
		uint32_t post = notify && d->opcode == UNI_GF_SEND_READY;
		uint32_t cont = !d->broken && d->emitted > 0;
		struct uni_gf_seg *last = *nseg ? &segs[*nseg - 1] : NULL;
		if (last && last->stamp == stamp && last->notify == notify && last->off + last->len == at &&
		    last->rest == take + rest && last->poster == poster && !post && !last->post &&
		    (cont || notify))
			last->len += take, last->rest = rest;
		else if (*nseg < max)
			segs[(*nseg)++] = (struct uni_gf_seg){.off = at, .len = take, .stamp = stamp, .notify = notify,
							      .rest = rest, .poster = poster, .cont = cont && !notify,
							      .dep = {cont ? 0 : d->dep[0], cont ? 0 : d->dep[1]},
							      .post = post, .post_slot = d->slot};
		else
			last->len += take, last->notify = 0, last->rest = rest;
		/* Bytes of this message in segments so far (a preamble not yet
		 * whole, and a finished message, start the count again). */
		d->emitted = (!d->broken && d->npre == UNI_GF_PREAMBLE) ? d->emitted + take : 0;
		i += take;
	}
}

size_t uni_gf_write(struct uni_gf_conn *c, const uint8_t *buf, size_t n, uint64_t vt, int dispatcher,
		    struct uni_gf_seg *segs, size_t max)
{
	size_t nseg = 0;
	if (max == 0)
		return 0;
	out_bytes(c, buf, n, vt, dispatcher, 0, segs, max, &nseg);
	return nseg;
}

size_t uni_gf_writev(struct uni_gf_conn *c, const struct iovec *iov, int cnt, size_t n, uint64_t vt,
		     int dispatcher, struct uni_gf_seg *segs, size_t max)
{
	size_t nseg = 0, done = 0;
	if (max == 0)
		return 0;
	for (int k = 0; k < cnt && done < n; k++) {
		size_t len = iov[k].iov_len < n - done ? iov[k].iov_len : n - done;
		out_bytes(c, iov[k].iov_base, len, vt, dispatcher, done, segs, max, &nseg);
		done += len;
	}
	return nseg;
}

/* An incoming message is complete. */
static void in_done(struct uni_gf_conn *c)
{
	struct uni_gf_dir *d = &c->in;
	if ((d->opcode == UNI_GF_SEND_UNBOUND || d->opcode == UNI_GF_SEND_BUFFER) && c->rr_out)
		c->rr_out--;
	d->npre = 0;
	d->messages++;
}

static void in_bytes(struct uni_gf_conn *c, const uint8_t *p, size_t n, uint64_t t)
{
	struct uni_gf_dir *d = &c->in;
	size_t i = 0;
	while (i < n && !d->broken) {
		if (d->npre < UNI_GF_PREAMBLE) {
			size_t take = UNI_GF_PREAMBLE - d->npre;
			if (take > n - i)
				take = n - i;
			memcpy(d->pre + d->npre, p + i, take);
			d->npre += (uint32_t)take;
			i += take;
			if (d->npre == UNI_GF_PREAMBLE && preamble_done(d) == 0) {
				if (d->opcode == UNI_GF_RECV_READY) {
					slot_put(c->released, d->slot, t, 0, c->read_src, 0);
					update_owed(c);
				}
				if (d->body_left == 0)
					in_done(c);
			}
		} else {
			size_t take = d->body_left < n - i ? (size_t)d->body_left : n - i;
			d->body_left -= take;
			i += take;
			if (d->body_left == 0)
				in_done(c);
		}
	}
}

void uni_gf_set_post_src(struct uni_gf_conn *c, uint64_t slot, uint64_t src)
{
	/* The newest entry for slot: the one the last write put there. */
	int best = -1;
	for (uint32_t i = 0; i < UNI_GF_SLOTS; i++)
		if (c->posted[i].used && c->posted[i].slot == slot && !c->posted[i].src &&
		    (best < 0 || c->posted[i].t >= c->posted[best].t))
			best = (int)i;
	if (best >= 0)
		c->posted[best].src = src;
}

void uni_gf_read(struct uni_gf_conn *c, const uint8_t *buf, size_t n, uint64_t t)
{
	in_bytes(c, buf, n, t);
}

void uni_gf_readv(struct uni_gf_conn *c, const struct iovec *iov, int cnt, size_t n, uint64_t t)
{
	size_t done = 0;
	for (int k = 0; k < cnt && done < n; k++) {
		size_t len = iov[k].iov_len < n - done ? iov[k].iov_len : n - done;
		in_bytes(c, iov[k].iov_base, len, t);
		done += len;
	}
}
