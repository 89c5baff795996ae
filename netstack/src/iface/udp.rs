//! The UDP socket table: bind (with Linux's `SO_REUSEADDR`/`SO_REUSEPORT`
//! rules and ephemeral ports), connect, bounded queues, and demultiplexing
//! by hash.
//!
//! Demultiplexing never scans: a datagram is matched by at most four hash
//! lookups, most specific first: the connected socket for its 4-tuple, the
//! sockets bound to its destination address and port, the sockets bound to
//! the IPv4 wildcard, then those bound to the IPv6 wildcard. Sockets that
//! share one binding (`SO_REUSEADDR`, `SO_REUSEPORT`) sit in one small group
//! under one key. A per-port index of every binding serves only bind-time
//! conflict checks.
//!
//! Addresses are kept canonical: an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is stored as the IPv4 address, so a dual-stack IPv6
//! socket and an IPv4 socket compete for the same IPv4 traffic. They are
//! shown mapped again to IPv6 sockets.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{IcmpError, SocketError, SocketHandle};

/// Address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`; `v6only` is `IPV6_V6ONLY` (Linux's default: false, so a
    /// socket bound to `[::]` also receives IPv4).
    V6 {
        /// `IPV6_V6ONLY`.
        v6only: bool,
    },
}

/// Limits of UDP sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Bytes of payload a receive queue holds (`SO_RCVBUF`-like).
    pub rx_queue_bytes: usize,
    /// Datagrams a receive queue holds.
    pub rx_queue_datagrams: usize,
    /// Bytes of payload a send queue holds before `send_to` would block.
    pub tx_queue_bytes: usize,
    /// Datagrams a send queue holds.
    pub tx_queue_datagrams: usize,
    /// Ephemeral port range (Linux `ip_local_port_range`: 32768-60999).
    pub ephemeral_ports: (u16, u16),
    /// Errors remembered per socket with `IP_RECVERR`.
    pub error_queue_len: usize,
    /// Largest `SO_RCVBUF`/`SO_SNDBUF` a program may ask for, before Linux's
    /// doubling (`net.core.rmem_max`/`wmem_max`).
    pub max_buffer_request: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            rx_queue_bytes: 212_992,
            rx_queue_datagrams: 1024,
            tx_queue_bytes: 212_992,
            tx_queue_datagrams: 1024,
            ephemeral_ports: (32768, 60999),
            error_queue_len: 16,
            max_buffer_request: 212_992,
        }
    }
}

/// A received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender (canonical).
    pub from: SocketAddr,
    /// The local address it was sent to (for `IP_PKTINFO`).
    pub to: IpAddr,
    /// Payload.
    pub data: Vec<u8>,
}

/// What [`super::Interface::udp_recv_from`] returns besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// Length of the whole datagram (larger than `len` when truncated, as
    /// with `MSG_TRUNC`).
    pub datagram_len: usize,
    /// Sender, as the socket's family shows it.
    pub from: SocketAddr,
    /// The local address it was sent to.
    pub to: IpAddr,
}

#[derive(Debug)]
pub(crate) struct TxDatagram {
    pub(crate) dst: SocketAddr,
    pub(crate) data: Vec<u8>,
}

/// Coverage of a binding in one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cov<A> {
    None,
    All,
    One(A),
}

impl<A: PartialEq> Cov<A> {
    fn overlaps(&self, o: &Cov<A>) -> bool {
        match (self, o) {
            (Cov::None, _) | (_, Cov::None) => false,
            (Cov::All, _) | (_, Cov::All) => true,
            (Cov::One(a), Cov::One(b)) => a == b,
        }
    }
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`; everything else is unchanged.
pub fn canonical_ip(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// [`canonical_ip`] for a socket address.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(a.ip()), a.port())
}

#[derive(Debug)]
pub(crate) struct UdpSocket {
    pub(crate) family: Family,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) reuse_addr: bool,
    pub(crate) reuse_port: bool,
    /// Who may share a port through `SO_REUSEPORT` (Linux: same effective
    /// uid).
    pub(crate) owner: u32,
    /// `SO_BROADCAST`.
    pub(crate) broadcast: bool,
    /// `IP_MTU_DISCOVER`.
    pub(crate) pmtu_discovery: super::PmtuDiscovery,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`.
    pub(crate) hop_limit: Option<u8>,
    /// The local address was chosen by `bind`, not by `connect` (Linux
    /// `SOCK_BINDADDR_LOCK`): disconnecting keeps it.
    addr_locked: bool,
    pub(crate) recv_err: bool,
    bind_seq: u64,
    pub(crate) rx: VecDeque<Datagram>,
    pub(crate) rx_bytes: usize,
    /// Payload bytes the receive queue may hold (`SO_RCVBUF`).
    pub(crate) rx_limit: usize,
    /// Payload bytes the send queue may hold (`SO_SNDBUF`).
    pub(crate) tx_limit: usize,
    pub(crate) tx: VecDeque<TxDatagram>,
    pub(crate) tx_bytes: usize,
    pub(crate) tx_blocked: bool,
    pub(crate) tx_listed: bool,
    pub(crate) error: Option<SocketError>,
    pub(crate) errqueue: VecDeque<IcmpError>,
    pub(crate) events: u8,
}

impl UdpSocket {
    fn new(family: Family, config: &UdpConfig) -> Self {
        UdpSocket {
            family,
            rx_limit: config.rx_queue_bytes,
            tx_limit: config.tx_queue_bytes,
            local: None,
            remote: None,
            reuse_addr: false,
            reuse_port: false,
            owner: 0,
            broadcast: false,
            pmtu_discovery: super::PmtuDiscovery::Want,
            hop_limit: None,
            addr_locked: false,
            recv_err: false,
            bind_seq: 0,
            rx: VecDeque::new(),
            rx_bytes: 0,
            tx: VecDeque::new(),
            tx_bytes: 0,
            tx_blocked: false,
            tx_listed: false,
            error: None,
            errqueue: VecDeque::new(),
            events: 0,
        }
    }

    /// Which IPv4 and IPv6 local addresses a binding to `ip` covers.
    fn coverage(family: Family, ip: IpAddr) -> (Cov<Ipv4Addr>, Cov<Ipv6Addr>) {
        match (family, ip) {
            (Family::V4, IpAddr::V4(a)) if a.is_unspecified() => (Cov::All, Cov::None),
            (Family::V4, IpAddr::V4(a)) => (Cov::One(a), Cov::None),
            (Family::V6 { .. }, IpAddr::V4(a)) => (Cov::One(a), Cov::None),
            (Family::V6 { v6only: false }, IpAddr::V6(a)) if a.is_unspecified() => (Cov::All, Cov::All),
            (Family::V6 { v6only: true }, IpAddr::V6(a)) if a.is_unspecified() => (Cov::None, Cov::All),
            (Family::V6 { .. }, IpAddr::V6(a)) => (Cov::None, Cov::One(a)),
            (Family::V4, IpAddr::V6(_)) => (Cov::None, Cov::None),
        }
    }

    /// An address as this socket shows it to the program.
    pub(crate) fn present(&self, a: SocketAddr) -> SocketAddr {
        match (self.family, a) {
            (Family::V6 { .. }, SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            _ => a,
        }
    }

    /// Whether the socket's family can talk to `a` (canonical).
    pub(crate) fn can_reach(&self, a: &SocketAddr) -> bool {
        match (self.family, a) {
            (Family::V4, SocketAddr::V4(_)) | (Family::V6 { .. }, SocketAddr::V6(_)) => true,
            (Family::V6 { v6only }, SocketAddr::V4(_)) => !v6only,
            (Family::V4, SocketAddr::V6(_)) => false,
        }
    }
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    sock: Option<UdpSocket>,
}

/// The table of UDP sockets.
#[derive(Debug)]
pub(crate) struct UdpTable {
    pub(crate) config: UdpConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Every bound socket by port: only for bind conflicts (control path).
    by_port: HashMap<u16, Vec<u32>>,
    /// Connected sockets by (local, remote).
    connected: HashMap<(SocketAddr, SocketAddr), u32>,
    /// Unconnected sockets bound to one address, by that address and port.
    /// The vector holds a `SO_REUSEADDR`/`SO_REUSEPORT` group.
    bound: HashMap<SocketAddr, Vec<u32>>,
    /// Unconnected sockets bound to a wildcard, by port and kind.
    wild: HashMap<(u16, Wild), Vec<u32>>,
    next_bind_seq: u64,
}

/// Which wildcard a socket is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Wild {
    /// `0.0.0.0` on an IPv4 socket.
    V4,
    /// `[::]` on a dual-stack IPv6 socket.
    V6Dual,
    /// `[::]` with `IPV6_V6ONLY`.
    V6Only,
}

impl UdpTable {
    pub(crate) fn new(config: UdpConfig) -> Self {
        UdpTable {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            by_port: HashMap::new(),
            connected: HashMap::new(),
            bound: HashMap::new(),
            wild: HashMap::new(),
            next_bind_seq: 0,
        }
    }

    pub(crate) fn open(&mut self, family: Family) -> SocketHandle {
        let sock = Some(UdpSocket::new(family, &self.config));
        match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.sock = sock;
                SocketHandle { index: i, gen: s.gen }
            }
            None => {
                self.slots.push(Slot { gen: 0, sock });
                SocketHandle {
                    index: (self.slots.len() - 1) as u32,
                    gen: 0,
                }
            }
        }
    }

    pub(crate) fn get(&self, h: SocketHandle) -> Result<&UdpSocket, SocketError> {
        match self.slots.get(h.index as usize) {
            Some(Slot { gen, sock: Some(s) }) if *gen == h.gen => Ok(s),
            _ => Err(SocketError::BadHandle),
        }
    }

    pub(crate) fn get_mut(&mut self, h: SocketHandle) -> Result<&mut UdpSocket, SocketError> {
        match self.slots.get_mut(h.index as usize) {
            Some(Slot { gen, sock: Some(s) }) if *gen == h.gen => Ok(s),
            _ => Err(SocketError::BadHandle),
        }
    }

    pub(crate) fn handle_of(&self, index: u32) -> SocketHandle {
        SocketHandle {
            index,
            gen: self.slots[index as usize].gen,
        }
    }

    pub(crate) fn by_index_mut(&mut self, index: u32) -> Option<&mut UdpSocket> {
        self.slots.get_mut(index as usize).and_then(|s| s.sock.as_mut())
    }

    pub(crate) fn close(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        let s = self.get(h)?;
        if let Some(l) = s.local {
            self.unhash(h.index);
            remove_from(&mut self.by_port, l.port(), h.index);
        }
        let slot = &mut self.slots[h.index as usize];
        slot.sock = None;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(h.index);
        Ok(())
    }

    /// Where the demultiplexing maps keep socket `index`, by its state.
    fn demux_key(&self, index: u32) -> Option<DemuxKey> {
        let s = self.slots[index as usize].sock.as_ref()?;
        let l = s.local?;
        Some(match (s.remote, l.ip().is_unspecified(), s.family) {
            (Some(r), _, _) => DemuxKey::Connected(l, r),
            (None, false, _) => DemuxKey::Bound(l),
            (None, true, Family::V4) => DemuxKey::Wild(l.port(), Wild::V4),
            (None, true, Family::V6 { v6only: false }) => DemuxKey::Wild(l.port(), Wild::V6Dual),
            (None, true, Family::V6 { v6only: true }) => DemuxKey::Wild(l.port(), Wild::V6Only),
        })
    }

    /// Enters socket `index` in the demultiplexing maps.
    fn hash(&mut self, index: u32) {
        match self.demux_key(index) {
            Some(DemuxKey::Connected(l, r)) => {
                self.connected.insert((l, r), index);
            }
            Some(DemuxKey::Bound(l)) => self.bound.entry(l).or_default().push(index),
            Some(DemuxKey::Wild(p, w)) => self.wild.entry((p, w)).or_default().push(index),
            None => {}
        }
    }

    /// Removes socket `index` from the demultiplexing maps.
    fn unhash(&mut self, index: u32) {
        match self.demux_key(index) {
            Some(DemuxKey::Connected(l, r)) if self.connected.get(&(l, r)) == Some(&index) => {
                self.connected.remove(&(l, r));
            }
            Some(DemuxKey::Connected(..)) => {}
            Some(DemuxKey::Bound(l)) => remove_from(&mut self.bound, l, index),
            Some(DemuxKey::Wild(p, w)) => remove_from(&mut self.wild, (p, w), index),
            None => {}
        }
    }

    /// Whether binding `index` to `addr` would conflict (Linux
    /// `udp_lib_lport_inuse`: overlapping addresses on the same port are
    /// allowed only if both sockets set `SO_REUSEADDR`, or both set
    /// `SO_REUSEPORT` and have the same owner).
    fn conflicts(&self, index: u32, addr: SocketAddr) -> bool {
        let me = &self.slots[index as usize];
        let Some(me) = me.sock.as_ref() else { return false };
        let (family, reuse_addr, reuse_port, owner) = (me.family, me.reuse_addr, me.reuse_port, me.owner);
        let (a4, a6) = UdpSocket::coverage(family, addr.ip());
        let Some(others) = self.by_port.get(&addr.port()) else {
            return false;
        };
        others.iter().filter(|&&i| i != index).any(|&i| {
            let Some(o) = self.slots[i as usize].sock.as_ref() else {
                return false;
            };
            let Some(ol) = o.local else { return false };
            let (b4, b6) = UdpSocket::coverage(o.family, ol.ip());
            let overlap = a4.overlaps(&b4) || a6.overlaps(&b6);
            overlap && !(reuse_addr && o.reuse_addr) && !(reuse_port && o.reuse_port && owner == o.owner)
        })
    }

    /// Binds; `addr` is canonical and already checked to be local or
    /// unspecified. Port 0 picks an ephemeral port starting at `start`.
    pub(crate) fn bind(&mut self, h: SocketHandle, addr: SocketAddr, start: u16) -> Result<SocketAddr, SocketError> {
        let s = self.get(h)?;
        if s.local.is_some() {
            return Err(SocketError::InvalidState);
        }
        if !s.can_reach(&addr) {
            return Err(SocketError::AddressFamily);
        }
        let addr = if addr.port() == 0 {
            let (lo, hi) = self.config.ephemeral_ports;
            let (lo, hi) = (lo.min(hi), hi.max(lo));
            let n = (hi - lo) as u32 + 1;
            let first = (start as u32) % n;
            let mut found = None;
            for k in 0..n {
                let port = lo + ((first + k) % n) as u16;
                let cand = SocketAddr::new(addr.ip(), port);
                // Ephemeral ports are never shared (Linux does not hand out a
                // port in use even with SO_REUSEADDR).
                if !self.by_port.contains_key(&port) && !self.conflicts(h.index, cand) {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or(SocketError::AddrInUse)?
        } else {
            if self.conflicts(h.index, addr) {
                return Err(SocketError::AddrInUse);
            }
            addr
        };
        self.next_bind_seq += 1;
        let seq = self.next_bind_seq;
        let s = self.get_mut(h)?;
        s.local = Some(addr);
        s.addr_locked = !addr.ip().is_unspecified();
        s.bind_seq = seq;
        self.by_port.entry(addr.port()).or_default().push(h.index);
        self.hash(h.index);
        Ok(addr)
    }

    /// Sets the remote address (and, if the socket was bound to a wildcard,
    /// the local address it will use), rehashing as Linux does.
    pub(crate) fn connect(&mut self, h: SocketHandle, local_ip: IpAddr, remote: SocketAddr) -> Result<(), SocketError> {
        let Some(local) = self.get(h)?.local else {
            return Err(SocketError::InvalidState);
        };
        self.unhash(h.index);
        let new_local = if local.ip().is_unspecified() {
            SocketAddr::new(local_ip, local.port())
        } else {
            local
        };
        let s = self.get_mut(h)?;
        s.local = Some(new_local);
        s.remote = Some(remote);
        s.error = None;
        self.hash(h.index);
        Ok(())
    }

    /// Dissolves the association (`connect` with `AF_UNSPEC`).
    pub(crate) fn disconnect(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        self.get(h)?;
        self.unhash(h.index);
        let s = self.get_mut(h)?;
        s.remote = None;
        if let (Some(l), false) = (s.local, s.addr_locked) {
            let any = match s.family {
                Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Family::V6 { .. } => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            s.local = Some(SocketAddr::new(any, l.port()));
        }
        self.hash(h.index);
        Ok(())
    }

    /// The socket a unicast datagram from `src` to `dst` goes to, if any:
    /// the connected socket for the 4-tuple, else the socket bound to the
    /// address, else the one bound to the wildcard (an IPv4 socket before a
    /// dual-stack one). Each step is one hash lookup.
    pub(crate) fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<u32> {
        if let Some(&i) = self.connected.get(&(dst, src)) {
            return Some(i);
        }
        if let Some(g) = self.bound.get(&dst) {
            return self.pick(g, src, dst);
        }
        let kinds: &[Wild] = if dst.is_ipv4() {
            &[Wild::V4, Wild::V6Dual]
        } else {
            &[Wild::V6Dual, Wild::V6Only]
        };
        kinds
            .iter()
            .find_map(|&k| self.wild.get(&(dst.port(), k)).and_then(|g| self.pick(g, src, dst)))
    }

    /// One socket of a group sharing a binding: spread by a hash of the
    /// flow when they all set `SO_REUSEPORT`, else the most recently bound
    /// (`SO_REUSEADDR`).
    fn pick(&self, group: &[u32], src: SocketAddr, dst: SocketAddr) -> Option<u32> {
        let sock = |i: u32| self.slots[i as usize].sock.as_ref();
        match group {
            [] => None,
            [one] => Some(*one),
            _ if group.iter().all(|&i| sock(i).is_some_and(|s| s.reuse_port)) => {
                Some(group[(flow_hash(src, dst) % group.len() as u64) as usize])
            }
            _ => group.iter().copied().max_by_key(|&i| sock(i).map_or(0, |s| s.bind_seq)),
        }
    }

    /// Every socket a broadcast or multicast datagram to `dst` goes to:
    /// those bound to that address and those bound to the wildcard.
    /// (Connected sockets do not receive broadcasts here.)
    pub(crate) fn lookup_all(&self, dst: SocketAddr, out: &mut Vec<u32>) {
        out.clear();
        if let Some(g) = self.bound.get(&dst) {
            out.extend_from_slice(g);
        }
        let kinds: &[Wild] = if dst.is_ipv4() {
            &[Wild::V4, Wild::V6Dual]
        } else {
            &[Wild::V6Dual, Wild::V6Only]
        };
        for &k in kinds {
            if let Some(g) = self.wild.get(&(dst.port(), k)) {
                out.extend_from_slice(g);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum DemuxKey {
    Connected(SocketAddr, SocketAddr),
    Bound(SocketAddr),
    Wild(u16, Wild),
}

fn remove_from<K: core::hash::Hash + Eq>(map: &mut HashMap<K, Vec<u32>>, key: K, index: u32) {
    if let Some(v) = map.get_mut(&key) {
        v.retain(|&i| i != index);
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

/// A hash of the flow, so one flow always lands on the same `SO_REUSEPORT`
/// socket (FNV-1a over addresses and ports).
fn flow_hash(src: SocketAddr, dst: SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for a in [src, dst] {
        match a.ip() {
            IpAddr::V4(v) => mix(&v.octets()),
            IpAddr::V6(v) => mix(&v.octets()),
        }
        mix(&a.port().to_be_bytes());
    }
    h
}
