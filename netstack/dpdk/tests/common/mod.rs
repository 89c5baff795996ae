//! Helpers for tests against the Linux kernel: hand-built frames, and (from
//! [`joyride_dpdk::testbed`], shared with the benchmarks) a network
//! namespace with a veth pair into it (removed on drop, also when a test
//! panics) and a one-per-process EAL.
#![allow(dead_code, unused_imports)]

use std::net::Ipv4Addr;

pub use joyride_dpdk::testbed::{eal, mac_str, run, run_quiet, unique, Veth, DPDK_IP, HOST_MAC, KERNEL_IP, KERNEL_MAC};

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
