/* 10,000 rounds of trapped network calls, some of them killed mid-call (a
 * child blocked in accept() is SIGKILLed while the supervisor holds its call).
 * Prints the supervisor's (our parent's) fd and thread counts before and
 * after, so a test can check nothing leaked.  usage: churn IPV4 CLOSED_PORT */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int count(const char *what) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", getppid(), what);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &peer.sin_addr);
    /* Warm up so per-thread supervisor state for this live thread (its cached
     * pidfd) exists before counting. */
    int w = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in wa;
    socklen_t wl = sizeof wa;
    getsockname(w, (struct sockaddr *)&wa, &wl);
    close(w);
    sleep_ms(300);
    int fds0 = count("fd"), thr0 = count("task");
    long calls = 0, killed = 0, refused = 0;
    for (int i = 0; i < 10000; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        calls++;
        if (i % 500 == 0) {
            pid_t c = fork();
            if (c == 0) {
                int l = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in any = {.sin_family = AF_INET};
                bind(l, (struct sockaddr *)&any, sizeof any);
                listen(l, 1);
                accept(l, NULL, NULL); /* blocks in the supervisor */
                _exit(0);
            }
            sleep_ms(30);
            kill(c, SIGKILL);
            waitpid(c, NULL, 0);
            killed++;
        } else if (i % 3 == 0) {
            if (connect(s, (struct sockaddr *)&peer, sizeof peer) < 0) refused++;
            calls++;
        } else {
            int one = 1;
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_in me;
            socklen_t len = sizeof me;
            getsockname(s, (struct sockaddr *)&me, &len);
            calls += 2;
        }
        close(s);
    }
    sleep_ms(800); /* longer than the supervisor's sweep of vanished calls */
    printf("calls=%ld killed=%ld refused=%ld fds_before=%d fds_after=%d threads_before=%d threads_after=%d\n", calls,
           killed, refused, fds0, count("fd"), thr0, count("task"));
    return 0;
}
