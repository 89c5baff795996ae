/*
 * syscall_loop: times a tight loop of one system call, for joyride-bench-trace.
 *
 *   syscall_loop MODE ITERS [allow-filter]
 *
 * MODE is one of
 *   getsockopt  getsockopt(fd, SOL_SOCKET, SO_TYPE) on one TCP socket
 *               (a network call: trapped under `joyride trace`)
 *   getppid     getppid() (never trapped)
 *   readzero    read(fd, buf, 1) from /dev/zero (never trapped)
 *
 * With "allow-filter", the program first installs a one-instruction seccomp
 * filter that allows everything: the floor cost of any seccomp filter (the
 * kernel's slower syscall entry path), to compare Joyride's filter with.
 *
 * Runs ITERS/10 warm-up calls, then ITERS timed calls, checks every result,
 * and prints one line: "ns_per_call=<float>". Exit status 0 on success.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum mode { GETSOCKOPT, GETPPID, READZERO };

static int fd = -1;
static pid_t parent;

static void die(const char *what)
{
	fprintf(stderr, "syscall_loop: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void one_call(enum mode m)
{
	switch (m) {
	case GETSOCKOPT: {
		int type = 0;
		socklen_t len = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
			die("getsockopt");
		if (type != SOCK_STREAM || len != sizeof(type)) {
			fprintf(stderr, "syscall_loop: getsockopt gave type %d len %u\n", type, (unsigned)len);
			exit(2);
		}
		break;
	}
	case GETPPID:
		if (getppid() != parent) {
			fprintf(stderr, "syscall_loop: getppid changed\n");
			exit(2);
		}
		break;
	case READZERO: {
		char c = 1;
		if (read(fd, &c, 1) != 1)
			die("read /dev/zero");
		if (c != 0) {
			fprintf(stderr, "syscall_loop: /dev/zero gave a non-zero byte\n");
			exit(2);
		}
		break;
	}
	}
}

static void install_allow_filter(void)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(insns) / sizeof(insns[0]),
		.filter = insns,
	};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("PR_SET_NO_NEW_PRIVS");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		die("seccomp(SECCOMP_SET_MODE_FILTER)");
}

static long long now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 4 && strcmp(argv[3], "allow-filter") == 0)) {
		fprintf(stderr, "usage: syscall_loop getsockopt|getppid|readzero ITERS [allow-filter]\n");
		return 2;
	}
	enum mode m;
	if (strcmp(argv[1], "getsockopt") == 0)
		m = GETSOCKOPT;
	else if (strcmp(argv[1], "getppid") == 0)
		m = GETPPID;
	else if (strcmp(argv[1], "readzero") == 0)
		m = READZERO;
	else {
		fprintf(stderr, "syscall_loop: unknown mode %s\n", argv[1]);
		return 2;
	}
	long iters = strtol(argv[2], NULL, 10);
	if (iters <= 0) {
		fprintf(stderr, "syscall_loop: bad ITERS %s\n", argv[2]);
		return 2;
	}

	if (argc == 4)
		install_allow_filter();

	if (m == GETSOCKOPT) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket");
	} else if (m == READZERO) {
		fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("open /dev/zero");
	}
	parent = getppid();

	long warm = iters / 10 > 0 ? iters / 10 : 1;
	for (long i = 0; i < warm; i++)
		one_call(m);

	long long t0 = now_ns();
	for (long i = 0; i < iters; i++)
		one_call(m);
	long long t1 = now_ns();

	printf("ns_per_call=%.3f\n", (double)(t1 - t0) / (double)iters);
	return 0;
}
