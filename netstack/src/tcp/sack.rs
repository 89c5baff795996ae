//! RFC 6675 SACK scoreboard. Placeholder with the final API.

use crate::tcp::seq::SeqNum;

/// What one ACK's SACK blocks changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackUpdate {
    /// Bytes newly marked SACKed by this update.
    pub newly_sacked: u32,
    /// Whether the first block was a D-SACK (RFC 2883).
    pub dsack: bool,
}

/// The sender's record of SACKed ranges.
#[derive(Debug, Clone, Default)]
pub struct Scoreboard {
    ranges: Vec<(SeqNum, SeqNum)>,
}

impl Scoreboard {
    /// An empty scoreboard.
    pub fn new() -> Self {
        Scoreboard::default()
    }

    /// Applies the SACK blocks of one ACK.
    pub fn update(&mut self, snd_una: SeqNum, snd_max: SeqNum, blocks: &[(SeqNum, SeqNum)]) -> SackUpdate {
        let _ = (snd_una, snd_max, blocks);
        SackUpdate::default()
    }

    /// RFC 6675 IsLost.
    pub fn is_lost(&self, seq: SeqNum, mss: u32) -> bool {
        let _ = (seq, mss);
        false
    }

    /// RFC 6675 NextSeg.
    pub fn next_seg(&self, snd_una: SeqNum, high_data: SeqNum, high_rxt: SeqNum, mss: u32) -> Option<(SeqNum, u32)> {
        let _ = (snd_una, high_data, high_rxt, mss);
        None
    }

    /// RFC 6675 SetPipe.
    pub fn pipe(&self, snd_una: SeqNum, high_data: SeqNum, high_rxt: SeqNum, mss: u32) -> u32 {
        let _ = (high_rxt, mss);
        high_data.diff(snd_una).max(0) as u32
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}
