//! Safe wrapper over the system's DPDK (through `dpdk-sys`).
//!
//! - [`Eal`]: the Environment Abstraction Layer, initialised once per process
//!   from an argument list ([`EalConfig`]); a token that proves it is up.
//! - [`Mempool`]: a pool of packet buffers; [`Mbuf`]: one buffer, move-only,
//!   freed on `Drop`, handed to DPDK on transmit.
//! - [`Port`]: an ethdev port configured with one or more rx/tx queue pairs
//!   ([`PortConfig::queues`]): MAC address, link status, statistics, offload
//!   capabilities, bursts on queue 0.
//! - [`QueuePair`]: one queue pair of a port shared by several threads.
//! - [`DpdkNic`]: a port's queue pair as a [`joyride_netstack::nic::Nic`];
//!   [`DpdkNic::split`] makes one per queue pair, each `Send`, for one stack
//!   instance per core.
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
//! Several queue pairs, one thread each:
//!
//! ```no_run
//! use joyride_dpdk::{DpdkNic, Eal, EalConfig, Mempool, Port, PortConfig};
//! use joyride_netstack::nic::Nic;
//!
//! let eal = Eal::init(&EalConfig::no_huge("joyride-0", 256).vdev("net_af_packet0,iface=veth0,qpairs=2"))?;
//! let pool = Mempool::new(&eal, "rx0", 8191, 256, Mempool::DEFAULT_DATA_ROOM)?;
//! let config = PortConfig { queues: 2, ..PortConfig::default() };
//! let port = Port::start(&eal, eal.port_by_name("net_af_packet0")?, pool, &config)?;
//! let threads: Vec<_> = DpdkNic::split(port)
//!     .into_iter()
//!     .map(|mut nic| std::thread::spawn(move || nic.receive(32, |_frame, _meta| {})))
//!     .collect();
//! # Ok::<(), joyride_dpdk::Error>(())
//! ```
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
//! - Multi-queue ports: the device must have the queues
//!   ([`Error::TooManyQueues`] names its limits). `net_af_packet` has as
//!   many as its `qpairs` devarg and spreads received flows over its
//!   sockets by the kernel's flow hash (packet fanout); `net_af_xdp` has
//!   `queue_count` (from `start_queue`) and queue `k` receives what the
//!   kernel puts on the interface's rx queue `start_queue + k`. Neither
//!   offers RSS, so none is configured; on devices that offer it, RSS is
//!   enabled on the IP, UDP and TCP hash types they support
//!   ([`Port::rss_hash_types`]).
//! - Pools for several queues: one shared pool ([`Port::start`]) works for
//!   every PMD we use, `net_af_xdp` included (each rx queue makes its own
//!   UMEM over the pool and puts 2048 mbufs in its fill queue, so size the
//!   pool for 2048 per queue plus the rings and the frames in flight). One
//!   pool per rx queue ([`Port::start_multi`]) is optional: it keeps the
//!   cores off each other's pool ring, and queue pair `k`'s [`DpdkNic`]
//!   transmits from pool `k`. `net_af_xdp`'s `shared_umem=1` devarg is not
//!   available in this DPDK build (it needs libbpf's shared-UMEM socket
//!   call) and is not needed.
//! - `net_af_xdp` on a veth: DPDK 22.11 limits `queue_count` to the
//!   interface's combined channels and takes a veth (separate rx/tx
//!   channels, no combined ones) for one queue, so a veth with several
//!   queues (`ip link add ... numrxqueues N numtxqueues N type veth peer
//!   ... numrxqueues N numtxqueues N`, both ends) refuses `queue_count=2`
//!   at probe. Use one one-queue port per veth queue instead
//!   (`start_queue=k,queue_count=1`, each with [`DpdkNic::new`], which may
//!   share one pool): the kernel puts each flow on one veth queue (the
//!   sender's tx queue by flow hash becomes the veth's rx queue). Native
//!   XDP on a multi-queue veth needs nothing more than on a one-queue one
//!   (kernel 6.18: no GRO, the peer up and with no more tx queues than the
//!   veth has rx queues, as `Veth::with_queues` makes them).
//! - Threads: bursts on different queues of one port may run in different
//!   threads at once; mbufs may be allocated and freed from any thread,
//!   EAL lcore or not (threads without an lcore id bypass the per-lcore
//!   caches and use the pool's multi-producer/multi-consumer ring). The
//!   port-wide calls ([`Port::stats`], [`Port::link`], [`Port::mac`]) may
//!   be made from any of the threads.
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
pub use sys::ethdev::{Port, PortId, QueuePair, RxBurst, MAX_BURST};
pub use sys::mbuf::Mbuf;
pub use sys::mempool::Mempool;
