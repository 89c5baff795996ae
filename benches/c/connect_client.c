/*
 * connect_client: the connect-heavy workload of joyride-bench-trace.
 *
 *   connect_client PORT CYCLES MSGSIZE
 *
 * CYCLES times: socket, connect to 127.0.0.1:PORT, send MSGSIZE bytes, recv
 * the MSGSIZE bytes echoed back, close. Every cycle is checked (the echo
 * must match). Prints "elapsed_ns=<n> cycles=<n>" for the loop alone.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, long cycle)
{
	fprintf(stderr, "connect_client: cycle %ld: %s: %s\n", cycle, what, strerror(errno));
	exit(2);
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: connect_client PORT CYCLES MSGSIZE\n");
		return 2;
	}
	long port = strtol(argv[1], NULL, 10);
	long cycles = strtol(argv[2], NULL, 10);
	long size = strtol(argv[3], NULL, 10);
	if (port <= 0 || port > 65535 || cycles <= 0 || size <= 0 || size > 4096) {
		fprintf(stderr, "connect_client: bad arguments\n");
		return 2;
	}
	char msg[4096], back[4096];
	for (long i = 0; i < size; i++)
		msg[i] = (char)('a' + i % 26);

	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)port);

	long long t0 = now_ns();
	for (long i = 0; i < cycles; i++) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			die("socket", i);
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			die("connect", i);
		if (send(s, msg, (size_t)size, MSG_NOSIGNAL) != size)
			die("send", i);
		long got = 0;
		while (got < size) {
			ssize_t n = recv(s, back + got, (size_t)(size - got), 0);
			if (n < 0)
				die("recv", i);
			if (n == 0) {
				fprintf(stderr, "connect_client: cycle %ld: early EOF after %ld bytes\n", i, got);
				return 2;
			}
			got += n;
		}
		if (memcmp(msg, back, (size_t)size) != 0) {
			fprintf(stderr, "connect_client: cycle %ld: echo differs\n", i);
			return 2;
		}
		if (close(s) != 0)
			die("close", i);
	}
	long long t1 = now_ns();
	printf("elapsed_ns=%lld cycles=%ld\n", t1 - t0, cycles);
	return 0;
}
