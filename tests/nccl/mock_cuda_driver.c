/* A stand-in for the CUDA driver, libcuda.so.1, as a program whose CUDA
 * runtime is linked statically into it (nvcc's default) has it loaded:
 * the shim sees no libcudart.so, and asks the driver about its buffers
 * (docs/nccl.md, "Device buffers"). Its "device memory" is mapped without
 * access, so that a host read of it faults, as a read of real device
 * memory does. test_nccl.sh copies it to libcuda.so.1. */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

static uintptr_t g_base;
static size_t g_len;

void *mock_cu_alloc(size_t n);
void *mock_cu_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	g_base = (uintptr_t)p;
	g_len = n;
	return p;
}

/* CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute,
 * CUdeviceptr ptr): CU_POINTER_ATTRIBUTE_MEMORY_TYPE (2) of its own memory
 * is CU_MEMORYTYPE_DEVICE (2), not managed (CU_POINTER_ATTRIBUTE_IS_MANAGED,
 * 8: 0); any other pointer is CUDA_ERROR_INVALID_VALUE (1), as host memory
 * the driver does not know. */
int cuPointerGetAttribute(void *data, int attribute, unsigned long long ptr);
int cuPointerGetAttribute(void *data, int attribute, unsigned long long ptr)
{
	if (!data || (attribute != 2 && attribute != 8))
		return 1;
	if (ptr < g_base || ptr >= g_base + g_len)
		return 1;
	*(unsigned int *)data = attribute == 2 ? 2 : 0; /* (8, IS_MANAGED: not managed) */
	return 0;
}
