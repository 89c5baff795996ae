//! Per-frame impairment decisions in the spirit of `tc qdisc netem`: loss
//! (independent and in Gilbert bursts), duplication, corruption, delay,
//! jitter, reordering and a rate limit with a tail-drop queue.
//!
//! The decisions are made here once and used by two shells:
//!
//! - [`SimNetwork`](super::SimNetwork) under a virtual clock, through the
//!   stages ([`Shaper::admit`], [`Fate::draw`], [`impair_copy`]) because its
//!   links share one random stream among their directions and check
//!   partitions between the stages;
//! - the `joyride-impair` forwarder, which bridges two Linux interfaces at
//!   layer 2 with one [`Impairer`] per direction on the real clock.
//!
//! Every decision draws its random numbers whatever the probabilities, so a
//! stream does not depend on the configuration: a frame always takes three
//! numbers for its fate and four for each copy.
//!
//! Not for: I/O or reading a clock (time comes in as `now`), or anything
//! about protocols (frames are opaque bytes).

use core::cmp::Reverse;
use core::time::Duration;
use std::collections::{BinaryHeap, VecDeque};

use super::rng::SimRng;
use crate::time::Instant;

/// A link's impairments, in the spirit of `tc qdisc netem`. Probabilities are
/// per frame and per receiving port.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Propagation delay.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter]`; reorders frames when larger
    /// than the gap between them.
    pub jitter: Duration,
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a frame is held back by `reorder_delay` (reordering it
    /// after the frames that follow).
    pub reorder: f64,
    /// Extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// Probability one random bit of a frame is flipped.
    pub corrupt: f64,
    /// Bandwidth in bits per second per sending port; frames queue behind
    /// each other. `None`: unlimited.
    pub rate_bps: Option<u64>,
    /// Frames a sending port may have queued under `rate_bps`; more are
    /// dropped (tail drop).
    pub queue_limit: usize,
    /// Largest frame carried (Ethernet header included); larger ones are
    /// dropped. `None`: no limit.
    pub max_frame: Option<usize>,
    /// Bursts of loss on top of `loss`: a Gilbert channel per direction.
    pub burst_loss: Option<BurstLoss>,
}

/// A two-state (Gilbert) loss channel: in the bad state every frame is lost.
/// Bursts last `1 / leave` frames on average and start with probability
/// `enter` per frame; the long-run loss rate is `enter / (enter + leave)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstLoss {
    /// Probability, per frame, of going from good to bad.
    pub enter: f64,
    /// Probability, per frame, of going from bad to good.
    pub leave: f64,
}

impl Default for LinkConfig {
    /// A perfect link with 10 us of latency.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_micros(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            rate_bps: None,
            queue_limit: 1000,
            max_frame: None,
            burst_loss: None,
        }
    }
}

/// Why an impairment dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImpairDrop {
    /// Random loss, independent or in a burst.
    Loss,
    /// The sending port's queue was full.
    QueueFull,
    /// Larger than the link carries.
    Oversize,
}

/// A sending port's serialiser: frames leave one after the other at
/// `rate_bps`, at most `queue_limit` of them waiting.
#[derive(Debug, Clone, Default)]
pub struct Shaper {
    /// When the frame being serialised last is done.
    busy_until: Instant,
    /// Departure times of frames still being serialised.
    pending: VecDeque<Instant>,
}

impl Shaper {
    /// A serialiser with nothing queued.
    pub fn new() -> Shaper {
        Shaper::default()
    }

    /// Admits a frame of `len` bytes offered at `now`: when it has left
    /// the port (`now` without a rate), or why it is dropped (larger than
    /// `max_frame`, or the queue is full). Draws no random numbers.
    pub fn admit(&mut self, config: &LinkConfig, len: usize, now: Instant) -> Result<Instant, ImpairDrop> {
        if config.max_frame.is_some_and(|m| len > m) {
            return Err(ImpairDrop::Oversize);
        }
        let rate = match config.rate_bps {
            None | Some(0) => return Ok(now),
            Some(rate) => rate,
        };
        while self.pending.front().is_some_and(|&t| t <= now) {
            self.pending.pop_front();
        }
        if self.pending.len() >= config.queue_limit {
            return Err(ImpairDrop::QueueFull);
        }
        let bits = len as u128 * 8;
        let nanos = (bits * 1_000_000_000).div_ceil(u128::from(rate));
        let tx = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let done = self.busy_until.max(now).saturating_add(tx);
        self.busy_until = done;
        self.pending.push_back(done);
        Ok(done)
    }

    /// Frames admitted and still being serialised at `now`.
    pub fn queued(&self, now: Instant) -> usize {
        self.pending.iter().filter(|&&t| t > now).count()
    }
}

/// The fate of one frame in one direction: lost, or delivered once or
/// twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Lost, at random or in a burst.
    pub lost: bool,
    /// Delivered twice (unless lost).
    pub duplicate: bool,
}

impl Fate {
    /// Draws a frame's fate: loss, duplication and a step of the Gilbert
    /// channel whose state (`true`: bad) is `bursting`. Always three
    /// numbers.
    pub fn draw(config: &LinkConfig, rng: &mut SimRng, bursting: &mut bool) -> Fate {
        let lost = rng.chance(config.loss);
        let duplicate = rng.chance(config.duplicate);
        let flip = rng.next_f64();
        if let Some(b) = config.burst_loss {
            if *bursting && flip < b.leave {
                *bursting = false;
            } else if !*bursting && flip < b.enter {
                *bursting = true;
            }
        }
        Fate {
            lost: lost || (config.burst_loss.is_some() && *bursting),
            duplicate,
        }
    }

    /// Copies to deliver: 0, 1 or 2.
    pub fn copies(&self) -> usize {
        match (self.lost, self.duplicate) {
            (true, _) => 0,
            (false, false) => 1,
            (false, true) => 2,
        }
    }
}

/// What [`impair_copy`] did to one copy of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFate {
    /// When the copy arrives.
    pub at: Instant,
    /// One bit of it was flipped.
    pub corrupted: bool,
    /// It was held back by `reorder_delay`.
    pub reordered: bool,
}

/// Impairs one copy of a frame that left its port at `depart`: maybe flips
/// one bit of `frame` in place, and says when the copy arrives (latency,
/// jitter, reordering). Always four numbers.
pub fn impair_copy(config: &LinkConfig, rng: &mut SimRng, frame: &mut [u8], depart: Instant) -> CopyFate {
    let corrupt = rng.chance(config.corrupt);
    let bit = rng.below(frame.len() as u64 * 8);
    let reordered = rng.chance(config.reorder);
    let jitter_nanos = u64::try_from(config.jitter.as_nanos()).unwrap_or(u64::MAX);
    let jitter = rng.below(jitter_nanos.saturating_add(1));
    let corrupted = corrupt && !frame.is_empty();
    if corrupted {
        frame[(bit / 8) as usize] ^= 1 << (bit % 8);
    }
    let mut delay = config.latency + Duration::from_nanos(jitter);
    if reordered {
        delay += config.reorder_delay;
    }
    CopyFate {
        at: depart.saturating_add(delay),
        corrupted,
        reordered,
    }
}

/// One copy of a frame to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The bytes, corrupted or not.
    pub frame: Vec<u8>,
    /// When to deliver them.
    pub at: Instant,
    /// This is the extra copy of a duplicated frame.
    pub duplicate: bool,
    /// One bit was flipped.
    pub corrupted: bool,
    /// Held back to reorder it.
    pub reordered: bool,
}

/// What an [`Impairer`] made of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Dropped, and why.
    Dropped(ImpairDrop),
    /// The frame, and its duplicate if it was duplicated.
    Deliver(Delivery, Option<Delivery>),
}

impl IntoIterator for Verdict {
    type Item = Delivery;
    type IntoIter = core::iter::Flatten<core::array::IntoIter<Option<Delivery>, 2>>;

    /// The copies to deliver: none, one or two.
    fn into_iter(self) -> Self::IntoIter {
        match self {
            Verdict::Dropped(_) => [None, None],
            Verdict::Deliver(first, second) => [Some(first), second],
        }
        .into_iter()
        .flatten()
    }
}

/// Counters of an [`Impairer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Frames offered.
    pub frames: u64,
    /// Copies delivered (duplicates included).
    pub delivered: u64,
    /// Bytes in those copies.
    pub bytes_delivered: u64,
    /// Frames lost at random.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
    /// Copies held back to reorder them.
    pub reordered: u64,
    /// Frames dropped because the queue was full.
    pub queue_dropped: u64,
    /// Frames dropped for exceeding `max_frame`.
    pub oversize: u64,
}

/// One direction of an impaired link: frames in, each with its time; zero,
/// one or two copies out, each with the time it is due. Seeded, so the same
/// frames at the same times meet the same fates.
#[derive(Debug, Clone)]
pub struct Impairer {
    config: LinkConfig,
    rng: SimRng,
    shaper: Shaper,
    bursting: bool,
    stats: ImpairStats,
}

impl Impairer {
    /// An impairer applying `config`, its choices drawn from `rng`.
    pub fn new(config: LinkConfig, rng: SimRng) -> Impairer {
        Impairer {
            config,
            rng,
            shaper: Shaper::new(),
            bursting: false,
            stats: ImpairStats::default(),
        }
    }

    /// The impairments applied.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes the impairments from now on (frames already out keep theirs).
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// The counters so far.
    pub fn stats(&self) -> &ImpairStats {
        &self.stats
    }

    /// Frames waiting for serialisation under the rate limit at `now`.
    pub fn queued(&self, now: Instant) -> usize {
        self.shaper.queued(now)
    }

    /// Decides the fate of `frame`, offered at `now`.
    pub fn impair(&mut self, frame: Vec<u8>, now: Instant) -> Verdict {
        let cfg = self.config;
        let s = &mut self.stats;
        s.frames += 1;
        let depart = match self.shaper.admit(&cfg, frame.len(), now) {
            Ok(t) => t,
            Err(why) => {
                match why {
                    ImpairDrop::QueueFull => s.queue_dropped += 1,
                    ImpairDrop::Oversize => s.oversize += 1,
                    ImpairDrop::Loss => s.lost += 1,
                }
                return Verdict::Dropped(why);
            }
        };
        let fate = Fate::draw(&cfg, &mut self.rng, &mut self.bursting);
        if fate.lost {
            s.lost += 1;
            return Verdict::Dropped(ImpairDrop::Loss);
        }
        let second = fate.duplicate.then(|| frame.clone());
        let mut copy = |mut frame: Vec<u8>, duplicate: bool| {
            let f = impair_copy(&cfg, &mut self.rng, &mut frame, depart);
            s.delivered += 1;
            s.bytes_delivered += frame.len() as u64;
            s.duplicated += u64::from(duplicate);
            s.corrupted += u64::from(f.corrupted);
            s.reordered += u64::from(f.reordered);
            Delivery {
                frame,
                at: f.at,
                duplicate,
                corrupted: f.corrupted,
                reordered: f.reordered,
            }
        };
        let first = copy(frame, false);
        Verdict::Deliver(first, second.map(|f| copy(f, true)))
    }
}

/// Items waiting for their time: popped earliest first, items due at the
/// same time in the order they were pushed.
#[derive(Debug)]
pub struct DelayLine<T> {
    heap: BinaryHeap<Reverse<Timed<T>>>,
    next_seq: u64,
}

#[derive(Debug)]
struct Timed<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Timed<T> {}

impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Timed<T> {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Default for DelayLine<T> {
    fn default() -> Self {
        DelayLine {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> DelayLine<T> {
    /// An empty line.
    pub fn new() -> DelayLine<T> {
        DelayLine::default()
    }

    /// Adds `item`, due at `at`.
    pub fn push(&mut self, at: Instant, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Timed { at, seq, item }));
    }

    /// The earliest item and its time.
    pub fn peek(&self) -> Option<(Instant, &T)> {
        self.heap.peek().map(|Reverse(t)| (t.at, &t.item))
    }

    /// When the earliest item is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// Takes the earliest item and its time.
    pub fn pop(&mut self) -> Option<(Instant, T)> {
        self.heap.pop().map(|Reverse(t)| (t.at, t.item))
    }

    /// Takes the earliest item if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.next_due()? <= now {
            self.pop()
        } else {
            None
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(imp: &mut Impairer, n: u32, gap: Duration, len: usize) -> Vec<(u32, Delivery)> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut f = vec![0u8; len.max(4)];
            f[..4].copy_from_slice(&i.to_be_bytes());
            let now = Instant::ZERO + gap * i;
            out.extend(imp.impair(f, now).into_iter().map(|d| (i, d)));
        }
        out
    }

    #[test]
    fn clean_link_delays_every_frame_by_the_latency() {
        let cfg = LinkConfig {
            latency: Duration::from_millis(20),
            ..LinkConfig::default()
        };
        let mut imp = Impairer::new(cfg, SimRng::new(1));
        let out = frames(&mut imp, 100, Duration::from_micros(10), 1514);
        assert_eq!(out.len(), 100);
        for (i, d) in &out {
            assert_eq!(
                d.at,
                Instant::ZERO + Duration::from_micros(10) * *i + Duration::from_millis(20)
            );
            assert_eq!(&d.frame[..4], &i.to_be_bytes());
            assert!(!d.duplicate && !d.corrupted && !d.reordered);
        }
        let s = imp.stats();
        assert_eq!((s.frames, s.delivered, s.bytes_delivered), (100, 100, 151_400));
    }

    #[test]
    fn counts_match_the_probabilities_and_replay() {
        let cfg = LinkConfig {
            loss: 0.1,
            duplicate: 0.05,
            corrupt: 0.02,
            reorder: 0.25,
            reorder_delay: Duration::from_millis(1),
            ..LinkConfig::default()
        };
        let run = |seed| {
            let mut imp = Impairer::new(cfg, SimRng::new(seed));
            let out = frames(&mut imp, 20_000, Duration::from_micros(5), 100);
            (out, *imp.stats())
        };
        let (out, s) = run(3);
        assert_eq!(run(3).0, out, "same seed, same fates");
        assert_ne!(run(4).0, out);
        // Binomial sd: loss 42, duplicate 29, corrupt 20, reorder 57; 5 sd.
        assert!((1_790..=2_210).contains(&s.lost), "{s:?}");
        assert!((755..=1_045).contains(&s.duplicated), "{s:?}");
        assert!((260..=460).contains(&s.corrupted), "{s:?}");
        assert!((4_210..=4_790).contains(&s.reordered), "{s:?}");
        assert_eq!(s.frames, 20_000);
        assert_eq!(s.delivered, 20_000 - s.lost + s.duplicated);
        assert_eq!(out.len() as u64, s.delivered);
        assert_eq!(out.iter().filter(|(_, d)| d.corrupted).count() as u64, s.corrupted);
    }

    #[test]
    fn rate_limit_serialises_and_tail_drops() {
        // 12 Mbit/s: a 1500-byte frame takes 1 ms.
        let cfg = LinkConfig {
            latency: Duration::ZERO,
            rate_bps: Some(12_000_000),
            queue_limit: 10,
            ..LinkConfig::default()
        };
        let mut imp = Impairer::new(cfg, SimRng::new(1));
        // 30 frames offered at once: 10 queue, 20 are dropped.
        let out = frames(&mut imp, 30, Duration::ZERO, 1500);
        assert_eq!(out.len(), 10);
        for (k, (_, d)) in out.iter().enumerate() {
            assert_eq!(d.at, Instant::from_millis(k as u64 + 1));
        }
        assert_eq!(imp.stats().queue_dropped, 20);
        assert_eq!(imp.queued(Instant::from_micros(4_500)), 6);
        // Drained by 10 ms: the next frame goes out straight away.
        let next: Vec<Delivery> = imp
            .impair(vec![0; 1500], Instant::from_millis(10))
            .into_iter()
            .collect();
        assert_eq!(next[0].at, Instant::from_millis(11));
    }

    #[test]
    fn oversize_and_duplicates_and_reordering() {
        let cfg = LinkConfig {
            max_frame: Some(1514),
            duplicate: 1.0,
            reorder: 1.0,
            reorder_delay: Duration::from_millis(3),
            ..LinkConfig::default()
        };
        let mut imp = Impairer::new(cfg, SimRng::new(1));
        assert_eq!(
            imp.impair(vec![0; 1515], Instant::ZERO),
            Verdict::Dropped(ImpairDrop::Oversize)
        );
        let copies: Vec<Delivery> = imp.impair(vec![7; 1514], Instant::ZERO).into_iter().collect();
        assert_eq!(copies.len(), 2);
        assert!(!copies[0].duplicate && copies[1].duplicate);
        assert!(copies
            .iter()
            .all(|d| d.reordered && d.at == Instant::from_micros(3_010)));
        assert_eq!(imp.stats().oversize, 1);
    }

    #[test]
    fn delay_line_orders_by_time_then_arrival() {
        let mut line = DelayLine::new();
        line.push(Instant::from_millis(2), 'a');
        line.push(Instant::from_millis(1), 'b');
        line.push(Instant::from_millis(2), 'c');
        assert_eq!(line.len(), 3);
        assert_eq!(line.peek(), Some((Instant::from_millis(1), &'b')));
        assert_eq!(line.pop_due(Instant::ZERO), None);
        assert_eq!(
            line.pop_due(Instant::from_millis(1)),
            Some((Instant::from_millis(1), 'b'))
        );
        assert_eq!(line.pop(), Some((Instant::from_millis(2), 'a')));
        assert_eq!(line.pop(), Some((Instant::from_millis(2), 'c')));
        assert!(line.is_empty());
    }
}
