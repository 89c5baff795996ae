/* fdswap: tries to win races against a supervisor that serves trapped calls.
 *
 *   fdswap SECONDS MAX_ITERATIONS DIR
 *
 * DIR holds what the test (root) prepared:
 *   DIR/srv/st-open  AF_UNIX stream listener, mode 0666 (anyone may connect)
 *   DIR/srv/st-shut  AF_UNIX stream listener, mode 0600 (root only)
 *   DIR/srv/dg-open  AF_UNIX datagram receiver with SO_PASSCRED, mode 0666
 *   DIR/srv/dg-shut  AF_UNIX datagram receiver with SO_PASSCRED, mode 0600
 *   DIR/pub/         a directory this user may create files in
 *   DIR/sec/         a root-only directory (0700)
 *
 * Thread A loops on one fd number T: connect(T, "DIR/srv/st-????") (and
 * every 8th time the same connect on a socket of its own),
 * bind(T, "DIR/???/bNNNNNNNN"), and sendmsg(T, to "DIR/srv/dg-????",
 * SCM_CREDENTIALS {pid, uid ?, gid ?}).  Thread B keeps replacing T with
 * dup2() by a fresh AF_UNIX stream, AF_UNIX datagram, AF_INET TCP, AF_INET
 * UDP or AF_NETLINK socket (non-blocking).  Thread C keeps flipping the bytes of the
 * addresses A passes between the permitted and the root-only names
 * ("open" <-> "shut", "pub" <-> "sec") and the claimed credentials between
 * the caller's own ids and 0.  A reads nothing back: the judges are the
 * root-owned servers (what they accepted, and from whom) and the root-only
 * directory (what appeared in it).
 *
 * Prints "count OP ERRNO N" for every outcome (ERRNO "OK" on success),
 * then "iterations N", and exits 7 (so that a wrapper passing the status
 * through can be told from one that invents it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#define T 100 /* the fd number every thread fights over */

enum op { OP_CONNECT, OP_CONNECT_OWN, OP_BIND, OP_SENDMSG, OP_SWAP, NOPS };
static const char *op_name[NOPS] = {"connect", "connect-own", "bind", "sendmsg", "dup2"};
#define NERR 256
static unsigned long counts[NOPS][NERR]; /* [op][0 = ok, else errno] */

static volatile int stop;

/* The shared buffers thread C rewrites while A's calls are in flight. */
static struct sockaddr_un conn_addr, bind_addr, dg_addr;
static size_t conn_off, bind_off, dg_off; /* offset of the flipped name */
static union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(struct ucred))];
} cmsg;
static struct ucred *cred;

static void count(enum op op, int rc)
{
    int e = rc < 0 ? errno : 0;
    __atomic_add_fetch(&counts[op][e < NERR ? e : NERR - 1], 1, __ATOMIC_RELAXED);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t set_path(struct sockaddr_un *a, const char *dir, const char *rel, const char *marker)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, rel) >= (int)sizeof a->sun_path) {
        fprintf(stderr, "fdswap: path too long\n");
        exit(2);
    }
    /* the last occurrence: DIR itself may contain the marker */
    char *p = NULL, *q = a->sun_path;
    while ((q = strstr(q, marker)) != NULL)
        p = q++;
    return (size_t)(p - a->sun_path);
}

static void *swapper(void *arg)
{
    (void)arg;
    /* AF_INET next to AF_UNIX datagram most often: a call looked up on a
     * Joyride socket and then performed on the AF_UNIX one that replaced
     * it is the race most worth winning. */
    static const int kinds[][3] = {
        {AF_UNIX, SOCK_STREAM, 0}, {AF_INET, SOCK_DGRAM, 0},  {AF_UNIX, SOCK_DGRAM, 0},
        {AF_INET, SOCK_STREAM, 0}, {AF_UNIX, SOCK_DGRAM, 0},  {AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE},
        {AF_INET, SOCK_DGRAM, 0},  {AF_UNIX, SOCK_DGRAM, 0},
    };
    const unsigned nkinds = sizeof kinds / sizeof kinds[0];
    unsigned i = 0;
    while (!stop) {
        const int *k = kinds[i++ % nkinds];
        int s = socket(k[0], k[1] | SOCK_NONBLOCK, k[2]);
        if (s < 0) {
            count(OP_SWAP, s);
            continue;
        }
        count(OP_SWAP, dup2(s, T) < 0 ? -1 : 0);
        close(s);
        if ((i & 7) == 0)
            sched_yield();
    }
    return NULL;
}

static void flip4(char *p, const char *a, const char *b, int which)
{
    const char *s = which ? b : a;
    for (int i = 0; i < 4 && s[i]; i++)
        __atomic_store_n(&p[i], s[i], __ATOMIC_RELAXED);
}

static void *flipper(void *arg)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    (void)arg;
    for (unsigned i = 0; !stop; i++) {
        int w = i & 1;
        flip4(conn_addr.sun_path + conn_off, "open", "shut", w);
        flip4(bind_addr.sun_path + bind_off, "pub", "sec", w);
        flip4(dg_addr.sun_path + dg_off, "open", "shut", (i >> 1) & 1);
        __atomic_store_n(&cred->uid, w ? 0 : uid, __ATOMIC_RELAXED);
        __atomic_store_n(&cred->gid, (i >> 2) & 1 ? 0 : gid, __ATOMIC_RELAXED);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fdswap SECONDS MAX_ITERATIONS DIR\n");
        return 2;
    }
    double secs = atof(argv[1]);
    unsigned long max = strtoul(argv[2], NULL, 10);
    const char *dir = argv[3];

    conn_off = set_path(&conn_addr, dir, "srv/st-open", "open");
    bind_off = set_path(&bind_addr, dir, "pub/b00000000", "pub");
    dg_off = set_path(&dg_addr, dir, "srv/dg-open", "open");
    size_t num_off = strlen(bind_addr.sun_path) - 8;
    cmsg.h.cmsg_len = CMSG_LEN(sizeof(struct ucred));
    cmsg.h.cmsg_level = SOL_SOCKET;
    cmsg.h.cmsg_type = SCM_CREDENTIALS;
    cred = (struct ucred *)CMSG_DATA(&cmsg.h);
    cred->pid = getpid();
    cred->uid = getuid();
    cred->gid = getgid();

    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0 || dup2(s, T) < 0) {
        perror("fdswap: initial socket");
        return 2;
    }
    close(s);

    pthread_t b, c;
    if (pthread_create(&b, NULL, swapper, NULL) || pthread_create(&c, NULL, flipper, NULL)) {
        fprintf(stderr, "fdswap: pthread_create failed\n");
        return 2;
    }

    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    double end = now() + secs;
    unsigned long n;
    for (n = 0; n < max && (n & 255 || now() < end); n++) {
        count(OP_CONNECT, connect(T, (struct sockaddr *)&conn_addr, sizeof conn_addr));
        if ((n & 7) == 0) {
            /* On a socket of A's own (only the address races): most of the
             * permitted connections come from here. */
            int own = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (own >= 0) {
                count(OP_CONNECT_OWN, connect(own, (struct sockaddr *)&conn_addr, sizeof conn_addr));
                close(own);
            }
        }

        char num[9];
        snprintf(num, sizeof num, "%08lx", n & 0xffffffff);
        memcpy(bind_addr.sun_path + num_off, num, 8);
        int rc = bind(T, (struct sockaddr *)&bind_addr, sizeof bind_addr);
        count(OP_BIND, rc);
        if (rc == 0) {
            /* A file this user made in pub/ goes; one in sec/ cannot. */
            char path[sizeof bind_addr.sun_path];
            snprintf(path, sizeof path, "%s/pub/b%s", dir, num);
            unlink(path);
        }

        struct msghdr m = {
            .msg_name = &dg_addr,
            .msg_namelen = sizeof dg_addr,
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = cmsg.buf,
            .msg_controllen = sizeof cmsg.buf,
        };
        count(OP_SENDMSG, sendmsg(T, &m, MSG_DONTWAIT | MSG_NOSIGNAL));
    }
    stop = 1;
    pthread_join(b, NULL);
    pthread_join(c, NULL);

    for (int op = 0; op < NOPS; op++)
        for (int e = 0; e < NERR; e++)
            if (counts[op][e]) {
                const char *name = e ? strerrorname_np(e) : "OK";
                printf("count %s %s %lu\n", op_name[op], name ? name : "E?", counts[op][e]);
            }
    printf("iterations %lu\n", n);
    fflush(stdout);
    return 7;
}
