//! Packets per second through the stack's receive path on one core: frames
//! from an in-memory device ([`MemoryNic`]) through Ethernet and IP parsing
//! (software checksum verification, as on a device without offload), the
//! UDP demultiplexer, delivery to a socket's queue, and the application's
//! `udp_recv`.
//!
//! ```text
//! cargo bench -p joyride-netstack --bench rx_pps -- [--secs 2] [--sizes 64,1400]
//! ```
//!
//! Frames are built once and copied into the device's receive queue in
//! batches outside the timed region; only `Interface::poll`, draining the
//! readiness events and receiving the datagrams are timed. A benchmark
//! binary, not a test: it prints numbers and checks only that every
//! datagram was delivered.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use joyride_netstack::iface::{Config, Family, Interface, Ipv4Cidr, Ipv6Cidr, SocketHandle};
use joyride_netstack::sim::MemoryNic;
use joyride_netstack::time::{Clock, SystemClock};
use joyride_netstack::wire::EthernetAddress;

/// The stack's Ethernet address.
const STACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The sender's Ethernet address.
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const STACK_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// The port the receiving socket is bound to.
const PORT: u16 = 9000;
/// Frames put in the device's queue per timed round.
const BATCH: usize = 4096;
/// Distinct source ports among the frames (flows hashed by the demux).
const FLOWS: u16 = 64;

/// Command-line options.
struct Options {
    secs: f64,
    sizes: Vec<usize>,
}

fn parse_options() -> Options {
    let mut opts = Options {
        secs: 2.0,
        sizes: vec![64, 1400],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => opts.secs = it.next().and_then(|v| v.parse().ok()).expect("--secs N"),
            "--sizes" => {
                opts.sizes = it
                    .next()
                    .expect("--sizes A,B")
                    .split(',')
                    .map(|s| s.parse().expect("payload size"))
                    .collect()
            }
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    opts
}

fn main() {
    let opts = parse_options();
    println!(
        "receive path, one core: MemoryNic -> parse -> demux -> UDP socket -> udp_recv, \
         {} s per case, batches of {BATCH} frames, {FLOWS} flows",
        opts.secs
    );
    for &size in &opts.sizes {
        for v6 in [false, true] {
            run_case(size, v6, Duration::from_secs_f64(opts.secs));
        }
    }
}

/// Measures one payload size and family and prints the result.
fn run_case(payload: usize, v6: bool, secs: Duration) {
    let mut config = Config::new(EthernetAddress(STACK_MAC));
    config.ipv4 = Some(Ipv4Cidr::new(STACK_V4, 24));
    config.ipv6 = vec![Ipv6Cidr::new(STACK_V6, 64)];
    config.udp.rx_queue_datagrams = BATCH;
    config.udp.rx_queue_bytes = BATCH * 2048;
    let mut iface = Interface::new(config);
    let (family, any) = if v6 {
        (Family::V6 { v6only: true }, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Family::V4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let sock = iface.udp_open(family);
    iface.udp_bind(sock, SocketAddr::new(any, PORT)).expect("bind");
    let mut nic = MemoryNic::new(STACK_MAC);
    nic.set_queue_limits(BATCH, BATCH);

    let data: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|f| {
            if v6 {
                udp6_frame(5000 + f, &data)
            } else {
                udp4_frame(5000 + f, &data)
            }
        })
        .collect();

    let clock = SystemClock::new();
    // Warm up: fill the buffer pools and caches once.
    round(&mut iface, &mut nic, &frames, sock, &clock, payload);
    let before = *iface.counters();
    let (mut elapsed, mut delivered) = (Duration::ZERO, 0u64);
    while elapsed < secs {
        let (t, n) = round(&mut iface, &mut nic, &frames, sock, &clock, payload);
        elapsed += t;
        delivered += n;
    }
    let after = *iface.counters();
    assert_eq!(
        after.udp_rx_datagrams - before.udp_rx_datagrams,
        delivered,
        "every datagram delivered: {after:?}"
    );
    assert_eq!(after.rx_frames - before.rx_frames, delivered, "{after:?}");
    let pps = delivered as f64 / elapsed.as_secs_f64();
    println!(
        "IPv{} UDP {payload:>5}-byte payload ({:>4}-byte frames): {:>6.2} Mpps, {:>6.1} ns/packet, {:>6.2} Gbit/s of payload",
        if v6 { 6 } else { 4 },
        frames[0].len(),
        pps / 1e6,
        1e9 / pps,
        pps * payload as f64 * 8.0 / 1e9,
    );
}

/// Puts [`BATCH`] frames in the device (untimed) and times the stack
/// receiving all of them and the application taking every datagram.
/// Returns the time taken and the datagrams received.
fn round(
    iface: &mut Interface,
    nic: &mut MemoryNic,
    frames: &[Vec<u8>],
    sock: SocketHandle,
    clock: &SystemClock,
    payload: usize,
) -> (Duration, u64) {
    for i in 0..BATCH {
        nic.inject(frames[i % frames.len()].clone());
    }
    let mut got = 0u64;
    let start = Instant::now();
    while nic.rx_len() > 0 {
        iface.poll(clock.now(), nic);
        let mut readable = false;
        for ev in iface.drain_events() {
            readable |= ev.readable && ev.handle == sock;
        }
        if readable {
            while let Ok(d) = iface.udp_recv(sock) {
                debug_assert_eq!(d.data.len(), payload);
                got += 1;
            }
        }
    }
    let t = start.elapsed();
    assert_eq!(got, BATCH as u64, "datagrams lost: {:?}", iface.counters());
    (t, got)
}

/// The Internet checksum of `data` folded with `initial`.
fn checksum(initial: u32, data: &[u8]) -> u16 {
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

/// Sum of 16-bit words of `bytes` (even length), unfolded.
fn word_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum()
}

/// Ethernet header from the peer to the stack.
fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = STACK_MAC.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A UDP header and `data` from `src_port` to [`PORT`], checksummed with
/// the pseudo-header sum `pseudo`.
fn udp(src_port: u16, data: &[u8], pseudo: u32) -> Vec<u8> {
    let len = (8 + data.len()) as u16;
    let mut u = src_port.to_be_bytes().to_vec();
    u.extend_from_slice(&PORT.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let c = match checksum(pseudo + 17 + u32::from(len), &u) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// Ethernet/IPv4/UDP from the peer to the stack.
fn udp4_frame(src_port: u16, data: &[u8]) -> Vec<u8> {
    let pseudo = word_sum(&PEER_V4.octets()) + word_sum(&STACK_V4.octets());
    let u = udp(src_port, data, pseudo);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + u.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&PEER_V4.octets());
    ip.extend_from_slice(&STACK_V4.octets());
    let c = checksum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    [eth(0x0800), ip, u].concat()
}

/// Ethernet/IPv6/UDP from the peer to the stack.
fn udp6_frame(src_port: u16, data: &[u8]) -> Vec<u8> {
    let pseudo = word_sum(&PEER_V6.octets()) + word_sum(&STACK_V6.octets());
    let u = udp(src_port, data, pseudo);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(u.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&PEER_V6.octets());
    ip.extend_from_slice(&STACK_V6.octets());
    [eth(0x86dd), ip, u].concat()
}
