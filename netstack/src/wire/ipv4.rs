//! IPv4 (RFC 791). Options are skipped, never interpreted: the view checks the
//! IHL (at least 5, within the buffer and the total length) and hands out the
//! payload after them.

use std::net::Ipv4Addr;

use super::checksum::{self, ChecksumMode};
use super::{be16, put16, Error, Result};

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Option types.
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation.
    pub const NOP: u8 = 1;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert (RFC 2113).
    pub const ROUTER_ALERT: u8 = 148;
}

/// What a header's options say that a host cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ipv4Options {
    /// A loose or strict source route: hosts drop these by default (Linux
    /// `accept_source_route = 0`).
    pub source_route: bool,
    /// Router alert.
    pub router_alert: bool,
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// The smallest MTU every IPv4 link must carry (RFC 791).
pub const MIN_MTU: usize = 68;

/// A view over an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer and checks it with [`Ipv4Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the lengths: the buffer holds 20 bytes, the IHL is at least 5,
    /// the header fits in the total length and the total length fits in the
    /// buffer (which may be longer: Ethernet pads short frames).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total = self.total_len() as usize;
        if total < hl {
            return Err(Error::Malformed);
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL times four).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length (header and payload).
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }

    /// Whether this packet is a fragment (offset non-zero or more to come).
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }

    /// Time to live.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[field::SRC], b[field::SRC + 1], b[field::SRC + 2], b[field::SRC + 3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[field::DST], b[field::DST + 1], b[field::DST + 2], b[field::DST + 3])
    }

    /// Walks the options (the bytes between the fixed header and the IHL)
    /// and reports the ones that matter to a host. Every option but
    /// end-of-list and no-op must have a length of at least 2 that fits;
    /// otherwise the header is malformed (RFC 791; Linux
    /// `ip_options_compile` drops such packets).
    pub fn options(&self) -> Result<Ipv4Options> {
        let mut o = &self.buffer.as_ref()[HEADER_LEN..self.header_len() as usize];
        let mut found = Ipv4Options::default();
        while let Some(&kind) = o.first() {
            match kind {
                option::END => break,
                option::NOP => {
                    o = &o[1..];
                    continue;
                }
                _ => {}
            }
            let len = *o.get(1).ok_or(Error::Malformed)? as usize;
            if len < 2 || len > o.len() {
                return Err(Error::Malformed);
            }
            match kind {
                option::LSRR | option::SSRR => found.source_route = true,
                option::ROUTER_ALERT => found.router_alert = true,
                _ => {}
            }
            o = &o[len..];
        }
        Ok(found)
    }

    /// Whether the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len() as usize])
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len() as usize]
    }

    /// The payload: from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len() as usize..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of four).
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0f);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v)
    }

    /// Sets the flags and fragment offset (in bytes, a multiple of eight).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = (dont_frag as u16) << 14 | (more_frags as u16) << 13 | (offset >> 3);
        put16(self.buffer.as_mut(), field::FLG_OFF, v)
    }

    /// Sets the time to live.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
    }

    /// Fills the header checksum (or zeroes it for offload).
    pub fn fill_checksum(&mut self, mode: ChecksumMode) {
        self.set_checksum(0);
        if mode == ChecksumMode::Compute {
            let hl = self.header_len() as usize;
            let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
            self.set_checksum(c);
        }
    }

    /// The payload, mutably (up to the total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// An IPv4 header without options, as this stack sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
}

impl Ipv4Repr {
    /// Parses a header: version 4, lengths checked, checksum verified unless
    /// the device already did. Fragmentation fields are read from the view.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, mode: ChecksumMode) -> Result<Self> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        if mode == ChecksumMode::Compute && !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len() as usize,
            hop_limit: p.hop_limit(),
        })
    }

    /// Length of the header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: identification 0, no flags (set them afterwards
    /// with the view's setters and refill the checksum if needed).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>, mode: ChecksumMode) {
        p.set_version_and_header_len(HEADER_LEN as u8);
        p.set_dscp_ecn(0);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(0);
        p.set_frag(false, false, 0);
        p.set_hop_limit(self.hop_limit);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum(mode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;

    // 192.168.0.1 -> 192.168.0.199, UDP, DF, TTL 64, 0x73 bytes; payload zeros.
    fn golden() -> Vec<u8> {
        let mut v = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
        v.resize(0x73, 0);
        v
    }

    #[test]
    fn golden_parse() {
        let b = golden();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        let r = Ipv4Repr::parse(&p, ChecksumMode::Compute).unwrap();
        assert_eq!(
            r,
            Ipv4Repr {
                src_addr: Ipv4Addr::new(192, 168, 0, 1),
                dst_addr: Ipv4Addr::new(192, 168, 0, 199),
                protocol: 17,
                payload_len: 0x73 - 20,
                hop_limit: 64,
            }
        );
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn golden_emit() {
        let b = golden();
        let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap(), ChecksumMode::Compute).unwrap();
        let mut out = vec![0u8; b.len()];
        let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
        r.emit(&mut p, ChecksumMode::Compute);
        p.set_frag(true, false, 0);
        p.fill_checksum(ChecksumMode::Compute);
        assert_eq!(out, b);
        // Offload leaves the checksum zero.
        let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
        r.emit(&mut p, ChecksumMode::Offload);
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn ihl_below_five_is_malformed() {
        for ihl in 0..5u8 {
            let mut b = golden();
            b[0] = 0x40 | ihl;
            assert_eq!(
                Ipv4Packet::new_checked(&b[..]).unwrap_err(),
                Error::Malformed,
                "ihl {ihl}"
            );
        }
    }

    #[test]
    fn ihl_beyond_total_len() {
        let mut b = golden();
        b[0] = 0x4f; // 60-byte header
        b[2] = 0;
        b[3] = 40; // total 40 < 60
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn options_skipped() {
        let mut b = hex("4600 0020 0000 0000 4011 0000 0a000001 0a000002 01010100 deadbeef 00000000");
        b.truncate(0x20);
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum(ChecksumMode::Compute);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
        assert!(Ipv4Repr::parse(&p, ChecksumMode::Compute).is_ok());
    }

    #[test]
    fn options_walked() {
        let with = |opts: &str| {
            let o = hex(opts);
            let hl = 20 + o.len();
            let mut b = hex("4000 0000 0000 0000 4011 0000 0a000001 0a000002");
            b[0] = 0x40 | (hl / 4) as u8;
            b[3] = hl as u8;
            b.extend_from_slice(&o);
            b
        };
        let opts = |b: &Vec<u8>| Ipv4Packet::new_checked(&b[..]).unwrap().options();
        assert_eq!(opts(&with("")).unwrap(), Ipv4Options::default());
        // NOP, LSRR with one address, EOL padding.
        let lsrr = with("01 83 07 04 0a000003 00 00 00 00");
        assert_eq!(
            opts(&lsrr).unwrap(),
            Ipv4Options {
                source_route: true,
                router_alert: false
            }
        );
        assert!(opts(&with("94 04 0000")).unwrap().router_alert);
        // Lengths 0 and 1, and past the header: malformed.
        for bad in ["44 00 0000", "44 01 0000", "44 08 0000", "44"] {
            let mut o = bad.to_string();
            while !hex(&o).len().is_multiple_of(4) {
                o.push_str(" 00");
            }
            assert_eq!(opts(&with(&o)).unwrap_err(), Error::Malformed, "{bad}");
        }
        // Anything after end-of-list is ignored.
        assert!(opts(&with("00 44 00 00")).is_ok());
    }

    #[test]
    fn truncated_and_padded() {
        let b = golden();
        for n in 0..b.len() {
            assert!(Ipv4Packet::new_checked(&b[..n]).is_err(), "{n}");
        }
        let mut padded = b.clone();
        padded.extend_from_slice(&[0xee; 10]);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn bad_checksum_and_version() {
        let mut b = golden();
        b[11] ^= 1;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, ChecksumMode::Compute).unwrap_err(), Error::Checksum);
        assert!(Ipv4Repr::parse(&p, ChecksumMode::Offload).is_ok());
        let mut b = golden();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap(), ChecksumMode::Offload).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn fragment_fields() {
        let mut b = golden();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_frag(false, true, 1480);
        p.set_ident(0x1234);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(p.ident(), 0x1234);
    }
}
