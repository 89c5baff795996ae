//! ICMPv6 and NDP: parse with a fixed pseudo-header (the checksum is fixed
//! up first so the fuzzer reaches the message bodies).
#![no_main]
use std::net::Ipv6Addr;

use joyride_netstack::wire::{Icmpv6Packet, Icmpv6Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
    let mut buf = data.to_vec();
    if let Ok(mut p) = Icmpv6Packet::new_checked(&mut buf[..]) {
        p.fill_checksum(&src, &dst);
    }
    if let Ok(p) = Icmpv6Packet::new_checked(&buf[..]) {
        if let Ok(r) = Icmpv6Repr::parse(&src, &dst, &p) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut out[..]));
            let q = Icmpv6Packet::new_checked(&out[..]).unwrap();
            assert_eq!(Icmpv6Repr::parse(&src, &dst, &q).unwrap(), r);
        }
    }
});
