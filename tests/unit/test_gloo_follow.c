/* Gloo op-stream follower (shim/gloo_follow.c): the stamps it gives
 * outgoing bytes and the release times it records from incoming ones.
 *
 * Checks, on byte streams built exactly as Gloo's TCP pair writes them
 * (48-byte little-endian preamble: nbytes, opcode, slot, offset, length,
 * roffset; then the payload): a notice is stamped with its writer's time
 * and a SEND_READY remembers it; a data message takes max(writer, post,
 * release) and, written by a dispatcher, max(post, release) alone; a
 * preamble split across writes and across reads; a message finished after
 * EAGAIN by another thread keeps its first part's stamp; one write holding
 * two messages gives two segments; iovec lists; a stream that does not
 * parse falls back to the writer's time and is counted.
 * Not checked here: the shim's use of the segments (integration tests
 * sim-p2p and sim-overlap check the resulting timeline). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "gloo_follow.h"

static size_t msg(uint8_t *buf, uint64_t op, uint64_t slot, uint64_t payload)
{
	uint64_t f[6] = {48 + payload, op, slot, 0, payload, 0};
	for (int i = 0; i < 6; i++)
		for (int b = 0; b < 8; b++)
			buf[i * 8 + b] = (uint8_t)(f[i] >> (8 * b));
	memset(buf + 48, 0xab, payload);
	return 48 + payload;
}

static struct uni_gf_conn *conn(void)
{
	return calloc(1, sizeof(struct uni_gf_conn));
}

START_TEST(test_notice_and_post)
{
	struct uni_gf_conn *c = conn();
	uint8_t b[48];
	struct uni_gf_seg s[4];
	size_t n = msg(b, UNI_GF_SEND_READY, 7, 0);
	ck_assert_uint_eq(uni_gf_write(c, b, n, 100, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 100);
	ck_assert_uint_eq(s[0].len, 48);
	ck_assert_int_eq(s[0].notify, 1);
	/* The data for slot 7, written later by the same thread at 150 with
	 * the peer's RECV_READY arrived at 300: stamped 300. */
	uint8_t in[48];
	msg(in, UNI_GF_RECV_READY, 7, 0);
	uni_gf_read(c, in, 48, 300);
	uint8_t d[48 + 64];
	n = msg(d, UNI_GF_SEND_UNBOUND, 7, 64);
	ck_assert_uint_eq(uni_gf_write(c, d, n, 150, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 300);
	ck_assert_uint_eq(s[0].len, 112);
	ck_assert_int_eq(s[0].notify, 0);
	free(c);
}
END_TEST

/* Sends posted (SEND_READY) and not answered by the peer's RECV_READY are
 * counted, with the latest one's slot and announced size (deadlock
 * reports: "waits to send to rank R"); a RECV_READY for one of them, and
 * the data message, take it off. */
START_TEST(test_sends_waiting_for_receive)
{
	struct uni_gf_conn *c = conn();
	uint8_t b[48], in[48], d[48 + 16];
	struct uni_gf_seg s[4];
	msg(b, UNI_GF_SEND_READY, 5, 0);
	b[32] = 0x00, b[33] = 0x40; /* length 16384 */
	uni_gf_write(c, b, 48, 100, 0, s, 4);
	ck_assert_uint_eq(c->sr_wait, 1);
	ck_assert_uint_eq(c->sr_slot, 5);
	ck_assert_uint_eq(c->sr_len, 16384);
	msg(b, UNI_GF_SEND_READY, 6, 0);
	b[32] = 0x10; /* length 16 */
	uni_gf_write(c, b, 48, 200, 0, s, 4);
	ck_assert_uint_eq(c->sr_wait, 2);
	ck_assert_uint_eq(c->sr_slot, 6);
	ck_assert_uint_eq(c->sr_len, 16);
	/* The peer posts slot 6's receive: slot 5 still waits. */
	msg(in, UNI_GF_RECV_READY, 6, 0);
	uni_gf_read(c, in, 48, 300);
	ck_assert_uint_eq(c->sr_wait, 1);
	ck_assert_uint_eq(c->sr_slot, 5);
	ck_assert_uint_eq(c->sr_len, 16384);
	uni_gf_write(c, d, msg(d, UNI_GF_SEND_UNBOUND, 6, 16), 400, 0, s, 4);
	ck_assert_uint_eq(c->sr_wait, 1);
	msg(in, UNI_GF_RECV_READY, 5, 0);
	uni_gf_read(c, in, 48, 500);
	ck_assert_uint_eq(c->sr_wait, 0);
	free(c);
}
END_TEST

START_TEST(test_dispatcher_write_keeps_poster_time)
{
	struct uni_gf_conn *c = conn();
	uint8_t b[48], in[48], d[48 + 10];
	struct uni_gf_seg s[4];
	uni_gf_write(c, b, msg(b, UNI_GF_SEND_READY, 3, 0), 500, 0, s, 4); /* posted at 500 */
	msg(in, UNI_GF_RECV_READY, 3, 0);
	uni_gf_read(c, in, 48, 200); /* released at 200 (before the post) */
	/* The loop thread writes the data while handling an unrelated event
	 * at 9000: the stamp is max(post, release) = 500, not 9000. */
	ck_assert_uint_eq(uni_gf_write(c, d, msg(d, UNI_GF_SEND_UNBOUND, 3, 10), 9000, 1, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 500);
	/* Without post or release known it falls back to its own time. */
	ck_assert_uint_eq(uni_gf_write(c, d, msg(d, UNI_GF_SEND_UNBOUND, 4, 10), 9000, 1, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 9000);
	free(c);
}
END_TEST

START_TEST(test_eagain_rest_keeps_stamp)
{
	struct uni_gf_conn *c = conn();
	static uint8_t d[48 + 5000];
	struct uni_gf_seg s[4];
	size_t n = msg(d, UNI_GF_SEND_UNBOUND, 1, 5000);
	ck_assert_uint_eq(uni_gf_write(c, d, 1000, 700, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 700);
	/* The loop thread writes the remaining 4048 bytes at 5000. */
	ck_assert_uint_eq(uni_gf_write(c, d + 1000, n - 1000, 5000, 1, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 700);
	ck_assert_uint_eq(s[0].len, n - 1000);
	ck_assert_uint_eq(c->out.messages, 1);
	free(c);
}
END_TEST

START_TEST(test_split_preamble_write)
{
	struct uni_gf_conn *c = conn();
	uint8_t b[48], in[48], d[48 + 8];
	struct uni_gf_seg s[4];
	uni_gf_write(c, b, msg(b, UNI_GF_SEND_READY, 9, 0), 100, 0, s, 4);
	msg(in, UNI_GF_RECV_READY, 9, 0);
	uni_gf_read(c, in, 48, 400);
	size_t n = msg(d, UNI_GF_SEND_UNBOUND, 9, 8);
	/* 20 bytes of the preamble: the message is not known yet, so they
	 * carry the writer's time. */
	ck_assert_uint_eq(uni_gf_write(c, d, 20, 120, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 120);
	ck_assert_uint_eq(s[0].notify, 0);
	/* The rest completes it: from here on the message's stamp. */
	ck_assert_uint_eq(uni_gf_write(c, d + 20, n - 20, 130, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 400);
	ck_assert_uint_eq(s[0].len, n - 20);
	free(c);
}
END_TEST

START_TEST(test_split_preamble_read)
{
	struct uni_gf_conn *c = conn();
	uint8_t in[48], d[48 + 4];
	struct uni_gf_seg s[4];
	msg(in, UNI_GF_RECV_READY, 5, 0);
	uni_gf_read(c, in, 30, 250);
	uni_gf_read(c, in + 30, 18, 260); /* completed by the read arriving at 260 */
	ck_assert_uint_eq(uni_gf_write(c, d, msg(d, UNI_GF_SEND_UNBOUND, 5, 4), 10, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 260);
	/* Data messages read in pieces keep the parser in step. */
	static uint8_t big[48 + 3000];
	size_t n = msg(big, UNI_GF_SEND_UNBOUND, 77, 3000);
	uni_gf_read(c, big, 1000, 300);
	uni_gf_read(c, big + 1000, n - 1000, 310);
	uni_gf_read(c, in, 48, 320);
	ck_assert_uint_eq(c->in.messages, 3);
	ck_assert_uint_eq(c->in.broken, 0);
	free(c);
}
END_TEST

START_TEST(test_two_messages_one_write)
{
	struct uni_gf_conn *c = conn();
	uint8_t buf[48 + 48 + 16];
	struct uni_gf_seg s[4];
	size_t n = msg(buf, UNI_GF_RECV_READY, 2, 0);
	n += msg(buf + n, UNI_GF_SEND_UNBOUND, 2, 16);
	uint8_t in[48];
	msg(in, UNI_GF_RECV_READY, 2, 0);
	uni_gf_read(c, in, 48, 900);
	ck_assert_uint_eq(uni_gf_write(c, buf, n, 50, 0, s, 4), 2);
	ck_assert_uint_eq(s[0].off, 0);
	ck_assert_uint_eq(s[0].len, 48);
	ck_assert_uint_eq(s[0].stamp, 50);
	ck_assert_int_eq(s[0].notify, 1);
	ck_assert_uint_eq(s[1].off, 48);
	ck_assert_uint_eq(s[1].len, 64);
	ck_assert_uint_eq(s[1].stamp, 900);
	free(c);
}
END_TEST

START_TEST(test_writev_iovecs)
{
	struct uni_gf_conn *c = conn();
	uint8_t pre[48 + 100];
	struct uni_gf_seg s[4];
	msg(pre, UNI_GF_SEND_UNBOUND, 11, 100);
	struct iovec iov[2] = {{pre, 48}, {pre + 48, 100}};
	/* Gloo's writev(preamble, payload), partially written: 90 bytes. */
	ck_assert_uint_eq(uni_gf_writev(c, iov, 2, 90, 42, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].len, 90);
	ck_assert_uint_eq(s[0].stamp, 42);
	ck_assert_uint_eq(c->out.body_left, 58);
	free(c);
}
END_TEST

START_TEST(test_unparseable_falls_back)
{
	struct uni_gf_conn *c = conn();
	uint8_t junk[64];
	struct uni_gf_seg s[4];
	memset(junk, 0xff, sizeof(junk)); /* nbytes 2^64-1: not Gloo */
	ck_assert_uint_eq(uni_gf_write(c, junk, sizeof(junk), 77, 0, s, 4) >= 1, 1);
	ck_assert_uint_eq(c->out.broken, 1);
	ck_assert_uint_eq(uni_gf_write(c, junk, sizeof(junk), 88, 0, s, 4), 1);
	ck_assert_uint_eq(s[0].stamp, 88);
	ck_assert_uint_eq(c->fallbacks, 64 + 16);
	free(c);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("gloo_follow");
	TCase *tc = tcase_create("follow");
	tcase_add_test(tc, test_notice_and_post);
	tcase_add_test(tc, test_sends_waiting_for_receive);
	tcase_add_test(tc, test_dispatcher_write_keeps_poster_time);
	tcase_add_test(tc, test_eagain_rest_keeps_stamp);
	tcase_add_test(tc, test_split_preamble_write);
	tcase_add_test(tc, test_split_preamble_read);
	tcase_add_test(tc, test_two_messages_one_write);
	tcase_add_test(tc, test_writev_iovecs);
	tcase_add_test(tc, test_unparseable_falls_back);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
