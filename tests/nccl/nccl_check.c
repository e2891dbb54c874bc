/* nccl-tests-style checks of the simulated NCCL, one process per rank.
 *
 * Built against nccl.h and linked to the real libnccl.so; run under the
 * shim (unirun), whose nccl* symbols come first, with host buffers and
 * stream NULL. Without the shim, InitRank fails (no GPU), so a passing run
 * also shows the interposition works. Rank 0 writes the unique id to
 * $NCCL_CHECK_ID (a file); the others wait for it.
 *
 *   nccl_check correctness   every collective x type x op, in and out of
 *                            place, uneven counts, chunked sizes, send/recv
 *                            rings and self send/recv in groups, error codes
 *   nccl_check timing SIZE   one op of each kind on SIZE bytes, printing the
 *                            virtual time each took on this rank (JSON)
 *   nccl_check p2pbench N SIZE  rank 0 sends N messages of SIZE to rank 1, a
 *                            call each: the time each side's calls took,
 *                            their first eight, and (done) until an empty
 *                            Recv after them on rank 0, of rank 1's empty
 *                            Send after its receives (JSON)
 *   nccl_check sendsync      rank 0 sends 2 MiB, then tells rank 1 through a
 *                            file, after which rank 1 receives
 *   nccl_check p2pmismatch   rank 0 sends 2 MiB to rank 1, which expects 4 MiB,
 *                            then 128 kB to rank 2 (3 ranks)
 *   nccl_check p2pzero       empty messages against counts that disagree;
 *                            the ranks that found it abort (3 ranks)
 *   nccl_check sendlost      rank 0 sends 4 MiB that rank 1 never receives
 *   nccl_check p2pgroups SIZE  rank 0 sends 2 messages a call each that rank 1
 *                            receives in one group, then 4 in one group that
 *                            rank 1 receives a call each
 *   nccl_check mismatch      rank 0 and the others disagree on a count
 *   nccl_check rooted N      N rounds of a Broadcast from rank 1, a Reduce
 *                            to the last rank, a Gather to rank 0 and a
 *                            Scatter from rank 0 (4 kB a rank; odd rounds
 *                            in place, one of four of none), checked
 *   nccl_check rootedmismatch  rank 2 of 3 disagrees on a Broadcast's count
 *   nccl_check allreduce SIZE...  an AllReduce of each SIZE, the virtual
 *                            time each took on this rank (JSON)
 *   nccl_check group2 SIZE   two AllReduces of SIZE in one group (JSON)
 *   nccl_check threads N SIZE  N ranks in this process, a thread each
 *                            (InitRank), each timing an AllReduce of SIZE
 *   nccl_check initall N [group|groupnb]   N ranks in this process (CommInitAll,
 *                            or InitRank calls in a group), driven
 *                            by one thread through groups
 *   nccl_check driveronly LIB  LIB a stand-in CUDA driver without a runtime:
 *                            a device buffer is ncclInvalidUsage
 *   nccl_check groupinit     InitRank in a group: alone with an AllReduce,
 *                            then a group that fails on rank 0
 *   nccl_check shrink        CommShrink without rank 1, then without the
 *                            new rank 0 (the excluded never call it)
 *   nccl_check device LIB    every collective and send/recv on device
 *                            buffers of LIB, a CUDA runtime (the mock)
 *   nccl_check stream LIB    device work queued on a held stream: the calls
 *                            return at once, results once it runs
 *   nccl_check cupti LIB SIZE  the device timeline (the mocks of the CUDA
 *                            runtime and CUPTI): kernels then an AllReduce of
 *                            SIZE bytes on one stream, a kernel on another
 *                            stream beside it, and one ordered before it by
 *                            an event; the virtual times (JSON)
 *
 * Prints "rank R: N checks passed" or the first failures; exit 1 on any. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nccl.h>

static int rank, nranks, failures, checks;
static void newer_api(ncclComm_t comm);

#define CHECK(cond, ...)                                                 \
	do {                                                             \
		checks++;                                                \
		if (!(cond)) {                                           \
			if (failures++ < 20) {                           \
				fprintf(stderr, "rank %d: FAIL: ", rank); \
				fprintf(stderr, __VA_ARGS__);             \
				fputc('\n', stderr);                      \
			}                                                \
		}                                                        \
	} while (0)

#define NCCL(call)                                                                                          \
	do {                                                                                                \
		ncclResult_t r_ = (call);                                                                   \
		if (r_ != ncclSuccess) {                                                                    \
			fprintf(stderr, "rank %d: %s failed: %d %s (%s)\n", rank, #call, r_,               \
				ncclGetErrorString(r_), ncclGetLastError(NULL));                            \
			exit(1);                                                                            \
		}                                                                                           \
	} while (0)

/* Rank `leader` makes the id and puts it in path; the others wait for it
 * (PyTorch passes it through its Store). */
/* NCCL_CHECK_ID=tcp: the leader hands the id to the other parts - 1 ranks
 * over TCP at MASTER_ADDR:MASTER_PORT + 100 + a number from the path's
 * suffix (as torch's store would: in deterministic mode the turn follows
 * it; a file is outside the turn, and who found it first was the host's). */
static ncclUniqueId exchange_id_tcp(const char *path, int leader, int parts)
{
	unsigned k = 0;
	for (const char *q = path; *q; q++)
		k = k * 31u + (unsigned char)*q;
	k %= 97u;
	ncclUniqueId id;
	const char *addr = getenv("MASTER_ADDR"), *port = getenv("MASTER_PORT");
	if (!addr || !port) {
		fprintf(stderr, "NCCL_CHECK_ID=tcp needs MASTER_ADDR and MASTER_PORT\n");
		exit(2);
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(atoi(port) + 100 + (int)k))};
	inet_pton(AF_INET, strcmp(addr, "localhost") ? addr : "127.0.0.1", &sa.sin_addr);
	if (rank == leader) {
		NCCL(ncclGetUniqueId(&id));
		if (getenv("NCCL_CHECK_DEBUG"))
			fprintf(stderr, "rank %d: %s port +%u: serves %02x%02x%02x%02x\n", rank, path, 100 + k,
				(unsigned char)id.internal[8], (unsigned char)id.internal[9],
				(unsigned char)id.internal[10], (unsigned char)id.internal[11]);
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 64)) {
			perror("listening for the id");
			exit(1);
		}
		for (int i = 1; i < parts; i++) {
			int c = accept(l, NULL, NULL);
			if (c < 0 || write(c, &id, sizeof(id)) != (ssize_t)sizeof(id)) {
				perror("handing out the id");
				exit(1);
			}
			close(c);
		}
		close(l);
		return id;
	}
	for (int i = 0;; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			size_t got = 0;
			while (got < sizeof(id)) {
				ssize_t n = read(c, (char *)&id + got, sizeof(id) - got);
				if (n <= 0)
					break;
				got += (size_t)n;
			}
			close(c);
			if (getenv("NCCL_CHECK_DEBUG"))
				fprintf(stderr, "rank %d: %s port +%u: got %zu bytes, %02x%02x%02x%02x\n", rank, path, 100 + k, got,
					(unsigned char)id.internal[8], (unsigned char)id.internal[9],
					(unsigned char)id.internal[10], (unsigned char)id.internal[11]);
			if (got == sizeof(id))
				return id;
		} else {
			close(c);
		}
		if (i > 6000) {
			fprintf(stderr, "rank %d: no id from %s:%s\n", rank, addr, port);
			exit(1);
		}
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
}

/* The id from the leader to parts ranks (0 .. parts - 1, or all), through
 * a file at path or (path tcp, tcp.SUFFIX) TCP. */
static ncclUniqueId exchange_id_n(const char *path, int leader, int parts)
{
	ncclUniqueId id;
	if (!strncmp(path, "tcp", 3) && (!path[3] || path[3] == '.'))
		return exchange_id_tcp(path, leader, parts);
	if (rank == leader) {
		NCCL(ncclGetUniqueId(&id));
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		FILE *f = fopen(tmp, "wb");
		if (!f || fwrite(&id, sizeof(id), 1, f) != 1 || fclose(f) || rename(tmp, path)) {
			perror("writing the id");
			exit(1);
		}
	} else {
		for (int i = 0;; i++) {
			FILE *f = fopen(path, "rb");
			if (f) {
				size_t got = fread(&id, sizeof(id), 1, f);
				fclose(f);
				if (got == 1)
					break;
			}
			if (i > 6000) {
				fprintf(stderr, "rank %d: no id in %s\n", rank, path);
				exit(1);
			}
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
		}
	}
	return id;
}

static ncclUniqueId exchange_id(const char *path, int leader)
{
	return exchange_id_n(path, leader, nranks);
}

static const char *id_path(void)
{
	const char *path = getenv("NCCL_CHECK_ID");
	if (!path) {
		fprintf(stderr, "set NCCL_CHECK_ID to a file path\n");
		exit(2);
	}
	return path;
}

static ncclComm_t init_comm(void)
{
	ncclUniqueId id = exchange_id(id_path(), 0);
	ncclComm_t comm;
	NCCL(ncclCommInitRank(&comm, nranks, id, rank));
	return comm;
}

/* Values: small integers, exact in every type (fp8 included) for sums of
 * up to 8 ranks; products use 1 and 2 only. */
static double value(int r, size_t i, int op)
{
	if (op == ncclProd)
		return (double)(1 + ((r + i) % 3 == 0));
	return (double)((r * 3 + i * 7) % 5 + 1);
}

static const size_t tsize[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
static const char *const tname[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64", "half", "float",
				    "double", "bfloat16", "fp8e4m3", "fp8e5m2"};

/* Encodings of small exact values (the shim's own conversions are not used). */
static uint16_t to_half(double v)
{
	/* integers up to 2048 */
	if (v == 0)
		return 0;
	int sign = v < 0;
	double a = fabs(v);
	int e = (int)floor(log2(a));
	uint32_t man = (uint32_t)llround((a / ldexp(1, e) - 1) * 1024);
	return (uint16_t)(sign << 15 | (uint32_t)(e + 15) << 10 | man);
}

static double from_half(uint16_t h)
{
	int e = (h >> 10) & 31, m = h & 1023;
	double v = e ? ldexp(1 + m / 1024.0, e - 15) : ldexp(m / 1024.0, -14);
	return h >> 15 ? -v : v;
}

static uint16_t to_bf16(double v)
{
	float f = (float)v;
	uint32_t u;
	memcpy(&u, &f, 4);
	return (uint16_t)(u >> 16); /* exact for these values */
}

static double from_bf16(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint8_t to_fp8(double v, int e4m3)
{
	if (v == 0)
		return 0;
	int mb = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
	int e = (int)floor(log2(fabs(v)));
	uint32_t man = (uint32_t)llround((fabs(v) / ldexp(1, e) - 1) * (1 << mb));
	if (man == (1u << mb)) {
		man = 0;
		e++;
	}
	return (uint8_t)((v < 0) << 7 | (uint32_t)(e + bias) << mb | man);
}

static double from_fp8(uint8_t b, int e4m3)
{
	int mb = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15, eb = e4m3 ? 4 : 5;
	int e = (b >> mb) & ((1 << eb) - 1), m = b & ((1 << mb) - 1);
	double v = e ? ldexp(1 + m / (double)(1 << mb), e - bias) : ldexp(m / (double)(1 << mb), 1 - bias);
	return b >> 7 ? -v : v;
}

static void put(void *p, int t, size_t i, double v)
{
	switch (t) {
	case ncclInt8: ((int8_t *)p)[i] = (int8_t)v; break;
	case ncclUint8: ((uint8_t *)p)[i] = (uint8_t)v; break;
	case ncclInt32: ((int32_t *)p)[i] = (int32_t)v; break;
	case ncclUint32: ((uint32_t *)p)[i] = (uint32_t)v; break;
	case ncclInt64: ((int64_t *)p)[i] = (int64_t)v; break;
	case ncclUint64: ((uint64_t *)p)[i] = (uint64_t)v; break;
	case ncclFloat16: ((uint16_t *)p)[i] = to_half(v); break;
	case ncclFloat32: ((float *)p)[i] = (float)v; break;
	case ncclFloat64: ((double *)p)[i] = v; break;
	case ncclBfloat16: ((uint16_t *)p)[i] = to_bf16(v); break;
	case ncclFloat8e4m3: ((uint8_t *)p)[i] = to_fp8(v, 1); break;
	case ncclFloat8e5m2: ((uint8_t *)p)[i] = to_fp8(v, 0); break;
	}
}

static double get(const void *p, int t, size_t i)
{
	switch (t) {
	case ncclInt8: return ((const int8_t *)p)[i];
	case ncclUint8: return ((const uint8_t *)p)[i];
	case ncclInt32: return ((const int32_t *)p)[i];
	case ncclUint32: return ((const uint32_t *)p)[i];
	case ncclInt64: return (double)((const int64_t *)p)[i];
	case ncclUint64: return (double)((const uint64_t *)p)[i];
	case ncclFloat16: return from_half(((const uint16_t *)p)[i]);
	case ncclFloat32: return ((const float *)p)[i];
	case ncclFloat64: return ((const double *)p)[i];
	case ncclBfloat16: return from_bf16(((const uint16_t *)p)[i]);
	case ncclFloat8e4m3: return from_fp8(((const uint8_t *)p)[i], 1);
	default: return from_fp8(((const uint8_t *)p)[i], 0);
	}
}

static int is_int(int t)
{
	return t <= ncclUint64;
}

/* The expected reduction of element i over all ranks' inputs (value(r, base + i)). */
static double expect_red(int op, int t, size_t i, double scalar)
{
	double acc = 0;
	for (int r = 0; r < nranks; r++) {
		double v = value(r, i, op);
		if (r == 0)
			acc = v;
		else if (op == ncclProd)
			acc *= v;
		else if (op == ncclMax)
			acc = fmax(acc, v);
		else if (op == ncclMin)
			acc = fmin(acc, v);
		else
			acc += v;
	}
	if (op == ncclAvg)
		acc = is_int(t) ? trunc(acc / nranks) : acc / nranks;
	if (op >= ncclNumOps)
		acc *= scalar;
	return acc;
}

static int close_enough(double got, double want, int t)
{
	if (is_int(t))
		return got == want;
	if (t == ncclFloat32 || t == ncclFloat64) /* Avg: 1/n rounded to the type */
		return fabs(got - want) <= (t == ncclFloat32 ? 1e-6 : 1e-12) * fabs(want) + 1e-12;
	/* half, bf16, fp8: 1/n is rounded to the type before multiplying */
	double rel = t == ncclFloat16 ? 2e-3 : t == ncclBfloat16 ? 1.6e-2 : t == ncclFloat8e4m3 ? 0.13 : 0.26;
	return fabs(got - want) <= rel * fabs(want) + 1e-9;
}

static void correctness(ncclComm_t comm)
{
	/* Counts: tiny, odd, and beyond one 4 MiB slot (chunked). */
	const size_t counts[] = {1, 1001, 600000};
	for (int t = 0; t < ncclNumTypes; t++) {
		size_t es = tsize[t];
		for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
			size_t n = counts[ci];
			if (n * es * nranks > (64u << 20))
				continue;
			uint8_t *sb = malloc(n * es * nranks), *rb = malloc(n * es * nranks);
			/* Reductions, including Avg and PreMulSum, in and out of place. */
			for (int op = 0; op <= ncclNumOps; op++) {
				if ((t == ncclFloat8e4m3 || t == ncclFloat8e5m2) && op == ncclProd && n > 1001)
					continue;
				ncclRedOp_t rop = op;
				double scalar = 2;
				uint8_t sbytes[8];
				if (op == ncclNumOps) {
					put(sbytes, t, 0, scalar);
					NCCL(ncclRedOpCreatePreMulSum(&rop, sbytes, t, ncclScalarHostImmediate, comm));
				}
				for (int inplace = 0; inplace < 2; inplace++) {
					for (size_t i = 0; i < n; i++)
						put(sb, t, i, value(rank, i, op == ncclNumOps ? ncclSum : op));
					void *out = inplace ? sb : rb;
					NCCL(ncclAllReduce(sb, out, n, t, rop, comm, NULL));
					int bad = 0;
					for (size_t i = 0; i < n && !bad; i++) {
						double w = expect_red(op == ncclNumOps ? 99 : op, t, i, scalar);
						if (op == ncclNumOps) {
							w = 0;
							for (int r = 0; r < nranks; r++)
								w += value(r, i, ncclSum) * scalar;
						}
						if (!close_enough(get(out, t, i), w, t)) {
							bad = 1;
							CHECK(0, "AllReduce %s op %d n %zu %s: [%zu] = %g, want %g", tname[t], op, n,
							      inplace ? "in place" : "out of place", i, get(out, t, i), w);
						}
					}
					CHECK(!bad, "AllReduce");
				}
				/* ReduceScatter: rank r gets block r of the reduction. */
				for (size_t i = 0; i < n * nranks; i++)
					put(sb, t, i, value(rank, i, op == ncclNumOps ? ncclSum : op));
				NCCL(ncclReduceScatter(sb, rb, n, t, rop, comm, NULL));
				int bad = 0;
				for (size_t i = 0; i < n && !bad; i++) {
					size_t gi = (size_t)rank * n + i;
					double w = 0;
					if (op == ncclNumOps) {
						for (int r = 0; r < nranks; r++)
							w += value(r, gi, ncclSum) * scalar;
					} else {
						w = expect_red(op, t, gi, 1);
					}
					bad = !close_enough(get(rb, t, i), w, t);
					if (bad)
						CHECK(0, "ReduceScatter %s op %d n %zu: [%zu] = %g, want %g", tname[t], op, n, i,
						      get(rb, t, i), w);
				}
				CHECK(!bad, "ReduceScatter");
				/* Reduce to the last rank. */
				int root = nranks - 1;
				for (size_t i = 0; i < n; i++)
					put(sb, t, i, value(rank, i, op == ncclNumOps ? ncclSum : op));
				NCCL(ncclReduce(sb, rank == root ? rb : NULL, n, t, rop, root, comm, NULL));
				if (rank == root) {
					bad = 0;
					for (size_t i = 0; i < n && !bad; i++) {
						double w = 0;
						if (op == ncclNumOps)
							for (int r = 0; r < nranks; r++)
								w += value(r, i, ncclSum) * scalar;
						else
							w = expect_red(op, t, i, 1);
						bad = !close_enough(get(rb, t, i), w, t);
						if (bad)
							CHECK(0, "Reduce %s op %d n %zu: [%zu] = %g, want %g", tname[t], op, n, i,
							      get(rb, t, i), w);
					}
					CHECK(!bad, "Reduce");
				}
				if (op == ncclNumOps)
					NCCL(ncclRedOpDestroy(rop, comm));
			}
			/* Data movement: exact for every type. */
			for (size_t i = 0; i < n; i++)
				put(sb, t, i, value(rank, i, ncclSum));
			/* AllGather out of place and in place (send = recv + rank * n). */
			NCCL(ncclAllGather(sb, rb, n, t, comm, NULL));
			int bad = 0;
			for (int r = 0; r < nranks && !bad; r++)
				for (size_t i = 0; i < n && !bad; i++)
					bad = get(rb, t, (size_t)r * n + i) != value(r, i, ncclSum);
			CHECK(!bad, "AllGather %s n %zu", tname[t], n);
			memset(rb, 0, n * es * nranks);
			memcpy(rb + (size_t)rank * n * es, sb, n * es);
			NCCL(ncclAllGather(rb + (size_t)rank * n * es, rb, n, t, comm, NULL));
			bad = 0;
			for (int r = 0; r < nranks && !bad; r++)
				for (size_t i = 0; i < n && !bad; i++)
					bad = get(rb, t, (size_t)r * n + i) != value(r, i, ncclSum);
			CHECK(!bad, "AllGather in place %s n %zu", tname[t], n);
			/* Broadcast (out of place) and Bcast (in place) from rank 1 % n. */
			int root = 1 % nranks;
			NCCL(ncclBroadcast(sb, rb, n, t, root, comm, NULL));
			bad = 0;
			for (size_t i = 0; i < n && !bad; i++)
				bad = get(rb, t, i) != value(root, i, ncclSum);
			CHECK(!bad, "Broadcast %s n %zu", tname[t], n);
			memcpy(rb, sb, n * es);
			NCCL(ncclBcast(rb, n, t, root, comm, NULL));
			bad = 0;
			for (size_t i = 0; i < n && !bad; i++)
				bad = get(rb, t, i) != value(root, i, ncclSum);
			CHECK(!bad, "Bcast %s n %zu", tname[t], n);
			/* AlltoAll: block j of rank r's send is value(r*nranks + j, i). */
			for (int j = 0; j < nranks; j++)
				for (size_t i = 0; i < n; i++)
					put(sb, t, (size_t)j * n + i, value(rank * nranks + j, i, ncclSum));
			NCCL(ncclAlltoAll(sb, rb, n, t, comm, NULL));
			bad = 0;
			for (int r = 0; r < nranks && !bad; r++)
				for (size_t i = 0; i < n && !bad; i++)
					bad = get(rb, t, (size_t)r * n + i) != value(r * nranks + rank, i, ncclSum);
			CHECK(!bad, "AlltoAll %s n %zu", tname[t], n);
			/* Gather to rank 0, Scatter from rank 0. */
			for (size_t i = 0; i < n; i++)
				put(sb, t, i, value(rank, i, ncclSum));
			NCCL(ncclGather(sb, rank == 0 ? rb : NULL, n, t, 0, comm, NULL));
			if (rank == 0) {
				bad = 0;
				for (int r = 0; r < nranks && !bad; r++)
					for (size_t i = 0; i < n && !bad; i++)
						bad = get(rb, t, (size_t)r * n + i) != value(r, i, ncclSum);
				CHECK(!bad, "Gather %s n %zu", tname[t], n);
			}
			if (rank == 0)
				for (int j = 0; j < nranks; j++)
					for (size_t i = 0; i < n; i++)
						put(sb, t, (size_t)j * n + i, value(100 + j, i, ncclSum));
			NCCL(ncclScatter(rank == 0 ? sb : NULL, rb, n, t, 0, comm, NULL));
			bad = 0;
			for (size_t i = 0; i < n && !bad; i++)
				bad = get(rb, t, i) != value(100 + rank, i, ncclSum);
			CHECK(!bad, "Scatter %s n %zu", tname[t], n);
			/* A ring of send/recv in a group (both directions), and a
			 * self send/recv: never deadlocks, data intact. */
			int right = (rank + 1) % nranks, left = (rank + nranks - 1) % nranks;
			for (size_t i = 0; i < n; i++)
				put(sb, t, i, value(rank, i, ncclSum));
			NCCL(ncclGroupStart());
			NCCL(ncclSend(sb, n, t, right, comm, NULL));
			NCCL(ncclRecv(rb, n, t, left, comm, NULL));
			NCCL(ncclGroupEnd());
			bad = 0;
			for (size_t i = 0; i < n && !bad; i++)
				bad = get(rb, t, i) != value(left, i, ncclSum);
			CHECK(!bad, "Send/Recv ring %s n %zu", tname[t], n);
			NCCL(ncclGroupStart());
			NCCL(ncclGroupStart()); /* nested */
			NCCL(ncclSend(sb, n, t, rank, comm, NULL));
			NCCL(ncclRecv(rb, n, t, rank, comm, NULL));
			NCCL(ncclGroupEnd());
			NCCL(ncclGroupEnd());
			CHECK(!memcmp(rb, sb, n * es), "self Send/Recv %s n %zu", tname[t], n);
			free(sb);
			free(rb);
		}
	}
	/* Error codes and strings. */
	int v;
	NCCL(ncclGetVersion(&v));
	CHECK(v == NCCL_VERSION_CODE, "version %d", v);
	float x = 1;
	CHECK(ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, NULL, NULL) == ncclInvalidArgument, "NULL comm");
	CHECK(ncclGroupEnd() == ncclInvalidUsage, "GroupEnd without GroupStart");
	CHECK(ncclAllReduce(&x, &x, 1, (ncclDataType_t)77, ncclSum, comm, NULL) == ncclInvalidArgument, "bad type");
	CHECK(ncclAllReduce(&x, &x, 1, ncclFloat32, (ncclRedOp_t)42, comm, NULL) == ncclInvalidArgument, "bad op");
	CHECK(ncclAllReduce(&x, &x, 1, ncclFloat32, (ncclRedOp_t)-1, comm, NULL) == ncclInvalidArgument,
	      "negative op (was taken for Sum)");
	CHECK(ncclReduceScatter(&x, &x, 1, ncclFloat32, (ncclRedOp_t)-1, comm, NULL) == ncclInvalidArgument,
	      "ReduceScatter with a negative op");
	/* Counts whose bytes wrap (the data path copied 0 bytes of a device
	 * buffer and read it on the host, or overran a short allocation). */
	CHECK(ncclAllReduce(&x, &x, (size_t)1 << 61, ncclFloat64, ncclSum, comm, NULL) == ncclInvalidArgument &&
		      strstr(ncclGetLastError(comm), "more memory than there is"),
	      "a count of 2^61 doubles");
	CHECK(ncclAllGather(&x, &x, SIZE_MAX / 16 / (size_t)nranks + 1, ncclFloat32, comm, NULL) == ncclInvalidArgument,
	      "an AllGather whose output is more than a quarter of the address space");
	CHECK(ncclSend(&x, SIZE_MAX, ncclInt8, (rank + 1) % nranks, comm, NULL) == ncclInvalidArgument,
	      "a Send of SIZE_MAX bytes");
	CHECK(ncclBroadcast(&x, &x, 1, ncclFloat32, nranks, comm, NULL) == ncclInvalidArgument, "bad root");
	CHECK(ncclSend(&x, 1, ncclFloat32, -1, comm, NULL) == ncclInvalidArgument, "bad peer");
	CHECK(!strcmp(ncclGetErrorString(ncclInvalidArgument), "invalid argument (run with NCCL_DEBUG=WARN for details)"),
	      "error string");
	CHECK(ncclCommSplit(comm, 0, rank, NULL, NULL) == ncclInvalidArgument, "Split with newcomm NULL");
	CHECK(ncclCommShrink(comm, NULL, 0, NULL, NULL, 0) == ncclInvalidArgument, "Shrink with newcomm NULL");
	/* A call of a group that fails its checks fails the group, which does
	 * not run (NCCL's ncclGroupErrCheck): GroupEnd says the error again. */
	{
		float g = (float)(rank + 1);
		NCCL(ncclGroupStart());
		NCCL(ncclAllReduce(&g, &g, 1, ncclFloat32, ncclSum, comm, NULL));
		CHECK(ncclAllReduce(&g, &g, 1, (ncclDataType_t)77, ncclSum, comm, NULL) == ncclInvalidArgument,
		      "bad type in a group");
		CHECK(ncclGroupEnd() == ncclInvalidArgument && g == (float)(rank + 1),
		      "a group with a bad call: GroupEnd gave no error or ran the good call (%g)", (double)g);
		/* A communicator destroyed after its call was queued: the group
		 * fails at GroupEnd (it used the freed communicator). */
		ncclComm_t c2 = NULL;
		NCCL(ncclCommSplit(comm, 0, rank, &c2, NULL));
		NCCL(ncclGroupStart());
		NCCL(ncclAllReduce(&g, &g, 1, ncclFloat32, ncclSum, c2, NULL));
		NCCL(ncclCommDestroy(c2));
		CHECK(ncclGroupEnd() == ncclInvalidArgument && strstr(ncclGetLastError(NULL), "destroyed or aborted") &&
			      g == (float)(rank + 1),
		      "a group whose communicator was destroyed before GroupEnd");
		NCCL(ncclAllReduce(&g, &g, 1, ncclFloat32, ncclSum, comm, NULL));
		CHECK(g == (float)(nranks * (nranks + 1) / 2), "the communicator after the failed groups: %g", (double)g);
	}
	/* A config's blocking other than 0, 1 or unset: ncclInvalidArgument,
	 * as NCCL says ("Invalid config blocking attribute value"), before any
	 * join or meeting (every rank makes these calls). */
	{
		ncclConfig_t bad = NCCL_CONFIG_INITIALIZER;
		bad.blocking = 5;
		ncclComm_t none = NULL;
		ncclUniqueId uid;
		NCCL(ncclGetUniqueId(&uid));
		CHECK(ncclCommInitRankConfig(&none, nranks, uid, rank, &bad) == ncclInvalidArgument && !none &&
			      strstr(ncclGetLastError(NULL), "blocking attribute value 5"),
		      "InitRankConfig with blocking 5");
		CHECK(ncclCommSplit(comm, 0, rank, &none, &bad) == ncclInvalidArgument && !none,
		      "Split with blocking 5");
		CHECK(ncclCommShrink(comm, NULL, 0, &none, &bad, NCCL_SHRINK_DEFAULT) == ncclInvalidArgument && !none,
		      "Shrink with blocking 5");
		bad = (ncclConfig_t)NCCL_CONFIG_INITIALIZER;
		bad.magic = 0;
		CHECK(ncclCommSplit(comm, 0, rank, &none, &bad) == ncclInvalidArgument && !none,
		      "Split with a config not from NCCL_CONFIG_INITIALIZER");
	}
	int cnt = 0, me = -1;
	NCCL(ncclCommCount(comm, &cnt));
	NCCL(ncclCommUserRank(comm, &me));
	CHECK(cnt == nranks && me == rank, "Count %d UserRank %d", cnt, me);
	ncclResult_t ae = ncclInternalError;
	NCCL(ncclCommGetAsyncError(comm, &ae));
	CHECK(ae == ncclSuccess, "async error %d", ae);
	/* An empty group. */
	NCCL(ncclGroupStart());
	NCCL(ncclGroupEnd());
	/* The device API's host calls that take a communicator are the
	 * shim's (InvalidUsage and a message), not the real libnccl's, which
	 * would get the shim's communicator; ncclResetDebugInit is a no-op. */
	ncclResult_t (*devcomm)(ncclComm_t, const void *, void *) =
		(ncclResult_t (*)(ncclComm_t, const void *, void *))dlsym(RTLD_DEFAULT, "ncclDevCommCreate");
	char devbuf[4096];
	CHECK(devcomm && devcomm(comm, devbuf, devbuf) == ncclInvalidUsage &&
		      strstr(ncclGetLastError(comm), "ncclDevCommCreate"),
	      "ncclDevCommCreate: %s", devcomm ? ncclGetLastError(comm) : "missing");
	void (*reset)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "ncclResetDebugInit");
	CHECK(reset != NULL, "ncclResetDebugInit");
	if (reset)
		reset();
	NCCL(ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, comm, NULL));
	newer_api(comm);
}

/* The API after 2.28 (nccl.h of NCCL 2.31), looked up by name as a
 * libtorch built against it would import it: the shim's, never the real
 * libnccl's. */
static void *sym(const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);
	CHECK(p != NULL, "%s is not defined", name);
	return p;
}

static void newer_api(ncclComm_t comm)
{
	/* nccl*Config: the plain collective, with NCCL_COLLCONFIG_INITIALIZER's
	 * head (size, magic, version) or NULL; a config without the magic is
	 * refused. */
	struct {
		size_t size;
		unsigned int magic, version;
		void *ext;
		int ints[4];
	} cfg = {sizeof(cfg), 0xcafebeef, 23100, NULL, {0}};
	typedef ncclResult_t (*ar_cfg_f)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
					 cudaStream_t, const void *);
	typedef ncclResult_t (*ag_cfg_f)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t,
					 const void *);
	ar_cfg_f ar = (ar_cfg_f)sym("ncclAllReduceConfig");
	ag_cfg_f ag = (ag_cfg_f)sym("ncclAllGatherConfig");
	const char *others[] = {"ncclBroadcastConfig", "ncclReduceConfig", "ncclReduceScatterConfig",
				"ncclAlltoAllConfig", "ncclGatherConfig", "ncclScatterConfig", "pncclAllReduceConfig"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		sym(others[i]);
	if (ar && ag) {
		int v[3] = {rank + 1, 2 * (rank + 1), 3};
		NCCL(ar(v, v, 3, ncclInt32, ncclSum, comm, NULL, &cfg));
		int want = nranks * (nranks + 1) / 2;
		CHECK(v[0] == want && v[1] == 2 * want && v[2] == 3 * nranks, "AllReduceConfig: %d %d %d", v[0], v[1],
		      v[2]);
		NCCL(ar(v, v, 1, ncclInt32, ncclMax, comm, NULL, NULL));
		int *all = calloc((size_t)nranks, sizeof(int)), me = rank * 7;
		NCCL(ag(&me, all, 1, ncclInt32, comm, NULL, &cfg));
		for (int r = 0; r < nranks; r++)
			CHECK(all[r] == r * 7, "AllGatherConfig: rank %d gave %d", r, all[r]);
		free(all);
		cfg.magic = 0x1234;
		CHECK(ar(v, v, 1, ncclInt32, ncclSum, comm, NULL, &cfg) == ncclInvalidArgument &&
			      strstr(ncclGetLastError(comm), "NCCL_COLLCONFIG_INITIALIZER"),
		      "AllReduceConfig with a bad magic: %s", ncclGetLastError(comm));
	}
	/* Suspend/Resume: nothing to release; memory statistics: 0 bytes. */
	ncclResult_t (*suspend)(ncclComm_t, int) = (ncclResult_t (*)(ncclComm_t, int))sym("ncclCommSuspend");
	ncclResult_t (*resume)(ncclComm_t) = (ncclResult_t (*)(ncclComm_t))sym("ncclCommResume");
	ncclResult_t (*stats)(ncclComm_t, int, uint64_t *) =
		(ncclResult_t (*)(ncclComm_t, int, uint64_t *))sym("ncclCommMemStats");
	if (suspend && resume && stats) {
		uint64_t bytes = 99;
		NCCL(suspend(comm, 1));
		NCCL(stats(comm, 3, &bytes));
		CHECK(bytes == 0, "MemStats total %llu", (unsigned long long)bytes);
		CHECK(stats(comm, 9, &bytes) == ncclInvalidArgument, "MemStats of an unknown statistic");
		NCCL(resume(comm));
	}
	/* A window gives its buffer back. */
	ncclResult_t (*userptr)(ncclComm_t, ncclWindow_t, void **) =
		(ncclResult_t (*)(ncclComm_t, ncclWindow_t, void **))sym("ncclWinGetUserPtr");
	char wbuf[64];
	ncclWindow_t win = NULL;
	NCCL(ncclCommWindowRegister(comm, wbuf, sizeof(wbuf), &win, 0));
	void *back = NULL;
	if (userptr)
		NCCL(userptr(comm, win, &back));
	CHECK(back == wbuf, "WinGetUserPtr gave %p for %p", back, (void *)wbuf);
	/* Its device pointers (2.29, PyTorch's NCCL symmetric memory): the
	 * rank's own buffer in its load/store domain, NULL for other peers
	 * (no shared memory between simulated ranks), no multimem. */
	typedef ncclResult_t (*peer_ptr_f)(ncclWindow_t, size_t, int, void **);
	peer_ptr_f peerptr = (peer_ptr_f)sym("ncclGetPeerDevicePointer");
	peer_ptr_f lsaptr = (peer_ptr_f)sym("ncclGetLsaDevicePointer");
	ncclResult_t (*mmptr)(ncclWindow_t, size_t, void **) =
		(ncclResult_t (*)(ncclWindow_t, size_t, void **))sym("ncclGetLsaMultimemDevicePointer");
	if (peerptr && lsaptr && mmptr) {
		for (int p = 0; p < nranks; p++) {
			void *pp = (void *)1;
			NCCL(peerptr(win, 8, p, &pp));
			CHECK(p == rank ? pp == wbuf + 8 : pp == NULL, "GetPeerDevicePointer(peer %d) gave %p", p, pp);
		}
		void *pp = NULL;
		CHECK(peerptr(win, 0, nranks, &pp) == ncclInvalidArgument, "GetPeerDevicePointer of a peer beyond");
		NCCL(lsaptr(win, 4, 0, &pp));
		CHECK(pp == wbuf + 4, "GetLsaDevicePointer(0) gave %p", pp);
		CHECK(lsaptr(win, 0, 1, &pp) == ncclInvalidArgument, "GetLsaDevicePointer(1)");
		pp = (void *)1;
		CHECK(mmptr(win, 0, &pp) == ncclInvalidUsage && pp == NULL &&
			      strstr(ncclGetLastError(comm), "ncclGetLsaMultimemDevicePointer"),
		      "GetLsaMultimemDevicePointer: %p %s", pp, ncclGetLastError(comm));
	}
	NCCL(ncclCommWindowDeregister(comm, win));
	/* Not simulated: InvalidUsage with the function named. */
	const char *unsim[] = {"ncclCommGrow", "ncclCommGetUniqueId", "ncclPutSignal", "ncclSignal",
			       "ncclWaitSignal", "ncclParamBind", "ncclParamGetI32", "ncclParamGetStr",
			       "ncclParamGetParameter", "ncclParamGetAllParameterKeys"};
	for (size_t i = 0; i < sizeof(unsim) / sizeof(unsim[0]); i++) {
		ncclResult_t (*f)(void *, void *, void *, void *, void *, void *) =
			(ncclResult_t (*)(void *, void *, void *, void *, void *, void *))sym(unsim[i]);
		if (!f)
			continue;
		ncclResult_t e = f(NULL, NULL, NULL, NULL, NULL, NULL);
		CHECK(e == ncclInvalidUsage && strstr(ncclGetLastError(comm), unsim[i]), "%s: %d %s", unsim[i], e,
		      ncclGetLastError(comm));
	}
	void (*dump)(void) = (void (*)(void))sym("ncclParamDumpAll");
	if (dump)
		dump();
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Polls a non-blocking communicator as PyTorch does (1 ms apart, 60 s at
 * most): its state once not in progress. */
static ncclResult_t poll_ready(ncclComm_t c)
{
	ncclResult_t st = ncclInProgress;
	for (int i = 0; i < 60000 && st == ncclInProgress; i++) {
		if (ncclCommGetAsyncError(c, &st) != ncclSuccess)
			return ncclInternalError;
		if (st == ncclInProgress) {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
	}
	return st;
}

/* ProcessGroupNCCL's call sequences (research/nccl-cupti.md section 2). */
static volatile int g_watch_stop;
static void *watchdog(void *arg)
{
	/* PyTorch's watchdog polls every communicator from another thread. */
	ncclComm_t c = arg;
	long polls = 0;
	while (!g_watch_stop) {
		ncclResult_t e;
		if (ncclCommGetAsyncError(c, &e) != ncclSuccess || e != ncclSuccess) {
			fprintf(stderr, "rank %d: watchdog saw an error\n", rank);
			break;
		}
		polls++;
		sched_yield();
	}
	return (void *)polls;
}

static void pytorch(ncclComm_t world_comm_unused)
{
	(void)world_comm_unused;
	char path[4096];
	/* v1.13: lazy init, InitRank wrapped in a group. */
	snprintf(path, sizeof(path), "%s.pg", id_path());
	ncclUniqueId id = exchange_id(path, 0);
	ncclComm_t comm;
	NCCL(ncclGroupStart());
	NCCL(ncclCommInitRank(&comm, nranks, id, rank));
	NCCL(ncclGroupEnd());
	pthread_t wd;
	pthread_create(&wd, NULL, watchdog, comm);
	/* allreduce, in-place Bcast, coalesced allreduces in one group */
	float a[16], b[16];
	for (int i = 0; i < 16; i++)
		a[i] = b[i] = (float)(rank + i);
	NCCL(ncclAllReduce(a, a, 16, ncclFloat32, ncclSum, comm, NULL));
	CHECK(a[3] == (float)(nranks * 3 + nranks * (nranks - 1) / 2), "allreduce %g", a[3]);
	NCCL(ncclBcast(b, 16, ncclFloat32, nranks - 1, comm, NULL));
	CHECK(b[2] == (float)(nranks - 1 + 2), "bcast %g", b[2]);
	float c1[4] = {1, 1, 1, 1}, c2[4] = {2, 2, 2, 2};
	NCCL(ncclGroupStart());
	NCCL(ncclAllReduce(c1, c1, 4, ncclFloat32, ncclSum, comm, NULL));
	NCCL(ncclAllReduce(c2, c2, 4, ncclFloat32, ncclMax, comm, NULL));
	NCCL(ncclGroupEnd());
	CHECK(c1[0] == nranks && c2[0] == 2, "coalesced %g %g", c1[0], c2[0]);
	/* bool SUM becomes Max on uint8 */
	uint8_t flags[3] = {(uint8_t)(rank == 0), 0, 1};
	NCCL(ncclAllReduce(flags, flags, 3, ncclUint8, ncclMax, comm, NULL));
	CHECK(flags[0] == 1 && flags[1] == 0 && flags[2] == 1, "bool sum");
	/* all_to_all with uneven splits: rank r sends p elements to peer p
	 * (none to peer 0), a group of Send/Recv with zero counts skipped */
	int64_t sendv[64], recvv[64];
	size_t soff = 0;
	for (int p = 0; p < nranks; p++)
		for (int k = 0; k < p; k++)
			sendv[soff++] = rank * 100 + p;
	NCCL(ncclGroupStart());
	soff = 0;
	size_t roff = 0;
	for (int p = 0; p < nranks; p++) {
		if (p > 0)
			NCCL(ncclSend(sendv + soff, (size_t)p, ncclInt64, p, comm, NULL));
		soff += (size_t)p;
		if (rank > 0)
			NCCL(ncclRecv(recvv + roff, (size_t)rank, ncclInt64, p, comm, NULL));
		roff += (size_t)rank;
	}
	NCCL(ncclGroupEnd());
	int bad = 0;
	for (int p = 0; p < nranks && rank > 0; p++)
		for (int k = 0; k < rank; k++)
			bad |= recvv[p * rank + k] != p * 100 + rank;
	CHECK(!bad, "all_to_all uneven");
	/* gather: the root receives from every peer and copies its own part
	 * inside the group; scatter: the root sends to every peer */
	int32_t mine = 1000 + rank, all[64];
	int root = nranks / 2;
	NCCL(ncclGroupStart());
	if (rank == root) {
		for (int p = 0; p < nranks; p++)
			if (p != root)
				NCCL(ncclRecv(all + p, 1, ncclInt32, p, comm, NULL));
		all[root] = mine; /* the local copy_ */
	} else {
		NCCL(ncclSend(&mine, 1, ncclInt32, root, comm, NULL));
	}
	NCCL(ncclGroupEnd());
	if (rank == root) {
		bad = 0;
		for (int p = 0; p < nranks; p++)
			bad |= all[p] != 1000 + p;
		CHECK(!bad, "gather via send/recv");
	}
	/* PreMulSum: HostImmediate reads the scalar now, Device when the op runs */
	double sc = 3, x = 1;
	ncclRedOp_t imm, dev;
	NCCL(ncclRedOpCreatePreMulSum(&imm, &sc, ncclFloat64, ncclScalarHostImmediate, comm));
	NCCL(ncclRedOpCreatePreMulSum(&dev, &sc, ncclFloat64, ncclScalarDevice, comm));
	sc = 5;
	NCCL(ncclAllReduce(&x, &x, 1, ncclFloat64, imm, comm, NULL));
	CHECK(x == 3.0 * nranks, "PreMulSum HostImmediate %g", x);
	x = 1;
	NCCL(ncclAllReduce(&x, &x, 1, ncclFloat64, dev, comm, NULL));
	CHECK(x == 5.0 * nranks, "PreMulSum Device %g", x);
	NCCL(ncclRedOpDestroy(imm, comm));
	NCCL(ncclRedOpDestroy(dev, comm));
	/* a single p2p op gets its own 2-rank communicator (ranks 0 and 1) */
	if (rank < 2) {
		snprintf(path, sizeof(path), "%s.p2p", id_path());
		ncclUniqueId pid = exchange_id_n(path, 0, 2);
		ncclComm_t pc;
		NCCL(ncclCommInitRank(&pc, 2, pid, rank));
		int64_t v = 77;
		if (rank == 0)
			NCCL(ncclSend(&v, 1, ncclInt64, 1, pc, NULL));
		else {
			v = 0;
			NCCL(ncclRecv(&v, 1, ncclInt64, 0, pc, NULL));
			CHECK(v == 77, "p2p comm %lld", (long long)v);
		}
		NCCL(ncclCommDestroy(pc));
	}
	g_watch_stop = 1;
	void *polls;
	pthread_join(wd, &polls);
	CHECK((long)polls > 0, "the watchdog polled");
	/* current main: a non-blocking config, polled until not in progress;
	 * new_group via Split (rank 0 not in it); Finalize, then Destroy */
	snprintf(path, sizeof(path), "%s.nb", id_path());
	ncclUniqueId nid = exchange_id(path, 0);
	ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
	cfg.blocking = 0;
	ncclComm_t nb = NULL;
	ncclResult_t r = ncclCommInitRankConfig(&nb, nranks, nid, rank, &cfg);
	CHECK(r == ncclSuccess || r == ncclInProgress, "nonblocking init %d", r);
	CHECK(poll_ready(nb) == ncclSuccess && nb != NULL, "nonblocking init completes");
	ncclComm_t grp = NULL;
	/* Split of a non-blocking communicator: non-blocking too. */
	r = ncclCommSplit(nb, rank == 0 ? NCCL_SPLIT_NOCOLOR : 0, rank, &grp, NULL);
	CHECK(r == ncclSuccess || r == ncclInProgress, "nonblocking split %d", r);
	if (rank != 0) {
		CHECK(poll_ready(grp) == ncclSuccess, "nonblocking split completes");
		int32_t one = 1;
		NCCL(ncclAllReduce(&one, &one, 1, ncclInt32, ncclSum, grp, NULL));
		CHECK(one == nranks - 1, "new_group allreduce %d", one);
		NCCL(ncclCommFinalize(grp));
		NCCL(ncclCommDestroy(grp));
	}
	NCCL(ncclCommFinalize(nb));
	NCCL(ncclCommDestroy(nb));

	/* A non-blocking init really in progress: the others join 300 ms
	 * later; meanwhile rank 0 has ncclInProgress, and using the
	 * communicator is ncclInvalidArgument, as in NCCL. */
	snprintf(path, sizeof(path), "%s.nb2", id_path());
	nid = exchange_id(path, 0);
	struct timespec late = {0, 300000000};
	if (rank != 0)
		nanosleep(&late, NULL);
	ncclComm_t nb2 = NULL;
	r = ncclCommInitRankConfig(&nb2, nranks, nid, rank, &cfg);
	if (rank == 0) {
		CHECK(r == ncclInProgress && nb2 != NULL, "nonblocking init before the others join: %d", r);
		float fx = 1;
		CHECK(ncclAllReduce(&fx, &fx, 1, ncclFloat32, ncclSum, nb2, NULL) == ncclInvalidArgument,
		      "use before the init completes is ncclInvalidArgument");
		int cnt = 0;
		CHECK(ncclCommCount(nb2, &cnt) == ncclInvalidArgument, "Count before the init completes");
	}
	CHECK(poll_ready(nb2) == ncclSuccess, "nonblocking init completes after the others join");
	int32_t two = 2;
	NCCL(ncclAllReduce(&two, &two, 1, ncclInt32, ncclSum, nb2, NULL));
	CHECK(two == 2 * nranks, "AllReduce after a nonblocking init %d", two);
	NCCL(ncclCommDestroy(nb2));

	/* Abort while it joins (a communicator nobody else joins): at once,
	 * not at the time-out. */
	if (rank == 0) {
		ncclUniqueId lone;
		NCCL(ncclGetUniqueId(&lone));
		ncclComm_t c3 = NULL;
		r = ncclCommInitRankConfig(&c3, 2, lone, 0, &cfg);
		CHECK(r == ncclInProgress, "lone nonblocking init: %d", r);
		double t0 = wall_s();
		NCCL(ncclCommAbort(c3));
		CHECK(wall_s() - t0 < 2, "Abort of a joining communicator took %.1f s", wall_s() - t0);
	}
	NCCL(ncclCommDestroy(comm));
}

/* Rooted operations in a row: in each, some ranks need nothing from
 * their peers (the roots of the Broadcast and the Scatter, the other ranks
 * of the Reduce and the Gather) and run ahead of them in virtual time.
 * Odd rounds in place; the third round of each four with count 0. */
static void rooted_rounds(ncclComm_t comm, int rounds)
{
	enum { N = 1024 };
	size_t all = (size_t)N * nranks;
	float *sb = calloc(all, sizeof(float)), *rb = calloc(all, sizeof(float));
	for (int k = 0; k < rounds; k++) {
		int inplace = k % 2, none = k % 4 == 2;
		size_t n = none ? 0 : N;
#define FILL() for (size_t i = 0; i < all; i++) sb[i] = (float)(rank * 1000 + k + (int)(i % 97))
		/* Broadcast from rank 1 (in place: from rb) */
		FILL();
		memset(rb, 0, all * sizeof(float));
		if (inplace)
			memcpy(rb, sb, all * sizeof(float));
		NCCL(ncclBroadcast(inplace ? rb : sb, rb, n, ncclFloat32, 1 % nranks, comm, NULL));
		CHECK(rb[5] == (none ? (inplace ? sb[5] : 0) : (float)((1 % nranks) * 1000 + k + 5)), "round %d: Broadcast %g",
		      k, rb[5]);
		/* Reduce to the last rank (in place: rb on the root) */
		memset(rb, 0, all * sizeof(float));
		if (inplace)
			memcpy(rb, sb, all * sizeof(float));
		NCCL(ncclReduce(inplace ? rb : sb, rb, n, ncclFloat32, ncclSum, nranks - 1, comm, NULL));
		if (rank == nranks - 1 && !none) {
			CHECK(rb[7] == (float)(1000 * nranks * (nranks - 1) / 2 + nranks * (k + 7)), "round %d: Reduce %g",
			      k, rb[7]);
			CHECK(rb[N - 1] == (float)(1000 * nranks * (nranks - 1) / 2 + nranks * (k + (N - 1) % 97)),
			      "round %d: Reduce [N-1] %g", k, rb[N - 1]);
		}
		/* Gather to rank 0 (in place: the rank's part at rb + rank * n) */
		memset(rb, 0, all * sizeof(float));
		if (inplace)
			memcpy(rb + (size_t)rank * n, sb, n * sizeof(float));
		NCCL(ncclGather(inplace ? rb + (size_t)rank * n : sb, rb, n, ncclFloat32, 0, comm, NULL));
		if (rank == 0 && !none)
			for (int r = 0; r < nranks; r++)
				CHECK(rb[(size_t)r * N + 3] == (float)(r * 1000 + k + 3), "round %d: Gather from %d: %g", k, r,
				      rb[(size_t)r * N + 3]);
		/* Scatter from rank 0 (in place: the root's part at sb + 0) */
		memset(rb, 0, all * sizeof(float));
		NCCL(ncclScatter(sb, inplace && rank == 0 ? sb : rb, n, ncclFloat32, 0, comm, NULL));
		if (!none && !(inplace && rank == 0))
			CHECK(rb[2] == (float)(k + (int)(((size_t)rank * N + 2) % 97)), "round %d: Scatter %g", k, rb[2]);
#undef FILL
	}
	free(sb);
	free(rb);
}

/* Ranks that disagree on a rooted operation's count (3 ranks): rank 2's
 * Broadcast expects 8 floats, the others 16. Rank 2 gets
 * ncclInvalidArgument, its communicator an error its next call reports,
 * and it aborts it; the others' Broadcast succeeds, and their AllReduce
 * after it ends with the abort. */
static int rooted_mismatch(ncclComm_t comm)
{
	float x[16];
	for (int i = 0; i < 16; i++)
		x[i] = (float)(rank + i);
	ncclResult_t e = ncclBroadcast(x, x, rank == 2 ? 8 : 16, ncclFloat32, 0, comm, NULL);
	if (rank != 2) {
		CHECK(e == ncclSuccess, "rank %d: Broadcast gave %d", rank, e);
		e = ncclAllReduce(x, x, 16, ncclFloat32, ncclSum, comm, NULL);
		CHECK(e == ncclRemoteError, "rank %d: AllReduce after the peer's abort gave %d", rank, e);
		return 0;
	}
	CHECK(e == ncclInvalidArgument, "mismatched Broadcast gave %d", e);
	CHECK(strstr(ncclGetLastError(NULL), "disagree on the count") != NULL, "message: %s", ncclGetLastError(NULL));
	ncclResult_t a = ncclSuccess;
	CHECK(ncclCommGetAsyncError(comm, &a) == ncclSuccess && a == ncclInvalidArgument, "async error %d", a);
	e = ncclAllReduce(x, x, 16, ncclFloat32, ncclSum, comm, NULL);
	CHECK(e == ncclInvalidArgument && strstr(ncclGetLastError(NULL), "abort it"), "next call: %d %s", e,
	      ncclGetLastError(NULL));
	NCCL(ncclCommAbort(comm));
	return 1;
}

/* Empty messages against counts that disagree (3 ranks): rank 0 sends 0
 * bytes to rank 1, which expects 1 kB, and rank 2 sends 1 kB to rank 0,
 * which expects 0 bytes. The receivers get ncclInvalidArgument and an
 * asynchronous error (their virtual connections and their peers' are
 * apart), the senders' calls succeed, nobody hangs (an empty message is
 * an 8-byte transfer in the timing). Once both found theirs (a file each:
 * an abort before would be what the other finds), rank 0 aborts; rank
 * 1's next call (an empty Send to rank 2) says "abort it" at once, it
 * aborts; rank 2's group of an empty Send and Recv with rank 1 ends with
 * ncclRemoteError. 1: comm aborted. */
static void zero_mark(const char *tag, int r)
{
	char f[600];
	snprintf(f, sizeof(f), "%s.%s%d", getenv("NCCL_CHECK_ID") ? getenv("NCCL_CHECK_ID") : "/tmp/nccl_check", tag, r);
	FILE *fp = fopen(f, "w");
	CHECK(fp != NULL, "%s: %s", f, strerror(errno));
	if (fp)
		fclose(fp);
}

static void zero_wait(const char *tag, int r)
{
	char f[600];
	snprintf(f, sizeof(f), "%s.%s%d", getenv("NCCL_CHECK_ID") ? getenv("NCCL_CHECK_ID") : "/tmp/nccl_check", tag, r);
	int i = 0;
	while (access(f, F_OK) != 0 && i++ < 60000)
		usleep(1000);
	CHECK(unlink(f) == 0, "rank %d never found its checks done (%s)", r, f);
}

static int p2p_zero(ncclComm_t comm)
{
	uint8_t x[1024] = {0};
	ncclResult_t e = ncclSuccess, a = ncclSuccess;
	if (rank == 0) {
		NCCL(ncclSend(x, 0, ncclUint8, 1, comm, NULL));
		e = ncclRecv(x, 0, ncclUint8, 2, comm, NULL);
		CHECK(e == ncclInvalidArgument && strstr(ncclGetLastError(NULL), "disagree on the count"),
		      "an empty Recv of a 1 kB message gave %d: %s", e, ncclGetLastError(NULL));
	} else if (rank == 1) {
		e = ncclRecv(x, sizeof(x), ncclUint8, 0, comm, NULL);
		CHECK(e == ncclInvalidArgument && strstr(ncclGetLastError(NULL), "disagree on the count"),
		      "a Recv of 1 kB of an empty message gave %d: %s", e, ncclGetLastError(NULL));
	} else if (rank == 2) {
		NCCL(ncclSend(x, sizeof(x), ncclUint8, 0, comm, NULL));
	}
	NCCL(ncclCommGetAsyncError(comm, &a));
	CHECK(a == (rank == 2 ? ncclSuccess : ncclInvalidArgument), "rank %d: async error %d", rank, a);
	if (rank < 2) {
		zero_mark("zero", rank);
		zero_wait("zero", 1 - rank);
	}
	if (rank == 0) {
		NCCL(ncclCommAbort(comm));
		return 1;
	}
	if (rank == 1) {
		e = ncclSend(x, 0, ncclUint8, 2, comm, NULL);
		CHECK(e == ncclInvalidArgument && strstr(ncclGetLastError(NULL), "abort it"), "next call: %d %s", e,
		      ncclGetLastError(NULL));
		NCCL(ncclCommAbort(comm));
		return 1;
	}
	NCCL(ncclGroupStart());
	NCCL(ncclSend(x, 0, ncclUint8, 1, comm, NULL));
	NCCL(ncclRecv(x, 0, ncclUint8, 1, comm, NULL));
	e = ncclGroupEnd();
	CHECK(e == ncclRemoteError, "rank 2: the exchange with rank 1, which aborted, gave %d", e);
	return 0;
}

/* One rank aborts while the others wait in a collective: they get an
 * error within seconds, never a hang. */
static void abort_peer(ncclComm_t comm)
{
	if (rank == nranks - 1) {
		struct timespec ts = {0, 300000000};
		nanosleep(&ts, NULL);
		NCCL(ncclCommAbort(comm));
		return;
	}
	float x = 1;
	ncclResult_t r = ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, comm, NULL);
	CHECK(r == ncclRemoteError, "a peer aborted: %d", r);
	CHECK(strstr(ncclGetLastError(NULL), "abort") != NULL, "message: %s", ncclGetLastError(NULL));
	/* The communicator keeps its error: the next operation gets it at
	 * once (NCCL's rule), it does not wait for the aborted peer. */
	ncclResult_t ae = ncclSuccess;
	NCCL(ncclCommGetAsyncError(comm, &ae));
	CHECK(ae == ncclRemoteError, "async error after the abort: %d", ae);
	double t0 = wall_s();
	CHECK(ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, comm, NULL) == ncclRemoteError,
	      "an operation after the error gets it");
	CHECK(wall_s() - t0 < 1, "and at once (%.1f s)", wall_s() - t0);
	NCCL(ncclCommAbort(comm));
}

static double vnow(void);

struct contend_arg {
	ncclComm_t comm;
	size_t n;
	double took;
};

static void *contend_thread(void *p)
{
	struct contend_arg *a = p;
	float *buf = calloc(a->n, sizeof(float));
	double t0 = vnow();
	ncclResult_t r = ncclAllReduce(buf, buf, a->n, ncclFloat32, ncclSum, a->comm, NULL);
	a->took = r == ncclSuccess ? vnow() - t0 : -1;
	free(buf);
	return NULL;
}

/* Two communicators over the same ranks, an AllReduce on each from two
 * threads at the same virtual time: under nic they share every link. */
static void contend(ncclComm_t comm, size_t bytes)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s.second", id_path());
	ncclUniqueId id2 = exchange_id(path, 0);
	ncclComm_t comm2;
	NCCL(ncclCommInitRank(&comm2, nranks, id2, rank));
	float z[4] = {0};
	/* line up (see timing) */
	for (int round = 0; round < 2; round++)
		NCCL(ncclAlltoAll(z, z, 1, ncclFloat32, comm, NULL));
	struct contend_arg one = {comm, bytes / 4, 0};
	contend_thread(&one); /* alone first */
	for (int round = 0; round < 2; round++)
		NCCL(ncclAlltoAll(z, z, 1, ncclFloat32, comm, NULL));
	struct contend_arg a = {comm, bytes / 4, 0}, b = {comm2, bytes / 4, 0};
	pthread_t ta, tb;
	pthread_create(&ta, NULL, contend_thread, &a);
	pthread_create(&tb, NULL, contend_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	printf("{\"rank\": %d, \"alone_ns\": %.0f, \"a_ns\": %.0f, \"b_ns\": %.0f}\n", rank, one.took * 1e9,
	       a.took * 1e9, b.took * 1e9);
	fflush(stdout);
	CHECK(a.took > 0 && b.took > 0, "contended allreduces failed");
	NCCL(ncclCommDestroy(comm2));
}

static double vnow(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void timing(ncclComm_t comm, size_t bytes)
{
	size_t n = bytes / 4;
	float *sb = calloc(n * nranks, 4), *rb = calloc(n * nranks, 4);
	const char *names[] = {"allreduce", "allgather", "reducescatter", "broadcast", "reduce", "alltoall", "sendrecv"};
	printf("{\"rank\": %d, \"bytes\": %zu", rank, bytes);
	for (int k = 0; k < 7; k++) {
		/* Line the ranks up: after two rounds of a 1-element AlltoAll
		 * every rank (n >= 3) leaves at the same virtual time, the
		 * latest entry plus two latencies. */
		for (int round = 0; round < 2; round++)
			NCCL(ncclAlltoAll(sb, rb, 1, ncclFloat32, comm, NULL));
		double t0 = vnow();
		switch (k) {
		case 0: NCCL(ncclAllReduce(sb, rb, n, ncclFloat32, ncclSum, comm, NULL)); break;
		case 1: NCCL(ncclAllGather(sb, rb, n / nranks, ncclFloat32, comm, NULL)); break;
		case 2: NCCL(ncclReduceScatter(sb, rb, n / nranks, ncclFloat32, ncclSum, comm, NULL)); break;
		case 3: NCCL(ncclBroadcast(sb, rb, n, ncclFloat32, 0, comm, NULL)); break;
		case 4: NCCL(ncclReduce(sb, rb, n, ncclFloat32, ncclSum, 0, comm, NULL)); break;
		case 5: NCCL(ncclAlltoAll(sb, rb, n / nranks, ncclFloat32, comm, NULL)); break;
		case 6:
			NCCL(ncclGroupStart());
			NCCL(ncclSend(sb, n, ncclFloat32, (rank + 1) % nranks, comm, NULL));
			NCCL(ncclRecv(rb, n, ncclFloat32, (rank + nranks - 1) % nranks, comm, NULL));
			NCCL(ncclGroupEnd());
			break;
		}
		printf(", \"%s_ns\": %.0f", names[k], (vnow() - t0) * 1e9);
	}
	printf("}\n");
	fflush(stdout);
	free(sb);
	free(rb);
}

/* Rank 0 sends n messages of bytes to rank 1, a call each, rank 1
 * receives them; each prints the time its calls took (record mode: the
 * host's time of moving the data; docs/benchmarks.md). */
static void p2pbench(ncclComm_t comm, int n, size_t bytes)
{
	uint8_t *x = malloc(bytes ? bytes : 1);
	CHECK(x != NULL, "out of memory");
	memset(x, 1, bytes);
	int32_t one = 1;
	NCCL(ncclAllReduce(&one, &one, 1, ncclInt32, ncclSum, comm, NULL));
	double t0 = vnow(), t8 = t0;
	for (int i = 0; i < n && rank < 2; i++) {
		if (rank == 0) {
			memset(x, i + 1, bytes);
			NCCL(ncclSend(x, bytes, ncclUint8, 1, comm, NULL));
		} else {
			NCCL(ncclRecv(x, bytes, ncclUint8, 0, comm, NULL));
			CHECK(bytes == 0 || (x[0] == (uint8_t)(i + 1) && x[bytes - 1] == (uint8_t)(i + 1)),
			      "message %d: %u", i, x[0]);
		}
		if (i == 7)
			t8 = vnow();
	}
	double t1 = vnow();
	/* An empty receive on rank 0 after the sends, of rank 1's empty
	 * message after its receives: it starts once the sends completed
	 * (flow control: the communicator's next operation) and ends with
	 * the empty message's arrival (NCCL's zero-byte Send and Recv
	 * synchronise). */
	if (rank == 0)
		NCCL(ncclRecv(x, 0, ncclUint8, 1, comm, NULL));
	else if (rank == 1)
		NCCL(ncclSend(x, 0, ncclUint8, 0, comm, NULL));
	printf("{\"rank\": %d, \"messages\": %d, \"bytes\": %zu, \"ms\": %.3f, \"first8_ms\": %.6f, "
	       "\"done_ms\": %.3f}\n", rank, n, bytes, (t1 - t0) * 1e3, (t8 - t0) * 1e3, (vnow() - t0) * 1e3);
	fflush(stdout);
	free(x);
}

/* Send/recv messages to rank `to` kept outside a pair's ring
 * (/dev/shm/uni-nccl-<id>-<from>-<to>-<n>, docs/nccl.md "Data path"). */
static int spills_to(int to)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)) != NULL) {
		int from, dst;
		unsigned long long k;
		char id[33];
		if (sscanf(e->d_name, "uni-nccl-%32[0-9a-f]-%d-%d-%llu", id, &from, &dst, &k) == 4 && dst == to)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Sends and receives grouped differently on the two sides: rank 0 sends
 * two messages of SIZE a call each, rank 1 receives both in one group;
 * then rank 0 sends four in one group, rank 1 receives them a call each. */
static void p2pgroups(ncclComm_t comm, size_t bytes)
{
	uint8_t *buf[4];
	for (int i = 0; i < 4; i++) {
		buf[i] = malloc(bytes);
		CHECK(buf[i] != NULL, "out of memory");
		memset(buf[i], rank == 0 ? 0x10 + i : 0, bytes);
	}
	for (int phase = 0; phase < 2 && rank < 2; phase++) {
		int n = phase ? 4 : 2, grouped = (rank == 0) == (phase == 1);
		if (grouped)
			NCCL(ncclGroupStart());
		for (int i = 0; i < n; i++) {
			if (rank == 0)
				NCCL(ncclSend(buf[i], bytes, ncclUint8, 1, comm, NULL));
			else
				NCCL(ncclRecv(buf[i], bytes, ncclUint8, 0, comm, NULL));
		}
		if (grouped)
			NCCL(ncclGroupEnd());
		for (int i = 0; i < n && rank == 1; i++) {
			CHECK(buf[i][0] == 0x10 + i && buf[i][bytes - 1] == 0x10 + i, "phase %d message %d: %#x", phase, i,
			      buf[i][0]);
			memset(buf[i], 0, bytes);
		}
	}
	for (int i = 0; i < 4; i++)
		free(buf[i]);
}

/* An AllReduce of each size (the algorithm is the session's or
 * NCCL_ALGO's), timed on this rank; the result is checked too. */
static void allreduce_sizes(ncclComm_t comm, int nsizes, char **sizes)
{
	printf("{\"rank\": %d, \"ns\": [", rank);
	for (int i = 0; i < nsizes; i++) {
		size_t n = (size_t)atoll(sizes[i]) / 4;
		float *x = malloc(n * 4 + 4);
		for (size_t j = 0; j < n; j++)
			x[j] = (float)(rank + 1);
		float z[64] = {0};
		for (int round = 0; round < 2; round++)
			NCCL(ncclAlltoAll(z, z + 32, 1, ncclFloat32, comm, NULL));
		double t0 = vnow();
		NCCL(ncclAllReduce(x, x, n, ncclFloat32, ncclSum, comm, NULL));
		printf("%s%.0f", i ? ", " : "", (vnow() - t0) * 1e9);
		float want = (float)(nranks * (nranks + 1) / 2);
		CHECK(n == 0 || (x[0] == want && x[n - 1] == want), "AllReduce of %zu: %g, want %g", n, n ? x[0] : 0, want);
		free(x);
	}
	printf("]}\n");
	fflush(stdout);
}

/* Device buffers through a CUDA runtime (tests: the mock, whose device
 * memory the host cannot touch). */
typedef int (*cu_malloc_f)(void **, size_t);
typedef int (*cu_free_f)(void *);
typedef int (*cu_memcpy_f)(void *, const void *, size_t, int);
static cu_malloc_f cu_malloc;
static cu_free_f cu_free;
static cu_memcpy_f cu_memcpy;
static unsigned long own_copies;

static float *dev_of(const float *h, size_t n)
{
	void *d = NULL;
	CHECK(cu_malloc(&d, n * 4 + 4) == 0, "cudaMalloc");
	if (n && h) {
		CHECK(cu_memcpy(d, h, n * 4, 1 /* HostToDevice */) == 0, "cudaMemcpy to the device");
		own_copies++;
	}
	return d;
}

static void host_of(float *h, const float *d, size_t n)
{
	if (n) {
		CHECK(cu_memcpy(h, d, n * 4, 2 /* DeviceToHost */) == 0, "cudaMemcpy from the device");
		own_copies++;
	}
}

/* The CUDA runtime at lib (the stand-in or a real one), loaded for the
 * shim to find; cu_malloc, cu_free and cu_memcpy set from it. NULL (a
 * failed check) when it does not load. */
static void *rt_open(const char *lib)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
	CHECK(h != NULL, "dlopen %s: %s", lib, dlerror());
	if (!h)
		return NULL;
	cu_malloc = (cu_malloc_f)dlsym(h, "cudaMalloc");
	cu_free = (cu_free_f)dlsym(h, "cudaFree");
	cu_memcpy = (cu_memcpy_f)dlsym(h, "cudaMemcpy");
	return h;
}

static void device(ncclComm_t comm, const char *lib)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	/* The stand-in counts its copies; a real runtime does not. */
	unsigned long (*copies)(void) = (unsigned long (*)(void))dlsym(h, "mock_cuda_copies");
	CHECK(cu_malloc && cu_free && cu_memcpy, "runtime symbols");
	if (!cu_malloc || !cu_free || !cu_memcpy)
		return;
	const int n = nranks;
	const size_t c = 1001; /* per rank block */
	/* A stream of the program's: the stand-in takes any handle, a real
	 * runtime (no copy count) one it made. */
	cudaStream_t stream = (cudaStream_t)0x5;
	int (*stream_create)(cudaStream_t *) = (int (*)(cudaStream_t *))dlsym(h, "cudaStreamCreate");
	if (!copies)
		CHECK(stream_create && stream_create(&stream) == 0, "cudaStreamCreate");
	float *in = malloc(c * n * 4), *out = malloc(c * n * 4), *want = malloc(c * n * 4);
	for (size_t i = 0; i < c * n; i++)
		in[i] = (float)(rank * 1000 + (int)(i % 997));
	unsigned long before = copies ? copies() : 0;

	/* AllReduce, out of place and in place */
	float *ds = dev_of(in, c), *dr = dev_of(NULL, c);
	NCCL(ncclAllReduce(ds, dr, c, ncclFloat32, ncclSum, comm, stream));
	host_of(out, dr, c);
	for (size_t i = 0; i < c; i++)
		want[i] = (float)(1000 * n * (n - 1) / 2 + n * (int)(i % 997));
	CHECK(!memcmp(out, want, c * 4), "device AllReduce: %g, want %g", out[1], want[1]);
	NCCL(ncclAllReduce(ds, ds, c, ncclFloat32, ncclSum, comm, stream));
	host_of(out, ds, c);
	CHECK(!memcmp(out, want, c * 4), "device AllReduce in place: %g, want %g", out[1], want[1]);
	cu_free(ds);
	cu_free(dr);

	/* Broadcast from the last rank, Reduce (max) to rank 0 */
	ds = dev_of(in, c);
	dr = dev_of(NULL, c);
	NCCL(ncclBroadcast(ds, dr, c, ncclFloat32, n - 1, comm, stream));
	host_of(out, dr, c);
	CHECK(out[5] == (float)((n - 1) * 1000 + 5), "device Broadcast: %g", out[5]);
	NCCL(ncclReduce(ds, dr, c, ncclFloat32, ncclMax, 0, comm, stream));
	if (rank == 0) {
		host_of(out, dr, c);
		CHECK(out[7] == (float)((n - 1) * 1000 + 7), "device Reduce: %g", out[7]);
	}
	cu_free(ds);
	cu_free(dr);

	/* AllGather, ReduceScatter, AlltoAll */
	ds = dev_of(in, c * n);
	dr = dev_of(NULL, c * n);
	NCCL(ncclAllGather(ds, dr, c, ncclFloat32, comm, stream));
	host_of(out, dr, c * n);
	int ok = 1;
	for (int p = 0; p < n; p++)
		for (size_t i = 0; i < c; i++)
			ok &= out[p * c + i] == (float)(p * 1000 + (int)(i % 997));
	CHECK(ok, "device AllGather");
	NCCL(ncclReduceScatter(ds, dr, c, ncclFloat32, ncclSum, comm, stream));
	host_of(out, dr, c);
	ok = 1;
	for (size_t i = 0; i < c; i++)
		ok &= out[i] == (float)(1000 * n * (n - 1) / 2 + n * (int)((rank * c + i) % 997));
	CHECK(ok, "device ReduceScatter: %g", out[0]);
	NCCL(ncclAlltoAll(ds, dr, c, ncclFloat32, comm, stream));
	host_of(out, dr, c * n);
	ok = 1;
	for (int p = 0; p < n; p++)
		for (size_t i = 0; i < c; i++)
			ok &= out[p * c + i] == (float)(p * 1000 + (int)((rank * c + i) % 997));
	CHECK(ok, "device AlltoAll");

	/* Gather to 0, Scatter from 0 */
	NCCL(ncclGather(ds, dr, c, ncclFloat32, 0, comm, stream));
	if (rank == 0) {
		host_of(out, dr, c * n);
		ok = 1;
		for (int p = 0; p < n; p++)
			ok &= out[p * c + 3] == (float)(p * 1000 + 3);
		CHECK(ok, "device Gather");
	}
	NCCL(ncclScatter(ds, dr, c, ncclFloat32, 0, comm, stream));
	host_of(out, dr, c);
	CHECK(out[2] == (float)((rank * c + 2) % 997), "device Scatter: %g", out[2]);
	cu_free(ds);
	cu_free(dr);

	/* A send/recv ring in a group */
	ds = dev_of(in, c);
	dr = dev_of(NULL, c);
	NCCL(ncclGroupStart());
	NCCL(ncclSend(ds, c, ncclFloat32, (rank + 1) % n, comm, stream));
	NCCL(ncclRecv(dr, c, ncclFloat32, (rank + n - 1) % n, comm, stream));
	NCCL(ncclGroupEnd());
	host_of(out, dr, c);
	CHECK(out[9] == (float)(((rank + n - 1) % n) * 1000 + 9), "device send/recv ring: %g", out[9]);
	cu_free(ds);
	cu_free(dr);

	/* Host buffers still work beside them. */
	float x[3] = {1, 2, 3};
	NCCL(ncclAllReduce(x, x, 3, ncclFloat32, ncclSum, comm, NULL));
	CHECK(x[2] == 3.0f * n, "host AllReduce after device ones: %g", x[2]);
	/* The shim went through the runtime: one copy in per device input,
	 * one out per device output (rank 0 is the root of Reduce, Gather
	 * and Scatter, rank n-1 of Broadcast). */
	if (copies) {
		unsigned long shim = copies() - before - own_copies;
		unsigned long expect = 16 + (rank == 0 ? 3 : 0) + (rank == n - 1 ? 1 : 0);
		printf("rank %d: the shim made %lu runtime copies\n", rank, shim);
		CHECK(shim == expect, "the shim made %lu copies through the runtime, want %lu", shim, expect);
	} else {
		printf("rank %d: a real CUDA runtime (%s): copies not counted\n", rank, lib);
	}
	free(in);
	free(out);
	free(want);
}

/* A real runtime's stream held for HOLD_S seconds by a host function (the
 * raw system call: not a sleep the shim would time). */
#define HOLD_S 2
static void hold_fn(void *p)
{
	(void)p;
	struct timespec ts = {HOLD_S, 0};
	syscall(SYS_nanosleep, &ts, NULL);
}

static double real_now(void)
{
	struct timespec ts;
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Each communicator's CUDA device (the stand-in with MOCK_CUDA_DEVICES=4):
 * ncclCommCuDevice says the one current at InitRank (device 0 for the
 * communicator made before the runtime was loaded), a Split's child its
 * parent's, InitAll's its list's. An operation called with another device
 * current (rank % 4 + 1), synchronous and on a stream, and a Finalize from
 * a thread with no device while that stream holds the operation: the
 * shim's calls on the communicator's stream all run with its device
 * current (the stand-in counts those that do not), the caller's device
 * comes back, the results are exact. */
struct fin_arg {
	ncclComm_t c;
	ncclResult_t r;
};

static void *fin_thread(void *p)
{
	struct fin_arg *a = p;
	a->r = ncclCommFinalize(a->c);
	return NULL;
}

static void devices(ncclComm_t comm, const char *lib)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	int (*set_dev)(int) = (int (*)(int))dlsym(h, "cudaSetDevice");
	int (*get_dev)(int *) = (int (*)(int *))dlsym(h, "cudaGetDevice");
	int (*stream_create)(cudaStream_t *) = (int (*)(cudaStream_t *))dlsym(h, "cudaStreamCreate");
	void (*devs)(unsigned *, unsigned *) = (void (*)(unsigned *, unsigned *))dlsym(h, "mock_cuda_devices");
	void (*gate)(int) = (void (*)(int))dlsym(h, "mock_cuda_gate");
	CHECK(set_dev && get_dev && stream_create && devs && gate, "the stand-in's device calls");
	if (!set_dev || !get_dev || !stream_create || !devs || !gate)
		return;
	int mine = rank % 4, other = (rank + 1) % 4, d = -1, cur = -1;
	NCCL(ncclCommCuDevice(comm, &d));
	CHECK(d == 0, "CuDevice of the communicator made before the runtime was loaded: %d", d);
	CHECK(set_dev(mine) == 0, "cudaSetDevice(%d)", mine);
	ncclComm_t sc = NULL;
	NCCL(ncclCommSplit(comm, 0, rank, &sc, NULL));
	NCCL(ncclCommCuDevice(sc, &d));
	CHECK(d == 0, "CuDevice of a Split's child: %d, its parent's 0", d);
	NCCL(ncclCommDestroy(sc));
	ncclUniqueId id;
	if (rank == 0)
		NCCL(ncclGetUniqueId(&id));
	NCCL(ncclBroadcast(&id, &id, sizeof(id), ncclUint8, 0, comm, NULL));
	ncclComm_t c = NULL;
	NCCL(ncclCommInitRank(&c, nranks, id, rank));
	NCCL(ncclCommCuDevice(c, &d));
	CHECK(d == mine, "CuDevice %d, made on device %d", d, mine);
	cudaStream_t s;
	CHECK(stream_create(&s) == 0, "cudaStreamCreate");
	const size_t cnt = 4099;
	float *in = malloc(cnt * 4), *out = malloc(cnt * 4);
	for (size_t i = 0; i < cnt; i++)
		in[i] = (float)(rank + (int)(i % 13));
	float *ds = dev_of(in, cnt), *dr = dev_of(NULL, cnt);
	unsigned ctxs, foreign0, foreign;
	devs(&ctxs, &foreign0);
	CHECK(set_dev(other) == 0, "cudaSetDevice(%d)", other);
	int ok = 1;
	for (int round = 0; round < 3; round++) {
		/* on the stream; synchronous (the default stream: the
		 * communicator's device's, as in NCCL); on the stream behind held
		 * work, finalised meanwhile from a thread with no device */
		struct fin_arg fa = {.c = c, .r = ncclInternalError};
		pthread_t t;
		if (round == 2)
			gate(1);
		NCCL(ncclAllReduce(ds, dr, cnt, ncclFloat32, ncclSum, c, round == 1 ? NULL : s));
		CHECK(get_dev(&cur) == 0 && cur == other, "round %d: the caller's device after the call: %d, want %d",
		      round, cur, other);
		if (round == 2) {
			CHECK(pthread_create(&t, NULL, fin_thread, &fa) == 0, "thread");
			usleep(300000);
			gate(0);
			pthread_join(t, NULL);
			CHECK(fa.r == ncclSuccess, "Finalize from a thread with no device: %d", fa.r);
		}
		host_of(out, dr, cnt);
		for (size_t i = 0; i < cnt; i++)
			ok &= out[i] == (float)(nranks * (nranks - 1) / 2 + nranks * (int)(i % 13));
	}
	CHECK(ok, "AllReduce with another device current: %g", out[1]);
	devs(&ctxs, &foreign);
	printf("rank %d: device %d, called from device %d: %u calls on the stream from another device; contexts "
	       "%#x\n", rank, mine, other, foreign - foreign0, ctxs);
	CHECK(foreign == foreign0, "%u of the shim's calls on the communicator's stream ran with another device current",
	      foreign - foreign0);
	NCCL(ncclCommDestroy(c));
	cu_free(ds);
	cu_free(dr);
	/* InitAll: each rank on its list's device; a device there is not */
	ncclComm_t ac[2] = {NULL, NULL};
	int dl[2] = {3, 1}, bad[2] = {0, 4}, d1 = -1;
	NCCL(ncclCommInitAll(ac, 2, dl));
	NCCL(ncclCommCuDevice(ac[0], &d));
	NCCL(ncclCommCuDevice(ac[1], &d1));
	CHECK(d == 3 && d1 == 1, "InitAll's devices: %d %d, want 3 1", d, d1);
	NCCL(ncclCommDestroy(ac[0]));
	NCCL(ncclCommDestroy(ac[1]));
	/* without a list, 6 ranks go round the 4 devices */
	ncclComm_t a6[6];
	NCCL(ncclCommInitAll(a6, 6, NULL));
	int round_ok = 1;
	for (int i = 0; i < 6; i++) {
		NCCL(ncclCommCuDevice(a6[i], &d));
		round_ok &= d == i % 4;
		NCCL(ncclCommDestroy(a6[i]));
	}
	CHECK(round_ok, "InitAll of 6 ranks on 4 devices: rank i on device i %% 4");
	CHECK(ncclCommInitAll(ac, 2, bad) == ncclInvalidArgument &&
	      strstr(ncclGetLastError(NULL), "devlist[1] is device 4, not one of the 4 there are"),
	      "InitAll with device 4 of 4: %s", ncclGetLastError(NULL));
	free(in);
	free(out);
}

/* The pinned host copies' cache (docs/nccl.md, "Device buffers"), the
 * test's base limit 1 MiB (UNI_NCCL_STAGE_KEEP_BYTES), AllReduces of
 * 2 MiB ("big") and 4 kB on device buffers, out of place, results exact:
 * five big ones pin their two copies once (each pinned and freed its own
 * before); big and small ones in turn pin nothing new after the first of
 * each; 40 small ones after them let the big copies go; three big ones
 * queued on a stream behind held work (6 copies out at once), twice:
 * the second time nothing is pinned. */
static int allreduce_k(ncclComm_t comm, float *ds, float *dr, float *out, size_t n, int k)
{
	int ok = 1;
	for (int i = 0; i < k; i++) {
		NCCL(ncclAllReduce(ds, dr, n, ncclFloat32, ncclSum, comm, NULL));
		host_of(out, dr, n);
		ok &= out[n - 1] == (float)(nranks * (nranks - 1) / 2 + nranks * (int)((n - 1) % 11));
	}
	return ok;
}

static void pinned(ncclComm_t comm, const char *lib)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	void (*count)(unsigned *, unsigned *) = (void (*)(unsigned *, unsigned *))dlsym(h, "mock_cuda_pinned");
	void (*gate)(int) = (void (*)(int))dlsym(h, "mock_cuda_gate");
	CHECK(count && gate, "the stand-in's mock_cuda_pinned and mock_cuda_gate");
	if (!count || !gate)
		return;
	const size_t big = (2u << 20) / 4, small = 1024;
	float *in = malloc(big * 4), *out = malloc(big * 4);
	for (size_t i = 0; i < big; i++)
		in[i] = (float)(rank + (int)(i % 11));
	float *ds = dev_of(in, big), *dr = dev_of(NULL, big);
	unsigned a[5], f[5];
	count(&a[0], &f[0]);
	int ok = allreduce_k(comm, ds, dr, out, big, 5);
	count(&a[1], &f[1]);
	for (int k = 0; k < 3; k++) {
		ok &= allreduce_k(comm, ds, dr, out, big, 1);
		ok &= allreduce_k(comm, ds, dr, out, small, 1);
	}
	count(&a[2], &f[2]);
	ok &= allreduce_k(comm, ds, dr, out, small, 40);
	count(&a[3], &f[3]);
	unsigned q[2];
	for (int round = 0; round < 2; round++) {
		unsigned a0, f0;
		count(&a0, &f0);
		gate(1);
		for (int k = 0; k < 3; k++)
			NCCL(ncclAllReduce(ds, dr, big, ncclFloat32, ncclSum, comm, (cudaStream_t)0x7));
		gate(0);
		host_of(out, dr, big);
		ok &= out[big - 1] == (float)(nranks * (nranks - 1) / 2 + nranks * (int)((big - 1) % 11));
		count(&a[4], &f[4]);
		q[round] = a[4] - a0;
	}
	printf("rank %d: pinned copies: 5 big %u; big and small in turn %u; 40 small %u (freed %u); 3 big queued %u, "
	       "again %u\n", rank, a[1] - a[0], a[2] - a[1], a[3] - a[2], f[3] - f[2], q[0], q[1]);
	CHECK(ok, "AllReduce results");
	CHECK(a[1] - a[0] <= 2, "5 big AllReduces pinned %u copies, want 2 at most", a[1] - a[0]);
	CHECK(a[2] - a[1] <= 2, "big and small in turn pinned %u copies, want 2 at most (the small ones')", a[2] - a[1]);
	CHECK(f[3] - f[2] >= 2, "40 small AllReduces freed %u copies, want the 2 big ones", f[3] - f[2]);
	CHECK(q[1] == 0, "3 big AllReduces queued again pinned %u copies, want none (%u the first time)", q[1], q[0]);
	cu_free(ds);
	cu_free(dr);
	free(in);
	free(out);
}

/* Stream work (docs/nccl.md, "Device buffers"): with the stand-in's gate
 * holding the device's queue, as a long kernel would (a real runtime: a
 * host function that sleeps HOLD_S seconds; the calls must return well
 * before), the program queues
 * its input's copy to the device, an AllReduce, an AllReduce by
 * PreMulSum with a scalar in device memory, a send/recv ring, and the
 * result's copy back, all on one stream. Every call must return while
 * the gate holds (a call that waited for the stream would find the gate
 * open only when it opens by itself, after 20 s), nothing may have
 * reached the host yet, and once the gate opens the results must be
 * those of the input queued before the calls, not of the device memory at
 * the time of the calls. */
static void device_stream(ncclComm_t comm, const char *lib)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	int (*memcpy_async)(void *, const void *, size_t, int, cudaStream_t) =
		(int (*)(void *, const void *, size_t, int, cudaStream_t))dlsym(h, "cudaMemcpyAsync");
	int (*stream_sync)(cudaStream_t) = (int (*)(cudaStream_t))dlsym(h, "cudaStreamSynchronize");
	void (*gate)(int) = (void (*)(int))dlsym(h, "mock_cuda_gate");
	unsigned (*forced)(void) = (unsigned (*)(void))dlsym(h, "mock_cuda_gates_forced");
	unsigned (*pending)(void) = (unsigned (*)(void))dlsym(h, "mock_cuda_pending");
	void (*capture)(int) = (void (*)(int))dlsym(h, "mock_cuda_capture");
	int (*launch_host)(cudaStream_t, void (*)(void *), void *) =
		(int (*)(cudaStream_t, void (*)(void *), void *))dlsym(h, "cudaLaunchHostFunc");
	int (*stream_create)(cudaStream_t *) = (int (*)(cudaStream_t *))dlsym(h, "cudaStreamCreate");
	int mock = gate && forced && pending && capture;
	CHECK(cu_malloc && cu_memcpy && memcpy_async && stream_sync && (mock || (launch_host && stream_create)),
	      "runtime symbols");
	if (!cu_malloc || !cu_memcpy || !memcpy_async || !stream_sync || !(mock || (launch_host && stream_create)))
		return;
	const int n = nranks, left = (rank + n - 1) % n, right = (rank + 1) % n;
	const size_t c = 4099;
	cudaStream_t stream = (cudaStream_t)0x7;
	if (!mock)
		CHECK(stream_create(&stream) == 0, "cudaStreamCreate");
	/* Pinned host memory for the program's own asynchronous copies (a
	 * real runtime makes a copy to pageable memory wait for the stream). */
	int (*malloc_host)(void **, size_t) = (int (*)(void **, size_t))dlsym(h, "cudaMallocHost");
	void *hb = NULL;
	CHECK(malloc_host && malloc_host(&hb, 5 * c * 4) == 0, "cudaMallocHost");
	if (!hb)
		return;
	float *old = (float *)hb, *fresh = old + c, *out = fresh + c, *ring = out + c, *out4 = ring + c;
	for (size_t i = 0; i < c; i++) {
		old[i] = (float)(rank + 1);
		fresh[i] = (float)(100 * (rank + 1) + (int)(i % 7));
		out[i] = ring[i] = out4[i] = -1;
	}
	float half = 0.5f, four = 4.0f;
	float *ds = dev_of(old, c), *dr = dev_of(NULL, c), *dr2 = dev_of(NULL, c), *dr3 = dev_of(NULL, c),
	      *dr4 = dev_of(NULL, c), *dscal = dev_of(&half, 1);
	ncclRedOp_t premul, premul4;
	NCCL(ncclRedOpCreatePreMulSum(&premul, dscal, ncclFloat32, ncclScalarDevice, comm));

	/* Inside a CUDA graph capture: refused (the data would move once). */
	if (mock) {
		capture(1);
		CHECK(ncclAllReduce(ds, dr, c, ncclFloat32, ncclSum, comm, stream) == ncclInvalidUsage,
		      "an AllReduce on a stream being captured into a graph is ncclInvalidUsage");
		capture(0);
	}

	double t0 = real_now();
	if (mock)
		gate(1);
	else
		CHECK(launch_host(stream, hold_fn, NULL) == 0, "cudaLaunchHostFunc");
	CHECK(memcpy_async(ds, fresh, c * 4, 1 /* HostToDevice */, stream) == 0, "cudaMemcpyAsync to the device");
	NCCL(ncclAllReduce(ds, dr, c, ncclFloat32, ncclSum, comm, stream));
	NCCL(ncclAllReduce(dr, dr2, c, ncclFloat32, premul, comm, stream));
	/* The op may go once the call returned (PyTorch destroys it at
	 * once); a new one takes its place: the queued call keeps its own. */
	NCCL(ncclRedOpDestroy(premul, comm));
	NCCL(ncclRedOpCreatePreMulSum(&premul4, &four, ncclFloat32, ncclScalarHostImmediate, comm));
	NCCL(ncclAllReduce(ds, dr4, c, ncclFloat32, premul4, comm, stream));
	NCCL(ncclGroupStart());
	NCCL(ncclSend(ds, c, ncclFloat32, right, comm, stream));
	NCCL(ncclRecv(dr3, c, ncclFloat32, left, comm, stream));
	NCCL(ncclGroupEnd());
	CHECK(memcpy_async(out, dr2, c * 4, 2 /* DeviceToHost */, stream) == 0, "cudaMemcpyAsync from the device");
	CHECK(memcpy_async(ring, dr3, c * 4, 2, stream) == 0, "cudaMemcpyAsync from the device");
	CHECK(memcpy_async(out4, dr4, c * 4, 2, stream) == 0, "cudaMemcpyAsync from the device");
	double took = real_now() - t0;
	if (mock) {
		unsigned queued = pending();
		CHECK(forced() == 0, "an NCCL call waited for the work queued on its stream before it (the gate "
				     "opened by itself)");
		CHECK(queued >= 10, "only %u items queued on the held stream, want the copies and host functions",
		      queued);
		printf("rank %d: %u items queued behind the gate when the calls had returned\n", rank, queued);
	} else {
		printf("rank %d: the calls returned after %.3f s of real time, the stream held for %d s\n", rank, took,
		       HOLD_S);
		CHECK(took < HOLD_S / 2.0, "the NCCL calls took %.3f s: they waited for the held stream", took);
	}
	CHECK(out[0] == -1 && ring[0] == -1 && out4[0] == -1, "a result reached the host while the stream was held");
	if (!mock) {
		/* A host-buffer call now waits for the held stream's work (the
		 * communicator's data moves in call order), looking at the
		 * stream meanwhile (cudaStreamQuery: cudaErrorNotReady); the
		 * thread's last CUDA error stays as it was, which PyTorch checks
		 * after its kernel launches. */
		int (*peek)(void) = (int (*)(void))dlsym(h, "cudaPeekAtLastError");
		float y[3] = {1, 2, 3};
		NCCL(ncclAllReduce(y, y, 3, ncclFloat32, ncclSum, comm, NULL));
		CHECK(y[2] == 3.0f * n, "host AllReduce behind the held stream: %g", y[2]);
		CHECK(peek && peek() == 0, "the shim's stream queries left CUDA error %d for the program", peek ? peek() : -1);
	}
	if (mock)
		gate(0);
	CHECK(stream_sync(stream) == 0, "cudaStreamSynchronize");
	int ok_sum = 1, ok_ring = 1, ok_four = 1;
	for (size_t i = 0; i < c; i++) {
		float sum = (float)(100 * n * (n + 1) / 2 + n * (int)(i % 7));
		ok_sum &= out[i] == 0.5f * (float)n * sum;
		ok_four &= out4[i] == 4.0f * sum;
		ok_ring &= ring[i] == (float)(100 * (left + 1) + (int)(i % 7));
	}
	CHECK(ok_sum, "AllReduce, then PreMulSum by a device scalar, on the stream: %g, want %g", out[1],
	      0.5f * (float)n * (float)(100 * n * (n + 1) / 2 + n));
	CHECK(ok_ring, "send/recv ring on the stream: %g, want %g", ring[1], (float)(100 * (left + 1) + 1));
	CHECK(ok_four, "PreMulSum by 4 (an op made after the first was destroyed): %g, want %g", out4[1],
	      4.0f * (float)(100 * n * (n + 1) / 2 + n));
	/* A host-buffer call after them waits for them (the communicator's
	 * data moves in call order) and works. */
	float x[3] = {1, 2, 3};
	NCCL(ncclAllReduce(x, x, 3, ncclFloat32, ncclSum, comm, NULL));
	CHECK(x[2] == 3.0f * n, "host AllReduce after queued ones: %g", x[2]);
	NCCL(ncclRedOpDestroy(premul4, comm));
	int (*free_host)(void *) = (int (*)(void *))dlsym(h, "cudaFreeHost");
	if (free_host)
		free_host(hb);
}

/* N ranks in this process, a thread each calling ncclCommInitRank (as
 * nccl-tests -t does); each lines up with the others (two 1-element
 * AlltoAlls) and times an AllReduce of bytes on its own clock. */
struct thr {
	ncclUniqueId id;
	int n, me;
	size_t bytes;
	double t;
	int ok;
};

static void *thr_main(void *p)
{
	struct thr *a = p;
	ncclComm_t c;
	a->ok = ncclCommInitRank(&c, a->n, a->id, a->me) == ncclSuccess;
	if (!a->ok)
		return NULL;
	size_t n = a->bytes / 4;
	float *x = malloc(n * 4 + 4), z[64] = {0};
	for (size_t j = 0; j < n; j++)
		x[j] = (float)(a->me + 1);
	for (int round = 0; round < 2; round++)
		a->ok &= ncclAlltoAll(z, z + 32, 1, ncclFloat32, c, NULL) == ncclSuccess;
	double t0 = vnow();
	a->ok &= ncclAllReduce(x, x, n, ncclFloat32, ncclSum, c, NULL) == ncclSuccess;
	a->t = vnow() - t0;
	a->ok &= n == 0 || x[n - 1] == (float)(a->n * (a->n + 1) / 2);
	free(x);
	a->ok &= ncclCommDestroy(c) == ncclSuccess;
	return NULL;
}

static void threads_mode(int nt, size_t bytes)
{
	struct thr a[64];
	pthread_t t[64];
	ncclUniqueId id;
	NCCL(ncclGetUniqueId(&id));
	for (int i = 0; i < nt && i < 64; i++) {
		a[i] = (struct thr){.id = id, .n = nt, .me = i, .bytes = bytes};
		CHECK(pthread_create(&t[i], NULL, thr_main, &a[i]) == 0, "thread %d", i);
	}
	printf("threads times: {\"bytes\": %zu, \"ns\": [", bytes);
	for (int i = 0; i < nt && i < 64; i++) {
		pthread_join(t[i], NULL);
		CHECK(a[i].ok, "thread rank %d: init, AlltoAll, AllReduce and its result", i);
		printf("%s%.0f", i ? ", " : "", a[i].t * 1e9);
	}
	printf("]}\n");
}

/* CommInitAll: nd ranks in this process, driven by one thread through
 * groups, as a single-process multi-GPU program does. how: "group", the
 * ranks made by InitRank calls in one group instead (NCCL's way, and
 * nccl-tests' with -g); "groupnb", by non-blocking InitRankConfig calls
 * in one group, polled until they joined. */
static void initall(int nd, const char *how)
{
	ncclComm_t *c = calloc((size_t)nd, sizeof(*c));
	if (!how) {
		NCCL(ncclCommInitAll(c, nd, NULL));
	} else {
		int nb = !strcmp(how, "groupnb");
		ncclUniqueId id;
		ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
		cfg.blocking = 0;
		NCCL(ncclGetUniqueId(&id));
		NCCL(ncclGroupStart());
		for (int d = 0; d < nd; d++)
			NCCL(nb ? ncclCommInitRankConfig(&c[d], nd, id, d, &cfg) : ncclCommInitRank(&c[d], nd, id, d));
		ncclResult_t e = ncclGroupEnd();
		CHECK(e == ncclSuccess || (nb && e == ncclInProgress), "GroupEnd of %d InitRanks: %d", nd, e);
		for (int d = 0; nb && d < nd; d++) {
			ncclResult_t a = ncclInProgress;
			while (a == ncclInProgress) {
				NCCL(ncclCommGetAsyncError(c[d], &a));
				if (a == ncclInProgress)
					usleep(1000);
			}
			CHECK(a == ncclSuccess, "rank %d joined with %d", d, a);
		}
	}
	int ok = 1;
	for (int d = 0; d < nd; d++) {
		int cnt = -1, me = -1, dev = -1;
		NCCL(ncclCommCount(c[d], &cnt));
		NCCL(ncclCommUserRank(c[d], &me));
		NCCL(ncclCommCuDevice(c[d], &dev));
		/* (InitAll's rank d is on device d; InitRank's on the caller's
		 * current one: 0, no CUDA runtime here) */
		ok &= cnt == nd && me == d && dev == (how ? 0 : d);
	}
	CHECK(ok, "InitAll: counts, ranks and devices");
	const size_t n = 100000;
	float **b = calloc((size_t)nd, sizeof(*b)), **r = calloc((size_t)nd, sizeof(*r));
	for (int d = 0; d < nd; d++) {
		b[d] = malloc(n * 4);
		r[d] = malloc(n * 4);
		for (size_t i = 0; i < n; i++)
			b[d][i] = (float)(d + (int)(i % 7));
	}
	/* The clock (virtual in simulate mode) around each group: printed for
	 * test_nccl.sh, which checks them against the network. */
	double t0 = vnow();
	NCCL(ncclGroupStart());
	for (int d = 0; d < nd; d++)
		NCCL(ncclAllReduce(b[d], r[d], n, ncclFloat32, ncclSum, c[d], NULL));
	NCCL(ncclGroupEnd());
	double t_ar = vnow() - t0;
	ok = 1;
	for (int d = 0; d < nd; d++)
		for (size_t i = 0; i < n; i++)
			ok &= r[d][i] == (float)(nd * (nd - 1) / 2 + nd * (int)(i % 7));
	CHECK(ok, "InitAll: AllReduce of every rank in one group: %g", r[0][1]);
	/* a ring of sends and receives, and a Broadcast from the last */
	t0 = vnow();
	NCCL(ncclGroupStart());
	for (int d = 0; d < nd; d++) {
		NCCL(ncclSend(b[d], n, ncclFloat32, (d + 1) % nd, c[d], NULL));
		NCCL(ncclRecv(r[d], n, ncclFloat32, (d + nd - 1) % nd, c[d], NULL));
	}
	NCCL(ncclGroupEnd());
	double t_ring = vnow() - t0;
	ok = 1;
	for (int d = 0; d < nd; d++)
		ok &= r[d][3] == (float)((d + nd - 1) % nd + 3);
	CHECK(ok, "InitAll: send/recv ring");
	NCCL(ncclGroupStart());
	for (int d = 0; d < nd; d++)
		NCCL(ncclBroadcast(b[d], r[d], n, ncclFloat32, nd - 1, c[d], NULL));
	NCCL(ncclGroupEnd());
	ok = 1;
	for (int d = 0; d < nd; d++)
		ok &= r[d][5] == (float)(nd - 1 + 5);
	CHECK(ok, "InitAll: Broadcast");
	printf("initall times: {\"allreduce_s\": %.9f, \"ring_s\": %.9f, \"bytes\": %zu}\n", t_ar, t_ring, n * 4);
	for (int d = 0; d < nd; d++) {
		NCCL(ncclCommDestroy(c[d]));
		free(b[d]);
		free(r[d]);
	}
	free(b);
	free(r);
	free(c);
}

/* CommShrink (n >= 3): rank 1 leaves without calling it; the others
 * shrink it out, renumbered in their old order; then the new rank 0
 * (old 0) is shrunk out by the rest. */
static void shrink(ncclComm_t comm)
{
	int ex = 1, bad = rank;
	ncclComm_t s1 = NULL, s2 = NULL;
	if (rank == 1)
		return;
	CHECK(ncclCommShrink(comm, &bad, 1, &s1, NULL, NCCL_SHRINK_DEFAULT) == ncclInvalidArgument,
	      "excluding the calling rank is ncclInvalidArgument");
	bad = nranks;
	CHECK(ncclCommShrink(comm, &bad, 1, &s1, NULL, NCCL_SHRINK_DEFAULT) == ncclInvalidArgument,
	      "excluding a rank out of range is ncclInvalidArgument");
	NCCL(ncclCommShrink(comm, &ex, 1, &s1, NULL, NCCL_SHRINK_ABORT));
	int cnt = -1, me = -1;
	NCCL(ncclCommCount(s1, &cnt));
	NCCL(ncclCommUserRank(s1, &me));
	CHECK(cnt == nranks - 1 && me == (rank < 1 ? rank : rank - 1), "shrunk: count %d rank %d (old rank %d)", cnt, me,
	      rank);
	int v = rank;
	NCCL(ncclAllReduce(&v, &v, 1, ncclInt32, ncclSum, s1, NULL));
	CHECK(v == nranks * (nranks - 1) / 2 - 1, "AllReduce of the old ranks in the shrunk comm: %d", v);
	if (me != 0) {
		int zero = 0;
		NCCL(ncclCommShrink(s1, &zero, 1, &s2, NULL, NCCL_SHRINK_DEFAULT));
		NCCL(ncclCommCount(s2, &cnt));
		NCCL(ncclCommUserRank(s2, &me));
		CHECK(cnt == nranks - 2 && me == rank - 2, "shrunk twice: count %d rank %d (old rank %d)", cnt, me, rank);
		v = rank;
		NCCL(ncclAllReduce(&v, &v, 1, ncclInt32, ncclSum, s2, NULL));
		CHECK(v == nranks * (nranks - 1) / 2 - 1, "AllReduce in the twice shrunk comm: %d", v);
		NCCL(ncclCommDestroy(s2));
	}
	NCCL(ncclCommDestroy(s1));
}

/* The device timeline, through the stand-in runtime whose kernels last
 * gridDim.x us and are named by the string passed as the function. */
typedef struct {
	unsigned x, y, z;
} dim3_t;
static void cupti_mode(ncclComm_t comm, const char *lib, size_t bytes)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	int (*launch)(const void *, dim3_t, dim3_t, void **, size_t, cudaStream_t) =
		(int (*)(const void *, dim3_t, dim3_t, void **, size_t, cudaStream_t))dlsym(h, "cudaLaunchKernel");
	/* CUDA 13's launch of <<<>>> (its own callback id), for the relu */
	int (*launch13)(const void *, dim3_t, dim3_t, void **, size_t, cudaStream_t) =
		(int (*)(const void *, dim3_t, dim3_t, void **, size_t, cudaStream_t))dlsym(h, "__cudaLaunchKernel");
	int (*stream_create)(cudaStream_t *) = (int (*)(cudaStream_t *))dlsym(h, "cudaStreamCreate");
	int (*stream_sync)(cudaStream_t) = (int (*)(cudaStream_t))dlsym(h, "cudaStreamSynchronize");
	int (*dev_sync)(void) = (int (*)(void))dlsym(h, "cudaDeviceSynchronize");
	int (*ev_create)(cudaEvent_t *) = (int (*)(cudaEvent_t *))dlsym(h, "cudaEventCreate");
	int (*ev_record)(cudaEvent_t, cudaStream_t) = (int (*)(cudaEvent_t, cudaStream_t))dlsym(h, "cudaEventRecord");
	int (*ev_sync)(cudaEvent_t) = (int (*)(cudaEvent_t))dlsym(h, "cudaEventSynchronize");
	int (*wait_ev)(cudaStream_t, cudaEvent_t, unsigned) =
		(int (*)(cudaStream_t, cudaEvent_t, unsigned))dlsym(h, "cudaStreamWaitEvent");
	CHECK(launch && stream_create && stream_sync && dev_sync && ev_create && ev_record && ev_sync && wait_ev &&
		      cu_malloc && cu_memcpy,
	      "runtime symbols");
	if (!launch || !stream_create || !stream_sync || !dev_sync || !ev_create || !ev_record || !ev_sync ||
	    !wait_ev || !cu_malloc || !cu_memcpy)
		return;
	size_t n = bytes / 4;
	float *x = malloc(n * 4);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(rank + 1);
	float *d = dev_of(x, n);
	cudaStream_t s1, s2;
	cudaEvent_t e1, e2;
	stream_create(&s1);
	stream_create(&s2);
	ev_create(&e1);
	ev_create(&e2);
	dim3_t one = {1, 1, 1};
	/* Line the ranks up (host buffers: the host waits for these). */
	float z[2] = {0, 0};
	for (int round = 0; round < 2; round++)
		NCCL(ncclAllReduce(z, z + 1, 1, ncclFloat32, ncclSum, comm, NULL));

	/* 1. Kernels of 5 ms (sgemm: 10 ms virtual) and 1 ms, then the
	 * AllReduce, all on s1: the host does not wait for them; after the
	 * stream's sync it is at 11 ms + the AllReduce. */
	double t0 = vnow();
	launch("fake_sgemm_kernel", (dim3_t){5000, 1, 1}, one, NULL, 0, s1);
	(launch13 ? launch13 : launch)("fake_relu_kernel", (dim3_t){1000, 1, 1}, one, NULL, 0, s1);
	NCCL(ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm, s1));
	double launched = vnow() - t0;
	stream_sync(s1);
	double serial = vnow() - t0;
	host_of(x, d, n);
	float want = (float)(nranks * (nranks + 1) / 2);
	CHECK(x[0] == want && x[n - 1] == want, "AllReduce on the device: %g, want %g", x[0], want);

	/* 2. A 30 ms kernel (60 ms virtual) on s2 beside the AllReduce on s1:
	 * the device sync comes at the later of the two. */
	t0 = vnow();
	launch("fake_sgemm_kernel", (dim3_t){30000, 1, 1}, one, NULL, 0, s2);
	NCCL(ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm, s1));
	dev_sync();
	double overlap = vnow() - t0;

	/* 3. A 10 ms kernel (20 ms) on s2, an event after it that s1 waits
	 * for, then the AllReduce on s1 and an event after it, waited for. */
	t0 = vnow();
	launch("fake_sgemm_kernel", (dim3_t){10000, 1, 1}, one, NULL, 0, s2);
	ev_record(e1, s2);
	wait_ev(s1, e1, 0);
	NCCL(ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm, s1));
	ev_record(e2, s1);
	ev_sync(e2);
	double event = vnow() - t0;
	printf("{\"rank\": %d, \"launched_ns\": %.0f, \"serial_ns\": %.0f, \"overlap_ns\": %.0f, \"event_ns\": %.0f}\n",
	       rank, launched * 1e9, serial * 1e9, overlap * 1e9, event * 1e9);
	fflush(stdout);
	free(x);
}

/* More streams than the device timeline's table holds (the stand-in
 * runtime and CUPTI): a kernel on each of 300 streams, then each synced;
 * the shim says once that the tables are full (the work on the streams
 * beyond takes no virtual time). */
static void many_streams(const char *lib)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	int (*launch)(const void *, dim3_t, dim3_t, void **, size_t, cudaStream_t) =
		(int (*)(const void *, dim3_t, dim3_t, void **, size_t, cudaStream_t))dlsym(h, "cudaLaunchKernel");
	int (*stream_create)(cudaStream_t *) = (int (*)(cudaStream_t *))dlsym(h, "cudaStreamCreate");
	int (*stream_sync)(cudaStream_t) = (int (*)(cudaStream_t))dlsym(h, "cudaStreamSynchronize");
	CHECK(launch && stream_create && stream_sync, "runtime symbols");
	if (!launch || !stream_create || !stream_sync)
		return;
	dim3_t one = {1, 1, 1};
	for (int i = 0; i < 300; i++) {
		cudaStream_t st;
		CHECK(stream_create(&st) == 0, "cudaStreamCreate");
		launch("fake_relu_kernel", (dim3_t){10, 1, 1}, one, NULL, 0, st);
		stream_sync(st);
	}
}

/* A communicator aborted by another thread while this one waits in it
 * (PyTorch's watchdog does this): the waiting call returns an error, no
 * crash. Rank 0's second thread aborts after 0.3 s; rank 1 calls nothing
 * meanwhile. With the stand-in runtime (LIB): rank 0 first queues an
 * in-place AllReduce of a device buffer behind the gate, so its host
 * AllReduce waits for that (pending_drain); after the abort and the gate,
 * the device buffer holds what it held (the queued work moved nothing,
 * and its copy back must not carry another operation's leftovers, as
 * an earlier out-of-place AllReduce left in the reused host copies). */
static ncclComm_t g_abort_comm;
static void *aborter(void *p)
{
	(void)p;
	usleep(300000);
	NCCL(ncclCommAbort(g_abort_comm));
	return NULL;
}

static void abort_wait(ncclComm_t comm, const char *lib)
{
	void (*gate)(int) = NULL;
	int (*stream_sync)(cudaStream_t) = NULL;
	float *x = NULL;
	const size_t c = 1024;
	cudaStream_t s = (cudaStream_t)0x7;
	if (lib) {
		void *h = rt_open(lib);
		if (!h)
			return;
		gate = (void (*)(int))dlsym(h, "mock_cuda_gate");
		stream_sync = (int (*)(cudaStream_t))dlsym(h, "cudaStreamSynchronize");
		CHECK(cu_malloc && cu_memcpy && gate && stream_sync, "stand-in runtime symbols");
		if (!cu_malloc || !cu_memcpy || !gate || !stream_sync)
			return;
		float *h7 = malloc(c * 4), *h5 = malloc(c * 4);
		for (size_t i = 0; i < c; i++) {
			h7[i] = 7;
			h5[i] = 5;
		}
		float *a = dev_of(h7, c), *b = dev_of(NULL, c);
		x = dev_of(h5, c);
		NCCL(ncclAllReduce(a, b, c, ncclFloat32, ncclSum, comm, s));
		stream_sync(s);
		host_of(h7, b, 1);
		CHECK(h7[0] == 7.0f * nranks, "out-of-place AllReduce on the device: %g", h7[0]);
		free(h7);
		free(h5);
		gate(1);
		NCCL(ncclAllReduce(x, x, c, ncclFloat32, ncclSum, comm, s));
	}
	if (rank == 0) {
		pthread_t t;
		g_abort_comm = comm;
		CHECK(pthread_create(&t, NULL, aborter, NULL) == 0, "pthread_create");
		float hx[4] = {1, 2, 3, 4};
		ncclResult_t r = ncclAllReduce(hx, hx, 4, ncclFloat32, ncclSum, comm, NULL);
		CHECK(r == ncclRemoteError, "a call waiting while another thread aborts: %d, want ncclRemoteError", r);
		pthread_join(t, NULL);
	} else {
		usleep(1000000);
	}
	if (lib) {
		gate(0);
		stream_sync(s);
		float v = 0;
		host_of(&v, x, 1);
		CHECK(v == 5.0f, "in-place device buffer of aborted queued work: %g, want 5 (unchanged)", v);
		if (rank != 0)
			NCCL(ncclCommAbort(comm));
	} else if (rank != 0) {
		NCCL(ncclCommAbort(comm));
	}
	printf("rank %d: %d checks passed\n", rank, checks);
	fflush(stdout);
	_exit(failures ? 1 : 0);
}

/* Rank 1 waits in ncclRecv; rank 0 sends, then is gone at once (_exit,
 * no Destroy) or aborts its communicator and stays alive a while: what
 * it sent before arrives either way. */
static void send_then_go(ncclComm_t comm, int abort)
{
	enum { N = 16384 };
	static int32_t x[N];
	if (rank == 0) {
		for (int i = 0; i < N; i++)
			x[i] = i * 7 + 1;
		usleep(300000);
		NCCL(ncclSend(x, N, ncclInt32, 1, comm, NULL));
		if (abort) {
			NCCL(ncclCommAbort(comm));
			usleep(300000); /* alive: an abort, not a death */
		}
	} else if (rank == 1) {
		NCCL(ncclRecv(x, N, ncclInt32, 0, comm, NULL));
		int bad = 0;
		for (int i = 0; i < N; i++)
			bad += x[i] != i * 7 + 1;
		CHECK(bad == 0, "%d of %d elements received wrong", bad, N);
		NCCL(ncclCommDestroy(comm));
	}
	printf("rank %d: %d checks passed\n", rank, checks);
	fflush(stdout);
	_exit(failures ? 1 : 0);
}

/* The last rank dies (SIGKILL) while the others wait in an AllReduce,
 * each with a watchdog thread that polls the communicator every 50 ms
 * (PyTorch's does): they get ncclRemoteError within seconds. (In turn the pollers keep the turn busy for ever: the waiting
 * call looked again only once the turn had been idle 200 ms, so never.) */
static void *poller(void *arg)
{
	ncclComm_t c = arg;
	while (!g_watch_stop) {
		ncclResult_t e;
		if (ncclCommGetAsyncError(c, &e) != ncclSuccess)
			break;
		usleep(50000);
	}
	return NULL;
}

/* The AllReduce beside the poller wd failed as it should: ncclRemoteError
 * with a message that says want (or the abort of a peer that saw it
 * first); the poller stopped, the communicator aborted. */
static void watched_failed(ncclComm_t comm, pthread_t wd, ncclResult_t r, const char *want)
{
	CHECK(r == ncclRemoteError, "the AllReduce: %d, want ncclRemoteError", r);
	const char *m = ncclGetLastError(NULL);
	CHECK(strstr(m, want) || strstr(m, "abort"), "message: %s", m);
	g_watch_stop = 1;
	pthread_join(wd, NULL);
	NCCL(ncclCommAbort(comm));
}

static void die_watched(ncclComm_t comm, int in_timing)
{
	/* in_timing: the last rank kills itself inside the AllReduce, after
	 * its data moved and before it timed it (UNI_NCCL_TEST_KILL_TIMING in
	 * its environment): the others' data moved (every rank passed the
	 * data path's barriers), their timing receives wait for its sends.
	 * They finish the AllReduce; the next one gets the death. */
	if (rank == nranks - 1 && !in_timing) {
		usleep(300000);
		kill(getpid(), SIGKILL);
	}
	pthread_t wd;
	CHECK(pthread_create(&wd, NULL, poller, comm) == 0, "pthread_create");
	float x[3000] = {1};
	ncclResult_t r = ncclAllReduce(x, x, 3000, ncclFloat32, ncclSum, comm, NULL);
	if (in_timing && r == ncclSuccess) {
		CHECK(x[0] == nranks, "AllReduce before the death: %g", x[0]);
		r = ncclAllReduce(x, x, 3000, ncclFloat32, ncclSum, comm, NULL);
	}
	watched_failed(comm, wd, r, "died");
	printf("rank %d: %d checks passed\n", rank, checks);
	fflush(stdout);
	_exit(failures ? 1 : 0);
}

static double uptime_s(void)
{
	double t = 0;
	FILE *f = fopen("/proc/uptime", "r");
	if (f) {
		if (fscanf(f, "%lf", &t) != 1)
			t = 0;
		fclose(f);
	}
	return t;
}

/* The last rank never calls the AllReduce: it sleeps 50 ms at a time
 * (a timed wait, which keeps deterministic mode's turn busy) until the
 * others' AllReduce, each beside a polling watchdog, has given up after
 * UNI_NCCL_TIMEOUT (the test sets 2 s) and rank 0 made the file
 * NCCL_CHECK_ID.timedout. */
static void time_out_watched(ncclComm_t comm)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s.timedout", id_path());
	if (rank == nranks - 1) {
		/* (the host's time from /proc/uptime: the shim's clocks are
		 * virtual, and deterministic mode's sleeps take none) */
		double t0 = uptime_s();
		while (access(path, F_OK) != 0 && uptime_s() - t0 < 30)
			usleep(50000);
		printf("rank %d: %d checks passed\n", rank, checks);
		fflush(stdout);
		_exit(0);
	}
	pthread_t wd;
	CHECK(pthread_create(&wd, NULL, poller, comm) == 0, "pthread_create");
	float x = 1;
	ncclResult_t r = ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, comm, NULL);
	watched_failed(comm, wd, r, "UNI_NCCL_TIMEOUT");
	if (rank == 0)
		fclose(fopen(path, "w"));
	printf("rank %d: %d checks passed\n", rank, checks);
	fflush(stdout);
	_exit(failures ? 1 : 0);
}

/* A sticky CUDA error (the stand-in's mock_cuda_fault: nothing queued
 * runs any more) while an operation is queued: Finalize returns
 * ncclUnhandledCudaError at once instead of waiting for UNI_NCCL_TIMEOUT
 * for work that will never run, and Destroy returns. */
static void sticky(ncclComm_t comm, const char *lib)
{
	void *h = rt_open(lib);
	if (!h)
		return;
	void (*gate)(int) = (void (*)(int))dlsym(h, "mock_cuda_gate");
	void (*fault)(void) = (void (*)(void))dlsym(h, "mock_cuda_fault");
	CHECK(cu_malloc && cu_memcpy && gate && fault, "stand-in runtime symbols");
	if (!cu_malloc || !cu_memcpy || !gate || !fault)
		return;
	const size_t c = 1024;
	float *x = dev_of(NULL, c);
	gate(1);
	NCCL(ncclAllReduce(x, x, c, ncclFloat32, ncclSum, comm, (cudaStream_t)0x7));
	fault();
	double t0 = real_now();
	ncclResult_t r = ncclCommFinalize(comm);
	double dt = real_now() - t0;
	CHECK(r == ncclUnhandledCudaError, "Finalize with a sticky CUDA error: %d, want ncclUnhandledCudaError", r);
	CHECK(dt < 10, "Finalize with a sticky CUDA error took %.1f s", dt);
	CHECK(strstr(ncclGetLastError(comm), "has an error") != NULL, "message: %s", ncclGetLastError(comm));
	NCCL(ncclCommDestroy(comm));
	printf("rank %d: %d checks passed\n", rank, checks);
	fflush(stdout);
	_exit(failures ? 1 : 0);
}

/* Two AllReduces in one group: one fused operation. */
static void group2(ncclComm_t comm, size_t bytes)
{
	size_t n = bytes / 4;
	float *a = calloc(n, 4), *b = calloc(n, 4);
	float z[64] = {0};
	for (int round = 0; round < 2; round++)
		NCCL(ncclAlltoAll(z, z + 32, 1, ncclFloat32, comm, NULL));
	double t0 = vnow();
	NCCL(ncclGroupStart());
	NCCL(ncclAllReduce(a, a, n, ncclFloat32, ncclSum, comm, NULL));
	NCCL(ncclAllReduce(b, b, n, ncclFloat32, ncclSum, comm, NULL));
	NCCL(ncclGroupEnd());
	printf("{\"rank\": %d, \"ns\": %.0f}\n", rank, (vnow() - t0) * 1e9);
	fflush(stdout);
	free(a);
	free(b);
}

/* InitRank in a group (its communicator given out at the call, joined at
 * GroupEnd, as in NCCL): alone, with an AllReduce on it in the same group
 * (run after the join); then a group that fails on rank 0 (a bad call
 * after its InitRank): rank 0's GroupEnd says so, its Destroy aborts the
 * communicator, and the others' GroupEnd ends with ncclRemoteError instead
 * of waiting for rank 0 (UNI_NCCL_TIMEOUT). */
static void groupinit(ncclComm_t comm)
{
	ncclUniqueId id;
	ncclComm_t c = NULL;
	float x = (float)(rank + 1);
	if (rank == 0)
		NCCL(ncclGetUniqueId(&id));
	NCCL(ncclBroadcast(&id, &id, sizeof(id), ncclUint8, 0, comm, NULL));
	NCCL(ncclGroupStart());
	NCCL(ncclCommInitRank(&c, nranks, id, rank));
	CHECK(c != NULL, "InitRank in a group gives its communicator out");
	NCCL(ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, c, NULL));
	NCCL(ncclGroupEnd());
	CHECK(x == (float)(nranks * (nranks + 1) / 2), "AllReduce in the group of its InitRank: %g", (double)x);
	int cnt = 0;
	NCCL(ncclCommCount(c, &cnt));
	CHECK(cnt == nranks, "Count %d", cnt);
	NCCL(ncclCommDestroy(c));
	if (rank == 0)
		NCCL(ncclGetUniqueId(&id));
	NCCL(ncclBroadcast(&id, &id, sizeof(id), ncclUint8, 0, comm, NULL));
	c = NULL;
	NCCL(ncclGroupStart());
	NCCL(ncclCommInitRank(&c, nranks, id, rank));
	if (rank == 0)
		CHECK(ncclAllReduce(&x, &x, 1, (ncclDataType_t)77, ncclSum, c, NULL) == ncclInvalidArgument,
		      "a bad call after InitRank in the group");
	/* (Rank 0 destroys its communicator once every rank has made its own,
	 * a file each: a rank that comes to the communicator after the abort
	 * makes a new one, whose peers never come.) */
	if (rank != 0)
		zero_mark("gi", rank);
	ncclResult_t e = ncclGroupEnd(), a = ncclSuccess;
	for (int r = 1; rank == 0 && r < nranks; r++)
		zero_wait("gi", r);
	NCCL(ncclCommGetAsyncError(c, &a));
	if (rank == 0)
		CHECK(e == ncclInvalidArgument && a == ncclInvalidArgument, "rank 0: GroupEnd %d, async error %d", e, a);
	else
		CHECK(e == ncclRemoteError && a == ncclRemoteError && strstr(ncclGetLastError(NULL), "aborted"),
		      "rank %d: GroupEnd %d (%s), async error %d", rank, e, ncclGetLastError(NULL), a);
	NCCL(ncclCommDestroy(c));
}

/* Deadlocks that unid must report (simulate mode; the ranks never come
 * back): recv, every rank receives from the next first; coll, rank 0
 * calls an AllReduce while the others receive from it; cond, rank 0
 * calls an AllReduce while the others wait on a condition variable;
 * empty, as cond, the others' AllReduce of count 0 before. */
static void deadlock(ncclComm_t comm, const char *how)
{
	float x[256] = {0};
	ncclResult_t e;
	if (!strcmp(how, "recv")) {
		e = ncclRecv(x, 256, ncclFloat32, (rank + 1) % nranks, comm, NULL);
	} else if (!strcmp(how, "sends")) {
		/* Each rank sends 2 MiB to the next before it receives, outside
		 * a group: NCCL's send does not complete before its receiver
		 * takes all but the last 1 MiB (flow control). */
		size_t n = 2u << 20;
		uint8_t *b = calloc(n, 1);
		e = ncclSend(b, n, ncclUint8, (rank + 1) % nranks, comm, NULL);
		if (e == ncclSuccess)
			e = ncclRecv(b, n, ncclUint8, (rank + nranks - 1) % nranks, comm, NULL);
	} else if (rank == 0) {
		e = ncclAllReduce(x, x, 256, ncclFloat32, ncclSum, comm, NULL);
	} else if (!strcmp(how, "coll")) {
		e = ncclRecv(x, 256, ncclFloat32, 0, comm, NULL);
	} else {
		/* empty: the others' AllReduce is empty (discarded), then they
		 * wait on a condition variable */
		if (!strcmp(how, "empty"))
			NCCL(ncclAllReduce(x, x, 0, ncclFloat32, ncclSum, comm, NULL));
		pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
		pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
		pthread_mutex_lock(&m);
		for (;;)
			pthread_cond_wait(&cv, &m);
	}
	fprintf(stderr, "rank %d: came back from the deadlock (%d: %s)\n", rank, e, ncclGetLastError(comm));
	exit(1);
}

/* Empty collectives (count 0) are discarded, as NCCL does: rank 0's
 * return at once though the others call theirs half a second later (a
 * raw sleep); an AllReduce after them still meets. */
static void empty_colls(ncclComm_t comm)
{
	float x[4] = {1, 2, 3, 4};
	if (rank != 0) {
		struct timespec ts = {0, 500000000};
		syscall(SYS_nanosleep, &ts, NULL);
	}
	double t0 = real_now();
	NCCL(ncclAllReduce(NULL, NULL, 0, ncclFloat32, ncclSum, comm, NULL));
	NCCL(ncclAllGather(NULL, NULL, 0, ncclFloat32, comm, NULL));
	NCCL(ncclReduceScatter(NULL, NULL, 0, ncclFloat32, ncclSum, comm, NULL));
	NCCL(ncclAlltoAll(NULL, NULL, 0, ncclFloat32, comm, NULL));
	NCCL(ncclBroadcast(NULL, NULL, 0, ncclFloat32, 0, comm, NULL));
	NCCL(ncclReduce(NULL, NULL, 0, ncclFloat32, ncclSum, 0, comm, NULL));
	double dt = real_now() - t0;
	printf("rank %d: six empty collectives took %.3f s of real time\n", rank, dt);
	if (rank == 0)
		CHECK(dt < 0.25, "rank 0's empty collectives took %.3f s: they waited for the others", dt);
	NCCL(ncclAllReduce(x, x, 4, ncclFloat32, ncclSum, comm, NULL));
	CHECK(x[3] == 4.0f * (float)nranks, "the AllReduce after the empty ones: %g", (double)x[3]);
}

int main(int argc, char **argv)
{
	const char *r = getenv("RANK"), *w = getenv("WORLD_SIZE");
	if (!r || !w || argc < 2) {
		fprintf(stderr, "usage: RANK=r WORLD_SIZE=n NCCL_CHECK_ID=FILE %s correctness|timing SIZE|mismatch\n",
			argv[0]);
		return 2;
	}
	rank = atoi(r);
	nranks = atoi(w);
	if (!strcmp(argv[1], "deadlock") && argc > 2 && !strcmp(argv[2], "nojoin") && rank == nranks - 1) {
		/* The last rank never joins: it ends here. */
		printf("rank %d: leaves without joining\n", rank);
		return 0;
	}
	if (!strcmp(argv[1], "deadlock") && argc > 2 && !strcmp(argv[2], "slowjoin") && rank == nranks - 1) {
		/* No deadlock: the last rank works 4 s where the shim does not
		 * see it (a raw system call) before it joins; another ended. */
		struct timespec four = {4, 0};
		syscall(SYS_nanosleep, &four, NULL);
	}
	ncclComm_t comm = init_comm();
	if (!strcmp(argv[1], "correctness")) {
		correctness(comm);
	} else if (!strcmp(argv[1], "timing") && argc > 2) {
		timing(comm, (size_t)atoll(argv[2]));
	} else if (!strcmp(argv[1], "p2pbench") && argc > 3) {
		p2pbench(comm, atoi(argv[2]), (size_t)atoll(argv[3]));
	} else if (!strcmp(argv[1], "p2pgroups") && argc > 2) {
		p2pgroups(comm, (size_t)atoll(argv[2]));
	} else if (!strcmp(argv[1], "cudart") && argc > 2) {
		/* CUDA exists but no GPU: with the runtime loaded (the shim then
		 * asks it about every pointer), host buffers still work. */
		void *h = dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL);
		CHECK(h != NULL, "dlopen %s: %s", argv[2], dlerror());
		int (*count)(int *) = h ? (int (*)(int *))dlsym(h, "cudaGetDeviceCount") : NULL;
		int ndev = -1;
		int e = count ? count(&ndev) : -1;
		printf("rank %d: cudaGetDeviceCount -> %d (%d devices)\n", rank, e, ndev);
		float x[4] = {1, 2, 3, 4};
		NCCL(ncclAllReduce(x, x, 4, ncclFloat32, ncclSum, comm, NULL));
		CHECK(x[0] == nranks && x[3] == 4 * nranks, "AllReduce with libcudart loaded: %g %g", x[0], x[3]);
	} else if (!strcmp(argv[1], "allreduce") && argc > 2) {
		allreduce_sizes(comm, argc - 2, argv + 2);
	} else if (!strcmp(argv[1], "driveronly") && argc > 2) {
		/* The CUDA driver loaded without libcudart.so (a runtime linked
		 * statically): a device buffer is ncclInvalidUsage, said, not
		 * read on the host (the stand-in's faults if read); host
		 * buffers still work. */
		void *h = dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL);
		void *(*alloc)(size_t) = h ? (void *(*)(size_t))dlsym(h, "mock_cu_alloc") : NULL;
		CHECK(alloc != NULL, "dlopen %s: %s", argv[2], dlerror());
		float *d = alloc ? alloc(4096) : NULL, x[4] = {1, 2, 3, 4};
		if (d) {
			ncclResult_t e = ncclAllReduce(d, d, 16, ncclFloat32, ncclSum, comm, NULL);
			CHECK(e == ncclInvalidUsage && strstr(ncclGetLastError(comm), "no CUDA runtime library loaded"),
			      "AllReduce of a device buffer without libcudart: %d %s", e, ncclGetLastError(comm));
			e = ncclSend(d, 16, ncclFloat32, (rank + 1) % nranks, comm, NULL);
			CHECK(e == ncclInvalidUsage, "Send of a device buffer without libcudart: %d", e);
		}
		NCCL(ncclAllReduce(x, x, 4, ncclFloat32, ncclSum, comm, NULL));
		CHECK(x[0] == nranks && x[3] == 4 * nranks, "host AllReduce beside the driver: %g %g", x[0], x[3]);
	} else if (!strcmp(argv[1], "groupinit")) {
		groupinit(comm);
	} else if (!strcmp(argv[1], "initall") && argc > 2) {
		initall(atoi(argv[2]), argc > 3 ? argv[3] : NULL);
	} else if (!strcmp(argv[1], "threads") && argc > 3) {
		threads_mode(atoi(argv[2]), (size_t)atoll(argv[3]));
	} else if (!strcmp(argv[1], "shrink")) {
		shrink(comm);
	} else if (!strcmp(argv[1], "device") && argc > 2) {
		device(comm, argv[2]);
	} else if (!strcmp(argv[1], "empty")) {
		empty_colls(comm);
	} else if (!strcmp(argv[1], "pinned") && argc > 2) {
		pinned(comm, argv[2]);
	} else if (!strcmp(argv[1], "devices") && argc > 2) {
		devices(comm, argv[2]);
	} else if (!strcmp(argv[1], "stream") && argc > 2) {
		device_stream(comm, argv[2]);
	} else if (!strcmp(argv[1], "cupti") && argc > 3) {
		cupti_mode(comm, argv[2], (size_t)atoll(argv[3]));
	} else if (!strcmp(argv[1], "group2") && argc > 2) {
		group2(comm, (size_t)atoll(argv[2]));
	} else if (!strcmp(argv[1], "contend") && argc > 2) {
		contend(comm, (size_t)atoll(argv[2]));
	} else if (!strcmp(argv[1], "pytorch")) {
		pytorch(comm);
	} else if (!strcmp(argv[1], "abort")) {
		abort_peer(comm);
		if (failures)
			fprintf(stderr, "rank %d: %d of %d checks failed\n", rank, failures, checks);
		else
			printf("rank %d: %d checks passed\n", rank, checks);
		return failures ? 1 : 0;
	} else if (!strcmp(argv[1], "split")) {
		/* Colors by parity, rank 0 out (NOCOLOR) when there are 3 or
		 * more, keys reversing the order; then an AllReduce of the
		 * parent ranks inside each new communicator. */
		int color = (nranks >= 3 && rank == 0) ? NCCL_SPLIT_NOCOLOR : rank % 2;
		ncclComm_t sub = (ncclComm_t)0x1;
		NCCL(ncclCommSplit(comm, color, -rank, &sub, NULL));
		if (color == NCCL_SPLIT_NOCOLOR) {
			CHECK(sub == NULL, "NOCOLOR gives a NULL communicator");
		} else {
			int members[64], nm = 0;
			for (int q = nranks - 1; q >= 0; q--)
				if (!(nranks >= 3 && q == 0) && q % 2 == color)
					members[nm++] = q; /* key -q: highest parent rank first */
			int cnt = -1, me = -1;
			NCCL(ncclCommCount(sub, &cnt));
			NCCL(ncclCommUserRank(sub, &me));
			CHECK(cnt == nm, "split: count %d, want %d", cnt, nm);
			CHECK(me >= 0 && me < nm && members[me] == rank, "split: rank %d is %d in its color", rank, me);
			int64_t v = rank, sum = 0;
			for (int i = 0; i < nm; i++)
				sum += members[i];
			NCCL(ncclAllReduce(&v, &v, 1, ncclInt64, ncclSum, sub, NULL));
			CHECK(v == sum, "split AllReduce: %lld, want %lld", (long long)v, (long long)sum);
			NCCL(ncclCommDestroy(sub));
		}
		/* The parent goes on. */
		int64_t one = 1;
		NCCL(ncclAllReduce(&one, &one, 1, ncclInt64, ncclSum, comm, NULL));
		CHECK(one == nranks, "parent after split: %lld", (long long)one);
		/* InitRankScalable: the first two ranks each make an id (NCCL's
		 * several bootstrap roots), every rank gets both (AllGather). */
		ncclUniqueId mine, all[64];
		memset(&mine, 0, sizeof(mine));
		if (rank < 2)
			NCCL(ncclGetUniqueId(&mine));
		NCCL(ncclAllGather(&mine, all, sizeof(mine), ncclUint8, comm, NULL));
		int nid = nranks < 2 ? 1 : 2;
		ncclComm_t sc = NULL;
		CHECK(ncclCommInitRankScalable(&sc, nranks, rank, 0, all, NULL) == ncclInvalidArgument, "Scalable, 0 ids");
		ncclUniqueId junk[2] = {all[0], mine};
		memset(&junk[1], 0x5a, sizeof(junk[1]));
		CHECK(ncclCommInitRankScalable(&sc, nranks, rank, 2, junk, NULL) == ncclInvalidArgument,
		      "Scalable with an id not from ncclGetUniqueId");
		NCCL(ncclCommInitRankScalable(&sc, nranks, rank, nid, all, NULL));
		int64_t r2 = rank;
		NCCL(ncclAllReduce(&r2, &r2, 1, ncclInt64, ncclSum, sc, NULL));
		CHECK(r2 == (int64_t)nranks * (nranks - 1) / 2, "AllReduce in the Scalable comm: %lld", (long long)r2);
		NCCL(ncclCommDestroy(sc));
	} else if (!strcmp(argv[1], "p2ptwo")) {
		/* Two sends to one peer in a group, two receives from it in
		 * one: matched in order (NCCL's rule), each larger than the
		 * pair's 1 MiB ring, then many small ones. */
		for (int round = 0; round < 2; round++) {
			size_t n = round ? 4096 : (size_t)1 << 20;
			int iters = round ? 200 : 2;
			int32_t *x = malloc(n * 4), *y = malloc(n * 4);
			for (int it = 0; it < iters && rank < 2; it++) {
				if (rank == 0) {
					for (size_t i = 0; i < n; i++) {
						x[i] = (int32_t)(i + 1 + it);
						y[i] = -(int32_t)(i + 1 + it);
					}
					NCCL(ncclGroupStart());
					NCCL(ncclSend(x, n, ncclInt32, 1, comm, NULL));
					NCCL(ncclSend(y, n, ncclInt32, 1, comm, NULL));
					NCCL(ncclGroupEnd());
				} else {
					memset(x, 0, n * 4);
					memset(y, 0, n * 4);
					NCCL(ncclGroupStart());
					NCCL(ncclRecv(x, n, ncclInt32, 0, comm, NULL));
					NCCL(ncclRecv(y, n, ncclInt32, 0, comm, NULL));
					NCCL(ncclGroupEnd());
					size_t bad = 0;
					for (size_t i = 0; i < n; i++)
						bad += x[i] != (int32_t)(i + 1 + it) || y[i] != -(int32_t)(i + 1 + it);
					CHECK(bad == 0, "two receives of %zu from one peer in a group: %zu wrong", n, bad);
				}
			}
			free(x);
			free(y);
		}
	} else if (!strcmp(argv[1], "streams") && argc > 2) {
		many_streams(argv[2]);
	} else if (!strcmp(argv[1], "sticky") && argc > 2) {
		sticky(comm, argv[2]);
	} else if (!strcmp(argv[1], "abortwait")) {
		abort_wait(comm, argc > 2 ? argv[2] : NULL);
	} else if (!strcmp(argv[1], "timeoutwatch")) {
		time_out_watched(comm);
	} else if (!strcmp(argv[1], "diewatch") || !strcmp(argv[1], "dietiming")) {
		die_watched(comm, !strcmp(argv[1], "dietiming"));
	} else if (!strcmp(argv[1], "sendsync")) {
		/* Rank 0 sends 2 MiB to rank 1 and then says so through a file;
		 * rank 1 receives only once the file is there. NCCL's Send
		 * returns at once (its stream waits for the receiver): no hang
		 * (flow control). An empty Recv after it waits for the Send. */
		size_t n = 2u << 20;
		uint8_t *x = malloc(n);
		char f[600];
		snprintf(f, sizeof(f), "%s.sent", getenv("NCCL_CHECK_ID") ? getenv("NCCL_CHECK_ID") : "/tmp/nccl_check");
		CHECK(x != NULL, "out of memory");
		if (rank == 0) {
			memset(x, 7, n);
			NCCL(ncclSend(x, n, ncclUint8, 1, comm, NULL));
			FILE *fp = fopen(f, "w");
			CHECK(fp != NULL, "%s: %s", f, strerror(errno));
			if (fp)
				fclose(fp);
			NCCL(ncclRecv(x, 0, ncclUint8, 1, comm, NULL));
		} else if (rank == 1) {
			memset(x, 0, n);
			while (access(f, F_OK) != 0)
				usleep(1000);
			NCCL(ncclRecv(x, n, ncclUint8, 0, comm, NULL));
			CHECK(x[0] == 7 && x[n - 1] == 7, "received %u .. %u", x[0], x[n - 1]);
			NCCL(ncclSend(x, 0, ncclUint8, 0, comm, NULL));
			unlink(f);
		}
		free(x);
	} else if (!strcmp(argv[1], "p2pmismatch")) {
		/* Rank 0 sends 2 MiB to rank 1, which expects 4 MiB: rank 1's
		 * Recv fails before any of its timing's reads is answered (and
		 * it starts new connections), rank 0's Send does not. Then rank 0 sends 128 kB to rank 2: its operation
		 * waits for the first send's completion, a credit rank 1 will
		 * never send (flow control): unid answers it once rank 1's end
		 * closed, and the run goes on. */
		size_t n = 2u << 20;
		uint8_t *x = calloc(2 * n, 1);
		CHECK(x != NULL, "out of memory");
		if (rank == 0) {
			NCCL(ncclSend(x, n, ncclUint8, 1, comm, NULL));
			memset(x, 9, 131072);
			NCCL(ncclSend(x, 131072, ncclUint8, 2, comm, NULL));
		} else if (rank == 1) {
			ncclResult_t e = ncclRecv(x, 2 * n, ncclUint8, 0, comm, NULL);
			CHECK(e == ncclInvalidArgument, "a Recv of the wrong count gave %d", e);
		} else if (rank == 2) {
			NCCL(ncclRecv(x, 131072, ncclUint8, 0, comm, NULL));
			CHECK(x[0] == 9 && x[131071] == 9, "received %u", x[0]);
		}
		free(x);
	} else if (!strcmp(argv[1], "p2pzero")) {
		if (p2p_zero(comm))
			comm = NULL; /* (aborted) */
	} else if (!strcmp(argv[1], "sendlost")) {
		/* A message kept outside the pair's ring (4 MiB) that rank 1
		 * never receives: there once the AllReduce after the send is
		 * over, gone once rank 1 destroys its communicator. */
		size_t n = 4u << 20;
		uint8_t *x = calloc(n, 1);
		if (rank == 0)
			NCCL(ncclSend(x, n, ncclUint8, 1, comm, NULL));
		int32_t one = 1;
		NCCL(ncclAllReduce(&one, &one, 1, ncclInt32, ncclSum, comm, NULL));
		if (rank == 1) {
			int before = spills_to(1);
			NCCL(ncclCommDestroy(comm));
			comm = NULL;
			int after = spills_to(1);
			CHECK(before >= 1 && after < before, "messages kept outside the ring to rank 1: %d before "
			      "its Destroy, %d after", before, after);
		}
		free(x);
	} else if (!strcmp(argv[1], "sendexit") || !strcmp(argv[1], "sendabort")) {
		send_then_go(comm, !strcmp(argv[1], "sendabort"));
	} else if (!strcmp(argv[1], "deadlock") && argc > 2 && !strcmp(argv[2], "slowjoin")) {
		int64_t one = 1;
		NCCL(ncclAllReduce(&one, &one, 1, ncclInt64, ncclSum, comm, NULL));
		CHECK(one == nranks, "AllReduce after a slow join: %lld", (long long)one);
	} else if (!strcmp(argv[1], "deadlock") && argc > 2) {
		deadlock(comm, argv[2]);
		return 1; /* not reached: unid stops the ranks */
	} else if (!strcmp(argv[1], "rooted") && argc > 2) {
		rooted_rounds(comm, atoi(argv[2]));
	} else if (!strcmp(argv[1], "rootedmismatch")) {
		if (rooted_mismatch(comm))
			comm = NULL; /* (aborted) */
	} else if (!strcmp(argv[1], "mismatch")) {
		float x[8] = {0};
		ncclResult_t e = ncclAllReduce(x, x, rank == 0 ? 4 : 8, ncclFloat32, ncclSum, comm, NULL);
		CHECK(e == ncclInvalidArgument, "mismatched counts gave %d", e);
		CHECK(strstr(ncclGetLastError(NULL), "count") != NULL, "message: %s", ncclGetLastError(NULL));
		/* The communicator still works afterwards. */
		NCCL(ncclAllReduce(x, x, 8, ncclFloat32, ncclSum, comm, NULL));
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	if (comm) { /* (sendlost destroyed rank 1's) */
		NCCL(ncclCommFinalize(comm));
		NCCL(ncclCommDestroy(comm));
	}
	if (failures)
		fprintf(stderr, "rank %d: %d of %d checks failed\n", rank, failures, checks);
	else
		printf("rank %d: %d checks passed\n", rank, checks);
	return failures ? 1 : 0;
}
