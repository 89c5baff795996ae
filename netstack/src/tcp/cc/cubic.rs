//! CUBIC (RFC 9438). Placeholder: behaves as NewReno until filled in.

use super::newreno::NewReno;
use super::{CcState, CongestionControl};
use crate::time::Instant;
use core::time::Duration;

/// CUBIC congestion control.
#[derive(Debug, Clone, Default)]
pub struct Cubic {
    inner: NewReno,
}

impl Cubic {
    /// A CUBIC instance.
    pub fn new() -> Cubic {
        Cubic::default()
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }
    fn init(&mut self, s: &mut CcState) {
        self.inner.init(s)
    }
    fn on_ack(&mut self, s: &mut CcState, acked: u32, now: Instant, rtt: Option<Duration>) {
        self.inner.on_ack(s, acked, now, rtt)
    }
    fn on_congestion(&mut self, s: &mut CcState, now: Instant) {
        self.inner.on_congestion(s, now)
    }
    fn on_recovery_exit(&mut self, s: &mut CcState, now: Instant) {
        self.inner.on_recovery_exit(s, now)
    }
    fn on_rto(&mut self, s: &mut CcState, now: Instant) {
        self.inner.on_rto(s, now)
    }
}
