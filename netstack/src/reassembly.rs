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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(src: u8, id: u16) -> Ipv4FragKey {
        Ipv4FragKey {
            src: [10, 0, 0, src],
            dst: [10, 0, 0, 1],
            id,
            proto: 17,
        }
    }

    fn t(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 256) as u8).collect()
    }

    /// Pushes `payload[off..off+len]` as a fragment.
    fn frag(
        r: &mut Reassembler<Ipv4FragKey>,
        now: Instant,
        k: Ipv4FragKey,
        payload: &[u8],
        off: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, DropReason> {
        let end = (off + len).min(payload.len());
        r.push(now, k, off, end < payload.len(), &payload[off..end])
    }

    #[test]
    fn in_order_and_out_of_order() {
        let p = data(3000);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut r = Reassembler::new(ReassemblyConfig::ipv4());
            let mut out = None;
            for (n, i) in order.iter().enumerate() {
                let res = frag(&mut r, t(0), key(2, 1), &p, i * 1480, 1480).unwrap();
                if n < 2 {
                    assert_eq!(res, None);
                } else {
                    out = res;
                }
            }
            assert_eq!(out.as_deref(), Some(&p[..]));
            assert_eq!(r.datagrams_in_flight(), 0);
            assert_eq!(r.bytes_in_use(), 0);
            assert_eq!(r.source_usage(&[10, 0, 0, 2]), (0, 0));
            assert_eq!(r.poll_at(), None);
        }
    }

    #[test]
    fn random_fragmentations_reassemble_exactly() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..300u16 {
            let mut r = Reassembler::new(if round % 2 == 0 {
                ReassemblyConfig::ipv4()
            } else {
                ReassemblyConfig::ipv6()
            });
            let len = 1 + rnd(20_000) as usize;
            let p: Vec<u8> = (0..len).map(|_| rnd(256) as u8).collect();
            // Cut at random multiples of 8.
            let mut cuts = vec![0];
            while *cuts.last().unwrap() < len {
                let step = 8 * (1 + rnd(400) as usize);
                cuts.push((cuts.last().unwrap() + step).min(len));
            }
            if cuts.len() - 1 > 64 || cuts.len() == 2 {
                // Over the fragment limit, or a single (atomic) fragment.
                continue;
            }
            let mut frags: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
            // Some exact duplicates, then shuffle.
            for i in 0..frags.len() {
                if rnd(5) == 0 {
                    frags.push(frags[i]);
                }
            }
            for i in (1..frags.len()).rev() {
                frags.swap(i, rnd(i as u64 + 1) as usize);
            }
            let mut done = None;
            for (a, b) in frags {
                match r.push(t(0), key(2, round), a, b < len, &p[a..b]) {
                    Ok(Some(d)) => {
                        assert!(done.is_none(), "completed twice");
                        done = Some(d);
                    }
                    Ok(None) => {}
                    Err(e) => panic!("round {round}: {e:?}"),
                }
            }
            assert_eq!(done.as_deref(), Some(&p[..]), "round {round}");
        }
    }

    #[test]
    fn interleaved_datagrams_stay_apart() {
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        let a = data(1600);
        let b: Vec<u8> = data(1600).iter().map(|x| !x).collect();
        assert_eq!(frag(&mut r, t(0), key(2, 1), &a, 0, 800), Ok(None));
        assert_eq!(frag(&mut r, t(0), key(2, 2), &b, 800, 800), Ok(None));
        assert_eq!(frag(&mut r, t(0), key(3, 1), &b, 0, 800), Ok(None));
        assert_eq!(frag(&mut r, t(0), key(2, 2), &b, 0, 800), Ok(Some(b.clone())));
        assert_eq!(frag(&mut r, t(0), key(2, 1), &a, 800, 800), Ok(Some(a)));
        assert_eq!(r.datagrams_in_flight(), 1);
    }

    #[test]
    fn exact_duplicates_are_harmless() {
        let mut r = Reassembler::new(ReassemblyConfig::ipv6());
        let p = data(2000);
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 1000), Ok(None));
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 1000), Ok(None));
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 1000, 1000), Ok(Some(p)));
        assert_eq!(r.stats().duplicates, 1);
        assert_eq!(r.stats().completed, 1);
    }

    #[test]
    fn overlap_discards_the_datagram() {
        let p = data(2400);
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 800), Ok(None));
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 1600, 800), Ok(None));
        // Overlaps the start of the last fragment.
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 800, 808), Err(DropReason::Overlap));
        assert_eq!(r.datagrams_in_flight(), 0);
        assert_eq!(r.bytes_in_use(), 0);
        // IPv4 does not poison: a retransmission starts over cleanly.
        for off in [0, 800, 1600] {
            let res = frag(&mut r, t(1), key(2, 1), &p, off, 800);
            assert_eq!(res.unwrap().is_some(), off == 1600);
        }

        // Same offset, different bytes, is an overlap too.
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 800), Ok(None));
        let evil = vec![0u8; 800];
        assert_eq!(r.push(t(0), key(2, 1), 0, true, &evil), Err(DropReason::Overlap));
        // Contained inside a held fragment.
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 1600), Ok(None));
        assert_eq!(r.push(t(0), key(2, 1), 8, true, &p[8..16]), Err(DropReason::Overlap));
        assert_eq!(r.stats().overlap, 2);
    }

    #[test]
    fn ipv6_overlap_poisons_until_timeout() {
        let k = Ipv6FragKey {
            src: [1; 16],
            dst: [2; 16],
            id: 77,
        };
        let p = data(2400);
        let mut r = Reassembler::new(ReassemblyConfig::ipv6());
        assert_eq!(r.push(t(0), k, 0, true, &p[..800]), Ok(None));
        assert_eq!(r.push(t(0), k, 400, true, &p[400..1200]), Err(DropReason::Overlap));
        assert_eq!(r.bytes_in_use(), 0);
        // RFC 5722: "including those not yet received".
        assert_eq!(r.push(t(1), k, 800, true, &p[800..1600]), Err(DropReason::Poisoned));
        assert_eq!(r.push(t(59), k, 1600, false, &p[1600..]), Err(DropReason::Poisoned));
        // After the timeout the key is free again, and a poisoned datagram
        // is not reported as a reassembly timeout.
        assert_eq!(r.push(t(61), k, 0, true, &p[..800]), Ok(None));
        assert_eq!(r.stats().timeouts, 0);
        assert_eq!(r.pop_expired(), None);
    }

    #[test]
    fn inconsistent_ends() {
        let p = data(2400);
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 1600, 800), Ok(None));
        // A second, different end.
        assert_eq!(
            r.push(t(0), key(2, 1), 800, false, &p[800..1600]),
            Err(DropReason::Inconsistent)
        );
        // Data beyond the end.
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 800, 800), Ok(None));
        assert_eq!(
            r.push(t(0), key(2, 1), 400, false, &p[400..600]),
            Err(DropReason::Inconsistent)
        );
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 1600, 800), Ok(None));
        assert_eq!(
            r.push(t(0), key(2, 1), 2400, true, &p[..8]),
            Err(DropReason::Inconsistent)
        );
        assert_eq!(r.datagrams_in_flight(), 0);
        assert_eq!(r.stats().inconsistent, 3);
        assert_eq!(r.stats().discarded, 3);
    }

    #[test]
    fn malformed_and_too_long() {
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        let p = data(2000);
        assert_eq!(r.push(t(0), key(2, 1), 4, true, &p[..8]), Err(DropReason::Malformed));
        assert_eq!(r.push(t(0), key(2, 1), 0, true, &p[..9]), Err(DropReason::Malformed));
        assert_eq!(r.push(t(0), key(2, 1), 0, true, &[]), Err(DropReason::Malformed));
        // The "ping of death": the last fragment ends past 65535.
        assert_eq!(
            r.push(t(0), key(2, 1), 65528, false, &p[..16]),
            Err(DropReason::TooLong)
        );
        assert_eq!(
            r.push(t(0), key(2, 1), usize::MAX - 7, false, &p[..16]),
            Err(DropReason::TooLong)
        );
        // Exactly 65535 is fine.
        let big = data(65535);
        let mut out = None;
        for off in (0..65535).step_by(1480) {
            out = frag(&mut r, t(0), key(2, 9), &big, off, 1480).unwrap();
        }
        assert_eq!(out.as_deref(), Some(&big[..]));
        assert_eq!(r.stats().malformed, 3);
        assert_eq!(r.stats().too_long, 2);
        assert_eq!(r.datagrams_in_flight(), 0);
    }

    #[test]
    fn atomic_fragment_is_independent() {
        let mut r = Reassembler::new(ReassemblyConfig::ipv6());
        let p = data(1600);
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 800), Ok(None));
        assert_eq!(r.push(t(0), key(2, 1), 0, false, b"whole"), Ok(Some(b"whole".to_vec())));
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 800, 800), Ok(Some(p)));
    }

    #[test]
    fn timeouts_release_and_report() {
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        let p = data(2400);
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 800), Ok(None));
        assert_eq!(frag(&mut r, t(10), key(2, 2), &p, 800, 800), Ok(None));
        assert_eq!(r.poll_at(), Some(t(30)));
        // Later fragments do not extend the timeout.
        assert_eq!(frag(&mut r, t(29), key(2, 1), &p, 800, 800), Ok(None));
        r.poll(t(30));
        assert_eq!(r.datagrams_in_flight(), 1);
        assert_eq!(
            r.pop_expired(),
            Some(Expired {
                key: key(2, 1),
                deadline: t(30)
            })
        );
        // The last fragment comes too late and starts a new datagram.
        assert_eq!(frag(&mut r, t(31), key(2, 1), &p, 1600, 800), Ok(None));
        // Without its first fragment, a timeout is not reported.
        r.poll(t(40));
        assert_eq!(r.pop_expired(), None);
        assert_eq!(r.stats().timeouts, 2);
        r.poll(t(61));
        assert_eq!(r.datagrams_in_flight(), 0);
        assert_eq!(r.bytes_in_use(), 0);
        assert_eq!(r.poll_at(), None);
        // Configurable.
        let cfg = ReassemblyConfig {
            timeout: Duration::from_secs(2),
            ..ReassemblyConfig::ipv6()
        };
        let mut r = Reassembler::new(cfg);
        assert_eq!(frag(&mut r, t(0), key(2, 1), &p, 0, 800), Ok(None));
        assert_eq!(frag(&mut r, t(2), key(2, 1), &p, 800, 1600), Ok(None));
        assert_eq!(r.stats().timeouts, 1);
    }

    #[test]
    fn per_source_limits() {
        let cfg = ReassemblyConfig {
            max_datagrams_per_source: 4,
            max_bytes_per_source: 10 * (800 + FRAGMENT_OVERHEAD),
            ..ReassemblyConfig::ipv4()
        };
        let mut r = Reassembler::new(cfg);
        let p = data(8000);
        for id in 0..4 {
            assert_eq!(frag(&mut r, t(0), key(2, id), &p, 0, 800), Ok(None));
        }
        assert_eq!(
            frag(&mut r, t(0), key(2, 4), &p, 0, 800),
            Err(DropReason::SourceDatagramLimit)
        );
        // Another source is not affected.
        assert_eq!(frag(&mut r, t(0), key(3, 4), &p, 0, 800), Ok(None));
        // Bytes: fill source 2 up to its limit, then one more fragment
        // discards the datagram it belongs to.
        for off in (800..5600).step_by(800) {
            assert_eq!(frag(&mut r, t(0), key(2, 0), &p, off, 800), Ok(None));
        }
        assert_eq!(r.source_usage(&[10, 0, 0, 2]).1, 10 * 864);
        assert_eq!(
            frag(&mut r, t(0), key(2, 1), &p, 800, 800),
            Err(DropReason::SourceMemoryLimit)
        );
        assert_eq!(r.source_usage(&[10, 0, 0, 2]), (3, 9 * 864));
        assert_eq!(r.stats().source_datagram_limit, 1);
        assert_eq!(r.stats().source_memory_limit, 1);
        // A completed datagram frees its share.
        let small = data(1600);
        assert_eq!(frag(&mut r, t(0), key(3, 4), &small, 800, 800), Ok(Some(small)));
        assert_eq!(r.source_usage(&[10, 0, 0, 3]), (0, 0));
    }

    #[test]
    fn too_many_fragments() {
        let cfg = ReassemblyConfig {
            max_fragments: 4,
            ..ReassemblyConfig::ipv4()
        };
        let mut r = Reassembler::new(cfg);
        let p = data(80);
        for off in (0..32).step_by(8) {
            assert_eq!(frag(&mut r, t(0), key(2, 1), &p, off, 8), Ok(None));
        }
        assert_eq!(
            frag(&mut r, t(0), key(2, 1), &p, 32, 8),
            Err(DropReason::TooManyFragments)
        );
        assert_eq!(r.datagrams_in_flight(), 0);
    }

    /// Floods `r` with fragments from `sources` sources and `ids` ids each,
    /// checking every bound after every fragment.
    fn flood(r: &mut Reassembler<Ipv4FragKey>, sources: u32, ids: u32, seed: u32, mixed: bool) {
        let cfg = *r.config();
        let p = data(65535);
        let mut x: u32 = seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut max_bytes = 0;
        for i in 0..100_000u64 {
            let src = (rnd() % sources) as u8;
            let id = (rnd() % ids) as u16;
            let (off, len) = if mixed && i % 2 == 0 {
                // Random shapes: mostly overlaps and bad ends.
                (((rnd() as usize) % 8000) * 8, (((rnd() as usize) % 180) + 1) * 8)
            } else {
                // Clean 1440-byte fragments that fill memory.
                (((rnd() as usize) % 45) * 1440, 1440)
            };
            let end = (off + len).min(65535);
            let more = !mixed || rnd() % 4 != 0;
            let now = Instant::from_millis(i);
            let _ = r.push(now, key(src, id), off, more, &p[off..end]);
            max_bytes = max_bytes.max(r.bytes_in_use());
            assert!(r.bytes_in_use() <= cfg.max_bytes);
            assert!(r.datagrams_in_flight() <= cfg.max_datagrams);
            let (d, b) = r.source_usage(&[10, 0, 0, src]);
            assert!(d <= cfg.max_datagrams_per_source);
            assert!(b <= cfg.max_bytes_per_source);
        }
        let charged: usize = r
            .datagrams
            .values()
            .map(|d| {
                d.fragments
                    .iter()
                    .map(|f| f.data.len() + FRAGMENT_OVERHEAD)
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(charged, r.bytes_in_use(), "accounting matches what is held");
        r.poll(Instant::from_secs(1000));
        assert_eq!(r.datagrams_in_flight(), 0);
        assert_eq!(r.bytes_in_use(), 0);
        assert!(r.sources.is_empty());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        // Many sources and ids: the datagram limit bites.
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        flood(&mut r, 200, 20, 1, true);
        assert!(r.stats().datagram_limit > 0, "{:?}", r.stats());
        // Fewer datagrams, each filling up cleanly: the byte limit bites.
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        flood(&mut r, 40, 20, 2, false);
        assert!(r.stats().memory_limit > 0, "{:?}", r.stats());
        // With poisoning most of the overlapping flood is dropped early.
        let mut r = Reassembler::new(ReassemblyConfig::ipv6());
        flood(&mut r, 40, 20, 2, true);
        assert!(r.stats().poisoned > 0, "{:?}", r.stats());
        // One source: its own limits bite first.
        let mut r = Reassembler::new(ReassemblyConfig::ipv4());
        flood(&mut r, 1, 200, 3, false);
        let s = r.stats();
        assert!(s.source_datagram_limit > 0 && s.source_memory_limit > 0, "{s:?}");
        assert_eq!(s.memory_limit + s.datagram_limit, 0);
    }
}
