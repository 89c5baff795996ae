//! Bounded reassembly of fragmented IP datagrams, for IPv4 and IPv6.
//!
//! The caller parses the fragment header and hands over, per fragment, a key
//! naming the datagram (see [`Ipv4FragKey`], [`Ipv6FragKey`], or any type
//! implementing [`ReassemblyKey`]), the fragment offset in bytes, the
//! more-fragments flag and the fragment's payload.
//! [`Reassembler::push`] returns the whole payload once every byte has
//! arrived.
//!
//! Policy, the same for both protocols:
//!
//! - **Overlap.** A fragment that is an exact duplicate of one already held
//!   (same offset, same bytes) is dropped and the datagram kept (RFC 5722 §4
//!   allows this). Any other overlap discards the whole datagram, as RFC 5722
//!   requires for IPv6 and as Linux has done for IPv4 since 4.19: accepting
//!   either version of the overlapping bytes lets an attacker choose what
//!   the transport layer sees. With [`ReassemblyConfig::poison_on_overlap`]
//!   (the IPv6 default) the key is remembered until the datagram's timeout
//!   and its later fragments are dropped too ("including those not yet
//!   received", RFC 5722 §4); for IPv4 it is off, since 16-bit IDs come round
//!   again quickly (RFC 4963).
//! - **Length.** A datagram longer than [`ReassemblyConfig::max_len`] (65535
//!   by default) is refused, as is a fragment beyond the end set by the last
//!   fragment, or a second, different end. A fragment with more to come must
//!   be a multiple of 8 bytes long (RFC 8200 §4.5, RFC 791).
//! - **Time.** A datagram not complete `timeout` after its first fragment
//!   arrived (30 s for IPv4, RFC 1122 §3.3.2's recommended upper bound is 60-120
//!   s and Linux uses 30 s; 60 s for IPv6, RFC 8200 §4.5) is dropped. Those
//!   whose first fragment had arrived are reported by
//!   [`Reassembler::pop_expired`] so the caller can send ICMP Time Exceeded.
//! - **Memory.** Limits on datagrams and bytes held, globally and per source;
//!   a fragment that would exceed one is dropped, and the datagram it belongs
//!   to is discarded with it (it could not complete anyway). Each held
//!   fragment is charged its length plus [`FRAGMENT_OVERHEAD`] bytes, so a
//!   flood of tiny fragments is bounded as well as one of large ones; the
//!   number of fragments per datagram is bounded too.
//! - **Atomic fragments** (offset 0, no more fragments; RFC 6946) are
//!   returned at once and never touch a datagram in progress.
//!
//! Every dropped fragment returns a [`DropReason`] and is counted in
//! [`ReassemblyStats`]. Pure logic: no I/O, time comes in as `now`.
//!
//! Not for: parsing fragment headers, fragmenting outgoing datagrams, or
//! sending the ICMP errors.

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

use crate::time::Instant;

/// Bytes charged per held fragment on top of its payload, for its
/// bookkeeping.
pub const FRAGMENT_OVERHEAD: usize = 64;

/// Names a datagram being reassembled and the source it is charged to.
pub trait ReassemblyKey: Ord + Clone {
    /// Who per-source limits apply to (e.g. the source address).
    type Source: Ord + Clone;

    /// The source this datagram is charged to.
    fn source(&self) -> Self::Source;
}

/// An IPv4 datagram: source, destination, identification, protocol
/// (RFC 791).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4FragKey {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Identification field.
    pub id: u16,
    /// Protocol field.
    pub proto: u8,
}

impl ReassemblyKey for Ipv4FragKey {
    type Source = [u8; 4];

    fn source(&self) -> [u8; 4] {
        self.src
    }
}

/// An IPv6 datagram: source, destination, fragment identification
/// (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6FragKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Identification from the Fragment header.
    pub id: u32,
}

impl ReassemblyKey for Ipv6FragKey {
    type Source = [u8; 16];

    fn source(&self) -> [u8; 16] {
        self.src
    }
}

/// Limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How long after its first fragment a datagram may take to complete.
    pub timeout: Duration,
    /// Longest reassembled payload.
    pub max_len: usize,
    /// Most datagrams in progress (including remembered poisoned ones).
    pub max_datagrams: usize,
    /// Most bytes held over all datagrams (see [`FRAGMENT_OVERHEAD`]).
    pub max_bytes: usize,
    /// Most datagrams in progress per source.
    pub max_datagrams_per_source: usize,
    /// Most bytes held per source.
    pub max_bytes_per_source: usize,
    /// Most fragments held per datagram.
    pub max_fragments: usize,
    /// After an overlap, drop the datagram's later fragments until its
    /// timeout.
    pub poison_on_overlap: bool,
    /// Most expired datagrams remembered for [`Reassembler::pop_expired`];
    /// older reports are dropped.
    pub max_expired_reports: usize,
}

impl ReassemblyConfig {
    /// IPv4: 30 s timeout, no poisoning.
    pub fn ipv4() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            max_len: 65535,
            max_datagrams: 1024,
            max_bytes: 4 << 20,
            max_datagrams_per_source: 64,
            max_bytes_per_source: 1 << 20,
            max_fragments: 64,
            poison_on_overlap: false,
            max_expired_reports: 64,
        }
    }

    /// IPv6: 60 s timeout, overlap poisons the datagram (RFC 5722).
    pub fn ipv6() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(60),
            poison_on_overlap: true,
            ..ReassemblyConfig::ipv4()
        }
    }
}

/// Why a fragment was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Bad shape: offset not a multiple of 8, or a non-last fragment empty
    /// or not a multiple of 8 long.
    Malformed,
    /// The datagram would be longer than `max_len`.
    TooLong,
    /// Beyond the end the last fragment set, or a different end; the datagram
    /// was discarded.
    Inconsistent,
    /// Overlaps a fragment held, not as an exact duplicate; the datagram was
    /// discarded.
    Overlap,
    /// Belongs to a datagram discarded for overlapping.
    Poisoned,
    /// The datagram would have more than `max_fragments` fragments; it was
    /// discarded.
    TooManyFragments,
    /// Too many datagrams in progress.
    DatagramLimit,
    /// Too many bytes held; the datagram was discarded.
    MemoryLimit,
    /// Too many datagrams in progress from this source.
    SourceDatagramLimit,
    /// Too many bytes held from this source; the datagram was discarded.
    SourceMemoryLimit,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Fragments accepted (stored).
    pub fragments: u64,
    /// Datagrams completed (atomic fragments included).
    pub completed: u64,
    /// Exact duplicate fragments ignored.
    pub duplicates: u64,
    /// Datagrams that timed out.
    pub timeouts: u64,
    /// Fragments dropped: [`DropReason::Malformed`].
    pub malformed: u64,
    /// Fragments dropped: [`DropReason::TooLong`].
    pub too_long: u64,
    /// Fragments dropped: [`DropReason::Inconsistent`].
    pub inconsistent: u64,
    /// Fragments dropped: [`DropReason::Overlap`].
    pub overlap: u64,
    /// Fragments dropped: [`DropReason::Poisoned`].
    pub poisoned: u64,
    /// Fragments dropped: [`DropReason::TooManyFragments`].
    pub too_many_fragments: u64,
    /// Fragments dropped: [`DropReason::DatagramLimit`].
    pub datagram_limit: u64,
    /// Fragments dropped: [`DropReason::MemoryLimit`].
    pub memory_limit: u64,
    /// Fragments dropped: [`DropReason::SourceDatagramLimit`].
    pub source_datagram_limit: u64,
    /// Fragments dropped: [`DropReason::SourceMemoryLimit`].
    pub source_memory_limit: u64,
    /// Datagrams discarded before completing (not counting timeouts).
    pub discarded: u64,
}

impl ReassemblyStats {
    fn count(&mut self, r: DropReason) {
        let c = match r {
            DropReason::Malformed => &mut self.malformed,
            DropReason::TooLong => &mut self.too_long,
            DropReason::Inconsistent => &mut self.inconsistent,
            DropReason::Overlap => &mut self.overlap,
            DropReason::Poisoned => &mut self.poisoned,
            DropReason::TooManyFragments => &mut self.too_many_fragments,
            DropReason::DatagramLimit => &mut self.datagram_limit,
            DropReason::MemoryLimit => &mut self.memory_limit,
            DropReason::SourceDatagramLimit => &mut self.source_datagram_limit,
            DropReason::SourceMemoryLimit => &mut self.source_memory_limit,
        };
        *c += 1;
    }
}

/// A datagram that timed out after its first fragment (offset 0) arrived;
/// the caller may send ICMP Time Exceeded, "fragment reassembly time
/// exceeded" (RFC 792, RFC 4443 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<K> {
    /// The datagram.
    pub key: K,
    /// When it timed out.
    pub deadline: Instant,
}

#[derive(Debug)]
struct Fragment {
    offset: usize,
    data: Vec<u8>,
}

impl Fragment {
    fn end(&self) -> usize {
        self.offset + self.data.len()
    }
}

#[derive(Debug)]
struct Datagram {
    /// Sorted by offset, never overlapping.
    fragments: Vec<Fragment>,
    /// Set by the last fragment (more-fragments clear).
    total: Option<usize>,
    /// Payload bytes held; complete when equal to `total`.
    received: usize,
    /// Bytes charged.
    charged: usize,
    deadline: Instant,
    seq: u64,
    /// Discarded for overlap; remembered only to drop later fragments.
    poisoned: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    datagrams: usize,
    bytes: usize,
}

/// Reassembles fragmented datagrams keyed by `K`; see the module docs.
#[derive(Debug)]
pub struct Reassembler<K: ReassemblyKey> {
    config: ReassemblyConfig,
    datagrams: BTreeMap<K, Datagram>,
    /// Deadline order, for expiry.
    deadlines: BTreeMap<(Instant, u64), K>,
    sources: BTreeMap<K::Source, Usage>,
    bytes: usize,
    next_seq: u64,
    expired: VecDeque<Expired<K>>,
    stats: ReassemblyStats,
}

impl<K: ReassemblyKey> Reassembler<K> {
    /// An empty reassembler.
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler {
            config,
            datagrams: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            sources: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
            expired: VecDeque::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Datagrams in progress (including poisoned ones remembered).
    pub fn datagrams_in_flight(&self) -> usize {
        self.datagrams.len()
    }

    /// Bytes held, as charged against the limits.
    pub fn bytes_in_use(&self) -> usize {
        self.bytes
    }

    /// Datagrams and bytes held for `source`.
    pub fn source_usage(&self, source: &K::Source) -> (usize, usize) {
        self.sources.get(source).map_or((0, 0), |u| (u.datagrams, u.bytes))
    }

    /// When the next datagram times out.
    pub fn poll_at(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(d, _)| *d)
    }

    /// Drops datagrams whose timeout passed by `now`. [`Reassembler::push`]
    /// does this too; call it when [`Reassembler::poll_at`] is due so memory
    /// is released without traffic.
    pub fn poll(&mut self, now: Instant) {
        while let Some((&(deadline, seq), _)) = self.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            let Some(key) = self.deadlines.remove(&(deadline, seq)) else {
                break;
            };
            let Some(d) = self.remove(&key) else {
                continue;
            };
            if d.poisoned {
                continue;
            }
            self.stats.timeouts += 1;
            if d.fragments.first().is_some_and(|f| f.offset == 0) {
                if self.expired.len() >= self.config.max_expired_reports {
                    self.expired.pop_front();
                }
                self.expired.push_back(Expired { key, deadline });
            }
        }
    }

    /// The next timed-out datagram whose first fragment had arrived.
    pub fn pop_expired(&mut self) -> Option<Expired<K>> {
        self.expired.pop_front()
    }

    /// Takes one fragment: `offset` in bytes from the start of the
    /// fragmentable payload, `more` the more-fragments flag. Returns the
    /// whole payload when this fragment completes it, `Ok(None)` when it is
    /// held (or was an exact duplicate), or why it was dropped.
    pub fn push(
        &mut self,
        now: Instant,
        key: K,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, DropReason> {
        self.poll(now);
        let r = self.push_inner(now, key, offset, more, payload);
        match &r {
            Ok(Some(_)) => self.stats.completed += 1,
            Ok(None) => {}
            Err(reason) => self.stats.count(*reason),
        }
        r
    }

    fn push_inner(
        &mut self,
        now: Instant,
        key: K,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, DropReason> {
        if offset & 7 != 0 || (more && (payload.is_empty() || payload.len() & 7 != 0)) {
            return Err(DropReason::Malformed);
        }
        let end = offset
            .checked_add(payload.len())
            .filter(|&e| e <= self.config.max_len)
            .ok_or(DropReason::TooLong)?;
        if offset == 0 && !more {
            // RFC 6946 §4: "A host that receives an IPv6 packet that includes
            // a Fragment Header with the "Fragment Offset" equal to 0 and the
            // "M" flag equal to 0 MUST process such packet in isolation from
            // any other packets/fragments".
            return Ok(Some(payload.to_vec()));
        }
        let charge = payload.len() + FRAGMENT_OVERHEAD;
        let source = key.source();

        if !self.datagrams.contains_key(&key) {
            let usage = self.sources.get(&source).copied().unwrap_or_default();
            if self.datagrams.len() >= self.config.max_datagrams {
                return Err(DropReason::DatagramLimit);
            }
            if usage.datagrams >= self.config.max_datagrams_per_source {
                return Err(DropReason::SourceDatagramLimit);
            }
            if self.bytes + charge > self.config.max_bytes {
                return Err(DropReason::MemoryLimit);
            }
            if usage.bytes + charge > self.config.max_bytes_per_source {
                return Err(DropReason::SourceMemoryLimit);
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let deadline = now.saturating_add(self.config.timeout);
            self.deadlines.insert((deadline, seq), key.clone());
            self.datagrams.insert(
                key.clone(),
                Datagram {
                    fragments: Vec::new(),
                    total: None,
                    received: 0,
                    charged: 0,
                    deadline,
                    seq,
                    poisoned: false,
                },
            );
            self.sources.entry(source.clone()).or_default().datagrams += 1;
        }

        let Some(d) = self.datagrams.get_mut(&key) else {
            unreachable!("datagram inserted above");
        };
        if d.poisoned {
            return Err(DropReason::Poisoned);
        }

        // Where this fragment goes: the first held fragment ending after its
        // start.
        let i = d.fragments.partition_point(|f| f.end() <= offset);
        if let Some(f) = d.fragments.get(i) {
            if f.offset < end {
                if f.offset == offset && f.data == payload && (more || d.total == Some(end)) {
                    self.stats.duplicates += 1;
                    return Ok(None);
                }
                return Err(self.discard(&key, DropReason::Overlap));
            }
        }
        // The end of the datagram.
        if !more {
            if d.total.is_some_and(|t| t != end) || d.fragments.last().is_some_and(|f| f.end() > end) {
                return Err(self.discard(&key, DropReason::Inconsistent));
            }
            d.total = Some(end);
        } else if d.total.is_some_and(|t| end > t) {
            return Err(self.discard(&key, DropReason::Inconsistent));
        }
        if d.fragments.len() >= self.config.max_fragments {
            return Err(self.discard(&key, DropReason::TooManyFragments));
        }
        let usage = self.sources.get(&source).copied().unwrap_or_default();
        if self.bytes + charge > self.config.max_bytes {
            return Err(self.discard(&key, DropReason::MemoryLimit));
        }
        if usage.bytes + charge > self.config.max_bytes_per_source {
            return Err(self.discard(&key, DropReason::SourceMemoryLimit));
        }

        let Some(d) = self.datagrams.get_mut(&key) else {
            unreachable!("datagram present above");
        };
        d.fragments.insert(
            i,
            Fragment {
                offset,
                data: payload.to_vec(),
            },
        );
        d.received += payload.len();
        d.charged += charge;
        self.bytes += charge;
        if let Some(u) = self.sources.get_mut(&source) {
            u.bytes += charge;
        }
        self.stats.fragments += 1;

        if d.total == Some(d.received) {
            // Non-overlapping fragments inside [0, total) adding up to total
            // leave no hole.
            let d = self.remove(&key).expect("datagram present");
            let total = d.received;
            let mut out = Vec::with_capacity(total);
            for f in d.fragments {
                out.extend_from_slice(&f.data);
            }
            return Ok(Some(out));
        }
        Ok(None)
    }

    /// Discards `key`'s datagram for `reason`, poisoning it if so configured.
    fn discard(&mut self, key: &K, reason: DropReason) -> DropReason {
        self.stats.discarded += 1;
        if reason == DropReason::Overlap && self.config.poison_on_overlap {
            // Keep the entry, emptied, until its deadline.
            let source = key.source();
            if let Some(d) = self.datagrams.get_mut(key) {
                d.poisoned = true;
                d.fragments = Vec::new();
                d.total = None;
                d.received = 0;
                self.bytes -= d.charged;
                if let Some(u) = self.sources.get_mut(&source) {
                    u.bytes -= d.charged;
                }
                d.charged = 0;
            }
        } else {
            self.remove(key);
        }
        reason
    }

    /// Removes `key`'s datagram, its deadline, and what it was charged.
    fn remove(&mut self, key: &K) -> Option<Datagram> {
        let d = self.datagrams.remove(key)?;
        self.deadlines.remove(&(d.deadline, d.seq));
        self.bytes -= d.charged;
        let source = key.source();
        if let Some(u) = self.sources.get_mut(&source) {
            u.datagrams -= 1;
            u.bytes -= d.charged;
            if u.datagrams == 0 {
                self.sources.remove(&source);
            }
        }
        Some(d)
    }
}
