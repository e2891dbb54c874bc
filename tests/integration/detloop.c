/* Gloo's pair teardown against its event loop, in deterministic mode
 * (test_sim_det.sh). Gloo's loop thread (transport/tcp/loop.cc) wakes the
 * threads waiting for a tick, waits in epoll_wait (10 ms), and for each
 * event calls the pair's handleEvents, which only *tries* the pair's
 * mutex and skips the event when it is busy (pair.cc: "to avoid
 * deadlocks"). A pair's teardown holds that mutex while it takes its fd
 * out of the loop (unregisterDescriptor: epoll_ctl DEL, then a wait for
 * the loop's next tick). Here, as in destroy_process_group when a peer
 * closed its end meanwhile, the fd becomes readable after the pair's
 * mutex is taken and before its fd is taken out: the loop finds the
 * mutex busy while the teardown waits for the loop. The turn made that
 * trylock wait for the unlock, and the two waited for each other for
 * ever (a run of the main job hung in CI).
 *
 * Virtual times, from each thread's CPU: main takes the pair's mutex at
 * 10 ms and takes the fd out at 20 ms; the writer writes at 15 ms.
 * Prints "teardown: done, events handled H, skipped S" (H 0 or 1: read
 * before the teardown or never).
 *
 * detloop forever: a condition wait whose deadline is past the shim's "for
 * ever" (tv_sec 2e10), signalled by a thread after 5 ms of CPU; prints
 * "forever: woken" (or "forever: timed out" and exit 1). It waited in the
 * kernel holding the turn (until the watch passed it over), and a mutex
 * released inside glibc's wait woke nobody waiting for it in turn.
 *
 * detloop relisten: a socket bound to port 0 (the turn gives it a port of
 * its own) whose port another socket (with SO_REUSEADDR, as Gloo's
 * listeners) bound and listens on first, as a deterministic session beside
 * it may: its listen must still succeed, on another port, and take a
 * connection; a port the program bound itself keeps the kernel's error.
 * Prints "relisten: PORT1 -> PORT2, accepted; an explicit port: Address
 * already in use".
 *   detloop [forever|relisten] */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t pair_m = PTHREAD_MUTEX_INITIALIZER, loop_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loop_cv = PTHREAD_COND_INITIALIZER;
static atomic_int done;
static int sv[2], ep, handled, skipped;

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t sink;

static void burn_ms(int ms)
{
	uint64_t end = cpu_ns() + (uint64_t)ms * 1000000ull, x = 0;
	while (cpu_ns() < end)
		for (int i = 0; i < 1000; i++)
			x += (uint64_t)i * (uint64_t)i;
	sink = x;
}

static void *loop(void *p)
{
	(void)p;
	struct epoll_event ev[4];
	while (!atomic_load(&done)) {
		pthread_cond_broadcast(&loop_cv); /* (Gloo: cv_.notify_all(), a tick) */
		int n = epoll_wait(ep, ev, 4, 10);
		for (int i = 0; i < n; i++) {
			if (pthread_mutex_trylock(&pair_m) != 0) {
				skipped++;
				continue;
			}
			char c;
			if (read(sv[0], &c, 1) == 1)
				handled++;
			pthread_mutex_unlock(&pair_m);
		}
	}
	return NULL;
}

static void *writer(void *p)
{
	(void)p;
	burn_ms(15);
	if (write(sv[1], "x", 1) != 1)
		perror("detloop: write");
	return NULL;
}

static int flag;

static void *signaller(void *p)
{
	(void)p;
	burn_ms(5);
	pthread_mutex_lock(&loop_m);
	flag = 1;
	pthread_cond_signal(&loop_cv);
	pthread_mutex_unlock(&loop_m);
	return NULL;
}

static int forever(void)
{
	pthread_t t;
	struct timespec dl = {.tv_sec = 20000000000, .tv_nsec = 0};
	pthread_mutex_lock(&loop_m);
	pthread_create(&t, NULL, signaller, NULL);
	while (!flag)
		if (pthread_cond_timedwait(&loop_cv, &loop_m, &dl) == ETIMEDOUT) {
			printf("forever: timed out\n");
			return 1;
		}
	pthread_mutex_unlock(&loop_m);
	pthread_join(t, NULL);
	printf("forever: woken\n");
	return 0;
}

static int reuse_socket(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), on = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	return s;
}

static int relisten(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int s1 = reuse_socket(), s2 = reuse_socket();
	if (bind(s1, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(s1, (struct sockaddr *)&a, &l) != 0) {
		perror("relisten: bind");
		return 1;
	}
	int p1 = ntohs(a.sin_port);
	if (bind(s2, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s2, 1) != 0) {
		perror("relisten: the other socket");
		return 1;
	}
	if (listen(s1, 1) != 0) {
		perror("relisten: listen");
		return 1;
	}
	l = sizeof(a);
	getsockname(s1, (struct sockaddr *)&a, &l);
	int p2 = ntohs(a.sin_port), c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) != 0 || accept(s1, NULL, NULL) < 0) {
		perror("relisten: connect/accept");
		return 1;
	}
	/* A port the program chose itself (in the turn's range) keeps its
	 * error: moved, its peers would knock at another program's door. */
	int s3 = reuse_socket(), s4 = reuse_socket();
	a.sin_port = htons((uint16_t)(p2 + 7));
	if (bind(s3, (struct sockaddr *)&a, sizeof(a)) != 0 || bind(s4, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(s4, 1) != 0) {
		perror("relisten: the explicit port");
		return 1;
	}
	int e = listen(s3, 1) == 0 ? 0 : errno;
	printf("relisten: %d -> %d, accepted; an explicit port: %s\n", p1, p2, e ? strerror(e) : "listening");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "relisten") == 0)
		return relisten();
	if (argc > 1 && strcmp(argv[1], "forever") == 0)
		return forever();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || (ep = epoll_create1(0)) < 0) {
		perror("detloop");
		return 1;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.fd = sv[0]};
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e);
	pthread_t lt, wt;
	pthread_create(&lt, NULL, loop, NULL);
	pthread_create(&wt, NULL, writer, NULL);
	burn_ms(10);
	pthread_mutex_lock(&pair_m);
	burn_ms(10);
	/* unregisterDescriptor, with the pair's mutex held. */
	pthread_mutex_lock(&loop_m);
	epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL);
	pthread_cond_wait(&loop_cv, &loop_m);
	pthread_mutex_unlock(&loop_m);
	pthread_mutex_unlock(&pair_m);
	pthread_join(wt, NULL);
	atomic_store(&done, 1);
	pthread_join(lt, NULL);
	printf("teardown: done, events handled %d, skipped %d\n", handled, skipped);
	return 0;
}
