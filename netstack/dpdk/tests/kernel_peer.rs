//! DPDK ports against the Linux kernel as the peer, over real links: veth
//! pairs into network namespaces (`net_af_packet`, `net_af_xdp`), a TAP
//! device (`net_tap`, with checksum offload), and a `net_memif` pair.
//!
//! Needs root. One test binary, one EAL (DPDK initialises it once per
//! process); each test hot-plugs its own device with unique names.

mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{eal, udp_frame, udp_payload, unique, Csum, Veth, DPDK_IP, HOST_MAC, KERNEL_IP, KERNEL_MAC};
use joyride_dpdk::{DpdkNic, Eal, EalConfig, Error, Mempool, Port, PortConfig};
use joyride_netstack::nic::{L4Proto, Nic, TxMeta};

/// Receives one UDP datagram on argv[1]:argv[2] and prints it and its source.
const RECV_PY: &str = "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print('ready', flush=True)
data, (host, port) = s.recvfrom(2048)
print(data.decode(), host, port, flush=True)
";

/// Sends a datagram to argv[1]:argv[3] and one to argv[2]:argv[3] every
/// 50 ms, for 10 s.
const SEND_PY: &str = "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(200):
    for host in sys.argv[1:3]:
        try:
            s.sendto(b'kernel says hi', (host, int(sys.argv[3])))
        except OSError:
            pass
    time.sleep(0.05)
";

/// Sends, argv[3] times over, one datagram `<flow>:<round>` from each of
/// argv[2] sockets (so from as many source ports: as many flows) to
/// argv[1]:6666, pausing between rounds; prints `sent` when done.
const FLOWS_PY: &str = "
import socket, sys, time
host, flows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
for r in range(rounds):
    for i, s in enumerate(socks):
        s.sendto(('%d:%d' % (i, r)).encode(), (host, 6666))
    time.sleep(0.02)
print('sent', flush=True)
";

/// Kills a child process on drop (tests may panic while it runs).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pool unique to one test.
fn pool(eal: &Eal) -> Mempool {
    Mempool::new(eal, &unique("jt"), 8191, 64, Mempool::DEFAULT_DATA_ROOM).expect("mempool")
}

/// Hot-plugs `devargs` and starts it as a Nic.
fn open(devargs: &str, config: &PortConfig) -> DpdkNic {
    let eal = eal();
    let id = eal.probe_vdev(devargs).unwrap_or_else(|e| panic!("{e}"));
    let port = Port::start(&eal, id, pool(&eal), config).unwrap_or_else(|e| panic!("{e}"));
    DpdkNic::new(port)
}

/// Hot-plugs `devargs`, starts it with `config` (one pool for all queues)
/// and splits it into one Nic per queue pair.
fn open_split(devargs: &str, config: &PortConfig) -> Vec<DpdkNic> {
    let eal = eal();
    let id = eal.probe_vdev(devargs).unwrap_or_else(|e| panic!("{e}"));
    let port = Port::start(&eal, id, pool(&eal), config).unwrap_or_else(|e| panic!("{e}"));
    DpdkNic::split(port)
}

/// Polls `nic` in a thread of its own until `stop`, collecting the payloads
/// of the UDP datagrams to port 6666; gives both back when joined.
fn receive_in_thread(mut nic: DpdkNic, stop: Arc<AtomicBool>) -> JoinHandle<(DpdkNic, Vec<String>)> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            // Read the flag first, so that the last pass comes after it.
            let last = stop.load(Ordering::Acquire);
            let n = nic.receive(32, |frame, _meta| {
                if let Some(p) = udp_payload(frame, 6666) {
                    got.push(String::from_utf8_lossy(p).into_owned());
                }
            });
            if last && n == 0 {
                return (nic, got);
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

/// Has the kernel in `veth`'s namespace send `rounds` datagrams on each of
/// `flows` UDP flows to [`DPDK_IP`] while each of `nics` (one per queue
/// pair, all with the same MAC) polls in its own thread; checks that every
/// Nic received some and every datagram arrived exactly once, and gives the
/// Nics back with how many each received.
fn check_flows_spread(nics: Vec<DpdkNic>, veth: &Veth, flows: usize, rounds: usize) -> Vec<(DpdkNic, usize)> {
    veth.add_neighbor(nics[0].mac());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = nics
        .into_iter()
        .map(|nic| receive_in_thread(nic, Arc::clone(&stop)))
        .collect();
    let mut child = veth
        .ns_command(&[
            "python3",
            "-c",
            FLOWS_PY,
            &DPDK_IP.to_string(),
            &flows.to_string(),
            &rounds.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let reaper = Reaper(child);
    let done = lines.next().map(|l| l.expect("read"));
    drop(reaper);
    // Let the last datagrams through the rings.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let results: Vec<_> = threads.into_iter().map(|t| t.join().expect("receive thread")).collect();
    assert_eq!(done.as_deref(), Some("sent"), "the sender did not finish");

    let per_queue: Vec<usize> = results.iter().map(|(_, got)| got.len()).collect();
    let counters: Vec<_> = results.iter().map(|(nic, _)| (nic.queue(), nic.counters())).collect();
    let mut all: Vec<&str> = results
        .iter()
        .flat_map(|(_, got)| got.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    let mut expected: Vec<String> = (0..flows)
        .flat_map(|f| (0..rounds).map(move |r| format!("{f}:{r}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(
        all,
        expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "every datagram exactly once; per queue {per_queue:?}, counters {counters:?}"
    );
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "every queue received some flows: per queue {per_queue:?}"
    );
    // A flow stays on one queue (the kernel picks the queue by flow hash).
    let flow_of = |p: &String| p.split(':').next().map(str::to_owned);
    for (i, (_, got)) in results.iter().enumerate() {
        for (j, (_, other)) in results.iter().enumerate().skip(i + 1) {
            let shared = got
                .iter()
                .filter_map(flow_of)
                .find(|f| other.iter().any(|p| flow_of(p).as_ref() == Some(f)));
            assert!(shared.is_none(), "flow {shared:?} reached queues {i} and {j}");
        }
    }
    results
        .into_iter()
        .map(|(nic, got)| {
            assert_eq!(nic.counters().rx_multi_segment, 0, "{:?}", nic.counters());
            (nic, got.len())
        })
        .collect()
}

/// Transmits one UDP frame built by [`udp_frame`] and flushes.
fn send_udp(nic: &mut DpdkNic, dst_mac: [u8; 6], dst: (Ipv4Addr, u16), payload: &[u8], csum: Csum) {
    let src_mac = nic.mac();
    nic.transmit(42 + payload.len(), |buf| {
        udp_frame(buf, src_mac, dst_mac, (DPDK_IP, 5555), dst, payload, csum);
        match csum {
            Csum::Full => TxMeta::default(),
            Csum::Offload => TxMeta {
                l2_len: 14,
                l3_len: 20,
                ipv4_csum: true,
                l4_csum: Some(L4Proto::Udp),
            },
        }
    })
    .expect("transmit");
    nic.flush();
}

/// Starts [`RECV_PY`] in `veth`'s namespace on `ip:port`, waits until it is
/// bound, sends it a datagram from `nic` (a few times, in case the first is
/// lost while the link settles) and checks what the kernel delivered.
fn check_kernel_receives(nic: &mut DpdkNic, veth: &Veth, ip: Ipv4Addr, dst_mac: [u8; 6], csum: Csum) {
    let payload = format!("hello from {}", unique("joyride"));
    let mut child = veth
        .ns_command(&["python3", "-c", RECV_PY, &ip.to_string(), "7777"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let _reaper = Reaper(child);
    assert_eq!(lines.next().expect("ready line").expect("read"), "ready");
    for _ in 0..5 {
        send_udp(nic, dst_mac, (ip, 7777), payload.as_bytes(), csum);
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = lines.next().expect("the kernel received nothing").expect("read");
    assert_eq!(got, format!("{payload} {DPDK_IP} 5555"));
    let counters = nic.counters();
    assert_eq!(counters.tx_frames, 5, "{counters:?}");
    assert_eq!(counters.tx_dropped, 0, "{counters:?}");
    assert_eq!(counters.tx_offload_unsupported, 0, "{counters:?}");
}

/// Has the kernel in `veth`'s namespace send UDP datagrams to our address
/// (through a static neighbour entry) and to an address nobody has (so it
/// broadcasts ARP requests), and checks `nic` receives both.
fn check_receives_from_kernel(nic: &mut DpdkNic, veth: &Veth) {
    let missing = Ipv4Addr::new(10, 99, 0, 3);
    let mac = nic.mac();
    veth.add_neighbor(mac);
    let child = veth
        .ns_command(&[
            "python3",
            "-c",
            SEND_PY,
            &DPDK_IP.to_string(),
            &missing.to_string(),
            "6666",
        ])
        .spawn()
        .expect("python3");
    let _reaper = Reaper(child);
    let (mut udp, mut arp) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(udp && arp) && Instant::now() < deadline {
        let n = nic.receive(32, |frame, _meta| {
            if udp_payload(frame, 6666) == Some(&b"kernel says hi"[..]) {
                udp = frame[0..6] == mac;
            }
            if is_arp_request(frame, KERNEL_MAC, KERNEL_IP, missing) {
                arp = true;
            }
        });
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(udp, "no UDP datagram from the kernel; counters {:?}", nic.counters());
    assert!(arp, "no ARP request from the kernel; counters {:?}", nic.counters());
    let stats = nic.port().stats().expect("stats");
    assert!(stats.rx_packets >= 2, "{stats:?}");
}

/// Is `frame` a broadcast ARP request from `sender` asking for `target`?
fn is_arp_request(frame: &[u8], sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> bool {
    frame.len() >= 42
        && frame[0..6] == [0xff; 6]
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[22..28] == sender_mac
        && frame[28..32] == sender.octets()
        && frame[38..42] == target.octets()
}

#[test]
fn eal_init_twice_is_a_typed_error() {
    let _ = eal();
    match Eal::init(&EalConfig::no_huge("jrdpdk-second", 64)) {
        Err(Error::AlreadyInitialized) => {}
        other => panic!("expected AlreadyInitialized, got {other:?}"),
    }
}

#[test]
fn af_packet_sends_to_the_kernel() {
    let veth = Veth::new();
    let mut nic = open(
        &format!("{},iface={}", unique("net_af_packet"), veth.host_if),
        &PortConfig::default(),
    );
    assert_eq!(nic.mac(), HOST_MAC);
    assert!(nic.port().link().expect("link").up);
    let caps = nic.capabilities();
    assert_eq!(caps.max_burst, 32);
    assert!(caps.mtu >= 1500, "{caps:?}");
    check_kernel_receives(&mut nic, &veth, KERNEL_IP, KERNEL_MAC, Csum::Full);
    assert!(veth.ns_stat("rx_packets") >= 5);
    // af_packet has no checksum offload: asking for it is counted (the frame
    // still goes out, with the checksums the stack left).
    assert!(!caps.checksum.ipv4_tx && !caps.checksum.l4_tx, "{caps:?}");
    send_udp(&mut nic, KERNEL_MAC, (KERNEL_IP, 7777), b"x", Csum::Offload);
    assert_eq!(nic.counters().tx_offload_unsupported, 2);
}

#[test]
fn af_packet_receives_from_the_kernel() {
    let veth = Veth::new();
    let mut nic = open(
        &format!("{},iface={}", unique("net_af_packet"), veth.host_if),
        &PortConfig::default(),
    );
    check_receives_from_kernel(&mut nic, &veth);
}

#[test]
fn af_xdp_exchanges_frames_with_the_kernel() {
    let veth = Veth::new();
    let mut nic = open(
        &format!("{},iface={}", unique("net_af_xdp"), veth.host_if),
        &PortConfig::default(),
    );
    assert_eq!(nic.mac(), HOST_MAC);
    check_kernel_receives(&mut nic, &veth, KERNEL_IP, KERNEL_MAC, Csum::Full);
    check_receives_from_kernel(&mut nic, &veth);
}

#[test]
fn tap_offloads_checksums_the_kernel_verifies() {
    // The namespace is only a home for the TAP device; the veth is unused.
    let veth = Veth::new();
    let tap = unique("jdt");
    let mut nic = open(&format!("{},iface={tap}", unique("net_tap")), &PortConfig::default());
    let caps = nic.capabilities().checksum;
    assert!(caps.ipv4_tx && caps.l4_tx, "net_tap offers checksum offload: {caps:?}");
    // Move the kernel end of the TAP into the namespace, so the frame is
    // delivered by a kernel that owns the address.
    common::run(&["ip", "link", "set", &tap, "netns", &veth.ns]);
    let tap_ip = Ipv4Addr::new(10, 99, 1, 2);
    veth.ns_run(&["sysctl", "-qw", &format!("net.ipv6.conf.{tap}.disable_ipv6=1")]);
    veth.ns_run(&["ip", "addr", "add", &format!("{tap_ip}/24"), "dev", &tap]);
    veth.ns_run(&["ip", "link", "set", &tap, "up"]);
    let out = veth.ns_run(&["cat", &format!("/sys/class/net/{tap}/address")]);
    let tap_mac = parse_mac(String::from_utf8_lossy(&out.stdout).trim());
    // Checksums left to the device: the kernel drops the datagram unless
    // the PMD filled both correctly.
    check_kernel_receives(&mut nic, &veth, tap_ip, tap_mac, Csum::Offload);

    // The other way: the kernel sends to us, the PMD verifies checksums.
    assert!(caps.ipv4_rx && caps.l4_rx, "net_tap verifies checksums: {caps:?}");
    let our_ip = Ipv4Addr::new(10, 99, 1, 1);
    veth.ns_run(&[
        "ip",
        "neigh",
        "replace",
        &our_ip.to_string(),
        "lladdr",
        &common::mac_str(nic.mac()),
        "dev",
        &tap,
        "nud",
        "permanent",
    ]);
    let child = veth
        .ns_command(&[
            "python3",
            "-c",
            SEND_PY,
            &our_ip.to_string(),
            &our_ip.to_string(),
            "6666",
        ])
        .spawn()
        .expect("python3");
    let _reaper = Reaper(child);
    let mut meta = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while meta.is_none() && Instant::now() < deadline {
        nic.receive(32, |frame, m| {
            if udp_payload(frame, 6666) == Some(&b"kernel says hi"[..]) {
                meta = Some(m);
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    let meta = meta.expect("no datagram from the kernel over the TAP");
    assert!(meta.ipv4_csum_good && meta.l4_csum_good, "{meta:?}");
}

#[test]
fn mbuf_grows_shrinks_and_returns_to_its_pool() {
    let eal = eal();
    let pool = pool(&eal);
    let before = pool.in_use();
    let mut m = pool.alloc().expect("mbuf");
    assert_eq!(pool.in_use(), before + 1);
    assert!(m.is_empty());
    let headroom = m.headroom();
    assert_eq!(m.append(100).expect("room").len(), 100);
    m.data_mut().iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    assert!(m.trim(10));
    assert_eq!(m.len(), 90);
    m.prepend(14).expect("headroom").fill(0xee);
    assert_eq!(m.headroom(), headroom - 14);
    assert_eq!(
        &m.data()[..15],
        &[0xee; 14].iter().copied().chain([0]).collect::<Vec<_>>()[..]
    );
    assert!(m.adj(14));
    assert_eq!(m.data()[89], 89);
    assert!(!m.trim(1000), "cannot trim more than it holds");
    assert!(
        m.append(usize::from(pool.data_room())).is_none(),
        "cannot grow past the buffer"
    );
    assert_eq!(m.len(), 90);
    assert_eq!((m.pkt_len(), m.segments()), (90, 1));
    drop(m);
    assert_eq!(pool.in_use(), before);
}

#[test]
fn memif_pair_carries_frames() {
    let socket = format!("/tmp/{}.sock", unique("jdmemif"));
    let config = PortConfig::default();
    let mut server = open(
        &format!("{},role=server,socket={socket},id=0", unique("net_memif")),
        &config,
    );
    let mut client = open(
        &format!("{},role=client,socket={socket},id=0", unique("net_memif")),
        &config,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(server.port().link().expect("link").up && client.port().link().expect("link").up) {
        assert!(Instant::now() < deadline, "memif link did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let payload = b"through shared memory";
    let dst_mac = client.mac();
    // The memif client posts the buffers the server writes into when it
    // polls, so the server's first sends may find no room: retry until one
    // arrives.
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        send_udp(&mut server, dst_mac, (KERNEL_IP, 9), payload, Csum::Full);
        client.receive(32, |frame, _| {
            if let Some(p) = udp_payload(frame, 9) {
                got = Some(p.to_vec());
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        got.as_deref(),
        Some(&payload[..]),
        "server {:?} client {:?} stats {:?} {:?}",
        server.counters(),
        client.counters(),
        server.port().stats(),
        client.port().stats()
    );
    let _ = std::fs::remove_file(&socket);
}

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (dst, part) in mac.iter_mut().zip(s.split(':')) {
        *dst = u8::from_str_radix(part, 16).expect("hex");
    }
    mac
}

#[test]
fn dpdk_nic_is_send() {
    fn send<T: Send + 'static>() {}
    send::<DpdkNic>();
}

#[test]
fn af_packet_two_queue_pairs_split_flows_and_transmit() {
    af_packet_two_queue_pairs(false);
}

#[test]
fn af_packet_two_queue_pairs_with_a_pool_each() {
    af_packet_two_queue_pairs(true);
}

/// A two-queue-pair `net_af_packet` port on a two-queue veth, split into
/// two Nics polled by two threads: flows spread over both queues, each
/// datagram arrives once, queue pair 1 transmits to the kernel.
fn af_packet_two_queue_pairs(pool_per_queue: bool) {
    let veth = Veth::with_queues(2);
    let config = PortConfig {
        queues: 2,
        ..PortConfig::default()
    };
    let eal = eal();
    let devargs = format!("{},iface={},qpairs=2", unique("net_af_packet"), veth.host_if);
    let nics = if pool_per_queue {
        let id = eal.probe_vdev(&devargs).unwrap_or_else(|e| panic!("{e}"));
        let pools = vec![pool(&eal), pool(&eal)];
        let port = Port::start_multi(&eal, id, pools, &config).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(port.queue_pool(0).name(), port.queue_pool(1).name());
        DpdkNic::split(port)
    } else {
        open_split(&devargs, &config)
    };
    assert_eq!(nics.iter().map(DpdkNic::queue).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(nics[0].port().queues(), 2);
    // net_af_packet has no RSS; the kernel spreads flows (packet fanout).
    assert_eq!(nics[0].port().rss_hash_types(), 0);
    let (flows, rounds) = (64, 4);
    let mut nics: Vec<DpdkNic> = check_flows_spread(nics, &veth, flows, rounds)
        .into_iter()
        .map(|(nic, _)| nic)
        .collect();
    let stats = nics[0].port().stats().expect("stats");
    assert!(stats.rx_packets >= (flows * rounds) as u64, "port-wide: {stats:?}");

    // The port stays while another queue pair holds it.
    let nic0 = nics
        .remove(0)
        .try_into_port()
        .expect_err("queue pair 1 still holds the port");
    nics.insert(0, *nic0);

    // Queue pair 1 transmits to the kernel, from another thread.
    let nic1 = nics.pop().expect("queue 1");
    let before = veth.ns_stat("rx_packets");
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut nic1 = nic1;
            check_kernel_receives(&mut nic1, &veth, KERNEL_IP, KERNEL_MAC, Csum::Full);
            assert_eq!(nic1.queue(), 1);
        });
    });
    assert!(veth.ns_stat("rx_packets") >= before + 5);
    // Queue pair 0 never transmitted.
    assert_eq!(nics[0].counters().tx_frames, 0);
    // The port goes with its last Nic.
    assert!(nics.pop().expect("queue 0").try_into_port().is_ok());
}

#[test]
fn more_queues_than_the_device_has_is_a_clear_error() {
    let veth = Veth::with_queues(2);
    let eal = eal();
    // net_af_packet has as many queue pairs as its qpairs devarg (1 here).
    let name = unique("net_af_packet");
    let id = eal
        .probe_vdev(&format!("{name},iface={}", veth.host_if))
        .unwrap_or_else(|e| panic!("{e}"));
    let config = PortConfig {
        queues: 2,
        ..PortConfig::default()
    };
    match Port::start(&eal, id, pool(&eal), &config) {
        Err(e @ Error::TooManyQueues { .. }) => {
            let Error::TooManyQueues {
                queues, max_rx, max_tx, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!((queues, max_rx, max_tx), (2, 1, 1));
            let msg = e.to_string();
            assert!(
                msg.contains("at most 1 rx and 1 tx queues") && msg.contains(&name),
                "{msg}"
            );
        }
        other => panic!("expected TooManyQueues, got {other:?}"),
    }
    // Zero queues is refused too.
    let id = eal
        .probe_vdev(&format!("{},iface={}", unique("net_af_packet"), veth.host_if))
        .unwrap_or_else(|e| panic!("{e}"));
    let config = PortConfig {
        queues: 0,
        ..PortConfig::default()
    };
    assert!(matches!(
        Port::start(&eal, id, pool(&eal), &config),
        Err(Error::Config { .. })
    ));
    // start_multi wants one pool per rx queue.
    let config = PortConfig {
        queues: 2,
        ..PortConfig::default()
    };
    assert!(matches!(
        Port::start_multi(&eal, id, vec![pool(&eal)], &config),
        Err(Error::Config { .. })
    ));
}

#[test]
fn af_xdp_on_a_two_queue_veth_one_port_per_queue_sharing_a_pool() {
    let veth = Veth::with_queues(2);
    let eal = eal();
    // DPDK 22.11's net_af_xdp allows at most the device's combined channels
    // as queue_count; a veth has separate rx/tx channels and no combined
    // ones, which the PMD takes for one queue. If this starts to succeed,
    // a newer DPDK lifted the limit: test a two-queue port here instead.
    let two = format!(
        "{},iface={},start_queue=0,queue_count=2",
        unique("net_af_xdp"),
        veth.host_if
    );
    match eal.probe_vdev(&two) {
        Err(Error::Probe { .. }) => {}
        other => panic!("net_af_xdp took queue_count=2 on a veth: {other:?}"),
    }
    // What works instead: one port per veth queue, each in its thread,
    // both receiving into (and transmitting from) one pool: each queue
    // makes its own UMEM over the pool and takes 2048 mbufs for its fill
    // queue.
    let shared = pool(&eal);
    let nics: Vec<DpdkNic> = (0..2)
        .map(|q| {
            let devargs = format!(
                "{},iface={},start_queue={q},queue_count=1",
                unique("net_af_xdp"),
                veth.host_if
            );
            let id = eal.probe_vdev(&devargs).unwrap_or_else(|e| panic!("{e}"));
            let port = Port::start(&eal, id, shared.clone(), &PortConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            DpdkNic::new(port)
        })
        .collect();
    assert!(shared.in_use() >= 2 * 2048, "two fill queues: {}", shared.in_use());
    let mut nics: Vec<DpdkNic> = check_flows_spread(nics, &veth, 64, 4)
        .into_iter()
        .map(|(nic, _)| nic)
        .collect();
    // The port on veth queue 1 transmits to the kernel, from another thread.
    let mut on_queue_1 = nics.pop().expect("second port");
    std::thread::scope(|s| {
        s.spawn(|| check_kernel_receives(&mut on_queue_1, &veth, KERNEL_IP, KERNEL_MAC, Csum::Full));
    });
}
