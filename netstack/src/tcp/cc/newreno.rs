//! NewReno (RFC 5681, RFC 6582) with appropriate byte counting (RFC 3465).
//!
//! Slow start grows `cwnd` by the bytes acknowledged, at most `L = 2*SMSS`
//! per ACK, with HyStart++ in the initial one ([`super::hystart`]);
//! congestion avoidance by one SMSS per `cwnd` bytes acknowledged.
//! Fast recovery and the RTO set `ssthresh = max(FlightSize/2, 2*SMSS)`.
//! The partial-ACK logic that makes NewReno "new" (RFC 6582 §3.2 step 5)
//! lives in the tcpcb; "reno" is this module under another name.
//!
//! Not for: the dupack counting and retransmission decisions themselves.

use super::hystart::HyStart;
use super::{half_flight, initial_window, CcState, CongestionControl};
use crate::time::Instant;
use core::time::Duration;

pub use super::hystart::ABC_L;

/// NewReno congestion control (also serves "reno").
#[derive(Debug, Clone, Default)]
pub struct NewReno {
    /// RFC 3465 `bytes_acked`: bytes acknowledged in congestion avoidance
    /// not yet turned into window growth.
    bytes_acked: u32,
    /// The last RTO has not been followed by any acknowledgment yet.
    rto_pending: bool,
    reno: bool,
    /// Slow start.
    hystart: HyStart,
}

impl NewReno {
    /// A NewReno instance.
    pub fn new() -> NewReno {
        NewReno::default()
    }

    /// The same algorithm, named "reno".
    pub fn reno() -> NewReno {
        NewReno {
            reno: true,
            ..NewReno::default()
        }
    }
}

/// Reno congestion avoidance: applies one ACK of `acked` bytes to `s`, with
/// `bytes_acked` the RFC 3465 counter.
fn reno_avoid(s: &mut CcState, bytes_acked: &mut u32, acked: u32) {
    // RFC 3465 §2.1: "When bytes_acked becomes greater than or equal to the
    // value of the congestion window, bytes_acked is reduced by the value of
    // cwnd. Next, cwnd is incremented by a full-sized segment".
    *bytes_acked = bytes_acked.saturating_add(acked);
    if *bytes_acked >= s.cwnd.max(1) {
        *bytes_acked -= s.cwnd.max(1);
        s.cwnd = s.cwnd.saturating_add(s.smss());
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        if self.reno {
            "reno"
        } else {
            "newreno"
        }
    }

    fn init(&mut self, s: &mut CcState) {
        s.cwnd = initial_window(s.mss);
        // RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set
        // arbitrarily high (e.g., to the size of the largest possible
        // advertised window)".
        s.ssthresh = u32::MAX;
        self.bytes_acked = 0;
        self.rto_pending = false;
        self.hystart = HyStart::new();
    }

    fn on_ack(&mut self, s: &mut CcState, acked: u32, _now: Instant, rtt: Option<Duration>) {
        self.rto_pending = false;
        if s.in_recovery {
            return;
        }
        if s.cwnd < s.ssthresh {
            self.hystart.slow_start(s, acked, rtt);
            self.bytes_acked = 0;
        } else {
            reno_avoid(s, &mut self.bytes_acked, acked);
        }
    }

    fn on_congestion(&mut self, s: &mut CcState, _now: Instant) {
        // RFC 6582 §3.2 step 2: "ssthresh = max (FlightSize / 2, 2*SMSS)".
        s.ssthresh = half_flight(s);
        // RFC 6675 §5 (4.2): "cwnd = ssthresh"; non-SACK inflation is the
        // tcpcb's (see `CongestionControl::on_congestion`).
        s.cwnd = s.ssthresh;
        self.bytes_acked = 0;
        self.hystart.on_congestion();
    }

    fn on_recovery_exit(&mut self, s: &mut CcState, _now: Instant) {
        // RFC 6582 §3.2 step 3 option (2): "Set cwnd to ssthresh".
        s.cwnd = s.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_rto(&mut self, s: &mut CcState, _now: Instant) {
        // RFC 5681 §3.1: "when a TCP sender detects segment loss using the
        // retransmission timer and the given segment has already been
        // retransmitted by way of the retransmission timer at least once,
        // the value of ssthresh is held constant."
        if !self.rto_pending {
            s.ssthresh = half_flight(s);
        }
        // RFC 5681 §3.1: "cwnd MUST be set to no more than the loss window,
        // LW, which equals 1 full-sized segment".
        s.cwnd = s.smss();
        self.bytes_acked = 0;
        self.rto_pending = true;
        self.hystart.on_congestion();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn setup() -> (NewReno, CcState) {
        let mut cc = NewReno::new();
        let mut s = CcState::new(MSS);
        cc.init(&mut s);
        (cc, s)
    }

    fn t0() -> Instant {
        Instant::from_secs(1)
    }

    #[test]
    fn slow_start_doubles_per_rtt_with_abc_limit() {
        let (mut cc, mut s) = setup();
        assert_eq!(s.cwnd, 10 * MSS);
        // One RTT: every segment of the window acked one by one.
        let w = s.cwnd;
        for _ in 0..w / MSS {
            cc.on_ack(&mut s, MSS, t0(), None);
        }
        assert_eq!(s.cwnd, 2 * w);
        // A stretch ACK of 10 segments grows cwnd by at most L = 2 SMSS.
        let before = s.cwnd;
        cc.on_ack(&mut s, 10 * MSS, t0(), None);
        assert_eq!(s.cwnd, before + 2 * MSS);
    }

    #[test]
    fn congestion_avoidance_one_mss_per_rtt() {
        let (mut cc, mut s) = setup();
        s.ssthresh = 20 * MSS;
        s.cwnd = 20 * MSS;
        for rtt in 0..5 {
            let w = s.cwnd;
            // A whole window acknowledged per RTT.
            for _ in 0..w / MSS {
                cc.on_ack(&mut s, MSS, t0(), None);
            }
            assert_eq!(s.cwnd, w + MSS, "rtt {rtt}");
        }
    }

    #[test]
    fn congestion_halves_flight_and_recovery_exit_sets_ssthresh() {
        let (mut cc, mut s) = setup();
        s.cwnd = 40 * MSS;
        s.flight = 30 * MSS;
        cc.on_congestion(&mut s, t0());
        assert_eq!(s.ssthresh, 15 * MSS, "half of FlightSize, not of cwnd");
        assert_eq!(s.cwnd, 15 * MSS);
        s.in_recovery = true;
        // ACKs in recovery do not grow the window.
        cc.on_ack(&mut s, MSS, t0(), None);
        assert_eq!(s.cwnd, 15 * MSS);
        s.cwnd = 19 * MSS; // tcpcb inflation
        s.in_recovery = false;
        cc.on_recovery_exit(&mut s, t0());
        assert_eq!(s.cwnd, 15 * MSS);
        // Tiny flight: floor of 2 SMSS.
        s.flight = MSS;
        cc.on_congestion(&mut s, t0());
        assert_eq!(s.ssthresh, 2 * MSS);
    }

    #[test]
    fn rto_collapses_to_loss_window_and_holds_ssthresh() {
        let (mut cc, mut s) = setup();
        s.cwnd = 40 * MSS;
        s.flight = 40 * MSS;
        cc.on_rto(&mut s, t0());
        assert_eq!(s.cwnd, MSS);
        assert_eq!(s.ssthresh, 20 * MSS);
        // Backed-off second timeout of the same segment: ssthresh held.
        s.flight = 2 * MSS;
        cc.on_rto(&mut s, t0());
        assert_eq!(s.ssthresh, 20 * MSS);
        assert_eq!(s.cwnd, MSS);
        // Slow start again up to ssthresh, then linear.
        while s.cwnd < s.ssthresh {
            cc.on_ack(&mut s, MSS, t0(), None);
        }
        assert_eq!(s.cwnd, 20 * MSS);
        cc.on_ack(&mut s, MSS, t0(), None);
        assert_eq!(s.cwnd, 20 * MSS);
        // After an ACK, a new RTO halves again.
        s.flight = 10 * MSS;
        cc.on_rto(&mut s, t0());
        assert_eq!(s.ssthresh, 5 * MSS);
    }

    #[test]
    fn after_idle_restarts_from_initial_window() {
        let (mut cc, mut s) = setup();
        s.cwnd = 100 * MSS;
        cc.after_idle(&mut s, t0(), Duration::from_secs(5));
        assert_eq!(s.cwnd, 10 * MSS);
        assert_eq!(cc.name(), "newreno");
        assert_eq!(NewReno::reno().name(), "reno");
    }
}
