//! Which destinations the kernel serves instead of the user-space stack.

use std::net::IpAddr;

/// An address prefix (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN` (a bare address is a host prefix).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("--kernel {s:?}: {a:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("--kernel {s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, len })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let (bytes, bits) = ((len / 8) as usize, len % 8);
    if a[..bytes] != b[..bytes] {
        return false;
    }
    bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0
}

/// The per-socket policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    kernel: Vec<Cidr>,
    loopback_on_stack: bool,
}

impl Policy {
    /// `kernel` goes to the kernel, and loopback unless
    /// `loopback_on_stack`.
    pub fn new(kernel: Vec<Cidr>, loopback_on_stack: bool) -> Policy {
        Policy {
            kernel,
            loopback_on_stack,
        }
    }

    /// Whether a socket bound or connected to `ip` is the kernel's:
    /// loopback (127.0.0.0/8, ::1, v4-mapped loopback) unless the stack
    /// serves it, and the `--kernel` prefixes. Wildcards stay with the
    /// user-space stack.
    pub fn kernel_serves(&self, ip: IpAddr) -> bool {
        let ip = super::addr::canonical(ip);
        (ip.is_loopback() && !self.loopback_on_stack) || self.kernel.iter().any(|c| c.contains(ip))
    }

    /// Whether the stack serves loopback.
    pub fn loopback_on_stack(&self) -> bool {
        self.loopback_on_stack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = Policy::new(
            vec![
                Cidr::parse("192.168.0.0/16").unwrap(),
                Cidr::parse("fd00::/8").unwrap(),
                Cidr::parse("10.1.2.3").unwrap(),
            ],
            false,
        );
        for yes in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "192.168.7.7",
            "fd12::1",
            "10.1.2.3",
        ] {
            assert!(p.kernel_serves(yes.parse().unwrap()), "{yes}");
        }
        for no in ["10.1.2.4", "192.169.0.1", "fe80::1", "0.0.0.0", "::", "8.8.8.8"] {
            assert!(!p.kernel_serves(no.parse().unwrap()), "{no}");
        }
        let on_stack = Policy::new(vec![Cidr::parse("192.168.0.0/16").unwrap()], true);
        for no in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(!on_stack.kernel_serves(no.parse().unwrap()), "{no}");
        }
        assert!(on_stack.kernel_serves("192.168.7.7".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense/8").is_err());
        assert!(Cidr::parse("10.0.0.0/7")
            .unwrap()
            .contains("11.255.0.1".parse().unwrap()));
        assert!(!Cidr::parse("10.0.0.0/7").unwrap().contains("12.0.0.1".parse().unwrap()));
    }
}
