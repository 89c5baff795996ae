//! Ethernet: parse, and emit what parsed back to the same bytes.
#![no_main]
use joyride_netstack::wire::{EthernetFrame, EthernetRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let r = EthernetRepr::parse(&f).unwrap();
        let _ = f.payload();
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &data[..14]);
    }
});
