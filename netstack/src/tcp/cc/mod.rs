//! Pluggable congestion control, after FreeBSD's `cc(4)` modules.
//!
//! The tcpcb owns a [`CcState`] (the numbers every algorithm shares) and a
//! `Box<dyn CongestionControl>` picked by [`by_name`]; it calls the module on
//! each event: new data acknowledged outside recovery, entry into and exit
//! from fast recovery, retransmission timeout, and (optionally) the restart
//! after an idle period.
//!
//! Modules: [`newreno`] (RFC 5681 + RFC 3465 + RFC 6582; also "reno") and
//! [`cubic`] (RFC 9438, the default). Both leave slow start to [`hystart`]
//! (RFC 9406 HyStart++ in the initial slow start).
//!
//! Like the rest of the core, a module does no I/O and reads no clock: time
//! comes in as `now`. Not for: loss detection, the retransmission timer or
//! the SACK scoreboard (see [`crate::tcp::sack`]); pacing.

use crate::time::Instant;
use core::time::Duration;

pub mod cubic;
pub mod hystart;
pub mod newreno;

/// The congestion-control state the tcpcb and the module share, in bytes.
///
/// `Default` is all zeros; [`CongestionControl::init`] sets the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CcState {
    /// Congestion window (RFC 5681 `cwnd`), bytes.
    pub cwnd: u32,
    /// Slow-start threshold (RFC 5681 `ssthresh`), bytes.
    pub ssthresh: u32,
    /// Sender maximum segment size (RFC 5681 `SMSS`), bytes. Must be nonzero.
    pub mss: u32,
    /// Bytes in flight (RFC 5681 `FlightSize`, `SND.MAX - SND.UNA`) as the
    /// tcpcb counts them at the time of the call; read by
    /// [`CongestionControl::on_congestion`] and [`CongestionControl::on_rto`],
    /// and in [`CongestionControl::on_ack`] (after the ACK, before anything
    /// new is sent) by HyStart++ to find where a round ends.
    pub flight: u32,
    /// Whether the connection is in fast recovery (maintained by the tcpcb).
    pub in_recovery: bool,
}

impl CcState {
    /// A state with `mss` and everything else zero/false; call
    /// [`CongestionControl::init`] next.
    pub fn new(mss: u32) -> CcState {
        CcState {
            cwnd: 0,
            ssthresh: u32::MAX,
            mss,
            flight: 0,
            in_recovery: false,
        }
    }

    /// The MSS, never zero (guards the divisions in the modules).
    pub(crate) fn smss(&self) -> u32 {
        self.mss.max(1)
    }
}

/// The initial window of RFC 6928 §2: "min (10*MSS, max (2*MSS, 14600))".
pub fn initial_window(mss: u32) -> u32 {
    let mss = mss.max(1);
    mss.saturating_mul(10).min(mss.saturating_mul(2).max(14_600))
}

/// RFC 5681 §3.1 equation (4): "ssthresh = max (FlightSize / 2, 2*SMSS)".
pub fn half_flight(s: &CcState) -> u32 {
    (s.flight / 2).max(s.smss().saturating_mul(2))
}

/// A congestion-control algorithm: one instance per connection.
///
/// The tcpcb calls exactly one hook per event and keeps `s.in_recovery`
/// itself. All windows are bytes.
pub trait CongestionControl: Send + core::fmt::Debug {
    /// The module's name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;
    /// Sets the initial window (RFC 6928: `min(10*MSS, max(2*MSS, 14600))`)
    /// and an "arbitrarily high" ssthresh (RFC 5681 §3.1).
    fn init(&mut self, s: &mut CcState);
    /// `acked` bytes of new data were cumulatively acknowledged, outside
    /// recovery; `rtt` is a fresh RTT sample if the ACK gave one.
    fn on_ack(&mut self, s: &mut CcState, acked: u32, now: Instant, rtt: Option<Duration>);
    /// Loss was detected by duplicate ACKs or SACK: entering fast recovery.
    /// Sets `ssthresh` and `cwnd = ssthresh` (RFC 6675 §5 step (4.2)); a tcpcb
    /// doing non-SACK RFC 6582 recovery inflates `cwnd` by `3*SMSS` (and one
    /// SMSS per further duplicate ACK) itself.
    fn on_congestion(&mut self, s: &mut CcState, now: Instant);
    /// Fast recovery ended (the recovery point was acknowledged).
    fn on_recovery_exit(&mut self, s: &mut CcState, now: Instant);
    /// The retransmission timer expired.
    fn on_rto(&mut self, s: &mut CcState, now: Instant);
    /// The connection is about to send after being idle (nothing in flight)
    /// for `idle`; call it when `idle` exceeds the RTO.
    ///
    /// The default applies RFC 5681 §4.1: "cwnd SHOULD be set to RW before
    /// beginning transmission", `RW = min(IW, cwnd)`.
    fn after_idle(&mut self, s: &mut CcState, now: Instant, idle: Duration) {
        let _ = (now, idle);
        s.cwnd = s.cwnd.min(initial_window(s.mss));
    }
}

/// The default module's name.
pub const DEFAULT: &str = "cubic";

/// A fresh instance of the module called `name` ("cubic", "newreno" or
/// "reno"), or `None` for an unknown name.
pub fn by_name(name: &str) -> Option<Box<dyn CongestionControl>> {
    match name {
        "cubic" => Some(Box::new(cubic::Cubic::new())),
        "newreno" => Some(Box::new(newreno::NewReno::new())),
        "reno" => Some(Box::new(newreno::NewReno::reno())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_rfc6928() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(536), 5360);
        assert_eq!(initial_window(8960), 17_920);
        assert_eq!(initial_window(1000), 10_000);
    }

    #[test]
    fn by_name_knows_the_modules() {
        assert_eq!(by_name("cubic").unwrap().name(), "cubic");
        assert_eq!(by_name(DEFAULT).unwrap().name(), "cubic");
        assert_eq!(by_name("newreno").unwrap().name(), "newreno");
        assert_eq!(by_name("reno").unwrap().name(), "reno");
        assert!(by_name("bbr").is_none());
        for n in ["cubic", "newreno", "reno"] {
            let mut cc = by_name(n).unwrap();
            let mut s = CcState::new(1460);
            cc.init(&mut s);
            assert_eq!(s.cwnd, 14_600, "{n}");
            assert_eq!(s.ssthresh, u32::MAX, "{n}");
        }
    }
}
