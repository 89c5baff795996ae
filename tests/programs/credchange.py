"""Changes its own credentials part-way and shows what each later call gets.

`credchange.py ns` (as root): a TCP connect to a listener on 127.0.0.1, then
unshare(CLONE_NEWNET) and the same connect (the new namespace has no such
listener), then unshare(CLONE_NEWUSER) and a bind to port 80 (root of the
new user namespace is nobody over the network namespace).

`credchange.py groups` (with CAP_SETGID and supplementary groups): a
connection to its own abstract AF_UNIX listener, the groups the accepted
end sees (SO_PEERGROUPS), then setgroups([]) and the same again.

Each step prints one JSON line: {"step": ..., "result": "ok" | errno name,
...}. The test runs this on the kernel and under Joyride and compares.
"""

import ctypes
import errno
import json
import os
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SO_PEERGROUPS = 59


def say(step, result, **facts):
    print(json.dumps({"step": step, "result": result, **facts}), flush=True)


def attempt(step, f):
    try:
        facts = f() or {}
        say(step, "ok", **facts)
    except OSError as e:
        say(step, errno.errorcode.get(e.errno, str(e.errno)))


def unshare(flags):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare")


def ns():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    where = listener.getsockname()

    def connect():
        with socket.socket() as s:
            s.settimeout(5)
            s.connect(where)

    def bind80():
        with socket.socket() as s:
            s.bind(("0.0.0.0", 80))

    attempt("connect_before", connect)
    attempt("bind80_before", bind80)
    attempt("unshare_net", lambda: unshare(CLONE_NEWNET))
    attempt("connect_after_unshare_net", connect)
    attempt("unshare_user", lambda: unshare(CLONE_NEWUSER))
    attempt("bind80_after_unshare_user", bind80)


def groups():
    name = b"\0joyride-credchange-%d" % os.getpid()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(name)
    listener.listen()

    def peer_groups():
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(name)
            conn, _ = listener.accept()
            with conn:
                raw = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 256)
                n = len(raw) // 4
                return {"groups": sorted(struct.unpack("%dI" % n, raw))}

    attempt("peer_groups_before", peer_groups)
    attempt("setgroups_empty", lambda: os.setgroups([]))
    attempt("peer_groups_after", peer_groups)


{"ns": ns, "groups": groups}[sys.argv[1]]()
