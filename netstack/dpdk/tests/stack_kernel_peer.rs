//! The whole stack against the Linux kernel: a veth pair whose far end sits
//! in a network namespace the test creates (the kernel peer, with
//! [`KERNEL_V4`] and [`KERNEL_V6`]), the near end driven through DPDK's
//! `net_af_packet` by a [`joyride_netstack::iface::Interface`] with
//! [`STACK_V4`] and [`STACK_V6`], polled in a background thread on the
//! system clock and serving UDP echo on port 7.
//!
//! What a user would check, with the kernel's own tools as the peer: `ping`
//! and `ping -6` get replies; UDP datagrams of 1 to 60000 bytes (the large
//! ones fragmented both ways) come back byte for byte from the echo port and
//! reach a kernel server intact when the stack sends them; a closed port
//! answers port unreachable (`ECONNREFUSED`, `traceroute -U`, `tracepath`),
//! and the kernel's port unreachable reaches a stack socket; malformed,
//! corrupted, padded, optioned, fragmented, reordered, duplicated and
//! overlapping input is handled as Linux would and every drop counted, and
//! the stack keeps answering. Nothing is sent twice: a datagram lost on a
//! quiet veth fails its test.
//!
//! Two properties of `net_af_packet` over a veth shape the set-up: the
//! kernel leaves the checksums of what it sends unfinished unless transmit
//! offload is off on its end ([`common::Veth::dual_stack`] turns it off),
//! and the PMD asks the kernel to reassemble IPv4 fragments before it sees
//! them (so its ring frames and mbufs must hold 60000 bytes, and the
//! stack's IPv4 reassembly is not reached from this side; IPv6 fragments
//! arrive as sent).
//!
//! Needs root, `ping`, `ethtool` and `python3` (`scripts/setup.sh` installs
//! them; `traceroute` and `tracepath` are used when present). One EAL per
//! test binary; each test has its own namespace, veth pair and port.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{checksum, eal, unique, Veth, HOST_MAC, KERNEL_MAC};
use joyride_dpdk::{DpdkNic, Mempool, Port, PortConfig};
use joyride_netstack::iface::{Config, Counters, Family, Interface, Ipv4Cidr, Ipv6Cidr, SocketError, SocketHandle};
use joyride_netstack::nic::Nic;
use joyride_netstack::time::{Clock, SystemClock};
use joyride_netstack::wire::EthernetAddress;

/// The kernel's address, in the namespace.
const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The stack's address.
const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The kernel's IPv6 address, in the namespace.
const KERNEL_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
/// The stack's IPv6 address.
const STACK_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);
/// The stack's UDP echo port (RFC 862).
const ECHO_PORT: u16 = 7;
/// A port nobody listens on at the stack.
const CLOSED_PORT: u16 = 9;
/// Datagram sizes exchanged: tiny, one frame, a few fragments, near the
/// largest a datagram can be.
const SIZES: [usize; 4] = [1, 1400, 8000, 60000];
/// Bytes of one `net_af_packet` ring frame: room for a reassembled
/// 60000-byte IPv4 datagram (a multiple of the page size).
const RING_FRAME: usize = 61440;
/// How long to wait for what should take microseconds. Generous: CI
/// machines share their cores, and waiting only matters when something
/// is lost, which fails the test anyway.
const PATIENCE: Duration = Duration::from_secs(15);
/// Longest any command in the namespace may run.
const COMMAND_TIMEOUT: &str = "60";

/// Sends one datagram of each size in argv[3:] to argv[1] port 7 (argv[2]
/// is the family, 4 or 6), each from a new socket, waits up to 15 s for the
/// echo, and prints per size: `size len-received identical peer-host
/// peer-port` (`0 False - 0` when nothing came back).
const ECHO_CLIENT_PY: &str = "
import socket, sys
host, fam = sys.argv[1], sys.argv[2]
af = socket.AF_INET6 if fam == '6' else socket.AF_INET
for size in map(int, sys.argv[3:]):
    data = bytes((i * 31 + size) % 256 for i in range(size))
    s = socket.socket(af, socket.SOCK_DGRAM)
    s.settimeout(15.0)
    got, peer = b'', ('-', 0)
    s.sendto(data, (host, 7))
    try:
        got, peer = s.recvfrom(65536)
    except socket.timeout:
        pass
    print(size, len(got), got == data, peer[0], peer[1], flush=True)
    s.close()
";

/// Binds a UDP server on argv[1]:argv[2] (argv[3] the family), prints
/// `ready`, then `len hex host port` for every datagram until 20 s pass
/// without one.
const SERVER_PY: &str = "
import socket, sys
af = socket.AF_INET6 if sys.argv[3] == '6' else socket.AF_INET
s = socket.socket(af, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(20)
print('ready', flush=True)
while True:
    data, peer = s.recvfrom(65536)
    print(len(data), data.hex(), peer[0], peer[1], flush=True)
";

/// Connects a UDP socket to argv[1]:argv[2] (argv[3] the family), sends a
/// datagram and prints what the next receive reports: `refused` for
/// `ECONNREFUSED`, `timeout`, or `data`.
const CLOSED_PORT_PY: &str = "
import socket, sys
af = socket.AF_INET6 if sys.argv[3] == '6' else socket.AF_INET
s = socket.socket(af, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
s.settimeout(15)
s.send(b'anyone there?')
try:
    s.recv(100)
    print('data')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')
";

/// Sends each hex-encoded frame in argv[2:] out of interface argv[1] from a
/// raw `AF_PACKET` socket, exactly as given.
const RAW_SEND_PY: &str = "
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for h in sys.argv[2:]:
    f = bytes.fromhex(h)
    assert s.send(f) == len(f)
print('sent', len(sys.argv) - 2)
";

/// Echo exchanges with what a kernel may put on the wire besides plain
/// datagrams; argv[1] is the stack's IPv4 address. Prints one line per case:
/// `name identical`.
/// - `ip_options`: IPv4 header with options (`IP_OPTIONS`, four NOPs: IHL 6);
/// - `no_checksum`: IPv4 UDP with checksum 0 (`SO_NO_CHECK`), which RFC 768
///   allows.
const ECHO_EXTRAS_PY: &str = "
import socket, sys
host = sys.argv[1]
def echo(name, setup):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    setup(s)
    s.settimeout(15)
    data = name.encode() * 50
    s.sendto(data, (host, 7))
    got = s.recv(65536)
    print(name, got == data, flush=True)
echo('ip_options', lambda s: s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([1, 1, 1, 1])))
echo('no_checksum', lambda s: s.setsockopt(socket.SOL_SOCKET, 11, 1))  # SO_NO_CHECK
";

/// Sends an IPv6 UDP datagram with checksum 0 (`UDP_NO_CHECK6_TX`), which
/// RFC 8200 section 8.1 forbids, to argv[1] port 7.
const V6_ZERO_CHECKSUM_PY: &str = "
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 101, 1)  # UDP_NO_CHECK6_TX
s.sendto(b'no checksum', (sys.argv[1], 7))
";

/// Binds UDP argv[2]:5555 (IPv4 or IPv6), sends the hex frames argv[4:]
/// out of interface argv[1] from a raw socket, and prints the hex of the
/// first datagram that comes back to 5555 within argv[3] seconds, or
/// `none`.
const RAW_ECHO_PY: &str = "
import socket, sys
af = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET
u = socket.socket(af, socket.SOCK_DGRAM)
u.bind((sys.argv[2], 5555))
u.settimeout(float(sys.argv[3]))
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
r.bind((sys.argv[1], 0))
for h in sys.argv[4:]:
    r.send(bytes.fromhex(h))
try:
    print(u.recv(65536).hex())
except socket.timeout:
    print('none')
";

/// Provokes an ICMP error from argv[2] (the stack) and prints the first
/// ICMP error (`type code`) that comes back from it within 15 s, or `none`.
/// argv[1] is the case: `proto4` (IPv4 packet of unassigned protocol 253),
/// `proto6` (IPv6 packet with Next Header 253), `dstopt6` (UDP behind a
/// destination option of unknown type 0x80: "discard and send Parameter
/// Problem").
const ICMP_ERROR_PY: &str = "
import socket, sys, time
case, host = sys.argv[1], sys.argv[2]
v6 = case != 'proto4'
af = socket.AF_INET6 if v6 else socket.AF_INET
icmp = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
listen = socket.socket(af, socket.SOCK_RAW, icmp)
if case == 'dstopt6':
    s = socket.socket(af, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, 59, bytes([0, 0, 0x80, 4, 0, 0, 0, 0]))
    s.sendto(b'unknown option', (host, 7))
else:
    s = socket.socket(af, socket.SOCK_RAW, 253)
    s.sendto(b'unknown protocol', (host, 0))
errors = (1, 2, 3, 4) if v6 else (3, 11, 12)
deadline = time.time() + 15
while time.time() < deadline:
    listen.settimeout(max(deadline - time.time(), 0.01))
    try:
        pkt, peer = listen.recvfrom(2048)
    except socket.timeout:
        break
    body = pkt if v6 else pkt[(pkt[0] & 15) * 4:]
    if peer[0] == host and body[0] in errors:
        print(body[0], body[1])
        sys.exit(0)
print('none')
";

/// The pattern of a `size`-byte datagram (the same as [`ECHO_CLIENT_PY`]'s).
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + size) % 256) as u8).collect()
}

/// Lowercase hex.
fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Kills a child process on drop (tests may panic while it runs).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stack on one end of a veth pair, the kernel on the other.
///
/// Dropping it stops the poll thread (and with it the port), then removes
/// the namespace and the pair, also when a test panics.
struct StackPeer {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    veth: Veth,
}

impl StackPeer {
    /// Creates the namespace and the pair, starts a `net_af_packet` port on
    /// the root end and the stack polling it, with UDP echo on port 7.
    fn start() -> StackPeer {
        let veth = Veth::dual_stack(&format!("{KERNEL_V4}/24"), &format!("{KERNEL_V6}/64"));
        let eal = eal();
        // `net_af_packet` joins its socket to a fanout group with
        // PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles IPv4 fragments
        // before the port sees them: ring frames and mbufs must hold a whole
        // 60000-byte datagram, or it arrives truncated.
        let id = eal
            .probe_vdev(&format!(
                "{},iface={},framesz={RING_FRAME},blocksz={RING_FRAME},framecnt=128",
                unique("net_af_packet"),
                veth.host_if
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let pool = Mempool::new(&eal, &unique("jsk"), 511, 32, u16::MAX).expect("mempool");
        let port = Port::start(&eal, id, pool, &PortConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let nic = DpdkNic::new(port);
        assert_eq!(nic.mac(), HOST_MAC);

        let mut config = Config::new(EthernetAddress(nic.mac()));
        config.ipv4 = Some(Ipv4Cidr::new(STACK_V4, 24));
        config.ipv6 = vec![Ipv6Cidr::new(STACK_V6, 64)];
        let mut iface = Interface::new(config);
        let echo_v4 = iface.udp_open(Family::V4);
        iface
            .udp_bind(echo_v4, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), ECHO_PORT))
            .expect("bind echo v4");
        let echo_v6 = iface.udp_open(Family::V6 { v6only: true });
        iface
            .udp_bind(echo_v6, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), ECHO_PORT))
            .expect("bind echo v6");

        let shared = Arc::new(Mutex::new(Shared { iface, nic }));
        let stop = Arc::new(AtomicBool::new(false));
        let poller = std::thread::Builder::new()
            .name("stack-poll".into())
            .spawn({
                let (shared, stop) = (shared.clone(), stop.clone());
                move || poll_loop(&shared, [echo_v4, echo_v6], &stop)
            })
            .expect("spawn poll thread");
        StackPeer {
            shared,
            stop,
            poller: Some(poller),
            veth,
        }
    }

    /// The interface and the port, for socket calls and counters (the poll
    /// thread waits meanwhile).
    fn shared(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Opens a UDP socket of `family` bound to `local`.
    fn udp_socket(&self, family: Family, local: SocketAddr) -> SocketHandle {
        let iface = &mut self.shared().iface;
        let sock = iface.udp_open(family);
        iface.udp_bind(sock, local).expect("bind");
        sock
    }

    /// A copy of the stack's counters.
    fn counters(&self) -> Counters {
        *self.shared().iface.counters()
    }

    /// The stack's and the port's counters, for failure messages.
    fn diagnostics(&self) -> String {
        let died = !matches!(&self.poller, Some(t) if !t.is_finished());
        let shared = self.shared();
        format!(
            "{}stack {:?}\nport {:?} {:?}",
            if died {
                "THE POLL THREAD DIED (the stack panicked?)\n"
            } else {
                ""
            },
            shared.iface.counters(),
            shared.nic.counters(),
            shared.nic.port().stats()
        )
    }

    /// A command run in the namespace, killed after [`COMMAND_TIMEOUT`].
    fn ns_command(&self, args: &[&str]) -> Command {
        let mut full = vec!["timeout", COMMAND_TIMEOUT];
        full.extend_from_slice(args);
        self.veth.ns_command(&full)
    }

    /// Runs a command in the namespace to completion; its output, whatever
    /// its exit status.
    fn ns_output(&self, args: &[&str]) -> Output {
        self.ns_command(args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Runs a python3 program in the namespace and returns its stdout,
    /// panicking with its stderr if it fails.
    fn ns_python(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["python3", "-c", program];
        full.extend_from_slice(args);
        let out = self.ns_output(&full);
        assert!(
            out.status.success(),
            "python3 {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ping` (`family` is `-4` or `-6`) from the namespace to `dst`
    /// and checks that all `count` echo requests got replies (ping waits up
    /// to 20 s for them, `-w`, and sends no more than `count`).
    fn assert_ping(&self, family: &str, dst: IpAddr, count: u32) {
        self.assert_ping_sized(family, dst, count, 56);
    }

    /// [`StackPeer::assert_ping`] with `size` bytes of echo data; ping
    /// checks that the replies carry the same data.
    fn assert_ping_sized(&self, family: &str, dst: IpAddr, count: u32, size: usize) {
        let (count_s, dst_s, size_s) = (count.to_string(), dst.to_string(), size.to_string());
        let out = self.ns_output(&[
            "ping", family, "-n", "-c", &count_s, "-s", &size_s, "-i", "0.2", "-w", "20", &dst_s,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && stdout.contains(&format!("{count} packets transmitted, {count} received"))
                && !stdout.contains("wrong data")
                && !stdout.contains("DUP!"),
            "ping {family} {dst}: {stdout}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
    }

    /// Waits until `done` holds for the counters, or `timeout` passes;
    /// returns the last counters seen.
    fn wait_counters(&self, timeout: Duration, done: impl Fn(&Counters) -> bool) -> Counters {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.counters();
            if done(&c) || Instant::now() >= deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for StackPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.poller.take() {
            // A panic in the stack fails the test even if it went unnoticed.
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the stack's poll thread panicked");
            }
        }
        // `veth` goes after this: the namespace and the pair are removed.
    }
}

/// What the poll thread and the tests share.
struct Shared {
    iface: Interface,
    nic: DpdkNic,
}

/// Locks `m`, also after a panic elsewhere poisoned the lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stack's loop: poll the port, echo what the echo sockets received,
/// sleep ~50 µs when there was nothing to do and no timer is due.
fn poll_loop(shared: &Mutex<Shared>, echo: [SocketHandle; 2], stop: &AtomicBool) {
    let clock = SystemClock::new();
    let mut ready = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let busy = {
            let Shared { iface, nic } = &mut *lock(shared);
            let now = clock.now();
            let received = iface.poll(now, nic);
            ready.clear();
            ready.extend(iface.drain_events().filter(|e| e.readable).map(|e| e.handle));
            let mut echoed = false;
            for &h in ready.iter().filter(|h| echo.contains(h)) {
                while let Ok(d) = iface.udp_recv(h) {
                    // A full send queue drops the echo, as a kernel would.
                    let _ = iface.udp_send_to(h, &d.data, Some(d.from));
                    echoed = true;
                }
            }
            received > 0 || echoed || iface.poll_at().is_some_and(|t| t <= clock.now())
        };
        if !busy {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Lines a child prints, read on a thread so that waits can time out.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Fails unless the program is on the PATH (`scripts/setup.sh` installs it).
#[track_caller]
fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is not installed: run scripts/setup.sh, which installs it"
    );
}

#[test]
fn kernel_ping_and_ping6_get_replies() {
    let peer = StackPeer::start();
    let before = peer.counters();
    peer.assert_ping("-4", STACK_V4.into(), 3);
    peer.assert_ping("-6", STACK_V6.into(), 3);
    let after = peer.counters();
    assert!(
        after.icmp_echo_replies_sent >= before.icmp_echo_replies_sent + 6,
        "{after:?}"
    );
    assert!(after.arp_replies_sent >= 1, "the kernel resolved us by ARP: {after:?}");
    assert!(after.ndp_adverts_sent >= 1, "the kernel resolved us by NDP: {after:?}");
}

#[test]
fn kernel_ping_with_fragmented_echoes_gets_the_same_data_back() {
    let peer = StackPeer::start();
    // 4000 bytes: requests and replies in three fragments each.
    peer.assert_ping_sized("-4", STACK_V4.into(), 3, 4000);
    peer.assert_ping_sized("-6", STACK_V6.into(), 3, 4000);
    let c = peer.counters();
    // The kernel reassembles IPv4 before `net_af_packet` sees it; IPv6
    // fragments reach the stack as they are.
    assert!(c.ipv6_reassembled >= 3, "{c:?}");
    assert!(c.icmp_echo_replies_sent >= 6, "{c:?}");
}

#[test]
fn kernel_udp_client_gets_every_size_echoed_byte_for_byte() {
    let peer = StackPeer::start();
    let sizes: Vec<String> = SIZES.iter().map(usize::to_string).collect();
    for (fam, stack_ip) in [("4", IpAddr::from(STACK_V4)), ("6", IpAddr::from(STACK_V6))] {
        let mut args = vec![stack_ip.to_string(), fam.to_owned()];
        args.extend(sizes.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = peer.ns_python(ECHO_CLIENT_PY, &args);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), SIZES.len(), "IPv{fam}: {out}");
        for (line, size) in lines.iter().zip(SIZES) {
            // Nothing is sent twice: a datagram lost on a quiet veth fails.
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(
                fields[..],
                [&size.to_string(), &size.to_string(), "True", &stack_ip.to_string(), "7"],
                "IPv{fam} {size}-byte datagram: {line}\n{}",
                peer.diagnostics()
            );
        }
    }
    let c = peer.counters();
    // Over IPv6, 8000 and 60000 bytes reached the stack in fragments and it
    // reassembled them. Over IPv4 the kernel reassembles them itself before
    // `net_af_packet` sees them (its fanout asks for defragmentation).
    assert!(c.ipv6_reassembled >= 2, "{c:?}");
    // The replies left in fragments over both families (the kernel put
    // them together again for the client to compare).
    let frames_per_family: usize = SIZES.iter().map(|&s| (s + 8).div_ceil(1480).max(1)).sum();
    assert!(c.tx_frames >= 2 * frames_per_family as u64, "{c:?}");
    assert!(c.udp_tx_datagrams >= 2 * SIZES.len() as u64, "{c:?}");
    assert_eq!(
        (
            c.drop_udp_checksum,
            c.drop_ipv4_fragment,
            c.drop_ipv6_fragment,
            c.drop_tx_queue_full
        ),
        (0, 0, 0, 0),
        "{c:?}"
    );
}

/// Has the stack send a datagram of each of `sizes` to a kernel UDP server
/// at `server` from port 4000, one after the other, and checks every one
/// arrives intact from that address.
fn check_stack_sends_to_kernel(peer: &StackPeer, server: SocketAddr, sizes: &[usize]) {
    let fam = if server.is_ipv4() { "4" } else { "6" };
    let (host, port) = (server.ip().to_string(), server.port().to_string());
    // Not under `timeout`: killing the child must kill python itself (it
    // also gives up after 20 s idle).
    let mut child = peer
        .veth
        .ns_command(&["python3", "-c", SERVER_PY, &host, &port, fam])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let lines = lines_of(&mut child);
    let _reaper = Reaper(child);
    assert_eq!(
        lines.recv_timeout(2 * PATIENCE).as_deref(),
        Ok("ready"),
        "the kernel server did not start"
    );

    let (family, local) = match server {
        SocketAddr::V4(_) => (Family::V4, SocketAddr::new(STACK_V4.into(), 4000)),
        SocketAddr::V6(_) => (Family::V6 { v6only: true }, SocketAddr::new(STACK_V6.into(), 4000)),
    };
    let sock = peer.udp_socket(family, local);
    for &size in sizes {
        let data = pattern(size);
        let want = format!("{size} {} {} 4000", hex(&data), local.ip());
        // Sent once: a datagram lost on a quiet veth fails the test.
        peer.shared()
            .iface
            .udp_send_to(sock, &data, Some(server))
            .expect("send_to");
        let got = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{size}-byte datagram never reached {server}: {}", peer.diagnostics()));
        assert!(
            got == want,
            "{size}-byte datagram to {server} arrived altered: {} bytes",
            got.split(' ').next().unwrap_or("?")
        );
    }
    peer.shared().iface.udp_close(sock).expect("close");
    let c = peer.counters();
    assert_eq!(
        (
            c.drop_tx_no_route,
            c.drop_tx_neighbor,
            c.drop_tx_queue_full,
            c.drop_tx_too_big
        ),
        (0, 0, 0, 0),
        "{c:?}"
    );
}

#[test]
fn stack_sends_every_size_to_a_kernel_udp_server() {
    let peer = StackPeer::start();
    check_stack_sends_to_kernel(&peer, SocketAddr::new(KERNEL_V4.into(), 9000), &SIZES);
    check_stack_sends_to_kernel(&peer, SocketAddr::new(KERNEL_V6.into(), 9000), &SIZES);
}

#[test]
fn largest_datagrams_cross_both_ways() {
    let peer = StackPeer::start();
    // The largest a datagram can be: 65535 bytes of IP packet (IPv4 header
    // included; IPv6 payload length counts only what follows the header).
    check_stack_sends_to_kernel(&peer, SocketAddr::new(KERNEL_V4.into(), 9000), &[1, 65507]);
    check_stack_sends_to_kernel(&peer, SocketAddr::new(KERNEL_V6.into(), 9000), &[1, 65527]);
    // From the kernel over IPv6 (over IPv4 the PMD's ring frame, which must
    // hold the datagram the kernel reassembled for it, is the limit).
    let out = peer.ns_python(ECHO_CLIENT_PY, &[&STACK_V6.to_string(), "6", "65527"]);
    assert_eq!(
        out.trim(),
        format!("65527 65527 True {STACK_V6} 7"),
        "{}",
        peer.diagnostics()
    );
}

/// A 60000-byte datagram (41 fragments) sent before the peer is resolved
/// arrives whole: the neighbor queue holds 101 frames per destination, as
/// Linux's `unres_qlen`.
#[test]
fn stack_sends_a_60000_byte_datagram_before_the_kernel_is_resolved() {
    let peer = StackPeer::start();
    check_stack_sends_to_kernel(&peer, SocketAddr::new(KERNEL_V4.into(), 9000), &[60000]);
    check_stack_sends_to_kernel(&peer, SocketAddr::new(KERNEL_V6.into(), 9000), &[60000]);
}

#[test]
fn closed_port_answers_port_unreachable() {
    let peer = StackPeer::start();
    for (fam, ip) in [("4", IpAddr::from(STACK_V4)), ("6", IpAddr::from(STACK_V6))] {
        let before = peer.counters();
        let out = peer.ns_python(CLOSED_PORT_PY, &[&ip.to_string(), &CLOSED_PORT.to_string(), fam]);
        assert_eq!(out.trim(), "refused", "IPv{fam}: {}", peer.diagnostics());
        let after = peer.counters();
        assert!(after.icmp_errors_sent > before.icmp_errors_sent, "{after:?}");
        assert!(after.drop_udp_no_socket > before.drop_udp_no_socket, "{after:?}");
    }
}

#[test]
fn stack_socket_connected_to_a_closed_kernel_port_gets_connection_refused() {
    let peer = StackPeer::start();
    for (family, remote) in [
        (Family::V4, SocketAddr::new(KERNEL_V4.into(), CLOSED_PORT)),
        (
            Family::V6 { v6only: true },
            SocketAddr::new(KERNEL_V6.into(), CLOSED_PORT),
        ),
    ] {
        let sock = peer.shared().iface.udp_open(family);
        peer.shared().iface.udp_connect(sock, remote).expect("connect");
        peer.shared()
            .iface
            .udp_send_to(sock, b"anyone there?", None)
            .expect("send");
        // The kernel's port unreachable becomes the socket's pending error,
        // which the next receive reports (as recv(2) does on Linux).
        let deadline = Instant::now() + PATIENCE;
        let result = loop {
            let r = peer.shared().iface.udp_recv(sock).map(|d| d.data);
            if r != Err(SocketError::WouldBlock) || Instant::now() >= deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(
            result,
            Err(SocketError::ConnectionRefused),
            "{remote}: {}",
            peer.diagnostics()
        );
        peer.shared().iface.udp_close(sock).expect("close");
    }
    assert!(peer.counters().icmp_errors_delivered >= 2, "{}", peer.diagnostics());
}

#[test]
fn traceroute_and_tracepath_reach_the_stack() {
    require("traceroute");
    require("tracepath");
    let peer = StackPeer::start();
    for (fam, ip) in [("-4", IpAddr::from(STACK_V4)), ("-6", IpAddr::from(STACK_V6))] {
        let ip_s = ip.to_string();
        // UDP probes to a closed port: the first hop is the host, and its
        // port unreachable ends the trace there.
        let out = peer.ns_output(&["traceroute", fam, "-U", "-n", "-q", "1", "-w", "10", "-m", "5", &ip_s]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let hops: Vec<Vec<&str>> = stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
        assert!(
            out.status.success() && hops.len() == 1 && hops[0][..2] == ["1", ip_s.as_str()],
            "traceroute {fam} {ip}: {stdout}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            peer.diagnostics()
        );
        assert!(!hops[0].iter().any(|f| f.starts_with('!')), "{stdout}");
        let out = peer.ns_output(&["tracepath", fam, "-n", "-m", "5", &ip_s]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reached = stdout
            .lines()
            .any(|l| l.contains(&format!(" {ip_s} ")) && l.contains("reached"));
        assert!(
            reached,
            "tracepath {fam} {ip}: {stdout}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            peer.diagnostics()
        );
    }
}

#[test]
fn kernel_ip_options_zero_checksums_and_ethernet_padding() {
    let peer = StackPeer::start();
    // IPv4 options and a zero UDP checksum are accepted.
    let out = peer.ns_python(ECHO_EXTRAS_PY, &[&STACK_V4.to_string()]);
    assert_eq!(out, "ip_options True\nno_checksum True\n", "{}", peer.diagnostics());

    // Ethernet padding after the IP packet is not part of the datagram: a
    // 1-byte datagram in a frame padded with junk to 64 bytes comes back as
    // 1 byte (the kernel needs the MAC it was sent from to answer).
    peer.assert_ping("-4", STACK_V4.into(), 1);
    let mut frame = [eth(0x0800), ipv4_header(0x45, 29, false), udp4_datagram(b"x")].concat();
    frame.resize(64, 0xa5);
    let out = peer.ns_python(
        RAW_ECHO_PY,
        &[&peer.veth.ns_if, &KERNEL_V4.to_string(), "15", &hex(&frame)],
    );
    assert_eq!(out.trim(), "78", "{}", peer.diagnostics());

    // IPv6 forbids a zero UDP checksum: dropped and counted, not delivered.
    let before = peer.counters();
    peer.ns_python(V6_ZERO_CHECKSUM_PY, &[&STACK_V6.to_string()]);
    let dropped = |c: &Counters| c.drop_udp_checksum + c.drop_udp_malformed;
    let after = peer.wait_counters(PATIENCE, |c| dropped(c) > dropped(&before));
    assert_eq!(dropped(&after), dropped(&before) + 1, "{after:?}");
    assert_eq!(after.udp_rx_datagrams, before.udp_rx_datagrams, "{after:?}");
}

#[test]
fn unknown_ipv4_protocol_draws_protocol_unreachable() {
    let peer = StackPeer::start();
    let out = peer.ns_python(ICMP_ERROR_PY, &["proto4", &STACK_V4.to_string()]);
    // Destination unreachable, protocol unreachable (RFC 1122 3.2.2.1).
    assert_eq!(out.trim(), "3 2", "{}", peer.diagnostics());
    assert_eq!(peer.counters().drop_unknown_protocol, 1, "{}", peer.diagnostics());
}

/// RFC 8200 section 4: an unrecognised Next Header draws a Parameter
/// Problem, code 1, as from Linux.
#[test]
fn ipv6_unknown_next_header_draws_parameter_problem() {
    let peer = StackPeer::start();
    let out = peer.ns_python(ICMP_ERROR_PY, &["proto6", &STACK_V6.to_string()]);
    assert_eq!(out.trim(), "4 1", "{}", peer.diagnostics());
}

/// RFC 8200 section 4.2: an unrecognised option whose type begins with
/// binary 10 draws a Parameter Problem, code 2, pointing at the option, as
/// from Linux.
#[test]
fn ipv6_unknown_option_draws_parameter_problem() {
    let peer = StackPeer::start();
    let out = peer.ns_python(ICMP_ERROR_PY, &["dstopt6", &STACK_V6.to_string()]);
    assert_eq!(out.trim(), "4 2", "{}", peer.diagnostics());
}

/// Ethernet header from the kernel's end to the stack.
fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = HOST_MAC.to_vec();
    f.extend_from_slice(&KERNEL_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 header (kernel to stack, UDP) with a correct checksum unless
/// `bad_checksum`; `ver_ihl` and `total_len` as given.
fn ipv4_header(ver_ihl: u8, total_len: u16, bad_checksum: bool) -> Vec<u8> {
    let mut h = vec![ver_ihl, 0];
    h.extend_from_slice(&total_len.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    h.extend_from_slice(&KERNEL_V4.octets());
    h.extend_from_slice(&STACK_V4.octets());
    let c = checksum(0, &h) ^ u16::from(bad_checksum);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A UDP header to the echo port with length field `len` and no checksum.
fn udp_header(len: u16) -> Vec<u8> {
    let mut u = 5555u16.to_be_bytes().to_vec();
    u.extend_from_slice(&ECHO_PORT.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u
}

/// Frames the stack must drop, each with the counter that must count it.
fn malformed_frames() -> Vec<(&'static str, Vec<u8>)> {
    let cat = |parts: &[&[u8]]| parts.concat();
    let v4 = eth(0x0800);
    let v6 = eth(0x86dd);
    let ipv6_header = |payload_len: u16| {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[17, 64]);
        h.extend_from_slice(&KERNEL_V6.octets());
        h.extend_from_slice(&STACK_V6.octets());
        h
    };
    vec![
        // An IPv4 header cut short after 10 bytes.
        ("ipv4_malformed", cat(&[&v4, &ipv4_header(0x45, 28, false)[..10]])),
        // IHL 4: a header shorter than the minimum.
        (
            "ipv4_malformed",
            cat(&[&v4, &ipv4_header(0x44, 28, false), &udp_header(8)]),
        ),
        // Total length beyond the frame.
        (
            "ipv4_malformed",
            cat(&[&v4, &ipv4_header(0x45, 1000, false), &udp_header(8)]),
        ),
        // Version 6 under EtherType IPv4.
        (
            "ipv4_malformed",
            cat(&[&v4, &ipv4_header(0x65, 28, false), &udp_header(8)]),
        ),
        // A wrong header checksum.
        (
            "ipv4_checksum",
            cat(&[&v4, &ipv4_header(0x45, 28, true), &udp_header(8)]),
        ),
        // UDP length beyond the IP payload.
        (
            "udp_malformed",
            cat(&[&v4, &ipv4_header(0x45, 32, false), &udp_header(200), b"abcd"]),
        ),
        // UDP length below the UDP header.
        (
            "udp_malformed",
            cat(&[&v4, &ipv4_header(0x45, 32, false), &udp_header(4), b"abcd"]),
        ),
        // A UDP header cut short.
        (
            "udp_malformed",
            cat(&[&v4, &ipv4_header(0x45, 24, false), &udp_header(8)[..4]]),
        ),
        // An IPv6 header cut short.
        ("ipv6_malformed", cat(&[&v6, &ipv6_header(8)[..20]])),
        // IPv6 payload length beyond the frame.
        ("ipv6_malformed", cat(&[&v6, &ipv6_header(500), &udp_header(8)])),
        // An ARP packet cut short.
        ("arp_malformed", cat(&[&eth(0x0806), &[0, 1, 8, 0, 6, 4, 0, 1]])),
        // A bit flipped in the payload of a UDP datagram, over IPv4 and
        // over IPv6.
        (
            "udp_checksum",
            cat(&[
                &v4,
                &ipv4_header(0x45, 32, false),
                &flip_last_bit(udp4_datagram(b"abcd")),
            ]),
        ),
        (
            "udp_checksum",
            cat(&[&v6, &ipv6_header(12), &flip_last_bit(udp6_datagram(b"abcd"))]),
        ),
    ]
}

/// `data` with its last bit flipped.
fn flip_last_bit(mut data: Vec<u8>) -> Vec<u8> {
    if let Some(b) = data.last_mut() {
        *b ^= 1;
    }
    data
}

/// The drop counters [`malformed_frames`] names.
fn malformed_counts(c: &Counters) -> [u64; 6] {
    [
        c.drop_ipv4_malformed,
        c.drop_ipv4_checksum,
        c.drop_udp_malformed,
        c.drop_ipv6_malformed,
        c.drop_arp_malformed,
        c.drop_udp_checksum,
    ]
}

#[test]
fn malformed_frames_are_counted_and_the_stack_still_answers() {
    let peer = StackPeer::start();
    // The stack is up and the kernel has resolved it.
    peer.assert_ping("-4", STACK_V4.into(), 1);
    let frames = malformed_frames();
    let names = [
        "ipv4_malformed",
        "ipv4_checksum",
        "udp_malformed",
        "ipv6_malformed",
        "arp_malformed",
        "udp_checksum",
    ];
    let before = peer.counters();
    let mut want = malformed_counts(&before);
    for (name, _) in &frames {
        want[names.iter().position(|n| n == name).expect("known counter")] += 1;
    }
    let hexes: Vec<String> = frames.iter().map(|(_, f)| hex(f)).collect();
    let mut args = vec![peer.veth.ns_if.as_str()];
    args.extend(hexes.iter().map(String::as_str));
    let out = peer.ns_python(RAW_SEND_PY, &args);
    assert_eq!(out.trim(), format!("sent {}", frames.len()));
    let after = peer.wait_counters(PATIENCE, |c| malformed_counts(c) == want);
    assert_eq!(
        malformed_counts(&after),
        want,
        "drop counters {names:?}; stack counters before {before:?}, after {after:?}"
    );
    assert!(after.rx_frames >= before.rx_frames + frames.len() as u64, "{after:?}");
    // Nothing malformed reached a socket or drew an answer.
    assert_eq!(after.udp_rx_datagrams, before.udp_rx_datagrams, "{after:?}");
    assert_eq!(after.icmp_errors_sent, before.icmp_errors_sent, "{after:?}");
    peer.assert_ping("-4", STACK_V4.into(), 3);
    peer.assert_ping("-6", STACK_V6.into(), 3);
}

#[test]
fn namespace_and_veth_are_removed_even_when_a_test_panics() {
    let names = Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let peer = StackPeer::start();
        peer.assert_ping("-4", STACK_V4.into(), 1);
        *lock(&names) = Some((peer.veth.ns.clone(), peer.veth.host_if.clone()));
        panic!("a failing test");
    });
    assert!(result.is_err());
    let (ns, host_if) = lock(&names).clone().expect("the peer started");
    let netns = common::run(&["ip", "netns", "list"]);
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&ns),
        "namespace {ns} left behind"
    );
    let link = Command::new("ip")
        .args(["link", "show", &host_if])
        .output()
        .expect("ip");
    assert!(!link.status.success(), "veth {host_if} left behind");
}

/// A UDP datagram from the kernel's 5555 to the stack's echo port over
/// IPv6, with a correct checksum.
fn udp6_datagram(data: &[u8]) -> Vec<u8> {
    udp_datagram(&KERNEL_V6.octets(), &STACK_V6.octets(), data)
}

/// A UDP datagram from the kernel's 5555 to the stack's echo port over
/// IPv4, with a correct checksum.
fn udp4_datagram(data: &[u8]) -> Vec<u8> {
    udp_datagram(&KERNEL_V4.octets(), &STACK_V4.octets(), data)
}

/// A UDP datagram from port 5555 to the echo port between the addresses
/// `src` and `dst` (4 or 16 bytes), with a correct checksum.
fn udp_datagram(src: &[u8], dst: &[u8], data: &[u8]) -> Vec<u8> {
    let len = (8 + data.len()) as u16;
    let mut u = udp_header(len);
    u.extend_from_slice(data);
    let mut sum = 17u32 + u32::from(len);
    for w in src.chunks(2).chain(dst.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let c = match checksum(sum, &u) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An Ethernet/IPv6 frame carrying one fragment of `datagram`: bytes
/// `range` at their offset, with the More flag `more`, identification `id`.
fn ipv6_fragment(datagram: &[u8], range: std::ops::Range<usize>, more: bool, id: u32) -> Vec<u8> {
    let body = &datagram[range.clone()];
    let mut f = eth(0x86dd);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[44, 64]);
    f.extend_from_slice(&KERNEL_V6.octets());
    f.extend_from_slice(&STACK_V6.octets());
    let off = (range.start as u16) | u16::from(more);
    f.extend_from_slice(&[17, 0]);
    f.extend_from_slice(&off.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Sends `frames` from the kernel's end with a raw socket and returns what
/// came back to the kernel's UDP port 5555 within `wait_secs`: the hex of
/// the datagram, or `none`.
fn raw_echo(peer: &StackPeer, frames: &[Vec<u8>], wait_secs: &str) -> String {
    let hexes: Vec<String> = frames.iter().map(|f| hex(f)).collect();
    let kernel = KERNEL_V6.to_string();
    let mut args = vec![peer.veth.ns_if.as_str(), kernel.as_str(), wait_secs];
    args.extend(hexes.iter().map(String::as_str));
    peer.ns_python(RAW_ECHO_PY, &args).trim().to_owned()
}

#[test]
fn ipv6_fragments_are_reassembled_in_any_order_and_overlaps_discarded() {
    let peer = StackPeer::start();
    // The kernel has resolved the stack (and the stack the kernel).
    peer.assert_ping("-6", STACK_V6.into(), 1);
    let data = pattern(3000);
    let d = udp6_datagram(&data);
    let n = d.len();

    // Last fragment first.
    let before = peer.counters();
    let frames = [
        ipv6_fragment(&d, 2000..n, false, 1),
        ipv6_fragment(&d, 1000..2000, true, 1),
        ipv6_fragment(&d, 0..1000, true, 1),
    ];
    assert_eq!(raw_echo(&peer, &frames, "15"), hex(&data), "{}", peer.diagnostics());
    assert_eq!(peer.counters().ipv6_reassembled, before.ipv6_reassembled + 1);

    // An exact duplicate changes nothing.
    let frames = [
        ipv6_fragment(&d, 0..1000, true, 2),
        ipv6_fragment(&d, 0..1000, true, 2),
        ipv6_fragment(&d, 1000..2000, true, 2),
        ipv6_fragment(&d, 2000..n, false, 2),
    ];
    assert_eq!(raw_echo(&peer, &frames, "15"), hex(&data), "{}", peer.diagnostics());

    // RFC 5722: overlapping fragments discard the whole datagram, silently.
    let before = peer.counters();
    let frames = [
        ipv6_fragment(&d, 0..1008, true, 3),
        ipv6_fragment(&d, 1000..2000, true, 3),
        ipv6_fragment(&d, 2000..n, false, 3),
    ];
    assert_eq!(raw_echo(&peer, &frames, "2"), "none", "{}", peer.diagnostics());
    let after = peer.wait_counters(PATIENCE, |c| c.drop_ipv6_fragment > before.drop_ipv6_fragment);
    assert!(after.drop_ipv6_fragment > before.drop_ipv6_fragment, "{after:?}");
    assert_eq!(after.udp_rx_datagrams, before.udp_rx_datagrams, "{after:?}");
    assert_eq!(after.icmp_errors_sent, before.icmp_errors_sent, "{after:?}");
    assert_eq!(peer.shared().iface.reassembly_v6_stats().overlap, 1);
}
