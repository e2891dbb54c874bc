/* libFuzzer target: the config parser (libyaml) on arbitrary bytes. Any
 * input must give 0 or -1 with a message, never a crash, a sanitizer
 * report or a leak; an accepted config must satisfy the invariants the
 * rest of uniference relies on. Run by tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uni/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uni_config c;
	char err[512];
	err[0] = 0;
	uni_config_defaults(&c);
	int rc = uni_config_parse(&c, (const char *)data, size, "fuzz.yaml", err, sizeof(err));
	if (rc != 0 && rc != -1)
		abort();
	if (rc == -1 && !err[0])
		abort(); /* an error must say what is wrong */
	if (rc == 0) {
		if (!(c.bandwidth_bps > 0) || !(c.slowdown > 0) || c.nlinks > UNI_CFG_MAX_LINKS ||
		    c.nkernels > UNI_CFG_MAX_KERNELS || memchr(c.trace_path, 0, sizeof(c.trace_path)) == NULL)
			abort();
		for (uint32_t i = 0; i < c.nlinks; i++)
			if (!(c.links[i].bandwidth_bps > 0))
				abort();
	}
	return 0;
}
