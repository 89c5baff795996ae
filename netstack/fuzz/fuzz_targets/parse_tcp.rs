//! TCP header and options: parse (checksum skipped), iterate options, and
//! check that what emits re-parses to the same Repr when all of it fits.
#![no_main]
use std::net::Ipv4Addr;

use joyride_netstack::wire::checksum::PseudoHeader;
use joyride_netstack::wire::tcp::options;
use joyride_netstack::wire::{ChecksumMode, TcpPacket, TcpRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ph = PseudoHeader::V4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    if let Ok(p) = TcpPacket::new_checked(data) {
        for o in options(p.options()) {
            let _ = o;
        }
        if let Ok(r) = TcpRepr::parse(&p, &ph, ChecksumMode::Offload) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &ph, ChecksumMode::Compute);
            let q = TcpPacket::new_checked(&out[..]).unwrap();
            let back = TcpRepr::parse(&q, &ph, ChecksumMode::Compute).unwrap();
            let blocks = |r: &TcpRepr| r.sack_ranges.iter().flatten().count();
            if blocks(&back) == blocks(&r) {
                assert_eq!(back, r);
            }
        }
    }
});
