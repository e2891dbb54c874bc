/* libunishim core: attaching a process to its session as a rank, per-thread
 * event rings, connection registration, liveness of the coordinator, fork.
 *
 * The shim only intercepts and forwards (DESIGN section 2): it appends
 * fixed-size records to its thread's ring and goes on; it never computes a
 * model. A process attaches when it has RANK and WORLD_SIZE and a live
 * session; every other process (a launcher, the torchrun agent, a forked
 * child, a second process exec'd with the same environment) stays
 * pass-through. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <unistd.h>

#if __has_include("uni_build_config.h")
#include "uni_build_config.h"
#endif
#if UNI_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#else
#endif
#include <dlfcn.h>
#include <link.h>

#include "gloo_follow.h"
#include <sys/ioctl.h>

#include "shim.h"
#include "det.h"
#include "uni/compute_from.h"
#include "uni/shm.h"
#include "uni/trace.h"

#define UNI_SHIM_MAX_CONNS 8192u
#define UNI_LIVENESS_NS 500000000ull /* check the coordinator twice a second */
#define UNI_EXIT_STRICT 3            /* status of a rank that cannot attach under UNI_STRICT */

enum shim_state {
	ST_UNINIT = 0,
	ST_PASSTHROUGH, /* not a rank, or could not attach: forward everything */
	ST_ATTACHED,    /* a rank of a live session */
	ST_CHILD,       /* forked from a rank: pass-through until it attaches as its own rank */
	ST_ORPHAN,      /* the coordinator died: pass-through from now on */
};

struct shim_conn {
	_Atomic uint32_t refs; /* fds referring to it */
	uint32_t shm_idx;      /* index into the segment's conns[] */
	_Atomic uint64_t tx, rx;
	_Atomic uint32_t nb;   /* O_NONBLOCK as last read: 0 not read since the flags
	                          may have changed, 1 blocking, 2 non-blocking */
	_Atomic uint32_t nb_gen; /* bumped when the flags may have changed */
	_Atomic uint32_t pend_err; /* a blocking write's error after some of its bytes
	                              went: the next write's (uni_shim_send_blocking) */
	_Atomic uint32_t up;   /* deterministic mode: the kernel said it is connected */
	struct uni_gf_conn gf; /* simulate: Gloo stream follower (under Gloo's pair mutex) */
};

struct shim_tls {
	struct uni_ring *ring;
	uint32_t gen;      /* process generation the ring belongs to (fork) */
	int in_shim;
	int ring_failed;
	uint32_t req_seq;  /* last READ_REQ number */
	uint64_t vt;       /* simulate: virtual clock, ns since the epoch */
	uint64_t cpu_mark; /* thread CPU time when the thread last left the shim */
	uint64_t wall_mark; /* wall time (monotonic) when cpu_mark was set, 0: never */
	uint32_t cpu_gen;   /* process generation of cpu_mark (a forked child starts over) */
	uint32_t loop;     /* 1: calls epoll_wait (an event loop) */
	uint32_t dispatcher; /* 1: an event loop that reads modelled connections */
	uint32_t last_conn;  /* dispatcher: connection of the event being handled, + 1 */
	uint32_t nheld;      /* mutexes held (the innermost UNI_HELD are remembered) */
	void *held[4];
	void *released;      /* the mutex this thread released last */
	uint64_t compute;    /* simulate: compute charged to this thread (virtual ns) */
	uint64_t waited;     /* simulate: clock advanced by wake-ups and arrivals */
	uint64_t idled;      /* simulate: clock advanced by sleeps and timed-out waits */
	void *slice_cv;      /* a 1 s slice of a wait on it just ended (same wait goes on) */
	struct timespec slice_abs, slice_real; /* that wait's deadline as the caller gave it,
	                        and the real one it was converted to (kept across slices) */
	uint64_t slice_vdl;  /* ... and its virtual one */
	uint64_t last_src;   /* the SIGNAL event of the last hand-off it took (emit_take) ... */
	uint64_t last_t;     /* ... and the time it took then */
	uint32_t quiet;      /* inside a Gloo buffer call: condvars and mutexes carry no time */
	uint32_t device;     /* a thread of CUDA's libraries (uni_shim_device_thread) */
	uint32_t ring_idx;   /* index of ring in the segment */
	uint64_t sent_token; /* the Gloo data message this thread last finished writing:
	                        (conn + 1) << 48 | end offset; 0: none */
	uint32_t poller;     /* nic: a thread other than the main one that waits in poll or
	                        epoll and has not sent a modelled byte: a helper (the
	                        store's daemons, a loop before its first read) */
	uint32_t sent;       /* it wrote on a modelled connection */
	uint32_t tid;        /* gettid(), once it has a ring */
	uint32_t nev;        /* events pushed to its ring since its THREAD (the next one's seq) */
	uint64_t pend_t0;    /* simulate: compute charged since its last event: from this clock ... */
	uint64_t pend_d;     /* ... this much (virtual) ... */
	uint64_t pend_cpu;   /* ... for this much CPU time */
	uint64_t start_src;  /* a new thread: the SIGNAL of its creator (replay) */
	uint32_t starved;    /* nic: a read of this loop found no final byte ... */
	uint32_t starved_seq; /* ... when final_seq was this */
	uint64_t alive_at;   /* when it last found unid alive (coordinator_alive) */
	uint64_t key;        /* the thread's key (uni/compute_from.h), 0: none */
	uint32_t nchild;     /* threads it created (the next one's key) */
	uint32_t pend_force; /* --compute-from: a COMPUTE goes before its next event
	                        even when the replayed compute is 0 ns here */
	uint32_t last_compute; /* its last event was a COMPUTE (uni_shim_vt_start) */
	const struct uni_cf_thread *cf; /* --compute-from: its recorded events,
	                        NULL: measured (none, or it left the recorded run) */
	uint32_t cf_at;      /* nev + 1 when it last took its recorded compute */
	uint32_t cf_tp;      /* nev + 1 at its last turn (deterministic mode) */
	uint64_t cf_prog;    /* the program's CPU since it took its recorded compute (the shim's not in it) */
	uint8_t cf_hist[6];  /* UNI_CF_DEBUG=2: the kinds of its last events */
	uint32_t cf_nh;
	uint32_t det_out;    /* deterministic mode: in a wait the turn does not follow */
	uint32_t det_done;   /* ... the thread ended (a destructor after ours takes no part) */
	uint32_t det_at;     /* ... charge() is at a turn: the compute goes on the clock */
	uint64_t det_acc;    /* ... compute since its last turn, not on the clock yet (virtual ns) ... */
	uint64_t det_acc_cpu; /* ... and as CPU ns */
	uint32_t det_clamped; /* ... its read was clamped in turn just now */
	uint32_t det_nccl_marked; /* its NCCL wait in turn is published as a condition wait */
	void (*await_fn)(void *); /* called every 100 ms of a wait for unid's answer (uni_shim_await_note) */
	void *await_arg;
	uint32_t det_polled;  /* its last poll or epoll wait was answered in turn */
	uint32_t resp_seen;   /* its ring's answer word when it last looked for an answer (uni_shim_vrecv_poll) */
};
#define UNI_HELD 4

/* Initial-exec TLS (a few hundred bytes): a preloaded library always gets
 * static TLS, and no __tls_get_addr call sits on the fast path. */
static __thread struct shim_tls tls __attribute__((tls_model("initial-exec")));

static _Atomic int g_state;
static _Atomic int g_init_started;
static struct uni_shm_hdr *g_hdr;
static int g_rank = -1;
static int g_world = -1;
static int g_pid;
static int g_master_port = -1;
static uint64_t g_hold_max_ns = UNI_HOLD_MAX_NS; /* hold_until gives up after it */
static uint64_t g_epoch;
static _Atomic uint32_t g_gen;
static _Atomic uint64_t g_last_check;
static pthread_key_t g_thread_key;
static struct shim_conn g_conns[UNI_SHIM_MAX_CONNS];
static _Atomic uint32_t g_nconns;
static _Atomic int g_warned_conns, g_warned_rings;
static uint32_t g_mode;
static int g_horizon; /* the session's model needs wake floors (nic) */
static _Atomic uint64_t g_last_coll; /* prefix << 32 | tag of the last Gloo collective begun */
static int g_stacks;                 /* record call stacks of Gloo operations (trace.stacks) */
/* The rings this process's threads claimed (wake floors look only here). */
static uint32_t g_myrings[UNI_MAX_RINGS];
static _Atomic uint32_t g_nmyrings;
static int g_vclock;        /* the program reads virtual time */
static uint64_t g_epoch_real;
UNI_HIDDEN int uni_shim_sync_on;
UNI_HIDDEN int uni_shim_clamp_on;
UNI_HIDDEN int uni_shim_rec_on; /* a rank in record mode: sleeps are timed (summary) */
static double g_slowdown = 1.0;
static struct uni_cf g_cf;   /* --compute-from: this rank's recorded compute */
static int g_cf_on;
static int g_cf_debug;
static int g_det; /* deterministic mode (det.h) */
/* ... this process's threads that take part in the turn: with one, its
 * mutexes and condition variables need no turns (nobody to order). */
static _Atomic int g_det_threads;

void uni_shim_resolve(void) UNI_HIDDEN;

/* Logging ------------------------------------------------------------- */

void uni_shim_log(const char *fmt, ...)
{
	int saved = errno;
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "uniference: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	/* Raw syscall: never re-enters our write wrapper or stdio locks. */
	syscall(SYS_write, 2, buf, len);
	errno = saved;
}

int uni_shim_in_shim(void)
{
	return tls.in_shim;
}

/* The thread is in the shim (on: 1) or leaves it (0): a signal handler
 * that writes a pipe meanwhile (Python's wake-up fd) goes straight to the
 * kernel instead of into a lock the interrupted shim code holds. */
void uni_shim_hold(int on)
{
	if (on)
		tls.in_shim++;
	else
		tls.in_shim--;
}

static inline uint64_t shim_now(void)
{
	return uni_now_ns() - g_epoch;
}

/* Coordinator liveness ------------------------------------------------ */

static int coordinator_alive(void)
{
	/* Asked at every wake-up of the wait loops: looked at (a signal and
	 * a read of /proc) at most every 50 ms per thread. 64 ranks whose
	 * sleepers woke hundreds of times a second spent a third of the
	 * host's CPU in it. */
	uint64_t now = uni_now_ns();
	if (tls.alive_at && now - tls.alive_at < 50000000ull)
		return 1;
	if (uni_pid_dead(g_hdr->daemon_pid))
		return 0;
	tls.alive_at = now;
	return 1;
}

/* Said once; from then on the process is pass-through and never waits. */
static void orphan(const char *why)
{
	int expect = ST_ATTACHED;
	uni_shim_sync_on = 0;
	uni_shim_clamp_on = 0;
	uni_shim_rec_on = 0;
	if (atomic_compare_exchange_strong(&g_state, &expect, ST_ORPHAN))
		uni_shim_log("rank %d: coordinator of session '%s' (unid pid %d) %s; "
			     "continuing pass-through, later traffic is not recorded",
			     g_rank, g_hdr->session, g_hdr->daemon_pid, why);
}

static void maybe_check_liveness(uint64_t now)
{
	uint64_t last = atomic_load_explicit(&g_last_check, memory_order_relaxed);
	if (now - last < UNI_LIVENESS_NS)
		return;
	if (!atomic_compare_exchange_strong(&g_last_check, &last, now))
		return;
	if (!coordinator_alive())
		orphan("is gone");
}

static void wake_daemon(void)
{
	atomic_fetch_add_explicit(&g_hdr->doorbell, 1, memory_order_release);
	uni_futex_wake(&g_hdr->doorbell, 1);
}

/* Something unid should see soon was published: the doorbell moves
 * always (unid reads it before it looks for work and sleeps only while it
 * has not moved, so no wake-up is lost between its look and its sleep);
 * the futex wake only when it sleeps. */
static void ring_bell(void)
{
	atomic_fetch_add_explicit(&g_hdr->doorbell, 1, memory_order_release);
	if (atomic_load_explicit(&g_hdr->daemon_sleeping, memory_order_acquire))
		uni_futex_wake(&g_hdr->doorbell, 1);
}

/* unid reads the horizon: the model needs it (nic), or a sleep or connect
 * waits for it. */
static inline int horizon_read(void)
{
	return g_horizon || atomic_load_explicit(&g_hdr->hold_waiters, memory_order_relaxed);
}

/* This thread stopped holding the horizon (it waits now): unid may be
 * able to move it. */
static void horizon_moved(void)
{
	if (horizon_read())
		ring_bell();
}

/* Rings ------------------------------------------------------------------ */

static struct uni_ring *claim_ring(int tid)
{
	for (uint32_t i = 0; i < g_hdr->max_rings; i++) {
		struct uni_ring *r = uni_shm_ring(g_hdr, i);
		uint32_t expect = UNI_RING_FREE;
		if (atomic_load_explicit(&r->state, memory_order_relaxed) != UNI_RING_FREE)
			continue;
		if (!atomic_compare_exchange_strong(&r->state, &expect, UNI_RING_CLAIMING))
			continue;
		/* unid resets head == tail before it frees a ring. */
		r->rank = g_rank;
		r->pid = g_pid;
		r->tid = tid;
		atomic_store_explicit(&r->prod_waiting, 0, memory_order_relaxed);
		atomic_store_explicit(&r->wake_floor, UINT64_MAX, memory_order_relaxed);
		atomic_store_explicit(&r->async_tag, 0, memory_order_relaxed);
		atomic_store_explicit(&r->soft_floor, 0, memory_order_relaxed);
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_relaxed);
		atomic_store_explicit(&r->wait_sending, 0, memory_order_relaxed);
		r->wait_what[0] = 0; /* (a previous owner killed in an NCCL wait) */
		r->wait_nccl = 0;
		atomic_store_explicit(&r->warp, 0, memory_order_relaxed);
		atomic_store_explicit(&r->det_st, UNI_DET_NONE, memory_order_relaxed);
		atomic_store_explicit(&r->vt_pub, tls.vt, memory_order_relaxed);
		r->wait_vdl = 0;
		/* Requests continue from the ring's last answer, so a late
		 * answer meant for a previous owner never matches ours. */
		tls.req_seq = atomic_load(&r->resp_seq) + 0x10000u;
		atomic_store_explicit(&r->state, UNI_RING_LIVE, memory_order_release);
		atomic_fetch_add(&g_hdr->handoffs, 1); /* a new hold (horizon: see set_wake_floors) */
		uint32_t n = atomic_load(&g_nmyrings), k = 0;
		while (k < n && k < UNI_MAX_RINGS && g_myrings[k] != i)
			k++;
		if (k == n && (n = atomic_fetch_add(&g_nmyrings, 1)) < UNI_MAX_RINGS)
			g_myrings[n] = i; /* a ring this process had before is listed once */
		return r;
	}
	return NULL;
}

static void push(struct uni_ring *r, const struct uni_ev *e);
struct stamp_ent;
static struct stamp_ent *stamp_get(void *p, int create);
static int det_part(void);
static void det_point(void);
static void det_charge(void);
static void det_thread_end(struct uni_ring *r);
static void det_detach(void);
static void det_written(uint32_t idx, uint64_t upto, int closed);
static uint64_t det_room(uint32_t idx);
static uint64_t det_room_over(uint32_t idx, uint64_t over);
/* The turn's socket buffer: a writer in turn has at most this many bytes
 * written and not read by its peer (its writes split where the reads make
 * room, the same in every run, not where the host's TCP buffers fill,
 * which differs from run to run). Small enough for the reader's kernel to
 * hold all of it: loopback's segment is 64 kB, and a receiver that frees
 * less than a segment does not open its window again (silly-window
 * avoidance), so with 64 kB here bytes written stayed in the writer's
 * kernel while the reader waited for them (a second, then it read fewer). */
#define DET_SNDBUF (128u << 10)
/* Writable again once a third of it is free (as Linux wakes writers:
 * free >= half of what is queued), not at every segment read. */
#define DET_WAKE (DET_SNDBUF / 3)

/* --compute-from (docs/simulate.md "Compute from a trace") ------------- */

/* The trace kind an event always writes, 0 where it may write none or
 * another (reads, writes, requests). */
static uint8_t cf_kind_of(uint16_t kind)
{
	switch (kind) {
	case UNI_EV_THREAD: return UNI_TR_THREAD;
	case UNI_EV_THREAD_END: return UNI_TR_THREAD_END;
	case UNI_EV_COMPUTE: return UNI_TR_COMPUTE;
	case UNI_EV_IDLE: return UNI_TR_IDLE;
	case UNI_EV_SIGNAL: return UNI_TR_SIGNAL;
	case UNI_EV_TAKE: return UNI_TR_TAKE;
	case UNI_EV_DEP: return UNI_TR_DEP;
	case UNI_EV_DELAY: return UNI_TR_DELAY;
	case UNI_EV_OP: return UNI_TR_OP;
	case UNI_EV_NCCL_OP: return UNI_TR_NCCL_OP;
	case UNI_EV_NCCL_COMM: return UNI_TR_NCCL_COMM;
	default: return 0;
	}
}

/* The thread begins: its recorded events, if the recorded run had it. */
static void cf_adopt(void)
{
	tls.cf = NULL;
	tls.cf_at = 0;
	tls.cf_tp = 0;
	if (!g_cf_on)
		return;
	tls.cf = uni_cf_find(&g_cf, tls.key);
	if (!tls.cf) {
		atomic_fetch_add(&g_hdr->cf_unknown, 1);
		if (g_cf_debug)
			uni_shim_log("compute-from: rank %d thread %d (key %016llx) is not in the recorded run: "
				     "its compute is measured", g_rank, (int)tls.tid, (unsigned long long)tls.key);
	}
}

/* Before the thread's event e (index nev) goes out: does it still follow
 * the recorded run? An event where the recording has another kind, or
 * none, ends the replay for this thread. */
static void cf_check(const struct uni_ev *e)
{
	uint32_t s = tls.nev;
	const struct uni_cf_thread *t = tls.cf;
	uint8_t rk = s < t->n ? t->ev[s].kind : 0;
	uint8_t pk = cf_kind_of(e->kind);
	int ok;
	if (s >= t->n)
		ok = !pk; /* past the recorded thread's end: it took no compute there */
	else if (pk)
		ok = rk == pk;
	else if (e->kind == UNI_EV_SEND)
		/* (nic: a message's first write's record holds the whole
		 * message, this part and the e->b bytes to come, or what was
		 * written of it where a write was cut short) */
		ok = !rk || (rk == UNI_TR_SEND && (g_horizon ? t->ev[s].v >= e->len && t->ev[s].v <= e->len + e->b
							      : t->ev[s].v == e->len));
	else if (e->kind == UNI_EV_READ_REQ)
		ok = !rk || (rk == UNI_TR_RECV && t->ev[s].v == e->len);
	else if (e->kind == UNI_EV_SENT_REQ)
		ok = !rk || rk == UNI_TR_SENT;
	else
		ok = !rk;
	if (g_cf_debug > 1)
		tls.cf_hist[tls.cf_nh++ % 6] = e->kind;
	if (ok) {
		if (e->kind == UNI_EV_THREAD_END || e->kind == UNI_EV_DETACH)
			atomic_fetch_add(&g_hdr->cf_followed, 1);
		return;
	}
	tls.cf = NULL;
	atomic_fetch_add(&g_hdr->cf_diverged, 1);
	if (g_cf_debug > 1) {
		char a[128] = "", b[128] = "";
		size_t la = 0, lb = 0;
		/* (At most 10 x " [255" and 6 x " 255": no truncation.) */
		for (uint32_t i = s > 6 ? s - 6 : 0; i < s + 4 && i < t->n && la < sizeof(a) - 8; i++)
			la += (size_t)snprintf(a + la, sizeof(a) - la, "%s%u", i == s ? " [" : " ", t->ev[i].kind);
		for (uint32_t i = 0; i < 6 && lb < sizeof(b) - 8; i++)
			lb += (size_t)snprintf(b + lb, sizeof(b) - lb, " %u", tls.cf_hist[(tls.cf_nh + i) % 6]);
		uni_shim_log("compute-from: rank %d thread %d event %u: recorded kinds from %u:%s; its last events here:%s",
			     g_rank, (int)tls.tid, s, s > 6 ? s - 6 : 0, a, b);
	}
	if (g_cf_debug)
		uni_shim_log("compute-from: rank %d thread %d (key %016llx) left the recorded run at its event %u "
			     "(recorded: kind %u, %llu; here: event kind %u, %llu): its compute is measured from there",
			     g_rank, (int)tls.tid, (unsigned long long)tls.key, s, rk,
			     (unsigned long long)(s < t->n ? t->ev[s].v : 0), e->kind, (unsigned long long)e->len);
}

/* The thread no longer follows the recorded run (why: said with
 * UNI_CF_DEBUG): its compute is measured from here. */
static void cf_leave(const char *why)
{
	if (g_cf_debug) {
		char a[160] = "";
		size_t la = 0;
		uint32_t s = tls.nev;
		for (uint32_t i = s > 6 ? s - 6 : 0; i < s + 4 && i < tls.cf->n && la < sizeof(a) - 24; i++)
			la += (size_t)snprintf(a + la, sizeof(a) - la, "%s%u:%llu", i == s ? " [" : " ", tls.cf->ev[i].kind,
					       (unsigned long long)tls.cf->ev[i].v);
		uni_shim_log("compute-from: rank %d thread %d (key %016llx) %s (event %u; recorded kinds from %u:%s): "
			     "its compute is measured from there",
			     g_rank, (int)tls.tid, (unsigned long long)tls.key, why, s, s > 6 ? s - 6 : 0, a);
	}
	tls.cf = NULL;
	atomic_fetch_add(&g_hdr->cf_diverged, 1);
}

/* charge() under replay: the first time the thread enters the shim after
 * an event it takes the compute the recorded run had before its next
 * event (its CPU ns times this run's slowdown), and nothing more until
 * that event: the measured CPU time is not used. */
static void cf_charge(void)
{
	if (tls.cf_at == tls.nev + 1)
		return;
	tls.cf_at = tls.nev + 1;
	tls.cf_prog = 0;
	uint32_t s = tls.nev;
	if (s >= tls.cf->n) {
		/* Past the recorded thread's end and still going: it left the
		 * recorded run (its compute measured from here). Taking none,
		 * a thread that spins through turns without an event of its
		 * own (a poll that sees the end of a stream again and again)
		 * spun at one clock for ever under the turn. */
		cf_leave("went on past its recorded end");
		return;
	}
	if (tls.cf->ev[s].kind != UNI_TR_COMPUTE)
		return;
	uint64_t c = tls.cf->ev[s].v;
	uint64_t d = (uint64_t)((double)c * g_slowdown);
	if (tls.ring) {
		if (!tls.pend_d && !tls.pend_force)
			tls.pend_t0 = tls.vt;
		tls.pend_d += d;
		tls.pend_cpu += c;
		tls.pend_force = 1;
	}
	tls.vt += d;
	tls.compute += d;
	atomic_fetch_add_explicit(&g_hdr->cf_replayed, 1, memory_order_relaxed);
}

/* Attach: reads this rank's part of the trace the session replays. */
static void cf_load(const struct uni_shm_hdr *h, int rank)
{
	const char *d = getenv("UNI_CF_DEBUG");
	g_cf_debug = d && *d ? atoi(d) : 0;
	if (!h->compute_from[0] || h->mode != UNI_MODE_SIMULATE)
		return;
	char err[160] = "";
	int fd = open(h->compute_from, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
		uni_shim_log("rank %d: cannot read %s (--compute-from): %s; its compute is measured", rank,
			     h->compute_from, fd < 0 ? strerror(errno) : "empty");
		if (fd >= 0)
			close(fd);
		return;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		uni_shim_log("rank %d: cannot map %s (--compute-from): %s; its compute is measured", rank,
			     h->compute_from, strerror(errno));
		return;
	}
	int r = uni_cf_load(m, (size_t)st.st_size, rank, &g_cf, err, sizeof(err));
	munmap(m, (size_t)st.st_size);
	if (r != 0) {
		uni_shim_log("rank %d: %s (--compute-from): %s; its compute is measured", rank,
			     h->compute_from, err);
		return;
	}
	g_cf_on = 1;
}
static void charge(void);
static void idle_record(uint64_t from, uint64_t to, int force);
static void accept_take(const struct uni_addr *la, const struct uni_addr *pa);
static int sync_active(void);
static void capture_stack(struct uni_ring *r, int skip_self);
static void adopt_ring(struct uni_ring *r);
static void emit_take(uint64_t before, uint64_t t, uint64_t src, uint16_t flags);
static inline uint64_t thread_cpu(void);
static int sent_local(uint32_t idx, uint64_t end, uint64_t stamp);
static void take_completion(uint32_t idx, uint64_t end, uint64_t stamp);
static uint32_t stack_id(void);

static struct uni_ring *thread_ring(void)
{
	if (UNI_UNLIKELY(tls.device))
		return NULL; /* the device's thread: never one of the program's */
	uint32_t gen = atomic_load_explicit(&g_gen, memory_order_relaxed);
	if (UNI_LIKELY(tls.ring && tls.gen == gen))
		return tls.ring;
	if (tls.gen != gen) {
		tls.ring = NULL; /* inherited from the parent across fork */
		tls.ring_failed = 0;
		tls.gen = gen;
	}
	if (tls.ring_failed)
		return NULL;
	struct uni_ring *r = claim_ring((int)syscall(SYS_gettid));
	if (!r) {
		tls.ring_failed = 1;
		if (!atomic_exchange(&g_warned_rings, 1))
			uni_shim_log("rank %d: all %u event rings of session '%s' are taken; "
				     "events of further threads are dropped", g_rank, g_hdr->max_rings,
				     g_hdr->session);
		return NULL;
	}
	adopt_ring(r);
	return r;
}

/* The calling thread takes r as its ring and says so to unid. */
/* An event loop in a thread other than the process's main one: Gloo's
 * loop thread, a dispatcher once it reads modelled bytes, whose idle
 * ticks' time-outs carry no time. A loop in the main thread is the
 * program itself (asyncio), with a clock of its own. */
static inline int foreign_loop(void)
{
	return tls.loop && tls.tid != (uint32_t)g_pid;
}

/* The thread's I/O waits that time out take their time (a clock of its
 * own that reads virtual time). */
static inline int timeouts_take_time(void)
{
	return g_vclock && !tls.dispatcher && !foreign_loop();
}

static void adopt_ring(struct uni_ring *r)
{
	tls.ring = r;
	tls.ring_idx = (uint32_t)(((char *)r - ((char *)g_hdr + g_hdr->rings_off)) / sizeof(*r));
	tls.tid = (uint32_t)r->tid;
	tls.nev = 0;
	tls.pend_d = tls.pend_cpu = 0;
	tls.pend_force = 0;
	tls.last_compute = 0;
	tls.last_src = 0; /* (a forked child's first take is not its parent's) */
	if (!tls.key && tls.tid == (uint32_t)g_pid)
		tls.key = 1; /* the process's main thread */
	cf_adopt();
	if (g_det && !tls.det_done) {
		/* (A ring its creator claimed is counted already.) */
		if (atomic_load_explicit(&r->det_st, memory_order_relaxed) == UNI_DET_NONE)
			atomic_fetch_add(&g_det_threads, 1);
		uni_det_adopt(r, tls.ring_idx, tls.key, tls.vt);
	}
	pthread_setspecific(g_thread_key, r);
	uint64_t now = g_mode == UNI_MODE_SIMULATE ? tls.vt : shim_now();
	struct uni_ev e = {.kind = UNI_EV_THREAD, .t0 = now, .t1 = now, .a = (uint64_t)r->tid, .b = tls.key};
	push(r, &e);
	/* A new thread starts at its creator's clock (replay: from which event). */
	if (tls.start_src) {
		emit_take(0, tls.vt, tls.start_src, UNI_EVF_SET);
		tls.start_src = 0;
	}
}

/* Appends e, waiting while the ring is full and unid lives. A thread's
 * own events are counted (the count is the next event's seq) and the
 * compute it was charged since its last event goes first (one COMPUTE). */
static void flush_compute(struct uni_ring *r)
{
	struct uni_ev c = {.kind = UNI_EV_COMPUTE, .t0 = tls.pend_t0, .t1 = tls.pend_t0 + tls.pend_d,
			   .a = tls.pend_cpu};
	tls.pend_d = tls.pend_cpu = 0;
	tls.pend_force = 0;
	push(r, &c);
}

static void push(struct uni_ring *r, const struct uni_ev *e)
{
	/* (A note to unid, not an event of the thread: no compute before it,
	 * not in the recorded run, not counted.) */
	int note = uni_ev_note(e->kind);
	if (r == tls.ring && (tls.pend_d || tls.pend_force) && e->kind != UNI_EV_COMPUTE &&
	    (!note || e->kind == UNI_EV_STRING))
		flush_compute(r);
	if (UNI_UNLIKELY(tls.cf) && r == tls.ring && !note)
		cf_check(e);
	while (uni_ring_push(r, e) != 0) {
		if (!coordinator_alive()) {
			atomic_fetch_add(&r->dropped, 1);
			atomic_fetch_add(&g_hdr->dropped_total, 1);
			orphan("is gone");
			return;
		}
		atomic_store(&r->prod_waiting, 1);
		wake_daemon();
		uni_futex_wait(&r->prod_waiting, 1, 100);
	}
	/* For unid: this ring has something new (one writer at a time). */
	struct uni_ring_hint *hint = uni_shm_hint(g_hdr, (uint32_t)(r - uni_shm_ring(g_hdr, 0)));
	atomic_store_explicit(&hint->pushed, atomic_load_explicit(&hint->pushed, memory_order_relaxed) + 1,
			      memory_order_release);
	/* A string (a call stack's text) is not an event of the thread:
	 * indices do not depend on whether stacks are recorded. */
	if (r == tls.ring && !note) {
		tls.nev++;
		tls.last_compute = e->kind == UNI_EV_COMPUTE;
	}
	if (uni_ring_used(r) >= UNI_RING_CAP / 2 &&
	    atomic_load_explicit(&g_hdr->daemon_sleeping, memory_order_relaxed))
		wake_daemon();
}

/* The id the next event of this thread will have (after the COMPUTE that
 * push puts first, if compute is pending). */
static uint64_t next_id(void)
{
	return ((uint64_t)tls.tid << 32) | (tls.nev + (tls.pend_d || tls.pend_force ? 1u : 0u));
}

/* The thread's clock now as a position among its events (UNI_SRC_POS: its
 * clock after its last event plus the compute since), a source that costs
 * no event; 0 without a ring or before its first event. */
static uint64_t own_position(void)
{
	if (!tls.ring || !tls.nev || tls.gen != atomic_load_explicit(&g_gen, memory_order_relaxed))
		return 0;
	return ((uint64_t)tls.tid << 32) | UNI_SRC_POS | tls.nev;
}

/* Simulate mode: the thread hands time t on through obj; returns the id of
 * the SIGNAL event that says so (0 without a ring). */
static uint64_t emit_signal(uint64_t obj, uint64_t t)
{
	if (!tls.ring || tls.gen != atomic_load_explicit(&g_gen, memory_order_relaxed))
		return 0;
	uint64_t id = next_id();
	struct uni_ev e = {.kind = UNI_EV_SIGNAL, .t0 = t, .t1 = t, .a = obj};
	push(tls.ring, &e);
	return id;
}

static void emit_take(uint64_t before, uint64_t t, uint64_t src, uint16_t flags)
{
	/* A time the thread itself handed on carries nothing new; nor does
	 * the hand-off it took last, taken again (a condition wait's 1 s
	 * slices each re-take the mutex's stamp: as events they kept a
	 * deadlocked session "busy" for ever). A position (UNI_SRC_POS) is
	 * not unique: a thread that posts twice with only compute between
	 * hands on the same one at two times, and the later is new. */
	if (!src || (uint32_t)(src >> 32) == tls.tid || !tls.ring ||
	    tls.gen != atomic_load_explicit(&g_gen, memory_order_relaxed) ||
	    (!flags && src == tls.last_src && t <= tls.last_t))
		return;
	if (!flags) {
		tls.last_src = src;
		tls.last_t = t;
	}
	struct uni_ev e = {.kind = UNI_EV_TAKE, .flags = flags, .t0 = before, .t1 = t, .a = src};
	push(tls.ring, &e);
}

static void emit(struct uni_ev *e)
{
	struct uni_ring *r = thread_ring();
	if (!r) {
		atomic_fetch_add(&g_hdr->dropped_total, 1);
		return;
	}
	push(r, e);
	maybe_check_liveness(e->t1);
}

static void joinable_end(void);
static void join_forget(pthread_t th);

/* A thread that claimed a ring exits: tell unid the ring may be reused. */
static void thread_exit(void *p)
{
	struct uni_ring *r = p;
	if (atomic_load(&g_state) != ST_ATTACHED || tls.ring != r ||
	    tls.gen != atomic_load(&g_gen))
		return;
	tls.in_shim++;
	if (g_mode == UNI_MODE_SIMULATE && !tls.dispatcher && !tls.quiet)
		joinable_end();
	uint64_t now = g_mode == UNI_MODE_SIMULATE ? tls.vt : shim_now();
	struct uni_ev e = {.kind = UNI_EV_THREAD_END, .t0 = now, .t1 = now, .a = tls.compute,
			   .b = tls.waited, .c = tls.dispatcher};
	push(r, &e);
	if (g_det)
		det_thread_end(r);
	tls.ring = NULL;
	tls.in_shim--;
}

/* Attaching ------------------------------------------------------------ */

static int env_int(const char *name, long lo, long hi, int *out)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 1;
}

static int env_flag(const char *name)
{
	const char *s = getenv(name);
	return s && *s && strcmp(s, "0") != 0 && strcmp(s, "false") != 0 && strcmp(s, "no") != 0;
}

/* Cannot attach: say so and go on pass-through, or stop under UNI_STRICT. */
static void attach_failed(const char *session, const char *why)
{
	if (env_flag("UNI_STRICT")) {
		uni_shim_log("rank %d: %s; stopping (UNI_STRICT is set)", g_rank, why);
		_exit(UNI_EXIT_STRICT);
	}
	uni_shim_log("rank %d: %s; running pass-through (start it with 'unictl start --session %s', "
		     "or set UNI_STRICT=1 to stop instead)", g_rank, why, session);
	atomic_store(&g_state, ST_PASSTHROUGH);
}

static void attach(void)
{
	int rank = -1, world = -1;
	int saved = errno;
	tls.in_shim++;
	atomic_store(&g_state, ST_PASSTHROUGH);
	if (env_flag("UNI_DISABLE"))
		goto out;
	int hr = env_int("RANK", 0, 1 << 20, &rank);
	int hw = env_int("WORLD_SIZE", 1, 1 << 20, &world);
	if (hr == 0 || hw == 0)
		goto out; /* not a rank: the launcher, torchrun's agent, a helper */
	const char *session = getenv("UNI_SESSION");
	if (!session || !*session)
		session = "default";
	g_rank = rank;
	g_world = world;
	if (hr < 0 || hw < 0 || rank >= world) {
		uni_shim_log("RANK='%s' WORLD_SIZE='%s' are not a rank of a world; running pass-through",
			     getenv("RANK"), getenv("WORLD_SIZE"));
		goto out;
	}
	char err[256];
	struct uni_shm_hdr *h = uni_shm_open(session, err, sizeof(err));
	if (!h) {
		attach_failed(session, err);
		goto out;
	}
	if (!atomic_load(&h->ready) || atomic_load(&h->stop)) {
		snprintf(err, sizeof(err), "session '%s' is %s", session,
			 atomic_load(&h->stop) ? "stopping" : "not ready");
		uni_shm_close(h);
		attach_failed(session, err);
		goto out;
	}
	g_hdr = h;
	if (!coordinator_alive()) {
		snprintf(err, sizeof(err), "session '%s' is stale (its unid pid %d is gone)", session,
			 h->daemon_pid);
		g_hdr = NULL;
		uni_shm_close(h);
		attach_failed(session, err);
		goto out;
	}
	if ((uint32_t)rank >= h->max_ranks) {
		snprintf(err, sizeof(err), "rank %d is beyond the session's %u ranks", rank, h->max_ranks);
		g_hdr = NULL;
		uni_shm_close(h);
		attach_failed(session, err);
		goto out;
	}
	g_pid = getpid();
	struct uni_rank *rk = uni_shm_rank(h, (uint32_t)rank);
	uint32_t st = atomic_load(&rk->state);
	if (st == UNI_RANK_LIVE && rk->pid != g_pid && !uni_pid_dead(rk->pid)) {
		/* A second process with the same environment (a helper the rank
		 * exec'd, a re-run with a stale env): the rank is taken. */
		uni_shim_log("rank %d of session '%s' is already attached by pid %d; "
			     "this process (pid %d) stays pass-through", rank, session, rk->pid, g_pid);
		g_hdr = NULL;
		uni_shm_close(h);
		goto out;
	}
	g_epoch = h->epoch_mono_ns;
	g_epoch_real = h->epoch_real_ns;
	g_mode = h->mode;
	g_horizon = (int)h->horizon;
	g_stacks = (int)h->stacks;
	{
		const char *vc = getenv("UNI_VIRTUAL_CLOCK");
		g_vclock = g_mode == UNI_MODE_SIMULATE && !(vc && strcmp(vc, "0") == 0);
	}
	g_slowdown = uni_shm_rank(h, (uint32_t)rank)->slowdown;
	if (!(g_slowdown > 0))
		g_slowdown = 1.0;
	cf_load(h, rank);
	g_det = g_mode == UNI_MODE_SIMULATE && h->det;
	if (g_det) {
		uni_det_init(h, world);
		if (!g_vclock)
			uni_det_abandon("UNI_VIRTUAL_CLOCK=0: the turn needs the program's clocks in virtual time");
	}
	const char *mp = getenv("MASTER_PORT");
	g_master_port = h->master_port > 0 ? h->master_port : (mp ? atoi(mp) : -1);
	{
		/* A rank's share of the host's CPUs sets how long its 10 s of
		 * CPU take in real time (64 ranks importing torch on two CPUs
		 * took minutes, and waits for them gave up after 10 s). */
		cpu_set_t cs;
		int ncpu = sched_getaffinity(0, sizeof(cs), &cs) == 0 ? CPU_COUNT(&cs) : 0;
		if (ncpu <= 0)
			ncpu = 1;
		uint64_t share = world > ncpu ? (uint64_t)(world + ncpu - 1) / (uint64_t)ncpu : 1;
		g_hold_max_ns = UNI_HOLD_MAX_NS * share;
		uint64_t cur = atomic_load(&h->hold_max_ns);
		while (cur < g_hold_max_ns && !atomic_compare_exchange_weak(&h->hold_max_ns, &cur, g_hold_max_ns))
			;
	}
	rk->pid = g_pid;
	rk->world_size = world;
	rk->attach_t = shim_now();
	atomic_store(&rk->threads, 0);
	atomic_store_explicit(&rk->state, UNI_RANK_LIVE, memory_order_release);
	atomic_store(&g_last_check, shim_now());
	atomic_store(&g_state, ST_ATTACHED);
	uni_shim_sync_on = g_mode == UNI_MODE_SIMULATE;
	uni_shim_clamp_on = uni_shim_sync_on && (g_horizon || g_det);
	uni_shim_rec_on = g_mode == UNI_MODE_RECORD;
	/* Deterministic mode: the attaching thread takes part from now (a C
	 * program's main thread may call nothing the shim sees before its
	 * listen, while another rank's retries and sleeps ran on alone in
	 * virtual time: 680 ms of refused connects). */
	if (g_det)
		thread_ring();
	wake_daemon();
out:
	tls.in_shim--;
	errno = saved;
}

static void at_fork_parent(void)
{
	uni_chan_forked();
}

static void at_fork_child(void)
{
	int st = atomic_load(&g_state);
	uni_det_forked();
	atomic_fetch_add(&g_gen, 1);
	/* The child's main thread: a child of the thread that forked. */
	tls.key = uni_cf_child_key(tls.key ? tls.key : 1, 1u << 31);
	tls.nchild = 0;
	tls.cf = NULL;
	uni_shim_sync_on = 0;
	uni_shim_clamp_on = 0;
	uni_shim_rec_on = 0;
	if (st == ST_ATTACHED || st == ST_ORPHAN) {
		/* The child shares the parent's connections but is not the rank:
		 * forget them, and attach only if it becomes a rank of its own. */
		uni_fd_reset();
		uni_chan_reset();
		atomic_store(&g_nconns, 0);
		atomic_store(&g_nmyrings, 0);
		atomic_store(&g_state, ST_CHILD);
	}
}

static void shim_detach(void)
{
	if (atomic_load(&g_state) != ST_ATTACHED || getpid() != g_pid)
		return;
	tls.in_shim++;
	uint64_t now = shim_now(), compute = tls.compute, waited = tls.waited;
	if (g_mode == UNI_MODE_SIMULATE) {
		if (det_part())
			det_charge();
		else
			charge();
		now = tls.vt; /* the exiting thread's clock: the rank's end */
		compute = tls.compute;
		waited = tls.waited;
	} else {
		/* Record mode, in real time: the exiting thread's CPU time, and
		 * of the rest of its life (since the rank attached) what it did
		 * not sleep: waiting for others, blocked I/O. */
		uint64_t life = now - uni_shm_rank(g_hdr, (uint32_t)g_rank)->attach_t;
		compute = thread_cpu();
		waited = life > compute + tls.idled ? life - compute - tls.idled : 0;
	}
	struct uni_ev e = {.kind = UNI_EV_DETACH, .t0 = now, .t1 = now, .a = compute, .b = waited};
	emit(&e);
	if (g_det)
		det_detach();
	wake_daemon();
	tls.in_shim--;
}

void uni_shim_ensure_init(void)
{
	uni_shim_resolve();
	if (atomic_load_explicit(&g_init_started, memory_order_acquire))
		return;
	/* Set before the work so that a wrapper reached during attach (or from
	 * another thread meanwhile) forwards instead of recursing. */
	if (atomic_exchange(&g_init_started, 1))
		return;
	pthread_key_create(&g_thread_key, thread_exit);
	pthread_atfork(NULL, at_fork_parent, at_fork_child);
	attach();
	if (atomic_load(&g_state) == ST_ATTACHED)
		atexit(shim_detach);
}

__attribute__((constructor)) static void uni_shim_ctor(void)
{
	uni_shim_ensure_init();
}

/* Connections ---------------------------------------------------------- */

/* What the SIGNAL records a connecting end and a listener leave name (the
 * record's a): not an address, these bits set. */
#define SIG_CONN (1ull << 63)   /* | the connection's index */
#define SIG_LISTEN (1ull << 62) /* | port << 32 | fd */

static int to_uni_addr(const struct sockaddr *sa, socklen_t len, struct uni_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		out->ip[10] = 0xff;
		out->ip[11] = 0xff;
		memcpy(&out->ip[12], &in->sin_addr, 4);
		out->port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(out->ip, &in6->sin6_addr, 16);
		out->port = ntohs(in6->sin6_port);
		return 0;
	}
	return -1;
}

static void maybe_attach_child(void)
{
	int rank;
	if (env_int("RANK", 0, 1 << 20, &rank) == 1 && rank != g_rank) {
		if (g_hdr)
			uni_shm_close(g_hdr);
		g_hdr = NULL;
		attach();
	}
}

/* Per-fd bits (a bit per fd number below UNI_FD_MAX). */
static int fd_bit(_Atomic uint64_t *bits, int fd)
{
	return (unsigned)fd < UNI_FD_MAX &&
	       (atomic_load_explicit(&bits[fd / 64], memory_order_relaxed) >> (fd % 64) & 1);
}

/* Sets (on) or clears fd's bit; returns what it was. */
static int fd_bit_set(_Atomic uint64_t *bits, int fd, int on)
{
	if ((unsigned)fd >= UNI_FD_MAX)
		return 0;
	uint64_t bit = 1ull << (fd % 64);
	uint64_t old = on ? atomic_fetch_or(&bits[fd / 64], bit) : atomic_fetch_and(&bits[fd / 64], ~bit);
	return (old & bit) != 0;
}

UNI_HIDDEN _Atomic int uni_shim_nstore;
/* The rendezvous store's connections; in deterministic mode, of those,
 * the ones to a store outside the session (its connects are made in turn,
 * its answers come in real time; det_ext_*), and of those, the ones this
 * process wrote a request on that has no answer yet. */
static _Atomic uint64_t g_store_bits[UNI_FD_MAX / 64], g_ext_bits[UNI_FD_MAX / 64],
	g_ext_ask_bits[UNI_FD_MAX / 64];

/* How long a thread holds the turn for such a store's answer (ms of
 * real time): after its request, after a wake-up (uni_shim_det_ext_read). */
#define DET_EXT_HOLD_MS 50
#define DET_EXT_HOLD_WOKEN_MS 20

static int det_ext(int fd)
{
	return fd_bit(g_ext_bits, fd);
}

static void det_ext_mark(int fd, int on)
{
	fd_bit_set(g_ext_ask_bits, fd, 0);
	fd_bit_set(g_ext_bits, fd, on);
}

int uni_shim_store_fd(int fd)
{
	return fd_bit(g_store_bits, fd);
}

void uni_shim_store_mark(int fd, int on)
{
	if (!on)
		det_ext_mark(fd, 0);
	int was = fd_bit_set(g_store_bits, fd, on);
	if (on && !was)
		atomic_fetch_add(&uni_shim_nstore, 1);
	else if (!on && was)
		atomic_fetch_sub(&uni_shim_nstore, 1);
}

void uni_shim_store_dup(int oldfd, int newfd)
{
	int ext = det_ext(oldfd);
	uni_shim_store_mark(newfd, uni_shim_store_fd(oldfd));
	det_ext_mark(newfd, ext);
}

static int listener_for(const struct uni_addr *a);

/* A connection made to (accepted from) the session's listener at a. */
static void listener_count(const struct uni_addr *a, int accepted)
{
	int i = listener_for(a);
	if (i >= 0)
		atomic_fetch_add_explicit(accepted ? &uni_shm_listener(g_hdr, (uint32_t)i)->accepts
						   : &uni_shm_listener(g_hdr, (uint32_t)i)->connects,
					  1, memory_order_release);
}

void uni_shim_conn_new(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	int saved = errno;
	tls.in_shim++;
	if (atomic_load(&g_state) == ST_CHILD)
		maybe_attach_child();
	if (atomic_load(&g_state) != ST_ATTACHED)
		goto out;
	if ((unsigned)fd >= UNI_FD_MAX) {
		if (!atomic_exchange(&g_warned_conns, 1))
			uni_shim_log("rank %d: socket fd %d is beyond the shim's fd table (%d): its traffic is "
				     "not modelled", g_rank, fd, UNI_FD_MAX);
		goto out;
	}
	int type = 0;
	socklen_t tl = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
		goto out;
	if (g_det) {
		/* Deterministic mode: a read in turn waits for the bytes written
		 * in turn to reach its kernel (det_kernel_has); Nagle's algorithm
		 * held a small write back until the reader's delayed
		 * acknowledgement (40 ms each: det_sock.py took 5 s, not 0.3 s).
		 * Host pacing only: the model's times do not depend on it. */
		int one = 1, big = 1 << 20;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	struct sockaddr_storage ls, ps;
	socklen_t ll = sizeof(ls), pl = sizeof(ps);
	struct uni_addr la, pa;
	if (getsockname(fd, (struct sockaddr *)&ls, &ll) < 0 || to_uni_addr((struct sockaddr *)&ls, ll, &la) < 0)
		goto out;
	int accepted = !peer || peerlen == 0;
	if (accepted) {
		if (getpeername(fd, (struct sockaddr *)&ps, &pl) < 0)
			goto out;
		peer = (struct sockaddr *)&ps;
		peerlen = pl;
	}
	if (to_uni_addr(peer, peerlen, &pa) < 0)
		goto out;
	uint32_t prev = uni_fd_get(fd);
	if (prev & UNI_FD_CHAN) {
		uni_fd_take(fd); /* a pipe's number, closed behind the shim's back */
		prev = 0;
	}
	if (prev) {
		/* connect() again on a connecting socket: the same connection.
		 * Different endpoints: the fd was closed behind the shim's back
		 * (close_range, fclose of an fdopen'd socket, a raw syscall) and
		 * its number reused; forget the old connection. */
		struct uni_conn *old = uni_shm_conn(g_hdr, g_conns[prev - 1].shm_idx);
		if (!memcmp(&old->local, &la, sizeof(la)) && !memcmp(&old->peer, &pa, sizeof(pa)))
			goto out;
		uni_shim_fd_closed(fd);
	}
	if (g_det) /* (a new connection: once) */
		listener_count(accepted ? &la : &pa, accepted);
	/* The rendezvous store is not modelled (DESIGN; research notes
	 * section 4). In deterministic mode the turn follows it: a connection
	 * that costs nothing (UNI_CONNF_STORE), so that a store request and
	 * its answer are ordered in virtual time (the start-up's polls of the
	 * store were the host's). */
	det_ext_mark(fd, 0); /* (a number reused behind the shim's back) */
	int store = (int)la.port == g_master_port || (int)pa.port == g_master_port;
	if (store && !(g_det && g_mode == UNI_MODE_SIMULATE && uni_det_live())) {
		if (uni_shim_sync_on)
			uni_shim_store_mark(fd, 1);
		goto out;
	}
	/* A store outside the session (torchrun's agent hosts it): nobody
	 * accepts the connection in turn, so it is not modelled; the turn
	 * follows it as a store outside (det_ext_*). */
	if (store && !accepted && listener_for(&pa) < 0) {
		uni_shim_store_mark(fd, 1);
		det_ext_mark(fd, 1);
		goto out;
	}
	uint32_t slot = atomic_fetch_add(&g_nconns, 1);
	uint32_t idx = atomic_fetch_add(&g_hdr->next_conn, 1);
	if (slot >= UNI_SHIM_MAX_CONNS || idx >= g_hdr->max_conns) {
		if (!atomic_exchange(&g_warned_conns, 1))
			uni_shim_log("rank %d: connection table full (%u here, %u in the session); "
				     "further connections are not modelled", g_rank, UNI_SHIM_MAX_CONNS,
				     g_hdr->max_conns);
		goto out;
	}
	struct uni_conn *c = uni_shm_conn(g_hdr, idx);
	c->rank = g_rank;
	c->fd = fd;
	c->local = la;
	c->peer = pa;
	c->flags = store ? UNI_CONNF_STORE : 0;
	/* The connecting end's time and event, for the accepting end. */
	int clocked = g_mode == UNI_MODE_SIMULATE && tls.ring && !tls.dispatcher && !tls.poller &&
		      tls.gen == atomic_load_explicit(&g_gen, memory_order_relaxed);
	c->open_vt = !accepted && clocked ? (tls.vt ? tls.vt : 1) : 0;
	c->open_src = c->open_vt ? emit_signal(SIG_CONN | idx, tls.vt) : 0;
	atomic_store(&c->owed, UINT64_MAX);
	atomic_store(&c->peer_rank, -1);
	atomic_store_explicit(&c->state, UNI_CONN_OPEN, memory_order_release);
	struct shim_conn *sc = &g_conns[slot];
	memset(&sc->gf, 0, sizeof(sc->gf));
	sc->shm_idx = idx;
	atomic_store(&sc->tx, 0);
	atomic_store(&sc->rx, 0);
	atomic_store(&sc->nb, 0);
	atomic_store(&sc->pend_err, 0);
	atomic_store(&sc->up, 0);
	atomic_store(&sc->refs, 1);
	uni_fd_set(fd, slot + 1);
	uint64_t now = shim_now();
	struct uni_ev e = {.kind = UNI_EV_CONN_OPEN, .conn = idx, .t0 = now, .t1 = now,
			   .a = (uint64_t)fd};
	emit(&e);
	if (accepted && clocked)
		accept_take(&la, &pa);
	/* Deterministic mode: an acceptor waiting in turn looks again; so
	 * does a reader of a connection not accepted yet. */
	if (g_det && uni_det_live()) {
		if (!accepted) {
			uni_det_wake(UNI_DET_OBJ_ACCEPT, 0, 1, 0);
			uni_det_wake(UNI_DET_OBJ_POLL, 0, 1, 0);
		} else {
			uni_det_wake(UNI_DET_OBJ_ACCEPTED, 0, 1, 0);
		}
	}
out:
	tls.in_shim--;
	errno = saved;
}

/* Simulate mode: thread clocks ------------------------------------------ */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* A real clock, never the program's virtual one (also uni_now_ns in the
 * shim, uni/common.h: through the exported clock_gettime, the shim's own
 * reads outside tls.in_shim were the program's, virtual, and charged
 * compute in the middle of the shim's work). */
static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	if (UNI_LIKELY(uni_real.clock_gettime))
		uni_real.clock_gettime(clk, &ts);
	else
		syscall(SYS_clock_gettime, clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t uni_shim_real_ns(clockid_t clk)
{
	return clock_ns(clk);
}

static inline uint64_t thread_cpu(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* The CPU a thread spends in the shim waiting for unid (spinning on
 * sched_yield, then sleeping) is nobody's compute: shim_spun(c0) moves
 * the thread's CPU mark past it (c0: thread_cpu() before the wait), so
 * neither the compute measured at its next charge nor a replay's count
 * of the program's CPU (cf_prog) holds it. */
static void shim_spun(uint64_t c0)
{
	uint64_t c1 = thread_cpu();
	if (c1 > c0)
		tls.cpu_mark += c1 - c0;
}

/* Charges the compute this thread did since it last left the shim:
 * thread CPU time (never time spent blocked) times the rank's slowdown.
 * A dispatcher has no clock of its own: its CPU time is charged to nobody. */
/* What the horizon may assume about this thread's next send. */
static void publish_vt(void)
{
	/* A helper thread that polls and never sent a modelled byte holds
	 * nobody back (its clock crept with its own CPU time and held the
	 * network for seconds); its first modelled write may come late. */
	if (tls.ring && tls.gen == atomic_load_explicit(&g_gen, memory_order_relaxed)) {
		atomic_store_explicit(&tls.ring->vt_pub,
				      tls.dispatcher ? (tls.vt ? tls.vt : UINT64_MAX)
				      : tls.poller ? UINT64_MAX : tls.vt,
				      memory_order_release);
		/* It held the network back: unid may move it now. */
		if (horizon_read() &&
		    atomic_load_explicit(&g_hdr->horizon_ring, memory_order_relaxed) == tls.ring_idx + 1)
			ring_bell();
	}
}

/* The thread's CPU clock is a system call (1.2 us on this VM); the wall
 * clock is vDSO (tens of ns). Within CPU_EST_NS of the last reading the
 * thread is taken to have run all along: its CPU time moved by the wall
 * time that passed. An estimate ahead of the real CPU time (it was
 * preempted) is paid back at the next real reading, which never moves the
 * mark back: totals stay exact, only where a stretch of at most CPU_EST_NS
 * falls may move. A burst of modelled writes then makes no system call of
 * the shim's own (docs/benchmarks.md). */
#define CPU_EST_NS 5000

static uint64_t cpu_reading(uint64_t *wall)
{
	uint32_t gen = atomic_load_explicit(&g_gen, memory_order_relaxed);
	if (UNI_UNLIKELY(tls.cpu_gen != gen)) {
		/* A forked child's thread: its CPU clock starts at 0, the
		 * parent's marks mean nothing here. */
		tls.cpu_gen = gen;
		tls.cpu_mark = 0;
		tls.wall_mark = 0;
	}
	uint64_t w = clock_ns(CLOCK_MONOTONIC);
	*wall = w;
	if (tls.wall_mark && w - tls.wall_mark < CPU_EST_NS)
		return tls.cpu_mark + (w - tls.wall_mark);
	uint64_t cpu = thread_cpu();
	return cpu > tls.cpu_mark ? cpu : tls.cpu_mark;
}

/* Deterministic mode: a thread's compute goes on its clock only at its
 * turns (det_point). A clock read between two turns would differ between
 * the recorded run and its replay, which takes its compute per turn. */
static inline int det_defer(void)
{
	return UNI_UNLIKELY(g_det) && !tls.det_at && det_part();
}

static void charge(void)
{
	/* A thread is part of the horizon from its first entry on. */
	if (UNI_UNLIKELY(!tls.ring || tls.gen != atomic_load_explicit(&g_gen, memory_order_relaxed)))
		thread_ring();
	uint64_t wall, cpu = cpu_reading(&wall);
	if (UNI_UNLIKELY(tls.cf) && !tls.dispatcher) {
		/* (Since it last left the shim: the program's. A new stretch,
		 * which the recorded compute replaces, starts it over.) */
		tls.cf_prog += cpu - tls.cpu_mark;
		if (!det_defer())
			cf_charge();
	} else if (UNI_UNLIKELY(g_det) && !tls.dispatcher && det_part()) {
		uint64_t c = cpu > tls.cpu_mark ? cpu - tls.cpu_mark : 0;
		tls.det_acc += (uint64_t)((double)c * g_slowdown);
		tls.det_acc_cpu += c;
		if (tls.det_at && tls.det_acc) {
			uint64_t d = tls.det_acc;
			if (tls.ring) {
				if (!tls.pend_d)
					tls.pend_t0 = tls.vt;
				tls.pend_d += d;
				tls.pend_cpu += tls.det_acc_cpu;
			}
			tls.vt += d;
			tls.compute += d;
			tls.det_acc = tls.det_acc_cpu = 0;
		}
	} else if (!tls.dispatcher && (cpu > tls.cpu_mark || UNI_UNLIKELY(tls.det_acc))) {
		uint64_t d = (uint64_t)((double)(cpu - tls.cpu_mark) * g_slowdown);
		if (UNI_UNLIKELY(tls.det_acc)) {
			/* Deterministic mode given up: what waited for a turn. */
			d += tls.det_acc;
			tls.pend_cpu += tls.det_acc_cpu;
			tls.det_acc = tls.det_acc_cpu = 0;
		}
		/* Reported with the thread's next event (push), all of it: the
		 * event graph of unitrace replay needs every stretch. */
		if (d && tls.ring) {
			if (!tls.pend_d)
				tls.pend_t0 = tls.vt;
			tls.pend_d += d;
			tls.pend_cpu += cpu - tls.cpu_mark;
		}
		tls.vt += d;
		tls.compute += d;
	}
	tls.cpu_mark = cpu;
	tls.wall_mark = wall;
	publish_vt();
}

static void take_stamp(uint64_t t, uint64_t src)
{
	emit_take(tls.vt, t, src, 0);
	if (t > tls.vt) {
		tls.waited += t - tls.vt;
		tls.vt = t;
	}
}

/* An accepted connection is accepted no earlier than it was made: the
 * accepting thread takes the connecting end's clock (the handshake's own
 * latency is not modelled). The connecting end registers right after its
 * connect returns, which may be after the accept did: looked for up to
 * 5 ms of real time (a peer that is not a rank never registers). */
static void accept_take(const struct uni_addr *la, const struct uni_addr *pa)
{
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC), c0 = thread_cpu();
	for (int spin = 0;; spin++) {
		uint32_t n = atomic_load(&g_hdr->next_conn);
		if (n > g_hdr->max_conns)
			n = g_hdr->max_conns;
		for (uint32_t i = n; i-- > 0;) {
			struct uni_conn *c = uni_shm_conn(g_hdr, i);
			uint32_t st = atomic_load_explicit(&c->state, memory_order_acquire);
			if ((st == UNI_CONN_OPEN || st == UNI_CONN_MATCHED) && c->open_vt &&
			    !memcmp(&c->local, pa, sizeof(*pa)) && !memcmp(&c->peer, la, sizeof(*la))) {
				take_stamp(c->open_vt, c->open_src);
				publish_vt();
				shim_spun(c0);
				return;
			}
		}
		if (clock_ns(CLOCK_MONOTONIC) - t0 > 5000000ull) {
			shim_spun(c0);
			return;
		}
		if (spin < 64)
			sched_yield();
		else {
			struct timespec ts = {0, 100000};
			uni_real.nanosleep(&ts, NULL);
		}
	}
}

/* The CPU time spent in the shim is nobody's compute. */
static void leave(void)
{
	uint64_t wall;
	tls.cpu_mark = cpu_reading(&wall);
	tls.wall_mark = wall;
	publish_vt();
}

/* The thread waits on unid (an answer, or room for a blocking write):
 * published in its ring for the horizon and deadlock reports. */
static void wait_read(struct uni_ring *r, uint64_t obj, uint64_t since, uint64_t vt, uint32_t req)
{
	r->wait_req = req;
	r->wait_obj = obj;
	r->wait_since = since;
	r->wait_deadline = 0;
	r->wait_vt = vt;
	atomic_store_explicit(&r->wait_kind, UNI_WAIT_READ, memory_order_release);
}

/* Waits for unid's answer to one of the n requests first .. first+n-1 (a
 * group read answers one); returns the answer, with which one in *which
 * (may be NULL), or fallback when the coordinator is gone. */
static uint64_t await_any(struct uni_ring *r, uint32_t first, uint32_t n, uint64_t fallback, int *which)
{
	for (int spin = 0;; spin++) {
		uint32_t cur = atomic_load_explicit(&r->resp_seq, memory_order_acquire);
		if (cur - first < n) {
			if (which)
				*which = (int)(cur - first);
			return r->resp_t;
		}
		if (spin < 2000) {
			cpu_relax();
			continue;
		}
		if (atomic_load(&g_state) != ST_ATTACHED)
			return fallback;
		/* Deterministic mode under nic or topology: the network moves
		 * when the turn asks; a thread outside the turn that waits for
		 * unid asks itself while nobody has the turn (det.c). */
		int kick = UNI_UNLIKELY(g_det) && g_horizon && (tls.det_out || !det_part()) && uni_det_net();
		if (kick)
			uni_det_net_kick();
		if (uni_futex_wait(&r->resp_seq, cur, kick ? 10 : 100) == -ETIMEDOUT) {
			if (!coordinator_alive()) {
				orphan("is gone");
				return fallback;
			}
			if (tls.await_fn)
				tls.await_fn(tls.await_arg);
		}
	}
}

/* Waits for unid's answer to request seq (see await_any). */
static uint64_t await_answer(struct uni_ring *r, uint32_t seq, uint64_t fallback)
{
	return await_any(r, seq, 1, fallback, NULL);
}

/* Deterministic mode under nic or topology: connection end c's stream
 * crosses the network, which moves in turn (the store's control plane
 * crosses no link: its chunks are in the log at once, as under
 * alpha-beta). */
static int det_fluid(const struct uni_conn *c)
{
	return g_horizon && uni_det_net() && !(c->flags & UNI_CONNF_STORE);
}

/* Deterministic mode under nic or topology: unid answers when the
 * network is final where the request asks, and the network moves only
 * when the turn asks (det.c "The network in turn"): the thread waits for
 * its answer in turn, and goes on at the answer's time. */
static int det_net_waits(uint32_t idx)
{
	return UNI_UNLIKELY(g_det) && !tls.det_out && det_part() && det_fluid(uni_shm_conn(g_hdr, idx));
}

static uint64_t det_net_answer(struct uni_ring *r, uint32_t seq, uint64_t fallback)
{
	uint64_t t = 0;
	/* (Blocks at least once, answered or not: how fast unid answered is
	 * the host's, and the turn's steps must not depend on it.) */
	do {
		int b = uni_det_block_net(r, tls.ring_idx, UNI_DET_OBJ_NET, tls.vt, UINT64_MAX, UNI_DET_NET_ANSWER, seq);
		if (b < 0)
			return await_answer(r, seq, fallback); /* (the turn given up) */
		t = r->det_t; /* (the answer's time, or the network's if later) */
	} while (atomic_load_explicit(&r->resp_seq, memory_order_acquire) != seq);
	/* (A dispatcher's event has its own time, not the network's.) */
	return r->resp_t > t || tls.dispatcher ? r->resp_t : t;
}

/* ... and a thread woken from a wait in turn (a look again: bytes
 * written, room made, bytes final) goes on from the time it was woken at,
 * which the network in turn keeps no earlier than its own (det.c
 * net_floor): a write from its older clock would start behind the
 * network. A dispatcher's events carry their own times. */
static void det_net_resumed(void)
{
	if (g_horizon && tls.ring && !tls.dispatcher && uni_det_net())
		take_stamp(tls.ring->det_t, 0);
}

uint64_t uni_shim_io_begin(uint32_t slot1)
{
	if (g_mode != UNI_MODE_SIMULATE || atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return uni_now_ns();
	int saved = errno;
	if (tls.dispatcher && tls.last_conn != slot1 && !det_part()) {
		/* A new event for the loop: it takes that event's time. (In
		 * turn it keeps its last event's, which is no later than any
		 * clock of the session: it took the turn there.) */
		tls.vt = 0;
		tls.last_conn = slot1;
	}
	charge();
	if (tls.det_clamped)
		tls.det_clamped = 0; /* (the read's turn was its clamp's) */
	else if (det_part() && !tls.det_out) {
		/* Deterministic mode: I/O on a modelled connection in turn. */
		tls.in_shim++;
		det_point();
		tls.in_shim--;
	}
	errno = saved;
	return tls.vt;
}

/* Outstanding Gloo receives of this end, for deadlock reports. */
static void publish_rr(struct shim_conn *sc)
{
	struct uni_conn *c = uni_shm_conn(g_hdr, sc->shm_idx);
	c->rr_len = sc->gf.rr_len;
	c->rr_slot = sc->gf.rr_slot;
	atomic_store_explicit(&c->rr_outstanding, sc->gf.rr_out, memory_order_release);
	c->sr_len = sc->gf.sr_len;
	c->sr_slot = sc->gf.sr_slot;
	atomic_store_explicit(&c->sr_waiting, sc->gf.sr_wait, memory_order_release);
	atomic_store_explicit(&c->owed, sc->gf.owed ? sc->gf.owed : UINT64_MAX, memory_order_release);
}

/* The token of the write that ends at byte end of connection end idx's
 * outgoing stream (send completions: uni_shim_send_done). */
static inline uint64_t send_token(uint32_t idx, uint64_t end)
{
	return ((uint64_t)(idx + 1) << 48) | (end & ((1ull << 48) - 1));
}

/* The stamps of the Gloo data messages written last, by token (a seqlock
 * per entry: the writer of a message and the thread that waits for its
 * completion differ), so that under alpha-beta the waiter can find the
 * completion itself (sent_local). A miss (overwritten, being written)
 * only means asking unid. */
#define SENT_STAMPS 512
static struct {
	_Atomic uint32_t seq;
	_Atomic uint64_t tok, stamp;
} g_sent_stamps[SENT_STAMPS];

static uint32_t sent_slot(uint64_t token)
{
	return (uint32_t)((token * 0x9E3779B97F4A7C15ull) >> 55) & (SENT_STAMPS - 1);
}

static void sent_stamp_put(uint64_t token, uint64_t stamp)
{
	uint32_t i = sent_slot(token);
	uint32_t s = atomic_load_explicit(&g_sent_stamps[i].seq, memory_order_relaxed);
	if ((s & 1) || !atomic_compare_exchange_strong_explicit(&g_sent_stamps[i].seq, &s, s + 1,
								memory_order_acquire, memory_order_relaxed))
		return; /* another writer is in it: leave it (the waiter asks unid) */
	/* Release stores, no fences (as struct uni_sched; TSan knows no
	 * fences): a reader that sees a new field sees the odd seq after it. */
	atomic_store_explicit(&g_sent_stamps[i].tok, token, memory_order_release);
	atomic_store_explicit(&g_sent_stamps[i].stamp, stamp, memory_order_release);
	atomic_store_explicit(&g_sent_stamps[i].seq, s + 2, memory_order_release);
}

static int sent_stamp_get(uint64_t token, uint64_t *stamp)
{
	uint32_t i = sent_slot(token);
	uint32_t s1 = atomic_load_explicit(&g_sent_stamps[i].seq, memory_order_acquire);
	if (s1 & 1)
		return 0;
	uint64_t t = atomic_load_explicit(&g_sent_stamps[i].tok, memory_order_acquire);
	uint64_t st = atomic_load_explicit(&g_sent_stamps[i].stamp, memory_order_acquire);
	if (atomic_load_explicit(&g_sent_stamps[i].seq, memory_order_relaxed) != s1 || t != token)
		return 0;
	*stamp = st;
	return 1;
}

/* Returns the stream offset after the n bytes written. blocking: a part
 * of a blocking write (uni_shim_send_blocking) with more bytes of it still
 * to come: its writer waits for the write's completion, so the chunks
 * name it as their poster, and the first part carries the rest (one flow
 * under nic, as a Gloo message finished after EAGAIN). */
static uint64_t sim_send(struct shim_conn *sc, const struct iovec *iov, int cnt, size_t n, int blocking,
			 uint64_t more)
{
	struct uni_gf_seg segs[8];
	if (!tls.sent) {
		tls.sent = 1;
		tls.poller = 0;
	}
	sc->gf.writer = tls.dispatcher || !tls.ring ? 0 : tls.ring_idx + 1;
	size_t nseg = uni_gf_writev(&sc->gf, iov, cnt, n, tls.vt, (int)tls.dispatcher, segs,
				    UNI_ARRAY_LEN(segs));
	uint64_t base = atomic_fetch_add(&sc->tx, n);
	uint16_t flags = (uint16_t)((tls.dispatcher ? UNI_EVF_DISPATCHER : 0) |
				    (sc->gf.out.broken ? UNI_EVF_FALLBACK : 0));
	publish_rr(sc);
	/* An event loop that finishes writing a message on its poster's
	 * behalf is handling an event of that message's time: the send
	 * completion it signals next carries it (not the time of whatever it
	 * read last). */
	if (tls.dispatcher && nseg && !segs[nseg - 1].notify && segs[nseg - 1].rest == 0 &&
	    sc->gf.out.npre == 0)
		tls.vt = segs[nseg - 1].stamp;
	for (size_t i = 0; i < nseg; i++) {
		/* The first notice of a Gloo collective (a slot with a collective's
		 * prefix and a tag not seen yet): export --merge aligns on these. */
		uint64_t pfx = segs[i].post_slot >> 56, tag = (segs[i].post_slot >> 24) & 0xffffffffu;
		if (segs[i].notify && !tls.dispatcher && pfx <= 8 && tls.ring) {
			/* A collective: its first notice; point to point (prefix 0,
			 * the user's tag): every post. */
			int op = pfx == 0;
			if (!op) {
				uint64_t key = pfx << 32 | tag, seen = atomic_load_explicit(&g_last_coll, memory_order_relaxed);
				op = seen != key && atomic_compare_exchange_strong(&g_last_coll, &seen, key);
			}
			if (op) {
				struct uni_ev ce = {.kind = UNI_EV_OP, .conn = sc->shm_idx, .t0 = segs[i].stamp,
						    .t1 = segs[i].stamp, .a = segs[i].post_slot,
						    .b = g_stacks ? stack_id() : 0, .c = !segs[i].post};
				emit(&ce);
			}
		}
		/* Where a data message's stamp comes from (unitrace replay). */
		for (int k = 0; k < 2; k++)
			if (segs[i].dep[k] && tls.ring) {
				struct uni_ev d = {.kind = UNI_EV_DEP, .conn = sc->shm_idx, .t0 = segs[i].stamp,
						   .t1 = segs[i].stamp, .a = segs[i].dep[k]};
				emit(&d);
			}
		int last = i + 1 == nseg;
		uint64_t rest = segs[i].rest + (blocking && last && !segs[i].notify ? more : 0);
		int end = !segs[i].notify && rest == 0 && (!last || sc->gf.out.npre == 0);
		struct uni_ev e = {.kind = UNI_EV_SEND,
				   .flags = (uint16_t)(flags | (segs[i].notify ? UNI_EVF_NOTIFY : 0) |
						       (segs[i].cont ? UNI_EVF_CONT : 0) | (end ? UNI_EVF_END : 0)),
				   .conn = sc->shm_idx,
				   .t0 = segs[i].stamp, .t1 = segs[i].stamp,
				   .off = base + segs[i].off, .len = segs[i].len, .b = rest,
				   .c = segs[i].notify ? 0 : segs[i].poster ? segs[i].poster : blocking && last ? tls.ring_idx + 1 : 0};
		uint64_t id = next_id();
		emit(&e);
		if (segs[i].post)
			uni_gf_set_post_src(&sc->gf, segs[i].post_slot, id);
	}
	/* A data message this write finished: Gloo signals its send
	 * completion next, from this thread (gloo_buffers.c takes the token). */
	tls.sent_token = 0;
	if (nseg && !segs[nseg - 1].notify && segs[nseg - 1].rest == 0 && sc->gf.out.npre == 0 &&
	    !sc->gf.out.broken) {
		tls.sent_token = send_token(sc->shm_idx, base + segs[nseg - 1].off + segs[nseg - 1].len);
		if (g_hdr->sched_off)
			sent_stamp_put(tls.sent_token, segs[nseg - 1].stamp);
	}
	/* A reader may be waiting for these bytes: do not leave them in the
	 * ring while unid sleeps. */
	if (nseg)
		ring_bell();
	if (UNI_UNLIKELY(g_det) && g_horizon && nseg && uni_det_live()) {
		uint64_t low = UINT64_MAX;
		for (size_t i = 0; i < nseg; i++)
			if (segs[i].stamp < low)
				low = segs[i].stamp;
		uni_det_net_sent(low); /* (the network in turn: final no further) */
	}
	det_written(sc->shm_idx, base + n, 0);
	return base + n;
}

/* Alpha-beta: the schedule unid publishes for the stream written on
 * connection end idx, or NULL (nic, no chunk yet, no log left). */
static struct uni_sched *stream_sched(uint32_t idx)
{
	if (!g_hdr->sched_off || idx >= g_hdr->max_conns)
		return NULL;
	uint32_t li = atomic_load_explicit(&uni_shm_conn(g_hdr, idx)->sched_log, memory_order_acquire);
	return li && li <= UNI_SCHED_LOGS ? uni_shm_sched(g_hdr, li - 1) : NULL;
}

/* Alpha-beta: the arrival of byte b of the stream coming in on conn idx,
 * from the chunks unid published (struct uni_sched): 1 and *t when the
 * chunk holding b is there, 0 when it is not (not scheduled yet, or no
 * longer in the log): then unid answers. */
/* The schedule of the stream coming in on conn idx (its peer's outgoing
 * one), or NULL: not matched, nic, none yet. */
static struct uni_sched *in_sched(uint32_t idx)
{
	if (!g_hdr->sched_off || idx >= g_hdr->max_conns)
		return NULL;
	struct uni_conn *c = uni_shm_conn(g_hdr, idx);
	if (atomic_load_explicit(&c->state, memory_order_acquire) != UNI_CONN_MATCHED)
		return NULL;
	return stream_sched(atomic_load_explicit(&c->peer_conn, memory_order_relaxed));
}

static int sched_arrival(uint32_t idx, uint64_t b, uint64_t *t)
{
	struct uni_sched *sd = in_sched(idx);
	return sd && uni_sched_find(sd, b, t);
}

/* Alpha-beta, deterministic mode: the latest arrival of the bytes b0..b1
 * of the stream coming in on conn idx (arrivals do not grow across
 * chunks); 0 when a chunk is not in the schedule. */
static int sched_arrival_max(uint32_t idx, uint64_t b0, uint64_t b1, uint64_t *t)
{
	struct uni_sched *sd = in_sched(idx);
	uint64_t m = 0, a, end;
	for (uint64_t b = b0; b <= b1; b = end) {
		if (!sd || !uni_sched_span(sd, b, b1, &a, &end))
			return 0;
		if (a > m)
			m = a;
	}
	*t = m;
	return 1;
}

/* ... and how many of the bytes from b0 on (at most max) have arrived by
 * t: TCP hands them over in order, so up to the first that has not. */
static uint64_t sched_arrived(uint32_t idx, uint64_t b0, uint64_t max, uint64_t t)
{
	struct uni_sched *sd = in_sched(idx);
	uint64_t b = b0, a, end;
	while (sd && b < b0 + max && uni_sched_span(sd, b, b0 + max - 1, &a, &end)) {
		uint64_t last = end < b0 + max ? end - 1 : b0 + max - 1;
		if (a <= t) {
			b = last + 1; /* all of this part */
			continue;
		}
		/* Within the chunk arrivals grow: the last byte arrived by t. */
		uint64_t lo = b, hi = last + 1, x;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;
			if (sched_arrival(idx, mid, &x) && x <= t)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo - b0;
	}
	return b - b0;
}

static void sim_recv(struct shim_conn *sc, const struct iovec *iov, int cnt, size_t n)
{
	struct uni_ring *r = thread_ring();
	uint64_t off = atomic_fetch_add(&sc->rx, n);
	if (!r)
		return;
	/* An event loop that reads modelled bytes handles them for others
	 * (Gloo's loop thread): a dispatcher. Not one in the main thread
	 * (foreign_loop; asyncio used to read real time and charge its
	 * compute to nobody). */
	if (!tls.dispatcher && foreign_loop() &&
	    !(uni_shm_conn(g_hdr, sc->shm_idx)->flags & UNI_CONNF_STORE) /* (the store's daemon: a thread of its own) */) {
		tls.dispatcher = 1;
		r->dispatcher = 1;
	}
	/* Alpha-beta: the arrival may be in the published schedule, final
	 * already: no round trip, and unid writes the record from the clock
	 * after (t1, as it would have answered) and the arrival (c). Else ask
	 * unid and wait for its answer. */
	uint64_t arr, t, t0 = tls.vt;
	int local = sched_arrival(sc->shm_idx, off + n - 1, &arr);
	struct uni_ev e = {.kind = UNI_EV_READ_REQ,
			   .flags = (uint16_t)((tls.dispatcher ? UNI_EVF_DISPATCHER : 0) | (local ? UNI_EVF_LOCAL : 0)),
			   .conn = sc->shm_idx, .t0 = t0, .t1 = t0, .off = off, .len = n};
	if (local) {
		t = tls.dispatcher || arr > t0 ? arr : t0;
		e.t1 = t;
		e.c = arr;
	} else {
		e.a = ++tls.req_seq;
	}
	uint64_t rid = next_id();
	/* Waiting before the request is visible: unid may answer at once,
	 * and its answer (wait NONE, the clock it gives) must not be
	 * overwritten by this wait (the horizon skips a waiting reader whose
	 * request unid took: its answer publishes its clock). */
	if (!local)
		wait_read(r, sc->shm_idx, uni_now_ns(), t0, (uint32_t)e.a);
	push(r, &e);
	if (!local) {
		ring_bell();
		t = det_net_waits(sc->shm_idx) ? det_net_answer(r, (uint32_t)e.a, t0) : await_answer(r, (uint32_t)e.a, t0);
	}
	if (tls.dispatcher)
		tls.vt = t;
	else
		take_stamp(t, 0); /* the RECV record is the dependency */
	publish_vt();
	if (!local)
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	sc->gf.read_src = rid;
	uni_gf_readv(&sc->gf, iov, cnt, n, tls.vt);
	publish_rr(sc);
}

void uni_shim_io_end(uint32_t slot1, int is_send, const struct iovec *iov, int cnt, ssize_t r,
		     uint64_t token)
{
	if (atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return;
	int saved = errno;
	tls.in_shim++;
	struct shim_conn *sc = &g_conns[slot1 - 1];
	struct uni_conn *c = uni_shm_conn(g_hdr, sc->shm_idx);
	int modelled = atomic_load_explicit(&c->state, memory_order_relaxed) != UNI_CONN_UNMODELLED;
	if (g_mode == UNI_MODE_SIMULATE) {
		uint64_t end = 0, stamp = tls.vt;
		if (!is_send && tls.ring &&
		    (atomic_load_explicit(&tls.ring->wait_kind, memory_order_relaxed) == UNI_WAIT_POLL ||
		     (!g_horizon && atomic_load_explicit(&tls.ring->wait_kind, memory_order_relaxed) == UNI_WAIT_READ)))
			atomic_store_explicit(&tls.ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
		/* (A read that waited outside the turn under nic or topology
		 * comes back first: unid answers it at a step the turn asks for,
		 * and nobody asks for steps for a thread outside.) */
		if (UNI_UNLIKELY(tls.det_out) && !is_send && r > 0 && modelled && tls.ring && g_horizon &&
		    uni_det_net()) {
			tls.det_out = 0;
			uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
		}
		if (r > 0 && modelled) {
			if (is_send)
				end = sim_send(sc, iov, cnt, (size_t)r, 0, 0);
			else
				sim_recv(sc, iov, cnt, (size_t)r);
		}
		leave();
		/* A write on a program's own stream (one that does not parse as
		 * Gloo's) that went to the kernel as it was: a non-blocking
		 * socket's (a Python socket with a timeout), or one the blocking
		 * path leaves alone. It returns, in virtual time, at its
		 * completion (network.send_buffer), as a blocking write of the
		 * bytes the kernel took would: a sendall made of such writes
		 * takes what a blocking one takes. Not from an event loop
		 * (epoll: asyncio, Gloo's loop thread), which would do other
		 * work while the socket drains. Gloo's own sends complete in
		 * waitSend. */
		if (end && !tls.loop && !tls.dispatcher && sc->gf.out.broken && !sc->gf.out.messages)
			take_completion(sc->shm_idx, end, stamp);
		/* Deterministic mode: bytes read make room for the peer's
		 * writes; a poll in turn for POLLOUT looks again. */
		if (UNI_UNLIKELY(g_det) && !is_send && r > 0 && modelled) {
			atomic_fetch_add_explicit(&c->consumed, (uint64_t)r, memory_order_release);
			if (uni_det_live())
				uni_det_wake(UNI_DET_OBJ_POLL, 0, 1, 0);
		}
		if (tls.det_out && tls.ring) {
			tls.det_out = 0;
			uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
		}
	} else if (r > 0 && modelled) {
		uint64_t off = atomic_fetch_add(is_send ? &sc->tx : &sc->rx, (uint64_t)r);
		struct uni_ev e = {.kind = is_send ? UNI_EV_SEND : UNI_EV_RECV,
				   .conn = sc->shm_idx,
				   .t0 = token - g_epoch,
				   .t1 = shim_now(),
				   .off = off,
				   .len = (uint64_t)r};
		emit(&e);
	}
	tls.in_shim--;
	errno = saved;
}

/* Alpha-beta: the completion of the write ending at byte end of this end's
 * outgoing stream (conn idx), stamped stamp, found without unid: the
 * stamp when the stream so far fits the send buffer, else when the byte
 * send_buffer before the end left, from the published schedule (struct
 * uni_sched; as engine/sim.c's completion_final). The writer takes it and
 * tells unid (SENT_REQ flagged LOCAL: the record, no answer). Under any
 * model a stream that fits the send buffer completes at the stamp. 0: not
 * known here (nic past the buffer, or that chunk not in the log): ask
 * unid. */
static int sent_local(uint32_t idx, uint64_t end, uint64_t stamp)
{
	uint64_t buf = g_hdr->send_buffer, t = stamp;
	if (idx >= g_hdr->max_conns || tls.dispatcher || !sync_active())
		return 0;
	if (buf != UINT64_MAX && end > buf) {
		if (g_horizon)
			return 0; /* (nic: unid's; the log under the turn holds arrivals only) */
		struct uni_sched *sd = stream_sched(idx);
		uint64_t arr;
		if (!sd || !uni_sched_find(sd, end - buf - 1, &arr))
			return 0;
		if (arr - sd->latency > t)
			t = arr - sd->latency;
	}
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (r) {
		charge();
		uint64_t t0 = tls.vt;
		struct uni_ev e = {.kind = UNI_EV_SENT_REQ, .flags = UNI_EVF_LOCAL, .conn = idx, .t0 = t0,
				   .t1 = t > t0 ? t : t0, .off = end, .c = t};
		push(r, &e);
		take_stamp(t, 0); /* the SENT record is the dependency */
		leave();
	}
	tls.in_shim--;
	errno = saved;
	return r != NULL;
}

/* The writer of a program's own write ending at byte end (stamped stamp)
 * takes its completion: found here under alpha-beta, else unid's. */
static void take_completion(uint32_t idx, uint64_t end, uint64_t stamp)
{
	if (!sent_local(idx, end, stamp))
		uni_shim_send_done(send_token(idx, end));
}

/* O_NONBLOCK of a connection's socket: 1 blocking, 2 non-blocking, 0 not
 * known (fcntl failed). Read once and again only after fcntl(F_SETFL) or
 * ioctl(FIONBIO) on the socket (a system call per write cost 1.2 us on
 * this VM). */
static uint32_t conn_nb(struct shim_conn *sc, int fd)
{
	uint32_t nb = atomic_load_explicit(&sc->nb, memory_order_acquire);
	if (!nb) {
		uint32_t gen = atomic_load_explicit(&sc->nb_gen, memory_order_acquire);
		int saved = errno;
		int fl = uni_real.fcntl(fd, F_GETFL);
		errno = saved;
		if (fl < 0)
			return 0;
		nb = (fl & O_NONBLOCK) ? 2 : 1;
		atomic_store_explicit(&sc->nb, nb, memory_order_release);
		/* Flags changed by another thread since the read: read again
		 * next time (that thread's clear may have come before our
		 * store). */
		if (atomic_load_explicit(&sc->nb_gen, memory_order_acquire) != gen)
			atomic_store_explicit(&sc->nb, 0, memory_order_release);
	}
	return nb;
}

static void poll_wait_publish(struct uni_ring *r, int64_t timeout_ns);

/* nic: a read on a program's own blocking socket waits in the kernel for
 * bytes whose arrival the network decides: while it does, the thread is
 * counted as waiting for I/O (what wakes it carries a later time), not at
 * its clock (holding the horizon there, the network never moved on for a
 * peer that reads only final bytes, an asyncio loop: both waited for
 * ever). */
/* Deterministic mode: a read that will block waits outside the turn
 * (the turn does not follow reads yet): back in turn in uni_shim_io_end. */
static void det_read_outside(int fd)
{
	int saved = errno, fl = uni_real.fcntl(fd, F_GETFL);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (fl >= 0 && !(fl & O_NONBLOCK) && uni_real.poll(&p, 1, 0) == 0) {
		tls.det_out = 1;
		uni_det_outside(tls.ring, tls.ring_idx);
	}
	errno = saved;
}

void uni_shim_read_begin(uint32_t slot1, int fd)
{
	if (det_part() && !tls.det_out) {
		tls.in_shim++;
		det_read_outside(fd);
		tls.in_shim--;
	}
	if (g_mode != UNI_MODE_SIMULATE || tls.dispatcher || tls.loop || !tls.ring ||
	    atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return;
	struct shim_conn *sc = &g_conns[slot1 - 1];
	if (atomic_load_explicit(&uni_shm_conn(g_hdr, sc->shm_idx)->state, memory_order_relaxed) ==
		    UNI_CONN_UNMODELLED ||
	    conn_nb(sc, fd) != 1)
		return;
	int saved = errno;
	tls.in_shim++;
	if (!g_horizon) {
		/* Alpha-beta: a blocking read with nothing in the kernel waits
		 * for its peer, as unid's deadlock reports count it (two ranks
		 * that both recv first on a program's own connection hung
		 * without a report). */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (uni_real.poll(&p, 1, 0) == 0)
			wait_read(tls.ring, sc->shm_idx, uni_now_ns(), tls.vt, 0);
		tls.in_shim--;
		errno = saved;
		return;
	}
	poll_wait_publish(tls.ring, -1);
	horizon_moved();
	tls.in_shim--;
	errno = saved;
}

/* A blocking write on a modelled connection (simulate mode). The kernel
 * would hold the writer until the reader took what does not fit in the
 * socket buffers, and the reader, having read bytes of a write that has
 * not returned, would wait for their chunk: both stuck for ever (a
 * program's own sendall of 16 MB over loopback did that). So the shim
 * writes it in non-blocking parts, each a chunk the moment the kernel
 * took it, and waits for room with poll (as a thread waiting for its
 * send: the nic horizon leaves it out; the rest of the write is already
 * in the network as the first part's flow). Then the writer takes the
 * write's completion from the send-completion model (network.send_buffer),
 * which is when a blocking send() returns. The program sees one blocking
 * write: all its bytes, or what went before an error, a signal or its
 * SO_SNDTIMEO (EAGAIN when nothing went). Not for
 * Gloo's streams (its sockets are non-blocking; a stream that parses as
 * Gloo's is not even asked), MSG_DONTWAIT or MSG_OOB, non-blocking
 * sockets, control data, or more than 64 iovecs (those go to the kernel
 * as they are). */
int uni_shim_send_blocking(uint32_t slot1, int fd, int flags, const struct iovec *iov, int cnt, ssize_t *ret)
{
	if (g_mode != UNI_MODE_SIMULATE || (flags & (MSG_DONTWAIT | MSG_OOB)) || uni_shim_in_shim() || cnt <= 0 ||
	    cnt > 64 ||
	    atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return 0;
	struct shim_conn *sc = &g_conns[slot1 - 1];
	uint32_t perr = atomic_load_explicit(&sc->pend_err, memory_order_relaxed);
	if (perr && atomic_exchange(&sc->pend_err, 0) == perr) {
		*ret = -1;
		errno = (int)perr;
		return 1;
	}
	if (atomic_load_explicit(&uni_shm_conn(g_hdr, sc->shm_idx)->state, memory_order_relaxed) ==
		    UNI_CONN_UNMODELLED ||
	    (!sc->gf.out.broken && sc->gf.out.messages > 0))
		return 0;
	if (conn_nb(sc, fd) != 1)
		return 0;
	int saved = errno;
	struct iovec cur[64];
	size_t total = 0;
	for (int i = 0; i < cnt; i++) {
		cur[i] = iov[i];
		total += iov[i].iov_len;
	}
	if (total == 0)
		return 0;
	/* Not Gloo's: its bytes take the writer's clock (the follower would
	 * stamp the first 48 as a preamble, and bytes that do not complete
	 * one with the first write's time). */
	sc->gf.out.broken = 1;
	uint64_t stamp = uni_shim_io_begin(slot1); /* every part's stamp */
	size_t done = 0;
	uint64_t end = 0, deadline = 0, waiting_since = 0, over = 0, det_dl = 0;
	int k = 0, err = 0, det_off = 0;
	while (done < total) {
		struct msghdr m = {.msg_iov = cur + k, .msg_iovlen = (size_t)(cnt - k)};
		struct iovec part[64];
		if (UNI_UNLIKELY(g_det) && !det_off && det_part()) {
			/* Deterministic mode: as much as the turn's socket buffer
			 * has room for; none: wait in turn for the peer's reads. */
			tls.in_shim++;
			uint64_t room = det_room_over(sc->shm_idx, over);
			if (room < (waiting_since ? DET_WAKE : 1)) {
				/* A peer that closed or reset reads no more: the
				 * kernel's answer (its error, SIGPIPE) from here. */
				struct pollfd pf = {.fd = fd, .events = POLLOUT | POLLRDHUP};
				int pr = uni_real.poll(&pf, 1, 0);
				struct uni_conn *pc = uni_shm_conn(
					g_hdr, atomic_load_explicit(&uni_shm_conn(g_hdr, sc->shm_idx)->peer_conn,
								    memory_order_relaxed));
				if (pr > 0 && ((pf.revents & (POLLERR | POLLHUP)) ||
					       ((pf.revents & POLLRDHUP) && atomic_load_explicit(&pc->wclosed, memory_order_acquire)))) {
					det_off = 1;
					tls.in_shim--;
					continue;
				}
				if (!waiting_since) {
					waiting_since = uni_now_ns();
					tls.ring->stack[0] = 0;
					wait_read(tls.ring, sc->shm_idx | UNI_WAIT_OBJ_ROOM, waiting_since, tls.vt, 0);
				}
				/* SO_SNDTIMEO bounds the call in virtual time (from its
				 * start, as the kernel's bounds it in real time). */
				if (!det_dl) {
					struct timeval tv = {0, 0};
					socklen_t tl = sizeof(tv);
					det_dl = UINT64_MAX;
					if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0 && (tv.tv_sec || tv.tv_usec) &&
					    tv.tv_sec >= 0 && (uint64_t)tv.tv_sec < (UINT64_MAX - stamp) / 1000000000ull - 1)
						det_dl = stamp + (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
				}
				int b = det_dl > tls.vt ? uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_POLL, tls.vt, det_dl)
							: 0;
				if (b == 0) {
					/* (Its time-out: EAGAIN, or the count so far.) */
					take_stamp(det_dl, 0);
					atomic_store_explicit(&tls.ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
					tls.in_shim--;
					err = EAGAIN;
					break;
				}
				/* Every thread of the session waited (two ranks that
				 * each send more than the buffer before they read,
				 * which the host's megabytes of buffers let through):
				 * this writer may go further, twice as far each time
				 * (a state of the program, not of the host: the same
				 * in every run). */
				if (b == 2 && det_room_over(sc->shm_idx, over) < DET_WAKE)
					over = over ? 2 * over : DET_SNDBUF;
				tls.in_shim--;
				continue; /* (the turn given up: the kernel's way from here) */
			}
			tls.in_shim--;
			if (room < total - done) {
				m.msg_iov = part;
				m.msg_iovlen = (size_t)uni_iov_prefix(cur + k, cnt - k, (size_t)room, part);
			}
		}
		/* Once bytes went, an error is the next call's (as in the
		 * kernel, which returns the count): no SIGPIPE now. */
		ssize_t r = uni_real.sendmsg(fd, &m, flags | MSG_DONTWAIT | (done ? MSG_NOSIGNAL : 0));
		if (r > 0) {
			if (waiting_since && tls.ring)
				atomic_store_explicit(&tls.ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
			waiting_since = 0;
			tls.in_shim++;
			if (atomic_load_explicit(&g_state, memory_order_relaxed) == ST_ATTACHED)
				end = sim_send(sc, cur + k, cnt - k, (size_t)r, 1, total - done - (size_t)r);
			leave();
			tls.in_shim--;
			done += (size_t)r;
			for (size_t left = (size_t)r; left;) {
				size_t t = cur[k].iov_len < left ? cur[k].iov_len : left;
				cur[k].iov_base = (char *)cur[k].iov_base + t;
				cur[k].iov_len -= t;
				left -= t;
				if (!cur[k].iov_len)
					k++;
			}
			while (k < cnt && !cur[k].iov_len)
				k++;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* Real time here (in the shim: the program's clock is the
			 * virtual one). SO_SNDTIMEO bounds the whole call, as the
			 * kernel's. */
			tls.in_shim++;
			uint64_t now = uni_now_ns();
			if (!deadline) {
				struct timeval tv = {0, 0};
				socklen_t tl = sizeof(tv);
				deadline = UINT64_MAX;
				if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0 && (tv.tv_sec || tv.tv_usec))
					deadline = now + (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
			}
			int ms = -1;
			if (deadline != UINT64_MAX)
				ms = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
			struct uni_ring *ring = ms ? tls.ring : NULL;
			if (ring) {
				/* Not the write's completion (engine/sim.c watches): room.
				 * One wait until a part goes, over 1 s slices. */
				if (!waiting_since) {
					waiting_since = now;
					ring->stack[0] = 0;
				}
				wait_read(ring, sc->shm_idx | UNI_WAIT_OBJ_ROOM, waiting_since, tls.vt, 0);
				horizon_moved();
			}
			tls.in_shim--;
			if (!ms) {
				err = EAGAIN;
				break;
			}
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int out = det_part();
			if (out)
				uni_det_outside(tls.ring, tls.ring_idx);
			int pr = uni_real.poll(&p, 1, ms < 0 || ms > 1000 ? 1000 : ms);
			int pe = errno;
			if (out)
				uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
			if (ring)
				atomic_store_explicit(&ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
			if (pr < 0 && pe == EINTR) {
				err = EINTR;
				break;
			}
			/* Still no room after a second: the native stack, for a
			 * deadlock report (not while the thread holds a mutex of the
			 * program's: unwinding takes the loader's lock). */
			if (pr == 0 && ring && !ring->stack[0] && !tls.nheld) {
				tls.in_shim++;
				if (uni_now_ns() - waiting_since >= 1000000000ull)
					capture_stack(ring, 0);
				tls.in_shim--;
			}
			continue; /* room, or an error the next write returns */
		}
		err = r < 0 ? errno : EPIPE;
		/* After some bytes went: the next write returns it (EPIPE: the
		 * kernel says it again, with SIGPIPE as the program asked). */
		if (done && err != EPIPE && err != EINTR && err != EAGAIN)
			atomic_store_explicit(&sc->pend_err, (uint32_t)err, memory_order_relaxed);
		break;
	}
	if (done && done < total && end) {
		/* Cut short: the parts announced the rest (uni_ev_flags). */
		tls.in_shim++;
		struct uni_ring *r = sync_active() ? thread_ring() : NULL;
		if (r) {
			struct uni_ev e = {.kind = UNI_EV_SEND, .flags = UNI_EVF_CUT, .conn = sc->shm_idx,
					   .t0 = stamp, .t1 = stamp, .off = end};
			push(r, &e);
			ring_bell();
		}
		tls.in_shim--;
	}
	if (done) {
		if (end)
			take_completion(sc->shm_idx, end, stamp);
		*ret = (ssize_t)done;
		errno = saved;
	} else {
		*ret = -1;
		errno = err;
	}
	return 1;
}

/* Wake-ups carry time -------------------------------------------------- */

struct stamp_ent {
	_Atomic uintptr_t key;
	_Atomic uint32_t seq;     /* signals so far */
	_Atomic uint32_t waiters; /* threads inside a wait on it */
	_Atomic uint64_t stamp;   /* time of the latest signal (cv) / hand-off (mutex) */
	_Atomic uint64_t src;     /* the SIGNAL event that set it (replay) */
	_Atomic uintptr_t mutex;  /* cv: the mutex a signal on it stamped last */
	_Atomic uint64_t mstamp;  /* cv: ... and the stamp it wrote there */
};

#define STAMP_BITS 14
static struct stamp_ent g_stamps[1u << STAMP_BITS];

/* The entry of a condvar or mutex; NULL when absent (or the table is full
 * around it: then that object carries no time, which is said nowhere but
 * costs at most a missed hand-off). */
static struct stamp_ent *stamp_get(void *p, int create)
{
	uintptr_t k = (uintptr_t)p;
	uint32_t h = (uint32_t)(((uint64_t)(k >> 3) * 0x9E3779B97F4A7C15ull) >> (64 - STAMP_BITS));
	for (uint32_t i = 0; i < 16; i++) {
		struct stamp_ent *e = &g_stamps[(h + i) & ((1u << STAMP_BITS) - 1)];
		uintptr_t cur = atomic_load_explicit(&e->key, memory_order_acquire);
		if (cur == k)
			return e;
		if (cur == 0) {
			if (!create)
				return NULL;
			uintptr_t zero = 0;
			if (atomic_compare_exchange_strong(&e->key, &zero, k) || zero == k)
				return e;
		}
	}
	return NULL;
}


static int sync_active(void)
{
	return atomic_load_explicit(&g_state, memory_order_relaxed) == ST_ATTACHED;
}

/* Threads of this rank waiting on cv get a wake floor at t, or at their
 * own clock when that is later (they go on from the later of the two; a
 * waker without a time, an event loop between events, wakes them at their
 * own): the horizon counts them there until they run and publish their
 * own clocks. Returns how many there were. */
static uint32_t set_wake_floors(void *cv, uint64_t t)
{
	uint32_t n = atomic_load_explicit(&g_nmyrings, memory_order_acquire), woken = 0;
	if (n > UNI_MAX_RINGS)
		n = UNI_MAX_RINGS;
	for (uint32_t i = 0; i < n; i++) {
		struct uni_ring *r = uni_shm_ring(g_hdr, g_myrings[i]);
		if (r->pid != g_pid || atomic_load_explicit(&r->state, memory_order_relaxed) != UNI_RING_LIVE ||
		    atomic_load_explicit(&r->wait_kind, memory_order_acquire) != UNI_WAIT_COND ||
		    r->wait_obj != (uint64_t)(uintptr_t)cv)
			continue;
		uint64_t f = t > r->wait_vt ? t : r->wait_vt;
		uint64_t cur = atomic_load_explicit(&r->wake_floor, memory_order_relaxed);
		while (f < cur && !atomic_compare_exchange_weak(&r->wake_floor, &cur, f))
			;
		woken++;
	}
	/* Before this thread can raise its own hold (go idle): a horizon scan
	 * that read the waiter before this floor and this thread after it
	 * went idle sees the count move and scans again. */
	if (woken)
		atomic_fetch_add(&g_hdr->handoffs, 1);
	return woken;
}

void uni_shim_wake_floors(void *obj, uint64_t t)
{
	if (g_horizon && sync_active())
		set_wake_floors(obj, t);
}

/* The thread waits on obj: whatever wakes it carries a later time (it
 * does not hold the nic horizon back); its wake floor cleared, unless
 * keep_floor (a meeting's: the last to arrive may have given it one). */
static void wait_on_object_floor(struct uni_ring *r, void *obj, int keep_floor)
{
	r->wait_obj = (uint64_t)(uintptr_t)obj;
	r->wait_since = uni_now_ns();
	r->wait_deadline = 0;
	r->wait_vt = tls.vt;
	r->wait_vdl = 0;
	r->stack[0] = 0;
	if (!keep_floor)
		atomic_store_explicit(&r->wake_floor, UINT64_MAX, memory_order_relaxed);
	atomic_store_explicit(&r->wait_kind, UNI_WAIT_COND, memory_order_release);
	horizon_moved();
}

static void wait_on_object(struct uni_ring *r, void *obj)
{
	wait_on_object_floor(r, obj, 0);
}

int uni_shim_object_wait(int on, void *obj)
{
	if (!sync_active() || tls.dispatcher)
		return 0;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (!r) {
		tls.in_shim--;
		errno = saved;
		return 0;
	}
	if (on) {
		charge();
		wait_on_object(r, obj);
		if (det_part() && !tls.det_out) {
			/* A semaphore, a pipe or an eventfd: the turn does not
			 * follow these yet (the kernel says when it is back). */
			tls.det_out = 1;
			uni_det_outside(r, tls.ring_idx);
		}
	} else {
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
		leave();
		atomic_store_explicit(&r->wake_floor, UINT64_MAX, memory_order_release);
		if (tls.det_out) {
			tls.det_out = 0;
			uni_det_turn(r, tls.ring_idx, tls.vt);
		}
	}
	tls.in_shim--;
	errno = saved;
	return 1;
}

void uni_shim_timed_wait_begin(struct uni_timed_wait *w, void *obj, clockid_t clk, const struct timespec *abs)
{
	w->use = abs;
	w->vdl = 0;
	if (uni_shim_vclock() && uni_shim_deadline(clk, abs, &w->real, &w->vdl) == 0)
		w->use = &w->real;
	else
		w->vdl = 0;
	w->began = uni_shim_object_wait(1, obj);
	struct uni_ring *r = tls.ring;
	if (w->began && r && w->use) {
		int saved = errno;
		struct timespec now;
		uni_real.clock_gettime(clk, &now);
		int64_t left = (int64_t)(w->use->tv_sec - now.tv_sec) * 1000000000ll + (w->use->tv_nsec - now.tv_nsec);
		tls.in_shim++;
		r->wait_deadline = uni_now_ns() + (left > 0 ? (uint64_t)left : 0);
		tls.in_shim--;
		r->wait_vdl = w->vdl;
		horizon_moved(); /* the nic horizon counts it up to its deadline */
		errno = saved;
	}
}

void uni_shim_timed_wait_end(struct uni_timed_wait *w, int timed_out)
{
	if (w->began)
		uni_shim_object_wait(0, NULL);
	if (timed_out && w->vdl)
		uni_shim_idle_until(w->vdl);
}

void uni_shim_nccl_event(struct uni_ev *e)
{
	if (atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return;
	int saved = errno;
	tls.in_shim++;
	emit(e);
	tls.in_shim--;
	errno = saved;
}

void uni_shim_peer_wait(int on, void *obj)
{
	if (!uni_shim_simulating())
		return;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (r) {
		if (on) {
			wait_on_object(r, obj);
		} else {
			r->wait_what[0] = 0;
			atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
			atomic_store_explicit(&r->async_tag, 0, memory_order_relaxed);
			atomic_store_explicit(&r->soft_floor, 0, memory_order_relaxed);
		}
	}
	tls.in_shim--;
	errno = saved;
}

/* Meetings (the simulated NCCL's join and CommSplit, docs/nccl.md
 * "Meetings"). */
uint32_t uni_shim_meet_self(int32_t *tid, uint64_t *vt, uint64_t *src)
{
	*tid = 0;
	*vt = 0;
	*src = 0;
	if (!uni_shim_simulating() || tls.dispatcher)
		return 0;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (r) {
		charge();
		*vt = tls.vt;
		*tid = r->tid;
		*src = own_position();
	}
	tls.in_shim--;
	errno = saved;
	return r ? tls.ring_idx + 1 : 0;
}

void uni_shim_meet_floor(uint32_t ring1, int32_t tid, uint64_t t)
{
	if (!ring1 || ring1 > g_hdr->max_rings || !uni_shim_simulating())
		return;
	struct uni_ring *r = uni_shm_ring(g_hdr, ring1 - 1);
	if (r->tid != tid || atomic_load_explicit(&r->state, memory_order_acquire) != UNI_RING_LIVE)
		return;
	atomic_store_explicit(&r->wake_floor, t, memory_order_release);
}

void uni_shim_meet_floors_set(void)
{
	if (uni_shim_simulating())
		atomic_fetch_add(&g_hdr->handoffs, 1);
}

static void idle_until(uint64_t t, int force);

/* The thread of ring r leaves a meeting: from t, after taking each of
 * the n ranks' clocks vt[i] from its source src[i]. */
static void meet_leave(struct uni_ring *r, int n, const uint64_t *src, const uint64_t *vt, uint64_t t)
{
	leave(); /* (the CPU the wait spent is nobody's compute) */
	/* Each rank's clock at its arrival, taken from its position (a
	 * thread's own is not: emit_take), every one (under another network
	 * the replay may find another the latest); what is left (a rank
	 * without a thread in it: a non-blocking init's) an idle stretch. */
	for (int i = 0; i < n; i++)
		if (src[i])
			take_stamp(vt[i], src[i]);
	idle_until(t, 1);
	r->wait_what[0] = 0;
	atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	/* A horizon scan that read the wait before this and the floor
	 * after scans again: it would leave the thread out. */
	atomic_fetch_add(&g_hdr->handoffs, 1);
	atomic_store_explicit(&r->wake_floor, UINT64_MAX, memory_order_release);
}

void uni_shim_meet_takes(int n, const uint64_t *src, const uint64_t *vt, uint64_t t)
{
	if (!uni_shim_simulating())
		return;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (r)
		meet_leave(r, n, src, vt, t);
	tls.in_shim--;
	errno = saved;
}

void uni_shim_meet_wait(int on, uint64_t t)
{
	if (!uni_shim_simulating())
		return;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (r && on) {
		charge();
		wait_on_object_floor(r, NULL, 1);
	} else if (r) {
		meet_leave(r, 0, NULL, NULL, t);
	}
	tls.in_shim--;
	errno = saved;
}

void uni_shim_peer_floor(uint64_t t)
{
	struct uni_ring *r = tls.ring;
	if (!r || !uni_shim_simulating())
		return;
	atomic_store_explicit(&r->soft_since, uni_now_ns(), memory_order_relaxed);
	atomic_store_explicit(&r->soft_floor, t + 1, memory_order_release);
	atomic_store_explicit(&r->async_tag, 0, memory_order_release);
}

void uni_shim_nccl_wait(uint64_t comm, const char *what)
{
	if (!uni_shim_simulating())
		return;
	struct uni_ring *r = tls.ring;
	if (!r || tls.gen != atomic_load_explicit(&g_gen, memory_order_relaxed))
		return;
	if (!what) {
		r->wait_what[0] = 0;
		if (tls.det_nccl_marked) {
			tls.det_nccl_marked = 0;
			atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
		}
		return;
	}
	uint64_t now = uni_now_ns();
	if (!r->wait_what[0]) {
		/* A wait the shim publishes otherwise (the data path's, a
		 * condition wait) keeps its beginning. */
		if (atomic_load_explicit(&r->wait_kind, memory_order_relaxed) == UNI_WAIT_NONE) {
			r->wait_vt = tls.vt;
			r->wait_deadline = 0;
			r->stack[0] = 0;
			__atomic_store_n(&r->wait_since, now, __ATOMIC_RELEASE);
		}
	}
	r->wait_nccl = comm;
	if (strncmp(r->wait_what, what, sizeof(r->wait_what) - 1)) {
		/* unid reads it only after 2 s without change: a torn read
		 * while it changes is not reported. */
		snprintf(r->wait_what, sizeof(r->wait_what), "%s", what);
	}
	if (!r->stack[0] && !tls.nheld && now - r->wait_since > 1000000000ull) {
		int saved = errno;
		tls.in_shim++;
		capture_stack(r, 2);
		tls.in_shim--;
		errno = saved;
	}
}

int uni_shim_cond_signal(void *cv)
{
	if (!sync_active())
		return 0;
	int saved = errno, bcast = 0;
	tls.in_shim++;
	uint64_t t;
	if (tls.dispatcher) {
		t = tls.vt; /* the time of the event being handled; 0 = idle tick */
	} else {
		charge();
		t = tls.vt;
	}
	struct stamp_ent *e = stamp_get(cv, 0);
	/* Whoever this wakes is counted at t by the nic horizon until it runs.
	 * glibc wakes one waiter of a signal, and the shim cannot tell which:
	 * with several waiting, all are woken (a spurious wake-up for the
	 * others, which POSIX allows), so that no floor stays on a thread
	 * that sleeps on. */
	if (g_horizon && e && atomic_load_explicit(&e->waiters, memory_order_relaxed) && set_wake_floors(cv, t) > 1)
		bcast = 1;
	if (t && !tls.quiet) {
		uint64_t id = 0;
		if (e && atomic_load_explicit(&e->waiters, memory_order_relaxed)) {
			id = emit_signal((uint64_t)(uintptr_t)cv, t);
			atomic_store_explicit(&e->stamp, t, memory_order_relaxed);
			atomic_store_explicit(&e->src, id, memory_order_relaxed);
			atomic_fetch_add_explicit(&e->seq, 1, memory_order_release);
		}
		/* The waiter may find its predicate true and never wait: it
		 * still locks the mutex the signaller held or just released.
		 * Not a dispatcher's last mutex: Gloo's loop broadcasts a
		 * "tick" holding nothing before each epoll_wait, after it
		 * released the pair mutex of the event it handled; that
		 * stamp handed the event's time to the next thread posting
		 * on that pair (every ring step waited one message more). */
		void *m = tls.nheld ? tls.held[(tls.nheld - 1) % UNI_HELD]
				    : tls.dispatcher ? NULL : tls.released;
		if (m && (e = stamp_get(m, 1)) != NULL) {
			/* The latest wins only if later: one Gloo buffer's mutex
			 * guards both its send and its receive completions, and a
			 * send completion (early) must not hide a receive's. */
			uint64_t cur = atomic_load_explicit(&e->stamp, memory_order_relaxed);
			while (t > cur && !atomic_compare_exchange_weak(&e->stamp, &cur, t))
				;
			if (t > cur) {
				/* Which mutex this condition variable stamped: its
				 * destruction forgets the stamp (uni_shim_cond_destroyed). */
				struct stamp_ent *ce = stamp_get(cv, 1);
				if (ce) {
					atomic_store_explicit(&ce->mutex, (uintptr_t)m, memory_order_relaxed);
					atomic_store_explicit(&ce->mstamp, t, memory_order_relaxed);
				}
				/* The signal event if there is one, else this
				 * thread's position among its events (UNI_SRC_POS),
				 * which costs no event: the GIL's mutex is stamped at
				 * every drop of the GIL (two signals each), thousands
				 * of times a second, and taken from by another thread
				 * a few times a run. As signal events they were two
				 * thirds of the main job's records. A dispatcher hands
				 * on the time of the event it handles, which its
				 * position does not give: an event. */
				if (!id && tls.dispatcher)
					id = emit_signal((uint64_t)(uintptr_t)cv, t);
				atomic_store_explicit(&e->src, id ? id : own_position(), memory_order_relaxed);
			}
		}
	}
	if (!tls.dispatcher)
		leave();
	tls.in_shim--;
	errno = saved;
	return bcast;
}

/* The object at p is gone: its entry keeps its place (the table is
 * probed linearly) but carries nothing. Without this a new object at the
 * address took an old one's stamp: a Work's mutex found the stamp a
 * signal left on a Work freed before it, a hand-off of nobody's (and an
 * event where another run, whose heap lies otherwise, had none). */
static void stamp_forget(void *p)
{
	struct stamp_ent *e = stamp_get(p, 0);
	if (!e)
		return;
	atomic_store_explicit(&e->src, 0, memory_order_relaxed);
	atomic_store_explicit(&e->mutex, 0, memory_order_relaxed);
	atomic_store_explicit(&e->stamp, 0, memory_order_release);
}

/* A condition variable is destroyed: its stamp goes, and the stamp its
 * signal left on a mutex if nothing stamped that mutex since (the two are
 * members of one object, as a c10d Work's, and a mutex has no destructor
 * call of its own to see; a mutex the signaller held that outlives the
 * condition variable keeps a later stamp). Not while a waiter is still
 * on its way out (POSIX lets a broadcaster destroy then): it takes the
 * stamp yet. */
void uni_shim_cond_destroyed(void *cv)
{
	if (!sync_active())
		return;
	struct stamp_ent *e = stamp_get(cv, 0);
	if (!e || atomic_load_explicit(&e->waiters, memory_order_acquire))
		return;
	void *m = (void *)atomic_load_explicit(&e->mutex, memory_order_relaxed);
	uint64_t ms = atomic_load_explicit(&e->mstamp, memory_order_relaxed);
	stamp_forget(cv);
	struct stamp_ent *me = m ? stamp_get(m, 0) : NULL;
	if (me && ms && atomic_compare_exchange_strong(&me->stamp, &ms, 0))
		atomic_store_explicit(&me->src, 0, memory_order_relaxed);
}

static uint32_t cond_wait_begin(void *cv)
{
	if (!sync_active())
		return 0;
	int saved = errno;
	tls.in_shim++;
	if (!tls.dispatcher)
		charge();
	uint32_t tok = 0;
	struct stamp_ent *e = stamp_get(cv, 1);
	if (e) {
		atomic_fetch_add_explicit(&e->waiters, 1, memory_order_relaxed);
		tok = atomic_load_explicit(&e->seq, memory_order_acquire);
	}
	tls.in_shim--;
	errno = saved;
	return tok;
}

static void cond_wait_end(void *cv, void *mutex, uint32_t tok)
{
	if (!sync_active())
		return;
	int saved = errno;
	tls.in_shim++;
	struct stamp_ent *e = stamp_get(cv, 0);
	if (e) {
		atomic_fetch_sub_explicit(&e->waiters, 1, memory_order_relaxed);
		if (!tls.dispatcher && !tls.quiet && atomic_load_explicit(&e->seq, memory_order_acquire) != tok)
			take_stamp(atomic_load_explicit(&e->stamp, memory_order_relaxed),
				   atomic_load_explicit(&e->src, memory_order_relaxed));
	}
	/* The wait re-acquired the mutex inside glibc, past our lock wrapper. */
	if (!tls.dispatcher && !tls.quiet && (e = stamp_get(mutex, 0)) != NULL)
		take_stamp(atomic_load_explicit(&e->stamp, memory_order_acquire),
			   atomic_load_explicit(&e->src, memory_order_relaxed));
	if (!tls.dispatcher)
		leave();
	tls.in_shim--;
	errno = saved;
}

static struct timespec ns_ts(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
	return ts;
}

/* Symbolises pcs[skip..n) into out ("#k sym+0xoff (lib)" lines), leaving
 * out the shim's own frames when skip_self. Returns the length. */
static size_t symbolise(void **pcs, int n, int skip, int skip_self, char *out, size_t cap)
{
	size_t off = 0;
	int k = 0;
	Dl_info self;
	void *self_base = dladdr((void *)symbolise, &self) ? self.dli_fbase : NULL;
	if (cap)
		out[0] = 0;
	for (int i = skip; i < n && off + 1 < cap; i++) {
		Dl_info di;
		const char *sym = "?", *obj = "?";
		uintptr_t delta = 0;
		if (dladdr(pcs[i], &di)) {
			/* skip_self 2: keeps the shim's exported functions (the
			 * NCCL call the program made). */
			if (skip_self && di.dli_fbase == self_base && (skip_self == 1 || !di.dli_sname))
				continue;
			if (di.dli_sname) {
				sym = di.dli_sname;
				delta = (uintptr_t)pcs[i] - (uintptr_t)di.dli_saddr;
			}
			if (di.dli_fname) {
				const char *slash = strrchr(di.dli_fname, '/');
				obj = slash ? slash + 1 : di.dli_fname;
			}
		}
		int w = snprintf(out + off, cap - off, "#%d %p %s+0x%lx (%s)\n", k++, pcs[i], sym,
				 (unsigned long)delta, obj);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (off >= cap) {
		off = cap - 1;
		out[off] = 0;
	}
	return off;
}

/* Threads that CUDA's libraries make (the driver's event handler, the
 * runtime's thread that runs host functions, CUPTI's) belong to the
 * device, not to the program: uni_shim_cuda_creator says whether the
 * pthread_create being called comes from one (the first frame outside the
 * shim and the C and C++ runtimes is in libcuda, libcudart, libcupti or a
 * libnvidia-* library). The libraries' ranges come from dl_iterate_phdr,
 * not dladdr: dladdr takes the loader's lock, which a thread running a
 * library's constructor in dlopen holds while it may wait for a lock that
 * the creator holds. */
#define CREATOR_FRAMES 8
struct creator_look {
	uintptr_t pc[CREATOR_FRAMES];
	int n;
	signed char cls[CREATOR_FRAMES]; /* 0: unknown, 1: skip, 2: CUDA, 3: other */
};

static int creator_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct creator_look *l = arg;
	const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : NULL;
	const char *slash = name ? strrchr(name, '/') : NULL;
	const char *b = slash ? slash + 1 : name;
	int cls = 3; /* (the main program, whose name is empty, too) */
	if (b && (!strncmp(b, "libc.so", 7) || !strncmp(b, "libstdc++.so", 12) || !strncmp(b, "libpthread.so", 13) ||
		  !strncmp(b, "libunishim", 10) || !strncmp(b, "libunwind", 9) || !strncmp(b, "libgcc_s.so", 11)))
		cls = 1;
	else if (b && (!strncmp(b, "libcuda.so", 10) || !strncmp(b, "libcudart.so", 12) ||
		       !strncmp(b, "libcupti.so", 11) || !strncmp(b, "libnvidia-", 10)))
		cls = 2;
	for (int p = 0; p < info->dlpi_phnum; p++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[p];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		for (int i = 0; i < l->n; i++)
			if (!l->cls[i] && l->pc[i] >= lo && l->pc[i] < hi)
				l->cls[i] = (signed char)cls;
	}
	return 0;
}

int uni_shim_cuda_creator(void *caller)
{
	/* (libunwind's own locks and pipe are not the program's) */
	int saved = errno;
	tls.in_shim++;
	struct creator_look l = {.n = 0};
	void *pcs[CREATOR_FRAMES];
	int n = 0;
#if UNI_HAVE_LIBUNWIND
	n = unw_backtrace(pcs, CREATOR_FRAMES);
#endif
	if (n <= 0) { /* (the hook's caller alone) */
		pcs[0] = caller;
		n = 1;
	}
	for (int i = 0; i < n; i++)
		l.pc[i] = (uintptr_t)pcs[i];
	l.n = n;
	dl_iterate_phdr(creator_cb, &l);
	int cuda = 0;
	for (int i = 0; i < n; i++)
		if (l.cls[i] != 1) {
			cuda = l.cls[i] == 2;
			break;
		}
	tls.in_shim--;
	errno = saved;
	return cuda;
}

void uni_shim_device_thread(void)
{
	tls.device = 1;
	tls.in_shim++; /* for the thread's life */
}

void uni_shim_device_created(pthread_t th)
{
	/* (It takes no part in the turn, and a join of it hands on no time:
	 * not the state a thread that had its pthread_t before left.) */
	if (!sync_active())
		return;
	tls.in_shim++;
	uni_shim_det_created(th, 0);
	join_forget(th);
	tls.in_shim--;
}

/* Call stacks of Gloo operations (trace.stacks): interned per process; a
 * new one goes to unid as STRING events once, symbolised here. */
#define STACK_TAB 1024
static struct {
	atomic_flag lock;
	uint32_t n;
	uint64_t hash[STACK_TAB];
	uint32_t id[STACK_TAB];
} g_stk = {.lock = ATOMIC_FLAG_INIT};

static uint32_t stack_id(void)
{
	void *pcs[32];
	int n;
#if UNI_HAVE_LIBUNWIND
	n = unw_backtrace(pcs, (int)UNI_ARRAY_LEN(pcs));
#else
	n = backtrace(pcs, (int)UNI_ARRAY_LEN(pcs));
#endif
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < n; i++)
		h = (h ^ (uint64_t)(uintptr_t)pcs[i]) * 1099511628211ull;
	if (!h)
		h = 1;
	while (atomic_flag_test_and_set_explicit(&g_stk.lock, memory_order_acquire))
		cpu_relax();
	uint32_t slot = (uint32_t)(h % STACK_TAB), id = 0, fresh = 0;
	for (uint32_t k = 0; k < STACK_TAB; k++, slot = (slot + 1) % STACK_TAB) {
		if (g_stk.hash[slot] == h) {
			id = g_stk.id[slot];
			break;
		}
		if (!g_stk.hash[slot]) {
			g_stk.hash[slot] = h;
			g_stk.id[slot] = id = ++g_stk.n;
			fresh = 1;
			break;
		}
	}
	atomic_flag_clear_explicit(&g_stk.lock, memory_order_release);
	if (!fresh)
		return id; /* 0 when the table is full: no stack */
	char text[2048];
	size_t len = symbolise(pcs, n, 1, 1, text, sizeof(text));
	for (uint64_t off = 0; off < len; off += 40) {
		struct uni_ev e = {.kind = UNI_EV_STRING, .conn = id, .off = off / 40, .len = len};
		uint64_t w[5] = {0};
		memcpy(w, text + off, len - off < 40 ? len - off : 40);
		e.t0 = w[0], e.t1 = w[1], e.a = w[2], e.b = w[3], e.c = w[4];
		emit(&e);
	}
	return id;
}

/* The calling thread's native stack, symbolised, into the ring for the
 * deadlock report. Runs in the blocked thread itself, between two slices
 * of its wait: no signals, no ptrace. */
static void capture_stack(struct uni_ring *r, int skip_self)
{
	void *pcs[24];
	int n;
#if UNI_HAVE_LIBUNWIND
	n = unw_backtrace(pcs, (int)UNI_ARRAY_LEN(pcs));
#else
	n = backtrace(pcs, (int)UNI_ARRAY_LEN(pcs));
#endif
	symbolise(pcs, n, 2, skip_self, r->stack, sizeof(r->stack)); /* skip capture_stack, its caller */
}

static int clock_kind(clockid_t clk)
{
	switch (clk) {
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_BOOTTIME:
		return 1;
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
		return 2;
	default:
		return 0;
	}
}

/* A deadline past "for ever" (UNI_SLEEP_FOREVER_S; its nanoseconds do not
 * fit 64 bits) on a clock the shim reads: a wait without a time-out. */
static int deadline_forever(clockid_t clk, const struct timespec *abs)
{
	return abs && abs->tv_sec >= 0 && (uint64_t)abs->tv_sec > UNI_SLEEP_FOREVER_S && clock_kind(clk);
}

int uni_shim_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, int how, clockid_t clk,
		       const struct timespec *abs)
{
	uint32_t tok = cond_wait_begin(cv);
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = sync_active() ? thread_ring() : NULL;
	/* A deadline the thread computed from a virtual clock: the kernel
	 * gets the real one. */
	struct timespec real_dl, slice;
	uint64_t vdl = 0;
	const struct timespec *use = abs;
	if (abs && g_vclock && !tls.dispatcher && tls.slice_cv == cv && tls.slice_abs.tv_sec == abs->tv_sec &&
	    tls.slice_abs.tv_nsec == abs->tv_nsec) {
		/* The same wait after one of our 1 s slices: the same real
		 * deadline (converted again from a clock that has not moved, it
		 * moved on a second each slice: the wait never timed out). */
		real_dl = tls.slice_real;
		vdl = tls.slice_vdl;
		use = &real_dl;
	} else if (abs && g_vclock && !tls.dispatcher && uni_shim_deadline(clk, abs, &real_dl, &vdl) == 0)
		use = &real_dl;
	else
		vdl = 0;
	clockid_t sclk = how == 0 ? uni_cond_clock(cv) : clk;
	/* A deadline past "for ever": none; one before 1970: glibc's at once. */
	if (use == abs && deadline_forever(sclk, abs))
		use = NULL;
	int past = use && use->tv_sec < 0;
	uint64_t now_c = clock_ns(sclk), mono = uni_now_ns();
	int sliced = 0;
	if (!use || (!past && (uint64_t)use->tv_sec * 1000000000ull + (uint64_t)use->tv_nsec > now_c + 1000000000ull)) {
		slice = ns_ts(now_c + 1000000000ull);
		sliced = 1;
	}
	if (r) {
		if (tls.slice_cv != cv) {
			r->wait_since = mono;
			r->wait_vt = tls.vt;
			r->stack[0] = 0;
		}
		r->wait_obj = (uint64_t)(uintptr_t)cv;
		r->wait_deadline = !use ? 0 : past ? mono : mono + ((uint64_t)use->tv_sec * 1000000000ull +
									  (uint64_t)use->tv_nsec - now_c);
		r->wait_vdl = vdl;
		/* A floor left from a wake-up this thread already ran after. */
		atomic_store_explicit(&r->wake_floor, UINT64_MAX, memory_order_relaxed);
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_COND, memory_order_release);
		horizon_moved();
	}
	tls.slice_cv = NULL;
	tls.in_shim--;
	errno = saved;
	const struct timespec *dl = sliced ? &slice : use;
	int rc = how == 2 ? uni_real.cond_clockwait(cv, m, clk, dl) : uni_real.cond_timedwait(cv, m, dl);
	saved = errno;
	tls.in_shim++;
	if (rc == ETIMEDOUT && sliced) {
		if (r && !r->stack[0] && uni_now_ns() - r->wait_since >= 1000000000ull) {
			/* Unwinding and dladdr take the loader's lock: never while
			 * holding the program's mutex (a thread in dlopen could be
			 * waiting for it). The wake-up is spurious anyway. */
			uni_real.mutex_unlock(m);
			capture_stack(r, 0);
			uni_real.mutex_lock(m);
		}
		tls.slice_cv = cv;
		if (abs && vdl) {
			tls.slice_abs = *abs;
			tls.slice_real = real_dl;
			tls.slice_vdl = vdl;
		} else
			tls.slice_abs.tv_sec = -1;
		rc = 0; /* a spurious wake-up: the caller re-checks and waits again */
	}
	if (r)
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	tls.in_shim--;
	errno = saved;
	cond_wait_end(cv, m, tok);
	if (rc == ETIMEDOUT && vdl)
		uni_shim_idle_until(vdl);
	/* Its own clock is published: the waker's floor is no longer needed. */
	if (r)
		atomic_store_explicit(&r->wake_floor, UINT64_MAX, memory_order_release);
	return rc;
}

uint64_t uni_shim_thread_vt(void)
{
	if (!sync_active())
		return 0;
	int saved = errno;
	tls.in_shim++;
	if (!tls.dispatcher) {
		charge();
		leave();
	}
	uint64_t vt = tls.vt;
	tls.in_shim--;
	errno = saved;
	return vt;
}

void *uni_shim_thread_prepare(uint64_t vt, uint64_t key)
{
	if ((!g_horizon && !g_det) || !sync_active())
		return NULL;
	int saved = errno;
	tls.in_shim++;
	/* The new thread's ring, claimed now: from the moment it exists the
	 * horizon counts it at its creator's clock. (Claimed by the thread
	 * itself at its first step, it was invisible in between: a worker
	 * created just before its creator handed it work and waited sent "in
	 * the past".) */
	struct uni_ring *r = claim_ring(0);
	if (r)
		atomic_store_explicit(&r->vt_pub, vt, memory_order_release);
	/* Deterministic mode: the turn counts it from now, at its creator's
	 * clock (it waits for the turn when it starts). */
	if (r && g_det) {
		atomic_fetch_add(&g_det_threads, 1);
		uni_det_adopt(r, (uint32_t)(r - uni_shm_ring(g_hdr, 0)), key, vt);
	}
	tls.in_shim--;
	errno = saved;
	return r;
}

void uni_shim_thread_abandon(void *ring)
{
	struct uni_ring *r = ring;
	if (!r)
		return;
	if (g_det) {
		atomic_fetch_sub(&g_det_threads, 1);
		uni_det_end(r, (uint32_t)(r - uni_shm_ring(g_hdr, 0)));
	}
	atomic_store(&r->tail, atomic_load(&r->head));
	atomic_store_explicit(&r->state, UNI_RING_FREE, memory_order_release);
}

uint64_t uni_shim_child_key(void)
{
	if (!tls.key && tls.tid == 0 && (int)syscall(SYS_gettid) == g_pid)
		tls.key = 1; /* the main thread, before its first event */
	return tls.key ? uni_cf_child_key(tls.key, ++tls.nchild) : 0;
}

void uni_shim_thread_begin(uint64_t vt, void *ring, uint64_t src, uint64_t key)
{
	tls.vt = vt;
	tls.key = key;
	tls.nchild = 0;
	tls.start_src = src;
	/* An earlier thread with the same pthread_t (glibc reuses them) may
	 * have left its end for a joiner that never came (it was detached). */
	join_forget(pthread_self());
	if (ring && sync_active()) {
		struct uni_ring *r = ring;
		tls.in_shim++;
		tls.gen = atomic_load(&g_gen);
		tls.ring_failed = 0;
		r->tid = (int)syscall(SYS_gettid);
		tls.req_seq = atomic_load(&r->resp_seq) + 0x10000u;
		adopt_ring(r);
		/* Deterministic mode: it runs when its turn comes. */
		if (g_det)
			uni_det_turn(r, tls.ring_idx, tls.vt);
		tls.in_shim--;
	}
	tls.cpu_mark = thread_cpu(); /* its CPU time counts from here */
	tls.wall_mark = clock_ns(CLOCK_MONOTONIC);
}

void uni_shim_sleeping(int on, uint64_t ns)
{
	if (!sync_active())
		return;
	tls.in_shim++; /* our own clock reads are the real ones */
	struct uni_ring *r = tls.ring;
	if (on) {
		/* What it computed before it went to sleep is compute. A thread
		 * whose first call into the shim is this sleep claims its ring
		 * here (charge does too; after a fork it may be a new one):
		 * unid must see every sleeper before it ends one early. */
		if (det_part())
			det_charge();
		else if (!tls.dispatcher)
			charge();
		r = thread_ring();
		if (r) {
			r->wait_since = uni_now_ns();
			r->wait_vt = tls.vt;
			r->wait_deadline = 0;
			/* When it wakes (unid's warp takes the earliest), saturated. */
			r->wait_vdl = ns > UINT64_MAX - tls.vt ? UINT64_MAX : tls.vt + ns;
			/* It sends nothing before it wakes. */
			atomic_store_explicit(&r->vt_pub, r->wait_vdl, memory_order_release);
		}
	} else if (r) {
		/* The sleep's own CPU (its slices) is nobody's compute. */
		leave();
		r->wait_vdl = 0;
	}
	tls.in_shim--;
	if (r)
		atomic_store_explicit(&r->wait_kind, on ? UNI_WAIT_SLEEP : UNI_WAIT_NONE, memory_order_release);
}

#define SLEEP_SLICE_NS 20000000ull

/* Waits until unid's horizon reached w (docs/simulate.md, "Sleeps and
 * connects in causal order"): then no thread of another rank can still act
 * before virtual time w, so whatever the others do before it (a rank that
 * computes longer in real time than in virtual time, say) has been done. Not for event loops
 * and pollers (they have no clock of their own); before every rank
 * attached there is no horizon: it waits for the missing ranks to attach
 * first; at most g_hold_max_ns of real time in all. The
 * caller publishes a clock of at least w first (a sleeper its wake-up),
 * or it holds the horizon below w itself. */
static _Atomic int g_world_gaveup; /* a hold gave up on ranks that never attached */

/* Every rank of the world has attached (or attached and ended), or a hold
 * gave up waiting for the missing ones. */
static int world_attached(void)
{
	if (atomic_load_explicit(&g_world_gaveup, memory_order_relaxed) || g_world <= 0)
		return 1;
	for (int i = 0; i < g_world && i < (int)g_hdr->max_ranks; i++)
		if (atomic_load_explicit(&uni_shm_rank(g_hdr, (uint32_t)i)->state, memory_order_acquire) ==
		    UNI_RANK_FREE)
			return 0;
	return 1;
}


static void hold_until(uint64_t w)
{
	if (tls.dispatcher || tls.poller || !w || w == UINT64_MAX)
		return;
	/* Deterministic mode: the turn is the order (whoever has it is the
	 * least clock of the session). */
	if (det_part())
		return;
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
	atomic_fetch_add(&g_hdr->hold_waiters, 1);
	if (tls.ring)
		atomic_store(&tls.ring->holding, 1);
	/* Its number: only a horizon computed after it took it answers it. */
	uint32_t my = atomic_fetch_add(&g_hdr->hold_req, 1) + 1;
	ring_bell();
	for (;;) {
		uint32_t seq = atomic_load_explicit(&g_hdr->hold_seq, memory_order_acquire);
		uint32_t ack = atomic_load_explicit(&g_hdr->hold_ack, memory_order_acquire);
		if ((int32_t)(ack - my) >= 0) {
			/* Its own rank's threads do not hold it (unid.c, publish_hold). */
			uint64_t h = atomic_load_explicit(&g_hdr->hold_rank, memory_order_acquire) == (uint32_t)g_rank
					     ? atomic_load_explicit(&g_hdr->hold_hx, memory_order_acquire)
					     : atomic_load_explicit(&g_hdr->hold_h, memory_order_acquire);
			/* No horizon before every rank attached: a rank that has
			 * not started yet will act after this time too (a client
			 * that found no listener because its server had not
			 * started retried, or not, as the host's start-up went). */
			if ((h == 0 && world_attached()) || (h && h >= w))
				break;
		}
		if (clock_ns(CLOCK_MONOTONIC) - t0 > g_hold_max_ns) {
			atomic_fetch_add(&g_hdr->holds_given_up, 1);
			if (!world_attached() && !atomic_exchange(&g_world_gaveup, 1))
				uni_shim_log("rank %d: not every rank of the world of %d attached within %.0f s: sleeps and "
					     "connects no longer wait for the missing ones", g_rank, g_world,
					     (double)g_hold_max_ns / 1e9);
			break;
		}
		if (!coordinator_alive() || atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
			break;
		/* Woken when the horizon moves (the thread that holds it rings
		 * unid when it publishes a later clock); the bell again now and
		 * then, in case unid slept through the first. */
		if (uni_futex_wait(&g_hdr->hold_seq, seq, 5) == -ETIMEDOUT)
			ring_bell();
	}
	uint64_t held = clock_ns(CLOCK_MONOTONIC) - t0;
	/* (Off the count unless unid took it off: a thread killed between
	 * the two stores leaves the count one high, never one low.) */
	if (!tls.ring || atomic_exchange(&tls.ring->holding, 0))
		atomic_fetch_sub(&g_hdr->hold_waiters, 1);
	/* One fresh horizon said yes at once: not a wait. */
	if (held > 1000000ull) {
		atomic_fetch_add(&g_hdr->holds, 1);
		atomic_fetch_add(&g_hdr->hold_ns, held);
	}
}

/* Listeners ---------------------------------------------------------- */

UNI_HIDDEN _Atomic int uni_shim_nlisten;

static int addr_any(const struct uni_addr *a)
{
	static const uint8_t v4any[16] = {[10] = 0xff, [11] = 0xff};
	for (int i = 0; i < 16; i++)
		if (a->ip[i])
			return memcmp(a->ip, v4any, 16) == 0;
	return 1;
}

/* The session's listener table is open-addressed on the port: an entry's
 * probe starts at port % UNI_MAX_LISTENERS and goes on to the next until
 * an entry never used (state 0); a closed listener's entry becomes a
 * tombstone (3) that a later one may take. (Older Gloo listens once per
 * pair: a 64-rank world has 4032 listeners at once, and a table of 1024
 * scanned whole at every connect was full, and slow.) */
static uint32_t lslot(uint16_t port, uint32_t k)
{
	return ((uint32_t)port + k) & (UNI_MAX_LISTENERS - 1);
}

/* This process's entries (fd, index + 1), so that close(), which looks
 * whenever the process has a listener, looks here and not in the table. A
 * process with more listeners than this also looks through the table
 * (g_mine_over: slow, but right). */
#define MINE_MAX 512
static struct {
	_Atomic int32_t fd;
	_Atomic uint32_t idx1; /* UINT32_MAX: being written */
} g_mine[MINE_MAX];
static _Atomic int g_mine_over;

/* The index of this process's live entry for fd, or -1. */
static int mine_find(int fd)
{
	for (int j = 0; j < MINE_MAX; j++) {
		uint32_t m = atomic_load_explicit(&g_mine[j].idx1, memory_order_acquire);
		if (m && m != UINT32_MAX && atomic_load_explicit(&g_mine[j].fd, memory_order_relaxed) == fd)
			return (int)m - 1;
	}
	if (atomic_load_explicit(&g_mine_over, memory_order_relaxed))
		for (uint32_t i = 0; i < UNI_MAX_LISTENERS; i++) {
			struct uni_listener *l = uni_shm_listener(g_hdr, i);
			if (atomic_load_explicit(&l->state, memory_order_acquire) == 2 && l->pid == g_pid &&
			    l->fd == fd)
				return (int)i;
		}
	return -1;
}

static void mine_add(int fd, uint32_t idx)
{
	for (int j = 0; j < MINE_MAX; j++) {
		uint32_t z = 0;
		if (!atomic_load_explicit(&g_mine[j].idx1, memory_order_relaxed) &&
		    atomic_compare_exchange_strong(&g_mine[j].idx1, &z, UINT32_MAX)) {
			atomic_store_explicit(&g_mine[j].fd, fd, memory_order_relaxed);
			atomic_store_explicit(&g_mine[j].idx1, idx + 1, memory_order_release);
			return;
		}
	}
	atomic_store(&g_mine_over, 1);
}

static void mine_drop(uint32_t idx)
{
	for (int j = 0; j < MINE_MAX; j++) {
		uint32_t m = idx + 1;
		if (atomic_compare_exchange_strong(&g_mine[j].idx1, &m, 0))
			return;
	}
}

int uni_shim_listening(int fd, int before)
{
	if (!sync_active())
		return 0;
	int saved = errno, done = 0;
	tls.in_shim++;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct uni_addr a;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || to_uni_addr((struct sockaddr *)&ss, sl, &a) < 0 ||
	    (before && a.port == 0))
		goto out; /* (not bound yet: listen picks the port) */
	/* listen() again on a listener (a new backlog): already there. */
	int had = mine_find(fd);
	if (had >= 0 && uni_shm_listener(g_hdr, (uint32_t)had)->addr.port == a.port) {
		done = 1;
		goto out;
	}
	if (!tls.dispatcher)
		charge();
	if (det_part())
		det_point(); /* (a store's connects wait for it in turn) */
	struct uni_listener *e = NULL;
	for (int pass = 0; !e && pass < 2; pass++)
		for (uint32_t k = 0; !e && k < UNI_MAX_LISTENERS; k++) {
			struct uni_listener *l = uni_shm_listener(g_hdr, lslot(a.port, k));
			uint32_t st = atomic_load_explicit(&l->state, memory_order_acquire);
			/* A free entry, or (when none is) one of a process gone. */
			if ((st == 0 || st == 3 || (pass == 1 && st == 2 && uni_pid_dead(l->pid))) &&
			    atomic_compare_exchange_strong(&l->state, &st, 1))
				e = l;
		}
	if (!e) {
		static _Atomic int warned;
		if (!atomic_exchange(&warned, 1))
			uni_shim_log("rank %d: listener table full (%u in the session); connects to further "
				     "listeners are not ordered in virtual time", g_rank, UNI_MAX_LISTENERS);
		goto out;
	}
	e->pid = g_pid;
	e->fd = fd;
	e->addr = a;
	e->vt = tls.vt;
	atomic_store(&e->connects, 0);
	atomic_store(&e->accepts, 0);
	/* An event for a connector to depend on (unitrace replay re-times
	 * the wait when the listener's time changes). */
	e->src = tls.dispatcher ? 0 : emit_signal(SIG_LISTEN | ((uint64_t)a.port << 32) | (uint32_t)fd, tls.vt);
	atomic_store_explicit(&e->state, 2, memory_order_release);
	mine_add(fd, (uint32_t)(e - uni_shm_listener(g_hdr, 0)));
	atomic_fetch_add(&uni_shim_nlisten, 1);
	if (g_det && uni_det_live())
		uni_det_wake(UNI_DET_OBJ_LISTEN, e->vt, 1, e->src);
	done = 1;
	leave();
out:
	tls.in_shim--;
	errno = saved;
	return done;
}

void uni_shim_listen_closed(int fd)
{
	int i;
	while (g_hdr && (i = mine_find(fd)) >= 0) {
		struct uni_listener *l = uni_shm_listener(g_hdr, (uint32_t)i);
		uint32_t st = 2;
		mine_drop((uint32_t)i);
		if (atomic_compare_exchange_strong(&l->state, &st, 3))
			atomic_fetch_sub(&uni_shim_nlisten, 1);
	}
}

/* The session's live listener for a connection to a: its index, and when
 * it began to listen and its SIGNAL event (*vt, *src); -1 none. Of several
 * (ranks in network namespaces listening on one port of any address), the
 * earliest. */
static int listener_scan(const struct uni_addr *a, uint64_t *vt, uint64_t *src)
{
	int best = -1;
	*vt = UINT64_MAX;
	*src = 0;
	for (uint32_t k = 0; k < UNI_MAX_LISTENERS; k++) {
		uint32_t i = lslot(a->port, k);
		struct uni_listener *l = uni_shm_listener(g_hdr, i);
		uint32_t st = atomic_load_explicit(&l->state, memory_order_acquire);
		if (st == 0)
			break; /* the end of the port's probe */
		if (st != 2 || l->addr.port != a->port || (!addr_any(&l->addr) && memcmp(l->addr.ip, a->ip, 16) != 0))
			continue;
		uint64_t t = l->vt, s = l->src;
		if (atomic_load_explicit(&l->state, memory_order_acquire) == 2 && t < *vt && !uni_pid_dead(l->pid)) {
			*vt = t;
			*src = s;
			best = (int)i;
		}
	}
	return best;
}

static int listener_for(const struct uni_addr *a)
{
	uint64_t vt, src;
	return listener_scan(a, &vt, &src);
}

/* When the listener for a connection to a began to listen (virtual time;
 * 0: none of the session's); *src its SIGNAL event. */
static uint64_t listen_vt(const struct uni_addr *a, uint64_t *src)
{
	uint64_t vt;
	return listener_scan(a, &vt, src) < 0 ? 0 : vt;
}

/* Whether a socket of this network namespace listens on port (the
 * kernel's tables: a listener outside the session, such as torchrun's
 * agent, is not in the shim's). */
static int kernel_listens(uint16_t port)
{
	static const char *const tabs[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	int found = 0;
	for (int t = 0; t < 2 && !found; t++) {
		FILE *f = fopen(tabs[t], "re");
		if (!f)
			continue;
		char line[256];
		unsigned lp, st;
		while (!found && fgets(line, sizeof(line), f))
			if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &lp, &st) == 2 && lp == port &&
			    st == 0x0a /* TCP_LISTEN */)
				found = 1;
		fclose(f);
	}
	return found;
}

/* A connect to the rendezvous store (MASTER_PORT) before it listens: the
 * store is taken to be up when it is needed, as it is under torchrun
 * (its agent starts the store before any rank), instead of the connect
 * being refused and torch sleeping a second before it retries (when a
 * rank's import took less time than rank 0's on the host, that second
 * went into the prediction, in some runs and not in others). The thread
 * waits for the store's listener, counted as waiting for I/O (the horizon
 * leaves it out), for at most UNI_STORE_WAIT_NS of real time, and returns
 * when that listener began to listen (0: not one of the session's, or
 * none came). *waited: whether it waited (the caller ends the wait). */
static uint64_t await_store(const struct uni_addr *a, uint64_t *src, int *waited)
{
	/* (A listener of the session registers before it listens: one the
	 * kernel has is in the table by then, when it is the session's.) */
	if (!tls.ring || kernel_listens(a->port))
		return listen_vt(a, src);
	*waited = 1;
	poll_wait_publish(tls.ring, -1);
	horizon_moved();
	int out = det_part();
	if (out)
		uni_det_outside(tls.ring, tls.ring_idx);
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC), vt = 0;
	while (!(vt = listen_vt(a, src)) && clock_ns(CLOCK_MONOTONIC) - t0 < UNI_STORE_WAIT_NS &&
	       coordinator_alive() && atomic_load_explicit(&g_state, memory_order_relaxed) == ST_ATTACHED) {
		if (kernel_listens(a->port)) {
			vt = listen_vt(a, src);
			break;
		}
		struct timespec ts = {0, 2000000};
		uni_real.nanosleep(&ts, NULL);
	}
	if (out)
		uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
	return vt;
}

/* A connect happens in virtual-time order. First, unless a listener of
 * the session is there already, once every rank reached the caller's
 * clock: whether anybody listens is a question about the other ranks at
 * that virtual time. Answered in real time, a rank that got
 * there first in virtual time but not in real time (ranks sharing the
 * host's CPUs while they import torch) was not listening yet, and a
 * client that retries after a second took that second in virtual time
 * too. Second, a connection is not made before its listener listened: a
 * connector whose clock is earlier (it got there first in real time, or
 * learnt the address through a file) takes its time (a take naming the
 * listener's event, so unitrace replay re-times it). It is not refused: the program may not retry, and a
 * listener it found through something the shim does not see (a file) did
 * exist when it looked. */
void uni_shim_connect_hold(const struct sockaddr *addr, socklen_t len)
{
	if (!sync_active())
		return;
	int saved = errno;
	tls.in_shim++;
	if (!tls.dispatcher && !tls.poller) {
		charge();
		if (det_part())
			det_point();
		struct uni_addr a;
		uint64_t lvt = 0, src = 0;
		int waited = 0, have = to_uni_addr(addr, len, &a) == 0;
		/* A listener of the session that is there already listens at
		 * the caller's time, or the caller takes its later time: no
		 * question about the other ranks is left (in a 64-rank Gloo
		 * world's 4032 connects, waiting each time cost minutes). */
		/* Deterministic mode: a connect to the store before its listener
		 * waits in turn for it (rank 0 makes it when its clock gets
		 * there), instead of await_store's wait in real time. Nobody
		 * listening while the whole session waits (a store outside it
		 * that is not up yet): the kernel's answer. */
		if (have && g_det && g_master_port > 0 && (int)a.port == g_master_port && det_part())
			while (!listen_vt(&a, &src) && !kernel_listens(a.port)) {
				int b = uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_LISTEN, tls.vt, UINT64_MAX);
				if (b < 0 || b == 2)
					break;
			}
		if (have)
			lvt = listen_vt(&a, &src);
		if (!lvt) {
			hold_until(tls.vt);
			if (have)
				lvt = listen_vt(&a, &src);
			if (have && !lvt && g_master_port > 0 && (int)a.port == g_master_port)
				lvt = await_store(&a, &src, &waited);
		}
		/* A dependency even when it is not later now (under another
		 * network in unitrace replay it may be). */
		if (lvt)
			take_stamp(lvt, src);
		if (waited) {
			leave();
			atomic_store_explicit(&tls.ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
		}
	}
	leave();
	tls.in_shim--;
	errno = saved;
}

int uni_shim_sleep_until(clockid_t clk, uint64_t dl, uint64_t *left)
{
	struct uni_ring *r = sync_active() ? tls.ring : NULL;
	/* Deterministic mode: the thread goes on when its wake-up is the
	 * least time of the session (nothing else can come first), at once in
	 * real time. */
	if (r && det_part()) {
		tls.in_shim++;
		if (tls.pend_d || tls.pend_force)
			flush_compute(r);
		int b = uni_det_block(r, tls.ring_idx, UNI_DET_OBJ_SLEEP, tls.vt, r->wait_vdl);
		tls.in_shim--;
		*left = 0;
		if (b >= 0)
			return 0;
		/* (The turn given up: the sleep as without it.) */
	}
	uint32_t me = r ? (uint32_t)r->wait_since : 0;
	*left = 0;
	for (;;) {
		uint64_t now = uni_shim_real_ns(clk);
		if (now >= dl || (r && atomic_load_explicit(&r->warp, memory_order_acquire) == me)) {
			/* Up (or warped: the whole sleep is taken). */
			/* (A sleep of no length yields: it waits for nobody.) */
			if (r && r->wait_vdl > r->wait_vt)
				hold_until(r->wait_vdl);
			return 0;
		}
		uint64_t until = r && dl - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : dl;
		struct timespec ts = ns_ts(until);
		int e = uni_real.clock_nanosleep(clk, TIMER_ABSTIME, &ts, NULL);
		if (e == EINTR) {
			now = uni_shim_real_ns(clk);
			*left = dl > now ? dl - now : 0;
			return EINTR;
		}
		if (e)
			return e;
	}
}

void uni_shim_mutex_locked(void *m)
{
	if (!sync_active())
		return;
	tls.held[tls.nheld % UNI_HELD] = m;
	tls.nheld++;
	if (tls.dispatcher || tls.quiet)
		return;
	struct stamp_ent *e = stamp_get(m, 0);
	if (!e)
		return;
	uint64_t t = atomic_load_explicit(&e->stamp, memory_order_acquire);
	uint64_t src = atomic_load_explicit(&e->src, memory_order_relaxed);
	if (t > tls.vt) {
		uni_shim_take(t, src);
	} else if (t && src) {
		/* Not later than its clock now, but it is a dependency: under
		 * another network it may be (unitrace replay). */
		tls.in_shim++;
		emit_take(tls.vt, t, src, 0);
		tls.in_shim--;
	}
}

void uni_shim_mutex_unlocking(void *m)
{
	if (!sync_active())
		return;
	tls.released = m;
	if (tls.nheld && tls.held[(tls.nheld - 1) % UNI_HELD] == m)
		tls.nheld--;
	else if (tls.nheld)
		tls.nheld--; /* out-of-order unlock: forget the innermost */
}

/* The program's clocks ---------------------------------------------------- */


int uni_shim_vclock(void)
{
	return g_vclock && !tls.dispatcher && !tls.in_shim &&
	       atomic_load_explicit(&g_state, memory_order_relaxed) == ST_ATTACHED;
}

static uint64_t vnow_ns(void)
{
	/* Deterministic mode: a clock read is a turn (the clock it reads is
	 * the same in every run). */
	if (det_part())
		det_point();
	else
		charge();
	leave();
	return tls.vt;
}

int uni_shim_vnow(clockid_t clk, struct timespec *ts)
{
	int k = clock_kind(clk);
	if (!k)
		return -1;
	int saved = errno;
	tls.in_shim++;
	uint64_t t = vnow_ns() + (k == 1 ? g_epoch : g_epoch_real);
	ts->tv_sec = (time_t)(t / 1000000000ull);
	ts->tv_nsec = (long)(t % 1000000000ull);
	tls.in_shim--;
	errno = saved;
	return 0;
}

int uni_shim_deadline(clockid_t clk, const struct timespec *abs, struct timespec *real, uint64_t *vdl)
{
	int k = clock_kind(clk);
	if (!k || !abs || abs->tv_sec < 0 || (uint64_t)abs->tv_sec > UNI_SLEEP_FOREVER_S)
		return -1; /* none, or "for ever": the caller's as it is */
	int saved = errno;
	tls.in_shim++;
	uint64_t base = k == 1 ? g_epoch : g_epoch_real;
	uint64_t a = (uint64_t)abs->tv_sec * 1000000000ull + (uint64_t)abs->tv_nsec;
	uint64_t v = vnow_ns() + base;
	uint64_t rel = a > v ? a - v : 0;
	*vdl = (a > base ? a - base : 0);
	struct timespec now;
	uni_real.clock_gettime(clk, &now);
	uint64_t r = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + rel;
	real->tv_sec = (time_t)(r / 1000000000ull);
	real->tv_nsec = (long)(r % 1000000000ull);
	tls.in_shim--;
	errno = saved;
	return 0;
}

/* A sleep (or a wait that timed out) long enough to show, or any if
 * force: one record. */
static void idle_record(uint64_t from, uint64_t to, int force)
{
	if ((!force && to - from < UNI_COMPUTE_MIN_NS) || !sync_active())
		return;
	struct uni_ev e = {.kind = UNI_EV_IDLE, .t0 = from, .t1 = to};
	emit(&e);
}

/* The compute before an idle stretch that no uni_shim_sleeping(1)
 * charged (a futex or semaphore wait that timed out). */
static void charge_before_idle(void)
{
	if (!sync_active() || tls.dispatcher)
		return;
	tls.in_shim++;
	charge();
	tls.in_shim--;
}

/* force: recorded however short (unitrace replay's clock must have it:
 * a meeting of the simulated NCCL's ranks, which they leave at the
 * latest of their clocks). */
static void idle_until(uint64_t t, int force)
{
	charge_before_idle();
	if (t > tls.vt) {
		idle_record(tls.vt, t, force);
		tls.idled += t - tls.vt;
		tls.vt = t;
	}
	leave();
}

void uni_shim_idle_until(uint64_t t)
{
	idle_until(t, 0);
}

void uni_shim_rec_slept(uint64_t ns)
{
	tls.idled += ns;
}

void uni_shim_idle_for(uint64_t ns)
{
	charge_before_idle();
	idle_record(tls.vt, tls.vt + ns, 0);
	tls.vt += ns;
	tls.idled += ns;
	leave();
}

/* Virtual connections (shim/nccl.c) ------------------------------------ */

int uni_shim_simulating(void)
{
	return g_mode == UNI_MODE_SIMULATE && atomic_load_explicit(&g_state, memory_order_relaxed) == ST_ATTACHED;
}

int uni_shim_nccl_config(uint64_t *latency_ns, double *bandwidth_bps)
{
	if (!uni_shim_simulating()) {
		*latency_ns = 0;
		*bandwidth_bps = 1e9;
		return 0;
	}
	*latency_ns = g_hdr->net_latency_ns;
	*bandwidth_bps = g_hdr->net_bandwidth_bps > 0 ? g_hdr->net_bandwidth_bps : 1e9;
	return (int)g_hdr->nccl_algo;
}

int uni_shim_nccl_proto(void)
{
	return uni_shim_simulating() ? (int)g_hdr->nccl_proto : 0;
}

double uni_shim_slowdown(void)
{
	return g_slowdown;
}

int uni_shim_kernel_rule(uint32_t i, char *match, size_t n, double *slowdown)
{
	if (!uni_shim_simulating() || i >= g_hdr->nkernels || i >= UNI_SHM_MAX_KERNELS || !n)
		return -1;
	const struct uni_shm_kernel *k = &uni_shm_kernels(g_hdr)[i];
	size_t len = strnlen(k->match, sizeof(k->match));
	if (len >= n)
		len = n - 1;
	memcpy(match, k->match, len);
	match[len] = 0;
	*slowdown = k->slowdown;
	return 0;
}

int uni_shim_world(void)
{
	return g_world;
}

int uni_shim_rank(void)
{
	return g_rank;
}

uint32_t uni_shim_nccl_nodes(uint32_t *intra)
{
	if (!uni_shim_simulating()) {
		*intra = 0; /* nvlink */
		return 1;
	}
	*intra = g_hdr->nccl_intra;
	return g_hdr->nccl_ppn ? g_hdr->nccl_ppn : 1;
}

uint32_t uni_shim_vconn_open(const struct uni_addr *local, const struct uni_addr *peer, int node, int peer_node,
			     uint32_t flags)
{
	if (!uni_shim_simulating())
		return 0;
	int saved = errno;
	tls.in_shim++;
	uint32_t idx = atomic_fetch_add(&g_hdr->next_conn, 1), r = 0;
	if (idx >= g_hdr->max_conns) {
		if (!atomic_exchange(&g_warned_conns, 1))
			uni_shim_log("rank %d: connection table full (%u in the session); further connections are "
				     "not modelled", g_rank, g_hdr->max_conns);
		goto out;
	}
	struct uni_conn *c = uni_shm_conn(g_hdr, idx);
	c->rank = node >= 0 && (uint32_t)node < g_hdr->max_ranks ? node : g_rank;
	c->fd = -1;
	c->vpeer1 = peer_node >= 0 && (uint32_t)peer_node < g_hdr->max_ranks ? peer_node + 1 : 0;
	c->flags = flags;
	c->local = *local;
	c->peer = *peer;
	atomic_store(&c->peer_rank, -1);
	atomic_store_explicit(&c->state, UNI_CONN_OPEN, memory_order_release);
	uint64_t now = tls.vt;
	struct uni_ev e = {.kind = UNI_EV_CONN_OPEN, .conn = idx, .t0 = now, .t1 = now, .a = (uint64_t)-1};
	emit(&e);
	r = idx + 1;
out:
	tls.in_shim--;
	errno = saved;
	return r;
}

void uni_shim_vwant(uint32_t idx1, uint64_t end)
{
	if (!idx1 || !uni_shim_simulating() || !g_horizon || !thread_ring())
		return;
	int saved = errno;
	tls.in_shim++;
	struct uni_ev e = {.kind = UNI_EV_WANT, .conn = idx1 - 1, .off = end};
	push(tls.ring, &e);
	tls.in_shim--;
	errno = saved;
}

void uni_shim_vconn_busy(uint32_t idx1, int on)
{
	if (idx1 && uni_shim_simulating() && idx1 <= g_hdr->max_conns)
		atomic_store_explicit(&uni_shm_conn(g_hdr, idx1 - 1)->vbusy, on ? 1u : 0u, memory_order_release);
}

void uni_shim_vconn_close(uint32_t idx1, uint64_t sent, uint64_t received)
{
	if (!idx1 || !uni_shim_simulating())
		return;
	int saved = errno;
	tls.in_shim++;
	struct uni_ev e = {.kind = UNI_EV_CONN_CLOSE, .conn = idx1 - 1, .t0 = tls.vt, .t1 = tls.vt,
			   .a = sent, .b = received};
	emit(&e);
	tls.in_shim--;
	errno = saved;
}

uint64_t uni_shim_vt_charge(void)
{
	return uni_shim_simulating() ? uni_shim_thread_vt() : 0;
}

uint64_t uni_shim_vt_start(void)
{
	if (!uni_shim_simulating())
		return 0;
	uint64_t vt = uni_shim_thread_vt();
	/* (Where its last event is a COMPUTE and none is pending, the
	 * operation starts right after one already: the turn's in
	 * deterministic mode, which a --compute-from replay of it writes at
	 * the same place. A second one there, which the recording had not,
	 * made the replay leave the recorded run.) */
	if (tls.ring && !tls.dispatcher && (tls.pend_d || tls.pend_force || !tls.last_compute)) {
		if (!tls.pend_d && !tls.pend_force)
			tls.pend_t0 = tls.vt;
		tls.pend_force = 1;
	}
	return vt;
}

void uni_shim_vsend(uint32_t idx1, uint64_t off, uint64_t len, uint64_t stamp, uint64_t clock)
{
	if (!idx1 || !uni_shim_simulating())
		return;
	int saved = errno;
	tls.in_shim++;
	/* How far the stamp is from the clock unitrace replay will have
	 * here: the protocol's latencies (a send that waited for an earlier
	 * arrival than the latest: less than none). UINT64_MAX: not known. */
	if (clock != UINT64_MAX) {
		struct uni_ev d = {.kind = UNI_EV_DELAY, .conn = idx1 - 1, .t0 = stamp, .t1 = stamp,
				   .a = stamp - clock};
		emit(&d);
	}
	struct uni_ev e = {.kind = UNI_EV_SEND, .conn = idx1 - 1, .t0 = stamp, .t1 = stamp, .off = off, .len = len};
	emit(&e);
	ring_bell();
	/* Deterministic mode: the bytes are written (its reader in turn
	 * looks at this, det_vrecv); under nic the network in turn is final
	 * no further than their stamp (without this, an empty network stayed
	 * final for ever and never moved to them). */
	if (UNI_UNLIKELY(g_det) && uni_det_live()) {
		if (g_horizon)
			uni_det_net_sent(stamp);
		det_written(idx1 - 1, off + len, 0);
	}
	tls.in_shim--;
	errno = saved;
}

static int det_vrecv(int n, const uint32_t *idx1, const uint64_t *off, const uint64_t *len, uint64_t *t,
		     int *which);

/* n request numbers of this thread: the first (never 0, which tags no
 * group) of n in a row. */
static uint32_t take_reqs(uint32_t n)
{
	if (tls.req_seq + 1 == 0)
		tls.req_seq++;
	uint32_t first = tls.req_seq + 1;
	tls.req_seq += n;
	return first;
}

/* Read requests first .. first+n-1 (connection idx1[i], bytes [off[i],
 * off[i] + len[i])), of group tag (0: none; unid answers one of a group). */
static void push_reads(struct uni_ring *r, uint32_t first, int n, const uint32_t *idx1, const uint64_t *off,
		       const uint64_t *len, uint32_t tag, int partial)
{
	for (int i = 0; i < n; i++) {
		struct uni_ev e = {.kind = UNI_EV_READ_REQ, .conn = idx1[i] - 1, .t0 = tls.vt, .t1 = tls.vt,
				   .off = off[i], .len = len[i], .a = first + (uint32_t)i, .b = tag,
				   .flags = partial && tag ? UNI_EVF_PARTIAL : 0};
		push(r, &e);
	}
}

uint64_t uni_shim_vrecv_any(int n, const uint32_t *idx1, const uint64_t *off, const uint64_t *len, int *which,
			    int partial)
{
	*which = 0;
	if (n <= 0 || !uni_shim_simulating())
		return tls.vt;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	uint64_t t = tls.vt;
	int in_turn = 0;
	if (r && UNI_UNLIKELY(g_det) && det_part()) {
		in_turn = det_vrecv(n, idx1, off, len, &t, which);
		if (!in_turn && getenv("UNI_DET_DEBUG"))
			uni_shim_log("det_vrecv: rank %d: unid answers (n %d, conn %u)", g_rank, n, idx1[0] - 1);
	}
	if (r && !in_turn) {
		uint32_t first = take_reqs((uint32_t)n);
		wait_read(r, idx1[0] - 1, uni_now_ns(), tls.vt, first + (uint32_t)n - 1); /* before unid can answer */
		push_reads(r, first, n, idx1, off, len, n > 1 ? first : 0, partial);
		t = await_any(r, first, (uint32_t)n, tls.vt, which);
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	}
	tls.in_shim--;
	errno = saved;
	return t;
}

uint32_t uni_shim_vrecv_post(int n, const uint32_t *idx1, const uint64_t *off, const uint64_t *len, int partial)
{
	if (n <= 0 || n > UNI_READ_GROUP_MAX || !uni_shim_simulating() || (UNI_UNLIKELY(g_det) && det_part())) {
		if (tls.ring) /* (no group of its own any more) */
			atomic_store_explicit(&tls.ring->async_tag, 0, memory_order_release);
		return 0;
	}
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	uint32_t tag = 0;
	if (r) {
		/* A group even of one (UNI_EV_READ_CANCEL drops a group). */
		tag = take_reqs((uint32_t)n);
		push_reads(r, tag, n, idx1, off, len, tag, partial);
		/* (Its requests first: unid takes them after it read this.) */
		r->async_n = (uint32_t)n;
		atomic_store_explicit(&r->async_tag, tag, memory_order_release);
		ring_bell();
	}
	tls.in_shim--;
	errno = saved;
	return tag;
}

int uni_shim_vrecv_poll(uint32_t tag, int n, uint64_t *t, int *which)
{
	struct uni_ring *r = tls.ring;
	if (!tag || !r)
		return 0;
	uint32_t cur = atomic_load_explicit(&r->resp_seq, memory_order_acquire);
	tls.resp_seen = cur;
	if (cur - tag >= (uint32_t)n)
		return 0;
	*which = (int)(cur - tag);
	*t = r->resp_t;
	return 1;
}

int uni_shim_wait_words(int n, _Atomic uint32_t *const *w, const uint32_t *v, int answer, int ms)
{
#ifdef SYS_futex_waitv
	/* 0: not known yet; 1: the kernel has it; 2: it has not, or refused
	 * it (a seccomp filter), or UNI_NO_FUTEX_WAITV=1 (tests: the polls of
	 * older kernels). */
	static _Atomic int nosys;
	struct uni_ring *r = tls.ring;
	int ns = atomic_load_explicit(&nosys, memory_order_relaxed);
	if (UNI_UNLIKELY(!ns)) {
		const char *e = getenv("UNI_NO_FUTEX_WAITV");
		ns = e && *e == '1' ? 2 : 1;
		atomic_store_explicit(&nosys, ns, memory_order_relaxed);
	}
	if ((answer && !r) || ns == 2 || n < 0 || n + answer > UNI_WAIT_WORDS_MAX + 1 || n + answer == 0)
		return -1;
	int saved = errno;
	/* Shared futexes (no FUTEX_PRIVATE_FLAG): the words lie in memory
	 * other processes map (a communicator's segment, the session's
	 * ring), where peers and unid wake them with FUTEX_WAKE. The answer
	 * word as the caller last saw it (not now: an answer that came since
	 * would not wake the wait). */
	struct futex_waitv fw[UNI_WAIT_WORDS_MAX + 1];
	memset(fw, 0, sizeof(fw));
	for (int i = 0; i < n; i++)
		fw[i] = (struct futex_waitv){.val = v[i], .uaddr = (uint64_t)(uintptr_t)w[i], .flags = FUTEX_32};
	if (answer)
		fw[n] = (struct futex_waitv){
			.val = tls.resp_seen, .uaddr = (uint64_t)(uintptr_t)&r->resp_seq, .flags = FUTEX_32};
	uint64_t until = uni_now_ns() + (uint64_t)ms * 1000000ull;
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull), .tv_nsec = (long)(until % 1000000000ull)};
	long rc = syscall(SYS_futex_waitv, fw, (unsigned)(n + answer), 0u, &ts, CLOCK_MONOTONIC);
	if (rc < 0 && errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR) {
		/* (Any other answer, ENOSYS or a filter's EPERM, every time:
		 * returning 0 would make the callers spin.) */
		atomic_store_explicit(&nosys, 2, memory_order_relaxed);
		errno = saved;
		return -1;
	}
	errno = saved;
	return 0;
#else
	(void)n;
	(void)w;
	(void)v;
	(void)answer;
	(void)ms;
	return -1;
#endif
}

int uni_shim_wait_word_or_answer(_Atomic uint32_t *w, uint32_t v, int ms)
{
	return uni_shim_wait_words(1, &w, &v, 1, ms);
}

uint64_t uni_shim_vrecv_wait(uint32_t tag, int n, int *which)
{
	*which = 0;
	struct uni_ring *r = tls.ring;
	if (!tag || !r)
		return tls.vt;
	int saved = errno;
	tls.in_shim++;
	uint64_t t = await_any(r, tag, (uint32_t)n, tls.vt, which);
	tls.in_shim--;
	errno = saved;
	return t;
}

void uni_shim_await_note(void (*fn)(void *), void *arg)
{
	tls.await_fn = fn;
	tls.await_arg = arg;
}

void uni_shim_vrecv_cancel(uint32_t tag)
{
	struct uni_ring *r = tls.ring;
	if (!tag || !r)
		return;
	int saved = errno;
	tls.in_shim++;
	uint32_t seq = take_reqs(1);
	struct uni_ev e = {.kind = UNI_EV_READ_CANCEL, .t0 = tls.vt, .t1 = tls.vt, .a = seq, .b = tag};
	push(r, &e);
	ring_bell();
	await_answer(r, seq, tls.vt);
	atomic_store_explicit(&r->async_tag, 0, memory_order_release);
	tls.in_shim--;
	errno = saved;
}

void uni_shim_quiet_io(int on)
{
	tls.in_shim += on ? 1 : -1;
}

void uni_shim_vt_settle(uint64_t t)
{
	if (!uni_shim_simulating())
		return;
	take_stamp(t, 0);
	leave(); /* the CPU spent since the last charge is nobody's compute */
}

/* Gloo's buffer completions (shim/gloo_buffers.c) -------------------- */

uint64_t uni_shim_quiet_begin(int completing)
{
	tls.quiet++;
	return completing ? uni_shim_thread_vt() : 0;
}

void uni_shim_quiet_end(void)
{
	tls.quiet--;
}

uint64_t uni_shim_signal(const void *obj, uint64_t t)
{
	if (!sync_active() || !t)
		return 0;
	/* A thread with a clock of its own handing on that clock: its
	 * position among its events (UNI_SRC_POS) says as much and costs no
	 * event. CPython's locks are semaphores, released thousands of times
	 * a run by the one Python thread (a third of the main job's records
	 * were such signals before). A dispatcher hands on the time of the
	 * event it handles, which its position does not give. */
	uint64_t pos;
	if (!tls.dispatcher && t == tls.vt && (pos = own_position()) != 0)
		return pos;
	int saved = errno;
	tls.in_shim++;
	uint64_t id = emit_signal((uint64_t)(uintptr_t)obj, t);
	tls.in_shim--;
	errno = saved;
	return id;
}

uint64_t uni_shim_take_send_token(void)
{
	uint64_t t = tls.sent_token;
	tls.sent_token = 0;
	return t;
}

void uni_shim_waiting_send(int on)
{
	if (sync_active() && tls.ring)
		atomic_store_explicit(&tls.ring->wait_sending, on ? 1u : 0u, memory_order_release);
}

void uni_shim_send_done(uint64_t token)
{
	if (!token || !sync_active() || tls.dispatcher)
		return;
	uint64_t stamp;
	if (g_hdr->sched_off && sent_stamp_get(token, &stamp) &&
	    sent_local((uint32_t)(token >> 48) - 1, token & ((1ull << 48) - 1), stamp))
		return;
	int saved = errno;
	tls.in_shim++;
	struct uni_ring *r = thread_ring();
	if (r) {
		charge();
		uint32_t seq = ++tls.req_seq;
		uint32_t conn = (uint32_t)(token >> 48) - 1;
		struct uni_ev e = {.kind = UNI_EV_SENT_REQ, .conn = conn, .t0 = tls.vt, .t1 = tls.vt,
				   .off = token & ((1ull << 48) - 1), .a = seq};
		wait_read(r, conn, uni_now_ns(), tls.vt, seq); /* before unid can answer */
		push(r, &e);
		ring_bell();
		take_stamp(det_net_waits(conn) ? det_net_answer(r, seq, tls.vt) : await_answer(r, seq, tls.vt),
			   0); /* the SENT record is the dependency */
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
		leave();
	}
	tls.in_shim--;
	errno = saved;
}

void uni_shim_take(uint64_t t, uint64_t src)
{
	if (!sync_active() || tls.dispatcher)
		return;
	int saved = errno;
	tls.in_shim++;
	charge();
	take_stamp(t, src);
	leave();
	tls.in_shim--;
	errno = saved;
}

/* pthread_join -------------------------------------------------------- */

void *uni_shim_join_key(pthread_t th)
{
	return (void *)((uintptr_t)th | 1u);
}

/* The exiting thread (its TSD destructor, simulate mode): its compute up
 * to here, then its clock stamped for whoever joins it, and that joiner's
 * wake floor (it does not hold the nic horizon while it waits). */
static void joinable_end(void)
{
	if (det_part())
		det_charge();
	else
		charge();
	void *key = uni_shim_join_key(pthread_self());
	struct stamp_ent *e = stamp_get(key, 1);
	if (!e)
		return;
	uint64_t id = emit_signal((uint64_t)(uintptr_t)key, tls.vt);
	atomic_store_explicit(&e->stamp, tls.vt, memory_order_relaxed);
	atomic_store_explicit(&e->src, id, memory_order_release);
	if (g_horizon)
		set_wake_floors(key, tls.vt);
}

static void join_forget(pthread_t th)
{
	struct stamp_ent *e = stamp_get(uni_shim_join_key(th), 0);
	if (e) {
		atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
		atomic_store_explicit(&e->stamp, 0, memory_order_relaxed);
		atomic_store_explicit(&e->src, 0, memory_order_release);
	}
}

void uni_shim_joined(pthread_t th)
{
	struct stamp_ent *e = sync_active() ? stamp_get(uni_shim_join_key(th), 0) : NULL;
	if (!e)
		return;
	uint64_t src = atomic_load_explicit(&e->src, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&e->stamp, memory_order_relaxed);
	join_forget(th); /* the next thread with this pthread_t starts afresh */
	if (t)
		uni_shim_take(t, src);
}

static void mark_poller(void)
{
	if (!tls.poller && !tls.sent && g_horizon && syscall(SYS_gettid) != g_pid)
		tls.poller = 1;
}

/* A wait for I/O: published with its virtual deadline when it has a
 * time-out that moves the clock (uni_shim_io_timed_out), else none (a
 * deadline left from an earlier wait held the nic network back, and a
 * sleep that unid ended early could pass a time-out that comes first). */
static void poll_wait_publish(struct uni_ring *r, int64_t timeout_ns)
{
	r->wait_deadline = 0;
	r->wait_vdl = timeout_ns > 0 && timeouts_take_time() ? tls.vt + (uint64_t)timeout_ns : 0;
	atomic_store_explicit(&r->wait_kind, UNI_WAIT_POLL, memory_order_release);
}

/* Deterministic mode: a poll that may wait waits outside the turn (the
 * turn does not follow readiness yet); back in turn in uni_shim_epoll_exit. */
static void det_poll_outside(int64_t timeout_ns)
{
	if (timeout_ns != 0 && !tls.det_out && det_part()) {
		tls.det_out = 1;
		uni_det_outside(tls.ring, tls.ring_idx);
	}
}

int uni_shim_epoll_enter(int64_t timeout_ns)
{
	tls.det_polled = 0; /* (the kernel answers this one) */
	if (g_mode != UNI_MODE_SIMULATE || atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return 0;
	int saved = errno;
	tls.in_shim++;
	tls.loop = 1;
	mark_poller();
	if (tls.starved) {
		/* Its last read found nothing final: wait for the network to
		 * move (or 2 ms) instead of spinning through epoll. */
		tls.starved = 0;
		uni_futex_wait(&g_hdr->final_seq, tls.starved_seq, 2);
	}
	if (tls.dispatcher) {
		/* Between events an event loop carries no time: an idle tick,
		 * or a wake-up with nobody waiting, pushes nobody's clock. */
		tls.vt = 0;
		tls.last_conn = 0;
		publish_vt();
	} else {
		/* A loop that has not read a modelled byte yet keeps its clock,
		 * but while it waits for I/O it does not hold the horizon back
		 * (its clock would creep with every idle tick's CPU). */
		charge();
		if (tls.ring)
			poll_wait_publish(tls.ring, timeout_ns);
	}
	det_poll_outside(timeout_ns);
	horizon_moved();
	tls.in_shim--;
	errno = saved;
	return 1;
}

static ssize_t det_read_clamp(struct shim_conn *sc, int fd, size_t n, int flags);

ssize_t uni_shim_read_clamp(uint32_t slot1, int fd, size_t n, int flags)
{
	if (UNI_UNLIKELY(g_det) && (flags & MSG_WAITALL) && det_part() && !tls.det_out) {
		/* Not clamped: if the kernel has less than asked, the read waits
		 * outside the turn (back in turn in uni_shim_io_end). */
		int saved = errno, avail = 0;
		if (uni_real.ioctl(fd, FIONREAD, &avail) == 0 && (size_t)avail < n) {
			tls.in_shim++;
			tls.det_out = 1;
			uni_det_outside(tls.ring, tls.ring_idx);
			tls.in_shim--;
		}
		errno = saved;
		return (ssize_t)n;
	}
	if (UNI_UNLIKELY(g_det) && !(flags & MSG_WAITALL) && det_part()) {
		int saved = errno;
		tls.in_shim++;
		ssize_t k = det_read_clamp(&g_conns[slot1 - 1], fd, n, flags);
		leave();
		tls.in_shim--;
		errno = saved;
		return k;
	}
	if (!g_horizon)
		return (ssize_t)n; /* (the rest is nic's; on for the turn's reads) */
	if (!tls.loop || n == 0 || (flags & MSG_WAITALL) ||
	    atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return (ssize_t)n;
	struct shim_conn *sc = &g_conns[slot1 - 1];
	struct uni_conn *c = uni_shm_conn(g_hdr, sc->shm_idx);
	if (atomic_load_explicit(&c->state, memory_order_acquire) != UNI_CONN_MATCHED)
		return (ssize_t)n;
	uint64_t fin = atomic_load_explicit(&c->final_off, memory_order_acquire);
	uint64_t rx = atomic_load_explicit(&sc->rx, memory_order_relaxed);
	if (fin > rx)
		return (ssize_t)(n < fin - rx ? n : fin - rx);
	/* Nothing final: a non-blocking socket says EAGAIN (the loop comes
	 * back when the network has moved); a blocking one reads and waits
	 * for the arrival as before. */
	int saved = errno;
	int fl = uni_real.fcntl(fd, F_GETFL);
	errno = saved;
	if (!(flags & MSG_DONTWAIT) && (fl < 0 || !(fl & O_NONBLOCK)))
		return (ssize_t)n;
	tls.starved_seq = atomic_load_explicit(&g_hdr->final_seq, memory_order_acquire);
	horizon_moved();
	/* Read again: it may have grown since (then the next call takes it). */
	fin = atomic_load_explicit(&c->final_off, memory_order_acquire);
	if (fin > rx)
		return (ssize_t)(n < fin - rx ? n : fin - rx);
	tls.starved = 1;
	return -1;
}

int uni_shim_poll_enter(int64_t timeout_ns)
{
	tls.det_polled = 0;
	if (g_mode != UNI_MODE_SIMULATE || atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED ||
	    tls.dispatcher || !tls.ring)
		return 0;
	int saved = errno;
	tls.in_shim++;
	mark_poller();
	charge();
	poll_wait_publish(tls.ring, timeout_ns);
	det_poll_outside(timeout_ns);
	tls.in_shim--;
	errno = saved;
	return 1;
}

void uni_shim_epoll_exit(void)
{
	if (!tls.ring || atomic_load_explicit(&g_state, memory_order_relaxed) != ST_ATTACHED)
		return;
	if (tls.det_out) {
		int saved = errno;
		tls.in_shim++;
		tls.det_out = 0;
		charge();
		uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
		tls.in_shim--;
		errno = saved;
	}
	if (atomic_load_explicit(&tls.ring->wait_kind, memory_order_relaxed) == UNI_WAIT_POLL) {
		int saved = errno;
		tls.in_shim++;
		leave();
		atomic_store_explicit(&tls.ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
		tls.in_shim--;
		errno = saved;
	}
}

int uni_shim_io_timeout_hold(uint64_t ns)
{
	if (!timeouts_take_time() || !sync_active() || !tls.ring || tls.dispatcher || tls.poller ||
	    tls.gen != atomic_load_explicit(&g_gen, memory_order_relaxed))
		return 0;
	int saved = errno;
	tls.in_shim++;
	uint64_t w = ns > UINT64_MAX - tls.vt ? UINT64_MAX : tls.vt + ns;
	/* It acts no earlier than the end of its time-out. */
	atomic_store_explicit(&tls.ring->vt_pub, w, memory_order_release);
	hold_until(w);
	leave();
	tls.in_shim--;
	errno = saved;
	return 1;
}

void uni_shim_io_timed_out(uint64_t ns)
{
	/* (Gloo's loop thread, before its first read, ticks with short
	 * time-outs: its clock must not creep.) */
	if (!timeouts_take_time() || !sync_active() || !tls.ring)
		return;
	int saved = errno;
	tls.in_shim++;
	uni_shim_idle_for(ns);
	tls.in_shim--;
	errno = saved;
}

static void conn_unref(uint32_t slot1)
{
	struct shim_conn *sc = &g_conns[slot1 - 1];
	if (atomic_fetch_sub(&sc->refs, 1) != 1)
		return;
	if (atomic_load(&g_state) != ST_ATTACHED)
		return;
	uint64_t now = g_mode == UNI_MODE_SIMULATE ? tls.vt : shim_now();
	struct uni_ev e = {.kind = UNI_EV_CONN_CLOSE, .conn = sc->shm_idx, .t0 = now, .t1 = now,
			   .a = atomic_load(&sc->tx), .b = atomic_load(&sc->rx)};
	emit(&e);
	if (g_mode == UNI_MODE_SIMULATE)
		det_written(sc->shm_idx, 0, 1);
}

void uni_shim_fd_closed(int fd)
{
	int saved = errno;
	tls.in_shim++;
	uint32_t s = uni_fd_take(fd);
	if (s && !(s & UNI_FD_CHAN))
		conn_unref(s);
	tls.in_shim--;
	/* A channel's end closed (its reader sees the end, a poll in turn
	 * looks again: the kernel's answer). */
	if (s & UNI_FD_CHAN)
		uni_shim_det_polled();
	errno = saved;
}

void uni_shim_fd_flags_changed(int fd)
{
	uint32_t s = uni_fd_get(fd);
	if (s && !(s & UNI_FD_CHAN)) {
		atomic_fetch_add_explicit(&g_conns[s - 1].nb_gen, 1, memory_order_acq_rel);
		atomic_store_explicit(&g_conns[s - 1].nb, 0, memory_order_release);
	}
}

void uni_shim_fd_duped(int oldfd, int newfd)
{
	int saved = errno;
	tls.in_shim++;
	uint32_t s = uni_fd_get(oldfd);
	if (oldfd != newfd && (unsigned)newfd < UNI_FD_MAX) {
		if (s && !(s & UNI_FD_CHAN))
			atomic_fetch_add(&g_conns[s - 1].refs, 1);
		/* dup2/dup3 onto a tracked fd closes that one implicitly. */
		uint32_t prev = uni_fd_set(newfd, s);
		if (prev && !(prev & UNI_FD_CHAN))
			conn_unref(prev);
	}
	tls.in_shim--;
	errno = saved;
}

/* Deterministic mode (det.h; docs/simulate.md "Deterministic mode") ----- */

/* The calling thread takes part in the turn (it has a ring that the turn
 * counts, and it is not an event loop between events). */
static int det_part(void)
{
	return g_det && uni_det_live() && !tls.det_done && tls.ring &&
	       tls.gen == atomic_load_explicit(&g_gen, memory_order_relaxed) &&
	       atomic_load_explicit(&tls.ring->det_st, memory_order_relaxed) != UNI_DET_NONE &&
	       atomic_load_explicit(&g_state, memory_order_relaxed) == ST_ATTACHED;
}

/* ... after charging its compute (which claims its ring): the wrappers'
 * test. Not inside Gloo's buffer calls (quiet): their waits go outside. */
static int det_me(void)
{
	if (!g_det || tls.quiet || tls.det_done || !sync_active())
		return 0;
	thread_ring();
	return det_part();
}

/* The wrappers' test, from outside the shim: the calling thread takes
 * part in the turn now. */
static int det_take_part(void)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim)
		return 0;
	int saved = errno;
	tls.in_shim++;
	int me = det_me();
	tls.in_shim--;
	errno = saved;
	return me;
}

/* The compute since its last turn goes on its clock (at a turn). */
static void det_charge(void)
{
	tls.det_at = 1;
	charge();
	tls.det_at = 0;
}

/* The thread's turn at its clock. What it computed since its last event
 * goes out first as an event of its own: a replay (--compute-from, whose
 * compute is taken per event) then reaches this point with the same clock
 * as the recorded run, and takes the same turns. */
#define DET_CF_SPIN_NS 50000u

static void det_point(void)
{
	/* Replaying: turns again and again with no event of its own since
	 * the last (the recorded run's next event was not compute, so it took
	 * none) while its CPU time grows: the recorded run would have had
	 * compute here (a turn flushes what was computed since the last), so
	 * this thread left it (a loop the recording did not make, which would
	 * turn at one clock for ever). (A turn or two with next to no CPU in
	 * between: the recording may have had them too.) */
	if (UNI_UNLIKELY(tls.cf) && tls.cf_tp == tls.nev + 1 && tls.cf_at == tls.nev + 1) {
		/* The program's CPU only: the thread's own CPU also counts the
		 * shim's, as it waited for its turn (a look at the owner each
		 * 10 ms reads /proc): a thread that waited long for one turn
		 * was taken for one that spun, and left the recorded run (the
		 * TCPStore's daemon at its last close, once in about 30 replays with the
		 * host's timing shaken, UNI_DET_FUZZ). */
		uint64_t w;
		if (tls.cf_prog + (cpu_reading(&w) - tls.cpu_mark) > DET_CF_SPIN_NS)
			cf_leave("turned again and again without an event where the recorded run had compute");
	}
	tls.cf_tp = tls.nev + 1;
	det_charge();
	if (tls.pend_d || tls.pend_force)
		flush_compute(tls.ring);
	uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
	/* The turn's own work (its lock, the hand-off's wake-up, the event
	 * just pushed) is not the program's compute: at 20,000 turns of the
	 * main job's main threads it was 0.5 s of each (the time per token
	 * 8% above the prediction without the turn). */
	uni_shim_det_resumed();
}

void uni_shim_det_turn(void)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim)
		return;
	int saved = errno;
	tls.in_shim++;
	if (det_me()) {
		det_point();
		leave();
	}
	tls.in_shim--;
	errno = saved;
}

/* Mutexes and condition variables order the threads of one process:
 * with only one taking part there is nothing to order (Python's import
 * takes 100,000 mutexes), and the count is the same in every run (threads
 * begin and end in turn). */
static inline int det_sync(void)
{
	return atomic_load_explicit(&g_det_threads, memory_order_relaxed) > 1;
}

/* The thread waits in turn for a mutex another thread holds: it goes on
 * from the unlock (takes the unlocker's time, a hand-off in the trace).
 * Without the turn a mutex carries no time (which thread waited is the
 * host's); with it, who waited is the program's. */
static int det_mutex_held(uint64_t obj)
{
	return ((pthread_mutex_t *)(uintptr_t)(obj & ~(uint64_t)3))->__data.__lock != 0;
}

/* How long past the holder's clock an event loop waits in turn for a
 * busy mutex it tried before it hears EBUSY (uni_shim_det_mutex_lock). */
#define DET_SKIP_NS 100000ull

/* The clock of the thread of this process tid in turn (the time it waits
 * for the turn at, or blocked at), else at: read while the caller has the
 * turn, so the holder does not move. */
static uint64_t det_clock_of(int tid, uint64_t at)
{
	uint32_t n = atomic_load_explicit(&g_nmyrings, memory_order_acquire);
	for (uint32_t i = 0; i < n && i < UNI_MAX_RINGS; i++) {
		struct uni_ring *r = uni_shm_ring(g_hdr, g_myrings[i]);
		if (r->tid != tid || r->pid != g_pid ||
		    atomic_load_explicit(&r->state, memory_order_acquire) != UNI_RING_LIVE)
			continue;
		uint32_t st = atomic_load_explicit(&r->det_st, memory_order_relaxed);
		uint64_t t = st == UNI_DET_READY ? r->det_t : st == UNI_DET_BLOCKED ? r->det_wt : at;
		return t > at ? t : at;
	}
	return at;
}

static int det_mutex_wait(pthread_mutex_t *m, uint64_t until)
{
	struct uni_ring *r = tls.ring;
	uni_det_block_begin(r, tls.ring_idx, (uint64_t)(uintptr_t)m | UNI_DET_OBJ_MUTEX, tls.vt, until);
	int b = uni_det_block_wait(r, tls.ring_idx, det_mutex_held);
	if (b > 0 && r->det_t > tls.vt && !tls.dispatcher) /* (a dispatcher's time is its events') */
		take_stamp(r->det_t, r->det_src);
	return b;
}

/* The mutex taken in turn (as pthread_mutex_lock returns); once the turn
 * is given up, the kernel's lock. */
static int det_mutex_take(pthread_mutex_t *m)
{
	for (;;) {
		int rc = uni_real.mutex_trylock(m);
		if (rc != EBUSY)
			return rc;
		if (m->__data.__owner == (int)tls.tid || det_mutex_wait(m, UINT64_MAX) < 0)
			/* Its own (EDEADLK, or a hang, as without the shim), or
			 * the turn given up. */
			return uni_real.mutex_lock(m);
	}
}

/* A wake-up of the first waiter on obj at the caller's clock, with a
 * SIGNAL event it takes when there is one. */
static void det_wake_one(uint64_t obj)
{
	uint64_t id = tls.ring && !tls.dispatcher ? next_id() : 0;
	if (uni_det_wake(obj, tls.vt, 0, id) && id)
		emit_signal(obj, tls.vt);
}

int uni_shim_det_mutex_lock(pthread_mutex_t *m, int try)
{
	if (!det_sync() || !det_take_part())
		return -1;
	int saved = errno;
	tls.in_shim++;
	det_point();
	int rc = try ? uni_real.mutex_trylock(m) : det_mutex_take(m);
	uint64_t until;
	if (rc == EBUSY && tls.dispatcher && m->__data.__owner != (int)tls.tid &&
	    det_mutex_wait(m, until = det_clock_of(m->__data.__owner, tls.vt) + DET_SKIP_NS) == 0)
		/* An event loop that skips a busy mutex and polls again (Gloo's
		 * loop: the event comes back, level-triggered) would spin at
		 * its clock, the least of the session, and the holder would
		 * never get the turn to release it: it waits in turn for the
		 * unlock, then hears EBUSY (it was busy). Not for ever: the
		 * holder may wait for the loop (Gloo's pair teardown holds the
		 * pair's mutex until the loop ticks once more): DET_SKIP_NS
		 * past the holder's clock it hears EBUSY, at that clock, and
		 * ticks. */
		tls.vt = until;
	leave();
	tls.in_shim--;
	errno = saved;
	return rc;
}

/* A thread of CUDA's (uni_shim_device_thread), outside the shim's own
 * code: it takes no part in the turn, but its unlock or signal still
 * wakes a waiter in turn, which goes on from its own clock (else it waited
 * for the turn's watchdog). */
static void device_wake(uint64_t obj, int all)
{
	if (!tls.device || tls.in_shim != 1)
		return;
	int saved = errno;
	tls.in_shim++;
	uni_det_wake(obj, 0, all, 0);
	tls.in_shim--;
	errno = saved;
}

void uni_shim_det_mutex_unlocked(pthread_mutex_t *m)
{
	if (UNI_LIKELY(!g_det) || !sync_active())
		return;
	if (tls.in_shim) {
		device_wake((uint64_t)(uintptr_t)m | UNI_DET_OBJ_MUTEX, 0);
		return;
	}
	int saved = errno;
	tls.in_shim++;
	/* A turn first: the waiter it wakes goes on from this clock. (The
	 * wake-up's look at every thread of the session is the shim's work,
	 * not compute: left before it, it was a microsecond of each unlock's.) */
	int me = det_sync() && det_me();
	if (me)
		det_point();
	det_wake_one((uint64_t)(uintptr_t)m | UNI_DET_OBJ_MUTEX);
	if (me)
		leave();
	tls.in_shim--;
	errno = saved;
}

void uni_shim_det_signal(pthread_cond_t *cv, int all)
{
	if (UNI_LIKELY(!g_det) || !sync_active())
		return;
	if (tls.in_shim) {
		device_wake((uint64_t)(uintptr_t)cv, all);
		return;
	}
	int saved = errno;
	tls.in_shim++;
	int me = det_sync() && det_me();
	if (me)
		det_point();
	/* (An event loop wakes at the time of the event it handles.) */
	uni_det_wake((uint64_t)(uintptr_t)cv, tls.vt, all, 0); /* (the condvar's stamp carries the time) */
	if (me)
		leave();
	tls.in_shim--;
	errno = saved;
}

struct det_cw {
	pthread_cond_t *cv;
	pthread_mutex_t *m;
	uint32_t tok;
};

static void det_cond_cancel(void *p)
{
	struct det_cw *w = p;
	struct uni_ring *r = tls.ring;
	uni_det_cancelable(0);
	/* A wake-up it was given goes to the next waiter (POSIX: a cancelled
	 * waiter consumes no signal); then the mutex, in turn. */
	int woken = r->det_woken && atomic_load_explicit(&r->det_st, memory_order_acquire) != UNI_DET_BLOCKED;
	uni_det_cancelled(r);
	if (woken)
		uni_det_wake((uint64_t)(uintptr_t)w->cv, tls.vt, 0, 0);
	atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	uni_det_turn(r, tls.ring_idx, tls.vt);
	det_mutex_take(w->m);
	tls.in_shim--;
	cond_wait_end(w->cv, w->m, w->tok);
}

int uni_shim_det_cond_wait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, const struct timespec *abs)
{
	if (!det_take_part())
		return -1;
	int saved = errno;
	/* A deadline the thread computed from its virtual clock: a virtual
	 * time-out (the same wait's end in every run); "for ever" (past
	 * UNI_SLEEP_FOREVER_S): none, as a semaphore's. One the turn cannot
	 * read (another clock): the wait as without the turn. */
	uint64_t vdl = UINT64_MAX, v;
	struct timespec real;
	if (abs) {
		if (abs->tv_nsec < 0 || abs->tv_nsec >= 1000000000L) {
			errno = saved;
			return EINVAL;
		}
		if (abs->tv_sec < 0) { /* long past (glibc: at once) */
			errno = saved;
			return ETIMEDOUT;
		}
		if (!deadline_forever(clk, abs)) {
			if (uni_shim_deadline(clk, abs, &real, &v) != 0) {
				errno = saved;
				return -1;
			}
			vdl = v;
		}
	}
	tls.in_shim++;
	det_point();
	tls.in_shim--;
	uint32_t tok = cond_wait_begin(cv);
	tls.in_shim++;
	struct uni_ring *r = tls.ring;
	r->wait_obj = (uint64_t)(uintptr_t)cv;
	r->wait_since = uni_now_ns();
	r->wait_deadline = 0;
	r->wait_vt = tls.vt;
	r->wait_vdl = vdl == UINT64_MAX ? 0 : vdl;
	r->stack[0] = 0;
	/* Registered as waiting before the mutex goes: a signaller that
	 * takes the mutex after finds it (POSIX: no wake-up lost). */
	uni_det_block_begin(r, tls.ring_idx, (uint64_t)(uintptr_t)cv, tls.vt, vdl);
	/* The condition wait's own release of the mutex, and its waiter. A
	 * mutex it does not hold (error-checking): EPERM, as glibc says. */
	int ur = uni_real.mutex_unlock(m);
	if (ur != 0) {
		uni_det_wake((uint64_t)(uintptr_t)cv, tls.vt, 1, 0); /* (itself, and any other: spurious) */
		uni_det_block_wait(r, tls.ring_idx, NULL);
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
		leave();
		tls.in_shim--;
		cond_wait_end(cv, m, tok);
		errno = saved;
		return ur;
	}
	det_wake_one((uint64_t)(uintptr_t)m | UNI_DET_OBJ_MUTEX);
	/* A cancellation point, as pthread_cond_wait is: cancelled, the
	 * thread takes the mutex again before its cleanup handlers run. */
	struct det_cw cw = {cv, m, tok};
	int woken;
	pthread_cleanup_push(det_cond_cancel, &cw);
	uni_det_cancelable(1);
	woken = uni_det_block_wait(r, tls.ring_idx, NULL);
	uni_det_cancelable(0);
	pthread_cleanup_pop(0);
	atomic_store_explicit(&r->wait_kind, UNI_WAIT_NONE, memory_order_release);
	if (!woken) {
		tls.in_shim--;
		uni_shim_idle_until(vdl);
		tls.in_shim++;
	}
	/* ... and its taking the mutex again (the turn given up meanwhile: a
	 * spurious wake-up, the caller waits again without it; a robust
	 * mutex's owner died: EOWNERDEAD, as glibc says). */
	int lr = det_mutex_take(m);
	leave();
	tls.in_shim--;
	cond_wait_end(cv, m, tok);
	errno = saved;
	return lr ? lr : woken ? 0 : ETIMEDOUT;
}

/* The thread of this join key has not ended yet. */
static int det_join_pending(uint64_t key)
{
	struct stamp_ent *e = stamp_get((void *)(uintptr_t)key, 0);
	return !e || !atomic_load_explicit(&e->seq, memory_order_acquire);
}

/* pthread_create: th takes part in the turn (its joiners wait in turn). */
void uni_shim_det_created(pthread_t th, int part)
{
	if (!g_det || !sync_active())
		return;
	struct stamp_ent *e = stamp_get(uni_shim_join_key(th), 1);
	if (e)
		atomic_store_explicit(&e->waiters, part ? 1u : 0u, memory_order_release);
}

int uni_shim_det_join(pthread_t th)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim)
		return 0;
	int saved = errno;
	tls.in_shim++;
	void *key = uni_shim_join_key(th);
	struct stamp_ent *e = stamp_get(key, 0);
	/* Itself (EDEADLK) or a thread that takes no part in the turn (no
	 * ring, made before the turn): the join as without it. */
	int me = !pthread_equal(th, pthread_self()) && e && atomic_load_explicit(&e->waiters, memory_order_acquire) &&
		 det_me();
	if (me) {
		det_point();
		uni_det_block_begin(tls.ring, tls.ring_idx, (uint64_t)(uintptr_t)key, tls.vt, UINT64_MAX);
		uni_det_block_wait(tls.ring, tls.ring_idx, det_join_pending);
		leave();
	}
	tls.in_shim--;
	errno = saved;
	return me;
}

/* The thread ends: its joiners go on from its end (marked on its join key:
 * a joiner that comes later does not wait), and the turn goes on without
 * it (a destructor that runs after this one takes no part). */
static void det_thread_end(struct uni_ring *r)
{
	tls.det_done = 1;
	void *key = uni_shim_join_key(pthread_self());
	struct stamp_ent *e = stamp_get(key, 1);
	if (e)
		atomic_fetch_add_explicit(&e->seq, 1, memory_order_release);
	uni_det_wake((uint64_t)(uintptr_t)key, tls.vt, 1, 0); /* (the join key's stamp carries the time) */
	atomic_fetch_sub(&g_det_threads, 1);
	uni_det_end(r, tls.ring_idx);
}

/* The process exits: none of its threads takes part any more (one that
 * still waits for the turn waits until the process is gone). */
static void det_detach(void)
{
	/* Its connections end here, in turn, for their readers: the kernel
	 * closes them when the process is gone, in real time (a poller in
	 * another rank saw the end at a moment of the host's). */
	uint32_t nc = atomic_load_explicit(&g_nconns, memory_order_acquire);
	for (uint32_t i = 0; i < nc && i < UNI_SHIM_MAX_CONNS; i++)
		if (atomic_load_explicit(&g_conns[i].refs, memory_order_acquire))
			det_written(g_conns[i].shm_idx, 0, 1);
	tls.det_done = 1;
	uint32_t n = atomic_load_explicit(&g_nmyrings, memory_order_acquire);
	for (uint32_t i = 0; i < n && i < UNI_MAX_RINGS; i++) {
		struct uni_ring *r = uni_shm_ring(g_hdr, g_myrings[i]);
		if (r->pid == g_pid && atomic_load_explicit(&r->state, memory_order_acquire) == UNI_RING_LIVE)
			uni_det_end(r, g_myrings[i]);
	}
}

int uni_shim_det_gloo_wait(uint64_t obj, long ms, int (*none)(uint64_t obj))
{
	if (UNI_LIKELY(!g_det) || tls.in_shim)
		return 1;
	int saved = errno, rc = 1;
	tls.in_shim++;
	if (det_me()) {
		det_point();
		uint64_t until = ms >= 0 && (uint64_t)ms < (UINT64_MAX - tls.vt) / 1000000u
					 ? tls.vt + (uint64_t)ms * 1000000u : UINT64_MAX;
		while (none(obj)) {
			uni_det_block_begin(tls.ring, tls.ring_idx, obj, tls.vt, until);
			int b = uni_det_block_wait(tls.ring, tls.ring_idx, none);
			if (b < 0 || b == 2)
				break; /* (given up; everybody waits: as without the turn) */
			if (b == 0) {
				tls.in_shim--;
				uni_shim_idle_until(until);
				tls.in_shim++;
				rc = 0;
				break;
			}
		}
		leave();
	}
	tls.in_shim--;
	errno = saved;
	return rc;
}

void uni_shim_det_gloo_done(uint64_t obj, uint64_t t)
{
	if (UNI_LIKELY(!g_det) || !uni_det_live())
		return;
	int saved = errno;
	tls.in_shim++;
	uni_det_wake(obj, t, 1, 0);
	tls.in_shim--;
	errno = saved;
}

/* Deterministic mode's ports: a rank's k-th bind to port 0 gets
 * DET_PORT_BASE + the session's offset + rank * DET_PORTS_RANK + k (the
 * next free one). The host's ephemeral port decided which end of a Gloo
 * pair connects and which accepts (it compares the two listeners'
 * ports), so a replay's threads met another order of events. Below the
 * kernel's ephemeral range (32768 on); the offset, a multiple of the
 * session's block (its world's ports rounded up to 256) from the
 * session's name, keeps sessions apart (64 blocks for a world of 4; before
 * session 24 there were 4, for any world) and leaves each port's low byte
 * (which Gloo's comparison of network-order ports reads first) the same.
 * Two sessions that still meet on a port: Gloo's listener sets
 * SO_REUSEADDR, so both binds succeed and the second listen fails
 * ("Address already in use", a rank's exception): that listen is made
 * again on a fresh socket bound to the rank's next port
 * (uni_shim_det_relisten). */
#define DET_PORT_BASE 16384u
#define DET_PORTS_RANK 64u
static _Atomic uint32_t g_det_binds;
static _Atomic int g_said_relisten;
/* The port of the turn's each fd was bound to (0: none, or the program's
 * own choice): only those are moved by uni_shim_det_relisten. */
static _Atomic uint16_t g_det_fdport[65536];

int uni_shim_det_bind(int fd, const struct sockaddr *addr, socklen_t len, int *ret)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || g_rank < 0 || g_rank >= 64)
		return 0;
	int saved = errno, done = 0, type = 0;
	if (fd >= 0 && fd < 65536)
		atomic_store_explicit(&g_det_fdport[fd], 0, memory_order_relaxed); /* (a bind of the program's own) */
	tls.in_shim++;
	socklen_t tl = sizeof(type);
	struct sockaddr_storage ss;
	if (!det_me() || len > sizeof(ss) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
	    type != SOCK_STREAM)
		goto out;
	memcpy(&ss, addr, len);
	in_port_t *pp = ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)
				? &((struct sockaddr_in *)&ss)->sin_port
			: ss.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)
				? &((struct sockaddr_in6 *)&ss)->sin6_port
				: NULL;
	if (!pp || *pp != 0)
		goto out;
	uint32_t h = 2166136261u;
	for (const char *c = g_hdr->session; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	uint32_t ranks = g_world > g_rank && g_world <= 64 ? (uint32_t)g_world : 64u;
	uint32_t block = (ranks * DET_PORTS_RANK + 255u) / 256u * 256u; /* (ranks 0-63: to 32767) */
	uint32_t base = DET_PORT_BASE + (h % (64u * DET_PORTS_RANK * 4u / block)) * block;
	for (int tries = 0; tries < 64; tries++) {
		uint32_t k = atomic_fetch_add(&g_det_binds, 1) % DET_PORTS_RANK;
		*pp = htons((uint16_t)(base + (uint32_t)g_rank * DET_PORTS_RANK + k));
		int r = uni_real.bind(fd, (struct sockaddr *)&ss, len);
		if (r == 0 || (errno != EADDRINUSE && errno != EACCES)) {
			if (r == 0 && fd < 65536)
				atomic_store_explicit(&g_det_fdport[fd], ntohs(*pp), memory_order_relaxed);
			*ret = r;
			saved = r ? errno : saved;
			done = 1;
			break;
		}
	}
out:
	tls.in_shim--;
	errno = saved;
	return done;
}

int uni_shim_det_relisten(int fd, int backlog)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || g_rank < 0 || g_rank >= 64 || !uni_det_live())
		return -2;
	int saved = errno, r = -2;
	tls.in_shim++;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type = 0, reuse = 0, v6only = 0;
	socklen_t tl = sizeof(type), rl = sizeof(reuse), vl = sizeof(v6only);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &rl) != 0)
		goto out;
	in_port_t *pp = ss.ss_family == AF_INET ? &((struct sockaddr_in *)&ss)->sin_port
						: &((struct sockaddr_in6 *)&ss)->sin6_port;
	if (fd >= 65536 || ntohs(*pp) < DET_PORT_BASE || atomic_load(&g_det_fdport[fd]) != ntohs(*pp))
		goto out; /* (not a port of the turn's: the program's own choice keeps its error) */
	if (ss.ss_family == AF_INET6)
		getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &vl);
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	*pp = 0;
	for (int tries = 0; tries < 8 && r != 0; tries++) {
		int n = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), b = -1;
		if (n < 0)
			break;
		setsockopt(n, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse));
		if (ss.ss_family == AF_INET6)
			setsockopt(n, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
		tls.in_shim--;
		int took = uni_shim_det_bind(n, (struct sockaddr *)&ss, len, &b);
		tls.in_shim++;
		if (!took || b != 0 || uni_real.listen(n, backlog) != 0) {
			uni_real.close(n);
			continue;
		}
		/* Listening on the next port: the program's fd is that socket. */
		if (dup3(n, fd, (fdfl >= 0 && (fdfl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
			uni_real.close(n);
			break;
		}
		uni_real.close(n);
		if (fl >= 0)
			fcntl(fd, F_SETFL, fl);
		if (n < 65536) {
			atomic_store(&g_det_fdport[fd], atomic_load(&g_det_fdport[n]));
			atomic_store(&g_det_fdport[n], 0);
		}
		r = 0;
	}
	if (r == 0 && !atomic_exchange(&g_said_relisten, 1))
		uni_shim_log("deterministic: rank %d: the port the turn gave a listener was taken meanwhile (by another "
			     "deterministic session beside this one?); it listens on the rank's next one (from here this "
			     "run's ports, and so its order of events, may differ from a run without that)",
			     g_rank);
out:
	tls.in_shim--;
	errno = r == 0 ? saved : EADDRINUSE;
	return r;
}

void uni_shim_det_resumed(void)
{
	uint64_t cpu = thread_cpu();
	if (cpu > tls.cpu_mark)
		tls.cpu_mark = cpu;
	tls.wall_mark = clock_ns(CLOCK_MONOTONIC);
}

int uni_shim_det_nomore(int fd)
{
	uint32_t s1 = uni_fd_get(fd);
	return g_det && s1 && !(s1 & UNI_FD_CHAN) && uni_det_live();
}

void uni_shim_det_abandon(const char *why)
{
	if (g_det && sync_active() && uni_det_live()) {
		int saved = errno;
		tls.in_shim++;
		uni_det_abandon(why);
		tls.in_shim--;
		errno = saved;
	}
}

static int det_sem_empty(uint64_t obj)
{
	int v;
	return sem_getvalue((sem_t *)(uintptr_t)obj, &v) < 0 || v <= 0;
}

int uni_shim_det_sem_wait(sem_t *sem, int try, clockid_t clk, const struct timespec *abs)
{
	if (!det_sync() || !det_take_part())
		return -2;
	int saved = errno;
	uint64_t vdl = UINT64_MAX, v;
	struct timespec real;
	if (abs && uni_shim_deadline(clk, abs, &real, &v) == 0)
		vdl = v;
	tls.in_shim++;
	det_point();
	int rc = 0, err = saved;
	for (;;) {
		if (uni_real.sem_trywait(sem) == 0) {
			tls.in_shim--;
			uni_sem_take(sem); /* the post's time */
			tls.in_shim++;
			break;
		}
		if (try) {
			rc = -1;
			err = EAGAIN;
			break;
		}
		/* (A post between the try and the block, by a thread without
		 * the turn, woke nobody: the block sees it.) */
		uni_det_block_begin(tls.ring, tls.ring_idx, (uint64_t)(uintptr_t)sem, tls.vt, vdl);
		int b = uni_det_block_wait(tls.ring, tls.ring_idx, det_sem_empty);
		if (b < 0) {
			/* The turn given up: the wait as without it. */
			leave();
			tls.in_shim--;
			errno = saved;
			return -2;
		}
		if (!b) {
			tls.in_shim--;
			uni_shim_idle_until(vdl);
			tls.in_shim++;
			rc = -1;
			err = ETIMEDOUT;
			break;
		}
	}
	leave();
	tls.in_shim--;
	errno = err;
	return rc;
}

void uni_shim_det_sem_post(sem_t *sem, int after)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || !sync_active())
		return;
	int saved = errno;
	tls.in_shim++;
	if (!after) {
		if (det_sync() && det_me()) {
			det_point();
			leave();
		}
	} else {
		uni_det_wake((uint64_t)(uintptr_t)sem, tls.vt, 0, 0); /* (the post's time queue carries the time) */
		if (det_sync() && det_me())
			leave();
	}
	tls.in_shim--;
	errno = saved;
}

/* A connection end wrote bytes up to upto (or closed): its readers in
 * turn, in any process, look again. */
static void det_written(uint32_t idx, uint64_t upto, int closed)
{
	struct uni_conn *c = uni_shm_conn(g_hdr, idx);
	if (closed) {
		if (!atomic_load_explicit(&c->wclosed, memory_order_relaxed))
			c->wclosed_vt = tls.vt;
		atomic_store_explicit(&c->wclosed, 1, memory_order_release);
	}
	else
		atomic_store_explicit(&c->written, upto, memory_order_release);
	if (g_det && uni_det_live()) {
		uni_det_wake(UNI_DET_OBJ_CONN(idx), 0, 1, 0);
		uni_det_wake(UNI_DET_OBJ_POLL, 0, 1, 0);
	}
}

/* Deterministic mode: a read in turn returns exactly the bytes that have
 * arrived by the reader's clock (alpha-beta: from the schedule unid
 * publishes for the writer's stream), so how many a read gets is the
 * program's, not the kernel's. Bytes written that have not arrived yet:
 * it waits in turn until the first one's arrival. None written: a
 * blocking read waits in turn for the writer to write or close. Returns
 * how many to read, or n where the turn cannot tell (no schedule for this
 * stream, unid behind for a second, the writer closed, nothing written
 * and a non-blocking read: the kernel's answer). */
/* Byte b of the stream coming in on idx is older than the schedule's log
 * holds (UNI_SCHED_LOG chunks): it will not be published again. */
static int sched_gone(uint32_t idx, uint64_t b)
{
	struct uni_sched *sd =
		stream_sched(atomic_load_explicit(&uni_shm_conn(g_hdr, idx)->peer_conn, memory_order_relaxed));
	uint64_t n = sd ? atomic_load_explicit(&sd->n, memory_order_acquire) : 0;
	if (n <= UNI_SCHED_LOG)
		return 0;
	struct uni_sched_chunk *k = &sd->ch[n % UNI_SCHED_LOG]; /* the oldest */
	return b < atomic_load_explicit(&k->off, memory_order_acquire) + atomic_load_explicit(&k->len, memory_order_acquire);
}

/* One step of a short wait in real time: the CPU given up, then sleeps of
 * us microseconds. */
static void backoff(int i, long us)
{
	if (i < 64) {
		sched_yield();
	} else {
		struct timespec ts = {0, us * 1000};
		uni_real.nanosleep(&ts, NULL);
	}
}

/* Deterministic mode: a stream without a schedule log (unid had none
 * left) is read outside the turn; said once by each process. */
static _Atomic int g_said_nolog;
static int det_no_log(void)
{
	if (g_det && !atomic_exchange(&g_said_nolog, 1))
		uni_shim_log("deterministic: rank %d: the session's schedule logs are all taken; reads of further "
			     "streams are not in turn (a run may differ from another from here)",
			     g_rank);
	return 0;
}

static int sched_wait_spin(uint32_t idx, uint64_t b, uint64_t *t)
{
	uint64_t t0 = 0;
	for (int i = 0;; i++) {
		if (sched_arrival(idx, b, t))
			return 1;
		if (sched_gone(idx, b))
			return 0; /* the caller: the kernel's answer */
		struct uni_conn *c = uni_shm_conn(g_hdr, idx);
		if (atomic_load_explicit(&c->state, memory_order_acquire) == UNI_CONN_MATCHED &&
		    atomic_load_explicit(&uni_shm_conn(g_hdr, atomic_load_explicit(&c->peer_conn, memory_order_relaxed))
						  ->sched_log, memory_order_acquire) == UINT32_MAX)
			return det_no_log(); /* (no log left for its writer's stream: none comes) */
		if (i == 0)
			ring_bell();
		uint64_t now = uni_now_ns();
		if (!t0)
			t0 = now;
		else if (now - t0 > 1000000000ull || !coordinator_alive())
			return 0;
		backoff(i, 50);
	}
}

static int sched_wait(uint32_t idx, uint64_t b, uint64_t *t)
{
	if (sched_arrival(idx, b, t))
		return 1; /* (the common case: no CPU clock read) */
	uint64_t c0 = thread_cpu();
	int r = sched_wait_spin(idx, b, t);
	shim_spun(c0);
	return r;
}

/* Waits in real time until ok(idx) holds, for at most a second, and that
 * once per idx: one that ran out is remembered in memo (by idx % 8192)
 * and not waited for again. Returns ok(idx). */
static int det_wait_once(int (*ok)(uint32_t), uint32_t idx, _Atomic uint64_t *memo)
{
	if (ok(idx))
		return 1;
	_Atomic uint64_t *m = &memo[(idx / 64) % 128];
	uint64_t bit = 1ull << (idx % 64);
	if (atomic_load_explicit(m, memory_order_relaxed) & bit)
		return 0;
	ring_bell();
	uint64_t t0 = uni_now_ns(), c0 = thread_cpu();
	for (int i = 0; !ok(idx); i++) {
		if (uni_now_ns() - t0 > 1000000000ull || !coordinator_alive()) {
			atomic_fetch_or(m, bit);
			shim_spun(c0);
			return 0;
		}
		backoff(i, 50);
	}
	shim_spun(c0);
	return 1;
}

static _Atomic uint64_t g_det_nomatch[128], g_det_nolog[128];

static int conn_settled(uint32_t idx)
{
	return atomic_load_explicit(&uni_shm_conn(g_hdr, idx)->state, memory_order_acquire) != UNI_CONN_OPEN;
}

/* 1 when connection end idx is modelled. One just made or accepted: unid
 * matches its two ends a moment later (looked at before, a poll went
 * outside the turn and a read took the kernel's bytes in some runs). A
 * peer that is not a rank stays unmatched until unid gives up: waited for
 * once, not at every poll and read. */
static int det_connecting(const struct uni_conn *c);

/* The accepting end of connection end c (the connecting one) is in the
 * session's table: its listener accepted it (that end's addresses are
 * c's, crossed: the kernel makes the pair unique; c's own address alone is
 * not, a client's port is used again for another server: an earlier
 * connection's accepted end then passed for this one's, the read did not
 * wait in turn for the accept and took the kernel's bytes). */
static int det_accepted(const struct uni_conn *c)
{
	uint32_t n = atomic_load(&g_hdr->next_conn);
	if (n > g_hdr->max_conns)
		n = g_hdr->max_conns;
	for (uint32_t i = n; i-- > 0;) {
		const struct uni_conn *o = uni_shm_conn(g_hdr, i);
		if (o != c && atomic_load_explicit(&o->state, memory_order_acquire) != UNI_CONN_FREE &&
		    !memcmp(&o->peer, &c->local, sizeof(c->local)) && !memcmp(&o->local, &c->peer, sizeof(c->peer)))
			return 1;
	}
	return 0;
}

static __thread uint32_t t_accept_idx; /* (det_not_accepted's connection end) */

static int det_not_accepted(uint64_t obj)
{
	(void)obj;
	return !det_accepted(uni_shm_conn(g_hdr, t_accept_idx));
}

/* may_wait: a read that may block (not a non-blocking one), until its
 * receive time-out tmo (ns, virtual; 0: none). */
static int det_matched(uint32_t idx, int may_wait, uint64_t tmo)
{
	/* Deterministic mode: a connection a rank made to a listener of the
	 * session that has not accepted it yet waits in turn for the accept
	 * (the acceptor needs the turn: waiting for unid's match while
	 * holding it, the store client's first read went outside the turn
	 * after a second, and from there runs differed). Checked again under
	 * the turn's lock as it blocks (an acceptor outside the turn may
	 * register meanwhile). */
	struct uni_conn *c = uni_shm_conn(g_hdr, idx);
	if (may_wait && det_part() && det_connecting(c) && !det_accepted(c)) {
		det_point();
		uint64_t until = tmo && tls.vt < UINT64_MAX - tmo ? tls.vt + tmo : UINT64_MAX;
		t_accept_idx = idx;
		do {
			uni_det_block_begin(tls.ring, tls.ring_idx, UNI_DET_OBJ_ACCEPTED, tls.vt, until);
			int b = uni_det_block_wait(tls.ring, tls.ring_idx, det_not_accepted);
			if (b <= 0 || b == 2)
				break; /* (given up, its time-out, everybody waits) */
		} while (det_connecting(c) && !det_accepted(c));
	}
	det_wait_once(conn_settled, idx, g_det_nomatch);
	return atomic_load_explicit(&uni_shm_conn(g_hdr, idx)->state, memory_order_acquire) == UNI_CONN_MATCHED;
}

static int sched_there(uint32_t pi)
{
	return stream_sched(pi) != NULL;
}

/* The stream written on connection end pi has a schedule, or nothing
 * written yet (unid gives it one with its first chunk): the turn follows
 * its reads. Written: unid gives the stream its schedule when it takes the
 * first chunk, which may be a moment after the write (a poll that went
 * outside the turn then made a run differ). Not followed: written to
 * without one (more streams than schedules). */
static int det_sched_or_none(uint32_t pi)
{
	if (atomic_load_explicit(&uni_shm_conn(g_hdr, pi)->sched_log, memory_order_acquire) == UINT32_MAX)
		return det_no_log(); /* (none left for it: not followed) */
	if (g_horizon && uni_det_net()) /* (nic, topology: unid logs what left) */
		return 1;
	if (!g_hdr->sched_off)
		return 0;
	if (!atomic_load_explicit(&uni_shm_conn(g_hdr, pi)->written, memory_order_acquire))
		return 1;
	return det_wait_once(sched_there, pi, g_det_nolog);
}

static void det_net_watch(uint32_t idx, uint64_t b);

/* det_vrecv leaves the receive to unid (0), giving the turn up first,
 * with one line saying why, where waiting for unid's answer with the turn
 * held would stall the session: under nic (unid answers once the network
 * has moved there, which in turn it does only when the turn asks; the
 * others took the turn from it), or for a stream without a schedule log
 * (a writer that needed the turn: a false deadlock). */
static int det_vrecv_out(int give_up, const char *why)
{
	if (give_up)
		uni_shim_det_abandon(why);
	return 0;
}

static const char det_nolog_why[] = "a stream of the simulated NCCL for which the session's schedule logs are all taken";

/* Rank ends (unid's count) when a wait in turn last looked at its peers:
 * a rank that ended after the look wakes the wait as it blocks (the look
 * again of det.c's watch may have come between the two). */
static __thread uint32_t t_det_ends;
static __thread int t_det_looked; /* set by the look, taken by the block after it */

static int ends_unchanged(uint64_t obj)
{
	(void)obj;
	return atomic_load_explicit(&g_hdr->rank_ends, memory_order_acquire) == t_det_ends;
}

void uni_shim_det_nccl_look(void)
{
	if (g_hdr) {
		t_det_ends = atomic_load_explicit(&g_hdr->rank_ends, memory_order_acquire);
		t_det_looked = 1;
	}
}

/* Deterministic mode, alpha-beta: the simulated NCCL's receives in turn
 * (uni_shim_vrecv_any). A request whose bytes are all written (its
 * writer wrote them in an earlier turn) has its arrival in the schedule
 * unid publishes for the writer's stream (a moment after the write: a
 * wait in real time, holding the turn); of those, the one that arrives
 * first is answered, at once, as a read the thread answered itself
 * (UNI_EVF_LOCAL: unid writes its record). None written: the thread
 * waits in turn for a write. The answer's time is the same in any
 * order; which is answered first is the turn's, the same in every run.
 * Both ends of each connection were opened before the operation's data
 * moved (nccl.c), so unid's match is a moment away too. Returns 0 where
 * the turn cannot tell (no schedule left for a stream; nic, topology):
 * unid answers. */
static int det_vrecv(int n, const uint32_t *idx1, const uint64_t *off, const uint64_t *len, uint64_t *t,
		     int *which)
{
	/* nic, topology: the network moves in turn (det.c), and unid logs
	 * what became final in the writers' logs; a request whose bytes are
	 * written but not final waits in turn for the network, which stops
	 * where their last byte leaves (as a read of Gloo's, det_read). */
	int fluid = g_horizon && uni_det_net();
	if ((g_horizon && !fluid) || !g_hdr->sched_off)
		return 0;
	for (;;) {
		uni_shim_det_nccl_look();
		uint32_t fseq = atomic_load_explicit(&g_hdr->final_seq, memory_order_acquire);
		int best = -1;
		uint64_t at = UINT64_MAX;
		for (int i = 0; i < n; i++) {
			uint32_t idx = idx1[i] - 1;
			uint64_t a, end = off[i] + len[i];
			if (!len[i] || !det_matched(idx, 0, 0))
				return det_vrecv_out(fluid, "a receive of the simulated NCCL on a connection unid does not "
							    "model");
			struct uni_conn *c = uni_shm_conn(g_hdr, idx);
			uint32_t pi = atomic_load_explicit(&c->peer_conn, memory_order_relaxed);
			struct uni_conn *pc = uni_shm_conn(g_hdr, pi);
			if (atomic_load_explicit(&pc->sched_log, memory_order_acquire) == UINT32_MAX)
				return det_vrecv_out(1, det_nolog_why); /* (no log left for it) */
			if (atomic_load_explicit(&pc->written, memory_order_acquire) < end) {
				/* Its writer died: unid answers (a dead writer's read
				 * of bytes it never sent at once, engine/sim.c). */
				if (atomic_load_explicit(&pc->wdead, memory_order_acquire))
					return 0;
				continue;
			}
			if (fluid) {
				if (!sched_arrival_max(idx, off[i], end - 1, &a)) {
					if (sched_gone(idx, off[i]))
						return det_vrecv_out(1, "a receive of the simulated NCCL whose bytes left "
									"the schedule log before it looked");
					det_net_watch(idx, end - 1);
					continue;
				}
			} else if (!sched_wait(idx, off[i], &a) || !sched_wait(idx, end - 1, &a) ||
				   !sched_arrival_max(idx, off[i], end - 1, &a)) {
				/* (unid took its first chunk meanwhile and had no log
				 * left for it: as above) */
				return det_vrecv_out(atomic_load_explicit(&pc->sched_log, memory_order_acquire) ==
							     UINT32_MAX,
						     det_nolog_why);
			}
			if (a < at) {
				at = a;
				best = i;
			}
		}
		if (best >= 0) {
			uint64_t t0 = tls.vt;
			struct uni_ev e = {.kind = UNI_EV_READ_REQ, .flags = UNI_EVF_LOCAL, .conn = idx1[best] - 1,
					   .t0 = t0, .t1 = at > t0 ? at : t0, .off = off[best], .len = len[best], .c = at};
			push(tls.ring, &e);
			*t = at;
			*which = best;
			return 1;
		}
		t_det_looked = 0;
		uni_det_block_net_begin(tls.ring, tls.ring_idx, UNI_DET_OBJ_POLL, tls.vt, UINT64_MAX, UNI_DET_NET_ANY,
					fseq);
		if (uni_det_block_wait(tls.ring, tls.ring_idx, ends_unchanged) < 0)
			return 0; /* the turn given up */
		det_net_resumed();
	}
}

int uni_shim_det_nccl_block(uint64_t key)
{
	if (UNI_LIKELY(!g_det) || !det_part())
		return -1;
	int saved = errno;
	tls.in_shim++;
	/* Blocked for deadlock reports until the NCCL wait ends
	 * (uni_shim_nccl_wait(NULL)), not each block: a look again every
	 * 200 ms (det.c) would restart it. */
	struct uni_ring *r = tls.ring;
	if (atomic_load_explicit(&r->wait_kind, memory_order_relaxed) == UNI_WAIT_NONE) {
		r->wait_obj = UNI_DET_OBJ_NCCL(key);
		r->wait_deadline = 0;
		r->wait_vdl = 0;
		if (!r->wait_what[0]) {
			r->wait_vt = tls.vt;
			r->stack[0] = 0;
			r->wait_since = uni_now_ns();
		}
		atomic_store_explicit(&r->wait_kind, UNI_WAIT_COND, memory_order_release);
		tls.det_nccl_marked = 1;
	}
	if (!t_det_looked) /* (a caller that did not look: from now) */
		t_det_ends = atomic_load_explicit(&g_hdr->rank_ends, memory_order_acquire);
	t_det_looked = 0;
	uni_det_block_begin(r, tls.ring_idx, UNI_DET_OBJ_NCCL(key), tls.vt, UINT64_MAX);
	int b = uni_det_block_wait(r, tls.ring_idx, ends_unchanged);
	tls.in_shim--;
	errno = saved;
	return b < 0 ? -1 : 1;
}

void uni_shim_det_nccl_wake(uint64_t key)
{
	if (UNI_UNLIKELY(g_det) && uni_det_live()) {
		int saved = errno;
		tls.in_shim++;
		uni_det_wake(UNI_DET_OBJ_NCCL(key), 0, 1, 0);
		tls.in_shim--;
		errno = saved;
	}
}

int uni_shim_det_session(void)
{
	return g_det;
}

int uni_shim_det_nccl(void)
{
	if (UNI_LIKELY(!g_det) || !uni_det_live() || !sync_active())
		return 0;
	int saved = errno;
	tls.in_shim++;
	thread_ring();
	tls.in_shim--;
	errno = saved;
	return det_part();
}

/* Room for the writer on connection end idx (bytes), with over bytes
 * more than the buffer allowed. */
static uint64_t det_room_over(uint32_t idx, uint64_t over)
{
	struct uni_conn *c = uni_shm_conn(g_hdr, idx);
	uint32_t pi = atomic_load_explicit(&c->peer_conn, memory_order_relaxed);
	uint64_t w = atomic_load_explicit(&c->written, memory_order_acquire);
	uint64_t rd = atomic_load_explicit(&uni_shm_conn(g_hdr, pi)->consumed, memory_order_acquire);
	uint64_t in = w > rd ? w - rd : 0, lim = DET_SNDBUF + over;
	return in < lim ? lim - in : 0;
}

static uint64_t det_room(uint32_t idx)
{
	return det_room_over(idx, 0);
}

size_t uni_shim_det_room(uint32_t slot1, int fd, int flags)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || (flags & MSG_OOB))
		return SIZE_MAX;
	int saved = errno;
	tls.in_shim++;
	size_t room = SIZE_MAX;
	struct shim_conn *sc = &g_conns[slot1 - 1];
	struct uni_conn *c = uni_shm_conn(g_hdr, sc->shm_idx);
	int fl;
	if (det_me() && atomic_load_explicit(&c->state, memory_order_acquire) == UNI_CONN_MATCHED &&
	    ((flags & MSG_DONTWAIT) || ((fl = uni_real.fcntl(fd, F_GETFL)) >= 0 && (fl & O_NONBLOCK)))) {
		det_point();
		room = (size_t)det_room(sc->shm_idx);
		if (room)
			tls.det_clamped = 1; /* (the write's turn was this one) */
		else if (!tls.det_polled)
			/* EAGAIN only to a thread whose poll or epoll the turn
			 * answers (writable when room comes back): one that asked
			 * the kernel, or select, which the shim does not see, would
			 * be told writable again at once and spin. The kernel's
			 * answer, then. */
			room = SIZE_MAX;
		leave();
	}
	tls.in_shim--;
	errno = saved;
	return room;
}

/* A TCP segment's payload (Ethernet's 1500-byte MTU, timestamps on). */
#define DET_SEG 1448u
/* The most one read in turn returns: 32 segments, which any receive
 * buffer holds (a read of what arrived by the clock must find it all in
 * the kernel, below). */
#define DET_READ_MAX (32u * DET_SEG)

/* Deterministic mode under nic or topology: a thread in turn waits for
 * byte b of the stream coming in on idx (the last of the segment it
 * reads next): unid stops the network when it has left, so that the
 * reader goes on from its arrival, a segment at a time, as under
 * alpha-beta (a step to a flow's end let readers of other flows go on
 * from bytes that had arrived long before, behind the network). */
static void det_net_watch(uint32_t idx, uint64_t b)
{
	if (!tls.ring)
		return;
	struct uni_ev e = {.kind = UNI_EV_DET_WATCH, .conn = idx, .off = b};
	push(tls.ring, &e);
}

/* The bytes a read in turn returns were written (the writer's kernel took
 * them) but may still be on their way through the host's TCP to the
 * reader's queue: the read waits until the kernel has want of them (a
 * read returned 65536 bytes in one run and 128000 in the next; beside a
 * busy CPU the host's TCP can take tens of ms). want fits the receive
 * buffer (det_read_clamp); not longer than a second without the queue
 * growing (then what it holds). */
static void det_kernel_has(int fd, size_t want)
{
	int avail = 0, last = -1;
	uint64_t since = 0;
	for (int i = 0;; i++) {
		if (uni_real.ioctl(fd, FIONREAD, &avail) != 0 || avail < 0 || (size_t)avail >= want)
			return;
		uint64_t now = uni_now_ns();
		if (avail != last) {
			last = avail;
			since = now;
		} else if (now - since > 1000000000ull) {
			return;
		}
		backoff(i, 20);
	}
}

/* How a read or accept on fd may wait: 1 when it must not (MSG_DONTWAIT,
 * a non-blocking socket), else 0 and *tmo its receive time-out
 * (SO_RCVTIMEO, ns; 0: none). */
static int det_read_wait(int fd, int flags, uint64_t *tmo)
{
	int fl = uni_real.fcntl(fd, F_GETFL);
	struct timeval tv = {0, 0};
	socklen_t l = sizeof(tv);
	*tmo = 0;
	if ((flags & MSG_DONTWAIT) || (fl >= 0 && (fl & O_NONBLOCK)))
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) == 0 && tv.tv_sec >= 0)
		*tmo = (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
	return 0;
}

/* A read or accept that must not wait: non-blocking, or with a receive
 * time-out (SO_RCVTIMEO: the program expects EAGAIN after it). */
static int det_nonblocking(int fd, int flags)
{
	uint64_t tmo;
	return det_read_wait(fd, flags, &tmo) || tmo;
}

static ssize_t det_read_clamp(struct shim_conn *sc, int fd, size_t n, int flags)
{
	struct uni_conn *c = uni_shm_conn(g_hdr, sc->shm_idx);
	if (n == 0)
		return 0;
	uint64_t tmo;
	int nb = det_read_wait(fd, flags, &tmo);
	if (!det_matched(sc->shm_idx, !nb, tmo)) {
		if (getenv("UNI_DET_DEBUG"))
			uni_shim_log("det read: rank %d conn %u not matched (state %u)", g_rank, sc->shm_idx,
				     atomic_load(&c->state));
		return (ssize_t)n;
	}
	uint32_t pi = atomic_load_explicit(&c->peer_conn, memory_order_relaxed);
	struct uni_conn *pc = uni_shm_conn(g_hdr, pi);
	int fluid = det_fluid(pc);
	if (!det_sched_or_none(pi))
		return (ssize_t)n;
	det_point();
	tls.det_clamped = 1;
	for (;;) {
		/* (final_seq before the log: a step between the two wakes the
		 * wait below at once) */
		uint32_t fseq = atomic_load_explicit(&g_hdr->final_seq, memory_order_acquire);
		uint64_t rx = atomic_load_explicit(&sc->rx, memory_order_relaxed);
		uint64_t w = atomic_load_explicit(&pc->written, memory_order_acquire), a;
		if (w > rx) {
			/* Bytes are readable a segment at a time (a reader that reads
			 * in a loop got a few bytes each time, 400,000 reads for
			 * 16 MB): the first segment's last byte, or all that is
			 * written, or all that is asked. */
			uint64_t seg = w - rx < DET_SEG ? w - rx : DET_SEG;
			if (seg > n)
				seg = n;
			if (fluid) {
				/* nic, topology: the log holds what left by the turn's
				 * time (det.c "The network in turn"). The segment not
				 * there yet: it waits in turn for the network to move,
				 * which stops where its last byte leaves (a dispatcher
				 * serves its other sockets: EAGAIN; its epoll in turn
				 * waits the same way). */
				if (!sched_arrival(sc->shm_idx, rx + seg - 1, &a)) {
					if (sched_gone(sc->shm_idx, rx) || !det_sched_or_none(pi))
						return (ssize_t)n; /* (the log gone by, or none left for it) */
					det_net_watch(sc->shm_idx, rx + seg - 1);
					if (tls.dispatcher)
						return -1;
					if (uni_det_block_net(tls.ring, tls.ring_idx, UNI_DET_OBJ_CONN(pi), tls.vt,
							      UINT64_MAX, UNI_DET_NET_ANY, fseq) < 0)
						return (ssize_t)n; /* the turn given up */
					det_net_resumed();
					continue;
				}
			} else if (!sched_wait(sc->shm_idx, rx, &a) || !sched_wait(sc->shm_idx, w - 1, &a)) {
				return (ssize_t)n;
			}
			/* (Arrivals grow within a chunk, not across chunks: a Gloo
			 * notice goes ahead of data written before it. The latest
			 * of the segment's; a poll reads the same, det_look.) */
			if (!sched_arrival_max(sc->shm_idx, rx, rx + seg - 1, &a))
				return (ssize_t)n;
			if (a <= tls.vt) {
				/* What arrived by now, in order. */
				uint64_t k = sched_arrived(sc->shm_idx, rx, w - rx, tls.vt), cap = DET_READ_MAX;
				int rb = 0;
				socklen_t rl = sizeof(rb);
				/* A receive buffer the program made small (the host's
				 * own grows with the run, differently each time: only
				 * one below its least start). */
				if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, &rl) == 0 && rb > 0 && rb < 65536 &&
				    (uint64_t)rb / 4 < cap)
					cap = (uint64_t)rb / 4 > DET_SEG ? (uint64_t)rb / 4 : DET_SEG;
				if (k > cap)
					k = cap;
				if (k < n && k < w - rx)
					k -= k % DET_SEG; /* whole segments (at least one) */
				if (n < k)
					k = n;
				det_kernel_has(fd, (size_t)k);
				return (ssize_t)k;
			}
			/* (Non-blocking too: poll, which the turn does not follow
			 * yet, said there are bytes; EAGAIN would make it spin.)
			 * A dispatcher serves other sockets meanwhile: EAGAIN, and
			 * its epoll in turn wakes it at the arrival. */
			if (tls.dispatcher)
				return -1;
			int b = uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_CONN(pi), tls.vt, a);
			if (b < 0)
				return (ssize_t)n; /* the turn given up */
			if (!b)
				take_stamp(a, 0); /* the first byte arrived (the read's record says from where) */
			continue;
		}
		/* Nothing written: the end of the stream, a non-blocking read, or
		 * something in the kernel the turn did not see written (a peer
		 * that died): the kernel's answer. */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (atomic_load_explicit(&pc->wclosed, memory_order_acquire) && pc->wclosed_vt > tls.vt && !nb &&
		    !tls.dispatcher) {
			/* The end of the stream comes when its writer closed (or
			 * its process left the turn), in virtual time. */
			int b = uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_CONN(pi), tls.vt, pc->wclosed_vt);
			if (b == 0)
				take_stamp(pc->wclosed_vt, 0);
			if (b >= 0)
				continue;
			return (ssize_t)n;
		}
		if (atomic_load_explicit(&pc->wclosed, memory_order_acquire) || nb || uni_real.poll(&p, 1, 0) != 0)
			return (ssize_t)n;
		/* Waiting for its peer, for deadlock reports (once: the looks
		 * again do not restart it; uni_shim_io_end ends it). */
		if (atomic_load_explicit(&tls.ring->wait_kind, memory_order_relaxed) == UNI_WAIT_NONE)
			wait_read(tls.ring, sc->shm_idx, uni_now_ns(), tls.vt, 0);
		/* With a receive time-out (the store's client sets one) until
		 * it is up in virtual time: then EAGAIN, as the kernel says. */
		uint64_t until = tmo && tls.vt < UINT64_MAX - tmo ? tls.vt + tmo : UINT64_MAX;
		int b = uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_CONN(pi), tls.vt, until);
		if (b < 0)
			return (ssize_t)n;
		if (b > 0)
			det_net_resumed();
		if (b == 0 && until != UINT64_MAX) {
			take_stamp(until, 0);
			atomic_store_explicit(&tls.ring->wait_kind, UNI_WAIT_NONE, memory_order_release);
			return -1;
		}
	}
}

/* Deterministic mode: poll and epoll in turn. One look at fds at the
 * poller's clock fills their revents and returns how many are ready, or
 * -2 where one cannot be followed (the caller: as without the turn);
 * *next comes down to the earliest virtual time one becomes readable.
 *   a modelled connection: readable when a byte has arrived by the clock
 *     (or the writer closed); writable while the turn's socket buffer has
 *     room (DET_SNDBUF; bytes read by the peer make room);
 *   a pipe or eventfd of the rank: readable from the time of the earliest
 *     write not read yet (written in turn), else as the kernel says;
 *   a listening socket: as the kernel says (connects are made in turn);
 *   nothing written unread on a connection: what the kernel says of the
 *   end of the stream (shutdown, a peer that died: POLLIN, POLLRDHUP,
 *   POLLHUP, POLLERR) passes. */
static int det_listening(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v;
}

static short det_kernel(int fd, short want)
{
	struct pollfd k = {.fd = fd, .events = want};
	return uni_real.poll(&k, 1, 0) > 0 ? k.revents : 0;
}

/* A connection a rank is making to a listener of the session that has
 * not accepted it yet: unid matches its ends at the accept. Its connect's
 * poll (torch's store client polls for POLLOUT) is answered in turn:
 * writable once the kernel connected it (the handshake needs no accept),
 * nothing to read (its peer has not even accepted). Waiting for the match
 * instead held the turn a second, then the poll went outside the turn. */
static int det_connecting(const struct uni_conn *c)
{
	return atomic_load_explicit(&c->state, memory_order_acquire) == UNI_CONN_OPEN && c->open_vt &&
	       listener_for(&c->peer) >= 0;
}

/* 1: the turn follows fd's readiness (above). */
static int det_follows(int fd)
{
	if (fd < 0)
		return 1; /* (poll skips it) */
	uint32_t s1 = uni_fd_get(fd);
	if (s1 & UNI_FD_CHAN)
		return !uni_chan_shared(s1);
	if (s1) {
		struct uni_conn *c = uni_shm_conn(g_hdr, g_conns[s1 - 1].shm_idx);
		if (det_connecting(c))
			return 1;
		return det_matched(g_conns[s1 - 1].shm_idx, 0, 0) &&
		       det_sched_or_none(atomic_load_explicit(&c->peer_conn, memory_order_relaxed));
	}
	return det_ext(fd) || det_listening(fd);
}

/* Waits a moment of real time (at most a second) until the kernel says
 * one of want on fd: what the turn knows happened (a connect made in turn)
 * the host's TCP may not have finished yet. */
static short det_kernel_wait(int fd, short want)
{
	uint64_t t0 = 0;
	for (int i = 0;; i++) {
		short r = det_kernel(fd, want);
		if (r)
			return r;
		uint64_t now = uni_now_ns();
		if (!t0)
			t0 = now;
		else if (now - t0 > 1000000000ull)
			return 0;
		backoff(i, 20);
	}
}

/* A listening socket of the session: readable while a connection a rank
 * made to it (in turn) waits to be accepted, once the kernel has it (a
 * non-blocking connect's handshake may still be on its way: looked at
 * before, the loop thread accepted in one run and ticked in another);
 * none waiting, the kernel's answer (a connection from outside the
 * session). */
static short det_listener(int fd, short want)
{
	int i = mine_find(fd);
	if (i >= 0 && (want & POLLIN)) {
		struct uni_listener *l = uni_shm_listener(g_hdr, (uint32_t)i);
		if ((int32_t)(atomic_load_explicit(&l->connects, memory_order_acquire) -
			      atomic_load_explicit(&l->accepts, memory_order_acquire)) > 0)
			return det_kernel_wait(fd, want);
	}
	return det_kernel(fd, want);
}

/* A connection end the kernel has connected (a non-blocking connect's
 * handshake done): writable in turn only from then on. */
static int det_up(struct shim_conn *sc, int fd)
{
	if (atomic_load_explicit(&sc->up, memory_order_acquire))
		return 1;
	if (!det_kernel_wait(fd, POLLOUT))
		return 0;
	atomic_store_explicit(&sc->up, 1, memory_order_release);
	return 1;
}

/* A look found a modelled connection with bytes written that have not
 * left by the poller's clock (nic, topology): its wait ends when the
 * network moves too. */
static __thread int t_look_net;

static int det_look(struct pollfd *fds, nfds_t n, uint64_t *next)
{
	int ready = 0;
	for (nfds_t i = 0; i < n; i++) {
		struct pollfd *p = &fds[i];
		p->revents = 0;
		if (p->fd < 0)
			continue;
		short want = p->events, in = (short)(want & (POLLIN | POLLRDNORM));
		uint32_t s1 = uni_fd_get(p->fd);
		if (s1 & UNI_FD_CHAN) {
			uint64_t t = 0;
			if (in && uni_chan_pending(s1, &t) && t > tls.vt) {
				if (t < *next)
					*next = t;
				want = (short)(want & ~in); /* not yet */
			}
			p->revents = det_kernel(p->fd, want);
		} else if (s1) {
			struct shim_conn *sc = &g_conns[s1 - 1];
			struct uni_conn *c = uni_shm_conn(g_hdr, sc->shm_idx);
			uint32_t pi = atomic_load_explicit(&c->peer_conn, memory_order_relaxed);
			if (det_connecting(c)) {
				if ((want & (POLLOUT | POLLWRNORM)) && det_up(sc, p->fd))
					p->revents = (short)(want & (POLLOUT | POLLWRNORM));
				if (p->revents)
					ready++;
				continue;
			}
			if (atomic_load_explicit(&c->state, memory_order_acquire) != UNI_CONN_MATCHED ||
			    !det_sched_or_none(pi))
				return -2;
			struct uni_conn *pc = uni_shm_conn(g_hdr, pi);
			uint64_t rx = atomic_load_explicit(&sc->rx, memory_order_relaxed);
			uint64_t w = atomic_load_explicit(&pc->written, memory_order_acquire), a;
			if (in) {
				if (w > rx) {
					/* Readable as a read in turn reads: once the first
					 * segment (or all that is written, if less) arrived
					 * (det_read_clamp; a dispatcher, told readable at the
					 * first byte, read EAGAIN and polled again, for ever).
					 * nic, topology: a segment not in the log yet has not
					 * left: the wait is for the network too. */
					uint64_t seg = w - rx < DET_SEG ? w - rx : DET_SEG;
					if (det_fluid(pc) && !sched_arrival(sc->shm_idx, rx + seg - 1, &a)) {
						if (sched_gone(sc->shm_idx, rx))
							return -2;
						t_look_net = 1;
						det_net_watch(sc->shm_idx, rx + seg - 1);
					} else if (!sched_wait(sc->shm_idx, rx + seg - 1, &a) ||
						   !sched_arrival_max(sc->shm_idx, rx, rx + seg - 1, &a)) {
						return -2; /* unid behind: as without the turn */
					} else if (a <= tls.vt) {
						p->revents |= in;
					} else if (a < *next) {
						*next = a;
					}
				} else if (atomic_load_explicit(&pc->wclosed, memory_order_acquire)) {
					/* The end of the stream: at its close's time. */
					if (pc->wclosed_vt <= tls.vt)
						p->revents |= in;
					else if (pc->wclosed_vt < *next)
						*next = pc->wclosed_vt;
				}
			}
			if ((want & (POLLOUT | POLLWRNORM)) && det_room(sc->shm_idx) >= DET_WAKE && det_up(sc, p->fd))
				p->revents |= (short)(want & (POLLOUT | POLLWRNORM));
			/* Nothing unread: what the kernel says of the stream's end
			 * (a peer that died), unless the shim saw it close: then at
			 * its time, above. */
			if (!p->revents && w <= rx && !atomic_load_explicit(&pc->wclosed, memory_order_acquire))
				p->revents = (short)(det_kernel(p->fd, (short)(want & ~(POLLOUT | POLLWRNORM))) &
						     ~(POLLOUT | POLLWRNORM));
		} else if (det_ext(p->fd)) {
			/* A store outside the session: the kernel's answer (its
			 * writes wake this poll in turn), a connect's handshake
			 * waited for (the store listens). */
			short k = det_kernel(p->fd, want);
			if (!(k & (POLLOUT | POLLWRNORM)) && (want & (POLLOUT | POLLWRNORM)))
				k |= det_kernel_wait(p->fd, (short)(want & (POLLOUT | POLLWRNORM)));
			/* An answer this rank asked for: a moment for the store
			 * (torch's get polls for it before it reads). */
			if (!(k & in) && in && fd_bit(g_ext_ask_bits, p->fd)) {
				struct pollfd h = {.fd = p->fd, .events = in};
				if (uni_real.poll(&h, 1, DET_EXT_HOLD_WOKEN_MS) > 0)
					k = det_kernel(p->fd, want);
			}
			if (k & in)
				fd_bit_set(g_ext_ask_bits, p->fd, 0);
			p->revents = k;
		} else if (det_listening(p->fd)) {
			p->revents = det_listener(p->fd, want);
		} else {
			return -2;
		}
		if (p->revents)
			ready++;
	}
	return ready;
}

/* Waits in turn after a look found nothing: until next (0 there: the
 * earliest arrival; at dl: the time-out), or until anything a look may
 * see happened (it looks again). 1: look again, 0: dl reached, -1: the
 * turn given up. */
static int det_poll_wait(uint64_t next, uint64_t dl, uint32_t fseq)
{
	int b = t_look_net ? uni_det_block_net(tls.ring, tls.ring_idx, UNI_DET_OBJ_POLL, tls.vt, next,
					       UNI_DET_NET_ANY, fseq)
			   : uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_POLL, tls.vt, next);
	if (b < 0)
		return -1;
	if (b == 0) {
		if (tls.dispatcher) {
			/* (Its time-out, an idle tick, or its next event's time:
			 * neither idle nor a wait of a thread of its own.) */
			tls.vt = next > tls.vt ? next : tls.vt;
			return next == dl ? 0 : 1;
		}
		if (next == dl) {
			tls.in_shim--;
			uni_shim_idle_until(dl);
			tls.in_shim++;
			return 0;
		}
		take_stamp(next, 0); /* the first arrival */
	} else {
		det_net_resumed();
	}
	return 1;
}

struct ep_snap;
static int ep_snapshot(int epfd, struct ep_snap *sn);

/* The wait of a poll or epoll in turn, from a turn at the caller's clock:
 * looks at the *n fds (an epoll set's, sn not NULL: taken again into sn
 * before each look, the set may change while it waits) until one is
 * ready (how many), the time-out (0), or one the turn does not follow
 * (-2: the caller's own path). */
static int det_wait_ready(struct pollfd *fds, int *n, int64_t timeout_ns, int epfd, struct ep_snap *sn)
{
	det_point();
	uint64_t dl = timeout_ns < 0 ? UINT64_MAX : tls.vt + (uint64_t)timeout_ns;
	for (;;) {
		uint64_t next = dl;
		uint32_t fseq = atomic_load_explicit(&g_hdr->final_seq, memory_order_acquire);
		t_look_net = 0;
		if (sn && (*n = ep_snapshot(epfd, sn)) < 0)
			return -2; /* the set changed to one the turn does not follow */
		int ready = det_look(fds, (nfds_t)*n, &next);
		if (ready < 0)
			return -2; /* (closed or reused while it waited) */
		if (ready || timeout_ns == 0 || dl <= tls.vt) {
			tls.det_polled = 1;
			return ready;
		}
		int b = det_poll_wait(next, dl, fseq);
		if (b < 0)
			return -2;
		if (!b) {
			tls.det_polled = 1;
			return 0;
		}
	}
}

/* A store outside the session (torchrun's agent hosts it): its requests
 * are written in turn, so it takes them in the order of the turn, and it
 * answers in real time. A blocking read of its answer holds the turn
 * while the store answers (at most DET_EXT_HOLD_MS of real time; a
 * request is answered in well under a millisecond); nothing by then (a
 * get of a key that nobody has set yet), it waits in turn until a rank
 * writes to the store, and looks again (holding the turn at most
 * DET_EXT_HOLD_WOKEN_MS: most writes answer somebody else); an answer
 * that came then goes on from that writer's clock (the set that let the
 * store answer). Its receive
 * time-out (SO_RCVTIMEO) is virtual: EAGAIN. A non-blocking read: the
 * kernel's answer. */

int uni_shim_det_ext_read(int fd)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || !det_ext(fd))
		return 0;
	int saved = errno, rc = 0;
	tls.in_shim++;
	if (!det_me() || !uni_det_live())
		goto out;
	det_point();
	uint64_t tmo, woke = 0;
	int nb = det_read_wait(fd, 0, &tmo);
	uint64_t until = tmo && tls.vt < UINT64_MAX - tmo ? tls.vt + tmo : UINT64_MAX;
	for (;;) {
		struct pollfd k = {.fd = fd, .events = POLLIN};
		if (uni_real.poll(&k, 1, nb ? 0 : woke ? DET_EXT_HOLD_WOKEN_MS : DET_EXT_HOLD_MS) > 0) {
			if (woke > tls.vt)
				take_stamp(woke, 0);
			fd_bit_set(g_ext_ask_bits, fd, 0);
			rc = 1;
			break;
		}
		if (nb) {
			rc = 1; /* (EAGAIN, from the kernel) */
			break;
		}
		int b = uni_det_block(tls.ring, tls.ring_idx, UNI_DET_OBJ_EXTSTORE, tls.vt, until);
		if (b < 0)
			break; /* the turn given up: as without it */
		if (b == 0) {
			/* (Its time-out: unless the answer is there by now.) */
			k.revents = 0;
			if (uni_real.poll(&k, 1, DET_EXT_HOLD_WOKEN_MS) > 0) {
				fd_bit_set(g_ext_ask_bits, fd, 0);
				rc = 1;
				break;
			}
			take_stamp(until, 0);
			rc = -1;
			break;
		}
		if (tls.ring->det_t > woke || !woke)
			woke = tls.ring->det_t > tls.vt ? tls.ring->det_t : tls.vt;
	}
	leave();
out:
	tls.in_shim--;
	errno = rc < 0 ? EAGAIN : saved;
	return rc;
}

void uni_shim_det_ext_write(int fd, int after)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || !det_ext(fd))
		return;
	int saved = errno;
	tls.in_shim++;
	if (after && uni_det_live()) {
		/* (Also a thread that does not take part: its write may answer
		 * someone's wait.) */
		fd_bit_set(g_ext_ask_bits, fd, 1);
		uni_det_wake(UNI_DET_OBJ_EXTSTORE, tls.vt, 1, 0);
		uni_det_wake(UNI_DET_OBJ_POLL, 0, 1, 0);
		if (det_me())
			leave();
	} else if (!after && det_me() && uni_det_live()) {
		det_point();
	}
	tls.in_shim--;
	errno = saved;
}

int uni_shim_det_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || !n)
		return -2;
	int saved = errno;
	tls.in_shim++;
	int rc = -2, nn = (int)n;
	if (!det_me())
		goto out;
	for (nfds_t i = 0; i < n; i++)
		if (!det_follows(fds[i].fd))
			goto out;
	rc = det_wait_ready(fds, &nn, timeout_ns, -1, NULL);
	leave();
out:
	tls.in_shim--;
	errno = saved;
	return rc;
}

/* epoll sets as epoll_ctl made them, for epoll_wait in turn (the kernel's
 * set cannot be read back). A set with an edge-triggered, one-shot or
 * exclusive entry, or more entries than DET_EP_FDS, is not followed. */
#define DET_EP_SETS 16
#define DET_EP_FDS 256
#define DET_EP_ODD (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE)
struct det_ep {
	int epfd1; /* epfd + 1; 0: free */
	int n, odd;
	int next; /* the entry a look reports from first */
	struct pollfd fd[DET_EP_FDS];
	uint32_t ev[DET_EP_FDS];
	epoll_data_t data[DET_EP_FDS];
};
static struct det_ep g_ep[DET_EP_SETS];
static atomic_flag g_ep_lock = ATOMIC_FLAG_INIT;
UNI_HIDDEN _Atomic int uni_shim_nep;

static void ep_lock(void)
{
	while (atomic_flag_test_and_set_explicit(&g_ep_lock, memory_order_acquire))
		cpu_relax();
}

static void ep_unlock(void)
{
	atomic_flag_clear_explicit(&g_ep_lock, memory_order_release);
}

static struct det_ep *ep_find(int epfd, int create)
{
	struct det_ep *f = NULL;
	for (int i = 0; i < DET_EP_SETS; i++) {
		if (g_ep[i].epfd1 == epfd + 1)
			return &g_ep[i];
		if (!g_ep[i].epfd1 && !f)
			f = &g_ep[i];
	}
	if (!create || !f)
		return NULL;
	f->epfd1 = epfd + 1;
	f->n = f->odd = f->next = 0;
	atomic_fetch_add(&uni_shim_nep, 1);
	return f;
}

static void ep_recount(struct det_ep *s)
{
	s->odd = s->n > DET_EP_FDS;
	for (int i = 0; i < s->n && i < DET_EP_FDS; i++)
		if (s->ev[i] & DET_EP_ODD)
			s->odd = 1;
}

void uni_shim_det_epoll_ctl(int epfd, int op, int fd, const struct epoll_event *ev)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || atomic_load(&g_state) != ST_ATTACHED)
		return;
	uni_shim_det_turn();
	int saved = errno;
	tls.in_shim++;
	ep_lock();
	struct det_ep *s = ep_find(epfd, 0); /* (a set made before the turn: not followed) */
	if (s) {
		int i = 0;
		while (i < s->n && i < DET_EP_FDS && s->fd[i].fd != fd)
			i++;
		int have = i < s->n && i < DET_EP_FDS;
		if (op == EPOLL_CTL_DEL && have) {
			/* (Later entries move up: the order stays the program's.) */
			memmove(&s->fd[i], &s->fd[i + 1], (size_t)(s->n - i - 1) * sizeof(s->fd[0]));
			memmove(&s->ev[i], &s->ev[i + 1], (size_t)(s->n - i - 1) * sizeof(s->ev[0]));
			memmove(&s->data[i], &s->data[i + 1], (size_t)(s->n - i - 1) * sizeof(s->data[0]));
			s->n--;
		} else if (op == EPOLL_CTL_DEL && s->n > DET_EP_FDS) {
			s->n--; /* (one that did not fit: the set stays unfollowed) */
		} else if (ev && (op == EPOLL_CTL_MOD || op == EPOLL_CTL_ADD)) {
			if (!have && op == EPOLL_CTL_ADD)
				i = s->n++;
			if (i < DET_EP_FDS) {
				s->fd[i] = (struct pollfd){.fd = fd, .events = (short)(ev->events & 0xffff)};
				s->ev[i] = ev->events;
				s->data[i] = ev->data;
			}
		}
		ep_recount(s);
	}
	ep_unlock();
	uni_shim_det_polled();
	tls.in_shim--;
	errno = saved;
}

void uni_shim_det_epoll_new(int epfd)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || atomic_load(&g_state) != ST_ATTACHED)
		return;
	ep_lock();
	struct det_ep *s = ep_find(epfd, 1);
	if (s)
		s->n = s->odd = s->next = 0; /* (a number closed behind the shim's back) */
	ep_unlock();
}

void uni_shim_det_epoll_closed(int fd)
{
	/* (Not from inside the shim: a signal handler's close while this
	 * thread holds the table's lock.) */
	if (!atomic_load_explicit(&uni_shim_nep, memory_order_relaxed) || tls.in_shim)
		return;
	ep_lock();
	for (int k = 0; k < DET_EP_SETS; k++) {
		struct det_ep *s = &g_ep[k];
		if (!s->epfd1)
			continue;
		if (s->epfd1 == fd + 1) {
			s->epfd1 = 0;
			atomic_fetch_sub(&uni_shim_nep, 1);
			continue;
		}
		for (int i = 0; i < s->n && i < DET_EP_FDS; i++) {
			if (s->fd[i].fd != fd)
				continue;
			memmove(&s->fd[i], &s->fd[i + 1], (size_t)(s->n - i - 1) * sizeof(s->fd[0]));
			memmove(&s->ev[i], &s->ev[i + 1], (size_t)(s->n - i - 1) * sizeof(s->ev[0]));
			memmove(&s->data[i], &s->data[i + 1], (size_t)(s->n - i - 1) * sizeof(s->data[0]));
			s->n--;
			break;
		}
		ep_recount(s);
	}
	ep_unlock();
}

void uni_shim_det_polled(void)
{
	if (g_det && uni_det_live() && atomic_load(&g_state) == ST_ATTACHED) {
		int saved = errno;
		tls.in_shim++;
		uni_det_wake(UNI_DET_OBJ_POLL, 0, 1, 0);
		tls.in_shim--;
		errno = saved;
	}
}

/* epoll_wait in turn: the set's entries looked at as poll's (in the order
 * they were added), the ready ones returned from the one after the last
 * reported, at most max. A copy of the set on the waiter's stack (5 kB;
 * not in TLS, which stays small). */
struct ep_snap {
	int next;
	struct pollfd fd[DET_EP_FDS];
	uint32_t ev[DET_EP_FDS];
	epoll_data_t data[DET_EP_FDS];
};

static int ep_snapshot(int epfd, struct ep_snap *sn)
{
	int n = -1;
	ep_lock();
	struct det_ep *s = ep_find(epfd, 0);
	if (s && !s->odd) {
		n = s->n;
		sn->next = n ? s->next % n : 0;
		memcpy(sn->fd, s->fd, (size_t)n * sizeof(s->fd[0]));
		memcpy(sn->ev, s->ev, (size_t)n * sizeof(s->ev[0]));
		memcpy(sn->data, s->data, (size_t)n * sizeof(s->data[0]));
	}
	ep_unlock();
	return n;
}

static void ep_set_next(int epfd, int next)
{
	ep_lock();
	struct det_ep *s = ep_find(epfd, 0);
	if (s)
		s->next = next;
	ep_unlock();
}

int uni_shim_det_epoll(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim || max <= 0)
		return -2;
	int saved = errno;
	tls.in_shim++;
	int rc = -2, n;
	struct ep_snap sn;
	if (!tls.dispatcher && tls.ring && tls.tid != (uint32_t)g_pid && det_part()) {
		/* An event loop in a thread other than the main one (Gloo's)
		 * reads for the others: a dispatcher, whose time is its
		 * events' (foreign_loop; without the turn from its first read
		 * of a modelled byte). In turn it keeps its last event's time,
		 * its compute is nobody's, and its waits carry no time to it. */
		tls.dispatcher = 1;
		tls.ring->dispatcher = 1;
	}
	if (!det_me() || (n = ep_snapshot(epfd, &sn)) < 0)
		goto out;
	for (int i = 0; i < n; i++)
		if (!det_follows(sn.fd[i].fd))
			goto out;
	tls.loop = 1;
	rc = det_wait_ready(sn.fd, &n, timeout_ns, epfd, &sn);
	if (rc > 0) {
		/* From the entry after the last one reported (the kernel moves
		 * a reported level-triggered entry to the back of its ready
		 * list: with a small maxevents the later ones get their turn). */
		rc = 0;
		int last = -1;
		for (int j = 0; j < n && rc < max; j++) {
			int i = (sn.next + j) % n;
			/* (poll's and epoll's bits are the same.) */
			uint32_t bits = (uint32_t)(unsigned short)sn.fd[i].revents & (sn.ev[i] | EPOLLERR | EPOLLHUP);
			if (!bits)
				continue;
			ev[rc].events = bits;
			ev[rc].data = sn.data[i];
			rc++;
			last = i;
		}
		if (last >= 0)
			ep_set_next(epfd, last + 1);
	}
	leave();
out:
	tls.in_shim--;
	errno = saved;
	return rc;
}

/* Deterministic mode: a blocking accept waits in turn until a connection
 * is there (connects are made in turn: one made earlier in virtual time
 * is in the kernel's queue by the time the acceptor's turn comes). */
static __thread int t_accept_fd;

static int det_accept_none(uint64_t obj)
{
	(void)obj;
	struct pollfd p = {.fd = t_accept_fd, .events = POLLIN};
	return uni_real.poll(&p, 1, 0) == 0;
}

int uni_shim_det_accept(int fd)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim)
		return 0;
	int saved = errno, done = 0;
	tls.in_shim++;
	if (!det_nonblocking(fd, 0) && det_me()) {
		det_point();
		t_accept_fd = fd;
		done = 1;
		while (det_accept_none(0)) {
			uni_det_block_begin(tls.ring, tls.ring_idx, UNI_DET_OBJ_ACCEPT, tls.vt, UINT64_MAX);
			if (uni_det_block_wait(tls.ring, tls.ring_idx, det_accept_none) < 0) {
				done = 0; /* the turn given up: as without it */
				break;
			}
		}
		leave();
	}
	tls.in_shim--;
	errno = saved;
	return done;
}

void uni_shim_det_outside(int on)
{
	if (UNI_LIKELY(!g_det) || tls.in_shim)
		return;
	int saved = errno;
	tls.in_shim++;
	if (on && !tls.det_out && det_me()) {
		det_point();
		tls.det_out = 1;
		uni_det_outside(tls.ring, tls.ring_idx);
	} else if (!on && tls.det_out) {
		tls.det_out = 0;
		charge();
		if (det_part())
			uni_det_turn(tls.ring, tls.ring_idx, tls.vt);
		leave();
	}
	tls.in_shim--;
	errno = saved;
}

void uni_shim_det_shutdown(int fd)
{
	uint32_t s = uni_fd_get(fd);
	if (!g_det || !s || atomic_load(&g_state) != ST_ATTACHED)
		return;
	if (s & UNI_FD_CHAN) {
		/* A socket pair's end: its reader sees the end (the kernel's
		 * answer); pollers in turn look again. */
		uni_shim_det_polled();
		return;
	}
	tls.in_shim++;
	det_written(g_conns[s - 1].shm_idx, 0, 1);
	tls.in_shim--;
}
