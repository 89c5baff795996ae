//! [`MemoryNic`]: a network device made of two queues of `Vec<u8>` frames.
//!
//! Tests inject frames into its receive queue and take what the stack
//! transmitted; the simulator moves frames between the `MemoryNic`s of its
//! nodes. It does not parse frames, verify or fill checksums, or enforce the
//! MTU (links may).

use std::collections::VecDeque;

use crate::nic::{Capabilities, ChecksumCaps, Nic, RxMeta, TxFull, TxMeta};

/// Counters of a [`MemoryNic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryNicStats {
    /// Frames handed to the stack.
    pub rx_frames: u64,
    /// Frames refused because the receive queue was full.
    pub rx_dropped: u64,
    /// Frames the stack transmitted.
    pub tx_frames: u64,
    /// Transmissions refused with [`TxFull`].
    pub tx_full: u64,
}

/// An in-memory network device.
///
/// Transmitted frames are staged until [`Nic::flush`], as a real device may
/// hold them, and only flushed frames can be taken out. Frames are received
/// with [`RxMeta::default()`]: nothing was verified, the stack checks
/// checksums itself; by default the device claims no checksum offload.
#[derive(Debug, Clone)]
pub struct MemoryNic {
    mac: [u8; 6],
    caps: Capabilities,
    rx: VecDeque<Vec<u8>>,
    rx_limit: usize,
    staged: Vec<(Vec<u8>, TxMeta)>,
    tx: VecDeque<(Vec<u8>, TxMeta)>,
    tx_limit: usize,
    stats: MemoryNicStats,
}

impl MemoryNic {
    /// Default queue limits, in frames.
    pub const DEFAULT_QUEUE_LIMIT: usize = 1024;

    /// A device with address `mac`, MTU 1500, bursts of 32, no checksum
    /// offload and queues of [`MemoryNic::DEFAULT_QUEUE_LIMIT`] frames.
    pub fn new(mac: [u8; 6]) -> MemoryNic {
        MemoryNic::with_capabilities(
            mac,
            Capabilities {
                mtu: 1500,
                max_burst: 32,
                checksum: ChecksumCaps::default(),
            },
        )
    }

    /// A device with the given capabilities.
    pub fn with_capabilities(mac: [u8; 6], caps: Capabilities) -> MemoryNic {
        MemoryNic {
            mac,
            caps,
            rx: VecDeque::new(),
            rx_limit: Self::DEFAULT_QUEUE_LIMIT,
            staged: Vec::new(),
            tx: VecDeque::new(),
            tx_limit: Self::DEFAULT_QUEUE_LIMIT,
            stats: MemoryNicStats::default(),
        }
    }

    /// Sets the receive and transmit queue limits, in frames.
    pub fn set_queue_limits(&mut self, rx: usize, tx: usize) {
        self.rx_limit = rx;
        self.tx_limit = tx;
    }

    /// Puts a frame on the receive queue; returns `false` (and counts it) if
    /// the queue is full.
    pub fn inject(&mut self, frame: Vec<u8>) -> bool {
        if self.rx.len() >= self.rx_limit {
            self.stats.rx_dropped += 1;
            return false;
        }
        self.rx.push_back(frame);
        true
    }

    /// Takes the oldest flushed frame.
    pub fn pop_transmitted(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front().map(|(f, _)| f)
    }

    /// Takes the oldest flushed frame with the offloads the stack asked for.
    pub fn pop_transmitted_with_meta(&mut self) -> Option<(Vec<u8>, TxMeta)> {
        self.tx.pop_front()
    }

    /// Takes every flushed frame, oldest first.
    pub fn drain_transmitted(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.tx.drain(..).map(|(f, _)| f)
    }

    /// Frames waiting to be received.
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Flushed frames waiting to be taken.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Frames transmitted but not yet flushed.
    pub fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// Counters.
    pub fn stats(&self) -> &MemoryNicStats {
        &self.stats
    }
}

impl Nic for MemoryNic {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn receive<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, mut f: F) -> usize {
        let n = max.min(self.caps.max_burst).min(self.rx.len());
        for frame in self.rx.drain(..n) {
            f(&frame, RxMeta::default());
        }
        self.stats.rx_frames += n as u64;
        n
    }

    fn transmit<F: FnOnce(&mut [u8]) -> TxMeta>(&mut self, len: usize, f: F) -> Result<(), TxFull> {
        if self.staged.len() + self.tx.len() >= self.tx_limit {
            self.stats.tx_full += 1;
            return Err(TxFull);
        }
        let mut frame = vec![0; len];
        let meta = f(&mut frame);
        self.staged.push((frame, meta));
        self.stats.tx_frames += 1;
        Ok(())
    }

    fn flush(&mut self) {
        self.tx.extend(self.staged.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_in_bursts_in_order() {
        let mut nic = MemoryNic::new([2, 0, 0, 0, 0, 1]);
        for i in 0..40u8 {
            assert!(nic.inject(vec![i; 60]));
        }
        let mut seen = Vec::new();
        assert_eq!(
            nic.receive(usize::MAX, |f, m| {
                assert_eq!(m, RxMeta::default());
                seen.push(f[0]);
            }),
            32
        );
        assert_eq!(nic.receive(5, |f, _| seen.push(f[0])), 5);
        assert_eq!(nic.receive(100, |f, _| seen.push(f[0])), 3);
        assert_eq!(nic.receive(100, |_, _| unreachable!()), 0);
        assert_eq!(seen, (0..40).collect::<Vec<u8>>());
        assert_eq!(nic.stats().rx_frames, 40);
    }

    #[test]
    fn transmit_is_held_until_flush_and_bounded() {
        let mut nic = MemoryNic::new([2, 0, 0, 0, 0, 1]);
        nic.set_queue_limits(1, 2);
        assert!(nic.inject(vec![1]));
        assert!(!nic.inject(vec![2]));
        assert_eq!(nic.stats().rx_dropped, 1);
        let meta = TxMeta {
            l2_len: 14,
            ..TxMeta::default()
        };
        nic.transmit(3, |b| {
            b.copy_from_slice(b"abc");
            meta
        })
        .unwrap();
        assert_eq!(nic.pop_transmitted(), None, "not flushed yet");
        nic.transmit(1, |b| {
            b[0] = b'd';
            TxMeta::default()
        })
        .unwrap();
        assert_eq!(nic.transmit(1, |_| TxMeta::default()), Err(TxFull));
        nic.flush();
        assert_eq!(nic.pop_transmitted_with_meta(), Some((b"abc".to_vec(), meta)));
        assert_eq!(nic.drain_transmitted().collect::<Vec<_>>(), vec![b"d".to_vec()]);
        assert_eq!(nic.stats().tx_frames, 2);
        assert_eq!(nic.stats().tx_full, 1);
    }
}
