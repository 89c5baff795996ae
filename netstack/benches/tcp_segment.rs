//! Cost per full-sized TCP segment through the stack's public API, between
//! two [`Interface`]s joined by in-memory devices ([`MemoryNic`]), IPv4,
//! MTU 1500, timestamps on (1448-byte payloads in 1514-byte frames), no
//! checksum offload (every segment is checksummed in software on both
//! sides, as on a device without offload).
//!
//! ```text
//! cargo bench -p joyride-netstack --bench tcp_segment
//! ```
//!
//! Three cases, each reported per segment (`Throughput::Elements`):
//!
//! - `tcp_segment/output`: the sender's `tcp_send` of [`BURST`] full
//!   segments' worth of bytes (copied into the send buffer and cut into
//!   segments as the open window allows) and the `Interface::poll` calls
//!   that hand the frames to the device, until every frame is out of the
//!   device. One element is one data segment.
//! - `tcp_segment/input`: the receiver's `Interface::poll` over [`BURST`]
//!   in-order data frames waiting in its device, draining readiness events,
//!   and `tcp_recv` of every byte into the program's buffer. This includes
//!   building and transmitting the ACKs the receiver sends. The frames are
//!   produced by the sending stack and injected before the clock starts.
//!   One element is one data segment.
//! - `tcp_segment/ack`: the sender's `Interface::poll` over the pure ACKs
//!   the receiver produced for a burst (injected before the clock starts),
//!   with nothing left to send. One element is one ACK; how many ACKs a
//!   burst gets is the receiver's choice, so a timed round covers a whole
//!   burst's ACKs and the time is scaled to the requested iterations.
//!
//! Everything outside the timed part of a round (moving frames between the
//! devices, the other side's processing) runs untimed, so that both
//! sides stay in step: the connection is the same steady, loss-free bulk
//! transfer throughout, with its congestion window opened well beyond a
//! burst by a warm-up transfer. The clock is virtual and advances 50 µs per
//! round. Each round checks that every segment went out full-sized, that the
//! receiver got every byte in order, and that the sender's queue emptied, so
//! a broken path panics instead of reporting a fast number.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use joyride_netstack::iface::SocketHandle;
use joyride_netstack::sim::MemoryPair;

const PORT: u16 = 5001;
/// Segments per round: one device burst.
const BURST: usize = 32;
/// Virtual time per round.
const TICK: Duration = Duration::from_micros(50);
/// Ethernet + IPv4 + TCP with the timestamp option.
const HEADERS: usize = 14 + 20 + 32;

/// A connected pair: `a` (client, the sender) and `b` (server, the
/// receiver), each with its device; frames are moved by hand.
struct Pair {
    /// The two stacks: `a` sends, `b` receives.
    net: MemoryPair,
    /// The sending socket on `a`.
    tx: SocketHandle,
    /// The receiving socket on `b`.
    rx: SocketHandle,
    /// The sender's MSS.
    mss: usize,
    /// `BURST * mss` bytes of pattern, sent every round.
    data: Vec<u8>,
    /// The receiver's buffer.
    buf: Vec<u8>,
    /// Frames taken from a device, reused between rounds.
    frames: Vec<Vec<u8>>,
}

impl Pair {
    fn new() -> Pair {
        let mut net = MemoryPair::new();
        let (tx, rx) = net.connect_tcp(PORT, TICK);
        let mut p = Pair {
            net,
            tx,
            rx,
            mss: 0,
            data: Vec::new(),
            buf: Vec::new(),
            frames: Vec::with_capacity(4 * BURST),
        };
        let info = p.net.a.tcp_info(tx).expect("socket").expect("connection");
        p.mss = info.snd_mss as usize;
        assert_eq!(p.mss, 1448, "MSS for MTU 1500 with timestamps: {info:?}");
        p.data = (0..BURST * p.mss).map(|i| (i % 251) as u8).collect();
        p.buf = vec![0; BURST * p.mss + 1];
        // Open the congestion window: a bulk transfer far beyond a burst.
        // An even number of full segments, so that no delayed ACK is left
        // pending, just under the 4 MiB send buffer.
        let bulk = vec![7u8; 2 * 1448 * p.mss];
        assert_eq!(
            p.net.a.tcp_send(tx, &bulk),
            Ok(bulk.len()),
            "the send buffer takes it all"
        );
        p.settle();
        assert_eq!(p.net.a.tcp_queued(tx).unwrap(), (0, 0), "the warm-up transfer finished");
        let info = p.net.a.tcp_info(tx).unwrap().unwrap();
        assert!(info.cwnd as usize >= 2 * BURST * p.mss, "window still small: {info:?}");
        assert_eq!(info.bytes_acked, bulk.len() as u64, "{info:?}");
        p
    }

    /// Polls both sides, moves frames across and lets the program read
    /// (and drop) what `b` received, until nothing moves.
    fn settle(&mut self) {
        let (rx, buf) = (self.rx, &mut self.buf);
        self.net.settle(TICK, |b| {
            while let Ok(n) = b.tcp_recv(rx, buf) {
                if n == 0 {
                    break;
                }
            }
        });
    }

    /// The sender queues a burst and the device takes all of its frames
    /// into `self.frames`. The timed part of the output case.
    fn send_burst(&mut self) {
        let len = self.data.len();
        let mut sent = 0;
        while sent < len {
            sent += self.net.a.tcp_send(self.tx, &self.data[sent..]).expect("tcp_send");
        }
        self.frames.clear();
        while self.frames.len() < BURST {
            self.net.a.poll(self.net.now, &mut self.net.na);
            self.net.a.drain_events().for_each(drop);
            let before = self.frames.len();
            self.frames.extend(self.net.na.drain_transmitted());
            assert!(
                self.frames.len() > before,
                "the sender stalled: {:?}",
                self.net.a.tcp_info(self.tx)
            );
        }
    }

    /// Checks that the burst just sent is `BURST` full-sized segments.
    fn check_burst(&self) {
        assert_eq!(self.frames.len(), BURST, "segments in a burst");
        for f in &self.frames {
            assert_eq!(f.len(), HEADERS + self.mss, "a full-sized segment");
        }
    }

    /// Moves the burst into the receiver's device.
    fn deliver_to_b(&mut self) {
        for f in self.frames.drain(..) {
            assert!(self.net.nb.inject(f), "receiver queue full");
        }
    }

    /// The receiver processes what its device holds and the program reads
    /// everything. The timed part of the input case. Returns bytes read.
    fn receive_all(&mut self) -> usize {
        let mut got = 0;
        while self.net.nb.rx_len() > 0 {
            self.net.b.poll(self.net.now, &mut self.net.nb);
            self.net.b.drain_events().for_each(drop);
            while let Ok(n) = self.net.b.tcp_recv(self.rx, &mut self.buf[got..]) {
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        got
    }

    /// Checks what the receiver read.
    fn check_received(&self, got: usize) {
        assert_eq!(got, self.data.len(), "bytes received in a round");
        assert!(
            self.buf[..got] == self.data[..],
            "bytes received out of order or corrupted"
        );
    }

    /// Moves the receiver's ACKs into the sender's device (untimed), then
    /// lets the sender process them; returns how many there were.
    fn acks_to_a(&mut self) -> usize {
        let n = self.stage_acks();
        self.process_acks();
        self.check_all_acked();
        self.net.now += TICK;
        n
    }

    /// Moves the receiver's ACKs into the sender's device.
    fn stage_acks(&mut self) -> usize {
        let mut n = 0;
        while let Some(f) = self.net.nb.pop_transmitted() {
            assert_eq!(f.len(), HEADERS, "a pure ACK");
            assert!(self.net.na.inject(f), "sender queue full");
            n += 1;
        }
        n
    }

    /// The sender processes the ACKs in its device. The timed part of the
    /// ACK case.
    fn process_acks(&mut self) {
        while self.net.na.rx_len() > 0 {
            self.net.a.poll(self.net.now, &mut self.net.na);
            self.net.a.drain_events().for_each(drop);
        }
    }

    /// Checks that nothing is left unacknowledged or unsent.
    fn check_all_acked(&self) {
        assert_eq!(
            self.net.a.tcp_queued(self.tx).unwrap(),
            (0, 0),
            "sender's queue after the ACKs"
        );
        assert_eq!(self.net.na.tx_len(), 0, "the sender answered ACKs");
    }
}

fn bench_tcp(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_segment");
    group.throughput(Throughput::Elements(1));

    let mut p = Pair::new();
    group.bench_function("output", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            let mut segments = 0u64;
            while segments < iters {
                let start = std::time::Instant::now();
                p.send_burst();
                t += start.elapsed();
                p.check_burst();
                segments += BURST as u64;
                p.deliver_to_b();
                let got = p.receive_all();
                p.check_received(got);
                p.acks_to_a();
            }
            t.mul_f64(iters as f64 / segments as f64)
        })
    });

    group.bench_function("input", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            let mut segments = 0u64;
            while segments < iters {
                p.send_burst();
                p.check_burst();
                p.deliver_to_b();
                let start = std::time::Instant::now();
                let got = black_box(p.receive_all());
                t += start.elapsed();
                p.check_received(got);
                segments += BURST as u64;
                p.acks_to_a();
            }
            t.mul_f64(iters as f64 / segments as f64)
        })
    });

    group.bench_function("ack", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            let mut acks = 0u64;
            while acks < iters {
                p.send_burst();
                p.check_burst();
                p.deliver_to_b();
                let got = p.receive_all();
                p.check_received(got);
                let n = p.stage_acks();
                assert!(n > 0, "the receiver sent no ACK for a burst");
                let start = std::time::Instant::now();
                p.process_acks();
                t += start.elapsed();
                p.check_all_acked();
                acks += n as u64;
                p.net.now += TICK;
            }
            t.mul_f64(iters as f64 / acks as f64)
        })
    });
    group.finish();

    let counters = p.net.a.tcp_counters();
    assert_eq!(
        p.net.a.tcp_retransmits(),
        0,
        "a loss-free link never retransmits: {counters:?}"
    );
}

/// What `criterion_group!`/`criterion_main!` would generate, without their
/// undocumented `pub fn`: short runs, then the command line's options.
fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_tcp(&mut c);
    c.final_summary();
}
