//! Packet I/O: the one trait every network device implements.
//!
//! The stack never owns a frame buffer on either path: on receive it borrows
//! the device's buffer for the duration of a callback, on transmit it writes
//! the frame in place into a buffer the device hands out. A DPDK port lends
//! its mbufs; the in-memory link lends `Vec<u8>`s.
//!
//! Not for: anything above Ethernet framing. Devices do not parse packets.

/// Checksum offloads a device performs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksumCaps {
    /// The device verifies IPv4 header checksums on receive.
    pub ipv4_rx: bool,
    /// The device fills IPv4 header checksums on transmit.
    pub ipv4_tx: bool,
    /// The device verifies UDP and TCP checksums on receive.
    pub l4_rx: bool,
    /// The device fills UDP and TCP checksums on transmit.
    pub l4_tx: bool,
}

/// What a device can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Largest IP packet (Ethernet payload) the link carries.
    pub mtu: usize,
    /// Largest number of frames one receive or transmit burst handles.
    pub max_burst: usize,
    /// Checksum offloads.
    pub checksum: ChecksumCaps,
}

/// What the device learned about a received frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The device verified the IPv4 header checksum and it was good.
    pub ipv4_csum_good: bool,
    /// The device verified the UDP/TCP checksum and it was good.
    pub l4_csum_good: bool,
}

/// Offload requests for one transmitted frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxMeta {
    /// Length of the link-layer header.
    pub l2_len: u16,
    /// Length of the network-layer header.
    pub l3_len: u16,
    /// Ask the device to fill the IPv4 header checksum.
    pub ipv4_csum: bool,
    /// Ask the device to fill the TCP or UDP checksum (the stack wrote the
    /// pseudo-header sum into the checksum field, as NICs expect).
    pub l4_csum: Option<L4Proto>,
}

/// Transport protocol for checksum offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// The transmit queue is full; the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxFull;

/// A network device seen from the stack: bursts of Ethernet frames.
pub trait Nic {
    /// What the device can do.
    fn capabilities(&self) -> Capabilities;

    /// The device's Ethernet address.
    fn mac(&self) -> [u8; 6];

    /// Receives up to `max` frames, calling `f` once per frame with the frame's
    /// bytes (starting at the Ethernet header) and what the device checked.
    /// Returns the number of frames received.
    fn receive<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, f: F) -> usize;

    /// Queues one frame of `len` bytes for transmission; `f` writes the frame
    /// in place. Frames may be held until [`Nic::flush`].
    fn transmit<F: FnOnce(&mut [u8]) -> TxMeta>(&mut self, len: usize, f: F) -> Result<(), TxFull>;

    /// Hands every queued frame to the hardware (end of a burst).
    fn flush(&mut self);
}
