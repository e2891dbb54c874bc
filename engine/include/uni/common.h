/* Shared basics for every part of uniference: visibility, time, logging.
 * Owned by the engine; the shim and the tools include it. */
#ifndef UNI_COMMON_H
#define UNI_COMMON_H

#include <stdint.h>
#include <time.h>

#define UNI_EXTERN __attribute__((visibility("default")))
#define UNI_HIDDEN __attribute__((visibility("hidden")))
#define UNI_UNUSED __attribute__((unused))
#define UNI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UNI_LIKELY(x) __builtin_expect(!!(x), 1)
#define UNI_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define UNI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Modes of a session (DESIGN section 3). */
enum uni_mode {
	UNI_MODE_RECORD = 0,
	UNI_MODE_SIMULATE = 1,
	UNI_MODE_EMULATE = 2,
};

/* "record", "simulate", "emulate"; "?" for anything else. */
const char *uni_mode_name(uint32_t mode);
/* Parses a mode name; returns 0 and sets *mode, or -EINVAL. */
int uni_mode_parse(const char *name, uint32_t *mode);

#ifdef UNI_IN_SHIM
/* Inside libunishim, clock_gettime is the shim's own wrapper, which gives
 * the program its virtual clock (and charges its compute) when called
 * outside the shim: the shim's own reads go to the real clock (shim.c). */
uint64_t uni_shim_real_ns(clockid_t clk);
static inline uint64_t uni_now_ns(void)
{
	return uni_shim_real_ns(CLOCK_MONOTONIC);
}

static inline uint64_t uni_realtime_ns(void)
{
	return uni_shim_real_ns(CLOCK_REALTIME);
}
#else
/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t uni_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t uni_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
#endif

/* Session names are [A-Za-z0-9_.-]{1,47}; returns 0 or -EINVAL. */
int uni_session_name_check(const char *name);

#endif
