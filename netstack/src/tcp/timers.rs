//! A connection's timer constants and its round-trip estimator (RFC 6298).
//!
//! The tcpcb keeps each timer as a plain deadline (`Option<Instant>`) and
//! reports the earliest through `next_timer()`; the stack's timer wheel
//! holds one entry per connection. This module holds the durations (Linux's
//! defaults) and the smoothed RTT arithmetic.
//!
//! Not for: deciding what happens when a timer fires (that is the tcpcb's
//! job) or reading a clock.

use core::time::Duration;

/// Lower bound of the retransmission timeout (Linux's `TCP_RTO_MIN`).
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// Upper bound of the retransmission timeout (Linux's `TCP_RTO_MAX`).
pub const RTO_MAX: Duration = Duration::from_secs(120);
/// RTO before any RTT sample (RFC 6298 §2.1: "set RTO <- 1 second").
pub const RTO_INITIAL: Duration = Duration::from_secs(1);
/// RTO once data flows after the SYN had to be retransmitted (RFC 6298
/// §5.7; Linux's `TCP_TIMEOUT_FALLBACK`).
pub const RTO_SYN_FALLBACK: Duration = Duration::from_secs(3);
/// Delayed-ACK timeout (Linux's `TCP_DELACK_MIN`).
pub const DELAYED_ACK: Duration = Duration::from_millis(40);
/// TIME-WAIT length, 2*MSL (Linux's `TCP_TIMEWAIT_LEN`).
pub const TIME_WAIT: Duration = Duration::from_secs(60);
/// How long an orphaned connection waits in FIN-WAIT-2 (Linux's
/// `tcp_fin_timeout`).
pub const FIN_WAIT_2: Duration = Duration::from_secs(60);
/// SYN retransmissions before giving up (Linux's `tcp_syn_retries`).
pub const SYN_RETRIES: u32 = 6;
/// Data retransmissions before giving up (Linux's `tcp_retries2`).
pub const DATA_RETRIES: u32 = 15;
/// Keepalive idle time before the first probe (`tcp_keepalive_time`).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(7200);
/// Keepalive probe interval (`tcp_keepalive_intvl`).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(75);
/// Unanswered keepalive probes before giving up (`tcp_keepalive_probes`).
pub const KEEPALIVE_COUNT: u32 = 9;
/// Clock granularity G of RFC 6298 (timestamps tick in milliseconds).
const GRANULARITY: Duration = Duration::from_millis(1);

/// The RFC 6298 estimator: SRTT, RTTVAR and the (unbacked-off) RTO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator::new()
    }
}

impl RttEstimator {
    /// No sample yet: RTO is one second.
    pub const fn new() -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: RTO_INITIAL,
        }
    }

    /// Takes one RTT measurement.
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                // RFC 6298 §2.2: "SRTT <- R, RTTVAR <- R/2".
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // RFC 6298 §2.3: "RTTVAR <- (1 - beta) * RTTVAR + beta *
                // |SRTT - R'|", "SRTT <- (1 - alpha) * SRTT + alpha * R'"
                // with alpha = 1/8, beta = 1/4.
                let delta = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        // "RTO <- SRTT + max (G, K*RTTVAR)", K = 4, then Linux's bounds.
        let srtt = self.srtt.unwrap_or_default();
        self.rto = (srtt + (self.rttvar * 4).max(GRANULARITY)).clamp(RTO_MIN, RTO_MAX);
    }

    /// RFC 6298 §5.7: "If the timer expires awaiting the ACK of a SYN
    /// segment and the TCP implementation is using an RTO less than 3
    /// seconds, the RTO MUST be re-initialized to 3 seconds when data
    /// transmission begins". Only without a sample (Karn's rule leaves none
    /// after a retransmitted SYN).
    pub fn syn_timed_out(&mut self) {
        if self.srtt.is_none() {
            self.rto = self.rto.max(RTO_SYN_FALLBACK);
        }
    }

    /// Smoothed RTT, if measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The retransmission timeout before backoff.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The RTO after `backoff` expirations (RFC 6298 §5.5: "back off the
    /// timer (RTO <- RTO * 2)"), capped at [`RTO_MAX`].
    pub fn backed_off(&self, backoff: u32) -> Duration {
        self.rto.saturating_mul(1u32 << backoff.min(16)).min(RTO_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_arithmetic_and_linux_bounds() {
        let mut e = RttEstimator::new();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        // 100 + 4 * 50 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100));
        // RTTVAR = 37.5, SRTT = 100: 250 ms.
        assert_eq!(e.rto(), Duration::from_millis(250));
        for _ in 0..50 {
            e.sample(Duration::from_millis(1));
        }
        assert_eq!(e.rto(), RTO_MIN);
        assert_eq!(e.backed_off(3), RTO_MIN * 8);
        assert_eq!(e.backed_off(30), RTO_MAX);
    }
}
