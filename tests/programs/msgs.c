/* Message calls with addresses, several messages and fds: run on the plain
 * kernel and under Joyride; every line must be the same. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    /* sendmmsg/recvmmsg on datagrams keep boundaries. */
    int d[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, d);
    struct mmsghdr out[3] = {0};
    struct iovec oiov[3];
    const char *words[3] = {"one", "three", "fifteen"};
    for (int i = 0; i < 3; i++) {
        oiov[i].iov_base = (void *)words[i];
        oiov[i].iov_len = strlen(words[i]);
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(d[0], out, 3, 0);
    printf("sendmmsg %d lens %u %u %u\n", sent, out[0].msg_len, out[1].msg_len, out[2].msg_len);
    struct mmsghdr in[4] = {0};
    char bufs[4][16];
    struct iovec iiov[4];
    for (int i = 0; i < 4; i++) {
        memset(bufs[i], 0, 16);
        iiov[i].iov_base = bufs[i];
        iiov[i].iov_len = 15;
        in[i].msg_hdr.msg_iov = &iiov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(d[1], in, 4, MSG_DONTWAIT, NULL);
    printf("recvmmsg %d:", n);
    for (int i = 0; i < n; i++) printf(" %s/%u", bufs[i], in[i].msg_len);
    printf("\n");

    /* SCM_RIGHTS: a pipe's read end crosses a stream socketpair. */
    int s[2], p[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    pipe(p);
    write(p[1], "through the pipe", 16);
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec one = {.iov_base = "x", .iov_len = 1};
    struct msghdr m = {.msg_iov = &one, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    printf("sendmsg rights %zd\n", sendmsg(s[0], &m, 0));
    close(p[0]);
    char rbuf[CMSG_SPACE(sizeof(int))] = {0}, x = 0;
    struct iovec rone = {.iov_base = &x, .iov_len = 1};
    struct msghdr r = {.msg_iov = &rone, .msg_iovlen = 1, .msg_control = rbuf, .msg_controllen = sizeof rbuf};
    ssize_t got = recvmsg(s[1], &r, MSG_CMSG_CLOEXEC);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&r);
    int passed = -1;
    if (rc && rc->cmsg_type == SCM_RIGHTS) memcpy(&passed, CMSG_DATA(rc), sizeof(int));
    char text[32] = {0};
    read(passed, text, 16);
    printf("recvmsg rights %zd %c cloexec=%d text=%s\n", got, x, (fcntl(passed, F_GETFD) & FD_CLOEXEC) != 0, text);

    /* UDP with addresses, MSG_PEEK, recv/recvfrom mixed. */
    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(u2, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(u2, (struct sockaddr *)&a, &al);
    sendto(u1, "dgram-a", 7, 0, (struct sockaddr *)&a, sizeof a);
    sendto(u1, "dgram-bb", 8, 0, (struct sockaddr *)&a, sizeof a);
    char ub[32] = {0};
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t k = recvfrom(u2, ub, sizeof ub, MSG_PEEK, (struct sockaddr *)&from, &fl);
    printf("peek %zd %s fromlen=%u family=%d\n", k, ub, fl, from.sin_family);
    memset(ub, 0, sizeof ub);
    k = recv(u2, ub, 3, 0);
    printf("recv truncated %zd %s\n", k, ub);
    memset(ub, 0, sizeof ub);
    k = recvfrom(u2, ub, sizeof ub, MSG_TRUNC, NULL, NULL);
    printf("recvfrom %zd %s\n", k, ub);

    /* MSG_WAITALL gathers a stream written in pieces. */
    write(s[0], "hello ", 6);
    write(s[0], "world", 5);
    char wa[12] = {0};
    printf("waitall %zd %s\n", recv(s[1], wa, 11, MSG_WAITALL), wa);
    return 0;
}
