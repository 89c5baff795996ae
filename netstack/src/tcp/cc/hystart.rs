//! Slow start with HyStart++ (RFC 9406), shared by every module.
//!
//! [`HyStart::slow_start`] applies one ACK received in slow start: the window
//! grows by the bytes acknowledged, at most `ABC_L * SMSS` per ACK (RFC 3465),
//! and during the initial slow start HyStart++ watches the minimum RTT of each
//! round. When a round's minimum RTT exceeds the previous round's by
//! `clamp(lastRoundMinRTT / 8, 4 ms, 16 ms)` (queues are building), it moves
//! to Conservative Slow Start (CSS): growth divided by 4. If the RTT drops
//! back below the baseline measured at CSS entry, the exit was spurious and
//! slow start resumes; after `CSS_ROUNDS` rounds of CSS it sets
//! `ssthresh = cwnd` and the module continues in congestion avoidance.
//!
//! Rounds (RFC 9406 §4.2: "Define windowEnd as a sequence number initialized
//! to SND.NXT. When windowEnd is ACKed, the current round ends and windowEnd
//! is set to SND.NXT") are counted without a hook in the tcpcb: the module
//! sees every byte acknowledged outside recovery through `acked`, and
//! [`CcState::flight`] (`SND.MAX - SND.UNA` after the ACK, before anything new
//! is sent) gives `SND.NXT` relative to `SND.UNA`. HyStart++ is off for good
//! once a loss, a timeout or CSS ended the initial slow start, so the ACKs
//! the tcpcb keeps from the module during recovery never matter here.
//!
//! Limit `L`: RFC 9406 §4.3 allows "L = infinity if paced, L = 8 if
//! non-paced"; Joyride does not pace and keeps RFC 3465's stricter `L = 2`
//! ([`ABC_L`]) in both slow start and CSS.
//!
//! Not for: HyStart's ACK-train heuristic (Linux CUBIC's other exit), pacing,
//! HyStart++ after an idle restart (RFC 9406 §4.2 "MAY"; the idle restart
//! keeps whatever phase the initial slow start was in).

use super::CcState;
use core::time::Duration;

/// RFC 3465 §2.2 limit `L` on the slow-start increase per ACK, in SMSS.
pub const ABC_L: u32 = 2;
/// RFC 9406 §4.3: lower bound of the delay-increase threshold.
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// RFC 9406 §4.3: upper bound of the delay-increase threshold.
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// RFC 9406 §4.3: the threshold is `lastRoundMinRTT / MIN_RTT_DIVISOR`.
pub const MIN_RTT_DIVISOR: u32 = 8;
/// RFC 9406 §4.3: RTT samples a round needs before it is judged.
pub const N_RTT_SAMPLE: u32 = 8;
/// RFC 9406 §4.3: CSS grows the window this many times slower.
pub const CSS_GROWTH_DIVISOR: u32 = 4;
/// RFC 9406 §4.3: rounds of CSS before congestion avoidance.
pub const CSS_ROUNDS: u32 = 5;

/// Where HyStart++ is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Standard slow start, watching the RTT.
    #[default]
    SlowStart,
    /// Conservative Slow Start.
    Css {
        /// `cssBaselineMinRtt`: the round minimum that triggered CSS.
        baseline: Duration,
        /// Rounds of CSS completed (the partial round of entry counts).
        rounds: u32,
    },
    /// The initial slow start is over (loss, timeout, or CSS completed):
    /// plain slow start from now on.
    Off,
}

/// HyStart++ state of one connection.
#[derive(Debug, Clone, Default)]
pub struct HyStart {
    phase: Phase,
    /// Bytes acknowledged so far through [`HyStart::slow_start`]: `SND.UNA`
    /// relative to the first ACK, on 64 bits so it never wraps.
    una: u64,
    /// `windowEnd` on the same scale as `una`; `None` before the first ACK.
    window_end: Option<u64>,
    /// `lastRoundMinRTT`; `None` is the RFC's infinity.
    last_round_min_rtt: Option<Duration>,
    /// `currentRoundMinRTT`; `None` is the RFC's infinity.
    current_round_min_rtt: Option<Duration>,
    /// `rttSampleCount` of the current round.
    rtt_sample_count: u32,
}

impl HyStart {
    /// HyStart++ at the start of a connection.
    pub fn new() -> HyStart {
        HyStart::default()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A loss or a timeout ended slow start: "If congestion is observed
    /// anytime during slow start and CSS, then exit to congestion avoidance
    /// via loss recovery" (RFC 9406 §4.2); HyStart++ stays off for the rest
    /// of the connection (§4.2: "use HyStart++ only for the initial slow
    /// start").
    pub fn on_congestion(&mut self) {
        self.phase = Phase::Off;
    }

    /// One ACK of `acked` new bytes in slow start (`s.cwnd < s.ssthresh`,
    /// outside recovery), with the RTT sample `rtt` if the ACK gave one.
    /// Grows `s.cwnd`, and sets `s.ssthresh = s.cwnd` when CSS ends.
    pub fn slow_start(&mut self, s: &mut CcState, acked: u32, rtt: Option<Duration>) {
        // RFC 3465 §2.2: "cwnd MUST NOT be increased by more than L*SMSS
        // bytes in response to a single ACK".
        let inc = acked.min(ABC_L * s.smss());
        // Only the initial slow start, whose ssthresh is still "arbitrarily
        // high" (RFC 9406 §4.2).
        if self.phase == Phase::Off || s.ssthresh != u32::MAX {
            self.phase = Phase::Off;
            s.cwnd = s.cwnd.saturating_add(inc);
            return;
        }
        self.una += u64::from(acked);
        // The first ACK opens the first round: it ends with what is in
        // flight now (SND.NXT).
        let window_end = *self.window_end.get_or_insert(self.una + u64::from(s.flight));
        if let Some(r) = rtt {
            // "currentRoundMinRTT = min(currentRoundMinRTT, currRTT)
            //  rttSampleCount += 1"
            self.current_round_min_rtt = Some(self.current_round_min_rtt.map_or(r, |m| m.min(r)));
            self.rtt_sample_count += 1;
        }
        match self.phase {
            Phase::SlowStart => {
                // "cwnd = cwnd + min(N, L * SMSS)"
                s.cwnd = s.cwnd.saturating_add(inc);
                if let (true, Some(cur), Some(last)) = (
                    self.rtt_sample_count >= N_RTT_SAMPLE,
                    self.current_round_min_rtt,
                    self.last_round_min_rtt,
                ) {
                    // "RttThresh = max(MIN_RTT_THRESH,
                    //    min(lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH))
                    //  if (currentRoundMinRTT >= (lastRoundMinRTT + RttThresh))
                    //    cssBaselineMinRtt = currentRoundMinRTT
                    //    exit slow start and enter CSS"
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if cur >= last + thresh {
                        self.phase = Phase::Css {
                            baseline: cur,
                            rounds: 0,
                        };
                    }
                }
            }
            Phase::Css { baseline, .. } => {
                // "cwnd = cwnd + (min(N, L * SMSS) / CSS_GROWTH_DIVISOR)"
                s.cwnd = s.cwnd.saturating_add(inc / CSS_GROWTH_DIVISOR);
                // "if (currentRoundMinRTT < cssBaselineMinRtt)
                //    cssBaselineMinRtt = infinity
                //    resume slow start including HyStart++"
                if self.rtt_sample_count >= N_RTT_SAMPLE && self.current_round_min_rtt.is_some_and(|m| m < baseline) {
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Off => unreachable!("handled above"),
        }
        if self.una >= window_end {
            self.end_round(s);
        }
    }

    /// `windowEnd` was acknowledged: the round is over.
    fn end_round(&mut self, s: &mut CcState) {
        if let Phase::Css { baseline, rounds } = self.phase {
            // "CSS lasts at most CSS_ROUNDS rounds. If the transition into
            // CSS happens in the middle of a round, that partial round counts
            // towards the limit."
            let rounds = rounds + 1;
            if rounds >= CSS_ROUNDS {
                // "If CSS_ROUNDS rounds are complete, enter congestion
                // avoidance by setting the ssthresh to the current cwnd."
                s.ssthresh = s.cwnd;
                self.phase = Phase::Off;
                return;
            }
            self.phase = Phase::Css { baseline, rounds };
        }
        // "lastRoundMinRTT = currentRoundMinRTT
        //  currentRoundMinRTT = infinity
        //  rttSampleCount = 0"
        self.last_round_min_rtt = self.current_round_min_rtt;
        self.current_round_min_rtt = None;
        self.rtt_sample_count = 0;
        self.window_end = Some(self.una + u64::from(s.flight));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A sender in its initial slow start with `IW = 10 * MSS`, always
    /// filling its window, and a receiver acknowledging every segment.
    struct Sender {
        hs: HyStart,
        s: CcState,
        /// `SND.UNA` and `SND.MAX`, bytes.
        una: u32,
        max: u32,
        /// `SND.MAX` when the last round ended: where this round ends.
        round_end: u32,
    }

    impl Sender {
        fn new() -> Sender {
            let mut s = CcState::new(MSS);
            s.cwnd = 10 * MSS;
            Sender {
                hs: HyStart::new(),
                s,
                una: 0,
                max: 10 * MSS,
                round_end: 10 * MSS,
            }
        }

        /// One round trip: the ACKs of everything sent during the previous
        /// one, the `i`-th carrying the RTT sample `rtt(i)`. Returns the
        /// bytes acknowledged.
        fn round_with(&mut self, rtt: impl Fn(u32) -> Option<Duration>) -> u32 {
            let start = self.una;
            let mut i = 0;
            while self.una < self.round_end {
                self.una += MSS;
                // What the tcpcb reports: SND.MAX - SND.UNA after the ACK,
                // before sending.
                self.s.flight = self.max - self.una;
                self.hs.slow_start(&mut self.s, MSS, rtt(i));
                i += 1;
                let last = self.una == self.round_end;
                if last {
                    self.round_end = self.max;
                }
                // Whole segments only.
                self.max = self.max.max(self.una + self.s.cwnd / MSS * MSS);
                if last {
                    break;
                }
            }
            self.una - start
        }

        fn round(&mut self, rtt: Duration) -> u32 {
            self.round_with(|_| Some(rtt))
        }
    }

    #[test]
    fn flat_rtt_is_plain_slow_start() {
        let mut a = Sender::new();
        for _ in 0..10 {
            let w = a.s.cwnd;
            let acked = a.round(ms(50));
            assert_eq!(a.s.cwnd, w + acked, "one SMSS per SMSS acknowledged");
            assert_eq!(a.hs.phase(), Phase::SlowStart);
        }
        assert!(a.s.cwnd > 1000 * MSS, "{}", a.s.cwnd);
        assert_eq!(a.s.ssthresh, u32::MAX);
        // Jitter within the 4 ms floor does not trigger CSS either.
        for i in 0..4u32 {
            a.round_with(|k| Some(ms(50 + u64::from((i + k) % 4))));
            assert_eq!(a.hs.phase(), Phase::SlowStart);
        }
    }

    #[test]
    fn delay_increase_enters_css() {
        let mut a = Sender::new();
        a.round(ms(50));
        a.round(ms(50));
        // Threshold: clamp(50 / 8, 4, 16) = 6.25 ms. 56 ms is not enough.
        a.round(ms(56));
        assert_eq!(a.hs.phase(), Phase::SlowStart);
        let w = a.s.cwnd;
        // 56 + 7 ms is: CSS from the 8th sample of the round on.
        let acked = a.round(ms(63));
        assert!(matches!(a.hs.phase(), Phase::Css { baseline, rounds: 1 } if baseline == ms(63)));
        // 8 ACKs at full rate, then a quarter of the rest.
        assert_eq!(a.s.cwnd, w + 8 * MSS + (acked - 8 * MSS) / 4);
        // A whole CSS round: a quarter of the bytes acknowledged.
        let w = a.s.cwnd;
        let acked = a.round(ms(63));
        assert!(matches!(a.hs.phase(), Phase::Css { rounds: 2, .. }));
        assert_eq!(a.s.cwnd, w + acked / 4);
        assert_eq!(a.s.ssthresh, u32::MAX);
    }

    #[test]
    fn css_reverts_to_slow_start_when_rtt_drops() {
        let mut a = Sender::new();
        a.round(ms(40));
        a.round(ms(40));
        a.round(ms(50));
        assert!(matches!(a.hs.phase(), Phase::Css { baseline, .. } if baseline == ms(50)));
        // The queue drains: below the baseline once the round has 8 samples.
        a.round(ms(45));
        assert_eq!(a.hs.phase(), Phase::SlowStart);
        // Back to full growth (last round's minimum is 45 ms now).
        let w = a.s.cwnd;
        let acked = a.round(ms(45));
        assert_eq!(a.s.cwnd, w + acked);
        assert_eq!(a.hs.phase(), Phase::SlowStart);
        // And HyStart++ still watches: a new increase enters CSS again.
        a.round(ms(60));
        assert!(matches!(a.hs.phase(), Phase::Css { baseline, .. } if baseline == ms(60)));
    }

    #[test]
    fn css_rounds_end_in_congestion_avoidance() {
        let mut a = Sender::new();
        a.round(ms(20));
        a.round(ms(20));
        // Threshold: clamp(20 / 8, 4, 16) = 4 ms. The partial round of entry
        // counts.
        a.round(ms(24));
        assert!(matches!(a.hs.phase(), Phase::Css { rounds: 1, .. }));
        for n in 1..CSS_ROUNDS {
            assert!(
                matches!(a.hs.phase(), Phase::Css { rounds, .. } if rounds == n),
                "{n} {:?}",
                a.hs
            );
            assert_eq!(a.s.ssthresh, u32::MAX);
            a.round(ms(30));
        }
        assert_eq!(a.hs.phase(), Phase::Off);
        assert_eq!(a.s.ssthresh, a.s.cwnd);
        // Slow start is over for good: the module's congestion avoidance
        // takes over since cwnd >= ssthresh; if a timeout later restarts
        // slow start, it is the plain one whatever the RTT does.
        a.s.ssthresh = 1000 * MSS;
        a.s.cwnd = 10 * MSS;
        a.round(ms(30));
        let w = a.s.cwnd;
        let acked = a.round(ms(300));
        assert_eq!(a.s.cwnd, w + acked);
        assert_eq!(a.hs.phase(), Phase::Off);
    }

    #[test]
    fn large_rtt_threshold_is_capped_and_needs_samples() {
        let mut a = Sender::new();
        a.round(ms(400));
        a.round(ms(400));
        // lastRoundMinRTT / 8 = 50 ms, capped at 16 ms.
        a.round(ms(415));
        assert_eq!(a.hs.phase(), Phase::SlowStart);
        a.round(ms(432));
        assert!(matches!(a.hs.phase(), Phase::Css { .. }));

        // Fewer than N_RTT_SAMPLE samples in a round: no decision.
        let mut b = Sender::new();
        b.round(ms(20));
        b.round(ms(20));
        b.round_with(|i| (i < N_RTT_SAMPLE - 1).then_some(ms(100)));
        assert_eq!(b.hs.phase(), Phase::SlowStart);
        // With N_RTT_SAMPLE samples the same round is judged: 100 ms
        // against the previous round's 20 ms.
        let mut c = Sender::new();
        c.round(ms(20));
        c.round(ms(20));
        c.round_with(|i| (i < N_RTT_SAMPLE).then_some(ms(100)));
        assert!(matches!(c.hs.phase(), Phase::Css { .. }));
    }

    #[test]
    fn congestion_or_a_set_ssthresh_turns_it_off() {
        let mut a = Sender::new();
        a.round(ms(20));
        a.hs.on_congestion();
        a.round(ms(20));
        a.round(ms(100));
        assert_eq!(a.hs.phase(), Phase::Off);
        assert_eq!(a.s.ssthresh, u32::MAX);
        // Slow start towards a known ssthresh (after a timeout) is plain.
        let mut b = Sender::new();
        b.s.ssthresh = 1000 * MSS;
        b.round(ms(20));
        b.round(ms(20));
        b.round(ms(100));
        assert_eq!(b.hs.phase(), Phase::Off);
    }
}
