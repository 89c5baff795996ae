//! Ancillary data of user-space UDP sockets, as Linux gives and takes it:
//! the control messages a receive returns for the options a program set
//! (`IP_PKTINFO`, `IP_RECVTTL`, `IP_RECVTOS`, `IPV6_RECVPKTINFO`,
//! `IPV6_RECVHOPLIMIT`, `IPV6_RECVTCLASS`), and what a send's control
//! messages ask of one datagram (`IP_TTL`, `IP_TOS`, `IP_PKTINFO`,
//! `IPV6_HOPLIMIT`, `IPV6_TCLASS`, `IPV6_PKTINFO`, `IPV6_DONTFRAG`), with
//! Linux's errnos for bad ones.
//!
//! Not for: laying messages out or walking a buffer (`kernel::cmsg`), or
//! the socket options themselves (the parent module).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use joyride_fd_bridge::DatagramMeta;
use joyride_netstack::iface::SendOpts;

use crate::kernel::cmsg::{self, Cmsg};

/// lo's interface index, in every network namespace.
const LOOPBACK_IFINDEX: i32 = 1;

/// `struct in6_pktinfo`: `ipi6_addr`, `ipi6_ifindex`.
const IN6_PKTINFO_LEN: usize = 20;
/// `struct in_pktinfo`: `ipi_ifindex`, `ipi_spec_dst`, `ipi_addr`.
const IN_PKTINFO_LEN: usize = 12;
/// `IP_PROTOCOL` (`linux/in.h`; not in `libc`).
const IP_PROTOCOL: i32 = 52;

/// The receive options a program set on a socket: each makes one control
/// message come with every datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvOpts {
    /// `IP_PKTINFO`.
    pub pktinfo: bool,
    /// `IP_RECVTTL`.
    pub ttl: bool,
    /// `IP_RECVTOS`.
    pub tos: bool,
    /// `IPV6_RECVPKTINFO`.
    pub v6_pktinfo: bool,
    /// `IPV6_RECVHOPLIMIT`.
    pub hoplimit: bool,
    /// `IPV6_RECVTCLASS`.
    pub tclass: bool,
}

impl RecvOpts {
    /// The options that `on(level, name)` says are set.
    pub fn of(on: impl Fn(i32, i32) -> bool) -> RecvOpts {
        use libc::*;
        RecvOpts {
            pktinfo: on(IPPROTO_IP, IP_PKTINFO),
            ttl: on(IPPROTO_IP, IP_RECVTTL),
            tos: on(IPPROTO_IP, IP_RECVTOS),
            v6_pktinfo: on(IPPROTO_IPV6, IPV6_RECVPKTINFO),
            hoplimit: on(IPPROTO_IPV6, IPV6_RECVHOPLIMIT),
            tclass: on(IPPROTO_IPV6, IPV6_RECVTCLASS),
        }
    }

    /// Whether any option asks for a control message at all.
    pub fn any(&self) -> bool {
        *self != RecvOpts::default()
    }
}

/// The control messages datagram `d` comes with on a socket with options
/// `on` (`v6_socket`: an `AF_INET6` one), in the order Linux puts them:
/// `udpv6_recvmsg` gives `IPV6_PKTINFO` first (`ip6_datagram_recv_common_ctl`,
/// a mapped address for IPv4 datagrams), then for an IPv4 datagram what
/// `ip_cmsg_recv_offset` gives (`IP_PKTINFO`, `IP_TTL`, `IP_TOS`), for an
/// IPv6 one what `ip6_datagram_recv_specific_ctl` gives (`IPV6_HOPLIMIT`,
/// `IPV6_TCLASS`). `local_v4` is the interface's IPv4 address, the
/// `ipi_spec_dst` of broadcasts and multicasts (`fib_compute_spec_dst`).
///
/// The interface index is lo's for loopback destinations; otherwise 0: the
/// device the stack drives has no index in the program's namespace.
pub fn recv_cmsgs(on: RecvOpts, v6_socket: bool, d: &DatagramMeta, local_v4: Option<Ipv4Addr>) -> Vec<Cmsg> {
    use libc::*;
    let mut out = Vec::new();
    let to = d.to.to_canonical();
    let ifindex = if to.is_loopback() { LOOPBACK_IFINDEX } else { 0 };
    let int = |v: i32| v.to_ne_bytes().to_vec();
    if v6_socket && on.v6_pktinfo {
        let addr = match to {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        let mut info = addr.octets().to_vec();
        info.extend_from_slice(&ifindex.to_ne_bytes());
        out.push((IPPROTO_IPV6, IPV6_PKTINFO, info));
    }
    match to {
        IpAddr::V4(addr) => {
            if on.pktinfo {
                let spec_dst = if addr.is_broadcast() || addr.is_multicast() {
                    local_v4.unwrap_or(addr)
                } else {
                    addr
                };
                let mut info = ifindex.to_ne_bytes().to_vec();
                info.extend_from_slice(&spec_dst.octets());
                info.extend_from_slice(&addr.octets());
                out.push((IPPROTO_IP, IP_PKTINFO, info));
            }
            if on.ttl {
                out.push((IPPROTO_IP, IP_TTL, int(d.hop_limit.into())));
            }
            if on.tos {
                // One byte, unlike the others (ip_cmsg_recv_tos).
                out.push((IPPROTO_IP, IP_TOS, vec![d.traffic_class]));
            }
        }
        IpAddr::V6(_) => {
            if on.hoplimit {
                out.push((IPPROTO_IPV6, IPV6_HOPLIMIT, int(d.hop_limit.into())));
            }
            if on.tclass {
                out.push((IPPROTO_IPV6, IPV6_TCLASS, int(d.traffic_class.into())));
            }
        }
    }
    out
}

/// Which of Linux's rules a send's control messages follow, by socket and
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRules {
    /// An IPv6 socket sending to an IPv6 address: `ip6_datagram_send_ctl`.
    Ipv6,
    /// Sending to an IPv4 address: `ip_cmsg_send`; `mapped`: from an IPv6
    /// socket, which may also give `IPV6_PKTINFO` with a mapped address.
    Ipv4 {
        /// The socket is `AF_INET6`.
        mapped: bool,
    },
}

/// `*(int *)CMSG_DATA(cmsg)` of a message whose `cmsg_len` must be
/// `CMSG_LEN(sizeof(int))`.
fn exact_int(data: &[u8]) -> Result<i32, i32> {
    let b: [u8; 4] = data.try_into().map_err(|_| libc::EINVAL)?;
    Ok(i32::from_ne_bytes(b))
}

/// What a send's control buffer (as the program gave it) asks of its
/// datagram, or the errno Linux's `udp_sendmsg`/`udpv6_sendmsg` answers:
/// `udp_cmsg_send` walks every message first (`EINVAL` for a malformed
/// one or a bad `SOL_UDP` one), then the IP layer's rules do, `SOL_SOCKET`
/// ones among them (`__sock_cmsg_send`). Other levels are ignored, as
/// Linux ignores them.
///
/// Not done, and refused with `EINVAL` where Linux would act: IPv6
/// extension headers (`IPV6_HOPOPTS`, `IPV6_DSTOPTS`, `IPV6_RTHDR`...),
/// IPv4 options (`IP_RETOPTS` with options in it), `SCM_TXTIME` (no
/// `SO_TXTIME`). Accepted without effect: the interface index of a
/// `*_PKTINFO` (the stack has one interface; Linux checks that it names a
/// device), flow labels, `IP_PROTOCOL`, `UDP_SEGMENT` (sent as one
/// datagram), `SO_MARK` and `SO_PRIORITY` (whose capability checks are not
/// made since they change nothing in the stack), timestamping requests.
pub fn send_opts(control: &[u8], rules: SendRules) -> Result<SendOpts, i32> {
    let msgs = cmsg::walk(control)?;
    for (level, ty, data) in &msgs {
        if *level == libc::SOL_UDP {
            // __udp_cmsg_send.
            match *ty {
                libc::UDP_SEGMENT if data.len() == 2 => {}
                _ => return Err(libc::EINVAL),
            }
        }
    }
    let mut opts = SendOpts::default();
    for (level, ty, data) in msgs {
        if level == libc::SOL_SOCKET {
            sock_cmsg(ty, data)?;
            continue;
        }
        match rules {
            SendRules::Ipv6 if level == libc::IPPROTO_IPV6 => ipv6_cmsg(ty, data, &mut opts)?,
            SendRules::Ipv4 { .. } if level == libc::IPPROTO_IP => ipv4_cmsg(ty, data, &mut opts)?,
            SendRules::Ipv4 { mapped: true } if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_PKTINFO => {
                // ip_cmsg_send's allow_ipv6 case: only a mapped address.
                if data.len() < IN6_PKTINFO_LEN {
                    return Err(libc::EINVAL);
                }
                let a = Ipv6Addr::from(<[u8; 16]>::try_from(&data[..16]).expect("16 bytes"));
                let v4 = a.to_ipv4_mapped().ok_or(libc::EINVAL)?;
                opts.src = (!v4.is_unspecified()).then_some(IpAddr::V4(v4));
            }
            _ => {}
        }
    }
    Ok(opts)
}

/// One `SOL_SOCKET` message (`__sock_cmsg_send`).
fn sock_cmsg(ty: i32, data: &[u8]) -> Result<(), i32> {
    use libc::*;
    match ty {
        SO_MARK | SO_PRIORITY | SO_TIMESTAMPING | SO_TIMESTAMPING_NEW => exact_int(data).map(drop),
        // "SCM_RIGHTS and SCM_CREDENTIALS are semantically in SOL_UNIX."
        SCM_RIGHTS | SCM_CREDENTIALS => Ok(()),
        _ => Err(EINVAL),
    }
}

/// One `SOL_IPV6` message to an IPv6 destination (`ip6_datagram_send_ctl`).
fn ipv6_cmsg(ty: i32, data: &[u8], opts: &mut SendOpts) -> Result<(), i32> {
    use libc::*;
    match ty {
        IPV6_PKTINFO | IPV6_2292PKTINFO => {
            if data.len() < IN6_PKTINFO_LEN {
                return Err(EINVAL);
            }
            let a = Ipv6Addr::from(<[u8; 16]>::try_from(&data[..16]).expect("16 bytes"));
            // Checked to be ours by the stack (EINVAL otherwise).
            opts.src = (!a.is_unspecified()).then_some(IpAddr::V6(a));
        }
        IPV6_FLOWINFO if data.len() >= 4 => {}
        IPV6_HOPLIMIT | IPV6_2292HOPLIMIT => {
            let v = exact_int(data)?;
            if !(-1..=255).contains(&v) {
                return Err(EINVAL);
            }
            // -1: the socket's.
            opts.hop_limit = (v >= 0).then_some(v as u8);
        }
        IPV6_TCLASS => {
            let v = exact_int(data)?;
            if !(-1..=255).contains(&v) {
                return Err(EINVAL);
            }
            // -1 is kept as -1 and lands in the u8 of the cork: 255 on the
            // wire (Linux 6.18; unlike the hop limit, nothing replaces it
            // with the socket's).
            opts.traffic_class = Some(v as u8);
        }
        IPV6_DONTFRAG => match exact_int(data)? {
            0 => {}
            1 => opts.dont_fragment = true,
            _ => return Err(EINVAL),
        },
        _ => return Err(EINVAL),
    }
    Ok(())
}

/// One `SOL_IP` message to an IPv4 destination (`ip_cmsg_send`).
fn ipv4_cmsg(ty: i32, data: &[u8], opts: &mut SendOpts) -> Result<(), i32> {
    use libc::*;
    match ty {
        IP_RETOPTS if data.is_empty() => {}
        IP_PKTINFO => {
            if data.len() != IN_PKTINFO_LEN {
                return Err(EINVAL);
            }
            let spec_dst = Ipv4Addr::from(<[u8; 4]>::try_from(&data[4..8]).expect("4 bytes"));
            // Checked to be ours by the stack (ENETUNREACH otherwise).
            opts.src = (!spec_dst.is_unspecified()).then_some(IpAddr::V4(spec_dst));
        }
        IP_TTL => {
            let v = exact_int(data)?;
            if !(1..=255).contains(&v) {
                return Err(EINVAL);
            }
            opts.hop_limit = Some(v as u8);
        }
        IP_TOS => {
            let v = match data.len() {
                4 => exact_int(data)?,
                1 => data[0].into(),
                _ => return Err(EINVAL),
            };
            if !(0..=255).contains(&v) {
                return Err(EINVAL);
            }
            opts.traffic_class = Some(v as u8);
        }
        IP_PROTOCOL => {
            if !(1..=255).contains(&exact_int(data)?) {
                return Err(EINVAL);
            }
        }
        _ => return Err(EINVAL),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use libc::*;

    fn meta(from: &str, to: &str, hop_limit: u8, traffic_class: u8) -> DatagramMeta {
        DatagramMeta {
            from: SocketAddr::new(from.parse().unwrap(), 9),
            to: to.parse().unwrap(),
            hop_limit,
            traffic_class,
        }
    }

    fn all() -> RecvOpts {
        RecvOpts {
            pktinfo: true,
            ttl: true,
            tos: true,
            v6_pktinfo: true,
            hoplimit: true,
            tclass: true,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn shown(c: Vec<Cmsg>) -> Vec<(i32, i32, String)> {
        c.into_iter().map(|(l, t, d)| (l, t, hex(&d))).collect()
    }

    /// What Linux 6.18 gave a Python probe for the same datagrams.
    #[test]
    fn receive_messages_in_linux_order_and_layout() {
        let v6 = meta("::1", "::1", 64, 0);
        assert_eq!(
            shown(recv_cmsgs(all(), true, &v6, None)),
            [
                (
                    IPPROTO_IPV6,
                    IPV6_PKTINFO,
                    "0000000000000000000000000000000101000000".into()
                ),
                (IPPROTO_IPV6, IPV6_HOPLIMIT, "40000000".into()),
                (IPPROTO_IPV6, IPV6_TCLASS, "00000000".into()),
            ]
        );
        let v4 = meta("127.0.0.1", "127.0.0.1", 7, 0x28);
        assert_eq!(
            shown(recv_cmsgs(all(), false, &v4, None)),
            [
                (IPPROTO_IP, IP_PKTINFO, "010000007f0000017f000001".into()),
                (IPPROTO_IP, IP_TTL, "07000000".into()),
                (IPPROTO_IP, IP_TOS, "28".into()),
            ]
        );
        // An IPv4 datagram on an IPv6 socket: the mapped IPV6_PKTINFO,
        // then the IPv4 messages; IPV6_HOPLIMIT/TCLASS never.
        let mapped = meta("127.0.0.1", "127.0.0.1", 64, 0);
        assert_eq!(
            shown(recv_cmsgs(all(), true, &mapped, None)),
            [
                (
                    IPPROTO_IPV6,
                    IPV6_PKTINFO,
                    "00000000000000000000ffff7f00000101000000".into()
                ),
                (IPPROTO_IP, IP_PKTINFO, "010000007f0000017f000001".into()),
                (IPPROTO_IP, IP_TTL, "40000000".into()),
                (IPPROTO_IP, IP_TOS, "00".into()),
            ]
        );
        let v6_only = RecvOpts {
            v6_pktinfo: true,
            hoplimit: true,
            tclass: true,
            ..RecvOpts::default()
        };
        assert_eq!(recv_cmsgs(v6_only, true, &mapped, None).len(), 1);
        // Only what was asked for.
        let hl = RecvOpts {
            hoplimit: true,
            ..RecvOpts::default()
        };
        assert_eq!(
            shown(recv_cmsgs(hl, true, &meta("2001:db8::2", "2001:db8::1", 3, 0xb9), None)),
            [(IPPROTO_IPV6, IPV6_HOPLIMIT, "03000000".into())]
        );
        assert!(recv_cmsgs(RecvOpts::default(), true, &v6, None).is_empty());
        assert!(!RecvOpts::default().any() && hl.any());
        // A broadcast's spec_dst is the interface's address; no lo index
        // off loopback.
        let pktinfo = RecvOpts {
            pktinfo: true,
            ..RecvOpts::default()
        };
        let b = meta("10.0.0.2", "255.255.255.255", 64, 0);
        assert_eq!(
            shown(recv_cmsgs(pktinfo, false, &b, Some(Ipv4Addr::new(10, 0, 0, 1)))),
            [(IPPROTO_IP, IP_PKTINFO, "000000000a000001ffffffff".into())]
        );
    }

    fn control(msgs: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let owned: Vec<Cmsg> = msgs.iter().map(|(l, t, d)| (*l, *t, d.to_vec())).collect();
        cmsg::put_cmsgs(&owned, 4096).0
    }

    fn int(v: i32) -> [u8; 4] {
        v.to_ne_bytes()
    }

    /// Each case as Linux 6.18 answered it to a Python probe.
    #[test]
    fn ipv6_send_messages_checked_as_linux_checks_them() {
        let send = |m: &[(i32, i32, &[u8])]| send_opts(&control(m), SendRules::Ipv6);
        let v6 = IPPROTO_IPV6;
        assert_eq!(send(&[]), Ok(SendOpts::default()));
        let both = send(&[(v6, IPV6_TCLASS, &int(0x28)), (v6, IPV6_HOPLIMIT, &int(2))]).unwrap();
        assert_eq!((both.hop_limit, both.traffic_class), (Some(2), Some(0x28)));
        for v in [0, 255] {
            assert_eq!(send(&[(v6, IPV6_HOPLIMIT, &int(v))]).unwrap().hop_limit, Some(v as u8));
            assert_eq!(
                send(&[(v6, IPV6_TCLASS, &int(v))]).unwrap().traffic_class,
                Some(v as u8)
            );
        }
        assert_eq!(send(&[(v6, IPV6_HOPLIMIT, &int(-1))]).unwrap().hop_limit, None);
        assert_eq!(send(&[(v6, IPV6_TCLASS, &int(-1))]).unwrap().traffic_class, Some(255));
        assert_eq!(send(&[(v6, IPV6_2292HOPLIMIT, &int(5))]).unwrap().hop_limit, Some(5));
        for bad in [-2, 256] {
            assert_eq!(send(&[(v6, IPV6_HOPLIMIT, &int(bad))]), Err(EINVAL));
            assert_eq!(send(&[(v6, IPV6_TCLASS, &int(bad))]), Err(EINVAL));
        }
        // Sizes other than an int; CPython's testOddCmsgSize sends one byte
        // too many.
        assert_eq!(send(&[(v6, IPV6_HOPLIMIT, &[5])]), Err(EINVAL));
        assert_eq!(send(&[(v6, IPV6_HOPLIMIT, &[5, 0, 0, 0, 0])]), Err(EINVAL));
        assert_eq!(
            send(&[
                (v6, IPV6_TCLASS, &[0xff, 0xff, 0xff, 0xff, 0]),
                (v6, IPV6_HOPLIMIT, &int(2))
            ]),
            Err(EINVAL)
        );
        // A bad message after a good one fails the send.
        assert_eq!(send(&[(v6, IPV6_HOPLIMIT, &int(3)), (v6, 999, &[])]), Err(EINVAL));
        assert_eq!(send(&[(v6, IPV6_NEXTHOP, &[])]), Err(EINVAL));
        assert_eq!(send(&[(v6, IPV6_HOPOPTS, &[])]), Err(EINVAL));
        assert_eq!(send(&[(v6, IPV6_DSTOPTS, &[])]), Err(EINVAL));
        assert_eq!(send(&[(v6, IPV6_RTHDR, &[])]), Err(EINVAL));
        assert!(send(&[(v6, IPV6_DONTFRAG, &int(1))]).unwrap().dont_fragment);
        assert!(!send(&[(v6, IPV6_DONTFRAG, &int(0))]).unwrap().dont_fragment);
        assert_eq!(send(&[(v6, IPV6_DONTFRAG, &int(2))]), Err(EINVAL));
        assert_eq!(send(&[(v6, IPV6_FLOWINFO, &[0x0f, 0, 0, 0])]), Ok(SendOpts::default()));
        // IPV6_PKTINFO: at least an in6_pktinfo; the unspecified address
        // asks for nothing.
        let lo: Vec<u8> = [Ipv6Addr::LOCALHOST.octets().as_slice(), &int(0)].concat();
        assert_eq!(
            send(&[(v6, IPV6_PKTINFO, &lo)]).unwrap().src,
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(send(&[(v6, IPV6_PKTINFO, &[0; 20])]), Ok(SendOpts::default()));
        assert_eq!(send(&[(v6, IPV6_PKTINFO, &[0; 24])]), Ok(SendOpts::default()));
        assert_eq!(send(&[(v6, IPV6_PKTINFO, &[0; 16])]), Err(EINVAL));
        // Other levels are ignored, SOL_IP among them; SOL_SOCKET and
        // SOL_UDP are checked.
        assert_eq!(send(&[(IPPROTO_IP, IP_TTL, &int(3))]), Ok(SendOpts::default()));
        assert_eq!(send(&[(IPPROTO_TCP, 1, &int(5))]), Ok(SendOpts::default()));
        assert_eq!(send(&[(SOL_SOCKET, 999, &[])]), Err(EINVAL));
        assert_eq!(send(&[(SOL_SOCKET, SO_MARK, &int(5))]), Ok(SendOpts::default()));
        assert_eq!(send(&[(SOL_SOCKET, SO_PRIORITY, &[5])]), Err(EINVAL));
        assert_eq!(send(&[(SOL_SOCKET, SCM_TXTIME, &[0; 8])]), Err(EINVAL));
        assert_eq!(send(&[(SOL_SOCKET, SCM_RIGHTS, &[])]), Ok(SendOpts::default()));
        assert_eq!(send(&[(SOL_UDP, UDP_SEGMENT, &[5, 0])]), Ok(SendOpts::default()));
        assert_eq!(send(&[(SOL_UDP, UDP_SEGMENT, &int(5))]), Err(EINVAL));
        assert_eq!(send(&[(SOL_UDP, 999, &[])]), Err(EINVAL));
        // A malformed buffer.
        let mut c = control(&[(v6, IPV6_HOPLIMIT, &int(3))]);
        c[..8].copy_from_slice(&64usize.to_ne_bytes());
        assert_eq!(send_opts(&c, SendRules::Ipv6), Err(EINVAL));
    }

    #[test]
    fn ipv4_send_messages_checked_as_linux_checks_them() {
        let send = |m: &[(i32, i32, &[u8])]| send_opts(&control(m), SendRules::Ipv4 { mapped: false });
        let mapped = |m: &[(i32, i32, &[u8])]| send_opts(&control(m), SendRules::Ipv4 { mapped: true });
        let ip = IPPROTO_IP;
        let o = send(&[(ip, IP_TTL, &int(7)), (ip, IP_TOS, &[0x28])]).unwrap();
        assert_eq!((o.hop_limit, o.traffic_class), (Some(7), Some(0x28)));
        assert_eq!(send(&[(ip, IP_TOS, &int(0x2c))]).unwrap().traffic_class, Some(0x2c));
        for v in [1, 255] {
            assert_eq!(send(&[(ip, IP_TTL, &int(v))]).unwrap().hop_limit, Some(v as u8));
        }
        for bad in [0, 256, -1] {
            assert_eq!(send(&[(ip, IP_TTL, &int(bad))]), Err(EINVAL));
        }
        assert_eq!(send(&[(ip, IP_TOS, &int(0))]).unwrap().traffic_class, Some(0));
        for bad in [256, -1] {
            assert_eq!(send(&[(ip, IP_TOS, &int(bad))]), Err(EINVAL));
        }
        assert_eq!(send(&[(ip, IP_TTL, &[5])]), Err(EINVAL));
        assert_eq!(send(&[(ip, IP_TOS, &[5, 0])]), Err(EINVAL));
        assert_eq!(send(&[(ip, 999, &int(5))]), Err(EINVAL));
        assert_eq!(send(&[(ip, IP_RETOPTS, &[])]), Ok(SendOpts::default()));
        assert_eq!(send(&[(ip, IP_PROTOCOL, &int(6))]), Ok(SendOpts::default()));
        assert_eq!(send(&[(ip, IP_PROTOCOL, &int(0))]), Err(EINVAL));
        let mut info = int(0).to_vec();
        info.extend_from_slice(&[127, 0, 0, 5, 0, 0, 0, 0]);
        assert_eq!(
            send(&[(ip, IP_PKTINFO, &info)]).unwrap().src,
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)))
        );
        assert_eq!(send(&[(ip, IP_PKTINFO, &[0; 12])]), Ok(SendOpts::default()));
        assert_eq!(send(&[(ip, IP_PKTINFO, &[0; 8])]), Err(EINVAL));
        // IPv6 messages are ignored, except IPV6_PKTINFO from an IPv6
        // socket, which must hold a mapped address.
        assert_eq!(send(&[(IPPROTO_IPV6, IPV6_HOPLIMIT, &int(3))]), Ok(SendOpts::default()));
        assert_eq!(
            mapped(&[(IPPROTO_IPV6, IPV6_HOPLIMIT, &int(-5))]),
            Ok(SendOpts::default())
        );
        assert_eq!(mapped(&[(IPPROTO_IPV6, 999, &[])]), Ok(SendOpts::default()));
        let m: Vec<u8> = [Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets().as_slice(), &int(0)].concat();
        assert_eq!(
            mapped(&[(IPPROTO_IPV6, IPV6_PKTINFO, &m)]).unwrap().src,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(mapped(&[(IPPROTO_IPV6, IPV6_PKTINFO, &[0; 20])]), Err(EINVAL));
        assert_eq!(send(&[(IPPROTO_IPV6, IPV6_PKTINFO, &[0; 20])]), Ok(SendOpts::default()));
        assert_eq!(mapped(&[(SOL_SOCKET, 999, &[])]), Err(EINVAL));
    }
}
