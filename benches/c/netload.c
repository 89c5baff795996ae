/*
 * netload: the request/response, connection-rate and UDP workloads of
 * joyride-bench. The same binary runs on both ends: the kernel peer's
 * servers, and the measured client (under `joyride exec`, or on the kernel
 * stack for the baseline). Plain blocking sockets, no tricks: an ordinary
 * program.
 *
 * Servers (run until killed; print "ready" once listening):
 *   netload tcp-echo PORT          echo every byte of every connection
 *                                  (a process per connection)
 *   netload tcp-once PORT          per connection: read one message, write
 *                                  it back, close (server closes first, so
 *                                  TIME_WAIT lands here, not on the client)
 *   netload udp-echo PORT          echo every datagram to its sender
 *   netload udp-sink PORT          count datagrams; after the first, stop
 *                                  once nothing came for 500 ms and print
 *                                  "datagrams=N bytes=N ns=N" (first to last)
 *
 * Clients (print key=value results on one line; exit 0 only if every
 * exchange was checked and complete):
 *   netload tcp-rr HOST PORT SIZE COUNT GAP_US
 *   netload udp-rr HOST PORT SIZE COUNT GAP_US
 *       COUNT round trips of SIZE bytes (after COUNT/10 untimed warm-up
 *       ones), GAP_US microseconds of sleep between them; prints
 *       "p50_ns= p99_ns= p999_ns= mean_ns= count=" (UDP: also "lost="; a
 *       datagram not answered within 1 s is lost and not timed).
 *   netload tcp-connect HOST PORT SECS PAR
 *       PAR processes, each for SECS seconds: socket, connect, send 1 byte,
 *       receive it back, receive the end of file, close. Prints
 *       "conns=N ns=N".
 *   netload udp-send HOST PORT SIZE SECS
 *       send() SIZE-byte datagrams on a connected socket for SECS seconds;
 *       prints "sent=N ns=N".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 65536

static void die(const char *what)
{
	fprintf(stderr, "netload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void fail(const char *what)
{
	fprintf(stderr, "netload: %s\n", what);
	exit(2);
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long arg_long(const char *s, long min, long max, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "netload: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static struct sockaddr_in addr_of(const char *host, long port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	if (host == NULL)
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		fail("HOST must be an IPv4 address");
	return sa;
}

static int server_socket(int type, long port)
{
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket");
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = addr_of(NULL, port);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("bind");
	if (type == SOCK_STREAM && listen(s, 1024) != 0)
		die("listen");
	printf("ready\n");
	fflush(stdout);
	return s;
}

static int write_all(int s, const char *buf, long len)
{
	while (len > 0) {
		ssize_t n = send(s, buf, (size_t)len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Reads exactly len bytes; -1 on error or early end of file. */
static int read_all(int s, char *buf, long len)
{
	while (len > 0) {
		ssize_t n = recv(s, buf, (size_t)len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

__attribute__((noreturn)) static void tcp_echo(long port)
{
	int l = server_socket(SOCK_STREAM, port);
	signal(SIGCHLD, SIG_IGN);
	static char buf[MAX_MSG];
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid > 0) {
			close(c);
			continue;
		}
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		for (;;) {
			ssize_t n = recv(c, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || write_all(c, buf, n) != 0)
				_exit(0);
		}
	}
}

__attribute__((noreturn)) static void tcp_once(long port)
{
	int l = server_socket(SOCK_STREAM, port);
	char buf[4096];
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		ssize_t n = recv(c, buf, sizeof(buf), 0);
		if (n > 0)
			write_all(c, buf, n);
		close(c);
	}
}

__attribute__((noreturn)) static void udp_echo(long port)
{
	int s = server_socket(SOCK_DGRAM, port);
	static char buf[MAX_MSG];
	for (;;) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvfrom");
		}
		sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
	}
}

static int udp_sink(long port)
{
	int s = server_socket(SOCK_DGRAM, port);
	int big = 8 << 20;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	static char buf[MAX_MSG];
	long long first = 0, last = 0, count = 0, bytes = 0;
	for (;;) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		int r = poll(&p, 1, count ? 500 : -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("poll");
		if (r == 0)
			break;
		for (;;) {
			ssize_t n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			last = now_ns();
			if (!count)
				first = last;
			count++;
			bytes += n;
		}
	}
	printf("datagrams=%lld bytes=%lld ns=%lld\n", count, bytes, last - first);
	return 0;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static void sleep_us(long us)
{
	if (us <= 0)
		return;
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int rr(int type, const char *host, long port, long size, long count, long gap_us)
{
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket");
	struct sockaddr_in sa = addr_of(host, port);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect");
	int one = 1;
	if (type == SOCK_STREAM && setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		die("TCP_NODELAY");
	if (type == SOCK_DGRAM) {
		struct timeval tv = {.tv_sec = 1};
		if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
			die("SO_RCVTIMEO");
	}
	static char msg[MAX_MSG], back[MAX_MSG];
	long warm = count / 10;
	long long *lat = calloc((size_t)count, sizeof(long long));
	if (!lat)
		fail("out of memory");
	long timed = 0, lost = 0;
	long long sum = 0;
	for (long i = 0; i < warm + count; i++) {
		sleep_us(gap_us);
		for (long k = 0; k < size; k++)
			msg[k] = (char)(i + k);
		long long t0 = now_ns();
		if (type == SOCK_STREAM) {
			if (write_all(s, msg, size) != 0)
				die("send");
			if (read_all(s, back, size) != 0)
				die("recv (or early end of file)");
		} else {
			if (send(s, msg, (size_t)size, 0) != size)
				die("send");
			ssize_t n;
			do
				n = recv(s, back, sizeof(back), 0);
			while (n < 0 && errno == EINTR);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				lost++;
				continue;
			}
			if (n != size)
				die("recv");
		}
		long long dt = now_ns() - t0;
		if (memcmp(msg, back, (size_t)size) != 0)
			fail("the echo differs from what was sent");
		if (i >= warm) {
			lat[timed++] = dt;
			sum += dt;
		}
	}
	if (timed == 0)
		fail("no round trip completed");
	qsort(lat, (size_t)timed, sizeof(long long), cmp_ll);
	printf("p50_ns=%lld p99_ns=%lld p999_ns=%lld mean_ns=%lld count=%ld lost=%ld\n", lat[timed / 2],
	       lat[(timed * 99) / 100], lat[(timed * 999) / 1000], sum / timed, timed, lost);
	return 0;
}

static long connect_loop(const char *host, long port, long long until)
{
	struct sockaddr_in sa = addr_of(host, port);
	long n = 0;
	char b = 'x', back[2];
	while (now_ns() < until) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			die("socket");
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			die("connect");
		if (write_all(s, &b, 1) != 0)
			die("send");
		if (read_all(s, back, 1) != 0 || back[0] != b)
			fail("no echo on a short connection");
		ssize_t r;
		do
			r = recv(s, back, 1, 0);
		while (r < 0 && errno == EINTR);
		if (r != 0)
			fail("the server did not close a short connection");
		close(s);
		n++;
	}
	return n;
}

static int tcp_connect(const char *host, long port, long secs, long par)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		die("pipe");
	long long t0 = now_ns();
	long long until = t0 + secs * 1000000000LL;
	for (long i = 0; i < par; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			long n = connect_loop(host, port, until);
			if (write(pipefd[1], &n, sizeof(n)) != sizeof(n))
				_exit(2);
			_exit(0);
		}
	}
	close(pipefd[1]);
	long total = 0, n;
	long got = 0;
	while (read(pipefd[0], &n, sizeof(n)) == sizeof(n)) {
		total += n;
		got++;
	}
	int status, ok = 1;
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ok = 0;
	if (!ok || got != par)
		fail("a connecting process failed");
	printf("conns=%ld ns=%lld\n", total, now_ns() - t0);
	return 0;
}

static int udp_send(const char *host, long port, long size, long secs)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket");
	struct sockaddr_in sa = addr_of(host, port);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect");
	static char msg[MAX_MSG];
	memset(msg, 'u', sizeof(msg));
	long long t0 = now_ns(), until = t0 + secs * 1000000000LL, sent = 0;
	while (1) {
		for (int k = 0; k < 64; k++) {
			ssize_t n = send(s, msg, (size_t)size, 0);
			if (n == size)
				sent++;
			else if (n < 0 && errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED && errno != EINTR)
				die("send");
		}
		if (now_ns() >= until)
			break;
	}
	printf("sent=%lld ns=%lld\n", sent, now_ns() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		fail("usage: netload MODE ARGS... (see the source's header)");
	const char *mode = argv[1];
	if (!strcmp(mode, "tcp-echo") && argc == 3)
		tcp_echo(arg_long(argv[2], 1, 65535, "PORT"));
	if (!strcmp(mode, "tcp-once") && argc == 3)
		tcp_once(arg_long(argv[2], 1, 65535, "PORT"));
	if (!strcmp(mode, "udp-echo") && argc == 3)
		udp_echo(arg_long(argv[2], 1, 65535, "PORT"));
	if (!strcmp(mode, "udp-sink") && argc == 3)
		return udp_sink(arg_long(argv[2], 1, 65535, "PORT"));
	if ((!strcmp(mode, "tcp-rr") || !strcmp(mode, "udp-rr")) && argc == 7)
		return rr(mode[0] == 't' ? SOCK_STREAM : SOCK_DGRAM, argv[2], arg_long(argv[3], 1, 65535, "PORT"),
			  arg_long(argv[4], 1, mode[0] == 't' ? MAX_MSG : 1472, "SIZE"),
			  arg_long(argv[5], 1, 100000000, "COUNT"), arg_long(argv[6], 0, 10000000, "GAP_US"));
	if (!strcmp(mode, "tcp-connect") && argc == 6)
		return tcp_connect(argv[2], arg_long(argv[3], 1, 65535, "PORT"), arg_long(argv[4], 1, 3600, "SECS"),
				   arg_long(argv[5], 1, 64, "PAR"));
	if (!strcmp(mode, "udp-send") && argc == 6)
		return udp_send(argv[2], arg_long(argv[3], 1, 65535, "PORT"), arg_long(argv[4], 1, 1472, "SIZE"),
				arg_long(argv[5], 1, 3600, "SECS"));
	fail("unknown mode or wrong argument count (see the source's header)");
	return 2;
}
