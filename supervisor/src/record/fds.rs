//! strace's `-y`: what a traced program's file descriptor is, shown after
//! its number as strace `-yy` shows it: `3<TCP:[10.0.0.1:51000->10.0.0.2:443]>`,
//! `5<UDPv6:[[::1]:50250->[::1]:53]>`, `4<UNIX-STREAM:[1234,"/run/x.sock"]>`,
//! `7<NETLINK:[ROUTE:812]>`, `6<TCP:[5678]>` (not bound yet), `8</dev/null>`.
//!
//! Looked up when the line is printed (calls are printed when they finish,
//! so a `connect` shows the connected endpoints): `/proc/PID/fd/N` names the
//! file or the socket's inode; for a socket, a duplicate of the program's
//! descriptor (`pidfd_getfd`) tells its protocol (`system.sockprotoname`,
//! as strace reads it) and its endpoints (`getsockname`, `getpeername`), in
//! whatever network namespace it lives. No table of the namespace's sockets
//! is read: `/proc/net/tcp` walks the whole TCP hash table, milliseconds a
//! line. Nothing here runs unless `-y` was given, and nothing here is for
//! policy: the answer may be stale by the time it is printed.
//!
//! Known differences from strace: a UNIX socket's peer (`->PEER`) is not
//! shown (only sock_diag knows it); a TCP socket whose handshake is under
//! way shows only its local end (`getpeername` refuses until it completes);
//! a descriptor the program closed before its line was printed shows as a
//! plain number.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use joyride_notify::syscall::{Quoted, SockAddr};

use super::Record;

/// Calls whose first argument is a socket descriptor.
const FD_FIRST: [&str; 16] = [
    "bind",
    "connect",
    "listen",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
];

/// Settled sockets remembered at most (then forgotten all at once).
const SETTLED_MAX: usize = 4096;

/// Looks descriptors up; remembers sockets whose details cannot change.
#[derive(Debug, Default)]
pub struct FdNames {
    /// Connected TCP sockets by inode: their endpoints are fixed until a
    /// `connect` dissolves the association (`AF_UNSPEC`), which looks again.
    settled: HashMap<u64, String>,
}

impl FdNames {
    /// `args` of `call` by thread `pid` with each descriptor decorated;
    /// `None` if none could be.
    pub fn decorate_args(&mut self, pid: u32, call: &str, args: &[String]) -> Option<Vec<String>> {
        let mut out: Option<Vec<String>> = None;
        if FD_FIRST.contains(&call) {
            let fresh = call == "connect";
            if let Some(shown) = args.first().and_then(|a| self.decorated(pid, a, fresh)) {
                out.get_or_insert_with(|| args.to_vec())[0] = shown;
            }
        }
        if call == "socketpair" {
            // `[3, 4]` once the pair is installed.
            let pair = args
                .get(3)
                .and_then(|a| a.strip_prefix('['))
                .and_then(|a| a.strip_suffix(']'))
                .and_then(|a| a.split_once(", "));
            if let Some((a, b)) = pair {
                if let (Some(a), Some(b)) = (self.decorated(pid, a, false), self.decorated(pid, b, false)) {
                    out.get_or_insert_with(|| args.to_vec())[3] = format!("[{a}, {b}]");
                }
            }
        }
        out
    }

    /// What the descriptor a call returned is (`socket`, `accept`, `accept4`).
    pub fn returned(&mut self, r: &Record) -> Option<String> {
        let returns_fd = matches!(r.call.as_str(), "socket" | "accept" | "accept4");
        if !returns_fd || r.failed() || r.continued || r.ret < 0 {
            return None;
        }
        self.describe(r.pid, i32::try_from(r.ret).ok()?, false)
    }

    /// `3<...>` for the argument text `3`, if it is a descriptor we can name.
    fn decorated(&mut self, pid: u32, arg: &str, fresh: bool) -> Option<String> {
        let fd: i32 = arg.parse().ok().filter(|fd| *fd >= 0)?;
        Some(format!("{fd}<{}>", self.describe(pid, fd, fresh)?))
    }

    /// What descriptor `fd` of thread `pid` is, as strace `-yy` shows it;
    /// `fresh`: do not trust what is remembered.
    pub fn describe(&mut self, pid: u32, fd: i32, fresh: bool) -> Option<String> {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        let link = String::from_utf8_lossy(link.as_os_str().as_bytes()).into_owned();
        let Some(inode) = socket_inode(&link) else {
            return Some(link);
        };
        if !fresh {
            if let Some(known) = self.settled.get(&inode) {
                return Some(known.clone());
            }
        }
        let Some(sock) = crate::sys::thread_fd(pid, fd) else {
            return Some(link);
        };
        // The program may have put another socket at `fd` since the link
        // was read.
        if crate::sys::file_id(sock.as_fd()).ok().map(|(_, ino)| ino) != Some(inode) {
            return Some(link);
        }
        let Some(proto) = sock_proto(&sock) else {
            return Some(link);
        };
        let (details, settled) = socket_details(&sock, &proto, inode);
        if settled {
            if self.settled.len() >= SETTLED_MAX {
                self.settled.clear();
            }
            self.settled.insert(inode, details.clone());
        }
        Some(details)
    }
}

/// The inode of a `socket:[INODE]` link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The socket's protocol name (`TCP`, `UDPv6`, `UNIX-STREAM`, `NETLINK`), as
/// the kernel reports it in the `system.sockprotoname` attribute.
fn sock_proto(sock: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; 64];
    let n = rustix::fs::fgetxattr(sock, "system.sockprotoname", &mut buf).ok()?;
    let name = &buf[..n];
    let name = name.strip_suffix(b"\0").unwrap_or(name);
    Some(String::from_utf8_lossy(name).into_owned())
}

/// strace's details of socket `sock` (protocol `proto`, inode `inode`), and
/// whether they cannot change any more.
fn socket_details(sock: &OwnedFd, proto: &str, inode: u64) -> (String, bool) {
    let name = |peer: bool| {
        crate::sys::sockname(sock.as_fd(), peer)
            .ok()
            .and_then(|(bytes, _)| SockAddr::parse(&bytes))
    };
    let Some(local) = name(false) else {
        return (format!("{proto}:[{inode}]"), false);
    };
    let peer = name(true);
    let details = match (&local, &peer) {
        (SockAddr::Inet { .. } | SockAddr::Inet6 { .. }, _) => inet(proto, inode, &local, peer.as_ref()),
        (SockAddr::Unix { path, abstract_ns }, _) => {
            let mut d = format!("{proto}:[{inode}");
            if *abstract_ns {
                let _ = write!(d, ",@{}", Quoted::full(path));
            } else if !path.is_empty() {
                let _ = write!(d, ",{}", Quoted::full(path));
            }
            d.push(']');
            d
        }
        (SockAddr::Netlink { pid, .. }, _) => {
            let family = crate::sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_PROTOCOL).ok();
            match family.and_then(netlink_family) {
                Some(f) => format!("{proto}:[{f}:{pid}]"),
                None => format!("{proto}:[{}]", family.unwrap_or(-1)),
            }
        }
        _ => format!("{proto}:[{inode}]"),
    };
    // A TCP socket with a peer has finished its handshake: its endpoints are
    // fixed.
    let settled = proto.starts_with("TCP") && peer.is_some();
    (details, settled)
}

/// `TCP:[LOCAL->PEER]`, `TCP:[LOCAL]` (bound, no peer), `TCP:[INODE]`
/// (neither), IPv6 addresses in brackets.
fn inet(proto: &str, inode: u64, local: &SockAddr, peer: Option<&SockAddr>) -> String {
    let endpoint = |a: &SockAddr| match a {
        SockAddr::Inet { addr, port } => Some((format!("{addr}:{port}"), addr.is_unspecified() && *port == 0)),
        SockAddr::Inet6 { addr, port, .. } => Some((format!("[{addr}]:{port}"), addr.is_unspecified() && *port == 0)),
        _ => None,
    };
    let local = endpoint(local);
    let peer = peer.and_then(endpoint).filter(|(_, zero)| !zero);
    match (local, peer) {
        (Some((l, _)), Some((p, _))) => format!("{proto}:[{l}->{p}]"),
        (Some((l, false)), None) => format!("{proto}:[{l}]"),
        _ => format!("{proto}:[{inode}]"),
    }
}

/// strace's names of netlink families (`NETLINK_` dropped).
fn netlink_family(family: i32) -> Option<&'static str> {
    Some(match family {
        libc::NETLINK_ROUTE => "ROUTE",
        libc::NETLINK_USERSOCK => "USERSOCK",
        libc::NETLINK_FIREWALL => "FIREWALL",
        libc::NETLINK_SOCK_DIAG => "SOCK_DIAG",
        libc::NETLINK_NFLOG => "NFLOG",
        libc::NETLINK_XFRM => "XFRM",
        libc::NETLINK_SELINUX => "SELINUX",
        libc::NETLINK_ISCSI => "ISCSI",
        libc::NETLINK_AUDIT => "AUDIT",
        libc::NETLINK_FIB_LOOKUP => "FIB_LOOKUP",
        libc::NETLINK_CONNECTOR => "CONNECTOR",
        libc::NETLINK_NETFILTER => "NETFILTER",
        libc::NETLINK_IP6_FW => "IP6_FW",
        libc::NETLINK_DNRTMSG => "DNRTMSG",
        libc::NETLINK_KOBJECT_UEVENT => "KOBJECT_UEVENT",
        libc::NETLINK_GENERIC => "GENERIC",
        libc::NETLINK_SCSITRANSPORT => "SCSITRANSPORT",
        libc::NETLINK_ECRYPTFS => "ECRYPTFS",
        libc::NETLINK_RDMA => "RDMA",
        libc::NETLINK_CRYPTO => "CRYPTO",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;

    #[test]
    fn inet_endpoints() {
        let v4 = |a: [u8; 4], port| SockAddr::Inet {
            addr: Ipv4Addr::from(a),
            port,
        };
        let v6 = |a: Ipv6Addr, port| SockAddr::Inet6 {
            addr: a,
            port,
            flowinfo: 0,
            scope_id: 0,
        };
        assert_eq!(inet("TCP", 7, &v4([0; 4], 0), None), "TCP:[7]");
        assert_eq!(inet("TCP", 7, &v4([127, 0, 0, 1], 8080), None), "TCP:[127.0.0.1:8080]");
        assert_eq!(
            inet("TCP", 7, &v4([10, 0, 0, 1], 51000), Some(&v4([10, 0, 0, 2], 443))),
            "TCP:[10.0.0.1:51000->10.0.0.2:443]"
        );
        assert_eq!(
            inet(
                "UDPv6",
                7,
                &v6(Ipv6Addr::LOCALHOST, 50250),
                Some(&v6(Ipv6Addr::LOCALHOST, 53))
            ),
            "UDPv6:[[::1]:50250->[::1]:53]"
        );
        // A dissolved UDP association reads back as the zero address.
        assert_eq!(
            inet(
                "UDPv6",
                7,
                &v6(Ipv6Addr::UNSPECIFIED, 53),
                Some(&v6(Ipv6Addr::UNSPECIFIED, 0))
            ),
            "UDPv6:[[::]:53]"
        );
    }

    /// This process's own descriptors, looked up as a traced program's are.
    #[test]
    fn own_sockets_and_files() {
        let me = std::process::id();
        let mut names = FdNames::default();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let l = names.describe(me, listener.as_raw_fd(), false).unwrap();
        assert_eq!(l, format!("TCP:[127.0.0.1:{port}]"));
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mine = client.local_addr().unwrap().port();
        let c = names.describe(me, client.as_raw_fd(), false).unwrap();
        assert_eq!(c, format!("TCP:[127.0.0.1:{mine}->127.0.0.1:{port}]"));
        // Connected: remembered, and found again without a lookup.
        assert_eq!(names.settled.len(), 1);
        assert_eq!(names.describe(me, client.as_raw_fd(), false).unwrap(), c);
        client.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        server.read_exact(&mut b).unwrap();
        let s = names.describe(me, server.as_raw_fd(), false).unwrap();
        assert_eq!(s, format!("TCP:[127.0.0.1:{port}->127.0.0.1:{mine}]"));
        let udp = UdpSocket::bind("[::1]:0").unwrap();
        let u = names.describe(me, udp.as_raw_fd(), false).unwrap();
        assert_eq!(u, format!("UDPv6:[[::1]:{}]", udp.local_addr().unwrap().port()));
        let fresh =
            rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::STREAM, None).unwrap();
        let f = names.describe(me, fresh.as_raw_fd(), false).unwrap();
        assert!(
            f.starts_with("TCP:[") && f[5..f.len() - 1].parse::<u64>().is_ok(),
            "{f}"
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(names.describe(me, file.as_raw_fd(), false).unwrap(), "/dev/null");
        assert_eq!(names.describe(me, 1_000_000, false), None);
        use std::os::linux::net::SocketAddrExt;
        let name = std::os::unix::net::SocketAddr::from_abstract_name(format!("jr-fds-{me}")).unwrap();
        let bound = std::os::unix::net::UnixListener::bind_addr(&name).unwrap();
        let ub = names.describe(me, bound.as_raw_fd(), false).unwrap();
        assert!(
            ub.starts_with("UNIX-STREAM:[") && ub.ends_with(&format!(",@\"jr-fds-{me}\"]")),
            "{ub}"
        );
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let ua = names.describe(me, a.as_raw_fd(), false).unwrap();
        assert!(ua.starts_with("UNIX-STREAM:[") && !ua.contains(','), "{ua}");
        let nl = rustix::net::socket(rustix::net::AddressFamily::NETLINK, rustix::net::SocketType::RAW, None).unwrap();
        let n = names.describe(me, nl.as_raw_fd(), false).unwrap();
        assert_eq!(n, "NETLINK:[ROUTE:0]");
        let args = vec![client.as_raw_fd().to_string(), "SOL_SOCKET".into()];
        let shown = names.decorate_args(me, "getsockopt", &args).unwrap();
        assert_eq!(shown[0], format!("{}<{c}>", client.as_raw_fd()));
        assert_eq!(names.decorate_args(me, "socket", &args), None);
        let pair = vec![
            "AF_UNIX".into(),
            "SOCK_STREAM".into(),
            "0".into(),
            format!("[{}, {}]", a.as_raw_fd(), _b.as_raw_fd()),
        ];
        let shown = names.decorate_args(me, "socketpair", &pair).unwrap();
        assert!(
            shown[3].starts_with(&format!("[{}<UNIX-STREAM:[", a.as_raw_fd())),
            "{}",
            shown[3]
        );
    }
}
