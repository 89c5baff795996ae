/* Blocking calls: accept and recv that wait for a peer, SO_RCVTIMEO expiry,
 * a refused blocking connect, and a thread making calls while another one
 * is blocked. Output is the same on the kernel and under Joyride.
 * usage: blocking IPV4 CLOSED_PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in listen_addr;

static void *late_client(void *arg) {
    (void)arg;
    usleep(200000);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&listen_addr, sizeof listen_addr);
    usleep(200000);
    send(c, "late data", 9, 0);
    usleep(100000);
    close(c);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (struct sockaddr *)&listen_addr, sizeof listen_addr);
    socklen_t len = sizeof listen_addr;
    getsockname(l, (struct sockaddr *)&listen_addr, &len);
    listen(l, 4);
    pthread_t t;
    pthread_create(&t, NULL, late_client, NULL);
    double t0 = now();
    int a = accept(l, NULL, NULL);
    printf("accept waited %s\n", a >= 0 && now() - t0 > 0.15 ? "ok" : "WRONG");
    char buf[32] = {0};
    t0 = now();
    ssize_t n = recv(a, buf, sizeof buf, 0);
    printf("recv waited %s: %zd %s\n", now() - t0 > 0.15 ? "ok" : "WRONG", n, buf);
    n = recv(a, buf, sizeof buf, 0);
    printf("recv at close: %zd\n", n);
    pthread_join(t, NULL);

    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in self = listen_addr;
    connect(s, (struct sockaddr *)&self, sizeof self);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    t0 = now();
    n = recv(s, buf, sizeof buf, 0);
    double waited = now() - t0;
    printf("rcvtimeo: %zd %s %s\n", n, n < 0 && errno == EAGAIN ? "EAGAIN" : "?", waited > 0.25 && waited < 2 ? "ok" : "WRONG");

    struct sockaddr_in closed = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &closed.sin_addr);
    int r = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(r, (struct sockaddr *)&closed, sizeof closed);
    printf("blocking connect: %d %s\n", rc, rc < 0 && errno == ECONNREFUSED ? "ECONNREFUSED" : strerror(errno));
    return 0;
}
