/* Signals and blocked calls: a handler without SA_RESTART makes a blocked
 * recv fail with EINTR; with SA_RESTART the recv goes on and returns the data
 * that comes later. Same output on the kernel and under Joyride. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_alarm(int sig) { (void)sig; handled++; }

static int fds[2];
static void *late_writer(void *arg) {
    (void)arg;
    usleep(600000);
    send(fds[1], "after the signal", 16, 0);
    return NULL;
}

static void arm(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(void) {
    socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
    char buf[32] = {0};
    arm(0);
    ssize_t n = recv(fds[0], buf, sizeof buf, 0);
    printf("no SA_RESTART: %zd %s handled=%d\n", n, n < 0 && errno == EINTR ? "EINTR" : "?", (int)handled);
    arm(SA_RESTART);
    pthread_t t;
    pthread_create(&t, NULL, late_writer, NULL);
    n = recv(fds[0], buf, sizeof buf, 0);
    printf("SA_RESTART: %zd %s handled=%d\n", n, buf, (int)handled);
    pthread_join(t, NULL);
    return 0;
}
