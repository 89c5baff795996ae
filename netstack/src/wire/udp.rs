//! UDP (RFC 768; RFC 8200 section 8.1 for IPv6, where a zero checksum is
//! not allowed).

use core::num::NonZeroU16;

use super::checksum::{ChecksumMode, PseudoHeader};
use super::{be16, ip_proto, put16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view over a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer and checks it with [`UdpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the header, that the length field is at
    /// least 8 and that the buffer holds that many bytes.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < l {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header and payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    /// Whether the checksum is right for this pseudo-header. A zero checksum
    /// over IPv4 means "none" and passes.
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return matches!(ph, PseudoHeader::V4(..));
        }
        let d = &self.buffer.as_ref()[..self.len() as usize];
        ph.sum(ip_proto::UDP, d.len()).add_bytes(d).fold() == 0xffff
    }

    /// Whether the checksum field holds the pseudo-header sum alone (not
    /// complemented): what a sender that left the checksum to offload put
    /// there, as Linux does for `CHECKSUM_PARTIAL` (`udp4_hwcsum`:
    /// `uh->check = ~csum_tcpudp_magic(src, dst, len, IPPROTO_UDP, 0)`) and
    /// as [`ChecksumMode::Offload`] writes it.
    pub fn is_partial_checksum(&self, ph: &PseudoHeader) -> bool {
        self.checksum() == ph.sum(ip_proto::UDP, self.len() as usize).fold()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }

    /// Fills the checksum: the full checksum (0 sent as 0xffff), or for
    /// offload the pseudo-header sum the device completes.
    pub fn fill_checksum(&mut self, ph: &PseudoHeader, mode: ChecksumMode) {
        let l = self.len() as usize;
        self.set_checksum(0);
        let c = match mode {
            ChecksumMode::Offload => ph.sum(ip_proto::UDP, l).fold(),
            ChecksumMode::Compute => {
                let c = ph.sum(ip_proto::UDP, l).add_bytes(&self.buffer.as_ref()[..l]).finish();
                if c == 0 {
                    0xffff
                } else {
                    c
                }
            }
        };
        self.set_checksum(c);
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port (zero: none).
    pub src_port: u16,
    /// Destination port (zero is not a valid destination).
    pub dst_port: NonZeroU16,
}

impl UdpRepr {
    /// Parses a datagram, verifying its checksum unless the device did.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>, ph: &PseudoHeader, mode: ChecksumMode) -> Result<Self> {
        p.check_len()?;
        let dst_port = NonZeroU16::new(p.dst_port()).ok_or(Error::Malformed)?;
        if mode == ChecksumMode::Compute && !p.verify_checksum(ph) {
            return Err(Error::Checksum);
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port,
        })
    }

    /// Length of header plus `payload_len`.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes header, `payload` and checksum (the buffer must be exactly
    /// [`Self::buffer_len`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        ph: &PseudoHeader,
        payload: &[u8],
        mode: ChecksumMode,
    ) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port.get());
        p.set_len((HEADER_LEN + payload.len()) as u16);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum(ph, mode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;
    use std::net::Ipv4Addr;

    fn ph() -> PseudoHeader {
        PseudoHeader::V4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))
    }

    // 10.0.0.1:1234 -> 10.0.0.2:53, payload "hi".
    const DGRAM: &str = "04d2 0035 000a 7e67 6869";

    /// "hello partial" 10.199.0.2:48703 -> 10.199.0.1:9 as a Linux 6.18
    /// veth peer with tx checksumming on sent it: the field 0x15b7 is the
    /// pseudo-header sum alone (`CHECKSUM_PARTIAL`).
    const LINUX_PARTIAL: &str = "be3f 0009 0015 15b7 68656c6c6f207061727469616c";

    #[test]
    fn partial_checksum_as_linux_leaves_it() {
        let linux = PseudoHeader::V4(Ipv4Addr::new(10, 199, 0, 2), Ipv4Addr::new(10, 199, 0, 1));
        let b = hex(LINUX_PARTIAL);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum(&linux));
        assert!(p.is_partial_checksum(&linux));
        assert!(!p.is_partial_checksum(&ph()));
        let r = UdpRepr {
            src_port: 48703,
            dst_port: NonZeroU16::new(9).unwrap(),
        };
        let mut out = vec![0u8; b.len()];
        let mut q = UdpPacket::new_unchecked(&mut out[..]);
        r.emit(&mut q, &linux, b"hello partial", ChecksumMode::Offload);
        assert_eq!(out, b, "our offload mode leaves the same bytes");
        let mut q = UdpPacket::new_unchecked(&mut out[..]);
        q.fill_checksum(&linux, ChecksumMode::Compute);
        assert!(q.verify_checksum(&linux));
        assert!(!q.is_partial_checksum(&linux));
    }

    #[test]
    fn golden() {
        let b = hex(DGRAM);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        let r = UdpRepr::parse(&p, &ph(), ChecksumMode::Compute).unwrap();
        assert_eq!(
            r,
            UdpRepr {
                src_port: 1234,
                dst_port: NonZeroU16::new(53).unwrap()
            }
        );
        assert_eq!(p.payload(), b"hi");
        let mut out = vec![0u8; r.buffer_len(2)];
        r.emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            &ph(),
            b"hi",
            ChecksumMode::Compute,
        );
        assert_eq!(out, b);
    }

    #[test]
    fn offload_writes_pseudo_sum() {
        let r = UdpRepr {
            src_port: 1234,
            dst_port: NonZeroU16::new(53).unwrap(),
        };
        let mut out = vec![0u8; r.buffer_len(2)];
        let mut p = UdpPacket::new_unchecked(&mut out[..]);
        r.emit(&mut p, &ph(), b"hi", ChecksumMode::Offload);
        assert_eq!(p.checksum(), ph().sum(17, 10).fold());
    }

    #[test]
    fn malformed() {
        let b = hex(DGRAM);
        for n in 0..b.len() {
            assert_eq!(UdpPacket::new_checked(&b[..n]).unwrap_err(), Error::Truncated, "{n}");
        }
        let mut short = b.clone();
        short[5] = 7;
        assert_eq!(UdpPacket::new_checked(&short[..]).unwrap_err(), Error::Malformed);
        let mut bad = b.clone();
        bad[9] ^= 1;
        let p = UdpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&p, &ph(), ChecksumMode::Compute).unwrap_err(),
            Error::Checksum
        );
        assert!(UdpRepr::parse(&p, &ph(), ChecksumMode::Offload).is_ok());
        let mut port0 = b.clone();
        port0[2] = 0;
        port0[3] = 0;
        let p = UdpPacket::new_checked(&port0[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&p, &ph(), ChecksumMode::Offload).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn zero_checksum() {
        let mut b = hex(DGRAM);
        b[6] = 0;
        b[7] = 0;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&ph()));
        let v6 = PseudoHeader::V6("::1".parse().unwrap(), "::2".parse().unwrap());
        assert!(!p.verify_checksum(&v6));
    }
}
