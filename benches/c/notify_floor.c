/*
 * notify_floor: the smallest possible seccomp user-notification supervisor,
 * for joyride-bench-trace. It gives the floor of a trapped-call round trip
 * on this machine: what the kernel's notify/reply and the two wake-ups cost
 * with no supervisor work at all.
 *
 *   notify_floor WAIT SYNC LOOP_PROGRAM LOOP_ARGS...
 *
 * Forks; the child installs a filter that traps only getsockopt (everything
 * else allowed), hands its listener to the parent, waits for the parent's
 * go, and execs LOOP_PROGRAM LOOP_ARGS (the syscall_loop helper, which times
 * its own loop and prints the result on the inherited standard output).
 * The parent answers every notification with SECCOMP_USER_NOTIF_FLAG_CONTINUE
 * (the kernel then runs the call itself) until the listener hangs up.
 *
 * WAIT is how the parent waits for a notification:
 *   block  blocked in SECCOMP_IOCTL_NOTIF_RECV
 *   epoll  epoll_wait on the listener, then SECCOMP_IOCTL_NOTIF_RECV
 *          (as an event-loop supervisor such as joyride does)
 * SYNC is "sync" to set SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on the listener
 * (the parent then says "sync=unsupported" on stderr if the kernel lacks
 * it) or "nosync".
 *
 * Exits with the child's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static void die(const char *what)
{
	fprintf(stderr, "notify_floor: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int install_filter(void)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getsockopt, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(insns) / sizeof(insns[0]),
		.filter = insns,
	};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("PR_SET_NO_NEW_PRIVS");
	int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0)
		die("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
	return fd;
}

int main(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[1], "block") != 0 && strcmp(argv[1], "epoll") != 0) ||
	    (strcmp(argv[2], "sync") != 0 && strcmp(argv[2], "nosync") != 0)) {
		fprintf(stderr, "usage: notify_floor block|epoll sync|nosync LOOP_PROGRAM LOOP_ARGS...\n");
		return 2;
	}
	int use_epoll = strcmp(argv[1], "epoll") == 0;
	int sync = strcmp(argv[2], "sync") == 0;

	/* Child to parent: the listener fd number; parent to child: go. */
	int up[2], down[2];
	if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0)
		die("pipe2");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd = install_filter();
		if (write(up[1], &fd, sizeof(fd)) != sizeof(fd))
			die("write listener fd");
		char go;
		if (read(down[0], &go, 1) != 1)
			_exit(2);
		close(fd);
		execv(argv[3], &argv[3]);
		die("execv");
	}
	close(up[1]);
	close(down[0]);
	int child_fd;
	if (read(up[0], &child_fd, sizeof(child_fd)) != sizeof(child_fd))
		die("read listener fd");
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		die("pidfd_open");
	int listener = (int)syscall(SYS_pidfd_getfd, pidfd, child_fd, 0);
	if (listener < 0)
		die("pidfd_getfd");
	if (sync) {
		uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) != 0)
			fprintf(stderr, "sync=unsupported (%s)\n", strerror(errno));
	}
	int ep = -1;
	if (use_epoll) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0)
			die("epoll_create1");
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) != 0)
			die("epoll_ctl");
	}
	/* Never hang a benchmark: give up after two minutes. */
	alarm(120);
	if (write(down[1], "g", 1) != 1)
		die("write go");

	for (;;) {
		if (use_epoll) {
			struct epoll_event ev;
			int n = epoll_wait(ep, &ev, 1, -1);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				die("epoll_wait");
			}
			if (!(ev.events & EPOLLIN))
				break; /* hung up: the child is gone */
		}
		struct seccomp_notif req;
		memset(&req, 0, sizeof(req));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
			if (errno == EINTR)
				continue;
			if (errno != ENOENT)
				die("SECCOMP_IOCTL_NOTIF_RECV");
			/* A blocked RECV returns ENOENT once the filter has no
			 * users left: stop if the listener hung up. */
			struct pollfd p = { .fd = listener, .events = POLLIN };
			if (poll(&p, 1, 0) == 1 && !(p.revents & POLLIN) && (p.revents & POLLHUP))
				break;
			continue;
		}
		struct seccomp_notif_resp resp;
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0 && errno != ENOENT)
			die("SECCOMP_IOCTL_NOTIF_SEND");
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
