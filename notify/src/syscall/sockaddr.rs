//! Socket addresses as bytes read from a target, decoded and printed like
//! strace.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::flags::{family_name, Quoted};

/// `sizeof(struct sockaddr_storage)`: the kernel refuses longer addresses
/// with `EINVAL`, so no more is ever read from a target.
pub const SOCKADDR_MAX: usize = 128;

/// A socket address, decoded from the bytes a program passed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "af", rename_all = "lowercase")]
pub enum SockAddr {
    /// `AF_INET`
    Inet {
        /// Address.
        addr: Ipv4Addr,
        /// Port, host order.
        port: u16,
    },
    /// `AF_INET6`
    Inet6 {
        /// Address.
        addr: Ipv6Addr,
        /// Port, host order.
        port: u16,
        /// Flow information, host order.
        flowinfo: u32,
        /// Scope id.
        scope_id: u32,
    },
    /// `AF_UNIX`
    Unix {
        /// Path bytes without the trailing NUL; empty for an unnamed socket.
        #[serde(serialize_with = "lossy")]
        path: Vec<u8>,
        /// Abstract namespace (the path started with a NUL byte, not shown).
        abstract_ns: bool,
    },
    /// `AF_NETLINK`
    Netlink {
        /// Port id.
        pid: u32,
        /// Multicast groups mask.
        groups: u32,
    },
    /// `AF_UNSPEC` (used to dissolve a UDP association).
    Unspec,
    /// Any other family, or an address too short for its family.
    Other {
        /// The family number.
        family: u16,
        /// Everything after the family field.
        #[serde(serialize_with = "lossy")]
        data: Vec<u8>,
    },
}

fn lossy<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

impl SockAddr {
    /// Decodes the first `bytes.len()` bytes of an address (the length the
    /// program passed, already capped at [`SOCKADDR_MAX`]).
    pub fn parse(bytes: &[u8]) -> Option<SockAddr> {
        if bytes.len() < 2 {
            return None;
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let ne32 = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let addr = match family as i32 {
            libc::AF_INET if bytes.len() >= 8 => SockAddr::Inet {
                port: be16(2),
                addr: Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]),
            },
            libc::AF_INET6 if bytes.len() >= 24 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&bytes[8..24]);
                SockAddr::Inet6 {
                    port: be16(2),
                    flowinfo: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
                    addr: Ipv6Addr::from(a),
                    scope_id: if bytes.len() >= 28 { ne32(24) } else { 0 },
                }
            }
            libc::AF_UNIX => {
                let raw = &bytes[2..];
                let (abstract_ns, path) = match raw.first() {
                    Some(0) if raw.len() > 1 => (true, raw[1..].to_vec()),
                    _ => {
                        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                        (false, raw[..end].to_vec())
                    }
                };
                SockAddr::Unix { path, abstract_ns }
            }
            libc::AF_NETLINK if bytes.len() >= 12 => SockAddr::Netlink {
                pid: ne32(4),
                groups: ne32(8),
            },
            libc::AF_UNSPEC => SockAddr::Unspec,
            _ => SockAddr::Other {
                family,
                data: bytes[2..].to_vec(),
            },
        };
        Some(addr)
    }

    /// Encodes the address as the kernel's `struct sockaddr_*` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28);
        let fam = |f: i32| (f as u16).to_ne_bytes();
        match self {
            SockAddr::Inet { addr, port } => {
                out.extend_from_slice(&fam(libc::AF_INET));
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&addr.octets());
                out.extend_from_slice(&[0; 8]);
            }
            SockAddr::Inet6 {
                addr,
                port,
                flowinfo,
                scope_id,
            } => {
                out.extend_from_slice(&fam(libc::AF_INET6));
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&flowinfo.to_be_bytes());
                out.extend_from_slice(&addr.octets());
                out.extend_from_slice(&scope_id.to_ne_bytes());
            }
            SockAddr::Unix { path, abstract_ns } => {
                out.extend_from_slice(&fam(libc::AF_UNIX));
                if *abstract_ns {
                    out.push(0);
                }
                out.extend_from_slice(path);
                if !*abstract_ns && !path.is_empty() {
                    out.push(0);
                }
            }
            SockAddr::Netlink { pid, groups } => {
                out.extend_from_slice(&fam(libc::AF_NETLINK));
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&pid.to_ne_bytes());
                out.extend_from_slice(&groups.to_ne_bytes());
            }
            SockAddr::Unspec => out.extend_from_slice(&fam(libc::AF_UNSPEC)),
            SockAddr::Other { family, data } => {
                out.extend_from_slice(&family.to_ne_bytes());
                out.extend_from_slice(data);
            }
        }
        out
    }

    /// The IP address and port, for Internet families.
    pub fn ip_port(&self) -> Option<(std::net::IpAddr, u16)> {
        match self {
            SockAddr::Inet { addr, port } => Some(((*addr).into(), *port)),
            SockAddr::Inet6 { addr, port, .. } => Some(((*addr).into(), *port)),
            _ => None,
        }
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet { addr, port } => write!(
                f,
                "{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr(\"{addr}\")}}"
            ),
            SockAddr::Inet6 {
                addr,
                port,
                flowinfo,
                scope_id,
            } => write!(
                f,
                "{{sa_family=AF_INET6, sin6_port=htons({port}), sin6_flowinfo=htonl({flowinfo}), \
                 inet_pton(AF_INET6, \"{addr}\", &sin6_addr), sin6_scope_id={scope_id}}}"
            ),
            SockAddr::Unix { path, abstract_ns } => {
                if path.is_empty() && !abstract_ns {
                    return f.write_str("{sa_family=AF_UNIX}");
                }
                let at = if *abstract_ns { "@" } else { "" };
                write!(f, "{{sa_family=AF_UNIX, sun_path={at}{}}}", Quoted::full(path))
            }
            SockAddr::Netlink { pid, groups } => {
                write!(f, "{{sa_family=AF_NETLINK, nl_pid={pid}, nl_groups={groups:08x}}}")
            }
            SockAddr::Unspec => f.write_str("{sa_family=AF_UNSPEC}"),
            SockAddr::Other { family, data } => match family_name(*family as i32) {
                Some(name) => write!(f, "{{sa_family={name}, sa_data={}}}", Quoted::full(data)),
                None => write!(
                    f,
                    "{{sa_family={family:#x} /* AF_??? */, sa_data={}}}",
                    Quoted::full(data)
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_golden() {
        // struct sockaddr_in for 10.1.2.3:8080, as a C program lays it out.
        let bytes = [2, 0, 0x1f, 0x90, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0];
        let a = SockAddr::parse(&bytes).unwrap();
        assert_eq!(
            a,
            SockAddr::Inet {
                addr: Ipv4Addr::new(10, 1, 2, 3),
                port: 8080
            }
        );
        assert_eq!(a.to_bytes(), bytes);
        assert_eq!(
            a.to_string(),
            r#"{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("10.1.2.3")}"#
        );
    }

    #[test]
    fn inet6_golden() {
        let mut bytes = vec![10, 0, 0, 80, 0, 0, 0, 0];
        bytes.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        let a = SockAddr::parse(&bytes).unwrap();
        assert_eq!(a.to_bytes(), bytes);
        assert_eq!(
            a.to_string(),
            r#"{sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}"#
        );
    }

    #[test]
    fn unix_paths() {
        let mut bytes = vec![1, 0];
        bytes.extend_from_slice(b"/run/x.sock\0");
        let a = SockAddr::parse(&bytes).unwrap();
        assert_eq!(a.to_string(), r#"{sa_family=AF_UNIX, sun_path="/run/x.sock"}"#);
        assert_eq!(a.to_bytes(), bytes);
        let abs = SockAddr::parse(b"\x01\x00\x00name").unwrap();
        assert_eq!(abs.to_string(), r#"{sa_family=AF_UNIX, sun_path=@"name"}"#);
        assert_eq!(abs.to_bytes(), b"\x01\x00\x00name");
        assert_eq!(SockAddr::parse(&[1, 0]).unwrap().to_string(), "{sa_family=AF_UNIX}");
    }

    #[test]
    fn short_and_unknown() {
        assert_eq!(SockAddr::parse(&[2]), None);
        // AF_INET but too short: shown raw, never read past the end.
        let a = SockAddr::parse(&[2, 0, 1, 2]).unwrap();
        assert!(matches!(a, SockAddr::Other { family: 2, .. }));
        let u = SockAddr::parse(&[0xff, 0x7f, 1]).unwrap();
        assert_eq!(u.to_string(), r#"{sa_family=0x7fff /* AF_??? */, sa_data="\1"}"#);
        assert_eq!(SockAddr::parse(&[0, 0]).unwrap(), SockAddr::Unspec);
    }

    #[test]
    fn netlink() {
        let a = SockAddr::Netlink { pid: 0, groups: 0 };
        assert_eq!(SockAddr::parse(&a.to_bytes()).unwrap(), a);
        assert_eq!(a.to_string(), "{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}");
    }
}
