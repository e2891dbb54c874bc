/* What a modelled write and a modelled read cost in real time (docs/benchmarks.md).
 *
 * Two ranks (unirun -n 2, or RANK=0/1 by hand) joined by one TCP connection:
 * rank 1 writes N messages of 64 bytes in a burst on its socket made
 * non-blocking (as Gloo's are), timing each write; rank 0
 * waits until they are all in its socket, then reads them one at a time,
 * timing each read (under simulate mode a read finds the arrival of its
 * bytes in the schedule unid published, or asks unid and waits until it is
 * final), and answers one byte; then rank 1 writes N more with its socket
 * blocking (in simulate mode the shim writes those itself and the writer
 * takes the write's completion), timing each. Prints the median and 90th
 * percentile of each. Run with UNI_VIRTUAL_CLOCK=0 so that the program's
 * clock is the real one.
 *
 *   modelled_io DIR [N]      (rank 0 publishes its port in DIR/port) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("%s: median %.0f ns, p90 %.0f ns (%d calls)\n", what, t[n / 2], t[n * 9 / 10], n);
}

int main(int argc, char **argv)
{
	const char *r = getenv("RANK");
	if (argc < 2 || !r) {
		fprintf(stderr, "usage: RANK=0|1 modelled_io DIR [N]\n");
		return 64;
	}
	int n = argc > 2 ? atoi(argv[2]) : 1000, rank = atoi(r);
	char port_file[512], tmp[512];
	snprintf(port_file, sizeof(port_file), "%s/port", argv[1]);
	snprintf(tmp, sizeof(tmp), "%s/port.tmp", argv[1]);
	double *t = calloc((size_t)n, sizeof(double));
	char buf[64];
	memset(buf, 'x', sizeof(buf));
	int one = 1;
	if (rank == 0) {
		int l = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t al = sizeof(a);
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
		    getsockname(l, (struct sockaddr *)&a, &al))
			return perror("listen"), 1;
		FILE *f = fopen(tmp, "w");
		fprintf(f, "%d\n", ntohs(a.sin_port));
		fclose(f);
		rename(tmp, port_file);
		int s = accept(l, NULL, NULL);
		/* Wait until the whole burst is in the socket (or as much of it
		 * as the receive buffer holds: then read only that much). */
		int avail = 0, last = -1, still = 0;
		while (avail < n * 64 && still < 200) {
			ioctl(s, FIONREAD, &avail);
			still = avail == last ? still + 1 : 0;
			last = avail;
			usleep(1000);
		}
		int fits = avail / 64 < n ? avail / 64 : n;
		for (int i = 0; i < fits; i++) {
			double t0 = now_ns();
			if (read(s, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				return perror("read"), 1;
			t[i] = now_ns() - t0;
		}
		report("read of 64 B already in the socket", t, fits);
		if (write(s, "k", 1) != 1)
			return perror("write"), 1;
		while (read(s, buf, sizeof(buf)) > 0)
			;
		close(s);
	} else {
		int port = 0;
		for (int i = 0; i < 3000 && !port; i++) {
			FILE *f = fopen(port_file, "r");
			if (f) {
				if (fscanf(f, "%d", &port) != 1)
					port = 0;
				fclose(f);
			}
			if (!port)
				usleep(10000);
		}
		int s = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (connect(s, (struct sockaddr *)&a, sizeof(a)))
			return perror("connect"), 1;
		int fl = fcntl(s, F_GETFL);
		for (int blocking = 0; blocking < 2; blocking++) {
			fcntl(s, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
			/* The second burst once the reader has read the first (its
			 * chunks must still be in the published schedule). */
			char k;
			if (blocking && read(s, &k, 1) != 1)
				return perror("read"), 1;
			for (int i = 0; i < n; i++) {
				double t0 = now_ns();
				ssize_t w;
				while ((w = write(s, buf, sizeof(buf))) < 0 && errno == EAGAIN)
					t0 = now_ns(); /* the socket was full: time the write that goes */
				if (w != (ssize_t)sizeof(buf))
					return perror("write"), 1;
				t[i] = now_ns() - t0;
			}
			report(blocking ? "write of 64 B, blocking socket" : "write of 64 B, non-blocking socket", t, n);
		}
		sleep(1);
		close(s);
	}
	return 0;
}
