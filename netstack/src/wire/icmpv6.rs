//! ICMP for IPv6 (RFC 4443): echo, destination unreachable, packet too big,
//! time exceeded, and the neighbor discovery messages of [`super::ndp`].
//! The checksum covers the IPv6 pseudo-header, so parsing and emitting take
//! the addresses.

use std::net::Ipv6Addr;

use super::checksum::{self, Sum};
use super::ndp::NdpRepr;
use super::{be16, be32, ip_proto, put16, put32, Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const MTU: usize = 4;
}

/// Length of the ICMPv6 header (type, code, checksum, four more bytes).
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PKT_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Destination-unreachable codes.
pub mod unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// Parameter-problem codes.
pub mod param_problem {
    /// Erroneous header field.
    pub const HEADER_FIELD: u8 = 0;
    /// Unrecognized Next Header type.
    pub const NEXT_HEADER: u8 = 1;
    /// Unrecognized IPv6 option.
    pub const OPTION: u8 = 2;
}

/// A view over an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer and checks that it holds the eight-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the eight-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ)
    }

    /// MTU of "packet too big".
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MTU)
    }

    /// Bytes 4..8 as one 32-bit word (NDP flags, reserved fields).
    pub fn rest(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// Everything after the eight-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum, with the pseudo-header of `src` and `dst`, is right.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        checksum::pseudo_header_v6(*src, *dst, ip_proto::ICMPV6, b.len() as u32)
            .add_bytes(b)
            .fold()
            == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets bytes 4..8.
    pub fn set_rest(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 4, v);
    }

    /// Everything after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and fills the checksum with the pseudo-header of `src`, `dst`.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = self.buffer.as_ref();
        let c = checksum::pseudo_header_v6(*src, *dst, ip_proto::ICMPV6, b.len() as u32)
            .add_bytes(b)
            .finish();
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// An ICMPv6 message this stack understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable.
    DstUnreachable {
        /// Code (see [`mod@unreachable`]).
        code: u8,
        /// The start of the packet that caused it.
        data: &'a [u8],
    },
    /// Packet too big.
    PktTooBig {
        /// The MTU of the next hop.
        mtu: u32,
        /// The start of the packet that caused it.
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code (0: hop limit, 1: reassembly).
        code: u8,
        /// The start of the packet that caused it.
        data: &'a [u8],
    },
    /// Parameter problem (RFC 4443 section 3.4).
    ParamProblem {
        /// Code (see [`param_problem`]).
        code: u8,
        /// Offset of the offending byte in the invoking packet.
        pointer: u32,
        /// The start of the packet that caused it.
        data: &'a [u8],
    },
    /// A neighbor discovery message.
    Ndp(NdpRepr),
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses a message sent from `src` to `dst`, verifying its checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(src: &Ipv6Addr, dst: &Ipv6Addr, p: &Icmpv6Packet<&'a T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let data = &p.buffer.as_ref()[HEADER_LEN..];
        match (p.msg_type(), p.msg_code()) {
            (msg_type::ECHO_REQUEST, 0) => Ok(Icmpv6Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (msg_type::ECHO_REPLY, 0) => Ok(Icmpv6Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (msg_type::DST_UNREACHABLE, code) => Ok(Icmpv6Repr::DstUnreachable { code, data }),
            (msg_type::PKT_TOO_BIG, 0) => Ok(Icmpv6Repr::PktTooBig { mtu: p.mtu(), data }),
            (msg_type::TIME_EXCEEDED, code) if code <= 1 => Ok(Icmpv6Repr::TimeExceeded { code, data }),
            (msg_type::PARAM_PROBLEM, code) => Ok(Icmpv6Repr::ParamProblem {
                code,
                pointer: p.rest(),
                data,
            }),
            (msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT, _) => NdpRepr::parse(p).map(Icmpv6Repr::Ndp),
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the message.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. }
            | Icmpv6Repr::EchoReply { data, .. }
            | Icmpv6Repr::DstUnreachable { data, .. }
            | Icmpv6Repr::PktTooBig { data, .. }
            | Icmpv6Repr::TimeExceeded { data, .. }
            | Icmpv6Repr::ParamProblem { data, .. } => HEADER_LEN + data.len(),
            Icmpv6Repr::Ndp(n) => n.buffer_len(),
        }
    }

    /// Writes the message and its checksum for `src` -> `dst` (the buffer
    /// must be exactly [`Self::buffer_len`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, src: &Ipv6Addr, dst: &Ipv6Addr, p: &mut Icmpv6Packet<T>) {
        let (ty, code, rest, data) = match *self {
            Icmpv6Repr::EchoRequest { ident, seq_no, data } => {
                (msg_type::ECHO_REQUEST, 0, (ident as u32) << 16 | seq_no as u32, data)
            }
            Icmpv6Repr::EchoReply { ident, seq_no, data } => {
                (msg_type::ECHO_REPLY, 0, (ident as u32) << 16 | seq_no as u32, data)
            }
            Icmpv6Repr::DstUnreachable { code, data } => (msg_type::DST_UNREACHABLE, code, 0, data),
            Icmpv6Repr::PktTooBig { mtu, data } => (msg_type::PKT_TOO_BIG, 0, mtu, data),
            Icmpv6Repr::TimeExceeded { code, data } => (msg_type::TIME_EXCEEDED, code, 0, data),
            Icmpv6Repr::ParamProblem { code, pointer, data } => (msg_type::PARAM_PROBLEM, code, pointer, data),
            Icmpv6Repr::Ndp(n) => {
                n.emit(p);
                p.fill_checksum(src, dst);
                return;
            }
        };
        p.set_msg_type(ty);
        p.set_msg_code(code);
        p.set_rest(rest);
        p.data_mut()[..data.len()].copy_from_slice(data);
        p.fill_checksum(src, dst);
    }
}

/// Sum used by callers that build ICMPv6 in pieces.
pub fn pseudo_sum(src: &Ipv6Addr, dst: &Ipv6Addr, len: usize) -> Sum {
    checksum::pseudo_header_v6(*src, *dst, ip_proto::ICMPV6, len as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }
    fn dst() -> Ipv6Addr {
        "fe80::2".parse().unwrap()
    }

    #[test]
    fn golden_echo() {
        // Checksum computed independently (a Python script): pseudo-header
        // (fe80::1, fe80::2, len 12, nh 58) plus the message.
        let b = hex("80 00 abb8 1234 0001 61626364");
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        let r = Icmpv6Repr::parse(&src(), &dst(), &p).unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&src(), &dst(), &mut Icmpv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
        // Another destination: the checksum no longer matches.
        let other: Ipv6Addr = "fe80::3".parse().unwrap();
        assert_eq!(Icmpv6Repr::parse(&src(), &other, &p).unwrap_err(), Error::Checksum);
    }

    #[test]
    fn golden_too_big() {
        let inner = [0x60u8, 0, 0, 0];
        let r = Icmpv6Repr::PktTooBig {
            mtu: 1280,
            data: &inner,
        };
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&src(), &dst(), &mut Icmpv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..2], &[2, 0]);
        assert_eq!(&out[4..], &hex("0000 0500 60000000")[..]);
        assert_eq!(
            Icmpv6Repr::parse(&src(), &dst(), &Icmpv6Packet::new_checked(&out[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn golden_param_problem() {
        // Unrecognized next header at offset 6 of the invoking packet;
        // checksum computed independently (Python).
        let b = hex("04 01 a168 00000006 60000000 0000 fd 40");
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        let r = Icmpv6Repr::parse(&src(), &dst(), &p).unwrap();
        let want = Icmpv6Repr::ParamProblem {
            code: param_problem::NEXT_HEADER,
            pointer: 6,
            data: &b[8..],
        };
        assert_eq!(r, want);
        let mut out = vec![0u8; want.buffer_len()];
        want.emit(&src(), &dst(), &mut Icmpv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(Icmpv6Packet::new_checked(&[0u8; 8][..n]).unwrap_err(), Error::Truncated);
        }
    }
}
