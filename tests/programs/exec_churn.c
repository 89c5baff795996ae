/* N sequential TCP connections to a server that sends one byte and closes
 * (tests/programs/exec_peer.py `churn` mode): connect, read "k", read EOF,
 * close.  After CHECKPOINT connections and at the end it prints "at K" and
 * waits for a byte on stdin, so that a test can sample the supervisor's fds
 * and memory at those points.  usage: exec_churn IPV4 PORT N CHECKPOINT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pause_here(int k) {
    char c;
    printf("at %d\n", k);
    fflush(stdout);
    if (read(0, &c, 1) != 1) exit(3);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s IPV4 PORT N CHECKPOINT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    int n = atoi(argv[3]), checkpoint = atoi(argv[4]);
    for (int i = 1; i <= n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            fprintf(stderr, "connection %d: socket: %s\n", i, strerror(errno));
            return 1;
        }
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            fprintf(stderr, "connection %d: connect: %s\n", i, strerror(errno));
            return 1;
        }
        char buf[4];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r != 1 || buf[0] != 'k') {
            fprintf(stderr, "connection %d: read = %zd (%s)\n", i, r, r < 0 ? strerror(errno) : "");
            return 1;
        }
        r = read(fd, buf, sizeof buf);
        if (r != 0) {
            fprintf(stderr, "connection %d: want EOF, read = %zd (%s)\n", i, r, r < 0 ? strerror(errno) : "");
            return 1;
        }
        close(fd);
        if (i == checkpoint) pause_here(i);
    }
    pause_here(n);
    printf("done %d\n", n);
    return 0;
}
