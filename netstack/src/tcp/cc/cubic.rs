//! CUBIC congestion control (RFC 9438), the default module.
//!
//! Windows are tracked internally in segments as `f64` (the RFC's units) and
//! written back to [`CcState::cwnd`] in bytes. Slow start is Reno's (with
//! RFC 3465 byte counting, `L = 2`) with HyStart++ (RFC 9406, see
//! [`super::hystart`]) in the initial slow start. In
//! congestion avoidance the window follows
//! `W_cubic(t) = C*(t - K)^3 + W_max` (RFC 9438 §4.2, Figure 1) with
//! `C = 0.4`, `β_cubic = 0.7`, fast convergence (§4.7) and the Reno-friendly
//! estimate `W_est` (§4.3).
//!
//! Time: `t` is `now` minus the start of the current congestion-avoidance
//! epoch; nothing here reads a clock. The epoch starts at the first ACK in
//! congestion avoidance after slow start, recovery or a timeout.
//!
//! Idle periods: like Linux's `cubictcp_cwnd_event(CA_EVENT_TX_START)`, time
//! spent idle does not count towards `t`, so the window does not jump when a
//! connection resumes. The epoch start is moved forward by the idle time
//! (never past `now`). This happens in [`CongestionControl::after_idle`] when
//! the tcpcb calls it, and otherwise when two consecutive ACKs are further
//! apart than the RTO this module estimates from the RTT samples it is given
//! (RFC 6298 `SRTT + 4*RTTVAR`, at least 200 ms as in Linux, 1 s before the
//! first sample) — with data in flight ACKs come at least once per RTO.
//!
//! Not for: HyStart's ACK-train exit, spurious-congestion undo (§4.9), ECN (§4.6's ECE case).

use super::hystart::HyStart;
use super::{initial_window, CcState, CongestionControl};
use crate::time::Instant;
use core::time::Duration;

/// RFC 9438 §5.1: "C SHOULD be set to 0.4".
pub const C: f64 = 0.4;
/// RFC 9438 §4.6: "β_cubic SHOULD be set to 0.7".
pub const BETA: f64 = 0.7;
/// RFC 9438 §4.3: `α_cubic = 3 * (1 - β_cubic) / (1 + β_cubic)`.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);
/// Lower bound on the idle threshold (Linux's `TCP_RTO_MIN`).
const MIN_IDLE: Duration = Duration::from_millis(200);
/// Idle threshold before any RTT sample (RFC 6298's initial RTO).
const INITIAL_IDLE: Duration = Duration::from_secs(1);

/// `W_cubic(t) = C*(t - K)^3 + W_max` (RFC 9438 Figure 1), in segments.
pub fn w_cubic(t: f64, k: f64, w_max: f64) -> f64 {
    C * (t - k).powi(3) + w_max
}

/// `K = cubic_root((W_max - cwnd_epoch) / C)` (RFC 9438 Figure 2), in
/// seconds; zero if `cwnd_epoch >= W_max`.
pub fn k_of(w_max: f64, cwnd_epoch: f64) -> f64 {
    if cwnd_epoch >= w_max {
        0.0
    } else {
        ((w_max - cwnd_epoch) / C).cbrt()
    }
}

/// CUBIC congestion control.
#[derive(Debug, Clone, Default)]
pub struct Cubic {
    /// `W_max`, segments: the window before the last reduction (after fast
    /// convergence); 0 after a timeout (§4.8: set at the next epoch start).
    w_max: f64,
    /// `K` of the current epoch, seconds.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// `cwnd_epoch`, segments.
    cwnd_epoch: f64,
    /// `W_est`, segments.
    w_est: f64,
    /// `cwnd_prior`, segments: the window before the last reduction.
    cwnd_prior: f64,
    /// The window in segments with its fraction; `s.cwnd` is its truncation.
    w: f64,
    /// The `s.cwnd` this module last wrote; any other value means the tcpcb
    /// changed the window and `w` is resynchronised.
    written: u32,
    /// Slow start.
    hystart: HyStart,
    /// RFC 6298 estimators from the samples passed to `on_ack`.
    srtt: Option<Duration>,
    rttvar: Duration,
    /// Time of the last `on_ack` or `after_idle`.
    last_ack: Option<Instant>,
    /// A timeout happened and no ACK followed yet.
    rto_pending: bool,
}

impl Cubic {
    /// A CUBIC instance.
    pub fn new() -> Cubic {
        Cubic::default()
    }

    /// `W_max` in segments.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// `K` of the current epoch in seconds.
    pub fn k(&self) -> f64 {
        self.k
    }

    /// `W_est` in segments.
    pub fn w_est(&self) -> f64 {
        self.w_est
    }

    /// Start of the current congestion-avoidance epoch, if one is running.
    pub fn epoch_start(&self) -> Option<Instant> {
        self.epoch_start
    }

    fn sync(&mut self, s: &CcState) {
        if s.cwnd != self.written {
            self.w = f64::from(s.cwnd) / f64::from(s.smss());
        }
    }

    fn write(&mut self, s: &mut CcState) {
        let bytes = (self.w * f64::from(s.smss())).min(f64::from(u32::MAX));
        s.cwnd = bytes as u32;
        self.written = s.cwnd;
    }

    /// The RTO estimate used to recognise idle periods.
    fn idle_threshold(&self) -> Duration {
        match self.srtt {
            Some(srtt) => (srtt + 4 * self.rttvar).max(MIN_IDLE),
            None => INITIAL_IDLE,
        }
    }

    fn sample_rtt(&mut self, r: Duration) {
        // RFC 6298 §2.3: "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|"
        // and "SRTT <- (1 - alpha) * SRTT + alpha * R'", alpha 1/8, beta 1/4.
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
    }

    /// Moves the epoch start forward by `idle`, never past `now`.
    fn skip_idle(&mut self, now: Instant, idle: Duration) {
        if let Some(start) = self.epoch_start {
            self.epoch_start = Some(start.saturating_add(idle).min(now));
        }
    }

    /// The multiplicative decrease shared by fast recovery and timeouts.
    fn reduce(&mut self, s: &mut CcState) {
        self.sync(s);
        let mss = f64::from(s.smss());
        let cwnd = self.w;
        // RFC 9438 §4.7: "if cwnd < W_max and fast convergence enabled,
        // further reduce W_max: W_max = cwnd * (1 + β_cubic) / 2; otherwise,
        // remember cwnd before reduction: W_max = cwnd".
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        // RFC 9438 §4.6: "ssthresh = flight_size * β_cubic" and
        // "ssthresh = max(ssthresh, 2)" (segments).
        let ssthresh = (f64::from(s.flight) * BETA).max(2.0 * mss);
        s.ssthresh = ssthresh.min(f64::from(u32::MAX)) as u32;
        self.epoch_start = None;
        self.hystart.on_congestion();
    }

    /// One ACK in congestion avoidance (RFC 9438 §4.2-§4.5).
    fn avoid(&mut self, s: &mut CcState, acked: u32, now: Instant) {
        self.sync(s);
        let mss = f64::from(s.smss());
        let start = match self.epoch_start {
            Some(start) => start,
            None => {
                // A new congestion-avoidance stage.
                self.epoch_start = Some(now);
                self.cwnd_epoch = self.w;
                self.w_est = self.w;
                // §4.8: after a timeout (and before any congestion event)
                // "K is set to 0, and W_max is set to the congestion window
                // size at the beginning of the current congestion avoidance
                // stage"; k_of gives 0 whenever cwnd_epoch >= W_max.
                if self.w_max <= self.cwnd_epoch {
                    self.w_max = self.cwnd_epoch;
                }
                self.k = k_of(self.w_max, self.cwnd_epoch);
                now
            }
        };
        let t = now.saturating_duration_since(start).as_secs_f64();
        let rtt = self.srtt.unwrap_or(Duration::ZERO).as_secs_f64();
        let segs = f64::from(acked) / mss;

        // §4.3: "W_est = W_est + α_cubic * segments_acked / cwnd", with
        // α_cubic = 1 once "W_est >= cwnd_prior".
        let alpha = if self.w_est >= self.cwnd_prior { 1.0 } else { ALPHA };
        self.w_est += alpha * segs / self.w.max(1.0);

        let cubic_now = w_cubic(t, self.k, self.w_max);
        if cubic_now < self.w_est {
            // §4.3: "If W_cubic(t) is less than W_est, then CUBIC is in the
            // Reno-friendly region and cwnd SHOULD be set to W_est at each
            // reception of a new ACK."
            self.w = self.w.max(self.w_est);
        } else {
            // §4.2: the target is W_cubic(t + RTT), clamped: "if
            // W_cubic(t + RTT) < cwnd ... target = cwnd" and "if
            // W_cubic(t + RTT) > 1.5 * cwnd ... target = 1.5 * cwnd".
            let target = w_cubic(t + rtt, self.k, self.w_max).clamp(self.w, 1.5 * self.w);
            // §4.4/§4.5: "cwnd MUST be incremented by (target - cwnd) / cwnd
            // for each received new ACK" (per SMSS acknowledged here).
            self.w += (target - self.w) / self.w.max(1.0) * segs;
        }
        self.write(s);
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn init(&mut self, s: &mut CcState) {
        *self = Cubic::new();
        s.cwnd = initial_window(s.mss);
        s.ssthresh = u32::MAX;
        self.sync(s);
        self.written = s.cwnd;
    }

    fn on_ack(&mut self, s: &mut CcState, acked: u32, now: Instant, rtt: Option<Duration>) {
        if let Some(r) = rtt {
            self.sample_rtt(r);
        }
        if let Some(last) = self.last_ack {
            let gap = now.saturating_duration_since(last);
            if gap > self.idle_threshold() {
                self.skip_idle(now, gap);
            }
        }
        self.last_ack = Some(now);
        self.rto_pending = false;
        if s.in_recovery {
            return;
        }
        if s.cwnd < s.ssthresh {
            // §4.10: "CUBIC MAY employ a slow-start algorithm" — here
            // HyStart++, which §4.10 names. Leaving it without loss makes the
            // next ACK start an epoch with W_max = cwnd and K = 0 (see
            // `avoid`), as §4.10 asks.
            self.hystart.slow_start(s, acked, rtt);
            self.sync(s);
            self.written = s.cwnd;
            return;
        }
        self.avoid(s, acked, now);
    }

    fn on_congestion(&mut self, s: &mut CcState, _now: Instant) {
        self.reduce(s);
        // §4.6: "cwnd = max(ssthresh, 2)" on a reduction on loss.
        s.cwnd = s.ssthresh;
        self.sync(s);
        self.written = s.cwnd;
    }

    fn on_recovery_exit(&mut self, s: &mut CcState, _now: Instant) {
        s.cwnd = s.ssthresh;
        self.sync(s);
        self.written = s.cwnd;
        self.epoch_start = None;
    }

    fn on_rto(&mut self, s: &mut CcState, _now: Instant) {
        // §4.8: "In the case of a timeout, CUBIC follows Reno to reduce cwnd
        // [RFC5681] but sets ssthresh using β_cubic (same as in Section 4.6)".
        // A repeated timeout without an ACK in between holds ssthresh
        // (RFC 5681 §3.1).
        if !self.rto_pending {
            self.reduce(s);
        }
        // W_max is re-set at the start of the next congestion-avoidance stage
        // with K = 0 (§4.8).
        self.w_max = 0.0;
        self.epoch_start = None;
        s.cwnd = s.smss();
        self.sync(s);
        self.written = s.cwnd;
        self.rto_pending = true;
    }

    fn after_idle(&mut self, s: &mut CcState, now: Instant, idle: Duration) {
        // RFC 5681 §4.1 restart window, as every module.
        s.cwnd = s.cwnd.min(initial_window(s.mss));
        self.sync(s);
        self.written = s.cwnd;
        // Linux `cubictcp_cwnd_event(CA_EVENT_TX_START)`: idle time does not
        // count towards t.
        self.skip_idle(now, idle);
        self.last_ack = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn setup() -> (Cubic, CcState) {
        let mut cc = Cubic::new();
        let mut s = CcState::new(MSS);
        cc.init(&mut s);
        (cc, s)
    }

    /// Puts `cc` in congestion avoidance right after a loss at `w_max`
    /// segments with FlightSize = cwnd, at time `at`.
    fn after_loss(cc: &mut Cubic, s: &mut CcState, w_max: u32, at: Instant) {
        s.cwnd = w_max * MSS;
        s.flight = w_max * MSS;
        s.ssthresh = u32::MAX;
        cc.on_congestion(s, at);
        s.in_recovery = true;
        cc.on_recovery_exit(s, at);
        s.in_recovery = false;
    }

    /// One RTT of ACKs (one per SMSS of the current window) ending at `end`.
    fn one_rtt(cc: &mut Cubic, s: &mut CcState, end: Instant, rtt: Duration) {
        let n = s.cwnd / MSS;
        for _ in 0..n {
            cc.on_ack(s, MSS, end, Some(rtt));
        }
    }

    #[test]
    fn k_and_curve_match_the_formula() {
        // W_max = 100, cwnd_epoch = 70: K = cbrt(30 / 0.4) = cbrt(75).
        let k = k_of(100.0, 70.0);
        assert!((k - 75f64.cbrt()).abs() < 1e-12);
        assert!((k - 4.217_163).abs() < 1e-5);
        assert_eq!(k_of(100.0, 120.0), 0.0);
        assert!((w_cubic(0.0, k, 100.0) - 70.0).abs() < 1e-9);
        assert!((w_cubic(k, k, 100.0) - 100.0).abs() < 1e-12);
        // Concave before K, convex after.
        let d1 = w_cubic(1.0, k, 100.0) - w_cubic(0.0, k, 100.0);
        let d2 = w_cubic(2.0, k, 100.0) - w_cubic(1.0, k, 100.0);
        assert!(d1 > d2 && d2 > 0.0);
        let d3 = w_cubic(k + 1.0, k, 100.0) - w_cubic(k, k, 100.0);
        let d4 = w_cubic(k + 2.0, k, 100.0) - w_cubic(k + 1.0, k, 100.0);
        assert!(d4 > d3 && d3 > 0.0);
    }

    #[test]
    fn window_follows_the_cubic_curve() {
        let (mut cc, mut s) = setup();
        let rtt = Duration::from_millis(100);
        let t0 = ms(10_000);
        // Large W_max so that the Reno-friendly estimate stays below the
        // curve (W_est reaches ~750 at K).
        after_loss(&mut cc, &mut s, 1000, t0);
        assert_eq!(s.ssthresh, 700 * MSS);
        assert_eq!(s.cwnd, 700 * MSS);
        assert_eq!(cc.w_max(), 1000.0);
        let mut prev_inc = f64::MAX;
        let mut samples = Vec::new();
        // The first ACK starts the epoch at t0.
        for i in 1..=150u64 {
            let now = t0 + rtt * i as u32;
            let before = s.cwnd;
            one_rtt(&mut cc, &mut s, now, rtt);
            if i == 1 {
                assert_eq!(cc.epoch_start(), Some(now));
                assert!((cc.k() - 750f64.cbrt()).abs() < 1e-9);
            }
            let t = now.saturating_duration_since(cc.epoch_start().unwrap()).as_secs_f64();
            // After one RTT of ACKs towards W_cubic(t + RTT), cwnd is close
            // to the curve one RTT later.
            let expect = w_cubic(t + rtt.as_secs_f64(), cc.k(), 1000.0);
            assert!(cc.w_est() < expect);
            let got = f64::from(s.cwnd) / f64::from(MSS);
            samples.push((t, got, expect));
            if (1.0..=14.0).contains(&t) {
                assert!((got - expect).abs() < 10.0, "t={t} cwnd={got} W_cubic={expect}");
            }
            let inc = f64::from(s.cwnd - before);
            if t > 0.5 && t < cc.k() - 0.5 {
                // Concave region: growth slows down, cwnd below W_max.
                assert!(inc <= prev_inc + f64::from(MSS), "t={t}");
                assert!(s.cwnd < 1000 * MSS);
            }
            prev_inc = inc;
        }
        // Convex region: well past K the window is above W_max and
        // accelerating.
        let n = samples.len();
        let (_, a, _) = samples[n - 3];
        let (_, b, _) = samples[n - 2];
        let (_, c, _) = samples[n - 1];
        assert!(a > 1000.0);
        assert!(c - b > b - a, "convex: {a} {b} {c}");
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let (mut cc, mut s) = setup();
        after_loss(&mut cc, &mut s, 100, ms(1000));
        assert_eq!(cc.w_max(), 100.0);
        // Next loss below the previous W_max: W_max = 80 * (1 + 0.7) / 2.
        after_loss(&mut cc, &mut s, 80, ms(2000));
        assert!((cc.w_max() - 68.0).abs() < 1e-9);
        assert_eq!(s.ssthresh, 56 * MSS);
        // A loss above W_max sets W_max to cwnd.
        after_loss(&mut cc, &mut s, 90, ms(3000));
        assert_eq!(cc.w_max(), 90.0);
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // Small window, short RTT: Reno (W_est) outgrows the cubic curve.
        let (mut cc, mut s) = setup();
        let rtt = Duration::from_millis(10);
        let t0 = ms(5000);
        after_loss(&mut cc, &mut s, 10, t0);
        assert_eq!(s.cwnd, 7 * MSS);
        for i in 1..=40u32 {
            one_rtt(&mut cc, &mut s, t0 + rtt * i, rtt);
        }
        let t = 0.4;
        let cubic = w_cubic(t, cc.k(), cc.w_max());
        let got = f64::from(s.cwnd) / f64::from(MSS);
        assert!(cubic < 10.0, "cubic curve still below W_max: {cubic}");
        assert!(got > cubic + 5.0, "cwnd {got} follows W_est, not {cubic}");
        assert!((got - cc.w_est()).abs() < 1.0, "cwnd {got} W_est {}", cc.w_est());
        // W_est grew at α_cubic until cwnd_prior (10), then at 1 per RTT:
        // 3 / 0.529 ≈ 6 RTTs to reach 10, then ~34 more.
        assert!(got > 35.0 && got < 50.0, "{got}");
    }

    #[test]
    fn rto_collapses_and_restarts_with_k_zero() {
        let (mut cc, mut s) = setup();
        s.ssthresh = 50 * MSS;
        s.cwnd = 100 * MSS;
        s.flight = 100 * MSS;
        cc.on_rto(&mut s, ms(1000));
        assert_eq!(s.cwnd, MSS);
        assert_eq!(s.ssthresh, 70 * MSS);
        // A second timeout holds ssthresh.
        s.flight = 10 * MSS;
        cc.on_rto(&mut s, ms(3000));
        assert_eq!(s.ssthresh, 70 * MSS);
        // Slow start up to ssthresh, then an epoch with K = 0 and
        // W_max = cwnd_epoch.
        let mut now = ms(3000);
        while s.cwnd < s.ssthresh {
            now += Duration::from_millis(1);
            cc.on_ack(&mut s, MSS, now, Some(Duration::from_millis(50)));
        }
        assert_eq!(cc.epoch_start(), None);
        let w = f64::from(s.cwnd) / f64::from(MSS);
        cc.on_ack(&mut s, MSS, now, None);
        assert_eq!(cc.k(), 0.0);
        assert_eq!(cc.w_max(), w);
    }

    #[test]
    fn idle_does_not_advance_the_curve() {
        let rtt = Duration::from_millis(100);
        let run = |idle_gap: bool| {
            let (mut cc, mut s) = setup();
            let t0 = ms(10_000);
            after_loss(&mut cc, &mut s, 100, t0);
            let mut now = t0;
            for _ in 0..10 {
                now += rtt;
                one_rtt(&mut cc, &mut s, now, rtt);
            }
            if idle_gap {
                // 30 s without any ACK (the application had nothing to send).
                now += Duration::from_secs(30);
            }
            now += rtt;
            one_rtt(&mut cc, &mut s, now, rtt);
            (s.cwnd, cc)
        };
        let (busy, _) = run(false);
        let (idle, cc) = run(true);
        // Without the idle handling t would be ~31 s and cwnd would jump far
        // past W_max; with it the window is where it would have been.
        assert!(idle.abs_diff(busy) <= MSS, "idle {idle} busy {busy}");
        assert!(idle < 100 * MSS);
        assert!(cc.epoch_start().unwrap() > ms(40_000));

        // The explicit hook does the same, plus the RFC 5681 restart window.
        let (mut cc, mut s) = setup();
        after_loss(&mut cc, &mut s, 100, ms(0));
        one_rtt(&mut cc, &mut s, ms(100), rtt);
        let start = cc.epoch_start().unwrap();
        cc.after_idle(&mut s, ms(5000), Duration::from_millis(4900));
        assert_eq!(cc.epoch_start(), Some(start + Duration::from_millis(4900)));
        assert_eq!(s.cwnd, 10 * MSS);
        // Never past now.
        cc.after_idle(&mut s, ms(5000), Duration::from_secs(100));
        assert_eq!(cc.epoch_start(), Some(ms(5000)));
    }

    #[test]
    fn slow_start_and_recovery_acks() {
        let (mut cc, mut s) = setup();
        let w = s.cwnd;
        for _ in 0..w / MSS {
            cc.on_ack(&mut s, MSS, ms(1), None);
        }
        assert_eq!(s.cwnd, 2 * w);
        s.in_recovery = true;
        cc.on_ack(&mut s, MSS, ms(2), None);
        assert_eq!(s.cwnd, 2 * w);
    }

    #[test]
    fn hystart_exit_starts_an_epoch_at_the_window() {
        // Slow start on a path whose RTT grows by 10 ms per round from the
        // third round on (a queue filling): HyStart++ enters CSS and after
        // five rounds congestion avoidance starts without a loss, with
        // W_max = cwnd and K = 0 (RFC 9438 §4.10).
        let (mut cc, mut s) = setup();
        let mut now = ms(1000);
        let mut una = 0u32;
        let mut max = s.cwnd;
        let mut round = 0u64;
        while s.cwnd < s.ssthresh {
            round += 1;
            assert!(round < 30, "slow start never ended");
            let rtt = Duration::from_millis(50 + 10 * round.saturating_sub(2));
            now += rtt;
            let end = max;
            while una < end && s.cwnd < s.ssthresh {
                una += MSS;
                s.flight = max - una;
                cc.on_ack(&mut s, MSS, now, Some(rtt));
                max = max.max(una + s.cwnd / MSS * MSS);
            }
        }
        assert!(round > 5 && s.cwnd < 1000 * MSS, "round {round} cwnd {}", s.cwnd);
        assert_eq!(s.ssthresh, s.cwnd);
        let w = f64::from(s.cwnd) / f64::from(MSS);
        cc.on_ack(&mut s, MSS, now, None);
        assert_eq!(cc.epoch_start(), Some(now));
        assert_eq!(cc.k(), 0.0);
        assert_eq!(cc.w_max(), w);
    }
}
