//! Calls served on kernel sockets that wait for their socket: the set both
//! engines (`trace` and `exec`) keep.
//!
//! Each parked call watches its socket with a one-shot epoll registration
//! under its own token. A sweep finds calls whose thread vanished (`ID_VALID`
//! fails), whose thread has a signal to handle, whose `SO_RCVTIMEO`/
//! `SO_SNDTIMEO` expired, or which retry on a timer.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::epoll;

use crate::kernel::{self, Interest, Parked, Progress};

/// How often parked calls are checked for vanished threads and for signals
/// to deliver (the latency of interrupting a blocked call).
pub const SWEEP: Duration = Duration::from_millis(50);
/// Delay before retrying a call that has no readiness to wait for.
const RETRY: Duration = Duration::from_millis(10);

/// What a sweep decided for one parked call.
pub enum Swept {
    /// Its thread vanished; the notification was abandoned.
    Gone,
    /// Answered (interrupted or timed out).
    Settled(Progress),
    /// To be tried again now.
    Resume(Box<Parked>),
}

/// The parked calls, by epoll token.
pub struct Waits {
    parked: HashMap<u64, Box<Parked>>,
    next_token: u64,
    last_sweep: Instant,
}

impl Waits {
    /// An empty set handing out tokens from `first_token` upwards (the
    /// caller keeps its other tokens out of that range).
    pub fn new(first_token: u64) -> Waits {
        Waits {
            parked: HashMap::new(),
            next_token: first_token,
            last_sweep: Instant::now(),
        }
    }

    /// How long the event loop may sleep before [`Waits::sweep`] is due.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.parked.is_empty() {
            return None;
        }
        let mut t = SWEEP.saturating_sub(now.duration_since(self.last_sweep));
        for p in self.parked.values() {
            if p.interest == Interest::Retry {
                t = t.min(RETRY);
            }
            if let Some(d) = p.deadline {
                t = t.min(d.saturating_duration_since(now));
            }
        }
        Some(t)
    }

    /// Registers `p` to be resumed when its socket is ready.
    pub fn park(&mut self, epoll: &OwnedFd, p: Box<Parked>) {
        let token = self.next_token;
        self.next_token += 1;
        let flags = match p.interest {
            Interest::Read => Some(epoll::EventFlags::IN | epoll::EventFlags::RDHUP),
            Interest::Write => Some(epoll::EventFlags::OUT),
            Interest::Retry => None,
        };
        if let Some(flags) = flags {
            let flags = flags | epoll::EventFlags::ONESHOT;
            if let Err(e) = epoll::add(epoll, &p.sock, epoll::EventData::new_u64(token), flags) {
                tracing::warn!(error = %e, "cannot wait for a socket; retrying on a timer");
            }
        }
        self.parked.insert(token, p);
    }

    /// The call parked under `token`, whose socket became ready.
    pub fn take(&mut self, epoll: &OwnedFd, token: u64) -> Option<Box<Parked>> {
        let p = self.parked.remove(&token)?;
        let _ = epoll::delete(epoll, &p.sock);
        Some(p)
    }

    /// Finds calls whose thread vanished, retries timer-driven ones, times
    /// out those past their deadline, interrupts those with a signal to
    /// handle. Does nothing until [`SWEEP`] passed or a deadline is due.
    pub fn sweep(&mut self, epoll: &OwnedFd, now: Instant) -> Vec<Swept> {
        let due = |p: &Parked| p.interest == Interest::Retry || p.deadline.is_some_and(|d| d <= now);
        if now.duration_since(self.last_sweep) < SWEEP && !self.parked.values().any(|p| due(p)) {
            return Vec::new();
        }
        self.last_sweep = now;
        let tokens: Vec<u64> = self.parked.keys().copied().collect();
        let mut out = Vec::new();
        for token in tokens {
            let p = &self.parked[&token];
            let gone = !p.notif.is_valid();
            let late = p.deadline.is_some_and(|d| d <= now);
            let retry = p.interest == Interest::Retry;
            let signalled = !gone && !kernel::has_progress(p) && kernel::signal_pending(p.notif.pid);
            if !(gone || late || retry || signalled) {
                continue;
            }
            let p = self.take(epoll, token).expect("token listed above");
            out.push(if gone {
                p.notif.abandon();
                Swept::Gone
            } else if signalled {
                Swept::Settled(kernel::interrupted(*p))
            } else if late {
                Swept::Settled(kernel::timed_out(*p))
            } else {
                Swept::Resume(p)
            });
        }
        out
    }

    /// Abandons every parked call (no process uses the filter any more).
    pub fn abandon_all(&mut self) {
        for (_, p) in self.parked.drain() {
            p.notif.abandon();
        }
    }
}
