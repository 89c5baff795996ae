//! Buffer autotuning, after Linux: how large a connection's send and
//! receive buffers grow while it runs.
//!
//! A socket starts with Linux's initial sizes ([`SEND_BUFFER_INITIAL`],
//! [`RECV_BUFFER_INITIAL`], `tcp_wmem[1]` and `tcp_rmem[1]`) and grows them
//! up to a maximum (`tcp_wmem[2]`, `tcp_rmem[2]`) as the connection shows
//! it needs them; a size the program set (`SO_SNDBUF`, `SO_RCVBUF`) is
//! locked and never tuned (Linux's `SOCK_SNDBUF_LOCK`/`SOCK_RCVBUF_LOCK`).
//! Buffers never shrink by tuning.
//!
//! - Receive: dynamic right-sizing (Linux's `tcp_rcv_space_adjust` and
//!   `tcp_rcvbuf_grow`, net/ipv4/tcp_input.c as of 6.18, with the low-RTT
//!   damping `tcp_rcvbuf_low_rtt` that followed in net-next, November
//!   2025: without it the stack's own loopback, whose RTT is next to
//!   nothing, grew buffers enough for CPython's `sendfile` timeout test to
//!   fit its 10 MiB again). Once per receiver-side RTT
//!   ([`RcvRtt`]), when the program read more than in the last measured
//!   RTT, the buffer grows to twice what it read ("DRS is always one RTT
//!   late") plus room for a sender in slow start to double its rate. A
//!   program that reads nothing leaves the buffer, and so the window, at
//!   its initial size.
//! - Send: Linux's `tcp_sndbuf_expand`: twice the congestion window (at
//!   least `TCP_INIT_CWND` segments; the tcpcb counts the data in flight
//!   where Linux counts its reordering degree) in Linux's per-segment
//!   memory cost, when the connection is established and on any ACK while
//!   a program waits for room and the send buffer, not the windows, limits
//!   the sender (`tcp_check_space`, `tcp_should_expand_sndbuf`).
//!
//! Sizes are payload bytes: these buffers store nothing else, so Linux's
//! `tcp_win_from_space` (window from memory, with per-skb overhead) is the
//! identity here, and a receive buffer of N bytes offers a window of N.
//! What Linux counts as memory per segment (`per_mss` below) is kept on
//! the send side, so that `getsockopt(SO_SNDBUF)` reports the numbers
//! Linux does (16384 before connecting, 87040 after, on an Ethernet path);
//! Linux with segmentation offload holds about that much payload too.
//!
//! FreeBSD autosizes as well (`tcp_autorcvbuf`, `tcp_autosndbuf`, with
//! similar intent); Linux's sizes are followed because programs compare
//! with Linux.
//!
//! Not for: the windows announced (the tcpcb) or memory pressure across
//! connections (none is modelled).

use core::time::Duration;

use super::SeqNum;
use crate::time::Instant;

/// A new socket's send buffer, bytes (Linux's `tcp_wmem[1]`).
pub const SEND_BUFFER_INITIAL: usize = 16 * 1024;
/// The most autotuning grows a send buffer to (Linux's `tcp_wmem[2]`).
pub const SEND_BUFFER_MAX: usize = 4 << 20;
/// A new socket's receive buffer, bytes (Linux's `tcp_rmem[1]`).
pub const RECV_BUFFER_INITIAL: usize = 128 * 1024;
/// The most autotuning grows a receive buffer to (Linux's `tcp_rmem[2]`
/// before it was raised to 32 MiB, as this machine's 6.18 kernel has it).
pub const RECV_BUFFER_MAX: usize = 6 << 20;

/// Linux's `TCP_INIT_CWND`: segments the send buffer is sized for at least.
const INIT_CWND_SEGS: u32 = 10;
/// Linux's `tcp_reordering` default; the send buffer covers one more.
const REORDERING: u32 = 3;
/// Linux's `MAX_TCP_HEADER` on x86-64 (`L1_CACHE_ALIGN(128 + MAX_HEADER)`).
const MAX_TCP_HEADER: usize = 320;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64.
const SKB_SHARED_INFO: usize = 320;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86-64.
const SK_BUFF: usize = 256;
/// Linux's `tcp_rcvbuf_low_rtt` default: below this receiver RTT the
/// slow-start allowance shrinks in proportion, so that short paths do not
/// inflate their buffers.
const LOW_RTT: Duration = Duration::from_millis(1);

/// What Linux charges for one segment of `mss` bytes in the worst case (no
/// segmentation offload: one skb per segment, its head a power of two):
/// `tcp_sndbuf_expand`'s `per_mss`.
fn per_mss(mss: u32) -> usize {
    (mss as usize + MAX_TCP_HEADER + SKB_SHARED_INFO).next_power_of_two() + SK_BUFF
}

/// The send buffer Linux's `tcp_sndbuf_expand` asks for with a congestion
/// window of `cwnd_segs` segments and a path of `mss` bytes (the larger of
/// the peer's MSS and ours): twice the window ("Fast Recovery (RFC 5681
/// 3.2): Cubic needs 1.7 factor, rounded to 2 to include extra cushion
/// (application might react slowly to EPOLLOUT)"), of at least
/// `TCP_INIT_CWND` segments and the reordering degree plus one.
pub fn send_buffer_for(cwnd_segs: u32, mss: u32) -> usize {
    let segs = cwnd_segs.max(INIT_CWND_SEGS).max(REORDERING + 1);
    2 * segs as usize * per_mss(mss)
}

/// The receiver's RTT estimate (Linux's `rcv_rtt_est`), for a connection
/// that may send nothing but ACKs: from the time it takes to receive a
/// window of data (Dynamic Right-Sizing, Wu Feng and Mike Fisk) and from
/// timestamp echoes of data segments.
#[derive(Debug, Clone, Copy, Default)]
pub struct RcvRtt {
    rtt: Option<Duration>,
    /// The window measurement under way: it ends when RCV.NXT passes `seq`.
    measure: Option<(SeqNum, Instant)>,
    /// The TSecr of the latest timestamp sample.
    last_tsecr: u32,
}

impl RcvRtt {
    /// The estimate, once there is one.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Linux's `tcp_rcv_rtt_update` (as of 6.16): a sample below the
    /// estimate replaces it, so that right-sizing does not overshoot; a
    /// larger one is smoothed in (gain 1/8) if it came from timestamps and
    /// ignored if it came from a window, which only bounds the RTT from
    /// above.
    fn update(&mut self, sample: Duration, from_window: bool) {
        self.rtt = match self.rtt {
            Some(old) if sample >= old => {
                if from_window {
                    return;
                }
                Some(old - old / 8 + sample / 8)
            }
            _ => Some(sample),
        };
    }

    /// In-order data arrived (Linux's `tcp_rcv_rtt_measure`): RCV.NXT is
    /// now `rcv_nxt`, and `rcv_wnd` is the window last announced. A
    /// measurement ends when a window's worth past its start has arrived,
    /// which the sender could only send after our ACKs came back: at least
    /// one RTT.
    pub fn on_data(&mut self, now: Instant, rcv_nxt: SeqNum, rcv_wnd: u32) {
        if let Some((seq, at)) = self.measure {
            if rcv_nxt < seq {
                return;
            }
            let sample = now.saturating_duration_since(at).max(Duration::from_micros(1));
            self.update(sample, true);
        }
        self.measure = Some((rcv_nxt + rcv_wnd, now));
    }

    /// A data segment of at least the receive MSS echoed `tsecr`, our
    /// TSval of `ts_now` milliseconds (Linux's `tcp_rcv_rtt_measure_ts`);
    /// each echo counts once, and one from this millisecond is no sample.
    pub fn on_timestamp(&mut self, ts_now: u32, tsecr: u32) {
        if tsecr == 0 || tsecr == self.last_tsecr {
            return;
        }
        self.last_tsecr = tsecr;
        let ms = ts_now.wrapping_sub(tsecr);
        if ms > 0 && ms < 1 << 31 {
            self.update(Duration::from_millis(u64::from(ms)), false);
        }
    }
}

/// The receive buffer's right-sizing state (Linux's `rcvq_space`): what the
/// program read in the last measured RTT.
#[derive(Debug, Clone, Copy)]
pub struct RcvSpace {
    /// Bytes read in the last RTT that grew the buffer (at first the
    /// initial window, at most ten segments).
    space: u32,
    /// Bytes the program had read when this measurement started.
    read_at: u64,
    /// When this measurement started.
    time: Instant,
}

impl RcvSpace {
    /// A measurement from `now`, when the connection is established
    /// (Linux's `tcp_init_buffer_space`: "min3(rcv_ssthresh, rcv_wnd,
    /// TCP_INIT_CWND * advmss)"); `read` is the bytes read so far.
    pub fn new(now: Instant, rcv_wnd: u32, advmss: u32, read: u64) -> RcvSpace {
        RcvSpace {
            space: rcv_wnd.min(INIT_CWND_SEGS * advmss).max(1),
            read_at: read,
            time: now,
        }
    }

    /// The program read; `read` counts every byte it read so far and
    /// `unread` what waits in the buffer. Once an RTT has passed since the
    /// measurement started (none without an estimate), a new one starts;
    /// if the program read more than in the last measured RTT, returns the
    /// buffer size to grow to (not capped: the caller caps it).
    ///
    /// Linux's `tcp_rcv_space_adjust` and `tcp_rcvbuf_grow`: "DRS is
    /// always one RTT late", so twice what was read; plus, in slow start,
    /// twice that again times the growth since the last RTT, or above a
    /// short RTT only the RTT's share of 1 ms of it; plus the span of
    /// out-of-order data (`ooo_end`).
    pub fn on_read(
        &mut self,
        now: Instant,
        rtt: Option<Duration>,
        read: u64,
        unread: usize,
        ooo_end: usize,
    ) -> Option<usize> {
        let rtt = rtt?;
        if now.saturating_duration_since(self.time) < rtt {
            return None;
        }
        // "Number of bytes copied to user in last RTT", less what still
        // waits ("copied -= inq").
        let copied = (read - self.read_at).saturating_sub(unread as u64);
        self.read_at = read;
        self.time = now;
        if copied <= u64::from(self.space) {
            return None;
        }
        let old = u64::from(self.space);
        let copied = copied.min(u64::from(u32::MAX));
        self.space = copied as u32;
        let mut win = copied * 2;
        let grow = if rtt < LOW_RTT {
            win * rtt.as_nanos() as u64 / LOW_RTT.as_nanos() as u64
        } else {
            (win * 2).saturating_mul(copied - old) / old
        };
        win = win.saturating_add(grow).saturating_add(ooo_end as u64);
        Some(usize::try_from(win).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_buffer_sizes_are_linux_numbers() {
        // An Ethernet path: Linux reports 87040 after connect.
        assert_eq!(send_buffer_for(10, 1460), 87_040);
        assert_eq!(send_buffer_for(2, 1460), 87_040, "at least ten segments");
        // Linux's loopback MSS, per_mss 131328 (with BBR's factor of 3 this
        // machine's kernel reports 3939840 = 30 * 131328).
        assert_eq!(send_buffer_for(10, 65_495), 20 * 131_328);
        // Twice the window in segments, past the initial ten.
        assert_eq!(send_buffer_for(100, 1448), 200 * 4352);
    }

    #[test]
    fn receiver_rtt_takes_the_least_window_sample() {
        let mut r = RcvRtt::default();
        let t0 = Instant::from_secs(1);
        r.on_data(t0, SeqNum(1000), 10_000);
        assert_eq!(r.rtt(), None, "a measurement started");
        r.on_data(t0 + Duration::from_millis(5), SeqNum(5000), 10_000);
        assert_eq!(r.rtt(), None, "not a window yet");
        r.on_data(t0 + Duration::from_millis(20), SeqNum(11_000), 10_000);
        assert_eq!(r.rtt(), Some(Duration::from_millis(20)));
        // A larger window sample only bounds the RTT from above: ignored.
        r.on_data(t0 + Duration::from_millis(60), SeqNum(21_000), 10_000);
        assert_eq!(r.rtt(), Some(Duration::from_millis(20)));
        // A larger timestamp sample is smoothed in; a smaller replaces.
        r.on_timestamp(1100, 1000);
        assert_eq!(r.rtt(), Some(Duration::from_micros(20_000 - 2500 + 12_500)));
        r.on_timestamp(1100, 1000);
        assert_eq!(r.rtt(), Some(Duration::from_micros(30_000)), "an echo counts once");
        r.on_timestamp(1200, 1190);
        assert_eq!(r.rtt(), Some(Duration::from_millis(10)));
        r.on_timestamp(1200, 1200);
        assert_eq!(r.rtt(), Some(Duration::from_millis(10)), "0 ms is no sample");
    }

    #[test]
    fn right_sizing_follows_what_is_read_per_rtt() {
        let t0 = Instant::from_secs(1);
        let rtt = Some(Duration::from_millis(10));
        let mut s = RcvSpace::new(t0, 65_535, 1448, 0);
        assert_eq!(s.space, 14_480);
        // Nothing without an RTT estimate, nor within one RTT.
        assert_eq!(s.on_read(t0 + Duration::from_millis(10), None, 50_000, 0, 0), None);
        assert_eq!(s.on_read(t0 + Duration::from_millis(5), rtt, 50_000, 0, 0), None);
        // 28960 read in the RTT, twice the last: 2 * 28960 plus the
        // slow-start allowance 2 * 2 * 28960 * (28960 - 14480) / 14480.
        assert_eq!(
            s.on_read(t0 + Duration::from_millis(10), rtt, 28_960, 0, 0),
            Some(6 * 28_960)
        );
        // The same again: no growth, a new measurement.
        assert_eq!(s.on_read(t0 + Duration::from_millis(20), rtt, 2 * 28_960, 0, 0), None);
        // Unread bytes do not count; out-of-order data adds its span.
        assert_eq!(
            s.on_read(t0 + Duration::from_millis(30), rtt, 2 * 28_960 + 40_000, 10_000, 3000),
            Some(60_000 + 120_000 * 1040 / 28_960 + 3000)
        );
        // A short RTT: the allowance is the RTT's share of 1 ms.
        let short = Some(Duration::from_micros(100));
        let mut s = RcvSpace::new(t0, 65_535, 1448, 0);
        let at = t0 + Duration::from_micros(100);
        assert_eq!(s.on_read(at, short, 100_000, 0, 0), Some(200_000 + 20_000));
    }
}
