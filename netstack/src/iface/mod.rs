//! The interface: the stack's core for one Ethernet device.
//!
//! [`Interface::poll`] receives a burst of frames from a [`Nic`], parses and
//! demultiplexes them (ARP, IPv4, IPv6 with extension headers and
//! reassembly, ICMPv4/v6 echo and errors, NDP, UDP), runs the neighbor and
//! reassembly timers, sends what UDP sockets queued (fragmenting when the
//! path MTU demands it), and transmits the burst. Programs' sockets are
//! served through the UDP methods (`udp_*`); what changed for them is
//! reported as [`SocketEvent`]s drained with [`Interface::drain_events`].
//!
//! Like the rest of the core it does no I/O of its own and reads no clock:
//! time comes in as `now`, frames through the [`Nic`], randomness from the
//! seed in [`Config`]. Malformed input is counted in [`Counters`] and
//! dropped; nothing a peer sends can make it panic.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddr};
//! use joyride_netstack::iface::{Config, Family, Interface, Ipv4Cidr};
//! use joyride_netstack::nic::Nic;
//! use joyride_netstack::time::Instant;
//! use joyride_netstack::wire::EthernetAddress;
//!
//! fn serve<N: Nic>(nic: &mut N, now: Instant) {
//!     let mut config = Config::new(EthernetAddress(nic.mac()));
//!     config.ipv4 = Some(Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 10), 24));
//!     config.ipv4_gateway = Some(Ipv4Addr::new(192, 0, 2, 1));
//!     let mut iface = Interface::new(config);
//!
//!     let sock = iface.udp_open(Family::V4);
//!     iface.udp_bind(sock, "0.0.0.0:5353".parse().unwrap()).unwrap();
//!     iface.udp_send_to(sock, b"hello", Some("192.0.2.20:53".parse().unwrap())).unwrap();
//!
//!     iface.poll(now, nic); // receive a burst, run timers, transmit
//!     let ready: Vec<_> = iface.drain_events().filter(|e| e.readable).map(|e| e.handle).collect();
//!     let mut buf = [0u8; 2048];
//!     for h in ready {
//!         while let Ok(meta) = iface.udp_recv_from(h, &mut buf) {
//!             let _from: SocketAddr = meta.from;
//!         }
//!     }
//!     // Sleep until a new frame arrives or `iface.poll_at()`.
//! }
//! ```
//!
//! Packets to the interface's own addresses, and with [`Config::loopback`]
//! to 127.0.0.0/8 and `::1`, never reach the device: they are looped back
//! inside the interface and processed by the next poll (see [`loopback`]).
//!
//! Readiness is edge-triggered: a socket is reported once per change (data
//! arrived, queue has room again, error), and again only after the next
//! drain and a new change.
//!
//! UDP follows Linux, so a trapped program sees what the kernel would give
//! it: bind conflicts and `SO_REUSEADDR`/`SO_REUSEPORT` (same owner),
//! ephemeral ports from 32768-60999, dual-stack IPv6 sockets with
//! `IPV6_V6ONLY`, `SO_BROADCAST`, `SO_RCVBUF`/`SO_SNDBUF` clamping and
//! doubling, truncation of long datagrams, ICMP errors reported by the
//! hard/soft rules of `__udp4_lib_err` (connected sockets get hard errors,
//! `IP_RECVERR` gets all), a pending error returned by the next call,
//! `IP_MTU_DISCOVER` (DF on what fits, local fragmentation of the rest),
//! and the errno of every failure (see [`SocketError`]). Hosts' rules too:
//! no answer to broadcast pings, no ICMP errors about broadcasts or
//! non-initial fragments, source-routed IPv4 dropped, rate-limited errors.
//!
//! Not for: TCP (a later issue plugs it in where `Counters::tcp_unhandled`
//! is counted today), routing between interfaces, DHCP or SLAAC.

mod egress;
mod ingress;
pub mod loopback;
mod ports;
pub mod route;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod checksum_tests;
#[cfg(test)]
mod loopback_tests;
#[cfg(test)]
mod steer_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::neighbor::{NeighborCache, NeighborConfig};
use crate::nic::{Nic, TxMeta};
use crate::reassembly::{Ipv4FragKey, Ipv6FragKey, Reassembler, ReassemblyConfig};
use crate::time::Instant;
use crate::wire::ipv6::addr as v6addr;
use crate::wire::EthernetAddress;

pub use route::{Ipv4Cidr, Ipv4Route, Ipv4Routes, Ipv6Cidr};
pub use tcp::{TcpConfig, TcpCounters};
pub use udp::{Datagram, Family, RecvMeta, SendOpts, UdpConfig};

use udp::{canonical, TxDatagram, UdpTable};

/// How the interface is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our Ethernet address.
    pub mac: EthernetAddress,
    /// IPv4 address and prefix (the prefix is the connected subnet).
    pub ipv4: Option<Ipv4Cidr>,
    /// IPv4 default gateway.
    pub ipv4_gateway: Option<Ipv4Addr>,
    /// IPv6 addresses besides the link-local one, which is always derived
    /// from `mac` (modified EUI-64) and added.
    pub ipv6: Vec<Ipv6Cidr>,
    /// IPv6 default router.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// Largest IP packet to send (the smaller of this and the device's MTU
    /// is used).
    pub mtu: usize,
    /// TTL / hop limit of packets we originate.
    pub hop_limit: u8,
    /// Seed for everything random (ephemeral ports, IP identifications).
    pub seed: u64,
    /// The secret of TCP's initial sequence numbers, timestamp offsets and
    /// SYN cookies (RFC 6528), if it must outlive this interface: a stack
    /// that restarts keeps the kernel peers' TIME_WAIT states happy only if
    /// a connection's ISN and timestamps keep growing across the restart
    /// (same secret, and a clock that does not restart either, as
    /// [`SystemClock`](crate::time::SystemClock)). `None`: derived from
    /// `seed`.
    pub tcp_secret: Option<[u8; 16]>,
    /// UDP socket limits.
    pub udp: UdpConfig,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// ICMP errors we may send per second (token bucket refill rate).
    pub icmp_error_rate: u32,
    /// ICMP errors we may send in a burst.
    pub icmp_error_burst: u32,
    /// Neighbor cache tunables (ARP and NDP).
    pub neighbor: NeighborConfig,
    /// IPv4 reassembly limits.
    pub reassembly_v4: ReassemblyConfig,
    /// IPv6 reassembly limits.
    pub reassembly_v6: ReassemblyConfig,
    /// Frames held for the device when it is busy. TCP connections and UDP
    /// sockets stop handing the interface frames at this many (they keep
    /// their data and resume once the device took some); control frames
    /// (ARP, NDP, ICMP, RSTs and SYN-ACKs for no connection) may use
    /// [`TX_CONTROL_RESERVE`] more, and beyond that are dropped and counted
    /// (`drop_tx_queue_full`).
    pub tx_queue_frames: usize,
    /// Destinations whose path MTU is remembered.
    pub pmtu_entries: usize,
    /// How long a learned path MTU is remembered (Linux `mtu_expires`, 600 s).
    pub pmtu_timeout: core::time::Duration,
    /// This interface is one shard of several sharing one address and one
    /// TCP port space (see [`crate::steer`]): TCP ports are registered in
    /// the shared table as they are bound and released as they are freed,
    /// a bind of a port another shard holds fails with `EADDRINUSE`, and
    /// `connect` picks an ephemeral port whose hash names this shard.
    /// `None` (the default): a single stack, owning every port.
    pub steering: Option<crate::steer::Steering>,
    /// Serve loopback (see [`loopback`]): 127.0.0.0/8 and `::1` become
    /// local addresses of the interface (bound, connected and sent to; a
    /// wildcard socket receives on them), and packets to them are looped
    /// back inside the interface as Linux's `lo` does. Off (the default):
    /// binding them fails with `EADDRNOTAVAIL` and sending to them with
    /// `ENETUNREACH`. Traffic to the interface's own configured addresses
    /// is looped back either way.
    pub loopback: bool,
}

impl Config {
    /// Defaults for an interface with Ethernet address `mac` and no IP
    /// address yet.
    pub fn new(mac: EthernetAddress) -> Self {
        Config {
            mac,
            ipv4: None,
            ipv4_gateway: None,
            ipv6: Vec::new(),
            ipv6_gateway: None,
            mtu: 1500,
            hop_limit: 64,
            seed: 0x6a6f_7972_6964_6521,
            tcp_secret: None,
            udp: UdpConfig::default(),
            tcp: TcpConfig::default(),
            icmp_error_rate: 1000,
            icmp_error_burst: 50,
            neighbor: NeighborConfig::default(),
            // An IPv4 datagram is at most 65535 bytes with its (20-byte)
            // header, so its payload at most 65515 (Linux ip_frag_reasm).
            reassembly_v4: ReassemblyConfig {
                max_len: 65535 - 20,
                ..ReassemblyConfig::ipv4()
            },
            reassembly_v6: ReassemblyConfig::ipv6(),
            tx_queue_frames: 4096,
            pmtu_entries: 1024,
            pmtu_timeout: core::time::Duration::from_secs(600),
            steering: None,
            loopback: false,
        }
    }
}

/// Names one socket. Handles of closed sockets stay invalid even when the
/// slot is reused (a generation number tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    index: u32,
    gen: u32,
    tcp: bool,
}

impl SocketHandle {
    /// Whether it names a TCP socket (else UDP).
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }
}

/// Why a socket call failed. Each has the errno Linux would return, which
/// the supervisor maps in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketError {
    /// No such socket (`EBADF`).
    BadHandle,
    /// Address already in use (`EADDRINUSE`).
    AddrInUse,
    /// Not one of our addresses (`EADDRNOTAVAIL`).
    AddrNotAvailable,
    /// Address of the wrong family (`EAFNOSUPPORT`).
    AddressFamily,
    /// Invalid in this state, e.g. bound twice (`EINVAL`).
    InvalidState,
    /// Invalid argument, e.g. port 0 as destination (`EINVAL`).
    InvalidArgument,
    /// No destination and not connected (`EDESTADDRREQ`).
    DestinationRequired,
    /// Nothing to receive, or the send queue is full (`EAGAIN`).
    WouldBlock,
    /// Datagram too long (`EMSGSIZE`).
    MessageTooLong,
    /// No route to the network (`ENETUNREACH`).
    NetworkUnreachable,
    /// The host did not answer or is unreachable (`EHOSTUNREACH`).
    HostUnreachable,
    /// The peer's port is closed (`ECONNREFUSED`).
    ConnectionRefused,
    /// The peer does not speak the protocol (`ENOPROTOOPT`).
    ProtocolUnavailable,
    /// Broadcast without `SO_BROADCAST` (`EACCES`).
    PermissionDenied,
    /// The peer reported a malformed packet (`EPROTO`).
    ProtocolError,
    /// Source route failed (`EOPNOTSUPP`).
    NotSupported,
    /// Destination host unknown (`EHOSTDOWN`).
    HostDown,
    /// Source host isolated (`ENONET`).
    NoNetwork,
    /// The peer reset the connection (`ECONNRESET`).
    ConnectionReset,
    /// The connection timed out (`ETIMEDOUT`).
    TimedOut,
    /// Writing was shut down, or the socket is not connected (`EPIPE`).
    BrokenPipe,
    /// The socket is not connected (`ENOTCONN`).
    NotConnected,
    /// The socket is already connected (`EISCONN`).
    IsConnected,
    /// A connect is already in progress (`EALREADY`).
    AlreadyInProgress,
    /// No such thing, e.g. congestion control module (`ENOENT`).
    NotFound,
}

impl SocketError {
    /// The errno Linux returns for it (positive, as in `errno`).
    pub fn errno(&self) -> i32 {
        match self {
            SocketError::BadHandle => libc::EBADF,
            SocketError::AddrInUse => libc::EADDRINUSE,
            SocketError::AddrNotAvailable => libc::EADDRNOTAVAIL,
            SocketError::AddressFamily => libc::EAFNOSUPPORT,
            SocketError::InvalidState | SocketError::InvalidArgument => libc::EINVAL,
            SocketError::DestinationRequired => libc::EDESTADDRREQ,
            SocketError::WouldBlock => libc::EAGAIN,
            SocketError::MessageTooLong => libc::EMSGSIZE,
            SocketError::NetworkUnreachable => libc::ENETUNREACH,
            SocketError::HostUnreachable => libc::EHOSTUNREACH,
            SocketError::ConnectionRefused => libc::ECONNREFUSED,
            SocketError::ProtocolUnavailable => libc::ENOPROTOOPT,
            SocketError::PermissionDenied => libc::EACCES,
            SocketError::ProtocolError => libc::EPROTO,
            SocketError::NotSupported => libc::EOPNOTSUPP,
            SocketError::HostDown => libc::EHOSTDOWN,
            SocketError::NoNetwork => libc::ENONET,
            SocketError::ConnectionReset => libc::ECONNRESET,
            SocketError::TimedOut => libc::ETIMEDOUT,
            SocketError::BrokenPipe => libc::EPIPE,
            SocketError::NotConnected => libc::ENOTCONN,
            SocketError::IsConnected => libc::EISCONN,
            SocketError::AlreadyInProgress => libc::EALREADY,
            SocketError::NotFound => libc::ENOENT,
        }
    }

    /// The error with this errno, for the errnos ICMP errors map to.
    pub fn from_errno(errno: i32) -> Option<SocketError> {
        use SocketError as E;
        [
            E::NetworkUnreachable,
            E::HostUnreachable,
            E::ConnectionRefused,
            E::ProtocolUnavailable,
            E::MessageTooLong,
            E::PermissionDenied,
            E::ProtocolError,
            E::NotSupported,
            E::HostDown,
            E::NoNetwork,
            E::ConnectionReset,
            E::TimedOut,
        ]
        .into_iter()
        .find(|e| e.errno() == errno)
    }
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?} (errno {})", self.errno())
    }
}

impl std::error::Error for SocketError {}

/// Which ICMP error arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpErrorKind {
    /// Network unreachable.
    NetUnreachable,
    /// Host or address unreachable (also: our own neighbor resolution failed).
    HostUnreachable,
    /// Protocol unreachable.
    ProtocolUnreachable,
    /// Port unreachable.
    PortUnreachable,
    /// Fragmentation needed / packet too big; the path MTU it reported.
    PacketTooBig(u32),
    /// Time (hop limit or reassembly) exceeded.
    TimeExceeded,
    /// ICMPv6 parameter problem.
    ParameterProblem,
    /// Communication administratively prohibited, or another code.
    Other {
        /// ICMP type.
        msg_type: u8,
        /// ICMP code.
        code: u8,
    },
}

impl IcmpErrorKind {
    /// The errno Linux reports for it, and whether the error is "hard"
    /// (reported on a connected socket even without `IP_RECVERR`): Linux's
    /// `icmp_err_convert` and `icmpv6_err_convert` tables as
    /// `__udp4_lib_err`/`__udp6_lib_err` use them. "Too big" is hard unless
    /// the socket's path MTU discovery is [`PmtuDiscovery::Dont`], which the
    /// caller decides.
    pub fn linux_error(&self) -> (SocketError, bool) {
        use SocketError as E;
        match *self {
            IcmpErrorKind::NetUnreachable => (E::NetworkUnreachable, false),
            IcmpErrorKind::HostUnreachable => (E::HostUnreachable, false),
            IcmpErrorKind::ProtocolUnreachable => (E::ProtocolUnavailable, true),
            IcmpErrorKind::PortUnreachable => (E::ConnectionRefused, true),
            IcmpErrorKind::PacketTooBig(_) => (E::MessageTooLong, true),
            IcmpErrorKind::TimeExceeded => (E::HostUnreachable, false),
            IcmpErrorKind::ParameterProblem => (E::ProtocolError, true),
            // ICMPv4 destination unreachable, the other codes.
            IcmpErrorKind::Other { msg_type: 3, code } => match code {
                5 => (E::NotSupported, false),
                6 | 9 => (E::NetworkUnreachable, true),
                7 => (E::HostDown, true),
                8 => (E::NoNetwork, true),
                11 => (E::NetworkUnreachable, false),
                12 => (E::HostUnreachable, false),
                10 | 13..=15 => (E::HostUnreachable, true),
                _ => (E::HostUnreachable, false),
            },
            // ICMPv6 destination unreachable, the other codes.
            IcmpErrorKind::Other { msg_type: 1, code } => match code {
                1 | 5 | 6 => (E::PermissionDenied, true),
                2 => (E::HostUnreachable, false),
                _ => (E::ProtocolError, true),
            },
            IcmpErrorKind::Other { .. } => (E::ProtocolError, true),
        }
    }
}

/// Path MTU discovery for a socket's datagrams (`IP_MTU_DISCOVER`,
/// `IPV6_MTU_DISCOVER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PmtuDiscovery {
    /// `IP_PMTUDISC_DONT`: never set DF; fragment locally; "too big" is not
    /// an error.
    Dont,
    /// `IP_PMTUDISC_WANT` (Linux's default): DF on what fits the path MTU,
    /// fragment locally what does not.
    #[default]
    Want,
    /// `IP_PMTUDISC_DO`: always DF, never fragment locally; a datagram
    /// larger than the path MTU fails with `EMSGSIZE`.
    Do,
}

/// An ICMP error about a datagram a socket sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// What went wrong.
    pub kind: IcmpErrorKind,
    /// Who reported it (ourselves for failed neighbor resolution).
    pub reporter: IpAddr,
    /// Where the offending datagram was going.
    pub dst: SocketAddr,
}

/// What changed for a socket since the last drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEvent {
    /// The socket.
    pub handle: SocketHandle,
    /// Datagrams arrived.
    pub readable: bool,
    /// The send queue has room again after a send would have blocked.
    pub writable: bool,
    /// An error is pending (`SO_ERROR`) or queued (`IP_RECVERR`).
    pub error: bool,
}

/// Frames the transmit queue holds beyond [`Config::tx_queue_frames`] for
/// control traffic (ARP, NDP, ICMP, RSTs, SYN-ACKs), which has no
/// connection to wait in: a queue full of one connection's data still
/// lets a handshake or a reset through.
pub const TX_CONTROL_RESERVE: usize = 256;

const EV_READABLE: u8 = 1;
const EV_WRITABLE: u8 = 2;
const EV_ERROR: u8 = 4;

/// Counters for everything received, sent and dropped; every drop has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Dropped: frame shorter than an Ethernet header.
    pub drop_eth_truncated: u64,
    /// Dropped: frame addressed to another station.
    pub drop_eth_not_for_us: u64,
    /// Dropped: EtherType we do not handle (VLAN tags included).
    pub drop_eth_unknown_type: u64,
    /// Dropped: ARP packet truncated or not Ethernet/IPv4.
    pub drop_arp_malformed: u64,
    /// Dropped: ARP not about our address.
    pub drop_arp_not_for_us: u64,
    /// ARP requests answered.
    pub arp_replies_sent: u64,
    /// Dropped: IPv4 header truncated, IHL < 5, lengths inconsistent, bad
    /// version, malformed options.
    pub drop_ipv4_malformed: u64,
    /// Dropped: IPv4 header checksum.
    pub drop_ipv4_checksum: u64,
    /// Dropped: IPv4 packet for another host.
    pub drop_ipv4_not_for_us: u64,
    /// Dropped: IPv4 source address multicast, broadcast or ours.
    pub drop_ipv4_bad_src: u64,
    /// Dropped: IPv4 source-routed (hosts do not accept source routes, as
    /// Linux with `accept_source_route = 0`).
    pub drop_ipv4_source_route: u64,
    /// Dropped: IPv4 fragment refused by reassembly.
    pub drop_ipv4_fragment: u64,
    /// IPv4 datagrams reassembled.
    pub ipv4_reassembled: u64,
    /// Dropped: IPv6 header or extension header truncated or malformed.
    pub drop_ipv6_malformed: u64,
    /// Dropped: IPv6 packet for another host.
    pub drop_ipv6_not_for_us: u64,
    /// Dropped: IPv6 source multicast.
    pub drop_ipv6_bad_src: u64,
    /// Dropped: IPv6 option or routing header says discard.
    pub drop_ipv6_ext_discard: u64,
    /// Dropped: IPv6 fragment refused by reassembly.
    pub drop_ipv6_fragment: u64,
    /// IPv6 datagrams reassembled.
    pub ipv6_reassembled: u64,
    /// Dropped: ICMP truncated or malformed.
    pub drop_icmp_malformed: u64,
    /// Dropped: ICMP checksum.
    pub drop_icmp_checksum: u64,
    /// Dropped: ICMP type we do not handle.
    pub drop_icmp_unsupported: u64,
    /// Echo requests answered.
    pub icmp_echo_replies_sent: u64,
    /// ICMP errors sent.
    pub icmp_errors_sent: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_errors_rate_limited: u64,
    /// ICMP errors received and delivered to a socket.
    pub icmp_errors_delivered: u64,
    /// Dropped: ICMP error about nothing we have a socket for.
    pub drop_icmp_error_no_socket: u64,
    /// Dropped: NDP message failing validation (hop limit, target, options).
    pub drop_ndp_invalid: u64,
    /// Neighbor solicitations answered.
    pub ndp_adverts_sent: u64,
    /// Dropped: UDP truncated or length field wrong, or port 0.
    pub drop_udp_malformed: u64,
    /// Dropped: UDP checksum.
    pub drop_udp_checksum: u64,
    /// Dropped: TCP or UDP (IPv4 or IPv6) whose checksum field held only
    /// the pseudo-header sum, as a Linux sender leaves it for offload
    /// (`CHECKSUM_PARTIAL`) when nothing completed it: typically a veth
    /// peer with tx checksumming on (`ethtool -K <peer> tx off` fixes it).
    /// Counted instead of `drop_udp_checksum` and TCP's `drop_checksum`.
    pub drop_partial_checksum: u64,
    /// Dropped: no socket on the port.
    pub drop_udp_no_socket: u64,
    /// Dropped: the socket's receive queue was full.
    pub drop_udp_queue_full: u64,
    /// UDP datagrams delivered to sockets.
    pub udp_rx_datagrams: u64,
    /// UDP datagrams sent.
    pub udp_tx_datagrams: u64,
    /// Dropped: other IP protocols.
    pub drop_unknown_protocol: u64,
    /// Dropped on output: no route.
    pub drop_tx_no_route: u64,
    /// Dropped on output: neighbor queue full or resolution failed.
    pub drop_tx_neighbor: u64,
    /// Dropped on output: device queue and our queue, with its control
    /// reserve, were full.
    pub drop_tx_queue_full: u64,
    /// Dropped on output: too big and DF set.
    pub drop_tx_too_big: u64,
    /// Packets to a local address, looped back and processed as received
    /// (counted in neither `rx_frames` nor `tx_frames`).
    pub loopback_frames: u64,
}

/// A frame waiting for the device: Ethernet header and IP packet.
#[derive(Debug)]
pub(crate) struct OutFrame {
    data: Vec<u8>,
    meta: TxMeta,
}

/// SplitMix64: small, seeded, good enough for ports and identifications.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Token bucket for the ICMP errors we send.
#[derive(Debug, Clone)]
struct RateLimiter {
    /// Millionths of a token.
    micro_tokens: u64,
    last: Instant,
    rate: u64,
    burst: u64,
}

impl RateLimiter {
    fn new(rate: u32, burst: u32) -> Self {
        RateLimiter {
            micro_tokens: burst as u64 * 1_000_000,
            last: Instant::ZERO,
            rate: rate as u64,
            burst: burst as u64,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let dt = now
            .saturating_duration_since(self.last)
            .as_nanos()
            .min(u64::MAX as u128) as u64;
        self.last = self.last.max(now);
        let add = (dt / 1000).saturating_mul(self.rate);
        self.micro_tokens = self.micro_tokens.saturating_add(add).min(self.burst * 1_000_000);
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

/// The stack core for one Ethernet device; see the module docs.
#[derive(Debug)]
pub struct Interface {
    config: Config,
    link_local: Ipv6Addr,
    routes: Ipv4Routes,
    mtu: usize,
    caps_checksum: crate::nic::ChecksumCaps,
    arp: NeighborCache<Ipv4Addr, EthernetAddress, OutFrame>,
    ndp: NeighborCache<Ipv6Addr, EthernetAddress, OutFrame>,
    reasm_v4: Reassembler<Ipv4FragKey>,
    reasm_v6: Reassembler<Ipv6FragKey>,
    udp: UdpTable,
    tcp: tcp::TcpLayer,
    tcp_counters: TcpCounters,
    /// Sockets with datagrams queued to send, in order.
    tx_pending: VecDeque<u32>,
    events: VecDeque<SocketHandle>,
    outbox: VecDeque<OutFrame>,
    pool: Vec<Vec<u8>>,
    pmtu: HashMap<IpAddr, (usize, Instant)>,
    rng: Rng,
    ipv4_ident: u16,
    ipv6_ident: u32,
    icmp_limit: RateLimiter,
    counters: Counters,
    scratch: Vec<u32>,
    /// The time of the last poll, for calls that take no `now`.
    last_now: Instant,
    /// The start of first fragments of datagrams being reassembled.
    frag_quotes: FragQuotes,
    /// Packets to local addresses, waiting to be processed as received.
    loopback: loopback::Loopback,
}

/// Names a datagram being reassembled, of either version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FragKey {
    V4(Ipv4FragKey),
    V6(Ipv6FragKey),
}

/// The first bytes of the first fragment of datagrams in reassembly, to
/// quote in a Time Exceeded if they never complete. Bounded: the oldest is
/// forgotten first (a datagram the reassembler discarded leaves its quote
/// here until pushed out).
#[derive(Debug, Default)]
pub(crate) struct FragQuotes {
    quotes: HashMap<FragKey, Vec<u8>>,
    order: VecDeque<FragKey>,
    cap: usize,
}

impl FragQuotes {
    fn new(cap: usize) -> Self {
        FragQuotes {
            cap,
            ..Default::default()
        }
    }

    pub(crate) fn remember(&mut self, key: FragKey, bytes: &[u8]) {
        if self.cap == 0 || self.quotes.contains_key(&key) {
            return;
        }
        // `order` may hold keys already forgotten (removal is lazy); they
        // are skipped here and pruned when `order` grows too long.
        while self.quotes.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.quotes.remove(&old);
                }
                None => break,
            }
        }
        if self.order.len() >= 2 * self.cap {
            let quotes = &self.quotes;
            self.order.retain(|k| quotes.contains_key(k));
        }
        self.quotes.insert(key, bytes.to_vec());
        self.order.push_back(key);
    }

    pub(crate) fn forget(&mut self, key: &FragKey) -> Option<Vec<u8>> {
        self.quotes.remove(key)
    }
}

impl Interface {
    /// An interface with `config`. The connected IPv4 subnet and the default
    /// gateway become routes.
    pub fn new(config: Config) -> Self {
        let mut routes = Ipv4Routes::new();
        if let Some(c) = config.ipv4 {
            routes.add(Ipv4Route { dst: c, via: None });
        }
        if let Some(gw) = config.ipv4_gateway {
            routes.add(Ipv4Route {
                dst: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
                via: Some(gw),
            });
        }
        let mut rng = Rng(config.seed);
        let ipv4_ident = rng.next_u64() as u16;
        let ipv6_ident = rng.next_u64() as u32;
        let mut tcp_secret = [0u8; 16];
        tcp_secret[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        tcp_secret[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let tcp_secret = config.tcp_secret.unwrap_or(tcp_secret);
        Interface {
            link_local: v6addr::link_local_from_mac(config.mac),
            routes,
            mtu: config.mtu,
            caps_checksum: Default::default(),
            arp: NeighborCache::new(config.neighbor),
            ndp: NeighborCache::new(config.neighbor),
            reasm_v4: Reassembler::new(config.reassembly_v4),
            reasm_v6: Reassembler::new(config.reassembly_v6),
            udp: UdpTable::udp(config.udp.clone()),
            tcp: tcp::TcpLayer::new(config.tcp.clone(), tcp_secret, config.steering.clone()),
            tcp_counters: TcpCounters::default(),
            tx_pending: VecDeque::new(),
            events: VecDeque::new(),
            outbox: VecDeque::new(),
            pool: Vec::new(),
            pmtu: HashMap::new(),
            rng,
            ipv4_ident,
            ipv6_ident,
            icmp_limit: RateLimiter::new(config.icmp_error_rate, config.icmp_error_burst),
            counters: Counters::default(),
            scratch: Vec::new(),
            last_now: Instant::ZERO,
            frag_quotes: FragQuotes::new(config.reassembly_v4.max_datagrams + config.reassembly_v6.max_datagrams),
            loopback: loopback::Loopback::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The IPv4 routing table (connected subnet and default gateway are in
    /// it from the start).
    pub fn routes_mut(&mut self) -> &mut Ipv4Routes {
        &mut self.routes
    }

    /// Our link-local IPv6 address.
    pub fn ipv6_link_local(&self) -> Ipv6Addr {
        self.link_local
    }

    /// The ARP cache (for diagnostics and static entries).
    pub fn arp_cache(&mut self) -> &mut NeighborCache<Ipv4Addr, EthernetAddress, impl Sized> {
        &mut self.arp
    }

    /// The NDP neighbor cache (for diagnostics and static entries).
    pub fn ndp_cache(&mut self) -> &mut NeighborCache<Ipv6Addr, EthernetAddress, impl Sized> {
        &mut self.ndp
    }

    /// IPv4 reassembly statistics.
    pub fn reassembly_v4_stats(&self) -> &crate::reassembly::ReassemblyStats {
        self.reasm_v4.stats()
    }

    /// IPv6 reassembly statistics.
    pub fn reassembly_v6_stats(&self) -> &crate::reassembly::ReassemblyStats {
        self.reasm_v6.stats()
    }

    /// Whether `a` is one of our configured IPv4 addresses (loopback ones
    /// not included: see [`Interface::is_local_addr`]).
    pub fn has_ipv4(&self, a: Ipv4Addr) -> bool {
        self.config.ipv4.is_some_and(|c| c.addr == a)
    }

    /// Whether `a` is one of our configured IPv6 unicast addresses (`::1`
    /// not included: see [`Interface::is_local_addr`]).
    pub fn has_ipv6(&self, a: Ipv6Addr) -> bool {
        a == self.link_local || self.config.ipv6.iter().any(|c| c.addr == a)
    }

    /// The path MTU towards `dst`: what an ICMP "fragmentation needed" or
    /// "packet too big" taught us, or the link MTU.
    /// Never below the protocol's minimum (68 for IPv4, 1280 for IPv6), even
    /// on a device that claims a smaller MTU. Towards a local address, the
    /// loopback MTU (Linux's `lo`: 65536, for IPv4 65535).
    pub fn path_mtu(&self, now: Instant, dst: IpAddr) -> usize {
        if self.is_local_addr(dst) {
            return if canonical_ip(dst).is_ipv4() {
                loopback::LOOPBACK_MTU_V4
            } else {
                loopback::LOOPBACK_MTU_V6
            };
        }
        let floor = if dst.is_ipv4() {
            crate::wire::ipv4::MIN_MTU
        } else {
            crate::wire::ipv6::MIN_MTU
        };
        let m = match self.pmtu.get(&canonical_ip(dst)) {
            Some(&(m, exp)) if exp > now => m.min(self.mtu),
            _ => self.mtu,
        };
        m.max(floor)
    }

    /// One turn of the loop: receive up to one burst from `nic` and process
    /// it, process looped packets (see [`loopback`]), run timers due at
    /// `now`, send what sockets queued, transmit. Returns the number of
    /// frames received plus looped packets processed.
    pub fn poll<N: Nic>(&mut self, now: Instant, nic: &mut N) -> usize {
        self.last_now = self.last_now.max(now);
        let caps = nic.capabilities();
        self.mtu = self.config.mtu.min(caps.mtu);
        self.caps_checksum = caps.checksum;
        let max = caps.max_burst.max(1);
        let n = nic.receive(max, |frame, meta| {
            self.process_frame(now, frame, meta, loopback::Origin::Wire)
        });
        self.counters.rx_frames += n as u64;
        self.tcp_after_burst(now);
        let looped = self.process_looped(now);
        self.run_timers(now);
        self.send_blocked(now);
        // Resolution requests for what was just sent.
        self.drain_neighbor_events(now);
        self.flush_outbox(nic);
        // The device took frames: what waited for room goes now.
        if self.tx_waiting() && self.tx_room() {
            self.send_blocked(now);
            self.drain_neighbor_events(now);
            self.flush_outbox(nic);
        }
        n + looped
    }

    /// Sends what waited for room in the transmit queue: TCP connections
    /// first, oldest first, then UDP sockets' datagrams.
    fn send_blocked(&mut self, now: Instant) {
        self.resume_tcp_tx(now);
        self.send_queued(now);
    }

    /// Whether a socket waits for room in the transmit queue.
    fn tx_waiting(&self) -> bool {
        !self.tx_pending.is_empty() || self.tcp.tx_blocked_any()
    }

    /// Whether TCP connections and UDP sockets may queue another frame
    /// (for the device or looped back: both queues count).
    pub(crate) fn tx_room(&self) -> bool {
        self.outbox.len() + self.loopback.len() < self.config.tx_queue_frames.max(1)
    }

    /// When [`Interface::poll`] should run again even if no frame arrives:
    /// `Some(t)` at or after `t`, `None` only on new frames or socket calls.
    /// [`Instant::ZERO`] (at once) while frames wait for the device, looped
    /// packets wait to be processed, or sockets wait for room to send.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.outbox.is_empty() || self.loopback.len() > 0 || self.tx_waiting() {
            return Some(Instant::ZERO);
        }
        [
            self.arp.poll_at(),
            self.ndp.poll_at(),
            self.reasm_v4.poll_at(),
            self.reasm_v6.poll_at(),
            self.tcp.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn run_timers(&mut self, now: Instant) {
        self.reasm_v4.poll(now);
        self.reasm_v6.poll(now);
        // Reassembly timeouts whose first fragment arrived: "fragment
        // reassembly time exceeded" to the sender (RFC 792, RFC 4443 3.3).
        while let Some(e) = self.reasm_v4.pop_expired() {
            if let Some(q) = self.frag_quotes.forget(&FragKey::V4(e.key)) {
                self.send_reassembly_timeout(now, &q);
            }
        }
        while let Some(e) = self.reasm_v6.pop_expired() {
            if let Some(q) = self.frag_quotes.forget(&FragKey::V6(e.key)) {
                self.send_reassembly_timeout(now, &q);
            }
        }
        self.run_tcp_timers(now);
        self.drain_neighbor_events(now);
        if self.pmtu.len() > self.config.pmtu_entries / 2 {
            self.pmtu.retain(|_, (_, exp)| *exp > now);
        }
    }

    /// Drains what changed for sockets since the last call: one event per
    /// socket, with every reason that applies.
    pub fn drain_events(&mut self) -> impl Iterator<Item = SocketEvent> + '_ {
        let (udp, tcp) = (&mut self.udp, &mut self.tcp.table);
        self.events.drain(..).filter_map(move |h| {
            let ev = if h.tcp {
                core::mem::take(&mut tcp.get_mut(h).ok()?.events)
            } else {
                core::mem::take(&mut udp.get_mut(h).ok()?.events)
            };
            if ev == 0 {
                return None;
            }
            Some(SocketEvent {
                handle: h,
                readable: ev & EV_READABLE != 0,
                writable: ev & EV_WRITABLE != 0,
                error: ev & EV_ERROR != 0,
            })
        })
    }

    fn notify(&mut self, index: u32, ev: u8) {
        let h = self.udp.handle_of(index);
        if let Some(s) = self.udp.by_index_mut(index) {
            if s.events == 0 {
                self.events.push_back(h);
            }
            s.events |= ev;
        }
    }

    // ---------------------------------------------------------------------
    // UDP sockets.

    /// Opens a UDP socket of `family` (`socket(AF_INET[6], SOCK_DGRAM, 0)`).
    pub fn udp_open(&mut self, family: Family) -> SocketHandle {
        self.udp.open(family)
    }

    /// Closes a socket. Datagrams its sends queued go out first (the sends
    /// succeeded); what it received and nobody read is discarded.
    pub fn udp_close(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        if self.udp.get(h).is_ok_and(|s| !s.tx.is_empty()) {
            self.flush_udp(self.last_now, h.index);
        }
        self.udp.close(h)
    }

    /// Sets `SO_REUSEADDR` (before bind).
    pub fn udp_set_reuse_addr(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.ends.reuse_addr = on;
        Ok(())
    }

    /// Sets `SO_REUSEPORT` (before bind).
    pub fn udp_set_reuse_port(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.ends.reuse_port = on;
        Ok(())
    }

    /// Sets who owns the socket (the program's effective uid): `SO_REUSEPORT`
    /// shares a port only between sockets of the same owner, as on Linux.
    pub fn udp_set_owner(&mut self, h: SocketHandle, uid: u32) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.ends.owner = uid;
        Ok(())
    }

    /// Sets `SO_RCVBUF` as Linux does: the request is clamped to
    /// [`UdpConfig::max_buffer_request`], doubled (for bookkeeping
    /// overhead), and at least 2304 bytes. Returns what `getsockopt` then
    /// reports. Here it bounds the payload bytes queued.
    pub fn udp_set_recv_buffer(&mut self, h: SocketHandle, bytes: usize) -> Result<usize, SocketError> {
        let v = (bytes.min(self.udp.config.max_buffer_request) * 2).max(2304);
        self.udp.get_mut(h)?.rx_limit = v;
        Ok(v)
    }

    /// Sets `SO_SNDBUF` as Linux does (clamped, doubled, at least 4608).
    /// Returns what `getsockopt` then reports.
    pub fn udp_set_send_buffer(&mut self, h: SocketHandle, bytes: usize) -> Result<usize, SocketError> {
        let v = (bytes.min(self.udp.config.max_buffer_request) * 2).max(4608);
        self.udp.get_mut(h)?.tx_limit = v;
        Ok(v)
    }

    /// `getsockopt(SO_RCVBUF)` and `getsockopt(SO_SNDBUF)`.
    pub fn udp_buffer_sizes(&self, h: SocketHandle) -> Result<(usize, usize), SocketError> {
        let s = self.udp.get(h)?;
        Ok((s.rx_limit, s.tx_limit))
    }

    /// Payload bytes queued to receive and to send (`FIONREAD` counts the
    /// next datagram, see [`Interface::udp_peek_len`]; `SIOCOUTQ`).
    pub fn udp_queued(&self, h: SocketHandle) -> Result<(usize, usize), SocketError> {
        let s = self.udp.get(h)?;
        Ok((s.rx_bytes, s.tx_bytes))
    }

    /// Sets path MTU discovery (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`).
    pub fn udp_set_pmtu_discovery(&mut self, h: SocketHandle, mode: PmtuDiscovery) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.pmtu_discovery = mode;
        Ok(())
    }

    /// Sets the TTL / hop limit of unicast datagrams (`IP_TTL`,
    /// `IPV6_UNICAST_HOPS`); `None` restores the interface default.
    pub fn udp_set_hop_limit(&mut self, h: SocketHandle, hop_limit: Option<u8>) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.hop_limit = hop_limit;
        Ok(())
    }

    /// Sets the TOS byte of the socket's IPv4 datagrams (`IP_TOS`).
    pub fn udp_set_tos(&mut self, h: SocketHandle, tos: u8) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.tos = tos;
        Ok(())
    }

    /// Sets the traffic class of the socket's IPv6 datagrams
    /// (`IPV6_TCLASS`).
    pub fn udp_set_tclass(&mut self, h: SocketHandle, tclass: u8) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.tclass = tclass;
        Ok(())
    }

    /// Sets `SO_BROADCAST`: without it, sending or connecting to a broadcast
    /// address fails with `EACCES`, as on Linux.
    pub fn udp_set_broadcast(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.broadcast = on;
        Ok(())
    }

    fn is_broadcast_v4(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => a.is_broadcast() || self.config.ipv4.and_then(|c| c.broadcast()) == Some(a),
            IpAddr::V6(_) => false,
        }
    }

    /// Sets `IP_RECVERR`: ICMP errors are queued for
    /// [`Interface::udp_recv_error`] even on unconnected sockets.
    pub fn udp_set_recv_err(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        let s = self.udp.get_mut(h)?;
        s.recv_err = on;
        if !on {
            s.errqueue.clear();
        }
        Ok(())
    }

    /// Sets `IPV6_V6ONLY` (IPv6 sockets, before bind).
    pub fn udp_set_v6only(&mut self, h: SocketHandle, on: bool) -> Result<(), SocketError> {
        self.udp.get_mut(h)?.ends.set_v6only(on)
    }

    /// Binds to `addr` (`bind`). Port 0 picks a free ephemeral port. The
    /// address must be ours or unspecified. Returns the bound address as the
    /// socket's family shows it.
    pub fn udp_bind(&mut self, h: SocketHandle, addr: SocketAddr) -> Result<SocketAddr, SocketError> {
        let a = self.check_bind_addr(self.udp.get(h)?.ends.family, addr)?;
        let start = self.rng.next_u64() as u16;
        let ephemeral = self.udp.config.ephemeral_ports;
        let bound = self.udp.bind(h, a, ephemeral, start, true)?;
        Ok(self.udp.get(h)?.present(bound))
    }

    /// The canonical form of `addr` if a socket of `family` may bind it:
    /// its family fits and it is ours or unspecified.
    fn check_bind_addr(&self, family: Family, addr: SocketAddr) -> Result<SocketAddr, SocketError> {
        let a = canonical(addr);
        if matches!((family, addr), (Family::V4, SocketAddr::V6(_))) {
            return Err(SocketError::AddressFamily);
        }
        if matches!((family, a), (Family::V6 { v6only: true }, SocketAddr::V4(_))) {
            return Err(SocketError::AddressFamily);
        }
        if !a.ip().is_unspecified() && !self.is_local_addr(a.ip()) {
            return Err(SocketError::AddrNotAvailable);
        }
        Ok(a)
    }

    fn autobind(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        let start = self.rng.next_u64() as u16;
        let ephemeral = self.udp.config.ephemeral_ports;
        self.udp.autobind(h, ephemeral, start)
    }

    /// Connects to `remote` (`connect`): binds an ephemeral port if needed,
    /// picks the source address, and from then on receives only from
    /// `remote`.
    pub fn udp_connect(&mut self, h: SocketHandle, remote: SocketAddr) -> Result<(), SocketError> {
        let r = canonical(remote);
        if r.port() == 0 {
            return Err(SocketError::InvalidArgument);
        }
        let s = self.udp.get(h)?;
        if !s.can_reach(&r) {
            return Err(SocketError::AddressFamily);
        }
        if !s.broadcast && self.is_broadcast_v4(r.ip()) {
            return Err(SocketError::PermissionDenied);
        }
        if let Some(l) = s.ends.local {
            self.check_loopback_source(l.ip(), r.ip())?;
        }
        let src = self.source_for(r.ip()).ok_or(SocketError::NetworkUnreachable)?;
        self.autobind(h)?;
        self.udp.connect(h, src, r)?;
        self.udp.get_mut(h)?.error = None;
        Ok(())
    }

    /// Dissolves the association (`connect` with `AF_UNSPEC`).
    pub fn udp_disconnect(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        self.udp.disconnect(h)
    }

    /// The bound address (`getsockname`), as the socket's family shows it.
    pub fn udp_local_addr(&self, h: SocketHandle) -> Result<Option<SocketAddr>, SocketError> {
        let s = self.udp.get(h)?;
        Ok(s.ends.local.map(|a| s.present(a)))
    }

    /// The connected address (`getpeername`).
    pub fn udp_peer_addr(&self, h: SocketHandle) -> Result<Option<SocketAddr>, SocketError> {
        let s = self.udp.get(h)?;
        Ok(s.ends.remote.map(|a| s.present(a)))
    }

    /// Queues `data` for `to` (or the connected peer when `to` is `None`).
    /// It leaves on the next [`Interface::poll`]. A pending error
    /// (`SO_ERROR`) is returned once, as Linux does.
    pub fn udp_send_to(&mut self, h: SocketHandle, data: &[u8], to: Option<SocketAddr>) -> Result<usize, SocketError> {
        self.udp_send_with(h, data, to, SendOpts::default())
    }

    /// [`Interface::udp_send_to`] with what this datagram's ancillary data
    /// asks for. A source in `opts` that is not ours fails as Linux's route
    /// lookup does: `NetworkUnreachable` for IPv4, `InvalidArgument` for
    /// IPv6 (`ip6_datagram_send_ctl`), or if its family is not the
    /// destination's.
    pub fn udp_send_with(
        &mut self,
        h: SocketHandle,
        data: &[u8],
        to: Option<SocketAddr>,
        opts: SendOpts,
    ) -> Result<usize, SocketError> {
        if let Some(e) = self.udp.get_mut(h)?.error.take() {
            return Err(e);
        }
        let s = self.udp.get(h)?;
        let dst = match (to, s.ends.remote) {
            (Some(a), _) => canonical(a),
            (None, Some(r)) => r,
            (None, None) => return Err(SocketError::DestinationRequired),
        };
        if !s.can_reach(&dst) {
            return Err(SocketError::AddressFamily);
        }
        if dst.port() == 0 {
            return Err(SocketError::InvalidArgument);
        }
        if !s.broadcast && self.is_broadcast_v4(dst.ip()) {
            return Err(SocketError::PermissionDenied);
        }
        if let Some(l) = s.ends.local {
            self.check_loopback_source(l.ip(), dst.ip())?;
        }
        let opts = SendOpts {
            src: opts.src.map(canonical_ip),
            ..opts
        };
        if let Some(src) = opts.src {
            if src.is_ipv4() != dst.is_ipv4() {
                return Err(SocketError::InvalidArgument);
            }
            if !self.is_local_addr(src) || src.is_multicast() {
                return Err(match src {
                    IpAddr::V4(_) => SocketError::NetworkUnreachable,
                    IpAddr::V6(_) => SocketError::InvalidArgument,
                });
            }
            self.check_loopback_source(src, dst.ip())?;
        }
        let max = match dst {
            SocketAddr::V4(_) => 65535 - 20 - 8,
            SocketAddr::V6(_) => 65535 - 8,
        };
        let headers = if dst.is_ipv4() { 28 } else { 48 };
        let never_fragment = s.pmtu_discovery == PmtuDiscovery::Do || opts.dont_fragment;
        if data.len() > max || (never_fragment && headers + data.len() > self.path_mtu(self.last_now, dst.ip())) {
            return Err(SocketError::MessageTooLong);
        }
        if self.source_for(dst.ip()).is_none() {
            self.counters.drop_tx_no_route += 1;
            return Err(SocketError::NetworkUnreachable);
        }
        let max_dgrams = self.udp.config.tx_queue_datagrams;
        self.autobind(h)?;
        let s = self.udp.get_mut(h)?;
        if s.tx.len() >= max_dgrams || (s.tx_bytes + data.len() > s.tx_limit && !s.tx.is_empty()) {
            s.tx_blocked = true;
            return Err(SocketError::WouldBlock);
        }
        s.tx_bytes += data.len();
        s.tx.push_back(TxDatagram {
            dst,
            data: data.to_vec(),
            opts,
        });
        if !s.tx_listed {
            s.tx_listed = true;
            self.tx_pending.push_back(h.index);
        }
        Ok(data.len())
    }

    /// Takes the next datagram into `buf` (`recvfrom`): truncated to `buf`
    /// as Linux does, the rest discarded. A pending error (`SO_ERROR`) is
    /// returned first, once.
    pub fn udp_recv_from(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<RecvMeta, SocketError> {
        let d = self.udp_recv(h)?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let s = self.udp.get(h)?;
        Ok(RecvMeta {
            len: n,
            datagram_len: d.data.len(),
            from: s.present(d.from),
            to: d.to,
            hop_limit: d.hop_limit,
            traffic_class: d.traffic_class,
        })
    }

    /// Takes the next datagram whole, without copying. The sender is
    /// canonical (IPv4 unmapped); [`Interface::udp_recv_from`] maps it.
    pub fn udp_recv(&mut self, h: SocketHandle) -> Result<Datagram, SocketError> {
        let s = self.udp.get_mut(h)?;
        // Linux checks sk_err before the queue ("Caller is allowed not to
        // check sk->sk_err before skb_recv_datagram()").
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        match s.rx.pop_front() {
            Some(d) => {
                s.rx_bytes -= d.data.len();
                Ok(d)
            }
            None => Err(SocketError::WouldBlock),
        }
    }

    /// Copies the next datagram into `buf` without taking it
    /// (`recvfrom(MSG_PEEK)`). A pending error is returned (and cleared)
    /// first, as for a normal receive.
    pub fn udp_peek_from(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<RecvMeta, SocketError> {
        let s = self.udp.get_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let d = s.rx.front().ok_or(SocketError::WouldBlock)?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok(RecvMeta {
            len: n,
            datagram_len: d.data.len(),
            from: s.present(d.from),
            to: d.to,
            hop_limit: d.hop_limit,
            traffic_class: d.traffic_class,
        })
    }

    /// Bytes of the next datagram, if any (`FIONREAD`).
    pub fn udp_peek_len(&self, h: SocketHandle) -> Result<Option<usize>, SocketError> {
        Ok(self.udp.get(h)?.rx.front().map(|d| d.data.len()))
    }

    /// Takes the pending error (`getsockopt(SO_ERROR)`).
    pub fn udp_take_error(&mut self, h: SocketHandle) -> Result<Option<SocketError>, SocketError> {
        Ok(self.udp.get_mut(h)?.error.take())
    }

    /// Takes the next queued ICMP error (`recvmsg(MSG_ERRQUEUE)` with
    /// `IP_RECVERR`).
    pub fn udp_recv_error(&mut self, h: SocketHandle) -> Result<Option<IcmpError>, SocketError> {
        Ok(self.udp.get_mut(h)?.errqueue.pop_front())
    }

    // ---------------------------------------------------------------------
    // Buffers.

    fn take_buf(&mut self, len: usize) -> Vec<u8> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }

    fn recycle(&mut self, v: Vec<u8>) {
        if self.pool.len() < 256 {
            self.pool.push(v);
        }
    }

    fn flush_outbox<N: Nic>(&mut self, nic: &mut N) {
        while let Some(f) = self.outbox.pop_front() {
            let meta = f.meta;
            let r = nic.transmit(f.data.len(), |buf| {
                buf.copy_from_slice(&f.data);
                meta
            });
            if r.is_err() {
                // Device full: keep it for the next poll.
                self.outbox.push_front(f);
                break;
            }
            self.counters.tx_frames += 1;
            self.recycle(f.data);
        }
        nic.flush();
    }
}

use udp::canonical_ip;
