//! Errors of the control path: EAL, mempool and port set-up.
//!
//! The data path never returns these; it counts instead (see
//! [`crate::NicCounters`]).

use std::fmt;

/// A DPDK error number (`rte_errno` or a negative return value, made
/// positive). Displays with DPDK's own message (`rte_strerror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", crate::sys::strerror(self.0), self.0)
    }
}

/// What went wrong setting up DPDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `rte_eal_init` already ran in this process; DPDK allows it once.
    #[error("the DPDK EAL is already initialised in this process (it can be initialised only once)")]
    AlreadyInitialized,
    /// An EAL argument cannot be passed to C.
    #[error("EAL argument {arg:?} contains a NUL byte")]
    NulInArgument {
        /// The offending argument.
        arg: String,
    },
    /// `rte_eal_init` failed.
    #[error("rte_eal_init with arguments {args:?} failed: {errno}")]
    EalInit {
        /// The arguments passed, program name first.
        args: Vec<String>,
        /// Why.
        errno: Errno,
    },
    /// A mempool could not be created.
    #[error("creating mempool {name:?} ({size} mbufs, {data_room} bytes each) failed: {errno}")]
    MempoolCreate {
        /// Pool name.
        name: String,
        /// Number of mbufs asked for.
        size: u32,
        /// Data room per mbuf.
        data_room: u16,
        /// Why.
        errno: Errno,
    },
    /// Hot-plugging a device (`rte_dev_probe`) failed.
    #[error("probing device {devargs:?} failed: {errno}")]
    Probe {
        /// The device arguments, e.g. `net_tap0,iface=jr0`.
        devargs: String,
        /// Why.
        errno: Errno,
    },
    /// No ethdev port has this name.
    #[error("no DPDK port named {name:?}")]
    NoSuchPort {
        /// The name looked up, e.g. `net_af_packet0`.
        name: String,
    },
    /// An ethdev operation on a port failed.
    #[error("{op} on DPDK port {port} failed: {errno}")]
    Port {
        /// Port id.
        port: u16,
        /// The DPDK function that failed.
        op: &'static str,
        /// Why.
        errno: Errno,
    },
    /// More queue pairs were asked for than the device has
    /// (`rte_eth_dev_info.max_rx_queues`/`max_tx_queues`). For `net_af_packet`
    /// the limit is its `qpairs` devarg, for `net_af_xdp` its `queue_count`.
    #[error(
        "DPDK port {port} ({name}) cannot have {queues} queue pairs: the device allows at most {max_rx} rx and \
         {max_tx} tx queues (for net_af_packet raise the qpairs devarg, for net_af_xdp queue_count)"
    )]
    TooManyQueues {
        /// Port id.
        port: u16,
        /// Device name.
        name: String,
        /// Queue pairs asked for ([`crate::PortConfig::queues`]).
        queues: u16,
        /// The device's `max_rx_queues`.
        max_rx: u16,
        /// The device's `max_tx_queues`.
        max_tx: u16,
    },
    /// The port configuration cannot be applied.
    #[error("invalid port configuration for port {port}: {why}")]
    Config {
        /// Port id.
        port: u16,
        /// What is wrong.
        why: &'static str,
    },
}
