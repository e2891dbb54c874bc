/* A stand-in for CUPTI where no GPU exists (tests only): the calls the
 * shim's device timeline makes (shim/cupti.c), driven by the stand-in CUDA
 * runtime (mock_cudart.c), which reports its API calls and kernels here.
 *
 * Loaded by the shim under the name libcupti.so.13 (the test puts it first
 * on LD_LIBRARY_PATH). API callbacks go to the one subscriber for the
 * (domain, id) pairs it enabled, with one correlation id per call from an
 * increasing counter, as CUPTI does. Kernel records (CUpti_ActivityKernel10)
 * are kept until a flush hands them to the subscriber's buffer callbacks,
 * as CUPTI keeps them until a buffer completes. A stream's id is its
 * handle's low 16 bits (the default stream: 1; the per-thread one: 2). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cupti.h>

#define MAX_PENDING 4096

static CUpti_CallbackFunc g_cb;
static void *g_ud;
static unsigned char g_enabled[4][1024];
static CUpti_BuffersCallbackRequestFunc g_req;
static CUpti_BuffersCallbackCompleteFunc g_done;
static int g_kernels_on;
static _Atomic uint32_t g_corr;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static CUpti_ActivityKernel10 g_pending[MAX_PENDING];
static char g_names[MAX_PENDING][64];
static size_t g_npending;
static uint64_t g_clock = 1000000; /* the mock device's clock, ns */

CUptiResult cuptiSubscribe(CUpti_SubscriberHandle *sub, CUpti_CallbackFunc cb, void *ud)
{
	if (g_cb)
		return CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED;
	g_cb = cb;
	g_ud = ud;
	*sub = (CUpti_SubscriberHandle)(uintptr_t)1;
	return CUPTI_SUCCESS;
}

CUptiResult cuptiUnsubscribe(CUpti_SubscriberHandle sub)
{
	(void)sub;
	g_cb = NULL;
	return CUPTI_SUCCESS;
}

CUptiResult cuptiEnableCallback(uint32_t enable, CUpti_SubscriberHandle sub, CUpti_CallbackDomain dom,
				CUpti_CallbackId cbid)
{
	(void)sub;
	if ((unsigned)dom >= 4 || cbid >= 1024)
		return CUPTI_ERROR_INVALID_PARAMETER;
	g_enabled[dom][cbid] = enable != 0;
	return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityRegisterCallbacks(CUpti_BuffersCallbackRequestFunc req, CUpti_BuffersCallbackCompleteFunc done)
{
	g_req = req;
	g_done = done;
	return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityEnable(CUpti_ActivityKind kind)
{
	if (kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL)
		g_kernels_on = 1;
	return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityGetNextRecord(uint8_t *buf, size_t valid, CUpti_Activity **rec)
{
	uint8_t *next = *rec ? (uint8_t *)*rec + sizeof(CUpti_ActivityKernel10) : buf;
	if (next + sizeof(CUpti_ActivityKernel10) > buf + valid)
		return CUPTI_ERROR_MAX_LIMIT_REACHED;
	*rec = (CUpti_Activity *)next;
	return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityFlushAll(uint32_t flag)
{
	(void)flag;
	if (!g_req || !g_done)
		return CUPTI_SUCCESS;
	for (;;) {
		pthread_mutex_lock(&g_lock);
		size_t n = g_npending;
		if (!n) {
			pthread_mutex_unlock(&g_lock);
			return CUPTI_SUCCESS;
		}
		uint8_t *buf = NULL;
		size_t size = 0, max = 0;
		g_req(&buf, &size, &max);
		size_t fit = buf ? size / sizeof(CUpti_ActivityKernel10) : 0;
		if (!fit) {
			pthread_mutex_unlock(&g_lock);
			return CUPTI_ERROR_OUT_OF_MEMORY;
		}
		if (n > fit)
			n = fit;
		/* Names live in a copy the buffer callback may read. */
		static char names[MAX_PENDING][64];
		for (size_t i = 0; i < n; i++) {
			memcpy(names[i], g_names[i], sizeof(names[i]));
			g_pending[i].name = names[i];
		}
		memcpy(buf, g_pending, n * sizeof(CUpti_ActivityKernel10));
		memmove(g_pending, g_pending + n, (g_npending - n) * sizeof(g_pending[0]));
		memmove(g_names, g_names + n, (g_npending - n) * sizeof(g_names[0]));
		g_npending -= n;
		pthread_mutex_unlock(&g_lock);
		g_done(NULL, 0, buf, size, n * sizeof(CUpti_ActivityKernel10));
	}
}

CUptiResult cuptiGetResultString(CUptiResult r, const char **s)
{
	*s = r == CUPTI_SUCCESS ? "CUPTI_SUCCESS" : "mock CUPTI error";
	return CUPTI_SUCCESS;
}

CUptiResult cuptiGetStreamIdEx(CUcontext ctx, CUstream stream, uint8_t per_thread, uint32_t *id)
{
	(void)ctx;
	uintptr_t h = (uintptr_t)stream;
	*id = h ? (uint32_t)(h & 0xffff) : per_thread ? 2 : 1;
	return CUPTI_SUCCESS;
}

/* For the stand-in runtime ------------------------------------------------- */

/* A call's correlation id (0: a new one). */
uint32_t mock_cupti_corr(void);
uint32_t mock_cupti_corr(void)
{
	return atomic_fetch_add(&g_corr, 1) + 1;
}

/* The runtime's call cbid at site (0 enter, 1 exit). */
void mock_cupti_api(int cbid, int site, const char *fn, const void *params, const void *ret, uint32_t corr);
void mock_cupti_api(int cbid, int site, const char *fn, const void *params, const void *ret, uint32_t corr)
{
	if (!g_cb || cbid < 0 || cbid >= 1024 || !g_enabled[CUPTI_CB_DOMAIN_RUNTIME_API][cbid])
		return;
	CUpti_CallbackData d;
	memset(&d, 0, sizeof(d));
	d.callbackSite = site ? CUPTI_API_EXIT : CUPTI_API_ENTER;
	d.functionName = fn;
	d.functionParams = params;
	d.functionReturnValue = (void *)ret;
	d.correlationId = corr;
	g_cb(g_ud, CUPTI_CB_DOMAIN_RUNTIME_API, (CUpti_CallbackId)cbid, &d);
}

/* A kernel that ran dur ns on stream (a handle), launched by call corr. */
void mock_cupti_kernel(void *stream, uint32_t corr, const char *name, uint64_t dur);
void mock_cupti_kernel(void *stream, uint32_t corr, const char *name, uint64_t dur)
{
	if (!g_kernels_on)
		return;
	pthread_mutex_lock(&g_lock);
	if (g_npending < MAX_PENDING) {
		CUpti_ActivityKernel10 *k = &g_pending[g_npending];
		memset(k, 0, sizeof(*k));
		k->kind = CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
		k->start = g_clock;
		k->end = g_clock + dur;
		g_clock += dur;
		cuptiGetStreamIdEx(NULL, (CUstream)stream, 0, &k->streamId);
		k->correlationId = corr;
		strncpy(g_names[g_npending], name, sizeof(g_names[0]) - 1);
		g_names[g_npending][sizeof(g_names[0]) - 1] = 0;
		g_npending++;
	}
	pthread_mutex_unlock(&g_lock);
}
