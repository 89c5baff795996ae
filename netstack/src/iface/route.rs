//! Addresses with prefixes, and the IPv4 routing table: connected subnets
//! and gateways, longest prefix first.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 address with a prefix length (`192.0.2.10/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix_len`; a prefix length above 32 is taken as 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Self {
        Ipv4Cidr {
            addr,
            prefix_len: prefix_len.min(32),
        }
    }

    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len as u32)
        }
    }

    /// Whether `a` is in this subnet.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (u32::from(a) ^ u32::from(self.addr)) & self.mask() == 0
    }

    /// The subnet's directed broadcast address (none for /31 and /32).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            None
        } else {
            Some(Ipv4Addr::from(u32::from(self.addr) | !self.mask()))
        }
    }
}

/// An IPv6 address with a prefix length (`2001:db8::1/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Cidr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub prefix_len: u8,
}

impl Ipv6Cidr {
    /// `addr/prefix_len`; a prefix length above 128 is taken as 128.
    pub fn new(addr: Ipv6Addr, prefix_len: u8) -> Self {
        Ipv6Cidr {
            addr,
            prefix_len: prefix_len.min(128),
        }
    }

    /// Whether `a` is in this prefix.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix_len as u32)
        };
        (u128::from(a) ^ u128::from(self.addr)) & mask == 0
    }
}

/// One IPv4 route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Route {
    /// Destinations this route covers.
    pub dst: Ipv4Cidr,
    /// Next hop; `None` for a connected (on-link) subnet.
    pub via: Option<Ipv4Addr>,
}

/// The IPv4 routing table. Small (a host has a handful of routes), kept
/// sorted longest prefix first so the first match is the best.
#[derive(Debug, Clone, Default)]
pub struct Ipv4Routes {
    routes: Vec<Ipv4Route>,
}

impl Ipv4Routes {
    /// An empty table.
    pub fn new() -> Self {
        Ipv4Routes::default()
    }

    /// Adds a route (replacing one for the same destination).
    pub fn add(&mut self, route: Ipv4Route) {
        self.routes.retain(|r| r.dst != route.dst);
        let at = self
            .routes
            .partition_point(|r| r.dst.prefix_len >= route.dst.prefix_len);
        self.routes.insert(at, route);
    }

    /// Removes the route for `dst`; returns whether there was one.
    pub fn remove(&mut self, dst: Ipv4Cidr) -> bool {
        let n = self.routes.len();
        self.routes.retain(|r| r.dst != dst);
        n != self.routes.len()
    }

    /// The routes, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &Ipv4Route> {
        self.routes.iter()
    }

    /// The next hop for `dst`: `dst` itself when on-link, the gateway
    /// otherwise; `None` when no route matches.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.routes
            .iter()
            .find(|r| r.dst.contains(dst))
            .map(|r| r.via.unwrap_or(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = Ipv4Routes::new();
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        t.add(Ipv4Route {
            dst: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: Some(gw),
        });
        t.add(Ipv4Route {
            dst: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 5), 24),
            via: None,
        });
        t.add(Ipv4Route {
            dst: Ipv4Cidr::new(Ipv4Addr::new(172, 16, 0, 0), 12),
            via: Some(Ipv4Addr::new(10, 0, 0, 2)),
        });
        assert_eq!(t.next_hop(Ipv4Addr::new(10, 0, 0, 9)), Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(
            t.next_hop(Ipv4Addr::new(172, 20, 1, 1)),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!(t.next_hop(Ipv4Addr::new(8, 8, 8, 8)), Some(gw));
        assert!(t.remove(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0)));
        assert_eq!(t.next_hop(Ipv4Addr::new(8, 8, 8, 8)), None);
    }

    #[test]
    fn cidr() {
        let c = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 1, 7), 24);
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(192, 168, 1, 255)));
        assert!(c.contains(Ipv4Addr::new(192, 168, 1, 200)));
        assert!(!c.contains(Ipv4Addr::new(192, 168, 2, 1)));
        assert!(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).contains(Ipv4Addr::new(1, 2, 3, 4)));
        let p = Ipv6Cidr::new("2001:db8::1".parse().unwrap(), 64);
        assert!(p.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!p.contains("2001:db9::1".parse().unwrap()));
    }
}
