/* Element-wise reductions for the simulated NCCL, for every ncclDataType_t
 * and op, with NCCL's results: the inputs are combined in rank order
 * 0..n-1 (NCCL's own order depends on the algorithm; ours is fixed, so a
 * run is reproducible); half, bfloat16 and fp8 are computed in float and
 * rounded to the type after every step (float has more than twice their
 * precision plus two bits, so this equals arithmetic in the type); fp8
 * conversions saturate to the largest finite value (NCCL's __NV_SATFINITE).
 * ncclAvg: floating types multiply every input by 1/n rounded to the type,
 * then sum; integers sum, then divide (truncating). PreMulSum multiplies
 * every input by the scalar (in the type), then sums. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nccl_impl.h"

/* half <-> float ----------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, f;
	if (exp == 0) {
		if (!man) {
			f = sign;
		} else { /* subnormal */
			exp = 127 - 15 + 1;
			while (!(man & 0x400)) {
				man <<= 1;
				exp--;
			}
			man &= 0x3ff;
			f = sign | exp << 23 | man << 13;
		}
	} else if (exp == 0x1f) {
		f = sign | 0x7f800000u | man << 13;
	} else {
		f = sign | (exp + 127 - 15) << 23 | man << 13;
	}
	float r;
	memcpy(&r, &f, 4);
	return r;
}

/* Round to nearest even into a format with ebits exponent bits and mbits
 * mantissa bits (bias 2^(ebits-1)-1); inf_ok: the format has infinities
 * (else NaN is all ones and overflow saturates); sat: saturate finite. */
static uint32_t float_to_small(float x, int ebits, int mbits, int has_inf, int sat, uint32_t maxfinite)
{
	uint32_t f;
	memcpy(&f, &x, 4);
	uint32_t sign = f >> 31 << (ebits + mbits);
	if (isnan(x))
		return has_inf ? sign | ((1u << ebits) - 1) << mbits | 1u << (mbits - 1) : sign | ((1u << (ebits + mbits)) - 1);
	double a = fabs((double)x);
	int bias = (1 << (ebits - 1)) - 1;
	if (isinf(x)) {
		if (has_inf && !sat)
			return sign | ((1u << ebits) - 1) << mbits;
		return sign | maxfinite;
	}
	/* The quantum at a's binade; subnormals share the smallest one. */
	int e = a > 0 ? ilogb(a) : -bias + 1;
	if (e < 1 - bias)
		e = 1 - bias;
	double q = ldexp(1.0, e - mbits);
	double m = nearbyint(a / q); /* round half to even (default mode) */
	double v = m * q;
	/* Overflow. */
	double maxv;
	{
		uint32_t me = maxfinite >> mbits, mm = maxfinite & ((1u << mbits) - 1);
		maxv = ldexp(1.0 + mm / (double)(1u << mbits), (int)me - bias);
	}
	if (v > maxv) {
		if (has_inf && !sat)
			return sign | ((1u << ebits) - 1) << mbits;
		return sign | maxfinite;
	}
	if (v == 0)
		return sign;
	int ve = ilogb(v);
	if (ve < 1 - bias) /* subnormal */
		return sign | (uint32_t)(v / ldexp(1.0, 1 - bias - mbits));
	uint32_t man = (uint32_t)(v / ldexp(1.0, ve - mbits)) - (1u << mbits);
	return sign | (uint32_t)(ve + bias) << mbits | man;
}

static uint16_t float_to_half(float x)
{
	return (uint16_t)float_to_small(x, 5, 10, 1, 0, 0x7bff);
}

static float bf16_to_float(uint16_t b)
{
	uint32_t f = (uint32_t)b << 16;
	float r;
	memcpy(&r, &f, 4);
	return r;
}

static uint16_t float_to_bf16(float x)
{
	uint32_t f;
	memcpy(&f, &x, 4);
	if (isnan(x))
		return (uint16_t)(f >> 16 | 0x40);
	f += 0x7fff + (f >> 16 & 1);
	return (uint16_t)(f >> 16);
}

/* fp8 e4m3 (bias 7, no infinities, NaN 0x7f, max 448) and e5m2 (bias 15,
 * IEEE-like, max 57344). */
static float fp8_to_float(uint8_t v, int e4m3)
{
	int ebits = e4m3 ? 4 : 5, mbits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
	int sign = v >> 7, exp = (v >> mbits) & ((1 << ebits) - 1), man = v & ((1 << mbits) - 1);
	float r;
	if (e4m3 && exp == 15 && man == 7)
		r = NAN;
	else if (!e4m3 && exp == 31)
		r = man ? NAN : INFINITY;
	else if (exp == 0)
		r = (float)ldexp(man, 1 - bias - mbits);
	else
		r = (float)ldexp(1.0 + man / (double)(1 << mbits), exp - bias);
	return sign ? -r : r;
}

static uint8_t float_to_fp8(float x, int e4m3)
{
	return e4m3 ? (uint8_t)float_to_small(x, 4, 3, 0, 1, 0x7e) : (uint8_t)float_to_small(x, 5, 2, 1, 1, 0x7b);
}

size_t uni_nccl_type_size(int t)
{
	switch (t) {
	case ncclInt8:
	case ncclUint8:
	case ncclFloat8e4m3:
	case ncclFloat8e5m2:
		return 1;
	case ncclFloat16:
	case ncclBfloat16:
		return 2;
	case ncclInt32:
	case ncclUint32:
	case ncclFloat32:
		return 4;
	case ncclInt64:
	case ncclUint64:
	case ncclFloat64:
		return 8;
	}
	return 0;
}

/* Small floats through float. */
static float sf_load(int t, const void *p, size_t i)
{
	switch (t) {
	case ncclFloat16:
		return half_to_float(((const uint16_t *)p)[i]);
	case ncclBfloat16:
		return bf16_to_float(((const uint16_t *)p)[i]);
	case ncclFloat8e4m3:
		return fp8_to_float(((const uint8_t *)p)[i], 1);
	default:
		return fp8_to_float(((const uint8_t *)p)[i], 0);
	}
}

static void sf_store(int t, void *p, size_t i, float v)
{
	switch (t) {
	case ncclFloat16:
		((uint16_t *)p)[i] = float_to_half(v);
		break;
	case ncclBfloat16:
		((uint16_t *)p)[i] = float_to_bf16(v);
		break;
	case ncclFloat8e4m3:
		((uint8_t *)p)[i] = float_to_fp8(v, 1);
		break;
	default:
		((uint8_t *)p)[i] = float_to_fp8(v, 0);
	}
}

static float sf_round(int t, float v)
{
	uint8_t b[2];
	sf_store(t, b, 0, v);
	return sf_load(t, b, 0);
}

#define COMBINE(op, a, b) \
	((op) == ncclProd ? (a) * (b) : (op) == ncclMax ? ((a) > (b) ? (a) : (b)) : (op) == ncclMin ? ((a) < (b) ? (a) : (b)) : (a) + (b))

/* NaN handling of max/min follows fmaxf/fminf for floats (NCCL uses
 * fmax/fmin on floating types). */
#define FCOMBINE(op, a, b) \
	((op) == ncclProd ? (a) * (b) : (op) == ncclMax ? fmax((a), (b)) : (op) == ncclMin ? fmin((a), (b)) : (a) + (b))

/* Integer types. */
#define INT_REDUCE(T)                                                                        \
	do {                                                                                 \
		T *o = out;                                                                  \
		T scale = 0;                                                                 \
		if (pre)                                                                     \
			memcpy(&scale, scalar, sizeof(T));                                   \
		for (size_t i = 0; i < count; i++) {                                         \
			T acc = ((const T *)in[0])[i];                                       \
			if (pre)                                                             \
				acc = (T)(acc * scale);                                      \
			for (int r = 1; r < n; r++) {                                        \
				T v = ((const T *)in[r])[i];                                 \
				if (pre)                                                     \
					v = (T)(v * scale);                                  \
				acc = (T)COMBINE(base, acc, v);                              \
			}                                                                    \
			if (op == ncclAvg)                                                   \
				acc = (T)(acc / (T)n);                                       \
			o[i] = acc;                                                          \
		}                                                                            \
	} while (0)

#define FLOAT_REDUCE(T)                                                                      \
	do {                                                                                 \
		T *o = out;                                                                  \
		T scale = 1;                                                                 \
		if (op == ncclAvg)                                                           \
			scale = (T)1 / (T)n;                                                 \
		else if (pre)                                                                \
			memcpy(&scale, scalar, sizeof(T));                                   \
		int mul = op == ncclAvg || pre;                                              \
		for (size_t i = 0; i < count; i++) {                                         \
			T acc = ((const T *)in[0])[i];                                       \
			if (mul)                                                             \
				acc = acc * scale;                                           \
			for (int r = 1; r < n; r++) {                                        \
				T v = ((const T *)in[r])[i];                                 \
				if (mul)                                                     \
					v = v * scale;                                       \
				acc = (T)FCOMBINE(base, acc, v);                             \
			}                                                                    \
			o[i] = acc;                                                          \
		}                                                                            \
	} while (0)

void uni_nccl_reduce(void *out, const void *const *in, int n, size_t count, int type, int op, int pre,
		     const void *scalar)
{
	/* Avg and PreMulSum are sums of scaled inputs (integers: Avg divides). */
	int base = op == ncclAvg || pre ? ncclSum : op;
	switch (type) {
	case ncclInt8:
		INT_REDUCE(int8_t);
		break;
	case ncclUint8:
		INT_REDUCE(uint8_t);
		break;
	case ncclInt32:
		INT_REDUCE(int32_t);
		break;
	case ncclUint32:
		INT_REDUCE(uint32_t);
		break;
	case ncclInt64:
		INT_REDUCE(int64_t);
		break;
	case ncclUint64:
		INT_REDUCE(uint64_t);
		break;
	case ncclFloat32:
		FLOAT_REDUCE(float);
		break;
	case ncclFloat64:
		FLOAT_REDUCE(double);
		break;
	default: { /* half, bfloat16, fp8 */
		float scale = 1;
		if (op == ncclAvg)
			scale = sf_round(type, 1.0f / (float)n);
		else if (pre)
			scale = sf_load(type, scalar, 0);
		int mul = op == ncclAvg || pre;
		for (size_t i = 0; i < count; i++) {
			float acc = sf_load(type, in[0], i);
			if (mul)
				acc = sf_round(type, acc * scale);
			for (int r = 1; r < n; r++) {
				float v = sf_load(type, in[r], i);
				if (mul)
					v = sf_round(type, v * scale);
				acc = sf_round(type, (float)FCOMBINE(base, acc, v));
			}
			sf_store(type, out, i, acc);
		}
	}
	}
}

float uni_nccl_half_to_float(uint16_t h)
{
	return half_to_float(h);
}

uint16_t uni_nccl_float_to_half(float x)
{
	return float_to_half(x);
}
