//! IPv6: the fixed header and the extension-header walk, including after a
//! fragment header as reassembly would.
#![no_main]
use joyride_netstack::wire::{Ipv6ExtHeaders, Ipv6Packet, Ipv6Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = (p.traffic_class(), p.flow_label(), p.src_addr(), p.dst_addr());
        if let Ok(r) = Ipv6Repr::parse(&p) {
            let payload = p.payload();
            if let Ok(e) = Ipv6ExtHeaders::parse(r.next_header, payload, true) {
                assert!(e.offset <= payload.len());
                let rest = &payload[e.offset..];
                if let Some(f) = e.fragment {
                    if let Ok(e2) = Ipv6ExtHeaders::parse(f.next_header, rest, false) {
                        assert!(e2.offset <= rest.len());
                    }
                }
            }
        }
    }
    // The walk alone, over arbitrary bytes, with every first header.
    if let Some((&nh, rest)) = data.split_first() {
        if let Ok(e) = Ipv6ExtHeaders::parse(nh, rest, true) {
            assert!(e.offset <= rest.len());
        }
    }
});
