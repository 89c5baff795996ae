//! Segment-level tests of the tcpcb, written like RFC 9293's diagrams: the
//! peer sends a segment (`h.recv(...)`: the tcpcb receives it), the tcpcb is
//! expected to send one (`h.sent(...)`), or nothing (`h.silent()`).
//!
//! Our ISS is 1000 and the peer's 5000 throughout; ports 40000 -> 80.

use super::*;
use crate::sim::SimRng;
use crate::tcp::syncache::{AckInfo, ListenOptions, SynAck, SynAction, SynInfo, Syncache, SyncacheConfig};
use core::net::SocketAddr;

const ISS: u32 = 1000;
const IRS: u32 = 5000;
const LOCAL: u16 = 40000;
const REMOTE: u16 = 80;

/// One segment of a diagram. Fields left `None` in an expectation are not
/// checked; SYN options are checked when `opts` is set.
#[derive(Debug, Clone, Default)]
struct Seg {
    seq: u32,
    ack: Option<u32>,
    ctl: TcpControl,
    wnd: Option<u16>,
    data: Vec<u8>,
    opts: bool,
    mss: Option<u16>,
    ws: Option<u8>,
    sack_perm: bool,
    sack: Vec<(u32, u32)>,
    ts: Option<(u32, u32)>,
}

/// `<SEQ=seq>`.
fn seq(seq: u32) -> Seg {
    Seg {
        seq,
        ..Default::default()
    }
}

impl Seg {
    fn ack(mut self, a: u32) -> Seg {
        self.ack = Some(a);
        self
    }
    fn syn(mut self) -> Seg {
        self.ctl = TcpControl::Syn;
        self
    }
    fn fin(mut self) -> Seg {
        self.ctl = TcpControl::Fin;
        self
    }
    fn rst(mut self) -> Seg {
        self.ctl = TcpControl::Rst;
        self
    }
    fn wnd(mut self, w: u16) -> Seg {
        self.wnd = Some(w);
        self
    }
    fn data(mut self, d: &[u8]) -> Seg {
        self.data = d.to_vec();
        self
    }
    fn mss(mut self, m: u16) -> Seg {
        self.opts = true;
        self.mss = Some(m);
        self
    }
    fn ws(mut self, s: u8) -> Seg {
        self.opts = true;
        self.ws = Some(s);
        self
    }
    fn sack_perm(mut self) -> Seg {
        self.opts = true;
        self.sack_perm = true;
        self
    }
    fn sack(mut self, l: u32, r: u32) -> Seg {
        self.sack.push((l, r));
        self
    }
    fn ts(mut self, val: u32, ecr: u32) -> Seg {
        self.ts = Some((val, ecr));
        self
    }

    fn repr(&self) -> TcpRepr<'_> {
        let mut sack_ranges = [None; MAX_SACK_BLOCKS];
        for (slot, r) in sack_ranges.iter_mut().zip(&self.sack) {
            *slot = Some(*r);
        }
        TcpRepr {
            src_port: REMOTE,
            dst_port: LOCAL,
            control: self.ctl,
            push: false,
            seq_number: self.seq,
            ack_number: self.ack,
            window_len: self.wnd.unwrap_or(65535),
            window_scale: self.ws,
            max_seg_size: self.mss,
            sack_permitted: self.sack_perm,
            sack_ranges,
            timestamp: self.ts,
            ece: false,
            cwr: false,
            payload: &self.data,
        }
    }
}

/// A tcpcb and a virtual clock.
struct H {
    t: Tcb,
    now: Instant,
}

/// No options, so the diagrams stay short; tests that need one turn it on.
/// Fixed buffers (as `SO_SNDBUF`/`SO_RCVBUF` set them): no autotuning.
fn plain() -> Config {
    Config {
        window_scaling: false,
        timestamps: false,
        sack: false,
        send_buffer: 256 * 1024,
        send_buffer_max: 0,
        recv_buffer: 64 * 1024,
        recv_buffer_max: 0,
        ..Config::new(LOCAL, REMOTE)
    }
}

impl H {
    /// SYN-SENT; the SYN is checked by the caller with `sent`.
    fn connect(cfg: Config) -> (H, Segment) {
        let now = Instant::from_secs(1);
        let (t, syn) = Tcb::connect(cfg, SeqNum(ISS), now);
        (H { t, now }, syn)
    }

    /// ESTABLISHED through an active open with `cfg`'s options answered
    /// by the peer with MSS 1460 and nothing else.
    fn established(cfg: Config) -> H {
        let (mut h, syn) = H::connect(cfg);
        assert_eq!(syn.control, TcpControl::Syn);
        h.recv(seq(IRS).syn().ack(ISS + 1).mss(1460).wnd(65535));
        h.sent(seq(ISS + 1).ack(IRS + 1));
        assert_eq!(h.t.state(), State::Established);
        h
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn at_ms(&mut self, ms: u64) {
        self.now = Instant::from_millis(ms);
    }

    /// The tcpcb receives `s` from the peer.
    fn recv(&mut self, s: Seg) {
        self.t.on_segment(self.now, &s.repr());
    }

    /// The next segment the tcpcb sends, with its payload.
    #[track_caller]
    fn next(&mut self) -> (Segment, Vec<u8>) {
        let seg = self.t.poll(self.now).expect("expected a segment, the tcpcb sent none");
        let (a, b) = self.t.payload(&seg);
        (seg, [a, b].concat())
    }

    /// The tcpcb sends `want` next.
    #[track_caller]
    fn sent(&mut self, want: Seg) -> Segment {
        let (got, data) = self.next();
        let ctx = format!("\n  want {want:?}\n  got  {got:?}");
        assert_eq!(got.seq.0, want.seq, "SEQ{ctx}");
        assert_eq!(got.ack.map(|a| a.0), want.ack, "ACK{ctx}");
        assert_eq!(got.control, want.ctl, "CTL{ctx}");
        assert_eq!(data, want.data, "payload{ctx}");
        if let Some(w) = want.wnd {
            assert_eq!(got.window, w, "WND{ctx}");
        }
        if want.opts {
            assert_eq!(got.mss, want.mss, "MSS option{ctx}");
            assert_eq!(got.window_scale, want.ws, "window scale option{ctx}");
            assert_eq!(got.sack_permitted, want.sack_perm, "SACK-permitted{ctx}");
        }
        if let Some(ts) = want.ts {
            assert_eq!(got.timestamp, Some(ts), "timestamps{ctx}");
        }
        if !want.sack.is_empty() {
            let blocks: Vec<_> = got.sack.iter().flatten().copied().collect();
            assert_eq!(blocks, want.sack, "SACK blocks{ctx}");
        }
        got
    }

    /// The tcpcb sends nothing now.
    #[track_caller]
    fn silent(&mut self) {
        if let Some(s) = self.t.poll(self.now) {
            panic!("expected nothing, the tcpcb sent {s:?}");
        }
    }

    /// Moves the clock to the next timer.
    #[track_caller]
    fn skip_to_timer(&mut self) {
        self.now = self.t.next_timer().expect("a timer is armed");
    }

    fn read_all(&mut self) -> Vec<u8> {
        let mut out = vec![0; 1 << 20];
        let n = self.t.recv(self.now, &mut out);
        out.truncate(n);
        out
    }
}

// ------------------------------------------------------------------
// Opening.
// ------------------------------------------------------------------

/// RFC 9293 Figure 6, basic three-way handshake, from TCP Peer A's side.
#[test]
fn active_open_three_way_handshake() {
    let (mut h, syn) = H::connect(Config {
        recv_buffer: 256 * 1024,
        recv_buffer_max: 0,
        ts_offset: 7,
        ..Config::new(LOCAL, REMOTE)
    });
    assert_eq!(h.t.state(), State::SynSent);
    assert_eq!(h.t.state().to_string(), "SYN-SENT");
    // 2. SYN-SENT --> <SEQ=1000><CTL=SYN> (MSS, WS, SACK-permitted, TS).
    assert_eq!(syn.seq, SeqNum(ISS));
    assert_eq!(syn.ack, None);
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.window_scale, Some(3), "a fixed 256 KiB needs a shift of 3");
    assert!(syn.sack_permitted);
    assert_eq!(syn.timestamp, Some((1007, 0)));
    assert_eq!(syn.window, 65535);
    h.silent();
    // 3. SYN-SENT <-- <SEQ=5000><ACK=1001><CTL=SYN,ACK>
    h.recv(
        seq(IRS)
            .syn()
            .ack(ISS + 1)
            .mss(1400)
            .ws(7)
            .sack_perm()
            .ts(99, 1007)
            .wnd(1000),
    );
    // 4. ESTABLISHED --> <SEQ=1001><ACK=5001><CTL=ACK>, window scaled by 3.
    h.sent(seq(ISS + 1).ack(IRS + 1).wnd(32768).ts(1007, 99));
    assert_eq!(h.t.state(), State::Established);
    let i = h.t.info();
    assert_eq!((i.snd_wscale, i.rcv_wscale, i.timestamps, i.sack), (7, 3, true, true));
    assert_eq!(i.snd_mss, 1400 - 12, "MSS less the timestamps option");
    assert_eq!(i.snd_wnd, 1000, "the SYN's window is not scaled");
    assert!(h.t.readiness().writable);
    // 5. ESTABLISHED --> <SEQ=1001><ACK=5001><CTL=ACK><DATA>
    assert_eq!(h.t.send(b"hello"), 5);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"hello"));
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// What our listener offers: a 128 KiB buffer (shift 2), SACK, timestamps
/// as `cfg` says.
fn listen_options(cfg: &Config) -> ListenOptions {
    ListenOptions {
        mss: cfg.mss,
        wscale: cfg.window_scaling.then_some(2),
        sack: cfg.sack,
        timestamps: cfg.timestamps,
        window: 65535,
        backlog: 128,
    }
}

fn syn_info(s: &Segment) -> SynInfo {
    SynInfo {
        peer_isn: s.seq,
        mss: s.mss,
        wscale: s.window_scale,
        sack_ok: s.sack_permitted,
        tsval: s.timestamp.map(|t| t.0),
        window: s.window,
        fin: false,
    }
}

fn synack_segment(sa: &SynAck) -> Segment {
    Segment {
        src_port: sa.local.port(),
        dst_port: sa.remote.port(),
        seq: sa.seq,
        ack: Some(sa.ack),
        control: TcpControl::Syn,
        push: false,
        window: sa.window,
        mss: Some(sa.mss),
        window_scale: sa.wscale,
        sack_permitted: sa.sack_ok,
        sack: [None; MAX_SACK_BLOCKS],
        timestamp: sa.ts,
        payload_len: 0,
    }
}

/// A passive open: the syncache answers the SYN, the final ACK completes
/// the handshake, the tcpcb starts in ESTABLISHED with what was negotiated.
#[test]
fn passive_open_from_syncache() {
    let now = Instant::from_secs(5);
    let cfg = Config::new(REMOTE, LOCAL);
    let opts = listen_options(&cfg);
    let mut sc = Syncache::new(SyncacheConfig::default(), [7; 16]);
    let syn = SynInfo {
        peer_isn: SeqNum(IRS),
        mss: Some(1200),
        wscale: Some(4),
        sack_ok: true,
        tsval: Some(300),
        window: 100,
        fin: false,
    };
    let SynAction::SendSynAck(sa) = sc.on_syn(now, addr(REMOTE), addr(LOCAL), &syn, &opts) else {
        panic!("no SYN-ACK")
    };
    let ack = AckInfo {
        seq: SeqNum(IRS + 1),
        ack: sa.seq + 1,
        window: 50,
        ts: sa.ts.map(|(v, _)| (301, v)),
    };
    let n = sc
        .on_ack(now, addr(REMOTE), addr(LOCAL), &ack, &opts)
        .expect("handshake completes");
    let iss = n.iss.0;
    let mut h = H {
        t: Tcb::accept(cfg, &n, now),
        now,
    };
    assert_eq!(h.t.state(), State::Established);
    let i = h.t.info();
    assert_eq!(
        (i.snd_wnd, i.snd_mss, i.timestamps, i.sack),
        (100, 1200 - 12, true, true)
    );
    assert_eq!((i.snd_wscale, i.rcv_wscale), (4, 2));
    // The completing ACK: window 50 << 4.
    h.recv(seq(IRS + 1).ack(iss + 1).wnd(50).ts(301, sa.ts.unwrap().0));
    assert_eq!(h.t.info().snd_wnd, 800);
    h.recv(
        seq(IRS + 1)
            .ack(iss + 1)
            .wnd(50)
            .data(b"GET /")
            .ts(302, sa.ts.unwrap().0),
    );
    assert_eq!(h.read_all(), b"GET /");
    h.t.send(b"200");
    let got = h.sent(seq(iss + 1).ack(IRS + 6).data(b"200"));
    // Our TSval continues the syncache's clock offset; TSecr echoes 302.
    let ts = got.timestamp.expect("timestamps");
    assert_eq!(ts.1, 302);
    assert_eq!(ts.0, sa.ts.unwrap().0, "same clock and offset as the SYN-ACK");
    assert_eq!((got.src_port, got.dst_port), (REMOTE, LOCAL));
}

/// RFC 9293 Figure 7, simultaneous connection synchronization.
#[test]
fn simultaneous_open() {
    let (mut h, _syn) = H::connect(plain());
    // 2. SYN-SENT --> <SEQ=1000><CTL=SYN> (sent); 3. <-- <SEQ=5000><CTL=SYN>
    h.recv(seq(IRS).syn().mss(1460));
    assert_eq!(h.t.state(), State::SynReceived);
    assert_eq!(h.t.state().to_string(), "SYN-RECEIVED");
    // 5. SYN-RECEIVED --> <SEQ=1000><ACK=5001><CTL=SYN,ACK>
    h.sent(seq(ISS).ack(IRS + 1).syn().mss(1460));
    h.silent();
    // 6. SYN-RECEIVED <-- <SEQ=5000><ACK=1001><CTL=SYN,ACK>
    h.recv(seq(IRS).ack(ISS + 1).syn().mss(1460));
    // 7. ESTABLISHED --> <SEQ=1001><ACK=5001><CTL=ACK>
    assert_eq!(h.t.state(), State::Established);
    h.sent(seq(ISS + 1).ack(IRS + 1));
}

/// Simultaneous open where the peer's plain ACK completes it.
#[test]
fn simultaneous_open_completed_by_ack() {
    let (mut h, _syn) = H::connect(plain());
    h.recv(seq(IRS).syn().mss(1460));
    h.sent(seq(ISS).ack(IRS + 1).syn());
    h.recv(seq(IRS + 1).ack(ISS + 1));
    assert_eq!(h.t.state(), State::Established);
    // A bad ACK in SYN-RECEIVED draws <SEQ=SEG.ACK><CTL=RST>.
    let (mut h, _syn) = H::connect(plain());
    h.recv(seq(IRS).syn());
    h.sent(seq(ISS).ack(IRS + 1).syn());
    h.recv(seq(IRS + 1).ack(ISS + 50));
    h.sent(seq(ISS + 50).rst());
    assert_eq!(h.t.state(), State::SynReceived);
}

/// RFC 9293 §3.10.7.3: a bad ACK in SYN-SENT draws a reset; an RST with an
/// acceptable ACK refuses the connection; one without is ignored.
#[test]
fn syn_sent_bad_ack_and_refusal() {
    let (mut h, _) = H::connect(plain());
    // <SEQ=5000><ACK=999><CTL=ACK> acknowledges nothing we sent.
    h.recv(seq(IRS).ack(ISS - 1));
    h.sent(seq(ISS - 1).rst());
    h.recv(seq(IRS).rst());
    assert_eq!(h.t.state(), State::SynSent, "RST without ACK is dropped");
    h.recv(seq(0).ack(ISS + 7).rst());
    assert_eq!(h.t.state(), State::SynSent, "RST with an unacceptable ACK is dropped");
    h.recv(seq(0).ack(ISS + 1).rst());
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.readiness().error, Some(TcpError::Refused));
    assert_eq!(h.t.take_error(), Some(TcpError::Refused));
    assert_eq!(h.t.take_error(), None);
}

/// RFC 6298 §5.7: after a retransmitted SYN (no RTT sample, Karn), data
/// starts with a 3 s RTO.
#[test]
fn rto_three_seconds_after_syn_retransmission() {
    let (mut h, _) = H::connect(plain());
    h.skip_to_timer();
    h.sent(seq(ISS).syn());
    h.advance(Duration::from_millis(100));
    h.recv(seq(IRS).syn().ack(ISS + 1));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.info().rtt, Duration::ZERO, "no sample");
    assert_eq!(h.t.info().rto, Duration::from_secs(3));
}

/// SYN retransmitted 6 times with RTO 1, 2, 4, ... s, then ETIMEDOUT.
#[test]
fn syn_retries_time_out() {
    let (mut h, _) = H::connect(plain());
    let start = h.now;
    for i in 0..6 {
        h.skip_to_timer();
        h.sent(seq(ISS).syn());
        assert_eq!(h.now - start, Duration::from_secs((1 << (i + 1)) - 1));
    }
    h.skip_to_timer();
    h.silent();
    assert_eq!(h.now - start, Duration::from_secs(127));
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
}

// ------------------------------------------------------------------
// Options.
// ------------------------------------------------------------------

/// RFC 7323 §2.3: a shift above 14 is used as 14.
#[test]
fn window_scale_above_14_is_14() {
    let (mut h, _) = H::connect(Config::new(LOCAL, REMOTE));
    h.recv(seq(IRS).syn().ack(ISS + 1).ws(15).wnd(1000));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.info().snd_wscale, 14);
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(2));
    assert_eq!(h.t.info().snd_wnd, 2 << 14);
}

/// Windows are scaled both ways once both SYNs carried the option, and not
/// at all when the peer's SYN lacks it.
#[test]
fn window_scaling_both_ways() {
    let cfg = Config {
        recv_buffer: 1 << 20,
        ..plain()
    };
    let cfg = Config {
        window_scaling: true,
        ..cfg
    };
    let (mut h, syn) = H::connect(cfg.clone());
    assert_eq!(syn.window_scale, Some(5));
    h.recv(seq(IRS).syn().ack(ISS + 1).ws(3).wnd(500));
    // 1 MiB >> 5 = 32768.
    h.sent(seq(ISS + 1).ack(IRS + 1).wnd(32768));
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(500));
    assert_eq!(h.t.info().snd_wnd, 4000);
    // The peer did not offer scaling: neither side scales.
    let (mut h, _) = H::connect(cfg);
    h.recv(seq(IRS).syn().ack(ISS + 1).wnd(500));
    h.sent(seq(ISS + 1).ack(IRS + 1).wnd(65535));
    assert_eq!((h.t.info().snd_wscale, h.t.info().rcv_wscale), (0, 0));
}

/// MSS 0 and 48 are clamped up to 88; a larger MSS than our path is capped.
#[test]
fn mss_clamped() {
    for (peer, want) in [(0, 88), (48, 88), (88, 88), (9000, 1460), (536, 536)] {
        let (mut h, _) = H::connect(plain());
        h.recv(seq(IRS).syn().ack(ISS + 1).mss(peer));
        assert_eq!(h.t.info().snd_mss, want, "peer MSS {peer}");
    }
    // No MSS option: 536.
    let (mut h, _) = H::connect(plain());
    h.recv(seq(IRS).syn().ack(ISS + 1));
    assert_eq!(h.t.info().snd_mss, 536);
    // Segments are cut at the clamped MSS.
    let (mut h, _) = H::connect(Config {
        nodelay: true,
        ..plain()
    });
    h.recv(seq(IRS).syn().ack(ISS + 1).mss(48));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.t.send(&[7; 100]);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[7; 88]));
    h.sent(seq(ISS + 89).ack(IRS + 1).data(&[7; 12]));
}

/// A smaller path MTU: what is in flight goes again at once, cut to the
/// new size.
#[test]
fn path_mtu_drop_resends_smaller() {
    let mut h = H::established(Config {
        nodelay: true,
        ..plain()
    });
    h.t.send(&[1; 2000]);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 1460]));
    h.sent(seq(ISS + 1461).ack(IRS + 1).data(&[1; 540]));
    h.t.set_path_mss(1000);
    assert_eq!(h.t.info().snd_mss, 1000);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 1000]));
    h.sent(seq(ISS + 1001).ack(IRS + 1).data(&[1; 1000]));
    h.silent();
    // Never below the minimum, never up again by this call.
    h.t.set_path_mss(10);
    assert_eq!(h.t.info().snd_mss, u32::from(MIN_MSS));
    h.t.set_path_mss(1400);
    assert_eq!(h.t.info().snd_mss, u32::from(MIN_MSS));
}

/// RFC 7323 §5.3: a segment whose TSval is older than TS.Recent is dropped
/// and acknowledged; TS.Recent follows in-order segments.
#[test]
fn timestamps_and_paws() {
    let (mut h, _) = H::connect(Config {
        timestamps: true,
        ..plain()
    });
    h.at_ms(1000);
    h.recv(seq(IRS).syn().ack(ISS + 1).ts(500, 1000));
    h.sent(seq(ISS + 1).ack(IRS + 1).ts(1000, 500));
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"new").ts(600, 1000));
    h.skip_to_timer();
    h.sent(seq(ISS + 1).ack(IRS + 4).ts(1040, 600));
    // An old duplicate from a previous incarnation: TSval 550 < 600.
    h.recv(seq(IRS + 4).ack(ISS + 1).data(b"old").ts(550, 1000));
    h.sent(seq(ISS + 1).ack(IRS + 4).ts(1040, 600));
    assert_eq!(h.read_all(), b"new");
    assert_eq!(h.t.info().paws_rejected, 1);
    // RTT from TSecr: data sent at 1040, echoed at 1140.
    h.t.send(b"x");
    h.sent(seq(ISS + 1).ack(IRS + 4).data(b"x").ts(1040, 600));
    h.at_ms(1140);
    h.recv(seq(IRS + 4).ack(ISS + 2).ts(700, 1040));
    // SRTT = 7/8 * 0 (the SYN's sample) + 1/8 * 100 ms.
    assert_eq!(h.t.info().rtt, Duration::from_micros(12_500));
}

/// Established with timestamps; the peer's clock starts at 500 ms.
fn with_timestamps() -> H {
    let (mut h, _) = H::connect(Config {
        timestamps: true,
        nodelay: true,
        ..plain()
    });
    h.at_ms(1000);
    h.recv(seq(IRS).syn().ack(ISS + 1).ts(500, 1000));
    h.sent(seq(ISS + 1).ack(IRS + 1).ts(1000, 500));
    h
}

/// Reordering delivers a duplicate ACK after a newer segment: PAWS lets it
/// through (Linux's disordered-ACK rule) so it still counts.
#[test]
fn reordered_duplicate_ack_passes_paws() {
    let mut h = with_timestamps();
    h.t.send(b"abcd");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"abcd"));
    h.recv(seq(IRS + 1).ack(ISS + 1).ts(520, 1000));
    h.recv(seq(IRS + 1).ack(ISS + 1).ts(510, 1000));
    assert_eq!(h.t.info().paws_rejected, 0);
    assert_eq!(h.t.dupacks, 2);
    // An old segment with data is still rejected.
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"x").ts(505, 1000));
    assert_eq!(h.t.info().paws_rejected, 1);
    h.sent(seq(ISS + 5).ack(IRS + 1));
    assert_eq!(h.t.recv_queued(), 0);
}

/// Karn's rule with timestamps: after a timeout, an ACK echoing a TSval
/// from before it gives no RTT sample.
#[test]
fn timestamp_echo_from_before_timeout_is_not_sampled() {
    let mut h = with_timestamps();
    let srtt = h.t.info().rtt;
    h.t.send(b"abcd");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"abcd").ts(1000, 500));
    // RTO: 200 ms (the SYN's sample was 0 ms).
    h.skip_to_timer();
    assert_eq!(h.now, Instant::from_millis(1200));
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"abcd").ts(1200, 500));
    // The ACK of the original transmission (it was only late) arrives.
    h.at_ms(1210);
    h.recv(seq(IRS + 1).ack(ISS + 5).ts(600, 1000));
    assert_eq!(h.t.info().rtt, srtt, "no 210 ms sample");
    // The next echo of a fresh TSval is sampled.
    h.t.send(b"e");
    h.sent(seq(ISS + 5).ack(IRS + 1).data(b"e").ts(1210, 600));
    h.at_ms(1250);
    h.recv(seq(IRS + 1).ack(ISS + 6).ts(700, 1210));
    assert_eq!(h.t.info().rtt, Duration::from_millis(5), "7/8 * 0 + 1/8 * 40 ms");
}

/// Answers to out-of-window segments without data are rate limited, so
/// two stacks that disagree cannot ping-pong ACKs; data is answered.
#[test]
fn out_of_window_acks_rate_limited() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 900_000).ack(ISS + 1));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.recv(seq(IRS + 900_000).ack(ISS + 1));
    h.silent();
    h.recv(seq(IRS - 10).ack(ISS + 1).data(b"old"));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.advance(Duration::from_millis(500));
    h.recv(seq(IRS + 900_000).ack(ISS + 1));
    h.sent(seq(ISS + 1).ack(IRS + 1));
}

// ------------------------------------------------------------------
// RFC 5961.
// ------------------------------------------------------------------

/// RST: exact RCV.NXT resets, elsewhere in the window draws a challenge
/// ACK, outside the window is silently dropped.
#[test]
fn rst_in_and_out_of_window() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 100).rst());
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.state(), State::Established);
    h.recv(seq(IRS + 1_000_000).rst());
    h.silent();
    // Challenge ACKs are rate limited (one per 500 ms).
    h.recv(seq(IRS + 200).rst());
    h.silent();
    h.advance(Duration::from_millis(500));
    h.recv(seq(IRS + 200).rst());
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.recv(seq(IRS + 1).rst());
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), Some(TcpError::Reset));
    let r = h.t.readiness();
    assert!(r.hung_up && r.readable && !r.writable);
}

/// RFC 5961 §4.2: a SYN on an open connection draws a challenge ACK.
#[test]
fn syn_in_established_draws_challenge_ack() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 10).syn());
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.state(), State::Established);
    h.advance(Duration::from_secs(1));
    h.recv(seq(9_999_999).syn());
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.state(), State::Established);
}

/// RFC 5961 §5.2: an ACK of data not yet sent is answered with an ACK and
/// dropped, with its data.
#[test]
fn ack_of_unsent_data_dropped() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS + 500).data(b"zzz"));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.recv_queued(), 0);
}

// ------------------------------------------------------------------
// Data.
// ------------------------------------------------------------------

/// A lone segment is acknowledged after 40 ms; every second full-sized one
/// at once (RFC 5681 §4.2, Linux's delayed ACK).
#[test]
fn delayed_ack() {
    let mut h = H::established(plain());
    let t0 = h.now;
    h.recv(seq(IRS + 1).ack(ISS + 1).data(&[1; 1460]));
    h.silent();
    assert_eq!(h.t.next_timer(), Some(t0 + Duration::from_millis(40)));
    h.skip_to_timer();
    h.sent(seq(ISS + 1).ack(IRS + 1461));
    h.recv(seq(IRS + 1461).ack(ISS + 1).data(&[2; 1460]));
    h.silent();
    h.recv(seq(IRS + 2921).ack(ISS + 1).data(&[3; 1460]));
    h.sent(seq(ISS + 1).ack(IRS + 4381));
    assert_eq!(h.t.next_timer(), None);
    assert_eq!(h.read_all().len(), 4380);
    assert_eq!(h.t.info().bytes_received, 4380);
}

/// Out-of-order segments are acknowledged at once (with SACK blocks), held,
/// and delivered when the hole fills.
#[test]
fn out_of_order_reassembly_with_sack() {
    let mut h = H::established(Config { sack: true, ..plain() });
    // Re-establish with SACK permitted by the peer.
    let (mut h2, _) = H::connect(Config { sack: true, ..plain() });
    h2.recv(seq(IRS).syn().ack(ISS + 1).sack_perm());
    h2.sent(seq(ISS + 1).ack(IRS + 1));
    std::mem::swap(&mut h, &mut h2);
    h.recv(seq(IRS + 11).ack(ISS + 1).data(b"world"));
    h.sent(seq(ISS + 1).ack(IRS + 1).sack(IRS + 11, IRS + 16));
    h.recv(seq(IRS + 21).ack(ISS + 1).data(b"!"));
    // RFC 2018 §4: the first block holds the segment that triggered the ACK.
    h.sent(
        seq(ISS + 1)
            .ack(IRS + 1)
            .sack(IRS + 21, IRS + 22)
            .sack(IRS + 11, IRS + 16),
    );
    assert_eq!(h.t.recv_queued(), 0);
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"hello, "));
    h.sent(
        seq(ISS + 1)
            .ack(IRS + 8)
            .sack(IRS + 21, IRS + 22)
            .sack(IRS + 11, IRS + 16),
    );
    h.recv(seq(IRS + 8).ack(ISS + 1).data(b"abc"));
    h.sent(seq(ISS + 1).ack(IRS + 16).sack(IRS + 21, IRS + 22));
    h.recv(seq(IRS + 16).ack(ISS + 1).data(b"12345"));
    h.sent(seq(ISS + 1).ack(IRS + 22));
    assert_eq!(h.read_all(), b"hello, abcworld12345!");
}

/// RFC 2883: a duplicate segment is reported in the first SACK block of
/// the ACK it draws (D-SACK), so the sender can tell a spurious
/// retransmission.
#[test]
fn duplicate_data_reported_by_dsack() {
    let (mut h, _) = H::connect(Config { sack: true, ..plain() });
    h.recv(seq(IRS).syn().ack(ISS + 1).sack_perm());
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"abcd"));
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"abcd"));
    h.sent(seq(ISS + 1).ack(IRS + 5).sack(IRS + 1, IRS + 5));
    // Partly new: the old part is reported, the new part taken.
    h.recv(seq(IRS + 3).ack(ISS + 1).data(b"cdef"));
    h.sent(seq(ISS + 1).ack(IRS + 7).sack(IRS + 3, IRS + 5));
    // Reported once only.
    h.recv(seq(IRS + 7).ack(ISS + 1).data(b"g"));
    h.skip_to_timer();
    let ack = h.sent(seq(ISS + 1).ack(IRS + 8));
    assert_eq!(ack.sack, [None; MAX_SACK_BLOCKS]);
    assert_eq!(h.read_all(), b"abcdefg");
}

/// A flood of disjoint out-of-order segments cannot grow memory: the
/// ranges are bounded, later ones dropped and counted.
#[test]
fn out_of_order_flood_is_bounded() {
    let mut h = H::established(plain());
    assert_eq!(h.t.rcvbuf.allocated(), 0, "nothing allocated before data");
    for i in 0..10_000u32 {
        h.recv(seq(IRS + 2 + 2 * i).ack(ISS + 1).data(b"x"));
        while h.t.poll(h.now).is_some() {}
    }
    let held = h.t.rcvbuf.ooo_ranges().len();
    assert_eq!(held, crate::tcp::buffer::MAX_OOO_RANGES);
    assert!(h.t.rcvbuf.allocated() <= 64 * 1024, "never past the capacity");
    assert!(h.t.info().ooo_dropped > 9000);
    // The stream still completes once the real data arrives.
    let data: Vec<u8> = (0..200).map(|i| if i % 2 == 1 { b'x' } else { b'y' }).collect();
    h.recv(seq(IRS + 1).ack(ISS + 1).data(&data));
    assert_eq!(h.read_all(), data);
}

/// Nagle (RFC 896): a small write waits while data is unacknowledged;
/// TCP_NODELAY sends it at once.
#[test]
fn nagle_and_nodelay() {
    let mut h = H::established(plain());
    h.t.send(b"a");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"a"));
    h.t.send(b"b");
    h.silent();
    h.t.send(b"c");
    h.silent();
    h.recv(seq(IRS + 1).ack(ISS + 2));
    h.sent(seq(ISS + 2).ack(IRS + 1).data(b"bc"));
    h.t.set_nodelay(true);
    h.t.send(b"d");
    h.sent(seq(ISS + 4).ack(IRS + 1).data(b"d"));
}

/// MSG_PEEK leaves the bytes; the queue sizes follow sends and ACKs.
#[test]
fn peek_and_queue_sizes() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"hello"));
    let mut buf = [0; 3];
    assert_eq!(h.t.peek(&mut buf), 3);
    assert_eq!(&buf, b"hel");
    assert_eq!(h.t.recv_queued(), 5);
    assert_eq!(h.read_all(), b"hello");
    h.t.send(b"abc");
    assert_eq!((h.t.send_queued(), h.t.send_unsent()), (3, 3));
    h.sent(seq(ISS + 1).ack(IRS + 6).data(b"abc"));
    h.t.send(b"de");
    assert_eq!((h.t.send_queued(), h.t.send_unsent()), (5, 2));
    h.recv(seq(IRS + 6).ack(ISS + 4));
    h.sent(seq(ISS + 4).ack(IRS + 6).data(b"de"));
    assert_eq!((h.t.send_queued(), h.t.send_unsent()), (2, 0));
}

/// The send buffer is bounded; `send` takes what fits.
#[test]
fn send_buffer_bounded() {
    let mut h = H::established(Config {
        send_buffer: 1000,
        ..plain()
    });
    assert_eq!(h.t.send(&[0; 1500]), 1000);
    assert!(!h.t.readiness().writable);
    assert_eq!(h.t.send(b"x"), 0);
}

// ------------------------------------------------------------------
// Retransmission.
// ------------------------------------------------------------------

/// RFC 6298: first RTO 1 s, doubled on each expiry; Karn: the ACK of a
/// retransmitted segment gives no RTT sample.
#[test]
fn rto_backoff_and_karn() {
    // The SYN is timed: its answer comes 300 ms later.
    let (mut h, _) = H::connect(plain());
    h.advance(Duration::from_millis(300));
    h.recv(seq(IRS).syn().ack(ISS + 1).mss(1460));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.info().rtt, Duration::from_millis(300));
    let rto = h.t.info().rto;
    assert_eq!(rto, Duration::from_millis(900));
    h.t.send(b"data");
    let t0 = h.now;
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"data"));
    let mut wait = rto;
    let mut at = t0;
    for _ in 0..3 {
        at += wait;
        h.skip_to_timer();
        assert_eq!(h.now, at);
        h.sent(seq(ISS + 1).ack(IRS + 1).data(b"data"));
        wait *= 2;
    }
    assert_eq!(h.t.info().retransmits, 3);
    assert_eq!(h.t.info().total_retrans, 3);
    // The ACK comes; Karn: no sample, SRTT still 300 ms.
    h.advance(Duration::from_millis(10));
    h.recv(seq(IRS + 1).ack(ISS + 5));
    assert_eq!(h.t.info().rtt, Duration::from_millis(300));
    assert_eq!(h.t.info().retransmits, 0);
    assert_eq!(h.t.next_timer(), None);
    // Fresh data is timed again.
    h.t.send(b"more");
    h.sent(seq(ISS + 5).ack(IRS + 1).data(b"more"));
    h.advance(Duration::from_millis(100));
    h.recv(seq(IRS + 1).ack(ISS + 9));
    assert_eq!(h.t.info().rtt, Duration::from_millis(275));
}

/// After a timeout SND.NXT goes back to SND.UNA, but a pure ACK still
/// carries SND.MAX: one with an old sequence number would fail the peer's
/// acceptability test (two stacks once livelocked on exactly that).
#[test]
fn pure_ack_after_timeout_carries_snd_max() {
    let mut h = H::established(plain());
    h.t.send(&[1; 2920]);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 1460]));
    h.sent(seq(ISS + 1461).ack(IRS + 1).data(&[1; 1460]));
    // The timeout: one segment (cwnd is one MSS now), SND.NXT = 1001 + 1460.
    h.skip_to_timer();
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 1460]));
    h.silent();
    // The peer's data arrives out of order; the ACK goes at once, with
    // SEQ=SND.MAX.
    h.recv(seq(IRS + 5).ack(ISS + 1).data(b"late"));
    h.sent(seq(ISS + 2921).ack(IRS + 1));
}

/// The RTO never drops below 200 ms nor exceeds 120 s; data retries give up
/// with ETIMEDOUT.
#[test]
fn rto_bounds_and_give_up() {
    let mut h = H::established(plain());
    assert_eq!(h.t.info().rto, timers::RTO_MIN);
    h.t.send(b"x");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"x"));
    let mut last = h.now;
    for _ in 0..15 {
        h.skip_to_timer();
        assert!(h.now - last <= timers::RTO_MAX);
        last = h.now;
        h.sent(seq(ISS + 1).ack(IRS + 1).data(b"x"));
    }
    assert_eq!(h.t.info().rto, timers::RTO_MAX);
    h.skip_to_timer();
    h.silent();
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
}

/// TCP_USER_TIMEOUT cuts the retries short.
#[test]
fn user_timeout() {
    let mut h = H::established(Config {
        user_timeout: Some(Duration::from_secs(3)),
        ..plain()
    });
    let t0 = h.now;
    h.t.send(b"x");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"x"));
    while h.t.state() != State::Closed {
        h.skip_to_timer();
        while h.t.poll(h.now).is_some() {}
    }
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
    let took = h.now - t0;
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(7),
        "{took:?}"
    );
}

/// Three duplicate ACKs: fast retransmit; limited transmit sends new data
/// on the first two (RFC 3042); a full ACK ends recovery.
#[test]
fn fast_retransmit_newreno() {
    let mut h = H::established(Config {
        nodelay: true,
        ..plain()
    });
    let mss = 1460usize;
    let data = vec![9u8; mss * 12];
    h.t.send(&data);
    // Initial window: 10 segments.
    for i in 0..10 {
        h.sent(seq(ISS + 1 + (i * mss) as u32).ack(IRS + 1).data(&data[..mss]));
    }
    h.silent();
    // Segment 0 is lost; 1.. arrive and each draws a duplicate ACK.
    h.recv(seq(IRS + 1).ack(ISS + 1));
    h.sent(seq(ISS + 1 + (10 * mss) as u32).ack(IRS + 1).data(&data[..mss]));
    h.recv(seq(IRS + 1).ack(ISS + 1));
    h.sent(seq(ISS + 1 + (11 * mss) as u32).ack(IRS + 1).data(&data[..mss]));
    h.recv(seq(IRS + 1).ack(ISS + 1));
    // Fast retransmit of the first segment.
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&data[..mss]));
    h.silent();
    assert_eq!(h.t.info().total_retrans, 1);
    // A full ACK (everything up to "recover").
    h.recv(seq(IRS + 1).ack(ISS + 1 + (12 * mss) as u32));
    assert!(!h.t.ccs.in_recovery);
    assert_eq!(h.t.info().unacked, 0);
    assert_eq!(h.t.info().bytes_acked, (12 * mss) as u64);
}

/// Established with a 100-byte MSS, TCP_NODELAY, and SACK if `sack`.
fn small_mss(sack: bool) -> H {
    let (mut h, _) = H::connect(Config {
        nodelay: true,
        sack,
        ..plain()
    });
    let synack = seq(IRS).syn().ack(ISS + 1).mss(100);
    h.recv(if sack { synack.sack_perm() } else { synack });
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h
}

/// Sends everything the tcpcb wants to send now; returns (seq, len) pairs.
fn flush(h: &mut H) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    while let Some(s) = h.t.poll(h.now) {
        out.push((s.seq.0, s.payload_len));
    }
    out
}

/// RFC 6582: two losses in one window. Three duplicate ACKs retransmit the
/// first; the partial ACK that follows retransmits the second at once;
/// the full ACK ends recovery.
#[test]
fn newreno_partial_ack() {
    let mut h = small_mss(false);
    let data = vec![5u8; 1000];
    h.t.send(&data);
    let first = flush(&mut h);
    assert_eq!(first.len(), 10, "initial window: 10 segments");
    // Segments 0 and 5 lost: segments 1-4 draw duplicate ACKs.
    let mut retransmitted = Vec::new();
    for _ in 0..3 {
        h.recv(seq(IRS + 1).ack(ISS + 1));
        retransmitted.extend(flush(&mut h));
    }
    assert_eq!(retransmitted, vec![(ISS + 1, 100)], "fast retransmit of segment 0 only");
    assert!(h.t.ccs.in_recovery);
    h.recv(seq(IRS + 1).ack(ISS + 1));
    assert_eq!(
        flush(&mut h),
        vec![],
        "segment 4's duplicate ACK: window inflated, no new data"
    );
    // The retransmission fills the first hole: ACK up to segment 5.
    h.recv(seq(IRS + 1).ack(ISS + 501));
    assert_eq!(
        flush(&mut h),
        vec![(ISS + 501, 100)],
        "partial ACK: retransmit segment 5"
    );
    assert!(h.t.ccs.in_recovery);
    h.recv(seq(IRS + 1).ack(ISS + 1001));
    assert!(!h.t.ccs.in_recovery);
    assert_eq!(h.t.info().total_retrans, 2);
    assert_eq!(h.t.info().unacked, 0);
}

/// RFC 6675: with SACK, recovery retransmits only the holes.
#[test]
fn sack_recovery_retransmits_holes_only() {
    let mut h = small_mss(true);
    let data = vec![6u8; 1000];
    h.t.send(&data);
    assert_eq!(flush(&mut h).len(), 10);
    let (a, b) = (ISS + 1, ISS + 1001);
    // Segments 0 and 3 lost; 1-2 and 4-9 SACKed, one ACK each.
    let mut sent = Vec::new();
    let mut blocks: Vec<(u32, u32)> = Vec::new();
    for i in [1u32, 2, 4, 5, 6, 7, 8, 9] {
        let (l, r) = (a + 100 * i, a + 100 * (i + 1));
        match blocks.iter_mut().find(|bl| bl.1 == l) {
            Some(bl) => bl.1 = r,
            None => blocks.push((l, r)),
        }
        let mut s = seq(IRS + 1).ack(a);
        for &(l, r) in blocks.iter().rev() {
            s = s.sack(l, r);
        }
        h.recv(s);
        sent.extend(flush(&mut h));
    }
    let rtx: Vec<_> = sent.iter().filter(|(s, _)| *s < b).copied().collect();
    assert_eq!(rtx, vec![(a, 100), (a + 300, 100)], "the two holes, each once");
    h.recv(seq(IRS + 1).ack(b));
    assert!(!h.t.ccs.in_recovery);
    assert_eq!(h.t.info().bytes_acked, 1000);
}

// ------------------------------------------------------------------
// Windows and probes.
// ------------------------------------------------------------------

/// A zero window stops data; persist probes follow with backoff; the
/// window update that answers one lets data flow.
#[test]
fn zero_window_persist_probes() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(0));
    h.t.send(b"blocked");
    h.silent();
    let t0 = h.now;
    // Probes at 200 ms, then 400 ms after that, then 800 ms ...
    let mut at = t0;
    for wait in [200u64, 400, 800] {
        at += Duration::from_millis(wait);
        h.skip_to_timer();
        assert_eq!(h.now, at);
        // <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>, no data.
        h.sent(seq(ISS).ack(IRS + 1));
        h.silent();
        h.recv(seq(IRS + 1).ack(ISS + 1).wnd(0));
        h.silent();
    }
    assert_eq!(h.t.state(), State::Established, "a peer that answers is kept");
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(4));
    // Four bytes fit, but less than half the largest window the peer
    // offered: sender SWS avoidance (RFC 1122 §4.2.3.4) waits for the
    // override timeout.
    h.silent();
    let t1 = h.now;
    h.skip_to_timer();
    assert_eq!(h.now - t1, Duration::from_millis(200));
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"bloc"));
    h.recv(seq(IRS + 1).ack(ISS + 5).wnd(100));
    h.sent(seq(ISS + 5).ack(IRS + 1).data(b"ked"));
}

/// TCP_USER_TIMEOUT also ends a window that stays closed, even while the
/// peer answers every probe (as Linux does since 5.11).
#[test]
fn user_timeout_ends_persist() {
    let mut h = H::established(Config {
        user_timeout: Some(Duration::from_secs(5)),
        ..plain()
    });
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(0));
    h.t.send(b"x");
    h.silent();
    let t0 = h.now;
    while h.t.state() == State::Established {
        h.skip_to_timer();
        while h.t.poll(h.now).is_some() {}
        h.recv(seq(IRS + 1).ack(ISS + 1).wnd(0));
    }
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
    let took = h.now - t0;
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(12),
        "{took:?}"
    );
}

/// A receiver with a full buffer announces a zero window, answers probes,
/// and announces the window once the program reads.
#[test]
fn receive_window_closes_and_reopens() {
    let mut h = H::established(Config {
        recv_buffer: 4000,
        ..plain()
    });
    h.recv(seq(IRS + 1).ack(ISS + 1).data(&[1; 1460]));
    h.recv(seq(IRS + 1461).ack(ISS + 1).data(&[2; 1460]));
    h.sent(seq(ISS + 1).ack(IRS + 2921).wnd(1080));
    h.recv(seq(IRS + 2921).ack(ISS + 1).data(&[3; 1460]));
    h.skip_to_timer();
    h.sent(seq(ISS + 1).ack(IRS + 4001).wnd(0));
    // Probe <SEQ=RCV.NXT-1>: answered with the (zero) window.
    h.recv(seq(IRS + 4000).ack(ISS + 1));
    h.sent(seq(ISS + 1).ack(IRS + 4001).wnd(0));
    // Data beyond the zero window is not taken.
    h.recv(seq(IRS + 4001).ack(ISS + 1).data(b"over"));
    h.sent(seq(ISS + 1).ack(IRS + 4001).wnd(0));
    let mut buf = [0; 3000];
    assert_eq!(h.t.recv(h.now, &mut buf), 3000);
    h.sent(seq(ISS + 1).ack(IRS + 4001).wnd(3000));
}

/// Keepalive: probes after `idle`, every `interval`, then ETIMEDOUT and a
/// reset after `count` unanswered ones. An answer starts the idle time over.
#[test]
fn keepalive_times_out() {
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        count: 3,
    };
    let mut h = H::established(Config {
        keepalive: Some(ka),
        ..plain()
    });
    let t0 = h.now;
    h.skip_to_timer();
    assert_eq!(h.now - t0, Duration::from_secs(10));
    h.sent(seq(ISS).ack(IRS + 1));
    // Answered: idle again.
    h.recv(seq(IRS + 1).ack(ISS + 1));
    let t1 = h.now;
    for i in 0..3u32 {
        h.skip_to_timer();
        assert_eq!(h.now - t1, Duration::from_secs(10) + ka.interval * i);
        h.sent(seq(ISS).ack(IRS + 1));
    }
    h.skip_to_timer();
    assert_eq!(h.now - t1, Duration::from_secs(16));
    h.sent(seq(ISS + 1).ack(IRS + 1).rst());
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
}

// ------------------------------------------------------------------
// Closing.
// ------------------------------------------------------------------

/// RFC 9293 Figure 12, normal close sequence, from TCP Peer A's side:
/// FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSED after 2*MSL (60 s).
#[test]
fn we_close_first() {
    let mut h = H::established(plain());
    h.t.send(b"bye");
    h.t.shutdown_write();
    assert_eq!(h.t.state(), State::FinWait1);
    assert_eq!(h.t.send(b"more"), 0);
    // <SEQ=1001><ACK=5001><CTL=FIN,ACK> with the data.
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"bye").fin());
    h.recv(seq(IRS + 1).ack(ISS + 5));
    assert_eq!(h.t.state(), State::FinWait2);
    h.silent();
    // Half-closed: the peer can still send.
    h.recv(seq(IRS + 1).ack(ISS + 5).data(b"reply"));
    h.recv(seq(IRS + 6).ack(ISS + 5).fin());
    assert_eq!(h.t.state(), State::TimeWait);
    h.sent(seq(ISS + 5).ack(IRS + 7));
    assert_eq!(h.read_all(), b"reply");
    assert!(h.t.is_eof());
    assert!(h.t.readiness().hung_up);
    // A retransmitted FIN is acknowledged and restarts the 2*MSL timer.
    let t0 = h.now;
    h.advance(Duration::from_secs(30));
    h.recv(seq(IRS + 6).ack(ISS + 5).fin());
    h.sent(seq(ISS + 5).ack(IRS + 7));
    h.skip_to_timer();
    assert_eq!(h.now - t0, Duration::from_secs(90));
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), None);
}

/// Peer closes first: CLOSE-WAIT, LAST-ACK, CLOSED.
#[test]
fn peer_closes_first() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"end").fin());
    assert_eq!(h.t.state(), State::CloseWait);
    assert_eq!(h.t.state().to_string(), "CLOSE-WAIT");
    h.sent(seq(ISS + 1).ack(IRS + 5));
    let r = h.t.readiness();
    assert!(r.readable && r.read_hup && r.writable && !r.hung_up);
    assert_eq!(h.read_all(), b"end");
    assert!(h.t.is_eof());
    // We can still send in CLOSE-WAIT.
    h.t.send(b"ok");
    h.t.close(h.now);
    assert_eq!(h.t.state(), State::LastAck);
    h.sent(seq(ISS + 1).ack(IRS + 5).data(b"ok").fin());
    h.recv(seq(IRS + 5).ack(ISS + 4));
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), None);
}

/// Half-close by shutdown(SHUT_WR): FIN-WAIT-2 lasts as long as the peer
/// keeps sending (only an orphan after close() times out there).
#[test]
fn half_close_waits_for_the_peer() {
    let mut h = H::established(plain());
    h.t.shutdown_write();
    h.sent(seq(ISS + 1).ack(IRS + 1).fin());
    h.recv(seq(IRS + 1).ack(ISS + 2));
    assert_eq!(h.t.state(), State::FinWait2);
    let r = h.t.readiness();
    assert!(!r.writable && !r.hung_up && !r.readable);
    assert_eq!(h.t.next_timer(), None, "no FIN-WAIT-2 timeout without close()");
    h.advance(Duration::from_secs(600));
    h.recv(seq(IRS + 1).ack(ISS + 2).data(b"still here"));
    assert_eq!(h.read_all(), b"still here");
    h.recv(seq(IRS + 11).ack(ISS + 2).fin());
    assert_eq!(h.t.state(), State::TimeWait);
    assert!(h.t.readiness().hung_up);
}

/// Readiness through a connection's life, as epoll would report it.
#[test]
fn readiness_through_the_lifecycle() {
    let (mut h, _) = H::connect(plain());
    assert_eq!(h.t.readiness(), Readiness::default(), "connecting: nothing yet");
    h.recv(seq(IRS).syn().ack(ISS + 1));
    let r = h.t.readiness();
    assert!(r.writable && !r.readable && !r.read_hup && !r.hung_up);
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"x"));
    assert!(h.t.readiness().readable);
    h.read_all();
    assert!(!h.t.readiness().readable);
    h.recv(seq(IRS + 2).ack(ISS + 1).fin());
    let r = h.t.readiness();
    assert!(r.readable && r.read_hup && r.writable && !r.hung_up);
    h.recv(seq(IRS + 3).ack(ISS + 1).rst());
    let r = h.t.readiness();
    assert!(r.readable && r.hung_up && !r.writable);
    assert_eq!(r.error, Some(TcpError::Reset));
}

/// close() while connecting sends nothing and stops the SYN timer.
#[test]
fn close_in_syn_sent() {
    let (mut h, _) = H::connect(plain());
    h.t.close(h.now);
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.next_timer(), None);
    h.silent();
    assert_eq!(h.t.error(), None);
}

/// Keepalive probes only an idle connection: data in flight is watched by
/// the retransmission timer, and traffic starts the idle time over.
#[test]
fn keepalive_waits_while_busy() {
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        count: 2,
    };
    let mut h = H::established(Config {
        keepalive: Some(ka),
        ..plain()
    });
    let t0 = h.now;
    h.advance(Duration::from_secs(9));
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"ping"));
    assert_eq!(
        h.t.next_timer(),
        Some(t0 + Duration::from_millis(9040)),
        "delayed ACK first"
    );
    h.skip_to_timer();
    h.sent(seq(ISS + 1).ack(IRS + 5));
    assert_eq!(
        h.t.next_timer(),
        Some(t0 + Duration::from_secs(19)),
        "idle from the last segment"
    );
    h.skip_to_timer();
    h.sent(seq(ISS).ack(IRS + 5));
}

/// RFC 9293 Figure 13, simultaneous close: CLOSING, then TIME-WAIT.
#[test]
fn simultaneous_close() {
    let mut h = H::established(plain());
    h.t.close(h.now);
    h.sent(seq(ISS + 1).ack(IRS + 1).fin());
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    h.recv(seq(IRS + 1).ack(ISS + 1).fin());
    assert_eq!(h.t.state(), State::Closing);
    h.sent(seq(ISS + 2).ack(IRS + 2));
    h.recv(seq(IRS + 2).ack(ISS + 2));
    assert_eq!(h.t.state(), State::TimeWait);
    h.skip_to_timer();
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
}

/// Our FIN lost: retransmitted by the RTO in FIN-WAIT-1.
#[test]
fn fin_retransmitted() {
    let mut h = H::established(plain());
    h.t.close(h.now);
    h.sent(seq(ISS + 1).ack(IRS + 1).fin());
    h.skip_to_timer();
    h.sent(seq(ISS + 1).ack(IRS + 1).fin());
    h.recv(seq(IRS + 1).ack(ISS + 2));
    assert_eq!(h.t.state(), State::FinWait2);
    // An orphan does not wait forever in FIN-WAIT-2.
    h.skip_to_timer();
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
}

/// A FIN that arrives ahead of missing data takes effect when the hole
/// fills.
#[test]
fn out_of_order_fin() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 4).ack(ISS + 1).data(b"def").fin());
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.state(), State::Established);
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"abc"));
    assert_eq!(h.t.state(), State::CloseWait);
    h.sent(seq(ISS + 1).ack(IRS + 8));
    assert_eq!(h.read_all(), b"abcdef");
    assert!(h.t.is_eof());
}

/// close() with unread data resets the connection (RFC 2525 §2.17).
#[test]
fn close_with_unread_data_resets() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"unread"));
    h.t.close(h.now);
    h.sent(seq(ISS + 1).ack(IRS + 7).rst());
    assert_eq!(h.t.state(), State::Closed);
    h.silent();
}

/// Data arriving after close() also draws a reset.
#[test]
fn data_after_close_resets() {
    let mut h = H::established(plain());
    h.t.close(h.now);
    h.sent(seq(ISS + 1).ack(IRS + 1).fin());
    h.recv(seq(IRS + 1).ack(ISS + 2).data(b"late"));
    h.sent(seq(ISS + 2).ack(IRS + 1).rst());
    assert_eq!(h.t.state(), State::Closed);
}

/// SO_LINGER 0 and abort() reset; abort in SYN-SENT sends nothing.
#[test]
fn linger_zero_and_abort() {
    let mut h = H::established(plain());
    h.t.set_linger_zero(true);
    h.t.send(b"pending");
    h.t.close(h.now);
    h.sent(seq(ISS + 1).ack(IRS + 1).rst());
    h.silent();
    let (mut h, _) = H::connect(plain());
    h.t.abort();
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.next_timer(), None);
}

// ------------------------------------------------------------------
// Two tcpcbs back to back.
// ------------------------------------------------------------------

/// A tiny lossy, reordering, duplicating link between two tcpcbs.
struct Pipe {
    rng: SimRng,
    loss: f64,
    /// (deliver at, to b?, segment bytes).
    queue: Vec<(Instant, bool, OwnedSeg)>,
}

#[derive(Clone)]
struct OwnedSeg {
    seg: Segment,
    payload: Vec<u8>,
}

impl Pipe {
    fn push(&mut self, now: Instant, to_b: bool, s: OwnedSeg) {
        if self.rng.chance(self.loss) {
            return;
        }
        let delay = Duration::from_millis(10 + self.rng.below(15));
        if self.rng.chance(0.01) {
            self.queue
                .push((now + delay + Duration::from_millis(3), to_b, s.clone()));
        }
        self.queue.push((now + delay, to_b, s));
    }
}

fn drain(t: &mut Tcb, now: Instant, pipe: &mut Pipe, to_b: bool) {
    while let Some(seg) = t.poll(now) {
        let (a, b) = t.payload(&seg);
        pipe.push(
            now,
            to_b,
            OwnedSeg {
                seg,
                payload: [a, b].concat(),
            },
        );
    }
}

/// Moves `len` random bytes from an active opener to a passive one over a
/// [`Pipe`], both close; returns the virtual time it took.
fn transfer(seed: u64, loss: f64, cfg: Config, len: usize) -> Duration {
    transfer_with(seed, loss, cfg, len, false, false)
}

/// [`transfer`]; with `echo` the passive side sends every byte back, with
/// `slow_read` it reads slowly enough for its window to close.
fn transfer_with(seed: u64, loss: f64, cfg: Config, len: usize, echo: bool, slow_read: bool) -> Duration {
    let mut rng = SimRng::new(seed);
    let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let mut pipe = Pipe {
        rng: SimRng::derive(seed, 1),
        loss,
        queue: Vec::new(),
    };
    let mut now = Instant::from_secs(1);
    let (mut a, syn) = Tcb::connect(cfg.clone(), SeqNum(0xffff_f000), now);
    let mut b: Option<Tcb> = None;
    // b's side starts as a listener with a syncache.
    let mut bcfg = cfg.clone();
    std::mem::swap(&mut bcfg.local_port, &mut bcfg.remote_port);
    let opts = listen_options(&bcfg);
    let mut sc = Syncache::new(SyncacheConfig::default(), [9; 16]);
    let (la, lb) = (addr(LOCAL), addr(REMOTE));
    pipe.push(
        now,
        true,
        OwnedSeg {
            seg: syn,
            payload: vec![],
        },
    );
    let mut sent = 0;
    let mut received = Vec::with_capacity(len);
    let (mut echoed, mut back) = (0, Vec::with_capacity(len));
    let mut read_at = now;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = now + Duration::from_secs(3000);
    while now < deadline {
        // Deliver everything due.
        pipe.queue.sort_by_key(|q| q.0);
        while let Some(&(at, _, _)) = pipe.queue.first() {
            if at > now {
                break;
            }
            let (_, to_b, s) = pipe.queue.remove(0);
            let repr = s.seg.repr(&s.payload);
            if !to_b {
                a.on_segment(now, &repr);
                continue;
            }
            if let Some(b) = &mut b {
                b.on_segment(now, &repr);
                continue;
            }
            // The listener.
            match (s.seg.control, s.seg.ack) {
                (TcpControl::Syn, None) => {
                    if let SynAction::SendSynAck(sa) = sc.on_syn(now, lb, la, &syn_info(&s.seg), &opts) {
                        let seg = synack_segment(&sa);
                        pipe.push(now, false, OwnedSeg { seg, payload: vec![] });
                    }
                }
                (TcpControl::None | TcpControl::Fin, Some(ack)) => {
                    let info = AckInfo {
                        seq: s.seg.seq,
                        ack,
                        window: s.seg.window,
                        ts: s.seg.timestamp,
                    };
                    if let Some(n) = sc.on_ack(now, lb, la, &info, &opts) {
                        let mut tb = Tcb::accept(bcfg.clone(), &n, now);
                        tb.on_segment(now, &repr);
                        b = Some(tb);
                    }
                }
                _ => {}
            }
        }
        while let Some(sa) = sc.poll(now) {
            let seg = synack_segment(&sa);
            pipe.push(now, false, OwnedSeg { seg, payload: vec![] });
        }
        // The programs: a writes everything then closes (or, when b
        // echoes, shuts down writing and reads the echo to its end); b reads
        // (and writes back what it read) and closes at end of file.
        if a.state() == State::Established && sent < len {
            sent += a.send(&data[sent..]);
            if sent == len {
                if echo {
                    a.shutdown_write();
                } else {
                    a.close(now);
                }
            }
        }
        if echo {
            loop {
                let n = a.recv(now, &mut buf);
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&buf[..n]);
            }
            if a.is_eof() {
                a.close(now);
            }
        }
        if let Some(b) = &mut b {
            // A slow reader takes 3000 bytes every 10 ms: its window closes.
            while !slow_read || now >= read_at {
                let max = if slow_read { 3000 } else { buf.len() };
                let n = b.recv(now, &mut buf[..max]);
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buf[..n]);
                if slow_read {
                    read_at = now + Duration::from_millis(10);
                }
            }
            if echo {
                echoed += b.send(&received[echoed..]);
            }
            if b.is_eof() && b.state() == State::CloseWait && (!echo || echoed == received.len()) {
                b.close(now);
            }
            drain(b, now, &mut pipe, false);
        }
        drain(&mut a, now, &mut pipe, true);
        if received.len() == len
            && (!echo || back.len() == len)
            && b.as_ref().is_some_and(|b| b.state() == State::Closed)
            && matches!(a.state(), State::TimeWait | State::Closed)
        {
            break;
        }
        // Next event.
        let next = [
            pipe.queue.iter().map(|q| q.0).min(),
            a.next_timer(),
            b.as_ref().and_then(|b| b.next_timer()),
            sc.next_timer(),
            b.as_ref().filter(|b| slow_read && b.recv_queued() > 0).map(|_| read_at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| {
            panic!(
                "seed {seed}: nothing pending at {now:?}: a {:?} {:?} b {:?} sent {sent} received {} back {} echoed {echoed}",
                a.error(),
                a.info(),
                b.as_ref().map(|b| (b.error(), b.info())),
                received.len(),
                back.len()
            )
        });
        now = next.max(now);
    }
    assert_eq!(received.len(), len, "seed {seed}: bytes delivered");
    assert!(received == data, "seed {seed}: bytes differ");
    if echo {
        assert!(back == data, "seed {seed}: echo differs");
    }
    assert_eq!(b.unwrap().error(), None);
    assert_eq!(a.error(), None);
    assert!(matches!(a.state(), State::TimeWait | State::Closed));
    now - Instant::from_secs(1)
}

#[test]
fn back_to_back_one_megabyte_clean() {
    let took = transfer(1, 0.0, Config::new(LOCAL, REMOTE), 1 << 20);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn back_to_back_one_megabyte_lossy_with_options() {
    for seed in 0..3 {
        let took = transfer(seed, 0.03, Config::new(LOCAL, REMOTE), 1 << 20);
        assert!(took < Duration::from_secs(30), "seed {seed}: {took:?}");
    }
}

#[test]
fn back_to_back_one_megabyte_lossy_without_options() {
    for seed in 10..12 {
        let took = transfer(seed, 0.03, plain(), 1 << 20);
        assert!(took < Duration::from_secs(30), "seed {seed}: {took:?}");
    }
}

/// A reader slower than the link: the window closes and opens again, with
/// loss.
#[test]
fn back_to_back_slow_reader_lossy() {
    let cfg = Config {
        recv_buffer: 16 * 1024,
        ..Config::new(LOCAL, REMOTE)
    };
    let took = transfer_with(30, 0.03, cfg, 256 * 1024, false, true);
    // 3000 bytes per 10 ms: at least 0.87 s.
    assert!(
        took > Duration::from_millis(850) && took < Duration::from_secs(30),
        "{took:?}"
    );
}

/// Both directions at once: 256 KiB each way, lossy.
#[test]
fn back_to_back_echo_lossy() {
    for seed in 20..22 {
        let cfg = if seed % 2 == 0 {
            Config::new(LOCAL, REMOTE)
        } else {
            plain()
        };
        let took = transfer_with(seed, 0.03, cfg, 256 * 1024, true, false);
        assert!(took < Duration::from_secs(30), "seed {seed}: {took:?}");
    }
}

/// Many seeds, heavier loss, both option sets (under a second: the stack is
/// optimised in test builds).
#[test]
fn back_to_back_stress() {
    for seed in 100..400 {
        let loss = [0.0, 0.01, 0.05, 0.1, 0.2][seed as usize % 5];
        let cfg = if seed % 2 == 0 {
            Config::new(LOCAL, REMOTE)
        } else {
            plain()
        };
        let cfg = Config {
            nodelay: seed % 3 == 0,
            congestion: ["cubic", "newreno", "reno"][seed as usize % 3],
            mss: [1460, 536, 88, 9000][seed as usize % 4],
            recv_buffer: [128 * 1024, 8000, 65535, 1 << 20][seed as usize / 4 % 4],
            send_buffer: [256 * 1024, 5000][seed as usize / 16 % 2],
            ..cfg
        };
        let took = transfer_with(seed, loss, cfg, 300_000, seed % 8 == 1, seed % 6 == 5);
        // 20% loss each way with 88-byte segments takes minutes (cwnd stays
        // at two segments); a livelock or an RTT estimate inflated by stale
        // timestamp echoes (both seen before) takes far longer.
        assert!(took < Duration::from_secs(600), "seed {seed}: {took:?}");
    }
}

/// No panic on any input: random segments (sequence and acknowledgment
/// numbers near and far from the real ones, every control, options, data)
/// against connections in every state, with the program reading, writing
/// and closing in between.
#[test]
fn random_segments_never_panic() {
    let mut rng = SimRng::new(42);
    for round in 0..60u64 {
        let cfg = if round % 2 == 0 {
            Config::new(LOCAL, REMOTE)
        } else {
            plain()
        };
        let (mut h, _) = H::connect(Config {
            recv_buffer: 4096,
            send_buffer: 4096,
            ..cfg
        });
        if round % 3 != 0 {
            h.recv(seq(IRS).syn().ack(ISS + 1).mss(536).ws(3).sack_perm().ts(1, 1));
        }
        let mut buf = [0u8; 700];
        for _ in 0..2000 {
            let near = |rng: &mut SimRng, base: u32| -> u32 {
                match rng.below(4) {
                    0 => rng.next_u64() as u32,
                    1 => base.wrapping_add(rng.below(20_000) as u32).wrapping_sub(10_000),
                    _ => base.wrapping_add(rng.below(1_000) as u32).wrapping_sub(500),
                }
            };
            let mut s = seq(near(&mut rng, h.t.rcv_nxt.0));
            if rng.chance(0.9) {
                s = s.ack(near(&mut rng, h.t.snd_una.0));
            }
            s.ctl = [TcpControl::None, TcpControl::Syn, TcpControl::Fin, TcpControl::Rst][rng.below(4) as usize];
            if rng.chance(0.3) {
                s.ctl = TcpControl::None;
            }
            s.wnd = Some(rng.below(65536) as u16);
            s.data = vec![0x5a; rng.below(600) as usize];
            if rng.chance(0.5) {
                s.ts = Some((rng.next_u64() as u32, rng.next_u64() as u32));
            }
            if rng.chance(0.2) {
                let l = near(&mut rng, h.t.snd_una.0);
                s.sack = vec![(l, l.wrapping_add(rng.below(3000) as u32))];
            }
            if rng.chance(0.05) {
                s.mss = Some(rng.below(2000) as u16);
                s.ws = Some(rng.below(20) as u8);
            }
            h.recv(s);
            match rng.below(10) {
                0 => {
                    h.t.send(&buf[..rng.below(700) as usize]);
                }
                1 => {
                    h.t.recv(h.now, &mut buf);
                }
                2 if rng.chance(0.05) => h.t.shutdown_write(),
                3 if rng.chance(0.02) => h.t.close(h.now),
                _ => {}
            }
            h.advance(Duration::from_millis(rng.below(50)));
            while let Some(seg) = h.t.poll(h.now) {
                let (a, b) = h.t.payload(&seg);
                assert_eq!(a.len() + b.len(), seg.payload_len);
            }
            let _ = (h.t.readiness(), h.t.info(), h.t.next_timer());
            if h.t.state() == State::Closed {
                break;
            }
        }
    }
}

// ------------------------------------------------------------------
// ICMP errors (RFC 5927) and TIME-WAIT reuse (RFC 6191).
// ------------------------------------------------------------------

/// RFC 5927 §4.1: an ICMP error quoting a sequence number outside
/// SND.UNA..SND.MAX is ignored; a hard one in SYN-SENT aborts the connect
/// with its errno.
#[test]
fn icmp_hard_error_in_syn_sent_aborts() {
    let (mut h, _) = H::connect(plain());
    assert!(
        !h.t.on_icmp_error(SeqNum(ISS + 1), libc::EHOSTUNREACH, true),
        "not sent yet"
    );
    assert!(!h.t.on_icmp_error(SeqNum(ISS - 1), libc::EHOSTUNREACH, true));
    assert_eq!(h.t.state(), State::SynSent);
    // A soft error leaves the connect running.
    assert!(h.t.on_icmp_error(SeqNum(ISS), libc::ENETUNREACH, false));
    assert_eq!(h.t.state(), State::SynSent);
    assert_eq!(h.t.error(), None);
    assert!(h.t.on_icmp_error(SeqNum(ISS), libc::EHOSTUNREACH, true));
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(
        h.t.take_error(),
        Some(TcpError::Icmp {
            errno: libc::EHOSTUNREACH
        })
    );
    h.silent();
    assert!(
        !h.t.on_icmp_error(SeqNum(ISS), libc::EHOSTUNREACH, true),
        "CLOSED ignores"
    );
}

/// A hard error in SYN-RECEIVED (simultaneous open) aborts too.
#[test]
fn icmp_hard_error_in_syn_received_aborts() {
    let (mut h, _) = H::connect(plain());
    h.recv(seq(IRS).syn());
    h.sent(seq(ISS).ack(IRS + 1).syn());
    assert!(h.t.on_icmp_error(SeqNum(ISS), libc::ECONNREFUSED, true));
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(
        h.t.error(),
        Some(TcpError::Icmp {
            errno: libc::ECONNREFUSED
        })
    );
}

/// On an open connection errors are soft (RFC 1122 §4.2.3.9): the
/// connection keeps trying; if it then times out, SO_ERROR is the ICMP
/// error, not ETIMEDOUT (Linux's tcp_write_err).
#[test]
fn icmp_soft_error_reported_at_timeout() {
    let mut h = H::established(plain());
    h.t.set_user_timeout(Some(Duration::from_secs(2)));
    assert!(
        !h.t.on_icmp_error(SeqNum(ISS + 1), libc::EHOSTUNREACH, true),
        "nothing in flight"
    );
    h.t.send(b"abc");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"abc"));
    assert!(
        !h.t.on_icmp_error(SeqNum(ISS + 4), libc::EHOSTUNREACH, true),
        "SND.MAX is outside"
    );
    assert!(
        !h.t.on_icmp_error(SeqNum(ISS), libc::EHOSTUNREACH, true),
        "below SND.UNA"
    );
    assert!(h.t.on_icmp_error(SeqNum(ISS + 3), libc::EHOSTUNREACH, true));
    assert_eq!(h.t.state(), State::Established);
    assert_eq!(h.t.error(), None);
    while h.t.state() != State::Closed {
        h.skip_to_timer();
        while h.t.poll(h.now).is_some() {}
    }
    assert_eq!(
        h.t.error(),
        Some(TcpError::Icmp {
            errno: libc::EHOSTUNREACH
        })
    );
}

/// An acknowledgment shows the path works: the soft error is forgotten
/// ("We passed data and got it acked, remove any soft error log").
#[test]
fn icmp_soft_error_cleared_by_ack() {
    let (mut h, _) = H::connect(plain());
    assert!(h.t.on_icmp_error(SeqNum(ISS), libc::ENETUNREACH, false));
    h.recv(seq(IRS).syn().ack(ISS + 1));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.t.send(b"abc");
    h.sent(seq(ISS + 1).ack(IRS + 1).data(b"abc"));
    while h.t.state() != State::Closed {
        h.skip_to_timer();
        while h.t.poll(h.now).is_some() {}
    }
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
}

/// ICMP "packet too big" quoting data in flight: the MSS drops and the
/// unacknowledged data goes again at once in the new size, congestion
/// window untouched (Linux's tcp_simple_retransmit).
#[test]
fn packet_too_big_resends_without_congestion_response() {
    let mut h = H::established(Config {
        nodelay: true,
        ..plain()
    });
    h.t.send(&[1; 2000]);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 1460]));
    h.sent(seq(ISS + 1461).ack(IRS + 1).data(&[1; 540]));
    let before = h.t.info();
    assert!(!h.t.on_packet_too_big(h.now, SeqNum(ISS + 2001), 1000), "not sent");
    assert_eq!(h.t.info().snd_mss, 1460);
    h.silent();
    assert!(h.t.on_packet_too_big(h.now, SeqNum(ISS + 1), 1000));
    let after = h.t.info();
    assert_eq!(after.snd_mss, 1000);
    assert_eq!((after.cwnd, after.ssthresh), (before.cwnd, before.ssthresh));
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 1000]));
    h.sent(seq(ISS + 1001).ack(IRS + 1).data(&[1; 1000]));
    h.silent();
    // Three duplicate ACKs of what was in flight do not also start a fast
    // retransmit.
    for _ in 0..3 {
        h.recv(seq(IRS + 1).ack(ISS + 1));
    }
    h.silent();
    // Never raised, never below MIN_MSS.
    assert!(h.t.on_packet_too_big(h.now, SeqNum(ISS + 1), 1400));
    assert_eq!(h.t.info().snd_mss, 1000);
    assert!(h.t.on_packet_too_big(h.now, SeqNum(ISS + 1), 20));
    assert_eq!(h.t.info().snd_mss, u32::from(MIN_MSS));
    let (mut h2, _) = H::connect(plain());
    assert!(h2.t.on_packet_too_big(h2.now, SeqNum(ISS), 1200), "the SYN");
    h2.skip_to_timer();
    h2.sent(seq(ISS).syn().mss(1200));
}

/// TIME-WAIT with an MSS smaller than the peer's already: a lower path MTU
/// that still exceeds the MSS in use resends nothing.
#[test]
fn packet_too_big_above_mss_in_use_resends_nothing() {
    let (mut h, _) = H::connect(Config {
        nodelay: true,
        ..plain()
    });
    h.recv(seq(IRS).syn().ack(ISS + 1).mss(536));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.t.send(&[1; 100]);
    h.sent(seq(ISS + 1).ack(IRS + 1).data(&[1; 100]));
    assert!(h.t.on_packet_too_big(h.now, SeqNum(ISS + 1), 1000));
    assert_eq!(h.t.info().snd_mss, 536);
    h.silent();
}

/// TIME-WAIT of a connection we closed first.
fn time_wait(cfg: Config, peer_ts: bool) -> H {
    let (mut h, _) = H::connect(cfg);
    h.at_ms(1000);
    let ts = |s: Seg, v: u32| if peer_ts { s.ts(v, 1000) } else { s };
    h.recv(ts(seq(IRS).syn().ack(ISS + 1), 500));
    h.next();
    h.t.close(h.now);
    h.next();
    h.recv(ts(seq(IRS + 1).ack(ISS + 2).fin(), 600));
    assert_eq!(h.t.state(), State::TimeWait);
    h.next();
    h
}

/// RFC 6191: with timestamps a new SYN may reopen the 4-tuple in
/// TIME-WAIT when its TSval is newer (whatever its sequence number), or
/// equal with a higher sequence number; never when older (PAWS).
#[test]
fn time_wait_reuse_by_timestamp() {
    let h = time_wait(
        Config {
            timestamps: true,
            ..plain()
        },
        true,
    );
    let syn = |s: u32, ts: Option<u32>| {
        let mut seg = seq(s).syn();
        seg.ts = ts.map(|v| (v, 0));
        seg
    };
    assert!(h.t.time_wait_accepts_syn(&syn(IRS - 100, Some(601)).repr()));
    assert!(h.t.time_wait_accepts_syn(&syn(IRS + 100, Some(600)).repr()));
    assert!(!h.t.time_wait_accepts_syn(&syn(IRS + 2, Some(600)).repr()));
    assert!(!h.t.time_wait_accepts_syn(&syn(IRS + 100, Some(599)).repr()), "PAWS");
    // No timestamps in the SYN: the sequence number decides.
    assert!(h.t.time_wait_accepts_syn(&syn(IRS + 100, None).repr()));
    assert!(!h.t.time_wait_accepts_syn(&syn(IRS + 2, None).repr()));
    // Not a SYN, or a SYN-ACK: no.
    assert!(!h.t.time_wait_accepts_syn(&seq(IRS + 100).repr()));
    assert!(!h
        .t
        .time_wait_accepts_syn(&syn(IRS + 100, Some(700)).ack(ISS + 2).repr()));
}

/// RFC 9293 §3.6.1: without timestamps, a SYN reopens TIME-WAIT only "if
/// the sequence number of the new SYN is greater than the final sequence
/// number of the previous incarnation"; other states never.
#[test]
fn time_wait_reuse_by_sequence_number() {
    let mut h = time_wait(plain(), false);
    assert!(h.t.time_wait_accepts_syn(&seq(IRS + 3).syn().repr()));
    assert!(!h.t.time_wait_accepts_syn(&seq(IRS + 2).syn().repr()), "RCV.NXT itself");
    assert!(!h.t.time_wait_accepts_syn(&seq(IRS - 1000).syn().repr()));
    // Refused: the tcpcb answers the SYN with a challenge ACK and stays.
    h.advance(Duration::from_secs(1));
    h.recv(seq(IRS).syn());
    h.sent(seq(ISS + 2).ack(IRS + 2));
    assert_eq!(h.t.state(), State::TimeWait);
    let h = H::established(plain());
    assert!(!h.t.time_wait_accepts_syn(&seq(IRS + 100_000).syn().repr()));
}

/// The accessors and the header-only representation the interface layer
/// writes before copying the payload's two slices.
#[test]
fn accessors_and_header_repr() {
    let mut h = H::established(Config {
        nodelay: true,
        ..Config::new(LOCAL, REMOTE)
    });
    h.t.send(b"hello");
    let seg = h.t.poll(h.now).unwrap();
    assert_eq!(
        (h.t.snd_una(), h.t.snd_max(), h.t.rcv_nxt()),
        (SeqNum(ISS + 1), SeqNum(ISS + 6), SeqNum(IRS + 1))
    );
    let hdr = seg.header_repr();
    let (a, b) = h.t.payload(&seg);
    let data = [a, b].concat();
    assert_eq!(
        hdr,
        TcpRepr {
            payload: &[],
            ..seg.repr(&data)
        }
    );
}

// ------------------------------------------------------------------
// RFC 9293 §3.3.2's diagram, every state: RST and SYN handling.
// ------------------------------------------------------------------

/// A tcpcb in `state` (plain options), reached the ordinary way, with
/// nothing left to send. Returns it with (SND.MAX, RCV.NXT) there.
fn in_state(state: State) -> (H, u32, u32) {
    let mut h = H::established(plain());
    let (snd, rcv) = match state {
        State::SynReceived => {
            let (mut h2, _) = H::connect(plain());
            h2.recv(seq(IRS).syn());
            h2.sent(seq(ISS).ack(IRS + 1).syn());
            h = h2;
            (ISS + 1, IRS + 1)
        }
        State::Established => (ISS + 1, IRS + 1),
        State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait => {
            h.t.shutdown_write();
            h.sent(seq(ISS + 1).ack(IRS + 1).fin());
            match state {
                State::FinWait1 => (ISS + 2, IRS + 1),
                State::FinWait2 => {
                    h.recv(seq(IRS + 1).ack(ISS + 2));
                    (ISS + 2, IRS + 1)
                }
                State::Closing => {
                    h.recv(seq(IRS + 1).ack(ISS + 1).fin());
                    h.sent(seq(ISS + 2).ack(IRS + 2));
                    (ISS + 2, IRS + 2)
                }
                _ => {
                    h.recv(seq(IRS + 1).ack(ISS + 2).fin());
                    h.sent(seq(ISS + 2).ack(IRS + 2));
                    (ISS + 2, IRS + 2)
                }
            }
        }
        State::CloseWait | State::LastAck => {
            h.recv(seq(IRS + 1).ack(ISS + 1).fin());
            h.sent(seq(ISS + 1).ack(IRS + 2));
            if state == State::LastAck {
                h.t.shutdown_write();
                h.sent(seq(ISS + 1).ack(IRS + 2).fin());
                (ISS + 2, IRS + 2)
            } else {
                (ISS + 1, IRS + 2)
            }
        }
        State::Closed | State::SynSent => unreachable!("not reached this way"),
    };
    assert_eq!(h.t.state(), state);
    h.silent();
    (h, snd, rcv)
}

/// Every state from SYN-RECEIVED on.
const STATES: [State; 8] = [
    State::SynReceived,
    State::Established,
    State::FinWait1,
    State::FinWait2,
    State::CloseWait,
    State::Closing,
    State::LastAck,
    State::TimeWait,
];

/// RFC 5961 §3.2 in every state: an RST outside the window is dropped, one
/// inside draws a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, one at
/// exactly RCV.NXT closes: "connection refused" in SYN-RECEIVED of an
/// active open, "connection reset" in ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2
/// and CLOSE-WAIT, silently in CLOSING, LAST-ACK and TIME-WAIT
/// (RFC 9293 §3.10.7.4, second check).
#[test]
fn rst_in_every_state() {
    for state in STATES {
        let (mut h, snd, rcv) = in_state(state);
        h.recv(seq(rcv + 1_000_000).rst());
        h.silent();
        h.recv(seq(rcv - 1).rst());
        h.silent();
        assert_eq!(h.t.state(), state, "{state}: RST outside the window");
        h.recv(seq(rcv + 10).rst());
        h.sent(seq(snd).ack(rcv));
        assert_eq!(h.t.state(), state, "{state}: RST in the window");
        h.recv(seq(rcv).rst());
        h.silent();
        assert_eq!(h.t.state(), State::Closed, "{state}: RST at RCV.NXT");
        let want = match state {
            State::SynReceived => Some(TcpError::Refused),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => Some(TcpError::Reset),
            _ => None,
        };
        assert_eq!(h.t.error(), want, "{state}");
        assert_eq!(h.t.next_timer(), None, "{state}: no timer outlives CLOSED");
    }
}

/// RFC 5961 §4.2 in every state: a SYN, at any sequence number, draws a
/// challenge ACK and changes nothing.
#[test]
fn syn_in_every_state_draws_challenge_ack() {
    for state in STATES {
        for s in [IRS, IRS + 5, IRS + 3_000_000] {
            let (mut h, snd, rcv) = in_state(state);
            h.recv(seq(s).syn());
            h.sent(seq(snd).ack(rcv));
            h.silent();
            assert_eq!(h.t.state(), state, "{state}: SYN at {s}");
            assert_eq!(h.t.error(), None);
        }
    }
}

/// RFC 5961 §5.2: "(SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT" or the
/// segment is discarded and an ACK sent, in every state with an ACK check.
#[test]
fn ack_outside_window_in_every_state() {
    for state in STATES.into_iter().skip(1) {
        for ack in [None, Some(ISS.wrapping_sub(70_000))] {
            let (mut h, snd, rcv) = in_state(state);
            let ack = ack.unwrap_or(snd + 1);
            h.recv(seq(rcv).ack(ack).data(b"x"));
            h.sent(seq(snd).ack(rcv));
            assert_eq!(h.t.state(), state, "{state}: ACK {ack}");
            assert_eq!(h.t.recv_queued(), 0, "{state}: ACK {ack}");
            // Rate limited like challenge ACKs (RFC 5961 §7).
            h.recv(seq(rcv).ack(ack));
            h.silent();
        }
    }
}

/// An ACK too old (below SND.UNA - MAX.SND.WND, RFC 5961 §5.2) takes its
/// data down with it; one merely old (a duplicate) does not.
#[test]
fn old_ack_data_handling() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS.wrapping_sub(70_000)).data(b"evil"));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.recv_queued(), 0);
    h.recv(seq(IRS + 1).ack(ISS - 100).data(b"good"));
    assert_eq!(h.read_all(), b"good");
}

// ------------------------------------------------------------------
// RFC 9293 §3.3.2's diagram: the remaining transitions.
// ------------------------------------------------------------------

/// SYN-RECEIVED --CLOSE--> FIN-WAIT-1: the FIN waits until our SYN is
/// acknowledged (RFC 9293 §3.10.4: "queue for processing after entering
/// ESTABLISHED state"), the SYN,ACK is retransmitted meanwhile.
#[test]
fn close_in_syn_received() {
    let (mut h, _) = H::connect(plain());
    h.recv(seq(IRS).syn());
    h.sent(seq(ISS).ack(IRS + 1).syn());
    h.t.close(h.now);
    h.silent();
    h.skip_to_timer();
    h.sent(seq(ISS).ack(IRS + 1).syn());
    h.recv(seq(IRS + 1).ack(ISS + 1));
    assert_eq!(h.t.state(), State::FinWait1);
    h.sent(seq(ISS + 1).ack(IRS + 1).fin());
    h.recv(seq(IRS + 1).ack(ISS + 2).fin());
    assert_eq!(h.t.state(), State::TimeWait);
    h.sent(seq(ISS + 2).ack(IRS + 2));
}

/// FIN-WAIT-1 --rcv FIN, ACK of our FIN--> TIME-WAIT in one segment
/// (RFC 9293 §3.10.7.4, eighth: "If our FIN has been ACKed [...] then
/// enter TIME-WAIT").
#[test]
fn fin_wait_1_to_time_wait_by_fin_ack() {
    let (mut h, snd, rcv) = in_state(State::FinWait1);
    h.recv(seq(rcv).ack(snd).fin());
    assert_eq!(h.t.state(), State::TimeWait);
    h.sent(seq(snd).ack(rcv + 1));
    assert_eq!(h.t.next_timer(), Some(h.now + timers::TIME_WAIT));
    h.skip_to_timer();
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), None);
}

/// CLOSING and LAST-ACK retransmit the FIN until it is acknowledged; an
/// ACK that does not cover it changes nothing.
#[test]
fn closing_and_last_ack_retransmit_fin() {
    for state in [State::Closing, State::LastAck] {
        let (mut h, snd, rcv) = in_state(state);
        h.recv(seq(rcv).ack(snd - 1));
        assert_eq!(h.t.state(), state);
        h.skip_to_timer();
        h.sent(seq(snd - 1).ack(rcv).fin());
        h.recv(seq(rcv).ack(snd));
        let want = if state == State::Closing {
            State::TimeWait
        } else {
            State::Closed
        };
        assert_eq!(h.t.state(), want, "{state}");
    }
}

/// Data from the peer after its FIN is not data: CLOSE-WAIT, CLOSING,
/// LAST-ACK and TIME-WAIT ignore segment text (RFC 9293 §3.10.7.4,
/// seventh: "This should not occur since a FIN has been received").
#[test]
fn no_data_after_the_peers_fin() {
    for state in [State::CloseWait, State::Closing, State::LastAck, State::TimeWait] {
        let (mut h, snd, rcv) = in_state(state);
        h.recv(seq(rcv).ack(snd).data(b"after fin"));
        assert_eq!(h.t.recv_queued(), 0, "{state}");
        while h.t.poll(h.now).is_some() {}
    }
}

/// Half-close, the other way: after the peer's FIN we still send, and our
/// data is acknowledged (ESTABLISHED --rcv FIN--> CLOSE-WAIT).
#[test]
fn close_wait_sends_data() {
    let (mut h, snd, rcv) = in_state(State::CloseWait);
    h.t.send(b"still talking");
    h.sent(seq(snd).ack(rcv).data(b"still talking"));
    h.recv(seq(rcv).ack(snd + 13));
    assert_eq!(h.t.info().unacked, 0);
    assert_eq!(h.t.state(), State::CloseWait);
    assert!(h.t.readiness().writable);
}

// ------------------------------------------------------------------
// Options: the rest.
// ------------------------------------------------------------------

/// A peer that offers window scaling to us when we did not offer it (an
/// illegal SYN,ACK) gets no scaling either way.
#[test]
fn window_scale_not_offered_not_used() {
    let (mut h, syn) = H::connect(plain());
    assert_eq!(syn.window_scale, None);
    h.recv(seq(IRS).syn().ack(ISS + 1).ws(7).wnd(1000));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(2000));
    let i = h.t.info();
    assert_eq!((i.snd_wscale, i.rcv_wscale, i.snd_wnd), (0, 0, 2000));
}

/// Without SACK-permitted in the SYN,ACK we send no SACK blocks, however
/// out of order the data.
#[test]
fn sack_not_permitted_no_blocks() {
    let (mut h, syn) = H::connect(Config { sack: true, ..plain() });
    assert!(syn.sack_permitted);
    h.recv(seq(IRS).syn().ack(ISS + 1));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert!(!h.t.info().sack);
    h.recv(seq(IRS + 11).ack(ISS + 1).data(b"later"));
    let ack = h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(ack.sack, [None; MAX_SACK_BLOCKS]);
}

/// SACK blocks a correct receiver never sends — above SND.MAX, below
/// SND.UNA (and not a D-SACK), empty, inverted — are ignored: they start
/// no recovery and mark nothing.
#[test]
fn sack_blocks_outside_the_window_ignored() {
    let mut h = small_mss(true);
    h.t.send(&[1; 500]);
    assert_eq!(flush(&mut h).len(), 5);
    let (una, max) = (ISS + 1, ISS + 501);
    for bad in [
        (max, max + 100),
        (max - 50, max + 50),
        (una + 200, una + 200),
        (una + 300, una + 200),
    ] {
        h.recv(seq(IRS + 1).ack(una).sack(bad.0, bad.1));
        assert!(h.t.scoreboard.is_empty(), "{bad:?}");
    }
    h.recv(
        seq(IRS + 1)
            .ack(una)
            .sack(una - 100, una - 50)
            .sack(una + 1_000_000, una + 1_000_100),
    );
    assert!(h.t.scoreboard.is_empty());
    // They still count as duplicate ACKs (RFC 5681 §2): one fast
    // retransmit of the head, nothing marked SACKed is skipped.
    assert_eq!(flush(&mut h), vec![(una, 100)]);
    // A D-SACK (below SND.UNA, first block) is not a SACK of new data.
    h.recv(seq(IRS + 1).ack(una + 100).sack(una, una + 100));
    assert!(h.t.scoreboard.is_empty());
}

/// A peer SACKing every other byte cannot fragment the scoreboard without
/// bound: it holds at most `sack::MAX_RANGES` ranges, each ACK costs
/// bounded work, and the data still gets through.
#[test]
fn sack_fragmenting_blocks_bounded() {
    let (mut h, _) = H::connect(Config {
        nodelay: true,
        sack: true,
        send_buffer: 1 << 20,
        ..plain()
    });
    h.recv(seq(IRS).syn().ack(ISS + 1).sack_perm().mss(1460).wnd(65535));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    h.t.send(&[3; 14600]);
    assert_eq!(flush(&mut h).len(), 10);
    let una = ISS + 1;
    // 1800 distinct 1-byte holes and blocks, 4 per ACK, all within what
    // was sent.
    for i in 0..2000u32 {
        let base = una + 1 + 8 * (i % 1800);
        h.recv(
            seq(IRS + 1)
                .ack(una)
                .sack(base + 6, base + 7)
                .sack(base + 4, base + 5)
                .sack(base + 2, base + 3)
                .sack(base, base + 1),
        );
        flush(&mut h);
    }
    assert!(h.t.scoreboard.len() <= crate::tcp::sack::MAX_RANGES);
    let max = h.t.snd_max();
    h.recv(seq(IRS + 1).ack(max.0));
    assert!(h.t.scoreboard.is_empty());
    assert_eq!(h.t.info().unacked, 0);
}

/// RFC 7323 §5.5: after more than 24 days without a segment TS.Recent is
/// no longer valid; a segment with any TSval is then accepted, not
/// dropped by PAWS, and its TSval becomes TS.Recent.
#[test]
fn paws_idle_24_days_resets_ts_recent() {
    let mut h = with_timestamps();
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"a").ts(1_000_000, 1000));
    assert_eq!(h.t.ts_recent, 1_000_000);
    h.skip_to_timer();
    h.next();
    // A day later the peer's clock appears to have gone back: PAWS drops.
    h.advance(Duration::from_secs(24 * 3600));
    h.recv(seq(IRS + 2).ack(ISS + 1).data(b"b").ts(10, 1000));
    assert_eq!(h.t.info().paws_rejected, 1);
    while h.t.poll(h.now).is_some() {}
    h.advance(Duration::from_secs(24 * 24 * 3600));
    h.recv(seq(IRS + 2).ack(ISS + 1).data(b"c").ts(20, 1000));
    assert_eq!(h.t.info().paws_rejected, 1, "24 idle days: TS.Recent invalid");
    assert_eq!(h.t.ts_recent, 20);
    assert_eq!(h.read_all(), b"ac");
    // Valid again from now on.
    h.recv(seq(IRS + 3).ack(ISS + 1).data(b"d").ts(15, 1000));
    assert_eq!(h.t.info().paws_rejected, 2);
}

/// PAWS does not apply to RST (RFC 7323 §5.3 R1: "if the RST bit is not
/// set"): an exact RST with an old TSval still resets.
#[test]
fn paws_spares_rst() {
    let mut h = with_timestamps();
    h.recv(seq(IRS + 1).rst().ts(1, 0));
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), Some(TcpError::Reset));
}

/// With timestamps every segment carries them and the MSS shrinks by 12
/// bytes; without them in the SYN,ACK, none are sent.
#[test]
fn timestamps_only_when_both_offer() {
    let (mut h, syn) = H::connect(Config {
        timestamps: true,
        ..plain()
    });
    assert!(syn.timestamp.is_some());
    h.recv(seq(IRS).syn().ack(ISS + 1).mss(1460));
    let ack = h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(ack.timestamp, None);
    assert_eq!(h.t.info().snd_mss, 1460);
    assert!(!h.t.info().timestamps);
}

/// A peer that stops answering zero-window probes is given up after 15 of
/// them, ETIMEDOUT, as Linux's tcp_probe_timer does; an answer to any
/// probe starts the count over.
#[test]
fn unanswered_zero_window_probes_time_out() {
    let mut h = H::established(plain());
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(0));
    h.t.send(b"blocked");
    h.silent();
    for _ in 0..10 {
        h.skip_to_timer();
        h.sent(seq(ISS).ack(IRS + 1));
    }
    // Answered once (still a zero window): fifteen more to go.
    h.recv(seq(IRS + 1).ack(ISS + 1).wnd(0));
    for _ in 0..15 {
        h.skip_to_timer();
        h.sent(seq(ISS).ack(IRS + 1));
        assert_eq!(h.t.state(), State::Established);
    }
    h.skip_to_timer();
    h.silent();
    assert_eq!(h.t.state(), State::Closed);
    assert_eq!(h.t.error(), Some(TcpError::TimedOut));
}

/// A SYN that PAWS rejects is answered like any SYN: at most one ACK per
/// 500 ms, so forged SYNs with old timestamps cannot draw an ACK each.
#[test]
fn paws_rejected_syns_rate_limited() {
    let mut h = with_timestamps();
    h.recv(seq(IRS + 1).ack(ISS + 1).ts(600, 1000));
    let mut acks = 0;
    for i in 0..10 {
        h.recv(seq(IRS + 100 + i).syn().ts(1, 0));
        acks += flush(&mut h).len();
    }
    assert_eq!(acks, 1);
    assert_eq!(h.t.info().paws_rejected, 10);
    // Old data is still answered at once.
    h.recv(seq(IRS + 1).ack(ISS + 1).data(b"old").ts(1, 0));
    h.sent(seq(ISS + 1).ack(IRS + 1));
    assert_eq!(h.t.state(), State::Established);
}

/// The congestion window grows only while it limits the sender: against a
/// peer that never offers more than 64 KB, 32 MB of acknowledged data leave
/// it near the peer's window (it once grew by every byte acknowledged,
/// past 2^31, and the sender stopped).
#[test]
fn cwnd_stops_growing_while_the_peer_window_limits() {
    let mut h = H::established(plain());
    let chunk = vec![0x42u8; 64 * 1024];
    let mut acked = 0usize;
    let mut next = ISS + 1;
    while acked < 32 << 20 {
        h.t.send(&chunk);
        let mut end = next;
        while let Some(seg) = h.t.poll(h.now) {
            let (a, b) = h.t.payload(&seg);
            end = seg.seq.0.wrapping_add((a.len() + b.len()) as u32);
        }
        h.advance(Duration::from_millis(1));
        h.recv(seq(IRS + 1).ack(end).wnd(65535));
        acked += end.wrapping_sub(next) as usize;
        next = end;
    }
    let cwnd = h.t.info().cwnd;
    assert!(
        cwnd <= 2 * 65535,
        "cwnd {cwnd} after {acked} bytes with a 65535-byte peer window"
    );
}

/// Sequence numbers compare within 2^31 of each other: a connection keeps
/// sending past 4 GiB (it once stopped at 2^31 bytes, where "SND.UNA > ISS"
/// turned false), and a loss after 2 GiB still starts fast recovery.
#[test]
fn sends_past_4_gib_and_still_recovers() {
    let mut h = H::established(plain());
    let chunk = vec![0x42u8; 64 * 1024];
    let mut acked = 0u64;
    let mut next = ISS + 1;
    while acked < (4 << 30) + (1 << 20) {
        h.t.send(&chunk);
        let mut end = next;
        while let Some(seg) = h.t.poll(h.now) {
            let (a, b) = h.t.payload(&seg);
            end = seg.seq.0.wrapping_add((a.len() + b.len()) as u32);
        }
        assert_ne!(end, next, "stalled after {acked} bytes: {:?}", h.t.info());
        h.advance(Duration::from_millis(1));
        h.recv(seq(IRS + 1).ack(end).wnd(65535));
        acked += u64::from(end.wrapping_sub(next));
        next = end;
    }
    // 2^31 + a bit after the start: lose the first segment of a flight;
    // three duplicate ACKs must retransmit it at once.
    while acked < (6 << 30) + (1 << 20) {
        h.t.send(&chunk);
        let mut end = next;
        while let Some(seg) = h.t.poll(h.now) {
            let (a, b) = h.t.payload(&seg);
            end = seg.seq.0.wrapping_add((a.len() + b.len()) as u32);
        }
        h.advance(Duration::from_millis(1));
        h.recv(seq(IRS + 1).ack(end).wnd(65535));
        acked += u64::from(end.wrapping_sub(next));
        next = end;
    }
    h.t.send(&chunk);
    let mut first = None;
    while let Some(seg) = h.t.poll(h.now) {
        first.get_or_insert(seg.seq.0);
    }
    let lost = first.expect("a flight");
    assert_eq!(lost, next);
    for _ in 0..3 {
        h.recv(seq(IRS + 1).ack(lost).wnd(65535));
    }
    let (rtx, _) = h.next();
    assert_eq!(rtx.seq.0, lost, "fast retransmit of the lost segment");
    assert_eq!(h.t.info().total_retrans, 1);
}
