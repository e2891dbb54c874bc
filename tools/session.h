/* Starting and stopping a session: shared by unictl and unirun. */
#ifndef UNI_TOOLS_SESSION_H
#define UNI_TOOLS_SESSION_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct uni_shm_hdr;

struct uni_start_opts {
	const char *session;
	const char *config; /* may be NULL */
	const char *mode;   /* may be NULL: the config's */
	const char *trace;  /* may be NULL: the config's */
	const char *log;    /* unid's stderr after start-up; NULL: /tmp/uni.<session>.log */
	const char *compute_from; /* a trace whose compute the session replays; may be NULL */
	int deterministic;        /* --deterministic */
};

/* Finds a file installed beside this program: tries each of rel (relative
 * to the directory of /proc/self/exe) in turn. Returns 0 and the absolute
 * path in out, or -1. */
int uni_find_beside(const char *const *rel, char *out, size_t len);

/* Paths of unid, libunishim.so and unitrace (env UNI_UNID, UNI_SHIM,
 * UNI_UNITRACE override). Return 0 or -1 with a message in err. */
int uni_find_unid(char *out, size_t len, char *err, size_t errlen);
int uni_find_shim(char *out, size_t len, char *err, size_t errlen);
int uni_find_unitrace(char *out, size_t len, char *err, size_t errlen);

/* Starts unid for o->session in the background (a new session leader) and
 * waits until it serves. Returns 0 with its pid and trace path, or -1 with
 * one line in err (what unid said, e.g. a config error with file and line). */
int uni_session_start(const struct uni_start_opts *o, pid_t *pid, char *trace, size_t tracelen,
		      char *err, size_t errlen);

/* Asks unid to stop and waits for it (child: its pid if it is our child,
 * so that it is reaped; else 0). Returns 0 and the trace path, 1 when the
 * session was not running (err says so, and whether a stale segment was
 * removed), -1 on failure. */
int uni_session_stop(const char *session, pid_t child, char *trace, size_t tracelen, char *err,
		     size_t errlen);

/* Every thread of the session that reports, one line each: its rank,
 * name, state in /proc, its part in deterministic mode's turn and the wait
 * the shim sees it in, and who holds the turn (unictl status --threads;
 * unirun on a signal). What one looks at when a session seems to hang.
 * Read without the turn's lock: a line may be a moment older than the
 * next. */
void uni_print_threads(FILE *out, struct uni_shm_hdr *h);

#endif
