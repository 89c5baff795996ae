//! The neighbor cache: which link-layer address an on-link IP address has,
//! for ARP (IPv4) and NDP (IPv6) alike.
//!
//! It follows the Neighbor Unreachability Detection state machine of
//! RFC 4861 §7.3.2 (`INCOMPLETE`, `REACHABLE`, `STALE`, `DELAY`, `PROBE`), which
//! Linux also runs for ARP. The cache is generic over the protocol address
//! `A` (e.g. an IPv4 or IPv6 address), the link-layer address `L` (e.g. a MAC)
//! and the queued packet `P` (whatever buffer the caller uses).
//!
//! It is pure logic: it never sends anything and never reads a clock. The
//! caller
//!
//! - hands it outgoing packets with [`NeighborCache::send`], which either says
//!   where to send the packet now or queues it awaiting resolution;
//! - reports what it heard with [`NeighborCache::update`] (ARP replies and
//!   requests, Neighbor Advertisements and Solicitations) and upper-layer
//!   reachability hints with [`NeighborCache::confirm_reachable`];
//! - calls [`NeighborCache::poll`] until it returns `None` whenever
//!   [`NeighborCache::poll_at`] says so, and acts on each [`Event`]: send a
//!   request, transmit a packet that was waiting, report a packet whose
//!   destination could not be resolved.
//!
//! Everything is bounded: the number of entries (with eviction, least useful
//! first), packets queued per destination and packets queued in total. Every
//! drop is counted in [`NeighborStats`].
//!
//! Not for: parsing or building ARP/NDP packets (see `wire`), routing or
//! deciding what is on-link, duplicate address detection, proxy ARP.

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

use crate::time::Instant;

/// Tunables; the defaults are RFC 4861 §10's constants and Linux's
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Most entries held; the least useful is evicted to make room.
    pub capacity: usize,
    /// Packets queued per unresolved destination; the oldest is dropped
    /// when a new one arrives (RFC 4861 §7.2.2). The default, 101, is
    /// Linux's (`unres_qlen`): enough for every fragment of a 64 KiB
    /// datagram sent before its first hop is resolved.
    pub max_pending_per_neighbor: usize,
    /// Packets queued over all destinations; new packets are refused beyond.
    pub max_pending_total: usize,
    /// Time between requests (`RetransTimer`, 1 s).
    pub retrans_time: Duration,
    /// Broadcast/multicast requests before resolution fails
    /// (`MAX_MULTICAST_SOLICIT`, 3).
    pub max_multicast_solicit: u8,
    /// Unicast probes before an entry in `PROBE` is deleted
    /// (`MAX_UNICAST_SOLICIT`, 3).
    pub max_unicast_solicit: u8,
    /// How long a confirmation keeps an entry `REACHABLE` (`ReachableTime`,
    /// 30 s; the caller may randomise it per RFC 4861 §6.3.2 and call
    /// [`NeighborCache::set_reachable_time`]).
    pub reachable_time: Duration,
    /// Wait in `DELAY` before probing (`DELAY_FIRST_PROBE_TIME`, 5 s).
    pub delay_first_probe_time: Duration,
    /// An unused `STALE` entry is removed after this long (Linux
    /// `gc_stale_time`, 60 s).
    pub stale_time: Duration,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        NeighborConfig {
            capacity: 1024,
            max_pending_per_neighbor: 101,
            max_pending_total: 1024,
            retrans_time: Duration::from_secs(1),
            max_multicast_solicit: 3,
            max_unicast_solicit: 3,
            reachable_time: Duration::from_secs(30),
            delay_first_probe_time: Duration::from_secs(5),
            stale_time: Duration::from_secs(60),
        }
    }
}

/// State of an entry (RFC 4861 §7.3.2), plus static entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NeighborState {
    /// Resolution in progress; packets queue.
    Incomplete,
    /// Recently confirmed reachable.
    Reachable,
    /// Address known, reachability unconfirmed; used as is.
    Stale,
    /// Used while stale; waiting for an upper-layer confirmation before
    /// probing.
    Delay,
    /// Unicast probes outstanding.
    Probe,
    /// Configured; never times out or gets evicted.
    Static,
}

impl core::fmt::Display for NeighborState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NeighborState::Incomplete => "INCOMPLETE",
            NeighborState::Reachable => "REACHABLE",
            NeighborState::Stale => "STALE",
            NeighborState::Delay => "DELAY",
            NeighborState::Probe => "PROBE",
            NeighborState::Static => "STATIC",
        })
    }
}

/// What the caller heard from a neighbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// A reply to our request: an ARP reply addressed to us, a Neighbor
    /// Advertisement with the Solicited flag (and Override, or the same
    /// address). Confirms reachability (→ `REACHABLE`).
    Solicited,
    /// The address without proof of two-way reachability: an ARP request
    /// from the neighbor, a gratuitous ARP, a Neighbor Solicitation with a
    /// source link-layer option, an unsolicited Neighbor Advertisement with
    /// Override. A new or changed address becomes `STALE`
    /// (RFC 4861 §7.2.3, §7.2.5).
    Unsolicited,
}

/// Where an outgoing packet stands; see [`NeighborCache::send`].
#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome<L, P> {
    /// Transmit `packet` to link-layer address `link` now.
    Transmit {
        /// Destination link-layer address.
        link: L,
        /// The packet, handed back.
        packet: P,
    },
    /// Queued until resolution; [`NeighborCache::poll`] will say more.
    Queued,
    /// Not queued; the packet is handed back.
    Dropped {
        /// Why.
        reason: DropReason,
        /// The packet, handed back.
        packet: P,
    },
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The per-destination queue was full; the oldest packet made room.
    QueueFull,
    /// The limit on packets queued over all destinations was reached.
    PendingLimit,
    /// Resolution failed (no answer to the requests).
    Unresolved,
    /// Its entry was evicted or removed while the packet waited.
    Evicted,
    /// No entry could be created (capacity zero or all entries static).
    CacheFull,
}

/// Something the caller must do; returned by [`NeighborCache::poll`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event<A, L, P> {
    /// Send an address-resolution request for `target` now: an ARP request,
    /// or a Neighbor Solicitation. `unicast` is `None` for broadcast/multicast
    /// (resolution) and the cached address for a unicast probe (`PROBE`).
    SendRequest {
        /// The protocol address to resolve.
        target: A,
        /// Where to send it, if unicast.
        unicast: Option<L>,
    },
    /// A queued packet can go now, to `link`.
    Transmit {
        /// The resolved protocol address.
        target: A,
        /// Its link-layer address.
        link: L,
        /// The packet.
        packet: P,
    },
    /// Resolution of `target` failed and `packet` was dropped; the caller
    /// should send ICMP destination unreachable, code "address unreachable"
    /// (RFC 4861 §7.2.2, RFC 1122 §2.3.2.2).
    Unreachable {
        /// The protocol address that did not resolve.
        target: A,
        /// The packet that waited for it.
        packet: P,
    },
}

/// Counters; every drop has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighborStats {
    /// Broadcast/multicast requests asked for.
    pub requests: u64,
    /// Unicast probes asked for.
    pub probes: u64,
    /// Entries that went from `INCOMPLETE` to resolved.
    pub resolved: u64,
    /// Entries whose resolution failed.
    pub resolution_failed: u64,
    /// Entries deleted after unanswered unicast probes.
    pub probe_failed: u64,
    /// `STALE` entries removed unused after `stale_time`.
    pub stale_expired: u64,
    /// Entries evicted for room.
    pub evictions: u64,
    /// Packets dropped: [`DropReason::QueueFull`].
    pub dropped_queue_full: u64,
    /// Packets dropped: [`DropReason::PendingLimit`].
    pub dropped_pending_limit: u64,
    /// Packets dropped: [`DropReason::Unresolved`].
    pub dropped_unresolved: u64,
    /// Packets dropped: [`DropReason::Evicted`].
    pub dropped_evicted: u64,
    /// Packets dropped: [`DropReason::CacheFull`].
    pub dropped_cache_full: u64,
    /// Unsolicited information not stored because only useful entries were
    /// left to evict.
    pub ignored_full: u64,
    /// Solicited replies for which there was no entry (RFC 4861 §7.2.5:
    /// silently discarded).
    pub ignored_unsolicited_reply: u64,
}

#[derive(Debug)]
struct Entry<L, P> {
    state: NeighborState,
    link: Option<L>,
    /// When the state's timer fires, if it has one.
    deadline: Option<Instant>,
    /// Requests or probes sent in this state.
    sent: u8,
    last_used: Instant,
    pending: VecDeque<P>,
}

/// A bounded neighbor cache; see the module docs.
#[derive(Debug)]
pub struct NeighborCache<A, L, P> {
    config: NeighborConfig,
    entries: BTreeMap<A, Entry<L, P>>,
    outbox: VecDeque<Event<A, L, P>>,
    pending_total: usize,
    /// No entry's deadline is earlier than this.
    next_deadline: Option<Instant>,
    stats: NeighborStats,
}

impl<A: Ord + Copy, L: Copy + Eq, P> NeighborCache<A, L, P> {
    /// An empty cache.
    pub fn new(config: NeighborConfig) -> Self {
        NeighborCache {
            config,
            entries: BTreeMap::new(),
            outbox: VecDeque::new(),
            pending_total: 0,
            next_deadline: None,
            stats: NeighborStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NeighborConfig {
        &self.config
    }

    /// Changes `ReachableTime` for entries confirmed from now on.
    pub fn set_reachable_time(&mut self, t: Duration) {
        self.config.reachable_time = t;
    }

    /// Counters.
    pub fn stats(&self) -> &NeighborStats {
        &self.stats
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets queued over all destinations.
    pub fn pending_total(&self) -> usize {
        self.pending_total
    }

    /// The state and link-layer address of `addr`, without touching it.
    pub fn get(&self, addr: &A) -> Option<(NeighborState, Option<L>)> {
        self.entries.get(addr).map(|e| (e.state, e.link))
    }

    /// Iterates over entries in address order: address, state, link-layer
    /// address (for diagnostics, e.g. `ip neigh`).
    pub fn iter(&self) -> impl Iterator<Item = (&A, NeighborState, Option<L>)> + '_ {
        self.entries.iter().map(|(a, e)| (a, e.state, e.link))
    }

    /// Adds or replaces a static entry, which never expires or gets evicted.
    /// Packets waiting for `addr` become [`Event::Transmit`]s.
    pub fn insert_static(&mut self, now: Instant, addr: A, link: L) {
        if !self.entries.contains_key(&addr) && !self.make_room(true) {
            self.stats.ignored_full += 1;
            return;
        }
        let e = self.entries.entry(addr).or_insert_with(|| Entry {
            state: NeighborState::Static,
            link: None,
            deadline: None,
            sent: 0,
            last_used: now,
            pending: VecDeque::new(),
        });
        e.state = NeighborState::Static;
        e.link = Some(link);
        e.deadline = None;
        self.flush_pending(addr);
    }

    /// Removes `addr`'s entry; its queued packets are dropped (counted as
    /// [`DropReason::Evicted`]). Returns whether there was one.
    pub fn remove(&mut self, addr: &A) -> bool {
        match self.entries.remove(addr) {
            Some(e) => {
                self.drop_pending(e.pending.len());
                true
            }
            None => false,
        }
    }

    /// Removes every entry but the static ones (e.g. the link went down).
    pub fn flush(&mut self) {
        let mut dropped = 0;
        self.entries.retain(|_, e| {
            if e.state == NeighborState::Static {
                true
            } else {
                dropped += e.pending.len();
                false
            }
        });
        self.drop_pending(dropped);
    }

    fn drop_pending(&mut self, n: usize) {
        self.pending_total -= n;
        self.stats.dropped_evicted += n as u64;
    }

    /// An outgoing packet for on-link `addr`: where to send it, or whether it
    /// was queued or dropped. A new destination starts resolution: call
    /// [`NeighborCache::poll`] afterwards for the request to send.
    pub fn send(&mut self, now: Instant, addr: A, packet: P) -> SendOutcome<L, P> {
        self.run_timer(now, addr);
        if let Some(e) = self.entries.get_mut(&addr) {
            e.last_used = now;
            match (e.state, e.link) {
                (NeighborState::Incomplete, _) | (_, None) => {}
                (NeighborState::Stale, Some(link)) => {
                    // RFC 4861 §7.3.3: "The first time a node sends a packet
                    // to a neighbor whose entry is STALE, the sender changes
                    // the state to DELAY".
                    e.state = NeighborState::Delay;
                    e.sent = 0;
                    let d = now.saturating_add(self.config.delay_first_probe_time);
                    e.deadline = Some(d);
                    self.note_deadline(d);
                    return SendOutcome::Transmit { link, packet };
                }
                (_, Some(link)) => return SendOutcome::Transmit { link, packet },
            }
        } else {
            if !self.make_room(true) {
                self.stats.dropped_cache_full += 1;
                return SendOutcome::Dropped {
                    reason: DropReason::CacheFull,
                    packet,
                };
            }
            // Start resolution: the first request goes out now.
            self.entries.insert(
                addr,
                Entry {
                    state: NeighborState::Incomplete,
                    link: None,
                    deadline: None,
                    sent: 0,
                    last_used: now,
                    pending: VecDeque::new(),
                },
            );
            self.solicit(now, addr);
        }
        self.enqueue(addr, packet)
    }

    fn enqueue(&mut self, addr: A, packet: P) -> SendOutcome<L, P> {
        let Some(e) = self.entries.get_mut(&addr) else {
            unreachable!("enqueue on a missing entry");
        };
        if e.pending.len() >= self.config.max_pending_per_neighbor {
            // "the new arrival SHOULD replace the oldest entry" (§7.2.2).
            if e.pending.pop_front().is_some() {
                self.pending_total -= 1;
                self.stats.dropped_queue_full += 1;
            } else {
                self.stats.dropped_queue_full += 1;
                return SendOutcome::Dropped {
                    reason: DropReason::QueueFull,
                    packet,
                };
            }
        }
        if self.pending_total >= self.config.max_pending_total {
            self.stats.dropped_pending_limit += 1;
            return SendOutcome::Dropped {
                reason: DropReason::PendingLimit,
                packet,
            };
        }
        e.pending.push_back(packet);
        self.pending_total += 1;
        SendOutcome::Queued
    }

    /// Records what was heard from `addr`: its link-layer address `link`, and
    /// how (see [`Evidence`]). Queued packets for it become
    /// [`Event::Transmit`]s.
    pub fn update(&mut self, now: Instant, addr: A, link: L, evidence: Evidence) {
        self.run_timer(now, addr);
        let Some(e) = self.entries.get_mut(&addr) else {
            match evidence {
                Evidence::Solicited => self.stats.ignored_unsolicited_reply += 1,
                Evidence::Unsolicited => {
                    // Do not push out useful entries for hearsay.
                    if self.make_room(false) {
                        let d = now.saturating_add(self.config.stale_time);
                        self.entries.insert(
                            addr,
                            Entry {
                                state: NeighborState::Stale,
                                link: Some(link),
                                deadline: Some(d),
                                sent: 0,
                                last_used: now,
                                pending: VecDeque::new(),
                            },
                        );
                        self.note_deadline(d);
                    } else {
                        self.stats.ignored_full += 1;
                    }
                }
            }
            return;
        };
        if e.state == NeighborState::Static {
            return;
        }
        let was_incomplete = e.state == NeighborState::Incomplete;
        let changed = e.link != Some(link);
        match evidence {
            Evidence::Solicited => {
                e.state = NeighborState::Reachable;
                e.link = Some(link);
                e.sent = 0;
                let d = now.saturating_add(self.config.reachable_time);
                e.deadline = Some(d);
                self.note_deadline(d);
            }
            Evidence::Unsolicited if changed => {
                e.state = NeighborState::Stale;
                e.link = Some(link);
                e.sent = 0;
                let d = now.saturating_add(self.config.stale_time);
                e.deadline = Some(d);
                self.note_deadline(d);
            }
            Evidence::Unsolicited => {}
        }
        if was_incomplete {
            self.stats.resolved += 1;
            let stale = self.entries.get(&addr).map(|e| e.state) == Some(NeighborState::Stale);
            let any = self.flush_pending(addr);
            if stale && any {
                // Sending the queued packets counts as using a STALE entry.
                if let Some(e) = self.entries.get_mut(&addr) {
                    e.state = NeighborState::Delay;
                    let d = now.saturating_add(self.config.delay_first_probe_time);
                    e.deadline = Some(d);
                    self.note_deadline(d);
                }
            }
        }
    }

    /// An upper layer saw forward progress to `addr` (e.g. new data
    /// acknowledged over TCP): RFC 4861 §7.3.1 reachability confirmation.
    pub fn confirm_reachable(&mut self, now: Instant, addr: A) {
        if let Some(e) = self.entries.get_mut(&addr) {
            if e.link.is_some() && !matches!(e.state, NeighborState::Static | NeighborState::Incomplete) {
                e.state = NeighborState::Reachable;
                e.sent = 0;
                let d = now.saturating_add(self.config.reachable_time);
                e.deadline = Some(d);
                self.note_deadline(d);
            }
        }
    }

    /// When [`NeighborCache::poll`] should next be called: `Some(t)` means at
    /// or after `t` (a `t` in the past means now), `None` means only after
    /// another call into the cache.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.outbox.is_empty() {
            return Some(Instant::ZERO);
        }
        self.next_deadline
    }

    /// Runs the timers due at `now` and returns the next thing to do. Call
    /// until it returns `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Event<A, L, P>> {
        if self.next_deadline.is_some_and(|d| d <= now) {
            let due: Vec<A> = self
                .entries
                .iter()
                .filter(|(_, e)| e.deadline.is_some_and(|d| d <= now))
                .map(|(a, _)| *a)
                .collect();
            for addr in due {
                self.run_timer(now, addr);
            }
            self.next_deadline = self.entries.values().filter_map(|e| e.deadline).min();
        }
        self.outbox.pop_front()
    }

    fn note_deadline(&mut self, d: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(d, |n| n.min(d)));
    }

    /// Queues a broadcast/multicast request for `addr` and arms the
    /// retransmission timer.
    fn solicit(&mut self, now: Instant, addr: A) {
        let d = now.saturating_add(self.config.retrans_time);
        if let Some(e) = self.entries.get_mut(&addr) {
            e.sent += 1;
            e.deadline = Some(d);
        }
        self.stats.requests += 1;
        self.outbox.push_back(Event::SendRequest {
            target: addr,
            unicast: None,
        });
        self.note_deadline(d);
    }

    /// Moves queued packets of a resolved entry to the outbox; returns
    /// whether there were any.
    fn flush_pending(&mut self, addr: A) -> bool {
        let Some(e) = self.entries.get_mut(&addr) else {
            return false;
        };
        let Some(link) = e.link else {
            return false;
        };
        let n = e.pending.len();
        self.pending_total -= n;
        for packet in e.pending.drain(..) {
            self.outbox.push_back(Event::Transmit {
                target: addr,
                link,
                packet,
            });
        }
        n > 0
    }

    /// Runs `addr`'s state timer if it is due.
    fn run_timer(&mut self, now: Instant, addr: A) {
        let Some(e) = self.entries.get_mut(&addr) else {
            return;
        };
        match e.deadline {
            Some(d) if d <= now => {}
            _ => return,
        }
        match e.state {
            NeighborState::Incomplete => {
                if e.sent < self.config.max_multicast_solicit {
                    self.solicit(now, addr);
                } else {
                    self.stats.resolution_failed += 1;
                    if let Some(e) = self.entries.remove(&addr) {
                        self.pending_total -= e.pending.len();
                        self.stats.dropped_unresolved += e.pending.len() as u64;
                        for packet in e.pending {
                            self.outbox.push_back(Event::Unreachable { target: addr, packet });
                        }
                    }
                }
            }
            NeighborState::Reachable => {
                e.state = NeighborState::Stale;
                let d = now.saturating_add(self.config.stale_time);
                e.deadline = Some(d);
                self.note_deadline(d);
            }
            NeighborState::Stale => {
                self.stats.stale_expired += 1;
                self.remove(&addr);
            }
            NeighborState::Delay | NeighborState::Probe => {
                if e.state == NeighborState::Delay {
                    e.state = NeighborState::Probe;
                    e.sent = 0;
                }
                if e.sent < self.config.max_unicast_solicit {
                    e.sent += 1;
                    let d = now.saturating_add(self.config.retrans_time);
                    e.deadline = Some(d);
                    let unicast = e.link;
                    self.stats.probes += 1;
                    self.outbox.push_back(Event::SendRequest { target: addr, unicast });
                    self.note_deadline(d);
                } else {
                    // §7.3.3: "If no response is received after waiting
                    // RetransTimer milliseconds after sending the
                    // MAX_UNICAST_SOLICIT solicitations, retransmissions
                    // cease and the entry SHOULD be deleted."
                    self.stats.probe_failed += 1;
                    self.remove(&addr);
                }
            }
            NeighborState::Static => e.deadline = None,
        }
    }

    /// Makes room for one more entry, evicting if the cache is full. With
    /// `for_use` (a packet needs the entry) any non-static entry may go;
    /// otherwise only `STALE` ones. Returns whether there is room.
    fn make_room(&mut self, for_use: bool) -> bool {
        if self.entries.len() < self.config.capacity {
            return true;
        }
        // Least useful first: STALE, then INCOMPLETE, then the rest; within a
        // rank the least recently used, then the lowest address.
        let rank = |s: NeighborState| match s {
            NeighborState::Stale => 0,
            NeighborState::Incomplete => 1,
            NeighborState::Static => u8::MAX,
            _ => 2,
        };
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| e.state != NeighborState::Static && (for_use || e.state == NeighborState::Stale))
            .min_by_key(|(_, e)| (rank(e.state), e.last_used))
            .map(|(a, _)| *a);
        match victim {
            Some(a) => {
                self.stats.evictions += 1;
                self.remove(&a);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cache = NeighborCache<u32, u8, &'static str>;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn events(c: &mut Cache, now: Instant) -> Vec<Event<u32, u8, &'static str>> {
        std::iter::from_fn(|| c.poll(now)).collect()
    }

    fn req(target: u32) -> Event<u32, u8, &'static str> {
        Event::SendRequest { target, unicast: None }
    }

    #[test]
    fn resolution_queues_then_flushes_in_order() {
        let mut c = Cache::new(NeighborConfig::default());
        assert_eq!(c.send(t(0), 7, "a"), SendOutcome::Queued);
        assert_eq!(c.send(t(1), 7, "b"), SendOutcome::Queued);
        assert_eq!(c.get(&7), Some((NeighborState::Incomplete, None)));
        assert_eq!(c.poll_at(), Some(Instant::ZERO));
        // One request, not one per packet.
        assert_eq!(events(&mut c, t(1)), vec![req(7)]);
        assert_eq!(c.pending_total(), 2);
        c.update(t(2), 7, 0xaa, Evidence::Solicited);
        assert_eq!(
            events(&mut c, t(2)),
            vec![
                Event::Transmit {
                    target: 7,
                    link: 0xaa,
                    packet: "a"
                },
                Event::Transmit {
                    target: 7,
                    link: 0xaa,
                    packet: "b"
                },
            ]
        );
        assert_eq!(c.get(&7), Some((NeighborState::Reachable, Some(0xaa))));
        assert_eq!(
            c.send(t(3), 7, "c"),
            SendOutcome::Transmit {
                link: 0xaa,
                packet: "c"
            }
        );
        assert_eq!(c.pending_total(), 0);
        assert_eq!(c.stats().resolved, 1);
    }

    #[test]
    fn resolution_retransmits_then_fails() {
        let cfg = NeighborConfig::default();
        let mut c = Cache::new(cfg);
        assert_eq!(c.send(t(0), 9, "x"), SendOutcome::Queued);
        assert_eq!(events(&mut c, t(0)), vec![req(9)]);
        assert_eq!(c.poll_at(), Some(t(1000)));
        assert_eq!(events(&mut c, t(999)), vec![]);
        assert_eq!(events(&mut c, t(1000)), vec![req(9)]);
        assert_eq!(events(&mut c, t(2000)), vec![req(9)]);
        assert_eq!(c.stats().requests, 3);
        // Three requests sent (MAX_MULTICAST_SOLICIT); one more RetransTimer
        // and resolution fails.
        assert_eq!(
            events(&mut c, t(3000)),
            vec![Event::Unreachable { target: 9, packet: "x" }]
        );
        assert_eq!(c.get(&9), None);
        assert_eq!(c.stats().resolution_failed, 1);
        assert_eq!(c.stats().dropped_unresolved, 1);
        assert_eq!(c.pending_total(), 0);
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn reachable_stale_delay_probe_and_confirmation() {
        let cfg = NeighborConfig::default();
        let mut c = Cache::new(cfg);
        c.send(t(0), 1, "a");
        events(&mut c, t(0));
        c.update(t(10), 1, 5, Evidence::Solicited);
        events(&mut c, t(10));
        // ReachableTime passes: STALE, still usable.
        events(&mut c, t(10 + 30_000));
        assert_eq!(c.get(&1), Some((NeighborState::Stale, Some(5))));
        // Use moves it to DELAY and the packet goes out at once.
        assert_eq!(
            c.send(t(31_000), 1, "b"),
            SendOutcome::Transmit { link: 5, packet: "b" }
        );
        assert_eq!(c.get(&1).unwrap().0, NeighborState::Delay);
        // An upper-layer confirmation puts it back to REACHABLE.
        c.confirm_reachable(t(32_000), 1);
        assert_eq!(c.get(&1).unwrap().0, NeighborState::Reachable);
        events(&mut c, t(62_000));
        assert_eq!(c.get(&1).unwrap().0, NeighborState::Stale);
        c.send(t(63_000), 1, "c");
        // No confirmation within DELAY_FIRST_PROBE_TIME: unicast probes.
        let probe = Event::SendRequest {
            target: 1,
            unicast: Some(5),
        };
        assert_eq!(events(&mut c, t(68_000)), vec![probe]);
        assert_eq!(c.get(&1).unwrap().0, NeighborState::Probe);
        assert_eq!(
            c.send(t(68_500), 1, "d"),
            SendOutcome::Transmit { link: 5, packet: "d" }
        );
        let probe = || Event::SendRequest {
            target: 1,
            unicast: Some(5),
        };
        assert_eq!(events(&mut c, t(69_000)), vec![probe()]);
        assert_eq!(events(&mut c, t(70_000)), vec![probe()]);
        assert_eq!(c.stats().probes, 3);
        events(&mut c, t(71_000));
        assert_eq!(c.get(&1), None, "deleted after MAX_UNICAST_SOLICIT probes");
        assert_eq!(c.stats().probe_failed, 1);
    }

    #[test]
    fn probe_answered_goes_reachable() {
        let mut c = Cache::new(NeighborConfig::default());
        c.update(t(0), 1, 5, Evidence::Unsolicited);
        assert_eq!(c.get(&1), Some((NeighborState::Stale, Some(5))));
        c.send(t(1), 1, "a");
        events(&mut c, t(5_001));
        assert_eq!(c.get(&1).unwrap().0, NeighborState::Probe);
        c.update(t(5_100), 1, 5, Evidence::Solicited);
        assert_eq!(c.get(&1).unwrap().0, NeighborState::Reachable);
        assert_eq!(events(&mut c, t(6_100)), vec![]);
    }

    #[test]
    fn unsolicited_updates() {
        let mut c = Cache::new(NeighborConfig::default());
        // A solicited reply with no entry is dropped (RFC 4861 §7.2.5).
        c.update(t(0), 1, 5, Evidence::Solicited);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.stats().ignored_unsolicited_reply, 1);
        c.update(t(0), 1, 5, Evidence::Unsolicited);
        c.confirm_reachable(t(0), 1);
        assert_eq!(c.get(&1), Some((NeighborState::Reachable, Some(5))));
        // Same address, unsolicited: no change.
        c.update(t(1), 1, 5, Evidence::Unsolicited);
        assert_eq!(c.get(&1), Some((NeighborState::Reachable, Some(5))));
        // New address: take it, but unconfirmed.
        c.update(t(2), 1, 6, Evidence::Unsolicited);
        assert_eq!(c.get(&1), Some((NeighborState::Stale, Some(6))));
        // An unused STALE entry goes away after stale_time.
        events(&mut c, t(2 + 60_000));
        assert_eq!(c.get(&1), None);
        assert_eq!(c.stats().stale_expired, 1);
    }

    #[test]
    fn unsolicited_resolution_of_incomplete_sends_and_delays() {
        let mut c = Cache::new(NeighborConfig::default());
        c.send(t(0), 3, "a");
        events(&mut c, t(0));
        c.update(t(1), 3, 9, Evidence::Unsolicited);
        assert_eq!(
            events(&mut c, t(1)),
            vec![Event::Transmit {
                target: 3,
                link: 9,
                packet: "a"
            }]
        );
        assert_eq!(c.get(&3), Some((NeighborState::Delay, Some(9))));
    }

    #[test]
    fn pending_queue_bounds() {
        let cfg = NeighborConfig {
            max_pending_per_neighbor: 2,
            max_pending_total: 3,
            ..NeighborConfig::default()
        };
        let mut c = Cache::new(cfg);
        assert_eq!(c.send(t(0), 1, "a"), SendOutcome::Queued);
        assert_eq!(c.send(t(0), 1, "b"), SendOutcome::Queued);
        // Per-destination overflow: the oldest gives way.
        assert_eq!(c.send(t(0), 1, "c"), SendOutcome::Queued);
        assert_eq!(c.stats().dropped_queue_full, 1);
        assert_eq!(c.send(t(0), 2, "d"), SendOutcome::Queued);
        // Global limit: the new packet is refused.
        assert_eq!(
            c.send(t(0), 2, "e"),
            SendOutcome::Dropped {
                reason: DropReason::PendingLimit,
                packet: "e"
            }
        );
        assert_eq!(c.pending_total(), 3);
        c.update(t(1), 1, 7, Evidence::Solicited);
        let sent: Vec<_> = events(&mut c, t(1))
            .into_iter()
            .filter_map(|e| match e {
                Event::Transmit { packet, .. } => Some(packet),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec!["b", "c"]);
        assert_eq!(c.pending_total(), 1);
    }

    #[test]
    fn capacity_evicts_least_useful() {
        let cfg = NeighborConfig {
            capacity: 3,
            ..NeighborConfig::default()
        };
        let mut c = Cache::new(cfg);
        c.insert_static(t(0), 100, 1);
        c.send(t(0), 1, "a");
        c.update(t(0), 1, 11, Evidence::Solicited);
        c.update(t(1), 2, 12, Evidence::Unsolicited);
        assert_eq!(c.len(), 3);
        // Hearsay may only push out STALE entries.
        c.update(t(2), 3, 13, Evidence::Unsolicited);
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&3).unwrap().0, NeighborState::Stale);
        c.confirm_reachable(t(2), 3);
        c.update(t(3), 4, 14, Evidence::Unsolicited);
        assert_eq!(c.get(&4), None);
        assert_eq!(c.stats().ignored_full, 1);
        // A packet may push out the least recently used non-static entry.
        assert_eq!(c.send(t(4), 5, "p"), SendOutcome::Queued);
        assert_eq!(c.get(&1), None);
        assert!(c.get(&3).is_some());
        assert!(c.get(&100).is_some(), "static entries stay");
        assert_eq!(c.len(), 3);
        assert_eq!(c.stats().evictions, 2);
        // Evicting an INCOMPLETE entry drops its packets, counted.
        c.remove(&3);
        c.send(t(5), 6, "q");
        c.send(t(6), 7, "r");
        assert_eq!(c.get(&5), None);
        assert_eq!(c.stats().dropped_evicted, 1);
        assert_eq!(c.pending_total(), 2);
    }

    #[test]
    fn all_static_cache_refuses() {
        let cfg = NeighborConfig {
            capacity: 1,
            ..NeighborConfig::default()
        };
        let mut c = Cache::new(cfg);
        c.insert_static(t(0), 1, 1);
        assert_eq!(
            c.send(t(0), 2, "a"),
            SendOutcome::Dropped {
                reason: DropReason::CacheFull,
                packet: "a"
            }
        );
        assert_eq!(c.send(t(0), 1, "b"), SendOutcome::Transmit { link: 1, packet: "b" });
        // Static entries never time out.
        assert_eq!(events(&mut c, t(1_000_000)), vec![]);
        c.flush();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn flood_of_destinations_stays_bounded() {
        let cfg = NeighborConfig {
            capacity: 64,
            max_pending_total: 100,
            ..NeighborConfig::default()
        };
        let mut c = Cache::new(cfg);
        for i in 0..10_000u32 {
            let now = t(u64::from(i));
            let _ = c.send(now, i, "x");
            while c.poll(now).is_some() {}
            assert!(c.len() <= 64);
            assert!(c.pending_total() <= 100);
        }
        // Everything resolves or fails eventually; nothing is left queued.
        while let Some(at) = c.poll_at() {
            let now = at.max(t(10_000));
            while c.poll(now).is_some() {}
        }
        assert_eq!(c.pending_total(), 0);
        assert_eq!(c.len(), 0);
    }
}
