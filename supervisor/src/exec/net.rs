//! The stack's network: a NIC named by DPDK device arguments, or the
//! embedded default veth pair.
//!
//! With `--nic DEVARGS` the device is hot-plugged into a no-hugepage EAL and
//! the stack gets the addresses given with `--ip`. Without it, a veth pair
//! `joyrideN` / `joyrideN-s` is created (the first free N in 0..=255): the
//! kernel holds 10.77.N.1/24 and fd77:N::1/64 on `joyrideN`, DPDK drives
//! `joyrideN-s`, and the stack sits on 10.77.N.2/24 and fd77:N::2/64 with
//! the kernel's end as its gateways. The pair is deleted when the
//! [`Network`] is dropped.
//!
//! The embedded pair's port is `net_af_xdp` (an AF_XDP socket fed by an XDP
//! program on `joyrideN-s`; on a veth the kernel runs it natively, in copy
//! mode), which loses far fewer frames under load than `net_af_packet`.
//! If it cannot start (no `CONFIG_XDP_SOCKETS`, no `net_af_xdp` PMD, an MTU
//! beyond [`AF_XDP_MAX_FRAME`], ...) the port is `net_af_packet` instead;
//! the reason is logged at debug level, and the port's name in
//! [`Network::describe`] says which one runs.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{anyhow, bail, Context as _, Result};
use joyride_dpdk::{DpdkNic, Eal, EalConfig, Mempool, Port, PortConfig};
use joyride_netstack::iface::{Config, Ipv4Cidr, Ipv6Cidr};
use joyride_netstack::wire::EthernetAddress;

use super::wake::Doorbell;

/// Memory the EAL reserves without hugepages, MB: the mempool (16383 mbufs
/// of ~2.3 KB, about 40 MB) and DPDK's own structures, with room to spare.
const EAL_MEMORY_MB: u32 = 256;
/// Mbufs in the port's pool (best `2^n - 1`): both 4096-descriptor rings
/// full, plus frames the stack holds.
const POOL_MBUFS: u32 = 16383;
/// Per-lcore mbuf cache.
const POOL_CACHE: u32 = 256;
/// Receive and transmit ring sizes.
const RING_DESC: u16 = 4096;
/// `net_af_packet` settings added unless the user's device arguments have
/// them: 4096 frames of 2048 bytes (a 1500-byte MTU with room for the
/// packet headers), in 4096-byte blocks.
const AF_PACKET_DEFAULTS: [(&str, &str); 3] = [("framesz", "2048"), ("blocksz", "4096"), ("framecnt", "4096")];
/// Largest N of `joyrideN`.
const MAX_VETH_INDEX: u8 = 255;
/// Largest frame (Ethernet header included) `net_af_xdp` receives into our
/// mbufs: their 2048 bytes of data room after DPDK's headroom, less the
/// 256 bytes the kernel keeps in front of each frame for XDP
/// (`XDP_PACKET_HEADROOM`). The kernel drops longer frames silently (they
/// count as `dropped` on the interface), so an MTU above
/// `AF_XDP_MAX_FRAME - 14` takes `net_af_packet`.
const AF_XDP_MAX_FRAME: usize = 2048 - 256;
/// Ethernet header length, without VLAN tags.
const ETH_HEADER: usize = 14;

/// What the command line asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetOpts {
    /// DPDK device arguments of the NIC to drive; `None`: the embedded veth
    /// network.
    pub nic: Option<String>,
    /// Extra EAL arguments, appended to Joyride's.
    pub eal: Vec<String>,
    /// The stack's addresses, `ADDR/LEN`, at most one IPv4 and one IPv6.
    pub ip: Vec<String>,
    /// IPv4 default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// MTU of the stack's interface.
    pub mtu: Option<u16>,
    /// Queue pairs of the port, one per shard (0 counts as 1).
    pub queues: u16,
}

impl NetOpts {
    fn queues(&self) -> u16 {
        self.queues.max(1)
    }
}

/// Keeps the embedded veth pair until dropped (after the port).
#[derive(Debug)]
pub struct NetGuard {
    _veth: Option<VethPair>,
}

/// The network the stack runs on.
///
/// Keep it alive as long as `nic` is in use: for the embedded default,
/// dropping it deletes the veth pair the port is bound to. Fields drop in
/// declaration order, so the port is closed before the pair goes.
#[derive(Debug)]
pub struct Network {
    /// The started DPDK port.
    pub nic: DpdkNic,
    /// The stack's interface configuration: the port's MAC, the addresses,
    /// gateways and MTU, a random seed; everything else at its defaults.
    pub config: Config,
    /// The EAL the port lives in (it lives until the process exits).
    pub eal: Eal,
    /// The device arguments the port was probed with.
    devargs: String,
    /// The embedded veth pair, deleted on drop; `None` with `--nic`.
    veth: Option<VethPair>,
    /// The port's doorbell (a `net_af_packet` port's interface), opened
    /// before the port; `None`: the engine naps instead.
    pub doorbell: Option<Doorbell>,
    /// Queue pairs 1.. of a port with several, with their doorbells
    /// (`nic` and `doorbell` are queue 0's).
    pub more: Vec<(DpdkNic, Option<Doorbell>)>,
}

impl Network {
    /// One line for logs: device, MAC, addresses (and the kernel's end of
    /// the embedded network).
    pub fn describe(&self) -> String {
        let port = self.nic.port();
        let mut s = format!("DPDK port {} ({})", port.name(), self.devargs);
        if !self.more.is_empty() {
            let _ = write!(s, ", {} queue pairs", self.more.len() + 1);
        }
        let _ = write!(s, ", MAC {}", mac_str(port.mac()));
        let _ = write!(s, ", stack");
        if let Some(v4) = self.config.ipv4 {
            let _ = write!(s, " {}/{}", v4.addr, v4.prefix_len);
            if let Some(gw) = self.config.ipv4_gateway {
                let _ = write!(s, " via {gw}");
            }
        }
        for v6 in &self.config.ipv6 {
            let _ = write!(s, " {}/{}", v6.addr, v6.prefix_len);
        }
        if let Some(gw) = self.config.ipv6_gateway {
            let _ = write!(s, " via {gw}");
        }
        let _ = write!(s, ", MTU {}", self.config.mtu);
        if let Some(veth) = &self.veth {
            let v4 = veth.host_v4;
            let _ = write!(s, "; kernel end {} {}/{}", veth.host, v4.addr, v4.prefix_len);
            if let Some(v6) = veth.host_v6 {
                let _ = write!(s, " {}/{}", v6.addr, v6.prefix_len);
            }
        }
        s
    }

    /// The port, the stack's configuration, and what must outlive the port
    /// (drop the port first).
    pub fn into_parts(self) -> (Vec<(DpdkNic, Option<Doorbell>)>, Config, NetGuard) {
        let mut queues = vec![(self.nic, self.doorbell)];
        queues.extend(self.more);
        (queues, self.config, NetGuard { _veth: self.veth })
    }

    /// The kernel's end of the embedded veth pair (`joyrideN`), if that is
    /// the network.
    pub fn kernel_ifname(&self) -> Option<&str> {
        self.veth.as_ref().map(|v| v.host.as_str())
    }

    /// The interface DPDK drives on the embedded network (`joyrideN-s`).
    pub fn stack_ifname(&self) -> Option<&str> {
        self.veth.as_ref().map(|v| v.peer.as_str())
    }
}

/// Brings the network up: initialises the EAL (once per process; a second
/// call fails), then [`bring_up_with`].
pub fn bring_up(opts: &NetOpts) -> Result<Network> {
    // Bad options are reported before anything is set up.
    check_opts(opts)?;
    let eal = init_eal(opts)?;
    bring_up_with(&eal, opts)
}

/// The EAL for `opts`: no hugepages, a file prefix of our own, the user's
/// extra arguments last.
fn init_eal(opts: &NetOpts) -> Result<Eal> {
    let prefix = format!("joyride-{}", std::process::id());
    let eal = Eal::init(&eal_config(&prefix, EAL_MEMORY_MB, &opts.eal)).context("DPDK could not initialise its EAL")?;
    remove_runtime_dir(&prefix);
    Ok(eal)
}

/// EAL arguments: no hugepages (`memory_mb` for the port's pool), file
/// prefix `prefix`, DPDK's informational messages off, then `extra`.
fn eal_config(prefix: &str, memory_mb: u32, extra: &[String]) -> EalConfig {
    let mut config = EalConfig::no_huge(prefix, memory_mb);
    config.args.push("--log-level=warning".to_owned());
    config.args.extend(extra.iter().cloned());
    config
}

/// Removes the EAL's runtime directory if it is empty, as it is with
/// `--no-shconf` (no shared files, no multi-process socket): otherwise every
/// run would leave a `/var/run/dpdk/joyride-<pid>` behind.
fn remove_runtime_dir(prefix: &str) {
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !rustix::process::geteuid().is_root() => Path::new(&dir).join("dpdk"),
        _ => Path::new("/var/run/dpdk").to_path_buf(),
    };
    // Fails harmlessly if DPDK put something there.
    let _ = std::fs::remove_dir(base.join(prefix));
}

/// The options' errors that need no device: the addresses, the MTU, and
/// for `--nic`, that the stack has an address and the gateways a family.
/// Returns the `--ip` addresses.
fn check_opts(opts: &NetOpts) -> Result<(Option<Ipv4Cidr>, Option<Ipv6Cidr>)> {
    let (ipv4, ipv6) = parse_addrs(&opts.ip)?;
    if let Some(mtu) = opts.mtu.filter(|&m| m < 68) {
        bail!("--mtu {mtu} is too small (IPv4 needs at least 68)");
    }
    if let Some(devargs) = &opts.nic {
        if ipv4.is_none() && ipv6.is_none() {
            bail!("--nic {devargs} needs the stack's address: give --ip ADDR/LEN (IPv4 and/or IPv6)");
        }
        nic_addrs(ipv4, ipv6, opts).check()?;
    }
    Ok((ipv4, ipv6))
}

/// The stack's addresses with `--nic`: exactly what the options say.
fn nic_addrs(ipv4: Option<Ipv4Cidr>, ipv6: Option<Ipv6Cidr>, opts: &NetOpts) -> Addrs {
    Addrs {
        ipv4,
        ipv4_gateway: opts.gateway,
        ipv6,
        ipv6_gateway: opts.gateway6,
    }
}

/// Brings the network up on an initialised EAL.
pub fn bring_up_with(eal: &Eal, opts: &NetOpts) -> Result<Network> {
    let (ipv4, ipv6) = check_opts(opts)?;
    let q = opts.queues();
    let (addrs, port, veth) = match &opts.nic {
        Some(devargs) => {
            let port = start_ports(eal, &nic_devargs(devargs, q), opts.mtu, q)?;
            (nic_addrs(ipv4, ipv6, opts), port, None)
        }
        None => {
            let veth = VethPair::create(opts.mtu, q)?;
            let addrs = embedded_addrs(&veth, ipv4, ipv6, opts);
            addrs.check()?;
            let port = start_embedded_port(eal, &veth, opts.mtu, q)?;
            (addrs, port, Some(veth))
        }
    };
    let (nics, devargs, doorbells) = port;
    let mut doorbells = doorbells.unwrap_or_default().into_iter();
    let mut queues = nics.into_iter().map(|nic| (nic, doorbells.next()));
    let (nic, doorbell) = queues.next().context("the port has no queue")?;
    let more = queues.collect();
    let config = stack_config(&nic, &addrs, opts.mtu)?;
    Ok(Network {
        nic,
        config,
        eal: *eal,
        devargs,
        veth,
        doorbell,
        more,
    })
}

/// Queue pairs of a port, its device arguments, and the doorbells (one
/// per queue, or none).
type Queues = (Vec<DpdkNic>, String, Option<Vec<Doorbell>>);

/// Starts the port of `devargs` with `queues` queue pairs, with their
/// doorbells.
fn start_ports(eal: &Eal, devargs: &str, mtu: Option<u16>, queues: u16) -> Result<Queues> {
    let doorbells = open_doorbells(devargs, queues);
    let before = Doorbell::xsk_fds();
    let nics = start_port(eal, devargs, mtu, queues)?;
    let doorbells = doorbells.or_else(|| xsk_doorbells(devargs, &before, queues));
    Ok((nics, devargs.to_owned(), doorbells))
}

/// Whether `devargs` name a `net_af_xdp` device.
fn is_af_xdp(devargs: &str) -> bool {
    let name = devargs.split(',').next().unwrap_or(devargs);
    name.starts_with("net_af_xdp") || name.starts_with("eth_af_xdp")
}

/// The embedded pair's port on `veth.peer`, its device arguments and its
/// doorbell: `net_af_xdp` if it starts, else `net_af_packet` (see the
/// module docs). An error is `net_af_packet`'s.
fn start_embedded_port(eal: &Eal, veth: &VethPair, mtu: Option<u16>, queues: u16) -> Result<Queues> {
    let af_xdp = match af_xdp_refusal(mtu) {
        Some(why) => Err(why),
        // DPDK 22.11 counts an interface's queues by its combined channels,
        // which a veth has none of: one queue at most. (One single-queue
        // port per veth queue starts, but each stalled after about 3,700
        // frames in our runs.)
        None if queues > 1 => Err(format!("{queues} queues: it drives one queue of a veth")),
        None => Ok(format!(
            "{},iface={},start_queue=0,queue_count=1",
            unique_name(&format!("net_af_xdp_{}", veth.host)),
            veth.peer
        )),
    };
    start_embedded_port_with(eal, veth, mtu, af_xdp, queues)
}

/// [`start_embedded_port`] with the `net_af_xdp` device arguments to try,
/// or why there are none.
fn start_embedded_port_with(
    eal: &Eal,
    veth: &VethPair,
    mtu: Option<u16>,
    af_xdp: Result<String, String>,
    queues: u16,
) -> Result<Queues> {
    let why = match af_xdp {
        Err(why) => why,
        Ok(devargs) => match start_ports(eal, &devargs, mtu, queues) {
            Ok(port) => {
                tracing::debug!(
                    port = port.0[0].port().name(),
                    iface = veth.peer,
                    "embedded port: net_af_xdp"
                );
                return Ok(port);
            }
            Err(e) => format!("{e:#}"),
        },
    };
    tracing::debug!(iface = veth.peer, "not net_af_xdp: {why}; the port is net_af_packet");
    let devargs = af_packet_devargs(&format!("net_af_packet_{}", veth.host), &veth.peer, queues);
    let port = start_ports(eal, &devargs, mtu, queues)
        .with_context(|| format!("no port for the embedded network (net_af_xdp: {why}; then net_af_packet)"))?;
    tracing::debug!(
        port = port.0[0].port().name(),
        iface = veth.peer,
        "embedded port: net_af_packet"
    );
    Ok(port)
}

/// Why `net_af_xdp` cannot be the embedded port with `mtu`, if it cannot:
/// its frames would not fit in [`AF_XDP_MAX_FRAME`]. (`net_af_packet`
/// refuses an MTU above 1500 itself, so this only changes which port's
/// error is reported.)
fn af_xdp_refusal(mtu: Option<u16>) -> Option<String> {
    let mtu = usize::from(mtu?);
    (mtu + ETH_HEADER > AF_XDP_MAX_FRAME).then(|| {
        format!(
            "MTU {mtu} is above the {} bytes its frames carry",
            AF_XDP_MAX_FRAME - ETH_HEADER
        )
    })
}

/// The doorbells of a `net_af_xdp` device with `queues` queues started
/// since `before` (the process's `AF_XDP` sockets then): its own `AF_XDP`
/// sockets, by queue; `None` for other devices, or if they cannot be found.
fn xsk_doorbells(devargs: &str, before: &[i32], queues: u16) -> Option<Vec<Doorbell>> {
    let name = devargs.split(',').next()?;
    if !is_af_xdp(devargs) {
        return None;
    }
    match Doorbell::xsk(before, usize::from(queues)) {
        Ok(bells) => Some(bells),
        Err(e) => {
            tracing::info!(port = name, error = %e, "no doorbell on the AF_XDP port: the engine naps while idle");
            None
        }
    }
}

/// The doorbells of a `net_af_packet` device, on its `iface`, one per
/// queue (each rings for any frame: the kernel spreads frames over the
/// queues, not over these); `None` for other devices, or if they cannot be
/// opened. They must be opened before the port (see [`super::wake`]).
fn open_doorbells(devargs: &str, queues: u16) -> Option<Vec<Doorbell>> {
    let name = devargs.split(',').next()?;
    if !(name.starts_with("net_af_packet") || name.starts_with("eth_af_packet")) {
        return None;
    }
    let iface = devarg(devargs, "iface")?;
    match (0..queues).map(|_| Doorbell::open(iface)).collect() {
        Ok(bells) => Some(bells),
        Err(e) => {
            tracing::info!(iface, error = %e, "no doorbell on the NIC's interface: the engine naps while idle");
            None
        }
    }
}

/// The stack's addresses and gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addrs {
    ipv4: Option<Ipv4Cidr>,
    ipv4_gateway: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Cidr>,
    ipv6_gateway: Option<Ipv6Addr>,
}

impl Addrs {
    /// A gateway needs an address of its family.
    fn check(&self) -> Result<()> {
        if let (Some(gw), None) = (self.ipv4_gateway, self.ipv4) {
            bail!("--gateway {gw} needs an IPv4 address for the stack (--ip ADDR/LEN)");
        }
        if let (Some(gw), None) = (self.ipv6_gateway, self.ipv6) {
            bail!("--gateway6 {gw} needs an IPv6 address for the stack (--ip ADDR/LEN)");
        }
        if let (Some(gw), Some(net)) = (self.ipv4_gateway, self.ipv4) {
            if !net.contains(gw) {
                tracing::warn!(
                    "IPv4 gateway {gw} is outside the stack's subnet {}/{}",
                    net.addr,
                    net.prefix_len
                );
            }
        }
        Ok(())
    }
}

/// The embedded network's addresses: 10.77.N.2/24 via 10.77.N.1 and
/// fd77:N::2/64 via fd77:N::1, each family replaced by `--ip` if given
/// (the default gateway then only if it is in the new subnet), gateways by
/// `--gateway`/`--gateway6`.
fn embedded_addrs(veth: &VethPair, ipv4: Option<Ipv4Cidr>, ipv6: Option<Ipv6Cidr>, opts: &NetOpts) -> Addrs {
    let ipv4 = ipv4.unwrap_or(Ipv4Cidr::new(veth.stack_v4(), 24));
    let ipv4_gateway = opts
        .gateway
        .or_else(|| ipv4.contains(veth.host_v4.addr).then_some(veth.host_v4.addr));
    let (ipv6, ipv6_gateway) = match (ipv6, veth.host_v6) {
        (Some(v6), host) => (
            Some(v6),
            opts.gateway6
                .or_else(|| host.filter(|h| v6.contains(h.addr)).map(|h| h.addr)),
        ),
        // No IPv6 in the kernel: no default IPv6 address either.
        (None, None) => (None, opts.gateway6),
        (None, Some(host)) => (
            Some(Ipv6Cidr::new(veth.stack_v6(), 64)),
            opts.gateway6.or(Some(host.addr)),
        ),
    };
    Addrs {
        ipv4: Some(ipv4),
        ipv4_gateway,
        ipv6,
        ipv6_gateway,
    }
}

/// The stack's configuration on `nic`.
fn stack_config(nic: &DpdkNic, addrs: &Addrs, mtu: Option<u16>) -> Result<Config> {
    let port = nic.port();
    let mut config = Config::new(EthernetAddress(port.mac()));
    config.ipv4 = addrs.ipv4;
    config.ipv4_gateway = addrs.ipv4_gateway;
    config.ipv6 = addrs.ipv6.into_iter().collect();
    config.ipv6_gateway = addrs.ipv6_gateway;
    config.mtu = mtu.map_or(port.capabilities().mtu, usize::from);
    config.seed = random_seed()?;
    // Without the boot's secret (no writable /run, say) the stack works
    // with its own; only a restart against a peer's TIME_WAIT suffers.
    config.tcp_secret = match super::secret::boot_secret() {
        Ok(secret) => Some(secret),
        Err(e) => {
            tracing::info!("{e:#}: TCP sequence numbers restart with this run");
            None
        }
    };
    Ok(config)
}

/// 64 unpredictable bits for the stack's ISNs, ephemeral ports and IP IDs.
fn random_seed() -> Result<u64> {
    let mut buf = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("could not read a random seed for the stack from /dev/urandom")?;
    Ok(u64::from_ne_bytes(buf))
}

/// Process-wide counter making DPDK device and pool names unique: a vdev
/// stays probed after its port is closed, so a name cannot be reused.
fn next_seq() -> u32 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// `name`, or `name_K` with the process's next sequence number K if that
/// is not the first (see [`next_seq`]).
fn unique_name(name: &str) -> String {
    match next_seq() {
        0 => name.to_owned(),
        seq => format!("{name}_{seq}"),
    }
}

/// Probes `devargs`, starts its port with `queues` queue pairs and wraps
/// each as a stack's NIC.
fn start_port(eal: &Eal, devargs: &str, mtu: Option<u16>, queues: u16) -> Result<Vec<DpdkNic>> {
    let name = devargs.split(',').next().unwrap_or(devargs);
    let iface = devarg(devargs, "iface")
        .map(|i| format!(" on iface {i}"))
        .unwrap_or_default();
    let id = eal.probe_vdev(devargs).map_err(|e| {
        // DPDK's error number says little (EPERM for a missing interface).
        let missing = devarg(devargs, "iface").filter(|i| run("ip", &["link", "show", "dev", i]).is_err());
        match missing {
            Some(i) => anyhow!(e).context(format!(
                "DPDK could not attach device {name}: there is no network interface {i}"
            )),
            None => anyhow!(e).context(format!("DPDK could not attach device {name}{iface}")),
        }
    })?;
    let pool_name = format!("joyride_net{}", next_seq());
    let mbufs = POOL_MBUFS * u32::from(queues);
    let pool = Mempool::new(eal, &pool_name, mbufs, POOL_CACHE, Mempool::DEFAULT_DATA_ROOM)
        .with_context(|| format!("DPDK could not create the packet buffers for port {name}{iface}"))?;
    let config = PortConfig {
        rx_desc: RING_DESC,
        tx_desc: RING_DESC,
        checksum_offload: true,
        mtu,
        queues,
        ..PortConfig::default()
    };
    let port = Port::start(eal, id, pool, &config).with_context(|| {
        let mtu = mtu.map(|m| format!(" with MTU {m}")).unwrap_or_default();
        format!("DPDK could not start port {name}{iface}{mtu}")
    })?;
    let link = port.link().ok();
    tracing::debug!(port = port.name(), ?link, caps = ?port.capabilities(), "port started");
    Ok(DpdkNic::split(port))
}

/// The value of `key` in device arguments `name,key=value,...`.
fn devarg<'a>(devargs: &'a str, key: &str) -> Option<&'a str> {
    devargs
        .split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The user's device arguments, with [`AF_PACKET_DEFAULTS`] and
/// `qpairs=QUEUES` added to a `net_af_packet` (or its alias
/// `eth_af_packet`) device, `queue_count=QUEUES` to a `net_af_xdp` one, for
/// the settings not given.
fn nic_devargs(devargs: &str, queues: u16) -> String {
    let devargs = devargs.trim();
    let name = devargs.split(',').next().unwrap_or(devargs);
    let queues = queues.to_string();
    let added: Vec<(&str, &str)> = if name.starts_with("net_af_packet") || name.starts_with("eth_af_packet") {
        let mut v = AF_PACKET_DEFAULTS.to_vec();
        v.push(("qpairs", &queues));
        v
    } else if is_af_xdp(devargs) {
        vec![("queue_count", &queues)]
    } else {
        Vec::new()
    };
    let mut out = devargs.to_owned();
    for (key, value) in added {
        if devarg(devargs, key).is_none() {
            let _ = write!(out, ",{key}={value}");
        }
    }
    out
}

/// Device arguments for a `net_af_packet` port `name` on `iface`, made
/// unique in the process.
fn af_packet_devargs(name: &str, iface: &str, queues: u16) -> String {
    nic_devargs(&format!("{},iface={iface}", unique_name(name)), queues)
}

/// Parses `10.0.0.2/24` or `fd00::2/64`.
fn parse_cidr(s: &str) -> Result<IpCidr> {
    let bad = |why: &str| anyhow!("invalid address {s:?}: {why} (expected ADDR/LEN, e.g. 10.0.0.2/24 or fd00::2/64)");
    let (addr, len) = s.trim().split_once('/').ok_or_else(|| bad("no prefix length"))?;
    let addr: IpAddr = addr.parse().map_err(|_| bad("not an IPv4 or IPv6 address"))?;
    let len: u8 = len.parse().map_err(|_| bad("the prefix length is not a number"))?;
    match addr {
        IpAddr::V4(a) => {
            if len > 32 {
                return Err(bad("an IPv4 prefix length is at most 32"));
            }
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                return Err(bad("not a unicast address"));
            }
            Ok(IpCidr::V4(Ipv4Cidr::new(a, len)))
        }
        IpAddr::V6(a) => {
            if len > 128 {
                return Err(bad("an IPv6 prefix length is at most 128"));
            }
            if a.is_unspecified() || a.is_multicast() {
                return Err(bad("not a unicast address"));
            }
            Ok(IpCidr::V6(Ipv6Cidr::new(a, len)))
        }
    }
}

/// An address with its prefix, either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpCidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

/// `--ip` values: at most one IPv4 and one IPv6 address.
fn parse_addrs(ips: &[String]) -> Result<(Option<Ipv4Cidr>, Option<Ipv6Cidr>)> {
    let (mut v4, mut v6) = (None, None);
    for s in ips {
        match parse_cidr(s)? {
            IpCidr::V4(c) => {
                if let Some(old) = v4.replace(c) {
                    bail!(
                        "--ip {s}: the stack has one IPv4 address and --ip {}/{} already gives it",
                        old.addr,
                        old.prefix_len
                    );
                }
            }
            IpCidr::V6(c) => {
                if let Some(old) = v6.replace(c) {
                    bail!(
                        "--ip {s}: the stack has one IPv6 address and --ip {}/{} already gives it",
                        old.addr,
                        old.prefix_len
                    );
                }
            }
        }
    }
    Ok((v4, v6))
}

/// The embedded veth pair; deleted on drop (deleting one end deletes both).
#[derive(Debug)]
struct VethPair {
    /// N of `joyrideN`.
    index: u8,
    /// The kernel's end, `joyrideN`.
    host: String,
    /// The end DPDK drives, `joyrideN-s`.
    peer: String,
    /// The kernel's IPv4 address on `host`.
    host_v4: Ipv4Cidr,
    /// The kernel's IPv6 address on `host`, unless the kernel has no IPv6.
    host_v6: Option<Ipv6Cidr>,
}

impl VethPair {
    /// Creates `joyrideN`/`joyrideN-s` for the first N whose names are
    /// free and sets it up; on failure, what was created is deleted.
    fn create(mtu: Option<u16>, queues: u16) -> Result<VethPair> {
        let mut pair = None;
        let q = queues.to_string();
        for n in 0..=MAX_VETH_INDEX {
            let host = format!("joyride{n}");
            let peer = format!("{host}-s");
            let args = [
                "link",
                "add",
                &host,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ];
            let out = Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("could not run `ip {}` (is iproute2 installed?)", args.join(" ")))?;
            if out.status.success() {
                pair = Some(VethPair::new(n, host, peer));
                break;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.contains("File exists") {
                bail!(
                    "could not create the veth pair {host}/{peer}: `ip {}` failed ({}): {}",
                    args.join(" "),
                    out.status,
                    stderr.trim()
                );
            }
        }
        let pair = pair.ok_or_else(|| {
            anyhow!("could not create a veth pair: joyride0 to joyride{MAX_VETH_INDEX} (or their -s peers) all exist")
        })?;
        pair.setup(mtu)
            .with_context(|| format!("could not set up the veth pair {}/{}", pair.host, pair.peer))?;
        tracing::debug!(host = pair.host, peer = pair.peer, "veth pair up");
        Ok(pair)
    }

    fn new(index: u8, host: String, peer: String) -> VethPair {
        let ipv6 = Path::new("/proc/sys/net/ipv6").exists();
        if !ipv6 {
            tracing::warn!("the kernel has no IPv6: the embedded network is IPv4 only");
        }
        VethPair {
            index,
            host,
            peer,
            host_v4: Ipv4Cidr::new(Ipv4Addr::new(10, 77, index, 1), 24),
            host_v6: ipv6.then(|| Ipv6Cidr::new(Ipv6Addr::new(0xfd77, Self::v6_segment(index), 0, 0, 0, 0, 0, 1), 64)),
        }
    }

    /// The second segment of fd77:N::, reading N's decimal digits as hex so
    /// that `joyride12` gets `fd77:12::`.
    fn v6_segment(index: u8) -> u16 {
        u16::from_str_radix(&index.to_string(), 16).unwrap_or(0)
    }

    /// The stack's default IPv4 address, 10.77.N.2.
    fn stack_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.index, 2)
    }

    /// The stack's default IPv6 address, fd77:N::2.
    fn stack_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, Self::v6_segment(self.index), 0, 0, 0, 0, 0, 2)
    }

    /// Addresses, offloads and state of both ends.
    fn setup(&self, mtu: Option<u16>) -> Result<()> {
        let (host, peer) = (self.host.as_str(), self.peer.as_str());
        // The kernel must not use DPDK's end: no IPv6 there (its link-local
        // address would be the stack's, derived from the same MAC), and no
        // forwarding of the frames for the stack it also receives.
        if self.host_v6.is_some() {
            write_sysctl(&format!("net/ipv6/conf/{peer}/disable_ipv6"), "1")?;
            write_sysctl(&format!("net/ipv6/conf/{host}/disable_ipv6"), "0")?;
        }
        write_sysctl(&format!("net/ipv4/conf/{peer}/forwarding"), "0")?;
        // A veth leaves the checksums of what the kernel sends unfinished
        // and hands over segments larger than the MTU; net_af_xdp and
        // net_af_packet pass both on as they are.
        for ifname in [host, peer] {
            run(
                "ethtool",
                &["-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
            )?;
        }
        if let Some(mtu) = mtu {
            let mtu = mtu.to_string();
            for ifname in [host, peer] {
                run("ip", &["link", "set", "dev", ifname, "mtu", &mtu])?;
            }
        }
        let v4 = format!("{}/{}", self.host_v4.addr, self.host_v4.prefix_len);
        run("ip", &["addr", "add", &v4, "dev", host])?;
        if let Some(v6) = self.host_v6 {
            let v6 = format!("{}/{}", v6.addr, v6.prefix_len);
            run("ip", &["-6", "addr", "add", &v6, "dev", host, "nodad"])?;
        }
        run("ip", &["link", "set", "dev", peer, "up"])?;
        run("ip", &["link", "set", "dev", host, "up"])?;
        Ok(())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["link", "del", "dev", &self.host]) {
            tracing::warn!("could not delete the veth pair {}/{}: {e:#}", self.host, self.peer);
        }
    }
}

/// Writes a sysctl of the calling thread's network namespace
/// (`/proc/sys/<name>`).
fn write_sysctl(name: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(name);
    std::fs::write(&path, value).with_context(|| format!("could not write {value} to {}", path.display()))
}

/// Runs a command; an error names it and carries its stderr.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let cmdline = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{}`", cmdline()))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmdline(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac_str(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The test binary's EAL, initialised on first use: DPDK allows one init
/// per process, so every test that needs DPDK in this binary must use this
/// one (then [`bring_up_with`]).
#[cfg(test)]
pub(crate) fn test_eal() -> Eal {
    static EAL: std::sync::OnceLock<Eal> = std::sync::OnceLock::new();
    *EAL.get_or_init(|| {
        let prefix = format!("joyride-test-{}", std::process::id());
        // More memory than a real run's EAL: the tests bring up many ports,
        // and each net_af_xdp port leaks its pool (see joyride_dpdk).
        let eal = Eal::init(&eal_config(&prefix, 4 * EAL_MEMORY_MB, &[])).expect("EAL init");
        remove_runtime_dir(&prefix);
        eal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::process::Output;
    use std::time::{Duration, Instant};

    use joyride_netstack::iface::Interface;
    use joyride_netstack::time::{Clock, SystemClock};

    #[test]
    fn parse_cidr_accepts_both_families() {
        assert_eq!(
            parse_cidr("10.0.0.2/24").unwrap(),
            IpCidr::V4(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24))
        );
        assert_eq!(
            parse_cidr(" 192.0.2.1/32 ").unwrap(),
            IpCidr::V4(Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 32))
        );
        assert_eq!(
            parse_cidr("fd00::2/64").unwrap(),
            IpCidr::V6(Ipv6Cidr::new("fd00::2".parse().unwrap(), 64))
        );
        assert_eq!(
            parse_cidr("2001:db8::1/128").unwrap(),
            IpCidr::V6(Ipv6Cidr::new("2001:db8::1".parse().unwrap(), 128))
        );
    }

    #[test]
    fn parse_cidr_errors_name_the_value() {
        for (bad, why) in [
            ("10.0.0.2", "no prefix length"),
            ("10.0.0.2/", "not a number"),
            ("10.0.0.2/x", "not a number"),
            ("10.0.0.2/33", "at most 32"),
            ("fd00::2/129", "at most 128"),
            ("10.0.0.256/24", "not an IPv4 or IPv6"),
            ("eth0/24", "not an IPv4 or IPv6"),
            ("0.0.0.0/0", "unicast"),
            ("224.0.0.1/4", "unicast"),
            ("ff02::1/64", "unicast"),
            ("::/0", "unicast"),
            ("", "no prefix length"),
        ] {
            let e = parse_cidr(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn at_most_one_address_per_family() {
        let ips = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (v4, v6) = parse_addrs(&ips(&["10.0.0.2/24", "fd00::2/64"])).unwrap();
        assert_eq!(v4, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24)));
        assert_eq!(v6, Some(Ipv6Cidr::new("fd00::2".parse().unwrap(), 64)));
        let e = parse_addrs(&ips(&["10.0.0.2/24", "10.0.0.3/24"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--ip 10.0.0.3/24") && e.contains("one IPv4"), "{e}");
        let e = parse_addrs(&ips(&["fd00::2/64", "fd00::3/64"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("one IPv6"), "{e}");
        assert_eq!(parse_addrs(&[]).unwrap(), (None, None));
    }

    #[test]
    fn gateways_need_their_family() {
        let addrs = Addrs {
            ipv4: None,
            ipv4_gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ipv6: Some(Ipv6Cidr::new("fd00::2".parse().unwrap(), 64)),
            ipv6_gateway: None,
        };
        let e = addrs.check().unwrap_err().to_string();
        assert!(e.contains("--gateway 10.0.0.1"), "{e}");
        let addrs = Addrs {
            ipv4: Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24)),
            ipv4_gateway: None,
            ipv6: None,
            ipv6_gateway: Some("fd00::1".parse().unwrap()),
        };
        let e = addrs.check().unwrap_err().to_string();
        assert!(e.contains("--gateway6 fd00::1"), "{e}");
    }

    #[test]
    fn options_checked_before_any_device() {
        let nic = |ip: &[&str]| NetOpts {
            nic: Some("net_af_packet0,iface=eth1".into()),
            ip: ip.iter().map(|s| s.to_string()).collect(),
            ..NetOpts::default()
        };
        let e = check_opts(&nic(&[])).unwrap_err().to_string();
        assert!(
            e.contains("--nic net_af_packet0,iface=eth1 needs") && e.contains("--ip"),
            "{e}"
        );
        let e = check_opts(&NetOpts {
            gateway6: Some("fd00::1".parse().unwrap()),
            ..nic(&["10.0.0.2/24"])
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--gateway6 fd00::1"), "{e}");
        let e = check_opts(&NetOpts {
            mtu: Some(40),
            ..NetOpts::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--mtu 40"), "{e}");
        assert!(check_opts(&nic(&["10.0.0.2/24", "fd00::2/64"])).is_ok());
        assert!(check_opts(&NetOpts::default()).is_ok());
    }

    #[test]
    fn af_packet_defaults_only_when_absent() {
        assert_eq!(
            nic_devargs("net_af_packet0,iface=eth1", 1),
            "net_af_packet0,iface=eth1,framesz=2048,blocksz=4096,framecnt=4096,qpairs=1"
        );
        assert_eq!(
            nic_devargs("net_af_packet1,iface=eth1,framecnt=512,framesz=4096", 2),
            "net_af_packet1,iface=eth1,framecnt=512,framesz=4096,blocksz=4096,qpairs=2"
        );
        assert_eq!(
            nic_devargs("net_af_xdp0,iface=eth1", 2),
            "net_af_xdp0,iface=eth1,queue_count=2"
        );
        assert_eq!(
            nic_devargs("net_af_xdp0,iface=eth1,queue_count=1", 2),
            "net_af_xdp0,iface=eth1,queue_count=1"
        );
        assert_eq!(nic_devargs("net_tap0,iface=jr0", 2), "net_tap0,iface=jr0");
        assert_eq!(devarg("net_tap0,iface=jr0", "iface"), Some("jr0"));
        assert_eq!(devarg("net_tap0,iface=jr0", "if"), None);
        assert_eq!(devarg("iface=x", "iface"), None);
    }

    #[test]
    fn embedded_addresses_follow_n_and_overrides() {
        let veth = VethPair {
            index: 12,
            host: "joyride12".into(),
            peer: "joyride12-s".into(),
            host_v4: Ipv4Cidr::new(Ipv4Addr::new(10, 77, 12, 1), 24),
            host_v6: Some(Ipv6Cidr::new("fd77:12::1".parse().unwrap(), 64)),
        };
        let defaults = embedded_addrs(&veth, None, None, &NetOpts::default());
        assert_eq!(
            defaults,
            Addrs {
                ipv4: Some(Ipv4Cidr::new(Ipv4Addr::new(10, 77, 12, 2), 24)),
                ipv4_gateway: Some(Ipv4Addr::new(10, 77, 12, 1)),
                ipv6: Some(Ipv6Cidr::new("fd77:12::2".parse().unwrap(), 64)),
                ipv6_gateway: Some("fd77:12::1".parse().unwrap()),
            }
        );
        // --ip in the same subnet keeps the kernel as the gateway; another
        // subnet has none unless --gateway says so; the other family keeps
        // its default.
        let v4 = Ipv4Cidr::new(Ipv4Addr::new(10, 77, 12, 9), 24);
        let a = embedded_addrs(&veth, Some(v4), None, &NetOpts::default());
        assert_eq!((a.ipv4, a.ipv4_gateway), (Some(v4), Some(Ipv4Addr::new(10, 77, 12, 1))));
        assert_eq!(a.ipv6, defaults.ipv6);
        let v4 = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 5, 2), 24);
        let a = embedded_addrs(&veth, Some(v4), None, &NetOpts::default());
        assert_eq!(a.ipv4_gateway, None);
        let opts = NetOpts {
            gateway: Some(Ipv4Addr::new(192, 168, 5, 1)),
            gateway6: Some("fd77:12::99".parse().unwrap()),
            ..NetOpts::default()
        };
        let a = embedded_addrs(&veth, Some(v4), None, &opts);
        assert_eq!(a.ipv4_gateway, opts.gateway);
        assert_eq!(a.ipv6_gateway, opts.gateway6);
        // joyride0's prefix is fd77::/64, as the help text says.
        assert_eq!(VethPair::v6_segment(0), 0);
        assert_eq!(VethPair::v6_segment(255), 0x255);
    }

    /// These tests make namespaces and veths: they fail, not pass, without
    /// root (the README's test command runs as root).
    #[track_caller]
    fn require_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root (it creates network namespaces and veth pairs)"
        );
    }

    /// Runs `f` in a thread of its own in a fresh network namespace, which
    /// goes away with everything in it when the last of its users (the
    /// thread, sockets opened there) is gone.
    fn in_new_netns(f: impl FnOnce() + Send + 'static) {
        // The EAL's own threads stay in the test's namespace.
        test_eal();
        let t = std::thread::spawn(move || {
            rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET).expect("unshare(CLONE_NEWNET)");
            run("ip", &["link", "set", "lo", "up"]).unwrap();
            f();
        });
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }

    fn output(program: &str, args: &[&str]) -> Output {
        Command::new(program).args(args).output().expect(program)
    }

    fn stdout(program: &str, args: &[&str]) -> String {
        let out = output(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The kernel's MAC of `ifname`.
    fn kernel_mac(ifname: &str) -> String {
        let link = stdout("ip", &["-o", "link", "show", "dev", ifname]);
        let mut words = link.split_whitespace();
        words.find(|w| *w == "link/ether").expect("link/ether");
        words.next().expect("mac").to_owned()
    }

    fn link_exists(ifname: &str) -> bool {
        output("ip", &["link", "show", "dev", ifname]).status.success()
    }

    /// Runs `ping` against the stack while polling it, until ping exits.
    fn ping_while_polling(net: &mut Network, args: &[&str]) -> Output {
        let mut iface = Interface::new(net.config.clone());
        let clock = SystemClock::new();
        let child = Command::new("ping")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ping");
        let child_id = child.id();
        let waiter = std::thread::spawn(move || child.wait_with_output().expect("ping"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !waiter.is_finished() {
            assert!(Instant::now() < deadline, "ping {child_id} did not finish");
            iface.poll(clock.now(), &mut net.nic);
            iface.drain_events().for_each(drop);
            std::thread::sleep(Duration::from_micros(200));
        }
        waiter.join().expect("ping waiter")
    }

    fn assert_ping(net: &mut Network, args: &[&str]) {
        let out = ping_while_polling(net, args);
        assert!(
            out.status.success(),
            "ping {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn embedded_default_in_a_namespace() {
        require_root();
        in_new_netns(|| {
            let mut net = bring_up_with(&test_eal(), &NetOpts::default()).expect("bring_up");
            eprintln!("{}", net.describe());
            assert_eq!(net.kernel_ifname(), Some("joyride0"));
            assert_eq!(net.stack_ifname(), Some("joyride0-s"));
            let addrs = stdout("ip", &["-o", "addr", "show", "dev", "joyride0"]);
            assert!(addrs.contains("inet 10.77.0.1/24"), "{addrs}");
            assert!(addrs.contains("inet6 fd77::1/64"), "{addrs}");
            for ifname in ["joyride0", "joyride0-s"] {
                let link = stdout("ip", &["-o", "link", "show", "dev", ifname]);
                assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
                let features = stdout("ethtool", &["-k", ifname]);
                for off in [
                    "tx-checksumming: off",
                    "tcp-segmentation-offload: off",
                    "generic-segmentation-offload: off",
                    "generic-receive-offload: off",
                ] {
                    assert!(features.contains(off), "{ifname}: {off}\n{features}");
                }
            }
            assert_eq!(mac_str(net.nic.port().mac()), kernel_mac("joyride0-s"));
            assert_eq!(net.config.mac.0, net.nic.port().mac());
            assert_eq!(net.config.ipv4, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 77, 0, 2), 24)));
            assert_eq!(net.config.ipv4_gateway, Some(Ipv4Addr::new(10, 77, 0, 1)));
            assert_eq!(net.config.ipv6, vec![Ipv6Cidr::new("fd77::2".parse().unwrap(), 64)]);
            assert_eq!(net.config.ipv6_gateway, Some("fd77::1".parse().unwrap()));
            assert_eq!(net.config.mtu, 1500);
            // This machine has AF_XDP sockets and the PMD: the port is
            // net_af_xdp, without a doorbell.
            assert!(
                net.nic.port().name().starts_with("net_af_xdp_joyride0"),
                "{}",
                net.describe()
            );
            assert!(net.describe().contains("iface=joyride0-s,start_queue=0,queue_count=1"));
            // Its AF_XDP socket is the doorbell: readable once a frame
            // waits in its ring, not before.
            use joyride_netstack::nic::Nic;
            use std::os::fd::AsFd;
            let bell = net.doorbell.take().expect("the AF_XDP socket is the doorbell");
            while net.nic.receive(64, |_, _| {}) > 0 {}
            assert!(!crate::sys::readable_now(bell.as_fd()));
            let _ = Command::new("ping").args(["-c1", "-W1", "10.77.0.2"]).output();
            assert!(
                crate::sys::readable_now(bell.as_fd()),
                "no frame rang the AF_XDP doorbell"
            );
            while net.nic.receive(64, |_, _| {}) > 0 {}
            assert!(!crate::sys::readable_now(bell.as_fd()));
            let d = net.describe();
            assert!(
                d.contains("10.77.0.2/24 via 10.77.0.1") && d.contains("kernel end joyride0"),
                "{d}"
            );

            // The kernel reaches the stack over the pair, both families.
            assert_ping(&mut net, &["-c1", "-W2", "10.77.0.2"]);
            assert_ping(&mut net, &["-6", "-c1", "-W2", "fd77::2"]);
            let neigh = stdout("ip", &["neigh", "show", "dev", "joyride0"]);
            assert!(neigh.contains(&mac_str(net.nic.port().mac())), "{neigh}");

            // joyride0 is taken: the next network is joyride1.
            let mut net1 = bring_up_with(&test_eal(), &NetOpts::default()).expect("second bring_up");
            assert_eq!(net1.kernel_ifname(), Some("joyride1"));
            assert_eq!(net1.config.ipv4, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 77, 1, 2), 24)));
            assert_eq!(net1.config.ipv6, vec![Ipv6Cidr::new("fd77:1::2".parse().unwrap(), 64)]);
            assert_ne!(net1.config.seed, net.config.seed);
            assert_ping(&mut net1, &["-c1", "-W2", "10.77.1.2"]);

            drop(net);
            assert!(!link_exists("joyride0") && !link_exists("joyride0-s"));
            assert!(link_exists("joyride1"));
            drop(net1);
            assert!(!link_exists("joyride1") && !link_exists("joyride1-s"));
        });
    }

    #[test]
    fn embedded_overrides_and_failure_cleans_up() {
        require_root();
        in_new_netns(|| {
            let opts = NetOpts {
                ip: vec!["10.77.0.7/24".into()],
                mtu: Some(1400),
                ..NetOpts::default()
            };
            let mut net = bring_up_with(&test_eal(), &opts).expect("bring_up");
            assert_eq!(net.config.ipv4, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 77, 0, 7), 24)));
            assert_eq!(net.config.ipv4_gateway, Some(Ipv4Addr::new(10, 77, 0, 1)));
            assert_eq!(net.config.ipv6, vec![Ipv6Cidr::new("fd77::2".parse().unwrap(), 64)]);
            assert_eq!(net.config.mtu, 1400);
            assert!(stdout("ip", &["-o", "link", "show", "dev", "joyride0"]).contains("mtu 1400"));
            assert_ping(&mut net, &["-c1", "-W2", "10.77.0.7"]);
            drop(net);

            // A port that cannot start (the MTU is beyond net_af_packet's
            // frames) takes the pair it created down with it.
            let opts = NetOpts {
                mtu: Some(9000),
                ..NetOpts::default()
            };
            let e = format!("{:#}", bring_up_with(&test_eal(), &opts).unwrap_err());
            eprintln!("--mtu 9000: {e}");
            assert!(e.contains("DPDK could not start port net_af_packet_joyride0"), "{e}");
            assert!(e.contains("iface joyride0-s"), "{e}");
            assert!(!link_exists("joyride0"), "veth left behind after: {e}");
        });
    }

    #[test]
    fn af_xdp_refuses_frames_beyond_its_buffers() {
        assert_eq!(af_xdp_refusal(None), None);
        assert_eq!(af_xdp_refusal(Some(1500)), None);
        assert_eq!(af_xdp_refusal(Some(1778)), None);
        let why = af_xdp_refusal(Some(1779)).expect("1779 refused");
        assert!(why.contains("MTU 1779") && why.contains("1778"), "{why}");
    }

    #[test]
    fn embedded_falls_back_to_af_packet() {
        require_root();
        in_new_netns(|| {
            let eal = test_eal();
            // An MTU whose frames net_af_xdp cannot carry: net_af_packet is
            // tried (and refuses it too, as it refuses anything above 1500).
            let opts = NetOpts {
                mtu: Some(1900),
                ..NetOpts::default()
            };
            let e = format!("{:#}", bring_up_with(&eal, &opts).unwrap_err());
            eprintln!("--mtu 1900: {e}");
            assert!(e.contains("net_af_xdp: MTU 1900 is above the 1778 bytes"), "{e}");
            assert!(e.contains("could not start port net_af_packet_joyride0"), "{e}");
            assert!(!link_exists("joyride0"));

            // net_af_xdp fails for real (the veth has one queue, not four):
            // the port is net_af_packet, with its doorbell, and works.
            let veth = VethPair::create(None, 1).expect("veth");
            let af_xdp = format!(
                "{},iface={},start_queue=3,queue_count=1",
                unique_name("net_af_xdp_fallback"),
                veth.peer
            );
            let (nics, devargs, doorbells) =
                start_embedded_port_with(&eal, &veth, None, Ok(af_xdp), 1).expect("fallback");
            let nic = nics.into_iter().next().expect("one queue");
            assert!(nic.port().name().starts_with("net_af_packet_joyride0"), "{devargs}");
            assert!(devargs.contains("iface=joyride0-s,framesz=2048"), "{devargs}");
            let doorbell = doorbells.and_then(|b| b.into_iter().next());
            assert!(doorbell.is_some());
            let addrs = embedded_addrs(&veth, None, None, &NetOpts::default());
            let config = stack_config(&nic, &addrs, None).expect("config");
            let mut net = Network {
                nic,
                config,
                eal,
                devargs,
                veth: Some(veth),
                doorbell,
                more: Vec::new(),
            };
            assert_ping(&mut net, &["-c1", "-W2", "10.77.0.2"]);
            drop(net);
            assert!(!link_exists("joyride0"));

            // Otherwise the port is net_af_xdp, and carries its largest
            // frames unfragmented.
            let mut net = bring_up_with(&eal, &NetOpts::default()).expect("bring_up");
            assert!(
                net.nic.port().name().starts_with("net_af_xdp_joyride0"),
                "{}",
                net.describe()
            );
            assert_ping(&mut net, &["-c1", "-W2", "-M", "do", "-s", "1472", "10.77.0.2"]);
            drop(net);
            assert!(!link_exists("joyride0"));
        });
    }

    /// `bring_up` itself, with its own EAL, in a child process of this test
    /// binary (DPDK allows one EAL per process).
    #[test]
    fn bring_up_in_a_child_process() {
        const CHILD: &str = "JOYRIDE_NET_TEST_CHILD";
        require_root();
        if std::env::var_os(CHILD).is_none() {
            let out = Command::new(std::env::current_exe().expect("current_exe"))
                .args([
                    "--exact",
                    "exec::net::tests::bring_up_in_a_child_process",
                    "--nocapture",
                ])
                .env(CHILD, "1")
                .output()
                .expect("child test");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("1 passed"),
                "child failed:\n{text}"
            );
            // --log-level=warning: no informational EAL messages.
            assert!(!text.contains("Detected CPU lcores"), "{text}");
            return;
        }
        let t = std::thread::spawn(|| {
            rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET).expect("unshare(CLONE_NEWNET)");
            let opts = NetOpts {
                eal: vec!["--log-level=pmd.net.af_packet:warning".into()],
                ..NetOpts::default()
            };
            let mut net = bring_up(&opts).expect("bring_up");
            assert!(!Path::new(&format!("/var/run/dpdk/joyride-{}", std::process::id())).exists());
            assert_ping(&mut net, &["-c1", "-W2", "10.77.0.2"]);
            let e = format!("{:#}", bring_up(&opts).unwrap_err());
            eprintln!("second bring_up: {e}");
            assert!(e.contains("EAL") && e.contains("already"), "{e}");
            assert!(!link_exists("joyride1"), "second bring_up left a veth");
            drop(net);
            assert!(!link_exists("joyride0"));
            // Bad options fail before the EAL or any veth is touched.
            let e = format!(
                "{:#}",
                bring_up(&NetOpts {
                    ip: vec!["10.0.0.1".into()],
                    ..opts
                })
                .unwrap_err()
            );
            assert!(e.contains("\"10.0.0.1\""), "{e}");
        });
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn nic_on_a_veth() {
        require_root();
        in_new_netns(|| {
            run("ip", &["link", "add", "jrk", "type", "veth", "peer", "name", "jrd"]).unwrap();
            for ifname in ["jrk", "jrd"] {
                run(
                    "ethtool",
                    &["-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
                )
                .unwrap();
            }
            write_sysctl("net/ipv6/conf/jrd/disable_ipv6", "1").unwrap();
            run("ip", &["addr", "add", "10.88.0.1/24", "dev", "jrk"]).unwrap();
            run("ip", &["link", "set", "jrk", "up"]).unwrap();
            run("ip", &["link", "set", "jrd", "up"]).unwrap();

            let mut opts = NetOpts {
                nic: Some("net_af_packet_nictest,iface=jrd".into()),
                ..NetOpts::default()
            };
            let e = bring_up_with(&test_eal(), &opts).unwrap_err().to_string();
            eprintln!("no --ip: {e}");
            assert!(e.contains("--ip"), "{e}");

            opts.ip = vec!["10.88.0.2/24".into()];
            opts.gateway = Some(Ipv4Addr::new(10, 88, 0, 1));
            let mut net = bring_up_with(&test_eal(), &opts).expect("bring_up --nic");
            eprintln!("{}", net.describe());
            assert_eq!(net.nic.port().name(), "net_af_packet_nictest");
            assert_eq!(mac_str(net.nic.port().mac()), kernel_mac("jrd"));
            assert_eq!(net.config.ipv4, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 88, 0, 2), 24)));
            assert_eq!(net.config.ipv4_gateway, opts.gateway);
            assert!(net.config.ipv6.is_empty() && net.config.ipv6_gateway.is_none());
            assert!(net.kernel_ifname().is_none());
            assert!(net.describe().contains("framesz=2048"));
            assert_ping(&mut net, &["-c1", "-W2", "10.88.0.2"]);
            drop(net);
            // Not ours: left alone.
            assert!(link_exists("jrd"));

            // An interface that does not exist: the error says which device.
            let opts = NetOpts {
                nic: Some("net_af_packet_nictest2,iface=nosuch0".into()),
                ip: vec!["10.88.0.2/24".into()],
                ..NetOpts::default()
            };
            let e = format!("{:#}", bring_up_with(&test_eal(), &opts).unwrap_err());
            eprintln!("no such iface: {e}");
            assert!(
                e.contains("net_af_packet_nictest2") && e.contains("no network interface nosuch0"),
                "{e}"
            );
            run("ip", &["link", "del", "jrk"]).unwrap();
        });
    }
}
