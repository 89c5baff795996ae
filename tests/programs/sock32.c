/* A 32-bit static program making network calls through the i386 entry
 * (`int 0x80`): socketcall(SYS_SOCKET) and the direct socket call (359).
 * Prints each raw result; under Joyride both must be -ENOSYS (-38), never a
 * socket the kernel served behind the supervisor's back. */
#include <stdio.h>
#include <sys/socket.h>

static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

int main(void) {
    unsigned long args[3] = {AF_INET, SOCK_STREAM, 0};
    long viacall = int80(102 /* socketcall */, 1 /* SYS_SOCKET */, (long)args, 0);
    long direct = int80(359 /* socket */, AF_INET, SOCK_STREAM, 0);
    long pid = int80(20 /* getpid */, 0, 0, 0);
    printf("socketcall=%ld socket=%ld getpid_ok=%d\n", viacall, direct, pid > 0);
    return 0;
}
