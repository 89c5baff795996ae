//! ICMP for IPv4 (RFC 792, RFC 1191): echo, destination unreachable (with the
//! next-hop MTU of "fragmentation needed") and time exceeded.

use super::checksum;
use super::{be16, put16, Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const MTU: usize = 6;
}

/// Length of the ICMP header (type, code, checksum, four more bytes).
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination-unreachable codes.
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
}

/// A view over an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
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

    /// Next-hop MTU of "fragmentation needed".
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MTU)
    }

    /// Everything after the eight-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole buffer is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets bytes 4..8 as two 16-bit words.
    pub fn set_rest(&mut self, a: u16, b: u16) {
        put16(self.buffer.as_mut(), field::IDENT, a);
        put16(self.buffer.as_mut(), field::SEQ, b);
    }

    /// Everything after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and fills the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// An ICMPv4 message this stack understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
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
        /// Next-hop MTU (code 4 only; zero otherwise).
        next_hop_mtu: u16,
        /// The start of the packet that caused it.
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code (0: TTL, 1: reassembly).
        code: u8,
        /// The start of the packet that caused it.
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message, verifying its checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Icmpv4Packet<&'a T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data = &p.buffer.as_ref()[HEADER_LEN..];
        match (p.msg_type(), p.msg_code()) {
            (msg_type::ECHO_REQUEST, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (msg_type::ECHO_REPLY, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (msg_type::DST_UNREACHABLE, code) if code <= 15 => Ok(Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu: if code == unreachable::FRAG_NEEDED {
                    p.next_hop_mtu()
                } else {
                    0
                },
                data,
            }),
            (msg_type::TIME_EXCEEDED, code) if code <= 1 => Ok(Icmpv4Repr::TimeExceeded { code, data }),
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. }
                | Icmpv4Repr::EchoReply { data, .. }
                | Icmpv4Repr::DstUnreachable { data, .. }
                | Icmpv4Repr::TimeExceeded { data, .. } => data.len(),
            }
    }

    /// Writes the message and its checksum (the buffer must be exactly
    /// [`Self::buffer_len`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Icmpv4Packet<T>) {
        let (ty, code, a, b, data) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } => (msg_type::ECHO_REQUEST, 0, ident, seq_no, data),
            Icmpv4Repr::EchoReply { ident, seq_no, data } => (msg_type::ECHO_REPLY, 0, ident, seq_no, data),
            Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => (msg_type::DST_UNREACHABLE, code, 0, next_hop_mtu, data),
            Icmpv4Repr::TimeExceeded { code, data } => (msg_type::TIME_EXCEEDED, code, 0, 0, data),
        };
        p.set_msg_type(ty);
        p.set_msg_code(code);
        p.set_rest(a, b);
        p.data_mut()[..data.len()].copy_from_slice(data);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;

    // Echo request id 0x1234 seq 1, data "abcd".
    const ECHO: &str = "08 00 2104 1234 0001 61626364";

    #[test]
    fn golden_echo() {
        let b = hex(ECHO);
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        let r = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn golden_frag_needed() {
        let inner = hex("4500 0014 0000 4000 4011 0000 0a000001 0a000002");
        let r = Icmpv4Repr::DstUnreachable {
            code: unreachable::FRAG_NEEDED,
            next_hop_mtu: 1400,
            data: &inner,
        };
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!((out[0], out[1]), (3, 4));
        assert_eq!(&out[4..8], &hex("0000 0578")[..]);
        assert_eq!(&out[8..], &inner[..]);
        assert!(checksum::verify(&out));
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn malformed() {
        let b = hex(ECHO);
        for n in 0..HEADER_LEN {
            assert_eq!(Icmpv4Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
        let mut c = b.clone();
        c[9] ^= 0xff;
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&c[..]).unwrap()).unwrap_err(),
            Error::Checksum
        );
        let mut u = b.clone();
        u[0] = 13; // timestamp
        Icmpv4Packet::new_unchecked(&mut u[..]).fill_checksum();
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&u[..]).unwrap()).unwrap_err(),
            Error::Unsupported
        );
    }
}
