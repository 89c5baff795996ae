/* Corner cases of the socket API a program under `joyride exec` relies on,
 * against a kernel peer (tests/programs/exec_peer.py `corners` mode: TCP
 * sessions and a UDP echo on PORT; nothing on CLOSED_PORT).  Prints one line
 * per case, "ok NAME" or "FAIL NAME: why", and exits 0 only if all pass.
 *
 * usage: exec_corners PEER_IPV4 PORT CLOSED_PORT MY_IPV4 LISTEN_PORT
 *        exec_corners --scm-child UNIX_FD      (started by the scm_rights case)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *peer_ip, *my_ip;
static int port, closed_port, listen_port;
static const char *self_exe;
static char why[512];
static int failures;

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return -1;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) return fail(__VA_ARGS__);                                                     \
    } while (0)

static void report(const char *name, int rc) {
    if (rc == 0) {
        printf("ok %s\n", name);
    } else {
        printf("FAIL %s: %s\n", name, why);
        failures++;
    }
    fflush(stdout);
}

static struct sockaddr_in addr4(const char *ip, int p) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void timeouts(int fd) {
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A blocking TCP connection to the peer's session server, mode line sent. */
static int session(const char *mode) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeouts(fd);
    struct sockaddr_in a = addr4(peer_ip, port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%s\n", mode);
    if (write(fd, line, n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) return -1;
        p += n;
        len -= n;
    }
    return 0;
}

/* Reads exactly len bytes (-1 on error or early EOF). */
static int read_exact(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n <= 0) return -1;
        p += n;
        len -= n;
    }
    return 0;
}

/* Reads one line (without the newline) into buf. */
static int read_line(int fd, char *buf, size_t cap) {
    size_t i = 0;
    while (i + 1 < cap) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n <= 0) return -1;
        if (c == '\n') break;
        buf[i++] = c;
    }
    buf[i] = 0;
    return (int)i;
}

/* Sends msg on an ECHO session and checks it comes back. */
static int echo_roundtrip(int fd, const char *msg) {
    size_t len = strlen(msg);
    char buf[256];
    CHECK(write_all(fd, msg, len) == 0, "write: %s", strerror(errno));
    CHECK(read_exact(fd, buf, len) == 0, "read echo: %s", strerror(errno));
    CHECK(memcmp(buf, msg, len) == 0, "echo differs");
    return 0;
}

static int case_nonblocking_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = addr4(peer_ip, port);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    CHECK(rc < 0 && errno == EINPROGRESS, "connect = %d (%s), want EINPROGRESS", rc, strerror(errno));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.fd = fd};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
    /* EPOLLOUT must come exactly when the connection is established: any
     * report of it finds getpeername() working, and until then no EPOLLIN
     * or error shows up. */
    int polls = 0;
    for (;;) {
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, 5000);
        CHECK(n == 1, "epoll_wait = %d (%s) after %d polls", n, strerror(errno), polls);
        polls++;
        struct sockaddr_in pa;
        socklen_t pl = sizeof pa;
        int connected = getpeername(fd, (struct sockaddr *)&pa, &pl) == 0;
        CHECK(!(got.events & (EPOLLERR | EPOLLHUP)), "events %#x", got.events);
        CHECK(got.events & EPOLLOUT, "events %#x without EPOLLOUT", got.events);
        CHECK(connected, "EPOLLOUT before the connection is established (getpeername: %s)", strerror(errno));
        CHECK(pa.sin_port == htons(port), "getpeername port %d", ntohs(pa.sin_port));
        break;
    }
    int err = -1;
    socklen_t el = sizeof err;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0, "SO_ERROR: %s", strerror(errno));
    CHECK(err == 0, "SO_ERROR = %d (%s)", err, strerror(err));
    /* The connection works: a session, non-blocking reads with epoll. */
    CHECK(write_all(fd, "ECHO\nnb\n", 8) == 0, "write: %s", strerror(errno));
    ev.events = EPOLLIN;
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0, "epoll_ctl MOD: %s", strerror(errno));
    char buf[8];
    size_t have = 0;
    while (have < 3) {
        struct epoll_event got;
        CHECK(epoll_wait(ep, &got, 1, 5000) == 1, "no EPOLLIN for the echo");
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        CHECK(n > 0 || (n < 0 && errno == EAGAIN), "read = %zd (%s)", n, strerror(errno));
        if (n > 0) have += n;
    }
    CHECK(memcmp(buf, "nb\n", 3) == 0, "echo differs");
    /* Nothing more to read: EAGAIN, not a block. */
    CHECK(read(fd, buf, sizeof buf) < 0 && errno == EAGAIN, "second read: want EAGAIN (%s)", strerror(errno));
    close(ep);
    close(fd);
    return 0;
}

static int case_refused(void) {
    /* Non-blocking: EINPROGRESS, then an error event and SO_ERROR. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = addr4(peer_ip, closed_port);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    CHECK(rc < 0 && (errno == EINPROGRESS || errno == ECONNREFUSED), "non-blocking connect = %d (%s)", rc,
          strerror(errno));
    if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        CHECK(poll(&p, 1, 5000) == 1, "no poll event for the refused connect");
        CHECK(p.revents & (POLLERR | POLLHUP), "revents %#x: want POLLERR/POLLHUP", p.revents);
        int err = 0;
        socklen_t el = sizeof err;
        CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0, "SO_ERROR: %s", strerror(errno));
        CHECK(err == ECONNREFUSED, "SO_ERROR = %d (%s), want ECONNREFUSED", err, strerror(err));
        el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        CHECK(err == 0, "SO_ERROR not cleared by reading it: %d", err);
    }
    close(fd);
    /* Blocking. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    CHECK(rc < 0 && errno == ECONNREFUSED, "blocking connect = %d (%s), want ECONNREFUSED", rc, strerror(errno));
    close(fd);
    return 0;
}

static int case_accept4(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(ls >= 0, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr4(my_ip, listen_port);
    CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0, "bind %s:%d: %s", my_ip, listen_port, strerror(errno));
    CHECK(listen(ls, 8) == 0, "listen: %s", strerror(errno));
    int v = -1;
    socklen_t vl = sizeof v;
    CHECK(getsockopt(ls, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v == 1, "SO_ACCEPTCONN on a listener = %d",
          v);
    /* Bad flags: EINVAL at once (nothing is pending). */
    int bad = accept4(ls, NULL, NULL, 0x40000000);
    CHECK(bad < 0 && errno == EINVAL, "accept4(bad flags) = %d (%s), want EINVAL", bad, strerror(errno));
    /* The peer connects to us. */
    int cmd = session("CMD");
    CHECK(cmd >= 0, "CMD session: %s", strerror(errno));
    char line[64];
    int n = snprintf(line, sizeof line, "CONNECT %s %d\n", my_ip, listen_port);
    CHECK(write_all(cmd, line, n) == 0, "write CMD: %s", strerror(errno));
    struct pollfd p = {.fd = ls, .events = POLLIN};
    CHECK(poll(&p, 1, 5000) == 1, "no connection from the peer");
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    int c = accept4(ls, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(c >= 0, "accept4: %s", strerror(errno));
    CHECK(fl == sizeof from && from.sin_family == AF_INET, "accept4 address length %u", fl);
    char fip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &from.sin_addr, fip, sizeof fip);
    CHECK(strcmp(fip, peer_ip) == 0, "accepted from %s, want %s", fip, peer_ip);
    int fl_flags = fcntl(c, F_GETFL), fd_flags = fcntl(c, F_GETFD);
    CHECK(fl_flags >= 0 && (fl_flags & O_NONBLOCK), "accepted fd lacks O_NONBLOCK (F_GETFL %#x)", fl_flags);
    CHECK(fd_flags >= 0 && (fd_flags & FD_CLOEXEC), "accepted fd lacks FD_CLOEXEC (F_GETFD %#x)", fd_flags);
    vl = sizeof v;
    CHECK(getsockopt(c, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v == 0, "SO_ACCEPTCONN on accepted = %d", v);
    /* Its data: "hi\n" (non-blocking fd: poll first). */
    p.fd = c;
    char buf[8] = {0};
    size_t have = 0;
    while (have < 3) {
        CHECK(poll(&p, 1, 5000) == 1, "no data on the accepted connection");
        ssize_t r = read(c, buf + have, 3 - have);
        CHECK(r > 0, "read accepted: %zd (%s)", r, strerror(errno));
        have += r;
    }
    CHECK(memcmp(buf, "hi\n", 3) == 0, "accepted data %s", buf);
    close(c);
    CHECK(read_line(cmd, line, sizeof line) > 0 && strcmp(line, "DONE") == 0, "peer did not see our close: %s",
          line);
    close(cmd);
    close(ls);
    return 0;
}

static int case_fork_shared(void) {
    int fd = session("ECHO");
    CHECK(fd >= 0, "session: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) _exit(write_all(fd, "from-child\n", 11) == 0 ? 0 : 1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %#x", st);
    char buf[16];
    CHECK(read_exact(fd, buf, 11) == 0, "parent read: %s", strerror(errno));
    CHECK(memcmp(buf, "from-child\n", 11) == 0, "parent read other bytes");
    /* And the parent's own writes still work. */
    CHECK(echo_roundtrip(fd, "parent\n") == 0, "%s", why);
    close(fd);
    return 0;
}

static int case_dup2(void) {
    int old = session("WATCH");
    CHECK(old >= 0, "WATCH session: %s", strerror(errno));
    char id[32];
    CHECK(read_line(old, id, sizeof id) > 0, "no watch id");
    int fresh = session("CMD");
    CHECK(fresh >= 0, "CMD session: %s", strerror(errno));
    /* dup2 the new connection over the old one's number: the old socket
     * is closed (its last reference), the number now means the new one. */
    CHECK(dup2(fresh, old) == old, "dup2: %s", strerror(errno));
    close(fresh);
    char line[64];
    int n = snprintf(line, sizeof line, "ASK %s\n", id);
    CHECK(write_all(old, line, n) == 0, "write on the dup2'd number: %s", strerror(errno));
    CHECK(read_line(old, line, sizeof line) > 0, "no answer on the dup2'd number: %s", strerror(errno));
    CHECK(strcmp(line, "EOF") == 0, "the peer did not see the old socket closed: %s", line);
    close(old);
    return 0;
}

static int scm_child(int us) {
    char b;
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &b, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(us, &m, 0) != 1) return 10;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return 11;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    timeouts(fd);
    if (echo_roundtrip(fd, "via-scm-rights\n") != 0) return 12;
    close(fd);
    if (write(us, "k", 1) != 1) return 13;
    return 0;
}

static int case_scm_rights(void) {
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair: %s", strerror(errno));
    int fd = session("ECHO");
    CHECK(fd >= 0, "session: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(sp[0]);
        close(fd);
        char num[16];
        snprintf(num, sizeof num, "%d", sp[1]);
        execl(self_exe, self_exe, "--scm-child", num, (char *)NULL);
        _exit(127);
    }
    close(sp[1]);
    char b = 's';
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = &b, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    CHECK(sendmsg(sp[0], &m, 0) == 1, "sendmsg SCM_RIGHTS: %s", strerror(errno));
    close(fd); /* the child's copy keeps the connection */
    struct timeval tv = {10, 0};
    setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char k = 0;
    ssize_t r = read(sp[0], &k, 1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "second process failed: status %#x", st);
    CHECK(r == 1 && k == 'k', "no confirmation from the second process");
    close(sp[0]);
    return 0;
}

static int case_select_high_fd(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 1010) {
        rl.rlim_cur = rl.rlim_max < 1010 ? rl.rlim_max : 1010;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    CHECK(rl.rlim_cur >= 1010, "RLIMIT_NOFILE %llu < 1010", (unsigned long long)rl.rlim_cur);
    int fd = session("ECHO");
    CHECK(fd >= 0, "session: %s", strerror(errno));
    int high = 1000;
    CHECK(dup2(fd, high) == high, "dup2 to %d: %s", high, strerror(errno));
    close(fd);
    CHECK(write_all(high, "select\n", 7) == 0, "write fd %d: %s", high, strerror(errno));
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(high, &rd);
    struct timeval tv = {5, 0};
    int n = select(high + 1, &rd, NULL, NULL, &tv);
    CHECK(n == 1 && FD_ISSET(high, &rd), "select = %d (%s)", n, strerror(errno));
    char buf[8];
    CHECK(read_exact(high, buf, 7) == 0 && memcmp(buf, "select\n", 7) == 0, "read fd %d", high);
    close(high);
    return 0;
}

static int case_peek(void) {
    int fd = session("ECHO");
    CHECK(fd >= 0, "session: %s", strerror(errno));
    const char *msg = "peek-then-read\n";
    size_t len = strlen(msg);
    CHECK(write_all(fd, msg, len) == 0, "write: %s", strerror(errno));
    char a[64] = {0}, b[64] = {0};
    ssize_t n = 0;
    for (int tries = 0; tries < 500 && (size_t)n < len; tries++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 1000);
        n = recv(fd, a, len, MSG_PEEK);
        CHECK(n > 0, "recv MSG_PEEK = %zd (%s)", n, strerror(errno));
        if ((size_t)n < len) usleep(10000);
    }
    CHECK((size_t)n == len, "peeked %zd of %zu bytes", n, len);
    CHECK(memcmp(a, msg, len) == 0, "peeked other bytes");
    CHECK(read_exact(fd, b, len) == 0, "read: %s", strerror(errno));
    CHECK(memcmp(a, b, len) == 0, "read other bytes than peeked");
    close(fd);
    return 0;
}

static int case_half_close(void) {
    int fd = session("ECHO");
    CHECK(fd >= 0, "session: %s", strerror(errno));
    CHECK(write_all(fd, "bye\n", 4) == 0, "write: %s", strerror(errno));
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
    char buf[8];
    CHECK(read_exact(fd, buf, 4) == 0 && memcmp(buf, "bye\n", 4) == 0, "reply after SHUT_WR: %s", strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf);
    CHECK(n == 0, "want EOF after the reply, read = %zd (%s)", n, strerror(errno));
    /* Writing after SHUT_WR: EPIPE (SIGPIPE ignored). */
    n = write(fd, "x", 1);
    CHECK(n < 0 && errno == EPIPE, "write after SHUT_WR = %zd (%s), want EPIPE", n, strerror(errno));
    close(fd);
    return 0;
}

static int case_names_and_options(void) {
    int fd = session("ECHO");
    CHECK(fd >= 0, "session: %s", strerror(errno));
    struct sockaddr_in me, peer;
    socklen_t ml = sizeof me, pl = sizeof peer;
    CHECK(getsockname(fd, (struct sockaddr *)&me, &ml) == 0, "getsockname: %s", strerror(errno));
    CHECK(getpeername(fd, (struct sockaddr *)&peer, &pl) == 0, "getpeername: %s", strerror(errno));
    char mip[INET_ADDRSTRLEN], pip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &me.sin_addr, mip, sizeof mip);
    inet_ntop(AF_INET, &peer.sin_addr, pip, sizeof pip);
    CHECK(ml == sizeof me && me.sin_family == AF_INET, "getsockname length %u family %d", ml, me.sin_family);
    CHECK(strcmp(mip, my_ip) == 0 && ntohs(me.sin_port) != 0, "getsockname %s:%d, want %s:<ephemeral>", mip,
          ntohs(me.sin_port), my_ip);
    CHECK(strcmp(pip, peer_ip) == 0 && ntohs(peer.sin_port) == port, "getpeername %s:%d, want %s:%d", pip,
          ntohs(peer.sin_port), peer_ip, port);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode), "fstat: not S_ISSOCK (mode %o)", st.st_mode);
    int v;
    socklen_t vl = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) == 0 && v == SOCK_STREAM, "SO_TYPE = %d", v);
    vl = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &vl) == 0 && v == AF_INET, "SO_DOMAIN = %d", v);
    vl = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &vl) == 0 && v == IPPROTO_TCP, "SO_PROTOCOL = %d", v);
    vl = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v == 0, "SO_ACCEPTCONN = %d", v);
    vl = sizeof v;
    int rc = getsockopt(fd, SOL_SOCKET, 12345, &v, &vl);
    CHECK(rc < 0 && errno == ENOPROTOOPT, "getsockopt(unknown) = %d (%s), want ENOPROTOOPT", rc, strerror(errno));
    v = 1;
    rc = setsockopt(fd, SOL_SOCKET, 12345, &v, sizeof v);
    CHECK(rc < 0 && errno == ENOPROTOOPT, "setsockopt(unknown) = %d (%s), want ENOPROTOOPT", rc, strerror(errno));
    rc = setsockopt(fd, IPPROTO_TCP, 9999, &v, sizeof v);
    CHECK(rc < 0 && errno == ENOPROTOOPT, "setsockopt(TCP, unknown) = %d (%s), want ENOPROTOOPT", rc,
          strerror(errno));
    /* The connection still works after all that. */
    CHECK(echo_roundtrip(fd, "still\n") == 0, "%s", why);
    close(fd);
    /* UDP's identity. */
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    CHECK(u >= 0, "socket: %s", strerror(errno));
    vl = sizeof v;
    CHECK(getsockopt(u, SOL_SOCKET, SO_TYPE, &v, &vl) == 0 && v == SOCK_DGRAM, "UDP SO_TYPE = %d", v);
    vl = sizeof v;
    CHECK(getsockopt(u, SOL_SOCKET, SO_DOMAIN, &v, &vl) == 0 && v == AF_INET6, "UDP SO_DOMAIN = %d", v);
    vl = sizeof v;
    CHECK(getsockopt(u, SOL_SOCKET, SO_PROTOCOL, &v, &vl) == 0 && v == IPPROTO_UDP, "UDP SO_PROTOCOL = %d", v);
    close(u);
    return 0;
}

static int case_efault(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    int rc = connect(fd, (const struct sockaddr *)(uintptr_t)8, sizeof(struct sockaddr_in));
    CHECK(rc < 0 && errno == EFAULT, "connect(bad pointer) = %d (%s), want EFAULT", rc, strerror(errno));
    /* The socket is unharmed: it still connects. */
    struct sockaddr_in a = addr4(peer_ip, port);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect after EFAULT: %s", strerror(errno));
    close(fd);
    return 0;
}

static int case_v4_mapped(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    timeouts(fd);
    int off = 0;
    CHECK(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0, "IPV6_V6ONLY: %s", strerror(errno));
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    char mapped[64];
    snprintf(mapped, sizeof mapped, "::ffff:%s", peer_ip);
    inet_pton(AF_INET6, mapped, &a.sin6_addr);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect %s: %s", mapped, strerror(errno));
    struct sockaddr_in6 me;
    socklen_t ml = sizeof me;
    CHECK(getsockname(fd, (struct sockaddr *)&me, &ml) == 0 && me.sin6_family == AF_INET6, "getsockname: %s",
          strerror(errno));
    char mip[INET6_ADDRSTRLEN], want[64];
    inet_ntop(AF_INET6, &me.sin6_addr, mip, sizeof mip);
    snprintf(want, sizeof want, "::ffff:%s", my_ip);
    CHECK(strcmp(mip, want) == 0, "getsockname %s, want %s", mip, want);
    CHECK(write_all(fd, "ECHO\n", 5) == 0, "write: %s", strerror(errno));
    CHECK(echo_roundtrip(fd, "mapped\n") == 0, "%s", why);
    close(fd);
    return 0;
}

static int udp_expect(int fd, const char *data, size_t len, int use_recvfrom) {
    char buf[2048];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = use_recvfrom ? recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)
                             : recv(fd, buf, sizeof buf, 0);
    CHECK(n >= 0, "%s: %s", use_recvfrom ? "recvfrom" : "recv", strerror(errno));
    CHECK((size_t)n == len, "datagram of %zd bytes, want %zu (boundaries lost)", n, len);
    CHECK(memcmp(buf, data, len) == 0, "datagram bytes differ");
    if (use_recvfrom) {
        char fip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &from.sin_addr, fip, sizeof fip);
        CHECK(fl == sizeof from && strcmp(fip, peer_ip) == 0 && ntohs(from.sin_port) == port,
              "source %s:%d (len %u), want %s:%d", fip, ntohs(from.sin_port), fl, peer_ip, port);
    }
    return 0;
}

static int case_udp(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    timeouts(fd);
    struct sockaddr_in a = addr4(peer_ip, port);
    static char big[1400];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7 + 1);
    struct {
        const char *p;
        size_t len;
    } dg[3] = {{"x", 1}, {big, 100}, {big + 3, 1397}};
    /* sendto/recvfrom, exact boundaries and the source address. */
    for (int i = 0; i < 3; i++) {
        ssize_t n = sendto(fd, dg[i].p, dg[i].len, 0, (struct sockaddr *)&a, sizeof a);
        CHECK(n == (ssize_t)dg[i].len, "sendto = %zd (%s)", n, strerror(errno));
        CHECK(udp_expect(fd, dg[i].p, dg[i].len, 1) == 0, "sendto/recvfrom #%d: %s", i, why);
    }
    /* Two in flight, read with recv then recvfrom. */
    CHECK(sendto(fd, big, 10, 0, (struct sockaddr *)&a, sizeof a) == 10, "sendto: %s", strerror(errno));
    CHECK(sendto(fd, big, 20, 0, (struct sockaddr *)&a, sizeof a) == 20, "sendto: %s", strerror(errno));
    CHECK(udp_expect(fd, big, 10, 0) == 0, "mixed, recv: %s", why);
    CHECK(udp_expect(fd, big, 20, 1) == 0, "mixed, recvfrom: %s", why);
    close(fd);

    /* Connected UDP: plain send/recv. */
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    timeouts(fd);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect UDP: %s", strerror(errno));
    struct sockaddr_in pa;
    socklen_t pl = sizeof pa;
    CHECK(getpeername(fd, (struct sockaddr *)&pa, &pl) == 0 && pa.sin_port == htons(port), "getpeername UDP: %s",
          strerror(errno));
    CHECK(send(fd, "connected", 9, 0) == 9, "send: %s", strerror(errno));
    CHECK(udp_expect(fd, "connected", 9, 0) == 0, "connected UDP: %s", why);

    /* sendmmsg/recvmmsg, on the connected socket. */
    enum { N = 4 };
    struct mmsghdr out[N], in[N];
    struct iovec oiov[N], iiov[N];
    char ibuf[N][256];
    memset(out, 0, sizeof out);
    memset(in, 0, sizeof in);
    for (int i = 0; i < N; i++) {
        oiov[i].iov_base = big + i;
        oiov[i].iov_len = 50 + i * 30;
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
        iiov[i].iov_base = ibuf[i];
        iiov[i].iov_len = sizeof ibuf[i];
        in[i].msg_hdr.msg_iov = &iiov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd, out, N, 0);
    CHECK(sent == N, "sendmmsg = %d (%s)", sent, strerror(errno));
    for (int i = 0; i < N; i++) CHECK(out[i].msg_len == oiov[i].iov_len, "sendmmsg #%d: %u bytes", i, out[i].msg_len);
    int got = 0;
    for (int tries = 0; got < N && tries < 50; tries++) {
        struct timespec t = {5, 0};
        int n = recvmmsg(fd, in + got, N - got, MSG_WAITFORONE, &t);
        CHECK(n > 0, "recvmmsg = %d (%s) after %d", n, strerror(errno), got);
        got += n;
    }
    CHECK(got == N, "recvmmsg: %d of %d datagrams", got, N);
    for (int i = 0; i < N; i++) {
        CHECK(in[i].msg_len == oiov[i].iov_len, "recvmmsg #%d: %u bytes, want %zu", i, in[i].msg_len,
              oiov[i].iov_len);
        CHECK(memcmp(ibuf[i], oiov[i].iov_base, oiov[i].iov_len) == 0, "recvmmsg #%d bytes differ", i);
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--scm-child") == 0) return scm_child(atoi(argv[2]));
    if (argc != 6) {
        fprintf(stderr, "usage: %s PEER_IPV4 PORT CLOSED_PORT MY_IPV4 LISTEN_PORT\n", argv[0]);
        return 2;
    }
    peer_ip = argv[1];
    port = atoi(argv[2]);
    closed_port = atoi(argv[3]);
    my_ip = argv[4];
    listen_port = atoi(argv[5]);
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    self_exe = n > 0 ? exe : argv[0];
    alarm(60); /* never hang a test suite */

    report("nonblocking_connect_epoll", case_nonblocking_connect());
    report("connect_refused", case_refused());
    report("accept4_flags", case_accept4());
    report("fork_shared_socket", case_fork_shared());
    report("dup2_over_socket", case_dup2());
    report("scm_rights_to_exec_child", case_scm_rights());
    report("select_fd_1000", case_select_high_fd());
    report("msg_peek", case_peek());
    report("half_close", case_half_close());
    report("names_and_options", case_names_and_options());
    report("connect_efault", case_efault());
    report("v4_mapped", case_v4_mapped());
    report("udp", case_udp());
    printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
