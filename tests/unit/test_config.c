/* Unit tests for engine/config.c (the YAML session config).
 *
 * Checks: the documented defaults; that tests/unit/configs/good-full.yaml
 * sets every field of struct uni_config (each one to a non-default value)
 * but network.topology's (test_topology checks those);
 * that empty and comment-only files give the defaults; that each bad-*.yaml
 * fails with a one-line message naming the file, the right line and the
 * right key; the duration and bandwidth unit parsers against tables of good
 * and bad strings; duplicate keys; limits (rank range, too many links);
 * that a failed parse leaves the caller's config untouched; rank slowdown
 * lookup; {session} expansion in the trace path, including truncation; and
 * that examples/configs/default.yaml loads with the values it describes.
 *
 * Deliberately not checked: the exact wording of messages beyond the
 * "FILE:LINE: key 'K':" prefix and a few key phrases (wording may improve
 * without breaking anything); libyaml's own syntax diagnostics beyond the
 * line; how the engine uses the values (network models, kernel globs).
 *
 * The configs directory comes from UNI_TEST_CONFIGS (set by meson), else
 * from the directory of this source file as the compiler saw it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uni/common.h"
#include "uni/config.h"

static char configs_dir[1024];

static void find_configs_dir(void)
{
	const char *env = getenv("UNI_TEST_CONFIGS");
	const char *slash;

	if (env && *env) {
		snprintf(configs_dir, sizeof(configs_dir), "%s", env);
		return;
	}
	slash = strrchr(__FILE__, '/');
	if (slash)
		snprintf(configs_dir, sizeof(configs_dir), "%.*s/configs",
			 (int)(slash - __FILE__), __FILE__);
	else
		snprintf(configs_dir, sizeof(configs_dir), "configs");
}

static void config_path(char *out, size_t len, const char *file)
{
	snprintf(out, len, "%s/%s", configs_dir, file);
}

/* struct uni_config is large (tens of KB): keep it off the stack. */
static struct uni_config cfg;

/* ---- defaults ---------------------------------------------------------- */

static void check_defaults(const struct uni_config *c)
{
	ck_assert_uint_eq(c->mode, UNI_MODE_SIMULATE);
	ck_assert_int_eq(c->strict, 0);
	ck_assert_uint_eq(c->net_model, UNI_NET_ALPHA_BETA);
	ck_assert_uint_eq(c->latency_ns, 0);
	ck_assert_double_eq(c->bandwidth_bps, 1e9);
	ck_assert_uint_eq(c->nlinks, 0);
	ck_assert_double_eq(c->slowdown, 1.0);
	ck_assert_uint_eq(c->nrank_slowdowns, 0);
	ck_assert_uint_eq(c->nkernels, 0);
	ck_assert_str_eq(c->trace_path, "uni-trace/{session}.unitrace");
	ck_assert_int_eq(c->trace_stacks, 1);
	ck_assert_uint_eq(c->nccl_ppn, 1);
	ck_assert_uint_eq(c->nccl_intra, UNI_NCCL_INTRA_NVLINK);
}

START_TEST(test_defaults)
{
	memset(&cfg, 0xa5, sizeof(cfg));
	uni_config_defaults(&cfg);
	check_defaults(&cfg);
}
END_TEST

START_TEST(test_empty_files)
{
	static const char *const files[] = { "good-empty.yaml", "good-comments.yaml" };
	char path[1200], err[512];

	for (size_t i = 0; i < UNI_ARRAY_LEN(files); i++) {
		config_path(path, sizeof(path), files[i]);
		uni_config_defaults(&cfg);
		ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == 0,
			      "%s: %s", files[i], err);
		check_defaults(&cfg);
	}

	/* From strings too: nothing, a bare document marker, a null root. */
	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_parse(&cfg, "", 0, "s", err, sizeof(err)), 0);
	ck_assert_int_eq(uni_config_parse(&cfg, "---\n", 4, "s", err, sizeof(err)), 0);
	ck_assert_int_eq(uni_config_parse(&cfg, "~\n", 2, "s", err, sizeof(err)), 0);
	check_defaults(&cfg);
}
END_TEST

/* ---- the full good file ------------------------------------------------ */

START_TEST(test_good_full)
{
	char path[1200], err[512];
	const struct uni_link_cfg *l;

	config_path(path, sizeof(path), "good-full.yaml");
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == 0, "%s", err);

	ck_assert_uint_eq(cfg.mode, UNI_MODE_EMULATE);
	ck_assert_int_eq(cfg.strict, 1);
	ck_assert_uint_eq(cfg.net_model, UNI_NET_NIC);
	ck_assert_uint_eq(cfg.latency_ns, 350000);
	ck_assert_double_eq(cfg.bandwidth_bps, 1e8);

	ck_assert_uint_eq(cfg.nlinks, 3);
	l = &cfg.links[0];
	ck_assert_int_eq(l->from, 0);
	ck_assert_int_eq(l->to, 3);
	ck_assert_uint_eq(l->latency_ns, 8000000);
	ck_assert_double_eq(l->bandwidth_bps, 2e7);
	l = &cfg.links[1];
	ck_assert_int_eq(l->from, 3);
	ck_assert_int_eq(l->to, 0);
	ck_assert_uint_eq(l->latency_ns, 1500000000);
	ck_assert_double_eq(l->bandwidth_bps, 1e8); /* network default */
	l = &cfg.links[2];
	ck_assert_int_eq(l->from, 1);
	ck_assert_int_eq(l->to, 65535);
	ck_assert_uint_eq(l->latency_ns, 350000); /* network default */
	ck_assert_double_eq(l->bandwidth_bps, 1e9);

	ck_assert_double_eq(cfg.slowdown, 1.25);
	ck_assert_uint_eq(cfg.nrank_slowdowns, 2);
	ck_assert_int_eq(cfg.rank_slowdowns[0].rank, 2);
	ck_assert_double_eq(cfg.rank_slowdowns[0].slowdown, 3.5);
	ck_assert_int_eq(cfg.rank_slowdowns[1].rank, 7);
	ck_assert_double_eq(cfg.rank_slowdowns[1].slowdown, 0.5);

	ck_assert_uint_eq(cfg.nkernels, 2);
	ck_assert_str_eq(cfg.kernels[0].match, "*gemm*");
	ck_assert_double_eq(cfg.kernels[0].slowdown, 2.0);
	ck_assert_str_eq(cfg.kernels[1].match, "nccl*");
	ck_assert_double_eq(cfg.kernels[1].slowdown, 4.0);

	ck_assert_str_eq(cfg.trace_path, "/tmp/traces/{session}-{session}.unitrace");
	ck_assert_int_eq(cfg.trace_stacks, 0);

	ck_assert_double_eq(uni_config_rank_slowdown(&cfg, 2), 3.5);
	ck_assert_double_eq(uni_config_rank_slowdown(&cfg, 7), 0.5);
	ck_assert_double_eq(uni_config_rank_slowdown(&cfg, 0), 1.25);
	ck_assert_double_eq(uni_config_rank_slowdown(&cfg, 65535), 1.25);
}
END_TEST

/* examples/configs/default.yaml stays loadable and says what its comments
 * say. It sits three levels above the configs directory in the source tree. */
START_TEST(test_example_default)
{
	char path[1200], err[512];

	snprintf(path, sizeof(path), "%s/../../../examples/configs/default.yaml", configs_dir);
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.mode, UNI_MODE_SIMULATE);
	ck_assert_int_eq(cfg.strict, 0);
	ck_assert_uint_eq(cfg.net_model, UNI_NET_ALPHA_BETA);
	ck_assert_uint_eq(cfg.latency_ns, 2000000);
	ck_assert_double_eq(cfg.bandwidth_bps, 1e8);
	ck_assert_uint_eq(cfg.nlinks, 0);
	ck_assert_double_eq(cfg.slowdown, 1.0);
	ck_assert_uint_eq(cfg.nrank_slowdowns, 0);
	ck_assert_uint_eq(cfg.nkernels, 0);
	ck_assert_str_eq(cfg.trace_path, "uni-trace/{session}.unitrace");
	ck_assert_int_eq(cfg.trace_stacks, 1);
}
END_TEST

/* The network examples of docs/examples.md load with what their names say. */
START_TEST(test_example_networks)
{
	static const struct {
		const char *file;
		uint64_t latency_ns;
		double bps;
	} ex[] = {{"net-100mbit-10ms.yaml", 10000000, 1e8}, {"net-1gbit-1ms.yaml", 1000000, 1e9}};
	char path[1200], err[512];

	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		snprintf(path, sizeof(path), "%s/../../../examples/configs/%s", configs_dir, ex[i].file);
		uni_config_defaults(&cfg);
		ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == 0, "%s", err);
		ck_assert_uint_eq(cfg.mode, UNI_MODE_SIMULATE);
		ck_assert_uint_eq(cfg.latency_ns, ex[i].latency_ns);
		ck_assert_double_eq(cfg.bandwidth_bps, ex[i].bps);
		ck_assert_double_eq(cfg.slowdown, 1.0);
	}
	/* two-racks.yaml: the topology model, as its comments say. */
	snprintf(path, sizeof(path), "%s/../../../examples/configs/two-racks.yaml", configs_dir);
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.net_model, UNI_NET_TOPOLOGY);
	uint64_t lat;
	double bps;
	uni_config_link(&cfg, 1, 2, &lat, &bps);
	ck_assert_uint_eq(lat, 5100000);
	ck_assert_double_eq(bps, 1e8);
	uni_config_link(&cfg, 3, 2, &lat, &bps);
	ck_assert_uint_eq(lat, 100000);
	ck_assert_double_eq(bps, 1e9);
	/* gpu-nodes.yaml: NVLink within a node, the network between them. */
	snprintf(path, sizeof(path), "%s/../../../examples/configs/gpu-nodes.yaml", configs_dir);
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == 0, "%s", err);
	uni_config_link(&cfg, 2, 7, &lat, &bps);
	ck_assert_uint_eq(lat, 2000);
	ck_assert_double_eq(bps, 3.6e12);
	uni_config_link(&cfg, 2, 9, &lat, &bps);
	ck_assert_uint_eq(lat, 6000);
	ck_assert_double_eq(bps, 4e11);
	ck_assert_uint_eq(cfg.nccl_ppn, 8);
	ck_assert_uint_eq(cfg.nccl_intra, UNI_NCCL_INTRA_NVLINK);
}
END_TEST

/* A link's defaults come from network.default wherever it is in the file. */
START_TEST(test_link_default_after_links)
{
	static const char y[] =
		"network:\n"
		"  links: [ { from: 0, to: 1 } ]\n"
		"  default: { latency: 2ms, bandwidth: 100Mbit }\n";
	char err[512];

	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_uint_eq(cfg.nlinks, 1);
	ck_assert_uint_eq(cfg.links[0].latency_ns, 2000000);
	ck_assert_double_eq(cfg.links[0].bandwidth_bps, 1e8);
}
END_TEST

/* ---- bad files --------------------------------------------------------- */

static const struct bad_file {
	const char *file;
	unsigned line;
	const char *key;  /* NULL: the message has no key part */
	const char *what; /* a phrase the message must contain */
} bad_files[] = {
	{ "bad-unknown-key.yaml", 6, "network.default.bandwith", "unknown key" },
	{ "bad-unit.yaml", 5, "network.default.bandwidth",
	  "'100' has no unit; write e.g. 100Mbit or 12.5MB/s" },
	{ "bad-syntax.yaml", 4, NULL, "YAML syntax error: " },
	{ "bad-value.yaml", 5, "devices.ranks.1.slowdown", "greater than zero" },
	{ "bad-duplicate.yaml", 4, "trace.path", "duplicate key (first given on line 2)" },
	{ "bad-type.yaml", 2, "strict", "true or false" },
	{ "bad-rank.yaml", 4, "network.links[1].to", "from 0 to 65535" },
	{ "bad-mode.yaml", 2, "mode", "replay" },
	{ "bad-link-missing.yaml", 4, "network.links[1]", "missing 'from'" },
	{ "bad-kernel.yaml", 4, "devices.kernels[1].slowdown", "not a number" },
	{ "bad-ambiguous.yaml", 3, "network.links[0].bandwidth", "ambiguous" },
	{ "bad-top-list.yaml", 1, NULL, "top level" },
	{ "bad-two-docs.yaml", 2, NULL, "one YAML document" },
};

START_TEST(test_bad_file)
{
	const struct bad_file *b = &bad_files[_i];
	char path[1200], err[512], want[1400];

	config_path(path, sizeof(path), b->file);
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_load(&cfg, path, err, sizeof(err)) == -1,
		      "%s: loaded but should not", b->file);
	if (b->key)
		snprintf(want, sizeof(want), "%s:%u: key '%s': ", path, b->line, b->key);
	else
		snprintf(want, sizeof(want), "%s:%u: ", path, b->line);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "%s: got \"%s\", want prefix \"%s\"",
		      b->file, err, want);
	ck_assert_msg(strstr(err, b->what), "%s: \"%s\" lacks \"%s\"", b->file, err, b->what);
	ck_assert_msg(!strchr(err, '\n'), "%s: message is not one line", b->file);
	/* A failed load changes nothing. */
	check_defaults(&cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	char err[512];

	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_load(&cfg, "/nonexistent/uni.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/uni.yaml: cannot open: No such file or directory");
	check_defaults(&cfg);
}
END_TEST

/* ---- errors from strings ------------------------------------------------ */

static const struct bad_str {
	const char *yaml;
	const char *want; /* the message must start with this */
} bad_strs[] = {
	/* duplicate keys, at each level */
	{ "mode: record\nmode: simulate\n", "s:2: key 'mode': duplicate key" },
	{ "network:\n  model: nic\n  model: nic\n", "s:3: key 'network.model': duplicate key" },
	{ "network: { default: { latency: 1ms, latency: 2ms } }\n",
	  "s:1: key 'network.default.latency': duplicate key" },
	{ "devices:\n  ranks:\n    2: { slowdown: 2 }\n    2: { slowdown: 3 }\n",
	  "s:4: key 'devices.ranks.2': duplicate key (first given on line 3)" },
	{ "devices:\n  ranks:\n    2: { slowdown: 2 }\n    002: { slowdown: 3 }\n",
	  "s:4: key 'devices.ranks.002': rank 2 is already given on line 3" },
	{ "network:\n  links:\n  - { from: 0, to: 1 }\n  - { from: 0, to: 1 }\n",
	  "s:4: key 'network.links[1]': a link from rank 0 to rank 1 is already given on line 3" },
	/* types */
	{ "network: [ 1, 2 ]\n", "s:1: key 'network': expected a mapping" },
	{ "strict: 1\n", "s:1: key 'strict': expected true or false, got '1'" },
	{ "trace: { stacks: yes }\n", "s:1: key 'trace.stacks': expected true or false" },
	{ "mode: [ record ]\n", "s:1: key 'mode': expected a single value, got a list" },
	{ "mode:\n", "s:1: key 'mode': has no value" },
	{ "devices: { default: { slowdown: \"2\" } }\n",
	  "s:1: key 'devices.default.slowdown': expected a number, got the quoted string '2'" },
	{ "network: { links: { from: 0 } }\n", "s:1: key 'network.links': expected a list" },
	{ "network: { links: [ 3 ] }\n", "s:1: key 'network.links[0]': expected a mapping" },
	{ "[a]: 1\n", "s:1: key '': keys must be names" },
	/* values */
	{ "network: { default: { bandwidth: 0Mbit } }\n",
	  "s:1: key 'network.default.bandwidth': '0Mbit' is zero" },
	{ "network: { default: { latency: -2ms } }\n",
	  "s:1: key 'network.default.latency': '-2ms' is negative" },
	{ "devices: { default: { slowdown: 0 } }\n",
	  "s:1: key 'devices.default.slowdown': '0' is not a valid slowdown" },
	{ "devices: { default: { slowdown: .inf } }\n",
	  "s:1: key 'devices.default.slowdown': '.inf' is not a number" },
	{ "devices: { default: { slowdown: 1e999 } }\n",
	  "s:1: key 'devices.default.slowdown': '1e999' is too large" },
	{ "devices: { ranks: { -1: { slowdown: 2 } } }\n",
	  "s:1: key 'devices.ranks.-1': '-1' is not a rank number" },
	{ "devices: { ranks: { 65536: { slowdown: 2 } } }\n",
	  "s:1: key 'devices.ranks.65536': '65536' is not a rank number" },
	{ "devices: { ranks: { 3: {} } }\n", "s:1: key 'devices.ranks.3': missing 'slowdown'" },
	{ "devices: { kernels: [ { slowdown: 2 } ] }\n",
	  "s:1: key 'devices.kernels[0]': missing 'match'" },
	{ "network: { links: [ { from: 4, to: 4 } ] }\n",
	  "s:1: key 'network.links[0]': 'from' and 'to' are both rank 4" },
	{ "network: { links: [ { from: 0 } ] }\n", "s:1: key 'network.links[0]': missing 'to'" },
	{ "network: { model: infiniband }\n", "s:1: key 'network.model': unknown network model" },
	{ "trace: { path: \"\" }\n", "s:1: key 'trace.path': must not be empty" },
	{ "trace: { path: \"x/{sesion}.unitrace\" }\n",
	  "s:1: key 'trace.path': 'x/{sesion}.unitrace' has an unknown placeholder" },
	/* unknown keys at each level */
	{ "modes: record\n", "s:1: key 'modes': unknown key" },
	{ "trace: { path: a, colour: red }\n", "s:1: key 'trace.colour': unknown key" },
	{ "devices: { ranks: { 1: { slowdown: 2, speed: 3 } } }\n",
	  "s:1: key 'devices.ranks.1.speed': unknown key" },
	{ "network: { links: [ { from: 0, to: 1, latncy: 2ms } ] }\n",
	  "s:1: key 'network.links[0].latncy': unknown key" },
	/* syntax */
	{ "mode: simulate\n  strict: true\n", "s:2: YAML syntax error: " },
	{ "a: \"unterminated\n", "s:2: YAML syntax error: " },
};

START_TEST(test_bad_string)
{
	const struct bad_str *b = &bad_strs[_i];
	char err[512];

	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, b->yaml, strlen(b->yaml), "s", err,
				       sizeof(err)) == -1, "parsed: %s", b->yaml);
	ck_assert_msg(!strncmp(err, b->want, strlen(b->want)),
		      "got \"%s\", want prefix \"%s\"", err, b->want);
	ck_assert_msg(!strchr(err, '\n'), "message is not one line");
	check_defaults(&cfg);
}
END_TEST

START_TEST(test_too_many_links)
{
	size_t cap = (UNI_CFG_MAX_LINKS + 2) * 40 + 64, n = 0;
	char *y = malloc(cap), err[512], want[128];

	ck_assert_ptr_nonnull(y);
	n += (size_t)snprintf(y + n, cap - n, "network:\n  links:\n");
	for (int i = 0; i <= UNI_CFG_MAX_LINKS; i++)
		n += (size_t)snprintf(y + n, cap - n, "  - { from: %d, to: %d }\n", i, i + 1);

	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_parse(&cfg, y, n, "s", err, sizeof(err)), -1);
	/* The entry past the limit is on line 3 + UNI_CFG_MAX_LINKS. */
	snprintf(want, sizeof(want), "s:%d: key 'network.links[%d]': too many links",
		 3 + UNI_CFG_MAX_LINKS, UNI_CFG_MAX_LINKS);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "got \"%s\"", err);

	/* Exactly the limit is fine. */
	n = (size_t)(strrchr(y, '-') - y);
	y[n] = '\0';
	ck_assert_msg(uni_config_parse(&cfg, y, n, "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.nlinks, UNI_CFG_MAX_LINKS);
	free(y);
}
END_TEST

/* A file's list replaces the list already in the config, and keys the file
 * does not name keep their value. */
START_TEST(test_parse_over)
{
	static const char a[] = "strict: true\ndevices: { ranks: { 1: { slowdown: 2 } } }\n";
	static const char b[] = "devices: { ranks: { 5: { slowdown: 3 } } }\n";
	char err[512];

	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_parse(&cfg, a, strlen(a), "a", err, sizeof(err)), 0);
	ck_assert_int_eq(uni_config_parse(&cfg, b, strlen(b), "b", err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.strict, 1);
	ck_assert_uint_eq(cfg.nrank_slowdowns, 1);
	ck_assert_double_eq(uni_config_rank_slowdown(&cfg, 1), 1.0);
	ck_assert_double_eq(uni_config_rank_slowdown(&cfg, 5), 3.0);
}
END_TEST

START_TEST(test_small_err_buffer)
{
	static const char y[] = "network: { default: { bandwidth: 100 } }\n";
	char err[16];

	uni_config_defaults(&cfg);
	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	/* And no buffer at all. */
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", NULL, 0), -1);
}
END_TEST

/* ---- unit parsers ------------------------------------------------------ */

static const struct dur_case {
	const char *s;
	uint64_t ns;
} good_durations[] = {
	{ "2ms", 2000000 },
	{ "350us", 350000 },
	{ "1.5s", 1500000000 },
	{ "10ns", 10 },
	{ "0", 0 },
	{ "0.0", 0 },
	{ "0ms", 0 },
	{ "100 ms", 100000000 },
	{ "1e3us", 1000000 },
	{ "2.5E-3s", 2500000 },
	{ ".5ms", 500000 },
	{ "0.1s", 100000000 },
	{ "1.4ns", 1 },   /* rounds to nearest */
	{ "1.6ns", 2 },
	{ "3600s", 3600000000000ull },
};

static const char *const bad_durations[] = {
	"", "100", "ms", "-2ms", "2 parsecs", "2MS", "2 m s", "NaN ms", "inf s",
	"2ms2", "0x10ms", "+2ms", " 2ms", "2.ms.", "1e30s", "2min", "2 sec", "e3ms",
};

START_TEST(test_duration_good)
{
	const struct dur_case *d = &good_durations[_i];
	uint64_t ns = 12345;

	ck_assert_msg(uni_parse_duration(d->s, &ns) == 0, "'%s' rejected", d->s);
	ck_assert_msg(ns == d->ns, "'%s' -> %llu, want %llu", d->s,
		      (unsigned long long)ns, (unsigned long long)d->ns);
}
END_TEST

START_TEST(test_duration_bad)
{
	const char *s = bad_durations[_i];
	uint64_t ns = 12345;

	ck_assert_msg(uni_parse_duration(s, &ns) == -1, "'%s' accepted", s);
	ck_assert_uint_eq(ns, 12345);
}
END_TEST

static const struct bw_case {
	const char *s;
	double bps;
} good_bandwidths[] = {
	{ "100Mbit", 1e8 },
	{ "12.5MB/s", 1e8 },
	{ "1Gbps", 1e9 },
	{ "1Gbit", 1e9 },
	{ "800kbit/s", 8e5 },
	{ "800Kbit", 8e5 },
	{ "800kbps", 8e5 },
	{ "1e9bit", 1e9 },
	{ "100 Mbit", 1e8 },
	{ "100Mbit/s", 1e8 },
	{ "100Mbps", 1e8 },
	{ "2Tbit", 2e12 },
	{ "1B/s", 8 },
	{ "1kB/s", 8e3 },
	{ "1KB/s", 8e3 },
	{ "1GB/s", 8e9 },
	{ "1TB/s", 8e12 },
	{ "64bps", 64 },
	{ "0.5Gbit", 5e8 },
};

static const char *const bad_bandwidths[] = {
	"", "100", "Mbit", "-1Mbit", "NaN Mbit", "inf Gbit", "0Mbit", "0", "100mb",
	"100MB", "100Mb", "100mbit", "100MBIT", "100gbps", "100MBps", "100Bps", "1GBPS", "1Gbit/S",
	"10 parsecs", "1e999Gbit", "100Mbit/h", "100 M bit", "1e-400bit",
};

START_TEST(test_bandwidth_good)
{
	const struct bw_case *b = &good_bandwidths[_i];
	double bps = -1, diff;

	ck_assert_msg(uni_parse_bandwidth(b->s, &bps) == 0, "'%s' rejected", b->s);
	/* Products of exact decimals; allow for the last bit of rounding. */
	diff = bps > b->bps ? bps - b->bps : b->bps - bps;
	ck_assert_msg(diff <= b->bps * 1e-15, "'%s' -> %.17g, want %.17g",
		      b->s, bps, b->bps);
}
END_TEST

START_TEST(test_bandwidth_bad)
{
	const char *s = bad_bandwidths[_i];
	double bps = -1;

	ck_assert_msg(uni_parse_bandwidth(s, &bps) == -1, "'%s' accepted", s);
	ck_assert_double_eq(bps, -1);
}
END_TEST

/* Byte sizes (network.send_buffer). */
static const struct { const char *s; uint64_t bytes; } good_sizes[] = {
	{ "0", 0 }, { "1B", 1 }, { "640kB", 640000 }, { "640KB", 640000 }, { "1.5MB", 1500000 },
	{ "2GB", 2000000000ull }, { "1KiB", 1024 }, { "4MiB", 4194304 }, { "1GiB", 1073741824ull },
	{ "unlimited", UINT64_MAX },
};

static const char *const bad_sizes[] = {
	"", "640", "kB", "-1kB", "1kb", "1Mb", "1mib", "1e30GB", "lots", "1 parsec", "Unlimited",
};

START_TEST(test_size_good)
{
	uint64_t b = 7;
	ck_assert_msg(uni_parse_size(good_sizes[_i].s, &b) == 0, "'%s' rejected", good_sizes[_i].s);
	ck_assert_uint_eq(b, good_sizes[_i].bytes);
}
END_TEST

START_TEST(test_size_bad)
{
	uint64_t b = 7;
	ck_assert_msg(uni_parse_size(bad_sizes[_i], &b) == -1, "'%s' accepted", bad_sizes[_i]);
	ck_assert_uint_eq(b, 7);
}
END_TEST

START_TEST(test_send_buffer_key)
{
	char err[512];
	const char *y = "network: { model: nic, send_buffer: 1MiB }";
	uni_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.send_buffer, UNI_DEFAULT_SEND_BUFFER);
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.send_buffer, 1048576);
	y = "network: { send_buffer: 12 }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "send_buffer") && strstr(err, "no unit"), "%s", err);
}
END_TEST

START_TEST(test_network_ranks)
{
	char err[512];
	uint64_t lat;
	double bps;
	const char *y = "network:\n"
			"  default: { latency: 2ms, bandwidth: 100Mbit }\n"
			"  ranks:\n"
			"    0: { downlink: 300Mbit }\n"
			"    1: { uplink: 50Mbit }\n"
			"    2: { uplink: 1Gbit, downlink: 10Mbit }\n"
			"  links: [ { from: 3, to: 1, bandwidth: 7Mbit } ]\n";
	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nrank_nics, 3);
	ck_assert_double_eq(uni_config_uplink(&cfg, 0), 1e8);    /* not given: the default */
	ck_assert_double_eq(uni_config_downlink(&cfg, 0), 3e8);
	ck_assert_double_eq(uni_config_uplink(&cfg, 1), 5e7);
	ck_assert_double_eq(uni_config_downlink(&cfg, 1), 1e8);
	ck_assert_double_eq(uni_config_uplink(&cfg, 2), 1e9);
	ck_assert_double_eq(uni_config_downlink(&cfg, 2), 1e7);
	ck_assert_double_eq(uni_config_uplink(&cfg, 9), 1e8);    /* not named */
	/* A pair: the least of the default, the sender's uplink and the
	 * receiver's downlink; a links entry wins. */
	uni_config_link(&cfg, 1, 0, &lat, &bps);
	ck_assert_uint_eq(lat, 2000000);
	ck_assert_double_eq(bps, 5e7);
	uni_config_link(&cfg, 3, 0, &lat, &bps);
	ck_assert_double_eq(bps, 1e8); /* a downlink above the default does not raise it */
	uni_config_link(&cfg, 2, 3, &lat, &bps);
	ck_assert_double_eq(bps, 1e8);
	uni_config_link(&cfg, 3, 2, &lat, &bps);
	ck_assert_double_eq(bps, 1e7);
	uni_config_link(&cfg, 3, 1, &lat, &bps);
	ck_assert_double_eq(bps, 7e6);
	/* A link that gives only its latency: the NICs still cap it. */
	y = "network:\n"
	    "  default: { latency: 2ms, bandwidth: 100Mbit }\n"
	    "  ranks: { 1: { uplink: 50Mbit } }\n"
	    "  links: [ { from: 1, to: 0, latency: 5ms }, { from: 2, to: 0, bandwidth: 80Mbit } ]\n";
	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	uni_config_link(&cfg, 1, 0, &lat, &bps);
	ck_assert_uint_eq(lat, 5000000);
	ck_assert_double_eq(bps, 5e7);
	uni_config_link(&cfg, 2, 0, &lat, &bps);
	ck_assert_uint_eq(lat, 2000000);
	ck_assert_double_eq(bps, 8e7);
	/* Unset capacities follow the default wherever it is set. */
	y = "network: { ranks: { 1: { uplink: 50Mbit } }, default: { bandwidth: 20Mbit } }";
	uni_config_defaults(&cfg);
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_double_eq(uni_config_downlink(&cfg, 1), 2e7);
	uni_config_link(&cfg, 1, 0, &lat, &bps);
	ck_assert_double_eq(bps, 2e7);
	static const struct { const char *yaml, *want; } bad[] = {
		{ "network: { ranks: { 1: {} } }", "s:1: key 'network.ranks.1': missing 'uplink' or 'downlink'" },
		{ "network: { ranks: { 1: { uplink: 5 } } }", "s:1: key 'network.ranks.1.uplink': " },
		{ "network: { ranks: { 1: { bandwidth: 5Mbit } } }", "s:1: key 'network.ranks.1.bandwidth': unknown key" },
		{ "network: { ranks: { x: { uplink: 5Mbit } } }", "s:1: key 'network.ranks.x': 'x' is not a rank number" },
		{ "network: { ranks: { 1: { uplink: 5Mbit }, 01: { downlink: 5Mbit } } }",
		  "s:1: key 'network.ranks.01': rank 1 is already given on line 1" },
		{ "network: { ranks: { 1: 5Mbit } }", "s:1: key 'network.ranks.1': expected a mapping" },
		{ "network: { ranks: { 1: { uplink: 0Mbit } } }", "s:1: key 'network.ranks.1.uplink': " },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uni_config_defaults(&cfg);
		ck_assert_int_eq(uni_config_parse(&cfg, bad[i].yaml, strlen(bad[i].yaml), "s", err, sizeof(err)), -1);
		ck_assert_msg(!strncmp(err, bad[i].want, strlen(bad[i].want)), "%s: got \"%s\"", bad[i].yaml, err);
	}
}
END_TEST

/* network.topology: switches, ranks on them, links between them, routes. */
START_TEST(test_topology)
{
	char err[512];
	uint32_t links[UNI_CFG_MAX_ROUTE];
	uint64_t lat;
	double bps;
	const uint32_t R = 8; /* numbering of uni_config_route */
	const char *y = "network:\n"
			"  model: topology\n"
			"  default: { latency: 9ms, bandwidth: 1Gbit }\n"
			"  ranks: { 3: { downlink: 400Mbit } }\n"
			"  topology:\n"
			"    links:\n"
			"      - { between: [tor0, spine], bandwidth: 10Gbit, latency: 1ms }\n"
			"      - { between: [spine, tor1], latency: 2ms }\n"
			"      - { between: [tor0, tor1], bandwidth: 100Mbit, latency: 5ms }\n"
			"      - { between: [tor1, edge], bandwidth: 20Mbit }\n"
			"    switches:\n"
			"      - { name: tor0, ranks: [0, 1], latency: 100us }\n"
			"      - { name: tor1, ranks: [2, 3], latency: 100us }\n"
			"      - { name: spine }\n"
			"      - { name: edge, ranks: [5] }\n";
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.net_model, UNI_NET_TOPOLOGY);
	ck_assert(uni_config_fluid(&cfg));
	ck_assert_str_eq(uni_config_model_name(cfg.net_model), "topology");
	ck_assert_uint_eq(cfg.nswitches, 4);
	ck_assert_uint_eq(cfg.ntrunks, 4);
	ck_assert_double_eq(cfg.trunks[1].bandwidth_bps, 1e9); /* the default */
	ck_assert_uint_eq(cfg.trunks[3].latency_ns, 0);        /* not the default's 9 ms */
	ck_assert_int_eq(uni_config_switch_of(&cfg, 2), 1);
	ck_assert_int_eq(uni_config_switch_of(&cfg, 5), 3);
	ck_assert_int_eq(uni_config_switch_of(&cfg, 4), 0);    /* not named: the first switch */
	/* Same switch: the two cables. */
	ck_assert_int_eq(uni_config_route(&cfg, 0, 1, R, links, &lat), 2);
	ck_assert_uint_eq(links[0], 0);
	ck_assert_uint_eq(links[1], R + 1);
	ck_assert_uint_eq(lat, 200000);
	/* Across: by the spine (3 ms of links), not the direct 5 ms link. */
	ck_assert_int_eq(uni_config_route(&cfg, 1, 2, R, links, &lat), 4);
	ck_assert_uint_eq(links[0], 1);
	ck_assert_uint_eq(links[1], 2 * R + 0); /* link 0, tor0 to spine */
	ck_assert_uint_eq(links[2], 2 * R + 2); /* link 1, spine to tor1 */
	ck_assert_uint_eq(links[3], R + 2);
	ck_assert_uint_eq(lat, 3200000);
	/* Back the other way: the same links, the other directions. */
	ck_assert_int_eq(uni_config_route(&cfg, 3, 0, R, links, &lat), 4);
	ck_assert_uint_eq(links[1], 2 * R + 3);
	ck_assert_uint_eq(links[2], 2 * R + 1);
	ck_assert_uint_eq(lat, 3200000);
	/* Three hops to the edge; rank 4 is on tor0. */
	ck_assert_int_eq(uni_config_route(&cfg, 4, 5, R, links, &lat), 5);
	ck_assert_uint_eq(links[0], 4);
	ck_assert_uint_eq(links[3], 2 * R + 6);
	ck_assert_uint_eq(links[4], R + 5);
	ck_assert_uint_eq(lat, 3100000);
	ck_assert_double_eq(uni_config_route_capacity(&cfg, 2 * R + 6, R), 2e7);
	ck_assert_double_eq(uni_config_route_capacity(&cfg, R + 3, R), 4e8);
	ck_assert_double_eq(uni_config_route_capacity(&cfg, 3, R), 1e9);
	/* A pair's latency and bandwidth: its route's. */
	uni_config_link(&cfg, 4, 5, &lat, &bps);
	ck_assert_uint_eq(lat, 3100000);
	ck_assert_double_eq(bps, 2e7);
	uni_config_link(&cfg, 0, 3, &lat, &bps);
	ck_assert_double_eq(bps, 4e8);
	/* Ties of latency: the route with fewer links. */
	y = "network:\n"
	    "  model: topology\n"
	    "  topology:\n"
	    "    switches: [ { name: a, ranks: [0] }, { name: b }, { name: c, ranks: [1] } ]\n"
	    "    links: [ { between: [a, b] }, { between: [b, c] }, { between: [a, c] } ]\n";
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(uni_config_route(&cfg, 0, 1, 2, links, &lat), 3);
	ck_assert_uint_eq(links[1], 2 * 2 + 4);
	ck_assert_uint_eq(lat, 0);
	/* Ranks on two switches (a GPU's NVLink switch and its network
	 * leaf): each pair takes the route of least latency over all their
	 * cables; a switch's bandwidth is its cables'. */
	y = "network:\n"
	    "  model: topology\n"
	    "  default: { bandwidth: 100Gbit }\n"
	    "  topology:\n"
	    "    switches:\n"
	    "      - { name: leaf0, ranks: [0, 1], latency: 2us }\n"
	    "      - { name: leaf1, ranks: [2, 3], latency: 2us }\n"
	    "      - { name: nvs0, ranks: [0, 1], latency: 1us, bandwidth: 3600Gbit }\n"
	    "      - { name: nvs1, ranks: [2, 3], latency: 1us, bandwidth: 3600Gbit }\n"
	    "      - { name: spine }\n"
	    "    links:\n"
	    "      - { between: [leaf0, spine], bandwidth: 400Gbit, latency: 1us }\n"
	    "      - { between: [leaf1, spine], bandwidth: 400Gbit, latency: 1us }\n";
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.nextra, 4);
	ck_assert_uint_eq(uni_config_route_links(&cfg, 4), 2 * 4 + 2 * 2 + 2 * 4);
	/* Within a node: by the NVLink switch (2 us), both cables extra ones. */
	ck_assert_int_eq(uni_config_route(&cfg, 0, 1, 4, links, &lat), 2);
	ck_assert_uint_eq(lat, 2000);
	ck_assert_uint_eq(links[0], 12 + 0); /* rank 0's first extra cable, up */
	ck_assert_uint_eq(links[1], 12 + 2 * 1 + 1); /* rank 1's, down */
	ck_assert_double_eq(uni_config_route_capacity(&cfg, links[0], 4), 3.6e12);
	int rk, sw, up;
	ck_assert(uni_config_cable(&cfg, links[1], 4, &rk, &sw, &up));
	ck_assert_int_eq(rk, 1);
	ck_assert_int_eq(sw, 2);
	ck_assert_int_eq(up, 0);
	/* Across: the primary cables to the leaves and the spine (6 us). */
	ck_assert_int_eq(uni_config_route(&cfg, 1, 2, 4, links, &lat), 4);
	ck_assert_uint_eq(lat, 6000);
	ck_assert_uint_eq(links[0], 1);
	ck_assert_uint_eq(links[1], 8 + 0);
	ck_assert_uint_eq(links[2], 8 + 3);
	ck_assert_uint_eq(links[3], 4 + 2);
	ck_assert_double_eq(uni_config_route_capacity(&cfg, links[0], 4), 1e11);
	ck_assert(!uni_config_cable(&cfg, links[1], 4, &rk, &sw, &up));
	uni_config_link(&cfg, 0, 3, &lat, &bps);
	ck_assert_double_eq(bps, 1e11);
	uni_config_link(&cfg, 2, 3, &lat, &bps);
	ck_assert_double_eq(bps, 3.6e12);
	/* A file read over another: its topology replaces the earlier one
	 * whole (links name switches); a file that gives none keeps it. */
	y = "network: { model: topology, topology: { switches: [ { name: a }, { name: b, ranks: [1] } ],"
	    " links: [ { between: [a, b], latency: 1ms } ] } }";
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	y = "network: { topology: { switches: [ { name: c, ranks: [0, 1] } ] } }";
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.nswitches, 1);
	ck_assert_uint_eq(cfg.ntrunks, 0);
	ck_assert_int_eq(uni_config_route(&cfg, 0, 1, 2, links, &lat), 2);
	ck_assert_uint_eq(lat, 0);
	y = "network: { topology: {} }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "needs network.topology with at least one switch"), "%s", err);
	y = "devices: { default: { slowdown: 2 } }";
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(cfg.nswitches, 1);
	y = "network: { links: [ { from: 0, to: 1 } ] }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "does not apply under the topology model"), "%s", err);
	/* Latencies near the limit add up without wrapping around. */
	y = "network:\n  model: topology\n  topology:\n"
	    "    switches: [ { name: s0, ranks: [0] }, { name: s1, ranks: [1] }, { name: s2, ranks: [2] }, { name: s3, ranks: [3] } ]\n"
	    "    links: [ { between: [s0, s1], latency: 9000000000s }, { between: [s1, s2], latency: 9000000000s },\n"
	    "             { between: [s2, s3], latency: 9000000000s } ]\n";
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(uni_config_route(&cfg, 0, 1, 4, links, &lat), 3);
	ck_assert_uint_eq(lat, 9000000000000000000ull);
	ck_assert_int_eq(uni_config_route(&cfg, 0, 3, 4, links, &lat), 5);
	ck_assert_uint_eq(lat, UINT64_MAX - 1);
	/* The section may stay under another model (a replay may switch). */
	y = "network: { model: nic, topology: { switches: [ { name: s } ] } }";
	uni_config_defaults(&cfg);
	ck_assert_msg(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(uni_config_route(&cfg, 0, 1, 2, links, &lat), 2);
	static const struct { const char *yaml, *want; } bad[] = {
		{ "network: { model: topology }", "s:1: key 'network.model': the topology model needs network.topology" },
		{ "network: { model: topology, topology: { switches: [] } }", "s:1: key 'network.model': the topology model needs" },
		{ "network: { model: topology, topology: { switches: [ { name: s } ] }, links: [ { from: 0, to: 1 } ] }",
		  "s:1: key 'network.links': does not apply under the topology model" },
		{ "network:\n  model: topology\n  topology: { switches: [ { name: s } ] }\n  links: [ { from: 0, to: 1 } ]\n",
		  "s:4: key 'network.links': does not apply under the topology model" },
		{ "network: { topology: { switches: [ { ranks: [1] } ] } }",
		  "s:1: key 'network.topology.switches[0]': missing 'name'" },
		{ "network: { topology: { switches: [ { name: 7 } ] } }",
		  "s:1: key 'network.topology.switches[0].name': '7' is a number" },
		{ "network: { topology: { switches: [ { name: s }, { name: s } ] } }",
		  "s:1: key 'network.topology.switches[1].name': switch 's' is already given on line 1" },
		{ "network: { topology: { switches: [ { name: s, ranks: [1, 2, 1] } ] } }",
		  "s:1: key 'network.topology.switches[0].ranks[2]': rank 1 is already on this switch" },
		{ "network: { topology: { switches: [ { name: s, bandwidth: fast } ] } }",
		  "s:1: key 'network.topology.switches[0].bandwidth': " },
		{ "network: { topology: { switches: [ { name: s, ranks: [x] } ] } }",
		  "s:1: key 'network.topology.switches[0].ranks[0]': 'x' is not a rank number" },
		{ "network: { topology: { switches: [ { name: s, speed: 1 } ] } }",
		  "s:1: key 'network.topology.switches[0].speed': unknown key" },
		{ "network: { topology: { switches: [ { name: s } ], links: [ { between: [s, t] } ] } }",
		  "s:1: key 'network.topology.links[0].between[1]': no switch is named 't'" },
		{ "network: { topology: { switches: [ { name: s } ], links: [ { between: [s, 3] } ] } }",
		  "s:1: key 'network.topology.links[0].between[1]': '3' is a rank" },
		{ "network: { topology: { switches: [ { name: s } ], links: [ { between: [s, s] } ] } }",
		  "s:1: key 'network.topology.links[0].between': both ends are switch 's'" },
		{ "network: { topology: { switches: [ { name: s } ], links: [ { between: [s] } ] } }",
		  "s:1: key 'network.topology.links[0].between': expected a list of two switch names" },
		{ "network: { topology: { switches: [ { name: s } ], links: [ { latency: 1ms } ] } }",
		  "s:1: key 'network.topology.links[0]': missing 'between'" },
		{ "network: { topology: { switches: [ { name: s }, { name: t } ], links: [ { between: [s, t] }, { between: [t, s] } ] } }",
		  "s:1: key 'network.topology.links[1].between': switches 't' and 's' are already joined" },
		{ "network:\n  topology:\n    switches: [ { name: s }, { name: t }, { name: u } ]\n    links: [ { between: [s, t] } ]\n",
		  "s:3: key 'network.topology': switch 'u' has no ranks and is not joined to switch 's'" },
		{ "network:\n  topology:\n    switches:\n      - { name: s }\n      - { name: t, ranks:\n          [4] }\n",
		  "s:6: key 'network.topology': rank 4 is on no switch joined to switch 's' by links" },
		{ "network: { topology: { switches: [ { name: s } ], links: [ { between: [s, t], bandwidth: 0Mbit } ] } }",
		  "s:1: key 'network.topology.links[0].bandwidth': '0Mbit' is zero" },
		{ "network: { topology: { hosts: [] } }", "s:1: key 'network.topology.hosts': unknown key" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uni_config_defaults(&cfg);
		ck_assert_int_eq(uni_config_parse(&cfg, bad[i].yaml, strlen(bad[i].yaml), "s", err, sizeof(err)), -1);
		ck_assert_msg(!strncmp(err, bad[i].want, strlen(bad[i].want)), "%s: got \"%s\"", bad[i].yaml, err);
		check_defaults(&cfg);
	}
}
END_TEST

START_TEST(test_nccl_algorithm)
{
	char err[512];
	const char *y = "nccl: { algorithm: tree }";
	uni_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.nccl_algo, UNI_NCCL_ALGO_AUTO);
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_algo, UNI_NCCL_ALGO_TREE);
	y = "nccl: { algorithm: ring }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_algo, UNI_NCCL_ALGO_RING);
	y = "nccl: { algorithm: pat }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_algo, UNI_NCCL_ALGO_PAT);
	y = "nccl: { algorithm: butterfly }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nccl.algorithm") && strstr(err, "use auto, ring, tree or pat"), "%s", err);
	/* nccl.protocol: NCCL's protocols, auto by default. */
	uni_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.nccl_proto, UNI_NCCL_PROTO_AUTO);
	y = "nccl: { protocol: LL }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_proto, UNI_NCCL_PROTO_LL);
	y = "nccl: { protocol: LL128, algorithm: ring }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_proto, UNI_NCCL_PROTO_LL128);
	y = "nccl: { protocol: Simple }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_proto, UNI_NCCL_PROTO_SIMPLE);
	y = "nccl: { protocol: LL64 }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nccl.protocol") && strstr(err, "use auto, LL, LL128 or Simple"), "%s", err);
	y = "nccl: { chunk: 4 }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "algorithm, protocol, ranks_per_node, intra_node"), "%s", err);
	/* Nodes: ranks per node and what joins them. */
	uni_config_defaults(&cfg);
	y = "nccl: { ranks_per_node: 8, intra_node: pci }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_ppn, 8);
	ck_assert_uint_eq(cfg.nccl_intra, UNI_NCCL_INTRA_PCI);
	y = "nccl: { intra_node: nvlink }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.nccl_intra, UNI_NCCL_INTRA_NVLINK);
	y = "nccl: { ranks_per_node: 0 }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nccl.ranks_per_node") && strstr(err, "not a number of ranks"), "%s", err);
	y = "nccl: { ranks_per_node: eight }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	y = "nccl: { intra_node: infiniband }";
	ck_assert_int_eq(uni_config_parse(&cfg, y, strlen(y), "s", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nccl.intra_node") && strstr(err, "use nvlink or pci"), "%s", err);
}
END_TEST

/* The messages for unit mistakes say what to write instead. */
START_TEST(test_unit_messages)
{
	static const struct { const char *yaml, *want; } m[] = {
		{ "network: { default: { bandwidth: 100mb } }",
		  "write 100Mbit for bits per second or 100MB/s for bytes per second" },
		{ "network: { default: { bandwidth: 5mbit } }", "wrong case; write 5Mbit" },
		{ "network: { default: { bandwidth: 1Gbit/S } }", "wrong case; write 1Gbit/s" },
		{ "network: { default: { bandwidth: 1GBPS } }", "write 1Gbit for bits" },
		{ "network: { default: { bandwidth: 2 parsecs } }", "unknown unit 'parsecs'" },
		{ "network: { default: { latency: 5 } }", "'5' has no unit; write e.g. 5ms" },
		{ "network: { default: { latency: 2 parsecs } }",
		  "unknown unit 'parsecs'; use ns, us, ms or s" },
	};
	char err[512];

	for (size_t i = 0; i < UNI_ARRAY_LEN(m); i++) {
		uni_config_defaults(&cfg);
		ck_assert_int_eq(uni_config_parse(&cfg, m[i].yaml, strlen(m[i].yaml), "s",
						  err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, m[i].want), "\"%s\" lacks \"%s\"", err, m[i].want);
	}
}
END_TEST

/* ---- trace path -------------------------------------------------------- */

START_TEST(test_trace_path)
{
	char out[64];

	uni_config_defaults(&cfg);
	uni_config_trace_path(&cfg, "run1", out, sizeof(out));
	ck_assert_str_eq(out, "uni-trace/run1.unitrace");

	snprintf(cfg.trace_path, sizeof(cfg.trace_path), "{session}/{session}.x{session}");
	uni_config_trace_path(&cfg, "ab", out, sizeof(out));
	ck_assert_str_eq(out, "ab/ab.xab");

	snprintf(cfg.trace_path, sizeof(cfg.trace_path), "fixed.unitrace");
	uni_config_trace_path(&cfg, "ab", out, sizeof(out));
	ck_assert_str_eq(out, "fixed.unitrace");

	/* Text that only looks like the placeholder stays. */
	snprintf(cfg.trace_path, sizeof(cfg.trace_path), "{sess}/{session");
	uni_config_trace_path(&cfg, "ab", out, sizeof(out));
	ck_assert_str_eq(out, "{sess}/{session");

	/* Truncation: always terminated, never past len. */
	snprintf(cfg.trace_path, sizeof(cfg.trace_path), "t/{session}.unitrace");
	memset(out, 'z', sizeof(out));
	uni_config_trace_path(&cfg, "session-name", out, 8);
	ck_assert_str_eq(out, "t/sessi");
	ck_assert_int_eq(out[8], 'z');
	uni_config_trace_path(&cfg, "session-name", out, 1);
	ck_assert_str_eq(out, "");
	uni_config_trace_path(&cfg, "s", out, 13);
	ck_assert_str_eq(out, "t/s.unitrace");
	uni_config_trace_path(&cfg, "s", out, 12);
	ck_assert_str_eq(out, "t/s.unitrac");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_files);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_test(tc, test_good_full);
	tcase_add_test(tc, test_link_default_after_links);
	tcase_add_test(tc, test_example_default);
	tcase_add_test(tc, test_example_networks);
	tcase_add_loop_test(tc, test_bad_file, 0, (int)UNI_ARRAY_LEN(bad_files));
	tcase_add_test(tc, test_missing_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_bad_string, 0, (int)UNI_ARRAY_LEN(bad_strs));
	tcase_add_test(tc, test_too_many_links);
	tcase_add_test(tc, test_parse_over);
	tcase_add_test(tc, test_small_err_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("units");
	tcase_add_loop_test(tc, test_duration_good, 0, (int)UNI_ARRAY_LEN(good_durations));
	tcase_add_loop_test(tc, test_duration_bad, 0, (int)UNI_ARRAY_LEN(bad_durations));
	tcase_add_loop_test(tc, test_bandwidth_good, 0, (int)UNI_ARRAY_LEN(good_bandwidths));
	tcase_add_loop_test(tc, test_bandwidth_bad, 0, (int)UNI_ARRAY_LEN(bad_bandwidths));
	tcase_add_test(tc, test_unit_messages);
	tcase_add_loop_test(tc, test_size_good, 0, (int)UNI_ARRAY_LEN(good_sizes));
	tcase_add_loop_test(tc, test_size_bad, 0, (int)UNI_ARRAY_LEN(bad_sizes));
	tcase_add_test(tc, test_send_buffer_key);
	tcase_add_test(tc, test_nccl_algorithm);
	tcase_add_test(tc, test_network_ranks);
	tcase_add_test(tc, test_topology);
	suite_add_tcase(s, tc);

	tc = tcase_create("trace_path");
	tcase_add_test(tc, test_trace_path);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	find_configs_dir();
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
