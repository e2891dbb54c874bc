/* Gloo's UnboundBuffer completions carry their own times.
 *
 * A Gloo UnboundBuffer counts its send and receive completions under one
 * mutex, with one condvar per direction; waitSend/waitRecv consume one
 * completion each, and a thread often finds its completion already counted
 * and never waits. The generic rule (a stamped mutex hands its time to
 * whoever locks it next) then gives a waiter the time of the latest
 * completion of *either* direction: in Gloo's all_gather, with two pieces
 * in flight on one buffer, a worker waiting for piece i took the arrival
 * of piece i+1 and every step started one piece late.
 *
 * So the shim wraps the buffer's own methods (libgloo exports them and
 * calls them through its PLT and vtables, so a preloaded definition
 * interposes): every completion pushes its time (the completing thread's
 * clock: a loop thread's event time) onto the buffer's list for its
 * direction; a wait that returns true takes the earliest time on that list
 * (a counting semaphore in virtual time), and the condvar and mutex inside
 * carry no time. Where Gloo is linked without exported symbols (a static
 * build) these wrappers are never called and the generic rule applies.
 *
 * The functions below carry the Itanium-mangled names of
 * gloo::transport::tcp::UnboundBuffer's members; a member function takes
 * `this` first, and std::chrono::milliseconds travels as its one long.
 * This file is compiled with -fexceptions: Gloo's waits throw on time-out
 * and the exception unwinds through these frames (the cleanup attribute
 * ends the quiet scope on the way). */
#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define UB_SLOTS 1024 /* buffers with completions not yet waited for */
#define UB_PROBE 16
#define UB_DEPTH 32   /* completions per buffer and direction */

struct ubuf {
	uintptr_t key;
	uint32_t n[2];              /* 0: send, 1: recv */
	uint64_t t[2][UB_DEPTH];
	uint64_t src[2][UB_DEPTH];  /* the SIGNAL event of each completion (replay) */
	uint64_t tok[UB_DEPTH];     /* sends: the message's token (uni_shim_take_send_token) */
};

static struct ubuf g_ub[UB_SLOTS];
static atomic_flag g_ub_lock = ATOMIC_FLAG_INIT;
static _Atomic int g_ub_full_said;

static void ub_lock(void)
{
	while (atomic_flag_test_and_set_explicit(&g_ub_lock, memory_order_acquire))
		__builtin_ia32_pause();
}

static void ub_unlock(void)
{
	atomic_flag_clear_explicit(&g_ub_lock, memory_order_release);
}

static uint32_t ub_hash(uintptr_t k)
{
	return (uint32_t)(((uint64_t)(k >> 4) * 0x9E3779B97F4A7C15ull) >> 54) & (UB_SLOTS - 1);
}

/* The entry of buffer k; an entry whose lists are empty is free. Under the
 * lock. */
static struct ubuf *ub_find(uintptr_t k, int create)
{
	uint32_t h = ub_hash(k);
	struct ubuf *free_e = NULL;
	for (uint32_t i = 0; i < UB_PROBE; i++) {
		struct ubuf *e = &g_ub[(h + i) & (UB_SLOTS - 1)];
		int empty = e->n[0] == 0 && e->n[1] == 0;
		if (e->key == k && !empty)
			return e;
		if (empty && !free_e)
			free_e = e;
	}
	if (!create || !free_e)
		return NULL;
	free_e->key = k;
	return free_e;
}

static void ub_push(void *self, int dir, uint64_t t, uint64_t tok, uint64_t src)
{
	ub_lock();
	struct ubuf *e = ub_find((uintptr_t)self, 1);
	if (e) {
		if (e->n[dir] == UB_DEPTH) {
			/* Never waited for that long: fold the oldest two. */
			uint64_t a = e->t[dir][0], b = e->t[dir][1];
			e->t[dir][1] = a > b ? a : b;
			if (b < a)
				e->src[dir][1] = e->src[dir][0];
			memmove(&e->t[dir][0], &e->t[dir][1], (UB_DEPTH - 1) * sizeof(uint64_t));
			memmove(&e->src[dir][0], &e->src[dir][1], (UB_DEPTH - 1) * sizeof(uint64_t));
			memmove(&e->tok[0], &e->tok[1], (UB_DEPTH - 1) * sizeof(uint64_t));
			e->n[dir]--;
		}
		if (dir == 0)
			e->tok[e->n[dir]] = tok;
		e->src[dir][e->n[dir]] = src;
		e->t[dir][e->n[dir]++] = t;
	}
	ub_unlock();
	if (!e && !atomic_exchange(&g_ub_full_said, 1))
		uni_shim_log("more than %d Gloo buffers with unconsumed completions; some waits carry no time",
			     UB_SLOTS);
}

/* The earliest completion of self in direction dir (and, for sends, its
 * token); 0 when none. */
static uint64_t ub_pop(void *self, int dir, uint64_t *tok, uint64_t *src)
{
	uint64_t t = 0;
	*tok = 0;
	*src = 0;
	ub_lock();
	struct ubuf *e = ub_find((uintptr_t)self, 0);
	if (e && e->n[dir]) {
		/* A receive takes the earliest arrival (completions may come in
		 * from several peers in any order); a send the oldest message
		 * (its token: the connection's byte order), whatever the times
		 * its completions were signalled with: the k-th waitSend is the
		 * k-th send's (a send finished by the loop after EAGAIN signals
		 * later than the next one written at once). */
		uint32_t m = 0;
		for (uint32_t i = 1; i < e->n[dir]; i++)
			if (dir == 0 ? (e->tok[i] && e->tok[i] < e->tok[m]) || (!e->tok[m] && e->tok[i])
				     : e->t[dir][i] < e->t[dir][m])
				m = i;
		t = e->t[dir][m];
		*src = e->src[dir][m];
		if (dir == 0)
			*tok = e->tok[m];
		e->n[dir]--;
		memmove(&e->t[dir][m], &e->t[dir][m + 1], (e->n[dir] - m) * sizeof(uint64_t));
		memmove(&e->src[dir][m], &e->src[dir][m + 1], (e->n[dir] - m) * sizeof(uint64_t));
		if (dir == 0)
			memmove(&e->tok[m], &e->tok[m + 1], (e->n[dir] - m) * sizeof(uint64_t));
	}
	ub_unlock();
	return t;
}

/* Deterministic mode: the object a wait for self's completions in
 * direction dir blocks on in turn (shim/det.h's tags: the top bit, no
 * address has it). */
static uint64_t ub_obj(void *self, int dir)
{
	return (1ull << 63) | (1ull << 59) | ((uint64_t)(uintptr_t)self << 1) | (uint64_t)dir;
}

/* 1 while the buffer of obj has no completion in its direction. */
static int ub_none(uint64_t obj)
{
	void *self = (void *)(uintptr_t)((obj & ~((1ull << 63) | (1ull << 59))) >> 1);
	int dir = (int)(obj & 1);
	ub_lock();
	struct ubuf *e = ub_find((uintptr_t)self, 0);
	int none = !e || !e->n[dir];
	ub_unlock();
	return none;
}

static void ub_forget(void *self)
{
	ub_lock();
	struct ubuf *e = ub_find((uintptr_t)self, 0);
	if (e)
		e->n[0] = e->n[1] = 0;
	ub_unlock();
}

struct find_def {
	const char *name;
	void *self_base; /* our own object, skipped */
	void *found;
};

static int find_def_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct find_def *f = arg;
	(void)size;
	if (!info->dlpi_name || !info->dlpi_name[0])
		return 0;
	void *h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 0;
	void *p = dlsym(h, f->name);
	dlclose(h);
	Dl_info di;
	if (p && dladdr(p, &di) && di.dli_fbase != f->self_base &&
	    di.dli_fbase == (void *)info->dlpi_addr) {
		f->found = p;
		return 1;
	}
	return 0;
}

/* The definition a wrapped member would have without the shim: libgloo's.
 * Python loads torch (and so libgloo) with RTLD_LOCAL, out of RTLD_NEXT's
 * reach, so the loaded objects are searched one by one. */
static void *next_sym(_Atomic(void *) *cache, const char *name)
{
	void *p = atomic_load_explicit(cache, memory_order_acquire);
	if (UNI_LIKELY(p != NULL))
		return p;
	p = dlsym(RTLD_NEXT, name);
	if (!p) {
		Dl_info me;
		struct find_def f = {.name = name};
		if (dladdr((void *)next_sym, &me))
			f.self_base = me.dli_fbase;
		dl_iterate_phdr(find_def_cb, &f);
		p = f.found;
	}
	if (!p) {
		uni_shim_log("%s called but no library defines it after the shim; stopping", name);
		abort();
	}
	atomic_store_explicit(cache, p, memory_order_release);
	return p;
}

static int active(void)
{
	return uni_shim_sync_on && !uni_shim_in_shim();
}

static void quiet_cleanup(int *on)
{
	if (*on)
		uni_shim_quiet_end();
}

static void sending_cleanup(int *on)
{
	if (*on)
		uni_shim_waiting_send(0);
}

#define SYM_HRECV "_ZN4gloo9transport3tcp13UnboundBuffer20handleRecvCompletionEi"
#define SYM_HSEND "_ZN4gloo9transport3tcp13UnboundBuffer20handleSendCompletionEi"
#define SYM_WRECV "_ZN4gloo9transport3tcp13UnboundBuffer8waitRecvEPiNSt6chrono8durationIlSt5ratioILl1ELl1000EEEE"
#define SYM_WSEND "_ZN4gloo9transport3tcp13UnboundBuffer8waitSendEPiNSt6chrono8durationIlSt5ratioILl1ELl1000EEEE"
#define SYM_CTOR "_ZN4gloo9transport3tcp13UnboundBufferC1ERKSt10shared_ptrINS1_7ContextEEPvm"

typedef void (*handle_fn)(void *, int);
typedef bool (*wait_fn)(void *, int *, long);
typedef void (*ctor_fn)(void *, const void *, void *, unsigned long);

static void completion(void *self, int rank, int dir, _Atomic(void *) *cache, const char *name)
{
	handle_fn real = (handle_fn)next_sym(cache, name);
	if (!active()) {
		real(self, rank);
		return;
	}
	int on __attribute__((cleanup(quiet_cleanup))) = 1;
	uint64_t t = uni_shim_quiet_begin(1);
	uint64_t tok = dir == 0 ? uni_shim_take_send_token() : 0;
	ub_push(self, dir, t, tok, uni_shim_signal((char *)self + dir, t));
	real(self, rank);
	uni_shim_det_gloo_done(ub_obj(self, dir), t); /* (counted by Gloo now: its wait returns at once) */
}

static bool wait_one(void *self, int *rank, long ms, int dir, _Atomic(void *) *cache, const char *name)
{
	wait_fn real = (wait_fn)next_sym(cache, name);
	if (!active())
		return real(self, rank, ms);
	/* Deterministic mode: the wait in turn until a completion is there
	 * (Gloo's own wait then returns at once); its time-out in virtual
	 * time, and then Gloo's (ms 0: its exception). */
	if (!uni_shim_det_gloo_wait(ub_obj(self, dir), ms, ub_none))
		ms = 0;
	int on __attribute__((cleanup(quiet_cleanup))) = 1;
	int sending __attribute__((cleanup(sending_cleanup))) = dir == 0;
	uni_shim_quiet_begin(0);
	if (sending)
		uni_shim_waiting_send(1);
	bool done = real(self, rank, ms);
	if (sending)
		uni_shim_waiting_send(0);
	sending = 0;
	uni_shim_quiet_end();
	on = 0;
	if (done) {
		uint64_t tok, src;
		uint64_t t = ub_pop(self, dir, &tok, &src);
		uni_shim_take(t, src);
		/* The write completes when the model says (send_buffer). */
		uni_shim_send_done(tok);
	}
	return done;
}

static _Atomic(void *) r_hrecv, r_hsend, r_wrecv, r_wsend, r_ctor;

UNI_EXTERN void _ZN4gloo9transport3tcp13UnboundBuffer20handleRecvCompletionEi(void *self, int rank);
UNI_EXTERN void _ZN4gloo9transport3tcp13UnboundBuffer20handleSendCompletionEi(void *self, int rank);
UNI_EXTERN bool _ZN4gloo9transport3tcp13UnboundBuffer8waitRecvEPiNSt6chrono8durationIlSt5ratioILl1ELl1000EEEE(
	void *self, int *rank, long ms);
UNI_EXTERN bool _ZN4gloo9transport3tcp13UnboundBuffer8waitSendEPiNSt6chrono8durationIlSt5ratioILl1ELl1000EEEE(
	void *self, int *rank, long ms);
UNI_EXTERN void _ZN4gloo9transport3tcp13UnboundBufferC1ERKSt10shared_ptrINS1_7ContextEEPvm(
	void *self, const void *ctx, void *ptr, unsigned long size);

UNI_EXTERN void _ZN4gloo9transport3tcp13UnboundBuffer20handleRecvCompletionEi(void *self, int rank)
{
	completion(self, rank, 1, &r_hrecv, SYM_HRECV);
}

UNI_EXTERN void _ZN4gloo9transport3tcp13UnboundBuffer20handleSendCompletionEi(void *self, int rank)
{
	completion(self, rank, 0, &r_hsend, SYM_HSEND);
}

UNI_EXTERN bool _ZN4gloo9transport3tcp13UnboundBuffer8waitRecvEPiNSt6chrono8durationIlSt5ratioILl1ELl1000EEEE(
	void *self, int *rank, long ms)
{
	return wait_one(self, rank, ms, 1, &r_wrecv, SYM_WRECV);
}

UNI_EXTERN bool _ZN4gloo9transport3tcp13UnboundBuffer8waitSendEPiNSt6chrono8durationIlSt5ratioILl1ELl1000EEEE(
	void *self, int *rank, long ms)
{
	return wait_one(self, rank, ms, 0, &r_wsend, SYM_WSEND);
}

/* A new buffer at an address an old one had: no completions yet. */
UNI_EXTERN void _ZN4gloo9transport3tcp13UnboundBufferC1ERKSt10shared_ptrINS1_7ContextEEPvm(
	void *self, const void *ctx, void *ptr, unsigned long size)
{
	ctor_fn real = (ctor_fn)next_sym(&r_ctor, SYM_CTOR);
	ub_forget(self);
	real(self, ctx, ptr, size);
}
