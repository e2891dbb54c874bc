/* unirun: start a private session, launch N ranks under the shim, wait,
 * stop the session and print the summary.
 *
 *   unirun -n N [--config FILE] [--mode MODE] [--trace PATH] [--session NAME]
 *          [--master-port PORT] [--no-summary] -- CMD [ARGS...]
 *
 * Every rank gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT, UNI_SESSION and LD_PRELOAD, as torchrun would
 * (plus OMP_NUM_THREADS=1 unless set, as torchrun does, and
 * CUDA_INJECTION64_PATH = the shim unless set: CUPTI, docs/nccl.md). The ranks form one
 * process group of their own; SIGINT, SIGTERM and SIGHUP sent to unirun are
 * forwarded to it, after unirun printed where each thread was
 * (uni_print_threads). MASTER_PORT, unless --master-port: a free port from
 * 10000, below deterministic mode's ports and the kernel's ephemeral range
 * (free_port). When a rank fails, the others get SIGTERM (SIGKILL 5 s
 * later) and unirun exits with that rank's status. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include("uni_build_config.h")
#include "uni_build_config.h"
#endif
#include "session.h"
#include "uni/common.h"
#include "uni/shm.h"

/* Exit status of unirun when the session found a deadlock. */
#define UNI_EXIT_DEADLOCK 97

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: unirun -n N [--config FILE] [--mode record|simulate|emulate] [--trace PATH]\n"
		   "              [--session NAME] [--master-port PORT] [--compute-from TRACE] [--deterministic]\n"
		   "              [--no-summary]\n"
		   "              -- CMD [ARGS...]\n");
}

/* port (0: any) if a listener on every address could bind it now, as
 * torch's store does ([::] for both families, else 0.0.0.0): the port, or
 * -1. */
static int bindable(int port)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), got = -1, off = 0;
	if (fd >= 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) == 0) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any,
					 .sin6_port = htons((uint16_t)port)};
		socklen_t l = sizeof(a);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
			got = ntohs(a.sin6_port);
		close(fd);
		return got;
	}
	if (fd >= 0)
		close(fd);
	/* (No IPv6 here.) */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
				.sin_port = htons((uint16_t)port)};
	socklen_t l = sizeof(a);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		got = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return got;
}

/* MASTER_PORT: a free port from 10000 up to 16384, below the kernel's
 * ephemeral range (net.ipv4.ip_local_port_range), which the kernel gives
 * nobody by itself: one from that range (bind to port 0) was free when
 * unirun looked and could be another process's connection by the time
 * rank 0's store binds it, half a second later (ranks of simulations run
 * side by side open dozens), and below deterministic mode's ports (16384
 * to 32767, shim.c), which ranks of another session may take. Else, if
 * the ephemeral range starts below 11000, the kernel's choice. */
static int free_port(void)
{
	int lo = 32768;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	if (f) {
		if (fscanf(f, "%d", &lo) != 1)
			lo = 32768;
		fclose(f);
	}
	if (lo > 16384)
		lo = 16384;
	unsigned seed = (unsigned)getpid() ^ (unsigned)uni_now_ns();
	for (int i = 0; lo - 10000 >= 1000 && i < 64; i++) {
		int p = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
		if (bindable(p) == p)
			return p;
	}
	return bindable(0);
}

static void setenv_int(const char *k, long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%ld", v);
	setenv(k, b, 1);
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"nproc", required_argument, NULL, 'n'},   {"config", required_argument, NULL, 'c'},
		{"mode", required_argument, NULL, 'm'},    {"trace", required_argument, NULL, 't'},
		{"session", required_argument, NULL, 's'}, {"master-port", required_argument, NULL, 'p'},
		{"no-summary", no_argument, NULL, 'S'},    {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},       {"compute-from", required_argument, NULL, 'f'},
		{"deterministic", no_argument, NULL, 'D'},
		{NULL, 0, NULL, 0}};
	struct uni_start_opts so = {0};
	long n = 0;
	int port = 0, summary = 1, c;
	while ((c = getopt_long(argc, argv, "+n:c:m:t:s:p:f:DSh", opts, NULL)) != -1) {
		switch (c) {
		case 'n': n = strtol(optarg, NULL, 10); break;
		case 'c': so.config = optarg; break;
		case 'm': so.mode = optarg; break;
		case 't': so.trace = optarg; break;
		case 's': so.session = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'S': summary = 0; break;
		case 'f': so.compute_from = optarg; break;
		case 'D': so.deterministic = 1; break;
		case 'h': usage(stdout); return 0;
#ifdef UNI_VERSION
		case 'V': printf("unirun %s\n", UNI_VERSION); return 0;
#endif
		default: usage(stderr); return 64;
		}
	}
	if (n < 1 || n > 256 || optind >= argc) {
		if (n < 1 || n > 256)
			fprintf(stderr, "unirun: -n wants a number of ranks from 1 to 256\n");
		usage(stderr);
		return 64;
	}
	char **cmd = argv + optind;
	char session[64], err[1200], trace[PATH_MAX], shim[PATH_MAX];
	if (!so.session) {
		snprintf(session, sizeof(session), "unirun-%d", getpid());
		so.session = session;
	}
	if (uni_find_shim(shim, sizeof(shim), err, sizeof(err)) < 0) {
		fprintf(stderr, "unirun: %s\n", err);
		return 1;
	}
	if (port <= 0)
		port = free_port();
	if (port <= 0) {
		fprintf(stderr, "unirun: cannot find a free TCP port on 127.0.0.1\n");
		return 1;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* (A reader of unirun's output gone, say tee after a Ctrl-C: its
	 * writes fail with EPIPE instead of killing it before it forwarded
	 * the signal and stopped the session. Its children get the default
	 * back.) */
	signal(SIGPIPE, SIG_IGN);

	uint64_t wall0 = uni_now_ns();
	pid_t unid;
	if (uni_session_start(&so, &unid, trace, sizeof(trace), err, sizeof(err)) < 0) {
		fprintf(stderr, "unirun: %s\n", err);
		return 1;
	}

	char e2[256];
	struct uni_shm_hdr *hdr = uni_shm_open(so.session, e2, sizeof(e2));
	int deadlock = 0;
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	int *done = calloc((size_t)n, sizeof(*done));
	pid_t pgid = 0;
	int failed_rank = -1, failed_status = 0, live = 0;
	for (long r = 0; r < n; r++) {
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "unirun: fork: %s\n", strerror(errno));
			failed_rank = (int)r;
			failed_status = 1;
			break;
		}
		if (pid == 0) {
			setpgid(0, pgid);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGHUP, SIG_DFL);
			signal(SIGPIPE, SIG_DFL);
			setenv_int("RANK", r);
			setenv_int("LOCAL_RANK", r);
			setenv_int("WORLD_SIZE", n);
			setenv_int("LOCAL_WORLD_SIZE", n);
			setenv_int("GROUP_RANK", 0);
			setenv("MASTER_ADDR", "127.0.0.1", 0);
			setenv_int("MASTER_PORT", port);
			setenv("UNI_SESSION", so.session, 1);
			/* Our own session: a rank that cannot attach is an error. */
			setenv("UNI_STRICT", "1", 0);
			setenv("OMP_NUM_THREADS", "1", 0);
			const char *pre = getenv("LD_PRELOAD");
			char buf[2 * PATH_MAX];
			if (pre && *pre)
				snprintf(buf, sizeof(buf), "%s:%s", shim, pre);
			else
				snprintf(buf, sizeof(buf), "%s", shim);
			setenv("LD_PRELOAD", buf, 1);
			/* A CUDA program's driver loads the same copy at cuInit,
			 * so CUPTI sees its kernels from the first (shim/cupti.c);
			 * a tool of the user's (nsys) keeps its own. */
			setenv("CUDA_INJECTION64_PATH", shim, 0);
			execvp(cmd[0], cmd);
			fprintf(stderr, "unirun: cannot run %s: %s\n", cmd[0], strerror(errno));
			_exit(127);
		}
		if (!pgid)
			pgid = pid;
		setpgid(pid, pgid); /* also here: no race with the child's own call */
		pids[r] = pid;
		live++;
	}

	uint64_t kill_at = 0;
	int forwarded = 0;
	while (live > 0) {
		if (hdr && !deadlock && atomic_load(&hdr->deadlock)) {
			/* unid stops the ranks; say why, once, before their exits. */
			deadlock = 1;
			fprintf(stderr, "unirun: deadlock: every rank waits and nothing is in flight\n");
			FILE *f = fopen(hdr->deadlock_report, "r");
			char line[512];
			while (f && fgets(line, sizeof(line), f))
				fputs(line, stderr);
			if (f)
				fclose(f);
			fprintf(stderr, "unirun: report in %s\n", hdr->deadlock_report);
			if (!kill_at)
				kill_at = uni_now_ns() + 5000000000ull;
		}
		if (got_signal && !forwarded) {
			/* Where each thread was (a run that seemed to hang, a
			 * test's time limit), before the ranks go. */
			if (hdr) {
				fprintf(stderr, "unirun: %s: where each thread was:\n", strsignal(got_signal));
				uni_print_threads(stderr, hdr);
			}
			killpg(pgid, got_signal);
			forwarded = got_signal;
			kill_at = uni_now_ns() + 5000000000ull;
		}
		for (long r = 0; r < n; r++) {
			if (!pids[r] || done[r])
				continue;
			int st;
			pid_t w = waitpid(pids[r], &st, WNOHANG);
			if (w != pids[r])
				continue;
			done[r] = 1;
			live--;
			if (status_code(st) != 0 && failed_rank < 0 && !deadlock) {
				failed_rank = (int)r;
				failed_status = status_code(st);
				if (WIFSIGNALED(st))
					fprintf(stderr, "unirun: rank %ld (pid %d) was killed by signal %d (%s)\n", r,
						pids[r], WTERMSIG(st), strsignal(WTERMSIG(st)));
				else
					fprintf(stderr, "unirun: rank %ld (pid %d) exited with status %d\n", r,
						pids[r], WEXITSTATUS(st));
				if (live > 0) {
					fprintf(stderr, "unirun: stopping the other %d rank%s\n", live,
						live == 1 ? "" : "s");
					killpg(pgid, SIGTERM);
					kill_at = uni_now_ns() + 5000000000ull;
				}
			}
		}
		if (kill_at && uni_now_ns() > kill_at) {
			killpg(pgid, SIGKILL);
			kill_at = 0;
		}
		if (live > 0)
			usleep(20000);
	}

	int sr = uni_session_stop(so.session, unid, trace, sizeof(trace), err, sizeof(err));
	if (sr != 0)
		fprintf(stderr, "unirun: %s\n", err);
	if (summary) {
		char ut[PATH_MAX];
		if (uni_find_unitrace(ut, sizeof(ut), err, sizeof(err)) == 0) {
			fflush(stdout);
			pid_t p = fork();
			if (p == 0) {
				signal(SIGPIPE, SIG_DFL);
				execl(ut, ut, "summary", trace, (char *)NULL);
				_exit(127);
			}
			if (p > 0)
				waitpid(p, NULL, 0);
		}
	}
	/* The picture: TRACE with .svg for .unitrace (or appended). */
	char svg[PATH_MAX + 8];
	int have_svg = 0;
	if (summary) {
		char ut[PATH_MAX];
		snprintf(svg, sizeof(svg), "%s", trace);
		char *dot = strrchr(svg, '.');
		if (dot && strcmp(dot, ".unitrace") == 0)
			strcpy(dot, ".svg");
		else
			strcat(svg, ".svg");
		if (uni_find_unitrace(ut, sizeof(ut), err, sizeof(err)) == 0) {
			pid_t p = fork();
			if (p == 0) {
				signal(SIGPIPE, SIG_DFL);
				execl(ut, ut, "plot", trace, "-o", svg, (char *)NULL);
				_exit(127);
			}
			int st = 1;
			if (p > 0)
				waitpid(p, &st, 0);
			have_svg = p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
		}
	}
	printf("unirun: host wall time %.3f s; trace written to %s\n",
	       (double)(uni_now_ns() - wall0) / 1e9, trace);
	if (have_svg)
		printf("unirun: picture written to %s\n", svg);
	uint64_t warps = hdr ? atomic_load(&hdr->warps) : 0;
	if (warps)
		printf("unirun: %llu sleep%s ended early (nothing else could happen before %s; the same "
		       "virtual time): %.3f s of wall time saved\n",
		       (unsigned long long)warps, warps == 1 ? "" : "s", warps == 1 ? "it" : "them",
		       (double)atomic_load(&hdr->warp_saved_ns) / 1e9);
	uint64_t gave_up = hdr ? atomic_load(&hdr->holds_given_up) : 0;
	if (gave_up)
		printf("unirun: %llu sleep%s or connect%s stopped waiting for the other ranks to reach %s virtual "
		       "time after %.0f s (a thread that computes without entering the shim?): what %s saw may "
		       "come from later in virtual time (docs/simulate.md)\n",
		       (unsigned long long)gave_up, gave_up == 1 ? "" : "s", gave_up == 1 ? "" : "s",
		       gave_up == 1 ? "its" : "their",
		       (double)atomic_load(&hdr->hold_max_ns) / 1e9,
		       gave_up == 1 ? "it" : "they");
	/* Where virtual time stood still while wall time passed (a thread
	 * left out that sends later sends late: the summary counts that).
	 * (Only from a unid that stopped cleanly: the nic counts come at its
	 * end.) */
	uint64_t stalls = hdr ? atomic_load(&hdr->stalls) : 0, soft = hdr ? atomic_load(&hdr->soft_released) : 0,
		 stale = hdr ? atomic_load(&hdr->stale_released) : 0;
	if (sr == 0 && (stalls || soft || stale)) {
		printf("unirun: virtual time stood still while wall time passed:");
		if (stalls == 1)
			printf(" once");
		else if (stalls)
			printf(" %llu times", (unsigned long long)stalls);
		if (stalls)
			printf(" (%.3f s in all) until threads that held the horizon and were not running (blocked "
			       "outside the shim) were left out%s",
			       (double)atomic_load(&hdr->stall_ns) / 1e9, soft || stale ? ";" : "");
		if (soft || stale)
			printf(" the nic network held arrivals for readers that had not asked for them:");
		if (soft)
			printf(" %llu for 200 ms%s", (unsigned long long)soft, stale ? "," : "");
		if (stale)
			printf(" %llu for 2 s (stale)", (unsigned long long)stale);
		printf(" (more in /tmp/uni.%s.log)\n", so.session);
	}
	free(pids);
	free(done);
	uni_shm_close(hdr);
	if (deadlock)
		return UNI_EXIT_DEADLOCK;
	if (forwarded && failed_rank < 0)
		return 128 + forwarded;
	return failed_rank >= 0 ? failed_status : (sr < 0 ? 1 : 0);
}
