//! ICMPv4: parse; what parses emits and re-parses to the same Repr.
#![no_main]
use joyride_netstack::wire::{Icmpv4Packet, Icmpv4Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.next_hop_mtu(),
            p.data(),
        );
        if let Ok(r) = Icmpv4Repr::parse(&p) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
            assert_eq!(
                Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[..]).unwrap()).unwrap(),
                r
            );
        }
    }
});
