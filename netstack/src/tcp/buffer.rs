//! A connection's byte buffers: the bounded send buffer (bytes the program
//! wrote that the peer has not acknowledged) and the bounded receive buffer
//! (bytes received in order and not yet read, plus out-of-order bytes kept
//! in place until the hole before them fills).
//!
//! Memory is bounded by construction: each buffer is one ring that grows on
//! demand up to its capacity and never beyond (an idle connection holds
//! next to nothing), the capacity changes only when the tcpcb says so
//! (autotuning, `SO_SNDBUF`/`SO_RCVBUF`), and out-of-order data is written into the receive ring
//! at its final position, tracked by at most [`MAX_OOO_RANGES`] ranges. A
//! flood of out-of-order segments can grow neither memory past the capacity
//! nor the range list; a segment that would need one more range is dropped
//! (the peer resends it).
//!
//! Not for: sequence numbers, windows or any protocol decision — offsets
//! here are plain byte counts; the tcpcb maps sequence numbers to them.

use std::collections::VecDeque;

/// The most disjoint out-of-order ranges a receive buffer tracks.
pub const MAX_OOO_RANGES: usize = 32;

/// Bytes written by the program and not yet acknowledged by the peer. The
/// first byte is the oldest unacknowledged one (at `SND.UNA`, once the SYN is
/// acknowledged).
#[derive(Debug, Clone)]
pub struct SendBuffer {
    data: VecDeque<u8>,
    capacity: usize,
}

impl SendBuffer {
    /// An empty buffer holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            data: VecDeque::new(),
            capacity,
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Most bytes held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Room left (none while a smaller capacity than the bytes held is set).
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    /// Sets the most bytes held. A capacity below what is held keeps those
    /// bytes and takes no more until enough are acknowledged.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Copies as much of `buf` as fits; returns how much.
    pub fn write(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.free());
        self.data.extend(&buf[..n]);
        n
    }

    /// Drops the oldest `n` bytes (acknowledged by the peer).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
    }

    /// The `len` bytes starting `offset` bytes in, as up to two slices.
    /// Panics if the range is not held.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        assert!(offset + len <= self.data.len(), "send buffer range out of bounds");
        let (a, b) = self.data.as_slices();
        if offset >= a.len() {
            let o = offset - a.len();
            (&b[o..o + len], &[])
        } else if offset + len <= a.len() {
            (&a[offset..offset + len], &[])
        } else {
            (&a[offset..], &b[..len - (a.len() - offset)])
        }
    }
}

/// Why a receive buffer refused bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvRefused {
    /// Out-of-order bytes would need more than [`MAX_OOO_RANGES`] ranges.
    TooManyRanges,
}

/// Bytes received and not yet read, in a ring that grows on demand up to
/// the capacity. The ring holds the in-order bytes (readable) followed by
/// room into which out-of-order bytes are written at their offset from the
/// end of the in-order bytes (that is, from `RCV.NXT`).
#[derive(Debug, Clone)]
pub struct RecvBuffer {
    /// The ring; its length is what is allocated (at most `capacity`).
    ring: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
    /// Out-of-order ranges `[start, end)` as offsets from the end of the
    /// in-order bytes; sorted, disjoint and not adjacent, never starting at 0.
    ooo: Vec<(usize, usize)>,
}

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Vec::new(),
            capacity,
            head: 0,
            len: 0,
            ooo: Vec::with_capacity(MAX_OOO_RANGES),
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated now (at most the capacity).
    pub fn allocated(&self) -> usize {
        self.ring.len()
    }

    /// In-order bytes ready to read.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room after the in-order bytes: the receive window.
    pub fn window(&self) -> usize {
        self.capacity - self.len
    }

    /// Where the last out-of-order range ends, as an offset from the end of
    /// the in-order bytes (0 without any).
    pub fn ooo_end(&self) -> usize {
        self.ooo.last().map_or(0, |r| r.1)
    }

    /// The out-of-order ranges, as offsets from the end of the in-order
    /// bytes.
    pub fn ooo_ranges(&self) -> &[(usize, usize)] {
        &self.ooo
    }

    /// Bytes held out of order.
    pub fn ooo_bytes(&self) -> usize {
        self.ooo.iter().map(|(s, e)| e - s).sum()
    }

    /// Bytes from the head that hold data: the in-order bytes and the room
    /// up to the end of the last out-of-order range.
    fn used(&self) -> usize {
        self.len + self.ooo.last().map_or(0, |r| r.1)
    }

    /// Sets the capacity, never below the bytes in use (in order, and out of
    /// order up to the last range). A ring larger than the new capacity is
    /// reallocated smaller. Returns the capacity set.
    pub fn set_capacity(&mut self, capacity: usize) -> usize {
        self.capacity = capacity.max(self.used());
        if self.ring.len() > self.capacity {
            self.reshape(self.used());
        }
        self.capacity
    }

    /// Replaces the ring with one that holds `need` bytes from the head
    /// (`need` at least the bytes in use, at most the capacity), keeping
    /// every byte in use at its offset from the head.
    fn reshape(&mut self, need: usize) {
        let used = self.used();
        debug_assert!(used <= need && need <= self.capacity);
        let size = need.next_power_of_two().max(4096).min(self.capacity);
        let mut ring = vec![0; size];
        let old = self.ring.len();
        if old > 0 {
            let first = used.min(old - self.head);
            ring[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
            ring[first..used].copy_from_slice(&self.ring[..used - first]);
        }
        self.ring = ring;
        self.head = 0;
    }

    fn copy_in(&mut self, at: usize, data: &[u8]) {
        let need = self.len + at + data.len();
        if need > self.ring.len() {
            self.reshape(need);
        }
        let cap = self.ring.len();
        let start = (self.head + self.len + at) % cap;
        let first = data.len().min(cap - start);
        self.ring[start..start + first].copy_from_slice(&data[..first]);
        self.ring[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Stores `data` at `offset` bytes past the in-order bytes (bytes beyond
    /// the window are cut off). Returns how many bytes became readable (0 if
    /// the bytes are out of order).
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> Result<usize, RecvRefused> {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return Ok(0);
        }
        let data = &data[..data.len().min(window - offset)];
        if offset == 0 && self.ooo.is_empty() {
            // The common case, in order with no gap behind: no range list
            // to merge.
            self.copy_in(0, data);
            self.len += data.len();
            return Ok(data.len());
        }
        let (s, e) = (offset, offset + data.len());
        // Merge [s, e) into the range list (offset 0 counts as a range that
        // will be absorbed into the in-order bytes below).
        let first = self.ooo.partition_point(|&(_, re)| re < s);
        let mut last = first;
        while last < self.ooo.len() && self.ooo[last].0 <= e {
            last += 1;
        }
        let (mut ns, mut ne) = (s, e);
        if first < last {
            ns = ns.min(self.ooo[first].0);
            ne = ne.max(self.ooo[last - 1].1);
        } else if self.ooo.len() >= MAX_OOO_RANGES && s > 0 {
            return Err(RecvRefused::TooManyRanges);
        }
        self.copy_in(s, data);
        self.ooo.splice(first..last, [(ns, ne)]);
        // Anything starting at offset 0 is now in order.
        if self.ooo[0].0 == 0 {
            let n = self.ooo[0].1;
            self.ooo.remove(0);
            self.len += n;
            for r in &mut self.ooo {
                r.0 -= n;
                r.1 -= n;
            }
            return Ok(n);
        }
        Ok(0)
    }

    /// Copies up to `buf.len()` in-order bytes out without consuming them
    /// (`MSG_PEEK`); returns how many.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len);
        let cap = self.ring.len();
        let first = n.min(cap - self.head);
        buf[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
        buf[first..n].copy_from_slice(&self.ring[..n - first]);
        n
    }

    /// Copies up to `buf.len()` in-order bytes out; returns how many.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.peek(buf);
        self.head = (self.head + n) % self.ring.len().max(1);
        self.len -= n;
        n
    }

    /// Drops every out-of-order range (the window shrank under them or the
    /// connection is going away).
    pub fn clear_ooo(&mut self) {
        self.ooo.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_buffer_is_bounded_and_slices_wrap() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.write(b"ghijklmn"), 6);
        assert_eq!(b.free(), 0);
        let (x, y) = b.slices(1, 6);
        assert_eq!([x, y].concat(), b"fghijk");
    }

    #[test]
    fn recv_buffer_reassembles_out_of_order() {
        let mut b = RecvBuffer::new(16);
        assert_eq!(b.insert(4, b"efgh"), Ok(0));
        assert_eq!(b.insert(10, b"kl"), Ok(0));
        assert_eq!(b.ooo_ranges(), &[(4, 8), (10, 12)]);
        assert_eq!(b.insert(0, b"abcd"), Ok(8));
        assert_eq!(b.ooo_ranges(), &[(2, 4)]);
        assert_eq!(b.insert(0, b"ij"), Ok(4));
        let mut out = [0; 32];
        assert_eq!(b.read(&mut out), 12);
        assert_eq!(&out[..12], b"abcdefghijkl");
        // Wraps around the ring; bytes beyond the window are cut.
        assert_eq!(b.insert(0, b"0123456789abcdefXYZ"), Ok(16));
        assert_eq!(b.read(&mut out), 16);
        assert_eq!(&out[..16], b"0123456789abcdef");
    }

    /// Random overlapping pieces of a stream, in random order, with reads in
    /// between: what is read is the stream, in order, and the range list is
    /// always sorted, disjoint and within the window.
    #[test]
    fn recv_buffer_matches_a_model() {
        let mut rng = crate::sim::SimRng::new(7);
        for _ in 0..200 {
            // Small rings, and large ones that grow while in use.
            let big = rng.chance(0.5);
            let cap = if big {
                4000 + rng.below(30_000) as usize
            } else {
                1 + rng.below(300) as usize
            };
            let piece = if big { 3000 } else { 80 };
            let stream: Vec<u8> = (0..if big { 100_000 } else { 3000 })
                .map(|_| rng.next_u64() as u8)
                .collect();
            let mut b = RecvBuffer::new(cap);
            let (mut nxt, mut out) = (0usize, Vec::new());
            for _ in 0..2000 {
                if out.len() == stream.len() {
                    break;
                }
                let off = rng.below(cap as u64 + 10) as usize;
                let len = rng.below(piece) as usize;
                let end = (nxt + off + len).min(stream.len());
                let start = (nxt + off).min(end);
                match b.insert(off, &stream[start..end]) {
                    Ok(n) => nxt += n,
                    Err(RecvRefused::TooManyRanges) => assert_eq!(b.ooo_ranges().len(), MAX_OOO_RANGES),
                }
                let r = b.ooo_ranges();
                assert!(r.windows(2).all(|w| w[0].1 < w[1].0), "{r:?}");
                assert!(r.iter().all(|&(s, e)| 0 < s && s < e && e <= b.window()), "{r:?}");
                if rng.chance(0.3) {
                    let mut buf = vec![0; rng.below(piece + 20) as usize];
                    let n = b.read(&mut buf);
                    out.extend_from_slice(&buf[..n]);
                }
                assert_eq!(out.len() + b.len(), nxt);
                assert!(b.allocated() <= b.capacity());
            }
            let mut rest = vec![0; b.len()];
            b.read(&mut rest);
            out.extend_from_slice(&rest);
            assert_eq!(out[..], stream[..out.len()]);
        }
    }

    #[test]
    fn recv_buffer_range_count_is_bounded() {
        let mut b = RecvBuffer::new(1024);
        for i in 0..MAX_OOO_RANGES {
            assert_eq!(b.insert(2 + 2 * i, b"x"), Ok(0));
        }
        assert_eq!(b.insert(900, b"y"), Err(RecvRefused::TooManyRanges));
        // Filling a gap between ranges still works.
        assert_eq!(b.insert(3, b"z"), Ok(0));
        assert_eq!(b.ooo_ranges().len(), MAX_OOO_RANGES - 1);
    }
}
