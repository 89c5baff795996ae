//! A started ethdev port with one or more receive/transmit queue pairs,
//! and [`QueuePair`], one queue pair of a shared port for one thread.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::rte_mbuf;
use joyride_netstack::nic::{Capabilities, ChecksumCaps};

use crate::error::{Errno, Error};
use crate::port::{Link, PortConfig, PortStats};
use crate::sys::eal::Eal;
use crate::sys::mbuf::Mbuf;
use crate::sys::mempool::Mempool;

/// Largest burst [`Port::rx_burst`] returns.
pub const MAX_BURST: usize = 64;

/// Queue pair used by [`Port::rx_burst`] and [`Port::tx_burst`].
const QUEUE: u16 = 0;

/// An ethdev port number, as found by [`Eal::ports`], [`Eal::port_by_name`]
/// or [`Eal::probe_vdev`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortId(u16);

impl PortId {
    pub(crate) fn new(id: u16) -> Self {
        Self(id)
    }

    /// The raw port number.
    pub fn raw(self) -> u16 {
        self.0
    }
}

/// A configured and started port that we own: [`PortConfig::queues`]
/// receive and as many transmit queues, receiving into one shared pool
/// ([`Port::start`]) or one pool per receive queue ([`Port::start_multi`]).
/// Stopped and closed on drop.
///
/// Ownership is registered with DPDK (`rte_eth_dev_owner_set`), so a second
/// `Port` on the same device, which would race on the queues, fails.
///
/// [`Port::rx_burst`] and [`Port::tx_burst`] drive queue pair 0 through
/// `&mut self`; to drive every queue pair, each from its own thread, hand
/// the port to [`QueuePair::split`] (or `DpdkNic::split`).
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    /// One pool shared by all receive queues, or one per receive queue.
    pools: Vec<Mempool>,
    queues: u16,
    rss_hf: u64,
    burst: usize,
    mtu: u16,
    rx_offloads: u64,
    tx_offloads: u64,
    started: bool,
}

impl Port {
    /// Takes port `id`, configures [`PortConfig::queues`] rx and tx queues
    /// as `config` says, every rx queue receiving into `pool`, and starts it.
    ///
    /// With more than one queue, the device must allow that many
    /// ([`Error::TooManyQueues`] otherwise), and RSS is enabled on the IP,
    /// UDP and TCP hash types the device offers, if it offers any.
    pub fn start(eal: &Eal, id: PortId, pool: Mempool, config: &PortConfig) -> Result<Port, Error> {
        Self::start_with(eal, id, vec![pool], config)
    }

    /// As [`Port::start`], with one pool per rx queue: `pools[k]` for queue
    /// `k` (and for the frames the queue pair `k` transmits through
    /// `DpdkNic`). `pools.len()` must equal [`PortConfig::queues`].
    ///
    /// No PMD we use needs this (one shared pool works for all, see the
    /// crate docs); per-queue pools keep the cores off each other's pool
    /// ring.
    pub fn start_multi(eal: &Eal, id: PortId, pools: Vec<Mempool>, config: &PortConfig) -> Result<Port, Error> {
        if pools.len() != usize::from(config.queues) {
            return Err(Error::Config {
                port: id.0,
                why: "start_multi needs exactly one pool per rx queue (pools.len() == queues)",
            });
        }
        Self::start_with(eal, id, pools, config)
    }

    /// [`Port::start`] and [`Port::start_multi`]: `pools` holds one pool
    /// for all rx queues or one per rx queue.
    fn start_with(_eal: &Eal, id: PortId, pools: Vec<Mempool>, config: &PortConfig) -> Result<Port, Error> {
        let id = id.0;
        let err = |op: &'static str, ret: i32| Error::Port {
            port: id,
            op,
            errno: Errno(ret.abs()),
        };
        if config.burst == 0 || config.burst > MAX_BURST {
            return Err(Error::Config {
                port: id,
                why: "burst must be 1..=MAX_BURST",
            });
        }
        if config.queues == 0 {
            return Err(Error::Config {
                port: id,
                why: "a port needs at least one queue pair (queues >= 1)",
            });
        }
        if pools.is_empty() {
            return Err(Error::Config {
                port: id,
                why: "a port needs a pool to receive into",
            });
        }

        let mut owner = dpdk_sys::rte_eth_dev_owner::default();
        // SAFETY: the EAL is up; owner.id is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_owner_new(&mut owner.id) };
        if ret != 0 {
            return Err(err("rte_eth_dev_owner_new", ret));
        }
        for (dst, src) in owner.name.iter_mut().zip(b"joyride\0") {
            *dst = *src as c_char;
        }
        // SAFETY: owner is a valid, NUL-terminated owner record; DPDK checks
        // the port id and fails if the port is already owned.
        let ret = unsafe { dpdk_sys::rte_eth_dev_owner_set(id, &owner) };
        if ret != 0 {
            return Err(err("rte_eth_dev_owner_set", ret));
        }

        // From here on, Drop closes the port (and with it the ownership).
        let mut port = Port {
            id,
            name: port_name(id),
            pools,
            queues: config.queues,
            rss_hf: 0,
            burst: config.burst,
            mtu: 0,
            rx_offloads: 0,
            tx_offloads: 0,
            started: false,
        };

        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: the port id is valid (we own it); info is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
        if ret != 0 {
            return Err(err("rte_eth_dev_info_get", ret));
        }
        if config.queues > info.max_rx_queues || config.queues > info.max_tx_queues {
            return Err(Error::TooManyQueues {
                port: id,
                name: port.name.clone(),
                queues: config.queues,
                max_rx: info.max_rx_queues,
                max_tx: info.max_tx_queues,
            });
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        if config.queues > 1 {
            // Virtual PMDs (net_af_packet, net_af_xdp) offer no RSS: the
            // kernel picks the queue (packet fanout, the veth's rx queue).
            let rss_hf = info.flow_type_rss_offloads
                & (dpdk_sys::JR_ETH_RSS_IP | dpdk_sys::JR_ETH_RSS_UDP | dpdk_sys::JR_ETH_RSS_TCP);
            if rss_hf != 0 {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                // A NULL key: the driver's default.
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
            port.rss_hf = rss_hf;
        }
        if config.checksum_offload {
            conf.rxmode.offloads = info.rx_offload_capa
                & (dpdk_sys::JR_ETH_RX_OFFLOAD_IPV4_CKSUM
                    | dpdk_sys::JR_ETH_RX_OFFLOAD_UDP_CKSUM
                    | dpdk_sys::JR_ETH_RX_OFFLOAD_TCP_CKSUM);
            conf.txmode.offloads = info.tx_offload_capa
                & (dpdk_sys::JR_ETH_TX_OFFLOAD_IPV4_CKSUM
                    | dpdk_sys::JR_ETH_TX_OFFLOAD_UDP_CKSUM
                    | dpdk_sys::JR_ETH_TX_OFFLOAD_TCP_CKSUM);
        }
        if let Some(mtu) = config.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: valid port id; conf is a fully initialised configuration
        // that DPDK copies.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(id, config.queues, config.queues, &conf) };
        if ret != 0 {
            return Err(err("rte_eth_dev_configure", ret));
        }
        port.rx_offloads = conf.rxmode.offloads;
        port.tx_offloads = conf.txmode.offloads;

        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid, configured port; both are valid in/out pointers.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        if ret != 0 {
            return Err(err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or(dpdk_sys::SOCKET_ID_ANY as u32);
        for queue in 0..config.queues {
            let pool = port.queue_pool(queue).as_ptr();
            // SAFETY: queue < the `queues` rx queues configured; NULL rxconf:
            // driver defaults; the Port holds the pool until the device is closed.
            let ret = unsafe { dpdk_sys::rte_eth_rx_queue_setup(id, queue, rx_desc, socket, std::ptr::null(), pool) };
            if ret != 0 {
                return Err(err("rte_eth_rx_queue_setup", ret));
            }
            // SAFETY: valid port configured with `queues` tx queues, and
            // queue < queues; NULL txconf means the driver's defaults
            // (offloads come from the port configuration).
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, queue, tx_desc, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(err("rte_eth_tx_queue_setup", ret));
            }
        }
        // SAFETY: valid port with its queues set up.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if ret != 0 {
            return Err(err("rte_eth_dev_start", ret));
        }
        port.started = true;
        if config.promiscuous {
            // SAFETY: valid, started port.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
            if ret != 0 {
                return Err(err("rte_eth_promiscuous_enable", ret));
            }
        }
        let mut mtu = 0u16;
        // SAFETY: valid port; mtu is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_mtu(id, &mut mtu) };
        port.mtu = if ret == 0 { mtu } else { 1500 };
        tracing::debug!(port = id, name = %port.name, queues = port.queues, pools = port.pools.len(),
            rss_hf = port.rss_hf, rx_desc, tx_desc, mtu = port.mtu,
            rx_offloads = port.rx_offloads, tx_offloads = port.tx_offloads, "port started");
        Ok(port)
    }

    /// The port number.
    pub fn id(&self) -> PortId {
        PortId(self.id)
    }

    /// The device name, e.g. `net_af_packet0`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool queue 0 receives into; `DpdkNic` on queue 0 also takes its
    /// transmit buffers from it. With one pool per queue, see
    /// [`Port::queue_pool`].
    pub fn pool(&self) -> &Mempool {
        &self.pools[0]
    }

    /// The pool rx queue `queue` receives into: the one shared pool, or the
    /// queue's own (the first for a queue the port does not have).
    pub fn queue_pool(&self, queue: u16) -> &Mempool {
        self.pools.get(usize::from(queue)).unwrap_or(&self.pools[0])
    }

    /// Number of rx queues, and of tx queues ([`PortConfig::queues`]).
    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// The RSS hash types enabled (`rss_conf.rss_hf`); 0 without RSS (one
    /// queue, or a device without RSS, where the kernel picks the queue).
    pub fn rss_hash_types(&self) -> u64 {
        self.rss_hf
    }

    /// The port's Ethernet address.
    pub fn mac(&self) -> [u8; 6] {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port id; addr is a valid out-pointer. On failure
        // (not expected for a started port) addr stays zero.
        let _ = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        addr.addr_bytes
    }

    /// Link state, without waiting for negotiation.
    pub fn link(&self) -> Result<Link, Error> {
        let mut link = dpdk_sys::jr_link::default();
        // SAFETY: valid port id; link is a valid out-pointer.
        let ret = unsafe { dpdk_sys::jr_link_get_nowait(self.id, &mut link) };
        if ret != 0 {
            return Err(Error::Port {
                port: self.id,
                op: "rte_eth_link_get_nowait",
                errno: Errno(ret.abs()),
            });
        }
        Ok(Link {
            up: link.up != 0,
            speed_mbps: link.speed_mbps,
            full_duplex: link.full_duplex != 0,
            autoneg: link.autoneg != 0,
        })
    }

    /// The device's counters.
    pub fn stats(&self) -> Result<PortStats, Error> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port id; s is a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        if ret != 0 {
            return Err(Error::Port {
                port: self.id,
                op: "rte_eth_stats_get",
                errno: Errno(ret.abs()),
            });
        }
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        })
    }

    /// Zeroes the device's counters.
    pub fn reset_stats(&self) -> Result<(), Error> {
        // SAFETY: valid port id.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.id) };
        if ret != 0 {
            return Err(Error::Port {
                port: self.id,
                op: "rte_eth_stats_reset",
                errno: Errno(ret.abs()),
            });
        }
        Ok(())
    }

    /// What the port does, with the offloads that were enabled.
    pub fn capabilities(&self) -> Capabilities {
        let rx = self.rx_offloads;
        let tx = self.tx_offloads;
        let l4_rx = dpdk_sys::JR_ETH_RX_OFFLOAD_UDP_CKSUM | dpdk_sys::JR_ETH_RX_OFFLOAD_TCP_CKSUM;
        let l4_tx = dpdk_sys::JR_ETH_TX_OFFLOAD_UDP_CKSUM | dpdk_sys::JR_ETH_TX_OFFLOAD_TCP_CKSUM;
        Capabilities {
            mtu: usize::from(self.mtu),
            max_burst: self.burst,
            checksum: ChecksumCaps {
                ipv4_rx: rx & dpdk_sys::JR_ETH_RX_OFFLOAD_IPV4_CKSUM != 0,
                ipv4_tx: tx & dpdk_sys::JR_ETH_TX_OFFLOAD_IPV4_CKSUM != 0,
                l4_rx: rx & l4_rx == l4_rx,
                l4_tx: tx & l4_tx == l4_tx,
            },
        }
    }

    /// Receives up to `max` (at most [`MAX_BURST`]) frames from queue 0.
    pub fn rx_burst(&mut self, max: usize) -> RxBurst {
        // SAFETY: queue 0 is set up on every started port; &mut self is its
        // only user (split ports are reachable only through a shared &Port).
        unsafe { self.rx_burst_on(QUEUE, max) }
    }

    /// Hands the frames at the front of `pkts` to the device on queue 0;
    /// returns how many it took. Those leave `pkts` (DPDK owns and frees them
    /// now); the rest stay, in order, for the caller to retry or drop.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, prepare: bool) -> usize {
        // SAFETY: as for rx_burst, &mut self makes us queue 0's only user.
        unsafe { self.tx_burst_on(QUEUE, pkts, prepare) }
    }

    /// Receives up to `max` frames from rx queue `queue`.
    ///
    /// # Safety
    ///
    /// `queue` is one of the port's queues and, for the duration of the
    /// call, no other thread uses rx queue `queue` of this port (DPDK's
    /// burst functions are not thread-safe on one queue; different queues
    /// of one port may be used by different threads at once).
    unsafe fn rx_burst_on(&self, queue: u16, max: usize) -> RxBurst {
        debug_assert!(queue < self.queues);
        let mut burst = RxBurst {
            pkts: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
            next: 0,
        };
        let n = max.min(MAX_BURST) as u16;
        // SAFETY: the port is started with `queue` set up and the caller
        // makes us its only user; pkts has room for n pointers. The mbufs
        // returned are ours (reference count 1).
        burst.len = usize::from(unsafe { dpdk_sys::jr_eth_rx_burst(self.id, queue, burst.pkts.as_mut_ptr(), n) });
        burst
    }

    /// Hands the frames at the front of `pkts` to tx queue `queue` (see
    /// [`Port::tx_burst`]).
    ///
    /// # Safety
    ///
    /// As for [`Port::rx_burst_on`], for tx queue `queue`.
    unsafe fn tx_burst_on(&self, queue: u16, pkts: &mut Vec<Mbuf>, prepare: bool) -> usize {
        debug_assert!(queue < self.queues);
        let n = pkts.len().min(usize::from(u16::MAX)) as u16;
        if n == 0 {
            return 0;
        }
        let raw = pkts.as_mut_ptr().cast::<*mut rte_mbuf>();
        let mut ready = n;
        if prepare {
            // SAFETY: the port is started, the caller makes us the queue's
            // only user, and raw holds n valid mbufs (Mbuf is a transparent
            // NonNull<rte_mbuf>). Prepare only fixes up headers in place.
            ready = unsafe { dpdk_sys::jr_eth_tx_prepare(self.id, queue, raw, n) };
        }
        // SAFETY: as above; tx_burst takes ownership of the first `sent`.
        let sent = usize::from(unsafe { dpdk_sys::jr_eth_tx_burst(self.id, queue, raw, ready) });
        let rest = pkts.len() - sent;
        // SAFETY: the first `sent` elements now belong to DPDK and must not
        // be dropped: move the rest over them (regions may overlap, hence
        // copy) and shorten the vector without running their destructors.
        unsafe {
            std::ptr::copy(pkts.as_ptr().add(sent), pkts.as_mut_ptr(), rest);
            pkts.set_len(rest);
        }
        sent
    }
}

/// One rx/tx queue pair of a started [`Port`] shared with the port's other
/// queue pairs, for one thread. The port is stopped and closed when the last
/// `QueuePair` goes.
///
/// Made only by [`QueuePair::split`], one per queue, so each holds the only
/// right to burst on its queue; the port itself is then reachable only as
/// `&Port` (counters, link, MAC), never to burst on. `Send`: DPDK allows
/// bursts on different queues of one port from different threads at once,
/// and mbufs travel between threads (see [`Mempool`]).
#[derive(Debug)]
pub struct QueuePair {
    port: Arc<Port>,
    queue: u16,
}

impl QueuePair {
    /// One queue pair per queue of `port`, queue `k` at index `k`.
    pub fn split(port: Port) -> Vec<QueuePair> {
        let port = Arc::new(port);
        (0..port.queues)
            .map(|queue| QueuePair {
                port: Arc::clone(&port),
                queue,
            })
            .collect()
    }

    /// The port, shared with the other queue pairs.
    pub fn port(&self) -> &Port {
        &self.port
    }

    /// The queue number, for rx and tx.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The port back, if no other queue pair of it is left; otherwise
    /// `self`.
    pub fn into_port(self) -> Result<Port, QueuePair> {
        let queue = self.queue;
        Arc::try_unwrap(self.port).map_err(|port| QueuePair { port, queue })
    }

    /// Receives up to `max` (at most [`MAX_BURST`]) frames from this queue.
    pub fn rx_burst(&mut self, max: usize) -> RxBurst {
        // SAFETY: split made one QueuePair per queue and moved the port into
        // the Arc, so this QueuePair, borrowed mutably, is the queue's only
        // user; queue < queues by construction.
        unsafe { self.port.rx_burst_on(self.queue, max) }
    }

    /// Hands the frames at the front of `pkts` to this queue; as
    /// [`Port::tx_burst`].
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, prepare: bool) -> usize {
        // SAFETY: as for rx_burst.
        unsafe { self.port.tx_burst_on(self.queue, pkts, prepare) }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if self.started {
            // SAFETY: we own the started port; nobody uses its queues any
            // more (&mut self).
            let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            if ret != 0 {
                tracing::warn!(port = self.id, ret, "rte_eth_dev_stop failed");
            }
        }
        // SAFETY: we own the port; closing releases its queues (and the mbufs
        // they hold) before the pool handle in self is dropped.
        let ret = unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
        if ret != 0 {
            tracing::warn!(port = self.id, ret, "rte_eth_dev_close failed");
            return;
        }
        // The device is gone: whatever it did not give back is out of the
        // pools for good (net_af_xdp keeps its fill queues' mbufs).
        for pool in &self.pools {
            let in_use = pool.in_use();
            if in_use != 0 {
                tracing::debug!(port = %self.name, pool = pool.name(), in_use, "port closed with mbufs out");
                pool.note_closed_device(in_use);
            }
        }
    }
}

/// The name of port `id`, or an empty string if DPDK does not know it.
fn port_name(id: u16) -> String {
    let mut buf = [0 as c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, the size DPDK writes at
    // most, NUL included.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return String::new();
    }
    // SAFETY: on success DPDK wrote a NUL-terminated name into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// Frames from one [`Port::rx_burst`], yielded as owned [`Mbuf`]s; those not
/// taken are freed on drop.
#[derive(Debug)]
pub struct RxBurst {
    pkts: [*mut rte_mbuf; MAX_BURST],
    len: usize,
    next: usize,
}

impl Iterator for RxBurst {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.len {
            return None;
        }
        let p = self.pkts[self.next];
        self.next += 1;
        // SAFETY: entries below len are mbufs rx_burst gave us, each taken
        // out exactly once (next only grows).
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for RxBurst {}

impl Drop for RxBurst {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

// Queue pairs go to other threads and share the port through an Arc: both
// must stay Send and Sync (Port is, from its fields; QueuePair from Arc).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Port>();
    send_sync::<QueuePair>();
};
