//! Plain values about ports: how to configure one, its link, its counters.
//!
//! The port itself is [`crate::Port`] (in the `sys` module, since it owns
//! the device's queues).

/// How [`crate::Port::start`] (or [`crate::Port::start_multi`]) sets a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive and transmit queues, as many of each (default 1). With more
    /// than one, split the port into one [`crate::DpdkNic`] per queue pair
    /// with [`crate::DpdkNic::split`]; the device spreads received flows over
    /// the receive queues (RSS where it has it, see the crate docs).
    pub queues: u16,
    /// Receive ring size (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Transmit ring size (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Frames per receive or transmit burst (at most [`crate::MAX_BURST`]).
    pub burst: usize,
    /// Accept frames for any destination address.
    pub promiscuous: bool,
    /// Enable the checksum offloads the device has (IPv4 header, UDP, TCP;
    /// receive and transmit).
    pub checksum_offload: bool,
    /// MTU to set, or `None` to keep the device's.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            burst: 32,
            promiscuous: false,
            checksum_offload: true,
            mtu: None,
        }
    }
}

/// Link state of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    /// Carrier is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Speed was auto-negotiated.
    pub autoneg: bool,
}

/// A port's counters as the device reports them (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames dropped by the device because the receive ring was full.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Receive failures for want of an mbuf.
    pub rx_no_mbuf: u64,
}
