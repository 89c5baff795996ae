//! Socket tables shared by UDP and TCP: slots with generation-checked
//! handles, binding with Linux's `SO_REUSEADDR`/`SO_REUSEPORT` rules and
//! ephemeral ports, and demultiplexing by hash.
//!
//! Demultiplexing never scans: a packet is matched by at most four hash
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
//!
//! The two protocols differ in two rules, chosen by [`Proto`]: a TCP socket
//! is found by address only while it listens (a bound TCP socket that has
//! not called `listen` receives nothing), and `SO_REUSEADDR` lets TCP
//! sockets share a port only while none of them listens (Linux
//! `inet_csk_bind_conflict`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{SocketError, SocketHandle};
use crate::steer::Steering;

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

/// Which protocol's rules a table follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Udp,
    Tcp,
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

/// A socket's addresses and the options that govern binding.
#[derive(Debug, Clone)]
pub(crate) struct Ends {
    pub(crate) family: Family,
    /// Canonical local address, once bound.
    pub(crate) local: Option<SocketAddr>,
    /// Canonical remote address, once connected.
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) reuse_addr: bool,
    pub(crate) reuse_port: bool,
    /// Who may share a port through `SO_REUSEPORT` (Linux: same effective
    /// uid).
    pub(crate) owner: u32,
    /// The local address was chosen by `bind`, not by `connect` (Linux
    /// `SOCK_BINDADDR_LOCK`): disconnecting keeps it.
    pub(crate) addr_locked: bool,
    /// TCP: the socket listens (only then is it found by address).
    pub(crate) listening: bool,
    /// With steering: segments to this socket's port must come to this
    /// shard whoever sends them (the port is registered by port); else
    /// the socket's connection hashes to this shard.
    pub(crate) steer_by_port: bool,
    bind_seq: u64,
}

impl Ends {
    pub(crate) fn new(family: Family) -> Self {
        Ends {
            family,
            local: None,
            remote: None,
            reuse_addr: false,
            reuse_port: false,
            owner: 0,
            addr_locked: false,
            listening: false,
            steer_by_port: false,
            bind_seq: 0,
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

    /// Sets `IPV6_V6ONLY`: IPv6 sockets only, before bind.
    pub(crate) fn set_v6only(&mut self, on: bool) -> Result<(), SocketError> {
        match self.family {
            Family::V6 { .. } if self.local.is_none() => {
                self.family = Family::V6 { v6only: on };
                Ok(())
            }
            Family::V6 { .. } => Err(SocketError::InvalidState),
            Family::V4 => Err(SocketError::InvalidArgument),
        }
    }

    /// The wildcard address of the socket's family.
    pub(crate) fn any(&self) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 { .. } => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// A socket kept in a [`SocketTable`].
pub(crate) trait Endpoint {
    fn ends(&self) -> &Ends;
    fn ends_mut(&mut self) -> &mut Ends;
}

#[derive(Debug)]
struct Slot<S> {
    gen: u32,
    sock: Option<S>,
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

#[derive(Debug, Clone, Copy)]
enum DemuxKey {
    Connected(SocketAddr, SocketAddr),
    Bound(SocketAddr),
    Wild(u16, Wild),
}

/// The sockets of one protocol, with their protocol's configuration `C`.
#[derive(Debug)]
pub(crate) struct SocketTable<S, C> {
    pub(crate) config: C,
    proto: Proto,
    slots: Vec<Slot<S>>,
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
    len: usize,
    /// This shard's steering, if the port space is shared with other
    /// shards: each port in `by_port` is held in its table.
    steer: Option<Steering>,
}

impl<S: Endpoint, C> SocketTable<S, C> {
    pub(crate) fn new(proto: Proto, config: C) -> Self {
        SocketTable {
            config,
            proto,
            slots: Vec::new(),
            free: Vec::new(),
            by_port: HashMap::new(),
            connected: HashMap::new(),
            bound: HashMap::new(),
            wild: HashMap::new(),
            next_bind_seq: 0,
            len: 0,
            steer: None,
        }
    }

    /// Shares the port space with other shards through `steer` (TCP;
    /// before any socket binds).
    pub(crate) fn set_steering(&mut self, steer: Option<Steering>) {
        debug_assert!(self.by_port.is_empty());
        self.steer = steer;
    }

    /// With steering: takes `port` for this shard in the shared table (or
    /// keeps it, if ours). False if another shard holds it. The kind is
    /// set right by [`SocketTable::steer_refresh`] once the socket is in.
    fn steer_claim(&self, port: u16, by_port: bool) -> bool {
        match &self.steer {
            Some(s) => s.ports().claim(port, s.index(), by_port),
            None => true,
        }
    }

    /// With steering: whether the ephemeral search may take `port`: no
    /// shard holds it and, for a connection to `remote`, its hash names
    /// this shard.
    fn steer_fits(&self, port: u16, remote: Option<SocketAddr>) -> bool {
        match &self.steer {
            Some(s) => {
                s.ports().is_free(port) && remote.is_none_or(|r| s.tcp_owner(r.ip(), r.port(), port) == s.index())
            }
            None => true,
        }
    }

    /// With steering: makes the shared entry of `port` say what this
    /// table's sockets on it need: free when there are none, by port when
    /// any of them needs it, else hashed. Called whenever `by_port[port]`
    /// or a flag of a socket in it changes.
    fn steer_refresh(&self, port: u16) {
        let Some(s) = &self.steer else { return };
        match self.by_port.get(&port) {
            None => s.ports().release(port, s.index()),
            Some(v) => {
                let by_port = v
                    .iter()
                    .any(|&i| self.by_index(i).is_some_and(|x| x.ends().steer_by_port));
                s.ports().claim(port, s.index(), by_port);
            }
        }
    }

    /// With steering: socket `index`, bound by an earlier `connect` (its
    /// port hashed), connects again to `remote`. If the hash of the new
    /// connection names another shard, its port is registered by port
    /// instead (the port is ours alone either way).
    pub(crate) fn steer_connect(&mut self, index: u32, remote: SocketAddr) {
        let Some(s) = &self.steer else { return };
        let Some(e) = self.by_index(index).map(Endpoint::ends) else {
            return;
        };
        let Some(l) = e.local else { return };
        if e.steer_by_port || s.tcp_owner(remote.ip(), remote.port(), l.port()) == s.index() {
            return;
        }
        if let Some(x) = self.by_index_mut(index) {
            x.ends_mut().steer_by_port = true;
        }
        self.steer_refresh(l.port());
    }

    /// Sockets in the table.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every socket in the table.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &S> {
        self.slots.iter().filter_map(|s| s.sock.as_ref())
    }

    pub(crate) fn insert(&mut self, sock: S) -> SocketHandle {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.sock = Some(sock);
                SocketHandle {
                    index: i,
                    gen: s.gen,
                    tcp: self.proto == Proto::Tcp,
                }
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    sock: Some(sock),
                });
                SocketHandle {
                    index: (self.slots.len() - 1) as u32,
                    gen: 0,
                    tcp: self.proto == Proto::Tcp,
                }
            }
        }
    }

    pub(crate) fn get(&self, h: SocketHandle) -> Result<&S, SocketError> {
        if h.tcp != (self.proto == Proto::Tcp) {
            return Err(SocketError::BadHandle);
        }
        match self.slots.get(h.index as usize) {
            Some(Slot { gen, sock: Some(s) }) if *gen == h.gen => Ok(s),
            _ => Err(SocketError::BadHandle),
        }
    }

    pub(crate) fn get_mut(&mut self, h: SocketHandle) -> Result<&mut S, SocketError> {
        if h.tcp != (self.proto == Proto::Tcp) {
            return Err(SocketError::BadHandle);
        }
        match self.slots.get_mut(h.index as usize) {
            Some(Slot { gen, sock: Some(s) }) if *gen == h.gen => Ok(s),
            _ => Err(SocketError::BadHandle),
        }
    }

    pub(crate) fn handle_of(&self, index: u32) -> SocketHandle {
        SocketHandle {
            index,
            gen: self.slots[index as usize].gen,
            tcp: self.proto == Proto::Tcp,
        }
    }

    pub(crate) fn by_index(&self, index: u32) -> Option<&S> {
        self.slots.get(index as usize).and_then(|s| s.sock.as_ref())
    }

    pub(crate) fn by_index_mut(&mut self, index: u32) -> Option<&mut S> {
        self.slots.get_mut(index as usize).and_then(|s| s.sock.as_mut())
    }

    /// Makes the handles of socket `index` invalid while the socket stays
    /// (a closed TCP connection finishing in the background).
    pub(crate) fn retire_handles(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            slot.gen = slot.gen.wrapping_add(1);
        }
    }

    /// Removes socket `index` from the table and its maps; the slot's
    /// handles become invalid.
    pub(crate) fn remove(&mut self, index: u32) -> Option<S> {
        let local = self.by_index(index)?.ends().local;
        if let Some(l) = local {
            self.unhash(index);
            remove_from(&mut self.by_port, l.port(), index);
            self.steer_refresh(l.port());
        }
        let slot = &mut self.slots[index as usize];
        let s = slot.sock.take();
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        s
    }

    /// Where the demultiplexing maps keep socket `index`, by its state.
    fn demux_key(&self, index: u32) -> Option<DemuxKey> {
        let e = self.slots[index as usize].sock.as_ref()?.ends();
        let l = e.local?;
        if e.remote.is_none() && self.proto == Proto::Tcp && !e.listening {
            return None;
        }
        Some(match (e.remote, l.ip().is_unspecified(), e.family) {
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

    /// Changes a socket's binding state with `f` (e.g. starts listening),
    /// moving it between the demultiplexing maps.
    pub(crate) fn rehash(&mut self, index: u32, f: impl FnOnce(&mut Ends)) {
        self.unhash(index);
        if let Some(s) = self.by_index_mut(index) {
            f(s.ends_mut());
        }
        self.hash(index);
    }

    /// Whether socket `index`, with its current options, may bind `addr`:
    /// overlapping bindings on one port are allowed only if both sockets set
    /// `SO_REUSEADDR` (for TCP: and the other does not listen), or both set
    /// `SO_REUSEPORT` and have the same owner (Linux `udp_lib_lport_inuse`,
    /// `inet_csk_bind_conflict`).
    pub(crate) fn conflicts(&self, index: u32, addr: SocketAddr) -> bool {
        let Some(me) = self.by_index(index).map(Endpoint::ends) else {
            return false;
        };
        let (a4, a6) = Ends::coverage(me.family, addr.ip());
        let Some(others) = self.by_port.get(&addr.port()) else {
            return false;
        };
        others.iter().filter(|&&i| i != index).any(|&i| {
            let Some(o) = self.by_index(i).map(Endpoint::ends) else {
                return false;
            };
            let Some(ol) = o.local else { return false };
            let (b4, b6) = Ends::coverage(o.family, ol.ip());
            let overlap = a4.overlaps(&b4) || a6.overlaps(&b6);
            let share_addr = me.reuse_addr && o.reuse_addr && (self.proto == Proto::Udp || !o.listening);
            let share_port = me.reuse_port && o.reuse_port && me.owner == o.owner;
            overlap && !share_addr && !share_port
        })
    }

    /// Binds; `addr` is canonical and already checked to be local or
    /// unspecified. Port 0 picks a free port of `ephemeral` starting at
    /// `start`. `locked` says the program chose the address (`bind`), not
    /// `connect`.
    pub(crate) fn bind(
        &mut self,
        h: SocketHandle,
        addr: SocketAddr,
        ephemeral: (u16, u16),
        start: u16,
        locked: bool,
    ) -> Result<SocketAddr, SocketError> {
        self.bind_for(h, addr, ephemeral, start, locked, None)
    }

    /// [`SocketTable::bind`]; with steering, `for_remote` is the peer of
    /// the connection the bind is for (an implicit bind by `connect`): the
    /// ephemeral port is chosen so the connection hashes to this shard,
    /// and registered as hashed, not by port.
    pub(crate) fn bind_for(
        &mut self,
        h: SocketHandle,
        addr: SocketAddr,
        ephemeral: (u16, u16),
        start: u16,
        locked: bool,
        for_remote: Option<SocketAddr>,
    ) -> Result<SocketAddr, SocketError> {
        let by_port = for_remote.is_none();
        let e = self.get(h)?.ends();
        if e.local.is_some() {
            return Err(SocketError::InvalidState);
        }
        if !e.can_reach(&addr) {
            return Err(SocketError::AddressFamily);
        }
        let addr = if addr.port() == 0 {
            let (lo, hi) = (ephemeral.0.min(ephemeral.1), ephemeral.1.max(ephemeral.0));
            let n = (hi - lo) as u32 + 1;
            let first = (start as u32) % n;
            let mut found = None;
            for k in 0..n {
                let port = lo + ((first + k) % n) as u16;
                let cand = SocketAddr::new(addr.ip(), port);
                // Ephemeral ports are never shared (Linux does not hand out a
                // port in use even with SO_REUSEADDR), nor one another
                // shard holds.
                if !self.by_port.contains_key(&port)
                    && self.steer_fits(port, for_remote)
                    && !self.conflicts(h.index, cand)
                    && self.steer_claim(port, by_port)
                {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or(SocketError::AddrInUse)?
        } else {
            // No sharing with another shard's sockets, whatever their
            // options.
            if self.conflicts(h.index, addr) || !self.steer_claim(addr.port(), by_port) {
                return Err(SocketError::AddrInUse);
            }
            addr
        };
        self.next_bind_seq += 1;
        let seq = self.next_bind_seq;
        let e = self.get_mut(h)?.ends_mut();
        e.local = Some(addr);
        e.addr_locked = locked && !addr.ip().is_unspecified();
        e.bind_seq = seq;
        e.steer_by_port = by_port;
        self.by_port.entry(addr.port()).or_default().push(h.index);
        self.steer_refresh(addr.port());
        self.hash(h.index);
        Ok(addr)
    }

    /// Binds an unbound socket to its family's wildcard and a free
    /// ephemeral port (an implicit bind by `connect`, `listen` or `sendto`);
    /// `start` seeds the port search.
    pub(crate) fn autobind(&mut self, h: SocketHandle, ephemeral: (u16, u16), start: u16) -> Result<(), SocketError> {
        self.autobind_for(h, ephemeral, start, None)
    }

    /// [`SocketTable::autobind`], for a connection to `for_remote` if
    /// given (see [`SocketTable::bind_for`]).
    pub(crate) fn autobind_for(
        &mut self,
        h: SocketHandle,
        ephemeral: (u16, u16),
        start: u16,
        for_remote: Option<SocketAddr>,
    ) -> Result<(), SocketError> {
        let e = self.get(h)?.ends();
        if e.local.is_none() {
            let any = SocketAddr::new(e.any(), 0);
            self.bind_for(h, any, ephemeral, start, false, for_remote)?;
        }
        Ok(())
    }

    /// Enters a socket that starts out connected on `local`'s port (an
    /// accepted TCP connection): it shares the port with its listener.
    /// With steering it keeps the port registered by port while it lives,
    /// as its segments were steered.
    pub(crate) fn insert_connected(&mut self, sock: S, local: SocketAddr, remote: SocketAddr) -> SocketHandle {
        let h = self.insert(sock);
        if let Ok(s) = self.get_mut(h) {
            let e = s.ends_mut();
            e.local = Some(local);
            e.remote = Some(remote);
            e.steer_by_port = true;
        }
        self.by_port.entry(local.port()).or_default().push(h.index);
        self.steer_refresh(local.port());
        self.hash(h.index);
        h
    }

    /// Sets the remote address (and, if the socket was bound to a wildcard,
    /// the local address it will use), rehashing as Linux does.
    pub(crate) fn connect(&mut self, h: SocketHandle, local_ip: IpAddr, remote: SocketAddr) -> Result<(), SocketError> {
        let Some(local) = self.get(h)?.ends().local else {
            return Err(SocketError::InvalidState);
        };
        let new_local = if local.ip().is_unspecified() {
            SocketAddr::new(local_ip, local.port())
        } else {
            local
        };
        self.rehash(h.index, |e| {
            e.local = Some(new_local);
            e.remote = Some(remote);
        });
        Ok(())
    }

    /// Whether a connected socket holds the 4-tuple.
    pub(crate) fn tuple_in_use(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.connected.contains_key(&(local, remote))
    }

    /// Dissolves the association (`connect` with `AF_UNSPEC`).
    pub(crate) fn disconnect(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        self.get(h)?;
        self.rehash(h.index, |e| {
            e.remote = None;
            if let (Some(l), false) = (e.local, e.addr_locked) {
                e.local = Some(SocketAddr::new(e.any(), l.port()));
            }
        });
        Ok(())
    }

    /// The connected socket for a packet from `src` to `dst`.
    pub(crate) fn lookup_connected(&self, src: SocketAddr, dst: SocketAddr) -> Option<u32> {
        self.connected.get(&(dst, src)).copied()
    }

    /// The socket a unicast packet from `src` to `dst` goes to, if any:
    /// the connected socket for the 4-tuple, else the socket bound to the
    /// address, else the one bound to the wildcard (an IPv4 socket before a
    /// dual-stack one). Each step is one hash lookup.
    pub(crate) fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<u32> {
        if let Some(i) = self.lookup_connected(src, dst) {
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
        let ends = |i: u32| self.by_index(i).map(Endpoint::ends);
        match group {
            [] => None,
            [one] => Some(*one),
            _ if group.iter().all(|&i| ends(i).is_some_and(|e| e.reuse_port)) => {
                Some(group[(flow_hash(src, dst) % group.len() as u64) as usize])
            }
            _ => group.iter().copied().max_by_key(|&i| ends(i).map_or(0, |e| e.bind_seq)),
        }
    }

    /// Every socket a broadcast or multicast packet to `dst` goes to:
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

impl<S, C> Drop for SocketTable<S, C> {
    /// Gives this shard's ports back to the shared table.
    fn drop(&mut self) {
        if let Some(s) = &self.steer {
            for &port in self.by_port.keys() {
                s.ports().release(port, s.index());
            }
        }
    }
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
