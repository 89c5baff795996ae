//! `getsockopt`/`setsockopt` on user-space sockets, errno for errno as
//! Linux answers them.
//!
//! Options the stack implements are applied to it and read back from it.
//! Timeouts and low-water marks (`SO_RCVTIMEO`, `SO_SNDTIMEO`,
//! `SO_RCVLOWAT`) are set on the target's end of the bridge too, where the
//! untrapped `read`/`write` honour them. The receive options of UDP sockets
//! (`IP_PKTINFO`, `IP_RECVTTL`, `IP_RECVTOS`, `IPV6_RECVPKTINFO`,
//! `IPV6_RECVHOPLIMIT`, `IPV6_RECVTCLASS`) are remembered and make a
//! trapped receive return their control messages ([`ancillary`]). Options
//! that change nothing for a user-space socket but that programs set
//! routinely (`SO_PRIORITY`, a TCP socket's `IP_TOS`, `TCP_QUICKACK`...)
//! are accepted and read back. Anything else is `ENOPROTOOPT`. Values are
//! kept as Linux keeps them, so that `getsockopt` reads back what Linux
//! would (a receive option as 0 or 1, `IP_TOS` as a byte, an IP-level
//! option given as one byte as that byte).

use std::os::fd::BorrowedFd;
use std::time::Duration;

use joyride_netstack::tcp::tcb::State;
use joyride_notify::Notification;

use super::calls::Served;
use super::engine::Exec;
use super::privilege;
use super::socks::{Phase, Proto};

pub(super) mod ancillary;

/// Longest option value read.
const OPT_MAX: usize = 256;
/// `sizeof(struct tcp_info)` in Linux 6.x.
const TCP_INFO_LEN: usize = 248;

/// How an option is kept.
enum Kind {
    /// Applied to the stack (and remembered).
    Stack,
    /// Set on the target's end of the bridge (and remembered).
    Bridge,
    /// Remembered and read back; no effect on a user-space socket.
    Kept,
}

/// Which options exist for a socket of `proto`, and how each is kept.
fn kind(proto: Proto, level: i32, name: i32) -> Option<Kind> {
    use libc::*;
    let tcp = proto == Proto::Tcp;
    Some(match (level, name) {
        (SOL_SOCKET, SO_REUSEADDR | SO_REUSEPORT | SO_RCVBUF | SO_SNDBUF | SO_RCVBUFFORCE | SO_SNDBUFFORCE) => {
            Kind::Stack
        }
        (SOL_SOCKET, SO_KEEPALIVE | SO_LINGER) if tcp => Kind::Stack,
        (SOL_SOCKET, SO_BROADCAST) if !tcp => Kind::Stack,
        (SOL_SOCKET, SO_KEEPALIVE | SO_LINGER) => Kind::Kept,
        (SOL_SOCKET, SO_BROADCAST) => Kind::Kept,
        (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO | SO_RCVLOWAT) => Kind::Bridge,
        (
            SOL_SOCKET,
            SO_PRIORITY | SO_MARK | SO_DEBUG | SO_PREFER_BUSY_POLL | SO_BINDTODEVICE | SO_BINDTOIFINDEX | SO_OOBINLINE
            | SO_TIMESTAMP | SO_TIMESTAMPNS | SO_ZEROCOPY | SO_BUSY_POLL | SO_INCOMING_CPU | SO_NO_CHECK | SO_PASSCRED
            | SO_DONTROUTE | SO_SNDLOWAT,
        ) => Kind::Kept,
        (IPPROTO_TCP, _) if !tcp => return None,
        (
            IPPROTO_TCP,
            TCP_NODELAY | TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT | TCP_USER_TIMEOUT | TCP_CONGESTION | TCP_MAXSEG,
        ) => Kind::Stack,
        (
            IPPROTO_TCP,
            TCP_CORK
            | TCP_QUICKACK
            | TCP_DEFER_ACCEPT
            | TCP_FASTOPEN
            | TCP_FASTOPEN_CONNECT
            | TCP_NOTSENT_LOWAT
            | TCP_SYNCNT
            | TCP_LINGER2
            | TCP_WINDOW_CLAMP
            | TCP_THIN_LINEAR_TIMEOUTS,
        ) => Kind::Kept,
        (IPPROTO_IP, IP_TTL | IP_TOS | IP_MTU_DISCOVER | IP_RECVERR) if !tcp => Kind::Stack,
        (
            IPPROTO_IP,
            IP_TOS
            | IP_TTL
            | IP_MTU_DISCOVER
            | IP_RECVERR
            | IP_PKTINFO
            | IP_RECVTOS
            | IP_RECVTTL
            | IP_FREEBIND
            | IP_BIND_ADDRESS_NO_PORT
            | IP_TRANSPARENT
            | IP_MULTICAST_TTL
            | IP_MULTICAST_LOOP,
        ) => Kind::Kept,
        (IPPROTO_IPV6, IPV6_V6ONLY) => Kind::Stack,
        (IPPROTO_IPV6, IPV6_UNICAST_HOPS | IPV6_TCLASS | IPV6_MTU_DISCOVER | IPV6_RECVERR) if !tcp => Kind::Stack,
        (
            IPPROTO_IPV6,
            IPV6_UNICAST_HOPS | IPV6_MTU_DISCOVER | IPV6_RECVERR | IPV6_TCLASS | IPV6_RECVPKTINFO | IPV6_RECVHOPLIMIT
            | IPV6_RECVTCLASS | IPV6_MULTICAST_HOPS | IPV6_MULTICAST_LOOP | IPV6_TRANSPARENT,
        ) => Kind::Kept,
        _ => return None,
    })
}

fn int_of(v: &[u8]) -> Option<i32> {
    (v.len() >= 4).then(|| i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

/// The value Linux keeps for an IP- or IPv6-level option set to `val`,
/// as `getsockopt` reads it back (`Ok(None)`: not one of these, keep `val`
/// as given), or the errno `do_ip_setsockopt`/`do_ipv6_setsockopt`
/// answer. `old` is the value kept before.
///
/// IP level: an int, or one byte when fewer are given, or 0 when none is.
/// IPv6 level: an int; fewer bytes are `EINVAL` (left to the caller).
fn kept_value(tcp: bool, level: i32, name: i32, val: &[u8], old: Option<&[u8]>) -> Result<Option<Vec<u8>>, i32> {
    use libc::*;
    let keep = |v: i32| Ok(Some(v.to_ne_bytes().to_vec()));
    let old = old.and_then(int_of).unwrap_or(0);
    // A stream socket's ECN bits are TCP's, not the program's.
    let ecn_kept = |v: i32| if tcp { (v & !3) | (old & 3) } else { v };
    match level {
        IPPROTO_IP => {
            let v = match val.len() {
                0 => 0,
                1..=3 => i32::from(val[0]),
                _ => int_of(val).expect("4 bytes"),
            };
            match name {
                IP_PKTINFO
                | IP_RECVTTL
                | IP_RECVTOS
                | IP_RECVERR
                | IP_FREEBIND
                | IP_BIND_ADDRESS_NO_PORT
                | IP_TRANSPARENT => keep((v != 0) as i32),
                IP_MULTICAST_LOOP if !val.is_empty() => keep((v != 0) as i32),
                IP_TOS => keep(ecn_kept(i32::from(v as u8))),
                IP_TTL if !val.is_empty() && (v == -1 || (1..=255).contains(&v)) => keep(v),
                IP_MULTICAST_TTL if !tcp && !val.is_empty() && (-1..=255).contains(&v) => {
                    keep(if v == -1 { 1 } else { v })
                }
                IP_MTU_DISCOVER if (IP_PMTUDISC_DONT..=IP_PMTUDISC_OMIT).contains(&v) => keep(v),
                IP_TTL | IP_MULTICAST_LOOP | IP_MULTICAST_TTL | IP_MTU_DISCOVER => Err(EINVAL),
                _ => Ok(None),
            }
        }
        IPPROTO_IPV6 => {
            let Some(v) = int_of(val) else { return Ok(None) };
            match name {
                IPV6_RECVPKTINFO | IPV6_RECVHOPLIMIT | IPV6_RECVTCLASS | IPV6_RECVERR | IPV6_TRANSPARENT => {
                    keep((v != 0) as i32)
                }
                // RFC 3542 section 6.5: -1 is the default, 0.
                IPV6_TCLASS if (-1..=255).contains(&v) => keep(ecn_kept(v.max(0))),
                IPV6_UNICAST_HOPS if (-1..=255).contains(&v) => keep(v),
                IPV6_TCLASS | IPV6_UNICAST_HOPS => Err(EINVAL),
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// Linux's `TCP_*` state number.
fn linux_state(s: Option<State>, listening: bool) -> u8 {
    if listening {
        return 10;
    }
    match s {
        Some(State::Established) => 1,
        Some(State::SynSent) => 2,
        Some(State::SynReceived) => 3,
        Some(State::FinWait1) => 4,
        Some(State::FinWait2) => 5,
        Some(State::TimeWait) => 6,
        Some(State::CloseWait) => 8,
        Some(State::LastAck) => 9,
        Some(State::Closing) => 11,
        _ => 7,
    }
}

impl Exec {
    /// `setsockopt` on user-space socket `ino`; `dup` is the caller's
    /// duplicate of the target's end.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn setsockopt(
        &mut self,
        notif: &Notification,
        ino: u64,
        dup: BorrowedFd<'_>,
        level: i32,
        name: i32,
        ptr: u64,
        len: i32,
    ) -> Served {
        let s = self.socks.get(ino).expect("looked up by the caller");
        // IPv6 options do not exist on an IPv4 socket (IPv4 ones do on an
        // IPv6 socket, for its mapped traffic).
        let v6_on_v4 = level == libc::IPPROTO_IPV6 && s.domain == libc::AF_INET;
        let tcp_level_on_udp = level == libc::IPPROTO_TCP && s.proto != Proto::Tcp;
        let kind = kind(s.proto, level, name).filter(|_| !v6_on_v4);
        // Linux reads a capability-gated option's value and checks the
        // caller before anything else, so an option the stack lacks still
        // answers EPERM to a caller without the capability.
        let gated = !v6_on_v4 && !tcp_level_on_udp && privilege::sockopt_gated(level, name);
        if kind.is_none() && !gated {
            return Ok(Err(libc::ENOPROTOOPT));
        }
        if len < 0 {
            return Ok(Err(libc::EINVAL));
        }
        let val = match notif.read_bytes(ptr, len as u64, OPT_MAX) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e.errno())),
        };
        if gated {
            if let Err(e) = privilege::check_sockopt(notif, level, name, &val) {
                return Ok(Err(e));
            }
        }
        if level == libc::IPPROTO_TCP && name == libc::TCP_CONGESTION && s.proto == Proto::Tcp {
            let end = val.iter().position(|b| *b == 0).unwrap_or(val.len());
            let algo = String::from_utf8_lossy(&val[..end]).into_owned();
            if let Err(e) = privilege::check_congestion(notif, &algo) {
                return Ok(Err(e));
            }
        }
        let Some(kind) = kind else {
            return Ok(Err(libc::ENOPROTOOPT));
        };
        let old = s.opt(level, name);
        let val = match kept_value(s.proto == Proto::Tcp, level, name, &val, old) {
            Ok(Some(v)) => v,
            Ok(None) => val,
            Err(e) => return Ok(Err(e)),
        };
        let res = match kind {
            Kind::Stack => self.apply_opt(ino, level, name, &val),
            Kind::Bridge => crate::sys::setsockopt(dup, level, name, &val).map_err(crate::kernel::errno_of),
            Kind::Kept
                if level == libc::SOL_SOCKET && matches!(name, libc::SO_BINDTODEVICE | libc::SO_BINDTOIFINDEX) =>
            {
                self.bind_to_device(notif, ino, name, &val)
            }
            Kind::Kept => {
                if val.len() < 4 && !(level == libc::IPPROTO_TCP && name == libc::TCP_CONGESTION) {
                    Err(libc::EINVAL)
                } else {
                    Ok(())
                }
            }
        };
        if res.is_ok() {
            if let Some(s) = self.socks.get_mut(ino) {
                s.remember_opt(level, name, &val);
            }
        }
        Ok(res.map(|()| 0))
    }

    /// `SO_BINDTODEVICE`/`SO_BINDTOIFINDEX`, remembered as Linux checks
    /// them (`sock_bindtoindex_locked`): the device must exist in the
    /// stack's namespace (`ENODEV`), and changing a binding once made needs
    /// `CAP_NET_RAW` (`EPERM`). The stack has one interface, which every
    /// socket uses whatever it is bound to.
    fn bind_to_device(&mut self, notif: &Notification, ino: u64, name: i32, val: &[u8]) -> Result<(), i32> {
        let index = if name == libc::SO_BINDTOIFINDEX {
            let i = int_of(val).ok_or(libc::EINVAL)?;
            if i < 0 {
                return Err(libc::EINVAL);
            }
            i as u32
        } else {
            let end = val
                .iter()
                .position(|b| *b == 0)
                .unwrap_or(val.len())
                .min(libc::IFNAMSIZ - 1);
            if end == 0 {
                0
            } else {
                let dev = std::ffi::CString::new(&val[..end]).map_err(|_| libc::EINVAL)?;
                match crate::sys::if_nametoindex(&dev) {
                    0 => return Err(libc::ENODEV),
                    i => i,
                }
            }
        };
        let bound = self
            .socks
            .get(ino)
            .and_then(|s| s.opt(libc::SOL_SOCKET, libc::SO_BINDTOIFINDEX))
            .and_then(int_of)
            .unwrap_or(0);
        if bound != 0 && !privilege::Power::of(notif)?.capable(crate::cred::CAP_NET_RAW) {
            return Err(libc::EPERM);
        }
        if let Some(s) = self.socks.get_mut(ino) {
            s.remember_opt(libc::SOL_SOCKET, libc::SO_BINDTOIFINDEX, &(index as i32).to_ne_bytes());
        }
        Ok(())
    }

    /// Applies an option the stack implements to socket `ino`.
    pub(super) fn apply_opt(&mut self, ino: u64, level: i32, name: i32, val: &[u8]) -> Result<(), i32> {
        let s = self.socks.get(ino).ok_or(libc::EBADF)?;
        let (h, proto) = (s.handle, s.proto);
        let tcp = proto == Proto::Tcp;
        let e = |r: Result<(), joyride_netstack::iface::SocketError>| r.map_err(|e| e.errno());
        if level == libc::IPPROTO_TCP && name == libc::TCP_CONGESTION {
            let end = val.iter().position(|b| *b == 0).unwrap_or(val.len());
            let algo = std::str::from_utf8(&val[..end]).map_err(|_| libc::ENOENT)?;
            return e(self.iface.tcp_set_congestion(h, algo));
        }
        if level == libc::SOL_SOCKET && name == libc::SO_LINGER {
            if val.len() < 8 {
                return Err(libc::EINVAL);
            }
            let on = int_of(&val[..4]).unwrap_or(0) != 0;
            let secs = int_of(&val[4..8]).unwrap_or(0);
            return e(self.iface.tcp_set_linger_zero(h, on && secs == 0));
        }
        let v = int_of(val).ok_or(libc::EINVAL)?;
        let on = v != 0;
        let secs = |v: i32| -> Result<Duration, i32> {
            if v < 1 {
                Err(libc::EINVAL)
            } else {
                Ok(Duration::from_secs(v as u64))
            }
        };
        use libc::*;
        match (level, name) {
            (SOL_SOCKET, SO_REUSEADDR) if tcp => e(self.iface.tcp_set_reuse_addr(h, on)),
            (SOL_SOCKET, SO_REUSEADDR) => e(self.iface.udp_set_reuse_addr(h, on)),
            (SOL_SOCKET, SO_REUSEPORT) if tcp => e(self.iface.tcp_set_reuse_port(h, on)),
            (SOL_SOCKET, SO_REUSEPORT) => e(self.iface.udp_set_reuse_port(h, on)),
            (SOL_SOCKET, SO_RCVBUF | SO_RCVBUFFORCE) => {
                let n = v.max(0) as usize;
                if tcp {
                    self.iface.tcp_set_recv_buffer(h, n).map(|_| ()).map_err(|e| e.errno())
                } else {
                    self.iface.udp_set_recv_buffer(h, n).map(|_| ()).map_err(|e| e.errno())
                }
            }
            (SOL_SOCKET, SO_SNDBUF | SO_SNDBUFFORCE) => {
                let n = v.max(0) as usize;
                if tcp {
                    self.iface.tcp_set_send_buffer(h, n).map(|_| ()).map_err(|e| e.errno())
                } else {
                    self.iface.udp_set_send_buffer(h, n).map(|_| ()).map_err(|e| e.errno())
                }
            }
            (SOL_SOCKET, SO_KEEPALIVE) => e(self.iface.tcp_set_keepalive(h, Some(on), None, None, None)),
            (SOL_SOCKET, SO_BROADCAST) => e(self.iface.udp_set_broadcast(h, on)),
            (IPPROTO_TCP, TCP_NODELAY) => e(self.iface.tcp_set_nodelay(h, on)),
            (IPPROTO_TCP, TCP_KEEPIDLE) => e(self.iface.tcp_set_keepalive(h, None, Some(secs(v)?), None, None)),
            (IPPROTO_TCP, TCP_KEEPINTVL) => e(self.iface.tcp_set_keepalive(h, None, None, Some(secs(v)?), None)),
            (IPPROTO_TCP, TCP_KEEPCNT) => {
                if v < 1 {
                    return Err(EINVAL);
                }
                e(self.iface.tcp_set_keepalive(h, None, None, None, Some(v as u32)))
            }
            (IPPROTO_TCP, TCP_USER_TIMEOUT) => {
                if v < 0 {
                    return Err(EINVAL);
                }
                let t = (v > 0).then(|| Duration::from_millis(v as u64));
                e(self.iface.tcp_set_user_timeout(h, t))
            }
            (IPPROTO_TCP, TCP_MAXSEG) => {
                if v != 0 && !(88..=32767).contains(&v) {
                    return Err(EINVAL);
                }
                if v == 0 {
                    return Ok(());
                }
                e(self.iface.tcp_set_max_seg(h, v as u16))
            }
            (IPPROTO_IP, IP_TTL) | (IPPROTO_IPV6, IPV6_UNICAST_HOPS) => {
                // Checked by kept_value: IPv6 allows 0, IPv4 does not.
                let hops = match v {
                    -1 => None,
                    0..=255 => Some(v as u8),
                    _ => return Err(EINVAL),
                };
                e(self.iface.udp_set_hop_limit(h, hops))
            }
            (IPPROTO_IP, IP_TOS) => e(self.iface.udp_set_tos(h, v as u8)),
            (IPPROTO_IPV6, IPV6_TCLASS) => e(self.iface.udp_set_tclass(h, v as u8)),
            (IPPROTO_IP, IP_RECVERR) | (IPPROTO_IPV6, IPV6_RECVERR) => e(self.iface.udp_set_recv_err(h, on)),
            (IPPROTO_IP, IP_MTU_DISCOVER) | (IPPROTO_IPV6, IPV6_MTU_DISCOVER) => {
                use joyride_netstack::iface::PmtuDiscovery;
                let mode = match v {
                    0 => PmtuDiscovery::Dont,
                    1 => PmtuDiscovery::Want,
                    2 | 3 => PmtuDiscovery::Do,
                    _ => PmtuDiscovery::Want,
                };
                e(self.iface.udp_set_pmtu_discovery(h, mode))
            }
            (IPPROTO_IPV6, IPV6_V6ONLY) => {
                if tcp {
                    e(self.iface.tcp_set_v6only(h, on))
                } else {
                    e(self.iface.udp_set_v6only(h, on))
                }
            }
            _ => Err(ENOPROTOOPT),
        }
    }

    /// `getsockopt` on user-space socket `ino`.
    pub(super) fn getsockopt(
        &mut self,
        notif: &Notification,
        ino: u64,
        level: i32,
        name: i32,
        ptr: u64,
        len_ptr: u64,
    ) -> Served {
        let user_len = match notif.read_u32(len_ptr) {
            Ok(l) if (l as i32) < 0 => return Ok(Err(libc::EINVAL)),
            Ok(l) => l as usize,
            Err(e) => return Ok(Err(e.errno())),
        };
        let mut val = match self.opt_value(ino, level, name) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        // do_ip_getsockopt: asked for less than an int, a value that fits
        // comes as one byte.
        if level == libc::IPPROTO_IP && (1..4).contains(&user_len) {
            if let Some(v) = int_of(&val).filter(|v| (0..=255).contains(v)) {
                val = vec![v as u8];
            }
        }
        // Linux truncates to the caller's length (an int option may be read
        // into fewer bytes) and reports the bytes written.
        let n = user_len.min(val.len());
        let len = (n as u32).to_ne_bytes();
        Ok(notif
            .write_many(&[(ptr, &val[..n]), (len_ptr, &len)])
            .map(|()| 0)
            .map_err(|e| e.errno()))
    }

    fn opt_value(&mut self, ino: u64, level: i32, name: i32) -> Result<Vec<u8>, i32> {
        use libc::*;
        let s = self.socks.get_mut(ino).ok_or(EBADF)?;
        let (h, proto, domain, protocol) = (s.handle, s.proto, s.domain, s.protocol);
        let tcp = proto == Proto::Tcp;
        let int = |v: i32| v.to_ne_bytes().to_vec();
        match (level, name) {
            (SOL_SOCKET, SO_TYPE) => return Ok(int(if tcp { SOCK_STREAM } else { SOCK_DGRAM })),
            (SOL_SOCKET, SO_DOMAIN) => return Ok(int(domain)),
            (SOL_SOCKET, SO_PROTOCOL) => {
                let p = match (protocol, tcp) {
                    (0, true) => IPPROTO_TCP,
                    (0, false) => IPPROTO_UDP,
                    (p, _) => p,
                };
                return Ok(int(p));
            }
            (SOL_SOCKET, SO_ACCEPTCONN) => return Ok(int(matches!(s.phase, Phase::Listening) as i32)),
            (SOL_SOCKET, SO_ERROR) => {
                let mut e = s.error.take();
                if e.is_none() && !matches!(s.phase, Phase::Dead) {
                    e = if tcp {
                        self.iface.tcp_take_error(h).ok().flatten().map(|e| e.errno())
                    } else {
                        self.iface.udp_take_error(h).ok().flatten().map(|e| e.errno())
                    };
                }
                return Ok(int(e.unwrap_or(0)));
            }
            (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => {
                let sizes = if tcp {
                    self.iface.tcp_buffer_sizes(h)
                } else {
                    self.iface.udp_buffer_sizes(h)
                };
                let (rcv, snd) = sizes.map_err(|e| e.errno())?;
                let v = if name == SO_RCVBUF { rcv } else { snd };
                return Ok(int(v.min(i32::MAX as usize) as i32));
            }
            (SOL_SOCKET, SO_COOKIE) => return Ok(ino.to_ne_bytes().to_vec()),
            (IPPROTO_TCP, TCP_INFO) if tcp => return Ok(self.tcp_info_bytes(ino)),
            (IPPROTO_TCP, TCP_CONGESTION) if tcp => {
                let name = self.iface.tcp_congestion(h).map_err(|e| e.errno())?;
                let mut v = name.as_bytes().to_vec();
                v.resize(16, 0);
                return Ok(v);
            }
            (IPPROTO_TCP, TCP_MAXSEG) if tcp => {
                let mss = self.iface.tcp_info(h).ok().flatten().map_or(536, |i| i.snd_mss);
                return Ok(int(mss as i32));
            }
            (IPPROTO_TCP, TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT) if tcp => {
                let (_, k) = self.iface.tcp_keepalive(h).map_err(|e| e.errno())?;
                return Ok(int(match name {
                    TCP_KEEPIDLE => k.idle.as_secs() as i32,
                    TCP_KEEPINTVL => k.interval.as_secs() as i32,
                    _ => k.count as i32,
                }));
            }
            (SOL_SOCKET, SO_KEEPALIVE) if tcp => {
                let (on, _) = self.iface.tcp_keepalive(h).map_err(|e| e.errno())?;
                return Ok(int(on as i32));
            }
            _ => {}
        }
        let s = self.socks.get(ino).ok_or(EBADF)?;
        if kind(proto, level, name).is_none() || (level == IPPROTO_IPV6 && domain == AF_INET) {
            return Err(ENOPROTOOPT);
        }
        let hops = (level, name) == (IPPROTO_IP, IP_TTL) || (level, name) == (IPPROTO_IPV6, IPV6_UNICAST_HOPS);
        let default_hops = int(self.iface.config().hop_limit.into());
        if let Some(v) = s.opt(level, name) {
            // -1 is "the default", which is what reads back.
            if hops && int_of(v) == Some(-1) {
                return Ok(default_hops);
            }
            return Ok(v.to_vec());
        }
        // Never set: Linux's defaults.
        Ok(match (level, name) {
            (SOL_SOCKET, SO_LINGER) => vec![0; 8],
            (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO) => vec![0; 16],
            (SOL_SOCKET, SO_RCVLOWAT | SO_SNDLOWAT) => int(1),
            _ if hops => default_hops,
            (IPPROTO_IP, IP_MULTICAST_TTL | IP_MULTICAST_LOOP)
            | (IPPROTO_IPV6, IPV6_MULTICAST_HOPS | IPV6_MULTICAST_LOOP) => int(1),
            (IPPROTO_IP, IP_MTU_DISCOVER) | (IPPROTO_IPV6, IPV6_MTU_DISCOVER) => int(if tcp { 1 } else { 0 }),
            _ => int(0),
        })
    }

    /// `struct tcp_info` as Linux lays it out.
    fn tcp_info_bytes(&self, ino: u64) -> Vec<u8> {
        let mut b = vec![0u8; TCP_INFO_LEN];
        let Some(s) = self.socks.get(ino) else { return b };
        let listening = matches!(s.phase, Phase::Listening);
        let info = self.iface.tcp_info(s.handle).ok().flatten();
        let state = info.map(|i| i.state);
        b[0] = linux_state(state, listening);
        let Some(i) = info else { return b };
        let put32 = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        let put64 = |b: &mut Vec<u8>, off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        let us = |d: Duration| d.as_micros().min(u32::MAX as u128) as u32;
        let mss = i.snd_mss.max(1);
        b[2] = i.retransmits.min(255) as u8;
        b[4] = i.retransmits.min(255) as u8;
        // tcpi_options: TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4.
        b[5] = (i.timestamps as u8) | ((i.sack as u8) << 1) | (((i.snd_wscale > 0 || i.rcv_wscale > 0) as u8) << 2);
        b[6] = (i.snd_wscale & 0xf) | ((i.rcv_wscale & 0xf) << 4);
        put32(&mut b, 8, us(i.rto));
        put32(&mut b, 16, i.snd_mss);
        put32(&mut b, 20, i.rcv_mss);
        put32(&mut b, 24, i.unacked.div_ceil(mss));
        put32(&mut b, 60, self.iface.config().mtu as u32);
        put32(&mut b, 68, us(i.rtt));
        put32(&mut b, 72, us(i.rttvar));
        put32(&mut b, 76, (i.ssthresh / mss).min(0x7fff_ffff));
        put32(&mut b, 80, i.cwnd / mss);
        put32(&mut b, 84, i.rcv_mss);
        put32(&mut b, 88, 3);
        put32(&mut b, 100, i.total_retrans.min(u32::MAX as u64) as u32);
        put64(&mut b, 120, i.bytes_acked);
        put64(&mut b, 128, i.bytes_received);
        put32(&mut b, 136, i.segs_out.min(u32::MAX as u64) as u32);
        put32(&mut b, 140, i.segs_in.min(u32::MAX as u64) as u32);
        put64(&mut b, 200, i.bytes_acked);
        put32(&mut b, 228, i.snd_wnd);
        put32(&mut b, 232, i.rcv_wnd);
        b
    }
}
