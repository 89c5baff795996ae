//! Test and benchmark machinery against the Linux kernel: network
//! namespaces and veth pairs (removed on drop, also when a test panics), a
//! one-per-process EAL, the stack polled in a background thread on the
//! system clock, an impaired link through `joyride-impair`, and bulk TCP
//! transfers between the stack and the kernel checked with SHA-256 on both
//! ends.
//!
//! Used by this crate's kernel-peer tests and by `joyride-benches`. Everything
//! here needs root, `ip`, `ethtool` and `python3`, and panics with the
//! failing command's output when a step fails: it is for tests, not for
//! programs.
//!
//! The impaired topology ([`ImpairedLink`]):
//!
//! ```text
//!  namespace K (the kernel)       namespace F                  test's namespace
//!  k0 [KERNEL_V4, KERNEL_V6] ---- f0  joyride-impair  f1 ---- host_if (DPDK net_af_packet)
//! ```
//!
//! or, for a kernel-to-kernel baseline over the same link,
//! [`ImpairedLink::kernel_far_end`] moves `host_if` into a namespace of its
//! own holding the stack's addresses.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use joyride_netstack::iface::{Config, Family, Interface, Ipv4Cidr, Ipv6Cidr, SocketError, SocketHandle};
use joyride_netstack::tcp::tcb::TcpInfo;
use joyride_netstack::time::{Clock, Instant, SystemClock};
use joyride_netstack::wire::EthernetAddress;
use sha2::{Digest, Sha256};

use crate::{DpdkNic, Eal, EalConfig, Mempool, Port, PortConfig};

/// Address the DPDK side uses on a [`Veth`].
pub const DPDK_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Address of the kernel side of a [`Veth`], in the namespace.
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// MAC of the namespace end of a [`Veth`] and of `k0` on an [`ImpairedLink`].
pub const KERNEL_MAC: [u8; 6] = [0x02, 0x6a, 0x72, 0x00, 0x00, 0x02];
/// MAC of the root-namespace end (the DPDK port's).
pub const HOST_MAC: [u8; 6] = [0x02, 0x6a, 0x72, 0x00, 0x00, 0x01];

/// The kernel's IPv4 address on an [`ImpairedLink`].
pub const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// The stack's IPv4 address on an [`ImpairedLink`].
pub const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
/// The kernel's IPv6 address on an [`ImpairedLink`].
pub const KERNEL_V6: Ipv6Addr = Ipv6Addr::new(0xfd78, 0, 0, 0, 0, 0, 0, 1);
/// The stack's IPv6 address on an [`ImpairedLink`].
pub const STACK_V6: Ipv6Addr = Ipv6Addr::new(0xfd78, 0, 0, 0, 0, 0, 0, 2);

/// The process's EAL, initialised on first use (DPDK allows one init per
/// process, so every test in a binary shares it). 512 MB of memory without
/// hugepages; extra EAL arguments from `JOYRIDE_EAL_ARGS` (e.g.
/// `--log-level=pmd.net.*:debug`).
pub fn eal() -> Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    *EAL.get_or_init(|| {
        let prefix = format!("jrdpdk-test-{}", std::process::id());
        let mut config = EalConfig::no_huge(&prefix, 512);
        if let Ok(extra) = std::env::var("JOYRIDE_EAL_ARGS") {
            config.args.extend(extra.split_whitespace().map(str::to_owned));
        }
        Eal::init(&config).expect("EAL init")
    })
}

/// A name unique in this process and across concurrent processes.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command, ignoring failure (for clean-up).
pub fn run_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// `aa:bb:...` for a MAC.
pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A network namespace, deleted on drop (with the interfaces in it).
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns`).
    pub name: String,
}

impl Netns {
    /// Creates a namespace named `<prefix><unique>` with its loopback up.
    pub fn new(prefix: &str) -> Netns {
        let ns = Netns { name: unique(prefix) };
        run(&["ip", "netns", "add", &ns.name]);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that will run inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs a command inside the namespace, panicking if it fails.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Sets a sysctl inside the namespace (`name=value`).
    pub fn sysctl(&self, setting: &str) {
        self.run(&["sysctl", "-qw", setting]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        run_quiet(&["ip", "netns", "del", &self.name]);
    }
}

/// A network namespace with one veth pair: `host_if` in the root namespace
/// (for DPDK), `ns_if` inside with [`KERNEL_IP`]/24 and [`KERNEL_MAC`].
/// IPv6 is off on both ends so that the link is quiet.
#[derive(Debug)]
pub struct Veth {
    /// Namespace name.
    pub ns: String,
    /// Root-namespace end.
    pub host_if: String,
    /// Namespace end.
    pub ns_if: String,
}

impl Veth {
    /// Creates the namespace and the pair, both ends up.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Veth {
        Veth::with_queues(1)
    }

    /// As [`Veth::new`], with `queues` rx and `queues` tx queues on both
    /// ends (`numrxqueues`/`numtxqueues`), for multi-queue ports.
    ///
    /// The namespace end picks a tx queue per flow (by the flow hash), and
    /// a veth delivers what its peer sent on tx queue `k` to its own rx
    /// queue `k` (which `net_af_xdp` binds to); `net_af_packet` spreads
    /// over its sockets by the flow hash (packet fanout) instead.
    pub fn with_queues(queues: u16) -> Veth {
        let veth = Veth::create(queues);
        veth.ns_run(&["sysctl", "-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", veth.ns_if)]);
        veth.ns_run(&["ip", "addr", "add", &format!("{KERNEL_IP}/24"), "dev", &veth.ns_if]);
        veth.ns_run(&["ip", "link", "set", &veth.ns_if, "up"]);
        veth
    }

    /// Creates the namespace and the pair with the namespace end holding
    /// `ipv4` and `ipv6` (each `addr/prefix`; the IPv6 one without duplicate
    /// address detection, so it is usable at once), both ends up. The root
    /// end has no address, IPv6 off and forwarding off: only DPDK answers
    /// on it.
    ///
    /// Transmit checksum offload is off on the namespace end: a veth leaves
    /// the checksums of what the kernel sends unfinished (`CHECKSUM_PARTIAL`)
    /// and `net_af_packet` hands such frames over as they are, so a stack
    /// verifying checksums would drop every UDP datagram.
    pub fn dual_stack(ipv4: &str, ipv6: &str) -> Veth {
        let veth = Veth::create(1);
        veth.ns_run(&["ethtool", "-K", &veth.ns_if, "tx", "off"]);
        veth.ns_run(&["sysctl", "-qw", &format!("net.ipv6.conf.{}.disable_ipv6=0", veth.ns_if)]);
        veth.ns_run(&["ip", "addr", "add", ipv4, "dev", &veth.ns_if]);
        veth.ns_run(&["ip", "-6", "addr", "add", ipv6, "dev", &veth.ns_if, "nodad"]);
        veth.ns_run(&["ip", "link", "set", &veth.ns_if, "up"]);
        veth
    }

    /// The namespace and the pair with `queues` queues each way on both
    /// ends, the root end up with IPv6 off, the namespace's loopback up; the
    /// namespace end is left down.
    fn create(queues: u16) -> Veth {
        let base = unique("jd");
        // Built before the first command, so that a failing step still
        // removes what the earlier ones made.
        let veth = Veth {
            ns: format!("{base}ns"),
            host_if: format!("{base}h"),
            ns_if: format!("{base}n"),
        };
        run(&["ip", "netns", "add", &veth.ns]);
        let queues = queues.to_string();
        add_host_veth(
            &veth.host_if,
            &queues,
            &[
                &veth.ns_if,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "address",
                &mac_str(KERNEL_MAC),
                "netns",
                &veth.ns,
            ],
        );
        host_end_quiet(&veth.host_if);
        run(&["ip", "link", "set", &veth.host_if, "up"]);
        veth.ns_run(&["ip", "link", "set", "lo", "up"]);
        veth
    }

    /// Runs a command inside the namespace, panicking if it fails.
    pub fn ns_run(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// A command that will run inside the namespace.
    pub fn ns_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).args(args);
        cmd
    }

    /// `dpdk_mac` answers for [`DPDK_IP`] in the kernel's neighbour table.
    pub fn add_neighbor(&self, dpdk_mac: [u8; 6]) {
        self.ns_run(&[
            "ip",
            "neigh",
            "replace",
            &DPDK_IP.to_string(),
            "lladdr",
            &mac_str(dpdk_mac),
            "dev",
            &self.ns_if,
            "nud",
            "permanent",
        ]);
    }

    /// A counter of the namespace end (`/sys/class/net/<if>/statistics/<name>`).
    pub fn ns_stat(&self, name: &str) -> u64 {
        let out = self.ns_run(&["cat", &format!("/sys/class/net/{}/statistics/{name}", self.ns_if)]);
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("counter")
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end and with it the pair.
        run_quiet(&["ip", "link", "del", &self.host_if]);
        run_quiet(&["ip", "netns", "del", &self.ns]);
    }
}

/// Creates a veth pair whose host end `host_if` has [`HOST_MAC`] and
/// `queues` rx and tx queues; `peer` is the peer's name followed by its
/// further `ip link` arguments.
fn add_host_veth(host_if: &str, queues: &str, peer: &[&str]) {
    let mac = mac_str(HOST_MAC);
    let mut args = vec![
        "ip",
        "link",
        "add",
        host_if,
        "numtxqueues",
        queues,
        "numrxqueues",
        queues,
        "address",
        &mac,
        "type",
        "veth",
        "peer",
        "name",
    ];
    args.extend_from_slice(peer);
    run(&args);
}

/// IPv6 and forwarding off on a root-namespace interface DPDK drives: where
/// the host forwards IPv4, it must not route what arrives on this end (and
/// answer for the addresses DPDK serves).
fn host_end_quiet(ifname: &str) {
    run(&["sysctl", "-qw", &format!("net.ipv6.conf.{ifname}.disable_ipv6=1")]);
    run(&["sysctl", "-qw", &format!("net.ipv4.conf.{ifname}.forwarding=0")]);
}

/// Turns off the offloads that would put frames larger than the MTU or
/// unfinished checksums on a link through `joyride-impair`.
fn offloads_off(ns: Option<&Netns>, ifname: &str) {
    let args = [
        "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
    ];
    match ns {
        Some(ns) => ns.run(&args),
        None => run(&args),
    };
}

/// What `joyride-impair` does to the frames it forwards (the same both
/// ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Impairment {
    /// Short name, for test output and benchmark tables.
    pub name: &'static str,
    /// `joyride-impair` options.
    pub args: &'static [&'static str],
    /// One-way delay, for path arithmetic.
    pub delay: Duration,
    /// Bandwidth, bits per second, if limited.
    pub rate_bps: Option<u64>,
}

impl Impairment {
    /// Forwarding only.
    pub const NONE: Impairment = Impairment {
        name: "none",
        args: &[],
        delay: Duration::ZERO,
        rate_bps: None,
    };
    /// 2% loss, 25% of frames reordered by 1 ms.
    pub const LOSS_REORDER: Impairment = Impairment {
        name: "2% loss + 25% reorder",
        args: &["--loss", "2%", "--reorder", "25%", "--reorder-delay", "1ms"],
        delay: Duration::ZERO,
        rate_bps: None,
    };
    /// 1% of frames duplicated, 0.1% with a flipped bit.
    pub const DUP_CORRUPT: Impairment = Impairment {
        name: "1% dup + 0.1% corrupt",
        args: &["--duplicate", "1%", "--corrupt", "0.1%"],
        delay: Duration::ZERO,
        rate_bps: None,
    };
    /// 50 ms each way at 1 Gbit/s (a 12.5 MB bandwidth-delay product).
    pub const DELAY_RATE: Impairment = Impairment {
        name: "50 ms @ 1 Gbit/s",
        args: &["--delay", "50ms", "--rate", "1gbit", "--limit", "20000"],
        delay: Duration::from_millis(50),
        rate_bps: Some(1_000_000_000),
    };
    /// The four, in the order tests and benchmarks report them.
    pub const ALL: [Impairment; 4] = [Self::NONE, Self::LOSS_REORDER, Self::DUP_CORRUPT, Self::DELAY_RATE];

    /// Bytes the path holds in flight at its rate (none without a rate).
    pub fn bdp_bytes(&self) -> Option<u64> {
        self.rate_bps
            .map(|r| (r as f64 / 8.0 * 2.0 * self.delay.as_secs_f64()) as u64)
    }
}

/// The `joyride-impair` binary: `JOYRIDE_IMPAIR` if set, else next to the
/// running executable's target profile directory (`<target>/<profile>/`,
/// found from `CARGO_TARGET_DIR` or the ancestors of
/// [`std::env::current_exe`]). Panics saying how to build it if absent.
pub fn impair_binary() -> PathBuf {
    if let Ok(p) = std::env::var("JOYRIDE_IMPAIR") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut candidates = Vec::new();
    // A test binary is <target>/<profile>/deps/x, a bench <target>/<profile>/x.
    for dir in exe.ancestors().skip(1).take(3) {
        candidates.push(dir.join("joyride-impair"));
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        for profile in ["debug", "release"] {
            candidates.push(PathBuf::from(&t).join(profile).join("joyride-impair"));
        }
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "joyride-impair not found next to {} or in $CARGO_TARGET_DIR/{{debug,release}}: build it with \
             `cargo build -p joyride-tests --bins` (scripts/test.sh does), or set JOYRIDE_IMPAIR",
            exe.display()
        )
    })
}

/// Frame counts one direction of `joyride-impair` reported when it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairCounts {
    /// Frames received.
    pub received: u64,
    /// Frames lost at random.
    pub lost: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Copies corrupted.
    pub corrupted: u64,
    /// Frames dropped by the rate limiter's queue.
    pub queue_drops: u64,
    /// Frames the kernel dropped before the forwarder read them.
    pub kernel_drops: u64,
}

/// The kernel at one end, `joyride-impair` in the middle, a DPDK port (or a
/// second kernel) at the other; see the [module docs](self). Removed on drop.
#[derive(Debug)]
pub struct ImpairedLink {
    /// The kernel's namespace: `k0` with [`KERNEL_V4`]/24 and
    /// [`KERNEL_V6`]/64, TCP buffers up to 64 MB.
    pub k: Netns,
    /// The forwarder's namespace.
    pub f: Netns,
    /// The end for DPDK, in the test's namespace.
    pub host_if: String,
    impair: Option<(Child, ChildStderr)>,
}

/// Frames the CPUs' input backlogs dropped since boot, all namespaces
/// together (`/proc/net/softnet_stat`, second column): a veth hands what it
/// sends to its peer through this backlog (`net.core.netdev_max_backlog`).
pub fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .map_or(0, |d| u64::from_str_radix(d, 16).unwrap_or(0))
        })
        .sum()
}

impl ImpairedLink {
    /// Builds the topology, without a forwarder yet ([`ImpairedLink::impair`]).
    #[allow(clippy::new_without_default)]
    pub fn new() -> ImpairedLink {
        let k = Netns::new("jtk");
        let f = Netns::new("jtf");
        let base = unique("jt");
        let link = ImpairedLink {
            k,
            f,
            host_if: format!("{base}h"),
            impair: None,
        };
        let (k, f) = (&link.k.name, &link.f.name);
        let (kf, hf) = (format!("{base}a"), format!("{base}b"));
        run(&[
            "ip",
            "link",
            "add",
            "k0",
            "netns",
            k,
            "address",
            &mac_str(KERNEL_MAC),
            "type",
            "veth",
            "peer",
            "name",
            &kf,
        ]);
        run(&["ip", "link", "set", &kf, "netns", f, "name", "f0"]);
        add_host_veth(&link.host_if, "1", &[&hf]);
        run(&["ip", "link", "set", &hf, "netns", f, "name", "f1"]);
        for ifname in ["f0", "f1"] {
            link.f.sysctl(&format!("net.ipv6.conf.{ifname}.disable_ipv6=1"));
            offloads_off(Some(&link.f), ifname);
            link.f.run(&["ip", "link", "set", ifname, "up"]);
        }
        host_end_quiet(&link.host_if);
        offloads_off(None, &link.host_if);
        run(&["ip", "link", "set", &link.host_if, "up"]);
        link.k.sysctl("net.ipv6.conf.k0.disable_ipv6=0");
        offloads_off(Some(&link.k), "k0");
        link.k
            .run(&["ip", "addr", "add", &format!("{KERNEL_V4}/24"), "dev", "k0"]);
        link.k.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{KERNEL_V6}/64"),
            "dev",
            "k0",
            "nodad",
        ]);
        link.k.run(&["ip", "link", "set", "k0", "up"]);
        raise_tcp_buffers(&link.k);
        link
    }

    /// (Re)starts `joyride-impair` between `f0` and `f1` with `imp` and
    /// `seed`, returning the counts of the one it replaced (kernel to far end,
    /// far end to kernel).
    pub fn impair(&mut self, imp: &Impairment, seed: u64) -> Option<[ImpairCounts; 2]> {
        let old = self.stop_impair();
        let bin = impair_binary();
        let seed = seed.to_string();
        let mut args = vec![
            bin.to_str().expect("utf-8 path"),
            "--a",
            "f0",
            "--b",
            "f1",
            "--seed",
            &seed,
        ];
        args.extend_from_slice(imp.args);
        let mut child = self
            .f
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("joyride-impair stderr");
        assert!(
            line.contains("forwarding"),
            "joyride-impair did not start: {line}{}",
            child.wait().map(|s| s.to_string()).unwrap_or_default()
        );
        self.impair = Some((child, stderr.into_inner()));
        old
    }

    /// Stops the forwarder (SIGTERM) and returns its counts (kernel to far
    /// end, far end to kernel), if one ran.
    pub fn stop_impair(&mut self) -> Option<[ImpairCounts; 2]> {
        let (mut child, mut stderr) = self.impair.take()?;
        run(&["kill", "-TERM", &child.id().to_string()]);
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = child.wait();
        let mut counts = [ImpairCounts::default(); 2];
        for line in text.lines() {
            let dir = if line.contains(": f0 -> f1:") {
                0
            } else if line.contains(": f1 -> f0:") {
                1
            } else {
                continue;
            };
            let field = |name: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            counts[dir] = ImpairCounts {
                received: field("received"),
                lost: field("lost"),
                duplicated: field("duplicated"),
                corrupted: field("corrupted"),
                queue_drops: field("queue_drops"),
                kernel_drops: field("kernel_drops"),
            };
        }
        Some(counts)
    }

    /// The drop counters along the path, for finding where frames went
    /// missing: each veth end's `ip -s link` totals (a veth counts a frame
    /// its peer's backlog refused as a transmit drop), the CPUs' backlog
    /// drops (`/proc/net/softnet_stat`, second column, all namespaces), and
    /// the kernel namespace's nonzero TCP/IP drop counters (`nstat -asz`).
    pub fn drop_counters(&self) -> String {
        let link = |ns: Option<&Netns>, ifname: &str| {
            let args = ["ip", "-s", "-o", "link", "show", ifname];
            let out = match ns {
                Some(ns) => ns.command(&args).output(),
                None => Command::new(args[0]).args(&args[1..]).output(),
            };
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            // One line, parts split by backslashes: "... \    RX:  bytes
            // packets errors dropped missed mcast \    <numbers> \    TX: ...".
            let parts: Vec<&str> = text.split('\\').map(str::trim).collect();
            let after = |head: &str| {
                parts
                    .iter()
                    .position(|p| p.starts_with(head))
                    .and_then(|i| parts.get(i + 1))
                    .map_or("?".to_string(), |p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            };
            format!("{ifname}: rx [{}] tx [{}]", after("RX:"), after("TX:"))
        };
        let softnet = softnet_drops();
        let nstat = self
            .k
            .command(&["nstat", "-asz"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let drops: Vec<String> = nstat
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (name, value) = (w.next()?, w.next()?.parse::<u64>().ok()?);
                let lower = name.to_ascii_lowercase();
                let interesting = [
                    "drop", "retrans", "prune", "collapse", "ofo", "discard", "overflow", "lost", "probe", "timeout",
                    "spurious", "dsack", "undo",
                ]
                .iter()
                .any(|k| lower.contains(k));
                (value > 0 && interesting).then(|| format!("{name}={value}"))
            })
            .collect();
        format!(
            "(rx: bytes packets errors dropped missed mcast; tx: bytes packets errors dropped carrier collisions)\n  {}\n  {}\n  {}\n  {}\n  softnet backlog drops {softnet} (since boot)\n  \
             kernel ns nstat: {}",
            link(Some(&self.k), "k0"),
            link(Some(&self.f), "f0"),
            link(Some(&self.f), "f1"),
            link(None, &self.host_if),
            drops.join(" ")
        )
    }

    /// A DPDK `net_af_packet` port on `host_if`, as a NIC.
    pub fn dpdk_nic(&self) -> DpdkNic {
        let eal = eal();
        let id = eal
            .probe_vdev(&format!(
                "{},iface={},framesz=2048,blocksz=4096,framecnt=4096",
                unique("net_af_packet"),
                self.host_if
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let pool = Mempool::new(&eal, &unique("jtb"), 16383, 256, Mempool::DEFAULT_DATA_ROOM).expect("mempool");
        let config = PortConfig {
            rx_desc: 4096,
            tx_desc: 4096,
            ..PortConfig::default()
        };
        let port = Port::start(&eal, id, pool, &config).unwrap_or_else(|e| panic!("{e}"));
        DpdkNic::new(port)
    }

    /// Moves `host_if` into a new namespace holding the stack's addresses, for
    /// a kernel-to-kernel run over the same link (call before any
    /// [`ImpairedLink::dpdk_nic`]).
    pub fn kernel_far_end(&self) -> Netns {
        let l = Netns::new("jtl");
        run(&["ip", "link", "set", &self.host_if, "netns", &l.name, "name", "l0"]);
        l.sysctl("net.ipv6.conf.l0.disable_ipv6=0");
        l.run(&["ip", "addr", "add", &format!("{STACK_V4}/24"), "dev", "l0"]);
        l.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{STACK_V6}/64"),
            "dev",
            "l0",
            "nodad",
        ]);
        l.run(&["ip", "link", "set", "l0", "up"]);
        raise_tcp_buffers(&l);
        l
    }
}

impl Drop for ImpairedLink {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.impair.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        run_quiet(&["ip", "link", "del", &self.host_if]);
        // `k` and `f` go after this, taking their interfaces along.
    }
}

/// TCP buffers of a namespace up to 64 MB, so that the kernel never limits
/// a window the path needs (12.5 MB at 1 Gbit/s over 100 ms).
fn raise_tcp_buffers(ns: &Netns) {
    ns.sysctl("net.ipv4.tcp_rmem=4096 131072 67108864");
    ns.sysctl("net.ipv4.tcp_wmem=4096 65536 67108864");
}

/// What the stack thread does besides polling: called after every poll with
/// the interface and the time.
pub trait Task: Send {
    /// Does what is possible without blocking.
    fn step(&mut self, iface: &mut Interface, now: Instant) -> Step;
}

/// What a [`Task`] step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Made progress: call again at once.
    Busy,
    /// Nothing to do until the stack moves.
    Idle,
    /// Finished: drop the task.
    Done,
}

impl<F: FnMut(&mut Interface, Instant) -> Step + Send> Task for F {
    fn step(&mut self, iface: &mut Interface, now: Instant) -> Step {
        self(iface, now)
    }
}

/// What the stack thread and its owner share.
struct Shared {
    iface: Interface,
    nic: DpdkNic,
    tasks: Vec<Box<dyn Task>>,
}

/// An [`Interface`] over a [`DpdkNic`], polled in a background thread on
/// the system clock, running [`Task`]s between polls. Dropping it stops the
/// thread (and with it the port); a panic in the thread is re-raised then.
pub struct StackThread {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    clock: SystemClock,
}

impl std::fmt::Debug for StackThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackThread").finish_non_exhaustive()
    }
}

/// The stack's configuration on an [`ImpairedLink`]: [`STACK_V4`]/24,
/// [`STACK_V6`]/64, and TCP buffers of 32 MB (the 50 ms @ 1 Gbit/s path
/// needs 12.5 MB in flight). `JOYRIDE_STRETCH_ACKS=1` turns on
/// [`TcpConfig::stretch_acks`](joyride_netstack::iface::TcpConfig::stretch_acks),
/// to compare.
pub fn stack_config(mac: [u8; 6]) -> Config {
    let mut config = Config::new(EthernetAddress(mac));
    config.ipv4 = Some(Ipv4Cidr::new(STACK_V4, 24));
    config.ipv6 = vec![Ipv6Cidr::new(STACK_V6, 64)];
    config.tcp.send_buffer = 32 << 20;
    config.tcp.recv_buffer = 32 << 20;
    config.tcp.stretch_acks = std::env::var_os("JOYRIDE_STRETCH_ACKS").is_some_and(|v| v == "1");
    config.seed = u64::from(std::process::id());
    config
}

impl StackThread {
    /// Starts polling `iface` over `nic`.
    pub fn start(iface: Interface, nic: DpdkNic) -> StackThread {
        let shared = Arc::new(Mutex::new(Shared {
            iface,
            nic,
            tasks: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let clock = SystemClock::new();
        let poller = std::thread::Builder::new()
            .name("stack-poll".into())
            .spawn({
                let (shared, stop) = (shared.clone(), stop.clone());
                move || poll_loop(&shared, &stop, clock)
            })
            .expect("spawn poll thread");
        StackThread {
            shared,
            stop,
            poller: Some(poller),
            clock,
        }
    }

    /// Runs `f` on the interface (the poll thread waits meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&mut Interface) -> R) -> R {
        f(&mut lock(&self.shared).iface)
    }

    /// The system clock the stack runs on, now.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Adds a task to run after every poll until it is done.
    pub fn spawn(&self, task: impl Task + 'static) {
        lock(&self.shared).tasks.push(Box::new(task));
    }

    /// Whether the poll thread still runs (it stops if the stack panics).
    pub fn alive(&self) -> bool {
        matches!(&self.poller, Some(t) if !t.is_finished())
    }

    /// The stack's, TCP's and the port's counters, for failure messages.
    pub fn diagnostics(&self) -> String {
        let died = !self.alive();
        let s = lock(&self.shared);
        format!(
            "{}stack {:?}\ntcp {:?}\nsyncache {:?}\nport {:?} {:?}",
            if died {
                "THE POLL THREAD DIED (the stack panicked?)\n"
            } else {
                ""
            },
            s.iface.counters(),
            s.iface.tcp_counters(),
            s.iface.tcp_syncache_stats(),
            s.nic.counters(),
            s.nic.port().stats()
        )
    }
}

impl Drop for StackThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.poller.take() {
            // A panic in the stack fails the test even if it went unnoticed.
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the stack's poll thread panicked");
            }
        }
    }
}

/// Locks `m`, also after a panic elsewhere poisoned the lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stack's loop: poll the port, run the tasks, poll again to send what
/// they queued; sleep ~20 µs when nothing moved and no timer is due.
fn poll_loop(shared: &Mutex<Shared>, stop: &AtomicBool, clock: SystemClock) {
    while !stop.load(Ordering::Relaxed) {
        let busy = {
            let Shared { iface, nic, tasks } = &mut *lock(shared);
            let now = clock.now();
            let received = iface.poll(now, nic);
            iface.drain_events().for_each(drop);
            let mut worked = false;
            tasks.retain_mut(|t| match t.step(iface, now) {
                Step::Busy => {
                    worked = true;
                    true
                }
                Step::Idle => true,
                Step::Done => false,
            });
            if worked {
                iface.poll(clock.now(), nic);
            }
            received > 0 || worked || nic.queued() > 0 || iface.poll_at().is_some_and(|t| t <= clock.now())
        };
        if !busy {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Which end opens the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The stack connects to the kernel.
    StackClient,
    /// The kernel connects to the stack.
    StackServer,
}

/// One bulk transfer between the stack and the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSpec {
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// Who connects.
    pub role: Role,
    /// The stack sends (else the kernel does).
    pub stack_sends: bool,
    /// Bytes to move.
    pub bytes: u64,
    /// The server's port.
    pub port: u16,
}

impl std::fmt::Display for TransferSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} MB {} {}, stack as {}",
            self.bytes / 1_000_000,
            if self.v6 { "IPv6" } else { "IPv4" },
            if self.stack_sends {
                "Joyride->kernel"
            } else {
                "kernel->Joyride"
            },
            match self.role {
                Role::StackClient => "client",
                Role::StackServer => "server",
            }
        )
    }
}

/// The kernel's end of a transfer. argv: mode (`listen` or `connect`),
/// what (`send` or `recv`), family (4/6), host, port, bytes. Prints `ready`
/// once listening, then `bytes sha256 seconds total_retrans bytes_retrans
/// snd_wscale rcv_wscale` (the last four from `TCP_INFO`, taken before
/// closing). A sender shuts down writing after the last byte and waits for
/// the peer's close; a receiver reads to end of file and closes.
pub const KERNEL_PEER_PY: &str = r"
import hashlib, os, socket, struct, sys, time
mode, what, fam, host, port, nbytes = sys.argv[1:7]
port, nbytes = int(port), int(nbytes)
af = socket.AF_INET6 if fam == '6' else socket.AF_INET
if mode == 'listen':
    l = socket.socket(af, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(8)
    print('ready', flush=True)
    s, _ = l.accept()
else:
    s = socket.socket(af, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((host, port))
    s.settimeout(None)
h = hashlib.sha256()
n = 0
t0 = time.monotonic()
if what == 'send':
    while n < nbytes:
        b = os.urandom(min(1 << 20, nbytes - n))
        h.update(b)
        s.sendall(b)
        n += len(b)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
else:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        k = s.recv_into(buf)
        if k == 0:
            break
        h.update(view[:k])
        n += k
secs = time.monotonic() - t0
ti = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
total_retrans = struct.unpack_from('I', ti, 100)[0]
bytes_retrans = struct.unpack_from('Q', ti, 208)[0] if len(ti) >= 216 else 0
print(n, h.hexdigest(), secs, total_retrans, bytes_retrans, ti[6] & 15, ti[6] >> 4, flush=True)
s.close()
";

/// What the kernel's end reported.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelEnd {
    /// Bytes sent or received.
    pub bytes: u64,
    /// SHA-256 of them, hex.
    pub sha256: String,
    /// Seconds from connection to the end of the transfer.
    pub secs: f64,
    /// Segments retransmitted (`tcpi_total_retrans`).
    pub total_retrans: u64,
    /// Bytes retransmitted (`tcpi_bytes_retrans`).
    pub bytes_retrans: u64,
    /// `tcpi_snd_wscale`, `tcpi_rcv_wscale`.
    pub wscale: (u8, u8),
}

/// A kernel-side program of a transfer, running in a namespace; killed on
/// drop.
#[derive(Debug)]
pub struct KernelPeer {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl KernelPeer {
    /// Starts [`KERNEL_PEER_PY`] in `ns` (within `timeout 600`); a
    /// listener is listening when this returns.
    pub fn start(ns: &Netns, listen: bool, send: bool, v6: bool, host: IpAddr, port: u16, bytes: u64) -> KernelPeer {
        let (port, bytes, host) = (port.to_string(), bytes.to_string(), host.to_string());
        let mut child = ns
            .command(&[
                "timeout",
                "600",
                "python3",
                "-c",
                KERNEL_PEER_PY,
                if listen { "listen" } else { "connect" },
                if send { "send" } else { "recv" },
                if v6 { "6" } else { "4" },
                &host,
                &port,
                &bytes,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        std::thread::spawn({
            let stderr = stderr.clone();
            move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                lock(&stderr).push_str(&s);
            }
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = KernelPeer { child, lines, stderr };
        if listen {
            let line = peer.line(Duration::from_secs(30));
            assert_eq!(line.as_deref(), Some("ready"), "kernel listener: {}", peer.stderr());
        }
        peer
    }

    /// The next line printed, waiting up to `timeout`.
    fn line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// What the program wrote to stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// The program's report, waiting up to `timeout`; `Err` with its stderr
    /// if it printed none.
    pub fn finish(&mut self, timeout: Duration) -> Result<KernelEnd, String> {
        let line = self.line(timeout);
        let _ = self.child.wait();
        let line = line.ok_or_else(|| format!("no report; stderr: {}", self.stderr()))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if f.len() < 7 {
            return Err(format!("bad report {line:?}; stderr: {}", self.stderr()));
        }
        Ok(KernelEnd {
            bytes: num(0),
            sha256: f[1].to_owned(),
            secs: f[2].parse().unwrap_or(0.0),
            total_retrans: num(3),
            bytes_retrans: num(4),
            wscale: (num(5) as u8, num(6) as u8),
        })
    }
}

impl Drop for KernelPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Progress of the stack's end of a transfer, visible while it runs.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The connection, once there is one.
    pub conn: Option<SocketHandle>,
    /// Bytes acknowledged by the peer (sending) or received (receiving).
    pub bytes: u64,
    /// `(time since the connection was established, bytes)` every 50 ms.
    pub samples: Vec<(Duration, u64)>,
    /// The connection's statistics, refreshed with each sample.
    pub info: Option<TcpInfo>,
    /// Largest congestion window seen, bytes.
    pub max_cwnd: u32,
    /// Largest peer window seen, bytes.
    pub max_snd_wnd: u32,
    /// Largest receive window we announced, bytes.
    pub max_rcv_wnd: u32,
    /// SHA-256 of what was sent or received, hex, when done.
    pub sha256: Option<String>,
    /// The transfer ended: all acknowledged and the peer closed (sending),
    /// or end of file (receiving).
    pub done: bool,
    /// An error from the socket.
    pub error: Option<SocketError>,
}

impl Progress {
    /// Bytes per second from the time the transfer passed `from` of its
    /// bytes to its end: the steady rate, once slow start is over.
    pub fn rate_after(&self, from: f64) -> f64 {
        let total = self.bytes;
        // The end is when the last byte moved, not the close after it.
        let Some(&(t_end, b_end)) = self.samples.iter().find(|&&(_, b)| b >= total) else {
            return 0.0;
        };
        let mark = (total as f64 * from) as u64;
        let Some(&(t0, b0)) = self.samples.iter().find(|&&(_, b)| b >= mark) else {
            return 0.0;
        };
        let secs = (t_end - t0).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            (b_end - b0) as f64 / secs
        }
    }

    /// Seconds from the connection to the end.
    pub fn elapsed(&self) -> Duration {
        self.samples.last().map_or(Duration::ZERO, |&(t, _)| t)
    }
}

/// Bytes the sender generates at a time.
const BLOCK: usize = 256 << 10;

/// The stack's end of a transfer as a [`Task`]: connects (or accepts on
/// `listener`), sends pseudo-random bytes or receives, hashing them, and
/// publishes [`Progress`].
struct TransferTask {
    spec: TransferSpec,
    listener: Option<SocketHandle>,
    conn: Option<SocketHandle>,
    start: Option<Instant>,
    last_sample: Option<Instant>,
    hash: Sha256,
    rng: u64,
    block: Vec<u8>,
    block_off: usize,
    generated: u64,
    shut: bool,
    progress: Arc<Mutex<Progress>>,
}

impl TransferTask {
    fn step(&mut self, iface: &mut Interface, now: Instant) -> Step {
        let Some(c) = self.conn else {
            let Some(l) = self.listener else {
                unreachable!("a client connects at start")
            };
            match iface.tcp_accept(l) {
                Ok((c, _)) => {
                    let _ = iface.tcp_close(l);
                    self.conn = Some(c);
                    lock(&self.progress).conn = Some(c);
                }
                Err(SocketError::WouldBlock) => return Step::Idle,
                Err(e) => return self.fail(e),
            }
            return Step::Busy;
        };
        let info = iface.tcp_info(c).ok().flatten();
        if self.start.is_none() {
            match info {
                Some(i) if i.state != joyride_netstack::tcp::tcb::State::SynSent => self.start = Some(now),
                _ => {
                    if let Ok(Some(e)) = iface.tcp_take_error(c) {
                        return self.fail(e);
                    }
                    return Step::Idle;
                }
            }
        }
        let mut busy = false;
        let mut eof = false;
        if self.spec.stack_sends {
            while self.generated < self.spec.bytes || self.block_off < self.block.len() {
                if self.block_off == self.block.len() {
                    let n = (self.spec.bytes - self.generated).min(BLOCK as u64) as usize;
                    self.block.resize(n, 0);
                    for chunk in self.block.chunks_mut(8) {
                        // xorshift64*
                        self.rng ^= self.rng >> 12;
                        self.rng ^= self.rng << 25;
                        self.rng ^= self.rng >> 27;
                        let v = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                        chunk.copy_from_slice(&v[..chunk.len()]);
                    }
                    self.hash.update(&self.block);
                    self.generated += n as u64;
                    self.block_off = 0;
                }
                match iface.tcp_send(c, &self.block[self.block_off..]) {
                    Ok(n) => {
                        self.block_off += n;
                        busy |= n > 0;
                        if n == 0 {
                            break;
                        }
                    }
                    Err(SocketError::WouldBlock) => break,
                    Err(e) => return self.fail(e),
                }
            }
            if self.generated == self.spec.bytes && self.block_off == self.block.len() && !self.shut {
                if let Err(e) = iface.tcp_shutdown(c, false, true) {
                    return self.fail(e);
                }
                self.shut = true;
            }
            let mut buf = [0u8; 512];
            match iface.tcp_recv(c, &mut buf) {
                Ok(0) => eof = true,
                Ok(_) => return self.fail(SocketError::ProtocolError),
                Err(SocketError::WouldBlock) => {}
                Err(e) => return self.fail(e),
            }
        } else {
            let mut total = lock(&self.progress).bytes;
            loop {
                match iface.tcp_recv(c, &mut self.block) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.hash.update(&self.block[..n]);
                        total += n as u64;
                        busy = true;
                    }
                    Err(SocketError::WouldBlock) => break,
                    Err(e) => return self.fail(e),
                }
            }
            lock(&self.progress).bytes = total;
        }
        let start = self.start.expect("connected");
        let sample_due = !matches!(self.last_sample, Some(t) if now - t < Duration::from_millis(50));
        if sample_due || eof {
            self.last_sample = Some(now);
            let mut p = lock(&self.progress);
            if let Some(i) = info {
                if self.spec.stack_sends {
                    p.bytes = i.bytes_acked.min(self.spec.bytes);
                }
                p.max_cwnd = p.max_cwnd.max(i.cwnd);
                p.max_snd_wnd = p.max_snd_wnd.max(i.snd_wnd);
                p.max_rcv_wnd = p.max_rcv_wnd.max(i.rcv_wnd);
                p.info = Some(i);
            }
            let b = p.bytes;
            p.samples.push((now - start, b));
        }
        if eof {
            let digest = self.hash.clone().finalize();
            let mut p = lock(&self.progress);
            p.sha256 = Some(digest.iter().map(|b| format!("{b:02x}")).collect());
            p.done = true;
            drop(p);
            let _ = iface.tcp_close(c);
            return Step::Done;
        }
        if busy {
            Step::Busy
        } else {
            Step::Idle
        }
    }

    fn fail(&mut self, e: SocketError) -> Step {
        let mut p = lock(&self.progress);
        p.error = Some(e);
        p.done = true;
        Step::Done
    }
}

impl Task for TransferTask {
    fn step(&mut self, iface: &mut Interface, now: Instant) -> Step {
        TransferTask::step(self, iface, now)
    }
}

/// Both ends' view of a finished (or failed) transfer.
#[derive(Debug, Clone)]
pub struct TransferOutcome {
    /// What ran.
    pub spec: TransferSpec,
    /// The stack's end.
    pub stack: Progress,
    /// The kernel's end, or why it reported nothing.
    pub kernel: Result<KernelEnd, String>,
    /// Wall time of the whole transfer.
    pub wall: Duration,
}

impl TransferOutcome {
    /// `Ok` if both ends moved all bytes with the same SHA-256; else what
    /// went wrong.
    pub fn check(&self) -> Result<(), String> {
        let k = self.kernel.as_ref().map_err(|e| format!("kernel end: {e}"))?;
        if let Some(e) = self.stack.error {
            return Err(format!("stack end: socket error {e:?}"));
        }
        if !self.stack.done {
            return Err("stack end did not finish".into());
        }
        if k.bytes != self.spec.bytes {
            return Err(format!("kernel moved {} of {} bytes", k.bytes, self.spec.bytes));
        }
        if self.stack.sha256.as_deref() != Some(&k.sha256) {
            return Err(format!(
                "SHA-256 differs: stack {:?}, kernel {}",
                self.stack.sha256, k.sha256
            ));
        }
        Ok(())
    }
}

/// Runs one transfer between `stack` and the kernel in `link.k`, waiting
/// up to `timeout`, or until nothing moved for 60 s. Never panics on a
/// failed transfer: [`TransferOutcome::check`] says what failed.
pub fn transfer(stack: &StackThread, link: &ImpairedLink, spec: TransferSpec, timeout: Duration) -> TransferOutcome {
    let (family, stack_ip, kernel_ip): (Family, IpAddr, IpAddr) = if spec.v6 {
        (Family::V6 { v6only: true }, STACK_V6.into(), KERNEL_V6.into())
    } else {
        (Family::V4, STACK_V4.into(), KERNEL_V4.into())
    };
    let progress = Arc::new(Mutex::new(Progress::default()));
    let started = std::time::Instant::now();
    let mut task = TransferTask {
        spec,
        listener: None,
        conn: None,
        start: None,
        last_sample: None,
        hash: Sha256::new(),
        rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(spec.port),
        block: vec![0; BLOCK],
        block_off: BLOCK,
        generated: 0,
        shut: false,
        progress: progress.clone(),
    };
    if spec.stack_sends {
        task.block.clear();
        task.block_off = 0;
    }
    let mut kernel = match spec.role {
        Role::StackServer => {
            let l = stack.with(|iface| {
                let l = iface.tcp_open(family);
                iface.tcp_bind(l, SocketAddr::new(stack_ip, spec.port)).expect("bind");
                iface.tcp_listen(l, 8).expect("listen");
                l
            });
            task.listener = Some(l);
            stack.spawn(task);
            KernelPeer::start(
                &link.k,
                false,
                !spec.stack_sends,
                spec.v6,
                stack_ip,
                spec.port,
                spec.bytes,
            )
        }
        Role::StackClient => {
            let peer = KernelPeer::start(
                &link.k,
                true,
                !spec.stack_sends,
                spec.v6,
                kernel_ip,
                spec.port,
                spec.bytes,
            );
            let c = stack.with(|iface| {
                let c = iface.tcp_open(family);
                match iface.tcp_connect(c, SocketAddr::new(kernel_ip, spec.port)) {
                    Ok(()) => {}
                    Err(e) => panic!("connect: {e:?}"),
                }
                c
            });
            task.conn = Some(c);
            lock(&progress).conn = Some(c);
            stack.spawn(task);
            peer
        }
    };
    let deadline = started + timeout;
    let mut last = (std::time::Instant::now(), 0u64);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let (done, bytes) = {
            let p = lock(&progress);
            (p.done, p.bytes)
        };
        if done || !stack.alive() {
            break;
        }
        let now = std::time::Instant::now();
        if bytes != last.1 {
            last = (now, bytes);
        }
        if now >= deadline || now - last.0 > Duration::from_secs(60) {
            break;
        }
    }
    let stack_done = lock(&progress).done;
    let kernel = if stack_done {
        kernel.finish(Duration::from_secs(60))
    } else {
        Err(format!("stalled; kernel stderr: {}", kernel.stderr()))
    };
    let stack_end = lock(&progress).clone();
    TransferOutcome {
        spec,
        stack: stack_end,
        kernel,
        wall: started.elapsed(),
    }
}
