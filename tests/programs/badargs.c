#define _GNU_SOURCE
/* Network calls with bad arguments. Prints one line per case: its name and
 * the errno name (or OK). The same binary is run on the plain kernel and under
 * Joyride; the lines must agree.  usage: badargs IPV4 PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BAD ((void *)16)

static void report(const char *name, long r) {
    if (r < 0)
        printf("%s %s\n", name, strerrorname_np(errno));
    else
        printf("%s OK\n", name);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    report("connect_bad_addr", connect(s, BAD, sizeof sa));
    report("connect_huge_len", connect(s, (struct sockaddr *)&sa, 1 << 30));
    report("connect_negative_len", connect(s, (struct sockaddr *)&sa, -1));
    report("bind_bad_addr", bind(s, BAD, sizeof sa));
    int one = 1;
    report("setsockopt_bad_val", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, BAD, 4));
    report("setsockopt_negative_len", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, -1));
    report("setsockopt_unknown", setsockopt(s, SOL_SOCKET, 9999, &one, 4));
    report("getsockopt_bad_len", getsockopt(s, SOL_SOCKET, SO_TYPE, &one, BAD));
    socklen_t neg = (socklen_t)-5;
    report("getsockopt_negative_len", getsockopt(s, SOL_SOCKET, SO_TYPE, &one, &neg));
    report("getsockname_bad_len", getsockname(s, (struct sockaddr *)&sa, BAD));
    report("connect_ok", connect(s, (struct sockaddr *)&sa, sizeof sa));
    report("sendto_bad_buf", sendto(s, BAD, 100, 0, NULL, 0));
    report("recvfrom_bad_addrlen", recvfrom(s, &one, 1, MSG_DONTWAIT, (struct sockaddr *)&sa, BAD));
    /* A receive into a bad buffer fails and loses nothing: the kernel leaves
     * the bytes queued; Joyride keeps what it consumed for the next call. */
    send(s, "abc", 3, 0);
    report("recv_bad_buf", recv(s, BAD, 3, 0));
    char got[4] = {0};
    long n = recv(s, got, 3, MSG_WAITALL);
    printf("recv_after_efault %ld %s\n", n, got);
    struct msghdr m = {0};
    struct iovec iov = {.iov_base = &one, .iov_len = 4};
    m.msg_iov = &iov;
    m.msg_iovlen = 5000;
    report("sendmsg_too_many_iov", sendmsg(s, &m, 0));
    report("sendmsg_bad_msghdr", sendmsg(s, BAD, 0));
    m.msg_iovlen = 1;
    m.msg_iov = BAD;
    report("sendmsg_bad_iov", sendmsg(s, &m, 0));
    report("recvmsg_bad_msghdr", recvmsg(s, BAD, MSG_DONTWAIT));
    report("accept_not_listening", accept(s, NULL, NULL));
    report("listen_bad_fd", listen(987, 1));
    report("shutdown_bad_how", shutdown(s, 77));
    int fd = open("/dev/null", 0);
    report("connect_not_socket", connect(fd, (struct sockaddr *)&sa, sizeof sa));
    report("accept4_bad_flags", accept4(s, NULL, NULL, 0x1234));
    return 0;
}
