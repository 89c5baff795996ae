//! Wire formats: zero-copy views over packet headers and plain `Repr` values
//! to parse and build them.
//!
//! Every format comes in two layers, as in smoltcp:
//!
//! - a view `Packet<T: AsRef<[u8]>>` (or `Frame`) over a borrowed buffer, with
//!   getters on `AsRef<[u8]>` and setters on `AsMut<[u8]>`, field offsets named
//!   in one `mod field`;
//! - a `Repr`, a plain value with `parse`, `emit` and `buffer_len`.
//!
//! **The rule every view keeps:** once `new_checked` (or `check_len`) has
//! succeeded, no getter can panic, whatever the bytes say. `new_unchecked`
//! exists for building packets into buffers the caller sized with
//! `buffer_len`; on such a view, getters may panic if the buffer is too short.
//! Setters may panic on a buffer that is too short for the field they write,
//! and a setter that changes a length field (IHL, total length, data offset)
//! voids the guarantee until `check_len` succeeds again.
//!
//! Not for: deciding what to do with a packet (that is [`crate::iface`]), or
//! any state beyond one packet.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::ChecksumMode;
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::{Ipv4Options, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6ExtHeaders, Ipv6FragmentHeader, Ipv6Packet, Ipv6Repr};
pub use ndp::{NdpOption, NdpRepr};
pub use tcp::{TcpControl, TcpOption, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer could not be parsed. Tiny and `Copy`: parsing happens per
/// packet and must not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header or a length field says.
    Truncated,
    /// A field holds a value the format forbids (bad version, header length
    /// below the minimum, option length 0 or 1, ...).
    Malformed,
    /// The checksum does not match.
    Checksum,
    /// Well formed, but a variant this stack does not handle.
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Checksum => "bad checksum",
            Error::Unsupported => "unsupported packet",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

/// Result of parsing.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next header`).
pub mod ip_proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 destination options.
    pub const IPV6_OPTS: u8 = 60;
}

// Big-endian field helpers. Callers have checked the length first (the views'
// `check_len`), so the indexing here cannot go out of bounds.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Parses a hex dump ("45 00 ..."), ignoring whitespace.
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        assert!(digits.len() & 1 == 0, "odd number of hex digits");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }
}
