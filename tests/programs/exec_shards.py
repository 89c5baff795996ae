"""Many TCP connections at once, every byte checked, for `joyride exec --cores N`.

usage:
  exec_shards.py server ADDR PORT          echo server: each connection gets its
                                           bytes back until EOF; prints "listening"
  exec_shards.py client ADDR PORT T M LEN  T threads, M connections each, half of
                                           the threads connect non-blocking: send
                                           LEN seeded bytes, read them back, compare;
                                           prints "ok T*M" or fails
  exec_shards.py udpecho ADDR PORT         UDP echo; prints "listening"
  exec_shards.py udp ADDR PORT N           N datagrams to a UDP echo, each checked;
                                           prints "udp ok N"
"""
import hashlib
import select
import socket
import sys
import threading


def payload(seed, n):
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def echo(conn):
    with conn:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                return
            conn.sendall(data)


def server(addr, port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1024)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def connect(addr, port, nonblocking):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if not nonblocking:
        s.settimeout(20)
        s.connect((addr, port))
        return s
    s.setblocking(False)
    err = s.connect_ex((addr, port))
    if err not in (0, 115):  # EINPROGRESS
        raise OSError(err, "connect_ex")
    _, w, _ = select.select([], [s], [], 20)
    if not w:
        raise TimeoutError("non-blocking connect did not finish")
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, "SO_ERROR after connect")
    s.setblocking(True)
    s.settimeout(20)
    return s


def client(addr, port, threads, each, length):
    failures = []
    done = [0]
    lock = threading.Lock()

    def run(t):
        try:
            for i in range(each):
                data = payload(t * 100003 + i, length)
                with connect(addr, port, t % 2 == 1) as s:
                    sender = threading.Thread(target=s.sendall, args=(data,))
                    sender.start()
                    got = bytearray()
                    while len(got) < length:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            break
                        got += chunk
                    sender.join()
                    if bytes(got) != data:
                        raise ValueError(f"thread {t} connection {i}: {len(got)} bytes back, content differs")
                with lock:
                    done[0] += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                failures.append(f"thread {t}: {e!r}")

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"ok {done[0]}", flush=True)


def udpecho(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("listening", flush=True)
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)


def udp(addr, port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for i in range(n):
        data = payload(i, 512)
        s.sendto(data, (addr, port))
        got, _ = s.recvfrom(2048)
        if got != data:
            print(f"datagram {i} differs", file=sys.stderr)
            sys.exit(1)
    print(f"udp ok {n}", flush=True)


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "server":
        server(addr, port)
    elif mode == "client":
        client(addr, port, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif mode == "udpecho":
        udpecho(addr, port)
    elif mode == "udp":
        udp(addr, port, int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")


main()
