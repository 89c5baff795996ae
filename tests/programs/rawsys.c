/* An HTTP/1.0 GET made only with raw `syscall` instructions: no libc socket
 * wrappers, so only a seccomp filter can see these calls.
 * usage: rawsys IPV4 PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

static long raw6(long nr, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    /* The x32 entry (the same instruction, __X32_SYSCALL_BIT in the number)
     * is never a way around the filter. */
    long x32 = raw6(SYS_socket | 0x40000000, AF_INET, SOCK_STREAM, 0, 0, 0, 0);
    fprintf(stderr, "x32 socket: %ld\n", x32);
    if (x32 >= 0) raw6(SYS_close, x32, 0, 0, 0, 0, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    long fd = raw6(SYS_socket, AF_INET, SOCK_STREAM, 0, 0, 0, 0);
    if (fd < 0) { fprintf(stderr, "socket: %ld\n", fd); return 1; }
    long r = raw6(SYS_connect, fd, (long)&sa, sizeof sa, 0, 0, 0);
    if (r < 0) { fprintf(stderr, "connect: %ld\n", r); return 1; }
    const char req[] = "GET /hello.txt HTTP/1.0\r\n\r\n";
    r = raw6(SYS_sendto, fd, (long)req, sizeof req - 1, 0, 0, 0);
    if (r != (long)sizeof req - 1) { fprintf(stderr, "sendto: %ld\n", r); return 1; }
    char buf[4096];
    long total = 0;
    for (;;) {
        r = raw6(SYS_recvfrom, fd, (long)buf, sizeof buf, 0, 0, 0);
        if (r < 0) { fprintf(stderr, "recvfrom: %ld\n", r); return 1; }
        if (r == 0) break;
        fwrite(buf, 1, r, stdout);
        total += r;
    }
    raw6(SYS_close, fd, 0, 0, 0, 0, 0);
    fprintf(stderr, "received %ld bytes\n", total);
    return 0;
}
