/* Unit tests for engine/nic.c, the fluid network of the nic and topology
 * models: max-min fair rates by progressive filling over every link a flow
 * crosses, recomputed at each flow's start and end, against closed forms.
 *
 * Checks: incast on one downlink (nic); flows across a switch-to-switch
 * link that share it, beside a flow within a switch that takes what the
 * shared downlink has left (topology: a two-level max-min allocation); the
 * rates moving on when a flow ends; a route's latency on every byte; a
 * rank on two switches using both cables at once; the steps of
 * deterministic mode (nic_final_to, a watch); a lazy flow holds the
 * network only once wanted (nic_unread_bound). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "nic.h"
#include "uni/common.h"
#include "uni/config.h"

static struct uni_config cfg;

#define MAXF 8
static uint64_t arrival[MAXF];

static void on_done(void *ctx, uint64_t start, uint64_t arr)
{
	(void)start;
	arrival[(uintptr_t)ctx] = arr;
}

static void load(const char *y)
{
	char err[512];
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "t", err, sizeof(err)) == 0, "%s", err);
	nic_reset();
	nic_idle_jump(1);
	ck_assert_int_eq(nic_init(8, &cfg), 0);
	nic_on_done(on_done);
	memset(arrival, 0, sizeof(arrival));
}

static struct nic_flow *flow(int i, int src, int dst, uint64_t stamp, uint64_t bytes)
{
	return nic_flow_new(src, dst, stamp, bytes, NULL, (void *)(uintptr_t)i);
}

static void run_to(uint64_t t)
{
	while (nic_now() < t)
		nic_advance(t);
}

/* Within 1 ns per ms of the closed form (rates are doubles). */
static void near(uint64_t got, double want_ns)
{
	ck_assert_msg(fabs((double)got - want_ns) <= 1 + want_ns * 1e-9, "got %llu ns, want %.0f ns",
		      (unsigned long long)got, want_ns);
}

START_TEST(test_incast)
{
	load("network: { model: nic, default: { latency: 1ms, bandwidth: 100Mbit } }");
	for (int i = 1; i <= 3; i++)
		flow(i, i, 0, 0, 1000000);
	run_to(1000000000);
	/* Three flows share rank 0's downlink: each at a third. */
	for (int i = 1; i <= 3; i++)
		near(arrival[i], 3 * 1e6 * 8 / 1e8 * 1e9 + 1e6);
	nic_reset();
}
END_TEST

/* Deterministic mode's steps (nic_final_to, as unid's det_sync uses it:
 * no idle jump): an empty network is final for ever; a flow that starts
 * later leaves it final up to the step's end; a step stops early where a
 * flow ends, and is final up to there; a watch on a byte stops it exactly
 * where that byte leaves. */
START_TEST(test_final_to)
{
	load("network: { model: nic, default: { latency: 1ms, bandwidth: 100Mbit } }");
	nic_idle_jump(0);
	ck_assert_uint_eq(nic_final_to(1000), UINT64_MAX);
	/* 125 kB at 100 Mbit/s: 10 ms, from 5 ms on. */
	struct nic_flow *f = flow(1, 1, 0, 5000000, 125000);
	nic_advance(2000000);
	ck_assert_uint_eq(nic_final_to(2000000), 2000000); /* nothing leaves before 5 ms */
	ck_assert_uint_eq(nic_final_to(6000000), nic_now()); /* (the step to 6 ms is not made yet) */
	/* Watch byte 12500 (the tenth): the step stops where it left. */
	nic_flow_watch(f, 12500);
	nic_advance(100000000);
	near(nic_now(), 6e6);
	ck_assert_uint_eq(nic_final_to(100000000), nic_now());
	uint64_t t;
	ck_assert(nic_byte_arrival(f, 12499, &t));
	near(t, 7e6);
	ck_assert(!nic_byte_arrival(f, 12500 + 1448, &t)); /* not left yet: not final */
	/* On to the flow's end, which stops the step (nobody read it). */
	nic_advance(100000000);
	near(nic_now(), 15e6);
	near(arrival[1], 16e6);
	nic_flow_read(f);
	nic_flow_release(f);
	nic_advance(100000000);
	ck_assert_uint_eq(nic_final_to(100000000), UINT64_MAX); /* empty again */
	nic_reset();
}
END_TEST

/* A lazy flow (the simulated NCCL's flow-control credits): finished and
 * unread, it holds the network at its arrival only once wanted, while an
 * ordinary one holds it until read. */
START_TEST(test_lazy)
{
	load("network: { model: nic, default: { latency: 1ms, bandwidth: 100Mbit } }");
	struct nic_flow *a = flow(1, 1, 0, 0, 125000); /* 10 ms + 1 ms */
	struct nic_flow *c = flow(2, 0, 1, 0, 8);
	nic_flow_lazy(c);
	run_to(100000000);
	near(arrival[1], 11e6);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, NULL, NULL, UINT64_MAX), arrival[1]);
	nic_flow_read(a);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, NULL, NULL, UINT64_MAX), UINT64_MAX);
	nic_flow_want(c);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, NULL, NULL, UINT64_MAX), arrival[2]);
	nic_flow_unwant(c);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, NULL, NULL, UINT64_MAX), UINT64_MAX);
	nic_reset();
}
END_TEST

/* A soft flow (a simulated NCCL stream) whose reader waits for another
 * read: finished, unread and not wanted, it does not hold the network;
 * wanted, or its reader not waiting, it does. And nic_idle_before: no
 * flow sends or may start before the time asked. */
static uint32_t g_away_conn = 7;
static int away_yes(uint32_t wconn)
{
	return wconn == g_away_conn;
}

START_TEST(test_soft_reader_waits)
{
	load("network: { model: nic, default: { latency: 1ms, bandwidth: 100Mbit } }");
	struct nic_flow *a = flow(1, 0, 1, 0, 125000); /* 10 ms + 1 ms */
	nic_flow_soft(a, 7);
	struct nic_flow *b = flow(2, 1, 0, 30000000, 8); /* stamped at 30 ms */
	ck_assert(nic_idle_before(0) == 1);
	ck_assert(nic_idle_before(1) == 0); /* a may start at 0 */
	nic_advance(100000000);
	near(nic_now(), 10e6); /* stopped where a finished, unread */
	near(arrival[1], 11e6);
	ck_assert(nic_idle_before(30000000) == 1); /* nothing before b's stamp */
	ck_assert(nic_idle_before(30000001) == 0);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, NULL, NULL, UINT64_MAX), arrival[1]);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, away_yes, NULL, UINT64_MAX), UINT64_MAX);
	g_away_conn = 8; /* its reader does not wait: it holds */
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, away_yes, NULL, UINT64_MAX), arrival[1]);
	g_away_conn = 7;
	nic_flow_want(a); /* a read waits for it: it holds */
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, away_yes, NULL, UINT64_MAX), arrival[1]);
	nic_flow_read(a);
	ck_assert_uint_eq(nic_unread_bound(0, UINT64_MAX, away_yes, NULL, UINT64_MAX), UINT64_MAX);
	(void)b;
	nic_reset();
}
END_TEST

/* Arrivals the network goes past unread are counted by why it let them
 * go (nic_released): the soft hold's hold() said no, or they were stale;
 * not those whose reader could not act on them (away). */
static int hold_no(uint32_t wconn)
{
	(void)wconn;
	return 0;
}

/* A lazy flow (a flow-control credit) holds from when it is wanted, not
 * from when it finished: one that arrived long before its sender said it
 * will read it was let go at once by the 200 ms soft hold and counted as
 * held (nccl_check correctness under nic: 3 to 5 a run, each read a few
 * microseconds later). */
START_TEST(test_lazy_wanted_late)
{
	load("network: { model: nic, default: { latency: 1ms, bandwidth: 100Mbit } }");
	struct nic_flow *c = flow(1, 0, 1, 0, 8);
	nic_flow_lazy(c);
	nic_flow_soft(c, 9);
	run_to(100000000);
	ck_assert_uint_eq(nic_unread_bound(uni_now_ns(), UINT64_MAX, NULL, hold_no, 200000000), UINT64_MAX);
	nanosleep(&(struct timespec){0, 300000000}, NULL); /* 300 ms of real time: older than the soft hold */
	nic_flow_want(c);
	uint64_t now = uni_now_ns();
	ck_assert_uint_eq(nic_unread_bound(now, UINT64_MAX, NULL, hold_no, 200000000), arrival[1]);
	ck_assert_uint_eq(nic_unread_bound(now + 250000000, UINT64_MAX, NULL, hold_no, 200000000), UINT64_MAX);
	nic_reset();
}
END_TEST

START_TEST(test_released_counted)
{
	load("network: { model: nic, default: { latency: 1ms, bandwidth: 100Mbit } }");
	uint64_t soft, stale, later = uni_now_ns() + 10000000000ull; /* 10 s of real time on */
	struct nic_flow *a = flow(1, 0, 1, 0, 125000); /* leaves 0..10 ms, arrives at 11 ms */
	nic_flow_soft(a, 7);
	struct nic_flow *b = flow(2, 2, 3, 0, 250000); /* 0..20 ms, at 21 ms */
	struct nic_flow *c = flow(3, 1, 2, 50000000, 8); /* stamped at 50 ms */
	nic_flow_soft(c, 8);
	nic_advance(100000000);
	near(nic_now(), 10e6); /* a finished unread */
	/* Its reader waits for other bytes: not counted when passed. */
	g_away_conn = 7;
	ck_assert_uint_eq(nic_unread_bound(later, UINT64_MAX, away_yes, NULL, 0), UINT64_MAX);
	run_to(12000000);
	nic_released(&soft, &stale);
	ck_assert_uint_eq(soft + stale, 0);
	nic_flow_read(a);
	nic_flow_release(a);
	/* b let go as stale, c by the soft hold. */
	nic_advance(100000000);
	near(nic_now(), 20e6); /* b finished unread */
	ck_assert_uint_eq(nic_unread_bound(later, 1000, NULL, NULL, 0), UINT64_MAX);
	nic_advance(100000000); /* to c's end, past b's arrival */
	near(nic_now(), 50e6 + 640);
	nic_released(&soft, &stale);
	ck_assert_uint_eq(stale, 1);
	ck_assert_uint_eq(soft, 0);
	nic_flow_read(b);
	nic_flow_release(b);
	ck_assert_uint_eq(nic_unread_bound(later, UINT64_MAX, NULL, NULL, 1000), 51000640); /* c holds */
	ck_assert_uint_eq(nic_unread_bound(later, UINT64_MAX, NULL, hold_no, 1000), UINT64_MAX);
	nic_idle_jump(1); /* (unid's network stays where it is when idle) */
	nic_advance(100000000);
	nic_idle_jump(0);
	near(nic_now(), 100e6);
	nic_released(&soft, &stale);
	ck_assert_uint_eq(stale, 1);
	ck_assert_uint_eq(soft, 1); /* c */
	nic_reset();
}
END_TEST

START_TEST(test_topology_shares)
{
	load("network:\n"
	     "  model: topology\n"
	     "  default: { bandwidth: 1Gbit }\n"
	     "  topology:\n"
	     "    switches:\n"
	     "      - { name: tor0, ranks: [0, 1], latency: 100us }\n"
	     "      - { name: tor1, ranks: [2, 3], latency: 100us }\n"
	     "    links: [ { between: [tor0, tor1], bandwidth: 100Mbit, latency: 1ms } ]\n");
	/* 0 -> 2 and 1 -> 3 share the 100 Mbit/s link: 50 each. 2 -> 3 stays
	 * within tor1 and shares rank 3's downlink with 1 -> 3: it gets the
	 * 950 Mbit/s that flow leaves. */
	flow(0, 0, 2, 0, 500000);
	flow(1, 1, 3, 0, 1000000);
	flow(2, 2, 3, 0, 1000000);
	run_to(2000000000);
	const double cross_lat = 1.2e6, near_lat = 0.2e6;
	near(arrival[2], 1e6 * 8 / 950e6 * 1e9 + near_lat);
	/* 0 -> 2 ends at 80 ms (0.5 MB at 50 Mbit/s) ... */
	near(arrival[0], 0.5e6 * 8 / 50e6 * 1e9 + cross_lat);
	/* ... then 1 -> 3 has the whole link for its last 0.5 MB. */
	near(arrival[1], (0.5e6 * 8 / 50e6 + 0.5e6 * 8 / 100e6) * 1e9 + cross_lat);
	nic_reset();
}
END_TEST

START_TEST(test_topology_byte_arrival)
{
	load("network:\n"
	     "  model: topology\n"
	     "  default: { bandwidth: 1Gbit }\n"
	     "  topology:\n"
	     "    switches: [ { name: a, ranks: [0] }, { name: b, ranks: [1] } ]\n"
	     "    links: [ { between: [a, b], bandwidth: 8Mbit, latency: 3ms } ]\n");
	struct nic_flow *f = flow(0, 0, 1, 1000000, 1000);
	nic_flow_hold(f);
	run_to(10000000);
	uint64_t t;
	/* Byte 499 left 0.5 ms after the stamp (1 MB/s), 3 ms on the link. */
	ck_assert(nic_byte_arrival(f, 499, &t));
	near(t, 1e6 + 0.5e6 + 3e6);
	nic_flow_read(f);
	nic_flow_release(f);
	nic_reset();
}
END_TEST

/* A rank on two switches sends on both at once: the cables are separate
 * links, so neither transfer slows the other. */
START_TEST(test_two_cables)
{
	load("network:\n"
	     "  model: topology\n"
	     "  default: { bandwidth: 100Gbit }\n"
	     "  topology:\n"
	     "    switches:\n"
	     "      - { name: leaf0, ranks: [0, 1], latency: 2us }\n"
	     "      - { name: leaf1, ranks: [2, 3], latency: 2us }\n"
	     "      - { name: nvs0, ranks: [0, 1], latency: 1us, bandwidth: 3600Gbit }\n"
	     "      - { name: spine }\n"
	     "    links:\n"
	     "      - { between: [leaf0, spine], bandwidth: 400Gbit, latency: 1us }\n"
	     "      - { between: [leaf1, spine], bandwidth: 400Gbit, latency: 1us }\n");
	flow(0, 0, 1, 0, 450000000); /* NVLink: 1 ms at 3.6 Tbit/s */
	flow(1, 0, 2, 0, 12500000);  /* rank 0's network cable: 1 ms at 100 Gbit/s */
	flow(2, 1, 3, 0, 12500000);  /* beside it on the 400 Gbit/s uplink of leaf0 */
	run_to(100000000);
	near(arrival[0], 1e6 + 2e3);
	near(arrival[1], 1e6 + 6e3);
	near(arrival[2], 1e6 + 6e3);
	nic_reset();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("nic");
	TCase *tc = tcase_create("rates");
	tcase_add_test(tc, test_incast);
	tcase_add_test(tc, test_final_to);
	tcase_add_test(tc, test_lazy);
	tcase_add_test(tc, test_soft_reader_waits);
	tcase_add_test(tc, test_released_counted);
	tcase_add_test(tc, test_lazy_wanted_late);
	tcase_add_test(tc, test_topology_shares);
	tcase_add_test(tc, test_topology_byte_arrival);
	tcase_add_test(tc, test_two_cables);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
