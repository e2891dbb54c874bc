#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session.h"
#include "uni/common.h"
#include "uni/shm.h"

int uni_find_beside(const char *const *rel, char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = 0;
	for (; *rel; rel++) {
		char p[2 * PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", exe, *rel);
		if (access(p, R_OK) == 0 && realpath(p, out) && strlen(out) < len)
			return 0;
	}
	return -1;
}

static int find(const char *env, const char *const *rel, const char *what, char *out, size_t len,
		char *err, size_t errlen)
{
	const char *e = getenv(env);
	if (e && *e) {
		if (access(e, R_OK) == 0) {
			snprintf(out, len, "%s", e);
			return 0;
		}
		snprintf(err, errlen, "%s=%s: %s", env, e, strerror(errno));
		return -1;
	}
	if (uni_find_beside(rel, out, len) == 0)
		return 0;
	snprintf(err, errlen, "cannot find %s beside this program (set %s)", what, env);
	return -1;
}

int uni_find_unid(char *out, size_t len, char *err, size_t errlen)
{
	static const char *const rel[] = {"unid", "../engine/unid", NULL};
	return find("UNI_UNID", rel, "unid", out, len, err, errlen);
}

int uni_find_shim(char *out, size_t len, char *err, size_t errlen)
{
	static const char *const rel[] = {"../shim/libunishim.so", "../lib/libunishim.so",
					  "../lib/x86_64-linux-gnu/libunishim.so",
					  "../lib/aarch64-linux-gnu/libunishim.so", "libunishim.so", NULL};
	return find("UNI_SHIM", rel, "libunishim.so", out, len, err, errlen);
}

int uni_find_unitrace(char *out, size_t len, char *err, size_t errlen)
{
	static const char *const rel[] = {"unitrace", "../tools/unitrace", NULL};
	return find("UNI_UNITRACE", rel, "unitrace", out, len, err, errlen);
}

int uni_session_start(const struct uni_start_opts *o, pid_t *pidp, char *trace, size_t tracelen,
		      char *err, size_t errlen)
{
	char unid[PATH_MAX];
	if (uni_session_name_check(o->session) < 0) {
		snprintf(err, errlen, "bad session name '%s': use 1 to 47 of A-Z a-z 0-9 _ . -", o->session);
		return -1;
	}
	if (uni_find_unid(unid, sizeof(unid), err, errlen) < 0)
		return -1;
	char logpath[PATH_MAX];
	if (o->log)
		snprintf(logpath, sizeof(logpath), "%s", o->log);
	else
		snprintf(logpath, sizeof(logpath), "/tmp/uni.%s.log", o->session);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* The daemon: its own session, no terminal, stdout/stderr to its log. */
		setsid();
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int null = open("/dev/null", O_RDONLY);
		int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (null >= 0)
			dup2(null, 0);
		if (log >= 0) {
			dup2(log, 1);
			dup2(log, 2);
		}
		int wfd = fcntl(p[1], F_DUPFD, 10); /* without CLOEXEC */
		char fdarg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", wfd);
		const char *argv[16];
		int n = 0;
		argv[n++] = unid;
		argv[n++] = "--session";
		argv[n++] = o->session;
		argv[n++] = "--ready-fd";
		argv[n++] = fdarg;
		if (o->config) {
			argv[n++] = "--config";
			argv[n++] = o->config;
		}
		if (o->mode) {
			argv[n++] = "--mode";
			argv[n++] = o->mode;
		}
		if (o->trace) {
			argv[n++] = "--trace";
			argv[n++] = o->trace;
		}
		if (o->compute_from) {
			argv[n++] = "--compute-from";
			argv[n++] = o->compute_from;
		}
		if (o->deterministic)
			argv[n++] = "--deterministic";
		argv[n] = NULL;
		/* LD_PRELOAD of the shim must not reach the daemon. */
		unsetenv("LD_PRELOAD");
		execv(unid, (char *const *)argv);
		dprintf(wfd, "error: cannot run %s: %s\n", unid, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	char line[1200];
	size_t got = 0;
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	while (got < sizeof(line) - 1) {
		int r = poll(&pf, 1, 15000);
		if (r <= 0) {
			snprintf(err, errlen, "unid (pid %d) did not answer within 15 s; see %s", pid, logpath);
			close(p[0]);
			kill(pid, SIGKILL);
			return -1;
		}
		ssize_t k = read(p[0], line + got, sizeof(line) - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
		if (memchr(line, '\n', got))
			break;
	}
	close(p[0]);
	line[got] = 0;
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = 0;
	if (strncmp(line, "ok ", 3) != 0) {
		if (strncmp(line, "error: ", 7) == 0)
			snprintf(err, errlen, "%s", line + 7);
		else
			snprintf(err, errlen, "unid exited during start-up; see %s", logpath);
		waitpid(pid, NULL, WNOHANG);
		return -1;
	}
	*pidp = pid;
	if (trace) {
		char e2[256];
		struct uni_shm_hdr *h = uni_shm_open(o->session, e2, sizeof(e2));
		snprintf(trace, tracelen, "%s", h ? h->trace_path : "?");
		uni_shm_close(h);
	}
	return 0;
}

static int pid_gone(pid_t pid, pid_t child)
{
	if (child > 0) {
		pid_t r = waitpid(child, NULL, WNOHANG);
		return r == child || (r < 0 && errno == ECHILD);
	}
	return uni_pid_dead(pid);
}

/* A segment whose daemon is gone: remove it and its lock (only if nobody
 * holds the lock: a daemon that is starting holds it). */
static void remove_stale(const char *session)
{
	char name[96], lock[128];
	uni_shm_name(session, name, sizeof(name));
	uni_lock_path(session, lock, sizeof(lock));
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return;
	}
	shm_unlink(name);
	unlink(lock);
	if (fd >= 0)
		close(fd);
}

/* After unid pid is gone: is its segment still there? Then it did not stop
 * cleanly; remove what it left. */
static int left_behind(const char *session, pid_t pid)
{
	char e2[256];
	struct uni_shm_hdr *h = uni_shm_open(session, e2, sizeof(e2));
	if (!h)
		return 0;
	int mine = h->daemon_pid == pid;
	uni_shm_close(h);
	if (mine)
		remove_stale(session);
	return mine;
}

int uni_session_stop(const char *session, pid_t child, char *trace, size_t tracelen, char *err,
		     size_t errlen)
{
	char e2[512];
	struct uni_shm_hdr *h = uni_shm_open(session, e2, sizeof(e2));
	if (!h) {
		snprintf(err, errlen, "session '%s' is not running (%s)", session, e2);
		return 1;
	}
	pid_t pid = h->daemon_pid;
	if (trace)
		snprintf(trace, tracelen, "%s", h->trace_path);
	if (uni_pid_dead(pid)) {
		uni_shm_close(h);
		remove_stale(session);
		snprintf(err, errlen,
			 "session '%s' is not running: removed the stale segment left by unid pid %d, "
			 "which is gone", session, pid);
		return 1;
	}
	atomic_store(&h->stop, 1);
	atomic_fetch_add(&h->doorbell, 1);
	uni_futex_wake(&h->doorbell, 1);
	uni_shm_close(h);
	/* unid drains, writes the end of the trace, fsyncs: give it 10 s. */
	for (int i = 0; i < 1000; i++) {
		if (pid_gone(pid, child))
			goto gone;
		usleep(10000);
	}
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (pid_gone(pid, child))
			goto late;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	while (!pid_gone(pid, child))
		usleep(10000);
	remove_stale(session);
	snprintf(err, errlen, "unid pid %d of session '%s' did not stop in 12 s and was killed; "
		 "the trace may end early", pid, session);
	return -1;
late:
	if (left_behind(session, pid)) {
		snprintf(err, errlen, "unid pid %d of session '%s' died before it finished stopping "
			 "(after SIGTERM): removed its segment; the trace may end early", pid, session);
		return -1;
	}
	snprintf(err, errlen, "unid pid %d of session '%s' needed SIGTERM to stop", pid, session);
	return -1;
gone:
	/* A unid that stops cleanly removes its segment last; one that died
	 * on the way (killed while stopping) leaves it behind. */
	if (left_behind(session, pid)) {
		snprintf(err, errlen, "unid pid %d of session '%s' died before it finished stopping: "
			 "removed its segment; the trace may end early", pid, session);
		return -1;
	}
	return 0;
}

/* uni_print_threads (session.h) */
static void thread_comm(int pid, int tid, char *out, size_t len)
{
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/comm", pid, tid);
	FILE *f = fopen(p, "re");
	if (!f || !fgets(out, (int)len, f))
		snprintf(out, len, "?");
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = 0;
}

static double ms(uint64_t t)
{
	return (double)t / 1e6;
}

void uni_print_threads(FILE *out, struct uni_shm_hdr *h)
{
	uint64_t now = uni_now_ns();
	if (h->det) {
		uint32_t own = atomic_load(&h->det_owner), lock = atomic_load(&h->det_lock);
		struct uni_ring *o = own && own <= h->max_rings ? uni_shm_ring(h, own - 1) : NULL;
		fprintf(out, "  the turn: %s", o ? "" : "held by no thread");
		if (o)
			fprintf(out, "held by thread %d (rank %d)", o->tid, o->rank);
		fprintf(out, "; its lock %s", lock ? "held by thread " : "free");
		if (lock)
			fprintf(out, "%u", lock);
		fprintf(out, "; network steps asked %u, answered %u; network time %.3f ms%s\n",
		       atomic_load(&h->det_sync_req), atomic_load(&h->det_sync_ack), ms(atomic_load(&h->det_sync_now)),
		       atomic_load(&h->det_off) ? "; GIVEN UP for this session" : "");
	}
	static const char *const dst[] = {"-", "READY", "RUN", "BLOCKED", "OUTSIDE"};
	static const char *const wk[] = {"-", "cond", "read", "sleep", "poll"};
	int any = 0;
	for (uint32_t i = 0; i < h->max_rings; i++) {
		struct uni_ring *r = uni_shm_ring(h, i);
		if (atomic_load(&r->state) != UNI_RING_LIVE)
			continue;
		if (!any)
			fprintf(out, "  %-8s %-5s %-16s %-2s %-8s %12s %-18s %-6s %10s\n", "thread", "rank", "name", "os", "turn", "turn at ms",
			       "on", "wait", "for s");
		any = 1;
		char comm[32];
		thread_comm(r->pid, r->tid, comm, sizeof(comm));
		uint32_t st = atomic_load(&r->det_st), k = atomic_load(&r->wait_kind);
		uint64_t since = r->wait_since;
		char t[32] = "-", on[32] = "-", fs[32] = "-";
		if (st == UNI_DET_READY || (st == UNI_DET_BLOCKED && r->det_t != UINT64_MAX))
			snprintf(t, sizeof(t), "%.3f", ms(r->det_t));
		if (st == UNI_DET_BLOCKED)
			snprintf(on, sizeof(on), "%#llx%s", (unsigned long long)r->det_obj,
				 r->det_net == UNI_DET_NET_ANY ? " net" : r->det_net == UNI_DET_NET_ANSWER ? " answer" : "");
		if (k != UNI_WAIT_NONE && since && since <= now)
			snprintf(fs, sizeof(fs), "%.1f", (double)(now - since) / 1e9);
		char sp[96];
		snprintf(sp, sizeof(sp), "/proc/%d/task/%d/stat", r->pid, r->tid);
		int os = uni_proc_state(sp);
		fprintf(out, "  %-8d %-5d %-16s %-2c %-8s %12s %-18s %-6s %10s\n", r->tid, r->rank, comm, os > 0 ? os : '?',
		       st < 5 ? dst[st] : "?", t, on, k < 5 ? wk[k] : "?", fs);
		char what[sizeof(r->wait_what)];
		memcpy(what, r->wait_what, sizeof(what));
		what[sizeof(what) - 1] = 0;
		if (what[0])
			fprintf(out, "      %s\n", what);
	}
	if (!any)
		fprintf(out, "  no thread reports\n");
}
