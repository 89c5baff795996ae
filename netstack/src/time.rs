//! Time for the core: a virtual [`Instant`], the [`Clock`] shells read it
//! from, and a hashed [`TimerWheel`].
//!
//! The protocol core never reads a clock. Every entry point takes
//! `now: Instant`; shells obtain `now` from a [`Clock`] — [`SystemClock`]
//! (`CLOCK_MONOTONIC`) in production,
//! [`VirtualClock`] under simulation — and pass it in. Durations are plain
//! [`core::time::Duration`].
//!
//! Not for: wall-clock (calendar) time, sleeping, or anything that blocks.
//! Shells decide how to wait until [`TimerWheel::next_deadline`].

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A point in time: nanoseconds since an arbitrary epoch (the clock's start).
///
/// Instants from different clocks are not comparable. Arithmetic comes in
/// checked (`checked_*`) and saturating forms; the `+`/`-` operators panic on
/// overflow, as `std::time::Instant`'s do — at nanosecond resolution a `u64`
/// lasts 584 years, so overflow means a bug (e.g. adding `Duration::MAX`);
/// use [`Instant::saturating_add`] for "a deadline that may be never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { nanos: 0 };
    /// The latest representable instant; a natural "never".
    pub const MAX: Instant = Instant { nanos: u64::MAX };

    /// The instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    /// The instant `micros` microseconds after the epoch (saturating).
    pub const fn from_micros(micros: u64) -> Instant {
        Instant {
            nanos: micros.saturating_mul(1_000),
        }
    }

    /// The instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Instant {
        Instant {
            nanos: millis.saturating_mul(1_000_000),
        }
    }

    /// The instant `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Instant {
        Instant {
            nanos: secs.saturating_mul(NANOS_PER_SEC),
        }
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// Whole microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.nanos / 1_000
    }

    /// Whole milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.nanos / 1_000_000
    }

    /// Time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.nanos.checked_add(d).map(Instant::from_nanos)
    }

    /// `self - d`, or `None` if that is before the epoch.
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.nanos.checked_sub(d).map(Instant::from_nanos)
    }

    /// `self + d`, clamped to [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant::MAX)
    }

    /// `self - d`, clamped to [`Instant::ZERO`].
    pub fn saturating_sub(self, d: Duration) -> Instant {
        self.checked_sub(d).unwrap_or(Instant::ZERO)
    }

    /// Time from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        self.nanos.checked_sub(earlier.nanos).map(Duration::from_nanos)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.checked_duration_since(earlier).unwrap_or(Duration::ZERO)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// # Panics
    /// On overflow; see [`Instant::checked_add`].
    fn add(self, d: Duration) -> Instant {
        self.checked_add(d).expect("overflow when adding duration to instant")
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    /// # Panics
    /// If the result is before the epoch; see [`Instant::checked_sub`].
    fn sub(self, d: Duration) -> Instant {
        self.checked_sub(d)
            .expect("overflow when subtracting duration from instant")
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    /// # Panics
    /// If `earlier` is later than `self`; see
    /// [`Instant::checked_duration_since`].
    fn sub(self, earlier: Instant) -> Duration {
        self.checked_duration_since(earlier)
            .expect("instant subtraction went negative")
    }
}

impl fmt::Display for Instant {
    /// Seconds with microsecond precision, e.g. `12.000345s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.nanos / NANOS_PER_SEC,
            (self.nanos % NANOS_PER_SEC) / 1_000
        )
    }
}

/// A source of [`Instant`]s. Shells read it; the core never does.
pub trait Clock {
    /// The current time. Never goes backwards.
    fn now(&self) -> Instant;
}

/// The monotonic system clock, `CLOCK_MONOTONIC`.
///
/// Its epoch is the clock's own (the machine's boot, on Linux), not the
/// moment it was created: TCP's initial sequence numbers and timestamps
/// (RFC 6528, RFC 7323) keep growing when a stack is restarted, as the
/// kernel peers' TIME_WAIT states expect of a new connection on an old
/// 4-tuple.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    _private: (),
}

impl SystemClock {
    /// The system clock.
    pub fn new() -> SystemClock {
        SystemClock { _private: () }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let nanos = (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64);
        Instant::from_nanos(nanos)
    }
}

/// A clock that only moves when told to: the simulator's time.
///
/// Clones share one time, so a simulator and the nodes it drives can hold
/// the same clock.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A clock that reads `start`.
    pub fn new(start: Instant) -> VirtualClock {
        VirtualClock {
            nanos: Arc::new(AtomicU64::new(start.as_nanos())),
        }
    }

    /// Moves the clock to `t`.
    ///
    /// # Panics
    /// If `t` is earlier than the current time: a monotonic clock never goes
    /// back, and a simulator that tries to has a bug.
    pub fn set(&self, t: Instant) {
        let prev = self.nanos.swap(t.as_nanos(), Ordering::SeqCst);
        assert!(
            prev <= t.as_nanos(),
            "virtual clock moved backwards from {} to {t}",
            Instant::from_nanos(prev)
        );
    }

    /// Moves the clock forward by `d` and returns the new time.
    ///
    /// # Panics
    /// On overflow of [`Instant`].
    pub fn advance(&self, d: Duration) -> Instant {
        let t = self.now() + d;
        self.set(t);
        t
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// Names one scheduled timer in a [`TimerWheel`]. Stale handles (of timers
/// that fired or were cancelled) are recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerHandle {
    index: u32,
    seq: u64,
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
enum SlotState {
    Free {
        next_free: u32,
    },
    /// Linked into wheel bucket `bucket`.
    Wheel {
        prev: u32,
        next: u32,
        bucket: u32,
    },
    /// Expired, waiting in the ready heap.
    Ready,
}

#[derive(Debug)]
struct Slot<T> {
    seq: u64,
    deadline: Instant,
    state: SlotState,
    value: Option<T>,
}

/// A hashed timer wheel: O(1) schedule and cancel, expiry in deadline order.
///
/// Time is cut into ticks of `tick` length counted from `start`; a timer
/// lives in bucket `tick_of(deadline) % slots` and several rounds of the
/// wheel share a bucket. Timers fire exactly: [`TimerWheel::pop_expired`]
/// returns a timer iff its deadline is `<= now`, in order of deadline, ties in
/// order of scheduling. The tick only sets how much work an advance costs
/// (one bucket per tick passed, at most one full turn).
///
/// [`TimerWheel::next_deadline`] scans forward from the current tick, so it
/// costs up to one turn of buckets; its answer is cached until the wheel
/// changes.
#[derive(Debug)]
pub struct TimerWheel<T> {
    tick_nanos: u64,
    start: Instant,
    buckets: Vec<u32>,
    mask: u64,
    slots: Vec<Slot<T>>,
    free: u32,
    /// Ticks `< processed` have been scanned completely.
    processed: u64,
    ready: BinaryHeap<core::cmp::Reverse<(Instant, u64, u32)>>,
    len: usize,
    next_seq: u64,
    cached_next: Option<Option<Instant>>,
}

impl<T> TimerWheel<T> {
    /// A wheel with `slots` buckets (rounded up to a power of two, at least
    /// one) of `tick` each (at least 1 ns), counting ticks from `start`.
    pub fn new(tick: Duration, slots: usize, start: Instant) -> TimerWheel<T> {
        let tick_nanos = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        let slots = slots.max(1).next_power_of_two();
        TimerWheel {
            tick_nanos,
            start,
            buckets: vec![NIL; slots],
            mask: slots as u64 - 1,
            slots: Vec::new(),
            free: NIL,
            processed: 0,
            ready: BinaryHeap::new(),
            len: 0,
            next_seq: 0,
            cached_next: Some(None),
        }
    }

    /// Number of scheduled timers (including expired ones not yet popped).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn tick_of(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64 / self.tick_nanos
    }

    fn slot(&self, h: TimerHandle) -> Option<&Slot<T>> {
        self.slots
            .get(h.index as usize)
            .filter(|s| s.seq == h.seq && !matches!(s.state, SlotState::Free { .. }))
    }

    /// Schedules `value` to fire at `deadline`. A deadline in the past fires
    /// at the next [`TimerWheel::pop_expired`].
    pub fn schedule(&mut self, deadline: Instant, value: T) -> TimerHandle {
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = if self.free != NIL {
            let i = self.free;
            if let SlotState::Free { next_free } = self.slots[i as usize].state {
                self.free = next_free;
            }
            let s = &mut self.slots[i as usize];
            s.seq = seq;
            s.deadline = deadline;
            s.value = Some(value);
            i
        } else {
            let i = u32::try_from(self.slots.len()).expect("too many timers");
            assert!(i != NIL, "too many timers");
            self.slots.push(Slot {
                seq,
                deadline,
                state: SlotState::Ready,
                value: Some(value),
            });
            i
        };
        self.len += 1;
        let tick = self.tick_of(deadline);
        if tick < self.processed {
            self.slots[index as usize].state = SlotState::Ready;
            self.ready.push(core::cmp::Reverse((deadline, seq, index)));
        } else {
            self.link(index, (tick & self.mask) as u32);
        }
        if let Some(Some(next)) = self.cached_next {
            if deadline < next {
                self.cached_next = Some(Some(deadline));
            }
        } else if self.cached_next == Some(None) {
            self.cached_next = Some(Some(deadline));
        }
        TimerHandle { index, seq }
    }

    fn link(&mut self, index: u32, bucket: u32) {
        let head = self.buckets[bucket as usize];
        if head != NIL {
            if let SlotState::Wheel { prev, .. } = &mut self.slots[head as usize].state {
                *prev = index;
            }
        }
        self.slots[index as usize].state = SlotState::Wheel {
            prev: NIL,
            next: head,
            bucket,
        };
        self.buckets[bucket as usize] = index;
    }

    fn unlink(&mut self, index: u32) {
        if let SlotState::Wheel { prev, next, bucket } = self.slots[index as usize].state {
            if prev == NIL {
                self.buckets[bucket as usize] = next;
            } else if let SlotState::Wheel { next: n, .. } = &mut self.slots[prev as usize].state {
                *n = next;
            }
            if next != NIL {
                if let SlotState::Wheel { prev: p, .. } = &mut self.slots[next as usize].state {
                    *p = prev;
                }
            }
        }
    }

    fn release(&mut self, index: u32) -> T {
        let s = &mut self.slots[index as usize];
        s.state = SlotState::Free { next_free: self.free };
        self.free = index;
        self.len -= 1;
        s.value.take().expect("live timer slot has a value")
    }

    /// Cancels a timer and returns its value, or `None` if the handle is
    /// stale (the timer already fired or was cancelled).
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        let deadline = self.slot(handle)?.deadline;
        // A ready timer stays in the heap; the popped entry is recognised as
        // stale by its sequence number.
        self.unlink(handle.index);
        if self.cached_next == Some(Some(deadline)) {
            self.cached_next = None;
        }
        Some(self.release(handle.index))
    }

    /// Moves a timer to a new deadline; returns its new handle, or `None` if
    /// the handle is stale.
    pub fn reschedule(&mut self, handle: TimerHandle, deadline: Instant) -> Option<TimerHandle> {
        let value = self.cancel(handle)?;
        Some(self.schedule(deadline, value))
    }

    /// The deadline of a scheduled timer.
    pub fn deadline(&self, handle: TimerHandle) -> Option<Instant> {
        self.slot(handle).map(|s| s.deadline)
    }

    /// The value of a scheduled timer.
    pub fn get(&self, handle: TimerHandle) -> Option<&T> {
        self.slot(handle).and_then(|s| s.value.as_ref())
    }

    /// Moves every timer with `deadline <= now` out of the wheel into the
    /// ready heap.
    fn advance(&mut self, now: Instant) {
        let now_tick = self.tick_of(now);
        if now_tick < self.processed {
            return;
        }
        let span = now_tick - self.processed + 1;
        let buckets = if span >= self.buckets.len() as u64 {
            self.buckets.len() as u64
        } else {
            span
        };
        for k in 0..buckets {
            let bucket = ((self.processed + k) & self.mask) as u32;
            let mut i = self.buckets[bucket as usize];
            while i != NIL {
                let next = match self.slots[i as usize].state {
                    SlotState::Wheel { next, .. } => next,
                    _ => NIL,
                };
                let s = &self.slots[i as usize];
                if s.deadline <= now {
                    let key = (s.deadline, s.seq, i);
                    self.unlink(i);
                    self.slots[i as usize].state = SlotState::Ready;
                    self.ready.push(core::cmp::Reverse(key));
                }
                i = next;
            }
        }
        // The tick `now` falls in may still hold later timers: scan it again
        // next time.
        self.processed = now_tick;
    }

    /// Removes and returns the earliest timer with `deadline <= now`, with
    /// its handle and deadline. Call repeatedly until `None`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(TimerHandle, Instant, T)> {
        self.advance(now);
        while let Some(&core::cmp::Reverse((deadline, seq, index))) = self.ready.peek() {
            let s = &self.slots[index as usize];
            if s.seq != seq || !matches!(s.state, SlotState::Ready) {
                self.ready.pop();
                continue;
            }
            if deadline > now {
                return None;
            }
            self.ready.pop();
            if self.cached_next == Some(Some(deadline)) {
                self.cached_next = None;
            }
            let value = self.release(index);
            return Some((TimerHandle { index, seq }, deadline, value));
        }
        None
    }

    /// The earliest deadline of any scheduled timer (possibly in the past),
    /// or `None` if there is none.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        if let Some(cached) = self.cached_next {
            return cached;
        }
        let next = self.compute_next();
        self.cached_next = Some(next);
        next
    }

    fn compute_next(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        for &core::cmp::Reverse((deadline, seq, index)) in self.ready.iter() {
            let s = &self.slots[index as usize];
            if s.seq == seq && matches!(s.state, SlotState::Ready) {
                best = Some(best.map_or(deadline, |b| b.min(deadline)));
            }
        }
        if best.is_some() {
            // Ready timers are all earlier than anything still in the wheel.
            return best;
        }
        // Walk one turn of the wheel from the current tick; the first bucket
        // holding a timer of its own round holds the earliest deadline.
        let turn = self.buckets.len() as u64;
        for k in 0..turn {
            let tick = self.processed + k;
            let mut i = self.buckets[(tick & self.mask) as usize];
            let mut found: Option<Instant> = None;
            while i != NIL {
                let s = &self.slots[i as usize];
                if self.tick_of(s.deadline) <= tick {
                    found = Some(found.map_or(s.deadline, |b| b.min(s.deadline)));
                }
                i = match s.state {
                    SlotState::Wheel { next, .. } => next,
                    _ => NIL,
                };
            }
            if found.is_some() {
                return found;
            }
        }
        // Everything is more than a turn away: take the minimum.
        for i in self.buckets.iter() {
            let mut i = *i;
            while i != NIL {
                let s = &self.slots[i as usize];
                best = Some(best.map_or(s.deadline, |b| b.min(s.deadline)));
                i = match s.state {
                    SlotState::Wheel { next, .. } => next,
                    _ => NIL,
                };
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn instant_arithmetic() {
        let t = Instant::from_secs(2);
        assert_eq!(t + Duration::from_millis(5), ms(2005));
        assert_eq!(t - Duration::from_secs(1), ms(1000));
        assert_eq!(ms(2005) - t, Duration::from_millis(5));
        assert_eq!(t.checked_add(Duration::MAX), None);
        assert_eq!(Instant::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(t.checked_sub(Duration::from_secs(3)), None);
        assert_eq!(t.saturating_add(Duration::MAX), Instant::MAX);
        assert_eq!(t.saturating_sub(Duration::from_secs(3)), Instant::ZERO);
        assert_eq!(t.checked_duration_since(ms(2001)), None);
        assert_eq!(t.saturating_duration_since(ms(2001)), Duration::ZERO);
        assert_eq!(Instant::from_micros(1_500_002).to_string(), "1.500002s");
        assert_eq!(ms(1234).as_micros(), 1_234_000);
    }

    #[test]
    fn virtual_clock_is_shared_and_monotonic() {
        let c = VirtualClock::new(ms(10));
        let c2 = c.clone();
        assert_eq!(c2.advance(Duration::from_millis(5)), ms(15));
        assert_eq!(c.now(), ms(15));
        let r = std::panic::catch_unwind(|| c.set(ms(1)));
        assert!(r.is_err());
    }

    #[test]
    fn system_clock_does_not_go_back() {
        let c = SystemClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
    }

    fn drain(w: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| w.pop_expired(now).map(|(_, _, v)| v)).collect()
    }

    #[test]
    fn wheel_fires_in_deadline_order_exactly() {
        let mut w = TimerWheel::new(Duration::from_millis(10), 8, Instant::ZERO);
        // Spread over several turns of the wheel (8 x 10 ms = 80 ms).
        let deadlines = [250u64, 5, 80, 81, 7, 5, 1000, 79, 160];
        for (i, d) in deadlines.iter().enumerate() {
            w.schedule(ms(*d), i as u32);
        }
        assert_eq!(w.len(), 9);
        assert_eq!(w.next_deadline(), Some(ms(5)));
        assert_eq!(drain(&mut w, ms(4)), Vec::<u32>::new());
        // Equal deadlines fire in scheduling order.
        assert_eq!(drain(&mut w, ms(5)), vec![1, 5]);
        assert_eq!(drain(&mut w, ms(6)), Vec::<u32>::new());
        assert_eq!(w.next_deadline(), Some(ms(7)));
        assert_eq!(drain(&mut w, ms(80)), vec![4, 7, 2]);
        assert_eq!(w.next_deadline(), Some(ms(81)));
        assert_eq!(drain(&mut w, ms(300)), vec![3, 8, 0]);
        assert_eq!(w.next_deadline(), Some(ms(1000)));
        assert_eq!(drain(&mut w, ms(999)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, ms(5000)), vec![6]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn wheel_cancel_and_stale_handles() {
        let mut w = TimerWheel::new(Duration::from_millis(1), 4, Instant::ZERO);
        let a = w.schedule(ms(3), 1);
        let b = w.schedule(ms(3), 2);
        let c = w.schedule(ms(2), 3);
        assert_eq!(w.cancel(b), Some(2));
        assert_eq!(w.cancel(b), None, "double cancel");
        assert_eq!(w.next_deadline(), Some(ms(2)));
        assert_eq!(w.cancel(c), Some(3));
        assert_eq!(w.next_deadline(), Some(ms(3)));
        // The freed slot is reused; the old handle must not reach the new timer.
        let d = w.schedule(ms(1), 4);
        assert_eq!(w.get(b), None);
        assert_eq!(w.get(d), Some(&4));
        assert_eq!(drain(&mut w, ms(10)), vec![4, 1]);
        assert_eq!(w.cancel(a), None, "cancel after firing");
        assert!(w.is_empty());
    }

    #[test]
    fn wheel_cancel_after_expiry_before_pop() {
        let mut w = TimerWheel::new(Duration::from_millis(1), 4, Instant::ZERO);
        let a = w.schedule(ms(1), 1);
        w.schedule(ms(2), 2);
        // Moves both into the ready heap, pops only the first.
        assert_eq!(w.pop_expired(ms(5)).map(|x| x.2), Some(1));
        assert_eq!(w.cancel(a), None);
        let h = w.schedule(ms(100), 3);
        let r = w.reschedule(h, ms(3)).unwrap();
        assert_eq!(w.deadline(r), Some(ms(3)));
        assert_eq!(w.deadline(h), None);
        assert_eq!(drain(&mut w, ms(5)), vec![2, 3]);
    }

    #[test]
    fn wheel_past_deadlines_and_long_idle() {
        let mut w = TimerWheel::new(Duration::from_millis(1), 16, Instant::from_secs(100));
        assert_eq!(drain(&mut w, Instant::from_secs(200)), Vec::<u32>::new());
        // Before the wheel's start and before the processed tick: fire at once.
        w.schedule(Instant::from_secs(1), 1);
        w.schedule(Instant::from_secs(150), 2);
        w.schedule(Instant::from_secs(10_000), 3);
        assert_eq!(w.next_deadline(), Some(Instant::from_secs(1)));
        assert_eq!(drain(&mut w, Instant::from_secs(200)), vec![1, 2]);
        assert_eq!(w.next_deadline(), Some(Instant::from_secs(10_000)));
        // A jump of millions of ticks costs one turn of the wheel.
        assert_eq!(drain(&mut w, Instant::from_secs(20_000)), vec![3]);
    }

    #[test]
    fn wheel_matches_a_sorted_model() {
        // Pseudo-random schedule/cancel/advance against a simple model.
        let mut w = TimerWheel::new(Duration::from_micros(700), 32, Instant::ZERO);
        let mut model: Vec<(Instant, u64, TimerHandle)> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = Instant::ZERO;
        let mut seq = 0u64;
        for _ in 0..5000 {
            match rnd() % 4 {
                0 | 1 => {
                    let d = now + Duration::from_micros(rnd() % 200_000);
                    let h = w.schedule(d, 0);
                    model.push((d, seq, h));
                    seq += 1;
                }
                2 if !model.is_empty() => {
                    let i = (rnd() as usize) % model.len();
                    let (_, _, h) = model.remove(i);
                    assert!(w.cancel(h).is_some());
                }
                _ => {
                    now += Duration::from_micros(rnd() % 30_000);
                    model.sort();
                    let expected: Vec<TimerHandle> = model.iter().filter(|m| m.0 <= now).map(|m| m.2).collect();
                    model.retain(|m| m.0 > now);
                    let got: Vec<TimerHandle> = std::iter::from_fn(|| w.pop_expired(now).map(|x| x.0)).collect();
                    assert_eq!(got, expected);
                }
            }
            assert_eq!(w.len(), model.len());
            assert_eq!(w.next_deadline(), model.iter().map(|m| m.0).min());
        }
    }
}
