//! Stand-in for `tcp::cc` until its owner commits it: the agreed API with a
//! plain NewReno behind it. Delete this file when `tcp::cc` lands.
//!
//! Not for: anything beyond keeping the tcpcb building and testable.

use crate::time::Instant;
use core::time::Duration;

/// Congestion state shared between the tcpcb and the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CcState {
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow-start threshold, bytes.
    pub ssthresh: u32,
    /// Sender MSS, bytes.
    pub mss: u32,
    /// Bytes in flight.
    pub flight: u32,
    /// Whether fast recovery is under way.
    pub in_recovery: bool,
}

/// A congestion control algorithm.
pub trait CongestionControl: Send + core::fmt::Debug {
    /// Its name.
    fn name(&self) -> &'static str;
    /// Sets the initial window.
    fn init(&mut self, s: &mut CcState);
    /// New data acknowledged, not in recovery.
    fn on_ack(&mut self, s: &mut CcState, acked: u32, now: Instant, rtt: Option<Duration>);
    /// Entering fast recovery.
    fn on_congestion(&mut self, s: &mut CcState, now: Instant);
    /// Leaving fast recovery.
    fn on_recovery_exit(&mut self, s: &mut CcState, now: Instant);
    /// Retransmission timeout.
    fn on_rto(&mut self, s: &mut CcState, now: Instant);
}

#[derive(Debug)]
struct Reno;

impl CongestionControl for Reno {
    fn name(&self) -> &'static str {
        "newreno"
    }
    fn init(&mut self, s: &mut CcState) {
        s.cwnd = 10 * s.mss;
        s.ssthresh = u32::MAX;
    }
    fn on_ack(&mut self, s: &mut CcState, acked: u32, _: Instant, _: Option<Duration>) {
        if s.cwnd < s.ssthresh {
            s.cwnd = s.cwnd.saturating_add(acked.min(s.mss));
        } else {
            s.cwnd = s.cwnd.saturating_add((s.mss * s.mss / s.cwnd.max(1)).max(1));
        }
    }
    fn on_congestion(&mut self, s: &mut CcState, _: Instant) {
        s.ssthresh = (s.flight / 2).max(2 * s.mss);
        s.cwnd = s.ssthresh;
    }
    fn on_recovery_exit(&mut self, s: &mut CcState, _: Instant) {
        s.cwnd = s.ssthresh;
    }
    fn on_rto(&mut self, s: &mut CcState, _: Instant) {
        s.ssthresh = (s.flight / 2).max(2 * s.mss);
        s.cwnd = s.mss;
    }
}

/// The algorithm called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn CongestionControl>> {
    match name {
        "cubic" | "newreno" | "reno" => Some(Box::new(Reno)),
        _ => None,
    }
}
