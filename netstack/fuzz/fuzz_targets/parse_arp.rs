//! ARP: every accessor after check_len, and a round trip of what parses.
#![no_main]
use joyride_netstack::wire::{ArpPacket, ArpRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArpPacket::new_checked(data) {
        let _ = (p.operation(), p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        if let Ok(r) = ArpRepr::parse(&p) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
            assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()).unwrap(), r);
        }
    }
});
