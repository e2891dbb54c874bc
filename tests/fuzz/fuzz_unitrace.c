/* libFuzzer target: every unitrace command on an arbitrary file.
 *
 * unitrace.c is compiled with -Dmain=unitrace_main; each input is written
 * to a private file and read by summary (text and JSON), dump --json,
 * plot, both exports, compare (against itself), critical-path and
 * replay (printing, and writing the re-timed trace), output going to
 * /dev/null or private files. Any crash, sanitizer
 * report or leak fails. Run by tests/fuzz/run.sh (CI: bounded time). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int unitrace_main(int argc, char **argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char trace[64], db[64], out[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!trace[0]) {
		snprintf(trace, sizeof(trace), "/tmp/uni-fuzz-%d.unitrace", (int)getpid());
		snprintf(db, sizeof(db), "/tmp/uni-fuzz-%d.db", (int)getpid());
		snprintf(out, sizeof(out), "/tmp/uni-fuzz-%d.out.unitrace", (int)getpid());
	}
	FILE *f = fopen(trace, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	char *cmds[][6] = {
		{"unitrace", "summary", trace, NULL},
		{"unitrace", "summary", "--json", trace, NULL},
		{"unitrace", "dump", "--json", trace, NULL},
		{"unitrace", "plot", trace, "-o", "/dev/null", NULL},
		{"unitrace", "export", trace, "--chrome", "/dev/null", NULL},
		{"unitrace", "export", trace, "--sqlite", db, NULL},
		{"unitrace", "compare", trace, trace, "--json", NULL},
		{"unitrace", "critical-path", trace, "--json", NULL},
		{"unitrace", "replay", trace, "--json", NULL},
		{"unitrace", "replay", trace, "-o", out, NULL},
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
