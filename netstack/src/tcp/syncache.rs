//! The syncache: embryonic connections of listening sockets, after FreeBSD's
//! `tcp_syncache.c`, with SYN cookies (RFC 4987 §3.6) when it overflows.
//!
//! A SYN to a listener does not create a connection. It creates a small
//! [`Syncache`] entry recording what the SYN negotiated and the SYN-ACK is
//! sent; only the handshake's final ACK ([`Syncache::on_ack`]) turns the entry
//! into [`Negotiated`] parameters from which the caller builds a connection.
//! Entries live in hash buckets keyed by the 4-tuple (keyed SipHash, so an
//! attacker cannot aim at one bucket), with a per-bucket and a total limit:
//! memory is bounded whatever arrives. When a bucket or the whole cache is
//! full, the SYN is answered statelessly with a SYN cookie: the negotiated
//! state is encoded in our ISN (and, with timestamps, in our TSval) and
//! authenticated with SipHash, so a valid final ACK rebuilds it.
//!
//! Cookie layout (FreeBSD's scheme, Linux's use of the TSval):
//! - ISS bits 0–2: index into [`MSS_TABLE`] (largest entry ≤ the MSS);
//!   bits 3–4: the 15 s period counter modulo 4; bits 5–31: 27 bits of
//!   SipHash-2-4 over the 4-tuple, the peer's ISN, the full period counter
//!   and all encoded bits, under a key derived per period from the injected
//!   secret (so the key rotates every period, like FreeBSD's two secrets).
//! - With timestamps, our TSval bits 0–3 carry the peer's window scale (15 =
//!   none) and bit 4 SACK-permitted; the peer echoes them in TSecr. Without
//!   timestamps there is nowhere to keep them, so the cookie SYN-ACK offers
//!   neither window scaling nor SACK (RFC 4987 §3.6 notes this limitation).
//! - A cookie is valid in the period it was issued and the next one (15–30
//!   s), and only while the cache has overflowed recently (FreeBSD accepts
//!   cookies only after an overflow unless it runs cookies-only).
//!
//! Everything is plain values in, plain actions out: no I/O, no clock reads;
//! the caller parses segments, sends [`SynAck`]s and calls [`Syncache::poll`]
//! at [`Syncache::next_timer`].
//!
//! Not for: the accept queue (the caller enforces [`ListenOptions::backlog`]
//! when it turns [`Negotiated`] into a connection, as FreeBSD's
//! `sonewconn()` does), active opens, or simultaneous open.

use core::hash::Hasher;
use core::net::SocketAddr;
use core::time::Duration;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use siphasher::sip::SipHasher24;

use crate::tcp::isn::{hash_tuple, IsnGenerator};
use crate::tcp::seq::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::{TcpControl, TcpRepr};

/// MSS values a SYN cookie can encode (FreeBSD's `tcp_sc_msstab`); the
/// cookie stores the index of the largest entry not above the real MSS.
pub const MSS_TABLE: [u16; 8] = [216, 536, 1220, 1360, 1400, 1440, 1452, 1460];

/// The smallest peer MSS accepted: FreeBSD's `net.inet.tcp.minmss` default
/// (216); smaller offers are raised to it, as `tcp_mss_update()` does.
pub const MIN_MSS: u16 = 216;

/// The largest window shift, RFC 7323 §2.3.
pub const MAX_WSCALE: u8 = 14;

/// The SYN cookie period: FreeBSD's `SYNCOOKIE_LIFETIME` (15 s).
pub const COOKIE_PERIOD: Duration = Duration::from_secs(15);

/// Tunables, with FreeBSD's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncacheConfig {
    /// Number of hash buckets; rounded up to a power of two (FreeBSD 512).
    pub buckets: usize,
    /// Entries per bucket (FreeBSD `bucketlimit`, 30).
    pub bucket_limit: usize,
    /// Entries in total (FreeBSD `cachelimit`, buckets × bucket_limit).
    pub cache_limit: usize,
    /// SYN-ACK retransmissions before an entry is dropped (FreeBSD 3).
    pub rexmt_limit: u8,
    /// First retransmission timeout, doubled each time (FreeBSD
    /// `TCPTV_RTOBASE`, 1 s; RFC 6298 §2.1 initial RTO).
    pub rto_initial: Duration,
    /// Answer with SYN cookies on overflow (FreeBSD `syncookies`, on).
    /// When off, overflowing SYNs are dropped.
    pub cookies: bool,
}

impl Default for SyncacheConfig {
    fn default() -> Self {
        SyncacheConfig {
            buckets: 512,
            bucket_limit: 30,
            cache_limit: 512 * 30,
            rexmt_limit: 3,
            rto_initial: Duration::from_secs(1),
            cookies: true,
        }
    }
}

/// What the listener offers, from its socket options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// Our MSS (advertised in the SYN-ACK; also caps the send MSS).
    pub mss: u16,
    /// Our window scale shift (clamped to 14); `None` disables scaling.
    pub wscale: Option<u8>,
    /// Offer SACK-permitted (RFC 2018) if the peer does.
    pub sack: bool,
    /// Use timestamps (RFC 7323) if the peer does.
    pub timestamps: bool,
    /// Window advertised in the SYN-ACK (never scaled, RFC 7323 §2.2).
    pub window: u16,
    /// The accept-queue limit; enforced by the caller, see the module docs.
    pub backlog: u32,
}

/// The fields of a received SYN the syncache needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynInfo {
    /// The SYN's sequence number (the peer's ISN).
    pub peer_isn: SeqNum,
    /// MSS option, if present.
    pub mss: Option<u16>,
    /// Window scale option, if present.
    pub wscale: Option<u8>,
    /// SACK-permitted option present.
    pub sack_ok: bool,
    /// Timestamps option TSval, if present.
    pub tsval: Option<u32>,
    /// The SYN's window (never scaled).
    pub window: u16,
    /// The FIN bit was also set.
    pub fin: bool,
}

/// The fields of the handshake's final ACK the syncache needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    /// SEG.SEQ (the peer's ISN + 1).
    pub seq: SeqNum,
    /// SEG.ACK (our ISN + 1).
    pub ack: SeqNum,
    /// SEG.WND as received (scaled by the peer's shift, RFC 7323 §2.2).
    pub window: u16,
    /// Timestamps option (TSval, TSecr), if present.
    pub ts: Option<(u32, u32)>,
}

/// Timestamp state carried into the connection (RFC 7323).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsState {
    /// TS.Recent: the peer's latest TSval.
    pub ts_recent: u32,
    /// The TSval we sent in the (last) SYN-ACK.
    pub our_tsval: u32,
    /// Per-connection offset added to our millisecond clock (RFC 7323 §5.4).
    pub offset: u32,
}

/// A SYN-ACK for the caller to send from `local` to `remote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynAck {
    /// Our address (source).
    pub local: SocketAddr,
    /// The peer (destination).
    pub remote: SocketAddr,
    /// SEG.SEQ: our ISN.
    pub seq: SeqNum,
    /// SEG.ACK: the peer's ISN + 1.
    pub ack: SeqNum,
    /// SEG.WND (unscaled).
    pub window: u16,
    /// MSS option.
    pub mss: u16,
    /// Window scale option, if offered.
    pub wscale: Option<u8>,
    /// SACK-permitted option.
    pub sack_ok: bool,
    /// Timestamps option (TSval, TSecr), if used.
    pub ts: Option<(u32, u32)>,
    /// This SYN-ACK carries a SYN cookie (no state kept).
    pub cookie: bool,
}

impl SynAck {
    /// The segment to send.
    pub fn repr(&self) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            control: TcpControl::Syn,
            seq_number: self.seq.0,
            ack_number: Some(self.ack.0),
            window_len: self.window,
            window_scale: self.wscale,
            max_seg_size: Some(self.mss),
            sack_permitted: self.sack_ok,
            timestamp: self.ts,
            ..Default::default()
        }
    }
}

/// Why a SYN got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynDrop {
    /// SYN and FIN together.
    SynFin,
    /// The bucket was full and cookies are disabled.
    BucketFull,
    /// The cache was full and cookies are disabled.
    CacheFull,
}

/// What to do about a SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynAction {
    /// Send this SYN-ACK.
    SendSynAck(SynAck),
    /// Send nothing.
    Drop(SynDrop),
}

/// What to do about a RST for a 4-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RstAction {
    /// Exact match: the entry was removed.
    Removed,
    /// In window but not exact (RFC 5961 §3.2): send an ACK with this SEQ
    /// and ACK (a challenge ACK).
    ChallengeAck {
        /// SEG.SEQ of the challenge ACK (our ISN + 1).
        seq: SeqNum,
        /// SEG.ACK of the challenge ACK (RCV.NXT).
        ack: SeqNum,
    },
    /// No entry, or out of window: ignore.
    Ignored,
}

/// A completed handshake: the parameters of the new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// IRS: the peer's ISN.
    pub irs: SeqNum,
    /// ISS: our ISN.
    pub iss: SeqNum,
    /// Send MSS: min(peer's offer, ours), at least [`MIN_MSS`].
    pub mss: u16,
    /// The peer's window shift (applies to windows it sends us).
    pub snd_wscale: Option<u8>,
    /// Our window shift (applies to windows we send).
    pub rcv_wscale: Option<u8>,
    /// SACK permitted both ways.
    pub sack_ok: bool,
    /// Timestamps in use.
    pub ts: Option<TsState>,
    /// The peer's window: the SYN's (unscaled) for a cache entry, the final
    /// ACK's (still to be scaled by `snd_wscale`) for a cookie.
    pub peer_window: u16,
    /// Rebuilt from a SYN cookie rather than a cache entry.
    pub from_cookie: bool,
}

/// Counters, after FreeBSD's `tcps_sc_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncacheStats {
    /// Entries added.
    pub added: u64,
    /// Entries completed into connections.
    pub completed: u64,
    /// Duplicate SYNs answered from an entry.
    pub dupsyn: u64,
    /// SYN-ACK retransmissions.
    pub retransmitted: u64,
    /// Entries dropped after the last retransmission.
    pub expired: u64,
    /// SYNs that found their bucket full.
    pub bucket_overflow: u64,
    /// SYNs that found the cache full.
    pub cache_overflow: u64,
    /// SYN+FIN segments dropped.
    pub dropped_synfin: u64,
    /// Entries removed by a RST.
    pub reset: u64,
    /// Final ACKs that matched an entry but not its ISNs or timestamps.
    pub bad_ack: u64,
    /// SYN cookies sent.
    pub cookies_sent: u64,
    /// Valid SYN cookies received.
    pub cookies_valid: u64,
    /// Invalid SYN cookies received.
    pub cookies_invalid: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    local: SocketAddr,
    remote: SocketAddr,
    irs: SeqNum,
    iss: SeqNum,
    peer_mss: u16,
    our_mss: u16,
    snd_wscale: Option<u8>,
    rcv_wscale: Option<u8>,
    sack_ok: bool,
    ts: Option<TsState>,
    peer_window: u16,
    our_window: u16,
    rxmits: u8,
    due: Instant,
    gen: u64,
}

/// The syncache of all listeners of one stack.
pub struct Syncache {
    config: SyncacheConfig,
    buckets: Vec<Vec<Entry>>,
    mask: usize,
    count: usize,
    timers: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_gen: u64,
    isn: IsnGenerator,
    hash_key: [u8; 16],
    ts_key: [u8; 16],
    cookie_key: [u8; 16],
    last_overflow: Option<Instant>,
    stats: SyncacheStats,
}

impl core::fmt::Debug for Syncache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Syncache")
            .field("config", &self.config)
            .field("count", &self.count)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Derives a 128-bit subkey from `secret` for `label` and `n`.
fn derive(secret: &[u8; 16], label: u8, n: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (half, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = SipHasher24::new_with_key(secret);
        h.write_u8(label);
        h.write_u8(half as u8);
        h.write_u64(n);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

fn default_mss(remote: &SocketAddr) -> u16 {
    // RFC 9293 §3.7.1: "SendMSS ... default ... 536 for IPv4 or 1220 for IPv6".
    if remote.is_ipv4() {
        536
    } else {
        1220
    }
}

const WSCALE_NONE: u32 = 15;
const TS_COOKIE_BITS: u32 = 0x1f;
const ISS_MSS_MASK: u32 = 0x7;
const ISS_PERIOD_SHIFT: u32 = 3;
const ISS_MAC_MASK: u32 = !0x1f;

impl Syncache {
    /// An empty syncache. `secret` (128 bits from a CSPRNG, injected by the
    /// shell) keys the ISNs, the bucket hash, timestamp offsets and cookies.
    pub fn new(config: SyncacheConfig, secret: [u8; 16]) -> Self {
        let nb = config.buckets.max(1).next_power_of_two();
        Syncache {
            config,
            buckets: (0..nb).map(|_| Vec::new()).collect(),
            mask: nb - 1,
            count: 0,
            timers: BinaryHeap::new(),
            next_gen: 0,
            isn: IsnGenerator::new(derive(&secret, 1, 0)),
            hash_key: derive(&secret, 2, 0),
            ts_key: derive(&secret, 3, 0),
            cookie_key: derive(&secret, 4, 0),
            last_overflow: None,
            stats: SyncacheStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &SyncacheStats {
        &self.stats
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No entries held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn bucket_of(&self, local: &SocketAddr, remote: &SocketAddr) -> usize {
        (hash_tuple(&self.hash_key, local, remote).finish() as usize) & self.mask
    }

    fn ts_offset(&self, local: &SocketAddr, remote: &SocketAddr) -> u32 {
        hash_tuple(&self.ts_key, local, remote).finish() as u32
    }

    fn find(&self, b: usize, local: &SocketAddr, remote: &SocketAddr) -> Option<usize> {
        self.buckets[b]
            .iter()
            .position(|e| e.local == *local && e.remote == *remote)
    }

    fn syn_ack_of(e: &Entry) -> SynAck {
        SynAck {
            local: e.local,
            remote: e.remote,
            seq: e.iss,
            ack: e.irs + 1,
            window: e.our_window,
            mss: e.our_mss,
            wscale: e.rcv_wscale,
            sack_ok: e.sack_ok,
            ts: e.ts.map(|t| (t.our_tsval, t.ts_recent)),
            cookie: false,
        }
    }

    fn arm(&mut self, b: usize, i: usize, due: Instant) {
        let gen = self.next_gen;
        self.next_gen += 1;
        let e = &mut self.buckets[b][i];
        e.due = due;
        e.gen = gen;
        self.timers.push(Reverse((due, gen, b)));
        // Lazy deletion leaves stale heap items; keep the heap bounded.
        if self.timers.len() > 2 * self.count + 64 {
            self.timers = self
                .buckets
                .iter()
                .enumerate()
                .flat_map(|(b, v)| v.iter().map(move |e| Reverse((e.due, e.gen, b))))
                .collect();
        }
    }

    fn rto(&self, rxmits: u8) -> Duration {
        self.config.rto_initial.saturating_mul(1u32 << rxmits.min(16))
    }

    /// A SYN arrived for a listener at `local` from `remote`.
    pub fn on_syn(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &SynInfo,
        our: &ListenOptions,
    ) -> SynAction {
        // FreeBSD tcp_input: "If the drop_synfin option is enabled, drop all
        // segments with both the SYN and FIN bits set" (RFC 9293 leaves it
        // open; SYN+FIN is a scan signature).
        if syn.fin {
            self.stats.dropped_synfin += 1;
            return SynAction::Drop(SynDrop::SynFin);
        }
        // RFC 7323 §2.3: "If a Window Scale option is received with a
        // shift.cnt value larger than 14, the TCP SHOULD log the error but
        // MUST use 14 instead of the specified value."
        let peer_ws = syn.wscale.map(|w| w.min(MAX_WSCALE));
        let our_ws = our.wscale.map(|w| w.min(MAX_WSCALE));
        // RFC 7323 §2.2: scaling is enabled only if both sides send the option.
        let (snd_wscale, rcv_wscale) = match (peer_ws, our_ws) {
            (Some(p), Some(o)) => (Some(p), Some(o)),
            _ => (None, None),
        };
        let sack_ok = syn.sack_ok && our.sack;
        let ts_on = our.timestamps && syn.tsval.is_some();
        // FreeBSD tcp_mss_update(): an offer of 0 means the default; others
        // are raised to net.inet.tcp.minmss (216).
        let peer_mss = match syn.mss {
            None | Some(0) => default_mss(&remote),
            Some(m) => m.max(MIN_MSS),
        };

        let b = self.bucket_of(&local, &remote);
        if let Some(i) = self.find(b, &local, &remote) {
            // Duplicate SYN (our SYN-ACK was lost, or the peer restarted):
            // FreeBSD refreshes the entry, re-sends the SYN-ACK and restarts
            // the retransmission timer.
            self.stats.dupsyn += 1;
            let tsoff = self.ts_offset(&local, &remote);
            let e = &mut self.buckets[b][i];
            e.irs = syn.peer_isn;
            e.peer_mss = peer_mss;
            e.snd_wscale = snd_wscale;
            e.rcv_wscale = rcv_wscale;
            e.sack_ok = sack_ok;
            e.peer_window = syn.window;
            e.ts = syn.tsval.filter(|_| ts_on).map(|tsval| TsState {
                ts_recent: tsval,
                our_tsval: (now.as_millis() as u32).wrapping_add(tsoff),
                offset: tsoff,
            });
            e.rxmits = 0;
            let sa = Self::syn_ack_of(e);
            let due = now + self.rto(0);
            self.arm(b, i, due);
            return SynAction::SendSynAck(sa);
        }

        let overflow = if self.buckets[b].len() >= self.config.bucket_limit {
            self.stats.bucket_overflow += 1;
            Some(SynDrop::BucketFull)
        } else if self.count >= self.config.cache_limit {
            self.stats.cache_overflow += 1;
            Some(SynDrop::CacheFull)
        } else {
            None
        };
        if let Some(why) = overflow {
            if !self.config.cookies {
                return SynAction::Drop(why);
            }
            self.last_overflow = Some(now);
            self.stats.cookies_sent += 1;
            let mss = peer_mss.min(our.mss);
            return SynAction::SendSynAck(self.cookie_syn_ack(
                now, local, remote, syn, our, mss, snd_wscale, rcv_wscale, sack_ok, ts_on,
            ));
        }

        let tsoff = self.ts_offset(&local, &remote);
        let e = Entry {
            local,
            remote,
            irs: syn.peer_isn,
            iss: self.isn.isn(now, local, remote),
            peer_mss,
            our_mss: our.mss,
            snd_wscale,
            rcv_wscale,
            sack_ok,
            ts: syn.tsval.filter(|_| ts_on).map(|tsval| TsState {
                ts_recent: tsval,
                our_tsval: (now.as_millis() as u32).wrapping_add(tsoff),
                offset: tsoff,
            }),
            peer_window: syn.window,
            our_window: our.window,
            rxmits: 0,
            due: now,
            gen: 0,
        };
        let sa = Self::syn_ack_of(&e);
        self.buckets[b].push(e);
        self.count += 1;
        self.stats.added += 1;
        let i = self.buckets[b].len() - 1;
        let due = now + self.rto(0);
        self.arm(b, i, due);
        SynAction::SendSynAck(sa)
    }

    fn period(now: Instant) -> u64 {
        now.as_nanos() / COOKIE_PERIOD.as_nanos() as u64
    }

    #[allow(clippy::too_many_arguments)]
    fn cookie_mac(
        &self,
        period: u64,
        local: &SocketAddr,
        remote: &SocketAddr,
        irs: SeqNum,
        low_bits: u32,
        ts_bits: Option<u32>,
    ) -> u32 {
        // The key rotates every period (derived from the injected secret).
        let key = derive(&self.cookie_key, 5, period);
        let mut h = hash_tuple(&key, local, remote);
        h.write_u32(irs.0);
        h.write_u32(low_bits);
        match ts_bits {
            Some(t) => {
                h.write_u8(1);
                h.write_u32(t);
            }
            None => h.write_u8(0),
        }
        h.finish() as u32
    }

    #[allow(clippy::too_many_arguments)]
    fn cookie_syn_ack(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &SynInfo,
        our: &ListenOptions,
        mss: u16,
        snd_wscale: Option<u8>,
        rcv_wscale: Option<u8>,
        sack_ok: bool,
        ts_on: bool,
    ) -> SynAck {
        let mss_idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let period = Self::period(now);
        let low = mss_idx | ((period as u32 & 3) << ISS_PERIOD_SHIFT);
        let (ts, ts_bits, wscale, sack) = match syn.tsval.filter(|_| ts_on) {
            Some(tsval) => {
                let bits = snd_wscale.map_or(WSCALE_NONE, u32::from) | (u32::from(sack_ok) << 4);
                let tsoff = self.ts_offset(&local, &remote);
                let our_tsval = ((now.as_millis() as u32).wrapping_add(tsoff) & !TS_COOKIE_BITS) | bits;
                (Some((our_tsval, tsval)), Some(bits), rcv_wscale, sack_ok)
            }
            // No timestamps: nowhere to keep window scale and SACK.
            None => (None, None, None, false),
        };
        let mac = self.cookie_mac(period, &local, &remote, syn.peer_isn, low, ts_bits);
        SynAck {
            local,
            remote,
            seq: SeqNum((mac & ISS_MAC_MASK) | low),
            ack: syn.peer_isn + 1,
            window: our.window,
            mss: our.mss,
            wscale,
            sack_ok: sack,
            ts,
            cookie: true,
        }
    }

    /// The handshake's final ACK arrived (no SYN, no RST). Returns the new
    /// connection's parameters if it matches an entry or carries a valid SYN
    /// cookie; `None` means the caller treats the segment as for the
    /// listener (RFC 9293 §3.10.7.2: "If the ACK bit is on ... form a
    /// reset").
    pub fn on_ack(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ack: &AckInfo,
        our: &ListenOptions,
    ) -> Option<Negotiated> {
        let b = self.bucket_of(&local, &remote);
        if let Some(i) = self.find(b, &local, &remote) {
            let e = &self.buckets[b][i];
            // RFC 9293 §3.10.7.4 (SYN-RECEIVED): "If SND.UNA < SEG.ACK =<
            // SND.NXT, then enter ESTABLISHED"; SND.NXT = ISS + 1 here. The
            // segment must also pass the sequence check ("RCV.NXT =< SEG.SEQ
            // < RCV.NXT+RCV.WND"): when the bare ACK and the first data
            // segment are lost, the next data segment completes the
            // handshake (FreeBSD's syncache_expand and Linux's
            // tcp_check_req accept it too).
            let rcv_nxt = e.irs + 1;
            let wnd = u32::from(e.our_window).max(1);
            let ack_ok = ack.ack == e.iss + 1 && ack.seq.in_range(rcv_nxt, rcv_nxt + wnd);
            let in_order = ack.seq == rcv_nxt;
            // RFC 7323 §3.2: "If a non-RST segment is received without a
            // TSopt, a TCP SHOULD silently drop the segment".
            let ts_ok = e.ts.is_none() || ack.ts.is_some();
            if !(ack_ok && ts_ok) {
                self.stats.bad_ack += 1;
                return None;
            }
            let e = self.buckets[b].swap_remove(i);
            self.count -= 1;
            self.stats.completed += 1;
            return Some(Negotiated {
                local,
                remote,
                irs: e.irs,
                iss: e.iss,
                mss: e.peer_mss.min(e.our_mss),
                snd_wscale: e.snd_wscale,
                rcv_wscale: e.rcv_wscale,
                sack_ok: e.sack_ok,
                // RFC 7323 §4.3: TS.Recent is taken only from a segment at
                // the left edge of the window.
                ts: e.ts.map(|t| TsState {
                    ts_recent: ack.ts.filter(|_| in_order).map_or(t.ts_recent, |(v, _)| v),
                    ..t
                }),
                peer_window: e.peer_window,
                from_cookie: false,
            });
        }
        let n = self.check_cookie(now, local, remote, ack, our);
        match n {
            Some(_) => {
                self.stats.cookies_valid += 1;
                self.stats.completed += 1;
            }
            None if self.cookies_active(now) => self.stats.cookies_invalid += 1,
            None => {}
        }
        n
    }

    fn cookies_active(&self, now: Instant) -> bool {
        self.config.cookies
            && self
                .last_overflow
                .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_PERIOD * 2)
    }

    fn check_cookie(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ack: &AckInfo,
        our: &ListenOptions,
    ) -> Option<Negotiated> {
        if !self.cookies_active(now) {
            return None;
        }
        let iss = ack.ack - 1;
        let irs = ack.seq - 1;
        let low = iss.0 & !ISS_MAC_MASK;
        let cur = Self::period(now);
        let pbits = u64::from((low >> ISS_PERIOD_SHIFT) & 3);
        // Valid in the period of issue and the next one only.
        let period = if cur & 3 == pbits {
            cur
        } else if cur > 0 && (cur - 1) & 3 == pbits {
            cur - 1
        } else {
            return None;
        };
        let ts_bits = if our.timestamps {
            ack.ts.map(|(_, ecr)| ecr & TS_COOKIE_BITS)
        } else {
            None
        };
        let mac = self.cookie_mac(period, &local, &remote, irs, low, ts_bits);
        if mac & ISS_MAC_MASK != iss.0 & ISS_MAC_MASK {
            return None;
        }
        let mss = MSS_TABLE[(low & ISS_MSS_MASK) as usize].min(our.mss);
        let (snd_wscale, rcv_wscale, sack_ok, ts) = match (ts_bits, ack.ts) {
            (Some(bits), Some((tsval, tsecr))) => {
                let ws = bits & 0xf;
                let snd = (ws != WSCALE_NONE).then_some(ws as u8);
                let rcv = snd.and(our.wscale.map(|w| w.min(MAX_WSCALE)));
                let ts = TsState {
                    ts_recent: tsval,
                    our_tsval: tsecr,
                    offset: self.ts_offset(&local, &remote),
                };
                (snd.filter(|_| rcv.is_some()), rcv, bits & 0x10 != 0, Some(ts))
            }
            _ => (None, None, false, None),
        };
        Some(Negotiated {
            local,
            remote,
            irs,
            iss,
            mss,
            snd_wscale,
            rcv_wscale,
            sack_ok,
            ts,
            peer_window: ack.window,
            from_cookie: true,
        })
    }

    /// A RST arrived for `local`/`remote`. RFC 5961 §3.2: "If the RST bit is
    /// set and the sequence number exactly matches the next expected
    /// sequence number (RCV.NXT), then TCP MUST reset the connection";
    /// "If the RST bit is set and the sequence number does not exactly
    /// match the next expected sequence value, yet is within the current
    /// receive window, TCP MUST send an acknowledgment (challenge ACK)".
    pub fn on_rst(&mut self, local: SocketAddr, remote: SocketAddr, seg_seq: SeqNum) -> RstAction {
        let b = self.bucket_of(&local, &remote);
        let Some(i) = self.find(b, &local, &remote) else {
            return RstAction::Ignored;
        };
        let e = &self.buckets[b][i];
        let rcv_nxt = e.irs + 1;
        if seg_seq == rcv_nxt {
            self.buckets[b].swap_remove(i);
            self.count -= 1;
            self.stats.reset += 1;
            return RstAction::Removed;
        }
        let wnd = u32::from(e.our_window).max(1);
        if seg_seq.in_range(rcv_nxt, rcv_nxt + wnd) {
            return RstAction::ChallengeAck {
                seq: e.iss + 1,
                ack: rcv_nxt,
            };
        }
        RstAction::Ignored
    }

    /// Runs due timers: returns the next SYN-ACK retransmission due at `now`
    /// (call until `None`), dropping entries whose retransmissions are used
    /// up. FreeBSD's schedule: SYN-ACK at 0, retransmissions after 1, 2, 4 s
    /// (at 1, 3, 7 s), drop 8 s later (at 15 s).
    pub fn poll(&mut self, now: Instant) -> Option<SynAck> {
        while let Some(&Reverse((due, gen, b))) = self.timers.peek() {
            if due > now {
                return None;
            }
            self.timers.pop();
            let Some(i) = self.buckets[b].iter().position(|e| e.gen == gen) else {
                continue; // stale
            };
            let rxmits = self.buckets[b][i].rxmits;
            if rxmits >= self.config.rexmt_limit {
                self.buckets[b].swap_remove(i);
                self.count -= 1;
                self.stats.expired += 1;
                continue;
            }
            let rxmits = rxmits + 1;
            let next = now + self.rto(rxmits);
            let e = &mut self.buckets[b][i];
            e.rxmits = rxmits;
            if let Some(t) = e.ts.as_mut() {
                t.our_tsval = (now.as_millis() as u32).wrapping_add(t.offset);
            }
            let sa = Self::syn_ack_of(e);
            self.arm(b, i, next);
            self.stats.retransmitted += 1;
            return Some(sa);
        }
        None
    }

    /// When [`Syncache::poll`] next has work, if ever.
    pub fn next_timer(&self) -> Option<Instant> {
        // Stale heap items may make this early; polling then is harmless.
        self.timers.peek().map(|Reverse((due, _, _))| *due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn our() -> ListenOptions {
        ListenOptions {
            mss: 1460,
            wscale: Some(7),
            sack: true,
            timestamps: true,
            window: 65535,
            backlog: 128,
        }
    }

    fn syn(isn: u32) -> SynInfo {
        SynInfo {
            peer_isn: SeqNum(isn),
            mss: Some(1400),
            wscale: Some(9),
            sack_ok: true,
            tsval: Some(1000),
            window: 29200,
            fin: false,
        }
    }

    #[track_caller]
    fn synack(a: SynAction) -> SynAck {
        match a {
            SynAction::SendSynAck(s) => s,
            other => panic!("expected a SYN-ACK, got {other:?}"),
        }
    }

    fn final_ack(s: &SynAck) -> AckInfo {
        AckInfo {
            seq: s.ack,
            ack: s.seq + 1,
            window: 1000,
            ts: s.ts.map(|(v, _)| (1001, v)),
        }
    }

    // The start of a cookie period (990 = 66 × 15).
    const T0: Instant = Instant::from_secs(990);

    #[test]
    fn handshake_through_the_cache() {
        let mut c = Syncache::new(SyncacheConfig::default(), [1; 16]);
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:5555"));
        let s = synack(c.on_syn(T0, l, r, &syn(77), &our()));
        assert!(!s.cookie);
        assert_eq!(s.ack, SeqNum(78));
        assert_eq!((s.mss, s.wscale, s.sack_ok), (1460, Some(7), true));
        assert_eq!(s.ts.unwrap().1, 1000);
        assert_eq!(c.len(), 1);
        // A wrong ACK number does not complete it.
        let mut bad = final_ack(&s);
        bad.ack += 1;
        assert_eq!(c.on_ack(T0, l, r, &bad, &our()), None);
        // Nor one without timestamps once they were negotiated.
        let mut nots = final_ack(&s);
        nots.ts = None;
        assert_eq!(c.on_ack(T0, l, r, &nots, &our()), None);
        let n = c.on_ack(T0, l, r, &final_ack(&s), &our()).unwrap();
        assert_eq!(n.irs, SeqNum(77));
        assert_eq!(n.iss, s.seq);
        assert_eq!(n.mss, 1400);
        assert_eq!((n.snd_wscale, n.rcv_wscale, n.sack_ok), (Some(9), Some(7), true));
        let ts = n.ts.unwrap();
        assert_eq!((ts.ts_recent, ts.our_tsval), (1001, s.ts.unwrap().0));
        assert_eq!(n.peer_window, 29200);
        assert!(!n.from_cookie);
        assert!(c.is_empty());
        assert_eq!(c.stats().completed, 1);
        assert_eq!(c.stats().bad_ack, 2);
        // The entry is gone: a second ACK is not accepted (no overflow, so no cookies).
        assert_eq!(c.on_ack(T0, l, r, &final_ack(&s), &our()), None);
    }

    #[test]
    fn option_validation() {
        let mut c = Syncache::new(SyncacheConfig::default(), [1; 16]);
        let l = sa("10.0.0.1:80");
        let mut s = syn(1);
        s.fin = true;
        assert_eq!(
            c.on_syn(T0, l, sa("10.0.0.2:1"), &s, &our()),
            SynAction::Drop(SynDrop::SynFin)
        );
        assert_eq!(c.stats().dropped_synfin, 1);
        let mut s = syn(1);
        s.wscale = Some(200);
        s.mss = Some(10);
        let a = synack(c.on_syn(T0, l, sa("10.0.0.2:2"), &s, &our()));
        let n = c.on_ack(T0, l, sa("10.0.0.2:2"), &final_ack(&a), &our()).unwrap();
        assert_eq!((n.snd_wscale, n.mss), (Some(14), MIN_MSS));
        // MSS 0 or absent: the default; no wscale from the peer: no scaling either way.
        let mut s = syn(1);
        s.mss = Some(0);
        s.wscale = None;
        let a = synack(c.on_syn(T0, l, sa("10.0.0.2:3"), &s, &our()));
        assert_eq!(a.wscale, None);
        let n = c.on_ack(T0, l, sa("10.0.0.2:3"), &final_ack(&a), &our()).unwrap();
        assert_eq!((n.snd_wscale, n.rcv_wscale, n.mss), (None, None, 536));
        let l6 = sa("[2001:db8::1]:80");
        let mut s = syn(1);
        s.mss = None;
        let a = synack(c.on_syn(T0, l6, sa("[2001:db8::2]:3"), &s, &our()));
        let n = c.on_ack(T0, l6, sa("[2001:db8::2]:3"), &final_ack(&a), &our()).unwrap();
        assert_eq!(n.mss, 1220);
    }

    #[test]
    fn retransmission_timing_and_expiry() {
        let mut c = Syncache::new(SyncacheConfig::default(), [2; 16]);
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:5555"));
        let first = synack(c.on_syn(T0, l, r, &syn(5), &our()));
        let mut sent = vec![];
        let mut t = T0;
        while t < T0 + Duration::from_secs(20) {
            while let Some(s) = c.poll(t) {
                assert_eq!((s.seq, s.ack), (first.seq, first.ack));
                sent.push(t - T0);
            }
            t += Duration::from_millis(100);
        }
        let secs: Vec<u64> = sent.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, vec![1, 3, 7]);
        assert!(c.is_empty());
        assert_eq!(c.stats().retransmitted, 3);
        assert_eq!(c.stats().expired, 1);
        assert_eq!(c.next_timer(), None);
        // The expiry came at 15 s, not before.
        let mut c = Syncache::new(SyncacheConfig::default(), [2; 16]);
        c.on_syn(T0, l, r, &syn(5), &our());
        for s in [1, 3, 7] {
            assert_eq!(c.next_timer(), Some(T0 + Duration::from_secs(s)));
            assert!(c.poll(T0 + Duration::from_secs(s)).is_some());
        }
        assert_eq!(c.next_timer(), Some(T0 + Duration::from_secs(15)));
        assert!(c.poll(T0 + Duration::from_millis(14_999)).is_none());
        assert_eq!(c.len(), 1);
        assert!(c.poll(T0 + Duration::from_secs(15)).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn duplicate_syn_resends() {
        let mut c = Syncache::new(SyncacheConfig::default(), [3; 16]);
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:5555"));
        let a = synack(c.on_syn(T0, l, r, &syn(5), &our()));
        let t = T0 + Duration::from_millis(500);
        let b = synack(c.on_syn(t, l, r, &syn(5), &our()));
        assert_eq!((a.seq, a.ack), (b.seq, b.ack));
        assert_eq!(c.len(), 1);
        assert_eq!(c.stats().dupsyn, 1);
        assert_eq!(c.stats().added, 1);
        // Timer restarted from the duplicate.
        assert!(c.poll(T0 + Duration::from_secs(1)).is_none());
        assert!(c.poll(t + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn rst_removes_entry() {
        let mut c = Syncache::new(SyncacheConfig::default(), [4; 16]);
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:5555"));
        let a = synack(c.on_syn(T0, l, r, &syn(100), &our()));
        assert_eq!(c.on_rst(l, r, SeqNum(100 + 70_000)), RstAction::Ignored);
        assert_eq!(
            c.on_rst(l, r, SeqNum(105)),
            RstAction::ChallengeAck {
                seq: a.seq + 1,
                ack: SeqNum(101)
            }
        );
        assert_eq!(c.on_rst(l, sa("10.0.0.3:5555"), SeqNum(101)), RstAction::Ignored);
        assert_eq!(c.len(), 1);
        assert_eq!(c.on_rst(l, r, SeqNum(101)), RstAction::Removed);
        assert!(c.is_empty());
        assert_eq!(c.stats().reset, 1);
        assert!(c.poll(T0 + Duration::from_secs(60)).is_none());
    }

    fn small() -> SyncacheConfig {
        SyncacheConfig {
            buckets: 4,
            bucket_limit: 2,
            cache_limit: 5,
            ..Default::default()
        }
    }

    #[test]
    fn overflow_switches_to_cookies_which_rebuild_the_options() {
        let mut c = Syncache::new(small(), [5; 16]);
        let l = sa("10.0.0.1:80");
        let mut port = 1000u16;
        // Fill until a cookie appears.
        let mut cookies = vec![];
        while cookies.len() < 200 {
            port += 1;
            let r = SocketAddr::new(sa("10.0.0.2:1").ip(), port);
            let mut s = syn(u32::from(port) * 7919);
            let idx = usize::from(port) % MSS_TABLE.len();
            s.mss = Some(MSS_TABLE[idx]);
            s.wscale = if port.is_multiple_of(3) {
                None
            } else {
                Some((port % 15) as u8)
            };
            s.sack_ok = port.is_multiple_of(2);
            let a = synack(c.on_syn(T0, l, r, &s, &our()));
            assert!(c.len() <= 5);
            if a.cookie {
                cookies.push((r, s, a));
            }
        }
        assert!(c.stats().bucket_overflow > 0 && c.stats().cache_overflow > 0);
        assert_eq!(c.stats().cookies_sent, 200);
        let t = T0 + Duration::from_secs(20);
        for (r, s, a) in &cookies {
            // The SYN-ACK offered what the cookie will rebuild.
            assert_eq!(a.wscale.is_some(), s.wscale.is_some());
            let n = c.on_ack(t, l, *r, &final_ack(a), &our()).expect("valid cookie");
            assert!(n.from_cookie);
            assert_eq!(n.irs, s.peer_isn);
            assert_eq!(n.iss, a.seq);
            assert_eq!(n.mss, s.mss.unwrap());
            assert_eq!(n.snd_wscale, s.wscale);
            assert_eq!(n.rcv_wscale, s.wscale.map(|_| 7));
            assert_eq!(n.sack_ok, s.sack_ok);
            assert_eq!(n.ts.unwrap().ts_recent, 1001);
        }
        assert_eq!(c.stats().cookies_valid, 200);
        // Without timestamps the cookie keeps only the MSS.
        let mut s = syn(9);
        s.tsval = None;
        s.mss = Some(1452);
        let r = sa("10.0.0.9:9");
        for p in 0..20u16 {
            c.on_syn(T0, l, SocketAddr::new(r.ip(), 20_000 + p), &syn(1), &our());
        }
        let a = synack(c.on_syn(T0, l, r, &s, &our()));
        assert!(a.cookie);
        assert_eq!((a.wscale, a.sack_ok, a.ts), (None, false, None));
        let n = c.on_ack(T0, l, r, &final_ack(&a), &our()).unwrap();
        assert_eq!((n.mss, n.snd_wscale, n.sack_ok, n.ts), (1452, None, false, None));
        // Non-table MSS: rounded down to the table.
        s.mss = Some(1300);
        let a = synack(c.on_syn(T0, l, r, &s, &our()));
        assert_eq!(c.on_ack(T0, l, r, &final_ack(&a), &our()).unwrap().mss, 1220);
    }

    #[test]
    fn cookies_expire_and_cannot_move() {
        let mut c = Syncache::new(
            SyncacheConfig {
                bucket_limit: 0,
                ..Default::default()
            },
            [6; 16],
        );
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:5555"));
        let a = synack(c.on_syn(T0, l, r, &syn(5), &our()));
        assert!(a.cookie);
        let ack = final_ack(&a);
        // T0 is the start of a period: valid for two periods.
        assert!(c.on_ack(T0 + Duration::from_secs(29), l, r, &ack, &our()).is_some());
        // Keep cookies active with another overflow, then check staleness.
        c.on_syn(T0 + Duration::from_secs(40), l, sa("10.0.0.7:1"), &syn(1), &our());
        for secs in [30, 45, 60, 75] {
            assert!(c.on_ack(T0 + Duration::from_secs(secs), l, r, &ack, &our()).is_none());
        }
        // Wrong 4-tuple, wrong peer ISN, altered TSecr bits.
        let t = T0 + Duration::from_secs(1);
        c.on_syn(t, l, sa("10.0.0.7:1"), &syn(1), &our());
        assert!(c.on_ack(t, l, sa("10.0.0.2:5556"), &ack, &our()).is_none());
        assert!(c.on_ack(t, sa("10.0.0.1:81"), r, &ack, &our()).is_none());
        let mut wrong = ack;
        wrong.seq += 1;
        assert!(c.on_ack(t, l, r, &wrong, &our()).is_none());
        let mut wrong = ack;
        wrong.ts = wrong.ts.map(|(v, e)| (v, e ^ 0x10));
        assert!(c.on_ack(t, l, r, &wrong, &our()).is_none());
        assert!(c.on_ack(t, l, r, &ack, &our()).is_some());
    }

    #[test]
    fn forged_acks_never_validate() {
        let mut c = Syncache::new(
            SyncacheConfig {
                bucket_limit: 0,
                ..Default::default()
            },
            [7; 16],
        );
        let l = sa("10.0.0.1:80");
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        // Real cookies exist for these peers; forgeries aim at them.
        let mut real = vec![];
        for p in 0..50u16 {
            let r = SocketAddr::new(sa("10.0.0.2:1").ip(), 1000 + p);
            real.push((r, synack(c.on_syn(T0, l, r, &syn(rng.next_u32()), &our()))));
        }
        let t = T0 + Duration::from_secs(3);
        for i in 0..100_000u32 {
            let (r, a) = real[(i % 50) as usize];
            let mut ack = final_ack(&a);
            match i % 4 {
                0 => {
                    ack.seq = SeqNum(rng.next_u32());
                    ack.ack = SeqNum(rng.next_u32());
                }
                1 => ack.ack = SeqNum(rng.next_u32()),
                2 => ack.seq = SeqNum(rng.next_u32()),
                _ => ack.ts = Some((rng.next_u32(), rng.next_u32())),
            }
            if ack.seq == final_ack(&a).seq && ack.ack == final_ack(&a).ack && i % 4 != 3 {
                continue; // not a forgery
            }
            if i % 4 == 3 && ack.ts.unwrap().1 & 0x1f == a.ts.unwrap().0 & 0x1f {
                continue; // same cookie bits: a legitimate variation
            }
            // Random 4-tuple half of the time.
            let r = if rng.next_u32() % 2 == 0 {
                SocketAddr::new(core::net::Ipv4Addr::from(rng.next_u32()).into(), rng.next_u32() as u16)
            } else {
                r
            };
            assert!(c.on_ack(t, l, r, &ack, &our()).is_none(), "forgery {i} passed");
        }
        assert_eq!(c.stats().cookies_valid, 0);
        assert!(c.stats().cookies_invalid >= 90_000);
    }

    #[test]
    fn memory_bounded_under_flood() {
        let cfg = SyncacheConfig {
            buckets: 64,
            bucket_limit: 8,
            cache_limit: 300,
            ..Default::default()
        };
        let mut c = Syncache::new(cfg, [8; 16]);
        let l = sa("10.0.0.1:80");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut t = T0;
        for i in 0..1_000_000u32 {
            let r = SocketAddr::new(core::net::Ipv4Addr::from(rng.next_u32()).into(), rng.next_u32() as u16);
            c.on_syn(t, l, r, &syn(rng.next_u32()), &our());
            assert!(c.len() <= 300);
            if i % 1000 == 0 {
                t += Duration::from_millis(50);
                while c.poll(t).is_some() {}
                assert!(c.buckets.iter().all(|b| b.len() <= 8));
                assert!(c.timers.len() <= 2 * 300 + 64);
            }
        }
        let s = c.stats();
        assert_eq!(s.added + s.cookies_sent, 1_000_000);
        assert!(s.cookies_sent > 900_000);
        assert!(s.expired > 0);
    }
}
