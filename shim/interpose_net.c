/* Interposed socket and fd calls. Each wrapper is a few lines: forward to
 * the real function, and tell the core (shim.c) only about fds the fd table
 * tracks. The fast path for an untracked fd is one bounds check, one load
 * and the real call. */
/* fcntl.h under _FILE_OFFSET_BITS=64 may redirect fcntl to fcntl64: we
 * define both names ourselves, so take the plain declarations. */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

#define ENSURE(fn)                              \
	do {                                    \
		if (UNI_UNLIKELY(!uni_real.fn)) \
			uni_shim_ensure_init(); \
	} while (0)

/* A blocking accept, or a blocking read on a connection to the
 * rendezvous store, is a wait for I/O (simulate mode): whoever connects
 * carries a later time (uni_shim_conn_new: the accepting thread takes the
 * connecting end's clock), and the store's answer none (the store is not
 * modelled), so the horizon leaves the thread out instead of waiting 250
 * ms to find it blocked outside the shim (at 32 ranks, each blocked in a
 * store get in turn, that was 8 s of a run with the host idle). */
static int io_wait_begin(int fd)
{
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return 0;
	int fl = uni_real.fcntl(fd, F_GETFL);
	return fl >= 0 && !(fl & O_NONBLOCK) && uni_shim_poll_enter(-1);
}

static void io_wait_end(int began)
{
	if (began) {
		int e = errno;
		uni_shim_epoll_exit();
		errno = e;
	}
}

/* Runs CALL; if fd is tracked, reports the bytes it moved, found in the
 * iovec list IOV of CNT entries (a read on a store connection: a wait for
 * I/O, above). */
#define IO_WRAP(fn, is_send, fd, call, IOV, CNT)                          \
	do {                                                              \
		ENSURE(fn);                                               \
		uint32_t s_ = uni_fd_get(fd);                             \
		if (UNI_LIKELY(!s_) || uni_shim_in_shim()) {              \
			if (UNI_LIKELY(!atomic_load_explicit(              \
				&uni_shim_nstore, memory_order_relaxed)) || \
			    !uni_shim_store_fd(fd))                        \
				return call;                              \
			if (is_send) { /* (a store outside: in turn) */    \
				uni_shim_det_ext_write(fd, 0);             \
				ssize_t ws_ = call;                       \
				int we_ = errno;                          \
				uni_shim_det_ext_write(fd, 1);             \
				errno = we_;                              \
				return ws_;                               \
			}                                                 \
			int dx_ = uni_shim_det_ext_read(fd);              \
			if (dx_ < 0)                                      \
				return -1;                                \
			if (dx_ > 0)                                      \
				return call;                              \
			int sw_ = io_wait_begin(fd); /* the store */       \
			ssize_t rs_ = call;                               \
			io_wait_end(sw_);                                  \
			return rs_;                                       \
		}                                                         \
		if (s_ & UNI_FD_CHAN) { /* a pipe or eventfd (chan.c) */  \
			/* A write's time goes in before its bytes: a reader \
			 * woken by them finds it. */                     \
			struct uni_chan_w cw_;                             \
			if (is_send)                                      \
				uni_chan_write_begin(&cw_, s_, IOV, CNT);  \
			int b_ = (is_send) ? 0 : uni_chan_wait_begin(s_, fd); \
			ssize_t r_ = call;                                \
			int e_ = errno;                                   \
			uni_chan_wait_end(b_);                            \
			if (is_send)                                      \
				uni_chan_write_end(&cw_, r_);              \
			else                                              \
				uni_chan_read(s_, r_);                            \
			errno = e_;                                       \
			return r_;                                        \
		}                                                         \
		uint64_t t0_ = uni_shim_io_begin(s_);                     \
		if (!(is_send))                                           \
			uni_shim_read_begin(s_, fd);                      \
		ssize_t r_ = call;                                        \
		int e_ = errno;                                           \
		uni_shim_io_end(s_, is_send, IOV, CNT, r_, t0_);          \
		errno = e_;                                               \
		return r_;                                                \
	} while (0)

/* Deterministic mode: a write that must not block takes what the turn's
 * socket buffer has room for (shim.c, uni_shim_det_room): -1: all of it
 * (or the turn does not apply), 0: none (EAGAIN), else the first part's
 * entries in part (at most 64). */
static inline int det_part_of(uint32_t w, int fd, int flags, const struct iovec *iov, int cnt, struct iovec *part)
{
	if (UNI_LIKELY(!uni_shim_sync_on))
		return -1;
	size_t room = uni_shim_det_room(w, fd, flags), tot = 0;
	if (UNI_LIKELY(room == SIZE_MAX))
		return -1;
	for (int i = 0; i < cnt; i++)
		tot += iov[i].iov_len;
	if (room >= tot)
		return -1;
	if (!room)
		return 0;
	int n = uni_iov_prefix(iov, cnt, room, part);
	return n ? n : -1;
}

/* A write: a blocking one on a modelled connection in simulate mode is
 * done by the shim (uni_shim_send_blocking), else as IO_WRAP. */
#define SEND_WRAP(fn, fd, flags, call, IOV, CNT)                                    \
	do {                                                                        \
		ENSURE(fn);                                                         \
		uint32_t w_ = uni_fd_get(fd);                                       \
		ssize_t wr_;                                                        \
		if (UNI_UNLIKELY(w_) && !(w_ & UNI_FD_CHAN)) {                      \
			if (uni_shim_send_blocking(w_, fd, flags, IOV, CNT, &wr_))  \
				return wr_;                                         \
			struct iovec p_[64];                                        \
			int np_ = det_part_of(w_, fd, flags, IOV, CNT, p_);         \
			if (UNI_UNLIKELY(np_ == 0)) {                               \
				errno = EAGAIN;                                     \
				return -1;                                          \
			}                                                           \
			if (UNI_UNLIKELY(np_ > 0)) {                                \
				struct msghdr m_ = {.msg_iov = p_, .msg_iovlen = (size_t)np_}; \
				IO_WRAP(fn, 1, fd, uni_real.sendmsg(fd, &m_, (flags) | MSG_DONTWAIT), p_, np_); \
			}                                                           \
		}                                                                   \
		IO_WRAP(fn, 1, fd, call, IOV, CNT);                                 \
	} while (0)

#define SEND_WRAP1(fn, fd, flags, call, BUF, LEN)                         \
	do {                                                              \
		struct iovec one_ = {(void *)(BUF), (LEN)};               \
		SEND_WRAP(fn, fd, flags, call, &one_, 1);                 \
	} while (0)

/* The same for a contiguous buffer. */
#define IO_WRAP1(fn, is_send, fd, call, BUF, LEN)                         \
	do {                                                              \
		struct iovec one_ = {(void *)(BUF), (LEN)};               \
		IO_WRAP(fn, is_send, fd, call, &one_, 1);                 \
	} while (0)

/* Fortified entry points: declared by glibc only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *a,
		       socklen_t *al);

static inline int is_inet(const struct sockaddr *a)
{
	return a && (a->sa_family == AF_INET || a->sa_family == AF_INET6);
}

UNI_EXTERN int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	ENSURE(connect);
	if (UNI_UNLIKELY(uni_shim_sync_on) && is_inet(addr) && !uni_shim_in_shim())
		uni_shim_connect_hold(addr, len);
	int r = uni_real.connect(fd, addr, len);
	if ((r == 0 || errno == EINPROGRESS) && is_inet(addr) && !uni_shim_in_shim())
		uni_shim_conn_new(fd, addr, len);
	return r;
}

/* Deterministic mode: port 0 is given a port of the turn's (shim.c). */
UNI_EXTERN int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	ENSURE(bind);
	int r;
	if (UNI_UNLIKELY(uni_shim_sync_on) && is_inet(addr) && !uni_shim_in_shim() &&
	    uni_shim_det_bind(fd, addr, len, &r))
		return r;
	return uni_real.bind(fd, addr, len);
}

UNI_EXTERN int listen(int fd, int backlog)
{
	ENSURE(listen);
	if (UNI_LIKELY(!uni_shim_sync_on) || uni_shim_in_shim())
		return uni_real.listen(fd, backlog);
	/* Registered first: a connector that finds it listening in the
	 * kernel finds when it began in the session. */
	int pre = uni_shim_listening(fd, 1);
	int r = uni_real.listen(fd, backlog);
	int e = errno;
	if (r != 0 && e == EADDRINUSE && uni_shim_det_relisten(fd, backlog) == 0) {
		/* (Listening now on another port: registered again.) */
		if (pre)
			uni_shim_listen_closed(fd);
		pre = 0;
		r = 0;
		e = errno;
	}
	if (r == 0 && !pre)
		uni_shim_listening(fd, 0);
	else if (r != 0 && pre)
		uni_shim_listen_closed(fd);
	errno = e;
	return r;
}

UNI_EXTERN int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	ENSURE(accept);
	int w = UNI_UNLIKELY(uni_shim_sync_on) && uni_shim_det_accept(fd) ? 0 : io_wait_begin(fd);
	int r = uni_real.accept(fd, addr, len);
	io_wait_end(w);
	if (r >= 0 && !uni_shim_in_shim())
		uni_shim_conn_new(r, NULL, 0);
	return r;
}

UNI_EXTERN int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	ENSURE(accept4);
	int w = UNI_UNLIKELY(uni_shim_sync_on) && uni_shim_det_accept(fd) ? 0 : io_wait_begin(fd);
	int r = uni_real.accept4(fd, addr, len, flags);
	io_wait_end(w);
	if (r >= 0 && !uni_shim_in_shim())
		uni_shim_conn_new(r, NULL, 0);
	return r;
}

UNI_EXTERN int shutdown(int fd, int how)
{
	ENSURE(shutdown);
	int r = uni_real.shutdown(fd, how);
	if (r == 0 && how != SHUT_RD && UNI_UNLIKELY(uni_fd_get(fd)) && !uni_shim_in_shim()) {
		int e = errno;
		uni_shim_det_shutdown(fd);
		errno = e;
	}
	return r;
}

UNI_EXTERN int close(int fd)
{
	ENSURE(close);
	/* Forget fd before the kernel can hand its number to another thread. */
	if (UNI_UNLIKELY(uni_fd_get(fd)) && !uni_shim_in_shim())
		uni_shim_fd_closed(fd);
	if (UNI_UNLIKELY(atomic_load_explicit(&uni_shim_nlisten, memory_order_relaxed)))
		uni_shim_listen_closed(fd);
	if (UNI_UNLIKELY(atomic_load_explicit(&uni_shim_nstore, memory_order_relaxed)))
		uni_shim_store_mark(fd, 0);
	if (UNI_UNLIKELY(atomic_load_explicit(&uni_shim_nep, memory_order_relaxed)))
		uni_shim_det_epoll_closed(fd);
	return uni_real.close(fd);
}

/* newfd is now what oldfd is: a connection to the rendezvous store, or
 * not (a store connection's number reused by dup2 is not one any more). */
static inline void store_duped(int oldfd, int newfd)
{
	if (UNI_UNLIKELY(atomic_load_explicit(&uni_shim_nstore, memory_order_relaxed)) && oldfd != newfd)
		uni_shim_store_dup(oldfd, newfd);
}

UNI_EXTERN int dup(int oldfd)
{
	ENSURE(dup);
	int r = uni_real.dup(oldfd);
	if (r >= 0 && uni_fd_get(oldfd))
		uni_shim_fd_duped(oldfd, r);
	if (r >= 0)
		store_duped(oldfd, r);
	return r;
}

UNI_EXTERN int dup2(int oldfd, int newfd)
{
	ENSURE(dup2);
	int r = uni_real.dup2(oldfd, newfd);
	if (r >= 0 && (uni_fd_get(oldfd) || uni_fd_get(newfd)))
		uni_shim_fd_duped(oldfd, newfd);
	if (r >= 0)
		store_duped(oldfd, newfd);
	return r;
}

UNI_EXTERN int dup3(int oldfd, int newfd, int flags)
{
	ENSURE(dup3);
	int r = uni_real.dup3(oldfd, newfd, flags);
	if (r >= 0 && (uni_fd_get(oldfd) || uni_fd_get(newfd)))
		uni_shim_fd_duped(oldfd, newfd);
	if (r >= 0)
		store_duped(oldfd, newfd);
	return r;
}

/* fcntl's third argument is an int or a pointer; both travel in one
 * 64-bit register on x86_64/aarch64, so forwarding it as void * is exact. */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	int r = real(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && uni_fd_get(fd))
		uni_shim_fd_duped(fd, r);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		store_duped(fd, r);
	if (r >= 0 && cmd == F_SETFL && UNI_UNLIKELY(uni_fd_get(fd)))
		uni_shim_fd_flags_changed(fd);
	return r;
}

/* ioctl(FIONBIO) sets O_NONBLOCK (Python's setblocking and settimeout
 * do it this way). The argument is forwarded as fcntl's is. */
UNI_EXTERN int ioctl(int fd, unsigned long req, ...)
{
	ENSURE(ioctl);
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int r = uni_real.ioctl(fd, req, arg);
	if (r >= 0 && req == FIONBIO && UNI_UNLIKELY(uni_fd_get(fd)))
		uni_shim_fd_flags_changed(fd);
	return r;
}

UNI_EXTERN int fcntl(int fd, int cmd, ...)
{
	ENSURE(fcntl);
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(uni_real.fcntl, fd, cmd, arg);
}

UNI_EXTERN int fcntl64(int fd, int cmd, ...)
{
	ENSURE(fcntl64);
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(uni_real.fcntl64, fd, cmd, arg);
}

/* Reads --------------------------------------------------------------- */

/* nic: an event loop reads only bytes whose arrival is final, and gets
 * EAGAIN when there are none (shim.c, uni_shim_read_clamp). */
#define CLAMP(fd, n, flags)                                                              \
	do {                                                                             \
		if (UNI_UNLIKELY(uni_shim_clamp_on)) {                                   \
			uint32_t c_ = uni_fd_get(fd);                                    \
			if (c_ && !(c_ & UNI_FD_CHAN) && !uni_shim_in_shim()) {          \
				ssize_t m_ = uni_shim_read_clamp(c_, fd, n, flags);      \
				if (m_ < 0) {                                            \
					errno = EAGAIN;                                  \
					return -1;                                       \
				}                                                        \
				n = (size_t)m_;                                          \
			}                                                                \
		}                                                                        \
	} while (0)

/* A read with MSG_DONTWAIT of a socket the shim marks as the store's and
 * does not model: the kernel's answer at once (IO_WRAP's wait for a store
 * outside the session to answer, in turn, is for reads that may block: a
 * blocking socket read with MSG_DONTWAIT held the turn up to 50 ms). */
static inline int store_nowait(int fd, int flags)
{
	return (flags & MSG_DONTWAIT) && UNI_UNLIKELY(atomic_load_explicit(&uni_shim_nstore, memory_order_relaxed)) &&
	       !uni_fd_get(fd) && uni_shim_store_fd(fd);
}

static inline ssize_t do_read(int fd, void *buf, size_t n)
{
	CLAMP(fd, n, 0);
	IO_WRAP1(read, 0, fd, uni_real.read(fd, buf, n), buf, n);
}

static inline ssize_t do_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a,
				  socklen_t *al)
{
	/* MSG_PEEK leaves the bytes in the socket: they are reported when read. */
	if ((flags & MSG_PEEK) || store_nowait(fd, flags)) {
		ENSURE(recvfrom);
		return uni_real.recvfrom(fd, buf, n, flags, a, al);
	}
	CLAMP(fd, n, flags);
	IO_WRAP1(recvfrom, 0, fd, uni_real.recvfrom(fd, buf, n, flags, a, al), buf, n);
}

static inline ssize_t do_recv(int fd, void *buf, size_t n, int flags)
{
	if ((flags & MSG_PEEK) || store_nowait(fd, flags)) {
		ENSURE(recv);
		return uni_real.recv(fd, buf, n, flags);
	}
	CLAMP(fd, n, flags);
	IO_WRAP1(recv, 0, fd, uni_real.recv(fd, buf, n, flags), buf, n);
}

UNI_EXTERN ssize_t read(int fd, void *buf, size_t n)
{
	return do_read(fd, buf, n);
}

/* The clamp (CLAMP) over an iovec list: -1: EAGAIN; 0: the list as it
 * is; k: the first clamped bytes' k entries in part (lists of up to 64). */
static inline int clamp_iov(int fd, const struct iovec *iov, int cnt, int flags, struct iovec *part)
{
	if (UNI_LIKELY(!uni_shim_clamp_on) || cnt <= 0 || cnt > 64)
		return 0;
	uint32_t c = uni_fd_get(fd);
	if (!c || (c & UNI_FD_CHAN) || uni_shim_in_shim())
		return 0;
	size_t n = 0;
	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	ssize_t m = uni_shim_read_clamp(c, fd, n, flags);
	if (m < 0)
		return -1;
	if (m == 0 || (size_t)m >= n)
		return 0;
	return uni_iov_prefix(iov, cnt, (size_t)m, part);
}

UNI_EXTERN ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ENSURE(readv);
	struct iovec part[64];
	int k = clamp_iov(fd, iov, cnt, 0, part);
	if (UNI_UNLIKELY(k < 0)) {
		errno = EAGAIN;
		return -1;
	}
	if (UNI_UNLIKELY(k > 0))
		IO_WRAP(readv, 0, fd, uni_real.readv(fd, part, k), part, k);
	IO_WRAP(readv, 0, fd, uni_real.readv(fd, iov, cnt), iov, cnt);
}

UNI_EXTERN ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return do_recv(fd, buf, n, flags);
}

UNI_EXTERN ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *al)
{
	return do_recvfrom(fd, buf, n, flags, a, al);
}

static ssize_t do_recvmsg_part(int fd, struct msghdr *m, int flags, struct iovec *part, int k)
{
	IO_WRAP(recvmsg, 0, fd, uni_real.recvmsg(fd, m, flags), part, k);
}

UNI_EXTERN ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if ((flags & MSG_PEEK) || store_nowait(fd, flags)) {
		ENSURE(recvmsg);
		return uni_real.recvmsg(fd, msg, flags);
	}
	ENSURE(recvmsg);
	struct iovec part[64];
	int k = clamp_iov(fd, msg->msg_iov, (int)msg->msg_iovlen, flags, part);
	if (UNI_UNLIKELY(k < 0)) {
		errno = EAGAIN;
		return -1;
	}
	if (UNI_UNLIKELY(k > 0)) {
		/* The same message with the clamped list; what the kernel
		 * writes back goes to the caller's. */
		struct msghdr m = *msg;
		m.msg_iov = part;
		m.msg_iovlen = (size_t)k;
		ssize_t r = do_recvmsg_part(fd, &m, flags, part, k);
		msg->msg_namelen = m.msg_namelen;
		msg->msg_controllen = m.msg_controllen;
		msg->msg_flags = m.msg_flags;
		return r;
	}
	IO_WRAP(recvmsg, 0, fd, uni_real.recvmsg(fd, msg, flags), msg->msg_iov, (int)msg->msg_iovlen);
}

/* Fortified variants: libc's __recv_chk jumps straight to the internal
 * recv, so a recv wrapper alone never sees them. On overflow the real _chk
 * keeps its abort. */
UNI_EXTERN ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ENSURE(read_chk);
	if (n > buflen)
		return uni_real.read_chk(fd, buf, n, buflen);
	return do_read(fd, buf, n);
}

UNI_EXTERN ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	ENSURE(recv_chk);
	if (n > buflen)
		return uni_real.recv_chk(fd, buf, n, buflen, flags);
	return do_recv(fd, buf, n, flags);
}

UNI_EXTERN ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				  struct sockaddr *a, socklen_t *al)
{
	ENSURE(recvfrom_chk);
	if (n > buflen)
		return uni_real.recvfrom_chk(fd, buf, n, buflen, flags, a, al);
	return do_recvfrom(fd, buf, n, flags, a, al);
}

/* Writes -------------------------------------------------------------- */

UNI_EXTERN ssize_t write(int fd, const void *buf, size_t n)
{
	SEND_WRAP1(write, fd, 0, uni_real.write(fd, buf, n), buf, n);
}

UNI_EXTERN ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	SEND_WRAP(writev, fd, 0, uni_real.writev(fd, iov, cnt), iov, cnt);
}

/* Deterministic mode: MSG_MORE held a write's bytes in the writer's kernel
 * (until its next write, or 200 ms) while its reader waited in turn for
 * them (the store's client and daemon use it); on a followed connection
 * it is dropped (segmenting only: the bytes are the same). */
#define NO_MORE(fd, flags)                                                        \
	do {                                                                      \
		if (UNI_UNLIKELY((flags) & MSG_MORE) && UNI_UNLIKELY(uni_shim_sync_on) && \
		    uni_shim_det_nomore(fd))                                      \
			(flags) &= ~MSG_MORE;                                     \
	} while (0)

UNI_EXTERN ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	NO_MORE(fd, flags);
	SEND_WRAP1(send, fd, flags, uni_real.send(fd, buf, n, flags), buf, n);
}

UNI_EXTERN ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
			  socklen_t al)
{
	NO_MORE(fd, flags);
	SEND_WRAP1(sendto, fd, flags, uni_real.sendto(fd, buf, n, flags, a, al), buf, n);
}

UNI_EXTERN ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	NO_MORE(fd, flags);
	/* Control data goes to the kernel as it is (the shim's parts would
	 * drop it). */
	if (msg->msg_controllen)
		IO_WRAP(sendmsg, 1, fd, uni_real.sendmsg(fd, msg, flags), msg->msg_iov, (int)msg->msg_iovlen);
	SEND_WRAP(sendmsg, fd, flags, uni_real.sendmsg(fd, msg, flags), msg->msg_iov, (int)msg->msg_iovlen);
}
