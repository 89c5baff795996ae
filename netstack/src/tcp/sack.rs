//! The sender's SACK scoreboard (RFC 6675, with D-SACK detection of RFC
//! 2883): which octets above `SND.UNA` the receiver has reported holding,
//! and the loss-recovery queries built on it — `IsLost`, `NextSeg` and
//! `SetPipe` of RFC 6675 §4.
//!
//! SACKed data is kept as a sorted `Vec` of disjoint, non-adjacent
//! half-open ranges `[start, end)` compared with [`SeqNum`]'s modular order.
//! The structure is bounded against hostile peers: blocks outside
//! `[snd_una, snd_max]` or empty/inverted ones are ignored, and at most
//! [`MAX_RANGES`] ranges are kept — when a block would create one more, the
//! highest range is forgotten (or the block itself, if it would be the
//! highest). Forgetting SACK information is safe: the sender at worst
//! retransmits data the receiver already has; merging ranges instead would
//! mark unreceived data as received. Every operation costs
//! `O(MAX_RANGES)` at most.
//!
//! Sequence conventions: all ends are exclusive. `high_data` is the RFC's
//! `HighData` plus one (normally `SND.MAX`); `high_rxt` is one past the
//! highest retransmitted octet (the RFC's `HighRxt` plus one), `SND.UNA`
//! or earlier when nothing was retransmitted.
//!
//! Not for: deciding when to enter or leave recovery, the dupack counter,
//! the congestion window (see [`crate::tcp::cc`]), or parsing the option.

use crate::tcp::seq::SeqNum;

/// Hard cap on the number of disjoint SACKed ranges kept.
pub const MAX_RANGES: usize = 256;

/// RFC 6675 §2: "DupThresh: The number of duplicate acknowledgments
/// required to trigger a fast retransmission", 3.
pub const DUP_THRESH: u32 = 3;

/// What one ACK's SACK blocks changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackUpdate {
    /// Octets that entered the scoreboard with this update (not counting
    /// octets that were already SACKed or that the cap kept out).
    pub newly_sacked: u32,
    /// Whether the first block was a D-SACK (RFC 2883): below the
    /// cumulative ACK, or contained in the second block.
    pub dsack: bool,
}

/// The sender's record of SACKed ranges above `SND.UNA`.
#[derive(Debug, Clone, Default)]
pub struct Scoreboard {
    /// Sorted, disjoint, non-adjacent `[start, end)` ranges.
    ranges: Vec<(SeqNum, SeqNum)>,
    /// Sum of the lengths of `ranges`.
    sacked: u32,
}

fn len(start: SeqNum, end: SeqNum) -> u32 {
    end.diff(start).max(0) as u32
}

impl Scoreboard {
    /// An empty scoreboard.
    pub fn new() -> Self {
        Scoreboard::default()
    }

    /// Number of disjoint SACKed ranges (at most [`MAX_RANGES`]).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total SACKed octets on the board.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// The SACKed ranges `[start, end)`, lowest first.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.ranges.iter().copied()
    }

    /// One past the highest SACKed octet, if any.
    pub fn highest_sacked(&self) -> Option<SeqNum> {
        self.ranges.last().map(|r| r.1)
    }

    /// Whether the octet `seq` has been SACKed.
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        let i = self.ranges.partition_point(|r| r.1 <= seq);
        self.ranges.get(i).is_some_and(|r| r.0 <= seq)
    }

    /// Forgets everything (after an RTO or when recovery state is reset).
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.sacked = 0;
    }

    /// Applies the SACK blocks of one ACK. `snd_una` is the cumulative ACK
    /// after this segment was processed, `snd_max` the highest sequence
    /// number sent (exclusive).
    pub fn update(&mut self, snd_una: SeqNum, snd_max: SeqNum, blocks: &[(SeqNum, SeqNum)]) -> SackUpdate {
        self.prune(snd_una, snd_max);
        let mut out = SackUpdate::default();
        let mut blocks = blocks;
        if let Some(&(s0, e0)) = blocks.first() {
            // RFC 2883 §4: "If the first SACK block ... covers sequence
            // numbers below the cumulative acknowledgement, the block is a
            // D-SACK"; likewise a first block contained in the second one:
            // "the first block is a subset of the second block".
            let below = s0 < e0 && s0 < snd_una;
            let inside = s0 < e0 && blocks.get(1).is_some_and(|&(s1, e1)| s1 <= s0 && e0 <= e1);
            if below || inside {
                out.dsack = true;
                blocks = &blocks[1..];
            }
        }
        for &(start, end) in blocks {
            // Ignore anything that is not a non-empty block inside
            // [snd_una, snd_max]: a correct receiver never sends one.
            if start >= end || start < snd_una || snd_max < end {
                continue;
            }
            out.newly_sacked = out.newly_sacked.saturating_add(self.insert(start, end));
        }
        out
    }

    /// Drops what `snd_una` acknowledged and anything beyond `snd_max`.
    fn prune(&mut self, snd_una: SeqNum, snd_max: SeqNum) {
        let below = self.ranges.partition_point(|r| r.1 <= snd_una);
        for r in self.ranges.drain(..below) {
            self.sacked -= len(r.0, r.1);
        }
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < snd_una {
                self.sacked -= len(first.0, snd_una);
                first.0 = snd_una;
            }
        }
        while let Some(last) = self.ranges.last_mut() {
            if snd_max <= last.0 {
                self.sacked -= len(last.0, last.1);
                self.ranges.pop();
            } else {
                if snd_max < last.1 {
                    self.sacked -= len(snd_max, last.1);
                    last.1 = snd_max;
                }
                break;
            }
        }
    }

    /// Adds `[start, end)` (non-empty); returns the octets newly covered.
    fn insert(&mut self, start: SeqNum, end: SeqNum) -> u32 {
        // First range that overlaps or touches the block, then past the last.
        let lo = self.ranges.partition_point(|r| r.1 < start);
        let hi = lo + self.ranges[lo..].partition_point(|r| r.0 <= end);
        if lo == hi {
            // A new, separate range.
            if self.ranges.len() >= MAX_RANGES {
                if lo == self.ranges.len() {
                    // It would be the highest: keep it out.
                    return 0;
                }
                let (s, e) = self.ranges.pop().expect("cap is nonzero");
                self.sacked -= len(s, e);
            }
            self.ranges.insert(lo, (start, end));
            let n = len(start, end);
            self.sacked += n;
            return n;
        }
        let covered: u32 = self.ranges[lo..hi]
            .iter()
            .map(|&(s, e)| len(s.max(start), e.min(end)))
            .sum();
        let merged = (self.ranges[lo].0.min(start), self.ranges[hi - 1].1.max(end));
        let old: u32 = self.ranges[lo..hi].iter().map(|&(s, e)| len(s, e)).sum();
        self.ranges.drain(lo + 1..hi);
        self.ranges[lo] = merged;
        self.sacked = self.sacked - old + len(merged.0, merged.1);
        len(start, end) - covered
    }

    /// SACKed octets within `[from, to)`.
    fn sacked_in(&self, from: SeqNum, to: SeqNum) -> u32 {
        if from >= to {
            return 0;
        }
        let i = self.ranges.partition_point(|r| r.1 <= from);
        self.ranges[i..]
            .iter()
            .take_while(|r| r.0 < to)
            .map(|&(s, e)| len(s.max(from), e.min(to)))
            .sum()
    }

    /// Un-SACKed octets within `[from, to)`.
    fn unsacked_in(&self, from: SeqNum, to: SeqNum) -> u32 {
        len(from, to) - self.sacked_in(from, to)
    }

    /// The start of the highest range such that every un-SACKed octet below
    /// it is lost by [`Scoreboard::is_lost`]'s rule; un-SACKed octets above
    /// it are not lost. `None` if no octet is lost.
    fn lost_boundary(&self, mss: u32) -> Option<SeqNum> {
        let limit = (DUP_THRESH - 1).saturating_mul(mss);
        let mut count = 0;
        let mut bytes = 0u32;
        for &(s, e) in self.ranges.iter().rev() {
            count += 1;
            bytes = bytes.saturating_add(len(s, e));
            if count >= DUP_THRESH || bytes > limit {
                return Some(s);
            }
        }
        None
    }

    /// RFC 6675 §4 IsLost: "The routine returns true when either DupThresh
    /// discontiguous SACKed sequences have arrived above 'SeqNum' or more
    /// than (DupThresh - 1) * SMSS bytes with sequence numbers greater than
    /// 'SeqNum' have been SACKed."
    pub fn is_lost(&self, seq: SeqNum, mss: u32) -> bool {
        let limit = (DUP_THRESH - 1).saturating_mul(mss);
        let mut count = 0;
        let mut bytes = 0u32;
        for &(s, e) in self.ranges.iter().rev() {
            if s > seq {
                count += 1;
                bytes = bytes.saturating_add(len(s, e));
            } else if e > seq + 1 {
                // `seq` itself lies in this range: count the octets above it.
                bytes = bytes.saturating_add(len(seq + 1, e));
            } else {
                break;
            }
            if count >= DUP_THRESH || bytes > limit {
                return true;
            }
        }
        false
    }

    /// RFC 6675 §4 NextSeg rule (1): the lost segment `(start, len)` to
    /// retransmit next, or `None`.
    ///
    /// `None` means rule (2) is the caller's: send new data from
    /// `high_data` if it has some and the receive window allows; if it
    /// cannot, rule (3) is [`Scoreboard::next_seg_with`] with
    /// `new_data_ok = false`.
    pub fn next_seg(&self, snd_una: SeqNum, high_data: SeqNum, high_rxt: SeqNum, mss: u32) -> Option<(SeqNum, u32)> {
        // Rule (1) never returns high_data: S2 is below the highest SACKed
        // octet, itself at most high_data.
        self.next_seg_with(snd_una, high_data, high_rxt, mss, true)
            .filter(|&(seq, _)| seq != high_data)
    }

    /// RFC 6675 §4 NextSeg rules (1)-(3); `new_data_ok` says whether "there
    /// exists available unsent data and the receiver's advertised window
    /// allows" (rule 2), in which case `(high_data, mss)` is returned when
    /// rule (1) finds nothing (the caller trims it to what it may send).
    /// The rescue retransmission of rule (4) is not done.
    pub fn next_seg_with(
        &self,
        snd_una: SeqNum,
        high_data: SeqNum,
        high_rxt: SeqNum,
        mss: u32,
        new_data_ok: bool,
    ) -> Option<(SeqNum, u32)> {
        let mss = mss.max(1);
        // (1.a) "S2 is greater than HighRxt": the smallest un-SACKed octet
        // at or after high_rxt (exclusive end) and SND.UNA.
        let mut s2 = snd_una.max(high_rxt);
        let i = self.ranges.partition_point(|r| r.1 <= s2);
        let mut next = self.ranges.get(i).copied();
        if let Some((s, e)) = next {
            if s <= s2 {
                s2 = e;
                next = self.ranges.get(i + 1).copied();
            }
        }
        let segment = |s2: SeqNum| {
            let mut n = mss.min(len(s2, high_data));
            if let Some((s, _)) = next {
                n = n.min(len(s2, s));
            }
            (n > 0).then_some((s2, n))
        };
        // (1.b) "S2 is less than the highest octet covered by any received
        // SACK."
        let below_highest = self.highest_sacked().is_some_and(|h| s2 < h);
        // (1.c) "IsLost (S2) returns true."
        let lost = self.lost_boundary(mss).is_some_and(|b| s2 < b);
        if below_highest && lost {
            // (1) "the sequence range of one segment of up to SMSS octets
            // starting with S2 MUST be returned."
            if let Some(seg) = segment(s2) {
                return Some(seg);
            }
        }
        if new_data_ok {
            // (2) "the sequence range of one segment of up to SMSS octets of
            // previously unsent data starting with sequence number
            // HighData+1 MUST be returned."
            return Some((high_data, mss));
        }
        if below_highest {
            // (3) "there exists an unSACKed sequence number 'S3' that meets
            // the criteria for detecting loss given in steps (1.a) and (1.b)
            // ... then one segment of up to SMSS octets starting with S3
            // SHOULD be returned."
            return segment(s2);
        }
        None
    }

    /// RFC 6675 §4 SetPipe: the octets estimated in flight. For each
    /// un-SACKed octet S1 in `[snd_una, high_data)`: "(a) If IsLost (S1)
    /// returns false: Pipe is incremented by 1 octet. (b) If S1 <= HighRxt:
    /// Pipe is incremented by 1 octet."
    pub fn pipe(&self, snd_una: SeqNum, high_data: SeqNum, high_rxt: SeqNum, mss: u32) -> u32 {
        if snd_una >= high_data {
            return 0;
        }
        let clip = |x: SeqNum| x.max(snd_una).min(high_data);
        let unsacked = self.unsacked_in(snd_una, high_data);
        let lost = match self.lost_boundary(mss.max(1)) {
            Some(b) => self.unsacked_in(snd_una, clip(b)),
            None => 0,
        };
        let retransmitted = self.unsacked_in(snd_una, clip(high_rxt));
        unsacked - lost + retransmitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u32) -> SeqNum {
        SeqNum(n)
    }

    fn b(s: u32, e: u32) -> (SeqNum, SeqNum) {
        (q(s), q(e))
    }

    /// Checks the structural invariants.
    fn check(sb: &Scoreboard, snd_una: SeqNum, snd_max: SeqNum) {
        assert!(sb.ranges.len() <= MAX_RANGES);
        let mut total = 0u32;
        for (i, &(s, e)) in sb.ranges.iter().enumerate() {
            assert!(s < e, "empty range {s}..{e}");
            assert!(snd_una <= s && e <= snd_max, "range {s}..{e} outside window");
            if i > 0 {
                assert!(sb.ranges[i - 1].1 < s, "ranges not merged/sorted");
            }
            total += len(s, e);
        }
        assert_eq!(total, sb.sacked);
    }

    #[test]
    fn blocks_merge_and_count_new_octets() {
        let mut sb = Scoreboard::new();
        let (una, max) = (q(0), q(10_000));
        assert_eq!(sb.update(una, max, &[b(1000, 2000)]).newly_sacked, 1000);
        assert_eq!(sb.update(una, max, &[b(3000, 4000), b(1000, 2000)]).newly_sacked, 1000);
        assert_eq!(sb.len(), 2);
        // Filling the gap merges the three into one.
        let u = sb.update(una, max, &[b(2000, 3000)]);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 1000,
                dsack: false
            }
        );
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(1000, 4000)]);
        // Overlap at both ends counts only the new octets.
        assert_eq!(sb.update(una, max, &[b(500, 4500)]).newly_sacked, 1000);
        assert_eq!(sb.sacked_bytes(), 4000);
        assert!(sb.is_sacked(q(500)) && sb.is_sacked(q(4499)));
        assert!(!sb.is_sacked(q(499)) && !sb.is_sacked(q(4500)));
        // Spanning several ranges.
        sb.update(una, max, &[b(6000, 6100), b(7000, 7100)]);
        assert_eq!(sb.update(una, max, &[b(5000, 8000)]).newly_sacked, 2800);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(500, 4500), b(5000, 8000)]);
        check(&sb, una, max);
        // The cumulative ACK advancing prunes and trims.
        sb.update(q(1000), max, &[]);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(1000, 4500), b(5000, 8000)]);
        sb.update(q(4700), max, &[]);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(5000, 8000)]);
        assert_eq!(sb.sacked_bytes(), 3000);
        assert_eq!(sb.highest_sacked(), Some(q(8000)));
        sb.clear();
        assert!(sb.is_empty());
        assert_eq!(sb.sacked_bytes(), 0);
    }

    #[test]
    fn invalid_blocks_are_ignored() {
        let mut sb = Scoreboard::new();
        let (una, max) = (q(1000), q(5000));
        let bad = [
            b(2000, 2000),        // empty
            b(3000, 2000),        // inverted
            b(5000, 6000),        // beyond snd_max
            b(4000, 5001),        // straddles snd_max
            b(1000, 0x8000_1000), // "end" more than 2^31 ahead: inverted
        ];
        for blk in bad {
            // Placed second so that it is not taken for a D-SACK.
            let u = sb.update(una, max, &[b(1500, 1600), blk]);
            assert!(!u.dsack, "{blk:?}");
        }
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(1500, 1600)]);
        check(&sb, una, max);
    }

    #[test]
    fn wraps_around_sequence_space() {
        let mut sb = Scoreboard::new();
        let una = q(u32::MAX - 999);
        let max = una + 10_000;
        let u = sb.update(una, max, &[(una + 500, una + 2500)]);
        assert_eq!(u.newly_sacked, 2000);
        sb.update(una, max, &[(una + 3000, una + 4000)]);
        assert_eq!(sb.ranges().next(), Some((una + 500, una + 2500)));
        assert!(sb.is_lost(una, 1000));
        assert_eq!(sb.next_seg(una, max, una, 1000), Some((una, 500)));
        sb.update(una + 1000, max, &[]);
        assert_eq!(sb.ranges().next(), Some((una + 1000, una + 2500)));
        check(&sb, una + 1000, max);
    }

    #[test]
    fn dsack_rfc2883_examples() {
        // §4.1.1, "Reporting a duplicate segment": 3000-3499 and 3500-3999
        // arrive, both ACKs are lost, 3000-3499 is retransmitted and
        // reported: "ACK 4000 SACK 3000-3500".
        let mut sb = Scoreboard::new();
        let u = sb.update(q(4000), q(5000), &[b(3000, 3500)]);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 0,
                dsack: true
            }
        );
        assert!(sb.is_empty());

        // §4.1.2, "Reporting an out-of-order segment and a duplicate
        // segment": 3500-3999 lost, 4000-4499 arrives, then a duplicate of
        // 3000-3499: "ACK 3500 SACK 3000-3500, 4000-4500".
        let mut sb = Scoreboard::new();
        let u = sb.update(q(3500), q(5000), &[b(3000, 3500), b(4000, 4500)]);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 500,
                dsack: true
            }
        );
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(4000, 4500)]);

        // §4.1.3-style, duplicate of an out-of-order segment: the receiver
        // holds 4000-5500 above a hole at 3500 and gets 4500-4999 twice:
        // "ACK 3500 SACK 4500-5000, 4000-5500".
        let mut sb = Scoreboard::new();
        sb.update(q(3500), q(6000), &[b(4000, 5500)]);
        let u = sb.update(q(3500), q(6000), &[b(4500, 5000), b(4000, 5500)]);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 0,
                dsack: true
            }
        );
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![b(4000, 5500)]);

        // An ordinary first block is not a D-SACK.
        let u = sb.update(q(3500), q(6000), &[b(5600, 5700), b(4000, 5500)]);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 100,
                dsack: false
            }
        );
    }

    #[test]
    fn is_lost_by_count_and_by_bytes() {
        let mss = 1000;
        let mut sb = Scoreboard::new();
        let (una, max) = (q(0), q(20_000));
        sb.update(una, max, &[b(1000, 2000)]);
        assert!(!sb.is_lost(q(0), mss));
        sb.update(una, max, &[b(3000, 3500)]);
        assert!(!sb.is_lost(q(0), mss), "2 ranges, 1500 bytes");
        sb.update(una, max, &[b(5000, 5100)]);
        // DupThresh discontiguous SACKed sequences above 0.
        assert!(sb.is_lost(q(0), mss));
        assert!(sb.is_lost(q(999), mss));
        assert!(!sb.is_lost(q(2000), mss), "2 ranges, 600 bytes above");
        // Bytes rule: exactly 2*SMSS above is not "more than".
        let mut sb = Scoreboard::new();
        sb.update(una, max, &[b(1000, 3000)]);
        assert!(!sb.is_lost(q(0), mss));
        sb.update(una, max, &[b(3000, 3001)]);
        assert!(sb.is_lost(q(0), mss));
        assert!(!sb.is_lost(q(1000), mss), "2000 octets above 1000");
        assert!(!sb.is_lost(q(3001), mss));
    }

    /// A single loss at the front of a flight of ten segments (the RFC 6675
    /// §5 scenario): dupacks SACK segments 1, 2, 3; segment 0 becomes lost.
    #[test]
    fn next_seg_and_pipe_single_loss() {
        let mss = 1000;
        let (una, hd) = (q(0), q(10_000));
        let mut sb = Scoreboard::new();
        sb.update(una, hd, &[b(1000, 2000)]);
        sb.update(una, hd, &[b(1000, 3000)]);
        // Two dupacks: not lost yet; rule (3) would pick it, rule (2) first.
        assert!(!sb.is_lost(una, mss));
        assert_eq!(sb.next_seg(una, hd, una, mss), None);
        assert_eq!(sb.next_seg_with(una, hd, una, mss, true), Some((hd, mss)));
        assert_eq!(sb.next_seg_with(una, hd, una, mss, false), Some((q(0), 1000)));
        assert_eq!(sb.pipe(una, hd, una, mss), 8000);
        sb.update(una, hd, &[b(1000, 4000)]);
        assert!(sb.is_lost(una, mss));
        // Rule (1): retransmit segment 0.
        assert_eq!(sb.next_seg(una, hd, una, mss), Some((q(0), 1000)));
        // Pipe: 7000 un-SACKed octets, 1000 of them lost, none retransmitted.
        assert_eq!(sb.pipe(una, hd, una, mss), 6000);
        // After the retransmission (HighRxt = 999, i.e. high_rxt = 1000) the
        // retransmitted octets count once more.
        let rxt = q(1000);
        assert_eq!(sb.pipe(una, hd, rxt, mss), 7000);
        // Nothing else is lost: rule (2), new data.
        assert_eq!(sb.next_seg(una, hd, rxt, mss), None);
        assert_eq!(sb.next_seg_with(una, hd, rxt, mss, true), Some((hd, mss)));
        // No new data: rule (3) needs an octet below the highest SACK.
        assert_eq!(sb.next_seg_with(una, hd, rxt, mss, false), None);
        // More dupacks SACK 4-9; pipe falls as they leave the network.
        sb.update(una, hd, &[b(1000, 10_000)]);
        assert_eq!(sb.pipe(una, hd, rxt, mss), 1000);
        assert_eq!(sb.pipe(una, hd, una, mss), 0);
    }

    #[test]
    fn next_seg_multiple_holes() {
        let mss = 1000;
        let (una, hd) = (q(0), q(20_000));
        let mut sb = Scoreboard::new();
        // Holes: 0-999, 2000-2499, 3000-3999 (partly), 6000-...
        sb.update(una, hd, &[b(1000, 2000), b(2500, 3000), b(4000, 6000)]);
        // The first hole, whole segment.
        assert_eq!(sb.next_seg(una, hd, una, mss), Some((q(0), 1000)));
        // The next hole is only 500 octets: the segment stops at the SACK.
        assert_eq!(sb.next_seg(una, hd, q(1000), mss), Some((q(2000), 500)));
        // 3000 has one range of 2000 octets above it: not more than
        // 2*SMSS, not DupThresh ranges, so not lost — rule (2) comes first,
        // rule (3) picks it when there is no new data.
        assert!(!sb.is_lost(q(3000), mss));
        assert!(sb.is_lost(q(2499), mss));
        assert_eq!(sb.next_seg(una, hd, q(2500), mss), None);
        assert_eq!(sb.next_seg_with(una, hd, q(2500), mss, true), Some((hd, mss)));
        assert_eq!(sb.next_seg_with(una, hd, q(2500), mss, false), Some((q(3000), 1000)));
        // Once HighRxt passes the last SACKed octet only rule (2) remains.
        assert_eq!(sb.next_seg_with(una, hd, q(6000), mss, false), None);
        // Pipe by hand: un-SACKed 0-999, 2000-2499, 3000-3999, 6000-19999 =
        // 1000 + 500 + 1000 + 14000 = 16500. Lost: below 2500 (3 ranges
        // above 2000-2499; 1 range of 2000 above 3000 is not) = 1500. With
        // high_rxt 2500, 1500 octets were retransmitted.
        assert_eq!(sb.pipe(una, hd, una, mss), 15_000);
        assert_eq!(sb.pipe(una, hd, q(2500), mss), 16_500);
    }

    /// The RFC's octet-by-octet definitions, as an oracle.
    struct Model {
        sacked: Vec<bool>,
    }

    impl Model {
        fn is_lost(&self, s: usize, mss: u32) -> bool {
            let mut count = 0;
            let mut bytes = 0;
            // Only asked about un-SACKed octets: a range starting at s + 1
            // is above s.
            let mut prev = false;
            for o in s + 1..self.sacked.len() {
                if self.sacked[o] {
                    bytes += 1;
                    if !prev {
                        count += 1;
                    }
                }
                prev = self.sacked[o];
            }
            count >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss
        }

        fn pipe(&self, high_rxt: usize, mss: u32) -> u32 {
            let mut pipe = 0;
            for s in 0..self.sacked.len() {
                if self.sacked[s] {
                    continue;
                }
                if !self.is_lost(s, mss) {
                    pipe += 1;
                }
                if s < high_rxt {
                    pipe += 1;
                }
            }
            pipe
        }
    }

    #[test]
    fn matches_the_rfc_definitions_on_random_boards() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mss = 50;
        let base = u32::MAX - 300; // wraps inside the window
        for _ in 0..40 {
            let w = 600usize;
            let mut model = Model { sacked: vec![false; w] };
            let mut sb = Scoreboard::new();
            let (una, hd) = (q(base), q(base) + w as u32);
            for _ in 0..(rnd() % 12) {
                let s = (rnd() % w as u64) as usize;
                let e = (s + 1 + (rnd() % 80) as usize).min(w);
                let before = model.sacked.iter().filter(|&&v| v).count();
                // Not first, so never a D-SACK by containment of the next.
                let u = sb.update(una, hd, &[(q(base) + s as u32, q(base) + e as u32)]);
                model.sacked[s..e].iter_mut().for_each(|v| *v = true);
                let after = model.sacked.iter().filter(|&&v| v).count();
                assert_eq!(u.newly_sacked as usize, after - before);
            }
            check(&sb, una, hd);
            for s in (0..w).step_by(7) {
                if !model.sacked[s] {
                    assert_eq!(sb.is_lost(q(base) + s as u32, mss), model.is_lost(s, mss), "octet {s}");
                }
            }
            for rxt in [0usize, 100, 333, 600] {
                let high_rxt = q(base) + rxt as u32;
                assert_eq!(sb.pipe(una, hd, high_rxt, mss), model.pipe(rxt, mss), "rxt {rxt}");
                // Rule (1)/(3): the smallest un-SACKed octet at or above
                // high_rxt that is below the highest SACKed octet.
                let highest = model.sacked.iter().rposition(|&v| v);
                let s2 = (rxt..w).find(|&o| !model.sacked[o]);
                let want = match (s2, highest) {
                    (Some(s2), Some(h)) if s2 < h => Some((s2, model.is_lost(s2, mss))),
                    _ => None,
                };
                let got = sb.next_seg_with(una, hd, high_rxt, mss, false);
                match want {
                    Some((s2, _)) => assert_eq!(got.map(|g| g.0), Some(q(base) + s2 as u32)),
                    None => assert_eq!(got, None),
                }
                let got = sb.next_seg_with(una, hd, high_rxt, mss, true);
                match want {
                    Some((s2, true)) => assert_eq!(got.map(|g| g.0), Some(q(base) + s2 as u32)),
                    _ => assert_eq!(got, Some((hd, mss))),
                }
                let rule1 = sb.next_seg(una, hd, high_rxt, mss);
                assert_eq!(rule1, got.filter(|g| g.0 != hd));
                if let Some((start, n)) = got {
                    if start != hd {
                        let off = start.diff(una) as usize;
                        assert!(n >= 1 && n <= mss);
                        assert!(model.sacked[off..off + n as usize].iter().all(|&v| !v));
                    }
                }
            }
        }
    }

    #[test]
    fn adversarial_tiny_blocks_stay_bounded() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let una = q(u32::MAX - 500_000);
        let max = una + 1_000_000;
        let mut block = || {
            let s = una + (rnd() % 999_990) as u32;
            let n = 1 + (rnd() % 2) as u32;
            (s, s + n)
        };
        let started = std::time::Instant::now();
        let mut sb = Scoreboard::new();
        // 10,000 tiny blocks, four per ACK as a peer could send them...
        for _ in 0..2500 {
            let blocks = [block(), block(), block(), block()];
            sb.update(una, max, &blocks);
            assert!(sb.len() <= MAX_RANGES);
        }
        check(&sb, una, max);
        assert_eq!(sb.len(), MAX_RANGES);
        // ...and all in one call, plus junk outside the window.
        let mut many: Vec<_> = (0..10_000).map(|_| block()).collect();
        many.extend((0..1000).map(|i| (max + i, max + i + 1)));
        many.extend((0..1000).map(|i| (una + i + 1, una + i)));
        let mut sb2 = Scoreboard::new();
        sb2.update(una, max, &many);
        check(&sb2, una, max);
        // The queries stay cheap on a full board.
        for i in 0..10_000u32 {
            let s = una + i * 97;
            let _ = sb2.is_lost(s, 1460);
            let _ = sb2.next_seg(una, max, s, 1460);
            let _ = sb2.pipe(una, max, s, 1460);
        }
        // Generous bound (debug build, shared cores); unbounded growth would
        // take far longer.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
