//! UDP sockets: bounded datagram queues over the shared socket table
//! ([`super::ports`]), which binds (Linux's `SO_REUSEADDR`/`SO_REUSEPORT`
//! rules, ephemeral ports), connects and demultiplexes by hash.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use super::ports::{Endpoint, Ends, Proto, SocketTable};
use super::{IcmpError, SocketError, SocketHandle};

pub use super::ports::{canonical, canonical_ip, Family};

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

#[derive(Debug)]
pub(crate) struct UdpSocket {
    pub(crate) ends: Ends,
    /// `SO_BROADCAST`.
    pub(crate) broadcast: bool,
    /// `IP_MTU_DISCOVER`.
    pub(crate) pmtu_discovery: super::PmtuDiscovery,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`.
    pub(crate) hop_limit: Option<u8>,
    pub(crate) recv_err: bool,
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
            ends: Ends::new(family),
            rx_limit: config.rx_queue_bytes,
            tx_limit: config.tx_queue_bytes,
            broadcast: false,
            pmtu_discovery: super::PmtuDiscovery::Want,
            hop_limit: None,
            recv_err: false,
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

    /// An address as this socket shows it to the program.
    pub(crate) fn present(&self, a: SocketAddr) -> SocketAddr {
        self.ends.present(a)
    }

    /// Whether the socket's family can talk to `a` (canonical).
    pub(crate) fn can_reach(&self, a: &SocketAddr) -> bool {
        self.ends.can_reach(a)
    }
}

impl Endpoint for UdpSocket {
    fn ends(&self) -> &Ends {
        &self.ends
    }

    fn ends_mut(&mut self) -> &mut Ends {
        &mut self.ends
    }
}

/// The table of UDP sockets.
pub(crate) type UdpTable = SocketTable<UdpSocket, UdpConfig>;

impl UdpTable {
    pub(crate) fn udp(config: UdpConfig) -> Self {
        SocketTable::new(Proto::Udp, config)
    }

    pub(crate) fn open(&mut self, family: Family) -> SocketHandle {
        let s = UdpSocket::new(family, &self.config);
        self.insert(s)
    }

    pub(crate) fn close(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        self.get(h)?;
        self.remove(h.index);
        Ok(())
    }
}
