//! UDP: parse (checksum skipped so bodies are reached); round trip.
#![no_main]
use std::net::Ipv4Addr;

use joyride_netstack::wire::checksum::PseudoHeader;
use joyride_netstack::wire::{ChecksumMode, UdpPacket, UdpRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ph = PseudoHeader::V4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.verify_checksum(&ph),
        );
        if let Ok(r) = UdpRepr::parse(&p, &ph, ChecksumMode::Offload) {
            let payload = p.payload();
            let mut out = vec![0u8; r.buffer_len(payload.len())];
            r.emit(
                &mut UdpPacket::new_unchecked(&mut out[..]),
                &ph,
                payload,
                ChecksumMode::Compute,
            );
            let q = UdpPacket::new_checked(&out[..]).unwrap();
            assert_eq!(UdpRepr::parse(&q, &ph, ChecksumMode::Compute).unwrap(), r);
            assert_eq!(q.payload(), payload);
        }
    }
});
