//! Socket option levels, names and values, printed like strace.

use std::fmt;

use super::flags::Quoted;

/// Largest option value Joyride copies in either direction; longer ones get
/// `EINVAL`.
pub const OPTVAL_MAX: usize = 64 * 1024;

/// `SOL_SOCKET`, `SOL_TCP`, ... or the number.
pub fn sockopt_level(level: i32) -> String {
    match level {
        libc::SOL_SOCKET => "SOL_SOCKET".into(),
        libc::SOL_TCP => "SOL_TCP".into(),
        libc::SOL_UDP => "SOL_UDP".into(),
        libc::SOL_IP => "SOL_IP".into(),
        libc::SOL_IPV6 => "SOL_IPV6".into(),
        libc::SOL_RAW => "SOL_RAW".into(),
        libc::SOL_PACKET => "SOL_PACKET".into(),
        libc::SOL_NETLINK => "SOL_NETLINK".into(),
        other => format!("{other:#x} /* SOL_??? */"),
    }
}

/// The option's name at `level`, or the number.
pub fn sockopt_name(level: i32, name: i32) -> String {
    let known: Option<&str> = match level {
        libc::SOL_SOCKET => Some(match name {
            libc::SO_DEBUG => "SO_DEBUG",
            libc::SO_REUSEADDR => "SO_REUSEADDR",
            libc::SO_TYPE => "SO_TYPE",
            libc::SO_ERROR => "SO_ERROR",
            libc::SO_DONTROUTE => "SO_DONTROUTE",
            libc::SO_BROADCAST => "SO_BROADCAST",
            libc::SO_SNDBUF => "SO_SNDBUF",
            libc::SO_RCVBUF => "SO_RCVBUF",
            libc::SO_SNDBUFFORCE => "SO_SNDBUFFORCE",
            libc::SO_RCVBUFFORCE => "SO_RCVBUFFORCE",
            libc::SO_KEEPALIVE => "SO_KEEPALIVE",
            libc::SO_OOBINLINE => "SO_OOBINLINE",
            libc::SO_NO_CHECK => "SO_NO_CHECK",
            libc::SO_PRIORITY => "SO_PRIORITY",
            libc::SO_LINGER => "SO_LINGER",
            libc::SO_REUSEPORT => "SO_REUSEPORT",
            libc::SO_PASSCRED => "SO_PASSCRED",
            libc::SO_PEERCRED => "SO_PEERCRED",
            libc::SO_RCVLOWAT => "SO_RCVLOWAT",
            libc::SO_SNDLOWAT => "SO_SNDLOWAT",
            libc::SO_RCVTIMEO => "SO_RCVTIMEO_OLD",
            libc::SO_SNDTIMEO => "SO_SNDTIMEO_OLD",
            libc::SO_BINDTODEVICE => "SO_BINDTODEVICE",
            libc::SO_ATTACH_FILTER => "SO_ATTACH_FILTER",
            libc::SO_DETACH_FILTER => "SO_DETACH_FILTER",
            libc::SO_TIMESTAMP => "SO_TIMESTAMP_OLD",
            libc::SO_ACCEPTCONN => "SO_ACCEPTCONN",
            libc::SO_PEERSEC => "SO_PEERSEC",
            libc::SO_PASSSEC => "SO_PASSSEC",
            libc::SO_MARK => "SO_MARK",
            libc::SO_PROTOCOL => "SO_PROTOCOL",
            libc::SO_DOMAIN => "SO_DOMAIN",
            libc::SO_RXQ_OVFL => "SO_RXQ_OVFL",
            libc::SO_PEEK_OFF => "SO_PEEK_OFF",
            libc::SO_BUSY_POLL => "SO_BUSY_POLL",
            libc::SO_INCOMING_CPU => "SO_INCOMING_CPU",
            libc::SO_ATTACH_BPF => "SO_ATTACH_BPF",
            libc::SO_ATTACH_REUSEPORT_CBPF => "SO_ATTACH_REUSEPORT_CBPF",
            libc::SO_ATTACH_REUSEPORT_EBPF => "SO_ATTACH_REUSEPORT_EBPF",
            libc::SO_ZEROCOPY => "SO_ZEROCOPY",
            libc::SO_TXTIME => "SO_TXTIME",
            libc::SO_PEERGROUPS => "SO_PEERGROUPS",
            _ => "",
        }),
        libc::SOL_TCP => Some(match name {
            libc::TCP_NODELAY => "TCP_NODELAY",
            libc::TCP_MAXSEG => "TCP_MAXSEG",
            libc::TCP_CORK => "TCP_CORK",
            libc::TCP_KEEPIDLE => "TCP_KEEPIDLE",
            libc::TCP_KEEPINTVL => "TCP_KEEPINTVL",
            libc::TCP_KEEPCNT => "TCP_KEEPCNT",
            libc::TCP_SYNCNT => "TCP_SYNCNT",
            libc::TCP_LINGER2 => "TCP_LINGER2",
            libc::TCP_DEFER_ACCEPT => "TCP_DEFER_ACCEPT",
            libc::TCP_WINDOW_CLAMP => "TCP_WINDOW_CLAMP",
            libc::TCP_INFO => "TCP_INFO",
            libc::TCP_QUICKACK => "TCP_QUICKACK",
            libc::TCP_CONGESTION => "TCP_CONGESTION",
            libc::TCP_MD5SIG => "TCP_MD5SIG",
            libc::TCP_USER_TIMEOUT => "TCP_USER_TIMEOUT",
            libc::TCP_FASTOPEN => "TCP_FASTOPEN",
            libc::TCP_FASTOPEN_CONNECT => "TCP_FASTOPEN_CONNECT",
            libc::TCP_NOTSENT_LOWAT => "TCP_NOTSENT_LOWAT",
            libc::TCP_ULP => "TCP_ULP",
            _ => "",
        }),
        libc::SOL_IP => Some(match name {
            libc::IP_TOS => "IP_TOS",
            libc::IP_TTL => "IP_TTL",
            libc::IP_HDRINCL => "IP_HDRINCL",
            libc::IP_OPTIONS => "IP_OPTIONS",
            libc::IP_RECVERR => "IP_RECVERR",
            libc::IP_PKTINFO => "IP_PKTINFO",
            libc::IP_MTU_DISCOVER => "IP_MTU_DISCOVER",
            libc::IP_MTU => "IP_MTU",
            libc::IP_FREEBIND => "IP_FREEBIND",
            libc::IP_TRANSPARENT => "IP_TRANSPARENT",
            libc::IP_MULTICAST_IF => "IP_MULTICAST_IF",
            libc::IP_MULTICAST_TTL => "IP_MULTICAST_TTL",
            libc::IP_MULTICAST_LOOP => "IP_MULTICAST_LOOP",
            libc::IP_ADD_MEMBERSHIP => "IP_ADD_MEMBERSHIP",
            libc::IP_DROP_MEMBERSHIP => "IP_DROP_MEMBERSHIP",
            libc::IP_RECVTOS => "IP_RECVTOS",
            libc::IP_RECVTTL => "IP_RECVTTL",
            libc::IP_BIND_ADDRESS_NO_PORT => "IP_BIND_ADDRESS_NO_PORT",
            _ => "",
        }),
        libc::SOL_IPV6 => Some(match name {
            libc::IPV6_V6ONLY => "IPV6_V6ONLY",
            libc::IPV6_UNICAST_HOPS => "IPV6_UNICAST_HOPS",
            libc::IPV6_MULTICAST_IF => "IPV6_MULTICAST_IF",
            libc::IPV6_MULTICAST_HOPS => "IPV6_MULTICAST_HOPS",
            libc::IPV6_MULTICAST_LOOP => "IPV6_MULTICAST_LOOP",
            libc::IPV6_ADD_MEMBERSHIP => "IPV6_ADD_MEMBERSHIP",
            libc::IPV6_DROP_MEMBERSHIP => "IPV6_DROP_MEMBERSHIP",
            libc::IPV6_RECVPKTINFO => "IPV6_RECVPKTINFO",
            libc::IPV6_RECVERR => "IPV6_RECVERR",
            libc::IPV6_MTU_DISCOVER => "IPV6_MTU_DISCOVER",
            libc::IPV6_MTU => "IPV6_MTU",
            libc::IPV6_TCLASS => "IPV6_TCLASS",
            libc::IPV6_RECVTCLASS => "IPV6_RECVTCLASS",
            _ => "",
        }),
        _ => None,
    };
    match known {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => format!("{name:#x}"),
    }
}

/// An option value, for display: integer options as `[1]`, `SO_LINGER` as a
/// struct, `TCP_CONGESTION` as a string, anything else as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockoptValue<'a> {
    /// Option level.
    pub level: i32,
    /// Option name.
    pub name: i32,
    /// The value bytes (as passed in, or as returned).
    pub bytes: &'a [u8],
}

impl fmt::Display for SockoptValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes;
        let is = |l: i32, n: i32| self.level == l && self.name == n;
        if is(libc::SOL_SOCKET, libc::SO_LINGER) && b.len() >= 8 {
            let on = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let secs = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
            return write!(f, "{{l_onoff={on}, l_linger={secs}}}");
        }
        if is(libc::SOL_TCP, libc::TCP_CONGESTION) || is(libc::SOL_SOCKET, libc::SO_BINDTODEVICE) {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            return write!(f, "{}", Quoted::full(&b[..end]));
        }
        if is(libc::SOL_SOCKET, libc::SO_ERROR) && b.len() == 4 {
            let e = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            return if e == 0 {
                f.write_str("[0]")
            } else {
                write!(f, "[{}]", super::flags::errno_name(e))
            };
        }
        if b.len() == 4 && self.level != libc::SOL_PACKET {
            return write!(f, "[{}]", i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        }
        write!(f, "{}", Quoted::new(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sockopt_level(libc::SOL_SOCKET), "SOL_SOCKET");
        assert_eq!(sockopt_name(libc::SOL_SOCKET, libc::SO_REUSEADDR), "SO_REUSEADDR");
        assert_eq!(sockopt_name(libc::SOL_TCP, libc::TCP_NODELAY), "TCP_NODELAY");
        assert_eq!(sockopt_name(libc::SOL_TCP, 9999), "0x270f");
        assert_eq!(sockopt_level(999), "0x3e7 /* SOL_??? */");
    }

    #[test]
    fn values() {
        let one = 1i32.to_ne_bytes();
        let v = SockoptValue {
            level: libc::SOL_SOCKET,
            name: libc::SO_REUSEADDR,
            bytes: &one,
        };
        assert_eq!(v.to_string(), "[1]");
        let mut linger = 1i32.to_ne_bytes().to_vec();
        linger.extend_from_slice(&0i32.to_ne_bytes());
        let v = SockoptValue {
            level: libc::SOL_SOCKET,
            name: libc::SO_LINGER,
            bytes: &linger,
        };
        assert_eq!(v.to_string(), "{l_onoff=1, l_linger=0}");
        let refused = libc::ECONNREFUSED.to_ne_bytes();
        let v = SockoptValue {
            level: libc::SOL_SOCKET,
            name: libc::SO_ERROR,
            bytes: &refused,
        };
        assert_eq!(v.to_string(), "[ECONNREFUSED]");
    }
}
