//! A started ethdev port with one receive and one transmit queue.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;
use joyride_netstack::nic::{Capabilities, ChecksumCaps};

use crate::error::{Errno, Error};
use crate::port::{Link, PortConfig, PortStats};
use crate::sys::eal::Eal;
use crate::sys::mbuf::Mbuf;
use crate::sys::mempool::Mempool;

/// Largest burst [`Port::rx_burst`] returns.
pub const MAX_BURST: usize = 64;

/// Queue used for both directions (ports have exactly one of each).
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

/// A configured and started port that we own: one receive and one transmit
/// queue, receiving into `pool`. Stopped and closed on drop.
///
/// Ownership is registered with DPDK (`rte_eth_dev_owner_set`), so a second
/// `Port` on the same device, which would race on the queues, fails.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    pool: Mempool,
    burst: usize,
    mtu: u16,
    rx_offloads: u64,
    tx_offloads: u64,
    started: bool,
}

impl Port {
    /// Takes port `id`, configures one rx and one tx queue as `config`
    /// says, receiving into `pool`, and starts it.
    pub fn start(_eal: &Eal, id: PortId, pool: Mempool, config: &PortConfig) -> Result<Port, Error> {
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
            pool,
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
        let mut conf = dpdk_sys::rte_eth_conf::default();
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
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(id, 1, 1, &conf) };
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
        // SAFETY: valid, configured port and queue 0; a NULL rxconf means
        // the driver's defaults; the pool outlives the queue because the
        // Port holds a handle to it and closes the device before dropping it.
        let ret = unsafe {
            dpdk_sys::rte_eth_rx_queue_setup(id, QUEUE, rx_desc, socket, std::ptr::null(), port.pool.as_ptr())
        };
        if ret != 0 {
            return Err(err("rte_eth_rx_queue_setup", ret));
        }
        // SAFETY: valid, configured port and queue 0; NULL txconf means the
        // driver's defaults (offloads come from the port configuration).
        let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, QUEUE, tx_desc, socket, std::ptr::null()) };
        if ret != 0 {
            return Err(err("rte_eth_tx_queue_setup", ret));
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
        tracing::debug!(port = id, name = %port.name, rx_desc, tx_desc, mtu = port.mtu,
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

    /// The pool receive buffers come from; also used for transmit buffers.
    pub fn pool(&self) -> &Mempool {
        &self.pool
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

    /// Receives up to `max` (at most [`MAX_BURST`]) frames.
    pub fn rx_burst(&mut self, max: usize) -> RxBurst {
        let mut burst = RxBurst {
            pkts: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
            next: 0,
        };
        let n = max.min(MAX_BURST) as u16;
        // SAFETY: the port is started with queue 0 set up, and &mut self
        // makes this the only user of the queue; pkts has room for n
        // pointers. The mbufs returned are ours (reference count 1).
        burst.len = usize::from(unsafe { dpdk_sys::jr_eth_rx_burst(self.id, QUEUE, burst.pkts.as_mut_ptr(), n) });
        burst
    }

    /// Hands the frames at the front of `pkts` to the device; returns how
    /// many it took. Those leave `pkts` (DPDK owns and frees them now); the
    /// rest stay, in order, for the caller to retry or drop.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, prepare: bool) -> usize {
        let n = pkts.len().min(usize::from(u16::MAX)) as u16;
        if n == 0 {
            return 0;
        }
        let raw = pkts.as_mut_ptr().cast::<*mut rte_mbuf>();
        let mut ready = n;
        if prepare {
            // SAFETY: the port is started, &mut self makes us the queue's
            // only user, and raw holds n valid mbufs (Mbuf is a transparent
            // NonNull<rte_mbuf>). Prepare only fixes up headers in place.
            ready = unsafe { dpdk_sys::jr_eth_tx_prepare(self.id, QUEUE, raw, n) };
        }
        // SAFETY: as above; tx_burst takes ownership of the first `sent`.
        let sent = usize::from(unsafe { dpdk_sys::jr_eth_tx_burst(self.id, QUEUE, raw, ready) });
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
        // pool for good (net_af_xdp keeps its fill queue's mbufs).
        let in_use = self.pool.in_use();
        if in_use != 0 {
            tracing::debug!(port = %self.name, pool = self.pool.name(), in_use, "port closed with mbufs out");
            self.pool.note_closed_device(in_use);
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
