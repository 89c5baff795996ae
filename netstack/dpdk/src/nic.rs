//! A DPDK port's queue pair as the stack's [`Nic`].
//!
//! A one-queue port makes one [`DpdkNic`] ([`DpdkNic::new`]); a port with
//! several queue pairs makes one per queue pair ([`DpdkNic::split`]), each
//! `Send`, for one stack instance per thread.
//!
//! Receive lends each mbuf's bytes to the stack's callback and frees the
//! mbuf after it; transmit allocates an mbuf, lets the stack write the frame
//! in place, sets checksum-offload flags, and queues it; flush hands the
//! queue to the device and frees (and counts) what it did not take.

use joyride_netstack::nic::{Capabilities, L4Proto, Nic, RxMeta, TxFull, TxMeta};

use crate::sys::ethdev::{Port, QueuePair};
use crate::sys::mbuf::Mbuf;
use crate::sys::mempool::Mempool;

/// What the data path dropped or could not do, by reason. Plain counters:
/// the data path never allocates or formats. One set per [`DpdkNic`], so per
/// queue pair; the port's own counters ([`Port::stats`]) cover all queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Received frames dropped because they spanned several mbufs (the
    /// stack only takes contiguous frames).
    pub rx_multi_segment: u64,
    /// Frames the device took on flush.
    pub tx_frames: u64,
    /// Queued frames the device did not take on flush, freed.
    pub tx_dropped: u64,
    /// Transmit refused because the pool had no mbuf.
    pub tx_no_mbuf: u64,
    /// Transmit refused because the frame does not fit in one mbuf.
    pub tx_too_big: u64,
    /// Checksum offload asked for but not enabled on the port; the frame went
    /// out without it (the stack should have looked at the capabilities).
    pub tx_offload_unsupported: u64,
}

/// One queue pair of a started [`Port`] driven through the [`Nic`] trait:
/// receives on rx queue [`DpdkNic::queue`], transmits on the tx queue of
/// the same number, taking transmit buffers from that rx queue's pool.
///
/// `Send`, so that each queue pair of a port can run in its own thread; the
/// port is shared by the port's `DpdkNic`s and stopped and closed when the
/// last one goes.
#[derive(Debug)]
pub struct DpdkNic {
    // Declared before `queue`: queued frames are freed before the port (and
    // maybe the last handle on their pool) goes.
    queued: Vec<Mbuf>,
    queue: QueuePair,
    /// Where transmit buffers come from: the pool of this rx queue.
    pool: Mempool,
    caps: Capabilities,
    prepare: bool,
    counters: NicCounters,
}

impl DpdkNic {
    /// Wraps a started port, driving its queue pair 0. Meant for one-queue
    /// ports; on a port with more queue pairs the others are left idle
    /// (whatever the device steers to them waits there): use
    /// [`DpdkNic::split`].
    pub fn new(port: Port) -> Self {
        if port.queues() > 1 {
            tracing::warn!(
                port = port.name(),
                queues = port.queues(),
                "DpdkNic::new drives queue 0 only; use split"
            );
        }
        let mut queues = QueuePair::split(port);
        queues.truncate(1);
        Self::on(queues.pop().expect("a started port has at least one queue pair"))
    }

    /// One `DpdkNic` per queue pair of `port`, queue `k` at index `k`; each
    /// drives only its own queue pair and may move to its own thread.
    pub fn split(port: Port) -> Vec<DpdkNic> {
        QueuePair::split(port).into_iter().map(Self::on).collect()
    }

    /// A `DpdkNic` on one queue pair.
    fn on(queue: QueuePair) -> Self {
        let caps = queue.port().capabilities();
        let pool = queue.port().queue_pool(queue.queue()).clone();
        Self {
            queued: Vec::with_capacity(caps.max_burst),
            queue,
            pool,
            caps,
            prepare: false,
            counters: NicCounters::default(),
        }
    }

    /// The port (shared with the port's other `DpdkNic`s; its counters and
    /// link are port-wide).
    pub fn port(&self) -> &Port {
        self.queue.port()
    }

    /// The queue pair this `DpdkNic` drives (rx and tx queue number).
    pub fn queue(&self) -> u16 {
        self.queue.queue()
    }

    /// Gives the port back, freeing frames still queued.
    ///
    /// # Panics
    ///
    /// If other `DpdkNic`s of the same port (from [`DpdkNic::split`]) are
    /// still alive; see [`DpdkNic::try_into_port`].
    pub fn into_port(self) -> Port {
        self.try_into_port()
            .unwrap_or_else(|_| panic!("DpdkNic::into_port while other queue pairs of the port are alive"))
    }

    /// Gives the port back if this is the port's last `DpdkNic`; otherwise
    /// gives `self` back (boxed: it is large for an error). Frames still
    /// queued are freed either way.
    pub fn try_into_port(mut self) -> Result<Port, Box<DpdkNic>> {
        self.queued.clear();
        self.prepare = false;
        let DpdkNic {
            queued,
            queue,
            pool,
            caps,
            prepare,
            counters,
        } = self;
        queue.into_port().map_err(|queue| {
            Box::new(DpdkNic {
                queued,
                queue,
                pool,
                caps,
                prepare,
                counters,
            })
        })
    }

    /// The data path's counters (this queue pair's).
    pub fn counters(&self) -> NicCounters {
        self.counters
    }

    /// Frames queued and not yet flushed.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// The `ol_flags` for a frame, counting requests the port cannot honour.
    fn offload_flags(&mut self, frame: &[u8], meta: &TxMeta) -> u64 {
        let csum = self.caps.checksum;
        let mut flags = 0;
        if meta.ipv4_csum {
            if csum.ipv4_tx {
                flags |= dpdk_sys::JR_MBUF_F_TX_IPV4 | dpdk_sys::JR_MBUF_F_TX_IP_CKSUM;
            } else {
                self.counters.tx_offload_unsupported += 1;
            }
        }
        if let Some(proto) = meta.l4_csum {
            if csum.l4_tx {
                flags |= match proto {
                    L4Proto::Tcp => dpdk_sys::JR_MBUF_F_TX_TCP_CKSUM,
                    L4Proto::Udp => dpdk_sys::JR_MBUF_F_TX_UDP_CKSUM,
                };
                if flags & dpdk_sys::JR_MBUF_F_TX_IPV4 == 0 {
                    // The IP version decides how the device finds the
                    // pseudo-header; it is the first nibble of the IP header.
                    let version = frame.get(usize::from(meta.l2_len)).map(|b| b >> 4);
                    flags |= if version == Some(6) {
                        dpdk_sys::JR_MBUF_F_TX_IPV6
                    } else {
                        dpdk_sys::JR_MBUF_F_TX_IPV4
                    };
                }
            } else {
                self.counters.tx_offload_unsupported += 1;
            }
        }
        flags
    }
}

impl Nic for DpdkNic {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn mac(&self) -> [u8; 6] {
        self.queue.port().mac()
    }

    fn receive<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, mut f: F) -> usize {
        let csum = self.caps.checksum;
        let mut delivered = 0;
        for mbuf in self.queue.rx_burst(max) {
            if mbuf.segments() != 1 {
                self.counters.rx_multi_segment += 1;
                continue;
            }
            let flags = mbuf.ol_flags();
            let meta = RxMeta {
                ipv4_csum_good: csum.ipv4_rx
                    && flags & dpdk_sys::JR_MBUF_F_RX_IP_CKSUM_MASK == dpdk_sys::JR_MBUF_F_RX_IP_CKSUM_GOOD,
                l4_csum_good: csum.l4_rx
                    && flags & dpdk_sys::JR_MBUF_F_RX_L4_CKSUM_MASK == dpdk_sys::JR_MBUF_F_RX_L4_CKSUM_GOOD,
            };
            f(mbuf.data(), meta);
            delivered += 1;
        }
        self.counters.rx_frames += delivered as u64;
        delivered
    }

    fn transmit<F: FnOnce(&mut [u8]) -> TxMeta>(&mut self, len: usize, f: F) -> Result<(), TxFull> {
        if self.queued.len() >= self.caps.max_burst {
            self.flush();
        }
        let Some(mut mbuf) = self.pool.alloc() else {
            self.counters.tx_no_mbuf += 1;
            return Err(TxFull);
        };
        let Some(buf) = mbuf.append(len) else {
            self.counters.tx_too_big += 1;
            return Err(TxFull);
        };
        let meta = f(buf);
        let flags = self.offload_flags(mbuf.data(), &meta);
        if flags != 0 {
            mbuf.set_ol_flags(flags);
            mbuf.set_tx_lens(meta.l2_len, meta.l3_len);
            self.prepare = true;
        }
        self.queued.push(mbuf);
        Ok(())
    }

    fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let sent = self.queue.tx_burst(&mut self.queued, self.prepare);
        self.counters.tx_frames += sent as u64;
        self.counters.tx_dropped += self.queued.len() as u64;
        self.queued.clear();
        self.prepare = false;
    }
}
