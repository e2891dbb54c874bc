/* Unit tests for the device timeline (shim/devtl.c) on synthetic CUPTI
 * records.
 *
 * Checks: glob factors (first match wins, else the rank's slowdown); a
 * stream's kernels run back to back from their launch times, scaled;
 * a kernel launched after the stream went idle starts at its launch; a
 * record that comes before its launch (CUPTI's buffer thread is not
 * ordered with the callback) is kept and applied; records in any order
 * fold only the complete prefix and say whether the end is final; two
 * streams are independent; an unknown stream has no work; full tables
 * count drops instead of failing. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "devtl.h"

static const struct uni_devtl_rule rules[] = {
	{"*gemm*", 2.0},
	{"*gemm_small*", 9.0}, /* never reached: the first match wins */
	{"elementwise_*", 0.5},
};

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
	uint64_t end;
	/* three launches at 100, 110, 120 (virtual ns); 1000, 500, 200 ns of
	 * real device time: gemm x2, softmax x1, elementwise x0.5 */
	ck_assert_int_eq(uni_devtl_launch(&tl, 7, 1, 100), 0);
	ck_assert_int_eq(uni_devtl_launch(&tl, 7, 2, 110), 0);
	ck_assert_int_eq(uni_devtl_launch(&tl, 7, 3, 120), 0);
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 7, &end), 0); /* no record yet */
	uni_devtl_record(&tl, 1, 5000, 6000, "sgemm");
	uni_devtl_record(&tl, 2, 6000, 6500, "softmax");
	uni_devtl_record(&tl, 3, 6500, 6700, "elementwise_mul");
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 7, &end), 1);
	/* 100 + 2000 = 2100, + 500 = 2600, + 100 = 2700 */
	ck_assert_uint_eq(end, 2700);
	/* idle, then a late launch starts at its launch time */
	ck_assert_int_eq(uni_devtl_launch(&tl, 7, 4, 10000), 0);
	uni_devtl_record(&tl, 4, 9000, 9300, "softmax");
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 7, &end), 1);
	ck_assert_uint_eq(end, 10300);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_out_of_order)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, NULL, 0, 1.0);
	uint64_t end;
	/* record of 2 comes before the launch of 2, and before the record of 1 */
	ck_assert_int_eq(uni_devtl_launch(&tl, 1, 1, 0), 0);
	uni_devtl_record(&tl, 2, 0, 300, "b");
	ck_assert_int_eq(uni_devtl_launch(&tl, 1, 2, 10), 0);
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 1, &end), 0);
	ck_assert_uint_eq(end, 0); /* nothing folded: kernel 1 is missing */
	uni_devtl_record(&tl, 1, 0, 100, "a");
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 1, &end), 1);
	ck_assert_uint_eq(end, 400); /* 0..100, then 100..400 */
	ck_assert_uint_eq(tl.norphans, 0);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_streams_independent)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, NULL, 0, 3.0);
	uint64_t a, b, c;
	uni_devtl_launch(&tl, 10, 1, 0);
	uni_devtl_launch(&tl, 20, 2, 0);
	uni_devtl_record(&tl, 2, 0, 50, "x");
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 20, &b), 1);
	ck_assert_uint_eq(b, 150);
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 10, &a), 0);
	uni_devtl_record(&tl, 1, 0, 10, "y");
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 10, &a), 1);
	ck_assert_uint_eq(a, 30);
	ck_assert_int_eq(uni_devtl_stream_end(&tl, 99, &c), 1);
	ck_assert_uint_eq(c, 0);
	uni_devtl_free(&tl);
}
END_TEST

START_TEST(test_full_tables)
{
	struct uni_devtl tl;
	uni_devtl_init(&tl, NULL, 0, 1.0);
	for (uint64_t s = 0; s < UNI_DEVTL_STREAMS; s++)
		ck_assert_int_eq(uni_devtl_launch(&tl, s, (uint32_t)s, 0), 0);
	ck_assert_int_eq(uni_devtl_launch(&tl, 999, 999, 0), -1);
	ck_assert_uint_eq(tl.dropped, 1);
	for (uint32_t i = 0; i < UNI_DEVTL_PENDING; i++)
		uni_devtl_record(&tl, 100000 + i, 0, 1, "k");
	ck_assert_uint_eq(tl.norphans, UNI_DEVTL_PENDING);
	uni_devtl_record(&tl, 999999, 0, 1, "k");
	ck_assert_uint_eq(tl.dropped, 2);
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
	tcase_add_test(tc, test_streams_independent);
	tcase_add_test(tc, test_full_tables);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
