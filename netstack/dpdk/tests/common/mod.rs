//! Helpers for tests and benchmarks against the Linux kernel: a network
//! namespace with a veth pair into it (removed on drop, also when a test
//! panics), a one-per-process EAL, and hand-built frames.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use joyride_dpdk::{Eal, EalConfig};

/// Address the DPDK side uses.
pub const DPDK_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Address of the kernel side, in the namespace.
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// MAC of the namespace end of the veth.
pub const KERNEL_MAC: [u8; 6] = [0x02, 0x6a, 0x72, 0x00, 0x00, 0x02];
/// MAC of the root-namespace end of the veth (the DPDK port's).
pub const HOST_MAC: [u8; 6] = [0x02, 0x6a, 0x72, 0x00, 0x00, 0x01];

/// The process's EAL, initialised on first use (DPDK allows one init per
/// process, so every test in a binary shares it).
pub fn eal() -> Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    *EAL.get_or_init(|| {
        let prefix = format!("jrdpdk-test-{}", std::process::id());
        let mut config = EalConfig::no_huge(&prefix, 256);
        // Extra EAL arguments for debugging, e.g. `--log-level=pmd.net.*:debug`.
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
    pub fn new() -> Veth {
        let veth = Veth::create();
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
        let veth = Veth::create();
        veth.ns_run(&["ethtool", "-K", &veth.ns_if, "tx", "off"]);
        veth.ns_run(&["sysctl", "-qw", &format!("net.ipv6.conf.{}.disable_ipv6=0", veth.ns_if)]);
        veth.ns_run(&["ip", "addr", "add", ipv4, "dev", &veth.ns_if]);
        veth.ns_run(&["ip", "-6", "addr", "add", ipv6, "dev", &veth.ns_if, "nodad"]);
        veth.ns_run(&["ip", "link", "set", &veth.ns_if, "up"]);
        veth
    }

    /// The namespace and the pair, the root end up with IPv6 off, the
    /// namespace's loopback up; the namespace end is left down.
    fn create() -> Veth {
        let base = unique("jd");
        // Built before the first command, so that a failing step still
        // removes what the earlier ones made.
        let veth = Veth {
            ns: format!("{base}ns"),
            host_if: format!("{base}h"),
            ns_if: format!("{base}n"),
        };
        run(&["ip", "netns", "add", &veth.ns]);
        run(&[
            "ip",
            "link",
            "add",
            &veth.host_if,
            "address",
            &mac_str(HOST_MAC),
            "type",
            "veth",
            "peer",
            "name",
            &veth.ns_if,
            "address",
            &mac_str(KERNEL_MAC),
            "netns",
            &veth.ns,
        ]);
        run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", veth.host_if),
        ]);
        // Where the host forwards IPv4, it must not route what arrives on
        // this end (and answer for the addresses DPDK serves).
        run(&["sysctl", "-qw", &format!("net.ipv4.conf.{}.forwarding=0", veth.host_if)]);
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

/// The Internet checksum of `data` folded with `initial`.
pub fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sum of the IPv4 UDP pseudo-header, unfolded.
fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: u16) -> u32 {
    let mut sum = 17u32 + u32::from(udp_len);
    for o in [src.octets(), dst.octets()] {
        sum += u32::from(u16::from_be_bytes([o[0], o[1]])) + u32::from(u16::from_be_bytes([o[2], o[3]]));
    }
    sum
}

/// How [`udp_frame`] fills checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csum {
    /// Both checksums complete, as a NIC without offload needs.
    Full,
    /// IPv4 checksum zero and UDP checksum holding the pseudo-header sum, as
    /// a NIC doing the offload expects.
    Offload,
}

/// Writes an Ethernet/IPv4/UDP frame into `buf` (which must be exactly
/// 42 + payload bytes long).
#[allow(clippy::too_many_arguments)]
pub fn udp_frame(
    buf: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
    csum: Csum,
) {
    assert_eq!(buf.len(), 42 + payload.len());
    buf[0..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    let ip = &mut buf[14..34];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    if csum == Csum::Full {
        let c = checksum(0, ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let udp = &mut buf[34..];
    udp[0..2].copy_from_slice(&src.1.to_be_bytes());
    udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].fill(0);
    udp[8..].copy_from_slice(payload);
    let pseudo = pseudo_sum(src.0, dst.0, udp_len);
    let c = match csum {
        Csum::Full => match checksum(pseudo, udp) {
            0 => 0xffff,
            c => c,
        },
        // The folded (not inverted) pseudo-header sum.
        Csum::Offload => !checksum(pseudo, &[]),
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// The UDP payload of `frame` if it is Ethernet/IPv4/UDP to `port`.
pub fn udp_payload(frame: &[u8], port: u16) -> Option<&[u8]> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = frame.get(14 + ihl..)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != port {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    udp.get(8..len)
}
