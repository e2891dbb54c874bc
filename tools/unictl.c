/* unictl: start, inspect and stop a uniference session.
 *
 *   unictl start [--session NAME] [--config FILE] [--mode MODE] [--trace PATH]
 *                [--compute-from TRACE]
 *   unictl status [--session NAME] [--json | --threads]
 *   unictl stop [--session NAME]
 *
 * The session name comes from --session, else UNI_SESSION, else "default". */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if __has_include("uni_build_config.h")
#include "uni_build_config.h"
#endif
#ifndef UNI_HAVE_NCCL
#define UNI_HAVE_NCCL 0
#endif
#include "session.h"
#include "uni/common.h"
#include "uni/shm.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: unictl start  [--session NAME] [--config FILE] [--mode record|simulate|emulate] [--trace PATH]\n"
		"                     [--compute-from TRACE] [--deterministic]\n"
		"       unictl status [--session NAME] [--json | --threads]\n"
		"       unictl stop   [--session NAME]\n"
		"The session name defaults to $UNI_SESSION, else 'default'.\n");
}

static const char *rank_state(uint32_t s)
{
	switch (s) {
	case UNI_RANK_LIVE: return "attached";
	case UNI_RANK_DETACHED: return "exited";
	case UNI_RANK_DEAD: return "died";
	default: return "free";
	}
}

static int cmd_status(const char *session, int json, int threads)
{
	char err[512];
	struct uni_shm_hdr *h = uni_shm_open(session, err, sizeof(err));
	if (!h) {
		fprintf(stderr, "unictl: %s\n", err);
		return 1;
	}
	int alive = !uni_pid_dead(h->daemon_pid);
	double up = (double)(uni_now_ns() - h->epoch_mono_ns) / 1e9;
	uint32_t nconns = atomic_load(&h->next_conn);
	uint32_t matched = 0;
	for (uint32_t i = 0; i < nconns && i < h->max_conns; i++)
		if (atomic_load(&uni_shm_conn(h, i)->state) == UNI_CONN_MATCHED)
			matched++;
	uint32_t rings = 0;
	for (uint32_t i = 0; i < h->max_rings; i++)
		if (atomic_load(&uni_shm_ring(h, i)->state) == UNI_RING_LIVE)
			rings++;
	if (json) {
		printf("{\"session\":\"%s\",\"unid_pid\":%d,\"alive\":%s,\"mode\":\"%s\",\"uptime_s\":%.3f,"
		       "\"events\":%llu,\"dropped\":%llu,\"connections\":%u,\"modelled_connections\":%u,"
		       "\"threads\":%u,\"nccl\":%s,\"cupti\":%s,\"trace\":\"%s\",\"compute_from\":\"%s\",\"ranks\":[",
		       h->session, h->daemon_pid, alive ? "true" : "false", uni_mode_name(h->mode), up,
		       (unsigned long long)atomic_load(&h->events_total),
		       (unsigned long long)atomic_load(&h->dropped_total), nconns, matched, rings,
		       UNI_HAVE_NCCL ? "true" : "false", UNI_HAVE_NCCL && UNI_HAVE_CUPTI ? "true" : "false",
		       h->trace_path, h->compute_from);
		int first = 1;
		for (uint32_t i = 0; i < h->max_ranks; i++) {
			struct uni_rank *r = uni_shm_rank(h, i);
			uint32_t st = atomic_load(&r->state);
			if (st == UNI_RANK_FREE)
				continue;
			printf("%s{\"rank\":%u,\"pid\":%d,\"state\":\"%s\",\"threads\":%u,\"events\":%llu,"
			       "\"last_t_ns\":%llu}",
			       first ? "" : ",", i, r->pid, rank_state(st), atomic_load(&r->threads),
			       (unsigned long long)atomic_load(&r->events),
			       (unsigned long long)atomic_load(&r->last_t));
			first = 0;
		}
		printf("]}\n");
	} else {
		printf("session '%s': unid pid %d (%s), mode %s, up %.1f s\n", h->session, h->daemon_pid,
		       alive ? "running" : "GONE: stale segment, run 'unictl stop' to clean up",
		       uni_mode_name(h->mode), up);
		printf("  trace: %s\n", h->trace_path);
		if (h->det)
			printf("  deterministic: the turn went from one thread to another %llu times; %llu waits it does not "
			       "model; %llu turns taken from a thread blocked outside the shim\n",
			       (unsigned long long)atomic_load(&h->det_turns), (unsigned long long)atomic_load(&h->det_outside),
			       (unsigned long long)atomic_load(&h->det_steals));
		if (h->compute_from[0])
			printf("  compute from: %s (so far %llu stretches replayed; threads: %llu followed the "
			       "recorded run to their end, %llu left it, %llu were not in it)\n",
			       h->compute_from, (unsigned long long)atomic_load(&h->cf_replayed),
			       (unsigned long long)atomic_load(&h->cf_followed),
			       (unsigned long long)atomic_load(&h->cf_diverged),
			       (unsigned long long)atomic_load(&h->cf_unknown));
		printf("  events: %llu received, %llu dropped; connections: %u seen, %u between ranks; "
		       "threads reporting: %u\n",
		       (unsigned long long)atomic_load(&h->events_total),
		       (unsigned long long)atomic_load(&h->dropped_total), nconns, matched, rings);
		printf("  NCCL interception: %s\n",
		       UNI_HAVE_NCCL ? (UNI_HAVE_CUPTI ? "built (host and device buffers, CUPTI device timeline; docs/nccl.md)"
						       : "built (host and device buffers; no cupti.h when this was built: no "
							 "device timeline; docs/nccl.md)")
				     : "not built (no nccl.h when this was built)");
		if (atomic_load(&h->deadlock))
			printf("  DEADLOCK found: report in %s\n", h->deadlock_report);
		int any = 0;
		for (uint32_t i = 0; i < h->max_ranks; i++) {
			struct uni_rank *r = uni_shm_rank(h, i);
			uint32_t st = atomic_load(&r->state);
			if (st == UNI_RANK_FREE)
				continue;
			if (!any)
				printf("  %-5s %-8s %-9s %7s %10s %12s\n", "rank", "pid", "state", "threads",
				       "events", "last (ms)");
			any = 1;
			printf("  %-5u %-8d %-9s %7u %10llu %12.3f\n", i, r->pid, rank_state(st),
			       atomic_load(&r->threads), (unsigned long long)atomic_load(&r->events),
			       (double)atomic_load(&r->last_t) / 1e6);
		}
		if (!any)
			printf("  no rank has attached yet\n");
		if (threads)
			uni_print_threads(stdout, h);
	}
	uni_shm_close(h);
	return alive ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"session", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
		{"mode", required_argument, NULL, 'm'},    {"trace", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},       {"compute-from", required_argument, NULL, 'f'},
		{"deterministic", no_argument, NULL, 'D'}, {"threads", no_argument, NULL, 'T'},
		{NULL, 0, NULL, 0}};
	struct uni_start_opts so = {0};
	int json = 0, threads = 0, c;
	so.session = getenv("UNI_SESSION");
	while ((c = getopt_long(argc, argv, "s:c:m:t:f:DjThV", opts, NULL)) != -1) {
		switch (c) {
		case 's': so.session = optarg; break;
		case 'c': so.config = optarg; break;
		case 'm': so.mode = optarg; break;
		case 't': so.trace = optarg; break;
		case 'f': so.compute_from = optarg; break;
		case 'D': so.deterministic = 1; break;
		case 'j': json = 1; break;
		case 'T': threads = 1; break;
		case 'h': usage(stdout); return 0;
#ifdef UNI_VERSION
		case 'V': printf("unictl %s\n", UNI_VERSION); return 0;
#endif
		default: usage(stderr); return 64;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 64;
	}
	if (!so.session || !*so.session)
		so.session = "default";
	if (uni_session_name_check(so.session) < 0) {
		fprintf(stderr, "unictl: bad session name '%s': use 1 to 47 of A-Z a-z 0-9 _ . -\n", so.session);
		return 64;
	}
	const char *cmd = argv[optind];
	char err[1200], trace[PATH_MAX];
	if (strcmp(cmd, "start") == 0) {
		pid_t pid;
		if (uni_session_start(&so, &pid, trace, sizeof(trace), err, sizeof(err)) < 0) {
			fprintf(stderr, "unictl: %s\n", err);
			return 1;
		}
		char shim[PATH_MAX], e2[256];
		if (uni_find_shim(shim, sizeof(shim), e2, sizeof(e2)) < 0)
			snprintf(shim, sizeof(shim), "libunishim.so");
		printf("session '%s' started: unid pid %d, trace %s\n", so.session, pid, trace);
		printf("run ranks with:  UNI_SESSION=%s LD_PRELOAD=%s\n", so.session, shim);
		return 0;
	}
	if (strcmp(cmd, "stop") == 0) {
		int r = uni_session_stop(so.session, 0, trace, sizeof(trace), err, sizeof(err));
		if (r == 1) {
			fprintf(stderr, "unictl: %s\n", err);
			return 1;
		}
		if (r < 0) {
			fprintf(stderr, "unictl: %s\n", err);
			return 1;
		}
		printf("session '%s' stopped; trace %s\n", so.session, trace);
		return 0;
	}
	if (strcmp(cmd, "status") == 0) {
		if (json && threads) {
			fprintf(stderr, "unictl: --threads is a table for people; it has no --json form\n");
			return 64;
		}
		return cmd_status(so.session, json, threads);
	}
	fprintf(stderr, "unictl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 64;
}
