"""Kernel-side peers of the `joyride exec` acceptance tests (tests/tests/exec.rs).

Run with /usr/bin/python3 in the peer namespace.  Modes:

  http ADDR PORT DIR        HTTP/1.1 server: GET /NAME serves DIR/NAME,
                            POST /sha256 answers the hex SHA-256 of the body
  wait ADDR PORT SECS       exits 0 once a TCP connect to ADDR:PORT succeeds
  ncpeer ADDR PORT SEND RECV_LEN OUT
                            accepts one connection, sends the file SEND, reads
                            RECV_LEN bytes into OUT, closes
  ncclient ADDR PORT SEND RECV_LEN OUT SECS
                            connects (retrying for SECS), sends SEND, reads
                            RECV_LEN bytes into OUT, closes
  corners ADDR PORT         TCP "session" server and UDP echo on one port,
                            for exec_corners.c (see session())
  churn ADDR PORT           accepts, sends b"k", closes; forever
"""

import hashlib
import http.server
import os
import socket
import socketserver
import sys
import threading
import time


def http_mode(addr, port, root):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = os.path.join(root, os.path.basename(self.path))
            try:
                f = open(path, "rb")
            except OSError:
                self.send_error(404)
                return
            with f:
                size = os.fstat(f.fileno()).st_size
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.flush()
                sent = 0
                while sent < size:
                    n = os.sendfile(self.connection.fileno(), f.fileno(), sent, size - sent)
                    if n == 0:
                        break
                    sent += n

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            if self.headers.get("Expect", "").lower() == "100-continue":
                pass  # BaseHTTPRequestHandler already answered 100 Continue
            h = hashlib.sha256()
            left = length
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            body = (h.hexdigest() + "\n").encode()
            self.send_response(200 if left == 0 else 400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 256

    Server((addr, port), Handler).serve_forever()


def wait_mode(addr, port, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.05)
    print(f"nothing answers on {addr}:{port} after {secs} s", file=sys.stderr)
    return 1


def exchange(sock, send_path, recv_len, out_path):
    """Sends the file while reading recv_len bytes; returns when both are done."""
    data = open(send_path, "rb").read()
    sender = threading.Thread(target=sock.sendall, args=(data,))
    sender.start()
    got = bytearray()
    while len(got) < recv_len:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    sender.join()
    with open(out_path, "wb") as f:
        f.write(got)
    sock.close()
    return 0 if len(got) == recv_len else 1


def ncpeer_mode(addr, port, send_path, recv_len, out_path):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    print("listening", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(60)
    return exchange(conn, send_path, recv_len, out_path)


def ncclient_mode(addr, port, send_path, recv_len, out_path, secs):
    deadline = time.time() + secs
    while True:
        try:
            sock = socket.create_connection((addr, port), timeout=1)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    sock.settimeout(60)
    return exchange(sock, send_path, recv_len, out_path)


# --- corners --------------------------------------------------------------

closed = {}  # session id -> threading.Event set at EOF
closed_lock = threading.Lock()
next_id = [0]


def readline(conn):
    """One line read a byte at a time (nothing beyond it is consumed)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        line += b
    return bytes(line).strip()


def session(conn):
    """A TCP session: the first line picks the mode.

    ECHO     echo everything until EOF, then close
    WATCH    answer "ID\\n", then wait for EOF and remember it
    CMD      lines: "ASK ID" -> "EOF"/"OPEN" (waits up to 3 s for the EOF);
             "CONNECT ADDR PORT" -> connects there, sends "hi\\n", waits for
             EOF, answers "DONE"
    """
    conn.settimeout(30)
    mode = readline(conn)
    if mode == b"ECHO":
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    elif mode == b"WATCH":
        with closed_lock:
            next_id[0] += 1
            sid = next_id[0]
            closed[sid] = threading.Event()
        conn.sendall(b"%d\n" % sid)
        while conn.recv(65536):
            pass
        closed[sid].set()
    elif mode == b"CMD":
        while True:
            words = readline(conn).split()
            if not words:
                break
            if words[:1] == [b"ASK"]:
                ev = closed.get(int(words[1]))
                ok = ev is not None and ev.wait(3)
                conn.sendall(b"EOF\n" if ok else b"OPEN\n")
            elif words[:1] == [b"CONNECT"]:
                c = socket.create_connection((words[1].decode(), int(words[2])), timeout=10)
                c.sendall(b"hi\n")
                while c.recv(65536):
                    pass
                c.close()
                conn.sendall(b"DONE\n")
    conn.close()


def corners_mode(addr, port):
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))

    def udp_echo():
        while True:
            data, src = udp.recvfrom(65536)
            udp.sendto(data, src)

    threading.Thread(target=udp_echo, daemon=True).start()
    print("listening", flush=True)
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=session, args=(conn,), daemon=True).start()


def churn_mode(addr, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(512)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            conn.sendall(b"k")
        except OSError:
            pass
        conn.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "http":
        return http_mode(args[0], int(args[1]), args[2])
    if mode == "wait":
        return wait_mode(args[0], int(args[1]), float(args[2]))
    if mode == "ncpeer":
        return ncpeer_mode(args[0], int(args[1]), args[2], int(args[3]), args[4])
    if mode == "ncclient":
        return ncclient_mode(args[0], int(args[1]), args[2], int(args[3]), args[4], float(args[5]))
    if mode == "corners":
        return corners_mode(args[0], int(args[1]))
    if mode == "churn":
        return churn_mode(args[0], int(args[1]))
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
