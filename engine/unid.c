/* unid: the session coordinator.
 *
 * Record mode (this file's whole job so far): create the session segment,
 * take every event the ranks' shims append to their rings, match the TCP
 * connections whose two ends are ranks of the session, write the trace,
 * notice ranks that die, and on stop flush the trace and remove the segment.
 *
 * Start-up handshake: with --ready-fd N, unid writes one line to fd N,
 * "ok PID" once it serves or "error: MESSAGE" when it cannot start, and
 * closes it. Without it, messages go to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uni/common.h"
#include "uni/compute_from.h"
#include "uni/config.h"
#include "uni/shm.h"
#include "uni/trace.h"
#include "uni/trace_write.h"
#include "nic.h"
#include "sim.h"

#define PENDING_CAP 4096u /* events kept for a connection whose peer is unknown */

struct dconn {
	uint32_t known;   /* CONN_OPEN seen */
	uint32_t state;   /* mirror of the segment's state */
	int32_t rank;
	uint32_t closed;
	struct uni_op *pending; /* events held until the peer end registers */
	uint32_t npending, cappending;
	uint64_t first_read_wait; /* simulate: when a read began waiting for the match */
	uint64_t owed_seen, owed_since; /* nic: the data it owes, seen since (real time) */
	/* A simulated NCCL end that sent before its peer's end opened: its
	 * SEND records wait for its CONN record (tools learn a connection's
	 * node from it, in file order). */
	uint32_t defer_on, ndefer, capdefer;
	struct uni_trec *defer;
};

struct drank {
	int pid;        /* 0: not attached (as far as unid has seen) */
	int pidfd;
	int detached;   /* sent UNI_EV_DETACH */
	uint64_t end_t; /* simulate: the clock of the thread that detached */
	uint64_t compute, waited; /* simulate: that thread's compute and waiting */
	uint64_t last_t;
	uint64_t attached_at, ended_at; /* real time unid saw it attach, end */
};

static struct {
	const char *session;
	struct uni_config cfg;
	struct uni_shm_hdr *h;
	struct uni_trace_writer tw;
	char trace_path[PATH_MAX];
	char compute_from[PATH_MAX]; /* --compute-from, absolute; "" without */
	int det;                     /* --deterministic */
	int said_sched;              /* say_sched_out said it */
	char shm_name[96];
	char lock_path[128];
	int lock_fd;
	int ready_fd;
	struct dconn *conns;
	struct drank ranks[UNI_MAX_RANKS];
	uint32_t *unmatched; /* conn indices waiting for their peer */
	uint32_t nunmatched;
	uint64_t unmodelled;
	uint64_t trace_errors;
	uint64_t last_progress; /* real time of the last event taken */
	int deadlock_seen;
	/* maybe_warp: the candidate sleeper at the last look, when to look
	 * next, the back-off while busy. */
	int warp_seen;
	uint32_t warp_cand;
	uint64_t warp_since, warp_progress, warp_next, warp_backoff;
	const char *warp_why; /* UNI_DEBUG_DEADLOCK: the last reason logged */
	int warp_wrank;
	/* nic horizon: threads found blocked outside the shim, by ring, with
	 * the clock they were found at (they count again once it moves). */
	uint8_t outside[UNI_MAX_RINGS];
	uint64_t cpu_seen[UNI_MAX_RINGS]; /* a ring's thread's CPU ticks when last looked at, + 1 */
	uint64_t outside_vt[UNI_MAX_RINGS];
	/* The first thread not running that held the horizon still for
	 * UNI_NIC_OUTSIDE_NS (D.h->stalls counts them; logged at the end);
	 * when the horizon last moved, and since when it was looked at
	 * without a break (h_prev_call: the last look). */
	char stall_first[200];
	uint64_t h_moved, h_watched, h_prev_call;
	uint64_t hv[UNI_MAX_RINGS]; /* each ring's value in the last horizon (UINT64_MAX: none) */
	uint64_t rank_min[UNI_MAX_RANKS]; /* the last horizon scan's minimum per rank ... */
	uint64_t extra_min;         /* ... and over what no rank's threads hold (owed data) */
	uint64_t hold_h, hold_hx;   /* the horizons it published last ... */
	uint32_t hold_r;            /* ... and the rank that held the first */
	uint32_t hold_req_read;     /* hold_req, read before the horizon of this loop */
	uint64_t pushed_seen[UNI_MAX_RINGS]; /* each ring's hint when drain last looked */
	uint32_t ring_seq[UNI_MAX_RINGS]; /* events taken from each ring since its THREAD */
	uint64_t last_h, h_since;
	volatile sig_atomic_t signalled;
} D = {.lock_fd = -1, .ready_fd = -1};

UNI_PRINTF(1, 2) static void logmsg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "unid[%s]: %s\n", D.session ? D.session : "?", buf);
	fflush(stderr);
}

/* Fails start-up: the message goes to the ready fd (unictl prints it) or
 * to stderr. */
UNI_PRINTF(1, 2) static _Noreturn void die_startup(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (D.ready_fd >= 0) {
		dprintf(D.ready_fd, "error: %s\n", buf);
		close(D.ready_fd);
	} else {
		fprintf(stderr, "unid: %s\n", buf);
	}
	exit(2);
}

/* Trace output ----------------------------------------------------------- */

static void trace_put(const struct uni_trec *r)
{
	if (UNI_UNLIKELY(r->kind == UNI_TR_SEND) && D.conns && r->conn < D.h->max_conns && D.conns[r->conn].defer_on) {
		struct dconn *dc = &D.conns[r->conn];
		if (dc->ndefer == dc->capdefer) {
			uint32_t cap = dc->capdefer ? 2 * dc->capdefer : 16;
			struct uni_trec *d = realloc(dc->defer, cap * sizeof(*d));
			if (d) {
				dc->defer = d;
				dc->capdefer = cap;
			}
		}
		if (dc->ndefer < dc->capdefer) {
			dc->defer[dc->ndefer++] = *r;
			return;
		}
	}
	if (uni_trace_append(&D.tw, r, 1) < 0 && D.trace_errors++ == 0)
		logmsg("trace: %s", D.tw.err);
}

/* The SEND records a connection end held back (defer_on): written, in
 * order (write), or dropped. Returns how many. */
static uint32_t defer_flush(uint32_t idx, int write)
{
	struct dconn *dc = &D.conns[idx];
	uint32_t n = dc->ndefer;
	dc->defer_on = 0;
	for (uint32_t i = 0; write && i < n; i++)
		trace_put(&dc->defer[i]);
	free(dc->defer);
	dc->defer = NULL;
	dc->ndefer = dc->capdefer = 0;
	return n;
}

static struct uni_trec rec_of(uint16_t kind, int rank)
{
	struct uni_trec r;
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.rank = rank;
	r.tid = -1;
	r.peer = -1;
	return r;
}

/* Ranks ------------------------------------------------------------------ */

/* Rank rank's process dr->pid ended (died: without detaching); reattach:
 * a new process has the rank already (its state is the new one's). */
static void rank_ended(int rank, int died, int reattach)
{
	struct drank *dr = &D.ranks[rank];
	struct uni_rank *rk = uni_shm_rank(D.h, (uint32_t)rank);
	struct uni_trec r = rec_of(UNI_TR_RANK_EXIT, rank);
	r.flags = died ? UNI_TRF_DIED : UNI_TRF_CLEAN;
	r.a = (uint64_t)dr->pid;
	/* Record mode: when unid saw the exit. Simulate mode: the rank's
	 * virtual end (its exiting thread's clock, else its last event). */
	if (D.cfg.mode == UNI_MODE_SIMULATE) {
		r.t0 = r.t1 = dr->detached ? dr->end_t : atomic_load(&rk->last_t);
		if (dr->detached) {
			r.off = dr->compute;
			r.len = dr->waited;
		}
	}
	else {
		/* Record mode: when the rank detached (else when unid saw the
		 * exit), and its main thread's CPU and waiting time. */
		r.t0 = r.t1 = dr->detached ? dr->end_t : uni_now_ns() - D.h->epoch_mono_ns;
		if (dr->detached) {
			r.off = dr->compute;
			r.len = dr->waited;
		}
	}
	trace_put(&r);
	if (died)
		logmsg("rank %d (pid %d) died without detaching", rank, dr->pid);
	if (!reattach)
		atomic_store(&rk->state, died ? UNI_RANK_DEAD : UNI_RANK_DETACHED);
	/* (Re-attached: which connections were the dead one's is not known;
	 * a reader of its bytes that never come waits, as before.) */
	if (died && !reattach && D.cfg.mode == UNI_MODE_SIMULATE)
		uni_sim_rank_died(rank);
	atomic_fetch_add(&D.h->rank_ends, 1);
	if (dr->pidfd >= 0)
		close(dr->pidfd);
	dr->pidfd = -1;
	dr->pid = 0;
	dr->detached = 0;
	dr->end_t = 0;
	dr->ended_at = uni_now_ns();
}

/* This job's start, and the ranks attached since (a session used again
 * runs jobs one after another, and keeps the earlier jobs' ranks in its
 * table): a rank that attaches again, or one after the whole world has,
 * begins the next job. (The earliest attach among the live ranks was
 * taken before: a rank that ended before its peers attached, one that
 * leaves at once, was then of an earlier job, and the others' deadlock
 * waiting for it was never reported: nccl deadlock nojoin, 1 run in 12.) */
static uint64_t g_job_start;
static uint8_t g_job_in[UNI_MAX_RANKS];
static uint32_t g_job_n, g_job_world;

static void job_attach(uint32_t i, uint32_t world, uint64_t now)
{
	if (!g_job_start || g_job_in[i] || g_job_n >= world || world != g_job_world) {
		memset(g_job_in, 0, sizeof(g_job_in));
		g_job_n = 0;
		g_job_start = now;
		g_job_world = world;
	}
	g_job_in[i] = 1;
	g_job_n++;
}

static void scan_ranks(void)
{
	for (uint32_t i = 0; i < D.h->max_ranks; i++) {
		struct uni_rank *rk = uni_shm_rank(D.h, i);
		if (atomic_load_explicit(&rk->state, memory_order_acquire) != UNI_RANK_LIVE)
			continue;
		struct drank *dr = &D.ranks[i];
		if (dr->pid == rk->pid)
			continue;
		if (dr->pid) /* the same rank re-attached from a new process */
			rank_ended((int)i, !dr->detached, 1);
		dr->pid = rk->pid;
		dr->detached = 0;
		dr->attached_at = uni_now_ns();
		if (i < UNI_MAX_RANKS)
			job_attach(i, rk->world_size, dr->attached_at);
		dr->pidfd = (int)syscall(SYS_pidfd_open, rk->pid, 0);
		struct uni_trec r = rec_of(UNI_TR_RANK_ATTACH, (int)i);
		r.a = (uint64_t)rk->pid;
		r.len = (uint64_t)rk->world_size;
		r.t0 = r.t1 = rk->attach_t;
		trace_put(&r);
	}
}

/* Connections ------------------------------------------------------------ */

static int addr_eq(const struct uni_addr *a, const struct uni_addr *b)
{
	return a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}

static void conn_set_state(uint32_t idx, uint32_t st)
{
	D.conns[idx].state = st;
	atomic_store_explicit(&uni_shm_conn(D.h, idx)->state, st, memory_order_release);
}

static void pending_drop(struct dconn *dc)
{
	free(dc->pending);
	dc->pending = NULL;
	dc->npending = dc->cappending = 0;
}

static void conn_op(const struct uni_op *op);

static void pending_flush(uint32_t idx)
{
	struct dconn *dc = &D.conns[idx];
	struct uni_op *p = dc->pending;
	uint32_t n = dc->npending;
	dc->pending = NULL;
	dc->npending = dc->cappending = 0;
	dc->first_read_wait = 0;
	for (uint32_t i = 0; i < n; i++)
		conn_op(&p[i]);
	free(p);
}

static void unmatched_remove(uint32_t pos)
{
	D.unmatched[pos] = D.unmatched[--D.nunmatched];
}

/* A request a rank thread waits on for its answer. */
static int is_request(const struct uni_ev *e)
{
	return (e->kind == UNI_EV_READ_REQ || e->kind == UNI_EV_SENT_REQ) && !(e->flags & UNI_EVF_LOCAL);
}

static void give_up(uint32_t idx)
{
	struct dconn *dc = &D.conns[idx];
	conn_set_state(idx, UNI_CONN_UNMODELLED);
	/* A read held here must not wait for ever: answer it. */
	for (uint32_t i = 0; i < dc->npending; i++)
		if (is_request(&dc->pending[i].e))
			uni_sim_answer_unmodelled(&dc->pending[i]);
	dc->first_read_wait = 0;
	pending_drop(dc);
	D.unmodelled++;
	for (uint32_t i = 0; i < D.nunmatched; i++)
		if (D.unmatched[i] == idx) {
			unmatched_remove(i);
			break;
		}
}

static void conn_record(uint32_t idx)
{
	struct uni_conn *c = uni_shm_conn(D.h, idx);
	struct uni_trec r = rec_of(UNI_TR_CONN, c->rank);
	r.conn = idx;
	r.peer = atomic_load(&c->peer_rank);
	r.a = atomic_load(&c->peer_conn);
	r.off = c->local.port;
	r.len = c->peer.port;
	if (c->flags & UNI_CONNF_STORE)
		r.flags |= UNI_TRF_STORE;
	if (c->flags & UNI_CONNF_CREDIT)
		r.flags |= UNI_TRF_CREDIT;
	trace_put(&r);
	if (D.conns[idx].defer_on)
		defer_flush(idx, 1);
}

static void conn_open(uint32_t idx)
{
	struct uni_conn *c = uni_shm_conn(D.h, idx);
	struct dconn *dc = &D.conns[idx];
	dc->known = 1;
	dc->rank = c->rank;
	dc->state = UNI_CONN_OPEN;
	for (uint32_t i = 0; i < D.nunmatched; i++) {
		uint32_t j = D.unmatched[i];
		struct uni_conn *o = uni_shm_conn(D.h, j);
		if (!addr_eq(&o->local, &c->peer) || !addr_eq(&o->peer, &c->local))
			continue;
		unmatched_remove(i);
		/* A process talking to itself (not modelled), unless it is a
		 * rank's client of the store its process hosts (followed in
		 * deterministic mode: it carries time between its threads). */
		if (o->rank == c->rank && !(o->flags & c->flags & UNI_CONNF_STORE)) {
			give_up(j);
			give_up(idx);
			return;
		}
		atomic_store(&c->peer_rank, o->rank);
		atomic_store(&c->peer_conn, j);
		atomic_store(&o->peer_rank, c->rank);
		atomic_store(&o->peer_conn, idx);
		conn_set_state(idx, UNI_CONN_MATCHED);
		conn_set_state(j, UNI_CONN_MATCHED);
		conn_record(j);
		conn_record(idx);
		pending_flush(j);
		pending_flush(idx);
		return;
	}
	D.unmatched[D.nunmatched++] = idx;
}

/* Events ----------------------------------------------------------------- */

/* An event on a connection whose peer is known: trace it (record mode) or
 * time it (simulate mode). */
static void conn_process(const struct uni_op *op)
{
	const struct uni_ev *e = &op->e;
	struct uni_trec r = rec_of(0, op->rank);
	r.tid = op->tid;
	r.seq = op->seq;
	r.conn = e->conn;
	r.peer = atomic_load(&uni_shm_conn(D.h, e->conn)->peer_rank);
	r.flags = e->flags;
	r.t0 = e->t0;
	r.t1 = e->t1;
	r.off = e->off;
	r.len = e->len;
	r.a = e->a;
	switch (e->kind) {
	case UNI_EV_SEND:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			uni_sim_send(op);
			return;
		}
		r.kind = UNI_TR_SEND;
		break;
	case UNI_EV_RECV:
		r.kind = UNI_TR_RECV;
		break;
	case UNI_EV_READ_REQ:
		uni_sim_read(op);
		return;
	case UNI_EV_SENT_REQ:
		uni_sim_sent(op);
		return;
	case UNI_EV_CONN_CLOSE:
		r.kind = UNI_TR_CONN_CLOSE;
		r.len = e->b;
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			uni_sim_reader_closed(e->conn);
			uni_sim_writer_closed(e->conn, e->t0, e->a);
		}
		break;
	default:
		return;
	}
	trace_put(&r);
}

static void conn_op(const struct uni_op *op)
{
	uint32_t idx = op->e.conn;
	if (idx >= D.h->max_conns)
		return;
	struct dconn *dc = &D.conns[idx];
	switch (dc->state) {
	case UNI_CONN_MATCHED:
		conn_process(op);
		break;
	case UNI_CONN_FREE:
		/* Its CONN_OPEN is still in another thread's ring (the loop
		 * thread reads before unid drained the connecting thread's
		 * ring): hold it like an unmatched one. */
	case UNI_CONN_OPEN:
		/* A simulated NCCL end knows its peer's node: its sends go into
		 * the network now, whenever the peer's end opens. */
		if (dc->state == UNI_CONN_OPEN && op->e.kind == UNI_EV_SEND && D.cfg.mode == UNI_MODE_SIMULATE &&
		    uni_shm_conn(D.h, idx)->fd < 0 && uni_shm_conn(D.h, idx)->vpeer1 > 0 &&
		    uni_shm_conn(D.h, idx)->vpeer1 - 1 != uni_shm_conn(D.h, idx)->rank /* (one node: not modelled) */) {
			dc->defer_on = 1;
			uni_sim_send(op);
			break;
		}
		if (dc->npending == PENDING_CAP) {
			give_up(idx);
			if (is_request(&op->e))
				uni_sim_answer_unmodelled(op);
			break;
		}
		if (dc->npending == dc->cappending) {
			uint32_t cap = dc->cappending ? dc->cappending * 2 : 16;
			struct uni_op *p = realloc(dc->pending, cap * sizeof(*p));
			if (!p) {
				give_up(idx);
				if (is_request(&op->e))
					uni_sim_answer_unmodelled(op);
				break;
			}
			dc->pending = p;
			dc->cappending = cap;
		}
		if (is_request(&op->e) && op->e.kind == UNI_EV_READ_REQ && !dc->first_read_wait)
			dc->first_read_wait = uni_now_ns();
		dc->pending[dc->npending++] = *op;
		break;
	default: /* unmodelled, or a slot unid never saw opened */
		if (is_request(&op->e))
			uni_sim_answer_unmodelled(op);
		break;
	}
}

/* The simulated NCCL's communicator segments (/dev/shm/uni-nccl-<key>):
 * rank 0 removes one once every rank mapped it; one whose ranks did not
 * all join (killed, or one never came) would stay: removed at the end. */
static struct {
	uint64_t (*key)[2];
	size_t n, cap;
} g_nccl_segs;

static void nccl_seg_add(uint64_t a, uint64_t b)
{
	for (size_t i = 0; i < g_nccl_segs.n; i++)
		if (g_nccl_segs.key[i][0] == a && g_nccl_segs.key[i][1] == b)
			return;
	if (g_nccl_segs.n == g_nccl_segs.cap) {
		size_t cap = g_nccl_segs.cap ? g_nccl_segs.cap * 2 : 16;
		void *p = realloc(g_nccl_segs.key, cap * sizeof(*g_nccl_segs.key));
		if (!p)
			return;
		g_nccl_segs.key = p;
		g_nccl_segs.cap = cap;
	}
	g_nccl_segs.key[g_nccl_segs.n][0] = a;
	g_nccl_segs.key[g_nccl_segs.n][1] = b;
	g_nccl_segs.n++;
}

static void nccl_segs_remove(void)
{
	for (size_t i = 0; i < g_nccl_segs.n; i++) {
		uint8_t k[16];
		char name[UNI_NCCL_SEG_NAME_LEN];
		memcpy(k, &g_nccl_segs.key[i][0], 8);
		memcpy(k + 8, &g_nccl_segs.key[i][1], 8);
		uni_nccl_seg_name(k, name);
		if (shm_unlink(name) == 0)
			logmsg("removed the NCCL communicator segment /dev/shm%s: not every rank of it had joined",
			       name);
		/* Send/recv messages kept outside its rings that no rank read
		 * (shim/nccl.c spill). */
		size_t left = uni_nccl_spills_remove(name, -1);
		if (left)
			logmsg("removed %zu send/recv messages of NCCL communicator /dev/shm%s that no rank received", left,
			       name);
	}
	free(g_nccl_segs.key);
	g_nccl_segs.key = NULL;
	g_nccl_segs.n = g_nccl_segs.cap = 0;
}

static void drop_pending_reqs(uint32_t ring, uint32_t tag);
static uint32_t conn_count(void);

static void handle(uint32_t ring_idx, struct uni_ring *ring, const struct uni_ev *e)
{
	int rank = ring->rank;
	/* The event's index among its thread's events (its id with the tid). */
	if (e->kind == UNI_EV_THREAD)
		D.ring_seq[ring_idx] = 0;
	/* (A string is text, not an event: it takes no index; nor does the
	 * turn's note of a byte awaited, UNI_EV_DET_WATCH, nor a group read
	 * dropped, UNI_EV_READ_CANCEL, nor what a reader will read,
	 * UNI_EV_WANT: uni_ev_note.) */
	uint32_t seq = uni_ev_note(e->kind) ? D.ring_seq[ring_idx] : D.ring_seq[ring_idx]++;
	struct uni_op op = {.e = *e, .rank = rank, .tid = ring->tid, .ring = ring_idx, .seq = seq};
	struct uni_trec r = rec_of(0, rank);
	r.tid = ring->tid;
	r.seq = seq;
	r.t0 = e->t0;
	r.t1 = e->t1;
	r.a = e->a;
	switch (e->kind) {
	case UNI_EV_THREAD:
		r.kind = UNI_TR_THREAD;
		r.off = e->b; /* its key */
		trace_put(&r);
		atomic_fetch_add(&uni_shm_rank(D.h, (uint32_t)rank)->threads, 1);
		break;
	case UNI_EV_CONN_OPEN:
		if (e->conn < D.h->max_conns) {
			if (D.cfg.mode == UNI_MODE_SIMULATE && e->a == (uint64_t)-1)
				uni_sim_opened(e->conn, ring_idx, ring->tid);
			conn_open(e->conn);
		}
		break;
	case UNI_EV_SEND:
	case UNI_EV_RECV:
		conn_op(&op);
		break;
	case UNI_EV_READ_REQ:
	case UNI_EV_SENT_REQ:
		conn_op(&op); /* answered, or waiting for bytes not final yet */
		atomic_store_explicit(&ring->req_taken, (uint32_t)e->a, memory_order_relaxed);
		break;
	case UNI_EV_DET_WATCH:
		uni_sim_det_watch(e->conn, e->off);
		break;
	case UNI_EV_WANT:
		if (D.cfg.mode == UNI_MODE_SIMULATE)
			uni_sim_want(e->conn, e->off);
		break;
	case UNI_EV_READ_CANCEL:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			drop_pending_reqs(ring_idx, (uint32_t)e->b);
			uni_sim_read_cancel(&op);
		}
		break;
	case UNI_EV_CONN_CLOSE:
		if (e->conn < D.h->max_conns) {
			D.conns[e->conn].closed = 1;
			conn_op(&op);
		}
		break;
	case UNI_EV_DETACH:
		if ((uint32_t)rank < UNI_MAX_RANKS) {
			D.ranks[rank].detached = 1;
			D.ranks[rank].end_t = e->t0;
			D.ranks[rank].compute = e->a;
			D.ranks[rank].waited = e->b;
		}
		break;
	case UNI_EV_OP:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			r.kind = UNI_TR_OP;
			r.off = e->b;
			r.flags = (uint16_t)(e->c ? 1 : 0);
			trace_put(&r);
		}
		break;
	case UNI_EV_STRING:
		r.kind = UNI_TR_STRING;
		r.conn = e->conn;
		r.seq = (uint32_t)e->off;
		r.peer = (int32_t)e->len;
		r.t0 = e->t0;
		r.t1 = e->t1;
		r.off = e->a;
		r.len = e->b;
		r.a = e->c;
		trace_put(&r);
		break;
	case UNI_EV_NCCL_COMM:
		r.kind = UNI_TR_NCCL_COMM;
		r.a = e->a;
		r.off = e->off;
		r.len = e->len;
		r.peer = (int32_t)(int64_t)e->c;
		trace_put(&r);
		nccl_seg_add(e->a, e->b);
		if (D.cfg.mode == UNI_MODE_SIMULATE && e->len < 65536) {
			/* The joining thread stands for the rank's reader until
			 * it opens an end (any of its ends' addresses: generation
			 * 0, a new communicator's). */
			uint8_t key8[8];
			struct uni_addr ad;
			memcpy(key8, &e->a, 8);
			uni_nccl_addr(key8, (int)e->len, 0, 0, 0, &ad);
			uni_sim_opener(&ad, ring_idx, ring->tid);
		}
		break;
	case UNI_EV_NCCL_OP:
		r.kind = UNI_TR_NCCL_OP;
		r.conn = e->conn;
		r.off = e->off;
		r.len = e->len;
		r.peer = (int32_t)(int64_t)e->b;
		r.flags = (uint16_t)e->c;
		trace_put(&r);
		break;
	case UNI_EV_SIGNAL:
	case UNI_EV_TAKE:
	case UNI_EV_DEP:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			r.kind = e->kind == UNI_EV_SIGNAL ? UNI_TR_SIGNAL
				 : e->kind == UNI_EV_TAKE ? UNI_TR_TAKE
							  : UNI_TR_DEP;
			r.flags = e->flags;
			trace_put(&r);
		}
		break;
	case UNI_EV_DELAY:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			r.kind = UNI_TR_DELAY;
			trace_put(&r);
		}
		break;
	case UNI_EV_IDLE:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			r.kind = UNI_TR_IDLE;
			r.a = 0;
			trace_put(&r);
		}
		break;
	case UNI_EV_COMPUTE:
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			r.kind = UNI_TR_COMPUTE;
			r.off = e->a;
			r.a = 0;
			trace_put(&r);
		}
		break;
	case UNI_EV_THREAD_END:
		atomic_fetch_sub(&uni_shm_rank(D.h, (uint32_t)rank)->threads, 1);
		if (D.cfg.mode == UNI_MODE_SIMULATE) {
			r.kind = UNI_TR_THREAD_END;
			r.flags = e->c ? 1 : 0;
			r.off = e->a;
			r.len = e->b;
			trace_put(&r);
		}
		break;
	default:
		break;
	}
	if ((uint32_t)rank < D.h->max_ranks) {
		struct uni_rank *rk = uni_shm_rank(D.h, (uint32_t)rank);
		atomic_fetch_add_explicit(&rk->events, 1, memory_order_relaxed);
		/* (A string's fields carry its text, not times.) */
		if (e->kind != UNI_EV_STRING && e->t1 > atomic_load_explicit(&rk->last_t, memory_order_relaxed))
			atomic_store_explicit(&rk->last_t, e->t1, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&D.h->events_total, 1, memory_order_relaxed);
}

/* Drops the requests of ring that wait on unmatched connections for their
 * other end (all of them, or tag: the reads of one group): answered once
 * the end came, they would go to whichever thread has the ring then. */
static void drop_pending_reqs(uint32_t ring, uint32_t tag)
{
	uint32_t n = conn_count();
	for (uint32_t c = 0; c < n; c++) {
		struct dconn *dc = &D.conns[c];
		if (dc->state == UNI_CONN_MATCHED || !dc->npending)
			continue;
		uint32_t k = 0;
		for (uint32_t j = 0; j < dc->npending; j++) {
			const struct uni_op *op = &dc->pending[j];
			if (op->ring == ring && is_request(&op->e) && (!tag || (uint32_t)op->e.b == tag))
				continue;
			dc->pending[k++] = *op;
		}
		dc->npending = k;
	}
}

static void ring_free(uint32_t idx, struct uni_ring *ring)
{
	uni_sim_forget_ring(idx);
	drop_pending_reqs(idx, 0);
	if (idx < UNI_MAX_RINGS)
		D.cpu_seen[idx] = 0;
	/* A thread killed while it waited in a sleep's hold. */
	if (atomic_exchange(&ring->holding, 0))
		atomic_fetch_sub(&D.h->hold_waiters, 1);
	atomic_store(&ring->tail, atomic_load(&ring->head));
	ring->wait_what[0] = 0; /* (a thread killed in an NCCL wait) */
	atomic_store_explicit(&ring->state, UNI_RING_FREE, memory_order_release);
}

/* Takes every record waiting; returns how many. */
static uint64_t drain(void)
{
	struct uni_ev buf[256];
	uint64_t total = 0;
	for (uint32_t i = 0; i < D.h->max_rings; i++) {
		/* Only rings pushed to since the last look (the count is read
		 * before the ring: a push after it moves it again). */
		uint64_t pushed = atomic_load_explicit(&uni_shm_hint(D.h, i)->pushed, memory_order_acquire);
		if (pushed == D.pushed_seen[i])
			continue;
		D.pushed_seen[i] = pushed;
		struct uni_ring *ring = uni_shm_ring(D.h, i);
		if (atomic_load_explicit(&ring->state, memory_order_acquire) != UNI_RING_LIVE)
			continue;
		uint32_t n;
		int ended = 0;
		while (!ended && (n = uni_ring_pop(ring, buf, UNI_ARRAY_LEN(buf))) > 0) {
			for (uint32_t k = 0; k < n; k++) {
				handle(i, ring, &buf[k]);
				if (buf[k].kind == UNI_EV_THREAD_END)
					ended = 1;
			}
			total += n;
		}
		if (atomic_load(&ring->prod_waiting)) {
			atomic_store(&ring->prod_waiting, 0);
			uni_futex_wake(&ring->prod_waiting, 1);
		}
		if (ended)
			ring_free(i, ring);
	}
	return total;
}

/* A rank whose process is gone: take what its rings still hold, free them,
 * and say how it ended. */
static void check_ranks(void)
{
	for (uint32_t i = 0; i < D.h->max_ranks; i++) {
		struct drank *dr = &D.ranks[i];
		if (!dr->pid)
			continue;
		int gone;
		if (dr->pidfd >= 0) {
			struct pollfd p = {.fd = dr->pidfd, .events = POLLIN};
			gone = poll(&p, 1, 0) > 0;
		} else {
			gone = uni_pid_dead(dr->pid);
		}
		if (!gone)
			continue;
		drain();
		for (uint32_t k = 0; k < D.h->max_rings; k++) {
			struct uni_ring *ring = uni_shm_ring(D.h, k);
			if (atomic_load(&ring->state) == UNI_RING_LIVE && ring->pid == dr->pid)
				ring_free(k, ring);
		}
		/* (A new process that took the rank meanwhile keeps it: its
		 * state and threads are its own; scan_ranks takes it next.) */
		int reattach = uni_shm_rank(D.h, i)->pid != dr->pid;
		if (!reattach)
			atomic_store(&uni_shm_rank(D.h, i)->threads, 0);
		rank_ended((int)i, !dr->detached, reattach);
	}
}

static int ring_is_live_rank(struct uni_ring *ring);

/* The nic horizon --------------------------------------------------------- */

static int task_running_now(int pid, int tid)
{
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/stat", pid, tid);
	return uni_proc_state(p) == 'R';
}

/* Whether the thread of ring k is still at work outside the shim: running
 * or waiting for the disk (R, D), or it used CPU since the last time it
 * was looked at (at least UNI_NIC_OUTSIDE_NS ago), or it was not looked at
 * before. One look at the state
 * found a rank that imported Python modules asleep for a moment (a page
 * read from disk) and left it out: a connect that should have waited for
 * its listen went first (found by --compute-from, docs/simulate.md). */
static int task_running(uint32_t k, int pid, int tid)
{
	char p[96];
	uint64_t ticks;
	snprintf(p, sizeof(p), "/proc/%d/task/%d/stat", pid, tid);
	char st = uni_proc_stat(p, &ticks);
	if (!st)
		return 0;
	uint64_t cpu = ticks + 1; /* 0: never looked */
	/* The first look only notes its CPU time: a thread is left out when
	 * it also used none until the next, UNI_NIC_OUTSIDE_NS later. */
	int moved = !D.cpu_seen[k] || cpu != D.cpu_seen[k];
	D.cpu_seen[k] = cpu;
	return st == 'R' || st == 'D' || moved;
}

/* The minimum hold over the live rank threads' rings (horizon()). */
static uint64_t scan_rings(uint64_t now, uint32_t *hkp)
{
	uint64_t h = UINT64_MAX;
	uint32_t hk = 0;
	for (uint32_t i = 0; i < D.h->max_ranks && i < UNI_MAX_RANKS; i++)
		D.rank_min[i] = UINT64_MAX;
	for (uint32_t k = 0; k < D.h->max_rings; k++) {
		struct uni_ring *ring = uni_shm_ring(D.h, k);
		D.hv[k] = UINT64_MAX;
		if (!ring_is_live_rank(ring))
			continue;
		uint32_t wk = atomic_load_explicit(&ring->wait_kind, memory_order_acquire);
		/* A reader whose request unid took is answered when its bytes
		 * are final, at their arrival or later (sim.c), or answered
		 * already (the answer published its clock); one waiting for
		 * room to write waits for its peer's reads. A request unid has
		 * not taken yet may be answered at once, behind the network
		 * time: the thread counts at its clock until then. */
		if (wk == UNI_WAIT_READ &&
		    ((ring->wait_obj & UNI_WAIT_OBJ_ROOM) ||
		     atomic_load_explicit(&ring->req_taken, memory_order_relaxed) == ring->wait_req))
			continue;
		uint64_t floor = atomic_load_explicit(&ring->wake_floor, memory_order_acquire);
		uint64_t v;
		if (wk == UNI_WAIT_COND || wk == UNI_WAIT_POLL) {
			/* Whatever wakes it carries a later time: counted only once
			 * woken (until it publishes), or at its deadline. */
			v = floor;
			if (ring->wait_vdl && ring->wait_vdl < v)
				v = ring->wait_vdl;
			/* A simulated NCCL rank meeting its peers: an answer it
			 * has not acted on, or the end of its operation's reads. */
			uint32_t at = atomic_load_explicit(&ring->async_tag, memory_order_acquire);
			if (at && atomic_load_explicit(&ring->resp_seq, memory_order_acquire) - at < ring->async_n &&
			    ring->resp_t < v)
				v = ring->resp_t;
			/* (soft_since may be later than now, read before the
			 * scan: fresh, not 2^64 ns old.) */
			uint64_t sf = atomic_load_explicit(&ring->soft_floor, memory_order_acquire);
			uint64_t since = atomic_load_explicit(&ring->soft_since, memory_order_relaxed);
			if (sf && sf - 1 < v && (since > now || now - since < UNI_NIC_SOFT_STALE_NS))
				v = sf - 1;
		} else {
			v = atomic_load_explicit(&ring->vt_pub, memory_order_acquire);
			if (floor < v)
				v = floor;
		}
		D.hv[k] = v;
		if (v == UINT64_MAX)
			continue;
		if (D.outside[k]) {
			if (D.outside_vt[k] == v)
				continue;
			D.outside[k] = 0;
		}
		if (ring->rank >= 0 && (uint32_t)ring->rank < UNI_MAX_RANKS && v < D.rank_min[ring->rank])
			D.rank_min[ring->rank] = v;
		if (v < h) {
			h = v;
			hk = k;
		}
	}
	*hkp = hk;
	return h;
}

/* The rank at the other end of connection c (-1: not known). */
static int conn_peer_rank(uint64_t c)
{
	return c < D.h->max_conns ? atomic_load(&uni_shm_conn(D.h, (uint32_t)c)->peer_rank) : -1;
}

/* Connection slots handed out so far. */
static uint32_t conn_count(void)
{
	uint32_t n = atomic_load(&D.h->next_conn);
	return n < D.h->max_conns ? n : D.h->max_conns;
}

/* Data sent on a connection whose other end has not registered yet (the
 * simulated NCCL opens its ends as it needs them) is not in the network
 * yet: it holds the network at its stamp. Taken after draining the rings
 * (the sender may have stopped holding the horizon right after sending). */
static uint64_t pending_bound(void)
{
	uint64_t h = UINT64_MAX;
	uint32_t nconn = conn_count();
	for (uint32_t c = 0; c < nconn; c++) {
		if (D.conns[c].state == UNI_CONN_MATCHED)
			continue;
		for (uint32_t i = 0; i < D.conns[c].npending; i++) {
			const struct uni_op *p = &D.conns[c].pending[i];
			if (p->e.kind == UNI_EV_SEND && p->e.t0 < h)
				h = p->e.t0;
		}
	}
	return h;
}

/* The earliest virtual time at which any rank thread could still start a
 * transfer: the minimum of the clocks the threads published, leaving out
 * threads blocked in a condition wait or a read (whatever wakes them
 * carries a later time), idle event loops, and threads found blocked
 * outside the shim (DESIGN: "no stalls"; if one of them sends later, its
 * transfer starts at the network time and is counted as late). Until
 * every rank of the world has attached it is 0. Read before draining the
 * rings: a thread publishes its state after pushing what it sent. */
/* The start of this job (job_attach). */
static uint64_t job_first_attach(void)
{
	return g_job_start ? g_job_start : UINT64_MAX;
}

/* Rank i exited or died during this job (after first_attach): DETACHED
 * or DEAD, 0 when not. */
static uint32_t ended_in_job(uint32_t i, uint64_t first_attach)
{
	uint32_t st = atomic_load_explicit(&uni_shm_rank(D.h, i)->state, memory_order_acquire);
	return !D.ranks[i].pid && (st == UNI_RANK_DETACHED || st == UNI_RANK_DEAD) &&
			       D.ranks[i].ended_at >= first_attach
		       ? st
		       : 0;
}

static uint64_t horizon(uint64_t now)
{
	/* Ranks that have been here: live ones and those that ended (a rank
	 * that finished first must not freeze the network for the others:
	 * counting only live ones, a rank still reading the last bytes of
	 * one that exited waited for ever). */
	int live = 0, seen = 0, world = 0;
	for (uint32_t i = 0; i < D.h->max_ranks; i++)
		if (D.ranks[i].pid) {
			live++;
			if (uni_shm_rank(D.h, i)->world_size > world)
				world = uni_shm_rank(D.h, i)->world_size;
		}
	/* Ended during this job (after its earliest live rank attached; not
	 * one of an earlier job in a session that is used again). */
	uint64_t first_attach = job_first_attach();
	for (uint32_t i = 0; i < D.h->max_ranks; i++)
		seen += D.ranks[i].pid || ended_in_job(i, first_attach);
	if (!live || seen < world)
		return 0;
	/* One scan is not atomic across rings: a thread that hands its time
	 * to another (a wake floor) and then goes idle could be read idle
	 * after the other was read without the floor. Such hand-offs move
	 * D.h->handoffs before the hand-giver goes idle, so a scan during
	 * which it did not move saw every hand-off it needed. */
	uint64_t h = UINT64_MAX;
	uint32_t hk = 0;
	for (int tries = 0;; tries++) {
		uint32_t c0 = atomic_load(&D.h->handoffs);
		h = scan_rings(now, &hk);
		if (atomic_load(&D.h->handoffs) == c0)
			break;
		if (tries == 16)
			return 0; /* busy: the network waits for a quieter moment */
	}
	static uint64_t dbg_h;
	if ((debug_nic2() || (debug_nic() && uni_sim_network_time() != dbg_h && h != UINT64_MAX)) &&
	    h > uni_sim_network_time() + (debug_nic2() ? 10000000ull : 100000000ull)) {
		dbg_h = uni_sim_network_time();
		logmsg("horizon %llu, network %llu: rings:", (unsigned long long)h,
		       (unsigned long long)uni_sim_network_time());
		for (uint32_t k = 0; k < D.h->max_rings; k++) {
			struct uni_ring *ring = uni_shm_ring(D.h, k);
			if (!ring_is_live_rank(ring))
				continue;
			logmsg("  ring %u rank %d tid %d wait %u obj %llx vt_pub %llu floor %llu vdl %llu out %u sending %u",
			       k, ring->rank, ring->tid, atomic_load(&ring->wait_kind),
			       (unsigned long long)ring->wait_obj, (unsigned long long)atomic_load(&ring->vt_pub),
			       (unsigned long long)atomic_load(&ring->wake_floor), (unsigned long long)ring->wait_vdl,
			       D.outside[k], atomic_load(&ring->wait_sending));
		}
	}
	/* Data a connection owes (posted and released, not written yet: the
	 * loop thread writes it later, stamped then): counted at its stamp,
	 * unless it stays owed for 250 ms of real time while reads wait (a
	 * table the shim never cleared must not hold the network for ever). */
	uint32_t nconn = conn_count();
	D.extra_min = UINT64_MAX;
	for (uint32_t c = 0; c < nconn; c++) {
		if (D.conns[c].state != UNI_CONN_MATCHED)
			continue;
		uint64_t o = atomic_load_explicit(&uni_shm_conn(D.h, c)->owed, memory_order_acquire);
		if (o == UINT64_MAX || o == 0)
			continue;
		if (o != D.conns[c].owed_seen) {
			D.conns[c].owed_seen = o;
			D.conns[c].owed_since = now;
		} else if (uni_sim_waiting_reads() && now - D.conns[c].owed_since > UNI_NIC_OUTSIDE_NS) {
			if (debug_nic() && D.conns[c].owed_since != 1) {
				logmsg("horizon: connection %u owes data stamped %llu for 250 ms; left out", c,
				       (unsigned long long)o);
				D.conns[c].owed_since = 1;
			}
			continue;
		}
		if (debug_nic2())
			logmsg("  conn %u owes %llu", c, (unsigned long long)o);
		if (o < h)
			h = o;
		if (o < D.extra_min)
			D.extra_min = o;
	}
	static uint64_t dbg_last;
	if (debug_nic() && now - dbg_last > 500000000ull) {
		dbg_last = now;
		struct uni_ring *hr = uni_shm_ring(D.h, hk);
		logmsg("horizon %llu held by rank %d tid %d (wait %u) waiting reads %llu net %llu", (unsigned long long)h,
		       h == UINT64_MAX ? -1 : hr->rank, h == UINT64_MAX ? -1 : hr->tid, atomic_load(&hr->wait_kind),
		       (unsigned long long)uni_sim_waiting_reads(), (unsigned long long)uni_sim_network_time());
	}
	atomic_store_explicit(&D.h->horizon_ring, h == UINT64_MAX ? 0 : hk + 1, memory_order_release);
	/* (For the count of stalls: since when the horizon has been looked at
	 * without a break, and when it last moved.) */
	if (now - D.h_prev_call > 50000000ull)
		D.h_watched = now;
	D.h_prev_call = now;
	if (h != D.last_h) {
		D.last_h = h;
		D.h_since = now;
		D.h_moved = now;
	} else if (h != UINT64_MAX && (uni_sim_waiting_reads() || atomic_load(&D.h->hold_waiters)) &&
		   now - D.h_since > UNI_NIC_OUTSIDE_NS) {
		/* Stuck: every thread that holds the horizon back while not
		 * running is left out at once (one at a time, a few such
		 * threads per rank took longer than the deadlock detector
		 * waits). */
		D.h_since = now;
		/* How long it stood still while anybody looked (under
		 * alpha-beta it is looked at only while a sleep waits: a new
		 * wait that finds a thread not running at the old value leaves
		 * it out at once, at no cost, and is not counted). */
		uint64_t stood = now - (D.h_moved > D.h_watched ? D.h_moved : D.h_watched);
		int left = stood < UNI_NIC_OUTSIDE_NS / 2; /* (held it; or not counted) */
		for (uint32_t k = 0; k < D.h->max_rings; k++) {
			struct uni_ring *ring = uni_shm_ring(D.h, k);
			if (D.outside[k] || !ring_is_live_rank(ring) || D.hv[k] == UINT64_MAX ||
			    atomic_load_explicit(&ring->wait_kind, memory_order_acquire) == UNI_WAIT_READ ||
			    task_running(k, ring->pid, ring->tid))
				continue;
			/* (Counted where it held the horizon: the others left out
			 * with it, sleepers among them, did not stop it.) */
			if (D.hv[k] == h && !left++ && (atomic_fetch_add(&D.h->stall_ns, stood),
							     !atomic_fetch_add(&D.h->stalls, 1)))
				snprintf(D.stall_first, sizeof(D.stall_first), "rank %d thread %d at %.3f ms%s%.120s",
					 ring->rank, ring->tid, (double)D.hv[k] / 1e6, ring->wait_what[0] ? ", " : "",
					 ring->wait_what);
			D.outside[k] = 1;
			D.outside_vt[k] = D.hv[k];
			if (debug_nic()) {
				char p[96], sc[64] = "?";
				snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", ring->pid, ring->tid);
				FILE *f = fopen(p, "r");
				if (f) {
					if (!fgets(sc, sizeof(sc), f))
						sc[0] = 0;
					fclose(f);
				}
				sc[strcspn(sc, "\n")] = 0;
				logmsg("horizon: rank %d tid %d (clock %llu, wait %u%s%.80s) blocked outside the shim "
				       "(syscall %s); left out",
				       ring->rank, ring->tid, (unsigned long long)D.hv[k],
				       atomic_load(&ring->wait_kind), ring->wait_what[0] ? ": " : "", ring->wait_what, sc);
			}
		}
	}
	return h;
}

/* Deterministic mode under nic or topology (docs/simulate.md "Deterministic
 * mode"): the network moves only when the thread that has the turn asks
 * (det_sync_req), toward a time no thread of the turn can send before; at
 * most to the stamp of data sent where no peer registered yet. Not held
 * at the stamp of data a connection owes, as the horizon is: its loop
 * thread has the turn before the network passes it (a poster's wake-up
 * carries the stamp), unless the turn's socket buffer is full, and then
 * the network held there waited for reads of bytes it had not let leave.
 * Called after a drain that followed the read of req: every event pushed
 * before the request is in. */
static int det_net(void)
{
	return D.det && uni_sim_is_nic() && !atomic_load_explicit(&D.h->det_off, memory_order_acquire);
}

/* Deterministic mode: said once, as it happens, when the schedule logs
 * run out (a stream without one is read outside the turn). */
static void say_sched_out(void)
{
	uint32_t used, cap;
	uint64_t denied;
	uni_sim_sched_logs(&used, &cap, &denied);
	if (!denied)
		return;
	D.said_sched = 1;
	logmsg("deterministic: all %u schedule logs are taken (streams of connections, the simulated NCCL's by "
	       "peer and channel): the reads of further streams are not in turn, and a run may differ from another "
	       "from here", cap);
}

static void det_sync(uint32_t req)
{
	uint64_t h = D.h->det_sync_h;
	uint64_t pb = pending_bound();
	if (pb < h)
		h = pb;
	uint64_t fin = uni_sim_det_step(h);
	/* Data sent where no peer registered yet enters the network at its
	 * stamp: final no further (an empty network said for ever). */
	if (fin > pb)
		fin = pb;
	atomic_store_explicit(&D.h->det_sync_now, uni_sim_network_time(), memory_order_release);
	if (fin > atomic_load_explicit(&D.h->det_sync_fin, memory_order_relaxed))
		atomic_store_explicit(&D.h->det_sync_fin, fin, memory_order_release);
	atomic_fetch_add_explicit(&D.h->det_syncs, 1, memory_order_relaxed);
	atomic_store_explicit(&D.h->det_sync_ack, req, memory_order_release);
	uni_futex_wake(&D.h->det_sync_ack, INT32_MAX);
}

/* Sleeps and connects in causal order (docs/simulate.md): a sleeper whose
 * real time is up waits until the horizon reaches its virtual end. h is the horizon
 * (0: not every rank attached, or a busy scan: the sleepers do not wait
 * on it). The horizon usually counts the sleeper that asked at its own
 * virtual end, so h stops there while anything else may act first. */
static void publish_hold(uint64_t h, uint64_t pb)
{
	/* Taken before the horizon was computed: a sleeper that took its
	 * number after is answered at the next loop. */
	uint32_t req = D.hold_req_read;
	/* A sleeper does not wait for the threads of its own rank (their
	 * order with it is the program's, through what the shim tracks
	 * between threads; a thread that computes holding the GIL enters the
	 * shim only when asked for it, so a sleeper of its process waited for
	 * it for good): the horizon without the rank that holds it, for that
	 * rank's sleepers. */
	uint64_t first = UINT64_MAX, second = UINT64_MAX;
	uint32_t r1 = UINT32_MAX;
	for (uint32_t i = 0; h && i < D.h->max_ranks && i < UNI_MAX_RANKS; i++) {
		uint64_t v = D.rank_min[i];
		if (v < first) {
			second = first;
			first = v;
			r1 = i;
		} else if (v < second)
			second = v;
	}
	uint64_t rest = D.extra_min < pb ? D.extra_min : pb;
	uint64_t hx = h ? (second < rest ? second : rest) : 0;
	if (r1 == UINT32_MAX)
		hx = h;
	if (h == D.hold_h && hx == D.hold_hx && r1 == D.hold_r &&
	    req == atomic_load_explicit(&D.h->hold_ack, memory_order_relaxed))
		return; /* nothing new: the waiters sleep on */
	D.hold_h = h;
	D.hold_hx = hx;
	D.hold_r = r1;
	atomic_store_explicit(&D.h->hold_h, h, memory_order_relaxed);
	atomic_store_explicit(&D.h->hold_hx, hx, memory_order_relaxed);
	atomic_store_explicit(&D.h->hold_rank, r1, memory_order_relaxed);
	atomic_store_explicit(&D.h->hold_ack, req, memory_order_release);
	atomic_fetch_add_explicit(&D.h->hold_seq, 1, memory_order_release);
	uni_futex_wake(&D.h->hold_seq, INT32_MAX);
}

/* Deadlock detection (simulate mode) -------------------------------------- */

#define DEADLOCK_QUIET_NS 2000000000ull /* no event for this long ... */

static int any_thread_running(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *de;
	int running = 0;
	while (!running && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			running = task_running_now(pid, atoi(de->d_name));
	closedir(d);
	return running;
}

static void thread_comm(int pid, int tid, char *out, size_t len)
{
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/comm", pid, tid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		n = snprintf(out, len, "?");
	out[n] = 0;
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = 0;
}

static int ring_is_live_rank(struct uni_ring *ring)
{
	if (atomic_load(&ring->state) != UNI_RING_LIVE || (uint32_t)ring->rank >= D.h->max_ranks)
		return 0;
	return D.ranks[ring->rank].pid == ring->pid;
}

/* Writes the report and stops the ranks. */
static void report_deadlock(uint64_t now)
{
	char path[512];
	/* The trace path fits in the segment's 512 bytes (checked at start). */
	if (strlen(D.trace_path) + sizeof(".deadlock.txt") <= sizeof(path))
		memcpy(path, D.trace_path, strlen(D.trace_path)), strcpy(path + strlen(D.trace_path), ".deadlock.txt");
	else
		snprintf(path, sizeof(path), "/tmp/uni.%s.deadlock.txt", D.session);
	FILE *f = fopen(path, "w");
	if (!f) {
		snprintf(path, sizeof(path), "/tmp/uni.%s.deadlock.txt", D.session);
		f = fopen(path, "w");
	}
	FILE *out = f ? f : stderr;
	fprintf(out, "deadlock in session '%s': every rank waits and nothing is in flight "
		     "(no event, and no move of the network, for %.1f s)\n", D.session, (double)(now - D.last_progress) / 1e9);
	uint64_t first_attach = job_first_attach();
	for (uint32_t i = 0; i < D.h->max_ranks; i++) {
		struct drank *dr = &D.ranks[i];
		if (!dr->pid) {
			uint32_t st = ended_in_job(i, first_attach);
			if (st)
				fprintf(out, "\nrank %u: %s %.1f s before\n", i,
					st == UNI_RANK_DEAD ? "died" : "ended", (double)(now - dr->ended_at) / 1e9);
			continue;
		}
		fprintf(out, "\nrank %u (pid %d):\n", i, dr->pid);
		for (uint32_t c = 0; c < conn_count(); c++) {
			struct uni_conn *cn = uni_shm_conn(D.h, c);
			if (cn->rank != (int)i || D.conns[c].state != UNI_CONN_MATCHED)
				continue;
			uint32_t out_rr = atomic_load(&cn->rr_outstanding);
			if (out_rr)
				fprintf(out, "  waits for data from rank %d (connection %u): %u Gloo receive%s "
					     "announced and not served, the last one slot 0x%llx, %u bytes\n",
					atomic_load(&cn->peer_rank), c, out_rr, out_rr == 1 ? "" : "s",
					(unsigned long long)cn->rr_slot, cn->rr_len);
			uint32_t sr = atomic_load(&cn->sr_waiting);
			if (sr)
				fprintf(out, "  waits to send to rank %d (connection %u): %u Gloo send%s posted "
					     "that rank %d has not posted the receive for, the latest one slot 0x%llx, "
					     "%u bytes\n",
					atomic_load(&cn->peer_rank), c, sr, sr == 1 ? "" : "s", atomic_load(&cn->peer_rank),
					(unsigned long long)cn->sr_slot, cn->sr_len);
		}
		for (uint32_t k = 0; k < D.h->max_rings; k++) {
			struct uni_ring *ring = uni_shm_ring(D.h, k);
			if (!ring_is_live_rank(ring) || ring->rank != (int)i)
				continue;
			uint32_t wk = atomic_load(&ring->wait_kind);
			char comm[32];
			thread_comm(ring->pid, ring->tid, comm, sizeof(comm));
			if (ring->dispatcher && wk != UNI_WAIT_COND) {
				fprintf(out, "  thread %d (%s): Gloo's event loop, idle\n", ring->tid, comm);
				continue;
			}
			char what[sizeof(ring->wait_what)];
			memcpy(what, ring->wait_what, sizeof(what));
			what[sizeof(what) - 1] = 0;
			if (what[0])
				fprintf(out, "  thread %d (%s): %s; for %.1f s, since virtual time %.3f ms\n", ring->tid,
					comm, what, (double)(now - ring->wait_since) / 1e9, (double)ring->wait_vt / 1e6);
			else if (wk == UNI_WAIT_COND && D.h->det && !(ring->wait_obj >> 63) && (ring->wait_obj & 3) == 2)
				/* (shim/det.h: UNI_DET_OBJ_MUTEX, a mutex in turn) */
				fprintf(out, "  thread %d (%s)%s: waiting for mutex %#llx for %.1f s, since virtual time "
					     "%.3f ms\n", ring->tid, comm, ring->dispatcher ? " (Gloo's event loop)" : "",
					(unsigned long long)(ring->wait_obj & ~3ull), (double)(now - ring->wait_since) / 1e9,
					(double)ring->wait_vt / 1e6);
			else if (wk == UNI_WAIT_COND)
				fprintf(out, "  thread %d (%s): blocked on condition variable %#llx for %.1f s, "
					     "since virtual time %.3f ms\n", ring->tid, comm,
					(unsigned long long)ring->wait_obj, (double)(now - ring->wait_since) / 1e9,
					(double)ring->wait_vt / 1e6);
			else if (wk == UNI_WAIT_POLL)
				fprintf(out, "  thread %d (%s): waiting for I/O in epoll_wait\n", ring->tid, comm);
			else if (wk == UNI_WAIT_READ && (ring->wait_obj & UNI_WAIT_OBJ_ROOM))
				fprintf(out, "  thread %d (%s): in a blocking write on connection %llu (to rank %d) "
					     "for %.1f s: the socket is full, its peer does not read\n",
					ring->tid, comm, (unsigned long long)(ring->wait_obj & ~UNI_WAIT_OBJ_ROOM),
					conn_peer_rank(ring->wait_obj & ~UNI_WAIT_OBJ_ROOM),
					(double)(now - ring->wait_since) / 1e9);
			else if (wk == UNI_WAIT_READ)
				fprintf(out, "  thread %d (%s): waiting for bytes on connection %llu (from rank %d) for "
					     "%.1f s, since virtual time %.3f ms\n",
					ring->tid, comm, (unsigned long long)ring->wait_obj, conn_peer_rank(ring->wait_obj),
					(double)(now - ring->wait_since) / 1e9, (double)ring->wait_vt / 1e6);
			else
				fprintf(out, "  thread %d (%s): blocked outside the shim\n", ring->tid, comm);
			if (ring->stack[0]) {
				fprintf(out, "    native stack:\n");
				for (const char *p = ring->stack; *p;) {
					const char *nl = strchr(p, '\n');
					int len = nl ? (int)(nl - p) : (int)strlen(p);
					fprintf(out, "      %.*s\n", len, p);
					p += len + (nl ? 1 : 0);
				}
			}
			struct uni_trec r = rec_of(UNI_TR_DEADLOCK, ring->rank);
			r.tid = ring->tid;
			r.t0 = r.t1 = ring->wait_vt;
			r.off = wk;
			r.a = ring->wait_obj;
			if (what[0]) {
				r.off = UNI_TR_WAIT_NCCL;
				r.a = ring->wait_nccl;
			} else if (wk == UNI_WAIT_READ && (ring->wait_obj & UNI_WAIT_OBJ_ROOM)) {
				r.off = UNI_TR_WAIT_ROOM;
				r.a = ring->wait_obj & ~UNI_WAIT_OBJ_ROOM;
				r.peer = conn_peer_rank(r.a);
			}
			r.len = now - ring->wait_since;
			trace_put(&r);
		}
	}
	if (f)
		fclose(f);
	memcpy(D.h->deadlock_report, path, sizeof(path));
	D.h->deadlock_report[sizeof(D.h->deadlock_report) - 1] = 0;
	atomic_store(&D.h->deadlock, 1);
	logmsg("deadlock: every rank waits and nothing is in flight; report in %s; stopping the ranks", path);
	if (debug_nic()) {
		logmsg("network time %llu; streams:", (unsigned long long)uni_sim_network_time());
		uni_sim_debug_dump(stderr);
	}
	uni_trace_flush(&D.tw);
	for (uint32_t i = 0; i < D.h->max_ranks; i++)
		if (D.ranks[i].pid)
			kill(D.ranks[i].pid, SIGTERM);
}

/* UNI_DEBUG_DEADLOCK: why a quiet session was not called a deadlock. */
static int debug_deadlock(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("UNI_DEBUG_DEADLOCK") != NULL;
	return on;
}

/* A rank thread waits in a call of the simulated NCCL. */
static int nccl_waiting(void)
{
	for (uint32_t k = 0; k < D.h->max_rings; k++) {
		struct uni_ring *ring = uni_shm_ring(D.h, k);
		if (ring_is_live_rank(ring) && ring->wait_what[0])
			return 1;
	}
	return 0;
}

static void check_deadlock(uint64_t now)
{
	if (D.cfg.mode != UNI_MODE_SIMULATE || atomic_load(&D.h->deadlock) ||
	    now - D.last_progress < DEADLOCK_QUIET_NS) {
		D.deadlock_seen = 0;
		return;
	}
	const char *why = "";
	int live = 0, world = 0, wrank = -1, wtid = 0;
	for (uint32_t i = 0; i < D.h->max_ranks; i++) {
		if (!D.ranks[i].pid)
			continue;
		live++;
		world = uni_shm_rank(D.h, i)->world_size;
		wrank = (int)i;
		if (uni_pid_dead(D.ranks[i].pid) || any_thread_running(D.ranks[i].pid)) {
			why = "a rank is dead or has a running thread";
			goto no;
		}
	}
	/* While a thread waits in a call of the simulated NCCL, a rank that
	 * ended during this job (exited, or died; not one of an earlier job
	 * in a session used again) counts: it will do nothing more (a rank
	 * that waits in ncclCommInitRank for one that exited without joining
	 * waits for ever). Otherwise an ended rank keeps the old rule (a
	 * rank's last thread may be at work outside the shim, which the
	 * detector does not see). */
	int ended = 0;
	if (live && nccl_waiting()) {
		uint64_t first_attach = job_first_attach();
		for (uint32_t i = 0; i < D.h->max_ranks && (int)i < world; i++)
			ended += ended_in_job(i, first_attach) != 0;
	}
	if (!live || live + ended < world) {
		why = "not every rank is attached";
		goto no;
	}
	int blocked[UNI_MAX_RANKS] = {0};
	for (uint32_t k = 0; k < D.h->max_rings; k++) {
		struct uni_ring *ring = uni_shm_ring(D.h, k);
		if (!ring_is_live_rank(ring))
			continue;
		uint32_t wk = atomic_load(&ring->wait_kind);
		wrank = ring->rank;
		wtid = ring->tid;
		if (wk == UNI_WAIT_SLEEP) {
			why = "a thread sleeps";
			goto no;
		}
		/* In a call of the simulated NCCL: a join waits with no kind. */
		if (wk != UNI_WAIT_COND && wk != UNI_WAIT_READ && !ring->wait_what[0])
			continue;
		uint64_t since = __atomic_load_n(&ring->wait_since, __ATOMIC_ACQUIRE);
		if (since > now || now - since < DEADLOCK_QUIET_NS) { /* (later than now: just begun) */
			why = "a thread began its wait less than 2 s ago";
			goto no;
		}
		if (ring->wait_deadline && ring->wait_deadline < now + 10000000000ull) {
			why = "a thread's wait times out within 10 s";
			goto no; /* it times out soon by itself */
		}
		blocked[ring->rank]++;
	}
	for (uint32_t i = 0; i < D.h->max_ranks; i++)
		if (D.ranks[i].pid && !blocked[i]) {
			why = "a rank has no thread blocked in a wait the shim sees";
			wrank = (int)i;
			wtid = 0;
			goto no;
		}
	/* Twice in a row, half a second apart: not a moment between two waits. */
	if (++D.deadlock_seen < 2)
		return;
	report_deadlock(now);
	return;
no:
	if (debug_deadlock())
		logmsg("deadlock check: quiet for %.1f s, not a deadlock: %s (rank %d, tid %d)",
		       (double)(now - D.last_progress) / 1e9, why, wrank, wtid);
	D.deadlock_seen = 0;
}

/* Sleeps that end early (simulate mode). A thread that sleeps takes the
 * time it asked for in virtual time whatever it does in real time, so
 * when nothing else in the session can happen before it wakes, sleeping
 * in real time only costs the user wall time (a server idling until the
 * next Poisson arrival, minutes of it). "Nothing else": every rank is
 * attached, no event came for 2 ms and no read waits for the network, no
 * thread of any rank process is running, and every other rank thread
 * is in a wait the shim knows: for I/O (an event loop between events), for
 * unid, on a condition variable
 * (without a virtual deadline before the sleeper's wake-up; a real
 * deadline only when it is more than 10 s away), or asleep until later
 * (a thread blocked anywhere else, say a store client waiting for its
 * reply, may be woken by real-time work any moment). The earliest sleeper (by its
 * virtual wake-up, then ring) is ended, when that held at two looks a
 * few ms apart with no event between; the sleeping thread sees the warp
 * within its 20 ms slice (shim.c, uni_shim_sleep_until). Looks back off
 * while the session is busy (each reads /proc for every thread). */
#define WARP_QUIET_NS 2000000ull

static void maybe_warp(uint64_t now)
{
	if (D.cfg.mode != UNI_MODE_SIMULATE || now < D.warp_next || now - D.last_progress < WARP_QUIET_NS ||
	    atomic_load(&D.h->deadlock))
		return;
	uint32_t cand = UINT32_MAX;
	uint64_t w = UINT64_MAX;
	for (uint32_t k = 0; k < D.h->max_rings; k++) {
		struct uni_ring *ring = uni_shm_ring(D.h, k);
		if (!ring_is_live_rank(ring) || atomic_load(&ring->wait_kind) != UNI_WAIT_SLEEP)
			continue;
		if (ring->wait_vdl < w) {
			w = ring->wait_vdl;
			cand = k;
		}
	}
	if (cand == UINT32_MAX) {
		D.warp_seen = 0;
		D.warp_backoff = 0;
		return;
	}
	struct uni_ring *sr = uni_shm_ring(D.h, cand);
	uint64_t since = sr->wait_since;
	if (atomic_load_explicit(&sr->warp, memory_order_relaxed) == (uint32_t)since)
		return; /* ended already; the thread notices within its slice */
	const char *why = NULL;
	int wrank = -1, wtid = 0;
	if (now - since < WARP_QUIET_NS)
		why = "it just began";
	else if (uni_sim_waiting_reads())
		why = "a read waits for the network";
	int live = 0, world = 0;
	for (uint32_t i = 0; !why && i < D.h->max_ranks; i++) {
		if (!D.ranks[i].pid)
			continue;
		live++;
		world = uni_shm_rank(D.h, i)->world_size;
	}
	if (!why && (!live || live < world))
		why = "not every rank is attached";
	for (uint32_t k = 0; !why && k < D.h->max_rings; k++) {
		struct uni_ring *ring = uni_shm_ring(D.h, k);
		if (k == cand || !ring_is_live_rank(ring))
			continue;
		uint32_t wk = atomic_load(&ring->wait_kind);
		wrank = ring->rank;
		wtid = ring->tid;
		if (wk == UNI_WAIT_SLEEP && ring->wait_vdl < w)
			why = "an earlier sleeper";
		else if ((wk == UNI_WAIT_COND || wk == UNI_WAIT_POLL) && ring->wait_vdl && ring->wait_vdl < w)
			why = "a timed wait ends first";
		else if (wk == UNI_WAIT_COND && !ring->wait_vdl && ring->wait_deadline &&
			 ring->wait_deadline < now + 10000000000ull)
			why = "a wait with a real time-out";
		else if (wk == UNI_WAIT_NONE && (!ring->dispatcher || task_running_now(ring->pid, ring->tid)))
			/* (An event loop between events publishes no wait: it is in
			 * epoll_wait unless it runs.) */
			why = "a thread is outside the waits the shim knows (computing, or blocked elsewhere)";
	}
	for (uint32_t i = 0; !why && i < D.h->max_ranks; i++)
		if (D.ranks[i].pid && any_thread_running(D.ranks[i].pid)) {
			why = "a thread runs";
			wrank = (int)i;
			wtid = 0;
		}
	if (why) {
		if (debug_deadlock() && (why != D.warp_why || wrank != D.warp_wrank))
			logmsg("sleep of rank %d tid %d not ended early: %s (rank %d, tid %d)", sr->rank, sr->tid, why,
			       wrank, wtid);
		D.warp_why = why;
		D.warp_wrank = wrank;
		D.warp_seen = 0;
		D.warp_backoff = D.warp_backoff ? (D.warp_backoff < 50000000ull ? D.warp_backoff * 2 : D.warp_backoff)
						: 2000000ull;
		D.warp_next = now + D.warp_backoff;
		return;
	}
	/* Twice, with nothing between: not a moment between two events. */
	if (D.warp_seen == 0 || D.warp_cand != cand || D.warp_since != since || D.warp_progress != D.last_progress) {
		D.warp_seen = 1;
		D.warp_cand = cand;
		D.warp_since = since;
		D.warp_progress = D.last_progress;
		D.warp_next = now + 2000000ull;
		return;
	}
	D.warp_seen = 0;
	D.warp_backoff = 0;
	/* Its real time left (relative sleeps: wait_vdl - wait_vt of virtual
	 * time, slept in real time since wait_since). */
	uint64_t asked = sr->wait_vdl - sr->wait_vt, slept = now - since;
	if (debug_deadlock())
		logmsg("sleep of rank %d tid %d ended early: %.3f s asked, %.3f s slept", sr->rank, sr->tid,
		       (double)asked / 1e9, (double)slept / 1e9);
	atomic_fetch_add(&D.h->warps, 1);
	atomic_fetch_add(&D.h->warp_saved_ns, asked > slept ? asked - slept : 0);
	atomic_store_explicit(&sr->warp, (uint32_t)since, memory_order_release);
}

/* A simulated NCCL end asks for its bytes as its operation begins,
 * before a peer still computing opens its end: 1 while the peer can still
 * come (check_unmatched_reads waits for it 60 s at most): in a world of
 * several processes while the rank of the peer's node (its process) lives,
 * in a world of one process (whose nodes are its NCCL ranks, threads or
 * devices of it) while that process lives. */
static int vnccl_peer_lives(const struct uni_conn *uc)
{
	if (uc->fd >= 0 || uc->vpeer1 <= 0)
		return 0;
	if (D.ranks[0].pid && uni_shm_rank(D.h, 0)->world_size == 1)
		return 1;
	uint32_t p = (uint32_t)(uc->vpeer1 - 1);
	if (p >= D.h->max_ranks || p >= UNI_MAX_RANKS || !D.ranks[p].pid || uc->rank < 0 ||
	    (uint32_t)uc->rank >= UNI_MAX_RANKS)
		return 0;
	return D.ranks[uc->rank].pid && D.ranks[uc->rank].pid != D.ranks[p].pid;
}

/* A read on a connection whose other end never registered (something that
 * is not a rank of this session) is answered after 2 s and the connection
 * is given up: it is not modelled. */
static void check_unmatched_reads(uint64_t now)
{
	for (uint32_t i = 0; i < D.nunmatched; i++) {
		uint32_t idx = D.unmatched[i];
		/* (Not for ever: a peer whose operation failed after its data
		 * moved, or a rank's new process, may never open its end.) */
		if (vnccl_peer_lives(uni_shm_conn(D.h, idx)) && D.conns[idx].first_read_wait &&
		    now - D.conns[idx].first_read_wait < 60000000000ull)
			continue;
		if (D.conns[idx].first_read_wait && now - D.conns[idx].first_read_wait > 2000000000ull) {
			give_up(idx);
			i--; /* give_up removed it from the list */
		}
	}
}

/* Set-up ----------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	D.signalled = 1;
	if (D.h) {
		atomic_store(&D.h->stop, 1);
		atomic_fetch_add(&D.h->doorbell, 1);
	}
}

static int read_pid_file(int fd)
{
	char buf[32] = {0};
	if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0)
		return 0;
	return atoi(buf);
}

/* Takes the session's lock; removes what a killed daemon left behind. */
static void take_lock(void)
{
	uni_lock_path(D.session, D.lock_path, sizeof(D.lock_path));
	D.lock_fd = open(D.lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (D.lock_fd < 0)
		die_startup("cannot open lock file %s: %s", D.lock_path, strerror(errno));
	if (flock(D.lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			die_startup("session '%s' is already running (unid pid %d)", D.session,
				    read_pid_file(D.lock_fd));
		die_startup("cannot lock %s: %s", D.lock_path, strerror(errno));
	}
	int old = read_pid_file(D.lock_fd);
	uni_shm_name(D.session, D.shm_name, sizeof(D.shm_name));
	if (shm_unlink(D.shm_name) == 0)
		logmsg("removed the stale segment /dev/shm%s of session '%s' left by unid pid %d, "
		       "which is gone", D.shm_name, D.session, old);
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (ftruncate(D.lock_fd, 0) < 0 || pwrite(D.lock_fd, pid, (size_t)n, 0) != n)
		die_startup("cannot write %s: %s", D.lock_path, strerror(errno));
}

static void copy_path(char *dst, size_t len, const char *src, const char *what)
{
	size_t n = strlen(src);
	if (n >= len) {
		shm_unlink(D.shm_name);
		die_startup("%s is longer than %zu bytes: %s", what, len - 1, src);
	}
	memcpy(dst, src, n + 1);
}

static void create_segment(const char *config_path)
{
	uint64_t ro, co, go, ko, so, lo, ho;
	size_t size = uni_shm_layout(&ro, &co, &go, &ko, &so, &lo, &ho);
	int fd = shm_open(D.shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die_startup("cannot create /dev/shm%s: %s", D.shm_name, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		shm_unlink(D.shm_name);
		die_startup("cannot size /dev/shm%s to %zu bytes: %s", D.shm_name, size, strerror(errno));
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		shm_unlink(D.shm_name);
		die_startup("cannot map /dev/shm%s: %s", D.shm_name, strerror(errno));
	}
	struct uni_shm_hdr *h = p;
	h->version = UNI_SHM_VERSION;
	h->hdr_size = sizeof(*h);
	h->total_size = size;
	snprintf(h->session, sizeof(h->session), "%s", D.session);
	h->daemon_pid = getpid();
	h->mode = D.cfg.mode;
	h->strict = (uint32_t)D.cfg.strict;
	h->horizon = D.cfg.mode == UNI_MODE_SIMULATE && uni_config_fluid(&D.cfg);
	/* Call stacks hold the host's addresses: not in a canonical trace. */
	h->stacks = D.compute_from[0] ? 0u : (uint32_t)D.cfg.trace_stacks;
	h->nccl_algo = D.cfg.nccl_algo;
	h->nccl_proto = D.cfg.nccl_proto;
	h->nccl_ppn = D.cfg.nccl_ppn;
	h->nccl_intra = D.cfg.nccl_intra;
	h->net_latency_ns = D.cfg.latency_ns;
	h->det = (uint32_t)D.det;
	h->det_sync_fin = UINT64_MAX; /* (an empty network: a write lowers it to its stamp) */
	h->net_bandwidth_bps = D.cfg.bandwidth_bps;
	h->send_buffer = D.cfg.send_buffer;
	h->hold_max_ns = UNI_HOLD_MAX_NS;
	h->epoch_mono_ns = uni_now_ns();
	h->epoch_real_ns = uni_realtime_ns();
	h->max_ranks = UNI_MAX_RANKS;
	h->max_rings = UNI_MAX_RINGS;
	h->ring_cap = UNI_RING_CAP;
	h->max_conns = UNI_MAX_CONNS;
	h->ranks_off = ro;
	for (uint32_t i = 0; i < UNI_MAX_RANKS; i++)
		((struct uni_rank *)((char *)h + ro))[i].slowdown = uni_config_rank_slowdown(&D.cfg, (int)i);
	h->conns_off = co;
	h->rings_off = go;
	h->kernels_off = ko;
	h->listeners_off = lo;
	h->hints_off = ho;
	/* Alpha-beta arrivals are final once scheduled: readers look them up. */
	if (D.cfg.mode == UNI_MODE_SIMULATE && (D.cfg.net_model == UNI_NET_ALPHA_BETA || D.det))
		h->sched_off = so; /* (nic under the turn: what became final, sim.c publish_final) */
	_Static_assert(UNI_SHM_MAX_KERNELS >= UNI_CFG_MAX_KERNELS, "room for devices.kernels");
	for (uint32_t i = 0; i < D.cfg.nkernels; i++) {
		struct uni_shm_kernel *k = &uni_shm_kernels(h)[i];
		snprintf(k->match, sizeof(k->match), "%s", D.cfg.kernels[i].match);
		k->slowdown = D.cfg.kernels[i].slowdown;
	}
	h->nkernels = D.cfg.nkernels;
	copy_path(h->trace_path, sizeof(h->trace_path), D.trace_path, "trace path");
	copy_path(h->config_path, sizeof(h->config_path), config_path ? config_path : "", "config path");
	copy_path(h->compute_from, sizeof(h->compute_from), D.compute_from, "--compute-from path");
	/* Magic last (a release store): a shim that opens the segment
	 * earlier refuses it. */
	__atomic_store_n(&h->magic, UNI_SHM_MAGIC, __ATOMIC_RELEASE);
	D.h = h;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: unid [--session NAME] [--config FILE] [--mode record|simulate|emulate]\n"
		   "            [--trace PATH] [--compute-from TRACE] [--deterministic] [--ready-fd N]\n"
		   "The coordinator of a uniference session; normally started by 'unictl start' or unirun.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"session", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
		{"mode", required_argument, NULL, 'm'},    {"trace", required_argument, NULL, 't'},
		{"ready-fd", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
		{"compute-from", required_argument, NULL, 'f'},
		{"deterministic", no_argument, NULL, 'd'},
		{NULL, 0, NULL, 0}};
	const char *config = NULL, *mode = NULL, *trace = NULL, *cfrom = NULL;
	D.session = getenv("UNI_SESSION");
	int c;
	while ((c = getopt_long(argc, argv, "s:c:m:t:r:f:dh", opts, NULL)) != -1) {
		switch (c) {
		case 's': D.session = optarg; break;
		case 'c': config = optarg; break;
		case 'm': mode = optarg; break;
		case 't': trace = optarg; break;
		case 'f': cfrom = optarg; break;
		case 'd': D.det = 1; break;
		case 'r': D.ready_fd = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (!D.session || !*D.session)
		D.session = "default";
	if (uni_session_name_check(D.session) < 0)
		die_startup("bad session name '%s': use 1 to 47 of A-Z a-z 0-9 _ . -", D.session);
	uni_config_defaults(&D.cfg);
	char err[1024];
	char config_abs[PATH_MAX] = "";
	if (config) {
		if (uni_config_load(&D.cfg, config, err, sizeof(err)) < 0)
			die_startup("%s", err);
		if (!realpath(config, config_abs))
			snprintf(config_abs, sizeof(config_abs), "%s", config);
	}
	if (mode && uni_mode_parse(mode, &D.cfg.mode) < 0)
		die_startup("unknown mode '%s': use record, simulate or emulate", mode);
	if (D.cfg.mode == UNI_MODE_EMULATE)
		die_startup("mode 'emulate' is not implemented in this build yet; use record or simulate");
	char tp[PATH_MAX];
	if (trace)
		snprintf(tp, sizeof(tp), "%s", trace);
	else
		uni_config_trace_path(&D.cfg, D.session, tp, sizeof(tp));
	if (tp[0] == '/') {
		snprintf(D.trace_path, sizeof(D.trace_path), "%s", tp);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			die_startup("cannot read the current directory: %s", strerror(errno));
		if ((size_t)snprintf(D.trace_path, sizeof(D.trace_path), "%s/%s", cwd, tp) >= sizeof(D.trace_path))
			die_startup("trace path too long");
	}
	if (D.det && D.cfg.mode != UNI_MODE_SIMULATE)
		die_startup("--deterministic needs simulate mode (this session is in %s mode)", uni_mode_name(D.cfg.mode));
	if (cfrom) {
		if (D.cfg.mode != UNI_MODE_SIMULATE)
			die_startup("--compute-from needs simulate mode (this session is in %s mode)",
				    uni_mode_name(D.cfg.mode));
		if (uni_cf_check_file(cfrom, err, sizeof(err)) < 0)
			die_startup("--compute-from %s: %s", cfrom, err);
		if (!realpath(cfrom, D.compute_from))
			die_startup("--compute-from %s: %s", cfrom, strerror(errno));
		char tabs[PATH_MAX];
		if (realpath(D.trace_path, tabs) && strcmp(tabs, D.compute_from) == 0)
			die_startup("--compute-from %s is the trace this session would write: give the new run "
				    "another --trace", cfrom);
	}

	take_lock();
	create_segment(config ? config_abs : NULL);
	struct uni_trace_hdr th;
	uni_trace_hdr_init(&th, D.cfg.mode, D.session, D.h->epoch_real_ns, D.h->epoch_mono_ns,
			   config ? config_abs : NULL);
	if (uni_trace_create(&D.tw, D.trace_path, &th, err, sizeof(err)) < 0) {
		shm_unlink(D.shm_name);
		die_startup("%s", err);
	}
	D.conns = calloc(UNI_MAX_CONNS, sizeof(*D.conns));
	D.unmatched = calloc(UNI_MAX_CONNS, sizeof(*D.unmatched));
	if (!D.conns || !D.unmatched)
		die_startup("out of memory");
	for (uint32_t i = 0; i < UNI_MAX_RANKS; i++)
		D.ranks[i].pidfd = -1;
	if (uni_sim_init(&D.cfg, D.h, trace_put) < 0)
		die_startup("out of memory");

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	struct uni_trec r = rec_of(UNI_TR_SESSION_START, -1);
	r.a = (uint64_t)getpid();
	trace_put(&r);
	uni_trace_flush(&D.tw);
	atomic_store(&D.h->ready, 1);
	if (D.ready_fd >= 0) {
		dprintf(D.ready_fd, "ok %d\n", getpid());
		close(D.ready_fd);
		D.ready_fd = -1;
	}
	logmsg("serving (mode %s, trace %s)", uni_mode_name(D.cfg.mode), D.trace_path);

	uint64_t last_flush = uni_now_ns(), last_check = 0, last_work = 0, last_deadlock_check = 0;
	D.last_progress = uni_now_ns();
	while (!atomic_load(&D.h->stop)) {
		/* Read before looking for work: a rank that publishes something
		 * after this moves the doorbell, and the sleep below then does
		 * not happen (no wake-up lost between the look and the sleep). */
		uint32_t bell = atomic_load_explicit(&D.h->doorbell, memory_order_acquire);
		atomic_fetch_add_explicit(&D.h->heartbeat, 1, memory_order_relaxed);
		scan_ranks();
		uint32_t holding = D.cfg.mode == UNI_MODE_SIMULATE ? atomic_load(&D.h->hold_waiters) : 0;
		D.hold_req_read = atomic_load_explicit(&D.h->hold_req, memory_order_acquire);
		/* (Under the turn the network moves only when asked.) */
		int dnet = det_net();
		uint32_t dreq = dnet ? atomic_load_explicit(&D.h->det_sync_req, memory_order_acquire) : 0;
		uint64_t hz = (uni_sim_is_nic() && !dnet) || holding ? horizon(uni_now_ns()) : 0;
		uni_fuzz();
		uint64_t n = drain();
		uint64_t now = uni_now_ns();
		if ((uni_sim_is_nic() && !dnet) || holding) {
			uint64_t pb = pending_bound();
			/* The network moving is progress too (deadlocks): it may
			 * stand still for seconds of real time while an arrival
			 * waits for its reader or to count as stale, and a
			 * pipeline whose network stood still twice in a row with
			 * no event between was reported a deadlock. */
			uint64_t net = uni_sim_network_time();
			if (uni_sim_is_nic() && !dnet)
				uni_sim_advance(pb < hz ? pb : hz, now);
			if (uni_sim_network_time() != net)
				D.last_progress = now;
			if (holding)
				publish_hold(hz && pb < hz ? pb : hz, pb);
		}
		if (dnet && dreq != atomic_load_explicit(&D.h->det_sync_ack, memory_order_relaxed)) {
			det_sync(dreq);
			n++;
		}
		if (n)
			D.last_progress = now;
		if (UNI_UNLIKELY(D.det && !D.said_sched && n))
			say_sched_out();
		if (now - last_check > 20000000ull) {
			check_ranks();
			check_unmatched_reads(now);
			last_check = now;
		}
		maybe_warp(now);
		if (now - last_deadlock_check > 500000000ull) {
			check_deadlock(now);
			last_deadlock_check = now;
		}
		if (now - last_flush > 100000000ull) {
			uni_trace_flush(&D.tw);
			last_flush = now;
		}
		if (n == 0 && D.cfg.mode == UNI_MODE_SIMULATE && uni_sim_waiting_reads() &&
		    uni_now_ns() - last_work < 200000ull) {
			/* A rank waits for an answer that the next chunk may bring:
			 * poll a little before sleeping. Only then: on a small host,
			 * unid spinning beside the ranks inflates their CPU time,
			 * which is what their compute is measured with (a read wakes
			 * a sleeping unid through the doorbell anyway). */
			sched_yield();
			continue;
		}
		if (n)
			last_work = now;
		if (n == 0) {
			atomic_store(&D.h->daemon_sleeping, 1);
			uni_futex_wait(&D.h->doorbell, bell, 10);
			atomic_store(&D.h->daemon_sleeping, 0);
		}
	}

	/* Stop: take what is left, end the trace, remove the segment. */
	scan_ranks();
	drain();
	check_ranks();
	drain();
	if (D.cfg.mode == UNI_MODE_SIMULATE) {
		/* (Before the network runs to its end, which passes every
		 * arrival left unread.) */
		uint64_t soft, stale;
		uni_sim_released(&soft, &stale);
		atomic_store(&D.h->soft_released, soft);
		atomic_store(&D.h->stale_released, stale);
		uni_sim_finish();
		if (uni_sim_gone())
			logmsg("%llu reads of bytes that their writer never sent (it died, or its operation failed and it "
			       "closed its end) were answered without them", (unsigned long long)uni_sim_gone());
		uint64_t stalls = atomic_load(&D.h->stalls);
		if (stalls)
			logmsg("the horizon (the earliest virtual time a thread can still act at: sleeps, connects and the "
			       "nic network wait for it) stood still %llu time%s, %.3f s of real time in all, until the "
			       "threads that held it and were not running (blocked outside the shim) were left out: the "
			       "run's wall time grew by that, and a thread left out that sends later sends late; the "
			       "first time: %s",
			       (unsigned long long)stalls, stalls == 1 ? "" : "s",
			       (double)atomic_load(&D.h->stall_ns) / 1e9, D.stall_first);
		if (soft || stale)
			logmsg("the nic network went past %llu arrivals unread after holding them 200 ms of real time for "
			       "their reader (a simulated NCCL rank not asking for them: meeting its peers, still in an "
			       "earlier operation, or its end not open) and past %llu after 2 s (stale): the network may "
			       "have stood still in wall time there",
			       (unsigned long long)soft, (unsigned long long)stale);
	}
	D.unmodelled += D.nunmatched;
	/* Ends that never met their peer (an operation that failed before its
	 * receiver opened): their sends are left out of the trace (no
	 * connection record names them; the network carried them). */
	uint64_t lost = 0;
	for (uint32_t i = 0; D.conns && i < conn_count(); i++)
		if (D.conns[i].defer_on)
			lost += defer_flush(i, 0);
	if (lost)
		logmsg("%llu sends of simulated NCCL connections whose other end never opened are not in the trace",
		       (unsigned long long)lost);
	if (D.h->compute_from[0]) {
		r = rec_of(UNI_TR_COMPUTE_FROM, -1);
		r.a = atomic_load(&D.h->cf_replayed);
		r.off = atomic_load(&D.h->cf_followed);
		r.len = atomic_load(&D.h->cf_diverged);
		uint64_t unk = atomic_load(&D.h->cf_unknown);
		r.conn = unk > UINT32_MAX ? UINT32_MAX : (uint32_t)unk;
		trace_put(&r);
		logmsg("compute from %s: %llu stretches replayed; threads: %llu followed the recorded run, "
		       "%llu left it, %llu were not in it", D.h->compute_from, (unsigned long long)r.a,
		       (unsigned long long)r.off, (unsigned long long)r.len, (unsigned long long)unk);
	}
	if (D.det)
		logmsg("deterministic: the turn went from one thread to another %llu times; %llu waits the turn "
		       "does not model; %llu turns taken from a thread blocked outside the shim",
		       (unsigned long long)atomic_load(&D.h->det_turns), (unsigned long long)atomic_load(&D.h->det_outside),
		       (unsigned long long)atomic_load(&D.h->det_steals));
	if (D.det) {
		uint32_t used, cap;
		uint64_t denied;
		uni_sim_sched_logs(&used, &cap, &denied);
		if (used)
			logmsg("deterministic: %u of the %u schedule logs taken%s", used, cap,
			       denied ? "" : " (every stream had one)");
		if (denied)
			logmsg("deterministic: %llu streams found no schedule log left; their reads were not in turn (a "
			       "run may differ from another from there)", (unsigned long long)denied);
	}
	if (D.det && uni_sim_is_nic())
		logmsg("deterministic: the network moved in %llu steps the turn asked for",
		       (unsigned long long)atomic_load(&D.h->det_syncs));
	r = rec_of(UNI_TR_SESSION_END, -1);
	r.t0 = r.t1 = uni_now_ns() - D.h->epoch_mono_ns;
	r.a = atomic_load(&D.h->events_total);
	r.len = atomic_load(&D.h->dropped_total);
	r.off = D.unmodelled;
	uint64_t lmax, lsum;
	uni_sim_late_ns(&lmax, &lsum);
	/* Transfers that started after their stamp: unitrace summary says so. */
	r.conn = uni_sim_late() > UINT32_MAX ? UINT32_MAX : (uint32_t)uni_sim_late();
	r.peer = r.conn ? (lmax / 1000 > INT32_MAX ? INT32_MAX : (int32_t)(lmax / 1000)) : -1;
	trace_put(&r);
	if (uni_sim_late()) {
		logmsg("%llu transfers were stamped before the network time (a thread the horizon had "
		       "stopped waiting for sent late) and started at it, the latest %.3f ms after its stamp, "
		       "%.3f ms in all", (unsigned long long)uni_sim_late(), (double)lmax / 1e6, (double)lsum / 1e6);
	}
	if (atomic_load(&D.h->holds) || atomic_load(&D.h->holds_given_up))
		logmsg("%llu sleeps and connects waited %.3f s of real time in all for the rest of the session to reach their "
		       "virtual end; %llu gave up after %.0f s (a thread that never entered the shim)",
		       (unsigned long long)atomic_load(&D.h->holds), (double)atomic_load(&D.h->hold_ns) / 1e9,
		       (unsigned long long)atomic_load(&D.h->holds_given_up),
		       (double)atomic_load(&D.h->hold_max_ns) / 1e9);
	int rc = 0;
	nccl_segs_remove();
	if (uni_trace_finish(&D.tw) < 0) {
		logmsg("trace: %s", D.tw.err);
		rc = 1;
	} else if (D.compute_from[0]) {
		/* Same event graph and compute, same file (docs/simulate.md). */
		char cerr[256];
		if (uni_trace_canonicalise(D.trace_path, cerr, sizeof(cerr)) < 0)
			logmsg("trace: left as written, not in canonical form: %s", cerr);
	}
	logmsg("stopped: %llu events, %llu dropped, trace %s", (unsigned long long)r.a,
	       (unsigned long long)r.len, D.trace_path);
	shm_unlink(D.shm_name);
	unlink(D.lock_path);
	return rc;
}
