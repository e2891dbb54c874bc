/* Unit tests for the device timeline (shim/devtl.c) on synthetic CUPTI
 * records.
 *
 * Checks: glob factors (first match wins, else the rank's slowdown); a
 * stream's kernels run back to back from their launch times, scaled; a
 * kernel launched after the stream went idle starts at its launch, one
 * whose launch was not seen right after the previous one; records in any
 * order give the same timeline, and folding stops at the position asked
 * for; an NCCL operation placed on a stream delays the kernels after it;
 * events: a wait on another stream's event starts after the work before
 * the record (whichever stream is folded first), a re-recorded event is
 * waited for at the record before the wait, waiting for an event never
 * recorded does nothing; a graph's kernels (one correlation id) run in
 * their real order; a record behind a folded position is counted late
 * and still counted; full tables count drops instead of failing.
 * Completeness: a launch that names its stream owes a record there until
 * it comes (a driver launch inside a runtime one pays the runtime's; a
 * stream that waits for an event owes what the event's stream owes before
 * it),
 * giving up stops the wait; an open operation of the shim's holds the
 * stream's later positions (not complete, not folded) until closed; a late
 * event record keeps its time (the reviewer's case: another stream folded
 * past its position before the record was made); a destroyed event is
 * forgotten, and its slot reused. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "devtl.h"

static const struct uni_devtl_rule rules[] = {
	{"*gemm*", 2.0},
	{"*gemm_small*", 9.0}, /* never reached: the first match wins */
	{"elementwise_*", 0.5},
};

#define K(c) (4 * (uint64_t)(c) + 2) /* a kernel's position */
#define A(c) (4 * (uint64_t)(c) + 3) /* after the call c */

START_TEST(test_factor)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.5);
	ck_assert_double_eq(uni_devtl_factor(&tl, "ampere_sgemm_128x64"), 2.0);
	ck_assert_double_eq(uni_devtl_factor(&tl, "gemm_small_kernel"), 2.0);
	ck_assert_double_eq(uni_devtl_factor(&tl, "elementwise_add"), 0.5);
	ck_assert_double_eq(uni_devtl_factor(&tl, "softmax"), 1.5);
	ck_assert_double_eq(uni_devtl_factor(&tl, NULL), 1.5);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_back_to_back)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 10, 100);
	uni_devtl_launch(&tl, 11, 110);
	uni_devtl_record(&tl, 7, 10, 1000, 1500, "sgemm"); /* 500 x 2 */
	uni_devtl_record(&tl, 7, 11, 1500, 1600, "relu");  /* 100 x 1 */
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 7, A(11)), 1200);
	/* Idle, then a launch at 5000 (while the stream is free). */
	uni_devtl_launch(&tl, 12, 5000);
	uni_devtl_record(&tl, 7, 12, 9000, 9010, "elementwise_mul"); /* 10 x 0.5 */
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 7, A(12)), 5005);
	/* A kernel whose launch was not seen runs right after. */
	uni_devtl_record(&tl, 7, 13, 9100, 9200, "relu");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 7, A(13)), 5105);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 8, A(13)), 0); /* unknown stream */
	ck_assert_uint_eq(tl.kernels, 4);
	ck_assert_uint_eq(tl.late, 0);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_out_of_order)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_record(&tl, 3, 21, 300, 400, "k");   /* before its launch */
	uni_devtl_launch(&tl, 20, 50);
	uni_devtl_launch(&tl, 21, 60);
	uni_devtl_record(&tl, 3, 22, 400, 450, "k");   /* launch never seen */
	/* Folding stops where asked: only up to call 20 (not in yet). */
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 3, A(20)), 0);
	uni_devtl_record(&tl, 3, 20, 100, 300, "k");
	/* 20 was behind the folded position: counted late, placed there. */
	ck_assert_uint_eq(tl.late, 1);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 3, A(20)), 250);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 3, A(21)), 350);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 3, A(22)), 400);
	uni_devtl_free(&tl);

	/* The same records in order, folded at once: the same end. */
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 20, 50);
	uni_devtl_launch(&tl, 21, 60);
	uni_devtl_record(&tl, 3, 22, 400, 450, "k");
	uni_devtl_record(&tl, 3, 21, 300, 400, "k");
	uni_devtl_record(&tl, 3, 20, 100, 300, "k");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 3, A(22)), 400);
	ck_assert_uint_eq(tl.late, 0);
	uni_devtl_free(&tl);
}
END_TEST

/* An operation of the shim's with known times: opened, then closed. */
static void op(struct uni_devtl *tl, uint32_t stream, uint64_t seq, uint64_t vstart, uint64_t vdur)
{
	ck_assert_int_eq(uni_devtl_op_open(tl, stream, &seq), 0);
	uni_devtl_op_close(tl, stream, seq, vstart, vdur);
}

START_TEST(test_op)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 1, 0);
	uni_devtl_record(&tl, 5, 1, 0, 1000, "k");
	/* The shim's operation after call 1: starts at 1500, lasts 300. */
	op(&tl, 5, A(1), 1500, 300);
	/* Launched at 1300, behind the operation on the stream. */
	uni_devtl_launch(&tl, 2, 1300);
	uni_devtl_record(&tl, 5, 2, 2000, 2100, "k");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 5, A(1)), 1800);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 5, A(2)), 1900);
	/* An operation whose start is earlier than the stream's end waits. */
	op(&tl, 5, A(2), 1000, 50);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 5, A(2)), 1950);
	uni_devtl_free(&tl);
}
END_TEST

static void event_setup(struct uni_devtl *tl)
{
	uni_devtl_init(tl, rules, 3, 1.0);
	/* Stream 1 (compute): a 2000 kernel, then the event, then more. */
	uni_devtl_launch(tl, 30, 100);
	uni_devtl_record(tl, 1, 30, 0, 2000, "k");
	uni_devtl_event_record(tl, 1, 0xe0, K(31));
	uni_devtl_launch(tl, 32, 110);
	uni_devtl_record(tl, 1, 32, 2000, 7000, "k");
	/* Stream 2 waits for the event, then runs a 100 kernel launched at 120. */
	uni_devtl_wait(tl, 2, 0xe0, K(33));
	uni_devtl_launch(tl, 34, 120);
	uni_devtl_record(tl, 2, 34, 0, 100, "k");
}

START_TEST(test_events)
{
	struct uni_devtl tl;
	uint64_t t = 0;
	/* Stream 2 folded first: the wait folds stream 1 up to the record. */
	event_setup(&tl);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(34)), 2200);
	ck_assert_int_eq(uni_devtl_event_time(&tl, 0xe0, &t), 1);
	ck_assert_uint_eq(t, 2100);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 1, A(34)), 7100);
	ck_assert_uint_eq(uni_devtl_all_end(&tl, A(34)), 7100);
	uni_devtl_free(&tl);
	/* Stream 1 folded first: the same. */
	event_setup(&tl);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 1, A(34)), 7100);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(34)), 2200);
	uni_devtl_free(&tl);
	/* The event's time asked first (cudaEventSynchronize). */
	event_setup(&tl);
	ck_assert_int_eq(uni_devtl_event_time(&tl, 0xe0, &t), 1);
	ck_assert_uint_eq(t, 2100);
	ck_assert_int_eq(uni_devtl_event_time(&tl, 0xe1, &t), 0);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_event_rerecorded)
{
	struct uni_devtl tl;
	uint64_t t = 0;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_wait(&tl, 2, 0xe0, K(1)); /* never recorded: nothing */
	uni_devtl_launch(&tl, 2, 0);
	uni_devtl_record(&tl, 1, 2, 0, 1000, "k");
	uni_devtl_event_record(&tl, 1, 0xe0, K(3));
	uni_devtl_wait(&tl, 2, 0xe0, K(4)); /* waits for the record at 3 */
	uni_devtl_launch(&tl, 5, 0);
	uni_devtl_record(&tl, 1, 5, 1000, 4000, "k");
	uni_devtl_event_record(&tl, 1, 0xe0, K(6)); /* recorded again: 4000 */
	uni_devtl_launch(&tl, 7, 0);
	uni_devtl_record(&tl, 2, 7, 0, 10, "k");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(7)), 1010);
	ck_assert_int_eq(uni_devtl_event_time(&tl, 0xe0, &t), 1);
	ck_assert_uint_eq(t, 4000);
	/* Where a wait for the event looks: its latest record's stream and
	 * position (no other stream); an event never recorded: nowhere. */
	uint32_t es = 0;
	uint64_t eseq = 0;
	ck_assert_int_eq(uni_devtl_event_where(&tl, 0xe0, &es, &eseq), 1);
	ck_assert_uint_eq(es, 1);
	ck_assert_uint_eq(eseq, K(6));
	ck_assert_int_eq(uni_devtl_event_where(&tl, 0xe9, &es, &eseq), 0);
	uni_devtl_event_forget(&tl, 0xe0);
	ck_assert_int_eq(uni_devtl_event_where(&tl, 0xe0, &es, &eseq), 0);
	uni_devtl_free(&tl);
}
END_TEST

/* torch.cuda.Stream.wait_stream: an event recorded on stream 1, waited
 * on by stream 2 and destroyed at once: the wait still holds (CUDA keeps
 * it); the event is forgotten once the wait is folded. The handle made
 * again and recorded before that: the new records stay. */
START_TEST(test_event_destroyed)
{
	struct uni_devtl tl;
	uint32_t es;
	uint64_t eseq;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 2, 0);
	uni_devtl_record(&tl, 1, 2, 0, 1000, "k");
	uni_devtl_event_record(&tl, 1, 0xe0, K(3));
	uni_devtl_wait(&tl, 2, 0xe0, K(4));
	uni_devtl_event_forget(&tl, 0xe0);
	uni_devtl_launch(&tl, 5, 0);
	uni_devtl_record(&tl, 2, 5, 0, 10, "k");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(5)), 1010);
	ck_assert_int_eq(uni_devtl_event_where(&tl, 0xe0, &es, &eseq), 0);
	uni_devtl_free(&tl);

	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 2, 0);
	uni_devtl_record(&tl, 1, 2, 0, 1000, "k");
	uni_devtl_event_record(&tl, 1, 0xe0, K(3));
	uni_devtl_wait(&tl, 2, 0xe0, K(4));
	uni_devtl_event_forget(&tl, 0xe0);
	uni_devtl_event_record(&tl, 1, 0xe0, K(6)); /* the handle again */
	uni_devtl_launch(&tl, 7, 0);
	uni_devtl_record(&tl, 2, 7, 0, 10, "k");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(7)), 1010);
	ck_assert_int_eq(uni_devtl_event_where(&tl, 0xe0, &es, &eseq), 1);
	ck_assert_uint_eq(eseq, K(6));
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_graph)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	/* A graph launch: its kernels share the call's id; they come in any
	 * order and run in their real order. */
	uni_devtl_launch(&tl, 40, 1000);
	uni_devtl_record(&tl, 4, 40, 300, 400, "elementwise_b"); /* 50 */
	uni_devtl_record(&tl, 4, 40, 100, 200, "sgemm_a");       /* 200 */
	op(&tl, 4, A(40), 0, 10);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 4, A(40)), 1260);
	ck_assert_uint_eq(tl.s[0].nq, 0);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_full_tables)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	for (uint32_t i = 0; i < UNI_DEVTL_STREAMS; i++)
		uni_devtl_record(&tl, 100 + i, i + 1, 0, 10, "k");
	ck_assert_uint_eq(tl.dropped, 0);
	uni_devtl_record(&tl, 999, 1000, 0, 10, "k");
	ck_assert_uint_eq(tl.dropped, 1);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 999, A(1000)), 0);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 100, A(1000)), 10);
	for (uint64_t e = 1; e <= UNI_DEVTL_EVENTS; e++)
		uni_devtl_event_record(&tl, 100, e << 4, K(2000 + e));
	ck_assert_uint_eq(tl.dropped, 1);
	uni_devtl_event_record(&tl, 100, 0xfff0000, K(5000));
	ck_assert_uint_eq(tl.dropped, 2);
	/* A launch table slot reused by a later id forgets the earlier one. */
	uni_devtl_launch(&tl, 7, 500);
	uni_devtl_launch(&tl, 7 + UNI_DEVTL_LAUNCHES, 900);
	uni_devtl_record(&tl, 101, 7, 0, 10, "k");
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 101, A(UINT32_MAX)), 20);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_owed)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 50, 100);
	uni_devtl_expect(&tl, 9, 50);
	uni_devtl_launch(&tl, 51, 110);
	uni_devtl_expect(&tl, 9, 51);
	/* A driver launch (52) inside the runtime one (51). */
	uni_devtl_launch(&tl, 52, 110);
	uni_devtl_alias(&tl, 52, 51);
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(49)), 1);
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(50)), 0);
	ck_assert_int_eq(uni_devtl_complete(&tl, UINT32_MAX, A(50)), 0);
	ck_assert_int_eq(uni_devtl_complete(&tl, 8, A(60)), 1); /* another stream owes nothing */
	uni_devtl_record(&tl, 9, 50, 0, 100, "k");
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(50)), 1);
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(51)), 0);
	uni_devtl_record(&tl, 9, 52, 100, 300, "k"); /* the driver's id pays 51 */
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(52)), 1);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 9, A(52)), 400);
	/* Never comes: given up. */
	uni_devtl_launch(&tl, 60, 1000);
	uni_devtl_expect(&tl, 9, 60);
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(60)), 0);
	uni_devtl_give_up(&tl, 9, A(60));
	ck_assert_int_eq(uni_devtl_complete(&tl, 9, A(60)), 1);
	ck_assert_uint_eq(tl.given_up, 1);
	/* A wait makes the waiting stream owe what the event's stream owes
	 * before the event. */
	uni_devtl_launch(&tl, 70, 2000);
	uni_devtl_expect(&tl, 1, 70);
	uni_devtl_event_record(&tl, 1, 0xe7, K(71));
	uni_devtl_wait(&tl, 2, 0xe7, K(72));
	ck_assert_int_eq(uni_devtl_complete(&tl, 2, A(72)), 0);
	uni_devtl_record(&tl, 1, 70, 0, 500, "k");
	ck_assert_int_eq(uni_devtl_complete(&tl, 2, A(72)), 1);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(72)), 2500);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_open_op)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 1, 0);
	uni_devtl_record(&tl, 4, 1, 0, 1000, "k");
	uint64_t seq = A(1);
	ck_assert_int_eq(uni_devtl_op_open(&tl, 4, &seq), 0);
	ck_assert_uint_eq(seq, A(1));
	uni_devtl_launch(&tl, 2, 0);
	uni_devtl_record(&tl, 4, 2, 2000, 2100, "k");
	/* Open: later positions are not complete, folding stops before it. */
	ck_assert_int_eq(uni_devtl_complete(&tl, 4, A(2)), 0);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 4, A(2)), 1000);
	uni_devtl_op_close(&tl, 4, seq, 1500, 500);
	ck_assert_int_eq(uni_devtl_complete(&tl, 4, A(2)), 1);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 4, A(2)), 2100);
	/* An op opened behind what was folded goes to the folded position. */
	uint64_t late = A(1);
	ck_assert_int_eq(uni_devtl_op_open(&tl, 4, &late), 0);
	ck_assert_uint_eq(late, A(2));
	uni_devtl_op_close(&tl, 4, late, 0, 10);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 4, A(3)), 2110);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_late_event)
{
	struct uni_devtl tl;
	uint64_t t = 0;
	uni_devtl_init(&tl, rules, 3, 1.0);
	uni_devtl_launch(&tl, 10, 0);
	uni_devtl_record(&tl, 1, 10, 0, 150, "k");
	/* Stream 1 is folded past 12 before the record at 11 is made. */
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 1, A(12)), 150);
	uni_devtl_event_record(&tl, 1, 0xe0, K(11));
	uni_devtl_wait(&tl, 2, 0xe0, K(13));
	uni_devtl_launch(&tl, 14, 0);
	uni_devtl_record(&tl, 2, 14, 0, 10, "k");
	ck_assert_int_eq(uni_devtl_event_time(&tl, 0xe0, &t), 1);
	ck_assert_uint_eq(t, 150);
	ck_assert_uint_eq(uni_devtl_stream_end(&tl, 2, A(14)), 160);
	/* Destroyed: forgotten; a new event may take its slot. */
	uni_devtl_event_forget(&tl, 0xe0);
	ck_assert_int_eq(uni_devtl_event_time(&tl, 0xe0, &t), 0);
	for (uint64_t e = 1; e <= UNI_DEVTL_EVENTS; e++)
		uni_devtl_event_record(&tl, 1, e << 8, K(100 + e));
	ck_assert_uint_eq(tl.dropped, 0);
	uni_devtl_free(&tl);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("devtl");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_factor);
	tcase_add_test(tc, test_back_to_back);
	tcase_add_test(tc, test_out_of_order);
	tcase_add_test(tc, test_op);
	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_event_rerecorded);
	tcase_add_test(tc, test_event_destroyed);
	tcase_add_test(tc, test_graph);
	tcase_add_test(tc, test_full_tables);
	tcase_add_test(tc, test_owed);
	tcase_add_test(tc, test_open_op);
	tcase_add_test(tc, test_late_event);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
