//! ARP for IPv4 over Ethernet (RFC 826). Only hardware type 1 / protocol
//! 0x0800 with 6- and 4-byte addresses is represented; other combinations
//! pass `check_len` (which honours the length fields) but fail
//! [`ArpRepr::parse`] with [`Error::Unsupported`].

use std::net::Ipv4Addr;

use super::{be16, put16, Error, EthernetAddress, Result};

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    /// Request (1).
    Request,
    /// Reply (2).
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            x => ArpOperation::Unknown(x),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> u16 {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(x) => x,
        }
    }
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
}

/// Fixed part of an ARP packet.
const FIXED_LEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// A view over an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer and checks it with [`ArpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the fixed part and the four addresses
    /// the length fields announce.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        let need = FIXED_LEN + 2 * (b[field::HLEN] as usize + b[field::PLEN] as usize);
        if b.len() < need {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        be16(self.buffer.as_ref(), field::OPER).into()
    }

    fn hl(&self) -> usize {
        self.hardware_len() as usize
    }

    fn pl(&self) -> usize {
        self.protocol_len() as usize
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> &[u8] {
        let s = field::SHA;
        &self.buffer.as_ref()[s..s + self.hl()]
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> &[u8] {
        let s = field::SHA + self.hl();
        &self.buffer.as_ref()[s..s + self.pl()]
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        let s = field::SHA + self.hl() + self.pl();
        &self.buffer.as_ref()[s..s + self.hl()]
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        let s = field::SHA + 2 * self.hl() + self.pl();
        &self.buffer.as_ref()[s..s + self.pl()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::HTYPE, v)
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::PTYPE, v)
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, v: ArpOperation) {
        put16(self.buffer.as_mut(), field::OPER, v.into())
    }

    /// Sets the four addresses (lengths must match the length fields).
    pub fn set_addrs(&mut self, sha: &[u8], spa: &[u8], tha: &[u8], tpa: &[u8]) {
        let b = self.buffer.as_mut();
        let mut at = field::SHA;
        for a in [sha, spa, tha, tpa] {
            b[at..at + a.len()].copy_from_slice(a);
            at += a.len();
        }
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address.
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

fn v4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.hardware_type() != 1 || p.protocol_type() != 0x0800 || p.hardware_len() != 6 || p.protocol_len() != 4 {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: EthernetAddress::from_bytes(p.source_hardware_addr()),
            source_protocol_addr: v4(p.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(p.target_hardware_addr()),
            target_protocol_addr: v4(p.target_protocol_addr()),
        })
    }

    /// Length of the packet.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_hardware_type(1);
        p.set_protocol_type(0x0800);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_addrs(
            &self.source_hardware_addr.0,
            &self.source_protocol_addr.octets(),
            &self.target_hardware_addr.0,
            &self.target_protocol_addr.octets(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;

    const REQ: &str = "0001 0800 06 04 0001 020000000001 c0a80001 000000000000 c0a80002";

    fn req_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(192, 168, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(192, 168, 0, 2),
        }
    }

    #[test]
    fn golden() {
        let b = hex(REQ);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), req_repr());
        let mut out = vec![0u8; req_repr().buffer_len()];
        req_repr().emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn lengths_honoured() {
        let b = hex(REQ);
        for n in 0..b.len() {
            assert_eq!(ArpPacket::new_checked(&b[..n]).unwrap_err(), Error::Truncated, "{n}");
        }
        // Huge hardware length: check_len refuses, accessors never run.
        let mut big = b.clone();
        big[4] = 255;
        assert_eq!(ArpPacket::new_checked(&big[..]).unwrap_err(), Error::Truncated);
        // Other lengths that fit: view ok, repr unsupported.
        let mut odd = b.clone();
        odd[4] = 4;
        let p = ArpPacket::new_checked(&odd[..]).unwrap();
        assert_eq!(p.target_protocol_addr().len(), 4);
        assert_eq!(ArpRepr::parse(&p).unwrap_err(), Error::Unsupported);
    }
}
