//! The simulator's seeded random numbers.
//!
//! Every random choice in a simulation comes from a [`SimRng`] derived from
//! the run's seed, one independent stream per consumer (each link, each
//! node), so a run replays exactly from its seed and one link's traffic does
//! not shift another link's choices.
//!
//! Not for: anything needing unpredictability (ISNs, SYN cookies and port
//! choices in production take a cryptographically seeded RNG from the shell).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded, reproducible random number generator (ChaCha8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng::derive(seed, 0)
    }

    /// Independent stream number `stream` of `seed`.
    pub fn derive(seed: u64, stream: u64) -> SimRng {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        SimRng { inner }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniformly random number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        // 53 random bits: every value is exactly representable.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`). Always draws one
    /// number, so the stream does not depend on `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A uniformly random number in `[0, n)`; `0` when `n` is `0`. Always
    /// draws one number.
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias is below 2^-64 * n.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
        self.inner.try_fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_replay_and_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = SimRng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = SimRng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let mut c = SimRng::derive(42, 1);
        assert_ne!(a[0], c.next_u64());
        let mut d = SimRng::new(43);
        assert_ne!(a[0], d.next_u64());
    }

    #[test]
    fn ranges() {
        let mut r = SimRng::new(1);
        let mut hits = 0;
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert!(r.below(7) < 7);
            hits += usize::from(r.chance(0.25));
        }
        assert!((2_200..2_800).contains(&hits), "{hits}");
        assert_eq!(r.below(0), 0);
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
    }
}
