//! Buffer autotuning seen from the ends of a connection: two tcpcbs over a
//! lossless link with a fixed delay (so an RTT the receiver can measure),
//! the programs at each end writing and reading as a test says.

use std::collections::VecDeque;

use super::*;
use crate::tcp::syncache::{AckInfo, ListenOptions, SynAction, SynInfo, Syncache, SyncacheConfig};
use core::net::SocketAddr;

/// One-way delay of the link.
const DELAY: Duration = Duration::from_millis(10);
/// How often the programs run.
const TICK: Duration = Duration::from_millis(1);

/// A segment on the wire, with its payload copied out.
struct Wire {
    seg: Segment,
    payload: Vec<u8>,
}

/// `a` connected to `b` (accepted through a syncache), a FIFO link each
/// way, and the virtual clock.
struct Duplex {
    a: Tcb,
    b: Tcb,
    now: Instant,
    /// (deliver at, to b?, segment).
    wire: VecDeque<(Instant, bool, Wire)>,
    /// The largest window `b` announced, bytes.
    b_max_window: u32,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn push(wire: &mut VecDeque<(Instant, bool, Wire)>, t: &mut Tcb, now: Instant, to_b: bool) {
    while let Some(seg) = t.poll(now) {
        let (x, y) = t.payload(&seg);
        let payload = [x, y].concat();
        wire.push_back((now + DELAY, to_b, Wire { seg, payload }));
    }
}

impl Duplex {
    /// A connection with `a`'s settings `ca` and `b`'s `cb` (ports swapped
    /// for `b`), established.
    fn new(ca: Config, cb: Config) -> Duplex {
        let mut now = Instant::from_secs(1);
        let (mut a, syn) = Tcb::connect(ca, SeqNum(7000), now);
        let cb = Config {
            local_port: cb.remote_port,
            remote_port: cb.local_port,
            ..cb
        };
        let opts = ListenOptions {
            mss: cb.mss,
            wscale: cb.window_scaling.then(|| cb.wscale()),
            sack: cb.sack,
            timestamps: cb.timestamps,
            window: cb.recv_buffer.min(0xffff) as u16,
            backlog: 8,
        };
        let (la, lb) = (addr(cb.remote_port), addr(cb.local_port));
        let mut sc = Syncache::new(SyncacheConfig::default(), [3; 16]);
        now += DELAY;
        let info = SynInfo {
            peer_isn: syn.seq,
            mss: syn.mss,
            wscale: syn.window_scale,
            sack_ok: syn.sack_permitted,
            tsval: syn.timestamp.map(|t| t.0),
            window: syn.window,
            fin: false,
        };
        let SynAction::SendSynAck(sa) = sc.on_syn(now, lb, la, &info, &opts) else {
            panic!("no SYN-ACK");
        };
        now += DELAY;
        a.on_segment(now, &sa.repr());
        assert_eq!(a.state(), State::Established);
        let ack = a.poll(now).expect("the handshake's ACK");
        now += DELAY;
        let ack_info = AckInfo {
            seq: ack.seq,
            ack: ack.ack.expect("ACK"),
            window: ack.window,
            ts: ack.timestamp,
        };
        let n = sc.on_ack(now, lb, la, &ack_info, &opts).expect("handshake completes");
        let mut b = Tcb::accept(cb, &n, now);
        b.on_segment(now, &ack.repr(&[]));
        Duplex {
            a,
            b,
            now,
            wire: VecDeque::new(),
            b_max_window: 0,
        }
    }

    /// Runs for `d`: every tick `program` runs at both ends, then what is
    /// due is delivered and what the tcpcbs send goes on the wire.
    fn run(&mut self, d: Duration, mut program: impl FnMut(&mut Tcb, &mut Tcb, Instant)) {
        let end = self.now + d;
        while self.now < end {
            self.now += TICK;
            let now = self.now;
            program(&mut self.a, &mut self.b, now);
            push(&mut self.wire, &mut self.a, now, true);
            push(&mut self.wire, &mut self.b, now, false);
            while self.wire.front().is_some_and(|w| w.0 <= now) {
                let (_, to_b, w) = self.wire.pop_front().expect("due");
                let repr = w.seg.repr(&w.payload);
                if to_b {
                    self.b.on_segment(now, &repr);
                } else {
                    let wnd = u32::from(w.seg.window) << self.b.rcv_wscale;
                    self.b_max_window = self.b_max_window.max(wnd);
                    self.a.on_segment(now, &repr);
                }
                push(&mut self.wire, &mut self.a, now, true);
                push(&mut self.wire, &mut self.b, now, false);
            }
        }
    }
}

/// What the programs do: `a` keeps its send buffer full; `b` reads up to
/// `read` bytes in all, as fast as they come.
fn write_all_read(read: usize) -> impl FnMut(&mut Tcb, &mut Tcb, Instant) {
    let chunk = vec![0x5au8; 64 * 1024];
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    move |a, b, now| {
        while a.send(&chunk) > 0 {}
        while got < read {
            let max = (read - got).min(buf.len());
            let n = b.recv(now, &mut buf[..max]);
            if n == 0 {
                break;
            }
            got += n;
        }
    }
}

/// A receiver that reads nothing keeps the buffer, and so the window, it
/// started with: the sender fills it and no more.
#[test]
fn receiver_reading_nothing_stays_at_the_initial_size() {
    let cfg = Config::new(LOCAL_PORT, REMOTE_PORT);
    let mut d = Duplex::new(cfg.clone(), cfg);
    assert_eq!(d.b.recv_buffer_size(), autotune::RECV_BUFFER_INITIAL);
    d.run(Duration::from_secs(3), write_all_read(0));
    assert_eq!(d.b.recv_buffer_size(), autotune::RECV_BUFFER_INITIAL);
    assert_eq!(d.b.recv_queued(), autotune::RECV_BUFFER_INITIAL, "the buffer filled");
    assert!(
        d.b_max_window <= autotune::RECV_BUFFER_INITIAL as u32,
        "window {} beyond the initial buffer",
        d.b_max_window
    );
    assert_eq!(d.b.info().rcv_wnd, 0, "the window closed");
    // The sender's buffer grew only with the congestion window the
    // receiver's initial window let it open, and stops once that closed.
    let a_buf = d.a.send_buffer_size();
    assert!(a_buf < 1 << 20, "send buffer {a_buf}");
    d.run(Duration::from_secs(3), write_all_read(0));
    assert_eq!(d.a.send_buffer_size(), a_buf);
    assert_eq!(d.b.recv_buffer_size(), autotune::RECV_BUFFER_INITIAL);
}

/// A receiver that reads as fast as data comes grows its buffer to the
/// maximum within a few RTTs, and the sender's buffer follows its
/// congestion window.
#[test]
fn receiver_reading_fast_grows_to_the_maximum() {
    let cfg = Config::new(LOCAL_PORT, REMOTE_PORT);
    let mut d = Duplex::new(cfg.clone(), cfg);
    assert_eq!(d.b.info().rcv_wscale, 7, "the scale is chosen for 6 MiB");
    let mut program = write_all_read(usize::MAX);
    let rtt = 2 * DELAY;
    let mut grown_at = None;
    for round in 1..=30 {
        d.run(rtt, &mut program);
        let (a_buf, cwnd) = (d.a.send_buffer_size(), d.a.info().cwnd);
        assert!(a_buf <= autotune::SEND_BUFFER_MAX);
        assert!(
            a_buf >= cwnd as usize || a_buf == autotune::SEND_BUFFER_MAX,
            "round {round}: send buffer {a_buf} below cwnd {cwnd}"
        );
        if grown_at.is_none() && d.b.recv_buffer_size() == autotune::RECV_BUFFER_MAX {
            grown_at = Some(round);
        }
    }
    let rounds = grown_at.unwrap_or_else(|| panic!("receive buffer {} after 30 RTTs", d.b.recv_buffer_size()));
    assert!(rounds <= 12, "the maximum took {rounds} RTTs");
    assert!(
        d.b_max_window > (autotune::RECV_BUFFER_MAX as u32) / 2,
        "window {}",
        d.b_max_window
    );
    assert_eq!(d.a.send_buffer_size(), autotune::SEND_BUFFER_MAX);
    // Never beyond the maximum, however long it runs.
    d.run(Duration::from_secs(1), &mut program);
    assert_eq!(d.b.recv_buffer_size(), autotune::RECV_BUFFER_MAX);
}

/// A receive buffer the program set (`SO_RCVBUF`) never changes, however
/// fast it reads; nor does a send buffer it set (`SO_SNDBUF`).
#[test]
fn locked_buffers_never_change() {
    let a = Config {
        send_buffer: 50_000,
        send_buffer_max: 0,
        ..Config::new(LOCAL_PORT, REMOTE_PORT)
    };
    let b = Config {
        recv_buffer: 40_000,
        recv_buffer_max: 0,
        ..Config::new(LOCAL_PORT, REMOTE_PORT)
    };
    let mut d = Duplex::new(a, b);
    assert_eq!(d.b.info().rcv_wscale, 0, "the scale is chosen for the set size");
    let mut program = write_all_read(usize::MAX);
    for _ in 0..40 {
        d.run(2 * DELAY, &mut program);
        assert_eq!(d.b.recv_buffer_size(), 40_000);
        assert_eq!(d.a.send_buffer_size(), 50_000);
    }
    assert!(d.b_max_window <= 40_000, "window {}", d.b_max_window);
    assert!(d.b.info().bytes_received > 1 << 20, "data flowed");
}

/// A program that reads part of the stream and stops (CPython's
/// `testWithTimeoutTriggeredSend` reads 88192 bytes of 10 MiB): the buffers
/// stay far below their maxima, so the sender blocks.
#[test]
fn reader_that_stops_leaves_small_buffers() {
    let cfg = Config::new(LOCAL_PORT, REMOTE_PORT);
    let mut d = Duplex::new(cfg.clone(), cfg);
    d.run(Duration::from_secs(3), write_all_read(88_192));
    let held = d.a.send_queued() + d.b.recv_queued();
    assert!(held < 1 << 20, "{held} bytes held between the programs");
    assert!(!d.a.readiness().writable, "the sender blocks");
    assert_eq!(d.b.info().rcv_wnd, 0);
}

/// The send buffer grows with the congestion window while ACKs free room
/// the program waits for, and not while the peer's window is closed.
#[test]
fn send_buffer_grows_with_cwnd_and_not_into_a_closed_window() {
    let mut now = Instant::from_secs(1);
    let cfg = Config {
        timestamps: false,
        sack: false,
        ..Config::new(LOCAL_PORT, REMOTE_PORT)
    };
    let (mut t, _syn) = Tcb::connect(cfg, SeqNum(1000), now);
    assert_eq!(
        t.send_buffer_size(),
        autotune::SEND_BUFFER_INITIAL,
        "before the handshake"
    );
    // The peer's windows are scaled by 7: 65535 stands for 8 MiB.
    let peer = |ack: u32, wnd: u16| TcpRepr {
        src_port: REMOTE_PORT,
        dst_port: LOCAL_PORT,
        control: TcpControl::None,
        seq_number: 5001,
        ack_number: Some(ack),
        window_len: wnd,
        ..Default::default()
    };
    let synack = TcpRepr {
        control: TcpControl::Syn,
        seq_number: 5000,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        ..peer(1001, 65535)
    };
    t.on_segment(now, &synack);
    while t.poll(now).is_some() {}
    assert_eq!(t.send_buffer_size(), 87_040, "Linux's size after connect");
    let chunk = [0u8; 16 * 1024];
    // One round: the program fills the buffer, the tcpcb sends what the
    // windows allow, and 20 ms later the peer acknowledges every segment
    // with window `wnd`. Returns how many segments were sent.
    let round = |t: &mut Tcb, now: &mut Instant, wnd: u16| {
        while t.send(&chunk) > 0 {}
        let mut ends = Vec::new();
        while let Some(s) = t.poll(*now) {
            ends.push(s.seq.0 + s.payload_len as u32);
        }
        *now += Duration::from_millis(20);
        for &e in &ends {
            t.on_segment(*now, &peer(e, wnd));
        }
        ends.len()
    };
    // Flights acknowledged with a closed window: the program waits, but
    // the peer's window, not the buffer, holds the sender back.
    assert!(round(&mut t, &mut now, 0) > 0);
    for _ in 0..10 {
        assert_eq!(round(&mut t, &mut now, 0), 0, "nothing into a closed window");
    }
    assert_eq!(t.info().snd_wnd, 0);
    assert_eq!(t.send_buffer_size(), 87_040, "no growth into a closed window");
    // The window opens wide: the congestion window doubles each round and
    // the buffer, once it limits the sender, grows with it.
    t.on_segment(now, &peer(t.snd_una().0, 65535));
    let mut last = t.send_buffer_size();
    for _ in 0..12 {
        round(&mut t, &mut now, 65535);
        let (buf, cwnd, mss) = (t.send_buffer_size(), t.info().cwnd, t.info().snd_mss);
        assert!(buf >= last, "never shrinks");
        let most = autotune::send_buffer_for(cwnd / mss, 1460).min(autotune::SEND_BUFFER_MAX);
        assert!(buf <= most, "{buf} beyond twice cwnd {cwnd}");
        assert!(
            buf >= (cwnd as usize).min(autotune::SEND_BUFFER_MAX),
            "{buf} below cwnd {cwnd}"
        );
        last = buf;
    }
    assert_eq!(last, autotune::SEND_BUFFER_MAX, "grew with the congestion window");
}

/// A recovery that keeps the send buffer full of SACKed data behind one
/// hole: no ACK frees room, yet the buffer, not the windows, holds the
/// sender back, so it grows (SACKed data is not in flight for Linux's
/// `tcp_should_expand_sndbuf`); the peer's window not being what limits.
#[test]
fn send_buffer_grows_while_a_hole_holds_it_full() {
    let mut now = Instant::from_secs(1);
    let cfg = Config {
        timestamps: false,
        ..Config::new(LOCAL_PORT, REMOTE_PORT)
    };
    let (mut t, _syn) = Tcb::connect(cfg, SeqNum(1000), now);
    let synack = TcpRepr {
        src_port: REMOTE_PORT,
        dst_port: LOCAL_PORT,
        control: TcpControl::Syn,
        seq_number: 5000,
        ack_number: Some(1001),
        window_len: 65535,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        ..Default::default()
    };
    t.on_segment(now, &synack);
    while t.poll(now).is_some() {}
    assert_eq!(t.send_buffer_size(), 87_040);
    let chunk = [0u8; 16 * 1024];
    let mss = t.info().snd_mss;
    // The first segment is lost, and so is every retransmission of it;
    // everything else arrives and is SACKed.
    let mut top = 1001u32;
    for _ in 0..20 {
        while t.send(&chunk) > 0 {}
        while let Some(s) = t.poll(now) {
            top = top.max(s.seq.0 + s.payload_len as u32);
        }
        now += Duration::from_millis(2);
        let mut sack = [None; MAX_SACK_BLOCKS];
        sack[0] = Some((1001 + mss, top));
        let dup = TcpRepr {
            src_port: REMOTE_PORT,
            dst_port: LOCAL_PORT,
            seq_number: 5001,
            ack_number: Some(1001),
            window_len: 65535,
            sack_ranges: sack,
            ..Default::default()
        };
        t.on_segment(now, &dup);
    }
    assert_eq!(t.snd_una(), SeqNum(1001), "the hole stays");
    assert!(t.send_buffer_size() > 87_040, "the buffer did not grow: {:?}", t.info());
    assert!(t.send_buffer_size() <= autotune::SEND_BUFFER_MAX);
}

/// `SO_SNDBUF`/`SO_RCVBUF` on an open connection: the sizes are set and
/// locked; a receive buffer never drops below what it holds.
#[test]
fn buffers_set_on_an_open_connection() {
    let cfg = Config::new(LOCAL_PORT, REMOTE_PORT);
    let mut d = Duplex::new(cfg.clone(), cfg);
    d.run(Duration::from_millis(500), write_all_read(0));
    assert_eq!(d.b.recv_queued(), autotune::RECV_BUFFER_INITIAL);
    assert_eq!(
        d.b.set_recv_buffer(4608),
        autotune::RECV_BUFFER_INITIAL,
        "what it holds"
    );
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(d.b.recv(d.now, &mut buf), autotune::RECV_BUFFER_INITIAL);
    assert_eq!(d.b.set_recv_buffer(4608), 4608);
    d.a.set_send_buffer(10_000);
    assert_eq!(d.a.send_buffer_size(), 10_000);
    assert!(!d.a.readiness().writable, "more than 10,000 bytes still held");
    // 4608 bytes per RTT drain what the sender held beyond 10,000.
    d.run(Duration::from_secs(4), write_all_read(usize::MAX));
    assert_eq!((d.a.send_buffer_size(), d.b.recv_buffer_size()), (10_000, 4608));
    assert!(d.a.send_queued() <= 10_000);
    assert!(d.b.info().rcv_wnd <= 4608);
}

const LOCAL_PORT: u16 = 40000;
const REMOTE_PORT: u16 = 80;
