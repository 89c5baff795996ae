//! TCP sockets: the demultiplexer and socket layer around the per-connection
//! [`Tcb`], the listeners' [`Syncache`], and the accept queues.
//!
//! Segments are matched by hash (see [`super::ports`]): the connection for
//! the 4-tuple, else a listener on the address or wildcard, else a RST
//! answers (RFC 9293 §3.10.7.1). A listener never holds a connection in
//! SYN-RECEIVED: the syncache does, and only the handshake's final ACK turns
//! it into a [`Tcb`] in ESTABLISHED, queued for `accept`. The accept queue
//! follows Linux: it holds up to `backlog + 1` connections (`somaxconn`
//! caps the backlog); while it is full, SYNs and final ACKs are dropped and
//! counted (`ListenOverflows`), so the peer retries.
//!
//! A connection the program closed stays in the table, orphaned, until its
//! tcpcb reaches CLOSED (FIN-WAIT, TIME-WAIT); the program's handle is
//! invalid at once. A new SYN may take over a TIME-WAIT 4-tuple when
//! [`Tcb::time_wait_accepts_syn`] says so (RFC 6191).
//!
//! ICMP errors reach the connection they quote after the sequence number
//! check of RFC 5927 §4.1 ([`Tcb::on_icmp_error`]); "too big" lowers the
//! connection's MSS at once ([`Tcb::on_packet_too_big`]).
//!
//! Each byte is copied once on each path: from the program's buffer into
//! the send buffer, from the send buffer into the frame; from the frame into
//! the receive buffer, from there into the program's buffer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use core::time::Duration;

use super::ports::{canonical, Endpoint, Ends, Family, Proto, SocketTable};
use super::{Interface, SocketError, SocketHandle, EV_ERROR, EV_READABLE, EV_WRITABLE};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::syncache::{AckInfo, ListenOptions, RstAction, SynAck, SynAction, SynInfo, Syncache, SyncacheConfig};
use crate::tcp::tcb::{self, Keepalive, Readiness, State, Tcb, TcpError, TcpInfo};
use crate::tcp::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::{TcpControl, TcpRepr};

/// Tunables of the TCP layer, with Linux's defaults where Linux has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// The listeners' syncache.
    pub syncache: SyncacheConfig,
    /// The most a socket's send buffer grows to by autotuning, bytes
    /// (Linux's `net.ipv4.tcp_wmem[2]`; see `tcp::autotune`).
    pub send_buffer: usize,
    /// The most a socket's receive buffer grows to by autotuning, bytes
    /// (`net.ipv4.tcp_rmem[2]`); also sets the window scale announced,
    /// unless `SO_RCVBUF` fixed the buffer.
    pub recv_buffer: usize,
    /// A new socket's send buffer (`tcp_wmem[1]`), at most `send_buffer`.
    pub send_buffer_initial: usize,
    /// A new socket's receive buffer (`tcp_rmem[1]`), at most
    /// `recv_buffer`.
    pub recv_buffer_initial: usize,
    /// Largest `SO_SNDBUF`/`SO_RCVBUF` a program may ask for, before
    /// Linux's doubling (`net.core.wmem_max`/`rmem_max`).
    pub max_buffer_request: usize,
    /// Ephemeral port range (Linux `ip_local_port_range`: 32768-60999).
    pub ephemeral_ports: (u16, u16),
    /// The largest listen backlog (`net.core.somaxconn`, 4096).
    pub max_backlog: u32,
    /// Offer window scaling (`net.ipv4.tcp_window_scaling`).
    pub window_scaling: bool,
    /// Offer timestamps (`net.ipv4.tcp_timestamps`).
    pub timestamps: bool,
    /// Offer SACK (`net.ipv4.tcp_sack`).
    pub sack: bool,
    /// Congestion control of new sockets (`net.ipv4.tcp_congestion_control`).
    pub congestion: &'static str,
    /// Acknowledge the in-order data of one receive burst with one ACK, as
    /// Linux does for a GRO batch, instead of one ACK for every second
    /// full-sized segment (RFC 5681 §4.2 and RFC 9293 §3.8.6.3 say SHOULD).
    /// Fewer ACK frames cost the receiver, the link and the sender less;
    /// but a sender that grows its window by at most 2 SMSS per ACK in slow
    /// start (RFC 3465's `L = 2`, Joyride's own) opens it more slowly on
    /// such stretch ACKs. Off by default.
    pub stretch_acks: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            syncache: SyncacheConfig::default(),
            // As Linux: buffers start at tcp_wmem[1] and tcp_rmem[1] and
            // grow up to tcp_wmem[2] and tcp_rmem[2] as a connection needs
            // (a peer that reads nothing leaves them small).
            send_buffer: crate::tcp::autotune::SEND_BUFFER_MAX,
            recv_buffer: crate::tcp::autotune::RECV_BUFFER_MAX,
            send_buffer_initial: crate::tcp::autotune::SEND_BUFFER_INITIAL,
            recv_buffer_initial: crate::tcp::autotune::RECV_BUFFER_INITIAL,
            max_buffer_request: 16 << 20,
            ephemeral_ports: (32768, 60999),
            max_backlog: 4096,
            window_scaling: true,
            timestamps: true,
            sack: true,
            congestion: crate::tcp::cc::DEFAULT,
            stretch_acks: false,
        }
    }
}

/// Socket options a connection inherits from its socket or listener.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opts {
    nodelay: bool,
    keepalive: bool,
    keepalive_timing: Keepalive,
    user_timeout: Option<Duration>,
    linger_zero: bool,
    congestion: &'static str,
    /// The send buffer a connection starts with.
    send_buffer: usize,
    /// The receive buffer a connection starts with.
    recv_buffer: usize,
    /// `SO_SNDBUF` was set: the send buffer is not autotuned
    /// (`SOCK_SNDBUF_LOCK`).
    send_locked: bool,
    /// `SO_RCVBUF` was set (`SOCK_RCVBUF_LOCK`).
    recv_locked: bool,
    /// `TCP_MAXSEG`.
    max_seg: Option<u16>,
}

/// What a socket is.
#[derive(Debug)]
enum Role {
    /// Opened, maybe bound; no connection yet (or `shutdown` of a listener).
    Idle,
    /// Listening.
    Listen(Listener),
    /// A connection in any state.
    Conn(Box<Tcb>),
}

#[derive(Debug)]
struct Listener {
    backlog: u32,
    /// Established connections not yet accepted, oldest first.
    queue: VecDeque<SocketHandle>,
}

/// One TCP socket.
#[derive(Debug)]
pub(crate) struct TcpSocket {
    ends: Ends,
    role: Role,
    opts: Opts,
    /// The program closed it; the stack finishes the connection.
    orphan: bool,
    /// Queued on this listener, not yet accepted.
    parent: Option<u32>,
    /// `shutdown(SHUT_RD)`.
    shut_rd: bool,
    /// An error for the next call or `SO_ERROR` that is not the tcpcb's.
    error: Option<SocketError>,
    /// Readiness reported in the last event (`EV_*` bits).
    reported: u8,
    /// Events not yet drained.
    pub(crate) events: u8,
    /// The tcpcb timer this socket has in the heap.
    armed: Option<Instant>,
    /// The tcpcb's retransmissions already counted stack-wide.
    retrans_seen: u64,
    /// Listed in [`TcpLayer::tx_blocked`]: it stopped at a full transmit
    /// queue.
    tx_blocked: bool,
    /// Listed in [`TcpLayer::rx_deferred`]: in-order data arrived in this
    /// receive burst and its answer waits for the burst's end.
    rx_deferred: bool,
}

impl Endpoint for TcpSocket {
    fn ends(&self) -> &Ends {
        &self.ends
    }

    fn ends_mut(&mut self) -> &mut Ends {
        &mut self.ends
    }
}

impl TcpSocket {
    fn new(family: Family, config: &TcpConfig) -> Self {
        TcpSocket {
            ends: Ends::new(family),
            role: Role::Idle,
            opts: Opts {
                nodelay: false,
                keepalive: false,
                keepalive_timing: Keepalive::default(),
                user_timeout: None,
                linger_zero: false,
                congestion: config.congestion,
                send_buffer: config.send_buffer_initial.min(config.send_buffer),
                recv_buffer: config.recv_buffer_initial.min(config.recv_buffer),
                send_locked: false,
                recv_locked: false,
                max_seg: None,
            },
            orphan: false,
            parent: None,
            shut_rd: false,
            error: None,
            reported: 0,
            events: 0,
            armed: None,
            retrans_seen: 0,
            tx_blocked: false,
            rx_deferred: false,
        }
    }

    fn tcb(&self) -> Option<&Tcb> {
        match &self.role {
            Role::Conn(t) => Some(t),
            _ => None,
        }
    }

    fn tcb_mut(&mut self) -> Option<&mut Tcb> {
        match &mut self.role {
            Role::Conn(t) => Some(t),
            _ => None,
        }
    }

    /// What `poll` reports, as in Linux's `tcp_poll`.
    fn readiness(&self) -> Readiness {
        let pending = self.error.is_some();
        match &self.role {
            // A socket that is not connected polls as EPOLLOUT|EPOLLHUP.
            Role::Idle => Readiness {
                writable: true,
                hung_up: true,
                ..Default::default()
            },
            Role::Listen(l) => Readiness {
                readable: !l.queue.is_empty(),
                ..Default::default()
            },
            Role::Conn(t) => {
                let mut r = t.readiness();
                if self.shut_rd {
                    r.readable = true;
                    r.read_hup = true;
                }
                if pending && r.error.is_none() {
                    r.error = Some(TcpError::Reset);
                }
                r
            }
        }
    }

    fn ready_bits(&self) -> u8 {
        let r = self.readiness();
        let mut b = 0;
        if r.readable || r.read_hup || r.hung_up {
            b |= EV_READABLE;
        }
        if r.writable {
            b |= EV_WRITABLE;
        }
        if r.error.is_some() || self.error.is_some() {
            b |= EV_ERROR;
        }
        b
    }

    /// Takes the pending error: ours first, then the tcpcb's.
    fn take_error(&mut self) -> Option<SocketError> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        self.tcb_mut().and_then(|t| t.take_error()).map(tcp_error)
    }
}

/// The errno-carrying form of a connection's error.
fn tcp_error(e: TcpError) -> SocketError {
    match e {
        TcpError::Refused => SocketError::ConnectionRefused,
        TcpError::Reset => SocketError::ConnectionReset,
        TcpError::TimedOut => SocketError::TimedOut,
        TcpError::Icmp { errno } => SocketError::from_errno(errno).unwrap_or(SocketError::HostUnreachable),
    }
}

/// The table of TCP sockets.
pub(crate) type TcpTable = SocketTable<TcpSocket, TcpConfig>;

/// The TCP layer's state in an [`Interface`].
#[derive(Debug)]
pub(crate) struct TcpLayer {
    pub(crate) table: TcpTable,
    syncache: Syncache,
    isn: IsnGenerator,
    /// Tcpcb timers: (due, socket index). Stale items (the socket re-armed
    /// or gone) are skipped when they come up.
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    /// Connections that stopped sending at a full transmit queue, oldest
    /// first; each once (its `tx_blocked` flag). An index whose socket went
    /// away (flag clear) is skipped when it comes up.
    tx_blocked: VecDeque<u32>,
    /// Connections that took in-order data during the current receive
    /// burst, to answer once at its end (see [`Interface::tcp_after_burst`]).
    rx_deferred: Vec<u32>,
}

impl TcpLayer {
    pub(crate) fn new(config: TcpConfig, secret: [u8; 16], steering: Option<crate::steer::Steering>) -> Self {
        let mut isn_secret = secret;
        isn_secret[0] ^= 0x5a;
        let syncache = Syncache::new(config.syncache, secret);
        let mut table = SocketTable::new(Proto::Tcp, config);
        table.set_steering(steering);
        TcpLayer {
            syncache,
            isn: IsnGenerator::new(isn_secret),
            table,
            timers: BinaryHeap::new(),
            tx_blocked: VecDeque::new(),
            rx_deferred: Vec::new(),
        }
    }

    /// Whether a connection waits for room in the transmit queue.
    pub(crate) fn tx_blocked_any(&self) -> bool {
        !self.tx_blocked.is_empty()
    }

    /// When the TCP layer next has timer work.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        [self.timers.peek().map(|Reverse((t, _))| *t), self.syncache.next_timer()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Counters of the TCP layer (Linux's `Tcp:` and `TcpExt:` lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Segments received (`InSegs`).
    pub rx_segments: u64,
    /// Segments sent (`OutSegs`).
    pub tx_segments: u64,
    /// Dropped: malformed header, bad flags or options (`InErrs`).
    pub drop_malformed: u64,
    /// Dropped: checksum (`InCsumErrors`).
    pub drop_checksum: u64,
    /// Dropped: sent to a broadcast or multicast address.
    pub drop_not_unicast: u64,
    /// Segments for no connection or listener, answered with RST.
    pub no_socket: u64,
    /// RSTs sent (`OutRsts`).
    pub rst_sent: u64,
    /// Connections opened by `connect` (`ActiveOpens`).
    pub active_opens: u64,
    /// Connections accepted by listeners (`PassiveOpens`).
    pub passive_opens: u64,
    /// SYNs and final ACKs dropped because the accept queue was full
    /// (`ListenOverflows`).
    pub listen_overflows: u64,
    /// Connections that failed (RST, timeout, ICMP) (`AttemptFails` and
    /// `EstabResets`).
    pub failed: u64,
    /// TIME-WAIT connections taken over by a new SYN (`TWRecycled`).
    pub time_wait_reused: u64,
    /// ICMP errors delivered to connections.
    pub icmp_delivered: u64,
    /// ICMP errors whose sequence number failed the RFC 5927 check
    /// (`OutOfWindowIcmps`).
    pub icmp_out_of_window: u64,
    /// Segments retransmitted (`RetransSegs`).
    pub retransmits: u64,
}

impl Interface {
    // ---------------------------------------------------------------------
    // The program's calls.

    /// Opens a TCP socket of `family` (`socket(AF_INET[6], SOCK_STREAM, 0)`).
    pub fn tcp_open(&mut self, family: Family) -> SocketHandle {
        let s = TcpSocket::new(family, &self.tcp.table.config);
        self.tcp.table.insert(s)
    }

    /// Binds to `addr` (`bind`). Port 0 picks a free ephemeral port. Returns
    /// the bound address as the socket's family shows it.
    pub fn tcp_bind(&mut self, h: SocketHandle, addr: SocketAddr) -> Result<SocketAddr, SocketError> {
        let family = self.tcp.table.get(h)?.ends.family;
        let a = self.check_bind_addr(family, addr)?;
        let start = self.rng.next_u64() as u16;
        let ephemeral = self.tcp.table.config.ephemeral_ports;
        let bound = self.tcp.table.bind(h, a, ephemeral, start, true)?;
        Ok(self.tcp.table.get(h)?.ends.present(bound))
    }

    fn tcp_autobind(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        let start = self.rng.next_u64() as u16;
        let ephemeral = self.tcp.table.config.ephemeral_ports;
        self.tcp.table.autobind(h, ephemeral, start)
    }

    /// Listens (`listen`), binding an ephemeral port first if unbound. A
    /// second call changes the backlog. The backlog is capped at
    /// [`TcpConfig::max_backlog`]; the queue holds one more than it, as on
    /// Linux.
    pub fn tcp_listen(&mut self, h: SocketHandle, backlog: u32) -> Result<(), SocketError> {
        let backlog = backlog.min(self.tcp.table.config.max_backlog);
        let s = self.tcp.table.get_mut(h)?;
        match &mut s.role {
            Role::Listen(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            Role::Conn(_) => return Err(SocketError::InvalidState),
            Role::Idle => {}
        }
        self.tcp_autobind(h)?;
        // Another socket may have started listening on an overlapping
        // address with SO_REUSEADDR in between: Linux checks again.
        let local = self.tcp.table.get(h)?.ends.local.ok_or(SocketError::InvalidState)?;
        self.tcp.table.rehash(h.index, |e| e.listening = true);
        if self.tcp.table.conflicts(h.index, local) {
            self.tcp.table.rehash(h.index, |e| e.listening = false);
            return Err(SocketError::AddrInUse);
        }
        let s = self.tcp.table.get_mut(h)?;
        s.role = Role::Listen(Listener {
            backlog,
            queue: VecDeque::new(),
        });
        Ok(())
    }

    /// Takes the oldest established connection of a listener (`accept`):
    /// its handle and the peer's address as the listener's family shows it.
    pub fn tcp_accept(&mut self, h: SocketHandle) -> Result<(SocketHandle, SocketAddr), SocketError> {
        let s = self.tcp.table.get_mut(h)?;
        let Role::Listen(l) = &mut s.role else {
            return Err(SocketError::InvalidState);
        };
        let child = l.queue.pop_front().ok_or(SocketError::WouldBlock)?;
        if l.queue.is_empty() {
            // The next connection is a new readable edge.
            s.reported &= !EV_READABLE;
        }
        let c = self.tcp.table.get_mut(child)?;
        c.parent = None;
        let peer = c
            .ends
            .remote
            .map(|r| c.ends.present(r))
            .ok_or(SocketError::InvalidState)?;
        Ok((child, peer))
    }

    /// Starts connecting to `remote` (`connect`): binds an ephemeral port
    /// if needed, picks the source address and sends the SYN. `Ok` means
    /// the handshake is under way (`EINPROGRESS`); the socket becomes
    /// writable when it is established, or gets an error.
    pub fn tcp_connect(&mut self, h: SocketHandle, remote: SocketAddr) -> Result<(), SocketError> {
        let now = self.last_now;
        let r = canonical(remote);
        let s = self.tcp.table.get_mut(h)?;
        match &s.role {
            Role::Conn(t) if matches!(t.state(), State::SynSent | State::SynReceived) => {
                return Err(SocketError::AlreadyInProgress)
            }
            Role::Conn(t) if t.state() != State::Closed => return Err(SocketError::IsConnected),
            Role::Listen(_) => return Err(SocketError::IsConnected),
            Role::Conn(_) | Role::Idle => {}
        }
        if !s.ends.can_reach(&r) {
            return Err(SocketError::AddressFamily);
        }
        let bound = s.ends.local.map(|l| l.ip());
        if r.ip().is_unspecified() || r.ip().is_multicast() || self.is_broadcast_v4(r.ip()) {
            return Err(SocketError::NetworkUnreachable);
        }
        if let Some(l) = bound {
            self.check_loopback_source(l, r.ip())?;
        }
        let src = self.source_for(r.ip()).ok_or(SocketError::NetworkUnreachable)?;
        let s = self.tcp.table.get(h)?;
        if s.ends.remote.is_some() {
            // A failed connection's tuple: Linux unhashes it and the socket
            // may connect again, keeping its port.
            self.tcp.table.rehash(h.index, |e| e.remote = None);
        }
        // An implicit bind takes a port whose hash (with `r`) names this
        // shard; a port bound before stays, steered by port if it must.
        let start = self.rng.next_u64() as u16;
        let ephemeral = self.tcp.table.config.ephemeral_ports;
        self.tcp.table.autobind_for(h, ephemeral, start, Some(r))?;
        self.tcp.table.steer_connect(h.index, r);
        let local = self.tcp.table.get(h)?.ends.local.ok_or(SocketError::InvalidState)?;
        let local = if local.ip().is_unspecified() {
            SocketAddr::new(src, local.port())
        } else {
            local
        };
        if self.tcp.table.tuple_in_use(local, r) {
            return Err(SocketError::AddrNotAvailable);
        }
        self.tcp.table.connect(h, src, r)?;
        let iss = self.tcp.isn.isn(now, local, r);
        let cfg = self.tcb_config(&self.tcp.table.get(h)?.opts, local, r);
        let (tcb, syn) = Tcb::connect(cfg, iss, now);
        let s = self.tcp.table.get_mut(h)?;
        s.role = Role::Conn(Box::new(tcb));
        s.error = None;
        self.tcp_counters.active_opens += 1;
        let repr = syn.header_repr();
        self.send_tcp(now, local.ip(), r.ip(), &repr, (&[], &[]));
        self.tcp_after(now, h.index);
        Ok(())
    }

    /// Queues bytes to send (`send`); returns how many fit. `WouldBlock`
    /// when the send buffer is full or the handshake is not done;
    /// `BrokenPipe` once writing was shut down or the socket is not
    /// connected; a pending error first.
    pub fn tcp_send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, SocketError> {
        let now = self.last_now;
        let s = self.tcp.table.get_mut(h)?;
        if let Some(e) = s.take_error() {
            return Err(e);
        }
        let Some(t) = s.tcb_mut() else {
            return Err(SocketError::BrokenPipe);
        };
        let n = match t.state() {
            State::SynSent | State::SynReceived => return Err(SocketError::WouldBlock),
            State::Established | State::CloseWait => t.send(data),
            _ => return Err(SocketError::BrokenPipe),
        };
        if n == 0 && !data.is_empty() {
            // Readiness was reported writable; report it again when room
            // opens up.
            s.reported &= !EV_WRITABLE;
            return Err(SocketError::WouldBlock);
        }
        self.tcp_after(now, h.index);
        Ok(n)
    }

    /// Takes received bytes into `buf` (`recv`); 0 is end of file.
    /// `WouldBlock` when nothing is there yet; `NotConnected` on a socket
    /// that never connected; a pending error once the data before it is
    /// read.
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.tcp_read(h, buf, false)
    }

    /// Copies received bytes into `buf` without taking them (`MSG_PEEK`).
    pub fn tcp_peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.tcp_read(h, buf, true)
    }

    fn tcp_read(&mut self, h: SocketHandle, buf: &mut [u8], peek: bool) -> Result<usize, SocketError> {
        let now = self.last_now;
        let s = self.tcp.table.get_mut(h)?;
        let shut_rd = s.shut_rd;
        let Some(t) = s.tcb_mut() else {
            return Err(SocketError::NotConnected);
        };
        let n = if peek { t.peek(buf) } else { t.recv(now, buf) };
        if n > 0 || buf.is_empty() {
            if !peek {
                s.reported &= !EV_READABLE;
                self.tcp_after(now, h.index);
            }
            return Ok(n);
        }
        let (eof, state) = (t.is_eof(), t.state());
        if let Some(e) = s.take_error() {
            return Err(e);
        }
        s.reported &= !EV_READABLE;
        if eof || shut_rd || state == State::Closed {
            return Ok(0);
        }
        Err(SocketError::WouldBlock)
    }

    /// `shutdown`: `read` stops receiving (reads return end of file),
    /// `write` sends a FIN after what is queued. On a listener either stops
    /// it, resetting what waits in its queue.
    pub fn tcp_shutdown(&mut self, h: SocketHandle, read: bool, write: bool) -> Result<(), SocketError> {
        let now = self.last_now;
        let s = self.tcp.table.get_mut(h)?;
        match &mut s.role {
            Role::Idle => return Err(SocketError::NotConnected),
            Role::Listen(_) => {
                self.stop_listening(now, h.index);
                return Ok(());
            }
            Role::Conn(t) => {
                if matches!(t.state(), State::Closed) {
                    return Err(SocketError::NotConnected);
                }
                if write {
                    t.shutdown_write();
                }
            }
        }
        if read {
            s.shut_rd = true;
        }
        self.tcp_after(now, h.index);
        Ok(())
    }

    /// Closes the socket (`close`): the handle is invalid at once. A
    /// connection ends orderly (FIN) in the background, or with a RST when
    /// unread data is dropped or `SO_LINGER` is zero; a listener resets
    /// connections still waiting to be accepted.
    pub fn tcp_close(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        let now = self.last_now;
        let s = self.tcp.table.get_mut(h)?;
        match &mut s.role {
            Role::Idle => {
                self.tcp.table.remove(h.index);
            }
            Role::Listen(_) => {
                self.stop_listening(now, h.index);
                self.tcp.table.remove(h.index);
            }
            Role::Conn(t) => {
                t.close(now);
                s.orphan = true;
                self.tcp.table.retire_handles(h.index);
                self.tcp_after(now, h.index);
            }
        }
        Ok(())
    }

    /// Resets every connection waiting in listener `li`'s queue and stops
    /// it listening.
    fn stop_listening(&mut self, now: Instant, li: u32) {
        let Some(s) = self.tcp.table.by_index_mut(li) else {
            return;
        };
        let Role::Listen(l) = core::mem::replace(&mut s.role, Role::Idle) else {
            return;
        };
        self.tcp.table.rehash(li, |e| e.listening = false);
        for child in l.queue {
            if let Ok(c) = self.tcp.table.get_mut(child) {
                if let Some(t) = c.tcb_mut() {
                    t.abort();
                }
                c.orphan = true;
                c.parent = None;
                self.tcp.table.retire_handles(child.index);
                self.tcp_after(now, child.index);
            }
        }
    }

    /// What `poll` would report for the socket.
    pub fn tcp_readiness(&self, h: SocketHandle) -> Result<Readiness, SocketError> {
        Ok(self.tcp.table.get(h)?.readiness())
    }

    /// Takes the pending error (`getsockopt(SO_ERROR)`).
    pub fn tcp_take_error(&mut self, h: SocketHandle) -> Result<Option<SocketError>, SocketError> {
        Ok(self.tcp.table.get_mut(h)?.take_error())
    }

    /// The connection's state; `None` for a socket with no connection
    /// (closed, or listening: see [`Interface::tcp_is_listening`]).
    pub fn tcp_state(&self, h: SocketHandle) -> Result<Option<State>, SocketError> {
        Ok(self.tcp.table.get(h)?.tcb().map(Tcb::state))
    }

    /// Whether the socket listens (`SO_ACCEPTCONN`).
    pub fn tcp_is_listening(&self, h: SocketHandle) -> Result<bool, SocketError> {
        Ok(matches!(self.tcp.table.get(h)?.role, Role::Listen(_)))
    }

    /// `TCP_INFO`: the connection's statistics, if it has one.
    pub fn tcp_info(&self, h: SocketHandle) -> Result<Option<TcpInfo>, SocketError> {
        Ok(self.tcp.table.get(h)?.tcb().map(Tcb::info))
    }

    /// Bytes ready to read (`FIONREAD`) and bytes queued to send
    /// (`SIOCOUTQ`).
    pub fn tcp_queued(&self, h: SocketHandle) -> Result<(usize, usize), SocketError> {
        let s = self.tcp.table.get(h)?;
        Ok(s.tcb().map_or((0, 0), |t| (t.recv_queued(), t.send_queued())))
    }

    /// The bound address (`getsockname`), as the socket's family shows it.
    pub fn tcp_local_addr(&self, h: SocketHandle) -> Result<Option<SocketAddr>, SocketError> {
        let s = self.tcp.table.get(h)?;
        Ok(s.ends.local.map(|a| s.ends.present(a)))
    }

    /// The peer's address (`getpeername`), while connected.
    pub fn tcp_peer_addr(&self, h: SocketHandle) -> Result<Option<SocketAddr>, SocketError> {
        let s = self.tcp.table.get(h)?;
        let connected = s.tcb().is_some_and(|t| t.state() != State::Closed);
        Ok(s.ends.remote.filter(|_| connected).map(|a| s.ends.present(a)))
    }

    /// Sockets in the TCP table, orphans finishing their close included.
    pub fn tcp_socket_count(&self) -> usize {
        self.tcp.table.len()
    }

    /// Connections with something of ours still to deliver: a handshake
    /// under way, data or a FIN not yet acknowledged (every state but
    /// FIN-WAIT-2, TIME-WAIT and CLOSED; listeners have no connection). A
    /// supervisor waits for these before it exits.
    pub fn tcp_unfinished(&self) -> usize {
        self.tcp
            .table
            .iter()
            .filter(|s| {
                s.tcb()
                    .is_some_and(|t| !matches!(t.state(), State::FinWait2 | State::TimeWait | State::Closed))
            })
            .count()
    }

    /// Segments retransmitted by every connection so far.
    pub fn tcp_retransmits(&self) -> u64 {
        self.tcp_counters.retransmits
    }

    /// TCP counters.
    pub fn tcp_counters(&self) -> &TcpCounters {
        &self.tcp_counters
    }

    /// The syncache's counters.
    pub fn tcp_syncache_stats(&self) -> &crate::tcp::syncache::SyncacheStats {
        self.tcp.syncache.stats()
    }

    // ---------------------------------------------------------------------
    // Socket options.

    /// `SO_REUSEADDR`.
    pub fn tcp_set_reuse_addr(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.tcp.table.get_mut(h)?.ends.reuse_addr = on;
        Ok(())
    }

    /// `SO_REUSEPORT`: listeners sharing a port get connections spread by
    /// flow hash.
    pub fn tcp_set_reuse_port(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.tcp.table.get_mut(h)?.ends.reuse_port = on;
        Ok(())
    }

    /// The effective uid that owns the socket, for `SO_REUSEPORT` groups.
    pub fn tcp_set_owner(&mut self, h: SocketHandle, uid: u32) -> Result<(), SocketError> {
        self.tcp.table.get_mut(h)?.ends.owner = uid;
        Ok(())
    }

    /// `IPV6_V6ONLY`, before `bind`.
    pub fn tcp_set_v6only(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.tcp.table.get_mut(h)?.ends.set_v6only(on)
    }

    /// `TCP_NODELAY`.
    pub fn tcp_set_nodelay(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        let now = self.last_now;
        let s = self.tcp.table.get_mut(h)?;
        s.opts.nodelay = on;
        if let Some(t) = s.tcb_mut() {
            t.set_nodelay(on);
        }
        self.tcp_after(now, h.index);
        Ok(())
    }

    /// `SO_KEEPALIVE`, with the timing of `TCP_KEEPIDLE`, `TCP_KEEPINTVL`
    /// and `TCP_KEEPCNT` (each `None` keeps what is set).
    pub fn tcp_set_keepalive(
        &mut self,
        h: SocketHandle,
        on: Option<bool>,
        idle: Option<Duration>,
        interval: Option<Duration>,
        count: Option<u32>,
    ) -> Result<(), SocketError> {
        let now = self.last_now;
        let s = self.tcp.table.get_mut(h)?;
        let o = &mut s.opts;
        if let Some(on) = on {
            o.keepalive = on;
        }
        if let Some(v) = idle {
            o.keepalive_timing.idle = v;
        }
        if let Some(v) = interval {
            o.keepalive_timing.interval = v;
        }
        if let Some(v) = count {
            o.keepalive_timing.count = v;
        }
        let ka = o.keepalive.then_some(o.keepalive_timing);
        if let Some(t) = s.tcb_mut() {
            t.set_keepalive(ka, now);
        }
        self.tcp_after(now, h.index);
        Ok(())
    }

    /// The keepalive settings: on, idle, interval, count.
    pub fn tcp_keepalive(&self, h: SocketHandle) -> Result<(bool, Keepalive), SocketError> {
        let o = &self.tcp.table.get(h)?.opts;
        Ok((o.keepalive, o.keepalive_timing))
    }

    /// `TCP_USER_TIMEOUT` (`None` or zero: off).
    pub fn tcp_set_user_timeout(&mut self, h: SocketHandle, t: Option<Duration>) -> Result<(), SocketError> {
        let t = t.filter(|d| !d.is_zero());
        let s = self.tcp.table.get_mut(h)?;
        s.opts.user_timeout = t;
        if let Some(tcb) = s.tcb_mut() {
            tcb.set_user_timeout(t);
        }
        Ok(())
    }

    /// `SO_LINGER` with a zero timeout: `close` resets.
    pub fn tcp_set_linger_zero(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        let s = self.tcp.table.get_mut(h)?;
        s.opts.linger_zero = on;
        if let Some(t) = s.tcb_mut() {
            t.set_linger_zero(on);
        }
        Ok(())
    }

    /// `TCP_CONGESTION` for connections the socket makes or accepts from
    /// now on. Unknown names fail with `NotFound` (`ENOENT`, as Linux).
    pub fn tcp_set_congestion(&mut self, h: SocketHandle, name: &str) -> Result<(), SocketError> {
        let name = crate::tcp::cc::by_name(name).ok_or(SocketError::NotFound)?.name();
        self.tcp.table.get_mut(h)?.opts.congestion = name;
        Ok(())
    }

    /// `TCP_CONGESTION` as read back.
    pub fn tcp_congestion(&self, h: SocketHandle) -> Result<&'static str, SocketError> {
        let s = self.tcp.table.get(h)?;
        Ok(s.tcb().map_or(s.opts.congestion, |t| t.config().congestion))
    }

    /// `SO_SNDBUF` (doubled and clamped as Linux does): the send buffer
    /// has that size from now on, the connection's too if there is one,
    /// and is no longer autotuned (Linux's `SOCK_SNDBUF_LOCK`); accepted
    /// connections inherit it from their listener. Returns the size
    /// `getsockopt` reports.
    pub fn tcp_set_send_buffer(&mut self, h: SocketHandle, bytes: usize) -> Result<usize, SocketError> {
        let now = self.last_now;
        let max = self.tcp.table.config.max_buffer_request;
        let s = self.tcp.table.get_mut(h)?;
        // Linux: max(val * 2, SOCK_MIN_SNDBUF = 4608).
        let v = (bytes.min(max) * 2).max(4608);
        s.opts.send_buffer = v;
        s.opts.send_locked = true;
        if let Some(t) = s.tcb_mut() {
            t.set_send_buffer(v);
            // Room may have opened (or closed): report it.
            s.reported &= !EV_WRITABLE;
            self.tcp_after(now, h.index);
        }
        Ok(v)
    }

    /// `SO_RCVBUF` (doubled and clamped as Linux does), locked as
    /// [`Interface::tcp_set_send_buffer`] is (`SOCK_RCVBUF_LOCK`): before
    /// connecting, the window scale is then chosen for this size instead
    /// of for [`TcpConfig::recv_buffer`]. Returns the size `getsockopt`
    /// reports.
    pub fn tcp_set_recv_buffer(&mut self, h: SocketHandle, bytes: usize) -> Result<usize, SocketError> {
        let max = self.tcp.table.config.max_buffer_request;
        let s = self.tcp.table.get_mut(h)?;
        // Linux: max(val * 2, SOCK_MIN_RCVBUF = 2304).
        let v = (bytes.min(max) * 2).max(2304);
        s.opts.recv_buffer = v;
        s.opts.recv_locked = true;
        if let Some(t) = s.tcb_mut() {
            t.set_recv_buffer(v);
        }
        Ok(v)
    }

    /// `SO_RCVBUF` and `SO_SNDBUF` as `getsockopt` reports them, in that
    /// order (as [`Interface::udp_buffer_sizes`]): a connection's current
    /// sizes, autotuned or set; otherwise what a connection would start
    /// with.
    pub fn tcp_buffer_sizes(&self, h: SocketHandle) -> Result<(usize, usize), SocketError> {
        let s = self.tcp.table.get(h)?;
        Ok(match s.tcb() {
            Some(t) => (t.recv_buffer_size(), t.send_buffer_size()),
            None => (s.opts.recv_buffer, s.opts.send_buffer),
        })
    }

    /// `TCP_MAXSEG` before connecting: caps the MSS announced and used.
    pub fn tcp_set_max_seg(&mut self, h: SocketHandle, mss: u16) -> Result<(), SocketError> {
        // Linux: 88 (TCP_MIN_MSS) ..= 65535 - 40 (MAX_TCP_WINDOW), 0 = unset.
        if mss != 0 && !(tcb::MIN_MSS..=65495).contains(&mss) {
            return Err(SocketError::InvalidArgument);
        }
        self.tcp.table.get_mut(h)?.opts.max_seg = (mss != 0).then_some(mss);
        Ok(())
    }

    // ---------------------------------------------------------------------
    // The stack's side.

    /// The tcpcb settings for a connection from `local` to `remote` with
    /// socket options `o`.
    fn tcb_config(&self, o: &Opts, local: SocketAddr, remote: SocketAddr) -> tcb::Config {
        let c = &self.tcp.table.config;
        tcb::Config {
            local_port: local.port(),
            remote_port: remote.port(),
            mss: self.tcp_mss(remote.ip(), o),
            send_buffer: o.send_buffer,
            send_buffer_max: Self::tcp_buffer_max(o.send_buffer, c.send_buffer, o.send_locked),
            recv_buffer: o.recv_buffer,
            recv_buffer_max: Self::tcp_buffer_max(o.recv_buffer, c.recv_buffer, o.recv_locked),
            window_scaling: c.window_scaling,
            timestamps: c.timestamps,
            sack: c.sack,
            nodelay: o.nodelay,
            congestion: o.congestion,
            keepalive: o.keepalive.then_some(o.keepalive_timing),
            user_timeout: o.user_timeout,
            linger_zero: o.linger_zero,
            ts_offset: self.tcp.isn.offset(local, remote),
        }
    }

    /// The most a buffer that starts at `start` grows to: `max`, or nothing
    /// beyond `start` once the program set it.
    fn tcp_buffer_max(start: usize, max: usize, locked: bool) -> usize {
        if locked {
            start
        } else {
            max.max(start)
        }
    }

    /// The MSS for a path to `dst`: its MTU less the IP and TCP headers,
    /// capped by `TCP_MAXSEG`.
    fn tcp_mss(&self, dst: IpAddr, o: &Opts) -> u16 {
        let ip = if dst.is_ipv4() { 20 } else { 40 };
        let m = self
            .path_mtu(self.last_now, dst)
            .saturating_sub(ip + 20)
            .min(u16::MAX as usize) as u16;
        o.max_seg.map_or(m, |c| m.min(c)).max(tcb::MIN_MSS)
    }

    fn listen_options(&self, o: &Opts, backlog: u32, local: SocketAddr) -> ListenOptions {
        let c = &self.tcp.table.config;
        // For the largest the buffer may grow to, as a connecting socket's
        // (tcb::Config's window scale).
        let shift = tcb::window_shift(Self::tcp_buffer_max(o.recv_buffer, c.recv_buffer, o.recv_locked));
        ListenOptions {
            mss: self.tcp_mss(local.ip(), o),
            wscale: c.window_scaling.then_some(shift),
            sack: c.sack,
            timestamps: c.timestamps,
            window: o.recv_buffer.min(0xffff) as u16,
            backlog,
        }
    }

    /// A segment arrived for us (the IP layer checked addresses).
    pub(crate) fn process_tcp(&mut self, now: Instant, src: IpAddr, dst: IpAddr, seg: &TcpRepr<'_>) {
        self.tcp_counters.rx_segments += 1;
        let local = canonical(SocketAddr::new(dst, seg.dst_port));
        let remote = canonical(SocketAddr::new(src, seg.src_port));
        if let Some(i) = self.tcp.table.lookup_connected(remote, local) {
            // Only a closed program's TIME-WAIT gives way (Linux's timewait
            // sockets are always orphans).
            let reopen = self
                .tcp
                .table
                .by_index(i)
                .filter(|s| s.orphan)
                .and_then(TcpSocket::tcb)
                .is_some_and(|t| t.time_wait_accepts_syn(seg));
            if !reopen {
                let stretch = self.tcp.table.config.stretch_acks;
                let Some(s) = self.tcp.table.by_index_mut(i) else {
                    return;
                };
                if let Some(t) = s.tcb_mut() {
                    t.on_segment(now, seg);
                    // In-order data on an established connection that needs
                    // no ACK now (the first of two full-sized segments),
                    // or any in-order data with `stretch_acks`: the rest of
                    // the work (timers, readiness, what the tcpcb sends)
                    // waits for the end of the receive burst, done once.
                    // Anything else — out-of-order data (RFC 5681 §4.2's
                    // immediate duplicate ACK), a FIN, SYN or RST, a pure
                    // ACK — is answered now.
                    let in_order = !seg.payload.is_empty()
                        && seg.control == TcpControl::None
                        && t.state() == State::Established
                        && !t.reassembling()
                        && (stretch || !t.ack_due());
                    if in_order {
                        if !s.rx_deferred {
                            s.rx_deferred = true;
                            self.tcp.rx_deferred.push(i);
                        }
                        return;
                    }
                }
                self.tcp_after(now, i);
                return;
            }
            // RFC 6191: the old incarnation gives way to the new SYN.
            self.tcp_counters.time_wait_reused += 1;
            self.forget_connection(i);
        }
        match self.tcp.table.lookup(remote, local) {
            Some(li)
                if self
                    .tcp
                    .table
                    .by_index(li)
                    .is_some_and(|s| matches!(s.role, Role::Listen(_))) =>
            {
                self.listen_input(now, li, local, remote, seg)
            }
            _ => {
                self.tcp_counters.no_socket += 1;
                self.reply_rst(now, local, remote, seg);
            }
        }
    }

    /// RFC 9293 §3.10.7.2, LISTEN, with the syncache holding SYN-RECEIVED.
    fn listen_input(&mut self, now: Instant, li: u32, local: SocketAddr, remote: SocketAddr, seg: &TcpRepr<'_>) {
        let Some(l) = self.tcp.table.by_index(li) else { return };
        let Role::Listen(lq) = &l.role else { return };
        let full = lq.queue.len() > lq.backlog as usize;
        let opts = self.listen_options(&l.opts, lq.backlog, local);
        let seq = SeqNum(seg.seq_number);
        match (seg.control, seg.ack_number) {
            // "An incoming RST segment could not be valid since it could not
            // have been sent in response to anything sent by this
            // incarnation" — but one may be for a syncache entry.
            (TcpControl::Rst, _) => {
                if let RstAction::ChallengeAck { seq, ack } = self.tcp.syncache.on_rst(local, remote, seq) {
                    let repr = TcpRepr {
                        src_port: local.port(),
                        dst_port: remote.port(),
                        seq_number: seq.0,
                        ack_number: Some(ack.0),
                        window_len: opts.window,
                        ..Default::default()
                    };
                    self.send_tcp(now, local.ip(), remote.ip(), &repr, (&[], &[]));
                }
            }
            (TcpControl::Syn, None) => {
                if full {
                    self.tcp_counters.listen_overflows += 1;
                    return;
                }
                let syn = SynInfo {
                    peer_isn: seq,
                    mss: seg.max_seg_size,
                    wscale: seg.window_scale,
                    sack_ok: seg.sack_permitted,
                    tsval: seg.timestamp.map(|(v, _)| v),
                    window: seg.window_len,
                    fin: false,
                };
                if let SynAction::SendSynAck(sa) = self.tcp.syncache.on_syn(now, local, remote, &syn, &opts) {
                    self.send_syn_ack(now, &sa);
                }
            }
            // "If the ACK bit is on ... Any acknowledgment is bad if it
            // arrives on a connection still in the LISTEN state. An
            // acceptable reset segment should be formed".
            (TcpControl::Syn, Some(_)) => self.reply_rst(now, local, remote, seg),
            (_, Some(ack)) => {
                if full {
                    self.tcp_counters.listen_overflows += 1;
                    return;
                }
                let info = AckInfo {
                    seq,
                    ack: SeqNum(ack),
                    window: seg.window_len,
                    ts: seg.timestamp,
                };
                match self.tcp.syncache.on_ack(now, local, remote, &info, &opts) {
                    Some(n) => self.establish(now, li, &n, seg),
                    None => self.reply_rst(now, local, remote, seg),
                }
            }
            // "Any other control or text-bearing segment (not containing
            // SYN) must have an ACK and thus would be discarded".
            (_, None) => {}
        }
    }

    /// The handshake with listener `li` completed: the new connection joins
    /// its accept queue.
    fn establish(&mut self, now: Instant, li: u32, n: &crate::tcp::syncache::Negotiated, seg: &TcpRepr<'_>) {
        let Some(l) = self.tcp.table.by_index(li) else { return };
        let cfg = self.tcb_config(&l.opts, n.local, n.remote);
        let mut child = TcpSocket {
            opts: l.opts.clone(),
            parent: Some(li),
            ..TcpSocket::new(l.ends.family, &self.tcp.table.config)
        };
        child.ends.reuse_addr = l.ends.reuse_addr;
        child.ends.reuse_port = l.ends.reuse_port;
        child.ends.owner = l.ends.owner;
        let mut t = Tcb::accept(cfg, n, now);
        // The final ACK may carry data, a FIN and the peer's window.
        t.on_segment(now, seg);
        child.role = Role::Conn(Box::new(t));
        let h = self.tcp.table.insert_connected(child, n.local, n.remote);
        self.tcp_counters.passive_opens += 1;
        if let Some(Role::Listen(lq)) = self.tcp.table.by_index_mut(li).map(|s| &mut s.role) {
            lq.queue.push_back(h);
        }
        self.tcp_notify(li);
        self.tcp_after(now, h.index);
    }

    fn send_syn_ack(&mut self, now: Instant, sa: &SynAck) {
        let repr = sa.repr();
        self.send_tcp(now, sa.local.ip(), sa.remote.ip(), &repr, (&[], &[]));
    }

    /// RFC 9293 §3.10.7.1: the answer to a segment for no connection. "If
    /// the incoming segment has an ACK field, the reset takes its sequence
    /// number from the ACK field of the segment, otherwise the reset has
    /// sequence number zero and the ACK field is set to the sum of the
    /// sequence number and segment length"; a RST is never answered.
    fn reply_rst(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, seg: &TcpRepr<'_>) {
        if seg.control == TcpControl::Rst {
            return;
        }
        let (seq, ack) = match seg.ack_number {
            Some(a) => (a, None),
            None => (0, Some(seg.seq_number.wrapping_add(seg.segment_len() as u32))),
        };
        let repr = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            control: TcpControl::Rst,
            seq_number: seq,
            ack_number: ack,
            ..Default::default()
        };
        self.send_tcp(now, local.ip(), remote.ip(), &repr, (&[], &[]));
    }

    /// Sends one segment, counting it.
    fn send_tcp(&mut self, now: Instant, src: IpAddr, dst: IpAddr, repr: &TcpRepr<'_>, payload: (&[u8], &[u8])) {
        if repr.control == TcpControl::Rst {
            self.tcp_counters.rst_sent += 1;
        }
        // On failure (no route or neighbor) the segment is lost and the
        // tcpcb's timers retransmit; the IP layer counted it.
        if self.output_tcp(now, src, dst, repr, payload).is_ok() {
            self.tcp_counters.tx_segments += 1;
        }
    }

    /// After anything happened to socket `i`: sends what its tcpcb has to
    /// send, re-arms its timer, reports readiness changes, and frees it if
    /// it is an orphan whose connection ended.
    ///
    /// At a full transmit queue the tcpcb is not asked for more: it keeps
    /// its data, pending ACK and timers (nothing counts as sent that the
    /// interface would drop), and the connection waits in
    /// [`TcpLayer::tx_blocked`] until [`Interface::poll`] gave the device
    /// frames. A connection that is CLOSED sends its last segment (an
    /// abort's RST) at once, into the control reserve, since it may be
    /// freed below.
    pub(crate) fn tcp_after(&mut self, now: Instant, i: u32) {
        let Some(s) = self.tcp.table.by_index_mut(i) else {
            return;
        };
        // Whatever was deferred to the burst's end is done now.
        s.rx_deferred = false;
        let (Some(local), Some(remote)) = (s.ends.local, s.ends.remote) else {
            self.tcp_notify(i);
            return;
        };
        let Role::Conn(mut t) = core::mem::replace(&mut s.role, Role::Idle) else {
            self.tcp_notify(i);
            return;
        };
        let was_closed = t.state() == State::Closed;
        let mut blocked = false;
        loop {
            if !self.tx_room() && t.state() != State::Closed {
                blocked = true;
                break;
            }
            let Some(seg) = t.poll(now) else { break };
            let mut repr = seg.header_repr();
            let (a, b) = t.payload(&seg);
            self.fit_sack_blocks(now, remote.ip(), &mut repr, a.len() + b.len());
            self.send_tcp(now, local.ip(), remote.ip(), &repr, (a, b));
        }
        let state = t.state();
        let next = t.next_timer();
        let retrans = t.total_retrans();
        let Some(s) = self.tcp.table.by_index_mut(i) else {
            return;
        };
        self.tcp_counters.retransmits += retrans.saturating_sub(s.retrans_seen);
        s.retrans_seen = retrans;
        s.role = Role::Conn(t);
        if state == State::Closed {
            if !was_closed && s.tcb().is_some_and(|t| t.error().is_some()) {
                self.tcp_counters.failed += 1;
            }
            if s.orphan && s.parent.is_none() {
                self.forget_connection(i);
                return;
            }
            // Linux unhashes a connection when it ends (tcp_done): its
            // tuple is free and segments for it get a RST.
            if self.tcp.table.by_index(i).is_some_and(|s| s.ends.remote.is_some()) {
                self.tcp.table.rehash(i, |e| e.remote = None);
                if let Some(s) = self.tcp.table.by_index_mut(i) {
                    s.ends.remote = Some(remote);
                }
            }
        }
        let Some(s) = self.tcp.table.by_index_mut(i) else {
            return;
        };
        if blocked && !s.tx_blocked {
            s.tx_blocked = true;
            self.tcp.tx_blocked.push_back(i);
        }
        // A blocked tcpcb ran no timers: one already due waits for the
        // resumption (arming it would spin the timer loop).
        if let Some(due) = next.filter(|&d| !blocked || d > now) {
            if s.armed.is_none_or(|a| a > due || a < now) {
                s.armed = Some(due);
                self.tcp.timers.push(Reverse((due, i)));
            }
        } else {
            s.armed = None;
        }
        self.tcp_notify(i);
    }

    /// The end of a receive burst: finishes the work for the connections
    /// whose in-order data waited (with [`TcpConfig::stretch_acks`], one
    /// ACK each for the burst).
    pub(crate) fn tcp_after_burst(&mut self, now: Instant) {
        let mut list = core::mem::take(&mut self.tcp.rx_deferred);
        for &i in &list {
            // Clear: answered already (tcp_after ran), or gone.
            if self.tcp.table.by_index(i).is_some_and(|s| s.rx_deferred) {
                self.tcp_after(now, i);
            }
        }
        list.clear();
        self.tcp.rx_deferred = list;
    }

    /// Lets connections that stopped at a full transmit queue send again,
    /// oldest first, while there is room; one that fills the queue again
    /// goes to the back of the list.
    pub(crate) fn resume_tcp_tx(&mut self, now: Instant) {
        while self.tx_room() {
            let Some(i) = self.tcp.tx_blocked.pop_front() else {
                break;
            };
            let Some(s) = self.tcp.table.by_index_mut(i) else {
                continue;
            };
            // Clear: the socket that blocked went away (its index may be
            // another socket's now).
            if !core::mem::take(&mut s.tx_blocked) {
                continue;
            }
            self.tcp_after(now, i);
        }
    }

    /// Leaves out SACK blocks a full-sized data segment has no room for:
    /// the MSS counts the timestamps option only, and a segment never
    /// exceeds the path MTU (pure ACKs keep all their blocks).
    fn fit_sack_blocks(&self, now: Instant, dst: IpAddr, repr: &mut TcpRepr<'_>, payload: usize) {
        let ip = if dst.is_ipv4() { 20 } else { 40 };
        let room = self.path_mtu(now, dst).saturating_sub(ip + payload);
        for k in (0..repr.sack_ranges.len()).rev() {
            if repr.header_len() <= room {
                break;
            }
            repr.sack_ranges[k] = None;
        }
    }

    /// Drops a connection from the table without a word to the peer.
    fn forget_connection(&mut self, i: u32) {
        self.tcp.table.remove(i);
    }

    /// Queues an event for socket `i` if its readiness rose.
    fn tcp_notify(&mut self, i: u32) {
        let h = self.tcp.table.handle_of(i);
        let Some(s) = self.tcp.table.by_index_mut(i) else {
            return;
        };
        if s.orphan {
            return;
        }
        let now_bits = s.ready_bits();
        let rising = now_bits & !s.reported;
        s.reported = now_bits;
        if rising != 0 {
            if s.events == 0 {
                self.events.push_back(h);
            }
            s.events |= rising;
        }
    }

    /// Runs the tcpcb and syncache timers due at `now`.
    pub(crate) fn run_tcp_timers(&mut self, now: Instant) {
        while let Some(&Reverse((due, i))) = self.tcp.timers.peek() {
            if due > now {
                break;
            }
            self.tcp.timers.pop();
            let Some(s) = self.tcp.table.by_index_mut(i) else {
                continue;
            };
            if s.armed != Some(due) {
                continue; // stale
            }
            s.armed = None;
            self.tcp_after(now, i);
        }
        // The heap keeps stale items until they come up; rebuild it when
        // they dominate.
        if self.tcp.timers.len() > 2 * self.tcp.table.len() + 1024 {
            let mut fresh = BinaryHeap::new();
            for Reverse((due, i)) in self.tcp.timers.drain() {
                if self.tcp.table.by_index(i).is_some_and(|s| s.armed == Some(due)) {
                    fresh.push(Reverse((due, i)));
                }
            }
            self.tcp.timers = fresh;
        }
        while let Some(sa) = self.tcp.syncache.poll(now) {
            self.send_syn_ack(now, &sa);
        }
    }

    /// An ICMP error quoting a segment from `local` to `remote` whose
    /// sequence number is `seq`.
    pub(crate) fn tcp_icmp_error(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seq: SeqNum,
        kind: super::IcmpErrorKind,
    ) -> bool {
        let local = canonical(local);
        let remote = canonical(remote);
        let Some(i) = self.tcp.table.lookup_connected(remote, local) else {
            return false;
        };
        let mss = match (kind, self.tcp.table.by_index(i)) {
            (super::IcmpErrorKind::PacketTooBig(_), Some(s)) => Some(self.tcp_mss(remote.ip(), &s.opts)),
            _ => None,
        };
        let Some(t) = self.tcp.table.by_index_mut(i).and_then(TcpSocket::tcb_mut) else {
            return false;
        };
        let ok = match mss {
            Some(mss) => t.on_packet_too_big(now, seq, mss),
            None => {
                // Linux's tcp_v4_err/tcp_v6_err end a connection still in
                // its handshake on any unreachable or time exceeded, fatal
                // or not ("connect: No route to host").
                let (err, hard) = kind.linux_error();
                let handshake = matches!(t.state(), State::SynSent | State::SynReceived);
                t.on_icmp_error(seq, err.errno(), hard || handshake)
            }
        };
        if ok {
            self.tcp_counters.icmp_delivered += 1;
            self.tcp_after(now, i);
        } else {
            self.tcp_counters.icmp_out_of_window += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::MemoryPair;

    const TICK: Duration = Duration::from_micros(100);

    /// `getsockopt(SO_RCVBUF)` and `(SO_SNDBUF)` report what Linux does: a
    /// fresh socket 131072 and 16384, a connection on an Ethernet path
    /// 131072 and 87040 (the send buffer sized for the initial window);
    /// the window scale is chosen for the 6 MiB the receive buffer may grow
    /// to (7, as Linux's for `tcp_rmem[2]`).
    #[test]
    fn buffer_sizes_start_as_linux_reports_them() {
        let mut p = MemoryPair::new();
        let fresh = p.a.tcp_open(Family::V4);
        assert_eq!(p.a.tcp_buffer_sizes(fresh), Ok((131_072, 16_384)));
        let (c, s) = p.connect_tcp(5001, TICK);
        assert_eq!(p.a.tcp_buffer_sizes(c), Ok((131_072, 87_040)));
        assert_eq!(p.b.tcp_buffer_sizes(s), Ok((131_072, 87_040)));
        let (ia, ib) = (p.a.tcp_info(c).unwrap().unwrap(), p.b.tcp_info(s).unwrap().unwrap());
        assert_eq!((ia.rcv_wscale, ib.rcv_wscale), (7, 7));
    }

    /// `SO_RCVBUF`/`SO_SNDBUF` set before connecting (and on a listener,
    /// for what it accepts) lock the sizes: doubled as Linux does, never
    /// autotuned, and the window scale chosen for the set receive buffer.
    #[test]
    fn set_buffers_are_locked() {
        let mut p = MemoryPair::new();
        let l = p.b.tcp_open(Family::V4);
        assert_eq!(p.b.tcp_set_recv_buffer(l, 10_000), Ok(20_000));
        assert_eq!(p.b.tcp_set_send_buffer(l, 30_000), Ok(60_000));
        p.b.tcp_bind(l, SocketAddr::new(IpAddr::V4(MemoryPair::IP_B), 5002))
            .unwrap();
        p.b.tcp_listen(l, 8).unwrap();
        let c = p.a.tcp_open(Family::V4);
        assert_eq!(p.a.tcp_set_recv_buffer(c, 10_000), Ok(20_000));
        assert_eq!(p.a.tcp_buffer_sizes(c), Ok((20_000, 16_384)));
        p.a.tcp_connect(c, SocketAddr::new(IpAddr::V4(MemoryPair::IP_B), 5002))
            .unwrap();
        p.settle(TICK, |_| {});
        let (s, _) = p.b.tcp_accept(l).unwrap();
        assert_eq!(p.a.tcp_buffer_sizes(c), Ok((20_000, 87_040)), "only the send side grew");
        assert_eq!(
            p.b.tcp_buffer_sizes(s),
            Ok((20_000, 60_000)),
            "inherited from the listener"
        );
        let (ia, ib) = (p.a.tcp_info(c).unwrap().unwrap(), p.b.tcp_info(s).unwrap().unwrap());
        assert_eq!((ia.rcv_wscale, ib.rcv_wscale), (0, 0), "20,000 fits in 16 bits");
        // Bulk both ways, read as fast as it comes: nothing changes.
        let data = vec![7u8; 64 * 1024];
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..200 {
            let _ = p.a.tcp_send(c, &data);
            let _ = p.b.tcp_send(s, &data);
            p.settle(TICK, |b| while b.tcp_recv(s, &mut buf).is_ok_and(|n| n > 0) {});
            while p.a.tcp_recv(c, &mut buf).is_ok_and(|n| n > 0) {}
        }
        assert!(p.b.tcp_info(s).unwrap().unwrap().bytes_received > 4 << 20);
        assert_eq!(p.a.tcp_buffer_sizes(c), Ok((20_000, 87_040)));
        assert_eq!(p.b.tcp_buffer_sizes(s), Ok((20_000, 60_000)));
        // Set on the open connection: applies at once.
        assert_eq!(p.a.tcp_set_send_buffer(c, 5000), Ok(10_000));
        assert_eq!(p.a.tcp_buffer_sizes(c), Ok((20_000, 10_000)));
    }

    /// CPython's `testWithTimeoutTriggeredSend`: 10 MiB offered to a peer
    /// that reads 88192 bytes and stops. The buffers between the programs
    /// stay small, so the sender blocks long before the end (with the old
    /// fixed 4 MiB + 6 MiB everything fitted).
    #[test]
    fn stalled_reader_blocks_the_sender_early() {
        let mut p = MemoryPair::new();
        let (c, s) = p.connect_tcp(5003, TICK);
        let data = vec![1u8; 10 << 20];
        let mut buf = vec![0u8; 64 * 1024];
        let (mut sent, mut read) = (0, 0);
        for _ in 0..2000 {
            if let Ok(n) = p.a.tcp_send(c, &data[sent..]) {
                sent += n;
            }
            p.settle(TICK, |b| {
                while read < 88_192 {
                    let max = (88_192 - read).min(buf.len());
                    match b.tcp_recv(s, &mut buf[..max]) {
                        Ok(n @ 1..) => read += n,
                        _ => break,
                    }
                }
            });
        }
        assert_eq!(read, 88_192);
        assert!(sent < 2 << 20, "{sent} bytes taken by the stack");
        assert_eq!(p.a.tcp_send(c, b"x"), Err(SocketError::WouldBlock));
        let (rcv, _) = p.b.tcp_buffer_sizes(s).unwrap();
        let (_, snd) = p.a.tcp_buffer_sizes(c).unwrap();
        assert!(rcv + snd < 2 << 20, "buffers {rcv} + {snd}");
    }
}
