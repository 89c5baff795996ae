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
//! Ports can also be named at init (`EalConfig::vdev`, then
//! [`Eal::port_by_name`]) or hot-plugged later ([`Eal::probe_vdev`]); any PMD
//! works: `net_af_packet`, `net_af_xdp`, `net_tap`, `net_memif`, PCI NICs.
//!
//! Things to know:
//!
//! - The EAL initialises once per process; a second [`Eal::init`] returns
//!   [`Error::AlreadyInitialized`]. Tests share one EAL per test binary.
//! - Without hugepages use [`EalConfig::no_huge`]: `--no-huge` with
//!   `--no-shconf` and a per-process `--file-prefix` (this EAL refuses
//!   `--in-memory` with `--no-huge`), and one lcore that floats over all
//!   CPUs, since the EAL pins the thread that calls `rte_eal_init` to its
//!   main lcore's CPUs.
//! - Size pools for the PMD: `net_af_xdp` puts 2048 mbufs in its fill queue
//!   at set-up, so give it at least 4095 (the tests use 8191). DPDK 22.11's
//!   `net_af_xdp` does not give those back when the port is closed: the
//!   pool is then leaked when it goes (quietly, as the port noted them).
//! - libxdp's and libbpf's messages (`net_af_xdp` loads both) go to the
//!   debug log, target `bpf`, not to stderr.
//! - Poll-mode drivers are loaded with `-d` from the paths `dpdk-sys` found
//!   at build time; see `dpdk_sys`'s crate docs for why.
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
pub mod testbed;

pub use error::{Errno, Error};
pub use nic::{DpdkNic, NicCounters};
pub use port::{Link, PortConfig, PortStats};
pub use sys::eal::{Eal, EalConfig};
pub use sys::ethdev::{Port, PortId, RxBurst, MAX_BURST};
pub use sys::mbuf::Mbuf;
pub use sys::mempool::Mempool;
