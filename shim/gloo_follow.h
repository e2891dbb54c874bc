/* Following Gloo's TCP op stream on one connection (DESIGN section 4, rule 3).
 *
 * Every Gloo message starts with a 48-byte preamble of six little-endian
 * size_t: nbytes (48 + payload), opcode, slot, offset, length, roffset.
 * Opcodes: 0 SEND_BUFFER, 1 SEND_UNBOUND_BUFFER (data), 2 NOTIFY_SEND_READY,
 * 3 NOTIFY_RECV_READY. A transfer is: the sender posts SEND_READY, the
 * receiver posts RECV_READY, and the data message goes once the sender has
 * seen RECV_READY, written by the poster or later by Gloo's loop thread.
 *
 * The follower stamps outgoing bytes:
 *   - a notify carries the writer's time (and a SEND_READY remembers it as
 *     the slot's post time);
 *   - a data message carries max(writer's time, the slot's post time, the
 *     arrival of the peer's RECV_READY for that slot); written by a
 *     dispatcher (Gloo's loop thread, on the poster's behalf) it carries
 *     max(post time, release time) alone;
 *   - the rest of a message (a write that hit EAGAIN, finished later by
 *     another thread) keeps the stamp of its first part.
 * and records the arrival of incoming RECV_READY notices per slot.
 * A stream it cannot parse falls back to the writer's time and is counted
 * (uni_gf_dir.broken), never silently mis-timed. Pure logic: no I/O, no
 * locks (Gloo serialises a pair's reads and writes with the pair mutex). */
#ifndef UNI_SHIM_GLOO_FOLLOW_H
#define UNI_SHIM_GLOO_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

#define UNI_GF_PREAMBLE 48u
#define UNI_GF_SLOTS 32u

enum { UNI_GF_SEND_BUFFER = 0, UNI_GF_SEND_UNBOUND = 1, UNI_GF_SEND_READY = 2, UNI_GF_RECV_READY = 3 };

struct uni_gf_slot_time {
	uint64_t slot;
	uint64_t t;
	uint32_t used;
	uint32_t who; /* posted: the posting thread (uni_gf_conn.writer then) */
	uint64_t src; /* the event that set it (unitrace replay): the SEND of the
	                 SEND_READY (uni_gf_set_post_src) or the read of the RECV_READY */
	uint64_t len; /* posted: the size the SEND_READY announced */
};

/* One direction of one connection. Zero-initialised = start of stream. */
struct uni_gf_dir {
	uint8_t pre[UNI_GF_PREAMBLE];
	uint32_t npre;       /* preamble bytes gathered */
	uint32_t broken;     /* 1: gave up parsing this direction */
	uint64_t body_left;  /* payload bytes of the current message still to come */
	uint64_t stamp;      /* stamp of the current message */
	uint64_t opcode, slot;
	uint64_t messages;   /* whole messages seen */
	uint32_t poster;     /* out: the thread that posted the current data message (0: unknown) */
	uint32_t pad;
	uint64_t dep[2];     /* out: the events its stamp comes from (post, release) */
	uint64_t emitted;    /* out: bytes of the current message already in segments */
};

struct uni_gf_conn {
	struct uni_gf_dir out, in;
	struct uni_gf_slot_time posted[UNI_GF_SLOTS];   /* our SEND_READY times */
	struct uni_gf_slot_time released[UNI_GF_SLOTS]; /* peer's RECV_READY arrivals */
	uint64_t fallbacks;  /* bytes stamped with the writer's time for want of parse */
	uint32_t rr_out;     /* RECV_READY notices sent whose data has not been read yet */
	uint32_t rr_len;     /* size the last one announced */
	uint64_t rr_slot;    /* its slot */
	uint32_t sr_wait;    /* SEND_READY notices sent that no RECV_READY answered yet:
	                        sends waiting for the peer to post their receives */
	uint32_t sr_len;     /* size the latest of them announced */
	uint64_t sr_slot;    /* its slot */
	uint64_t owed;       /* earliest stamp of a data message owed: posted (SEND_READY)
	                        and released (RECV_READY) but not written; UINT64_MAX: none
	                        (0 in a zeroed conn also means none) */
	uint64_t read_src;   /* set by the caller before each read: the id of the read
	                        event (a RECV_READY read remembers it) */
	uint32_t writer;     /* set by the caller before each write: the writing thread's
	                        id (0: a dispatcher or unknown); a SEND_READY remembers
	                        it as the slot's poster */
	uint32_t pad;
};

/* A piece of an outgoing write with one stamp. */
struct uni_gf_seg {
	uint64_t off; /* offset within the write */
	uint64_t len;
	uint64_t stamp;
	int notify;   /* whole notify messages only (SEND_READY / RECV_READY) */
	uint64_t rest; /* bytes of its message still to be written after it */
	uint32_t poster; /* data: the thread that posted the message (its SEND_READY's
	                    writer, else the writer of the data itself); 0: unknown */
	uint32_t cont;   /* 1: it continues a message begun in an earlier segment or write */
	uint64_t dep[2]; /* data, first segment of a message: the events its stamp comes
	                    from (the post, the peer's RECV_READY read); 0: none */
	uint64_t post_slot; /* post = 1: the slot of the SEND_READY it carries */
	uint32_t post;   /* 1: a SEND_READY notice (give its event id with
	                    uni_gf_set_post_src once it is pushed) */
	uint32_t pad2;
};

/* Outgoing: n bytes written by a thread at time vt (a dispatcher passes
 * dispatcher = 1: a data message it writes on a poster's behalf is stamped
 * max(post time, release time), not with the event it happens to be
 * handling). Fills up to max
 * segments (a write may end one message and start the next) and returns
 * how many; bytes past max segments are stamped as the last one. */
size_t uni_gf_write(struct uni_gf_conn *c, const uint8_t *buf, size_t n, uint64_t vt, int dispatcher,
		    struct uni_gf_seg *segs, size_t max);

/* Same for a write given as an iovec-like list of (ptr, len) pairs, of
 * which the first n bytes were written. */
struct iovec;
size_t uni_gf_writev(struct uni_gf_conn *c, const struct iovec *iov, int cnt, size_t n, uint64_t vt,
		     int dispatcher, struct uni_gf_seg *segs, size_t max);

/* The event id of the SEND that carried the SEND_READY for slot (a post
 * remembered by the last write; unitrace replay). */
void uni_gf_set_post_src(struct uni_gf_conn *c, uint64_t slot, uint64_t src);

/* Incoming: n bytes read that arrived (last byte) at time t. */
void uni_gf_read(struct uni_gf_conn *c, const uint8_t *buf, size_t n, uint64_t t);
void uni_gf_readv(struct uni_gf_conn *c, const struct iovec *iov, int cnt, size_t n, uint64_t t);

#endif
