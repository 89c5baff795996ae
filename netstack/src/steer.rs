//! Steering frames between shards: several [`Interface`](crate::iface::Interface)s
//! ("shards", one per core, each with its own NIC queue) share one IP
//! address and one TCP port space, and [`Steering::classify`] says which of
//! them must handle a received frame.
//!
//! The rules:
//! - TCP goes to the shard that registered its destination (local) port
//!   *by port* in the shared [`PortOwners`] table (listening and explicitly
//!   bound sockets, and connections accepted on them); any other TCP
//!   segment to the shard [`Steering::tcp_owner`] names, a seeded hash of
//!   the remote address, remote port and local port. `connect` picks its
//!   ephemeral port so that this hash names the connecting shard, and
//!   registers it as *hashed*: reserved across shards, steered by the hash.
//! - UDP, IPv4 and IPv6 fragments, ICMP other than errors and NDP, other
//!   EtherTypes and anything unparsable: shard 0.
//! - ARP and NDP (ICMPv6 types 133–137): every shard ([`Dest::All`]).
//! - ICMPv4 errors (types 3, 4, 11, 12) and ICMPv6 errors (types 1–4)
//!   quoting a TCP segment we sent: the TCP rule for the quoted connection;
//!   other errors: shard 0.
//!
//! Every registration reserves its port for one shard: a `bind` of a port
//! another shard holds fails with `EADDRINUSE`, and ephemeral searches skip
//! it. A shard's port table registers a port when its first socket binds
//! it and releases it when its last socket on it goes away (closed, or its
//! connection done, after TIME-WAIT).
//!
//! [`Steering::classify`] runs for every received frame: it reads the
//! frame's headers in place and one atomic entry of the table, and never
//! allocates, locks or panics, whatever the bytes.
//!
//! Not for: moving the frames (the shell passes them between shards), UDP
//! (whose sockets all live on shard 0), or choosing NIC queues in hardware.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// Entry bit: the port is steered by port (else by the hash).
const BY_PORT: u16 = 0x8000;
/// Entry bits: the owning shard's index plus one (0: free).
const SHARD_MASK: u16 = 0x7fff;

/// The most shards a [`PortOwners`] table can name.
pub const MAX_SHARDS: usize = SHARD_MASK as usize - 1;

/// How a shard holds a TCP port, as [`PortOwners::get`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortUse {
    /// The shard holding the port.
    pub shard: usize,
    /// Segments to the port go to `shard` whoever sends them (else the
    /// port is only reserved, and segments follow [`Steering::tcp_owner`]).
    pub by_port: bool,
}

/// The TCP port table shared by all shards: one atomic entry per port,
/// free or held by one shard (by port or hashed). Only the holding shard
/// changes or frees an entry; the others only claim free ones.
pub struct PortOwners {
    shards: usize,
    entries: Box<[AtomicU16]>,
}

impl core::fmt::Debug for PortOwners {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let held = self.entries.iter().filter(|e| e.load(Ordering::Relaxed) != 0).count();
        f.debug_struct("PortOwners")
            .field("shards", &self.shards)
            .field("held", &held)
            .finish()
    }
}

impl PortOwners {
    /// An empty table for `shards` shards (1 to [`MAX_SHARDS`]).
    pub fn new(shards: usize) -> Arc<PortOwners> {
        assert!(
            (1..=MAX_SHARDS).contains(&shards),
            "1 to {MAX_SHARDS} shards, not {shards}"
        );
        Arc::new(PortOwners {
            shards,
            entries: (0..=u16::MAX as usize).map(|_| AtomicU16::new(0)).collect(),
        })
    }

    /// The number of shards the table was made for.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Who holds TCP port `port`, if anyone.
    pub fn get(&self, port: u16) -> Option<PortUse> {
        decode(self.entries[port as usize].load(Ordering::Acquire))
    }

    /// Claims `port` for `shard` (steered by port or by the hash) if it is
    /// free; `shard` may also change how it holds a port it already holds.
    /// False if another shard holds it.
    pub(crate) fn claim(&self, port: u16, shard: usize, by_port: bool) -> bool {
        let want = encode(shard, by_port);
        let e = &self.entries[port as usize];
        match e.compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(cur) if cur & SHARD_MASK == want & SHARD_MASK => {
                // Ours: only we write it.
                e.store(want, Ordering::Release);
                true
            }
            Err(_) => false,
        }
    }

    /// Frees `port` if `shard` holds it.
    pub(crate) fn release(&self, port: u16, shard: usize) {
        let e = &self.entries[port as usize];
        let cur = e.load(Ordering::Acquire);
        if cur != 0 && cur & SHARD_MASK == encode(shard, false) {
            e.store(0, Ordering::Release);
        }
    }

    /// Whether no shard holds `port`.
    pub(crate) fn is_free(&self, port: u16) -> bool {
        self.entries[port as usize].load(Ordering::Acquire) == 0
    }

    /// The raw entry of `port`.
    fn raw(&self, port: u16) -> u16 {
        self.entries[port as usize].load(Ordering::Acquire)
    }
}

fn encode(shard: usize, by_port: bool) -> u16 {
    (shard as u16 + 1) | if by_port { BY_PORT } else { 0 }
}

fn decode(v: u16) -> Option<PortUse> {
    (v != 0).then(|| PortUse {
        shard: (v & SHARD_MASK) as usize - 1,
        by_port: v & BY_PORT != 0,
    })
}

/// Who must handle a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The shard with this index.
    Shard(usize),
    /// Every shard, each a copy (ARP, NDP).
    All,
}

/// One shard's view of the steering: its index, the shard count, the shared
/// port table and the hash seed (the same on every shard).
#[derive(Debug, Clone)]
pub struct Steering {
    index: usize,
    count: usize,
    seed: u64,
    ports: Arc<PortOwners>,
}

/// Shard 0: where everything not TCP goes.
const FIRST: Dest = Dest::Shard(0);

impl Steering {
    /// Shard `index` of `count`, all sharing `ports` and `seed`. Panics
    /// unless `index < count` and `ports` was made for `count` shards.
    pub fn new(index: usize, count: usize, seed: u64, ports: Arc<PortOwners>) -> Steering {
        assert!(index < count, "shard {index} of {count}");
        assert_eq!(ports.shards(), count, "the port table is for another shard count");
        Steering {
            index,
            count,
            seed,
            ports,
        }
    }

    /// This shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The port table shared by the shards.
    pub fn ports(&self) -> &Arc<PortOwners> {
        &self.ports
    }

    /// The shard that owns a TCP connection with `remote`:`remote_port`
    /// on `local_port` when the port is not registered by port: a seeded
    /// hash of the three, modulo the shard count. `remote` should be
    /// canonical (an IPv4-mapped IPv6 address as IPv4), as on the wire.
    pub fn tcp_owner(&self, remote: IpAddr, remote_port: u16, local_port: u16) -> usize {
        match remote {
            IpAddr::V4(a) => self.owner_v4(a.to_bits(), remote_port, local_port),
            IpAddr::V6(a) => self.owner_v6(a.to_bits(), remote_port, local_port),
        }
    }

    fn owner_v4(&self, remote: u32, remote_port: u16, local_port: u16) -> usize {
        let h = fmix(self.seed ^ ports_word(remote_port, local_port) ^ remote as u64);
        (h % self.count as u64) as usize
    }

    fn owner_v6(&self, remote: u128, remote_port: u16, local_port: u16) -> usize {
        let hi = (remote >> 64) as u64;
        let h = fmix(fmix(self.seed ^ ports_word(remote_port, local_port) ^ hi) ^ remote as u64);
        (h % self.count as u64) as usize
    }

    /// The shard a TCP segment from `remote` goes to, by its ports.
    fn tcp(&self, local_port: u16, hashed: impl FnOnce() -> usize) -> Dest {
        let e = self.ports.raw(local_port);
        if e & BY_PORT != 0 {
            Dest::Shard(((e & SHARD_MASK) as usize - 1).min(self.count - 1))
        } else {
            Dest::Shard(hashed())
        }
    }

    /// Who must handle this Ethernet frame (see the module doc for the
    /// rules). Never panics; what it cannot parse goes to shard 0.
    pub fn classify(&self, frame: &[u8]) -> Dest {
        let (Some(ty), Some(ip)) = (be16(frame, 12), frame.get(14..)) else {
            return FIRST;
        };
        match ty {
            0x0806 => Dest::All,
            0x0800 => self.ipv4(ip),
            0x86dd => self.ipv6(ip),
            _ => FIRST,
        }
    }

    fn ipv4(&self, p: &[u8]) -> Dest {
        let Some(v) = Ipv4View::new(p) else { return FIRST };
        if v.fragment {
            return FIRST;
        }
        match v.proto {
            6 => match (be16(v.payload, 0), be16(v.payload, 2)) {
                (Some(sport), Some(dport)) => self.tcp(dport, || self.owner_v4(v.src, sport, dport)),
                _ => FIRST,
            },
            1 => match v.payload.first() {
                Some(3 | 4 | 11 | 12) => self.icmpv4_quote(v.dst, v.payload.get(8..).unwrap_or(&[])),
                _ => FIRST,
            },
            _ => FIRST,
        }
    }

    /// An ICMPv4 error to `us` quoting `inner`.
    fn icmpv4_quote(&self, us: u32, inner: &[u8]) -> Dest {
        let Some(q) = Ipv4View::new(inner) else { return FIRST };
        // A quoted first fragment (more fragments set) still has the ports.
        if q.proto != 6 || q.offset != 0 || q.src != us {
            return FIRST;
        }
        match (be16(q.payload, 0), be16(q.payload, 2)) {
            (Some(local), Some(rport)) => self.tcp(local, || self.owner_v4(q.dst, rport, local)),
            _ => FIRST,
        }
    }

    fn ipv6(&self, p: &[u8]) -> Dest {
        let Some(v) = Ipv6View::new(p) else { return FIRST };
        match v.next {
            6 => match (be16(v.payload, 0), be16(v.payload, 2)) {
                (Some(sport), Some(dport)) => self.tcp(dport, || self.owner_v6(v.src, sport, dport)),
                _ => FIRST,
            },
            58 => match v.payload.first() {
                Some(133..=137) => Dest::All,
                Some(1..=4) => self.icmpv6_quote(v.dst, v.payload.get(8..).unwrap_or(&[])),
                _ => FIRST,
            },
            _ => FIRST,
        }
    }

    /// An ICMPv6 error to `us` quoting `inner`.
    fn icmpv6_quote(&self, us: u128, inner: &[u8]) -> Dest {
        let Some(q) = Ipv6View::new(inner) else { return FIRST };
        if q.next != 6 || q.src != us {
            return FIRST;
        }
        match (be16(q.payload, 0), be16(q.payload, 2)) {
            (Some(local), Some(rport)) => self.tcp(local, || self.owner_v6(q.dst, rport, local)),
            _ => FIRST,
        }
    }
}

/// The two ports in the upper half of a word.
fn ports_word(remote_port: u16, local_port: u16) -> u64 {
    ((remote_port as u64) << 32) | ((local_port as u64) << 48)
}

/// MurmurHash3's 64-bit finalizer: every input bit flips each output bit
/// with probability about one half.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be128(b: &[u8], at: usize) -> Option<u128> {
    Some(u128::from_be_bytes(b.get(at..at + 16)?.try_into().ok()?))
}

/// The fields of an IPv4 header steering needs.
struct Ipv4View<'a> {
    src: u32,
    dst: u32,
    proto: u8,
    /// More fragments, or a nonzero offset.
    fragment: bool,
    offset: u16,
    /// What follows the header (to the end of the buffer: trailing padding
    /// is harmless here).
    payload: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    fn new(p: &'a [u8]) -> Option<Self> {
        let vihl = *p.first()?;
        let hl = (vihl & 0x0f) as usize * 4;
        if vihl >> 4 != 4 || hl < 20 {
            return None;
        }
        let frag = be16(p, 6)?;
        Some(Ipv4View {
            src: be32(p, 12)?,
            dst: be32(p, 16)?,
            proto: *p.get(9)?,
            fragment: frag & 0x3fff != 0,
            offset: frag & 0x1fff,
            payload: p.get(hl..)?,
        })
    }
}

/// The fields of an IPv6 header steering needs, extension headers skipped.
struct Ipv6View<'a> {
    src: u128,
    dst: u128,
    /// The upper-layer protocol after hop-by-hop, routing and destination
    /// options headers.
    next: u8,
    payload: &'a [u8],
}

impl<'a> Ipv6View<'a> {
    /// `None` for a fragment (its Fragment header), a truncated header or
    /// too long a chain of extension headers.
    fn new(p: &'a [u8]) -> Option<Self> {
        if p.first()? >> 4 != 6 {
            return None;
        }
        let (src, dst) = (be128(p, 8)?, be128(p, 24)?);
        let mut next = *p.get(6)?;
        let mut at = 40;
        for _ in 0..8 {
            match next {
                // Hop-by-hop, routing, destination options: (len + 1) * 8.
                0 | 43 | 60 => {
                    next = *p.get(at)?;
                    at += (*p.get(at + 1)? as usize + 1) * 8;
                }
                _ => break,
            }
        }
        if matches!(next, 0 | 43 | 60 | 44) {
            return None;
        }
        Some(Ipv6View {
            src,
            dst,
            next,
            payload: p.get(at..)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn us6() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }

    fn peer6() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    fn steering(index: usize, count: usize) -> Steering {
        Steering::new(index, count, 0x1234_5678_9abc_def0, PortOwners::new(count))
    }

    fn eth(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// An IPv4 header (no options) with `frag` as flags and offset.
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 7]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[nh, 64]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    /// A 20-byte TCP header (a SYN).
    fn tcp(sport: u16, dport: u16) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    /// An ICMP message: type, code 0, four bytes of zeros, then `body`.
    fn icmp(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(body);
        m
    }

    fn tcp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        eth(0x0800, &ipv4(src, dst, 6, 0x4000, &tcp(sport, dport)))
    }

    fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
        eth(0x86dd, &ipv6(src, dst, 6, &tcp(sport, dport)))
    }

    /// A remote port whose connection to `local_port` hashes to `want`.
    fn rport_for(s: &Steering, remote: IpAddr, local_port: u16, want: usize) -> u16 {
        (1000..u16::MAX)
            .find(|&p| s.tcp_owner(remote, p, local_port) == want)
            .expect("a port hashes there")
    }

    #[test]
    fn arp_goes_to_every_shard() {
        let s = steering(1, 4);
        let arp = eth(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        assert_eq!(s.classify(&arp), Dest::All);
    }

    #[test]
    fn tcp_to_an_unregistered_port_follows_the_hash() {
        let s = steering(0, 4);
        let mut seen = [0u32; 4];
        for p in 1000..3000u16 {
            let want = s.tcp_owner(IpAddr::V4(PEER4), p, 80);
            assert_eq!(s.classify(&tcp4(PEER4, p, US4, 80)), Dest::Shard(want));
            let want6 = s.tcp_owner(IpAddr::V6(peer6()), p, 443);
            assert_eq!(s.classify(&tcp6(peer6(), p, us6(), 443)), Dest::Shard(want6));
            seen[want] += 1;
        }
        // Spread over the shards, roughly evenly (500 each expected).
        assert!(seen.iter().all(|&n| (400..600).contains(&n)), "{seen:?}");
    }

    #[test]
    fn hash_depends_on_seed_and_every_field() {
        let a = Steering::new(0, 64, 1, PortOwners::new(64));
        let b = Steering::new(0, 64, 2, PortOwners::new(64));
        let r = IpAddr::V4(PEER4);
        let base = a.tcp_owner(r, 5000, 80);
        let differs = |f: &dyn Fn(u16) -> usize| (1..20u16).any(|k| f(k) != base);
        assert!(differs(&|k| a.tcp_owner(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + k as u8)),
            5000,
            80
        )));
        assert!(differs(&|k| a.tcp_owner(r, 5000 + k, 80)));
        assert!(differs(&|k| a.tcp_owner(r, 5000, 80 + k)));
        assert!((0..20u16).any(|k| a.tcp_owner(r, 5000 + k, 80) != b.tcp_owner(r, 5000 + k, 80)));
        // The same function on every shard's view.
        let c = Steering::new(5, 64, 1, a.ports().clone());
        assert_eq!(c.tcp_owner(r, 5000, 80), base);
    }

    #[test]
    fn tcp_to_a_port_registered_by_port_goes_to_its_shard() {
        let s = steering(0, 4);
        assert!(s.ports().claim(8080, 2, true));
        for p in 1000..1100u16 {
            assert_eq!(s.classify(&tcp4(PEER4, p, US4, 8080)), Dest::Shard(2));
            assert_eq!(s.classify(&tcp6(peer6(), p, us6(), 8080)), Dest::Shard(2));
        }
        // Reserved but hashed: the hash decides.
        assert!(s.ports().claim(40000, 3, false));
        let p = rport_for(&s, IpAddr::V4(PEER4), 40000, 1);
        assert_eq!(s.classify(&tcp4(PEER4, p, US4, 40000)), Dest::Shard(1));
        assert_eq!(
            s.ports().get(40000),
            Some(PortUse {
                shard: 3,
                by_port: false
            })
        );
    }

    #[test]
    fn port_table_claims_are_exclusive() {
        let t = PortOwners::new(3);
        assert!(t.is_free(5));
        assert!(t.claim(5, 1, false));
        assert!(!t.claim(5, 0, true), "another shard's");
        assert!(t.claim(5, 1, true), "the holder changes its kind");
        assert_eq!(
            t.get(5),
            Some(PortUse {
                shard: 1,
                by_port: true
            })
        );
        t.release(5, 2);
        assert!(!t.is_free(5), "only the holder frees it");
        t.release(5, 1);
        assert_eq!(t.get(5), None);
        assert!(t.claim(5, 2, false));
    }

    #[test]
    fn udp_goes_to_shard_zero() {
        let s = steering(3, 4);
        s.ports().claim(53, 2, true);
        assert_eq!(
            s.classify(&eth(0x0800, &ipv4(PEER4, US4, 17, 0, &udp(999, 53)))),
            Dest::Shard(0)
        );
        assert_eq!(
            s.classify(&eth(0x86dd, &ipv6(peer6(), us6(), 17, &udp(999, 53)))),
            Dest::Shard(0)
        );
    }

    #[test]
    fn fragments_go_to_shard_zero() {
        let s = steering(0, 4);
        s.ports().claim(80, 2, true);
        let seg = tcp(1234, 80);
        // More fragments; a later fragment; DF alone is no fragment.
        assert_eq!(
            s.classify(&eth(0x0800, &ipv4(PEER4, US4, 6, 0x2000, &seg))),
            Dest::Shard(0)
        );
        assert_eq!(
            s.classify(&eth(0x0800, &ipv4(PEER4, US4, 6, 0x0010, &seg))),
            Dest::Shard(0)
        );
        assert_eq!(
            s.classify(&eth(0x0800, &ipv4(PEER4, US4, 6, 0x4000, &seg))),
            Dest::Shard(2)
        );
        // IPv6 Fragment header (offset 0, more fragments) before TCP.
        let mut frag = vec![6, 0, 0, 1, 0, 0, 0, 9];
        frag.extend_from_slice(&seg);
        assert_eq!(
            s.classify(&eth(0x86dd, &ipv6(peer6(), us6(), 44, &frag))),
            Dest::Shard(0)
        );
        // ... also behind a hop-by-hop header.
        let mut hbh = vec![44, 0, 1, 4, 0, 0, 0, 0];
        hbh.extend_from_slice(&frag);
        assert_eq!(s.classify(&eth(0x86dd, &ipv6(peer6(), us6(), 0, &hbh))), Dest::Shard(0));
    }

    #[test]
    fn ipv6_extension_headers_are_skipped_to_find_tcp() {
        let s = steering(0, 4);
        let rp = rport_for(&s, IpAddr::V6(peer6()), 443, 3);
        // Hop-by-hop (8 bytes), destination options (16), routing (8), TCP.
        let mut p = vec![60, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[43, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&tcp(rp, 443));
        let f = eth(0x86dd, &ipv6(peer6(), us6(), 0, &p));
        assert_eq!(s.classify(&f), Dest::Shard(3));
        // An unknown extension (or ESP) hides the ports: shard 0.
        assert_eq!(
            s.classify(&eth(0x86dd, &ipv6(peer6(), us6(), 50, &tcp(rp, 443)))),
            Dest::Shard(0)
        );
    }

    #[test]
    fn icmpv4_errors_follow_the_quoted_tcp_segment() {
        let s = steering(0, 4);
        let rp = rport_for(&s, IpAddr::V4(PEER4), 40001, 3);
        // We sent 40001 -> PEER4:rp; a router reports it.
        let quoted = ipv4(US4, PEER4, 6, 0x4000, &tcp(40001, rp)[..8]);
        let router = Ipv4Addr::new(192, 0, 2, 1);
        for ty in [3u8, 4, 11, 12] {
            let f = eth(0x0800, &ipv4(router, US4, 1, 0, &icmp(ty, &quoted)));
            assert_eq!(s.classify(&f), Dest::Shard(3), "type {ty}");
        }
        // By port wins there too.
        s.ports().claim(40001, 1, true);
        let f = eth(0x0800, &ipv4(router, US4, 1, 0, &icmp(3, &quoted)));
        assert_eq!(s.classify(&f), Dest::Shard(1));
        // Not from us, not TCP, not an error: shard 0.
        let spoof = ipv4(PEER4, US4, 6, 0x4000, &tcp(40001, rp)[..8]);
        let f = eth(0x0800, &ipv4(router, US4, 1, 0, &icmp(3, &spoof)));
        assert_eq!(s.classify(&f), Dest::Shard(0));
        let udp_q = ipv4(US4, PEER4, 17, 0, &udp(40001, rp));
        assert_eq!(
            s.classify(&eth(0x0800, &ipv4(router, US4, 1, 0, &icmp(3, &udp_q)))),
            Dest::Shard(0)
        );
        let later_fragment = ipv4(US4, PEER4, 6, 0x0003, &tcp(40001, rp)[..8]);
        let f = eth(0x0800, &ipv4(router, US4, 1, 0, &icmp(3, &later_fragment)));
        assert_eq!(s.classify(&f), Dest::Shard(0));
        for ty in [0u8, 8, 5, 13] {
            let f = eth(0x0800, &ipv4(router, US4, 1, 0, &icmp(ty, &quoted)));
            assert_eq!(s.classify(&f), Dest::Shard(0), "type {ty}");
        }
    }

    #[test]
    fn icmpv6_errors_follow_the_quoted_tcp_segment() {
        let s = steering(0, 4);
        let rp = rport_for(&s, IpAddr::V6(peer6()), 40002, 2);
        let router: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
        // The quoted packet has a destination options header.
        let mut inner = vec![6, 0, 0, 0, 0, 0, 0, 0];
        inner.extend_from_slice(&tcp(40002, rp));
        let quoted = ipv6(us6(), peer6(), 60, &inner);
        for ty in 1u8..=4 {
            let f = eth(0x86dd, &ipv6(router, us6(), 58, &icmp(ty, &quoted)));
            assert_eq!(s.classify(&f), Dest::Shard(2), "type {ty}");
        }
        let spoof = ipv6(peer6(), us6(), 6, &tcp(40002, rp));
        let f = eth(0x86dd, &ipv6(router, us6(), 58, &icmp(1, &spoof)));
        assert_eq!(s.classify(&f), Dest::Shard(0));
        // Echo request and reply, MLD: shard 0.
        for ty in [128u8, 129, 130] {
            let f = eth(0x86dd, &ipv6(router, us6(), 58, &icmp(ty, &quoted)));
            assert_eq!(s.classify(&f), Dest::Shard(0), "type {ty}");
        }
    }

    #[test]
    fn ndp_goes_to_every_shard() {
        let s = steering(2, 4);
        for ty in 133u8..=137 {
            let f = eth(0x86dd, &ipv6(peer6(), us6(), 58, &icmp(ty, &[0; 16])));
            assert_eq!(s.classify(&f), Dest::All, "type {ty}");
        }
        // Behind a hop-by-hop header too.
        let mut p = vec![58, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&icmp(135, &[0; 16]));
        assert_eq!(s.classify(&eth(0x86dd, &ipv6(peer6(), us6(), 0, &p))), Dest::All);
    }

    #[test]
    fn other_ethertypes_and_bad_versions_go_to_shard_zero() {
        let s = steering(1, 4);
        let rp = rport_for(&s, IpAddr::V4(PEER4), 80, 3);
        let mut f = tcp4(PEER4, rp, US4, 80);
        assert_eq!(s.classify(&f), Dest::Shard(3));
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        assert_eq!(s.classify(&f), Dest::Shard(0), "VLAN");
        let mut f = tcp4(PEER4, rp, US4, 80);
        f[14] = 0x65;
        assert_eq!(s.classify(&f), Dest::Shard(0), "version 6 in an IPv4 frame");
        let mut f = tcp4(PEER4, rp, US4, 80);
        f[14] = 0x44;
        assert_eq!(s.classify(&f), Dest::Shard(0), "header length 16");
    }

    /// Every prefix of every kind of frame: no panic, and a frame cut
    /// before the ports goes to shard 0.
    #[test]
    fn truncated_frames_go_to_shard_zero_and_never_panic() {
        let s = steering(0, 4);
        let rp4 = rport_for(&s, IpAddr::V4(PEER4), 80, 3);
        let rp6 = rport_for(&s, IpAddr::V6(peer6()), 80, 3);
        let tcp_v4 = tcp4(PEER4, rp4, US4, 80);
        let tcp_v6 = tcp6(peer6(), rp6, us6(), 80);
        for (f, ports_end) in [(&tcp_v4, 14 + 20 + 4), (&tcp_v6, 14 + 40 + 4)] {
            for n in 0..f.len() {
                let want = if n < ports_end { Dest::Shard(0) } else { Dest::Shard(3) };
                assert_eq!(s.classify(&f[..n]), want, "{n} bytes");
            }
        }
        let quoted = ipv4(US4, PEER4, 6, 0, &tcp(40001, 80)[..8]);
        let icmp4 = eth(0x0800, &ipv4(PEER4, US4, 1, 0, &icmp(3, &quoted)));
        let mut hbh = vec![58, 0, 1, 4, 0, 0, 0, 0];
        hbh.extend_from_slice(&icmp(135, &[0; 16]));
        let ndp = eth(0x86dd, &ipv6(peer6(), us6(), 0, &hbh));
        for f in [&icmp4, &ndp] {
            for n in 0..f.len() {
                let _ = s.classify(&f[..n]);
            }
        }
        // Random bytes behind each EtherType.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for k in 0..20_000 {
            let mut f = Vec::new();
            for _ in 0..(k % 120) {
                x = fmix(x.wrapping_add(0x9e37_79b9_7f4a_7c15));
                f.push(x as u8);
            }
            if f.len() >= 15 {
                let ty: u16 = [0x0800, 0x86dd, 0x0806, 0x8100][k % 4];
                f[12..14].copy_from_slice(&ty.to_be_bytes());
                f[14] = f[14] & 0x0f | if ty == 0x86dd { 0x60 } else { 0x40 };
            }
            if let Dest::Shard(i) = s.classify(&f) {
                assert!(i < 4);
            }
        }
    }
}
