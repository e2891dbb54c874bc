/* Shared between unitrace's source files. */
#ifndef UNITRACE_H
#define UNITRACE_H

#include <stdint.h>

#define UNITRACE_EXIT_OUTPUT 1
#define UNITRACE_EXIT_TRACE 2
#define UNITRACE_EXIT_USAGE 64

const char *unitrace_mode_name(uint32_t mode);
const char *unitrace_time_base(uint32_t mode);

/* A JSON string on stdout (invalid UTF-8 becomes U+FFFD). */
void unitrace_json_str(const char *str);

/* unitrace critical-path TRACE [--json] (unitrace_critical.c). */
int unitrace_critical_path(const char *path, int json);

/* unitrace compare REAL SIM [--json] (unitrace_compare.c). */
int unitrace_compare(const char *real_path, const char *sim_path, int json);

/* unitrace export TRACE --sqlite OUT.db (unitrace_sqlite.c). */
int unitrace_export_sqlite(const char *path, const char *out);

/* unitrace replay TRACE [--config OTHER.yaml] [--sweep KEY=V1,...] [--json]
 * (unitrace_replay.c). */
int unitrace_replay(const char *path, const char *config, const char *sweep, int json);

#endif
