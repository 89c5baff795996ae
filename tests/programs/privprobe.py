"""Privilege probe of the differential test tests/tests/privilege.rs (issue 12).

Run with /usr/bin/python3 (stdlib only). Modes:

  serve DIR     as root, outside Joyride: AF_UNIX servers the probe talks to,
                and the directories it binds in; prints "listening".
                  DIR/stream0600.sock, DIR/stream0666.sock  stream listeners
                      (that mode, owned by root); each connection is answered
                      with one JSON line of what SO_PEERCRED / SO_PEERGROUPS
                      said about the peer, then closed
                  DIR/dgram0600.sock, DIR/dgram0666.sock  datagram sockets with
                      SO_PASSCRED; a datagram TAG makes DIR/seen/TAG.json with
                      the SCM_CREDENTIALS the kernel delivered
                  DIR/private  0700, root's;  DIR/sticky  01777;  DIR/seen  0755

  probe --dir DIR --tag TAG --stack IP --stack6 IP6 [--groups G,G] [--lo-up]
                performs every case of the groups (family: AF_UNIX, raw and
                packet sockets; stack: binds and options on the stack's
                addresses; kernel: the same on loopback) and prints one JSON
                line per case: {"case", "group", "ok", "errno", facts...,
                "info": {...}}. "info" holds what may differ between two runs
                of the same program (pids, namespace inodes) and is not
                compared. TAG makes the paths this run creates unique.
                --lo-up first brings `lo` up (for `unshare -Urn`, whose new
                network namespace starts with it down), through an AF_UNIX
                socket's ioctl so that no call of it is trapped.
"""

import errno
import fcntl
import json
import os
import socket
import struct
import sys
import threading
import time

SO_PEERGROUPS = 59
SO_BUSY_POLL = 46
SO_PREFER_BUSY_POLL = 69
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SO_PASSCRED = 16
SCM_CREDENTIALS = 2
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
TCP_REPAIR = 19
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else repr(e)


# ---------------------------------------------------------------- server


def peer_json(conn):
    pid, uid, gid = struct.unpack("iII", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * 256)
        groups = sorted(struct.unpack("%dI" % (len(raw) // 4), raw))
    except OSError as e:
        groups = errname(e)
    return {"pid": pid, "uid": uid, "gid": gid, "groups": groups}


def serve_stream(srv):
    while True:
        conn, _ = srv.accept()
        with conn:
            try:
                conn.sendall((json.dumps(peer_json(conn)) + "\n").encode())
            except OSError:
                pass


def serve_dgram(srv, seen):
    space = socket.CMSG_SPACE(12)
    while True:
        data, anc, _, _ = srv.recvmsg(256, space)
        tag = data.decode(errors="replace")
        if not tag or "/" in tag or tag.startswith("."):
            continue
        out = {"creds": None}
        for level, kind, body in anc:
            if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS and len(body) >= 12:
                pid, uid, gid = struct.unpack("iII", body[:12])
                out = {"creds": {"pid": pid, "uid": uid, "gid": gid}}
        tmp = os.path.join(seen, "." + tag)
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.chmod(tmp, 0o644)
        os.rename(tmp, os.path.join(seen, tag + ".json"))


def serve(d):
    os.umask(0)
    for name, mode in (("private", 0o700), ("sticky", 0o1777), ("seen", 0o755)):
        p = os.path.join(d, name)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
    threads = []
    for mode in (0o600, 0o666):
        path = os.path.join(d, "stream%04o.sock" % mode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, mode)
        s.listen(64)
        threads.append(threading.Thread(target=serve_stream, args=(s,), daemon=True))
        path = os.path.join(d, "dgram%04o.sock" % mode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        s.bind(path)
        os.chmod(path, mode)
        threads.append(threading.Thread(target=serve_dgram, args=(s, os.path.join(d, "seen")), daemon=True))
    for t in threads:
        t.start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


# ---------------------------------------------------------------- probe


class Probe:
    def __init__(self, d, tag, stack, stack6):
        self.dir, self.tag, self.stack, self.stack6 = d, tag, stack, stack6
        self.seq = 0

    def unique(self, what):
        self.seq += 1
        return "%s.%s%d" % (self.tag, what, self.seq)

    def wait_seen(self, tag):
        path = os.path.join(self.dir, "seen", tag + ".json")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    return json.load(f)["creds"]
            except (OSError, ValueError):
                time.sleep(0.01)
        return "nothing arrived"

    # -- family: cases whose socket Joyride never serves

    def whoami(self, r):
        status = {}
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                status[k] = v.split()
        for k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd", "Umask"):
            r[k] = status.get(k)
        r["info"].update(
            pid=os.getpid(),
            NoNewPrivs=status.get("NoNewPrivs"),
            Seccomp=status.get("Seccomp"),
            userns=os.readlink("/proc/self/ns/user"),
            netns=os.readlink("/proc/self/ns/net"),
        )

    def unix_stream(self, r, mode):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(os.path.join(self.dir, "stream%04o.sock" % mode))
            _, uid, gid = struct.unpack("iII", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            r["server_uid"], r["server_gid"] = uid, gid
            line = s.makefile().readline()
        seen = json.loads(line)
        r["seen_uid"], r["seen_gid"], r["seen_groups"] = seen["uid"], seen["gid"], seen["groups"]
        r["info"]["seen_pid_is_self"] = seen["pid"] == os.getpid()

    def unix_connect_0600(self, r):
        self.unix_stream(r, 0o600)

    def unix_connect_0666(self, r):
        self.unix_stream(r, 0o666)

    def dgram(self, r, mode, creds):
        tag = self.unique("dg")
        path = os.path.join(self.dir, "dgram%04o.sock" % mode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            if creds is None:
                s.sendto(tag.encode(), path)
            else:
                anc = [(socket.SOL_SOCKET, SCM_CREDENTIALS, struct.pack("iII", *creds))]
                s.sendmsg([tag.encode()], anc, 0, path)
        seen = self.wait_seen(tag)
        if isinstance(seen, dict):
            r["seen_uid"], r["seen_gid"] = seen["uid"], seen["gid"]
            r["info"]["seen_pid_is_self"] = seen["pid"] == os.getpid()
        else:
            r["seen"] = seen

    def unix_dgram_sendto_0600(self, r):
        self.dgram(r, 0o600, None)

    def unix_dgram_sendto_0666(self, r):
        self.dgram(r, 0o666, None)

    def unix_dgram_own_creds(self, r):
        """SCM_CREDENTIALS naming the caller itself: always allowed."""
        self.dgram(r, 0o666, (os.getpid(), os.getuid(), os.getgid()))

    def unix_dgram_forge_root(self, r):
        """SCM_CREDENTIALS claiming uid/gid 0: needs CAP_SETUID/CAP_SETGID."""
        self.dgram(r, 0o666, (os.getpid(), 0, 0))

    def unix_dgram_forge_pid1(self, r):
        """SCM_CREDENTIALS claiming pid 1: needs CAP_SYS_ADMIN."""
        self.dgram(r, 0o666, (1, os.getuid(), os.getgid()))

    def socket_file(self, r, path):
        st = os.stat(path)
        r["owner_uid"], r["owner_gid"], r["mode"] = st.st_uid, st.st_gid, "%04o" % (st.st_mode & 0o7777)

    def unix_bind_private(self, r):
        path = os.path.join(self.dir, "private", self.unique("b") + ".sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(path)
            self.socket_file(r, path)

    def unix_bind_chmod(self, r):
        """PostgreSQL: bind in a writable directory, chmod the socket file."""
        path = os.path.join(self.dir, "sticky", self.unique("b") + ".sock")
        old = os.umask(0o027)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.bind(path)
                self.socket_file(r, path)
                try:
                    os.chmod(path, 0o770)
                    r["chmod"] = "ok"
                except OSError as e:
                    r["chmod"] = errname(e)
                r["mode_after_chmod"] = "%04o" % (os.stat(path).st_mode & 0o7777)
        finally:
            os.umask(old)

    def raw_tcp(self, r):
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()

    def raw_icmp(self, r):
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()

    def raw6_icmpv6(self, r):
        socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6).close()

    def packet_raw(self, r):
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)).close()

    def ping_dgram(self, r):
        """ICMP datagram socket: allowed by net.ipv4.ping_group_range only."""
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()


def bind_case(family, kind, where, port):
    def run(self, r):
        addr = {"stack": self.stack, "stack6": self.stack6}.get(where, where)
        with socket.socket(family, kind) as s:
            s.bind((addr, port))
            r["port"] = s.getsockname()[1]

    return run


def congestion(which):
    """The first algorithm that is available but not allowed (restricted:
    setting it needs CAP_NET_ADMIN) or allowed; None if there is none."""
    try:
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            avail = f.read().split()
        with open("/proc/sys/net/ipv4/tcp_allowed_congestion_control") as f:
            allowed = f.read().split()
    except OSError:
        return None
    pick = [a for a in avail if (a in allowed) == (which == "allowed")]
    return pick[0] if pick else None


# name, level, option, value (int, bytes or a function giving bytes), TCP only, IPv6 only
OPTIONS = [
    ("SO_MARK", socket.SOL_SOCKET, 36, 1, False, False),
    ("IP_TRANSPARENT", socket.IPPROTO_IP, IP_TRANSPARENT, 1, False, None),
    ("IPV6_TRANSPARENT", socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1, False, True),
    ("SO_PRIORITY_6", socket.SOL_SOCKET, socket.SO_PRIORITY, 6, False, False),
    ("SO_PRIORITY_7", socket.SOL_SOCKET, socket.SO_PRIORITY, 7, False, False),
    ("SO_RCVBUFFORCE", socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 20, False, False),
    ("SO_SNDBUFFORCE", socket.SOL_SOCKET, SO_SNDBUFFORCE, 1 << 20, False, False),
    ("SO_DEBUG", socket.SOL_SOCKET, socket.SO_DEBUG, 1, False, False),
    ("SO_BUSY_POLL", socket.SOL_SOCKET, SO_BUSY_POLL, 50, False, False),
    ("SO_PREFER_BUSY_POLL", socket.SOL_SOCKET, SO_PREFER_BUSY_POLL, 1, False, False),
    ("SO_BINDTODEVICE", socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo\0", False, False),
    # A second SO_BINDTODEVICE needs CAP_NET_RAW (the first one does not, since 5.7).
    ("SO_BINDTODEVICE_again", socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo\0", False, False),
    ("TCP_REPAIR", socket.IPPROTO_TCP, TCP_REPAIR, 1, True, False),
    ("TCP_CONGESTION_restricted", socket.IPPROTO_TCP, socket.TCP_CONGESTION, "restricted", True, False),
    ("TCP_CONGESTION_allowed", socket.IPPROTO_TCP, socket.TCP_CONGESTION, "allowed", True, False),
]

# socket kinds for the options: name, family, type, address (per group)
SOCKETS = [
    ("tcp", socket.AF_INET, socket.SOCK_STREAM, {"stack": "stack", "kernel": "127.0.0.1"}),
    ("udp", socket.AF_INET, socket.SOCK_DGRAM, {"stack": "stack", "kernel": "127.0.0.1"}),
    ("tcp6", socket.AF_INET6, socket.SOCK_STREAM, {"stack": "stack6", "kernel": "::1"}),
]


def option_case(family, kind, where, name, level, opt, value):
    def run(self, r):
        addr = {"stack": self.stack, "stack6": self.stack6}.get(where, where)
        with socket.socket(family, kind) as s:
            r["stage"] = "bind"
            s.bind((addr, 0))
            v = value
            if isinstance(v, str):
                algo = congestion(v)
                if algo is None:
                    r["skipped"] = "no %s congestion control algorithm" % v
                    del r["stage"]
                    return
                r["algorithm"] = algo
                v = algo.encode()
            if name.endswith("_again"):
                r["stage"] = "first"
                s.setsockopt(level, opt, v)
            r["stage"] = "setsockopt"
            s.setsockopt(level, opt, v)
            del r["stage"]

    return run


# option, how it is read back (level, option): set on a socket that has no
# address yet (Joyride's stack holds it), then the socket is bound to loopback
# (Joyride moves it to a kernel socket and carries the options over)
LATE = [
    ("SO_MARK", socket.SOL_SOCKET, 36, 1, (socket.SOL_SOCKET, 36)),
    ("IP_TRANSPARENT", socket.IPPROTO_IP, IP_TRANSPARENT, 1, (socket.IPPROTO_IP, IP_TRANSPARENT)),
    ("SO_PRIORITY_7", socket.SOL_SOCKET, socket.SO_PRIORITY, 7, (socket.SOL_SOCKET, socket.SO_PRIORITY)),
    ("SO_RCVBUFFORCE", socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 20, (socket.SOL_SOCKET, socket.SO_RCVBUF)),
    ("SO_DEBUG", socket.SOL_SOCKET, socket.SO_DEBUG, 1, (socket.SOL_SOCKET, socket.SO_DEBUG)),
]


def late_case(kind, level, opt, value, readback):
    def run(self, r):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.setsockopt(level, opt, value)
                r["set"] = "ok"
            except OSError as e:
                r["set"] = errname(e)
            s.bind(("127.0.0.1", 0))
            r["value_after_bind"] = s.getsockopt(*readback)

    return run


def cases():
    """(name, group, function) in the order they run."""
    out = [("whoami", "family", Probe.whoami)]
    for name in (
        "unix_connect_0600",
        "unix_connect_0666",
        "unix_dgram_sendto_0600",
        "unix_dgram_sendto_0666",
        "unix_dgram_own_creds",
        "unix_dgram_forge_root",
        "unix_dgram_forge_pid1",
        "unix_bind_private",
        "unix_bind_chmod",
        "raw_tcp",
        "raw_icmp",
        "raw6_icmpv6",
        "packet_raw",
        "ping_dgram",
    ):
        out.append((name, "family", getattr(Probe, name)))
    tcp, udp, v4, v6 = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.AF_INET, socket.AF_INET6
    binds = [
        ("stack", "tcp", v4, tcp, "stack", 80),
        ("stack", "tcp", v4, tcp, "0.0.0.0", 80),
        ("stack", "udp", v4, udp, "stack", 80),
        ("stack", "udp", v4, udp, "0.0.0.0", 80),
        ("stack", "tcp6", v6, tcp, "stack6", 80),
        ("stack", "tcp6", v6, tcp, "::", 80),
        ("stack", "tcp", v4, tcp, "stack", 1023),
        ("stack", "tcp", v4, tcp, "stack", 1025),
        ("stack", "udp", v4, udp, "stack", 1025),
        ("kernel", "tcp", v4, tcp, "127.0.0.1", 81),
        ("kernel", "udp", v4, udp, "127.0.0.1", 81),
        ("kernel", "tcp6", v6, tcp, "::1", 81),
        ("kernel", "tcp", v4, tcp, "127.0.0.1", 1025),
        ("kernel", "udp", v4, udp, "127.0.0.1", 1025),
    ]
    for group, proto, family, kind, where, port in binds:
        label = {"0.0.0.0": "any", "::": "any6", "127.0.0.1": "lo", "::1": "lo6"}.get(where, where)
        name = "bind_%s_%d_%s" % (proto, port, label)
        out.append((name, group, bind_case(family, kind, where, port)))
    for group in ("stack", "kernel"):
        for sname, family, kind, addrs in SOCKETS:
            for oname, level, opt, value, tcp_only, v6_only in OPTIONS:
                if tcp_only and kind != tcp:
                    continue
                if v6_only is not None and v6_only != (family == v6):
                    continue
                name = "setsockopt_%s_%s_%s" % (sname, group, oname)
                out.append((name, group, option_case(family, kind, addrs[group], oname, level, opt, value)))
    for sname, kind in (("tcp", tcp), ("udp", udp)):
        for oname, level, opt, value, readback in LATE:
            name = "setsockopt_%s_unbound_%s_then_lo" % (sname, oname)
            out.append((name, "kernel", late_case(kind, level, opt, value, readback)))
    return out


def lo_up():
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def probe(argv):
    opts = {"--groups": "family,stack,kernel"}
    flags = set()
    i = 0
    while i < len(argv):
        if argv[i] == "--lo-up":
            flags.add(argv[i])
            i += 1
        else:
            opts[argv[i]] = argv[i + 1]
            i += 2
    groups = opts["--groups"].split(",")
    p = Probe(opts["--dir"], opts["--tag"], opts["--stack"], opts["--stack6"])
    if "--lo-up" in flags:
        lo_up()
    for name, group, fn in cases():
        if group not in groups:
            continue
        r = {"case": name, "group": group, "ok": True, "errno": None, "info": {}}
        try:
            fn(p, r)
        except OSError as e:
            r["ok"], r["errno"] = False, errname(e)
        except Exception as e:  # a defect of the probe, shown as a result
            r["ok"], r["errno"] = False, "exception: %r" % e
        if r["ok"]:
            r.pop("stage", None)
        print(json.dumps(r, sort_keys=True), flush=True)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "probe":
        probe(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
