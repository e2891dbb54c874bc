/* CUPTI glue: kernel activity records and the CUDA calls that order work
 * feed the device timeline (devtl.c); see cupti_glue.h and docs/nccl.md,
 * "CUPTI".
 *
 * CUPTI is loaded with dlopen (the process's copy if it has one), in
 * simulate mode only, by the driver's injection hook (InitializeInjection,
 * when CUDA_INJECTION64_PATH names libunishim.so: unirun sets it) or at
 * the first NCCL call of a process that has loaded the CUDA runtime.
 * Callbacks on the calling thread:
 *  - kernel launches (runtime and driver API, graphs): the launching
 *    thread's virtual clock, by correlation id;
 *  - cudaEventRecord, cudaStreamWaitEvent: the order between streams;
 *  - host synchronisations (cudaStreamSynchronize, cudaDeviceSynchronize,
 *    cudaEventSynchronize, a synchronous cudaMemcpy, and cudaStreamQuery or
 *    cudaEventQuery that find the work done): the CPU spent waiting is not
 *    compute; the thread's clock becomes max(own, end of the work waited
 *    for) once CUPTI was flushed (the real wait is over, so every kernel
 *    before it has its record).
 * Activity records come from CUPTI's buffer callback, on its thread or in
 * a flush. A launch whose call names its stream owes a record there; a
 * host that synchronised waits (default flushes, 2 s at most) until what
 * it waited for has every record, since a forced flush would hand back
 * the records of kernels still running on other streams without their
 * times. CUPTI's timestamps come from the real clock (the program's clock
 * reads are virtual). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <cupti.h>

#include "cupti_glue.h"
#include "devtl.h"
#include "shim.h"

#define BUF_SIZE (1u << 20)
#define WAIT_RECORDS_NS 2000000000ull /* a host sync waits this long for owed records */

struct cupti_fns {
	CUptiResult (*subscribe)(CUpti_SubscriberHandle *, CUpti_CallbackFunc, void *);
	CUptiResult (*unsubscribe)(CUpti_SubscriberHandle);
	CUptiResult (*enable_callback)(uint32_t, CUpti_SubscriberHandle, CUpti_CallbackDomain, CUpti_CallbackId);
	CUptiResult (*register_callbacks)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc);
	CUptiResult (*enable)(CUpti_ActivityKind);
	CUptiResult (*next_record)(uint8_t *, size_t, CUpti_Activity **);
	CUptiResult (*flush_all)(uint32_t);
	CUptiResult (*result_string)(CUptiResult, const char **);
	CUptiResult (*stream_id)(CUcontext, CUstream, uint8_t, uint32_t *);
	CUptiResult (*timestamp_cb)(CUpti_TimestampCallbackFunc);
};

enum { OFF = -1, NOT_TRIED = 0, ON = 1, STARTING = 2 };

static struct {
	_Atomic int state;
	struct cupti_fns f;
	CUpti_SubscriberHandle sub;
	pthread_mutex_t lock;
	struct uni_devtl tl;
	struct uni_devtl_rule rules[64];
	char match[64][128];
	uint32_t last_corr; /* the latest correlation id seen */
	_Atomic int said_given_up, said_dropped;
} C = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *g_why = "";
static int g_debug;         /* UNI_CUPTI_DEBUG */
static int g_debug_kernels; /* kernels said (under C.lock) */
static __thread int t_internal;
static __thread uint32_t t_rt_launch; /* the runtime launch this thread is in */

/* The real mutex functions: the shim's own lock is not the program's. */
static void lock(void)
{
	(uni_real.mutex_lock ? uni_real.mutex_lock : pthread_mutex_lock)(&C.lock);
}

static void unlock(void)
{
	(uni_real.mutex_unlock ? uni_real.mutex_unlock : pthread_mutex_unlock)(&C.lock);
}

/* CUPTI's clock: the real one (CUPTI's own is CLOCK_REALTIME, which the
 * program's threads read as virtual time). */
static uint64_t CUPTIAPI cupti_clock(void)
{
	return uni_shim_real_ns(CLOCK_REALTIME);
}

static void saw(uint32_t corr)
{
	if (corr > C.last_corr)
		C.last_corr = corr;
}

/* Activity buffers ----------------------------------------------------------- */

static void CUPTIAPI buf_request(uint8_t **buf, size_t *size, size_t *max_records)
{
	*buf = aligned_alloc(8, BUF_SIZE);
	*size = *buf ? BUF_SIZE : 0;
	*max_records = 0;
}

static void CUPTIAPI buf_complete(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size, size_t valid)
{
	(void)ctx;
	(void)stream;
	(void)size;
	CUpti_Activity *rec = NULL;
	/* The kernels' records, found outside the lock (CUPTI's own call);
	 * they stay in buf, which is freed after. */
	const CUpti_ActivityKernel10 **k = NULL;
	size_t n = 0, cap = 0;
	while (buf && C.f.next_record(buf, valid, &rec) == CUPTI_SUCCESS) {
		if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL)
			continue;
		if (n == cap) {
			size_t c2 = cap ? 2 * cap : 256;
			const CUpti_ActivityKernel10 **k2 = realloc(k, c2 * sizeof(*k));
			if (!k2)
				break;
			k = k2;
			cap = c2;
		}
		/* start, end, streamId, correlationId and name sit at the same
		 * offsets in every kernel record version from 4 to 10. */
		k[n++] = (const CUpti_ActivityKernel10 *)rec;
	}
	lock();
	for (size_t i = 0; i < n; i++) {
		/* A record handed back before its kernel ended (a forced
		 * flush) has no times: it stays owed. */
		if (!k[i]->start || !k[i]->end)
			continue;
		uni_devtl_record(&C.tl, k[i]->streamId, k[i]->correlationId, k[i]->start, k[i]->end, k[i]->name);
		saw(k[i]->correlationId);
		/* UNI_CUPTI_DEBUG=2: the first kernels by name, for
		 * devices.kernels patterns (docs/nccl.md, "CUPTI"). */
		if (g_debug >= 2 && g_debug_kernels < 40) {
			g_debug_kernels++;
			uni_shim_log("CUPTI kernel on stream %u: %.3f us, x%g: %.200s", k[i]->streamId,
				     (double)(k[i]->end - k[i]->start) / 1e3, uni_devtl_factor(&C.tl, k[i]->name),
				     k[i]->name ? k[i]->name : "?");
		}
	}
	unlock();
	free(k);
	free(buf);
}

static void flush(uint32_t flag)
{
	int saved = t_internal;
	t_internal = 1;
	/* (CUPTI's own locks are not the program's: in deterministic mode
	 * they were turn points, as many as the polls for records took.) */
	uni_shim_quiet_io(1);
	C.f.flush_all(flag);
	uni_shim_quiet_io(0);
	t_internal = saved;
}

/* Flushes until nothing is owed on stream (UINT32_MAX: any) up to upto:
 * the caller's real wait is over, so the records are complete, but a
 * default flush holds back a buffer that also holds a record of a kernel
 * still running elsewhere. After WAIT_RECORDS_NS it gives up on them
 * (said once): they take no time in this wait, and fold into their
 * stream when they come. Returns with the lock held. */
static void await_records(uint32_t stream, uint64_t upto)
{
	uint64_t since = uni_shim_real_ns(CLOCK_MONOTONIC);
	for (;;) {
		flush(0); /* kernels nobody expected (a launch we do not see) too */
		lock();
		if (uni_devtl_complete(&C.tl, stream, upto))
			return;
		unlock();
		if (uni_shim_real_ns(CLOCK_MONOTONIC) - since > WAIT_RECORDS_NS) {
			/* No forced flush: it would hand back the records of
			 * kernels still running on other streams without their
			 * times, and CUPTI never gives them again (a review's
			 * stand-in that keeps back buffers as CUPTI documents:
			 * each give-up then lost more and the next wait stalled
			 * too). The records waited for land later, late. */
			lock();
			uint64_t before = C.tl.given_up;
			uni_devtl_give_up(&C.tl, stream, upto);
			if (C.tl.given_up > before && !atomic_exchange(&C.said_given_up, 1))
				uni_shim_log("CUPTI: no activity record for %llu kernel(s) %.0f s after the host waited for "
					     "them: they take no virtual time (said once)",
					     (unsigned long long)(C.tl.given_up - before), WAIT_RECORDS_NS / 1e9);
			return;
		}
		struct timespec ts = {0, 100000};
		(uni_real.nanosleep ? uni_real.nanosleep : nanosleep)(&ts, NULL);
	}
}

/* API callbacks ------------------------------------------------------------------ */

enum what {
	LAUNCH,
	STREAM_SYNC,
	STREAM_QUERY,
	DEVICE_SYNC,
	MEMCPY,
	EVENT_SYNC,
	EVENT_QUERY,
	EVENT_RECORD,
	EVENT_DESTROY,
	STREAM_WAIT
};

static const struct {
	CUpti_CallbackDomain dom;
	CUpti_CallbackId cbid;
	enum what what;
	uint8_t ptsz; /* per-thread default stream */
} g_calls[] = {
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_ptsz_v7000, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_v13000, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_ptsz_v13000, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_v11060, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_ptsz_v11060, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernel_v9000, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernel_ptsz_v9000, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_v10000, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_ptsz_v10000, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel_ptsz, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx_ptsz, LAUNCH, 1},
	{CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchCooperativeKernel, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuGraphLaunch, LAUNCH, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaStreamSynchronize_v3020, STREAM_SYNC, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaStreamSynchronize_ptsz_v7000, STREAM_SYNC, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaStreamQuery_v3020, STREAM_QUERY, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaStreamQuery_ptsz_v7000, STREAM_QUERY, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaDeviceSynchronize_v3020, DEVICE_SYNC, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_v3020, MEMCPY, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_ptds_v7000, MEMCPY, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventDestroy_v3020, EVENT_DESTROY, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventSynchronize_v3020, EVENT_SYNC, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventQuery_v3020, EVENT_QUERY, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventRecord_v3020, EVENT_RECORD, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventRecord_ptsz_v7000, EVENT_RECORD, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventRecordWithFlags_v11010, EVENT_RECORD, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaEventRecordWithFlags_ptsz_v11010, EVENT_RECORD, 1},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaStreamWaitEvent_v3020, STREAM_WAIT, 0},
	{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_cudaStreamWaitEvent_ptsz_v7000, STREAM_WAIT, 1},
};
#define NCALLS (sizeof(g_calls) / sizeof(g_calls[0]))

static int stream_id(cudaStream_t s, uint8_t ptsz, uint32_t *id)
{
	uni_shim_quiet_io(1);
	int r = C.f.stream_id(NULL, (CUstream)s, ptsz, id) == CUPTI_SUCCESS ? 0 : -1;
	uni_shim_quiet_io(0);
	return r;
}

/* The host waited for the work of the call corr (the real wait is over):
 * its clock becomes max(own, end of that work); the CPU it spent waiting
 * is nobody's compute. */
static void host_waited(enum what w, const void *params, uint8_t ptsz, uint32_t corr)
{
	uint64_t t = 0, upto = uni_devtl_after(corr), ev = 0;
	uint32_t sid = UINT32_MAX;
	int known = 1;
	if (w == STREAM_SYNC || w == STREAM_QUERY)
		known = stream_id(((const cudaStreamSynchronize_v3020_params *)params)->stream, ptsz, &sid) == 0;
	else if (w == MEMCPY) /* the legacy (or per-thread) default stream */
		known = stream_id(NULL, ptsz, &sid) == 0;
	else if (w == EVENT_SYNC || w == EVENT_QUERY) {
		ev = (uint64_t)(uintptr_t)((const cudaEventSynchronize_v3020_params *)params)->event;
		/* For an event: its stream up to its record (every stream up
		 * to the call where the record is not known: a kernel still
		 * running on another stream would hold the wait up to
		 * WAIT_RECORDS_NS, and PyTorch's watchdog queries events all
		 * the time). */
		uint32_t es;
		uint64_t eseq;
		lock();
		int where = uni_devtl_event_where(&C.tl, ev, &es, &eseq);
		unlock();
		if (where) {
			sid = es;
			upto = eseq;
		}
	}
	if (known) {
		await_records(sid, upto);
		saw(corr);
		if (ev)
			uni_devtl_event_time(&C.tl, ev, &t);
		else if (sid == UINT32_MAX)
			t = uni_devtl_all_end(&C.tl, upto);
		else
			t = uni_devtl_stream_end(&C.tl, sid, upto);
		uint64_t dropped = C.tl.dropped;
		unlock();
		if (dropped && !atomic_exchange(&C.said_dropped, 1))
			uni_shim_log("CUPTI: the device timeline's tables are full (%d streams, %d events, or no memory): "
				     "work on streams beyond them takes no virtual time (said once)",
				     UNI_DEVTL_STREAMS, UNI_DEVTL_EVENTS);
	}
	uni_shim_vt_settle(t);
}

/* The stream a launch names, from its parameters (0: none it names). */
static int launch_stream(CUpti_CallbackDomain dom, CUpti_CallbackId cbid, const void *params, uint8_t ptsz,
			 uint32_t *sid)
{
	const void *s = NULL;
	if (dom == CUPTI_CB_DOMAIN_RUNTIME_API) {
		switch (cbid) {
		case CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000:
		case CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_ptsz_v7000:
		/* CUDA 13's <<<>>> launch (crt/device_functions.h): kernel,
		 * grid, block, args, shared memory, stream: the same layout */
		case CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_v13000:
		case CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_ptsz_v13000:
			s = ((const cudaLaunchKernel_v7000_params *)params)->stream;
			break;
		case CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernel_v9000:
		case CUPTI_RUNTIME_TRACE_CBID_cudaLaunchCooperativeKernel_ptsz_v9000:
			s = ((const cudaLaunchCooperativeKernel_v9000_params *)params)->stream;
			break;
		case CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_v11060:
		case CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_ptsz_v11060: {
			const cudaLaunchConfig_t *c = ((const cudaLaunchKernelExC_v11060_params *)params)->config;
			if (!c)
				return 0;
			s = c->stream;
			break;
		}
		default:
			return 0;
		}
	} else {
		switch (cbid) {
		case CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel:
		case CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel_ptsz:
			s = ((const cuLaunchKernel_params *)params)->hStream;
			break;
		case CUPTI_DRIVER_TRACE_CBID_cuLaunchCooperativeKernel:
			s = ((const cuLaunchCooperativeKernel_params *)params)->hStream;
			break;
		case CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx:
		case CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx_ptsz: {
			const CUlaunchConfig *c = ((const cuLaunchKernelEx_params *)params)->config;
			if (!c)
				return 0;
			s = c->hStream;
			break;
		}
		default:
			return 0;
		}
	}
	return stream_id((cudaStream_t)s, ptsz, sid) == 0;
}

static void CUPTIAPI on_api(void *ud, CUpti_CallbackDomain dom, CUpti_CallbackId cbid, const void *data)
{
	(void)ud;
	const CUpti_CallbackData *d = data;
	if (t_internal || !d)
		return;
	size_t i = 0;
	while (i < NCALLS && (g_calls[i].dom != dom || g_calls[i].cbid != cbid))
		i++;
	if (i == NCALLS)
		return;
	enum what w = g_calls[i].what;
	uint8_t ptsz = g_calls[i].ptsz;
	int enter = d->callbackSite == CUPTI_API_ENTER;
	int ok = !enter && dom == CUPTI_CB_DOMAIN_RUNTIME_API && d->functionReturnValue &&
		 *(const cudaError_t *)d->functionReturnValue == cudaSuccess;
	uint32_t sid;
	switch (w) {
	case LAUNCH: {
		int rt = dom == CUPTI_CB_DOMAIN_RUNTIME_API;
		if (!enter) {
			if (rt)
				t_rt_launch = 0;
			break;
		}
		/* A driver launch inside a runtime one (the runtime's own call)
		 * is the same kernel: it owes nothing of its own, and its
		 * record, if it carries this id, pays the runtime's. */
		int nested = !rt && t_rt_launch;
		uint32_t lsid = 0;
		int named = !nested && launch_stream(dom, cbid, d->functionParams, ptsz, &lsid);
		uint64_t vt = uni_shim_vt_charge();
		lock();
		uni_devtl_launch(&C.tl, d->correlationId, vt);
		if (nested)
			uni_devtl_alias(&C.tl, d->correlationId, t_rt_launch);
		else if (named)
			uni_devtl_expect(&C.tl, lsid, d->correlationId);
		saw(d->correlationId);
		unlock();
		if (rt)
			t_rt_launch = d->correlationId;
		break;
	}
	case MEMCPY:
		if (d->functionParams &&
		    ((const cudaMemcpy_v3020_params *)d->functionParams)->kind == cudaMemcpyDeviceToDevice)
			break; /* the host does not wait for it */
		/* fall through */
	case STREAM_SYNC:
	case DEVICE_SYNC:
	case EVENT_SYNC:
		if (enter)
			uni_shim_vt_charge(); /* compute before the wait */
		else if (ok)
			host_waited(w, d->functionParams, ptsz, d->correlationId);
		else
			uni_shim_vt_settle(0);
		break;
	case STREAM_QUERY:
	case EVENT_QUERY:
		if (enter)
			uni_shim_vt_charge();
		else if (ok) /* the work is done: the host saw it end */
			host_waited(w, d->functionParams, ptsz, d->correlationId);
		break;
	case EVENT_DESTROY:
		if (enter && d->functionParams) {
			lock();
			uni_devtl_event_forget(&C.tl,
					       (uint64_t)(uintptr_t)((const cudaEventDestroy_v3020_params *)d->functionParams)->event);
			unlock();
		}
		break;
	case EVENT_RECORD:
	case STREAM_WAIT: {
		if (!ok)
			break;
		int rec = w == EVENT_RECORD;
		const cudaEventRecord_v3020_params *pr = d->functionParams;
		const cudaStreamWaitEvent_v3020_params *pw = d->functionParams;
		if (stream_id(rec ? pr->stream : pw->stream, ptsz, &sid) != 0)
			break;
		uint64_t ev = (uint64_t)(uintptr_t)(rec ? pr->event : pw->event);
		lock();
		(rec ? uni_devtl_event_record : uni_devtl_wait)(&C.tl, sid, ev, uni_devtl_at(d->correlationId));
		saw(d->correlationId);
		unlock();
		break;
	}
	}
}

/* Loading ------------------------------------------------------------------------- */

static const char *result_name(CUptiResult r)
{
	const char *s = NULL;
	if (C.f.result_string && C.f.result_string(r, &s) == CUPTI_SUCCESS && s)
		return s;
	return "unknown CUPTI error";
}

static void *open_cupti(void)
{
	static const char *const names[] = {"libcupti.so.13", "libcupti.so.12", "libcupti.so"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
		if (h)
			return h;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (h)
			return h;
	}
	return NULL;
}

static void start(void)
{
	const char *fail = NULL;
	CUptiResult r = CUPTI_SUCCESS;
	void *h = open_cupti();
	if (!h) {
		uni_shim_log("no libcupti (%s): GPU kernels take no virtual time in this rank", dlerror());
		atomic_store(&C.state, OFF);
		return;
	}
	*(void **)&C.f.subscribe = dlsym(h, "cuptiSubscribe");
	*(void **)&C.f.unsubscribe = dlsym(h, "cuptiUnsubscribe");
	*(void **)&C.f.enable_callback = dlsym(h, "cuptiEnableCallback");
	*(void **)&C.f.register_callbacks = dlsym(h, "cuptiActivityRegisterCallbacks");
	*(void **)&C.f.enable = dlsym(h, "cuptiActivityEnable");
	*(void **)&C.f.next_record = dlsym(h, "cuptiActivityGetNextRecord");
	*(void **)&C.f.flush_all = dlsym(h, "cuptiActivityFlushAll");
	*(void **)&C.f.result_string = dlsym(h, "cuptiGetResultString");
	*(void **)&C.f.stream_id = dlsym(h, "cuptiGetStreamIdEx");
	*(void **)&C.f.timestamp_cb = dlsym(h, "cuptiActivityRegisterTimestampCallback");
	if (!C.f.subscribe || !C.f.unsubscribe || !C.f.enable_callback || !C.f.register_callbacks || !C.f.enable ||
	    !C.f.next_record || !C.f.flush_all || !C.f.stream_id) {
		uni_shim_log("libcupti lacks the functions the device timeline needs: GPU kernels take no virtual "
			     "time in this rank");
		atomic_store(&C.state, OFF);
		return;
	}
	/* devices.kernels and the rank's slowdown. */
	double rank_slowdown = uni_shim_slowdown();
	size_t n = 0;
	while (n < 64 && uni_shim_kernel_rule((uint32_t)n, C.match[n], sizeof(C.match[n]), &C.rules[n].slowdown) == 0) {
		C.rules[n].match = C.match[n];
		n++;
	}
	uni_devtl_init(&C.tl, C.rules, n, rank_slowdown);

	/* Before any enable, as CUPTI asks. */
	if (C.f.timestamp_cb)
		C.f.timestamp_cb(cupti_clock);
	if ((r = C.f.subscribe(&C.sub, on_api, NULL)) != CUPTI_SUCCESS)
		fail = "cuptiSubscribe";
	for (size_t i = 0; !fail && i < NCALLS; i++)
		if ((r = C.f.enable_callback(1, C.sub, g_calls[i].dom, g_calls[i].cbid)) != CUPTI_SUCCESS)
			fail = "cuptiEnableCallback";
	if (!fail && (r = C.f.register_callbacks(buf_request, buf_complete)) != CUPTI_SUCCESS)
		fail = "cuptiActivityRegisterCallbacks";
	if (!fail && (r = C.f.enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL)) != CUPTI_SUCCESS)
		fail = "cuptiActivityEnable(CONCURRENT_KERNEL)";
	if (fail) {
		uni_shim_log("CUPTI is not available (%s: %s; no GPU?): GPU kernels take no virtual time in this "
			     "rank, and an NCCL operation is complete for its caller when the call returns",
			     fail, result_name(r));
		if (C.sub)
			C.f.unsubscribe(C.sub);
		atomic_store(&C.state, OFF);
		return;
	}
	atomic_store(&C.state, ON);
	const char *dbg = getenv("UNI_CUPTI_DEBUG");
	g_debug = dbg && *dbg ? atoi(dbg) : 0;
	if (g_debug)
		uni_shim_log("CUPTI on (%s): %zu kernel patterns, rank slowdown %g", g_why, n, rank_slowdown);
}

int uni_cupti_start(const char *why)
{
	if (!uni_shim_simulating())
		return 0;
	/* Once. Not pthread_once: CUPTI's calls may initialise the driver,
	 * which calls InitializeInjection, on this thread (or another may be
	 * in cuInit holding the driver's lock): whoever finds it starting
	 * goes on without it. */
	int expect = NOT_TRIED;
	if (atomic_compare_exchange_strong(&C.state, &expect, STARTING)) {
		g_why = why;
		/* CUPTI's own threads and calls are not the program's. */
		uni_shim_quiet_io(1);
		start();
		uni_shim_quiet_io(0);
	}
	return atomic_load(&C.state) == ON;
}

int uni_cupti_on(void)
{
	return atomic_load_explicit(&C.state, memory_order_relaxed) == ON;
}

void uni_cupti_internal(int on)
{
	t_internal += on ? 1 : -1;
}

int uni_cupti_op_open(void *stream, uint32_t *sid, uint64_t *seq, uint64_t *vend)
{
	if (!uni_cupti_on() || stream_id((cudaStream_t)stream, 0, sid) != 0)
		return -1;
	/* The caller synchronised the stream: its records are owed now. */
	lock();
	uint64_t upto = uni_devtl_after(C.last_corr);
	unlock();
	await_records(*sid, upto);
	*seq = uni_devtl_after(C.last_corr);
	*vend = uni_devtl_stream_end(&C.tl, *sid, *seq);
	int r = uni_devtl_op_open(&C.tl, *sid, seq);
	unlock();
	return r;
}

void uni_cupti_op_close(uint32_t sid, uint64_t seq, uint64_t vstart, uint64_t vdur)
{
	lock();
	uni_devtl_op_close(&C.tl, sid, seq, vstart, vdur);
	unlock();
}

/* The driver calls this during cuInit when CUDA_INJECTION64_PATH names
 * this library: CUPTI then sees every kernel from the first. */
UNI_EXTERN int InitializeInjection(void);
int InitializeInjection(void)
{
	uni_shim_ensure_init();
	uni_cupti_start("CUDA_INJECTION64_PATH");
	return 1;
}
