//! Throughput of the Internet checksum (RFC 1071) the stack computes for
//! every IPv4 header and every UDP/TCP segment on a device without checksum
//! offload: [`joyride_netstack::wire::checksum::checksum`], which sums a
//! 64-bit word at a time ([`Sum::add_bytes`]) and folds once.
//!
//! ```text
//! cargo bench -p joyride-netstack --bench checksum
//! ```
//!
//! Buffers of 64 B (a minimum frame), 576 B (the IPv4 minimum datagram),
//! 1500 B (an Ethernet MTU), 9000 B (a jumbo frame) and 64 KiB (a TSO/GRO
//! sized segment), filled with pseudo-random bytes. Criterion reports
//! bytes per second. Before timing, each size is checked against a plain
//! 16-bit-at-a-time reference, so a broken sum cannot report a fast number.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use joyride_netstack::wire::checksum::{checksum, Sum};

/// Buffer sizes measured, bytes.
const SIZES: [usize; 5] = [64, 576, 1500, 9000, 64 << 10];

/// RFC 1071 the slow way: 16-bit words, carries folded at the end.
fn reference(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for c in data.chunks(2) {
        let hi = u64::from(c[0]) << 8;
        let lo = c.get(1).copied().map_or(0, u64::from);
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `len` bytes from a fixed xorshift sequence (not all zero, not periodic
/// at any small stride).
fn bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

fn bench_checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for &len in &SIZES {
        let data = bytes(len);
        assert_eq!(checksum(&data), reference(&data), "checksum of {len} bytes is wrong");
        // A buffer that contains its own checksum sums to all ones.
        let mut with_csum = data.clone();
        with_csum.extend_from_slice(&checksum(&data).to_be_bytes());
        assert_eq!(Sum::new().add_bytes(&with_csum).fold(), 0xffff);

        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &data, |b, data| {
            b.iter(|| checksum(black_box(data)))
        });
    }
    group.finish();
}

/// What `criterion_group!`/`criterion_main!` would generate, without their
/// undocumented `pub fn`: short runs, then the command line's options.
fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_checksum(&mut c);
    c.final_summary();
}
