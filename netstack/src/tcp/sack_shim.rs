//! Stand-in for `tcp::sack` until its owner commits it: the agreed API over
//! a small sorted list of SACKed ranges. Delete this file when `tcp::sack`
//! lands.
//!
//! Not for: anything beyond keeping the tcpcb building and testable.

use super::SeqNum;

const MAX_BLOCKS: usize = 32;
const DUP_THRESH: u32 = 3;

/// What one ACK's SACK blocks changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackUpdate {
    /// Bytes newly marked SACKed.
    pub newly_sacked: u32,
    /// Whether the first block was a D-SACK.
    pub dsack: bool,
}

/// SACKed ranges above SND.UNA, sorted and disjoint.
#[derive(Debug, Clone, Default)]
pub struct Scoreboard {
    blocks: Vec<(SeqNum, SeqNum)>,
}

impl Scoreboard {
    /// An empty scoreboard.
    pub fn new() -> Self {
        Scoreboard::default()
    }

    fn sacked(&self) -> u32 {
        self.blocks.iter().map(|(s, e)| e.diff(*s) as u32).sum()
    }

    /// Records an ACK's blocks.
    pub fn update(&mut self, snd_una: SeqNum, snd_max: SeqNum, blocks: &[(SeqNum, SeqNum)]) -> SackUpdate {
        let before = self.sacked();
        let mut dsack = false;
        self.blocks.retain_mut(|(s, e)| {
            *s = s.max(snd_una);
            *s < *e
        });
        for (i, &(s, e)) in blocks.iter().enumerate() {
            if e <= snd_una || s >= e || e > snd_max {
                dsack |= i == 0 && e <= snd_una;
                continue;
            }
            let (mut s, mut e) = (s.max(snd_una), e);
            self.blocks.retain(|&(bs, be)| {
                if be < s || bs > e {
                    true
                } else {
                    s = s.min(bs);
                    e = e.max(be);
                    false
                }
            });
            let at = self.blocks.partition_point(|&(bs, _)| bs < s);
            if self.blocks.len() < MAX_BLOCKS {
                self.blocks.insert(at, (s, e));
            }
        }
        SackUpdate {
            newly_sacked: self.sacked().saturating_sub(before),
            dsack,
        }
    }

    fn is_sacked(&self, seq: SeqNum) -> bool {
        self.blocks.iter().any(|&(s, e)| seq.in_range(s, e))
    }

    /// RFC 6675 IsLost: DupThresh segments' worth SACKed above `seq`.
    pub fn is_lost(&self, seq: SeqNum, mss: u32) -> bool {
        let above: u32 = self
            .blocks
            .iter()
            .filter(|(_, e)| *e > seq)
            .map(|&(s, e)| e.diff(s.max(seq + 1)).max(0) as u32)
            .sum();
        above >= DUP_THRESH * mss.max(1) || self.blocks.iter().filter(|(s, _)| *s > seq).count() as u32 >= DUP_THRESH
    }

    /// RFC 6675 NextSeg (rule 1 only): the first lost, unSACKed,
    /// unretransmitted segment.
    pub fn next_seg(&self, snd_una: SeqNum, high_data: SeqNum, high_rxt: SeqNum, mss: u32) -> Option<(SeqNum, u32)> {
        let mut seq = snd_una.max(high_rxt);
        while seq < high_data {
            if let Some(&(_, e)) = self.blocks.iter().find(|&&(s, e)| seq.in_range(s, e)) {
                seq = e;
                continue;
            }
            if !self.is_lost(seq, mss) {
                return None;
            }
            let next_sacked = self
                .blocks
                .iter()
                .map(|&(s, _)| s)
                .find(|&s| s > seq)
                .unwrap_or(high_data);
            let len = (next_sacked.diff(seq) as u32).min(mss);
            return Some((seq, len));
        }
        None
    }

    /// RFC 6675 SetPipe, approximately: bytes neither SACKed nor lost, plus
    /// retransmitted bytes.
    pub fn pipe(&self, snd_una: SeqNum, high_data: SeqNum, high_rxt: SeqNum, mss: u32) -> u32 {
        let mut pipe = 0u32;
        let mut seq = snd_una;
        let step = mss.max(1);
        while seq < high_data {
            let len = (high_data.diff(seq) as u32).min(step);
            if !self.is_sacked(seq) {
                if !self.is_lost(seq, mss) {
                    pipe += len;
                }
                if seq < high_rxt {
                    pipe += len;
                }
            }
            seq += len;
        }
        pipe
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.blocks.clear();
    }
}
