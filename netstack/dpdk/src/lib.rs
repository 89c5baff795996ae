//! Safe wrapper over the system's DPDK (through `dpdk-sys`).
//!
//! - [`Eal`]: the Environment Abstraction Layer, initialised once per process
//!   from an argument list ([`EalConfig`]); a token that proves it is up.
//! - [`Mempool`]: a pool of packet buffers; [`Mbuf`]: one buffer, move-only,
//!   freed on `Drop`, handed to DPDK on transmit.
//! - [`Port`]: an ethdev port configured with one rx and one tx queue:
//!   MAC address, link status, statistics, offload capabilities, bursts.
//! - [`DpdkNic`]: a port as a [`joyride_netstack::nic::Nic`].
//!
//! ```no_run
//! use joyride_dpdk::{DpdkNic, Eal, EalConfig, Mempool, Port, PortConfig};
//! use joyride_netstack::nic::Nic;
//!
//! let eal = Eal::init(&EalConfig::no_huge("joyride-0", 128).vdev("net_af_packet0,iface=veth0"))?;
//! let pool = Mempool::new(&eal, "rx0", 4095, 256, Mempool::DEFAULT_DATA_ROOM)?;
//! let port = Port::start(&eal, eal.port_by_name("net_af_packet0")?, pool, &PortConfig::default())?;
//! let mut nic = DpdkNic::new(port);
//! nic.receive(32, |frame, _meta| println!("{} bytes", frame.len()));
//! # Ok::<(), joyride_dpdk::Error>(())
//! ```
//!
//! All `unsafe` code lives in the `sys` module; everything else is safe code
//! over the types it exports.
//!
//! Not for: parsing packets or anything above Ethernet framing.
#![deny(unsafe_code)]

mod error;
mod nic;
mod port;
mod sys;

pub use error::{Errno, Error};
pub use nic::{DpdkNic, NicCounters};
pub use port::{Link, PortConfig, PortStats};
pub use sys::eal::{Eal, EalConfig};
pub use sys::ethdev::{Port, PortId, RxBurst, MAX_BURST};
pub use sys::mbuf::Mbuf;
pub use sys::mempool::Mempool;
