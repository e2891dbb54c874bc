/* libFuzzer target: every unitrace command on an arbitrary file.
 *
 * unitrace.c is compiled with -Dmain=unitrace_main; each input is written
 * to a private file and read by summary (text and JSON), dump --json,
 * plot (whole and a window), both exports, compare and diff (against itself),
 * critical-path, replay (printing, and writing the re-timed trace) and
 * links (under a topology and an alpha-beta config), output going to
 * /dev/null or private files. Any crash, sanitizer
 * report or leak fails. Run by tests/fuzz/run.sh (CI: bounded time). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int unitrace_main(int argc, char **argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char trace[64], db[64], out[64], topo[64], ab[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!trace[0]) {
		snprintf(trace, sizeof(trace), "/tmp/uni-fuzz-%d.unitrace", (int)getpid());
		snprintf(db, sizeof(db), "/tmp/uni-fuzz-%d.db", (int)getpid());
		snprintf(out, sizeof(out), "/tmp/uni-fuzz-%d.out.unitrace", (int)getpid());
		snprintf(topo, sizeof(topo), "/tmp/uni-fuzz-%d.topo.yaml", (int)getpid());
		snprintf(ab, sizeof(ab), "/tmp/uni-fuzz-%d.ab.yaml", (int)getpid());
		FILE *c = fopen(topo, "w");
		if (!c || fputs("mode: simulate\nnetwork:\n  model: topology\n  topology:\n"
				"    switches: [ { name: a, ranks: [0, 1] }, { name: b, ranks: [2, 3] },"
				" { name: n, ranks: [0, 1], bandwidth: 10Gbit } ]\n"
				"    links: [ { between: [a, b], bandwidth: 100Mbit, latency: 1ms } ]\n", c) < 0 ||
		    fclose(c) != 0)
			abort();
		c = fopen(ab, "w");
		if (!c || fputs("mode: simulate\n", c) < 0 || fclose(c) != 0)
			abort();
	}
	FILE *f = fopen(trace, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	char *cmds[][10] = {
		{"unitrace", "summary", trace, NULL},
		{"unitrace", "summary", "--json", trace, NULL},
		{"unitrace", "dump", "--json", trace, NULL},
		{"unitrace", "plot", trace, "-o", "/dev/null", NULL},
		{"unitrace", "plot", trace, "-o", "/dev/null", "--from", "1", "--to", "5", NULL},
		{"unitrace", "export", trace, "--chrome", "/dev/null", NULL},
		{"unitrace", "export", trace, "--sqlite", db, NULL},
		{"unitrace", "compare", trace, trace, "--json", NULL},
		{"unitrace", "diff", trace, trace, "--json", NULL}, /* the same: 0 (or 2) */
		{"unitrace", "critical-path", trace, "--json", NULL},
		{"unitrace", "replay", trace, "--json", NULL},
		{"unitrace", "replay", trace, "-o", out, NULL},
		{"unitrace", "links", trace, "--config", topo, NULL},
		{"unitrace", "links", trace, "--config", ab, "--json", NULL},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int argc = 0;
		while (cmds[i][argc])
			argc++;
		/* stdout to /dev/null for every command (export reopens it). */
		if (!freopen("/dev/null", "w", stdout))
			abort();
		int rc = unitrace_main(argc, cmds[i]);
		if (rc != 0 && rc != 2) { /* only "corrupt trace" may fail: no usage or output errors */
			fprintf(stderr, "fuzz_unitrace: unitrace %s returned %d\n", cmds[i][1], rc);
			abort();
		}
	}
	unlink(out);
	return 0;
}
