//! Linux's permission checks on the stack's own sockets.
//!
//! The kernel never sees a call the stack serves, so the stack asks what
//! the kernel would: a port below the network namespace's
//! `net.ipv4.ip_unprivileged_port_start` needs `CAP_NET_BIND_SERVICE` over
//! that namespace (`EACCES`); options that need `CAP_NET_ADMIN` or
//! `CAP_NET_RAW` give `EPERM` (`SO_DEBUG`: `EACCES`) without them.
//!
//! The namespace is the stack's: the one the supervisor serves it in, whose
//! address and port space the stack's sockets share. A program that moved
//! to a network namespace of its own (`unshare -Urn`) is root there, but its
//! Internet sockets are still the stack's, in the supervisor's namespace,
//! where it holds nothing; judging it in its own namespace would hand
//! anyone who may create a user namespace port 80 and `SO_MARK` on the
//! host's stack. The
//! caller's power ([`Power`]) is read fresh for each such decision and only
//! when one is needed, so the common calls read nothing. The table of
//! gated options is [`sockopt_need`]; it follows `sk_setsockopt`,
//! `do_ip_setsockopt`, `do_ipv6_setsockopt` and `do_tcp_setsockopt` of
//! Linux 6.x and is checked against the kernel by `tests/tests/privilege.rs`.

use std::os::fd::{AsFd, OwnedFd};

use joyride_notify::Notification;

use crate::cred::{Creds, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_NET_RAW};

/// The calling thread's power, for one decision.
pub struct Power {
    creds: Creds,
    net_ns: OwnedFd,
}

impl Power {
    /// Reads the power of `notif`'s thread (`ESRCH` if it is gone; the
    /// notification is checked after `/proc` was read, so a recycled thread
    /// id cannot lend its power).
    pub fn of(notif: &Notification) -> Result<Power, i32> {
        let creds = Creds::of_thread(notif.pid).map_err(|_| libc::ESRCH)?;
        // The stack's namespace: the supervisor's own.
        let net_ns: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|_| libc::ESRCH)?
            .into();
        if !notif.is_valid() {
            return Err(libc::ESRCH);
        }
        Ok(Power { creds, net_ns })
    }

    /// `ns_capable(net->user_ns, cap)` over the stack's namespace; a
    /// failure to tell is a no.
    pub fn capable(&self, cap: u32) -> bool {
        self.creds.capable(cap, self.net_ns.as_fd()).unwrap_or_else(|e| {
            tracing::warn!(cap, error = %e, "cannot tell a capability; taking it as absent");
            false
        })
    }

    /// `capable(cap)`: in the initial user namespace.
    pub fn capable_initially(&self, cap: u32) -> bool {
        self.creds.capable_initially(cap).unwrap_or(false)
    }

    fn meets(&self, need: Need) -> bool {
        match need {
            Need::Any(caps) => caps.iter().any(|c| self.capable(*c)),
            Need::Initially(cap) => self.capable_initially(cap),
        }
    }
}

/// What an option needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any of these capabilities over the socket's network namespace.
    Any(&'static [u32]),
    /// This capability in the initial user namespace.
    Initially(u32),
}

const RAW_OR_ADMIN: Need = Need::Any(&[CAP_NET_RAW, CAP_NET_ADMIN]);
const ADMIN: Need = Need::Any(&[CAP_NET_ADMIN]);
const RAW: Need = Need::Any(&[CAP_NET_RAW]);

/// Whether `setsockopt(level, name)` is gated by a capability for some
/// value (the value is then read before the option is looked up).
pub fn sockopt_gated(level: i32, name: i32) -> bool {
    use libc::*;
    matches!(
        (level, name),
        (
            SOL_SOCKET,
            SO_MARK
                | SO_PRIORITY
                | SO_RCVBUFFORCE
                | SO_SNDBUFFORCE
                | SO_DEBUG
                | SO_PREFER_BUSY_POLL
                | SO_BUSY_POLL_BUDGET
                | SO_TXTIME
        ) | (IPPROTO_IP, IP_TRANSPARENT | IP_IPSEC_POLICY | IP_XFRM_POLICY)
            | (
                IPPROTO_IPV6,
                IPV6_TRANSPARENT
                    | IPV6_IPSEC_POLICY
                    | IPV6_XFRM_POLICY
                    | IPV6_HOPOPTS
                    | IPV6_RTHDRDSTOPTS
                    | IPV6_DSTOPTS
            )
            | (
                IPPROTO_TCP,
                TCP_REPAIR | TCP_REPAIR_QUEUE | TCP_QUEUE_SEQ | TCP_REPAIR_OPTIONS | TCP_REPAIR_WINDOW
            )
    )
}

/// What Linux requires to set option `(level, name)` to `val`, and the
/// errno without it; `Ok(None)` when nothing is required; `Err` for a
/// value Linux refuses before it looks at capabilities (too short).
pub fn sockopt_need(level: i32, name: i32, val: &[u8]) -> Result<Option<(Need, i32)>, i32> {
    use libc::*;
    if !sockopt_gated(level, name) {
        return Ok(None);
    }
    // Socket- and TCP-level integer options need a whole int; IP-level
    // ones take a single byte too.
    let int = match level {
        SOL_SOCKET | IPPROTO_TCP if val.len() < 4 && name != SO_TXTIME => return Err(EINVAL),
        _ if val.len() >= 4 => i32::from_ne_bytes([val[0], val[1], val[2], val[3]]),
        _ => val.first().map_or(0, |b| i32::from(*b)),
    };
    let need = match (level, name) {
        (SOL_SOCKET, SO_MARK) => Some((RAW_OR_ADMIN, EPERM)),
        // Priorities 0 to 6 (TC_PRIO_INTERACTIVE) are anyone's.
        (SOL_SOCKET, SO_PRIORITY) => (!(0..=6).contains(&int)).then_some((RAW_OR_ADMIN, EPERM)),
        (SOL_SOCKET, SO_RCVBUFFORCE | SO_SNDBUFFORCE) => Some((Need::Initially(CAP_NET_ADMIN), EPERM)),
        (SOL_SOCKET, SO_DEBUG) => (int != 0).then_some((Need::Initially(CAP_NET_ADMIN), EACCES)),
        // Raising the busy-poll budget above the socket's (0 on a new
        // socket), or preferring busy polling. (Linux 6.x lets anyone raise
        // SO_BUSY_POLL itself.)
        (SOL_SOCKET, SO_PREFER_BUSY_POLL | SO_BUSY_POLL_BUDGET) => {
            (int > 0).then_some((Need::Initially(CAP_NET_ADMIN), EPERM))
        }
        // struct sock_txtime { clockid_t clockid; u32 flags; }: a clock
        // other than CLOCK_MONOTONIC needs CAP_NET_ADMIN.
        (SOL_SOCKET, SO_TXTIME) => {
            if val.len() < 8 {
                return Err(EINVAL);
            }
            (int != CLOCK_MONOTONIC).then_some((ADMIN, EPERM))
        }
        (IPPROTO_IP, IP_TRANSPARENT) | (IPPROTO_IPV6, IPV6_TRANSPARENT) => {
            if val.is_empty() {
                return Err(EINVAL);
            }
            (int != 0).then_some((RAW_OR_ADMIN, EPERM))
        }
        (IPPROTO_IP, IP_IPSEC_POLICY | IP_XFRM_POLICY) | (IPPROTO_IPV6, IPV6_IPSEC_POLICY | IPV6_XFRM_POLICY) => {
            Some((ADMIN, EPERM))
        }
        (IPPROTO_IPV6, IPV6_HOPOPTS | IPV6_RTHDRDSTOPTS | IPV6_DSTOPTS) => Some((RAW, EPERM)),
        (IPPROTO_TCP, _) => Some((ADMIN, EPERM)),
        _ => None,
    };
    Ok(need)
}

/// Checks `setsockopt(level, name, val)` against the caller's power:
/// `Err(errno)` as Linux would refuse it.
pub fn check_sockopt(notif: &Notification, level: i32, name: i32, val: &[u8]) -> Result<(), i32> {
    let Some((need, errno)) = sockopt_need(level, name, val)? else {
        return Ok(());
    };
    if Power::of(notif)?.meets(need) {
        Ok(())
    } else {
        Err(errno)
    }
}

/// Checks a bind to `port` against the caller's power: `EACCES` below the
/// namespace's first unprivileged port without `CAP_NET_BIND_SERVICE`
/// (`inet_port_requires_bind_service`). Port 0 is never checked.
pub fn check_bind_port(notif: &Notification, port: u16) -> Result<(), i32> {
    if port == 0 {
        return Ok(());
    }
    let start = sysctl("net/ipv4/ip_unprivileged_port_start")?
        .trim()
        .parse::<u32>()
        .unwrap_or(1024);
    if u32::from(port) >= start || Power::of(notif)?.capable(CAP_NET_BIND_SERVICE) {
        Ok(())
    } else {
        Err(libc::EACCES)
    }
}

/// Checks `TCP_CONGESTION` to `algo`: an algorithm the kernel has
/// (`tcp_available_congestion_control`) but outside the namespace's
/// `tcp_allowed_congestion_control` needs `CAP_NET_ADMIN` (`EPERM`). Other
/// names are left to the stack, which knows its own (`ENOENT` as Linux says
/// for an algorithm it lacks).
pub fn check_congestion(notif: &Notification, algo: &str) -> Result<(), i32> {
    // The stack's NewReno is the kernel's "reno".
    let name = if algo == "newreno" { "reno" } else { algo };
    let listed = |list: &str| list.split_whitespace().any(|a| a == name);
    if !listed(&sysctl("net/ipv4/tcp_available_congestion_control")?)
        || listed(&sysctl("net/ipv4/tcp_allowed_congestion_control")?)
        || Power::of(notif)?.capable(CAP_NET_ADMIN)
    {
        Ok(())
    } else {
        Err(libc::EPERM)
    }
}

/// A sysctl of the stack's network namespace.
fn sysctl(name: &str) -> Result<String, i32> {
    // The stack's namespace is the supervisor's: `/proc/sys` shows the
    // opener's.
    std::fs::read_to_string(format!("/proc/sys/{name}")).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i32) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn gated_options() {
        use libc::*;
        let need = |l, n, v: &[u8]| sockopt_need(l, n, v);
        assert_eq!(need(SOL_SOCKET, SO_MARK, &int(1)), Ok(Some((RAW_OR_ADMIN, EPERM))));
        assert_eq!(need(SOL_SOCKET, SO_PRIORITY, &int(6)), Ok(None));
        assert_eq!(need(SOL_SOCKET, SO_PRIORITY, &int(7)), Ok(Some((RAW_OR_ADMIN, EPERM))));
        assert_eq!(need(SOL_SOCKET, SO_PRIORITY, &int(-1)), Ok(Some((RAW_OR_ADMIN, EPERM))));
        assert_eq!(
            need(SOL_SOCKET, SO_RCVBUFFORCE, &int(1 << 20)),
            Ok(Some((Need::Initially(CAP_NET_ADMIN), EPERM)))
        );
        assert_eq!(
            need(SOL_SOCKET, SO_DEBUG, &int(1)),
            Ok(Some((Need::Initially(CAP_NET_ADMIN), EACCES)))
        );
        assert_eq!(need(SOL_SOCKET, SO_DEBUG, &int(0)), Ok(None));
        assert_eq!(need(SOL_SOCKET, SO_MARK, &[1, 0]), Err(EINVAL));
        assert_eq!(need(IPPROTO_IP, IP_TRANSPARENT, &[1]), Ok(Some((RAW_OR_ADMIN, EPERM))));
        assert_eq!(need(IPPROTO_IP, IP_TRANSPARENT, &int(0)), Ok(None));
        assert_eq!(need(IPPROTO_IP, IP_TRANSPARENT, &[]), Err(EINVAL));
        assert_eq!(need(IPPROTO_TCP, TCP_REPAIR, &int(1)), Ok(Some((ADMIN, EPERM))));
        let mut txtime = int(CLOCK_TAI);
        txtime.extend_from_slice(&[0; 4]);
        assert_eq!(need(SOL_SOCKET, SO_TXTIME, &txtime), Ok(Some((ADMIN, EPERM))));
        let mut mono = int(CLOCK_MONOTONIC);
        mono.extend_from_slice(&[0; 4]);
        assert_eq!(need(SOL_SOCKET, SO_TXTIME, &mono), Ok(None));
        assert_eq!(need(SOL_SOCKET, SO_REUSEADDR, &int(1)), Ok(None));
        assert_eq!(need(IPPROTO_TCP, TCP_NODELAY, &int(1)), Ok(None));
    }
}
