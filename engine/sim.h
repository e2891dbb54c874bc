/* Simulate mode inside unid: per-connection byte streams timed by the
 * network model, and reads answered once the arrival of their last byte is
 * final. Internal to unid. */
#ifndef UNI_ENGINE_SIM_H
#define UNI_ENGINE_SIM_H

#include <stdint.h>
#include <stdio.h>

#include "uni/config.h"
#include "uni/shm.h"
#include "uni/trace.h"

/* One event from a rank, with what unid knew of its ring when it took it
 * (a ring may be reused before a held event is processed). */
struct uni_op {
	struct uni_ev e;
	int32_t rank;
	int32_t tid;
	uint32_t ring;
	uint32_t seq; /* the event's index among its thread's events */
};

typedef void (*uni_trace_put_f)(const struct uni_trec *r);

/* Sets up streams for every connection slot. */
int uni_sim_init(const struct uni_config *cfg, struct uni_shm_hdr *h, uni_trace_put_f put);

/* A SEND on a matched connection (op->e.conn is the writer's end). */
void uni_sim_send(const struct uni_op *op);

/* A READ_REQ on a matched connection (op->e.conn is the reader's end).
 * Answered now if its bytes are scheduled, else when they are. */
void uni_sim_read(const struct uni_op *op);
/* UNI_EV_READ_CANCEL: drops the thread's group read op->e.b unless it was
 * answered, and answers op->e.a (at op->e.t0). */
void uni_sim_read_cancel(const struct uni_op *op);
/* Connection end conn closed: nic, a simulated NCCL end: what comes in on
 * it is never read (it holds the network no longer). */
void uni_sim_reader_closed(uint32_t conn);
/* A simulated NCCL end closed as a writer (UNI_EV_CONN_CLOSE at t, its
 * clock, having sent sent bytes): reads of bytes past those, which will
 * never come (its operation failed and it started new connections: a
 * flow-control credit its sender waits for), are answered at once. */
void uni_sim_writer_closed(uint32_t conn, uint64_t t, uint64_t sent);
/* Reads answered without their bytes so far (a dead or closed writer). */
uint64_t uni_sim_gone(void);

/* A SENT_REQ (op->e.conn is the writer's end, off the message's end):
 * answered with the completion time of that write once it is final. */
void uni_sim_sent(const struct uni_op *op);

/* Answers a read with the reader's own time (connection not modelled). */
void uni_sim_answer_unmodelled(const struct uni_op *op);

/* Forgets reads waiting on behalf of ring idx (its thread or rank is gone). */
void uni_sim_forget_ring(uint32_t ring);

/* nic model: advances the network to the horizon (the earliest time any
 * rank thread could still start a transfer) and answers the reads that
 * became final. No-op under alpha-beta. */
int uni_sim_is_nic(void);
void uni_sim_advance(uint64_t horizon, uint64_t real_now);
/* Deterministic mode: one step of the network toward h (sim.c); returns
 * the time up to which it is final. Alpha-beta: h. */
uint64_t uni_sim_det_step(uint64_t h);
/* ... and a byte a thread in turn waits for (UNI_EV_DET_WATCH): the steps
 * stop where it leaves. */
void uni_sim_det_watch(uint32_t conn, uint64_t byte);
/* nic: the reader of connection end conn will read its incoming stream up
 * to byte end (UNI_EV_WANT): lazy flows there (UNI_CONNF_CREDIT) hold the
 * network once they arrive. */
void uni_sim_want(uint32_t conn, uint64_t end);
/* nic: the thread of ring (tid) opened simulated NCCL end conn: its
 * reader until a read says otherwise. */
void uni_sim_opened(uint32_t conn, uint32_t ring, int32_t tid);
/* nic: the thread of ring (tid) joined a simulated NCCL communicator as
 * the rank whose ends have addresses like ad (any channel): their reader
 * until one of them opens (reader_waits). */
void uni_sim_opener(const struct uni_addr *ad, uint32_t ring, int32_t tid);
/* nic, as the session stops: the flows still under way finish (those
 * nobody read: the simulated NCCL's last credits), so that every send's
 * record is written. */
void uni_sim_finish(void);
uint64_t uni_sim_network_time(void);
/* Alpha-beta: the schedule logs given to streams, of cap (UNI_SCHED_LOGS;
 * the environment's UNI_SCHED_LOGS may lower it: tests), and the streams
 * that found none left (deterministic mode: their reads are not in turn). */
void uni_sim_sched_logs(uint32_t *used, uint32_t *cap, uint64_t *denied);
/* Transfers stamped before the network time (moved to it). */
uint64_t uni_sim_late(void);
/* nic: how far before the network time the late ones were stamped (ns):
 * the most, and in all. */
void uni_sim_late_ns(uint64_t *max, uint64_t *sum);

/* Rank rank died (its process, not re-attached): the connection ends it
 * opened are marked (uni_conn.wdead), and reads waiting for bytes it had
 * not sent are answered at their readers' clocks (and later ones at
 * once). */
void uni_sim_rank_died(int rank);
/* Reads still waiting (for the deadlock report and the session end). */
uint64_t uni_sim_waiting_reads(void);
/* nic: arrivals the network went past unread only after the soft hold's
 * 200 ms or after 2 s, stale (nic_released): real time it stood still. */
void uni_sim_released(uint64_t *soft, uint64_t *stale);
/* Debugging (UNI_DEBUG_NIC): every stream with chunks, held chunks or waiting reads. */
void uni_sim_debug_dump(FILE *f);

#endif
