//! IPv6 (RFC 8200): the fixed header, and the extension headers a host must
//! walk to find the upper layer: hop-by-hop options, routing, fragment and
//! destination options.
//!
//! Extension-header lengths are computed in `usize` and checked against the
//! bytes that are there before anything is read, so a length of 255 cannot
//! wrap an offset or reach past the buffer. The walk stops after
//! [`MAX_EXT_HEADERS`] headers.

use std::net::Ipv6Addr;

use super::ethernet::EthernetAddress;
use super::{be16, be32, ip_proto, put16, put32, Error, Result};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The smallest MTU every IPv6 link must carry (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;
/// How many extension headers the walk accepts before giving up.
pub const MAX_EXT_HEADERS: usize = 8;
/// Length of a fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

/// A view over an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer and checks it with [`Ipv6Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the fixed header and the payload length
    /// it announces (the buffer may be longer).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < HEADER_LEN + self.payload_len() as usize {
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
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header (first extension header or upper layer).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC..field::SRC + 16])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST..field::DST + 16])
    }

    /// The payload (extension headers and upper layer), up to the payload
    /// length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, traffic class 0 and flow label 0.
    pub fn set_version(&mut self) {
        put32(self.buffer.as_mut(), field::VER_TC_FLOW, 0x6000_0000);
    }

    /// Sets the traffic class, keeping the version and flow label.
    pub fn set_traffic_class(&mut self, v: u8) {
        let w = be32(self.buffer.as_ref(), field::VER_TC_FLOW);
        put32(
            self.buffer.as_mut(),
            field::VER_TC_FLOW,
            (w & 0xf00f_ffff) | (u32::from(v) << 20),
        );
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.payload_len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + n]
    }
}

/// The fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses the fixed header (version 6, lengths checked).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as usize,
            hop_limit: p.hop_limit(),
        })
    }

    /// Length of the fixed header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version();
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }
}

/// A fragment header (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6FragmentHeader {
    /// Protocol of the fragmentable part.
    pub next_header: u8,
    /// Offset of this fragment's data, in bytes (a multiple of eight).
    pub offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl Ipv6FragmentHeader {
    /// Parses the eight bytes at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < FRAG_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let off = be16(b, 2);
        Ok(Ipv6FragmentHeader {
            next_header: b[0],
            offset: off & 0xfff8,
            more_frags: off & 1 != 0,
            ident: be32(b, 4),
        })
    }

    /// Length of the header.
    pub const fn buffer_len(&self) -> usize {
        FRAG_HEADER_LEN
    }

    /// Writes the header into the first eight bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = self.next_header;
        b[1] = 0;
        put16(b, 2, (self.offset & 0xfff8) | self.more_frags as u16);
        put32(b, 4, self.ident);
    }

    /// Whether this is an atomic fragment (offset 0, no more fragments;
    /// RFC 6946 says to process it as if it were not a fragment).
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more_frags
    }
}

/// What walking the extension headers found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6ExtHeaders {
    /// Protocol of what follows the last header walked (the upper layer, or
    /// the fragmentable part's first header when [`Self::fragment`] is set).
    pub next_header: u8,
    /// Offset, within the walked bytes, of what follows.
    pub offset: usize,
    /// The fragment header, if the walk stopped at one.
    pub fragment: Option<Ipv6FragmentHeader>,
    /// Where, within the walked bytes, the byte naming `next_header` is;
    /// `None` when no header was walked (it is the caller's: the fixed
    /// header's Next Header field). For ICMPv6 Parameter Problem pointers.
    pub next_header_at: Option<usize>,
}

/// Why the extension-header walk refused a packet, beyond truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtHeaderError {
    /// A length or structure is wrong (hop-by-hop not first, option overruns
    /// its header, too many headers).
    Malformed,
    /// Truncated.
    Truncated,
    /// An option whose type says "discard if unrecognised" (action 01).
    Discard,
    /// Discard and answer with an ICMPv6 Parameter Problem: an unrecognised
    /// option whose type asks for one (actions 10 and 11, code 2), or a
    /// routing header with segments left (this host routes nothing; code 0,
    /// pointing at the Routing Type). `at` is the offset of the offending
    /// byte from the start of the walked payload.
    ParamProblem {
        /// ICMPv6 Parameter Problem code.
        code: u8,
        /// Offset of the offending byte in the walked payload.
        at: usize,
    },
}

impl From<ExtHeaderError> for Error {
    fn from(e: ExtHeaderError) -> Error {
        match e {
            ExtHeaderError::Malformed => Error::Malformed,
            ExtHeaderError::Truncated => Error::Truncated,
            ExtHeaderError::Discard | ExtHeaderError::ParamProblem { .. } => Error::Unsupported,
        }
    }
}

impl Ipv6ExtHeaders {
    /// Walks the extension headers at the start of `payload`, beginning with
    /// protocol `next_header`. Stops at the first upper-layer protocol (or
    /// "no next header"), or at a fragment header, whose contents are
    /// returned so the caller can reassemble.
    ///
    /// `first` says whether `payload` starts right after the fixed header
    /// (hop-by-hop options are only allowed there).
    pub fn parse(mut next_header: u8, payload: &[u8], first: bool) -> core::result::Result<Self, ExtHeaderError> {
        let mut offset = 0usize;
        let mut next_header_at = None;
        for n in 0..=MAX_EXT_HEADERS {
            match next_header {
                ip_proto::HOP_BY_HOP | ip_proto::IPV6_OPTS | ip_proto::IPV6_ROUTE => {
                    if n == MAX_EXT_HEADERS {
                        return Err(ExtHeaderError::Malformed);
                    }
                    if next_header == ip_proto::HOP_BY_HOP && !(first && n == 0) {
                        return Err(ExtHeaderError::Malformed);
                    }
                    let rest = &payload[offset..];
                    if rest.len() < 8 {
                        return Err(ExtHeaderError::Truncated);
                    }
                    // (Hdr Ext Len + 1) * 8, computed in usize: 255 cannot wrap.
                    let len = (rest[1] as usize + 1) * 8;
                    if rest.len() < len {
                        return Err(ExtHeaderError::Truncated);
                    }
                    let hdr = &rest[..len];
                    if next_header == ip_proto::IPV6_ROUTE {
                        // RFC 8200 section 4.4: with Segments Left non-zero
                        // "the node must discard the packet and send an ICMP
                        // Parameter Problem, Code 0, message ... pointing to
                        // the unrecognized Routing Type" (a host routes none).
                        if hdr[3] != 0 {
                            return Err(ExtHeaderError::ParamProblem {
                                code: 0,
                                at: offset + 2,
                            });
                        }
                    } else {
                        check_options(&hdr[2..], offset + 2)?;
                    }
                    next_header = hdr[0];
                    next_header_at = Some(offset);
                    offset += len;
                }
                ip_proto::IPV6_FRAG => {
                    let frag = Ipv6FragmentHeader::parse(&payload[offset..]).map_err(|_| ExtHeaderError::Truncated)?;
                    return Ok(Ipv6ExtHeaders {
                        next_header: frag.next_header,
                        offset: offset + FRAG_HEADER_LEN,
                        fragment: Some(frag),
                        next_header_at: Some(offset),
                    });
                }
                _ => {
                    return Ok(Ipv6ExtHeaders {
                        next_header,
                        offset,
                        fragment: None,
                        next_header_at,
                    });
                }
            }
        }
        Err(ExtHeaderError::Malformed)
    }
}

/// Checks the TLV options of a hop-by-hop or destination options header
/// that start at offset `at` of the walked payload.
fn check_options(mut opts: &[u8], mut at: usize) -> core::result::Result<(), ExtHeaderError> {
    while let Some(&ty) = opts.first() {
        if ty == 0 {
            // Pad1.
            opts = &opts[1..];
            at += 1;
            continue;
        }
        if opts.len() < 2 {
            return Err(ExtHeaderError::Malformed);
        }
        let len = 2 + opts[1] as usize;
        if opts.len() < len {
            return Err(ExtHeaderError::Malformed);
        }
        match ty {
            // PadN, Router Alert.
            1 | 5 => {}
            // RFC 8200 section 4.2: the two high bits say what to do with an
            // unrecognised option; 00 is "skip over this option".
            _ if ty >> 6 == 0 => {}
            // 01: "discard the packet".
            _ if ty >> 6 == 1 => return Err(ExtHeaderError::Discard),
            // 10 and 11: "discard the packet and ... send an ICMP Parameter
            // Problem, Code 2, message to the packet's Source Address,
            // pointing to the unrecognized Option Type" (11 only when the
            // destination is not multicast; the caller sends no errors to
            // multicast-destined packets at all).
            _ => return Err(ExtHeaderError::ParamProblem { code: 2, at }),
        }
        opts = &opts[len..];
        at += len;
    }
    Ok(())
}

/// Address helpers.
pub mod addr {
    use super::*;

    /// The link-local address derived from `mac` with modified EUI-64
    /// (RFC 4291 appendix A, RFC 4862).
    pub fn link_local_from_mac(mac: EthernetAddress) -> Ipv6Addr {
        let m = mac.0;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }

    /// The solicited-node multicast address of `a` (RFC 4291 section 2.7.1).
    pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
        let o = a.octets();
        Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
    }

    /// Whether `a` is a link-local unicast address (fe80::/10).
    pub fn is_link_local(a: &Ipv6Addr) -> bool {
        a.segments()[0] & 0xffc0 == 0xfe80
    }

    /// Whether `a` is the all-nodes multicast address ff02::1.
    pub fn is_all_nodes(a: &Ipv6Addr) -> bool {
        *a == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;

    // fe80::1 -> ff02::1, next header UDP, hop limit 64, payload 8 bytes.
    const FIXED: &str = "6000 0000 0008 11 40
        fe80 0000 0000 0000 0000 0000 0000 0001
        ff02 0000 0000 0000 0000 0000 0000 0001
        0001 0002 0008 0000";

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: "fe80::1".parse().unwrap(),
            dst_addr: "ff02::1".parse().unwrap(),
            next_header: 17,
            payload_len: 8,
            hop_limit: 64,
        }
    }

    #[test]
    fn traffic_class_between_version_and_flow_label() {
        let mut b = hex(FIXED);
        b[..4].copy_from_slice(&0x6000_abcdu32.to_be_bytes());
        Ipv6Packet::new_unchecked(&mut b[..]).set_traffic_class(0xb9);
        assert_eq!(&b[..4], &[0x6b, 0x90, 0xab, 0xcd]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0xb9, 0xabcd));
    }

    #[test]
    fn golden_fixed() {
        let b = hex(FIXED);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload(), &b[40..]);
        let mut out = vec![0u8; 48];
        let mut q = Ipv6Packet::new_unchecked(&mut out[..]);
        repr().emit(&mut q);
        q.payload_mut().copy_from_slice(&b[40..]);
        assert_eq!(out, b);
    }

    #[test]
    fn truncated_and_version() {
        let b = hex(FIXED);
        for n in 0..b.len() {
            assert_eq!(Ipv6Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated, "{n}");
        }
        let mut v = b.clone();
        v[0] = 0x40;
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_checked(&v[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn ext_chain_golden() {
        // HBH (8 bytes, PadN) -> DestOpts (8, Pad1 x6) -> Routing (segments left 0) -> Frag -> UDP.
        let p = hex("3c 00 01 04 00000000
             2b 00 00 00 00 00 00 00
             2c 00 00 00 00000000
             11 00 05a9 deadbeef
             aaaa");
        let e = Ipv6ExtHeaders::parse(ip_proto::HOP_BY_HOP, &p, true).unwrap();
        assert_eq!(
            e,
            Ipv6ExtHeaders {
                next_header: 17,
                offset: 32,
                fragment: Some(Ipv6FragmentHeader {
                    next_header: 17,
                    offset: 0x05a8,
                    more_frags: true,
                    ident: 0xdeadbeef
                }),
                next_header_at: Some(24),
            }
        );
        let mut out = [0u8; 8];
        e.fragment.unwrap().emit(&mut out);
        assert_eq!(&out[..], &p[24..32]);
    }

    #[test]
    fn ext_length_wrap_guarded() {
        // Hdr Ext Len 255 => 2048 bytes, far more than present.
        let p = hex("11 ff 01 00 00000000 0000000000000000");
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap_err(),
            ExtHeaderError::Truncated
        );
        // Under 8 bytes.
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p[..7], true).unwrap_err(),
            ExtHeaderError::Truncated
        );
        // Option length overruns its header.
        let p = hex("11 00 01 09 00000000");
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap_err(),
            ExtHeaderError::Malformed
        );
        // Fragment header cut short.
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_FRAG, &p[..5], true).unwrap_err(),
            ExtHeaderError::Truncated
        );
    }

    #[test]
    fn ext_rules() {
        // Hop-by-hop after another header.
        let p = hex("00 00 01 04 00000000 11 00 01 04 00000000");
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap_err(),
            ExtHeaderError::Malformed
        );
        // Unknown option with action 01: discard.
        let p = hex("11 00 41 04 00000000");
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap_err(),
            ExtHeaderError::Discard
        );
        // Unknown option with action 00: skipped.
        let p = hex("11 00 21 04 00000000");
        assert_eq!(Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap().offset, 8);
        // Unknown option with action 10 after a PadN: parameter problem,
        // pointing at the option type.
        let p = hex("11 00 01 00 81 02 0000");
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap_err(),
            ExtHeaderError::ParamProblem { code: 2, at: 4 }
        );
        // Routing header with segments left: parameter problem at the type.
        let p = hex("11 00 00 01 00000000");
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_ROUTE, &p, true).unwrap_err(),
            ExtHeaderError::ParamProblem { code: 0, at: 2 }
        );
        // A loop of destination options longer than the limit.
        let p: Vec<u8> = (0..MAX_EXT_HEADERS + 1)
            .flat_map(|_| hex("3c 00 01 04 00000000"))
            .collect();
        assert_eq!(
            Ipv6ExtHeaders::parse(ip_proto::IPV6_OPTS, &p, true).unwrap_err(),
            ExtHeaderError::Malformed
        );
        // No next header.
        // Where the byte naming the upper layer sits.
        let p = hex("3c 00 01 04 00000000 3a 00 01 04 00000000");
        let e = Ipv6ExtHeaders::parse(ip_proto::HOP_BY_HOP, &p, true).unwrap();
        assert_eq!(
            (e.next_header, e.offset, e.next_header_at),
            (ip_proto::ICMPV6, 16, Some(8))
        );
        let e = Ipv6ExtHeaders::parse(ip_proto::IPV6_NONXT, &[], true).unwrap();
        assert_eq!(e.next_header_at, None);
        assert_eq!((e.next_header, e.offset), (ip_proto::IPV6_NONXT, 0));
    }

    #[test]
    fn addresses() {
        let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            addr::link_local_from_mac(mac),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            addr::solicited_node(&"2001:db8::1:2:3".parse().unwrap()),
            "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap()
        );
        assert!(addr::is_link_local(&"fe80::1".parse().unwrap()));
    }
}
