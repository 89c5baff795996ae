//! `struct sockaddr` bytes to and from the stack's addresses, with Linux's
//! checks and errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// Smallest `sockaddr_in6` Linux accepts (`SIN6_LEN_RFC2133`: without the
/// scope id).
const SIN6_MIN: usize = 24;
const SIN_LEN: usize = 16;

/// Parses an address given to a socket of `domain`. `Ok(None)` is
/// `AF_UNSPEC` (dissolve an association). An IPv4 address on an IPv6
/// socket is refused unless `v4_on_v6` (UDP allows it, TCP does not).
pub fn parse_for(bytes: &[u8], domain: i32, v4_on_v6: bool) -> Result<Option<SocketAddr>, i32> {
    if bytes.len() < 2 {
        return Err(libc::EINVAL);
    }
    let family = i32::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
    match family {
        libc::AF_UNSPEC => Ok(None),
        libc::AF_INET if domain == libc::AF_INET || v4_on_v6 => {
            if bytes.len() < SIN_LEN {
                return Err(libc::EINVAL);
            }
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        libc::AF_INET6 if domain == libc::AF_INET6 => {
            if bytes.len() < SIN6_MIN {
                return Err(libc::EINVAL);
            }
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let flowinfo = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[8..24]);
            let scope = if bytes.len() >= 28 {
                u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]])
            } else {
                0
            };
            Ok(Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(octets),
                port,
                flowinfo,
                scope,
            ))))
        }
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// [`parse_for`] with UDP's rule (an IPv4 destination on an IPv6 socket is
/// allowed).
pub fn parse(bytes: &[u8], domain: i32) -> Result<Option<SocketAddr>, i32> {
    parse_for(bytes, domain, true)
}

/// `a` as a `struct sockaddr` of `domain`: an IPv4 address on an IPv6
/// socket is shown v4-mapped, as Linux shows it.
pub fn encode(a: SocketAddr, domain: i32) -> Vec<u8> {
    use joyride_notify::syscall::SockAddr;
    let sa = match (a, domain) {
        (SocketAddr::V4(v4), libc::AF_INET) => SockAddr::Inet {
            addr: *v4.ip(),
            port: v4.port(),
        },
        (SocketAddr::V4(v4), _) => SockAddr::Inet6 {
            addr: v4.ip().to_ipv6_mapped(),
            port: v4.port(),
            flowinfo: 0,
            scope_id: 0,
        },
        (SocketAddr::V6(v6), libc::AF_INET) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SockAddr::Inet {
                addr: ip,
                port: v6.port(),
            },
            None => SockAddr::Inet6 {
                addr: *v6.ip(),
                port: v6.port(),
                flowinfo: v6.flowinfo(),
                scope_id: v6.scope_id(),
            },
        },
        (SocketAddr::V6(v6), _) => SockAddr::Inet6 {
            addr: *v6.ip(),
            port: v6.port(),
            flowinfo: v6.flowinfo(),
            scope_id: v6.scope_id(),
        },
    };
    sa.to_bytes()
}

/// The unspecified address of `domain`, port 0 (an unbound socket's name).
pub fn unspecified(domain: i32) -> SocketAddr {
    if domain == libc::AF_INET6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}

/// The IPv4 address inside `ip`, if it is IPv4 or v4-mapped.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_errors() {
        let a: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let b = encode(a, libc::AF_INET);
        assert_eq!(b.len(), 16);
        assert_eq!(parse(&b, libc::AF_INET), Ok(Some(a)));
        let m = encode(a, libc::AF_INET6);
        assert_eq!(m.len(), 28);
        let back = parse(&m, libc::AF_INET6).unwrap().unwrap();
        assert_eq!(canonical(back.ip()), a.ip());
        assert_eq!(parse_for(&b, libc::AF_INET6, false), Err(libc::EAFNOSUPPORT));
        assert_eq!(parse(&m, libc::AF_INET), Err(libc::EAFNOSUPPORT));
        assert_eq!(parse(&b[..8], libc::AF_INET), Err(libc::EINVAL));
        assert_eq!(parse(&[0, 0], libc::AF_INET), Ok(None));
        assert_eq!(parse(&[1], libc::AF_INET), Err(libc::EINVAL));
    }
}
