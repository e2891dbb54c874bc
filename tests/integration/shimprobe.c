/* shimprobe: two ranks (run under unirun -n 2) that exercise every
 * interposed call on one TCP connection, with known byte counts, so the
 * test can check the trace:
 *
 *   rank 1 -> rank 0: write 100, send 200, writev 50+50, sendmsg 300,
 *     sendto 10, write 1000 on a dup, 7 on an fcntl(F_DUPFD_CLOEXEC) copy,
 *     5 on a dup2 copy = 1722 bytes as the rank; then a forked child writes
 *     64 bytes on the inherited socket (the child is not a rank: the trace
 *     must not count them as rank 1's).
 *   rank 0 reads 1786 bytes with recv(MSG_PEEK) first (not counted), then
 *     read, recv, readv, recvmsg, recvfrom and __recv_chk in turn; then
 *     sends one byte back, which rank 1 reads with read.
 *
 *   shimprobe DIR      (rank 0 publishes its port in DIR/port) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);

#define RANK_BYTES 1722
#define CHILD_BYTES 64

static void die(const char *what)
{
	fprintf(stderr, "shimprobe: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void put(int fd, const char *buf, size_t n, const char *how)
{
	ssize_t r = write(fd, buf, n);
	if (r != (ssize_t)n)
		die(how);
}

static int rank0(const char *dir)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		die("listen");
	char tmp[512], fin[512];
	snprintf(tmp, sizeof(tmp), "%s/port.tmp", dir);
	snprintf(fin, sizeof(fin), "%s/port", dir);
	FILE *f = fopen(tmp, "w");
	if (!f)
		die("port file");
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	rename(tmp, fin);
	int s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	close(l);
	char buf[4096];
	if (recv(s, buf, 10, MSG_PEEK) <= 0)
		die("peek");
	size_t got = 0;
	int step = 0;
	while (got < RANK_BYTES + CHILD_BYTES) {
		size_t want = RANK_BYTES + CHILD_BYTES - got;
		if (want > 97)
			want = 97; /* many small reads: every call kind gets used */
		ssize_t r;
		struct iovec iov[2] = {{buf, want / 2}, {buf + want / 2, want - want / 2}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
		switch (step++ % 6) {
		case 0: r = read(s, buf, want); break;
		case 1: r = recv(s, buf, want, 0); break;
		case 2: r = readv(s, iov, 2); break;
		case 3: r = recvmsg(s, &m, 0); break;
		case 4: r = recvfrom(s, buf, want, 0, NULL, NULL); break;
		default: r = __recv_chk(s, buf, want, sizeof(buf), 0); break;
		}
		if (r <= 0)
			die("read");
		got += (size_t)r;
	}
	put(s, "k", 1, "ack");
	/* Untracked fds: must not appear in the trace. */
	int null = open("/dev/null", O_WRONLY);
	put(null, buf, 100, "devnull");
	close(null);
	close(s);
	printf("rank 0 read %zu bytes\n", got);
	return 0;
}

static int rank1(const char *dir)
{
	char fin[512];
	snprintf(fin, sizeof(fin), "%s/port", dir);
	int port = 0;
	for (int i = 0; i < 3000 && !port; i++) {
		FILE *f = fopen(fin, "r");
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (!port)
			usleep(10000);
	}
	if (!port)
		die("no port from rank 0");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	char buf[1000];
	memset(buf, 'x', sizeof(buf));
	put(s, buf, 100, "write");
	if (send(s, buf, 200, 0) != 200)
		die("send");
	struct iovec iov[2] = {{buf, 50}, {buf, 50}};
	if (writev(s, iov, 2) != 100)
		die("writev");
	struct iovec one = {buf, 300};
	struct msghdr m = {.msg_iov = &one, .msg_iovlen = 1};
	if (sendmsg(s, &m, 0) != 300)
		die("sendmsg");
	if (sendto(s, buf, 10, 0, NULL, 0) != 10)
		die("sendto");
	int d = dup(s);
	put(d, buf, 1000, "write on dup");
	close(d); /* the connection stays open: s still refers to it */
	int e = fcntl(s, F_DUPFD_CLOEXEC, 100);
	put(e, buf, 7, "write on fcntl dup");
	close(e);
	if (dup2(s, 50) != 50)
		die("dup2");
	put(50, buf, 5, "write on dup2");
	close(50);
	pid_t c = fork();
	if (c == 0) {
		put(s, buf, CHILD_BYTES, "child write");
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("child");
	if (read(s, buf, 1) != 1)
		die("ack");
	close(s);
	printf("rank 1 wrote %d bytes, its child %d\n", RANK_BYTES, CHILD_BYTES);
	return 0;
}

int main(int argc, char **argv)
{
	const char *r = getenv("RANK");
	if (argc != 2 || !r) {
		fprintf(stderr, "usage: RANK=0|1 shimprobe DIR\n");
		return 64;
	}
	return atoi(r) == 0 ? rank0(argv[1]) : rank1(argv[1]);
}
