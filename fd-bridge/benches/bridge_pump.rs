//! Cost per byte of the supervisor's TCP pump: the calls that move a
//! program's bytes between its end of a [`Bridge`] (a real `AF_UNIX`
//! stream socketpair) and a TCP socket of Joyride's stack, in chunks of
//! 1 KiB, 16 KiB and 64 KiB (`Throughput::Bytes`).
//!
//! ```text
//! cargo bench -p joyride-fd-bridge --bench bridge_pump
//! ```
//!
//! The pump itself (`pump_tcp` in `supervisor/src/exec/socks.rs`) is private
//! to the supervisor, so this reproduces its sequence of public calls with
//! the same 256 KiB scratch buffer (`socks::CHUNK`):
//!
//! - `bridge_pump/to_stack`: [`Bridge::read`] into the scratch buffer, then
//!   `Interface::tcp_send` of what was read, until the chunk the program
//!   wrote is in the stack. `tcp_send` also cuts the new bytes into
//!   segments (software checksum, MTU 1500) as far as the open window
//!   allows, as it does under the supervisor: that is part of the cost.
//!   The socket has `TCP_NODELAY`, so a 1 KiB chunk is a segment of its
//!   own rather than waiting for the peer's delayed ACK.
//! - `bridge_pump/to_program`: `Interface::tcp_recv` into the scratch
//!   buffer, then [`Bridge::write`] of what was received, until the chunk
//!   waiting in the socket's receive buffer is in the program's end.
//!
//! Only those calls are timed. The program's own `write`/`read` on its end,
//! and the TCP transfer between the bridged socket and its peer (two
//! `Interface`s over in-memory devices, moved by hand), run untimed between
//! iterations. After each iteration the bytes are checked where they end
//! up (the peer's receive side, or the program's end) for count and
//! content, so a broken path panics instead of reporting a fast number.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use joyride_fd_bridge::{Bridge, Kind};
use joyride_netstack::iface::{SocketError, SocketHandle};
use joyride_netstack::sim::MemoryPair;

const PORT: u16 = 5001;
/// The supervisor's scratch buffer (`socks::CHUNK`).
const SCRATCH: usize = 256 << 10;
/// Chunk sizes measured, bytes.
const CHUNKS: [usize; 3] = [1 << 10, 16 << 10, 64 << 10];
/// Virtual time per step.
const TICK: Duration = Duration::from_micros(50);

/// Byte `k` of every stream: a pattern that a lost, repeated or reordered
/// byte breaks.
fn pattern(k: u64) -> u8 {
    (k % 251) as u8
}

/// `buf` holds stream bytes `from..from + buf.len()`.
fn check_pattern(buf: &[u8], from: u64) {
    for (i, &b) in buf.iter().enumerate() {
        assert_eq!(b, pattern(from + i as u64), "stream byte {}", from + i as u64);
    }
}

/// The bridged socket on stack `a`, its peer on stack `b`, and the bridge
/// whose program end stands for the socket in a program.
struct Rig {
    /// The two stacks.
    net: MemoryPair,
    /// The bridged socket (on `a`).
    sa: SocketHandle,
    /// Its peer (on `b`).
    sb: SocketHandle,
    bridge: Bridge,
    /// The program's end.
    program: UnixStream,
    scratch: Vec<u8>,
    /// Bytes the program wrote / the peer received (program to peer).
    up_written: u64,
    up_received: u64,
    /// Bytes the peer sent / the program read (peer to program).
    down_sent: u64,
    down_read: u64,
    buf: Vec<u8>,
}

impl Rig {
    fn new() -> Rig {
        let mut net = MemoryPair::new();
        let (sa, sb) = net.connect_tcp(PORT, TICK);
        // Blocking program end: the program's untimed writes and reads
        // always fit (chunks are far below the pair's buffer).
        let (bridge, theirs) = Bridge::new(Kind::Stream, false).expect("socketpair");
        let mut r = Rig {
            net,
            sa,
            sb,
            bridge,
            program: UnixStream::from(theirs),
            scratch: vec![0; SCRATCH],
            up_written: 0,
            up_received: 0,
            down_sent: 0,
            down_read: 0,
            buf: vec![0; SCRATCH],
        };
        // Sub-MSS chunks go out at once both ways, instead of waiting
        // (Nagle) for an ACK the receiver delays.
        r.net.a.tcp_set_nodelay(r.sa, true).unwrap();
        r.net.b.tcp_set_nodelay(sb, true).unwrap();
        r
    }

    /// Polls both stacks, moves frames across and lets the peer read what
    /// it received (checking it), until nothing moves.
    fn settle(&mut self) {
        let (sb, buf, up_received) = (self.sb, &mut self.buf, &mut self.up_received);
        self.net.settle(TICK, |b| {
            while let Ok(n @ 1..) = b.tcp_recv(sb, buf) {
                check_pattern(&buf[..n], *up_received);
                *up_received += n as u64;
            }
        });
    }

    /// Untimed: the program writes `len` bytes on its end.
    fn program_writes(&mut self, len: usize) {
        let data: Vec<u8> = (0..len as u64).map(|i| pattern(self.up_written + i)).collect();
        self.program.write_all(&data).expect("program write");
        self.up_written += len as u64;
    }

    /// Timed: the pump moves `len` bytes from the bridge into the socket.
    fn pump_to_stack(&mut self, len: usize) {
        let mut moved = 0;
        while moved < len {
            let n = self.bridge.read(&mut self.scratch).expect("bridge read");
            assert!(n > 0, "EOF on the bridge");
            let m = self.net.a.tcp_send(self.sa, &self.scratch[..n]).expect("tcp_send");
            assert_eq!(m, n, "the send buffer took it all");
            moved += n;
        }
        assert_eq!(moved, len, "more bytes than the program wrote");
    }

    /// Untimed: the TCP transfer to the peer, and the check that every
    /// byte the program wrote arrived.
    fn deliver_up(&mut self) {
        self.settle();
        assert_eq!(self.up_received, self.up_written, "bytes through the stack");
    }

    /// Untimed: the peer sends `len` bytes, which wait in the bridged
    /// socket's receive buffer.
    fn peer_sends(&mut self, len: usize) {
        let data: Vec<u8> = (0..len as u64).map(|i| pattern(self.down_sent + i)).collect();
        assert_eq!(self.net.b.tcp_send(self.sb, &data), Ok(len), "peer send");
        self.down_sent += len as u64;
        self.settle();
        assert_eq!(
            self.net.a.tcp_queued(self.sa).unwrap().0,
            len,
            "bytes waiting in the socket"
        );
    }

    /// Timed: the pump moves `len` bytes from the socket into the bridge.
    fn pump_to_program(&mut self, len: usize) {
        let mut moved = 0;
        while moved < len {
            let n = match self.net.a.tcp_recv(self.sa, &mut self.scratch) {
                Ok(n) => n,
                Err(SocketError::WouldBlock) => panic!("{moved} of {len} bytes in the receive buffer"),
                Err(e) => panic!("tcp_recv: {e:?}"),
            };
            assert!(n > 0, "EOF on the socket");
            let m = self.bridge.write(&self.scratch[..n]).expect("bridge write");
            assert_eq!(m, n, "the bridge took it all");
            moved += n;
        }
    }

    /// Untimed: the program reads the chunk and checks it.
    fn program_reads(&mut self, len: usize) {
        let buf = &mut self.buf[..len];
        self.program.read_exact(buf).expect("program read");
        check_pattern(buf, self.down_read);
        self.down_read += len as u64;
    }
}

fn bench_pump(c: &mut Criterion) {
    let mut group = c.benchmark_group("bridge_pump");
    let mut rig = Rig::new();
    for &len in &CHUNKS {
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("to_stack", len), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    rig.program_writes(len);
                    let start = std::time::Instant::now();
                    rig.pump_to_stack(black_box(len));
                    t += start.elapsed();
                    rig.deliver_up();
                }
                t
            })
        });
        group.bench_function(BenchmarkId::new("to_program", len), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    rig.peer_sends(len);
                    let start = std::time::Instant::now();
                    rig.pump_to_program(black_box(len));
                    t += start.elapsed();
                    rig.program_reads(len);
                }
                t
            })
        });
    }
    group.finish();
    assert_eq!(
        rig.net.a.tcp_retransmits() + rig.net.b.tcp_retransmits(),
        0,
        "a loss-free link"
    );
}

/// What `criterion_group!`/`criterion_main!` would generate, without their
/// undocumented `pub fn`. Short runs: every timed iteration pays an untimed
/// TCP transfer several times as long.
fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    bench_pump(&mut c);
    c.final_summary();
}
