//! The user-space sockets of the supervised programs, and the pumps that
//! carry their bytes between each socket's bridge and the stack.
//!
//! A socket is known by the inode of the target's object (the target's end
//! of its bridge, or the unconnected object of a fresh or listening TCP
//! socket, which becomes that end): that is what `fstat` of any duplicate
//! of the target's fd shows, whatever fd number, process or `dup` it went
//! through.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use std::sync::Arc;

use joyride_fd_bridge::{Bridge, DatagramMeta, Kind, Lobby, Peer};
use joyride_netstack::iface::{udp::canonical, Datagram, Interface, SocketError, SocketHandle};

use super::sockopt::ancillary::{self, RecvOpts, SendRules};
use crate::kernel::DatagramHead;

use super::shard::Shared;

/// Bytes moved per read or write between a bridge and the stack.
pub const CHUNK: usize = 256 << 10;
/// Dead sockets remembered for `SO_ERROR` and `getsockname` after their
/// bridge was reset; the oldest are forgotten first.
const DEAD_MAX: usize = 4096;

/// Transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `SOCK_STREAM`.
    Tcp,
    /// `SOCK_DGRAM`.
    Udp,
}

/// Where a socket is in its life, as far as the supervisor cares.
#[derive(Debug)]
pub enum Phase {
    /// Created, maybe bound.
    Fresh,
    /// A connect in progress. Non-blocking: the target's object is
    /// attached to a bridge and held not writable through this duplicate
    /// until the handshake ends. Blocking: the object is attached through
    /// it when the handshake succeeds (and stays unconnected if it fails).
    Connecting {
        /// Duplicate of the target's object.
        held: Option<OwnedFd>,
    },
    /// Connected (TCP) or associated (UDP).
    Connected,
    /// Listening (TCP).
    Listening,
    /// The connection ended with an error or reset; the bridge is gone.
    Dead,
}

/// One user-space socket.
pub struct Sock {
    /// TCP or UDP.
    pub proto: Proto,
    /// `AF_INET` or `AF_INET6`.
    pub domain: i32,
    /// The protocol number given to `socket`.
    pub protocol: i32,
    /// The stack's socket.
    pub handle: SocketHandle,
    /// `SO_COOKIE` of the target's object: unlike its inode number, never
    /// given to another socket, so a closed socket whose inode was reused
    /// is not taken for the new one.
    pub cookie: u64,
    /// The bridge: from `socket()` on for UDP; for TCP from the connect
    /// or the accept that made the connection; `None` once reset.
    pub bridge: Option<Bridge>,
    /// A listening TCP socket's doorbell.
    pub lobby: Option<Lobby>,
    /// Where the target holds the socket (thread, fd), as installed or
    /// last seen in a trapped call: how a duplicate is found when the
    /// connection is reset.
    pub seen_at: Option<(u32, i32)>,
    /// Life phase.
    pub phase: Phase,
    /// Options set by the program, in order (level, name, value), replayed
    /// if the socket moves to the kernel, and read back by `getsockopt`.
    pub opts: Vec<(i32, i32, Vec<u8>)>,
    /// A pending `SO_ERROR` (errno).
    pub error: Option<i32>,
    /// TCP: bytes the program wrote that the stack has not taken yet.
    /// UDP: the datagram the stack had no room for, when `udp_held`.
    tx: Vec<u8>,
    /// UDP: `tx` holds a datagram to send before reading the bridge again.
    udp_held: bool,
    /// TCP: bytes from the stack the program has not been given yet.
    rx: Vec<u8>,
    rx_off: usize,
    /// UDP: datagrams from the stack not yet in the bridge.
    dgrams: VecDeque<Datagram>,
    /// The program shut down writing (or closed): FIN queued.
    pub eof_in: bool,
    /// The stack reported end of file; the bridge's write side is shut.
    pub eof_out: bool,
    /// The program closed every fd of it.
    pub closed: bool,
    /// A listener on a wildcard address: kernel listeners on the loopback
    /// addresses with the same port, so the host's loopback reaches it too.
    pub loopback: Vec<OwnedFd>,
    /// Connections accepted for a caller that vanished before its answer:
    /// the next `accept` gets them first.
    pub kept: VecDeque<(SocketHandle, std::net::SocketAddr)>,
}

impl Sock {
    /// A new socket whose target object has `cookie`, over `bridge` if it
    /// has one yet.
    pub fn new(
        proto: Proto,
        domain: i32,
        protocol: i32,
        handle: SocketHandle,
        cookie: u64,
        bridge: Option<Bridge>,
    ) -> Sock {
        Sock {
            proto,
            domain,
            protocol,
            handle,
            cookie,
            bridge,
            lobby: None,
            seen_at: None,
            phase: Phase::Fresh,
            opts: Vec::new(),
            error: None,
            tx: Vec::new(),
            udp_held: false,
            rx: Vec::new(),
            rx_off: 0,
            dgrams: VecDeque::new(),
            eof_in: false,
            eof_out: false,
            closed: false,
            loopback: Vec::new(),
            kept: VecDeque::new(),
        }
    }

    /// The duplicate of the target's object a connect in progress holds.
    pub fn held(&self) -> Option<BorrowedFd<'_>> {
        match &self.phase {
            Phase::Connecting { held: Some(d) } => Some(d.as_fd()),
            _ => None,
        }
    }

    /// The value last set for option (`level`, `name`).
    pub fn opt(&self, level: i32, name: i32) -> Option<&[u8]> {
        self.opts
            .iter()
            .rev()
            .find(|(l, n, _)| *l == level && *n == name)
            .map(|(_, _, v)| v.as_slice())
    }

    /// Remembers an option set by the program.
    pub fn remember_opt(&mut self, level: i32, name: i32, value: &[u8]) {
        self.opts.retain(|(l, n, _)| !(*l == level && *n == name));
        self.opts.push((level, name, value.to_vec()));
    }
}

/// Counters for `--stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SockStats {
    /// Sockets served by the user-space stack.
    pub user: u64,
    /// Sockets handed to the kernel by policy.
    pub kernel: u64,
    /// Datagrams the program sent on an unconnected socket without a
    /// destination (dropped; Linux would have refused the send).
    pub udp_no_destination: u64,
    /// Datagrams from the program the stack refused (no route, too long;
    /// not a full queue: those wait).
    pub udp_send_failed: u64,
}

/// Every user-space socket, by the inode of its bridge's target end.
#[derive(Default)]
pub struct Socks {
    by_ino: HashMap<u64, Sock>,
    by_handle: HashMap<SocketHandle, u64>,
    dead: VecDeque<u64>,
    scratch: Vec<u8>,
    /// A shard other than 0 tells the shards when it forgets a socket.
    shared: Option<Arc<Shared>>,
    /// Counters.
    pub stats: SockStats,
}

/// What a pump learned that the engine must act on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    /// The program closed the socket; it was closed in the stack and
    /// removed (deregister its bridge).
    pub removed: bool,
}

impl Socks {
    /// An empty table.
    pub fn new() -> Socks {
        Socks {
            scratch: vec![0; CHUNK],
            ..Default::default()
        }
    }

    /// Adds a socket under `ino`.
    pub fn insert(&mut self, iface: &mut Interface, ino: u64, sock: Sock) {
        self.adopt(iface, ino, sock);
        self.stats.user += 1;
    }

    /// Adds a socket that moved here from another shard (counted there).
    /// A socket still known under the same inode was closed by the
    /// program without our noticing yet (its inode number was given to
    /// this one): it is closed in the stack and forgotten first.
    pub fn adopt(&mut self, iface: &mut Interface, ino: u64, sock: Sock) {
        if self.by_ino.contains_key(&ino) {
            self.close(iface, ino);
        }
        self.by_handle.insert(sock.handle, ino);
        self.by_ino.insert(ino, sock);
    }

    /// Sockets removed from now on are reported to `shared`, whose table
    /// routes calls on them here.
    pub fn report_removals(&mut self, shared: Arc<Shared>) {
        self.shared = Some(shared);
    }

    /// The socket whose bridge's target end has inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Sock> {
        self.by_ino.get(&ino)
    }

    /// Mutable access.
    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Sock> {
        self.by_ino.get_mut(&ino)
    }

    /// The inode of the socket with stack handle `h`.
    pub fn ino_of(&self, h: SocketHandle) -> Option<u64> {
        self.by_handle.get(&h).copied()
    }

    /// Removes a socket (it moved to the kernel or was closed).
    pub fn remove(&mut self, ino: u64) -> Option<Sock> {
        let s = self.by_ino.remove(&ino)?;
        self.by_handle.remove(&s.handle);
        if let Some(shared) = &self.shared {
            shared.forget(ino);
        }
        Some(s)
    }

    /// Replaces the stack handle of `ino` (a fresh stack socket after a
    /// failed connect).
    pub fn rehandle(&mut self, ino: u64, h: SocketHandle) {
        if let Some(s) = self.by_ino.get_mut(&ino) {
            self.by_handle.remove(&s.handle);
            s.handle = h;
            self.by_handle.insert(h, ino);
        }
    }

    /// The inode of the socket a target's fd duplicate `fd` stands for:
    /// `Ok` if it is here, `Err` with the inode if not (`Err(None)` if
    /// `fstat` failed).
    ///
    /// The inode must be that of the very socket we know: a socket the
    /// program closed while we had not noticed yet (a fresh or listening
    /// one, whose close nothing announces) may have passed its inode number
    /// on, so its `SO_COOKIE` is compared too.
    pub fn lookup(&self, fd: BorrowedFd<'_>) -> Result<u64, Option<u64>> {
        let ino = rustix::fs::fstat(fd).map_err(|_| None)?.st_ino;
        match self.by_ino.get(&ino) {
            Some(s) if rustix::net::sockopt::get_socket_cookie(fd).ok() == Some(s.cookie) => Ok(ino),
            _ => Err(Some(ino)),
        }
    }

    /// TCP sockets whose target object has no bridge to hang up when the
    /// program closes it (fresh, listening, in a blocking connect).
    pub fn bridgeless(&self) -> Vec<u64> {
        self.by_ino
            .iter()
            .filter(|(_, s)| s.proto == Proto::Tcp && s.bridge.is_none() && !matches!(s.phase, Phase::Dead))
            .map(|(ino, _)| *ino)
            .collect()
    }

    /// The socket's bridge broke for good (reset or refused): the program
    /// learns it, the socket is remembered a while for `SO_ERROR`.
    pub fn kill(&mut self, iface: &mut Interface, ino: u64, errno: i32) -> Option<Bridge> {
        let s = self.by_ino.get_mut(&ino)?;
        s.error = Some(errno);
        s.phase = Phase::Dead;
        s.tx.clear();
        s.rx.clear();
        s.dgrams.clear();
        let bridge = s.bridge.take();
        let h = s.handle;
        match s.proto {
            Proto::Tcp => {
                let _ = iface.tcp_close(h);
            }
            Proto::Udp => {
                let _ = iface.udp_close(h);
            }
        }
        self.dead.push_back(ino);
        while self.dead.len() > DEAD_MAX {
            if let Some(old) = self.dead.pop_front() {
                if self.by_ino.get(&old).is_some_and(|s| matches!(s.phase, Phase::Dead)) {
                    self.remove(old);
                }
            }
        }
        bridge
    }

    /// Moves bytes both ways for socket `ino` until nothing more can move.
    pub fn pump(&mut self, iface: &mut Interface, ino: u64) -> Pumped {
        let Some(s) = self.by_ino.get_mut(&ino) else {
            return Pumped::default();
        };
        if s.bridge.is_none() || matches!(s.phase, Phase::Listening) {
            return Pumped::default();
        }
        let gone = match s.proto {
            Proto::Tcp => pump_tcp(iface, s, &mut self.scratch),
            Proto::Udp => pump_udp(iface, s, &mut self.scratch, &mut self.stats),
        };
        if gone {
            self.close(iface, ino);
            return Pumped { removed: true };
        }
        Pumped::default()
    }

    /// The program closed the socket: close it in the stack (RST instead of
    /// FIN when it left data unread, as Linux does) and forget it. A TCP
    /// connection finishes in the stack as an orphan.
    pub fn close(&mut self, iface: &mut Interface, ino: u64) {
        let Some(s) = self.remove(ino) else { return };
        let unread = s
            .bridge
            .as_ref()
            .is_some_and(|b| matches!(b.peer(), Ok(Peer::ClosedUnread)))
            || s.rx.len() > s.rx_off;
        for (child, _) in &s.kept {
            let _ = iface.tcp_close(*child);
        }
        match s.proto {
            Proto::Tcp => {
                if unread {
                    let _ = iface.tcp_set_linger_zero(s.handle, true);
                }
                let _ = iface.tcp_close(s.handle);
            }
            Proto::Udp => {
                let _ = iface.udp_close(s.handle);
            }
        }
    }

    /// Handles a trapped send on a bridge: `Some` when `sock` is a
    /// user-space datagram socket (the datagram goes to the stack, with
    /// what its control messages `control` ask for), else `None`.
    pub fn send_datagram(
        &mut self,
        iface: &mut Interface,
        sock: BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
        control: &[u8],
    ) -> Option<Result<usize, i32>> {
        let ino = self.lookup(sock).ok()?;
        let s = self.by_ino.get_mut(&ino)?;
        if s.proto != Proto::Udp {
            return None;
        }
        if let Some(e) = s.error.take() {
            return Some(Err(e));
        }
        // Datagrams the program wrote untrapped go first, in order.
        let gone = pump_udp(iface, s, &mut self.scratch, &mut self.stats);
        if gone {
            return Some(Err(libc::EPIPE));
        }
        let to = match name {
            None => None,
            Some(bytes) => match crate::exec::addr::parse(bytes, s.domain) {
                Ok(Some(a)) => Some(a),
                // AF_UNSPEC as a destination: as if none was given.
                Ok(None) => None,
                Err(e) => return Some(Err(e)),
            },
        };
        // Control messages follow the rules of the destination's family
        // (a connected socket's peer when none is given); with no
        // destination at all, the send fails before they are looked at.
        let dst = to.or_else(|| iface.udp_peer_addr(s.handle).ok().flatten());
        let opts = match dst {
            Some(d) if !control.is_empty() => {
                let rules = match canonical(d) {
                    std::net::SocketAddr::V6(_) => SendRules::Ipv6,
                    std::net::SocketAddr::V4(_) => SendRules::Ipv4 {
                        mapped: s.domain == libc::AF_INET6,
                    },
                };
                match ancillary::send_opts(control, rules) {
                    Ok(o) => o,
                    Err(e) => return Some(Err(e)),
                }
            }
            _ => Default::default(),
        };
        Some(iface.udp_send_with(s.handle, data, to, opts).map_err(|e| e.errno()))
    }

    /// What the next datagram of a user-space datagram socket's bridge
    /// comes with, `sock` being a duplicate of the target's end: its source,
    /// and with `control` the control messages its socket's receive options
    /// ask for.
    pub fn datagram_head(&mut self, iface: &Interface, sock: BorrowedFd<'_>, control: bool) -> Option<DatagramHead> {
        let ino = self.lookup(sock).ok()?;
        let s = self.by_ino.get_mut(&ino)?;
        if s.proto != Proto::Udp {
            return None;
        }
        let domain = s.domain;
        // Kept as ints, 0 or 1 (see sockopt).
        let on = RecvOpts::of(|level, name| s.opt(level, name).is_some_and(|v| v == 1i32.to_ne_bytes()));
        let b = s.bridge.as_mut()?;
        if let Err(e) = b.sync_sources(sock) {
            tracing::debug!(error = %e, "cannot reconcile a datagram socket's sources");
        }
        // Nothing queued (the receive will say so): an empty name.
        let Some(meta) = b.head_meta() else {
            return Some(DatagramHead::default());
        };
        let control = if control && on.any() {
            let local_v4 = iface.config().ipv4.map(|c| c.addr);
            ancillary::recv_cmsgs(on, domain == libc::AF_INET6, &meta, local_v4)
        } else {
            Vec::new()
        };
        Some(DatagramHead {
            name: crate::exec::addr::encode(meta.from, domain),
            control,
        })
    }

    /// Whether `sock` is the target's end of a user-space stream socket.
    pub fn is_stream(&self, sock: BorrowedFd<'_>) -> bool {
        self.lookup(sock)
            .ok()
            .and_then(|ino| self.by_ino.get(&ino))
            .is_some_and(|s| s.proto == Proto::Tcp)
    }
}

/// TCP both ways; returns true when the program closed the socket and
/// nothing of it is left to carry.
fn pump_tcp(iface: &mut Interface, s: &mut Sock, scratch: &mut [u8]) -> bool {
    if !matches!(s.phase, Phase::Connected) {
        return false;
    }
    let h = s.handle;
    let Some(b) = s.bridge.as_mut() else { return false };
    if s.eof_in && !s.closed {
        // Shut down for writing earlier; now maybe closed for good.
        s.closed = matches!(b.peer(), Ok(Peer::Closed | Peer::ClosedUnread));
    }
    // The program's bytes into the stack.
    loop {
        if !s.tx.is_empty() {
            match iface.tcp_send(h, &s.tx) {
                Ok(n) => {
                    s.tx.drain(..n);
                }
                Err(SocketError::WouldBlock) => break,
                Err(e) => {
                    tracing::debug!(?e, "the stack refused bytes; dropping them");
                    s.tx.clear();
                }
            }
            if !s.tx.is_empty() {
                break;
            }
        }
        if s.eof_in {
            break;
        }
        match b.read(scratch) {
            Ok(0) => {
                s.eof_in = true;
                s.closed = matches!(b.peer(), Ok(Peer::Closed | Peer::ClosedUnread));
                if !s.closed {
                    let _ = iface.tcp_shutdown(h, false, true);
                }
                break;
            }
            Ok(n) => match iface.tcp_send(h, &scratch[..n]) {
                Ok(m) if m == n => {}
                Ok(m) => s.tx.extend_from_slice(&scratch[m..n]),
                Err(SocketError::WouldBlock) => s.tx.extend_from_slice(&scratch[..n]),
                Err(e) => tracing::debug!(?e, "the stack refused bytes; dropping them"),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading a bridge failed");
                s.eof_in = true;
                s.closed = true;
                break;
            }
        }
    }
    if s.closed && s.tx.is_empty() {
        return true;
    }
    // The stack's bytes to the program.
    loop {
        if s.rx_off < s.rx.len() {
            match b.write(&s.rx[s.rx_off..]) {
                Ok(n) => s.rx_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The program shut its reading side: Linux would drop
                    // what arrives, and so do we.
                    s.rx.clear();
                    s.rx_off = 0;
                    break;
                }
            }
            if s.rx_off < s.rx.len() {
                break;
            }
            s.rx.clear();
            s.rx_off = 0;
        }
        if s.eof_out {
            break;
        }
        match iface.tcp_recv(h, scratch) {
            Ok(0) => {
                s.eof_out = true;
                let _ = b.shut_write();
                break;
            }
            Ok(n) => match b.write(&scratch[..n]) {
                Ok(m) if m == n => {}
                Ok(m) => {
                    s.rx.extend_from_slice(&scratch[m..n]);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.rx.extend_from_slice(&scratch[..n]);
                    break;
                }
                Err(_) => {}
            },
            Err(SocketError::WouldBlock) => break,
            Err(e) => {
                // Reset, timed out, unreachable: the engine kills the socket
                // when it sees the error event.
                s.error = Some(e.errno());
                break;
            }
        }
    }
    false
}

/// UDP both ways; returns true when the program closed the socket.
fn pump_udp(iface: &mut Interface, s: &mut Sock, scratch: &mut [u8], stats: &mut SockStats) -> bool {
    let h = s.handle;
    let Some(b) = s.bridge.as_mut() else { return false };
    // Datagrams the program sent with write/send (connected, or an error).
    // When the stack's queue is full the datagram is held and the bridge
    // is left alone: the program's sends then block (or fail with EAGAIN)
    // once the bridge fills, as on a kernel socket whose send buffer is
    // full; the stack's writable event resumes the pump. (Reading on and
    // dropping what does not fit lost 19 datagrams in 20 at full speed.)
    loop {
        let n = if s.udp_held {
            s.tx.len()
        } else {
            match b.pull_datagram(scratch) {
                Ok(Some(n)) => n,
                Ok(None) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "reading a datagram bridge failed");
                    return true;
                }
            }
        };
        let data = if s.udp_held { &s.tx[..] } else { &scratch[..n] };
        match iface.udp_send_to(h, data, None) {
            Ok(_) => {}
            Err(SocketError::WouldBlock) => {
                if !s.udp_held {
                    s.tx.clear();
                    s.tx.extend_from_slice(&scratch[..n]);
                    s.udp_held = true;
                }
                break;
            }
            Err(SocketError::DestinationRequired) => stats.udp_no_destination += 1,
            Err(e) => {
                stats.udp_send_failed += 1;
                tracing::debug!(?e, "the stack refused a datagram");
            }
        }
        s.udp_held = false;
    }
    // Datagrams from the stack into the bridge.
    loop {
        if s.dgrams.is_empty() {
            match iface.udp_recv(h) {
                Ok(d) => s.dgrams.push_back(d),
                Err(_) => break,
            }
        }
        let Some(d) = s.dgrams.front() else { break };
        let meta = DatagramMeta {
            from: d.from,
            to: d.to,
            hop_limit: d.hop_limit,
            traffic_class: d.traffic_class,
        };
        match b.push_datagram(&d.data, meta) {
            Ok(()) => {
                s.dgrams.pop_front();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return matches!(b.peer(), Ok(Peer::Closed | Peer::ClosedUnread)),
        }
    }
    false
}

/// Creates a bridge of `kind` for a new socket; the target's end comes back
/// with it, to be installed and dropped.
pub fn new_bridge(proto: Proto, nonblocking: bool) -> io::Result<(Bridge, OwnedFd, u64)> {
    let kind = match proto {
        Proto::Tcp => Kind::Stream,
        Proto::Udp => Kind::Datagram,
    };
    let (bridge, theirs) = Bridge::new(kind, nonblocking)?;
    let ino = bridge.ino();
    debug_assert_eq!(rustix::fs::fstat(theirs.as_fd()).map(|s| s.st_ino).ok(), Some(ino));
    Ok((bridge, theirs, ino))
}
