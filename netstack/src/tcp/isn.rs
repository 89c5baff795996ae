//! Initial sequence numbers after RFC 6528.
//!
//! RFC 6528 §3: "ISN = M + F(localip, localport, remoteip, remoteport,
//! secretkey) where M is the 4 microsecond timer, and F() is a
//! pseudorandom function (PRF) of the connection-id." Here `M` is derived
//! from the caller's `now` (never a clock read) and `F` is SipHash-2-4 keyed
//! with a 128-bit secret that the shell injects (it must come from a
//! cryptographically secure source; this module never generates it).
//!
//! Not for: choosing ports, timestamps offsets or SYN cookies (see
//! [`super::syncache`]).

use core::hash::Hasher;
use core::net::SocketAddr;

use siphasher::sip::SipHasher24;

use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// Feeds a socket address into a hasher unambiguously (family tag, address
/// octets, port), so IPv4 and IPv6 tuples never collide by construction.
pub(crate) fn hash_addr(h: &mut SipHasher24, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            h.write_u8(4);
            h.write(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            h.write_u8(6);
            h.write(&a.ip().octets());
        }
    }
    h.write_u16(addr.port());
}

/// SipHash-2-4 of a connection's 4-tuple under `key`.
pub(crate) fn hash_tuple(key: &[u8; 16], local: &SocketAddr, remote: &SocketAddr) -> SipHasher24 {
    let mut h = SipHasher24::new_with_key(key);
    hash_addr(&mut h, local);
    hash_addr(&mut h, remote);
    h
}

/// Generates RFC 6528 initial sequence numbers from an injected secret.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.debug_struct("IsnGenerator").finish_non_exhaustive()
    }
}

impl IsnGenerator {
    /// A generator keyed with `secret` (128 bits from a CSPRNG, chosen by the
    /// shell at boot; RFC 6528 §3 "secretkey").
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { key: secret }
    }

    /// `M`: the RFC 6528 timer, one tick per 4 µs, modulo 2^32.
    pub fn timer(now: Instant) -> u32 {
        (now.as_micros() / 4) as u32
    }

    /// `F`: the keyed PRF of the connection-id (4-tuple), truncated to 32 bits.
    pub fn offset(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        hash_tuple(&self.key, &local, &remote).finish() as u32
    }

    /// The ISN for a connection from `local` to `remote` at `now`:
    /// `M + F(localip, localport, remoteip, remoteport, secretkey)`.
    pub fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> SeqNum {
        SeqNum(Self::timer(now).wrapping_add(self.offset(local, remote)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn same_tuple_advances_250k_per_second() {
        let g = IsnGenerator::new([7; 16]);
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:40000"));
        let a = g.isn(Instant::from_secs(100), l, r);
        let b = g.isn(Instant::from_secs(101), l, r);
        assert_eq!(b.diff(a), 250_000);
        let c = g.isn(Instant::from_micros(101_000_004), l, r);
        assert_eq!(c.diff(b), 1);
        // IPv6 as well.
        let (l6, r6) = (sa("[2001:db8::1]:80"), sa("[2001:db8::2]:40000"));
        let a6 = g.isn(Instant::from_secs(5), l6, r6);
        let b6 = g.isn(Instant::from_secs(6), l6, r6);
        assert_eq!(b6.diff(a6), 250_000);
    }

    #[test]
    fn different_tuples_unrelated() {
        let g = IsnGenerator::new([0x5a; 16]);
        let now = Instant::from_secs(1);
        let l = sa("10.0.0.1:80");
        let mut seen = std::collections::HashSet::new();
        let mut near = 0;
        let base = g.isn(now, l, sa("10.0.0.2:1024"));
        for port in 1024..3024u16 {
            let isn = g.isn(now, l, SocketAddr::new(sa("10.0.0.2:1").ip(), port));
            assert!(seen.insert(isn.0), "collision at port {port}");
            if port != 1024 && isn.diff(base).unsigned_abs() < 1 << 20 {
                near += 1;
            }
        }
        // 2000 uniform values: about 2000 * 2^21 / 2^32 ≈ 1 lands that close.
        assert!(near < 10, "{near} ISNs within 2^20 of each other");
        // A different key gives a different ISN for the same tuple.
        let g2 = IsnGenerator::new([0x5b; 16]);
        assert_ne!(g.isn(now, l, sa("10.0.0.2:1024")), g2.isn(now, l, sa("10.0.0.2:1024")));
        // v4 vs v4-mapped v6 differ.
        assert_ne!(
            g.isn(now, l, sa("10.0.0.2:1024")),
            g.isn(now, sa("[::ffff:10.0.0.1]:80"), sa("[::ffff:10.0.0.2]:1024"))
        );
    }
}
