/* The nic network model (DESIGN section 5): every rank has an uplink and a
 * downlink; concurrent flows share them max-min fairly, recomputed whenever
 * a flow starts or ends; a flow's bytes arrive a link latency after they
 * left. A fluid simulation, advanced by unid up to the horizon: an arrival
 * is final only once the network time has passed it. Internal to unid. */
#ifndef UNI_ENGINE_NIC_H
#define UNI_ENGINE_NIC_H

#include <stdint.h>
#include <stdio.h>

/* Real time a finished flow may stay unread before the network time goes
 * past its arrival anyway (its reader may never read it), and the real
 * time the horizon waits for a thread that holds it while blocked outside
 * the shim. Gloo's loop reads every byte promptly, so these only bound
 * stalls; short ones let a loaded host (a reader not scheduled in time)
 * push transfers late (docs/simulate.md). */
#define UNI_NIC_UNREAD_STALE_NS 2000000000ull
/* ... and a simulated NCCL flow whose reader cannot read it now, when
 * nothing else holds the network (engine/sim.c uni_sim_advance): its
 * reader usually comes within milliseconds (a peer on its way to the
 * same operation); a peer that needs the network to move never would. */
#define UNI_NIC_SOFT_STALE_NS 200000000ull
#define UNI_NIC_OUTSIDE_NS 250000000ull

struct nic_flow;

/* Frees every flow and forgets the state (unitrace replay runs the model
 * once per configuration). Flows still referenced elsewhere are freed too:
 * call only when nobody holds one. */
void nic_reset(void);

/* on = 1: an idle network (nothing sending, nothing to start before h)
 * moves its time to h (unitrace replay, which knows no thread sends before
 * h); unid's network stays where it is. */
void nic_idle_jump(int on);

struct uni_config;

/* Every rank's uplink and downlink capacity from cfg (network.ranks, else
 * network.default.bandwidth). */
int nic_init(uint32_t max_ranks, const struct uni_config *cfg);

/* A flow of bytes from src to dst, stamped at stamp, whose first byte may
 * leave only after pred (the previous flow of the same connection, or
 * NULL) has left. A stamp before the network time is moved to it and
 * counted (nic_late). Its route (uni_config_route) gives the links it
 * crosses and the latency its bytes arrive after they left. */
struct nic_flow *nic_flow_new(int src, int dst, uint64_t stamp, uint64_t bytes, struct nic_flow *pred,
			      void *ctx);

/* That latency. */
uint64_t nic_flow_latency(const struct nic_flow *f);

/* Called once per flow when its last byte has left: its start (after any
 * clamp) and the arrival of its last byte. */
typedef void (*nic_done_f)(void *ctx, uint64_t start, uint64_t arrival);
void nic_on_done(nic_done_f fn);

/* Reference counting: a flow starts with one reference (its first chunk);
 * every further holder takes one; it is freed when the last one is
 * released and it has left and been read. */
void nic_flow_hold(struct nic_flow *f);
void nic_flow_unhold(struct nic_flow *f);
void nic_flow_release(struct nic_flow *f);

/* Stop the network (nic_advance returns) when the first bytes bytes of f
 * have left: a send completes there. The earliest of several wins. */
void nic_flow_watch(struct nic_flow *f, uint64_t bytes);

/* The flow will carry only bytes bytes (never fewer than it has already
 * sent): the rest of a write that was cut short. */
void nic_flow_truncate(struct nic_flow *f, uint64_t bytes);
/* The ctx given to nic_flow_new. */
void *nic_flow_ctx(const struct nic_flow *f);

/* Its stamp (after any clamp to the network time). */
uint64_t nic_flow_stamp(const struct nic_flow *f);

/* True when n bytes cover the whole flow. */
int nic_flow_complete_at(const struct nic_flow *f, uint64_t n);

/* Advances the network to time h, stopping early at the moment a flow that
 * nobody has read to its end finishes leaving (its reader may act then).
 * Returns the network time reached. */
uint64_t nic_advance(uint64_t h);

/* Network time. */
uint64_t nic_now(void);

/* After nic_advance(h): the time up to which every byte's leaving is
 * known: h when it got there, or when nothing is sending and nothing
 * starts before h; UINT64_MAX when nothing is sending or waiting to (a
 * new flow makes it its stamp); else the network time (it stopped
 * early). */
uint64_t nic_final_to(uint64_t h);

/* Arrival of byte k (0-based) of f: 1 and *t when it is final (the byte
 * left before the network time), else 0. */
int nic_byte_arrival(const struct nic_flow *f, uint64_t k, uint64_t *t);

/* The reader has read f to its end: it no longer bounds the horizon, and
 * unid may free it once it has left. */
void nic_flow_read(struct nic_flow *f);

/* f's bytes are behind bytes of its stream that are not final (1; 0: no
 * longer): its reader cannot read it yet (a notice sent at its stamp but
 * written after data the host wrote first). */
void nic_flow_gate(struct nic_flow *f, int gated);
/* A flow whose reader may be unable to read it for a while (a simulated
 * NCCL rank meeting its peers in real time to move an operation's data,
 * still in an earlier operation, or whose end is not open yet): finished
 * and unread, it holds the network at its arrival (the reader acts on it
 * in time order) only once wanted (a read asked for its bytes) and while
 * nic_unread_bound's hold(wconn) says so (wconn: the writing end). Held
 * always, the network waited for a rank to read data of an operation
 * while that rank waited for data of an earlier one, or for peers that
 * needed the network to move. */
void nic_flow_soft(struct nic_flow *f, uint32_t wconn);
void nic_flow_want(struct nic_flow *f);
/* A flow its reader reads only when it needs it (the simulated NCCL's
 * flow-control credits, UNI_CONNF_CREDIT): finished and unread, it holds
 * the network only once wanted (a read asked for its bytes, or the
 * reader said it will, UNI_EV_WANT). Held before, the network stopped at
 * every credit a sender did not need yet, until the soft time-out. Its
 * real-time age (soft_ns, stale_ns below) runs from the later of its end
 * and when it was last wanted. */
void nic_flow_lazy(struct nic_flow *f);
/* ... no more (the read that asked for it was dropped). */
void nic_flow_unwant(struct nic_flow *f);

/* The earliest time a reader could act on a flow that has left but was not
 * read to its end yet (UINT64_MAX if none), gated flows left out, soft
 * ones not wanted whose away(wconn) says their reader waits for something
 * else (NULL: none), and soft ones not wanted or whose hold says no once
 * they finished soft_ns of real time ago (hold NULL: every soft one
 * counts). Flows left unread for more than stale_ns of real time no
 * longer count (their reader is not coming). A lazy flow's real time
 * counts from the later of its end and when it was last wanted. */
uint64_t nic_unread_bound(uint64_t real_now, uint64_t stale_ns, int (*away)(uint32_t wconn),
			  int (*hold)(uint32_t wconn), uint64_t soft_ns);
/* 1: no flow is sending, and none waiting may start before t. */
int nic_idle_before(uint64_t t);

/* Arrivals the network went past unread once nic_unread_bound left them
 * out for the soft hold's hold() or for being stale (each cost the
 * session up to UNI_NIC_SOFT_STALE_NS or UNI_NIC_UNREAD_STALE_NS of real
 * time; those left out because their reader cannot act on them yet are
 * not counted). */
void nic_released(uint64_t *soft, uint64_t *stale);

uint64_t nic_late(void);
/* How far before the network time those were stamped: the most, in all. */
void nic_late_ns(uint64_t *max, uint64_t *sum);
void nic_debug_dump(FILE *f);

/* UNI_DEBUG_NIC is set: log the horizon and late transfers. */
int debug_nic(void);
/* UNI_DEBUG_NIC2 is set: every advance, and the rings when the horizon
 * runs 10 ms ahead (read once, as debug_nic: the loops ask every round). */
int debug_nic2(void);

#endif
