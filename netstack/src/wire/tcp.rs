//! TCP headers and options (RFC 9293; RFC 7323 window scale and timestamps;
//! RFC 2018 SACK). Only the header: the state machine lives elsewhere.
//!
//! Options are checked strictly: any option other than end-of-list and no-op
//! must have a length of at least 2 (a length of 0 or 1 would loop forever or
//! overlap the next option), must fit in the header, and the options this
//! stack knows must have their fixed length.

use super::checksum::{ChecksumMode, PseudoHeader};
use super::{be16, be32, ip_proto, put16, put32, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Flag bits of byte 13.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Most SACK blocks one option can carry.
pub const MAX_SACK_BLOCKS: usize = 4;

/// A view over a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer and checks it with [`TcpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds 20 bytes, the data offset is at least 5
    /// and the header it announces fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < hl {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number (meaningful only with ACK).
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset times four).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::OFF] >> 4) * 4
    }

    /// The flag byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether flag `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags() & f != 0
    }

    /// Window.
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len() as usize]
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len() as usize..]
    }

    /// Whether the checksum over the whole buffer is right.
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        let b = self.buffer.as_ref();
        ph.sum(ip_proto::TCP, b.len()).add_bytes(b).fold() == 0xffff
    }

    /// Whether the checksum field holds the pseudo-header sum alone (not
    /// complemented): what a sender that left the checksum to offload put
    /// there, as Linux does for `CHECKSUM_PARTIAL` (`__tcp_v4_send_check`:
    /// `th->check = ~tcp_v4_check(skb->len, saddr, daddr, 0)`) and as
    /// [`ChecksumMode::Offload`] writes it. Such a segment reaches us when
    /// nothing on the way completed the checksum.
    pub fn is_partial_checksum(&self, ph: &PseudoHeader) -> bool {
        self.checksum() == ph.sum(ip_proto::TCP, self.buffer.as_ref().len()).fold()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v)
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v)
    }

    /// Sets the header length in bytes (a multiple of four, 20..=60).
    pub fn set_header_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::OFF] = (v / 4) << 4;
    }

    /// Sets the flag byte.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the window.
    pub fn set_window_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v)
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v)
    }

    /// The option bytes, mutably.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        &mut self.buffer.as_mut()[hl..]
    }

    /// Fills the checksum over the whole buffer (or the pseudo-header sum
    /// for offload).
    pub fn fill_checksum(&mut self, ph: &PseudoHeader, mode: ChecksumMode) {
        self.set_checksum(0);
        let l = self.buffer.as_ref().len();
        let c = match mode {
            ChecksumMode::Offload => ph.sum(ip_proto::TCP, l).fold(),
            ChecksumMode::Compute => ph.sum(ip_proto::TCP, l).add_bytes(self.buffer.as_ref()).finish(),
        };
        self.set_checksum(c);
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0).
    EndOfList,
    /// No-operation (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift count (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// SACK blocks (kind 5): up to four (left, right) edges.
    SackRange([Option<(u32, u32)>; MAX_SACK_BLOCKS]),
    /// Timestamps (kind 8).
    Timestamp {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other option, with its body.
    Unknown {
        /// Kind.
        kind: u8,
        /// Body after kind and length.
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Parses the option at the start of `b`; returns it and the rest.
    pub fn parse(b: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>)> {
        let kind = *b.first().ok_or(Error::Truncated)?;
        match kind {
            0 => return Ok((&[], TcpOption::EndOfList)),
            1 => return Ok((&b[1..], TcpOption::NoOperation)),
            _ => {}
        }
        let len = *b.get(1).ok_or(Error::Malformed)? as usize;
        if len < 2 || len > b.len() {
            return Err(Error::Malformed);
        }
        let data = &b[2..len];
        let opt = match (kind, len) {
            (2, 4) => TcpOption::MaxSegmentSize(be16(data, 0)),
            (3, 3) => TcpOption::WindowScale(data[0]),
            (4, 2) => TcpOption::SackPermitted,
            (5, _) if (len - 2) & 7 == 0 && (1..=MAX_SACK_BLOCKS).contains(&((len - 2) / 8)) => {
                let mut r = [None; MAX_SACK_BLOCKS];
                for (i, c) in data.chunks_exact(8).enumerate() {
                    r[i] = Some((be32(c, 0), be32(c, 4)));
                }
                TcpOption::SackRange(r)
            }
            (8, 10) => TcpOption::Timestamp {
                tsval: be32(data, 0),
                tsecr: be32(data, 4),
            },
            (2..=5 | 8, _) => return Err(Error::Malformed),
            _ => TcpOption::Unknown { kind, data },
        };
        Ok((&b[len..], opt))
    }
}

/// Iterates over the options in `b`, stopping after end-of-list. Yields one
/// `Err` and stops at the first malformed option.
pub fn options(b: &[u8]) -> impl Iterator<Item = Result<TcpOption<'_>>> {
    let mut rest = b;
    let mut done = false;
    core::iter::from_fn(move || {
        if done || rest.is_empty() {
            return None;
        }
        match TcpOption::parse(rest) {
            Ok((r, o)) => {
                rest = r;
                if o == TcpOption::EndOfList {
                    done = true;
                }
                Some(Ok(o))
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// The control flag a segment carries (at most one of SYN, FIN, RST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpControl {
    /// None of them.
    #[default]
    None,
    /// SYN.
    Syn,
    /// FIN.
    Fin,
    /// RST.
    Rst,
}

/// A TCP header with its options, and the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SYN, FIN, RST or none.
    pub control: TcpControl,
    /// PSH.
    pub push: bool,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number, if ACK is set.
    pub ack_number: Option<u32>,
    /// Window (unscaled, as on the wire).
    pub window_len: u16,
    /// Window scale option.
    pub window_scale: Option<u8>,
    /// MSS option.
    pub max_seg_size: Option<u16>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// SACK blocks.
    pub sack_ranges: [Option<(u32, u32)>; MAX_SACK_BLOCKS],
    /// Timestamps option (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// ECN-echo flag.
    pub ece: bool,
    /// Congestion-window-reduced flag.
    pub cwr: bool,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a segment: lengths, ports (neither may be zero), flags (SYN
    /// with FIN or RST is refused), options, checksum (unless offloaded).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &TcpPacket<&'a T>, ph: &PseudoHeader, mode: ChecksumMode) -> Result<Self> {
        p.check_len()?;
        if p.src_port() == 0 || p.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if mode == ChecksumMode::Compute && !p.verify_checksum(ph) {
            return Err(Error::Checksum);
        }
        let f = p.flags();
        let control = match (f & flags::SYN != 0, f & flags::FIN != 0, f & flags::RST != 0) {
            (false, false, false) => TcpControl::None,
            (true, false, false) => TcpControl::Syn,
            (false, true, false) => TcpControl::Fin,
            (false, _, true) => TcpControl::Rst,
            _ => return Err(Error::Malformed),
        };
        let buf: &'a [u8] = p.buffer.as_ref();
        let hl = p.header_len() as usize;
        let mut r = TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            control,
            push: f & flags::PSH != 0,
            seq_number: p.seq_number(),
            ack_number: if f & flags::ACK != 0 {
                Some(p.ack_number())
            } else {
                None
            },
            window_len: p.window_len(),
            ece: f & flags::ECE != 0,
            cwr: f & flags::CWR != 0,
            payload: &buf[hl..],
            ..Default::default()
        };
        for o in options(&buf[field::OPTIONS..hl]) {
            match o? {
                TcpOption::MaxSegmentSize(v) => r.max_seg_size = Some(v),
                // RFC 7323 section 2.3: a shift count above 14 is used as 14.
                TcpOption::WindowScale(v) => r.window_scale = Some(v.min(14)),
                TcpOption::SackPermitted => r.sack_permitted = true,
                TcpOption::SackRange(s) => r.sack_ranges = s,
                TcpOption::Timestamp { tsval, tsecr } => r.timestamp = Some((tsval, tsecr)),
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
            }
        }
        Ok(r)
    }

    fn sack_blocks(&self) -> usize {
        let n = self.sack_ranges.iter().filter(|r| r.is_some()).count();
        // Options are at most 40 bytes; whatever else is there leaves room
        // for this many blocks (4 bytes of NOP/kind/len each).
        let other = self.options_len_without_sack();
        n.min((40usize.saturating_sub(other + 4)) / 8)
    }

    fn options_len_without_sack(&self) -> usize {
        self.max_seg_size.map_or(0, |_| 4)
            + self.window_scale.map_or(0, |_| 4)
            + if self.sack_permitted { 4 } else { 0 }
            + self.timestamp.map_or(0, |_| 12)
    }

    /// Length of the header with options.
    pub fn header_len(&self) -> usize {
        let n = self.sack_blocks();
        HEADER_LEN + self.options_len_without_sack() + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// Length of header and payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies (payload, plus one for SYN or FIN).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + matches!(self.control, TcpControl::Syn | TcpControl::Fin) as usize
    }

    /// Writes header, options (each padded with no-ops to a 4-byte
    /// boundary; SACK blocks that do not fit in 40 bytes are left out),
    /// payload and checksum. The buffer must be exactly [`Self::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>, ph: &PseudoHeader, mode: ChecksumMode) {
        self.emit_header(p);
        p.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        p.fill_checksum(ph, mode);
    }

    /// Writes header and options only, for a payload the caller copies in
    /// itself (e.g. from the two halves of a ring buffer) before calling
    /// [`TcpPacket::fill_checksum`]. `self.payload` is not used; the buffer
    /// must be [`Self::header_len`] plus the payload's length.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>) {
        let hl = self.header_len();
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number.unwrap_or(0));
        p.set_header_len(hl as u8);
        let mut f = match self.control {
            TcpControl::None => 0,
            TcpControl::Syn => flags::SYN,
            TcpControl::Fin => flags::FIN,
            TcpControl::Rst => flags::RST,
        };
        if self.push {
            f |= flags::PSH;
        }
        if self.ack_number.is_some() {
            f |= flags::ACK;
        }
        if self.ece {
            f |= flags::ECE;
        }
        if self.cwr {
            f |= flags::CWR;
        }
        p.set_flags(f);
        p.set_window_len(self.window_len);
        p.set_urgent_at(0);
        let o = p.options_mut();
        let mut at = 0;
        if let Some(mss) = self.max_seg_size {
            o[at..at + 2].copy_from_slice(&[2, 4]);
            put16(o, at + 2, mss);
            at += 4;
        }
        if let Some(ws) = self.window_scale {
            o[at..at + 4].copy_from_slice(&[1, 3, 3, ws]);
            at += 4;
        }
        if self.sack_permitted {
            o[at..at + 4].copy_from_slice(&[1, 1, 4, 2]);
            at += 4;
        }
        if let Some((tsval, tsecr)) = self.timestamp {
            o[at..at + 4].copy_from_slice(&[1, 1, 8, 10]);
            put32(o, at + 4, tsval);
            put32(o, at + 8, tsecr);
            at += 12;
        }
        let n = self.sack_blocks();
        if n > 0 {
            o[at..at + 4].copy_from_slice(&[1, 1, 5, (2 + 8 * n) as u8]);
            at += 4;
            for (l, r) in self.sack_ranges.iter().flatten().take(n) {
                put32(o, at, *l);
                put32(o, at + 4, *r);
                at += 8;
            }
        }
        debug_assert_eq!(at + HEADER_LEN, hl);
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

    // SYN 10.0.0.1:40000 -> 10.0.0.2:80, seq 1, window 64240, options:
    // MSS 1460, NOP WS 7, NOP NOP SACK-permitted, NOP NOP TS 100 0.
    fn syn_bytes() -> Vec<u8> {
        let mut b = hex("9c40 0050 00000001 00000000 b0 02 faf0 0000 0000
             0204 05b4 0103 0307 0101 0402 0101 080a 00000064 00000000");
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(&ph(), ChecksumMode::Compute);
        b
    }

    fn syn_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: 1,
            window_len: 64240,
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((100, 0)),
            ..Default::default()
        }
    }

    #[test]
    fn golden_syn() {
        let b = syn_bytes();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 44);
        let r = TcpRepr::parse(&p, &ph(), ChecksumMode::Compute).unwrap();
        assert_eq!(r, syn_repr());
        assert_eq!(r.buffer_len(), 44);
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            &ph(),
            ChecksumMode::Compute,
        );
        assert_eq!(out, b);
    }

    #[test]
    fn golden_sack_and_payload() {
        let r = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq_number: 7,
            ack_number: Some(9),
            push: true,
            window_len: 100,
            timestamp: Some((1, 2)),
            sack_ranges: [Some((10, 20)), Some((30, 40)), Some((50, 60)), Some((70, 80))],
            payload: b"xyz",
            ..Default::default()
        };
        // Timestamps leave room for three blocks only.
        assert_eq!(r.header_len(), 20 + 12 + 4 + 24);
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            &ph(),
            ChecksumMode::Compute,
        );
        assert_eq!(&out[32..40], &hex("0101 051a 0000000a")[..]);
        let p = TcpPacket::new_checked(&out[..]).unwrap();
        let back = TcpRepr::parse(&p, &ph(), ChecksumMode::Compute).unwrap();
        assert_eq!(back.sack_ranges, [Some((10, 20)), Some((30, 40)), Some((50, 60)), None]);
        assert_eq!(back.payload, b"xyz");
        assert_eq!(back.ack_number, Some(9));
        assert!(back.push);
    }

    #[test]
    fn emit_header_then_payload_in_pieces() {
        let r = TcpRepr {
            payload: b"hello world",
            ..syn_repr()
        };
        let mut whole = vec![0u8; r.buffer_len()];
        r.emit(
            &mut TcpPacket::new_unchecked(&mut whole[..]),
            &ph(),
            ChecksumMode::Compute,
        );
        let mut pieces = vec![0u8; r.buffer_len()];
        let mut p = TcpPacket::new_unchecked(&mut pieces[..]);
        TcpRepr { payload: &[], ..r }.emit_header(&mut p);
        p.payload_mut()[..5].copy_from_slice(b"hello");
        p.payload_mut()[5..].copy_from_slice(b" world");
        p.fill_checksum(&ph(), ChecksumMode::Compute);
        assert_eq!(pieces, whole);
    }

    #[test]
    fn option_length_zero_or_one_rejected() {
        for bad in [0u8, 1] {
            for kind in [2u8, 3, 4, 5, 8, 30] {
                let o = [kind, bad, 0, 0];
                assert_eq!(
                    TcpOption::parse(&o).unwrap_err(),
                    Error::Malformed,
                    "kind {kind} len {bad}"
                );
            }
        }
        // Kind without a length byte.
        assert_eq!(TcpOption::parse(&[2]).unwrap_err(), Error::Malformed);
        // Length past the end.
        assert_eq!(TcpOption::parse(&[8, 10, 0, 0]).unwrap_err(), Error::Malformed);
        // Wrong fixed lengths.
        assert_eq!(TcpOption::parse(&[2, 3, 0]).unwrap_err(), Error::Malformed);
        assert_eq!(
            TcpOption::parse(&[5, 9, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            Error::Malformed
        );
        // Unknown options of length >= 2 are skipped.
        assert_eq!(
            TcpOption::parse(&[30, 2, 9]).unwrap(),
            (&[9u8][..], TcpOption::Unknown { kind: 30, data: &[] })
        );
        // In a segment: a zero-length option makes the segment malformed.
        let mut b = syn_bytes();
        b[21] = 0;
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(&ph(), ChecksumMode::Compute);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, &ph(), ChecksumMode::Compute).unwrap_err(),
            Error::Malformed
        );
    }

    /// A SYN 10.199.0.2:45696 -> 10.199.0.1:9 exactly as a Linux 6.18 veth
    /// peer with tx checksumming on handed it to a packet socket on the
    /// other end: `CHECKSUM_PARTIAL`, the field 0x15bf is the pseudo-header
    /// sum alone.
    const LINUX_PARTIAL_SYN: &str = "b280 0009 943369cf 00000000 a0 02 faf0 15bf 0000
         020405b40402080a2edf4536000000000103030a";

    fn linux_ph() -> PseudoHeader {
        PseudoHeader::V4(Ipv4Addr::new(10, 199, 0, 2), Ipv4Addr::new(10, 199, 0, 1))
    }

    #[test]
    fn partial_checksum_as_linux_leaves_it() {
        let mut b = hex(LINUX_PARTIAL_SYN);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum(&linux_ph()));
        assert!(p.is_partial_checksum(&linux_ph()));
        assert!(!p.is_partial_checksum(&ph()), "another pseudo-header");
        // What our own offload mode leaves is the same value.
        let mut q = TcpPacket::new_unchecked(&mut b[..]);
        q.fill_checksum(&linux_ph(), ChecksumMode::Offload);
        assert_eq!(q.checksum(), 0x15bf);
        // Completed, it verifies and is no longer "partial".
        q.fill_checksum(&linux_ph(), ChecksumMode::Compute);
        assert!(q.verify_checksum(&linux_ph()));
        assert!(!q.is_partial_checksum(&linux_ph()));
    }

    #[test]
    fn header_lengths() {
        let b = syn_bytes();
        for n in 0..44 {
            assert_eq!(TcpPacket::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
        for off in 0..5u8 {
            let mut c = b.clone();
            c[12] = off << 4;
            assert_eq!(TcpPacket::new_checked(&c[..]).unwrap_err(), Error::Malformed);
        }
    }

    #[test]
    fn flags_and_checksum() {
        let mut b = syn_bytes();
        b[13] = flags::SYN | flags::FIN;
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&ph(), ChecksumMode::Compute);
        assert_eq!(
            TcpRepr::parse(&TcpPacket::new_checked(&b[..]).unwrap(), &ph(), ChecksumMode::Compute).unwrap_err(),
            Error::Malformed
        );
        let mut b = syn_bytes();
        b[30] ^= 1;
        assert_eq!(
            TcpRepr::parse(&TcpPacket::new_checked(&b[..]).unwrap(), &ph(), ChecksumMode::Compute).unwrap_err(),
            Error::Checksum
        );
    }

    /// A segment with `opts` as its options (padded with end-of-list to a
    /// multiple of 4) and `payload` after them, checksum filled in.
    fn with_options(opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let olen = opts.len().div_ceil(4) * 4;
        let mut b = syn_bytes()[..HEADER_LEN].to_vec();
        b[12] = (((HEADER_LEN + olen) / 4) as u8) << 4;
        b.extend_from_slice(opts);
        b.resize(HEADER_LEN + olen, 0);
        b.extend_from_slice(payload);
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&ph(), ChecksumMode::Compute);
        b
    }

    fn parse(b: &[u8]) -> Result<TcpRepr<'_>> {
        TcpRepr::parse(&TcpPacket::new_checked(b)?, &ph(), ChecksumMode::Compute)
    }

    /// Options whose length runs past the header are refused, even when
    /// payload bytes follow that would make them "fit"; options cut short
    /// by the header's end likewise.
    #[test]
    fn option_past_the_header_rejected() {
        // Timestamps (length 10) in a 4-byte option area, payload after.
        let b = with_options(&[8, 10, 0, 0], &[0; 16]);
        assert_eq!(parse(&b).unwrap_err(), Error::Malformed);
        // SACK announcing two blocks (18) with room for one.
        let mut o = vec![1, 1, 5, 18];
        o.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&with_options(&o, b"data")).unwrap_err(), Error::Malformed);
        // MSS as the last two bytes of the area: kind and length only.
        assert_eq!(
            parse(&with_options(&[1, 1, 2, 4], &[5, 0xb4])).unwrap_err(),
            Error::Malformed
        );
        // A kind with no length byte at the very end.
        assert_eq!(parse(&with_options(&[1, 1, 1, 3], b"")).unwrap_err(), Error::Malformed);
        // Length 0 and 1 in the middle of a segment.
        for bad in [0u8, 1] {
            assert_eq!(
                parse(&with_options(&[30, bad, 1, 1], b"")).unwrap_err(),
                Error::Malformed
            );
        }
        // Everything after end-of-list is padding, whatever it holds.
        let b = with_options(&[2, 4, 2, 0, 0, 0xff, 0, 1], b"");
        let r = parse(&b).unwrap();
        assert_eq!(r.max_seg_size, Some(512));
        // 40 bytes of no-ops: no options, no trouble.
        let b = with_options(&[1; 40], b"x");
        let r = parse(&b).unwrap();
        assert_eq!((r.max_seg_size, r.payload), (None, &b"x"[..]));
        // Shift counts above 14 read as 14 (RFC 7323 §2.3); MSS 0 is
        // reported as is (the tcpcb clamps it).
        let b = with_options(&[3, 3, 200, 2, 4, 0, 0], b"");
        let r = parse(&b).unwrap();
        assert_eq!((r.window_scale, r.max_seg_size), (Some(14), Some(0)));
    }

    /// SYN with FIN, SYN with RST, all three: refused. RST with FIN or
    /// ACK is an RST.
    #[test]
    fn contradictory_flags() {
        for f in [
            flags::SYN | flags::FIN,
            flags::SYN | flags::RST,
            flags::SYN | flags::FIN | flags::RST,
            flags::SYN | flags::FIN | flags::ACK,
        ] {
            let mut b = syn_bytes();
            b[13] = f;
            TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&ph(), ChecksumMode::Compute);
            assert_eq!(parse(&b).unwrap_err(), Error::Malformed, "flags {f:#x}");
        }
        let mut b = syn_bytes();
        b[13] = flags::RST | flags::FIN | flags::ACK;
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&ph(), ChecksumMode::Compute);
        assert_eq!(parse(&b).unwrap().control, TcpControl::Rst);
    }

    /// Random option areas of every length: parsing ends (each step eats a
    /// byte or stops), never panics, and what parses re-emits to a header
    /// that parses to the same thing.
    #[test]
    fn random_options_never_panic_nor_loop() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok = 0;
        for i in 0..20_000 {
            let n = (i % 41) as usize;
            // Small kinds and lengths are the interesting ones.
            let opts: Vec<u8> = (0..n)
                .map(|_| {
                    let r = next();
                    if r & 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        ((r >> 8) % 12) as u8
                    }
                })
                .collect();
            let b = with_options(&opts, b"pay");
            let Ok(r) = parse(&b) else {
                continue;
            };
            ok += 1;
            let n = options(&opts).count();
            assert!(n <= opts.len());
            let mut out = vec![0; r.buffer_len()];
            r.emit(
                &mut TcpPacket::new_unchecked(&mut out[..]),
                &ph(),
                ChecksumMode::Compute,
            );
            let again = parse(&out).unwrap();
            assert_eq!(again, r, "{opts:02x?}");
        }
        assert!(ok > 1000, "the generator reaches valid option areas ({ok})");
    }
}
