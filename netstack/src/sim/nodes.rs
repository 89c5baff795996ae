//! Simple nodes for driving tests with raw frames.
//!
//! Not for: modelling hosts; a stack under test is its own [`SimNode`].

use std::collections::VecDeque;

use super::memory_nic::MemoryNic;
use super::network::SimNode;
use crate::nic::{Nic, TxMeta};
use crate::time::Instant;

/// Sends scripted frames at set times and records every frame it receives.
#[derive(Debug, Clone, Default)]
pub struct ScriptedNode {
    /// Frames still to send, by time (kept sorted).
    outgoing: VecDeque<(Instant, Vec<u8>)>,
    /// Frames received, with the time of the poll that took them.
    pub received: Vec<(Instant, Vec<u8>)>,
    /// Frames the device refused ([`crate::nic::TxFull`]).
    pub tx_refused: u64,
}

impl ScriptedNode {
    /// A node with nothing to send.
    pub fn new() -> ScriptedNode {
        ScriptedNode::default()
    }

    /// Schedules `frame` to be sent at `at` (after frames already scheduled
    /// for the same time).
    pub fn send_at(&mut self, at: Instant, frame: Vec<u8>) {
        let i = self.outgoing.partition_point(|(t, _)| *t <= at);
        self.outgoing.insert(i, (at, frame));
    }

    /// Frames still to send.
    pub fn pending(&self) -> usize {
        self.outgoing.len()
    }
}

impl SimNode for ScriptedNode {
    fn poll(&mut self, now: Instant, nic: &mut MemoryNic) {
        while nic.receive(usize::MAX, |f, _| self.received.push((now, f.to_vec()))) > 0 {}
        while self.outgoing.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, frame)) = self.outgoing.pop_front() else {
                break;
            };
            let r = nic.transmit(frame.len(), |buf| {
                buf.copy_from_slice(&frame);
                TxMeta::default()
            });
            if r.is_err() {
                self.tx_refused += 1;
            }
        }
        nic.flush();
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.outgoing.front().map(|(t, _)| *t)
    }
}
