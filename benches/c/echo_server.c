/*
 * echo_server: the local peer of joyride-bench-trace's connect workload.
 * It is never traced.
 *
 *   echo_server
 *
 * Listens on 127.0.0.1 on a port the kernel picks and prints "port=<n>" on
 * standard output. Then, one connection at a time: accept, read one message
 * (up to 4 KiB, whatever the first read gives), write it back, close. The
 * server closes first, so TIME_WAIT lands on its side and the client's
 * ephemeral ports are not used up. Runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
	exit(2);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0)
		die("socket");
	int one = 1;
	if (setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		die("SO_REUSEADDR");
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("bind");
	if (listen(ls, 4096) != 0)
		die("listen");
	socklen_t len = sizeof(sa);
	if (getsockname(ls, (struct sockaddr *)&sa, &len) != 0)
		die("getsockname");
	printf("port=%u\n", (unsigned)ntohs(sa.sin_port));
	fflush(stdout);

	char buf[4096];
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept4");
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ssize_t n = recv(c, buf, sizeof(buf), 0);
		if (n > 0) {
			ssize_t off = 0;
			while (off < n) {
				ssize_t w = send(c, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w <= 0)
					break;
				off += w;
			}
		}
		close(c);
	}
}
