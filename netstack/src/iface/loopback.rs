//! Loopback: packets to our own addresses never reach the device.
//!
//! A packet whose destination is a local address of the interface — one of
//! its configured IPv4/IPv6 addresses (always, as Linux delivers them
//! through `lo`), or with [`Config::loopback`](super::Config::loopback) on,
//! any address in 127.0.0.0/8 and `::1` — is built as a whole Ethernet
//! frame (our address on both ends) and queued inside the interface. The
//! next [`Interface::poll`] processes it as received, in rounds: what one
//! round's packets answer (a SYN-ACK, an ACK) is processed by the next
//! round of the same poll, up to [`LOOPBACK_BUDGET`] packets; the rest
//! waits, and [`Interface::poll_at`] returns [`Instant::ZERO`] while
//! anything waits, so a caller's loop does not sleep on it. A packet
//! queued by a socket call (a `connect`'s SYN, a `send`'s data) waits for
//! that next poll the same way.
//!
//! As on Linux, 127.0.0.0/8 is local as a whole (`lo` has 127.0.0.1/8):
//! any address in it may be bound and connected to, and the source chosen
//! towards any of them is 127.0.0.1. A packet from the wire that claims a
//! loopback source or destination is dropped (Linux's martians), and one
//! from a loopback source never leaves towards the wire.
//!
//! The path MTU to a local address is Linux's `lo`: 65536 bytes (an IPv4
//! packet stops at 65535), so TCP announces Linux's MSS there (65495 for
//! IPv4, 65476 for IPv6). Checksums are not computed on looped packets
//! (Linux skips them on `lo` too) unless the interface is a shard (see
//! below), whose packets may be processed by another shard.
//!
//! Shards ([`crate::steer`]): a looped packet goes to the shard the
//! steering rules name, as if it had come from the wire. Those of other
//! shards are kept for the shell, which takes them with
//! [`Interface::take_looped_for_shards`] after every poll and hands each to
//! its shard's [`Interface::receive_looped`].
//!
//! Not for: broadcast or multicast looped back to our own sockets
//! (`IP_MULTICAST_LOOP`), which nothing here does.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Interface;
use crate::nic::RxMeta;
use crate::steer::Dest;
use crate::time::Instant;

/// Path MTU towards a local IPv4 address: Linux's `lo` (65536), less the
/// one byte an IPv4 total length cannot express.
pub(crate) const LOOPBACK_MTU_V4: usize = 65535;

/// Path MTU towards a local IPv6 address (Linux's `lo`).
pub(crate) const LOOPBACK_MTU_V6: usize = 65536;

/// Looped packets one [`Interface::poll`] processes at most; more wait for
/// the next poll.
pub const LOOPBACK_BUDGET: usize = 256;

/// What a looped frame claims about its checksums: we built it, so they are
/// "verified" (and, without steering, not even computed).
const LOOPED_META: RxMeta = RxMeta {
    ipv4_csum_good: true,
    l4_csum_good: true,
};

/// Where a received frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The device.
    Wire,
    /// Ourselves (or another shard of ours), through loopback.
    Loopback,
}

/// A frame waiting in the loopback queue.
#[derive(Debug)]
pub(crate) struct LoopedFrame {
    data: Vec<u8>,
    /// Another shard already steered it here: never passed on again.
    steered: bool,
}

/// The loopback queues of an [`Interface`].
#[derive(Debug, Default)]
pub(crate) struct Loopback {
    /// Frames to process here, oldest first.
    queue: VecDeque<LoopedFrame>,
    /// Frames for other shards: (shard, frame), for the shell to take.
    foreign: VecDeque<(usize, Vec<u8>)>,
}

impl Loopback {
    /// Frames waiting to be processed here.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

impl Interface {
    /// Whether `a` is a loopback address this interface serves: any of
    /// 127.0.0.0/8 or `::1` (IPv4-mapped forms included), with
    /// [`Config::loopback`](super::Config::loopback) on.
    pub fn is_loopback_addr(&self, a: IpAddr) -> bool {
        self.config.loopback && super::canonical_ip(a).is_loopback()
    }

    /// Whether `a` is a local address: configured ([`Interface::has_ipv4`],
    /// [`Interface::has_ipv6`]) or loopback ([`Interface::is_loopback_addr`]).
    /// Packets to a local address are looped back, never sent to the device.
    pub fn is_local_addr(&self, a: IpAddr) -> bool {
        match super::canonical_ip(a) {
            IpAddr::V4(v4) => self.has_ipv4(v4) || (self.config.loopback && v4.is_loopback()),
            IpAddr::V6(v6) => self.has_ipv6(v6) || (self.config.loopback && v6.is_loopback()),
        }
    }

    /// The source towards loopback destination `dst` (127.0.0.1 or `::1`,
    /// as Linux picks `lo`'s address), if loopback is on; `None` for other
    /// destinations.
    pub(crate) fn loopback_source(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(d) if d.is_loopback() && self.config.loopback => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            IpAddr::V6(d) if d.is_loopback() && self.config.loopback => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            _ => None,
        }
    }

    /// A socket bound to `local` may send to `dst`: Linux refuses a
    /// loopback source towards anything not local (`EINVAL` from
    /// `ip_route_output_key`), so 127.0.0.0/8 never reaches the wire.
    pub(crate) fn check_loopback_source(&self, local: IpAddr, dst: IpAddr) -> Result<(), super::SocketError> {
        if super::canonical_ip(local).is_loopback() && !self.is_local_addr(dst) {
            Err(super::SocketError::InvalidArgument)
        } else {
            Ok(())
        }
    }

    /// Whether the interface does checksums on looped packets: only a shard
    /// does, whose packets another shard may verify.
    pub(crate) fn loopback_checksums(&self) -> bool {
        self.config.steering.is_some()
    }

    /// Queues a built frame (Ethernet header with our address on both
    /// ends) to be processed as received. Bounded like the device queue
    /// with its control reserve; beyond it the frame is dropped and counted
    /// (`drop_tx_queue_full`).
    pub(crate) fn push_looped(&mut self, data: Vec<u8>, steered: bool) {
        let cap = self.config.tx_queue_frames.saturating_add(super::TX_CONTROL_RESERVE);
        if self.loopback.queue.len() >= cap {
            self.counters.drop_tx_queue_full += 1;
            self.recycle(data);
        } else {
            self.loopback.queue.push_back(LoopedFrame { data, steered });
        }
    }

    /// Processes looped frames in rounds (each round ends like a receive
    /// burst), up to [`LOOPBACK_BUDGET`]. Returns how many it took.
    pub(crate) fn process_looped(&mut self, now: Instant) -> usize {
        let mut done = 0;
        while done < LOOPBACK_BUDGET && !self.loopback.queue.is_empty() {
            let round = self.loopback.queue.len().min(LOOPBACK_BUDGET - done);
            for _ in 0..round {
                let Some(f) = self.loopback.queue.pop_front() else {
                    break;
                };
                done += 1;
                if let Some(k) = self.foreign_shard(&f) {
                    self.push_foreign(k, f.data);
                    continue;
                }
                self.counters.loopback_frames += 1;
                self.process_frame(now, &f.data, LOOPED_META, Origin::Loopback);
                self.recycle(f.data);
            }
            self.tcp_after_burst(now);
        }
        done
    }

    /// The other shard that must process `f`, if any.
    fn foreign_shard(&self, f: &LoopedFrame) -> Option<usize> {
        let s = self.config.steering.as_ref().filter(|_| !f.steered)?;
        match s.classify(&f.data) {
            Dest::Shard(k) if k != s.index() && k < s.count() => Some(k),
            Dest::Shard(_) | Dest::All => None,
        }
    }

    fn push_foreign(&mut self, shard: usize, data: Vec<u8>) {
        let cap = self.config.tx_queue_frames.saturating_add(super::TX_CONTROL_RESERVE);
        if self.loopback.foreign.len() >= cap {
            self.counters.drop_tx_queue_full += 1;
            self.recycle(data);
        } else {
            self.loopback.foreign.push_back((shard, data));
        }
    }

    /// Shards only: hands every looped frame another shard must process to
    /// `f`, as (shard index, Ethernet frame), oldest first. Call it after
    /// every [`Interface::poll`] and give each frame to that shard's
    /// [`Interface::receive_looped`]; frames not taken stay queued (bounded,
    /// the excess dropped and counted as `drop_tx_queue_full`). Without
    /// steering there are none.
    pub fn take_looped_for_shards(&mut self, mut f: impl FnMut(usize, &[u8])) {
        while let Some((k, data)) = self.loopback.foreign.pop_front() {
            f(k, &data);
            self.recycle(data);
        }
    }

    /// Shards only: a looped frame another shard's
    /// [`Interface::take_looped_for_shards`] handed over, to process here
    /// (at the next [`Interface::poll`], which [`Interface::poll_at`]
    /// reports due) as a packet from ourselves. Only frames that came from
    /// a shard of this stack belong here: they skip the checks a frame
    /// from the wire gets (loopback and own source addresses).
    pub fn receive_looped(&mut self, frame: &[u8]) {
        let mut data = self.take_buf(frame.len());
        data.copy_from_slice(frame);
        self.push_looped(data, true);
    }
}
