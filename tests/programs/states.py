"""What a TCP socket shows in each state: readiness, errnos, signals.

usage: states.py self               both ends in this process, on 127.0.0.1
       states.py server HOST PORT   the peer: acts on what each client asks
       states.py client HOST PORT   the probes, against a `server`

Prints one line per probe, `name: result`, so that two runs (the kernel's
stack and Joyride's) can be compared line by line. A result is the poll
flags right now, or what a call returned (`=N`, `=b'..'`) or its errno
name, and `+SIGPIPE` when the call raised SIGPIPE. Every probe's socket is
its own connection; the server is told what to do with it by the first line
the client sends (`close`, `reset`, `hold`, `echo`).
"""

import errno
import select
import signal
import socket
import struct
import sys
import threading
import time

PIPES = []


def on_pipe(signum, frame):
    PIPES.append(signum)


signal.signal(signal.SIGPIPE, on_pipe)

FLAGS = [
    ("IN", select.POLLIN),
    ("PRI", select.POLLPRI),
    ("OUT", select.POLLOUT),
    ("ERR", select.POLLERR),
    ("HUP", select.POLLHUP),
    ("RDHUP", getattr(select, "POLLRDHUP", 0x2000)),
]


def flags(s, wait=0.0):
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLPRI | select.POLLOUT | FLAGS[-1][1])
    ev = p.poll(int(wait * 1000))
    got = ev[0][1] if ev else 0
    return "|".join(n for n, f in FLAGS if got & f) or "-"


def call(fn):
    del PIPES[:]
    try:
        r = fn()
        out = "=" + (repr(r) if isinstance(r, bytes) else str(r))
    except OSError as e:
        out = errno.errorcode.get(e.errno, str(e.errno))
    if PIPES:
        out += "+SIGPIPE"
    return out


def report(name, result):
    print("%s: %s" % (name, result), flush=True)


def settle(s, want, limit=5.0):
    """Waits until `s` polls `want` (a flag name), or `limit` seconds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if want in flags(s, 0.05).split("|"):
            return
    return


# ---------------------------------------------------------------- server


def serve_one(c):
    f = c.makefile("rb")
    what = f.readline().strip().decode()
    if what == "close":
        c.close()
    elif what == "reset":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    elif what == "echo":
        c.sendall(b"0123456789")
        time.sleep(0.3)
        c.sendall(b"abcdefghij")
        time.sleep(3)
        c.close()
    elif what == "hold":
        time.sleep(5)
        c.close()
    else:
        c.close()


def server(host, port, ready=None):
    ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)
    if ready is not None:
        ready.append(ls.getsockname()[1])
    else:
        print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


# ---------------------------------------------------------------- probes


def fresh():
    s = socket.socket()
    report("fresh poll", flags(s))
    s.setblocking(False)
    report("fresh recv", call(lambda: s.recv(1)))
    report("fresh send", call(lambda: s.send(b"x")))
    report("fresh send nosignal", call(lambda: s.send(b"x", socket.MSG_NOSIGNAL)))
    report("fresh getpeername", call(lambda: s.getpeername()))
    report("fresh shutdown", call(lambda: s.shutdown(socket.SHUT_RDWR)))
    report("fresh SO_ERROR", call(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
    s.close()


def local_address(addr):
    """This end's address towards `addr` (what a connection would use)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((addr[0], 9))
    local = u.getsockname()[0]
    u.close()
    return local


def listener(addr):
    ls = socket.socket()
    ls.bind(("0.0.0.0", 0))
    ls.listen(8)
    ls.setblocking(False)
    report("listen poll", flags(ls))
    report("listen recv", call(lambda: ls.recv(1)))
    report("listen send", call(lambda: ls.send(b"x")))
    report("listen accept", call(lambda: ls.accept()[0].close()))
    c = socket.create_connection((local_address(addr), ls.getsockname()[1]))
    settle(ls, "IN")
    report("listen pending poll", flags(ls))
    a, _ = ls.accept()
    report("listen accepted poll", flags(ls))
    a.close()
    c.close()
    ls.close()


def connect(addr, what):
    c = socket.create_connection(addr, timeout=10)
    c.sendall(what.encode() + b"\n")
    return c


def peer_closed(addr):
    c = connect(addr, "close")
    settle(c, "RDHUP")
    report("peer closed poll", flags(c))
    report("peer closed recv", call(lambda: c.recv(10)))
    # The first write after the FIN is taken (the peer answers it with RST),
    # the ones after the RST fail.
    report("peer closed send", call(lambda: c.send(b"x")))
    settle(c, "ERR")
    report("peer closed then reset poll", flags(c))
    report("peer closed then reset send", call(lambda: c.send(b"x")))
    report("peer closed then reset send again", call(lambda: c.send(b"x")))
    c.close()


def peer_reset(addr):
    c = connect(addr, "reset")
    settle(c, "ERR")
    report("reset poll", flags(c))
    report("reset SO_ERROR", call(lambda: c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
    c.close()
    c = connect(addr, "reset")
    settle(c, "ERR")
    report("reset recv", call(lambda: c.recv(10)))
    report("reset recv again", call(lambda: c.recv(10)))
    report("reset send", call(lambda: c.send(b"x")))
    report("reset send nosignal", call(lambda: c.send(b"x", socket.MSG_NOSIGNAL)))
    c.close()


def shut(addr):
    c = connect(addr, "hold")
    c.shutdown(socket.SHUT_WR)
    report("shut wr poll", flags(c))
    report("shut wr send", call(lambda: c.send(b"x")))
    c.setblocking(False)
    report("shut wr recv", call(lambda: c.recv(1)))
    c.close()
    c = connect(addr, "hold")
    c.shutdown(socket.SHUT_RD)
    report("shut rd poll", flags(c))
    report("shut rd recv", call(lambda: c.recv(1)))
    report("shut rd send", call(lambda: c.send(b"x")))
    c.close()


def flags_on_data(addr):
    c = connect(addr, "echo")
    settle(c, "IN")
    report("data poll", flags(c))
    report("data peek", call(lambda: c.recv(4, socket.MSG_PEEK)))
    report("data recv", call(lambda: c.recv(4)))
    report("data waitall", call(lambda: c.recv(16, socket.MSG_WAITALL)))
    report("data dontwait", call(lambda: c.recv(16, socket.MSG_DONTWAIT)))
    settle(c, "RDHUP", 6)
    report("data eof poll", flags(c))
    report("data eof recv", call(lambda: c.recv(16)))
    c.close()


def refused(addr):
    # A port nobody listens on (tcpmux, on these test hosts).
    port = 1
    c = socket.socket()
    report("refused connect", call(lambda: c.connect((addr[0], port))))
    report("refused connect again", call(lambda: c.connect((addr[0], port))))
    c.close()
    c = socket.socket()
    c.setblocking(False)
    report("refused nonblocking connect", call(lambda: c.connect((addr[0], port))))
    settle(c, "ERR")
    report("refused nonblocking poll", flags(c))
    report("refused nonblocking SO_ERROR", call(lambda: c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
    c.close()


def epoll_before_connect(addr):
    # nginx registers an upstream socket with epoll before connecting it.
    c = socket.socket()
    c.setblocking(False)
    ep = select.epoll()
    ep.register(c, select.EPOLLIN | select.EPOLLOUT | select.EPOLLET | FLAGS[-1][1])
    report("epoll before connect", call(lambda: c.connect(addr)))
    got = 0
    end = time.monotonic() + 5
    while not got & select.EPOLLOUT and time.monotonic() < end:
        for _, ev in ep.poll(0.5):
            got |= ev
    report("epoll before connect sees", "|".join(n for n, f in FLAGS if got & f) or "-")
    c.sendall(b"close\n")
    ep.close()
    c.close()


def probes(addr):
    fresh()
    listener(addr)
    peer_closed(addr)
    peer_reset(addr)
    shut(addr)
    flags_on_data(addr)
    refused(addr)
    epoll_before_connect(addr)


def main():
    mode = sys.argv[1]
    if mode == "server":
        server(sys.argv[2], int(sys.argv[3]))
    elif mode == "client":
        probes((sys.argv[2], int(sys.argv[3])))
    elif mode == "self":
        ready = []
        threading.Thread(target=server, args=("127.0.0.1", 0, ready), daemon=True).start()
        while not ready:
            time.sleep(0.01)
        probes(("127.0.0.1", ready[0]))
    else:
        sys.exit("unknown mode " + mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
