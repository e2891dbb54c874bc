/* Opening the session segment, and the process-shared futex helpers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uni/common.h"
#include "uni/shm.h"

int uni_futex_wait(_Atomic uint32_t *word, uint32_t expect, uint32_t timeout_ms)
{
	int saved = errno;
	struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
	/* Shared (not FUTEX_PRIVATE): the word lives in memory mapped by
	 * several processes. */
	long r = syscall(SYS_futex, word, FUTEX_WAIT, expect, &ts, NULL, 0);
	int rc = (r == -1 && errno == ETIMEDOUT) ? -ETIMEDOUT : 0;
	errno = saved;
	return rc;
}

void uni_fuzz(void)
{
	static _Atomic int max_us = -1;
	static __thread uint64_t s;
	int m = atomic_load_explicit(&max_us, memory_order_relaxed);
	if (UNI_LIKELY(m == 0))
		return;
	int saved = errno;
	if (m < 0) {
		const char *e = getenv("UNI_DET_FUZZ");
		m = e ? atoi(e) : 0;
		atomic_store(&max_us, m > 0 ? m : 0);
		if (m <= 0) {
			errno = saved;
			return;
		}
	}
	uint32_t w = 0;
	if (!s) /* (no clock read: inside the shim that is the program's) */
		s = ((uint64_t)syscall(SYS_gettid) * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)&w ^ 1;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	if (s & 3) {
		errno = saved;
		return; /* (one call in four) */
	}
	uint64_t ns = (s >> 8) % ((uint64_t)m * 1000 + 1);
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
	syscall(SYS_futex, &w, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
	errno = saved;
}

void uni_futex_wake(_Atomic uint32_t *word, int n)
{
	int saved = errno;
	syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
	errno = saved;
}

char uni_proc_stat(const char *stat_path, uint64_t *cpu_ticks)
{
	int saved = errno;
	char buf[512], st = 0;
	if (cpu_ticks)
		*cpu_ticks = 0;
	int fd = open(stat_path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			/* "pid (comm) S ...": the state follows the last ')'
			 * (comm may itself contain parentheses); utime and
			 * stime are the 14th and 15th fields. */
			char *rp = strrchr(buf, ')');
			if (rp && rp[1] == ' ') {
				st = rp[2];
				char *q = rp + 2;
				for (int field = 3; field < 14 && q; field++) {
					q = strchr(q, ' ');
					if (q)
						q++;
				}
				if (q && cpu_ticks) {
					char *e;
					uint64_t ut = strtoull(q, &e, 10);
					*cpu_ticks = ut + strtoull(e, NULL, 10);
				}
			}
		}
	}
	errno = saved;
	return st;
}

char uni_proc_state(const char *stat_path)
{
	return uni_proc_stat(stat_path, NULL);
}

int uni_pid_dead(int pid)
{
	int saved = errno;
	int dead = pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH);
	if (!dead) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		char st = uni_proc_state(path);
		dead = st == 'Z' || st == 'X' || (st == 0 && access(path, F_OK) < 0 && errno == ENOENT);
	}
	errno = saved;
	return dead;
}

void uni_shm_name(const char *session, char *buf, size_t len)
{
	snprintf(buf, len, "/uni.%s", session);
}

void uni_lock_path(const char *session, char *buf, size_t len)
{
	snprintf(buf, len, "/dev/shm/uni.%s.lock", session);
}

void uni_nccl_spill_name(const char *seg, int from, int to, uint64_t n, char *out, size_t len)
{
	snprintf(out, len, "%s-%d-%d-%llu", seg, from, to, (unsigned long long)n);
}

size_t uni_nccl_spills_remove(const char *seg, int to)
{
	DIR *d = opendir("/dev/shm");
	if (!d)
		return 0;
	size_t k = strlen(seg + 1), removed = 0; /* (names in /dev/shm lack the '/') */
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int from, dst;
		unsigned long long n;
		if (strncmp(e->d_name, seg + 1, k) || e->d_name[k] != '-' ||
		    sscanf(e->d_name + k, "-%d-%d-%llu", &from, &dst, &n) != 3 || (to >= 0 && dst != to))
			continue;
		char name[300];
		snprintf(name, sizeof(name), "/%s", e->d_name);
		removed += shm_unlink(name) == 0;
	}
	closedir(d);
	return removed;
}

struct uni_shm_hdr *uni_shm_open(const char *session, char *err, size_t errlen)
{
	int saved = errno;
	char name[96];
	struct uni_shm_hdr *h = NULL;
	struct stat st;
	uni_shm_name(session, name, sizeof(name));
	int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "no session '%s' (no segment /dev/shm%s: %s)", session, name,
			 strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct uni_shm_hdr)) {
		snprintf(err, errlen, "session '%s': segment /dev/shm%s is too small (%lld bytes)", session,
			 name, (long long)st.st_size);
		goto out_close;
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "session '%s': cannot map /dev/shm%s: %s", session, name,
			 strerror(errno));
		goto out_close;
	}
	h = p;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != UNI_SHM_MAGIC || h->version != UNI_SHM_VERSION ||
	    h->total_size != (uint64_t)st.st_size) {
		if (h->magic != UNI_SHM_MAGIC)
			snprintf(err, errlen, "session '%s': /dev/shm%s is not a uniference segment", session, name);
		else if (h->version != UNI_SHM_VERSION)
			snprintf(err, errlen,
				 "session '%s': segment version %u, this build speaks version %u (mixed installs?)",
				 session, h->version, UNI_SHM_VERSION);
		else
			snprintf(err, errlen, "session '%s': segment size %lld differs from its header (%llu)",
				 session, (long long)st.st_size, (unsigned long long)h->total_size);
		munmap(p, (size_t)st.st_size);
		h = NULL;
	}
out_close:
	close(fd);
out:
	errno = saved;
	return h;
}

void uni_shm_close(struct uni_shm_hdr *h)
{
	if (h)
		munmap(h, h->total_size);
}
