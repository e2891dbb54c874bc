/* A stand-in for the CUDA runtime where no GPU exists (tests only): the
 * few calls the simulated NCCL's device path makes (docs/nccl.md, "Device
 * buffers") and the ones the test program needs.
 *
 * "Device memory" is a memfd mapped twice: the address handed out (the
 * device pointer) is mapped PROT_NONE, so the host touching it faults as it
 * would on a real GPU; only the copy functions reach the bytes, through a
 * second, readable mapping.
 *
 * Streams are asynchronous, as on a GPU: copies (cudaMemcpyAsync) and host
 * functions (cudaLaunchHostFunc) are queued, and one thread of the mock,
 * the "device", runs the queue in the order it was filled (one order for
 * every stream: a legal schedule of CUDA's, and host functions of all
 * streams on one thread, which CUDA allows: the strictest case for a host
 * function that waits). cudaStreamSynchronize, cudaDeviceSynchronize,
 * cudaMemcpy and cudaFree wait for the queue to drain (cudaMemcpy and
 * cudaFree synchronise with the device in CUDA too). For the test, a gate
 * (mock_cuda_gate) holds the queue where it was closed, as a long kernel
 * would; a gate nobody opens opens by itself after 20 s
 * (MOCK_CUDA_GATE_S) and counts it.
 * The device thread waits with plain futexes and a spin lock, which the
 * shim does not see: the runtime's threads hand no virtual time around.
 *
 * The test loads it under a libcudart.so.* name: the shim looks for the
 * runtime the program loaded by that name and never loads one itself.
 * Devices: MOCK_CUDA_DEVICES of them (1 by default), each thread with its
 * current one (cudaSetDevice; none until then, and its first call that
 * needs a context makes device 0's, as the runtime does), each stream on
 * the device current where it was made. A call on a stream of another
 * device than the caller's current one is counted (CUDA runs a copy so,
 * not a kernel; the simulated NCCL makes its calls with the
 * communicator's device current, as NCCL does), and so is each device
 * that got a context.
 * Built a second time with MOCK_PLAIN, without the test's hooks (gate,
 * counts, capture), so that a test takes the way it takes with a real
 * runtime. */
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>
#include <cupti.h>

#define MAX_ALLOCS 1024

struct dev_alloc {
	char *dev, *rw;
	size_t size;
};

static struct dev_alloc g_dev[MAX_ALLOCS];
static atomic_flag g_lock = ATOMIC_FLAG_INIT; /* g_dev */
static _Atomic unsigned long g_copies;

static void lock(atomic_flag *l)
{
	while (atomic_flag_test_and_set_explicit(l, memory_order_acquire))
		;
}

static void unlock(atomic_flag *l)
{
	atomic_flag_clear_explicit(l, memory_order_release);
}

static void fwait(_Atomic uint32_t *w, uint32_t v, long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, &ts, NULL, 0);
}

static void fwake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* The readable view of device address p (len bytes from it), or NULL. */
static char *rw_of(const void *p, size_t len, int *is_dev)
{
	*is_dev = 0;
	lock(&g_lock);
	char *r = NULL;
	for (int i = 0; i < MAX_ALLOCS; i++) {
		struct dev_alloc *a = &g_dev[i];
		if (a->dev && (const char *)p >= a->dev && (const char *)p < a->dev + a->size) {
			*is_dev = 1;
			if ((size_t)((const char *)p - a->dev) + len <= a->size)
				r = a->rw + ((const char *)p - a->dev);
			break;
		}
	}
	unlock(&g_lock);
	return r;
}

static _Atomic unsigned g_streams;

#define MAX_STREAMS 256
static __thread int t_dev = -1;
static _Atomic unsigned g_ctx, g_foreign;
static _Atomic int g_stream_dev[MAX_STREAMS];

static int ndev(void)
{
	const char *e = getenv("MOCK_CUDA_DEVICES");
	int n = e ? atoi(e) : 0;
	return n > 0 && n <= 32 ? n : 1;
}

/* The calling thread's device, its context made if it had none. */
static int ctx(void)
{
	if (t_dev < 0)
		t_dev = 0;
	atomic_fetch_or(&g_ctx, 1u << t_dev);
	return t_dev;
}

static void on_stream(cudaStream_t s)
{
	int d = ctx();
	uintptr_t v = (uintptr_t)s;
	if (v >= 0x100 && v < 0x100 + MAX_STREAMS && atomic_load(&g_stream_dev[v - 0x100]) != d)
		atomic_fetch_add(&g_foreign, 1);
}

/* MOCK_PLAIN, as a real runtime: only the default stream and streams it
 * made are streams. */
static int bad_stream(cudaStream_t s)
{
#ifdef MOCK_PLAIN
	uintptr_t v = (uintptr_t)s;
	return v != 0 && v != 1 && v != 2 && (v < 0x100 || v >= 0x100 + atomic_load(&g_streams));
#else
	(void)s;
	return 0;
#endif
}

/* The device's queue ---------------------------------------------------- */

enum { Q_COPY, Q_HOSTFN, Q_GATE };

struct qitem {
	int kind;
	void *dst;
	const void *src;
	size_t n;
	void (*fn)(void *);
	void *arg;
	struct qitem *next;
};

static atomic_flag g_qlock = ATOMIC_FLAG_INIT;
static struct qitem *g_head, *g_tail;
static _Atomic uint32_t g_queued, g_done; /* items queued and run (futex words) */
static _Atomic uint32_t g_gate;           /* 1: the gate holds the queue */
static _Atomic unsigned g_forced;         /* gates that opened by themselves */
static _Atomic int g_fault;               /* a sticky error: nothing runs any more */
static atomic_int g_started;

static void copy_now(struct qitem *q)
{
	int dd, sd;
	char *d = rw_of(q->dst, q->n, &dd), *r = rw_of(q->src, q->n, &sd);
	if ((dd && !d) || (sd && !r))
		abort(); /* checked when queued: freed while queued */
	memmove(dd ? d : q->dst, sd ? r : q->src, q->n);
	atomic_fetch_add(&g_copies, 1);
}

/* How long a gate holds before it opens by itself (MOCK_CUDA_GATE_S). */
static long gate_s(void)
{
	const char *e = getenv("MOCK_CUDA_GATE_S");
	long v = e ? atol(e) : 0;
	return v > 0 ? v : 20;
}

static void *device_thread(void *p)
{
	(void)p;
	for (;;) {
		uint32_t seen = atomic_load(&g_queued);
		lock(&g_qlock);
		struct qitem *q = g_head;
		if (q && !(g_head = q->next))
			g_tail = NULL;
		unlock(&g_qlock);
		if (!q) {
			fwait(&g_queued, seen, 1000);
			continue;
		}
		if (atomic_load(&g_fault)) {
			/* a context with a sticky error runs nothing */
		} else if (q->kind == Q_COPY) {
			copy_now(q);
		} else if (q->kind == Q_HOSTFN) {
			q->fn(q->arg);
		} else {
			struct timespec t0, t;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			while (atomic_load(&g_gate) && !atomic_load(&g_fault)) {
				fwait(&g_gate, 1, 100);
				clock_gettime(CLOCK_MONOTONIC, &t);
				if (atomic_load(&g_gate) && t.tv_sec - t0.tv_sec >= gate_s()) {
					atomic_store(&g_gate, 0);
					atomic_fetch_add(&g_forced, 1);
				}
			}
		}
		free(q);
		atomic_fetch_add(&g_done, 1);
		fwake(&g_done);
	}
	return NULL;
}

static cudaError_t enqueue(struct qitem *q)
{
	if (!atomic_exchange(&g_started, 1)) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, device_thread, NULL)) {
			atomic_store(&g_started, 0);
			free(q);
			return cudaErrorMemoryAllocation;
		}
	}
	q->next = NULL;
	lock(&g_qlock);
	if (g_tail)
		g_tail->next = q;
	else
		g_head = q;
	g_tail = q;
	unlock(&g_qlock);
	atomic_fetch_add(&g_queued, 1);
	fwake(&g_queued);
	return cudaSuccess;
}

/* Waits until everything queued so far has run. */
static void drain(void)
{
	uint32_t want = atomic_load(&g_queued), d;
	while ((int32_t)((d = atomic_load(&g_done)) - want) < 0)
		fwait(&g_done, d, 100);
}

#ifndef MOCK_PLAIN
/* For the test: close (1) or open (0) the gate; gates that opened by
 * themselves; items queued and not run yet. */
void mock_cuda_gate(int close);
void mock_cuda_gate(int close)
{
	if (close) {
		struct qitem *q = calloc(1, sizeof(*q));
		if (!q)
			abort();
		q->kind = Q_GATE;
		atomic_store(&g_gate, 1);
		enqueue(q);
	} else {
		atomic_store(&g_gate, 0);
		fwake(&g_gate);
	}
}

unsigned mock_cuda_gates_forced(void);
unsigned mock_cuda_gates_forced(void)
{
	return atomic_load(&g_forced);
}

unsigned mock_cuda_pending(void);
unsigned mock_cuda_pending(void)
{
	return atomic_load(&g_queued) - atomic_load(&g_done);
}

/* For the test: a sticky error (a kernel's illegal address): nothing
 * queued runs any more, host functions included; queries and waits say
 * cudaErrorIllegalAddress. */
void mock_cuda_fault(void);
void mock_cuda_fault(void)
{
	atomic_store(&g_fault, 1);
	fwake(&g_gate);
}
#endif

/* The calling thread's last error (cudaGetLastError), as the runtime
 * keeps it: a stream query's cudaErrorNotReady too (PyTorch clears that
 * one after its own queries, CUDAStream::query). Kept by the queries. */
static __thread cudaError_t t_last;

cudaError_t cudaGetLastError(void)
{
	cudaError_t e = t_last;
	t_last = cudaSuccess;
	return e;
}

cudaError_t cudaPeekAtLastError(void)
{
	return t_last;
}

cudaError_t cudaStreamQuery(cudaStream_t s)
{
	on_stream(s);
	cudaError_t e = cudaSuccess;
	if (bad_stream(s))
		e = cudaErrorInvalidResourceHandle;
	else if (atomic_load(&g_fault))
		e = cudaErrorIllegalAddress;
	else if (atomic_load(&g_queued) != atomic_load(&g_done))
		e = cudaErrorNotReady;
	if (e != cudaSuccess)
		t_last = e;
	return e;
}

/* For the test: every stream is being captured into a graph (1) or not
 * (mock_cuda_capture). */
static atomic_int g_capturing;
#ifndef MOCK_PLAIN
void mock_cuda_capture(int on);
void mock_cuda_capture(int on)
{
	atomic_store(&g_capturing, on);
}
#endif

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *st)
{
	on_stream(s);
	if (!st)
		return cudaErrorInvalidValue;
	*st = atomic_load(&g_capturing) ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
	return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void *arg)
{
	on_stream(s);
	if (bad_stream(s))
		return cudaErrorInvalidResourceHandle;
	if (!fn)
		return cudaErrorInvalidValue;
	struct qitem *q = calloc(1, sizeof(*q));
	if (!q)
		return cudaErrorMemoryAllocation;
	q->kind = Q_HOSTFN;
	q->fn = fn;
	q->arg = arg;
	return enqueue(q);
}

static int cupti_find(void);

cudaError_t cudaMalloc(void **p, size_t size)
{
	cupti_find(); /* the first call: the driver initialises */
	ctx();
	if (!p)
		return cudaErrorInvalidValue;
	size_t sz = (size + 4095) & ~(size_t)4095;
	if (!sz)
		sz = 4096;
	int fd = memfd_create("mock-device", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)sz) < 0)
		return cudaErrorMemoryAllocation;
	char *dev = mmap(NULL, sz, PROT_NONE, MAP_SHARED, fd, 0);
	char *rw = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (dev == MAP_FAILED || rw == MAP_FAILED)
		return cudaErrorMemoryAllocation;
	lock(&g_lock);
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (!g_dev[i].dev) {
			g_dev[i] = (struct dev_alloc){dev, rw, sz};
			unlock(&g_lock);
			*p = dev;
			return cudaSuccess;
		}
	unlock(&g_lock);
	return cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void *p)
{
	drain();
	lock(&g_lock);
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (p && g_dev[i].dev == p) {
			munmap(g_dev[i].dev, g_dev[i].size);
			munmap(g_dev[i].rw, g_dev[i].size);
			g_dev[i].dev = NULL;
		}
	unlock(&g_lock);
	return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr, const void *p)
{
	if (!attr)
		return cudaErrorInvalidValue;
	memset(attr, 0, sizeof(*attr));
	int is_dev;
	(void)rw_of(p, 0, &is_dev);
	attr->type = is_dev ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
	attr->device = 0;
	attr->devicePointer = is_dev ? (void *)p : NULL;
	attr->hostPointer = is_dev ? NULL : (void *)p;
	return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t s)
{
	on_stream(s);
	if (bad_stream(s))
		return cudaErrorInvalidResourceHandle;
	int dd, sd;
	char *d = rw_of(dst, n, &dd);
	char *r = rw_of(src, n, &sd);
	if ((dd && !d) || (sd && !r))
		return cudaErrorInvalidValue; /* runs past an allocation */
	/* The direction must be what the pointers are (Default: any). */
	if ((kind == cudaMemcpyDeviceToHost && (!sd || dd)) || (kind == cudaMemcpyHostToDevice && (sd || !dd)) ||
	    (kind == cudaMemcpyHostToHost && (sd || dd)))
		return cudaErrorInvalidMemcpyDirection;
	struct qitem *q = calloc(1, sizeof(*q));
	if (!q)
		return cudaErrorMemoryAllocation;
	q->kind = Q_COPY;
	q->dst = dst;
	q->src = src;
	q->n = n;
	return enqueue(q);
}

static uint32_t enter(int cbid, const char *fn, const void *params);
static cudaError_t leave(int cbid, const char *fn, const void *params, cudaError_t r, uint32_t corr);

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
	cudaMemcpy_v3020_params p = {dst, src, n, kind};
	uint32_t corr = enter(CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_v3020, "cudaMemcpy", &p);
	cudaError_t r = cudaMemcpyAsync(dst, src, n, kind, 0);
	if (r == cudaSuccess)
		drain();
	return leave(CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_v3020, "cudaMemcpy", &p, r, corr);
}

static _Atomic unsigned g_pinned, g_unpinned;

cudaError_t cudaMallocHost(void **p, size_t size)
{
	ctx();
	atomic_fetch_add(&g_pinned, 1);
	*p = malloc(size ? size : 1);
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void *p)
{
	ctx();
	atomic_fetch_add(&g_unpinned, 1);
	free(p);
	return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n)
{
	*n = ndev();
	return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d)
{
	if (!d)
		return cudaErrorInvalidValue;
	*d = t_dev < 0 ? 0 : t_dev;
	return cudaSuccess;
}

/* (Makes the device's context at once, as CUDA 12 does.) */
cudaError_t cudaSetDevice(int d)
{
	if (d < 0 || d >= ndev())
		return t_last = cudaErrorInvalidDevice;
	t_dev = d;
	ctx();
	return cudaSuccess;
}

const char *cudaGetErrorString(cudaError_t e)
{
	return e == cudaSuccess ? "no error" : "mock CUDA error";
}

#ifndef MOCK_PLAIN
/* For the test: how many copies the runtime made. */
unsigned long mock_cuda_copies(void);
unsigned long mock_cuda_copies(void)
{
	return atomic_load(&g_copies);
}

/* For the test: the pinned allocations and frees (cudaMallocHost,
 * cudaFreeHost). */
void mock_cuda_pinned(unsigned *allocs, unsigned *frees);
void mock_cuda_pinned(unsigned *allocs, unsigned *frees)
{
	*allocs = atomic_load(&g_pinned);
	*frees = atomic_load(&g_unpinned);
}

/* For the test: the devices with a context (a bit each), and the calls
 * made on a stream of another device than the caller's current one. */
void mock_cuda_devices(unsigned *ctxs, unsigned *foreign);
void mock_cuda_devices(unsigned *ctxs, unsigned *foreign)
{
	*ctxs = atomic_load(&g_ctx);
	*foreign = atomic_load(&g_foreign);
}
#endif

/* Streams, events and kernels, reported to the stand-in CUPTI
 * (mock_cupti.c) when it is loaded: API callbacks with CUPTI's ids and
 * parameter layouts, and a kernel record per launch. A kernel "runs"
 * at once; its duration is gridDim.x microseconds and its name is the
 * string func points to (the test passes names). */
static void (*g_api)(int, int, const char *, const void *, const void *, uint32_t);
static uint32_t (*g_corr)(void);
static void (*g_kernel)(void *, uint32_t, const char *, uint64_t);

/* The driver's cuInit: with CUDA_INJECTION64_PATH set it loads that
 * library and calls its InitializeInjection, once, at the first call. */
static void driver_init(void)
{
	static atomic_int done;
	if (atomic_exchange(&done, 1))
		return;
	const char *inj = getenv("CUDA_INJECTION64_PATH");
	void *h = inj && *inj ? dlopen(inj, RTLD_NOW) : NULL;
	int (*init)(void) = h ? (int (*)(void))dlsym(h, "InitializeInjection") : NULL;
	if (init)
		init();
}

static int cupti_find(void)
{
	driver_init();
	if (g_api)
		return 1;
	void *h = dlopen("libcupti.so.13", RTLD_NOW | RTLD_NOLOAD);
	if (!h)
		return 0;
	*(void **)&g_corr = dlsym(h, "mock_cupti_corr");
	*(void **)&g_kernel = dlsym(h, "mock_cupti_kernel");
	*(void **)&g_api = dlsym(h, "mock_cupti_api");
	return g_api && g_corr && g_kernel;
}

static uint32_t enter(int cbid, const char *fn, const void *params)
{
	if (!cupti_find())
		return 0;
	uint32_t corr = g_corr();
	g_api(cbid, 0, fn, params, NULL, corr);
	return corr;
}

static cudaError_t leave(int cbid, const char *fn, const void *params, cudaError_t r, uint32_t corr)
{
	if (corr)
		g_api(cbid, 1, fn, params, &r, corr);
	return r;
}

#define CALL(name, cbid, params, body)                                                        \
	do {                                                                                  \
		uint32_t corr_ = enter(CUPTI_RUNTIME_TRACE_CBID_##cbid, name, &params);        \
		cudaError_t r_ = (body);                                                      \
		return leave(CUPTI_RUNTIME_TRACE_CBID_##cbid, name, &params, r_, corr_);       \
	} while (0)

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
	unsigned k = atomic_fetch_add(&g_streams, 1);
	if (k < MAX_STREAMS)
		atomic_store(&g_stream_dev[k], ctx());
	*s = (cudaStream_t)(uintptr_t)(0x100 + k);
	return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	(void)s;
	return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	*e = malloc(16);
	return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	free(e);
	return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	cudaEventRecord_v3020_params p = {e, s};
	CALL("cudaEventRecord", cudaEventRecord_v3020, p, cudaSuccess);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
	cudaStreamWaitEvent_v3020_params p = {s, e, flags};
	CALL("cudaStreamWaitEvent", cudaStreamWaitEvent_v3020, p, cudaSuccess);
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
	cudaEventSynchronize_v3020_params p = {e};
	CALL("cudaEventSynchronize", cudaEventSynchronize_v3020, p, (drain(), cudaSuccess));
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
	cudaStreamSynchronize_v3020_params p = {s};
	CALL("cudaStreamSynchronize", cudaStreamSynchronize_v3020, p, (on_stream(s), drain(), cudaSuccess));
}

cudaError_t cudaDeviceSynchronize(void)
{
	int p = 0;
	CALL("cudaDeviceSynchronize", cudaDeviceSynchronize_v3020, p, (drain(), cudaSuccess));
}

/* A kernel launch reported as callback cbid (name), its record made by
 * the stand-in CUPTI. */
static cudaError_t launch(int cbid, const char *name, const void *func, dim3 grid, dim3 block, void **args,
			  size_t shmem, cudaStream_t s)
{
	cudaLaunchKernel_v7000_params p = {func, grid, block, args, shmem, s};
	uint32_t corr = enter(cbid, name, &p);
	if (corr)
		g_kernel(s, corr, (const char *)func, (uint64_t)grid.x * 1000);
	return leave(cbid, name, &p, cudaSuccess, corr);
}

cudaError_t cudaLaunchKernel(const void *func, dim3 grid, dim3 block, void **args, size_t shmem, cudaStream_t s)
{
	return launch(CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000, "cudaLaunchKernel", func, grid, block, args,
		      shmem, s);
}

/* CUDA 13's launch of nvcc's <<<>>> (crt/device_functions.h), with its
 * own callback id; the same parameters. */
cudaError_t __cudaLaunchKernel(const void *kernel, dim3 grid, dim3 block, void **args, size_t shmem, cudaStream_t s);
cudaError_t __cudaLaunchKernel(const void *kernel, dim3 grid, dim3 block, void **args, size_t shmem, cudaStream_t s)
{
	return launch(CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_v13000, "__cudaLaunchKernel", kernel, grid, block,
		      args, shmem, s);
}
