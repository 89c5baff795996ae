//! Frames whose TCP/UDP checksum a Linux sender left to offload
//! (`CHECKSUM_PARTIAL`) and nothing completed: dropped, and counted apart
//! from corrupted ones (`drop_partial_checksum`).
//!
//! The frames are real: captured with an `AF_PACKET` socket on one end of a
//! veth pair whose other end, in a network namespace of a Linux 6.18
//! kernel with default offloads (tx checksumming on), sent a TCP SYN and a
//! UDP datagram over IPv4 and over IPv6 from 10.199.0.2 / fd99::2 to
//! 10.199.0.1 / fd99::1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::tests::TestNic;
use super::*;
use crate::time::Instant;
use crate::wire::checksum::{ChecksumMode, PseudoHeader};
use crate::wire::test_util::hex;
use crate::wire::{EthernetAddress, TcpPacket, UdpPacket};

/// The receiving end's Ethernet address (the frames' destination).
const MAC: EthernetAddress = EthernetAddress([0xa6, 0xa3, 0x06, 0x4a, 0xa8, 0xdf]);

/// (IPv6?, IP protocol, frame), as captured.
const CAPTURED: [(bool, u8, &str); 4] = [
    (
        false,
        6,
        "a6a3064aa8df cef45a7acec6 0800 4500003cf9a5400040062b860ac700020ac70001
         b2800009943369cf00000000a002faf015bf0000020405b40402080a2edf4536000000000103030a",
    ),
    (
        true,
        6,
        "a6a3064aa8df cef45a7acec6 86dd 6005f0e300280640
         fd990000000000000000000000000002 fd990000000000000000000000000001
         b37600091a23e3fe00000000a002fd20fb640000020405a00402080a7971fd5c000000000103030a",
    ),
    (
        false,
        17,
        "a6a3064aa8df cef45a7acec6 0800 450000298bfd4000401199360ac700020ac70001
         be3f0009001515b768656c6c6f207061727469616c",
    ),
    (
        true,
        17,
        "a6a3064aa8df cef45a7acec6 86dd 600affb200181140
         fd990000000000000000000000000002 fd990000000000000000000000000001
         9e0f00090018fb5f68656c6c6f207061727469616c207636",
    ),
];

fn receiver() -> Interface {
    let mut c = Config::new(MAC);
    c.ipv4 = Some(Ipv4Cidr::new(Ipv4Addr::new(10, 199, 0, 1), 24));
    c.ipv6 = vec![Ipv6Cidr::new("fd99::1".parse().unwrap(), 64)];
    Interface::new(c)
}

/// Where the upper layer starts, its pseudo-header, and where its checksum
/// field is, in a captured frame.
fn layout(v6: bool, proto: u8) -> (usize, PseudoHeader, usize) {
    let (l4, ph) = if v6 {
        let s: Ipv6Addr = "fd99::2".parse().unwrap();
        let d: Ipv6Addr = "fd99::1".parse().unwrap();
        (14 + 40, PseudoHeader::between(IpAddr::V6(s), IpAddr::V6(d)).unwrap())
    } else {
        let s = Ipv4Addr::new(10, 199, 0, 2);
        let d = Ipv4Addr::new(10, 199, 0, 1);
        (14 + 20, PseudoHeader::V4(s, d))
    };
    (l4, ph, l4 + if proto == 6 { 16 } else { 6 })
}

/// The frame with its checksum completed, as a device would have.
fn completed(v6: bool, proto: u8, frame: &[u8]) -> Vec<u8> {
    let (l4, ph, _) = layout(v6, proto);
    let mut f = frame.to_vec();
    if proto == 6 {
        TcpPacket::new_unchecked(&mut f[l4..]).fill_checksum(&ph, ChecksumMode::Compute);
    } else {
        UdpPacket::new_unchecked(&mut f[l4..]).fill_checksum(&ph, ChecksumMode::Compute);
    }
    f
}

fn feed(frames: Vec<Vec<u8>>) -> (Counters, TcpCounters) {
    let mut i = receiver();
    let mut nic = TestNic::new();
    nic.rx.extend(frames);
    while !nic.rx.is_empty() {
        i.poll(Instant::ZERO, &mut nic);
    }
    (*i.counters(), *i.tcp_counters())
}

#[test]
fn linux_partial_checksums_are_dropped_and_counted_apart() {
    let frames = CAPTURED.iter().map(|&(_, _, h)| hex(h)).collect();
    let (c, t) = feed(frames);
    assert_eq!(c.drop_partial_checksum, 4);
    assert_eq!(t.drop_checksum, 0);
    assert_eq!(c.drop_udp_checksum, 0);
    assert_eq!((t.rx_segments, c.udp_rx_datagrams, c.drop_udp_no_socket), (0, 0, 0));
}

#[test]
fn the_same_frames_completed_are_accepted() {
    let frames = CAPTURED.iter().map(|&(v6, p, h)| completed(v6, p, &hex(h))).collect();
    let (c, t) = feed(frames);
    assert_eq!(c.drop_partial_checksum, 0);
    assert_eq!((t.drop_checksum, c.drop_udp_checksum), (0, 0));
    // Nobody listens on port 9: the SYNs get RSTs, the datagrams ICMP errors.
    assert_eq!(t.no_socket, 2);
    assert_eq!(c.drop_udp_no_socket, 2);
}

#[test]
fn corrupted_checksums_are_plain_checksum_errors() {
    // A small LCG: the corruptions are the same on every run.
    let mut x: u32 = 0x1234_5678;
    let mut frames = Vec::new();
    for &(v6, proto, h) in &CAPTURED {
        let good = completed(v6, proto, &hex(h));
        let (_, _, at) = layout(v6, proto);
        let valid = u16::from_be_bytes([good[at], good[at + 1]]);
        let partial = u16::from_be_bytes(hex(h)[at..at + 2].try_into().unwrap());
        let mut n = 0;
        while n < 25 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let v = (x >> 16) as u16;
            // 0 and 0xffff are the same sum; a zero UDP/IPv4 checksum means
            // "none".
            if [valid, partial, 0, 0xffff].contains(&v) {
                continue;
            }
            let mut f = good.clone();
            f[at..at + 2].copy_from_slice(&v.to_be_bytes());
            frames.push(f);
            n += 1;
        }
    }
    let (c, t) = feed(frames);
    assert_eq!(c.drop_partial_checksum, 0);
    assert_eq!(t.drop_checksum, 50);
    assert_eq!(c.drop_udp_checksum, 50);
}
