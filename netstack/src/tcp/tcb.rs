//! The per-connection TCP machine: the tcpcb, driven by the RFC 9293 state
//! machine.
//!
//! A [`Tcb`] holds every state variable of RFC 9293 §3.3.1, both buffers,
//! the RFC 6298 retransmission timer and the other per-connection timers
//! (delayed ACK, persist, keepalive, TIME-WAIT), RFC 7323 window scaling and
//! timestamps with PAWS, RFC 5961's defences (challenge ACKs), Nagle, fast
//! retransmit and recovery (NewReno, RFC 6582; SACK-based, RFC 6675),
//! Linux-like autotuning of both buffers (the arithmetic is in
//! `tcp::autotune`) and the statistics behind `TCP_INFO`.
//!
//! The stack drives it with three kinds of calls, each taking `now`:
//! - [`Tcb::on_segment`] for every segment the demultiplexer hands it;
//! - the program's calls ([`Tcb::send`], [`Tcb::recv`] with `now`,
//!   [`Tcb::shutdown_write`], [`Tcb::close`], [`Tcb::abort`]);
//! - [`Tcb::poll`], called until it returns `None` after any of the above
//!   and whenever [`Tcb::next_timer`] is due. It runs expired timers and
//!   yields the segments to send, one at a time.
//!
//! Segments leave as [`Segment`] values: a header and a payload that is a
//! range of the send buffer ([`Tcb::payload`]), so the interface layer
//! copies each byte once, straight into the frame.
//!
//! ```
//! use joyride_netstack::tcp::tcb::{Config, State, Tcb};
//! use joyride_netstack::tcp::SeqNum;
//! use joyride_netstack::time::Instant;
//! use joyride_netstack::wire::tcp::{TcpControl, TcpRepr};
//!
//! let now = Instant::from_secs(1);
//! let (mut tcb, syn) = Tcb::connect(Config::new(40000, 80), SeqNum(1000), now);
//! assert_eq!(syn.control, TcpControl::Syn);
//! // The peer's SYN-ACK, parsed by the interface layer.
//! let synack = TcpRepr {
//!     src_port: 80,
//!     dst_port: 40000,
//!     control: TcpControl::Syn,
//!     seq_number: 5000,
//!     ack_number: Some(1001),
//!     window_len: 65535,
//!     max_seg_size: Some(1460),
//!     ..Default::default()
//! };
//! tcb.on_segment(now, &synack);
//! assert_eq!(tcb.state(), State::Established);
//! tcb.send(b"GET / HTTP/1.0\r\n\r\n");
//! while let Some(seg) = tcb.poll(now) {
//!     let (a, b) = tcb.payload(&seg);
//!     // ... write seg.repr(..)'s header, then a and b, into a frame.
//!     assert_eq!(a.len() + b.len(), seg.payload_len);
//! }
//! // Later: call poll again when tcb.next_timer() is due.
//! assert!(tcb.next_timer().is_some(), "the retransmission timer runs");
//! ```
//!
//! Not for: demultiplexing, listening sockets and the handshake of passive
//! opens (the syncache hands over a finished handshake, [`Negotiated`],
//! through [`Tcb::accept`]), ISN choice (the caller passes the ISS in),
//! answering segments for connections that do not exist (the
//! demultiplexer's RST), reusing a TIME-WAIT connection for a new SYN (the
//! tcpcb only judges it, [`Tcb::time_wait_accepts_syn`]; the demultiplexer
//! then drops the tcpcb and hands the SYN to the listener, or else gives it
//! to the tcpcb, which answers with a challenge ACK), ICMP parsing (the
//! interface layer hands errors in through [`Tcb::on_icmp_error`] and
//! [`Tcb::on_packet_too_big`]), congestion window arithmetic (`tcp::cc`) and the SACK
//! scoreboard (`tcp::sack`). Urgent data is not special: URG is ignored and
//! its bytes stay in the stream (as with `SO_OOBINLINE`); ECN is not
//! negotiated.

use core::fmt;
use core::time::Duration;

use super::autotune::{self, RcvRtt, RcvSpace};
use super::buffer::{RecvBuffer, SendBuffer};
use super::cc::{self, CcState, CongestionControl};
use super::sack::Scoreboard;
use super::syncache::Negotiated;
use super::timers::{self, RttEstimator};
use super::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::{TcpControl, TcpRepr, MAX_SACK_BLOCKS};

/// The smallest MSS this stack uses; smaller announced values are clamped
/// up to it (Linux's `TCP_MIN_MSS`).
pub const MIN_MSS: u16 = 88;
/// MSS assumed when the peer sends none (RFC 9293 §3.7.1: 536 for IPv4).
pub const DEFAULT_MSS: u16 = 536;
/// Bytes the timestamps option adds to every segment (with padding).
const TS_OPTION_LEN: u32 = 12;
/// RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// Linux's `tcp_invalid_ratelimit`: at most one challenge ACK per 500 ms.
const CHALLENGE_ACK_INTERVAL: Duration = Duration::from_millis(500);
/// Duplicate ACKs that start fast retransmit (RFC 5681 §3.2).
const DUP_THRESH: u32 = 3;

/// The connection states of RFC 9293 §3.3.2. LISTEN belongs to the
/// listener and its syncache, never to a tcpcb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// SYN sent, waiting for the peer's SYN.
    SynSent,
    /// Both SYNs seen (simultaneous open), waiting for the ACK of ours.
    SynReceived,
    /// Open.
    Established,
    /// We closed; our FIN is not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed at once; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Both closed; waiting 2*MSL for stray segments.
    TimeWait,
}

impl State {
    /// Whether both SYNs are acknowledged ("synchronized", RFC 9293 §3.5.2).
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }

    /// Whether data the peer sends is accepted in this state.
    fn receives_data(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        })
    }
}

/// Why a connection failed, as the program sees it (`SO_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// RST in answer to our SYN: `ECONNREFUSED`.
    Refused,
    /// RST on an open connection: `ECONNRESET`.
    Reset,
    /// Retransmissions, keepalive or `TCP_USER_TIMEOUT` ran out: `ETIMEDOUT`.
    TimedOut,
    /// An ICMP error (RFC 5927): a hard one during the handshake, or the
    /// last soft one when the connection later timed out. `errno` is the
    /// positive errno Linux reports for it (e.g. `libc::EHOSTUNREACH`).
    Icmp {
        /// The errno, positive.
        errno: i32,
    },
}

/// Keepalive settings (`SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection times out.
    pub count: u32,
}

impl Default for Keepalive {
    /// Linux's defaults: 7200 s, 75 s, 9.
    fn default() -> Self {
        Keepalive {
            idle: timers::KEEPALIVE_IDLE,
            interval: timers::KEEPALIVE_INTERVAL,
            count: timers::KEEPALIVE_COUNT,
        }
    }
}

/// A connection's settings: the socket options and what the route says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our port.
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
    /// The largest segment payload the path carries (path MTU minus IP and
    /// TCP headers); announced as our MSS and the cap on the peer's.
    pub mss: u16,
    /// Send buffer size the connection starts with (`SO_SNDBUF`).
    pub send_buffer: usize,
    /// The most autotuning grows the send buffer to (Linux's
    /// `tcp_wmem[2]`); no more than `send_buffer` keeps it fixed, as a size
    /// the program set does (`SOCK_SNDBUF_LOCK`).
    pub send_buffer_max: usize,
    /// Receive buffer size the connection starts with (`SO_RCVBUF`).
    pub recv_buffer: usize,
    /// The most autotuning grows the receive buffer to (Linux's
    /// `tcp_rmem[2]`), which also sets the window scale announced; no more
    /// than `recv_buffer` keeps it fixed (`SOCK_RCVBUF_LOCK`).
    pub recv_buffer_max: usize,
    /// Offer window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// `TCP_NODELAY`: no Nagle.
    pub nodelay: bool,
    /// Congestion control by name (`TCP_CONGESTION`).
    pub congestion: &'static str,
    /// `SO_KEEPALIVE` and its timing; `None` when off.
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT`; `None` when unset.
    pub user_timeout: Option<Duration>,
    /// `SO_LINGER` with a zero timeout: `close` resets the connection.
    pub linger_zero: bool,
    /// Added to the millisecond clock to form TSval (random per connection,
    /// from the shell).
    pub ts_offset: u32,
}

impl Config {
    /// Linux-like defaults for a connection between two ports over an
    /// Ethernet path (MSS 1460): buffers start at Linux's initial sizes and
    /// are autotuned up to its maxima (`tcp::autotune`).
    pub fn new(local_port: u16, remote_port: u16) -> Config {
        Config {
            local_port,
            remote_port,
            mss: 1460,
            send_buffer: autotune::SEND_BUFFER_INITIAL,
            send_buffer_max: autotune::SEND_BUFFER_MAX,
            recv_buffer: autotune::RECV_BUFFER_INITIAL,
            recv_buffer_max: autotune::RECV_BUFFER_MAX,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nodelay: false,
            congestion: "cubic",
            keepalive: None,
            user_timeout: None,
            linger_zero: false,
            ts_offset: 0,
        }
    }

    /// The shift we announce: for the largest the receive buffer may grow
    /// to, as Linux picks it from `tcp_rmem[2]` unless `SO_RCVBUF` locked
    /// the buffer (`tcp_select_initial_window`).
    fn wscale(&self) -> u8 {
        window_shift(self.recv_buffer.max(self.recv_buffer_max))
    }
}

/// The window scale for a receive buffer of up to `bytes`: the smallest
/// shift that fits it in 16 bits, at most 14.
pub fn window_shift(bytes: usize) -> u8 {
    let mut s = 0;
    while s < 14 && (bytes >> s) > 0xffff {
        s += 1;
    }
    s
}

/// A segment to send. The payload is `payload_len` bytes of the send buffer
/// starting at `seq`; get them with [`Tcb::payload`] before the next call
/// that changes the tcpcb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNum,
    /// Acknowledgment number, if ACK is set.
    pub ack: Option<SeqNum>,
    /// SYN, FIN, RST or none.
    pub control: TcpControl,
    /// PSH.
    pub push: bool,
    /// Window, as on the wire (already scaled down).
    pub window: u16,
    /// MSS option (SYNs).
    pub mss: Option<u16>,
    /// Window scale option (SYNs).
    pub window_scale: Option<u8>,
    /// SACK-permitted option (SYNs).
    pub sack_permitted: bool,
    /// SACK blocks.
    pub sack: [Option<(u32, u32)>; MAX_SACK_BLOCKS],
    /// Timestamps option (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// Payload length.
    pub payload_len: usize,
}

impl Segment {
    /// The header as a [`TcpRepr`] with `payload` (which must be the
    /// segment's payload, contiguous).
    pub fn repr<'a>(&self, payload: &'a [u8]) -> TcpRepr<'a> {
        debug_assert_eq!(payload.len(), self.payload_len);
        self.repr_unchecked(payload)
    }

    fn repr_unchecked<'a>(&self, payload: &'a [u8]) -> TcpRepr<'a> {
        let Segment {
            src_port,
            dst_port,
            seq,
            ack,
            control,
            push,
            window,
            mss,
            window_scale,
            sack_permitted,
            sack,
            timestamp,
            payload_len: _,
        } = *self;
        TcpRepr {
            src_port,
            dst_port,
            control,
            push,
            seq_number: seq.0,
            ack_number: ack.map(|a| a.0),
            window_len: window,
            window_scale,
            max_seg_size: mss,
            sack_permitted,
            sack_ranges: sack,
            timestamp,
            ece: false,
            cwr: false,
            payload,
        }
    }

    /// The header alone as a [`TcpRepr`] (empty payload), for writing the
    /// header when the payload is copied separately from the two slices of
    /// [`Tcb::payload`].
    pub fn header_repr(&self) -> TcpRepr<'static> {
        self.repr_unchecked(&[])
    }

    /// Sequence space the segment occupies.
    pub fn seq_len(&self) -> u32 {
        self.payload_len as u32 + matches!(self.control, TcpControl::Syn | TcpControl::Fin) as u32
    }
}

/// What `poll`/`epoll` would report for the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// `recv` returns data or end of file (`EPOLLIN`).
    pub readable: bool,
    /// `send` accepts bytes (`EPOLLOUT`).
    pub writable: bool,
    /// The peer's FIN arrived (`EPOLLRDHUP`).
    pub read_hup: bool,
    /// Both directions are shut or the connection is gone (`EPOLLHUP`).
    pub hung_up: bool,
    /// A pending error (`EPOLLERR`).
    pub error: Option<TcpError>,
}

/// The largest congestion window: the largest window a peer can offer
/// (`TCP_MAXWIN << TCP_MAX_WINSHIFT`, as FreeBSD bounds `snd_cwnd`).
const MAX_CWND: u32 = 65_535 << 14;

/// Statistics in the manner of Linux's `struct tcp_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// State.
    pub state: State,
    /// Smoothed RTT (zero before the first sample).
    pub rtt: Duration,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current RTO, backoff included.
    pub rto: Duration,
    /// Consecutive retransmission timeouts (`tcpi_retransmits`).
    pub retransmits: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u64,
    /// Sender MSS (payload per segment).
    pub snd_mss: u32,
    /// Estimated peer segment size.
    pub rcv_mss: u32,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow-start threshold, bytes.
    pub ssthresh: u32,
    /// Bytes sent and not yet acknowledged.
    pub unacked: u32,
    /// The peer's window, bytes.
    pub snd_wnd: u32,
    /// Our receive window, bytes.
    pub rcv_wnd: u32,
    /// Our shift for the peer's windows.
    pub snd_wscale: u8,
    /// The shift we announced.
    pub rcv_wscale: u8,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Bytes the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Segments dropped by PAWS.
    pub paws_rejected: u64,
    /// Out-of-order segments dropped for lack of room.
    pub ooo_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    total_retrans: u64,
    bytes_acked: u64,
    bytes_received: u64,
    segs_out: u64,
    segs_in: u64,
    paws_rejected: u64,
    ooo_dropped: u64,
}

/// The TCP control block of one connection.
#[derive(Debug)]
pub struct Tcb {
    state: State,
    cfg: Config,

    // Send sequence variables (RFC 9293 §3.3.1).
    iss: SeqNum,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
    /// Highest sequence number sent plus one (`snd_max`, BSD).
    snd_max: SeqNum,
    snd_wnd: u32,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    max_snd_wnd: u32,
    snd_wscale: u8,
    /// Sequence number of the send buffer's first byte.
    snd_buf_seq: SeqNum,

    // Receive sequence variables.
    irs: SeqNum,
    rcv_nxt: SeqNum,
    rcv_wscale: u8,
    /// Right edge of the window we last announced.
    rcv_adv: SeqNum,

    // Negotiated options.
    ws_ok: bool,
    ts_ok: bool,
    sack_ok: bool,
    ts_recent: u32,
    ts_recent_at: Instant,
    last_ack_sent: SeqNum,
    snd_mss: u32,
    rcv_mss: u32,
    /// The peer's MSS option (clamped up to [`MIN_MSS`]).
    peer_mss: u16,

    sndbuf: SendBuffer,
    rcvbuf: RecvBuffer,
    /// The program found the send buffer full and waits for room (Linux's
    /// `SOCK_NOSPACE`): an ACK that frees room may grow the buffer.
    snd_nospace: bool,
    /// The receiver's RTT estimate, for right-sizing the receive buffer.
    rcv_rtt: RcvRtt,
    /// Right-sizing of the receive buffer; from the connection's
    /// establishment on.
    rcv_space: Option<RcvSpace>,
    /// Bytes the program read (Linux's `copied_seq`, as a count).
    bytes_read: u64,

    /// The program shut the write side: a FIN follows the send buffer.
    fin_queued: bool,
    /// The peer's FIN was received (and RCV.NXT advanced over it).
    fin_received: bool,
    /// Sequence number of a FIN that arrived ahead of missing data.
    ooo_fin: Option<SeqNum>,
    /// Sequence number of the latest out-of-order segment (for SACK).
    last_ooo: Option<SeqNum>,
    /// Duplicate data to report in the next ACK's first SACK block (D-SACK,
    /// RFC 2883).
    dsack: Option<(SeqNum, SeqNum)>,
    /// The program closed the socket (no more reads).
    orphaned: bool,

    // Congestion control and loss recovery.
    cc: Box<dyn CongestionControl>,
    ccs: CcState,
    dupacks: u32,
    recover: SeqNum,
    /// NewReno window inflation during recovery, bytes (RFC 6582).
    inflation: u32,
    high_rxt: SeqNum,
    rtx_head: bool,
    scoreboard: Scoreboard,

    // Round-trip time.
    rtt: RttEstimator,
    /// Segment being timed when timestamps are off (Karn: never a
    /// retransmitted one).
    rtt_probe: Option<(SeqNum, Instant)>,
    backoff: u32,

    // Timers.
    rtx_at: Option<Instant>,
    persist_at: Option<Instant>,
    delack_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// TIME-WAIT end, or FIN-WAIT-2 timeout of an orphan.
    close_at: Option<Instant>,
    /// When the oldest unacknowledged data was (about) sent, for
    /// `TCP_USER_TIMEOUT`.
    unacked_since: Option<Instant>,
    persist_probes: u32,
    /// Zero-window probes sent since the peer last sent an acceptable ACK
    /// (Linux's `icsk_probes_out`).
    probes_unanswered: u32,
    persist_since: Option<Instant>,
    keepalive_probes: u32,
    last_recv: Instant,
    /// When we last sent a segment occupying sequence space.
    last_send: Instant,
    /// When we last answered an out-of-window segment or sent a challenge
    /// ACK (Linux's `last_oow_ack_time`).
    last_oow_ack: Option<Instant>,
    /// TSval at the latest retransmission timeout: echoes older than it
    /// give no RTT sample.
    ts_rto_floor: Option<u32>,

    // Pending output.
    ack_now: bool,
    unacked_rcv_bytes: u32,
    send_probe: bool,
    force_send: bool,
    pending_rst: Option<Segment>,

    error: Option<TcpError>,
    /// The latest soft ICMP error (Linux's `sk_err_soft`): reported instead
    /// of `ETIMEDOUT` if the connection times out.
    soft_error: Option<i32>,
    counters: Counters,
}

fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Tcb {
    fn new(cfg: Config, iss: SeqNum, now: Instant) -> Tcb {
        let cc = cc::by_name(cfg.congestion)
            .or_else(|| cc::by_name(cc::DEFAULT))
            .expect("default congestion control");
        let sndbuf = SendBuffer::new(cfg.send_buffer);
        let rcvbuf = RecvBuffer::new(cfg.recv_buffer);
        let rcv_wscale = if cfg.window_scaling { cfg.wscale() } else { 0 };
        let mss = u32::from(cfg.mss.max(MIN_MSS));
        Tcb {
            state: State::Closed,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: 0,
            snd_buf_seq: iss + 1,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_wscale,
            rcv_adv: SeqNum(0),
            ws_ok: false,
            ts_ok: false,
            sack_ok: false,
            ts_recent: 0,
            ts_recent_at: now,
            last_ack_sent: SeqNum(0),
            snd_mss: u32::from(DEFAULT_MSS).min(mss),
            rcv_mss: u32::from(DEFAULT_MSS).min(mss),
            peer_mss: DEFAULT_MSS,
            sndbuf,
            rcvbuf,
            snd_nospace: false,
            rcv_rtt: RcvRtt::default(),
            rcv_space: None,
            bytes_read: 0,
            fin_queued: false,
            fin_received: false,
            ooo_fin: None,
            last_ooo: None,
            dsack: None,
            orphaned: false,
            cc,
            ccs: CcState::default(),
            dupacks: 0,
            recover: iss,
            inflation: 0,
            high_rxt: iss,
            rtx_head: false,
            scoreboard: Scoreboard::new(),
            rtt: RttEstimator::new(),
            rtt_probe: None,
            backoff: 0,
            rtx_at: None,
            persist_at: None,
            delack_at: None,
            keepalive_at: None,
            close_at: None,
            unacked_since: None,
            persist_probes: 0,
            probes_unanswered: 0,
            persist_since: None,
            keepalive_probes: 0,
            last_recv: now,
            last_send: now,
            last_oow_ack: None,
            ts_rto_floor: None,
            ack_now: false,
            unacked_rcv_bytes: 0,
            send_probe: false,
            force_send: false,
            pending_rst: None,
            error: None,
            soft_error: None,
            counters: Counters::default(),
            cfg,
        }
    }

    /// Active open (`connect`): a tcpcb in SYN-SENT and the SYN to send.
    pub fn connect(cfg: Config, iss: SeqNum, now: Instant) -> (Tcb, Segment) {
        let mut t = Tcb::new(cfg, iss, now);
        t.state = State::SynSent;
        t.ccs.mss = t.snd_mss;
        t.cc.init(&mut t.ccs);
        let syn = t.poll(now).expect("SYN-SENT sends a SYN");
        (t, syn)
    }

    /// Passive open completed by a listener's syncache: a tcpcb in
    /// ESTABLISHED with what the handshake negotiated. Ports come from the
    /// handshake's addresses, the TSval offset from its timestamp state; the
    /// rest of `cfg` applies. Hand the ACK that completed the handshake to
    /// [`Tcb::on_segment`] next: it may carry data and the peer's window.
    pub fn accept(cfg: Config, n: &Negotiated, now: Instant) -> Tcb {
        let Negotiated {
            local,
            remote,
            irs,
            iss,
            mss,
            snd_wscale,
            rcv_wscale,
            sack_ok,
            ts,
            peer_window,
            from_cookie,
        } = *n;
        let cfg = Config {
            local_port: local.port(),
            remote_port: remote.port(),
            ts_offset: ts.map_or(cfg.ts_offset, |t| t.offset),
            ..cfg
        };
        let mut t = Tcb::new(cfg, iss, now);
        t.state = State::Established;
        t.snd_una = iss + 1;
        t.snd_nxt = iss + 1;
        t.snd_max = iss + 1;
        t.recover = iss + 1;
        t.high_rxt = iss + 1;
        t.irs = irs;
        t.rcv_nxt = irs + 1;
        t.last_ack_sent = irs + 1;
        match (snd_wscale, rcv_wscale) {
            (Some(snd), Some(rcv)) => {
                t.ws_ok = true;
                t.snd_wscale = snd.min(14);
                t.rcv_wscale = rcv.min(14);
            }
            _ => {
                t.ws_ok = false;
                t.snd_wscale = 0;
                t.rcv_wscale = 0;
            }
        }
        t.sack_ok = sack_ok;
        t.ts_ok = ts.is_some();
        if let Some(ts) = ts {
            t.ts_recent = ts.ts_recent;
            t.ts_recent_at = now;
        }
        t.set_snd_mss(Some(mss));
        // A cache entry remembers the SYN's window (never scaled); a cookie
        // only has the final ACK's (RFC 7323 §2.2).
        t.snd_wnd = if from_cookie {
            u32::from(peer_window) << t.snd_wscale
        } else {
            u32::from(peer_window)
        };
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = irs;
        t.snd_wl2 = iss + 1;
        // The SYN-ACK announced at most 65535 (unscaled); what the buffer
        // holds is what we accept.
        t.rcv_adv = t.rcv_nxt + (t.rcvbuf.window().min(0xffff) as u32);
        t.init_buffer_space(now);
        t.arm_keepalive(now);
        t
    }

    /// Applies the options both SYNs carried.
    fn negotiate(&mut self, peer_mss: Option<u16>, peer_wscale: Option<u8>, sack: bool, ts: Option<u32>, now: Instant) {
        match (self.cfg.window_scaling, peer_wscale) {
            // RFC 7323 §2.3: "If a Window Scale option is received with a
            // shift.cnt value larger than 14, the TCP SHOULD log the error
            // but MUST use 14 instead of the specified value."
            (true, Some(s)) => {
                self.snd_wscale = s.min(14);
                self.ws_ok = true;
            }
            _ => {
                self.ws_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = self.cfg.sack && sack;
        self.ts_ok = self.cfg.timestamps && ts.is_some();
        if let (true, Some(v)) = (self.ts_ok, ts) {
            self.ts_recent = v;
            self.ts_recent_at = now;
        }
        self.set_snd_mss(peer_mss);
    }

    /// The send MSS from the peer's MSS option, clamped up to [`MIN_MSS`]
    /// (0 and 48 would make tiny segments) and down to what our path
    /// carries, less the timestamps option; then the initial window.
    fn set_snd_mss(&mut self, peer_mss: Option<u16>) {
        self.peer_mss = peer_mss.unwrap_or(DEFAULT_MSS).max(MIN_MSS);
        self.update_snd_mss();
        self.cc.init(&mut self.ccs);
    }

    fn update_snd_mss(&mut self) {
        let mss = self.peer_mss.min(self.cfg.mss.max(MIN_MSS));
        let opts = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        self.snd_mss = u32::from(mss) - opts;
        self.ccs.mss = self.snd_mss;
    }

    /// The path carries less than before (ICMP "fragmentation needed" or
    /// "packet too big", RFC 1191 / RFC 8201): `mss` is the largest segment
    /// payload the new path MTU allows. Segments in flight were likely
    /// dropped, so they are sent again at once, cut to the new size
    /// (Linux's `tcp_simple_retransmit`); congestion state is untouched.
    pub fn set_path_mss(&mut self, mss: u16) {
        let mss = mss.max(MIN_MSS);
        if mss >= self.cfg.mss {
            return;
        }
        let old = self.snd_mss;
        self.cfg.mss = mss;
        self.update_snd_mss();
        // Only segments larger than the new MSS were too big; when the
        // peer's MSS was already smaller nothing in flight needs resending.
        if self.snd_mss < old && self.state.is_synchronized() && self.snd_nxt != self.snd_una {
            self.snd_nxt = self.snd_una;
            self.high_rxt = self.snd_una;
            self.rtt_probe = None;
            // Duplicate ACKs of what was in flight must not start a fast
            // retransmit on top (Linux sets high_seq = snd_nxt).
            self.recover = self.recover.max(self.snd_max);
        }
    }

    /// Whether an ICMP error quoting sequence number `seq` may concern this
    /// connection: RFC 5927 §4.1, "If the received ICMP error message
    /// [...] contains a TCP sequence number [...] check that SND.UNA =<
    /// SEG.SEQ < SND.NXT" (SND.MAX here, so a retransmission after a
    /// timeout does not narrow it).
    fn icmp_seq_ok(&self, seq: SeqNum) -> bool {
        !matches!(self.state, State::Closed | State::TimeWait) && seq >= self.snd_una && seq < self.snd_max
    }

    /// An ICMP error (destination unreachable, time exceeded; RFC 5927,
    /// Linux's `tcp_v4_err`/`tcp_v6_err`) quoting our segment with sequence
    /// number `seq`. `errno` is the positive errno for it and `hard` says
    /// whether it is a hard error. Returns false, changing nothing, when
    /// `seq` is not in SND.UNA..SND.MAX (a blind or stale error).
    ///
    /// During the handshake (SYN-SENT, SYN-RECEIVED) a hard error aborts
    /// the connection with that error. Otherwise it is remembered: if the
    /// connection later times out, `SO_ERROR` reports it instead of
    /// `ETIMEDOUT` (RFC 1122 §4.2.3.9: hard errors on an open connection
    /// "SHOULD" not abort it, as Linux without `IP_RECVERR`).
    pub fn on_icmp_error(&mut self, seq: SeqNum, errno: i32, hard: bool) -> bool {
        if !self.icmp_seq_ok(seq) {
            return false;
        }
        if hard && matches!(self.state, State::SynSent | State::SynReceived) {
            self.error = Some(TcpError::Icmp { errno });
            self.enter_closed();
        } else {
            self.soft_error = Some(errno);
        }
        true
    }

    /// ICMP "fragmentation needed" / "packet too big" (RFC 1191, RFC 8201)
    /// quoting our segment with sequence number `seq`; `mss` is the largest
    /// segment payload the new path MTU allows. Validated as
    /// [`Tcb::on_icmp_error`] does; returns whether accepted. Lowers the
    /// send MSS (never below [`MIN_MSS`], never raising it) and sends the
    /// unacknowledged data again at once in the new size, without treating
    /// the loss as congestion (Linux's `tcp_simple_retransmit`).
    pub fn on_packet_too_big(&mut self, now: Instant, seq: SeqNum, mss: u16) -> bool {
        if !self.icmp_seq_ok(seq) {
            return false;
        }
        self.set_path_mss(mss);
        if self.snd_nxt != self.snd_max && self.rtx_at.is_none() {
            self.rtx_at = Some(now + self.rtt.backed_off(self.backoff));
        }
        true
    }

    /// Whether this tcpcb is in TIME-WAIT and the new connection request
    /// `seg` may take over its 4-tuple (RFC 9293 §3.6.1, RFC 6191; Linux's
    /// `tcp_timewait_state_process`). With timestamps on both: the SYN's
    /// TSval is above TS.Recent, or equal to it and SEG.SEQ above RCV.NXT
    /// (RFC 6191 §2); an older TSval never (PAWS). Without: "if the
    /// sequence number of the new SYN is greater than the final sequence
    /// number of the previous incarnation" — SEG.SEQ > RCV.NXT. When true,
    /// the demultiplexer drops this tcpcb and hands the SYN to the
    /// listener; otherwise it gives the SYN to [`Tcb::on_segment`] (a
    /// challenge ACK).
    pub fn time_wait_accepts_syn(&self, seg: &TcpRepr) -> bool {
        if self.state != State::TimeWait || seg.control != TcpControl::Syn || seg.ack_number.is_some() {
            return false;
        }
        let seq_newer = SeqNum(seg.seq_number) > self.rcv_nxt;
        match (self.ts_ok, seg.timestamp) {
            (true, Some((tsval, _))) => {
                if ts_before(tsval, self.ts_recent) {
                    false
                } else {
                    tsval != self.ts_recent || seq_newer
                }
            }
            _ => seq_newer,
        }
    }

    // ---------------------------------------------------------------
    // The program's side.
    // ---------------------------------------------------------------

    /// The connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// SND.UNA: the oldest unacknowledged sequence number.
    pub fn snd_una(&self) -> SeqNum {
        self.snd_una
    }

    /// SND.MAX: the highest sequence number sent, plus one.
    pub fn snd_max(&self) -> SeqNum {
        self.snd_max
    }

    /// RCV.NXT: the next sequence number expected from the peer.
    pub fn rcv_nxt(&self) -> SeqNum {
        self.rcv_nxt
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&mut self, on: bool) {
        self.cfg.nodelay = on;
    }

    /// Sets `SO_KEEPALIVE` (with its timing) or turns it off.
    pub fn set_keepalive(&mut self, ka: Option<Keepalive>, now: Instant) {
        self.cfg.keepalive = ka;
        self.keepalive_at = None;
        self.arm_keepalive(now);
    }

    /// Sets `TCP_USER_TIMEOUT`.
    pub fn set_user_timeout(&mut self, t: Option<Duration>) {
        self.cfg.user_timeout = t;
    }

    /// Sets `SO_LINGER` with a zero timeout.
    pub fn set_linger_zero(&mut self, on: bool) {
        self.cfg.linger_zero = on;
    }

    /// Copies what fits of `buf` into the send buffer; returns how many
    /// bytes (0 when full, or when the state does not allow sending).
    pub fn send(&mut self, buf: &[u8]) -> usize {
        if self.fin_queued || !matches!(self.state, State::Established | State::CloseWait) {
            return 0;
        }
        let n = self.sndbuf.write(buf);
        if n < buf.len() {
            self.snd_nospace = true;
        }
        n
    }

    /// Copies received in-order bytes into `buf`; returns how many. 0 with a
    /// non-empty `buf` means nothing to read, or end of file when
    /// [`Tcb::is_eof`]. What the program reads per RTT sizes the receive
    /// buffer (Linux's `tcp_rcv_space_adjust`).
    pub fn recv(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let n = self.rcvbuf.read(buf);
        if n > 0 {
            self.bytes_read += n as u64;
            self.rcv_space_adjust(now);
        }
        // RFC 1122 §4.2.3.3, receiver SWS avoidance: announce a larger window
        // once it "can be increased by min(RCV.BUFF/2, Eff.snd.MSS)" over the
        // one last announced — and, as Linux does (`tcp_cleanup_rbuf`), only
        // once it is at least twice what the peer has left, so a program
        // reading along a flowing stream does not add ACKs.
        if n > 0 && self.state.receives_data() {
            let (new, left) = (self.adv_window(), self.rcv_wnd());
            let threshold = (self.rcvbuf.capacity() as u32 / 2).min(self.rcv_mss);
            if new.saturating_sub(left) >= threshold && new >= 2 * left {
                self.ack_now = true;
            }
        }
        n
    }

    /// Copies received in-order bytes into `buf` and leaves them to be read
    /// again (`MSG_PEEK`); returns how many.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        self.rcvbuf.peek(buf)
    }

    /// Bytes written and not yet sent (`SIOCOUTQNSD`).
    pub fn send_unsent(&self) -> usize {
        let sent = self.snd_max.diff(self.snd_buf_seq).max(0) as usize;
        self.sndbuf.len().saturating_sub(sent)
    }

    /// Whether the peer's FIN arrived and every byte before it was read.
    pub fn is_eof(&self) -> bool {
        self.fin_received && self.rcvbuf.is_empty()
    }

    /// Bytes ready to read (`FIONREAD`).
    pub fn recv_queued(&self) -> usize {
        self.rcvbuf.len()
    }

    /// Whether out-of-order data waits for a gap to fill.
    pub fn reassembling(&self) -> bool {
        !self.rcvbuf.ooo_ranges().is_empty()
    }

    /// Whether an ACK is due now (not on the delayed-ACK timer): every
    /// second full-sized segment, out-of-order data, a window update.
    pub fn ack_due(&self) -> bool {
        self.ack_now
    }

    /// Segments retransmitted (`TCP_INFO`'s `total_retrans`).
    pub fn total_retrans(&self) -> u64 {
        self.counters.total_retrans
    }

    /// Bytes in the send buffer, unsent or unacknowledged (`SIOCOUTQ`).
    pub fn send_queued(&self) -> usize {
        self.sndbuf.len()
    }

    /// Room in the send buffer.
    pub fn send_free(&self) -> usize {
        self.sndbuf.free()
    }

    /// The send buffer's size now, autotuned or set (`SO_SNDBUF`).
    pub fn send_buffer_size(&self) -> usize {
        self.sndbuf.capacity()
    }

    /// The receive buffer's size now, autotuned or set (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> usize {
        self.rcvbuf.capacity()
    }

    /// `SO_SNDBUF` on a connection: the send buffer holds `bytes` from now
    /// on and is no longer autotuned (Linux's `SOCK_SNDBUF_LOCK`). Bytes
    /// already held beyond it stay; no more are taken until they are
    /// acknowledged.
    pub fn set_send_buffer(&mut self, bytes: usize) {
        self.cfg.send_buffer = bytes;
        self.cfg.send_buffer_max = bytes;
        self.sndbuf.set_capacity(bytes);
    }

    /// `SO_RCVBUF` on a connection: the receive buffer holds `bytes` from
    /// now on (never less than the bytes it holds, in order or not) and is
    /// no longer autotuned (`SOCK_RCVBUF_LOCK`); the window scale stays as
    /// negotiated. Returns the size set.
    pub fn set_recv_buffer(&mut self, bytes: usize) -> usize {
        let set = self.rcvbuf.set_capacity(bytes);
        self.cfg.recv_buffer = set;
        self.cfg.recv_buffer_max = set;
        set
    }

    /// `shutdown(SHUT_WR)`: a FIN follows the data already written.
    pub fn shutdown_write(&mut self) {
        match self.state {
            State::SynSent => self.enter_closed(),
            // The FIN waits for the ACK of our SYN (RFC 9293 §3.10.4:
            // "Queue this until all preceding SENDs have been segmentized").
            State::SynReceived => self.fin_queued = true,
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            State::Closed | State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait => {}
        }
    }

    /// `close()`: orderly close, or a reset when unread data would be lost
    /// (RFC 9293 §3.10.4 allows it; Linux does it, as RFC 2525 §2.17 asks)
    /// or `SO_LINGER` is zero.
    pub fn close(&mut self, now: Instant) {
        self.orphaned = true;
        if self.state == State::SynSent {
            self.enter_closed();
            return;
        }
        if self.state != State::Closed
            && self.state != State::TimeWait
            && (self.cfg.linger_zero || !self.rcvbuf.is_empty())
        {
            self.abort();
            return;
        }
        self.shutdown_write();
        if self.state == State::FinWait2 && self.close_at.is_none() {
            self.close_at = Some(now + timers::FIN_WAIT_2);
        }
    }

    /// Abortive close: RST to the peer (in states that have one), CLOSED.
    pub fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait
        ) {
            // RFC 9293 §3.10.5: "<SEQ=SND.NXT><CTL=RST>".
            self.pending_rst = Some(self.rst(self.snd_nxt, Some(self.rcv_nxt)));
        }
        self.enter_closed();
    }

    /// The pending error, cleared (`getsockopt(SO_ERROR)`).
    pub fn take_error(&mut self) -> Option<TcpError> {
        self.error.take()
    }

    /// The pending error, left in place.
    pub fn error(&self) -> Option<TcpError> {
        self.error
    }

    /// What `poll` would report.
    pub fn readiness(&self) -> Readiness {
        let read_hup = self.fin_received;
        let write_shut = self.fin_queued || self.state == State::Closed;
        Readiness {
            readable: !self.rcvbuf.is_empty() || read_hup || self.state == State::Closed || self.error.is_some(),
            writable: matches!(self.state, State::Established | State::CloseWait)
                && !self.fin_queued
                && self.sndbuf.free() > 0,
            read_hup,
            hung_up: self.state == State::Closed || (read_hup && write_shut),
            error: self.error,
        }
    }

    /// `TCP_INFO`.
    pub fn info(&self) -> TcpInfo {
        // Every counter reaches TCP_INFO: a new one must be placed here.
        let Counters {
            total_retrans,
            bytes_acked,
            bytes_received,
            segs_out,
            segs_in,
            paws_rejected,
            ooo_dropped,
        } = self.counters;
        TcpInfo {
            state: self.state,
            rtt: self.rtt.srtt().unwrap_or_default(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.backed_off(self.backoff),
            retransmits: self.backoff,
            total_retrans,
            snd_mss: self.snd_mss,
            rcv_mss: self.rcv_mss,
            cwnd: self.ccs.cwnd,
            ssthresh: self.ccs.ssthresh,
            unacked: self.snd_max.diff(self.snd_una).max(0) as u32,
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.adv_window(),
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            timestamps: self.ts_ok,
            sack: self.sack_ok,
            bytes_acked,
            bytes_received,
            segs_out,
            segs_in,
            paws_rejected,
            ooo_dropped,
        }
    }

    /// The payload of `seg`, as up to two slices of the send buffer. Valid
    /// for segments from the latest [`Tcb::poll`] calls, until the next
    /// [`Tcb::on_segment`].
    pub fn payload(&self, seg: &Segment) -> (&[u8], &[u8]) {
        if seg.payload_len == 0 {
            return (&[], &[]);
        }
        let off = seg.seq.diff(self.snd_buf_seq);
        debug_assert!(off >= 0, "payload of a segment already acknowledged");
        self.sndbuf.slices(off.max(0) as usize, seg.payload_len)
    }

    // ---------------------------------------------------------------
    // Timers.
    // ---------------------------------------------------------------

    /// The earliest deadline at which [`Tcb::poll`] has timer work.
    pub fn next_timer(&self) -> Option<Instant> {
        [
            self.rtx_at,
            self.persist_at,
            self.delack_at,
            self.keepalive_at,
            self.close_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers due at `now` and returns the next segment to send,
    /// if any. Call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Segment> {
        self.run_timers(now);
        let seg = self.output(now);
        if seg.is_some() {
            self.counters.segs_out += 1;
        }
        seg
    }

    fn due(t: Option<Instant>, now: Instant) -> bool {
        t.is_some_and(|t| t <= now)
    }

    fn run_timers(&mut self, now: Instant) {
        if Self::due(self.close_at, now) {
            // TIME-WAIT's 2*MSL, or an orphan's FIN-WAIT-2 limit.
            self.enter_closed();
            return;
        }
        if Self::due(self.rtx_at, now) {
            self.rtx_at = None;
            self.on_rto(now);
        }
        if Self::due(self.persist_at, now) {
            self.persist_at = None;
            self.on_persist(now);
        }
        if Self::due(self.delack_at, now) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if Self::due(self.keepalive_at, now) {
            self.keepalive_at = None;
            self.on_keepalive(now);
        }
    }

    fn timed_out(&mut self) {
        // Linux's tcp_write_err: "sk->sk_err = READ_ONCE(sk->sk_err_soft) ? :
        // ETIMEDOUT".
        self.error = Some(
            self.soft_error
                .map_or(TcpError::TimedOut, |errno| TcpError::Icmp { errno }),
        );
        self.enter_closed();
    }

    fn user_timeout_passed(&self, since: Option<Instant>, now: Instant) -> bool {
        match (self.cfg.user_timeout, since) {
            (Some(ut), Some(t)) if !ut.is_zero() => now.saturating_duration_since(t) >= ut,
            _ => false,
        }
    }

    /// RFC 6298 §5.4-5.6 on expiry of the retransmission timer.
    fn on_rto(&mut self, now: Instant) {
        let handshake = matches!(self.state, State::SynSent | State::SynReceived);
        if !handshake && self.snd_una == self.snd_max {
            return;
        }
        let limit = if handshake {
            timers::SYN_RETRIES
        } else {
            timers::DATA_RETRIES
        };
        let out_of_time = if self.cfg.user_timeout.is_some_and(|u| !u.is_zero()) {
            self.user_timeout_passed(self.unacked_since, now)
        } else {
            self.backoff >= limit
        };
        if out_of_time {
            self.timed_out();
            return;
        }
        self.backoff += 1;
        self.ccs.flight = self.snd_max.diff(self.snd_una).max(0) as u32;
        self.cc.on_rto(&mut self.ccs, now);
        self.ccs.in_recovery = false;
        self.inflation = 0;
        self.dupacks = 0;
        self.rtx_head = false;
        // RFC 6582 §4: after a timeout, "recover" is the highest sequence
        // number sent, so duplicate ACKs of old data do not start recovery.
        self.recover = self.snd_max;
        // RFC 2018 §8: "After a retransmit timeout the data sender SHOULD
        // turn off all of the SACKed bits".
        self.scoreboard.clear();
        // RFC 6298 §5.4: "Retransmit the earliest segment that has not
        // been acknowledged"; BSD-style, go back to SND.UNA.
        self.snd_nxt = self.snd_una;
        self.high_rxt = self.snd_una;
        // Karn's rule: no RTT sample from a retransmitted segment.
        self.rtt_probe = None;
        self.ts_rto_floor = Some(self.ts_now(now));
        // §5.5: "back off the timer (RTO <- RTO * 2)"; §5.6: restart it.
        self.rtx_at = Some(now + self.rtt.backed_off(self.backoff));
    }

    fn on_persist(&mut self, now: Instant) {
        if !self.state.is_synchronized() {
            return;
        }
        let since = *self.persist_since.get_or_insert(now);
        if self.user_timeout_passed(Some(since), now) {
            self.timed_out();
            return;
        }
        if self.snd_wnd_room() > 0 {
            // A window too small for Nagle and SWS avoidance: RFC 1122
            // §4.2.3.4's override timeout sends what fits.
            self.force_send = true;
        } else {
            // RFC 1122 §4.2.2.17: "As long as the receiving TCP continues to
            // send acknowledgments in response to the probe segments, the
            // sending TCP MUST allow the connection to stay open" — and
            // one that stops answering is given up after as many probes
            // as data retransmissions (Linux's tcp_probe_timer, retries2).
            if self.probes_unanswered >= timers::DATA_RETRIES {
                self.timed_out();
                return;
            }
            self.probes_unanswered += 1;
            // Zero-window probe (RFC 9293 §3.8.6.1), as Linux sends it: an
            // ACK with an old sequence number that the peer must answer.
            self.send_probe = true;
        }
        self.persist_probes += 1;
        self.persist_at = Some(now + self.rtt.backed_off(self.persist_probes));
    }

    fn arm_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.cfg.keepalive {
            if matches!(self.state, State::Established | State::CloseWait | State::FinWait2) {
                let base = self.last_recv.max(now.saturating_sub(ka.idle));
                self.keepalive_at.get_or_insert(base + ka.idle);
            }
        }
    }

    fn on_keepalive(&mut self, now: Instant) {
        let Some(ka) = self.cfg.keepalive else { return };
        if !matches!(self.state, State::Established | State::CloseWait | State::FinWait2) {
            return;
        }
        if self.snd_max != self.snd_una || !self.sndbuf.is_empty() {
            // Data in flight: the retransmission timer watches the peer.
            self.keepalive_at = Some(now + ka.idle);
            return;
        }
        let idle = now.saturating_duration_since(self.last_recv);
        if self.keepalive_probes == 0 && idle < ka.idle {
            self.keepalive_at = Some(self.last_recv + ka.idle);
            return;
        }
        let ut_passed = self.cfg.user_timeout.is_some_and(|u| !u.is_zero() && idle >= u);
        if self.keepalive_probes >= ka.count || (self.keepalive_probes > 0 && ut_passed) {
            // Linux resets the connection it gives up on.
            self.pending_rst = Some(self.rst(self.snd_nxt, Some(self.rcv_nxt)));
            self.timed_out();
            return;
        }
        self.keepalive_probes += 1;
        self.send_probe = true;
        self.keepalive_at = Some(now + ka.interval);
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.rtx_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.keepalive_at = None;
        self.close_at = None;
        self.ack_now = false;
        self.send_probe = false;
        self.rcvbuf.clear_ooo();
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rtx_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.close_at = Some(now + timers::TIME_WAIT);
    }

    // ---------------------------------------------------------------
    // Buffer autotuning (`tcp::autotune`).
    // ---------------------------------------------------------------

    /// The MSS we announced, less the timestamps option (Linux's `advmss`).
    fn advmss(&self) -> u32 {
        let opts = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        u32::from(self.cfg.mss.max(MIN_MSS)) - opts
    }

    /// The connection is established (Linux's `tcp_init_buffer_space`): the
    /// send buffer is sized for the initial congestion window and
    /// right-sizing of the receive buffer starts.
    fn init_buffer_space(&mut self, now: Instant) {
        self.sndbuf_expand();
        self.rcv_space = Some(RcvSpace::new(now, self.rcv_wnd(), self.advmss(), self.bytes_read));
    }

    /// Grows the send buffer to twice the congestion window in Linux's
    /// memory per segment (`tcp_sndbuf_expand`), up to its maximum; never
    /// shrinks it. A size the program set is its maximum.
    ///
    /// Linux counts at least its reordering degree plus one segments
    /// (`tp->reordering`, up to 300), since data a reordering or lossy path
    /// keeps unacknowledged stays in the buffer beyond the congestion
    /// window. This tcpcb keeps no reordering estimate; the data in flight
    /// (SND.MAX - SND.UNA, SACKed data included) measures that directly
    /// and stands in for it.
    fn sndbuf_expand(&mut self) {
        let cap = self.sndbuf.capacity();
        let max = self.cfg.send_buffer_max;
        if max <= cap {
            return;
        }
        // "max_t(u32, tp->rx_opt.mss_clamp, tp->mss_cache)".
        let clamp = u32::from(self.peer_mss.min(self.cfg.mss.max(MIN_MSS)));
        let flight = self.snd_max.diff(self.snd_una).max(0) as u32;
        let segs = self.ccs.cwnd.max(flight) / self.snd_mss.max(1);
        let want = autotune::send_buffer_for(segs, clamp.max(self.snd_mss)).min(max);
        if want > cap {
            self.sndbuf.set_capacity(want);
        }
    }

    /// An ACK arrived (Linux's `tcp_check_space` and `tcp_new_space`, run
    /// after every ACK): if the program waits for room and the buffer, not
    /// the windows, limits the sender — what it has left to send fills
    /// neither the congestion window ("If we filled the congestion window,
    /// do not expand", `tcp_should_expand_sndbuf`; SACKed data is not in
    /// flight there, so a recovery that holds the buffer full of it grows
    /// the buffer) nor the peer's (as FreeBSD's `tcp_autosndbuf` asks: a
    /// peer that reads slowly does not grow our buffer) — the buffer grows.
    fn check_space(&mut self) {
        if !self.snd_nospace {
            return;
        }
        let off = self.snd_nxt.diff(self.snd_buf_seq).max(0) as usize;
        let unsent = self.sndbuf.len().saturating_sub(off).min(u32::MAX as usize) as u32;
        if unsent < self.cwnd_room().min(self.snd_wnd_room()) {
            self.sndbuf_expand();
        }
        // sk_stream_write_space: the waiting program is woken once the
        // free room is half what is queued.
        if self.sndbuf.free() >= self.sndbuf.len() / 2 {
            self.snd_nospace = false;
        }
    }

    /// The program read: right-size the receive buffer (Linux's
    /// `tcp_rcv_space_adjust`), up to its maximum and to the largest window
    /// the negotiated scale can announce.
    fn rcv_space_adjust(&mut self, now: Instant) {
        let Some(space) = &mut self.rcv_space else { return };
        let (unread, ooo_end) = (self.rcvbuf.len(), self.rcvbuf.ooo_end());
        let Some(want) = space.on_read(now, self.rcv_rtt.rtt(), self.bytes_read, unread, ooo_end) else {
            return;
        };
        let max_window = 0xffff_usize << self.rcv_wscale;
        let want = want.min(self.cfg.recv_buffer_max).min(max_window);
        if want > self.rcvbuf.capacity() {
            self.rcvbuf.set_capacity(want);
        }
    }

    // ---------------------------------------------------------------
    // Segment arrival (RFC 9293 §3.10.7).
    // ---------------------------------------------------------------

    /// Processes one arriving segment (already demultiplexed to this
    /// connection, checksum verified). Replies come out of [`Tcb::poll`].
    pub fn on_segment(&mut self, now: Instant, seg: &TcpRepr) {
        self.counters.segs_in += 1;
        match self.state {
            // The demultiplexer answers segments for closed connections.
            State::Closed => {}
            State::SynSent => self.on_segment_syn_sent(now, seg),
            State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait
            | State::Closing
            | State::LastAck
            | State::TimeWait => self.on_segment_otherwise(now, seg),
        }
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT STATE.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpRepr) {
        let seq = SeqNum(seg.seq_number);
        let ack = seg.ack_number.map(SeqNum);
        let rst = seg.control == TcpControl::Rst;
        // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the
        // RST bit is set, if so drop the segment and return)".
        if let Some(a) = ack {
            if a <= self.iss || a > self.snd_max {
                if !rst {
                    self.pending_rst = Some(self.rst(a, None));
                }
                return;
            }
        }
        if rst {
            // "If the ACK was acceptable, then signal to the user 'error:
            // connection reset', drop the segment, enter CLOSED state [...]
            // Otherwise (no ACK), drop the segment and return."
            if ack.is_some() {
                self.error = Some(TcpError::Refused);
                self.enter_closed();
            }
            return;
        }
        if seg.control != TcpControl::Syn {
            // "If neither of the SYN or RST bits is set, then drop the
            // segment and return."
            return;
        }
        self.last_recv = now;
        // "RCV.NXT is set to SEG.SEQ+1, IRS is set to SEG.SEQ."
        self.irs = seq;
        self.rcv_nxt = seq + 1;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(
            seg.max_seg_size,
            seg.window_scale,
            seg.sack_permitted,
            seg.timestamp.map(|t| t.0),
            now,
        );
        // RFC 7323 §2.2: "The window field in a segment where the SYN bit is
        // set (i.e., a <SYN> or <SYN,ACK>) MUST NOT be scaled."
        self.snd_wnd = u32::from(seg.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seq;
        self.rcv_adv = self.rcv_nxt + (self.rcvbuf.window().min(0xffff) as u32);
        if let Some(a) = ack {
            // "SND.UNA should be advanced to equal SEG.ACK".
            self.snd_wl2 = a;
            self.take_rtt_sample(now, a, seg.timestamp);
            self.snd_una = a;
            self.snd_nxt = self.snd_nxt.max(a);
            if self.backoff > 0 {
                self.rtt.syn_timed_out();
            }
            self.backoff = 0;
            self.rtx_at = None;
            self.unacked_since = None;
            self.soft_error = None;
            // "If SND.UNA > ISS (our SYN has been ACKed), change the
            // connection state to ESTABLISHED, form an ACK segment
            // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
            self.state = State::Established;
            self.ack_now = true;
            self.recover = a;
            self.high_rxt = a;
            self.init_buffer_space(now);
            self.arm_keepalive(now);
            let fin = seg.control == TcpControl::Fin;
            self.process_text_and_fin(now, seq + 1, seg.payload, fin);
        } else {
            // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
            // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it."
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
        }
    }

    fn rcv_wnd(&self) -> u32 {
        self.rcv_adv.diff(self.rcv_nxt).max(0) as u32
    }

    /// RFC 9293 §3.10.7.4's acceptability test.
    fn acceptable(&self, seq: SeqNum, seg_len: u32) -> bool {
        let wnd = self.rcv_wnd();
        let (nxt, edge) = (self.rcv_nxt, self.rcv_nxt + wnd);
        match (seg_len, wnd) {
            (0, 0) => seq == nxt,
            (0, _) => seq.in_range(nxt, edge),
            (_, 0) => false,
            (l, _) => seq.in_range(nxt, edge) || (seq + (l - 1)).in_range(nxt, edge),
        }
    }

    /// A challenge ACK (RFC 5961 §7: "rate-limit the challenge ACKs"),
    /// at most one per 500 ms like Linux.
    fn challenge_ack(&mut self, now: Instant) {
        if self
            .last_oow_ack
            .is_some_and(|t| now.saturating_duration_since(t) < CHALLENGE_ACK_INTERVAL)
        {
            return;
        }
        self.last_oow_ack = Some(now);
        self.ack_now = true;
    }

    /// The ACK that answers an unacceptable segment. Answers to segments
    /// without data or FIN, and to SYNs, share the challenge ACK's rate
    /// limit, so two stacks that disagree cannot ping-pong ACKs and a
    /// forged SYN cannot draw one ACK each (Linux's `tcp_oow_rate_limited`:
    /// "seq != end_seq && !syn" is not limited); others are answered at
    /// once.
    fn ack_unacceptable(&mut self, now: Instant, seg_len: u32, syn: bool) {
        if seg_len == 0 || syn {
            self.challenge_ack(now);
        } else {
            self.ack_now = true;
        }
    }

    /// A duplicate ACK that reordering delivered after a later segment: it
    /// changes nothing but the duplicate ACK count and SACK information, so
    /// PAWS lets it through (Linux's `tcp_disordered_ack`): no data, ACK of
    /// SND.UNA, SEQ at RCV.NXT, same window, and TSval at most one RTO old.
    fn disordered_ack(&self, seq: SeqNum, seg: &TcpRepr) -> bool {
        let Some((tsval, _)) = seg.timestamp else { return false };
        let rto_ms = self.rtt.backed_off(self.backoff).as_millis() as u32;
        seg.payload.is_empty()
            && seg.control == TcpControl::None
            && seg.ack_number == Some(self.snd_una.0)
            && seq == self.rcv_nxt
            && u32::from(seg.window_len) << self.snd_wscale == self.snd_wnd
            && self.ts_recent.wrapping_sub(tsval) <= rto_ms
    }

    /// RFC 9293 §3.10.7.4, "Otherwise": every state after SYN-SENT.
    fn on_segment_otherwise(&mut self, now: Instant, seg: &TcpRepr) {
        let mut seq = SeqNum(seg.seq_number);
        let mut payload = seg.payload;
        let mut syn = seg.control == TcpControl::Syn;
        let mut fin = seg.control == TcpControl::Fin;
        let rst = seg.control == TcpControl::Rst;
        let seg_len = payload.len() as u32 + u32::from(syn) + u32::from(fin);

        // RFC 7323 §5.3 R1: "If there is a Timestamps option in the arriving
        // segment, SEG.TSval < TS.Recent, TS.Recent is valid [...], and if
        // the RST bit is not set, then treat the arriving segment as not
        // acceptable: Send an acknowledgment in reply [...] and drop the
        // segment."
        if let (true, Some((tsval, _)), false) = (self.ts_ok, seg.timestamp, rst) {
            let valid = now.saturating_duration_since(self.ts_recent_at) < PAWS_IDLE;
            if valid && ts_before(tsval, self.ts_recent) && !self.disordered_ack(seq, seg) {
                self.counters.paws_rejected += 1;
                self.ack_unacceptable(now, seg_len, syn);
                return;
            }
        }

        // Simultaneous open: the peer's SYN,ACK acknowledges our SYN
        // (RFC 9293 Figure 8, line 7).
        if self.state == State::SynReceived && syn && seq == self.irs {
            if let Some(a) = seg.ack_number.map(SeqNum) {
                if a > self.snd_una && a <= self.snd_max {
                    syn = false;
                    seq += 1;
                    self.ack_now = true;
                }
            }
        }

        if rst {
            // RFC 5961 §3.2: "1) If the RST bit is set and the sequence
            // number is outside the current receive window, silently drop
            // the segment. 2) If the RST bit is set and the sequence number
            // exactly matches the next expected sequence number (RCV.NXT),
            // then TCP MUST reset the connection. 3) [...] TCP MUST send an
            // acknowledgment (challenge ACK)".
            let wnd = self.rcv_wnd().max(1);
            if seq == self.rcv_nxt {
                self.on_reset();
            } else if seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd) {
                self.challenge_ack(now);
            }
            return;
        }
        if syn {
            // RFC 5961 §4.2: "If the SYN bit is set, irrespective of the
            // sequence number, TCP MUST send an ACK (also referred to as
            // challenge ACK) to the remote peer".
            self.challenge_ack(now);
            return;
        }

        // "If an incoming segment is not acceptable, an acknowledgment
        // should be sent in reply (unless the RST bit is set [...])".
        let zero_window_probe = self.rcv_wnd() == 0 && seq == self.rcv_nxt;
        if !self.acceptable(seq, seg_len) && !zero_window_probe {
            self.ack_unacceptable(now, seg_len, syn);
            if self.sack_ok && !payload.is_empty() && seq + payload.len() as u32 <= self.rcv_nxt {
                // RFC 2883 §4: "the first SACK block should specify the
                // [...] duplicate segment".
                self.dsack = Some((seq, seq + payload.len() as u32));
            }
            if self.state == State::TimeWait && fin {
                // "The only thing that can arrive in this state is a
                // retransmission of the remote FIN. Acknowledge it, and
                // restart the 2 MSL timeout."
                self.close_at = Some(now + timers::TIME_WAIT);
            }
            return;
        }
        self.last_recv = now;
        self.keepalive_probes = 0;
        if let Some(ka) = self.cfg.keepalive {
            if self.keepalive_at.is_some() {
                self.keepalive_at = Some(now + ka.idle);
            }
        }

        // RFC 7323 §4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ <=
        // Last.ACK.sent, then SEG.TSval is copied to TS.Recent".
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.timestamp) {
            // §5.5: after 24 idle days TS.Recent is no longer valid and
            // the segment's TSval replaces it.
            let expired = now.saturating_duration_since(self.ts_recent_at) >= PAWS_IDLE;
            if (expired || !ts_before(tsval, self.ts_recent)) && seq <= self.last_ack_sent {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }

        // Trim what was already received ("segments with higher beginning
        // sequence numbers may be held for later processing").
        if seq < self.rcv_nxt {
            let d = self.rcv_nxt.diff(seq) as usize;
            if d > payload.len() {
                fin = false;
            }
            if self.sack_ok && !payload.is_empty() {
                let dup = d.min(payload.len()) as u32;
                self.dsack = Some((seq, seq + dup));
                self.ack_now = true;
            }
            payload = &payload[d.min(payload.len())..];
            seq = self.rcv_nxt;
        }
        if zero_window_probe && self.rcv_wnd() == 0 && !payload.is_empty() {
            // No room for the data (nor for a FIN after it); a bare FIN
            // takes no room and is taken, as Linux does.
            self.ack_now = true;
            payload = &[];
            fin = false;
        }

        // Fifth, the ACK field: "if the ACK bit is off, drop the segment and
        // return".
        let Some(ack) = seg.ack_number.map(SeqNum) else { return };
        if self.state == State::SynReceived {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED
            // state and continue processing [...] If the segment
            // acknowledgment is not acceptable, form a reset segment
            // <SEQ=SEG.ACK><CTL=RST> and send it."
            if ack > self.snd_una && ack <= self.snd_max {
                self.state = if self.fin_queued {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.snd_wnd = u32::from(seg.window_len) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.init_buffer_space(now);
                self.arm_keepalive(now);
            } else {
                self.pending_rst = Some(self.rst(ack, None));
                return;
            }
        }
        if !self.process_ack(now, seg, seq, ack) {
            return;
        }
        if self.state == State::Closed {
            return;
        }

        // Sixth, URG: ignored (RFC 6093 deprecates its use); urgent bytes
        // stay in the stream, as with SO_OOBINLINE. Seventh and eighth: the
        // text and FIN — a full-sized segment's echo timing the receiver's
        // RTT first (Linux's tcp_rcv_rtt_measure_ts before tcp_data_queue).
        if let (true, Some((_, tsecr))) = (self.ts_ok, seg.timestamp) {
            if payload.len() as u32 >= self.rcv_mss {
                self.rcv_rtt.on_timestamp(self.ts_now(now), tsecr);
            }
        }
        self.process_text_and_fin(now, seq, payload, fin);
    }

    fn on_reset(&mut self) {
        // RFC 9293 §3.10.7.4, second, RST bit: SYN-RECEIVED of an active
        // open is "connection refused"; ESTABLISHED through CLOSE-WAIT
        // report "connection reset"; CLOSING, LAST-ACK and TIME-WAIT just
        // close.
        self.error = match self.state {
            State::SynReceived => Some(TcpError::Refused),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => Some(TcpError::Reset),
            State::Closed | State::SynSent | State::Closing | State::LastAck | State::TimeWait => self.error,
        };
        self.enter_closed();
    }

    fn take_rtt_sample(&mut self, now: Instant, ack: SeqNum, ts: Option<(u32, u32)>) -> Option<Duration> {
        let sample = match (self.ts_ok, ts) {
            // RFC 7323 §4.1: the RTT from TSecr of an ACK of new data.
            // Karn's rule for timestamps: an echo from before the latest
            // timeout times the wait for the retransmission as well.
            (true, Some((_, tsecr))) if tsecr != 0 && !self.ts_rto_floor.is_some_and(|f| ts_before(tsecr, f)) => {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                (ms < 1 << 31).then(|| Duration::from_millis(u64::from(ms)))
            }
            _ => match self.rtt_probe {
                Some((s, t)) if ack > s => Some(now.saturating_duration_since(t)),
                _ => None,
            },
        };
        if self.rtt_probe.is_some_and(|(s, _)| ack > s) {
            self.rtt_probe = None;
        }
        if let Some(r) = sample {
            self.rtt.sample(r);
        }
        sample
    }

    /// Fifth step for synchronized states. Returns whether to go on to the
    /// segment text.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr, seq: SeqNum, ack: SeqNum) -> bool {
        // RFC 5961 §5.2: "All incoming segments whose ACK value doesn't
        // satisfy the above condition MUST be discarded and an ACK sent
        // back" — the condition being "(SND.UNA - MAX.SND.WND) =< SEG.ACK
        // =< SND.NXT".
        if ack > self.snd_max {
            // Rate limited as RFC 5961 §7 asks of the challenge ACKs of §5
            // (Linux's tcp_send_challenge_ack): a blind peer must not draw
            // one ACK per forged segment.
            self.challenge_ack(now);
            return false;
        }
        if ack < self.snd_una - self.max_snd_wnd {
            self.challenge_ack(now);
            return false;
        }
        if ack >= self.snd_una {
            // Linux's tcp_ack: "We passed data and got it acked, remove any
            // soft error log. Something worked..."; probes are answered.
            self.soft_error = None;
            self.probes_unanswered = 0;
        }
        let wnd = if seg.control == TcpControl::Syn {
            u32::from(seg.window_len)
        } else {
            u32::from(seg.window_len) << self.snd_wscale
        };
        let mut blocks = [(SeqNum(0), SeqNum(0)); MAX_SACK_BLOCKS];
        let mut n = 0;
        for &(l, r) in seg.sack_ranges.iter().flatten() {
            blocks[n] = (SeqNum(l), SeqNum(r));
            n += 1;
        }
        let mut newly_sacked = 0;
        if self.sack_ok && (n > 0 || !self.scoreboard.is_empty()) {
            // Also drops what this ACK covers cumulatively.
            newly_sacked = self
                .scoreboard
                .update(ack.max(self.snd_una), self.snd_max, &blocks[..n])
                .newly_sacked;
        }

        if ack > self.snd_una {
            self.on_new_ack(now, seg, ack);
        } else if ack == self.snd_una
            && self.snd_max != self.snd_una
            && seg.payload.is_empty()
            && seg.control == TcpControl::None
            && (wnd == self.snd_wnd || newly_sacked > 0)
        {
            // RFC 5681 §2's duplicate ACK (or one with new SACK
            // information, RFC 6675 §2).
            self.on_dup_ack(now);
        }

        // "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =<
        // SEG.ACK), set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and
        // set SND.WL2 <- SEG.ACK."
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            let opened = self.snd_wnd == 0 && wnd > 0;
            self.snd_wnd = wnd;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            if opened {
                self.persist_at = None;
                self.persist_probes = 0;
                self.persist_since = None;
            }
        }
        self.check_space();

        let fin_acked = self.fin_queued && self.snd_una == self.fin_seq() + 1;
        match self.state {
            State::FinWait1 if fin_acked => {
                // "In addition to the processing for the ESTABLISHED state,
                // if the FIN segment is now acknowledged, then enter
                // FIN-WAIT-2 and continue processing in that state."
                self.state = State::FinWait2;
                if self.orphaned {
                    self.close_at = Some(now + timers::FIN_WAIT_2);
                }
            }
            State::Closing if fin_acked => {
                // "if the ACK acknowledges our FIN, then enter the TIME-WAIT
                // state; otherwise, ignore the segment."
                self.enter_time_wait(now);
            }
            State::LastAck if fin_acked => {
                // "If our FIN is now acknowledged, delete the TCB, enter the
                // CLOSED state, and return."
                self.enter_closed();
                return false;
            }
            _ => {}
        }
        true
    }

    /// Sequence number of our FIN (meaningful once `fin_queued`).
    fn fin_seq(&self) -> SeqNum {
        self.snd_buf_seq + self.sndbuf.len() as u32
    }

    fn on_new_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNum) {
        let acked = ack.diff(self.snd_una) as u32;
        let rtt = self.take_rtt_sample(now, ack, seg.timestamp);
        // Bytes of data acknowledged (the SYN and the FIN are not data).
        let data_end = self.snd_buf_seq + self.sndbuf.len() as u32;
        let data_acked = ack.min(data_end).diff(self.snd_buf_seq).max(0) as u32;
        self.sndbuf.consume(data_acked as usize);
        self.snd_buf_seq += data_acked;
        self.counters.bytes_acked += u64::from(data_acked);
        self.snd_una = ack;
        self.snd_nxt = self.snd_nxt.max(ack);
        self.high_rxt = self.high_rxt.max(ack);
        if !self.ccs.in_recovery {
            // Sequence numbers compare within 2^31 of each other: drag
            // "recover" along (it only ever has to be above SND.UNA right
            // after a loss), or after 2 GiB without a loss "SND.UNA >=
            // recover" would read false and fast recovery never start.
            self.recover = self.recover.max(ack);
        }
        self.backoff = 0;
        self.persist_probes = 0;
        self.persist_since = None;
        // RFC 6298 §5.2: "When all outstanding data has been acknowledged,
        // turn off the retransmission timer." §5.3: "When an ACK is received
        // that acknowledges new data, restart the retransmission timer".
        if self.snd_una == self.snd_max {
            self.rtx_at = None;
            self.unacked_since = None;
        } else {
            self.rtx_at = Some(now + self.rtt.rto());
            self.unacked_since = Some(now);
        }
        self.ccs.flight = self.snd_max.diff(self.snd_una).max(0) as u32;
        if self.ccs.in_recovery {
            if ack >= self.recover {
                // RFC 6582 §3.2 step 3, full acknowledgment: leave recovery.
                self.ccs.in_recovery = false;
                self.inflation = 0;
                self.dupacks = 0;
                self.cc.on_recovery_exit(&mut self.ccs, now);
            } else {
                // Partial acknowledgment: "retransmit the first unacknowledged
                // segment [...] deflate the congestion window by the amount of
                // new data acknowledged [...] add back one SMSS".
                self.rtx_head = !self.sack_ok;
                self.inflation = self.inflation.saturating_sub(acked).saturating_add(self.snd_mss);
            }
        } else {
            self.dupacks = 0;
            // FreeBSD's CCF_CWND_LIMITED: the congestion window grows only
            // while it, not the peer's window, limits the sender (RFC 7661
            // §4.1 in spirit). Otherwise a sender the receiver holds back
            // grows it without bound: past 2^31 bytes the sequence
            // arithmetic wrapped and the connection stopped sending.
            if self.ccs.cwnd <= self.snd_wnd {
                self.cc.on_ack(&mut self.ccs, acked, now, rtt);
            }
            self.ccs.cwnd = self.ccs.cwnd.min(MAX_CWND);
        }
    }

    fn on_dup_ack(&mut self, now: Instant) {
        self.dupacks = self.dupacks.saturating_add(1);
        if self.ccs.in_recovery {
            // RFC 6582 §3.2 step 4: "increment cwnd by SMSS" (kept as
            // inflation beside the congestion controller's window).
            // No more inflation than there is data in flight: a peer cannot
            // open the window by repeating ACKs (RFC 5681 §3.2's ACK
            // division concern).
            let flight = self.snd_max.diff(self.snd_una).max(0) as u32;
            self.inflation = self.inflation.saturating_add(self.snd_mss).min(flight);
            return;
        }
        let lost = self.sack_ok && self.scoreboard.is_lost(self.snd_una, self.snd_mss);
        // RFC 6582 §3.2 step 2: only if the ACK "covers more than recover".
        if (self.dupacks >= DUP_THRESH || lost) && self.snd_una >= self.recover {
            self.ccs.flight = self.snd_max.diff(self.snd_una).max(0) as u32;
            self.cc.on_congestion(&mut self.ccs, now);
            self.ccs.in_recovery = true;
            self.recover = self.snd_max;
            self.high_rxt = self.snd_una;
            self.inflation = DUP_THRESH * self.snd_mss;
            self.rtx_head = true;
            self.rtt_probe = None;
            self.rtx_at = Some(now + self.rtt.backed_off(self.backoff));
        }
    }

    /// Seventh and eighth steps: the segment text and FIN.
    fn process_text_and_fin(&mut self, now: Instant, seq: SeqNum, payload: &[u8], fin: bool) {
        if !payload.is_empty() {
            if self.orphaned {
                // Data after close(): Linux answers with a reset
                // (RFC 2525 §2.17).
                self.pending_rst = Some(self.rst(self.snd_nxt, Some(self.rcv_nxt)));
                self.error = None;
                self.enter_closed();
                return;
            }
            if !self.state.receives_data() {
                // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not
                // occur since a FIN has been received from the remote side.
                // Ignore the segment text."
                return;
            }
            self.rcv_mss = self
                .rcv_mss
                .max(payload.len() as u32)
                .min(u32::from(self.cfg.mss.max(MIN_MSS)));
            let off = seq.diff(self.rcv_nxt).max(0) as usize;
            let had_ooo = !self.rcvbuf.ooo_ranges().is_empty();
            match self.rcvbuf.insert(off, payload) {
                Ok(n) => {
                    self.rcv_nxt += n as u32;
                    self.counters.bytes_received += n as u64;
                    if n > 0 {
                        // Linux's tcp_event_data_recv: rcv_rtt_est from
                        // the window last announced.
                        let wnd = self.rcv_adv.diff(self.last_ack_sent).max(0) as u32;
                        self.rcv_rtt.on_data(now, self.rcv_nxt, wnd);
                    }
                    if off > 0 {
                        self.last_ooo = Some(seq);
                    }
                    if off > 0 || had_ooo {
                        // RFC 5681 §4.2: "an immediate ACK SHOULD be
                        // generated when an out-of-order segment arrives" and
                        // when it "fills in all or part of a gap".
                        self.ack_now = true;
                    } else {
                        // RFC 9293 §3.8.6.3 / RFC 5681 §4.2: an ACK for at
                        // least every second full-sized segment, and within
                        // the delayed-ACK time otherwise.
                        self.unacked_rcv_bytes = self.unacked_rcv_bytes.saturating_add(n as u32);
                        if self.unacked_rcv_bytes >= 2 * self.rcv_mss {
                            self.ack_now = true;
                        } else if self.delack_at.is_none() {
                            self.delack_at = Some(now + timers::DELAYED_ACK);
                        }
                    }
                }
                Err(_) => {
                    self.counters.ooo_dropped += 1;
                    self.ack_now = true;
                    return;
                }
            }
        }
        let fin_at = if fin {
            Some(seq + payload.len() as u32)
        } else {
            self.ooo_fin
        };
        if let Some(f) = fin_at {
            if f == self.rcv_nxt {
                self.ooo_fin = None;
                self.on_fin(now);
            } else if f > self.rcv_nxt && fin {
                self.ooo_fin = Some(f);
            }
        }
    }

    fn on_fin(&mut self, now: Instant) {
        if self.fin_received {
            return;
        }
        // "advance RCV.NXT over the FIN, and send an acknowledgment for the
        // FIN."
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_now = true;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            // FIN-WAIT-1 with our FIN acknowledged already became FIN-WAIT-2.
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            State::TimeWait => self.close_at = Some(now + timers::TIME_WAIT),
            State::Closed | State::SynSent | State::CloseWait | State::Closing | State::LastAck => {}
        }
    }

    // ---------------------------------------------------------------
    // Output.
    // ---------------------------------------------------------------

    fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.cfg.ts_offset)
    }

    /// The window to announce now, bytes: the free receive buffer, never
    /// shrinking the right edge already announced (RFC 9293 §3.8.6.2.2).
    fn adv_window(&self) -> u32 {
        let max = 0xffffu32 << self.rcv_wscale;
        let free = (self.rcvbuf.window() as u32).min(max);
        // Round down to what the scaled field can say.
        let free = free >> self.rcv_wscale << self.rcv_wscale;
        let left = self.rcv_wnd();
        if free >= left {
            free
        } else {
            // Never shrink: what is left of the last window, rounded up so
            // the scaled field does not cut it (Linux's `tcp_select_window`).
            let unit = (1u32 << self.rcv_wscale) - 1;
            left.saturating_add(unit) >> self.rcv_wscale << self.rcv_wscale
        }
    }

    fn rst(&self, seq: SeqNum, ack: Option<SeqNum>) -> Segment {
        Segment {
            src_port: self.cfg.local_port,
            dst_port: self.cfg.remote_port,
            seq,
            ack,
            control: TcpControl::Rst,
            push: false,
            window: 0,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            sack: [None; MAX_SACK_BLOCKS],
            timestamp: None,
            payload_len: 0,
        }
    }

    /// A segment from the current state: ACK, window, timestamps and SACK
    /// blocks filled in; the announced window and ACK recorded as sent.
    fn segment(&mut self, now: Instant, seq: SeqNum, len: usize, control: TcpControl) -> Segment {
        let syn = control == TcpControl::Syn;
        let ack = (self.state != State::SynSent).then_some(self.rcv_nxt);
        let window = if syn {
            // RFC 7323 §2.2: the SYN's window is never scaled.
            self.rcvbuf.window().min(0xffff) as u16
        } else {
            let w = self.adv_window();
            // What a never-shrinking window rounded up past the buffer's
            // room is not recorded as promised: recorded, each ACK's
            // rounding would push the right edge further (up to 2^scale - 1
            // bytes per ACK while the buffer fills), and the peer would
            // send into a window the buffer cannot hold.
            let room = (self.rcvbuf.window() as u32).max(self.rcv_wnd());
            self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + w.min(room));
            (w >> self.rcv_wscale).min(0xffff) as u16
        };
        let timestamp = match (syn, self.state) {
            (true, State::SynSent) if self.cfg.timestamps => Some((self.ts_now(now), 0)),
            _ if self.ts_ok => Some((self.ts_now(now), self.ts_recent)),
            _ => None,
        };
        let mut sack = [None; MAX_SACK_BLOCKS];
        if self.sack_ok && !syn {
            // RFC 2018 §4: "The first SACK block [...] MUST specify the
            // contiguous block of data containing the segment which
            // triggered this ACK"; the others follow.
            let mut max = if self.ts_ok { 3 } else { 4 };
            let ranges = self.rcvbuf.ooo_ranges();
            let mut slots = sack.iter_mut();
            if let (Some((s, e)), true) = (self.dsack.take(), ack.is_some()) {
                if let Some(slot) = slots.next() {
                    *slot = Some((s.0, e.0));
                    max -= 1;
                }
            }
            let latest = self.last_ooo.map(|q| q.diff(self.rcv_nxt)).and_then(|off| {
                let off = usize::try_from(off).ok()?;
                ranges.iter().position(|&(s, e)| (s..e).contains(&off))
            });
            let order = latest
                .into_iter()
                .chain((0..ranges.len()).filter(|&i| Some(i) != latest));
            for (slot, i) in slots.zip(order.take(max)) {
                let (s, e) = ranges[i];
                *slot = Some(((self.rcv_nxt + s as u32).0, (self.rcv_nxt + e as u32).0));
            }
        }
        let (mss, window_scale, sack_permitted) = if syn {
            let offer = self.state == State::SynSent;
            let ws = if offer { self.cfg.window_scaling } else { self.ws_ok };
            (
                Some(self.cfg.mss.max(MIN_MSS)),
                ws.then_some(self.rcv_wscale),
                if offer { self.cfg.sack } else { self.sack_ok },
            )
        } else {
            (None, None, false)
        };
        if ack.is_some() {
            self.last_ack_sent = self.rcv_nxt;
            self.ack_now = false;
            self.delack_at = None;
            self.unacked_rcv_bytes = 0;
        }
        Segment {
            src_port: self.cfg.local_port,
            dst_port: self.cfg.remote_port,
            seq,
            ack,
            control,
            push: len > 0 && seq + len as u32 == self.fin_seq(),
            window,
            mss,
            window_scale,
            sack_permitted,
            sack,
            timestamp,
            payload_len: len,
        }
    }

    fn snd_wnd_room(&self) -> u32 {
        (self.snd_una + self.snd_wnd).diff(self.snd_nxt).max(0) as u32
    }

    /// Bytes congestion control lets us add to the network now.
    fn cwnd_room(&self) -> u32 {
        let flight = self.snd_nxt.diff(self.snd_una).max(0) as u32;
        let cwnd = self.ccs.cwnd;
        if !self.ccs.in_recovery {
            // RFC 3042 limited transmit: one new segment for each of the
            // first two duplicate ACKs.
            let limited = if self.dupacks < DUP_THRESH {
                self.dupacks * self.snd_mss
            } else {
                0
            };
            cwnd.saturating_add(limited).saturating_sub(flight)
        } else if self.sack_ok {
            let pipe = self
                .scoreboard
                .pipe(self.snd_una, self.snd_max, self.high_rxt, self.snd_mss);
            cwnd.saturating_sub(pipe)
        } else {
            cwnd.saturating_add(self.inflation).saturating_sub(flight)
        }
    }

    fn note_sent(&mut self, now: Instant, seg: &Segment) {
        if seg.seq_len() > 0 {
            self.last_send = now;
            if self.rtx_at.is_none() {
                self.rtx_at = Some(now + self.rtt.backed_off(self.backoff));
            }
            self.unacked_since.get_or_insert(now);
            self.persist_at = None;
        }
    }

    fn output(&mut self, now: Instant) -> Option<Segment> {
        if let Some(rst) = self.pending_rst.take() {
            return Some(rst);
        }
        match self.state {
            State::Closed => return None,
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                let first = self.snd_max == self.iss;
                let seg = self.segment(now, self.iss, 0, TcpControl::Syn);
                self.snd_nxt = self.iss + 1;
                self.snd_max = self.snd_max.max(self.snd_nxt);
                if first && self.rtt_probe.is_none() && self.backoff == 0 {
                    self.rtt_probe = Some((self.iss, now));
                }
                self.note_sent(now, &seg);
                return Some(seg);
            }
            _ => {}
        }
        if self.send_probe {
            self.send_probe = false;
            // Keepalive and zero-window probes: "<SEQ=SND.UNA-1>" with no data.
            return Some(self.segment(now, self.snd_una - 1, 0, TcpControl::None));
        }
        // Data only once our SYN is acknowledged (not `SND.UNA > ISS`: that
        // reads false again after 2^31 bytes, and the connection stopped
        // sending at 2 GiB).
        if !matches!(self.state, State::SynSent | State::SynReceived | State::TimeWait) {
            if let Some(seg) = self.retransmit_in_recovery(now) {
                return Some(seg);
            }
            if let Some(seg) = self.send_new(now) {
                return Some(seg);
            }
        }
        if self.ack_now {
            // A pure ACK carries the next new sequence number, SND.MAX, not
            // SND.NXT: after a timeout SND.NXT went back, and an ACK with an
            // old number fails the peer's acceptability test and is lost
            // (FreeBSD's tcp_output does the same).
            return Some(self.segment(now, self.snd_max, 0, TcpControl::None));
        }
        None
    }

    /// A segment of the send buffer at `seq` (a retransmission), with the
    /// FIN if it ends where the FIN was sent.
    fn retransmission(&mut self, now: Instant, seq: SeqNum, max_len: u32) -> Option<Segment> {
        let off = seq.diff(self.snd_buf_seq).max(0) as usize;
        let len = self.sndbuf.len().saturating_sub(off).min(max_len as usize);
        let fin = self.fin_queued && off + len == self.sndbuf.len() && self.snd_max > self.fin_seq();
        if len == 0 && !fin {
            return None;
        }
        let control = if fin { TcpControl::Fin } else { TcpControl::None };
        let seg = self.segment(now, seq, len, control);
        self.rtt_probe = None;
        self.counters.total_retrans += 1;
        self.note_sent(now, &seg);
        Some(seg)
    }

    fn retransmit_in_recovery(&mut self, now: Instant) -> Option<Segment> {
        if !self.ccs.in_recovery {
            return None;
        }
        if self.rtx_head {
            self.rtx_head = false;
            let seg = self.retransmission(now, self.snd_una, self.snd_mss)?;
            self.high_rxt = self.high_rxt.max(self.snd_una + seg.seq_len());
            return Some(seg);
        }
        if self.sack_ok {
            // RFC 6675 §5 (C): "If cwnd - pipe >= 1 SMSS, the sender SHOULD
            // transmit one or more segments" chosen by NextSeg.
            let (una, max, rxt, mss) = (self.snd_una, self.snd_max, self.high_rxt, self.snd_mss);
            let pipe = self.scoreboard.pipe(una, max, rxt, mss);
            if pipe.saturating_add(mss) <= self.ccs.cwnd {
                // Rule (2), new data, is `send_new`'s; rule (3) retransmits
                // when there is no new data the window lets us send.
                let unsent = self.sndbuf.len() as i64 - i64::from(self.snd_nxt.diff(self.snd_buf_seq));
                let new_data_ok = unsent > 0 && self.snd_wnd_room() > 0;
                let (seq, len) = match self.scoreboard.next_seg(una, max, rxt, mss) {
                    Some(s) => s,
                    None if !new_data_ok => self.scoreboard.next_seg_with(una, max, rxt, mss, false)?,
                    None => return None,
                };
                let seg = self.retransmission(now, seq, len)?;
                self.high_rxt = self.high_rxt.max(seq + seg.seq_len());
                return Some(seg);
            }
        }
        None
    }

    /// New data (and the FIN) from SND.NXT, under the peer's window,
    /// the congestion window, Nagle (RFC 896) and sender SWS avoidance
    /// (RFC 1122 §4.2.3.4).
    fn send_new(&mut self, now: Instant) -> Option<Segment> {
        let off = self.snd_nxt.diff(self.snd_buf_seq);
        if off < 0 || off as usize > self.sndbuf.len() {
            // Only the FIN is beyond the data, and it is sent.
            return None;
        }
        let off = off as usize;
        let avail = self.sndbuf.len() - off;
        let flight = self.snd_nxt.diff(self.snd_una).max(0) as u32;
        let retransmitting = self.snd_nxt < self.snd_max;
        let wnd_room = self.snd_wnd_room();
        let room = wnd_room.min(self.cwnd_room()) as usize;
        let mss = self.snd_mss as usize;
        let len = avail.min(room).min(mss);
        let fin = self.fin_queued && len == avail && (!retransmitting || self.snd_max > self.fin_seq());
        let nagle_ok = self.cfg.nodelay || flight == 0 || self.fin_queued;
        let send = fin
            || (len > 0
                && (len == mss
                    || retransmitting
                    || self.force_send
                    || (len == avail && nagle_ok)
                    || (self.max_snd_wnd > 0 && len as u32 >= self.max_snd_wnd / 2)));
        if !send {
            if avail > 0 && flight == 0 && self.rtx_at.is_none() && self.persist_at.is_none() {
                // RFC 9293 §3.8.6.1: "The sending TCP must regularly transmit
                // at least one octet of new data (if available), or [...] a
                // segment [...] to the receiving TCP even if the send window
                // is zero".
                self.persist_at = Some(now + self.rtt.backed_off(self.persist_probes).max(timers::RTO_MIN));
                self.persist_since.get_or_insert(now);
            }
            return None;
        }
        self.force_send = false;
        let idle = now.saturating_duration_since(self.last_send);
        if flight == 0 && idle > self.rtt.rto() {
            // RFC 5681 §4.1: restart from at most the initial window after
            // an idle period longer than the RTO.
            self.cc.after_idle(&mut self.ccs, now, idle);
        }
        let control = if fin { TcpControl::Fin } else { TcpControl::None };
        let seq = self.snd_nxt;
        let seg = self.segment(now, seq, len, control);
        if retransmitting {
            self.counters.total_retrans += 1;
        } else if !self.ts_ok && self.rtt_probe.is_none() && seg.seq_len() > 0 {
            self.rtt_probe = Some((seq, now));
        }
        self.snd_nxt += seg.seq_len();
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.note_sent(now, &seg);
        Some(seg)
    }
}

#[cfg(test)]
#[path = "tcb_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "tcb_autotune_tests.rs"]
mod autotune_tests;
