//! IPv4: every accessor after check_len; a parsed header emits and
//! re-parses to the same Repr.
#![no_main]
use joyride_netstack::wire::{ChecksumMode, Ipv4Packet, Ipv4Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (
            p.version(),
            p.header_len(),
            p.total_len(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
        );
        let _ = (p.frag_offset(), p.hop_limit(), p.protocol(), p.src_addr(), p.dst_addr());
        let _ = (p.header(), p.payload(), p.verify_checksum(), p.options());
        if let Ok(r) = Ipv4Repr::parse(&p, ChecksumMode::Offload) {
            let mut out = vec![0u8; r.buffer_len() + r.payload_len];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), ChecksumMode::Compute);
            let q = Ipv4Packet::new_checked(&out[..]).unwrap();
            assert_eq!(Ipv4Repr::parse(&q, ChecksumMode::Compute).unwrap(), r);
        }
    }
});
