/* Deterministic mode's turn (shim/det.c; docs/simulate.md "Deterministic
 * mode"): one rank thread of the whole session runs at a time, the one
 * with the least (virtual clock, rank, thread key); a thread gives the
 * turn up where it enters the shim with a later clock, or where it waits.
 * Objects (obj) are addresses in the thread's process: a wake-up reaches
 * the threads of the waker's process blocked on the same obj. */
#ifndef UNI_SHIM_DET_H
#define UNI_SHIM_DET_H

#include <stdint.h>

#include "uni/shm.h"

/* What a thread blocks on: an address, tagged in its low bits (mutexes and
 * condition variables are 8-aligned; a join key has bit 0 set). */
#define UNI_DET_OBJ_MUTEX 2u /* (obj & 3) == 2: a pthread mutex (the watch frees a waiter when it is free) */
#define UNI_DET_OBJ_SLEEP 4u /* a sleep: nobody wakes it */
/* The bytes written on connection end idx (shm): wakes its readers in any
 * process (the top bit: no address has it). */
#define UNI_DET_OBJ_CONN(idx) ((1ull << 63) | (uint64_t)(idx))
/* A poll in turn: woken by any write or close (it looks again). */
#define UNI_DET_OBJ_POLL ((1ull << 63) | (1ull << 62))
/* An accept in turn: woken by any connect (it looks again). */
#define UNI_DET_OBJ_ACCEPT ((1ull << 63) | (1ull << 61))
/* A connect to the rendezvous store waiting for its listener: woken by any
 * listen. */
#define UNI_DET_OBJ_LISTEN ((1ull << 63) | (1ull << 60))
/* A read on a connection its listener has not accepted yet: woken by any
 * accept (it looks again). */
#define UNI_DET_OBJ_ACCEPTED ((1ull << 63) | (1ull << 59))
/* A read waiting for a store outside the session to answer: woken by any
 * rank's write to such a store (it looks again). */
#define UNI_DET_OBJ_EXTSTORE ((1ull << 63) | (1ull << 58))

/* A wait of the simulated NCCL in turn for the communicator whose key
 * starts with k (a barrier, a pair's ring, a join): woken by any rank of
 * it that moved (in any process). */
#define UNI_DET_OBJ_NCCL(k) ((1ull << 63) | (1ull << 56) | ((uint64_t)(k) & 0xffffffffffffull))
#define UNI_DET_OBJ_IS_NCCL(obj) (((obj) >> 56) == (UNI_DET_OBJ_NCCL(0) >> 56))

/* A wait for the network in turn (uni_det_block_net): woken by nothing
 * else than the network (and the watch's look again). */
#define UNI_DET_OBJ_NET ((1ull << 63) | (1ull << 57))

/* From attach on (h->det): world is the number of ranks to wait for before
 * the first turn (every rank attached), <= 0: none. */
void uni_det_init(struct uni_shm_hdr *h, int world);

/* A thread's ring takes part from now on, ready at t (a new thread at its
 * creator's clock: set by the creator, so that the turn counts it at once). */
void uni_det_adopt(struct uni_ring *r, uint32_t idx, uint64_t key, uint64_t t);

/* The thread is at t: it goes on when it is the least of the ready ones
 * (waits for the turn). */
void uni_det_turn(struct uni_ring *r, uint32_t idx, uint64_t t);

/* The thread waits on obj from clock t until a wake-up, or until its
 * time-out `until` (virtual; UINT64_MAX none) is the least time of the
 * session. Returns 1 when woken, 0 at the time-out (it has the turn), -1
 * when the session gave the turn up meanwhile (uni_det_abandon: the
 * caller goes on as without the turn, as after a spurious wake-up), 2
 * when nobody had the turn for 200 ms (every thread waited) and a
 * connection or poll wait without a time-out was told to look again. */
int uni_det_block(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until);

/* uni_det_block in two steps: registered as blocked (it keeps the turn;
 * a wake-up from now on counts), then the turn given up and the wait.
 * still (may be NULL): looked at under the turn's lock before the wait;
 * 0 = what it waits for happened already (a waker without the turn came
 * between the caller's look and its registration): it goes on at once. */
void uni_det_block_begin(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until);
int uni_det_block_wait(struct uni_ring *r, uint32_t idx, int (*still)(uint64_t obj));

/* nic, topology: 1 while the network moves in turn (det.c "The network in
 * turn"): the thread that has the turn at clock c finds every byte that
 * leaves by c final (the connections' final_off), unless data owed at an
 * earlier stamp held the network back. */
int uni_det_net(void);

/* uni_det_block that also ends when the network says (kind
 * UNI_DET_NET_ANY: final_seq is no longer seq, read before the caller
 * looked at final_off: it goes on at its clock and looks again;
 * UNI_DET_NET_ANSWER: unid answered request seq: it goes on at the later
 * of its clock and resp_t). Without the network in turn, uni_det_block. */
int uni_det_block_net(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until, uint32_t net,
		      uint32_t seq);
/* ... its first half (uni_det_block_wait the second). */
void uni_det_block_net_begin(struct uni_ring *r, uint32_t idx, uint64_t obj, uint64_t t, uint64_t until,
			     uint32_t net, uint32_t seq);

/* A thread outside the turn waits for unid's answer: while nobody has the
 * turn, the network moves one step (not deterministic: outside). */
void uni_det_net_kick(void);

/* A write stamped stamp: the network is final no further than that. */
void uni_det_net_sent(uint64_t stamp);

/* A condition wait in turn is a cancellation point: on, the wait acts on
 * a pending pthread_cancel; uni_det_cancelled from the cleanup handler
 * (the thread competes for the turn again, to run its handlers). */
void uni_det_cancelable(int on);
void uni_det_cancelled(struct uni_ring *r);

/* Wakes the first (all: every) thread of this process blocked on obj: it
 * goes on at the later of its clock and t (its ring's det_t after
 * uni_det_block; det_src = src, the waker's SIGNAL). Returns how many. */
int uni_det_wake(uint64_t obj, uint64_t t, int all, uint64_t src);

/* The thread is about to wait where the turn cannot follow (a real
 * blocking call): the turn goes on without it until uni_det_turn. */
void uni_det_outside(struct uni_ring *r, uint32_t idx);

/* The thread ends: it no longer takes part. */
void uni_det_end(struct uni_ring *r, uint32_t idx);

/* The session gives the turn up for good (a part of the program the turn
 * does not follow yet): says why once, lets every waiting thread go. */
void uni_det_abandon(const char *why);

/* The shim's: the calling thread got the turn after waiting for it (the
 * CPU time it spent waiting, in futex calls and the watch's looks at
 * /proc, is not its compute). */
void uni_shim_det_resumed(void);

/* 1 while the turn holds (deterministic mode, not given up). */
int uni_det_live(void);

/* In a forked child (the shim's fork handler): its pid is asked again. */
void uni_det_forked(void);

#endif
